/* sql-slt.c - the sqllogictest runner: reads a script, runs statements on
 * SQLite and queries through our engine (SQLite as the fallback), turns
 * each result into the printed values the reference runner produces (see
 * the script folder's README: NULL, (empty), @ for unprintable bytes,
 * sqlite3_column_int/double conversions, %.3f after rounding to 16
 * significant digits), sorts them as the record asks and compares values
 * or their MD5 hash. */
#include "sql-impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int elo__sql_query_ex(elo_sql *db, const char *sql, elo_sql_result **out, int keep_partial);

typedef struct {
    char **v;
    int64_t n, cap;
} strvec;

static int sv_push(strvec *s, char *x)
{
    if (s->n == s->cap) {
        int64_t nc = s->cap ? s->cap * 2 : 64;
        char **nv = elo_realloc(s->v, sizeof(char *) * (size_t)nc);
        if (!nv)
            return ELO_NOMEM;
        s->v = nv;
        s->cap = nc;
    }
    s->v[s->n++] = x;
    return ELO_OK;
}

static void fmt_real(double r, char *buf, size_t cap)
{
    if (fabs(r) < 1e12 || isinf(r) || isnan(r)) {
        snprintf(buf, cap, "%.3f", r);
        return;
    }
    /* exact decimal of the value rounded to 16 significant digits */
    char e[64];
    snprintf(e, sizeof e, "%.15e", r);
    const char *p = e;
    char digits[20];
    int nd = 0;
    int neg = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9')
            digits[nd++] = *p;
    int exp10 = atoi(p + 1);
    /* value = d.ddd x 10^exp10 with exp10 >= 12: integer digits exp10+1 */
    char out[400];
    size_t o = 0;
    if (neg)
        out[o++] = '-';
    int intd = exp10 + 1;
    for (int i = 0; i < intd && o < sizeof out - 8; i++)
        out[o++] = i < nd ? digits[i] : '0';
    out[o++] = '.';
    for (int i = 0; i < 3; i++)
        out[o++] = intd + i < nd ? digits[intd + i] : '0';
    out[o] = 0;
    snprintf(buf, cap, "%s", out);
}

