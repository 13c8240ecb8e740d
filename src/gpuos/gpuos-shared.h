/* gpuos-shared.h - the code that the CPU and the CUDA paths of the GPU-native
 * runtime share word for word: the .gpuapp header check, the bytecode VM,
 * the system apps (Compositor, Dock, MenuBar, WindowChrome), the window
 * layout, the z-order resolve and the pixel shader of the rasterizer.
 *
 * Everything here is `static inline` and compiled by gcc for the CPU path
 * (with -ffp-contract=off) and by nvcc as device code for the CUDA path
 * (with -fmad=false), so the two paths execute the same IEEE operations in
 * the same order and produce bit-identical frames. Only +, -, *, /, sqrt,
 * floor and comparisons are used on floats (all correctly rounded on both);
 * sin and cos are our own polynomials; colours and blending are integer
 * arithmetic. */
#ifndef ELOHIM_GPUOS_SHARED_H
#define ELOHIM_GPUOS_SHARED_H

#include <stdint.h>
#include <string.h>
#ifndef __CUDACC__
#include <math.h>
#endif

#ifdef __CUDACC__
#define GOS_HD static __device__ __forceinline__
#define GOS_DATA static __device__ const
#define GOS_ATOMIC_AND64(p, m) atomicAnd((unsigned long long *)(p), (unsigned long long)(m))
#else
#define GOS_HD static inline
#define GOS_DATA static const
#define GOS_ATOMIC_AND64(p, m) __atomic_fetch_and((p), (m), __ATOMIC_ACQ_REL)
#endif

/* ---- limits and constants ---------------------------------------------- */

#define GOS_MAGIC "GPUAPP"
#define GOS_VERSION 1u
#define GOS_HEADER_SIZE 64u
#define GOS_NAME_LEN 24u
#define GOS_MAX_STATE (1u << 20)       /* bytes of state per app */
#define GOS_MAX_VERTICES 65536u        /* vertex budget limit */
#define GOS_MAX_THREADS 64u            /* VM lanes per app */
#define GOS_MAX_CODE (1u << 20)        /* instructions */
#define GOS_MAX_FILE (16u << 20)       /* bytes of a .gpuapp file */
#define GOS_REGS 16                    /* f32 registers per lane */
#define GOS_NOREG 0xFFu                /* "no register": constant zero/imm */
#define GOS_SYSTEM_APPS 4u
#define GOS_FB_W 1280
#define GOS_FB_H 800
#define GOS_TILE 16                    /* raster tiles are 16x16 pixels */
#define GOS_MENU_H 24
#define GOS_DOCK_H 64
#define GOS_WIN_W 300                  /* content size of a user window */
#define GOS_WIN_H 200
#define GOS_TITLE_H 20
#define GOS_BORDER 2
#define GOS_QUADS_PER_VERTEX_DIV 4u    /* a quad uses 4 vertices of the budget */
#define GOS_CHROME_QUADS 32u           /* chrome quads per window, at most */

/* System app kinds, in slot order. */
enum { GOS_SYS_COMPOSITOR = 0, GOS_SYS_DOCK = 1, GOS_SYS_MENUBAR = 2, GOS_SYS_CHROME = 3 };

/* App table entry status. */
enum { GOS_APP_FREE = 0, GOS_APP_RUNNING = 1, GOS_APP_FAULTED = 2 };
enum { GOS_TYPE_SYSTEM = 0, GOS_TYPE_USER = 1 };

/* Why a discovered app was not installed (0: installed). */
#define GOS_REASON_MAP(X)                                                   \
    X(OK, 0, "ok")                                                          \
    X(TRUNCATED, 1, "truncated: smaller than the 64-byte header")           \
    X(MAGIC, 2, "wrong magic (want GPUAPP)")                                \
    X(VERSION, 3, "unsupported version (want 1)")                           \
    X(CODE_RANGE, 4, "code lies outside the file")                          \
    X(CODE_EMPTY, 5, "code_size is 0 or too large")                         \
    X(STATE_SIZE, 6, "state_size over 1 MiB")                               \
    X(VERTEX_BUDGET, 7, "vertex_budget over 65536")                         \
    X(THREADS, 8, "thread_count is 0 or over 64")                           \
    X(ENTRY, 9, "entry_point out of range")                                 \
    X(NAME, 10, "name is not NUL-terminated")                               \
    X(READ, 11, "the file could not be read")                               \
    X(TOO_BIG, 12, "file larger than 16 MiB")                               \
    X(NO_SLOT, 13, "no free slot in the app table")                         \
    X(NO_MEMORY, 14, "quad arena exhausted")                                \
    X(NOT_LOADED, 15, "over the boot load limit")

enum {
#define GOS__X(name, value, msg) GOS_REASON_##name = value,
    GOS_REASON_MAP(GOS__X)
#undef GOS__X
};

/* VM results (per app and frame). */
enum {
    GOS_VM_OK = 0,          /* every lane halted */
    GOS_VM_PREEMPTED = 1,   /* instruction budget spent: stopped for this frame */
    GOS_VM_FAULT_OPCODE = 2,
    GOS_VM_FAULT_REG = 3,
    GOS_VM_FAULT_STATE = 4, /* load/store outside the app's state */
    GOS_VM_FAULT_PC = 5     /* jump or fall-through outside the code */
};

/* Opcodes (8-byte instructions: u8 op, u8 dst, u8 src1, u8 src2, f32 imm). */
enum {
    GOS_OP_HALT = 0, GOS_OP_MOVI = 1, GOS_OP_MOV = 2, GOS_OP_ADD = 3,
    GOS_OP_SUB = 4, GOS_OP_MUL = 5, GOS_OP_DIV = 6, GOS_OP_ADDI = 7,
    GOS_OP_MULI = 8, GOS_OP_MIN = 9, GOS_OP_MAX = 10, GOS_OP_FLOOR = 11,
    GOS_OP_ABS = 12, GOS_OP_MOD = 13, GOS_OP_SIN = 14, GOS_OP_COS = 15,
    GOS_OP_SQRT = 16,
    GOS_OP_LT = 20, GOS_OP_LE = 21, GOS_OP_EQ = 22, GOS_OP_NE = 23,
    GOS_OP_JMP = 24, GOS_OP_JZ = 25, GOS_OP_JNZ = 26,
    GOS_OP_LD = 30, GOS_OP_ST = 31,
    GOS_OP_FRAME = 40, GOS_OP_TIME = 41, GOS_OP_INPUT = 42, GOS_OP_LANE = 43,
    GOS_OP_LANES = 44, GOS_OP_WINW = 45, GOS_OP_WINH = 46, GOS_OP_HASH = 47,
    GOS_OP_COLOR = 50, GOS_OP_RGB = 51, GOS_OP_QUAD = 52, GOS_OP_GLYPH = 53
};

/* ---- shared data structures (same layout in C and CUDA) ----------------- */

/* A parsed, validated header. */
typedef struct {
    uint16_t version;
    uint32_t flags;
    uint32_t code_offset;   /* bytes from the file start */
    uint32_t code_size;     /* instructions */
    uint32_t state_size;    /* bytes */
    uint32_t vertex_budget;
    uint32_t thread_count;
    uint32_t entry_point;
    char name[GOS_NAME_LEN];
} gos_header;

/* One filesystem index entry as the device sees it (paths stay on the
 * host, with the I/O thread). */
typedef struct {
    uint64_t size;          /* bytes */
    int64_t mtime;          /* seconds */
    uint64_t ext_hash;      /* FNV-1a of the extension incl. the dot; 0: none */
    uint32_t kind;          /* 0 regular file, 1 directory, 2 other */
    uint32_t pad;
} gos_fs_entry;

