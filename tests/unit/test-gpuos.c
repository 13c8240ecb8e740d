/* test-gpuos.c - the GPU-native runtime on the CPU path: assembler, header
 * validation, VM semantics, our sin/cos, and whole boots (the PRD's five
 * cases and the hard ones: bad files, more apps than slots, an endless
 * loop, an app writing outside its state, determinism of frames). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "elohim/core.h"
#include "elohim/gpuos.h"
#include "gpuos/gpuos-shared.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------ */

static uint8_t *assemble(const char *src, size_t *len)
{
    uint8_t *img = NULL;
    int rc = elo_gasm_assemble(src, strlen(src), "t.gasm", &img, len);
    if (rc != ELO_OK)
        fail_msg("assemble: %s", elo_errmsg());
    return img;
}

static void write_bytes(const char *dir, const char *name, const void *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len)
        assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void write_app(const char *dir, const char *file, const char *src)
{
    size_t len;
    uint8_t *img = assemble(src, &len);
    write_bytes(dir, file, img, len);
    elo_free(img);
}

static char *make_dir(void)
{
    char *d = strdup("/tmp/elohim-gpuos-XXXXXX");
    assert_non_null(mkdtemp(d));
    return d;
}

static void remove_dir(char *d)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    assert_int_equal(system(cmd), 0);
    free(d);
}

static elo_gpuos *boot_dir(const char *dir, uint32_t slots)
{
    const char *dirs[1] = {dir};
    elo_gpuos_config cfg = {.app_dirs = dirs, .app_dir_count = 1, .slots = slots};
    elo_gpuos *os = NULL;
    int rc = elo_gpuos_boot(&cfg, &os);
    if (rc != ELO_OK)
        fail_msg("boot: %s", elo_errmsg());
    return os;
}

static const char *counter_src =
    ".name \"Counter\"\n.state 16\n.vertices 16\n"
    "ld r4, [0]\naddi r4, r4, 1\nst [0], r4\n"
    "movi r0, 1\nmovi r1, 2\nmovi r2, 30\nmovi r3, 40\ncolor #ff0000ff\nquad r0\nhalt\n";

/* ---- assembler ---------------------------------------------------------- */

static void test_gasm_encodes(void **state)
{
    (void)state;
    size_t len;
    uint8_t *img = assemble("; comment\n.name \"T\"\n.state 8\n.vertices 40\n.threads 2\n"
                            ".entry start\nnop_label: halt\nstart: movi r1, 2.5 // c\n"
                            "add r2, r1, r1\njnz r2, start\nst [r1+1], r2\nld r3, [7]\n"
                            "color #11223344\nglyph r0, 'A'\nhalt\n",
                            &len);
    assert_int_equal(len, 64 + 9 * 8);
    assert_memory_equal(img, "GPUAPP", 6);
    assert_int_equal(img[6], 1);
    elo_gpuapp_info info;
    assert_int_equal(elo_gpuapp_parse(img, len, &info), ELO_OK);
    assert_int_equal(info.code_size, 9);
    assert_int_equal(info.entry_point, 1);
    assert_int_equal(info.state_size, 8);
    assert_int_equal(info.vertex_budget, 40);
    assert_int_equal(info.thread_count, 2);
    assert_string_equal(info.name, "T");
    const uint8_t *code = img + 64;
    assert_int_equal(code[8 + 0], GOS_OP_MOVI);
    assert_int_equal(code[8 + 1], 1);
    float imm;
    memcpy(&imm, code + 8 + 4, 4);
    assert_true(imm == 2.5f);
    assert_int_equal(code[24], GOS_OP_JNZ);
    memcpy(&imm, code + 24 + 4, 4);
    assert_true(imm == 1.0f); /* label start = instruction 1 */
    assert_int_equal(code[32], GOS_OP_ST);
    assert_int_equal(code[32 + 2], 2);  /* value r2 */
    assert_int_equal(code[32 + 3], 1);  /* base r1 */
    assert_int_equal(code[40 + 2], GOS_NOREG);
    assert_int_equal(gos_rd32(code + 48 + 4), 0x44332211u);
    char buf[128];
    elo_gpuapp_disasm(code + 32, buf, sizeof buf);
    assert_string_equal(buf, "st [r1+1], r2");
    elo_free(img);
}

static void expect_gasm_error(const char *src, const char *want)
{
    uint8_t *img = NULL;
    size_t len = 0;
    int rc = elo_gasm_assemble(src, strlen(src), "t.gasm", &img, &len);
    assert_int_equal(rc, ELO_BADINPUT);
    assert_null(img);
    if (!strstr(elo_errmsg(), want))
        fail_msg("error '%s' lacks '%s'", elo_errmsg(), want);
}

