/* bench-cpu-rates.c - one core's throughput for the dot-product instructions
 * a lower-precision CPU GEMM would be built on, against the f32 FMA the
 * encoder uses: 24 independent accumulator chains each, so latency hides
 * and the figure is the issue rate. Prints instructions/s and the
 * arithmetic rate (a multiply-add counts 2):
 *   vfmadd231ps zmm   16 f32 multiply-adds
 *   vdpbf16ps zmm     32 bf16 products summed in pairs into 16 f32
 *   vpdpbusd zmm      64 u8 x s8 products summed in fours into 16 i32
 * On the 2-core Sapphire Rapids VM (2026-11-30), a core: FMA 4.9 G/s (157
 * GFLOP/s), vdpbf16ps 1.2 G/s (77 GFLOP/s: half the f32 rate, so a bf16
 * GEMM cannot beat the f32 one here), vpdpbusd 5.2 G/s (670 GOP/s).
 */
#include <stdio.h>
#include <time.h>

#if !defined(__x86_64__) || !(defined(__GNUC__) || defined(__clang__))
int main(void)
{
    printf("x86-64 (GCC or Clang) only\n");
    return 0;
}
#else
#include <immintrin.h>

#define ITERS 50000000L
#define CHAINS 12 /* independent accumulators: latency 4-5 x 2 ports */

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void report(const char *what, double sec, double ops_per_instr)
{
    double instr = (double)ITERS * CHAINS;
    printf("%-12s %6.2f G instructions/s  %7.1f G ops/s\n", what, instr / sec / 1e9,
           instr * ops_per_instr / sec / 1e9);
}

/* CHAINS accumulators named one by one (arrays of vectors go to the
 * stack), each updated by OP(acc) every iteration; the empty asm keeps
 * them live and in registers. */
#define RATE_LOOP(T, INIT, OP)                                                                 \
    T c0 = INIT(0), c1 = INIT(1), c2 = INIT(2), c3 = INIT(3), c4 = INIT(4), c5 = INIT(5);       \
    T c6 = INIT(6), c7 = INIT(7), c8 = INIT(8), c9 = INIT(9), c10 = INIT(10), c11 = INIT(11);   \
    for (long n = 0; n < ITERS; n++) {                                                         \
        c0 = OP(c0); c1 = OP(c1); c2 = OP(c2); c3 = OP(c3); c4 = OP(c4); c5 = OP(c5);          \
        c6 = OP(c6); c7 = OP(c7); c8 = OP(c8); c9 = OP(c9); c10 = OP(c10); c11 = OP(c11);      \
        __asm__ volatile("" : "+v"(c0), "+v"(c1), "+v"(c2), "+v"(c3), "+v"(c4), "+v"(c5),      \
                         "+v"(c6), "+v"(c7), "+v"(c8), "+v"(c9), "+v"(c10), "+v"(c11));        \
    }

#define F32_INIT(i) _mm512_set1_ps((float)(i))
#define I32_INIT(i) _mm512_set1_epi32(i)

__attribute__((target("avx512f"))) static float fma_rate(void)
{
    const __m512 x = _mm512_set1_ps(1e-9f), y = _mm512_set1_ps(1.0f);
    double t = now();
#define OP(c) _mm512_fmadd_ps(c, x, y)
    RATE_LOOP(__m512, F32_INIT, OP)
#undef OP
    report("fma f32", now() - t, 32);
    return _mm512_reduce_add_ps(_mm512_add_ps(c0, c11));
}

__attribute__((target("avx512f,avx512bf16"))) static float bf16_rate(void)
{
    const __m512bh x = (__m512bh)_mm512_set1_epi32(0x3f803f80), y = x;
    double t = now();
#define OP(c) _mm512_dpbf16_ps(c, x, y)
    RATE_LOOP(__m512, F32_INIT, OP)
#undef OP
    report("dpbf16", now() - t, 64);
    return _mm512_reduce_add_ps(_mm512_add_ps(c0, c11));
}

__attribute__((target("avx512f,avx512vnni"))) static int vnni_rate(void)
{
    const __m512i x = _mm512_set1_epi8(1), y = _mm512_set1_epi8(1);
    double t = now();
#define OP(c) _mm512_dpbusd_epi32(c, x, y)
    RATE_LOOP(__m512i, I32_INIT, OP)
#undef OP
    report("vpdpbusd", now() - t, 128);
    return _mm512_reduce_add_epi32(_mm512_add_epi32(c0, c11));
}

int main(void)
{
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f")) {
        printf("no AVX-512F on this CPU\n");
        return 0;
    }
    float s = fma_rate();
    if (__builtin_cpu_supports("avx512bf16"))
        s += bf16_rate();
    else
        printf("dpbf16       (no AVX512-BF16)\n");
    if (__builtin_cpu_supports("avx512vnni"))
        s += (float)vnni_rate();
    else
        printf("vpdpbusd     (no AVX512-VNNI)\n");
    return s == 12345.0f; /* keeps the results live */
}
#endif
