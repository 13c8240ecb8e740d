/* core.h - what every ElohimOS subsystem shares: status codes, allocation,
 * arenas, logging, files and mmap, a thread pool, monotonic time and a
 * TTY-aware progress bar.
 *
 * Conventions (see STYLE.md): functions return an int status, negative on
 * error, >= 0 on success (a count where that is useful). A detailed message
 * for the last error of a thread is kept by elo_errmsg(); callers set it
 * with elo_seterr() at the place where the context is known. */
#ifndef ELOHIM_CORE_H
#define ELOHIM_CORE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status codes ------------------------------------------------------ */

/* X(name, value, message). Negative is an error. */
#define ELO_STATUS_MAP(X)                                                   \
    X(OK,         0, "ok")                                                  \
    X(NOMEM,     -1, "out of memory")                                       \
    X(NODEVICE,  -2, "no such device")                                      \
    X(BADINPUT,  -3, "invalid input")                                       \
    X(IO,        -4, "input/output error")                                  \
    X(CORRUPT,   -5, "file is corrupt")                                     \
    X(NOTFOUND,  -6, "not found")                                           \
    X(EXISTS,    -7, "already exists")                                      \
    X(DEVICE,    -8, "device error")                                        \
    X(RANGE,     -9, "value out of range")                                  \
    X(UNSUPPORTED, -10, "not supported")                                    \
    X(INTERNAL, -11, "internal error")                                      \
    X(BUSY,     -12, "resource busy")                                       \
    X(PERM,     -13, "permission denied")                                   \
    X(AUTH,     -14, "authentication required")                             \
    X(CONFLICT, -15, "conflict")                                            \
    X(TOOBIG,   -16, "too large")                                           \
    X(TIMEOUT,  -17, "timed out")                                           \
    X(SQL,      -18, "SQL error")

typedef enum {
#define ELO__X(name, value, msg) ELO_##name = value,
    ELO_STATUS_MAP(ELO__X)
#undef ELO__X
} elo_status;

/* Static string for a status code; "unknown status" for other values. */
const char *elo_strstatus(int status);

/* Per-thread detail message for the last error. elo_seterr() formats it and
 * returns `status` so callers can write `return elo_seterr(ELO_IO, ...)`. */
