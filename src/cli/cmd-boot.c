/* cmd-boot.c - `elohim boot` (boot the GPU-native runtime, run frames,
 * export a frame) and `elohim app build|inspect` (.gasm -> .gpuapp, and a
 * look inside a .gpuapp). The benchmark is in bench-boot.c. */
#include "cli.h"
#include "elohim/gpuos.h"

#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

static int parse_u32(const char *cmd, const char *opt, const char *s, uint32_t lo, uint32_t hi,
                     uint32_t *out)
{
    int64_t v;
    if (elo_parse_i64(s, &v) < 0 || v < lo || v > hi)
        return cli_fail(CLI_USAGE, cmd, "%s wants a whole number in %u..%u (got '%s')", opt, lo,
                        hi, s);
    *out = (uint32_t)v;
    return CLI_OK;
}

/* Resolves --device for the runtime: auto = the GPU when usable. */
static elo_backend *boot_backend(const char *cmd, elo_device_kind kind)
{
    elo_backend *b = NULL;
    if (elo_backend_get(kind, &b) < 0) {
        fprintf(stderr, "elohim %s: --device %s: %s\n", cmd, elo_device_name(kind), elo_errmsg());
        return NULL;
    }
    if (kind == ELO_DEVICE_AUTO)
        elo_info("%s: device auto chose %s", cmd, elo_device_name(b->kind));
    return b;
}

/* Time to create the device context (the backend), measured by cmd_boot. */
static double context_us;

static json_t *stats_json(elo_gpuos *os)
{
    elo_gpuos_stats st;
    elo_gpuos_get_stats(os, &st);
    json_t *o = json_object();
    json_object_set_new(o, "device", json_string(st.device));
    json_object_set_new(o, "slots", json_integer(st.slots));
    json_object_set_new(o, "app_count", json_integer(st.app_count));
    json_object_set_new(o, "system_app_count", json_integer(st.system_app_count));
    json_object_set_new(o, "index_count", json_integer(st.index_count));
    json_object_set_new(o, "discovered_count", json_integer(st.discovered_count));
    json_object_set_new(o, "loaded_count", json_integer(st.loaded_count));
    json_object_set_new(o, "error_count", json_integer(st.error_count));
    json_object_set_new(o, "no_slot_count", json_integer(st.no_slot_count));
    json_object_set_new(o, "boot_frames", json_integer(st.boot_frames));
    json_object_set_new(o, "frames", json_integer(st.frame));
    json_object_set_new(o, "focused_slot", json_integer(st.focused_slot));
    json_object_set_new(o, "fault_count", json_integer(st.fault_count));
    json_object_set_new(o, "preempt_count", json_integer(st.preempt_total));
    json_object_set_new(o, "io_requests", json_integer(st.io_requests));
    static const char *phase_names[5] = {"system_init", "system_apps", "discovery", "loading",
                                         "boot_complete"};
    json_t *ph = json_object();
    for (int p = 0; p < 5; p++)
        json_object_set_new(ph, phase_names[p], json_real(st.phase_us[p]));
    json_object_set_new(o, "phase_us", ph);
    json_object_set_new(o, "boot_us", json_real(st.boot_us));
    json_object_set_new(o, "cpu_setup_us", json_real(st.cpu_setup_us));
    json_object_set_new(o, "device_init_us", json_real(st.device_init_us));
    json_object_set_new(o, "device_context_us", json_real(context_us));
    if (st.last_frames)
        json_object_set_new(o, "frame_us", json_real(st.last_frames_us / st.last_frames));
    json_object_set_new(o, "io_cpu_us", json_real(st.io_cpu_us));
    char hash[32];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)elo_gpuos_frame_hash(os));
    json_object_set_new(o, "frame_hash", json_string(hash));
    elo_gpuos_app *apps = calloc(st.slots, sizeof *apps);
    json_t *ja = json_array();
    int n = apps ? elo_gpuos_apps(os, apps, (int)st.slots) : 0;
    for (int i = 0; i < n; i++) {
        json_t *a = json_object();
        json_object_set_new(a, "slot", json_integer(apps[i].slot));
        json_object_set_new(a, "name", json_string(apps[i].name));
        json_object_set_new(a, "type", json_string(apps[i].type));
        json_object_set_new(a, "status", json_string(apps[i].status));
        json_object_set_new(a, "preempt_count", json_integer(apps[i].preempt_count));
        json_object_set_new(a, "fault_code", json_integer(apps[i].fault_code));
        json_object_set_new(a, "quad_count", json_integer(apps[i].quad_count));
        if (apps[i].path)
            json_object_set_new(a, "path", json_string(apps[i].path));
        json_array_append_new(ja, a);
    }
    free(apps);
    json_object_set_new(o, "apps", ja);
    uint32_t rmax = st.discovered_count;
    elo_gpuos_reject *rej = calloc(rmax ? rmax : 1, sizeof *rej);
    json_t *jr = json_array();
    int nr = rej ? elo_gpuos_rejects(os, rej, (int)rmax) : 0;
    for (int i = 0; i < nr; i++) {
        json_t *r = json_object();
        json_object_set_new(r, "path", json_string(rej[i].path));
        json_object_set_new(r, "reason", json_string(elo_gpuapp_reason(rej[i].reason)));
        json_array_append_new(jr, r);
    }
    free(rej);
    json_object_set_new(o, "rejected", jr);
    return o;
}

