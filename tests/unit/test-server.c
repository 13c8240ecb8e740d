/* test-server.c - unit tests of the server's parts without sockets: the
 * metrics registry and its text format, JSON body helpers, usernames,
 * static path resolution, the failed-login back-off, roles, configuration,
 * settings, and the router driven with in-memory requests, also with the
 * audit log failing (test hook s->audit_fail): audited changes are refused
 * with 503 and change nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "server/server-impl.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *tmpdir(void)
{
    char tmpl[] = "/tmp/elohim-ut-XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    return strdup(d);
}

static void rmrf(const char *d)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    assert_int_equal(system(cmd), 0);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* ---- metrics ---------------------------------------------------------------- */

static void test_metrics_counter_and_histogram(void **state)
{
    static const double b[] = {0.1, 0.5, 1};
    assert_int_equal(elo_metrics_register_histogram("ut_latency_seconds", "Test.", "kind", b, 3),
                     ELO_OK);
    assert_int_equal(elo_metrics_register_counter("ut_events_total", "Test events.", "what"),
                     ELO_OK);
    assert_int_equal(elo_metrics_observe_label("ut_latency_seconds", "a", 0.05), ELO_OK);
    assert_int_equal(elo_metrics_observe_label("ut_latency_seconds", "a", 0.3), ELO_OK);
    assert_int_equal(elo_metrics_observe_label("ut_latency_seconds", "a", 7), ELO_OK);
    assert_int_equal(elo_metrics_count("ut_events_total", "x\"y\\z\n", 2), ELO_OK);
    assert_int_equal(elo_metrics_count("ut_events_total", "x\"y\\z\n", 0.5), ELO_OK);
    size_t len;
    char *text = elo_metrics_render(&len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    assert_non_null(strstr(text, "# TYPE ut_latency_seconds histogram\n"));
    assert_non_null(strstr(text, "ut_latency_seconds_bucket{kind=\"a\",le=\"0.1\"} 1\n"));
    assert_non_null(strstr(text, "ut_latency_seconds_bucket{kind=\"a\",le=\"0.5\"} 2\n"));
    assert_non_null(strstr(text, "ut_latency_seconds_bucket{kind=\"a\",le=\"1\"} 2\n"));
    assert_non_null(strstr(text, "ut_latency_seconds_bucket{kind=\"a\",le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(text, "ut_latency_seconds_sum{kind=\"a\"} 7.35"));
    assert_non_null(strstr(text, "ut_latency_seconds_count{kind=\"a\"} 3\n"));
    assert_non_null(strstr(text, "ut_events_total{what=\"x\\\"y\\\\z\\n\"} 2.5\n"));
    /* the unlabelled built-in histograms are always present, at zero */
    assert_non_null(strstr(text, "elohim_embedding_duration_seconds_bucket{le=\"0.001\"} 0\n"));
    assert_non_null(strstr(text, "elohim_embedding_duration_seconds_bucket{le=\"0.5\"} 0\n"));
    elo_free(text);
}

static void test_metrics_errors(void **state)
{
    assert_int_equal(elo_metrics_observe("no_such_metric", 1), ELO_NOTFOUND);
    assert_int_equal(elo_metrics_register_counter("9bad", "x", ""), ELO_BADINPUT);
    assert_int_equal(elo_metrics_register_counter("ok_name_total", "x", "a,b,c,d"), ELO_BADINPUT);
    assert_int_equal(elo_metrics_register_counter("ok_name_total", "x", "le"), ELO_BADINPUT);
    static const double down[] = {1, 0.5};
    assert_int_equal(elo_metrics_register_histogram("ut_down", "x", "", down, 2), ELO_BADINPUT);
    /* label count must match, counters only go up */
    assert_int_equal(elo_metrics_observe("elohim_sql_query_duration_seconds", 0.1), ELO_BADINPUT);
    assert_int_equal(elo_metrics_count("elohim_sql_queries_total", "sqlite", -1), ELO_BADINPUT);
    assert_int_equal(elo_metrics_observe_label("elohim_sql_query_duration_seconds", "gpu", 0.002),
                     ELO_OK);
    assert_int_equal(elo_metrics_observe("elohim_embedding_duration_seconds", 0.003), ELO_OK);
    char *text = elo_metrics_render(NULL);
    assert_non_null(strstr(text, "elohim_embedding_duration_seconds_bucket{le=\"0.002\"} 0\n"));
    assert_non_null(strstr(text, "elohim_embedding_duration_seconds_bucket{le=\"0.005\"} 1\n"));
    assert_non_null(strstr(text, "elohim_sql_query_duration_seconds_count{engine=\"gpu\"} 1\n"));
    elo_free(text);
}

/* ---- JSON bodies --------------------------------------------------------------- */

static void test_body_parse(void **state)
{
    char err[256];
    json_t *o;
    assert_int_equal(elo__body_parse("{\"a\":1}", 7, &o, err, sizeof err), ELO_OK);
    json_decref(o);
    assert_int_equal(elo__body_parse("[1]", 3, &o, err, sizeof err), ELO_BADINPUT);
    assert_null(o);
    assert_non_null(strstr(err, "JSON object"));
    assert_int_equal(elo__body_parse("{\"a\":", 5, &o, err, sizeof err), ELO_BADINPUT);
    assert_non_null(strstr(err, "line 1"));
    assert_int_equal(elo__body_parse(NULL, 0, &o, err, sizeof err), ELO_BADINPUT);
    assert_int_equal(elo__body_parse("{\"a\":1,\"a\":2}", 13, &o, err, sizeof err), ELO_BADINPUT);
    const char secret[] = "{\"password\": \"hunter2hunter2\"";
    assert_int_equal(elo__body_parse(secret, strlen(secret), &o, err, sizeof err), ELO_BADINPUT);
    assert_null(strstr(err, "hunter2"));   /* never echoes the input */
}

static void test_body_fields(void **state)
{
    char err[256];
    json_t *o;
    const char *text = "{\"name\":\"abc\",\"n\":3,\"flag\":true,\"x\":null}";
    assert_int_equal(elo__body_parse(text, strlen(text), &o, err, sizeof err), ELO_OK);
    const char *s;
    assert_int_equal(elo__body_string(o, "name", 1, 1, 10, &s, err, sizeof err), ELO_OK);
    assert_string_equal(s, "abc");
    assert_int_equal(elo__body_string(o, "name", 1, 4, 10, &s, err, sizeof err), ELO_BADINPUT);
    assert_non_null(strstr(err, "at least 4"));
    assert_int_equal(elo__body_string(o, "name", 1, 1, 2, &s, err, sizeof err), ELO_BADINPUT);
    assert_int_equal(elo__body_string(o, "n", 1, 1, 10, &s, err, sizeof err), ELO_BADINPUT);
    assert_non_null(strstr(err, "must be a string"));
    assert_int_equal(elo__body_string(o, "missing", 1, 1, 10, &s, err, sizeof err), ELO_BADINPUT);
    assert_int_equal(elo__body_string(o, "missing", 0, 1, 10, &s, err, sizeof err), ELO_NOTFOUND);
    assert_int_equal(elo__body_string(o, "x", 1, 0, 10, &s, err, sizeof err), ELO_BADINPUT);
    int b = -1;
    assert_int_equal(elo__body_bool(o, "flag", 1, &b, err, sizeof err), ELO_OK);
    assert_int_equal(b, 1);
    assert_int_equal(elo__body_bool(o, "n", 1, &b, err, sizeof err), ELO_BADINPUT);
    assert_int_equal(elo__body_bool(o, "missing", 0, &b, err, sizeof err), ELO_NOTFOUND);
    json_decref(o);
    /* jansson refuses \u0000 unless asked, so NUL never reaches a handler */
    const char *withnul = "{\"name\":\"a\\u0000b\"}";
    assert_int_equal(elo__body_parse(withnul, strlen(withnul), &o, err, sizeof err), ELO_BADINPUT);
}

static void test_usernames(void **state)
{
    assert_true(elo__valid_username("bob"));
    assert_true(elo__valid_username("a.b-c_9"));
    assert_false(elo__valid_username("ab"));
    assert_false(elo__valid_username("bob smith"));
    assert_false(elo__valid_username("bob/../x"));
    char long_name[70];
    memset(long_name, 'a', 65);
    long_name[65] = 0;
    assert_false(elo__valid_username(long_name));
}

/* ---- static files ---------------------------------------------------------------- */

static void test_static_resolve(void **state)
{
    char *d = tmpdir();
    char web[600], path[700], real[4096], out[4096];
    snprintf(web, sizeof web, "%s/web", d);
    mkdir(web, 0700);
    snprintf(path, sizeof path, "%s/index.html", web);
    write_text(path, "hi");
    snprintf(path, sizeof path, "%s/sub", web);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/sub/index.html", web);
    write_text(path, "sub");
    snprintf(path, sizeof path, "%s/secret", d);
    write_text(path, "secret");
    snprintf(path, sizeof path, "%s/link", web);
    char target[700];
    snprintf(target, sizeof target, "%s/secret", d);
    assert_int_equal(symlink(target, path), 0);
    assert_non_null(realpath(web, real));

    assert_int_equal(elo__static_resolve(real, "/", out, sizeof out), ELO_OK);
    assert_non_null(strstr(out, "/web/index.html"));
    assert_int_equal(elo__static_resolve(real, "/sub/", out, sizeof out), ELO_OK);
    assert_non_null(strstr(out, "/sub/index.html"));
    assert_int_equal(elo__static_resolve(real, "/sub", out, sizeof out), ELO_OK);
    assert_non_null(strstr(out, "/sub/index.html"));
    assert_int_equal(elo__static_resolve(real, "/../secret", out, sizeof out), ELO_BADINPUT);
    assert_int_equal(elo__static_resolve(real, "/sub/../../secret", out, sizeof out), ELO_BADINPUT);
    assert_int_equal(elo__static_resolve(real, "/./index.html", out, sizeof out), ELO_BADINPUT);
    assert_int_equal(elo__static_resolve(real, "/.git/config", out, sizeof out), ELO_BADINPUT);
    assert_int_equal(elo__static_resolve(real, "/a\\..\\b", out, sizeof out), ELO_BADINPUT);
    assert_int_equal(elo__static_resolve(real, "//index.html", out, sizeof out), ELO_BADINPUT);
    assert_int_equal(elo__static_resolve(real, "/x\x01y", out, sizeof out), ELO_BADINPUT);
    assert_int_equal(elo__static_resolve(real, "/link", out, sizeof out), ELO_BADINPUT);
    assert_int_equal(elo__static_resolve(real, "/missing.html", out, sizeof out), ELO_NOTFOUND);
    assert_int_equal(elo__static_resolve(real, "index.html", out, sizeof out), ELO_BADINPUT);
    assert_int_equal(elo__static_resolve("", "/", out, sizeof out), ELO_NOTFOUND);
    rmrf(d);
    free(d);
}

/* ---- back-off, roles ---------------------------------------------------------------- */

static void test_ratelimit(void **state)
{
    elo_ratelimit *rl = calloc(1, sizeof *rl);
    pthread_mutex_init(&rl->lock, NULL);
    double now = 1000;
    for (int i = 0; i < ELO_RL_USER_FREE; i++) {
        assert_true(elo__rl_wait(rl, "u:bob", ELO_RL_USER_FREE, now) == 0);
        elo__rl_fail(rl, "u:bob", now);
    }
    double w = elo__rl_wait(rl, "u:bob", ELO_RL_USER_FREE, now);
    assert_true(w > 0.9 && w <= 1.0);
    elo__rl_fail(rl, "u:bob", now);
    w = elo__rl_wait(rl, "u:bob", ELO_RL_USER_FREE, now);
    assert_true(w > 1.9 && w <= 2.0);   /* doubles */
    assert_true(elo__rl_wait(rl, "u:bob", ELO_RL_USER_FREE, now + 2.5) == 0);
    assert_true(elo__rl_wait(rl, "u:alice", ELO_RL_USER_FREE, now) == 0);
    /* client addresses: IPv4 as is, IPv6 by its /64 */
    char k1[96], k2[96];
    elo__rl_ip_key("192.0.2.7", k1, sizeof k1);
    assert_string_equal(k1, "i:192.0.2.7");
    elo__rl_ip_key("2001:db8:1:2:aaaa::1", k1, sizeof k1);
    elo__rl_ip_key("2001:db8:1:2:bbbb:cccc:dddd:eeee", k2, sizeof k2);
    assert_string_equal(k1, "i:2001:db8:1:2::/64");
    assert_string_equal(k1, k2);
    elo__rl_ip_key("2001:db8:1:3::1", k2, sizeof k2);
    assert_string_not_equal(k1, k2);
    elo__rl_ip_key(NULL, k1, sizeof k1);
    assert_string_equal(k1, "i:");
    for (int i = 0; i < 40; i++)
        elo__rl_fail(rl, "u:bob", now);
    assert_true(elo__rl_wait(rl, "u:bob", ELO_RL_USER_FREE, now) <= ELO_RL_MAX_DELAY);
    elo__rl_reset(rl, "u:bob");
    assert_true(elo__rl_wait(rl, "u:bob", ELO_RL_USER_FREE, now) == 0);
    /* many made-up keys: bounded table, no crash, recent keys still tracked */
    char key[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof key, "i:10.0.%d.%d", i / 256, i % 256);
        elo__rl_fail(rl, key, now + i * 0.001);
    }
    for (int i = 0; i < 12; i++)
        elo__rl_fail(rl, "i:192.168.1.1", now + 30);
    assert_true(elo__rl_wait(rl, "i:192.168.1.1", ELO_RL_IP_FREE, now + 30) > 0);
    pthread_mutex_destroy(&rl->lock);
    free(rl);
}

static void test_roles(void **state)
{
    assert_int_equal(elo__role_rank("super_admin"), 3);
    assert_int_equal(elo__role_rank("viewer"), 0);
    assert_int_equal(elo__role_rank("root"), -1);
    assert_true(elo__role_has("admin", "users.manage"));
    assert_true(elo__role_has("admin", "audit.read"));
    assert_false(elo__role_has("member", "users.manage"));
    assert_true(elo__role_has("member", "sql.query"));
    assert_true(elo__role_has("viewer", "docs.read"));
    assert_false(elo__role_has("viewer", "docs.write"));
    assert_false(elo__role_has("admin", "made.up"));
    assert_false(elo__role_has("nobody", "docs.read"));
}

/* ---- configuration and settings ------------------------------------------------------- */

static void test_config(void **state)
{
    elo_server_config c;
    elo_server_config_defaults(&c);
    assert_int_equal(c.port, 8420);
    assert_string_equal(c.listen_addr, "127.0.0.1");
    assert_int_equal(elo_server_config_listen(&c, "0.0.0.0:9000"), ELO_OK);
    assert_int_equal(c.port, 9000);
    assert_string_equal(c.listen_addr, "0.0.0.0");
    assert_int_equal(elo_server_config_listen(&c, "localhost:0"), ELO_OK);
    assert_string_equal(c.listen_addr, "127.0.0.1");
    assert_int_equal(elo_server_config_listen(&c, "9000"), ELO_BADINPUT);
    assert_int_equal(elo_server_config_listen(&c, "1.2.3.4:65536"), ELO_BADINPUT);
    assert_int_equal(elo_server_config_listen(&c, "1.2.3:80"), ELO_BADINPUT);
    /* IPv6 in brackets; the address is kept without them */
    assert_int_equal(elo_server_config_listen(&c, "[::1]:8421"), ELO_OK);
    assert_string_equal(c.listen_addr, "::1");
    assert_int_equal(c.port, 8421);
    assert_int_equal(elo_server_config_listen(&c, "[::]:0"), ELO_OK);
    assert_string_equal(c.listen_addr, "::");
    assert_int_equal(c.port, 0);
    assert_int_equal(elo_server_config_listen(&c, "[fd00::2]:65535"), ELO_OK);
    assert_string_equal(c.listen_addr, "fd00::2");
    assert_int_equal(elo_server_config_listen(&c, "[::ffff:127.0.0.1]:80"), ELO_OK);
    assert_int_equal(elo_server_config_listen(&c, "127.0.0.1:8420"), ELO_OK);
    assert_string_equal(c.listen_addr, "127.0.0.1");
    /* malformed: an error with a message, and the config unchanged */
    static const struct {
        const char *in, *msg;
    } bad[] = {
        {"[::1", "without ']'"},          {"[::1]", "must follow ']'"},
        {"[::1]8420", "must follow ']'"}, {"[::1]:", "bad port"},
        {"[::1]:65536", "bad port"},      {"[::1]:-1", "bad port"},
        {"[::1]:+80", "bad port"},        {"[::1]: 80", "bad port"},
        {"[::1]:80x", "bad port"},        {"[::1]:0123456", "bad port"},
        {"::1:80", "brackets"},           {":::80", "brackets"},
        {"[]:80", "empty address"},       {":80", "empty address"},
        {"[127.0.0.1]:80", "not an IPv6"}, {"[::1%lo]:80", "not an IPv6"},
        {"[::g]:80", "not an IPv6"},      {"1.2.3.4:", "bad port"},
        {"", "ADDR:PORT"},                {"host.example:80", "not an IPv4"},
        {"[0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000]:80", "not an IPv6"},
        {"1111111111111111111111111111111111111111111111111111111111111111111:80",
         "not an IPv4"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (elo_server_config_listen(&c, bad[i].in) != ELO_BADINPUT)
            fail_msg("'%s' was accepted", bad[i].in);
        if (!strstr(elo_errmsg(), bad[i].msg))
            fail_msg("'%s': message '%s' lacks '%s'", bad[i].in, elo_errmsg(), bad[i].msg);
        assert_string_equal(c.listen_addr, "127.0.0.1");
        assert_int_equal(c.port, 8420);
    }
    assert_int_equal(elo_server_config_listen(&c, NULL), ELO_BADINPUT);
    char where[96];
    elo_server_listen_format("::1", 8420, where, sizeof where);
    assert_string_equal(where, "[::1]:8420");
    elo_server_listen_format("127.0.0.1", 0, where, sizeof where);
    assert_string_equal(where, "127.0.0.1:0");
    char *d = tmpdir();
    char path[600];
    snprintf(path, sizeof path, "%s/c.json", d);
    write_text(path, "{\"max_body_bytes\": 4096, \"threads\": 3, \"data\": \"x\", \"future\": 1}");
    assert_int_equal(elo_server_config_load(&c, path), ELO_OK);
    assert_int_equal(c.max_body_bytes, 4096);
    assert_int_equal(c.threads, 3);
    assert_string_equal(c.data_dir, "x");
    write_text(path, "{\"max_body_bytes\": 12}");
    assert_int_equal(elo_server_config_load(&c, path), ELO_BADINPUT);
    assert_non_null(strstr(elo_errmsg(), "max_body_bytes"));
    write_text(path, "{\"listen\": \"nope\"}");
    assert_int_equal(elo_server_config_load(&c, path), ELO_BADINPUT);
    assert_non_null(strstr(elo_errmsg(), "listen"));
    write_text(path, "{\"listen\": \"::1:80\"}");
    assert_int_equal(elo_server_config_load(&c, path), ELO_BADINPUT);
    assert_non_null(strstr(elo_errmsg(), "brackets"));
    write_text(path, "{\"listen\": \"[::1]:8430\"}");
    assert_int_equal(elo_server_config_load(&c, path), ELO_OK);
    assert_string_equal(c.listen_addr, "::1");
    assert_int_equal(c.port, 8430);
    write_text(path, "[1]");
    assert_int_equal(elo_server_config_load(&c, path), ELO_BADINPUT);

    elo_settings st;
    assert_int_equal(elo_settings_load(d, &st), ELO_NOTFOUND);
    assert_int_equal(st.enable_gpu_sql, 1);
    snprintf(path, sizeof path, "%s/settings.json", d);
    write_text(path, "{\"enable_gpu_sql\": false, \"enable_smooth_ui\": true}");
    assert_int_equal(elo_settings_load(d, &st), ELO_OK);
    assert_int_equal(st.enable_gpu_sql, 0);
    assert_int_equal(st.enable_smooth_ui, 1);
    write_text(path, "{\"enable_gpu_sql\": \"no\"}");
    assert_int_equal(elo_settings_load(d, &st), ELO_CORRUPT);
    rmrf(d);
    free(d);
}

/* ---- the router with in-memory requests -------------------------------------------------- */

typedef struct {
    const char *auth;
} fake_conn;

static const char *no_query(void *ctx, const char *name) { return NULL; }
static const char *fake_header(void *ctx, const char *name)
{
    fake_conn *c = ctx;
    return !strcasecmp(name, "Authorization") ? c->auth : NULL;
}

static int call(elo_server *s, const char *method, const char *path, const char *body,
                const char *auth, json_t **out)
{
    fake_conn fc = {auth};
    elo_req req = {.method = method, .path = path, .ip = "127.0.0.1", .body = body,
                   .body_len = body ? strlen(body) : 0, .query = no_query,
                   .header = fake_header, .ctx = &fc};
    elo_resp resp;
    elo__resp_init(&resp);
    elo__route(s, &req, &resp);
    if (out)
        *out = resp.body ? json_loadb(resp.body, resp.len, 0, NULL) : NULL;
    if (resp.fd >= 0)
        close(resp.fd);
    elo__resp_free(&resp);
    return resp.status;
}

static void test_router(void **state)
{
    char *d = tmpdir();
    elo_server_config cfg;
    elo_server_config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s/data", d);
    cfg.web_root[0] = 0;
    elo_server *s;
    assert_int_equal(elo_server_open(&cfg, &s), ELO_OK);
    const char *token = elo_server_setup_token(s);
    assert_non_null(token);
    assert_int_equal(strlen(token), 64);
    char first_token[65];
    snprintf(first_token, sizeof first_token, "%s", token);
    json_t *o;
    assert_int_equal(call(s, "GET", "/healthz", NULL, NULL, NULL), 200);
    assert_int_equal(call(s, "GET", "/nope/x", NULL, NULL, NULL), 404);   /* no web root */
    assert_int_equal(call(s, "GET", "/api/v1/nope", NULL, NULL, &o), 404);
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "error"), "code")),
                        "not_found");
    json_decref(o);
    assert_int_equal(call(s, "DELETE", "/api/v1/audit", NULL, NULL, NULL), 405);
    assert_int_equal(call(s, "GET", "/api/v1/users", NULL, NULL, NULL), 401);
    assert_int_equal(call(s, "GET", "/api/v1/users/abc/role", NULL, NULL, NULL), 404);
    char body[256];
    snprintf(body, sizeof body,
             "{\"username\":\"root\",\"password\":\"long enough pw\",\"setup_token\":\"%s\"}", token);
    assert_int_equal(call(s, "POST", "/api/v1/setup/step1", body, NULL, &o), 201);
    char bearer[128];
    snprintf(bearer, sizeof bearer, "Bearer %s", json_string_value(json_object_get(o, "token")));
    json_decref(o);
    assert_int_equal(call(s, "GET", "/api/v1/users", NULL, bearer, &o), 200);
    assert_int_equal(json_array_size(json_object_get(o, "users")), 1);
    json_decref(o);
    assert_int_equal(call(s, "GET", "/api/v1/users", NULL, "Bearer 1234", NULL), 401);
    assert_int_equal(call(s, "POST", "/api/v1/users", "{\"username\":", bearer, NULL), 400);
    assert_int_equal(call(s, "POST", "/api/v1/users", "{\"username\":\"bob\",\"password\":\"pw pw pw pw pw\",\"role\":7}",
                          bearer, NULL), 400);
    assert_int_equal(call(s, "GET", "/api/v1/audit", NULL, bearer, &o), 200);
    json_t *e = json_array_get(json_object_get(o, "entries"), 0);
    assert_string_equal(json_string_value(json_object_get(e, "action")), "SETUP_ADMIN_CREATED");
    json_decref(o);
    /* one server per data directory */
    elo_server *second = NULL;
    assert_int_equal(elo_server_open(&cfg, &second), ELO_BUSY);
    assert_null(second);
    elo_server_free(s);
    assert_int_equal(elo_server_open(&cfg, &second), ELO_OK);
    /* setup is still pending: a fresh token, the old one is void */
    assert_non_null(elo_server_setup_token(second));
    assert_string_not_equal(elo_server_setup_token(second), first_token);
    elo_server_free(second);
    rmrf(d);
    free(d);
}

