/* cmd-embed.c - `elohim embed`: sentence embeddings from the command line.
 *
 *   elohim embed [--model DIR] [--device D] [--precision P] [--ids] TEXT...
 *   elohim embed [--model DIR] --input FILE.jsonl [--output FILE.jsonl] [--ids]
 *
 * One JSON line per text, {"embedding":[...]} (+ "input_ids" with --ids),
 * floats printed with 9 significant digits so the f32 values round-trip.
 * A JSONL input is streamed in batches: memory stays constant whatever the
 * file size. An --output file is written beside itself and renamed into
 * place only when every line succeeded. */
#include "cli.h"
#include "elohim/embed.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_MODEL "models/all-MiniLM-L6-v2"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: elohim embed [--model DIR] [--device auto|cpu|cuda] [--precision f32|f16|bf16]\n"
            "                    [--ids] TEXT...\n"
            "       elohim embed [--model DIR] --input FILE.jsonl [--output FILE.jsonl] [--ids]\n"
            "                    [--batch N (default 64 on the CPU, 1024 on a GPU)]\n\n"
            "Prints one JSON line per text: {\"embedding\":[...]} (and \"input_ids\" with --ids).\n"
            "--tokenize prints only {\"input_ids\":[...]} (no encoder run).\n"
            "Each line of FILE.jsonl is a JSON string. --model defaults to %s\n"
            "(fetch it with `make model`). f16/bf16 need a GPU.\n", DEFAULT_MODEL);
}

/* Appends one output line for an embedding (and its ids). */
static int write_line(FILE *out, const float *v, int dim, const int32_t *ids, int nids)
{
    fputs("{\"embedding\":[", out);
    for (int i = 0; i < dim; i++)
        fprintf(out, i ? ",%.9g" : "%.9g", (double)v[i]);
    fputc(']', out);
    if (ids) {
        fputs(",\"input_ids\":[", out);
        for (int i = 0; i < nids; i++)
            fprintf(out, i ? ",%d" : "%d", (int)ids[i]);
        fputc(']', out);
    }
    fputs("}\n", out);
    return ferror(out) ? ELO_IO : ELO_OK;
}

typedef struct {
    elo_embedder *e;
    const elo_tokenizer *tok;   /* --tokenize: ids only, no encoder */
    int max_tokens;
    int dim, want_ids;
    FILE *out;
    char **texts;
    size_t *lens;
    int count, cap;
    long *lines;                /* input line of each text (file mode) */
    const char *input_name;
    float *vecs;
} batch_state;

/* --tokenize: one {"input_ids":[...]} line per text. */
static int flush_tokens(batch_state *s)
{
    int32_t *ids = elo_malloc((size_t)s->max_tokens * sizeof *ids);
    int rc = ids ? ELO_OK : elo_seterr(ELO_NOMEM, "out of memory");
    /* Pass 0 checks every text, pass 1 prints: a bad text prints nothing. */
    for (int pass = 0; pass < 2; pass++)
    for (int i = 0; rc == ELO_OK && i < s->count; i++) {
        int n = elo_tokenizer_encode(s->tok, s->texts[i], s->lens[i], ids, s->max_tokens);
        if (n < 0) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", elo_errmsg());
            if (s->input_name)
                rc = elo_seterr(n, "%s:%ld: %s", s->input_name, s->lines[i], msg);
            else
                rc = elo_seterr(n, "text %d: %s", i + 1, msg);
            break;
        }
        if (pass == 0)
            continue;
        fputs("{\"input_ids\":[", s->out);
        for (int k = 0; k < n; k++)
            fprintf(s->out, k ? ",%d" : "%d", (int)ids[k]);
        fputs("]}\n", s->out);
        if (ferror(s->out))
            rc = elo_seterr(ELO_IO, "writing the output failed");
    }
    elo_free(ids);
    for (int i = 0; i < s->count; i++)
        elo_free(s->texts[i]);
    s->count = 0;
    return rc;
}

