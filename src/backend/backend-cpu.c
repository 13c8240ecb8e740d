/* backend-cpu.c - the CPU device: host memory, OpenBLAS GEMM, and the
 * CPU description for `elohim doctor`. */
#include "backend-impl.h"

#include <cblas.h>
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

static int cpu_gemm(elo_backend *b, const elo_gemm *g)
{
    (void)b;
    if (g->in_type != ELO_DTYPE_F32 || g->out_type != ELO_DTYPE_F32)
        return elo_seterr(ELO_UNSUPPORTED, "the CPU GEMM takes f32 only");
    int batch = g->batch > 1 ? g->batch : 1;
    for (int i = 0; i < batch; i++) {
        const float *a = (const float *)g->a + (int64_t)i * g->stride_a;
        const float *bm = (const float *)g->b + (int64_t)i * g->stride_b;
        float *c = (float *)g->c + (int64_t)i * g->stride_c;
        cblas_sgemm(CblasRowMajor, g->trans_a ? CblasTrans : CblasNoTrans,
                    g->trans_b ? CblasTrans : CblasNoTrans, g->m, g->n, g->k,
                    g->alpha, a, g->lda, bm, g->ldb, g->beta, c, g->ldc);
    }
    return ELO_OK;
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
    snprintf(info->blas, sizeof info->blas, "%s", openblas_get_config());
}
