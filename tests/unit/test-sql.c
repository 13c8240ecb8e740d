/* test-sql.c - the SQL engine through its C API: values and ordering, the
 * parser's refusals, SQLite semantics on our executor, fallback, SUM
 * overflow, many groups (the partitioned kernel, and groups out on all
 * cores) against SQLite, the dataframe API, columnar cache invalidation by
 * an outside sqlite3 process, and the reuse of big result blocks between
 * queries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "sql/sql-impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* mkstemp/mkdtemp want six trailing template characters */
#define MKSTEMP_SUFFIX "XX" "XX" "XX"

static elo_sql *mem_db(void)
{
    elo_sql *db;
    assert_int_equal(elo_sql_open_file(":memory:", &db), ELO_OK);
    assert_int_equal(elo_sql_set_device(db, ELO_SQL_DEVICE_CPU), ELO_OK);
    return db;
}

static elo_sql_result *q(elo_sql *db, const char *sql)
{
    elo_sql_result *r = NULL;
    int rc = elo_sql_query(db, sql, &r);
    if (rc != ELO_OK)
        fail_msg("query failed: %s: %s", sql, elo_errmsg());
    return r;
}

static void test_value_order(void **state)
{
    (void)state;
    sv n = {.t = SV_NULL}, i1 = {.t = SV_INT, .i = 1}, r1 = {.t = SV_REAL, .r = 1.0},
       r15 = {.t = SV_REAL, .r = 1.5}, ta = {.t = SV_TEXT, .s = "a", .len = 1},
       tb = {.t = SV_TEXT, .s = "ab", .len = 2};
    assert_true(elo__sv_cmp(&n, &i1) < 0);
    assert_int_equal(elo__sv_cmp(&i1, &r1), 0);
    assert_true(elo__sv_cmp(&i1, &r15) < 0);
    assert_true(elo__sv_cmp(&r15, &ta) < 0);
    assert_true(elo__sv_cmp(&ta, &tb) < 0);
    assert_int_equal(elo__sv_hash(&i1), elo__sv_hash(&r1));
    sv big = {.t = SV_INT, .i = INT64_MAX}, bigr = {.t = SV_REAL, .r = 9223372036854775808.0};
    assert_true(elo__sv_cmp(&big, &bigr) < 0);
    assert_int_equal(elo__sql_affinity("VARCHAR(8)"), AFF_TEXT);
    assert_int_equal(elo__sql_affinity("BIGINT"), AFF_INTEGER);
    assert_int_equal(elo__sql_affinity("DOUBLE"), AFF_REAL);
    assert_int_equal(elo__sql_affinity("DECIMAL"), AFF_NUMERIC);
    assert_int_equal(elo__sql_affinity(""), AFF_BLOB);
    assert_int_equal(elo__sql_d2i(1e30), INT64_MAX);
    assert_int_equal(elo__sql_d2i(-2.9), -2);
}

static void test_parse_refusals(void **state)
{
    (void)state;
    static const char *bad[] = {
        "SELECT a FROM t1, t2", "SELECT (SELECT 1)", "SELECT a FROM t WHERE a LIKE 'x'",
        "SELECT a || b FROM t", "SELECT a FROM t UNION SELECT b FROM t", "UPDATE t SET a = 1",
        "SELECT 99999999999999999999", "SELECT a FROM t WHERE", "SELECT 'abc", "SELECT x'00'",
        "SELECT a FROM t ORDER BY a NULLS LAST", "SELECT CASE WHEN 1 THEN 2", "SELECT ((((1)",
        "SELECT a FROM t GROUP a", "", "SELECT a FROM t LIMIT"};
    for (size_t i = 0; i < ELO_ARRAY_LEN(bad); i++) {
        elo_arena *a = elo_arena_new(0);
        select_stmt s;
        const char *why = NULL;
        assert_int_equal(elo__sql_parse(a, bad[i], &s, &why), ELO_UNSUPPORTED);
        assert_non_null(why);
        elo_arena_free(a);
    }
    elo_arena *a = elo_arena_new(0);
    select_stmt s;
    const char *why = NULL;
    assert_int_equal(elo__sql_parse(a, "SELECT DISTINCT - t.a * 2 AS x, COUNT(*) FROM tab AS t "
                                       "WHERE NOT a BETWEEN 1 AND 3 AND b NOT IN (1, NULL) "
                                       "GROUP BY 1 HAVING COUNT(*) > 0 ORDER BY x DESC LIMIT 3 OFFSET 1;",
                                    &s, &why),
                     ELO_OK);
    assert_int_equal(s.nitems, 2);
    assert_true(s.distinct);
    assert_string_equal(s.items[0].alias, "x");
    assert_int_equal(s.items[0].e->kind, E_BIN); /* (-t.a) * 2: unary minus binds tighter */
    assert_int_equal(s.items[0].e->a->kind, E_NEG);
    assert_int_equal(s.where->kind, E_BIN);
    assert_int_equal(s.where->op, OP_AND);
    assert_int_equal(s.where->a->kind, E_NOT);
    assert_int_equal(s.where->a->a->kind, E_BETWEEN);
    assert_int_equal(s.ngroup, 1);
    assert_int_equal(s.norder, 1);
    assert_true(s.order[0].desc);
    elo_arena_free(a);
}

