/* vstore-cuda.cu - exact top-k vector search on the GPU, with the store's
 * rows resident in device memory between queries.
 *
 * Two paths give the CPU's exact answer (same ids, same order, same f32
 * scores), because both compute the canonical score of vstore-impl.h: 16
 * strided lane sums, each accumulated in index order with separate f32
 * multiply and add, then a fixed pairwise tree.
 *
 * - Exact scan (small batches, any metric, any k): one fused kernel reads
 *   each row once, scores it against up to 16 queries held in shared
 *   memory, and keeps per-block candidates in shared memory behind a
 *   rising threshold; no score matrix is written. A half-warp scores a row:
 *   lane j owns canonical lane j, so the xor-shuffle reduction is exactly
 *   the canonical tree. Per-block top-k lists are then merged by a tree of
 *   bitonic sorts.
 * - Tensor-core batch (many queries, cosine/ip, k <= 256): cuBLAS computes
 *   chunks of the score matrix in TF32 (f32 stores) or f16 (f16 stores).
 *   Each fast score differs from the canonical one by at most
 *   B = c * |x| * |q| (c from the input rounding and the two summation
 *   orders, see batch_error_coefficient). If t is the k-th best fast score,
 *   every row of the exact top-k has a fast score >= t - 2B, so we keep
 *   all rows above that line, re-score them canonically and select the
 *   top-k. A query whose candidate set overflows is redone on the exact
 *   path. Only a chunk of the score matrix ever exists.
 *
 * DESIGN: everything runs on the CUDA backend's non-blocking stream; the
 * host waits only when it copies results back. Uploads go through a
 * double-buffered pinned staging area so the source (often an mmap'd
 * file) is copied once into pinned memory and DMA'd from there. */
#include "vstore-impl.h"

#include "elohim/core.h"
#include "backend/cuda-try.h"

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>


enum { METRIC_COSINE = 0, METRIC_IP = 1, METRIC_L2 = 2 };

#define SCAN_THREADS 256
#define MAX_QB 16                                /* queries per scan block */
#define MERGE_N 8192                             /* entries one merge block sorts */
#define BATCH_CAP 2048                           /* candidates kept per query (batch path) */
#define BATCH_THREADS 256
#define BATCH_MIN_QUERIES 8
#define BATCH_MAX_K 256
#define STAGING_BYTES (32u << 20)                /* each of the two pinned buffers */

struct elo__vstore_gpu {
    elo_backend *backend;
    cudaStream_t stream;
    elo_dtype dtype;
    int dim;
    int metric;
    size_t row_count;
    size_t capacity;
    size_t live_count;
    void *rows;                 /* capacity x dim, f32 or f16 */
    int64_t *ids;               /* capacity */
    uint8_t *live;              /* capacity; 1 = live */
    unsigned *max_norm_bits;    /* float bits of the largest row norm */
    char *scratch;              /* per-search buffers, grown on demand */
    size_t scratch_bytes;
    void *staging[2];           /* pinned upload buffers */
    cudaEvent_t staged[2];      /* the copy out of staging[i] is done */
    void *host_out;             /* pinned result buffer */
    size_t host_out_bytes;
    int force_path;
    int sm_count;
    int smem_optin;
    const void *occ_fn;         /* the last scan kernel configured ... */
    size_t occ_smem;            /* ... with this much shared memory ... */
    int occ_per_sm;             /* ... and its blocks per SM */
    int merge_ready;            /* merge_topk's shared-memory limit is raised */
};

/* ---- device helpers ----------------------------------------------------- */

__device__ __forceinline__ float load_elem(const float *rows, size_t i) { return __ldg(rows + i); }
__device__ __forceinline__ float load_elem(const __half *rows, size_t i)
{
    return __half2float(rows[i]);
}

/* Candidate order: higher key first, then lower id. */
__device__ __forceinline__ bool better(float s, long long id, float ts, long long tid)
{
    return s > ts || (s == ts && id < tid);
}

/* Sorts n (a power of two) entries best-first in shared memory. Every
 * thread of the block must call it. */
__device__ void bitonic_sort(float *s, long long *id, int n)
{
    for (int size = 2; size <= n; size <<= 1) {
        for (int stride = size >> 1; stride > 0; stride >>= 1) {
            for (int i = threadIdx.x; i < n; i += blockDim.x) {
                int j = i ^ stride;
                if (j > i) {
                    bool forward = (i & size) == 0;
                    float a = s[i], b = s[j];
                    long long ia = id[i], ib = id[j];
                    bool swap = forward ? better(b, ib, a, ia) : better(a, ia, b, ib);
                    if (swap) {
                        s[i] = b; s[j] = a;
                        id[i] = ib; id[j] = ia;
                    }
                }
            }
            __syncthreads();
        }
    }
}

/* Canonical score of one row for the calling half-warp: returns the full
 * score in every lane. `q` is the query (padded with zeros to a multiple
 * of 16) in shared or global memory. */
template <typename T, bool L2>
__device__ __forceinline__ float half_warp_score(const T *row, const float *q, int dim, int lane)
{
    float acc = 0.0f;
    int nt = (dim + 15) >> 4;
    for (int t0 = 0; t0 < nt; t0 += 8) {
        float x[8];
#pragma unroll
        for (int u = 0; u < 8; u++) {
            int idx = ((t0 + u) << 4) + lane;
            x[u] = (t0 + u < nt && idx < dim) ? load_elem(row, (size_t)idx) : 0.0f;
        }
#pragma unroll
        for (int u = 0; u < 8; u++) {
            if (t0 + u < nt) {
                float qv = q[((t0 + u) << 4) + lane];
                float p;
                if (L2) {
                    float d = __fsub_rn(x[u], qv);
                    p = __fmul_rn(d, d);
                } else {
                    p = __fmul_rn(x[u], qv);
                }
                acc = __fadd_rn(acc, p);
            }
        }
    }
    /* Only this half-warp takes part: the other half may be elsewhere. */
    unsigned mask = 0xffffu << (threadIdx.x & 16);
#pragma unroll
    for (int w = 8; w >= 1; w >>= 1)
        acc = __fadd_rn(acc, __shfl_xor_sync(mask, acc, w));
    return acc;
}

/* Per-block candidate lists in shared memory, one per query: keys, ids,
 * counts and the k-th best so far (the insertion threshold). */
struct cand_lists {
    float *s;
    long long *id;
    int *cnt;
    float *thr_s;
    long long *thr_id;
    int cap;
};

/* Sorts query qi's list and keeps its k best; raises the threshold once k
 * are held. Every thread of the block must call it. */
__device__ void cand_compact(const cand_lists &c, int qi, int k)
{
    float *s = c.s + (size_t)qi * c.cap;
    long long *id = c.id + (size_t)qi * c.cap;
    for (int i = c.cnt[qi] + threadIdx.x; i < c.cap; i += blockDim.x) {
        s[i] = -INFINITY;
        id[i] = LLONG_MAX;
    }
    __syncthreads();
    bitonic_sort(s, id, c.cap);
    if (threadIdx.x == 0) {
        int n = min(c.cnt[qi], k);
        c.cnt[qi] = n;
        if (n == k) {
            c.thr_s[qi] = s[k - 1];
            c.thr_id[qi] = id[k - 1];
        }
    }
    __syncthreads();
}

/* After a round: compacts every list that could not take another round of
 * `round` inserts. Reads counts after a barrier, so the choice is uniform. */
__device__ void cand_make_room(const cand_lists &c, int nq, int k, int round)
{
    for (int qi = 0; qi < nq; qi++)
        if (c.cnt[qi] > c.cap - round)
            cand_compact(c, qi, k);
}

/* Writes each query's k best to this block's slot of the partial lists. */
__device__ void cand_write(const cand_lists &c, int nq, int q_first, int k, float *part_s,
                           long long *part_id)
{
    for (int qi = 0; qi < nq; qi++) {
        cand_compact(c, qi, k);
        size_t out = ((size_t)(q_first + qi) * gridDim.x + blockIdx.x) * k;
        for (int i = threadIdx.x; i < k; i += blockDim.x) {
            part_s[out + i] = c.s[(size_t)qi * c.cap + i];
            part_id[out + i] = c.id[(size_t)qi * c.cap + i];
        }
        __syncthreads();
    }
}

