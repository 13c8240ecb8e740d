/* bench-sql.c - `elohim bench sql`: db-benchmark groupby shapes q1-q5 (100,
 * 10K and 1M groups; sums and means) on our columnar engine against SQLite
 * and DuckDB (CPU mode), or against PyTorch scatter/index_add on the GPU
 * (--device cuda), side by side in one run.
 *
 * Data: a deterministic splitmix64 stream per column (bench/peer-sql.py
 * generates the very same values with numpy), table x(id1, id2, id3 TEXT,
 * id4, id5, id6 INTEGER, v1, v2 INTEGER, v3 REAL). CPU mode writes it to
 * SQLite (the system of record) and our engine loads it from there like any
 * table; GPU mode builds the columns in memory, uploads them once and
 * times queries on resident columns. */
#include "cli.h"
#include "elohim/sql.h"
#include "sql/sql-impl.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t mix(uint64_t col, uint64_t i)
{
    uint64_t z = col * 0x632be59bd9b4e019ull + (i + 1) * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* column c of row i, as the peer computes it */
static const int64_t card[9] = {100, 100, 1000000, 100, 100, 1000000, 5, 15, 0};
static int64_t gen_int(int c, int64_t i) { return 1 + (int64_t)(mix((uint64_t)c + 1, (uint64_t)i) % (uint64_t)card[c]); }
static double gen_v3(int64_t i) { return (double)(mix(9, (uint64_t)i) % 100000000ull) / 1e6; }

static const char *const qsql[5] = {
    "SELECT id1, SUM(v1) AS v1 FROM x GROUP BY id1",
    "SELECT id1, id2, SUM(v1) AS v1 FROM x GROUP BY id1, id2",
    "SELECT id3, SUM(v1) AS v1, AVG(v3) AS v3 FROM x GROUP BY id3",
    "SELECT id4, AVG(v1) AS v1, AVG(v2) AS v2, AVG(v3) AS v3 FROM x GROUP BY id4",
    "SELECT id6, SUM(v1) AS v1, SUM(v2) AS v2, SUM(v3) AS v3 FROM x GROUP BY id6"};
static const char *const qname[5] = {"q1 sum v1 by id1", "q2 sum v1 by id1,id2",
                                     "q3 sum v1, mean v3 by id3", "q4 mean v1:v3 by id4",
                                     "q5 sum v1:v3 by id6"};
/* the columns each query reads (id1..id6 = 0..5, v1..v3 = 6..8) */
static const int qcols[5][5] = {{0, 6, -1}, {0, 1, 6, -1}, {2, 6, 8, -1}, {3, 6, 7, 8, -1},
                                {5, 6, 7, 8, -1}};

/* Bytes per row a scan must read. The CPU engine reads 8 B per value + 1
 * B type; the GPU copies are narrowed by the engine's own rule
 * (elo__sql_device_form), with no type bytes without NULLs (this data has
 * none). */
static double row_bytes(int q, int gpu)
{
    double b = 0;
    for (int i = 0; qcols[q][i] >= 0; i++) {
        int c = qcols[q][i];
        if (!gpu) {
            b += 9;
            continue;
        }
        sql_column col;
        memset(&col, 0, sizeof col);
        if (c == 8) {
            col.has_real = 1;
        } else if (c < 3) { /* id1..id3 are text: codes 0..card-1 */
            col.has_text = 1;
            col.ndict = (uint32_t)card[c];
        } else {
            col.has_int = 1;
            col.imin = 1;
            col.imax = card[c];
        }
        int width;
        int64_t base;
        elo__sql_device_form(&col, &width, &base);
        b += width;
    }
    return b;
}

static double checksum(const elo_sql_result *r, int nkeys)
{
    double s = 0;
    for (int64_t i = 0; i < elo_sql_result_rows(r); i++)
        for (int c = nkeys; c < elo_sql_result_columns(r); c++) {
            elo_sql_value v = elo_sql_result_value(r, i, c);
            s += v.type == ELO_SQL_INTEGER ? (double)v.i : v.type == ELO_SQL_REAL ? v.r : 0;
        }
    return s;
}

static const char *text_id(char *buf, size_t cap, int width, int64_t v)
{
    snprintf(buf, cap, "id%0*lld", width, (long long)v);
    return buf;
}

static int fill_sqlite(elo_sql *db, int64_t rows)
{
    if (elo_sql_exec(db, "DROP TABLE IF EXISTS x; CREATE TABLE x(id1 TEXT, id2 TEXT, id3 TEXT, "
                         "id4 INTEGER, id5 INTEGER, id6 INTEGER, v1 INTEGER, v2 INTEGER, v3 REAL);"
                         "BEGIN") < 0)
        return ELO_SQL;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->db, "INSERT INTO x VALUES(?,?,?,?,?,?,?,?,?)", -1, &st, NULL))
        return elo_seterr(ELO_SQL, "%s", sqlite3_errmsg(db->db));
    elo_progress p;
    elo_progress_begin(&p, "sqlite", (uint64_t)rows);
    char b[3][32];
    for (int64_t i = 0; i < rows; i++) {
        sqlite3_bind_text(st, 1, text_id(b[0], 32, 3, gen_int(0, i)), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, text_id(b[1], 32, 3, gen_int(1, i)), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, text_id(b[2], 32, 10, gen_int(2, i)), -1, SQLITE_STATIC);
        for (int c = 3; c < 8; c++)
            sqlite3_bind_int64(st, c + 1, gen_int(c, i));
        sqlite3_bind_double(st, 9, gen_v3(i));
        if (sqlite3_step(st) != SQLITE_DONE) {
            sqlite3_finalize(st);
            return elo_seterr(ELO_SQL, "%s", sqlite3_errmsg(db->db));
        }
        sqlite3_reset(st);
        if ((i & 65535) == 0)
            elo_progress_update(&p, (uint64_t)i);
    }
    elo_progress_end(&p);
    sqlite3_finalize(st);
    return elo_sql_exec(db, "COMMIT");
}

