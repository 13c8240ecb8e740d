/* embed-sm90.cu - the feed-forward's first dense layer for Hopper (sm_90a),
 * out = GELU(a W + bias), with the bias and GELU applied to each tile as it
 * leaves the tensor cores. cuBLAS cannot fuse an erf GELU (cuBLASLt's
 * epilogue is the tanh form), and as its own pass GELU reads and writes
 * the whole [tokens x intermediate] activation after the GEMM wrote it:
 * 61 + 56 us a layer at 32 x 1024 tokens on an H200.
 *
 * DESIGN. K (the hidden size) is small, so each block keeps a slice of BN
 * output columns of W, all K of it, resident in shared memory for its whole
 * life, and streams 64-row tiles of a through a ring of [64][64] stages:
 * - a producer thread loads by TMA (the weights once, then the stages,
 *   each stage's mbarrier counting its bytes), reloading a stage once its
 *   consumer has released it;
 * - two consumer warpgroups take alternate tiles and issue their wgmma
 *   (m64nBNk16, both operands from shared memory, 128-byte swizzle, f32
 *   accumulators in registers) in tile order, so one at a time has the
 *   tensor cores and the other runs its epilogue meanwhile: GELU, the
 *   16-bit tile into shared memory, one TMA store.
 * The grid is (N / BN) slices x as many blocks per slice as the SMs allow;
 * the blocks of a slice walk the tiles with the same stride, so the slices
 * read each tile of a at about the same time and DRAM sees it once (the
 * rest from L2). Weights are passed transposed ([n][k]): both operands are
 * then K-major, the layout wgmma reads without transposing.
 *
 * Built for sm_90a only (wgmma and TMA need the arch-specific target);
 * elo__sm90_ff_ok checks at run time that the device is 9.0 and that the
 * code loaded for it is ours. */
#include "embed-sm90.h"
#include "embed-device.cuh"

#include "elohim/core.h"

#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TILE_M 64        /* rows of a consumer tile */
#define STAGE_BYTES (TILE_M * 128) /* 64 rows x 64 16-bit values */

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define ELO_SM90 1
#endif

/* ---- PTX wrappers ------------------------------------------------------------ */

__device__ __forceinline__ uint32_t smem_u32(const void *p)
{
    return (uint32_t)__cvta_generic_to_shared(p);
}

#ifdef ELO_SM90
__device__ __forceinline__ void mbar_init(uint64_t *bar, uint32_t count)
{
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_u32(bar)), "r"(count));
}

__device__ __forceinline__ void mbar_expect_tx(uint64_t *bar, uint32_t bytes)
{
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_u32(bar)),
                 "r"(bytes)
                 : "memory");
}

__device__ __forceinline__ void mbar_arrive(uint64_t *bar)
{
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_u32(bar)) : "memory");
}

/* Waits until the phase of parity `parity` has completed. The thread is
 * suspended in the wait (woken when the phase completes, or after the
 * hint's 20 us) instead of spinning: spinning warps took ~20 % of the
 * issue slots the GELU epilogue needs. */
__device__ __forceinline__ void mbar_wait(uint64_t *bar, uint32_t parity)
{
    uint32_t done = 0, a = smem_u32(bar);
    while (!done)
        asm volatile("{\n.reg .pred p;\n"
                     "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2, %3;\n"
                     "selp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(done)
                     : "r"(a), "r"(parity), "r"(20000)
                     : "memory");
}

/* A 2-D TMA load of one box at (x = inner, y = outer) into dst, completing
 * on bar's transaction count. */
__device__ __forceinline__ void tma_load(void *dst, const CUtensorMap *map, int x, int y,
                                         uint64_t *bar)
{
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
                 " [%0], [%1, {%2, %3}], [%4];" ::"r"(smem_u32(dst)),
                 "l"((uint64_t)map), "r"(x), "r"(y), "r"(smem_u32(bar))
                 : "memory");
}

/* A 2-D TMA store of one box from src to (x = inner, y = outer); rows past
 * the tensor's end are not written. Completion: bulk_wait_read/bulk_wait. */
