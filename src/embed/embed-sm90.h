/* embed-sm90.h - the encoder's Hopper kernels (embed-sm90.cu, built for
 * sm_90a only): the feed-forward's first dense layer with its bias and GELU
 * applied as the tile is stored, so the 4-byte-a-value GELU pass over the
 * [tokens x intermediate] activations is gone. Entry points are weak (NULL
 * in a build without CUDA). */
#ifndef ELO_EMBED_SM90_H
#define ELO_EMBED_SM90_H

#include "elohim/backend.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when elo__sm90_ff_gelu runs on the current device for a layer of
 * `k` inputs and `n` outputs in `type` (ELO_DTYPE_F16 or BF16): a GPU of
 * compute capability 9.0 running our sm_90a code, k in {384, 768}, n a
 * multiple of the slice width; the kernel is then made ready for this
 * device (call it on each device before elo__sm90_ff_gelu). Else 0: the
 * caller keeps cuBLAS + pass. */
ELO_CUDA_ENTRY int elo__sm90_ff_ok(elo_dtype type, int n, int k);

/* out[m][n] = GELU(a[m][:] . wt[n][:] + bias[n]) in `type`, on `stream`:
 * a is [m][k] and wt is the weights transposed, [n][k], both row-major in
 * `type` with 16-byte aligned rows; out is [m][n]. With `pdl` the kernel
 * is a programmatic dependent launch: it loads its weights while the
 * kernel ahead of it finishes and waits for that kernel before reading a.
 * Returns ELO_OK or an error (elo_seterr). */
ELO_CUDA_ENTRY int elo__sm90_ff_gelu(void *stream, int pdl, elo_dtype type, const void *a,
                                     const void *wt, const float *bias, void *out, int m, int n,
                                     int k);

/* A self-check on fresh inputs: random a, wt and bias from `seed`, the
 * kernel's result against a double-precision product of the same 16-bit
 * values, GELU by erf; *max_err is the largest absolute error over
 * m x n outputs, *max_ref the largest |reference| (the scale). */
ELO_CUDA_ENTRY int elo__sm90_ff_check(elo_dtype type, int m, int n, int k, uint64_t seed,
                                      double *max_err, double *max_ref);

#ifdef __cplusplus
}
#endif

#endif
