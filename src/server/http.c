/* http.c - the libmicrohttpd side of the server: opening the data
 * directory, the daemon (epoll, internal thread pool), per-request body
 * collection with the size and time limits, turning elo_resp into MHD
 * responses with the security headers, metrics per request, the static
 * file handler for the web UI, and the graceful shutdown.
 *
 * DESIGN: MHD's worker threads (cfg.threads of them, each with its own
 * epoll set) call access_handler() several times per request: once when the
 * headers are in (we allocate the request state, count it in flight and
 * reject a declared oversized body at once with 413), once per body chunk
 * (appended up to the limit; a body that outlasts the request time limit
 * gets the connection closed) and once at the end (route and respond).
 * request_done() runs when MHD is finished with the request, on the same
 * worker: it frees the state and decrements the in-flight count that
 * elo_server_shutdown() waits on after MHD_quiesce_daemon() has closed
 * the listening socket. */
#include "server-impl.h"

#include "elohim/backend.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <sodium.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    double start;           /* monotonic seconds */
    char *body;
    size_t len, cap;
    int too_big;            /* body passed max_body_bytes */
    int answered;           /* a response was queued early */
} req_state;

/* ---- opening and closing ----------------------------------------------------- */

int elo_server_open(const elo_server_config *cfg, elo_server **out)
{
    *out = NULL;
    if (sodium_init() < 0)
        return elo_seterr(ELO_INTERNAL, "libsodium failed to initialize");
    elo_server *s = elo_calloc(1, sizeof *s);
    if (!s)
        return ELO_NOMEM;
    s->cfg = *cfg;
    s->lock_fd = -1;
    pthread_mutex_init(&s->db_lock, NULL);
    pthread_mutex_init(&s->audit_lock, NULL);
    pthread_mutex_init(&s->rl.lock, NULL);
    int cpus = elo_cpu_count();
    sem_init(&s->hash_slots, 0, (unsigned)ELO_MAX(2, cpus));
    atomic_init(&s->in_flight, 0);
    atomic_init(&s->draining, 0);
    atomic_init(&s->setup_complete, 0);
    s->started = (double)elo_wall_time_ms() / 1000.0;
    if (s->cfg.threads == 0)
        s->cfg.threads = (unsigned)ELO_MAX(4, 2 * cpus);

    int rc = elo_mkdirs(cfg->data_dir, 0700);
    if (rc < 0)
        goto fail;
    /* One server per data directory: a second one would fork the audit
     * chain (each keeps the head in memory). */
    char lock_path[1100];
    snprintf(lock_path, sizeof lock_path, "%s/serve.lock", cfg->data_dir);
    s->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lock_fd < 0) {
        rc = elo_seterr(ELO_IO, "%s: %s", lock_path, strerror(errno));
        goto fail;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = elo_seterr(ELO_BUSY, "another elohim serve is using this data directory");
        goto fail;
    }
    snprintf(s->db_path, sizeof s->db_path, "%s/elohim.db", cfg->data_dir);
    snprintf(s->key_path, sizeof s->key_path, "%s/audit.key", cfg->data_dir);
    snprintf(s->head_path, sizeof s->head_path, "%s/audit.head", cfg->data_dir);
    snprintf(s->pending_path, sizeof s->pending_path, "%s/audit.head.pending", cfg->data_dir);
    snprintf(s->settings_path, sizeof s->settings_path, "%s/settings.json", cfg->data_dir);
    if ((rc = elo__db_open(s)) < 0)
        goto fail;
    if ((rc = elo__audit_open(s)) < 0)
        goto fail;
    char v[8];
    if (elo__setting_get(s, "setup.complete", v, sizeof v) == ELO_OK && !strcmp(v, "1"))
        atomic_store(&s->setup_complete, 1);
    else
        elo__token_new(s->setup_token);

    if (cfg->web_root[0] && !realpath(cfg->web_root, s->web_real)) {
        elo_warn("serve: web root %s: %s; the UI is not served", cfg->web_root, strerror(errno));
        s->web_real[0] = 0;
    }
    s->gpu_available = elo_gpu_available();
    if (s->gpu_available) {
        elo_gpu_info info;
        if (elo_gpu_probe(&info) == ELO_OK)
            snprintf(s->gpu_name, sizeof s->gpu_name, "%s", info.name);
    }
    *out = s;
    return ELO_OK;
fail:
    elo_server_free(s);
    return rc;
}

