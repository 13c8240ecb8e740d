/* sql-cache.c - the columnar cache: a table's columns loaded from SQLite on
 * first use (rowid order, text dictionary-encoded with codes in BINARY
 * order), optionally resident on the GPU, and dropped whenever the data
 * may have changed.
 *
 * DESIGN (invalidation): SQLite has no single "this table changed" signal,
 * so before every query the engine reads three counters and drops the
 * whole cache when any moved since the last query:
 *   - PRAGMA data_version: changes when another connection (another
 *     process, the sqlite3 shell) commits to the database file;
 *   - sqlite3_total_changes64(): rows this connection inserted, updated or
 *     deleted;
 *   - PRAGMA schema_version: DDL on this connection (CREATE/DROP/ALTER).
 * Dropping everything is coarse but always safe; reloading costs one scan
 * of the tables the next queries touch. */
#include "sql-impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int64_t pragma_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void table_free(sql_table *t)
{
    if (!t)
        return;
    for (int c = 0; c < t->ncols; c++) {
        sql_column *col = &t->cols[c];
        elo_free(col->name);
        elo_free(col->type);
        elo_free(col->val);
        elo_free(col->dict_text);
        elo_free(col->dict);
        elo_free(col->dict_len);
        if (col->dev_val && elo_sql_cuda_free)
            elo_sql_cuda_free(col->dev_val);
        if (col->dev_type && elo_sql_cuda_free)
            elo_sql_cuda_free(col->dev_type);
    }
    elo_free(t->cols);
    elo_free(t->name);
    elo_free(t);
}

void elo__sql_cache_drop(elo_sql *db)
{
    if (db->tables)
        db->stats.cache_drops++;
    while (db->tables) {
        sql_table *n = db->tables->next;
        table_free(db->tables);
        db->tables = n;
    }
    db->cache_bytes = 0;
}

int elo__sql_cache_check(elo_sql *db)
{
    int64_t dv = pragma_int(db->db, "PRAGMA data_version");
    int64_t tc = sqlite3_total_changes64(db->db);
    int64_t sv_ = pragma_int(db->db, "PRAGMA schema_version");
    if (dv != db->data_version || tc != db->total_changes || sv_ != db->schema_version) {
        elo__sql_cache_drop(db);
        db->data_version = dv;
        db->total_changes = tc;
        db->schema_version = sv_;
        return 1;
    }
    return 0;
}

static char *quote_ident(const char *s)
{
    size_t n = strlen(s), q = 0;
    for (size_t i = 0; i < n; i++)
        q += s[i] == '"';
    char *o = elo_malloc(n + q + 3);
    if (!o)
        return NULL;
    char *p = o;
    *p++ = '"';
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"')
            *p++ = '"';
        *p++ = s[i];
    }
    *p++ = '"';
    *p = 0;
    return o;
}

/* text dictionary during loading: open addressing string -> code */
typedef struct {
    char **str;
    uint32_t *len;
    uint32_t n, cap;
    uint32_t *slots; /* code + 1 */
    uint32_t hcap;
} dict_build;

static int dict_add(dict_build *d, const char *s, uint32_t len, uint32_t *code)
{
    if (d->n * 2 + 2 >= d->hcap) {
        uint32_t nh = d->hcap ? d->hcap * 2 : 1024;
        uint32_t *ns = elo_calloc(nh, sizeof(uint32_t));
        if (!ns)
            return ELO_NOMEM;
        for (uint32_t i = 0; i < d->n; i++) {
            uint64_t h = elo_hash64(d->str[i], d->len[i]) & (nh - 1);
            while (ns[h])
                h = (h + 1) & (nh - 1);
            ns[h] = i + 1;
        }
        elo_free(d->slots);
        d->slots = ns;
        d->hcap = nh;
    }
    uint64_t h = elo_hash64(s, len) & (d->hcap - 1);
    while (d->slots[h]) {
        uint32_t c = d->slots[h] - 1;
        if (d->len[c] == len && !memcmp(d->str[c], s, len)) {
            *code = c;
            return ELO_OK;
        }
        h = (h + 1) & (d->hcap - 1);
    }
    if (d->n == d->cap) {
        uint32_t nc = d->cap ? d->cap * 2 : 64;
        char **ns = elo_realloc(d->str, sizeof(char *) * nc);
        if (!ns)
            return ELO_NOMEM;
        d->str = ns;
        uint32_t *nl = elo_realloc(d->len, sizeof(uint32_t) * nc);
        if (!nl)
            return ELO_NOMEM;
        d->len = nl;
        d->cap = nc;
    }
    char *copy = elo_malloc(len + 1);
    if (!copy)
        return ELO_NOMEM;
    memcpy(copy, s, len);
    copy[len] = 0;
    d->str[d->n] = copy;
    d->len[d->n] = len;
    d->slots[h] = d->n + 1;
    *code = d->n++;
    return ELO_OK;
}

