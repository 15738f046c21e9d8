/*
 * The event-queue schedule of snncomp's jax target, as a plain C loop (one sample at a time).
 *
 * The same schedule as _queue.py (read its docstring first): populations of current-based LIF
 * neurons with tau_mem = 2 tau_syn (the quadratic crossing), one tau_mem, tau_syn and t_refrac per
 * population. Each iteration takes the earliest of: the next external delivery, the next delivery
 * of each internal projection with a delay (its source's spike log is its queue), the earliest
 * threshold crossing, and each refractory population's next release (its spike log is also the
 * queue of its releases). Equal times: external, internal in projection order, spikes (lowest
 * index), releases. A spike's zero-delay deliveries are applied in the spike's iteration.
 *
 * The physics is the vectorized loop's; the bookkeeping differs, so that an event costs the neurons it
 * changes and not the whole stage:
 *
 *  - State in a frame. Free LIF dynamics from a frame time T are u(t) = A em + K C es and
 *    I(t) = C es, with em = exp(-(t - T) / tau_mem), es = exp(-(t - T) / tau_syn) and
 *    K = tau_syn / (tau_syn - tau_mem) (the particular solution for the decaying current). A neuron
 *    keeps (A, C); advancing time moves only its population's em and es. A delivery of w changes
 *    C by w / es and A by -K w / em (u is continuous); a release sets A from u = u_reset. The frame
 *    moves to now (A, C rescaled, keys recomputed) before the factors pass exp(-16), so no digits are
 *    lost, and after any silence, however long.
 *  - Crossings kept. A neuron's next crossing does not change while it evolves freely. It is kept as
 *    the key of QuadraticSolver.order_key in the frame (key x em: larger = earlier), recomputed only
 *    for the neurons an event changed, with a running maximum per block of 32 neurons. The spike
 *    time of the chosen neuron is solved from its state with QuadraticSolver.crossing's closed form.
 *  - Rows by their nonzeros. A row touching at least a quarter of a population is added to all of
 *    it and the population's keys recomputed in one vectorizable loop; sparser rows touch their
 *    nonzeros only.
 *
 * Everything is float64. Spike times agree with the vectorized loop's float64 run to rounding
 * (tests/test_native_queue.py: the same neurons in the same order, times within 1e-15 s).
 *
 * Plain C with no Python headers: loaded with ctypes (snncomp/targets/jax_event/_native.py).
 */
#include <math.h>
#include <stdint.h>

#include <stdlib.h>
#include <string.h>

#include "quadratic.h"

typedef struct {
    int32_t n;        /* neurons in the stage (populations concatenated) */
    int32_t npop;     /* populations (all spiking, each with a spike log) */
    int32_t nproj;    /* internal projections */
    int32_t n_ext;    /* external deliveries per sample */
    int32_t n_stop;   /* neurons whose first spikes end the run (0: no early stop) */
    int32_t log_total;/* sum of the populations' log sizes */
    int64_t limit;    /* iteration bound */
    int32_t n_rows;   /* rows of the external matrix */
    int32_t int_rows; /* source rows of all internal projections */
    const int32_t *pop_off, *pop_size, *pop_buf, *pop_log_off; /* [npop] */
    const int32_t *proj_src, *proj_tgt;                        /* [nproj] population indices */
    const int64_t *proj_w_off;                                 /* [nproj] offsets into proj_w */
    const int32_t *proj_row_off;                               /* [nproj] first source row in all rows */
    const int32_t *max_spikes;                                 /* [n] */
    const uint8_t *stop;                                       /* [n] */
} Config;

/* Per-sample inputs; a stride of 0 means shared by every sample. */
typedef struct {
    const double *ext_t;   int64_t ext_t_s;   /* [n_ext] sorted, +inf padded */
    const int32_t *ext_row; int64_t ext_row_s; /* [n_ext] rows of matrix */
    const double *matrix;  int64_t matrix_s;  /* [rows, n] */
    const double *proj_w;  int64_t proj_w_s;  /* per projection [src_size, tgt_size] */
    const double *proj_d;  int64_t proj_d_s;  /* [nproj] */
    const double *tau_m;   int64_t tau_m_s;   /* [npop] */
    const double *tau_s;   int64_t tau_s_s;   /* [npop] */
    const double *t_ref;   int64_t t_ref_s;   /* [npop] */
    const double *theta;   int64_t theta_s;   /* [n] */
    const double *u_reset; int64_t u_reset_s; /* [n] */
    const double *u_init;  int64_t u_init_s;  /* [n] */
    const double *i_init;  int64_t i_init_s;  /* [n] */
    const double *t_max;   int64_t t_max_s;   /* [1] */
} Inputs;

