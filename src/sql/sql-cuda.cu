/* sql-cuda.cu - the dense group-aggregate kernel on the GPU: the filter and
 * every aggregate fused in one pass over columns resident in device memory.
 *
 * DESIGN: one launch of a grid-stride kernel. Each row is tested against
 * the fused predicates, its group id is computed from the key columns (the
 * same dense ids as the CPU kernel), and its aggregates are added to the
 * group's slots. With few groups the slots live in shared memory, one copy
 * per block (no global atomic contention), and each block adds its copy to
 * the global slots once at the end; with many groups the slots are a dense
 * global table indexed by group id (a perfect hash: ids are dense by
 * construction) updated with atomics. The kernel is bound by bytes read
 * and atomics issued, so the resident columns are narrowed (1-4 byte
 * offsets from the column's minimum, type bytes only with NULLs; see
 * sql-cache.c), a group keeps only the words its aggregates need (a count
 * only for columns with NULLs), and when the first aggregate is a small
 * integer sum its sum rides in the low half of the row counter (one
 * atomic per row for q1). Integer sums are exact: the job is
 * only taken when rows * max|value| cannot leave int64. Real sums add in
 * double inside a block and across blocks (error bounded by the number of
 * additions per slot times 2^-53 times sum|x|). MIN/MAX compare order-
 * preserving integer images of the values. The table is copied back to
 * pinned host memory and handed over as it is (kernel_out.words): groups
 * out reads each group's words in place, so no pass turns it into kslots.
 * Everything runs on the backend's non-blocking stream; every CUDA call is
 * checked and reported as ELO_DEVICE with CUDA's message. */
#include "sql-impl.h"

#include <cuda_runtime.h>
#include <string.h>

#define KMAX_KEYS 4
#define KMAX_AGGS 16
#define KMAX_PREDS 8

struct djob {
    long long nrows;
    int nkeys, naggs, npreds;
    const void *key_val[KMAX_KEYS];
    const unsigned char *key_type[KMAX_KEYS];
    int key_w[KMAX_KEYS];
    long long key_vb[KMAX_KEYS];
    long long key_base[KMAX_KEYS], key_span[KMAX_KEYS];
    int agg_fn[KMAX_AGGS], agg_real[KMAX_AGGS];
    const void *agg_val[KMAX_AGGS];
    const unsigned char *agg_type[KMAX_AGGS];
    int agg_w[KMAX_AGGS];
    long long agg_vb[KMAX_AGGS];
    int pred_op[KMAX_PREDS], pred_real[KMAX_PREDS];
    long long pred_ival[KMAX_PREDS];
    double pred_rval[KMAX_PREDS];
    const void *pred_val[KMAX_PREDS];
    const unsigned char *pred_type[KMAX_PREDS];
    int pred_w[KMAX_PREDS];
    long long pred_vb[KMAX_PREDS];
    int pack; /* slot 0 = rows << 32 | aggregate 0's sum of stored offsets */
    /* A group's words (kwords_layout, decided by elo__sql_words_layout):
     * 0 the rows, then per aggregate only what it needs: a count of
     * non-NULL inputs (columns with NULLs) and its sum, min or max. A
     * 1M-group q3 table is 16 MB instead of 72: it stays in L2, where the
     * atomics land. */
    int W;
    int cnt_off[KMAX_AGGS], val_off[KMAX_AGGS]; /* word, or -1 */
    unsigned char kind[1 + 2 * KMAX_AGGS];      /* per word: KW_* */
};

/* Row r of a resident column: narrowed values are unsigned offsets from
 * the column's base (elo__sql_device_form); width 8 is the raw value. */
static __device__ __forceinline__ unsigned long long ldu(const void *p, int w, long long r)
{
    switch (w) {
    case 1: return ((const unsigned char *)p)[r];
    case 2: return ((const unsigned short *)p)[r];
    case 4: return ((const unsigned int *)p)[r];
    default: return ((const unsigned long long *)p)[r];
    }
}

static __device__ __forceinline__ long long ldv(const void *p, int w, long long base, long long r)
{
    unsigned long long u = ldu(p, w, r);
    return w == 8 ? (long long)u : (long long)(u + (unsigned long long)base);
}

