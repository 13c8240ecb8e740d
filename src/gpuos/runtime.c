/* runtime.c - the runtime object, the boot phases and the frame loop on
 * the CPU path, and what both paths share on the host (buffers, the I/O
 * service thread, results).
 *
 * DESIGN (CPU path): the calling thread plays the device's block 0 (the
 * one-thread steps: system init, system apps, slot assignment, frame
 * preparation, the z-order plan); a small thread pool (par.c) plays the other
 * blocks (discovery scan, load requests, one app per task, resolve, one
 * tile row per task). Load requests go through the same request and
 * completion rings as on the GPU, served by the same I/O thread, so the
 * ring protocol runs in every `make test`. On the CUDA path the same steps
 * run in gpuos-cuda.cu and this file only prepares and reads back. */
#include "gpuos/gpuos-impl.h"

#include <sched.h>
#include <string.h>
#include <time.h>

#define STATE_WORDS (GOS_MAX_STATE / 4u)
#define USER_QUADS_PER_SLOT 4096u

uint64_t gos_pool_room(uint64_t size)
{
    return gos_room(size);
}

static double us_since(uint64_t t0) { return (double)(elo_time_ns() - t0) / 1000.0; }

/* ---- the CPU device: rings ---------------------------------------------- */

static void backoff_wait(unsigned *spins)
{
    if (*spins < 64) {
        (*spins)++;
        sched_yield();
        return;
    }
    struct timespec ts = {0, 20000};
    nanosleep(&ts, NULL);
}

/* A load request from a CPU "block", the same protocol as the device's. */
static int cpu_request(elo_gpuos *os, uint32_t index, uint64_t dst_off, uint64_t room,
                       uint64_t *bytes)
{
    uint32_t t = __atomic_fetch_add(&os->ticket, 1, __ATOMIC_ACQ_REL);
    uint32_t slot = t % GOS_RING_CAP, turn = t / GOS_RING_CAP;
    unsigned spins = 0;
    while (__atomic_load_n(&os->slot_turn[slot], __ATOMIC_ACQUIRE) != turn)
        backoff_wait(&spins);
    gos_io_req *r = &os->req[slot];
    r->index = index;
    r->dst_off = dst_off;
    r->max_bytes = room;
    __atomic_store_n(&r->seq, t + 1, __ATOMIC_RELEASE);
    spins = 0;
    gos_io_cpl *c = &os->cpl[slot];
    while (__atomic_load_n(&c->seq, __ATOMIC_ACQUIRE) != t + 1)
        backoff_wait(&spins);
    int status = c->status;
    *bytes = c->bytes;
    __atomic_store_n(&os->slot_turn[slot], turn + 1, __ATOMIC_RELEASE);
    return status;
}

static int cpu_sink_copy(void *ctx, uint64_t dst_off, const void *src, size_t bytes)
{
    elo_gpuos *os = ctx;
    if (dst_off + bytes > os->pool_bytes)
        return elo_seterr(ELO_INTERNAL, "content pool overflow");
    memcpy(os->pool + dst_off, src, bytes);
    return ELO_OK;
}

/* ---- CPU boot phases ---------------------------------------------------- */

typedef struct {
    elo_gpuos *os;
    gos_header *hdr;
    uint8_t *flags;
    uint32_t chunk;
    const gos_input *input;
    uint32_t *scratch;          /* per thread: draw indexes of one tile */
    uint32_t scratch_cap;
} cpu_job;

static void task_discover(void *arg, int task, int thread)
{
    cpu_job *j = arg;
    elo_gpuos *os = j->os;
    uint64_t want = gos_gpuapp_ext_hash();
    uint32_t lo = (uint32_t)task * j->chunk, hi = ELO_MIN(lo + j->chunk, os->idx.count);
    for (uint32_t i = lo; i < hi; i++)
        j->flags[i] = os->idx.entries[i].ext_hash == want;
}

