/* sql-csv.c - a streaming RFC 4180 CSV reader and the CSV import.
 *
 * The reader pulls 64 KiB blocks and hands out one record at a time, so
 * memory stays bounded by the longest record (capped at 64 MiB). Quoted
 * fields may hold commas, doubled quotes and newlines; records end in LF,
 * CRLF or a lone CR; a UTF-8 byte order mark is skipped; empty lines are
 * skipped. Errors name the line where the record began.
 *
 * Import reads the file twice: pass 1 infers each column's type (INTEGER
 * when every non-empty field is a base-10 int64 without leading zeros,
 * REAL when every one parses as a finite number, else TEXT; empty fields
 * are NULL), pass 2 creates the table and inserts every row inside one
 * transaction that is rolled back on any error. */
#include "sql-impl.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define CSV_MAX_RECORD ((size_t)64 << 20)
#define CSV_MAX_FIELDS 100000

struct elo_csv {
    FILE *f;
    const char *mem;
    size_t mem_len, mem_pos;
    char buf[65536];
    size_t blen, bpos;
    int peeked;          /* a pushed-back byte, or -2 */
    char *rec;
    size_t rlen, rcap;
    size_t *offs, *lens;
    char **ptrs;
    size_t nf, fcap;
    int64_t line, rec_line;
    uint64_t consumed;
    int started;
};

static elo_csv *csv_alloc(void)
{
    elo_csv *c = elo_calloc(1, sizeof *c);
    if (c) {
        c->line = 1;
        c->peeked = -2;
    }
    return c;
}

elo_csv *elo_csv_new_mem(const char *data, size_t len)
{
    elo_csv *c = csv_alloc();
    if (c) {
        c->mem = data ? data : "";
        c->mem_len = data ? len : 0;
    }
    return c;
}

elo_csv *elo_csv_new_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        elo_seterr(ELO_IO, "%s: %s", path, strerror(errno));
        return NULL;
    }
    elo_csv *c = csv_alloc();
    if (!c) {
        fclose(f);
        elo_seterr(ELO_NOMEM, "out of memory");
        return NULL;
    }
    c->f = f;
    return c;
}

void elo_csv_free(elo_csv *c)
{
    if (!c)
        return;
    if (c->f)
        fclose(c->f);
    elo_free(c->rec);
    elo_free(c->offs);
    elo_free(c->lens);
    elo_free(c->ptrs);
    elo_free(c);
}

int64_t elo_csv_line(const elo_csv *c) { return c->rec_line; }

static int rd(elo_csv *c)
{
    if (c->peeked != -2) {
        int b = c->peeked;
        c->peeked = -2;
        return b;
    }
    if (c->mem) {
        if (c->mem_pos >= c->mem_len)
            return -1;
        c->consumed++;
        return (unsigned char)c->mem[c->mem_pos++];
    }
    if (c->bpos == c->blen) {
        c->blen = fread(c->buf, 1, sizeof c->buf, c->f);
        c->bpos = 0;
        if (c->blen == 0)
            return -1;
    }
    c->consumed++;
    return (unsigned char)c->buf[c->bpos++];
}

static void unread(elo_csv *c, int b) { c->peeked = b; }

static int put(elo_csv *c, char ch)
{
    if (c->rlen + 1 >= c->rcap) {
        if (c->rcap >= CSV_MAX_RECORD)
            return elo_seterr(ELO_TOOBIG, "line %lld: record longer than %zu bytes",
                              (long long)c->rec_line, CSV_MAX_RECORD);
        size_t nc = c->rcap ? c->rcap * 2 : 4096;
        char *nr = elo_realloc(c->rec, nc);
        if (!nr)
            return elo_seterr(ELO_NOMEM, "out of memory reading CSV");
        c->rec = nr;
        c->rcap = nc;
    }
    c->rec[c->rlen++] = ch;
    return 0;
}

static int end_field(elo_csv *c, size_t start)
{
    if (c->nf == c->fcap) {
        if (c->fcap >= CSV_MAX_FIELDS)
            return elo_seterr(ELO_TOOBIG, "line %lld: more than %d fields", (long long)c->rec_line,
                              CSV_MAX_FIELDS);
        size_t nc = c->fcap ? c->fcap * 2 : 16;
        size_t *no = elo_realloc(c->offs, sizeof(size_t) * nc);
        if (!no)
            return ELO_NOMEM;
        c->offs = no;
        size_t *nl = elo_realloc(c->lens, sizeof(size_t) * nc);
        if (!nl)
            return ELO_NOMEM;
        c->lens = nl;
        char **np = elo_realloc(c->ptrs, sizeof(char *) * nc);
        if (!np)
            return ELO_NOMEM;
        c->ptrs = np;
        c->fcap = nc;
    }
    c->offs[c->nf] = start;
    c->lens[c->nf] = c->rlen - start;
    c->nf++;
    return put(c, 0);
}

