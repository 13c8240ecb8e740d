/* test-audit.c - the audit chain: appends verify, and every kind of
 * tampering (edited row, deleted middle and newest rows, edited head,
 * swapped key) is caught with the first bad entry named; a server will not
 * open a tampered log. An append stopped at each of its crash points
 * (test hook s->audit_crash_at) is settled at the next start, and a
 * pending head that does not fit is reported as tampering. An audited
 * change commits with its entry or not at all: with the entry's insert
 * failing (test hook s->audit_fail), its pending head unwritable, or a
 * crash at each point, the change is there exactly when the entry is. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "server/server-impl.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    char dir[256];
    char data[300];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/elohim-audit-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->data, sizeof f->data, "%s/data", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

/* A data dir with `n` audit entries written through a real server object. */
static void make_log(fixture *f, int n)
{
    elo_server_config cfg;
    elo_server_config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", f->data);
    elo_server *s;
    assert_int_equal(elo_server_open(&cfg, &s), ELO_OK);
    elo_principal who = {.authenticated = 1, .user_id = 1};
    snprintf(who.username, sizeof who.username, "root");
    snprintf(who.role, sizeof who.role, "super_admin");
    for (int i = 0; i < n; i++) {
        json_t *d = json_pack("{s:s,s:i}", "permission", "audit.read", "i", i);
        assert_int_equal(elo__audit_append(s, i % 3 ? &who : NULL, "PERMISSION_GRANTED",
                                           i % 2 ? 2 : -1, d),
                         ELO_OK);
        json_decref(d);
    }
    elo_server_free(s);
}

static void sql(fixture *f, const char *stmt)
{
    char path[400];
    snprintf(path, sizeof path, "%s/elohim.db", f->data);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *err = NULL;
    int rc = sqlite3_exec(db,
                          "DROP TRIGGER IF EXISTS audit_log_no_update;"
                          "DROP TRIGGER IF EXISTS audit_log_no_delete;",
                          NULL, NULL, &err);
    assert_int_equal(rc, SQLITE_OK);
    rc = sqlite3_exec(db, stmt, NULL, NULL, &err);
    if (rc != SQLITE_OK)
        fail_msg("%s: %s", stmt, err);
    sqlite3_close(db);
}

static void test_intact(void **state)
{
    fixture *f = *state;
    make_log(f, 10);
    int64_t n, bad;
    assert_int_equal(elo_audit_verify(f->data, &n, &bad), ELO_OK);
    assert_int_equal(n, 10);
    /* reopening continues the chain */
    make_log(f, 5);
    assert_int_equal(elo_audit_verify(f->data, &n, &bad), ELO_OK);
    assert_int_equal(n, 15);
    char path[400];
    struct stat sb;
    snprintf(path, sizeof path, "%s/audit.key", f->data);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
}

