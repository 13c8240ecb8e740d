/* test-vstore.c - the vector store: f16 conversion, the canonical score
 * (every SIMD kernel bit-identical to the scalar reference), exact top-k
 * against a brute-force oracle, ids, deletes, compaction, growth, crash
 * states, and corrupt/truncated/foreign files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "elohim/vstore.h"
#include "vstore/vstore-impl.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

static char tmpdir[256];

static int setup_dir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/elohim-test-vstore.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *tpath(const char *name)
{
    static char buf[4][400];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "%s/%s", tmpdir, name);
    unlink(buf[i]);
    return buf[i];
}

static uint64_t rng_state = 1;
static uint64_t rng(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static float frand(void) { return (float)(rng() >> 40) * (2.0f / 16777216.0f) - 1.0f; }

static float *random_vectors(size_t n, int dim)
{
    float *v = malloc(n * (size_t)dim * sizeof *v);
    for (size_t i = 0; i < n * (size_t)dim; i++)
        v[i] = frand();
    return v;
}

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

#if defined(__x86_64__)
/* The CPU's own conversions (F16C), as the oracle. */
__attribute__((target("f16c"))) static uint16_t hw_to_f16(float f)
{
    return (uint16_t)_cvtss_sh(f, 0);
}
__attribute__((target("f16c"))) static float hw_from_f16(uint16_t h)
{
    return _cvtsh_ss(h);
}
#endif

/* ---- f16 ------------------------------------------------------------------- */

static void test_f16(void **state)
{
    (void)state;
    assert_int_equal(elo_f32_to_f16(1.0f), 0x3c00);
    assert_int_equal(elo_f32_to_f16(-2.0f), 0xc000);
    assert_int_equal(elo_f32_to_f16(65504.0f), 0x7bff);
    assert_int_equal(elo_f32_to_f16(65520.0f), 0x7c00);          /* rounds up to Inf */
    assert_int_equal(elo_f32_to_f16(65519.0f), 0x7bff);
    assert_int_equal(elo_f32_to_f16(ldexpf(1, -24)), 0x0001);    /* smallest subnormal */
    assert_int_equal(elo_f32_to_f16(ldexpf(1, -25)), 0x0000);    /* tie to even: 0 */
    assert_int_equal(elo_f32_to_f16(ldexpf(3, -25)), 0x0002);    /* tie to even: 2 */
    assert_int_equal(elo_f32_to_f16(1.0f + ldexpf(1, -11)), 0x3c00); /* tie to even */
    assert_int_equal(elo_f32_to_f16(1.0f + ldexpf(3, -11)), 0x3c02);
    /* Every finite half survives the round trip. */
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7c00) == 0x7c00)
            continue;
        float f = elo_f16_to_f32((uint16_t)h);
        assert_int_equal(elo_f32_to_f16(f), h);
    }
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("f16c")) {
        for (int i = 0; i < 200000; i++) {
            float f = ldexpf(frand(), (int)(rng() % 40) - 28);
            uint16_t hw = hw_to_f16(f);
            assert_int_equal(elo_f32_to_f16(f), hw);
            assert_int_equal(bits(elo_f16_to_f32(hw)), bits(hw_from_f16(hw)));
        }
    }
#endif
}

/* ---- kernels ----------------------------------------------------------------- */

static void test_kernels_bit_identical(void **state)
{
    (void)state;
    const char *kernels[] = {"scalar", "avx2", "avx512"};
    int dims[] = {1, 2, 7, 15, 16, 17, 31, 33, 64, 100, 127, 384, 385, 1000};
    for (size_t di = 0; di < ELO_ARRAY_LEN(dims); di++) {
        int dim = dims[di];
        float *x = random_vectors(4, dim), *q = random_vectors(1, dim);
        uint16_t *xh = malloc((size_t)dim * 2);
        for (int i = 0; i < dim; i++)
            xh[i] = elo_f32_to_f16(x[i] * 3);
        for (int metric = 1; metric <= 2; metric++) {
            float ref32 = elo__vstore_score_ref(x, ELO_DTYPE_F32, q, dim, metric);
            float ref16 = elo__vstore_score_ref(xh, ELO_DTYPE_F16, q, dim, metric);
            /* The reference is the documented loop. */
            float acc[16] = {0};
            for (int i = 0; i < dim; i++) {
                float p = metric == 2 ? (x[i] - q[i]) * (x[i] - q[i]) : x[i] * q[i];
                acc[i % 16] += p;
            }
            for (int w = 8; w >= 1; w /= 2)
                for (int j = 0; j < w; j++)
                    acc[j] += acc[j + w];
            assert_int_equal(bits(ref32), bits(acc[0]));
            for (size_t k = 0; k < ELO_ARRAY_LEN(kernels); k++) {
                if (elo__vstore_force_kernel(kernels[k]) < 0)
                    continue;
                assert_int_equal(bits(elo__vstore_score_fast(x, ELO_DTYPE_F32, q, dim, metric)),
                                 bits(ref32));
                assert_int_equal(bits(elo__vstore_score_fast(xh, ELO_DTYPE_F16, q, dim, metric)),
                                 bits(ref16));
            }
        }
        elo__vstore_force_kernel(NULL);
        free(x);
        free(q);
        free(xh);
    }
    assert_int_equal(elo__vstore_force_kernel("no-such"), ELO_UNSUPPORTED);
    elo__vstore_force_kernel(NULL);
}

