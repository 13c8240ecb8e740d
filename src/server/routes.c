/* routes.c - the HTTP API: health and readiness, /metrics, the first-run
 * setup wizard, login/logout, users, roles and permissions, and the audit
 * query. Transport-neutral: it sees an elo_req and fills an elo_resp.
 *
 * Every route names what it needs (nothing, a session, or a permission);
 * the router checks authentication (401) and authorization (403) before a
 * handler reads the body, so an anonymous client learns nothing about the
 * body a route expects.
 *
 * Audited changes fail closed: a handler that changes state runs its
 * statements between elo__audit_begin() and elo__audit_commit(), so that
 * the change and its audit entry commit in one transaction; when the entry
 * cannot be written the change is rolled back and the answer is 503
 * audit_unavailable. Setup step 3's settings.json, a file, is written
 * inside that transaction and put back if the commit fails. Two audited
 * events are decided otherwise: a failed login changes nothing, but while
 * its entry cannot be written it answers 503 like a right password would
 * (a 401 next to a 503 would tell a guesser which password is right); a
 * logout ends the session even when its entry cannot be written, since
 * refusing it would keep a credential alive (logged and counted). Nothing
 * that takes db_lock itself (elo__has_perm, elo__session_lookup) runs
 * inside an audited change. */
#include "server-impl.h"

#include "elohim/backend.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <sodium.h>
#include <string.h>
#include <unistd.h>

#ifndef ELOHIM_VERSION
#define ELOHIM_VERSION "0.1.0"
#endif

#define MAX_PARAMS 2

typedef struct {
    elo_server *s;
    elo_req *req;
    elo_resp *resp;
    elo_principal *who;
    const char *params[MAX_PARAMS];   /* {id}, {perm} */
    json_t *body;                     /* parsed when the route takes one */
    char err[256];
} ctx;

typedef void (*handler_fn)(ctx *c);

enum { NEED_NONE = 0, NEED_SESSION = 1, NEED_PERM = 2 };

typedef struct {
    const char *method;
    const char *pattern;     /* segments; {id} digits, {perm} any segment */
    handler_fn fn;
    int need;
    const char *perm;
    int takes_body;
} route;

/* ---- helpers --------------------------------------------------------------- */

static void set_session_cookie(elo_resp *r, const char *token, unsigned ttl)
{
    if (token)
        snprintf(r->set_cookie, sizeof r->set_cookie,
                 ELO_SESSION_COOKIE "=%s; Path=/; Max-Age=%u; HttpOnly; SameSite=Strict", token,
                 ttl);
    else
        snprintf(r->set_cookie, sizeof r->set_cookie,
                 ELO_SESSION_COOKIE "=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict");
}

static int64_t count_rows(elo_server *s, const char *sql, int64_t bind)
{
    int64_t n = -1;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (bind != INT64_MIN)
            sqlite3_bind_int64(st, 1, bind);
        if (sqlite3_step(st) == SQLITE_ROW)
            n = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    return n;
}

static void internal_error(ctx *c, const char *what)
{
    elo_error("serve: %s: %s", what, elo_errmsg());
    elo__resp_error(c->resp, 500, "internal", "internal error");
}

/* The change's audit entry could not be written: audit.c rolled the change
 * back, logged the cause and counted it. */
static void audit_unavailable(ctx *c)
{
    elo__resp_error(c->resp, 503, "audit_unavailable",
                    "the audit log cannot be written, so nothing was changed; try again later");
}

/* Commits the open audited change with its entry (details: a new reference,
 * released here; NULL for none). When the entry cannot be written the
 * change is rolled back, the answer is 503 and the result negative. */
static int commit_audited(ctx *c, const elo_principal *actor, const char *action,
                          int64_t target, json_t *details)
{
    int rc = elo__audit_commit(c->s, actor, action, target, details);
    json_decref(details);
    if (rc < 0)
        audit_unavailable(c);
    return rc;
}

static int principal_rank(const elo_principal *p)
{
    return p->founder ? 3 : elo__role_rank(p->role);
}

static json_t *user_json(int64_t id, const char *username, const char *role)
{
    return json_pack("{s:I,s:s,s:s}", "id", (json_int_t)id, "username", username, "role", role);
}

/* Explicit grants of a user; db_lock held. */
static json_t *grants_of(elo_server *s, int64_t id)
{
    json_t *a = json_array();
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT permission FROM permissions WHERE user_id=? ORDER BY permission",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, id);
        while (sqlite3_step(st) == SQLITE_ROW)
            json_array_append_new(a, json_string((const char *)sqlite3_column_text(st, 0)));
        sqlite3_finalize(st);
    }
    return a;
}

typedef struct {
    int found;
    char username[72];
    char role[16];
} user_row;

/* db_lock held. */
static int load_user(elo_server *s, int64_t id, user_row *u)
{
    memset(u, 0, sizeof *u);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT username, role FROM users WHERE id=?", -1, &st, NULL))
        return elo_seterr(ELO_SQL, "users: %s", sqlite3_errmsg(s->db));
    sqlite3_bind_int64(st, 1, id);
    if (sqlite3_step(st) == SQLITE_ROW) {
        u->found = 1;
        snprintf(u->username, sizeof u->username, "%s", sqlite3_column_text(st, 0));
        snprintf(u->role, sizeof u->role, "%s", sqlite3_column_text(st, 1));
    }
    sqlite3_finalize(st);
    return ELO_OK;
}

static int param_id(ctx *c, int64_t *id)
{
    if (elo_parse_i64(c->params[0], id) < 0 || *id <= 0) {
        elo__resp_error(c->resp, 404, "not_found", "no such user");
        return 0;
    }
    return 1;
}

/* ---- setup wizard ----------------------------------------------------------- */

static const char *const pref_keys[] = {"enable_gpu_embeddings", "enable_gpu_vector_search",
                                        "enable_gpu_sql", "enable_smooth_ui"};

/* The next step: 1 admin, 2 founder password, 3 preferences, 4 complete,
 * 0 when done. db_lock held. */
static int setup_step(elo_server *s)
{
    char v[16];
    if (atomic_load(&s->setup_complete))
        return 0;
    if (count_rows(s, "SELECT count(*) FROM users", INT64_MIN) <= 0)
        return 1;
    if (elo__setting_get(s, "founder.hash", v, sizeof v) != ELO_OK)
        return 2;
    if (elo__setting_get(s, "setup.preferences", v, sizeof v) != ELO_OK)
        return 3;
    return 4;
}

