/* The CUDA backend: construction, device memory, weight conversion at load,
 * pinned host memory, events, and the device-side guard word. The ops live in
 * their own files. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_internal.cuh"
#include "virnucpro/error.h"

vnp_code vnp_cuda_check_on(cudaError_t e, int device, const char *what, vnp_error *err)
{
    if (e == cudaSuccess)
        return VNP_OK;
    char on[32] = "";
    if (device >= 0)
        snprintf(on, sizeof on, " on cuda:%d", device);
    if (e == cudaErrorMemoryAllocation)
        return vnp_fail(err, VNP_ENOMEM,
                        "CUDA: out of GPU memory%s while %s (%s); use a smaller --batch-tokens "
                        "budget or a GPU with more memory",
                        on, what, cudaGetErrorString(e));
    return vnp_fail(err, VNP_EDEVICE, "CUDA: %s%s failed: %s (%s)", what, on,
                    cudaGetErrorString(e), cudaGetErrorName(e));
}

vnp_code vnp_cuda_check(cudaError_t e, const char *what, vnp_error *err)
{
    if (e == cudaSuccess)
        return VNP_OK;
    /* Only on failure: which device this thread was driving. */
    int device = -1;
    if (cudaGetDevice(&device) != cudaSuccess)
        device = -1;
    return vnp_cuda_check_on(e, device, what, err);
}

vnp_code vnp_cuda_check_launch(const char *kernel, vnp_error *err)
{
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess)
        return VNP_OK;
    char what[128];
    snprintf(what, sizeof what, "launching kernel %s", kernel);
    return vnp_cuda_check(e, what, err);
}

vnp_code vnp_cuda_reserve(void **ptr, size_t *have, size_t bytes, const char *what,
                          vnp_error *err)
{
    if (*have >= bytes && *ptr)
        return VNP_OK;
    if (*ptr) {
        /* The old scratch may still be read by queued kernels. */
        cudaDeviceSynchronize();
        cudaFree(*ptr);
        *ptr = NULL;
        *have = 0;
    }
    size_t want = bytes < 256 ? 256 : bytes;
    vnp_code rc = vnp_cuda_check(cudaMalloc(ptr, want), what, err);
    if (rc) {
        *ptr = NULL;
        return rc;
    }
    *have = want;
    return VNP_OK;
}

size_t vnp_cuda_dtype_size(vnp_dtype dt)
{
    switch (dt) {
    case VNP_DT_F32: return 4;
    case VNP_DT_F16: return 2;
    case VNP_DT_BF16: return 2;
    case VNP_DT_I32: return 4;
    case VNP_DT_U8: return 1; /* FP8 E4M3 GEMM weights, training masks and labels */
    case VNP_DT_F64: return 8; /* training statistics */
    default: return 0;
    }
}

int vnp_cuda_is_float(vnp_dtype dt)
{
    return dt == VNP_DT_F32 || dt == VNP_DT_F16 || dt == VNP_DT_BF16;
}

/* ---- conversion ---- */
template <typename S, typename D>
__global__ void convert_kernel(const S *__restrict__ src, D *__restrict__ dst, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        dst[i] = vnp_st<D>(vnp_ld<S>(src[i]));
}

template <typename S>
static void launch_convert_from(const S *src, void *dst, vnp_dtype ddt, size_t n, cudaStream_t st)
{
    unsigned blocks = (unsigned)((n + 255) / 256);
    if (blocks > 65535u * 8u)
        blocks = 65535u * 8u;
    if (blocks == 0)
        blocks = 1;
    if (ddt == VNP_DT_F16)
        convert_kernel<S, __half><<<blocks, 256, 0, st>>>(src, (__half *)dst, n);
    else if (ddt == VNP_DT_BF16)
        convert_kernel<S, __nv_bfloat16><<<blocks, 256, 0, st>>>(src, (__nv_bfloat16 *)dst, n);
    else
        convert_kernel<S, float><<<blocks, 256, 0, st>>>(src, (float *)dst, n);
}

