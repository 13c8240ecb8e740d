/* bench-embed.c - `elohim bench embed`: our encoder against
 * sentence-transformers (bench/peer-embed.py) in the same run, same model
 * folder, same texts, same batch shapes.
 *
 * Cases are "TOKENSxBATCH": texts that tokenize to exactly TOKENS ids
 * ([CLS] + words + [SEP]), BATCH of them per call. Two measurements, each
 * its own table (--mode): end to end, where both sides tokenize and encode
 * (the whole user-visible cost), and model only, where both run the model
 * on ids tokenized once before timing (ours elo_embedder_run_ids; the peer
 * the module chain on token tensors already on the device, plus the copy of
 * the embeddings to host memory), the basis of the PyTorch figures our
 * goals were set against. Latency is the median call time; throughput is
 * sentences per second over the timed calls. The floor is the work in
 * FLOPs over the GEMM peak measured here (OpenBLAS sgemm on the CPU, cuBLAS
 * on the GPU), so each row says how far we are from it. */
#include "cli.h"
#include "elohim/embed.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_MODEL "models/all-MiniLM-L6-v2"

typedef struct {
    int tokens, batch;
} bench_case;

/* What is timed; --mode both is the two bits. */
enum {
    BENCH_E2E = 1,   /* tokenize + encode: elo_embedder_run_texts */
    BENCH_MODEL = 2  /* the model on pre-tokenized ids: elo_embedder_run_ids */
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* FLOPs of one sequence of `len` tokens through the encoder. */
static double encoder_flops(const elo_embed_info *in, int len)
{
    double H = in->hidden, I = in->intermediate;
    double dense = 2.0 * len * (4 * H * H + 2 * H * I);
    double attn = 4.0 * (double)len * len * H;
    return in->layers * (dense + attn);
}

/* Fills n elements of dtype `prec` with values in [1, 2) (f32: [-1, 1)).
 * Not zeros: calloc'd zeros all map one page, which flatters the rate. */
static void fill_values(void *p, size_t n, elo_dtype prec)
{
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        if (prec == ELO_DTYPE_F32)
            ((float *)p)[i] = (float)(x >> 8) / 8388608.0f - 1.0f;
        else if (prec == ELO_DTYPE_F16)
            ((uint16_t *)p)[i] = (uint16_t)(0x3C00 | (x >> 22));
        else
            ((uint16_t *)p)[i] = (uint16_t)(0x3F80 | (x >> 25));
    }
}

/* GEMM rate of this device at an encoder-like shape and the run's input
 * precision, GFLOP/s. */
static double gemm_peak(elo_backend *b, const elo_embed_info *in, elo_dtype prec)
{
    int m = 4096, n = in->intermediate, k = in->hidden;
    size_t es = elo_dtype_size(prec);
    size_t na = (size_t)m * k, nb = (size_t)n * k, nc = (size_t)m * n;
    void *ha = elo_calloc(na, es), *hb = elo_calloc(nb, es);
    void *a = NULL, *bm = NULL, *c = NULL;
    double best = 0;
    if (!ha || !hb)
        goto out;
    fill_values(ha, na, prec);
    fill_values(hb, nb, prec);
    if (elo_backend_alloc(b, na * es, &a) < 0 || elo_backend_alloc(b, nb * es, &bm) < 0 ||
        elo_backend_alloc(b, nc * 4, &c) < 0)
        goto out;
    elo_backend_upload(b, a, ha, na * es);
    elo_backend_upload(b, bm, hb, nb * es);
    elo_gemm g = {.trans_b = 0, .m = m, .n = n, .k = k, .alpha = 1, .beta = 0, .a = a,
                  .lda = k, .b = bm, .ldb = n, .c = c, .ldc = n,
                  .in_type = prec, .out_type = ELO_DTYPE_F32};
    for (int rep = 0; rep < 6; rep++) {
        double t0 = elo_time_sec();
        if (elo_backend_gemm(b, &g) < 0 || elo_backend_sync(b) < 0)
            break;
        double dt = elo_time_sec() - t0;
        double rate = 2.0 * m * n * k / dt / 1e9;
        best = rate > best ? rate : best;
    }
out:
    elo_backend_free(b, a);
    elo_backend_free(b, bm);
    elo_backend_free(b, c);
    elo_free(ha);
    elo_free(hb);
    return best;
}