static void test_semantics(void **state)
{
    (void)state;
    elo_sql *db = mem_db();
    assert_int_equal(elo_sql_exec(db, "CREATE TABLE t(k INTEGER, v INTEGER, r REAL, s TEXT);"
                                      "INSERT INTO t VALUES(1, 7, 1.5, 'b'),(1, -2, NULL, 'a'),"
                                      "(2, NULL, 2.25, NULL),(NULL, 5, -1.0, 'a'),(2, 9, 0.5, 'c')"),
                     ELO_OK);
    elo_sql_result *r = q(db, "SELECT k, SUM(v), AVG(v), COUNT(v), COUNT(*), MIN(r), MAX(s), "
                              "TOTAL(r), v / 2 IS NULL FROM t GROUP BY k");
    /* v / 2 in an aggregate query is a bare column: ours declines */
    assert_string_equal(elo_sql_result_engine(r), "sqlite");
    assert_true(strlen(elo_sql_result_reason(r)) > 0);
    elo_sql_result_free(r);

    r = q(db, "SELECT k, SUM(v), AVG(v), COUNT(v), COUNT(*), MIN(r), MAX(s), TOTAL(r) FROM t "
              "GROUP BY k");
    assert_string_equal(elo_sql_result_engine(r), "cpu");
    assert_int_equal(elo_sql_result_rows(r), 3);
    elo_sql_value v = elo_sql_result_value(r, 0, 0); /* NULL key sorts first */
    assert_int_equal(v.type, ELO_SQL_NULL);
    v = elo_sql_result_value(r, 1, 1);
    assert_int_equal(v.type, ELO_SQL_INTEGER);
    assert_int_equal(v.i, 5);
    v = elo_sql_result_value(r, 1, 2);
    assert_int_equal(v.type, ELO_SQL_REAL);
    assert_true(v.r == 2.5);
    v = elo_sql_result_value(r, 2, 1); /* 2: NULL + 9 */
    assert_int_equal(v.i, 9);
    assert_int_equal(elo_sql_result_value(r, 2, 3).i, 1);
    assert_int_equal(elo_sql_result_value(r, 2, 4).i, 2);
    assert_true(elo_sql_result_value(r, 2, 5).r == 0.5);
    assert_string_equal(elo_sql_result_value(r, 2, 6).s, "c");
    assert_true(elo_sql_result_value(r, 2, 7).r == 2.75);
    elo_sql_result_free(r);

    /* integer division, overflow to real, NULL logic, IN with NULL */
    r = q(db, "SELECT -7 / 2, 7 % -3, 9223372036854775807 + 1, 1 / 0, NULL AND 0, NULL OR 1, "
              "2 IN (1, NULL), 1 IN (1, NULL), 5 NOT IN ()");
    assert_string_equal(elo_sql_result_engine(r), "cpu");
    assert_int_equal(elo_sql_result_value(r, 0, 0).i, -3);
    assert_int_equal(elo_sql_result_value(r, 0, 1).i, 1);
    assert_int_equal(elo_sql_result_value(r, 0, 2).type, ELO_SQL_REAL);
    assert_int_equal(elo_sql_result_value(r, 0, 3).type, ELO_SQL_NULL);
    assert_int_equal(elo_sql_result_value(r, 0, 4).i, 0);
    assert_int_equal(elo_sql_result_value(r, 0, 5).i, 1);
    assert_int_equal(elo_sql_result_value(r, 0, 6).type, ELO_SQL_NULL);
    assert_int_equal(elo_sql_result_value(r, 0, 7).i, 1);
    assert_int_equal(elo_sql_result_value(r, 0, 8).i, 1);
    elo_sql_result_free(r);

    /* dataframe case, ORDER BY, LIMIT/OFFSET, DISTINCT */
    r = q(db, "SELECT DISTINCT s FROM t WHERE s IS NOT NULL ORDER BY s DESC LIMIT 2 OFFSET 1");
    assert_string_equal(elo_sql_result_engine(r), "cpu");
    assert_int_equal(elo_sql_result_rows(r), 2);
    assert_string_equal(elo_sql_result_value(r, 0, 0).s, "b");
    assert_string_equal(elo_sql_result_value(r, 1, 0).s, "a");
    elo_sql_result_free(r);

    /* text compared with a number: affinity rules, handed to SQLite */
    r = q(db, "SELECT COUNT(*) FROM t WHERE s > 1");
    assert_string_equal(elo_sql_result_engine(r), "sqlite");
    assert_int_equal(elo_sql_result_value(r, 0, 0).i, 4);
    elo_sql_result_free(r);

    /* errors come back as ELO_SQL with SQLite's message */
    elo_sql_result *bad = NULL;
    assert_int_equal(elo_sql_query(db, "SELECT nosuch FROM t", &bad), ELO_SQL);
    assert_null(bad);
    assert_non_null(strstr(elo_errmsg(), "nosuch"));
    elo_sql_close(db);
}

static void test_sum_overflow(void **state)
{
    (void)state;
    elo_sql *db = mem_db();
    assert_int_equal(elo_sql_exec(db, "CREATE TABLE b(g INTEGER, x INTEGER);"
                                      "INSERT INTO b VALUES(1, 9223372036854775807),(1, 1),"
                                      "(2, 9223372036854775807),(2, -5)"),
                     ELO_OK);
    elo_sql_result *r = NULL;
    assert_int_equal(elo_sql_query(db, "SELECT g, SUM(x) FROM b GROUP BY g", &r), ELO_SQL);
    assert_non_null(strstr(elo_errmsg(), "overflow"));
    r = q(db, "SELECT g, TOTAL(x), AVG(x) FROM b GROUP BY g");
    assert_string_equal(elo_sql_result_engine(r), "cpu");
    assert_true(elo_sql_result_value(r, 0, 1).r == 9223372036854775808.0);
    elo_sql_result_free(r);
    r = q(db, "SELECT SUM(x) FROM b WHERE g = 2");
    assert_int_equal(elo_sql_result_value(r, 0, 0).i, 9223372036854775802LL);
    elo_sql_result_free(r);
    elo_sql_close(db);
}

/* Runs `sql` on our CPU engine and on SQLite and asserts the same rows in
 * the same order: same storage classes, integers and text exact, reals
 * within 1e-9 relative (our real sums are compensated). Returns the number
 * of rows. */
