/* embed-device.cuh - device helpers shared by the encoder's kernels
 * (embed-cuda.cu) and its Hopper dense layer (embed-sm90.cu): 16-bit
 * pairs and GELU (erf form). */
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

/* Two 16-bit values in one register, `lo` in the low half. */
template <typename CT> __device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <> __device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi)
{
    __half2 v = __floats2half2_rn(lo, hi);
    return *(uint32_t *)&v;
}
template <> __device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi)
{
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *(uint32_t *)&v;
}

/* GELU(v) = v * Phi(v), with erff: for f32 results. */
__device__ __forceinline__ float gelu_erf(float v)
{
    return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
}

/* The hardware 2^x and 1/x (MUFU), flushing subnormals: without .ftz each
 * comes wrapped in rescaling code for subnormal operands, which GELU never
 * produces where it matters (1/x of a value >= 1; 2^x underflowing to 0). */
__device__ __forceinline__ float ex2_ftz(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}
__device__ __forceinline__ float rcp_ftz(float x)
{
    float y;
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

/* GELU for a value rounded to 16 bits right after: erf by Abramowitz and
 * Stegun 7.1.26 (absolute error <= 1.5e-7, against the 2^-11 relative
 * step of f16 and 2^-8 of bf16 on the result), with the hardware 2^x and
 * 1/x (2 ulp): ~14 instructions where erff takes ~30 (an f32 result keeps
 * erff). */
__device__ __forceinline__ float gelu_erf16(float v)
{
    const float h = 0.5f * v, z = fabsf(v) * 0.70710678118654752f;
    const float t = rcp_ftz(fmaf(0.3275911f, z, 1.0f));
    const float p = ((((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t -
                      0.284496736f) * t + 0.254829592f) * t;
    /* erf(|v| / sqrt 2) = 1 - p exp(-z^2) */
    const float e = fmaf(-p, ex2_ftz(z * z * -1.44269504088896341f), 1.0f);
    return fmaf(copysignf(e, v), h, h);
}