static void h_setup_status(ctx *c)
{
    elo_server *s = c->s;
    pthread_mutex_lock(&s->db_lock);
    int step = setup_step(s);
    char v[8];
    int founder = elo__setting_get(s, "founder.hash", v, sizeof v) == ELO_OK;
    pthread_mutex_unlock(&s->db_lock);
    json_t *o = json_pack("{s:b,s:b,s:b,s:i}", "setup_required", step != 0,
                          "founder_password_set", founder, "gpu_available", s->gpu_available,
                          "step", step);
    json_object_set_new(o, "gpu_name", s->gpu_available ? json_string(s->gpu_name) : json_null());
    elo__resp_json(c->resp, 200, o);
}

/* Common guard of the setup steps: 409 after completion, the token, and
 * (need_admin) the session of a super_admin. Returns 1 to go on. */
static int setup_guard(ctx *c, int need_admin)
{
    elo_server *s = c->s;
    if (atomic_load(&s->setup_complete)) {
        elo__resp_error(c->resp, 409, "setup_complete", "setup is already complete");
        return 0;
    }
    const char *token;
    if (elo__body_string(c->body, "setup_token", 1, 1, 256, &token, c->err, sizeof c->err) < 0) {
        elo__resp_error(c->resp, 400, "bad_request", "%s", c->err);
        return 0;
    }
    unsigned char a[32], b[32];
    crypto_generichash(a, 32, (const unsigned char *)token, strlen(token), NULL, 0);
    pthread_mutex_lock(&s->db_lock);   /* the token is cleared under it at completion */
    int have = s->setup_token[0] != 0;
    crypto_generichash(b, 32, (const unsigned char *)s->setup_token, strlen(s->setup_token),
                       NULL, 0);
    pthread_mutex_unlock(&s->db_lock);
    if (!have || sodium_memcmp(a, b, 32) != 0) {
        elo__resp_error(c->resp, 403, "bad_setup_token",
                        "wrong setup token (it is printed on the server's standard output)");
        return 0;
    }
    if (need_admin) {
        if (elo__session_lookup(s, c->req, c->who) < 0) {
            elo__resp_error(c->resp, 401, "unauthorized",
                            "this step needs the session of the administrator from step 1");
            return 0;
        }
        if (c->who->founder || strcmp(c->who->role, "super_admin") != 0) {
            elo__resp_error(c->resp, 403, "forbidden", "this step needs a super_admin session");
            return 0;
        }
    }
    return 1;
}

static void h_setup_step1(ctx *c)
{
    elo_server *s = c->s;
    if (!setup_guard(c, 0))
        return;
    const char *username, *password;
    if (elo__body_string(c->body, "username", 1, 3, 64, &username, c->err, sizeof c->err) < 0 ||
        elo__body_string(c->body, "password", 1, 12, 1024, &password, c->err, sizeof c->err) < 0) {
        elo__resp_error(c->resp, 400, "bad_request", "%s", c->err);
        return;
    }
    if (!elo__valid_username(username) || !strcmp(username, ELO_FOUNDER_NAME)) {
        elo__resp_error(c->resp, 400, "bad_request",
                        "username must be 3-64 of A-Z a-z 0-9 _ . - and not reserved");
        return;
    }
    char hash[128];
    if (elo__password_hash(s, password, hash) < 0) {
        internal_error(c, "setup step1");
        return;
    }
    char now[32];
    elo__utc_now(now);
    int64_t id = 0;
    int conflict = 0;
    if (elo__audit_begin(s) < 0) {
        audit_unavailable(c);
        return;
    }
    if (count_rows(s, "SELECT count(*) FROM users", INT64_MIN) != 0) {
        conflict = 1;
    } else {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(s->db,
                               "INSERT INTO users(username,pw_hash,role,created_at)"
                               " VALUES(?,?,'super_admin',?)",
                               -1, &st, NULL) == SQLITE_OK) {
            sqlite3_bind_text(st, 1, username, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, hash, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 3, now, -1, SQLITE_STATIC);
            if (sqlite3_step(st) == SQLITE_DONE)
                id = sqlite3_last_insert_rowid(s->db);
            else
                elo_seterr(ELO_SQL, "users: %s", sqlite3_errmsg(s->db));
            sqlite3_finalize(st);
        }
    }
    char token[2 * ELO_TOKEN_BYTES + 1];
    if (conflict || id <= 0 || elo__session_create(s, id, 0, token) < 0) {
        elo__audit_rollback(s);
        if (conflict)
            elo__resp_error(c->resp, 409, "already_done",
                            "the first administrator already exists");
        else
            internal_error(c, "setup step1");
        return;
    }
    elo_principal admin = {.authenticated = 1, .user_id = id};
    snprintf(admin.username, sizeof admin.username, "%s", username);
    snprintf(admin.role, sizeof admin.role, "super_admin");
    if (commit_audited(c, &admin, "SETUP_ADMIN_CREATED", id,
                       json_pack("{s:s,s:s}", "username", username, "role", "super_admin")) < 0) {
        sodium_memzero(token, sizeof token);
        return;
    }
    set_session_cookie(c->resp, token, s->cfg.session_ttl_s);
    json_t *o = json_pack("{s:s,s:o,s:i}", "token", token, "user",
                          user_json(id, username, "super_admin"), "step", 2);
    sodium_memzero(token, sizeof token);
    elo__resp_json(c->resp, 201, o);
}

static void h_setup_step2(ctx *c)
{
    elo_server *s = c->s;
    if (!setup_guard(c, 1))
        return;
    const char *pw;
    if (elo__body_string(c->body, "founder_password", 1, 16, 1024, &pw, c->err, sizeof c->err) <
        0) {
        elo__resp_error(c->resp, 400, "bad_request", "%s", c->err);
        return;
    }
    char hash[128];
    if (elo__password_hash(s, pw, hash) < 0) {
        internal_error(c, "setup step2");
        return;
    }
    if (elo__audit_begin(s) < 0) {
        audit_unavailable(c);
        return;
    }
    int rc = elo__setting_set(s, "founder.hash", hash);
    int step = setup_step(s);
    if (rc < 0) {
        elo__audit_rollback(s);
        internal_error(c, "setup step2");
        return;
    }
    if (commit_audited(c, c->who, "SETUP_FOUNDER_PASSWORD_SET", -1, NULL) < 0)
        return;
    elo__resp_json(c->resp, 200, json_pack("{s:b,s:i}", "founder_password_set", 1, "step", step));
}

static int write_settings_file(elo_server *s, const int values[4])
{
    json_t *o = json_object();
    for (int i = 0; i < 4; i++)
        json_object_set_new(o, pref_keys[i], json_boolean(values[i]));
    char *text = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(o);
    if (!text)
        return ELO_NOMEM;
    int rc = elo_write_file_atomic(s->settings_path, text, strlen(text));
    free(text);
    return rc;
}

