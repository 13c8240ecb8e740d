/* sql.h - SQL over the user's tables: SQLite is the system of record and
 * answers everything; a columnar engine (all CPU cores, or CUDA) answers the
 * analytic queries it can run - aggregations with WHERE and GROUP BY and
 * column arithmetic - with exactly SQLite's results.
 *
 * Also a dataframe-style C API (elo_sql_groupby, elo_sql_project) so that C
 * programs use the same engine without writing SQL, and CSV import.
 *
 * Threads: one elo_sql handle is used by one thread at a time. */
#ifndef ELOHIM_SQL_H
#define ELOHIM_SQL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct elo_sql elo_sql;
typedef struct elo_sql_result elo_sql_result;

/* Where queries run. AUTO: the columnar engine on the GPU when one is usable
 * and the table is large enough, else on the CPU; SQLite when ours cannot. */
typedef enum {
    ELO_SQL_DEVICE_AUTO = 0,
    ELO_SQL_DEVICE_CPU = 1,
    ELO_SQL_DEVICE_CUDA = 2,
    ELO_SQL_DEVICE_SQLITE = 3   /* always SQLite */
} elo_sql_device;

/* Storage classes of a result value (SQLite's). */
typedef enum {
    ELO_SQL_NULL = 0,
    ELO_SQL_INTEGER = 1,
    ELO_SQL_REAL = 2,
    ELO_SQL_TEXT = 3
} elo_sql_type;

typedef struct {
    elo_sql_type type;
    int64_t i;          /* INTEGER */
    double r;           /* REAL */
    const char *s;      /* TEXT, NUL-terminated; valid while the result lives */
    size_t len;         /* TEXT bytes */
} elo_sql_value;

typedef struct {
    uint64_t ours_cpu, ours_cuda, sqlite;   /* queries answered by each */
    uint64_t cache_loads, cache_drops;      /* columnar cache events */
} elo_sql_stats;

/* Opens (creating as needed) the database `DIR/elohim.db` in WAL mode.
 * `dir` NULL: $ELOHIM_DATA or ./elohim-data. Returns a new handle in *out;
 * free with elo_sql_close(). elo_sql_close(NULL) is a no-op. */
int elo_sql_open(const char *dir, elo_sql **out);
/* The same over an explicit database file (":memory:" works). */
int elo_sql_open_file(const char *path, elo_sql **out);
void elo_sql_close(elo_sql *db);

/* ELO_NODEVICE (with elo_errmsg()) when CUDA is asked for and unusable. */
int elo_sql_set_device(elo_sql *db, elo_sql_device device);

/* Runs statements through SQLite (no result rows). ELO_SQL with the SQLite
 * message in elo_errmsg() on failure. */
int elo_sql_exec(elo_sql *db, const char *sql);

/* Runs one query. On success *out holds the rows (free with
 * elo_sql_result_free). On failure returns ELO_SQL with SQLite's message;
 * rows produced before a failure are discarded. */
int elo_sql_query(elo_sql *db, const char *sql, elo_sql_result **out);

/* Plans without running: which engine would run `sql` and why (SQLite's
 * reason, or "" when ours runs it). Writes at most `cap` bytes. */
int elo_sql_explain(elo_sql *db, const char *sql, char *engine, size_t engine_cap,
                    char *reason, size_t reason_cap);

void elo_sql_result_free(elo_sql_result *r);
int elo_sql_result_columns(const elo_sql_result *r);
int64_t elo_sql_result_rows(const elo_sql_result *r);
const char *elo_sql_result_name(const elo_sql_result *r, int col);
elo_sql_value elo_sql_result_value(const elo_sql_result *r, int64_t row, int col);
/* "cpu", "cuda" or "sqlite", and SQLite's reason ("" for ours). */
const char *elo_sql_result_engine(const elo_sql_result *r);
const char *elo_sql_result_reason(const elo_sql_result *r);

const elo_sql_stats *elo_sql_get_stats(const elo_sql *db);

/* ---- dataframe API ---------------------------------------------------- */

typedef enum {
    ELO_SQL_AGG_COUNT = 0,   /* column NULL: COUNT(*) */
    ELO_SQL_AGG_SUM,
    ELO_SQL_AGG_AVG,
    ELO_SQL_AGG_MIN,
    ELO_SQL_AGG_MAX,
    ELO_SQL_AGG_TOTAL,
    ELO_SQL_AGG_COUNT_DISTINCT
} elo_sql_agg_fn;

typedef struct {
    elo_sql_agg_fn fn;
    const char *column;
} elo_sql_agg;

/* GROUP BY `keys` (nkeys 0..4 column names) computing `aggs`, rows where
 * `filter` is true (an SQL expression, or NULL). Result columns: the keys,
 * then the aggregates; rows in key order. Names are quoted for you. */
int elo_sql_groupby(elo_sql *db, const char *table, const char *const *keys, int nkeys,
                    const elo_sql_agg *aggs, int naggs, const char *filter,
                    elo_sql_result **out);
/* One output column per expression (column arithmetic, e.g. "price *
 * quantity"), over rows where `filter` holds (NULL: all), in table order. */
int elo_sql_project(elo_sql *db, const char *table, const char *const *exprs, int nexprs,
                    const char *filter, elo_sql_result **out);

/* ---- sqllogictest ------------------------------------------------------ */

typedef struct {
    int64_t queries, passed, failed;   /* query records run */
    int64_t ours, sqlite;              /* which engine answered them */
    int64_t statements, statement_failures, skipped;
    struct {
        char why[96];
        int64_t n;
    } reasons[24];                     /* why SQLite ran queries, most seen first */
    int nreasons;
} elo_slt_counts;

/* Runs one sqllogictest script (format: sqlite.org's sqllogictest) against
 * a fresh in-memory database through our engine with SQLite as the
 * fallback. Mismatches are described on `log` (NULL: quiet), at most
 * `max_report` of them. Returns ELO_OK when the script could be read (the
 * counts say whether it passed), a negative status otherwise. */
int elo_sql_logictest(const char *path, elo_sql_device device, elo_slt_counts *counts,
                      FILE *log, int max_report);

/* ---- CSV import ------------------------------------------------------- */

typedef struct {
    int64_t rows;
    int columns;
    char types[64][8];   /* inferred type of the first 64 columns */
} elo_csv_report;

/* Imports an RFC 4180 CSV file (header row; quotes, "" escapes, embedded
 * newlines, CRLF) into a new table `table`, inferring INTEGER, REAL or
 * TEXT per column (empty fields are NULL). Streams the file twice (types,
 * then rows) in constant memory; one transaction: on any error nothing is
 * imported and elo_errmsg() names the line. ELO_EXISTS if the table exists. */
int elo_sql_import_csv(elo_sql *db, const char *path, const char *table,
                       elo_csv_report *report);

/* The streaming CSV reader used by import (exposed for tests/fuzzing). */
typedef struct elo_csv elo_csv;
/* Reads from memory (`data` must outlive the reader). */
elo_csv *elo_csv_new_mem(const char *data, size_t len);
elo_csv *elo_csv_new_file(const char *path);
void elo_csv_free(elo_csv *c);
/* Next record: returns the field count (>= 1), 0 at end of input, or a
 * negative status with elo_errmsg() naming the line. Fields stay valid
 * until the next call; each is NUL-terminated (embedded NULs rejected). */
int elo_csv_next(elo_csv *c, char ***fields, size_t **lens);
int64_t elo_csv_line(const elo_csv *c);  /* line where the last record began */

#ifdef __cplusplus
}
#endif
#endif
