/* test-audit.c - the audit chain: appends verify, and every kind of
 * tampering (edited row, deleted middle and newest rows, edited head,
 * swapped key) is caught with the first bad entry named; a server will not
 * open a tampered log. */
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
