/* embed-impl.h - private to src/embed: the safetensors reader, the model's
 * weight layout shared by the CPU and CUDA encoders, and the CUDA entry
 * points (defined in embed-cuda.cu; weak, so NULL in a build without CUDA). */
#ifndef ELOHIM_EMBED_IMPL_H
#define ELOHIM_EMBED_IMPL_H

#include "elohim/backend.h"
#include "elohim/core.h"
#include "elohim/embed.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- safetensors ------------------------------------------------------- */

typedef enum {
    ELO_ST_F32, ELO_ST_F16, ELO_ST_BF16, ELO_ST_F64, ELO_ST_I64, ELO_ST_I32,
    ELO_ST_I16, ELO_ST_I8, ELO_ST_U8, ELO_ST_BOOL
} elo__st_dtype;

#define ELO_ST_MAX_DIMS 8

typedef struct {
    char *name;                  /* owned */
    elo__st_dtype dtype;
    int ndim;
    int64_t shape[ELO_ST_MAX_DIMS];
    uint64_t begin, end;         /* byte offsets into the data section */
    const uint8_t *data;         /* = data section + begin (borrowed) */
} elo__st_tensor;

typedef struct {
    elo__st_tensor *tensors;     /* owned, sorted by name */
    int count;
    const uint8_t *base;         /* start of the data section (borrowed) */
    uint64_t data_bytes;
} elo__safetensors;

/* Parses and validates a safetensors image of `size` bytes (which must stay
 * mapped while `st` is used): an 8-byte little-endian header length, a JSON
 * object header, every tensor with a known dtype, a shape of at most
 * ELO_ST_MAX_DIMS non-negative dims, data_offsets in bounds and of exactly
 * the shape's size, tensors not overlapping. On error returns ELO_CORRUPT
 * (or ELO_NOMEM) with a message naming `name` and what is wrong, and
 * leaves `st` empty. Release with elo__safetensors_deinit(). */
int elo__safetensors_parse(const char *name, const uint8_t *data, size_t size,
                           elo__safetensors *st);
void elo__safetensors_deinit(elo__safetensors *st);
const elo__st_tensor *elo__safetensors_find(const elo__safetensors *st, const char *name);
size_t elo__st_dtype_size(elo__st_dtype t);
const char *elo__st_dtype_name(elo__st_dtype t);

/* ---- tokenizer ----------------------------------------------------------- */

/* on: elo_tokenizer_encode() takes the general path for every character
 * (no ASCII table, the plain WordPiece search), which the fast path must
 * match id for id. For tests; not thread-safe against concurrent encodes. */
void elo__tokenizer_set_general(elo_tokenizer *t, int on);

/* ---- model JSON -------------------------------------------------------- */

/* Fills the config part of `info` from config.json text (BERT fields,
 * checked for sane ranges). ELO_CORRUPT/ELO_UNSUPPORTED with a message
 * naming `name` otherwise. */
int elo__bert_config_parse(const char *name, const char *text, size_t len,
                           elo_embed_info *info);
/* 1_Pooling/config.json -> pooling mode. */
int elo__pooling_config_parse(const char *name, const char *text, size_t len,
                              elo_pooling *out);

/* ---- weights ----------------------------------------------------------- */

/* Host f32 weights in the layout both encoders use. Linear weights are
 * stored transposed from PyTorch's [out, in] to [in, out] (y = x W + b,
 * a plain row-major GEMM whose rows of W are contiguous output columns);
 * Q, K and V are packed side by side into one [H, 3H] matrix so one GEMM
 * makes all three. */
typedef struct {
    float *qkv_w, *qkv_b;        /* [H, 3H], [3H] */
    float *ao_w, *ao_b;          /* attention output [H, H], [H] */
    float *ln1_g, *ln1_b;        /* [H] */
    float *ff1_w, *ff1_b;        /* [H, I], [I] */
    float *ff2_w, *ff2_b;        /* [I, H], [H] */
    float *ln2_g, *ln2_b;        /* [H] */
} elo__bert_layer;