static void print_human(elo_gpuos *os)
{
    json_t *o = stats_json(os);
    printf("booted on %s: %lld apps (%lld system), %lld discovered, %lld loaded, %lld errors, "
           "%lld without a slot\n",
           json_string_value(json_object_get(o, "device")),
           (long long)json_integer_value(json_object_get(o, "app_count")),
           (long long)json_integer_value(json_object_get(o, "system_app_count")),
           (long long)json_integer_value(json_object_get(o, "discovered_count")),
           (long long)json_integer_value(json_object_get(o, "loaded_count")),
           (long long)json_integer_value(json_object_get(o, "error_count")),
           (long long)json_integer_value(json_object_get(o, "no_slot_count")));
    json_t *ph = json_object_get(o, "phase_us");
    const char *k;
    json_t *v;
    int p = 1;
    json_object_foreach(ph, k, v) printf("  phase %d %-14s %10.1f us\n", p++, k, json_real_value(v));
    printf("  boot %.1f us (cpu setup %.1f us, device context %.1f us, device buffers %.1f us), "
           "frames %lld, frame hash %s\n",
           json_real_value(json_object_get(o, "boot_us")),
           json_real_value(json_object_get(o, "cpu_setup_us")),
           json_real_value(json_object_get(o, "device_context_us")),
           json_real_value(json_object_get(o, "device_init_us")),
           (long long)json_integer_value(json_object_get(o, "frames")),
           json_string_value(json_object_get(o, "frame_hash")));
    size_t i;
    json_t *a;
    printf("  slot  type    status   name\n");
    json_array_foreach(json_object_get(o, "apps"), i, a)
        printf("  %4lld  %-6s  %-7s  %s\n", (long long)json_integer_value(json_object_get(a, "slot")),
               json_string_value(json_object_get(a, "type")),
               json_string_value(json_object_get(a, "status")),
               json_string_value(json_object_get(a, "name")));
    json_array_foreach(json_object_get(o, "rejected"), i, a)
        printf("  rejected %s: %s\n", json_string_value(json_object_get(a, "path")),
               json_string_value(json_object_get(a, "reason")));
    json_decref(o);
}

/* Ctrl-C during --frames stops the megakernel after the frame in progress;
 * the run then reports and exports as usual. */
static elo_gpuos *volatile running_os;

static void on_interrupt(int sig)
{
    (void)sig;
    if (running_os)
        elo_gpuos_stop(running_os);
}

/* Reads an --events script into one input set per frame. */
#define EVENTS_MAX_BYTES (64u << 20)
static int read_events(const char *path, uint32_t frames, elo_gpuos_input **out)
{
    char *text;
    size_t len;
    int rc = elo_read_file(path, EVENTS_MAX_BYTES, &text, &len);
    if (rc < 0)
        return rc;
    elo_gpuos_input *in = elo_calloc(frames, sizeof *in);
    if (!in) {
        elo_free(text);
        return elo_seterr(ELO_NOMEM, "out of memory for %u frames of events", frames);
    }
    rc = elo_gpuos_parse_events(path, text, len, frames, in);
    elo_free(text);
    if (rc < 0) {
        elo_free(in);
        return rc;
    }
    *out = in;
    return ELO_OK;
}

