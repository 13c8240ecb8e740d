/* fuzz-events.c - `elohim boot --events` scripts on arbitrary bytes: the
 * first byte picks the frame count, the rest is the script. It must either
 * fail with ELO_BADINPUT or give frames whose buttons and keys are in range
 * and whose mouse coordinates are finite. */
#include "elohim/core.h"
#include "elohim/gpuos.h"

#include <math.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint32_t frames = data[0];
    elo_gpuos_input in[256];
    int rc = elo_gpuos_parse_events("fuzz", (const char *)data + 1, size - 1, frames, in);
    if (rc == ELO_OK) {
        for (uint32_t f = 0; f < frames; f++)
            if (in[f].buttons > 255 || in[f].key > 0x10ffff || !isfinite(in[f].mouse_x) ||
                !isfinite(in[f].mouse_y))
                abort();
    } else if (rc != ELO_BADINPUT && rc != ELO_NOMEM) {
        abort();
    }
    return 0;
}
