/* config.c - server configuration (defaults, --listen with IPv4 or
 * bracketed IPv6 addresses, the JSON --config
 * file) and the setup preferences file DIR/settings.json that the other
 * services read through elo_settings_load(). */
#include "server-impl.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int is_dir(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

void elo_server_config_defaults(elo_server_config *c)
{
    memset(c, 0, sizeof *c);
    const char *env = getenv("ELOHIM_DATA");
    snprintf(c->data_dir, sizeof c->data_dir, "%s", env && *env ? env : "./elohim-data");
    snprintf(c->listen_addr, sizeof c->listen_addr, "127.0.0.1");
    c->port = 8420;
    c->max_body_bytes = 1u << 20;
    c->max_connections = 512;
    c->per_ip_connections = 64;
    c->request_timeout_s = 30;
    c->threads = 0;
    c->shutdown_timeout_s = 10;
    c->session_ttl_s = 12 * 3600;
    const char *web = getenv("ELOHIM_WEB");
    if (web && *web) {
        snprintf(c->web_root, sizeof c->web_root, "%s", web);
    } else if (is_dir("web")) {
        snprintf(c->web_root, sizeof c->web_root, "web");
    } else {
        char exe[900];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n > 0) {
            exe[n] = 0;
            char *slash = strrchr(exe, '/');
            if (slash) {
                *slash = 0;
                char cand[1024];
                snprintf(cand, sizeof cand, "%s/../web", exe);
                if (is_dir(cand))
                    snprintf(c->web_root, sizeof c->web_root, "%s", cand);
            }
        }
    }
}

/* "PORT" as 0-65535, decimal digits only (no sign, no spaces). */
static int parse_port(const char *text, int *out)
{
    size_t n = strlen(text);
    if (n == 0 || n > 5 || strspn(text, "0123456789") != n || atoi(text) > 65535)
        return elo_seterr(ELO_BADINPUT, "--listen: bad port '%.16s' (want 0-65535)", text);
    *out = atoi(text);
    return ELO_OK;
}

int elo_server_config_listen(elo_server_config *c, const char *addr_port)
{
    if (!addr_port || !*addr_port)
        return elo_seterr(ELO_BADINPUT,
                          "--listen wants ADDR:PORT, e.g. 127.0.0.1:8420 or [::1]:8420");
    char addr[sizeof c->listen_addr];
    const char *port_text;
    size_t len;
    if (addr_port[0] == '[') {
        const char *close = strchr(addr_port, ']');
        if (!close)
            return elo_seterr(ELO_BADINPUT, "--listen: '[' without ']' (IPv6 is [ADDR]:PORT)");
        if (close[1] != ':')
            return elo_seterr(ELO_BADINPUT, "--listen: ':PORT' must follow ']' (IPv6 is "
                                            "[ADDR]:PORT)");
        len = (size_t)(close - addr_port - 1);
        if (len == 0)
            return elo_seterr(ELO_BADINPUT, "--listen: empty address in '[]'");
        struct in6_addr in6;
        if (len >= sizeof addr)
            return elo_seterr(ELO_BADINPUT, "--listen: the address is not an IPv6 address");
        memcpy(addr, addr_port + 1, len);
        addr[len] = 0;
        if (inet_pton(AF_INET6, addr, &in6) != 1)
            return elo_seterr(ELO_BADINPUT, "--listen: '%s' is not an IPv6 address", addr);
        port_text = close + 2;
    } else {
        const char *colon = strrchr(addr_port, ':');
        if (!colon)
            return elo_seterr(ELO_BADINPUT,
                              "--listen wants ADDR:PORT, e.g. 127.0.0.1:8420 or [::1]:8420");
        len = (size_t)(colon - addr_port);
        if (memchr(addr_port, ':', len))
            return elo_seterr(ELO_BADINPUT,
                              "--listen: an IPv6 address goes in brackets: [ADDR]:PORT, "
                              "e.g. [::1]:8420");
        if (len == 0)
            return elo_seterr(ELO_BADINPUT, "--listen: empty address before ':PORT'");
        struct in_addr in;
        if (len >= sizeof addr)
            return elo_seterr(ELO_BADINPUT, "--listen: the address is not an IPv4 address");
        memcpy(addr, addr_port, len);
        addr[len] = 0;
        if (!strcmp(addr, "localhost"))
            snprintf(addr, sizeof addr, "127.0.0.1");
        if (inet_pton(AF_INET, addr, &in) != 1)
            return elo_seterr(ELO_BADINPUT, "--listen: '%s' is not an IPv4 address", addr);
        port_text = colon + 1;
    }
    int port = 0;
    if (parse_port(port_text, &port) < 0)
        return ELO_BADINPUT;
    snprintf(c->listen_addr, sizeof c->listen_addr, "%s", addr);
    c->port = port;
    return ELO_OK;
}

void elo_server_listen_format(const char *addr, int port, char *out, size_t out_len)
{
    if (strchr(addr, ':'))
        snprintf(out, out_len, "[%s]:%d", addr, port);
    else
        snprintf(out, out_len, "%s:%d", addr, port);
}

