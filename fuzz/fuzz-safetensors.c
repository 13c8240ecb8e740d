/* fuzz-safetensors.c - libFuzzer harness for the safetensors reader: any
 * bytes are parsed; on success every tensor must lie inside the data and
 * match its shape, and every byte of it is read. */
#include "embed/embed-impl.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A private copy, so reads past the end are caught by ASan. */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    elo__safetensors st;
    if (elo__safetensors_parse("fuzz", copy, size, &st) == ELO_OK) {
        unsigned sum = 0;
        for (int i = 0; i < st.count; i++) {
            const elo__st_tensor *t = &st.tensors[i];
            if (t->data < copy || t->data + (t->end - t->begin) > copy + size)
                __builtin_trap();
            for (uint64_t k = 0; k < t->end - t->begin; k++)
                sum += t->data[k];
            if (elo__safetensors_find(&st, t->name) == NULL)
                __builtin_trap();
        }
        (void)sum;
        elo__safetensors_deinit(&st);
    }
    free(copy);
    return 0;
}
