/* The CUDA backend: construction, device memory, weight conversion at load,
 * pinned host memory, events, and the device-side guard word. The ops live in
 * their own files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_internal.cuh"
#include "virnucpro/error.h"

/* Where a check failed: the path from src/ on (__FILE__ is absolute in CMake builds). */
static const char *short_path(const char *file)
{
    const char *p = strstr(file, "src/");
    return p ? p : file;
}

static vnp_code status_fail(int oom, const char *why, const char *why_name, int dev,
                            const char *expr, const char *file, int line, vnp_error *err)
{
    char on[32] = "", at[256] = "";
    if (dev >= 0)
        snprintf(on, sizeof on, " on cuda:%d", dev);
    if (file)
        snprintf(at, sizeof at, " at %s:%d", short_path(file), line);
    if (oom)
        return vnp_fail(err, VNP_ENOMEM,
                        "CUDA: out of GPU memory%s in %s%s (%s); use a smaller --batch-tokens "
                        "budget or a GPU with more memory",
                        on, expr, at, why);
    return vnp_fail(err, VNP_EDEVICE, "CUDA: %s%s failed%s: %s (%s)", expr, on, at, why, why_name);
}

vnp_code vnp_cuda_status(cudaError_t e, int dev, const char *expr, const char *file, int line,
                         vnp_error *err)
{
    if (e == cudaSuccess)
        return VNP_OK;
    /* a failed call also sets the thread's last error: cleared here (a sticky one stays),
     * so the next launch check does not blame its kernel for this call */
    (void)cudaGetLastError();
    return status_fail(e == cudaErrorMemoryAllocation, cudaGetErrorString(e), cudaGetErrorName(e),
                       dev, expr, file, line, err);
}

vnp_code vnp_cuda_status(cublasStatus_t s, int dev, const char *expr, const char *file, int line,
                         vnp_error *err)
{
    if (s == CUBLAS_STATUS_SUCCESS)
        return VNP_OK;
    return status_fail(s == CUBLAS_STATUS_ALLOC_FAILED, cublasLtGetStatusString(s),
                       cublasLtGetStatusName(s), dev, expr, file, line, err);
}

vnp_code vnp_cuda_check_launch(const char *kernel, vnp_error *err)
{
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess)
        return VNP_OK;
    /* Only on failure: which device this thread was driving. */
    int device = -1;
    if (cudaGetDevice(&device) != cudaSuccess)
        device = -1;
    char what[128];
    snprintf(what, sizeof what, "launching kernel %s", kernel);
    return vnp_cuda_status(e, device, what, NULL, 0, err);
}