int cmd_boot(int argc, char **argv)
{
    const char *apps_dir = NULL, *png = NULL, *events = NULL;
    char home_apps[4096];
    uint32_t slots = 64, frames = 0, load_max = 0, budget = 100000;
    elo_device_kind kind = ELO_DEVICE_AUTO;
    int json = 0, rc;
    static const struct option opts[] = {
        {"apps", required_argument, NULL, 'a'},   {"slots", required_argument, NULL, 's'},
        {"frames", required_argument, NULL, 'f'}, {"png", required_argument, NULL, 'p'},
        {"device", required_argument, NULL, 'd'}, {"json", no_argument, NULL, 'j'},
        {"load", required_argument, NULL, 'l'},   {"budget", required_argument, NULL, 'b'},
        {"events", required_argument, NULL, 'e'}, {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "a:s:f:p:d:jl:b:e:h", opts, NULL)) != -1) {
        switch (c) {
        case 'a': apps_dir = optarg; break;
        case 'p': png = optarg; break;
        case 'e': events = optarg; break;
        case 'j': json = 1; break;
        case 's':
            if (parse_u32("boot", "--slots", optarg, 4, 4096, &slots)) return CLI_USAGE;
            break;
        case 'f':
            if (parse_u32("boot", "--frames", optarg, 0, 1000000, &frames)) return CLI_USAGE;
            break;
        case 'l':
            if (parse_u32("boot", "--load", optarg, 0, 1000000, &load_max)) return CLI_USAGE;
            break;
        case 'b':
            if (parse_u32("boot", "--budget", optarg, 1, 100000000, &budget)) return CLI_USAGE;
            break;
        case 'd':
            if (elo_device_parse(optarg, &kind) < 0)
                return cli_fail(CLI_USAGE, "boot", "--device wants auto, cpu or cuda (got '%s')",
                                optarg);
            break;
        case 'h':
            printf("usage: elohim boot [--apps DIR] [--slots N] [--frames N] [--png FILE]\n"
                   "                   [--events FILE] [--load N] [--budget N]\n"
                   "                   [--device auto|cpu|cuda] [--json]\n"
                   "Boots the GPU-native runtime: system apps in slots 0-3, then every .gpuapp\n"
                   "under DIR (default ~/apps), runs N frames after boot, writes the last\n"
                   "frame as PNG. --events replays input: JSON Lines such as\n"
                   "  {\"frame\": 3, \"mouse\": [600, 780], \"buttons\": 1, \"key\": 65}\n"
                   "(frame counted from the first frame run; see docs/gpuos.md).\n");
            return CLI_OK;
        default:
            return CLI_USAGE;
        }
    }
    if (optind < argc)
        return cli_fail(CLI_USAGE, "boot", "unexpected argument '%s'", argv[optind]);
    if (events && !frames)
        return cli_fail(CLI_USAGE, "boot", "--events needs --frames N (N > 0)");
    elo_gpuos_input *inputs = NULL;
    if (events && (rc = read_events(events, frames, &inputs)) < 0)
        return cli_status_fail("boot", rc);
    if (!apps_dir) {
        const char *home = getenv("HOME");
        snprintf(home_apps, sizeof home_apps, "%s/apps", home && *home ? home : ".");
        apps_dir = home_apps;
    }
    uint64_t t_ctx = elo_time_ns();
    elo_backend *b = boot_backend("boot", kind);
    if (!b) {
        elo_free(inputs);
        return CLI_USAGE;
    }
    context_us = (double)(elo_time_ns() - t_ctx) / 1000.0;
    const char *dirs[1] = {apps_dir};
    elo_gpuos_config cfg = {.app_dirs = dirs, .app_dir_count = 1, .slots = slots,
                            .load_max = load_max, .budget = budget, .backend = b};
    elo_gpuos *os;
    rc = elo_gpuos_boot(&cfg, &os);
    if (rc < 0) {
        elo_free(inputs);
        return cli_status_fail("boot", rc);
    }
    if (frames) {
        running_os = os;
        struct sigaction sa, old_sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_interrupt;
        sigaction(SIGINT, &sa, &old_sa);
        rc = elo_gpuos_run_frames(os, frames, inputs);
        elo_free(inputs);
        inputs = NULL;
        sigaction(SIGINT, &old_sa, NULL);
        running_os = NULL;
        if (rc < 0) {
            elo_gpuos_free(os);
            return cli_status_fail("boot", rc);
        }
    }
    if (png && (rc = elo_gpuos_write_png(os, png)) < 0) {
        elo_gpuos_free(os);
        return cli_status_fail("boot", rc);
    }
    if (json)
        cli_print_json(stats_json(os));
    else
        print_human(os);
    elo_gpuos_free(os);
    return CLI_OK;
}

/* ---- elohim app --------------------------------------------------------- */

