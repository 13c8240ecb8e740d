/* vstore.h - a persistent vector store with exact top-k search.
 *
 * A store is one file (format in docs/vstore-format.md): a header with two
 * checksummed slots, then `capacity` rows (f32 or f16, `dim` wide), their
 * 64-bit ids and per-row deletion stamps. It is opened with mmap, so a large
 * store costs only the pages a search touches. Appends are crash-safe: rows
 * and ids are durable before the header's row count covers them.
 *
 * Scores: cosine similarity (rows and queries normalized), inner product, or
 * squared L2 distance, all computed with one canonical summation order
 * (16 lanes, then a pairwise tree) so that the CPU and CUDA paths give the
 * same f32 scores and the same id lists. Results are best first (cosine and
 * ip descending, l2 ascending), ties broken by the lower id.
 *
 * Threads: a store handle is not shared between threads while it is being
 * changed; searches on one handle may not run concurrently either (the
 * handle holds the GPU copy). Several processes may read a store while one
 * writes it; writers take an exclusive flock. */
#ifndef ELOHIM_VSTORE_H
#define ELOHIM_VSTORE_H

#include "elohim/backend.h"
#include "elohim/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    ELO_VSTORE_COSINE = 0,
    ELO_VSTORE_IP     = 1,
    ELO_VSTORE_L2     = 2
} elo_vstore_metric;

#define ELO_VSTORE_MAX_DIM 65536
#define ELO_VSTORE_MAX_K   4096

typedef struct elo_vstore elo_vstore;

typedef struct {
    int dim;
    elo_dtype dtype;               /* ELO_DTYPE_F32 or ELO_DTYPE_F16 */
    elo_vstore_metric metric;
    uint64_t row_count;            /* rows written, deleted ones included */
    uint64_t live_count;           /* rows not deleted */
    uint64_t capacity;             /* rows the file has room for */
    int64_t next_id;               /* the default id of the next added row */
    uint64_t seq;                  /* header sequence number (commits) */
    uint64_t file_bytes;           /* size of the file */
    uint64_t mapped_bytes;         /* virtual memory mapped for it */
    uint64_t resident_bytes;       /* of those, pages in physical memory */
} elo_vstore_info;

/* "cosine"/"ip"/"l2" <-> metric; parse returns ELO_BADINPUT otherwise. */
int elo_vstore_metric_parse(const char *s, elo_vstore_metric *out);
const char *elo_vstore_metric_name(elo_vstore_metric m);

/* Creates a new empty store file at `path` (ELO_EXISTS when a file is
 * there) with room for `capacity` rows (0: a small default; the file grows
 * by doubling when full). dtype is ELO_DTYPE_F32 or ELO_DTYPE_F16. */
int elo_vstore_create(const char *path, int dim, elo_dtype dtype,
                      elo_vstore_metric metric, uint64_t capacity);

/* Opens a store. `writable` takes an exclusive lock for the life of the
 * handle (waiting while another writer holds it) and finishes a deletion a
 * crash interrupted. Truncated, corrupt or foreign files fail with
 * ELO_CORRUPT / ELO_UNSUPPORTED and a message naming the path and what is
 * wrong; nothing is written then. Free with elo_vstore_free(); NULL is a
 * no-op. */
int elo_vstore_open(const char *path, int writable, elo_vstore **out);

/* A read-only store over `size` bytes of memory (the file image), which the
 * caller keeps valid until elo_vstore_free(). Same validation as
 * elo_vstore_open(). */
int elo_vstore_open_buffer(const void *data, size_t size, elo_vstore **out);

void elo_vstore_free(elo_vstore *vs);

/* Brings a read-only handle up to the latest committed state of its file:
 * rows other processes appended or deleted, or a new file renamed over the
 * path by growth or compaction. elo_vstore_search() does it first, so a
 * long-lived reader always searches what is committed (the resident GPU
 * copy takes appended rows incrementally and reloads after deletions).
 * Returns 1 when the state changed, 0 when not (and always for writable
 * handles and buffers), or a negative status (the file is gone or now
 * corrupt: the handle keeps its last state). */
int elo_vstore_refresh(elo_vstore *vs);

void elo_vstore_get_info(elo_vstore *vs, elo_vstore_info *out);

/* Appends `count` rows (f32, `dim` wide, row-major) as one durable batch.
 * `ids` (NULL: next_id, next_id+1, ...) must be >= 0 and unique, also
 * against the store's ids. Rows must be finite; for cosine stores they must
 * be non-zero and are normalized (norm computed in double, each element
 * divided in f32 by the norm rounded to f32). f16 stores round to nearest
 * even. On error returns a negative status and the store is unchanged. */
int elo_vstore_add(elo_vstore *vs, const float *rows, size_t count, int dim,
                   const int64_t *ids);

/* Deletes the rows with these ids (every id must be live; ELO_NOTFOUND
 * otherwise, with nothing deleted). Returns the number deleted. */
int elo_vstore_delete(elo_vstore *vs, const int64_t *ids, size_t count);

/* Exact top-k for `query_count` f32 queries of `dim` floats each on backend
 * `b` (the CPU or a CUDA backend; NULL: the CPU). Writes query i's results
 * to out_ids[i*k ...] and out_scores[i*k ...], best first; returns the
 * number of results per query, min(k, live rows), or a negative status.
 * k must be 1..ELO_VSTORE_MAX_K; queries must be finite (and non-zero for
 * cosine stores, where they are normalized as rows are). */
int elo_vstore_search(elo_vstore *vs, elo_backend *b, const float *queries,
                      int query_count, int dim, int k, int64_t *out_ids,
                      float *out_scores);

/* Rewrites the store at `path` without its deleted rows (temp file, fsync,
 * rename), capacity = live rows. Returns the number of rows reclaimed. */
int elo_vstore_compact(const char *path);

/* ---- input files ------------------------------------------------------- */

/* Reads vectors from `.npy` (float32 2-D, C order, little endian),
 * `.fvecs` (int32 dim + floats, per vector) or `.jsonl` (one JSON array of
 * numbers per line), chosen by the file name's extension. Returns a new
 * array (free with elo_free) of *count x *dim floats. Errors name the file
 * and the line or byte offset. */
int elo_vstore_read_vectors(const char *path, float **out, size_t *count,
                            int *dim);
/* The same on a memory buffer; `format` is "npy", "fvecs" or "jsonl";
 * `name` is used in messages. */
int elo_vstore_parse_vectors(const char *format, const char *name,
                             const void *data, size_t size, float **out,
                             size_t *count, int *dim);
/* Reads ids: `.npy` (int64 1-D), `.jsonl` (one integer, or one array of
 * integers, per line) or text (one integer per line). */
int elo_vstore_read_ids(const char *path, int64_t **out, size_t *count);
int elo_vstore_parse_ids(const char *format, const char *name,
                         const void *data, size_t size, int64_t **out,
                         size_t *count);

/* IEEE half <-> float: widening is exact; narrowing rounds to nearest
 * even (overflow gives infinity). */
float elo_f16_to_f32(uint16_t h);
uint16_t elo_f32_to_f16(float f);

#ifdef __cplusplus
}
#endif
#endif
