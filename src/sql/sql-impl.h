/* sql-impl.h - internals of the SQL subsystem shared by its files: values
 * with SQLite's semantics, the parse tree of our SELECT subset, the loaded
 * columnar tables, the plan the executor runs and the CUDA entry points.
 *
 * The engine (sql-engine.c) owns an SQLite connection, the system of
 * record. A query is tokenized and parsed (sql-parse.c); the planner
 * (sql-plan.c) resolves names against the table and decides whether our
 * columnar executor can answer with exactly SQLite's result; if not, it
 * records why and SQLite runs the query unchanged. */
#ifndef ELOHIM_SQL_IMPL_H
#define ELOHIM_SQL_IMPL_H

#include "elohim/backend.h"
#include "elohim/core.h"
#include "elohim/sql.h"

#include <sqlite3.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- values ------------------------------------------------------------ */

enum { SV_NULL = 0, SV_INT = 1, SV_REAL = 2, SV_TEXT = 3 };

typedef struct {
    uint8_t t;          /* SV_* */
    uint32_t len;       /* bytes of text */
    union {
        int64_t i;
        double r;
        const char *s;  /* not NUL-terminated in general */
    };
} sv;

/* Column affinities (SQLite's rules, section 3.1 of datatype3). */
enum { AFF_NONE = 0, AFF_TEXT, AFF_NUMERIC, AFF_INTEGER, AFF_REAL, AFF_BLOB };
int elo__sql_affinity(const char *decl_type);

/* sqlite3MemCompare with BINARY collation: NULL < numbers < text. */
int elo__sv_cmp(const sv *a, const sv *b);
/* doubleToInt64: saturating conversion as SQLite does it. */
int64_t elo__sql_d2i(double r);
/* Hash consistent with elo__sv_cmp equality (for ints and reals of equal
 * value it hashes the same). */
uint64_t elo__sv_hash(const sv *v);

/* ---- tokens and parse tree -------------------------------------------- */

enum {
    E_LIT, E_COL, E_NEG, E_POS, E_NOT, E_BIN, E_IS, E_ISNOT, E_ISNULL, E_NOTNULL,
    E_BETWEEN, E_IN, E_CASE, E_CAST, E_FUNC, E_AGG, E_STAR,
    E_KEYREF, E_AGGREF /* after planning: a group key / aggregate slot */
};
/* Binary operators of E_BIN. */
enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MOD, OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE,
       OP_AND, OP_OR };
/* Functions and aggregates we run. */
enum { F_COALESCE, F_IFNULL, F_NULLIF, F_ABS,
       A_COUNT_STAR, A_COUNT, A_SUM, A_TOTAL, A_AVG, A_MIN, A_MAX,
       A_BARE /* a bare column of an aggregate query: its value, when every
                 row of the group agrees on it */ };

typedef struct expr expr;
struct expr {
    int kind;           /* E_* */
    int op;             /* OP_* / F_* / A_* / cast affinity */
    int negate;         /* NOT BETWEEN, NOT IN */
    int distinct;       /* aggregate DISTINCT */
    sv lit;             /* E_LIT */
    char *tab, *name;   /* E_COL before resolution; E_FUNC name */
    int col;            /* E_COL: column index; E_KEYREF/E_AGGREF: slot */
    expr *a, *b, *c;    /* operands; CASE: a = base (or NULL), c = ELSE */
    expr **list;        /* IN list, function args, CASE WHEN/THEN pairs */
    int nlist;
    int aff;            /* E_COL: the column's affinity */
};

typedef struct {
    expr *e;
    char *alias;        /* AS name, or NULL */
    char *span;         /* the text as written (result column name) */
    int star;           /* `*` or `tab.*` */
    char *star_tab;
} sel_item;

typedef struct {
    expr *e;
    int desc;
} order_item;

#define SQL_MAX_ITEMS 256

typedef struct {
    int distinct;
    sel_item *items; int nitems;
    char *table; char *alias;      /* NULL table: no FROM */
    expr *where;
    expr **group; int ngroup;
    expr *having;
    order_item *order; int norder;
    expr *limit, *offset;
} select_stmt;

/* Parses one SELECT of our subset into arena memory. Returns ELO_OK, or
 * ELO_UNSUPPORTED with *why set (a static or arena string) when the text
 * is outside the subset or not valid SQL (SQLite then decides). */
