/* gemm-short.c - C = A B (+ C) for a short A (a few dozen rows) on AVX-512.
 *
 * WHY. A sentence embedded alone is 32 tokens: every GEMM of the encoder
 * has m = 32 rows against weights of 384 x 1152 ... 1536 x 384. OpenBLAS
 * packs the whole B panel (the weights) on every call and ran those GEMMs
 * at a third of the FMA peak. Here a register tile is 8 rows of A by 48
 * columns of C (24 accumulators): at each k, 48 values of B (three
 * vectors) meet the broadcast A[r][k] of 8 rows.
 *
 * B. Each call streams the weights from memory (42 MB for MiniLM, more
 * than the caches): that stream is the floor at batch 1. B is packed 64
 * rows at a time into per-block panels ([64][48], L1/L2) from contiguous
 * row runs of up to 8 column blocks, and while a chunk's products run the
 * next 64 rows are prefetched into L2. Read in place instead, each row of
 * a 48-column block sits on a page of its own (rows 1.5-6 KB apart),
 * where the hardware prefetcher does not follow, and the products stalled
 * on every load (2x slower than OpenBLAS).
 *
 * Built with the avx512f target attribute, chosen at run time
 * (elo__gemm_short_ok): other CPUs keep OpenBLAS. */
#include "backend-impl.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define TILE_COLS 48 /* three 16-float vectors */
#define PACK_ROWS 64    /* rows of B packed at a time */
#define GROUP_BLOCKS 8  /* column blocks packed together: 96 KB of panels */

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define ELO_SHORT_GEMM 1
#include <immintrin.h>
#endif

#ifdef ELO_SHORT_GEMM
/* C (+)= A B for R rows (R = 8, 4, 2 or 1: tileR) by one column block,
 * B packed ([k][TILE_COLS], aligned), the masks m0..m2 the columns C has;
 * the accumulators are named one by one so they stay in registers (arrays
 * of vectors went to the stack). */
#define ACC_DECL(r) __m512 r##0 = _mm512_setzero_ps(), r##1 = r##0, r##2 = r##0;
#define ACC_STEP(r, i)                                                                         \
    {                                                                                          \
        const __m512 av = _mm512_set1_ps(ap[(size_t)(i) * lda]);                              \
        r##0 = _mm512_fmadd_ps(av, b0, r##0);                                                  \
        r##1 = _mm512_fmadd_ps(av, b1, r##1);                                                  \
        r##2 = _mm512_fmadd_ps(av, b2, r##2);                                                  \
    }