__device__ __forceinline__ void tma_store(const CUtensorMap *map, const void *src, int x, int y)
{
    asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%1, %2}], [%3];" ::"l"(
                     (uint64_t)map),
                 "r"(x), "r"(y), "r"(smem_u32(src))
                 : "memory");
}
__device__ __forceinline__ void bulk_commit() { asm volatile("cp.async.bulk.commit_group;" ::: "memory"); }
/* this thread's bulk stores have read their shared memory / are done */
__device__ __forceinline__ void bulk_wait_read()
{
    asm volatile("cp.async.bulk.wait_group.read 0;" ::: "memory");
}
__device__ __forceinline__ void bulk_wait() { asm volatile("cp.async.bulk.wait_group 0;" ::: "memory"); }

/* A barrier for the 128 threads of one warpgroup (ids 1.., 0 is __syncthreads). */
__device__ __forceinline__ void wg_sync(int id)
{
    asm volatile("bar.sync %0, 128;" ::"r"(id) : "memory");
}

/* A shared-memory matrix descriptor: K-major, 128-byte swizzle, 8-row
 * groups 1024 bytes apart (the layout TMA writes with SWIZZLE_128B). The
 * start may step by 32 bytes (16 values of K) inside a swizzle atom. */
__device__ __forceinline__ uint64_t sdesc(const void *p)
{
    return (uint64_t)((smem_u32(p) & 0x3FFFF) >> 4) | ((uint64_t)1 << 16) |
           ((uint64_t)(1024 >> 4) << 32) | ((uint64_t)1 << 62);
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit()
{
    asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
}
template <int N> __device__ __forceinline__ void wgmma_wait()
{
    asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory");
}

/* Keeps the compiler from moving accumulator reads or writes across the
 * asynchronous products (they are registers it does not see change). */
template <int R> __device__ __forceinline__ void fence_regs(float *d)
{
#pragma unroll
    for (int i = 0; i < R; i++)
        asm volatile("" : "+f"(d[i])::"memory");
}

/* d[64 x N] += A[64 x 16] B[16 x N], A and B by descriptor: one asm
 * statement per width (written out by a few lines of Python: the
 * accumulators are its operands), the input type's PTX name filled in. */
template <typename T> __device__ __forceinline__ void wgmma_64(float *d, uint64_t a, uint64_t b);
template <typename T> __device__ __forceinline__ void wgmma_192(float *d, uint64_t a, uint64_t b);
#define WGMMA_64(TY)                                                                    \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"                           \
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32." TY "." TY " "            \
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, "   \
                 "%15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, "    \
                 "%28, %29, %30, %31}, %32, %33, p, 1, 1, 0, 0;\n}\n"                   \
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]),          \
                   "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]),          \
                   "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]),     \
                   "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]),     \
                   "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),     \
                   "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]),     \
                   "+f"(d[30]), "+f"(d[31])                                             \
                 : "l"(a), "l"(b), "r"(1))

#define WGMMA_192(TY)                                                                   \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %98, 0;\n"                           \
                 "wgmma.mma_async.sync.aligned.m64n192k16.f32." TY "." TY " "           \
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, "   \
                 "%15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, "    \
                 "%28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, "    \
                 "%41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, "    \
                 "%54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, "    \
                 "%67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "    \
                 "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, "    \
                 "%93, %94, %95}, %96, %97, p, 1, 1, 0, 0;\n}\n"                        \
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]),          \
                   "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]),          \
                   "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]),     \
                   "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]),     \
                   "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),     \
                   "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]),     \
                   "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]),     \
                   "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),     \
                   "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]),     \
                   "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]),     \
                   "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]),     \
                   "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]),     \
                   "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]),     \
                   "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]),     \
                   "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]),     \
                   "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]),     \
                   "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]),     \
                   "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]),     \
                   "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]),     \
                   "+f"(d[95])                                                          \
                 : "l"(a), "l"(b), "r"(1))

template <> __device__ __forceinline__ void wgmma_64<__half>(float *d, uint64_t a, uint64_t b)
{
    WGMMA_64("f16");
}
template <> __device__ __forceinline__ void wgmma_64<__nv_bfloat16>(float *d, uint64_t a, uint64_t b)
{
    WGMMA_64("bf16");
}
template <> __device__ __forceinline__ void wgmma_192<__half>(float *d, uint64_t a, uint64_t b)
{
    WGMMA_192("f16");
}
template <> __device__ __forceinline__ void wgmma_192<__nv_bfloat16>(float *d, uint64_t a, uint64_t b)
{
    WGMMA_192("bf16");
}