vnp_code vnp_cuda_convert(vnp_cuda *c, const void *src, vnp_dtype sdt, void *dst, vnp_dtype ddt,
                          size_t n, vnp_error *err)
{
    if (n == 0)
        return VNP_OK;
    if (sdt == ddt)
        return vnp_cuda_check(cudaMemcpyAsync(dst, src, n * vnp_cuda_dtype_size(sdt),
                                              cudaMemcpyDeviceToDevice, c->stream),
                              "copying a device buffer", err);
    if (sdt == VNP_DT_F16)
        launch_convert_from((const __half *)src, dst, ddt, n, c->stream);
    else if (sdt == VNP_DT_BF16)
        launch_convert_from((const __nv_bfloat16 *)src, dst, ddt, n, c->stream);
    else
        launch_convert_from((const float *)src, dst, ddt, n, c->stream);
    return vnp_cuda_check_launch("convert", err);
}

/* ---- memory ---- */
static vnp_code cu_alloc(vnp_cuda *c, size_t n, vnp_dtype dt, vnp_buf *out, vnp_error *err)
{
    cudaSetDevice(c->device);
    out->ptr = NULL;
    out->dtype = dt;
    out->n = n;
    if (n == 0)
        return VNP_OK;
    size_t es = vnp_cuda_dtype_size(dt);
    if (n > SIZE_MAX / es)
        return vnp_fail(err, VNP_ENOMEM, "CUDA: a buffer of %zu elements is too large", n);
    char what[96];
    snprintf(what, sizeof what, "allocating %zu bytes of GPU memory", n * es);
    vnp_code rc = vnp_cuda_check(cudaMalloc(&out->ptr, n * es), what, err);
    if (rc)
        out->ptr = NULL;
    return rc;
}

static vnp_code cu_alloc_act(vnp_backend *be, size_t n, vnp_buf *out, vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    cudaSetDevice(c->device); /* callers may be on another thread */
    return cu_alloc(c, n, c->act, out, err);
}

static vnp_code cu_alloc_f32(vnp_backend *be, size_t n, vnp_buf *out, vnp_error *err)
{
    return cu_alloc(vnp_cuda_of(be), n, VNP_DT_F32, out, err);
}

static vnp_code cu_alloc_i32(vnp_backend *be, size_t n, vnp_buf *out, vnp_error *err)
{
    return cu_alloc(vnp_cuda_of(be), n, VNP_DT_I32, out, err);
}

static void cu_free_buf(vnp_backend *be, vnp_buf *buf)
{
    vnp_cuda *c = vnp_cuda_of(be);
    cudaSetDevice(c->device); /* callers may be on another thread */
    if (!buf)
        return;
    if (buf->ptr) {
        /* Its FP8 scales, and its converted bias copies (one per dtype it was used in),
         * go with it. */
        for (int i = 0; i < c->nf8w; i++)
            if (c->f8w[i].q == buf->ptr) {
                cudaFree(c->f8w[i].scale);
                c->f8w[i] = c->f8w[--c->nf8w];
                break;
            }
        for (int i = 0; i < c->nbias;)
            if (c->bias[i].src == buf->ptr) {
                cudaFree(c->bias[i].conv);
                c->bias[i] = c->bias[--c->nbias];
            } else
                i++;
        cudaFree(buf->ptr);
    }
    buf->ptr = NULL;
    buf->n = 0;
}

/* A host -> device copy on the backend's stream, complete when this returns. (A plain
 * cudaMemcpy runs on the legacy stream, which a cudaStreamNonBlocking stream does not
 * wait for, and from pageable memory it may return before the DMA lands: a kernel
 * queued next on c->stream could read the buffer half-copied.) */
static vnp_code h2d_sync(vnp_cuda *c, void *dst, const void *src, size_t bytes, const char *what,
                         vnp_error *err)
{
    vnp_code rc = vnp_cuda_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice,
                                                 c->stream),
                                 what, err);
    if (!rc)
        rc = vnp_cuda_check(cudaStreamSynchronize(c->stream), what, err);
    return rc;
}

/* Host data -> device, converted to `ddt` on the GPU through a staging buffer,
 * so that an 11 GB checkpoint converts at copy speed. */
