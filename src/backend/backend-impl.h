/* backend-impl.h - private to src/backend: the CUDA side's entry points,
 * defined in backend-cuda.cu and absent (weak, NULL) without CUDA. */
#ifndef ELOHIM_BACKEND_IMPL_H
#define ELOHIM_BACKEND_IMPL_H

#include "elohim/backend.h"
#include "elohim/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Creates the CUDA backend context for GPU 0 and loads cuBLAS. */
ELO_CUDA_ENTRY int elo__cuda_backend_init(elo_backend *b);
ELO_CUDA_ENTRY int elo__cuda_probe(elo_gpu_info *info);
/* Fills `out` with the stream of a CUDA backend. */
ELO_CUDA_ENTRY void *elo__cuda_backend_stream(elo_backend *b);

#ifdef __cplusplus
}
#endif
#endif