int elo_seterr(int status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
const char *elo_errmsg(void); /* "" when none was set */
void elo_clearerr(void);

/* ---- allocation -------------------------------------------------------- */

/* malloc/calloc/realloc that return NULL on failure (never abort) and
 * reject size overflow. elo_free(NULL) is a no-op. */
void *elo_malloc(size_t bytes);
void *elo_calloc(size_t count, size_t size);
void *elo_realloc(void *ptr, size_t bytes);
void *elo_aligned_alloc(size_t alignment, size_t bytes); /* free with elo_free */
void elo_free(void *ptr);
char *elo_strdup(const char *s);
/* Multiply with overflow check: returns 0 and sets *out, or -1 on overflow. */
int elo_mul_size(size_t a, size_t b, size_t *out);

/* ---- arenas ------------------------------------------------------------ */

/* A bump allocator in linked blocks; everything is freed at once. Meant for
 * per-request and per-command work. */
typedef struct elo_arena elo_arena;

/* Returns a new arena whose blocks are at least `block_bytes` (0: 64 KiB);
 * NULL when out of memory. Free with elo_arena_free(); NULL is a no-op. */
elo_arena *elo_arena_new(size_t block_bytes);
void elo_arena_free(elo_arena *a);
/* 16-byte aligned memory valid until elo_arena_reset() or _free(); NULL
 * when out of memory. */
void *elo_arena_alloc(elo_arena *a, size_t bytes);
char *elo_arena_strdup(elo_arena *a, const char *s);
char *elo_arena_strndup(elo_arena *a, const char *s, size_t len);
void elo_arena_reset(elo_arena *a); /* keeps the first block */
size_t elo_arena_used(const elo_arena *a);

/* ---- logging ----------------------------------------------------------- */

typedef enum {
    ELO_LOG_DEBUG = 0,
    ELO_LOG_INFO  = 1,
    ELO_LOG_WARN  = 2,
    ELO_LOG_ERROR = 3,
    ELO_LOG_OFF   = 4
} elo_log_level;

/* Logs go to stderr, never stdout (stdout belongs to --json output). The
 * level starts at ELO_LOG_WARN, or at $ELOHIM_LOG (debug|info|warn|error). */
void elo_log_set_level(elo_log_level level);
elo_log_level elo_log_get_level(void);
void elo_log(elo_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
#define elo_debug(...) elo_log(ELO_LOG_DEBUG, __VA_ARGS__)
#define elo_info(...)  elo_log(ELO_LOG_INFO, __VA_ARGS__)
#define elo_warn(...)  elo_log(ELO_LOG_WARN, __VA_ARGS__)
#define elo_error(...) elo_log(ELO_LOG_ERROR, __VA_ARGS__)

/* ---- files ------------------------------------------------------------- */

/* A read-only or read-write memory map of a whole file. */
typedef struct {
    void *data;        /* NULL for an empty file */
    size_t size;       /* bytes mapped (= file size at map time) */
    int fd;            /* open descriptor, or -1 */
    int writable;      /* mapped PROT_WRITE|MAP_SHARED */
} elo_mmap;

/* Maps `path`. On error returns a negative status with a message naming the
 * path, and leaves *m zeroed (fd -1). */
int elo_mmap_open(elo_mmap *m, const char *path, int writable);
void elo_mmap_close(elo_mmap *m); /* safe on a zeroed/closed map */

/* Reads a whole file into a NUL-terminated buffer (free with elo_free).
 * Fails with ELO_TOOBIG above `max_bytes`. */
int elo_read_file(const char *path, size_t max_bytes, char **out, size_t *len);
/* Writes `len` bytes to `path` atomically: temp file, fsync, rename, fsync
 * of the directory. On error the old file is untouched. */
int elo_write_file_atomic(const char *path, const void *data, size_t len);
/* pwrite/pread of exactly `len` bytes, retrying on EINTR/short counts. */
int elo_pwrite_all(int fd, const void *data, size_t len, uint64_t offset);
int elo_pread_all(int fd, void *data, size_t len, uint64_t offset);
/* fsync the directory that contains `path` (so a rename is durable). */
int elo_fsync_dir_of(const char *path);
/* mkdir -p with mode; existing directories are fine. */
int elo_mkdirs(const char *path, unsigned mode);

/* ---- time -------------------------------------------------------------- */

uint64_t elo_time_ns(void);        /* CLOCK_MONOTONIC, nanoseconds */
double elo_time_sec(void);         /* the same, in seconds */
uint64_t elo_wall_time_ms(void);   /* CLOCK_REALTIME, milliseconds */
/* CPU time of this process and of the calling thread, nanoseconds. */
uint64_t elo_cpu_time_ns(void);
uint64_t elo_thread_cpu_time_ns(void);

/* ---- thread pool ------------------------------------------------------- */

/* A fixed pool of worker threads for data-parallel loops. The calling
 * thread takes part in the work, so a pool of N threads uses N-1 workers.
 *
 * DESIGN: idle workers poll for the next job for 100 us (loops often come
 * back to back), then sleep on a condition variable. elo_pool_run() publishes a
 * job (function, argument, task count) under the mutex and bumps a
 * generation counter; workers and the caller claim task indexes with an
 * atomic counter until none are left; the caller waits on a second
 * condition variable until every claimed task has finished. Only one job
 * runs at a time (the caller holds the pool for the whole job); nested
 * elo_pool_run() from inside a task runs the inner job serially. */
typedef struct elo_pool elo_pool;
typedef void (*elo_pool_fn)(void *arg, int task, int thread);

/* Returns a pool of `threads` threads (0: number of online CPUs, or
 * $ELOHIM_THREADS). NULL when threads cannot be created. */
elo_pool *elo_pool_new(int threads);
void elo_pool_free(elo_pool *p);
int elo_pool_size(const elo_pool *p);
/* Runs fn(arg, task, thread) for task in [0, task_count); returns after all
 * are done. `thread` is in [0, elo_pool_size()) and unique among
 * concurrently running tasks: use it to index per-thread scratch. */
void elo_pool_run(elo_pool *p, elo_pool_fn fn, void *arg, int task_count);
/* A process-wide pool created on first use (never freed before exit). */
elo_pool *elo_pool_global(void);
int elo_cpu_count(void);

/* ---- progress bar ------------------------------------------------------ */

/* A progress bar on stderr, drawn only when stderr is a TTY (and not when
 * $ELOHIM_NO_PROGRESS is set); redrawn at most 10 times a second. */
typedef struct {
    const char *label;
    uint64_t total;     /* 0: unknown (shows a count and rate) */
    uint64_t done;
    uint64_t start_ns;
    uint64_t last_draw_ns;
    int enabled;
} elo_progress;

void elo_progress_begin(elo_progress *p, const char *label, uint64_t total);
void elo_progress_update(elo_progress *p, uint64_t done);
void elo_progress_end(elo_progress *p);

/* ---- small helpers ----------------------------------------------------- */

/* Parses a whole string as an integer/double; returns ELO_BADINPUT on
 * trailing junk, empty input or overflow. */
int elo_parse_i64(const char *s, int64_t *out);
int elo_parse_f64(const char *s, double *out);

/* FNV-1a 64-bit. */
uint64_t elo_hash64(const void *data, size_t len);
/* CRC-32C (Castagnoli), used for file header checksums. */
uint32_t elo_crc32c(uint32_t crc, const void *data, size_t len);

#define ELO_MIN(a, b) ((a) < (b) ? (a) : (b))
#define ELO_MAX(a, b) ((a) > (b) ? (a) : (b))
#define ELO_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#ifdef __cplusplus
}
#endif
#endif