vnp_code vnp_cuda_reserve(vnp_cuda *c, void **ptr, size_t *have, size_t bytes, const char *what,
                          vnp_error *err)
{
    if (*have >= bytes && *ptr)
        return VNP_OK;
    vnp_code rc;
    if (*ptr) {
        /* The old scratch may still be read by kernels queued on the stream. */
        if ((rc = VNP_CUDA_CHECK(cudaStreamSynchronize(c->stream), c->device, err)) ||
            (rc = VNP_CUDA_CHECK(cudaFree(*ptr), c->device, err)))
            return rc;
        *ptr = NULL;
        *have = 0;
    }
    size_t want = bytes < 256 ? 256 : bytes;
    if ((rc = VNP_CUDA_CHECK(cudaMalloc(ptr, want), c->device, err))) {
        *ptr = NULL;
        vnp_error_prefix(err, "%s: ", what);
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
        return VNP_CUDA_CHECK(cudaMemcpyAsync(dst, src, n * vnp_cuda_dtype_size(sdt),
                                              cudaMemcpyDeviceToDevice, c->stream),
                              c->device, err);
    if (sdt == VNP_DT_F16)
        launch_convert_from((const __half *)src, dst, ddt, n, c->stream);
    else if (sdt == VNP_DT_BF16)
        launch_convert_from((const __nv_bfloat16 *)src, dst, ddt, n, c->stream);
    else
        launch_convert_from((const float *)src, dst, ddt, n, c->stream);
    return vnp_cuda_check_launch("convert", err);
}

/* A failure where no status can be returned (freeing): a warning. */
static void warn_if(vnp_code rc, const vnp_error *e)
{
    if (rc)
        vnp_warn("%s", e->msg);
}

/* ---- memory ---- */
static vnp_code cu_alloc(vnp_cuda *c, size_t n, vnp_dtype dt, vnp_buf *out, vnp_error *err)
{
    out->ptr = NULL;
    out->dtype = dt;
    out->n = n;
    /* callers may be on another thread than the one that made the backend */
    vnp_code rc = VNP_CUDA_CHECK(cudaSetDevice(c->device), c->device, err);
    if (rc || n == 0)
        return rc;
    size_t es = vnp_cuda_dtype_size(dt);
    if (n > SIZE_MAX / es)
        return vnp_fail(err, VNP_ENOMEM, "CUDA: a buffer of %zu elements is too large", n);
    if ((rc = VNP_CUDA_CHECK(cudaMalloc(&out->ptr, n * es), c->device, err))) {
        out->ptr = NULL;
        vnp_error_prefix(err, "allocating %zu bytes of GPU memory: ", n * es);
    }
    return rc;
}

static vnp_code cu_alloc_act(vnp_backend *be, size_t n, vnp_buf *out, vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    return cu_alloc(c, n, c->act, out, err);
}

/* A GEMM input buffer: E4M3 rows with their scales on an FP8 backend (when K makes
 * whole FP8 tensor-core steps), activations otherwise. */
static vnp_code cu_alloc_gemm_in(vnp_backend *be, size_t rows, size_t K, vnp_buf *out,
                                 vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    if (!c->fp8 || c->fp8_unfused || K % 16 || K > INT32_MAX || rows == 0 ||
        rows > SIZE_MAX / K)
        return cu_alloc(c, rows * K, c->act, out, err);
    if (c->nq8a == c->capq8a) {
        int cap = c->capq8a ? 2 * c->capq8a : 8;
        vnp_cuda_q8a *nt = (vnp_cuda_q8a *)realloc(c->q8a, (size_t)cap * sizeof *nt);
        if (!nt)
            return vnp_fail(err, VNP_ENOMEM, "out of memory listing FP8 GEMM inputs");
        c->q8a = nt;
        c->capq8a = cap;
    }
    vnp_code rc = cu_alloc(c, rows * K, VNP_DT_U8, out, err);
    float *scale = NULL;
    if (!rc && (rc = VNP_CUDA_CHECK(cudaMalloc((void **)&scale, rows * sizeof(float)), c->device,
                                    err))) {
        vnp_error_prefix(err, "allocating %zu FP8 row scales: ", rows);
        vnp_error e;
        warn_if(VNP_CUDA_CHECK(cudaFree(out->ptr), c->device, &e), &e);
        out->ptr = NULL;
        out->n = 0;
    }
    if (rc)
        return rc;
    vnp_cuda_q8a *a = &c->q8a[c->nq8a++];
    a->q = (unsigned char *)out->ptr;
    a->scale = scale;
    a->rows = rows;
    a->K = (int)K;
    return VNP_OK;
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
    if (!buf)
        return;
    if (buf->ptr) {
        vnp_error e;
        warn_if(VNP_CUDA_CHECK(cudaSetDevice(c->device), c->device, &e), &e);
        /* An FP8 weight's scales go with it. */
        for (int i = 0; i < c->nf8w; i++)
            if (c->f8w[i].q == buf->ptr) {
                warn_if(VNP_CUDA_CHECK(cudaFree(c->f8w[i].scale), c->device, &e), &e);
                c->f8w[i] = c->f8w[--c->nf8w];
                break;
            }
        /* so do a GEMM input buffer's */
        for (int i = 0; i < c->nq8a; i++)
            if (c->q8a[i].q == buf->ptr) {
                warn_if(VNP_CUDA_CHECK(cudaFree(c->q8a[i].scale), c->device, &e), &e);
                c->q8a[i] = c->q8a[--c->nq8a];
                break;
            }
        warn_if(VNP_CUDA_CHECK(cudaFree(buf->ptr), c->device, &e), &e);
    }
    buf->ptr = NULL;
    buf->n = 0;
}

/* A host -> device copy on the backend's stream, complete when this returns. (A plain
 * cudaMemcpy runs on the legacy stream, which a cudaStreamNonBlocking stream does not
 * wait for, and from pageable memory it may return before the DMA lands: a kernel
 * queued next on c->stream could read the buffer half-copied.) */
static vnp_code h2d_sync(vnp_cuda *c, void *dst, const void *src, size_t bytes, vnp_error *err)
{
    vnp_code rc = VNP_CUDA_CHECK(
        cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream), c->device, err);
    if (!rc)
        rc = VNP_CUDA_CHECK(cudaStreamSynchronize(c->stream), c->device, err);
    return rc;
}

/* Host data -> device, converted to `ddt` on the GPU through a staging buffer,
 * so that an 11 GB checkpoint converts at copy speed. */
