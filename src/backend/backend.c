/* backend.c - device selection: parsing --device, handing out the CPU and
 * CUDA backends, and `auto`'s per-operation choice by measured crossover
 * points. */
#include "backend-impl.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

size_t elo_dtype_size(elo_dtype t) { return t == ELO_DTYPE_F32 ? 4 : 2; }

const char *elo_dtype_name(elo_dtype t)
{
    switch (t) {
    case ELO_DTYPE_F32: return "f32";
    case ELO_DTYPE_F16: return "f16";
    case ELO_DTYPE_BF16: return "bf16";
    }
    return "?";
}

int elo_device_parse(const char *s, elo_device_kind *out)
{
    if (!strcmp(s, "auto")) *out = ELO_DEVICE_AUTO;
    else if (!strcmp(s, "cpu")) *out = ELO_DEVICE_CPU;
    else if (!strcmp(s, "cuda") || !strcmp(s, "gpu")) *out = ELO_DEVICE_CUDA;
    else
        return elo_seterr(ELO_BADINPUT, "unknown device '%s' (use auto, cpu or cuda)", s);
    return ELO_OK;
}

const char *elo_device_name(elo_device_kind k)
{
    switch (k) {
    case ELO_DEVICE_AUTO: return "auto";
    case ELO_DEVICE_CPU: return "cpu";
    case ELO_DEVICE_CUDA: return "cuda";
    }
    return "?";
}

/* ---- CUDA singleton ---------------------------------------------------- */

static elo_backend cuda_backend;
static int cuda_status = 1;         /* 1: not yet tried */
static char cuda_reason[512];
static pthread_mutex_t cuda_mu = PTHREAD_MUTEX_INITIALIZER;

int elo_backend_cuda(elo_backend **out)
{
    pthread_mutex_lock(&cuda_mu);
    if (cuda_status == 1) {
        if (getenv("ELOHIM_NO_CUDA")) {
            cuda_status = ELO_NODEVICE;
            snprintf(cuda_reason, sizeof cuda_reason, "CUDA disabled by ELOHIM_NO_CUDA");
        } else if (!elo__cuda_backend_init) {
            cuda_status = ELO_NODEVICE;
            snprintf(cuda_reason, sizeof cuda_reason,
                     "this build has no CUDA support (built with CUDA=0 or without nvcc)");
        } else {
            cuda_status = elo__cuda_backend_init(&cuda_backend);
            if (cuda_status < 0)
                snprintf(cuda_reason, sizeof cuda_reason, "%s", elo_errmsg());
        }
    }
    int st = cuda_status;
    pthread_mutex_unlock(&cuda_mu);
    if (st < 0) {
        *out = NULL;
        return elo_seterr(ELO_NODEVICE, "no usable CUDA GPU: %s", cuda_reason);
    }
    *out = &cuda_backend;
    return ELO_OK;
}

int elo_gpu_available(void)
{
    elo_backend *b;
    return elo_backend_cuda(&b) == ELO_OK;
}

int elo_gpu_probe(elo_gpu_info *info)
{
    memset(info, 0, sizeof *info);
    if (!elo__cuda_probe)
        return elo_seterr(ELO_NODEVICE,
                          "this build has no CUDA support (built with CUDA=0 or without nvcc)");
    return elo__cuda_probe(info);
}

int elo_backend_get(elo_device_kind kind, elo_backend **out)
{
    if (kind == ELO_DEVICE_CPU) {
        *out = elo_backend_cpu();
        return ELO_OK;
    }
    if (kind == ELO_DEVICE_CUDA)
        return elo_backend_cuda(out);
    if (elo_backend_cuda(out) == ELO_OK)
        return ELO_OK;
    elo_clearerr();
    *out = elo_backend_cpu();
    return ELO_OK;
}

void *elo_backend_cuda_stream(elo_backend *b)
{
    if (!b || b->kind != ELO_DEVICE_CUDA || !elo__cuda_backend_stream)
        return NULL;
    return elo__cuda_backend_stream(b);
}

/* ---- auto: crossover points ------------------------------------------- */

