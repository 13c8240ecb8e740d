/* test-vstore-cuda.c - the CUDA vector search against a scalar CPU
 * reference of the canonical score, on fresh random stores: identical ids
 * in identical order and identical f32 scores, for f32 and f16 rows, every
 * metric, small and large k, both GPU paths (exact scan and tensor-core
 * batch with exact re-scoring), after appends and deletions. Values are
 * drawn from a small integer grid so that exact ties are common and the
 * tie rule (lower id first) is exercised. Skips without a GPU. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "elohim/backend.h"
#include "elohim/core.h"
#include "vstore/vstore-impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static float canonical(const float *x, const float *q, int dim, int l2)
{
    float acc[16] = {0};
    for (int i = 0; i < dim; i++) {
        float p;
        if (l2) {
            float d = x[i] - q[i];
            p = d * d;
        } else {
            p = x[i] * q[i];
        }
        acc[i % 16] = acc[i % 16] + p;
    }
    for (int w = 8; w >= 1; w /= 2)
        for (int j = 0; j < w; j++)
            acc[j] = acc[j] + acc[j + w];
    return acc[0];
}

typedef struct {
    float key;
    int64_t id;
} entry;

static int entry_cmp(const void *pa, const void *pb)
{
    const entry *a = pa, *b = pb;
    if (a->key != b->key)
        return a->key > b->key ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

static void normalize(float *v, int dim)
{
    double n = 0;
    for (int i = 0; i < dim; i++)
        n += (double)v[i] * v[i];
    n = sqrt(n);
    if (n == 0) {
        v[0] = 1;
        return;
    }
    for (int i = 0; i < dim; i++)
        v[i] = (float)(v[i] / n);
}

/* One scenario: returns after asserting GPU == reference. */
static void run_case(elo_backend *b, elo_dtype dtype, int metric, int dim, size_t rows, int k,
                     int queries, int path, int grid)
{
    int l2 = metric == 2;
    float *x = malloc(sizeof(float) * rows * dim);
    _Float16 *xh = malloc(sizeof(_Float16) * rows * dim);
    int64_t *ids = malloc(sizeof(int64_t) * rows);
    uint8_t *live = malloc(rows);
    for (size_t r = 0; r < rows; r++) {
        for (int d = 0; d < dim; d++) {
            float v = grid ? (float)((int)(rng() % 5) - 2)
                           : (float)((double)(rng() >> 11) / 9007199254740992.0 * 2 - 1);
            x[r * dim + d] = v;
        }
        if (metric == 0)
            normalize(x + r * dim, dim);
        for (int d = 0; d < dim; d++) {
            xh[r * dim + d] = (_Float16)x[r * dim + d];
            if (dtype == ELO_DTYPE_F16)
                x[r * dim + d] = (float)xh[r * dim + d];   /* what the GPU sees */
        }
        ids[r] = (int64_t)(rng() % 1000000000ull) * 4 + (int64_t)(r % 4);   /* unique, unordered */
        live[r] = (rng() % 10) != 0;                                         /* ~10% deleted */
    }
    /* make ids unique: r-th id has r in its low bits */
    for (size_t r = 0; r < rows; r++)
        ids[r] = ids[r] / 4 * (int64_t)rows * 4 + (int64_t)r;
    float *q = malloc(sizeof(float) * queries * dim);
    for (int i = 0; i < queries * dim; i++)
        q[i] = grid ? (float)((int)(rng() % 5) - 2)
                    : (float)((double)(rng() >> 11) / 9007199254740992.0 * 2 - 1);
    if (metric == 0)
        for (int i = 0; i < queries; i++)
            normalize(q + (size_t)i * dim, dim);

    /* load half the rows, append the rest, then delete through the API */
    size_t first = rows / 2;
    elo__vstore_gpu *g = NULL;
    const void *src = dtype == ELO_DTYPE_F16 ? (const void *)xh : (const void *)x;
    size_t esz = dtype == ELO_DTYPE_F16 ? 2 : 4;
    uint8_t *all_live = malloc(rows);
    memset(all_live, 1, rows);
    assert_int_equal(elo__vstore_cuda_load(b, src, dtype, dim, metric, first, first + 1, ids,
                                           all_live, &g),
                     ELO_OK);
    assert_int_equal(elo__vstore_cuda_append(g, (const char *)src + first * dim * esz,
                                             ids + first, rows - first),
                     ELO_OK);
    size_t *dead = malloc(sizeof(size_t) * rows);
    size_t dead_count = 0;
    for (size_t r = 0; r < rows; r++)
        if (!live[r])
            dead[dead_count++] = r;
    assert_int_equal(elo__vstore_cuda_delete(g, dead, dead_count), ELO_OK);
    elo__vstore_cuda_force_path(g, path);

    int64_t *got_ids = malloc(sizeof(int64_t) * queries * k);
    float *got_s = malloc(sizeof(float) * queries * k);
    int n = elo__vstore_cuda_search(g, q, queries, k, got_ids, got_s);
    if (n < 0)
        fail_msg("search failed: %s", elo_errmsg());
    size_t live_count = rows - dead_count;
    assert_int_equal(n, (int)(live_count < (size_t)k ? live_count : (size_t)k));

    entry *ref = malloc(sizeof(entry) * rows);
    for (int qi = 0; qi < queries; qi++) {
        size_t m = 0;
        for (size_t r = 0; r < rows; r++) {
            if (!live[r])
                continue;
            float s = canonical(x + r * dim, q + (size_t)qi * dim, dim, l2);
            ref[m].key = l2 ? -s : s;
            ref[m].id = ids[r];
            m++;
        }
        qsort(ref, m, sizeof(entry), entry_cmp);
        for (int i = 0; i < n; i++) {
            float want = l2 ? -ref[i].key : ref[i].key;
            if (got_ids[(size_t)qi * k + i] != ref[i].id || got_s[(size_t)qi * k + i] != want)
                fail_msg("dtype %d metric %d dim %d rows %zu k %d queries %d path %d: query %d "
                         "rank %d: got id %lld score %.9g, want id %lld score %.9g",
                         dtype, metric, dim, rows, k, queries, path, qi, i,
                         (long long)got_ids[(size_t)qi * k + i], got_s[(size_t)qi * k + i],
                         (long long)ref[i].id, want);
        }
    }
    elo__vstore_cuda_free(g);
    free(ref); free(got_ids); free(got_s); free(dead); free(all_live);
    free(q); free(x); free(xh); free(ids); free(live);
}