/* A quad as an app emits it, in its own window's coordinates. */
typedef struct {
    float x, y, w, h;
    uint32_t color;         /* RGBA bytes in memory order: R | G<<8 | B<<16 | A<<24 */
    uint32_t glyph;         /* 0: solid; else an ASCII code drawn from the font */
} gos_quad;

/* A quad resolved to screen pixels: [x0,x1) x [y0,y1), clipped. */
typedef struct {
    int32_t x0, y0, x1, y1;
    uint32_t color;
    uint32_t glyph;
} gos_draw;

/* The input events of one frame. */
typedef struct {
    float mouse_x, mouse_y;  /* screen pixels */
    uint32_t buttons;        /* bit 0: primary button pressed this frame */
    uint32_t key;            /* last key code, 0: none */
} gos_input;

/* An app table entry (in device memory on the CUDA path). */
typedef struct {
    uint32_t status;        /* GOS_APP_* */
    uint32_t type;          /* GOS_TYPE_* */
    uint32_t sys_kind;      /* GOS_SYS_* for system apps */
    uint32_t disc_index;    /* index in the discovered list, or UINT32_MAX */
    uint64_t code_off;      /* byte offset of the code in the content pool */
    uint32_t code_size;     /* instructions */
    uint32_t entry;
    uint32_t state_size;    /* bytes */
    uint32_t vertex_budget;
    uint32_t thread_count;
    uint32_t flags;
    uint32_t quad_off;      /* the app's range in the quad arena */
    uint32_t quad_cap;
    uint32_t quad_count;    /* quads emitted in the last frame */
    uint32_t chrome_off;    /* this window's chrome quads (from WindowChrome) */
    uint32_t chrome_count;
    uint32_t vis_status;    /* status as seen by the system apps this frame */
    int32_t win_x, win_y;   /* content origin on screen */
    uint32_t preempt_count; /* frames stopped by the instruction budget */
    uint32_t fault_code;    /* GOS_VM_FAULT_* once faulted */
    uint32_t fault_frame;
    uint32_t last_instr;    /* instructions executed in the last frame */
    uint32_t user_index;    /* k-th user app this frame (window, dock icon) */
    char name[GOS_NAME_LEN];
} gos_app;

/* Boot state and frame state (device memory on the CUDA path). */
typedef struct {
    uint32_t phase;             /* last completed boot phase, 1..5 */
    uint32_t slots;             /* app table size */
    uint32_t system_app_count;
    uint32_t index_count;       /* entries in the filesystem index */
    uint32_t discovered_count;
    uint32_t load_count;        /* discovered apps requested for loading */
    uint32_t loaded_count;
    uint32_t error_count;
    uint32_t no_slot_count;
    uint32_t app_count;
    uint32_t boot_frames;
    uint32_t frame;             /* frames drawn so far */
    int32_t focused_slot;       /* -1: none */
    uint32_t user_count;        /* running or faulted user apps (this frame) */
    uint32_t quad_used;         /* quads of the arena handed out */
    uint32_t quad_capacity;
    uint32_t draw_count;        /* resolved draws of the last frame */
    uint32_t layer_count;
    uint32_t budget;            /* VM instructions per app and frame */
    uint32_t fault_count;
    uint32_t preempt_total;
    uint32_t io_requests;
    uint32_t stop;              /* the host's stop word, read once per frame */
    uint32_t pad1;
    uint64_t phase_ns[6];       /* [p]: time at the end of phase p; [0] start */
} gos_boot;

/* A layer of the z-order: a run of quads from one app's range, moved by
 * (dx, dy) and clipped. */
typedef struct {
    uint32_t src_off;       /* first quad in the arena */
    uint32_t count;
    uint32_t draw_off;      /* first draw in the draw list */
    int32_t dx, dy;
    int32_t cx0, cy0, cx1, cy1; /* clip rectangle */
} gos_layer;

/* I/O ring entries (host-mapped memory on the CUDA path). `seq` is
 * written last by the producer and read first by the consumer. */
typedef struct {
    uint32_t seq;           /* ticket + 1 when published */
    uint32_t index;         /* filesystem index entry */
    uint64_t dst_off;       /* byte offset in the content pool */
    uint64_t max_bytes;     /* room at dst_off */
} gos_io_req;

typedef struct {
    uint32_t seq;           /* ticket + 1 when published */
    int32_t status;         /* 0 ok, else a GOS_REASON_* */
    uint64_t bytes;         /* bytes placed at dst_off */
} gos_io_cpl;

/* The CPU and CUDA compilers must agree on these layouts: the host uploads
 * and downloads them byte for byte. */
#ifdef __cplusplus
#define GOS_STATIC_ASSERT(c, m) static_assert(c, m)
#else
#define GOS_STATIC_ASSERT(c, m) _Static_assert(c, m)
#endif
GOS_STATIC_ASSERT(sizeof(gos_fs_entry) == 32, "gos_fs_entry layout");
GOS_STATIC_ASSERT(sizeof(gos_quad) == 24 && sizeof(gos_draw) == 24, "quad/draw layout");
GOS_STATIC_ASSERT(sizeof(gos_input) == 16, "gos_input layout");
GOS_STATIC_ASSERT(sizeof(gos_app) == 128, "gos_app layout");
GOS_STATIC_ASSERT(sizeof(gos_boot) == 144, "gos_boot layout");
GOS_STATIC_ASSERT(sizeof(gos_layer) == 36, "gos_layer layout");
GOS_STATIC_ASSERT(sizeof(gos_io_req) == 24 && sizeof(gos_io_cpl) == 16, "ring layout");

/* ---- small helpers ------------------------------------------------------ */

GOS_HD uint32_t gos_rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

GOS_HD float gos_bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

GOS_HD uint32_t gos_f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

GOS_HD uint32_t gos_rgba(uint32_t r, uint32_t g, uint32_t b, uint32_t a)
{
    return (r & 255u) | (g & 255u) << 8 | (b & 255u) << 16 | (a & 255u) << 24;
}

/* floor(x) as an int when |x| < 2^30; `ok` cleared otherwise (NaN too). */
GOS_HD int32_t gos_f2i(float x, int *ok)
{
    if (!(x > -1073741824.0f && x < 1073741824.0f)) {
        *ok = 0;
        return 0;
    }
    return (int32_t)floorf(x);
}

/* Like gos_f2i but clamps to [-2^24, 2^24] (NaN -> 0): screen coords. */
GOS_HD int32_t gos_f2i_clamp(float x)
{
    if (!(x == x))
        return 0;
    if (x < -16777216.0f)
        return -16777216;
    if (x > 16777216.0f)
        return 16777216;
    return (int32_t)floorf(x);
}

GOS_HD uint32_t gos_mix32(uint32_t h)
{
    h ^= h >> 16;
    h *= 0x7feb352du;
    h ^= h >> 15;
    h *= 0x846ca68bu;
    h ^= h >> 16;
    return h;
}

GOS_HD uint32_t gos_name_hash(const char *name)
{
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < GOS_NAME_LEN && name[i]; i++)
        h = (h ^ (uint8_t)name[i]) * 16777619u;
    return h;
}

/* sin on [-pi, pi] by an odd polynomial after reduction by 2*pi; the same
 * float operations on both paths (max error ~1e-6 over a period). */