static __thread dict_build *g_dict;
static int dict_order(const void *x, const void *y)
{
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    uint32_t la = g_dict->len[a], lb = g_dict->len[b];
    int c = memcmp(g_dict->str[a], g_dict->str[b], la < lb ? la : lb);
    if (c)
        return c;
    return la < lb ? -1 : la > lb;
}

/* Sorts the dictionary into BINARY order, packs its strings in that order
 * into one buffer (so that walking the codes in order, as grouped output
 * does, reads memory sequentially) and recodes the column. */
static int dict_finish(dict_build *d, sql_column *col, int64_t nrows)
{
    uint32_t n = d->n;
    uint32_t *order = elo_malloc(sizeof(uint32_t) * (n ? n : 1));
    uint32_t *remap = elo_malloc(sizeof(uint32_t) * (n ? n : 1));
    if (!order || !remap) {
        elo_free(order);
        elo_free(remap);
        return ELO_NOMEM;
    }
    for (uint32_t i = 0; i < n; i++)
        order[i] = i;
    g_dict = d;
    qsort(order, n, sizeof(uint32_t), dict_order);
    g_dict = NULL;
    size_t text_bytes = 1;
    for (uint32_t i = 0; i < n; i++)
        text_bytes += (size_t)d->len[i] + 1;
    col->dict = elo_malloc(sizeof(char *) * (n ? n : 1));
    col->dict_len = elo_malloc(sizeof(uint32_t) * (n ? n : 1));
    col->dict_text = elo_malloc(text_bytes);
    if (!col->dict || !col->dict_len || !col->dict_text) {
        elo_free(order);
        elo_free(remap);
        return ELO_NOMEM;
    }
    char *at = col->dict_text;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t from = order[i];
        remap[from] = i;
        memcpy(at, d->str[from], (size_t)d->len[from] + 1);
        col->dict[i] = at;
        col->dict_len[i] = d->len[from];
        at += d->len[from] + 1;
        elo_free(d->str[from]);
    }
    col->ndict = n;
    for (int64_t r = 0; r < nrows; r++)
        if (col->type[r] == SV_TEXT)
            col->val[r] = remap[col->val[r]];
    elo_free(order);
    elo_free(remap);
    elo_free(d->str);
    elo_free(d->len);
    elo_free(d->slots);
    memset(d, 0, sizeof *d);
    return ELO_OK;
}