int elo_csv_next(elo_csv *c, char ***fields, size_t **lens)
{
    for (;;) {
        c->nf = 0;
        c->rlen = 0;
        c->rec_line = c->line;
        int ch = rd(c);
        if (!c->started) {
            c->started = 1;
            if (ch == 0xEF) {
                int b2 = rd(c), b3 = rd(c);
                if (b2 != 0xBB || b3 != 0xBF)
                    return elo_seterr(ELO_BADINPUT, "line 1: invalid byte order mark");
                ch = rd(c);
            }
        }
        if (ch == -1)
            return 0;
        int quoted_any = 0;
        for (;;) { /* fields */
            size_t start = c->rlen;
            if (ch == '"') {
                quoted_any = 1;
                for (;;) {
                    ch = rd(c);
                    if (ch == -1)
                        return elo_seterr(ELO_BADINPUT,
                                          "line %lld: unterminated quoted field (quote opened here)",
                                          (long long)c->rec_line);
                    if (ch == '"') {
                        int nx = rd(c);
                        if (nx == '"') {
                            int pr = put(c, '"');
                            if (pr < 0)
                                return pr;
                            continue;
                        }
                        ch = nx;
                        break;
                    }
                    if (ch == 0)
                        return elo_seterr(ELO_BADINPUT, "line %lld: NUL byte in a field",
                                          (long long)c->line);
                    if (ch == '\n')
                        c->line++;
                    int pr = put(c, (char)ch);
                    if (pr < 0)
                        return pr;
                }
                if (ch != ',' && ch != '\n' && ch != '\r' && ch != -1)
                    return elo_seterr(ELO_BADINPUT,
                                      "line %lld: unexpected character after a closing quote",
                                      (long long)c->line);
            } else {
                while (ch != ',' && ch != '\n' && ch != '\r' && ch != -1) {
                    if (ch == '"')
                        return elo_seterr(ELO_BADINPUT,
                                          "line %lld: quote inside an unquoted field",
                                          (long long)c->line);
                    if (ch == 0)
                        return elo_seterr(ELO_BADINPUT, "line %lld: NUL byte in a field",
                                          (long long)c->line);
                    int pr = put(c, (char)ch);
                    if (pr < 0)
                        return pr;
                    ch = rd(c);
                }
            }
            int rc = end_field(c, start);
            if (rc < 0)
                return rc;
            if (ch == ',') {
                ch = rd(c);
                continue;
            }
            if (ch == '\r') {
                int nx = rd(c);
                if (nx != '\n' && nx != -1)
                    unread(c, nx);
            }
            if (ch == '\n' || ch == '\r')
                c->line++;
            break;
        }
        if (c->nf == 1 && c->lens[0] == 0 && !quoted_any)
            continue; /* empty line */
        for (size_t i = 0; i < c->nf; i++)
            c->ptrs[i] = c->rec + c->offs[i];
        *fields = c->ptrs;
        *lens = c->lens;
        return (int)c->nf;
    }
}

/* ---- import ---------------------------------------------------------------- */

enum { CT_EMPTY = 0, CT_INT = 1, CT_REAL = 2, CT_TEXT = 3 };

static int field_kind(const char *s, size_t n, int64_t *iv, double *dv)
{
    if (n == 0)
        return CT_EMPTY;
    const char *p = s;
    if (*p == '+' || *p == '-')
        p++;
    size_t digits = 0;
    while (p[digits] >= '0' && p[digits] <= '9')
        digits++;
    if (digits && p + digits == s + n) {
        if (digits > 1 && p[0] == '0')
            return CT_TEXT; /* keep leading zeros (codes, zip numbers) */
        if (elo_parse_i64(s, iv) == ELO_OK)
            return CT_INT;
        /* too big for int64: a real number */
    }
    /* a decimal number: digits, optional point, optional exponent */
    p = s;
    if (*p == '+' || *p == '-')
        p++;
    size_t d1 = 0, d2 = 0;
    while (*p >= '0' && *p <= '9') { p++; d1++; }
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') { p++; d2++; }
    }
    if (d1 + d2 == 0)
        return CT_TEXT;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        size_t d3 = 0;
        while (*p >= '0' && *p <= '9') { p++; d3++; }
        if (!d3)
            return CT_TEXT;
    }
    if (p != s + n)
        return CT_TEXT;
    char *end;
    double d = strtod(s, &end);
    if (end != s + n || !isfinite(d))
        return CT_TEXT;
    *dv = d;
    return CT_REAL;
}