GOS_HD float gos_sin(float x)
{
    if (!(x == x) || x > 1.0e6f || x < -1.0e6f)
        return 0.0f;
    const float two_pi = 6.28318530717958647692f;
    const float inv_two_pi = 0.15915494309189533577f;
    float k = floorf(x * inv_two_pi + 0.5f);
    float r = x - k * two_pi;
    /* fold to [-pi/2, pi/2]: sin(pi - r) = sin(r) */
    const float pi = 3.14159265358979323846f, half_pi = 1.57079632679489661923f;
    if (r > half_pi)
        r = pi - r;
    else if (r < -half_pi)
        r = -pi - r;
    float r2 = r * r;
    float p = -2.5052108385441718775e-8f;
    p = p * r2 + 2.7557319223985890653e-6f;
    p = p * r2 + -1.9841269841269841270e-4f;
    p = p * r2 + 8.3333333333333333333e-3f;
    p = p * r2 + -1.6666666666666666667e-1f;
    p = p * r2 + 1.0f;
    return r * p;
}

GOS_HD float gos_cos(float x)
{
    return gos_sin(x + 1.57079632679489661923f);
}

/* Bytes of content pool reserved for a file of `size` bytes (8-aligned);
 * 0 for files over the limit (they are rejected without a read). */
GOS_HD uint64_t gos_room(uint64_t size)
{
    if (size > GOS_MAX_FILE)
        return 0;
    return (size + 7u) & ~(uint64_t)7u;
}

/* ---- header validation (the GPU does this on the bytes it loaded) ------- */

/* Checks the 64-byte header of a file of `size` bytes at `p` (only the
 * first min(size, 64) bytes are read). Returns GOS_REASON_OK and fills *h,
 * or the reason for rejection. */
GOS_HD int gos_header_check(const uint8_t *p, uint64_t size, gos_header *h)
{
    if (size < GOS_HEADER_SIZE)
        return GOS_REASON_TRUNCATED;
    if (size > GOS_MAX_FILE)
        return GOS_REASON_TOO_BIG;
    const char *magic = GOS_MAGIC;
    for (int i = 0; i < 6; i++)
        if (p[i] != (uint8_t)magic[i])
            return GOS_REASON_MAGIC;
    h->version = (uint16_t)(p[6] | p[7] << 8);
    if (h->version != GOS_VERSION)
        return GOS_REASON_VERSION;
    h->flags = gos_rd32(p + 8);
    h->code_offset = gos_rd32(p + 12);
    h->code_size = gos_rd32(p + 16);
    h->state_size = gos_rd32(p + 20);
    h->vertex_budget = gos_rd32(p + 24);
    h->thread_count = gos_rd32(p + 28);
    h->entry_point = gos_rd32(p + 32);
    for (uint32_t i = 0; i < GOS_NAME_LEN; i++)
        h->name[i] = (char)p[36 + i];
    if (h->code_size == 0 || h->code_size > GOS_MAX_CODE)
        return GOS_REASON_CODE_EMPTY;
    if (h->code_offset < GOS_HEADER_SIZE ||
        (uint64_t)h->code_offset + (uint64_t)h->code_size * 8u > size)
        return GOS_REASON_CODE_RANGE;
    if (h->state_size > GOS_MAX_STATE)
        return GOS_REASON_STATE_SIZE;
    if (h->vertex_budget > GOS_MAX_VERTICES)
        return GOS_REASON_VERTEX_BUDGET;
    if (h->thread_count == 0 || h->thread_count > GOS_MAX_THREADS)
        return GOS_REASON_THREADS;
    if (h->entry_point >= h->code_size)
        return GOS_REASON_ENTRY;
    int nul = 0;
    for (uint32_t i = 0; i < GOS_NAME_LEN; i++)
        if (h->name[i] == 0)
            nul = 1;
    if (!nul)
        return GOS_REASON_NAME;
    return GOS_REASON_OK;
}

/* ---- the bytecode VM ---------------------------------------------------- */

/* What an app sees of the world in one frame. */
typedef struct {
    uint32_t frame;
    float mouse_x, mouse_y;   /* window-local */
    uint32_t buttons, key;
    float win_w, win_h;
} gos_vm_env;

/* Runs every lane of one app for one frame, lane 0 first, each from the
 * entry point with zeroed registers, until HALT. `budget` instructions in
 * all; past it the app is preempted (the quads it emitted stay). Loads and
 * stores are confined to `state` (state_words words) and emissions to
 * `quads` (quad_cap; more are dropped). Returns GOS_VM_*; *used gets the
 * instructions executed and *emitted the quads written. */