/* ---- exact scan ----------------------------------------------------------- */

/* Shared memory of scan_topk: queries [qb][dimpad] f32, candidate ids
 * [qb][cap] i64, candidate keys [qb][cap] f32, thresholds and counts. */
static size_t scan_smem_bytes(int qb, int dimpad, int cap)
{
    size_t b = (size_t)((qb + 3) & ~3) * dimpad * sizeof(float);
    b = (b + 7) & ~(size_t)7;
    b += (size_t)qb * cap * sizeof(long long);
    b += (size_t)qb * cap * sizeof(float);
    b += (size_t)qb * (sizeof(int) + sizeof(float) + sizeof(long long));
    b += 2 * 256 + 64;   /* live flags of two tiles (scan_tiles), slack */
    return b;
}

/* Canonical scores of one row (in registers: x[t] holds element 16t+lane)
 * against 4 queries at once: four independent chains keep the pipeline busy. Query slots past the
 * last real query hold zeros in shared memory and are ignored. */
template <bool L2, int NT>
__device__ __forceinline__ void score_regs4(const float (&x)[NT], const float *q, int dimpad,
                                            int lane, float &s0, float &s1, float &s2, float &s3)
{
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
#pragma unroll
    for (int t = 0; t < NT; t++) {
        if ((t << 4) >= dimpad)
            break;
        int i = (t << 4) + lane;
        float xv = x[t];
        float q0 = q[i], q1 = q[dimpad + i], q2 = q[2 * dimpad + i], q3 = q[3 * dimpad + i];
        if (L2) {
            float d0 = __fsub_rn(xv, q0), d1 = __fsub_rn(xv, q1);
            float d2 = __fsub_rn(xv, q2), d3 = __fsub_rn(xv, q3);
            a0 = __fadd_rn(a0, __fmul_rn(d0, d0));
            a1 = __fadd_rn(a1, __fmul_rn(d1, d1));
            a2 = __fadd_rn(a2, __fmul_rn(d2, d2));
            a3 = __fadd_rn(a3, __fmul_rn(d3, d3));
        } else {
            a0 = __fadd_rn(a0, __fmul_rn(xv, q0));
            a1 = __fadd_rn(a1, __fmul_rn(xv, q1));
            a2 = __fadd_rn(a2, __fmul_rn(xv, q2));
            a3 = __fadd_rn(a3, __fmul_rn(xv, q3));
        }
    }
    unsigned mask = 0xffffu << (threadIdx.x & 16);
#pragma unroll
    for (int w = 8; w >= 1; w >>= 1) {
        a0 = __fadd_rn(a0, __shfl_xor_sync(mask, a0, w));
        a1 = __fadd_rn(a1, __shfl_xor_sync(mask, a1, w));
        a2 = __fadd_rn(a2, __shfl_xor_sync(mask, a2, w));
        a3 = __fadd_rn(a3, __shfl_xor_sync(mask, a3, w));
    }
    s0 = a0; s1 = a1; s2 = a2; s3 = a3;
}

/* The canonical score of one row (in registers) against one query. */
template <bool L2, int NT>
__device__ __forceinline__ float score_regs1(const float (&x)[NT], const float *q, int dimpad,
                                             int lane)
{
    float acc = 0.0f;
#pragma unroll
    for (int t = 0; t < NT; t++) {
        if ((t << 4) >= dimpad)
            break;
        float qv = q[(t << 4) + lane];
        float p;
        if (L2) {
            float d = __fsub_rn(x[t], qv);
            p = __fmul_rn(d, d);
        } else {
            p = __fmul_rn(x[t], qv);
        }
        acc = __fadd_rn(acc, p);
    }
    unsigned mask = 0xffffu << (threadIdx.x & 16);
#pragma unroll
    for (int w = 8; w >= 1; w >>= 1)
        acc = __fadd_rn(acc, __shfl_xor_sync(mask, acc, w));
    return acc;
}

/* Offers (key, ids[row]) to query qi's candidates. The id is read only
 * when the key reaches the threshold, which after the first rounds is
 * rare, so the id load stays off the scan's critical path. */
__device__ __forceinline__ void offer(float key, size_t row, const int64_t *__restrict__ ids,
                                      int qi, int cap, float *cs, long long *cid,
                                      const float *thr_s, const long long *thr_id, int *cnt)
{
    float ts = thr_s[qi];
    if (key < ts)
        return;
    long long rid = ids[row];
    if (key == ts && rid >= thr_id[qi])
        return;
    int pos = atomicAdd(&cnt[qi], 1);
    cs[(size_t)qi * cap + pos] = key;
    cid[(size_t)qi * cap + pos] = rid;
}

/* Scores a row held in registers against all nq queries (in groups of 4,
 * lane m of the half-warp offering query qi+m) and offers the results. */
template <bool L2, int NT>
__device__ __forceinline__ void score_row(const float (&x)[NT], const float *qs, int dimpad,
                                          int nq, int lane, size_t row,
                                          const int64_t *__restrict__ ids, int cap, float *cs,
                                          long long *cid, const float *thr_s,
                                          const long long *thr_id, int *cnt)
{
    if (nq == 1) {   /* one query: one chain, no wasted slots */
        float sc = score_regs1<L2, NT>(x, qs, dimpad, lane);
        if (lane == 0)
            offer(L2 ? -sc : sc, row, ids, 0, cap, cs, cid, thr_s, thr_id, cnt);
        return;
    }
    for (int qi = 0; qi < nq; qi += 4) {
        float s0, s1, s2, s3;
        score_regs4<L2, NT>(x, qs + (size_t)qi * dimpad, dimpad, lane, s0, s1, s2, s3);
        int m = lane;
        if (m < 4 && qi + m < nq) {
            float sc = m == 0 ? s0 : m == 1 ? s1 : m == 2 ? s2 : s3;
            offer(L2 ? -sc : sc, row, ids, qi + m, cap, cs, cid, thr_s, thr_id, cnt);
        }
    }
}

/* The fused scan. NT > 0: rows of at most 16*NT elements are held in
 * registers, RPH rows per half-warp per round, all loads issued before
 * any arithmetic so that many bytes are in flight. NT == 0: any width,
 * scored in chunks straight from memory. */
template <typename T, bool L2, int NT, int RPH>
__global__ void __launch_bounds__(SCAN_THREADS)
scan_topk(const T *__restrict__ rows, const int64_t *__restrict__ ids,
          const uint8_t *__restrict__ live, size_t row_count, int dim, int dimpad,
          const float *__restrict__ queries, int query_count, int qb, int k, int cap,
          float *__restrict__ part_s, long long *__restrict__ part_id)
{
    constexpr int ROUND = (SCAN_THREADS / 16) * RPH;
    extern __shared__ __align__(16) unsigned char smem[];
    const int q_first = blockIdx.y * qb;
    const int nq = min(qb, query_count - q_first);
    const int qslots = (qb + 3) & ~3;   /* whole groups of 4 queries */
    float *qs = (float *)smem;
    size_t off = ((size_t)qslots * dimpad * sizeof(float) + 7) & ~(size_t)7;
    long long *cid = (long long *)(smem + off);
    off += (size_t)qb * cap * sizeof(long long);
    float *cs = (float *)(smem + off);
    off += (size_t)qb * cap * sizeof(float);
    long long *thr_id = (long long *)(smem + off);
    off += (size_t)qb * sizeof(long long);
    float *thr_s = (float *)(smem + off);
    off += (size_t)qb * sizeof(float);
    int *cnt = (int *)(smem + off);
    const cand_lists cl = {cs, cid, cnt, thr_s, thr_id, cap};

    for (int i = threadIdx.x; i < qslots * dimpad; i += blockDim.x) {
        int qi = i / dimpad, d = i % dimpad;
        qs[i] = qi < nq && d < dim ? queries[(size_t)(q_first + qi) * dim + d] : 0.0f;
    }
    for (int qi = threadIdx.x; qi < nq; qi += blockDim.x) {
        cnt[qi] = 0;
        thr_s[qi] = -INFINITY;
        thr_id[qi] = LLONG_MAX;
    }
    __syncthreads();

    const int lane = threadIdx.x & 15;
    const int half = threadIdx.x >> 4;
    size_t per_block = (row_count + gridDim.x - 1) / gridDim.x;
    per_block = (per_block + ROUND - 1) / ROUND * ROUND;
    size_t begin = (size_t)blockIdx.x * per_block;
    size_t end = min(row_count, begin + per_block);

    for (size_t base = begin; base < end; base += ROUND) {
        if (NT > 0) {
            constexpr int N = NT > 0 ? NT : 1;
            float x[RPH][N];
            bool in_range[RPH];
#pragma unroll
            for (int r = 0; r < RPH; r++) {
                size_t row = base + half + (size_t)r * (SCAN_THREADS / 16);
                in_range[r] = row < end;
                const T *xr = rows + (in_range[r] ? row : 0) * (size_t)dim;
#pragma unroll
                for (int t = 0; t < N; t++) {
                    int idx = (t << 4) + lane;
                    x[r][t] = (in_range[r] && idx < dim) ? load_elem(xr, (size_t)idx) : 0.0f;
                }
            }
#pragma unroll
            for (int r = 0; r < RPH; r++) {
                size_t row = base + half + (size_t)r * (SCAN_THREADS / 16);
                if (!in_range[r] || !live[row])
                    continue;   /* uniform within the half-warp */
                score_row<L2, N>(x[r], qs, dimpad, nq, lane, row, ids, cap, cs, cid, thr_s,
                                 thr_id, cnt);
            }
        } else {
#pragma unroll
            for (int r = 0; r < RPH; r++) {
                size_t row = base + half + (size_t)r * (SCAN_THREADS / 16);
                if (row >= end || !live[row])
                    continue;
                const T *xr = rows + row * (size_t)dim;
                for (int qi = 0; qi < nq; qi++) {
                    float sc = half_warp_score<T, L2>(xr, qs + (size_t)qi * dimpad, dim, lane);
                    if (lane == 0)
                        offer(L2 ? -sc : sc, row, ids, qi, cap, cs, cid, thr_s, thr_id, cnt);
                }
            }
        }
        __syncthreads();
        cand_make_room(cl, nq, k, ROUND);
    }

    cand_write(cl, nq, q_first, k, part_s, part_id);
}

