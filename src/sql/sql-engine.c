/* sql-engine.c - the elo_sql handle: the SQLite connection (system of
 * record, WAL), the routing of each query to our columnar executor or to
 * SQLite, results, and the dataframe API built on the same planner. */
#include "sql-impl.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- big blocks ---------------------------------------------------------
 *
 * DESIGN: result cells are allocated per query and glibc serves blocks this
 * big with mmap and unmaps them on free, so every query paid one page
 * fault per 4 KiB of its result again: db-benchmark q3's 1M groups x 3
 * cells x 16 bytes are 48 MB, 12K faults, about half of groups out's fill
 * pass on a 16-core H200 host (5.6-6.7 ms; 3.2 ms with the pages touched
 * beforehand; on a 2-core VM groups out of 1M groups went from 27-33 ms
 * to 14-15 ms with this cache). So freed blocks of at least BLOCK_MIN bytes go to a
 * process-wide cache of BLOCK_SLOTS blocks (BLOCK_CAP bytes in all; a
 * mutex, as results are freed on any thread) and the next result that
 * needs that much takes one, its pages still mapped: the best fit no
 * more than twice the size asked for, so that a small result does not pin
 * a big block. Two slots: a result's cells and its text block (groups
 * out's text keys). When full, a block freed replaces the oldest one. The
 * cache lives as long as the process, like the kernels' per-thread scratch
 * (elo__sql_scratch): there is no global teardown to free it in, and
 * valgrind lists it as still reachable. No madvise(MADV_HUGEPAGE): with
 * THP defrag=madvise it stalled queries by 180 ms on that host. */

#define BLOCK_MIN ((size_t)1 << 20)
#define BLOCK_CAP ((size_t)256 << 20)
#define BLOCK_SLOTS 2

static struct {
    void *p;
    size_t bytes;
    uint64_t age;       /* when it was put (larger: newer) */
} g_blocks[BLOCK_SLOTS];
static uint64_t g_block_clock;
static pthread_mutex_t g_block_lock = PTHREAD_MUTEX_INITIALIZER;

void *elo__sql_block_get(size_t bytes, size_t *got)
{
    if (bytes >= BLOCK_MIN) {
        pthread_mutex_lock(&g_block_lock);
        int best = -1;
        for (int i = 0; i < BLOCK_SLOTS; i++)
            if (g_blocks[i].p && g_blocks[i].bytes >= bytes && g_blocks[i].bytes / 2 <= bytes &&
                (best < 0 || g_blocks[i].bytes < g_blocks[best].bytes))
                best = i;
        void *p = NULL;
        if (best >= 0) {
            p = g_blocks[best].p;
            *got = g_blocks[best].bytes;
            g_blocks[best].p = NULL;
        }
        pthread_mutex_unlock(&g_block_lock);
        if (p)
            return p;
    }
    *got = bytes;
    return elo_malloc(bytes);
}

void elo__sql_block_put(void *block, size_t bytes)
{
    if (!block)
        return;
    if (bytes < BLOCK_MIN || bytes > BLOCK_CAP) {
        elo_free(block);
        return;
    }
    void *drop[BLOCK_SLOTS + 1];
    int ndrop = 0;
    pthread_mutex_lock(&g_block_lock);
    /* room: evict oldest first until one slot is free and the total fits */
    for (;;) {
        size_t total = bytes;
        int free_slot = -1, oldest = -1;
        for (int i = 0; i < BLOCK_SLOTS; i++) {
            if (!g_blocks[i].p) {
                free_slot = i;
                continue;
            }
            total += g_blocks[i].bytes;
            if (oldest < 0 || g_blocks[i].age < g_blocks[oldest].age)
                oldest = i;
        }
        if (free_slot >= 0 && total <= BLOCK_CAP) {
            g_blocks[free_slot].p = block;
            g_blocks[free_slot].bytes = bytes;
            g_blocks[free_slot].age = ++g_block_clock;
            break;
        }
        drop[ndrop++] = g_blocks[oldest].p; /* total > bytes: one is cached */
        g_blocks[oldest].p = NULL;
    }
    pthread_mutex_unlock(&g_block_lock);
    for (int i = 0; i < ndrop; i++)
        elo_free(drop[i]); /* outside the lock: unmapping takes a while */
}