static void test_gasm_errors(void **state)
{
    (void)state;
    expect_gasm_error(".name \"x\"\nhalt\nfrob r1\n", "t.gasm:3: unknown instruction 'frob'");
    expect_gasm_error(".name \"x\"\njmp nowhere\n", "t.gasm:2: unknown label 'nowhere'");
    expect_gasm_error(".name \"x\"\nmovi r16, 1\n", "t.gasm:2:");
    expect_gasm_error(".name \"x\"\na: halt\na: halt\n", "t.gasm:3: 'a' is already defined");
    expect_gasm_error("halt\n", "missing .name");
    expect_gasm_error(".name \"x\"\n", "no instructions");
    expect_gasm_error(".name \"x\"\nmovi r1, 1e99\n", "t.gasm:2: number out of range");
    expect_gasm_error(".name \"x\"\nadd r1, r2\n", "t.gasm:2: expected ','");
    expect_gasm_error(".name \"x\"\n.state 2000000\nhalt\n", "t.gasm:2:");
    expect_gasm_error(".name \"abcdefghijklmnopqrstuvwxyz\"\nhalt\n", "t.gasm:1:");
    expect_gasm_error(".name \"x\"\nquad r13\n", "t.gasm:2: quad reads");
    expect_gasm_error(".name \"x\"\nhalt extra\n", "t.gasm:2: unexpected");
    expect_gasm_error(".name \"x\"\ncolor #12345\n", "t.gasm:2:");
    expect_gasm_error(".name \"x\"\n.entry nope\nhalt\n", "t.gasm:2: unknown entry label");
}

/* ---- header validation -------------------------------------------------- */

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void test_header_rejects(void **state)
{
    (void)state;
    size_t len;
    uint8_t *good = assemble(counter_src, &len);
    uint8_t *b = malloc(len);
    elo_gpuapp_info info;
    assert_int_equal(elo_gpuapp_parse(good, len, &info), ELO_OK);
    gos_header h;
    /* truncated and empty */
    assert_int_equal(gos_header_check(good, 63, &h), GOS_REASON_TRUNCATED);
    assert_int_equal(gos_header_check(good, 0, &h), GOS_REASON_TRUNCATED);
    assert_int_equal(elo_gpuapp_parse(good, 10, &info), ELO_CORRUPT);
    /* code past the end of the file */
    assert_int_equal(gos_header_check(good, len - 1, &h), GOS_REASON_CODE_RANGE);
#define MUTATE(off, val, want)                                              \
    do {                                                                    \
        memcpy(b, good, len);                                               \
        put32(b + (off), (val));                                            \
        assert_int_equal(gos_header_check(b, len, &h), (want));             \
    } while (0)
    MUTATE(0, 0x41505047u, GOS_REASON_MAGIC);               /* "GPPA" */
    memcpy(b, good, len);
    b[6] = 2;
    assert_int_equal(gos_header_check(b, len, &h), GOS_REASON_VERSION);
    MUTATE(12, 8, GOS_REASON_CODE_RANGE);                   /* code inside the header */
    MUTATE(12, 0xfffffff8u, GOS_REASON_CODE_RANGE);         /* offset overflow */
    MUTATE(16, 0, GOS_REASON_CODE_EMPTY);
    MUTATE(16, 0xffffffffu, GOS_REASON_CODE_EMPTY);
    MUTATE(20, (1u << 20) + 1, GOS_REASON_STATE_SIZE);
    MUTATE(20, 1u << 20, GOS_REASON_OK);
    MUTATE(24, 65537, GOS_REASON_VERTEX_BUDGET);
    MUTATE(28, 0, GOS_REASON_THREADS);
    MUTATE(28, 65, GOS_REASON_THREADS);
    MUTATE(32, 10, GOS_REASON_ENTRY);                       /* code_size is 10 */
    MUTATE(32, 9, GOS_REASON_OK);
    memcpy(b, good, len);
    memset(b + 36, 'A', 24);
    assert_int_equal(gos_header_check(b, len, &h), GOS_REASON_NAME);
    assert_int_equal(elo_gpuapp_parse(b, len, &info), ELO_CORRUPT);
    assert_non_null(strstr(elo_errmsg(), "byte 36"));
#undef MUTATE
    free(b);
    elo_free(good);
}

/* ---- VM ----------------------------------------------------------------- */

typedef struct {
    int rc;
    uint32_t used, emitted;
    float state[16];
    gos_quad quads[8];
} vm_result;

static void vm_run_src(const char *src, uint32_t budget, vm_result *r)
{
    size_t len;
    uint8_t *img = assemble(src, &len);
    gos_header h;
    assert_int_equal(gos_header_check(img, len, &h), GOS_REASON_OK);
    memset(r, 0, sizeof *r);
    gos_vm_env env = {.frame = 120, .mouse_x = 5, .mouse_y = 6, .buttons = 1, .key = 65,
                      .win_w = 300, .win_h = 200};
    r->rc = gos_vm_run(img + h.code_offset, h.code_size, h.entry_point, h.thread_count, r->state,
                       h.state_size / 4, r->quads, 8, &env, budget, &r->used, &r->emitted);
    elo_free(img);
}

