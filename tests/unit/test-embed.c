/* test-embed.c - the model loader and the encoder: safetensors validation
 * (malformed, truncated, oversized, overlapping headers), config.json and
 * pooling parsing, the tiny-bert fixture within 1e-5 of its float64
 * reference on the CPU, batching that does not change results, the
 * element-wise kernels against double-precision references, and (when a
 * GPU is present) the CUDA path against the CPU path on fresh random
 * token sequences. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "elohim/backend.h"
#include "elohim/core.h"
#include "elohim/embed.h"
#include "embed/embed-impl.h"
#include "embed/embed-sm90.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *shared_dir(void)
{
    const char *s = getenv("ELOHIM_SHARED");
    return s ? s : "../shared";
}

/* ---- safetensors --------------------------------------------------------- */

/* Builds header + data: `header` JSON padded to a multiple of 8, then
 * `data_bytes` bytes of data. Returns a malloc'd image and its size. */
static uint8_t *st_image(const char *header, size_t data_bytes, size_t *size)
{
    size_t hl = strlen(header);
    size_t padded = (hl + 7) / 8 * 8;
    *size = 8 + padded + data_bytes;
    uint8_t *img = calloc(1, *size);
    for (int i = 0; i < 8; i++)
        img[i] = (uint8_t)(padded >> (8 * i));
    memcpy(img + 8, header, hl);
    memset(img + 8 + hl, ' ', padded - hl);
    for (size_t i = 0; i < data_bytes; i++)
        img[8 + padded + i] = (uint8_t)i;
    return img;
}

static void test_safetensors_valid(void **state)
{
    (void)state;
    size_t size;
    uint8_t *img = st_image("{\"__metadata__\":{\"format\":\"pt\"},"
                            "\"b\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[8,20]},"
                            "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                            "\"e\":{\"dtype\":\"I64\",\"shape\":[0],\"data_offsets\":[20,20]}}",
                            20, &size);
    elo__safetensors st;
    assert_int_equal(elo__safetensors_parse("t.safetensors", img, size, &st), ELO_OK);
    assert_int_equal(st.count, 3);
    const elo__st_tensor *a = elo__safetensors_find(&st, "a");
    const elo__st_tensor *b = elo__safetensors_find(&st, "b");
    assert_non_null(a);
    assert_non_null(b);
    assert_null(elo__safetensors_find(&st, "c"));
    assert_int_equal(a->dtype, ELO_ST_F32);
    assert_int_equal(b->ndim, 2);
    assert_int_equal(b->shape[1], 3);
    assert_int_equal(b->data[0], 8);   /* byte 8 of the data section */
    elo__safetensors_deinit(&st);
    free(img);
}

static void test_safetensors_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *header;
        size_t data;
        const char *msg;
    } bad[] = {
        {"[1,2]", 0, "not a JSON object"},
        {"{\"a\":", 0, "header JSON"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "past the data"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "shape needs"},
        {"{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "unknown dtype"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "not a size"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 8,
         "dimensions"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,8]}}",
         8, "overflows"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, "data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "data_offsets"},
        {"{\"a\":5}", 8, "not an object"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "overlap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "header JSON"},
        {"{\"__metadata__\":[1]}", 0, "__metadata__"},
    };
    for (size_t i = 0; i < ELO_ARRAY_LEN(bad); i++) {
        size_t size;
        uint8_t *img = st_image(bad[i].header, bad[i].data, &size);
        elo__safetensors st;
        int rc = elo__safetensors_parse("t.safetensors", img, size, &st);
        if (rc != ELO_CORRUPT || !strstr(elo_errmsg(), bad[i].msg))
            fprintf(stderr, "case %zu: rc %d, '%s'\n", i, rc, elo_errmsg());
        assert_int_equal(rc, ELO_CORRUPT);
        assert_non_null(strstr(elo_errmsg(), bad[i].msg));
        assert_non_null(strstr(elo_errmsg(), "t.safetensors"));
        assert_int_equal(st.count, 0);
        free(img);
    }
    /* Truncated and oversized header lengths. */
    uint8_t small[12] = {4, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' '};
    elo__safetensors st;
    for (size_t n = 0; n < 8; n++)
        assert_int_equal(elo__safetensors_parse("t", small, n, &st), ELO_CORRUPT);
    assert_int_equal(elo__safetensors_parse("t", small, 12, &st), ELO_OK);
    assert_int_equal(st.count, 0);
    elo__safetensors_deinit(&st);
    small[0] = 5;
    assert_int_equal(elo__safetensors_parse("t", small, 12, &st), ELO_CORRUPT);
    small[0] = 4;
    small[7] = 0x80; /* 2^63 */
    assert_int_equal(elo__safetensors_parse("t", small, 12, &st), ELO_CORRUPT);
    assert_non_null(strstr(elo_errmsg(), "header length"));
}