void elo_server_free(elo_server *s)
{
    if (!s)
        return;
    if (s->daemon) {
        MHD_stop_daemon(s->daemon);
        s->daemon = NULL;
    }
    elo__db_close(s);
    if (s->lock_fd >= 0)
        close(s->lock_fd);   /* releases the flock */
    sodium_memzero(s->audit_key, sizeof s->audit_key);
    sodium_memzero(s->setup_token, sizeof s->setup_token);
    sem_destroy(&s->hash_slots);
    pthread_mutex_destroy(&s->db_lock);
    pthread_mutex_destroy(&s->audit_lock);
    pthread_mutex_destroy(&s->rl.lock);
    elo_free(s);
}

const char *elo_server_setup_token(const elo_server *s)
{
    return atomic_load(&((elo_server *)s)->setup_complete) || !s->setup_token[0]
               ? NULL
               : s->setup_token;
}

int elo_server_port(const elo_server *s)
{
    if (!s->daemon)
        return -1;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    return info ? (int)info->port : -1;
}

/* ---- transport glue ------------------------------------------------------------ */

static const char *lookup_query(void *ctx, const char *name)
{
    return MHD_lookup_connection_value((struct MHD_Connection *)ctx, MHD_GET_ARGUMENT_KIND, name);
}

static const char *lookup_header(void *ctx, const char *name)
{
    return MHD_lookup_connection_value((struct MHD_Connection *)ctx, MHD_HEADER_KIND, name);
}

static void client_ip(struct MHD_Connection *conn, char *out, size_t n)
{
    snprintf(out, n, "unknown");
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)n);
    } else if (sa->sa_family == AF_INET6) {
        /* An IPv4 client of a dual-stack [::] socket is the same client
         * (for the per-address back-off and the logs) as over IPv4. */
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6))
            inet_ntop(AF_INET, &a6->s6_addr[12], out, (socklen_t)n);
        else
            inet_ntop(AF_INET6, a6, out, (socklen_t)n);
    }
}