static void test_vm_semantics(void **state)
{
    (void)state;
    vm_result r;
    vm_run_src(".name \"a\"\n.state 64\n"
               "movi r1, 7\nmovi r2, 2\nsub r3, r1, r2\nst [0], r3\n"
               "div r3, r1, r2\nst [1], r3\nmod r3, r1, r2\nst [2], r3\n"
               "movi r4, -7\nmod r3, r4, r2\nst [3], r3\n"
               "div r3, r1, r0\nst [4], r3\n"          /* division by zero gives 0 */
               "lt r3, r2, r1\nst [5], r3\neq r3, r2, r1\nst [6], r3\n"
               "frame r3\nst [7], r3\ntime r3\nst [8], r3\ninput r3, 3\nst [9], r3\n"
               "movi r5, 0\nmovi r6, 0\nloop: addi r5, r5, 1\nadd r6, r6, r5\n"
               "movi r7, 10\nlt r8, r5, r7\njnz r8, loop\nst [10], r6\n"
               "movi r9, 2\nst [r9+9], r9\n"        /* state[11] = 2 */
               "floor r3, r4\nabs r3, r3\nst [12], r3\nhalt\n",
               100000, &r);
    assert_int_equal(r.rc, GOS_VM_OK);
    assert_true(r.state[0] == 5.0f);
    assert_true(r.state[1] == 3.5f);
    assert_true(r.state[2] == 1.0f);
    assert_true(r.state[3] == 1.0f);   /* floor-mod: -7 mod 2 = 1 */
    assert_true(r.state[4] == 0.0f);
    assert_true(r.state[5] == 1.0f);
    assert_true(r.state[6] == 0.0f);
    assert_true(r.state[7] == 120.0f);
    assert_true(r.state[8] == 2.0f);
    assert_true(r.state[9] == 65.0f);
    assert_true(r.state[10] == 55.0f);
    assert_true(r.state[11] == 2.0f);
    assert_true(r.state[12] == 7.0f);
}

static void test_vm_lanes_and_emit(void **state)
{
    (void)state;
    vm_result r;
    /* three lanes each emit one quad at x = lane; budget caps at 8 quads */
    vm_run_src(".name \"l\"\n.threads 3\nlane r0\nmovi r1, 4\nmovi r2, 5\nmovi r3, 6\n"
               "color #0a0b0cff\nquad r0\nhalt\n", 1000, &r);
    assert_int_equal(r.rc, GOS_VM_OK);
    assert_int_equal(r.emitted, 3);
    assert_true(r.quads[2].x == 2.0f && r.quads[2].h == 6.0f);
    assert_int_equal(r.quads[0].color, gos_rgba(10, 11, 12, 255));
    /* more emissions than the range holds are dropped, not written */
    vm_run_src(".name \"m\"\nloop: quad r0\naddi r5, r5, 1\nmovi r6, 20\nlt r7, r5, r6\n"
               "jnz r7, loop\nhalt\n", 1000, &r);
    assert_int_equal(r.rc, GOS_VM_OK);
    assert_int_equal(r.emitted, 8);
}

static void test_vm_preempt_and_faults(void **state)
{
    (void)state;
    vm_result r;
    vm_run_src(".name \"spin\"\nloop: jmp loop\n", 5000, &r);
    assert_int_equal(r.rc, GOS_VM_PREEMPTED);
    assert_int_equal(r.used, 5000);
    vm_run_src(".name \"oob\"\n.state 16\nmovi r1, 4\nst [r1], r1\nhalt\n", 100, &r);
    assert_int_equal(r.rc, GOS_VM_FAULT_STATE);
    vm_run_src(".name \"neg\"\n.state 16\nmovi r1, -1\nld r2, [r1]\nhalt\n", 100, &r);
    assert_int_equal(r.rc, GOS_VM_FAULT_STATE);
    vm_run_src(".name \"nan\"\n.state 16\nmovi r1, 0\ndiv r1, r1, r1\nsqrt r2, r1\n"
               "movi r3, -1\nsqrt r3, r3\nst [r3], r3\nhalt\n", 100, &r);
    assert_int_equal(r.rc, GOS_VM_OK); /* sqrt(-1) is 0 in our VM */
    /* falling off the end of the code */
    vm_run_src(".name \"end\"\nmovi r1, 1\n", 100, &r);
    assert_int_equal(r.rc, GOS_VM_FAULT_PC);
    /* a raw bad opcode and a bad register */
    uint8_t code[16] = {99, 0, 0, 0, 0, 0, 0, 0};
    float st[4];
    gos_quad q[1];
    gos_vm_env env = {0};
    uint32_t used, emitted;
    assert_int_equal(gos_vm_run(code, 1, 0, 1, st, 4, q, 1, &env, 10, &used, &emitted),
                     GOS_VM_FAULT_OPCODE);
    uint8_t code2[8] = {GOS_OP_ADD, 1, 40, 2, 0, 0, 0, 0};
    assert_int_equal(gos_vm_run(code2, 1, 0, 1, st, 4, q, 1, &env, 10, &used, &emitted),
                     GOS_VM_FAULT_REG);
}