int elo__sql_parse(elo_arena *a, const char *sql, select_stmt *out, const char **why);

/* ---- columnar tables --------------------------------------------------- */

typedef struct {
    char *name;
    int aff;            /* declared affinity */
    uint8_t *type;      /* SV_* per row */
    int64_t *val;       /* int, or real bits, or dictionary code for text */
    char **dict;        /* text dictionary, sorted (BINARY order): NUL-
                           terminated strings pointing into dict_text */
    char *dict_text;    /* the strings, packed in code order (owned) */
    uint32_t *dict_len;
    uint32_t ndict;
    int has_null, has_int, has_real, has_text;
    int has_negzero;    /* a REAL -0.0 (MIN/MAX ties then show which came first) */
    int64_t imin, imax; /* over the integer rows */
    void *dev_val;      /* device copies (CUDA), or NULL: values narrowed */
    void *dev_type;     /* to dev_width bytes; types only when has_null */
    int dev_width;      /* 1, 2 or 4: value = dev_base + the unsigned stored
                           one; 8: the raw 8-byte value (reals, mixed) */
    int64_t dev_base;
} sql_column;

typedef struct sql_table {
    char *name;
    int ncols;
    sql_column *cols;
    int64_t nrows;
    int has_index;
    size_t bytes;
    struct sql_table *next;
} sql_table;

/* ---- plan -------------------------------------------------------------- */

#define SQL_MAX_KEYS 8
#define SQL_MAX_AGGS 64

typedef struct {
    int fn;             /* A_* */
    int distinct;
    expr *arg;          /* NULL for COUNT(*) */
} agg_spec;

typedef struct {
    select_stmt *s;
    sql_table *t;       /* NULL: no FROM (one empty row) */
    int aggregate;      /* GROUP BY or aggregates present */
    expr *keys[SQL_MAX_KEYS]; int nkeys;
    agg_spec aggs[SQL_MAX_AGGS]; int naggs;
    expr **out; int nout;           /* result expressions */
    char **names;                   /* result column names */
    expr *having;
    expr **order; int *desc; int norder;
    int64_t limit, offset;          /* limit -1: none */
} sql_plan;

/* Resolves `s` against `t` (NULL when s has no FROM) into `p`. ELO_OK or
 * ELO_UNSUPPORTED with *why. */
int elo__sql_plan(elo_arena *a, select_stmt *s, sql_table *t, sql_plan *p, const char **why);

/* ---- results ----------------------------------------------------------- */

struct elo_sql_result {
    elo_arena *arena;
    int ncols;
    char **names;
    sv *cells;          /* nrows * ncols, room for cap rows */
    int64_t nrows, cap;
    size_t cells_bytes; /* the block behind cells (elo__sql_block_put) */
    char *text;         /* a big text block of groups out, or NULL */
    size_t text_bytes;
    char engine[8];     /* "cpu", "cuda", "sqlite" */
    char reason[256];   /* why SQLite ran it, when it did */
};

/* Appends a row (text copied into the result's arena); ELO_OK or
 * ELO_NOMEM. elo__result_reserve makes room for `nrows` rows in all, so
 * that pushing up to there does not reallocate; rows already there stay. */
int elo__result_push_row(elo_sql_result *r, const sv *row);
int elo__result_reserve(elo_sql_result *r, int64_t nrows);
/* `bytes` of text memory that lives as long as the result (the arena, or
 * for big blocks one from the block cache); NULL when out of memory. */
char *elo__result_text(elo_sql_result *r, size_t bytes);

/* Big blocks (result cells and text) are kept for reuse between queries
 * (sql-engine.c). elo__sql_block_get returns at least `bytes` (*got: how
 * many), a cached block when one fits, else a fresh one; NULL when out of
 * memory. elo__sql_block_put takes back a block of elo__sql_block_get or
 * of elo_malloc with its size: kept when big, else freed; NULL is a no-op. */
void *elo__sql_block_get(size_t bytes, size_t *got);
void elo__sql_block_put(void *block, size_t bytes);

/* Runs the plan on the columnar executor. `dev` is NULL for the CPU or the
 * CUDA backend. Returns ELO_OK, or ELO_UNSUPPORTED with *why when a value
 * met at run time needs SQLite (the result is then untouched), or another
 * negative status. */