/* A text of exactly `tokens` ids with this tokenizer: "hello" repeated. */
static char *make_text(const elo_tokenizer *t, int tokens)
{
    static const char *const words[] = {"hello", "world", "search", "the", "a"};
    const char *word = "a";
    for (size_t i = 0; i < ELO_ARRAY_LEN(words); i++)
        if (elo_tokenizer_lookup(t, words[i]) >= 0) {
            word = words[i];
            break;
        }
    size_t wl = strlen(word);
    int n = tokens > 2 ? tokens - 2 : 0;
    char *s = elo_malloc((size_t)n * (wl + 1) + 1);
    if (!s)
        return NULL;
    size_t p = 0;
    for (int i = 0; i < n; i++) {
        memcpy(s + p, word, wl);
        p += wl;
        s[p++] = ' ';
    }
    s[p] = '\0';
    return s;
}

typedef struct {
    double median_ms, sent_per_s; /* < 0: not measured */
    double cpu_ms;              /* process CPU time per call (all threads) */
} bench_result;

/* One timed call: the texts (BENCH_E2E) or their ids (BENCH_MODEL). */
static int embed_once(elo_embedder *e, int mode, const char *const *texts,
                      const int32_t *const *rows, const int *lens, int count, float *out)
{
    if (mode == BENCH_MODEL)
        return elo_embedder_run_ids(e, rows, lens, count, out);
    return elo_embedder_run_texts(e, texts, NULL, count, out, NULL, NULL);
}

/* Times case `bc` in one mode (BENCH_E2E or BENCH_MODEL) into *r. Both
 * modes embed BATCH copies of one text; BENCH_MODEL tokenizes it once,
 * before timing, with the model's tokenizer and max_seq_length (what
 * elo_embedder_run_texts does per text and call), and every row points at
 * those ids. A text that does not give exactly bc.tokens ids is
 * ELO_INTERNAL. Returns a negative status on error. */
static int run_case(elo_embedder *e, const elo_embed_model *m, bench_case bc, int mode,
                    double min_sec, bench_result *r)
{
    const elo_embed_info *in = elo_embed_model_info(m);
    const elo_tokenizer *tok = elo_embed_model_tokenizer(m);
    char *text = make_text(tok, bc.tokens);
    const char **texts = elo_calloc((size_t)bc.batch, sizeof *texts);
    int32_t *ids = elo_malloc((size_t)in->max_seq_length * sizeof *ids);
    const int32_t **rows = elo_calloc((size_t)bc.batch, sizeof *rows);
    int *lens = elo_calloc((size_t)bc.batch, sizeof *lens);
    float *out = elo_embedder_out_alloc(e, (size_t)bc.batch); /* page-locked on CUDA */
    double *times = elo_calloc(10000, sizeof *times);
    int rc = ELO_OK;
    if (!text || !texts || !ids || !rows || !lens || !out || !times) {
        rc = elo_seterr(ELO_NOMEM, "out of memory");
        goto out;
    }
    if (mode == BENCH_MODEL) {
        int n = elo_tokenizer_encode(tok, text, strlen(text), ids, in->max_seq_length);
        if (n < 0) {
            rc = n;
            goto out;
        }
        if (n != bc.tokens) {
            rc = elo_seterr(ELO_INTERNAL, "case %dx%d: the text gives %d ids", bc.tokens,
                            bc.batch, n);
            goto out;
        }
        for (int i = 0; i < bc.batch; i++) {
            rows[i] = ids;
            lens[i] = n;
        }
    }
    for (int i = 0; i < bc.batch; i++)
        texts[i] = text;
    for (int w = 0; w < 3; w++)
        if ((rc = embed_once(e, mode, texts, rows, lens, bc.batch, out)) < 0)
            goto out;
    int n = 0;
    double total = 0;
    uint64_t cpu0 = elo_cpu_time_ns();
    while (n < 10000 && (total < min_sec || n < 5)) {
        double t0 = elo_time_sec();
        if ((rc = embed_once(e, mode, texts, rows, lens, bc.batch, out)) < 0)
            goto out;
        times[n] = elo_time_sec() - t0;
        total += times[n++];
    }
    r->cpu_ms = (double)(elo_cpu_time_ns() - cpu0) / 1e6 / n;
    qsort(times, n, sizeof *times, cmp_double);
    r->median_ms = times[n / 2] * 1e3;
    r->sent_per_s = bc.batch * n / total;
out:
    elo_free(text);
    elo_free(texts);
    elo_free(ids);
    elo_free(rows);
    elo_free(lens);
    elo_embedder_out_free(e, out);
    elo_free(times);
    return rc;
}