/* ---- configs --------------------------------------------------------------- */

static void test_config(void **state)
{
    (void)state;
    elo_embed_info in;
    const char *good = "{\"model_type\":\"bert\",\"hidden_act\":\"gelu\",\"vocab_size\":10,"
                       "\"hidden_size\":8,\"num_hidden_layers\":1,\"num_attention_heads\":2,"
                       "\"intermediate_size\":16,\"layer_norm_eps\":1e-5}";
    assert_int_equal(elo__bert_config_parse("c", good, strlen(good), &in), ELO_OK);
    assert_int_equal(in.hidden, 8);
    assert_int_equal(in.max_positions, 512);
    assert_int_equal(in.type_vocab, 2);
    assert_true(fabsf(in.layer_norm_eps - 1e-5f) < 1e-9f);
    static const char *const bad[] = {
        "", "[]", "{}",
        "{\"model_type\":\"gpt2\",\"vocab_size\":10,\"hidden_size\":8,\"num_hidden_layers\":1,"
        "\"num_attention_heads\":2,\"intermediate_size\":16}",
        "{\"hidden_act\":\"relu\",\"vocab_size\":10,\"hidden_size\":8,\"num_hidden_layers\":1,"
        "\"num_attention_heads\":2,\"intermediate_size\":16}",
        "{\"vocab_size\":10,\"hidden_size\":9,\"num_hidden_layers\":1,"
        "\"num_attention_heads\":2,\"intermediate_size\":16}",
        "{\"vocab_size\":-1,\"hidden_size\":8,\"num_hidden_layers\":1,"
        "\"num_attention_heads\":2,\"intermediate_size\":16}",
        "{\"vocab_size\":10,\"hidden_size\":\"8\",\"num_hidden_layers\":1,"
        "\"num_attention_heads\":2,\"intermediate_size\":16}",
        "{\"vocab_size\":10,\"hidden_size\":8,\"num_hidden_layers\":1000000,"
        "\"num_attention_heads\":2,\"intermediate_size\":16}",
        "{\"vocab_size\":10,\"hidden_size\":8,\"num_hidden_layers\":1,"
        "\"num_attention_heads\":2,\"intermediate_size\":16,\"layer_norm_eps\":-1}",
        "{\"vocab_size\":10,\"hidden_size\":8,\"num_hidden_layers\":1,"
        "\"num_attention_heads\":2,\"intermediate_size\":16,"
        "\"position_embedding_type\":\"relative_key\"}",
    };
    for (size_t i = 0; i < ELO_ARRAY_LEN(bad); i++) {
        int rc = elo__bert_config_parse("config.json", bad[i], strlen(bad[i]), &in);
        assert_true(rc < 0);
        assert_non_null(strstr(elo_errmsg(), "config.json"));
    }
    elo_pooling p;
    const char *cls = "{\"pooling_mode_cls_token\":true,\"pooling_mode_mean_tokens\":false}";
    assert_int_equal(elo__pooling_config_parse("p", cls, strlen(cls), &p), ELO_OK);
    assert_int_equal(p, ELO_POOLING_CLS);
    const char *two = "{\"pooling_mode_cls_token\":true,\"pooling_mode_mean_tokens\":true}";
    assert_true(elo__pooling_config_parse("p", two, strlen(two), &p) < 0);
    const char *none = "{}";
    assert_true(elo__pooling_config_parse("p", none, strlen(none), &p) < 0);
    const char *wm = "{\"pooling_mode_weightedmean_tokens\":true}";
    assert_true(elo__pooling_config_parse("p", wm, strlen(wm), &p) < 0);
}

