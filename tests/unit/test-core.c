/* test-core.c - status table, arenas, files, thread pool, parsing, CRC. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "elohim/core.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_status_strings(void **state)
{
    (void)state;
    assert_string_equal(elo_strstatus(ELO_OK), "ok");
    assert_string_equal(elo_strstatus(ELO_NOMEM), "out of memory");
    assert_string_equal(elo_strstatus(12345), "unknown status");
    assert_int_equal(elo_seterr(ELO_IO, "disk %d", 3), ELO_IO);
    assert_string_equal(elo_errmsg(), "disk 3");
    elo_clearerr();
    assert_string_equal(elo_errmsg(), "");
}

static void test_arena(void **state)
{
    (void)state;
    elo_arena *a = elo_arena_new(128);
    assert_non_null(a);
    char *p = elo_arena_alloc(a, 10);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % 16, 0);
    char *big = elo_arena_alloc(a, 10000);   /* larger than a block */
    assert_non_null(big);
    memset(big, 0x5a, 10000);
    char *s = elo_arena_strdup(a, "hello");
    assert_string_equal(s, "hello");
    assert_true(elo_arena_used(a) >= 10000);
    elo_arena_reset(a);
    assert_int_equal(elo_arena_used(a), 0);
    assert_non_null(elo_arena_alloc(a, 64));
    elo_arena_free(a);
    elo_arena_free(NULL);
}

static void test_mul_overflow(void **state)
{
    (void)state;
    size_t out;
    assert_int_equal(elo_mul_size(1000, 1000, &out), 0);
    assert_int_equal(out, 1000000);
    assert_int_equal(elo_mul_size(SIZE_MAX / 2, 3, &out), -1);
    assert_null(elo_calloc(SIZE_MAX / 2, 3));
}

static void test_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/elohim-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/a/b/file.txt", dir);
    char sub[256];
    snprintf(sub, sizeof sub, "%s/a/b", dir);
    assert_int_equal(elo_mkdirs(sub, 0755), ELO_OK);
    assert_int_equal(elo_write_file_atomic(path, "abc", 3), ELO_OK);
    char *data;
    size_t len;
    assert_int_equal(elo_read_file(path, 100, &data, &len), ELO_OK);
    assert_int_equal(len, 3);
    assert_string_equal(data, "abc");
    elo_free(data);
    assert_int_equal(elo_read_file(path, 2, &data, &len), ELO_TOOBIG);
    elo_mmap m;
    assert_int_equal(elo_mmap_open(&m, path, 0), ELO_OK);
    assert_int_equal(m.size, 3);
    assert_memory_equal(m.data, "abc", 3);
    elo_mmap_close(&m);
    assert_int_equal(elo_mmap_open(&m, "/nonexistent/x", 0), ELO_NOTFOUND);
    assert_non_null(strstr(elo_errmsg(), "/nonexistent/x"));
    assert_int_equal(elo_mmap_open(&m, dir, 0), ELO_BADINPUT);   /* a directory */
    unlink(path);
    rmdir(sub);
    snprintf(sub, sizeof sub, "%s/a", dir);
    rmdir(sub);
    rmdir(dir);
}

typedef struct {
    atomic_long sum;
    atomic_int seen[1000];
} pool_job;

static void pool_task(void *arg, int task, int thread)
{
    pool_job *j = arg;
    (void)thread;
    atomic_fetch_add(&j->sum, task);
    atomic_fetch_add(&j->seen[task], 1);
}

static void test_pool(void **state)
{
    (void)state;
    elo_pool *p = elo_pool_new(4);
    assert_non_null(p);
    assert_int_equal(elo_pool_size(p), 4);
    for (int round = 0; round < 50; round++) {
        pool_job *j = calloc(1, sizeof *j);
        elo_pool_run(p, pool_task, j, 1000);
        assert_int_equal(atomic_load(&j->sum), 999 * 1000 / 2);
        for (int i = 0; i < 1000; i++)
            assert_int_equal(atomic_load(&j->seen[i]), 1);
        free(j);
    }
    elo_pool_free(p);
    assert_non_null(elo_pool_global());
}

/* Many tiny jobs back to back: a worker late out of one job's claim loop
 * must never take a task of the next (each task runs exactly once). */
static void test_pool_back_to_back(void **state)
{
    (void)state;
    elo_pool *p = elo_pool_new(4);
    assert_non_null(p);
    pool_job *j = calloc(1, sizeof *j);
    for (int round = 0; round < 20000; round++) {
        int n = 1 + round % 5;
        elo_pool_run(p, pool_task, j, n);
        for (int i = 0; i < n; i++) {
            assert_int_equal(atomic_load(&j->seen[i]), 1);
            atomic_store(&j->seen[i], 0);
        }
    }
    free(j);
    elo_pool_free(p);
}

static void test_parse_and_hash(void **state)
{
    (void)state;
    int64_t v;
    double d;
    assert_int_equal(elo_parse_i64("-42", &v), ELO_OK);
    assert_int_equal(v, -42);
    assert_int_equal(elo_parse_i64("42x", &v), ELO_BADINPUT);
    assert_int_equal(elo_parse_i64("", &v), ELO_BADINPUT);
    assert_int_equal(elo_parse_i64("99999999999999999999", &v), ELO_BADINPUT);
    assert_int_equal(elo_parse_f64("1.5e3", &d), ELO_OK);
    assert_true(d == 1500.0);
    assert_int_equal(elo_parse_f64("1e999", &d), ELO_BADINPUT);
    /* CRC-32C check value of "123456789" */
    assert_int_equal(elo_crc32c(0, "123456789", 9), 0xe3069283u);
    assert_int_not_equal(elo_hash64("a", 1), elo_hash64("b", 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_strings), cmocka_unit_test(test_arena),
        cmocka_unit_test(test_mul_overflow),   cmocka_unit_test(test_files),
        cmocka_unit_test(test_pool),           cmocka_unit_test(test_pool_back_to_back),
        cmocka_unit_test(test_parse_and_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