GOS_HD int gos_vm_run(const uint8_t *code, uint32_t code_size, uint32_t entry,
                      uint32_t lanes, float *state, uint32_t state_words,
                      gos_quad *quads, uint32_t quad_cap, const gos_vm_env *env,
                      uint32_t budget, uint32_t *used, uint32_t *emitted)
{
    uint32_t executed = 0, nq = 0;
    int result = GOS_VM_OK;
    uint32_t color = gos_rgba(255, 255, 255, 255);
    for (uint32_t lane = 0; lane < lanes && result == GOS_VM_OK; lane++) {
        float r[GOS_REGS];
        for (int i = 0; i < GOS_REGS; i++)
            r[i] = 0.0f;
        uint32_t pc = entry;
        for (;;) {
            if (executed >= budget) {
                result = GOS_VM_PREEMPTED;
                break;
            }
            if (pc >= code_size) {
                result = GOS_VM_FAULT_PC;
                break;
            }
            const uint8_t *in = code + (uint64_t)pc * 8u;
            uint32_t op = in[0], d = in[1], a = in[2], b = in[3];
            float imm = gos_bits_f32(gos_rd32(in + 4));
            executed++;
            pc++;
            /* register operands: each op checks the ones it uses */
            int bad = 0;
#define GOS_R(i) (((i) < GOS_REGS) ? r[(i)] : (bad = 1, 0.0f))
            float va, vb;
            switch (op) {
            case GOS_OP_HALT:
                goto lane_done;
            case GOS_OP_MOVI:
                if (d >= GOS_REGS) { bad = 1; break; }
                r[d] = imm;
                break;
            case GOS_OP_MOV: case GOS_OP_FLOOR: case GOS_OP_ABS: case GOS_OP_SIN:
            case GOS_OP_COS: case GOS_OP_SQRT: case GOS_OP_HASH: case GOS_OP_ADDI:
            case GOS_OP_MULI:
                va = GOS_R(a);
                if (d >= GOS_REGS || bad) { bad = 1; break; }
                if (op == GOS_OP_MOV) r[d] = va;
                else if (op == GOS_OP_FLOOR) r[d] = floorf(va);
                else if (op == GOS_OP_ABS) r[d] = va < 0.0f ? -va : va;
                else if (op == GOS_OP_SIN) r[d] = gos_sin(va);
                else if (op == GOS_OP_COS) r[d] = gos_cos(va);
                else if (op == GOS_OP_SQRT) r[d] = va > 0.0f ? sqrtf(va) : 0.0f;
                else if (op == GOS_OP_HASH)
                    r[d] = (float)(gos_mix32(gos_f32_bits(va)) >> 8) * (1.0f / 16777216.0f);
                else if (op == GOS_OP_ADDI) r[d] = va + imm;
                else r[d] = va * imm;
                break;
            case GOS_OP_ADD: case GOS_OP_SUB: case GOS_OP_MUL: case GOS_OP_DIV:
            case GOS_OP_MIN: case GOS_OP_MAX: case GOS_OP_MOD: case GOS_OP_LT:
            case GOS_OP_LE: case GOS_OP_EQ: case GOS_OP_NE:
                va = GOS_R(a);
                vb = GOS_R(b);
                if (d >= GOS_REGS || bad) { bad = 1; break; }
                if (op == GOS_OP_ADD) r[d] = va + vb;
                else if (op == GOS_OP_SUB) r[d] = va - vb;
                else if (op == GOS_OP_MUL) r[d] = va * vb;
                else if (op == GOS_OP_DIV) r[d] = vb != 0.0f ? va / vb : 0.0f;
                else if (op == GOS_OP_MIN) r[d] = va < vb ? va : vb;
                else if (op == GOS_OP_MAX) r[d] = va > vb ? va : vb;
                else if (op == GOS_OP_MOD) {
                    if (vb != 0.0f) {
                        float q = floorf(va / vb);
                        float prod = q * vb;
                        r[d] = va - prod;
                    } else {
                        r[d] = 0.0f;
                    }
                } else if (op == GOS_OP_LT) r[d] = va < vb ? 1.0f : 0.0f;
                else if (op == GOS_OP_LE) r[d] = va <= vb ? 1.0f : 0.0f;
                else if (op == GOS_OP_EQ) r[d] = va == vb ? 1.0f : 0.0f;
                else r[d] = va != vb ? 1.0f : 0.0f;
                break;
            case GOS_OP_JMP: case GOS_OP_JZ: case GOS_OP_JNZ: {
                int take = 1;
                if (op != GOS_OP_JMP) {
                    va = GOS_R(a);
                    if (bad) break;
                    take = op == GOS_OP_JZ ? va == 0.0f : va != 0.0f;
                }
                if (take) {
                    int ok = 1;
                    int32_t t = gos_f2i(imm, &ok);
                    if (!ok || t < 0 || (uint32_t)t >= code_size) {
                        result = GOS_VM_FAULT_PC;
                        goto lane_done;
                    }
                    pc = (uint32_t)t;
                }
                break;
            }
            case GOS_OP_LD: case GOS_OP_ST: {
                uint32_t base_reg = op == GOS_OP_LD ? a : b;
                float base = base_reg == GOS_NOREG ? 0.0f : GOS_R(base_reg);
                float val = 0.0f;
                if (op == GOS_OP_ST)
                    val = GOS_R(a);
                else if (d >= GOS_REGS)
                    bad = 1;
                if (bad) break;
                int ok = 1;
                int32_t bi = gos_f2i(base, &ok);
                int32_t oi = gos_f2i(imm, &ok);
                int64_t addr = (int64_t)bi + (int64_t)oi;
                if (!ok || addr < 0 || addr >= (int64_t)state_words) {
                    result = GOS_VM_FAULT_STATE;
                    goto lane_done;
                }
                if (op == GOS_OP_LD)
                    r[d] = state[addr];
                else
                    state[addr] = val;
                break;
            }
            case GOS_OP_FRAME: case GOS_OP_TIME: case GOS_OP_INPUT: case GOS_OP_LANE:
            case GOS_OP_LANES: case GOS_OP_WINW: case GOS_OP_WINH:
                if (d >= GOS_REGS) { bad = 1; break; }
                if (op == GOS_OP_FRAME) r[d] = (float)env->frame;
                else if (op == GOS_OP_TIME) r[d] = (float)env->frame / 60.0f;
                else if (op == GOS_OP_LANE) r[d] = (float)lane;
                else if (op == GOS_OP_LANES) r[d] = (float)lanes;
                else if (op == GOS_OP_WINW) r[d] = env->win_w;
                else if (op == GOS_OP_WINH) r[d] = env->win_h;
                else {
                    int ok = 1;
                    int32_t which = gos_f2i(imm, &ok);
                    r[d] = which == 0 ? env->mouse_x : which == 1 ? env->mouse_y
                         : which == 2 ? (float)env->buttons : which == 3 ? (float)env->key : 0.0f;
                }
                break;
            case GOS_OP_COLOR:
                color = gos_f32_bits(imm);
                break;
            case GOS_OP_RGB: {
                if (a + 2 >= GOS_REGS) { bad = 1; break; }
                uint32_t c[3];
                for (int i = 0; i < 3; i++) {
                    float v = r[a + i];
                    v = v == v ? (v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v) : 0.0f;
                    c[i] = (uint32_t)floorf(v * 255.0f + 0.5f);
                }
                color = gos_rgba(c[0], c[1], c[2], 255);
                break;
            }
            case GOS_OP_QUAD: case GOS_OP_GLYPH: {
                if (d + 3 >= GOS_REGS) { bad = 1; break; }
                uint32_t g = 0;
                if (op == GOS_OP_GLYPH) {
                    float gv = a == GOS_NOREG ? imm : GOS_R(a);
                    if (bad) break;
                    int ok = 1;
                    int32_t gi = gos_f2i(gv, &ok);
                    g = ok && gi > 32 && gi < 127 ? (uint32_t)gi : 32u;
                }
                if (nq < quad_cap) {
                    gos_quad q;
                    q.x = r[d];
                    q.y = r[d + 1];
                    q.w = r[d + 2];
                    q.h = r[d + 3];
                    q.color = color;
                    q.glyph = g;
                    quads[nq] = q;
                    nq++;
                }
                break;
            }
            default:
                result = GOS_VM_FAULT_OPCODE;
                goto lane_done;
            }
#undef GOS_R
            if (bad) {
                result = GOS_VM_FAULT_REG;
                break;
            }
        }
    lane_done:;
    }
    *used = executed;
    *emitted = nq;
    return result;
}

/* ---- font: 5x7 glyphs for ' '..'~' (lowercase drawn as uppercase) ------- */

/* Rows top to bottom, bit 4 = leftmost column. */
GOS_DATA uint8_t gos_font[59][7] = {
    {0, 0, 0, 0, 0, 0, 0},                     /* ' ' */
    {4, 4, 4, 4, 4, 0, 4},                     /* ! */
    {10, 10, 0, 0, 0, 0, 0},                   /* " */
    {10, 31, 10, 10, 10, 31, 10},              /* # */
    {4, 15, 20, 14, 5, 30, 4},                 /* $ */
    {25, 25, 2, 4, 8, 19, 19},                 /* % */
    {12, 18, 20, 8, 21, 18, 13},               /* & */
    {4, 4, 0, 0, 0, 0, 0},                     /* ' */
    {2, 4, 8, 8, 8, 4, 2},                     /* ( */
    {8, 4, 2, 2, 2, 4, 8},                     /* ) */
    {0, 21, 14, 31, 14, 21, 0},                /* * */
    {0, 4, 4, 31, 4, 4, 0},                    /* + */
    {0, 0, 0, 0, 12, 4, 8},                    /* , */
    {0, 0, 0, 31, 0, 0, 0},                    /* - */
    {0, 0, 0, 0, 0, 12, 12},                   /* . */
    {1, 1, 2, 4, 8, 16, 16},                   /* / */
    {14, 17, 19, 21, 25, 17, 14},              /* 0 */
    {4, 12, 4, 4, 4, 4, 14},                   /* 1 */
    {14, 17, 1, 2, 4, 8, 31},                  /* 2 */
    {31, 2, 4, 2, 1, 17, 14},                  /* 3 */
    {2, 6, 10, 18, 31, 2, 2},                  /* 4 */
    {31, 16, 30, 1, 1, 17, 14},                /* 5 */
    {6, 8, 16, 30, 17, 17, 14},                /* 6 */
    {31, 1, 2, 4, 8, 8, 8},                    /* 7 */
    {14, 17, 17, 14, 17, 17, 14},              /* 8 */
    {14, 17, 17, 15, 1, 2, 12},                /* 9 */
    {0, 12, 12, 0, 12, 12, 0},                 /* : */
    {0, 12, 12, 0, 12, 4, 8},                  /* ; */
    {2, 4, 8, 16, 8, 4, 2},                    /* < */
    {0, 0, 31, 0, 31, 0, 0},                   /* = */
    {8, 4, 2, 1, 2, 4, 8},                     /* > */
    {14, 17, 1, 2, 4, 0, 4},                   /* ? */
    {14, 17, 1, 13, 21, 21, 14},               /* @ */
    {14, 17, 17, 17, 31, 17, 17},              /* A */
    {30, 17, 17, 30, 17, 17, 30},              /* B */
    {14, 17, 16, 16, 16, 17, 14},              /* C */
    {28, 18, 17, 17, 17, 18, 28},              /* D */
    {31, 16, 16, 30, 16, 16, 31},              /* E */
    {31, 16, 16, 30, 16, 16, 16},              /* F */
    {14, 17, 16, 23, 17, 17, 15},              /* G */
    {17, 17, 17, 31, 17, 17, 17},              /* H */
    {14, 4, 4, 4, 4, 4, 14},                   /* I */
    {7, 2, 2, 2, 2, 18, 12},                   /* J */
    {17, 18, 20, 24, 20, 18, 17},              /* K */
    {16, 16, 16, 16, 16, 16, 31},              /* L */
    {17, 27, 21, 21, 17, 17, 17},              /* M */
    {17, 17, 25, 21, 19, 17, 17},              /* N */
    {14, 17, 17, 17, 17, 17, 14},              /* O */
    {30, 17, 17, 30, 16, 16, 16},              /* P */
    {14, 17, 17, 17, 21, 18, 13},              /* Q */
    {30, 17, 17, 30, 20, 18, 17},              /* R */
    {15, 16, 16, 14, 1, 1, 30},                /* S */
    {31, 4, 4, 4, 4, 4, 4},                    /* T */
    {17, 17, 17, 17, 17, 17, 14},              /* U */
    {17, 17, 17, 17, 17, 10, 4},               /* V */
    {17, 17, 17, 21, 21, 21, 10},              /* W */
    {17, 17, 10, 4, 10, 17, 17},               /* X */
    {17, 17, 10, 4, 4, 4, 4},                  /* Y */
    {31, 1, 2, 4, 8, 16, 31},                  /* Z */
};

