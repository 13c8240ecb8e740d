/* audit.c - the tamper-evident audit log.
 *
 * Each row of audit_log carries mac = BLAKE2b-256 keyed with DIR/audit.key
 * (32 random bytes, mode 0600, never in the database) over the previous
 * entry's MAC followed by the entry's fields, each as an 8-byte
 * little-endian length and its bytes (id, ts, actor, actor_name, action,
 * target, details). The chain head - entry count and last MAC, itself
 * MAC'd - lives in DIR/audit.head, outside the database. So an edited row
 * breaks its MAC, a deleted row breaks the next MAC or the id sequence, a
 * deleted newest row disagrees with the head, and a chain recomputed
 * without the key matches nothing.
 *
 * DESIGN: an audited change and its entry are one SQLite transaction, so
 * that either both happen or neither does (fail closed: a change whose
 * entry cannot be written is rolled back and refused). The caller runs
 * elo__audit_begin() (s->audit_lock, then s->db_lock - the database lock
 * is taken inside the audit lock, never the other way round - then BEGIN
 * IMMEDIATE), its own statements, and elo__audit_commit() with the entry,
 * or elo__audit_rollback() when it refuses or changes nothing;
 * elo__audit_append() is begin + commit with no statements of its own.
 * The commit writes ahead of the head, so that a crash never leaves the
 * head behind the log:
 *   1. insert the row into the open transaction, then write the next head
 *      (count + 1, the new MAC) to audit.head.pending (temp file, fsync,
 *      rename, fsync of the directory);
 *   2. COMMIT the caller's statements and the row together
 *      (synchronous=FULL for this transaction: durable once committed);
 *   3. release db_lock; rename audit.head.pending over audit.head, fsync
 *      the directory.
 * A failure before 2 completes rolls the whole transaction back and
 * returns the error; the cost is that db_lock is held over the pending
 * head's fsyncs, which audited changes (logins, user administration, setup)
 * are rare enough to afford. The change itself is in the transaction, so
 * every statement below about "the row" holds for the change as well. A
 * failure in 3 leaves the change and its row committed: the commit
 * succeeds, and the failure is logged and counted like a refused one
 * (elohim_audit_write_failures_total).
 * At start (and in `elohim audit verify`, which only reports) a pending
 * head must authenticate and be exactly one entry ahead of audit.head;
 * if the log ends at the pending head, the row committed and the pending
 * head is promoted; if the log ends at audit.head, the row did not commit
 * and the pending head is discarded; anything else is reported, as a log
 * that does not end at audit.head is when there is no pending head.
 * Crash points:
 *   - before 1 (or inside it: an uncommitted row, a stray temp file): no
 *     pending head, the log ends at the head;
 *   - between 1 and 2: the log ends at the head: discarded;
 *   - between 2 and 3 (or a rename the directory fsync did not make
 *     durable): the log ends at the pending head: promoted;
 *   - after 3: no pending head, the log ends at the head.
 * Tamper evidence is unchanged: a log is accepted only when it ends
 * exactly at a head that authenticates under the key, whichever of the
 * two files holds it; an attacker without the key can forge neither, and
 * an edited, deleted or reordered row fails as before. A pending head
 * more than one entry ahead, or one that the log matches neither way, is
 * reported. What the design cannot do, with or without a pending file, is
 * tell a replayed old head from a current one (an attacker who kept an
 * old audit.head can truncate the log to it), nor protect the one entry a
 * crash left between steps 2 and 3 until the next start promotes its head:
 * deleting that row and the pending file looks like a crash before step 2.
 * If step 3's rename fails, the row stays in and the next append first
 * retries it (s->audit_head_behind; a retry that fails refuses that
 * change), so a pending head is always one ahead of audit.head when it is
 * written. */
#include "server-impl.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char head_magic[] = "elohim-audit-head v1";

static void mac_field(crypto_generichash_state *st, const char *v)
{
    uint64_t n = v ? strlen(v) : 0;
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)(n >> (8 * i));
    crypto_generichash_update(st, len, 8);
    if (n)
        crypto_generichash_update(st, (const unsigned char *)v, n);
}

