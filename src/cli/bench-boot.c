/* bench-boot.c - `elohim bench boot`: boot times (system apps only, 10
 * apps, 1000 apps with 1024 slots), discovery over a 10K-entry index,
 * megakernel frame time with 4 and 64 apps, and the I/O thread's CPU time
 * idle and during boot; side by side with the peer (bench/peer-boot.py:
 * PyTorch on the GPU, NumPy on the CPU) doing the same work its usual way. */
#include "cli.h"
#include "elohim/gpuos.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *bench_app =
    ".name \"Bench\"\n.state 32\n.vertices 64\n"
    "ld r4, [4]\njnz r4, step\nmovi r4, 20\nst [0], r4\nmovi r4, 3\nst [2], r4\n"
    "movi r4, 1\nst [4], r4\n"
    "step: ld r4, [0]\nld r6, [2]\nadd r4, r4, r6\nmovi r8, 0\nlt r9, r4, r8\n"
    "movi r10, 276\nlt r11, r10, r4\nadd r9, r9, r11\njz r9, ok\nmuli r6, r6, -1\n"
    "ok: st [0], r4\nst [2], r6\ntime r12\nsin r13, r12\nmuli r1, r13, 60\naddi r1, r1, 90\n"
    "mov r0, r4\nmovi r2, 24\nmovi r3, 24\ncolor #ff5030ff\nquad r0\nhalt\n";

typedef struct {
    double boot_us, device_init_us, cpu_setup_us, discovery_us, frame_us, io_boot_us;
    uint32_t loaded, index_count, draws;
} run_result;

static int write_apps(const char *dir, int count, const uint8_t *img, size_t len, int others)
{
    if (elo_mkdirs(dir, 0755) < 0)
        return -1;
    char path[4096];
    for (int i = 0; i < count; i++) {
        snprintf(path, sizeof path, "%s/app%05d.gpuapp", dir, i);
        if (elo_write_file_atomic(path, img, len) < 0)
            return -1;
    }
    for (int i = 0; i < others; i++) {
        snprintf(path, sizeof path, "%s/data%05d.txt", dir, i);
        FILE *f = fopen(path, "w");
        if (!f)
            return -1;
        fclose(f);
    }
    return 0;
}

static int one_boot(elo_backend *b, const char *dir, uint32_t slots, uint32_t frames,
                    run_result *r, const char *draws_out)
{
    const char *dirs[1] = {dir};
    elo_gpuos_config cfg = {.app_dirs = dirs, .app_dir_count = 1, .slots = slots, .backend = b};
    elo_gpuos *os;
    int rc = elo_gpuos_boot(&cfg, &os);
    if (rc < 0)
        return rc;
    elo_gpuos_stats st;
    elo_gpuos_get_stats(os, &st);
    memset(r, 0, sizeof *r);
    r->boot_us = st.boot_us;
    r->device_init_us = st.device_init_us;
    r->cpu_setup_us = st.cpu_setup_us;
    r->discovery_us = st.phase_us[2];
    r->io_boot_us = st.io_cpu_us;
    r->loaded = st.loaded_count;
    r->index_count = st.index_count;
    if (frames) {
        rc = elo_gpuos_run_frames(os, frames, NULL);
        if (rc < 0) {
            elo_gpuos_free(os);
            return rc;
        }
        elo_gpuos_get_stats(os, &st);
        r->frame_us = st.frames_kernel_us / frames;
    }
    if (draws_out) {
        uint32_t max = 1u << 20;
        int32_t *d = malloc((size_t)max * 6 * sizeof(int32_t));
        int n = d ? elo_gpuos_draw_list(os, d, max) : -1;
        if (n >= 0) {
            r->draws = (uint32_t)n;
            elo_write_file_atomic(draws_out, d, (size_t)ELO_MIN((uint32_t)n, max) * 24);
        }
        free(d);
    }
    elo_gpuos_free(os);
    return ELO_OK;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n ? v[n / 2] : 0.0;
}

