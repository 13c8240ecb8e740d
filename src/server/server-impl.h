/* server-impl.h - internals shared by the files of src/server: the server
 * object, the transport-neutral request/response pair that the router sees
 * (so that unit tests and the fuzzer drive it without sockets), the JSON
 * body helpers, the database, sessions, roles and the audit chain. */
#ifndef ELOHIM_SERVER_IMPL_H
#define ELOHIM_SERVER_IMPL_H

#include "elohim/core.h"
#include "elohim/server.h"

#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>

#define ELO_SESSION_COOKIE "elohim_session"
#define ELO_FOUNDER_NAME "elohim_founder"
#define ELO_TOKEN_BYTES 32          /* 256-bit session and setup tokens */
#define ELO_MAC_BYTES 32            /* BLAKE2b-256 */

/* ---- growable text buffer --------------------------------------------- */

typedef struct {
    char *data;       /* NUL-terminated; owned (elo_free) */
    size_t len, cap;
    int failed;       /* an allocation failed; contents are incomplete */
} elo_buf;

void elo__buf_init(elo_buf *b);
void elo__buf_add(elo_buf *b, const char *s, size_t n);
void elo__buf_printf(elo_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void elo__buf_label_value(elo_buf *b, const char *v);
void elo__buf_number(elo_buf *b, double v);
int elo__metrics_render_into(elo_buf *b);
int elo__metrics_count_labels(const char *name, const char *const *values, int count,
                              double increment);

/* ---- failed-login rate limiting ---------------------------------------- */

#define ELO_RL_SLOTS 4096

typedef struct {
    uint64_t key;          /* hash of "u:<name>" or "i:<ip>"; 0 = empty */
    uint32_t failures;     /* consecutive failures */
    double last_fail;      /* monotonic seconds */
} elo_rl_slot;

typedef struct {
    pthread_mutex_t lock;
    elo_rl_slot slots[ELO_RL_SLOTS];
} elo_ratelimit;

/* Failures allowed before back-off starts, per user and per IP. */
#define ELO_RL_USER_FREE 3
#define ELO_RL_IP_FREE 10
#define ELO_RL_MAX_DELAY 300.0

/* Seconds until the next attempt for `key` is allowed (0: now). */
double elo__rl_wait(elo_ratelimit *rl, const char *key, int free_failures, double now);
void elo__rl_fail(elo_ratelimit *rl, const char *key, double now);
void elo__rl_reset(elo_ratelimit *rl, const char *key);
/* The back-off key of a client address: "i:<IPv4>", or "i:<prefix>/64" for
 * IPv6, since one host usually holds a whole /64 and could otherwise pick
 * a fresh address per attempt. */
void elo__rl_ip_key(const char *ip, char *out, size_t out_len);

/* ---- the server object -------------------------------------------------- */

/* Test hook (tests/unit/test-audit.c): the step of an audit append at which
 * elo__audit_append() stops, returning ELO_INTERNAL and leaving the files
 * as a crash there would. Always NONE in the server. */
typedef enum {
    ELO_AUDIT_CRASH_NONE,
    ELO_AUDIT_CRASH_BEFORE_PENDING, /* nothing written */
    ELO_AUDIT_CRASH_AFTER_PENDING,  /* pending head written, row not committed */
    ELO_AUDIT_CRASH_AFTER_COMMIT,   /* row committed, pending head not renamed */
    ELO_AUDIT_CRASH_AFTER_RENAME    /* complete */
} elo_audit_crash;

struct elo_server {
    elo_server_config cfg;
    char db_path[1100], key_path[1100], head_path[1100], settings_path[1100];
    char pending_path[1100];        /* DIR/audit.head.pending (audit.c) */
    char web_real[PATH_MAX];        /* realpath of the web root, "" = none */
    int lock_fd;                    /* flock'd DIR/serve.lock: one server per dir */
    sqlite3 *db;
    pthread_mutex_t db_lock;        /* one connection, serialized */
    sqlite3_stmt *st_session;       /* session lookup, prepared once (db_lock) */
    sqlite3_stmt *st_perm;          /* granted-permission check, likewise */
    pthread_mutex_t audit_lock;     /* append + head files, one at a time */
    unsigned char audit_key[32];
    int64_t audit_count;            /* entries in the chain */
    unsigned char audit_last[ELO_MAC_BYTES];
    int audit_head_behind;          /* the last append's head rename failed */
    elo_audit_crash audit_crash_at; /* test hook; ELO_AUDIT_CRASH_NONE */
    int audit_fail;                 /* test hook: every entry fails to insert
                                     * (ELO_IO, as a full disk); 0 */
    char setup_token[2 * ELO_TOKEN_BYTES + 1]; /* "" once setup is complete */
    atomic_int setup_complete;
    struct MHD_Daemon *daemon;
    atomic_int in_flight;           /* requests between first call and completion */
    atomic_int draining;            /* shutdown started */
    int gpu_available;
    char gpu_name[128];
    elo_ratelimit rl;
    sem_t hash_slots;               /* concurrent Argon2id computations */
    double started;
};

/* ---- requests and responses --------------------------------------------- */

typedef struct {
    const char *method;
    const char *path;               /* percent-decoded, no query */
    const char *ip;                 /* client address, text */
    const char *body;               /* NUL-terminated copy; may be NULL */
    size_t body_len;
    /* Query and header lookup through the transport; NULL when absent. */
    const char *(*query)(void *ctx, const char *name);
    const char *(*header)(void *ctx, const char *name);
    void *ctx;
    const char *route;              /* set by the router: the metrics label */
} elo_req;

typedef struct {
    int status;
    char *body;                     /* owned (elo_free); may be NULL */
    size_t len;
    const char *content_type;       /* static string */
    char set_cookie[256];           /* "" = none */
    int retry_after;                /* seconds; 0 = no header */
    const char *allow;              /* Allow header for 405 */
    int fd;                         /* static file to send (>= 0), else -1 */
    uint64_t fd_size;
    int close;                      /* close the connection after it */
} elo_resp;

void elo__resp_init(elo_resp *r);
void elo__resp_free(elo_resp *r);
/* {"error":{"code":code,"message":msg}} with `status`. */
void elo__resp_error(elo_resp *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Sets the body to `obj` (decref'd). */
void elo__resp_json(elo_resp *r, int status, json_t *obj);

/* Routes one request; never fails (errors become responses). */
void elo__route(elo_server *s, elo_req *req, elo_resp *resp);
/* Static files under the web root (GET/HEAD). */
void elo__static(elo_server *s, elo_req *req, elo_resp *resp);
/* The path under `root` for URL path `url`, or ELO_BADINPUT/ELO_NOTFOUND
 * when it is unsafe (dot segments, hidden names, control characters) or
 * escapes the root. `out` receives a realpath. */
int elo__static_resolve(const char *root, const char *url, char *out, size_t out_len);

/* ---- JSON bodies ---------------------------------------------------------- */

/* Parses `data` as a JSON object. On error returns ELO_BADINPUT with a
 * message for the client in `err` (position, no echo of the input). */
int elo__body_parse(const char *data, size_t len, json_t **out, char *err, size_t errlen);
/* Typed fields: absent + required, or a wrong type/length, is
 * ELO_BADINPUT with a message in `err`; absent + optional is ELO_NOTFOUND.
 * Unknown fields are ignored. */
int elo__body_string(json_t *o, const char *key, int required, size_t min_len, size_t max_len,
                     const char **out, char *err, size_t errlen);
int elo__body_bool(json_t *o, const char *key, int required, int *out, char *err, size_t errlen);
/* Usernames: 3-64 of [A-Za-z0-9_.-]. */
int elo__valid_username(const char *name);

/* ---- database ------------------------------------------------------------- */

int elo__db_open(elo_server *s);
void elo__db_close(elo_server *s);
/* Settings (key -> text); the caller holds db_lock. */
int elo__setting_get(elo_server *s, const char *key, char *out, size_t out_len);
int elo__setting_set(elo_server *s, const char *key, const char *value);
/* "2026-01-02T03:04:05.678Z" for now. */
void elo__utc_now(char out[32]);

/* ---- roles, users, sessions ---------------------------------------------- */

typedef struct {
    int authenticated;
    int64_t user_id;                /* 0 for the founder */
    char username[72];
    char role[16];
    int founder;                    /* a break-glass session */
    char token_hash[2 * ELO_MAC_BYTES + 1];
} elo_principal;

/* Role rank: super_admin 3, admin 2, member 1, viewer 0, -1 unknown. */
int elo__role_rank(const char *role);
int elo__valid_permission(const char *perm);
/* Whether `role` includes `perm` by default. */
int elo__role_has(const char *role, const char *perm);
/* Whether principal `p` holds `perm` (role or grant); takes db_lock. */
int elo__has_perm(elo_server *s, const elo_principal *p, const char *perm);
extern const char *const elo__permissions[];
extern const int elo__permission_count;

/* Argon2id hash/verify (bounded concurrency through hash_slots). */
int elo__password_hash(elo_server *s, const char *password, char out[128]);
int elo__password_verify(elo_server *s, const char *hash, const char *password);

/* New random token (hex) and its stored hash (hex BLAKE2b-256). */
void elo__token_new(char token[2 * ELO_TOKEN_BYTES + 1]);
void elo__token_hash(const char *token, char out[2 * ELO_MAC_BYTES + 1]);
/* Creates a session; `token` receives the bearer token. The caller holds
 * db_lock (inside an audited change: the session and its entry commit
 * together). */
int elo__session_create(elo_server *s, int64_t user_id, int founder,
                        char token[2 * ELO_TOKEN_BYTES + 1]);
/* Looks up the session of a request (Bearer header or cookie). */
int elo__session_lookup(elo_server *s, elo_req *req, elo_principal *p);
/* Deletes a session; the caller holds db_lock. */
int elo__session_delete(elo_server *s, const char *token_hash);

/* ---- audit --------------------------------------------------------------- */

/* Loads or creates the key and the head; checks the head against the log. */
int elo__audit_open(elo_server *s);
/* An audited change (audit.c DESIGN): its statements and its entry commit
 * in one transaction, or neither does.
 *   elo__audit_begin() takes audit_lock and db_lock and opens the
 *   transaction; on error (a chain head that cannot be caught up, a
 *   database that cannot begin) it returns a negative status, logged and
 *   counted, with nothing held.
 *   Then the caller's statements, db_lock held (nothing that takes
 *   db_lock itself: elo__has_perm, elo__session_lookup).
 *   elo__audit_commit() appends the entry (actor may be NULL: the system;
 *   target < 0 = none; `details` a JSON object, borrowed, or NULL) and
 *   commits; on error the whole transaction is rolled back, the cause
 *   logged at error level and counted in elohim_audit_write_failures_total,
 *   and a negative status returned. Either way both locks are released.
 *   elo__audit_rollback() undoes the caller's statements (a refused
 *   request, or one that changed nothing) and releases both locks. */
int elo__audit_begin(elo_server *s);
int elo__audit_commit(elo_server *s, const elo_principal *actor, const char *action,
                      int64_t target, json_t *details);
void elo__audit_rollback(elo_server *s);
/* An entry with no change of its own: begin + commit. */
int elo__audit_append(elo_server *s, const elo_principal *actor, const char *action,
                      int64_t target, json_t *details);

/* ---- hex ------------------------------------------------------------------ */

void elo__hex(const unsigned char *in, size_t n, char *out);
int elo__unhex(const char *in, unsigned char *out, size_t n);

#endif
