/* What the C kernels share: QuadraticSolver's crossing time and order key, the free evolution's coefficients
 * (float64), and the vectorization attribute. */
#ifndef SNNCOMP_QUADRATIC_H
#define SNNCOMP_QUADRATIC_H
#include <math.h>

/* Population-wide loops get an AVX2 version next to the baseline one, chosen when the library is
 * loaded (GCC's function multiversioning). AVX2 only, not FMA: fused multiply-adds would round
 * differently from the vectorized loop. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define WIDE __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define WIDE
#endif

/* Whether a neuron below threshold at (u0, i0) crosses it (p = u0 + i0): the current drives the membrane
 * to a maximum at or above threshold (QuadraticSolver's tests). */
static inline int has_crossing(double u0, double i0, double theta, double p) {
    return (i0 > 0.0) && (i0 > u0) && (p > 0.0) && (p * p >= 4.0 * i0 * theta);
}

/* 1 - x of that crossing, x = exp(-s / tau_mem) the smaller root of the quadratic in x (at most 1). */
static inline double one_minus_key(double u0, double i0, double theta, double p) {
    double disc = p * p - 4.0 * i0 * theta;
    if (disc < 0.0) disc = 0.0;
    double one_minus_x = 2.0 * (theta - u0) / ((i0 - u0) + sqrt(disc));
    return one_minus_x > 1.0 ? 1.0 : one_minus_x;
}

/* QuadraticSolver.crossing (no polish): time until the crossing, 0 if above, +inf if none. */
static inline double crossing(double u0, double i0, double theta, double tau_m) {
    if (u0 >= theta) return 0.0;
    double p = u0 + i0;
    if (!has_crossing(u0, i0, theta, p)) return INFINITY;
    double s_star = -tau_m * log(p / (2.0 * i0));
    double s = -tau_m * log1p(-one_minus_key(u0, i0, theta, p));
    if (s < 0.0) s = 0.0;
    if (s > s_star) s = s_star;
    return s;
}

/* _dynamics.free_coefficients for tau_mem = 2 tau_syn (what QuadraticSolver asserts, to 1e-12): then
 * gamma = alpha^2, and one exponential per interval serves all three (a narrow layer's sweep is mostly
 * these). Same branches as there: |span delta| < 1 takes expm1 against cancellation. */
static inline void coefficients(double span, double tau_m, double delta, double *a, double *b, double *g) {
    double x = span * delta;
    if (fabs(x) < 1.0) {
        double e = expm1(x); /* delta = -1 / tau_mem: x = -span / tau_mem */
        *a = 1.0 + e;
        *b = *a * e / delta / tau_m;
    } else {
        *a = exp(-span / tau_m);
        *b = (*a * *a - *a) / delta / tau_m;
    }
    *g = *a * *a;
}

/* QuadraticSolver.order_key: x = exp(-s / tau_mem) of the next crossing from (u0, i0), 1 if
 * already above threshold, -1 if none. */
static inline double order_key(double u0, double i0, double theta) {
    if (u0 >= theta) return 1.0;
    double p = u0 + i0;
    if (!has_crossing(u0, i0, theta, p)) return -1.0;
    double x = 1.0 - one_minus_key(u0, i0, theta, p);
    double x_peak = p / (2.0 * i0);
    return x > x_peak ? x : x_peak;
}

#endif
