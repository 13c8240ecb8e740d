/* test-backend.c - device parsing, auto choice, CPU GEMM against a naive
 * reference, and the "no GPU" path being an error, never a crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "backend/backend-impl.h"
#include "elohim/backend.h"
#include "elohim/core.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void test_parse(void **state)
{
    (void)state;
    elo_device_kind k;
    assert_int_equal(elo_device_parse("cpu", &k), ELO_OK);
    assert_int_equal(k, ELO_DEVICE_CPU);
    assert_int_equal(elo_device_parse("cuda", &k), ELO_OK);
    assert_int_equal(k, ELO_DEVICE_CUDA);
    assert_int_equal(elo_device_parse("auto", &k), ELO_OK);
    assert_int_equal(k, ELO_DEVICE_AUTO);
    assert_int_equal(elo_device_parse("tpu", &k), ELO_BADINPUT);
}

static void test_choose(void **state)
{
    (void)state;
    assert_int_equal(elo_backend_choose(ELO_DEVICE_CPU, ELO_OP_GEMM, 1e12), ELO_DEVICE_CPU);
    assert_int_equal(elo_backend_choose(ELO_DEVICE_AUTO, ELO_OP_GEMM, 1.0), ELO_DEVICE_CPU);
    elo_device_kind big = elo_backend_choose(ELO_DEVICE_AUTO, ELO_OP_GEMM, 1e15);
    assert_int_equal(big, elo_gpu_available() ? ELO_DEVICE_CUDA : ELO_DEVICE_CPU);
    setenv("ELOHIM_CROSSOVER_GEMM", "123", 1);
    assert_true(elo_backend_crossover(ELO_OP_GEMM) == 123.0);
    unsetenv("ELOHIM_CROSSOVER_GEMM");
}

static void test_cuda_absent_is_error(void **state)
{
    (void)state;
    elo_backend *b = NULL;
    if (elo_gpu_available())
        skip();
    assert_int_equal(elo_backend_get(ELO_DEVICE_CUDA, &b), ELO_NODEVICE);
    assert_null(b);
    assert_true(strlen(elo_errmsg()) > 0);
    assert_int_equal(elo_backend_get(ELO_DEVICE_AUTO, &b), ELO_OK);
    assert_int_equal(b->kind, ELO_DEVICE_CPU);
}

static void naive_gemm(int ta, int tb, int m, int n, int k, const float *a, int lda,
                       const float *b, int ldb, double *c)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int p = 0; p < k; p++) {
                double x = ta ? a[p * lda + i] : a[i * lda + p];
                double y = tb ? b[j * ldb + p] : b[p * ldb + j];
                s += x * y;
            }
            c[i * n + j] = s;
        }
}

static void check_gemm(elo_backend *be, int ta, int tb, int m, int n, int k)
{
    float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * k * n);
    float *c = malloc(sizeof(float) * m * n);
    double *ref = malloc(sizeof(double) * m * n);
    for (int i = 0; i < m * k; i++) a[i] = (float)(rand() / (double)RAND_MAX - 0.5);
    for (int i = 0; i < k * n; i++) b[i] = (float)(rand() / (double)RAND_MAX - 0.5);
    for (int i = 0; i < m * n; i++) c[i] = NAN;   /* poison: beta = 0 must overwrite */
    elo_gemm g = {.trans_a = ta, .trans_b = tb, .m = m, .n = n, .k = k, .alpha = 1, .beta = 0,
                  .a = a, .lda = ta ? m : k, .b = b, .ldb = tb ? k : n, .c = c, .ldc = n,
                  .in_type = ELO_DTYPE_F32, .out_type = ELO_DTYPE_F32};
    assert_int_equal(elo_backend_gemm(be, &g), ELO_OK);
    naive_gemm(ta, tb, m, n, k, a, g.lda, b, g.ldb, ref);
    for (int i = 0; i < m * n; i++)
        assert_true(fabs(c[i] - ref[i]) < 1e-4 * (1 + fabs(ref[i])));
    free(a); free(b); free(c); free(ref);
}

/* A strided batch (whole GEMMs per pool task), beta = 1 accumulating. */
static void check_batched(elo_backend *be)
{
    enum { B = 5, M = 96, N = 80, K = 112 };
    float *a = malloc(sizeof(float) * B * M * K), *b = malloc(sizeof(float) * B * K * N);
    float *c = malloc(sizeof(float) * B * M * N);
    double *ref = malloc(sizeof(double) * M * N);
    for (int i = 0; i < B * M * K; i++) a[i] = (float)(rand() / (double)RAND_MAX - 0.5);
    for (int i = 0; i < B * K * N; i++) b[i] = (float)(rand() / (double)RAND_MAX - 0.5);
    for (int i = 0; i < B * M * N; i++) c[i] = 1.0f;
    elo_gemm g = {.m = M, .n = N, .k = K, .alpha = 1, .beta = 1, .a = a, .lda = K, .b = b,
                  .ldb = N, .c = c, .ldc = N, .batch = B, .stride_a = M * K,
                  .stride_b = K * N, .stride_c = M * N, .in_type = ELO_DTYPE_F32,
                  .out_type = ELO_DTYPE_F32};
    assert_int_equal(elo_backend_gemm(be, &g), ELO_OK);
    for (int i = 0; i < B; i++) {
        naive_gemm(0, 0, M, N, K, a + i * M * K, K, b + i * K * N, N, ref);
        for (int j = 0; j < M * N; j++)
            assert_true(fabs(c[i * M * N + j] - (ref[j] + 1.0)) < 1e-4 * (1 + fabs(ref[j])));
    }
    free(a); free(b); free(c); free(ref);
}

