/* cuda-try.h - for `*-cuda.cu` files: CUDA_TRY(call) returns ELO_DEVICE
 * with the CUDA error's text (and the call) in elo_errmsg() when `call`
 * fails. Nothing aborts. */
#ifndef ELOHIM_CUDA_TRY_H
#define ELOHIM_CUDA_TRY_H

#include "elohim/core.h"

#include <cuda_runtime.h>

#define CUDA_TRY(call)                                                      \
    do {                                                                    \
        cudaError_t err_ = (call);                                          \
        if (err_ != cudaSuccess)                                            \
            return elo_seterr(ELO_DEVICE, "%s: %s", #call,                  \
                              cudaGetErrorString(err_));                    \
    } while (0)

#endif
