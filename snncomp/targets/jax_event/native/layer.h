/* The layer-parallel kernel (layer.c) and the recurrent first-spike kernels (recurrent.c); called from ffi.c. */
#ifndef SNNCOMP_LAYER_H
#define SNNCOMP_LAYER_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int32_t n;        /* neurons */
    int32_t E;        /* deliveries (sorted, +inf padded) */
    int32_t R;        /* rows of the weight matrix; the last is zeros */
    int32_t has_init; /* the sweep starts at t = 0 (nonzero initial states) */
    int32_t sort;     /* the deliveries are not in time order: sort them first (stably) */
} LayerShape;

/* Bytes of working memory snncomp_layer_one needs. */
size_t snncomp_layer_work(const LayerShape *sh);

/* One sample: times [E] (sorted unless sh->sort), rows [E] into matrix [R, n], theta [n], init [2, n] (u, I at t = 0), consts
 * (tau_mem, tau_syn, delta, t_max). Writes the first spikes sorted by time: out_t [n] (+inf after the
 * last), out_nb [n] (-1 there), out_cur [n] (the synaptic current at each spike, 0 there). */
void snncomp_layer_one(const LayerShape *sh, const double *times, const int32_t *rows, const double *matrix,
                       const double *theta, const double *init, const double *consts, double *out_t,
                       int32_t *out_nb, double *out_cur, void *work);

/* Stable insertion sort of (t, r)[0..m) by t (layer.c). */
void snncomp_sort_deliveries(double *t, int32_t *r, int32_t m);

typedef struct {
    int32_t n;        /* neurons */
    int32_t E;        /* external deliveries (+inf padded) */
    int32_t R;        /* rows of the external weight matrix; the last is zeros */
    int32_t P;        /* internal projections (rows [n, n] over the stage's neurons) */
    int32_t npop;     /* populations in the stage (their neurons concatenated) */
    int32_t has_init; /* nonzero initial states */
    int32_t sort;     /* the external deliveries are not in time order: sort them first (stably) */
} RecShape;

/* Bytes of working memory snncomp_rec_one / snncomp_rec_grad_one need. */
size_t snncomp_rec_work(const RecShape *sh);
size_t snncomp_rec_grad_work(const RecShape *sh);

/* One sample of an event-queue stage of max_spikes = 1 populations sharing tau_mem and tau_syn: times [E],
 * rows [E] into matrix [R, n], wrec [P, n, n] (source, target), delays [P], theta [n], init [2, n], consts
 * (tau_mem, tau_syn, delta, t_max), layout (int32: the populations' offsets [npop + 1], then [n] flags of
 * the neurons whose first spikes end the run, all 0 for no early stop). Writes each population's spikes
 * in time order at its offset (local indices, padded with +inf / -1 / 0), as snncomp_layer_one does. */
void snncomp_rec_one(const RecShape *sh, const double *times, const int32_t *rows, const double *matrix,
                     const double *wrec, const double *delays, const double *theta, const double *init,
                     const double *consts, const int32_t *layout, double *out_t, int32_t *out_nb,
                     double *out_cur, void *work);

/* Its EventProp backward from the n spike slots (sp_t, sp_nb, sp_cur laid out as the forward wrote them) and their
 * cotangents ct [S]; theta [2, n] (thresholds, then guarded_slope's floors); consts (tau_mem, unused, t_max).
 * Writes lam [n] (the membrane adjoint just
 * before each neuron's spike, 0 without one), d_matrix [R, n], d_times [E], d_wrec [P, n, n], d_delay [P]. */
void snncomp_rec_grad_one(const RecShape *sh, const double *sp_t, const int32_t *sp_nb,
                          const double *sp_cur, const double *ct, const double *times, const int32_t *rows,
                          const double *matrix, const double *wrec, const double *delays, const double *theta,
                          const double *consts, const int32_t *layout, double *lam, double *d_matrix, double *d_times, double *d_wrec,
                          double *d_delay, void *work);

#endif
