/* gpuos.h - the GPU-native runtime: the .gpuapp format and its assembler,
 * and a runtime in which the device boots itself (phases 1-5), discovers
 * and loads .gpuapp programs through a CPU I/O service thread, and runs
 * every app every frame in one persistent megakernel that draws a desktop
 * into an RGBA framebuffer. The same phases run on CPU threads when there
 * is no GPU, with pixel-identical frames. See docs/gpuos.md and
 * docs/gpuapp.md. */
#ifndef ELOHIM_GPUOS_H
#define ELOHIM_GPUOS_H

#include "elohim/backend.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- .gpuapp files ------------------------------------------------------ */

/* The fields of a .gpuapp v1 header (docs/gpuapp.md). */
typedef struct {
    uint16_t version;
    uint32_t flags;
    uint32_t code_offset;    /* bytes from the file start */
    uint32_t code_size;      /* instructions (8 bytes each) */
    uint32_t state_size;     /* bytes, <= 1 MiB */
    uint32_t vertex_budget;  /* <= 65536; a quad uses 4 */
    uint32_t thread_count;   /* VM lanes, 1..64 */
    uint32_t entry_point;    /* instruction index, < code_size */
    char name[24];           /* NUL-terminated */
} elo_gpuapp_info;

/* Validates `size` bytes of a .gpuapp file exactly as the runtime does.
 * Returns ELO_OK and fills *info, or ELO_CORRUPT with elo_errmsg() naming
 * the field and byte offset. */
int elo_gpuapp_parse(const uint8_t *data, size_t size, elo_gpuapp_info *info);

/* Static text for a rejection reason code (as in elo_gpuos_reject). */
const char *elo_gpuapp_reason(int reason);

/* Writes one instruction's disassembly ("addi r1, r2, 1.5") into buf. */
void elo_gpuapp_disasm(const uint8_t insn[8], char *buf, size_t cap);

/* Assembles .gasm source text (`len` bytes; `filename` for messages) into a
 * .gpuapp image. Returns ELO_OK with *out (free with elo_free) and
 * *out_len, or ELO_BADINPUT with elo_errmsg() "FILE:LINE: message". */
int elo_gasm_assemble(const char *src, size_t len, const char *filename, uint8_t **out,
                      size_t *out_len);

/* ---- the runtime -------------------------------------------------------- */

typedef struct elo_gpuos elo_gpuos;

typedef struct {
    const char *const *app_dirs;  /* registered app directories (may not exist) */
    int app_dir_count;
    uint32_t slots;               /* app table size; 0: 64. 4..4096 */
    uint32_t load_max;            /* apps loaded at boot at most; 0: all */
    uint32_t budget;              /* VM instructions per app and frame; 0: 100000 */
    elo_backend *backend;         /* CPU or CUDA; NULL: the CPU */
} elo_gpuos_config;

/* One frame's input events (screen pixels). */
typedef struct {
    float mouse_x, mouse_y;
    uint32_t buttons;             /* bit 0: primary button down */
    uint32_t key;
} elo_gpuos_input;

typedef struct {
    const char *device;           /* "cpu" or "cuda" */
    uint32_t slots;
    uint32_t app_count, system_app_count;
    uint32_t index_count;         /* entries in the filesystem index */
    uint32_t discovered_count, loaded_count, error_count;
    uint32_t no_slot_count;       /* valid apps left out for want of a slot */
    uint32_t boot_frames;
    uint32_t frame;               /* frames drawn so far (incl. the boot frame) */
    int32_t focused_slot;
    uint32_t fault_count, preempt_total;
    uint32_t io_requests;
    double cpu_setup_us;          /* directory walk and buffers */
    double device_init_us;        /* device context creation (CUDA) */
    double phase_us[5];           /* phases 1..5 */
    double boot_us;               /* first boot launch to boot complete */
    double last_frames_us;        /* wall time of the last run_frames call */
    uint32_t last_frames;
    double frames_kernel_us;      /* device time of those frames (no readback) */
    double io_cpu_us;             /* CPU time of the I/O thread so far */
    double io_wall_us;            /* its lifetime so far */
} elo_gpuos_stats;

