/*
 * XLA FFI handlers: the C kernels called from a jitted program as custom calls (jax.ffi.ffi_call), at
 * a few microseconds per call where jax.pure_callback costs ~150 us.
 *
 * Written against XLA's C API (xla/ffi/api/c_api.h, shipped in jaxlib's include directory; setup.py
 * finds it at build time) so that the library needs a C compiler only. A handler reads its buffers
 * from the call frame. Under jax.vmap (vmap_method="expand_dims") every operand carries the same
 * number of leading batch dimensions, each either the batch's size or 1 (shared): a sample's row of
 * an operand is found by broadcasting, so shared weights are neither copied nor converted per sample.
 * float32 operands are converted to float64 (the kernels compute in float64) and results rounded back.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include "layer.h"
#include "xla/ffi/api/c_api.h"

#define MAX_LEAD 8

#ifndef SNNCOMP_JAXLIB
#define SNNCOMP_JAXLIB "unknown"
#endif

/* The jaxlib version whose FFI header this library was built against (setup.py). */
const char *snncomp_ffi_jaxlib(void) { return SNNCOMP_JAXLIB; }

/* Whether the handlers split a batch over XLA's thread pool (the header had its API; setup.py). */
int snncomp_ffi_pool(void) {
#ifdef SNNCOMP_XLA_POOL
    return 1;
#else
    return 0;
#endif
}

typedef struct {
    XLA_FFI_Buffer *buf;
    int64_t lead[MAX_LEAD]; /* leading (batch) dimensions */
    int64_t row;            /* elements per sample */
} Operand;

typedef struct {
    int nlead;
    int64_t shape[MAX_LEAD]; /* the batch shape (broadcast of the operands' leading dimensions) */
    int64_t size;
} Batch;

static XLA_FFI_Error *fail(const XLA_FFI_CallFrame *cf, const char *msg) {
    XLA_FFI_Error_Create_Args args;
    memset(&args, 0, sizeof(args));
    args.struct_size = XLA_FFI_Error_Create_Args_STRUCT_SIZE;
    args.message = msg;
    args.errc = XLA_FFI_Error_Code_INVALID_ARGUMENT;
    return cf->api->XLA_FFI_Error_Create(&args);
}

/* Answers XLA's metadata query (the API version this handler was built against). Returns 1 if the
 * call was that query or not the execution stage: nothing else to do. */
static int not_execute(XLA_FFI_CallFrame *cf) {
    for (XLA_FFI_Extension_Base *ext = cf->extension_start; ext; ext = ext->next) {
        if (ext->type == XLA_FFI_Extension_Metadata) {
            XLA_FFI_Metadata *md = ((XLA_FFI_Metadata_Extension *)ext)->metadata;
            md->api_version.major_version = XLA_FFI_API_MAJOR;
            md->api_version.minor_version = XLA_FFI_API_MINOR;
            md->traits = 0;
            return 1;
        }
    }
    return cf->stage != XLA_FFI_ExecutionStage_EXECUTE;
}

/* Reads `count` buffers (operands or results) whose trailing `core[k]` dimensions are one sample's. */
static const char *operands(void **raw, int64_t have, int count, const int *core, Operand *op, Batch *batch,
                            int first) {
    if (have != count) return "snncomp FFI: unexpected number of operands or results";
    for (int k = 0; k < count; k++) {
        XLA_FFI_Buffer *b = (XLA_FFI_Buffer *)raw[k];
        int nlead = (int)b->rank - core[k];
        if (nlead < 0 || nlead > MAX_LEAD) return "snncomp FFI: operand of unexpected rank";
        if (first && k == 0) {
            batch->nlead = nlead;
            for (int d = 0; d < nlead; d++) batch->shape[d] = 1;
        }
        if (nlead != batch->nlead) return "snncomp FFI: operands with different batch ranks";
        op[k].buf = b;
        op[k].row = 1;
        for (int d = 0; d < (int)b->rank; d++) {
            if (d < nlead) {
                op[k].lead[d] = b->dims[d];
                if (b->dims[d] != 1) {
                    if (batch->shape[d] != 1 && batch->shape[d] != b->dims[d])
                        return "snncomp FFI: batch dimensions do not broadcast";
                    batch->shape[d] = b->dims[d];
                }
            } else {
                op[k].row *= b->dims[d];
            }
        }
    }
    return NULL;
}

