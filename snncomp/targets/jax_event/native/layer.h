/* The layer-parallel kernel (layer.c); called from ffi.c. */
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

#endif
