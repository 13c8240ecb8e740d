/* vstore-scan.c - the canonical score (scalar reference and bit-identical
 * AVX2 / AVX-512 kernels), query and row checks, f16 conversion, and the
 * multi-threaded exact top-k scan over a store's rows.
 *
 * Canonical score of row x and query q: 16 f32 accumulators, element i goes
 * to lane i % 16 in increasing i, as `acc = acc + p` with p = x*q (ip,
 * cosine) or p = (x-q)*(x-q) (l2), every operation rounded to f32 (no FMA:
 * the build uses -ffp-contract=off and the kernels use separate mul/add
 * intrinsics); then lanes are added pairwise, acc[j] += acc[j+w] for
 * w = 8, 4, 2, 1. The SIMD kernels hold lanes 0..15 in one zmm (or two
 * ymm) registers, so every lane sees exactly the scalar sequence; a tail
 * shorter than 16 is padded with zeros in both row and query, which adds
 * +0 to lanes that can never hold -0 (they start at +0, and x + y is -0 in
 * round-to-nearest only when both are -0).
 *
 * DESIGN (threads). elo__vstore_search_cpu() splits the rows into ranges
 * that the pool's threads (see elo__vstore_parallel) claim one at a
 * time from an atomic counter. Each thread scores every
 * row of its range against all queries of the current pass (up to 32
 * queries; the row stays in L1 while it meets them all, the queries stay in
 * L1/L2), keeping one bounded heap per (thread, query). The calling thread
 * merges the per-thread heaps after the pool returns. Queries beyond 32 run
 * in further passes over the rows. */
#include "vstore-impl.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#define HAVE_X86 1
#else
#define HAVE_X86 0
#endif

/* ---- f16 ---------------------------------------------------------------- */

float elo_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else {                      /* subnormal: normalize */
        int e = -1;
        do {
            man <<= 1;
            e++;
        } while (!(man & 0x400));
        bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t elo_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t abs = x & 0x7fffffffu;
    if (abs >= 0x7f800000u)                       /* Inf or NaN */
        return sign | 0x7c00 | (abs > 0x7f800000u ? 0x200 : 0);
    if (abs >= 0x477ff000u)                       /* rounds to >= 65520: Inf */
        return sign | 0x7c00;
    if (abs < 0x38800000u) {                      /* below 2^-14: subnormal or 0 */
        if (abs < 0x33000000u)                    /* below 2^-25: rounds to 0 */
            return sign;
        uint32_t man = (abs & 0x7fffff) | 0x800000;
        int shift = 126 - (int)(abs >> 23);       /* 14..24 */
        uint32_t half = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1)))
            half++;
        return sign | (uint16_t)half;
    }
    uint32_t half = ((abs >> 13) - (112u << 10));
    uint32_t rem = abs & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1)))
        half++;                                   /* may carry into the exponent: fine */
    return sign | (uint16_t)half;
}

/* ---- checks and normalization ------------------------------------------ */

int elo__vstore_check_finite(const float *v, size_t count, int dim, const char *what)
{
    for (size_t i = 0; i < count; i++)
        for (int j = 0; j < dim; j++)
            if (!isfinite(v[i * (size_t)dim + (size_t)j]))
                return elo_seterr(ELO_BADINPUT, "%s %zu element %d is %s", what, i, j,
                                  isnan(v[i * (size_t)dim + (size_t)j]) ? "NaN" : "infinite");
    return ELO_OK;
}

int elo__vstore_normalize(float *v, size_t count, int dim, size_t first_index, const char *what)
{
    for (size_t i = 0; i < count; i++) {
        float *x = v + i * (size_t)dim;
        double sum = 0;
        for (int j = 0; j < dim; j++)
            sum += (double)x[j] * (double)x[j];
        float norm = (float)sqrt(sum);
        if (!(norm > 0) || !isfinite(norm))
            return elo_seterr(ELO_BADINPUT, "%s %zu has %s norm; cosine needs a non-zero vector",
                              what, first_index + i, norm > 0 ? "an infinite" : "a zero");
        for (int j = 0; j < dim; j++)
            x[j] = x[j] / norm;
    }
    return ELO_OK;
}

/* ---- scalar reference ---------------------------------------------------- */

static float reduce16(float *acc)
{
    for (int w = 8; w >= 1; w /= 2)
        for (int j = 0; j < w; j++)
            acc[j] = acc[j] + acc[j + w];
    return acc[0];
}

float elo__vstore_score_ref(const void *row, elo_dtype dtype, const float *query, int dim,
                            int metric)
{
    float acc[16] = {0};
    const float *xf = row;
    const uint16_t *xh = row;
    for (int i = 0; i < dim; i++) {
        float x = dtype == ELO_DTYPE_F16 ? elo_f16_to_f32(xh[i]) : xf[i];
        float p;
        if (metric == ELO_VSTORE_L2) {
            float d = x - query[i];
            p = d * d;
        } else {
            p = x * query[i];
        }
        acc[i % 16] = acc[i % 16] + p;
    }
    return reduce16(acc);
}