/* The MAC of one entry chained on `prev`. actor/target may be NULL. */
static void entry_mac(const unsigned char key[32], const unsigned char prev[ELO_MAC_BYTES],
                      int64_t id, const char *ts, const char *actor, const char *actor_name,
                      const char *action, const char *target, const char *details,
                      unsigned char out[ELO_MAC_BYTES])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, key, 32, ELO_MAC_BYTES);
    crypto_generichash_update(&st, prev, ELO_MAC_BYTES);
    char idtxt[32];
    snprintf(idtxt, sizeof idtxt, "%lld", (long long)id);
    mac_field(&st, idtxt);
    mac_field(&st, ts);
    mac_field(&st, actor);
    mac_field(&st, actor_name);
    mac_field(&st, action);
    mac_field(&st, target);
    mac_field(&st, details);
    crypto_generichash_final(&st, out, ELO_MAC_BYTES);
}

static void head_mac(const unsigned char key[32], int64_t count,
                     const unsigned char last[ELO_MAC_BYTES], unsigned char out[ELO_MAC_BYTES])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, key, 32, ELO_MAC_BYTES);
    mac_field(&st, head_magic);
    char c[32];
    snprintf(c, sizeof c, "%lld", (long long)count);
    mac_field(&st, c);
    crypto_generichash_update(&st, last, ELO_MAC_BYTES);
    crypto_generichash_final(&st, out, ELO_MAC_BYTES);
}

static int read_key(const char *path, unsigned char key[32])
{
    char *text = NULL;
    size_t len = 0;
    int rc = elo_read_file(path, 4096, &text, &len);
    if (rc < 0)
        return rc;
    char hex[65] = {0};
    size_t n = len;
    while (n && (text[n - 1] == '\n' || text[n - 1] == '\r'))
        n--;
    if (n != 64) {
        elo_free(text);
        return elo_seterr(ELO_CORRUPT, "%s: not a 64-digit hex key", path);
    }
    memcpy(hex, text, 64);
    elo_free(text);
    if (elo__unhex(hex, key, 32) < 0)
        return elo_seterr(ELO_CORRUPT, "%s: not a 64-digit hex key", path);
    return ELO_OK;
}

static int write_key(const char *path, const unsigned char key[32])
{
    char hex[66];
    elo__hex(key, 32, hex);
    hex[64] = '\n';
    hex[65] = 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return elo_seterr(ELO_IO, "%s: %s", path, strerror(errno));
    int rc = elo_pwrite_all(fd, hex, 65, 0);
    if (rc == ELO_OK && fsync(fd) != 0)
        rc = elo_seterr(ELO_IO, "%s: fsync: %s", path, strerror(errno));
    close(fd);
    if (rc == ELO_OK)
        rc = elo_fsync_dir_of(path);
    return rc;
}

static int write_head(const char *path, const unsigned char key[32], int64_t count,
                      const unsigned char last[ELO_MAC_BYTES])
{
    unsigned char hm[ELO_MAC_BYTES];
    head_mac(key, count, last, hm);
    char lasthex[2 * ELO_MAC_BYTES + 1], machex[2 * ELO_MAC_BYTES + 1];
    elo__hex(last, ELO_MAC_BYTES, lasthex);
    elo__hex(hm, ELO_MAC_BYTES, machex);
    char text[512];
    int n = snprintf(text, sizeof text, "%s\ncount %lld\nlast %s\nmac %s\n", head_magic,
                     (long long)count, lasthex, machex);
    return elo_write_file_atomic(path, text, (size_t)n);
}

