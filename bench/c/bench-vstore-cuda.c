/* bench-vstore-cuda.c - times the resident-store GPU search kernels alone
 * (no file I/O, no CLI): 1M and 10M x 384, f32 and f16, 1 / 16 / 1024
 * queries, k = 10; median of repeated searches with the store loaded once.
 * Prints the bandwidth floor beside each figure. Used while tuning the
 * kernels; `elohim bench vector` is the user-facing benchmark. */
#include "elohim/backend.h"
#include "elohim/core.h"
#include "vstore/vstore-impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 88172645463325252ull;
static inline uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    size_t max_rows = argc > 1 ? strtoull(argv[1], NULL, 10) : 10000000;
    int dim = 384, k = 10;
    elo_backend *b;
    if (elo_backend_get(ELO_DEVICE_CUDA, &b) < 0 || !elo__vstore_cuda_load) {
        fprintf(stderr, "no GPU: %s\n", elo_errmsg());
        return 2;
    }
    elo_gpu_info info;
    elo_gpu_probe(&info);
    double bw = info.mem_bandwidth_gbs * 1e9;
    printf("GPU %s, nominal %.0f GB/s\n", info.name, bw / 1e9);
    size_t sizes[] = {1000000, 10000000};
    int qcounts[] = {1, 16, 1024};
    float *q = malloc(sizeof(float) * 1024 * dim);
    for (int i = 0; i < 1024 * dim; i++)
        q[i] = (float)((double)(rng() >> 11) / 9007199254740992.0 * 2 - 1);
    for (int qi = 0; qi < 1024; qi++) {
        double n = 0;
        for (int d = 0; d < dim; d++) n += (double)q[qi * dim + d] * q[qi * dim + d];
        for (int d = 0; d < dim; d++) q[qi * dim + d] = (float)(q[qi * dim + d] / sqrt(n));
    }
    int64_t *ids_out = malloc(sizeof(int64_t) * 1024 * k);
    float *s_out = malloc(sizeof(float) * 1024 * k);
    printf("%-10s %-5s %-7s %-6s %10s %10s %8s\n", "rows", "dtype", "queries", "path",
           "median_ms", "floor_ms", "x_floor");
    for (size_t si = 0; si < 2; si++) {
        size_t rows = sizes[si];
        if (rows > max_rows)
            continue;
        float *x = malloc(sizeof(float) * rows * dim);
        _Float16 *xh = malloc(sizeof(_Float16) * rows * dim);
        int64_t *ids = malloc(sizeof(int64_t) * rows);
        for (size_t i = 0; i < rows * (size_t)dim; i++) {
            float v = (float)((double)(rng() >> 11) / 9007199254740992.0 * 2 - 1) * 0.1f;
            x[i] = v;
            xh[i] = (_Float16)v;
        }
        for (size_t r = 0; r < rows; r++)
            ids[r] = (int64_t)r;
        for (int dt = 0; dt < 2; dt++) {
            elo_dtype t = dt ? ELO_DTYPE_F16 : ELO_DTYPE_F32;
            elo__vstore_gpu *g;
            double t0 = elo_time_sec();
            if (elo__vstore_cuda_load(b, dt ? (void *)xh : (void *)x, t, dim, 1, rows, rows, ids,
                                      NULL, &g) < 0) {
                fprintf(stderr, "load: %s\n", elo_errmsg());
                return 1;
            }
            double load_s = elo_time_sec() - t0;
            printf("# load %zu rows %s: %.3f s (%.1f GB/s)\n", rows, dt ? "f16" : "f32", load_s,
                   rows * dim * (dt ? 2.0 : 4.0) / load_s / 1e9);
            for (int qc = 0; qc < 3; qc++) {
                int nq = qcounts[qc];
                for (int path = 0; path < 2; path++) {
                    if (path == 1 && nq != 16)
                        continue;
                    elo__vstore_cuda_force_path(g, path == 0 ? 0 : 1);
                    int reps = rows >= 10000000 ? 10 : 30;
                    if (nq == 1024 && path == 1)
                        reps = 3;
                    double times[64];
                    elo__vstore_cuda_search(g, q, nq, k, ids_out, s_out);   /* warm-up */
                    for (int r = 0; r < reps; r++) {
                        double a = elo_time_sec();
                        int n = elo__vstore_cuda_search(g, q, nq, k, ids_out, s_out);
                        times[r] = (elo_time_sec() - a) * 1e3;
                        if (n < 0) {
                            fprintf(stderr, "search: %s\n", elo_errmsg());
                            return 1;
                        }
                    }
                    qsort(times, reps, sizeof(double), cmp_double);
                    double floor_ms = rows * dim * (dt ? 2.0 : 4.0) / bw * 1e3;
                    printf("%-10zu %-5s %-7d %-6s %10.3f %10.3f %8.2f\n", rows, dt ? "f16" : "f32",
                           nq, path == 0 ? "auto" : "exact", times[reps / 2], floor_ms,
                           times[reps / 2] / floor_ms);
                    fflush(stdout);
                }
            }
            elo__vstore_cuda_free(g);
        }
        free(x); free(xh); free(ids);
    }
    return 0;
}