/* ---- kernels -------------------------------------------------------------- */

/* Scores one row against `nq` queries (padded to `dpad`, a multiple of 16,
 * with zeros) into out[0..nq). */
typedef void (*row_fn)(const void *row, elo_dtype dtype, int dim, const float *q, int dpad,
                       int nq, int l2, float *out);

static void row_scalar(const void *row, elo_dtype dtype, int dim, const float *q, int dpad,
                       int nq, int l2, float *out)
{
    for (int j = 0; j < nq; j++)
        out[j] = elo__vstore_score_ref(row, dtype, q + (size_t)j * dpad, dim,
                                       l2 ? ELO_VSTORE_L2 : ELO_VSTORE_IP);
}

#if HAVE_X86
#define T512 __attribute__((target("avx512f,f16c,avx2,fma")))
#define T256 __attribute__((target("avx2,f16c,fma")))

static inline T512 __m512 load512(const void *row, elo_dtype dtype, int i)
{
    if (dtype == ELO_DTYPE_F16)
        return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)row + i)));
    return _mm512_loadu_ps((const float *)row + i);
}

static inline T512 float reduce512(__m512 acc)
{
    __m256 lo8 = _mm512_castps512_ps256(acc);
    __m256 hi8 = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc), 1));
    __m256 s8 = _mm256_add_ps(lo8, hi8);                       /* w = 8 */
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1)); /* w = 4 */
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));         /* w = 2: lanes 0,1 */
    __m128 s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));     /* w = 1 */
    return _mm_cvtss_f32(s1);
}

/* NQ accumulators stay in registers (NQ <= 16 of 32 zmm). */
static inline __attribute__((always_inline)) T512 void
row512_n(const void *row, elo_dtype dtype, int dim, const float *q, int dpad, int nq, int l2,
         float *out)
{
    __m512 acc[16];
#pragma GCC unroll 16
    for (int j = 0; j < nq; j++)
        acc[j] = _mm512_setzero_ps();
    int full = dim & ~15, i = 0;
    for (; i < full; i += 16) {
        __m512 x = load512(row, dtype, i);
#pragma GCC unroll 16
        for (int j = 0; j < nq; j++) {
            __m512 qv = _mm512_loadu_ps(q + (size_t)j * dpad + i);
            __m512 p;
            if (l2) {
                __m512 d = _mm512_sub_ps(x, qv);
                p = _mm512_mul_ps(d, d);
            } else {
                p = _mm512_mul_ps(x, qv);
            }
            acc[j] = _mm512_add_ps(acc[j], p);
        }
    }
    if (i < dim) {
        float tail[16] = {0};
        for (int t = 0; i + t < dim; t++)
            tail[t] = dtype == ELO_DTYPE_F16 ? elo_f16_to_f32(((const uint16_t *)row)[i + t])
                                             : ((const float *)row)[i + t];
        __m512 x = _mm512_loadu_ps(tail);
#pragma GCC unroll 16
        for (int j = 0; j < nq; j++) {
            __m512 qv = _mm512_loadu_ps(q + (size_t)j * dpad + i);
            __m512 p;
            if (l2) {
                __m512 d = _mm512_sub_ps(x, qv);
                p = _mm512_mul_ps(d, d);
            } else {
                p = _mm512_mul_ps(x, qv);
            }
            acc[j] = _mm512_add_ps(acc[j], p);
        }
    }
#pragma GCC unroll 16
    for (int j = 0; j < nq; j++)
        out[j] = reduce512(acc[j]);
}

static T512 void row_avx512(const void *row, elo_dtype dtype, int dim, const float *q, int dpad,
                            int nq, int l2, float *out)
{
    for (; nq >= 16; nq -= 16, q += (size_t)16 * dpad, out += 16) {
        if (l2) row512_n(row, dtype, dim, q, dpad, 16, 1, out);
        else row512_n(row, dtype, dim, q, dpad, 16, 0, out);
    }
    for (; nq >= 8; nq -= 8, q += (size_t)8 * dpad, out += 8) {
        if (l2) row512_n(row, dtype, dim, q, dpad, 8, 1, out);
        else row512_n(row, dtype, dim, q, dpad, 8, 0, out);
    }
    switch (nq) {
#define CASE(n) case n: { if (l2) row512_n(row, dtype, dim, q, dpad, n, 1, out); \
                        else row512_n(row, dtype, dim, q, dpad, n, 0, out); } break;
    CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7)
#undef CASE
    default: break;
    }
}

/* ---- bounded FMA prefilter (AVX-512) ---------------------------------------
 * For batches the exact score is compute-bound: a separate multiply and add
 * per element and query. The prefilter first computes 16 queries' scores
 * with one FMA per element (in any order) and, for ip/cosine, the row's
 * squared norm (one more FMA per element, shared by the 16). With m =
 * ceil(dim/16) terms per lane and a depth-4 tree, both the canonical score
 * and the FMA score are within gamma(m+5) * sum|x_i q_i| of the exact real
 * dot product (gamma(n) = n u / (1 - n u), u = 2^-24), so
 *     |fma - canonical| <= 2 gamma(m+5) |x| |q|        (ip, cosine)
 *     |fma - canonical| <= 2 gamma(m+5) sum d_i^2      (l2; d_i rounded the
 *                                                       same way in both)
 * plus an absolute term for underflow and margins for the rounding of the
 * bound arithmetic itself. A (row, query) whose FMA score cannot reach the
 * query's current k-th key even with that bound is skipped; every other
 * one is scored exactly, so the results are the canonical ones, bit for
 * bit (tests/unit/test-vstore.c checks near-ties one ulp apart). */