GOS_HD uint32_t gos_font_row(uint32_t glyph, uint32_t row)
{
    if (glyph >= 'a' && glyph <= 'z')
        glyph -= 32;
    if (glyph < 32 || glyph > 'Z')
        glyph = '?';
    return gos_font[glyph - 32][row];
}

/* ---- rasterizer: one draw over one pixel -------------------------------- */

GOS_HD int gos_draw_overlaps(const gos_draw *d, int32_t x0, int32_t y0, int32_t x1, int32_t y1)
{
    return d->x0 < x1 && d->x1 > x0 && d->y0 < y1 && d->y1 > y0;
}

/* Blends draw `d` over pixel (px, py) holding `dst`; returns the new pixel.
 * Integer arithmetic only: identical on every device. */
GOS_HD uint32_t gos_shade(const gos_draw *d, int32_t px, int32_t py, uint32_t dst)
{
    if (px < d->x0 || px >= d->x1 || py < d->y0 || py >= d->y1)
        return dst;
    if (d->glyph) {
        uint32_t w = (uint32_t)(d->x1 - d->x0), h = (uint32_t)(d->y1 - d->y0);
        /* the glyph cell is the quad; the last column and row stay blank */
        uint32_t col = (uint32_t)(px - d->x0) * 6u / w;
        uint32_t row = (uint32_t)(py - d->y0) * 8u / h;
        if (col >= 5 || row >= 7)
            return dst;
        if (!((gos_font_row(d->glyph, row) >> (4 - col)) & 1u))
            return dst;
    }
    uint32_t a = d->color >> 24;
    if (a == 255)
        return d->color | 0xff000000u;
    if (a == 0)
        return dst;
    uint32_t out = 0;
    for (int sh = 0; sh < 24; sh += 8) {
        uint32_t s = (d->color >> sh) & 255u, t = (dst >> sh) & 255u;
        uint32_t v = (s * a + t * (255u - a) + 127u) / 255u;
        out |= v << sh;
    }
    return out | 0xff000000u;
}

/* Resolves quad `q` of layer `l` into a screen draw (empty when clipped). */
GOS_HD gos_draw gos_resolve_quad(const gos_quad *q, const gos_layer *l)
{
    gos_draw d;
    int32_t x0 = gos_f2i_clamp(q->x), y0 = gos_f2i_clamp(q->y);
    int32_t w = gos_f2i_clamp(q->w), h = gos_f2i_clamp(q->h);
    if (w < 0) w = 0;
    if (h < 0) h = 0;
    int64_t ax0 = (int64_t)x0 + l->dx, ay0 = (int64_t)y0 + l->dy;
    int64_t ax1 = ax0 + w, ay1 = ay0 + h;
    int64_t gx0 = ax0, gy0 = ay0, gx1 = ax1, gy1 = ay1; /* glyph cell before clip */
    if (ax0 < l->cx0) ax0 = l->cx0;
    if (ay0 < l->cy0) ay0 = l->cy0;
    if (ax1 > l->cx1) ax1 = l->cx1;
    if (ay1 > l->cy1) ay1 = l->cy1;
    if (ax1 <= ax0 || ay1 <= ay0) {
        d.x0 = d.y0 = d.x1 = d.y1 = 0;
        d.color = 0;
        d.glyph = 0;
        return d;
    }
    if (q->glyph && (gx0 != ax0 || gy0 != ay0 || gx1 != ax1 || gy1 != ay1)) {
        /* a clipped glyph is dropped whole (its cell would change shape) */
        d.x0 = d.y0 = d.x1 = d.y1 = 0;
        d.color = 0;
        d.glyph = 0;
        return d;
    }
    d.x0 = (int32_t)ax0;
    d.y0 = (int32_t)ay0;
    d.x1 = (int32_t)ax1;
    d.y1 = (int32_t)ay1;
    d.color = q->color;
    d.glyph = q->glyph;
    return d;
}

/* ---- layout and z-order ------------------------------------------------- */

/* Content origin of the k-th user window (cascade over the desktop). */
GOS_HD void gos_window_origin(uint32_t k, int32_t *x, int32_t *y)
{
    /* a 3 x 2 grid; each further six windows cascade by 28 pixels */
    uint32_t col = k % 3u, row = (k / 3u) % 2u, off = ((k / 6u) * 28u) % 224u;
    *x = 60 + (int32_t)(col * 400u + off);
    *y = GOS_MENU_H + GOS_TITLE_H + 24 + (int32_t)(row * 300u + off);
}

/* The dock icon under a click: the index among user apps (in slot order)
 * of the icon at the mouse when the first button is down, or -1. `k` user
 * apps are running (same geometry as the Dock). */
GOS_HD int32_t gos_dock_click(const gos_input *in, uint32_t k)
{
    if (!(in->buttons & 1u) || k == 0)
        return -1;
    int32_t icon = (GOS_FB_W - 16) / (int32_t)k;
    if (icon > 56) icon = 56;
    if (icon < 2)
        return -1;
    int32_t total = icon * (int32_t)k;
    int32_t x0 = (GOS_FB_W - total) / 2, y0 = GOS_FB_H - GOS_DOCK_H;
    int32_t mx = gos_f2i_clamp(in->mouse_x), my = gos_f2i_clamp(in->mouse_y);
    if (my < y0 || my >= GOS_FB_H || mx < x0 || mx >= x0 + total)
        return -1;
    return (mx - x0) / icon;
}

/* Frame step 1: focus from input, window layout, visible status snapshot.
 * `slots` entries of `apps`. One thread here; the CUDA path runs the same
 * steps with a block (gpuos-cuda.cu, st_prepare) and must stay in step. */