static const char *mode_name(int mode)
{
    return mode == BENCH_E2E ? "e2e" : mode == BENCH_MODEL ? "model" : "both";
}

/* Runs the peer once for every case in `mode`; fills peer_e2e[i] and
 * peer_model[i] (< 0: not measured). A peer line without "mode" is e2e. */
static void run_peer(const char *python, const char *model, const char *device,
                     const char *precision, const bench_case *cases, int ncases, int mode,
                     double min_sec, bench_result *peer_e2e, bench_result *peer_model)
{
    char cmd[8192], spec[1024] = "";
    for (int i = 0; i < ncases; i++) {
        size_t used = strlen(spec);
        snprintf(spec + used, sizeof spec - used, "%s%dx%d", i ? "," : "", cases[i].tokens,
                 cases[i].batch);
    }
    snprintf(cmd, sizeof cmd,
             "'%s' bench/peer-embed.py --model '%s' --device %s --precision %s --cases %s "
             "--seconds %.2f --mode %s",
             python, model, device, precision, spec, min_sec, mode_name(mode));
    for (int i = 0; i < ncases; i++)
        peer_e2e[i].median_ms = peer_e2e[i].sent_per_s = peer_model[i].median_ms =
            peer_model[i].sent_per_s = -1;
    FILE *p = cli_popen_peer(cmd);
    if (!p) {
        elo_warn("bench embed: cannot run the peer: %s", cmd);
        return;
    }
    char line[1024];
    while (fgets(line, sizeof line, p)) {
        json_error_t jerr;
        json_t *o = json_loads(line, 0, &jerr);
        if (!o)
            continue;
        int tokens = (int)json_integer_value(json_object_get(o, "tokens"));
        int batch = (int)json_integer_value(json_object_get(o, "batch"));
        const char *line_mode = json_string_value(json_object_get(o, "mode"));
        bench_result *peer = line_mode && !strcmp(line_mode, "model") ? peer_model : peer_e2e;
        for (int i = 0; i < ncases; i++)
            if (cases[i].tokens == tokens && cases[i].batch == batch) {
                peer[i].median_ms = json_number_value(json_object_get(o, "median_ms"));
                peer[i].sent_per_s = json_number_value(json_object_get(o, "sentences_per_s"));
            }
        json_decref(o);
    }
    int st = pclose(p);
    if (st != 0)
        elo_warn("bench embed: the peer exited with status %d (%s)", st, cmd);
}

/* A measured value, or null when it was not measured (< 0). */
static json_t *json_measured(double v)
{
    return v >= 0 ? json_real(v) : json_null();
}

/* One table: a row per case, ours beside the peer ("n/a" when the peer
 * did not measure it). */
