/* fuzz-gasm.c - the .gasm assembler on arbitrary text: it must either
 * report an error or produce an image that the loader accepts. */
#include "elohim/core.h"
#include "elohim/gpuos.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *img = NULL;
    size_t len = 0;
    int rc = elo_gasm_assemble((const char *)data, size, "fuzz.gasm", &img, &len);
    if (rc == ELO_OK) {
        elo_gpuapp_info info;
        if (!img || elo_gpuapp_parse(img, len, &info) != ELO_OK)
            abort();
        elo_free(img);
    } else if (img || rc != ELO_BADINPUT) {
        if (rc != ELO_NOMEM)
            abort();
    }
    return 0;
}
