/* backend-cpu.c - the CPU device: host memory, OpenBLAS GEMM (blas.c), and the
 * CPU description for `elohim doctor`. */
#include "backend-impl.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static const char *cpu_name(elo_backend *b) { (void)b; return "cpu"; }

static int cpu_alloc(elo_backend *b, size_t bytes, void **out)
{
    (void)b;
    *out = elo_aligned_alloc(64, bytes);
    return *out ? ELO_OK : elo_seterr(ELO_NOMEM, "out of memory allocating %zu bytes", bytes);
}

static void cpu_free(elo_backend *b, void *ptr) { (void)b; elo_free(ptr); }

static int cpu_copy(elo_backend *b, void *dst, const void *src, size_t n)
{
    (void)b;
    memcpy(dst, src, n);
    return ELO_OK;
}

static int cpu_memset(elo_backend *b, void *dst, int value, size_t n)
{
    (void)b;
    memset(dst, value, n);
    return ELO_OK;
}

/* One GEMM split over the process pool: OpenBLAS runs single-threaded
 * (blas.c), so the pool's threads are the only ones computing and none of
 * OpenBLAS's spin in sched_yield while the pool runs the element-wise
 * passes between GEMMs (17 % of an encoder batch's CPU time when both
 * pools existed). Tasks are whole GEMMs of a batch, or row blocks of one
 * GEMM, or column blocks when it has too few rows to share. */
typedef struct {
    const elo_gemm *g;
    int parts;      /* blocks per GEMM */
    int split_rows; /* blocks are rows of C (else columns) */
    int chunk;      /* rows or columns per block */
    atomic_int failed;
} gemm_job;

#define GEMM_PARALLEL_MIN_FLOPS (4.0 * 1024 * 1024)

static int gemm_block(const elo_gemm *g, int i, int r0, int r1, int c0, int c1)
{
    const float *a = (const float *)g->a + (int64_t)i * g->stride_a;
    const float *bm = (const float *)g->b + (int64_t)i * g->stride_b;
    float *c = (float *)g->c + (int64_t)i * g->stride_c;
    /* Row-major: op(A) row r is A row r (or A column r when transposed);
     * op(B) column j is B column j (or B row j when transposed). */
    a += g->trans_a ? (int64_t)r0 : (int64_t)r0 * g->lda;
    bm += g->trans_b ? (int64_t)c0 * g->ldb : (int64_t)c0;
    c += (int64_t)r0 * g->ldc + c0;
    return elo__blas_sgemm(g->trans_a, g->trans_b, r1 - r0, c1 - c0, g->k, g->alpha, a, g->lda,
                           bm, g->ldb, g->beta, c, g->ldc);
}

static void gemm_task(void *arg, int task, int thread)
{
    (void)thread;
    gemm_job *j = arg;
    const elo_gemm *g = j->g;
    int i = task / j->parts, p = task % j->parts;
    int lo = p * j->chunk, hi;
    int rc;
    if (j->split_rows) {
        hi = ELO_MIN(lo + j->chunk, g->m);
        rc = lo < hi ? gemm_block(g, i, lo, hi, 0, g->n) : ELO_OK;
    } else {
        hi = ELO_MIN(lo + j->chunk, g->n);
        rc = lo < hi ? gemm_block(g, i, 0, g->m, lo, hi) : ELO_OK;
    }
    if (rc < 0)
        atomic_store(&j->failed, rc);
}

/* A short-A GEMM (gemm-short.c) with its column blocks shared out. */
typedef struct {
    const elo_gemm *g;
    int blocks, per;
} short_job;

static void short_task(void *arg, int task, int thread)
{
    (void)thread;
    const short_job *j = arg;
    int first = task * j->per;
    elo__gemm_short_run(j->g, first, ELO_MIN(j->per, j->blocks - first));
}