template <typename T, int BN>
__device__ __forceinline__ void wgmma_n(float *d, uint64_t a, uint64_t b)
{
    static_assert(BN == 64 || BN == 192, "widths built");
    if constexpr (BN == 64)
        wgmma_64<T>(d, a, b);
    else
        wgmma_192<T>(d, a, b);
}
#endif /* ELO_SM90 */

/* ---- the kernel ---------------------------------------------------------------- */

/* Shared memory, 1024-byte aligned (the 128-byte swizzle repeats every 8
 * rows of 128 bytes): KC chunks of the weight slice ([BN][64] each), ST
 * stages of a ([64][64] each), one output tile ([BN / 64][64][64]), the
 * slice's bias, barriers. */
template <int BN, int KC, int ST, int NC> constexpr size_t ff_smem()
{
    return 1024 + (size_t)KC * BN * 128 + (size_t)ST * STAGE_BYTES + (size_t)TILE_M * BN * 2 +
           BN * 4 + (2 * ST + 2 + NC) * 8;
}

/* Warpgroup 0 is the producer: one thread issues every TMA load (the
 * weight slice once, then a's stages round the ring, each reloaded once
 * released). Warpgroups 1..NC are consumers: they take the block's tiles
 * in turn (tile j to consumer j % NC) and issue their products in that
 * order (consumer w starts tile j once j - 1's products are issued:
 * turn[w]), so one at a time feeds the tensor cores while the others run
 * their epilogues. A tile's accumulators start from the bias; its
 * epilogue applies GELU and writes the 16-bit result into the output tile
 * in shared memory (laid out as TMA stores a box: [64][64], 128-byte
 * swizzle), and one thread stores the boxes by TMA. The consumers share
 * that one tile, in tile order (tfree: tile j - 1's store has read it),
 * which leaves room for a deeper ring; the storing thread waits for the
 * read, which costs nothing: its warpgroup's next products wait for the
 * other's anyway.
 * Tried on an H200 at 32 x 1024 tokens (a layer, FF1 + GELU; cuBLAS and
 * the pass take 61 + 56 us): this form 115-119 us, 7 stages, and 106 us
 * since GELU takes one MUFU op instead of two (embed-device.cuh: the
 * MUFU pipe bounded the epilogue; then three consumers took 113 us
 * against 116 under ncu and the same sentences/s: the tensor pipe is 52 %
 * busy either way, fed from shared memory at the same rate); an output
 * tile each, 4 stages, 109-145 us from one machine to the next (too
 * shallow a ring to cover the loads' latency); the products alone with
 * no epilogue 68 us; GELU in epilogue warpgroups of their own, fed through
 * shared memory, 129-136 us (a warp or two a scheduler on dependent
 * chains could not keep up); the output through the tile's last stages,
 * released after the store, 121 us; 4-byte fragment stores straight to
 * global memory 148 us (L1 and L2 at 70-80 % of their request rate). */