static int get_uint(json_t *o, const char *path, const char *key, uint64_t lo, uint64_t hi,
                    uint64_t *out)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < (json_int_t)lo ||
        (uint64_t)json_integer_value(v) > hi)
        return elo_seterr(ELO_BADINPUT, "%s: '%s' must be an integer from %llu to %llu", path,
                          key, (unsigned long long)lo, (unsigned long long)hi);
    *out = (uint64_t)json_integer_value(v);
    return 1;
}

int elo_server_config_load(elo_server_config *c, const char *path)
{
    json_error_t je;
    json_t *o = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!o)
        return elo_seterr(ELO_BADINPUT, "%s:%d:%d: %s", path, je.line, je.column, je.text);
    int rc = ELO_OK;
    if (!json_is_object(o)) {
        rc = elo_seterr(ELO_BADINPUT, "%s: the config must be a JSON object", path);
        goto out;
    }
    static const char *const known[] = {"data",           "listen",          "web_root",
                                        "max_body_bytes", "max_connections", "per_ip_connections",
                                        "request_timeout_s", "threads",      "shutdown_timeout_s",
                                        "session_ttl_s"};
    const char *key;
    json_t *val;
    json_object_foreach(o, key, val) {
        int found = 0;
        for (size_t i = 0; i < ELO_ARRAY_LEN(known); i++)
            found |= !strcmp(key, known[i]);
        if (!found)
            elo_warn("%s: unknown key '%s' ignored", path, key);
    }
    const char *strs[] = {"data", "listen", "web_root"};
    for (int i = 0; i < 3; i++) {
        json_t *v = json_object_get(o, strs[i]);
        if (!v)
            continue;
        if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) >= 1000) {
            rc = elo_seterr(ELO_BADINPUT, "%s: '%s' must be a non-empty string", path, strs[i]);
            goto out;
        }
        const char *s = json_string_value(v);
        if (i == 0)
            snprintf(c->data_dir, sizeof c->data_dir, "%s", s);
        else if (i == 1 && (rc = elo_server_config_listen(c, s)) < 0) {
            char why[256];
            snprintf(why, sizeof why, "%s", elo_errmsg());
            rc = elo_seterr(ELO_BADINPUT, "%s: 'listen': %s", path, why);
            goto out;
        } else if (i == 2)
            snprintf(c->web_root, sizeof c->web_root, "%s", s);
    }
    uint64_t v;
    int got;
    if ((got = get_uint(o, path, "max_body_bytes", 1024, 1ull << 30, &v)) < 0) goto bad;
    if (got) c->max_body_bytes = (size_t)v;
    if ((got = get_uint(o, path, "max_connections", 1, 100000, &v)) < 0) goto bad;
    if (got) c->max_connections = (unsigned)v;
    if ((got = get_uint(o, path, "per_ip_connections", 1, 100000, &v)) < 0) goto bad;
    if (got) c->per_ip_connections = (unsigned)v;
    if ((got = get_uint(o, path, "request_timeout_s", 1, 3600, &v)) < 0) goto bad;
    if (got) c->request_timeout_s = (unsigned)v;
    if ((got = get_uint(o, path, "threads", 0, 256, &v)) < 0) goto bad;
    if (got) c->threads = (unsigned)v;
    if ((got = get_uint(o, path, "shutdown_timeout_s", 0, 3600, &v)) < 0) goto bad;
    if (got) c->shutdown_timeout_s = (unsigned)v;
    if ((got = get_uint(o, path, "session_ttl_s", 60, 90 * 86400, &v)) < 0) goto bad;
    if (got) c->session_ttl_s = (unsigned)v;
    goto out;
bad:
    rc = ELO_BADINPUT;
out:
    json_decref(o);
    return rc;
}

int elo_settings_load(const char *data_dir, elo_settings *out)
{
    out->enable_gpu_embeddings = out->enable_gpu_vector_search = 1;
    out->enable_gpu_sql = out->enable_smooth_ui = 1;
    char path[1100];
    snprintf(path, sizeof path, "%s/settings.json", data_dir);
    if (access(path, F_OK) != 0)
        return ELO_NOTFOUND;
    json_error_t je;
    json_t *o = json_load_file(path, 0, &je);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        return elo_seterr(ELO_CORRUPT, "%s: not a JSON object", path);
    }
    const char *keys[] = {"enable_gpu_embeddings", "enable_gpu_vector_search", "enable_gpu_sql",
                          "enable_smooth_ui"};
    int *dst[] = {&out->enable_gpu_embeddings, &out->enable_gpu_vector_search,
                  &out->enable_gpu_sql, &out->enable_smooth_ui};
    int rc = ELO_OK;
    for (int i = 0; i < 4; i++) {
        json_t *v = json_object_get(o, keys[i]);
        if (!v)
            continue;
        if (!json_is_boolean(v)) {
            rc = elo_seterr(ELO_CORRUPT, "%s: '%s' must be true or false", path, keys[i]);
            break;
        }
        *dst[i] = json_is_true(v);
    }
    json_decref(o);
    return rc;
}
