/*
 * The layer-parallel schedule of snncomp's jax target (_layer.py), one population and one sample at a
 * time: every neuron's first spike, sorted.
 *
 * The same sweep as _layer.py's _first_crossing_sweep and _finish (read their docstrings first), for
 * current-based LIF neurons with tau_mem = 2 tau_syn (QuadraticSolver), one tau_mem and tau_syn per
 * population, no instantaneous synapses and no bias drift. Per interval between deliveries the free
 * evolution's coefficients are computed once (they are the same for every neuron); a neuron stops
 * being tested once its first interval holding a crossing is found, and the sweep ends when every
 * neuron has one. The spikes are then sorted by time (ties: lower index first, as sort_by_time).
 *
 * Everything is float64 (the FFI handler in ffi.c converts float32 operands), so a float32 program
 * gets the float64 spikes rounded to float32.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "layer.h"
#include "quadratic.h"

/* One interval (coefficients a, b, g) for every neuron: flags the neurons whose first interval holding
 * a crossing it is (the tests of _layer._first_crossing_sweep and QuadraticSolver.peak_within), then
 * delivers the row w. Branch-free, so that it vectorizes. Returns how many neurons it flagged. */
WIDE static double sweep(double *restrict u, double *restrict i, double *restrict hit, double *restrict cu,
                         double *restrict ci, double *restrict ck, const double *restrict theta,
                         const double *restrict w, double a, double b, double g, double k, long n) {
    double flagged = 0.0;
    for (long j = 0; j < n; j++) {
        double uu = u[j], ii = i[j], th = theta[j];
        double ue = a * uu + b * ii;
        double p = uu + ii;
        int peak = (ii > 0.0) & (ii > uu) & (p > 0.0) & (p * p >= 4.0 * ii * th) & (p >= 2.0 * ii * a);
        int flag = (uu >= th) | (ue >= th) | peak;
        int fresh = flag & (hit[j] == 0.0);
        cu[j] = fresh ? uu : cu[j];
        ci[j] = fresh ? ii : ci[j];
        ck[j] = fresh ? k : ck[j];
        hit[j] = fresh ? 1.0 : hit[j];
        flagged += fresh ? 1.0 : 0.0;
        u[j] = ue;
        i[j] = g * ii + w[j];
    }
    return flagged;
}

/* Delivery e of the sweep's list: an optional start at t = 0, the deliveries (those at or after t_max
 * moved to t_max with the zero row), and a closing one at t_max (_layer.first_spikes_from_rows). */
static inline void entry(const LayerShape *sh, const double *times, const int32_t *rows, double t_max, int32_t e,
                         double *t, int32_t *row) {
    int32_t k = e - sh->has_init;
    if (k < 0 || k >= sh->E || !(times[k] < t_max)) {
        *t = k < 0 ? 0.0 : t_max;
        *row = sh->R - 1;
        return;
    }
    *t = times[k];
    *row = rows[k];
}

/* Where each of t[0..m) goes in the stable ascending order (ties: lower index first, as sort_by_time):
 * rank[j] counts the entries before it. Quadratic but branch-free and vectorized, cheaper than a
 * comparison sort's mispredicted branches at a layer's sizes (a merge sort takes over above 256). */
WIDE static void ranks(const double *restrict t, int32_t m, int32_t *restrict rank) {
    for (int32_t j = 0; j < m; j++) {
        double tj = t[j];
        int32_t r = 0;
        for (int32_t k = 0; k < j; k++) r += t[k] <= tj;
        for (int32_t k = j + 1; k < m; k++) r += t[k] < tj;
        rank[j] = r;
    }
}

/* Stable merge sort of idx[0..m) by t[idx] (ties keep index order). */
static void merge_sort(int32_t *idx, int32_t *tmp, int32_t m, const double *t) {
    for (int32_t width = 1; width < m; width *= 2) {
        for (int32_t lo = 0; lo < m; lo += 2 * width) {
            int32_t mid = lo + width < m ? lo + width : m;
            int32_t hi = lo + 2 * width < m ? lo + 2 * width : m;
            int32_t a = lo, b = mid, o = lo;
            while (a < mid && b < hi) tmp[o++] = t[idx[b]] < t[idx[a]] ? idx[b++] : idx[a++];
            while (a < mid) tmp[o++] = idx[a++];
            while (b < hi) tmp[o++] = idx[b++];
        }
        for (int32_t j = 0; j < m; j++) idx[j] = tmp[j];
    }
}