/* ---- brute-force oracle -------------------------------------------------------- */

typedef struct {
    float key;
    int64_t id;
    float score;
} ohit;

static int ohit_cmp(const void *a, const void *b)
{
    const ohit *x = a, *y = b;
    if (x->key != y->key)
        return x->key > y->key ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Scores every live row of `vs` with the scalar reference; checks that
 * search returns exactly the sorted prefix. */
static void check_search(elo_vstore *vs, const float *queries, int nq, int k)
{
    elo_vstore_info in;
    elo_vstore_get_info(vs, &in);
    int64_t *ids = malloc((size_t)nq * k * sizeof *ids);
    float *scores = malloc((size_t)nq * k * sizeof *scores);
    int got = elo_vstore_search(vs, NULL, queries, nq, in.dim, k, ids, scores);
    assert_true(got >= 0);
    assert_int_equal(got, (int)ELO_MIN((uint64_t)k, in.live_count));
    ohit *all = malloc((in.row_count + 1) * sizeof *all);
    float *q = malloc((size_t)in.dim * sizeof *q);
    for (int qi = 0; qi < nq; qi++) {
        memcpy(q, queries + (size_t)qi * in.dim, (size_t)in.dim * sizeof *q);
        if (in.metric == ELO_VSTORE_COSINE)
            assert_int_equal(elo__vstore_normalize(q, 1, in.dim, 0, "query"), ELO_OK);
        size_t n = 0;
        for (uint64_t r = 0; r < in.row_count; r++) {
            if (!elo__vstore_live(vs, r))
                continue;
            float s = elo__vstore_score_ref(vs->rows + r * vs->row_bytes, in.dtype, q, in.dim,
                                            in.metric == ELO_VSTORE_L2 ? 2 : 1);
            all[n++] = (ohit){in.metric == ELO_VSTORE_L2 ? -s : s, vs->ids[r], s};
        }
        assert_int_equal(n, in.live_count);
        qsort(all, n, sizeof *all, ohit_cmp);
        for (int i = 0; i < got; i++) {
            assert_int_equal(ids[(size_t)qi * k + i], all[i].id);
            assert_int_equal(bits(scores[(size_t)qi * k + i]), bits(all[i].score));
        }
    }
    free(all);
    free(q);
    free(ids);
    free(scores);
}

static void test_search_exact(void **state)
{
    (void)state;
    int dims[] = {7, 100, 384};
    for (int dt = 0; dt < 2; dt++)
        for (int metric = 0; metric < 3; metric++)
            for (size_t di = 0; di < ELO_ARRAY_LEN(dims); di++) {
                int dim = dims[di];
                const char *p = tpath("exact.vs");
                assert_int_equal(elo_vstore_create(p, dim, dt ? ELO_DTYPE_F16 : ELO_DTYPE_F32,
                                                   (elo_vstore_metric)metric, 0), ELO_OK);
                elo_vstore *vs;
                assert_int_equal(elo_vstore_open(p, 1, &vs), ELO_OK);
                size_t n = 3000 + (size_t)di * 1111;
                float *x = random_vectors(n, dim);
                /* Exact duplicates of row 5 at rows 10 and 11: ties by id. */
                memcpy(x + 10 * dim, x + 5 * dim, (size_t)dim * 4);
                memcpy(x + 11 * dim, x + 5 * dim, (size_t)dim * 4);
                assert_int_equal(elo_vstore_add(vs, x, n / 2, dim, NULL), ELO_OK);
                assert_int_equal(elo_vstore_add(vs, x + (n / 2) * dim, n - n / 2, dim, NULL), ELO_OK);
                int64_t del[] = {3, 17, 1000, (int64_t)n - 1};
                assert_int_equal(elo_vstore_delete(vs, del, 4), 4);
                float *q = random_vectors(40, dim);
                memcpy(q, x + 5 * dim, (size_t)dim * 4);   /* query 0 hits the tie */
                check_search(vs, q, 1, 10);
                check_search(vs, q, 40, 10);     /* two passes of queries */
                check_search(vs, q, 3, 1);
                check_search(vs, q, 2, 4096);    /* k > live rows */
                const char *kernels[] = {"scalar", "avx2"};
                for (int kk = 0; kk < 2; kk++)
                    if (elo__vstore_force_kernel(kernels[kk]) == ELO_OK)
                        check_search(vs, q, 9, 7);
                elo__vstore_force_kernel(NULL);
                if (metric == ELO_VSTORE_COSINE) {
                    int64_t ids[3];
                    float sc[3];
                    assert_int_equal(elo_vstore_search(vs, NULL, q, 1, dim, 3, ids, sc), 3);
                    assert_int_equal(ids[0], 5);
                    assert_int_equal(ids[1], 10);
                    assert_int_equal(ids[2], 11);
                }
                elo_vstore_free(vs);
                free(x);
                free(q);
            }
}

/* Near-ties: rows one ulp apart, so the order is decided by the last bits
 * of the canonical sums; the prefilters (bf16 where the CPU has it, f32
 * FMA) must not drop any row that the exact score would keep. Also with
 * the prefilter off: identical. */
static void test_prefilter_near_ties(void **state)
{
    (void)state;
    int dims[] = {384, 20, 1500};
    for (int di = 0; di < 3; di++)
        for (int metric = 0; metric < 3; metric++) {
            int dim = dims[di];
            const char *p = tpath("ties.vs");
            assert_int_equal(elo_vstore_create(p, dim, ELO_DTYPE_F32, (elo_vstore_metric)metric, 0),
                             ELO_OK);
            elo_vstore *vs;
            assert_int_equal(elo_vstore_open(p, 1, &vs), ELO_OK);
            size_t n = 6000;
            float *base = random_vectors(1, dim);
            float *x = malloc(n * (size_t)dim * sizeof *x);
            for (size_t r = 0; r < n; r++) {
                for (int i = 0; i < dim; i++)
                    x[r * dim + i] = base[i];
                int at = (int)(rng() % (uint64_t)dim);
                x[r * dim + at] = nextafterf(x[r * dim + at], (rng() & 1) ? 2.0f : -2.0f);
                if (r % 7 == 0)
                    x[r * dim + (at + 1) % dim] *= 1.0f + ldexpf(1, -20);
            }
            assert_int_equal(elo_vstore_add(vs, x, n, dim, NULL), ELO_OK);
            float *q = random_vectors(32, dim);
            for (int i = 0; i < dim; i++)       /* query 0: the base itself */
                q[i] = base[i];
            check_search(vs, q, 32, 10);
            check_search(vs, q, 16, 100);
            check_search(vs, q, 5, 1);
            setenv("ELOHIM_VSTORE_NO_BF16", "1", 1);      /* the f32 FMA prefilter */
            check_search(vs, q, 32, 10);
            check_search(vs, q, 13, 50);
            unsetenv("ELOHIM_VSTORE_NO_BF16");
            setenv("ELOHIM_VSTORE_NO_PREFILTER", "1", 1);
            check_search(vs, q, 32, 10);
            unsetenv("ELOHIM_VSTORE_NO_PREFILTER");
            elo_vstore_free(vs);
            free(base);
            free(x);
            free(q);
        }
}

static void test_errors_on_input(void **state)
{
    (void)state;
    const char *p = tpath("err.vs");
    assert_int_equal(elo_vstore_create(p, 4, ELO_DTYPE_F32, ELO_VSTORE_COSINE, 0), ELO_OK);
    assert_int_equal(elo_vstore_create(p, 4, ELO_DTYPE_F32, ELO_VSTORE_COSINE, 0), ELO_EXISTS);
    assert_int_equal(elo_vstore_create(tpath("x.vs"), 0, ELO_DTYPE_F32, ELO_VSTORE_COSINE, 0),
                     ELO_BADINPUT);
    elo_vstore *vs;
    assert_int_equal(elo_vstore_open(p, 1, &vs), ELO_OK);
    float good[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    float zero[4] = {0};
    float nan[8] = {1, 2, 3, 4, 1, NAN, 0, 0};
    float inf[4] = {1, INFINITY, 0, 0};
    assert_int_equal(elo_vstore_add(vs, zero, 1, 4, NULL), ELO_BADINPUT);
    assert_non_null(strstr(elo_errmsg(), "zero"));
    assert_int_equal(elo_vstore_add(vs, nan, 2, 4, NULL), ELO_BADINPUT);
    assert_non_null(strstr(elo_errmsg(), "vector 1 element 1 is NaN"));
    assert_int_equal(elo_vstore_add(vs, inf, 1, 4, NULL), ELO_BADINPUT);
    assert_int_equal(elo_vstore_add(vs, good, 1, 8, NULL), ELO_BADINPUT);  /* dim mismatch */
    assert_non_null(strstr(elo_errmsg(), "dimension mismatch"));
    int64_t dup[2] = {5, 5}, neg[2] = {1, -1}, ok[2] = {5, 9};
    assert_int_equal(elo_vstore_add(vs, good, 2, 4, dup), ELO_BADINPUT);
    assert_int_equal(elo_vstore_add(vs, good, 2, 4, neg), ELO_BADINPUT);
    elo_vstore_info in;
    elo_vstore_get_info(vs, &in);
    assert_int_equal(in.row_count, 0);   /* nothing was added by the failures */
    assert_int_equal(elo_vstore_add(vs, good, 2, 4, ok), ELO_OK);
    int64_t again[1] = {9};
    assert_int_equal(elo_vstore_add(vs, good, 1, 4, again), ELO_BADINPUT);
    assert_non_null(strstr(elo_errmsg(), "already in the store"));
    assert_int_equal(elo_vstore_add(vs, good, 1, 4, NULL), ELO_OK);   /* default id 10 */
    elo_vstore_get_info(vs, &in);
    assert_int_equal(in.next_id, 11);
    assert_int_equal(in.live_count, 3);

    int64_t ids[4];
    float sc[4];
    assert_int_equal(elo_vstore_search(vs, NULL, good, 1, 4, 0, ids, sc), ELO_BADINPUT);
    assert_int_equal(elo_vstore_search(vs, NULL, good, 1, 4, 4097, ids, sc), ELO_BADINPUT);
    assert_int_equal(elo_vstore_search(vs, NULL, good, 1, 3, 1, ids, sc), ELO_BADINPUT);
    assert_int_equal(elo_vstore_search(vs, NULL, zero, 1, 4, 1, ids, sc), ELO_BADINPUT);
    assert_int_equal(elo_vstore_search(vs, NULL, nan + 4, 1, 4, 1, ids, sc), ELO_BADINPUT);
    assert_int_equal(elo_vstore_search(vs, NULL, good, 1, 4, 4, ids, sc), 3);
    /* Cosine: the identical direction scores 1 (within rounding) and first. */
    assert_true(fabsf(sc[0] - 1.0f) < 1e-6f);

    int64_t missing[2] = {5, 77}, twice[2] = {5, 5};
    assert_int_equal(elo_vstore_delete(vs, missing, 2), ELO_NOTFOUND);
    assert_int_equal(elo_vstore_delete(vs, twice, 2), ELO_BADINPUT);
    elo_vstore_get_info(vs, &in);
    assert_int_equal(in.live_count, 3);
    assert_int_equal(elo_vstore_delete(vs, missing, 1), 1);
    assert_int_equal(elo_vstore_delete(vs, missing, 1), ELO_NOTFOUND);   /* already gone */
    assert_int_equal(elo_vstore_add(vs, good, 1, 4, missing), ELO_OK);    /* id reusable */
    elo_vstore_free(vs);

    /* Read-only handles refuse writes; a second writer is refused while one holds it. */
    assert_int_equal(elo_vstore_open(p, 0, &vs), ELO_OK);
    assert_int_equal(elo_vstore_add(vs, good, 1, 4, NULL), ELO_PERM);
    elo_vstore_free(vs);
}

static void test_f16_overflow(void **state)
{
    (void)state;
    const char *p = tpath("f16.vs");
    assert_int_equal(elo_vstore_create(p, 2, ELO_DTYPE_F16, ELO_VSTORE_IP, 0), ELO_OK);
    elo_vstore *vs;
    assert_int_equal(elo_vstore_open(p, 1, &vs), ELO_OK);
    float big[2] = {70000, 1};
    assert_int_equal(elo_vstore_add(vs, big, 1, 2, NULL), ELO_RANGE);
    float fine[2] = {0.5f, 1};
    assert_int_equal(elo_vstore_add(vs, fine, 1, 2, NULL), ELO_OK);
    elo_vstore_free(vs);
}

/* ---- persistence, growth, compaction ------------------------------------------------ */

static void test_persist_grow_compact(void **state)
{
    (void)state;
    const char *p = tpath("grow.vs");
    int dim = 33;
    assert_int_equal(elo_vstore_create(p, dim, ELO_DTYPE_F32, ELO_VSTORE_L2, 4), ELO_OK);
    float *x = random_vectors(3000, dim);
    elo_vstore *vs;
    for (int b = 0; b < 3; b++) {
        assert_int_equal(elo_vstore_open(p, 1, &vs), ELO_OK);
        assert_int_equal(elo_vstore_add(vs, x + (size_t)b * 1000 * dim, 1000, dim, NULL), ELO_OK);
        elo_vstore_free(vs);
    }
    assert_int_equal(elo_vstore_open(p, 1, &vs), ELO_OK);
    elo_vstore_info in;
    elo_vstore_get_info(vs, &in);
    assert_int_equal(in.row_count, 3000);
    assert_true(in.capacity >= 3000);
    assert_int_equal(in.next_id, 3000);
    for (int r = 0; r < 3000; r += 97)
        assert_memory_equal(vs->rows + (size_t)r * vs->row_bytes, x + (size_t)r * dim, vs->row_bytes);
    int64_t del[100];
    for (int i = 0; i < 100; i++)
        del[i] = i * 30;
    assert_int_equal(elo_vstore_delete(vs, del, 100), 100);
    float *q = random_vectors(5, dim);
    int64_t before_ids[5 * 20], after_ids[5 * 20];
    float before_sc[5 * 20], after_sc[5 * 20];
    assert_int_equal(elo_vstore_search(vs, NULL, q, 5, dim, 20, before_ids, before_sc), 20);
    elo_vstore_free(vs);

    assert_int_equal(elo_vstore_compact(p), 100);
    assert_int_equal(elo_vstore_open(p, 0, &vs), ELO_OK);
    elo_vstore_get_info(vs, &in);
    assert_int_equal(in.row_count, 2900);
    assert_int_equal(in.live_count, 2900);
    assert_int_equal(in.capacity, 2900);
    assert_int_equal(in.next_id, 3000);
    assert_int_equal(elo_vstore_search(vs, NULL, q, 5, dim, 20, after_ids, after_sc), 20);
    assert_memory_equal(before_ids, after_ids, sizeof before_ids);
    assert_memory_equal(before_sc, after_sc, sizeof before_sc);
    check_search(vs, q, 5, 50);
    elo_vstore_free(vs);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal((uint64_t)st.st_size, in.file_bytes);
    free(x);
    free(q);
}

/* A long-lived read-only handle follows what a writer commits: appends in
 * place, deletions, growth and compaction (new files renamed over it). */
static int64_t reader_ids(elo_vstore *r, const float *q, int dim, int64_t *ids)
{
    float sc[64];
    return elo_vstore_search(r, NULL, q, 1, dim, 64, ids, sc);
}

static void test_reader_follows_writer(void **state)
{
    (void)state;
    const char *p = tpath("follow.vs");
    int dim = 16;
    assert_int_equal(elo_vstore_create(p, dim, ELO_DTYPE_F32, ELO_VSTORE_IP, 8), ELO_OK);
    float *x = random_vectors(40, dim), *q = random_vectors(1, dim);
    elo_vstore *w, *r;
    int64_t ids[64];
    assert_int_equal(elo_vstore_open(p, 1, &w), ELO_OK);
    assert_int_equal(elo_vstore_add(w, x, 5, dim, NULL), ELO_OK);
    assert_int_equal(elo_vstore_open(p, 0, &r), ELO_OK);
    assert_int_equal(elo_vstore_refresh(r), 0);
    assert_int_equal(reader_ids(r, q, dim, ids), 5);
    assert_int_equal(elo_vstore_add(w, x + 5 * dim, 3, dim, NULL), ELO_OK);   /* in place */
    assert_int_equal(reader_ids(r, q, dim, ids), 8);
    assert_int_equal(elo_vstore_refresh(r), 0);
    int64_t gone = 2;
    assert_int_equal(elo_vstore_delete(w, &gone, 1), 1);
    assert_int_equal(reader_ids(r, q, dim, ids), 7);
    for (int i = 0; i < 7; i++)
        assert_true(ids[i] != 2);
    assert_int_equal(elo_vstore_add(w, x + 8 * dim, 20, dim, NULL), ELO_OK);  /* grows */
    assert_int_equal(reader_ids(r, q, dim, ids), 27);
    elo_vstore_free(w);
    assert_int_equal(elo_vstore_compact(p), 1);
    assert_int_equal(elo_vstore_refresh(r), 1);
    elo_vstore_info in;
    elo_vstore_get_info(r, &in);
    assert_int_equal(in.row_count, 27);
    assert_int_equal(in.capacity, 27);
    elo_vstore *fresh;
    int64_t want[64];
    assert_int_equal(elo_vstore_open(p, 0, &fresh), ELO_OK);
    assert_int_equal(reader_ids(fresh, q, dim, want), 27);
    assert_int_equal(reader_ids(r, q, dim, ids), 27);
    assert_memory_equal(ids, want, 27 * sizeof ids[0]);
    elo_vstore_free(fresh);
    /* The file removed: an error, and the handle keeps its last state. */
    assert_int_equal(unlink(p), 0);
    assert_int_equal(elo_vstore_refresh(r), ELO_NOTFOUND);
    elo_vstore_get_info(r, &in);
    assert_int_equal(in.live_count, 27);
    elo_vstore_free(r);
    free(x);
    free(q);
}

/* ---- crash states and damaged files ----------------------------------------------- */

static void read_all(const char *p, uint8_t **data, size_t *size)
{
    char *d;
    assert_int_equal(elo_read_file(p, 1 << 30, &d, size), ELO_OK);
    *data = (uint8_t *)d;
}

static void write_all(const char *p, const void *data, size_t size)
{
    unlink(p);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, size), (ssize_t)size);
    close(fd);
}

