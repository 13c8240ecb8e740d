/* vstore-cuda.h - the CUDA side of the vector store, as the store calls it
 * (declared identically in vstore-impl.h). Defined in vstore-cuda.cu;
 * absent (NULL) in a build without CUDA. */
#ifndef ELOHIM_VSTORE_CUDA_H
#define ELOHIM_VSTORE_CUDA_H

#include "elohim/backend.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct elo__vstore_gpu elo__vstore_gpu;   /* rows resident in GPU memory */

/* metric: 0 cosine, 1 inner product, 2 squared L2. Rows F32 or F16. */
ELO_CUDA_ENTRY int elo__vstore_cuda_load(elo_backend *b, const void *rows, elo_dtype dtype,
        int dim, int metric, size_t row_count, size_t capacity, const int64_t *ids,
        const uint8_t *live, elo__vstore_gpu **out);
ELO_CUDA_ENTRY int elo__vstore_cuda_append(elo__vstore_gpu *g, const void *rows,
        const int64_t *ids, size_t count);
ELO_CUDA_ENTRY int elo__vstore_cuda_delete(elo__vstore_gpu *g, const size_t *row_index,
        size_t count);
ELO_CUDA_ENTRY int elo__vstore_cuda_search(elo__vstore_gpu *g, const float *queries,
        int query_count, int k, int64_t *out_ids, float *out_scores);
ELO_CUDA_ENTRY void elo__vstore_cuda_free(elo__vstore_gpu *g);

/* Test hook: forces the search path. 0 automatic, 1 exact scan only,
 * 2 tensor-core batch path wherever it applies. */
ELO_CUDA_ENTRY void elo__vstore_cuda_force_path(elo__vstore_gpu *g, int path);

#ifdef __cplusplus
}
#endif
#endif
