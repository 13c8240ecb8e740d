/* gpuos-cuda.cu - the CUDA path of the GPU-native runtime: the boot kernel
 * (phases 1-5) and the persistent frame megakernel, over the same shared
 * code (gpuos-shared.h) as the CPU path.
 *
 * DESIGN. The CPU creates the device buffers, uploads the filesystem
 * index, starts the I/O service thread (io.c) and launches the boot; the
 * GPU does the rest. Both kernels are cooperative launches of G blocks of
 * 256 threads (G = what fits co-resident), and every cross-block ordering
 * is a grid.sync() - never a block barrier. Without cooperative launch
 * support the same stage functions run as one ordinary launch per stage,
 * the launch boundaries ordering them.
 *   Boot: phase 1 (all blocks) clears the app table and the free bitmap;
 *   phase 2 (block 0, thread 0) installs Compositor, Dock, MenuBar and
 *   WindowChrome in slots 0-3; phase 3 (block 0, 256 threads) scans the
 *   index with block-wide prefix sums, giving the discovered list in index
 *   order and each app's content-pool offset; phase 4 (every block's
 *   thread 0, one app at a time) claims a ring ticket from a counter in
 *   device memory, waits for its slot's turn, writes the request into the
 *   host-mapped request ring, __threadfence_system(), publishes seq; then
 *   polls the host-mapped completion with __nanosleep backoff (the I/O
 *   thread copies the file into the device content pool with
 *   cudaMemcpyAsync on its own non-blocking stream and syncs that stream
 *   before it publishes the completion) and validates the header on the
 *   GPU; block 0 then installs the valid apps in discovery order (lowest
 *   free bit of the atomic bitmap) so the app table is deterministic, and
 *   all blocks zero the new apps' state; phase 5 runs the boot frame and
 *   raises the host-mapped "boot complete" word.
 *   Frames: prepare (one thread: focus, layout) | apps (a block per app:
 *   thread 0 runs the VM under its instruction budget, or the Compositor
 *   or MenuBar; the Dock and WindowChrome use a thread per icon/window)
 *   | plan (one thread: z-order layers, counters, frame number) | resolve
 *   (a thread per quad) | raster (a block per 16x16 tile: the draws that
 *   touch the tile are compacted in order into shared memory, each thread
 *   blends its pixel, starting at the last opaque draw covering the tile).
 *   Each frame starts by reading
 *   the host-mapped stop word into device memory (one thread), so every
 *   block leaves the loop at the same frame and no grid.sync is orphaned.
 * Who waits on what: kernel blocks wait on the I/O thread's completions;
 * the I/O thread waits on requests and on its copy stream; the host waits
 * on the "boot complete" word and then on the kernel's stream. Kernels run
 * on the backend's non-blocking stream: a legacy-default-stream operation
 * would wait on the persistent kernel forever. */
#include "gpuos/gpuos-impl.h"

#include <cooperative_groups.h>
#include <cub/block/block_scan.cuh>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/cuda-try.h"

namespace cg = cooperative_groups;

#define BLOCK 256
#define STATE_WORDS (GOS_MAX_STATE / 4u)

/* Device pointers and sizes, passed by value to every kernel. */
struct gos_dev {
    gos_boot *boot;
    gos_app *apps;
    uint64_t *bitmap;
    const gos_fs_entry *index;
    uint32_t index_count;
    uint64_t ext_hash;
    uint32_t *disc;
    int32_t *disc_reason;
    uint64_t *disc_off;
    gos_header *hdr;
    uint32_t disc_cap;
    uint32_t load_max;
    uint8_t *pool;
    float *state;
    gos_quad *quads;
    gos_draw *draws;
    gos_layer *layers;
    uint32_t *fb;
    gos_io_req *req;          /* host-mapped */
    gos_io_cpl *cpl;          /* host-mapped */
    volatile uint32_t *ctl;   /* host-mapped: [0] stop, [1] boot complete, [2] frames done */
    uint32_t *ticket;         /* device memory */
    uint32_t *slot_turn;      /* device memory, GOS_RING_CAP */
    const gos_input *inputs;  /* per frame, or NULL */
};

enum {
    ST_INIT, ST_SYSTEM, ST_DISCOVER, ST_LOAD, ST_INSTALL, ST_ZERO, ST_BOOTED,
    ST_PREPARE, ST_APPS, ST_PLAN, ST_RESOLVE, ST_RASTER, ST_COUNT_
};