/* ---- audited changes fail closed --------------------------------------------------------- */

static double audit_failures(void)
{
    static const char name[] = "\nelohim_audit_write_failures_total ";
    char *text = elo_metrics_render(NULL);
    assert_non_null(text);
    const char *p = strstr(text, name);
    assert_non_null(p);
    double v = atof(p + strlen(name));
    elo_free(text);
    return v;
}

/* The status of a call, which must be 503 audit_unavailable when it is 503. */
static int call_audited(elo_server *s, const char *method, const char *path, const char *body,
                        const char *auth, json_t **out)
{
    json_t *o = NULL;
    int status = call(s, method, path, body, auth, &o);
    if (status == 503)
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(o, "error"), "code")),
            "audit_unavailable");
    if (out)
        *out = o;
    else
        json_decref(o);
    return status;
}

static void bearer_of(json_t *o, char *out, size_t n)
{
    const char *token = json_string_value(json_object_get(o, "token"));
    assert_non_null(token);
    snprintf(out, n, "Bearer %s", token);
}

/* The role of user `name` ("" when there is none), read through the API. */
static const char *role_of(elo_server *s, const char *auth, const char *name)
{
    static char role[16];
    json_t *o;
    assert_int_equal(call(s, "GET", "/api/v1/users", NULL, auth, &o), 200);
    role[0] = 0;
    size_t i;
    json_t *u;
    json_array_foreach(json_object_get(o, "users"), i, u)
        if (!strcmp(json_string_value(json_object_get(u, "username")), name))
            snprintf(role, sizeof role, "%s", json_string_value(json_object_get(u, "role")));
    json_decref(o);
    return role;
}