static int64_t same_as_sqlite(elo_sql *db, const char *sql, const char *want_engine)
{
    assert_int_equal(elo_sql_set_device(db, ELO_SQL_DEVICE_CPU), ELO_OK);
    elo_sql_result *ours = q(db, sql);
    assert_int_equal(elo_sql_set_device(db, ELO_SQL_DEVICE_SQLITE), ELO_OK);
    elo_sql_result *ref = q(db, sql);
    assert_int_equal(elo_sql_set_device(db, ELO_SQL_DEVICE_CPU), ELO_OK);
    if (strcmp(elo_sql_result_engine(ours), want_engine))
        fail_msg("%s: ran on %s (%s), wanted %s", sql, elo_sql_result_engine(ours),
                 elo_sql_result_reason(ours), want_engine);
    int64_t rows = elo_sql_result_rows(ref);
    int cols = elo_sql_result_columns(ref);
    assert_int_equal(elo_sql_result_rows(ours), rows);
    assert_int_equal(elo_sql_result_columns(ours), cols);
    for (int64_t i = 0; i < rows; i++)
        for (int c = 0; c < cols; c++) {
            elo_sql_value x = elo_sql_result_value(ours, i, c), y = elo_sql_result_value(ref, i, c);
            if (x.type != y.type)
                fail_msg("%s: row %lld col %d: type %d, SQLite %d", sql, (long long)i, c,
                         (int)x.type, (int)y.type);
            if (x.type == ELO_SQL_INTEGER && x.i != y.i)
                fail_msg("%s: row %lld col %d: %lld, SQLite %lld", sql, (long long)i, c,
                         (long long)x.i, (long long)y.i);
            if (x.type == ELO_SQL_REAL && fabs(x.r - y.r) > 1e-9 * fmax(1.0, fabs(y.r)))
                fail_msg("%s: row %lld col %d: %.17g, SQLite %.17g", sql, (long long)i, c, x.r, y.r);
            if (x.type == ELO_SQL_TEXT && strcmp(x.s, y.s))
                fail_msg("%s: row %lld col %d: '%s', SQLite '%s'", sql, (long long)i, c, x.s, y.s);
        }
    elo_sql_result_free(ours);
    elo_sql_result_free(ref);
    return rows;
}

/* More groups than the partitioned kernel's threshold (65,536) with the
 * default settings: integer and text keys with NULLs, sums over columns
 * without NULLs (the compact path) and other aggregates over nullable
 * columns, HAVING (rows straight into the result) and ORDER BY/LIMIT (rows
 * through the row buffer), integer parts reaching 2^53 and overflowing
 * (handed to the interpreter, then SQLite), and over 2^20 groups. */
static void test_many_groups(void **state)
{
    (void)state;
    elo_sql *db = mem_db();
    assert_int_equal(elo_sql_exec(db,
        "CREATE TABLE g(k INTEGER, s TEXT, v INTEGER, r REAL, n INTEGER, big INTEGER, huge INTEGER);"
        "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < 199999) "
        "INSERT INTO g SELECT CASE WHEN i % 97 = 0 THEN NULL ELSE (i * 7919) % 150000 END, "
        "CASE WHEN i % 89 = 0 THEN NULL ELSE printf('k%06d', (i * 104729) % 120000) END, "
        "i % 11 - 5, (i % 13) * 0.25 - 1.0, CASE WHEN i % 5 = 0 THEN NULL ELSE i % 7 - 3 END, "
        "i, i FROM c;"
        /* group 4242: two integer inputs of 2^52 (a part reaches 2^53);
         * group 4243: two of INT64_MAX (SUM overflows) */
        "INSERT INTO g VALUES(4242, 'x', 1, 1.0, 1, 4503599627370496, 1),"
        "(4242, 'x', 1, 1.0, 1, 4503599627370496, 1),"
        "(4243, 'y', 1, 1.0, 1, 1, 9223372036854775807),"
        "(4243, 'y', 1, 1.0, 1, 1, 9223372036854775807)"),
        ELO_OK);
    int64_t groups = same_as_sqlite(db, "SELECT k, SUM(v), AVG(r), TOTAL(v), COUNT(*), SUM(r) "
                                        "FROM g GROUP BY k", "cpu");
    assert_true(groups > 140000);
    same_as_sqlite(db, "SELECT s, SUM(v), MIN(r), MAX(n), COUNT(n), AVG(n), SUM(n) FROM g "
                       "GROUP BY s", "cpu");
    same_as_sqlite(db, "SELECT k, SUM(v) FROM g WHERE r > 0 GROUP BY k HAVING SUM(v) > 3", "cpu");
    same_as_sqlite(db, "SELECT k, SUM(v) FROM g GROUP BY k ORDER BY 2 DESC, 1 LIMIT 20 OFFSET 7",
                   "cpu");
    same_as_sqlite(db, "SELECT s, COUNT(*), SUM(v) FROM g GROUP BY s LIMIT 5", "cpu");
    /* parts reaching 2^53: the interpreter redoes the sums in scan order */
    same_as_sqlite(db, "SELECT k, SUM(big), TOTAL(big), AVG(big) FROM g GROUP BY k", "cpu");
    same_as_sqlite(db, "SELECT k, TOTAL(huge) FROM g GROUP BY k", "cpu");
    elo_sql_result *r = NULL;
    assert_int_equal(elo_sql_query(db, "SELECT k, SUM(huge) FROM g GROUP BY k", &r), ELO_SQL);
    assert_non_null(strstr(elo_errmsg(), "overflow"));

    /* over 2^20 groups, keys in descending row order, some twice */
    assert_int_equal(elo_sql_exec(db,
        "CREATE TABLE h(k INTEGER, v INTEGER, r REAL);"
        "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < 1099999) "
        "INSERT INTO h SELECT CASE WHEN i % 1000 = 0 THEN NULL ELSE 1080000 - i % 1080000 END, "
        "i % 100, i * 0.5 FROM c"),
        ELO_OK);
    groups = same_as_sqlite(db, "SELECT k, SUM(v), COUNT(*), AVG(r) FROM h GROUP BY k", "cpu");
    assert_true(groups > (1 << 20));
    elo_sql_close(db);
}

