/* embed.c - the embedder: binds a model to a backend and precision, groups
 * sequences by length into buckets and hands each bucket to the CPU
 * encoder (embed-cpu.c) or the CUDA one (embed-cuda.cu). Sorting by length
 * keeps padding on the GPU small; on the CPU batches are packed without
 * padding anyway, and buckets only bound the scratch memory. */
#include "embed-impl.h"

#include <stdlib.h>
#include <string.h>

/* Tokens per CPU batch: bounds scratch memory (~ T x 11 KiB for MiniLM). */
#define CPU_BATCH_TOKENS 8192

struct elo_embedder {
    elo_embed_model *m;
    elo_backend *b;
    elo_dtype precision;
    elo__cpu_scratch cpu;
    void *cuda;                 /* device context on CUDA */
};

int elo_embedder_new(elo_embed_model *m, elo_backend *b, elo_dtype precision,
                     elo_embedder **out)
{
    *out = NULL;
    if (!b)
        b = elo_backend_cpu();
    if (precision != ELO_DTYPE_F32 && b->kind != ELO_DEVICE_CUDA)
        return elo_seterr(ELO_BADINPUT, "precision %s needs a GPU (--device cuda); the CPU "
                          "computes in f32", elo_dtype_name(precision));
    elo_embedder *e = elo_calloc(1, sizeof *e);
    if (!e)
        return elo_seterr(ELO_NOMEM, "out of memory");
    e->m = m;
    e->b = b;
    e->precision = precision;
    if (b->kind == ELO_DEVICE_CUDA) {
        if (!elo__embed_cuda_new) {
            elo_free(e);
            return elo_seterr(ELO_NODEVICE, "this build has no CUDA support");
        }
        int rc = elo__embed_cuda_new(b, m, precision, &e->cuda);
        if (rc < 0) {
            elo_free(e);
            return rc;
        }
    }
    *out = e;
    return ELO_OK;
}

void elo_embedder_free(elo_embedder *e)
{
    if (!e)
        return;
    if (e->cuda && elo__embed_cuda_free)
        elo__embed_cuda_free(e->cuda);
    elo__cpu_scratch_free(&e->cpu);
    elo_free(e);
}

typedef struct {
    int len, index;
} by_len_item;