static vnp_code upload_convert(vnp_cuda *c, const void *src, vnp_dtype sdt, size_t n,
                               const vnp_buf *out, vnp_error *err)
{
    size_t ses = vnp_cuda_dtype_size(sdt), des = vnp_cuda_dtype_size(out->dtype);
    if (sdt == out->dtype)
        return h2d_sync(c, out->ptr, src, n * ses, err);
    const size_t chunk = (size_t)32 << 20; /* elements per pass */
    size_t stage_elems = n < chunk ? n : chunk;
    vnp_code rc = vnp_cuda_reserve(c, &c->scratch, &c->scratch_bytes, stage_elems * ses,
                                   "allocating the weight staging buffer", err);
    for (size_t off = 0; !rc && off < n; off += stage_elems) {
        size_t m = n - off < stage_elems ? n - off : stage_elems;
        rc = h2d_sync(c, c->scratch, (const char *)src + off * ses, m * ses, err);
        if (!rc)
            rc = vnp_cuda_convert(c, c->scratch, sdt, (char *)out->ptr + off * des, out->dtype,
                                  m, err);
        /* the staging buffer is refilled next pass */
        if (!rc)
            rc = VNP_CUDA_CHECK(cudaStreamSynchronize(c->stream), c->device, err);
    }
    return rc;
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
    vnp_code rc = vnp_cuda_reserve(c, &c->scratch, &c->scratch_bytes, numel * ses,
                                   "staging a weight for FP8 quantisation", err);
    if (!rc)
        rc = h2d_sync(c, c->scratch, t->data, numel * ses, err);
    if (!rc)
        rc = cu_alloc(c, numel, VNP_DT_U8, out, err);
    if (!rc && (rc = VNP_CUDA_CHECK(cudaMalloc((void **)&scale, (size_t)rows * sizeof(float)),
                                    c->device, err)))
        cu_free_buf(be, out);
    if (!rc) {
        rc = vnp_cuda_fp8_quantize_rows(c, c->scratch, t->dtype, rows, K, c->fp8 == 2,
                                        (unsigned char *)out->ptr, scale, err);
        if (!rc)
            rc = VNP_CUDA_CHECK(cudaStreamSynchronize(c->stream), c->device, err);
        if (rc) {
            vnp_error e;
            warn_if(VNP_CUDA_CHECK(cudaFree(scale), c->device, &e), &e);
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

/* What each role is stored as: GEMM operands and embedding tables in the compute dtype
 * (an FP8 backend's GEMM weights in E4M3, above), a GEMM's bias in the GEMM's output
 * dtype (the compute dtype: cuBLASLt's bias epilogue reads it there), other vectors
 * (LayerNorm parameters, added rows) in F32. */
static vnp_code cu_upload_weight(vnp_backend *be, const vnp_tensor *t, vnp_weight_kind kind,
                                 vnp_buf *out, vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    const char *name = t->name ? t->name : "?";
    if (!vnp_cuda_is_float(t->dtype))
        return vnp_fail(err, VNP_EUNSUPPORTED,
                        "tensor '%s' has dtype %s; the CUDA backend takes F32, F16 or BF16 "
                        "weights",
                        name, vnp_dtype_name(t->dtype));
    if (kind != VNP_WEIGHT_VECTOR && kind != VNP_WEIGHT_GEMM && kind != VNP_WEIGHT_TABLE &&
        kind != VNP_WEIGHT_BIAS)
        return vnp_fail(err, VNP_EINVAL, "tensor '%s': unknown weight kind %d", name, (int)kind);
    int64_t numel = vnp_tensor_numel(t);
    if (numel < 0 || (size_t)numel * vnp_cuda_dtype_size(t->dtype) > t->nbytes)
        return vnp_fail(err, VNP_ESHAPE, "tensor '%s' holds fewer bytes than its shape needs",
                        name);
    if (c->fp8 && kind == VNP_WEIGHT_GEMM && numel > 0)
        return upload_fp8(be, c, t, (size_t)numel, out, err);
    vnp_dtype dt = kind == VNP_WEIGHT_VECTOR ? VNP_DT_F32 : c->act;
    vnp_code rc = cu_alloc(c, (size_t)numel, dt, out, err);
    if (!rc && numel > 0 && (rc = upload_convert(c, t->data, t->dtype, (size_t)numel, out, err)))
        cu_free_buf(be, out);
    if (rc)
        vnp_error_prefix(err, "tensor '%s': ", name);
    return rc;
}

static vnp_code cu_upload_f32(vnp_backend *be, const float *src, size_t n, vnp_buf *out,
                              vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    vnp_code rc = cu_alloc(c, n, VNP_DT_F32, out, err);
    if (rc || n == 0)
        return rc;
    if ((rc = h2d_sync(c, out->ptr, src, n * 4, err)))
        cu_free_buf(be, out);
    return rc;
}

static vnp_code cu_upload_i32(vnp_backend *be, const int32_t *src, size_t n, vnp_buf *dst,
                              vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    if (dst->dtype != VNP_DT_I32 || dst->n < n)
        return vnp_fail(err, VNP_EINVAL, "upload of %zu ids into a buffer of %zu %s elements", n,
                        dst->n, vnp_dtype_name(dst->dtype));
    vnp_code rc = VNP_CUDA_CHECK(cudaSetDevice(c->device), c->device, err);
    if (rc || n == 0)
        return rc;
    /* Ordered on the stream after the kernels still reading the previous ids. */
    return VNP_CUDA_CHECK(cudaMemcpyAsync(dst->ptr, src, n * 4, cudaMemcpyHostToDevice, c->stream),
                          c->device, err);
}

static vnp_code cu_download_f32(vnp_backend *be, const vnp_buf *src, size_t n, float *dst,
                                vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    if (n > src->n)
        return vnp_fail(err, VNP_EINVAL, "CUDA: download of %zu elements from a buffer of %zu",
                        n, src->n);
    vnp_code rc = VNP_CUDA_CHECK(cudaSetDevice(c->device), c->device, err);
    if (rc || n == 0)
        return rc;
    const void *from = src->ptr;
    if (src->dtype != VNP_DT_F32) {
        rc = vnp_cuda_reserve(c, &c->scratch, &c->scratch_bytes, n * 4,
                              "allocating a download buffer", err);
        if (!rc)
            rc = vnp_cuda_convert(c, src->ptr, src->dtype, c->scratch, VNP_DT_F32, n, err);
        if (rc)
            return rc;
        from = c->scratch;
    }
    rc = VNP_CUDA_CHECK(cudaMemcpyAsync(dst, from, n * 4, cudaMemcpyDeviceToHost, c->stream),
                        c->device, err);
    if (!rc)
        rc = VNP_CUDA_CHECK(cudaStreamSynchronize(c->stream), c->device, err);
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
    if (dst->n < n)
        return vnp_fail(err, VNP_EINVAL, "copy of %zu values into a buffer of %zu on cuda:%d",
                        n, dst->n, c->device);
    vnp_code rc = VNP_CUDA_CHECK(cudaSetDevice(c->device), c->device, err);
    if (rc || n == 0)
        return rc;
    return h2d_sync(c, dst->ptr, src, n * vnp_cuda_dtype_size(dst->dtype), err);
}

static vnp_code cu_copy_out(vnp_backend *be, const vnp_buf *src, size_t n, void *dst,
                            vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    if (src->n < n)
        return vnp_fail(err, VNP_EINVAL, "copy of %zu values out of a buffer of %zu on cuda:%d",
                        n, src->n, c->device);
    vnp_code rc = VNP_CUDA_CHECK(cudaSetDevice(c->device), c->device, err);
    if (rc || n == 0)
        return rc;
    rc = VNP_CUDA_CHECK(cudaMemcpyAsync(dst, src->ptr, n * vnp_cuda_dtype_size(src->dtype),
                                        cudaMemcpyDeviceToHost, c->stream),
                        c->device, err);
    if (!rc)
        rc = VNP_CUDA_CHECK(cudaStreamSynchronize(c->stream), c->device, err);
    return rc;
}

/* ---- asynchronous batches ---- */
static vnp_code cu_host_alloc(vnp_backend *be, size_t bytes, void **out, vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    *out = NULL;
    vnp_code rc = VNP_CUDA_CHECK(cudaSetDevice(c->device), c->device, err);
    if (rc)
        return rc;
    /* Portable: pinned for every device's context, so a buffer may also be handed
     * to a backend on another GPU. */
    if ((rc = VNP_CUDA_CHECK(cudaHostAlloc(out, bytes ? bytes : 1, cudaHostAllocPortable),
                             c->device, err))) {
        *out = NULL;
        vnp_error_prefix(err, "allocating %zu bytes of pinned host memory: ", bytes);
    }
    return rc;
}

static void cu_host_free(vnp_backend *be, void *p)
{
    vnp_cuda *c = vnp_cuda_of(be);
    if (!p)
        return;
    vnp_error e;
    warn_if(VNP_CUDA_CHECK(cudaSetDevice(c->device), c->device, &e), &e);
    warn_if(VNP_CUDA_CHECK(cudaFreeHost(p), c->device, &e), &e);
}

static vnp_code cu_download_f32_async(vnp_backend *be, const vnp_buf *src, size_t n, float *dst,
                                      vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    if (src->dtype != VNP_DT_F32 || n > src->n)
        return vnp_fail(err, VNP_EINVAL,
                        "CUDA (cuda:%d): asynchronous download of %zu floats from a buffer of %zu "
                        "%s elements (it must be F32)",
                        c->device, n, src->n, vnp_dtype_name(src->dtype));
    vnp_code rc = VNP_CUDA_CHECK(cudaSetDevice(c->device), c->device, err);
    if (rc || n == 0)
        return rc;
    return VNP_CUDA_CHECK(cudaMemcpyAsync(dst, src->ptr, n * 4, cudaMemcpyDeviceToHost, c->stream),
                          c->device, err);
}

/* A vnp_event is a cudaEvent_t (itself a pointer) under another name. */
static vnp_code cu_event_create(vnp_backend *be, vnp_event **out, vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    *out = NULL;
    vnp_code rc = VNP_CUDA_CHECK(cudaSetDevice(c->device), c->device, err);
    if (rc)
        return rc;
    /* BlockingSync: a waiting thread sleeps instead of spinning on a core (several
     * worker threads may wait at once); timing is never read. */
    cudaEvent_t ev = NULL;
    rc = VNP_CUDA_CHECK(
        cudaEventCreateWithFlags(&ev, cudaEventDisableTiming | cudaEventBlockingSync), c->device,
        err);
    if (!rc)
        *out = (vnp_event *)ev;
    return rc;
}

static void cu_event_free(vnp_backend *be, vnp_event *ev)
{
    vnp_cuda *c = vnp_cuda_of(be);
    if (!ev)
        return;
    vnp_error e;
    warn_if(VNP_CUDA_CHECK(cudaSetDevice(c->device), c->device, &e), &e);
    warn_if(VNP_CUDA_CHECK(cudaEventDestroy((cudaEvent_t)ev), c->device, &e), &e);
}

static vnp_code cu_event_record(vnp_backend *be, vnp_event *ev, vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    vnp_code rc = VNP_CUDA_CHECK(cudaSetDevice(c->device), c->device, err);
    if (rc)
        return rc;
    return VNP_CUDA_CHECK(cudaEventRecord((cudaEvent_t)ev, c->stream), c->device, err);
}

static vnp_code cu_event_wait(vnp_backend *be, vnp_event *ev, vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    vnp_code rc = VNP_CUDA_CHECK(cudaSetDevice(c->device), c->device, err);
    if (rc)
        return rc;
    /* A fault in any kernel of the batch surfaces here. */
    return VNP_CUDA_CHECK(cudaEventSynchronize((cudaEvent_t)ev), c->device, err);
}

/* ---- the device ---- */
static vnp_code cu_mem_info(vnp_backend *be, size_t *free_bytes, size_t *total_bytes,
                            vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    *free_bytes = *total_bytes = 0;
    vnp_code rc = VNP_CUDA_CHECK(cudaSetDevice(c->device), c->device, err);
    if (!rc)
        rc = VNP_CUDA_CHECK(cudaMemGetInfo(free_bytes, total_bytes), c->device, err);
    return rc;
}

static vnp_code cu_synchronize(vnp_backend *be, vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    vnp_code rc = VNP_CUDA_CHECK(cudaSetDevice(c->device), c->device, err);
    if (!rc)
        rc = VNP_CUDA_CHECK(cudaStreamSynchronize(c->stream), c->device, err);
    return rc;
}

/* ---- guard ---- */
static void cu_guard_reset(vnp_backend *be)
{
    vnp_cuda *c = vnp_cuda_of(be);
    /* No status to return: a failure is kept for the next guard_save to report. */
    vnp_error e;
    vnp_code rc = VNP_CUDA_CHECK(cudaSetDevice(c->device), c->device, &e);
    if (!rc)
        rc = VNP_CUDA_CHECK(cudaMemsetAsync(c->flag, 0, sizeof(int), c->stream), c->device, &e);
    if (rc && !c->reset_failed) {
        c->reset_failed = 1;
        c->reset_err = e;
    }
    /* The debug poison: armed for this batch only (a batch that pooled nothing does
     * not pass it on), consumed by the batch's first mean_pool. */
    long batch = c->batches++;
    c->poison_pending = c->poison_batch >= 0 &&
                        (c->act == VNP_DT_F32 ? c->poison_fp32 : batch == c->poison_batch);
}

static vnp_code cu_guard_save(vnp_backend *be, uint32_t *dst, vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    if (c->reset_failed) {
        c->reset_failed = 0;
        if (err)
            *err = c->reset_err;
        return c->reset_err.code;
    }
    vnp_code rc = VNP_CUDA_CHECK(cudaSetDevice(c->device), c->device, err);
    if (rc)
        return rc;
    static_assert(sizeof *dst == sizeof *c->flag, "the guard word is 4 bytes");
    return VNP_CUDA_CHECK(
        cudaMemcpyAsync(dst, c->flag, sizeof *dst, cudaMemcpyDeviceToHost, c->stream), c->device,
        err);
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
        vnp_error e;
        warn_if(VNP_CUDA_CHECK(cudaSetDevice(c->device), c->device, &e), &e);
        if (c->stream) /* what is queued may still read the buffers */
            warn_if(VNP_CUDA_CHECK(cudaStreamSynchronize(c->stream), c->device, &e), &e);
        vnp_cuda_gemm_release(c);
        void *bufs[] = {c->workspace, c->flag, c->scratch, c->f8x, c->f8s, c->rope};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
            warn_if(VNP_CUDA_CHECK(cudaFree(bufs[i]), c->device, &e), &e);
        for (int i = 0; i < c->nf8w; i++)
            warn_if(VNP_CUDA_CHECK(cudaFree(c->f8w[i].scale), c->device, &e), &e);
        free(c->f8w);
        for (int i = 0; i < c->nq8a; i++)
            warn_if(VNP_CUDA_CHECK(cudaFree(c->q8a[i].scale), c->device, &e), &e);
        free(c->q8a);
        vnp_cuda_sgemm_release(c);
        if (c->lt)
            warn_if(VNP_CUDA_CHECK(cublasLtDestroy(c->lt), c->device, &e), &e);
        if (c->stream)
            warn_if(VNP_CUDA_CHECK(cudaStreamDestroy(c->stream), c->device, &e), &e);
        free(c);
    }
    free(be);
}

static const vnp_backend_ops g_cuda_ops = {
    .name = "cuda",
    .destroy = cu_destroy,
    .alloc_act = cu_alloc_act,
    .alloc_f32 = cu_alloc_f32,
    .alloc_i32 = cu_alloc_i32,
    .alloc_gemm_in = cu_alloc_gemm_in,
    .upload_weight = cu_upload_weight,
    .upload_f32 = cu_upload_f32,
    .upload_i32 = cu_upload_i32,
    .download_f32 = cu_download_f32,
    .free_buf = cu_free_buf,
    .embedding = vnp_cuda_embedding,
    .linear = vnp_cuda_linear,
    .layernorm = vnp_cuda_layernorm,
    .gated_gelu = vnp_cuda_gated_gelu,
    .linear_gated_gelu = vnp_cuda_linear_gated_gelu,
    .linear_gated_gelu_fused = vnp_cuda_linear_gated_gelu_fused,
    .attention = vnp_cuda_attention,
    .mean_pool = vnp_cuda_mean_pool,
    .scale_shift = vnp_cuda_scale_shift,
    .gemm = vnp_cuda_gemm,
    .alloc_dt = cu_alloc_dt,
    .copy_in = cu_copy_in,
    .copy_out = cu_copy_out,
    .bn_relu_dropout_fwd = vnp_cuda_bn_relu_dropout_fwd,
    .bn_relu_dropout_bwd = vnp_cuda_bn_relu_dropout_bwd,
    .softmax_xent = vnp_cuda_softmax_xent,
    .col_sums = vnp_cuda_col_sums,
    .sgd_step = vnp_cuda_sgd_step,
    .mem_info = cu_mem_info,
    .synchronize = cu_synchronize,
    .host_alloc = cu_host_alloc,
    .host_free = cu_host_free,
    .download_f32_async = cu_download_f32_async,
    .event_create = cu_event_create,
    .event_free = cu_event_free,
    .event_record = cu_event_record,
    .event_wait = cu_event_wait,
    .guard_reset = cu_guard_reset,
    .guard_save = cu_guard_save,
};

/* A debug switch `name` that takes one of `n` values: *idx its index in `choices`, -1
 * when unset or empty; any other value is refused, naming the variable and `want`. */
static vnp_code env_choice(const char *name, const char *const *choices, int n, const char *want,
                           int *idx, vnp_error *err)
{
    const char *v = getenv(name);
    *idx = -1;
    if (!v || !*v)
        return VNP_OK;
    for (int i = 0; i < n; i++)
        if (!strcmp(v, choices[i])) {
            *idx = i;
            return VNP_OK;
        }
    return vnp_fail(err, VNP_EINVAL, "%s=%s: want %s, or unset it", name, v, want);
}

extern "C" vnp_code vnp_backend_cuda_create(int device, vnp_precision prec, vnp_backend **out,
                                            vnp_error *err)
{
    *out = NULL;
    vnp_device dev;
    vnp_code rc = vnp_backend_cuda_query(device, &dev, err);
    if (rc)
        return rc;
    if (!vnp_precision_info_of(prec))
        return vnp_fail(err, VNP_EINVAL, "CUDA backend: unknown precision %d", (int)prec);
    if ((rc = vnp_backend_cuda_arch_check(VNP_CUDA_ARCH_LIST, &dev, err)))
        return rc;
    if ((rc = VNP_CUDA_CHECK(cudaSetDevice(device), device, err)))
        return rc;
    /* What the gate cannot know from the list ("native", "all"): whether this GPU has a
     * kernel image to run. */
    cudaFuncAttributes fa;
    cudaError_t fe = cudaFuncGetAttributes(&fa, convert_kernel<float, float>);
    if (fe == cudaErrorNoKernelImageForDevice || fe == cudaErrorInvalidDeviceFunction)
        return vnp_fail(err, VNP_EUNSUPPORTED,
                        "GPU %d (%s, compute capability %d.%d): this build has no CUDA code for "
                        "it (built for %s); rebuild with -DCMAKE_CUDA_ARCHITECTURES naming %d%d, "
                        "or use --device cpu",
                        device, dev.name, dev.cc_major, dev.cc_minor, VNP_CUDA_ARCH_LIST,
                        dev.cc_major, dev.cc_minor);
    if ((rc = VNP_CUDA_CHECK(fe, device, err)))
        return rc;

    const vnp_precision_info *want = vnp_precision_info_of(prec);
    if (want && want->gemm == VNP_FMT_E4M3 && dev.cc_major * 10 + dev.cc_minor < 89)
        return vnp_fail(err, VNP_EUNSUPPORTED,
                        "GPU %d (%s) has compute capability %d.%d; --precision %s needs FP8 "
                        "tensor cores (8.9 or newer: Ada, Hopper); use fp16",
                        device, dev.name, dev.cc_major, dev.cc_minor, vnp_precision_name(prec));
    /* the debug switches of the kernels, each one of a few values (see env_choice) */
    static const char *const clusters[] = {"1x1", "2x1", "1x2", "2x2"};
    static const char *const tiles[] = {"128x128", "128x256"};
    static const char *const orders[] = {"seqs", "heads"};
    static const char *const epis[] = {"consumers", "warps", "interleaved"};
    static const char *const levels[] = {"0", "1", "2"};
    static const char *const hpbs[] = {"1", "2", "4", "8"};
    static const char *const lnrows[] = {"floats", "packed"};
    static const char *const awarps[] = {"2", "4"};
    int kcl, ktl, kag, kep, s9, khp, kln, kaw;
    const struct {
        const char *name;
        const char *const *choices;
        int n;
        const char *want;
        int *idx;
    } sw[] = {
        {"VIRNUCPRO_DEBUG_SM90_CLUSTER", clusters, 4,
         "1x1, 2x1 (the default), 1x2 or 2x2 (tiles of x by tiles of W per cluster)", &kcl},
        {"VIRNUCPRO_DEBUG_SM90_TILE", tiles, 2,
         "128x128 or 128x256 (rows of x by rows of W per tile; the default 128x256 where W's "
         "rows allow)",
         &ktl},
        {"VIRNUCPRO_DEBUG_ATTN_GRID", orders, 2,
         "heads (a sequence's heads in neighbouring blocks, the default) or seqs", &kag},
        {"VIRNUCPRO_DEBUG_SM90_EPILOGUE", epis, 3,
         "warps (both GELU epilogues on the producer's spare warps), consumers (both on the "
         "consumers after each tile), interleaved (both on the consumers, during their next "
         "tile's main loop); "
         "unset, the default: ESM-2's on the warps, DNABERT-S's gated one interleaved",
         &kep},
        {"VIRNUCPRO_DEBUG_ATTN_HEADS", hpbs, 4,
         "1 (the default), 2, 4 or 8 (heads a block of short-sequence attention takes)", &khp},
        {"VIRNUCPRO_DEBUG_ATTN_WARPS", awarps, 2,
         "2 or 4 (warps a block of short-sequence attention takes for sequences of at most 64 "
         "tokens; unset, the default: 2 up to 32 tokens, else 4)",
         &kaw},
        {"VIRNUCPRO_DEBUG_LN_ROWS", lnrows, 2,
         "packed (the default: LayerNorm rows without a residual held as loaded) or floats "
         "(held as floats, as rows with a residual are)",
         &kln},
        {"VIRNUCPRO_DEBUG_SM90_GEMM", levels, 3,
         "0 (the portable kernels), 1 (the fused FFN up-projections, the default) or 2 (every "
         "encoder linear)",
         &s9},
    };
    for (size_t i = 0; i < sizeof sw / sizeof sw[0]; i++)
        if ((rc = env_choice(sw[i].name, sw[i].choices, sw[i].n, sw[i].want, sw[i].idx, err)))
            return rc;
    /* the sm_90 GEMM's cluster shape (rows x columns of tiles sharing loads), its tile,
     * where its GELU epilogues run, and the order of short-sequence attention's blocks */
    const int scm = kcl < 0 ? 2 : clusters[kcl][0] - '0', scn = kcl < 0 ? 1 : clusters[kcl][2] - '0';
    const int swide = ktl != 0, sheads = kag != 0;
    const int soff = kep < 0    ? 1 << VNP_SM90_GELU
                     : kep == 1 ? 1 << VNP_SM90_GELU | 1 << VNP_SM90_GATED
                                : 0;
    const int sinter = kep < 0     ? 1 << VNP_SM90_GATED
                       : kep >= 2 ? 1 << VNP_SM90_GELU | 1 << VNP_SM90_GATED
                                  : 0;
    vnp_backend *be = (vnp_backend *)calloc(1, sizeof *be);
    vnp_cuda *c = (vnp_cuda *)calloc(1, sizeof *c);
    if (!be || !c) {
        free(be);
        free(c);
        return vnp_fail(err, VNP_ENOMEM, "out of memory creating the CUDA backend");
    }
    be->ops = &g_cuda_ops;
    be->prec = prec;
    be->threads = 1;
    be->device = dev;
    be->impl = c;
    c->device = device;
    const vnp_precision_info *pi = vnp_precision_info_of(prec);
    c->fp8 = pi && pi->gemm == VNP_FMT_E4M3 ? (pi->per_tensor ? 2 : 1) : 0;
    /* FP8 keeps activations in FP16 (docs/PRECISION.md) */
    c->act = prec == VNP_PREC_FP16 || c->fp8 ? VNP_DT_F16
             : prec == VNP_PREC_BF16         ? VNP_DT_BF16
                                             : VNP_DT_F32;
    snprintf(be->name, sizeof be->name, "cuda:%d %s", device, vnp_precision_name(prec));
    read_poison_switch(c, be->name);
    const char *sk = getenv("VIRNUCPRO_DEBUG_SCALAR_KERNELS");
    c->scalar_only = sk && !strcmp(sk, "1");
    c->cc = dev.cc_major * 10 + dev.cc_minor;
    c->sm90_cm = scm;
    c->sm90_cn = scn;
    c->sm90_wide = swide;
    c->sm90_offload = soff;
    c->sm90_inter = sinter;
    c->attn_heads_x = sheads;
    c->attn_hpb = khp < 0 ? 1 : 1 << khp;
    c->ln_packed = kln != 0;
    c->attn_warps = kaw < 0 ? 0 : kaw == 0 ? 2 : 4;
#ifdef VNP_HAVE_SM90A
    /* (FP16/BF16 activations only: FP32 and FP8 GEMMs never take it) */
    c->sm90_gemm = c->cc == 90 && !c->scalar_only && !c->fp8 &&
                           (c->act == VNP_DT_F16 || c->act == VNP_DT_BF16)
                       ? (s9 < 0 ? 1 : s9)
                       : 0;
#endif
    const char *gp = getenv("VIRNUCPRO_DEBUG_GEMM_PICKS");
    c->gemm_picks = gp && !strcmp(gp, "1");
    if (c->fp8) {
        const char *fu = getenv("VIRNUCPRO_DEBUG_FP8_UNFUSED");
        const char *fp = getenv("VIRNUCPRO_DEBUG_FP8_PROMOTE");
        c->fp8_unfused = fu && !strcmp(fu, "1");
        c->fp8_fast_accum = !(fp && !strcmp(fp, "1"));
        if (c->fp8_unfused)
            vnp_warn("debug: VIRNUCPRO_DEBUG_FP8_UNFUSED=1: %s quantises each FP8 GEMM's "
                     "input in a pass of its own",
                     be->name);
        if (!c->fp8_fast_accum)
            vnp_warn("debug: VIRNUCPRO_DEBUG_FP8_PROMOTE=1: %s promotes the FP8 GEMMs' sums "
                     "to FP32 as it goes (cuBLASLt without FAST_ACCUM)",
                     be->name);
    }

    rc = VNP_CUDA_CHECK(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking), device, err);
    if (!rc)
        rc = VNP_CUDA_CHECK(cudaDeviceGetAttribute(&c->sms, cudaDevAttrMultiProcessorCount, device),
                            device, err);
    if (!rc)
        rc = VNP_CUDA_CHECK(cublasLtCreate(&c->lt), device, err);
    if (!rc) {
        c->workspace_size = (size_t)64 << 20;
        rc = VNP_CUDA_CHECK(cudaMalloc(&c->workspace, c->workspace_size), device, err);
    }
    if (!rc)
        rc = VNP_CUDA_CHECK(cudaMalloc((void **)&c->flag, sizeof(int)), device, err);
    if (!rc)
        rc = VNP_CUDA_CHECK(cudaMemsetAsync(c->flag, 0, sizeof(int), c->stream), device, err);
#ifdef VNP_HAVE_SM90A
    /* the sm_90 GEMM's clusters must fit here (a MIG slice or a driver may refuse them):
     * by default the portable path takes over with a warning; asked for, it is an error */
    if (!rc && c->sm90_gemm) {
        vnp_error e9;
        const vnp_code r9 = vnp_cuda_gemm_sm90_probe(c, &e9);
        if (r9) {
            if (s9 >= 0) { /* asked for explicitly */
                if (err)
                    *err = e9;
                rc = r9;
            } else {
                vnp_warn("%s: the sm_90 GEMM cannot run here (%s); using the portable kernels",
                         be->name, e9.msg);
                c->sm90_gemm = 0;
            }
        }
    }
#endif
    if (rc) {
        vnp_error_prefix(err, "creating the CUDA backend: ");
        cu_destroy(be);
        return rc;
    }
    *out = be;
    return VNP_OK;
}
