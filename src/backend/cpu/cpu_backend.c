/* The CPU backend: construction, memory, and the op table. */
#include "backend/cpu/cpu_backend.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "virnucpro/half.h"

/* 64-byte aligned float/int storage. */
static void *alloc_aligned(size_t bytes)
{
    void *p = NULL;
    if (bytes == 0)
        bytes = 64;
    if (posix_memalign(&p, 64, bytes) != 0)
        return NULL;
    return p;
}

vnp_code vnp_cpu_reserve_scratch(vnp_cpu *c, size_t n, vnp_error *err)
{
    for (int i = 0; i < c->nthreads; i++) {
        if (c->scratch_cap[i] >= n)
            continue;
        float *p = alloc_aligned(n * sizeof(float));
        if (!p)
            return vnp_fail(err, VNP_ENOMEM,
                            "out of memory for %zu MiB of CPU scratch space; use smaller batches",
                            n * sizeof(float) >> 20);
        free(c->scratch[i]);
        c->scratch[i] = p;
        c->scratch_cap[i] = n;
    }
    return VNP_OK;
}

vnp_code vnp_cpu_reserve(float **p, size_t *cap, size_t n, const char *what, vnp_error *err)
{
    if (*cap >= n)
        return VNP_OK;
    float *q = alloc_aligned(n * sizeof(float));
    if (!q)
        return vnp_fail(err, VNP_ENOMEM, "out of memory for %zu MiB of %s on the CPU",
                        n * sizeof(float) >> 20, what);
    free(*p);
    *p = q;
    *cap = n;
    return VNP_OK;
}

/* A buffer of n values of dt (F32 or I32). */
static vnp_code alloc_buf(size_t n, vnp_dtype dt, vnp_buf *out, vnp_error *err)
{
    out->ptr = alloc_aligned(n * vnp_dtype_size(dt));
    out->dtype = dt;
    out->n = n;
    if (!out->ptr)
        return vnp_fail(err, VNP_ENOMEM, "out of memory allocating %zu MiB on the CPU",
                        n * vnp_dtype_size(dt) >> 20);
    return VNP_OK;
}

static vnp_code alloc_f32(size_t n, vnp_buf *out, vnp_error *err)
{
    return alloc_buf(n, VNP_DT_F32, out, err);
}

static vnp_code cpu_alloc_act(vnp_backend *be, size_t n, vnp_buf *out, vnp_error *err)
{
    return alloc_f32(n, out, err);
}

static vnp_code cpu_alloc_f32(vnp_backend *be, size_t n, vnp_buf *out, vnp_error *err)
{
    return alloc_f32(n, out, err);
}

static vnp_code cpu_alloc_i32(vnp_backend *be, size_t n, vnp_buf *out, vnp_error *err)
{
    return alloc_buf(n, VNP_DT_I32, out, err);
}

/* Everything is F32 here; an emulated precision rounds GEMM weights and tables at upload
 * (a GEMM's bias is rounded where the GEMM runs: cpu_linear.c). */
static vnp_code cpu_upload_weight(vnp_backend *be, const vnp_tensor *t, vnp_weight_kind kind,
                                  vnp_buf *out, vnp_error *err)
{
    size_t n = (size_t)vnp_tensor_numel(t);
    vnp_code rc = alloc_f32(n, out, err);
    if (rc)
        return rc;
    rc = vnp_tensor_to_f32(t, out->ptr, err);
    vnp_cpu *c = vnp_cpu_of(be);
    if (!rc && c->emu && (kind == VNP_WEIGHT_GEMM || kind == VNP_WEIGHT_TABLE)) {
        size_t rows = t->ndim >= 1 && t->shape[0] > 0 ? (size_t)t->shape[0] : 1;
        rc = vnp_cpu_emulate_weight(c, kind, out, rows, n / rows, err);
        if (rc)
            vnp_error_prefix(err, "tensor '%s': ", t->name ? t->name : "?");
    }
    if (rc) {
        free(out->ptr);
        out->ptr = NULL;
    }
    return rc;
}

static vnp_code cpu_upload_f32(vnp_backend *be, const float *src, size_t n, vnp_buf *out,
                               vnp_error *err)
{
    vnp_code rc = alloc_f32(n, out, err);
    if (rc)
        return rc;
    memcpy(out->ptr, src, n * sizeof(float));
    return VNP_OK;
}