static void test_sin_cos(void **state)
{
    (void)state;
    double worst = 0;
    for (int i = -20000; i <= 20000; i++) {
        float x = (float)i * 0.001f;
        double e1 = fabs((double)gos_sin(x) - sin((double)x));
        double e2 = fabs((double)gos_cos(x) - cos((double)x));
        if (e1 > worst) worst = e1;
        if (e2 > worst) worst = e2;
    }
    assert_true(worst < 5e-6);
    assert_true(gos_sin(NAN) == 0.0f);
}

/* ---- boots -------------------------------------------------------------- */

static void test_boot_system_apps(void **state)
{
    (void)state;
    elo_gpuos *os = boot_dir("/nonexistent/elohim-no-apps", 64);
    elo_gpuos_stats st;
    elo_gpuos_get_stats(os, &st);
    assert_int_equal(st.app_count, 4);
    assert_int_equal(st.system_app_count, 4);
    assert_int_equal(st.error_count, 0);
    assert_int_equal(st.discovered_count, 0);
    assert_int_equal(st.boot_frames, 1);
    elo_gpuos_app apps[64];
    int n = elo_gpuos_apps(os, apps, 64);
    assert_int_equal(n, 4);
    const char *names[4] = {"Compositor", "Dock", "MenuBar", "WindowChrome"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(apps[i].slot, i);
        assert_string_equal(apps[i].name, names[i]);
        assert_string_equal(apps[i].type, "system");
        assert_true(apps[i].quad_count > 0 || i == 3); /* chrome draws nothing without windows */
    }
    /* the boot frame really drew: menubar pixels at the top, desktop below */
    int w, h;
    const uint8_t *fb = elo_gpuos_framebuffer(os, &w, &h);
    assert_int_equal(w, 1280);
    assert_int_equal(h, 800);
    assert_int_equal(fb[(5 * w + 600) * 4 + 0], 236);
    assert_int_equal(fb[(5 * w + 600) * 4 + 3], 255);
    assert_true(fb[(400 * w + 641) * 4 + 2] > fb[(400 * w + 641) * 4 + 0]); /* blue desktop */
    elo_gpuos_free(os);
}

static void test_boot_three_and_ten(void **state)
{
    (void)state;
    char *dir = make_dir();
    write_app(dir, "a.gpuapp", counter_src);
    write_app(dir, "b.gpuapp", counter_src);
    write_app(dir, "c.gpuapp", counter_src);
    write_bytes(dir, "notes.txt", "hello", 5);
    elo_gpuos *os = boot_dir(dir, 64);
    elo_gpuos_stats st;
    elo_gpuos_get_stats(os, &st);
    assert_int_equal(st.app_count, 7);
    assert_int_equal(st.discovered_count, 3);
    assert_int_equal(st.loaded_count, 3);
    assert_int_equal(st.error_count, 0);
    assert_int_equal(st.index_count, 4);
    elo_gpuos_app apps[64];
    int n = elo_gpuos_apps(os, apps, 64);
    assert_int_equal(n, 7);
    for (int i = 4; i < 7; i++) {
        assert_int_equal(apps[i].slot, i);
        assert_string_equal(apps[i].type, "user");
        assert_string_equal(apps[i].name, "Counter");
        assert_int_equal(apps[i].quad_count, 1);
    }
    assert_non_null(strstr(apps[4].path, "a.gpuapp"));
    assert_non_null(strstr(apps[6].path, "c.gpuapp"));
    elo_gpuos_free(os);
    for (int i = 3; i < 10; i++) {
        char name[32];
        snprintf(name, sizeof name, "app%02d.gpuapp", i);
        write_app(dir, name, counter_src);
    }
    os = boot_dir(dir, 64);
    elo_gpuos_get_stats(os, &st);
    assert_int_equal(st.app_count, 14);
    assert_int_equal(st.loaded_count, 10);
    assert_int_equal(st.error_count, 0);
    elo_gpuos_free(os);
    remove_dir(dir);
}

static void test_boot_stats_one(void **state)
{
    (void)state;
    char *dir = make_dir();
    write_app(dir, "one.gpuapp", counter_src);
    elo_gpuos *os = boot_dir(dir, 64);
    elo_gpuos_stats st;
    elo_gpuos_get_stats(os, &st);
    assert_int_equal(st.discovered_count, 1);
    assert_int_equal(st.loaded_count, 1);
    assert_int_equal(st.error_count, 0);
    assert_true(st.boot_frames > 0);
    assert_int_equal(st.io_requests, 1);
    assert_string_equal(st.device, "cpu");
    elo_gpuos_free(os);
    remove_dir(dir);
}

