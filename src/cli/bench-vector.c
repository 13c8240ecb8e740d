/* bench-vector.c - `elohim bench vector`: exact top-k search, ours against
 * the peers in one run (bench/peer-vector.py): numpy and faiss-cpu
 * IndexFlatIP on the CPU, PyTorch topk(Q @ X.T) on the GPU.
 *
 * CPU mode first measures this machine's read bandwidth (a threaded scan
 * of 1 GiB), since a single query over an f32 store is memory-bound: the
 * floor is bytes / bandwidth, and the table reports the fraction reached.
 * The store is a real file (created and filled through elo_vstore_add),
 * searched through its mmap; the same vectors go to the peer as .npy, and
 * the ids the peer finds are compared with ours.
 *
 * GPU mode (--device cuda) builds the store image in memory with a fast
 * PRNG (10M x 384 would be slow through files), loads it on the GPU once
 * (timed apart) and times repeated searches of the resident store; the
 * peer generates its own data of the same shape on the GPU. */
#include "cli.h"
#include "elohim/vstore.h"
#include "vstore/vstore-impl.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- data ------------------------------------------------------------------- */

static inline uint64_t mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1), a pure function of (seed, index): any thread order
 * gives the same data. */
static inline float value_at(uint64_t seed, uint64_t i)
{
    return (float)(mix(seed ^ (i * 0xd1342543de82ef95ull)) >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

typedef struct {
    void *dst;
    elo_dtype dtype;
    uint64_t seed, count, chunk;
} fill_job;

static void fill_task(void *arg, int task, int thread)
{
    fill_job *j = arg;
    uint64_t a = (uint64_t)task * j->chunk, b = ELO_MIN(a + j->chunk, j->count);
    if (j->dtype == ELO_DTYPE_F16) {
        uint16_t *d = j->dst;
        for (uint64_t i = a; i < b; i++)
            d[i] = elo_f32_to_f16(value_at(j->seed, i));
    } else {
        float *d = j->dst;
        for (uint64_t i = a; i < b; i++)
            d[i] = value_at(j->seed, i);
    }
}

static void fill(void *dst, elo_dtype dtype, uint64_t count, uint64_t seed)
{
    fill_job j = {dst, dtype, seed, count, 1u << 20};
    elo__vstore_parallel(fill_task, &j, (int)((count + j.chunk - 1) / j.chunk));
}

/* ---- read bandwidth ------------------------------------------------------------ */

typedef struct {
    const uint64_t *buf;
    size_t words, chunk;
    uint64_t sums[256];
} bw_job;

#if defined(__x86_64__)
#include <immintrin.h>
/* Independent 256/512-bit integer sums: loads, not adds, are the limit. */
__attribute__((target("avx2"))) static uint64_t sum_avx2(const uint64_t *p, size_t words)
{
    __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
    for (size_t i = 0; i + 16 <= words; i += 16) {
        s0 = _mm256_add_epi64(s0, _mm256_load_si256((const __m256i *)(p + i)));
        s1 = _mm256_add_epi64(s1, _mm256_load_si256((const __m256i *)(p + i + 4)));
        s2 = _mm256_add_epi64(s2, _mm256_load_si256((const __m256i *)(p + i + 8)));
        s3 = _mm256_add_epi64(s3, _mm256_load_si256((const __m256i *)(p + i + 12)));
    }
    __m256i s = _mm256_add_epi64(_mm256_add_epi64(s0, s1), _mm256_add_epi64(s2, s3));
    uint64_t out[4];
    _mm256_storeu_si256((__m256i *)out, s);
    return out[0] + out[1] + out[2] + out[3];
}
#endif

__attribute__((target("avx512f"))) static uint64_t sum_avx512(const uint64_t *p, size_t words)
{
    __m512i s0 = _mm512_setzero_si512(), s1 = s0;
    for (size_t i = 0; i + 16 <= words; i += 16) {
        s0 = _mm512_add_epi64(s0, _mm512_load_si512((const void *)(p + i)));
        s1 = _mm512_add_epi64(s1, _mm512_load_si512((const void *)(p + i + 8)));
    }
    return (uint64_t)_mm512_reduce_add_epi64(_mm512_add_epi64(s0, s1));
}

static void bw_task(void *arg, int task, int thread)
{
    bw_job *j = arg;
    size_t a = (size_t)task * j->chunk, b = ELO_MIN(a + j->chunk, j->words);
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx512f")) {
        j->sums[thread & 255] += sum_avx512(j->buf + a, b - a);
        return;
    }
    if (__builtin_cpu_supports("avx2")) {
        j->sums[thread & 255] += sum_avx2(j->buf + a, b - a);
        return;
    }
#endif
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = a; i + 4 <= b; i += 4) {
        s0 += j->buf[i];
        s1 += j->buf[i + 1];
        s2 += j->buf[i + 2];
        s3 += j->buf[i + 3];
    }
    j->sums[thread & 255] += s0 + s1 + s2 + s3;
}

