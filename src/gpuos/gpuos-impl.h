/* gpuos-impl.h - private to src/gpuos: the filesystem index, the I/O
 * service thread, the runtime object and the CUDA entry points. */
#ifndef ELOHIM_GPUOS_IMPL_H
#define ELOHIM_GPUOS_IMPL_H

#include "elohim/core.h"
#include "elohim/gpuos.h"
#include "gpuos/gpuos-shared.h"

#include <pthread.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The flat filesystem index built by one walk of the app directories,
 * sorted by path (so discovery order, and thus slot order, is stable). */
typedef struct {
    gos_fs_entry *entries;
    char **paths;
    uint32_t count;
    uint32_t cap;
} gos_fsindex;

/* Walks `dirs` recursively (symlinked directories are not followed, depth
 * at most 16). A missing directory adds nothing. */
int gos_fsindex_build(gos_fsindex *idx, const char *const *dirs, int dir_count);
void gos_fsindex_free(gos_fsindex *idx);
uint64_t gos_ext_hash(const char *path);
uint64_t gos_gpuapp_ext_hash(void);

/* The I/O service thread and its rings.
 *
 * DESIGN: the rings live in host memory (host-mapped pinned memory on the
 * CUDA path); requesters are device blocks (CPU worker threads on the CPU
 * path). A requester takes a ticket from a counter in device memory, waits
 * for its ring slot's turn (slot_turn, device memory), writes the request,
 * fences (system scope) and then publishes `seq = ticket + 1`. The I/O
 * thread consumes tickets strictly in order: it polls req[t % cap].seq with
 * backoff (1 us doubling to 1 ms; 5 ms after 100 ms idle), gathers every consecutive
 * ready request into a batch, preads each file into staging, copies the
 * batch into the content pool (cudaMemcpyAsync on its own non-blocking
 * stream, then a stream sync; a memcpy on the CPU path), and only then
 * publishes each completion's `seq`. The requester polls its completion's
 * seq with backoff, reads status and size, and hands the slot to the next
 * turn. So: requesters wait on the I/O thread (completions), the I/O thread
 * waits on requesters (requests) and on the copy stream; nobody waits on
 * the persistent kernel, and the kernel never waits on the legacy stream. */
typedef struct gos_io gos_io;

typedef struct {
    /* copies `bytes` from host `src` to pool offset `dst_off` */
    int (*copy)(void *ctx, uint64_t dst_off, const void *src, size_t bytes);
    int (*flush)(void *ctx);        /* waits for the copies of a batch */
    void *ctx;
} gos_io_sink;

struct gos_io {
    gos_io_req *req;                /* cap entries */
    gos_io_cpl *cpl;
    uint32_t cap;
    const gos_fsindex *idx;
    gos_io_sink sink;
    uint8_t *staging;               /* host buffer for a batch */
    size_t staging_cap;
    pthread_t thread;
    int running;
    int stop;                       /* atomic */
    uint64_t served;                /* atomic: requests completed */
    uint64_t cpu_ns;                /* atomic: thread CPU time at last update */
    uint64_t start_ns;
    int error;                      /* first sink failure (negative status) */
    int staging_owned;
};

/* Starts the thread over rings `req`/`cpl` of `cap` entries (zeroed by the
 * caller) and a staging buffer of `staging` bytes (NULL: allocated here). */
int gos_io_start(gos_io *io, gos_io_req *req, gos_io_cpl *cpl, uint32_t cap,
                 const gos_fsindex *idx, gos_io_sink sink, uint8_t *staging,
                 size_t staging_cap);
void gos_io_stop(gos_io *io);
uint64_t gos_io_cpu_ns(gos_io *io);

#define GOS_RING_CAP 256u
#define GOS_STAGING_BYTES (32u << 20)

struct elo_gpuos {
    elo_gpuos_config cfg;
    elo_backend *backend;
    int cuda;
    gos_fsindex idx;
    gos_io io;
    /* host mirrors (the CPU path computes in them directly) */
    gos_boot boot;
    gos_app *apps;                  /* slots */
    uint64_t *bitmap;               /* (slots + 63) / 64 words, bit set = free */
    uint32_t *disc;                 /* discovered index entries, in index order */
    int32_t *disc_reason;
    uint64_t *disc_off;             /* content pool offsets */
    uint64_t pool_bytes;
    uint32_t disc_cap;
    uint8_t *fb;                    /* RGBA8 of the last frame */
    /* CPU-path buffers */
    uint8_t *pool;
    float *state;                   /* slots x 1 MiB (lazily committed) */
    gos_quad *quads;
    gos_draw *draws;
    gos_layer *layers;
    gos_io_req *req;
    gos_io_cpl *cpl;
    uint32_t ticket;                /* atomic */
    uint32_t *slot_turn;            /* atomic, GOS_RING_CAP */
    /* timings */
    double cpu_setup_us, device_init_us, boot_us, last_frames_us;
    double frames_kernel_us;        /* device time of the last frames (CPU: wall) */
    uint32_t last_frames;
    void *cuda_ctx;                 /* gpuos-cuda.cu state */
    volatile uint32_t *stop_word;   /* host-mapped on CUDA, else &stop_cpu */
    volatile uint32_t stop_cpu;
};

/* CUDA side (gpuos-cuda.cu); NULL without CUDA. The CUDA boot fills the
 * host mirrors (boot, apps, disc*, fb) from the device when done. */
ELO_CUDA_ENTRY int elo__gpuos_cuda_boot(elo_gpuos *os);
ELO_CUDA_ENTRY int elo__gpuos_cuda_frames(elo_gpuos *os, uint32_t count,
                                          const gos_input *inputs);
ELO_CUDA_ENTRY void elo__gpuos_cuda_free(elo_gpuos *os);

/* The CPU path's parallel loop: the process thread pool (core.h),
 * fn(arg, task, thread) for task in [0, count), thread in
 * [0, gos_par_threads()); returns when all are done. $ELOHIM_THREADS sets
 * the pool's size. */
typedef elo_pool_fn gos_task_fn;
static inline void gos_par_run(gos_task_fn fn, void *arg, int count)
{
    elo_pool_run(elo_pool_global(), fn, arg, count);
}
static inline int gos_par_threads(void) { return elo_pool_size(elo_pool_global()); }

/* Common helpers shared by both paths (runtime.c). */
uint64_t gos_pool_room(uint64_t size);

#ifdef __cplusplus
}
#endif
#endif
