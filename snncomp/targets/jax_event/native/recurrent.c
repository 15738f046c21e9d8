/*
 * Single-spike populations with recurrent projections (an event-queue stage of one population whose
 * neurons spike at most once), one sample at a time: the spikes in time order, and their EventProp
 * backward in closed form.
 *
 * Forward. The event-queue schedule of _queue.py for this case, by the layer kernel's sweep (layer.c):
 * between two deliveries (external, or a delayed recurrent one read back from the spike log) one
 * exponential gives the free evolution of every neuron; a branch-free pass advances them all and
 * flags the neurons with a crossing inside the interval (the tests of QuadraticSolver.peak_within).
 * Without a flag the state moves to the interval's end and the delivery is applied; with flags, the
 * earliest crossing among them (QuadraticSolver.order_key; ties: lowest index) is the next spike:
 * every neuron moves to it, the spiking one stops (max_spikes = 1: its membrane is needed no more),
 * its zero-delay rows are delivered in projection order, and the rest of the interval is swept
 * again. Equal times: external deliveries, then delayed recurrent ones in projection order, then
 * spikes, as the event queue orders them. A spike's work is one pass over the population.
 *
 * Backward. With one spike per neuron and no reset, the membrane before a spike is a sum of kernels
 * kappa(t_j - s_k) of the deliveries that reached it, so EventProp's adjoint jumps collapse into the
 * derivatives of the spike times (docs/eventprop.md, the layer-parallel case): lam_j = -G_j / (du/dt
 * at t_j), dL/dw_kj = lam_j kappa, and dL/ds_k = -w_kj lam_j kappa', where G_j, the total derivative
 * of the loss by t_j, gathers the direct cotangent and what later spikes of the population pass back
 * through the recurrent rows. Going through the spikes from the last, each G_j is final when reached.
 * With tau_mem = 2 tau_syn a pair's kernel needs alpha = exp(-(t_j - s_k) / tau_mem) only, taken as
 * exp(-t_j / tau_mem) exp(s_k / tau_mem) where t_max / tau_mem keeps both factors in range.
 *
 * Everything is float64 (ffi.c converts float32 operands).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "layer.h"
#include "quadratic.h"

/* Crossings per tried interval above which the interval is shrunk. */
#define FEW 4

/* Beyond this t_max / tau_mem the factored exponentials could leave float64's range. */
#define FACTORED_LIMIT 600.0

size_t snncomp_rec_work(const RecShape *sh) {
    return (size_t)(sh->n + 4) * 8 * sizeof(double) + (size_t)sh->n * sizeof(int32_t) +
           (size_t)sh->P * sizeof(int32_t) + 32 + (size_t)sh->E * (sizeof(double) + sizeof(int32_t)) + 32;
}

size_t snncomp_rec_grad_work(const RecShape *sh) {
    return (size_t)sh->n * 6 * sizeof(double) + (size_t)sh->n * sizeof(int32_t) +
           (size_t)(sh->npop + 1) * sizeof(int32_t) + (size_t)sh->E * sizeof(double) +
           (size_t)sh->P * sizeof(double) + 64;
}

/* One interval (a, b, g) for every neuron: the state at its end into (un, in), and ok[j] = 1 where a
 * neuron that may still spike crosses inside it (the tests of QuadraticSolver.peak_within). Branch-free
 * and without square roots or divisions, so that it vectorizes cheaply. Returns how many it flagged. */
WIDE static long rec_sweep(const double *restrict u, const double *restrict i, double *restrict un,
                           double *restrict in, const double *restrict alive, int64_t *restrict ok,
                           const double *restrict theta, double a, double b, double g, long n) {
    long flagged = 0;
    for (long j = 0; j < n; j++) {
        double uu = u[j], ii = i[j], th = theta[j];
        double ue = a * uu + b * ii;
        double p = uu + ii;
        int64_t peak = (ii > 0.0) & (ii > uu) & (p > 0.0) & (p * p >= 4.0 * ii * th) & (p >= 2.0 * ii * a);
        int64_t flag = ((uu >= th) | (ue >= th) | peak) & (alive[j] != 0.0);
        ok[j] = flag;
        flagged += flag;
        un[j] = ue;
        in[j] = g * ii;
    }
    return flagged;
}