typedef struct {
    double *t;      /* [log_total] */
    int32_t *nb;    /* [log_total] */
    double *cur;    /* [log_total] */
    uint8_t *overflow; /* [npop] */
} Outputs;

/* order_key for a whole population at once, times em (the population's frame), -1 where the neuron may
 * not spike (allow = 0: refractory or out of spikes; its membrane is then not needed). The same
 * arithmetic as QuadraticSolver.order_key with its sanitized inputs where there is no crossing, and
 * no branch, so that the loop vectorizes (with -fno-trapping-math). */
WIDE static void order_keys(const double *restrict A, const double *restrict C, const double *restrict allow,
                       const double *restrict theta, double em, double es, double kk, long size,
                       double *restrict key, double *restrict scratch) {
    /* First the cheap test, vectorized: most neurons have no crossing ahead, and only the others need
     * the square root and the divisions. */
    double *restrict ok = scratch;
    for (long j = 0; j < size; j++) {
        double i0 = C[j] * es;
        double u0 = A[j] * em + kk * i0;
        double th = theta[j];
        double p = u0 + i0, al = allow[j];
        ok[j] = (al != 0.0 && i0 > 0.0 && i0 > u0 && p > 0.0 && p * p >= 4.0 * i0 * th && u0 < th) ? 1.0 : 0.0;
        key[j] = (al != 0.0 && u0 >= th) ? em : -1.0;
    }
    for (long j = 0; j < size; j++) {
        if (ok[j] == 0.0) continue;
        double i0 = C[j] * es;
        double u0 = A[j] * em + kk * i0;
        key[j] = order_key(u0, i0, theta[j]) * em;
    }
}

#define BLOCK 32 /* neurons per block of the running argmax */

typedef struct {
    double *A, *C, *key, *blk_key;
    double *free_; /* 1 free, 0 refractory */
    double *scratch; /* [n] */
    double *allow; /* 1 where the neuron may spike (free, spikes left): a double, so order_keys vectorizes */
    uint8_t *dirty, *blk_dirty, *pop_all; /* pop_all: every key of the population is stale */
    int64_t *pop_stamp; /* per population: the iteration all its keys were last recomputed */
    int32_t *nz_ext, *nz_ext_ptr, *nz_int, *nz_int_ptr; /* nonzero columns of each weight row */
    int32_t *count, *dirty_list, *owner, *blk_j, *blk_list, *blk_of, *pop_blk_off;
    /* per population: frame time T, em = exp(-(now - T) / tau_m), es = exp(-(now - T) / tau_s), K */
    double *frame, *em, *es, *kk, *iem, *ies, *best_t; /* iem = 1 / em, ies = 1 / es */
    int32_t *best_g;      /* per population: the neuron whose crossing time best_t is cached */
    int64_t *stamp;       /* per neuron: the iteration its key was last recomputed */
    int32_t *log_cnt, *rel_ptr, *proj_ptr;
} Work;

#define AT(p, s, b) ((p) + (s) * (b))

static inline void mark(Work *w, int32_t j, int32_t *n_dirty) {
    if (!w->dirty[j]) {
        w->dirty[j] = 1;
        w->dirty_list[(*n_dirty)++] = j;
    }
}

/* The largest key of each block (lowest index among ties), kept for the blocks whose keys changed. */
static void refresh_blocks(const Config *c, Work *w, int32_t n_blk) {
    for (int32_t q = 0; q < n_blk; q++) {
        int32_t b = w->blk_list[q];
        w->blk_dirty[b] = 0;
        int32_t p = w->blk_of[b]; /* its population */
        int32_t start = c->pop_off[p] + (b - w->pop_blk_off[p]) * BLOCK;
        int32_t end = start + BLOCK, pend = c->pop_off[p] + c->pop_size[p];
        if (end > pend) end = pend;
        double best = -1.0;
        int32_t jb = start;
        for (int32_t j = start; j < end; j++) {
            if (w->key[j] > best) {
                best = w->key[j];
                jb = j;
            }
        }
        w->blk_key[b] = best;
        w->blk_j[b] = jb;
    }
}