static inline __attribute__((always_inline)) T512 __m512
approx512_16(const void *row, elo_dtype dtype, int dim, const float *q, int dpad, int l2,
             float *norm2)
{
    __m512 acc[16], nacc = _mm512_setzero_ps();
#pragma GCC unroll 16
    for (int j = 0; j < 16; j++)
        acc[j] = _mm512_setzero_ps();
    for (int i = 0; i < dim; i += 16) {
        __m512 x;
        if (i + 16 <= dim) {
            x = load512(row, dtype, i);
        } else {
            float tail[16] = {0};
            for (int t = 0; i + t < dim; t++)
                tail[t] = dtype == ELO_DTYPE_F16 ? elo_f16_to_f32(((const uint16_t *)row)[i + t])
                                                 : ((const float *)row)[i + t];
            x = _mm512_loadu_ps(tail);
        }
        if (!l2)
            nacc = _mm512_fmadd_ps(x, x, nacc);
#pragma GCC unroll 16
        for (int j = 0; j < 16; j++) {
            __m512 qv = _mm512_loadu_ps(q + (size_t)j * dpad + i);
            if (l2) {
                __m512 d = _mm512_sub_ps(x, qv);
                acc[j] = _mm512_fmadd_ps(d, d, acc[j]);
            } else {
                acc[j] = _mm512_fmadd_ps(x, qv, acc[j]);
            }
        }
    }
    *norm2 = l2 ? 0 : _mm512_reduce_add_ps(nacc);
    /* Transposed pairwise reduction (depth 4): 16 registers -> one with
     * query j's sum in lane j. */
    __m512 s8[8], s4[4], s2[2];
#pragma GCC unroll 8
    for (int m = 0; m < 8; m++)
        s8[m] = _mm512_add_ps(_mm512_shuffle_f32x4(acc[2 * m], acc[2 * m + 1], 0x44),
                              _mm512_shuffle_f32x4(acc[2 * m], acc[2 * m + 1], 0xEE));
#pragma GCC unroll 8
    for (int n = 0; n < 4; n++)
        s4[n] = _mm512_add_ps(_mm512_shuffle_f32x4(s8[2 * n], s8[2 * n + 1], 0x88),
                              _mm512_shuffle_f32x4(s8[2 * n], s8[2 * n + 1], 0xDD));
#pragma GCC unroll 8
    for (int p = 0; p < 2; p++)
        s2[p] = _mm512_add_ps(_mm512_shuffle_ps(s4[2 * p], s4[2 * p + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                              _mm512_shuffle_ps(s4[2 * p], s4[2 * p + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    __m512 v = _mm512_add_ps(_mm512_shuffle_ps(s2[0], s2[1], _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_ps(s2[0], s2[1], _MM_SHUFFLE(3, 1, 3, 1)));
    /* Lane 4r+c of v holds query 4c+r. */
    const __m512i perm = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    return _mm512_permutexvar_ps(perm, v);
}

/* Returns a mask of the queries (of 16 starting at q) whose canonical score
 * might reach `thr` (their current k-th keys; -inf: heap not full, +inf:
 * padding). */
static T512 unsigned prefilter_avx512(const void *row, elo_dtype dtype, int dim, const float *q,
                                      int dpad, int l2, const float *qnorm, const float *thr,
                                      float gamma2, float tiny)
{
    float norm2;
    __m512 a = l2 ? approx512_16(row, dtype, dim, q, dpad, 1, &norm2)
                  : approx512_16(row, dtype, dim, q, dpad, 0, &norm2);
    __m512 absa = _mm512_abs_ps(a);
    __m512 scale;
    if (l2) {
        scale = absa;                                    /* sum d_i^2 ~ a */
    } else {
        /* The FMA sum of x_i^2 is >= (1 - gamma) sum x_i^2: 1 + gamma2
         * (2 gamma) makes it an upper bound. */
        float xnorm = sqrtf(norm2 * (1 + gamma2));
        scale = _mm512_mul_ps(_mm512_set1_ps(xnorm), _mm512_loadu_ps(qnorm));
    }
    /* bound = (gamma2 * scale + tiny + |a| 2^-21) (1 + 2^-18): the last two
     * terms cover the rounding of this arithmetic and of a + bound. */
    __m512 bound = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(gamma2), scale), _mm512_set1_ps(tiny));
    bound = _mm512_add_ps(bound, _mm512_mul_ps(absa, _mm512_set1_ps(0x1p-21f)));
    bound = _mm512_mul_ps(bound, _mm512_set1_ps(1 + 0x1p-18f));
    __m512 best = l2 ? _mm512_sub_ps(bound, a) : _mm512_add_ps(a, bound);
    /* Keep unless best < thr (NaN keeps: scored exactly). Products near
     * the f32 range may overflow in one sum and not the other: rows with
     * |x||q| > 1e30 are always scored exactly. */
    return (unsigned)(_mm512_cmp_ps_mask(best, _mm512_loadu_ps(thr), _CMP_NLT_UQ) |
                      _mm512_cmp_ps_mask(scale, _mm512_set1_ps(1e30f), _CMP_NLE_UQ));
}

/* ---- bf16 prefilter (AVX512-BF16), ip and cosine ------------------------------
 * Cheaper still where the CPU has VDPBF16PS: rows and queries rounded to
 * bf16 (relative error <= 2^-9 each, denormals flushed), 32 products per
 * instruction, exact in f32 and accumulated in f32 (two roundings per lane
 * per instruction: n_b = 2 ceil(dim/32) + 4 with the tree). Then
 *   |bf16 score - canonical| <= (2^-8 + 2^-17 + gamma(n_b)(1 + 2^-7)
 *                                + gamma(m+5)) |x| |q| + (flushed terms)
 * and the same skip test as above. |x| is bounded from the bf16 sum of
 * squares with a 2^-6 margin. */
#define TBF __attribute__((target("avx512f,avx512bf16,f16c,avx2,fma")))

/* 16 floats of a row from element i (zeros past dim). */
static inline __attribute__((always_inline)) T512 __m512
load512_any(const void *row, elo_dtype dtype, int dim, int i)
{
    if (i + 16 <= dim)
        return load512(row, dtype, i);
    float tail[16] = {0};
    for (int t = 0; i + t < dim; t++)
        tail[t] = dtype == ELO_DTYPE_F16 ? elo_f16_to_f32(((const uint16_t *)row)[i + t])
                                         : ((const float *)row)[i + t];
    return _mm512_loadu_ps(tail);
}

/* 32 floats (zero past dim) as 32 bf16 in the order VDPBF16PS pairs them. */
static inline __attribute__((always_inline)) TBF __m512bh
load_bf16x32(const void *row, elo_dtype dtype, int dim, int i)
{
    __m512 lo = load512_any(row, dtype, dim, i), hi = load512_any(row, dtype, dim, i + 16);
    return _mm512_cvtne2ps_pbh(hi, lo);
}

static TBF unsigned prefilter_bf16(const void *row, elo_dtype dtype, int dim, const __m512bh *qbf,
                                   int qchunks, const float *qnorm, const float *thr, float ebf,
                                   float tiny)
{
    __m512 acc[16], nacc = _mm512_setzero_ps();
#pragma GCC unroll 16
    for (int j = 0; j < 16; j++)
        acc[j] = _mm512_setzero_ps();
    for (int c = 0; c < qchunks; c++) {
        __m512bh xb = load_bf16x32(row, dtype, dim, 32 * c);
        nacc = _mm512_dpbf16_ps(nacc, xb, xb);
#pragma GCC unroll 16
        for (int j = 0; j < 16; j++)
            acc[j] = _mm512_dpbf16_ps(acc[j], xb, qbf[(size_t)j * qchunks + c]);
    }
    float norm2 = _mm512_reduce_add_ps(nacc);
    __m512 s8[8], s4[4], s2[2];
#pragma GCC unroll 8
    for (int m = 0; m < 8; m++)
        s8[m] = _mm512_add_ps(_mm512_shuffle_f32x4(acc[2 * m], acc[2 * m + 1], 0x44),
                              _mm512_shuffle_f32x4(acc[2 * m], acc[2 * m + 1], 0xEE));
#pragma GCC unroll 8
    for (int n = 0; n < 4; n++)
        s4[n] = _mm512_add_ps(_mm512_shuffle_f32x4(s8[2 * n], s8[2 * n + 1], 0x88),
                              _mm512_shuffle_f32x4(s8[2 * n], s8[2 * n + 1], 0xDD));
#pragma GCC unroll 8
    for (int p = 0; p < 2; p++)
        s2[p] = _mm512_add_ps(_mm512_shuffle_ps(s4[2 * p], s4[2 * p + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                              _mm512_shuffle_ps(s4[2 * p], s4[2 * p + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    __m512 v = _mm512_add_ps(_mm512_shuffle_ps(s2[0], s2[1], _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_ps(s2[0], s2[1], _MM_SHUFFLE(3, 1, 3, 1)));
    const __m512i perm = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    __m512 a = _mm512_permutexvar_ps(perm, v);

    float xnorm = sqrtf(norm2 * (1 + 0x1p-6f)) + 0x1p-60f;
    __m512 qn = _mm512_loadu_ps(qnorm);
    __m512 scale = _mm512_mul_ps(_mm512_set1_ps(xnorm), qn);
    /* Flushed denormals: at most 2^-126 (sqrt(dim) (|x| + |q|) + 2 dim) in
     * all; `tiny` holds 2^-100 (dim + 1), far above. */
    __m512 absa = _mm512_abs_ps(a);
    __m512 bound = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(ebf), scale),
                                 _mm512_mul_ps(_mm512_set1_ps(tiny),
                                               _mm512_add_ps(_mm512_set1_ps(1 + xnorm), qn)));
    bound = _mm512_add_ps(bound, _mm512_mul_ps(absa, _mm512_set1_ps(0x1p-21f)));
    bound = _mm512_mul_ps(bound, _mm512_set1_ps(1 + 0x1p-18f));
    __m512 best = _mm512_add_ps(a, bound);
    return (unsigned)(_mm512_cmp_ps_mask(best, _mm512_loadu_ps(thr), _CMP_NLT_UQ) |
                      _mm512_cmp_ps_mask(scale, _mm512_set1_ps(1e30f), _CMP_NLE_UQ));
}

/* Converts `count` padded f32 queries (dpad floats each) to bf16 chunks of
 * 32, laid out [query][chunk], as load_bf16x32 would. */
static TBF void queries_to_bf16(const float *q, int dpad, int count, int qchunks, __m512bh *out)
{
    for (int j = 0; j < count; j++)
        for (int c = 0; c < qchunks; c++)
            out[(size_t)j * qchunks + c] =
                load_bf16x32(q + (size_t)j * dpad, ELO_DTYPE_F32, dpad, 32 * c);
}

static int has_avx512bf16(void)
{
    unsigned a, b, c, d;
    if (!__builtin_cpu_supports("avx512f"))
        return 0;
    return __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 5));
}

static inline T256 void load256x2(const void *row, elo_dtype dtype, int i, __m256 *lo, __m256 *hi)
{
    if (dtype == ELO_DTYPE_F16) {
        const uint16_t *h = (const uint16_t *)row + i;
        *lo = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h));
        *hi = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + 8)));
    } else {
        *lo = _mm256_loadu_ps((const float *)row + i);
        *hi = _mm256_loadu_ps((const float *)row + i + 8);
    }
}

static inline T256 float reduce256x2(__m256 lo, __m256 hi)
{
    __m256 s8 = _mm256_add_ps(lo, hi);
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    __m128 s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
    return _mm_cvtss_f32(s1);
}

/* Up to 4 queries: 8 accumulators of 16 ymm registers. */
static inline __attribute__((always_inline)) T256 void
row256_n(const void *row, elo_dtype dtype, int dim, const float *q, int dpad, int nq, int l2,
         float *out)
{
    __m256 alo[4], ahi[4];
#pragma GCC unroll 4
    for (int j = 0; j < nq; j++)
        alo[j] = ahi[j] = _mm256_setzero_ps();
    int full = dim & ~15;
    for (int i = 0; i < dim; i += 16) {
        __m256 xlo, xhi;
        if (i < full) {
            load256x2(row, dtype, i, &xlo, &xhi);
        } else {
            float tail[16] = {0};
            for (int t = 0; i + t < dim; t++)
                tail[t] = dtype == ELO_DTYPE_F16 ? elo_f16_to_f32(((const uint16_t *)row)[i + t])
                                                 : ((const float *)row)[i + t];
            xlo = _mm256_loadu_ps(tail);
            xhi = _mm256_loadu_ps(tail + 8);
        }
#pragma GCC unroll 4
        for (int j = 0; j < nq; j++) {
            const float *qj = q + (size_t)j * dpad + i;
            __m256 qlo = _mm256_loadu_ps(qj), qhi = _mm256_loadu_ps(qj + 8);
            __m256 plo, phi;
            if (l2) {
                __m256 dlo = _mm256_sub_ps(xlo, qlo), dhi = _mm256_sub_ps(xhi, qhi);
                plo = _mm256_mul_ps(dlo, dlo);
                phi = _mm256_mul_ps(dhi, dhi);
            } else {
                plo = _mm256_mul_ps(xlo, qlo);
                phi = _mm256_mul_ps(xhi, qhi);
            }
            alo[j] = _mm256_add_ps(alo[j], plo);
            ahi[j] = _mm256_add_ps(ahi[j], phi);
        }
    }
#pragma GCC unroll 4
    for (int j = 0; j < nq; j++)
        out[j] = reduce256x2(alo[j], ahi[j]);
}

static T256 void row_avx2(const void *row, elo_dtype dtype, int dim, const float *q, int dpad,
                          int nq, int l2, float *out)
{
    for (; nq >= 4; nq -= 4, q += (size_t)4 * dpad, out += 4) {
        if (l2) row256_n(row, dtype, dim, q, dpad, 4, 1, out);
        else row256_n(row, dtype, dim, q, dpad, 4, 0, out);
    }
    switch (nq) {
#define CASE(n) case n: { if (l2) row256_n(row, dtype, dim, q, dpad, n, 1, out); \
                        else row256_n(row, dtype, dim, q, dpad, n, 0, out); } break;
    CASE(1) CASE(2) CASE(3)
#undef CASE
    default: break;
    }
}
#endif