/* Groups out on all cores (the direct path: no DISTINCT, ORDER BY, LIMIT
 * or OFFSET): 200,000 groups, 13 chunks of groups by default, with
 * integer, text and NULL keys, HAVING that drops most groups, real sums,
 * outputs that are expressions (text among them) and two keys, outputs
 * of keys and aggregates only (column by column); then some of it again
 * in chunks of 7 groups. Errors must be those of the first group in key
 * order, whichever chunk meets them first. */
static void test_groups_out(void **state)
{
    (void)state;
    elo_sql *db = mem_db();
    assert_int_equal(elo_sql_exec(db,
        "CREATE TABLE o(k INTEGER, s TEXT, a INTEGER, v INTEGER, r REAL, big INTEGER);"
        "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < 399999) "
        "INSERT INTO o SELECT CASE WHEN i % 101 = 0 THEN NULL ELSE (i * 7919) % 200000 END, "
        "CASE WHEN i % 103 = 0 THEN NULL ELSE printf('key%07d', (i * 104729) % 200000) END, "
        "i % 5, i % 11 - 5, (i % 13) * 0.25 - 1.0, i FROM c;"
        /* group 150001: two inputs of 2^52 (a part of the sum reaches 2^53) */
        "INSERT INTO o VALUES(150001, 'x', 1, 1, 1.0, 4503599627370496),"
        "(150001, 'x', 1, 1, 1.0, 4503599627370496)"),
        ELO_OK);
    /* the first four run in both chunk sizes */
    static const char *const queries[] = {
        "SELECT s, SUM(v), AVG(r), COUNT(*) FROM o GROUP BY s",
        "SELECT s, SUM(v) FROM o GROUP BY s HAVING SUM(v) > 6",
        "SELECT k + 1, a, CASE WHEN SUM(v) > 0 THEN 'up' ELSE 'down' END, SUM(v) * 2, AVG(r) "
        "FROM o GROUP BY a, k HAVING COUNT(*) > 1",
        "SELECT a, COALESCE(s, 'none'), COUNT(*), SUM(v) FROM o GROUP BY a, s",
        "SELECT k, SUM(v), AVG(r), COUNT(*), SUM(r), TOTAL(v), MIN(r), MAX(v) FROM o GROUP BY k",
        "SELECT COUNT(*), k, SUM(v) FROM o GROUP BY k",
        "SELECT k, SUM(r) FROM o WHERE v > -3 GROUP BY k HAVING COUNT(*) >= 2 AND SUM(r) > 1",
        "SELECT s, SUM(v) FROM o GROUP BY s HAVING SUM(v) > 1000",
        /* a part of a sum reaching 2^53 at one group far into the table:
         * the interpreter redoes the query, still ours */
        "SELECT k, SUM(big), COUNT(*) FROM o GROUP BY k",
    };
    int64_t rows[sizeof queries / sizeof *queries];
    for (size_t i = 0; i < sizeof queries / sizeof *queries; i++)
        rows[i] = same_as_sqlite(db, queries[i], "cpu");
    assert_true(rows[0] > 190000 && rows[4] > 190000);
    assert_true(rows[1] > 1000 && rows[1] < rows[0] / 5); /* HAVING drops most */
    assert_int_equal(rows[7], 0);
    /* two errors in different chunks: the first group's is the reason */
    static const char *const errs[][2] = {
        {"SELECT k, CASE WHEN k = 150000 THEN 'a' + 1 WHEN k = 20000 THEN abs('x') "
         "ELSE 0 END FROM o GROUP BY k", "abs() of text"},
        {"SELECT k, SUM(v) FROM o GROUP BY k HAVING CASE WHEN k = 3 THEN 'a' + 1 "
         "WHEN k = 190000 THEN abs('x') ELSE 1 END", "text in arithmetic"},
        {"SELECT s, SUM(v) FROM o GROUP BY s HAVING CASE WHEN s = 'key0000042' THEN abs('x') "
         "WHEN s = 'key0199000' THEN 'a' + 1 ELSE 1 END", "abs() of text"},
    };
    /* light (keys and aggregates only, column by column): two keys, one
     * not shown, a text key twice, outputs in any order */
    static const char *const light[] = {
        "SELECT s, a, SUM(v), s, COUNT(*) FROM o GROUP BY a, s",
        "SELECT SUM(v), k, AVG(r) FROM o GROUP BY a, k",
        "SELECT MAX(v), a, MIN(r), k FROM o WHERE v > 0 GROUP BY k, a",
    };
    for (int pass = 0; pass < 2; pass++) {
        if (pass) {
            setenv("ELOHIM_SQL_OUT_GROUPS", "7", 1);
            for (size_t i = 0; i < 4; i++)
                assert_int_equal(same_as_sqlite(db, queries[i], "cpu"), rows[i]);
        }
        for (size_t i = 0; i < sizeof light / sizeof *light; i++)
            assert_true(same_as_sqlite(db, light[i], "cpu") > 100000);
        for (size_t i = 0; i < sizeof errs / sizeof *errs; i++) {
            elo_sql_result *r = q(db, errs[i][0]);
            assert_string_equal(elo_sql_result_engine(r), "sqlite");
            if (!strstr(elo_sql_result_reason(r), errs[i][1]))
                fail_msg("%s: reason '%s', wanted '%s'", errs[i][0], elo_sql_result_reason(r),
                         errs[i][1]);
            assert_true(elo_sql_result_rows(r) > 1000);
            elo_sql_result_free(r);
        }
    }
    unsetenv("ELOHIM_SQL_OUT_GROUPS");
    elo_sql_close(db);
}

/* The GPU's group table (kwords_layout), checked on the CPU: the layout
 * of a job, the table elo__kernel_to_words builds from kslots word by word
 * against what sql-cuda.cu's kernel leaves (packed row count and offsets,
 * counts, plain real sums, ordered MIN/MAX images, initial values in empty
 * groups), then whole queries whose groups go out through that table
 * ($ELOHIM_SQL_WORDS) against the same queries through the CPU's kslots:
 * NULL keys, empty groups, a packed sum, MIN/MAX of negative reals,
 * HAVING, the row buffer, a sum reaching 2^53, and chunks of 3 groups. */
