/* cmd-vec.c - `elohim vec`: create, add, search, delete, info, compact and a
 * demo on generated data. Exit codes: 0 ok, 1 bad data or I/O, 2 usage
 * (bad options, --device cuda without a GPU). */
#include "cli.h"
#include "elohim/vstore.h"
#include "vstore/vstore-impl.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int usage(FILE *out)
{
    fprintf(out,
            "usage: elohim vec <command> STORE [options]\n\n"
            "  create STORE --dim D [--dtype f32|f16] [--metric cosine|ip|l2] [--capacity N]\n"
            "  add STORE --input FILE [--ids FILE]      FILE: .npy (float32 2-D), .fvecs, .jsonl\n"
            "                                           ids: .npy (int64), .jsonl, or text lines\n"
            "  search STORE --query FILE --k K [--device auto|cpu|cuda] [--json] [--verbose]\n"
            "                                           --verbose: the device and time on stderr\n"
            "  delete STORE --ids 1,2,3\n"
            "  info STORE [--json]\n"
            "  compact STORE\n"
            "  demo [--rows N] [--dim D] [--k K] [--device auto|cpu|cuda]\n");
    return out == stdout ? CLI_OK : CLI_USAGE;
}

/* Data errors exit 1; a requested device that is not there exits 2. */
static int fail(const char *cmd, int status)
{
    const char *detail = elo_errmsg();
    fprintf(stderr, "elohim vec %s: %s\n", cmd, *detail ? detail : elo_strstatus(status));
    return status == ELO_NODEVICE ? CLI_USAGE : CLI_FAIL;
}

static int usage_err(const char *cmd, const char *fmt, const char *arg)
{
    fprintf(stderr, "elohim vec %s: ", cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    return CLI_USAGE;
}

static int parse_int_opt(const char *cmd, const char *opt, const char *s, int64_t lo, int64_t hi,
                         int64_t *out)
{
    if (elo_parse_i64(s, out) < 0 || *out < lo || *out > hi) {
        fprintf(stderr, "elohim vec %s: %s must be an integer in %lld..%lld (got '%s')\n", cmd,
                opt, (long long)lo, (long long)hi, s);
        return -1;
    }
    return 0;
}

enum { OPT_DIM = 256, OPT_DTYPE, OPT_METRIC, OPT_CAPACITY, OPT_INPUT, OPT_IDS, OPT_QUERY, OPT_K,
       OPT_DEVICE, OPT_JSON, OPT_ROWS, OPT_VERBOSE, OPT_HELP };

static const struct option long_opts[] = {
    {"dim", required_argument, NULL, OPT_DIM},
    {"dtype", required_argument, NULL, OPT_DTYPE},
    {"metric", required_argument, NULL, OPT_METRIC},
    {"capacity", required_argument, NULL, OPT_CAPACITY},
    {"input", required_argument, NULL, OPT_INPUT},
    {"ids", required_argument, NULL, OPT_IDS},
    {"query", required_argument, NULL, OPT_QUERY},
    {"k", required_argument, NULL, OPT_K},
    {"device", required_argument, NULL, OPT_DEVICE},
    {"json", no_argument, NULL, OPT_JSON},
    {"rows", required_argument, NULL, OPT_ROWS},
    {"verbose", no_argument, NULL, OPT_VERBOSE},
    {"help", no_argument, NULL, OPT_HELP},
    {0, 0, 0, 0}};

typedef struct {
    const char *store;
    const char *dim, *dtype, *metric, *capacity, *input, *ids, *query, *k, *device, *rows;
    int json, help;
} vec_opts;

/* 1 when `word` is one of the space-separated words of `list`. */
static int word_in(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; (p = strstr(p, word)); p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0))
            return 1;
    return 0;
}

/* Parses argv (argv[0] = the subcommand); `allowed` lists the options the
 * subcommand takes. Returns 0, or an exit code. */
