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

/* blas.c: OpenBLAS opened on first use (see there for why). */
int elo__blas_load(void);
/* Row-major f32 GEMM, C = alpha op(A) op(B) + beta C; an error when no
 * OpenBLAS can be loaded. */
int elo__blas_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                    int lda, const float *b, int ldb, float beta, float *c, int ldc);
/* "OpenBLAS <config>; kernels <core>", or why it is unavailable. */
void elo__blas_describe(char *out, size_t cap);
#endif