/* Reads and authenticates the head. ELO_NOTFOUND when the file is absent. */
static int read_head(const char *path, const unsigned char key[32], int64_t *count,
                     unsigned char last[ELO_MAC_BYTES])
{
    struct stat sb;
    if (stat(path, &sb) != 0 && errno == ENOENT)
        return ELO_NOTFOUND;
    char *text = NULL;
    size_t len = 0;
    int rc = elo_read_file(path, 4096, &text, &len);
    if (rc < 0)
        return rc;
    char magic[64], lasthex[80], machex[80];
    long long c = -1;
    int got = sscanf(text, "%63[^\n]\ncount %lld\nlast %79s\nmac %79s", magic, &c, lasthex, machex);
    elo_free(text);
    unsigned char hm[ELO_MAC_BYTES], want[ELO_MAC_BYTES];
    if (got != 4 || strcmp(magic, head_magic) || c < 0 ||
        elo__unhex(lasthex, last, ELO_MAC_BYTES) < 0 || elo__unhex(machex, hm, ELO_MAC_BYTES) < 0)
        return elo_seterr(ELO_CORRUPT, "%s: malformed chain head", path);
    head_mac(key, c, last, want);
    if (sodium_memcmp(hm, want, ELO_MAC_BYTES) != 0)
        return elo_seterr(ELO_CORRUPT, "%s: chain head MAC does not match (edited head or wrong key)",
                          path);
    *count = c;
    return ELO_OK;
}

/* Walks the whole log, checking the id sequence and every MAC. Returns
 * the entry count in *entries and the newest MAC in `last` (zeros for an
 * empty log). On a bad entry returns ELO_CORRUPT with *bad_id. */
static int walk_rows(sqlite3 *db, const unsigned char key[32], int64_t *entries,
                     unsigned char last[ELO_MAC_BYTES], int64_t *bad_id)
{
    *entries = 0;
    *bad_id = 0;
    memset(last, 0, ELO_MAC_BYTES);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "SELECT id, ts, actor, actor_name, action, target, details, mac"
                           " FROM audit_log ORDER BY id",
                           -1, &st, NULL))
        return elo_seterr(ELO_SQL, "audit_log: %s", sqlite3_errmsg(db));
    int64_t expect = 1;
    int rc = ELO_OK;
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        const char *f[7];
        for (int i = 1; i < 7; i++)
            f[i] = sqlite3_column_type(st, i) == SQLITE_NULL
                       ? NULL
                       : (const char *)sqlite3_column_text(st, i);
        const char *machex = (const char *)sqlite3_column_text(st, 7);
        if (id != expect) {
            *bad_id = id;
            rc = elo_seterr(ELO_CORRUPT,
                            "audit entry %lld: expected id %lld (entry %lld was deleted)",
                            (long long)id, (long long)expect, (long long)expect);
            break;
        }
        unsigned char want[ELO_MAC_BYTES], got[ELO_MAC_BYTES];
        entry_mac(key, last, id, f[1], f[2], f[3], f[4], f[5], f[6], want);
        if (!machex || elo__unhex(machex, got, ELO_MAC_BYTES) < 0 ||
            sodium_memcmp(got, want, ELO_MAC_BYTES) != 0) {
            *bad_id = id;
            rc = elo_seterr(ELO_CORRUPT,
                            "audit entry %lld: MAC does not match (entry edited, or the chain "
                            "before it changed)",
                            (long long)id);
            break;
        }
        memcpy(last, want, ELO_MAC_BYTES);
        expect++;
        (*entries)++;
    }
    if (rc == ELO_OK && step != SQLITE_DONE)
        rc = elo_seterr(ELO_SQL, "audit_log: %s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return rc;
}

/* Whether a walked log (entries, last) ends where a head (count, head_last)
 * says. ELO_OK, or ELO_CORRUPT with *bad_id and a message. */
static int match_head(int64_t entries, const unsigned char last[ELO_MAC_BYTES], int64_t count,
                      const unsigned char head_last[ELO_MAC_BYTES], int64_t *bad_id)
{
    if (entries != count) {
        *bad_id = entries < count ? entries + 1 : count + 1;
        return elo_seterr(ELO_CORRUPT,
                          "audit log has %lld entries but the chain head records %lld "
                          "(first bad entry %lld)",
                          (long long)entries, (long long)count, (long long)*bad_id);
    }
    if (sodium_memcmp(last, head_last, ELO_MAC_BYTES) != 0) {
        *bad_id = entries;
        return elo_seterr(ELO_CORRUPT, "audit entry %lld: does not match the chain head",
                          (long long)entries);
    }
    return ELO_OK;
}