/* ---- element-wise kernels ---------------------------------------------------- */

static void test_elementwise(void **state)
{
    (void)state;
    for (int i = -800; i <= 800; i++) {
        float x = i / 100.0f;
        double want = 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
        assert_true(fabs(elo__gelu(x) - want) <= 1e-6 * (1 + fabs(want)));
    }
    float row[2][7], g[7], b[7];
    for (int c = 0; c < 7; c++) {
        row[0][c] = (float)(c * c) - 3.0f;
        row[1][c] = 1000.0f + c * 0.001f;
        g[c] = 1.0f + c * 0.1f;
        b[c] = -0.5f * c;
    }
    float copy[2][7];
    memcpy(copy, row, sizeof row);
    elo__layernorm_rows(&row[0][0], 2, 7, g, b, 1e-12f);
    for (int r = 0; r < 2; r++) {
        double mean = 0, var = 0;
        for (int c = 0; c < 7; c++)
            mean += copy[r][c];
        mean /= 7;
        for (int c = 0; c < 7; c++)
            var += (copy[r][c] - mean) * (copy[r][c] - mean);
        var /= 7;
        for (int c = 0; c < 7; c++) {
            double want = (copy[r][c] - mean) / sqrt(var + 1e-12) * g[c] + b[c];
            assert_true(fabs(row[r][c] - want) <= 1e-5 * (1 + fabs(want)));
        }
    }
    float x[3] = {-1.0f, 0.0f, 2.0f}, bias[3] = {0.5f, 0.25f, -1.0f};
    elo__gelu_bias_rows(x, 1, 3, bias);
    assert_true(fabsf(x[2] - elo__gelu(1.0f)) < 1e-7f);
    assert_true(fabsf(x[0] - elo__gelu(-0.5f)) < 1e-7f);
}

/* ---- the encoder's thread pool ------------------------------------------------------ */

typedef struct {
    int *hits;                  /* per task */
    int *busy;                  /* per thread index: 1 while a task runs on it */
    int threads;
    int bad;
} pool_probe;

static void probe_task(void *arg, int task, int thread)
{
    pool_probe *p = arg;
    if (thread < 0 || thread >= p->threads ||
        __atomic_exchange_n(&p->busy[thread], 1, __ATOMIC_SEQ_CST) != 0)
        __atomic_store_n(&p->bad, 1, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&p->hits[task], 1, __ATOMIC_SEQ_CST);
    if (thread >= 0 && thread < p->threads)
        __atomic_store_n(&p->busy[thread], 0, __ATOMIC_SEQ_CST);
}

/* Every task runs exactly once per job, thread indexes are in range and
 * never shared by two running tasks, across many back-to-back jobs. */
static void test_pool(void **state)
{
    (void)state;
    int threads = elo__embed_threads();
    assert_true(threads >= 1);
    assert_int_equal(elo_embed_cpu_threads(), threads);
    pool_probe p = {.threads = threads};
    p.hits = calloc(257, sizeof *p.hits);
    p.busy = calloc((size_t)threads, sizeof *p.busy);
    for (int job = 0; job < 2000; job++) {
        int n = 1 + job % 257;
        memset(p.hits, 0, 257 * sizeof *p.hits);
        elo__embed_parallel(probe_task, &p, n);
        for (int t = 0; t < n; t++)
            assert_int_equal(p.hits[t], 1);
        for (int t = n; t < 257; t++)
            assert_int_equal(p.hits[t], 0);
    }
    elo__embed_parallel(probe_task, &p, 0);
    assert_int_equal(p.bad, 0);
    free(p.hits);
    free(p.busy);
}

/* ---- the tiny-bert fixture ------------------------------------------------------ */