static int parse(const char *cmd, int argc, char **argv, const char *allowed, int want_store,
                 vec_opts *o)
{
    memset(o, 0, sizeof *o);
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":", long_opts, NULL)) != -1) {
        if (c == '?' || c == ':') {
            const char *bad = argv[optind - 1];
            return usage_err(cmd, c == ':' ? "option %s needs a value" : "unknown option %s", bad);
        }
        const char *name = NULL;
        for (const struct option *lo = long_opts; lo->name; lo++)
            if (lo->val == c)
                name = lo->name;
        if (c != OPT_HELP && !word_in(allowed, name))
            return usage_err(cmd, "option --%s does not apply here", name);
        switch (c) {
        case OPT_DIM: o->dim = optarg; break;
        case OPT_DTYPE: o->dtype = optarg; break;
        case OPT_METRIC: o->metric = optarg; break;
        case OPT_CAPACITY: o->capacity = optarg; break;
        case OPT_INPUT: o->input = optarg; break;
        case OPT_IDS: o->ids = optarg; break;
        case OPT_QUERY: o->query = optarg; break;
        case OPT_K: o->k = optarg; break;
        case OPT_DEVICE: o->device = optarg; break;
        case OPT_JSON: o->json = 1; break;
        case OPT_ROWS: o->rows = optarg; break;
        case OPT_VERBOSE:
            if (elo_log_get_level() > ELO_LOG_INFO)
                elo_log_set_level(ELO_LOG_INFO);
            break;
        case OPT_HELP: o->help = 1; break;
        }
    }
    if (o->help)
        return usage(stdout) == CLI_OK ? -1 : CLI_USAGE;
    int rest = argc - optind;
    if (want_store) {
        if (rest < 1)
            return usage_err(cmd, "%s", "missing STORE argument");
        o->store = argv[optind++];
        rest--;
    }
    if (rest > 0)
        return usage_err(cmd, "unexpected argument '%s'", argv[optind]);
    return 0;
}

static int parse_device(const char *cmd, const char *s, elo_device_kind *out)
{
    *out = ELO_DEVICE_AUTO;
    if (s && elo_device_parse(s, out) < 0)
        return usage_err(cmd, "--device must be auto, cpu or cuda (got '%s')", s);
    return 0;
}

/* ---- create --------------------------------------------------------------- */

static int vec_create(int argc, char **argv)
{
    vec_opts o;
    int rc = parse("create", argc, argv, "dim dtype metric capacity", 1, &o);
    if (rc)
        return rc < 0 ? CLI_OK : rc;
    int64_t dim, capacity = 0;
    if (!o.dim)
        return usage_err("create", "%s", "--dim is required");
    if (parse_int_opt("create", "--dim", o.dim, 1, ELO_VSTORE_MAX_DIM, &dim) < 0)
        return CLI_USAGE;
    if (o.capacity && parse_int_opt("create", "--capacity", o.capacity, 1, (int64_t)1 << 36,
                                    &capacity) < 0)
        return CLI_USAGE;
    elo_dtype dtype = ELO_DTYPE_F32;
    if (o.dtype && !strcmp(o.dtype, "f16"))
        dtype = ELO_DTYPE_F16;
    else if (o.dtype && strcmp(o.dtype, "f32"))
        return usage_err("create", "--dtype must be f32 or f16 (got '%s')", o.dtype);
    elo_vstore_metric metric = ELO_VSTORE_COSINE;
    if (o.metric && elo_vstore_metric_parse(o.metric, &metric) < 0)
        return usage_err("create", "--metric must be cosine, ip or l2 (got '%s')", o.metric);
    rc = elo_vstore_create(o.store, (int)dim, dtype, metric, (uint64_t)capacity);
    if (rc < 0)
        return fail("create", rc);
    fprintf(stderr, "created %s: dim %lld, %s, %s\n", o.store, (long long)dim,
            elo_dtype_name(dtype), elo_vstore_metric_name(metric));
    return CLI_OK;
}

/* ---- add -------------------------------------------------------------------- */