static elo_backend *gpu(void)
{
    elo_backend *b = NULL;
    if (!elo__vstore_cuda_load || elo_backend_get(ELO_DEVICE_CUDA, &b) != ELO_OK)
        return NULL;
    return b;
}

static void test_exact_scan(void **state)
{
    (void)state;
    elo_backend *b = gpu();
    if (!b)
        skip();
    /* 7: register kernel; 100: tiles for f32, registers for f16; 384:
     * tiles; 1100: the generic kernel for wide rows */
    static const int dims[] = {7, 100, 384, 1100};
    static const int ks[] = {1, 10, 100};
    for (int dt = 0; dt < 2; dt++)
        for (int metric = 0; metric < 3; metric++)
            for (size_t di = 0; di < 4; di++)
                for (size_t ki = 0; ki < 3; ki++)
                    run_case(b, dt ? ELO_DTYPE_F16 : ELO_DTYPE_F32, metric, dims[di],
                             2000 + rng() % 20000, ks[ki], 1 + (int)(rng() % 17), 1,
                             (int)(rng() % 2));
}

static void test_small_and_large_k(void **state)
{
    (void)state;
    elo_backend *b = gpu();
    if (!b)
        skip();
    run_case(b, ELO_DTYPE_F32, 1, 384, 1, 10, 3, 0, 0);        /* fewer rows than k */
    run_case(b, ELO_DTYPE_F32, 1, 384, 5, 10, 1, 0, 1);
    run_case(b, ELO_DTYPE_F32, 0, 64, 60000, 4096, 2, 0, 0);   /* the largest k */
    run_case(b, ELO_DTYPE_F16, 2, 32, 30000, 2048, 3, 0, 1);
    run_case(b, ELO_DTYPE_F32, 1, 16, 100000, 1, 5, 0, 1);     /* many exact ties */
}

static void test_batch_path(void **state)
{
    (void)state;
    elo_backend *b = gpu();
    if (!b)
        skip();
    for (int dt = 0; dt < 2; dt++)
        for (int metric = 0; metric < 2; metric++) {
            elo_dtype t = dt ? ELO_DTYPE_F16 : ELO_DTYPE_F32;
            run_case(b, t, metric, 384, 50000, 10, 40, 0, 0);   /* automatic: batch */
            run_case(b, t, metric, 100, 20000, 100, 33, 2, 0);
            run_case(b, t, metric, 64, 20000, 10, 5, 2, 1);     /* ties: overflow + redo */
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_scan),
        cmocka_unit_test(test_small_and_large_k),
        cmocka_unit_test(test_batch_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