static void task_load(void *arg, int task, int thread)
{
    cpu_job *j = arg;
    elo_gpuos *os = j->os;
    uint32_t d = (uint32_t)task;
    const gos_fs_entry *e = &os->idx.entries[os->disc[d]];
    if (e->size > GOS_MAX_FILE) {
        os->disc_reason[d] = GOS_REASON_TOO_BIG;
        return;
    }
    uint64_t bytes = 0;
    int st = cpu_request(os, os->disc[d], os->disc_off[d], gos_pool_room(e->size), &bytes);
    if (st != GOS_REASON_OK) {
        os->disc_reason[d] = st;
        return;
    }
    os->disc_reason[d] = gos_header_check(os->pool + os->disc_off[d], bytes, &j->hdr[d]);
}

static void task_zero_state(void *arg, int task, int thread)
{
    cpu_job *j = arg;
    gos_app *a = &j->os->apps[task];
    if (a->status == GOS_APP_RUNNING && a->type == GOS_TYPE_USER)
        memset(j->os->state + (size_t)task * STATE_WORDS, 0, a->state_size);
}

static void task_app(void *arg, int task, int thread)
{
    cpu_job *j = arg;
    elo_gpuos *os = j->os;
    gos_run_app(&os->boot, os->apps, (uint32_t)task, os->pool,
                os->state + (size_t)task * STATE_WORDS, os->quads, j->input);
}

static void task_resolve(void *arg, int task, int thread)
{
    cpu_job *j = arg;
    elo_gpuos *os = j->os;
    uint32_t lo = (uint32_t)task * j->chunk, hi = ELO_MIN(lo + j->chunk, os->boot.draw_count);
    for (uint32_t i = lo; i < hi; i++) {
        const gos_layer *l = &os->layers[gos_find_layer(os->layers, os->boot.layer_count, i)];
        os->draws[i] = gos_resolve_quad(&os->quads[l->src_off + (i - l->draw_off)], l);
    }
}

/* One row of tiles. Per tile: the draws touching it, in order, cut short
 * by the last opaque solid draw covering the whole tile (everything before
 * it is overwritten anyway); then draw-major over the tile's pixels. Every
 * pixel still sees the same blends in the same order as on the GPU, so the
 * result is identical. */
static void task_raster(void *arg, int task, int thread)
{
    cpu_job *j = arg;
    elo_gpuos *os = j->os;
    uint32_t *list = j->scratch + (size_t)thread * j->scratch_cap;
    uint32_t *fb = (uint32_t *)os->fb;
    uint32_t tile[GOS_TILE * GOS_TILE];
    int32_t ty0 = task * GOS_TILE, ty1 = ty0 + GOS_TILE;
    for (int32_t tx0 = 0; tx0 < GOS_FB_W; tx0 += GOS_TILE) {
        int32_t tx1 = tx0 + GOS_TILE;
        uint32_t n = 0;
        for (uint32_t i = 0; i < os->boot.draw_count; i++) {
            const gos_draw *d = &os->draws[i];
            if (!gos_draw_overlaps(d, tx0, ty0, tx1, ty1))
                continue;
            if (!d->glyph && (d->color >> 24) == 255 && d->x0 <= tx0 && d->x1 >= tx1 &&
                d->y0 <= ty0 && d->y1 >= ty1)
                n = 0;
            list[n++] = i;
        }
        for (int k = 0; k < GOS_TILE * GOS_TILE; k++)
            tile[k] = 0xff000000u;
        for (uint32_t k = 0; k < n; k++) {
            const gos_draw *d = &os->draws[list[k]];
            int32_t x0 = ELO_MAX(d->x0, tx0), x1 = ELO_MIN(d->x1, tx1);
            int32_t y0 = ELO_MAX(d->y0, ty0), y1 = ELO_MIN(d->y1, ty1);
            int solid = !d->glyph && (d->color >> 24) == 255;
            for (int32_t y = y0; y < y1; y++) {
                uint32_t *row = tile + (y - ty0) * GOS_TILE - tx0;
                if (solid)
                    for (int32_t x = x0; x < x1; x++)
                        row[x] = d->color;
                else
                    for (int32_t x = x0; x < x1; x++)
                        row[x] = gos_shade(d, x, y, row[x]);
            }
        }
        for (int32_t y = ty0; y < ty1; y++)
            memcpy(fb + (size_t)y * GOS_FB_W + tx0, tile + (y - ty0) * GOS_TILE,
                   GOS_TILE * sizeof(uint32_t));
    }
}