static vnp_code upload_convert(vnp_cuda *c, const void *src, vnp_dtype sdt, size_t n,
                               const vnp_buf *out, const char *name, vnp_error *err)
{
    size_t ses = vnp_cuda_dtype_size(sdt), des = vnp_cuda_dtype_size(out->dtype);
    if (sdt == out->dtype)
        return h2d_sync(c, out->ptr, src, n * ses, "copying a weight tensor to the GPU", err);
    const size_t chunk = (size_t)32 << 20; /* elements per pass */
    size_t stage_elems = n < chunk ? n : chunk;
    vnp_code rc = vnp_cuda_reserve(&c->scratch, &c->scratch_bytes, stage_elems * ses,
                                   "allocating the weight staging buffer", err);
    if (rc)
        return rc;
    for (size_t off = 0; off < n; off += stage_elems) {
        size_t m = n - off < stage_elems ? n - off : stage_elems;
        rc = vnp_cuda_check(cudaMemcpyAsync(c->scratch, (const char *)src + off * ses, m * ses,
                                            cudaMemcpyHostToDevice, c->stream),
                            "copying a weight tensor to the GPU", err);
        if (!rc)
            rc = vnp_cuda_convert(c, c->scratch, sdt, (char *)out->ptr + off * des, out->dtype,
                                  m, err);
        if (!rc)
            rc = vnp_cuda_check(cudaStreamSynchronize(c->stream), "converting a weight tensor",
                                err);
        if (rc) {
            vnp_error_prefix(err, "tensor '%s': ", name ? name : "?");
            return rc;
        }
    }
    return VNP_OK;
}

/* A GEMM weight of an FP8 backend: copied to the device as it is, then quantised to
 * E4M3 rows with their scales (cuda_fp8.cu); the buffer holds the bytes (dtype U8) and
 * c->f8w the scales. */
static vnp_code upload_fp8(vnp_backend *be, vnp_cuda *c, const vnp_tensor *t, size_t numel,
                           vnp_buf *out, vnp_error *err)
{
    const char *name = t->name ? t->name : "?";
    if (t->ndim != 2 || t->shape[0] <= 0 || t->shape[0] > INT32_MAX ||
        numel / (size_t)t->shape[0] > INT32_MAX)
        return vnp_fail(err, VNP_ESHAPE,
                        "tensor '%s': an FP8 GEMM weight must be a matrix [out, in] (it has %d "
                        "dimensions)",
                        name, t->ndim);
    const int rows = (int)t->shape[0], K = (int)(numel / (size_t)rows);
    const size_t ses = vnp_cuda_dtype_size(t->dtype);
    if (c->nf8w == c->capf8w) {
        int cap = c->capf8w ? 2 * c->capf8w : 64;
        vnp_cuda_f8w *nt = (vnp_cuda_f8w *)realloc(c->f8w, (size_t)cap * sizeof *nt);
        if (!nt)
            return vnp_fail(err, VNP_ENOMEM, "out of memory listing FP8 weights");
        c->f8w = nt;
        c->capf8w = cap;
    }
    float *scale = NULL;
    vnp_code rc = vnp_cuda_reserve(&c->scratch, &c->scratch_bytes, numel * ses,
                                   "staging a weight for FP8 quantisation", err);
    if (!rc)
        rc = h2d_sync(c, c->scratch, t->data, numel * ses, "copying a weight tensor to the GPU",
                      err);
    if (!rc)
        rc = cu_alloc(c, numel, VNP_DT_U8, out, err);
    if (!rc && (rc = vnp_cuda_check(cudaMalloc((void **)&scale, (size_t)rows * sizeof(float)),
                                    "allocating FP8 weight scales", err)))
        cu_free_buf(be, out);
    if (!rc) {
        rc = vnp_cuda_fp8_quantize_rows(c, c->scratch, t->dtype, rows, K, c->fp8 == 2,
                                        (unsigned char *)out->ptr, scale, err);
        if (!rc)
            rc = vnp_cuda_check(cudaStreamSynchronize(c->stream), "quantising a weight to FP8",
                                err);
        if (rc) {
            cudaFree(scale);
            cu_free_buf(be, out);
        }
    }
    if (rc) {
        vnp_error_prefix(err, "tensor '%s': ", name);
        return rc;
    }
    c->f8w[c->nf8w].q = out->ptr;
    c->f8w[c->nf8w].scale = scale;
    c->f8w[c->nf8w].rows = rows;
    c->nf8w++;
    return VNP_OK;
}

