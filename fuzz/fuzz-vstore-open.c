/* fuzz-vstore-open.c - libFuzzer harness for the store opener and the
 * input parsers: any bytes given to elo_vstore_open_buffer() must either
 * open (then a search over them must not crash) or fail cleanly; the same
 * bytes go through the .npy/.fvecs/.jsonl vector and id parsers. */
#include "elohim/vstore.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The opener reads the file image in place; give it an aligned copy as
     * mmap would. */
    uint8_t *copy = aligned_alloc(64, (size + 64) & ~(size_t)63);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    elo_vstore *vs;
    if (elo_vstore_open_buffer(copy, size, &vs) == ELO_OK) {
        elo_vstore_info in;
        elo_vstore_get_info(vs, &in);
        if (in.row_count <= 4096) {
            float *q = calloc((size_t)in.dim, sizeof *q);
            int64_t ids[8];
            float scores[8];
            if (q) {
                q[0] = 1;
                elo_vstore_search(vs, NULL, q, 1, in.dim, 8, ids, scores);
            }
            free(q);
        }
        elo_vstore_free(vs);
    }
    free(copy);

    static const char *formats[] = {"npy", "fvecs", "jsonl"};
    for (size_t i = 0; i < 3; i++) {
        float *v;
        size_t count;
        int dim;
        if (elo_vstore_parse_vectors(formats[i], "fuzz", data, size, &v, &count, &dim) == ELO_OK)
            elo_free(v);
        int64_t *ids;
        if (elo_vstore_parse_ids(formats[i], "fuzz", data, size, &ids, &count) == ELO_OK)
            elo_free(ids);
    }
    return 0;
}