/* GB/s of a threaded read of a buffer of `bytes` (best of 5): the same
 * footprint as the rows a search reads, so caches help both alike. */
static double measure_read_bandwidth(size_t bytes)
{
    bytes = (bytes + 4095) & ~(size_t)4095;
    uint64_t *buf = elo_aligned_alloc(64, bytes);
    if (!buf)
        return 0;
    memset(buf, 1, bytes);
    /* Large contiguous ranges per task, as the scan uses. */
    int threads = elo__vstore_threads();
    size_t tasks = (size_t)threads * 4;
    bw_job j = {.buf = buf, .words = bytes / 8};
    j.chunk = (j.words / tasks + 15) & ~(size_t)15;
    double best = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = elo_time_sec();
        elo__vstore_parallel(bw_task, &j, (int)((j.words + j.chunk - 1) / j.chunk));
        best = ELO_MIN(best, elo_time_sec() - t0);
    }
    elo_free(buf);
    return (double)bytes / best / 1e9;
}

/* ---- helpers ------------------------------------------------------------------------ */

/* The shortest run: on a shared machine the other runs measure the
 * neighbours more than the code. */
static double best_of(const double *v, int n)
{
    double b = v[0];
    for (int i = 1; i < n; i++)
        b = ELO_MIN(b, v[i]);
    return b;
}

static int parse_list(const char *s, int64_t *out, int max)
{
    int n = 0;
    char *copy = elo_strdup(s), *save = NULL;
    if (!copy)
        return -1;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        double v;
        if (n >= max || elo_parse_f64(t, &v) < 0 || v < 1 || v > 1e12) {
            elo_free(copy);
            return -1;
        }
        out[n++] = (int64_t)v;
    }
    elo_free(copy);
    return n;
}

static int write_npy(const char *path, const float *v, uint64_t rows, int dim)
{
    char dict[160];
    int n = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%llu, %d), }",
                     (unsigned long long)rows, dim);
    size_t hlen = (size_t)n + 1;
    hlen += (64 - (10 + hlen) % 64) % 64;
    FILE *f = fopen(path, "wb");
    if (!f)
        return elo_seterr(ELO_IO, "%s: cannot write", path);
    uint8_t head[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (uint8_t)(hlen & 255), (uint8_t)(hlen >> 8)};
    fwrite(head, 1, 10, f);
    fprintf(f, "%-*s\n", (int)hlen - 1, dict);
    size_t want = (size_t)rows * (size_t)dim;
    size_t wrote = fwrite(v, sizeof *v, want, f);
    int bad = fclose(f) != 0 || wrote != want;
    return bad ? elo_seterr(ELO_IO, "%s: short write", path) : ELO_OK;
}

/* Runs the peer; returns its JSON output (NULL on failure, said on stderr). */
static json_t *run_peer(const char *python, const char *peer, const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' '%s' %s", python, peer, args);
    elo_info("bench vector: running %s", cmd);
    FILE *p = cli_popen_peer(cmd);
    if (!p) {
        fprintf(stderr, "bench vector: cannot run the peer: %s\n", cmd);
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = elo_malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += got;
        if (len + 1 == cap) {
            char *nb = elo_realloc(buf, cap * 2);
            if (!nb)
                break;
            buf = nb;
            cap *= 2;
        }
    }
    int status = pclose(p);
    if (!buf)
        return NULL;
    buf[len] = 0;
    json_error_t err;
    json_t *j = status == 0 ? json_loads(buf, 0, &err) : NULL;
    if (!j)
        fprintf(stderr, "bench vector: the peer failed (status %d); run it alone to see why: %s\n",
                status, cmd);
    elo_free(buf);
    return j;
}