static vnp_code cu_upload_weight(vnp_backend *be, const vnp_tensor *t, int matrix, vnp_buf *out,
                                 vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    cudaSetDevice(c->device); /* callers may be on another thread */
    if (!vnp_cuda_is_float(t->dtype))
        return vnp_fail(err, VNP_EUNSUPPORTED,
                        "tensor '%s' has dtype %s; the CUDA backend takes F32, F16 or BF16 "
                        "weights",
                        t->name ? t->name : "?", vnp_dtype_name(t->dtype));
    int64_t numel = vnp_tensor_numel(t);
    if (numel < 0 || (size_t)numel * vnp_cuda_dtype_size(t->dtype) > t->nbytes)
        return vnp_fail(err, VNP_ESHAPE, "tensor '%s' holds fewer bytes than its shape needs",
                        t->name ? t->name : "?");
    if (c->fp8 && matrix == VNP_WEIGHT_GEMM && numel > 0)
        return upload_fp8(be, c, t, (size_t)numel, out, err);
    vnp_dtype dt = matrix ? c->act : VNP_DT_F32;
    vnp_code rc = cu_alloc(c, (size_t)numel, dt, out, err);
    if (rc) {
        vnp_error_prefix(err, "tensor '%s': ", t->name ? t->name : "?");
        return rc;
    }
    if (numel == 0)
        return VNP_OK;
    rc = upload_convert(c, t->data, t->dtype, (size_t)numel, out, t->name, err);
    if (rc)
        cu_free_buf(be, out);
    return rc;
}

static vnp_code cu_upload_f32(vnp_backend *be, const float *src, size_t n, vnp_buf *out,
                              vnp_error *err)
{
    vnp_code rc = cu_alloc(vnp_cuda_of(be), n, VNP_DT_F32, out, err);
    if (rc || n == 0)
        return rc;
    rc = h2d_sync(vnp_cuda_of(be), out->ptr, src, n * 4, "copying float data to the GPU", err);
    if (rc)
        cu_free_buf(be, out);
    return rc;
}

static vnp_code cu_upload_i32(vnp_backend *be, const int32_t *src, size_t n, vnp_buf *dst,
                              vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    cudaSetDevice(c->device); /* callers may be on another thread */
    if (dst->dtype != VNP_DT_I32 || dst->n < n)
        return vnp_fail(err, VNP_EINVAL, "upload of %zu ids into a buffer of %zu %s elements", n,
                        dst->n, vnp_dtype_name(dst->dtype));
    if (n == 0)
        return VNP_OK;
    /* Ordered on the stream after the kernels still reading the previous ids. */
    return vnp_cuda_check(cudaMemcpyAsync(dst->ptr, src, n * 4, cudaMemcpyHostToDevice,
                                          c->stream),
                          "copying token ids to the GPU", err);
}

static vnp_code cu_download_f32(vnp_backend *be, const vnp_buf *src, size_t n, float *dst,
                                vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    cudaSetDevice(c->device); /* callers may be on another thread */
    if (n > src->n)
        return vnp_fail(err, VNP_EINVAL, "CUDA: download of %zu elements from a buffer of %zu",
                        n, src->n);
    if (n == 0)
        return VNP_OK;
    const void *from = src->ptr;
    vnp_code rc;
    if (src->dtype != VNP_DT_F32) {
        rc = vnp_cuda_reserve(&c->scratch, &c->scratch_bytes, n * 4,
                              "allocating a download buffer", err);
        if (rc)
            return rc;
        rc = vnp_cuda_convert(c, src->ptr, src->dtype, c->scratch, VNP_DT_F32, n, err);
        if (rc)
            return rc;
        from = c->scratch;
    }
    rc = vnp_cuda_check(cudaMemcpyAsync(dst, from, n * 4, cudaMemcpyDeviceToHost, c->stream),
                        "copying results from the GPU", err);
    if (!rc)
        rc = vnp_cuda_check(cudaStreamSynchronize(c->stream), "running the GPU batch", err);
    return rc;
}

