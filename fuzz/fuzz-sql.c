/* fuzz-sql.c - libFuzzer harness for the SQL front end and executor: the
 * input is one SQL text run against a small table through our engine; when
 * ours answers, SQLite must give the same rows (compared as a multiset of
 * value strings). Crashes, sanitizer reports and mismatches are failures. */
#include "elohim/core.h"
#include "elohim/sql.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static elo_sql *db;

static char *row_text(const elo_sql_result *r, int64_t row)
{
    size_t cap = 256, n = 0;
    char *s = malloc(cap);
    s[0] = 0;
    for (int c = 0; c < elo_sql_result_columns(r); c++) {
        elo_sql_value v = elo_sql_result_value(r, row, c);
        char buf[64];
        const char *t = buf;
        switch (v.type) {
        case ELO_SQL_INTEGER: snprintf(buf, sizeof buf, "i%lld", (long long)v.i); break;
        case ELO_SQL_REAL: snprintf(buf, sizeof buf, "r%.9g", v.r); break;
        case ELO_SQL_TEXT: t = v.s; break;
        default: snprintf(buf, sizeof buf, "NULL"); break;
        }
        size_t k = strlen(t);
        if (n + k + 2 > cap) {
            cap = (n + k + 2) * 2;
            s = realloc(s, cap);
        }
        memcpy(s + n, t, k);
        n += k;
        s[n++] = '|';
        s[n] = 0;
    }
    return s;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char **)a, *(char **)b); }

static char **rows_sorted(const elo_sql_result *r)
{
    int64_t n = elo_sql_result_rows(r);
    char **v = malloc(sizeof(char *) * (size_t)(n + 1));
    for (int64_t i = 0; i < n; i++)
        v[i] = row_text(r, i);
    qsort(v, (size_t)n, sizeof(char *), cmp_str);
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!db) {
        if (elo_sql_open_file(":memory:", &db) != ELO_OK)
            abort();
        elo_sql_exec(db, "CREATE TABLE t(a INTEGER, b REAL, c TEXT, d);"
                         "INSERT INTO t VALUES(1, 1.5, 'x', 1),(2, -0.0, 'y', 'q'),(NULL, 2.5, NULL, 2.5),"
                         "(9223372036854775807, 1e300, '', NULL),(-3, NULL, 'x', -7)");
    }
    if (size > 4096)
        return 0;
    char *sql = malloc(size + 1);
    memcpy(sql, data, size);
    sql[size] = 0;
    if (strlen(sql) != size) {
        free(sql);
        return 0;
    }
    elo_sql_set_device(db, ELO_SQL_DEVICE_CPU);
    elo_sql_result *a = NULL, *b = NULL;
    int ra = elo_sql_query(db, sql, &a);
    if (ra == ELO_OK && strcmp(elo_sql_result_engine(a), "sqlite")) {
        elo_sql_set_device(db, ELO_SQL_DEVICE_SQLITE);
        int rb = elo_sql_query(db, sql, &b);
        if (rb != ELO_OK || elo_sql_result_rows(a) != elo_sql_result_rows(b))
            abort();
        char **x = rows_sorted(a), **y = rows_sorted(b);
        for (int64_t i = 0; i < elo_sql_result_rows(a); i++) {
            if (strcmp(x[i], y[i]))
                abort();
            free(x[i]);
            free(y[i]);
        }
        free(x);
        free(y);
    }
    elo_sql_result_free(a);
    elo_sql_result_free(b);
    free(sql);
    return 0;
}