static int64_t dbits(double d)
{
    int64_t v;
    memcpy(&v, &d, 8);
    return v;
}

static void same_results(const char *sql, elo_sql_result *x, elo_sql_result *y)
{
    assert_string_equal(elo_sql_result_engine(x), elo_sql_result_engine(y));
    assert_int_equal(elo_sql_result_rows(x), elo_sql_result_rows(y));
    assert_int_equal(elo_sql_result_columns(x), elo_sql_result_columns(y));
    for (int64_t i = 0; i < elo_sql_result_rows(x); i++)
        for (int c = 0; c < elo_sql_result_columns(x); c++) {
            elo_sql_value a = elo_sql_result_value(x, i, c), b = elo_sql_result_value(y, i, c);
            if (a.type != b.type || (a.type == ELO_SQL_INTEGER && a.i != b.i) ||
                (a.type == ELO_SQL_REAL && dbits(a.r) != dbits(b.r)) ||
                (a.type == ELO_SQL_TEXT && strcmp(a.s, b.s)))
                fail_msg("%s: row %lld col %d differs through the GPU's words", sql,
                         (long long)i, c);
        }
}

static void test_groups_words(void **state)
{
    (void)state;
    /* a job in device form: SUM over a 1-byte column without NULLs (base
     * -5), AVG over a nullable real, MIN over a real, MAX over a nullable
     * integer, COUNT(*), COUNT over a nullable column */
    static const uint8_t types[1];
    static const int64_t vals[1];
    kernel_job j;
    memset(&j, 0, sizeof j);
    j.nrows = 100;
    j.ngroups = 3;
    j.naggs = 6;
    int fns[6] = {A_SUM, A_AVG, A_MIN, A_MAX, A_COUNT_STAR, A_COUNT};
    for (int a = 0; a < 6; a++) {
        j.agg_fn[a] = fns[a];
        j.agg_val[a] = a == 4 ? NULL : vals;
        j.agg_w[a] = 8;
    }
    j.agg_w[0] = 1;
    j.agg_b[0] = -5;
    j.agg_absmax[0] = 5;
    j.agg_real[1] = j.agg_real[2] = 1;
    j.agg_type[1] = j.agg_type[3] = j.agg_type[5] = types;
    kwords_layout l;
    elo__sql_words_layout(&j, &l);
    assert_int_equal(l.pack, 1);
    assert_true(l.pack_base == -5);
    assert_int_equal(l.W, 7);
    static const int cnt_off[6] = {-1, 1, -1, 4, -1, 6}, val_off[6] = {-1, 2, 3, 5, -1, -1};
    static const uint8_t kind[7] = {KW_INT, KW_INT, KW_REAL, KW_MIN, KW_INT, KW_MAX, KW_INT};
    for (int a = 0; a < 6; a++) {
        assert_int_equal(l.cnt_off[a], cnt_off[a]);
        assert_int_equal(l.val_off[a], val_off[a]);
    }
    assert_memory_equal(l.kind, kind, 7);
    /* no packing: offsets could reach 2^32, or the first sum is real */
    kernel_job k = j;
    k.nrows = 500000000;
    elo__sql_words_layout(&k, &l);
    assert_int_equal(l.pack, 0);
    assert_int_equal(l.W, 8);
    assert_int_equal(l.val_off[0], 1);
    k = j;
    k.agg_type[0] = types;
    elo__sql_words_layout(&k, &l);
    assert_int_equal(l.pack, 0);
    assert_int_equal(l.cnt_off[0], 1);
    assert_int_equal(l.val_off[0], 2);

    /* kslots of three groups: empty; 4 rows; 1 row */
    int64_t rows[3] = {0, 4, 1};
    kslot st[3 * 6];
    memset(st, 0, sizeof st);
    kslot *g1 = &st[6], *g2 = &st[12];
    g1[0] = (kslot){8, -6, 4};                      /* -5, 5, 3, -1: parts apart */
    g1[1] = (kslot){dbits(1.25), dbits(0.25), 3};  /* compensated 1.5 */
    g1[2] = (kslot){dbits(-2.5), 0, 4};
    g1[3] = (kslot){-7, 0, 2};
    g1[5] = (kslot){0, 0, 1};
    g2[0] = (kslot){5, 0, 1};
    g2[2] = (kslot){dbits(3.0), 0, 1};
    kernel_out o;
    memset(&o, 0, sizeof o);
    o.rows = rows;
    o.st = st;
    assert_int_equal(elo__kernel_to_words(&j, &o), ELO_OK);
    assert_non_null(o.words);
    const int64_t want[3][7] = {
        {0, 0, 0, INT64_MAX, 0, INT64_MIN, 0},
        {(int64_t)4 << 32 | (2 + 4 * 5), 3, dbits(1.5), dbits(-2.5) ^ INT64_MAX, 2, -7, 1},
        {(int64_t)1 << 32 | (5 + 5), 0, 0, dbits(3.0), 0, INT64_MIN, 0},
    };
    for (int g = 0; g < 3; g++)
        for (int w = 0; w < 7; w++)
            if (o.words[g * 7 + w] != want[g][w])
                fail_msg("group %d word %d: %llx, wanted %llx", g, w,
                         (unsigned long long)o.words[g * 7 + w], (unsigned long long)want[g][w]);
    /* the images keep the order of the doubles, and come back */
    const double order[] = {-1e300, -2.5, -1.0, -0.0, 0.0, 1e-300, 3.0, 1e300};
    for (int i = 0; i + 1 < 8; i++)
        assert_true(elo__sql_ordered(dbits(order[i]), 1) < elo__sql_ordered(dbits(order[i + 1]), 1));
    assert_true(elo__sql_ordered(elo__sql_ordered(dbits(-2.5), 1), 1) == dbits(-2.5));
    assert_true(elo__sql_ordered(-7, 0) == -7);

    elo_sql *db = mem_db();
    assert_int_equal(elo_sql_exec(db,
        "CREATE TABLE w(k INTEGER, s TEXT, v INTEGER, n INTEGER, r REAL, rn REAL, big INTEGER);"
        "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < 29999) "
        "INSERT INTO w SELECT CASE WHEN i % 53 = 0 THEN NULL ELSE (i * 7919) % 20000 * 3 END, "
        "CASE WHEN i % 61 = 0 THEN NULL ELSE printf('s%05d', (i * 104729) % 9000) END, "
        "i % 9 - 4, CASE WHEN i % 7 = 0 THEN NULL ELSE i % 13 - 6 END, (i % 17) * 0.5 - 4.25, "
        "CASE WHEN i % 5 = 0 THEN NULL ELSE (i % 11) * -0.75 + 2 END, i FROM c;"
        /* key 3: two inputs of 2^52, a sum reaching 2^53 */
        "INSERT INTO w VALUES(3, 'x', 1, 1, 1.0, 1.0, 4503599627370496),"
        "(3, 'x', 1, 1, 1.0, 1.0, 4503599627370496)"),
        ELO_OK);
    static const char *const queries[] = {
        "SELECT k, SUM(v), COUNT(*), MIN(r), MAX(r), AVG(rn), MIN(n), MAX(n), COUNT(n), SUM(n), "
        "TOTAL(n), COUNT(rn) FROM w GROUP BY k",
        "SELECT s, AVG(v), SUM(r), MIN(rn), MAX(rn), TOTAL(v) FROM w GROUP BY s",
        "SELECT k, SUM(v) FROM w GROUP BY k HAVING SUM(v) > 2 AND MIN(r) < 0",
        "SELECT v, s, SUM(n), MIN(r), MAX(r) - MIN(r) FROM w WHERE n > -5 GROUP BY v, s "
        "HAVING MIN(r) < -3",
        "SELECT k, SUM(v), COUNT(*) FROM w GROUP BY k ORDER BY 2 DESC, 1 LIMIT 50",
        "SELECT s, v, SUM(v), MIN(r), MAX(rn), s, COUNT(n) FROM w GROUP BY v, s",
        "SELECT k, SUM(big), TOTAL(big), COUNT(*) FROM w GROUP BY k",
    };
    for (size_t i = 0; i < sizeof queries / sizeof *queries; i++) {
        same_as_sqlite(db, queries[i], "cpu");
        unsetenv("ELOHIM_SQL_WORDS");
        elo_sql_result *ref = q(db, queries[i]);
        for (int pass = 0; pass < 2; pass++) {
            setenv("ELOHIM_SQL_WORDS", "1", 1);
            if (pass)
                setenv("ELOHIM_SQL_OUT_GROUPS", "3", 1);
            elo_sql_result *r = q(db, queries[i]);
            same_results(queries[i], ref, r);
            elo_sql_result_free(r);
            unsetenv("ELOHIM_SQL_OUT_GROUPS");
        }
        elo_sql_result_free(ref);
    }
    unsetenv("ELOHIM_SQL_WORDS");
    elo_sql_close(db);
}