/* How the log stands against the head files (see DESIGN). */
typedef enum {
    CHAIN_AT_HEAD,          /* no pending head; the log ends at audit.head */
    CHAIN_PENDING_COMMITTED,  /* the interrupted append's row is in: promote */
    CHAIN_PENDING_UNCOMMITTED /* its row never committed: discard the pending head */
} chain_state;

/* Checks the whole log against audit.head and, when there is one, the
 * pending head. On success fills *state and the log's end (*entries,
 * `last`); a pending head is accepted only when it authenticates, is
 * exactly one entry ahead of the head, and the log ends at one of the two.
 * Anything else is ELO_CORRUPT (ELO_SQL, ELO_IO on read errors) with
 * *bad_id when an entry is to blame. Changes no file. */
static int check_chain(sqlite3 *db, const unsigned char key[32], const char *head_path,
                       const char *pending_path, chain_state *state, int64_t *entries,
                       unsigned char last[ELO_MAC_BYTES], int64_t *bad_id)
{
    *entries = 0;
    *bad_id = 0;
    int64_t head_count = 0, pending_count = 0;
    unsigned char head_last[ELO_MAC_BYTES], pending_last[ELO_MAC_BYTES];
    int rc = read_head(head_path, key, &head_count, head_last);
    if (rc == ELO_NOTFOUND)
        return elo_seterr(ELO_CORRUPT, "%s is missing: the audit chain head is lost", head_path);
    if (rc < 0)
        return ELO_CORRUPT;
    int pending = read_head(pending_path, key, &pending_count, pending_last);
    if (pending < 0 && pending != ELO_NOTFOUND)
        return ELO_CORRUPT;
    if (pending == ELO_OK && pending_count != head_count + 1)
        return elo_seterr(ELO_CORRUPT,
                          "%s records %lld entries and %s %lld: a pending head is exactly one "
                          "entry ahead",
                          head_path, (long long)head_count, pending_path,
                          (long long)pending_count);
    if ((rc = walk_rows(db, key, entries, last, bad_id)) < 0)
        return rc;
    *state = CHAIN_AT_HEAD;
    if (pending == ELO_OK) {
        if (match_head(*entries, last, pending_count, pending_last, bad_id) == ELO_OK) {
            *state = CHAIN_PENDING_COMMITTED;
            return ELO_OK;
        }
        *state = CHAIN_PENDING_UNCOMMITTED;
    }
    /* The head's verdict is the message, as without a pending head. */
    return match_head(*entries, last, head_count, head_last, bad_id);
}

/* Moves the pending head over audit.head: a rename within the directory,
 * then an fsync of the directory so that it survives a crash. */
static int promote_pending(elo_server *s)
{
    if (rename(s->pending_path, s->head_path) != 0)
        return elo_seterr(ELO_IO, "%s: rename: %s", s->pending_path, strerror(errno));
    return elo_fsync_dir_of(s->head_path);
}