static vnp_code cpu_upload_i32(vnp_backend *be, const int32_t *src, size_t n, vnp_buf *dst,
                               vnp_error *err)
{
    if (dst->dtype != VNP_DT_I32 || dst->n < n)
        return vnp_fail(err, VNP_EINVAL, "upload of %zu ids into a buffer of %zu %s elements", n,
                        dst->n, vnp_dtype_name(dst->dtype));
    memcpy(dst->ptr, src, n * sizeof(int32_t));
    return VNP_OK;
}

static vnp_code cpu_download_f32(vnp_backend *be, const vnp_buf *src, size_t n, float *dst,
                                 vnp_error *err)
{
    if (src->dtype != VNP_DT_F32 || src->n < n)
        return vnp_fail(err, VNP_EINVAL, "download of %zu floats from a buffer of %zu %s elements",
                        n, src->n, vnp_dtype_name(src->dtype));
    memcpy(dst, src->ptr, n * sizeof(float));
    return VNP_OK;
}

static vnp_code cpu_alloc_dt(vnp_backend *be, vnp_dtype dt, size_t n, vnp_buf *out,
                             vnp_error *err)
{
    (void)be;
    if (dt != VNP_DT_F32 && dt != VNP_DT_F64 && dt != VNP_DT_U8)
        return vnp_fail(err, VNP_EINVAL, "CPU buffer of dtype %s: F32, F64 or U8 only",
                        vnp_dtype_name(dt));
    return alloc_buf(n, dt, out, err);
}

static vnp_code cpu_copy_in(vnp_backend *be, const void *src, size_t n, vnp_buf *dst,
                            vnp_error *err)
{
    (void)be;
    if (dst->n < n)
        return vnp_fail(err, VNP_EINVAL, "copy of %zu values into a CPU buffer of %zu", n,
                        dst->n);
    if (n)
        memcpy(dst->ptr, src, n * vnp_dtype_size(dst->dtype));
    return VNP_OK;
}

static vnp_code cpu_copy_out(vnp_backend *be, const vnp_buf *src, size_t n, void *dst,
                             vnp_error *err)
{
    (void)be;
    if (src->n < n)
        return vnp_fail(err, VNP_EINVAL, "copy of %zu values out of a CPU buffer of %zu", n,
                        src->n);
    if (n)
        memcpy(dst, src->ptr, n * vnp_dtype_size(src->dtype));
    return VNP_OK;
}

static void cpu_free_buf(vnp_backend *be, vnp_buf *buf)
{
    if (!buf)
        return;
    if (vnp_cpu_of(be)->emu)
        vnp_cpu_emulate_forget(vnp_cpu_of(be), buf->ptr);
    free(buf->ptr);
    buf->ptr = NULL;
    buf->n = 0;
}

/* ---- asynchronous batches: the CPU runs every op before returning, so copies
 * are plain memcpy and events only have to exist ---- */
static vnp_code cpu_host_alloc(vnp_backend *be, size_t bytes, void **out, vnp_error *err)
{
    *out = alloc_aligned(bytes);
    if (!*out)
        return vnp_fail(err, VNP_ENOMEM, "out of memory allocating %zu MiB of host memory",
                        bytes >> 20);
    return VNP_OK;
}

static void cpu_host_free(vnp_backend *be, void *p) { free(p); }

/* A real allocation (not a static dummy) so that a leaked or twice-freed event
 * shows up under the sanitizers in CPU runs too. */
struct vnp_event {
    int recorded;
};

static vnp_code cpu_event_create(vnp_backend *be, vnp_event **out, vnp_error *err)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return vnp_fail(err, VNP_ENOMEM, "out of memory creating an event");
    return VNP_OK;
}

static void cpu_event_free(vnp_backend *be, vnp_event *ev) { free(ev); }

static vnp_code cpu_event_record(vnp_backend *be, vnp_event *ev, vnp_error *err)
{
    ev->recorded = 1;
    return VNP_OK;
}

static vnp_code cpu_event_wait(vnp_backend *be, vnp_event *ev, vnp_error *err)
{
    return VNP_OK;
}