static void short_gemm(const elo_gemm *g)
{
    elo_pool *pool = elo_pool_global();
    int threads = pool ? elo_pool_size(pool) : 1;
    short_job j = {.g = g, .blocks = elo__gemm_short_blocks(g)};
    if (threads <= 1 || 2.0 * g->m * g->n * g->k < GEMM_PARALLEL_MIN_FLOPS) {
        elo__gemm_short_run(g, 0, j.blocks);
        return;
    }
    /* two tasks a thread: blocks of unequal cost even out */
    int tasks = ELO_MIN(j.blocks, 2 * threads);
    j.per = (j.blocks + tasks - 1) / tasks;
    elo_pool_run(pool, short_task, &j, (j.blocks + j.per - 1) / j.per);
}

static int cpu_gemm(elo_backend *b, const elo_gemm *g)
{
    (void)b;
    if (g->in_type != ELO_DTYPE_F32 || g->out_type != ELO_DTYPE_F32)
        return elo_seterr(ELO_UNSUPPORTED, "the CPU GEMM takes f32 only");
    if (elo__gemm_short_ok(g)) {
        short_gemm(g);
        return ELO_OK;
    }
    int rc = elo__blas_load();
    if (rc < 0)
        return rc;
    int batch = g->batch > 1 ? g->batch : 1;
    if (g->m <= 0 || g->n <= 0)
        return ELO_OK;
    elo_pool *pool = elo_pool_global();
    int threads = pool ? elo_pool_size(pool) : 1;
    double flops = 2.0 * g->m * g->n * g->k * batch;
    if (threads <= 1 || flops < GEMM_PARALLEL_MIN_FLOPS) {
        for (int i = 0; i < batch; i++)
            if ((rc = gemm_block(g, i, 0, g->m, 0, g->n)) < 0)
                return rc;
        return ELO_OK;
    }
    gemm_job j = {.g = g, .parts = 1, .split_rows = 1, .chunk = g->m};
    atomic_init(&j.failed, 0);
    if (batch < threads) {
        /* Blocks of 16: whole micro-kernel tiles, aligned rows of C. */
        j.parts = threads;
        j.split_rows = g->m >= 32 * threads || g->m >= g->n;
        int len = j.split_rows ? g->m : g->n;
        j.chunk = ((len + j.parts - 1) / j.parts + 15) / 16 * 16;
        j.parts = (len + j.chunk - 1) / j.chunk;
    }
    elo_pool_run(pool, gemm_task, &j, batch * j.parts);
    return atomic_load(&j.failed);
}

static const struct elo_backend_iface cpu_iface = {
    .name = cpu_name,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .memset = cpu_memset,
    .gemm = cpu_gemm,
    .sync = NULL,
};

static elo_backend cpu_backend = {.iface = &cpu_iface, .kind = ELO_DEVICE_CPU, .ctx = NULL};

elo_backend *elo_backend_cpu(void) { return &cpu_backend; }

void elo_cpu_probe(elo_cpu_info *info)
{
    memset(info, 0, sizeof *info);
    info->cores = elo_cpu_count();
    snprintf(info->model, sizeof info->model, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f)) {
            if (!strncmp(line, "model name", 10)) {
                char *colon = strchr(line, ':');
                if (colon) {
                    colon += 2;
                    colon[strcspn(colon, "\n")] = '\0';
                    snprintf(info->model, sizeof info->model, "%s", colon);
                }
                break;
            }
        }
        fclose(f);
    }
    char *s = info->simd;
    size_t cap = sizeof info->simd;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    static const char *feats[] = {"sse4.2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl"};
    int present[7] = {
        __builtin_cpu_supports("sse4.2"), __builtin_cpu_supports("avx"),
        __builtin_cpu_supports("avx2"), __builtin_cpu_supports("fma"),
        __builtin_cpu_supports("avx512f"), __builtin_cpu_supports("avx512bw"),
        __builtin_cpu_supports("avx512vl")};
    for (int i = 0; i < 7; i++)
        if (present[i]) {
            size_t used = strlen(s);
            snprintf(s + used, cap - used, "%s%s", used ? " " : "", feats[i]);
        }
#elif defined(__aarch64__)
    snprintf(s, cap, "neon");
#endif
    if (!*s)
        snprintf(s, cap, "none");
    elo__blas_describe(info->blas, sizeof info->blas);
}