/* Puts settings.json back as it was before a step 3 whose audit entry could
 * not be written: `old` (len bytes), or no file when `old` is NULL. Setup
 * steps come from the one administrator of step 1, one at a time, so no
 * other step 3 writes the file between the failed commit and this. */
static void restore_settings_file(elo_server *s, const char *old, size_t len)
{
    int rc;
    if (old)
        rc = elo_write_file_atomic(s->settings_path, old, len);
    else if (unlink(s->settings_path) == 0 || errno == ENOENT)
        rc = elo_fsync_dir_of(s->settings_path);
    else
        rc = elo_seterr(ELO_IO, "%s: unlink: %s", s->settings_path, strerror(errno));
    if (rc < 0)
        elo_error("serve: settings.json not put back after a refused setup step 3: %s",
                  elo_errmsg());
}

static void h_setup_step3(ctx *c)
{
    elo_server *s = c->s;
    if (!setup_guard(c, 1))
        return;
    int values[4];
    for (int i = 0; i < 4; i++)
        if (elo__body_bool(c->body, pref_keys[i], 1, &values[i], c->err, sizeof c->err) < 0) {
            elo__resp_error(c->resp, 400, "bad_request", "%s", c->err);
            return;
        }
    json_t *d = json_object();
    for (int i = 0; i < 4; i++)
        json_object_set_new(d, pref_keys[i], json_boolean(values[i]));
    char *text = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS);
    if (!text) {
        json_decref(d);
        elo_seterr(ELO_NOMEM, "out of memory");
        internal_error(c, "setup step3");
        return;
    }
    if (elo__audit_begin(s) < 0) {
        free(text);
        json_decref(d);
        audit_unavailable(c);
        return;
    }
    int step = setup_step(s);
    char *old = NULL;
    size_t old_len = 0;
    int rc = step < 3 ? ELO_OK : elo__setting_set(s, "setup.preferences", text);
    free(text);
    /* The file is written inside the transaction and put back if the
     * commit fails, so that it changes only together with its entry. */
    if (step >= 3 && rc == ELO_OK) {
        rc = elo_read_file(s->settings_path, 1 << 20, &old, &old_len);
        if (rc == ELO_NOTFOUND)
            rc = ELO_OK;
        if (rc == ELO_OK)
            rc = write_settings_file(s, values);
    }
    if (step < 3 || rc < 0) {
        elo__audit_rollback(s);
        if (step < 3)
            elo__resp_error(c->resp, 409, "setup_order", "finish step %d first", step);
        else
            internal_error(c, "setup step3");
        elo_free(old);
        json_decref(d);
        return;
    }
    step = setup_step(s);
    if (elo__audit_commit(s, c->who, "SETUP_PREFERENCES_SAVED", -1, d) < 0) {
        restore_settings_file(s, old, old_len);
        elo_free(old);
        json_decref(d);
        audit_unavailable(c);
        return;
    }
    elo_free(old);
    json_t *o = json_pack("{s:O,s:i}", "preferences", d, "step", step);
    json_decref(d);
    elo__resp_json(c->resp, 200, o);
}

static void h_setup_complete(ctx *c)
{
    elo_server *s = c->s;
    if (!setup_guard(c, 1))
        return;
    if (elo__audit_begin(s) < 0) {
        audit_unavailable(c);
        return;
    }
    char v[8];
    int step = setup_step(s);
    if (step == 4 && elo__setting_get(s, "setup.complete", v, sizeof v) == ELO_OK)
        step = 0;   /* a concurrent call completed it */
    int rc = step == 4 ? elo__setting_set(s, "setup.complete", "1") : ELO_OK;
    if (step != 4 || rc < 0) {
        elo__audit_rollback(s);
        if (step == 0)
            elo__resp_error(c->resp, 409, "setup_complete", "setup is already complete");
        else if (step != 4)
            elo__resp_error(c->resp, 409, "setup_order", "finish step %d first", step);
        else
            internal_error(c, "setup complete");
        return;
    }
    if (commit_audited(c, c->who, "SETUP_COMPLETED", -1, NULL) < 0)
        return;
    /* Committed: the token goes, under db_lock as setup_guard reads it. */
    pthread_mutex_lock(&s->db_lock);
    atomic_store(&s->setup_complete, 1);
    sodium_memzero(s->setup_token, sizeof s->setup_token);
    pthread_mutex_unlock(&s->db_lock);
    elo_info("serve: setup complete");
    elo__resp_json(c->resp, 200, json_pack("{s:b,s:i}", "setup_required", 0, "step", 0));
}

/* ---- auth -------------------------------------------------------------------- */

/* An Argon2id hash of a random password, verified against when the user
 * does not exist, so that a missing user costs as much as a wrong
 * password. */