static void record_metrics(const char *method, const char *route, int status, double seconds)
{
    char code[8];
    snprintf(code, sizeof code, "%d", status);
    /* Only methods we know become label values: a client cannot make up series. */
    static const char *const known[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"};
    const char *m = "other";
    for (size_t i = 0; i < ELO_ARRAY_LEN(known); i++)
        if (!strcmp(method, known[i]))
            m = known[i];
    const char *labels[3] = {m, route, code};
    elo__metrics_count_labels("elohim_http_requests_total", labels, 3, 1);
    elo_metrics_observe_label("elohim_http_request_duration_seconds", route, seconds);
}

static enum MHD_Result send_resp(struct MHD_Connection *conn, const char *method, elo_resp *r,
                                 const char *route, double start)
{
    struct MHD_Response *mr;
    int is_static = r->fd >= 0;
    if (is_static) {
        mr = MHD_create_response_from_fd((uint64_t)r->fd_size, r->fd);
        if (!mr)
            close(r->fd);
        r->fd = -1;
    } else {
        mr = MHD_create_response_from_buffer(r->len, r->body ? r->body : (void *)"",
                                             MHD_RESPMEM_MUST_COPY);
    }
    if (!mr)
        return MHD_NO;
    MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
    MHD_add_response_header(mr, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(mr, "X-Frame-Options", "DENY");
    MHD_add_response_header(mr, "Referrer-Policy", "no-referrer");
    if (is_static) {
        MHD_add_response_header(mr, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        MHD_add_response_header(mr, "Content-Security-Policy",
                                "default-src 'self'; img-src 'self' data:; object-src 'none';"
                                " frame-ancestors 'none'");
    } else {
        MHD_add_response_header(mr, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    }
    if (r->set_cookie[0])
        MHD_add_response_header(mr, MHD_HTTP_HEADER_SET_COOKIE, r->set_cookie);
    if (r->retry_after > 0) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", r->retry_after);
        MHD_add_response_header(mr, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    if (r->allow)
        MHD_add_response_header(mr, MHD_HTTP_HEADER_ALLOW, r->allow);
    if (r->close)
        MHD_add_response_header(mr, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ok = MHD_queue_response(conn, (unsigned)r->status, mr);
    MHD_destroy_response(mr);
    record_metrics(method, route, r->status, elo_time_sec() - start);
    return ok;
}

static enum MHD_Result access_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **con_cls)
{
    elo_server *s = cls;
    req_state *rs = *con_cls;
    if (!rs) {   /* headers are in */
        rs = elo_calloc(1, sizeof *rs);
        if (!rs)
            return MHD_NO;
        rs->start = elo_time_sec();
        *con_cls = rs;
        atomic_fetch_add(&s->in_flight, 1);
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        int64_t declared;
        if (cl && elo_parse_i64(cl, &declared) == ELO_OK &&
            (uint64_t)declared > s->cfg.max_body_bytes) {
            rs->answered = 1;
            elo_resp r;
            elo__resp_init(&r);
            elo__resp_error(&r, 413, "too_large", "request body over %zu bytes",
                            s->cfg.max_body_bytes);
            r.close = 1;
            enum MHD_Result ok = send_resp(conn, method, &r, "rejected", rs->start);
            elo__resp_free(&r);
            return ok;
        }
        return MHD_YES;
    }
    if (rs->answered)
        return MHD_NO;
    if (*upload_data_size > 0) {
        if (elo_time_sec() - rs->start > (double)s->cfg.request_timeout_s) {
            elo_info("serve: request body took longer than %u s; connection closed",
                     s->cfg.request_timeout_s);
            return MHD_NO;
        }
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (rs->too_big || rs->len + n > s->cfg.max_body_bytes) {
            rs->too_big = 1;          /* chunked bodies: keep reading, answer 413 */
            elo_free(rs->body);
            rs->body = NULL;
            rs->len = rs->cap = 0;
            return MHD_YES;
        }
        if (rs->len + n + 1 > rs->cap) {
            size_t cap = rs->cap ? rs->cap : 1024;
            while (cap < rs->len + n + 1)
                cap *= 2;
            char *nb = elo_realloc(rs->body, cap);
            if (!nb)
                return MHD_NO;
            rs->body = nb;
            rs->cap = cap;
        }
        memcpy(rs->body + rs->len, upload_data, n);
        rs->len += n;
        rs->body[rs->len] = 0;
        return MHD_YES;
    }

    elo_resp r;
    elo__resp_init(&r);
    const char *route = "rejected";
    if (rs->too_big) {
        elo__resp_error(&r, 413, "too_large", "request body over %zu bytes",
                        s->cfg.max_body_bytes);
        r.close = 1;
    } else {
        char ip[64];
        client_ip(conn, ip, sizeof ip);
        elo_req req = {
            .method = method,
            .path = url,
            .ip = ip,
            .body = rs->body,
            .body_len = rs->len,
            .query = lookup_query,
            .header = lookup_header,
            .ctx = conn,
            .route = "unmatched",
        };
        elo__route(s, &req, &r);
        route = req.route;
    }
    (void)version;
    enum MHD_Result ok = send_resp(conn, method, &r, route, rs->start);
    elo__resp_free(&r);
    return ok;
}

static void request_done(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    elo_server *s = cls;
    req_state *rs = *con_cls;
    if (!rs)
        return;
    elo_free(rs->body);
    elo_free(rs);
    *con_cls = NULL;
    atomic_fetch_sub(&s->in_flight, 1);
}

/* Percent-decoding for MHD (in place), except that %00 stays as it is: a
 * NUL would silently cut the path short ("/%00" would read as "/"). */
static size_t unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (r[0] == '%' && isxdigit((unsigned char)r[1]) && isxdigit((unsigned char)r[2])) {
            unsigned char hex[1];
            char two[3] = {r[1], r[2], 0};
            elo__unhex(two, hex, 1);
            if (hex[0] != 0) {
                *w++ = (char)hex[0];
                r += 2;
                continue;
            }
        }
        *w++ = *r;
    }
    *w = 0;
    return (size_t)(w - s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        msg[--n] = 0;
    elo_debug("serve: libmicrohttpd: %s", msg);
}

int elo_server_start(elo_server *s)
{
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    struct sockaddr_in sa4;
    struct sockaddr_in6 sa6;
    struct sockaddr *sa;
    memset(&sa4, 0, sizeof sa4);
    memset(&sa6, 0, sizeof sa6);
    if (inet_pton(AF_INET, s->cfg.listen_addr, &sa4.sin_addr) == 1) {
        sa4.sin_family = AF_INET;
        sa4.sin_port = htons((uint16_t)s->cfg.port);
        sa = (struct sockaddr *)&sa4;
    } else if (inet_pton(AF_INET6, s->cfg.listen_addr, &sa6.sin6_addr) == 1) {
        sa6.sin6_family = AF_INET6;
        sa6.sin6_port = htons((uint16_t)s->cfg.port);
        sa = (struct sockaddr *)&sa6;
        /* [::] means every address: IPv4 clients too (as ::ffff:a.b.c.d). */
        flags |= IN6_IS_ADDR_UNSPECIFIED(&sa6.sin6_addr) ? MHD_USE_DUAL_STACK : MHD_USE_IPv6;
    } else {
        return elo_seterr(ELO_BADINPUT, "bad listen address %s", s->cfg.listen_addr);
    }
    s->daemon = MHD_start_daemon(
        flags, (uint16_t)s->cfg.port, NULL, NULL, access_handler, s,
        MHD_OPTION_SOCK_ADDR, sa,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)s->cfg.threads,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->cfg.max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)s->cfg.per_ip_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->cfg.request_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
        MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
        MHD_OPTION_NOTIFY_COMPLETED, request_done, s,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
        MHD_OPTION_UNESCAPE_CALLBACK, unescape, s,
        MHD_OPTION_END);
    if (!s->daemon) {
        char where[96];
        elo_server_listen_format(s->cfg.listen_addr, s->cfg.port, where, sizeof where);
        return elo_seterr(ELO_IO, "cannot listen on %s (address in use, not on this machine, or "
                                  "not allowed)",
                          where);
    }
    return ELO_OK;
}

int elo_server_shutdown(elo_server *s)
{
    if (!s->daemon)
        return 0;
    atomic_store(&s->draining, 1);
    MHD_socket lsock = MHD_quiesce_daemon(s->daemon);
    if (lsock != MHD_INVALID_SOCKET)
        close(lsock);
    double deadline = elo_time_sec() + (double)s->cfg.shutdown_timeout_s;
    int left;
    while ((left = atomic_load(&s->in_flight)) > 0 && elo_time_sec() < deadline) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
    return left;
}

/* ---- static files ----------------------------------------------------------------- */

int elo__static_resolve(const char *root, const char *url, char *out, size_t out_len)
{
    if (!root || !root[0])
        return elo_seterr(ELO_NOTFOUND, "no web root");
    if (!url || url[0] != '/')
        return elo_seterr(ELO_BADINPUT, "path must start with /");
    size_t n = strlen(url);
    if (n > 512)
        return elo_seterr(ELO_BADINPUT, "path too long");
    /* Segment checks: no empty, '.', '..' or hidden segments, no control
     * characters or backslashes (the URL is already percent-decoded). */
    const char *seg = url + 1;
    for (;;) {
        const char *end = strchr(seg, '/');
        size_t len = end ? (size_t)(end - seg) : strlen(seg);
        if (len == 0 && end)
            return elo_seterr(ELO_BADINPUT, "empty path segment");
        if (len > 0 && seg[0] == '.')
            return elo_seterr(ELO_BADINPUT, "dot segment");
        for (size_t i = 0; i < len; i++) {
            unsigned char ch = (unsigned char)seg[i];
            if (ch < 0x20 || ch == 0x7f || ch == '\\')
                return elo_seterr(ELO_BADINPUT, "bad character in path");
        }
        if (!end)
            break;
        seg = end + 1;
    }
    char joined[PATH_MAX];
    int w = snprintf(joined, sizeof joined, "%s%s%s", root, url,
                     url[n - 1] == '/' ? "index.html" : "");
    if (w < 0 || (size_t)w >= sizeof joined)
        return elo_seterr(ELO_BADINPUT, "path too long");
    char real[PATH_MAX];
    if (!realpath(joined, real))
        return elo_seterr(ELO_NOTFOUND, "no such file");
    struct stat sb;
    if (stat(real, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        char idx[PATH_MAX];
        if ((size_t)snprintf(idx, sizeof idx, "%s/index.html", real) >= sizeof idx ||
            !realpath(idx, real))
            return elo_seterr(ELO_NOTFOUND, "no such file");
    }
    size_t rl = strlen(root);
    if (strncmp(real, root, rl) != 0 || real[rl] != '/')
        return elo_seterr(ELO_BADINPUT, "outside the web root");
    if (strlen(real) + 1 > out_len)
        return elo_seterr(ELO_BADINPUT, "path too long");
    memcpy(out, real, strlen(real) + 1);
    return ELO_OK;
}

static const char *mime_of(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (!dot)
        return "application/octet-stream";
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"}, {".css", "text/css; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"}, {".json", "application/json"},
        {".svg", "image/svg+xml"}, {".png", "image/png"}, {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"}, {".woff2", "font/woff2"},
    };
    for (size_t i = 0; i < ELO_ARRAY_LEN(types); i++)
        if (!strcasecmp(dot, types[i].ext))
            return types[i].type;
    return "application/octet-stream";
}

void elo__static(elo_server *s, elo_req *req, elo_resp *resp)
{
    char path[PATH_MAX];
    int rc = elo__static_resolve(s->web_real, req->path, path, sizeof path);
    if (rc < 0) {
        elo__resp_error(resp, rc == ELO_BADINPUT ? 400 : 404,
                        rc == ELO_BADINPUT ? "bad_path" : "not_found",
                        rc == ELO_BADINPUT ? "path not allowed" : "no such file");
        return;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size > (64 << 20)) {
        if (fd >= 0)
            close(fd);
        elo__resp_error(resp, 404, "not_found", "no such file");
        return;
    }
    elo__resp_free(resp);
    resp->status = 200;
    resp->fd = fd;
    resp->fd_size = (uint64_t)sb.st_size;
    resp->content_type = mime_of(path);
}