typedef struct {
    uint32_t slot;
    char name[24];
    const char *type;             /* "system" or "user" */
    const char *status;           /* "running" or "faulted" */
    uint32_t preempt_count;
    uint32_t fault_code;          /* 0 or the VM fault */
    uint32_t quad_count;          /* quads drawn in the last frame */
    uint32_t last_instr;          /* VM instructions in the last frame */
    const char *path;             /* the .gpuapp file (NULL for system apps) */
} elo_gpuos_app;

typedef struct {
    const char *path;
    int reason;                   /* see elo_gpuapp_reason() */
} elo_gpuos_reject;

/* Boots: walks the app directories, starts the I/O service thread, runs
 * phases 1-5 on the backend (the boot frame is frame 0). A missing app
 * directory boots with no user apps. Returns a new runtime (free with
 * elo_gpuos_free) or a negative status when the runtime itself fails; bad
 * apps never fail a boot, they are counted. */
int elo_gpuos_boot(const elo_gpuos_config *cfg, elo_gpuos **out);
void elo_gpuos_free(elo_gpuos *os);

/* Reads an input-event script (JSON Lines; `name` for messages) into
 * `frames` per-frame event sets, `out[0]` being the first frame run. Each
 * non-blank line is an object {"frame": F, "mouse": [x, y], "buttons": B,
 * "key": K}: F (0 <= F < frames, increasing line to line) is required, the
 * rest optional. The mouse stays where a line puts it until the next one
 * moves it; buttons (bit 0: primary pressed) and key (a code point) are
 * events of frame F only. Unknown fields are ignored. Errors are
 * ELO_BADINPUT with elo_errmsg() "NAME:LINE: message". */
int elo_gpuos_parse_events(const char *name, const char *text, size_t len, uint32_t frames,
                           elo_gpuos_input *out);

/* Runs `count` megakernel frames; `inputs` holds one event set per frame
 * (NULL: none). */
int elo_gpuos_run_frames(elo_gpuos *os, uint32_t count, const elo_gpuos_input *inputs);

/* Asks a running (or the next) elo_gpuos_run_frames to return after the
 * frame in progress; safe from another thread or a signal handler. The
 * request is consumed when run_frames returns. */
void elo_gpuos_stop(elo_gpuos *os);

void elo_gpuos_get_stats(elo_gpuos *os, elo_gpuos_stats *st);
/* Installed apps in slot order; returns how many. Pointers inside stay
 * valid until the next call on `os`. */
int elo_gpuos_apps(elo_gpuos *os, elo_gpuos_app *apps, int max);
/* Discovered apps that were rejected (bad, unreadable, no slot). */
int elo_gpuos_rejects(elo_gpuos *os, elo_gpuos_reject *rej, int max);
/* The last frame (RGBA8, row-major, width x height); valid until the next
 * call on `os`. */
const uint8_t *elo_gpuos_framebuffer(elo_gpuos *os, int *width, int *height);
uint64_t elo_gpuos_frame_hash(elo_gpuos *os);
/* Writes the last frame as a PNG file. */
int elo_gpuos_write_png(elo_gpuos *os, const char *path);
/* Writes RGBA8 pixels as a PNG (libpng). */
int elo_png_write_rgba(const char *path, const uint8_t *rgba, int width, int height);

/* Copies the last frame's resolved draw list, 6 int32 per draw (x0, y0,
 * x1, y1, colour, glyph), up to `max` draws; returns the draw count. The
 * CPU path only (ELO_UNSUPPORTED on CUDA); used by the benchmark's peer. */
int elo_gpuos_draw_list(elo_gpuos *os, int32_t *out, uint32_t max);

/* Filesystem index alone (for the benchmark): entries under the dirs. */
int elo_gpuos_index_count(const char *const *dirs, int dir_count, uint32_t *count);

#ifdef __cplusplus
}
#endif
#endif