/* ---- results ----------------------------------------------------------- */

static elo_sql_result *result_new(void)
{
    elo_sql_result *r = elo_calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->arena = elo_arena_new(0);
    if (!r->arena) {
        elo_free(r);
        return NULL;
    }
    return r;
}

static void result_reset(elo_sql_result *r)
{
    elo__sql_block_put(r->cells, r->cells_bytes);
    elo__sql_block_put(r->text, r->text_bytes);
    r->cells = NULL;
    r->text = NULL;
    r->cells_bytes = r->text_bytes = 0;
    r->nrows = r->cap = 0;
    r->ncols = 0;
    r->names = NULL;
}

void elo_sql_result_free(elo_sql_result *r)
{
    if (!r)
        return;
    elo__sql_block_put(r->cells, r->cells_bytes);
    elo__sql_block_put(r->text, r->text_bytes);
    elo_arena_free(r->arena);
    elo_free(r);
}

/* Room for `nrows` rows, the rows there kept: a big block from the block
 * cache (copied into; the old block goes back), else realloc. */
static int result_grow(elo_sql_result *r, int64_t nrows)
{
    size_t width = sizeof(sv) * (size_t)(r->ncols ? r->ncols : 1), bytes;
    if (nrows < 0 || elo_mul_size(width, (size_t)nrows, &bytes) != 0)
        return ELO_NOMEM;
    sv *cells;
    size_t got = bytes;
    if (bytes >= BLOCK_MIN) {
        cells = elo__sql_block_get(bytes, &got);
        if (!cells)
            return ELO_NOMEM;
        if (r->nrows)
            memcpy(cells, r->cells, width * (size_t)r->nrows);
        elo__sql_block_put(r->cells, r->cells_bytes);
    } else {
        cells = elo_realloc(r->cells, bytes);
        if (!cells)
            return ELO_NOMEM;
    }
    r->cells = cells;
    r->cells_bytes = got;
    r->cap = (int64_t)(got / width);
    return ELO_OK;
}

int elo__result_reserve(elo_sql_result *r, int64_t nrows)
{
    return nrows <= r->cap ? ELO_OK : result_grow(r, nrows);
}

char *elo__result_text(elo_sql_result *r, size_t bytes)
{
    if (bytes < BLOCK_MIN || r->text)
        return elo_arena_alloc(r->arena, bytes);
    r->text = elo__sql_block_get(bytes, &r->text_bytes);
    if (!r->text)
        r->text_bytes = 0;
    return r->text;
}

int elo__result_push_row(elo_sql_result *r, const sv *row)
{
    if (r->nrows == r->cap && result_grow(r, r->cap ? r->cap * 2 : 64) < 0)
        return ELO_NOMEM;
    sv *dst = &r->cells[r->nrows * r->ncols];
    for (int c = 0; c < r->ncols; c++) {
        dst[c] = row[c];
        if (row[c].t == SV_TEXT) {
            char *s = elo_arena_strndup(r->arena, row[c].s, row[c].len);
            if (!s)
                return ELO_NOMEM;
            dst[c].s = s;
        }
    }
    r->nrows++;
    return ELO_OK;
}

int elo_sql_result_columns(const elo_sql_result *r) { return r ? r->ncols : 0; }
int64_t elo_sql_result_rows(const elo_sql_result *r) { return r ? r->nrows : 0; }
const char *elo_sql_result_name(const elo_sql_result *r, int col)
{
    return r && col >= 0 && col < r->ncols ? r->names[col] : NULL;
}
const char *elo_sql_result_engine(const elo_sql_result *r) { return r ? r->engine : ""; }
const char *elo_sql_result_reason(const elo_sql_result *r) { return r ? r->reason : ""; }

