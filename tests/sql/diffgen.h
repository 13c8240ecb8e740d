/* diffgen.h - random tables and random queries in our SQL subset, for the
 * differential fuzzer (tests/unit/test-sql-diff.c): integers with extremes,
 * reals (-0.0, huge, tiny), short texts, NULLs, and a column of mixed types;
 * queries with WHERE, GROUP BY, HAVING, aggregates, DISTINCT, ORDER BY,
 * LIMIT/OFFSET, CASE, CAST and arithmetic. Deterministic per seed. */
#ifndef ELOHIM_TESTS_SQL_DIFFGEN_H
#define ELOHIM_TESTS_SQL_DIFFGEN_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef struct { uint64_t s; } dg_rng;

static uint64_t dg_next(dg_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static int dg_int(dg_rng *r, int n) { return (int)(dg_next(r) % (uint64_t)n); }

static const char *const dg_cols[] = {"a", "b", "c", "d", "e", "f"};
/* a: small ints, b: ints with extremes, c: reals, d: text, e: mixed, f: small ints no NULL */

typedef struct { char *s; size_t n, cap; } dg_buf;
static void dg_put(dg_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void dg_put(dg_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    if (k > 0)
        b->n += (size_t)k < b->cap - b->n ? (size_t)k : b->cap - b->n - 1;
}

static void dg_literal(dg_rng *r, dg_buf *b)
{
    switch (dg_int(r, 10)) {
    case 0: dg_put(b, "NULL"); break;
    case 1: dg_put(b, "%d.5", dg_int(r, 20) - 10); break;
    case 2: dg_put(b, "9223372036854775807"); break;
    case 3: dg_put(b, "'%c'", "xyz"[dg_int(r, 3)]); break;
    case 4: dg_put(b, "0"); break;
    default: dg_put(b, "%d", dg_int(r, 21) - 10); break;
    }
}

static void dg_expr(dg_rng *r, dg_buf *b, int depth, int numeric_only)
{
    int k = depth > 2 ? dg_int(r, 2) : dg_int(r, 12);
    switch (k) {
    case 0: dg_put(b, "%s", dg_cols[numeric_only ? (int[]){0, 1, 2, 5}[dg_int(r, 4)] : dg_int(r, 6)]); break;
    case 1: dg_literal(r, b); break;
    case 2: case 3: case 4: {
        static const char *ops[] = {"+", "-", "*", "/", "%"};
        dg_put(b, "(");
        dg_expr(r, b, depth + 1, 1);
        dg_put(b, " %s ", ops[dg_int(r, 5)]);
        dg_expr(r, b, depth + 1, 1);
        dg_put(b, ")");
        break;
    }
    case 5: dg_put(b, "- "); dg_expr(r, b, depth + 1, 1); break;
    case 6:
        dg_put(b, "CASE WHEN ");
        dg_expr(r, b, depth + 1, 1);
        dg_put(b, " > 0 THEN ");
        dg_expr(r, b, depth + 1, numeric_only);
        dg_put(b, " ELSE ");
        dg_expr(r, b, depth + 1, numeric_only);
        dg_put(b, " END");
        break;
    case 7:
        dg_put(b, "CAST(");
        dg_expr(r, b, depth + 1, 1);
        dg_put(b, " AS %s)", (const char *[]){"INTEGER", "REAL", "NUMERIC", "SIGNED"}[dg_int(r, 4)]);
        break;
    case 8:
        dg_put(b, "%s(", (const char *[]){"coalesce", "nullif", "ifnull"}[dg_int(r, 3)]);
        dg_expr(r, b, depth + 1, numeric_only);
        dg_put(b, ", ");
        dg_expr(r, b, depth + 1, numeric_only);
        dg_put(b, ")");
        break;
    case 9: dg_put(b, "abs("); dg_expr(r, b, depth + 1, 1); dg_put(b, ")"); break;
    default: dg_put(b, "%s", dg_cols[dg_int(r, 6)]); break;
    }
}

static void dg_pred(dg_rng *r, dg_buf *b, int depth)
{
    int k = depth > 1 ? dg_int(r, 5) : dg_int(r, 9);
    static const char *cmp[] = {"=", "<>", "<", "<=", ">", ">=", "==", "!="};
    switch (k) {
    case 0: case 1: case 2:
        dg_expr(r, b, 2, 0);
        dg_put(b, " %s ", cmp[dg_int(r, 8)]);
        dg_expr(r, b, 2, 0);
        break;
    case 3: dg_expr(r, b, 2, 0); dg_put(b, dg_int(r, 2) ? " IS NULL" : " IS NOT NULL"); break;
    case 4:
        dg_expr(r, b, 2, 1);
        dg_put(b, dg_int(r, 2) ? " BETWEEN " : " NOT BETWEEN ");
        dg_literal(r, b);
        dg_put(b, " AND ");
        dg_literal(r, b);
        break;
    case 5: {
        dg_expr(r, b, 2, 0);
        dg_put(b, dg_int(r, 2) ? " IN (" : " NOT IN (");
        int n = dg_int(r, 4);
        for (int i = 0; i < n; i++) {
            if (i) dg_put(b, ", ");
            dg_literal(r, b);
        }
        dg_put(b, ")");
        break;
    }
    case 6: dg_put(b, "NOT ("); dg_pred(r, b, depth + 1); dg_put(b, ")"); break;
    default:
        dg_put(b, "(");
        dg_pred(r, b, depth + 1);
        dg_put(b, dg_int(r, 2) ? " AND " : " OR ");
        dg_pred(r, b, depth + 1);
        dg_put(b, ")");
        break;
    }
}

static void dg_agg(dg_rng *r, dg_buf *b)
{
    static const char *fn[] = {"COUNT", "SUM", "TOTAL", "AVG", "MIN", "MAX"};
    int k = dg_int(r, 8);
    if (k == 6) { dg_put(b, "COUNT(*)"); return; }
    if (k == 7) { dg_put(b, "COUNT(DISTINCT %s)", dg_cols[dg_int(r, 6)]); return; }
    dg_put(b, "%s(", fn[k]);
    if (dg_int(r, 3) == 0) dg_expr(r, b, 2, 1);
    else dg_put(b, "%s", dg_cols[k >= 4 ? dg_int(r, 6) : (int[]){0, 1, 2, 5}[dg_int(r, 4)]]);
    dg_put(b, ")");
}

/* One random query into `out` (cap bytes). */
static void dg_query(dg_rng *r, char *out, size_t cap)
{
    dg_buf b = {out, 0, cap};
    out[0] = 0;
    int grouped = dg_int(r, 2);
    dg_put(&b, "SELECT %s", dg_int(r, 5) == 0 ? "DISTINCT " : "");
    int nout = 1 + dg_int(r, 3);
    int nkeys = 1 + dg_int(r, 2);
    int keys[2] = {dg_int(r, 6), dg_int(r, 6)};
    for (int i = 0; i < nout; i++) {
        if (i) dg_put(&b, ", ");
        if (grouped) {
            int k = dg_int(r, 5);
            if (k == 4) dg_put(&b, "%s", dg_cols[dg_int(r, 6)]); /* bare column */
            else if (k == 0) dg_put(&b, "%s", dg_cols[keys[dg_int(r, nkeys)]]);
            else if (k == 1) { dg_agg(r, &b); dg_put(&b, " %s ", (const char *[]){"+", "*", "-", "/"}[dg_int(r, 4)]); dg_literal(r, &b); }
            else dg_agg(r, &b);
        } else {
            dg_expr(r, &b, 0, 0);
        }
    }
    dg_put(&b, " FROM t");
    if (dg_int(r, 3))
        { dg_put(&b, " WHERE "); dg_pred(r, &b, 0); }
    if (grouped && dg_int(r, 4)) {
        dg_put(&b, " GROUP BY %s", dg_cols[keys[0]]);
        if (nkeys > 1) dg_put(&b, ", %s", dg_cols[keys[1]]);
        if (dg_int(r, 3) == 0) {
            dg_put(&b, " HAVING ");
            dg_agg(r, &b);
            dg_put(&b, " %s ", (const char *[]){">", "<", "=", "<>"}[dg_int(r, 4)]);
            dg_literal(r, &b);
        }
    }
    if (dg_int(r, 3) == 0) {
        dg_put(&b, " ORDER BY ");
        for (int i = 0; i < nout; i++)
            dg_put(&b, "%s%d%s", i ? ", " : "", i + 1, dg_int(r, 2) ? " DESC" : "");
        if (dg_int(r, 2))
            dg_put(&b, " LIMIT %d OFFSET %d", dg_int(r, 5), dg_int(r, 3));
    }
}

/* SQL that creates table t with `rows` random rows. */
static void dg_table(dg_rng *r, char *out, size_t cap, int rows)
{
    dg_buf b = {out, 0, cap};
    dg_put(&b, "DROP TABLE IF EXISTS t; CREATE TABLE t(a INTEGER, b INTEGER, c REAL, d TEXT, e, "
               "f INTEGER);");
    for (int i = 0; i < rows; i++) {
        dg_put(&b, "INSERT INTO t VALUES(");
        /* a */
        if (dg_int(r, 6) == 0) dg_put(&b, "NULL,"); else dg_put(&b, "%d,", dg_int(r, 11) - 5);
        /* b */
        switch (dg_int(r, 8)) {
        case 0: dg_put(&b, "NULL,"); break;
        case 1: dg_put(&b, "9223372036854775807,"); break;
        case 2: dg_put(&b, "-9223372036854775808,"); break;
        case 3: dg_put(&b, "%lld,", (long long)(dg_next(r) >> 2)); break;
        default: dg_put(&b, "%d,", dg_int(r, 2001) - 1000); break;
        }
        /* c */
        switch (dg_int(r, 8)) {
        case 0: dg_put(&b, "NULL,"); break;
        case 1: dg_put(&b, "-0.0,"); break;
        case 2: dg_put(&b, "1e300,"); break;
        case 3: dg_put(&b, "%d.0,", dg_int(r, 7) - 3); break;
        default: dg_put(&b, "%.6f,", (double)(int64_t)(dg_next(r) % 2000001) / 1000.0 - 1000.0); break;
        }
        /* d */
        switch (dg_int(r, 6)) {
        case 0: dg_put(&b, "NULL,"); break;
        case 1: dg_put(&b, "'',"); break;
        default: dg_put(&b, "'%c%c',", "abc"[dg_int(r, 3)], "xy"[dg_int(r, 2)]); break;
        }
        /* e: mixed */
        switch (dg_int(r, 5)) {
        case 0: dg_put(&b, "NULL,"); break;
        case 1: dg_put(&b, "%d,", dg_int(r, 5)); break;
        case 2: dg_put(&b, "%d.25,", dg_int(r, 5)); break;
        case 3: dg_put(&b, "'%d',", dg_int(r, 5)); break;
        default: dg_put(&b, "'w%d',", dg_int(r, 3)); break;
        }
        dg_put(&b, "%d);", dg_int(r, 4));
    }
}

#endif