/* the same table straight into columnar memory (GPU mode) */
static sql_table *build_table(int64_t rows)
{
    static const char *names[9] = {"id1", "id2", "id3", "id4", "id5", "id6", "v1", "v2", "v3"};
    sql_table *t = elo_calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->name = elo_strdup("x");
    t->ncols = 9;
    t->nrows = rows;
    t->cols = elo_calloc(9, sizeof(sql_column));
    for (int c = 0; c < 9; c++) {
        sql_column *col = &t->cols[c];
        col->name = elo_strdup(names[c]);
        col->aff = c < 3 ? AFF_TEXT : c == 8 ? AFF_REAL : AFF_INTEGER;
        col->type = elo_malloc((size_t)rows);
        col->val = elo_malloc(sizeof(int64_t) * (size_t)rows);
        if (!col->type || !col->val)
            return t; /* caller checks */
        if (c < 3) {
            /* dictionary of zero-padded ids: sorted order = numeric order */
            int width = c == 2 ? 10 : 3;
            col->ndict = (uint32_t)card[c];
            col->dict = elo_malloc(sizeof(char *) * col->ndict);
            col->dict_len = elo_malloc(sizeof(uint32_t) * col->ndict);
            col->dict_text = elo_malloc((size_t)col->ndict * 32);
            if (!col->dict || !col->dict_len || !col->dict_text)
                return t; /* caller checks */
            char *at = col->dict_text;
            for (uint32_t k = 0; k < col->ndict; k++) {
                text_id(at, 32, width, (int64_t)k + 1);
                col->dict[k] = at;
                col->dict_len[k] = (uint32_t)strlen(at);
                at += col->dict_len[k] + 1;
            }
            col->has_text = 1;
        } else if (c < 8) {
            col->has_int = 1;
            col->imin = 1;
            col->imax = card[c];
        } else {
            col->has_real = 1;
        }
    }
    for (int c = 0; c < 9; c++) {
        sql_column *col = &t->cols[c];
        memset(col->type, c < 3 ? SV_TEXT : c == 8 ? SV_REAL : SV_INT, (size_t)rows);
        for (int64_t i = 0; i < rows; i++) {
            if (c < 3) col->val[i] = gen_int(c, i) - 1;
            else if (c < 8) col->val[i] = gen_int(c, i);
            else { double d = gen_v3(i); memcpy(&col->val[i], &d, 8); }
        }
    }
    t->bytes = (size_t)rows * 9 * 9;
    return t;
}