/* One frame on the CPU: the same steps, in the same order, as the
 * megakernel's frame. */
static int cpu_frame(elo_gpuos *os, const gos_input *in)
{
    gos_frame_prepare(&os->boot, os->apps, in);
    cpu_job j = {.os = os, .input = in};
    gos_par_run(task_app, &j, (int)os->boot.slots);
    gos_plan_layers(&os->boot, os->apps, os->layers);
    gos_frame_count(&os->boot, os->apps);
    j.chunk = 1024;
    gos_par_run(task_resolve, &j, (int)((os->boot.draw_count + 1023) / 1024));
    j.scratch_cap = os->boot.draw_count ? os->boot.draw_count : 1;
    j.scratch = elo_malloc((size_t)j.scratch_cap * sizeof(uint32_t) * (size_t)gos_par_threads());
    if (!j.scratch)
        return elo_seterr(ELO_NOMEM, "frame: out of memory");
    gos_par_run(task_raster, &j, GOS_FB_H / GOS_TILE);
    elo_free(j.scratch);
    return ELO_OK;
}

static int cpu_boot(elo_gpuos *os)
{
    gos_boot *bs = &os->boot;
    uint64_t t0 = elo_time_ns();
    bs->phase_ns[0] = 0;
    /* phase 1: system init */
    for (uint32_t s = 0; s < bs->slots; s++)
        gos_app_clear(&os->apps[s]);
    uint32_t words = (bs->slots + 63) / 64;
    for (uint32_t w = 0; w < words; w++) {
        uint32_t bits = ELO_MIN(64u, bs->slots - w * 64u);
        os->bitmap[w] = bits == 64 ? ~(uint64_t)0 : (((uint64_t)1 << bits) - 1);
    }
    bs->focused_slot = -1;
    bs->phase = 1;
    bs->phase_ns[1] = elo_time_ns() - t0;
    /* phase 2: the system apps in slots 0-3 */
    gos_install_system(bs, os->apps, os->bitmap);
    bs->phase = 2;
    bs->phase_ns[2] = elo_time_ns() - t0;
    /* phase 3: discovery, a parallel scan of the index, compacted in order */
    cpu_job j = {.os = os, .chunk = 4096};
    j.flags = elo_calloc(os->idx.count ? os->idx.count : 1, 1);
    j.hdr = elo_calloc(os->disc_cap ? os->disc_cap : 1, sizeof(gos_header));
    if (!j.flags || !j.hdr) {
        elo_free(j.flags);
        elo_free(j.hdr);
        return elo_seterr(ELO_NOMEM, "boot: out of memory");
    }
    gos_par_run(task_discover, &j, (int)((os->idx.count + j.chunk - 1) / j.chunk));
    uint32_t n = 0;
    uint64_t off = 0;
    for (uint32_t i = 0; i < os->idx.count; i++) {
        if (!j.flags[i] || n >= os->disc_cap)
            continue;
        os->disc[n] = i;
        os->disc_off[n] = off;
        off += gos_pool_room(os->idx.entries[i].size);
        n++;
    }
    bs->discovered_count = n;
    bs->load_count = os->cfg.load_max && os->cfg.load_max < n ? os->cfg.load_max : n;
    bs->phase = 3;
    bs->phase_ns[3] = elo_time_ns() - t0;
    /* phase 4: loading through the I/O thread, validation, install */
    gos_par_run(task_load, &j, (int)bs->load_count);
    uint32_t hint = 0;
    for (uint32_t d = 0; d < bs->discovered_count; d++) {
        if (d >= bs->load_count) {
            os->disc_reason[d] = GOS_REASON_NOT_LOADED;
            continue;
        }
        if (os->disc_reason[d] == GOS_REASON_OK) {
            int32_t slot = -1;
            uint64_t code_off = os->disc_off[d] + j.hdr[d].code_offset;
            os->disc_reason[d] = gos_install_user(bs, os->apps, os->bitmap, d, &j.hdr[d],
                                                  code_off, &hint, &slot);
        }
        int r = os->disc_reason[d];
        if (r == GOS_REASON_NO_SLOT || r == GOS_REASON_NO_MEMORY)
            bs->no_slot_count++;
        else if (r != GOS_REASON_OK)
            bs->error_count++;
    }
    gos_par_run(task_zero_state, &j, (int)bs->slots);
    bs->io_requests = __atomic_load_n(&os->ticket, __ATOMIC_ACQUIRE);
    elo_free(j.flags);
    elo_free(j.hdr);
    bs->phase = 4;
    bs->phase_ns[4] = elo_time_ns() - t0;
    /* phase 5: boot complete when the first frame has run every app */
    gos_input none = {0};
    int rc = cpu_frame(os, &none);
    if (rc < 0)
        return rc;
    bs->boot_frames = 1;
    bs->phase = 5;
    bs->phase_ns[5] = elo_time_ns() - t0;
    return ELO_OK;
}