int elo__sql_execute(sql_plan *p, elo_backend *dev, elo_sql_result *res, const char **why,
                     int *used_device);

/* ---- the dense group-aggregate kernel (CPU and CUDA) --------------------- */

/* Predicates fused into the kernel: column op constant. */
typedef struct {
    int col;            /* index into the kernel's column list */
    int op;             /* OP_EQ..OP_GE */
    int is_real;        /* compare as double */
    int64_t ival;
    double rval;
} kpred;

typedef struct {
    int64_t nrows;
    /* keys: dense ids combined into one group id */
    int nkeys;
    const int64_t *key_val[SQL_MAX_KEYS];
    const uint8_t *key_type[SQL_MAX_KEYS];
    int64_t key_base[SQL_MAX_KEYS];  /* id = val - base + 1; NULL -> 0 */
    int64_t key_span[SQL_MAX_KEYS];  /* ids in [0, span) */
    int64_t ngroups;                 /* product of spans */
    /* aggregates over columns */
    int naggs;
    int agg_fn[SQL_MAX_AGGS];        /* A_* */
    int agg_real[SQL_MAX_AGGS];      /* the column holds reals (else ints) */
    const int64_t *agg_val[SQL_MAX_AGGS]; /* NULL for COUNT(*) */
    int64_t agg_absmax[SQL_MAX_AGGS];     /* integer columns: max |value| */
    int agg_negzero[SQL_MAX_AGGS];        /* real columns holding -0.0 */
    int agg_nonull[SQL_MAX_AGGS];         /* the column holds no NULL */
    const uint8_t *agg_type[SQL_MAX_AGGS];
    int npreds;
    kpred preds[8];
    const int64_t *pred_val[8];
    const uint8_t *pred_type[8];
    /* device copies (CUDA) only: each column's dev_width and dev_base (a
     * NULL type pointer there means the column holds no NULL) */
    int key_w[SQL_MAX_KEYS], agg_w[SQL_MAX_AGGS], pred_w[8];
    int64_t key_b[SQL_MAX_KEYS], agg_b[SQL_MAX_AGGS], pred_b[8];
} kernel_job;

/* One aggregate of one group: integer SUM/TOTAL/AVG keep the positive part
 * in `a` and the negative part in `b` (or the whole sum in `a` when no
 * partial sum can reach 2^53 in magnitude); real sums keep the (naive) sum in
 * `a` and the Neumaier compensation in `b` (double bits); MIN/MAX keep the
 * value (int, or real bits) in `a`; `cnt` counts non-NULL inputs. */
typedef struct {
    int64_t a, b, cnt;
} kslot;

/* The GPU kernel's group table, as it comes back to the host: groups out
 * reads it in place (no pass converting it into kslots). Per group W
 * words. Word 0 counts the rows that passed the filter; with `pack` it is
 * rows << 32 | aggregate 0's sum of stored offsets, that sum then being
 * offsets + rows * pack_base. Then per aggregate a: at cnt_off[a] the count
 * of its non-NULL inputs (-1: the column has no NULL, the count is the
 * group's rows), at val_off[a] its value (-1: COUNT, or the packed sum):
 * an integer sum as int64, a real sum as double bits (plain, no
 * compensation term), a MIN/MAX as the order-preserving integer image of
 * its value (elo__sql_ordered; an empty group keeps INT64_MAX for MIN,
 * INT64_MIN for MAX). kind[] says which each word is. */
enum { KW_INT, KW_REAL, KW_MIN, KW_MAX };

typedef struct {
    int W;                              /* words per group */
    int pack;
    int64_t pack_base;                  /* aggregate 0's column base (pack) */
    int cnt_off[SQL_MAX_AGGS];          /* word, or -1 */
    int val_off[SQL_MAX_AGGS];          /* word, or -1 */
    uint8_t kind[1 + 2 * SQL_MAX_AGGS]; /* per word: KW_* */
} kwords_layout;

/* Lays out the GPU's group table for job `j` in device form (agg_w and
 * agg_b of the resident columns; a NULL agg_type: no NULL in the column):
 * the words each aggregate needs, and packing when aggregate 0 is an
 * integer sum whose offsets can share word 0. */
void elo__sql_words_layout(const kernel_job *j, kwords_layout *l);