#if HAVE_X86
/* F16C (CPUID.1:ECX bit 29); not every compiler's __builtin_cpu_supports
 * knows its name. */
static int has_f16c(void)
{
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
}
#endif

static row_fn kernel_fn;
static const char *kernel_label;

static int force_kernel_env(void);

static void pick_kernel(void)
{
    if (kernel_fn)
        return;
    if (force_kernel_env())
        return;
#if HAVE_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && has_f16c()) {
        kernel_label = "avx512";
        kernel_fn = row_avx512;
        return;
    }
    if (__builtin_cpu_supports("avx2") && has_f16c()) {
        kernel_label = "avx2";
        kernel_fn = row_avx2;
        return;
    }
#endif
    kernel_label = "scalar";
    kernel_fn = row_scalar;
}

/* $ELOHIM_VSTORE_KERNEL=scalar|avx2|avx512 pins the kernel (benchmarks). */
static int force_kernel_env(void)
{
    const char *env = getenv("ELOHIM_VSTORE_KERNEL");
    if (!env || !*env)
        return 0;
    static int busy;
    if (busy)
        return 0;
    busy = 1;
    int rc = elo__vstore_force_kernel(env);
    busy = 0;
    if (rc < 0)
        elo_warn("ELOHIM_VSTORE_KERNEL=%s: %s", env, elo_errmsg());
    return rc == ELO_OK;
}