static int load_table(elo_sql *db, const char *name, sql_table **out, const char **why)
{
    sqlite3 *s = db->db;
    sqlite3_stmt *st = NULL;
    int rc;
    *out = NULL;
    /* an ordinary rowid table? */
    if (sqlite3_prepare_v2(s, "SELECT type, name, sql FROM sqlite_master WHERE name = ?1 COLLATE NOCASE",
                           -1, &st, NULL) != SQLITE_OK)
        return elo_seterr(ELO_SQL, "%s", sqlite3_errmsg(s));
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        *why = "no such table (SQLite reports it)";
        return ELO_UNSUPPORTED;
    }
    const char *type = (const char *)sqlite3_column_text(st, 0);
    const char *ddl = (const char *)sqlite3_column_text(st, 2);
    if (!type || strcmp(type, "table") || !ddl || strncasecmp(ddl, "CREATE TABLE", 12) ||
        strcasestr(ddl, "WITHOUT ROWID") || strcasestr(ddl, "GENERATED") ||
        !strncasecmp(name, "sqlite_", 7)) {
        sqlite3_finalize(st);
        *why = "not an ordinary table (view, virtual, WITHOUT ROWID or generated columns)";
        return ELO_UNSUPPORTED;
    }
    char *real_name = elo_strdup((const char *)sqlite3_column_text(st, 1));
    sqlite3_finalize(st);
    sql_table *t = elo_calloc(1, sizeof *t);
    char *qname = real_name ? quote_ident(real_name) : NULL;
    if (!t || !qname) {
        elo_free(real_name);
        elo_free(qname);
        elo_free(t);
        return ELO_NOMEM;
    }
    t->name = real_name;

    char sql[1024];
    snprintf(sql, sizeof sql, "PRAGMA table_info(%s)", qname);
    rc = sqlite3_prepare_v2(s, sql, -1, &st, NULL);
    int cap = 0;
    while (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        if (t->ncols == cap) {
            cap = cap ? cap * 2 : 8;
            sql_column *nc = elo_realloc(t->cols, sizeof(sql_column) * (size_t)cap);
            if (!nc) {
                rc = SQLITE_NOMEM;
                break;
            }
            t->cols = nc;
        }
        sql_column *col = &t->cols[t->ncols++];
        memset(col, 0, sizeof *col);
        col->name = elo_strdup((const char *)sqlite3_column_text(st, 1));
        col->aff = elo__sql_affinity((const char *)sqlite3_column_text(st, 2));
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK || t->ncols == 0) {
        table_free(t);
        elo_free(qname);
        *why = "cannot read the table's columns";
        return ELO_UNSUPPORTED;
    }
    if (sqlite3_prepare_v2(s, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND "
                              "tbl_name = ?1", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, real_name, -1, SQLITE_TRANSIENT);
        t->has_index = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 0) > 0;
    }
    sqlite3_finalize(st);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", qname);
    t->nrows = pragma_int(s, sql);
    if (t->nrows < 0) {
        table_free(t);
        elo_free(qname);
        *why = "cannot count the table's rows";
        return ELO_UNSUPPORTED;
    }
    int64_t n = t->nrows ? t->nrows : 1;
    for (int c = 0; c < t->ncols; c++) {
        t->cols[c].type = elo_malloc((size_t)n);
        t->cols[c].val = elo_malloc(sizeof(int64_t) * (size_t)n);
        if (!t->cols[c].type || !t->cols[c].val) {
            table_free(t);
            elo_free(qname);
            return elo_seterr(ELO_NOMEM, "loading table %s: out of memory", name);
        }
        t->cols[c].imin = INT64_MAX;
        t->cols[c].imax = INT64_MIN;
    }
    /* scan in rowid order: NOT INDEXED keeps SQLite off covering indexes */
    snprintf(sql, sizeof sql, "SELECT * FROM %s NOT INDEXED", qname);
    elo_free(qname);
    if (sqlite3_prepare_v2(s, sql, -1, &st, NULL) != SQLITE_OK) {
        table_free(t);
        *why = "cannot scan the table";
        return ELO_UNSUPPORTED;
    }
    dict_build *dicts = elo_calloc((size_t)t->ncols, sizeof(dict_build));
    int64_t r = 0;
    const char *fail_why = NULL;
    int status = ELO_OK;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (r >= t->nrows) {
            fail_why = "the table changed while loading";
            break;
        }
        for (int c = 0; c < t->ncols; c++) {
            sql_column *col = &t->cols[c];
            switch (sqlite3_column_type(st, c)) {
            case SQLITE_NULL:
                col->type[r] = SV_NULL;
                col->val[r] = 0;
                col->has_null = 1;
                break;
            case SQLITE_INTEGER: {
                int64_t v = sqlite3_column_int64(st, c);
                col->type[r] = SV_INT;
                col->val[r] = v;
                col->has_int = 1;
                if (v < col->imin) col->imin = v;
                if (v > col->imax) col->imax = v;
                break;
            }
            case SQLITE_FLOAT: {
                double d = sqlite3_column_double(st, c);
                col->type[r] = SV_REAL;
                memcpy(&col->val[r], &d, 8);
                col->has_real = 1;
                if (d == 0 && signbit(d))
                    col->has_negzero = 1;
                break;
            }
            case SQLITE_TEXT: {
                const char *txt = (const char *)sqlite3_column_text(st, c);
                int len = sqlite3_column_bytes(st, c);
                uint32_t code;
                if (dict_add(&dicts[c], txt, (uint32_t)len, &code) < 0) {
                    status = ELO_NOMEM;
                    break;
                }
                col->type[r] = SV_TEXT;
                col->val[r] = code;
                col->has_text = 1;
                break;
            }
            default:
                fail_why = "BLOB values";
                break;
            }
            if (fail_why || status < 0)
                break;
        }
        if (fail_why || status < 0)
            break;
        r++;
    }
    if (!fail_why && status == ELO_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
        fail_why = "scan failed";
    if (!fail_why && status == ELO_OK && r != t->nrows)
        fail_why = "the table changed while loading";
    sqlite3_finalize(st);
    for (int c = 0; c < t->ncols && !fail_why && status == ELO_OK; c++)
        status = dict_finish(&dicts[c], &t->cols[c], t->nrows);
    for (int c = 0; c < t->ncols; c++) {
        for (uint32_t i = 0; i < dicts[c].n; i++)
            elo_free(dicts[c].str[i]);
        elo_free(dicts[c].str);
        elo_free(dicts[c].len);
        elo_free(dicts[c].slots);
    }
    elo_free(dicts);
    if (fail_why || status < 0) {
        table_free(t);
        if (status < 0)
            return elo_seterr(status, "loading table %s: out of memory", name);
        *why = fail_why;
        return ELO_UNSUPPORTED;
    }
    t->bytes = (size_t)t->nrows * 9 * (size_t)t->ncols;
    *out = t;
    return ELO_OK;
}