/* Big result blocks are reused between queries (sql-engine.c's block
 * cache): the second of two equal queries gets the first one's cells and
 * text blocks back, with the right rows; a result grown row by row past
 * the cache's 1 MiB minimum keeps its rows; the cache hands out the best
 * fit, never a block more than twice the size asked for, evicts its oldest
 * block when full and keeps at most 256 MiB. */
static void test_result_blocks(void **state)
{
    (void)state;
    const size_t MiB = (size_t)1 << 20;
    size_t got;
    void *b1 = elo_malloc(5 * MiB + 16), *b2 = elo_malloc(5 * MiB + 32);
    assert_non_null(b1);
    assert_non_null(b2);
    elo__sql_block_put(b1, 5 * MiB + 16);
    elo__sql_block_put(b2, 5 * MiB + 32); /* the cache holds these two now */
    void *p = elo__sql_block_get(5 * MiB + 20, &got);
    assert_ptr_equal(p, b2);
    assert_int_equal(got, 5 * MiB + 32);
    elo_free(p);
    p = elo__sql_block_get(2 * MiB, &got); /* b1 is over twice that: a new one */
    assert_int_equal(got, 2 * MiB);
    elo_free(p);
    p = elo__sql_block_get(3 * MiB, &got);
    assert_ptr_equal(p, b1);
    assert_int_equal(got, 5 * MiB + 16);
    elo_free(p);
    /* 200 + 100 MiB is over the cap: the older block goes */
    elo__sql_block_put(elo_malloc(200 * MiB + 16), 200 * MiB + 16);
    elo__sql_block_put(elo_malloc(100 * MiB + 16), 100 * MiB + 16);
    p = elo__sql_block_get(150 * MiB, &got);
    assert_int_equal(got, 150 * MiB);
    elo_free(p);
    p = elo__sql_block_get(100 * MiB, &got);
    assert_int_equal(got, 100 * MiB + 16);
    elo_free(p);
    elo__sql_block_put(elo_malloc(4096), 4096);            /* too small: freed */
    elo__sql_block_put(elo_malloc(300 * MiB), 300 * MiB);  /* too big: freed */
    elo__sql_block_put(NULL, 0);

    elo_sql *db = mem_db();
    assert_int_equal(elo_sql_exec(db,
        "CREATE TABLE b(k INTEGER, s TEXT, v INTEGER);"
        "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < 99999) "
        "INSERT INTO b SELECT i, printf('text%08d', i), i % 7 FROM c"),
        ELO_OK);
    const char *sql = "SELECT s, MIN(k), SUM(v) FROM b GROUP BY s";
    uintptr_t cells = 0, text = 0;
    for (int rep = 0; rep < 2; rep++) {
        elo_sql_result *r = q(db, sql);
        assert_string_equal(elo_sql_result_engine(r), "cpu");
        assert_int_equal(elo_sql_result_rows(r), 100000);
        assert_non_null(r->text); /* 1.3 MB of keys: a block of its own */
        if (rep) {
            assert_true((uintptr_t)r->cells == cells);
            assert_true((uintptr_t)r->text == text);
        }
        cells = (uintptr_t)r->cells;
        text = (uintptr_t)r->text;
        for (int64_t i = 0; i < 100000; i += 999) {
            char want[32];
            snprintf(want, sizeof want, "text%08lld", (long long)i);
            assert_string_equal(elo_sql_result_value(r, i, 0).s, want);
            assert_int_equal(elo_sql_result_value(r, i, 1).i, i);
            assert_int_equal(elo_sql_result_value(r, i, 2).i, i % 7);
        }
        elo_sql_result_free(r);
    }
    same_as_sqlite(db, sql, "cpu");
    /* SQLite's rows arrive one by one: 4.8 MB of cells, grown by copies */
    assert_int_equal(elo_sql_set_device(db, ELO_SQL_DEVICE_SQLITE), ELO_OK);
    elo_sql_result *r = q(db, "SELECT k, v, k * 2 FROM b");
    assert_int_equal(elo_sql_result_rows(r), 100000);
    for (int64_t i = 0; i < 100000; i++)
        if (elo_sql_result_value(r, i, 0).i != i || elo_sql_result_value(r, i, 1).i != i % 7 ||
            elo_sql_result_value(r, i, 2).i != 2 * i)
            fail_msg("row %lld", (long long)i);
    assert_int_equal(elo__result_reserve(r, 300000), ELO_OK); /* rows stay */
    assert_true(r->cap >= 300000);
    assert_int_equal(elo_sql_result_value(r, 99999, 2).i, 199998);
    assert_int_equal(elo_sql_result_value(r, 0, 1).i, 0);
    elo_sql_result_free(r);
    elo_sql_close(db);
}