/* The row of operand `op` that sample `s` (flat index into the batch shape) reads. */
static int64_t row_of(const Operand *op, const Batch *batch, int64_t s) {
    int64_t r = 0, stride = 1;
    for (int d = batch->nlead - 1; d >= 0; d--) {
        int64_t i = s % batch->shape[d];
        s /= batch->shape[d];
        if (op->lead[d] != 1) r += i * stride;
        stride *= op->lead[d];
    }
    return r;
}

/* A float operand's row as float64: the data itself, or converted into `scratch` (kept while the row
 * stays the same: `*cached` is the row converted last, -1 for none). */
static const double *f64_row(const Operand *op, int64_t r, double *scratch, int64_t *cached) {
    if (op->buf->dtype == XLA_FFI_DataType_F64) return (const double *)op->buf->data + r * op->row;
    if (*cached != r) {
        const float *x = (const float *)op->buf->data + r * op->row;
        for (int64_t j = 0; j < op->row; j++) scratch[j] = (double)x[j];
        *cached = r;
    }
    return scratch;
}

static int is_float(const Operand *op) {
    return op->buf->dtype == XLA_FFI_DataType_F32 || op->buf->dtype == XLA_FFI_DataType_F64;
}

/* How many threads a call may use: SNNCOMP_NATIVE_THREADS, else the CPUs online, at most 16. */
static int max_threads(void) {
    const char *env = getenv("SNNCOMP_NATIVE_THREADS");
    long k = env ? strtol(env, NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);
    return k < 1 ? 1 : (k > 16 ? 16 : (int)k);
}

/* Runs job(ctx, s0, s1) over samples [0, size) split into `threads` contiguous chunks (the calling
 * thread takes the last). Returns the first nonzero code. */
typedef int (*Job)(void *ctx, int64_t s0, int64_t s1);
typedef struct {
    Job job;
    void *ctx;
    int64_t s0, s1;
    int code;
} Chunk;

static void *run_chunk(void *p) {
    Chunk *c = (Chunk *)p;
    c->code = c->job(c->ctx, c->s0, c->s1);
    return NULL;
}

static int parallel(Job job, void *ctx, int64_t size, int threads) {
    if (threads > size) threads = (int)size;
    if (threads <= 1) return job(ctx, 0, size);
    Chunk chunk[16];
    pthread_t tid[16];
    int started[16] = {0}, code = 0;
    for (int k = 0; k < threads; k++) {
        chunk[k].job = job;
        chunk[k].ctx = ctx;
        chunk[k].s0 = size * k / threads;
        chunk[k].s1 = size * (k + 1) / threads;
        chunk[k].code = 0;
    }
    for (int k = 0; k + 1 < threads; k++) started[k] = pthread_create(&tid[k], NULL, run_chunk, &chunk[k]) == 0;
    run_chunk(&chunk[threads - 1]);
    for (int k = 0; k + 1 < threads; k++) {
        if (started[k])
            pthread_join(tid[k], NULL);
        else
            run_chunk(&chunk[k]); /* no thread: run it here */
    }
    for (int k = 0; k < threads; k++)
        if (chunk[k].code) code = chunk[k].code;
    return code;
}

/* The same on XLA's own thread pool (XLA_FFI_ThreadPool_Schedule: on the CPU, the pool that runs the
 * program's other work), so that no extra threads compete with XLA's for the cores, and none is started
 * per call. The batch is cut into more chunks than threads; whoever runs (the caller, and the tasks the
 * pool starts, maybe late, maybe never in parallel) claims the next chunk until none is left, so the
 * caller never waits for a task that has not started: it finishes what no task claimed and waits only
 * for chunks in progress. The shared record lives on the heap until the last task has let go of it. */
#ifdef SNNCOMP_XLA_POOL
typedef struct {
    Job job;
    void *ctx;
    int64_t size;
    int chunks, next, done, code, refs;
} Shared;

static void shared_release(Shared *sh) {
    if (__atomic_sub_fetch(&sh->refs, 1, __ATOMIC_ACQ_REL) == 0) free(sh);
}

static void shared_work(Shared *sh) {
    for (;;) {
        int k = __atomic_fetch_add(&sh->next, 1, __ATOMIC_ACQ_REL);
        if (k >= sh->chunks) return;
        int code = sh->job(sh->ctx, sh->size * k / sh->chunks, sh->size * (k + 1) / sh->chunks);
        if (code) __atomic_store_n(&sh->code, code, __ATOMIC_RELAXED);
        __atomic_add_fetch(&sh->done, 1, __ATOMIC_ACQ_REL);
    }
}

