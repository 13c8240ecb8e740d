/* backend-cuda.cu - the CUDA device: GPU 0, one non-blocking stream, device
 * memory, and cuBLAS for GEMM (cuBLASLt, tuned per shape, for single
 * half-precision products). cuBLAS is opened with dlopen on first use
 * so that the binary neither carries nor needs it until a GPU computes;
 * the CUDA runtime itself is linked statically and loads the driver
 * library lazily, so a machine without a driver starts us just as fast. */
#include "backend-impl.h"
#include "cuda-try.h"

#include <cublasLt.h>
#include <cublas_api.h>
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <stdlib.h>
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

/* The cuBLASLt functions we use. */
typedef cublasStatus_t (*lt_create_fn)(cublasLtHandle_t *);
typedef cublasStatus_t (*lt_desc_create_fn)(cublasLtMatmulDesc_t *, cublasComputeType_t,
                                            cudaDataType_t);
typedef cublasStatus_t (*lt_desc_set_fn)(cublasLtMatmulDesc_t, cublasLtMatmulDescAttributes_t,
                                         const void *, size_t);
typedef cublasStatus_t (*lt_layout_create_fn)(cublasLtMatrixLayout_t *, cudaDataType, uint64_t,
                                              uint64_t, int64_t);
typedef cublasStatus_t (*lt_pref_create_fn)(cublasLtMatmulPreference_t *);
typedef cublasStatus_t (*lt_pref_set_fn)(cublasLtMatmulPreference_t,
                                         cublasLtMatmulPreferenceAttributes_t, const void *,
                                         size_t);
typedef cublasStatus_t (*lt_pref_destroy_fn)(cublasLtMatmulPreference_t);
typedef cublasStatus_t (*lt_heuristic_fn)(cublasLtHandle_t, cublasLtMatmulDesc_t,
                                          cublasLtMatrixLayout_t, cublasLtMatrixLayout_t,
                                          cublasLtMatrixLayout_t, cublasLtMatrixLayout_t,
                                          cublasLtMatmulPreference_t, int,
                                          cublasLtMatmulHeuristicResult_t *, int *);
typedef cublasStatus_t (*lt_matmul_fn)(cublasLtHandle_t, cublasLtMatmulDesc_t, const void *,
                                       const void *, cublasLtMatrixLayout_t, const void *,
                                       cublasLtMatrixLayout_t, const void *, const void *,
                                       cublasLtMatrixLayout_t, void *, cublasLtMatrixLayout_t,
                                       const cublasLtMatmulAlgo_t *, void *, size_t,
                                       cudaStream_t);

/* One GEMM shape's cuBLASLt set-up and the algorithm chosen for it. */
typedef struct {
    int ta, tb, m, n, k, lda, ldb, ldc;
    elo_dtype in_type, out_type;
    int usable;                 /* 0: cuBLASLt had no algorithm; use GemmEx */
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulAlgo_t algo;
} lt_plan;

#define LT_PLANS 64
#define LT_ALGOS 8
#define LT_WORKSPACE (32u << 20)