/* ---- guard ---- */
static void cpu_guard_reset(vnp_backend *be) { atomic_store(&vnp_cpu_of(be)->guard, 0u); }

static vnp_code cpu_guard_save(vnp_backend *be, uint32_t *dst, vnp_error *err)
{
    *dst = atomic_load(&vnp_cpu_of(be)->guard);
    return VNP_OK;
}

static void cpu_destroy(vnp_backend *be)
{
    vnp_cpu *c = vnp_cpu_of(be);
    if (c) {
        vnp_cpu_pool_free(c->pool);
        for (int i = 0; c->scratch && i < c->nthreads; i++)
            free(c->scratch[i]);
        free(c->scratch);
        free(c->scratch_cap);
        for (size_t i = 0; i < c->ngw; i++)
            free(c->gw[i].scale);
        free(c->gw);
        free(c->xq);
        free(c->xs);
        free(c->bias);
        free(c);
    }
    free(be);
}

/* ---- the device ---- */
void vnp_backend_cpu_device(vnp_device *out)
{
    memset(out, 0, sizeof *out);
    out->kind = VNP_DEVICE_CPU;
    snprintf(out->name, sizeof out->name, "CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        const char *colon = strchr(line, ':');
        if (!strncmp(line, "model name", 10) && colon) {
            colon += 1 + (colon[1] == ' ');
            snprintf(out->name, sizeof out->name, "%.*s", (int)strcspn(colon, "\n"), colon);
            break;
        }
    }
    if (f)
        fclose(f);
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    out->mem_total = pages > 0 && page > 0 ? (size_t)pages * (size_t)page : 0;
}

static vnp_code cpu_mem_info(vnp_backend *be, size_t *free_bytes, size_t *total_bytes,
                             vnp_error *err)
{
    long avail = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    *total_bytes = be->device.mem_total;
    *free_bytes = avail > 0 && page > 0 ? (size_t)avail * (size_t)page : 0;
    return VNP_OK;
}

/* Every op has run when it returns. */
static vnp_code cpu_synchronize(vnp_backend *be, vnp_error *err) { return VNP_OK; }

static const vnp_backend_ops cpu_ops = {
    .name = "cpu",
    .destroy = cpu_destroy,
    .alloc_act = cpu_alloc_act,
    .alloc_f32 = cpu_alloc_f32,
    .alloc_i32 = cpu_alloc_i32,
    .upload_weight = cpu_upload_weight,
    .upload_f32 = cpu_upload_f32,
    .upload_i32 = cpu_upload_i32,
    .download_f32 = cpu_download_f32,
    .free_buf = cpu_free_buf,
    .embedding = vnp_cpu_embedding,
    .linear = vnp_cpu_linear,
    .layernorm = vnp_cpu_layernorm,
    .gated_gelu = vnp_cpu_gated_gelu,
    .attention = vnp_cpu_attention,
    .mean_pool = vnp_cpu_mean_pool,
    .scale_shift = vnp_cpu_scale_shift,
    .gemm = vnp_cpu_gemm,
    .alloc_dt = cpu_alloc_dt,
    .copy_in = cpu_copy_in,
    .copy_out = cpu_copy_out,
    .bn_relu_dropout_fwd = vnp_cpu_bn_relu_dropout_fwd,
    .bn_relu_dropout_bwd = vnp_cpu_bn_relu_dropout_bwd,
    .softmax_xent = vnp_cpu_softmax_xent,
    .col_sums = vnp_cpu_col_sums,
    .sgd_step = vnp_cpu_sgd_step,
    .mem_info = cpu_mem_info,
    .synchronize = cpu_synchronize,
    .host_alloc = cpu_host_alloc,
    .host_free = cpu_host_free,
    .download_f32_async = cpu_download_f32, /* done at once */
    .event_create = cpu_event_create,
    .event_free = cpu_event_free,
    .event_record = cpu_event_record,
    .event_wait = cpu_event_wait,
    .guard_reset = cpu_guard_reset,
    .guard_save = cpu_guard_save,
};