static int setup_step_now(elo_server *s)
{
    json_t *o;
    assert_int_equal(call(s, "GET", "/api/v1/setup/status", NULL, NULL, &o), 200);
    int step = (int)json_integer_value(json_object_get(o, "step"));
    json_decref(o);
    return step;
}

static void test_audit_fail_closed(void **state)
{
    char *d = tmpdir();
    elo_server_config cfg;
    elo_server_config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s/data", d);
    cfg.web_root[0] = 0;
    elo_server *s;
    assert_int_equal(elo_server_open(&cfg, &s), ELO_OK);
    char setup_token[65], body[512], admin[128], bob[128], path[64], settings[1100];
    snprintf(setup_token, sizeof setup_token, "%s", elo_server_setup_token(s));
    snprintf(settings, sizeof settings, "%s/settings.json", cfg.data_dir);
    double failures = audit_failures();
    json_t *o;

    /* setup step 1: no administrator without its entry */
    s->audit_fail = 1;
    snprintf(body, sizeof body,
             "{\"username\":\"root\",\"password\":\"long enough pw\",\"setup_token\":\"%s\"}",
             setup_token);
    assert_int_equal(call_audited(s, "POST", "/api/v1/setup/step1", body, NULL, NULL), 503);
    assert_int_equal(setup_step_now(s), 1);
    assert_int_equal(s->audit_count, 0);
    s->audit_fail = 0;
    assert_int_equal(call_audited(s, "POST", "/api/v1/setup/step1", body, NULL, &o), 201);
    bearer_of(o, admin, sizeof admin);
    json_decref(o);

    /* steps 2, 3 and complete, each refused once, then done */
    const char *steps[][2] = {
        {"/api/v1/setup/step2", "\"founder_password\":\"founder password 16+\""},
        {"/api/v1/setup/step3", "\"enable_gpu_embeddings\":true,\"enable_gpu_vector_search\":true,"
                                "\"enable_gpu_sql\":false,\"enable_smooth_ui\":true"},
        {"/api/v1/setup/complete", "\"x\":0"},
    };
    for (int i = 0; i < 3; i++) {
        snprintf(body, sizeof body, "{%s,\"setup_token\":\"%s\"}", steps[i][1], setup_token);
        int64_t entries = s->audit_count;
        s->audit_fail = 1;
        assert_int_equal(call_audited(s, "POST", steps[i][0], body, admin, NULL), 503);
        assert_int_equal(setup_step_now(s), i + 2);
        assert_int_equal(s->audit_count, entries);
        if (i == 1)
            assert_int_equal(access(settings, F_OK), -1);   /* put back: none before */
        s->audit_fail = 0;
        assert_int_equal(call_audited(s, "POST", steps[i][0], body, admin, NULL), 200);
        assert_int_equal(s->audit_count, entries + 1);
    }
    assert_int_equal(setup_step_now(s), 0);
    assert_int_equal(access(settings, F_OK), 0);
    assert_null(elo_server_setup_token(s));

    /* bob exists and has a session before the log breaks */
    const char *bob_body =
        "{\"username\":\"bob\",\"password\":\"bob password 1\",\"role\":\"member\"}";
    assert_int_equal(call_audited(s, "POST", "/api/v1/users", bob_body, admin, &o), 201);
    int64_t bob_id = json_integer_value(json_object_get(o, "id"));
    json_decref(o);
    const char *bob_login = "{\"username\":\"bob\",\"password\":\"bob password 1\"}";
    assert_int_equal(call_audited(s, "POST", "/api/v1/auth/login", bob_login, NULL, &o), 200);
    bearer_of(o, bob, sizeof bob);
    json_decref(o);

    /* the log breaks: every audited change is refused and changes nothing */
    int64_t entries = s->audit_count;
    double before = audit_failures();
    s->audit_fail = 1;
    const char *carol =
        "{\"username\":\"carol\",\"password\":\"carol password\",\"role\":\"viewer\"}";
    assert_int_equal(call_audited(s, "POST", "/api/v1/users", carol, admin, NULL), 503);
    assert_string_equal(role_of(s, admin, "carol"), "");
    snprintf(path, sizeof path, "/api/v1/users/%lld/role", (long long)bob_id);
    assert_int_equal(call_audited(s, "PUT", path, "{\"role\":\"admin\"}", admin, NULL), 503);
    assert_string_equal(role_of(s, admin, "bob"), "member");
    snprintf(path, sizeof path, "/api/v1/users/%lld/permissions", (long long)bob_id);
    assert_int_equal(
        call_audited(s, "POST", path, "{\"permission\":\"audit.read\"}", admin, NULL), 503);
    assert_int_equal(call(s, "GET", "/api/v1/audit", NULL, bob, NULL), 403);   /* not granted */
    snprintf(path, sizeof path, "/api/v1/users/%lld", (long long)bob_id);
    assert_int_equal(call_audited(s, "DELETE", path, NULL, admin, NULL), 503);
    assert_string_equal(role_of(s, admin, "bob"), "member");
    assert_int_equal(call(s, "GET", "/api/v1/auth/me", NULL, bob, NULL), 200);
    /* logins: a right and a wrong password answer alike, and neither logs in */
    assert_int_equal(call_audited(s, "POST", "/api/v1/auth/login", bob_login, NULL, NULL), 503);
    assert_int_equal(call_audited(s, "POST", "/api/v1/auth/login",
                                  "{\"username\":\"bob\",\"password\":\"wrong\"}", NULL, NULL),
                     503);
    /* reads go on */
    assert_int_equal(call(s, "GET", "/api/v1/users", NULL, admin, NULL), 200);
    assert_int_equal(call(s, "GET", "/api/v1/audit", NULL, admin, NULL), 200);
    /* logout ends the session anyway (logged and counted) */
    assert_int_equal(call(s, "POST", "/api/v1/auth/logout", NULL, bob, NULL), 200);
    assert_int_equal(call(s, "GET", "/api/v1/auth/me", NULL, bob, NULL), 401);
    assert_int_equal(s->audit_count, entries);
    assert_true(audit_failures() - before == 7);   /* one per refused change, and the logout */

    /* the log works again: everything goes through and is on record */
    s->audit_fail = 0;
    assert_int_equal(call_audited(s, "POST", "/api/v1/users", carol, admin, NULL), 201);
    assert_string_equal(role_of(s, admin, "carol"), "viewer");
    snprintf(path, sizeof path, "/api/v1/users/%lld/role", (long long)bob_id);
    assert_int_equal(call_audited(s, "PUT", path, "{\"role\":\"admin\"}", admin, NULL), 200);
    assert_string_equal(role_of(s, admin, "bob"), "admin");
    snprintf(path, sizeof path, "/api/v1/users/%lld", (long long)bob_id);
    assert_int_equal(call_audited(s, "DELETE", path, NULL, admin, NULL), 200);
    assert_string_equal(role_of(s, admin, "bob"), "");
    assert_int_equal(s->audit_count, entries + 3);
    assert_int_equal(call(s, "GET", "/api/v1/audit", NULL, admin, &o), 200);
    const char *want[] = {"USER_DELETED", "ROLE_CHANGED", "USER_CREATED"};
    for (int i = 0; i < 3; i++)
        assert_string_equal(json_string_value(json_object_get(
                                json_array_get(json_object_get(o, "entries"), i), "action")),
                            want[i]);
    json_decref(o);
    int64_t total = s->audit_count;
    assert_true(audit_failures() - failures == 4 + 7);
    elo_server_free(s);
    int64_t n, bad;
    assert_int_equal(elo_audit_verify(cfg.data_dir, &n, &bad), ELO_OK);
    assert_int_equal(n, total);
    rmrf(d);
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_counter_and_histogram),
        cmocka_unit_test(test_metrics_errors),
        cmocka_unit_test(test_body_parse),
        cmocka_unit_test(test_body_fields),
        cmocka_unit_test(test_usernames),
        cmocka_unit_test(test_static_resolve),
        cmocka_unit_test(test_ratelimit),
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_router),
        cmocka_unit_test(test_audit_fail_closed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