/* Every neuron a time (a, b, g) on, then the row w (may be NULL) delivered. */
WIDE static void advance(double *restrict u, double *restrict i, const double *restrict w, double a, double b,
                         double g, long n) {
    if (w) {
        for (long j = 0; j < n; j++) {
            double uu = u[j], ii = i[j];
            u[j] = a * uu + b * ii;
            i[j] = g * ii + w[j];
        }
    } else {
        for (long j = 0; j < n; j++) {
            double uu = u[j], ii = i[j];
            u[j] = a * uu + b * ii;
            i[j] = g * ii;
        }
    }
}

WIDE static void add_row(double *restrict i, const double *restrict w, long n) {
    for (long j = 0; j < n; j++) i[j] += w[j];
}

void snncomp_rec_one(const RecShape *sh, const double *times, const int32_t *rows, const double *matrix,
                     const double *wrec, const double *delays, const double *theta, const double *init,
                     const double *consts, const int32_t *layout, double *out_t, int32_t *out_nb,
                     double *out_cur, void *work) {
    const int32_t n = sh->n, P = sh->P;
    /* consts[1], tau_syn = tau_mem / 2, is not needed: exp(-s / tau_syn) is the square of the key. */
    const double tau_m = consts[0], delta = consts[2], t_max = consts[3];
    double *u = (double *)work, *i = u + n, *un = i + n, *in = un + n, *alive = in + n;
    double *log_t = alive + n, *log_cur = log_t + n; /* the stage's spikes in time order */
    int32_t *log_nb = (int32_t *)(log_cur + n);
    int32_t *ptr = log_nb + n; /* per projection: the next spike of the log to deliver */
    const int32_t npop = sh->npop, *pop_off = layout, *stop = layout + npop + 1;
    int32_t remaining = 0; /* neurons whose first spikes end the run, not spiked yet */
    for (int32_t j = 0; j < n; j++) remaining += stop[j] != 0;
    const int early = remaining > 0;
    int64_t *ok = (int64_t *)(((uintptr_t)(ptr + P) + 7) & ~(uintptr_t)7); /* flags, padded to groups of 4 */
    int32_t E = sh->E;
    if (sh->sort) {
        double *st = (double *)(ok + n + 4);
        int32_t *sr = (int32_t *)(st + E);
        memcpy(st, times, (size_t)E * sizeof(double));
        memcpy(sr, rows, (size_t)E * sizeof(int32_t));
        snncomp_sort_deliveries(st, sr, E);
        times = st;
        rows = sr;
    }
    for (int32_t j = 0; j < n; j++) {
        u[j] = sh->has_init ? init[j] : 0.0;
        i[j] = sh->has_init ? init[n + j] : 0.0;
        alive[j] = 1.0;
    }
    for (int32_t p = 0; p < P; p++) ptr[p] = 0;
    memset(ok, 0, ((size_t)n + 4) * sizeof(int64_t));
    /* The zero-delay projection, if exactly one: its row is delivered in the pass that moves to the spike. */
    int32_t zero_p = -1, zeros = 0;
    for (int32_t p = 0; p < P; p++)
        if (!(delays[p] > 0.0)) {
            zero_p = p;
            zeros++;
        }
    int32_t count = 0, e = 0;
    double t0 = 0.0, h = INFINITY; /* h: the length of interval tried next */
    for (;;) {
        /* The next delivery: external first at equal times, then the projections in order. */
        double t1 = (e < E && times[e] < t_max) ? times[e] : INFINITY;
        int32_t src = -1;
        for (int32_t p = 0; p < P; p++) {
            if (!(delays[p] > 0.0) || ptr[p] >= count) continue;
            double tp = log_t[ptr[p]] + delays[p];
            if (tp < t1) {
                t1 = tp;
                src = p;
            }
        }
        if (!(t1 < t_max)) t1 = INFINITY;
        double t_lim = t1 < t_max ? t1 : t_max;
        if (t_lim > t0) {
            /* The earliest crossing before the delivery, looked for in a piece [t0, t0 + h] that holds few
             * (only flagged neurons need a crossing's square root and divisions): shrunk while it holds
             * many, doubled while it holds none. */
            double t_end = t0 + h < t_lim ? t0 + h : t_lim;
            double span = t_end - t0, a, b, g;
            coefficients(span, tau_m, delta, &a, &b, &g);
            long flagged = rec_sweep(u, i, un, in, alive, ok, theta, a, b, g, n);
            if (flagged > FEW) {
                double shorter = span * 2.0 / flagged;
                /* not below 1e-9 tau_mem: several neurons above threshold at once need no shorter piece */
                if (t0 + shorter > t0 && shorter < span && shorter > 1e-9 * tau_m) {
                    h = shorter;
                    continue;
                }
            }
            if (flagged > 0) {
                double best = -2.0;
                int32_t jb = 0;
                for (int32_t w0 = 0; w0 < n; w0 += 4) {
                    if (!(ok[w0] | ok[w0 + 1] | ok[w0 + 2] | ok[w0 + 3])) continue; /* four without a flag */
                    for (int32_t j = w0; j < w0 + 4 && j < n; j++) {
                        if (!ok[j]) continue;
                        double x = order_key(u[j], i[j], theta[j]);
                        if (x < a) x = a; /* flagged: the crossing is inside the interval, at worst at its end */
                        if (x > best) {   /* ties: the lowest index */
                            best = x;
                            jb = j;
                        }
                    }
                }
                /* The key is exp(-s / tau_mem) (QuadraticSolver.order_key), or a for the interval's end:
                 * it gives the coefficients to the spike, and exp(-s / tau_syn) = key^2 its current. */
                double s = best >= 1.0 ? 0.0 : (best <= a ? span : -tau_m * log(best));
                if (s > span) s = span;
                double ts = t0 + s;
                if (ts < t_max) {
                    double x = best >= 1.0 ? 1.0 : (best <= a ? a : best);
                    log_t[count] = ts;
                    log_nb[count] = jb;
                    log_cur[count] = i[jb] * (x * x);
                    count++;
                    alive[jb] = 0.0;
                    if (early && stop[jb] && --remaining == 0) break; /* what follows is never simulated */
                    const double *w = zeros == 1 ? wrec + ((int64_t)zero_p * n + jb) * n : NULL;
                    advance(u, i, w, x, x * (1.0 - x), x * x, n);
                    if (zeros > 1)
                        for (int32_t p = 0; p < P; p++)
                            if (!(delays[p] > 0.0)) add_row(i, wrec + ((int64_t)p * n + jb) * n, n);
                    t0 = ts;
                    continue;
                }
            }
            double *sw = u;
            u = un;
            un = sw;
            sw = i;
            i = in;
            in = sw;
            t0 = t_end;
            h = 2.0 * span;
            if (t_end < t_lim) continue;
        }
        if (!(t1 < t_max)) break;
        if (src < 0) {
            add_row(i, matrix + (int64_t)rows[e] * n, n);
            e++;
        } else {
            add_row(i, wrec + ((int64_t)src * n + log_nb[ptr[src]]) * n, n);
            ptr[src]++;
        }
    }
    /* Each population's spikes at its offset, in time order, local indices. */
    for (int32_t k = 0; k < npop; k++) {
        int32_t lo = pop_off[k], hi = pop_off[k + 1], at = lo;
        for (int32_t q = 0; q < count; q++) {
            int32_t j = log_nb[q];
            if (j < lo || j >= hi) continue;
            out_t[at] = log_t[q];
            out_nb[at] = j - lo;
            out_cur[at] = log_cur[q];
            at++;
        }
        for (; at < hi; at++) {
            out_t[at] = INFINITY;
            out_nb[at] = -1;
            out_cur[at] = 0.0;
        }
    }
}