static int cmp_len(const void *a, const void *b)
{
    const by_len_item *x = a, *y = b;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

int elo_embedder_run_ids(elo_embedder *e, const int32_t *const *ids, const int *lens,
                         int count, float *out)
{
    const elo_embed_info *in = &e->m->info;
    if (count <= 0)
        return ELO_OK;
    for (int i = 0; i < count; i++)
        if (lens[i] < 1 || lens[i] > in->max_positions)
            return elo_seterr(ELO_BADINPUT, "sequence %d has %d tokens (1..%d allowed)", i,
                              lens[i], in->max_positions);
    int H = in->hidden;
    by_len_item *order = elo_malloc((size_t)count * sizeof *order);
    int *blens = elo_malloc((size_t)count * sizeof *blens);
    float *bout = elo_malloc((size_t)count * H * sizeof *bout);
    size_t cap_tokens = e->cuda ? (size_t)elo__embed_cuda_max_tokens(e->cuda) : CPU_BATCH_TOKENS;
    if (cap_tokens < (size_t)in->max_positions)
        cap_tokens = (size_t)in->max_positions;
    int32_t *bids = elo_malloc(cap_tokens * sizeof *bids);
    int rc = ELO_OK;
    if (!order || !blens || !bout || !bids) {
        rc = elo_seterr(ELO_NOMEM, "out of memory for %d sequences", count);
        goto out;
    }
    for (int i = 0; i < count; i++) {
        order[i].len = lens[i];
        order[i].index = i;
    }
    qsort(order, count, sizeof *order, cmp_len);
    for (int start = 0; start < count;) {
        /* Sorted ascending, so the last sequence taken sets the padded
         * length of the bucket: take while count x that length fits. */
        int n = 0, seq_len = 0;
        size_t tokens = 0;
        while (start + n < count) {
            int len = order[start + n].len;
            size_t padded = (size_t)(n + 1) * (size_t)len;
            if (n > 0 && (e->cuda ? padded : tokens + len) > cap_tokens)
                break;
            seq_len = len;
            tokens += len;
            n++;
        }
        size_t pos = 0;
        for (int i = 0; i < n; i++) {
            int src = order[start + i].index;
            memcpy(bids + pos, ids[src], (size_t)lens[src] * sizeof *bids);
            blens[i] = lens[src];
            pos += lens[src];
        }
        if (e->cuda)
            rc = elo__embed_cuda_run(e->cuda, bids, blens, n, seq_len, bout);
        else
            rc = elo__embed_cpu_run(e->m, &e->cpu, bids, blens, n, bout);
        if (rc < 0)
            goto out;
        for (int i = 0; i < n; i++)
            memcpy(out + (size_t)order[start + i].index * H, bout + (size_t)i * H,
                   (size_t)H * sizeof *out);
        start += n;
    }
out:
    elo_free(order);
    elo_free(blens);
    elo_free(bout);
    elo_free(bids);
    return rc;
}

typedef struct {
    const elo_tokenizer *tok;
    const char *const *texts;
    const size_t *lens;
    int32_t **ids;
    int *n;
    int max_tokens;
} tokenize_job;

static void tokenize_task(void *arg, int task, int thread)
{
    (void)thread;
    const tokenize_job *j = arg;
    size_t len = j->lens ? j->lens[task] : strlen(j->texts[task]);
    j->n[task] = elo_tokenizer_encode(j->tok, j->texts[task], len, j->ids[task], j->max_tokens);
}

int elo_embedder_run_texts(elo_embedder *e, const char *const *texts, const size_t *lens,
                           int count, float *out, int32_t **ids_out, int *ids_len)
{
    int max_tokens = e->m->info.max_seq_length;
    int32_t **ids = elo_calloc((size_t)(count > 0 ? count : 1), sizeof *ids);
    int *n = elo_calloc((size_t)(count > 0 ? count : 1), sizeof *n);
    int rc = ELO_OK;
    if (!ids || !n) {
        rc = elo_seterr(ELO_NOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < count; i++) {
        ids[i] = elo_malloc((size_t)max_tokens * sizeof **ids);
        if (!ids[i]) {
            rc = elo_seterr(ELO_NOMEM, "out of memory");
            goto out;
        }
    }
    /* Tokenize in parallel (the tokenizer is read-only); a text that fails
     * is encoded again here, on this thread, for its error message. */
    tokenize_job tj = {.tok = e->m->tok, .texts = texts, .lens = lens, .ids = ids, .n = n,
                       .max_tokens = max_tokens};
    if (count >= 16)
        elo__embed_parallel(tokenize_task, &tj, count);
    else
        for (int i = 0; i < count; i++)
            tokenize_task(&tj, i, 0);
    for (int i = 0; i < count; i++)
        if (n[i] < 0) {
            tokenize_task(&tj, i, 0);
            char msg[512];
            snprintf(msg, sizeof msg, "%s", elo_errmsg());
            rc = elo_seterr(n[i], "text %d: %s", i + 1, msg);
            goto out;
        }
    rc = elo_embedder_run_ids(e, (const int32_t *const *)ids, n, count, out);
    if (rc == ELO_OK && ids_out) {
        for (int i = 0; i < count; i++) {
            ids_out[i] = ids[i];
            ids_len[i] = n[i];
            ids[i] = NULL;
        }
    }
out:
    for (int i = 0; ids && i < count; i++)
        elo_free(ids[i]);
    elo_free(ids);
    elo_free(n);
    return rc;
}

int elo_embed_cpu_threads(void) { return elo__embed_threads(); }