typedef struct {
    int device;
    cudaStream_t stream;
    void *cublas_lib;
    cublasHandle_t cublas;
    cublas_gemm_ex_fn gemm_ex;
    cublas_gemm_sb_fn gemm_sb;
    int cublas_tried;
    /* cuBLASLt (lt_ready 1: loaded; -1: unavailable or switched off) */
    int lt_ready;
    void *lt_lib;
    cublasLtHandle_t lt;
    lt_desc_create_fn lt_desc_create;
    lt_desc_set_fn lt_desc_set;
    lt_layout_create_fn lt_layout_create;
    lt_pref_create_fn lt_pref_create;
    lt_pref_set_fn lt_pref_set;
    lt_pref_destroy_fn lt_pref_destroy;
    lt_heuristic_fn lt_heuristic;
    lt_matmul_fn lt_matmul;
    void *lt_ws;
    lt_plan plans[LT_PLANS];
    int nplans;
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

/* ---- cuBLASLt ------------------------------------------------------------
 *
 * DESIGN: cublasGemmEx picks its kernel from a fixed heuristic; for the
 * encoder's shapes (32768 x {1152, 384, 1536} x {384, 1536}, f16 in) an
 * H200 ran the best of cuBLASLt's candidates 20-30 % faster (QKV with f16
 * output: 0.041 vs 0.053 ms). So a single (not batched) GEMM with half
 * inputs whose caller asks for it (elo_gemm.tune: the embedder, whose
 * shapes recur; not the vector store, whose row counts change with every
 * add) goes through cuBLASLt: on the first call of a shape we ask for up
 * to LT_ALGOS candidates (32 MiB workspace), time each on the call's own
 * operands (beta = 0 only, so C may be overwritten; not while a CUDA graph
 * is being captured, where the first candidate is taken) and keep the
 * fastest in a small per-shape table. Shapes beyond the table, operands
 * not 256-byte aligned (the alignment the candidates are chosen for) and
 * any cuBLASLt failure fall back to cublasGemmEx. ELOHIM_CUBLASLT=0 turns
 * it off (A/B measurements). Like the rest of this backend (one stream, one
 * cuBLAS handle) the table expects one calling thread at a time; the plans
 * and the workspace live as long as the process. */
static int load_lt(cuda_ctx *c)
{
    if (c->lt_ready)
        return c->lt_ready > 0;
    c->lt_ready = -1;
    const char *off = getenv("ELOHIM_CUBLASLT");
    if (off && !strcmp(off, "0"))
        return 0;
    static const char *names[] = {
        "libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so",
        "/usr/local/cuda/lib64/libcublasLt.so.13", "/usr/local/cuda/lib64/libcublasLt.so.12"};
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !c->lt_lib; i++)
        c->lt_lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!c->lt_lib)
        return 0;
    lt_create_fn create = (lt_create_fn)dlsym(c->lt_lib, "cublasLtCreate");
    c->lt_desc_create = (lt_desc_create_fn)dlsym(c->lt_lib, "cublasLtMatmulDescCreate");
    c->lt_desc_set = (lt_desc_set_fn)dlsym(c->lt_lib, "cublasLtMatmulDescSetAttribute");
    c->lt_layout_create = (lt_layout_create_fn)dlsym(c->lt_lib, "cublasLtMatrixLayoutCreate");
    c->lt_pref_create = (lt_pref_create_fn)dlsym(c->lt_lib, "cublasLtMatmulPreferenceCreate");
    c->lt_pref_set = (lt_pref_set_fn)dlsym(c->lt_lib, "cublasLtMatmulPreferenceSetAttribute");
    c->lt_pref_destroy = (lt_pref_destroy_fn)dlsym(c->lt_lib, "cublasLtMatmulPreferenceDestroy");
    c->lt_heuristic = (lt_heuristic_fn)dlsym(c->lt_lib, "cublasLtMatmulAlgoGetHeuristic");
    c->lt_matmul = (lt_matmul_fn)dlsym(c->lt_lib, "cublasLtMatmul");
    if (!create || !c->lt_desc_create || !c->lt_desc_set || !c->lt_layout_create ||
        !c->lt_pref_create || !c->lt_pref_set || !c->lt_pref_destroy || !c->lt_heuristic ||
        !c->lt_matmul || create(&c->lt) != CUBLAS_STATUS_SUCCESS)
        return 0;
    if (cudaMalloc(&c->lt_ws, LT_WORKSPACE) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    c->lt_ready = 1;
    return 1;
}

/* Times `algo` on the plan's operands: the best of three runs, in ms. */
static float lt_time(cuda_ctx *c, lt_plan *p, const cublasLtMatmulAlgo_t *algo, const elo_gemm *g)
{
    cudaEvent_t e0, e1;
    float best = -1.0f;
    if (cudaEventCreate(&e0) != cudaSuccess)
        return -1.0f;
    if (cudaEventCreate(&e1) != cudaSuccess) {
        cudaEventDestroy(e0);
        return -1.0f;
    }
    for (int rep = 0; rep < 4; rep++) {
        cudaEventRecord(e0, c->stream);
        cublasStatus_t st = c->lt_matmul(c->lt, p->desc, &g->alpha, g->b, p->la, g->a, p->lb,
                                         &g->beta, g->c, p->lc, g->c, p->lc, algo, c->lt_ws,
                                         LT_WORKSPACE, c->stream);
        cudaEventRecord(e1, c->stream);
        float ms = 0;
        if (st != CUBLAS_STATUS_SUCCESS || cudaEventSynchronize(e1) != cudaSuccess ||
            cudaEventElapsedTime(&ms, e0, e1) != cudaSuccess) {
            best = -1.0f;
            break;
        }
        if (rep > 0 && (best < 0 || ms < best)) /* run 0 warms up */
            best = ms;
    }
    cudaGetLastError();
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    return best;
}