/* ---- the training's buffers ---- */
static vnp_code cu_alloc_dt(vnp_backend *be, vnp_dtype dt, size_t n, vnp_buf *out,
                            vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    if (dt != VNP_DT_F32 && dt != VNP_DT_F64 && dt != VNP_DT_U8)
        return vnp_fail(err, VNP_EINVAL, "CUDA buffer of dtype %s on cuda:%d: F32, F64 or U8 "
                                         "only",
                        vnp_dtype_name(dt), c->device);
    return cu_alloc(c, n, dt, out, err);
}

static vnp_code cu_copy_in(vnp_backend *be, const void *src, size_t n, vnp_buf *dst,
                           vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    cudaSetDevice(c->device); /* callers may be on another thread */
    if (dst->n < n)
        return vnp_fail(err, VNP_EINVAL, "copy of %zu values into a buffer of %zu on cuda:%d",
                        n, dst->n, c->device);
    if (n == 0)
        return VNP_OK;
    return h2d_sync(c, dst->ptr, src, n * vnp_cuda_dtype_size(dst->dtype),
                    "copying training data to the GPU", err);
}

static vnp_code cu_copy_out(vnp_backend *be, const vnp_buf *src, size_t n, void *dst,
                            vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    cudaSetDevice(c->device); /* callers may be on another thread */
    if (src->n < n)
        return vnp_fail(err, VNP_EINVAL, "copy of %zu values out of a buffer of %zu on cuda:%d",
                        n, src->n, c->device);
    if (n == 0)
        return VNP_OK;
    vnp_code rc = vnp_cuda_check(cudaMemcpyAsync(dst, src->ptr,
                                                 n * vnp_cuda_dtype_size(src->dtype),
                                                 cudaMemcpyDeviceToHost, c->stream),
                                 "copying training results from the GPU", err);
    if (!rc)
        rc = vnp_cuda_check(cudaStreamSynchronize(c->stream), "running the training step", err);
    return rc;
}

/* Selects the backend's device for the calling thread (callers may be on
 * another thread than the one that made the backend). */
static vnp_code use_device(vnp_cuda *c, vnp_error *err)
{
    return vnp_cuda_check_on(cudaSetDevice(c->device), c->device, "selecting the GPU", err);
}

/* ---- asynchronous batches ---- */
static vnp_code cu_host_alloc(vnp_backend *be, size_t bytes, void **out, vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    *out = NULL;
    vnp_code rc = use_device(c, err);
    if (rc)
        return rc;
    /* Portable: pinned for every device's context, so a buffer may also be handed
     * to a backend on another GPU. */
    char what[96];
    snprintf(what, sizeof what, "allocating %zu bytes of pinned host memory", bytes);
    rc = vnp_cuda_check(cudaHostAlloc(out, bytes ? bytes : 1, cudaHostAllocPortable), what, err);
    if (rc)
        *out = NULL;
    return rc;
}

static void cu_host_free(vnp_backend *be, void *p)
{
    vnp_cuda *c = vnp_cuda_of(be);
    if (!p)
        return;
    cudaSetDevice(c->device); /* callers may be on another thread */
    cudaError_t e = cudaFreeHost(p);
    if (e != cudaSuccess)
        vnp_warn("CUDA: freeing pinned host memory on cuda:%d failed: %s", c->device,
                 cudaGetErrorString(e));
}

static vnp_code cu_download_f32_async(vnp_backend *be, const vnp_buf *src, size_t n, float *dst,
                                      vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    vnp_code rc = use_device(c, err);
    if (rc)
        return rc;
    if (src->dtype != VNP_DT_F32 || n > src->n)
        return vnp_fail(err, VNP_EINVAL,
                        "CUDA (cuda:%d): asynchronous download of %zu floats from a buffer of %zu "
                        "%s elements (it must be F32)",
                        c->device, n, src->n, vnp_dtype_name(src->dtype));
    if (n == 0)
        return VNP_OK;
    return vnp_cuda_check(cudaMemcpyAsync(dst, src->ptr, n * 4, cudaMemcpyDeviceToHost,
                                          c->stream),
                          "queueing a copy of results from the GPU", err);
}