static const char *make_small_store(void)
{
    const char *p = tpath("small.vs");
    assert_int_equal(elo_vstore_create(p, 8, ELO_DTYPE_F32, ELO_VSTORE_IP, 16), ELO_OK);
    elo_vstore *vs;
    assert_int_equal(elo_vstore_open(p, 1, &vs), ELO_OK);
    float *x = random_vectors(10, 8);
    assert_int_equal(elo_vstore_add(vs, x, 10, 8, NULL), ELO_OK);
    free(x);
    elo_vstore_free(vs);
    return p;
}

static void test_crash_states(void **state)
{
    (void)state;
    const char *p = make_small_store();
    elo_vstore *vs;
    assert_int_equal(elo_vstore_open(p, 0, &vs), ELO_OK);
    elo__vstore_header h = vs->h;
    int slot = vs->slot;
    elo_vstore_free(vs);

    /* 1. An append whose rows were written but whose header was not: the
     * extra rows are invisible. */
    int fd = open(p, O_RDWR);
    float junk[8] = {100, 100, 100, 100, 100, 100, 100, 100};
    int64_t jid = 99;
    assert_int_equal(elo_pwrite_all(fd, junk, 32, h.rows_offset + 10 * 32), ELO_OK);
    assert_int_equal(elo_pwrite_all(fd, &jid, 8, h.ids_offset + 10 * 8), ELO_OK);
    close(fd);
    assert_int_equal(elo_vstore_open(p, 0, &vs), ELO_OK);
    elo_vstore_info in;
    elo_vstore_get_info(vs, &in);
    assert_int_equal(in.row_count, 10);
    int64_t ids[20];
    float sc[20];
    assert_int_equal(elo_vstore_search(vs, NULL, junk, 1, 8, 20, ids, sc), 10);
    for (int i = 0; i < 10; i++)
        assert_true(ids[i] != 99);
    elo_vstore_free(vs);

    /* 2. A torn header write (the newer slot's checksum is bad): the older
     * slot's state is used. */
    uint8_t *data;
    size_t size;
    read_all(p, &data, &size);
    size_t cur = slot ? ELO__VSTORE_SLOT_B : 0, old = slot ? 0 : ELO__VSTORE_SLOT_B;
    elo__vstore_header older;
    memcpy(&older, data + old, sizeof older);
    data[cur + 40] ^= 0xff;
    write_all(p, data, size);
    assert_int_equal(elo_vstore_open(p, 0, &vs), ELO_OK);
    assert_int_equal(vs->h.seq, older.seq);
    assert_int_equal(vs->h.row_count, older.row_count);
    elo_vstore_free(vs);
    data[cur + 40] ^= 0xff;
    write_all(p, data, size);

    /* 3. A deletion interrupted after its stamps: the pending header (seq
     * s+1) hides stamps s+2; a writable open clears them. */
    elo__vstore_header pend = h;
    pend.seq = h.seq + 1;
    pend.flags = ELO__VSTORE_FLAG_DELETE_PENDING;
    pend.crc = elo__vstore_header_crc(&pend);
    memcpy(data + old, &pend, sizeof pend);
    uint64_t stamp = h.seq + 2;
    memcpy(data + h.stamps_offset + 3 * 8, &stamp, 8);
    write_all(p, data, size);
    assert_int_equal(elo_vstore_open(p, 0, &vs), ELO_OK);
    assert_true(elo__vstore_live(vs, 3));
    elo_vstore_free(vs);
    assert_int_equal(elo_vstore_open(p, 1, &vs), ELO_OK);
    assert_int_equal(vs->h.flags, 0);
    assert_int_equal(vs->stamps[3], 0);
    assert_int_equal(vs->h.live_count, 10);
    int64_t three = 3;
    assert_int_equal(elo_vstore_delete(vs, &three, 1), 1);
    assert_false(elo__vstore_live(vs, 3));
    elo_vstore_free(vs);
    free(data);
}