/* Sets up the plan for g's shape; p->usable says whether cuBLASLt took it. */
static void lt_plan_new(cuda_ctx *c, lt_plan *p, const elo_gemm *g)
{
    memset(p, 0, sizeof *p);
    p->ta = g->trans_a;
    p->tb = g->trans_b;
    p->m = g->m;
    p->n = g->n;
    p->k = g->k;
    p->lda = g->lda;
    p->ldb = g->ldb;
    p->ldc = g->ldc;
    p->in_type = g->in_type;
    p->out_type = g->out_type;
    /* column-major C^T [n x m] = op(B)^T [n x k] op(A)^T [k x m] */
    cublasOperation_t opa = g->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t opb = g->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    cudaDataType it = cuda_type(g->in_type), ot = cuda_type(g->out_type);
    if (c->lt_desc_create(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F) != CUBLAS_STATUS_SUCCESS)
        return;
    c->lt_desc_set(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa);
    c->lt_desc_set(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb);
    if (c->lt_layout_create(&p->la, it, opa == CUBLAS_OP_N ? g->n : g->k,
                            opa == CUBLAS_OP_N ? g->k : g->n, g->ldb) != CUBLAS_STATUS_SUCCESS ||
        c->lt_layout_create(&p->lb, it, opb == CUBLAS_OP_N ? g->k : g->m,
                            opb == CUBLAS_OP_N ? g->m : g->k, g->lda) != CUBLAS_STATUS_SUCCESS ||
        c->lt_layout_create(&p->lc, ot, g->n, g->m, g->ldc) != CUBLAS_STATUS_SUCCESS)
        return;
    cublasLtMatmulPreference_t pref;
    if (c->lt_pref_create(&pref) != CUBLAS_STATUS_SUCCESS)
        return;
    size_t ws = LT_WORKSPACE;
    c->lt_pref_set(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    cublasLtMatmulHeuristicResult_t res[LT_ALGOS];
    int n = 0;
    if (c->lt_heuristic(c->lt, p->desc, p->la, p->lb, p->lc, p->lc, pref, LT_ALGOS, res, &n) !=
            CUBLAS_STATUS_SUCCESS ||
        n <= 0) {
        c->lt_pref_destroy(pref);
        return;
    }
    c->lt_pref_destroy(pref);
    cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
    cudaStreamIsCapturing(c->stream, &cap);
    int best = 0;
    if (cap == cudaStreamCaptureStatusNone && g->beta == 0.0f && n > 1) {
        /* two rounds, the best of each candidate: the first call of a
         * shape often meets a GPU still raising its clocks */
        float ms[LT_ALGOS];
        for (int i = 0; i < n; i++)
            ms[i] = -1.0f;
        for (int round = 0; round < 2; round++)
            for (int i = 0; i < n; i++) {
                if (res[i].state != CUBLAS_STATUS_SUCCESS)
                    continue;
                float t = lt_time(c, p, &res[i].algo, g);
                if (t >= 0 && (ms[i] < 0 || t < ms[i]))
                    ms[i] = t;
            }
        for (int i = 0; i < n; i++)
            if (ms[i] >= 0 && (ms[best] < 0 || ms[i] < ms[best]))
                best = i;
    }
    p->algo = res[best].algo;
    p->usable = 1;
}

/* Runs g through cuBLASLt: 0 done, 1 not taken (use GemmEx). */
static int lt_gemm(cuda_ctx *c, const elo_gemm *g)
{
    if (!g->tune || g->batch > 1 || g->in_type == ELO_DTYPE_F32 ||
        ((uintptr_t)g->a | (uintptr_t)g->b | (uintptr_t)g->c) % 256 != 0 || !load_lt(c))
        return 1;
    lt_plan *p = NULL;
    for (int i = 0; i < c->nplans && !p; i++) {
        lt_plan *q = &c->plans[i];
        if (q->ta == g->trans_a && q->tb == g->trans_b && q->m == g->m && q->n == g->n &&
            q->k == g->k && q->lda == g->lda && q->ldb == g->ldb && q->ldc == g->ldc &&
            q->in_type == g->in_type && q->out_type == g->out_type)
            p = q;
    }
    if (!p) {
        if (c->nplans == LT_PLANS)
            return 1;
        p = &c->plans[c->nplans++];
        lt_plan_new(c, p, g);
    }
    if (!p->usable)
        return 1;
    cublasStatus_t st = c->lt_matmul(c->lt, p->desc, &g->alpha, g->b, p->la, g->a, p->lb,
                                     &g->beta, g->c, p->lc, g->c, p->lc, &p->algo, c->lt_ws,
                                     LT_WORKSPACE, c->stream);
    if (st != CUBLAS_STATUS_SUCCESS) {
        p->usable = 0; /* cublasGemmEx from now on for this shape */
        return 1;
    }
    elo_backend_count_op("gemm");
    return 0;
}

/* Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T, so the
 * operands swap and m/n swap. */
static int cuda_gemm(elo_backend *b, const elo_gemm *g)
{
    cuda_ctx *c = (cuda_ctx *)b->ctx;
    int rc = load_cublas(c);
    if (rc < 0)
        return rc;
    if (lt_gemm(c, g) == 0)
        return ELO_OK;
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