/* Doubles (bits) to integers in the same order, and back: negative doubles
 * get their 63 low bits flipped (an involution). -0.0 sorts below 0.0. */
static inline int64_t elo__sql_ordered(int64_t bits, int is_real)
{
    return is_real && bits < 0 ? bits ^ INT64_MAX : bits;
}

/* Outputs of the kernel: rows[g] rows per group that passed the filter,
 * st[g * naggs + a] the slots; or, from the GPU, `words` laid out as `lay`
 * (rows and st then unused). The kernels fill every entry (the caller need
 * not zero them) and leave overflow zero when no sum overflowed. Groups
 * out may zero a group's rows (rows[g], or its word 0) to drop it. */
typedef struct {
    int64_t *rows;
    kslot *st;
    int64_t *words;     /* NULL: rows and st hold the groups */
    kwords_layout lay;
    int overflow;       /* a part of an integer sum left int64 */
} kernel_out;

int elo__kernel_cpu(const kernel_job *j, kernel_out *o);
/* Writes the CPU kernel's rows and slots in `o` as the GPU's group table
 * for `dj` (the job in device form: the layout the GPU would pick; real
 * sums with their compensation added in) and points o->words at it
 * (thread scratch). For tests ($ELOHIM_SQL_WORDS). `o` must not have
 * overflowed. ELO_OK or ELO_NOMEM. */
int elo__kernel_to_words(const kernel_job *dj, kernel_out *o);

/* Per-thread scratch buffers kept between queries (slot `which` < 8), so
 * that large group tables and partition buffers are not faulted in afresh
 * by every query. Contents are undefined; NULL when out of memory. */
void *elo__sql_scratch(int which, size_t bytes);

/* CUDA entry points (sql-cuda.cu); the job holds device pointers (the
 * resident columns). elo_sql_cuda_group_aggregate returns ELO_UNSUPPORTED
 * for jobs it does not take (more than 16 aggregates, integer sums that
 * could leave int64, REAL MIN/MAX over -0.0): the CPU kernel runs them.
 * On ELO_OK it has set o->words (host memory valid until its next call)
 * and o->lay, and not touched o->rows or o->st. */
ELO_CUDA_ENTRY int elo_sql_cuda_upload(const void *host, size_t bytes, void **dev, void *stream);
ELO_CUDA_ENTRY void elo_sql_cuda_free(void *dev);
ELO_CUDA_ENTRY int elo_sql_cuda_group_aggregate(const kernel_job *j, kernel_out *o, void *stream);

/* ---- engine internals ---------------------------------------------------- */

struct elo_sql {
    sqlite3 *db;
    sql_table *tables;  /* the columnar cache */
    int64_t data_version, total_changes, schema_version;
    int device;         /* ELO_SQL_DEVICE_* */
    sqlite3_stmt *conv; /* SELECT ?1: SQLite's own value conversions */
    size_t cache_bytes;
    int cuda_resident;  /* tables' columns live on the GPU */
    elo_sql_stats stats;
};

int elo__sql_cache_get(elo_sql *db, const char *name, sql_table **out, const char **why);
void elo__sql_cache_drop(elo_sql *db);
int elo__sql_cache_check(elo_sql *db);
int elo__sql_table_to_device(elo_sql *db, sql_table *t);
/* The narrowest device form of a column (see sql_column.dev_width):
 * *width 1, 2 or 4 with *base its minimum, or 8 with *base 0. */
void elo__sql_device_form(const sql_column *col, int *width, int64_t *base);
/* Adds a table built in memory (benchmarks) to the cache; the cache owns it
 * (columns, names and dictionaries allocated with elo_malloc). */
int elo__sql_cache_put(elo_sql *db, sql_table *t);
void elo__sql_table_free(sql_table *t);
int elo__sql_query_ex(elo_sql *db, const char *sql, elo_sql_result **out, int keep_partial);

/* MD5 (RFC 1321) for sqllogictest result hashes. */
typedef struct { uint32_t s[4]; uint64_t n; uint8_t buf[64]; } elo_md5;
void elo__md5_init(elo_md5 *m);
void elo__md5_update(elo_md5 *m, const void *data, size_t len);
void elo__md5_final(elo_md5 *m, char hex[33]);

#ifdef __cplusplus
}
#endif
#endif