static void test_boot_bad_files(void **state)
{
    (void)state;
    char *dir = make_dir();
    size_t len;
    uint8_t *good = assemble(counter_src, &len);
    uint8_t *b = malloc(len);
    write_bytes(dir, "00-good.gpuapp", good, len);
    write_bytes(dir, "01-truncated.gpuapp", good, 40);
    memcpy(b, good, len); b[0] = 'X';
    write_bytes(dir, "02-magic.gpuapp", b, len);
    memcpy(b, good, len); b[6] = 9;
    write_bytes(dir, "03-version.gpuapp", b, len);
    write_bytes(dir, "04-code-past-end.gpuapp", good, len - 8);
    memcpy(b, good, len); put32(b + 20, 2u << 20);
    write_bytes(dir, "05-state.gpuapp", b, len);
    memcpy(b, good, len); put32(b + 24, 1u << 20);
    write_bytes(dir, "06-vertices.gpuapp", b, len);
    memcpy(b, good, len); put32(b + 32, 1000);
    write_bytes(dir, "07-entry.gpuapp", b, len);
    write_bytes(dir, "08-empty.gpuapp", "", 0);
    write_bytes(dir, "09-unreadable.gpuapp", good, len);
    char path[600];
    snprintf(path, sizeof path, "%s/09-unreadable.gpuapp", dir);
    chmod(path, 0);
    int root = access(path, R_OK) == 0; /* root reads anything */
    snprintf(path, sizeof path, "%s/10-dir.gpuapp", dir);
    assert_int_equal(mkdir(path, 0755), 0);
    write_bytes(dir, "11-good.gpuapp", good, len);
    elo_gpuos *os = boot_dir(dir, 64);
    elo_gpuos_stats st;
    elo_gpuos_get_stats(os, &st);
    assert_int_equal(st.discovered_count, 12);
    assert_int_equal(st.loaded_count, root ? 3 : 2);
    assert_int_equal(st.error_count, root ? 9 : 10);
    assert_int_equal(st.app_count, root ? 7 : 6);
    elo_gpuos_reject rej[16];
    int n = elo_gpuos_rejects(os, rej, 16);
    assert_int_equal(n, (int)st.error_count);
    int want[] = {GOS_REASON_TRUNCATED, GOS_REASON_MAGIC, GOS_REASON_VERSION,
                  GOS_REASON_CODE_RANGE, GOS_REASON_STATE_SIZE, GOS_REASON_VERTEX_BUDGET,
                  GOS_REASON_ENTRY, GOS_REASON_TRUNCATED};
    for (int i = 0; i < 8; i++)
        assert_int_equal(rej[i].reason, want[i]);
    assert_non_null(strstr(rej[n - 1].path, "10-dir.gpuapp"));
    assert_int_equal(rej[n - 1].reason, GOS_REASON_READ);
    /* the good apps run and the desktop draws */
    elo_gpuos_app apps[64];
    int na = elo_gpuos_apps(os, apps, 64);
    assert_string_equal(apps[na - 1].status, "running");
    assert_int_equal(elo_gpuos_run_frames(os, 2, NULL), ELO_OK);
    elo_gpuos_free(os);
    free(b);
    elo_free(good);
    remove_dir(dir);
}

static void test_boot_more_apps_than_slots(void **state)
{
    (void)state;
    char *dir = make_dir();
    for (int i = 0; i < 10; i++) {
        char name[32];
        snprintf(name, sizeof name, "app%02d.gpuapp", i);
        write_app(dir, name, counter_src);
    }
    elo_gpuos *os = boot_dir(dir, 8);
    elo_gpuos_stats st;
    elo_gpuos_get_stats(os, &st);
    assert_int_equal(st.app_count, 8);
    assert_int_equal(st.loaded_count, 4);
    assert_int_equal(st.no_slot_count, 6);
    assert_int_equal(st.error_count, 0);
    elo_gpuos_app apps[8];
    assert_int_equal(elo_gpuos_apps(os, apps, 8), 8);
    assert_non_null(strstr(apps[7].path, "app03.gpuapp")); /* first come, first served */
    assert_int_equal(elo_gpuos_run_frames(os, 1, NULL), ELO_OK);
    elo_gpuos_free(os);
    remove_dir(dir);
}