template <typename T, int BN, int KC, int ST, int NC>
__global__ void __launch_bounds__(128 * (1 + NC), 1)
    k_ff_gelu(const __grid_constant__ CUtensorMap ta, const __grid_constant__ CUtensorMap tw,
              const __grid_constant__ CUtensorMap to, const float *__restrict__ bias, int M,
              int per)
{
    static_assert(BN % 64 == 0, "tile shape");
#ifdef ELO_SM90
    extern __shared__ unsigned char smem_raw[];
    unsigned char *sm = smem_raw + ((1024 - (smem_u32(smem_raw) & 1023)) & 1023);
    unsigned char *sw = sm;                         /* weights: KC x [BN][64] */
    unsigned char *sa = sw + (size_t)KC * BN * 128; /* ring: ST x [64][64] */
    unsigned char *tile = sa + (size_t)ST * STAGE_BYTES; /* [BN / 64][64][64] */
    float *sb = (float *)(tile + (size_t)TILE_M * BN * 2);
    uint64_t *full = (uint64_t *)(sb + BN), *empty = full + ST, *wbar = empty + ST,
             *turn = wbar + 1, *tfree = turn + NC;

    const int slice = blockIdx.x / per, first = blockIdx.x % per, n0 = slice * BN;
    const int tiles = (M + TILE_M - 1) / TILE_M;
    const int wg = threadIdx.x / 128, tid = threadIdx.x & 127;
    if (threadIdx.x == 0) {
        for (int s = 0; s < ST; s++) {
            mbar_init(&full[s], 1);
            mbar_init(&empty[s], 1);
        }
        mbar_init(wbar, 1);
        for (int w = 0; w < NC; w++)
            mbar_init(&turn[w], 1);
        mbar_init(tfree, 1);
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
        asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
    }
    for (int i = threadIdx.x; i < BN; i += blockDim.x)
        sb[i] = bias[n0 + i];
    __syncthreads();

    if (wg == 0) {
        if (threadIdx.x == 0) {
            mbar_expect_tx(wbar, (uint32_t)(KC * BN * 128));
            for (int c = 0; c < KC; c++)
                tma_load(sw + (size_t)c * BN * 128, &tw, c * 64, n0, wbar);
            /* a is written by the kernel ahead (programmatic launch) */
            asm volatile("griddepcontrol.wait;" ::: "memory");
            int it = 0;
            for (int t = first; t < tiles; t += per)
                for (int c = 0; c < KC; c++, it++) {
                    const int s = it % ST;
                    mbar_wait(&empty[s], ((it / ST) & 1) ^ 1);
                    mbar_expect_tx(&full[s], STAGE_BYTES);
                    tma_load(sa + (size_t)s * STAGE_BYTES, &ta, c * 64, t * TILE_M, &full[s]);
                }
        }
        return;
    }

    const int cw = wg - 1, lane = tid & 31;
    /* this thread's accumulators: rows row and row + 8 of the tile, columns
     * 8q + col + {0, 1} for q < BN / 8 (the wgmma fragment layout) */
    const int row = (tid >> 5) * 16 + (lane >> 2), col = (lane & 3) * 2;
    float d[BN / 2];
    mbar_wait(wbar, 0);
    for (int j = cw, n = 0, t = first + cw * per; t < tiles; j += NC, n++, t += NC * per) {
#pragma unroll
        for (int q = 0; q < BN / 8; q++) {
            const float2 b = *(const float2 *)&sb[8 * q + col];
            d[4 * q] = d[4 * q + 2] = b.x;
            d[4 * q + 1] = d[4 * q + 3] = b.y;
        }
        if (j > 0) /* tile j - 1's products are issued */
            mbar_wait(&turn[cw], (uint32_t)(cw == 0 ? n - 1 : n) & 1);
        const int it0 = j * KC;
        for (int c = 0; c < KC; c++) {
            const int s = (it0 + c) % ST;
            mbar_wait(&full[s], ((it0 + c) / ST) & 1);
            fence_regs<BN / 2>(d);
            wgmma_fence();
            const unsigned char *as = sa + (size_t)s * STAGE_BYTES,
                                *ws = sw + (size_t)c * BN * 128;
#pragma unroll
            for (int kk = 0; kk < 4; kk++)
                wgmma_n<T, BN>(d, sdesc(as + kk * 32), sdesc(ws + kk * 32));
            wgmma_commit();
            if (c == KC - 1 && tid == 0)
                mbar_arrive(&turn[(cw + 1) % NC]);
            if (c > 0) { /* the previous stage's products are done: release it */
                wgmma_wait<1>();
                if (tid == 0)
                    mbar_arrive(&empty[(it0 + c - 1) % ST]);
            }
        }
        wgmma_wait<0>();
        fence_regs<BN / 2>(d);
        if (tid == 0)
            mbar_arrive(&empty[(it0 + KC - 1) % ST]);
        if (j > 0) /* tile j - 1's store has read the output tile */
            mbar_wait(tfree, (uint32_t)(j - 1) & 1);
        /* value (row, 8q + col) goes to box q / 8, row, 16-byte chunk q % 8
         * XOR row % 8: the 8 rows a warp stores hit 8 different chunks */
#pragma unroll
        for (int q = 0; q < BN / 8; q++) {
            unsigned char *p = tile + (q >> 3) * (TILE_M * 128) + row * 128 +
                               (((q & 7) ^ (row & 7)) << 4) + (lane & 3) * 4;
            *(uint32_t *)p = pack2<T>(gelu_erf16(d[4 * q]), gelu_erf16(d[4 * q + 1]));
            *(uint32_t *)(p + 8 * 128) =
                pack2<T>(gelu_erf16(d[4 * q + 2]), gelu_erf16(d[4 * q + 3]));
        }
        asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); /* visible to TMA */
        wg_sync(1 + cw);
        if (tid == 0) {
#pragma unroll
            for (int b = 0; b < BN / 64; b++)
                tma_store(&to, tile + b * (TILE_M * 128), n0 + 64 * b, t * TILE_M);
            bulk_commit();
            /* the warpgroup's next products wait for the other's anyway */
            bulk_wait_read();
            mbar_arrive(tfree);
        }
    }
    if (tid == 0)
        bulk_wait();