/* The GPU copies' narrowing rule (the CUDA kernels read what it picks). */
static void expect_form(int has_int, int has_real, int has_text, int64_t imin, int64_t imax,
                        uint32_t ndict, int width, int64_t base)
{
    sql_column col;
    memset(&col, 0, sizeof col);
    col.has_int = has_int;
    col.has_real = has_real;
    col.has_text = has_text;
    col.imin = imin;
    col.imax = imax;
    col.ndict = ndict;
    int w = 0;
    int64_t b = -1;
    elo__sql_device_form(&col, &w, &b);
    assert_int_equal(w, width);
    assert_true(b == base);
}

static void test_device_form(void **state)
{
    (void)state;
    expect_form(1, 0, 0, 1, 5, 0, 1, 1);                       /* v1 of db-benchmark */
    expect_form(1, 0, 0, -100, 155, 0, 1, -100);               /* range 255: one byte */
    expect_form(1, 0, 0, -100, 156, 0, 2, -100);               /* range 256: two */
    expect_form(1, 0, 0, 0, 65535, 0, 2, 0);
    expect_form(1, 0, 0, 0, 65536, 0, 4, 0);
    expect_form(1, 0, 0, INT64_MIN, INT64_MIN + 0xffffffffll, 0, 4, INT64_MIN);
    expect_form(1, 0, 0, INT64_MIN, INT64_MIN + 0x100000000ll, 0, 8, 0);
    expect_form(1, 0, 0, INT64_MIN, INT64_MAX, 0, 8, 0);       /* the range wraps uint64 */
    expect_form(0, 0, 1, 0, 0, 256, 1, 0);                     /* text codes 0..255 */
    expect_form(0, 0, 1, 0, 0, 257, 2, 0);
    expect_form(0, 0, 1, 0, 0, 1000000, 4, 0);                 /* id3 of db-benchmark */
    expect_form(0, 0, 0, 0, 0, 0, 1, 0);                       /* only NULLs */
    expect_form(0, 1, 0, 0, 0, 0, 8, 0);                       /* reals stay raw */
    expect_form(1, 1, 0, 0, 3, 0, 8, 0);                       /* mixed int/real */
    expect_form(1, 0, 1, 0, 3, 4, 8, 0);                       /* mixed int/text */
}

static void test_dataframe_api(void **state)
{
    (void)state;
    elo_sql *db = mem_db();
    assert_int_equal(elo_sql_exec(db, "CREATE TABLE sales(region TEXT, price REAL, quantity INTEGER);"
                                      "INSERT INTO sales VALUES('north', 2.5, 4),('south', 1.0, 3),"
                                      "('north', 4.0, 1),('east', NULL, 2)"),
                     ELO_OK);
    const char *keys[] = {"region"};
    elo_sql_agg aggs[] = {{ELO_SQL_AGG_SUM, "quantity"}, {ELO_SQL_AGG_AVG, "price"},
                          {ELO_SQL_AGG_COUNT, NULL}, {ELO_SQL_AGG_COUNT_DISTINCT, "price"}};
    elo_sql_result *r;
    assert_int_equal(elo_sql_groupby(db, "sales", keys, 1, aggs, 4, "quantity > 1", &r), ELO_OK);
    assert_int_equal(elo_sql_result_columns(r), 5);
    assert_int_equal(elo_sql_result_rows(r), 3);
    assert_string_equal(elo_sql_result_value(r, 0, 0).s, "east");
    assert_int_equal(elo_sql_result_value(r, 0, 2).type, ELO_SQL_NULL);
    assert_string_equal(elo_sql_result_value(r, 1, 0).s, "north");
    assert_int_equal(elo_sql_result_value(r, 1, 1).i, 4);
    assert_true(elo_sql_result_value(r, 1, 2).r == 2.5);
    assert_int_equal(elo_sql_result_value(r, 1, 3).i, 1);
    elo_sql_result_free(r);
    const char *exprs[] = {"price * quantity"};
    assert_int_equal(elo_sql_project(db, "sales", exprs, 1, NULL, &r), ELO_OK);
    assert_string_equal(elo_sql_result_engine(r), "cpu");
    assert_int_equal(elo_sql_result_rows(r), 4);
    assert_true(elo_sql_result_value(r, 0, 0).r == 10.0);
    assert_int_equal(elo_sql_result_value(r, 3, 0).type, ELO_SQL_NULL);
    elo_sql_result_free(r);
    assert_int_equal(elo_sql_groupby(db, "sales", keys, 5, aggs, 1, NULL, &r), ELO_BADINPUT);
    elo_sql_close(db);
}