const char *elo__vstore_kernel_name(void)
{
    pick_kernel();
    return kernel_label;
}

int elo__vstore_force_kernel(const char *name)
{
    kernel_fn = NULL;
    pick_kernel();
    if (!name)
        return ELO_OK;
    if (!strcmp(name, "scalar")) {
        kernel_fn = row_scalar;
        kernel_label = "scalar";
        return ELO_OK;
    }
#if HAVE_X86
    if (!strcmp(name, "avx2") && __builtin_cpu_supports("avx2") && has_f16c()) {
        kernel_fn = row_avx2;
        kernel_label = "avx2";
        return ELO_OK;
    }
    if (!strcmp(name, "avx512") && __builtin_cpu_supports("avx512f")) {
        kernel_fn = row_avx512;
        kernel_label = "avx512";
        return ELO_OK;
    }
#endif
    return elo_seterr(ELO_UNSUPPORTED, "kernel %s is not available on this CPU", name);
}

float elo__vstore_score_fast(const void *row, elo_dtype dtype, const float *query, int dim,
                             int metric)
{
    pick_kernel();
    int dpad = (dim + 15) & ~15;
    float *q = calloc((size_t)dpad, sizeof *q);
    if (!q)
        return elo__vstore_score_ref(row, dtype, query, dim, metric);
    memcpy(q, query, (size_t)dim * sizeof *q);
    float out;
    kernel_fn(row, dtype, dim, q, dpad, 1, metric == ELO_VSTORE_L2, &out);
    free(q);
    return out;
}