typedef struct {
    double ours_ms, sqlite_ms, peer_ms;
    double ours_sum, peer_sum;
    int64_t groups;
    char engine[8];
} qresult;

static int run_ours(elo_sql *db, int q, int reps, qresult *r)
{
    double best = 1e30;
    for (int k = 0; k < reps; k++) {
        elo_sql_result *res;
        double t0 = elo_time_sec();
        int rc = elo_sql_query(db, qsql[q], &res);
        double dt = elo_time_sec() - t0;
        if (rc < 0)
            return rc;
        if (dt < best)
            best = dt;
        r->ours_sum = checksum(res, q == 1 ? 2 : 1);
        r->groups = elo_sql_result_rows(res);
        snprintf(r->engine, sizeof r->engine, "%s", elo_sql_result_engine(res));
        elo_sql_result_free(res);
    }
    r->ours_ms = best * 1e3;
    return ELO_OK;
}

static void find_peer(char *py, size_t cap)
{
    const char *env = getenv("ELOHIM_PEER_PYTHON");
    if (env) snprintf(py, cap, "%s", env);
    else if (access(".venv/bin/python", X_OK) == 0) snprintf(py, cap, ".venv/bin/python");
    else snprintf(py, cap, "python3");
}

/* Runs the peer script; fills peer_ms / peer_sum from its JSON lines. */
static int run_peer(const char *py, const char *script, int64_t rows, int gpu, int reps,
                    qresult *res, char *peer_name, size_t cap)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s --rows %lld --reps %d %s", py, script, (long long)rows, reps,
             gpu ? "--gpu" : "");
    fprintf(stderr, "bench sql: running peer: %s\n", cmd);
    FILE *f = cli_popen_peer(cmd);
    if (!f)
        return -1;
    char line[4096];
    int got = 0;
    while (fgets(line, sizeof line, f)) {
        json_error_t err;
        json_t *o = json_loads(line, 0, &err);
        if (!o)
            continue;
        json_t *qs = json_object_get(o, "queries");
        const char *name = json_string_value(json_object_get(o, "peer"));
        if (name)
            snprintf(peer_name, cap, "%s", name);
        size_t i;
        json_t *v;
        json_array_foreach(qs, i, v) {
            if (i < 5) {
                res[i].peer_ms = json_number_value(json_object_get(v, "ms"));
                res[i].peer_sum = json_number_value(json_object_get(v, "checksum"));
                got++;
            }
        }
        json_decref(o);
    }
    int rc = pclose(f);
    return got == 5 && rc == 0 ? 0 : -1;
}