/* The state of neuron j (population p) now: I = C es, u = A em + K C es (or u_reset while held). */
static inline void state(const Work *w, int32_t p, int32_t j, double u_reset, double *u, double *i) {
    double cs = w->C[j] * w->es[p];
    *i = cs;
    *u = w->free_[j] != 0.0 ? w->A[j] * w->em[p] + w->kk[p] * cs : u_reset;
}

/* Add weight x to neuron j's current (population p): u is continuous, so A moves with C. */
static inline void add_current(Work *w, int32_t p, int32_t j, double x) {
    w->C[j] += x * w->ies[p];
    w->A[j] -= (w->kk[p] * w->iem[p]) * x;
}

/* Start free evolution from u = u_reset now (after a spike without refractory period, or a release). */
static inline void set_free(Work *w, int32_t p, int32_t j, double u_reset, int32_t max_spikes) {
    w->A[j] = (u_reset - w->kk[p] * w->C[j] * w->es[p]) * w->iem[p];
    w->free_[j] = 1.0;
    w->allow[j] = w->count[j] < max_spikes ? 1.0 : 0.0;
}

/* A row with nonzeros for at least a quarter of a population is added to all of it (vectorized), and
 * the population's keys are recomputed together; sparser rows touch their nonzeros only. */
static inline int dense(int32_t nnz, int32_t size) { return 4 * nnz >= size; }

WIDE static void add_row_dense(Work *w, int32_t p, const double *restrict row, int32_t off, int32_t size) {
    double *restrict A = w->A + off, *restrict C = w->C + off;
    const double ies = w->ies[p], a = w->kk[p] * w->iem[p];
    for (int32_t j = 0; j < size; j++) {
        C[j] += row[j] * ies;
        A[j] -= a * row[j];
    }
    w->pop_all[p] = 1;
}

/* Row s of internal projection k into its target population (its nonzero weights only). */
static inline void deliver_internal(const Config *c, Work *w, const double *proj_w, int32_t k, int32_t s,
                                    int32_t *n_dirty) {
    int32_t tgt = c->proj_tgt[k], tsize = c->pop_size[tgt], toff = c->pop_off[tgt];
    const double *row = proj_w + c->proj_w_off[k] + (int64_t)s * tsize;
    int32_t r = c->proj_row_off[k] + s;
    if (dense(w->nz_int_ptr[r + 1] - w->nz_int_ptr[r], tsize)) {
        add_row_dense(w, tgt, row, toff, tsize);
        return;
    }
    for (int32_t q = w->nz_int_ptr[r]; q < w->nz_int_ptr[r + 1]; q++) {
        int32_t j = w->nz_int[q];
        add_current(w, tgt, toff + j, row[j]);
        mark(w, toff + j, n_dirty);
    }
}

/* The nonzero columns of rows [rows, cols] (CSR without values): deliveries touch only those. */
static void nonzeros(const double *m, int64_t rows, int32_t cols, int32_t *idx, int32_t *ptr, int32_t base) {
    int32_t q = base;
    for (int64_t r = 0; r < rows; r++) {
        ptr[r] = q;
        for (int32_t j = 0; j < cols; j++)
            if (m[r * cols + j] != 0.0) idx[q++] = j;
    }
    ptr[rows] = q;
}