static int flush_batch(batch_state *s)
{
    if (s->count == 0)
        return ELO_OK;
    if (s->tok)
        return flush_tokens(s);
    int32_t **ids = s->want_ids ? elo_calloc((size_t)s->count, sizeof *ids) : NULL;
    int *nids = s->want_ids ? elo_calloc((size_t)s->count, sizeof *nids) : NULL;
    if (s->want_ids && (!ids || !nids)) {
        elo_free(ids);
        elo_free(nids);
        return elo_seterr(ELO_NOMEM, "out of memory");
    }
    int rc = elo_embedder_run_texts(s->e, (const char *const *)s->texts, s->lens, s->count,
                                    s->vecs, ids, nids);
    if (rc < 0 && s->input_name) {
        /* "text N: ..." -> name the file and line instead. */
        char msg[600];
        const char *detail = elo_errmsg();
        int n = 0;
        if (sscanf(detail, "text %d:", &n) == 1) {
            const char *colon = strchr(detail, ':');
            long line = n >= 1 && n <= s->count ? s->lines[n - 1] : 0;
            snprintf(msg, sizeof msg, "%s:%ld:%s", s->input_name, line, colon + 1);
        } else {
            snprintf(msg, sizeof msg, "%s: %s", s->input_name, detail);
        }
        elo_seterr(rc, "%s", msg);
    }
    for (int i = 0; rc == ELO_OK && i < s->count; i++)
        rc = write_line(s->out, s->vecs + (size_t)i * s->dim, s->dim, ids ? ids[i] : NULL,
                        nids ? nids[i] : 0);
    if (rc == ELO_IO)
        elo_seterr(rc, "writing the output failed");
    for (int i = 0; i < s->count; i++) {
        elo_free(s->texts[i]);
        if (ids)
            elo_free(ids[i]);
    }
    elo_free(ids);
    elo_free(nids);
    s->count = 0;
    return rc;
}