/* Stable insertion sort of (t, r)[0..m) by t: deliveries come nearly sorted (buffers are). */
void snncomp_sort_deliveries(double *t, int32_t *r, int32_t m) {
    for (int32_t k = 1; k < m; k++) {
        double tk = t[k];
        int32_t rk = r[k], q = k - 1;
        while (q >= 0 && t[q] > tk) {
            t[q + 1] = t[q];
            r[q + 1] = r[q];
            q--;
        }
        t[q + 1] = tk;
        r[q + 1] = rk;
    }
}

size_t snncomp_layer_work(const LayerShape *sh) {
    return (size_t)sh->n * (7 * sizeof(double) + 2 * sizeof(int32_t)) +
           (size_t)sh->E * (sizeof(double) + sizeof(int32_t)) + 16;
}

void snncomp_layer_one(const LayerShape *sh, const double *times, const int32_t *rows, const double *matrix,
                       const double *theta, const double *init, const double *consts, double *out_t,
                       int32_t *out_nb, double *out_cur, void *work) {
    const int32_t n = sh->n;
    const double tau_m = consts[0], tau_s = consts[1], delta = consts[2], t_max = consts[3];
    double *u = (double *)work, *i = u + n, *cu = i + n, *ci = cu + n, *ck = ci + n, *hit = ck + n;
    double *t_first = hit + n;
    int32_t *idx = (int32_t *)(t_first + n), *tmp = idx + n;
    if (sh->sort) {
        double *st = (double *)(((uintptr_t)(tmp + n) + 7) & ~(uintptr_t)7);
        int32_t *sr = (int32_t *)(st + sh->E);
        for (int32_t k = 0; k < sh->E; k++) {
            st[k] = times[k];
            sr[k] = rows[k];
        }
        snncomp_sort_deliveries(st, sr, sh->E);
        times = st;
        rows = sr;
    }
    const int32_t m = sh->E + 1 + sh->has_init;
    double t0, t1;
    int32_t row;
    entry(sh, times, rows, t_max, 0, &t0, &row);
    for (int32_t j = 0; j < n; j++) {
        u[j] = init[j];
        i[j] = init[n + j] + matrix[(int64_t)row * n + j];
        hit[j] = 0.0;
        cu[j] = ci[j] = ck[j] = 0.0;
    }
    double open = n; /* neurons without a flagged interval yet */
    for (int32_t k = 0; k + 1 < m && open > 0; k++) {
        entry(sh, times, rows, t_max, k + 1, &t1, &row);
        double span = t1 - t0, a, b, g;
        const double *w = matrix + (int64_t)row * n;
        coefficients(span, tau_m, delta, &a, &b, &g);
        open -= sweep(u, i, hit, cu, ci, ck, theta, w, a, b, g, (double)k, n);
        t0 = t1;
    }
    int32_t spiked = 0;
    for (int32_t j = 0; j < n; j++) {
        if (hit[j] == 0.0) continue;
        int32_t k = (int32_t)ck[j];
        entry(sh, times, rows, t_max, k, &t0, &row);
        entry(sh, times, rows, t_max, k + 1, &t1, &row);
        double s = crossing(cu[j], ci[j], theta[j], tau_m);
        if (s > t1 - t0) s = t1 - t0; /* a flagged interval ends in a spike (_layer._finish) */
        double ts = t0 + s;
        if (!(ts < t_max)) continue;
        t_first[spiked] = ts; /* compacted: the spiking neurons in index order */
        ci[spiked] = ci[j] * exp(-s / tau_s);
        idx[spiked++] = j;
    }
    if (spiked <= 256) {
        ranks(t_first, spiked, tmp);
        for (int32_t r = 0; r < spiked; r++) {
            out_t[tmp[r]] = t_first[r];
            out_nb[tmp[r]] = idx[r];
            out_cur[tmp[r]] = ci[r];
        }
    } else {
        for (int32_t r = 0; r < spiked; r++) out_nb[r] = r;
        merge_sort(out_nb, tmp, spiked, t_first);
        for (int32_t r = 0; r < spiked; r++) {
            int32_t q = out_nb[r];
            out_t[r] = t_first[q];
            out_cur[r] = ci[q];
            out_nb[r] = idx[q];
        }
    }
    for (int32_t r = spiked; r < n; r++) {
        out_t[r] = INFINITY;
        out_nb[r] = -1;
        out_cur[r] = 0.0;
    }
}