static void run_one(const Config *c, const Inputs *in, int64_t b, int first_of_chunk, const Outputs *out, Work *w) {
    const int32_t n = c->n, npop = c->npop, nproj = c->nproj;
    const double *ext_t = AT(in->ext_t, in->ext_t_s, b);
    const int32_t *ext_row = AT(in->ext_row, in->ext_row_s, b);
    const double *matrix = AT(in->matrix, in->matrix_s, b);
    const double *proj_w = AT(in->proj_w, in->proj_w_s, b);
    const double *proj_d = AT(in->proj_d, in->proj_d_s, b);
    const double *tau_m = AT(in->tau_m, in->tau_m_s, b);
    const double *tau_s = AT(in->tau_s, in->tau_s_s, b);
    const double *t_ref = AT(in->t_ref, in->t_ref_s, b);
    const double *theta = AT(in->theta, in->theta_s, b);
    const double *u_reset = AT(in->u_reset, in->u_reset_s, b);
    const double t_max = *AT(in->t_max, in->t_max_s, b);
    double *log_t = out->t + (int64_t)c->log_total * b;
    int32_t *log_nb = out->nb + (int64_t)c->log_total * b;
    double *log_cur = out->cur + (int64_t)c->log_total * b;
    uint8_t *overflow = out->overflow + (int64_t)npop * b;

    if (first_of_chunk || in->matrix_s) nonzeros(matrix, c->n_rows, n, w->nz_ext, w->nz_ext_ptr, 0);
    if (first_of_chunk || in->proj_w_s) {
        for (int32_t k = 0; k < nproj; k++) {
            int32_t r0 = c->proj_row_off[k], rows = c->pop_size[c->proj_src[k]];
            nonzeros(proj_w + c->proj_w_off[k], rows, c->pop_size[c->proj_tgt[k]], w->nz_int, w->nz_int_ptr + r0,
                     r0 ? w->nz_int_ptr[r0] : 0);
        }
    }
    for (int32_t k = 0; k < c->log_total; k++) {
        log_t[k] = INFINITY;
        log_nb[k] = -1;
        log_cur[k] = 0.0;
    }
    memset(overflow, 0, (size_t)npop);
    for (int32_t p = 0; p < npop; p++) {
        w->frame[p] = 0.0;
        w->em[p] = w->es[p] = w->iem[p] = w->ies[p] = 1.0;
        w->best_g[p] = -1;
        w->pop_all[p] = 0;
        w->pop_stamp[p] = -1;
        /* the particular solution u = K I of tau_m du/dt = -u + I with I ~ exp(-t / tau_s) */
        w->kk[p] = tau_s[p] / (tau_s[p] - tau_m[p]);
        w->log_cnt[p] = 0;
        w->rel_ptr[p] = 0;
    }
    const double *u_init = AT(in->u_init, in->u_init_s, b), *i_init = AT(in->i_init, in->i_init_s, b);
    int32_t n_dirty = 0, n_blk = 0;
    for (int32_t j = 0; j < n; j++) {
        int32_t p = w->owner[j];
        w->C[j] = i_init[j];
        w->A[j] = u_init[j] - w->kk[p] * i_init[j];
        w->free_[j] = 1.0;
        w->count[j] = 0;
        w->allow[j] = c->max_spikes[j] > 0 ? 1.0 : 0.0;
        w->dirty[j] = 0;
        w->key[j] = -1.0;
        w->stamp[j] = -1;
        mark(w, j, &n_dirty);
    }
    for (int32_t blk = 0; blk < w->pop_blk_off[npop]; blk++) {
        w->blk_key[blk] = -1.0;
        w->blk_j[blk] = c->pop_off[w->blk_of[blk]] + (blk - w->pop_blk_off[w->blk_of[blk]]) * BLOCK;
    }
    for (int32_t k = 0; k < nproj; k++) w->proj_ptr[k] = 0;
    double now = 0.0;
    int64_t ext_ptr = 0;
    int32_t first = 0;

    for (int64_t it = 0; it < c->limit; it++) {
        /* keys of the neurons the last event changed; a key is kept in its population's frame */
        for (int32_t p = 0; p < npop; p++) {
            if (!w->pop_all[p]) continue;
            const int32_t off = c->pop_off[p], size = c->pop_size[p];
            order_keys(w->A + off, w->C + off, w->allow + off, theta + off, w->em[p], w->es[p], w->kk[p], size,
                       w->key + off, w->scratch);
            for (int32_t blk = w->pop_blk_off[p]; blk < w->pop_blk_off[p + 1]; blk++) {
                if (!w->blk_dirty[blk]) {
                    w->blk_dirty[blk] = 1;
                    w->blk_list[n_blk++] = blk;
                }
            }
            w->pop_stamp[p] = it;
        }
        for (int32_t q = 0; q < n_dirty; q++) {
            int32_t j = w->dirty_list[q];
            int32_t p = w->owner[j];
            w->dirty[j] = 0;
            if (w->pop_all[p]) continue;
            double key = -1.0;
            if (w->allow[j] != 0.0) {
                double u, i;
                state(w, p, j, u_reset[j], &u, &i);
                key = order_key(u, i, theta[j]);
                key = key >= 0.0 ? key * w->em[p] : -1.0;
            }
            w->key[j] = key;
            w->stamp[j] = it;
            /* The block's maximum follows a rise at once; a fall of the block's best needs a rescan. */
            int32_t blk = w->pop_blk_off[p] + (j - c->pop_off[p]) / BLOCK;
            if (w->blk_dirty[blk]) continue;
            if (j == w->blk_j[blk]) {
                if (key >= w->blk_key[blk]) {
                    w->blk_key[blk] = key;
                } else {
                    w->blk_dirty[blk] = 1;
                    w->blk_list[n_blk++] = blk;
                }
            } else if (key > w->blk_key[blk] || (key == w->blk_key[blk] && j < w->blk_j[blk])) {
                w->blk_key[blk] = key;
                w->blk_j[blk] = j;
            }
        }
        n_dirty = 0;
        for (int32_t p = 0; p < npop; p++) w->pop_all[p] = 0;
        refresh_blocks(c, w, n_blk);
        n_blk = 0;

        /* candidates, in the order that breaks ties */
        int kind = -1; /* 0 ext, 1 internal, 2 spike, 3 release */
        int32_t which = -1, spike_j = -1;
        double t_ev = INFINITY;
        if (ext_ptr < c->n_ext && ext_t[ext_ptr] < t_ev) {
            t_ev = ext_t[ext_ptr];
            kind = 0;
        }
        for (int32_t k = 0; k < nproj; k++) {
            if (proj_d[k] == 0.0) continue;
            int32_t src = c->proj_src[k];
            if (w->proj_ptr[k] < w->log_cnt[src]) {
                double t = log_t[c->pop_log_off[src] + w->proj_ptr[k]] + proj_d[k];
                if (t < t_ev) {
                    t_ev = t;
                    kind = 1;
                    which = k;
                }
            }
        }
        for (int32_t p = 0; p < npop; p++) {
            double best = -0.5;
            int32_t g = -1;
            for (int32_t blk = w->pop_blk_off[p]; blk < w->pop_blk_off[p + 1]; blk++) {
                if (w->blk_key[blk] > best) {
                    best = w->blk_key[blk];
                    g = w->blk_j[blk];
                }
            }
            if (g < 0) continue;
            /* a crossing time does not change while the neuron evolves freely */
            if (g != w->best_g[p] || w->stamp[g] == it || w->pop_stamp[p] == it) {
                double u, i;
                state(w, p, g, u_reset[g], &u, &i);
                w->best_g[p] = g;
                w->best_t[p] = now + crossing(u, i, theta[g], tau_m[p]);
            }
            double t = w->best_t[p];
            if (t < t_ev) {
                t_ev = t;
                kind = 2;
                spike_j = g;
                which = p;
            }
        }
        for (int32_t p = 0; p < npop; p++) {
            if (!(t_ref[p] > 0.0) || w->rel_ptr[p] >= w->log_cnt[p]) continue;
            double t = log_t[c->pop_log_off[p] + w->rel_ptr[p]] + t_ref[p];
            if (t < t_ev) {
                t_ev = t;
                kind = 3;
                which = p;
            }
        }
        if (kind < 0 || !(t_ev < t_max)) break;

        /* Advance to t_ev: only the frames' decay factors move. A frame is moved to now before its
         * factors get small enough to cost digits (the states are rescaled, the keys too). */
        if (t_ev > now) {
            for (int32_t p = 0; p < npop; p++) {
                double since = t_ev - w->frame[p];
                double em = exp(-since / tau_m[p]), es = exp(-since / tau_s[p]);
                if (since > 16.0 * (tau_s[p] < tau_m[p] ? tau_s[p] : tau_m[p])) {
                    const int32_t off = c->pop_off[p], end = off + c->pop_size[p];
                    for (int32_t j = off; j < end; j++) {
                        w->A[j] *= em;
                        w->C[j] *= es;
                    }
                    /* Keys are recomputed in the new frame, not rescaled: after a long silence em may
                     * have underflowed to 0. */
                    w->pop_all[p] = 1;
                    w->frame[p] = t_ev;
                    em = es = 1.0;
                }
                w->em[p] = em;
                w->es[p] = es;
                w->iem[p] = 1.0 / em;
                w->ies[p] = 1.0 / es;
            }
            now = t_ev;
        }

        if (kind == 0) {
            int32_t r = ext_row[ext_ptr];
            const double *row = matrix + (int64_t)r * n;
            if (dense(w->nz_ext_ptr[r + 1] - w->nz_ext_ptr[r], n)) {
                for (int32_t p = 0; p < npop; p++) add_row_dense(w, p, row + c->pop_off[p], c->pop_off[p], c->pop_size[p]);
            } else {
                for (int32_t q = w->nz_ext_ptr[r]; q < w->nz_ext_ptr[r + 1]; q++) {
                    int32_t j = w->nz_ext[q];
                    add_current(w, w->owner[j], j, row[j]);
                    mark(w, j, &n_dirty);
                }
            }
            ext_ptr++;
        } else if (kind == 1) {
            int32_t k = which, src = c->proj_src[k];
            int32_t s = log_nb[c->pop_log_off[src] + w->proj_ptr[k]];
            deliver_internal(c, w, proj_w, k, s, &n_dirty);
            w->proj_ptr[k]++;
        } else if (kind == 2) {
            int32_t p = which, g = spike_j, local = g - c->pop_off[p];
            if (w->log_cnt[p] >= c->pop_buf[p]) {
                overflow[p] = 1;
                break;
            }
            int64_t slot = c->pop_log_off[p] + w->log_cnt[p];
            log_t[slot] = t_ev;
            log_nb[slot] = local;
            log_cur[slot] = w->C[g] * w->es[p];
            w->log_cnt[p]++;
            if (c->n_stop && c->stop[g] && w->count[g] == 0) first++;
            w->count[g]++;
            if (t_ref[p] > 0.0) { /* held at u_reset until its release */
                w->free_[g] = 0.0;
                w->allow[g] = 0.0;
            } else {
                set_free(w, p, g, u_reset[g], c->max_spikes[g]);
            }
            mark(w, g, &n_dirty);
            for (int32_t k = 0; k < nproj; k++) {
                if (c->proj_src[k] != p || proj_d[k] != 0.0) continue;
                deliver_internal(c, w, proj_w, k, local, &n_dirty);
                w->proj_ptr[k]++;
            }
            if (c->n_stop && first >= c->n_stop) break;
        } else {
            int32_t p = which;
            int32_t g = c->pop_off[p] + log_nb[c->pop_log_off[p] + w->rel_ptr[p]];
            w->rel_ptr[p]++;
            set_free(w, p, g, u_reset[g], c->max_spikes[g]);
            mark(w, g, &n_dirty);
        }
    }
}