int elo__sql_cache_get(elo_sql *db, const char *name, sql_table **out, const char **why)
{
    for (sql_table *t = db->tables; t; t = t->next)
        if (!strcasecmp(t->name, name)) {
            *out = t;
            return ELO_OK;
        }
    sql_table *t;
    int rc = load_table(db, name, &t, why);
    if (rc < 0)
        return rc;
    t->next = db->tables;
    db->tables = t;
    db->cache_bytes += t->bytes;
    db->stats.cache_loads++;
    *out = t;
    return ELO_OK;
}

/* The narrowest device form of a column: integers and text codes as
 * unsigned offsets from their minimum in 1, 2 or 4 bytes when the range
 * allows (db-benchmark's keys and small integers take one byte instead of
 * nine: the GPU kernels are bound by the bytes they read); reals and mixed
 * columns as the raw 8-byte values. */
void elo__sql_device_form(const sql_column *col, int *width, int64_t *base)
{
    uint64_t range;
    *width = 8;
    *base = 0;
    if (col->has_real || (col->has_int && col->has_text))
        return;
    if (col->has_text)
        range = col->ndict ? col->ndict - 1 : 0;
    else if (col->has_int) {
        range = (uint64_t)col->imax - (uint64_t)col->imin;
        *base = col->imin;
    } else {
        range = 0; /* only NULLs */
    }
    *width = range <= 0xff ? 1 : range <= 0xffff ? 2 : range <= 0xffffffffu ? 4 : 8;
    if (*width == 8)
        *base = 0;
}

typedef struct {
    const sql_column *col;
    void *out;
    int width;
    int64_t base;
    int64_t nrows;
} narrow_job;

static void narrow_range(void *arg, int64_t lo, int64_t hi)
{
    const narrow_job *nj = arg;
    const int64_t *v = nj->col->val;
    const uint8_t *t = nj->col->type;
    for (int64_t r = lo; r < hi; r++) {
        uint64_t u = t[r] == SV_NULL ? 0 : (uint64_t)v[r] - (uint64_t)nj->base;
        switch (nj->width) {
        case 1: ((uint8_t *)nj->out)[r] = (uint8_t)u; break;
        case 2: ((uint16_t *)nj->out)[r] = (uint16_t)u; break;
        default: ((uint32_t *)nj->out)[r] = (uint32_t)u; break;
        }
    }
}

#define NARROW_TASKS 64

static void narrow_task(void *arg, int task, int thread)
{
    const narrow_job *nj = arg;
    (void)thread;
    narrow_range(arg, nj->nrows * task / NARROW_TASKS, nj->nrows * (task + 1) / NARROW_TASKS);
}

int elo__sql_table_to_device(elo_sql *db, sql_table *t)
{
    if (!elo_sql_cuda_upload)
        return elo_seterr(ELO_NODEVICE, "CUDA support is not compiled in");
    elo_backend *b;
    int rc = elo_backend_get(ELO_DEVICE_CUDA, &b);
    if (rc < 0)
        return rc;
    void *stream = elo_backend_cuda_stream(b);
    for (int c = 0; c < t->ncols; c++) {
        sql_column *col = &t->cols[c];
        if (col->dev_val)
            continue;
        size_t n = (size_t)(t->nrows ? t->nrows : 1);
        int width;
        int64_t base;
        elo__sql_device_form(col, &width, &base);
        /* the types first: a column whose values are resident without its
         * NULL marks would read as NULL-free (dev_val set means complete) */
        void *dev_type = NULL;
        if (col->has_null && (rc = elo_sql_cuda_upload(col->type, n, &dev_type, stream)) < 0)
            return rc;
        if (width == 8) {
            rc = elo_sql_cuda_upload(col->val, n * 8, &col->dev_val, stream);
        } else {
            narrow_job nj = {col, elo_malloc(n * (size_t)width), width, base, t->nrows};
            if (!nj.out) {
                elo_sql_cuda_free(dev_type);
                return elo_seterr(ELO_NOMEM, "out of memory narrowing column %s", col->name);
            }
            elo_pool *pool = t->nrows >= (1 << 20) ? elo_pool_global() : NULL;
            if (pool)
                elo_pool_run(pool, narrow_task, &nj, NARROW_TASKS);
            else
                narrow_range(&nj, 0, t->nrows);
            rc = elo_sql_cuda_upload(nj.out, n * (size_t)width, &col->dev_val, stream);
            elo_free(nj.out);
        }
        if (rc < 0) {
            elo_sql_cuda_free(dev_type);
            return rc;
        }
        col->dev_type = dev_type;
        col->dev_width = width;
        col->dev_base = base;
    }
    (void)db;
    return ELO_OK;
}

int elo__sql_cache_put(elo_sql *db, sql_table *t)
{
    elo__sql_cache_check(db); /* settle the counters first, so t survives */
    t->next = db->tables;
    db->tables = t;
    db->cache_bytes += t->bytes;
    return ELO_OK;
}

void elo__sql_table_free(sql_table *t) { table_free(t); }