elo_sql_value elo_sql_result_value(const elo_sql_result *r, int64_t row, int col)
{
    elo_sql_value v = {ELO_SQL_NULL, 0, 0, NULL, 0};
    if (!r || row < 0 || row >= r->nrows || col < 0 || col >= r->ncols)
        return v;
    const sv *x = &r->cells[row * r->ncols + col];
    v.type = (elo_sql_type)x->t;
    if (x->t == SV_INT) v.i = x->i;
    else if (x->t == SV_REAL) v.r = x->r;
    else if (x->t == SV_TEXT) { v.s = x->s; v.len = x->len; }
    return v;
}

/* ---- open/close -------------------------------------------------------- */

int elo_sql_open_file(const char *path, elo_sql **out)
{
    *out = NULL;
    elo_sql *db = elo_calloc(1, sizeof *db);
    if (!db)
        return ELO_NOMEM;
    int rc = sqlite3_open_v2(path, &db->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        int st = elo_seterr(ELO_IO, "cannot open %s: %s", path,
                            db->db ? sqlite3_errmsg(db->db) : sqlite3_errstr(rc));
        sqlite3_close(db->db);
        elo_free(db);
        return st;
    }
    sqlite3_busy_timeout(db->db, 10000);
    sqlite3_exec(db->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
    if (sqlite3_prepare_v2(db->db, "SELECT ?1", -1, &db->conv, NULL) != SQLITE_OK) {
        sqlite3_close(db->db);
        elo_free(db);
        return elo_seterr(ELO_SQL, "cannot prepare a statement");
    }
    db->data_version = db->total_changes = db->schema_version = -1;
    *out = db;
    return ELO_OK;
}

int elo_sql_open(const char *dir, elo_sql **out)
{
    if (!dir)
        dir = getenv("ELOHIM_DATA");
    if (!dir || !*dir)
        dir = "elohim-data";
    int rc = elo_mkdirs(dir, 0700);
    if (rc < 0)
        return rc;
    char path[4096];
    snprintf(path, sizeof path, "%s/elohim.db", dir);
    return elo_sql_open_file(path, out);
}

void elo_sql_close(elo_sql *db)
{
    if (!db)
        return;
    elo__sql_cache_drop(db);
    sqlite3_finalize(db->conv);
    sqlite3_close(db->db);
    elo_free(db);
}

int elo_sql_set_device(elo_sql *db, elo_sql_device device)
{
    if (device == ELO_SQL_DEVICE_CUDA) {
        elo_backend *b;
        int rc = elo_backend_get(ELO_DEVICE_CUDA, &b);
        if (rc < 0)
            return rc;
        if (!elo_sql_cuda_group_aggregate)
            return elo_seterr(ELO_NODEVICE, "this build has no CUDA SQL kernels");
    }
    db->device = device;
    return ELO_OK;
}

const elo_sql_stats *elo_sql_get_stats(const elo_sql *db) { return &db->stats; }

int elo_sql_exec(elo_sql *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db->db, sql, NULL, NULL, &err) != SQLITE_OK) {
        int rc = elo_seterr(ELO_SQL, "%s", err ? err : sqlite3_errmsg(db->db));
        sqlite3_free(err);
        return rc;
    }
    return ELO_OK;
}

/* ---- SQLite path ------------------------------------------------------- */

/* Steps one prepared statement into `r`. Rows produced before an error
 * stay in `r` (sqllogictest compares them); the error is ELO_SQL. */