/* The fused scan with shared-memory staging, for rows whose width is a
 * multiple of 16 bytes: tiles of contiguous rows are copied with 16-byte
 * cp.async (few, wide, fully coalesced requests) into one of two buffers
 * while the other is scored; each half-warp then reads its rows from shared
 * memory in the canonical lane order. Rows in a tile are padded so that the
 * two half-warps of a warp hit different banks. */
__device__ __forceinline__ void cp_async16(void *smem_dst, const void *gmem_src)
{
    unsigned addr = (unsigned)__cvta_generic_to_shared(smem_dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(addr), "l"(gmem_src));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void cp_async_wait_one() { asm volatile("cp.async.wait_group 1;\n" ::); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::); }

template <typename T, int NT>
struct tile_shape {
    static constexpr int row_bytes_max = NT * 16 * (int)sizeof(T);
    static constexpr int rph_raw = 3072 / row_bytes_max;           /* ~48 KB per tile */
    static constexpr int RPH = rph_raw < 1 ? 1 : (rph_raw > 8 ? 8 : rph_raw);
    static constexpr int ROWS = 16 * RPH;                           /* rows per tile */
};

__device__ __forceinline__ float smem_elem(const float *p) { return *p; }
__device__ __forceinline__ float smem_elem(const __half *p) { return __half2float(*p); }

template <typename T, bool L2, int NT>
__global__ void __launch_bounds__(SCAN_THREADS)
scan_tiles(const T *__restrict__ rows, const int64_t *__restrict__ ids,
           const uint8_t *__restrict__ live, size_t row_count, int dim, int dimpad,
           const float *__restrict__ queries, int query_count, int qb, int k, int cap,
           float *__restrict__ part_s, long long *__restrict__ part_id)
{
    typedef tile_shape<T, NT> shape;
    constexpr int ROUND = shape::ROWS;
    extern __shared__ __align__(16) unsigned char smem[];
    const int q_first = blockIdx.y * qb;
    const int nq = min(qb, query_count - q_first);
    const int stride = dim + 16;   /* elements per tile row: 64 B (f32) or 32 B (f16) of pad */
    const size_t tile_bytes = ((size_t)ROUND * stride * sizeof(T) + 15) & ~(size_t)15;
    const int qslots = (qb + 3) & ~3;
    float *qs = (float *)(smem + 2 * tile_bytes);
    size_t off = 2 * tile_bytes + (((size_t)qslots * dimpad * sizeof(float) + 7) & ~(size_t)7);
    long long *cid = (long long *)(smem + off);
    off += (size_t)qb * cap * sizeof(long long);
    float *cs = (float *)(smem + off);
    off += (size_t)qb * cap * sizeof(float);
    long long *thr_id = (long long *)(smem + off);
    off += (size_t)qb * sizeof(long long);
    float *thr_s = (float *)(smem + off);
    off += (size_t)qb * sizeof(float);
    int *cnt = (int *)(smem + off);
    uint8_t *live_s = (uint8_t *)(cnt + qb);   /* [2][ROUND] */
    const cand_lists cl = {cs, cid, cnt, thr_s, thr_id, cap};

    const int lane = threadIdx.x & 15;
    const int half = threadIdx.x >> 4;
    size_t per_block = (row_count + gridDim.x - 1) / gridDim.x;
    per_block = (per_block + ROUND - 1) / ROUND * ROUND;
    const size_t begin = (size_t)blockIdx.x * per_block;
    const size_t end = min(row_count, begin + per_block);
    const int chunks_per_row = dim * (int)sizeof(T) / 16;

    /* Copies rows [first, first + ROUND) (clipped at end) into tiles[buf]. */
    auto prefetch = [&](size_t first, int buf) {
        int nrows = (int)min((size_t)ROUND, end - first);
        int total = nrows * chunks_per_row;
        const char *src = (const char *)(rows + first * (size_t)dim);
        char *dst = (char *)(smem + buf * tile_bytes);
        for (int c = threadIdx.x; c < total; c += SCAN_THREADS) {
            int r = c / chunks_per_row, col = c - r * chunks_per_row;
            cp_async16(dst + ((size_t)r * stride * sizeof(T)) + col * 16,
                       src + ((size_t)r * dim * sizeof(T)) + col * 16);
        }
    };

    if (begin < end)
        prefetch(begin, 0);
    cp_async_commit();

    for (int i = threadIdx.x; i < qslots * dimpad; i += blockDim.x) {
        int qi = i / dimpad, d = i % dimpad;
        qs[i] = qi < nq && d < dim ? queries[(size_t)(q_first + qi) * dim + d] : 0.0f;
    }
    for (int qi = threadIdx.x; qi < nq; qi += blockDim.x) {
        cnt[qi] = 0;
        thr_s[qi] = -INFINITY;
        thr_id[qi] = LLONG_MAX;
    }

    /* Live flags of the tile being scored: loaded one tile ahead, like the
     * rows, so no row waits on a dependent global read. */
    if (threadIdx.x < ROUND)
        live_s[threadIdx.x] = begin + threadIdx.x < end ? live[begin + threadIdx.x] : 0;
    int buf = 0;
    for (size_t base = begin; base < end; base += ROUND, buf ^= 1) {
        uint8_t next_live = 0;
        if (base + ROUND < end) {
            prefetch(base + ROUND, buf ^ 1);
            size_t nr = base + ROUND + threadIdx.x;
            if (threadIdx.x < ROUND && nr < end)
                next_live = live[nr];
        }
        cp_async_commit();
        cp_async_wait_one();       /* this tile has landed (the next may not) */
        __syncthreads();
        const T *tile = (const T *)(smem + buf * tile_bytes);
#pragma unroll 1
        for (int r = 0; r < shape::RPH; r++) {
            int tr = half + r * (SCAN_THREADS / 16);
            size_t row = base + tr;
            if (row >= end || !live_s[buf * ROUND + tr])
                continue;          /* uniform within the half-warp */
            float x[NT];
            const T *xr = tile + (size_t)tr * stride;
#pragma unroll
            for (int t = 0; t < NT; t++) {
                int idx = (t << 4) + lane;
                x[t] = idx < dim ? smem_elem(xr + idx) : 0.0f;
            }
            score_row<L2, NT>(x, qs, dimpad, nq, lane, row, ids, cap, cs, cid, thr_s, thr_id,
                              cnt);
        }
        if (threadIdx.x < ROUND)
            live_s[(buf ^ 1) * ROUND + threadIdx.x] = next_live;
        __syncthreads();           /* the tile is free for the next prefetch */
        cand_make_room(cl, nq, k, ROUND);
    }
    cp_async_wait_all();
    __syncthreads();

    cand_write(cl, nq, q_first, k, part_s, part_id);
}