/* Runs the peer and returns its JSON object (NULL when unavailable). */
static json_t *run_peer(const char *device, const char *tmp, int repeat)
{
    if (access("bench/peer-boot.py", R_OK) != 0)
        return NULL;
    const char *py = access(".venv/bin/python", X_OK) == 0 ? ".venv/bin/python" : "python3";
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "%s bench/peer-boot.py --device %s --index 10000 --repeat %d --load '%s/d10' "
             "--load '%s/d1000' --draws '%s/frame4.bin' --draws '%s/frame64.bin'",
             py, device, repeat, tmp, tmp, tmp, tmp);
    FILE *p = cli_popen_peer(cmd);
    if (!p)
        return NULL;
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, p);
    buf[n] = 0;
    int st = pclose(p);
    if (st != 0)
        return NULL;
    return json_loads(buf, 0, NULL);
}

int bench_boot(int argc, char **argv)
{
    elo_device_kind kind = ELO_DEVICE_AUTO;
    int json = 0, repeat = 3, peer = 1;
    uint32_t frames = 0;
    static const struct option opts[] = {
        {"device", required_argument, NULL, 'd'}, {"json", no_argument, NULL, 'j'},
        {"repeat", required_argument, NULL, 'r'}, {"frames", required_argument, NULL, 'f'},
        {"no-peer", no_argument, NULL, 'n'},      {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:jr:f:nh", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            if (elo_device_parse(optarg, &kind) < 0)
                return cli_fail(CLI_USAGE, "bench boot", "--device wants auto, cpu or cuda");
            break;
        case 'j': json = 1; break;
        case 'n': peer = 0; break;
        case 'r': repeat = atoi(optarg); if (repeat < 1 || repeat > 100) return CLI_USAGE; break;
        case 'f': frames = (uint32_t)atoi(optarg); if (frames < 1) return CLI_USAGE; break;
        case 'h':
            printf("usage: elohim bench boot [--device D] [--repeat N] [--frames N] [--no-peer] "
                   "[--json]\n");
            return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    elo_backend *b = NULL;
    uint64_t t_ctx = elo_time_ns();
    if (elo_backend_get(kind, &b) < 0) {
        fprintf(stderr, "elohim bench boot: --device %s: %s\n", elo_device_name(kind), elo_errmsg());
        return CLI_USAGE;
    }
    double context_us = (double)(elo_time_ns() - t_ctx) / 1000.0;
    int cuda = b->kind == ELO_DEVICE_CUDA;
    if (!frames)
        frames = cuda ? 200 : 10;
    char tmp[] = "/tmp/elohim-bench-boot-XXXXXX";
    if (!mkdtemp(tmp))
        return cli_fail(CLI_FAIL, "bench boot", "cannot create a scratch directory");
    uint8_t *img;
    size_t len;
    if (elo_gasm_assemble(bench_app, strlen(bench_app), "bench.gasm", &img, &len) < 0)
        return cli_status_fail("bench boot", ELO_INTERNAL);
    char d_empty[4200], d10[4200], d1000[4200], d60[4200], didx[4200], f4[4200], f64[4200];
    snprintf(d_empty, sizeof d_empty, "%s/empty", tmp);
    snprintf(d10, sizeof d10, "%s/d10", tmp);
    snprintf(d1000, sizeof d1000, "%s/d1000", tmp);
    snprintf(d60, sizeof d60, "%s/d60", tmp);
    snprintf(didx, sizeof didx, "%s/idx10k", tmp);
    snprintf(f4, sizeof f4, "%s/frame4.bin", tmp);
    snprintf(f64, sizeof f64, "%s/frame64.bin", tmp);
    fprintf(stderr, "bench boot: preparing apps and a 10K-entry index in %s\n", tmp);
    int bad = elo_mkdirs(d_empty, 0755) < 0 || write_apps(d10, 10, img, len, 0) ||
              write_apps(d1000, 1000, img, len, 0) || write_apps(d60, 60, img, len, 0) ||
              write_apps(didx, 10, img, len, 9990);
    elo_free(img);
    int rc = ELO_OK;
    double v[100];
    run_result r = {0}, sys = {0}, ten = {0}, thousand = {0}, idx = {0}, fr4 = {0}, fr64 = {0};
    if (bad) {
        rc = elo_seterr(ELO_IO, "cannot write the benchmark apps under %s", tmp);
        goto done;
    }
    /* the boots (median of `repeat`) */
#define MEDIAN_OF(dst, dir, slots)                                          \
    do {                                                                    \
        for (int i_ = 0; i_ < repeat; i_++) {                               \
            if ((rc = one_boot(b, dir, slots, 0, &r, NULL)) < 0)            \
                goto done;                                                  \
            v[i_] = r.boot_us;                                              \
        }                                                                   \
        dst = r;                                                            \
        dst.boot_us = median(v, repeat);                                    \
    } while (0)
    MEDIAN_OF(sys, d_empty, 64);
    MEDIAN_OF(ten, d10, 64);
    MEDIAN_OF(thousand, d1000, 1024);
    for (int i = 0; i < repeat; i++) {
        if ((rc = one_boot(b, didx, 64, 0, &r, NULL)) < 0)
            goto done;
        v[i] = r.discovery_us;
    }
    idx = r;
    idx.discovery_us = median(v, repeat);
    if ((rc = one_boot(b, d_empty, 64, frames, &fr4, NULL)) < 0 ||
        (rc = one_boot(b, d60, 64, frames, &fr64, NULL)) < 0)
        goto done;
    /* the draw lists for the peer come from the CPU path (identical) */
    if (peer) {
        run_result dl;
        if ((rc = one_boot(elo_backend_cpu(), d_empty, 64, 0, &dl, f4)) < 0)
            goto done;
        fr4.draws = dl.draws;
        if ((rc = one_boot(elo_backend_cpu(), d60, 64, 0, &dl, f64)) < 0)
            goto done;
        fr64.draws = dl.draws;
    }
    /* I/O thread CPU time while idle: a booted runtime left alone 1 s */
    double idle_pct;
    {
        const char *dirs[1] = {d_empty};
        elo_gpuos_config cfg = {.app_dirs = dirs, .app_dir_count = 1, .backend = b};
        elo_gpuos *os;
        if ((rc = elo_gpuos_boot(&cfg, &os)) < 0)
            goto done;
        struct timespec ts = {0, 200000000};
        nanosleep(&ts, NULL);
        elo_gpuos_stats s0, s1;
        elo_gpuos_get_stats(os, &s0);
        ts.tv_sec = 1;
        ts.tv_nsec = 0;
        nanosleep(&ts, NULL);
        elo_gpuos_get_stats(os, &s1);
        idle_pct = 100.0 * (s1.io_cpu_us - s0.io_cpu_us) / (s1.io_wall_us - s0.io_wall_us);
        elo_gpuos_free(os);
    }
    json_t *pj = peer ? run_peer(cuda ? "cuda" : "cpu", tmp, repeat) : NULL;
    if (peer && !pj)
        fprintf(stderr, "bench boot: the peer did not run (bench/peer-boot.py; "
                        "scripts/peer-venv.sh bench/requirements-boot.txt)\n");
#define PEER(key) (pj && json_object_get(pj, key) ? json_number_value(json_object_get(pj, key)) : 0.0)
    struct {
        const char *name;
        double ours, peer, goal;
    } rows[] = {
        {"boot, system apps only (us)", sys.boot_us, 0, cuda ? 5000 : 0},
        {"boot, 10 apps (us)", ten.boot_us, PEER("load10_us"), cuda ? 10000 : 0},
        {"boot, 1000 apps, 1024 slots (us)", thousand.boot_us, PEER("load1000_us"), cuda ? 100000 : 0},
        {"discovery, 10K-entry index (us)", idx.discovery_us, PEER("discovery_us"), cuda ? 1000 : 0},
        {"frame, 4 apps (us)", fr4.frame_us, PEER("frame4_us"), 0},
        {"frame, 64 apps (us)", fr64.frame_us, PEER("frame64_us"), cuda ? 50 : 0},
        {"I/O thread CPU during 1000-app boot (us)", thousand.io_boot_us, 0, 0},
        {"I/O thread CPU idle (% of a core)", idle_pct, 0, cuda ? 1 : 0},
    };
    if (json) {
        json_t *o = json_object();
        json_object_set_new(o, "device", json_string(cuda ? "cuda" : "cpu"));
        json_object_set_new(o, "peer", json_string(pj && json_object_get(pj, "peer")
                                                      ? json_string_value(json_object_get(pj, "peer"))
                                                      : "none"));
        json_object_set_new(o, "device_context_us", json_real(context_us));
        json_object_set_new(o, "device_init_us", json_real(sys.device_init_us));
        json_object_set_new(o, "cpu_setup_us_1000", json_real(thousand.cpu_setup_us));
        json_object_set_new(o, "loaded_1000", json_integer(thousand.loaded));
        json_object_set_new(o, "frame64_draws", json_integer(fr64.draws));
        json_t *ja = json_array();
        for (size_t i = 0; i < ELO_ARRAY_LEN(rows); i++) {
            json_t *r1 = json_object();
            json_object_set_new(r1, "case", json_string(rows[i].name));
            json_object_set_new(r1, "ours", json_real(rows[i].ours));
            if (rows[i].peer > 0)
                json_object_set_new(r1, "peer", json_real(rows[i].peer));
            if (rows[i].goal > 0)
                json_object_set_new(r1, "goal", json_real(rows[i].goal));
            json_array_append_new(ja, r1);
        }
        json_object_set_new(o, "rows", ja);
        cli_print_json(o);
    } else {
        printf("elohim bench boot on %s; peer: %s\n", cuda ? "cuda" : "cpu",
               pj && json_object_get(pj, "peer") ? json_string_value(json_object_get(pj, "peer"))
                                                 : "none");
        printf("floor: a frame writes 1280x800x4 = 4.1 MB (H100 ~3.3 TB/s: 1.2 us; "
               "one CPU core ~10 GB/s: 410 us)\n");
        printf("device context: %.0f us; device buffers + I/O thread: %.0f us; CPU setup "
               "(1000-app walk): %.0f us; 1000-app boot loaded %u; 64-app frame has %u draws\n",
               context_us, sys.device_init_us, thousand.cpu_setup_us, thousand.loaded, fr64.draws);
        printf("%-44s %12s %12s %8s %10s\n", "case", "ours", "peer", "peer/us", "goal");
        for (size_t i = 0; i < ELO_ARRAY_LEN(rows); i++) {
            char peer_s[32] = "-", ratio[32] = "-", goal[32] = "-";
            if (rows[i].peer > 0) {
                snprintf(peer_s, sizeof peer_s, "%.1f", rows[i].peer);
                snprintf(ratio, sizeof ratio, "%.2fx", rows[i].peer / rows[i].ours);
            }
            if (rows[i].goal > 0)
                snprintf(goal, sizeof goal, "<= %.0f", rows[i].goal);
            printf("%-44s %12.1f %12s %8s %10s\n", rows[i].name, rows[i].ours, peer_s, ratio, goal);
        }
        printf("peer: boot rows compare with reading the apps into one device buffer; frames "
               "with compositing the same draw list rectangle by rectangle.\n");
    }
    json_decref(pj);
done:
    {
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
        if (system(cmd) != 0)
            fprintf(stderr, "bench boot: could not remove %s\n", tmp);
    }
    if (rc < 0)
        return cli_status_fail("bench boot", rc);
    return CLI_OK;
}