__device__ static uint64_t gtime(void)
{
    uint64_t t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

__device__ static bool lead(void) { return blockIdx.x == 0 && threadIdx.x == 0; }

/* ---- boot stages -------------------------------------------------------- */

__device__ static void st_init(const gos_dev &P)
{
    uint32_t slots = P.boot->slots;
    uint32_t tid = blockIdx.x * blockDim.x + threadIdx.x, nth = gridDim.x * blockDim.x;
    for (uint32_t s = tid; s < slots; s += nth)
        gos_app_clear(&P.apps[s]);
    for (uint32_t w = tid; w < (slots + 63) / 64; w += nth) {
        uint32_t bits = slots - w * 64u < 64u ? slots - w * 64u : 64u;
        P.bitmap[w] = bits == 64 ? ~0ull : ((1ull << bits) - 1ull);
    }
    if (lead()) {
        P.boot->phase_ns[0] = gtime();
        P.boot->focused_slot = -1;
        P.boot->stop = 0;
    }
}

__device__ static void st_system(const gos_dev &P)
{
    if (!lead())
        return;
    P.boot->phase = 1;
    P.boot->phase_ns[1] = gtime();
    gos_install_system(P.boot, P.apps, P.bitmap);
    P.boot->phase = 2;
    P.boot->phase_ns[2] = gtime();
}

__device__ static void st_discover(const gos_dev &P)
{
    if (blockIdx.x != 0)
        return;
    typedef cub::BlockScan<uint32_t, BLOCK> ScanU;
    typedef cub::BlockScan<unsigned long long, BLOCK> ScanL;
    __shared__ typename ScanU::TempStorage tu;
    __shared__ typename ScanL::TempStorage tl;
    __shared__ uint32_t base_n;
    __shared__ unsigned long long base_off;
    if (threadIdx.x == 0) {
        base_n = 0;
        base_off = 0;
    }
    __syncthreads();
    for (uint32_t c = 0; c < P.index_count; c += BLOCK) {
        uint32_t i = c + threadIdx.x;
        uint32_t flag = 0;
        unsigned long long room = 0;
        if (i < P.index_count && P.index[i].ext_hash == P.ext_hash) {
            flag = 1;
            room = gos_room(P.index[i].size);
        }
        uint32_t pos, total;
        unsigned long long off, total_off;
        ScanU(tu).ExclusiveSum(flag, pos, total);
        ScanL(tl).ExclusiveSum(room, off, total_off);
        uint32_t at = base_n + pos;
        if (flag && at < P.disc_cap) {
            P.disc[at] = i;
            P.disc_off[at] = base_off + off;
            P.disc_reason[at] = GOS_REASON_OK;
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            base_n += total;
            base_off += total_off;
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        uint32_t n = base_n < P.disc_cap ? base_n : P.disc_cap;
        P.boot->discovered_count = n;
        P.boot->load_count = P.load_max && P.load_max < n ? P.load_max : n;
        P.boot->phase = 3;
        P.boot->phase_ns[3] = gtime();
    }
}

/* One load request through the rings (thread 0 of a block). */
__device__ static int request(const gos_dev &P, uint32_t index, uint64_t dst_off, uint64_t room,
                              uint64_t *bytes)
{
    uint32_t t = atomicAdd(P.ticket, 1u);
    uint32_t slot = t % GOS_RING_CAP, turn = t / GOS_RING_CAP;
    unsigned ns = 64;
    while (atomicAdd(&P.slot_turn[slot], 0u) != turn) {
        __nanosleep(ns);
        if (ns < 8192) ns *= 2;
    }
    volatile gos_io_req *r = (volatile gos_io_req *)&P.req[slot];
    r->index = index;
    r->dst_off = dst_off;
    r->max_bytes = room;
    __threadfence_system();
    r->seq = t + 1;
    __threadfence_system();
    volatile gos_io_cpl *c = (volatile gos_io_cpl *)&P.cpl[slot];
    ns = 256;
    while (c->seq != t + 1) {
        __nanosleep(ns);
        if (ns < 16384) ns *= 2;
    }
    __threadfence_system();
    int status = c->status;
    *bytes = c->bytes;
    __threadfence();
    atomicExch(&P.slot_turn[slot], turn + 1);
    return status;
}

__device__ static void st_load(const gos_dev &P)
{
    if (threadIdx.x != 0)
        return;
    uint32_t count = P.boot->load_count;
    for (uint32_t d = blockIdx.x; d < count; d += gridDim.x) {
        const gos_fs_entry *e = &P.index[P.disc[d]];
        if (e->size > GOS_MAX_FILE) {
            P.disc_reason[d] = GOS_REASON_TOO_BIG;
            continue;
        }
        uint64_t bytes = 0;
        int st = request(P, P.disc[d], P.disc_off[d], gos_room(e->size), &bytes);
        if (st != GOS_REASON_OK) {
            P.disc_reason[d] = st;
            continue;
        }
        /* the header through uncached loads: the pool was written by DMA */
        uint8_t head[GOS_HEADER_SIZE];
        const uint8_t *src = P.pool + P.disc_off[d];
        for (uint32_t k = 0; k < GOS_HEADER_SIZE; k++)
            head[k] = k < bytes ? __ldcv(src + k) : 0;
        P.disc_reason[d] = gos_header_check(head, bytes, &P.hdr[d]);
    }
}

__device__ static void st_install(const gos_dev &P)
{
    if (!lead())
        return;
    gos_boot *bs = P.boot;
    uint32_t hint = 0;
    for (uint32_t d = 0; d < bs->discovered_count; d++) {
        if (d >= bs->load_count) {
            P.disc_reason[d] = GOS_REASON_NOT_LOADED;
            continue;
        }
        if (P.disc_reason[d] == GOS_REASON_OK) {
            int32_t slot = -1;
            uint64_t code_off = P.disc_off[d] + P.hdr[d].code_offset;
            P.disc_reason[d] = gos_install_user(bs, P.apps, P.bitmap, d, &P.hdr[d], code_off,
                                                &hint, &slot);
        }
        int r = P.disc_reason[d];
        if (r == GOS_REASON_NO_SLOT || r == GOS_REASON_NO_MEMORY)
            bs->no_slot_count++;
        else if (r != GOS_REASON_OK)
            bs->error_count++;
    }
    bs->io_requests = *P.ticket;
}

__device__ static void st_zero(const gos_dev &P)
{
    for (uint32_t s = blockIdx.x; s < P.boot->slots; s += gridDim.x) {
        const gos_app *a = &P.apps[s];
        if (a->status != GOS_APP_RUNNING || a->type != GOS_TYPE_USER)
            continue;
        float *st = P.state + (size_t)s * STATE_WORDS;
        for (uint32_t w = threadIdx.x; w < a->state_size / 4u; w += blockDim.x)
            st[w] = 0.0f;
    }
    if (lead()) {
        P.boot->phase = 4;
        P.boot->phase_ns[4] = gtime();
    }
}

__device__ static void st_booted(const gos_dev &P)
{
    if (!lead())
        return;
    P.boot->boot_frames = 1;
    P.boot->phase = 5;
    P.boot->phase_ns[5] = gtime();
    __threadfence_system();
    P.ctl[1] = 1;
    __threadfence_system();
}

/* ---- frame stages ------------------------------------------------------- */

typedef cub::BlockScan<uint32_t, BLOCK> BlockScanU;

/* Frame step 1 with block 0 (gos_frame_prepare's steps, same results): a
 * block scan numbers the user apps in slot order, each thread lays out
 * its own app's window, and the click lookup is a parallel match on the
 * user index. A serial loop over the slots would cost a dependent L2
 * round trip per slot (~20 us for 64 slots). */
__device__ static void st_prepare(const gos_dev &P, uint32_t f)
{
    __shared__ typename BlockScanU::TempStorage ts;
    __shared__ uint32_t carry;
    __shared__ int32_t last_user;
    __shared__ int32_t want;
    if (blockIdx.x != 0)
        return;
    gos_boot *bs = P.boot;
    const uint32_t slots = bs->slots;
    if (threadIdx.x == 0) {
        carry = 0;
        last_user = -1;
        bs->stop = P.ctl[0];
    }
    __syncthreads();
    for (uint32_t base = 0; base < slots; base += BLOCK) {
        uint32_t s = base + threadIdx.x, user = 0, k, total;
        gos_app *a = &P.apps[s < slots ? s : 0];
        if (s < slots) {
            a->vis_status = a->status;
            user = a->status != GOS_APP_FREE && a->type == GOS_TYPE_USER;
        }
        BlockScanU(ts).ExclusiveSum(user, k, total);
        if (user) {
            k += carry;
            gos_window_origin(k, &a->win_x, &a->win_y);
            a->user_index = k;
            atomicMax(&last_user, (int32_t)s);
        }
        __syncthreads();
        if (threadIdx.x == 0)
            carry += total;
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        gos_input in;
        memset(&in, 0, sizeof in);
        if (P.inputs)
            in = P.inputs[f];
        bs->user_count = carry;
        if (bs->focused_slot < 0 || (uint32_t)bs->focused_slot >= slots ||
            P.apps[bs->focused_slot].status == GOS_APP_FREE)
            bs->focused_slot = last_user;
        want = gos_dock_click(&in, carry);
    }
    __syncthreads();
    if (want >= 0)
        for (uint32_t s = threadIdx.x; s < slots; s += BLOCK) {
            const gos_app *a = &P.apps[s];
            if (a->status != GOS_APP_FREE && a->type == GOS_TYPE_USER &&
                a->user_index == (uint32_t)want)
                bs->focused_slot = (int32_t)s; /* one match at most */
        }
}

/* A block per app. Thread 0 runs a user app's VM, the Compositor or the
 * MenuBar; the Dock and WindowChrome use the whole block, a thread per
 * icon or window (each has its own fixed quad run, so the output is the
 * serial one). */
__device__ static void st_apps(const gos_dev &P, uint32_t f)
{
    __shared__ uint32_t chrome_total;
    gos_input in;
    memset(&in, 0, sizeof in);
    if (P.inputs)
        in = P.inputs[f];
    uint32_t slots = P.boot->slots;
    for (uint32_t s = blockIdx.x; s < slots; s += gridDim.x) {
        gos_app *a = &P.apps[s];
        bool wide = a->status == GOS_APP_RUNNING && a->type == GOS_TYPE_SYSTEM &&
                    (a->sys_kind == GOS_SYS_DOCK || a->sys_kind == GOS_SYS_CHROME);
        if (!wide) {
            if (threadIdx.x == 0)
                gos_run_app(P.boot, P.apps, s, P.pool, P.state + (size_t)s * STATE_WORDS,
                            P.quads, &in);
            continue;
        }
        gos_quad *qs = P.quads + a->quad_off;
        if (a->sys_kind == GOS_SYS_DOCK) {
            for (uint32_t u = threadIdx.x; u < slots; u += blockDim.x)
                gos_sys_dock_icon(P.boot, P.apps, u, qs, a->quad_cap);
            if (threadIdx.x == 0)
                a->quad_count = gos_sys_dock_bar(P.boot, qs, a->quad_cap);
        } else {
            if (threadIdx.x == 0)
                chrome_total = 0;
            __syncthreads();
            uint32_t mine = 0;
            for (uint32_t u = threadIdx.x; u < slots; u += blockDim.x)
                mine += gos_sys_chrome_window(P.boot, P.apps, u, qs, a->quad_cap);
            atomicAdd(&chrome_total, mine);
            __syncthreads();
            if (threadIdx.x == 0)
                a->quad_count = chrome_total;
            __syncthreads();
        }
    }
}

/* Frame step 3 with block 0 (gos_plan_layers and gos_frame_count, same
 * results): the unfocused user windows take layers 1, 3, 5, ... in slot
 * order and their draw offsets come from a block scan of their draw
 * counts; the focused window, the Dock and the MenuBar follow. */
__device__ static void st_plan(const gos_dev &P)
{
    __shared__ typename BlockScanU::TempStorage ts;
    __shared__ uint32_t carry_n, carry_d, faults, preempts;
    if (blockIdx.x != 0)
        return;
    gos_boot *bs = P.boot;
    const gos_app *apps = P.apps;
    const gos_app *chrome = &apps[GOS_SYS_CHROME];
    const uint32_t slots = bs->slots;
    const int32_t focus = bs->focused_slot;
    if (threadIdx.x == 0) {
        const gos_app *comp = &apps[GOS_SYS_COMPOSITOR];
        gos_layer_set(&P.layers[0], comp->quad_off, comp->quad_count, 0, 0, 0, 0, 0, GOS_FB_W,
                      GOS_FB_H);
        carry_n = 0;
        carry_d = comp->quad_count;
        faults = preempts = 0;
    }
    __syncthreads();
    uint32_t my_faults = 0, my_preempts = 0;
    for (uint32_t base = 0; base < slots; base += BLOCK) {
        uint32_t s = base + threadIdx.x, in = 0, cnt = 0;
        const gos_app *a = &apps[s < slots ? s : 0];
        if (s < slots) {
            my_faults += a->status == GOS_APP_FAULTED;
            my_preempts += a->preempt_count;
            if (gos_visible_user(a) && (int32_t)s != focus) {
                in = 1;
                cnt = a->chrome_count + (a->vis_status == GOS_APP_RUNNING ? a->quad_count : 0);
            }
        }
        uint32_t j, nj, d, nd;
        BlockScanU(ts).ExclusiveSum(in, j, nj);
        __syncthreads();
        BlockScanU(ts).ExclusiveSum(cnt, d, nd);
        if (in)
            gos_user_layers(chrome, a, carry_d + d, &P.layers[1 + 2 * (carry_n + j)]);
        __syncthreads();
        if (threadIdx.x == 0) {
            carry_n += nj;
            carry_d += nd;
        }
        __syncthreads();
    }
    atomicAdd(&faults, my_faults);
    atomicAdd(&preempts, my_preempts);
    __syncthreads();
    if (threadIdx.x == 0) {
        uint32_t n = 1 + 2 * carry_n, draws = carry_d;
        if (focus >= 0 && (uint32_t)focus < slots && gos_visible_user(&apps[focus])) {
            draws += gos_user_layers(chrome, &apps[focus], draws, &P.layers[n]);
            n += 2;
        }
        gos_plan_tail(bs, apps, P.layers, n, draws);
        bs->fault_count = faults;
        bs->preempt_total = preempts;
        bs->frame++;
        P.ctl[2] = bs->frame;
    }
}

__device__ static void st_resolve(const gos_dev &P)
{
    uint32_t n = P.boot->draw_count, nl = P.boot->layer_count;
    uint32_t tid = blockIdx.x * blockDim.x + threadIdx.x, nth = gridDim.x * blockDim.x;
    for (uint32_t i = tid; i < n; i += nth) {
        const gos_layer *l = &P.layers[gos_find_layer(P.layers, nl, i)];
        P.draws[i] = gos_resolve_quad(&P.quads[l->src_off + (i - l->draw_off)], l);
    }
}

/* Raster: a block takes a run of tiles of one tile row at a time. It culls
 * the draw list against the run's rectangle once (a block scan keeps the
 * z-order) into shared memory; a warp per tile then picks that list's
 * draws touching the tile, from the last opaque one covering the whole
 * tile on, and each lane blends 8 pixels over them. A run whose list overflows the shared array
 * is drawn tile by tile, each tile culling the whole list in chunks. */
#define RASTER_CAP 512

__device__ static void raster_tile_chunked(const gos_dev &P, gos_draw *list,
                                           typename BlockScanU::TempStorage &tu, uint32_t tx,
                                           uint32_t ty)
{
    __shared__ uint32_t chunk_n;
    const uint32_t n = P.boot->draw_count;
    int32_t tx0 = (int32_t)(tx * GOS_TILE), ty0 = (int32_t)(ty * GOS_TILE);
    int32_t px = tx0 + (int32_t)(threadIdx.x % GOS_TILE);
    int32_t py = ty0 + (int32_t)(threadIdx.x / GOS_TILE);
    uint32_t pixel = 0xff000000u;
    for (uint32_t c = 0; c < n; c += BLOCK) {
        uint32_t i = c + threadIdx.x, hit = 0, pos, total;
        gos_draw d = {0, 0, 0, 0, 0u, 0u};
        if (i < n) {
            d = P.draws[i];
            hit = gos_draw_overlaps(&d, tx0, ty0, tx0 + GOS_TILE, ty0 + GOS_TILE);
        }
        BlockScanU(tu).ExclusiveSum(hit, pos, total);
        if (hit)
            list[pos] = d;
        if (threadIdx.x == 0)
            chunk_n = total;
        __syncthreads();
        for (uint32_t k = 0; k < chunk_n; k++)
            pixel = gos_shade(&list[k], px, py, pixel);
        __syncthreads();
    }
    P.fb[(size_t)py * GOS_FB_W + px] = pixel;
}

__device__ static void st_raster(const gos_dev &P)
{
    __shared__ typename BlockScanU::TempStorage tu;
    __shared__ gos_draw list[RASTER_CAP];
    __shared__ uint16_t tile[BLOCK / 32][RASTER_CAP];
    __shared__ uint32_t list_n;
    const uint32_t tiles_x = GOS_FB_W / GOS_TILE, tiles_y = GOS_FB_H / GOS_TILE;
    /* runs per tile row: at most one run per block (a block doing two
     * would set the stage's length) */
    uint32_t per_row = gridDim.x / tiles_y;
    if (per_row < 1)
        per_row = 1;
    if (per_row > tiles_x)
        per_row = tiles_x;
    const uint32_t run = (tiles_x + per_row - 1) / per_row, runs = tiles_y * per_row;
    const uint32_t n = P.boot->draw_count;
    for (uint32_t r = blockIdx.x; r < runs; r += gridDim.x) {
        uint32_t ty = r / per_row, tx_begin = (r % per_row) * run;
        uint32_t tx_end = tx_begin + run < tiles_x ? tx_begin + run : tiles_x;
        if (tx_begin >= tx_end)
            continue; /* the same for the whole block */
        int32_t rx0 = (int32_t)(tx_begin * GOS_TILE), rx1 = (int32_t)(tx_end * GOS_TILE);
        int32_t ry0 = (int32_t)(ty * GOS_TILE), ry1 = ry0 + GOS_TILE;
        if (threadIdx.x == 0)
            list_n = 0;
        __syncthreads();
        for (uint32_t c = 0; c < n; c += BLOCK) {
            uint32_t i = c + threadIdx.x, hit = 0, pos, total;
            gos_draw d = {0, 0, 0, 0, 0u, 0u};
            if (i < n) {
                d = P.draws[i];
                hit = gos_draw_overlaps(&d, rx0, ry0, rx1, ry1);
            }
            BlockScanU(tu).ExclusiveSum(hit, pos, total);
            uint32_t at = list_n + pos;
            if (hit && at < RASTER_CAP)
                list[at] = d;
            __syncthreads();
            if (threadIdx.x == 0)
                list_n += total;
            __syncthreads();
        }
        const uint32_t m = list_n;
        if (m <= RASTER_CAP) {
            /* a warp per tile: ballots pick the run's draws touching the
             * tile (in order) and the last opaque one covering it whole;
             * each lane then blends 8 of the tile's 256 pixels */
            const uint32_t warp = threadIdx.x / 32u, lane = threadIdx.x % 32u;
            uint16_t *mine = tile[warp];
            for (uint32_t tx = tx_begin + warp; tx < tx_end; tx += BLOCK / 32u) {
                int32_t tx0 = (int32_t)(tx * GOS_TILE);
                uint32_t tn = 0, cover = 0;
                for (uint32_t c = 0; c < m; c += 32u) {
                    uint32_t i = c + lane;
                    bool hit = false, cov = false;
                    if (i < m) {
                        const gos_draw *d = &list[i];
                        hit = gos_draw_overlaps(d, tx0, ry0, tx0 + GOS_TILE, ry1);
                        cov = hit && !d->glyph && (d->color >> 24) == 255 && d->x0 <= tx0 &&
                              d->x1 >= tx0 + GOS_TILE && d->y0 <= ry0 && d->y1 >= ry1;
                    }
                    uint32_t hb = __ballot_sync(0xffffffffu, hit);
                    uint32_t cb = __ballot_sync(0xffffffffu, cov);
                    if (hit)
                        mine[tn + __popc(hb & ((1u << lane) - 1u))] = (uint16_t)i;
                    if (cb) {
                        uint32_t h = 31u - __clz(cb);
                        cover = tn + __popc(hb & ((1u << h) - 1u));
                    }
                    tn += __popc(hb);
                }
                __syncwarp();
                uint32_t px[8];
                for (int k = 0; k < 8; k++)
                    px[k] = 0xff000000u;
                int32_t x = tx0 + (int32_t)(lane % GOS_TILE), y = ry0 + (int32_t)(lane / GOS_TILE);
                for (uint32_t q = cover; q < tn; q++) {
                    const gos_draw d = list[mine[q]];
                    for (int k = 0; k < 8; k++)
                        px[k] = gos_shade(&d, x, y + 2 * k, px[k]);
                }
                for (int k = 0; k < 8; k++)
                    P.fb[(size_t)(y + 2 * k) * GOS_FB_W + x] = px[k];
                __syncwarp();
            }
        } else {
            for (uint32_t tx = tx_begin; tx < tx_end; tx++)
                raster_tile_chunked(P, list, tu, tx, ty);
        }
        __syncthreads(); /* the list is rebuilt for the next run */
    }
}

__device__ static void run_stage(const gos_dev &P, int stage, uint32_t f)
{
    switch (stage) {
    case ST_INIT: st_init(P); break;
    case ST_SYSTEM: st_system(P); break;
    case ST_DISCOVER: st_discover(P); break;
    case ST_LOAD: st_load(P); break;
    case ST_INSTALL: st_install(P); break;
    case ST_ZERO: st_zero(P); break;
    case ST_BOOTED: st_booted(P); break;
    case ST_PREPARE: st_prepare(P, f); break;
    case ST_APPS: st_apps(P, f); break;
    case ST_PLAN: st_plan(P); break;
    case ST_RESOLVE: st_resolve(P); break;
    case ST_RASTER: st_raster(P); break;
    }
}

/* The frame stages of one frame, separated by grid barriers. */
__device__ static void frame_coop(const gos_dev &P, cg::grid_group &g, uint32_t f)
{
    for (int st = ST_PREPARE; st <= ST_RASTER; st++) {
        run_stage(P, st, f);
        g.sync();
    }
}

__global__ void __launch_bounds__(BLOCK) k_boot(gos_dev P)
{
    cg::grid_group g = cg::this_grid();
    for (int st = ST_INIT; st <= ST_ZERO; st++) {
        run_stage(P, st, 0);
        g.sync();
    }
    frame_coop(P, g, 0);
    run_stage(P, ST_BOOTED, 0);
}

/* The persistent megakernel: `count` frames, or fewer when the host
 * raises the stop word. The next frame's prepare step runs in the plan
 * stage (block 0, after the plan): nothing between them reads what it
 * writes (resolve and raster read the layers and quads only), and it saves
 * a grid barrier per frame. */
__global__ void __launch_bounds__(BLOCK) k_frames(gos_dev P, uint32_t count)
{
    cg::grid_group g = cg::this_grid();
    st_prepare(P, 0);
    g.sync();
    for (uint32_t f = 0; f < count; f++) {
        if (*(volatile uint32_t *)&P.boot->stop)
            break;
        st_apps(P, f);
        g.sync();
        st_plan(P);
        if (f + 1 < count) {
            __syncthreads();
            st_prepare(P, f + 1);
        }
        g.sync();
        st_resolve(P);
        g.sync();
        st_raster(P);
        g.sync();
    }
}

/* One stage as an ordinary launch (no cooperative launch support). */
__global__ void __launch_bounds__(BLOCK) k_stage(gos_dev P, int stage, uint32_t f)
{
    run_stage(P, stage, f);
}

/* ---- host side ---------------------------------------------------------- */

struct cuda_state {
    gos_dev P;
    cudaStream_t stream;      /* the backend's non-blocking stream */
    cudaStream_t io_stream;   /* the I/O thread's copies */
    int coop;
    int grid;
    void *mapped;             /* rings + ctl, host-mapped pinned */
    uint8_t *staging;         /* pinned */
    gos_input *inputs;        /* device, input_cap frames */
    uint32_t input_cap;
    void *dev_allocs[24];
    int ndev;
};

static int dev_alloc(cuda_state *cs, void **out, size_t bytes)
{
    cudaError_t err = cudaMalloc(out, bytes ? bytes : 8);
    if (err != cudaSuccess) {
        cudaGetLastError();
        return elo_seterr(err == cudaErrorMemoryAllocation ? ELO_NOMEM : ELO_DEVICE,
                          "cudaMalloc(%zu bytes): %s", bytes, cudaGetErrorString(err));
    }
    cs->dev_allocs[cs->ndev++] = *out;
    return ELO_OK;
}

static int io_copy(void *ctx, uint64_t dst_off, const void *src, size_t bytes)
{
    cuda_state *cs = (cuda_state *)ctx;
    CUDA_TRY(cudaMemcpyAsync(cs->P.pool + dst_off, src, bytes, cudaMemcpyHostToDevice,
                             cs->io_stream));
    return ELO_OK;
}

static int io_flush(void *ctx)
{
    cuda_state *cs = (cuda_state *)ctx;
    CUDA_TRY(cudaStreamSynchronize(cs->io_stream));
    return ELO_OK;
}

static int launch_stage(cuda_state *cs, int stage, uint32_t f)
{
    k_stage<<<cs->grid, BLOCK, 0, cs->stream>>>(cs->P, stage, f);
    CUDA_TRY(cudaGetLastError());
    return ELO_OK;
}

/* Copies the results the host reports (boot state, app table, rejects,
 * framebuffer) back into the runtime's host mirrors. */
static int download(elo_gpuos *os, cuda_state *cs, int with_disc)
{
    CUDA_TRY(cudaMemcpyAsync(&os->boot, cs->P.boot, sizeof(gos_boot), cudaMemcpyDeviceToHost,
                             cs->stream));
    CUDA_TRY(cudaMemcpyAsync(os->apps, cs->P.apps, sizeof(gos_app) * os->cfg.slots,
                             cudaMemcpyDeviceToHost, cs->stream));
    if (with_disc && os->disc_cap) {
        CUDA_TRY(cudaMemcpyAsync(os->disc, cs->P.disc, sizeof(uint32_t) * os->disc_cap,
                                 cudaMemcpyDeviceToHost, cs->stream));
        CUDA_TRY(cudaMemcpyAsync(os->disc_reason, cs->P.disc_reason,
                                 sizeof(int32_t) * os->disc_cap, cudaMemcpyDeviceToHost,
                                 cs->stream));
    }
    CUDA_TRY(cudaMemcpyAsync(os->fb, cs->P.fb, (size_t)GOS_FB_W * GOS_FB_H * 4,
                             cudaMemcpyDeviceToHost, cs->stream));
    CUDA_TRY(cudaStreamSynchronize(cs->stream));
    return ELO_OK;
}

extern "C" int elo__gpuos_cuda_boot(elo_gpuos *os)
{
    uint64_t t0 = elo_time_ns();
    cuda_state *cs = (cuda_state *)elo_calloc(1, sizeof *cs);
    if (!cs)
        return elo_seterr(ELO_NOMEM, "boot: out of memory");
    os->cuda_ctx = cs;
    cs->stream = (cudaStream_t)elo_backend_cuda_stream(os->backend);
    int dev = 0, coop = 0, sms = 0, per_sm = 0, per_sm2 = 0;
    CUDA_TRY(cudaGetDevice(&dev));
    CUDA_TRY(cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, dev));
    CUDA_TRY(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    CUDA_TRY(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, k_boot, BLOCK, 0));
    CUDA_TRY(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm2, k_frames, BLOCK, 0));
    if (per_sm2 < per_sm)
        per_sm = per_sm2;
    /* ELOHIM_GPUOS_BLOCKS_PER_SM (a tuning knob for measurements): fewer
     * co-resident blocks make each grid barrier cheaper */
    const char *bps = getenv("ELOHIM_GPUOS_BLOCKS_PER_SM");
    if (bps && atoi(bps) > 0 && atoi(bps) < per_sm)
        per_sm = atoi(bps);
    cs->coop = coop && per_sm > 0;
    cs->grid = cs->coop ? per_sm * sms : sms * 4;
    if (cs->grid < 1)
        cs->grid = 1;
    CUDA_TRY(cudaStreamCreateWithFlags(&cs->io_stream, cudaStreamNonBlocking));

    gos_dev &P = cs->P;
    uint32_t slots = os->cfg.slots, cap1 = os->disc_cap ? os->disc_cap : 1;
    int rc;
#define DALLOC(ptr, bytes)                                                  \
    do {                                                                    \
        void *p_;                                                           \
        if ((rc = dev_alloc(cs, &p_, (bytes))) < 0)                         \
            return rc;                                                      \
        ptr = (decltype(ptr))p_;                                            \
    } while (0)
    DALLOC(P.boot, sizeof(gos_boot));
    DALLOC(P.apps, sizeof(gos_app) * slots);
    DALLOC(P.bitmap, sizeof(uint64_t) * ((slots + 63) / 64));
    DALLOC(P.index, sizeof(gos_fs_entry) * (os->idx.count ? os->idx.count : 1));
    DALLOC(P.disc, sizeof(uint32_t) * cap1);
    DALLOC(P.disc_reason, sizeof(int32_t) * cap1);
    DALLOC(P.disc_off, sizeof(uint64_t) * cap1);
    DALLOC(P.hdr, sizeof(gos_header) * cap1);
    DALLOC(P.pool, os->pool_bytes ? os->pool_bytes : 8);
    DALLOC(P.state, (size_t)slots * GOS_MAX_STATE);
    DALLOC(P.quads, sizeof(gos_quad) * os->boot.quad_capacity);
    DALLOC(P.draws, sizeof(gos_draw) * os->boot.quad_capacity);
    DALLOC(P.layers, sizeof(gos_layer) * (3u + 2u * slots));
    DALLOC(P.fb, (size_t)GOS_FB_W * GOS_FB_H * 4);
    DALLOC(P.ticket, sizeof(uint32_t));
    DALLOC(P.slot_turn, sizeof(uint32_t) * GOS_RING_CAP);
#undef DALLOC
    size_t ring_bytes = GOS_RING_CAP * (sizeof(gos_io_req) + sizeof(gos_io_cpl)) + 64;
    CUDA_TRY(cudaHostAlloc(&cs->mapped, ring_bytes, cudaHostAllocMapped));
    memset(cs->mapped, 0, ring_bytes);
    CUDA_TRY(cudaHostAlloc((void **)&cs->staging, GOS_STAGING_BYTES, cudaHostAllocDefault));
    gos_io_req *req = (gos_io_req *)cs->mapped;
    gos_io_cpl *cpl = (gos_io_cpl *)(req + GOS_RING_CAP);
    uint32_t *ctl = (uint32_t *)(cpl + GOS_RING_CAP);
    void *dptr;
    CUDA_TRY(cudaHostGetDevicePointer(&dptr, cs->mapped, 0));
    P.req = (gos_io_req *)dptr;
    P.cpl = (gos_io_cpl *)(P.req + GOS_RING_CAP);
    P.ctl = (volatile uint32_t *)(P.cpl + GOS_RING_CAP);
    os->stop_word = (volatile uint32_t *)&ctl[0];
    P.index_count = os->idx.count;
    P.ext_hash = gos_gpuapp_ext_hash();
    P.disc_cap = os->disc_cap;
    P.load_max = os->cfg.load_max;
    P.inputs = NULL;
    CUDA_TRY(cudaMemcpyAsync((void *)P.index, os->idx.entries,
                             sizeof(gos_fs_entry) * os->idx.count, cudaMemcpyHostToDevice,
                             cs->stream));
    CUDA_TRY(cudaMemcpyAsync(P.boot, &os->boot, sizeof(gos_boot), cudaMemcpyHostToDevice,
                             cs->stream));
    CUDA_TRY(cudaMemsetAsync(P.ticket, 0, sizeof(uint32_t), cs->stream));
    CUDA_TRY(cudaMemsetAsync(P.slot_turn, 0, sizeof(uint32_t) * GOS_RING_CAP, cs->stream));
    CUDA_TRY(cudaMemsetAsync(P.disc_reason, 0, sizeof(int32_t) * cap1, cs->stream));
    CUDA_TRY(cudaStreamSynchronize(cs->stream));
    gos_io_sink sink = {io_copy, io_flush, cs};
    rc = gos_io_start(&os->io, req, cpl, GOS_RING_CAP, &os->idx, sink, cs->staging,
                      GOS_STAGING_BYTES);
    if (rc < 0)
        return rc;
    os->device_init_us = (double)(elo_time_ns() - t0) / 1000.0;

    /* the boot: from the first launch to the "boot complete" word */
    uint64_t tb = elo_time_ns();
    if (cs->coop) {
        void *args[] = {&cs->P};
        CUDA_TRY(cudaLaunchCooperativeKernel((const void *)k_boot, dim3(cs->grid), dim3(BLOCK),
                                             args, 0, cs->stream));
    } else {
        for (int st = ST_INIT; st <= ST_ZERO; st++)
            if ((rc = launch_stage(cs, st, 0)) < 0)
                return rc;
        for (int st = ST_PREPARE; st <= ST_RASTER; st++)
            if ((rc = launch_stage(cs, st, 0)) < 0)
                return rc;
        if ((rc = launch_stage(cs, ST_BOOTED, 0)) < 0)
            return rc;
    }
    volatile uint32_t *booted = (volatile uint32_t *)&ctl[1];
    while (!*booted) {
        cudaError_t q = cudaStreamQuery(cs->stream);
        if (q != cudaErrorNotReady && q != cudaSuccess)
            return elo_seterr(ELO_DEVICE, "boot kernel: %s", cudaGetErrorString(q));
        if (q == cudaSuccess && !*booted)
            return elo_seterr(ELO_INTERNAL, "boot kernel ended before boot complete");
    }
    os->boot_us = (double)(elo_time_ns() - tb) / 1000.0;
    CUDA_TRY(cudaStreamSynchronize(cs->stream));
    return download(os, cs, 1);
}