GOS_HD void gos_frame_prepare(gos_boot *bs, gos_app *apps, const gos_input *in)
{
    uint32_t k = 0;
    int32_t last_user = -1;
    for (uint32_t s = 0; s < bs->slots; s++) {
        gos_app *a = &apps[s];
        a->vis_status = a->status;
        if (a->status == GOS_APP_FREE || a->type != GOS_TYPE_USER)
            continue;
        gos_window_origin(k, &a->win_x, &a->win_y);
        a->user_index = k;
        last_user = (int32_t)s;
        k++;
    }
    bs->user_count = k;
    if (bs->focused_slot < 0 || (uint32_t)bs->focused_slot >= bs->slots ||
        apps[bs->focused_slot].status == GOS_APP_FREE)
        bs->focused_slot = last_user;
    /* a click on a dock icon focuses that app */
    int32_t want = gos_dock_click(in, k);
    if (want >= 0) {
        for (uint32_t s = 0; s < bs->slots; s++) {
            if (apps[s].status != GOS_APP_FREE && apps[s].type == GOS_TYPE_USER &&
                apps[s].user_index == (uint32_t)want) {
                bs->focused_slot = (int32_t)s;
                break;
            }
        }
    }
}

/* Emits a quad into a system app's range. */
GOS_HD void gos_emit(gos_quad *qs, uint32_t cap, uint32_t *n, float x, float y, float w,
                     float h, uint32_t color, uint32_t glyph)
{
    if (*n >= cap)
        return;
    gos_quad q;
    q.x = x;
    q.y = y;
    q.w = w;
    q.h = h;
    q.color = color;
    q.glyph = glyph;
    qs[*n] = q;
    (*n)++;
}

GOS_HD void gos_emit_text(gos_quad *qs, uint32_t cap, uint32_t *n, float x, float y,
                          const char *s, uint32_t max, uint32_t color, float right)
{
    for (uint32_t i = 0; i < max && s[i]; i++) {
        float gx = x + (float)i * 12.0f;
        if (gx + 10.0f > right)
            break;
        if (s[i] != ' ')
            gos_emit(qs, cap, n, gx, y, 12.0f, 16.0f, color, (uint8_t)s[i]);
    }
}

/* Writes `v` in decimal into buf (at least 11 bytes); returns its length. */
GOS_HD uint32_t gos_utoa(uint32_t v, char *buf)
{
    char tmp[11];
    uint32_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v && n < 10);
    for (uint32_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    buf[n] = 0;
    return n;
}

/* The system apps: each writes its quads into its own range. */
GOS_HD uint32_t gos_sys_compositor(const gos_boot *bs, gos_quad *qs, uint32_t cap)
{
    uint32_t n = 0;
    /* desktop: a vertical gradient in 25 bands, and a faint grid */
    for (uint32_t i = 0; i < 25; i++) {
        uint32_t t = i * 255u / 24u;
        gos_emit(qs, cap, &n, 0.0f, (float)(i * 32u), (float)GOS_FB_W, 32.0f,
                 gos_rgba(20 + t / 8u, 40 + t / 6u, 70 + t / 3u, 255), 0);
    }
    for (uint32_t x = 0; x < GOS_FB_W; x += 80)
        gos_emit(qs, cap, &n, (float)x, 0.0f, 1.0f, (float)GOS_FB_H, gos_rgba(255, 255, 255, 24), 0);
    (void)bs;
    return n;
}

/* The Dock: a bar, then exactly three quads per user app at 1 + 3k (its
 * icon, its initial, the focus mark; empty quads where there is nothing to
 * draw), so that icons can be drawn in parallel. */
GOS_HD void gos_dock_geometry(const gos_boot *bs, int32_t *icon, int32_t *total, float *x0,
                              float *y0)
{
    uint32_t k = bs->user_count;
    *icon = k ? (GOS_FB_W - 16) / (int32_t)k : 56;
    if (*icon > 56) *icon = 56;
    *total = k ? *icon * (int32_t)k : 56;
    *x0 = (float)((GOS_FB_W - *total) / 2);
    *y0 = (float)(GOS_FB_H - GOS_DOCK_H);
}

GOS_HD uint32_t gos_sys_dock_bar(const gos_boot *bs, gos_quad *qs, uint32_t cap)
{
    int32_t icon, total;
    float x0, y0;
    gos_dock_geometry(bs, &icon, &total, &x0, &y0);
    uint32_t n = 0;
    gos_emit(qs, cap, &n, x0 - 8.0f, y0, (float)total + 16.0f, (float)GOS_DOCK_H,
             gos_rgba(30, 30, 38, 220), 0);
    uint64_t want = 1u + 3u * (uint64_t)bs->user_count;
    return icon < 2 ? n : (uint32_t)(want < cap ? want : cap);
}

/* Icon of user app `s` (its three quads). */
GOS_HD void gos_sys_dock_icon(const gos_boot *bs, const gos_app *apps, uint32_t s, gos_quad *qs,
                              uint32_t cap)
{
    const gos_app *a = &apps[s];
    if (a->vis_status == GOS_APP_FREE || a->type != GOS_TYPE_USER)
        return;
    int32_t icon, total;
    float x0, y0;
    gos_dock_geometry(bs, &icon, &total, &x0, &y0);
    uint64_t at = 1u + 3u * (uint64_t)a->user_index;
    if (icon < 2 || at + 3u > cap)
        return;
    uint32_t n = (uint32_t)at, end = (uint32_t)at + 3u;
    uint32_t h = gos_name_hash(a->name);
    float ix = x0 + (float)((int32_t)a->user_index * icon);
    float pad = icon >= 8 ? 4.0f : 0.0f;
    float isz = (float)icon - 2.0f * pad;
    gos_emit(qs, end, &n, ix + pad, y0 + 6.0f, isz, isz > 48.0f ? 48.0f : isz,
             a->vis_status == GOS_APP_FAULTED ? gos_rgba(200, 40, 40, 255)
             : gos_rgba(80 + (h & 127u), 80 + ((h >> 8) & 127u), 80 + ((h >> 16) & 127u), 255), 0);
    if (icon >= 24 && a->name[0])
        gos_emit(qs, end, &n, ix + pad + isz / 2.0f - 6.0f, y0 + 20.0f, 12.0f, 16.0f,
                 gos_rgba(255, 255, 255, 255), (uint8_t)a->name[0]);
    else
        gos_emit(qs, end, &n, 0.0f, 0.0f, 0.0f, 0.0f, 0u, 0);
    if ((int32_t)s == bs->focused_slot)
        gos_emit(qs, end, &n, ix + pad, y0 + 56.0f, isz, 4.0f, gos_rgba(255, 255, 255, 255), 0);
    else
        gos_emit(qs, end, &n, 0.0f, 0.0f, 0.0f, 0.0f, 0u, 0);
}

GOS_HD uint32_t gos_sys_dock(const gos_boot *bs, const gos_app *apps, gos_quad *qs, uint32_t cap)
{
    uint32_t n = gos_sys_dock_bar(bs, qs, cap);
    for (uint32_t s = 0; s < bs->slots; s++)
        gos_sys_dock_icon(bs, apps, s, qs, cap);
    return n;
}

