/* What both C kernels share: QuadraticSolver's crossing time (float64), and the vectorization attribute. */
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

/* QuadraticSolver.crossing (no polish): time until the crossing, 0 if above, +inf if none. */
static inline double crossing(double u0, double i0, double theta, double tau_m) {
    if (u0 >= theta) return 0.0;
    double p = u0 + i0;
    int has_max = (i0 > 0.0) && (i0 > u0) && (p > 0.0);
    if (!has_max || !(p * p >= 4.0 * i0 * theta)) return INFINITY;
    double s_star = -tau_m * log(p / (2.0 * i0));
    double disc = p * p - 4.0 * i0 * theta;
    if (disc < 0.0) disc = 0.0;
    double one_minus_x = 2.0 * (theta - u0) / ((i0 - u0) + sqrt(disc));
    if (one_minus_x > 1.0) one_minus_x = 1.0;
    double s = -tau_m * log1p(-one_minus_x);
    if (s < 0.0) s = 0.0;
    if (s > s_star) s = s_star;
    return s;
}

#endif
