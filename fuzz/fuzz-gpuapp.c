/* fuzz-gpuapp.c - the .gpuapp loader: header validation (the same check
 * the device runs), the disassembler, and, for files that validate, one
 * VM frame under a small instruction budget with confinement checked:
 * the app may only touch its own state and quad range. */
#include "elohim/core.h"
#include "elohim/gpuos.h"
#include "gpuos/gpuos-shared.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    elo_gpuapp_info info;
    if (elo_gpuapp_parse(data, size, &info) != ELO_OK)
        return 0;
    const uint8_t *code = data + info.code_offset;
    char line[160];
    for (uint32_t i = 0; i < info.code_size && i < 256; i++)
        elo_gpuapp_disasm(code + (size_t)i * 8, line, sizeof line);
    /* guard words around the state and the quads catch any escape */
    uint32_t words = info.state_size / 4u;
    float *state = calloc((size_t)words + 2, sizeof(float));
    uint32_t cap = info.vertex_budget / 4u;
    if (cap > 64)
        cap = 64;
    gos_quad *quads = calloc((size_t)cap + 1, sizeof(gos_quad));
    if (!state || !quads)
        abort();
    const float guard = 12345.0f;
    state[0] = guard;
    state[words + 1] = guard;
    quads[cap].x = guard;
    gos_vm_env env = {.frame = 3, .win_w = 300, .win_h = 200};
    uint32_t used = 0, emitted = 0;
    int rc = gos_vm_run(code, info.code_size, info.entry_point, info.thread_count, state + 1,
                        words, quads, cap, &env, 20000, &used, &emitted);
    if (rc < GOS_VM_OK || rc > GOS_VM_FAULT_PC || used > 20000 || emitted > cap)
        abort();
    if (state[0] != guard || state[words + 1] != guard || quads[cap].x != guard)
        abort();
    /* resolve and shade what was emitted */
    gos_layer l = {0, emitted, 0, 10, 20, 10, 20, 310, 220};
    for (uint32_t i = 0; i < emitted; i++) {
        gos_draw d = gos_resolve_quad(&quads[i], &l);
        if (d.x1 > d.x0 && (d.x0 < 10 || d.x1 > 310 || d.y0 < 20 || d.y1 > 220))
            abort();
        (void)gos_shade(&d, d.x0, d.y0, 0xff000000u);
    }
    free(state);
    free(quads);
    return 0;
}