/* Below these sizes the CPU answers sooner than the GPU once launch,
 * transfer and synchronization costs are counted. Measured on an H100
 * host (see docs/benchmarks.md, "crossover"). */
static const struct {
    const char *env;
    double work;
} crossovers[ELO_OP_COUNT_] = {
    [ELO_OP_VEC_SCAN] = {"ELOHIM_CROSSOVER_VEC_SCAN", 4.0e6},  /* bytes scanned */
    [ELO_OP_GEMM]     = {"ELOHIM_CROSSOVER_GEMM", 2.0e7},      /* flops */
    [ELO_OP_EMBED]    = {"ELOHIM_CROSSOVER_EMBED", 1.0},       /* tokens */
    [ELO_OP_SQL_SCAN] = {"ELOHIM_CROSSOVER_SQL_SCAN", 2.0e5},  /* rows */
};

double elo_backend_crossover(elo_op op)
{
    if ((int)op < 0 || op >= ELO_OP_COUNT_)
        return 0;
    const char *env = getenv(crossovers[op].env);
    double v;
    if (env && elo_parse_f64(env, &v) == ELO_OK)
        return v;
    return crossovers[op].work;
}

elo_device_kind elo_backend_choose(elo_device_kind requested, elo_op op, double work)
{
    if (requested != ELO_DEVICE_AUTO)
        return requested;
    if (work < elo_backend_crossover(op))
        return ELO_DEVICE_CPU;
    return elo_gpu_available() ? ELO_DEVICE_CUDA : ELO_DEVICE_CPU;
}

/* ---- wrappers over the interface -------------------------------------- */

/* GPU operation counters by name (a small fixed table; names are static
 * strings owned by the caller). */
#define OP_COUNTER_MAX 32
static const char *op_names[OP_COUNTER_MAX];
static _Atomic uint64_t op_counts[OP_COUNTER_MAX];
static pthread_mutex_t op_mu = PTHREAD_MUTEX_INITIALIZER;

void elo_backend_count_op(const char *op)
{
    pthread_mutex_lock(&op_mu);
    for (int i = 0; i < OP_COUNTER_MAX; i++) {
        if (!op_names[i])
            op_names[i] = op;
        if (op_names[i] == op || !strcmp(op_names[i], op)) {
            atomic_fetch_add(&op_counts[i], 1);
            break;
        }
    }
    pthread_mutex_unlock(&op_mu);
}

int elo_backend_op_counts(const char **names, uint64_t *counts, int max)
{
    int n = 0;
    pthread_mutex_lock(&op_mu);
    for (int i = 0; i < OP_COUNTER_MAX && op_names[i] && n < max; i++, n++) {
        names[n] = op_names[i];
        counts[n] = atomic_load(&op_counts[i]);
    }
    pthread_mutex_unlock(&op_mu);
    return n;
}

int elo_backend_alloc(elo_backend *b, size_t bytes, void **out)
{
    if (!b->iface->alloc)
        return ELO_UNSUPPORTED;
    return b->iface->alloc(b, bytes, out);
}

void elo_backend_free(elo_backend *b, void *ptr)
{
    if (ptr && b->iface->free)
        b->iface->free(b, ptr);
}

int elo_backend_upload(elo_backend *b, void *dst, const void *src, size_t n)
{
    if (!b->iface->upload)
        return ELO_UNSUPPORTED;
    return b->iface->upload(b, dst, src, n);
}

int elo_backend_download(elo_backend *b, void *dst, const void *src, size_t n)
{
    if (!b->iface->download)
        return ELO_UNSUPPORTED;
    return b->iface->download(b, dst, src, n);
}

int elo_backend_gemm(elo_backend *b, const elo_gemm *g)
{
    if (!b->iface->gemm)
        return elo_seterr(ELO_UNSUPPORTED, "%s backend offers no GEMM", b->iface->name(b));
    return b->iface->gemm(b, g);
}

int elo_backend_sync(elo_backend *b)
{
    return b->iface->sync ? b->iface->sync(b) : ELO_OK;
}