static char dummy_hash[128];
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;
static void make_dummy(void)
{
    char pw[2 * ELO_TOKEN_BYTES + 1];
    elo__token_new(pw);
    if (crypto_pwhash_str(dummy_hash, pw, strlen(pw), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
        dummy_hash[0] = 0;
}

static void h_login(ctx *c)
{
    elo_server *s = c->s;
    const char *username, *password;
    if (elo__body_string(c->body, "username", 1, 1, 128, &username, c->err, sizeof c->err) < 0 ||
        elo__body_string(c->body, "password", 1, 1, 1024, &password, c->err, sizeof c->err) < 0) {
        elo__resp_error(c->resp, 400, "bad_request", "%s", c->err);
        return;
    }
    char ukey[160], ikey[96];
    snprintf(ukey, sizeof ukey, "u:%s", username);
    elo__rl_ip_key(c->req->ip, ikey, sizeof ikey);
    double now = elo_time_sec();
    double wait = ELO_MAX(elo__rl_wait(&s->rl, ukey, ELO_RL_USER_FREE, now),
                          elo__rl_wait(&s->rl, ikey, ELO_RL_IP_FREE, now));
    if (wait > 0) {
        elo_metrics_count("elohim_login_failures_total", "throttled", 1);
        c->resp->retry_after = (int)ceil(wait);
        elo__resp_error(c->resp, 429, "too_many_attempts",
                        "too many failed logins; try again in %d s", c->resp->retry_after);
        return;
    }
    pthread_once(&dummy_once, make_dummy);

    int founder = !strcmp(username, ELO_FOUNDER_NAME);
    char hash[160] = {0};
    int64_t id = -1;
    char role[16] = {0};
    pthread_mutex_lock(&s->db_lock);
    if (founder) {
        if (elo__setting_get(s, "founder.hash", hash, sizeof hash) != ELO_OK)
            hash[0] = 0;
        id = 0;
    } else {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(s->db, "SELECT id, pw_hash, role FROM users WHERE username=?",
                               -1, &st, NULL) == SQLITE_OK) {
            sqlite3_bind_text(st, 1, username, -1, SQLITE_STATIC);
            if (sqlite3_step(st) == SQLITE_ROW) {
                id = sqlite3_column_int64(st, 0);
                snprintf(hash, sizeof hash, "%s", sqlite3_column_text(st, 1));
                snprintf(role, sizeof role, "%s", sqlite3_column_text(st, 2));
            }
            sqlite3_finalize(st);
        }
    }
    pthread_mutex_unlock(&s->db_lock);
    int exists = hash[0] != 0;
    int ok = elo__password_verify(s, exists ? hash : dummy_hash, password) && exists;
    if (!ok) {
        elo__rl_fail(&s->rl, ukey, now);
        elo__rl_fail(&s->rl, ikey, now);
        elo_metrics_count("elohim_login_failures_total", "bad_credentials", 1);
        char shortname[65];
        snprintf(shortname, sizeof shortname, "%s", username);
        json_t *d = json_pack("{s:s,s:s}", "username", shortname, "ip",
                              c->req->ip ? c->req->ip : "");
        if (founder)
            json_object_set_new(d, "founder_attempt", json_true());
        int rc = elo__audit_append(s, NULL, "LOGIN_FAILED", exists && !founder ? id : -1, d);
        json_decref(d);
        /* Unrecorded, it still counts against the back-off above; it
         * answers as a right password would now, not 401 (module
         * comment). */
        if (rc < 0)
            audit_unavailable(c);
        else
            elo__resp_error(c->resp, 401, "invalid_credentials", "wrong username or password");
        return;
    }
    elo_principal who = {.authenticated = 1, .user_id = founder ? 0 : id, .founder = founder};
    snprintf(who.username, sizeof who.username, "%s", username);
    snprintf(who.role, sizeof who.role, "%s", founder ? "super_admin" : role);
    if (elo__audit_begin(s) < 0) {
        audit_unavailable(c);
        return;
    }
    char token[2 * ELO_TOKEN_BYTES + 1];
    if (elo__session_create(s, founder ? 0 : id, founder, token) < 0) {
        elo__audit_rollback(s);
        internal_error(c, "login session");
        return;
    }
    if (commit_audited(c, &who, founder ? "FOUNDER_LOGIN" : "LOGIN_OK", founder ? -1 : id,
                       json_pack("{s:s}", "ip", c->req->ip ? c->req->ip : "")) < 0) {
        sodium_memzero(token, sizeof token);
        return;
    }
    elo__rl_reset(&s->rl, ukey);
    if (founder)
        elo_warn("serve: founder (break-glass) login from %s", c->req->ip ? c->req->ip : "?");
    set_session_cookie(c->resp, token, s->cfg.session_ttl_s);
    json_t *user = user_json(who.user_id, who.username, who.role);
    if (founder)
        json_object_set_new(user, "founder", json_true());
    json_t *o = json_pack("{s:s,s:o}", "token", token, "user", user);
    sodium_memzero(token, sizeof token);
    elo__resp_json(c->resp, 200, o);
}

/* Fails open on purpose (module comment): without its entry the session
 * still ends. */
static void h_logout(ctx *c)
{
    elo_server *s = c->s;
    int64_t target = c->who->founder ? -1 : c->who->user_id;
    int rc;
    if (elo__audit_begin(s) == ELO_OK) {
        if ((rc = elo__session_delete(s, c->who->token_hash)) < 0) {
            elo__audit_rollback(s);
            internal_error(c, "logout");
            return;
        }
        rc = elo__audit_commit(s, c->who, "LOGOUT", target, NULL);
    } else {
        rc = ELO_IO;
    }
    if (rc < 0) {
        pthread_mutex_lock(&s->db_lock);
        rc = elo__session_delete(s, c->who->token_hash);
        pthread_mutex_unlock(&s->db_lock);
        if (rc < 0) {
            internal_error(c, "logout");
            return;
        }
        elo_error("serve: session of %s ended without its LOGOUT audit entry",
                  c->who->username);
    }
    set_session_cookie(c->resp, NULL, 0);
    elo__resp_json(c->resp, 200, json_pack("{s:b}", "ok", 1));
}

static void h_me(ctx *c)
{
    elo_principal *p = c->who;
    json_t *user = user_json(p->user_id, p->username, p->role);
    json_t *perms = json_array();
    for (int i = 0; i < elo__permission_count; i++)
        if (elo__has_perm(c->s, p, elo__permissions[i]))
            json_array_append_new(perms, json_string(elo__permissions[i]));
    json_object_set_new(user, "permissions", perms);
    json_object_set_new(user, "founder", json_boolean(p->founder));
    elo__resp_json(c->resp, 200, json_pack("{s:o}", "user", user));
}

/* ---- users --------------------------------------------------------------------- */

static void h_users_list(ctx *c)
{
    elo_server *s = c->s;
    json_t *arr = json_array();
    pthread_mutex_lock(&s->db_lock);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT id, username, role, created_at FROM users ORDER BY id",
                           -1, &st, NULL) == SQLITE_OK) {
        while (sqlite3_step(st) == SQLITE_ROW) {
            int64_t id = sqlite3_column_int64(st, 0);
            json_t *u = user_json(id, (const char *)sqlite3_column_text(st, 1),
                                  (const char *)sqlite3_column_text(st, 2));
            json_object_set_new(u, "created_at",
                                json_string((const char *)sqlite3_column_text(st, 3)));
            json_object_set_new(u, "permissions", grants_of(s, id));
            json_array_append_new(arr, u);
        }
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&s->db_lock);
    elo__resp_json(c->resp, 200, json_pack("{s:o}", "users", arr));
}