static void test_boot_endless_loop_and_oob(void **state)
{
    (void)state;
    char *dir = make_dir();
    write_app(dir, "a-spin.gpuapp", ".name \"Spin\"\nloop: jmp loop\n");
    write_app(dir, "b-oob.gpuapp", ".name \"Wild\"\n.state 16\nmovi r1, 1000\n"
                                   "st [r1], r1\nhalt\n");
    write_app(dir, "c-counter.gpuapp", counter_src);
    const char *dirs[1] = {dir};
    elo_gpuos_config cfg = {.app_dirs = dirs, .app_dir_count = 1, .budget = 20000};
    elo_gpuos *os;
    assert_int_equal(elo_gpuos_boot(&cfg, &os), ELO_OK);
    assert_int_equal(elo_gpuos_run_frames(os, 4, NULL), ELO_OK);
    elo_gpuos_app apps[64];
    int n = elo_gpuos_apps(os, apps, 64);
    assert_int_equal(n, 7);
    assert_string_equal(apps[4].name, "Spin");
    assert_string_equal(apps[4].status, "running");
    assert_int_equal(apps[4].preempt_count, 5);     /* boot frame + 4 */
    assert_int_equal(apps[4].last_instr, 20000);
    assert_string_equal(apps[5].name, "Wild");
    assert_string_equal(apps[5].status, "faulted");
    assert_int_equal(apps[5].fault_code, GOS_VM_FAULT_STATE);
    assert_string_equal(apps[6].status, "running");
    assert_int_equal(apps[6].quad_count, 1);
    elo_gpuos_stats st;
    elo_gpuos_get_stats(os, &st);
    assert_int_equal(st.fault_count, 1);
    assert_int_equal(st.frame, 5);
    /* WindowChrome: the faulted app's title bar is red, the focused one's
     * blue, the other grey (windows on a 3-column grid from x = 60) */
    int w, h;
    const uint8_t *fb = elo_gpuos_framebuffer(os, &w, &h);
    const uint8_t *spin = fb + ((size_t)50 * w + 60 + 250) * 4;
    const uint8_t *wild = fb + ((size_t)50 * w + 460 + 250) * 4;
    const uint8_t *counter = fb + ((size_t)50 * w + 860 + 250) * 4;
    assert_int_equal(spin[0], 70);
    assert_int_equal(wild[0], 190);
    assert_int_equal(wild[1], 40);
    assert_int_equal(counter[2], 200);
    /* the counter's red quad at (1, 2) inside its content, which starts at
     * (860, 68) */
    const uint8_t *quad = fb + ((size_t)(68 + 2) * w + 860 + 1) * 4;
    assert_int_equal(quad[0], 255);
    assert_int_equal(quad[1], 0);
    /* the faulted app's neighbours were not written: the counter's state
     * advanced once per frame, visible as its quad still being drawn */
    elo_gpuos_free(os);
    remove_dir(dir);
}

static void test_frames_are_pure(void **state)
{
    (void)state;
    char *dir = make_dir();
    write_app(dir, "a.gpuapp", counter_src);
    write_app(dir, "b.gpuapp", ".name \"Wave\"\n.threads 4\nlane r5\ntime r6\nadd r6, r6, r5\n"
                               "sin r7, r6\nmuli r1, r7, 50\naddi r1, r1, 80\nmuli r0, r5, 40\n"
                               "movi r2, 30\nmovi r3, 20\nhash r8, r6\nmovi r9, 0.5\n"
                               "movi r10, 0.25\nrgb r8\nquad r0\nhalt\n");
    elo_gpuos *a = boot_dir(dir, 64), *b = boot_dir(dir, 64);
    assert_int_equal(elo_gpuos_frame_hash(a), elo_gpuos_frame_hash(b));
    assert_int_equal(elo_gpuos_run_frames(a, 7, NULL), ELO_OK);
    assert_int_equal(elo_gpuos_run_frames(b, 3, NULL), ELO_OK);
    assert_true(elo_gpuos_frame_hash(a) != elo_gpuos_frame_hash(b));
    assert_int_equal(elo_gpuos_run_frames(b, 4, NULL), ELO_OK);
    assert_int_equal(elo_gpuos_frame_hash(a), elo_gpuos_frame_hash(b));
    /* input: a click on the first dock icon focuses the first user app */
    elo_gpuos_input in = {.mouse_x = 0, .mouse_y = 780, .buttons = 1};
    elo_gpuos_stats st;
    elo_gpuos_get_stats(a, &st);
    assert_int_equal(st.focused_slot, 5);
    in.mouse_x = 1280 / 2 - 40;
    assert_int_equal(elo_gpuos_run_frames(a, 1, &in), ELO_OK);
    elo_gpuos_get_stats(a, &st);
    assert_int_equal(st.focused_slot, 4);
    /* a stop request ends the next run before its first frame, once */
    elo_gpuos_stop(b);
    assert_int_equal(elo_gpuos_run_frames(b, 10, NULL), ELO_OK);
    elo_gpuos_get_stats(b, &st);
    assert_int_equal(st.frame, 8);
    assert_int_equal(elo_gpuos_run_frames(b, 2, NULL), ELO_OK);
    elo_gpuos_get_stats(b, &st);
    assert_int_equal(st.frame, 10);
    elo_gpuos_free(a);
    elo_gpuos_free(b);
    remove_dir(dir);
}

/* --events scripts: per-frame events, the mouse resting between lines,
 * and every kind of bad line named by its line number. */