static void print_table(const elo_embed_info *in, double peak, const bench_case *cases,
                        int ncases, const bench_result *ours, const bench_result *peer)
{
    printf("%-10s %10s %10s %12s %12s %14s %14s %8s\n", "case", "GFLOP", "floor ms",
           "ours ms", "peer ms", "ours sent/s", "peer sent/s", "speedup");
    for (int i = 0; i < ncases; i++) {
        double flops = encoder_flops(in, cases[i].tokens) * cases[i].batch;
        char name[32], pm[32] = "n/a", ps[32] = "n/a", sp[32] = "n/a";
        snprintf(name, sizeof name, "%dx%d", cases[i].tokens, cases[i].batch);
        if (peer[i].median_ms >= 0) {
            snprintf(pm, sizeof pm, "%.3f", peer[i].median_ms);
            snprintf(ps, sizeof ps, "%.0f", peer[i].sent_per_s);
            snprintf(sp, sizeof sp, "%.2fx", peer[i].median_ms / ours[i].median_ms);
        }
        printf("%-10s %10.3f %10.3f %12.3f %12s %14.0f %14s %8s\n", name, flops / 1e9,
               peak > 0 ? flops / peak / 1e6 : 0.0, ours[i].median_ms, pm, ours[i].sent_per_s,
               ps, sp);
    }
}

static const char *find_python(void)
{
    const char *env = getenv("ELOHIM_PEER_PYTHON");
    if (env && *env)
        return env;
    if (access(".venv/bin/python", X_OK) == 0)
        return ".venv/bin/python";
    return "python3";
}

