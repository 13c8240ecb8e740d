/* backend.h - compute devices: the CPU (thread pool + OpenBLAS) and CUDA
 * (device memory, streams, cuBLAS), behind one interface table in the
 * ggml-backend pattern.
 *
 * Services never test for CUDA at compile time. They ask for a backend with
 * elo_backend_get(); under CUDA they call their own `*-cuda.cu` entry
 * points, which are declared ELO_CUDA_ENTRY (weak) so that a build without
 * CUDA links the same service code. A CUDA backend is only ever handed out
 * when CUDA was compiled in and a usable GPU is present, so a service that
 * holds one may call its CUDA entry points. */
#ifndef ELOHIM_BACKEND_H
#define ELOHIM_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Declares a function defined in a `*-cuda.cu` file. Absent (NULL) in a
 * build without CUDA. */
#define ELO_CUDA_ENTRY __attribute__((weak))

typedef enum {
    ELO_DEVICE_AUTO = 0,
    ELO_DEVICE_CPU  = 1,
    ELO_DEVICE_CUDA = 2
} elo_device_kind;

typedef enum {
    ELO_DTYPE_F32  = 0,
    ELO_DTYPE_F16  = 1,
    ELO_DTYPE_BF16 = 2
} elo_dtype;

size_t elo_dtype_size(elo_dtype t);
const char *elo_dtype_name(elo_dtype t);

/* "auto", "cpu", "cuda" (also "gpu") -> kind; ELO_BADINPUT otherwise. */
int elo_device_parse(const char *s, elo_device_kind *out);
const char *elo_device_name(elo_device_kind k);

/* Operations whose device `auto` picks by size. Crossover points were
 * measured on an H100 host against the CPU path (docs/benchmarks.md). */
typedef enum {
    ELO_OP_VEC_SCAN = 0,  /* work: bytes of vectors scanned per query batch */
    ELO_OP_GEMM     = 1,  /* work: flops */
    ELO_OP_EMBED    = 2,  /* work: tokens in the batch */
    ELO_OP_SQL_SCAN = 3,  /* work: rows scanned */
    ELO_OP_COUNT_
} elo_op;

typedef struct elo_backend elo_backend;

/* A GEMM in row-major terms: C[m x n] = alpha * op(A) * op(B) + beta * C,
 * op(A) is m x k, op(B) is k x n. With batch > 1, matrices i are at
 * a + i*stride_a etc. (strides in elements). Pointers are host memory on
 * the CPU backend and device memory on CUDA. F16/BF16 inputs accumulate in
 * f32; the CPU backend offers F32 only. */
typedef struct {
    int trans_a, trans_b;        /* 0: as stored, 1: transposed */
    int m, n, k;
    float alpha, beta;
    const void *a; int lda;      /* leading dimension (row stride) */
    const void *b; int ldb;
    void *c; int ldc;
    elo_dtype in_type;           /* type of A and B */
    elo_dtype out_type;          /* type of C */
    int batch;                   /* 0 or 1: a single GEMM */
    int64_t stride_a, stride_b, stride_c;
    int allow_tf32;              /* f32 inputs may use TF32 tensor cores */
    int tune;                    /* CUDA, half inputs, single GEMM: time
                                    cuBLASLt's candidates on the first call
                                    of this shape and keep the fastest (for
                                    callers with few, recurring shapes) */
} elo_gemm;

/* Information about a GPU, from the CUDA runtime. */
typedef struct {
    int index;
    char name[128];
    size_t mem_total, mem_free;   /* bytes */
    int cc_major, cc_minor;
    int sm_count;
    size_t l2_bytes;
    size_t smem_per_block_optin;  /* bytes */
    int driver_version;           /* e.g. 13000 */
    int runtime_version;
    double mem_bandwidth_gbs;     /* from the memory clock and bus width */
} elo_gpu_info;