typedef struct {
    elo_embed_model *m;
    json_t *ref;
} fixture;

static int setup_fixture(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    char path[4096];
    snprintf(path, sizeof path, "%s/fixtures/tiny-bert", shared_dir());
    if (elo_embed_model_open(path, &f->m) < 0) {
        fprintf(stderr, "open %s: %s\n", path, elo_errmsg());
        return -1;
    }
    snprintf(path, sizeof path, "%s/fixtures/tiny_bert_public.json", shared_dir());
    json_error_t jerr;
    f->ref = json_load_file(path, 0, &jerr);
    if (!f->ref)
        return -1;
    *state = f;
    return 0;
}

static int teardown_fixture(void **state)
{
    fixture *f = *state;
    elo_embed_model_free(f->m);
    json_decref(f->ref);
    free(f);
    return 0;
}

static void test_fixture_info(void **state)
{
    fixture *f = *state;
    const elo_embed_info *in = elo_embed_model_info(f->m);
    assert_int_equal(in->hidden, 64);
    assert_int_equal(in->layers, 2);
    assert_int_equal(in->heads, 4);
    assert_int_equal(in->max_seq_length, 128);
    assert_int_equal(in->pooling, ELO_POOLING_MEAN);
    assert_true(in->normalize);
    assert_int_equal(in->weight_type, ELO_DTYPE_F32);
}

/* Embeds every fixture text in one call and compares with the reference. */
static void test_fixture_cpu(void **state)
{
    fixture *f = *state;
    json_t *cases = json_object_get(f->ref, "cases");
    int n = (int)json_array_size(cases);
    const char **texts = calloc((size_t)n, sizeof *texts);
    for (int i = 0; i < n; i++)
        texts[i] = json_string_value(json_object_get(json_array_get(cases, i), "text"));
    elo_embedder *e = NULL;
    assert_int_equal(elo_embedder_new(f->m, elo_backend_cpu(), ELO_DTYPE_F32, &e), ELO_OK);
    float *out = calloc((size_t)n * 64, sizeof *out);
    int32_t **ids = calloc((size_t)n, sizeof *ids);
    int *lens = calloc((size_t)n, sizeof *lens);
    assert_int_equal(elo_embedder_run_texts(e, texts, NULL, n, out, ids, lens), ELO_OK);
    double worst = 0;
    for (int i = 0; i < n; i++) {
        json_t *c = json_array_get(cases, i);
        json_t *want_ids = json_object_get(c, "input_ids");
        json_t *want = json_object_get(c, "embedding");
        assert_int_equal(lens[i], (int)json_array_size(want_ids));
        for (int k = 0; k < lens[i]; k++)
            assert_int_equal(ids[i][k], json_integer_value(json_array_get(want_ids, k)));
        for (int k = 0; k < 64; k++) {
            double d = fabs(out[(size_t)i * 64 + k] - json_real_value(json_array_get(want, k)));
            worst = d > worst ? d : worst;
        }
    }
    assert_true(worst <= 1e-5);
    /* The same call into a buffer from elo_embedder_out_alloc. */
    float *alloc_out = elo_embedder_out_alloc(e, (size_t)n);
    assert_non_null(alloc_out);
    assert_int_equal(elo_embedder_run_ids(e, (const int32_t *const *)ids, lens, n, alloc_out),
                     ELO_OK);
    assert_memory_equal(alloc_out, out, (size_t)n * 64 * sizeof *out);
    elo_embedder_out_free(e, alloc_out);
    elo_embedder_out_free(e, NULL);
    /* One at a time gives the same numbers (batching is invisible). */
    for (int i = 0; i < n; i++) {
        float one[64];
        const int32_t *p = ids[i];
        assert_int_equal(elo_embedder_run_ids(e, &p, &lens[i], 1, one), ELO_OK);
        for (int k = 0; k < 64; k++)
            assert_true(fabsf(one[k] - out[(size_t)i * 64 + k]) <= 1e-6f);
        elo_free(ids[i]);
    }
    /* Bad ids and lengths are errors, not reads out of bounds. */
    int32_t bad_ids[3] = {2, 5000, 3};
    const int32_t *bp = bad_ids;
    int three = 3, zero = 0, huge = 100000;
    float sink[64];
    assert_int_equal(elo_embedder_run_ids(e, &bp, &three, 1, sink), ELO_BADINPUT);
    assert_int_equal(elo_embedder_run_ids(e, &bp, &zero, 1, sink), ELO_BADINPUT);
    assert_int_equal(elo_embedder_run_ids(e, &bp, &huge, 1, sink), ELO_BADINPUT);
    elo_embedder_free(e);
    free(texts);
    free(out);
    free(ids);
    free(lens);
}