int bench_embed(int argc, char **argv)
{
    const char *model_dir = DEFAULT_MODEL, *device = "cpu", *precision = "f32";
    const char *case_spec = NULL;
    int json = 0, peer_on = 1, mode = BENCH_E2E | BENCH_MODEL;
    double seconds = 2.0;
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'}, {"device", required_argument, NULL, 'd'},
        {"precision", required_argument, NULL, 'p'}, {"cases", required_argument, NULL, 'c'},
        {"seconds", required_argument, NULL, 's'}, {"no-peer", no_argument, NULL, 'n'},
        {"json", no_argument, NULL, 'j'}, {"mode", required_argument, NULL, 'M'},
        {"help", no_argument, NULL, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:d:p:c:s:njM:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model_dir = optarg; break;
        case 'd': device = optarg; break;
        case 'p': precision = optarg; break;
        case 'c': case_spec = optarg; break;
        case 's':
            if (elo_parse_f64(optarg, &seconds) < 0 || seconds <= 0 || seconds > 600)
                return cli_fail(CLI_USAGE, "bench embed", "--seconds must be in (0, 600]");
            break;
        case 'n': peer_on = 0; break;
        case 'j': json = 1; break;
        case 'M':
            mode = !strcmp(optarg, "e2e")     ? BENCH_E2E
                   : !strcmp(optarg, "model") ? BENCH_MODEL
                   : !strcmp(optarg, "both")  ? BENCH_E2E | BENCH_MODEL
                                              : 0;
            if (!mode)
                return cli_fail(CLI_USAGE, "bench embed", "--mode %s: expected e2e, model or "
                                "both", optarg);
            break;
        case 'h':
            printf("usage: elohim bench embed [--model DIR] [--device cpu|cuda] "
                   "[--precision f32|f16|bf16]\n"
                   "                          [--cases 32x1,128x32] [--seconds S] [--no-peer] "
                   "[--json]\n"
                   "                          [--mode e2e|model|both]\n"
                   "Ours vs sentence-transformers (bench/peer-embed.py; python from "
                   "$ELOHIM_PEER_PYTHON or .venv).\n"
                   "--mode: e2e times tokenize + encode on both sides; model times the model\n"
                   "alone on ids tokenized before timing; both (default) prints both tables.\n");
            return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    elo_device_kind kind;
    if (elo_device_parse(device, &kind) < 0)
        return cli_fail(CLI_USAGE, "bench embed", "--device %s: expected cpu or cuda", device);
    if (kind == ELO_DEVICE_AUTO)
        kind = elo_gpu_available() ? ELO_DEVICE_CUDA : ELO_DEVICE_CPU;
    elo_dtype prec = !strcmp(precision, "f16")    ? ELO_DTYPE_F16
                     : !strcmp(precision, "bf16") ? ELO_DTYPE_BF16
                     : !strcmp(precision, "f32")  ? ELO_DTYPE_F32
                                                  : (elo_dtype)-1;
    if ((int)prec < 0)
        return cli_fail(CLI_USAGE, "bench embed", "--precision %s: expected f32, f16 or bf16",
                        precision);
    if (prec != ELO_DTYPE_F32 && kind != ELO_DEVICE_CUDA)
        return cli_fail(CLI_USAGE, "bench embed", "--precision %s needs --device cuda",
                        precision);
    elo_backend *b = cli_backend("bench embed", kind, ELO_OP_EMBED, 0);
    if (!b)
        return CLI_USAGE;
    bench_case cases[16];
    int ncases = 0;
    const char *spec = case_spec ? case_spec
                       : kind == ELO_DEVICE_CUDA ? "32x1,32x1024,128x256"
                                                 : "32x1,128x32";
    for (const char *p = spec; *p && ncases < 16;) {
        int t, bt, used = 0;
        if (sscanf(p, "%dx%d%n", &t, &bt, &used) != 2 || t < 2 || bt < 1 || bt > 100000)
            return cli_fail(CLI_USAGE, "bench embed", "--cases: expected TOKENSxBATCH,... "
                            "(e.g. 32x1,128x32)");
        cases[ncases].tokens = t;
        cases[ncases++].batch = bt;
        p += used;
        if (*p == ',')
            p++;
        else if (*p)
            return cli_fail(CLI_USAGE, "bench embed", "--cases: unexpected '%s'", p);
    }
    elo_embed_model *m = NULL;
    if (elo_embed_model_open(model_dir, &m) < 0)
        return cli_fail(CLI_FAIL, "bench embed", "%s", elo_errmsg());
    const elo_embed_info *in = elo_embed_model_info(m);
    for (int i = 0; i < ncases; i++)
        if (cases[i].tokens > in->max_seq_length) {
            elo_embed_model_free(m);
            return cli_fail(CLI_USAGE, "bench embed", "case %dx%d: the model takes at most %d "
                            "tokens", cases[i].tokens, cases[i].batch, in->max_seq_length);
        }
    elo_embedder *e = NULL;
    int rc = elo_embedder_new(m, b, prec, &e);
    if (rc < 0) {
        int code = cli_status_fail("bench embed", rc);
        elo_embed_model_free(m);
        return code;
    }
    double peak = gemm_peak(b, in, prec);
    bench_result ours_e2e[16], ours_model[16], peer_e2e[16], peer_model[16];
    for (int i = 0; i < ncases; i++) {
        ours_e2e[i].median_ms = ours_e2e[i].sent_per_s = ours_e2e[i].cpu_ms = -1;
        ours_model[i] = ours_e2e[i];
        for (int md = BENCH_E2E; md <= BENCH_MODEL; md <<= 1) {
            if (!(mode & md))
                continue;
            bench_result *r = md == BENCH_MODEL ? &ours_model[i] : &ours_e2e[i];
            if ((rc = run_case(e, m, cases[i], md, seconds, r)) < 0) {
                int code = cli_status_fail("bench embed", rc);
                elo_embedder_free(e);
                elo_embed_model_free(m);
                return code;
            }
            if (!json)
                fprintf(stderr, "ours %s%dx%d: %.3f ms median, %.3f ms CPU per call\n",
                        md == BENCH_MODEL ? "model only " : "", cases[i].tokens,
                        cases[i].batch, r->median_ms, r->cpu_ms);
        }
    }
    elo_embedder_free(e);
    if (peer_on) {
        /* The peer runs after ours, alone on the machine. */
        const char *peer_prec = prec == ELO_DTYPE_F32 ? "f32" : precision;
        run_peer(find_python(), model_dir, kind == ELO_DEVICE_CUDA ? "cuda" : "cpu", peer_prec,
                 cases, ncases, mode, seconds, peer_e2e, peer_model);
    } else {
        for (int i = 0; i < ncases; i++)
            peer_e2e[i].median_ms = peer_e2e[i].sent_per_s = peer_model[i].median_ms =
                peer_model[i].sent_per_s = -1;
    }
    elo_cpu_info cpu;
    elo_cpu_probe(&cpu);
    elo_gpu_info gpu;
    const char *dev_name = cpu.model;
    if (kind == ELO_DEVICE_CUDA && elo_gpu_probe(&gpu) == ELO_OK)
        dev_name = gpu.name;
    if (json) {
        json_t *o = json_object();
        json_object_set_new(o, "device", json_string(elo_device_name(kind)));
        json_object_set_new(o, "device_name", json_string(dev_name));
        json_object_set_new(o, "precision", json_string(precision));
        json_object_set_new(o, "model", json_string(model_dir));
        json_object_set_new(o, "mode", json_string(mode_name(mode)));
        json_object_set_new(o, "gemm_peak_gflops", json_real(peak));
        json_t *rows = json_array();
        for (int i = 0; i < ncases; i++) {
            json_t *r = json_object();
            double flops = encoder_flops(in, cases[i].tokens) * cases[i].batch;
            json_object_set_new(r, "tokens", json_integer(cases[i].tokens));
            json_object_set_new(r, "batch", json_integer(cases[i].batch));
            json_object_set_new(r, "ours_median_ms", json_measured(ours_e2e[i].median_ms));
            json_object_set_new(r, "ours_sentences_per_s", json_measured(ours_e2e[i].sent_per_s));
            json_object_set_new(r, "ours_cpu_ms_per_call", json_measured(ours_e2e[i].cpu_ms));
            json_object_set_new(r, "floor_ms", json_real(peak > 0 ? flops / peak / 1e6 : 0));
            json_object_set_new(r, "peer_median_ms", json_measured(peer_e2e[i].median_ms));
            json_object_set_new(r, "peer_sentences_per_s", json_measured(peer_e2e[i].sent_per_s));
            json_object_set_new(r, "ours_model_median_ms", json_measured(ours_model[i].median_ms));
            json_object_set_new(r, "ours_model_sentences_per_s",
                                json_measured(ours_model[i].sent_per_s));
            json_object_set_new(r, "ours_model_cpu_ms_per_call",
                                json_measured(ours_model[i].cpu_ms));
            json_object_set_new(r, "peer_model_median_ms", json_measured(peer_model[i].median_ms));
            json_object_set_new(r, "peer_model_sentences_per_s",
                                json_measured(peer_model[i].sent_per_s));
            json_array_append_new(rows, r);
        }
        json_object_set_new(o, "cases", rows);
        cli_print_json(o);
    } else {
        printf("embed benchmark: %s, %s %s, %d threads, model %s (H=%d, %d layers)\n",
               elo_device_name(kind), dev_name, precision,
               kind == ELO_DEVICE_CPU ? elo_embed_cpu_threads() : 0, model_dir, in->hidden,
               in->layers);
        printf("GEMM rate measured here (%s, 4096x%dx%d): %.1f GFLOP/s; floor = encoder FLOPs / "
               "that rate\n", elo_dtype_name(prec), in->intermediate, in->hidden, peak);
        if (mode & BENCH_E2E) {
            printf("end to end (tokenize + encode):\n");
            print_table(in, peak, cases, ncases, ours_e2e, peer_e2e);
        }
        if (mode & BENCH_MODEL) {
            printf("model only (pre-tokenized ids):\n");
            print_table(in, peak, cases, ncases, ours_model, peer_model);
        }
        printf("(speedup = peer median / ours median; tokens include [CLS] and [SEP])\n");
    }
    elo_embed_model_free(m);
    return CLI_OK;
}
