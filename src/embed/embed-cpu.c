/* embed-cpu.c - the BERT encoder on the CPU: OpenBLAS GEMMs (through the
 * CPU backend) for the dense layers, our own attention, and fused
 * element-wise passes, all over one packed batch (the tokens of every
 * sequence back to back, no padding).
 *
 * DESIGN: the calling thread runs the layers in order. GEMMs are split
 * over the process pool by the CPU backend (OpenBLAS single-threaded in
 * each task). Element-wise passes (embedding gather + LayerNorm, bias +
 * GELU, LayerNorm) and attention (one task per sequence and head) run on
 * the same pool (elo__embed_parallel), the caller taking part;
 * small passes run on the caller alone, where waking workers would cost
 * more than the work. Biases and residuals are folded into the GEMMs: the
 * output is first filled with bias (+ residual) and the GEMM accumulates
 * into it (beta = 1), so each dense layer costs one GEMM and at most one
 * extra pass over its output. */
#include "embed-impl.h"

#include <math.h>
#include <string.h>

/* The hot loops are compiled for AVX-512 and AVX2 as well as the baseline,
 * and the best the CPU has is picked at load time (GCC function clones;
 * other compilers build the baseline only). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SIMD_CLONES
#endif

/* Below this many floats of work an element-wise pass stays on the caller. */
#define PARALLEL_MIN_FLOATS 16384

/* exp(x) for x <= 0 (softmax after subtracting the max; erf below),
 * written so the compiler vectorizes it with baseline SSE2: x = n ln2 + r
 * with n = round(x / ln2) (truncating x/ln2 - 0.5, valid for x <= 0), so
 * |r| <= ln2/2; e^r by a degree-7 Taylor polynomial (relative error < 2e-8
 * there); 2^n through the exponent bits. Inputs below -87 give ~0. */
static inline float exp_neg(float x)
{
    /* x = -min(|x|, 87) on the bits: float selects in this position keep
     * GCC from vectorizing the AVX clones ("control flow in loop"). */
    int32_t xb;
    memcpy(&xb, &x, 4);
    xb &= 0x7fffffff;
    xb = xb < 0x42ae0000 ? xb : 0x42ae0000;
    xb |= INT32_MIN;
    memcpy(&x, &xb, 4);
    float n = (float)(int32_t)(x * 1.44269504088896341f - 0.5f);
    float r = x - n * 0.693145751953125f;
    r = r - n * 1.42860682030941723212e-6f;
    float p = 1.0f / 5040;
    p = p * r + 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, 4);
    return p * scale;
}

/* erf by Abramowitz & Stegun 7.1.26 (absolute error < 3e-7 in float), in
 * branch-free arithmetic so the GELU pass vectorizes (libm's erff does
 * not, and was the largest cost after the GEMMs). */
static inline float erf_fast(float x)
{
    float ax = fabsf(x);
    int32_t ab; /* ax = min(ax, 9): erf(9) is 1 in float */
    memcpy(&ab, &ax, 4);
    ab = ab < 0x41100000 ? ab : 0x41100000;
    memcpy(&ax, &ab, 4);
    float t = 1.0f / (1.0f + 0.3275911f * ax);
    float p = 1.061405429f;
    p = p * t - 1.453152027f;
    p = p * t + 1.421413741f;
    p = p * t - 0.284496736f;
    p = p * t + 0.254829592f;
    float y = 1.0f - p * t * exp_neg(-ax * ax);
    return copysignf(y, x);
}

float elo__gelu(float x) { return 0.5f * x * (1.0f + erf_fast(x * 0.70710678118654752f)); }

SIMD_CLONES
void elo__layernorm_rows(float *x, int rows, int cols, const float *g, const float *b, float eps)
{
    /* Statistics in double: a row with a large common offset keeps its
     * small deviations (a float mean would round them away). */
    for (int r = 0; r < rows; r++) {
        float *v = x + (size_t)r * cols;
        double sum = 0;
        for (int c = 0; c < cols; c++)
            sum += v[c];
        double mean = sum / cols;
        double var = 0;
        for (int c = 0; c < cols; c++) {
            double d = v[c] - mean;
            var += d * d;
        }
        double inv = 1.0 / sqrt(var / cols + eps);
        for (int c = 0; c < cols; c++)
            v[c] = (float)((v[c] - mean) * inv) * g[c] + b[c];
    }
}