static void h_users_create(ctx *c)
{
    elo_server *s = c->s;
    const char *username, *password, *role;
    if (elo__body_string(c->body, "username", 1, 3, 64, &username, c->err, sizeof c->err) < 0 ||
        elo__body_string(c->body, "password", 1, 12, 1024, &password, c->err, sizeof c->err) < 0 ||
        elo__body_string(c->body, "role", 1, 1, 32, &role, c->err, sizeof c->err) < 0) {
        elo__resp_error(c->resp, 400, "bad_request", "%s", c->err);
        return;
    }
    if (!elo__valid_username(username) || !strcmp(username, ELO_FOUNDER_NAME)) {
        elo__resp_error(c->resp, 400, "bad_request",
                        "username must be 3-64 of A-Z a-z 0-9 _ . - and not reserved");
        return;
    }
    int rank = elo__role_rank(role);
    if (rank < 0) {
        elo__resp_error(c->resp, 400, "bad_request",
                        "role must be super_admin, admin, member or viewer");
        return;
    }
    if (rank > principal_rank(c->who)) {
        elo__resp_error(c->resp, 403, "forbidden", "you cannot grant a role above your own");
        return;
    }
    char hash[128];
    if (elo__password_hash(s, password, hash) < 0) {
        internal_error(c, "create user");
        return;
    }
    char now[32];
    elo__utc_now(now);
    int64_t id = 0;
    int dup = 0;
    if (elo__audit_begin(s) < 0) {
        audit_unavailable(c);
        return;
    }
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO users(username,pw_hash,role,created_at) VALUES(?,?,?,?)",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, username, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, hash, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, role, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, now, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
            id = sqlite3_last_insert_rowid(s->db);
        else if (sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_UNIQUE)
            dup = 1;
        else
            elo_seterr(ELO_SQL, "users: %s", sqlite3_errmsg(s->db));
        sqlite3_finalize(st);
    } else {
        elo_seterr(ELO_SQL, "users: %s", sqlite3_errmsg(s->db));
    }
    if (id <= 0) {
        elo__audit_rollback(s);
        if (dup)
            elo__resp_error(c->resp, 409, "exists", "a user with that name exists");
        else
            internal_error(c, "create user");
        return;
    }
    if (commit_audited(c, c->who, "USER_CREATED", id,
                       json_pack("{s:s,s:s}", "username", username, "role", role)) < 0)
        return;
    elo__resp_json(c->resp, 201, user_json(id, username, role));
}

/* 1 when the actor may act on a user of `target_role`. */
static int may_manage(ctx *c, const char *target_role)
{
    if (elo__role_rank(target_role) > principal_rank(c->who)) {
        elo__resp_error(c->resp, 403, "forbidden", "you cannot manage a user above your role");
        return 0;
    }
    return 1;
}

static void h_user_role(ctx *c)
{
    elo_server *s = c->s;
    int64_t id;
    if (!param_id(c, &id))
        return;
    const char *role;
    if (elo__body_string(c->body, "role", 1, 1, 32, &role, c->err, sizeof c->err) < 0) {
        elo__resp_error(c->resp, 400, "bad_request", "%s", c->err);
        return;
    }
    int rank = elo__role_rank(role);
    if (rank < 0) {
        elo__resp_error(c->resp, 400, "bad_request",
                        "role must be super_admin, admin, member or viewer");
        return;
    }
    if (rank > principal_rank(c->who)) {
        elo__resp_error(c->resp, 403, "forbidden", "you cannot grant a role above your own");
        return;
    }
    user_row u;
    int outcome = 0;   /* 0 changed, 1 missing, 2 above, 3 last super_admin, 4 error,
                        * 5 unchanged */
    if (elo__audit_begin(s) < 0) {
        audit_unavailable(c);
        return;
    }
    if (load_user(s, id, &u) < 0)
        outcome = 4;
    else if (!u.found)
        outcome = 1;
    else if (elo__role_rank(u.role) > principal_rank(c->who))
        outcome = 2;
    else if (!strcmp(u.role, role))
        outcome = 5;
    else if (!strcmp(u.role, "super_admin") && strcmp(role, "super_admin") != 0 &&
             count_rows(s, "SELECT count(*) FROM users WHERE role='super_admin'", INT64_MIN) <= 1)
        outcome = 3;
    else {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(s->db, "UPDATE users SET role=? WHERE id=?", -1, &st, NULL)) {
            outcome = 4;
        } else {
            sqlite3_bind_text(st, 1, role, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 2, id);
            if (sqlite3_step(st) != SQLITE_DONE)
                outcome = 4;
            sqlite3_finalize(st);
        }
        if (outcome == 4)
            elo_seterr(ELO_SQL, "users: %s", sqlite3_errmsg(s->db));
    }
    if (outcome == 0) {
        if (commit_audited(c, c->who, "ROLE_CHANGED", id,
                           json_pack("{s:s,s:s,s:s}", "username", u.username, "from", u.role,
                                     "to", role)) < 0)
            return;
    } else {
        elo__audit_rollback(s);   /* refused, or the same role: nothing to record */
    }
    switch (outcome) {
    case 1: elo__resp_error(c->resp, 404, "not_found", "no such user"); return;
    case 2: may_manage(c, u.role); return;
    case 3:
        elo__resp_error(c->resp, 409, "last_super_admin", "the last super_admin cannot be demoted");
        return;
    case 4: internal_error(c, "change role"); return;
    default: break;
    }
    elo__resp_json(c->resp, 200, user_json(id, u.username, role));
}

static void h_user_grant(ctx *c)
{
    elo_server *s = c->s;
    int64_t id;
    if (!param_id(c, &id))
        return;
    const char *perm;
    if (elo__body_string(c->body, "permission", 1, 1, 64, &perm, c->err, sizeof c->err) < 0) {
        elo__resp_error(c->resp, 400, "bad_request", "%s", c->err);
        return;
    }
    if (!elo__valid_permission(perm)) {
        elo__resp_error(c->resp, 400, "bad_request",
                        "unknown permission (docs.read, docs.write, data.upload, sql.query, "
                        "users.manage, audit.read)");
        return;
    }
    if (!elo__has_perm(s, c->who, perm)) {
        elo__resp_error(c->resp, 403, "forbidden", "you cannot grant a permission you do not hold");
        return;
    }
    char now[32];
    elo__utc_now(now);
    user_row u;
    int changed = 0, err = 0;
    json_t *grants = NULL;
    if (elo__audit_begin(s) < 0) {
        audit_unavailable(c);
        return;
    }
    err = load_user(s, id, &u) < 0;
    if (!err && u.found && elo__role_rank(u.role) <= principal_rank(c->who)) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(s->db,
                               "INSERT OR IGNORE INTO permissions(user_id,permission,granted_by,"
                               "granted_at) VALUES(?,?,?,?)",
                               -1, &st, NULL) == SQLITE_OK) {
            sqlite3_bind_int64(st, 1, id);
            sqlite3_bind_text(st, 2, perm, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 3, c->who->user_id);
            sqlite3_bind_text(st, 4, now, -1, SQLITE_STATIC);
            err = sqlite3_step(st) != SQLITE_DONE;
            changed = sqlite3_changes(s->db) > 0;
            sqlite3_finalize(st);
        } else {
            err = 1;
        }
        if (err)
            elo_seterr(ELO_SQL, "permissions: %s", sqlite3_errmsg(s->db));
        grants = grants_of(s, id);
    }
    if (!err && changed) {
        if (commit_audited(c, c->who, "PERMISSION_GRANTED", id,
                           json_pack("{s:s,s:s}", "permission", perm, "username",
                                     u.username)) < 0) {
            json_decref(grants);
            return;
        }
    } else {
        elo__audit_rollback(s);   /* refused, or held already: nothing to record */
    }
    if (err) {
        json_decref(grants);
        internal_error(c, "grant");
        return;
    }
    if (!u.found) {
        elo__resp_error(c->resp, 404, "not_found", "no such user");
        return;
    }
    if (!grants) {
        may_manage(c, u.role);
        return;
    }
    elo__resp_json(c->resp, 200,
                   json_pack("{s:I,s:o,s:b}", "id", (json_int_t)id, "permissions", grants,
                             "changed", changed));
}