static void expect_open_fails(const char *p, const void *data, size_t size, int want,
                              const char *msg)
{
    write_all(p, data, size);
    elo_vstore *vs = (elo_vstore *)1;
    assert_int_equal(elo_vstore_open(p, 1, &vs), want);
    assert_null(vs);
    if (msg && !strstr(elo_errmsg(), msg))
        fail_msg("message '%s' lacks '%s'", elo_errmsg(), msg);
    /* Nothing was written. */
    uint8_t *after;
    size_t after_size;
    read_all(p, &after, &after_size);
    assert_int_equal(after_size, size);
    assert_memory_equal(after, data, size);
    free(after);
    assert_int_equal(elo_vstore_open_buffer(data, size, &vs), want);
}

static void test_damaged_files(void **state)
{
    (void)state;
    const char *p = make_small_store();
    uint8_t *data;
    size_t size;
    read_all(p, &data, &size);
    const char *q = tpath("damaged.vs");

    /* Truncated anywhere: a clear error. */
    size_t cuts[] = {0, 3, 8, 100, 4095, 4096, 4500, size - 8, size - 1};
    assert_true(size > 4500);
    for (size_t i = 0; i < ELO_ARRAY_LEN(cuts); i++)
        expect_open_fails(q, data, cuts[i], ELO_CORRUPT, cuts[i] > 8 ? "truncated" : NULL);
    /* Foreign. */
    uint8_t *foreign = calloc(1, 8192);
    memcpy(foreign, "\x89PNG\r\n\x1a\n", 8);
    expect_open_fails(q, foreign, 8192, ELO_CORRUPT, "not a vector store");
    /* A flipped bit in both slots. */
    uint8_t *bad = malloc(size);
    memcpy(bad, data, size);
    bad[20] ^= 1;
    bad[ELO__VSTORE_SLOT_B + 20] ^= 1;
    expect_open_fails(q, bad, size, ELO_CORRUPT, "checksum");
    /* A newer version (valid checksum): unsupported. Geometry lies: corrupt. */
    for (int s = 0; s < 2; s++) {
        memcpy(bad, data, size);
        elo__vstore_header h;
        memcpy(&h, bad + s * ELO__VSTORE_SLOT_B, sizeof h);
        if (memcmp(h.magic, ELO__VSTORE_MAGIC, 8))
            continue;
        elo__vstore_header v2 = h;
        v2.version = 2;
        v2.crc = elo__vstore_header_crc(&v2);
        memcpy(bad + s * ELO__VSTORE_SLOT_B, &v2, sizeof v2);
        memset(bad + (1 - s) * ELO__VSTORE_SLOT_B, 0, 128);
        expect_open_fails(q, bad, size, ELO_UNSUPPORTED, "version 2");
        elo__vstore_header g = h;
        g.capacity = 1u << 30;
        g.crc = elo__vstore_header_crc(&g);
        memcpy(bad + s * ELO__VSTORE_SLOT_B, &g, sizeof g);
        expect_open_fails(q, bad, size, ELO_CORRUPT, NULL);
        g = h;
        g.row_count = g.capacity + 1;
        g.crc = elo__vstore_header_crc(&g);
        memcpy(bad + s * ELO__VSTORE_SLOT_B, &g, sizeof g);
        expect_open_fails(q, bad, size, ELO_CORRUPT, "counts");
        g = h;
        g.dim = 0;
        g.crc = elo__vstore_header_crc(&g);
        memcpy(bad + s * ELO__VSTORE_SLOT_B, &g, sizeof g);
        expect_open_fails(q, bad, size, ELO_CORRUPT, "dimension");
    }
    elo_vstore *vs;
    assert_int_equal(elo_vstore_open(tpath("absent.vs"), 0, &vs), ELO_NOTFOUND);
    free(bad);
    free(foreign);
    free(data);
}