static void test_append_only_trigger(void **state)
{
    fixture *f = *state;
    make_log(f, 2);
    char path[400];
    snprintf(path, sizeof path, "%s/elohim.db", f->data);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_not_equal(sqlite3_exec(db, "UPDATE audit_log SET action='X'", NULL, NULL, NULL),
                         SQLITE_OK);
    assert_non_null(strstr(sqlite3_errmsg(db), "append-only"));
    assert_int_not_equal(sqlite3_exec(db, "DELETE FROM audit_log", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

static void test_edited_row(void **state)
{
    fixture *f = *state;
    make_log(f, 6);
    sql(f, "UPDATE audit_log SET details='{\"permission\":\"users.manage\"}' WHERE id=4");
    int64_t n, bad;
    assert_int_equal(elo_audit_verify(f->data, &n, &bad), ELO_CORRUPT);
    assert_int_equal(bad, 4);
    assert_non_null(strstr(elo_errmsg(), "entry 4"));
    /* the server refuses to run on it */
    elo_server_config cfg;
    elo_server_config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", f->data);
    elo_server *s = NULL;
    assert_int_equal(elo_server_open(&cfg, &s), ELO_CORRUPT);
    assert_null(s);
}

static void test_edited_actor(void **state)
{
    fixture *f = *state;
    make_log(f, 6);
    sql(f, "UPDATE audit_log SET actor_name='someone' WHERE id=2");
    int64_t n, bad;
    assert_int_equal(elo_audit_verify(f->data, &n, &bad), ELO_CORRUPT);
    assert_int_equal(bad, 2);
}

static void test_deleted_middle(void **state)
{
    fixture *f = *state;
    make_log(f, 6);
    sql(f, "DELETE FROM audit_log WHERE id=3");
    int64_t n, bad;
    assert_int_equal(elo_audit_verify(f->data, &n, &bad), ELO_CORRUPT);
    assert_non_null(strstr(elo_errmsg(), "entry 3 was deleted"));
}

static void test_deleted_newest(void **state)
{
    fixture *f = *state;
    make_log(f, 6);
    sql(f, "DELETE FROM audit_log WHERE id=6");
    int64_t n, bad;
    assert_int_equal(elo_audit_verify(f->data, &n, &bad), ELO_CORRUPT);
    assert_int_equal(bad, 6);
    assert_non_null(strstr(elo_errmsg(), "chain head"));
}

static void test_head_and_key(void **state)
{
    fixture *f = *state;
    make_log(f, 3);
    char head[400], key[400], saved[4096];
    snprintf(head, sizeof head, "%s/audit.head", f->data);
    snprintf(key, sizeof key, "%s/audit.key", f->data);
    FILE *h = fopen(head, "r");
    size_t len = fread(saved, 1, sizeof saved - 1, h);
    fclose(h);
    saved[len] = 0;
    /* edited count */
    char *p = strstr(saved, "count 3");
    assert_non_null(p);
    p[6] = '2';
    h = fopen(head, "w");
    fputs(saved, h);
    fclose(h);
    int64_t n, bad;
    assert_int_equal(elo_audit_verify(f->data, &n, &bad), ELO_CORRUPT);
    assert_non_null(strstr(elo_errmsg(), "head"));
    /* a different key */
    p[6] = '3';
    h = fopen(head, "w");
    fputs(saved, h);
    fclose(h);
    assert_int_equal(elo_audit_verify(f->data, &n, &bad), ELO_OK);
    h = fopen(key, "w");
    fputs("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n", h);
    fclose(h);
    assert_int_equal(elo_audit_verify(f->data, &n, &bad), ELO_CORRUPT);
    /* no head at all */
    unlink(head);
    assert_int_equal(elo_audit_verify(f->data, &n, &bad), ELO_CORRUPT);
    assert_non_null(strstr(elo_errmsg(), "missing"));
}

/* ---- crash points and the pending head ------------------------------------ */

static elo_server *open_server(fixture *f)
{
    elo_server_config cfg;
    elo_server_config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", f->data);
    elo_server *s = NULL;
    assert_int_equal(elo_server_open(&cfg, &s), ELO_OK);
    return s;
}

static int append_one(elo_server *s)
{
    json_t *d = json_pack("{s:s}", "permission", "users.read");
    int rc = elo__audit_append(s, NULL, "PERMISSION_GRANTED", 7, d);
    json_decref(d);
    return rc;
}

/* A log of `n` entries, then one append that stops at `point`. */
static void crash_append(fixture *f, int n, elo_audit_crash point)
{
    make_log(f, n);
    elo_server *s = open_server(f);
    s->audit_crash_at = point;
    assert_int_equal(append_one(s), ELO_INTERNAL);
    elo_server_free(s);
}

static void data_path(fixture *f, const char *name, char *out, size_t n)
{
    snprintf(out, n, "%s/%s", f->data, name);
}

static int exists(fixture *f, const char *name)
{
    char path[400];
    data_path(f, name, path, sizeof path);
    return access(path, F_OK) == 0;
}

/* The entry count that audit.head records. */
static long long head_count(fixture *f)
{
    char path[400], text[512] = {0};
    data_path(f, "audit.head", path, sizeof path);
    FILE *h = fopen(path, "r");
    assert_non_null(h);
    size_t len = fread(text, 1, sizeof text - 1, h);
    fclose(h);
    text[len] = 0;
    const char *c = strstr(text, "\ncount ");
    assert_non_null(c);
    return atoll(c + 7);
}

static void copy_file(fixture *f, const char *from, const char *to)
{
    char cmd[1000];
    snprintf(cmd, sizeof cmd, "cp '%s/%s' '%s/%s'", f->data, from, f->data, to);
    assert_int_equal(system(cmd), 0);
}

/* After a start, the log verifies with `want` entries and takes more. */
static void assert_settled(fixture *f, int64_t want)
{
    elo_server *s = open_server(f);
    assert_int_equal(s->audit_count, want);
    assert_false(exists(f, "audit.head.pending"));
    assert_int_equal(head_count(f), want);
    assert_int_equal(append_one(s), ELO_OK);
    elo_server_free(s);
    int64_t n, bad;
    assert_int_equal(elo_audit_verify(f->data, &n, &bad), ELO_OK);
    assert_int_equal(n, want + 1);
}

static void test_crash_before_pending(void **state)
{
    fixture *f = *state;
    crash_append(f, 3, ELO_AUDIT_CRASH_BEFORE_PENDING);
    assert_false(exists(f, "audit.head.pending"));
    int64_t n, bad;
    assert_int_equal(elo_audit_verify(f->data, &n, &bad), ELO_OK);
    assert_int_equal(n, 3);
    assert_settled(f, 3);
}

static void test_crash_after_pending(void **state)
{
    fixture *f = *state;
    crash_append(f, 3, ELO_AUDIT_CRASH_AFTER_PENDING);
    assert_true(exists(f, "audit.head.pending"));
    assert_int_equal(head_count(f), 3);
    /* verify reports the log intact and leaves the files alone */
    int64_t n, bad;
    assert_int_equal(elo_audit_verify(f->data, &n, &bad), ELO_OK);
    assert_int_equal(n, 3);
    assert_true(exists(f, "audit.head.pending"));
    /* the start discards the pending head: the row never committed */
    assert_settled(f, 3);
}

static void test_crash_after_commit(void **state)
{
    fixture *f = *state;
    crash_append(f, 3, ELO_AUDIT_CRASH_AFTER_COMMIT);
    assert_true(exists(f, "audit.head.pending"));
    assert_int_equal(head_count(f), 3);
    int64_t n, bad;
    assert_int_equal(elo_audit_verify(f->data, &n, &bad), ELO_OK);
    assert_int_equal(n, 4);
    /* the start promotes the pending head: the row is in */
    assert_settled(f, 4);
}

static void test_crash_after_rename(void **state)
{
    fixture *f = *state;
    crash_append(f, 3, ELO_AUDIT_CRASH_AFTER_RENAME);
    assert_false(exists(f, "audit.head.pending"));
    int64_t n, bad;
    assert_int_equal(elo_audit_verify(f->data, &n, &bad), ELO_OK);
    assert_int_equal(n, 4);
    assert_settled(f, 4);
}

/* Without its pending head, a committed row is a head behind: reported. */
static void test_crash_pending_deleted(void **state)
{
    fixture *f = *state;
    crash_append(f, 3, ELO_AUDIT_CRASH_AFTER_COMMIT);
    char pending[400];
    data_path(f, "audit.head.pending", pending, sizeof pending);
    assert_int_equal(unlink(pending), 0);
    int64_t n, bad;
    assert_int_equal(elo_audit_verify(f->data, &n, &bad), ELO_CORRUPT);
    assert_int_equal(bad, 4);
    assert_non_null(strstr(elo_errmsg(), "chain head records 3"));
}

/* Rows tampered with beside a pending head fail as they do without one,
 * and the server leaves the files as they are. */
static void test_crash_then_tamper(void **state)
{
    fixture *f = *state;
    crash_append(f, 4, ELO_AUDIT_CRASH_AFTER_COMMIT);
    sql(f, "UPDATE audit_log SET actor_name='someone' WHERE id=5");
    int64_t n, bad;
    assert_int_equal(elo_audit_verify(f->data, &n, &bad), ELO_CORRUPT);
    assert_int_equal(bad, 5);
    elo_server_config cfg;
    elo_server_config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", f->data);
    elo_server *s = NULL;
    assert_int_equal(elo_server_open(&cfg, &s), ELO_CORRUPT);
    assert_true(exists(f, "audit.head.pending"));
    assert_int_equal(head_count(f), 4);
}

static void test_crash_then_delete_older(void **state)
{
    fixture *f = *state;
    /* the pending row did not commit, and the newest committed one is gone:
     * the log matches neither head */
    crash_append(f, 4, ELO_AUDIT_CRASH_AFTER_PENDING);
    sql(f, "DELETE FROM audit_log WHERE id=4");
    int64_t n, bad;
    assert_int_equal(elo_audit_verify(f->data, &n, &bad), ELO_CORRUPT);
    assert_int_equal(bad, 4);
    assert_non_null(strstr(elo_errmsg(), "chain head"));
}

static void test_pending_forged(void **state)
{
    fixture *f = *state;
    crash_append(f, 3, ELO_AUDIT_CRASH_AFTER_COMMIT);
    char pending[400], text[512] = {0};
    data_path(f, "audit.head.pending", pending, sizeof pending);
    FILE *h = fopen(pending, "r");
    size_t len = fread(text, 1, sizeof text - 1, h);
    fclose(h);
    text[len] = 0;
    char *last = strstr(text, "\nlast ");
    assert_non_null(last);
    last[6] = last[6] == '0' ? '1' : '0';
    h = fopen(pending, "w");
    fputs(text, h);
    fclose(h);
    int64_t n, bad;
    assert_int_equal(elo_audit_verify(f->data, &n, &bad), ELO_CORRUPT);
    assert_non_null(strstr(elo_errmsg(), "audit.head.pending"));
    /* garbage is no better */
    h = fopen(pending, "w");
    fputs("elohim-audit-head v1\ncount 4\n", h);
    fclose(h);
    assert_int_equal(elo_audit_verify(f->data, &n, &bad), ELO_CORRUPT);
    assert_non_null(strstr(elo_errmsg(), "malformed"));
}

/* Genuine heads in the wrong places: a pending head equal to the head, or
 * two ahead of a replayed older head. */
static void test_pending_not_one_ahead(void **state)
{
    fixture *f = *state;
    make_log(f, 3);
    copy_file(f, "audit.head", "head-3");
    copy_file(f, "audit.head", "audit.head.pending");
    int64_t n, bad;
    assert_int_equal(elo_audit_verify(f->data, &n, &bad), ELO_CORRUPT);
    assert_non_null(strstr(elo_errmsg(), "exactly one entry ahead"));
    char pending[400];
    data_path(f, "audit.head.pending", pending, sizeof pending);
    unlink(pending);
    make_log(f, 2);
    copy_file(f, "audit.head", "audit.head.pending");
    copy_file(f, "head-3", "audit.head");
    assert_int_equal(elo_audit_verify(f->data, &n, &bad), ELO_CORRUPT);
    assert_non_null(strstr(elo_errmsg(), "exactly one entry ahead"));
    elo_server_config cfg;
    elo_server_config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", f->data);
    elo_server *s = NULL;
    assert_int_equal(elo_server_open(&cfg, &s), ELO_CORRUPT);
}

/* A head rename that fails leaves the row in (the append succeeds); the
 * next append first puts the head in place, and is refused while it
 * cannot; then it goes on. */
static void test_head_rename_fails(void **state)
{
    fixture *f = *state;
    make_log(f, 2);
    elo_server *s = open_server(f);
    char real_head[sizeof s->head_path], blocker[400];
    snprintf(real_head, sizeof real_head, "%s", s->head_path);
    snprintf(blocker, sizeof blocker, "%s/blocker", f->dir);
    assert_int_equal(mkdir(blocker, 0700), 0);
    char inside[450];
    snprintf(inside, sizeof inside, "%s/x", blocker);
    assert_int_equal(mkdir(inside, 0700), 0);
    snprintf(s->head_path, sizeof s->head_path, "%s", blocker);
    assert_int_equal(append_one(s), ELO_OK);
    assert_int_equal(s->audit_count, 3);
    assert_true(s->audit_head_behind);
    assert_true(exists(f, "audit.head.pending"));
    assert_int_equal(append_one(s), ELO_IO);
    assert_int_equal(s->audit_count, 3);
    snprintf(s->head_path, sizeof s->head_path, "%s", real_head);
    assert_int_equal(append_one(s), ELO_OK);
    elo_server_free(s);
    assert_false(exists(f, "audit.head.pending"));
    assert_int_equal(head_count(f), 4);
    int64_t n, bad;
    assert_int_equal(elo_audit_verify(f->data, &n, &bad), ELO_OK);
    assert_int_equal(n, 4);
}

/* ---- audited changes ---------------------------------------------------------- */

/* One audited change: a settings row `key` and its entry. */
static int audited_change(elo_server *s, const char *key)
{
    int rc = elo__audit_begin(s);
    if (rc < 0)
        return rc;
    assert_int_equal(elo__setting_set(s, key, "1"), ELO_OK);
    json_t *d = json_pack("{s:s}", "key", key);
    rc = elo__audit_commit(s, NULL, "SETUP_COMPLETED", -1, d);
    json_decref(d);
    return rc;
}

static int has_setting(elo_server *s, const char *key)
{
    char v[8];
    pthread_mutex_lock(&s->db_lock);
    int rc = elo__setting_get(s, key, v, sizeof v);
    pthread_mutex_unlock(&s->db_lock);
    return rc == ELO_OK;
}

static void assert_verifies(fixture *f, int64_t want)
{
    int64_t n, bad;
    assert_int_equal(elo_audit_verify(f->data, &n, &bad), ELO_OK);
    assert_int_equal(n, want);
}

/* The entry cannot be inserted (the test hook, as a full disk would): the
 * change is rolled back with it, and goes through once the log works. */
static void test_change_fails_with_entry(void **state)
{
    fixture *f = *state;
    make_log(f, 2);
    elo_server *s = open_server(f);
    s->audit_fail = 1;
    assert_int_equal(audited_change(s, "t.a"), ELO_IO);
    assert_false(has_setting(s, "t.a"));
    assert_int_equal(s->audit_count, 2);
    assert_false(exists(f, "audit.head.pending"));
    /* a refusal leaves both locks free and no transaction open */
    assert_int_equal(pthread_mutex_trylock(&s->audit_lock), 0);
    pthread_mutex_unlock(&s->audit_lock);
    assert_int_equal(pthread_mutex_trylock(&s->db_lock), 0);
    assert_true(sqlite3_get_autocommit(s->db));
    pthread_mutex_unlock(&s->db_lock);
    s->audit_fail = 0;
    assert_int_equal(audited_change(s, "t.a"), ELO_OK);
    assert_true(has_setting(s, "t.a"));
    elo_server_free(s);
    assert_verifies(f, 3);
}

/* A real I/O failure: the pending head cannot be written. */
static void test_change_fails_with_pending_head(void **state)
{
    fixture *f = *state;
    make_log(f, 2);
    elo_server *s = open_server(f);
    char real_pending[sizeof s->pending_path];
    snprintf(real_pending, sizeof real_pending, "%s", s->pending_path);
    snprintf(s->pending_path, sizeof s->pending_path, "%s/missing/audit.head.pending", f->dir);
    assert_int_equal(audited_change(s, "t.b"), ELO_IO);
    assert_false(has_setting(s, "t.b"));
    assert_int_equal(s->audit_count, 2);
    snprintf(s->pending_path, sizeof s->pending_path, "%s", real_pending);
    assert_int_equal(audited_change(s, "t.b"), ELO_OK);
    assert_true(has_setting(s, "t.b"));
    elo_server_free(s);
    assert_verifies(f, 3);
}

/* A crash at each point: after the next start the change is there exactly
 * when its entry is. */
static void test_change_crash_points(void **state)
{
    fixture *f = *state;
    static const struct {
        elo_audit_crash point;
        int committed;
    } cases[] = {{ELO_AUDIT_CRASH_BEFORE_PENDING, 0}, {ELO_AUDIT_CRASH_AFTER_PENDING, 0},
                 {ELO_AUDIT_CRASH_AFTER_COMMIT, 1},   {ELO_AUDIT_CRASH_AFTER_RENAME, 1}};
    make_log(f, 2);
    int64_t entries = 2;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char key[16];
        snprintf(key, sizeof key, "t.crash%zu", i);
        elo_server *s = open_server(f);
        s->audit_crash_at = cases[i].point;
        assert_int_equal(audited_change(s, key), ELO_INTERNAL);
        elo_server_free(s);
        entries += cases[i].committed;
        s = open_server(f);
        assert_int_equal(s->audit_count, entries);
        assert_int_equal(has_setting(s, key), cases[i].committed);
        assert_false(exists(f, "audit.head.pending"));
        elo_server_free(s);
        assert_verifies(f, entries);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_intact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_only_trigger, setup, teardown),
        cmocka_unit_test_setup_teardown(test_edited_row, setup, teardown),
        cmocka_unit_test_setup_teardown(test_edited_actor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deleted_middle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deleted_newest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_and_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_before_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_after_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_after_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_after_rename, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_pending_deleted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_then_tamper, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_then_delete_older, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_forged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_not_one_ahead, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_rename_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_change_fails_with_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_change_fails_with_pending_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_change_crash_points, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