static void h_user_revoke(ctx *c)
{
    elo_server *s = c->s;
    int64_t id;
    if (!param_id(c, &id))
        return;
    const char *perm = c->params[1];
    if (!elo__valid_permission(perm)) {
        elo__resp_error(c->resp, 404, "not_found", "unknown permission");
        return;
    }
    user_row u;
    int err = 0, removed = 0, allowed = 0;
    if (elo__audit_begin(s) < 0) {
        audit_unavailable(c);
        return;
    }
    err = load_user(s, id, &u) < 0;
    if (!err && u.found && elo__role_rank(u.role) <= principal_rank(c->who)) {
        allowed = 1;
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(s->db, "DELETE FROM permissions WHERE user_id=? AND permission=?",
                               -1, &st, NULL) == SQLITE_OK) {
            sqlite3_bind_int64(st, 1, id);
            sqlite3_bind_text(st, 2, perm, -1, SQLITE_STATIC);
            err = sqlite3_step(st) != SQLITE_DONE;
            removed = sqlite3_changes(s->db) > 0;
            sqlite3_finalize(st);
        } else {
            err = 1;
        }
        if (err)
            elo_seterr(ELO_SQL, "permissions: %s", sqlite3_errmsg(s->db));
    }
    if (!err && removed) {
        if (commit_audited(c, c->who, "PERMISSION_REVOKED", id,
                           json_pack("{s:s,s:s}", "permission", perm, "username",
                                     u.username)) < 0)
            return;
    } else {
        elo__audit_rollback(s);   /* refused, or not granted: nothing to record */
    }
    if (err) {
        internal_error(c, "revoke");
        return;
    }
    if (!u.found) {
        elo__resp_error(c->resp, 404, "not_found", "no such user");
        return;
    }
    if (!allowed) {
        may_manage(c, u.role);
        return;
    }
    if (!removed) {
        if (elo__role_has(u.role, perm))
            elo__resp_error(c->resp, 409, "held_by_role",
                            "the permission comes with the role %s; change the role instead",
                            u.role);
        else
            elo__resp_error(c->resp, 404, "not_granted", "the user does not hold that grant");
        return;
    }
    elo__resp_json(c->resp, 200, json_pack("{s:I,s:s,s:b}", "id", (json_int_t)id, "revoked", perm,
                                           "changed", 1));
}

static void h_user_delete(ctx *c)
{
    elo_server *s = c->s;
    int64_t id;
    if (!param_id(c, &id))
        return;
    user_row u;
    int outcome = 0;   /* 0 ok, 1 missing, 2 above, 3 last, 4 error */
    if (elo__audit_begin(s) < 0) {
        audit_unavailable(c);
        return;
    }
    if (load_user(s, id, &u) < 0)
        outcome = 4;
    else if (!u.found)
        outcome = 1;
    else if (elo__role_rank(u.role) > principal_rank(c->who))
        outcome = 2;
    else if (!strcmp(u.role, "super_admin") &&
             count_rows(s, "SELECT count(*) FROM users WHERE role='super_admin'", INT64_MIN) <= 1)
        outcome = 3;
    else {
        static const char *const sqls[] = {
            "DELETE FROM permissions WHERE user_id=?1",
            "DELETE FROM sessions WHERE user_id=?1 AND founder=0", "DELETE FROM users WHERE id=?1"};
        for (size_t i = 0; i < ELO_ARRAY_LEN(sqls) && outcome == 0; i++) {
            sqlite3_stmt *st;
            if (sqlite3_prepare_v2(s->db, sqls[i], -1, &st, NULL) != SQLITE_OK) {
                outcome = 4;
                break;
            }
            if (sqlite3_bind_parameter_count(st) > 0)
                sqlite3_bind_int64(st, 1, id);
            if (sqlite3_step(st) != SQLITE_DONE)
                outcome = 4;
            sqlite3_finalize(st);
        }
        if (outcome == 4)
            elo_seterr(ELO_SQL, "delete user: %s", sqlite3_errmsg(s->db));
    }
    if (outcome == 0) {
        if (commit_audited(c, c->who, "USER_DELETED", id,
                           json_pack("{s:s,s:s}", "username", u.username, "role", u.role)) < 0)
            return;
    } else {
        elo__audit_rollback(s);
    }
    switch (outcome) {
    case 1: elo__resp_error(c->resp, 404, "not_found", "no such user"); return;
    case 2: may_manage(c, u.role); return;
    case 3:
        elo__resp_error(c->resp, 409, "last_super_admin", "the last super_admin cannot be removed");
        return;
    case 4: internal_error(c, "delete user"); return;
    default: break;
    }
    elo__resp_json(c->resp, 200, json_pack("{s:I}", "deleted", (json_int_t)id));
}

/* ---- audit query ------------------------------------------------------------------- */

/* A UTC time prefix: YYYY-MM-DD[THH:MM[:SS[.mmm]]][Z]. */
static int valid_time(const char *t)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    size_t n = strlen(t);
    if (n < 10 || n > sizeof shape - 1)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char want = shape[i];
        if (want == 'd' ? !isdigit((unsigned char)t[i]) : t[i] != want) {
            if (t[i] == 'Z' && i == n - 1 && (i == 16 || i == 19 || i == 23))
                return 1;
            return 0;
        }
    }
    return n == 10 || n == 16 || n == 19 || n == 23 || n == 24;
}