/* ---- input parsers ------------------------------------------------------------------ */

static size_t make_npy(uint8_t *buf, const char *descr, const char *shape, const void *data,
                       size_t bytes)
{
    char dict[200];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                     descr, shape);
    size_t hlen = (size_t)n + 1;
    size_t pad = (64 - (10 + hlen) % 64) % 64;
    hlen += pad;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (uint8_t)(hlen & 0xff);
    buf[9] = (uint8_t)(hlen >> 8);
    memcpy(buf + 10, dict, (size_t)n);
    memset(buf + 10 + n, ' ', pad);
    buf[10 + hlen - 1] = '\n';
    memcpy(buf + 10 + hlen, data, bytes);
    return 10 + hlen + bytes;
}

static void test_parsers(void **state)
{
    (void)state;
    float v[6] = {1, 2, 3, 4, 5, 6};
    uint8_t buf[512];
    float *out;
    size_t count;
    int dim;
    size_t n = make_npy(buf, "<f4", "(2, 3)", v, sizeof v);
    assert_int_equal(elo_vstore_parse_vectors("npy", "a.npy", buf, n, &out, &count, &dim), ELO_OK);
    assert_int_equal(count, 2);
    assert_int_equal(dim, 3);
    assert_memory_equal(out, v, sizeof v);
    elo_free(out);
    for (size_t cut = 0; cut < n; cut += 7)
        assert_int_equal(elo_vstore_parse_vectors("npy", "a.npy", buf, cut, &out, &count, &dim),
                         ELO_BADINPUT);
    n = make_npy(buf, "<f8", "(2, 3)", v, sizeof v);
    assert_int_equal(elo_vstore_parse_vectors("npy", "a.npy", buf, n, &out, &count, &dim), ELO_BADINPUT);
    assert_non_null(strstr(elo_errmsg(), "float32"));
    n = make_npy(buf, "<f4", "(1, 2, 3)", v, sizeof v);
    assert_int_equal(elo_vstore_parse_vectors("npy", "a.npy", buf, n, &out, &count, &dim), ELO_BADINPUT);
    n = make_npy(buf, "<f4", "(3, 3)", v, sizeof v);   /* shape larger than data */
    assert_int_equal(elo_vstore_parse_vectors("npy", "a.npy", buf, n, &out, &count, &dim), ELO_BADINPUT);
    n = make_npy(buf, "<f4", "(99999999999999999999, 3)", v, sizeof v);
    assert_int_equal(elo_vstore_parse_vectors("npy", "a.npy", buf, n, &out, &count, &dim), ELO_BADINPUT);

    int64_t iv[3] = {7, 8, 9};
    int64_t *ids;
    n = make_npy(buf, "<i8", "(3,)", iv, sizeof iv);
    assert_int_equal(elo_vstore_parse_ids("npy", "i.npy", buf, n, &ids, &count), ELO_OK);
    assert_int_equal(count, 3);
    assert_int_equal(ids[2], 9);
    elo_free(ids);
    n = make_npy(buf, "<f4", "(3,)", iv, 12);
    assert_int_equal(elo_vstore_parse_ids("npy", "i.npy", buf, n, &ids, &count), ELO_BADINPUT);

    /* fvecs */
    uint8_t fv[2 * 16];
    int32_t d3 = 3;
    memcpy(fv, &d3, 4);
    memcpy(fv + 4, v, 12);
    memcpy(fv + 16, &d3, 4);
    memcpy(fv + 20, v + 3, 12);
    assert_int_equal(elo_vstore_parse_vectors("fvecs", "a.fvecs", fv, 32, &out, &count, &dim), ELO_OK);
    assert_int_equal(count, 2);
    assert_memory_equal(out, v, sizeof v);
    elo_free(out);
    assert_int_equal(elo_vstore_parse_vectors("fvecs", "a.fvecs", fv, 30, &out, &count, &dim), ELO_BADINPUT);
    int32_t d4 = 4;
    memcpy(fv + 16, &d4, 4);
    assert_int_equal(elo_vstore_parse_vectors("fvecs", "a.fvecs", fv, 32, &out, &count, &dim), ELO_BADINPUT);
    assert_non_null(strstr(elo_errmsg(), "byte 16"));

    /* jsonl */
    const char *j = "[1, 2, 3]\n\n[4.5, 5e0, -6]\n";
    assert_int_equal(elo_vstore_parse_vectors("jsonl", "a.jsonl", j, strlen(j), &out, &count, &dim), ELO_OK);
    assert_int_equal(count, 2);
    assert_true(out[3] == 4.5f && out[5] == -6.0f);
    elo_free(out);
    const char *bads[] = {"[1, 2]\n[1, 2, 3]\n", "[1, \"a\"]\n", "{\"a\": 1}\n", "[1, 2\n", "",
                          "[]\n", "[1e300]\n"};
    const char *where[] = {"a.jsonl:2", "a.jsonl:1", "a.jsonl:1", "a.jsonl:1", "no vectors",
                           "a.jsonl:1", "a.jsonl:1"};
    for (size_t i = 0; i < ELO_ARRAY_LEN(bads); i++) {
        assert_int_equal(elo_vstore_parse_vectors("jsonl", "a.jsonl", bads[i], strlen(bads[i]),
                                                  &out, &count, &dim), ELO_BADINPUT);
        if (!strstr(elo_errmsg(), where[i]))
            fail_msg("'%s' lacks '%s'", elo_errmsg(), where[i]);
    }
    /* ids as text and jsonl */
    const char *t = "3\n 4 \n\n5\n";
    assert_int_equal(elo_vstore_parse_ids("txt", "i.txt", t, strlen(t), &ids, &count), ELO_OK);
    assert_int_equal(count, 3);
    assert_int_equal(ids[1], 4);
    elo_free(ids);
    const char *tb = "3\nx\n";
    assert_int_equal(elo_vstore_parse_ids("txt", "i.txt", tb, strlen(tb), &ids, &count), ELO_BADINPUT);
    assert_non_null(strstr(elo_errmsg(), "i.txt:2"));
    const char *jl = "[1, 2]\n3\n";
    assert_int_equal(elo_vstore_parse_ids("jsonl", "i.jsonl", jl, strlen(jl), &ids, &count), ELO_OK);
    assert_int_equal(count, 3);
    elo_free(ids);
    assert_int_equal(elo_vstore_parse_vectors("csv", "a.csv", j, strlen(j), &out, &count, &dim),
                     ELO_BADINPUT);
}