/* SQLite's own conversion of a value (for text->int/real, real->text). */
static void conv(elo_sql *db, const sv *v, char type, char *buf, size_t cap)
{
    sqlite3_stmt *st = db->conv;
    sqlite3_reset(st);
    if (v->t == SV_INT) sqlite3_bind_int64(st, 1, v->i);
    else if (v->t == SV_REAL) sqlite3_bind_double(st, 1, v->r);
    else sqlite3_bind_text(st, 1, v->s, (int)v->len, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_ROW) {
        snprintf(buf, cap, "?");
        return;
    }
    if (type == 'I')
        snprintf(buf, cap, "%d", sqlite3_column_int(st, 0));
    else if (type == 'R')
        fmt_real(sqlite3_column_double(st, 0), buf, cap);
    else
        snprintf(buf, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
}

static char *format_value(elo_sql *db, const sv *v, char type)
{
    char small[512];
    if (v->t == SV_NULL)
        return elo_strdup("NULL");
    if (type == 'I') {
        if (v->t == SV_INT) snprintf(small, sizeof small, "%d", (int)(int32_t)(uint32_t)(uint64_t)v->i);
        else if (v->t == SV_REAL) snprintf(small, sizeof small, "%d", (int)(int32_t)(uint32_t)(uint64_t)elo__sql_d2i(v->r));
        else conv(db, v, 'I', small, sizeof small);
        return elo_strdup(small);
    }
    if (type == 'R') {
        if (v->t == SV_INT) fmt_real((double)v->i, small, sizeof small);
        else if (v->t == SV_REAL) fmt_real(v->r, small, sizeof small);
        else conv(db, v, 'R', small, sizeof small);
        return elo_strdup(small);
    }
    /* text */
    if (v->t == SV_INT) {
        snprintf(small, sizeof small, "%lld", (long long)v->i);
        return elo_strdup(small);
    }
    const char *s;
    size_t n;
    if (v->t == SV_REAL) {
        conv(db, v, 'T', small, sizeof small);
        s = small;
        n = strlen(small);
    } else {
        s = v->s;
        n = v->len;
    }
    if (n == 0)
        return elo_strdup("(empty)");
    char *o = elo_malloc(n + 1);
    if (!o)
        return NULL;
    for (size_t i = 0; i < n; i++)
        o[i] = (s[i] < ' ' || s[i] > '~') ? '@' : s[i];
    o[n] = 0;
    return o;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static __thread int g_width;
static int cmp_row(const void *a, const void *b)
{
    char *const *x = *(char **const *)a, *const *y = *(char **const *)b;
    for (int i = 0; i < g_width; i++) {
        int c = strcmp(x[i], y[i]);
        if (c)
            return c;
    }
    return 0;
}

/* next line of the buffer (NUL-terminated in place), NULL at the end */
static char *next_line(char **cur, int64_t *lineno)
{
    char *p = *cur;
    if (!p || !*p)
        return NULL;
    char *nl = strchr(p, '\n');
    if (nl) {
        *nl = 0;
        *cur = nl + 1;
    } else {
        *cur = p + strlen(p);
    }
    size_t n = strlen(p);
    if (n && p[n - 1] == '\r')
        p[n - 1] = 0;
    (*lineno)++;
    return p;
}

static int blank(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t')
            return 0;
    return 1;
}

int elo_sql_logictest(const char *path, elo_sql_device device, elo_slt_counts *cnt, FILE *log,
                      int max_report)
{
    memset(cnt, 0, sizeof *cnt);
    char *text = NULL;
    size_t len;
    int rc = elo_read_file(path, (size_t)1 << 30, &text, &len);
    if (rc < 0)
        return rc;
    elo_sql *db;
    rc = elo_sql_open_file(":memory:", &db);
    if (rc < 0) {
        elo_free(text);
        return rc;
    }
    rc = elo_sql_set_device(db, device);
    if (rc < 0) {
        elo_sql_close(db);
        elo_free(text);
        return rc;
    }
    int64_t threshold = 0, lineno = 0;
    int reported = 0;
    char *cur = text;
    char *line;
    size_t sqlcap = 1 << 16;
    char *sql = elo_malloc(sqlcap);
    strvec expected = {0}, got = {0};
    if (!sql) {
        rc = ELO_NOMEM;
        goto out;
    }
    for (;;) {
        line = next_line(&cur, &lineno);
        if (!line)
            break;
        if (blank(line) || line[0] == '#')
            continue;
        int skip = 0;
        /* conditions */
        while (!strncmp(line, "skipif ", 7) || !strncmp(line, "onlyif ", 7)) {
            const char *db_name = line + 7;
            size_t n = strcspn(db_name, " \t#");
            int is_sqlite = n == 6 && !strncmp(db_name, "sqlite", 6);
            if (line[0] == 's' ? is_sqlite : !is_sqlite)
                skip = 1;
            line = next_line(&cur, &lineno);
            if (!line)
                goto out;
        }
        if (!strncmp(line, "hash-threshold", 14)) {
            threshold = atoll(line + 14);
            continue;
        }
        if (!strncmp(line, "halt", 4)) {
            if (!skip)
                break;
            continue;
        }
        int64_t rec_line = lineno;
        int is_stmt = !strncmp(line, "statement", 9);
        int is_query = !strncmp(line, "query", 5);
        if (!is_stmt && !is_query) {
            /* unknown record: skip to the blank line */
            while ((line = next_line(&cur, &lineno)) && !blank(line)) {}
            continue;
        }
        char head[256];
        snprintf(head, sizeof head, "%s", line);
        /* SQL lines */
        size_t sl = 0;
        sql[0] = 0;
        int have_sep = 0;
        while ((line = next_line(&cur, &lineno)) && !blank(line)) {
            if (is_query && !strcmp(line, "----")) {
                have_sep = 1;
                break;
            }
            size_t n = strlen(line);
            if (sl + n + 2 > sqlcap) {
                size_t nc = (sl + n + 2) * 2;
                char *ns = elo_realloc(sql, nc);
                if (!ns) {
                    rc = ELO_NOMEM;
                    goto out;
                }
                sql = ns;
                sqlcap = nc;
            }
            if (sl)
                sql[sl++] = '\n';
            memcpy(sql + sl, line, n + 1);
            sl += n;
        }
        for (int64_t i = 0; i < expected.n; i++)
            elo_free(expected.v[i]);
        expected.n = 0;
        if (have_sep)
            while ((line = next_line(&cur, &lineno)) && !blank(line))
                if (sv_push(&expected, elo_strdup(line)) < 0) {
                    rc = ELO_NOMEM;
                    goto out;
                }
        if (skip) {
            cnt->skipped++;
            continue;
        }
        if (is_stmt) {
            int want_ok = strstr(head, "ok") != NULL;
            int r = elo_sql_exec(db, sql);
            cnt->statements++;
            if ((r == ELO_OK) != want_ok) {
                cnt->statement_failures++;
                if (log && reported++ < max_report)
                    fprintf(log, "%s:%lld: statement %s: %s\n  %s\n", path, (long long)rec_line,
                            want_ok ? "failed" : "succeeded but should fail",
                            want_ok ? elo_errmsg() : "", sql);
            }
            continue;
        }
        /* query <types> [sort] [label] */
        char types[64] = "", sortmode[32] = "nosort";
        sscanf(head, "query %63s %31s", types, sortmode);
        cnt->queries++;
        elo_sql_result *res = NULL;
        elo__sql_query_ex(db, sql, &res, 1);
        if (res && !strcmp(res->engine, "sqlite")) {
            cnt->sqlite++;
            int k = 0;
            while (k < cnt->nreasons && strncmp(cnt->reasons[k].why, res->reason, 95))
                k++;
            if (k == cnt->nreasons && k < (int)ELO_ARRAY_LEN(cnt->reasons)) {
                snprintf(cnt->reasons[k].why, sizeof cnt->reasons[k].why, "%.95s", res->reason);
                cnt->reasons[k].n = 0;
                cnt->nreasons++;
            }
            if (k < cnt->nreasons) {
                cnt->reasons[k].n++;
                while (k > 0 && cnt->reasons[k].n > cnt->reasons[k - 1].n) {
                    __typeof__(cnt->reasons[0]) tmp = cnt->reasons[k];
                    cnt->reasons[k] = cnt->reasons[k - 1];
                    cnt->reasons[k - 1] = tmp;
                    k--;
                }
            }
        }
        else if (res)
            cnt->ours++;
        for (int64_t i = 0; i < got.n; i++)
            elo_free(got.v[i]);
        got.n = 0;
        int w = res ? res->ncols : 0;
        if (res)
            for (int64_t r = 0; r < res->nrows; r++)
                for (int c = 0; c < w; c++) {
                    char t = c < (int)strlen(types) ? types[c] : 'T';
                    if (sv_push(&got, format_value(db, &res->cells[r * w + c], t)) < 0) {
                        rc = ELO_NOMEM;
                        elo_sql_result_free(res);
                        goto out;
                    }
                }
        if (!strcmp(sortmode, "rowsort") && w > 0) {
            int64_t nr = got.n / w;
            char ***rows = elo_malloc(sizeof(char **) * (size_t)(nr ? nr : 1));
            char **flat = elo_malloc(sizeof(char *) * (size_t)(got.n ? got.n : 1));
            if (!rows || !flat) {
                elo_free(rows);
                elo_free(flat);
                rc = ELO_NOMEM;
                elo_sql_result_free(res);
                goto out;
            }
            for (int64_t r = 0; r < nr; r++)
                rows[r] = &got.v[r * w];
            g_width = w;
            qsort(rows, (size_t)nr, sizeof(char **), cmp_row);
            for (int64_t r = 0; r < nr; r++)
                memcpy(&flat[r * w], rows[r], sizeof(char *) * (size_t)w);
            if (got.n)
                memcpy(got.v, flat, sizeof(char *) * (size_t)got.n);
            elo_free(rows);
            elo_free(flat);
        } else if (!strcmp(sortmode, "valuesort")) {
            if (got.n > 1)
                qsort(got.v, (size_t)got.n, sizeof(char *), cmp_str);
        }
        int pass;
        long long hn;
        char hhex[64];
        if (expected.n == 1 && sscanf(expected.v[0], "%lld values hashing to %63s", &hn, hhex) == 2) {
            elo_md5 m;
            elo__md5_init(&m);
            for (int64_t i = 0; i < got.n; i++) {
                elo__md5_update(&m, got.v[i], strlen(got.v[i]));
                elo__md5_update(&m, "\n", 1);
            }
            char hex[33];
            elo__md5_final(&m, hex);
            pass = hn == got.n && !strcmp(hex, hhex);
        } else {
            pass = expected.n == got.n;
            for (int64_t i = 0; pass && i < got.n; i++)
                pass = !strcmp(expected.v[i], got.v[i]);
        }
        (void)threshold;
        if (pass) {
            cnt->passed++;
        } else {
            cnt->failed++;
            if (log && reported++ < max_report) {
                fprintf(log, "%s:%lld: query mismatch (engine %s%s%s)\n  %s\n", path,
                        (long long)rec_line, res ? res->engine : "?",
                        res && res->reason[0] ? ": " : "", res ? res->reason : "", sql);
                fprintf(log, "  expected %lld values:", (long long)expected.n);
                for (int64_t i = 0; i < expected.n && i < 8; i++)
                    fprintf(log, " %s", expected.v[i]);
                fprintf(log, "\n  got %lld values:", (long long)got.n);
                for (int64_t i = 0; i < got.n && i < 8; i++)
                    fprintf(log, " %s", got.v[i]);
                fprintf(log, "\n");
            }
        }
        elo_sql_result_free(res);
    }
    rc = ELO_OK;
out:
    for (int64_t i = 0; i < expected.n; i++)
        elo_free(expected.v[i]);
    for (int64_t i = 0; i < got.n; i++)
        elo_free(got.v[i]);
    elo_free(expected.v);
    elo_free(got.v);
    elo_free(sql);
    elo_sql_close(db);
    elo_free(text);
    return rc;
}
