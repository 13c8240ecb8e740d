/* embed.h - sentence embeddings with a BERT model folder in the
 * sentence-transformers layout: the WordPiece tokenizer, the model loader
 * (safetensors + JSON configs) and the encoder on the CPU or a GPU.
 *
 * A model is opened once (elo_embed_model_open) and is read-only after
 * that; an embedder (elo_embedder_new) binds it to a backend and a
 * precision and owns the scratch memory (and, on CUDA, the resident
 * weights). One embedder is used by one thread at a time. */
#ifndef ELOHIM_EMBED_H
#define ELOHIM_EMBED_H

#include "elohim/backend.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- tokenizer --------------------------------------------------------- */

typedef struct elo_tokenizer elo_tokenizer;

/* Options of the BERT tokenizer; elo_tokenizer_options_default() gives the
 * uncased-BERT values. */
typedef struct {
    int lowercase;            /* lowercase after normalization */
    int strip_accents;        /* NFD, then drop nonspacing marks (Mn) */
    int handle_cjk;           /* every CJK ideograph is its own word */
    int clean_text;           /* drop control chars, whitespace -> ' ' */
    int max_chars_per_word;   /* longer words become [UNK] (default 100) */
    int lowercase_input;      /* Python's str.lower() of the whole text first,
                                 before special tokens are matched (the
                                 do_lower_case of sentence_bert_config.json) */
} elo_tokenizer_options;

void elo_tokenizer_options_default(elo_tokenizer_options *o);

/* Builds a tokenizer from the text of a vocab.txt (one token per line, the
 * id is the line number). The special tokens [PAD] [UNK] [CLS] [SEP]
 * [MASK] are recognized in text when the vocabulary holds them. Returns
 * ELO_BADINPUT/ELO_CORRUPT with a message naming `name` and the line on a
 * bad vocabulary. Free with elo_tokenizer_free() (NULL is a no-op). */
int elo_tokenizer_from_vocab(const char *name, const char *text, size_t len,
                             const elo_tokenizer_options *opts, elo_tokenizer **out);
/* Builds a tokenizer from a Hugging Face tokenizer.json (a BertNormalizer,
 * BertPreTokenizer and WordPiece model; its added tokens are recognized in
 * text). Other tokenizer types are ELO_UNSUPPORTED. */
int elo_tokenizer_from_json(const char *name, const char *text, size_t len,
                            elo_tokenizer **out);
/* Opens the tokenizer of a model folder: tokenizer.json when present, else
 * vocab.txt with tokenizer_config.json (do_lower_case, strip_accents,
 * tokenize_chinese_chars). */
int elo_tokenizer_open_dir(const char *dir, elo_tokenizer **out);
void elo_tokenizer_free(elo_tokenizer *t);
/* Turns lowercase_input on or off (the model loader sets it from
 * sentence_bert_config.json). */
void elo_tokenizer_set_lowercase_input(elo_tokenizer *t, int on);

/* Tokenizes `len` bytes of UTF-8 into [CLS] tokens... [SEP], keeping at
 * most `max_tokens` ids in all (>= 2; longer texts are truncated the way
 * the reference truncates: the first max_tokens-2 word pieces). Writes the
 * ids to `ids` (room for max_tokens) and returns their count. Invalid
 * UTF-8 is ELO_BADINPUT with a message naming the byte offset. Work and
 * memory are bounded by max_tokens and the word-length cap, not by `len`
 * (beyond the UTF-8 check). Thread-safe: the tokenizer is read-only. */
int elo_tokenizer_encode(const elo_tokenizer *t, const char *text, size_t len,
                         int32_t *ids, int max_tokens);
int elo_tokenizer_vocab_size(const elo_tokenizer *t);
/* The token for `id`, or NULL when out of range. Valid while `t` lives. */
const char *elo_tokenizer_token(const elo_tokenizer *t, int32_t id);
/* -1 when absent. */
int32_t elo_tokenizer_lookup(const elo_tokenizer *t, const char *token);