static int run_statement(elo_sql *db, sqlite3_stmt *st, elo_sql_result *r)
{
    result_reset(r);
    r->ncols = sqlite3_column_count(st);
    r->names = elo_arena_alloc(r->arena, sizeof(char *) * (size_t)(r->ncols ? r->ncols : 1));
    for (int c = 0; c < r->ncols; c++)
        r->names[c] = elo_arena_strdup(r->arena, sqlite3_column_name(st, c));
    sv *row = elo_malloc(sizeof(sv) * (size_t)(r->ncols ? r->ncols : 1));
    if (!row)
        return ELO_NOMEM;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        for (int c = 0; c < r->ncols; c++) {
            sv *v = &row[c];
            memset(v, 0, sizeof *v);
            switch (sqlite3_column_type(st, c)) {
            case SQLITE_INTEGER: v->t = SV_INT; v->i = sqlite3_column_int64(st, c); break;
            case SQLITE_FLOAT: v->t = SV_REAL; v->r = sqlite3_column_double(st, c); break;
            case SQLITE_NULL: v->t = SV_NULL; break;
            default:
                v->t = SV_TEXT;
                v->s = (const char *)sqlite3_column_text(st, c);
                v->len = (uint32_t)sqlite3_column_bytes(st, c);
                if (!v->s) { v->s = ""; v->len = 0; }
                break;
            }
        }
        if (elo__result_push_row(r, row) < 0) {
            elo_free(row);
            return ELO_NOMEM;
        }
    }
    elo_free(row);
    if (rc != SQLITE_DONE)
        return elo_seterr(ELO_SQL, "%s", sqlite3_errmsg(db->db));
    return ELO_OK;
}

/* Runs `sql` on SQLite: every statement in it, in order, as the sqlite3
 * shell does; the result is the last statement's. */
static int run_sqlite(elo_sql *db, const char *sql, elo_sql_result *r)
{
    const char *cur = sql;
    int ran = 0;
    result_reset(r);
    snprintf(r->engine, sizeof r->engine, "sqlite");
    while (cur && *cur) {
        sqlite3_stmt *st = NULL;
        const char *tail = NULL;
        if (sqlite3_prepare_v2(db->db, cur, -1, &st, &tail) != SQLITE_OK)
            return elo_seterr(ELO_SQL, "%s", sqlite3_errmsg(db->db));
        cur = tail;
        if (!st)
            continue; /* only whitespace or comments left */
        int rc = run_statement(db, st, r);
        sqlite3_finalize(st);
        if (rc < 0)
            return rc;
        ran = 1;
    }
    if (!ran)
        return elo_seterr(ELO_SQL, "empty statement");
    return ELO_OK;
}

/* ---- routing -------------------------------------------------------------- */

typedef struct {
    int ours;            /* 1: our executor can run it */
    const char *why;
    sql_plan plan;
    elo_backend *dev;    /* CUDA backend or NULL (CPU) */
} route;

static int plan_query(elo_sql *db, elo_arena *a, const char *sql, route *rt)
{
    select_stmt *s = elo_arena_alloc(a, sizeof *s);
    memset(rt, 0, sizeof *rt);
    if (db->device == ELO_SQL_DEVICE_SQLITE) {
        rt->why = "--device sqlite";
        return ELO_OK;
    }
    if (elo__sql_parse(a, sql, s, &rt->why) < 0)
        return ELO_OK;
    elo__sql_cache_check(db);
    sql_table *t = NULL;
    if (s->table) {
        int rc = elo__sql_cache_get(db, s->table, &t, &rt->why);
        if (rc == ELO_UNSUPPORTED)
            return ELO_OK;
        if (rc < 0)
            return rc;
    }
    if (elo__sql_plan(a, s, t, &rt->plan, &rt->why) < 0)
        return ELO_OK;
    rt->ours = 1;
    rt->why = NULL;
    int64_t rows = t ? t->nrows : 1;
    elo_device_kind want = db->device == ELO_SQL_DEVICE_CUDA ? ELO_DEVICE_CUDA
                           : db->device == ELO_SQL_DEVICE_CPU ? ELO_DEVICE_CPU
                                                              : ELO_DEVICE_AUTO;
    elo_device_kind k = want;
    if (want == ELO_DEVICE_AUTO)
        k = elo_sql_cuda_group_aggregate ? elo_backend_choose(ELO_DEVICE_AUTO, ELO_OP_SQL_SCAN,
                                                              (double)rows)
                                         : ELO_DEVICE_CPU;
    if (k == ELO_DEVICE_CUDA && t) {
        elo_backend *b;
        if (elo_backend_get(ELO_DEVICE_CUDA, &b) == ELO_OK &&
            elo__sql_table_to_device(db, t) == ELO_OK)
            rt->dev = b;
        else if (want == ELO_DEVICE_CUDA) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", elo_errmsg());
            return elo_seterr(ELO_DEVICE, "cannot place table %s on the GPU: %s", t->name, msg);
        }
    }
    return ELO_OK;
}