/* ---- CUDA against the CPU (runs only where a GPU is usable) ----------------- */

static void compare_devices(elo_vstore *vs, elo_backend *gpu, const float *q, int nq, int dim, int k)
{
    size_t n = (size_t)nq * (size_t)k;
    int64_t *ci = malloc(n * sizeof *ci), *gi = malloc(n * sizeof *gi);
    float *cs = malloc(n * sizeof *cs), *gs = malloc(n * sizeof *gs);
    int cgot = elo_vstore_search(vs, NULL, q, nq, dim, k, ci, cs);
    int ggot = elo_vstore_search(vs, gpu, q, nq, dim, k, gi, gs);
    if (ggot < 0)
        fail_msg("cuda search: %s", elo_errmsg());
    assert_int_equal(cgot, ggot);
    for (int qi = 0; qi < nq; qi++)
        for (int i = 0; i < cgot; i++) {
            size_t at = (size_t)qi * k + (size_t)i;
            if (ci[at] != gi[at])
                fail_msg("query %d rank %d: cpu id %lld, cuda id %lld", qi, i, (long long)ci[at],
                         (long long)gi[at]);
            assert_true(fabsf(cs[at] - gs[at]) <= 1e-6f * fmaxf(fabsf(cs[at]), 1e-6f));
        }
    free(ci);
    free(gi);
    free(cs);
    free(gs);
}