int bench_sql(int argc, char **argv)
{
    int64_t rows = 10000000;
    int reps = 5, json = 0, no_sqlite = 0, no_peer = 0;
    const char *device = "cpu", *peer = "bench/peer-sql.py", *data = NULL;
    static const struct option opts[] = {{"rows", required_argument, NULL, 'n'},
                                         {"reps", required_argument, NULL, 'r'},
                                         {"device", required_argument, NULL, 'D'},
                                         {"peer", required_argument, NULL, 'p'},
                                         {"data", required_argument, NULL, 'd'},
                                         {"no-sqlite", no_argument, NULL, 'S'},
                                         {"no-peer", no_argument, NULL, 'P'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'n': rows = (int64_t)atof(optarg); break;
        case 'r': reps = atoi(optarg); break;
        case 'D': device = optarg; break;
        case 'p': peer = optarg; break;
        case 'd': data = optarg; break;
        case 'S': no_sqlite = 1; break;
        case 'P': no_peer = 1; break;
        case 'j': json = 1; break;
        case 'h':
            printf("usage: elohim bench sql [--rows N] [--reps R] [--device cpu|cuda] [--data DIR]\n"
                   "       [--no-sqlite] [--no-peer] [--peer bench/peer-sql.py] [--json]\n");
            return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    if (rows < 1000 || reps < 1)
        return cli_fail(CLI_USAGE, "bench sql", "--rows >= 1000 and --reps >= 1");
    int gpu = !strcmp(device, "cuda") || !strcmp(device, "gpu");
    if (!gpu && strcmp(device, "cpu"))
        return cli_fail(CLI_USAGE, "bench sql", "--device cpu|cuda");
    elo_sql *db;
    char dir[256];
    if (data) snprintf(dir, sizeof dir, "%s", data);
    else snprintf(dir, sizeof dir, "/tmp/elohim-bench-sql-%d", (int)getpid());
    int rc = elo_sql_open(dir, &db);
    if (rc < 0)
        return cli_status_fail("bench sql", rc);
    rc = elo_sql_set_device(db, gpu ? ELO_SQL_DEVICE_CUDA : ELO_SQL_DEVICE_CPU);
    if (rc < 0) {
        elo_sql_close(db);
        return cli_fail(CLI_USAGE, "bench sql", "--device %s: %s", device, elo_errmsg());
    }
    qresult res[5];
    memset(res, 0, sizeof res);
    double t0 = elo_time_sec(), load_s = 0, fill_s = 0;
    if (gpu) {
        sql_table *t = build_table(rows);
        for (int k = 0; t && k < 9; k++)
            if (!t->cols[k].val || !t->cols[k].type || (k < 3 && !t->cols[k].dict_text)) {
                elo__sql_table_free(t);
                t = NULL;
            }
        if (!t) {
            elo_sql_close(db);
            return cli_fail(CLI_FAIL, "bench sql", "out of memory building %lld rows", (long long)rows);
        }
        fill_s = elo_time_sec() - t0;
        elo__sql_cache_put(db, t);
        t0 = elo_time_sec();
        rc = elo__sql_table_to_device(db, t);
        load_s = elo_time_sec() - t0;
        if (rc < 0) {
            elo_sql_close(db);
            return cli_status_fail("bench sql", rc);
        }
        no_sqlite = 1;
    } else {
        rc = fill_sqlite(db, rows);
        fill_s = elo_time_sec() - t0;
        if (rc < 0) {
            elo_sql_close(db);
            return cli_status_fail("bench sql", rc);
        }
        /* the first query loads the columns from SQLite: timed apart */
        elo_sql_result *r0;
        t0 = elo_time_sec();
        rc = elo_sql_query(db, "SELECT COUNT(*) FROM x WHERE v1 > 0 GROUP BY id1", &r0);
        load_s = elo_time_sec() - t0;
        elo_sql_result_free(r0);
    }
    fprintf(stderr, "bench sql: %lld rows; data %.1f s, columns %s %.2f s\n", (long long)rows,
            fill_s, gpu ? "to GPU" : "loaded from SQLite", load_s);
    for (int q = 0; q < 5; q++) {
        rc = run_ours(db, q, reps, &res[q]);
        if (rc < 0) {
            elo_sql_close(db);
            return cli_status_fail("bench sql", rc);
        }
        if (!no_sqlite) {
            elo_sql_set_device(db, ELO_SQL_DEVICE_SQLITE);
            elo_sql_result *r;
            double s0 = elo_time_sec();
            if (elo_sql_query(db, qsql[q], &r) == ELO_OK) {
                res[q].sqlite_ms = (elo_time_sec() - s0) * 1e3;
                double cs = checksum(r, q == 1 ? 2 : 1);
                if (fabs(cs - res[q].ours_sum) > 1e-9 * fabs(cs))
                    fprintf(stderr, "bench sql: %s: checksum differs from SQLite's (%.17g vs %.17g)\n",
                            qname[q], res[q].ours_sum, cs);
                elo_sql_result_free(r);
            }
            elo_sql_set_device(db, ELO_SQL_DEVICE_CPU);
        }
    }
    char peer_name[64] = "peer";
    int peer_ok = 0;
    if (!no_peer) {
        char py[512];
        find_peer(py, sizeof py);
        peer_ok = run_peer(py, peer, rows, gpu, reps, res, peer_name, sizeof peer_name) == 0;
        if (!peer_ok)
            fprintf(stderr, "bench sql: the peer did not run (bench/requirements-sql.txt; "
                            "scripts/peer-venv.sh makes .venv)\n");
    }
    elo_sql_close(db);
    if (!data) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "bench sql: could not remove %s\n", dir);
    }
    if (json) {
        json_t *o = json_object(), *qs = json_array();
        for (int q = 0; q < 5; q++) {
            json_t *x = json_object();
            json_object_set_new(x, "query", json_string(qname[q]));
            json_object_set_new(x, "groups", json_integer(res[q].groups));
            json_object_set_new(x, "engine", json_string(res[q].engine));
            json_object_set_new(x, "ours_ms", json_real(res[q].ours_ms));
            json_object_set_new(x, "checksum", json_real(res[q].ours_sum));
            if (!no_sqlite) json_object_set_new(x, "sqlite_ms", json_real(res[q].sqlite_ms));
            if (peer_ok) json_object_set_new(x, "peer_ms", json_real(res[q].peer_ms));
            json_array_append_new(qs, x);
        }
        json_object_set_new(o, "rows", json_integer(rows));
        json_object_set_new(o, "device", json_string(gpu ? "cuda" : "cpu"));
        json_object_set_new(o, "peer", json_string(peer_name));
        json_object_set_new(o, "queries", qs);
        cli_print_json(o);
        return CLI_OK;
    }
    printf("groupby, %lld rows, %s; best of %d; ours vs %s%s\n", (long long)rows,
           gpu ? "columns resident on the GPU" : "columns cached in RAM", reps,
           no_sqlite ? "" : "SQLite and ", peer_name);
    printf("%-28s %8s %6s %10s %7s", "query", "groups", "engine", "ours ms", "GB/s");
    if (!no_sqlite)
        printf(" %11s %8s", "sqlite ms", "x sqlite");
    if (peer_ok)
        printf(" %10s %8s", "peer ms", "x peer");
    printf("\n");
    for (int q = 0; q < 5; q++) {
        double bytes = (double)rows * row_bytes(q, gpu);
        printf("%-28s %8lld %6s %10.2f %7.1f", qname[q], (long long)res[q].groups, res[q].engine,
               res[q].ours_ms, bytes / (res[q].ours_ms * 1e-3) / 1e9);
        if (!no_sqlite)
            printf(" %11.1f %8.1f", res[q].sqlite_ms, res[q].sqlite_ms / res[q].ours_ms);
        if (peer_ok)
            printf(" %10.2f %8.2f", res[q].peer_ms, res[q].peer_ms / res[q].ours_ms);
        printf("\n");
        if (peer_ok && res[q].peer_sum != 0 &&
            fabs(res[q].peer_sum - res[q].ours_sum) > 1e-6 * fabs(res[q].peer_sum))
            fprintf(stderr, "bench sql: %s: checksum differs from the peer's (%.17g vs %.17g)\n",
                    qname[q], res[q].ours_sum, res[q].peer_sum);
    }
    if (gpu)
        printf("floor: the GPU copies are narrowed: each query reads 1-4 B per key or integer value\n"
               "(by range) and 8 B per real (q1 2 B a row, q3 13 B); GB/s above is those bytes over\n"
               "our time.\n");
    else
        printf("floor: each query reads 9 B per value (8 B value + 1 B type) of the columns it uses;\n"
               "GB/s above is those bytes over our time.\n");
    return CLI_OK;
}