typedef struct {
    char model[128];
    int cores;                    /* online logical CPUs */
    char simd[64];                /* e.g. "avx2 fma" */
    char blas[256];               /* OpenBLAS configuration and kernels */
} elo_cpu_info;

/* The interface a device implements; NULL members are not offered. */
struct elo_backend_iface {
    const char *(*name)(elo_backend *b);
    int  (*alloc)(elo_backend *b, size_t bytes, void **out);
    void (*free)(elo_backend *b, void *ptr);
    int  (*upload)(elo_backend *b, void *dst, const void *src, size_t bytes);
    int  (*download)(elo_backend *b, void *dst, const void *src, size_t bytes);
    int  (*memset)(elo_backend *b, void *dst, int value, size_t bytes);
    int  (*gemm)(elo_backend *b, const elo_gemm *g);
    int  (*sync)(elo_backend *b);
};

struct elo_backend {
    const struct elo_backend_iface *iface;
    elo_device_kind kind;
    void *ctx;                    /* the device's own state */
};

/* The CPU backend (always available; a process-wide singleton). */
elo_backend *elo_backend_cpu(void);

/* The CUDA backend for the first usable GPU, created on first call (a
 * singleton). Returns ELO_NODEVICE with elo_errmsg() saying why when CUDA
 * was not compiled in, no driver or GPU is present, or cuBLAS cannot be
 * loaded. */
int elo_backend_cuda(elo_backend **out);

/* The backend for `kind`; for ELO_DEVICE_AUTO, CUDA when usable, else the
 * CPU. ELO_DEVICE_CUDA without a GPU is ELO_NODEVICE. */
int elo_backend_get(elo_device_kind kind, elo_backend **out);

/* The device for `op` of size `work`: explicit kinds are returned as they
 * are; AUTO picks CUDA when a GPU is usable and the work is past the
 * measured crossover for `op`, else the CPU. */
elo_device_kind elo_backend_choose(elo_device_kind requested, elo_op op,
                                   double work);
/* Crossover used by elo_backend_choose (overridable for tests through
 * $ELOHIM_CROSSOVER_<OP>, e.g. ELOHIM_CROSSOVER_VEC_SCAN=0). */
double elo_backend_crossover(elo_op op);

/* 1 when a usable GPU is present (probes once; never fails). */
int elo_gpu_available(void);

/* Fills `info` for GPU 0. ELO_NODEVICE with a reason otherwise. */
int elo_gpu_probe(elo_gpu_info *info);
void elo_cpu_probe(elo_cpu_info *info);
/* Sets up the environment the CPU BLAS reads when it loads (its kernels
 * for this CPU, one thread): call it first in main(), before any thread
 * starts; later calls do nothing. */
void elo_backend_preinit(void);
/* The environment variable preinit set ("OPENBLAS_CORETYPE"), or NULL:
 * child processes (benchmark peers) should not inherit it. */
const char *elo_backend_forced_env(void);

/* Convenience wrappers over the iface (ELO_UNSUPPORTED when not offered). */
int elo_backend_alloc(elo_backend *b, size_t bytes, void **out);
void elo_backend_free(elo_backend *b, void *ptr);
int elo_backend_upload(elo_backend *b, void *dst, const void *src, size_t n);
int elo_backend_download(elo_backend *b, void *dst, const void *src, size_t n);
int elo_backend_gemm(elo_backend *b, const elo_gemm *g);
int elo_backend_sync(elo_backend *b);

/* CUDA-only helpers for services' `*-cuda.cu` code. The stream is a
 * non-blocking cudaStream_t (never the legacy default stream). */
void *elo_backend_cuda_stream(elo_backend *b);
/* Counts one GPU operation by name (a static string), for /metrics. */
void elo_backend_count_op(const char *op);
/* Copies up to `max` (name, count) pairs; returns how many. */
int elo_backend_op_counts(const char **names, uint64_t *counts, int max);

#ifdef __cplusplus
}
#endif
#endif