static int vec_add(int argc, char **argv)
{
    vec_opts o;
    int rc = parse("add", argc, argv, "input ids", 1, &o);
    if (rc)
        return rc < 0 ? CLI_OK : rc;
    if (!o.input)
        return usage_err("add", "%s", "--input FILE is required");
    float *rows = NULL;
    int64_t *ids = NULL;
    size_t count = 0, id_count = 0;
    int dim = 0;
    elo_vstore *vs = NULL;
    rc = elo_vstore_read_vectors(o.input, &rows, &count, &dim);
    if (rc == ELO_OK && o.ids) {
        rc = elo_vstore_read_ids(o.ids, &ids, &id_count);
        if (rc == ELO_OK && id_count != count)
            rc = elo_seterr(ELO_BADINPUT, "%s holds %zu ids for %zu vectors in %s", o.ids,
                            id_count, count, o.input);
    }
    if (rc == ELO_OK)
        rc = elo_vstore_open(o.store, 1, &vs);
    int64_t first = 0;
    if (rc == ELO_OK) {
        elo_vstore_info info;
        elo_vstore_get_info(vs, &info);
        first = info.next_id;
        rc = elo_vstore_add(vs, rows, count, dim, ids);
        if (rc < 0) {
            char msg[768];
            snprintf(msg, sizeof msg, "%s", elo_errmsg());
            rc = elo_seterr(rc, "%s: %s", o.input, msg);
        }
    }
    elo_vstore_free(vs);
    elo_free(rows);
    elo_free(ids);
    if (rc < 0)
        return fail("add", rc);
    if (ids)
        fprintf(stderr, "added %zu vectors to %s\n", count, o.store);
    else
        fprintf(stderr, "added %zu vectors to %s (ids %lld..%lld)\n", count, o.store,
                (long long)first, (long long)(first + (int64_t)count - 1));
    return CLI_OK;
}

/* ---- search ----------------------------------------------------------------- */

static void print_results(int json, int q, int got, const int64_t *ids, const float *scores)
{
    if (json) {
        json_t *o = json_object();
        json_t *ji = json_array(), *js = json_array();
        for (int i = 0; i < got; i++) {
            json_array_append_new(ji, json_integer(ids[i]));
            json_array_append_new(js, json_real(scores[i]));
        }
        json_object_set_new(o, "ids", ji);
        json_object_set_new(o, "scores", js);
        cli_print_json(o);
        return;
    }
    printf("query %d:\n", q);
    for (int i = 0; i < got; i++)
        printf("  %3d  id %-12lld score %.9g\n", i + 1, (long long)ids[i], (double)scores[i]);
}

static int vec_search(int argc, char **argv)
{
    vec_opts o;
    int rc = parse("search", argc, argv, "query k device json verbose", 1, &o);
    if (rc)
        return rc < 0 ? CLI_OK : rc;
    if (!o.query)
        return usage_err("search", "%s", "--query FILE is required");
    if (!o.k)
        return usage_err("search", "%s", "--k K is required");
    int64_t k;
    if (parse_int_opt("search", "--k", o.k, 1, ELO_VSTORE_MAX_K, &k) < 0)
        return CLI_USAGE;
    elo_device_kind device;
    if (parse_device("search", o.device, &device))
        return CLI_USAGE;

    elo_vstore *vs = NULL;
    rc = elo_vstore_open(o.store, 0, &vs);
    if (rc < 0)
        return fail("search", rc);
    float *queries = NULL;
    size_t qcount = 0;
    int qdim = 0;
    rc = elo_vstore_read_vectors(o.query, &queries, &qcount, &qdim);
    elo_vstore_info info;
    elo_vstore_get_info(vs, &info);
    if (rc == ELO_OK && qdim != info.dim)
        rc = elo_seterr(ELO_BADINPUT, "%s: dimension mismatch: the queries have %d, the store %d",
                        o.query, qdim, info.dim);
    if (rc == ELO_OK && qcount > INT32_MAX / (size_t)k)
        rc = elo_seterr(ELO_TOOBIG, "%s: too many queries", o.query);
    if (rc < 0) {
        elo_free(queries);
        elo_vstore_free(vs);
        return fail("search", rc);
    }
    double work = (double)info.row_count * (double)info.dim *
                  (double)elo_dtype_size(info.dtype);
    elo_backend *b = cli_backend("vec search", device, ELO_OP_VEC_SCAN, work);
    if (!b) {
        elo_free(queries);
        elo_vstore_free(vs);
        return CLI_USAGE;
    }
    int64_t *ids = elo_malloc(qcount * (size_t)k * sizeof *ids);
    float *scores = elo_malloc(qcount * (size_t)k * sizeof *scores);
    if (!ids || !scores)
        rc = elo_seterr(ELO_NOMEM, "out of memory for the results");
    double t0 = elo_time_sec();
    if (rc == ELO_OK)
        rc = elo_vstore_search(vs, b, queries, (int)qcount, qdim, (int)k, ids, scores);
    double ms = (elo_time_sec() - t0) * 1e3;
    if (rc >= 0) {
        elo_info("vec search: %zu queries, k %d, %llu live rows on %s (%s) in %.2f ms", qcount,
                 (int)k, (unsigned long long)info.live_count, elo_device_name(b->kind),
                 b->kind == ELO_DEVICE_CPU ? elo__vstore_kernel_name() : "gpu", ms);
        for (size_t q = 0; q < qcount; q++)
            print_results(o.json, (int)q, rc, ids + q * (size_t)k, scores + q * (size_t)k);
    }
    elo_free(ids);
    elo_free(scores);
    elo_free(queries);
    elo_vstore_free(vs);
    if (rc < 0)
        return fail("search", rc);
    return CLI_OK;
}