static void test_cpu_gemm(void **state)
{
    (void)state;
    elo_backend *be = elo_backend_cpu();
    assert_string_equal(be->iface->name(be), "cpu");
    srand(7);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            check_gemm(be, ta, tb, 17, 23, 31);
            /* Large enough to be split over the pool: by rows of C, and by
             * columns when there are too few rows to share. */
            check_gemm(be, ta, tb, 301, 70, 128);
            check_gemm(be, ta, tb, 20, 701, 200);
        }
    check_batched(be);
    elo_gemm g = {.m = 1, .n = 1, .k = 1, .in_type = ELO_DTYPE_F16, .out_type = ELO_DTYPE_F32};
    assert_int_equal(elo_backend_gemm(be, &g), ELO_UNSUPPORTED);
}

/* The short-A kernel (gemm-short.c): every row tail (8, 4, 2, 1 rows),
 * partial column blocks, k across its packing steps, beta 0 and 1, padded
 * leading dimensions whose padding must stay untouched. */
static void test_cpu_gemm_short(void **state)
{
    (void)state;
    static const int ms[] = {1, 2, 3, 7, 8, 9, 15, 31, 32, 33, 64};
    static const int ns[] = {1, 15, 17, 48, 49, 100, 384, 401, 1152};
    static const int ks[] = {1, 3, 64, 65, 200, 384};
    srand(11);
    int used = 0;
    for (size_t mi = 0; mi < sizeof ms / sizeof *ms; mi++)
        for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++)
            for (size_t ki = 0; ki < sizeof ks / sizeof *ks; ki++) {
                const int m = ms[mi], n = ns[ni], k = ks[ki], beta = (int)((mi + ni + ki) % 2);
                const int lda = k + 3, ldb = n + 5, ldc = n + 7;
                float *a = malloc(sizeof(float) * m * lda), *b = malloc(sizeof(float) * k * ldb);
                float *c = malloc(sizeof(float) * m * ldc);
                double *ref = malloc(sizeof(double) * m * n);
                for (int i = 0; i < m * lda; i++) a[i] = (float)(rand() / (double)RAND_MAX - 0.5);
                for (int i = 0; i < k * ldb; i++) b[i] = (float)(rand() / (double)RAND_MAX - 0.5);
                for (int i = 0; i < m * ldc; i++)
                    c[i] = i % ldc >= n ? 1234.5f : beta ? (float)(i % 7) : NAN;
                elo_gemm g = {.m = m, .n = n, .k = k, .alpha = 1, .beta = (float)beta, .a = a,
                              .lda = lda, .b = b, .ldb = ldb, .c = c, .ldc = ldc,
                              .in_type = ELO_DTYPE_F32, .out_type = ELO_DTYPE_F32};
                used += elo__gemm_short_ok(&g);
                assert_int_equal(elo_backend_gemm(elo_backend_cpu(), &g), ELO_OK);
                naive_gemm(0, 0, m, n, k, a, lda, b, ldb, ref);
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < ldc; j++) {
                        float v = c[i * ldc + j];
                        if (j >= n) {
                            assert_true(v == 1234.5f);
                            continue;
                        }
                        double want = ref[i * n + j] + (beta ? (i * ldc + j) % 7 : 0);
                        if (!(fabs(v - want) < 1e-5 * (1 + k)))
                            fail_msg("m %d n %d k %d beta %d: C[%d][%d] = %g, want %g", m, n,
                                     k, beta, i, j, v, want);
                    }
                free(a); free(b); free(c); free(ref);
            }
    /* on an AVX-512 CPU every shape above went through the kernel */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    const char *off = getenv("ELOHIM_SHORT_GEMM");
    if (__builtin_cpu_supports("avx512f") && !(off && !strcmp(off, "0")))
        assert_int_equal(used, (int)(sizeof ms / sizeof *ms * sizeof ns / sizeof *ns *
                                     sizeof ks / sizeof *ks));
#else
    assert_int_equal(used, 0);
#endif
}

static void test_cpu_probe(void **state)
{
    (void)state;
    elo_cpu_info info;
    elo_cpu_probe(&info);
    assert_true(info.cores >= 1);
    assert_true(strlen(info.model) > 0);
    assert_non_null(strstr(info.blas, "OpenBLAS"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse), cmocka_unit_test(test_choose),
        cmocka_unit_test(test_cuda_absent_is_error), cmocka_unit_test(test_cpu_gemm),
        cmocka_unit_test(test_cpu_gemm_short), cmocka_unit_test(test_cpu_probe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
