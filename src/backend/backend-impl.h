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

/* gemm-short.c: f32 C = A B (+ C) for A of at most ELO_GEMM_SHORT_MAX_M
 * rows, on AVX-512 CPUs (B packed in small chunks as it streams in, not
 * whole panels a call as OpenBLAS does). _ok says whether g
 * qualifies (f32, no transposes, alpha 1, beta 0 or 1, a single GEMM, the
 * CPU has AVX-512F and $ELOHIM_SHORT_GEMM is not 0); the columns come in
 * _blocks blocks, and _run computes blocks first .. first + count - 1 (for
 * every row), so threads can share them. */
#define ELO_GEMM_SHORT_MAX_M 64
int elo__gemm_short_ok(const elo_gemm *g);
int elo__gemm_short_blocks(const elo_gemm *g);
void elo__gemm_short_run(const elo_gemm *g, int first, int count);
#endif