/* ---- delete ------------------------------------------------------------------- */

static int vec_delete(int argc, char **argv)
{
    vec_opts o;
    int rc = parse("delete", argc, argv, "ids", 1, &o);
    if (rc)
        return rc < 0 ? CLI_OK : rc;
    if (!o.ids)
        return usage_err("delete", "%s", "--ids 1,2,3 is required");
    size_t cap = 1;
    for (const char *p = o.ids; *p; p++)
        cap += *p == ',';
    int64_t *ids = elo_malloc(cap * sizeof *ids);
    char *copy = elo_strdup(o.ids);
    if (!ids || !copy) {
        elo_free(ids);
        elo_free(copy);
        return fail("delete", elo_seterr(ELO_NOMEM, "out of memory"));
    }
    size_t n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        if (elo_parse_i64(tok, &ids[n]) < 0) {
            fprintf(stderr, "elohim vec delete: --ids: '%s' is not an integer id\n", tok);
            elo_free(ids);
            elo_free(copy);
            return CLI_USAGE;
        }
        n++;
    }
    elo_free(copy);
    if (n == 0) {
        elo_free(ids);
        return usage_err("delete", "%s", "--ids lists no ids");
    }
    elo_vstore *vs = NULL;
    rc = elo_vstore_open(o.store, 1, &vs);
    if (rc == ELO_OK)
        rc = elo_vstore_delete(vs, ids, n);
    elo_vstore_free(vs);
    elo_free(ids);
    if (rc < 0)
        return fail("delete", rc);
    fprintf(stderr, "deleted %d rows from %s\n", rc, o.store);
    return CLI_OK;
}

/* ---- info / compact ---------------------------------------------------------- */

