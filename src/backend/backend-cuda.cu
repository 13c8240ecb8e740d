/* backend-cuda.cu - the CUDA device: GPU 0, one non-blocking stream, device
 * memory, and cuBLAS for GEMM. cuBLAS is opened with dlopen on first use
 * so that the binary neither carries nor needs it until a GPU computes;
 * the CUDA runtime itself is linked statically and loads the driver
 * library lazily, so a machine without a driver starts us just as fast. */
#include "backend-impl.h"
#include "cuda-try.h"

#include <cublas_api.h>
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>


/* The cuBLAS functions we use, resolved at run time. */
typedef cublasStatus_t (*cublas_create_fn)(cublasHandle_t *);
typedef cublasStatus_t (*cublas_set_stream_fn)(cublasHandle_t, cudaStream_t);
typedef cublasStatus_t (*cublas_set_math_mode_fn)(cublasHandle_t, cublasMath_t);
typedef cublasStatus_t (*cublas_gemm_ex_fn)(
    cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
    const void *, const void *, cudaDataType, int, const void *, cudaDataType,
    int, const void *, void *, cudaDataType, int, cublasComputeType_t,
    cublasGemmAlgo_t);
typedef cublasStatus_t (*cublas_gemm_sb_fn)(
    cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
    const void *, const void *, cudaDataType, int, long long, const void *,
    cudaDataType, int, long long, const void *, void *, cudaDataType, int,
    long long, int, cublasComputeType_t, cublasGemmAlgo_t);

typedef struct {
    int device;
    cudaStream_t stream;
    void *cublas_lib;
    cublasHandle_t cublas;
    cublas_gemm_ex_fn gemm_ex;
    cublas_gemm_sb_fn gemm_sb;
    int cublas_tried;
} cuda_ctx;

static cuda_ctx the_ctx;

static int load_cublas(cuda_ctx *c)
{
    if (c->cublas)
        return ELO_OK;
    if (c->cublas_tried)
        return elo_seterr(ELO_NODEVICE, "cuBLAS could not be loaded");
    c->cublas_tried = 1;
    static const char *names[] = {
        "libcublas.so.13", "libcublas.so.12", "libcublas.so",
        "/usr/local/cuda/lib64/libcublas.so.13", "/usr/local/cuda/lib64/libcublas.so.12",
        "/usr/local/cuda/lib64/libcublas.so"};
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !c->cublas_lib; i++)
        c->cublas_lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!c->cublas_lib)
        return elo_seterr(ELO_NODEVICE, "cannot load cuBLAS (libcublas.so): %s", dlerror());
    cublas_create_fn create = (cublas_create_fn)dlsym(c->cublas_lib, "cublasCreate_v2");
    cublas_set_stream_fn set_stream =
        (cublas_set_stream_fn)dlsym(c->cublas_lib, "cublasSetStream_v2");
    cublas_set_math_mode_fn set_math =
        (cublas_set_math_mode_fn)dlsym(c->cublas_lib, "cublasSetMathMode");
    c->gemm_ex = (cublas_gemm_ex_fn)dlsym(c->cublas_lib, "cublasGemmEx");
    c->gemm_sb = (cublas_gemm_sb_fn)dlsym(c->cublas_lib, "cublasGemmStridedBatchedEx");
    if (!create || !set_stream || !set_math || !c->gemm_ex || !c->gemm_sb)
        return elo_seterr(ELO_NODEVICE, "cuBLAS lacks the functions we need");
    if (create(&c->cublas) != CUBLAS_STATUS_SUCCESS)
        return elo_seterr(ELO_NODEVICE, "cublasCreate failed");
    set_stream(c->cublas, c->stream);
    set_math(c->cublas, CUBLAS_DEFAULT_MATH);
    return ELO_OK;
}

static const char *cuda_name(elo_backend *b) { (void)b; return "cuda"; }

static int cuda_alloc(elo_backend *b, size_t bytes, void **out)
{
    (void)b;
    *out = NULL;
    cudaError_t err = cudaMalloc(out, bytes ? bytes : 1);
    if (err != cudaSuccess) {
        cudaGetLastError();
        return elo_seterr(err == cudaErrorMemoryAllocation ? ELO_NOMEM : ELO_DEVICE,
                          "cudaMalloc(%zu bytes): %s", bytes, cudaGetErrorString(err));
    }
    return ELO_OK;
}

static void cuda_free(elo_backend *b, void *ptr) { (void)b; cudaFree(ptr); }

static int cuda_upload(elo_backend *b, void *dst, const void *src, size_t n)
{
    cuda_ctx *c = (cuda_ctx *)b->ctx;
    CUDA_TRY(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, c->stream));
    CUDA_TRY(cudaStreamSynchronize(c->stream));
    return ELO_OK;
}

static int cuda_download(elo_backend *b, void *dst, const void *src, size_t n)
{
    cuda_ctx *c = (cuda_ctx *)b->ctx;
    CUDA_TRY(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, c->stream));
    CUDA_TRY(cudaStreamSynchronize(c->stream));
    return ELO_OK;
}

static int cuda_memset(elo_backend *b, void *dst, int value, size_t n)
{
    cuda_ctx *c = (cuda_ctx *)b->ctx;
    CUDA_TRY(cudaMemsetAsync(dst, value, n, c->stream));
    return ELO_OK;
}