int elo__audit_open(elo_server *s)
{
    if (sodium_init() < 0)
        return elo_seterr(ELO_INTERNAL, "libsodium failed to initialize");
    sqlite3_stmt *st;
    int64_t rows = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM audit_log", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            rows = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    struct stat sb;
    if (stat(s->key_path, &sb) != 0) {
        if (rows > 0 || stat(s->head_path, &sb) == 0 || stat(s->pending_path, &sb) == 0)
            return elo_seterr(ELO_CORRUPT,
                              "%s is missing but the audit log exists: the chain cannot be "
                              "verified or extended",
                              s->key_path);
        randombytes_buf(s->audit_key, sizeof s->audit_key);
        int rc = write_key(s->key_path, s->audit_key);
        if (rc < 0)
            return rc;
        memset(s->audit_last, 0, sizeof s->audit_last);
        s->audit_count = 0;
        return write_head(s->head_path, s->audit_key, 0, s->audit_last);
    }
    if (sb.st_mode & 077) {
        elo_warn("serve: %s was readable by others; setting mode 0600", s->key_path);
        chmod(s->key_path, 0600);
    }
    int rc = read_key(s->key_path, s->audit_key);
    if (rc < 0)
        return rc;
    chain_state state;
    int64_t bad;
    rc = check_chain(s->db, s->audit_key, s->head_path, s->pending_path, &state, &s->audit_count,
                     s->audit_last, &bad);
    if (rc < 0) {
        char why[512];
        snprintf(why, sizeof why, "%s", elo_errmsg());
        return elo_seterr(ELO_CORRUPT, "audit log check failed: %s (run `elohim audit verify`)",
                          why);
    }
    if (state == CHAIN_PENDING_COMMITTED) {
        elo_warn("serve: audit entry %lld was committed when the last run stopped; its chain "
                 "head is now in place",
                 (long long)s->audit_count);
        return promote_pending(s);
    }
    if (state == CHAIN_PENDING_UNCOMMITTED) {
        elo_warn("serve: an audit entry was not committed when the last run stopped; its "
                 "pending head is discarded");
        if (unlink(s->pending_path) != 0)
            return elo_seterr(ELO_IO, "%s: unlink: %s", s->pending_path, strerror(errno));
        return elo_fsync_dir_of(s->pending_path);
    }
    return ELO_OK;
}

/* Inserts one entry (actor_id, target < 0: NULL) into the open
 * transaction; db_lock held. */
/* An id column: NULL for "none" (negative). */
static void bind_id(sqlite3_stmt *st, int col, int64_t id)
{
    if (id >= 0)
        sqlite3_bind_int64(st, col, id);
    else
        sqlite3_bind_null(st, col);
}

static int insert_row(elo_server *s, int64_t id, const char *ts, int64_t actor_id,
                      const char *actor_name, const char *action, int64_t target,
                      const char *details, const unsigned char mac[ELO_MAC_BYTES])
{
    char machex[2 * ELO_MAC_BYTES + 1];
    elo__hex(mac, ELO_MAC_BYTES, machex);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO audit_log(id, ts, actor, actor_name, action, target,"
                           " details, mac) VALUES(?,?,?,?,?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK)
        return elo_seterr(ELO_SQL, "audit_log: %s", sqlite3_errmsg(s->db));
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, ts, -1, SQLITE_STATIC);
    bind_id(st, 3, actor_id);
    sqlite3_bind_text(st, 4, actor_name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, action, -1, SQLITE_STATIC);
    bind_id(st, 6, target);
    sqlite3_bind_text(st, 7, details, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 8, machex, -1, SQLITE_STATIC);
    int rc = ELO_OK;
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = elo_seterr(ELO_SQL, "audit_log: %s", sqlite3_errmsg(s->db));
    sqlite3_finalize(st);
    return rc;
}

/* The last append committed its row but could not rename its pending
 * head into place: retry that, or rewrite the head from memory when the
 * pending file is gone, so that a new pending head is again one ahead. */
static int catch_up_head(elo_server *s)
{
    if (promote_pending(s) == ELO_OK)
        return ELO_OK;
    if (access(s->pending_path, F_OK) == 0) {
        char why[512];   /* elo_errmsg() is the buffer elo_seterr writes */
        snprintf(why, sizeof why, "%s", elo_errmsg());
        return elo_seterr(ELO_IO, "audit head still behind: %s", why);
    }
    return write_head(s->head_path, s->audit_key, s->audit_count, s->audit_last);
}

/* The test hook: stops an append at `point` as if the process died there. */
static int crash_point(elo_server *s, elo_audit_crash point)
{
    if (s->audit_crash_at != point)
        return ELO_OK;
    return elo_seterr(ELO_INTERNAL, "audit append stopped at test crash point %d", (int)point);
}

/* Logs and counts an audited change that failed for want of its entry
 * (the cause is in elo_errmsg()); returns `rc`. */
static int audit_failed(const char *action, int rc)
{
    elo_metrics_count("elohim_audit_write_failures_total", NULL, 1);
    if (action)
        elo_error("serve: audit entry %s not written, its change rolled back: %s", action,
                  elo_errmsg());
    else
        elo_error("serve: audit log not writable, change refused: %s", elo_errmsg());
    return rc;
}