static void test_cuda_matches_cpu(void **state)
{
    (void)state;
    elo_backend *gpu;
    if (elo_backend_get(ELO_DEVICE_CUDA, &gpu) < 0)
        skip();
    int dims[] = {384, 100, 7};
    for (int dt = 0; dt < 2; dt++)
        for (int metric = 0; metric < 3; metric++) {
            int dim = dims[(dt * 3 + metric) % 3];
            const char *p = tpath("cuda.vs");
            assert_int_equal(elo_vstore_create(p, dim, dt ? ELO_DTYPE_F16 : ELO_DTYPE_F32,
                                               (elo_vstore_metric)metric, 0), ELO_OK);
            elo_vstore *vs;
            assert_int_equal(elo_vstore_open(p, 1, &vs), ELO_OK);
            size_t n = 20000;
            float *x = random_vectors(n, dim);
            memcpy(x + 7 * dim, x + 3 * dim, (size_t)dim * 4);   /* a tie */
            assert_int_equal(elo_vstore_add(vs, x, n / 2, dim, NULL), ELO_OK);
            float *q = random_vectors(300, dim);
            memcpy(q, x + 3 * dim, (size_t)dim * 4);
            int ks[] = {1, 10, 100, 4096};
            int nqs[] = {1, 16, 300, 16};
            for (int i = 0; i < 4; i++)
                compare_devices(vs, gpu, q, nqs[i], dim, ks[i]);   /* loads, then resident */
            assert_non_null(vs->gpu);
            /* Updates reach the resident copy: append, then delete. */
            assert_int_equal(elo_vstore_add(vs, x + (n / 2) * dim, n - n / 2, dim, NULL), ELO_OK);
            compare_devices(vs, gpu, q, 16, dim, 100);
            int64_t del[200];
            for (int i = 0; i < 200; i++)
                del[i] = i * 97;
            assert_int_equal(elo_vstore_delete(vs, del, 200), 200);
            compare_devices(vs, gpu, q, 300, dim, 10);
            compare_devices(vs, gpu, q, 1, dim, 4096);
            /* A read-only handle's resident copy follows the writer: appended
             * rows incrementally, deletions by a reload. */
            elo_vstore *rd;
            assert_int_equal(elo_vstore_open(p, 0, &rd), ELO_OK);
            compare_devices(rd, gpu, q, 16, dim, 10);
            assert_non_null(rd->gpu);
            int64_t more[50];
            for (int i = 0; i < 50; i++)
                more[i] = 1000000 + i;
            assert_int_equal(elo_vstore_add(vs, x, 50, dim, more), ELO_OK);
            compare_devices(rd, gpu, q, 16, dim, 100);
            assert_int_equal(elo_vstore_delete(vs, more, 25), 25);
            compare_devices(rd, gpu, q, 300, dim, 10);
            elo_vstore_free(rd);
            elo_vstore_free(vs);
            free(x);
            free(q);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f16),
        cmocka_unit_test(test_kernels_bit_identical),
        cmocka_unit_test(test_search_exact),
        cmocka_unit_test(test_prefilter_near_ties),
        cmocka_unit_test(test_errors_on_input),
        cmocka_unit_test(test_f16_overflow),
        cmocka_unit_test(test_persist_grow_compact),
        cmocka_unit_test(test_reader_follows_writer),
        cmocka_unit_test(test_crash_states),
        cmocka_unit_test(test_damaged_files),
        cmocka_unit_test(test_parsers),
        cmocka_unit_test(test_cuda_matches_cpu),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