/* ---- model ------------------------------------------------------------- */

typedef enum {
    ELO_POOLING_MEAN = 0,
    ELO_POOLING_CLS = 1,
    ELO_POOLING_MAX = 2,
    ELO_POOLING_MEAN_SQRT_LEN = 3
} elo_pooling;

typedef struct {
    int vocab_size, hidden, layers, heads, intermediate;
    int max_positions, type_vocab;
    float layer_norm_eps;
    int max_seq_length;     /* sentence_bert_config (capped by max_positions) */
    int lowercase_input;    /* sentence_bert_config do_lower_case */
    elo_pooling pooling;
    int normalize;          /* modules.json lists Normalize / 2_Normalize exists */
    elo_dtype weight_type;  /* dtype of the dense weights in the file */
} elo_embed_info;

typedef struct elo_embed_model elo_embed_model;

/* Opens a model folder: config.json, model.safetensors (mmap'd; the header
 * validated: offsets in bounds, shapes as the config says), the tokenizer
 * files, 1_Pooling/config.json, sentence_bert_config.json, modules.json.
 * On error returns a negative status and a message naming the file (and
 * suggesting `make model` when the folder or a file is missing). Free with
 * elo_embed_model_free(); NULL is a no-op. */
int elo_embed_model_open(const char *dir, elo_embed_model **out);
void elo_embed_model_free(elo_embed_model *m);
const elo_embed_info *elo_embed_model_info(const elo_embed_model *m);
/* Borrowed; valid while the model lives. */
const elo_tokenizer *elo_embed_model_tokenizer(const elo_embed_model *m);

/* ---- embedder ---------------------------------------------------------- */

typedef struct elo_embedder elo_embedder;

/* Binds `m` to backend `b` (CPU or CUDA) at `precision`: ELO_DTYPE_F32 on
 * any backend; F16 and BF16 (tensor-core GEMMs, f32 accumulation) only on
 * CUDA (ELO_BADINPUT on the CPU). On CUDA the weights are uploaded here,
 * once. The model must outlive the embedder. */
int elo_embedder_new(elo_embed_model *m, elo_backend *b, elo_dtype precision,
                     elo_embedder **out);
void elo_embedder_free(elo_embedder *e);

/* Embeds `count` token sequences (ids[i] holds lens[i] ids, each 1 ..
 * max_seq_length, ids < vocab_size) into out[count x hidden], row i for
 * sequence i. Any count: sequences are grouped by length internally. Any
 * float buffer serves as `out`; one from elo_embedder_out_alloc is faster
 * on CUDA for large calls. */
int elo_embedder_run_ids(elo_embedder *e, const int32_t *const *ids, const int *lens,
                         int count, float *out);
/* A buffer for `rows` embeddings (rows x hidden floats) that the embedder
 * fills fastest: on CUDA page-locked memory the GPU copies a call's
 * embeddings into directly (when all its sequences fit one length bucket;
 * else, and for small calls, through the embedder's own staging buffer, as
 * for any other memory); on the CPU plain memory. NULL when out of memory.
 * Free with elo_embedder_out_free() on the same embedder, before freeing
 * the embedder (NULL is a no-op). */
float *elo_embedder_out_alloc(elo_embedder *e, size_t rows);
void elo_embedder_out_free(elo_embedder *e, float *p);

/* Tokenizes and embeds `count` texts (lens may be NULL for NUL-terminated
 * strings). When `ids_out` is not NULL, ids_out[i] receives a new array
 * (free with elo_free) and ids_len[i] its length. */
int elo_embedder_run_texts(elo_embedder *e, const char *const *texts, const size_t *lens,
                           int count, float *out, int32_t **ids_out, int *ids_len);

/* Threads the CPU encoder uses for element-wise passes and attention
 * ($ELOHIM_THREADS, else the online CPUs). */
int elo_embed_cpu_threads(void);

#ifdef __cplusplus
}
#endif
#endif