/* Shared memory of scan_tiles beyond scan_smem_bytes: two tiles. */
static size_t tile_smem_bytes(int rows_per_tile, int dim, size_t elem)
{
    size_t tile = ((size_t)rows_per_tile * (dim + 16) * elem + 15) & ~(size_t)15;
    return 2 * tile;
}

/* A scan kernel instance and its shape. */
struct scan_kernel {
    const void *fn;
    int round_rows;
    size_t extra_smem;      /* tile buffers (scan_tiles) */
};

template <typename T, bool L2>
static scan_kernel pick_scan(int dim)
{
    int nt = (dim + 15) / 16;
    bool h = sizeof(T) == 2;
    scan_kernel sk;
    sk.extra_smem = 0;
    if ((dim * sizeof(T)) % 16 == 0 && nt <= 48) {
#define TILE_CASE(N)                                                        \
    {                                                                       \
        sk.fn = (const void *)scan_tiles<T, L2, N>;                         \
        sk.round_rows = tile_shape<T, N>::ROWS;                             \
        sk.extra_smem = tile_smem_bytes(sk.round_rows, dim, sizeof(T));     \
    }
        if (nt <= 8) TILE_CASE(8)
        else if (nt <= 16) TILE_CASE(16)
        else if (nt <= 24) TILE_CASE(24)
        else if (nt <= 32) TILE_CASE(32)
        else TILE_CASE(48)
#undef TILE_CASE
        return sk;
    }
#define SCAN_CASE(N, R) { sk.fn = (const void *)scan_topk<T, L2, N, R>; sk.round_rows = 16 * (R); }
    /* f16 rows: half the bytes per load, so more rows in flight. */
    if (nt <= 8) SCAN_CASE(8, 4)
    else if (nt <= 16) { if (h) SCAN_CASE(16, 4) else SCAN_CASE(16, 2) }
    else if (nt <= 24) { if (h) SCAN_CASE(24, 4) else SCAN_CASE(24, 2) }
    else if (nt <= 32) SCAN_CASE(32, 2)
    else if (nt <= 48) { if (h) SCAN_CASE(48, 2) else SCAN_CASE(48, 1) }
    else if (nt <= 64) SCAN_CASE(64, 1)
    else SCAN_CASE(0, 2)
#undef SCAN_CASE
    return sk;
}

/* Merges groups of `group` sorted lists of k entries into one: input
 * [q][lists][k], output [q][ceil(lists/group)][k]. Only entries that can
 * still make the top-k are sorted: the union holds k entries at least as
 * good as the best list's k-th, so the k-th best overall is no worse than
 * M = max over lists of their k-th score, and every entry below M drops
 * out. On real data a few dozen entries survive out of thousands, so the
 * sort that once dominated a single-query search shrinks to almost
 * nothing. */
__global__ void merge_topk(const float *__restrict__ in_s, const long long *__restrict__ in_id,
                           int lists, int group, int k, int n,
                           float *__restrict__ out_s, long long *__restrict__ out_id)
{
    extern __shared__ __align__(16) unsigned char smem[];
    __shared__ float warp_max[32];
    __shared__ float m;
    __shared__ int kept;
    long long *id = (long long *)smem;
    float *s = (float *)(smem + (size_t)n * sizeof(long long));
    int q = blockIdx.y;
    int first = blockIdx.x * group;
    int count = min(group, lists - first);
    const float *src_s = in_s + ((size_t)q * lists + first) * k;
    const long long *src_id = in_id + ((size_t)q * lists + first) * k;

    float local = -INFINITY;
    for (int l = threadIdx.x; l < count; l += blockDim.x)
        local = fmaxf(local, src_s[(size_t)l * k + k - 1]);
    for (int w = 16; w >= 1; w >>= 1)
        local = fmaxf(local, __shfl_xor_sync(0xffffffffu, local, w));
    if ((threadIdx.x & 31) == 0)
        warp_max[threadIdx.x >> 5] = local;
    if (threadIdx.x == 0)
        kept = 0;
    __syncthreads();
    if (threadIdx.x == 0) {
        float v = -INFINITY;
        for (int w = 0; w < (int)(blockDim.x + 31) / 32; w++)
            v = fmaxf(v, warp_max[w]);
        m = v;
    }
    __syncthreads();
    const float bar = m;
    for (int i = threadIdx.x; i < count * k; i += blockDim.x) {
        float v = src_s[i];
        if (v >= bar) {
            int p = atomicAdd(&kept, 1);
            s[p] = v;
            id[p] = src_id[i];
        }
    }
    __syncthreads();
    int c = kept;
    int n2 = 1;
    while (n2 < c)
        n2 <<= 1;
    for (int i = c + threadIdx.x; i < n2; i += blockDim.x) {
        s[i] = -INFINITY;
        id[i] = LLONG_MAX;
    }
    __syncthreads();
    bitonic_sort(s, id, n2);
    int out_lists = (lists + group - 1) / group;
    size_t out = ((size_t)q * out_lists + blockIdx.x) * k;
    for (int i = threadIdx.x; i < k; i += blockDim.x) {
        out_s[out + i] = i < n2 ? s[i] : -INFINITY;
        out_id[out + i] = i < n2 ? id[i] : LLONG_MAX;
    }
}

/* ---- tensor-core batch path --------------------------------------------- */

/* Per (query, split) state between chunk launches, in global memory.
 * Each chunk of the score matrix is cut into `splits` row ranges per
 * query, so that even a handful of queries keeps every SM busy. */
struct batch_state {
    int count;
    int overflow;
    float threshold;   /* keep fast scores >= threshold */
};

#define COLLECT_PER_THREAD 4
#define COLLECT_ROUND (BATCH_THREADS * COLLECT_PER_THREAD)
#define COLLECT_FLUSH_AT (BATCH_CAP - COLLECT_ROUND)

__global__ void batch_init(batch_state *st, int states)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < states) {
        st[i].count = 0;
        st[i].overflow = 0;
        st[i].threshold = -INFINITY;
    }
}

/* Keeps every row of this (query, split) whose fast score may reach the
 * exact top-k: after each compaction, threshold = (k-th best fast score
 * of the split so far) - margin[q]. The split's k-th best is no better
 * than the query's, so nothing the exact top-k needs is ever dropped. */
/* Sorts the kept candidates, raises the threshold to (k-th best) - margin
 * when k are held and keeps those at or above it; flags an overflow when
 * more are left than a round could add to. Every thread must call it. */
__device__ void collect_compact(float *s, long long *row_of, int *cnt, float *thr,
                                int *overflow, int k, float margin)
{
    int c = *cnt;
    for (int i = c + threadIdx.x; i < BATCH_CAP; i += blockDim.x) {
        s[i] = -INFINITY;
        row_of[i] = LLONG_MAX;
    }
    __syncthreads();
    bitonic_sort(s, row_of, BATCH_CAP);
    if (threadIdx.x == 0 && c >= k) {
        float t = s[k - 1] - margin;
        if (t > *thr)
            *thr = t;
        int keep = k;
        while (keep < c && s[keep] >= *thr)
            keep++;
        *cnt = keep;
        if (keep > COLLECT_FLUSH_AT) {
            *overflow = 1;
            *thr = INFINITY;
        }
    }
    __syncthreads();
}