static int vec_info(int argc, char **argv)
{
    vec_opts o;
    int rc = parse("info", argc, argv, "json", 1, &o);
    if (rc)
        return rc < 0 ? CLI_OK : rc;
    elo_vstore *vs = NULL;
    rc = elo_vstore_open(o.store, 0, &vs);
    if (rc < 0)
        return fail("info", rc);
    elo_vstore_info in;
    elo_vstore_get_info(vs, &in);
    elo_vstore_free(vs);
    if (o.json) {
        json_t *j = json_object();
        json_object_set_new(j, "path", json_string(o.store));
        json_object_set_new(j, "format_version", json_integer(ELO__VSTORE_VERSION));
        json_object_set_new(j, "dim", json_integer(in.dim));
        json_object_set_new(j, "dtype", json_string(elo_dtype_name(in.dtype)));
        json_object_set_new(j, "metric", json_string(elo_vstore_metric_name(in.metric)));
        json_object_set_new(j, "rows", json_integer((json_int_t)in.row_count));
        json_object_set_new(j, "live", json_integer((json_int_t)in.live_count));
        json_object_set_new(j, "deleted", json_integer((json_int_t)(in.row_count - in.live_count)));
        json_object_set_new(j, "capacity", json_integer((json_int_t)in.capacity));
        json_object_set_new(j, "next_id", json_integer(in.next_id));
        json_object_set_new(j, "seq", json_integer((json_int_t)in.seq));
        json_object_set_new(j, "file_bytes", json_integer((json_int_t)in.file_bytes));
        json_object_set_new(j, "mapped_bytes", json_integer((json_int_t)in.mapped_bytes));
        json_object_set_new(j, "resident_bytes", json_integer((json_int_t)in.resident_bytes));
        cli_print_json(j);
        return CLI_OK;
    }
    printf("store:    %s (format v%u)\n", o.store, ELO__VSTORE_VERSION);
    printf("vectors:  %llu live, %llu deleted, capacity %llu, dim %d, %s, %s\n",
           (unsigned long long)in.live_count, (unsigned long long)(in.row_count - in.live_count),
           (unsigned long long)in.capacity, in.dim, elo_dtype_name(in.dtype),
           elo_vstore_metric_name(in.metric));
    printf("next id:  %lld\n", (long long)in.next_id);
    printf("memory:   %.1f MiB mapped (virtual), %.1f MiB resident (physical)\n",
           in.mapped_bytes / 1048576.0, in.resident_bytes / 1048576.0);
    return CLI_OK;
}

static int vec_compact(int argc, char **argv)
{
    vec_opts o;
    int rc = parse("compact", argc, argv, "", 1, &o);
    if (rc)
        return rc < 0 ? CLI_OK : rc;
    rc = elo_vstore_compact(o.store);
    if (rc < 0)
        return fail("compact", rc);
    fprintf(stderr, "compacted %s: %d deleted rows reclaimed\n", o.store, rc);
    return CLI_OK;
}

/* ---- demo ---------------------------------------------------------------------- */

