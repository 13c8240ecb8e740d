/* embed-cuda.cu - the BERT encoder on a GPU: cuBLAS GEMMs through
 * elo_backend_gemm (f32, or f16/bf16 inputs with f32 accumulation; strided
 * batched GEMMs for attention) and our own fused kernels for everything
 * between them: embedding gather + LayerNorm, bias + head split, masked
 * softmax, head merge, bias + residual + LayerNorm, bias + GELU, pooling +
 * L2 normalization. On Hopper, the first feed-forward layer with its bias
 * and GELU is one kernel of embed-sm90.cu instead of cuBLAS + the pass.
 *
 * DESIGN: one context per embedder holds the weights (uploaded once, f32,
 * plus f16/bf16 copies of the dense weights at half precision) and scratch
 * sized for `max_tokens` padded tokens. A bucket of B sequences padded to L
 * tokens runs as one sequence of operations on the backend's non-blocking
 * stream: copy ids in (from pinned memory), the layers, copy the pooled
 * vectors out, synchronize. The residual stream, GEMM outputs, softmax and
 * LayerNorm statistics stay f32 at every precision; only GEMM inputs are
 * half. Small buckets (B x L <= GRAPH_MAX_TOKENS) are captured once per
 * shape into a CUDA graph and replayed after that, so a short query is not
 * bound by ~150 kernel launches; a shape is first run eagerly (so cuBLAS
 * has set itself up outside capture), then captured. If capture fails the
 * context falls back to eager runs for good. */
#include "embed-impl.h"
#include "embed-sm90.h"
#include "embed-device.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CU(call)                                                                 \
    do {                                                                         \
        cudaError_t e_ = (call);                                                 \
        if (e_ != cudaSuccess) {                                                 \
            cudaGetLastError();                                                  \
            return elo_seterr(ELO_DEVICE, "%s: %s", #call, cudaGetErrorString(e_)); \
        }                                                                        \
    } while (0)
#define LAUNCHED(what)                                                           \
    do {                                                                         \
        cudaError_t e_ = cudaGetLastError();                                     \
        if (e_ != cudaSuccess)                                                   \
            return elo_seterr(ELO_DEVICE, "embedding kernel %s: %s", what,       \
                              cudaGetErrorString(e_));                           \
    } while (0)

/* Padded tokens per bucket (device scratch is sized for this). */
#define MAX_TOKENS 32768
#define GRAPH_MAX_TOKENS 4096
#define GRAPH_CACHE 48
#define LN_THREADS 256

/* ---- type helpers --------------------------------------------------------- */

template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v)
{
    return __float2bfloat16_rn(v);
}

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }

/* Sum and maximum over the 32 lanes of a warp, in every lane. */
__device__ __forceinline__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* The same over the 4 lanes of a quad (lanes 4k .. 4k + 3: the threads
 * that share a row of an mma fragment). */
__device__ __forceinline__ float quad_sum(float v)
{
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

__device__ __forceinline__ float quad_max(float v)
{
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
    return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}

/* Sum over the block (blockDim.x a multiple of 32, <= 1024). */
__device__ float block_sum(float v, float *shared32)
{
    v = warp_sum(v);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    __syncthreads();
    if (lane == 0)
        shared32[warp] = v;
    __syncthreads();
    int warps = blockDim.x >> 5;
    return warp_sum(lane < warps ? shared32[lane] : 0.0f);
}

/* LayerNorm of the row held in `row` (shared, H floats), written as f32
 * and as the GEMM input type. */
template <typename CT>
__device__ void ln_row_store(const float *row, int H, const float *g, const float *b, float eps,
                             float *out, CT *out_c, float *shared32)
{
    float s = 0;
    for (int c = threadIdx.x; c < H; c += blockDim.x)
        s += row[c];
    float mean = block_sum(s, shared32) / H;
    float q = 0;
    for (int c = threadIdx.x; c < H; c += blockDim.x) {
        float d = row[c] - mean;
        q += d * d;
    }
    float inv = rsqrtf(block_sum(q, shared32) / H + eps);
    for (int c = threadIdx.x; c < H; c += blockDim.x) {
        float v = (row[c] - mean) * inv * g[c] + b[c];
        out[c] = v;
        if (out_c)
            out_c[c] = from_f32<CT>(v);
    }
}

/* ---- kernels ----------------------------------------------------------------- */

/* Programmatic dependent launch (sm_90+): a kernel launched with
 * pdl_launch() may be resident before the kernel ahead of it in the
 * stream has finished, and waits here, before reading anything that
 * kernel wrote; launched the usual way, or before sm_90, this is a no-op. */
__device__ __forceinline__ void pdl_wait()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

/* One block per padded token: word + position + type embedding, LayerNorm. */
template <typename CT>
__global__ void k_embed(const int32_t *ids, int L, int H, const float *word, const float *pos,
                        const float *type, const float *g, const float *b, float eps, float *x,
                        CT *xc)
{
    extern __shared__ float row[];
    __shared__ float red[32];
    int r = blockIdx.x, t = r % L;
    const float *we = word + (size_t)ids[r] * H, *pe = pos + (size_t)t * H;
    for (int c = threadIdx.x; c < H; c += blockDim.x)
        row[c] = we[c] + pe[c] + type[c];
    __syncthreads();
    ln_row_store<CT>(row, H, g, b, eps, x + (size_t)r * H, xc ? xc + (size_t)r * H : nullptr, red);
}

/* qkv [B*L, 3H] (+ bias) -> q, k, v as [B, heads, L, d]. */
template <typename CT>
__global__ void k_split_heads(const float *qkv, const float *bias, int L, int H, int heads,
                              size_t total, CT *q, CT *k, CT *v)
{
    int d = H / heads;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / (3 * H);
        int c = (int)(i % (3 * H));
        int which = c / H, hc = c % H, h = hc / d, dd = hc % d;
        size_t b = r / L, t = r % L;
        size_t dst = ((b * heads + h) * L + t) * d + dd;
        CT val = from_f32<CT>(qkv[i] + bias[c]);
        (which == 0 ? q : which == 1 ? k : v)[dst] = val;
    }
}

/* One warp per score row: scale, mask keys past the sequence, softmax. */
template <typename CT>
__global__ void k_softmax(const float *scores, CT *probs, const int *lens, int L, int heads,
                          size_t rows, float scale)
{
    size_t r = blockIdx.x * (size_t)(blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (r >= rows)
        return;
    int len = lens[r / ((size_t)heads * L)];
    const float *s = scores + r * L;
    CT *p = probs + r * L;
    float mx = -INFINITY;
    for (int j = lane; j < len; j += 32)
        mx = fmaxf(mx, s[j] * scale);
    mx = warp_max(mx);
    float sum = 0;
    for (int j = lane; j < len; j += 32)
        sum += __expf(s[j] * scale - mx);
    sum = warp_sum(sum);
    float inv = 1.0f / sum;
    for (int j = lane; j < L; j += 32)
        p[j] = from_f32<CT>(j < len ? __expf(s[j] * scale - mx) * inv : 0.0f);
}

/* ctx [B, heads, L, d] -> [B*L, H] in the GEMM input type. */
template <typename CT>
__global__ void k_merge_heads(const float *ctx, int L, int H, int heads, size_t total, CT *out)
{
    int d = H / heads;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / H;
        int c = (int)(i % H), h = c / d, dd = c % d;
        size_t b = r / L, t = r % L;
        out[i] = from_f32<CT>(ctx[((b * heads + h) * L + t) * d + dd]);
    }
}

/* x = LN(x + y + bias), a warp per row (hidden sizes up to WARP_LN_MAX):
 * the row stays in registers, the statistics are warp shuffles, and no
 * block barrier is needed; a block per row (below) is 5-10x slower at
 * H = 384, where each of its 256 threads holds 1.5 values. */
#define WARP_LN_MAX 1024
#define WARP_LN_PER (WARP_LN_MAX / 32)

/* LayerNorm of the row a warp holds in v[] (lane + 32 i), written to xr
 * (f32) and xc (the GEMM input type), each when not NULL. */
template <typename CT>
__device__ __forceinline__ void warp_ln_store(float (&v)[WARP_LN_PER], int H, int lane,
                                              const float *g, const float *b, float eps,
                                              float *xr, CT *xc)
{
    float s = 0.0f;
#pragma unroll
    for (int i = 0; i < WARP_LN_PER; i++)
        s += v[i];
    s = warp_sum(s);
    float mean = s / H, q = 0.0f;
#pragma unroll
    for (int i = 0; i < WARP_LN_PER; i++) {
        int c = lane + 32 * i;
        float dlt = c < H ? v[i] - mean : 0.0f;
        q += dlt * dlt;
    }
    q = warp_sum(q);
    float inv = rsqrtf(q / H + eps);
#pragma unroll
    for (int i = 0; i < WARP_LN_PER; i++) {
        int c = lane + 32 * i;
        if (c < H) {
            float o2 = (v[i] - mean) * inv * g[c] + b[c];
            if (xr)
                xr[c] = o2;
            if (xc)
                xc[c] = from_f32<CT>(o2);
        }
    }
}