__global__ void __launch_bounds__(BATCH_THREADS)
batch_collect(const float *__restrict__ scores, size_t chunk_rows, size_t row_start,
              const uint8_t *__restrict__ live, const float *__restrict__ margin, int k,
              int last, batch_state *st, float *__restrict__ keep_s,
              long long *__restrict__ keep_row)
{
    __shared__ float s[BATCH_CAP];
    __shared__ long long row_of[BATCH_CAP];
    __shared__ int cnt;
    __shared__ float thr;
    __shared__ int overflow;
    const int q = blockIdx.x, splits = gridDim.y;
    const size_t me = (size_t)q * splits + blockIdx.y;
    if (threadIdx.x == 0) {
        cnt = st[me].count;
        thr = st[me].threshold;
        overflow = st[me].overflow;
    }
    __syncthreads();
    if (overflow)
        return;
    for (int i = threadIdx.x; i < cnt; i += blockDim.x) {
        s[i] = keep_s[me * BATCH_CAP + i];
        row_of[i] = keep_row[me * BATCH_CAP + i];
    }
    size_t len = (chunk_rows + splits - 1) / splits;
    size_t lo = blockIdx.y * len, hi = min(chunk_rows, lo + len);
    const float *qs = scores + (size_t)q * chunk_rows;
    for (size_t base = lo; base < hi; base += COLLECT_ROUND) {
        float v[COLLECT_PER_THREAD];
#pragma unroll
        for (int j = 0; j < COLLECT_PER_THREAD; j++) {
            size_t r = base + threadIdx.x + (size_t)j * BATCH_THREADS;
            v[j] = r < hi ? qs[r] : -INFINITY;
        }
#pragma unroll
        for (int j = 0; j < COLLECT_PER_THREAD; j++) {
            size_t r = base + threadIdx.x + (size_t)j * BATCH_THREADS;
            if (v[j] >= thr && r < hi && live[row_start + r]) {
                int pos = atomicAdd(&cnt, 1);
                s[pos] = v[j];
                row_of[pos] = (long long)(row_start + r);
            }
        }
        __syncthreads();
        if (cnt > COLLECT_FLUSH_AT) {
            collect_compact(s, row_of, &cnt, &thr, &overflow, k, margin[q]);
            if (overflow)
                break;
        }
    }
    __syncthreads();
    /* After the last chunk, tighten the threshold once more, so that the
     * re-scoring gathers few candidates from each split. */
    if (last && !overflow && cnt > k)
        collect_compact(s, row_of, &cnt, &thr, &overflow, k, margin[q]);
    for (int i = threadIdx.x; i < cnt && !overflow; i += blockDim.x) {
        keep_s[me * BATCH_CAP + i] = s[i];
        keep_row[me * BATCH_CAP + i] = row_of[i];
    }
    if (threadIdx.x == 0) {
        st[me].count = cnt;
        st[me].threshold = thr;
        st[me].overflow = overflow;
    }
}

/* Gathers a query's candidates from its splits (only those at or above the
 * best split threshold: that threshold is below every row the exact top-k
 * needs), re-scores them canonically and writes its top-k. A query whose
 * candidates do not fit is flagged in `redo` for the exact scan. */
template <typename T>
__global__ void __launch_bounds__(BATCH_THREADS)
batch_rescore(const T *__restrict__ rows, const int64_t *__restrict__ ids, int dim,
              const float *__restrict__ queries_padded, int dimpad, int k, int splits,
              const batch_state *st, const float *__restrict__ keep_s,
              const long long *__restrict__ keep_row, float *__restrict__ out_s,
              long long *__restrict__ out_id, int *__restrict__ redo)
{
    __shared__ float s[BATCH_CAP];
    __shared__ long long id[BATCH_CAP];
    __shared__ float bar;
    __shared__ int n, over;
    int q = blockIdx.x;
    if (threadIdx.x == 0) {
        float b = -INFINITY;
        int o = 0;
        for (int sp = 0; sp < splits; sp++) {
            const batch_state &x = st[(size_t)q * splits + sp];
            o |= x.overflow;
            b = fmaxf(b, x.threshold);
        }
        bar = b;
        over = o;
        n = 0;
    }
    __syncthreads();
    for (int sp = 0; sp < splits; sp++) {   /* uniform: barriers inside */
        size_t me = (size_t)q * splits + sp;
        int c = st[me].count;
        for (int i = threadIdx.x; i < c; i += blockDim.x) {
            if (keep_s[me * BATCH_CAP + i] >= bar) {
                int p = atomicAdd(&n, 1);
                if (p < BATCH_CAP)
                    id[p] = keep_row[me * BATCH_CAP + i];   /* row index for now */
                else
                    over = 1;
            }
        }
        __syncthreads();
    }
    if (over) {
        if (threadIdx.x == 0)
            redo[q] = 1;
        return;
    }
    int c = n;
    const float *qv = queries_padded + (size_t)q * dimpad;
    int lane = threadIdx.x & 15, half = threadIdx.x >> 4;
    for (int base = 0; base < BATCH_CAP; base += BATCH_THREADS / 16) {
        int i = base + half;
        /* A half-warp reads and replaces only its own entry; lane 0 writes
         * after the score's shuffles, which every lane reaches after its
         * read. */
        long long row = i < c ? id[i] : 0;
        if (i < c) {
            float v = half_warp_score<T, false>(rows + (size_t)row * dim, qv, dim, lane);
            if (lane == 0) {
                s[i] = v;
                id[i] = ids[row];
            }
        } else if (lane == 0) {
            s[i] = -INFINITY;
            id[i] = LLONG_MAX;
        }
    }
    __syncthreads();
    bitonic_sort(s, id, BATCH_CAP);
    for (int i = threadIdx.x; i < k; i += blockDim.x) {
        out_s[(size_t)q * k + i] = s[i];
        out_id[(size_t)q * k + i] = id[i];
    }
}

__global__ void pad_queries(const float *__restrict__ in, int query_count, int dim, int dimpad,
                            float *__restrict__ out, __half *__restrict__ out_h)
{
    size_t n = (size_t)query_count * dimpad;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t q = i / dimpad, d = i % dimpad;
        float v = d < (size_t)dim ? in[q * dim + d] : 0.0f;
        out[i] = v;
        if (out_h && d < (size_t)dim)
            out_h[q * dim + d] = __float2half_rn(v);
    }
}

template <typename T>
__global__ void row_norms(const T *__restrict__ rows, size_t first, size_t count, int dim,
                          unsigned *max_bits)
{
    size_t r = first + blockIdx.x * (size_t)(blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x & 31;
    if (r >= first + count)
        return;
    float acc = 0.0f;
    for (int d = lane; d < dim; d += 32) {
        float v = load_elem(rows, r * (size_t)dim + d);
        acc += v * v;
    }
    for (int w = 16; w >= 1; w >>= 1)
        acc += __shfl_xor_sync(0xffffffffu, acc, w);
    if (lane == 0)
        atomicMax(max_bits, __float_as_uint(sqrtf(acc) * 1.0001f));
}

/* ---- host side ------------------------------------------------------------ */

static size_t next_pow2(size_t v)
{
    size_t p = 1;
    while (p < v)
        p <<= 1;
    return p;
}

static size_t row_bytes(const elo__vstore_gpu *g)
{
    return (size_t)g->dim * (g->dtype == ELO_DTYPE_F16 ? 2 : 4);
}

/* Copies host memory to the device through the two pinned buffers: the
 * memcpy into one buffer overlaps the DMA out of the other. */
static int staged_upload(elo__vstore_gpu *g, void *dst, const void *src, size_t bytes)
{
    const char *s = (const char *)src;
    char *d = (char *)dst;
    int which = 0;
    for (size_t done = 0; done < bytes; which ^= 1) {
        size_t n = bytes - done < STAGING_BYTES ? bytes - done : STAGING_BYTES;
        CUDA_TRY(cudaEventSynchronize(g->staged[which]));
        memcpy(g->staging[which], s + done, n);
        CUDA_TRY(cudaMemcpyAsync(d + done, g->staging[which], n, cudaMemcpyHostToDevice,
                                 g->stream));
        CUDA_TRY(cudaEventRecord(g->staged[which], g->stream));
        done += n;
    }
    return ELO_OK;
}

static int update_max_norm(elo__vstore_gpu *g, size_t first, size_t count)
{
    if (count == 0)
        return ELO_OK;
    unsigned blocks = (unsigned)((count + 7) / 8);
    if (g->dtype == ELO_DTYPE_F16)
        row_norms<__half><<<blocks, 256, 0, g->stream>>>((const __half *)g->rows, first, count,
                                                          g->dim, g->max_norm_bits);
    else
        row_norms<float><<<blocks, 256, 0, g->stream>>>((const float *)g->rows, first, count,
                                                         g->dim, g->max_norm_bits);
    CUDA_TRY(cudaGetLastError());
    return ELO_OK;
}

static int reserve(elo__vstore_gpu *g, size_t capacity)
{
    if (capacity <= g->capacity && g->rows)
        return ELO_OK;
    size_t rb = row_bytes(g);
    void *rows = NULL;
    int64_t *ids = NULL;
    uint8_t *live = NULL;
    cudaError_t e1 = cudaMalloc(&rows, capacity * rb > 0 ? capacity * rb : 1);
    cudaError_t e2 = cudaMalloc((void **)&ids, capacity * sizeof(int64_t) + 8);
    cudaError_t e3 = cudaMalloc((void **)&live, capacity + 8);
    if (e1 != cudaSuccess || e2 != cudaSuccess || e3 != cudaSuccess) {
        cudaGetLastError();
        cudaFree(rows);
        cudaFree(ids);
        cudaFree(live);
        return elo_seterr(ELO_NOMEM, "GPU memory: cannot hold %zu rows of %zu bytes", capacity,
                          rb);
    }
    if (g->rows && g->row_count) {
        CUDA_TRY(cudaMemcpyAsync(rows, g->rows, g->row_count * rb, cudaMemcpyDeviceToDevice,
                                 g->stream));
        CUDA_TRY(cudaMemcpyAsync(ids, g->ids, g->row_count * sizeof(int64_t),
                                 cudaMemcpyDeviceToDevice, g->stream));
        CUDA_TRY(cudaMemcpyAsync(live, g->live, g->row_count, cudaMemcpyDeviceToDevice,
                                 g->stream));
        CUDA_TRY(cudaStreamSynchronize(g->stream));
    }
    cudaFree(g->rows);
    cudaFree(g->ids);
    cudaFree(g->live);
    g->rows = rows;
    g->ids = ids;
    g->live = live;
    g->capacity = capacity;
    return ELO_OK;
}

static int scratch_reserve(elo__vstore_gpu *g, size_t bytes)
{
    if (bytes <= g->scratch_bytes)
        return ELO_OK;
    cudaFree(g->scratch);
    g->scratch = NULL;
    g->scratch_bytes = 0;
    cudaError_t e = cudaMalloc((void **)&g->scratch, bytes);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return elo_seterr(ELO_NOMEM, "GPU memory: cannot allocate %zu bytes of search scratch",
                          bytes);
    }
    g->scratch_bytes = bytes;
    return ELO_OK;
}

