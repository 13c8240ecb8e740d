/* fuzz-json-body.c - libFuzzer harness for the server's handling of
 * untrusted request input, without sockets: JSON bodies through the parser
 * and typed field getters every route uses, the router (path matching,
 * method checks, auth checks, the setup steps' body and token checks) on a
 * real server object, static path resolution, --listen parsing, and metric
 * label escaping.
 *
 * Input: byte 0 picks the mode; the rest is "PATH\nBODY" for the router or
 * the raw body/path otherwise. Login is not driven (it runs Argon2id, 64 MiB
 * and ~0.1 s per attempt, which would starve the fuzzer); its body goes
 * through the same elo__body_* helpers exercised here. */
#include "server/server-impl.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static elo_server *srv;
static char fuzz_dir[64];

static void cleanup_files(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_dir);
    if (system(cmd) != 0)
        return;
}

static const char *no_query(void *ctx, const char *name) { return ctx; }
static const char *no_header(void *ctx, const char *name) { return NULL; }

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    elo_log_set_level(ELO_LOG_OFF);
    char tmpl[] = "/tmp/elohim-fuzz-XXXXXX";
    char *dir = mkdtemp(tmpl);
    if (!dir)
        abort();
    elo_server_config cfg;
    elo_server_config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s/data", dir);
    snprintf(cfg.web_root, sizeof cfg.web_root, "web");   /* the repository's UI */
    if (elo_server_open(&cfg, &srv) < 0)
        abort();
    snprintf(fuzz_dir, sizeof fuzz_dir, "%s", dir);
    /* libFuzzer may leave through _Exit: remove the scratch files now. The
     * open database keeps working on its descriptors; the inputs driven here
     * never write a file by name (no setup step passes the token check). */
    cleanup_files();
    return 0;
}

static void fields(const char *data, size_t len)
{
    char err[256];
    json_t *o;
    if (elo__body_parse(data, len, &o, err, sizeof err) < 0)
        return;
    static const char *const keys[] = {"username", "password", "setup_token", "founder_password",
                                       "role", "permission", "enable_gpu_sql"};
    for (size_t i = 0; i < ELO_ARRAY_LEN(keys); i++) {
        const char *s;
        int b;
        if (elo__body_string(o, keys[i], 1, 3, 64, &s, err, sizeof err) == ELO_OK) {
            if (strlen(s) < 3 || strlen(s) > 64)
                abort();
            (void)elo__valid_username(s);
            (void)elo__valid_permission(s);
            (void)elo__role_rank(s);
        }
        (void)elo__body_bool(o, keys[i], 0, &b, err, sizeof err);
    }
    json_decref(o);
}

/* An accepted ADDR:PORT leaves a bindable address and a port in range. */
static void listen_text(const char *text)
{
    elo_server_config c;
    memset(&c, 0, sizeof c);
    if (elo_server_config_listen(&c, text) != ELO_OK)
        return;
    unsigned char addr[16];
    if (c.port < 0 || c.port > 65535 || (inet_pton(AF_INET, c.listen_addr, addr) != 1 &&
                                         inet_pton(AF_INET6, c.listen_addr, addr) != 1))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    int mode = data[0] % 6;
    char *text = malloc(size);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = 0;
    size_t len = size - 1;
    if (mode == 0) {
        fields(text, len);
    } else if (mode <= 3) {
        static const char *const methods[] = {"GET", "POST", "PUT", "DELETE", "HEAD", "PATCH"};
        char *nl = memchr(text, '\n', len);
        const char *body = nl ? nl + 1 : NULL;
        size_t body_len = nl ? len - (size_t)(nl + 1 - text) : 0;
        if (nl)
            *nl = 0;
        char path[600];
        if (mode == 3)   /* bodies against the setup steps (token checks, no hashing) */
            snprintf(path, sizeof path, "/api/v1/setup/step%d", 1 + (int)(len % 3));
        else
            snprintf(path, sizeof path, "%s%.500s", text[0] == '/' ? "" : "/", text);
        elo_req req = {.method = methods[mode == 3 ? 1 : (len + mode) % 6], .path = path,
                       .ip = "127.0.0.1", .body = body, .body_len = body_len,
                       .query = no_query, .header = no_header,
                       .ctx = mode == 2 ? text : NULL};
        if (strstr(path, "/auth/login") == NULL) {
            elo_resp resp;
            elo__resp_init(&resp);
            elo__route(srv, &req, &resp);
            if (resp.status < 200 || resp.status > 599)
                abort();
            if (resp.fd >= 0)
                close(resp.fd);
            elo__resp_free(&resp);
        }
    } else if (mode == 4) {
        char out[4096];
        (void)elo__static_resolve(srv->web_real, text, out, sizeof out);
        listen_text(text);
    } else {
        elo_metrics_count("elohim_sql_queries_total", text, 1);
        char *m = elo_metrics_render(NULL);
        free(m);
    }
    free(text);
    return 0;
}