static void test_cache_invalidation(void **state)
{
    (void)state;
    if (system("command -v sqlite3 >/dev/null 2>&1") != 0)
        fail_msg("the sqlite3 command-line shell is required for this test");
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/elohim-sqltest-%s", MKSTEMP_SUFFIX);
    assert_non_null(mkdtemp(dir));
    elo_sql *db;
    assert_int_equal(elo_sql_open(dir, &db), ELO_OK);
    assert_int_equal(elo_sql_set_device(db, ELO_SQL_DEVICE_CPU), ELO_OK);
    assert_int_equal(elo_sql_exec(db, "CREATE TABLE t(g INTEGER, x INTEGER);"
                                      "INSERT INTO t VALUES(1, 10),(1, 20),(2, 5)"),
                     ELO_OK);
    elo_sql_result *r = q(db, "SELECT g, SUM(x) FROM t GROUP BY g");
    assert_string_equal(elo_sql_result_engine(r), "cpu");
    assert_int_equal(elo_sql_result_value(r, 0, 1).i, 30);
    elo_sql_result_free(r);
    uint64_t loads = elo_sql_get_stats(db)->cache_loads;
    r = q(db, "SELECT g, SUM(x) FROM t GROUP BY g"); /* served from the cache */
    elo_sql_result_free(r);
    assert_int_equal(elo_sql_get_stats(db)->cache_loads, loads);

    /* another process writes the table between two queries */
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "sqlite3 %s/elohim.db \"PRAGMA busy_timeout=5000; INSERT INTO t VALUES(1, 100); "
             "UPDATE t SET x = 7 WHERE g = 2;\" >/dev/null",
             dir);
    assert_int_equal(system(cmd), 0);
    r = q(db, "SELECT g, SUM(x) FROM t GROUP BY g");
    assert_string_equal(elo_sql_result_engine(r), "cpu");
    assert_int_equal(elo_sql_result_value(r, 0, 1).i, 130);
    assert_int_equal(elo_sql_result_value(r, 1, 1).i, 7);
    elo_sql_result_free(r);
    assert_int_equal(elo_sql_get_stats(db)->cache_loads, loads + 1);

    /* our own write, then DDL, also invalidate */
    assert_int_equal(elo_sql_exec(db, "DELETE FROM t WHERE g = 1"), ELO_OK);
    r = q(db, "SELECT COUNT(*), SUM(x) FROM t");
    assert_int_equal(elo_sql_result_value(r, 0, 0).i, 1);
    elo_sql_result_free(r);
    assert_int_equal(elo_sql_exec(db, "ALTER TABLE t ADD COLUMN y INTEGER DEFAULT 3"), ELO_OK);
    r = q(db, "SELECT SUM(y) FROM t");
    assert_string_equal(elo_sql_result_engine(r), "cpu");
    assert_int_equal(elo_sql_result_value(r, 0, 0).i, 3);
    elo_sql_result_free(r);
    snprintf(cmd, sizeof cmd, "sqlite3 %s/elohim.db \"DROP TABLE t\"", dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(elo_sql_query(db, "SELECT SUM(y) FROM t", &r), ELO_SQL);
    elo_sql_close(db);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_logictest_runner(void **state)
{
    (void)state;
    char path[64];
    snprintf(path, sizeof path, "/tmp/elohim-slt-%s", MKSTEMP_SUFFIX);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *script =
        "hash-threshold 4\n\nstatement ok\nCREATE TABLE t(a INTEGER, b TEXT)\n\n"
        "statement ok\nINSERT INTO t VALUES(1,'x'),(2,''),(3,NULL)\n\n"
        "statement error\nINSERT INTO nosuch VALUES(1)\n\n"
        "query IT rowsort\nSELECT a, b FROM t\n----\n1\nx\n2\n(empty)\n3\nNULL\n\n"
        "query R nosort\nSELECT AVG(a) FROM t\n----\n2.000\n\n"
        "skipif sqlite\nquery I nosort\nSELECT 1\n----\n2\n\n"
        "query I nosort\nSELECT a FROM t ORDER BY a DESC\n----\n3\n2\n1\n\n"
        "query I nosort\nSELECT a FROM t ORDER BY a\n----\n1\n2\n4\n";
    assert_int_equal(write(fd, script, strlen(script)), (ssize_t)strlen(script));
    close(fd);
    elo_slt_counts c;
    assert_int_equal(elo_sql_logictest(path, ELO_SQL_DEVICE_CPU, &c, NULL, 0), ELO_OK);
    assert_int_equal(c.queries, 4);
    assert_int_equal(c.passed, 3);
    assert_int_equal(c.failed, 1); /* the last one expects 4 */
    assert_int_equal(c.skipped, 1);
    assert_int_equal(c.statement_failures, 0);
    assert_int_equal(c.ours + c.sqlite, 4);
    unlink(path);
    elo_md5 m;
    char hex[33];
    elo__md5_init(&m);
    elo__md5_update(&m, "abc", 3);
    elo__md5_final(&m, hex);
    assert_string_equal(hex, "900150983cd24fb0d6963f7d28e17f72");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_value_order),   cmocka_unit_test(test_parse_refusals),
        cmocka_unit_test(test_semantics),     cmocka_unit_test(test_sum_overflow),
        cmocka_unit_test(test_many_groups),   cmocka_unit_test(test_groups_out),
        cmocka_unit_test(test_dataframe_api), cmocka_unit_test(test_cache_invalidation),
        cmocka_unit_test(test_logictest_runner), cmocka_unit_test(test_device_form),
        cmocka_unit_test(test_result_blocks), cmocka_unit_test(test_groups_words),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