void snncomp_rec_grad_one(const RecShape *sh, const double *in_t, const int32_t *in_nb,
                          const double *in_cur, const double *in_ct, const double *times, const int32_t *rows,
                          const double *matrix, const double *wrec, const double *delays, const double *theta,
                          const double *consts, const int32_t *layout, double *lam, double *d_matrix,
                          double *d_times, double *d_wrec, double *d_delay, void *work) {
    const int32_t n = sh->n, P = sh->P, E = sh->E, npop = sh->npop, *pop_off = layout;
    const double tau_m = consts[0], t_max = consts[2], *floor_ = theta + n; /* theta [n], then floors [n] */
    double *G = (double *)work, *em = G + n, *ep = em + n, *sp_t = ep + n, *sp_cur = sp_t + n, *ct = sp_cur + n;
    int32_t *sp_nb = (int32_t *)(ct + n), *head = sp_nb + n;
    double *ex = (double *)(((uintptr_t)(head + npop + 1) + 7) & ~(uintptr_t)7), *ed = ex + E;
    /* The populations' logs merged into one in time order (stage-wide neuron indices). */
    int32_t S = 0;
    for (int32_t k = 0; k < npop; k++) head[k] = pop_off[k];
    for (;;) {
        int32_t kb = -1;
        double tb = INFINITY;
        for (int32_t k = 0; k < npop; k++) {
            int32_t q = head[k];
            if (q < pop_off[k + 1] && in_nb[q] >= 0 && in_t[q] < tb) {
                tb = in_t[q];
                kb = k;
            }
        }
        if (kb < 0) break;
        int32_t q = head[kb]++;
        sp_t[S] = in_t[q];
        sp_nb[S] = in_nb[q] + pop_off[kb];
        sp_cur[S] = in_cur[q];
        ct[S] = in_ct[q];
        S++;
    }
    memset(lam, 0, (size_t)n * sizeof(double));
    memset(d_matrix, 0, (size_t)sh->R * n * sizeof(double));
    memset(d_times, 0, (size_t)E * sizeof(double));
    memset(d_wrec, 0, (size_t)P * n * n * sizeof(double));
    memset(d_delay, 0, (size_t)P * sizeof(double));
    int32_t m = 0;
    while (m < S && sp_nb[m] >= 0 && sp_t[m] < t_max) m++;
    const int factored = t_max / tau_m <= FACTORED_LIMIT;
    for (int32_t q = 0; q < m; q++) {
        G[q] = ct[q];
        if (factored) {
            em[q] = exp(-sp_t[q] / tau_m);
            ep[q] = exp(sp_t[q] / tau_m);
        }
    }
    if (factored) {
        for (int32_t k = 0; k < E; k++) ex[k] = times[k] < t_max ? exp(times[k] / tau_m) : 0.0;
        for (int32_t p = 0; p < P; p++) ed[p] = delays[p] < t_max ? exp(delays[p] / tau_m) : 0.0;
    }
    for (int32_t q = m - 1; q >= 0; q--) {
        const int32_t j = sp_nb[q];
        const double tj = sp_t[q];
        double slope = (sp_cur[q] - theta[j]) / tau_m; /* du/dt just before the spike (u = theta) */
        if (fabs(slope) < floor_[j]) slope = slope < 0.0 ? -floor_[j] : floor_[j]; /* guarded_slope */
        const double lj = -G[q] / slope;
        lam[j] = lj;
        if (lj == 0.0) continue;
        for (int32_t p = 0; p < P; p++) {
            const double d = delays[p];
            const double *w = wrec + (int64_t)p * n * n;
            double *dw = d_wrec + (int64_t)p * n * n, dd = 0.0;
            for (int32_t r = 0; r < q; r++) {
                double s = sp_t[r] + d;
                if (!(s < tj)) break; /* the slots are in time order */
                int32_t k = sp_nb[r];
                double a = factored ? em[q] * ep[r] * ed[p] : exp(-(tj - s) / tau_m);
                double kap = a - a * a, dkap = (2.0 * a * a - a) / tau_m;
                dw[(int64_t)k * n + j] += lj * kap;
                double ds = -w[(int64_t)k * n + j] * lj * dkap;
                G[r] += ds;
                dd += ds;
            }
            d_delay[p] += dd;
        }
        for (int32_t k = 0; k < E; k++) {
            double s = times[k];
            if (!(s < tj)) continue;
            int64_t at = (int64_t)rows[k] * n + j;
            double a = factored ? em[q] * ex[k] : exp(-(tj - s) / tau_m);
            double kap = a - a * a, dkap = (2.0 * a * a - a) / tau_m;
            d_matrix[at] += lj * kap;
            d_times[k] -= matrix[at] * lj * dkap;
        }
    }
}