static int run_file(batch_state *s, const char *input, elo_progress *pg)
{
    FILE *in = strcmp(input, "-") ? fopen(input, "rb") : stdin;
    if (!in)
        return elo_seterr(ELO_IO, "%s: cannot open it", input);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0;
    uint64_t done = 0;
    int rc = ELO_OK;
    while ((n = getline(&line, &cap, in)) >= 0) {
        lineno++;
        done += (uint64_t)n;
        if (n > (16 << 20)) {
            rc = elo_seterr(ELO_BADINPUT, "%s:%ld: line is longer than 16 MiB", input, lineno);
            break;
        }
        size_t len = (size_t)n;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            len--;
        size_t lead = 0;
        while (lead < len && (line[lead] == ' ' || line[lead] == '\t'))
            lead++;
        if (lead == len)
            continue; /* blank line */
        json_error_t jerr;
        json_t *v = json_loadb(line, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        if (!json_is_string(v)) {
            rc = elo_seterr(ELO_BADINPUT, "%s:%ld: %s (byte %d): each line must be a JSON string",
                            input, lineno, v ? "not a string" : jerr.text,
                            v ? 0 : jerr.position);
            json_decref(v);
            break;
        }
        s->lines[s->count] = lineno;
        size_t sl = json_string_length(v);
        s->texts[s->count] = elo_malloc(sl + 1);
        if (!s->texts[s->count]) {
            json_decref(v);
            rc = elo_seterr(ELO_NOMEM, "out of memory");
            break;
        }
        memcpy(s->texts[s->count], json_string_value(v), sl + 1);
        s->lens[s->count++] = sl;
        json_decref(v);
        if (s->count == s->cap) {
            if ((rc = flush_batch(s)) < 0)
                break;
            elo_progress_update(pg, done);
        }
    }
    if (rc == ELO_OK && ferror(in))
        rc = elo_seterr(ELO_IO, "%s: read error", input);
    if (rc == ELO_OK)
        rc = flush_batch(s);
    else
        for (int i = 0; i < s->count; i++)
            elo_free(s->texts[i]);
    free(line);
    if (in != stdin)
        fclose(in);
    return rc;
}

int cmd_embed(int argc, char **argv)
{
    const char *model_dir = DEFAULT_MODEL, *input = NULL, *output = NULL;
    const char *device = "auto", *precision = "f32";
    int want_ids = 0, batch_given = 0, tokenize_only = 0;
    int64_t batch = 64;
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},  {"device", required_argument, NULL, 'd'},
        {"precision", required_argument, NULL, 'p'}, {"input", required_argument, NULL, 'i'},
        {"output", required_argument, NULL, 'o'}, {"ids", no_argument, NULL, 'I'},
        {"batch", required_argument, NULL, 'b'},  {"help", no_argument, NULL, 'h'},
        {"json", no_argument, NULL, 'j'}, {"tokenize", no_argument, NULL, 'T'},
        {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:d:p:i:o:b:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model_dir = optarg; break;
        case 'd': device = optarg; break;
        case 'p': precision = optarg; break;
        case 'i': input = optarg; break;
        case 'o': output = optarg; break;
        case 'I': want_ids = 1; break;
        case 'b':
            if (elo_parse_i64(optarg, &batch) < 0 || batch < 1 || batch > 65536)
                return cli_fail(CLI_USAGE, "embed", "--batch must be 1..65536");
            batch_given = 1;
            break;
        case 'j': break; /* the output is always JSON lines */
        case 'T': tokenize_only = 1; break;
        case 'h': usage(stdout); return CLI_OK;
        default: usage(stderr); return CLI_USAGE;
        }
    }
    int ntexts = argc - optind;
    if (!input && ntexts == 0) {
        usage(stderr);
        return cli_fail(CLI_USAGE, "embed", "give TEXT arguments or --input FILE.jsonl");
    }
    if (input && ntexts > 0)
        return cli_fail(CLI_USAGE, "embed", "give either TEXT arguments or --input, not both");
    if (output && !input)
        return cli_fail(CLI_USAGE, "embed", "--output goes with --input");
    elo_device_kind kind;
    if (elo_device_parse(device, &kind) < 0)
        return cli_fail(CLI_USAGE, "embed", "--device %s: expected auto, cpu or cuda", device);
    elo_dtype prec;
    if (!strcmp(precision, "f32"))
        prec = ELO_DTYPE_F32;
    else if (!strcmp(precision, "f16"))
        prec = ELO_DTYPE_F16;
    else if (!strcmp(precision, "bf16"))
        prec = ELO_DTYPE_BF16;
    else
        return cli_fail(CLI_USAGE, "embed", "--precision %s: expected f32, f16 or bf16",
                        precision);
    if (prec != ELO_DTYPE_F32 && kind == ELO_DEVICE_CPU)
        return cli_fail(CLI_USAGE, "embed", "--precision %s runs on a GPU only; the CPU "
                        "computes in f32 (use --precision f32 or --device cuda)", precision);

    /* Work estimate for `auto`: tokens in one batch (~4 bytes a token). */
    double work = 0;
    if (input) {
        struct stat sb;
        work = (strcmp(input, "-") && stat(input, &sb) == 0) ? (double)sb.st_size / 4 : 1e6;
        if (work > (double)batch * 128)
            work = (double)batch * 128;
    } else {
        for (int i = optind; i < argc; i++)
            work += (double)strlen(argv[i]) / 4 + 2;
    }
    elo_device_kind chosen = kind;
    if (kind == ELO_DEVICE_AUTO && prec != ELO_DTYPE_F32) {
        /* Half precision only exists on the GPU. */
        if (!elo_gpu_available())
            return cli_fail(CLI_USAGE, "embed", "--precision %s needs a GPU and none is usable; "
                            "the CPU computes in f32 (use --precision f32)", precision);
        chosen = ELO_DEVICE_CUDA;
    }
    elo_backend *b = cli_backend("embed", chosen, ELO_OP_EMBED, work);
    if (!b)
        return CLI_USAGE;

    if (!batch_given && b->kind == ELO_DEVICE_CUDA)
        batch = 1024; /* a GPU wants large buckets; memory stays constant */
    elo_embed_model *m = NULL;
    int rc = elo_embed_model_open(model_dir, &m);
    if (rc < 0)
        return cli_fail(CLI_FAIL, "embed", "%s", elo_errmsg());
    elo_embedder *e = NULL;
    if ((rc = elo_embedder_new(m, b, prec, &e)) < 0) {
        int code = cli_status_fail("embed", rc);
        elo_embed_model_free(m);
        return code;
    }
    const elo_embed_info *info = elo_embed_model_info(m);
    batch_state s = {.e = e, .dim = info->hidden, .want_ids = want_ids, .out = stdout};
    if (tokenize_only) {
        s.tok = elo_embed_model_tokenizer(m);
        s.max_tokens = info->max_seq_length;
    }
    s.cap = input ? (int)batch : ntexts;
    s.texts = elo_calloc((size_t)s.cap, sizeof *s.texts);
    s.lens = elo_calloc((size_t)s.cap, sizeof *s.lens);
    s.vecs = elo_embedder_out_alloc(e, (size_t)s.cap); /* page-locked on CUDA */
    s.lines = elo_calloc((size_t)s.cap, sizeof *s.lines);
    char tmp_path[4096] = "";
    int code = CLI_OK;
    if (!s.texts || !s.lens || !s.vecs || !s.lines) {
        code = cli_fail(CLI_FAIL, "embed", "out of memory");
        goto out;
    }
    if (!input) {
        for (int i = 0; i < ntexts; i++) {
            s.lens[i] = strlen(argv[optind + i]);
            s.texts[i] = elo_malloc(s.lens[i] + 1);
            if (!s.texts[i]) {
                s.count = i;
                code = cli_fail(CLI_FAIL, "embed", "out of memory");
                goto out;
            }
            memcpy(s.texts[i], argv[optind + i], s.lens[i] + 1);
        }
        s.count = ntexts;
        if ((rc = flush_batch(&s)) < 0)
            code = cli_status_fail("embed", rc == ELO_BADINPUT ? ELO_CORRUPT : rc);
        goto out;
    }
    if (output) {
        snprintf(tmp_path, sizeof tmp_path, "%s.tmp.%d", output, (int)getpid());
        s.out = fopen(tmp_path, "wb");
        if (!s.out) {
            tmp_path[0] = '\0';
            code = cli_fail(CLI_FAIL, "embed", "%s: cannot create the output file", output);
            goto out;
        }
    }
    s.input_name = input;
    elo_progress pg;
    struct stat sb;
    elo_progress_begin(&pg, "embed",
                       strcmp(input, "-") && stat(input, &sb) == 0 ? (uint64_t)sb.st_size : 0);
    rc = run_file(&s, input, &pg);
    elo_progress_end(&pg);
    if (rc == ELO_OK && s.out != stdout && fclose(s.out) != 0)
        rc = elo_seterr(ELO_IO, "%s: write failed", output);
    else if (s.out != stdout && rc < 0)
        fclose(s.out);
    if (rc == ELO_OK && output && rename(tmp_path, output) != 0)
        rc = elo_seterr(ELO_IO, "%s: cannot rename the output into place", output);
    if (rc < 0) {
        if (tmp_path[0])
            unlink(tmp_path);
        code = cli_status_fail("embed", rc == ELO_BADINPUT ? ELO_CORRUPT : rc);
    }
out:
    if (!input)
        for (int i = 0; i < s.count; i++)
            elo_free(s.texts[i]);
    elo_free(s.texts);
    elo_free(s.lens);
    elo_embedder_out_free(e, s.vecs);
    elo_free(s.lines);
    elo_embedder_free(e);
    elo_embed_model_free(m);
    fflush(stdout);
    return code;
}