GOS_HD uint32_t gos_sys_menubar(const gos_boot *bs, const gos_app *apps, gos_quad *qs, uint32_t cap)
{
    uint32_t n = 0;
    gos_emit(qs, cap, &n, 0.0f, 0.0f, (float)GOS_FB_W, (float)GOS_MENU_H, gos_rgba(236, 236, 240, 255), 0);
    uint32_t ink = gos_rgba(20, 20, 28, 255);
    gos_emit_text(qs, cap, &n, 8.0f, 4.0f, "ELOHIMOS", 8, ink, 200.0f);
    if (bs->focused_slot >= 0 && (uint32_t)bs->focused_slot < bs->slots)
        gos_emit_text(qs, cap, &n, 120.0f, 4.0f, apps[bs->focused_slot].name, GOS_NAME_LEN,
                      gos_rgba(30, 60, 160, 255), 420.0f);
    /* frame clock: "F <frame>  <mm>:<ss>" from the frame number at 60 Hz */
    char buf[40];
    uint32_t len = 0;
    buf[len++] = 'F';
    buf[len++] = ' ';
    len += gos_utoa(bs->frame, buf + len);
    buf[len++] = ' ';
    buf[len++] = ' ';
    uint32_t sec = bs->frame / 60u, mm = (sec / 60u) % 100u, ss = sec % 60u;
    buf[len++] = (char)('0' + mm / 10u);
    buf[len++] = (char)('0' + mm % 10u);
    buf[len++] = ':';
    buf[len++] = (char)('0' + ss / 10u);
    buf[len++] = (char)('0' + ss % 10u);
    buf[len] = 0;
    gos_emit_text(qs, cap, &n, (float)GOS_FB_W - 12.0f * (float)len - 8.0f, 4.0f, buf, len, ink,
                  (float)GOS_FB_W);
    return n;
}

/* WindowChrome: border, title bar (red when faulted, blue when focused),
 * close box and title, per user window, in a fixed run of
 * GOS_CHROME_QUADS quads at k * GOS_CHROME_QUADS (k = the window's user
 * index), so windows can be drawn in parallel. Records each window's run;
 * returns the quads drawn for this window. */
GOS_HD uint32_t gos_sys_chrome_window(const gos_boot *bs, gos_app *apps, uint32_t s, gos_quad *qs,
                                      uint32_t cap)
{
    gos_app *a = &apps[s];
    if (a->vis_status == GOS_APP_FREE || a->type != GOS_TYPE_USER)
        return 0;
    uint64_t start = (uint64_t)a->user_index * GOS_CHROME_QUADS;
    a->chrome_off = (uint32_t)start;
    a->chrome_count = 0;
    if (start + GOS_CHROME_QUADS > cap)
        return 0;
    uint32_t n = (uint32_t)start, end = n + GOS_CHROME_QUADS;
    float x = (float)a->win_x, y = (float)a->win_y;
    int focused = (int32_t)s == bs->focused_slot;
    uint32_t edge = focused ? gos_rgba(90, 140, 255, 255) : gos_rgba(110, 110, 120, 255);
    gos_emit(qs, end, &n, x - GOS_BORDER, y - GOS_TITLE_H - GOS_BORDER,
             GOS_WIN_W + 2 * GOS_BORDER, GOS_WIN_H + GOS_TITLE_H + 2 * GOS_BORDER, edge, 0);
    uint32_t bar = a->vis_status == GOS_APP_FAULTED ? gos_rgba(190, 40, 40, 255)
                 : focused ? gos_rgba(50, 90, 200, 255) : gos_rgba(70, 70, 80, 255);
    gos_emit(qs, end, &n, x, y - GOS_TITLE_H, GOS_WIN_W, GOS_TITLE_H, bar, 0);
    gos_emit(qs, end, &n, x, y, GOS_WIN_W, GOS_WIN_H, gos_rgba(250, 250, 252, 255), 0);
    gos_emit(qs, end, &n, x + GOS_WIN_W - 16.0f, y - GOS_TITLE_H + 4.0f, 12.0f, 12.0f,
             gos_rgba(230, 90, 80, 255), 0);
    gos_emit_text(qs, end, &n, x + 6.0f, y - GOS_TITLE_H + 2.0f, a->name, GOS_NAME_LEN,
                  gos_rgba(255, 255, 255, 255), x + GOS_WIN_W - 20.0f);
    a->chrome_count = n - (uint32_t)start;
    return a->chrome_count;
}

GOS_HD uint32_t gos_sys_chrome(const gos_boot *bs, gos_app *apps, gos_quad *qs, uint32_t cap)
{
    uint32_t total = 0;
    for (uint32_t s = 0; s < bs->slots; s++)
        total += gos_sys_chrome_window(bs, apps, s, qs, cap);
    return total;
}

/* ---- z-order plan (one thread) and resolve (parallel) ------------------ */

/* Sets one layer. */
GOS_HD void gos_layer_set(gos_layer *l, uint32_t off, uint32_t cnt, uint32_t draw_off, int32_t dx,
                          int32_t dy, int32_t cx0, int32_t cy0, int32_t cx1, int32_t cy1)
{
    l->src_off = off;
    l->count = cnt;
    l->draw_off = draw_off;
    l->dx = dx;
    l->dy = dy;
    l->cx0 = cx0;
    l->cy0 = cy0;
    l->cx1 = cx1;
    l->cy1 = cy1;
}

/* A user window's two layers (its chrome, then its content clipped to the
 * content rectangle) from draw `draw_off` on; returns their draw count. */
GOS_HD uint32_t gos_user_layers(const gos_app *chrome, const gos_app *a, uint32_t draw_off,
                                gos_layer *out)
{
    uint32_t content = a->vis_status == GOS_APP_RUNNING ? a->quad_count : 0;
    gos_layer_set(&out[0], chrome->quad_off + a->chrome_off, a->chrome_count, draw_off, 0, 0, 0,
                  GOS_MENU_H, GOS_FB_W, GOS_FB_H);
    int32_t cx1 = a->win_x + GOS_WIN_W, cy1 = a->win_y + GOS_WIN_H;
    gos_layer_set(&out[1], a->quad_off, content, draw_off + a->chrome_count, a->win_x, a->win_y,
                  a->win_x, a->win_y, cx1 < GOS_FB_W ? cx1 : GOS_FB_W,
                  cy1 < GOS_FB_H ? cy1 : GOS_FB_H);
    return a->chrome_count + content;
}

/* A visible user window (as prepared this frame). */
GOS_HD int gos_visible_user(const gos_app *a)
{
    return a->vis_status != GOS_APP_FREE && a->type == GOS_TYPE_USER;
}

/* The last layers of the plan (the Dock, then the MenuBar) after `n`
 * layers holding `draws` draws; sets the counts. */
GOS_HD void gos_plan_tail(gos_boot *bs, const gos_app *apps, gos_layer *layers, uint32_t n,
                          uint32_t draws)
{
    const gos_app *dock = &apps[GOS_SYS_DOCK], *menu = &apps[GOS_SYS_MENUBAR];
    gos_layer_set(&layers[n++], dock->quad_off, dock->quad_count, draws, 0, 0, 0, 0, GOS_FB_W,
                  GOS_FB_H);
    draws += dock->quad_count;
    gos_layer_set(&layers[n++], menu->quad_off, menu->quad_count, draws, 0, 0, 0, 0, GOS_FB_W,
                  GOS_FB_H);
    draws += menu->quad_count;
    bs->layer_count = n;
    bs->draw_count = draws;
}

/* Builds the layers of this frame in z-order: desktop (Compositor), then
 * each user window (its chrome, then its content; the focused window
 * last), then the Dock and the MenuBar. `layers` holds 3 + 2 * slots
 * entries. Sets bs->draw_count and bs->layer_count. One thread here; the
 * CUDA path computes the same layers with a block (st_plan). */
