/* io.c - the I/O service thread: serves the device's read requests from
 * the request ring, batching reads into the content pool, and answers in
 * the completion ring. While idle it polls with a backoff of 1 us doubling
 * to 1 ms, and 5 ms once idle for 100 ms. The DESIGN note (who waits on what) is in
 * gpuos-impl.h beside struct gos_io. */
#include "gpuos/gpuos-impl.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define IO_BATCH 64

static uint32_t load_seq(const uint32_t *p)
{
    return __atomic_load_n((const volatile uint32_t *)p, __ATOMIC_ACQUIRE);
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    nanosleep(&ts, NULL);
}

/* Reads the file of request `r` into staging at `at`; returns a reason
 * (GOS_REASON_OK) and the byte count. */
static int read_one(gos_io *io, const gos_io_req *r, uint8_t *at, size_t room, uint64_t *bytes)
{
    *bytes = 0;
    if (r->index >= io->idx->count)
        return GOS_REASON_READ;
    const char *path = io->idx->paths[r->index];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return GOS_REASON_READ;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return GOS_REASON_READ;
    }
    if ((uint64_t)st.st_size > GOS_MAX_FILE) {
        close(fd);
        return GOS_REASON_TOO_BIG;
    }
    size_t want = (size_t)st.st_size;
    if (want > room)
        want = room;
    size_t got = 0;
    while (got < want) {
        ssize_t k = pread(fd, at + got, want - got, (off_t)got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    close(fd);
    if (got < want && got == 0 && want > 0)
        return GOS_REASON_READ;
    *bytes = got;
    return GOS_REASON_OK;
}

static void *io_main(void *arg)
{
    gos_io *io = arg;
    uint32_t next = 0;          /* next ticket to serve */
    uint64_t backoff = 1000;    /* ns */
    uint64_t idle_ns = 0;
    uint32_t batch_ticket[IO_BATCH];
    int32_t batch_status[IO_BATCH];
    uint64_t batch_bytes[IO_BATCH];
    while (!__atomic_load_n(&io->stop, __ATOMIC_ACQUIRE)) {
        int n = 0;
        size_t used = 0;
        while (n < IO_BATCH) {
            uint32_t t = next + (uint32_t)n;
            gos_io_req *r = &io->req[t % io->cap];
            if (load_seq(&r->seq) != t + 1)
                break;
            gos_io_req copy = *(volatile gos_io_req *)r;
            uint64_t room = copy.max_bytes;
            if (room > io->staging_cap - used) {
                if (n > 0)
                    break; /* the next batch takes it */
                room = io->staging_cap;
            }
            uint64_t bytes = 0;
            int st = read_one(io, &copy, io->staging + used, (size_t)room, &bytes);
            if (st == GOS_REASON_OK && bytes > 0) {
                int rc = io->sink.copy(io->sink.ctx, copy.dst_off, io->staging + used, bytes);
                if (rc < 0) {
                    if (!io->error)
                        io->error = rc;
                    st = GOS_REASON_READ;
                    bytes = 0;
                }
            }
            used += (size_t)((bytes + 7u) & ~(uint64_t)7u);
            batch_ticket[n] = t;
            batch_status[n] = st;
            batch_bytes[n] = bytes;
            n++;
        }
        if (n == 0) {
            /* 1 us doubling to 1 ms; after ~100 ms without work, 5 ms */
            sleep_ns(backoff);
            idle_ns += backoff;
            if (backoff < 1000000)
                backoff *= 2;
            else if (idle_ns > 100000000)
                backoff = 5000000;
            __atomic_store_n(&io->cpu_ns, elo_thread_cpu_time_ns(), __ATOMIC_RELAXED);
            continue;
        }
        backoff = 1000;
        idle_ns = 0;
        if (io->sink.flush) {
            int rc = io->sink.flush(io->sink.ctx);
            if (rc < 0) {
                if (!io->error)
                    io->error = rc;
                for (int i = 0; i < n; i++) {
                    batch_status[i] = GOS_REASON_READ;
                    batch_bytes[i] = 0;
                }
            }
        }
        for (int i = 0; i < n; i++) {
            gos_io_cpl *c = &io->cpl[batch_ticket[i] % io->cap];
            ((volatile gos_io_cpl *)c)->status = batch_status[i];
            ((volatile gos_io_cpl *)c)->bytes = batch_bytes[i];
            __atomic_store_n((volatile uint32_t *)&c->seq, batch_ticket[i] + 1, __ATOMIC_RELEASE);
        }
        next += (uint32_t)n;
        __atomic_add_fetch(&io->served, (uint64_t)n, __ATOMIC_RELAXED);
        __atomic_store_n(&io->cpu_ns, elo_thread_cpu_time_ns(), __ATOMIC_RELAXED);
    }
    __atomic_store_n(&io->cpu_ns, elo_thread_cpu_time_ns(), __ATOMIC_RELAXED);
    return NULL;
}

int gos_io_start(gos_io *io, gos_io_req *req, gos_io_cpl *cpl, uint32_t cap,
                 const gos_fsindex *idx, gos_io_sink sink, uint8_t *staging, size_t staging_cap)
{
    memset(io, 0, sizeof *io);
    io->req = req;
    io->cpl = cpl;
    io->cap = cap;
    io->idx = idx;
    io->sink = sink;
    io->staging = staging ? staging : elo_malloc(staging_cap);
    io->staging_cap = staging_cap;
    if (!io->staging)
        return elo_seterr(ELO_NOMEM, "I/O service: cannot allocate %zu bytes of staging",
                          staging_cap);
    io->start_ns = elo_time_ns();
    if (pthread_create(&io->thread, NULL, io_main, io) != 0) {
        if (!staging)
            elo_free(io->staging);
        io->staging = NULL;
        return elo_seterr(ELO_INTERNAL, "I/O service: cannot start the thread");
    }
    io->running = 1;
    io->staging_owned = staging == NULL;
    return ELO_OK;
}

void gos_io_stop(gos_io *io)
{
    if (!io->running)
        return;
    __atomic_store_n(&io->stop, 1, __ATOMIC_RELEASE);
    pthread_join(io->thread, NULL);
    io->running = 0;
    if (io->staging_owned)
        elo_free(io->staging);
    io->staging = NULL;
}

uint64_t gos_io_cpu_ns(gos_io *io)
{
    return __atomic_load_n(&io->cpu_ns, __ATOMIC_RELAXED);
}