/* Ends the open transaction with `sql` (COMMIT or ROLLBACK), rolling back
 * if a COMMIT fails and leaves it open, restores db.c's synchronous=NORMAL
 * and releases db_lock. */
static int end_txn(elo_server *s, const char *sql)
{
    int rc = ELO_OK;
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        rc = elo_seterr(ELO_SQL, "audit: %s: %s", sql, sqlite3_errmsg(s->db));
        if (!sqlite3_get_autocommit(s->db))
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    }
    sqlite3_exec(s->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
    pthread_mutex_unlock(&s->db_lock);
    return rc;
}

int elo__audit_begin(elo_server *s)
{
    pthread_mutex_lock(&s->audit_lock);
    if (s->audit_head_behind) {
        int rc = catch_up_head(s);
        if (rc < 0) {
            pthread_mutex_unlock(&s->audit_lock);
            return audit_failed(NULL, rc);
        }
        s->audit_head_behind = 0;
    }
    pthread_mutex_lock(&s->db_lock);
    /* synchronous=FULL for this transaction alone: in WAL mode NORMAL lets
     * a power loss take back a commit, and the head is renamed right after
     * it. IMMEDIATE takes SQLite's write lock now, not halfway through. */
    if (sqlite3_exec(s->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        int rc = elo_seterr(ELO_SQL, "audit: BEGIN: %s", sqlite3_errmsg(s->db));
        sqlite3_exec(s->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
        pthread_mutex_unlock(&s->db_lock);
        pthread_mutex_unlock(&s->audit_lock);
        return audit_failed(NULL, rc);
    }
    return ELO_OK;
}

void elo__audit_rollback(elo_server *s)
{
    if (end_txn(s, "ROLLBACK") < 0)
        elo_error("serve: %s", elo_errmsg());
    pthread_mutex_unlock(&s->audit_lock);
}

int elo__audit_commit(elo_server *s, const elo_principal *actor, const char *action,
                      int64_t target, json_t *details)
{
    char ts[32];
    elo__utc_now(ts);
    json_t *d = details ? json_deep_copy(details) : json_object();
    if (d && actor && actor->founder)
        json_object_set_new(d, "founder", json_true());
    char *dtext = d ? json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(d);
    char actor_txt[32], target_txt[32];
    const char *actor_p = NULL, *target_p = NULL;
    const char *actor_name = actor ? actor->username : "system";
    if (actor) {
        snprintf(actor_txt, sizeof actor_txt, "%lld", (long long)actor->user_id);
        actor_p = actor_txt;
    }
    if (target >= 0) {
        snprintf(target_txt, sizeof target_txt, "%lld", (long long)target);
        target_p = target_txt;
    }
    int64_t id = s->audit_count + 1;
    unsigned char mac[ELO_MAC_BYTES];
    int rc;
    if (!dtext) {
        rc = elo_seterr(ELO_NOMEM, "audit details: out of memory");
        goto rollback;
    }
    entry_mac(s->audit_key, s->audit_last, id, ts, actor_p, actor_name, action, target_p, dtext,
              mac);
    /* The row joins the caller's statements; nothing is durable yet. */
    if (s->audit_fail)
        rc = elo_seterr(ELO_IO, "audit_log: write failed (test fault)");
    else
        rc = insert_row(s, id, ts, actor ? actor->user_id : -1, actor_name, action, target,
                        dtext, mac);
    if (rc < 0 || (rc = crash_point(s, ELO_AUDIT_CRASH_BEFORE_PENDING)) < 0)
        goto rollback;
    /* 1. The head this append will end at, durable before the row is. */
    rc = write_head(s->pending_path, s->audit_key, id, mac);
    if (rc < 0 || (rc = crash_point(s, ELO_AUDIT_CRASH_AFTER_PENDING)) < 0)
        goto rollback;
    /* 2. The caller's change and the row commit together. On failure the
     * pending head stays: a failed commit may still have reached the WAL,
     * and the next start settles it either way; the next append overwrites
     * it. */
    if ((rc = end_txn(s, "COMMIT")) < 0 ||
        (rc = crash_point(s, ELO_AUDIT_CRASH_AFTER_COMMIT)) < 0)
        goto out;
    /* The row is in: the chain moves on whatever happens to the head, so
     * the next append does not reuse the id. */
    s->audit_count = id;
    memcpy(s->audit_last, mac, ELO_MAC_BYTES);
    /* 3. The pending head becomes the head. If that fails, the change and
     * its row stand (a start would promote the pending head, as after a
     * crash here) and the next append retries it first; the failure is
     * logged and counted, but the change succeeded. */
    int head_rc;
    if (rename(s->pending_path, s->head_path) != 0) {
        head_rc = elo_seterr(ELO_IO, "%s: rename: %s", s->pending_path, strerror(errno));
        s->audit_head_behind = 1;
    } else {
        head_rc = elo_fsync_dir_of(s->head_path);
    }
    if (head_rc < 0) {
        elo_metrics_count("elohim_audit_write_failures_total", NULL, 1);
        elo_error("serve: audit head not written (entry %lld stands): %s", (long long)id,
                  elo_errmsg());
    } else {
        rc = crash_point(s, ELO_AUDIT_CRASH_AFTER_RENAME);
    }
    goto out;
rollback:
    end_txn(s, "ROLLBACK");
out:
    pthread_mutex_unlock(&s->audit_lock);
    free(dtext);
    if (rc < 0 && s->audit_crash_at == ELO_AUDIT_CRASH_NONE)
        audit_failed(action, rc);
    return rc;
}

int elo__audit_append(elo_server *s, const elo_principal *actor, const char *action,
                      int64_t target, json_t *details)
{
    int rc = elo__audit_begin(s);
    if (rc < 0)
        return rc;
    return elo__audit_commit(s, actor, action, target, details);
}

#define VERIFY_ATTEMPTS 3

int elo_audit_verify(const char *data_dir, int64_t *entries, int64_t *bad_id)
{
    *entries = 0;
    *bad_id = 0;
    if (sodium_init() < 0)
        return elo_seterr(ELO_INTERNAL, "libsodium failed to initialize");
    char db_path[1100], key_path[1100], head_path[1100], pending_path[1100];
    snprintf(db_path, sizeof db_path, "%s/elohim.db", data_dir);
    snprintf(key_path, sizeof key_path, "%s/audit.key", data_dir);
    snprintf(head_path, sizeof head_path, "%s/audit.head", data_dir);
    snprintf(pending_path, sizeof pending_path, "%s/audit.head.pending", data_dir);
    struct stat sb;
    if (stat(db_path, &sb) != 0)
        return elo_seterr(ELO_NOTFOUND, "%s: no database (is this a data directory?)", db_path);
    unsigned char key[32], last[ELO_MAC_BYTES];
    int rc = read_key(key_path, key);
    if (rc < 0)
        return ELO_CORRUPT;
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        rc = elo_seterr(ELO_SQL, "%s: %s", db_path, db ? sqlite3_errmsg(db) : "cannot open");
        sqlite3_close(db);
        return rc;
    }
    sqlite3_busy_timeout(db, 5000);
    /* A running server may be between the steps of an append while we read
     * the rows and the head files at different moments: a mismatch is
     * checked again a little later, and reported only if it stays. A
     * tampered log stays tampered. */
    chain_state state;
    for (int attempt = 0;; attempt++) {
        rc = check_chain(db, key, head_path, pending_path, &state, entries, last, bad_id);
        if (rc != ELO_CORRUPT || attempt == VERIFY_ATTEMPTS - 1)
            break;
        struct timespec pause = {0, 200 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    sqlite3_close(db);
    sodium_memzero(key, sizeof key);
    if (rc == ELO_OK && state != CHAIN_AT_HEAD)
        elo_warn("audit: %s is from an append that a crash interrupted (entry %s); the next "
                 "`elohim serve` settles it",
                 pending_path, state == CHAIN_PENDING_COMMITTED ? "committed" : "not committed");
    return rc;
}