static int host_out_reserve(elo__vstore_gpu *g, size_t bytes)
{
    if (bytes <= g->host_out_bytes)
        return ELO_OK;
    cudaFreeHost(g->host_out);
    g->host_out = NULL;
    g->host_out_bytes = 0;
    CUDA_TRY(cudaMallocHost(&g->host_out, bytes));
    g->host_out_bytes = bytes;
    return ELO_OK;
}

extern "C" void elo__vstore_cuda_free(elo__vstore_gpu *g)
{
    if (!g)
        return;
    cudaStreamSynchronize(g->stream);
    cudaFree(g->rows);
    cudaFree(g->ids);
    cudaFree(g->live);
    cudaFree(g->max_norm_bits);
    cudaFree(g->scratch);
    for (int i = 0; i < 2; i++) {
        if (g->staging[i])
            cudaFreeHost(g->staging[i]);
        if (g->staged[i])
            cudaEventDestroy(g->staged[i]);
    }
    if (g->host_out)
        cudaFreeHost(g->host_out);
    elo_free(g);
}

extern "C" void elo__vstore_cuda_force_path(elo__vstore_gpu *g, int path) { g->force_path = path; }

static size_t count_live(const uint8_t *live, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += live ? (live[i] != 0) : 1;
    return c;
}

static int upload_rows(elo__vstore_gpu *g, size_t first, const void *rows, const int64_t *ids,
                       const uint8_t *live, size_t count)
{
    size_t rb = row_bytes(g);
    int rc = staged_upload(g, (char *)g->rows + first * rb, rows, count * rb);
    if (rc == ELO_OK)
        rc = staged_upload(g, g->ids + first, ids, count * sizeof(int64_t));
    if (rc == ELO_OK) {
        if (live) {
            rc = staged_upload(g, g->live + first, live, count);
        } else {
            cudaError_t e = cudaMemsetAsync(g->live + first, 1, count, g->stream);
            if (e != cudaSuccess)
                rc = elo_seterr(ELO_DEVICE, "cudaMemsetAsync: %s", cudaGetErrorString(e));
        }
    }
    if (rc == ELO_OK)
        rc = update_max_norm(g, first, count);
    if (rc == ELO_OK)
        CUDA_TRY(cudaStreamSynchronize(g->stream));
    return rc;
}

extern "C" int elo__vstore_cuda_load(elo_backend *b, const void *rows, elo_dtype dtype, int dim,
                                     int metric, size_t row_count, size_t capacity,
                                     const int64_t *ids, const uint8_t *live,
                                     elo__vstore_gpu **out)
{
    *out = NULL;
    if (dim <= 0 || (dtype != ELO_DTYPE_F32 && dtype != ELO_DTYPE_F16) || metric < 0 ||
        metric > 2)
        return elo_seterr(ELO_BADINPUT, "vstore cuda: bad dim, dtype or metric");
    elo__vstore_gpu *g = (elo__vstore_gpu *)elo_calloc(1, sizeof *g);
    if (!g)
        return ELO_NOMEM;
    g->backend = b;
    g->stream = (cudaStream_t)elo_backend_cuda_stream(b);
    g->dtype = dtype;
    g->dim = dim;
    g->metric = metric;
    int dev = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&g->sm_count, cudaDevAttrMultiProcessorCount, dev);
    cudaDeviceGetAttribute(&g->smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
    int rc = ELO_OK;
    for (int i = 0; i < 2 && rc == ELO_OK; i++) {
        if (cudaMallocHost(&g->staging[i], STAGING_BYTES) != cudaSuccess ||
            cudaEventCreateWithFlags(&g->staged[i], cudaEventDisableTiming) != cudaSuccess)
            rc = elo_seterr(ELO_NOMEM, "cannot allocate pinned staging memory");
    }
    if (rc == ELO_OK && cudaMalloc((void **)&g->max_norm_bits, sizeof(unsigned)) != cudaSuccess)
        rc = elo_seterr(ELO_NOMEM, "GPU memory exhausted");
    if (rc == ELO_OK && cudaMemsetAsync(g->max_norm_bits, 0, sizeof(unsigned), g->stream) !=
                            cudaSuccess)
        rc = elo_seterr(ELO_DEVICE, "cudaMemsetAsync failed");
    if (rc == ELO_OK)
        rc = reserve(g, capacity > row_count ? capacity : row_count);
    if (rc == ELO_OK && row_count)
        rc = upload_rows(g, 0, rows, ids, live, row_count);
    if (rc != ELO_OK) {
        cudaGetLastError();
        elo__vstore_cuda_free(g);
        return rc;
    }
    g->row_count = row_count;
    g->live_count = count_live(live, row_count);
    *out = g;
    return ELO_OK;
}

extern "C" int elo__vstore_cuda_append(elo__vstore_gpu *g, const void *rows, const int64_t *ids,
                                       size_t count)
{
    if (count == 0)
        return ELO_OK;
    if (g->row_count + count > g->capacity) {
        size_t cap = g->capacity * 2;
        if (cap < g->row_count + count)
            cap = g->row_count + count;
        int rc = reserve(g, cap);
        if (rc < 0)
            return rc;
    }
    int rc = upload_rows(g, g->row_count, rows, ids, NULL, count);
    if (rc < 0)
        return rc;
    g->row_count += count;
    g->live_count += count;
    return ELO_OK;
}

extern "C" int elo__vstore_cuda_delete(elo__vstore_gpu *g, const size_t *row_index, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (row_index[i] >= g->row_count)
            return elo_seterr(ELO_RANGE, "vstore cuda: row %zu out of range", row_index[i]);
        uint8_t was = 0;
        CUDA_TRY(cudaMemcpyAsync(&was, g->live + row_index[i], 1, cudaMemcpyDeviceToHost,
                                 g->stream));
        CUDA_TRY(cudaMemsetAsync(g->live + row_index[i], 0, 1, g->stream));
        CUDA_TRY(cudaStreamSynchronize(g->stream));
        if (was)
            g->live_count--;
    }
    return ELO_OK;
}