static double peer_ms(json_t *peer, const char *lib, const char *key, int64_t nq)
{
    char nqs[32];
    snprintf(nqs, sizeof nqs, "%lld", (long long)nq);
    json_t *v = json_object_get(json_object_get(json_object_get(peer, lib), key), nqs);
    return json_is_number(v) ? json_number_value(v) : -1;
}

static void print_ratio(double theirs, double ours)
{
    if (theirs > 0 && ours > 0)
        printf(" %8.2fx", theirs / ours);
    else
        printf(" %9s", "-");
}

static void print_ms(double ms)
{
    if (ms > 0)
        printf(" %10.2f", ms);
    else
        printf(" %10s", "-");
}

/* ---- CPU ------------------------------------------------------------------------------ */

typedef struct {
    const char *python, *peer, *dir;
    int64_t rows[8];
    int row_sets;
    int64_t nqs[8];
    int nq_sets;
    int dim, k, repeat, no_peer, dtype_f16_too;
    elo_device_kind device;
} bench_opts;

static int bench_cpu(bench_opts *o)
{
    printf("elohim bench vector (CPU): dim %d, k %d, metric ip, f32, %d threads, kernel %s\n", o->dim,
           o->k, elo__vstore_threads(), elo__vstore_kernel_name());
    printf("read bandwidth: measured per size on a buffer as large as the rows (best of 5)\n\n");
    printf("%9s %5s %8s %10s %10s %10s %10s %9s %9s %9s %7s\n", "rows", "nq", "GB/s", "floor ms", "ours ms",
           "numpy ms", "faiss ms", "numpy/us", "faiss/us", "bw frac", "ids ok");
    int64_t max_nq = 1;
    for (int i = 0; i < o->nq_sets; i++)
        max_nq = ELO_MAX(max_nq, o->nqs[i]);
    int rc = ELO_OK;
    for (int ri = 0; rc == ELO_OK && ri < o->row_sets; ri++) {
        uint64_t rows = (uint64_t)o->rows[ri];
        char dir[512], store[600], xnpy[600], qnpy[600];
        snprintf(dir, sizeof dir, "%s/elohim-bench-vector.XXXXXX", o->dir);
        if (!mkdtemp(dir))
            return elo_seterr(ELO_IO, "cannot create a directory in %s", o->dir);
        snprintf(store, sizeof store, "%s/bench.vs", dir);
        snprintf(xnpy, sizeof xnpy, "%s/x.npy", dir);
        snprintf(qnpy, sizeof qnpy, "%s/q.npy", dir);
        float *x = elo_malloc(rows * (size_t)o->dim * sizeof *x);
        float *q = elo_malloc((size_t)max_nq * (size_t)o->dim * sizeof *q);
        int64_t *ids = elo_malloc((size_t)max_nq * (size_t)o->k * sizeof *ids);
        float *scores = elo_malloc((size_t)max_nq * (size_t)o->k * sizeof *scores);
        elo_vstore *vs = NULL;
        if (!x || !q || !ids || !scores)
            rc = elo_seterr(ELO_NOMEM, "out of memory for %llu rows", (unsigned long long)rows);
        if (rc == ELO_OK) {
            fill(x, ELO_DTYPE_F32, rows * (uint64_t)o->dim, 1000 + ri);
            fill(q, ELO_DTYPE_F32, (uint64_t)max_nq * (uint64_t)o->dim, 7);
            rc = elo_vstore_create(store, o->dim, ELO_DTYPE_F32, ELO_VSTORE_IP, rows);
        }
        if (rc == ELO_OK)
            rc = elo_vstore_open(store, 1, &vs);
        for (uint64_t at = 0; rc == ELO_OK && at < rows; at += 65536)
            rc = elo_vstore_add(vs, x + at * (size_t)o->dim, ELO_MIN(65536, rows - at), o->dim, NULL);
        elo_vstore_free(vs);
        vs = NULL;
        if (rc == ELO_OK && !o->no_peer)
            rc = write_npy(xnpy, x, rows, o->dim);
        if (rc == ELO_OK && !o->no_peer)
            rc = write_npy(qnpy, q, (uint64_t)max_nq, o->dim);
        elo_free(x);
        x = NULL;
        if (rc == ELO_OK)
            rc = elo_vstore_open(store, 0, &vs);
        /* Warm: map every page once (the peer has its data in RAM too). */
        if (rc == ELO_OK)
            rc = elo_vstore_search(vs, NULL, q, 1, o->dim, o->k, ids, scores);
        json_t *peer = NULL;
        if (rc >= 0 && !o->no_peer) {
            char args[2048], nqlist[128] = "";
            for (int i = 0; i < o->nq_sets; i++)
                snprintf(nqlist + strlen(nqlist), sizeof nqlist - strlen(nqlist), "%s%lld",
                         i ? "," : "", (long long)o->nqs[i]);
            snprintf(args, sizeof args, "--cpu --data '%s' --queries '%s' --nq %s --k %d --repeat %d",
                     xnpy, qnpy, nqlist, o->k, o->repeat);
            peer = run_peer(o->python, o->peer, args);
        }
        unlink(xnpy);
        unlink(qnpy);
        double bytes = (double)rows * o->dim * 4 + (double)rows * 16;   /* rows + ids + stamps */
        /* Measured right before our runs (the machine may be shared). */
        double bw = measure_read_bandwidth((size_t)bytes);
        for (int ni = 0; rc >= 0 && ni < o->nq_sets; ni++) {
            int nq = (int)o->nqs[ni];
            double t[64];
            int reps = ELO_MIN(o->repeat, 64);
            for (int r = 0; rc >= 0 && r < reps; r++) {
                double t0 = elo_time_sec();
                rc = elo_vstore_search(vs, NULL, q, nq, o->dim, o->k, ids, scores);
                t[r] = (elo_time_sec() - t0) * 1e3;
            }
            if (rc < 0)
                break;
            double ours = best_of(t, reps);
            double floor_ms = bw > 0 ? bytes / (bw * 1e9) * 1e3 : 0;
            double np_ms = peer_ms(peer, "numpy", "ms", nq);
            double fa_ms = peer_ms(peer, "faiss", "ms", nq);
            /* Ids agreement with faiss (exact ties may order differently). */
            int agree = 0, total = 0;
            char nqs[32];
            snprintf(nqs, sizeof nqs, "%d", nq);
            json_t *fid = json_object_get(json_object_get(json_object_get(peer, "faiss"), "ids"), nqs);
            for (int qi = 0; json_is_array(fid) && qi < nq; qi++) {
                json_t *row = json_array_get(fid, (size_t)qi);
                for (int i = 0; i < o->k && i < (int)json_array_size(row); i++) {
                    total++;
                    agree += json_integer_value(json_array_get(row, (size_t)i)) ==
                             ids[(size_t)qi * o->k + i];
                }
            }
            printf("%9llu %5d %8.1f", (unsigned long long)rows, nq, bw);
            print_ms(floor_ms);
            print_ms(ours);
            print_ms(np_ms);
            print_ms(fa_ms);
            print_ratio(np_ms, ours);
            print_ratio(fa_ms, ours);
            printf(" %8.0f%%", bw > 0 ? floor_ms / ours * 100 : 0);
            if (total)
                printf(" %3d/%-3d", agree, total);
            else
                printf(" %7s", "-");
            printf("\n");
            fflush(stdout);
        }
        if (rc > 0)
            rc = ELO_OK;
        json_decref(peer);
        elo_vstore_free(vs);
        unlink(store);
        rmdir(dir);
        elo_free(q);
        elo_free(ids);
        elo_free(scores);
    }
    printf("\ntimes: best of %d runs each (ours and the peers'); floor = (rows x dim x 4 + 16 B/row "
           "of ids and stamps) / GB/s;\nbw frac = floor / ours; numpy/us, faiss/us = their "
           "time / ours (> 1: we are faster).\n", o->repeat);
    return rc < 0 ? rc : ELO_OK;
}

