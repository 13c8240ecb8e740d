/* blas.c - OpenBLAS, opened with dlopen on first use, with its CPU kernels
 * chosen from the CPU's features.
 *
 * Why not link it: OpenBLAS picks its kernels in a library constructor, by
 * the CPU's family and model numbers, before main() runs. On a virtual CPU
 * whose model it does not know (the 2-core Sapphire Rapids VMs we develop
 * on report a bare "Intel(R) Xeon(R) Processor") it falls back to its
 * generic Prescott kernel: 63 GFLOP/s of f32 GEMM where the AVX-512 kernel
 * reaches 285. Loading it ourselves lets us set OPENBLAS_CORETYPE from the
 * instruction sets the CPU reports (which is all a kernel needs) before the
 * constructor runs. A user's own OPENBLAS_CORETYPE is left alone. It also
 * keeps OpenBLAS's start-up out of commands that never multiply. */
#include "backend-impl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*sgemm_fn)(int order, int ta, int tb, int m, int n, int k, float alpha,
                         const float *a, int lda, const float *b, int ldb, float beta, float *c,
                         int ldc);
typedef char *(*str_fn)(void);

static struct {
    pthread_once_t once;
    void *lib;
    sgemm_fn sgemm;
    str_fn config, corename;
    const char *forced; /* the core type we set, or NULL */
    char err[256];
} blas = {.once = PTHREAD_ONCE_INIT};

/* OpenBLAS's kernel family for the best instruction set this CPU has. */
static const char *core_for_cpu(void)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512cd"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return __builtin_cpu_is("amd") ? "Zen" : "Haswell"; /* Zen: Haswell kernels, Zen blocking */
    if (__builtin_cpu_supports("avx"))
        return "Sandybridge";
#endif
    return NULL;
}

/* setenv() is not safe while other threads may read the environment, so
 * programs call this first thing in main() (elo_backend_preinit); a
 * library user who does not is covered by load(), which calls it too. */
static pthread_once_t prepare_once = PTHREAD_ONCE_INIT;

static void prepare(void)
{
    if (!getenv("OPENBLAS_CORETYPE")) {
        blas.forced = core_for_cpu();
        if (blas.forced)
            setenv("OPENBLAS_CORETYPE", blas.forced, 0);
    }
}

void elo_backend_preinit(void) { pthread_once(&prepare_once, prepare); }

const char *elo_backend_forced_env(void) { return blas.forced ? "OPENBLAS_CORETYPE" : NULL; }

static void load(void)
{
    elo_backend_preinit();
    static const char *names[] = {"libopenblas.so.0", "libopenblas.so",
                                  "libopenblasp.so.0", "libopenblaso.so.0"};
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !blas.lib; i++)
        blas.lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!blas.lib) {
        snprintf(blas.err, sizeof blas.err,
                 "cannot load OpenBLAS (libopenblas.so.0): %s; install it with "
                 "scripts/install-deps.sh (Debian: libopenblas0)", dlerror());
        return;
    }
    blas.sgemm = (sgemm_fn)dlsym(blas.lib, "cblas_sgemm");
    blas.config = (str_fn)dlsym(blas.lib, "openblas_get_config");
    blas.corename = (str_fn)dlsym(blas.lib, "openblas_get_corename");
    if (!blas.sgemm)
        snprintf(blas.err, sizeof blas.err, "the OpenBLAS library lacks cblas_sgemm");
    /* Our process pool splits the GEMMs (backend-cpu.c); OpenBLAS's own
     * threads would only compete with it. */
    void (*set_threads)(int) = (void (*)(int))dlsym(blas.lib, "openblas_set_num_threads");
    if (set_threads)
        set_threads(1);
}

int elo__blas_load(void)
{
    pthread_once(&blas.once, load);
    if (!blas.sgemm)
        return elo_seterr(ELO_UNSUPPORTED, "%s", blas.err);
    return ELO_OK;
}

int elo__blas_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                    int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    int rc = elo__blas_load();
    if (rc < 0)
        return rc;
    /* CBLAS enums: RowMajor 101, NoTrans 111, Trans 112. */
    blas.sgemm(101, trans_a ? 112 : 111, trans_b ? 112 : 111, m, n, k, alpha, a, lda, b, ldb,
               beta, c, ldc);
    return ELO_OK;
}

void elo__blas_describe(char *out, size_t cap)
{
    if (elo__blas_load() < 0) {
        snprintf(out, cap, "unavailable (%s)", blas.err);
        return;
    }
    const char *cfg = blas.config ? blas.config() : "OpenBLAS";
    const char *core = blas.corename ? blas.corename() : "?";
    /* The configuration string names the build target (for a DYNAMIC_ARCH
     * build, its baseline), not the kernels in use: say those too. */
    snprintf(out, cap, "%s; kernels %s%s", cfg, core,
             blas.forced ? " (chosen from CPUID)" : "");
}