SIMD_CLONES
void elo__gelu_bias_rows(float *x, int rows, int cols, const float *bias)
{
    for (int r = 0; r < rows; r++) {
        float *v = x + (size_t)r * cols;
        for (int c = 0; c < cols; c++)
            v[c] = elo__gelu(v[c] + bias[c]);
    }
}

/* ---- parallel row passes -------------------------------------------------- */

typedef enum { PASS_EMBED, PASS_LN, PASS_GELU, PASS_FILL_BIAS, PASS_ADD_BIAS } pass_kind;

typedef struct {
    pass_kind kind;
    const elo_embed_model *m;
    float *x;
    int rows, cols, chunk;
    const float *g, *b;
    const int32_t *ids;         /* PASS_EMBED */
    const int *pos;             /* PASS_EMBED: position of each token */
} pass_job;

static void pass_rows(const pass_job *j, int r0, int r1)
{
    int cols = j->cols;
    float eps = j->m ? j->m->info.layer_norm_eps : 0;
    switch (j->kind) {
    case PASS_EMBED: {
        const elo__bert_weights *w = &j->m->w;
        for (int r = r0; r < r1; r++) {
            float *v = j->x + (size_t)r * cols;
            const float *we = w->word_emb + (size_t)j->ids[r] * cols;
            const float *pe = w->pos_emb + (size_t)j->pos[r] * cols;
            const float *te = w->type_emb;
            for (int c = 0; c < cols; c++)
                v[c] = we[c] + pe[c] + te[c];
        }
        elo__layernorm_rows(j->x + (size_t)r0 * cols, r1 - r0, cols, w->emb_ln_g, w->emb_ln_b,
                            eps);
        break;
    }
    case PASS_LN:
        elo__layernorm_rows(j->x + (size_t)r0 * cols, r1 - r0, cols, j->g, j->b, eps);
        break;
    case PASS_GELU:
        elo__gelu_bias_rows(j->x + (size_t)r0 * cols, r1 - r0, cols, j->b);
        break;
    case PASS_FILL_BIAS:
        for (int r = r0; r < r1; r++)
            memcpy(j->x + (size_t)r * cols, j->b, (size_t)cols * sizeof(float));
        break;
    case PASS_ADD_BIAS:
        for (int r = r0; r < r1; r++) {
            float *v = j->x + (size_t)r * cols;
            for (int c = 0; c < cols; c++)
                v[c] += j->b[c];
        }
        break;
    }
}

static void pass_task(void *arg, int task, int thread)
{
    (void)thread;
    const pass_job *j = arg;
    int r0 = task * j->chunk;
    int r1 = ELO_MIN(j->rows, r0 + j->chunk);
    if (r0 < r1)
        pass_rows(j, r0, r1);
}

static void run_pass(pass_job *j)
{
    size_t work = (size_t)j->rows * j->cols;
    int threads = work >= PARALLEL_MIN_FLOATS ? elo__embed_threads() : 1;
    if (threads <= 1) {
        pass_rows(j, 0, j->rows);
        return;
    }
    int tasks = ELO_MIN(j->rows, threads * 4);
    j->chunk = (j->rows + tasks - 1) / tasks;
    tasks = (j->rows + j->chunk - 1) / j->chunk;
    elo__embed_parallel(pass_task, j, tasks);
}

/* ---- attention ------------------------------------------------------------ */

typedef struct {
    const float *qkv;           /* [T, 3H] */
    float *ctx;                 /* [T, H] */
    const int *offsets, *lens;
    int heads, hidden, head_dim, max_len;
    float *scratch;             /* per thread: ATTN_SCRATCH(max_len, head_dim) floats */
} attn_job;

/* Query rows handled together, and keys / output columns per register
 * block: QB x 16 accumulators stay in vector registers while a block of
 * K^T (or V) streams past, the way a GEMM micro-kernel works. */
#define QB 4
#define KB 16
#define PAD16(n) (((n) + KB - 1) / KB * KB)
#define ATTN_SCRATCH(len, d) ((size_t)PAD16(len) * ((d) + QB) + QB * (size_t)(d))

/* One (sequence, head): softmax(q k^T / sqrt(d)) v for every query row. K
 * is first transposed to [d][len, padded to 16 with zeros] so scores for
 * 16 keys at a time are 16-lane vectors. The score and output sums are
 * fmaf, written out (the build has -ffp-contract=off): one instruction and
 * one rounding instead of two, the same result in every clone (the
 * "default" one, for CPUs without FMA, gets libm's exact fmaf); 128 x 32
 * on the 2-core VM: 640-677 -> 597-628 ms. */