GOS_HD void gos_plan_layers(gos_boot *bs, const gos_app *apps, gos_layer *layers)
{
    uint32_t n = 0, draws = 0;
    const gos_app *chrome = &apps[GOS_SYS_CHROME];
    const gos_app *comp = &apps[GOS_SYS_COMPOSITOR];
    gos_layer_set(&layers[n++], comp->quad_off, comp->quad_count, 0, 0, 0, 0, 0, GOS_FB_W,
                  GOS_FB_H);
    draws = comp->quad_count;
    for (int pass = 0; pass < 2; pass++) {
        for (uint32_t s = 0; s < bs->slots; s++) {
            const gos_app *a = &apps[s];
            if (!gos_visible_user(a) || ((int32_t)s == bs->focused_slot) != pass)
                continue;
            draws += gos_user_layers(chrome, a, draws, &layers[n]);
            n += 2;
        }
    }
    gos_plan_tail(bs, apps, layers, n, draws);
}

/* Frame bookkeeping after the apps ran (one thread, with the plan): the
 * fault and preemption totals and the frame number. Nothing later in the
 * frame reads bs->frame. */
GOS_HD void gos_frame_count(gos_boot *bs, const gos_app *apps)
{
    uint32_t faults = 0, preempts = 0;
    for (uint32_t s = 0; s < bs->slots; s++) {
        faults += apps[s].status == GOS_APP_FAULTED;
        preempts += apps[s].preempt_count;
    }
    bs->fault_count = faults;
    bs->preempt_total = preempts;
    bs->frame++;
}

/* The layer that holds draw `i` (binary search over draw_off). */
GOS_HD uint32_t gos_find_layer(const gos_layer *layers, uint32_t count, uint32_t i)
{
    uint32_t lo = 0, hi = count;
    while (hi - lo > 1) {
        uint32_t mid = (lo + hi) / 2;
        if (layers[mid].draw_off <= i)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* ---- install (one thread, in discovery order: deterministic slots) ------ */

/* Claims the lowest free slot at or after `from` in the atomic free bitmap
 * (bit set = free). Returns the slot or -1 when none is free. */
GOS_HD int32_t gos_slot_claim(uint64_t *bitmap, uint32_t slots, uint32_t from)
{
    for (uint32_t w = from / 64u; w < (slots + 63u) / 64u; w++) {
        uint64_t word = bitmap[w];
        while (word) {
            uint32_t bit = 0;
            while (!((word >> bit) & 1u))
                bit++;
            uint64_t mask = (uint64_t)1 << bit;
            uint64_t old = GOS_ATOMIC_AND64(&bitmap[w], ~mask);
            if (old & mask)
                return (int32_t)(w * 64u + bit);
            word = old & ~mask;
        }
    }
    return -1;
}

GOS_HD void gos_app_clear(gos_app *a)
{
    memset(a, 0, sizeof *a);
    a->disc_index = 0xffffffffu;
}

/* Phase 2: installs the four system apps in slots 0-3 with quad ranges
 * sized for the table. */
GOS_HD void gos_install_system(gos_boot *bs, gos_app *apps, uint64_t *bitmap)
{
    uint32_t caps[4] = {64u, 4u + 3u * bs->slots, 96u, GOS_CHROME_QUADS * bs->slots};
    for (uint32_t k = 0; k < GOS_SYSTEM_APPS; k++) {
        int32_t s = gos_slot_claim(bitmap, bs->slots, k);
        if (s != (int32_t)k)
            continue;
        gos_app *a = &apps[s];
        gos_app_clear(a);
        a->status = GOS_APP_RUNNING;
        a->type = GOS_TYPE_SYSTEM;
        a->sys_kind = k;
        a->thread_count = 1;
        a->quad_off = bs->quad_used;
        a->quad_cap = caps[k];
        bs->quad_used += caps[k];
        const char *nm = k == GOS_SYS_COMPOSITOR ? "Compositor" : k == GOS_SYS_DOCK ? "Dock"
                       : k == GOS_SYS_MENUBAR ? "MenuBar" : "WindowChrome";
        for (uint32_t i = 0; i < GOS_NAME_LEN - 1 && nm[i]; i++)
            a->name[i] = nm[i];
        bs->system_app_count++;
        bs->app_count++;
    }
}

/* Phase 4: installs discovered app `d` with its validated header `h`.
 * Returns GOS_REASON_OK and the slot, or NO_SLOT / NO_MEMORY. */
GOS_HD int gos_install_user(gos_boot *bs, gos_app *apps, uint64_t *bitmap, uint32_t d,
                            const gos_header *h, uint64_t code_off, uint32_t *hint,
                            int32_t *slot_out)
{
    uint32_t quads = h->vertex_budget / GOS_QUADS_PER_VERTEX_DIV;
    if (bs->quad_used + quads > bs->quad_capacity)
        return GOS_REASON_NO_MEMORY;
    int32_t s = gos_slot_claim(bitmap, bs->slots, *hint);
    if (s < 0)
        return GOS_REASON_NO_SLOT;
    *hint = (uint32_t)s;
    gos_app *a = &apps[s];
    gos_app_clear(a);
    a->status = GOS_APP_RUNNING;
    a->type = GOS_TYPE_USER;
    a->disc_index = d;
    a->code_off = code_off;
    a->code_size = h->code_size;
    a->entry = h->entry_point;
    a->state_size = h->state_size;
    a->vertex_budget = h->vertex_budget;
    a->thread_count = h->thread_count;
    a->flags = h->flags;
    a->quad_off = bs->quad_used;
    a->quad_cap = quads;
    bs->quad_used += quads;
    for (uint32_t i = 0; i < GOS_NAME_LEN; i++)
        a->name[i] = h->name[i];
    bs->app_count++;
    bs->loaded_count++;
    *slot_out = s;
    return GOS_REASON_OK;
}

/* Runs app `s` for the current frame: a system app draws natively, a user
 * app runs its bytecode. `pool` is the content pool, `state` the app's own
 * state region, `quads` the arena. */
GOS_HD void gos_run_app(gos_boot *bs, gos_app *apps, uint32_t s, const uint8_t *pool,
                        float *state, gos_quad *quads, const gos_input *in)
{
    gos_app *a = &apps[s];
    if (a->status != GOS_APP_RUNNING) {
        a->quad_count = 0;
        return;
    }
    gos_quad *qs = quads + a->quad_off;
    if (a->type == GOS_TYPE_SYSTEM) {
        uint32_t n = 0;
        if (a->sys_kind == GOS_SYS_COMPOSITOR) n = gos_sys_compositor(bs, qs, a->quad_cap);
        else if (a->sys_kind == GOS_SYS_DOCK) n = gos_sys_dock(bs, apps, qs, a->quad_cap);
        else if (a->sys_kind == GOS_SYS_MENUBAR) n = gos_sys_menubar(bs, apps, qs, a->quad_cap);
        else n = gos_sys_chrome(bs, apps, qs, a->quad_cap);
        a->quad_count = n;
        return;
    }
    gos_vm_env env;
    env.frame = bs->frame;
    env.mouse_x = in->mouse_x - (float)a->win_x;
    env.mouse_y = in->mouse_y - (float)a->win_y;
    env.buttons = in->buttons;
    env.key = in->key;
    env.win_w = (float)GOS_WIN_W;
    env.win_h = (float)GOS_WIN_H;
    uint32_t used = 0, emitted = 0;
    int rc = gos_vm_run(pool + a->code_off, a->code_size, a->entry, a->thread_count, state,
                        a->state_size / 4u, qs, a->quad_cap, &env, bs->budget, &used, &emitted);
    a->last_instr = used;
    a->quad_count = emitted;
    if (rc == GOS_VM_PREEMPTED) {
        a->preempt_count++;
    } else if (rc != GOS_VM_OK) {
        a->status = GOS_APP_FAULTED;
        a->fault_code = (uint32_t)rc;
        a->fault_frame = bs->frame;
        a->quad_count = 0;
    }
}

#endif
