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

/* Sequence indices ordered by length, ties by index (a stable counting
 * sort: lengths are 1..max_len; qsort cost ~50 us a 1024-sequence batch). */
static int order_by_length(const int *lens, int count, int max_len, int *order)
{
    int *start = elo_calloc((size_t)max_len + 2, sizeof *start);
    if (!start)
        return elo_seterr(ELO_NOMEM, "out of memory for %d sequences", count);
    for (int i = 0; i < count; i++)
        start[lens[i] + 1]++;
    for (int len = 1; len <= max_len + 1; len++)
        start[len] += start[len - 1];
    for (int i = 0; i < count; i++)
        order[start[lens[i]]++] = i;
    elo_free(start);
    return ELO_OK;
}

float *elo_embedder_out_alloc(elo_embedder *e, size_t rows)
{
    size_t bytes = (rows ? rows : 1) * (size_t)e->m->info.hidden * sizeof(float);
    return e->cuda ? elo__embed_cuda_out_alloc(e->cuda, bytes) : elo_malloc(bytes);
}

void elo_embedder_out_free(elo_embedder *e, float *p)
{
    if (e->cuda)
        elo__embed_cuda_out_free(e->cuda, p);
    else
        elo_free(p);
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
    size_t cap_tokens = e->cuda ? (size_t)elo__embed_cuda_max_tokens(e->cuda) : CPU_BATCH_TOKENS;
    if (cap_tokens < (size_t)in->max_positions)
        cap_tokens = (size_t)in->max_positions;
    /* Per call: the order and each bucket's lengths; on the CPU also the
     * packed ids and pooled rows (the CUDA encoder reads each sequence
     * where it lies and writes each row to its place in `out`, so a batch
     * costs no large allocation, copy or page faults there). */
    int *order = elo_malloc((size_t)count * sizeof *order);
    int *blens = elo_malloc((size_t)count * sizeof *blens);
    const int32_t **bptr = e->cuda ? elo_malloc((size_t)count * sizeof *bptr) : NULL;
    float *bout = e->cuda ? NULL : elo_malloc((size_t)count * H * sizeof *bout);
    int32_t *bids = e->cuda ? NULL : elo_malloc(cap_tokens * sizeof *bids);
    int rc = ELO_OK;
    if (!order || !blens || (e->cuda ? !bptr : !bout || !bids)) {
        rc = elo_seterr(ELO_NOMEM, "out of memory for %d sequences", count);
        goto out;
    }
    if ((rc = order_by_length(lens, count, in->max_positions, order)) < 0)
        goto out;
    for (int start = 0; start < count;) {
        /* Sorted ascending, so the last sequence taken sets the padded
         * length of the bucket: take while count x that length fits. */
        int n = 0, seq_len = 0;
        size_t tokens = 0;
        while (start + n < count) {
            int len = lens[order[start + n]];
            size_t padded = (size_t)(n + 1) * (size_t)len;
            if (n > 0 && (e->cuda ? padded : tokens + len) > cap_tokens)
                break;
            seq_len = len;
            tokens += len;
            n++;
        }
        const int *rows = order + start;
        for (int i = 0; i < n; i++)
            blens[i] = lens[rows[i]];
        if (e->cuda) {
            for (int i = 0; i < n; i++)
                bptr[i] = ids[rows[i]];
            rc = elo__embed_cuda_run(e->cuda, bptr, blens, rows, start == 0 && n == count, n,
                                     seq_len, out);
        } else {
            size_t pos = 0;
            for (int i = 0; i < n; i++) {
                memcpy(bids + pos, ids[rows[i]], (size_t)blens[i] * sizeof *bids);
                pos += (size_t)blens[i];
            }
            rc = elo__embed_cpu_run(e->m, &e->cpu, bids, blens, n, bout);
            for (int i = 0; rc == ELO_OK && i < n; i++)
                memcpy(out + (size_t)rows[i] * H, bout + (size_t)i * H, (size_t)H * sizeof *out);
        }
        if (rc < 0)
            goto out;
        start += n;
    }
out:
    elo_free(order);
    elo_free(blens);
    elo_free((void *)bptr);
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
