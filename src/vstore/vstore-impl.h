/* vstore-impl.h - private to src/vstore: the on-disk header, the store
 * object, the canonical score kernels and the CUDA side's entry points
 * (defined in vstore-cuda.cu, NULL in a build without CUDA). */
#ifndef ELOHIM_VSTORE_IMPL_H
#define ELOHIM_VSTORE_IMPL_H

#include "elohim/backend.h"
#include "elohim/core.h"
#include "elohim/vstore.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct elo__vstore_gpu elo__vstore_gpu;   /* rows resident in GPU memory */
/* Uploads `row_count` rows (dtype F32 or F16, `dim` wide, contiguous), their ids and a
 * live mask (1 = live, 0 = deleted) and reserves room for `capacity` rows. */
ELO_CUDA_ENTRY int elo__vstore_cuda_load(elo_backend *b, const void *rows, elo_dtype dtype,
        int dim, int metric, size_t row_count, size_t capacity, const int64_t *ids,
        const uint8_t *live, elo__vstore_gpu **out);
/* Appends rows after the current ones (grows the device buffers when needed). */
ELO_CUDA_ENTRY int elo__vstore_cuda_append(elo__vstore_gpu *g, const void *rows,
        const int64_t *ids, size_t count);
/* Marks rows (by row index) deleted. */
ELO_CUDA_ENTRY int elo__vstore_cuda_delete(elo__vstore_gpu *g, const size_t *row_index,
        size_t count);
/* Exact top-k with the canonical score. `queries` are host f32 [query_count x dim], already
 * normalized for cosine. Writes query_count * k ids and scores (host memory), best first, ties
 * by lower id; returns the number of results per query (min(k, live rows)) or a negative status. */
ELO_CUDA_ENTRY int elo__vstore_cuda_search(elo__vstore_gpu *g, const float *queries,
        int query_count, int k, int64_t *out_ids, float *out_scores);
ELO_CUDA_ENTRY void elo__vstore_cuda_free(elo__vstore_gpu *g);
/* Test hook: forces the search path. 0 automatic, 1 exact scan only,
 * 2 tensor-core batch path wherever it applies. */
ELO_CUDA_ENTRY void elo__vstore_cuda_force_path(elo__vstore_gpu *g, int path);

/* ---- file format v1 (little endian; docs/vstore-format.md) ------------- */

#define ELO__VSTORE_MAGIC "ELOVSTOR"
#define ELO__VSTORE_VERSION 1u
#define ELO__VSTORE_HEADER_BYTES 4096u     /* the header area; rows follow */
#define ELO__VSTORE_SLOT_B 2048u           /* offset of the second slot */
#define ELO__VSTORE_FLAG_DELETE_PENDING 1u

/* One header slot, 128 bytes. The valid slot (magic, crc) with the higher
 * seq is the store's state. */
typedef struct {
    char magic[8];          /* "ELOVSTOR" */
    uint32_t version;       /* 1 */
    uint32_t header_bytes;  /* 4096 */
    uint32_t dim;           /* 1..65536 */
    uint32_t dtype;         /* 0 f32, 1 f16 */
    uint32_t metric;        /* 0 cosine, 1 ip, 2 l2 */
    uint32_t flags;         /* bit 0: a deletion is in progress */
    uint64_t seq;           /* commit number, +1 per header write */
    uint64_t row_count;     /* rows covered (deleted ones included) */
    uint64_t capacity;      /* rows the sections have room for */
    uint64_t live_count;    /* rows not deleted */
    int64_t next_id;        /* default id of the next row */
    uint64_t rows_offset;   /* = 4096 */
    uint64_t ids_offset;    /* rows_offset + capacity*row_bytes, 64-aligned */
    uint64_t stamps_offset; /* ids_offset + capacity*8 */
    uint64_t file_bytes;    /* stamps_offset + capacity*8 */
    uint8_t reserved[20];   /* zero */
    uint32_t crc;           /* crc32c of the 124 bytes above */
} elo__vstore_header;