static void test_half_needs_gpu(void **state)
{
    fixture *f = *state;
    elo_embedder *e = NULL;
    assert_int_equal(elo_embedder_new(f->m, elo_backend_cpu(), ELO_DTYPE_F16, &e), ELO_BADINPUT);
    assert_null(e);
    assert_non_null(strstr(elo_errmsg(), "GPU"));
}

static void test_missing_model(void **state)
{
    (void)state;
    elo_embed_model *m = NULL;
    assert_int_equal(elo_embed_model_open("/nonexistent/model", &m), ELO_NOTFOUND);
    assert_null(m);
    assert_non_null(strstr(elo_errmsg(), "make model"));
}

/* The Hopper FF1 kernel (bias + GELU in its store) against a double
 * product on fresh random inputs: row counts off the 64-row tile, one row,
 * both slice widths, f16 and bf16. Within the 16-bit rounding of the
 * result (half an ulp is 2^-11 relative for f16, 2^-8 for bf16), scaled
 * by the largest output. Skipped without a GPU of compute capability 9.0. */
static void test_sm90_ff_gelu(void **state)
{
    (void)state;
    if (!elo_gpu_available() || !elo__sm90_ff_ok || !elo__sm90_ff_ok(ELO_DTYPE_F16, 1536, 384))
        skip();
    static const int shapes[][3] = {{1000, 1536, 384}, {1, 1536, 384}, {4160, 768, 384},
                                    {130, 3072, 768}, {64, 1536, 384}};
    elo_dtype types[2] = {ELO_DTYPE_F16, ELO_DTYPE_BF16};
    uint64_t seed = elo_time_ns();
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int t = 0; t < 2; t++) {
            double err = -1, ref = 0;
            int m = shapes[i][0], n = shapes[i][1], k = shapes[i][2];
            assert_int_equal(elo__sm90_ff_check(types[t], m, n, k, seed + i, &err, &ref), ELO_OK);
            double tol = (t == 0 ? 1.0 / 1024 : 1.0 / 128) * (ref > 1 ? ref : 1);
            printf("sm90 ff %s %dx%dx%d: max abs error %.3g (largest output %.3g)\n",
                   t == 0 ? "f16" : "bf16", m, n, k, err, ref);
            assert_true(ref > 1.0);
            assert_true(err <= tol);
        }
}

/* Fresh random token sequences of varied lengths: CUDA f32 within 1e-4 of
 * the CPU, f16 and bf16 within cosine 0.999. Skipped without a GPU. */