static void shared_task(void *data) {
    shared_work((Shared *)data);
    shared_release((Shared *)data);
}

#endif

static int parallel_xla(XLA_FFI_CallFrame *cf, Job job, void *ctx, int64_t size, int threads) {
    if (threads > size) threads = (int)size;
    if (threads <= 1) return job(ctx, 0, size);
#ifndef SNNCOMP_XLA_POOL
    (void)cf;
    return parallel(job, ctx, size, threads);
#else
    const char *env = getenv("SNNCOMP_FFI_POOL");
    if (env && env[0] == '0') return parallel(job, ctx, size, threads);
    Shared *sh = malloc(sizeof(Shared));
    if (!sh) return parallel(job, ctx, size, threads);
    sh->job = job;
    sh->ctx = ctx;
    sh->size = size;
    sh->chunks = (int)(size < 4 * threads ? size : 4 * threads);
    sh->next = sh->done = sh->code = 0;
    sh->refs = threads; /* the caller and threads - 1 tasks */
    for (int k = 1; k < threads; k++) {
        XLA_FFI_ThreadPool_Schedule_Args args;
        memset(&args, 0, sizeof(args));
        args.struct_size = XLA_FFI_ThreadPool_Schedule_Args_STRUCT_SIZE;
        args.ctx = cf->ctx;
        args.task = shared_task;
        args.data = sh;
        XLA_FFI_Error *err = cf->api->XLA_FFI_ThreadPool_Schedule(&args);
        if (err) { /* no pool: the tasks not scheduled will not run */
            XLA_FFI_Error_Destroy_Args d;
            memset(&d, 0, sizeof(d));
            d.struct_size = XLA_FFI_Error_Destroy_Args_STRUCT_SIZE;
            d.error = err;
            cf->api->XLA_FFI_Error_Destroy(&d);
            __atomic_sub_fetch(&sh->refs, threads - k, __ATOMIC_ACQ_REL);
            break;
        }
    }
    shared_work(sh);
    while (__atomic_load_n(&sh->done, __ATOMIC_ACQUIRE) < sh->chunks) sched_yield();
    int code = __atomic_load_n(&sh->code, __ATOMIC_ACQUIRE);
    shared_release(sh);
    return code;
#endif
}

/* Where a handler writes sample s's row of result `op`: the buffer itself (float64) or `scratch`. */
static double *result_row(const Operand *op, int64_t s, double *scratch) {
    return op->buf->dtype == XLA_FFI_DataType_F64 ? (double *)op->buf->data + s * op->row : scratch;
}

/* Rounds a row written to `scratch` into a float32 result. */
static void commit_row(const Operand *op, int64_t s, const double *scratch) {
    if (op->buf->dtype == XLA_FFI_DataType_F64) return;
    float *x = (float *)op->buf->data + s * op->row;
    for (int64_t j = 0; j < op->row; j++) x[j] = (float)scratch[j];
}

/* Reads the handler's operands and results and checks their types: int32 where `ints` says so, float
 * otherwise. Fills the batch and returns NULL, or an error message. */
static const char *frame(XLA_FFI_CallFrame *cf, int nin, const int *core_in, const int *int_in, Operand *in,
                         int nout, const int *core_out, const int *int_out, Operand *out, Batch *batch) {
    Batch out_batch;
    const char *err = operands(cf->args.args, cf->args.size, nin, core_in, in, batch, 1);
    if (!err) err = operands(cf->rets.rets, cf->rets.size, nout, core_out, out, &out_batch, 1);
    if (err) return err;
    for (int k = 0; k < nin; k++)
        if (int_in[k] ? in[k].buf->dtype != XLA_FFI_DataType_S32 : !is_float(&in[k]))
            return "snncomp FFI: operand of unexpected type";
    for (int k = 0; k < nout; k++)
        if (int_out[k] ? out[k].buf->dtype != XLA_FFI_DataType_S32 : !is_float(&out[k]))
            return "snncomp FFI: result of unexpected type";
    batch->size = 1;
    for (int d = 0; d < batch->nlead; d++) batch->size *= batch->shape[d];
    int64_t out_size = 1;
    for (int d = 0; d < out_batch.nlead; d++) out_size *= out_batch.shape[d];
    if (out_size != batch->size) return "snncomp FFI: results of unexpected batch shape";
    return NULL;
}

/* Per-thread scratch: one float64 row per float operand and result, then the kernel's work. */
typedef struct {
    char *mem;
    double *in[16], *out[8];
    int64_t cache[16];
    void *work;
} Scratch;

