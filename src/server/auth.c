/* auth.c - roles and permissions, Argon2id password hashes, session tokens
 * (256-bit random; only their BLAKE2b hash is stored), session lookup from
 * a Bearer header or the session cookie, and the failed-login back-off.
 *
 * DESIGN: Argon2id needs 64 MiB and ~0.1 s per hash, so at most
 * max(2, CPUs) run at once (s->hash_slots); other workers wait for a slot,
 * never holding the database lock meanwhile. The back-off table is a fixed
 * open-addressed array under its own mutex: bounded memory whatever
 * usernames or addresses clients make up. */
#include "server-impl.h"

#include <arpa/inet.h>
#include <sodium.h>
#include <string.h>

/* ---- roles and permissions ------------------------------------------------ */

const char *const elo__permissions[] = {"docs.read",  "docs.write",    "data.upload",
                                        "sql.query", "users.manage", "audit.read"};
const int elo__permission_count = (int)ELO_ARRAY_LEN(elo__permissions);

int elo__role_rank(const char *role)
{
    if (!role)
        return -1;
    if (!strcmp(role, "super_admin"))
        return 3;
    if (!strcmp(role, "admin"))
        return 2;
    if (!strcmp(role, "member"))
        return 1;
    if (!strcmp(role, "viewer"))
        return 0;
    return -1;
}

int elo__valid_permission(const char *perm)
{
    for (int i = 0; i < elo__permission_count; i++)
        if (!strcmp(perm, elo__permissions[i]))
            return 1;
    return 0;
}

int elo__role_has(const char *role, const char *perm)
{
    int rank = elo__role_rank(role);
    if (rank < 0 || !elo__valid_permission(perm))
        return 0;
    if (rank >= 2)   /* admins hold every named permission */
        return 1;
    if (rank == 1)
        return !strcmp(perm, "docs.read") || !strcmp(perm, "docs.write") ||
               !strcmp(perm, "data.upload") || !strcmp(perm, "sql.query");
    return !strcmp(perm, "docs.read");
}

/* A statement that requests run on every call (the session lookup, the
 * permission check): prepared once into *slot and kept until the database
 * closes, instead of compiled by SQLite each time. The caller holds db_lock
 * and resets it after use. NULL when it cannot be prepared. */
static sqlite3_stmt *kept_stmt(elo_server *s, sqlite3_stmt **slot, const char *sql)
{
    if (!*slot && sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, slot, NULL) !=
                      SQLITE_OK)
        *slot = NULL;
    return *slot;
}

int elo__has_perm(elo_server *s, const elo_principal *p, const char *perm)
{
    if (!p->authenticated)
        return 0;
    if (p->founder || elo__role_has(p->role, perm))
        return 1;
    int held = 0;
    pthread_mutex_lock(&s->db_lock);
    sqlite3_stmt *st = kept_stmt(s, &s->st_perm,
                                 "SELECT 1 FROM permissions WHERE user_id=? AND permission=?");
    if (st) {
        sqlite3_bind_int64(st, 1, p->user_id);
        sqlite3_bind_text(st, 2, perm, -1, SQLITE_STATIC);
        held = sqlite3_step(st) == SQLITE_ROW;
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    pthread_mutex_unlock(&s->db_lock);
    return held;
}

/* ---- passwords ------------------------------------------------------------ */

int elo__password_hash(elo_server *s, const char *password, char out[128])
{
    sem_wait(&s->hash_slots);
    int rc = crypto_pwhash_str(out, password, strlen(password),
                               crypto_pwhash_OPSLIMIT_INTERACTIVE,
                               crypto_pwhash_MEMLIMIT_INTERACTIVE);
    sem_post(&s->hash_slots);
    if (rc != 0)
        return elo_seterr(ELO_NOMEM, "password hashing ran out of memory");
    return ELO_OK;
}

int elo__password_verify(elo_server *s, const char *hash, const char *password)
{
    sem_wait(&s->hash_slots);
    int ok = crypto_pwhash_str_verify(hash, password, strlen(password)) == 0;
    sem_post(&s->hash_slots);
    return ok;
}

/* ---- tokens and sessions --------------------------------------------------- */

void elo__token_new(char token[2 * ELO_TOKEN_BYTES + 1])
{
    unsigned char raw[ELO_TOKEN_BYTES];
    randombytes_buf(raw, sizeof raw);
    elo__hex(raw, sizeof raw, token);
    sodium_memzero(raw, sizeof raw);
}

void elo__token_hash(const char *token, char out[2 * ELO_MAC_BYTES + 1])
{
    unsigned char h[ELO_MAC_BYTES];
    crypto_generichash(h, sizeof h, (const unsigned char *)token, strlen(token), NULL, 0);
    elo__hex(h, sizeof h, out);
}

int elo__session_create(elo_server *s, int64_t user_id, int founder,
                        char token[2 * ELO_TOKEN_BYTES + 1])
{
    elo__token_new(token);
    char th[2 * ELO_MAC_BYTES + 1];
    elo__token_hash(token, th);
    int64_t now = (int64_t)(elo_wall_time_ms() / 1000);
    int rc = ELO_OK;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO sessions(token_hash,user_id,founder,created_at,expires_at)"
                           " VALUES(?,?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = elo_seterr(ELO_SQL, "sessions: %s", sqlite3_errmsg(s->db));
    } else {
        sqlite3_bind_text(st, 1, th, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, user_id);
        sqlite3_bind_int(st, 3, founder);
        sqlite3_bind_int64(st, 4, now);
        sqlite3_bind_int64(st, 5, now + (int64_t)s->cfg.session_ttl_s);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = elo_seterr(ELO_SQL, "sessions: %s", sqlite3_errmsg(s->db));
        sqlite3_finalize(st);
    }
    /* Expired sessions go on the way (cheap with the primary key). */
    sqlite3_stmt *del;
    if (sqlite3_prepare_v2(s->db, "DELETE FROM sessions WHERE expires_at <= ?", -1, &del,
                           NULL) == SQLITE_OK) {
        sqlite3_bind_int64(del, 1, now);
        sqlite3_step(del);
        sqlite3_finalize(del);
    }
    return rc;
}