/* Runs the exact scan for `query_count` queries already on the device
 * (`dq`, f32, dim wide) and leaves the merged top-k in out_s/out_id
 * ([query][k], device). */
static int exact_search(elo__vstore_gpu *g, const float *dq, int query_count, int k,
                        float *out_s, long long *out_id, char *scratch, size_t scratch_left)
{
    int dimpad = (g->dim + 15) & ~15;
    bool l2 = g->metric == METRIC_L2;
    scan_kernel sk;
    if (g->dtype == ELO_DTYPE_F16)
        sk = l2 ? pick_scan<__half, true>(g->dim) : pick_scan<__half, false>(g->dim);
    else
        sk = l2 ? pick_scan<float, true>(g->dim) : pick_scan<float, false>(g->dim);
    /* Room for a round's inserts on top of k; at least 256 entries so the
     * first rounds of a block, which insert freely, rarely sort. */
    int cap = (int)next_pow2((size_t)k + sk.round_rows);
    if (cap < 256)
        cap = 256;
    size_t budget = (size_t)g->smem_optin - 1024;
    int qb = query_count < MAX_QB ? query_count : MAX_QB;
    while (qb > 1 && sk.extra_smem + scan_smem_bytes(qb, dimpad, cap) > budget)
        qb--;
    size_t smem = sk.extra_smem + scan_smem_bytes(qb, dimpad, cap);
    if (smem > budget)
        return elo_seterr(ELO_UNSUPPORTED, "k=%d with dim %d needs more shared memory", k,
                          g->dim);
    /* Configuring a kernel costs host time on every call: remember it. */
    if (g->occ_fn != sk.fn || g->occ_smem != smem) {
        CUDA_TRY(cudaFuncSetAttribute(sk.fn, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      (int)smem));
        int n = 0;
        CUDA_TRY(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, sk.fn, SCAN_THREADS, smem));
        g->occ_fn = sk.fn;
        g->occ_smem = smem;
        g->occ_per_sm = n < 1 ? 1 : n;
    }
    int per_sm = g->occ_per_sm;
    size_t rounds = (g->row_count + sk.round_rows - 1) / sk.round_rows;
    size_t gx = (size_t)g->sm_count * per_sm;
    if (gx > rounds)
        gx = rounds ? rounds : 1;
    int gy = (query_count + qb - 1) / qb;
    /* Bound the partial lists: [query][gx][k] entries of 12 bytes, twice. */
    size_t max_entries = (scratch_left - 64) / 24;
    while (gx > 1 && (size_t)query_count * gx * k > max_entries)
        gx = (gx + 1) / 2;
    if ((size_t)query_count * gx * k > max_entries)
        return elo_seterr(ELO_NOMEM, "search scratch too small");

    size_t entries = (size_t)query_count * gx * k;
    long long *pa_id = (long long *)scratch;
    float *pa_s = (float *)(pa_id + entries);
    long long *pb_id = (long long *)(pa_s + entries + (entries & 1));
    float *pb_s = (float *)(pb_id + entries);

    const void *rows = g->rows;
    const int64_t *ids = g->ids;
    const uint8_t *live = g->live;
    size_t row_count = g->row_count;
    int dim = g->dim;
    void *args[] = {(void *)&rows, (void *)&ids, (void *)&live, (void *)&row_count,
                    (void *)&dim, (void *)&dimpad, (void *)&dq, (void *)&query_count,
                    (void *)&qb, (void *)&k, (void *)&cap, (void *)&pa_s, (void *)&pa_id};
    CUDA_TRY(cudaLaunchKernel(sk.fn, dim3((unsigned)gx, (unsigned)gy), dim3(SCAN_THREADS), args,
                              smem, g->stream));

    /* Merge the per-block lists until one is left per query. */
    size_t kp = next_pow2((size_t)k);
    int group = (int)(MERGE_N / kp);
    if (group < 2)
        group = 2;
    int lists = (int)gx;
    float *in_s = pa_s, *nx_s = pb_s;
    long long *in_id = pa_id, *nx_id = pb_id;
    while (lists > 1) {
        int out_lists = (lists + group - 1) / group;
        int n = (int)next_pow2((size_t)(lists < group ? lists : group) * k);
        size_t msmem = (size_t)n * (sizeof(long long) + sizeof(float));
        if (!g->merge_ready) {
            CUDA_TRY(cudaFuncSetAttribute((const void *)merge_topk,
                                          cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          (int)(MERGE_N * (sizeof(long long) + sizeof(float)))));
            g->merge_ready = 1;
        }
        bool last = out_lists == 1;
        merge_topk<<<dim3((unsigned)out_lists, (unsigned)query_count), 512, msmem, g->stream>>>(
            in_s, in_id, lists, group, k, n, last ? out_s : nx_s, last ? out_id : nx_id);
        CUDA_TRY(cudaGetLastError());
        float *ts = in_s; in_s = nx_s; nx_s = ts;
        long long *ti = in_id; in_id = nx_id; nx_id = ti;
        lists = out_lists;
        if (last)
            return ELO_OK;
    }
    CUDA_TRY(cudaMemcpyAsync(out_s, pa_s, (size_t)query_count * k * sizeof(float),
                             cudaMemcpyDeviceToDevice, g->stream));
    CUDA_TRY(cudaMemcpyAsync(out_id, pa_id, (size_t)query_count * k * sizeof(long long),
                             cudaMemcpyDeviceToDevice, g->stream));
    return ELO_OK;
}

/* |fast - canonical| <= c * |x| * |q|: each operand rounded to the tensor
 * core format (relative 2^-10, allowing truncation) or, for f16 stores,
 * only the query rounded to f16; plus two f32 summations of `dim` terms in
 * different orders (dim * 2^-23 each, allowing truncating accumulators). */
static double batch_error_coefficient(const elo__vstore_gpu *g)
{
    double rounding = g->dtype == ELO_DTYPE_F16 ? ldexp(1.0, -10) : ldexp(1.0, -9);
    return rounding + 2.0 * g->dim * ldexp(1.0, -23) + ldexp(1.0, -16);
}