/* ---- top-k ----------------------------------------------------------------- */

/* key: higher is better (the score, negated for l2); ties by lower id. */
typedef struct {
    float key;
    int64_t id;
} hit;

static inline int better(hit a, hit b)
{
    return a.key > b.key || (a.key == b.key && a.id < b.id);
}

/* A min-heap on `better`: the root is the worst kept hit. */
typedef struct {
    hit *items;
    int size;
} heap;

static inline void heap_push(heap *h, int k, hit x)
{
    if (h->size < k) {
        int i = h->size++;
        while (i > 0) {
            int parent = (i - 1) / 2;
            if (!better(h->items[parent], x))
                break;
            h->items[i] = h->items[parent];
            i = parent;
        }
        h->items[i] = x;
        return;
    }
    if (!better(x, h->items[0]))
        return;
    int i = 0, n = h->size;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && better(h->items[c], h->items[c + 1]))
            c++;
        if (!better(x, h->items[c]))
            break;
        h->items[i] = h->items[c];
        i = c;
    }
    h->items[i] = x;
}

static int cmp_hit(const void *a, const void *b)
{
    hit x = *(const hit *)a, y = *(const hit *)b;
    return better(x, y) ? -1 : better(y, x) ? 1 : 0;
}

#define PASS_QUERIES 32

typedef struct {
    elo_vstore *vs;
    row_fn fn;
    int prefilter;             /* 1: AVX-512 bounded FMA prefilter */
    int bf16;                  /* 1: the bf16 prefilter (ip, cosine) instead */
#if HAVE_X86
    __m512bh *qbf;             /* bf16 queries [PASS_QUERIES][qchunks] */
#endif
    int qchunks;               /* ceil(dim / 32) */
    float ebf;                 /* the bf16 bound's factor */
    float tiny_bf;
    const float *q;            /* this pass's queries, padded to dpad */
    float qnorm[PASS_QUERIES]; /* upper bounds of the queries' L2 norms */
    float gamma2;              /* 2 gamma(m+5), see the prefilter */
    float tiny;                /* absolute bound for underflow */
    int dpad, nq, k, l2;
    uint64_t chunk_rows;
    heap *heaps;               /* [thread][nq] */
    hit *storage;
} scan_job;