static int app_build(int argc, char **argv)
{
    const char *src = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) {
            if (i + 1 >= argc)
                return cli_fail(CLI_USAGE, "app build", "-o wants a file name");
            out = argv[++i];
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_fail(CLI_USAGE, "app build", "unknown option '%s'", argv[i]);
        } else if (!src) {
            src = argv[i];
        } else {
            return cli_fail(CLI_USAGE, "app build", "unexpected argument '%s'", argv[i]);
        }
    }
    if (!src || !out)
        return cli_fail(CLI_USAGE, "app build", "usage: elohim app build SRC.gasm -o APP.gpuapp");
    char *text;
    size_t len;
    int rc = elo_read_file(src, 16u << 20, &text, &len);
    if (rc < 0)
        return cli_status_fail("app build", rc);
    uint8_t *img;
    size_t img_len;
    rc = elo_gasm_assemble(text, len, src, &img, &img_len);
    elo_free(text);
    if (rc < 0) {
        fprintf(stderr, "elohim app build: %s\n", elo_errmsg());
        return CLI_FAIL;
    }
    rc = elo_write_file_atomic(out, img, img_len);
    elo_free(img);
    if (rc < 0)
        return cli_status_fail("app build", rc);
    return CLI_OK;
}

static int app_inspect(int argc, char **argv)
{
    const char *path = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (argv[i][0] == '-' && argv[i][1])
            return cli_fail(CLI_USAGE, "app inspect", "unknown option '%s'", argv[i]);
        else if (!path)
            path = argv[i];
        else
            return cli_fail(CLI_USAGE, "app inspect", "unexpected argument '%s'", argv[i]);
    }
    if (!path)
        return cli_fail(CLI_USAGE, "app inspect", "usage: elohim app inspect APP.gpuapp [--json]");
    char *data;
    size_t len;
    int rc = elo_read_file(path, 16u << 20, &data, &len);
    if (rc < 0)
        return cli_status_fail("app inspect", rc);
    elo_gpuapp_info info;
    rc = elo_gpuapp_parse((const uint8_t *)data, len, &info);
    if (rc < 0) {
        fprintf(stderr, "elohim app inspect: %s: %s\n", path, elo_errmsg());
        elo_free(data);
        return CLI_FAIL;
    }
    const uint8_t *code = (const uint8_t *)data + info.code_offset;
    char line[160];
    if (json) {
        json_t *o = json_object();
        json_object_set_new(o, "path", json_string(path));
        json_object_set_new(o, "name", json_string(info.name));
        json_object_set_new(o, "version", json_integer(info.version));
        json_object_set_new(o, "flags", json_integer(info.flags));
        json_object_set_new(o, "code_offset", json_integer(info.code_offset));
        json_object_set_new(o, "code_size", json_integer(info.code_size));
        json_object_set_new(o, "state_size", json_integer(info.state_size));
        json_object_set_new(o, "vertex_budget", json_integer(info.vertex_budget));
        json_object_set_new(o, "thread_count", json_integer(info.thread_count));
        json_object_set_new(o, "entry_point", json_integer(info.entry_point));
        json_object_set_new(o, "file_size", json_integer((json_int_t)len));
        json_t *ja = json_array();
        for (uint32_t i = 0; i < info.code_size && i < 4096; i++) {
            elo_gpuapp_disasm(code + (size_t)i * 8, line, sizeof line);
            json_array_append_new(ja, json_string(line));
        }
        json_object_set_new(o, "code", ja);
        cli_print_json(o);
    } else {
        printf("%s: .gpuapp v%u \"%s\"\n", path, info.version, info.name);
        printf("  code        %u instructions at byte %u, entry %u\n", info.code_size,
               info.code_offset, info.entry_point);
        printf("  state       %u bytes\n  vertices    %u\n  threads     %u\n  flags       0x%x\n",
               info.state_size, info.vertex_budget, info.thread_count, info.flags);
        for (uint32_t i = 0; i < info.code_size && i < 4096; i++) {
            elo_gpuapp_disasm(code + (size_t)i * 8, line, sizeof line);
            printf("  %5u%s %s\n", i, i == info.entry_point ? ">" : " ", line);
        }
        if (info.code_size > 4096)
            printf("  ... %u more\n", info.code_size - 4096);
    }
    elo_free(data);
    return CLI_OK;
}

int cmd_app(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "build"))
        return app_build(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "inspect"))
        return app_inspect(argc - 1, argv + 1);
    FILE *out = argc >= 2 && !strcmp(argv[1], "--help") ? stdout : stderr;
    fprintf(out, "usage: elohim app build SRC.gasm -o APP.gpuapp\n"
                 "       elohim app inspect APP.gpuapp [--json]\n");
    return out == stdout ? CLI_OK : CLI_USAGE;
}