/* OpenBLAS's pthread build starts nproc-1 server threads when it is loaded, and each spins
 * on sched_yield for about 2^28 cycles (OPENBLAS_THREAD_TIMEOUT) before it sleeps: on a
 * 2-core machine about 0.1 s of CPU per process, taken from our own workers. We only
 * ever call it single-threaded (below), so its pool is stopped once that is set.
 * blas_thread_shutdown_ is what OpenBLAS itself runs before every fork (pthread_atfork);
 * a later multi-threaded call would start the pool again. Weak: a serial OpenBLAS has
 * no pool and no such function. */
extern int blas_thread_shutdown_(void) __attribute__((weak));
static void openblas_single_thread(void)
{
    openblas_set_num_threads(1);
    if (blas_thread_shutdown_)
        blas_thread_shutdown_();
}

static char blas_desc[256]; /* written once, under `once` below; read-only after */
static void describe_blas(void)
{
    const vnp_cpu_matmul_kernel *k = NULL;
    vnp_error e = {0};
    int bad = vnp_cpu_matmul_select(getenv("VIRNUCPRO_CPU_KERNEL"), &k, &e) != VNP_OK;
    snprintf(blas_desc, sizeof blas_desc, "%s; linear layers: own batch-invariant matmul (%s)",
             openblas_get_config(),
             bad ? "VIRNUCPRO_CPU_KERNEL not usable" : vnp_cpu_matmul_name(k));
}

/* OpenBLAS (attention, training GEMMs) and the kernel of the linear layers. */
const char *vnp_backend_cpu_blas(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, describe_blas);
    return blas_desc;
}

vnp_code vnp_backend_cpu_create(int threads, vnp_backend **out, vnp_error *err)
{
    return vnp_backend_cpu_create_emulating(threads, VNP_PREC_FP32, out, err);
}

vnp_code vnp_backend_cpu_create_emulating(int threads, vnp_precision prec, vnp_backend **out,
                                          vnp_error *err)
{
    *out = NULL;
    const vnp_precision_info *info = vnp_precision_info_of(prec);
    if (!info)
        return vnp_fail(err, VNP_EINVAL, "CPU backend: unknown precision %d", (int)prec);
    if (threads < 0)
        return vnp_fail(err, VNP_EINVAL, "thread count %d: use 0 for all cores or a positive count",
                        threads);
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (int)n : 1;
    }
    if (threads > 1024)
        return vnp_fail(err, VNP_EINVAL, "thread count %d is more than 1024", threads);
    vnp_backend *be = calloc(1, sizeof *be);
    vnp_cpu *c = calloc(1, sizeof *c);
    if (!be || !c) {
        free(be);
        free(c);
        return vnp_fail(err, VNP_ENOMEM, "out of memory creating the CPU backend");
    }
    be->ops = &cpu_ops;
    be->prec = prec;
    be->threads = threads;
    be->impl = c;
    vnp_backend_cpu_device(&be->device);
    if (prec == VNP_PREC_FP32)
        snprintf(be->name, sizeof be->name, "cpu (%d thread%s)", threads,
                 threads == 1 ? "" : "s");
    else
        snprintf(be->name, sizeof be->name, "cpu (%d thread%s, %s emulated)", threads,
                 threads == 1 ? "" : "s", info->name);
    c->nthreads = threads;
    c->emu = prec == VNP_PREC_FP32 ? NULL : info;
    c->act = info->act;
    atomic_init(&c->guard, 0u);
    c->scratch = calloc((size_t)threads, sizeof *c->scratch);
    c->scratch_cap = calloc((size_t)threads, sizeof *c->scratch_cap);
    vnp_code rc = VNP_OK;
    if (!c->scratch || !c->scratch_cap)
        rc = vnp_fail(err, VNP_ENOMEM, "out of memory creating the CPU backend");
    if (!rc)
        rc = vnp_cpu_matmul_select(getenv("VIRNUCPRO_CPU_KERNEL"), &c->matmul, err);
    if (!rc)
        rc = vnp_cpu_pool_create(threads, &c->pool, err);
    if (rc) {
        cpu_destroy(be);
        return rc;
    }
    /* OpenBLAS runs inside our workers, one GEMM per worker at a time. */
    static pthread_once_t once = PTHREAD_ONCE_INIT; /* backends are made on many threads */
    pthread_once(&once, openblas_single_thread);
    *out = be;
    return VNP_OK;
}