extern "C" int elo__gpuos_cuda_frames(elo_gpuos *os, uint32_t count, const gos_input *inputs)
{
    cuda_state *cs = (cuda_state *)os->cuda_ctx;
    if (!count)
        return ELO_OK;
    if (inputs) {
        if (count > cs->input_cap) {
            if (cs->inputs)
                cudaFree(cs->inputs);
            cs->inputs = NULL;
            cs->input_cap = 0;
            CUDA_TRY(cudaMalloc((void **)&cs->inputs, sizeof(gos_input) * count));
            cs->input_cap = count;
        }
        CUDA_TRY(cudaMemcpyAsync(cs->inputs, inputs, sizeof(gos_input) * count,
                                 cudaMemcpyHostToDevice, cs->stream));
        cs->P.inputs = cs->inputs;
    } else {
        cs->P.inputs = NULL;
    }
    cudaEvent_t e0, e1;
    CUDA_TRY(cudaEventCreate(&e0));
    CUDA_TRY(cudaEventCreate(&e1));
    CUDA_TRY(cudaEventRecord(e0, cs->stream));
    int rc = ELO_OK;
    /* ELOHIM_GPUOS_STAGES=1 (a diagnostic): `count` extra frames run first
     * as one launch per stage, each timed with events, and the mean per
     * stage goes to stderr; then the `count` frames run as usual, so the
     * frame number, the last frame and frame_us are those of 2 x count
     * frames' state. */
    const char *prof = getenv("ELOHIM_GPUOS_STAGES");
    if (prof && *prof == '1') {
        enum { NST = ST_RASTER - ST_PREPARE + 1 };
        cudaEvent_t ev[NST + 1];
        double acc[NST] = {0};
        for (int i = 0; i <= NST; i++)
            CUDA_TRY(cudaEventCreate(&ev[i]));
        for (uint32_t f = 0; f < count && rc == ELO_OK; f++) {
            CUDA_TRY(cudaEventRecord(ev[0], cs->stream));
            for (int st = ST_PREPARE; st <= ST_RASTER && rc == ELO_OK; st++) {
                rc = launch_stage(cs, st, f);
                CUDA_TRY(cudaEventRecord(ev[st - ST_PREPARE + 1], cs->stream));
            }
            CUDA_TRY(cudaEventSynchronize(ev[NST]));
            for (int i = 0; i < NST; i++) {
                float ms = 0.0f;
                CUDA_TRY(cudaEventElapsedTime(&ms, ev[i], ev[i + 1]));
                acc[i] += ms * 1000.0;
            }
        }
        static const char *names[NST] = {"prepare", "apps", "plan", "resolve", "raster"};
        fprintf(stderr, "gpuos stages: grid %d blocks of %d, %s\n", cs->grid, BLOCK,
                cs->coop ? "cooperative" : "one launch per stage");
        for (int i = 0; i < NST; i++)
            fprintf(stderr, "gpuos stage %-8s %9.2f us/frame\n", names[i], acc[i] / count);
        for (int i = 0; i <= NST; i++)
            cudaEventDestroy(ev[i]);
    }
    if (cs->coop) {
        void *args[] = {&cs->P, &count};
        CUDA_TRY(cudaLaunchCooperativeKernel((const void *)k_frames, dim3(cs->grid), dim3(BLOCK),
                                             args, 0, cs->stream));
    } else {
        for (uint32_t f = 0; f < count && rc == ELO_OK && !*os->stop_word; f++)
            for (int st = ST_PREPARE; st <= ST_RASTER && rc == ELO_OK; st++)
                rc = launch_stage(cs, st, f);
    }
    CUDA_TRY(cudaEventRecord(e1, cs->stream));
    CUDA_TRY(cudaEventSynchronize(e1));
    float ms = 0.0f;
    CUDA_TRY(cudaEventElapsedTime(&ms, e0, e1));
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    os->frames_kernel_us = (double)ms * 1000.0;
    if (rc < 0)
        return rc;
    return download(os, cs, 0);
}

extern "C" void elo__gpuos_cuda_free(elo_gpuos *os)
{
    cuda_state *cs = (cuda_state *)os->cuda_ctx;
    if (!cs)
        return;
    if (cs->mapped) {
        gos_io_req *req = (gos_io_req *)cs->mapped;
        uint32_t *ctl = (uint32_t *)((gos_io_cpl *)(req + GOS_RING_CAP) + GOS_RING_CAP);
        ((volatile uint32_t *)ctl)[0] = 1; /* stop any running megakernel */
    }
    os->stop_word = &os->stop_cpu;
    if (cs->stream)
        cudaStreamSynchronize(cs->stream);
    gos_io_stop(&os->io);
    for (int i = 0; i < cs->ndev; i++)
        cudaFree(cs->dev_allocs[i]);
    if (cs->inputs)
        cudaFree(cs->inputs);
    if (cs->mapped)
        cudaFreeHost(cs->mapped);
    if (cs->staging)
        cudaFreeHost(cs->staging);
    if (cs->io_stream)
        cudaStreamDestroy(cs->io_stream);
    elo_free(cs);
    os->cuda_ctx = NULL;
}