SIMD_CLONES
static void attn_task(void *arg, int task, int thread)
{
    const attn_job *j = arg;
    int seq = task / j->heads, h = task % j->heads;
    int len = j->lens[seq], off = j->offsets[seq], d = j->head_dim, H = j->hidden;
    int lp = PAD16(len);
    size_t row = 3 * (size_t)H;
    float *kt = j->scratch + (size_t)thread * ATTN_SCRATCH(j->max_len, d);
    float *sc = kt + (size_t)lp * d;           /* QB rows of lp scores */
    float *acc = sc + (size_t)QB * lp;         /* QB rows of d outputs */
    const float *base = j->qkv + (size_t)off * row;
    for (int c = 0; c < d; c++)
        for (int t = len; t < lp; t++)
            kt[(size_t)c * lp + t] = 0;
    for (int t = 0; t < len; t++) {
        const float *k = base + t * row + H + h * d;
        for (int c = 0; c < d; c++)
            kt[(size_t)c * lp + t] = k[c];
    }
    float scale = 1.0f / sqrtf((float)d);
    float *s0 = sc, *s1 = sc + lp, *s2 = sc + 2 * lp, *s3 = sc + 3 * lp;
    for (int i0 = 0; i0 < len; i0 += QB) {
        int rows = len - i0 < QB ? len - i0 : QB;
        const float *q[QB];
        for (int r = 0; r < QB; r++)
            q[r] = base + (size_t)(i0 + (r < rows ? r : 0)) * row + h * d;
        for (int t0 = 0; t0 < lp; t0 += KB) {
            float a0[KB] = {0}, a1[KB] = {0}, a2[KB] = {0}, a3[KB] = {0};
            for (int c = 0; c < d; c++) {
                const float *kc = kt + (size_t)c * lp + t0;
                float q0 = q[0][c] * scale, q1 = q[1][c] * scale, q2 = q[2][c] * scale,
                      q3 = q[3][c] * scale;
                for (int k = 0; k < KB; k++) {
                    float kv = kc[k];
                    a0[k] = fmaf(q0, kv, a0[k]);
                    a1[k] = fmaf(q1, kv, a1[k]);
                    a2[k] = fmaf(q2, kv, a2[k]);
                    a3[k] = fmaf(q3, kv, a3[k]);
                }
            }
            memcpy(s0 + t0, a0, sizeof a0);
            memcpy(s1 + t0, a1, sizeof a1);
            memcpy(s2 + t0, a2, sizeof a2);
            memcpy(s3 + t0, a3, sizeof a3);
        }
        for (int r = 0; r < QB; r++) {
            float *sr = sc + (size_t)r * lp;
            /* Max and sum over 16 lanes, then across them: a plain float
             * reduction would not vectorize (its order is fixed). */
            float lane[16];
            for (int k = 0; k < 16; k++)
                lane[k] = sr[0];
            int t16 = len & ~15;
            for (int t = 0; t < t16; t += 16)
                for (int k = 0; k < 16; k++)
                    lane[k] = sr[t + k] > lane[k] ? sr[t + k] : lane[k];
            float mx = sr[0];
            for (int k = 0; k < 16; k++)
                mx = lane[k] > mx ? lane[k] : mx;
            for (int t = t16; t < len; t++)
                mx = sr[t] > mx ? sr[t] : mx;
            for (int t = 0; t < len; t++)
                sr[t] = exp_neg(sr[t] - mx);
            for (int k = 0; k < 16; k++)
                lane[k] = 0;
            for (int t = 0; t < t16; t += 16)
                for (int k = 0; k < 16; k++)
                    lane[k] += sr[t + k];
            float sum = 0;
            for (int k = 0; k < 16; k++)
                sum += lane[k];
            for (int t = t16; t < len; t++)
                sum += sr[t];
            float inv = 1.0f / sum;
            for (int t = 0; t < len; t++)
                sr[t] *= inv;
        }
        if (d % KB == 0) {
            for (int c0 = 0; c0 < d; c0 += KB) {
                float o0[KB] = {0}, o1[KB] = {0}, o2[KB] = {0}, o3[KB] = {0};
                for (int t = 0; t < len; t++) {
                    const float *v = base + t * row + 2 * H + h * d + c0;
                    float p0 = s0[t], p1 = s1[t], p2 = s2[t], p3 = s3[t];
                    for (int k = 0; k < KB; k++) {
                        float vk = v[k];
                        o0[k] = fmaf(p0, vk, o0[k]);
                        o1[k] = fmaf(p1, vk, o1[k]);
                        o2[k] = fmaf(p2, vk, o2[k]);
                        o3[k] = fmaf(p3, vk, o3[k]);
                    }
                }
                memcpy(acc + c0, o0, sizeof o0);
                memcpy(acc + d + c0, o1, sizeof o1);
                memcpy(acc + 2 * d + c0, o2, sizeof o2);
                memcpy(acc + 3 * d + c0, o3, sizeof o3);
            }
        } else {
            for (int c = 0; c < QB * d; c++)
                acc[c] = 0;
            float *a0 = acc, *a1 = acc + d, *a2 = acc + 2 * d, *a3 = acc + 3 * d;
            for (int t = 0; t < len; t++) {
                const float *v = base + t * row + 2 * H + h * d;
                float p0 = s0[t], p1 = s1[t], p2 = s2[t], p3 = s3[t];
                for (int c = 0; c < d; c++) {
                    float vc = v[c];
                    a0[c] += p0 * vc;
                    a1[c] += p1 * vc;
                    a2[c] += p2 * vc;
                    a3[c] += p3 * vc;
                }
            }
        }
        for (int r = 0; r < rows; r++)
            memcpy(j->ctx + (size_t)(off + i0 + r) * H + h * d, acc + (size_t)r * d,
                   (size_t)d * sizeof(float));
    }
}