/* ---- shared host side --------------------------------------------------- */

void elo_gpuos_free(elo_gpuos *os)
{
    if (!os)
        return;
    if (os->cuda && elo__gpuos_cuda_free)
        elo__gpuos_cuda_free(os);
    gos_io_stop(&os->io);
    gos_fsindex_free(&os->idx);
    elo_free(os->apps);
    elo_free(os->bitmap);
    elo_free(os->disc);
    elo_free(os->disc_reason);
    elo_free(os->disc_off);
    elo_free(os->fb);
    elo_free(os->pool);
    elo_free(os->state);
    elo_free(os->quads);
    elo_free(os->draws);
    elo_free(os->layers);
    elo_free(os->req);
    elo_free(os->cpl);
    elo_free(os->slot_turn);
    elo_free(os);
}

int elo_gpuos_boot(const elo_gpuos_config *cfg, elo_gpuos **out)
{
    *out = NULL;
    uint64_t t0 = elo_time_ns();
    elo_gpuos *os = elo_calloc(1, sizeof *os);
    if (!os)
        return elo_seterr(ELO_NOMEM, "boot: out of memory");
    os->cfg = *cfg;
    os->stop_word = &os->stop_cpu;
    if (!os->cfg.slots)
        os->cfg.slots = 64;
    if (!os->cfg.budget)
        os->cfg.budget = 100000;
    if (os->cfg.slots < GOS_SYSTEM_APPS || os->cfg.slots > 4096) {
        elo_free(os);
        return elo_seterr(ELO_BADINPUT, "--slots must be in 4..4096 (got %u)", cfg->slots);
    }
    os->backend = cfg->backend ? cfg->backend : elo_backend_cpu();
    os->cuda = os->backend->kind == ELO_DEVICE_CUDA;
    if (os->cuda && !elo__gpuos_cuda_boot) {
        elo_free(os);
        return elo_seterr(ELO_NODEVICE, "this build has no CUDA runtime for gpuos");
    }
    int rc = gos_fsindex_build(&os->idx, cfg->app_dirs, cfg->app_dir_count);
    if (rc < 0) {
        elo_free(os);
        return rc;
    }
    uint32_t slots = os->cfg.slots;
    uint64_t want = gos_gpuapp_ext_hash();
    for (uint32_t i = 0; i < os->idx.count; i++)
        if (os->idx.entries[i].ext_hash == want) {
            os->disc_cap++;
            os->pool_bytes += gos_pool_room(os->idx.entries[i].size);
        }
    gos_boot *bs = &os->boot;
    memset(bs, 0, sizeof *bs);
    bs->slots = slots;
    bs->budget = os->cfg.budget;
    bs->index_count = os->idx.count;
    bs->focused_slot = -1;
    uint32_t sys_quads = 64u + 4u + 3u * slots + 96u + GOS_CHROME_QUADS * slots;
    bs->quad_capacity = sys_quads + USER_QUADS_PER_SLOT * slots;
    uint32_t cap1 = os->disc_cap ? os->disc_cap : 1;
    os->apps = elo_calloc(slots, sizeof(gos_app));
    os->bitmap = elo_calloc((slots + 63) / 64, sizeof(uint64_t));
    os->disc = elo_calloc(cap1, sizeof(uint32_t));
    os->disc_reason = elo_calloc(cap1, sizeof(int32_t));
    os->disc_off = elo_calloc(cap1, sizeof(uint64_t));
    os->fb = elo_calloc((size_t)GOS_FB_W * GOS_FB_H, 4);
    if (!os->apps || !os->bitmap || !os->disc || !os->disc_reason || !os->disc_off || !os->fb) {
        elo_gpuos_free(os);
        return elo_seterr(ELO_NOMEM, "boot: out of memory");
    }
    if (os->cuda) {
        os->cpu_setup_us = us_since(t0);
        rc = elo__gpuos_cuda_boot(os);
        if (rc < 0) {
            elo_gpuos_free(os);
            return rc;
        }
        *out = os;
        return ELO_OK;
    }
    os->pool = elo_malloc(os->pool_bytes ? os->pool_bytes : 8);
    os->state = elo_calloc((size_t)slots * STATE_WORDS, sizeof(float));
    os->quads = elo_calloc(bs->quad_capacity, sizeof(gos_quad));
    os->draws = elo_calloc(bs->quad_capacity, sizeof(gos_draw));
    os->layers = elo_calloc(3u + 2u * slots, sizeof(gos_layer));
    os->req = elo_calloc(GOS_RING_CAP, sizeof(gos_io_req));
    os->cpl = elo_calloc(GOS_RING_CAP, sizeof(gos_io_cpl));
    os->slot_turn = elo_calloc(GOS_RING_CAP, sizeof(uint32_t));
    if (!os->pool || !os->state || !os->quads || !os->draws || !os->layers || !os->req ||
        !os->cpl || !os->slot_turn) {
        elo_gpuos_free(os);
        return elo_seterr(ELO_NOMEM, "boot: out of memory");
    }
    gos_io_sink sink = {cpu_sink_copy, NULL, os};
    rc = gos_io_start(&os->io, os->req, os->cpl, GOS_RING_CAP, &os->idx, sink, NULL,
                      GOS_STAGING_BYTES);
    if (rc < 0) {
        elo_gpuos_free(os);
        return rc;
    }
    os->cpu_setup_us = us_since(t0);
    uint64_t tb = elo_time_ns();
    rc = cpu_boot(os);
    os->boot_us = us_since(tb);
    if (rc < 0) {
        elo_gpuos_free(os);
        return rc;
    }
    *out = os;
    return ELO_OK;
}