/* ---- GPU ------------------------------------------------------------------------------ */

static int bench_gpu(bench_opts *o, elo_backend *b)
{
    printf("elohim bench vector (GPU): dim %d, k %d, metric ip, store resident on the GPU\n", o->dim,
           o->k);
    printf("%9s %5s %5s %10s %10s %10s %9s\n", "rows", "dtype", "nq", "load s", "ours ms",
           "torch ms", "torch/us");
    int64_t max_nq = 1;
    for (int i = 0; i < o->nq_sets; i++)
        max_nq = ELO_MAX(max_nq, o->nqs[i]);
    int rc = ELO_OK;
    for (int ri = 0; rc == ELO_OK && ri < o->row_sets; ri++) {
        for (int dt = 0; rc == ELO_OK && dt < (o->dtype_f16_too ? 2 : 1); dt++) {
            elo_dtype dtype = dt ? ELO_DTYPE_F16 : ELO_DTYPE_F32;
            uint64_t rows = (uint64_t)o->rows[ri];
            uint8_t *image = NULL;
            size_t size = 0;
            elo_vstore *vs = NULL;
            float *q = elo_malloc((size_t)max_nq * (size_t)o->dim * sizeof *q);
            int64_t *ids = elo_malloc((size_t)max_nq * (size_t)o->k * sizeof *ids);
            float *scores = elo_malloc((size_t)max_nq * (size_t)o->k * sizeof *scores);
            if (!q || !ids || !scores)
                rc = elo_seterr(ELO_NOMEM, "out of memory");
            if (rc == ELO_OK)
                rc = elo__vstore_image_new(o->dim, dtype, ELO_VSTORE_IP, rows, &image, &size);
            if (rc == ELO_OK) {
                fill(image + ELO__VSTORE_HEADER_BYTES, dtype, rows * (uint64_t)o->dim, 2000 + ri);
                fill(q, ELO_DTYPE_F32, (uint64_t)max_nq * (uint64_t)o->dim, 7);
                rc = elo_vstore_open_buffer(image, size, &vs);
            }
            double load_s = 0;
            if (rc == ELO_OK) {
                double t0 = elo_time_sec();
                rc = elo_vstore_search(vs, b, q, 1, o->dim, o->k, ids, scores);   /* loads */
                load_s = elo_time_sec() - t0;
            }
            json_t *peer = NULL;
            if (rc >= 0 && !o->no_peer) {
                char args[1024], nqlist[128] = "";
                for (int i = 0; i < o->nq_sets; i++)
                    snprintf(nqlist + strlen(nqlist), sizeof nqlist - strlen(nqlist), "%s%lld",
                             i ? "," : "", (long long)o->nqs[i]);
                snprintf(args, sizeof args, "--gpu --rows %llu --dim %d --dtype %s --nq %s --k %d --repeat %d",
                         (unsigned long long)rows, o->dim, dt ? "f16" : "f32", nqlist, o->k,
                         o->repeat);
                peer = run_peer(o->python, o->peer, args);
            }
            for (int ni = 0; rc >= 0 && ni < o->nq_sets; ni++) {
                int nq = (int)o->nqs[ni];
                double t[64];
                int reps = ELO_MIN(o->repeat, 64);
                rc = elo_vstore_search(vs, b, q, nq, o->dim, o->k, ids, scores);   /* warm */
                for (int r = 0; rc >= 0 && r < reps; r++) {
                    double t0 = elo_time_sec();
                    rc = elo_vstore_search(vs, b, q, nq, o->dim, o->k, ids, scores);
                    t[r] = (elo_time_sec() - t0) * 1e3;
                }
                if (rc < 0)
                    break;
                double ours = best_of(t, reps);
                double torch_ms = peer_ms(peer, "torch", dt ? "f16" : "f32", nq);
                printf("%9llu %5s %5d %10.2f", (unsigned long long)rows, dt ? "f16" : "f32", nq,
                       load_s);
                print_ms(ours);
                print_ms(torch_ms);
                print_ratio(torch_ms, ours);
                printf("\n");
                fflush(stdout);
            }
            if (rc > 0)
                rc = ELO_OK;
            json_decref(peer);
            elo_vstore_free(vs);
            elo_free(image);
            elo_free(q);
            elo_free(ids);
            elo_free(scores);
        }
    }
    printf("\nours: host queries in, host results out (a search call end to end), best of %d;"
           " torch: topk(Q @ X.T) on device tensors, CUDA events, best of %d.\n", o->repeat,
           o->repeat);
    return rc < 0 ? rc : ELO_OK;
}