#else
    (void)ta, (void)tw, (void)to, (void)bias, (void)M, (void)per;
#endif
}

/* ---- host side ------------------------------------------------------------------ */

#define SMERR(what, e)                                                                   \
    elo_seterr(ELO_DEVICE, "sm90 dense layer: %s: %s", what, cudaGetErrorString(e))

typedef CUresult (*encode_fn)(CUtensorMap *, CUtensorMapDataType, cuuint32_t, void *,
                              const cuuint64_t *, const cuuint64_t *, const cuuint32_t *,
                              const cuuint32_t *, CUtensorMapInterleave, CUtensorMapSwizzle,
                              CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

static encode_fn get_encode(void)
{
    static encode_fn fn;
    static int tried;
    if (!tried) {
        void *p = nullptr;
        cudaDriverEntryPointQueryResult q;
        if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000,
                                             cudaEnableDefault, &q) == cudaSuccess &&
            q == cudaDriverEntryPointSuccess)
            fn = (encode_fn)p;
        cudaGetLastError();
        tried = 1;
    }
    return fn;
}

/* A [rows][k] row-major 16-bit matrix as TMA boxes of 64 values x box_rows. */
static int tensor_map(CUtensorMap *map, elo_dtype type, const void *p, int rows, int k,
                      int box_rows)
{
    encode_fn enc = get_encode();
    if (!enc)
        return elo_seterr(ELO_DEVICE, "sm90 dense layer: cuTensorMapEncodeTiled not found");
    cuuint64_t dims[2] = {(cuuint64_t)k, (cuuint64_t)rows};
    cuuint64_t strides[1] = {(cuuint64_t)k * 2};
    cuuint32_t box[2] = {64, (cuuint32_t)box_rows}, estr[2] = {1, 1};
    CUresult r = enc(map,
                     type == ELO_DTYPE_F16 ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16
                                           : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
                     2, (void *)p, dims, strides, box, estr, CU_TENSOR_MAP_INTERLEAVE_NONE,
                     CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                     CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (r != CUDA_SUCCESS)
        return elo_seterr(ELO_DEVICE, "sm90 dense layer: tensor map (%d rows x %d): error %d",
                          rows, k, (int)r);
    return ELO_OK;
}

/* The configurations built, by K: 384 (MiniLM, BERT-small): 192-column
 * slices (8 of them at N = 1536, 16 blocks each on 132 SMs), 144 KB of
 * weights, a 7-stage ring; 768 (BERT-base): 64 columns, 96 KB, 15 stages. */
#define FF_384 192, 6, 7, 2
#define FF_768 64, 12, 15, 2

static int slice_width(int k) { return k == 384 ? 192 : k == 768 ? 64 : 0; }

/* Lets the kernel have its shared memory on the current device. */
template <typename T, int BN, int KC, int ST, int NC> static cudaError_t ff_prepare(void)
{
    constexpr size_t smem = ff_smem<BN, KC, ST, NC>();
    static_assert(smem <= 232448, "shared memory");
    return cudaFuncSetAttribute(k_ff_gelu<T, BN, KC, ST, NC>,
                                cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
}

template <typename T, int BN, int KC, int ST, int NC>
static int ff_launch(cudaStream_t st, int pdl, const CUtensorMap &ta, const CUtensorMap &tw,
                     const CUtensorMap &to, const float *bias, int m, int n)
{
    int dev = 0, sms = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e == cudaSuccess)
        e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    if (e != cudaSuccess)
        return SMERR("device", e);
    const int slices = n / BN, tiles = (m + TILE_M - 1) / TILE_M;
    int per = sms / slices;
    if (per < 1)
        per = 1;
    if (per > tiles)
        per = tiles;
    cudaLaunchConfig_t cfg = {};
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.gridDim = dim3((unsigned)(slices * per));
    cfg.blockDim = dim3(128 * (1 + NC));
    cfg.dynamicSmemBytes = ff_smem<BN, KC, ST, NC>();
    cfg.stream = st;
    cfg.attrs = at;
    cfg.numAttrs = pdl ? 1 : 0;
    e = cudaLaunchKernelEx(&cfg, k_ff_gelu<T, BN, KC, ST, NC>, ta, tw, to, bias, m, per);
    if (e != cudaSuccess)
        return SMERR("launch", e);
    return ELO_OK;
}

extern "C" int elo__sm90_ff_ok(elo_dtype type, int n, int k)
{
    if (type != ELO_DTYPE_F16 && type != ELO_DTYPE_BF16)
        return 0;
    int bn = slice_width(k);
    if (!bn || n % bn != 0 || n <= 0)
        return 0;
    int dev = 0, major = 0, minor = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    if (major != 9 || minor != 0 || !get_encode())
        return 0;
    /* the sm_90a code is what loaded (not absent, not another arch's) */
    cudaFuncAttributes fa;
    if (cudaFuncGetAttributes(&fa, k_ff_gelu<__half, FF_384>) != cudaSuccess ||
        fa.binaryVersion != 90) {
        cudaGetLastError();
        return 0;
    }
    cudaError_t e;
    if (type == ELO_DTYPE_F16)
        e = k == 384 ? ff_prepare<__half, FF_384>() : ff_prepare<__half, FF_768>();
    else
        e = k == 384 ? ff_prepare<__nv_bfloat16, FF_384>() : ff_prepare<__nv_bfloat16, FF_768>();
    if (e != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return 1;
}

extern "C" int elo__sm90_ff_gelu(void *stream, int pdl, elo_dtype type, const void *a,
                                 const void *wt, const float *bias, void *out, int m, int n,
                                 int k)
{
    const int bn = slice_width(k);
    if (m <= 0)
        return ELO_OK;
    if (!bn || n % bn != 0 || (type != ELO_DTYPE_F16 && type != ELO_DTYPE_BF16))
        return elo_seterr(ELO_INTERNAL, "sm90 dense layer: unsupported shape %d x %d", n, k);
    CUtensorMap ta, tw, to;
    int rc;
    if ((rc = tensor_map(&ta, type, a, m, k, TILE_M)) < 0 ||
        (rc = tensor_map(&tw, type, wt, n, k, bn)) < 0 ||
        (rc = tensor_map(&to, type, out, m, n, TILE_M)) < 0)
        return rc;
    cudaStream_t st = (cudaStream_t)stream;
    if (type == ELO_DTYPE_F16)
        return k == 384 ? ff_launch<__half, FF_384>(st, pdl, ta, tw, to, bias, m, n)
                        : ff_launch<__half, FF_768>(st, pdl, ta, tw, to, bias, m, n);
    return k == 384 ? ff_launch<__nv_bfloat16, FF_384>(st, pdl, ta, tw, to, bias, m, n)
                    : ff_launch<__nv_bfloat16, FF_768>(st, pdl, ta, tw, to, bias, m, n);
}

/* ---- self-check ------------------------------------------------------------------ */

static uint64_t check_rng(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* v rounded to the 16-bit type, as its bits and as the float it stands for. */
static uint16_t to16(elo_dtype type, float v, float *back)
{
    if (type == ELO_DTYPE_F16) {
        __half_raw r = __half(__float2half_rn(v));
        *back = __half2float(__half(r));
        return r.x;
    }
    __nv_bfloat16_raw r = __nv_bfloat16(__float2bfloat16_rn(v));
    *back = __bfloat162float(__nv_bfloat16(r));
    return r.x;
}

/* Uniform in [-1, 1). */
static float check_val(uint64_t *s)
{
    return (float)((double)(check_rng(s) >> 11) / 4503599627370496.0 - 1.0);
}

extern "C" int elo__sm90_ff_check(elo_dtype type, int m, int n, int k, uint64_t seed,
                                  double *max_err, double *max_ref)
{
    if (!elo__sm90_ff_ok(type, n, k))
        return elo_seterr(ELO_UNSUPPORTED, "sm90 dense layer: not available here");
    size_t na = (size_t)m * k, nw = (size_t)n * k, no = (size_t)m * n;
    /* the values as the GPU sees them (a, w, b) and their 16-bit bits */
    float *a = (float *)malloc(na * 4), *w = (float *)malloc(nw * 4), *b = (float *)malloc(n * 4);
    uint16_t *a16 = (uint16_t *)malloc(na * 2), *w16 = (uint16_t *)malloc(nw * 2),
             *o16 = (uint16_t *)malloc(no * 2);
    void *da = nullptr, *dw = nullptr, *dout = nullptr;
    float *db = nullptr;
    int rc = ELO_OK;
    if (!a || !w || !b || !a16 || !w16 || !o16) {
        rc = elo_seterr(ELO_NOMEM, "out of memory");
        goto done;
    }
    seed |= 1;
    /* weights scaled so the products spread over GELU's curved part */
    for (size_t i = 0; i < na; i++)
        a16[i] = to16(type, check_val(&seed), &a[i]);
    for (size_t i = 0; i < nw; i++)
        w16[i] = to16(type, check_val(&seed) * 3.0f / sqrtf((float)k), &w[i]);
    for (int i = 0; i < n; i++)
        b[i] = check_val(&seed);
    {
        cudaError_t e;
        if ((e = cudaMalloc(&da, na * 2)) != cudaSuccess ||
            (e = cudaMalloc(&dw, nw * 2)) != cudaSuccess ||
            (e = cudaMalloc((void **)&db, (size_t)n * 4)) != cudaSuccess ||
            (e = cudaMalloc(&dout, no * 2)) != cudaSuccess ||
            (e = cudaMemcpy(da, a16, na * 2, cudaMemcpyHostToDevice)) != cudaSuccess ||
            (e = cudaMemcpy(dw, w16, nw * 2, cudaMemcpyHostToDevice)) != cudaSuccess ||
            (e = cudaMemcpy(db, b, (size_t)n * 4, cudaMemcpyHostToDevice)) != cudaSuccess ||
            (e = cudaMemset(dout, 0xff, no * 2)) != cudaSuccess) {
            rc = SMERR("check buffers", e);
            goto done;
        }
        if ((rc = elo__sm90_ff_gelu(nullptr, 0, type, da, dw, db, dout, m, n, k)) < 0)
            goto done;
        if ((e = cudaMemcpy(o16, dout, no * 2, cudaMemcpyDeviceToHost)) != cudaSuccess) {
            rc = SMERR("check run", e);
            goto done;
        }
    }
    *max_err = 0.0;
    *max_ref = 0.0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = b[j];
            for (int q = 0; q < k; q++)
                s += (double)a[(size_t)i * k + q] * w[(size_t)j * k + q];
            double ref = 0.5 * s * (1.0 + erf(s / sqrt(2.0)));
            float got;
            if (type == ELO_DTYPE_F16) {
                __half_raw r;
                r.x = o16[(size_t)i * n + j];
                got = __half2float(__half(r));
            } else {
                __nv_bfloat16_raw r;
                r.x = o16[(size_t)i * n + j];
                got = __bfloat162float(__nv_bfloat16(r));
            }
            double err = fabs((double)got - ref);
            if (!(err <= *max_err)) /* NaN too */
                *max_err = isnan(err) ? INFINITY : err;
            if (fabs(ref) > *max_ref)
                *max_ref = fabs(ref);
        }
done:
    cudaFree(da);
    cudaFree(dw);
    cudaFree(db);
    cudaFree(dout);
    free(a);
    free(w);
    free(b);
    free(a16);
    free(w16);
    free(o16);
    return rc;
}