int elo_gpuos_run_frames(elo_gpuos *os, uint32_t count, const elo_gpuos_input *inputs)
{
    uint64_t t0 = elo_time_ns();
    int rc = ELO_OK;
    if (os->cuda) {
        rc = elo__gpuos_cuda_frames(os, count, (const gos_input *)inputs);
    } else {
        for (uint32_t f = 0; f < count && rc == ELO_OK; f++) {
            if (*os->stop_word)
                break;
            gos_input in = {0};
            if (inputs)
                memcpy(&in, &inputs[f], sizeof in);
            rc = cpu_frame(os, &in);
        }
    }
    *os->stop_word = 0;
    os->last_frames_us = us_since(t0);
    if (!os->cuda)
        os->frames_kernel_us = os->last_frames_us;
    os->last_frames = count;
    return rc;
}

void elo_gpuos_stop(elo_gpuos *os)
{
    *os->stop_word = 1;
}

void elo_gpuos_get_stats(elo_gpuos *os, elo_gpuos_stats *st)
{
    const gos_boot *bs = &os->boot;
    memset(st, 0, sizeof *st);
    st->device = os->cuda ? "cuda" : "cpu";
    st->slots = bs->slots;
    st->app_count = bs->app_count;
    st->system_app_count = bs->system_app_count;
    st->index_count = bs->index_count;
    st->discovered_count = bs->discovered_count;
    st->loaded_count = bs->loaded_count;
    st->error_count = bs->error_count;
    st->no_slot_count = bs->no_slot_count;
    st->boot_frames = bs->boot_frames;
    st->frame = bs->frame;
    st->focused_slot = bs->focused_slot;
    st->fault_count = bs->fault_count;
    st->preempt_total = bs->preempt_total;
    st->io_requests = bs->io_requests;
    for (int p = 0; p < 5; p++)
        st->phase_us[p] = (double)(bs->phase_ns[p + 1] - bs->phase_ns[p]) / 1000.0;
    st->cpu_setup_us = os->cpu_setup_us;
    st->device_init_us = os->device_init_us;
    st->boot_us = os->boot_us;
    st->last_frames_us = os->last_frames_us;
    st->last_frames = os->last_frames;
    st->frames_kernel_us = os->frames_kernel_us;
    st->io_cpu_us = (double)gos_io_cpu_ns(&os->io) / 1000.0;
    st->io_wall_us = os->io.running ? us_since(os->io.start_ns) : 0.0;
}