/* A NULL type pointer: the column holds no NULL. */
static __device__ __forceinline__ bool is_null(const unsigned char *t, long long r)
{
    return t && t[r] == SV_NULL;
}


static __device__ __forceinline__ long long ordered(long long bits, int is_real)
{
    /* elo__sql_ordered on the device: doubles -> integers in the same
     * order, negative doubles with their 63 low bits flipped (NaN is never
     * stored; -0.0 sorts below 0.0, which is why REAL MIN/MAX over a
     * column holding -0.0 stays on the CPU) */
    return is_real && bits < 0 ? bits ^ 0x7fffffffffffffffll : bits;
}

static __device__ __forceinline__ bool pred_pass(const djob &j, long long r)
{
    for (int q = 0; q < j.npreds; q++) {
        if (is_null(j.pred_type[q], r))
            return false;
        int c;
        long long raw = ldv(j.pred_val[q], j.pred_w[q], j.pred_vb[q], r);
        if (j.pred_real[q]) {
            double v = __longlong_as_double(raw);
            c = v < j.pred_rval[q] ? -1 : v > j.pred_rval[q];
        } else {
            long long v = raw;
            c = v < j.pred_ival[q] ? -1 : v > j.pred_ival[q];
        }
        bool ok;
        switch (j.pred_op[q]) {
        case OP_EQ: ok = c == 0; break;
        case OP_NE: ok = c != 0; break;
        case OP_LT: ok = c < 0; break;
        case OP_LE: ok = c <= 0; break;
        case OP_GT: ok = c > 0; break;
        default: ok = c >= 0; break;
        }
        if (!ok)
            return false;
    }
    return true;
}

static __device__ __forceinline__ void add_row(const djob &j, long long r, long long *slots)
{
    long long g = 0;
    for (int q = 0; q < j.nkeys; q++) {
        /* value - base + 1 in unsigned arithmetic (base may be INT64_MIN);
         * text codes have base 0 */
        long long id = is_null(j.key_type[q], r)
                           ? 0
                           : (long long)((unsigned long long)ldv(j.key_val[q], j.key_w[q],
                                                                 j.key_vb[q], r) -
                                         (unsigned long long)j.key_base[q] + 1ull);
        g = g * j.key_span[q] + id;
    }
    const int A = j.naggs;
    long long *s = slots + g * j.W;
    if (j.pack) {
        /* the row count and aggregate 0's sum in one atomic (see pack) */
        atomicAdd((unsigned long long *)&s[0], (1ull << 32) | ldu(j.agg_val[0], j.agg_w[0], r));
    } else {
        atomicAdd((unsigned long long *)&s[0], 1ull);
    }
    for (int a = j.pack; a < A; a++) {
        if (j.agg_fn[a] == A_COUNT_STAR || is_null(j.agg_type[a], r))
            continue;
        /* a column without NULLs counts its group's rows (filled in on
         * the host): one atomic less per row */
        if (j.cnt_off[a] >= 0)
            atomicAdd((unsigned long long *)&s[j.cnt_off[a]], 1ull);
        const int o = j.val_off[a];
        if (o < 0)
            continue;
        long long v = ldv(j.agg_val[a], j.agg_w[a], j.agg_vb[a], r);
        switch (j.kind[o]) {
        case KW_REAL: atomicAdd((double *)&s[o], __longlong_as_double(v)); break;
        case KW_INT: atomicAdd((unsigned long long *)&s[o], (unsigned long long)v); break;
        case KW_MIN: atomicMin(&s[o], ordered(v, j.agg_real[a])); break;
        default: atomicMax(&s[o], ordered(v, j.agg_real[a])); break;
        }
    }
}

static __device__ void init_slots(const djob &j, long long *slots, long long n, long long start,
                                  long long stride)
{
    for (long long i = start; i < n; i += stride) {
        int kind = j.kind[i % j.W];
        slots[i] = kind == KW_MIN   ? 0x7fffffffffffffffll
                   : kind == KW_MAX ? (long long)0x8000000000000000ull
                                   : 0;
    }
}