static int scratch_alloc(Scratch *sc, const Operand *in, int nin, const Operand *out, int nout, size_t work) {
    size_t floats = 0;
    for (int k = 0; k < nin; k++) floats += (size_t)in[k].row;
    for (int k = 0; k < nout; k++) floats += (size_t)out[k].row;
    sc->mem = malloc(floats * sizeof(double) + work + 64);
    if (!sc->mem) return 1;
    double *p = (double *)sc->mem;
    for (int k = 0; k < nin; k++) {
        sc->in[k] = p;
        sc->cache[k] = -1;
        p += in[k].row;
    }
    for (int k = 0; k < nout; k++) {
        sc->out[k] = p;
        p += out[k].row;
    }
    sc->work = (void *)(((uintptr_t)p + 15) & ~(uintptr_t)15);
    return 0;
}

static const double *frow(Scratch *sc, const Operand *in, const Batch *batch, int k, int64_t s) {
    return f64_row(&in[k], row_of(&in[k], batch, s), sc->in[k], &sc->cache[k]);
}

static const int32_t *irow(const Operand *in, const Batch *batch, int k, int64_t s) {
    return (const int32_t *)in[k].buf->data + row_of(&in[k], batch, s) * in[k].row;
}

typedef struct {
    Operand in[7], out[3];
    Batch batch;
    LayerShape sh;
} LayerCall;

static int layer_chunk(void *ctx, int64_t s0, int64_t s1) {
    const LayerCall *lc = (const LayerCall *)ctx;
    const Operand *in = lc->in, *out = lc->out;
    const Batch *batch = &lc->batch;
    const LayerShape sh = lc->sh;
    size_t floats = (size_t)sh.E + (size_t)sh.R * sh.n + 3 * (size_t)sh.n + 4 + 2 * (size_t)sh.n;
    char *mem = malloc(floats * sizeof(double) + snncomp_layer_work(&sh) + 64);
    if (!mem) return 1;
    double *s_times = (double *)mem, *s_matrix = s_times + sh.E, *s_theta = s_matrix + (size_t)sh.R * sh.n;
    double *s_init = s_theta + sh.n, *s_consts = s_init + 2 * (size_t)sh.n, *o_t = s_consts + 4;
    double *o_cur = o_t + sh.n;
    void *work = (void *)(mem + floats * sizeof(double) + 8);
    int64_t cache[7] = {-1, -1, -1, -1, -1, -1, -1};
    int f64 = out[0].buf->dtype == XLA_FFI_DataType_F64;
    for (int64_t s = s0; s < s1; s++) {
        const double *times = f64_row(&in[0], row_of(&in[0], batch, s), s_times, &cache[0]);
        const int32_t *rows = (const int32_t *)in[1].buf->data + row_of(&in[1], batch, s) * in[1].row;
        const double *matrix = f64_row(&in[2], row_of(&in[2], batch, s), s_matrix, &cache[2]);
        const double *theta = f64_row(&in[3], row_of(&in[3], batch, s), s_theta, &cache[3]);
        const double *init = f64_row(&in[4], row_of(&in[4], batch, s), s_init, &cache[4]);
        const double *consts = f64_row(&in[5], row_of(&in[5], batch, s), s_consts, &cache[5]);
        int32_t *nb = (int32_t *)out[1].buf->data + s * sh.n;
        if (f64) {
            double *t = (double *)out[0].buf->data + s * sh.n, *cur = (double *)out[2].buf->data + s * sh.n;
            snncomp_layer_one(&sh, times, rows, matrix, theta, init, consts, t, nb, cur, work);
        } else {
            float *t = (float *)out[0].buf->data + s * sh.n, *cur = (float *)out[2].buf->data + s * sh.n;
            snncomp_layer_one(&sh, times, rows, matrix, theta, init, consts, o_t, nb, o_cur, work);
            for (int32_t j = 0; j < sh.n; j++) {
                t[j] = (float)o_t[j];
                cur[j] = (float)o_cur[j];
            }
        }
    }
    free(mem);
    return 0;
}

/* The layer-parallel kernel (layer.c). Operands: times [E], rows [E] (int32), matrix [R, n], theta [n],
 * init [2, n], consts [4] (tau_mem, tau_syn, delta, t_max), flags [2] (int32: has_init, sort); results: times [n],
 * neurons [n] (int32), current [n]. */