struct elo_vstore {
    char *path;                 /* NULL for a buffer store */
    int fd;                     /* -1 for a buffer store */
    int writable;
    uint8_t *map;               /* the whole file */
    size_t map_bytes;
    int owns_map;               /* munmap on free */
    elo__vstore_header h;       /* the current header */
    int slot;                   /* 0 or 1: slot holding h */
    size_t row_bytes;           /* dim * dtype size */
    const uint8_t *rows;        /* map + rows_offset */
    const int64_t *ids;         /* map + ids_offset */
    const uint64_t *stamps;     /* map + stamps_offset; 0 live, else deleted at seq */
    elo__vstore_gpu *gpu;       /* resident copy, loaded on the first CUDA search */
    elo_backend *gpu_backend;
};

/* Validates a header slot against a file of `file_size` bytes; on error
 * sets a message (prefixed with `name`) and returns a negative status. */
int elo__vstore_header_check(const elo__vstore_header *h, uint64_t file_size,
                             const char *name);
uint32_t elo__vstore_header_crc(const elo__vstore_header *h);
/* Geometry for a store: fills the offsets and file_bytes of `h` from its
 * dim, dtype and capacity; ELO_TOOBIG on overflow. */
int elo__vstore_layout(elo__vstore_header *h);

/* A store image in memory (free with elo_free) holding `count` rows with
 * ids 0..count-1, all live; the caller fills the rows, in the store's
 * format, at image + ELO__VSTORE_HEADER_BYTES (benchmarks), and opens it
 * with elo_vstore_open_buffer(). */
int elo__vstore_image_new(int dim, elo_dtype dtype, elo_vstore_metric metric, uint64_t count,
                          uint8_t **image, size_t *size);

/* 1 when row `r` (< row_count) is live under header seq `seq`. */
static inline int elo__vstore_live(const elo_vstore *vs, uint64_t r)
{
    uint64_t s = vs->stamps[r];
    return s == 0 || s > vs->h.seq;
}

/* ---- kernels (vstore-scan.c) -------------------------------------------- */

/* The canonical score of one row (f32 or f16 bits) and one query, scalar
 * reference: 16 lanes (lane i % 16), no FMA, then a pairwise tree. */
float elo__vstore_score_ref(const void *row, elo_dtype dtype, const float *query,
                            int dim, int metric);
/* The same through the fastest kernel this CPU runs (bit-identical). */
float elo__vstore_score_fast(const void *row, elo_dtype dtype, const float *query,
                             int dim, int metric);
/* Which kernel the fast path uses: "avx512", "avx2" or "scalar".
 * elo__vstore_force_kernel("scalar"/"avx2"/"avx512"/NULL) pins it (tests,
 * benchmarks); returns ELO_UNSUPPORTED when the CPU lacks it. */
const char *elo__vstore_kernel_name(void);
int elo__vstore_force_kernel(const char *name);

/* Normalizes `count` vectors in place for cosine: ELO_BADINPUT when one is
 * zero or not finite (message says which, counting from `first_index`). */
int elo__vstore_normalize(float *v, size_t count, int dim, size_t first_index,
                          const char *what);
/* ELO_BADINPUT when a value is NaN/Inf (message names vector and element). */
int elo__vstore_check_finite(const float *v, size_t count, int dim, const char *what);

/* Runs fn(arg, task, thread) for every task in [0, task_count) on the
 * process thread pool (the caller takes part) and returns when all are
 * done; `thread` is below elo__vstore_threads(), the pool's size
 * ($ELOHIM_THREADS or the online CPUs). */
void elo__vstore_parallel(void (*fn)(void *arg, int task, int thread), void *arg, int task_count);
int elo__vstore_threads(void);

/* CPU search over the store's live rows; queries already normalized. */
int elo__vstore_search_cpu(elo_vstore *vs, const float *queries, int query_count,
                           int k, int64_t *out_ids, float *out_scores);

#ifdef __cplusplus
}
#endif
#endif