#define ACC_STORE(r, i)                                                                        \
    {                                                                                          \
        float *cr = c + (size_t)(i) * ldc;                                                     \
        if (accumulate) {                                                                      \
            r##0 = _mm512_add_ps(r##0, _mm512_maskz_loadu_ps(m0, cr));                         \
            r##1 = _mm512_add_ps(r##1, _mm512_maskz_loadu_ps(m1, cr + 16));                    \
            r##2 = _mm512_add_ps(r##2, _mm512_maskz_loadu_ps(m2, cr + 32));                    \
        }                                                                                      \
        _mm512_mask_storeu_ps(cr, m0, r##0);                                                   \
        _mm512_mask_storeu_ps(cr + 16, m1, r##1);                                              \
        _mm512_mask_storeu_ps(cr + 32, m2, r##2);                                              \
    }
#define TILE_FN(name, DECLS, STEPS, STORES)                                                    \
    __attribute__((target("avx512f"))) static void name(                                      \
        int k, const float *a, int lda, const float *b, float *c, int ldc,                    \
        __mmask16 m0, __mmask16 m1, __mmask16 m2, int accumulate)                             \
    {                                                                                          \
        DECLS                                                                                  \
        for (int p = 0; p < k; p++) {                                                          \
            const float *bp = b + (size_t)p * TILE_COLS, *ap = a + p;                         \
            const __m512 b0 = _mm512_load_ps(bp);                                              \
            const __m512 b1 = _mm512_load_ps(bp + 16);                                         \
            const __m512 b2 = _mm512_load_ps(bp + 32);                                         \
            STEPS                                                                              \
        }                                                                                      \
        STORES                                                                                 \
    }

TILE_FN(tile8,
        ACC_DECL(q) ACC_DECL(r) ACC_DECL(s) ACC_DECL(t) ACC_DECL(u) ACC_DECL(v) ACC_DECL(w)
            ACC_DECL(x),
        ACC_STEP(q, 0) ACC_STEP(r, 1) ACC_STEP(s, 2) ACC_STEP(t, 3) ACC_STEP(u, 4)
            ACC_STEP(v, 5) ACC_STEP(w, 6) ACC_STEP(x, 7),
        ACC_STORE(q, 0) ACC_STORE(r, 1) ACC_STORE(s, 2) ACC_STORE(t, 3) ACC_STORE(u, 4)
            ACC_STORE(v, 5) ACC_STORE(w, 6) ACC_STORE(x, 7))
TILE_FN(tile4, ACC_DECL(q) ACC_DECL(r) ACC_DECL(s) ACC_DECL(t),
        ACC_STEP(q, 0) ACC_STEP(r, 1) ACC_STEP(s, 2) ACC_STEP(t, 3),
        ACC_STORE(q, 0) ACC_STORE(r, 1) ACC_STORE(s, 2) ACC_STORE(t, 3))
TILE_FN(tile2, ACC_DECL(q) ACC_DECL(r), ACC_STEP(q, 0) ACC_STEP(r, 1),
        ACC_STORE(q, 0) ACC_STORE(r, 1))
TILE_FN(tile1, ACC_DECL(q), ACC_STEP(q, 0), ACC_STORE(q, 0))

static __mmask16 lanes(int n) { return n >= 16 ? 0xffff : n <= 0 ? 0 : (__mmask16)((1u << n) - 1); }

/* Column blocks first .. first + count - 1 (count <= GROUP_BLOCKS) of C,
 * over all rows, PACK_ROWS rows of B at a time: the blocks' part of each
 * row of B is one contiguous run (up to 1.5 KB), copied into a packed
 * panel per block, then each block's products read its panel from L1/L2.
 * Read in place, a block's 192 bytes of each row of B were 1.5-6 KB apart,
 * each on a page of its own, where the hardware prefetcher does not
 * follow: half the samples sat on the first FMA after those loads. */
__attribute__((target("avx512f"))) static void group(const elo_gemm *g, int first, int count)
{
    _Alignas(64) float pk[GROUP_BLOCKS * PACK_ROWS * TILE_COLS];
    __mmask16 mk[GROUP_BLOCKS][3];
    for (int i = 0; i < count; i++) {
        const int col = (first + i) * TILE_COLS;
        const int w = g->n - col < TILE_COLS ? g->n - col : TILE_COLS;
        mk[i][0] = lanes(w), mk[i][1] = lanes(w - 16), mk[i][2] = lanes(w - 32);
    }
    const float *b = (const float *)g->b + (size_t)first * TILE_COLS;
    for (int k0 = 0; k0 < g->k; k0 += PACK_ROWS) {
        const int kc = g->k - k0 < PACK_ROWS ? g->k - k0 : PACK_ROWS;
        for (int p = 0; p < kc; p++) {
            const float *bp = b + (size_t)(k0 + p) * g->ldb;
            for (int i = 0; i < count; i++) {
                float *dst = pk + ((size_t)i * PACK_ROWS + p) * TILE_COLS;
                const float *src = bp + i * TILE_COLS;
                _mm512_store_ps(dst, _mm512_maskz_loadu_ps(mk[i][0], src));
                _mm512_store_ps(dst + 16, _mm512_maskz_loadu_ps(mk[i][1], src + 16));
                _mm512_store_ps(dst + 32, _mm512_maskz_loadu_ps(mk[i][2], src + 32));
            }
        }
        const int accumulate = k0 > 0 || g->beta != 0.0f;
        const float *ak = (const float *)g->a + k0;
        /* the next rows of B are fetched into L2 while these products run
         * (the packing loop then finds them there): a share of the rows
         * after each column block */
        const int next = g->k - k0 - kc < PACK_ROWS ? g->k - k0 - kc : PACK_ROWS;
        const int share = (next + count - 1) / count;
        const size_t run = (size_t)count * TILE_COLS;
        for (int i = 0; i < count; i++) {
            for (int p = i * share; p < next && p < (i + 1) * share; p++) {
                const char *bp = (const char *)(b + (size_t)(k0 + kc + p) * g->ldb);
                for (size_t off = 0; off < run * sizeof(float); off += 64)
                    _mm_prefetch(bp + off, _MM_HINT_T1);
            }
            const float *panel = pk + (size_t)i * PACK_ROWS * TILE_COLS;
            float *c = (float *)g->c + (size_t)(first + i) * TILE_COLS;
            const __mmask16 m0 = mk[i][0], m1 = mk[i][1], m2 = mk[i][2];
            int r = 0;
#define RUN(fn, R)                                                                             \
    for (; r + (R) <= g->m; r += (R))                                                          \
        fn(kc, ak + (size_t)r * g->lda, g->lda, panel, c + (size_t)r * g->ldc, g->ldc, m0, m1,   \
           m2, accumulate);
            RUN(tile8, 8)
            RUN(tile4, 4)
            RUN(tile2, 2)
            RUN(tile1, 1)
#undef RUN
        }
    }
}
#endif

static int short_enabled(void)
{
#ifdef ELO_SHORT_GEMM
    static int on = -1;
    if (on < 0) {
        const char *e = getenv("ELOHIM_SHORT_GEMM"); /* A/B: 0 keeps OpenBLAS */
        __builtin_cpu_init();
        on = __builtin_cpu_supports("avx512f") && !(e && !strcmp(e, "0"));
    }
    return on;
#else
    return 0;
#endif
}

int elo__gemm_short_ok(const elo_gemm *g)
{
    return short_enabled() && g->in_type == ELO_DTYPE_F32 && g->out_type == ELO_DTYPE_F32 &&
           g->batch <= 1 && !g->trans_a && !g->trans_b && g->m > 0 &&
           g->m <= ELO_GEMM_SHORT_MAX_M && g->n > 0 && g->k > 0 && g->alpha == 1.0f &&
           (g->beta == 0.0f || g->beta == 1.0f);
}

int elo__gemm_short_blocks(const elo_gemm *g)
{
    return (g->n + TILE_COLS - 1) / TILE_COLS;
}

void elo__gemm_short_run(const elo_gemm *g, int first, int count)
{
#ifdef ELO_SHORT_GEMM
    for (int i = first; i < first + count; i += GROUP_BLOCKS)
        group(g, i, first + count - i < GROUP_BLOCKS ? first + count - i : GROUP_BLOCKS);
#else
    (void)g, (void)first, (void)count;
#endif
}