/* A vnp_event is a cudaEvent_t (itself a pointer) under another name. */
static vnp_code cu_event_create(vnp_backend *be, vnp_event **out, vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    *out = NULL;
    vnp_code rc = use_device(c, err);
    if (rc)
        return rc;
    /* BlockingSync: a waiting thread sleeps instead of spinning on a core (several
     * worker threads may wait at once); timing is never read. */
    cudaEvent_t ev = NULL;
    rc = vnp_cuda_check(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming |
                                                          cudaEventBlockingSync),
                        "creating an event", err);
    if (!rc)
        *out = (vnp_event *)ev;
    return rc;
}

static void cu_event_free(vnp_backend *be, vnp_event *ev)
{
    vnp_cuda *c = vnp_cuda_of(be);
    if (!ev)
        return;
    cudaSetDevice(c->device); /* callers may be on another thread */
    cudaError_t e = cudaEventDestroy((cudaEvent_t)ev);
    if (e != cudaSuccess)
        vnp_warn("CUDA: destroying an event on cuda:%d failed: %s", c->device,
                 cudaGetErrorString(e));
}

static vnp_code cu_event_record(vnp_backend *be, vnp_event *ev, vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    vnp_code rc = use_device(c, err);
    if (rc)
        return rc;
    return vnp_cuda_check(cudaEventRecord((cudaEvent_t)ev, c->stream), "recording an event",
                          err);
}

static vnp_code cu_event_wait(vnp_backend *be, vnp_event *ev, vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    vnp_code rc = use_device(c, err);
    if (rc)
        return rc;
    /* A fault in any kernel of the batch surfaces here. */
    return vnp_cuda_check_on(cudaEventSynchronize((cudaEvent_t)ev), c->device,
                             "waiting for a batch", err);
}

/* ---- guard ---- */
static void cu_guard_reset(vnp_backend *be)
{
    vnp_cuda *c = vnp_cuda_of(be);
    cudaError_t e = cudaSetDevice(c->device); /* callers may be on another thread */
    if (e == cudaSuccess)
        e = cudaMemsetAsync(c->flag, 0, sizeof(int), c->stream);
    if (e != cudaSuccess && c->reset_error == cudaSuccess)
        c->reset_error = e; /* no status to return: the next guard_save reports it */
    /* The debug poison: armed for this batch only (a batch that pooled nothing does
     * not pass it on), consumed by the batch's first mean_pool. */
    long batch = c->batches++;
    c->poison_pending = c->poison_batch >= 0 &&
                        (c->act == VNP_DT_F32 ? c->poison_fp32 : batch == c->poison_batch);
}

static vnp_code cu_guard_save(vnp_backend *be, uint32_t *dst, vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    vnp_code rc = use_device(c, err);
    if (rc)
        return rc;
    if (c->reset_error != cudaSuccess) {
        cudaError_t e = c->reset_error;
        c->reset_error = cudaSuccess;
        return vnp_cuda_check_on(e, c->device, "clearing the guard word", err);
    }
    static_assert(sizeof *dst == sizeof *c->flag, "the guard word is 4 bytes");
    return vnp_cuda_check(cudaMemcpyAsync(dst, c->flag, sizeof *dst, cudaMemcpyDeviceToHost,
                                          c->stream),
                          "queueing a copy of the guard word", err);
}

/* VIRNUCPRO_DEBUG_POISON_BATCH / _FP32 (see cuda_internal.cuh). */
static void read_poison_switch(vnp_cuda *c, const char *name)
{
    c->poison_batch = -1;
    const char *v = getenv("VIRNUCPRO_DEBUG_POISON_BATCH");
    if (!v || !*v)
        return;
    char *end = NULL;
    long n = strtol(v, &end, 10);
    if (*end || n < 0) {
        vnp_warn("VIRNUCPRO_DEBUG_POISON_BATCH='%s' is not a batch number; ignored", v);
        return;
    }
    const char *f = getenv("VIRNUCPRO_DEBUG_POISON_FP32");
    c->poison_fp32 = f && !strcmp(f, "1");
    c->poison_batch = n;
    if (c->act != VNP_DT_F32)
        vnp_warn("debug: VIRNUCPRO_DEBUG_POISON_BATCH=%ld: batch %ld on %s will be poisoned "
                 "with a NaN",
                 n, n, name);
    else if (c->poison_fp32)
        vnp_warn("debug: VIRNUCPRO_DEBUG_POISON_FP32=1: every batch on %s will be poisoned", name);
}

