/* cmd-serve.c - `elohim serve` (the HTTP server, until SIGINT/SIGTERM) and
 * `elohim audit verify` (the tamper-evident audit log check).
 *
 * DESIGN: serve blocks SIGINT and SIGTERM before the server's threads
 * exist, so they inherit the mask and only the main thread, parked in
 * sigwait(), sees the signal; it then runs the graceful shutdown (stop
 * accepting, bounded wait for in-flight requests, stop, close SQLite). */
#include "cli.h"

#include "elohim/server.h"

#include <getopt.h>
#include <signal.h>
#include <string.h>

static void serve_usage(FILE *out)
{
    fprintf(out,
            "usage: elohim serve [--data DIR] [--listen ADDR:PORT] [--config FILE] [--web DIR]\n"
            "  --data DIR          state folder (default ./elohim-data or $ELOHIM_DATA)\n"
            "  --listen ADDR:PORT  address and port: 127.0.0.1:8420 (default), 0.0.0.0:8420,\n"
            "                      [::1]:8420, [::]:8420 (IPv6 and IPv4); port 0: any free\n"
            "  --config FILE       JSON settings: limits, timeouts, threads (docs/server.md)\n"
            "  --web DIR           static UI folder (default ./web or next to the binary)\n"
            "Prints 'setup token: <token>' while first-run setup is pending, then the URL.\n"
            "SIGINT/SIGTERM stop it gracefully.\n");
}

int cmd_serve(int argc, char **argv)
{
    static const struct option opts[] = {{"data", required_argument, NULL, 'd'},
                                         {"listen", required_argument, NULL, 'l'},
                                         {"config", required_argument, NULL, 'c'},
                                         {"web", required_argument, NULL, 'w'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    const char *data = NULL, *listen = NULL, *config = NULL, *web = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:l:c:w:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': data = optarg; break;
        case 'l': listen = optarg; break;
        case 'c': config = optarg; break;
        case 'w': web = optarg; break;
        case 'h': serve_usage(stdout); return CLI_OK;
        default: serve_usage(stderr); return CLI_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "elohim serve: unexpected argument '%s'\n", argv[optind]);
        return CLI_USAGE;
    }
    elo_server_config cfg;
    elo_server_config_defaults(&cfg);
    if (config && elo_server_config_load(&cfg, config) < 0)
        return cli_fail(CLI_USAGE, "serve", "%s", elo_errmsg());
    if (listen && elo_server_config_listen(&cfg, listen) < 0)
        return cli_fail(CLI_USAGE, "serve", "%s", elo_errmsg());
    if (data) {
        if (strlen(data) >= sizeof cfg.data_dir)
            return cli_fail(CLI_USAGE, "serve", "--data path too long");
        snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", data);
    }
    if (web) {
        if (strlen(web) >= sizeof cfg.web_root)
            return cli_fail(CLI_USAGE, "serve", "--web path too long");
        snprintf(cfg.web_root, sizeof cfg.web_root, "%s", web);
    }

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    elo_server *srv = NULL;
    if (elo_server_open(&cfg, &srv) < 0)
        return cli_fail(CLI_FAIL, "serve", "%s: %s", cfg.data_dir, elo_errmsg());
    if (elo_server_start(srv) < 0) {
        int code = cli_fail(CLI_FAIL, "serve", "%s", elo_errmsg());
        elo_server_free(srv);
        return code;
    }
    const char *token = elo_server_setup_token(srv);
    if (token) {
        printf("setup token: %s\n", token);
        elo_info("serve: setup required; setup token: %s", token);
    }
    char where[96];
    elo_server_listen_format(cfg.listen_addr, elo_server_port(srv), where, sizeof where);
    printf("elohim serve: listening on http://%s/ (data: %s)\n", where, cfg.data_dir);
    fflush(stdout);

    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "elohim serve: %s received; finishing in-flight requests (up to %u s)\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM", cfg.shutdown_timeout_s);
    int left = elo_server_shutdown(srv);
    elo_server_free(srv);
    if (left > 0)
        fprintf(stderr, "elohim serve: stopped with %d request(s) cut off\n", left);
    else
        fprintf(stderr, "elohim serve: stopped cleanly\n");
    return CLI_OK;
}

int cmd_audit(int argc, char **argv)
{
    static const struct option opts[] = {{"data", required_argument, NULL, 'd'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    const char *usage = "usage: elohim audit verify [--data DIR] [--json]\n";
    if (argc < 2 || (strcmp(argv[1], "verify") != 0)) {
        int help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
        fputs(usage, help ? stdout : stderr);
        return help ? CLI_OK : CLI_USAGE;
    }
    const char *data = NULL;
    int json = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc - 1, argv + 1, "d:jh", opts, NULL)) != -1) {
        switch (c) {
        case 'd': data = optarg; break;
        case 'j': json = 1; break;
        case 'h': fputs(usage, stdout); return CLI_OK;
        default: fputs(usage, stderr); return CLI_USAGE;
        }
    }
    if (optind < argc - 1) {
        fprintf(stderr, "elohim audit: unexpected argument '%s'\n", argv[1 + optind]);
        return CLI_USAGE;
    }
    elo_server_config cfg;
    elo_server_config_defaults(&cfg);
    if (!data)
        data = cfg.data_dir;
    int64_t entries = 0, bad = 0;
    int rc = elo_audit_verify(data, &entries, &bad);
    if (json) {
        json_t *o = json_pack("{s:b,s:I}", "ok", rc == ELO_OK, "entries", (json_int_t)entries);
        if (rc < 0) {
            json_object_set_new(o, "first_bad_entry", bad > 0 ? json_integer(bad) : json_null());
            json_object_set_new(o, "message", json_string(elo_errmsg()));
        }
        cli_print_json(o);
    }
    if (rc < 0) {
        fprintf(stderr, "elohim audit: %s: TAMPERED or unreadable: %s\n", data, elo_errmsg());
        return CLI_FAIL;
    }
    if (!json)
        printf("audit log intact: %lld entries, chain and head verified\n", (long long)entries);
    return CLI_OK;
}