static void quote_into(char *dst, size_t cap, const char *id)
{
    size_t o = 0;
    dst[o++] = '"';
    for (const char *p = id; *p && o + 3 < cap; p++) {
        if (*p == '"')
            dst[o++] = '"';
        dst[o++] = *p;
    }
    dst[o++] = '"';
    dst[o] = 0;
}

int elo_sql_import_csv(elo_sql *db, const char *path, const char *table, elo_csv_report *rep)
{
    memset(rep, 0, sizeof *rep);
    if (!table || !*table || strlen(table) > 200)
        return elo_seterr(ELO_BADINPUT, "a table name of 1..200 bytes is required");
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(db->db, "SELECT 1 FROM sqlite_master WHERE name = ?1 COLLATE NOCASE", -1, &st,
                       NULL);
    sqlite3_bind_text(st, 1, table, -1, SQLITE_TRANSIENT);
    int exists = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    if (exists)
        return elo_seterr(ELO_EXISTS, "table %s already exists", table);

    struct stat stt;
    uint64_t fsize = stat(path, &stt) == 0 ? (uint64_t)stt.st_size : 0;
    /* pass 1: header and types */
    elo_csv *c = elo_csv_new_file(path);
    if (!c)
        return ELO_IO;
    char **f;
    size_t *l;
    int n = elo_csv_next(c, &f, &l);
    if (n <= 0) {
        elo_csv_free(c);
        char msg[512];
        snprintf(msg, sizeof msg, "%s", elo_errmsg());
        return n < 0 ? elo_seterr(n, "%s: %s", path, msg)
                     : elo_seterr(ELO_BADINPUT, "%s: empty file (a header row is required)", path);
    }
    int ncols = n;
    char **names = elo_calloc((size_t)ncols, sizeof(char *));
    int *kind = elo_calloc((size_t)ncols, sizeof(int));
    if (!names || !kind) {
        elo_free(names);
        elo_free(kind);
        elo_csv_free(c);
        return ELO_NOMEM;
    }
    int rc = ELO_OK;
    for (int i = 0; i < ncols; i++) {
        char buf[64];
        if (l[i] == 0) {
            snprintf(buf, sizeof buf, "col%d", i + 1);
            names[i] = elo_strdup(buf);
        } else {
            names[i] = elo_strdup(f[i]);
        }
        for (int j = 0; j < i && names[i]; j++)
            if (!strcasecmp(names[i], names[j])) {
                rc = elo_seterr(ELO_BADINPUT, "%s: line 1: duplicate column name '%s'", path,
                                names[i]);
                break;
            }
        if (!names[i] && rc == ELO_OK)
            rc = ELO_NOMEM;
    }
    elo_progress prog;
    elo_progress_begin(&prog, "types", fsize);
    int64_t rows = 0;
    while (rc == ELO_OK && (n = elo_csv_next(c, &f, &l)) > 0) {
        if (n != ncols) {
            rc = elo_seterr(ELO_BADINPUT, "%s: line %lld: expected %d fields, found %d", path,
                            (long long)elo_csv_line(c), ncols, n);
            break;
        }
        for (int i = 0; i < ncols; i++) {
            int64_t iv;
            double dv;
            int k = field_kind(f[i], l[i], &iv, &dv);
            if (k > kind[i])
                kind[i] = k;
        }
        rows++;
        if ((rows & 65535) == 0)
            elo_progress_update(&prog, c->consumed);
    }
    elo_progress_end(&prog);
    if (rc == ELO_OK && n < 0) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", elo_errmsg());
        rc = elo_seterr(n, "%s: %s", path, msg);
    }
    elo_csv_free(c);
    c = NULL;

    /* pass 2: create and insert in one transaction */
    size_t cap = 256 + (size_t)ncols * 420;
    char *sql = elo_malloc(cap);
    if (!sql && rc == ELO_OK)
        rc = ELO_NOMEM;
    if (rc == ELO_OK) {
        char q[420];
        quote_into(q, sizeof q, table);
        size_t o = (size_t)snprintf(sql, cap, "CREATE TABLE %s (", q);
        for (int i = 0; i < ncols; i++) {
            quote_into(q, sizeof q, names[i]);
            const char *ty = kind[i] == CT_INT ? "INTEGER" : kind[i] == CT_REAL ? "REAL" : "TEXT";
            o += (size_t)snprintf(sql + o, cap - o, "%s%s %s", i ? ", " : "", q, ty);
            if (i < 64) {
                snprintf(rep->types[i], sizeof rep->types[i], "%s", ty);
            }
        }
        snprintf(sql + o, cap - o, ")");
        if (sqlite3_exec(db->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
            rc = elo_seterr(ELO_SQL, "cannot begin a transaction: %s", sqlite3_errmsg(db->db));
        else if (sqlite3_exec(db->db, sql, NULL, NULL, NULL) != SQLITE_OK)
            rc = elo_seterr(ELO_SQL, "cannot create table %s: %s", table, sqlite3_errmsg(db->db));
        else {
            quote_into(q, sizeof q, table);
            o = (size_t)snprintf(sql, cap, "INSERT INTO %s VALUES (", q);
            for (int i = 0; i < ncols; i++)
                o += (size_t)snprintf(sql + o, cap - o, "%s?", i ? "," : "");
            snprintf(sql + o, cap - o, ")");
            if (sqlite3_prepare_v2(db->db, sql, -1, &st, NULL) != SQLITE_OK)
                rc = elo_seterr(ELO_SQL, "%s", sqlite3_errmsg(db->db));
        }
        if (rc == ELO_OK) {
            c = elo_csv_new_file(path);
            if (!c)
                rc = ELO_IO;
        }
        if (rc == ELO_OK) {
            elo_progress_begin(&prog, "import", fsize);
            n = elo_csv_next(c, &f, &l); /* header */
            int64_t done = 0;
            while ((n = elo_csv_next(c, &f, &l)) > 0) {
                if (n != ncols) {
                    rc = elo_seterr(ELO_BADINPUT, "%s: line %lld: expected %d fields, found %d",
                                    path, (long long)elo_csv_line(c), ncols, n);
                    break;
                }
                for (int i = 0; i < ncols; i++) {
                    int64_t iv;
                    double dv;
                    int k = field_kind(f[i], l[i], &iv, &dv);
                    if (k == CT_EMPTY)
                        sqlite3_bind_null(st, i + 1);
                    else if (kind[i] == CT_INT && k == CT_INT)
                        sqlite3_bind_int64(st, i + 1, iv);
                    else if (kind[i] == CT_REAL && k == CT_INT)
                        sqlite3_bind_double(st, i + 1, (double)iv);
                    else if (kind[i] == CT_REAL && k == CT_REAL)
                        sqlite3_bind_double(st, i + 1, dv);
                    else
                        sqlite3_bind_text(st, i + 1, f[i], (int)l[i], SQLITE_STATIC);
                }
                if (sqlite3_step(st) != SQLITE_DONE) {
                    rc = elo_seterr(ELO_SQL, "%s: line %lld: %s", path, (long long)elo_csv_line(c),
                                    sqlite3_errmsg(db->db));
                    break;
                }
                sqlite3_reset(st);
                done++;
                if ((done & 65535) == 0)
                    elo_progress_update(&prog, c->consumed);
            }
            elo_progress_end(&prog);
            if (rc == ELO_OK && n < 0) {
                char msg[512];
                snprintf(msg, sizeof msg, "%s", elo_errmsg());
                rc = elo_seterr(n, "%s: %s", path, msg);
            }
            if (rc == ELO_OK && done != rows)
                rc = elo_seterr(ELO_CONFLICT, "%s changed during the import", path);
            rep->rows = done;
        }
        sqlite3_finalize(st);
        if (rc == ELO_OK) {
            if (sqlite3_exec(db->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
                rc = elo_seterr(ELO_SQL, "commit failed: %s", sqlite3_errmsg(db->db));
        }
        if (rc != ELO_OK)
            sqlite3_exec(db->db, "ROLLBACK", NULL, NULL, NULL);
    }
    rep->columns = ncols;
    elo_csv_free(c);
    for (int i = 0; i < ncols; i++)
        elo_free(names[i]);
    elo_free(names);
    elo_free(kind);
    elo_free(sql);
    if (rc != ELO_OK)
        rep->rows = 0;
    return rc;
}