static cudaDataType cuda_type(elo_dtype t)
{
    switch (t) {
    case ELO_DTYPE_F16: return CUDA_R_16F;
    case ELO_DTYPE_BF16: return CUDA_R_16BF;
    default: return CUDA_R_32F;
    }
}

/* Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T, so the
 * operands swap and m/n swap. */
static int cuda_gemm(elo_backend *b, const elo_gemm *g)
{
    cuda_ctx *c = (cuda_ctx *)b->ctx;
    int rc = load_cublas(c);
    if (rc < 0)
        return rc;
    cublasOperation_t ta = g->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t tb = g->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
    if (g->in_type == ELO_DTYPE_F32 && g->allow_tf32)
        compute = CUBLAS_COMPUTE_32F_FAST_TF32;
    cublasStatus_t st;
    if (g->batch > 1)
        st = c->gemm_sb(c->cublas, tb, ta, g->n, g->m, g->k, &g->alpha, g->b,
                        cuda_type(g->in_type), g->ldb, g->stride_b, g->a,
                        cuda_type(g->in_type), g->lda, g->stride_a, &g->beta, g->c,
                        cuda_type(g->out_type), g->ldc, g->stride_c, g->batch,
                        compute, CUBLAS_GEMM_DEFAULT);
    else
        st = c->gemm_ex(c->cublas, tb, ta, g->n, g->m, g->k, &g->alpha, g->b,
                        cuda_type(g->in_type), g->ldb, g->a, cuda_type(g->in_type),
                        g->lda, &g->beta, g->c, cuda_type(g->out_type), g->ldc,
                        compute, CUBLAS_GEMM_DEFAULT);
    if (st != CUBLAS_STATUS_SUCCESS)
        return elo_seterr(ELO_DEVICE, "cuBLAS GEMM failed (status %d)", (int)st);
    elo_backend_count_op("gemm");
    return ELO_OK;
}

static int cuda_sync(elo_backend *b)
{
    cuda_ctx *c = (cuda_ctx *)b->ctx;
    CUDA_TRY(cudaStreamSynchronize(c->stream));
    return ELO_OK;
}

static const struct elo_backend_iface cuda_iface = {
    cuda_name, cuda_alloc, cuda_free, cuda_upload, cuda_download,
    cuda_memset, cuda_gemm, cuda_sync,
};

/* Counts GPUs; explains plainly when there is no driver at all. */
static int device_count(int *count)
{
    *count = 0;
    int drv = 0;
    cudaDriverGetVersion(&drv);
    if (drv == 0)
        return elo_seterr(ELO_NODEVICE, "no NVIDIA driver found (libcuda.so.1 is not installed)");
    cudaError_t err = cudaGetDeviceCount(count);
    if (err != cudaSuccess) {
        cudaGetLastError();
        return elo_seterr(ELO_NODEVICE, "%s (driver %d.%d)", cudaGetErrorString(err),
                          drv / 1000, (drv % 1000) / 10);
    }
    if (*count == 0)
        return elo_seterr(ELO_NODEVICE, "no CUDA GPU found");
    return ELO_OK;
}

extern "C" int elo__cuda_backend_init(elo_backend *b)
{
    int count = 0;
    int rc = device_count(&count);
    if (rc < 0)
        return rc;
    the_ctx.device = 0;
    CUDA_TRY(cudaSetDevice(0));
    CUDA_TRY(cudaStreamCreateWithFlags(&the_ctx.stream, cudaStreamNonBlocking));
    b->iface = &cuda_iface;
    b->kind = ELO_DEVICE_CUDA;
    b->ctx = &the_ctx;
    return ELO_OK;
}

extern "C" void *elo__cuda_backend_stream(elo_backend *b)
{
    return ((cuda_ctx *)b->ctx)->stream;
}

extern "C" int elo__cuda_probe(elo_gpu_info *info)
{
    memset(info, 0, sizeof *info);
    int drv = 0, rt = 0;
    cudaDriverGetVersion(&drv);
    cudaRuntimeGetVersion(&rt);
    info->driver_version = drv;
    info->runtime_version = rt;
    int count = 0;
    int rc = device_count(&count);
    if (rc < 0)
        return rc;
    cudaDeviceProp p;
    CUDA_TRY(cudaGetDeviceProperties(&p, 0));
    snprintf(info->name, sizeof info->name, "%.127s", p.name);
    info->index = 0;
    info->cc_major = p.major;
    info->cc_minor = p.minor;
    info->sm_count = p.multiProcessorCount;
    info->l2_bytes = (size_t)p.l2CacheSize;
    info->smem_per_block_optin = p.sharedMemPerBlockOptin;
    int clock_khz = 0, bus_bits = 0;
    cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, 0);
    cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, 0);
    info->mem_bandwidth_gbs = 2.0 * clock_khz * 1e3 * (bus_bits / 8.0) / 1e9;
    CUDA_TRY(cudaSetDevice(0));
    size_t free_b = 0, total_b = 0;
    CUDA_TRY(cudaMemGetInfo(&free_b, &total_b));
    info->mem_free = free_b;
    info->mem_total = total_b;
    return ELO_OK;
}