static void h_audit(ctx *c)
{
    elo_server *s = c->s;
    elo_req *r = c->req;
    const char *target = r->query(r->ctx, "target");
    const char *action = r->query(r->ctx, "action");
    const char *actor = r->query(r->ctx, "actor");
    const char *since = r->query(r->ctx, "since");
    const char *until = r->query(r->ctx, "until");
    const char *limit_s = r->query(r->ctx, "limit");
    int64_t target_id = 0, actor_id = 0, limit = 100;
    if (target && *target && elo_parse_i64(target, &target_id) < 0) {
        elo__resp_error(c->resp, 400, "bad_request", "target must be a user id");
        return;
    }
    int actor_is_id = actor && *actor && elo_parse_i64(actor, &actor_id) == ELO_OK;
    if (actor && *actor && !actor_is_id && strlen(actor) > 72) {
        elo__resp_error(c->resp, 400, "bad_request", "actor must be a user id or name");
        return;
    }
    if (action && *action) {
        for (const char *p = action; *p; p++)
            if (!(isupper((unsigned char)*p) || *p == '_') || p - action > 64) {
                elo__resp_error(c->resp, 400, "bad_request", "action must be like ROLE_CHANGED");
                return;
            }
    }
    if ((since && *since && !valid_time(since)) || (until && *until && !valid_time(until))) {
        elo__resp_error(c->resp, 400, "bad_request",
                        "since/until must be UTC times like 2026-01-31T12:00:00Z");
        return;
    }
    if (limit_s && *limit_s && (elo_parse_i64(limit_s, &limit) < 0 || limit < 1 || limit > 1000)) {
        elo__resp_error(c->resp, 400, "bad_request", "limit must be 1 to 1000");
        return;
    }
    char sql[512] = "SELECT id, ts, actor, actor_name, action, target, details FROM audit_log"
                    " WHERE 1=1";
    if (target && *target)
        strcat(sql, " AND target = ?1");
    if (actor && *actor)
        strcat(sql, actor_is_id ? " AND actor = ?2" : " AND actor_name = ?3");
    if (action && *action)
        strcat(sql, " AND action = ?4");
    if (since && *since)
        strcat(sql, " AND ts >= ?5");
    if (until && *until)
        strcat(sql, " AND ts <= ?6");
    strcat(sql, " ORDER BY id DESC LIMIT ?7");
    json_t *arr = json_array();
    int err = 0;
    pthread_mutex_lock(&s->db_lock);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        err = 1;
        elo_seterr(ELO_SQL, "audit query: %s", sqlite3_errmsg(s->db));
    } else {
        if (target && *target)
            sqlite3_bind_int64(st, 1, target_id);
        if (actor && *actor) {
            if (actor_is_id)
                sqlite3_bind_int64(st, 2, actor_id);
            else
                sqlite3_bind_text(st, 3, actor, -1, SQLITE_STATIC);
        }
        if (action && *action)
            sqlite3_bind_text(st, 4, action, -1, SQLITE_STATIC);
        if (since && *since)
            sqlite3_bind_text(st, 5, since, -1, SQLITE_STATIC);
        if (until && *until)
            sqlite3_bind_text(st, 6, until, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 7, limit);
        while (sqlite3_step(st) == SQLITE_ROW) {
            json_t *e = json_object();
            json_object_set_new(e, "id", json_integer(sqlite3_column_int64(st, 0)));
            json_object_set_new(e, "ts", json_string((const char *)sqlite3_column_text(st, 1)));
            json_object_set_new(e, "actor", sqlite3_column_type(st, 2) == SQLITE_NULL
                                                ? json_null()
                                                : json_integer(sqlite3_column_int64(st, 2)));
            json_object_set_new(e, "actor_name",
                                json_string((const char *)sqlite3_column_text(st, 3)));
            json_object_set_new(e, "action", json_string((const char *)sqlite3_column_text(st, 4)));
            json_object_set_new(e, "target", sqlite3_column_type(st, 5) == SQLITE_NULL
                                                 ? json_null()
                                                 : json_integer(sqlite3_column_int64(st, 5)));
            json_t *d = json_loads((const char *)sqlite3_column_text(st, 6), 0, NULL);
            json_object_set_new(e, "details", d ? d : json_object());
            json_array_append_new(arr, e);
        }
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&s->db_lock);
    if (err) {
        json_decref(arr);
        internal_error(c, "audit query");
        return;
    }
    elo__resp_json(c->resp, 200, json_pack("{s:o}", "entries", arr));
}

/* ---- health, readiness, metrics ------------------------------------------------------ */

static void h_healthz(ctx *c)
{
    elo__resp_json(c->resp, 200, json_pack("{s:s}", "status", "ok"));
}

static void h_readyz(ctx *c)
{
    elo_server *s = c->s;
    if (atomic_load(&s->draining)) {
        elo__resp_error(c->resp, 503, "draining", "the server is shutting down");
        return;
    }
    pthread_mutex_lock(&s->db_lock);
    int64_t n = count_rows(s, "SELECT 1", INT64_MIN);
    pthread_mutex_unlock(&s->db_lock);
    if (n != 1) {
        elo__resp_error(c->resp, 503, "not_ready", "the database is not reachable");
        return;
    }
    elo__resp_json(c->resp, 200, json_pack("{s:s}", "status", "ready"));
}

static void gauge(elo_buf *b, const char *name, const char *help, double v)
{
    elo__buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n%s ", name, help, name, name);
    elo__buf_number(b, v);
    elo__buf_add(b, "\n", 1);
}

static void h_metrics(ctx *c)
{
    elo_server *s = c->s;
    elo_buf b;
    elo__buf_init(&b);
    elo__metrics_render_into(&b);
    int64_t now = (int64_t)(elo_wall_time_ms() / 1000);
    pthread_mutex_lock(&s->db_lock);
    int64_t sessions = count_rows(s, "SELECT count(*) FROM sessions WHERE expires_at > ?", now);
    int64_t users = count_rows(s, "SELECT count(*) FROM users", INT64_MIN);
    pthread_mutex_unlock(&s->db_lock);
    gauge(&b, "elohim_active_sessions", "Unexpired sessions.", (double)sessions);
    gauge(&b, "elohim_users", "User accounts.", (double)users);
    pthread_mutex_lock(&s->audit_lock);
    int64_t audit = s->audit_count;
    pthread_mutex_unlock(&s->audit_lock);
    gauge(&b, "elohim_audit_entries", "Entries in the audit chain.", (double)audit);
    gauge(&b, "elohim_in_flight_requests", "Requests being served.",
          (double)atomic_load(&s->in_flight));
    elo__buf_printf(&b, "# HELP elohim_build_info Build information.\n"
                        "# TYPE elohim_build_info gauge\n"
                        "elohim_build_info{version=\"%s\",gpu=\"%s\"} 1\n",
                    ELOHIM_VERSION, s->gpu_available ? "true" : "false");
    const char *names[64];
    uint64_t counts[64];
    int n = elo_backend_op_counts(names, counts, 64);
    elo__buf_printf(&b, "# HELP elohim_gpu_operations_total GPU operations by operation.\n"
                        "# TYPE elohim_gpu_operations_total counter\n");
    for (int i = 0; i < n; i++) {
        elo__buf_add(&b, "elohim_gpu_operations_total{operation=\"", 39);
        elo__buf_label_value(&b, names[i]);
        elo__buf_printf(&b, "\"} %llu\n", (unsigned long long)counts[i]);
    }
    if (s->gpu_available) {
        elo_gpu_info info;
        if (elo_gpu_probe(&info) == ELO_OK) {
            gauge(&b, "elohim_gpu_memory_used_bytes", "GPU memory in use (all processes).",
                  (double)(info.mem_total - info.mem_free));
            gauge(&b, "elohim_gpu_memory_total_bytes", "GPU memory in total.",
                  (double)info.mem_total);
        }
    }
    gauge(&b, "elohim_start_time_seconds", "Unix time the server started.", s->started);
    if (b.failed) {
        elo_free(b.data);
        elo__resp_error(c->resp, 500, "internal", "out of memory");
        return;
    }
    elo__resp_free(c->resp);
    c->resp->status = 200;
    c->resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    c->resp->body = b.data;
    c->resp->len = b.len;
}