/* ---- the encoder ----------------------------------------------------------- */

/* c[m,n] = a[m,k] w[k,n] (+ c when beta is 1). The weights are stored
 * [in, out], so this is OpenBLAS's NN case: for a short batch (m = 32) its
 * packing of a transposed [out, in] weight cost as much as the product. */
static int gemm_nn(int m, int n, int k, const float *a, int lda, const float *w, float *c,
                   int ldc, float beta)
{
    elo_gemm g = {0};
    g.m = m;
    g.n = n;
    g.k = k;
    g.alpha = 1.0f;
    g.beta = beta;
    g.a = a;
    g.lda = lda;
    g.b = w;
    g.ldb = n;
    g.c = c;
    g.ldc = ldc;
    g.in_type = ELO_DTYPE_F32;
    g.out_type = ELO_DTYPE_F32;
    return elo_backend_gemm(elo_backend_cpu(), &g);
}

void elo__cpu_scratch_free(elo__cpu_scratch *s)
{
    if (s) {
        elo_free(s->buf);
        s->buf = NULL;
        s->floats = 0;
    }
}

static void pool_rows(const elo_embed_info *in, const float *x, const int *offsets,
                      const int *lens, int count, float *out)
{
    int H = in->hidden;
    for (int s = 0; s < count; s++) {
        const float *rows = x + (size_t)offsets[s] * H;
        float *o = out + (size_t)s * H;
        int len = lens[s];
        switch (in->pooling) {
        case ELO_POOLING_CLS:
            memcpy(o, rows, (size_t)H * sizeof(float));
            break;
        case ELO_POOLING_MAX:
            memcpy(o, rows, (size_t)H * sizeof(float));
            for (int t = 1; t < len; t++)
                for (int c = 0; c < H; c++)
                    o[c] = rows[(size_t)t * H + c] > o[c] ? rows[(size_t)t * H + c] : o[c];
            break;
        default: {
            for (int c = 0; c < H; c++) {
                double acc = 0;
                for (int t = 0; t < len; t++)
                    acc += rows[(size_t)t * H + c];
                o[c] = (float)(in->pooling == ELO_POOLING_MEAN ? acc / len : acc / sqrt(len));
            }
        }
        }
        if (in->normalize) {
            double n2 = 0;
            for (int c = 0; c < H; c++)
                n2 += (double)o[c] * o[c];
            double norm = sqrt(n2);
            float inv = (float)(1.0 / (norm > 1e-12 ? norm : 1e-12));
            for (int c = 0; c < H; c++)
                o[c] *= inv;
        }
    }
}