static void test_events(void **state)
{
    (void)state;
    elo_gpuos_input in[6];
    const char *ok = "{\"frame\": 1, \"mouse\": [600, 780], \"buttons\": 1}\r\n\n  \n"
                     "{\"frame\": 3, \"key\": 65, \"unknown\": {\"x\": 1}}\n"
                     "{\"frame\": 4, \"mouse\": [-5.5, 1e3]}";
    assert_int_equal(elo_gpuos_parse_events("e", ok, strlen(ok), 6, in), ELO_OK);
    assert_true(in[0].mouse_x == 0 && in[0].mouse_y == 0 && in[0].buttons == 0);
    assert_true(in[1].mouse_x == 600 && in[1].mouse_y == 780 && in[1].buttons == 1);
    assert_true(in[2].mouse_x == 600 && in[2].buttons == 0 && in[2].key == 0);
    assert_true(in[3].mouse_y == 780 && in[3].key == 65);
    assert_true(in[4].mouse_x == -5.5f && in[4].mouse_y == 1000 && in[4].key == 0);
    assert_true(in[5].mouse_x == -5.5f && in[5].mouse_y == 1000);
    assert_int_equal(elo_gpuos_parse_events("e", "", 0, 0, in), ELO_OK);
    static const struct {
        const char *text, *msg;
    } bad[] = {
        {"{\"frame\": 6}", "e:1: \"frame\" 6 is outside 0..5"},
        {"{\"frame\": 2}\n{\"frame\": 2}", "e:2: frame 2 is not after"},
        {"{\"frame\": 1.5}", "e:1: \"frame\" must be an integer"},
        {"{\"key\": 1}", "e:1: \"frame\" is missing"},
        {"[1, 2]", "e:1: each line must be a JSON object"},
        {"{\"frame\": 0, \"mouse\": [1, \"2\"]}", "e:1: \"mouse\" must be [x, y]"},
        {"{\"frame\": 0, \"mouse\": [1, 2, 3]}", "e:1: \"mouse\" must be [x, y]"},
        {"{\"frame\": 0, \"mouse\": [1e300, 2]}", "e:1: \"mouse\" coordinates"},
        {"{\"frame\": 0, \"buttons\": 256}", "e:1: \"buttons\" 256 is outside"},
        {"{\"frame\": 0, \"key\": -1}", "e:1: \"key\" -1 is outside"},
        {"{\"frame\": 0, \"frame\": 1}", "e:1: not JSON"},
        {"\n\n{\"frame\": 0", "e:3: not JSON"},                 /* truncated */
        {"{\"frame\": 0} {\"frame\": 1}", "e:1: not JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = elo_gpuos_parse_events("e", bad[i].text, strlen(bad[i].text), 6, in);
        if (rc != ELO_BADINPUT || !strstr(elo_errmsg(), bad[i].msg))
            fail_msg("'%s': rc %d, '%s'", bad[i].text, rc, elo_errmsg());
    }
    /* an oversized line; events with no frames to run */
    char *big = malloc(5000);
    memset(big, ' ', 5000);
    memcpy(big, "{\"frame\": 0}", 12);
    assert_int_equal(elo_gpuos_parse_events("e", big, 5000, 6, in), ELO_BADINPUT);
    assert_non_null(strstr(elo_errmsg(), "longer than 4096"));
    free(big);
    assert_int_equal(elo_gpuos_parse_events("e", "{\"frame\": 0}", 12, 0, in), ELO_BADINPUT);
}

/* The CUDA raster's algorithm, run here in C: per 16x16 tile, the draws in
 * chunks of 256, compacted in order; each pixel starts at the last opaque
 * draw of the chunk that covers the whole tile. It must give the CPU
 * path's framebuffer exactly. */
static void test_gpu_raster_algorithm(void **state)
{
    (void)state;
    char *dir = make_dir();
    write_app(dir, "a.gpuapp", counter_src);
    write_app(dir, "b.gpuapp", ".name \"Glass\"\n.threads 3\nlane r5\nmuli r0, r5, 60\n"
                               "movi r1, 20\nmovi r2, 150\nmovi r3, 120\ncolor #20c04060\nquad r0\n"
                               "addi r0, r0, 10\nmovi r2, 12\nmovi r3, 16\ncolor #ffffffc0\n"
                               "glyph r0, 'G'\nhalt\n");
    for (int i = 0; i < 30; i++) {
        char name[32];
        snprintf(name, sizeof name, "c%02d.gpuapp", i);
        write_app(dir, name, counter_src);
    }
    elo_gpuos *os = boot_dir(dir, 64);
    assert_int_equal(elo_gpuos_run_frames(os, 3, NULL), ELO_OK);
    uint32_t max = 1u << 16;
    int32_t *raw = malloc((size_t)max * 24);
    int n = elo_gpuos_draw_list(os, raw, max);
    assert_true(n > 256); /* more than one chunk */
    int w, h;
    const uint8_t *fb = elo_gpuos_framebuffer(os, &w, &h);
    gos_draw *d = malloc((size_t)n * sizeof *d);
    for (int i = 0; i < n; i++) {
        d[i].x0 = raw[i * 6]; d[i].y0 = raw[i * 6 + 1];
        d[i].x1 = raw[i * 6 + 2]; d[i].y1 = raw[i * 6 + 3];
        d[i].color = (uint32_t)raw[i * 6 + 4]; d[i].glyph = (uint32_t)raw[i * 6 + 5];
    }
    long mismatches = 0;
    gos_draw list[256];
    for (int ty = 0; ty < h; ty += GOS_TILE)
        for (int tx = 0; tx < w; tx += GOS_TILE) {
            uint32_t px[GOS_TILE * GOS_TILE];
            for (int k = 0; k < GOS_TILE * GOS_TILE; k++)
                px[k] = 0xff000000u;
            for (int c = 0; c < n; c += 256) {
                int m = 0, cover = -1;
                for (int t = 0; t < 256 && c + t < n; t++) {
                    const gos_draw *e = &d[c + t];
                    if (!gos_draw_overlaps(e, tx, ty, tx + GOS_TILE, ty + GOS_TILE))
                        continue;
                    if (!e->glyph && (e->color >> 24) == 255 && e->x0 <= tx &&
                        e->x1 >= tx + GOS_TILE && e->y0 <= ty && e->y1 >= ty + GOS_TILE)
                        cover = m;
                    list[m++] = *e;
                }
                for (int k = 0; k < GOS_TILE * GOS_TILE; k++)
                    for (int q = cover >= 0 ? cover : 0; q < m; q++)
                        px[k] = gos_shade(&list[q], tx + k % GOS_TILE, ty + k / GOS_TILE, px[k]);
            }
            for (int k = 0; k < GOS_TILE * GOS_TILE; k++) {
                uint32_t want;
                memcpy(&want, fb + ((size_t)(ty + k / GOS_TILE) * w + tx + k % GOS_TILE) * 4, 4);
                mismatches += want != px[k];
            }
        }
    assert_int_equal(mismatches, 0);
    free(d);
    free(raw);
    elo_gpuos_free(os);
    remove_dir(dir);
}

static void test_ring_wraps(void **state)
{
    (void)state;
    /* more requests than the ring holds: 300 apps through 256 slots */
    char *dir = make_dir();
    size_t len;
    uint8_t *img = assemble(counter_src, &len);
    for (int i = 0; i < 300; i++) {
        char name[32];
        snprintf(name, sizeof name, "a%03d.gpuapp", i);
        write_bytes(dir, name, img, len);
    }
    elo_free(img);
    const char *dirs[1] = {dir};
    elo_gpuos_config cfg = {.app_dirs = dirs, .app_dir_count = 1, .slots = 512, .load_max = 290};
    elo_gpuos *os;
    assert_int_equal(elo_gpuos_boot(&cfg, &os), ELO_OK);
    elo_gpuos_stats st;
    elo_gpuos_get_stats(os, &st);
    assert_int_equal(st.discovered_count, 300);
    assert_int_equal(st.loaded_count, 290);
    assert_int_equal(st.io_requests, 290);
    assert_int_equal(st.error_count, 0);
    assert_int_equal(st.app_count, 294);
    elo_gpuos_free(os);
    remove_dir(dir);
}

static void test_png(void **state)
{
    (void)state;
    elo_gpuos *os = boot_dir("/nonexistent/elohim-no-apps", 64);
    char path[] = "/tmp/elohim-gpuos-png-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(elo_gpuos_write_png(os, path), ELO_OK);
    FILE *f = fopen(path, "rb");
    uint8_t head[24];
    assert_int_equal(fread(head, 1, 24, f), 24);
    fclose(f);
    assert_memory_equal(head, "\x89PNG\r\n\x1a\n", 8);
    assert_int_equal(head[16] << 24 | head[17] << 16 | head[18] << 8 | head[19], 1280);
    assert_int_equal(head[20] << 24 | head[21] << 16 | head[22] << 8 | head[23], 800);
    unlink(path);
    assert_int_equal(elo_gpuos_write_png(os, "/nonexistent/dir/x.png"), ELO_IO);
    elo_gpuos_free(os);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gasm_encodes),
        cmocka_unit_test(test_gasm_errors),
        cmocka_unit_test(test_header_rejects),
        cmocka_unit_test(test_vm_semantics),
        cmocka_unit_test(test_vm_lanes_and_emit),
        cmocka_unit_test(test_vm_preempt_and_faults),
        cmocka_unit_test(test_sin_cos),
        cmocka_unit_test(test_boot_system_apps),
        cmocka_unit_test(test_boot_three_and_ten),
        cmocka_unit_test(test_boot_stats_one),
        cmocka_unit_test(test_boot_bad_files),
        cmocka_unit_test(test_boot_more_apps_than_slots),
        cmocka_unit_test(test_boot_endless_loop_and_oob),
        cmocka_unit_test(test_frames_are_pure),
        cmocka_unit_test(test_events),
        cmocka_unit_test(test_gpu_raster_algorithm),
        cmocka_unit_test(test_ring_wraps),
        cmocka_unit_test(test_png),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