/* ---- entry ------------------------------------------------------------------------------ */

int bench_vector(int argc, char **argv)
{
    static const struct option opts[] = {
        {"device", required_argument, NULL, 'd'}, {"rows", required_argument, NULL, 'r'},
        {"queries", required_argument, NULL, 'q'}, {"dim", required_argument, NULL, 'D'},
        {"k", required_argument, NULL, 'k'}, {"repeat", required_argument, NULL, 'n'},
        {"python", required_argument, NULL, 'p'}, {"peer", required_argument, NULL, 'P'},
        {"dir", required_argument, NULL, 'T'}, {"no-peer", no_argument, NULL, 'N'},
        {"f32-only", no_argument, NULL, 'F'}, {"help", no_argument, NULL, 'h'}, {0, 0, 0, 0}};
    const char *device_s = "cpu", *rows_s = NULL, *nq_s = NULL;
    bench_opts o = {.dim = 384, .k = 10, .repeat = 0, .dtype_f16_too = 1, .peer = "bench/peer-vector.py"};
    const char *tmp = getenv("TMPDIR");
    o.dir = tmp && *tmp ? tmp : "/tmp";
    o.python = getenv("ELOHIM_PEER_PYTHON");
    if (!o.python)
        o.python = access(".venv/bin/python", X_OK) == 0 ? ".venv/bin/python" : "python3";
    int c;
    int64_t v;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': device_s = optarg; break;
        case 'r': rows_s = optarg; break;
        case 'q': nq_s = optarg; break;
        case 'D':
            if (elo_parse_i64(optarg, &v) < 0 || v < 1 || v > 4096)
                return cli_fail(CLI_USAGE, "bench vector", "--dim must be 1..4096");
            o.dim = (int)v;
            break;
        case 'k':
            if (elo_parse_i64(optarg, &v) < 0 || v < 1 || v > ELO_VSTORE_MAX_K)
                return cli_fail(CLI_USAGE, "bench vector", "--k must be 1..%d", ELO_VSTORE_MAX_K);
            o.k = (int)v;
            break;
        case 'n':
            if (elo_parse_i64(optarg, &v) < 0 || v < 1 || v > 64)
                return cli_fail(CLI_USAGE, "bench vector", "--repeat must be 1..64");
            o.repeat = (int)v;
            break;
        case 'p': o.python = optarg; break;
        case 'P': o.peer = optarg; break;
        case 'T': o.dir = optarg; break;
        case 'N': o.no_peer = 1; break;
        case 'F': o.dtype_f16_too = 0; break;
        case 'h':
            printf("usage: elohim bench vector [--device cpu|cuda] [--rows N,N] [--queries N,N] [--dim D]\n"
                   "       [--k K] [--repeat R] [--python PY] [--peer bench/peer-vector.py] [--dir TMP]\n"
                   "       [--no-peer] [--f32-only]\n"
                   "CPU defaults: rows 100000,1000000, queries 1,16; GPU (cuda): rows 1000000,10000000,\n"
                   "queries 1,16,1024, f32 and f16. Peer: numpy + faiss-cpu / PyTorch.\n");
            return CLI_OK;
        default:
            return CLI_USAGE;
        }
    }
    if (elo_device_parse(device_s, &o.device) < 0 || o.device == ELO_DEVICE_AUTO)
        return cli_fail(CLI_USAGE, "bench vector", "--device must be cpu or cuda");
    int gpu = o.device == ELO_DEVICE_CUDA;
    o.row_sets = parse_list(rows_s ? rows_s : gpu ? "1000000,10000000" : "100000,1000000", o.rows, 8);
    o.nq_sets = parse_list(nq_s ? nq_s : gpu ? "1,16,1024" : "1,16", o.nqs, 8);
    if (o.row_sets < 1 || o.nq_sets < 1)
        return cli_fail(CLI_USAGE, "bench vector", "--rows and --queries take comma-separated counts");
    for (int i = 0; i < o.nq_sets; i++)
        if (o.nqs[i] > 4096)
            return cli_fail(CLI_USAGE, "bench vector", "at most 4096 queries per batch");
    if (!o.repeat)
        o.repeat = gpu ? 20 : 7;
    if (!o.no_peer && access(o.peer, R_OK) != 0)
        return cli_fail(CLI_USAGE, "bench vector", "peer script %s not found (--peer PATH or --no-peer)",
                        o.peer);
    int rc;
    if (gpu) {
        elo_backend *b = cli_backend("bench vector", ELO_DEVICE_CUDA, ELO_OP_VEC_SCAN, 0);
        if (!b)
            return CLI_USAGE;
        rc = bench_gpu(&o, b);
    } else {
        rc = bench_cpu(&o);
    }
    if (rc < 0)
        return cli_status_fail("bench vector", rc);
    return CLI_OK;
}
