/* server.h - the ElohimOS HTTP server (`elohim serve`), its metrics
 * registry, the setup preferences it saves for the other services, and the
 * tamper-evident audit log check (`elohim audit verify`).
 *
 * The server keeps all of its state in a data directory: `elohim.db`
 * (SQLite, WAL mode; tables users, sessions, permissions, settings,
 * audit_log), `audit.key` (the 0600 key of the audit MAC chain),
 * `audit.head` (entry count and last MAC of the chain; `audit.head.pending`
 * while an append is under way) and `settings.json`
 * (the setup wizard's device preferences). See docs/server.md. */
#ifndef ELOHIM_SERVER_H
#define ELOHIM_SERVER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- configuration ------------------------------------------------------ */

typedef struct {
    char data_dir[1024];          /* state folder (created 0700 if missing) */
    char listen_addr[64];         /* address to bind, no brackets: "127.0.0.1", "::1" */
    int port;                     /* 0: any free port (see elo_server_port) */
    char web_root[1024];          /* static UI folder; "" = none found */
    size_t max_body_bytes;        /* larger request bodies get 413 */
    unsigned max_connections;     /* concurrent connections, all clients */
    unsigned per_ip_connections;  /* concurrent connections from one IP */
    unsigned request_timeout_s;   /* idle and whole-body time limit */
    unsigned threads;             /* worker threads; 0: twice the CPUs, >= 4 */
    unsigned shutdown_timeout_s;  /* bounded wait for in-flight requests */
    unsigned session_ttl_s;       /* session lifetime */
} elo_server_config;

/* Fills `c` with the defaults: ./elohim-data (or $ELOHIM_DATA),
 * 127.0.0.1:8420, 1 MiB bodies, 512 connections, 64 per IP, 30 s requests,
 * 10 s shutdown wait, 12 h sessions, web root from $ELOHIM_WEB, ./web or
 * <binary>/../web. */
void elo_server_config_defaults(elo_server_config *c);
/* Applies "ADDR:PORT" (port 0-65535): an IPv4 address or "localhost", or
 * an IPv6 address in brackets ("[::1]:8420", "[::]:8420"). ELO_BADINPUT
 * with a message, leaving `c` unchanged, if malformed. */
int elo_server_config_listen(elo_server_config *c, const char *addr_port);
/* "ADDR:PORT" for messages and URLs, brackets around an IPv6 address. */
void elo_server_listen_format(const char *addr, int port, char *out, size_t out_len);
/* Applies a JSON config file (keys: data, listen, web_root, max_body_bytes,
 * max_connections, per_ip_connections, request_timeout_s, threads,
 * shutdown_timeout_s, session_ttl_s). Unknown keys are ignored with a
 * warning; a wrong type or range is ELO_BADINPUT naming the file and key. */
int elo_server_config_load(elo_server_config *c, const char *path);

/* ---- the server --------------------------------------------------------- */

typedef struct elo_server elo_server;

/* Opens the data directory (database, audit key and chain head), creating
 * what is missing, and prepares the setup token when setup is not
 * complete. Does not listen yet. Free with elo_server_free(). */
int elo_server_open(const elo_server_config *cfg, elo_server **out);
/* Starts listening (libmicrohttpd, epoll, thread pool). */
int elo_server_start(elo_server *s);
/* The bound TCP port (after elo_server_start). */
int elo_server_port(const elo_server *s);
/* The setup token while setup is not complete, else NULL. Valid until
 * elo_server_free() or setup completion. */
const char *elo_server_setup_token(const elo_server *s);
/* Graceful stop: stops accepting (MHD_quiesce_daemon), waits at most
 * `shutdown_timeout_s` for in-flight requests, stops the daemon. Returns
 * the number of requests still in flight when the wait ended (0 = clean). */
int elo_server_shutdown(elo_server *s);
/* Closes the database and frees everything; NULL is a no-op. */
void elo_server_free(elo_server *s);

/* ---- setup preferences (for the services) ------------------------------- */

typedef struct {
    int enable_gpu_embeddings;
    int enable_gpu_vector_search;
    int enable_gpu_sql;
    int enable_smooth_ui;
} elo_settings;

/* Reads DIR/settings.json (written by setup step 3). When absent, every
 * preference is 1 (use the GPU when there is one) and ELO_NOTFOUND is
 * returned; a malformed file is ELO_CORRUPT. */
int elo_settings_load(const char *data_dir, elo_settings *out);

/* ---- metrics -------------------------------------------------------------- */

/* A process-wide registry of counters and histograms, rendered in the
 * Prometheus text format at /metrics. Built-in families other services use:
 *   elohim_embedding_duration_seconds       histogram (1 ms ... 500 ms)
 *   elohim_vector_search_duration_seconds   histogram
 *   elohim_sql_query_duration_seconds       histogram, label engine
 *   elohim_sql_queries_total                counter, label engine
 * All functions are thread-safe and return ELO_NOTFOUND for an unknown
 * family or ELO_BADINPUT for a label count that does not match. */
int elo_metrics_observe(const char *name, double seconds);
int elo_metrics_observe_label(const char *name, const char *label_value, double seconds);
int elo_metrics_count(const char *name, const char *label_value, double increment);

/* Registers a new family (idempotent when identical). `labels` holds up to
 * three comma-separated label names ("" for none). Histograms take
 * `bucket_count` ascending upper bounds. Names must match
 * [a-zA-Z_:][a-zA-Z0-9_:]*. */
int elo_metrics_register_counter(const char *name, const char *help, const char *labels);
int elo_metrics_register_histogram(const char *name, const char *help, const char *labels,
                                   const double *buckets, int bucket_count);
/* The whole registry in the text format; free with elo_free(). NULL when
 * out of memory. */
char *elo_metrics_render(size_t *len);

/* ---- audit log ------------------------------------------------------------ */

/* Verifies the audit chain of DIR: every entry's keyed BLAKE2b MAC over the
 * previous one, contiguous ids, and the chain head kept outside the
 * database. Returns ELO_OK and the entry count in *entries, or ELO_CORRUPT
 * with *bad_id set to the first bad entry (0 when the damage is not one
 * entry, e.g. a missing head) and a message in elo_errmsg(). */
int elo_audit_verify(const char *data_dir, int64_t *entries, int64_t *bad_id);

#ifdef __cplusplus
}
#endif
#endif
