/* test-csv.c - the streaming CSV reader (RFC 4180 quoting, CRLF, embedded
 * newlines, BOM, malformed, truncated and oversized input) and the import
 * (type inference, NULLs, all-or-nothing on bad rows). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "elohim/core.h"
#include "elohim/sql.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* mkstemp/mkdtemp want six trailing template characters */
#define MKSTEMP_SUFFIX "XX" "XX" "XX"

static void test_reader_quoting(void **state)
{
    (void)state;
    const char *in = "\xEF\xBB\xBF" "a,b,c\r\n1,\"x, \"\"y\"\"\",\"line1\nline2\"\r\n\n,,\"\"\n4,5,6";
    elo_csv *c = elo_csv_new_mem(in, strlen(in));
    char **f;
    size_t *l;
    assert_int_equal(elo_csv_next(c, &f, &l), 3);
    assert_string_equal(f[0], "a");
    assert_string_equal(f[2], "c");
    assert_int_equal(elo_csv_next(c, &f, &l), 3);
    assert_int_equal(elo_csv_line(c), 2);
    assert_string_equal(f[0], "1");
    assert_string_equal(f[1], "x, \"y\"");
    assert_string_equal(f[2], "line1\nline2");
    assert_int_equal(l[2], 11);
    assert_int_equal(elo_csv_next(c, &f, &l), 3); /* the blank line is skipped */
    assert_int_equal(elo_csv_line(c), 5);
    assert_int_equal(l[0], 0);
    assert_int_equal(l[2], 0);
    assert_int_equal(elo_csv_next(c, &f, &l), 3);
    assert_string_equal(f[2], "6"); /* no newline at the end */
    assert_int_equal(elo_csv_next(c, &f, &l), 0);
    elo_csv_free(c);
}

static void expect_error(const char *in, size_t len, int records_ok, const char *needle)
{
    elo_csv *c = elo_csv_new_mem(in, len);
    char **f;
    size_t *l;
    for (int i = 0; i < records_ok; i++)
        assert_true(elo_csv_next(c, &f, &l) > 0);
    int rc = elo_csv_next(c, &f, &l);
    assert_true(rc < 0);
    if (!strstr(elo_errmsg(), needle))
        fail_msg("error '%s' lacks '%s'", elo_errmsg(), needle);
    elo_csv_free(c);
}

static void test_reader_malformed(void **state)
{
    (void)state;
    expect_error("a,b\n1,\"open\n2,3\n", 16, 1, "line 2: unterminated");
    expect_error("a,b\n1,\"x\"y\n", 11, 1, "after a closing quote");
    expect_error("a,b\n1,x\"y\n", 10, 1, "quote inside an unquoted field");
    expect_error("a,b\n1,x\0y\n", 10, 1, "NUL byte");
    expect_error("\xEF\xBB", 2, 0, "byte order mark");
    /* oversized: one record beyond 64 MiB */
    size_t big = ((size_t)64 << 20) + 16;
    char *s = malloc(big);
    assert_non_null(s);
    memset(s, 'x', big);
    elo_csv *c = elo_csv_new_mem(s, big);
    char **f;
    size_t *l;
    assert_int_equal(elo_csv_next(c, &f, &l), ELO_TOOBIG);
    elo_csv_free(c);
    free(s);
}

static char *write_tmp(const char *text)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/elohim-csv-%s", MKSTEMP_SUFFIX);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void test_import(void **state)
{
    (void)state;
    elo_sql *db;
    assert_int_equal(elo_sql_open_file(":memory:", &db), ELO_OK);
    char *p = write_tmp("id,price,name,zip,empty\n1,2.5,apple,0123,\n2,3,\"pear, green\",0456,\n"
                        "-3,,kiwi,7,\n");
    elo_csv_report rep;
    assert_int_equal(elo_sql_import_csv(db, p, "fruit", &rep), ELO_OK);
    assert_int_equal(rep.rows, 3);
    assert_int_equal(rep.columns, 5);
    assert_string_equal(rep.types[0], "INTEGER");
    assert_string_equal(rep.types[1], "REAL");
    assert_string_equal(rep.types[2], "TEXT");
    assert_string_equal(rep.types[3], "TEXT"); /* leading zeros kept */
    elo_sql_result *r;
    assert_int_equal(elo_sql_query(db, "SELECT SUM(id), SUM(price), COUNT(price), MAX(name), "
                                       "MIN(zip), COUNT(empty) FROM fruit", &r), ELO_OK);
    assert_int_equal(elo_sql_result_value(r, 0, 0).i, 0);
    assert_true(elo_sql_result_value(r, 0, 1).r == 5.5);
    assert_int_equal(elo_sql_result_value(r, 0, 2).i, 2);
    assert_string_equal(elo_sql_result_value(r, 0, 3).s, "pear, green");
    assert_string_equal(elo_sql_result_value(r, 0, 4).s, "0123");
    assert_int_equal(elo_sql_result_value(r, 0, 5).i, 0);
    elo_sql_result_free(r);
    assert_int_equal(elo_sql_import_csv(db, p, "FRUIT", &rep), ELO_EXISTS);
    unlink(p);

    /* a bad row: error names the line, nothing is imported */
    p = write_tmp("a,b\n1,2\n3,4\n5\n");
    assert_int_equal(elo_sql_import_csv(db, p, "broken", &rep), ELO_BADINPUT);
    assert_non_null(strstr(elo_errmsg(), "line 4"));
    assert_int_equal(elo_sql_query(db, "SELECT * FROM broken", &r), ELO_SQL);
    unlink(p);
    p = write_tmp("a,a\n1,2\n");
    assert_int_equal(elo_sql_import_csv(db, p, "dup", &rep), ELO_BADINPUT);
    unlink(p);
    p = write_tmp("");
    assert_int_equal(elo_sql_import_csv(db, p, "empty", &rep), ELO_BADINPUT);
    unlink(p);
    assert_int_equal(elo_sql_import_csv(db, "/nonexistent/x.csv", "x", &rep), ELO_IO);
    elo_sql_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reader_quoting),
        cmocka_unit_test(test_reader_malformed),
        cmocka_unit_test(test_import),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