static void cu_destroy(vnp_backend *be)
{
    if (!be)
        return;
    vnp_cuda *c = vnp_cuda_of(be);
    if (c) {
        cudaSetDevice(c->device);
        cudaStreamSynchronize(c->stream);
        vnp_cuda_gemm_release(c);
        for (int i = 0; i < c->nbias; i++)
            cudaFree(c->bias[i].conv);
        free(c->bias);
        cudaFree(c->workspace);
        cudaFree(c->flag);
        cudaFree(c->scratch);
        for (int i = 0; i < c->nf8w; i++)
            cudaFree(c->f8w[i].scale);
        free(c->f8w);
        cudaFree(c->f8x);
        cudaFree(c->f8s);
        cudaFree(c->rope);
        vnp_cuda_sgemm_release(c);
        if (c->lt)
            cublasLtDestroy(c->lt);
        if (c->stream)
            cudaStreamDestroy(c->stream);
        free(c);
    }
    free(be);
}

static vnp_backend_ops g_cuda_ops;

static void fill_ops(void)
{
    g_cuda_ops.name = "cuda";
    g_cuda_ops.destroy = cu_destroy;
    g_cuda_ops.alloc_act = cu_alloc_act;
    g_cuda_ops.alloc_f32 = cu_alloc_f32;
    g_cuda_ops.alloc_i32 = cu_alloc_i32;
    g_cuda_ops.upload_weight = cu_upload_weight;
    g_cuda_ops.upload_f32 = cu_upload_f32;
    g_cuda_ops.upload_i32 = cu_upload_i32;
    g_cuda_ops.download_f32 = cu_download_f32;
    g_cuda_ops.free_buf = cu_free_buf;
    g_cuda_ops.embedding = vnp_cuda_embedding;
    g_cuda_ops.linear = vnp_cuda_linear;
    g_cuda_ops.layernorm = vnp_cuda_layernorm;
    g_cuda_ops.gated_gelu = vnp_cuda_gated_gelu;
    g_cuda_ops.attention = vnp_cuda_attention;
    g_cuda_ops.mean_pool = vnp_cuda_mean_pool;
    g_cuda_ops.scale_shift = vnp_cuda_scale_shift;
    g_cuda_ops.gemm = vnp_cuda_gemm;
    g_cuda_ops.alloc_dt = cu_alloc_dt;
    g_cuda_ops.copy_in = cu_copy_in;
    g_cuda_ops.copy_out = cu_copy_out;
    g_cuda_ops.bn_relu_dropout_fwd = vnp_cuda_bn_relu_dropout_fwd;
    g_cuda_ops.bn_relu_dropout_bwd = vnp_cuda_bn_relu_dropout_bwd;
    g_cuda_ops.softmax_xent = vnp_cuda_softmax_xent;
    g_cuda_ops.col_sums = vnp_cuda_col_sums;
    g_cuda_ops.sgd_step = vnp_cuda_sgd_step;
    g_cuda_ops.host_alloc = cu_host_alloc;
    g_cuda_ops.host_free = cu_host_free;
    g_cuda_ops.download_f32_async = cu_download_f32_async;
    g_cuda_ops.event_create = cu_event_create;
    g_cuda_ops.event_free = cu_event_free;
    g_cuda_ops.event_record = cu_event_record;
    g_cuda_ops.event_wait = cu_event_wait;
    g_cuda_ops.guard_reset = cu_guard_reset;
    g_cuda_ops.guard_save = cu_guard_save;
}