/* The token of a request: "Authorization: Bearer <hex>" first, then the
 * session cookie. Only 64-hex-digit tokens are considered. */
static int request_token(elo_req *req, char out[2 * ELO_TOKEN_BYTES + 1])
{
    const char *auth = req->header ? req->header(req->ctx, "Authorization") : NULL;
    const char *cand = NULL;
    size_t cand_len = 0;
    if (auth && !strncasecmp(auth, "Bearer ", 7)) {
        cand = auth + 7;
        while (*cand == ' ')
            cand++;
        cand_len = strcspn(cand, " \t");
    } else {
        const char *cookie = req->header ? req->header(req->ctx, "Cookie") : NULL;
        const char *p = cookie;
        size_t name_len = strlen(ELO_SESSION_COOKIE);
        while (p && *p) {
            while (*p == ' ' || *p == ';')
                p++;
            if (!strncmp(p, ELO_SESSION_COOKIE, name_len) && p[name_len] == '=') {
                cand = p + name_len + 1;
                cand_len = strcspn(cand, "; ");
                break;
            }
            p = strchr(p, ';');
        }
    }
    if (!cand || cand_len != 2 * ELO_TOKEN_BYTES)
        return 0;
    for (size_t i = 0; i < cand_len; i++) {
        char c = cand[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return 0;
    }
    memcpy(out, cand, cand_len);
    out[cand_len] = 0;
    return 1;
}

int elo__session_lookup(elo_server *s, elo_req *req, elo_principal *p)
{
    memset(p, 0, sizeof *p);
    char token[2 * ELO_TOKEN_BYTES + 1];
    if (!request_token(req, token))
        return ELO_AUTH;
    elo__token_hash(token, p->token_hash);
    sodium_memzero(token, sizeof token);
    int64_t now = (int64_t)(elo_wall_time_ms() / 1000);
    int rc = ELO_AUTH;
    pthread_mutex_lock(&s->db_lock);
    sqlite3_stmt *st = kept_stmt(s, &s->st_session,
                                 "SELECT s.user_id, s.founder, s.expires_at, u.username, u.role"
                                 " FROM sessions s LEFT JOIN users u ON u.id = s.user_id"
                                 " WHERE s.token_hash = ?");
    if (st) {
        sqlite3_bind_text(st, 1, p->token_hash, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 2) > now) {
            p->user_id = sqlite3_column_int64(st, 0);
            p->founder = sqlite3_column_int(st, 1);
            if (p->founder) {
                snprintf(p->username, sizeof p->username, "%s", ELO_FOUNDER_NAME);
                snprintf(p->role, sizeof p->role, "super_admin");
                p->user_id = 0;
                rc = ELO_OK;
            } else if (sqlite3_column_type(st, 3) != SQLITE_NULL) {
                snprintf(p->username, sizeof p->username, "%s", sqlite3_column_text(st, 3));
                snprintf(p->role, sizeof p->role, "%s", sqlite3_column_text(st, 4));
                rc = ELO_OK;
            }
        }
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    pthread_mutex_unlock(&s->db_lock);
    p->authenticated = rc == ELO_OK;
    return rc;
}

int elo__session_delete(elo_server *s, const char *token_hash)
{
    int rc = ELO_OK;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "DELETE FROM sessions WHERE token_hash=?", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_text(st, 1, token_hash, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = elo_seterr(ELO_SQL, "sessions: %s", sqlite3_errmsg(s->db));
        sqlite3_finalize(st);
    } else {
        rc = elo_seterr(ELO_SQL, "sessions: %s", sqlite3_errmsg(s->db));
    }
    return rc;
}

/* ---- failed-login back-off ------------------------------------------------- */

static uint64_t rl_key(const char *key)
{
    uint64_t h = elo_hash64(key, strlen(key));
    return h ? h : 1;
}

/* The slot of `key`; with `create`, a free or the stalest slot. */
static elo_rl_slot *rl_find(elo_ratelimit *rl, uint64_t k, int create)
{
    size_t start = (size_t)(k % ELO_RL_SLOTS);
    for (size_t probe = 0; probe < 16; probe++) {
        elo_rl_slot *sl = &rl->slots[(start + probe) % ELO_RL_SLOTS];
        if (sl->key == k)
            return sl;
    }
    if (!create)
        return NULL;
    elo_rl_slot *pick = NULL;
    for (size_t probe = 0; probe < 16; probe++) {
        elo_rl_slot *sl = &rl->slots[(start + probe) % ELO_RL_SLOTS];
        if (sl->key == 0) {
            pick = sl;
            break;
        }
        if (!pick || sl->last_fail < pick->last_fail)
            pick = sl;
    }
    memset(pick, 0, sizeof *pick);
    return pick;
}

static double rl_delay(uint32_t failures, int free_failures)
{
    if (failures < (uint32_t)free_failures)
        return 0;
    uint32_t extra = failures - (uint32_t)free_failures;
    double d = extra >= 16 ? ELO_RL_MAX_DELAY : (double)(1u << extra);
    return d > ELO_RL_MAX_DELAY ? ELO_RL_MAX_DELAY : d;
}

double elo__rl_wait(elo_ratelimit *rl, const char *key, int free_failures, double now)
{
    uint64_t k = rl_key(key);
    pthread_mutex_lock(&rl->lock);
    double wait = 0;
    elo_rl_slot *sl = rl_find(rl, k, 0);
    if (sl) {
        double until = sl->last_fail + rl_delay(sl->failures, free_failures);
        if (until > now)
            wait = until - now;
        else if (now - sl->last_fail > 3600)   /* an hour of quiet forgives */
            sl->failures = 0;
    }
    pthread_mutex_unlock(&rl->lock);
    return wait;
}

void elo__rl_fail(elo_ratelimit *rl, const char *key, double now)
{
    uint64_t k = rl_key(key);
    pthread_mutex_lock(&rl->lock);
    elo_rl_slot *sl = rl_find(rl, k, 1);
    if (sl) {
        sl->key = k;
        if (sl->failures < 1000000)
            sl->failures++;
        sl->last_fail = now;
    }
    pthread_mutex_unlock(&rl->lock);
}

void elo__rl_reset(elo_ratelimit *rl, const char *key)
{
    uint64_t k = rl_key(key);
    pthread_mutex_lock(&rl->lock);
    elo_rl_slot *sl = rl_find(rl, k, 0);
    if (sl)
        memset(sl, 0, sizeof *sl);
    pthread_mutex_unlock(&rl->lock);
}

void elo__rl_ip_key(const char *ip, char *out, size_t out_len)
{
    struct in6_addr a6;
    char prefix[INET6_ADDRSTRLEN];
    if (ip && inet_pton(AF_INET6, ip, &a6) == 1) {
        memset(&a6.s6_addr[8], 0, 8);
        inet_ntop(AF_INET6, &a6, prefix, sizeof prefix);
        snprintf(out, out_len, "i:%s/64", prefix);
    } else {
        snprintf(out, out_len, "i:%s", ip ? ip : "");
    }
}