int elo_gpuos_apps(elo_gpuos *os, elo_gpuos_app *out, int max)
{
    int n = 0;
    for (uint32_t s = 0; s < os->boot.slots && n < max; s++) {
        const gos_app *a = &os->apps[s];
        if (a->status == GOS_APP_FREE)
            continue;
        elo_gpuos_app *v = &out[n++];
        memset(v, 0, sizeof *v);
        v->slot = s;
        memcpy(v->name, a->name, sizeof v->name);
        v->name[sizeof v->name - 1] = 0;
        v->type = a->type == GOS_TYPE_SYSTEM ? "system" : "user";
        v->status = a->status == GOS_APP_RUNNING ? "running" : "faulted";
        v->preempt_count = a->preempt_count;
        v->fault_code = a->fault_code;
        v->quad_count = a->quad_count;
        v->last_instr = a->last_instr;
        if (a->type == GOS_TYPE_USER && a->disc_index < os->boot.discovered_count)
            v->path = os->idx.paths[os->disc[a->disc_index]];
    }
    return n;
}

int elo_gpuos_rejects(elo_gpuos *os, elo_gpuos_reject *rej, int max)
{
    int n = 0;
    for (uint32_t d = 0; d < os->boot.discovered_count && n < max; d++) {
        int r = os->disc_reason[d];
        if (r == GOS_REASON_OK || r == GOS_REASON_NOT_LOADED)
            continue;
        rej[n].path = os->idx.paths[os->disc[d]];
        rej[n].reason = r;
        n++;
    }
    return n;
}

const uint8_t *elo_gpuos_framebuffer(elo_gpuos *os, int *width, int *height)
{
    *width = GOS_FB_W;
    *height = GOS_FB_H;
    return os->fb;
}

uint64_t elo_gpuos_frame_hash(elo_gpuos *os)
{
    return elo_hash64(os->fb, (size_t)GOS_FB_W * GOS_FB_H * 4);
}

int elo_gpuos_write_png(elo_gpuos *os, const char *path)
{
    return elo_png_write_rgba(path, os->fb, GOS_FB_W, GOS_FB_H);
}

int elo_gpuos_draw_list(elo_gpuos *os, int32_t *out, uint32_t max)
{
    if (os->cuda)
        return elo_seterr(ELO_UNSUPPORTED, "the draw list is kept on the device");
    uint32_t n = ELO_MIN(max, os->boot.draw_count);
    for (uint32_t i = 0; i < n; i++) {
        const gos_draw *d = &os->draws[i];
        int32_t *o = out + (size_t)i * 6;
        o[0] = d->x0;
        o[1] = d->y0;
        o[2] = d->x1;
        o[3] = d->y1;
        o[4] = (int32_t)d->color;
        o[5] = (int32_t)d->glyph;
    }
    return (int)os->boot.draw_count;
}