XLA_FFI_Error *snncomp_layer_ffi(XLA_FFI_CallFrame *cf) {
    if (not_execute(cf)) return NULL;
    static const int core_in[7] = {1, 1, 2, 1, 2, 1, 1}, int_in[7] = {0, 1, 0, 0, 0, 0, 1};
    static const int core_out[3] = {1, 1, 1}, int_out[3] = {0, 1, 0};
    LayerCall lc;
    const char *err = frame(cf, 7, core_in, int_in, lc.in, 3, core_out, int_out, lc.out, &lc.batch);
    if (err) return fail(cf, err);
    LayerShape *sh = &lc.sh;
    sh->E = (int32_t)lc.in[0].row;
    sh->n = (int32_t)lc.in[3].row;
    sh->R = sh->n > 0 ? (int32_t)(lc.in[2].row / sh->n) : 0;
    if (lc.in[6].row != 2) return fail(cf, "snncomp FFI: layer flags of unexpected shape");
    sh->has_init = ((const int32_t *)lc.in[6].buf->data)[0];
    sh->sort = ((const int32_t *)lc.in[6].buf->data)[1];
    if (lc.out[0].row != sh->n) return fail(cf, "snncomp FFI: layer results of unexpected shape");
    /* A thread costs ~20 us to start: worth it from about that much work per thread. */
    double work = (double)lc.batch.size * (sh->E + 2) * (sh->n + 8);
    int threads = work < 40000.0 ? 1 : max_threads();
    if (parallel_xla(cf, layer_chunk, &lc, lc.batch.size, threads)) return fail(cf, "snncomp FFI: out of memory");
    return NULL;
}

typedef struct {
    Operand in[12], out[5];
    Batch batch;
    RecShape sh;
} RecCall;

static int rec_chunk(void *ctx, int64_t s0, int64_t s1) {
    const RecCall *rc = (const RecCall *)ctx;
    const Operand *in = rc->in, *out = rc->out;
    const Batch *b = &rc->batch;
    Scratch sc;
    if (scratch_alloc(&sc, in, 10, out, 3, snncomp_rec_work(&rc->sh))) return 1;
    for (int64_t s = s0; s < s1; s++) {
        double *t = result_row(&out[0], s, sc.out[0]), *cur = result_row(&out[2], s, sc.out[2]);
        int32_t *nb = (int32_t *)out[1].buf->data + s * out[1].row;
        snncomp_rec_one(&rc->sh, frow(&sc, in, b, 0, s), irow(in, b, 1, s), frow(&sc, in, b, 2, s),
                        frow(&sc, in, b, 3, s), frow(&sc, in, b, 4, s), frow(&sc, in, b, 5, s),
                        frow(&sc, in, b, 6, s), frow(&sc, in, b, 7, s), irow(in, b, 9, s), t, nb, cur, sc.work);
        commit_row(&out[0], s, t);
        commit_row(&out[2], s, cur);
    }
    free(sc.mem);
    return 0;
}

/* The single-spike kernel (recurrent.c). Operands: times [E], rows [E] (int32), matrix [R, n], wrec
 * [P, n, n], delays [P], theta [n], init [2, n], consts [4] (tau_mem, tau_syn, delta, t_max), flags [2]
 * (int32: has_init, sort), layout [npop + 1 + n] (int32: population offsets, early-stop flags); results:
 * times [n], neurons [n] (int32), current [n]. */
XLA_FFI_Error *snncomp_rec_ffi(XLA_FFI_CallFrame *cf) {
    if (not_execute(cf)) return NULL;
    static const int core_in[10] = {1, 1, 2, 3, 1, 1, 2, 1, 1, 1}, int_in[10] = {0, 1, 0, 0, 0, 0, 0, 0, 1, 1};
    static const int core_out[3] = {1, 1, 1}, int_out[3] = {0, 1, 0};
    RecCall rc;
    const char *err = frame(cf, 10, core_in, int_in, rc.in, 3, core_out, int_out, rc.out, &rc.batch);
    if (err) return fail(cf, err);
    RecShape *sh = &rc.sh;
    sh->E = (int32_t)rc.in[0].row;
    sh->n = (int32_t)rc.in[5].row;
    sh->R = sh->n > 0 ? (int32_t)(rc.in[2].row / sh->n) : 0;
    sh->P = (int32_t)rc.in[4].row;
    sh->npop = (int32_t)(rc.in[9].row - sh->n - 1);
    if (rc.in[8].row != 2 || rc.in[7].row != 4 || rc.in[3].row != (int64_t)sh->P * sh->n * sh->n ||
        rc.out[0].row != sh->n || rc.in[6].row != 2 * (int64_t)sh->n || sh->npop < 1)
        return fail(cf, "snncomp FFI: recurrent operands of unexpected shape");
    sh->has_init = ((const int32_t *)rc.in[8].buf->data)[0];
    sh->sort = ((const int32_t *)rc.in[8].buf->data)[1];
    double work = (double)rc.batch.size * (sh->E + sh->n + 2) * (sh->n + 8);
    int threads = work < 40000.0 ? 1 : max_threads();
    if (parallel_xla(cf, rec_chunk, &rc, rc.batch.size, threads)) return fail(cf, "snncomp FFI: out of memory");
    return NULL;
}