static void scan_task(void *arg, int task, int thread)
{
    scan_job *job = arg;
    elo_vstore *vs = job->vs;
    uint64_t begin = (uint64_t)task * job->chunk_rows;
    uint64_t end = begin + job->chunk_rows;
    if (end > vs->h.row_count)
        end = vs->h.row_count;
    heap *heaps = job->heaps + (size_t)thread * PASS_QUERIES;
    float scores[PASS_QUERIES];
    /* The prefilter's thresholds: this thread's k-th key per query (-inf
     * until its heap is full; +inf for padding queries). */
    float thr[PASS_QUERIES];
    for (int j = 0; j < PASS_QUERIES; j++)
        thr[j] = j >= job->nq ? INFINITY
                 : heaps[j].size == job->k ? heaps[j].items[0].key : -INFINITY;
    const uint64_t seq = vs->h.seq;
    /* The hardware streamer stops at every 4 KiB page, and a row is a
     * third of one: prefetch four rows ahead. Batches spend so long on a
     * row that the out-of-order window cannot cover the next rows' misses;
     * a single query, memory-bound, gained 15 % too (66 -> 56 ms at 1M x
     * 384 on the 2-core dev VM, 94 % of the bandwidth floor). */
    const uint64_t ahead = 4;
    for (uint64_t r = begin; r < end; r++) {
#if HAVE_X86
        if (ahead && r + ahead < end) {
            const char *p = (const char *)vs->rows + (r + ahead) * vs->row_bytes;
            for (size_t off = 0; off < vs->row_bytes; off += 64)
                _mm_prefetch(p + off, _MM_HINT_T0);
        }
#endif
        uint64_t stamp = vs->stamps[r];
        if (stamp != 0 && stamp <= seq)
            continue;
        const uint8_t *row = vs->rows + r * vs->row_bytes;
        int64_t id = vs->ids[r];
#if HAVE_X86
        if (job->prefilter) {
            for (int g = 0; g < job->nq; g += 16) {
                unsigned mask =
                    job->bf16
                        ? prefilter_bf16(row, (elo_dtype)vs->h.dtype, (int)vs->h.dim,
                                         job->qbf + (size_t)g * job->qchunks, job->qchunks,
                                         job->qnorm + g, thr + g, job->ebf, job->tiny_bf)
                        : prefilter_avx512(row, (elo_dtype)vs->h.dtype, (int)vs->h.dim,
                                           job->q + (size_t)g * job->dpad, job->dpad, job->l2,
                                           job->qnorm + g, thr + g, job->gamma2, job->tiny);
                while (mask) {
                    int j = g + __builtin_ctz(mask);
                    mask &= mask - 1;
                    float sc;
                    job->fn(row, (elo_dtype)vs->h.dtype, (int)vs->h.dim,
                            job->q + (size_t)j * job->dpad, job->dpad, 1, job->l2, &sc);
                    float key = job->l2 ? -sc : sc;
                    if (key != key)
                        key = -INFINITY;
                    heap *h = &heaps[j];
                    if (h->size == job->k && key < h->items[0].key)
                        continue;
                    heap_push(h, job->k, (hit){key, id});
                    if (h->size == job->k)
                        thr[j] = h->items[0].key;
                }
            }
            continue;
        }
#endif
        job->fn(row, (elo_dtype)vs->h.dtype, (int)vs->h.dim, job->q, job->dpad, job->nq, job->l2,
                scores);
        for (int j = 0; j < job->nq; j++) {
            float key = job->l2 ? -scores[j] : scores[j];
            if (key != key)
                key = -INFINITY;   /* a NaN row (only in a damaged file) ranks last */
            heap *h = &heaps[j];
            if (h->size == job->k && key < h->items[0].key)
                continue;
            heap_push(h, job->k, (hit){key, id});
        }
    }
}

/* Parallel loops run on the process thread pool ($ELOHIM_THREADS sets its
 * size); `thread` in fn() is below elo__vstore_threads(). */
int elo__vstore_threads(void) { return elo_pool_size(elo_pool_global()); }

void elo__vstore_parallel(void (*fn)(void *arg, int task, int thread), void *arg, int task_count)
{
    elo_pool_run(elo_pool_global(), fn, arg, task_count);
}