__global__ void k_init(djob j, long long *slots, long long n)
{
    init_slots(j, slots, n, blockIdx.x * (long long)blockDim.x + threadIdx.x,
               (long long)gridDim.x * blockDim.x);
}

/* many groups: atomics straight into the global table */
__global__ void k_global(djob j, long long *slots)
{
    long long stride = (long long)gridDim.x * blockDim.x;
    for (long long r = blockIdx.x * (long long)blockDim.x + threadIdx.x; r < j.nrows; r += stride)
        if (j.npreds == 0 || pred_pass(j, r))
            add_row(j, r, slots);
}

/* few groups: a shared-memory copy per block, merged once per block */
__global__ void k_shared(djob j, long long *slots, long long nslots)
{
    extern __shared__ long long sh[];
    init_slots(j, sh, nslots, threadIdx.x, blockDim.x);
    __syncthreads();
    long long stride = (long long)gridDim.x * blockDim.x;
    for (long long r = blockIdx.x * (long long)blockDim.x + threadIdx.x; r < j.nrows; r += stride)
        if (j.npreds == 0 || pred_pass(j, r))
            add_row(j, r, sh);
    __syncthreads();
    for (long long i = threadIdx.x; i < nslots; i += blockDim.x) {
        long long v = sh[i];
        switch (j.kind[i % j.W]) {
        case KW_INT:
            if (v)
                atomicAdd((unsigned long long *)&slots[i], (unsigned long long)v);
            break;
        case KW_REAL: {
            double d = __longlong_as_double(v);
            if (d != 0.0 || signbit(d))
                atomicAdd((double *)&slots[i], d);
            break;
        }
        case KW_MIN: atomicMin(&slots[i], v); break;
        default: atomicMax(&slots[i], v); break;
        }
    }
}