static int rec_grad_chunk(void *ctx, int64_t s0, int64_t s1) {
    const RecCall *rc = (const RecCall *)ctx;
    const Operand *in = rc->in, *out = rc->out;
    const Batch *b = &rc->batch;
    Scratch sc;
    if (scratch_alloc(&sc, in, 12, out, 5, snncomp_rec_grad_work(&rc->sh))) return 1;
    for (int64_t s = s0; s < s1; s++) {
        double *res[5];
        for (int k = 0; k < 5; k++) res[k] = result_row(&out[k], s, sc.out[k]);
        snncomp_rec_grad_one(&rc->sh, frow(&sc, in, b, 0, s), irow(in, b, 1, s), frow(&sc, in, b, 2, s),
                             frow(&sc, in, b, 3, s), frow(&sc, in, b, 4, s), irow(in, b, 5, s),
                             frow(&sc, in, b, 6, s), frow(&sc, in, b, 7, s), frow(&sc, in, b, 8, s),
                             frow(&sc, in, b, 9, s), frow(&sc, in, b, 10, s), irow(in, b, 11, s), res[0], res[1],
                             res[2], res[3], res[4], sc.work);
        for (int k = 0; k < 5; k++) commit_row(&out[k], s, res[k]);
    }
    free(sc.mem);
    return 0;
}

/* Its EventProp backward (recurrent.c). Operands: spike times [n], neurons [n] (int32), currents [n],
 * cotangents [n] (laid out as the forward wrote them), then times, rows, matrix, wrec, delays as the forward's, theta and slope floors [2, n],
 * consts [3] (tau_mem, 0, t_max), layout as the forward's; results: lam [n], d_matrix [R, n], d_times [E], d_wrec [P, n, n], d_delay [P]. */
XLA_FFI_Error *snncomp_rec_grad_ffi(XLA_FFI_CallFrame *cf) {
    if (not_execute(cf)) return NULL;
    static const int core_in[12] = {1, 1, 1, 1, 1, 1, 2, 3, 1, 2, 1, 1};
    static const int int_in[12] = {0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1};
    static const int core_out[5] = {1, 2, 1, 3, 1}, int_out[5] = {0, 0, 0, 0, 0};
    RecCall rc;
    const char *err = frame(cf, 12, core_in, int_in, rc.in, 5, core_out, int_out, rc.out, &rc.batch);
    if (err) return fail(cf, err);
    RecShape *sh = &rc.sh;
    sh->E = (int32_t)rc.in[4].row;
    sh->n = (int32_t)(rc.in[9].row / 2);
    sh->npop = (int32_t)(rc.in[11].row - sh->n - 1);
    sh->R = sh->n > 0 ? (int32_t)(rc.in[6].row / sh->n) : 0;
    sh->P = (int32_t)rc.in[8].row;
    sh->has_init = 0;
    sh->sort = 0;
    if (rc.in[10].row != 3 || rc.in[7].row != (int64_t)sh->P * sh->n * sh->n || rc.out[0].row != sh->n ||
        rc.out[1].row != rc.in[6].row || rc.out[2].row != sh->E || rc.out[3].row != rc.in[7].row ||
        rc.out[4].row != sh->P || rc.in[0].row != sh->n || sh->npop < 1)
        return fail(cf, "snncomp FFI: recurrent gradient operands of unexpected shape");
    double work = (double)rc.batch.size * (sh->n + 1) * (sh->n + sh->E + 1) * (sh->P + 1);
    int threads = work < 40000.0 ? 1 : max_threads();
    if (parallel_xla(cf, rec_grad_chunk, &rc, rc.batch.size, threads)) return fail(cf, "snncomp FFI: out of memory");
    return NULL;
}