int elo__vstore_search_cpu(elo_vstore *vs, const float *queries, int query_count, int k,
                           int64_t *out_ids, float *out_scores)
{
    pick_kernel();
    int threads = elo__vstore_threads();
    int dim = (int)vs->h.dim;
    int dpad = (dim + 15) & ~15;
    uint64_t rows = vs->h.row_count;
    int per_query = 0;

    scan_job job = {.vs = vs, .fn = kernel_fn, .dpad = dpad, .k = k,
                    .l2 = vs->h.metric == ELO_VSTORE_L2};
    /* The prefilter works on groups of 16 queries (padded with zero
     * queries whose threshold is +inf); it pays from about 12 on. */
    int prefilter_ok = 0;
#if HAVE_X86
    prefilter_ok = kernel_fn == row_avx512 && !getenv("ELOHIM_VSTORE_NO_PREFILTER");
#endif
    int bf16_ok = 0;
#if HAVE_X86
    bf16_ok = prefilter_ok && vs->h.metric != ELO_VSTORE_L2 && has_avx512bf16() &&
              !getenv("ELOHIM_VSTORE_NO_BF16");
#endif
    job.qchunks = (dim + 31) / 32;
    {
        double u = ldexp(1.0, -24), m5 = (double)((dim + 15) / 16 + 5);
        double nb = 2.0 * job.qchunks + 4;
        double gm = m5 * u / (1 - m5 * u), gb = nb * u / (1 - nb * u);
        job.ebf = (float)((ldexp(1.0, -8) + ldexp(1.0, -17) + gb * (1 + ldexp(1.0, -7)) + gm) *
                          (1 + 1e-3));
        job.tiny_bf = (float)(ldexp(1.0, -100) * (dim + 1));
    }
    {
        double u = ldexp(1.0, -24), n = (double)((dim + 15) / 16 + 5);
        job.gamma2 = (float)(2 * (n * u / (1 - n * u)) * (1 + 1e-3));
        /* Each of at most 2*dim + 16 roundings may lose 2^-150 to underflow;
         * counted as normal floats so the sum itself stays exact enough. */
        job.tiny = (float)((2.0 * dim + 16) * ldexp(1.0, -126));
    }
    uint64_t chunk = rows / ((uint64_t)threads * 16) + 1;
    job.chunk_rows = chunk < 2048 ? 2048 : chunk;
    uint64_t tasks = (rows + job.chunk_rows - 1) / job.chunk_rows;

    float *qpad = elo_calloc((size_t)PASS_QUERIES * dpad + 32, sizeof *qpad);
#if HAVE_X86
    job.qbf = bf16_ok ? elo_aligned_alloc(64, (size_t)PASS_QUERIES * job.qchunks * 64) : NULL;
    if (bf16_ok && !job.qbf)
        bf16_ok = 0;
#endif
    job.heaps = elo_calloc((size_t)threads * PASS_QUERIES, sizeof *job.heaps);
    job.storage = elo_malloc((size_t)threads * PASS_QUERIES * (size_t)k * sizeof *job.storage);
    hit *merged = elo_malloc((size_t)threads * (size_t)k * sizeof *merged);
    if (!qpad || !job.heaps || !job.storage || !merged) {
        elo_free(qpad);
        elo_free(job.heaps);
        elo_free(job.storage);
        elo_free(merged);
        return elo_seterr(ELO_NOMEM, "out of memory for the search heaps");
    }
    job.q = qpad;
    for (int q0 = 0; q0 < query_count; q0 += PASS_QUERIES) {
        int nq = ELO_MIN(PASS_QUERIES, query_count - q0);
        job.nq = nq;
        memset(qpad, 0, (size_t)PASS_QUERIES * dpad * sizeof *qpad);
        for (int j = 0; j < nq; j++) {
            const float *src = queries + (size_t)(q0 + j) * dim;
            memcpy(qpad + (size_t)j * dpad, src, (size_t)dim * sizeof *qpad);
            double s2 = 0;
            for (int i = 0; i < dim; i++)
                s2 += (double)src[i] * src[i];
            job.qnorm[j] = (float)(sqrt(s2) * (1 + 1e-6));
        }
        for (int j = nq; j < PASS_QUERIES; j++)
            job.qnorm[j] = 0;
        job.prefilter = prefilter_ok && nq >= 12;
        job.bf16 = job.prefilter && bf16_ok;
#if HAVE_X86
        if (job.bf16)
            queries_to_bf16(qpad, dpad, PASS_QUERIES, job.qchunks, job.qbf);
#endif
        for (int t = 0; t < threads; t++)
            for (int j = 0; j < PASS_QUERIES; j++) {
                heap *h = &job.heaps[(size_t)t * PASS_QUERIES + j];
                h->items = job.storage + ((size_t)t * PASS_QUERIES + j) * (size_t)k;
                h->size = 0;
            }
        elo__vstore_parallel(scan_task, &job, (int)tasks);
        for (int j = 0; j < nq; j++) {
            size_t n = 0;
            for (int t = 0; t < threads; t++) {
                heap *h = &job.heaps[(size_t)t * PASS_QUERIES + j];
                memcpy(merged + n, h->items, (size_t)h->size * sizeof *merged);
                n += (size_t)h->size;
            }
            qsort(merged, n, sizeof *merged, cmp_hit);
            int got = (int)ELO_MIN(n, (size_t)k);
            int64_t *ids = out_ids + (size_t)(q0 + j) * k;
            float *scores = out_scores + (size_t)(q0 + j) * k;
            for (int i = 0; i < got; i++) {
                ids[i] = merged[i].id;
                scores[i] = job.l2 ? -merged[i].key : merged[i].key;
            }
            if (j == 0 && q0 == 0)
                per_query = got;
        }
    }
    elo_free(qpad);
#if HAVE_X86
    elo_free(job.qbf);
#endif
    elo_free(job.heaps);
    elo_free(job.storage);
    elo_free(merged);
    return per_query;
}
