/* db.c - the server's SQLite database (DIR/elohim.db, WAL mode): schema of
 * the server's own tables (users, sessions, permissions, settings,
 * audit_log), key/value settings, and UTC timestamps.
 *
 * DESIGN: one connection serialized by s->db_lock. Every statement is short
 * (indexed lookups, single-row writes), so one connection keeps up with the
 * HTTP workers; nothing slow (password hashing) runs under the lock. */
#include "server-impl.h"

#include <string.h>
#include <sys/stat.h>
#include <time.h>

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS users("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " username TEXT NOT NULL UNIQUE,"
    " pw_hash TEXT NOT NULL,"
    " role TEXT NOT NULL,"
    " created_at TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS sessions("
    " token_hash TEXT PRIMARY KEY,"
    " user_id INTEGER NOT NULL,"
    " founder INTEGER NOT NULL DEFAULT 0,"
    " created_at INTEGER NOT NULL,"
    " expires_at INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS sessions_user ON sessions(user_id);"
    "CREATE TABLE IF NOT EXISTS permissions("
    " user_id INTEGER NOT NULL,"
    " permission TEXT NOT NULL,"
    " granted_by INTEGER,"
    " granted_at TEXT NOT NULL,"
    " PRIMARY KEY(user_id, permission));"
    "CREATE TABLE IF NOT EXISTS settings("
    " key TEXT PRIMARY KEY,"
    " value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS audit_log("
    " id INTEGER PRIMARY KEY,"
    " ts TEXT NOT NULL,"
    " actor INTEGER,"
    " actor_name TEXT NOT NULL,"
    " action TEXT NOT NULL,"
    " target INTEGER,"
    " details TEXT NOT NULL,"
    " mac TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS audit_target ON audit_log(target);"
    "CREATE INDEX IF NOT EXISTS audit_action ON audit_log(action);"
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log"
    " BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;"
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log"
    " BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;";

int elo__db_open(elo_server *s)
{
    int rc = sqlite3_open_v2(s->db_path, &s->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        int st = elo_seterr(ELO_SQL, "%s: %s", s->db_path,
                            s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        sqlite3_close(s->db);
        s->db = NULL;
        return st;
    }
    chmod(s->db_path, 0600);
    sqlite3_busy_timeout(s->db, 5000);
    char *msg = NULL;
    rc = sqlite3_exec(s->db,
                      "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                      " PRAGMA foreign_keys=ON;",
                      NULL, NULL, &msg);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(s->db, schema, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        int st = elo_seterr(ELO_SQL, "%s: %s", s->db_path, msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        sqlite3_close(s->db);
        s->db = NULL;
        return st;
    }
    return ELO_OK;
}

void elo__db_close(elo_server *s)
{
    if (!s->db)
        return;
    sqlite3_finalize(s->st_session);
    sqlite3_finalize(s->st_perm);
    s->st_session = s->st_perm = NULL;
    sqlite3_exec(s->db, "PRAGMA wal_checkpoint(TRUNCATE);", NULL, NULL, NULL);
    if (sqlite3_close(s->db) != SQLITE_OK)
        elo_warn("serve: database did not close cleanly: %s", sqlite3_errmsg(s->db));
    s->db = NULL;
}

int elo__setting_get(elo_server *s, const char *key, char *out, size_t out_len)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT value FROM settings WHERE key=?", -1, &st, NULL))
        return elo_seterr(ELO_SQL, "settings: %s", sqlite3_errmsg(s->db));
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    int result;
    if (rc == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(st, 0);
        snprintf(out, out_len, "%s", v ? v : "");
        result = ELO_OK;
    } else if (rc == SQLITE_DONE) {
        if (out_len)
            out[0] = 0;
        result = ELO_NOTFOUND;
    } else {
        result = elo_seterr(ELO_SQL, "settings: %s", sqlite3_errmsg(s->db));
    }
    sqlite3_finalize(st);
    return result;
}

int elo__setting_set(elo_server *s, const char *key, const char *value)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO settings(key,value) VALUES(?,?)"
                           " ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                           -1, &st, NULL))
        return elo_seterr(ELO_SQL, "settings: %s", sqlite3_errmsg(s->db));
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return elo_seterr(ELO_SQL, "settings: %s", sqlite3_errmsg(s->db));
    return ELO_OK;
}

void elo__utc_now(char out[32])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char date[24];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%.19s.%03dZ", date, (int)(ts.tv_nsec / 1000000 % 1000));
}