extern "C" vnp_code vnp_backend_cuda_create(int device, vnp_precision prec, vnp_backend **out,
                                            vnp_error *err)
{
    *out = NULL;
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0)
        return vnp_fail(err, VNP_EDEVICE,
                        "no CUDA GPU is usable here (%s); run with --device cpu",
                        e != cudaSuccess ? cudaGetErrorString(e) : "no device found");
    if (device < 0 || device >= count)
        return vnp_fail(err, VNP_EINVAL, "--device cuda:%d: this machine has %d CUDA GPU%s (0..%d)",
                        device, count, count == 1 ? "" : "s", count - 1);
    if (!vnp_precision_info_of(prec))
        return vnp_fail(err, VNP_EINVAL, "CUDA backend: unknown precision %d", (int)prec);
    vnp_code rc = vnp_cuda_check_on(cudaSetDevice(device), device, "selecting the GPU", err);
    if (rc)
        return rc;
    cudaDeviceProp prop;
    rc = vnp_cuda_check(cudaGetDeviceProperties(&prop, device), "reading the GPU's properties",
                        err);
    if (rc)
        return rc;
    if (prop.major < 8)
        return vnp_fail(err, VNP_EUNSUPPORTED,
                        "GPU %d (%s) has compute capability %d.%d; the CUDA backend needs 8.0 or "
                        "newer (built for sm_90)",
                        device, prop.name, prop.major, prop.minor);

    const vnp_precision_info *want = vnp_precision_info_of(prec);
    if (want && want->gemm == VNP_FMT_E4M3 && prop.major * 10 + prop.minor < 89)
        return vnp_fail(err, VNP_EUNSUPPORTED,
                        "GPU %d (%s) has compute capability %d.%d; --precision %s needs FP8 "
                        "tensor cores (8.9 or newer: Ada, Hopper); use fp16",
                        device, prop.name, prop.major, prop.minor, vnp_precision_name(prec));
    vnp_backend *be = (vnp_backend *)calloc(1, sizeof *be);
    vnp_cuda *c = (vnp_cuda *)calloc(1, sizeof *c);
    if (!be || !c) {
        free(be);
        free(c);
        return vnp_fail(err, VNP_ENOMEM, "out of memory creating the CUDA backend");
    }
    static pthread_once_t once = PTHREAD_ONCE_INIT; /* backends are made on many threads */
    pthread_once(&once, fill_ops);
    be->ops = &g_cuda_ops;
    be->prec = prec;
    be->threads = 1;
    be->impl = c;
    c->device = device;
    const vnp_precision_info *pi = vnp_precision_info_of(prec);
    c->fp8 = pi && pi->gemm == VNP_FMT_E4M3 ? (pi->per_tensor ? 2 : 1) : 0;
    /* FP8 keeps activations in FP16 (docs/PRECISION.md) */
    c->act = prec == VNP_PREC_FP16 || c->fp8 ? VNP_DT_F16
             : prec == VNP_PREC_BF16         ? VNP_DT_BF16
                                             : VNP_DT_F32;
    snprintf(c->device_name, sizeof c->device_name, "%s", prop.name);
    snprintf(be->name, sizeof be->name, "cuda:%d %s", device, vnp_precision_name(prec));
    read_poison_switch(c, be->name);
    const char *sk = getenv("VIRNUCPRO_DEBUG_SCALAR_KERNELS");
    c->scalar_only = sk && !strcmp(sk, "1");

    rc = vnp_cuda_check(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking),
                        "creating a CUDA stream", err);
    if (!rc && cublasLtCreate(&c->lt) != CUBLAS_STATUS_SUCCESS)
        rc = vnp_fail(err, VNP_EDEVICE, "CUDA: cuBLASLt could not be initialised on GPU %d",
                      device);
    if (!rc) {
        c->workspace_size = (size_t)64 << 20;
        rc = vnp_cuda_check(cudaMalloc(&c->workspace, c->workspace_size),
                            "allocating the GEMM workspace", err);
    }
    if (!rc)
        rc = vnp_cuda_check(cudaMalloc((void **)&c->flag, sizeof(int)),
                            "allocating the guard flag", err);
    if (!rc)
        rc = vnp_cuda_check(cudaMemset(c->flag, 0, sizeof(int)), "clearing the guard flag", err);
    if (rc) {
        cu_destroy(be);
        return rc;
    }
    *out = be;
    return VNP_OK;
}

/* Name of the GPU a CUDA backend runs on (for logs and benchmark tables). */
extern "C" const char *vnp_backend_cuda_device_name(vnp_backend *be)
{
    return vnp_cuda_of(be)->device_name;
}