/* The layout this library was built with: the loader compares it with its own, so that a library left
 * from an older checkout (pip install -e . not run again) is refused instead of misread. */
int64_t snncomp_event_queue_layout(void) {
    return (int64_t)sizeof(Config) * 1000000 + (int64_t)sizeof(Inputs) * 1000 + (int64_t)sizeof(Outputs);
}

/* Samples [b0, b1) of a batch. Returns 0, or -1 if memory ran out. */
int snncomp_event_queue(const Config *c, const Inputs *in, const Outputs *out, int64_t b0, int64_t b1) {
    const int32_t n = c->n, npop = c->npop;
    Work w;
    int32_t nblk = 0;
    for (int32_t p = 0; p < npop; p++) nblk += (c->pop_size[p] + BLOCK - 1) / BLOCK;
    void *block = calloc(1, (size_t)n * (7 * sizeof(double) + 2 + 3 * sizeof(int32_t)) +
                                (size_t)npop * (9 * sizeof(double) + 1 + 4 * sizeof(int32_t)) +
                                (size_t)nblk * (sizeof(double) + 1 + 3 * sizeof(int32_t)) +
                                (size_t)(c->nproj + 2) * sizeof(int32_t) + 64);
    if (!block) return -1;
    char *m = (char *)block; /* doubles first, then int32, then bytes: every array aligned */
    w.blk_key = (double *)m; m += (size_t)nblk * sizeof(double);
    w.A = (double *)m; m += (size_t)n * sizeof(double);
    w.C = (double *)m; m += (size_t)n * sizeof(double);
    w.key = (double *)m; m += (size_t)n * sizeof(double);
    w.frame = (double *)m; m += (size_t)npop * sizeof(double);
    w.em = (double *)m; m += (size_t)npop * sizeof(double);
    w.es = (double *)m; m += (size_t)npop * sizeof(double);
    w.kk = (double *)m; m += (size_t)npop * sizeof(double);
    w.iem = (double *)m; m += (size_t)npop * sizeof(double);
    w.ies = (double *)m; m += (size_t)npop * sizeof(double);
    w.best_t = (double *)m; m += (size_t)npop * sizeof(double);
    w.stamp = (int64_t *)m; m += (size_t)n * sizeof(int64_t);
    w.pop_stamp = (int64_t *)m; m += (size_t)npop * sizeof(int64_t);
    w.free_ = (double *)m; m += (size_t)n * sizeof(double);
    w.allow = (double *)m; m += (size_t)n * sizeof(double);
    w.scratch = (double *)m; m += (size_t)n * sizeof(double);
    w.blk_j = (int32_t *)m; m += (size_t)nblk * sizeof(int32_t);
    w.blk_list = (int32_t *)m; m += (size_t)nblk * sizeof(int32_t);
    w.blk_of = (int32_t *)m; m += (size_t)nblk * sizeof(int32_t);
    w.pop_blk_off = (int32_t *)m; m += (size_t)(npop + 1) * sizeof(int32_t);
    w.best_g = (int32_t *)m; m += (size_t)npop * sizeof(int32_t);
    w.count = (int32_t *)m; m += (size_t)n * sizeof(int32_t);
    w.dirty_list = (int32_t *)m; m += (size_t)n * sizeof(int32_t);
    w.owner = (int32_t *)m; m += (size_t)n * sizeof(int32_t);
    w.log_cnt = (int32_t *)m; m += (size_t)npop * sizeof(int32_t);
    w.rel_ptr = (int32_t *)m; m += (size_t)npop * sizeof(int32_t);
    w.proj_ptr = (int32_t *)m; m += (size_t)(c->nproj + 1) * sizeof(int32_t);
    w.pop_all = (uint8_t *)m; m += (size_t)npop;
    w.dirty = (uint8_t *)m; m += (size_t)n;
    w.blk_dirty = (uint8_t *)m;
    w.pop_blk_off[0] = 0;
    for (int32_t p = 0; p < npop; p++) {
        w.pop_blk_off[p + 1] = w.pop_blk_off[p] + (c->pop_size[p] + BLOCK - 1) / BLOCK;
        for (int32_t b = w.pop_blk_off[p]; b < w.pop_blk_off[p + 1]; b++) w.blk_of[b] = p;
    }
    for (int32_t p = 0; p < npop; p++)
        for (int32_t j = 0; j < c->pop_size[p]; j++) w.owner[c->pop_off[p] + j] = p;
    int64_t int_nz = 0;
    for (int32_t k = 0; k < c->nproj; k++) int_nz += (int64_t)c->pop_size[c->proj_src[k]] * c->pop_size[c->proj_tgt[k]];
    w.nz_ext = malloc(((size_t)c->n_rows * n + 1) * sizeof(int32_t));
    w.nz_ext_ptr = malloc(((size_t)c->n_rows + 1) * sizeof(int32_t));
    w.nz_int = malloc(((size_t)int_nz + 1) * sizeof(int32_t));
    w.nz_int_ptr = malloc(((size_t)c->int_rows + 1) * sizeof(int32_t));
    int ok = w.nz_ext && w.nz_ext_ptr && w.nz_int && w.nz_int_ptr;
    if (ok)
        for (int64_t b = b0; b < b1; b++) run_one(c, in, b, b == b0, out, &w);
    free(w.nz_ext);
    free(w.nz_ext_ptr);
    free(w.nz_int);
    free(w.nz_int_ptr);
    free(block);
    if (!ok) return -1;
    return 0;
}