int elo__sql_query_ex(elo_sql *db, const char *sql, elo_sql_result **out, int keep_partial)
{
    *out = NULL;
    elo_sql_result *r = result_new();
    if (!r)
        return ELO_NOMEM;
    elo_arena *a = elo_arena_new(0);
    if (!a) {
        elo_sql_result_free(r);
        return ELO_NOMEM;
    }
    route rt;
    int rc = plan_query(db, a, sql, &rt);
    if (rc < 0) {
        elo_arena_free(a);
        elo_sql_result_free(r);
        return rc;
    }
    if (rt.ours) {
        r->ncols = rt.plan.nout;
        r->names = elo_arena_alloc(r->arena, sizeof(char *) * (size_t)r->ncols);
        for (int c = 0; c < r->ncols; c++)
            r->names[c] = elo_arena_strdup(r->arena, rt.plan.names[c]);
        int used = ELO_DEVICE_CPU;
        const char *why = NULL;
        rc = elo__sql_execute(&rt.plan, rt.dev, r, &why, &used);
        if (rc == ELO_OK) {
            snprintf(r->engine, sizeof r->engine, "%s", used == ELO_DEVICE_CUDA ? "cuda" : "cpu");
            if (used == ELO_DEVICE_CUDA) db->stats.ours_cuda++;
            else db->stats.ours_cpu++;
            elo_arena_free(a);
            *out = r;
            return ELO_OK;
        }
        if (rc != ELO_UNSUPPORTED) {
            elo_arena_free(a);
            elo_sql_result_free(r);
            return rc;
        }
        rt.why = why;
    }
    snprintf(r->reason, sizeof r->reason, "%s", rt.why ? rt.why : "outside our subset");
    elo_arena_free(a);
    db->stats.sqlite++;
    rc = run_sqlite(db, sql, r);
    if (rc < 0 && !keep_partial) {
        elo_sql_result_free(r);
        return rc;
    }
    *out = r;
    return rc;
}

int elo_sql_query(elo_sql *db, const char *sql, elo_sql_result **out)
{
    return elo__sql_query_ex(db, sql, out, 0);
}

int elo_sql_explain(elo_sql *db, const char *sql, char *engine, size_t engine_cap, char *reason,
                    size_t reason_cap)
{
    elo_arena *a = elo_arena_new(0);
    if (!a)
        return ELO_NOMEM;
    route rt;
    int rc = plan_query(db, a, sql, &rt);
    if (rc == ELO_OK) {
        snprintf(engine, engine_cap, "%s", !rt.ours ? "sqlite" : rt.dev ? "cuda" : "cpu");
        snprintf(reason, reason_cap, "%s", rt.ours ? "" : rt.why ? rt.why : "outside our subset");
    }
    elo_arena_free(a);
    return rc;
}

/* ---- dataframe API ---------------------------------------------------------- */