static uint64_t demo_rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float demo_uniform(uint64_t *s)
{
    return (float)(demo_rng(s) >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

static int vec_demo(int argc, char **argv)
{
    vec_opts o;
    int rc = parse("demo", argc, argv, "rows dim k device", 0, &o);
    if (rc)
        return rc < 0 ? CLI_OK : rc;
    int64_t rows = 100000, dim = 384, k = 5;
    if (o.rows && parse_int_opt("demo", "--rows", o.rows, 1, 100000000, &rows) < 0)
        return CLI_USAGE;
    if (o.dim && parse_int_opt("demo", "--dim", o.dim, 1, 4096, &dim) < 0)
        return CLI_USAGE;
    if (o.k && parse_int_opt("demo", "--k", o.k, 1, ELO_VSTORE_MAX_K, &k) < 0)
        return CLI_USAGE;
    elo_device_kind device;
    if (parse_device("demo", o.device, &device))
        return CLI_USAGE;

    const char *tmpdir = getenv("TMPDIR");
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/elohim-vec-demo.XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    if (!mkdtemp(dir))
        return fail("demo", elo_seterr(ELO_IO, "cannot create a temporary directory in %s",
                                       tmpdir && *tmpdir ? tmpdir : "/tmp"));
    snprintf(path, sizeof path, "%s/demo.vstore", dir);
    printf("vector search demo: %lld random vectors of dim %lld (cosine), store %s\n",
           (long long)rows, (long long)dim, path);

    /* Generate in batches; the queries are noisy copies of rows 7, 42, ... */
    uint64_t seed = 12345;
    int nq = 4;
    int64_t targets[4] = {7 % rows, 42 % rows, (rows / 2), rows - 1};
    float *queries = elo_malloc((size_t)nq * (size_t)dim * sizeof *queries);
    size_t batch = 65536;
    float *buf = elo_malloc(batch * (size_t)dim * sizeof *buf);
    elo_vstore *vs = NULL;
    if (!queries || !buf)
        rc = elo_seterr(ELO_NOMEM, "out of memory");
    if (rc == ELO_OK)
        rc = elo_vstore_create(path, (int)dim, ELO_DTYPE_F32, ELO_VSTORE_COSINE, (uint64_t)rows);
    if (rc == ELO_OK)
        rc = elo_vstore_open(path, 1, &vs);
    double t0 = elo_time_sec();
    elo_progress prog;
    elo_progress_begin(&prog, "adding", (uint64_t)rows);
    for (int64_t done = 0; rc == ELO_OK && done < rows;) {
        size_t n = (size_t)ELO_MIN((int64_t)batch, rows - done);
        for (size_t i = 0; i < n * (size_t)dim; i++)
            buf[i] = demo_uniform(&seed);
        for (int q = 0; q < nq; q++)
            if (targets[q] >= done && targets[q] < done + (int64_t)n)
                for (int64_t j = 0; j < dim; j++)
                    queries[q * dim + j] = buf[(size_t)(targets[q] - done) * dim + j] +
                                           0.05f * demo_uniform(&seed);
        rc = elo_vstore_add(vs, buf, n, (int)dim, NULL);
        done += (int64_t)n;
        elo_progress_update(&prog, (uint64_t)done);
    }
    elo_progress_end(&prog);
    double add_s = elo_time_sec() - t0;
    if (rc == ELO_OK)
        printf("added %lld vectors in %.2f s (%.0f vectors/s)\n", (long long)rows, add_s,
               rows / (add_s > 0 ? add_s : 1e-9));

    int64_t *ids = elo_malloc((size_t)nq * (size_t)k * sizeof *ids);
    float *scores = elo_malloc((size_t)nq * (size_t)k * sizeof *scores);
    if (rc == ELO_OK && (!ids || !scores))
        rc = elo_seterr(ELO_NOMEM, "out of memory");
    /* Every device we have (or the one asked for). */
    elo_device_kind kinds[2] = {ELO_DEVICE_CPU, ELO_DEVICE_CUDA};
    for (int d = 0; rc == ELO_OK && d < 2; d++) {
        if (device != ELO_DEVICE_AUTO && device != kinds[d])
            continue;
        elo_backend *b = NULL;
        if (elo_backend_get(kinds[d], &b) < 0) {
            if (device == ELO_DEVICE_CUDA) {
                rc = ELO_NODEVICE;
                break;
            }
            printf("cuda: not used (%s)\n", elo_errmsg());
            continue;
        }
        int got = elo_vstore_search(vs, b, queries, nq, (int)dim, (int)k, ids, scores); /* warm */
        double best = 1e30;
        for (int rep = 0; got >= 0 && rep < 3; rep++) {
            double s = elo_time_sec();
            got = elo_vstore_search(vs, b, queries, nq, (int)dim, (int)k, ids, scores);
            best = ELO_MIN(best, elo_time_sec() - s);
        }
        if (got < 0) {
            rc = got;
            break;
        }
        printf("%s: %d queries, top %lld, %.2f ms per batch\n", elo_device_name(kinds[d]), nq,
               (long long)k, best * 1e3);
        for (int q = 0; q < nq; q++) {
            printf("  query %d (near id %lld):", q, (long long)targets[q]);
            for (int i = 0; i < got; i++)
                printf(" %lld (%.4f)", (long long)ids[q * k + i], (double)scores[q * k + i]);
            printf("\n");
        }
    }
    elo_vstore_free(vs);
    elo_free(ids);
    elo_free(scores);
    elo_free(queries);
    elo_free(buf);
    unlink(path);
    rmdir(dir);
    if (rc < 0)
        return fail("demo", rc);
    return CLI_OK;
}

int cmd_vec(int argc, char **argv)
{
    if (argc < 2)
        return usage(stderr);
    const char *sub = argv[1];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help"))
        return usage(stdout);
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } subs[] = {{"create", vec_create}, {"add", vec_add}, {"search", vec_search},
                {"delete", vec_delete}, {"info", vec_info}, {"compact", vec_compact},
                {"demo", vec_demo}};
    for (size_t i = 0; i < ELO_ARRAY_LEN(subs); i++)
        if (!strcmp(sub, subs[i].name))
            return subs[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "elohim vec: unknown command '%s'\n", sub);
    return usage(stderr);
}