typedef struct {
    float *word_emb;             /* [V, H] */
    float *pos_emb;              /* [P, H] */
    float *type_emb;             /* [T, H] */
    float *emb_ln_g, *emb_ln_b;  /* [H] */
    elo__bert_layer *layers;     /* [L] */
} elo__bert_weights;

struct elo_embed_model {
    char *dir;
    elo_embed_info info;
    elo_tokenizer *tok;
    elo_mmap map;                /* model.safetensors */
    elo__safetensors st;
    elo__bert_weights w;
    elo_arena *arena;            /* owns the f32 weights */
};

/* ---- parallel loops ------------------------------------------------------ */

typedef elo_pool_fn elo__embed_task_fn;
/* Runs fn(arg, task, thread) for every task in [0, task_count) on the
 * process thread pool (the caller takes part) and returns when all are
 * done; `thread` < elo__embed_threads() indexes per-thread scratch. */
static inline void elo__embed_parallel(elo__embed_task_fn fn, void *arg, int task_count)
{
    elo_pool_run(elo_pool_global(), fn, arg, task_count);
}
static inline int elo__embed_threads(void) { return elo_pool_size(elo_pool_global()); }

/* ---- CPU kernels (embed-cpu.c) ------------------------------------------ */

/* The CPU encoder for one packed batch: `count` sequences whose ids lie
 * back to back in `ids` (lens[i] each), pooled (and normalized) into
 * out[count x H]. `scratch` is reused between calls (grown as needed). */
typedef struct {
    float *buf;
    size_t floats;
} elo__cpu_scratch;

int elo__embed_cpu_run(const elo_embed_model *m, elo__cpu_scratch *s, const int32_t *ids,
                       const int *lens, int count, float *out);
void elo__cpu_scratch_free(elo__cpu_scratch *s);

/* Element-wise passes, shared with the tests (they run on `rows` rows). */
void elo__layernorm_rows(float *x, int rows, int cols, const float *g, const float *b,
                         float eps);
void elo__gelu_bias_rows(float *x, int rows, int cols, const float *bias);
float elo__gelu(float x);

/* ---- CUDA (embed-cuda.cu) ------------------------------------------------ */

/* Uploads the weights of `m` to the device of `b` (f32, and the dense
 * weights also as F16/BF16 when `precision` says so) and allocates
 * scratch; *out is the device context. */
ELO_CUDA_ENTRY int elo__embed_cuda_new(elo_backend *b, const elo_embed_model *m,
                                       elo_dtype precision, void **out);
ELO_CUDA_ENTRY void elo__embed_cuda_free(void *ctx);
/* One bucket: `count` sequences, each padded to `seq_len` (the longest of
 * them); sequence i has lens[i] ids at ids[i] and its pooled row goes to
 * out[rows[i] x H] (host). `whole`: the bucket is the whole call, so rows
 * is a permutation of 0 .. count-1 (then a page-locked `out` from
 * elo__embed_cuda_out_alloc is written by the GPU directly). */
ELO_CUDA_ENTRY int elo__embed_cuda_run(void *ctx, const int32_t *const *ids, const int *lens,
                                       const int *rows, int whole, int count, int seq_len,
                                       float *out);
/* Output buffers the GPU can write directly (page-locked; plain memory
 * when that fails); free with elo__embed_cuda_out_free. */
ELO_CUDA_ENTRY float *elo__embed_cuda_out_alloc(void *ctx, size_t bytes);
ELO_CUDA_ENTRY void elo__embed_cuda_out_free(void *ctx, float *p);
/* Most sequences x padded length one bucket may hold (device scratch). */
ELO_CUDA_ENTRY int elo__embed_cuda_max_tokens(void *ctx);

#ifdef __cplusplus
}
#endif
#endif