typedef struct {
    char *s;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_add(sbuf *b, const char *s)
{
    size_t n = strlen(s);
    if (b->n + n + 1 > b->cap) {
        size_t nc = (b->n + n + 1) * 2;
        char *ns = elo_realloc(b->s, nc);
        if (!ns) {
            b->oom = 1;
            return;
        }
        b->s = ns;
        b->cap = nc;
    }
    memcpy(b->s + b->n, s, n + 1);
    b->n += n;
}

static void sb_ident(sbuf *b, const char *id)
{
    sb_add(b, "\"");
    for (const char *p = id; *p; p++) {
        char c[3] = {*p, 0, 0};
        if (*p == '"')
            c[1] = '"';
        sb_add(b, c);
    }
    sb_add(b, "\"");
}

int elo_sql_groupby(elo_sql *db, const char *table, const char *const *keys, int nkeys,
                    const elo_sql_agg *aggs, int naggs, const char *filter, elo_sql_result **out)
{
    *out = NULL;
    if (!table || nkeys < 0 || nkeys > 4 || naggs < 0 || nkeys + naggs == 0)
        return elo_seterr(ELO_BADINPUT, "groupby: a table, 0..4 keys and at least one column");
    static const char *fname[] = {"count", "sum", "avg", "min", "max", "total", "count"};
    sbuf b = {0};
    sb_add(&b, "SELECT ");
    for (int k = 0; k < nkeys; k++) {
        if (k)
            sb_add(&b, ", ");
        sb_ident(&b, keys[k]);
    }
    for (int i = 0; i < naggs; i++) {
        if (nkeys || i)
            sb_add(&b, ", ");
        if ((unsigned)aggs[i].fn > ELO_SQL_AGG_COUNT_DISTINCT) {
            elo_free(b.s);
            return elo_seterr(ELO_BADINPUT, "groupby: unknown aggregate %d", (int)aggs[i].fn);
        }
        sb_add(&b, fname[aggs[i].fn]);
        sb_add(&b, "(");
        if (aggs[i].fn == ELO_SQL_AGG_COUNT_DISTINCT)
            sb_add(&b, "DISTINCT ");
        if (aggs[i].column)
            sb_ident(&b, aggs[i].column);
        else if (aggs[i].fn == ELO_SQL_AGG_COUNT)
            sb_add(&b, "*");
        else {
            elo_free(b.s);
            return elo_seterr(ELO_BADINPUT, "groupby: aggregate %d needs a column", i);
        }
        sb_add(&b, ")");
    }
    sb_add(&b, " FROM ");
    sb_ident(&b, table);
    if (filter) {
        sb_add(&b, " WHERE ");
        sb_add(&b, filter);
    }
    if (nkeys) {
        sb_add(&b, " GROUP BY ");
        for (int k = 0; k < nkeys; k++) {
            if (k)
                sb_add(&b, ", ");
            sb_ident(&b, keys[k]);
        }
    }
    if (b.oom) {
        elo_free(b.s);
        return ELO_NOMEM;
    }
    int rc = elo_sql_query(db, b.s, out);
    elo_free(b.s);
    return rc;
}

int elo_sql_project(elo_sql *db, const char *table, const char *const *exprs, int nexprs,
                    const char *filter, elo_sql_result **out)
{
    *out = NULL;
    if (!table || nexprs <= 0)
        return elo_seterr(ELO_BADINPUT, "project: a table and at least one expression");
    sbuf b = {0};
    sb_add(&b, "SELECT ");
    for (int i = 0; i < nexprs; i++) {
        if (i)
            sb_add(&b, ", ");
        sb_add(&b, exprs[i]);
    }
    sb_add(&b, " FROM ");
    sb_ident(&b, table);
    if (filter) {
        sb_add(&b, " WHERE ");
        sb_add(&b, filter);
    }
    if (b.oom) {
        elo_free(b.s);
        return ELO_NOMEM;
    }
    int rc = elo_sql_query(db, b.s, out);
    elo_free(b.s);
    return rc;
}