template <typename CT>
__global__ void k_residual_ln_warp(float *x, const float *y, const float *bias, const float *g,
                                   const float *b, float eps, int H, size_t rows, CT *xc)
{
    size_t r = blockIdx.x * (size_t)(blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (r >= rows)
        return;
    float *xr = x + r * H;
    const float *yr = y + r * H;
    float v[WARP_LN_PER];
#pragma unroll
    for (int i = 0; i < WARP_LN_PER; i++) {
        int c = lane + 32 * i;
        v[i] = c < H ? xr[c] + yr[c] + bias[c] : 0.0f;
    }
    warp_ln_store<CT>(v, H, lane, g, b, eps, xr, xc ? xc + r * H : nullptr);
}

/* The embeddings (word + position + type) and their LayerNorm, a warp per
 * padded token (a block per token spent most of its time in barriers). */
template <typename CT>
__global__ void k_embed_warp(const int32_t *ids, int L, int H, const float *word,
                             const float *pos, const float *type, const float *g, const float *b,
                             float eps, size_t rows, float *x, CT *xc)
{
    size_t r = blockIdx.x * (size_t)(blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (r >= rows)
        return;
    const float *we = word + (size_t)ids[r] * H, *pe = pos + (size_t)(r % L) * H;
    float v[WARP_LN_PER];
#pragma unroll
    for (int i = 0; i < WARP_LN_PER; i++) {
        int c = lane + 32 * i;
        v[i] = c < H ? we[c] + pe[c] + type[c] : 0.0f;
    }
    warp_ln_store<CT>(v, H, lane, g, b, eps, x ? x + r * H : nullptr,
                      xc ? xc + r * H : nullptr);
}

/* Four consecutive values of a GEMM output as floats. */
__device__ __forceinline__ float4 load4(const float *p) { return *(const float4 *)p; }
template <typename T> __device__ __forceinline__ float4 load4(const T *p)
{
    uint2 u = *(const uint2 *)p;
    const T *e = (const T *)&u;
    return make_float4(to_f32(e[0]), to_f32(e[1]), to_f32(e[2]), to_f32(e[3]));
}

/* Four consecutive values stored from floats. */
__device__ __forceinline__ void store4(float *p, float4 o) { *(float4 *)p = o; }
template <typename T> __device__ __forceinline__ void store4(T *p, float4 o)
{
    T e[4] = {from_f32<T>(o.x), from_f32<T>(o.y), from_f32<T>(o.z), from_f32<T>(o.w)};
    *(uint2 *)p = *(const uint2 *)e;
}

/* LayerNorm of the row a warp holds as v[i] (groups of four at 4 (lane +
 * 32 i)), s the lane's partial sum, stored to xr and, when not NULL, xcr. */
template <typename XT, typename CT, int NV>
__device__ __forceinline__ void warp4_ln_store(const float4 (&v)[NV], float s, int H, int lane,
                                               const float *g, const float *b, float eps,
                                               XT *xr, CT *xcr)
{
    s = warp_sum(s);
    float mean = s / H, q = 0.0f;
#pragma unroll
    for (int i = 0; i < NV; i++) {
        float a = v[i].x - mean, e = v[i].y - mean, f = v[i].z - mean, h = v[i].w - mean;
        q += a * a + e * e + f * f + h * h;
    }
    q = warp_sum(q);
    float inv = rsqrtf(q / H + eps);
    const float4 *g4 = (const float4 *)g, *bb4 = (const float4 *)b;
#pragma unroll
    for (int i = 0; i < NV; i++) {
        int c = lane + 32 * i;
        float4 gg = g4[c], bb = bb4[c], o;
        o.x = (v[i].x - mean) * inv * gg.x + bb.x;
        o.y = (v[i].y - mean) * inv * gg.y + bb.y;
        o.z = (v[i].z - mean) * inv * gg.z + bb.z;
        o.w = (v[i].w - mean) * inv * gg.w + bb.w;
        store4(xr + 4 * c, o);
        if (xcr)
            store4(xcr + 4 * c, o);
    }
}

/* k_residual_ln_warp with 16-byte (f32) or 8-byte (16-bit) loads and stores
 * for H a multiple of 128 (NV = H / 128 groups of four per lane): a quarter
 * of the memory instructions. XT is the residual stream's type: f32 (then
 * the result is also written to xc, the GEMM input), or at half precision
 * the input type itself, updated in place with xc NULL: the residual is
 * then the GEMM input, as in PyTorch's fp16 model, and the pass moves 6
 * bytes a value instead of 12. YT is the GEMM output's type: f32, or the
 * input type at half precision. */
template <typename XT, typename CT, typename YT, int NV>
__global__ void k_residual_ln_warp4(XT *x, const YT *y, const float *bias, const float *g,
                                    const float *b, float eps, int H, size_t rows, CT *xc)
{
    pdl_wait();
    size_t r = blockIdx.x * (size_t)(blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (r >= rows)
        return;
    XT *xr = x + r * H;
    const YT *yr = y + r * H;
    const float4 *b4 = (const float4 *)bias;
    float4 v[NV];
    float s = 0.0f;
#pragma unroll
    for (int i = 0; i < NV; i++) {
        int c = lane + 32 * i;
        float4 a = load4(xr + 4 * c), e = load4(yr + 4 * c), f = b4[c];
        v[i] = make_float4(a.x + e.x + f.x, a.y + e.y + f.y, a.z + e.z + f.z, a.w + e.w + f.w);
        s += v[i].x + v[i].y + v[i].z + v[i].w;
    }
    warp4_ln_store<XT, CT, NV>(v, s, H, lane, g, b, eps, xr, xc ? xc + r * H : nullptr);
}

/* The embeddings (word + position + type) and their LayerNorm with
 * 16-byte loads, for H a multiple of 128 (NV = H / 128): the residual x in
 * XT and, when not NULL, the GEMM input xc (as k_residual_ln_warp4). */
template <typename XT, typename CT, int NV>
__global__ void k_embed_warp4(const int32_t *ids, int L, int H, const float *word,
                              const float *pos, const float *type, const float *g,
                              const float *b, float eps, size_t rows, XT *x, CT *xc)
{
    size_t r = blockIdx.x * (size_t)(blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (r >= rows)
        return;
    const float4 *we = (const float4 *)(word + (size_t)ids[r] * H),
                 *pe = (const float4 *)(pos + (size_t)(r % L) * H), *te = (const float4 *)type;
    float4 v[NV];
    float s = 0.0f;
#pragma unroll
    for (int i = 0; i < NV; i++) {
        int c = lane + 32 * i;
        float4 a = we[c], e = pe[c], f = te[c];
        v[i] = make_float4(a.x + e.x + f.x, a.y + e.y + f.y, a.z + e.z + f.z, a.w + e.w + f.w);
        s += v[i].x + v[i].y + v[i].z + v[i].w;
    }
    warp4_ln_store<XT, CT, NV>(v, s, H, lane, g, b, eps, x + r * H, xc ? xc + r * H : nullptr);
}

/* x = LN(x + y + bias), one block per row. */
template <typename CT>
__global__ void k_residual_ln(float *x, const float *y, const float *bias, const float *g,
                              const float *b, float eps, int H, CT *xc)
{
    extern __shared__ float row[];
    __shared__ float red[32];
    size_t r = blockIdx.x;
    float *xr = x + r * H;
    const float *yr = y + r * H;
    for (int c = threadIdx.x; c < H; c += blockDim.x)
        row[c] = xr[c] + yr[c] + bias[c];
    __syncthreads();
    ln_row_store<CT>(row, H, g, b, eps, xr, xc ? xc + r * H : nullptr, red);
}

/* Fused attention, one block per (sequence, head): q, k and v come
 * straight from the QKV GEMM output ([B*L, 3H], in QT; the bias is added
 * here), keys past the sequence are masked, and the context goes straight
 * into [B*L, H] at the head's columns, in the GEMM input type. K (rows
 * padded to d + 1 floats: the lanes of a warp read different rows of one
 * column without bank conflicts) and V sit in shared memory as f32; a warp
 * takes one query row at a time: scores, softmax and context all in f32.
 * This replaces the head split, two batched GEMMs, the softmax and the
 * head merge, and their trips through memory. Padding rows get zeros. */
#define ATT_WARPS 4

static size_t attention_smem(int L, int d)
{
    return ((size_t)L * (d + 1) + (size_t)L * d + (size_t)ATT_WARPS * (d + L)) * sizeof(float);
}

template <typename QT, typename CT>
__global__ void __launch_bounds__(ATT_WARPS * 32)
    k_attention(const QT *qkv, const float *bias, const int *lens, int L, int H, int heads,
                float scale, CT *out)
{
    extern __shared__ float sm[];
    const int d = H / heads, b = blockIdx.x / heads, h = blockIdx.x % heads;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, len = lens[b];
    float *ks = sm, *vs = ks + (size_t)L * (d + 1);
    float *qrow = vs + (size_t)L * d + warp * d, *prow = vs + (size_t)L * d + ATT_WARPS * d + warp * L;
    const QT *base = qkv + (size_t)b * L * 3 * H;
    const float *kb = bias + H + h * d, *vb = bias + 2 * H + h * d, *qb = bias + h * d;
    for (int i = threadIdx.x; i < len * d; i += blockDim.x) {
        int t = i / d, dd = i % d;
        const QT *row = base + (size_t)t * 3 * H;
        ks[t * (d + 1) + dd] = to_f32(row[H + h * d + dd]) + kb[dd];
        vs[i] = to_f32(row[2 * H + h * d + dd]) + vb[dd];
    }
    __syncthreads();
    for (int t = warp; t < L; t += ATT_WARPS) {
        CT *o = out + ((size_t)b * L + t) * H + h * d;
        if (t >= len) {
            for (int dd = lane; dd < d; dd += 32)
                o[dd] = from_f32<CT>(0.0f);
            continue;
        }
        const QT *row = base + (size_t)t * 3 * H + h * d;
        for (int dd = lane; dd < d; dd += 32)
            qrow[dd] = to_f32(row[dd]) + qb[dd];
        __syncwarp();
        float mx = -INFINITY;
        for (int j = lane; j < len; j += 32) {
            const float *kr = ks + j * (d + 1);
            float sc = 0.0f;
            for (int dd = 0; dd < d; dd++)
                sc += qrow[dd] * kr[dd];
            sc *= scale;
            prow[j] = sc;
            mx = fmaxf(mx, sc);
        }
        mx = warp_max(mx);
        float sum = 0.0f;
        for (int j = lane; j < len; j += 32) {
            float e = __expf(prow[j] - mx);
            prow[j] = e;
            sum += e;
        }
        sum = warp_sum(sum);
        float inv = 1.0f / sum;
        __syncwarp();
        for (int dd = lane; dd < d; dd += 32) {
            float acc = 0.0f;
            for (int j = 0; j < len; j++)
                acc += prow[j] * vs[j * d + dd];
            o[dd] = from_f32<CT>(acc * inv);
        }
        __syncwarp();
    }
}

/* Fused attention with a thread per query row, for head sizes D of 32 or
 * 64 (MiniLM, BERT-base): one block per (sequence, head) holds K and V in
 * shared memory (f32, bias added); each thread keeps its query row, its
 * running softmax and its context row in registers and walks the keys in
 * chunks of 32 with an online softmax (running max and sum, rescaling the
 * partial context when the max grows). Every shared-memory read is a
 * broadcast (all threads read the same key row), four values per load.
 * Rows past the sequence get zeros. */
static size_t attention_rows_smem(int L, int d) { return (size_t)2 * L * d * sizeof(float); }

template <typename QT, typename CT, int D>
__global__ void __launch_bounds__(128)
    k_attention_rows(const QT *qkv, const float *bias, const int *lens, int L, int H, int heads,
                     float scale, CT *out)
{
    extern __shared__ float4 sm4[];
    float *ks = (float *)sm4, *vs = ks + (size_t)L * D;
    const int b = blockIdx.x / heads, h = blockIdx.x % heads, len = lens[b];
    const QT *base = qkv + (size_t)b * L * 3 * H;
    const float *kb = bias + H + h * D, *vb = bias + 2 * H + h * D, *qb = bias + h * D;
    for (int i = threadIdx.x; i < len * D; i += blockDim.x) {
        int t = i / D, dd = i % D;
        const QT *row = base + (size_t)t * 3 * H;
        ks[i] = to_f32(row[H + h * D + dd]) + kb[dd];
        vs[i] = to_f32(row[2 * H + h * D + dd]) + vb[dd];
    }
    __syncthreads();
    for (int t = threadIdx.x; t < L; t += blockDim.x) {
        CT *o = out + ((size_t)b * L + t) * H + h * D;
        if (t >= len) {
            for (int dd = 0; dd < D; dd++)
                o[dd] = from_f32<CT>(0.0f);
            continue;
        }
        const QT *row = base + (size_t)t * 3 * H + h * D;
        float q[D], acc[D];
#pragma unroll
        for (int dd = 0; dd < D; dd++) {
            q[dd] = (to_f32(row[dd]) + qb[dd]) * scale;
            acc[dd] = 0.0f;
        }
        float mx = -INFINITY, sum = 0.0f;
        for (int j0 = 0; j0 < len; j0 += 32) {
            const int n = len - j0 < 32 ? len - j0 : 32;
            float sc[32], cmx = -INFINITY;
#pragma unroll
            for (int jj = 0; jj < 32; jj++) {
                if (jj < n) {
                    const float4 *kr = (const float4 *)(ks + (size_t)(j0 + jj) * D);
                    float a = 0.0f;
#pragma unroll
                    for (int c4 = 0; c4 < D / 4; c4++) {
                        float4 k4 = kr[c4];
                        a += q[4 * c4] * k4.x + q[4 * c4 + 1] * k4.y + q[4 * c4 + 2] * k4.z +
                             q[4 * c4 + 3] * k4.w;
                    }
                    sc[jj] = a;
                    cmx = fmaxf(cmx, a);
                }
            }
            float nmx = fmaxf(mx, cmx), corr = __expf(mx - nmx);
            sum *= corr;
#pragma unroll
            for (int dd = 0; dd < D; dd++)
                acc[dd] *= corr;
            mx = nmx;
#pragma unroll
            for (int jj = 0; jj < 32; jj++) {
                if (jj < n) {
                    float pj = __expf(sc[jj] - mx);
                    sum += pj;
                    const float4 *vr = (const float4 *)(vs + (size_t)(j0 + jj) * D);
#pragma unroll
                    for (int c4 = 0; c4 < D / 4; c4++) {
                        float4 v4 = vr[c4];
                        acc[4 * c4] += pj * v4.x;
                        acc[4 * c4 + 1] += pj * v4.y;
                        acc[4 * c4 + 2] += pj * v4.z;
                        acc[4 * c4 + 3] += pj * v4.w;
                    }
                }
            }
        }
        float inv = 1.0f / sum;
#pragma unroll
        for (int dd = 0; dd < D; dd++)
            o[dd] = from_f32<CT>(acc[dd] * inv);
    }
}

/* The tensor-core attention (half precision, head size 32 or 64): a
 * flash-style kernel on mma.sync m16n8k16 tiles. A block takes one
 * sequence and G of its heads, G chosen so the heads have TC_STRIPS 16-row
 * query strips between them (for L <= 128; one head a block beyond), and
 * runs TC_WARPS warps, each taking every TC_WARPS-th strip:
 * - Q, K and V of the G heads go to shared memory by cp.async in 16-byte
 *   pieces; the G heads are one contiguous run of each QKV row, so the
 *   pieces of a row are whole 128-byte lines on consecutive threads;
 * - the threads that moved Q's pieces add Q's bias and apply the scale
 *   (times log2 e: exp2 below) in place. K's bias adds q . bk to every
 *   score of a query row, which softmax cancels, so it is left out; V's
 *   bias comes out of the weighted sum unchanged (the weights sum to 1),
 *   so it is added to the output;
 * - a warp walks the keys of its strip TC_KEYS at a time with an online
 *   softmax, so S and P never leave registers (S's accumulator layout is
 *   P's operand layout for the P V product); operands come by ldmatrix (Q
 *   and K as they are, V transposed by ldmatrix.trans);
 * - each strip's output goes over its own Q rows, and the block stores
 *   whole output rows of G x D values.
 *
 * Measured on an H200 (6 layers, f16, attention time a 32 x 1024 / 128 x
 * 256 batch): Q, K and V all through registers (bias added to each) 0.33 /
 * 0.54 ms; a block per (sequence, head) with K and V by cp.async and Q
 * through registers, its output stored from the fragments (16-byte pieces
 * of a row), ~0.31 / 0.52 ms: 64 registers with spills at 2 warps a
 * block, 70 % of L1 and L2 throughput; this form with 8 warps a block
 * about the same, with 4 (two strips a warp: more blocks, so more loads
 * in flight, an SM) +1-1.5 % sentences/s on the whole batch and 2 warps
 * -1 %; a persistent version (a block walking groups of items with the
 * next group's loads in flight, two shared-memory stages) 0.46 / 0.69 ms:
 * fewer warps an SM (24 against 32 or more) lost more than the prefetch
 * won. */
#define TC_STRIPS 8
#define TC_WARPS 4
#define TC_KEYS 32                 /* keys per online-softmax step (64 needed 94
                                      registers at D = 32: 2 blocks an SM) */
#define TC_LDH(n) ((n) + 8)        /* 16-bit rows, padded off bank multiples */

static size_t attention_tc_smem(int L, int d)
{
    size_t Lp = (size_t)(L + 15) / 16 * 16;
    return 3 * Lp * TC_LDH(d) * 2; /* Q, K and V */
}

/* 16 bytes global -> shared without registers; `bytes` 0 writes zeros. */
__device__ __forceinline__ void cp_async16(void *smem, const void *gmem, int bytes)
{
    unsigned a = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(a), "l"(gmem),
                 "r"(bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;"); }
template <int N> __device__ __forceinline__ void cp_async_wait()
{
    asm volatile("cp.async.wait_group %0;" ::"n"(N));
}

/* 8 consecutive values as floats (16- or 32-byte aligned loads). */
__device__ __forceinline__ void load8(const float *p, float *o)
{
    float4 a = *(const float4 *)p, b = *(const float4 *)(p + 4);
    o[0] = a.x; o[1] = a.y; o[2] = a.z; o[3] = a.w;
    o[4] = b.x; o[5] = b.y; o[6] = b.z; o[7] = b.w;
}
template <typename T> __device__ __forceinline__ void load8(const T *p, float *o)
{
    uint4 u = *(const uint4 *)p;
    const T *e = (const T *)&u;
#pragma unroll
    for (int i = 0; i < 8; i++)
        o[i] = to_f32(e[i]);
}

/* c += a b on one m16n8k16 tile, f32 accumulation. */
template <typename CT> __device__ __forceinline__ void mma16816(float *c, const uint32_t *a,
                                                                uint32_t b0, uint32_t b1);
template <> __device__ __forceinline__ void mma16816<__half>(float *c, const uint32_t *a,
                                                             uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, "
                 "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <> __device__ __forceinline__ void mma16816<__nv_bfloat16>(float *c, const uint32_t *a,
                                                                    uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, "
                 "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* Four 8 x 8 tiles of 16-bit values from shared memory, one register
 * each; lanes 8i .. 8i + 7 give the row addresses of tile i. .trans hands
 * out each tile transposed. */
__device__ __forceinline__ void ldsm_x4(uint32_t *r, const void *smem)
{
    unsigned a = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}

__device__ __forceinline__ void ldsm_x4_trans(uint32_t *r, const void *smem)
{
    unsigned a = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}

/* Eight floats as eight 16-bit values in one 16-byte piece. */
template <typename CT> __device__ __forceinline__ uint4 pack8(const float *e)
{
    return make_uint4(pack2<CT>(e[0], e[1]), pack2<CT>(e[2], e[3]), pack2<CT>(e[4], e[5]),
                      pack2<CT>(e[6], e[7]));
}

/* Fragment layout of m16n8k16 (g = lane / 4, q = lane % 4): A registers
 * hold rows g and g+8 at columns 2q, 2q+1 (regs 0, 1) and 2q+8, 2q+9 (regs
 * 2, 3); B registers hold column g at rows 2q, 2q+1 and 2q+8, 2q+9; C holds
 * rows g (c0, c1) and g+8 (c2, c3) at columns 2q, 2q+1. */
/* The heads a k_attention_tc block takes: as many of one sequence as have
 * TC_STRIPS 16-row strips between them, a divisor of `heads`. */
static int attention_tc_heads(int L, int heads)
{
    int strips = (L + 15) / 16, g = strips < TC_STRIPS ? TC_STRIPS / strips : 1;
    while (heads % g)
        g--;
    return g;
}

/* One warp, one 16-row query strip `s` of a head whose Q (biased, scaled),
 * K and V lie in shared memory (k_attention_tc). The strip's output (V's
 * bias added, rows past `len` zeros) goes back over the strip's own Q
 * rows, which only this warp reads. */
template <typename CT, int D>
__device__ __forceinline__ void tc_strip(CT *qs, const CT *ks, const CT *vs,
                                         const float *vbias, int s, int len, int Lp, int lane)
{
    const int ld = TC_LDH(D), g = lane >> 2, q = lane & 3;
    const int r0 = s * 16 + g, r1 = r0 + 8;
    /* A tiles of the strip, held: lanes 0-15 address rows at column 0,
     * lanes 16-31 the same rows at column 8 */
    uint32_t qa[D / 16][4];
    {
        const CT *qr = qs + (size_t)(16 * s + (lane & 15)) * ld + (lane >> 4) * 8;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++)
            ldsm_x4(qa[kk], qr + 16 * kk);
    }
    float o[D / 8][4];
#pragma unroll
    for (int dn = 0; dn < D / 8; dn++)
        o[dn][0] = o[dn][1] = o[dn][2] = o[dn][3] = 0.0f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;
    for (int k0 = 0; k0 < Lp; k0 += TC_KEYS) {
        const int nt = (Lp - k0 < TC_KEYS ? Lp - k0 : TC_KEYS) / 8; /* even */
        float sc[TC_KEYS / 8][4];
        float bm0 = -INFINITY, bm1 = -INFINITY;
#pragma unroll
        for (int n = 0; n < TC_KEYS / 8; n += 2) {
#pragma unroll
            for (int u = 0; u < 2; u++)
                sc[n + u][0] = sc[n + u][1] = sc[n + u][2] = sc[n + u][3] =
                    n < nt ? 0.0f : -INFINITY;
            if (n >= nt)
                continue;
            /* B tiles of keys 8n .. 8n + 15: K's rows as they are (tiles:
             * keys 0-7 at d 0 and 8, keys 8-15 at d 0 and 8) */
            const CT *kr = ks + (size_t)(k0 + 8 * n + (lane & 7) + ((lane >> 4) << 3)) * ld +
                           ((lane >> 3) & 1) * 8;
#pragma unroll
            for (int kk = 0; kk < D / 16; kk++) {
                uint32_t kf[4];
                ldsm_x4(kf, kr + 16 * kk);
                mma16816<CT>(sc[n], qa[kk], kf[0], kf[1]);
                mma16816<CT>(sc[n + 1], qa[kk], kf[2], kf[3]);
            }
#pragma unroll
            for (int u = 0; u < 2; u++) {
                int key = k0 + 8 * (n + u) + 2 * q;
                if (key >= len)
                    sc[n + u][0] = sc[n + u][2] = -INFINITY;
                if (key + 1 >= len)
                    sc[n + u][1] = sc[n + u][3] = -INFINITY;
                bm0 = fmaxf(bm0, fmaxf(sc[n + u][0], sc[n + u][1]));
                bm1 = fmaxf(bm1, fmaxf(sc[n + u][2], sc[n + u][3]));
            }
        }
        bm0 = quad_max(bm0);
        bm1 = quad_max(bm1);
        /* key 0 is always valid (len >= 1), so after the first step the
         * running maxima are finite */
        const float mn0 = fmaxf(m0, bm0), mn1 = fmaxf(m1, bm1);
        const float c0 = exp2f(m0 - mn0), c1 = exp2f(m1 - mn1);
        m0 = mn0;
        m1 = mn1;
        l0 *= c0;
        l1 *= c1;
#pragma unroll
        for (int dn = 0; dn < D / 8; dn++) {
            o[dn][0] *= c0;
            o[dn][1] *= c0;
            o[dn][2] *= c1;
            o[dn][3] *= c1;
        }
#pragma unroll
        for (int c = 0; c < TC_KEYS / 16; c++) {
            if (2 * c >= nt)
                break;
            float p[2][4];
#pragma unroll
            for (int u = 0; u < 2; u++) {
                p[u][0] = exp2f(sc[2 * c + u][0] - m0);
                p[u][1] = exp2f(sc[2 * c + u][1] - m0);
                p[u][2] = exp2f(sc[2 * c + u][2] - m1);
                p[u][3] = exp2f(sc[2 * c + u][3] - m1);
                l0 += p[u][0] + p[u][1];
                l1 += p[u][2] + p[u][3];
            }
            const uint32_t pa[4] = {pack2<CT>(p[0][0], p[0][1]), pack2<CT>(p[0][2], p[0][3]),
                                    pack2<CT>(p[1][0], p[1][1]), pack2<CT>(p[1][2], p[1][3])};
            /* B tiles of V for keys 16c .. 16c + 15, two 8-column groups
             * at a time, transposed by ldmatrix */
            const CT *vr = vs + (size_t)(k0 + 16 * c + (lane & 15)) * ld + (lane >> 4) * 8;
#pragma unroll
            for (int dn = 0; dn < D / 8; dn += 2) {
                uint32_t vf[4];
                ldsm_x4_trans(vf, vr + 8 * dn);
                mma16816<CT>(o[dn], pa, vf[0], vf[1]);
                mma16816<CT>(o[dn + 1], pa, vf[2], vf[3]);
            }
        }
    }
    l0 = quad_sum(l0);
    l1 = quad_sum(l1);
    const float i0 = r0 < len ? 1.0f / l0 : 0.0f, i1 = r1 < len ? 1.0f / l1 : 0.0f;
    const float in0 = r0 < len ? 1.0f : 0.0f, in1 = r1 < len ? 1.0f : 0.0f;
#pragma unroll
    for (int dn = 0; dn < D / 8; dn++) {
        const int col = 8 * dn + 2 * q;
        const float2 vb = *(const float2 *)(vbias + col);
        *(uint32_t *)(qs + (size_t)r0 * ld + col) =
            pack2<CT>(o[dn][0] * i0 + vb.x * in0, o[dn][1] * i0 + vb.y * in0);
        *(uint32_t *)(qs + (size_t)r1 * ld + col) =
            pack2<CT>(o[dn][2] * i1 + vb.x * in1, o[dn][3] * i1 + vb.y * in1);
    }
}

/* The tensor-core attention (see TC_STRIPS): a block per (sequence, G
 * heads), the lengths in `lens`, the output in `out` ([tokens][H]). */
template <typename CT, int D>
__global__ void __launch_bounds__(TC_WARPS * 32, D == 32 ? 6 : 4)
    k_attention_tc(const CT *qkv, const float *bias, const int *lens, int L, int H, int heads,
                   int G, float scale, CT *out)
{
    pdl_wait();
    extern __shared__ __align__(16) unsigned char smc[];
    CT *sm = (CT *)smc;
    const int Lp = (L + 15) / 16 * 16, ld = TC_LDH(D), strips = Lp / 16;
    const size_t per = (size_t)3 * Lp * ld; /* one head's Q, K and V */
    const int hb = heads / G, b = blockIdx.x / hb, h0 = (blockIdx.x % hb) * G, len = lens[b];
    /* a thread moves 16-byte piece c of a row's run of G x D values (the
     * same piece of every `step`-th row): G heads side by side are one
     * contiguous run of the QKV row, so a row's pieces are whole lines */
    const int run = G * (D / 8), step = blockDim.x / run, c = threadIdx.x % run;
    const int mover = threadIdx.x < step * run;
    const CT *base = qkv + (size_t)b * L * 3 * H + (size_t)h0 * D;
    const CT *src = base + 8 * c;
    CT *dst = sm + (c / (D / 8)) * per + (c % (D / 8)) * 8; /* head c / (D / 8), Q row 0 */
    /* rows from L to the multiple of 16 are zero-filled; padding rows
     * before L hold finite values (the encoder ran on id 0 there) */
    if (mover)
        for (int r = threadIdx.x / run; r < Lp; r += step) {
            const int ok = r < L;
#pragma unroll
            for (int part = 0; part < 3; part++)
                cp_async16(dst + ((size_t)part * Lp + r) * ld,
                           ok ? src + (size_t)r * 3 * H + part * H : base, ok ? 16 : 0);
        }
    cp_async_commit();
    cp_async_wait<0>();
    /* Q's bias and scale (times log2 e: exp2 below), on the pieces this
     * thread moved: the same 8 columns in every row */
    if (mover) {
        const float qscale = scale * 1.4426950408889634f;
        float bq[8];
        load8(bias + (size_t)h0 * D + 8 * c, bq);
        for (int r = threadIdx.x / run; r < L; r += step) {
            float e[8];
            load8(dst + (size_t)r * ld, e);
#pragma unroll
            for (int k = 0; k < 8; k++)
                e[k] = (e[k] + bq[k]) * qscale;
            *(uint4 *)(dst + (size_t)r * ld) = pack8<CT>(e);
        }
    }
    __syncthreads();
    const int lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    for (int w = threadIdx.x >> 5; w < G * strips; w += warps) {
        const int g = w / strips;
        CT *qs = sm + g * per;
        tc_strip<CT, D>(qs, qs + (size_t)Lp * ld, qs + (size_t)2 * Lp * ld,
                        bias + 2 * H + (size_t)(h0 + g) * D, w % strips, len, Lp, lane);
    }
    __syncthreads();
    CT *ob = out + (size_t)b * L * H + (size_t)h0 * D + 8 * c;
    if (mover)
        for (int r = threadIdx.x / run; r < L; r += step)
            *(uint4 *)(ob + (size_t)r * H) = *(const uint4 *)(dst + (size_t)r * ld);
}

/* io = GELU(io + bias) in place (erf form), io in the GEMM input type; the
 * GELU forms are in embed-device.cuh, shared with embed-sm90.cu. */
template <typename CT> __device__ __forceinline__ float gelu_for(float v)
{
    return sizeof(CT) == 2 ? gelu_erf16(v) : gelu_erf(v);
}

/* Two values at a time (I even): half the load and store instructions. */
template <typename CT> struct pair_of;
template <> struct pair_of<float> {
    typedef float2 T;
    static __device__ float2 f2(T v) { return v; }
    static __device__ T from(float2 v) { return v; }
};
template <> struct pair_of<__half> {
    typedef __half2 T;
    static __device__ float2 f2(T v) { return __half22float2(v); }
    static __device__ T from(float2 v) { return __float22half2_rn(v); }
};
template <> struct pair_of<__nv_bfloat16> {
    typedef __nv_bfloat162 T;
    static __device__ float2 f2(T v) { return __bfloat1622float2(v); }
    static __device__ T from(float2 v) { return __float22bfloat162_rn(v); }
};

template <typename CT>
__global__ void k_bias_gelu_inplace(CT *io, const float *bias, int I, size_t rows)
{
    typedef pair_of<CT> P;
    for (size_t r = blockIdx.x; r < rows; r += gridDim.x) {
        CT *row = io + r * I;
        if ((I & 1) == 0) {
            typename P::T *row2 = (typename P::T *)row;
            const float2 *b2 = (const float2 *)bias;
            for (int c = threadIdx.x; c < I / 2; c += blockDim.x) {
                float2 v = P::f2(row2[c]), bb = b2[c];
                row2[c] = P::from(make_float2(gelu_erf(v.x + bb.x), gelu_erf(v.y + bb.y)));
            }
        } else {
            for (int c = threadIdx.x; c < I; c += blockDim.x)
                row[c] = from_f32<CT>(gelu_erf(to_f32(row[c]) + bias[c]));
        }
    }
}

/* The same with 16-byte loads and stores of 16 / sizeof(CT) values, I a
 * multiple of that (Iv vectors a row): a warp per row, each lane loading
 * up to GELU_UNROLL vectors before it computes, so many loads are in
 * flight, and each vector's column known without dividing (a flat loop
 * with a 64-bit modulo per vector ran at ~55 % of the memory rate on an
 * H200, with scalar bias loads making it L1-bound: ncu L1 89 %, DRAM 40 %).
 * Keeping a lane's bias in registers across rows was slower still (122
 * registers: 2 blocks an SM). Conversions go two values at a time. */
#define GELU_UNROLL 8
template <typename CT>
__device__ __forceinline__ void bias_gelu_vec(uint4 &u, const float *bias)
{
    typedef pair_of<CT> P;
    typename P::T *e = (typename P::T *)&u;
    const float4 *b4 = (const float4 *)bias;
#pragma unroll
    for (int k = 0; k < (int)(4 / sizeof(CT)); k++) { /* 4 values a step */
        float4 bb = b4[k];
        float2 v0 = P::f2(e[2 * k]), v1 = P::f2(e[2 * k + 1]);
        e[2 * k] = P::from(make_float2(gelu_for<CT>(v0.x + bb.x), gelu_for<CT>(v0.y + bb.y)));
        e[2 * k + 1] =
            P::from(make_float2(gelu_for<CT>(v1.x + bb.z), gelu_for<CT>(v1.y + bb.w)));
    }
}

template <typename CT>
__global__ void k_bias_gelu16(CT *io, const float *bias, int Iv, size_t rows)
{
    pdl_wait();
    constexpr int V = 16 / sizeof(CT);
    const int lane = threadIdx.x & 31;
    const size_t warps = ((size_t)gridDim.x * blockDim.x) >> 5;
    for (size_t r = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5; r < rows; r += warps) {
        uint4 *row = (uint4 *)(io + r * (size_t)Iv * V);
        for (int c0 = 0; c0 < Iv; c0 += 32 * GELU_UNROLL) {
            uint4 u[GELU_UNROLL];
#pragma unroll
            for (int j = 0; j < GELU_UNROLL; j++)
                if (c0 + lane + 32 * j < Iv)
                    u[j] = row[c0 + lane + 32 * j];
#pragma unroll
            for (int j = 0; j < GELU_UNROLL; j++) {
                const int c = c0 + lane + 32 * j;
                if (c < Iv) {
                    bias_gelu_vec<CT>(u[j], bias + (size_t)c * V);
                    row[c] = u[j];
                }
            }
        }
    }
}

/* One block per sequence: pooling over its real tokens (the residual
 * stream, f32 or the input type), then L2 norm; sums in f32. */
template <typename XT>
__global__ void k_pool(const XT *x, const int *lens, const int *dest, int L, int H, int mode,
                       int normalize, float *out)
{
    pdl_wait();
    extern __shared__ float row[];
    __shared__ float red[32];
    int b = blockIdx.x, len = lens[b];
    const XT *base = x + (size_t)b * L * H;
    for (int c = threadIdx.x; c < H; c += blockDim.x) {
        float acc;
        if (mode == ELO_POOLING_CLS) {
            acc = to_f32(base[c]);
        } else if (mode == ELO_POOLING_MAX) {
            acc = to_f32(base[c]);
            for (int t = 1; t < len; t++)
                acc = fmaxf(acc, to_f32(base[(size_t)t * H + c]));
        } else {
            float s = 0;
            for (int t = 0; t < len; t++)
                s += to_f32(base[(size_t)t * H + c]);
            acc = mode == ELO_POOLING_MEAN ? s / len : s / sqrtf((float)len);
        }
        row[c] = acc;
    }
    __syncthreads();
    float scale = 1.0f;
    if (normalize) {
        float q = 0;
        for (int c = threadIdx.x; c < H; c += blockDim.x)
            q += row[c] * row[c];
        scale = 1.0f / fmaxf(sqrtf(block_sum(q, red)), 1e-12f);
    }
    float *o = out + (size_t)(dest ? dest[b] : b) * H;
    for (int c = threadIdx.x; c < H; c += blockDim.x)
        o[c] = row[c] * scale;
}

template <typename T> __global__ void k_from_f32(const float *in, T *out, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = from_f32<T>(in[i]);
}

/* out[c][r] = in[r][c] for a rows x cols matrix (weights, once at load). */
template <typename T> __global__ void k_transpose(const T *in, T *out, int rows, int cols)
{
    __shared__ T tile[32][33];
    const int c = blockIdx.x * 32 + threadIdx.x;
    for (int i = threadIdx.y; i < 32; i += blockDim.y) {
        const int r = blockIdx.y * 32 + i;
        if (r < rows && c < cols)
            tile[i][threadIdx.x] = in[(size_t)r * cols + c];
    }
    __syncthreads();
    const int r = blockIdx.y * 32 + threadIdx.x;
    for (int i = threadIdx.y; i < 32; i += blockDim.y) {
        const int cc = blockIdx.x * 32 + i;
        if (r < rows && cc < cols)
            out[(size_t)cc * rows + r] = tile[threadIdx.x][i];
    }
}

/* ---- context ----------------------------------------------------------------- */

struct dev_layer {
    void *qkv_w, *ao_w, *ff1_w, *ff2_w;     /* GEMM input type */
    void *ff1_wt;                           /* sm90 path: W1 as [I][H] (ff1_w NULL then) */
    float *qkv_b, *ao_b, *ln1_g, *ln1_b, *ff1_b, *ff2_b, *ln2_g, *ln2_b;
};

struct graph_entry {
    int batch, len;
    cudaGraphExec_t exec;
};

/* A page-locked output buffer handed out by elo__embed_cuda_out_alloc. */
#define OUT_BLOCKS 16
struct out_block {
    float *p;
    size_t bytes;
};

struct cuda_embed {
    elo_backend *b;
    cudaStream_t stream;
    elo_dtype prec;
    elo_embed_info info;
    size_t ct_size;                 /* bytes of the GEMM input type */
    void *allocs[512];              /* every cudaMalloc, freed at the end */
    int alloc_count;
    float *word, *pos, *type, *emb_g, *emb_b;
    dev_layer *layers;
    int max_tokens, max_len;
    int32_t *d_ids;
    int *d_lens;                    /* lengths, then (direct output) rows */
    float *x, *qkv, *scores, *ctx, *y, *ff, *pooled;
    void *xc, *q, *k, *v, *probs, *attn, *ffc;   /* GEMM inputs (alias f32 at f32) */
    void *qkvc;                     /* QKV GEMM output in the input type (alias qkv at f32) */
    int fused_attention;            /* k_attention fits shared memory at max_len */
    int rows_attention;             /* k_attention_rows: its head size (32, 64) or 0 */
    int attention_mode;             /* ELOHIM_EMBED_ATTENTION: 0 auto, 1 rows, 2 warp, 3 unfused, 4 tc */
    int tc_smem_max;                /* k_attention_tc's shared memory limit, 0: not usable */
    int pdl;                        /* programmatic dependent launches ($ELOHIM_EMBED_PDL) */
    int ff_sm90;                    /* FF1 + bias + GELU as one Hopper kernel ($ELOHIM_EMBED_SM90) */
    int32_t *h_ids;                 /* pinned */
    int *h_lens;                    /* pinned: B lengths, then B destination rows */
    out_block outs[OUT_BLOCKS];     /* elo__embed_cuda_out_alloc's blocks */
    float *h_out;
    graph_entry graphs[GRAPH_CACHE];
    int graph_count;
    int graphs_off;
    /* ELOHIM_EMBED_PROFILE=1 (a diagnostic): eager runs only, an event
     * after each step, and the time per kind of step printed at the end */
    int prof, pn, pk, pruns;
    cudaEvent_t pev[128];
    const char *pname[128];
    const char *pkey[16];
    double ptot[16];
    double phost;                   /* host time spent enqueueing, ms */
    double phost_pack, phost_wait, phost_copy; /* packing ids, waiting, copying out */
};

static void mark(cuda_embed *c, const char *name)
{
    if (!c->prof || c->pn >= 128)
        return;
    if (!c->pev[c->pn] && cudaEventCreate(&c->pev[c->pn]) != cudaSuccess)
        return;
    c->pname[c->pn] = name;
    cudaEventRecord(c->pev[c->pn++], c->stream);
}

static void profile_collect(cuda_embed *c)
{
    for (int i = 1; i < c->pn; i++) {
        float ms = 0.0f;
        cudaEventElapsedTime(&ms, c->pev[i - 1], c->pev[i]);
        int k = 0;
        while (k < c->pk && strcmp(c->pkey[k], c->pname[i]) != 0)
            k++;
        if (k == c->pk && c->pk < 16)
            c->pkey[c->pk++] = c->pname[i];
        if (k < 16)
            c->ptot[k] += ms;
    }
    c->pn = 0;
    c->pruns++;
}

static int dev_alloc(cuda_embed *c, size_t bytes, void **out)
{
    *out = nullptr;
    if (c->alloc_count >= (int)(sizeof c->allocs / sizeof c->allocs[0]))
        return elo_seterr(ELO_INTERNAL, "too many device allocations");
    cudaError_t e = cudaMalloc(out, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return elo_seterr(e == cudaErrorMemoryAllocation ? ELO_NOMEM : ELO_DEVICE,
                          "cudaMalloc(%zu bytes) for the embedding model: %s", bytes,
                          cudaGetErrorString(e));
    }
    c->allocs[c->alloc_count++] = *out;
    return ELO_OK;
}

/* Ends work through a device scratch buffer: waits for the stream (when
 * `e` is still a success), frees `tmp`, and turns a failure into an error
 * saying `what` was being done. */
static int scratch_done(cuda_embed *c, void *tmp, cudaError_t e, const char *what)
{
    if (e == cudaSuccess)
        e = cudaStreamSynchronize(c->stream);
    cudaFree(tmp);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return elo_seterr(ELO_DEVICE, "%s: %s", what, cudaGetErrorString(e));
    }
    return ELO_OK;
}

/* Uploads n floats; with `as_ct` the device copy is converted to the GEMM
 * input type (through a temporary f32 buffer). */
static int upload(cuda_embed *c, const float *host, size_t n, int as_ct, void **out)
{
    int rc;
    if (!as_ct || c->prec == ELO_DTYPE_F32) {
        if ((rc = dev_alloc(c, n * sizeof(float), out)) < 0)
            return rc;
        CU(cudaMemcpyAsync(*out, host, n * sizeof(float), cudaMemcpyHostToDevice, c->stream));
        return ELO_OK;
    }
    float *tmp = nullptr;
    CU(cudaMalloc((void **)&tmp, n * sizeof(float)));
    if ((rc = dev_alloc(c, n * c->ct_size, out)) < 0) {
        cudaFree(tmp);
        return rc;
    }
    cudaError_t e = cudaMemcpyAsync(tmp, host, n * sizeof(float), cudaMemcpyHostToDevice,
                                    c->stream);
    if (e == cudaSuccess) {
        unsigned blocks = (unsigned)((n + 255) / 256 < 4096 ? (n + 255) / 256 : 4096);
        if (c->prec == ELO_DTYPE_F16)
            k_from_f32<__half><<<blocks, 256, 0, c->stream>>>(tmp, (__half *)*out, n);
        else
            k_from_f32<__nv_bfloat16><<<blocks, 256, 0, c->stream>>>(
                tmp, (__nv_bfloat16 *)*out, n);
        e = cudaGetLastError();
    }
    return scratch_done(c, tmp, e, "uploading weights");
}

extern "C" void elo__embed_cuda_free(void *ctx)
{
    cuda_embed *c = (cuda_embed *)ctx;
    if (c && c->prof && c->pruns) {
        double all = 0;
        for (int k = 0; k < c->pk; k++)
            all += c->ptot[k];
        fprintf(stderr,
                "embed profile: %d runs, %.3f ms a run (host: packing ids %.3f, enqueue %.3f, "
                "waiting %.3f, copying out %.3f ms a run)\n",
                c->pruns, all / c->pruns, c->phost_pack / c->pruns, c->phost / c->pruns,
                c->phost_wait / c->pruns, c->phost_copy / c->pruns);
        for (int k = 0; k < c->pk; k++)
            fprintf(stderr, "  %-12s %8.3f ms a run (%4.1f %%)\n", c->pkey[k],
                    c->ptot[k] / c->pruns, 100.0 * c->ptot[k] / all);
        for (int i = 0; i < 128; i++)
            if (c->pev[i])
                cudaEventDestroy(c->pev[i]);
    }
    if (!c)
        return;
    if (c->stream)
        cudaStreamSynchronize(c->stream);
    for (int i = 0; i < c->graph_count; i++)
        cudaGraphExecDestroy(c->graphs[i].exec);
    for (int i = 0; i < c->alloc_count; i++)
        cudaFree(c->allocs[i]);
    cudaFreeHost(c->h_ids);
    cudaFreeHost(c->h_lens);
    cudaFreeHost(c->h_out);
    for (int i = 0; i < OUT_BLOCKS; i++)
        cudaFreeHost(c->outs[i].p);
    cudaGetLastError();
    free(c->layers);
    free(c);
}

extern "C" int elo__embed_cuda_max_tokens(void *ctx) { return ((cuda_embed *)ctx)->max_tokens; }

static int half_stream(const cuda_embed *c);

static int create(cuda_embed *c, const elo_embed_model *m)
{
    const elo_embed_info *in = &c->info;
    const elo__bert_weights *w = &m->w;
    size_t H = in->hidden, I = in->intermediate, heads = in->heads;
    if (H > 4096 || I > 65536)
        return elo_seterr(ELO_UNSUPPORTED, "hidden size %zu is too large for the CUDA encoder", H);
    int rc;
    if ((rc = upload(c, w->word_emb, (size_t)in->vocab_size * H, 0, (void **)&c->word)) < 0 ||
        (rc = upload(c, w->pos_emb, (size_t)in->max_positions * H, 0, (void **)&c->pos)) < 0 ||
        (rc = upload(c, w->type_emb, H, 0, (void **)&c->type)) < 0 ||
        (rc = upload(c, w->emb_ln_g, H, 0, (void **)&c->emb_g)) < 0 ||
        (rc = upload(c, w->emb_ln_b, H, 0, (void **)&c->emb_b)) < 0)
        return rc;
    c->layers = (dev_layer *)calloc((size_t)in->layers, sizeof *c->layers);
    if (!c->layers)
        return elo_seterr(ELO_NOMEM, "out of memory");
    for (int l = 0; l < in->layers; l++) {
        const elo__bert_layer *s = &w->layers[l];
        dev_layer *d = &c->layers[l];
        if ((rc = upload(c, s->qkv_w, 3 * H * H, 1, &d->qkv_w)) < 0 ||
            (rc = upload(c, s->ao_w, H * H, 1, &d->ao_w)) < 0 ||
            (rc = upload(c, s->ff1_w, I * H, 1, &d->ff1_w)) < 0 ||
            (rc = upload(c, s->ff2_w, H * I, 1, &d->ff2_w)) < 0 ||
            (rc = upload(c, s->qkv_b, 3 * H, 0, (void **)&d->qkv_b)) < 0 ||
            (rc = upload(c, s->ao_b, H, 0, (void **)&d->ao_b)) < 0 ||
            (rc = upload(c, s->ln1_g, H, 0, (void **)&d->ln1_g)) < 0 ||
            (rc = upload(c, s->ln1_b, H, 0, (void **)&d->ln1_b)) < 0 ||
            (rc = upload(c, s->ff1_b, I, 0, (void **)&d->ff1_b)) < 0 ||
            (rc = upload(c, s->ff2_b, H, 0, (void **)&d->ff2_b)) < 0 ||
            (rc = upload(c, s->ln2_g, H, 0, (void **)&d->ln2_g)) < 0 ||
            (rc = upload(c, s->ln2_b, H, 0, (void **)&d->ln2_b)) < 0)
            return rc;
    }
    /* FF1 with its bias and GELU as one kernel on Hopper (embed-sm90.cu),
     * which reads the weights K-major: W1 transposed in its own allocation
     * (through a scratch copy), ff1_wt then, ff1_w unused */
    const char *sm90 = getenv("ELOHIM_EMBED_SM90"); /* A/B: 0 turns it off */
    c->ff_sm90 = half_stream(c) && !(sm90 && !strcmp(sm90, "0")) && elo__sm90_ff_ok &&
                 elo__sm90_ff_ok(c->prec, (int)I, (int)H);
    if (c->ff_sm90) {
        void *tmp = nullptr;
        CU(cudaMalloc(&tmp, I * H * c->ct_size));
        cudaError_t e = cudaSuccess;
        for (int l = 0; e == cudaSuccess && l < in->layers; l++) {
            dev_layer *d = &c->layers[l];
            dim3 grid((unsigned)((I + 31) / 32), (unsigned)((H + 31) / 32)), block(32, 8);
            if (c->prec == ELO_DTYPE_F16)
                k_transpose<__half><<<grid, block, 0, c->stream>>>(
                    (const __half *)d->ff1_w, (__half *)tmp, (int)H, (int)I);
            else
                k_transpose<__nv_bfloat16><<<grid, block, 0, c->stream>>>(
                    (const __nv_bfloat16 *)d->ff1_w, (__nv_bfloat16 *)tmp, (int)H, (int)I);
            e = cudaGetLastError();
            if (e == cudaSuccess)
                e = cudaMemcpyAsync(d->ff1_w, tmp, I * H * c->ct_size, cudaMemcpyDeviceToDevice,
                                    c->stream);
            d->ff1_wt = d->ff1_w;
            d->ff1_w = nullptr;
        }
        if ((rc = scratch_done(c, tmp, e, "transposing W1")) < 0)
            return rc;
    }
    size_t T = (size_t)c->max_tokens, Lm = (size_t)c->max_len;
    int half = c->prec != ELO_DTYPE_F32;
    /* the fused attention keeps K and V of one head in shared memory */
    int dev = 0, smem_max = 0;
    CU(cudaGetDevice(&dev));
    CU(cudaDeviceGetAttribute(&smem_max, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    size_t need = attention_smem((int)Lm, (int)(H / heads));
    const char *off = getenv("ELOHIM_EMBED_UNFUSED_ATTENTION"); /* A/B measurements */
    if (need <= (size_t)smem_max && !(off && *off == '1')) {
        cudaError_t e = cudaSuccess;
        if (c->prec == ELO_DTYPE_F16)
            e = cudaFuncSetAttribute(k_attention<__half, __half>,
                                     cudaFuncAttributeMaxDynamicSharedMemorySize, (int)need);
        else if (c->prec == ELO_DTYPE_BF16)
            e = cudaFuncSetAttribute(k_attention<__nv_bfloat16, __nv_bfloat16>,
                                     cudaFuncAttributeMaxDynamicSharedMemorySize, (int)need);
        else
            e = cudaFuncSetAttribute(k_attention<float, float>,
                                     cudaFuncAttributeMaxDynamicSharedMemorySize, (int)need);
        c->fused_attention = e == cudaSuccess;
        cudaGetLastError();
    }
    int dh = (int)(H / heads);
    if ((dh == 32 || dh == 64) && attention_rows_smem((int)Lm, dh) <= (size_t)smem_max &&
        !(off && *off == '1')) {
        int bytes = (int)attention_rows_smem((int)Lm, dh);
        cudaError_t e;
#define ROWS_ATTR(T, D)                                                                        \
    cudaFuncSetAttribute(k_attention_rows<T, T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize, \
                         bytes)
        if (c->prec == ELO_DTYPE_F16)
            e = dh == 32 ? ROWS_ATTR(__half, 32) : ROWS_ATTR(__half, 64);
        else if (c->prec == ELO_DTYPE_BF16)
            e = dh == 32 ? ROWS_ATTR(__nv_bfloat16, 32) : ROWS_ATTR(__nv_bfloat16, 64);
        else
            e = dh == 32 ? ROWS_ATTR(float, 32) : ROWS_ATTR(float, 64);
#undef ROWS_ATTR
        c->rows_attention = e == cudaSuccess ? dh : 0;
        cudaGetLastError();
    }
    c->tc_smem_max = 0;
    if ((dh == 32 || dh == 64) && c->prec != ELO_DTYPE_F32 && !(off && *off == '1')) {
        cudaError_t e;
#define TC_ATTR(T, D)                                                                      \
    cudaFuncSetAttribute(k_attention_tc<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize, \
                         smem_max)
        if (c->prec == ELO_DTYPE_F16)
            e = dh == 32 ? TC_ATTR(__half, 32) : TC_ATTR(__half, 64);
        else
            e = dh == 32 ? TC_ATTR(__nv_bfloat16, 32) : TC_ATTR(__nv_bfloat16, 64);
#undef TC_ATTR
        c->tc_smem_max = e == cudaSuccess ? smem_max : 0;
        cudaGetLastError();
    }
    const char *pdl = getenv("ELOHIM_EMBED_PDL"); /* A/B: 0 turns them off */
    c->pdl = !(pdl && !strcmp(pdl, "0"));

    const char *mode = getenv("ELOHIM_EMBED_ATTENTION"); /* A/B: rows, warp, unfused, tc */
    c->attention_mode = !mode ? 0 : !strcmp(mode, "rows") ? 1 : !strcmp(mode, "warp") ? 2
                                : !strcmp(mode, "unfused") ? 3 : !strcmp(mode, "tc") ? 4 : 0;
    if ((rc = dev_alloc(c, T * sizeof(int32_t), (void **)&c->d_ids)) < 0 ||
        (rc = dev_alloc(c, 2 * T * sizeof(int), (void **)&c->d_lens)) < 0 ||
        (rc = dev_alloc(c, T * H * 4, (void **)&c->x)) < 0 ||
        (rc = dev_alloc(c, T * H * 4, (void **)&c->y)) < 0 ||
        (rc = dev_alloc(c, T * H * 4, (void **)&c->pooled)) < 0 ||
        (rc = dev_alloc(c, T * H * c->ct_size, &c->attn)) < 0)
        return rc;
    /* f32 feed-forward output: the f32 path's (the half path writes it in
     * its input type) */
    if (!half && (rc = dev_alloc(c, T * I * 4, (void **)&c->ff)) < 0)
        return rc;
    /* the unfused attention's QKV, heads, scores and context (long
     * sequences and small batches take that path, see use_fused) */
    if (((rc = dev_alloc(c, T * 3 * H * 4, (void **)&c->qkv)) < 0 ||
         (rc = dev_alloc(c, T * heads * Lm * 4, (void **)&c->scores)) < 0 ||
         (rc = dev_alloc(c, T * H * 4, (void **)&c->ctx)) < 0 ||
         (rc = dev_alloc(c, T * H * c->ct_size, &c->q)) < 0 ||
         (rc = dev_alloc(c, T * H * c->ct_size, &c->k)) < 0 ||
         (rc = dev_alloc(c, T * H * c->ct_size, &c->v)) < 0))
        return rc;
    if (half) {
        if ((rc = dev_alloc(c, T * H * c->ct_size, &c->xc)) < 0 ||
            (rc = dev_alloc(c, T * 3 * H * c->ct_size, &c->qkvc)) < 0 ||
            (rc = dev_alloc(c, T * I * c->ct_size, &c->ffc)) < 0 ||
            (rc = dev_alloc(c, T * heads * Lm * c->ct_size, &c->probs)) < 0)
            return rc;
    } else {
        c->xc = c->x;        /* f32: GEMM inputs are the f32 buffers */
        c->qkvc = c->qkv;
        c->probs = c->scores;
        c->ffc = c->ff;
    }
    CU(cudaMallocHost((void **)&c->h_ids, T * sizeof(int32_t)));
    CU(cudaMallocHost((void **)&c->h_lens, 2 * T * sizeof(int)));
    CU(cudaMallocHost((void **)&c->h_out, T * H * sizeof(float)));
    CU(cudaStreamSynchronize(c->stream));
    return ELO_OK;
}

extern "C" int elo__embed_cuda_new(elo_backend *b, const elo_embed_model *m, elo_dtype precision,
                                   void **out)
{
    *out = nullptr;
    cuda_embed *c = (cuda_embed *)calloc(1, sizeof *c);
    if (!c)
        return elo_seterr(ELO_NOMEM, "out of memory");
    c->b = b;
    c->stream = (cudaStream_t)elo_backend_cuda_stream(b);
    c->prec = precision;
    const char *pe = getenv("ELOHIM_EMBED_PROFILE");
    c->prof = pe && *pe == '1';
    c->graphs_off = c->prof;
    c->info = m->info;
    c->ct_size = precision == ELO_DTYPE_F32 ? 4 : 2;
    c->max_len = m->info.max_positions;
    c->max_tokens = MAX_TOKENS;
    /* Scores take tokens x heads x max_len floats: shrink the bucket for
     * long-context models so that stays under ~1 GiB. */
    while (c->max_tokens > c->max_len &&
           (size_t)c->max_tokens * m->info.heads * c->max_len * 4 > (1u << 30))
        c->max_tokens /= 2;
    if (c->max_tokens < c->max_len)
        c->max_tokens = c->max_len;
    int rc = create(c, m);
    if (rc < 0) {
        elo__embed_cuda_free(c);
        return rc;
    }
    *out = c;
    return ELO_OK;
}

/* ---- the forward pass ---------------------------------------------------------- */

static int gemm_to(cuda_embed *c, int trans_b, int m, int n, int k, const void *a, int lda,
                   const void *bm, int ldb, void *out, elo_dtype out_type, int ldc, int batch,
                   long long sa, long long sb, long long sc)
{
    elo_gemm g;
    memset(&g, 0, sizeof g);
    g.trans_a = 0;
    g.trans_b = trans_b;
    g.m = m;
    g.n = n;
    g.k = k;
    g.alpha = 1.0f;
    g.beta = 0.0f;
    g.a = a;
    g.lda = lda;
    g.b = bm;
    g.ldb = ldb;
    g.c = out;
    g.ldc = ldc;
    g.in_type = c->prec;
    g.out_type = out_type;
    g.batch = batch;
    g.stride_a = sa;
    g.stride_b = sb;
    g.stride_c = sc;
    g.allow_tf32 = 0;
    g.tune = 1; /* a few shapes per bucket size, recurring */
    return elo_backend_gemm(c->b, &g);
}

static int gemm(cuda_embed *c, int trans_b, int m, int n, int k, const void *a, int lda,
                const void *bm, int ldb, float *out, int ldc, int batch, long long sa,
                long long sb, long long sc)
{
    return gemm_to(c, trans_b, m, n, k, a, lda, bm, ldb, out, ELO_DTYPE_F32, ldc, batch, sa, sb,
                   sc);
}

static unsigned grid_for(size_t n)
{
    size_t blocks = (n + 255) / 256;
    return (unsigned)(blocks < 65535 ? (blocks ? blocks : 1) : 65535);
}

/* Launches kernel k on the embedder's stream as a programmatic dependent
 * launch (k must begin with pdl_wait()), so it is resident and waiting when
 * the GEMM ahead of it ends: on an H200 the ~1.5 us gap before each such
 * kernel went to 0 (1.3 % more sentences/s at 32 x 1024).
 * $ELOHIM_EMBED_PDL=0 launches the usual way (A/B). */
template <typename... KA, typename... A>
static void pdl_launch(const cuda_embed *c, void (*k)(KA...), unsigned grid, unsigned block,
                       size_t smem, A... args)
{
    cudaLaunchConfig_t cfg = {};
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.gridDim = dim3(grid);
    cfg.blockDim = dim3(block);
    cfg.dynamicSmemBytes = smem;
    cfg.stream = c->stream;
    cfg.attrs = at;
    cfg.numAttrs = c->pdl ? 1 : 0;
    cudaLaunchKernelEx(&cfg, k, ((KA)args)...);
}

/* Launches k_attention_tc for the half types; never called at f32. */
template <typename CT, int D>
static int tc_launch(cuda_embed *c, int B, int L, int H, int heads, float scale,
                     const float *bias)
{
    int G = attention_tc_heads(L, heads), strips = (L + 15) / 16;
    unsigned blocks = (unsigned)(B * (heads / G));
    unsigned threads = (unsigned)(G * strips < TC_WARPS ? G * strips : TC_WARPS) * 32;
    pdl_launch(c, k_attention_tc<CT, D>, blocks, threads, G * attention_tc_smem(L, D),
               (const CT *)c->qkvc, bias, (const int *)c->d_lens, L, H, heads, G, scale,
               (CT *)c->attn);
    return ELO_OK;
}
template <> int tc_launch<float, 32>(cuda_embed *, int, int, int, int, float, const float *)
{
    return elo_seterr(ELO_INTERNAL, "tensor-core attention at f32");
}
template <> int tc_launch<float, 64>(cuda_embed *, int, int, int, int, float, const float *)
{
    return elo_seterr(ELO_INTERNAL, "tensor-core attention at f32");
}

/* x = LN(x + y + bias) over T rows. Where half_stream(c) says so (half
 * precision, H = 384 or 768: the float4 kernels), the residual stream x is
 * the GEMM input xc itself and y is in the input type; else x and y are
 * f32 and the result is also written to xc. */
static int half_stream(const cuda_embed *c)
{
    return c->prec != ELO_DTYPE_F32 && (c->info.hidden == 384 || c->info.hidden == 768);
}

template <typename CT>
static int residual_ln(cuda_embed *c, const float *bias, const float *g, const float *b, size_t T,
                       CT *xc)
{
    int H = c->info.hidden;
    unsigned blocks = (unsigned)((T + 7) / 8);
    float eps = c->info.layer_norm_eps;
    if (half_stream(c) && H == 384) {
        pdl_launch(c, k_residual_ln_warp4<CT, CT, CT, 3>, blocks, 256, 0, xc, (const CT *)c->y,
                   bias, g, b, eps, H, T, (CT *)nullptr);
    } else if (half_stream(c)) {
        pdl_launch(c, k_residual_ln_warp4<CT, CT, CT, 6>, blocks, 256, 0, xc, (const CT *)c->y,
                   bias, g, b, eps, H, T, (CT *)nullptr);
    } else if (H == 384) {
        k_residual_ln_warp4<float, CT, float, 3><<<blocks, 256, 0, c->stream>>>(
            c->x, c->y, bias, g, b, eps, H, T, xc);
    } else if (H == 768) {
        k_residual_ln_warp4<float, CT, float, 6><<<blocks, 256, 0, c->stream>>>(
            c->x, c->y, bias, g, b, eps, H, T, xc);
    } else if (H <= WARP_LN_MAX) {
        k_residual_ln_warp<CT><<<blocks, 256, 0, c->stream>>>(c->x, c->y, bias, g, b, eps, H, T,
                                                               xc);
    } else {
        k_residual_ln<CT><<<(unsigned)T, LN_THREADS, (size_t)H * sizeof(float), c->stream>>>(
            c->x, c->y, bias, g, b, eps, H, xc);
    }
    LAUNCHED("residual LayerNorm");
    return ELO_OK;
}

/* out[m, n] = a[m, k] w[k, n] for a dense layer, in `out_type`; with
 * `gelu`, then out = GELU(out + bias) in place, in the GEMM input type. */
template <typename CT>
static int dense(cuda_embed *c, int m, int n, int k, const void *a, const void *w, void *out,
                 elo_dtype out_type, const float *bias, int gelu)
{
    int rc = gemm_to(c, 0, m, n, k, a, k, w, n, out, out_type, n, 0, 0, 0, 0);
    if (rc < 0 || !gelu)
        return rc;
    if (n % (16 / (int)sizeof(CT)) == 0) {
        int V = 16 / (int)sizeof(CT);
        unsigned blocks = (unsigned)((m + 7) / 8 < 65535 ? (m + 7) / 8 : 65535);
        pdl_launch(c, k_bias_gelu16<CT>, blocks, 256, 0, (CT *)out, bias, n / V, (size_t)m);
    } else {
        k_bias_gelu_inplace<CT><<<(unsigned)(m < 65535 ? m : 65535), 256, 0, c->stream>>>(
            (CT *)out, bias, n, (size_t)m);
    }
    LAUNCHED("gelu");
    return ELO_OK;
}

/* One bucket. With `direct` (page-locked, room for B rows) the pooled row
 * of sequence b goes to direct[rows[b]] (the rows after the lengths in
 * h_lens) by one copy; else to h_out in bucket order. */
template <typename CT> static int forward(cuda_embed *c, int B, int L, float *direct)
{
    const elo_embed_info *in = &c->info;
    int H = in->hidden, I = in->intermediate, heads = in->heads, d = H / heads;
    size_t T = (size_t)B * L;
    cudaStream_t st = c->stream;
    int half = c->prec != ELO_DTYPE_F32;
    CT *xc = half ? (CT *)c->xc : nullptr;
    size_t row_smem = (size_t)H * sizeof(float);
    int rc;
    c->pn = 0;
    mark(c, "start");
    CU(cudaMemcpyAsync(c->d_ids, c->h_ids, T * sizeof(int32_t), cudaMemcpyHostToDevice, st));
    CU(cudaMemcpyAsync(c->d_lens, c->h_lens, (size_t)(direct ? 2 : 1) * B * sizeof(int),
                       cudaMemcpyHostToDevice, st));
    unsigned warp_blocks = (unsigned)((T + 7) / 8);
    if (half_stream(c) && H == 384)
        k_embed_warp4<CT, CT, 3><<<warp_blocks, 256, 0, st>>>(
            c->d_ids, L, H, c->word, c->pos, c->type, c->emb_g, c->emb_b, in->layer_norm_eps, T,
            xc, (CT *)nullptr);
    else if (half_stream(c))
        k_embed_warp4<CT, CT, 6><<<warp_blocks, 256, 0, st>>>(
            c->d_ids, L, H, c->word, c->pos, c->type, c->emb_g, c->emb_b, in->layer_norm_eps, T,
            xc, (CT *)nullptr);
    else if (H == 384)
        k_embed_warp4<float, CT, 3><<<warp_blocks, 256, 0, st>>>(
            c->d_ids, L, H, c->word, c->pos, c->type, c->emb_g, c->emb_b, in->layer_norm_eps, T,
            c->x, xc);
    else if (H == 768)
        k_embed_warp4<float, CT, 6><<<warp_blocks, 256, 0, st>>>(
            c->d_ids, L, H, c->word, c->pos, c->type, c->emb_g, c->emb_b, in->layer_norm_eps, T,
            c->x, xc);
    else if (H <= WARP_LN_MAX)
        k_embed_warp<CT><<<warp_blocks, 256, 0, st>>>(
            c->d_ids, L, H, c->word, c->pos, c->type, c->emb_g, c->emb_b, in->layer_norm_eps, T,
            half_stream(c) ? nullptr : c->x, xc);
    else
        k_embed<CT><<<(unsigned)T, LN_THREADS, row_smem, st>>>(c->d_ids, L, H, c->word, c->pos,
                                                               c->type, c->emb_g, c->emb_b,
                                                               in->layer_norm_eps, c->x, xc);
    LAUNCHED("embed");
    mark(c, "embed");
    float scale = 1.0f / sqrtf((float)d);
    size_t score_rows = (size_t)B * heads * L;
    /* Attention paths, measured on an H200 (f16, 6 layers, time in
     * attention per batch): at f16/bf16 the flash-style tensor-core kernel
     * (k_attention_tc) whenever it fits, batch 1 included (32 x 1024: 0.45
     * ms, 264K sentences/s; 128 x 256: 0.68 ms, 68.5K; 32 x 1: 0.165 ms
     * a call vs 0.196 through cuBLAS); at f32 (and where that kernel does
     * not fit) the warp-per-row kernel (k_attention) for batches of 8+ with
     * rows up to 64 tokens, else the thread-per-row kernel
     * (k_attention_rows, head sizes 32/64); cuBLAS batched GEMMs plus
     * softmax for small f32 batches, where a block per (sequence, head)
     * leaves most SMs idle. */
    int path = 3; /* 1 rows, 2 warp, 3 unfused, 4 tensor cores */
    int tc_ok = c->tc_smem_max && (size_t)attention_tc_heads(L, heads) *
                                          attention_tc_smem(L, d) <= (size_t)c->tc_smem_max;
    if (c->attention_mode)
        path = c->attention_mode;
    else if (tc_ok)
        path = 4;
    else if (B >= 8 && L <= 64 && c->fused_attention)
        path = 2;
    else if (B >= 8 && c->rows_attention)
        path = 1;
    if ((path == 1 && !c->rows_attention) || (path == 2 && !c->fused_attention) ||
        (path == 4 && !tc_ok))
        path = 3;
    int use_fused = path != 3;
    for (int l = 0; l < in->layers; l++) {
        const dev_layer *w = &c->layers[l];
        if (use_fused) {
            /* qkv = x Wqkv in the input type, bias added by the fused
             * attention (at f32 the input type is f32) */
            if ((rc = dense<CT>(c, (int)T, 3 * H, H, c->xc, w->qkv_w, c->qkvc, c->prec,
                                nullptr, 0)) < 0)
                return rc;
            mark(c, "qkv gemm");
            if (path == 4) {
                rc = d == 32 ? tc_launch<CT, 32>(c, B, L, H, heads, scale, w->qkv_b)
                             : tc_launch<CT, 64>(c, B, L, H, heads, scale, w->qkv_b);
                if (rc < 0)
                    return rc;
            } else if (path == 1) {
                unsigned threads = (unsigned)(L >= 128 ? 128 : (L + 31) / 32 * 32);
                size_t sm = attention_rows_smem(L, d);
                if (d == 32)
                    k_attention_rows<CT, CT, 32><<<(unsigned)(B * heads), threads, sm, st>>>(
                        (const CT *)c->qkvc, w->qkv_b, c->d_lens, L, H, heads, scale,
                        (CT *)c->attn);
                else
                    k_attention_rows<CT, CT, 64><<<(unsigned)(B * heads), threads, sm, st>>>(
                        (const CT *)c->qkvc, w->qkv_b, c->d_lens, L, H, heads, scale,
                        (CT *)c->attn);
            } else {
                k_attention<CT, CT><<<(unsigned)(B * heads), ATT_WARPS * 32,
                                      attention_smem(L, d), st>>>(
                    (const CT *)c->qkvc, w->qkv_b, c->d_lens, L, H, heads, scale,
                    (CT *)c->attn);
            }
            LAUNCHED("attention");
            mark(c, "attention");
        } else {
            /* qkv = x Wqkv (weights [in, out]); bias added while splitting heads */
            if ((rc = gemm(c, 0, (int)T, 3 * H, H, c->xc, H, w->qkv_w, 3 * H, c->qkv, 3 * H, 0, 0, 0,
                           0)) < 0)
                return rc;
            mark(c, "qkv gemm");
            k_split_heads<CT><<<grid_for(T * 3 * H), 256, 0, st>>>(c->qkv, w->qkv_b, L, H, heads,
                                                                   T * 3 * H, (CT *)c->q,
                                                                   (CT *)c->k, (CT *)c->v);
            LAUNCHED("split");
            /* scores[b,h] = q k^T, one strided batch over B x heads. */
            if ((rc = gemm(c, 1, L, L, d, c->q, d, c->k, d, c->scores, L, B * heads,
                           (long long)L * d, (long long)L * d, (long long)L * L)) < 0)
                return rc;
            k_softmax<CT><<<(unsigned)((score_rows + 7) / 8), 256, 0, st>>>(
                c->scores, (CT *)c->probs, c->d_lens, L, heads, score_rows, scale);
            LAUNCHED("softmax");
            if ((rc = gemm(c, 0, L, d, L, c->probs, L, c->v, d, c->ctx, d, B * heads,
                           (long long)L * L, (long long)L * d, (long long)L * d)) < 0)
                return rc;
            k_merge_heads<CT><<<grid_for(T * H), 256, 0, st>>>(c->ctx, L, H, heads, T * H,
                                                                (CT *)c->attn);
            LAUNCHED("merge");
            mark(c, "attention");
        }
        elo_dtype yt = half_stream(c) ? c->prec : ELO_DTYPE_F32;
        if ((rc = dense<CT>(c, (int)T, H, H, c->attn, w->ao_w, c->y, yt, nullptr, 0)) < 0)
            return rc;
        mark(c, "ao gemm");
        if ((rc = residual_ln<CT>(c, w->ao_b, w->ln1_g, w->ln1_b, T, xc)) < 0)
            return rc;
        mark(c, "layernorm");
        /* ff = GELU(x W1 + b1) in the input type (f32 at f32) */
        if (c->ff_sm90)
            rc = elo__sm90_ff_gelu(c->stream, c->pdl, c->prec, c->xc, w->ff1_wt, w->ff1_b,
                                   c->ffc, (int)T, I, H);
        else
            rc = dense<CT>(c, (int)T, I, H, c->xc, w->ff1_w, c->ffc, c->prec, w->ff1_b, 1);
        if (rc < 0)
            return rc;
        mark(c, "ff1 + gelu");
        if ((rc = dense<CT>(c, (int)T, H, I, c->ffc, w->ff2_w, c->y, yt, nullptr, 0)) < 0)
            return rc;
        mark(c, "ff2 gemm");
        if ((rc = residual_ln<CT>(c, w->ff2_b, w->ln2_g, w->ln2_b, T, xc)) < 0)
            return rc;
        mark(c, "layernorm");
    }
    if (half_stream(c))
        pdl_launch(c, k_pool<CT>, (unsigned)B, LN_THREADS, row_smem, (const CT *)xc,
                   (const int *)c->d_lens, (const int *)(direct ? c->d_lens + B : nullptr), L,
                   H, (int)in->pooling, in->normalize, c->pooled);
    else
        pdl_launch(c, k_pool<float>, (unsigned)B, LN_THREADS, row_smem, (const float *)c->x,
                   (const int *)c->d_lens, (const int *)(direct ? c->d_lens + B : nullptr), L,
                   H, (int)in->pooling, in->normalize, c->pooled);
    LAUNCHED("pool");
    mark(c, "pool");
    CU(cudaMemcpyAsync(direct ? direct : c->h_out, c->pooled, (size_t)B * H * sizeof(float),
                       cudaMemcpyDeviceToHost, st));
    mark(c, "copy out");
    return ELO_OK;
}

static int enqueue(cuda_embed *c, int B, int L, float *direct)
{
    switch (c->prec) {
    case ELO_DTYPE_F16: return forward<__half>(c, B, L, direct);
    case ELO_DTYPE_BF16: return forward<__nv_bfloat16>(c, B, L, direct);
    default: return forward<float>(c, B, L, direct);
    }
}

/* Captures the pass for (B, L) into a graph; failures turn graphs off. */
static void try_capture(cuda_embed *c, int B, int L)
{
    if (c->graphs_off || c->graph_count >= GRAPH_CACHE)
        return;
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    if (cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal) != cudaSuccess) {
        cudaGetLastError();
        c->graphs_off = 1;
        return;
    }
    int rc = enqueue(c, B, L, nullptr);
    cudaError_t e = cudaStreamEndCapture(c->stream, &graph);
    if (rc == ELO_OK && e == cudaSuccess && graph)
        e = cudaGraphInstantiate(&exec, graph, 0);
    if (graph)
        cudaGraphDestroy(graph);
    if (rc < 0 || e != cudaSuccess || !exec) {
        cudaGetLastError();
        elo_clearerr();
        elo_debug("embed: CUDA graph capture failed; running without graphs");
        c->graphs_off = 1;
        return;
    }
    c->graphs[c->graph_count].batch = B;
    c->graphs[c->graph_count].len = L;
    c->graphs[c->graph_count].exec = exec;
    c->graph_count++;
}

/* Page-locked output buffers: the GPU copies pooled rows straight into
 * them (one copy, rows put in place by the pooling kernel) instead of into
 * h_out and then, on the host, into the caller's memory (~0.15 ms for a
 * 1024 x 384 batch on an H200 host, read from memory the GPU just wrote).
 * Only blocks handed out here count: a page-locked pointer from elsewhere
 * says nothing about how far the locked range goes. */
extern "C" float *elo__embed_cuda_out_alloc(void *ctx, size_t bytes)
{
    cuda_embed *c = (cuda_embed *)ctx;
    int slot = 0;
    while (slot < OUT_BLOCKS && c->outs[slot].p)
        slot++;
    void *p = nullptr;
    if (slot == OUT_BLOCKS || cudaMallocHost(&p, bytes ? bytes : 1) != cudaSuccess) {
        cudaGetLastError();
        return (float *)malloc(bytes ? bytes : 1); /* still a valid output, copied to */
    }
    c->outs[slot].p = (float *)p;
    c->outs[slot].bytes = bytes;
    return (float *)p;
}

extern "C" void elo__embed_cuda_out_free(void *ctx, float *p)
{
    cuda_embed *c = (cuda_embed *)ctx;
    if (!p)
        return;
    for (int i = 0; i < OUT_BLOCKS; i++)
        if (c->outs[i].p == p) {
            cudaFreeHost(p);
            c->outs[i].p = nullptr;
            return;
        }
    free(p);
}

/* Whether out[0 .. bytes) lies inside one of those blocks. */
static int out_locked(const cuda_embed *c, const float *out, size_t bytes)
{
    for (int i = 0; i < OUT_BLOCKS; i++) {
        const char *b = (const char *)c->outs[i].p, *o = (const char *)out;
        if (b && o >= b && o + bytes <= b + c->outs[i].bytes)
            return 1;
    }
    return 0;
}

extern "C" int elo__embed_cuda_run(void *ctx, const int32_t *const *ids, const int *lens,
                                   const int *rows, int whole, int count, int seq_len,
                                   float *out)
{
    cuda_embed *c = (cuda_embed *)ctx;
    const elo_embed_info *in = &c->info;
    if (count <= 0)
        return ELO_OK;
    if (seq_len < 1 || seq_len > c->max_len || (size_t)count * seq_len > (size_t)c->max_tokens)
        return elo_seterr(ELO_BADINPUT, "bucket of %d x %d tokens does not fit (%d)", count,
                          seq_len, c->max_tokens);
    for (int i = 0; i < count; i++)
        if (lens[i] < 1 || lens[i] > seq_len)
            return elo_seterr(ELO_BADINPUT, "sequence %d has %d tokens (1..%d)", i, lens[i],
                              seq_len);
    /* Pad each sequence to seq_len with id 0 (one core: handing this and
     * the copy-out below to the thread pool cost more in wake-ups than it
     * saved, 0.06 -> 0.17 ms between 128 x 256 batches on an H200 host) */
    double h0 = c->prof ? elo_time_sec() : 0;
    uint32_t bad = 0;
    for (int i = 0; i < count; i++) {
        int32_t *dst = c->h_ids + (size_t)i * seq_len;
        for (int t = 0; t < lens[i]; t++)
            bad |= (uint32_t)ids[i][t] >= (uint32_t)in->vocab_size;
        memcpy(dst, ids[i], (size_t)lens[i] * sizeof *dst);
        memset(dst + lens[i], 0, (size_t)(seq_len - lens[i]) * sizeof *dst);
        c->h_lens[i] = lens[i];
    }
    if (bad)
        for (int i = 0; i < count; i++)
            for (int t = 0; t < lens[i]; t++)
                if ((uint32_t)ids[i][t] >= (uint32_t)in->vocab_size)
                    return elo_seterr(ELO_BADINPUT, "token id %d is outside the vocabulary (%d)",
                                      (int)ids[i][t], in->vocab_size);
    if (c->prof)
        c->phost_pack += (elo_time_sec() - h0) * 1e3;
    int rc = ELO_OK;
    cudaGraphExec_t exec = nullptr;
    int small = (size_t)count * seq_len <= GRAPH_MAX_TOKENS;
    /* straight into the caller's page-locked buffer: a bucket that is the
     * whole call (rows a permutation of 0 .. count-1), not a graph replay
     * (whose copy targets h_out) */
    const size_t row = (size_t)in->hidden;
    float *direct = whole && !small && out_locked(c, out, count * row * sizeof(float)) ? out
                                                                                      : nullptr;
    if (direct)
        memcpy(c->h_lens + count, rows, (size_t)count * sizeof(int));
    for (int i = 0; small && i < c->graph_count; i++)
        if (c->graphs[i].batch == count && c->graphs[i].len == seq_len)
            exec = c->graphs[i].exec;
    if (exec) {
        CU(cudaGraphLaunch(exec, c->stream));
    } else {
        double t0 = c->prof ? elo_time_sec() : 0;
        rc = enqueue(c, count, seq_len, direct);
        if (c->prof)
            c->phost += (elo_time_sec() - t0) * 1e3;
        if (rc < 0) {
            cudaStreamSynchronize(c->stream);
            cudaGetLastError();
            return rc;
        }
    }
    double w0 = c->prof ? elo_time_sec() : 0;
    CU(cudaStreamSynchronize(c->stream));
    double w1 = c->prof ? elo_time_sec() : 0;
    if (c->prof)
        profile_collect(c);
    /* (non-temporal stores here measured no better on an H200 host) */
    for (int i = 0; !direct && i < count; i++)
        memcpy(out + (size_t)rows[i] * row, c->h_out + (size_t)i * row, row * sizeof(float));
    if (c->prof) {
        c->phost_wait += (w1 - w0) * 1e3;
        c->phost_copy += (elo_time_sec() - w1) * 1e3;
    }
    elo_backend_count_op("embed");
    if (!exec && small)
        try_capture(c, count, seq_len);
    return ELO_OK;
}