/* ---- the router ------------------------------------------------------------------------ */

static const route routes[] = {
    {"GET", "/healthz", h_healthz, NEED_NONE, NULL, 0},
    {"GET", "/readyz", h_readyz, NEED_NONE, NULL, 0},
    {"GET", "/metrics", h_metrics, NEED_NONE, NULL, 0},
    {"GET", "/api/v1/setup/status", h_setup_status, NEED_NONE, NULL, 0},
    {"POST", "/api/v1/setup/step1", h_setup_step1, NEED_NONE, NULL, 1},
    {"POST", "/api/v1/setup/step2", h_setup_step2, NEED_NONE, NULL, 1},
    {"POST", "/api/v1/setup/step3", h_setup_step3, NEED_NONE, NULL, 1},
    {"POST", "/api/v1/setup/complete", h_setup_complete, NEED_NONE, NULL, 1},
    {"POST", "/api/v1/auth/login", h_login, NEED_NONE, NULL, 1},
    {"POST", "/api/v1/auth/logout", h_logout, NEED_SESSION, NULL, 0},
    {"GET", "/api/v1/auth/me", h_me, NEED_SESSION, NULL, 0},
    {"GET", "/api/v1/users", h_users_list, NEED_PERM, "users.manage", 0},
    {"POST", "/api/v1/users", h_users_create, NEED_PERM, "users.manage", 1},
    {"PUT", "/api/v1/users/{id}/role", h_user_role, NEED_PERM, "users.manage", 1},
    {"POST", "/api/v1/users/{id}/permissions", h_user_grant, NEED_PERM, "users.manage", 1},
    {"DELETE", "/api/v1/users/{id}/permissions/{perm}", h_user_revoke, NEED_PERM, "users.manage",
     0},
    {"DELETE", "/api/v1/users/{id}", h_user_delete, NEED_PERM, "users.manage", 0},
    {"GET", "/api/v1/audit", h_audit, NEED_PERM, "audit.read", 0},
};

/* Matches `path` against `pattern` segment by segment. `scratch` receives
 * a copy of the path split at '/', and params point into it. */
static int match(const char *pattern, const char *path, char *scratch, size_t scratch_len,
                 const char **params)
{
    size_t n = strlen(path);
    if (n + 1 > scratch_len || path[0] != '/')
        return 0;
    memcpy(scratch, path, n + 1);
    char *sp = scratch + 1;
    const char *pp = pattern + 1;
    int np = 0;
    for (;;) {
        const char *pend = strchr(pp, '/');
        size_t plen = pend ? (size_t)(pend - pp) : strlen(pp);
        char *send = strchr(sp, '/');
        size_t slen = send ? (size_t)(send - sp) : strlen(sp);
        if ((pend == NULL) != (send == NULL))
            return 0;
        if (plen > 2 && pp[0] == '{') {
            if (slen == 0 || np == MAX_PARAMS)
                return 0;
            if (!strncmp(pp, "{id}", 4))
                for (size_t i = 0; i < slen; i++)
                    if (!isdigit((unsigned char)sp[i]))
                        return 0;
            params[np++] = sp;
        } else if (plen != slen || strncmp(pp, sp, plen) != 0) {
            return 0;
        }
        if (!pend)
            break;
        *send = 0;
        pp = pend + 1;
        sp = send + 1;
    }
    return 1;
}

void elo__route(elo_server *s, elo_req *req, elo_resp *resp)
{
    const char *method = !strcmp(req->method, "HEAD") ? "GET" : req->method;
    char scratch[512];
    const char *params[MAX_PARAMS] = {0};
    const route *hit = NULL;
    char allow[64] = "";
    for (size_t i = 0; i < ELO_ARRAY_LEN(routes); i++) {
        const char *pp[MAX_PARAMS] = {0};
        if (!match(routes[i].pattern, req->path, scratch, sizeof scratch, pp))
            continue;
        if (!strcmp(routes[i].method, method)) {
            hit = &routes[i];
            memcpy(params, pp, sizeof params);
            break;
        }
        if (strlen(allow) + strlen(routes[i].method) + 3 < sizeof allow) {
            if (*allow)
                strcat(allow, ", ");
            strcat(allow, routes[i].method);
        }
    }
    if (!hit) {
        if (*allow) {
            static __thread char allow_tls[64];
            snprintf(allow_tls, sizeof allow_tls, "%s", allow);
            req->route = "unmatched";
            resp->allow = allow_tls;
            elo__resp_error(resp, 405, "method_not_allowed", "method not allowed here");
            return;
        }
        if (strncmp(req->path, "/api/", 5) != 0 && (!strcmp(method, "GET"))) {
            req->route = "static";
            elo__static(s, req, resp);
            return;
        }
        req->route = "unmatched";
        if (strncmp(req->path, "/api/", 5) != 0) {
            resp->allow = "GET, HEAD";
            elo__resp_error(resp, 405, "method_not_allowed", "static files are read-only");
            return;
        }
        elo__resp_error(resp, 404, "not_found", "no such route");
        return;
    }
    req->route = hit->pattern;
    elo_principal who;
    memset(&who, 0, sizeof who);
    ctx c = {.s = s, .req = req, .resp = resp, .who = &who};
    memcpy(c.params, params, sizeof params);
    if (hit->need != NEED_NONE) {
        if (elo__session_lookup(s, req, &who) < 0) {
            elo__resp_error(resp, 401, "unauthorized", "log in first");
            return;
        }
        if (hit->need == NEED_PERM && !elo__has_perm(s, &who, hit->perm)) {
            elo__resp_error(resp, 403, "forbidden", "this needs the %s permission", hit->perm);
            return;
        }
    }
    if (hit->takes_body) {
        if (elo__body_parse(req->body, req->body_len, &c.body, c.err, sizeof c.err) < 0) {
            elo__resp_error(resp, 400, "bad_request", "%s", c.err);
            return;
        }
    }
    hit->fn(&c);
    json_decref(c.body);
}