int elo__embed_cpu_run(const elo_embed_model *m, elo__cpu_scratch *s, const int32_t *ids,
                       const int *lens, int count, float *out)
{
    const elo_embed_info *in = &m->info;
    int H = in->hidden, I = in->intermediate;
    long total = 0;
    int max_len = 0;
    for (int i = 0; i < count; i++) {
        if (lens[i] < 1 || lens[i] > in->max_positions)
            return elo_seterr(ELO_BADINPUT, "sequence %d has %d tokens (1..%d allowed)", i,
                              lens[i], in->max_positions);
        total += lens[i];
        max_len = ELO_MAX(max_len, lens[i]);
    }
    if (count <= 0)
        return ELO_OK;
    if (total > (1L << 24))
        return elo_seterr(ELO_TOOBIG, "batch of %ld tokens is too large", total);
    for (long t = 0; t < total; t++)
        if (ids[t] < 0 || ids[t] >= in->vocab_size)
            return elo_seterr(ELO_BADINPUT, "token id %d is outside the vocabulary (%d)",
                              (int)ids[t], in->vocab_size);
    int T = (int)total;
    int threads = elo__embed_threads();
    int d = H / in->heads;
    size_t need = (size_t)T * (size_t)(H + 3 * H + H + I) +
                  (size_t)threads * ATTN_SCRATCH(max_len, d) + 2 * (size_t)T + count;
    if (need > s->floats) {
        float *nb = elo_aligned_alloc(64, need * sizeof(float));
        if (!nb)
            return elo_seterr(ELO_NOMEM, "out of memory for a batch of %d tokens", T);
        elo_free(s->buf);
        s->buf = nb;
        s->floats = need;
    }
    float *x = s->buf;
    float *qkv = x + (size_t)T * H;
    float *ctx = qkv + (size_t)T * 3 * H;
    float *ff = ctx + (size_t)T * H;
    float *attn_scratch = ff + (size_t)T * I;
    int *pos = (int *)(attn_scratch + (size_t)threads * ATTN_SCRATCH(max_len, d));
    int *offsets = pos + T;
    for (int i = 0, o = 0; i < count; i++) {
        offsets[i] = o;
        for (int t = 0; t < lens[i]; t++)
            pos[o + t] = t;
        o += lens[i];
    }

    pass_job pj = {.kind = PASS_EMBED, .m = m, .x = x, .rows = T, .cols = H, .ids = ids,
                   .pos = pos};
    run_pass(&pj);
    for (int l = 0; l < in->layers; l++) {
        const elo__bert_layer *L = &m->w.layers[l];
        int rc;
        pass_job fill = {.kind = PASS_FILL_BIAS, .x = qkv, .rows = T, .cols = 3 * H,
                         .b = L->qkv_b};
        run_pass(&fill);
        if ((rc = gemm_nn(T, 3 * H, H, x, H, L->qkv_w, qkv, 3 * H, 1.0f)) < 0)
            return rc;
        attn_job aj = {.qkv = qkv, .ctx = ctx, .offsets = offsets, .lens = lens,
                       .heads = in->heads, .hidden = H, .head_dim = d, .max_len = max_len,
                       .scratch = attn_scratch};
        int tasks = count * in->heads;
        if ((size_t)T * T / ELO_MAX(count, 1) * H < PARALLEL_MIN_FLOATS * 4)
            for (int t = 0; t < tasks; t++)
                attn_task(&aj, t, 0);
        else
            elo__embed_parallel(attn_task, &aj, tasks);
        /* x = LN(x + ctx Wo^T + bo) */
        pass_job addb = {.kind = PASS_ADD_BIAS, .x = x, .rows = T, .cols = H, .b = L->ao_b};
        run_pass(&addb);
        if ((rc = gemm_nn(T, H, H, ctx, H, L->ao_w, x, H, 1.0f)) < 0)
            return rc;
        pass_job ln1 = {.kind = PASS_LN, .m = m, .x = x, .rows = T, .cols = H, .g = L->ln1_g,
                        .b = L->ln1_b};
        run_pass(&ln1);
        /* ff = GELU(x W1^T + b1); x = LN(x + ff W2^T + b2) */
        if ((rc = gemm_nn(T, I, H, x, H, L->ff1_w, ff, I, 0.0f)) < 0)
            return rc;
        pass_job gelu = {.kind = PASS_GELU, .x = ff, .rows = T, .cols = I, .b = L->ff1_b};
        run_pass(&gelu);
        pass_job add2 = {.kind = PASS_ADD_BIAS, .x = x, .rows = T, .cols = H, .b = L->ff2_b};
        run_pass(&add2);
        if ((rc = gemm_nn(T, H, I, ff, I, L->ff2_w, x, H, 1.0f)) < 0)
            return rc;
        pass_job ln2 = {.kind = PASS_LN, .m = m, .x = x, .rows = T, .cols = H, .g = L->ln2_g,
                        .b = L->ln2_b};
        run_pass(&ln2);
    }
    pool_rows(in, x, offsets, lens, count, out);
    return ELO_OK;
}