static void test_cuda_matches_cpu(void **state)
{
    fixture *f = *state;
    elo_backend *gpu = NULL;
    if (!elo_gpu_available() || elo_backend_get(ELO_DEVICE_CUDA, &gpu) < 0 ||
        !elo__embed_cuda_new)
        skip();
    const elo_embed_info *in = elo_embed_model_info(f->m);
    int H = in->hidden;
    enum { N = 45 };
    int32_t *ids[N];
    int lens[N];
    srand((unsigned)elo_time_ns());
    for (int i = 0; i < N; i++) {
        lens[i] = i < 3 ? (i == 0 ? 1 : i == 1 ? 2 : in->max_seq_length)
                        : 2 + rand() % (in->max_seq_length - 1);
        ids[i] = malloc((size_t)lens[i] * sizeof **ids);
        for (int k = 0; k < lens[i]; k++)
            ids[i][k] = rand() % in->vocab_size;
    }
    float *ref = calloc((size_t)N * H, sizeof *ref), *got = calloc((size_t)N * H, sizeof *got);
    elo_embedder *cpu = NULL;
    assert_int_equal(elo_embedder_new(f->m, elo_backend_cpu(), ELO_DTYPE_F32, &cpu), ELO_OK);
    assert_int_equal(elo_embedder_run_ids(cpu, (const int32_t *const *)ids, lens, N, ref), ELO_OK);
    elo_embedder_free(cpu);
    elo_dtype precs[3] = {ELO_DTYPE_F32, ELO_DTYPE_F16, ELO_DTYPE_BF16};
    for (int p = 0; p < 3; p++) {
        elo_embedder *e = NULL;
        assert_int_equal(elo_embedder_new(f->m, gpu, precs[p], &e), ELO_OK);
        /* Twice: the second run replays what the first one set up; a
         * third time into a buffer from elo_embedder_out_alloc, which the
         * GPU writes directly (N sequences in one bucket, over the graph
         * size). */
        float *locked = elo_embedder_out_alloc(e, N);
        assert_non_null(locked);
        for (int rep = 0; rep < 3; rep++) {
            float *dst = rep == 2 ? locked : got;
            memset(dst, 0, (size_t)N * H * sizeof *dst);
            int rc = elo_embedder_run_ids(e, (const int32_t *const *)ids, lens, N, dst);
            if (rc < 0)
                fprintf(stderr, "cuda %s: %s\n", elo_dtype_name(precs[p]), elo_errmsg());
            assert_int_equal(rc, ELO_OK);
            double worst_abs = 0, worst_cos = 1;
            for (int i = 0; i < N; i++) {
                double dot = 0, na = 0, nb = 0;
                for (int k = 0; k < H; k++) {
                    double a = ref[(size_t)i * H + k], b = dst[(size_t)i * H + k];
                    dot += a * b;
                    na += a * a;
                    nb += b * b;
                    worst_abs = fmax(worst_abs, fabs(a - b));
                }
                worst_cos = fmin(worst_cos, dot / sqrt(na * nb));
            }
            fprintf(stderr, "cuda %s%s: max abs %.3g, min cosine %.8f\n",
                    elo_dtype_name(precs[p]), rep == 2 ? " (out_alloc)" : "", worst_abs,
                    worst_cos);
            if (precs[p] == ELO_DTYPE_F32)
                assert_true(worst_abs <= 1e-4);
            else
                assert_true(worst_cos >= 0.999);
        }
        /* Single short sequences agree too: the first run of a shape is
         * eager, later ones replay its CUDA graph. */
        for (int i = 0; i < 4; i++)
            for (int rep = 0; rep < 3; rep++) {
                float one[1024];
                assert_true(H <= 1024);
                const int32_t *pi = ids[i + 3];
                assert_int_equal(elo_embedder_run_ids(e, &pi, &lens[i + 3], 1, one), ELO_OK);
                for (int k = 0; k < H; k++)
                    assert_true(fabsf(one[k] - ref[(size_t)(i + 3) * H + k]) <=
                                (precs[p] == ELO_DTYPE_F32 ? 1e-4f : 2e-2f));
            }
        elo_embedder_out_free(e, locked);
        elo_embedder_free(e);
    }
    for (int i = 0; i < N; i++)
        free(ids[i]);
    free(ref);
    free(got);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_safetensors_valid),
        cmocka_unit_test(test_safetensors_malformed),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_elementwise),
        cmocka_unit_test(test_missing_model),
        cmocka_unit_test(test_pool),
    };
    const struct CMUnitTest model_tests[] = {
        cmocka_unit_test(test_fixture_info),
        cmocka_unit_test(test_fixture_cpu),
        cmocka_unit_test(test_half_needs_gpu),
        cmocka_unit_test(test_cuda_matches_cpu),
        cmocka_unit_test(test_sm90_ff_gelu),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    failed += cmocka_run_group_tests(model_tests, setup_fixture, teardown_fixture);
    return failed;
}