#define CU(call)                                                                          \
    do {                                                                                  \
        cudaError_t e_ = (call);                                                          \
        if (e_ != cudaSuccess)                                                            \
            return elo_seterr(ELO_DEVICE, "CUDA: %s: %s", #call, cudaGetErrorString(e_)); \
    } while (0)

extern "C" int elo_sql_cuda_upload(const void *host, size_t bytes, void **dev, void *stream)
{
    cudaStream_t st = (cudaStream_t)stream;
    void *p = NULL;
    CU(cudaMalloc(&p, bytes ? bytes : 1));
    cudaError_t e = cudaMemcpyAsync(p, host, bytes, cudaMemcpyHostToDevice, st);
    if (e == cudaSuccess)
        e = cudaStreamSynchronize(st);
    if (e != cudaSuccess) {
        cudaFree(p);
        return elo_seterr(ELO_DEVICE, "CUDA: upload of %zu bytes: %s", bytes, cudaGetErrorString(e));
    }
    *dev = p;
    return ELO_OK;
}

extern "C" void elo_sql_cuda_free(void *dev)
{
    if (dev)
        cudaFree(dev);
}

/* scratch for the group table, kept between queries */
static long long *g_scratch;
static size_t g_scratch_bytes;
static long long *g_host;
static size_t g_host_bytes;

extern "C" int elo_sql_cuda_group_aggregate(const kernel_job *j, kernel_out *o, void *stream)
{
    if (j->naggs > KMAX_AGGS || j->nkeys > KMAX_KEYS || j->npreds > KMAX_PREDS)
        return ELO_UNSUPPORTED;
    djob d;
    memset(&d, 0, sizeof d);
    d.nrows = j->nrows;
    d.nkeys = j->nkeys;
    d.naggs = j->naggs;
    d.npreds = j->npreds;
    for (int k = 0; k < j->nkeys; k++) {
        d.key_val[k] = j->key_val[k];
        d.key_type[k] = j->key_type[k];
        d.key_w[k] = j->key_w[k];
        d.key_vb[k] = j->key_b[k];
        d.key_base[k] = j->key_base[k];
        d.key_span[k] = j->key_span[k];
    }
    for (int a = 0; a < j->naggs; a++) {
        int fn = j->agg_fn[a];
        d.agg_fn[a] = fn;
        d.agg_real[a] = j->agg_real[a];
        d.agg_val[a] = j->agg_val[a];
        d.agg_type[a] = j->agg_type[a];
        d.agg_w[a] = j->agg_w[a];
        d.agg_vb[a] = j->agg_b[a];
        if ((fn == A_SUM || fn == A_TOTAL || fn == A_AVG) && !j->agg_real[a]) {
            /* exact int64 atomics only while no partial sum can overflow */
            if (j->agg_absmax[a] > 0 && j->nrows > (long long)((1ull << 62) / (unsigned long long)j->agg_absmax[a]))
                return ELO_UNSUPPORTED;
        }
        if ((fn == A_MIN || fn == A_MAX) && j->agg_real[a] && j->agg_negzero[a])
            return ELO_UNSUPPORTED;
    }
    for (int q = 0; q < j->npreds; q++) {
        d.pred_op[q] = j->preds[q].op;
        d.pred_real[q] = j->preds[q].is_real;
        d.pred_ival[q] = j->preds[q].ival;
        d.pred_rval[q] = j->preds[q].rval;
        d.pred_val[q] = j->pred_val[q];
        d.pred_type[q] = j->pred_type[q];
        d.pred_w[q] = j->pred_w[q];
        d.pred_vb[q] = j->pred_b[q];
    }
    kwords_layout *l = &o->lay;
    elo__sql_words_layout(j, l);
    const int W = l->W;
    d.pack = l->pack;
    d.W = W;
    for (int a = 0; a < j->naggs; a++) {
        d.cnt_off[a] = l->cnt_off[a];
        d.val_off[a] = l->val_off[a];
    }
    memcpy(d.kind, l->kind, (size_t)W); /* W <= 1 + 2 * KMAX_AGGS */
    long long nslots = j->ngroups * W;
    size_t bytes = (size_t)nslots * 8;
    cudaStream_t st = (cudaStream_t)stream;
    if (bytes > g_scratch_bytes) {
        if (g_scratch)
            cudaFree(g_scratch);
        g_scratch = NULL;
        g_scratch_bytes = 0;
        CU(cudaMalloc((void **)&g_scratch, bytes));
        g_scratch_bytes = bytes;
    }
    if (bytes > g_host_bytes) {
        if (g_host)
            cudaFreeHost(g_host);
        g_host = NULL;
        g_host_bytes = 0;
        CU(cudaMallocHost((void **)&g_host, bytes));
        g_host_bytes = bytes;
    }
    int dev = 0, sms = 0;
    CU(cudaGetDevice(&dev));
    CU(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    const int threads = 256;
    long long want = (j->nrows + threads * 16 - 1) / (threads * 16);
    int blocks = (int)(want < (long long)sms * 8 ? (want > 0 ? want : 1) : (long long)sms * 8);
    int init_blocks = (int)((nslots + threads - 1) / threads);
    if (init_blocks > sms * 8)
        init_blocks = sms * 8;
    k_init<<<init_blocks > 0 ? init_blocks : 1, threads, 0, st>>>(d, g_scratch, nslots);
    CU(cudaGetLastError());
    size_t shared = bytes;
    /* Few groups: a block's copy in shared memory. Larger copies (q2's 10K
     * one-word groups in 80 KB, at two blocks per SM) measured slower than
     * the global table on an H200 (2.97 vs 1.72 ms): its merge and the
     * lost occupancy cost more than L2 atomics on a table that fits L2. */
    if (shared <= 32 * 1024 && j->ngroups <= 4096) {
        k_shared<<<blocks, threads, shared, st>>>(d, g_scratch, nslots);
    } else {
        k_global<<<blocks, threads, 0, st>>>(d, g_scratch);
    }
    CU(cudaGetLastError());
    CU(cudaMemcpyAsync(g_host, g_scratch, bytes, cudaMemcpyDeviceToHost, st));
    CU(cudaStreamSynchronize(st));
    elo_backend_count_op("sql_group_aggregate");
    /* groups out reads the words where they are (elo__sql_words_layout's
     * form): converting 1M groups into kslots first took 1.7-2.0 ms on 16
     * cores, and groups out then read 56 MB of kslots instead of 16 */
    o->words = (int64_t *)g_host; /* long long and int64_t: both 8 bytes */
    return ELO_OK;
}