static int batch_search(elo__vstore_gpu *g, const float *host_q, const float *dq,
                        const float *dq_pad, const __half *dq_h, int query_count, int k,
                        float *out_s, long long *out_id, char *scratch, size_t scratch_left,
                        int *overflowed)
{
    int dimpad = (g->dim + 15) & ~15;
    size_t chunk = (size_t)(256u << 20) / sizeof(float) / (size_t)query_count;
    if (chunk > g->row_count)
        chunk = g->row_count;
    if (chunk < 1024)
        chunk = 1024;
    chunk = (chunk + 255) & ~(size_t)255;
    /* Enough (query, split) blocks to fill the GPU twice over. */
    int splits = (2 * g->sm_count + query_count - 1) / query_count;
    if (splits > 16)
        splits = 16;
    if (splits < 1)
        splits = 1;
    size_t states = (size_t)query_count * splits;

    char *p = scratch;
    batch_state *st = (batch_state *)p;
    p += (states * sizeof(batch_state) + 255) & ~(size_t)255;
    float *margin = (float *)p;
    p += ((size_t)query_count * sizeof(float) + 255) & ~(size_t)255;
    int *redo = (int *)p;
    p += ((size_t)query_count * sizeof(int) + 255) & ~(size_t)255;
    long long *keep_row = (long long *)p;
    p += states * BATCH_CAP * sizeof(long long);
    float *keep_s = (float *)p;
    p += states * BATCH_CAP * sizeof(float);
    float *scores = (float *)p;
    if ((size_t)(p - scratch) + chunk * query_count * sizeof(float) > scratch_left)
        return elo_seterr(ELO_NOMEM, "search scratch too small");

    /* margin = 2 * c * max|x| * |q|, computed here from the host queries. */
    unsigned max_bits = 0;
    CUDA_TRY(cudaMemcpyAsync(&max_bits, g->max_norm_bits, sizeof max_bits,
                             cudaMemcpyDeviceToHost, g->stream));
    CUDA_TRY(cudaStreamSynchronize(g->stream));
    float max_norm;
    memcpy(&max_norm, &max_bits, sizeof max_norm);
    double c = batch_error_coefficient(g);
    float *hm = (float *)elo_malloc((size_t)query_count * sizeof(float));
    if (!hm)
        return ELO_NOMEM;
    for (int q = 0; q < query_count; q++) {
        double n2 = 0;
        for (int d = 0; d < g->dim; d++)
            n2 += (double)host_q[(size_t)q * g->dim + d] * host_q[(size_t)q * g->dim + d];
        hm[q] = (float)(2.0 * c * max_norm * sqrt(n2) * 1.001 + 1e-30);
    }
    cudaError_t e = cudaMemcpyAsync(margin, hm, (size_t)query_count * sizeof(float),
                                    cudaMemcpyHostToDevice, g->stream);
    if (e == cudaSuccess)
        e = cudaMemsetAsync(redo, 0, (size_t)query_count * sizeof(int), g->stream);
    if (e == cudaSuccess)
        e = cudaStreamSynchronize(g->stream);
    elo_free(hm);
    if (e != cudaSuccess)
        return elo_seterr(ELO_DEVICE, "margin upload: %s", cudaGetErrorString(e));

    batch_init<<<(unsigned)((states + 255) / 256), 256, 0, g->stream>>>(st, (int)states);
    CUDA_TRY(cudaGetLastError());
    bool f16 = g->dtype == ELO_DTYPE_F16;
    for (size_t start = 0; start < g->row_count; start += chunk) {
        size_t rows = g->row_count - start < chunk ? g->row_count - start : chunk;
        elo_gemm gm;
        memset(&gm, 0, sizeof gm);
        gm.trans_a = 0;
        gm.trans_b = 1;
        gm.m = query_count;
        gm.n = (int)rows;
        gm.k = g->dim;
        gm.alpha = 1.0f;
        gm.beta = 0.0f;
        gm.a = f16 ? (const void *)dq_h : (const void *)dq;
        gm.lda = g->dim;
        gm.b = (const char *)g->rows + start * row_bytes(g);
        gm.ldb = g->dim;
        gm.c = scores;
        gm.ldc = (int)rows;
        gm.in_type = f16 ? ELO_DTYPE_F16 : ELO_DTYPE_F32;
        gm.out_type = ELO_DTYPE_F32;
        gm.allow_tf32 = 1;
        int rc = elo_backend_gemm(g->backend, &gm);
        if (rc < 0)
            return rc;
        batch_collect<<<dim3((unsigned)query_count, (unsigned)splits), BATCH_THREADS, 0,
                        g->stream>>>(scores, rows, start, g->live, margin, k,
                                     start + rows >= g->row_count, st, keep_s, keep_row);
        CUDA_TRY(cudaGetLastError());
    }
    if (f16)
        batch_rescore<__half><<<query_count, BATCH_THREADS, 0, g->stream>>>(
            (const __half *)g->rows, g->ids, g->dim, dq_pad, dimpad, k, splits, st, keep_s,
            keep_row, out_s, out_id, redo);
    else
        batch_rescore<float><<<query_count, BATCH_THREADS, 0, g->stream>>>(
            (const float *)g->rows, g->ids, g->dim, dq_pad, dimpad, k, splits, st, keep_s,
            keep_row, out_s, out_id, redo);
    CUDA_TRY(cudaGetLastError());
    CUDA_TRY(cudaMemcpyAsync(overflowed, redo, (size_t)query_count * sizeof(int),
                             cudaMemcpyDeviceToHost, g->stream));
    CUDA_TRY(cudaStreamSynchronize(g->stream));
    return ELO_OK;
}

static int search_group(elo__vstore_gpu *g, const float *queries, int query_count, int k,
                        int results, int64_t *out_ids, float *out_scores);

/* Queries go in groups, which bounds the scratch memory a search needs. */
#define QUERY_GROUP 2048

extern "C" int elo__vstore_cuda_search(elo__vstore_gpu *g, const float *queries, int query_count,
                                       int k, int64_t *out_ids, float *out_scores)
{
    if (query_count <= 0)
        return 0;
    if (k < 1 || k > 4096)
        return elo_seterr(ELO_RANGE, "k must be between 1 and 4096");
    elo_backend_count_op("vector_search");
    int results = (int)(g->live_count < (size_t)k ? g->live_count : (size_t)k);
    if (g->row_count == 0 || results == 0)
        return 0;
    for (int first = 0; first < query_count; first += QUERY_GROUP) {
        int n = query_count - first < QUERY_GROUP ? query_count - first : QUERY_GROUP;
        int rc = search_group(g, queries + (size_t)first * g->dim, n, k, results,
                              out_ids + (size_t)first * k, out_scores + (size_t)first * k);
        if (rc < 0)
            return rc;
    }
    return results;
}

static int search_group(elo__vstore_gpu *g, const float *queries, int query_count, int k,
                        int results, int64_t *out_ids, float *out_scores)
{
    int dimpad = (g->dim + 15) & ~15;
    size_t qbytes = (size_t)query_count * g->dim * sizeof(float);
    size_t head = 0;
    size_t off_q = head;                         head += (qbytes + 255) & ~(size_t)255;
    size_t off_qp = head;                        head += ((size_t)query_count * dimpad * 4 + 255) & ~(size_t)255;
    size_t off_qh = head;                        head += ((size_t)query_count * g->dim * 2 + 255) & ~(size_t)255;
    size_t off_os = head;                        head += ((size_t)query_count * k * 4 + 255) & ~(size_t)255;
    size_t off_oi = head;                        head += ((size_t)query_count * k * 8 + 255) & ~(size_t)255;
    size_t work = (size_t)640 << 20;            /* partial lists / batch scores */
    int rc = scratch_reserve(g, head + work);
    if (rc < 0)
        return rc;
    float *dq = (float *)(g->scratch + off_q);
    float *dq_pad = (float *)(g->scratch + off_qp);
    __half *dq_h = (__half *)(g->scratch + off_qh);
    float *out_s = (float *)(g->scratch + off_os);
    long long *out_id = (long long *)(g->scratch + off_oi);
    char *work_area = g->scratch + head;

    rc = staged_upload(g, dq, queries, qbytes);
    if (rc < 0)
        return rc;
    bool batch = g->metric != METRIC_L2 && k <= BATCH_MAX_K &&
                 ((g->force_path == 0 && query_count >= BATCH_MIN_QUERIES) || g->force_path == 2);
    if (batch) {
        pad_queries<<<256, 256, 0, g->stream>>>(dq, query_count, g->dim, dimpad, dq_pad, dq_h);
        CUDA_TRY(cudaGetLastError());
        int *overflowed = (int *)elo_calloc((size_t)query_count, sizeof(int));
        if (!overflowed)
            return ELO_NOMEM;
        rc = batch_search(g, queries, dq, dq_pad, dq_h, query_count, k, out_s, out_id,
                          work_area, work, overflowed);
        /* Redo the queries whose candidate set overflowed, exactly. */
        for (int q = 0; rc == ELO_OK && q < query_count; q++) {
            if (!overflowed[q])
                continue;
            rc = exact_search(g, dq + (size_t)q * g->dim, 1, k, out_s + (size_t)q * k,
                              out_id + (size_t)q * k, work_area, work);
        }
        elo_free(overflowed);
    } else {
        rc = exact_search(g, dq, query_count, k, out_s, out_id, work_area, work);
    }
    if (rc < 0)
        return rc;

    size_t sbytes = (size_t)query_count * k * sizeof(float);
    size_t ibytes = (size_t)query_count * k * sizeof(long long);
    rc = host_out_reserve(g, sbytes + ibytes);
    if (rc < 0)
        return rc;
    CUDA_TRY(cudaMemcpyAsync(g->host_out, out_s, sbytes, cudaMemcpyDeviceToHost, g->stream));
    CUDA_TRY(cudaMemcpyAsync((char *)g->host_out + sbytes, out_id, ibytes,
                             cudaMemcpyDeviceToHost, g->stream));
    CUDA_TRY(cudaStreamSynchronize(g->stream));
    const float *hs = (const float *)g->host_out;
    const long long *hi = (const long long *)((char *)g->host_out + sbytes);
    bool l2 = g->metric == METRIC_L2;
    for (int q = 0; q < query_count; q++)
        for (int i = 0; i < results; i++) {
            float s = hs[(size_t)q * k + i];
            out_scores[(size_t)q * k + i] = l2 ? -s : s;
            out_ids[(size_t)q * k + i] = hi[(size_t)q * k + i];
        }
    return results;
}
