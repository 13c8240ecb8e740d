/* cli.c - helpers shared by the subcommands. */
#include "cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_fail(int code, const char *cmd, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "elohim %s: %s\n", cmd, msg);
    return code;
}

int cli_status_fail(const char *cmd, int status)
{
    const char *detail = elo_errmsg();
    fprintf(stderr, "elohim %s: %s\n", cmd, *detail ? detail : elo_strstatus(status));
    return (status == ELO_NODEVICE || status == ELO_BADINPUT) ? CLI_USAGE : CLI_FAIL;
}

elo_backend *cli_backend(const char *cmd, elo_device_kind requested, elo_op op, double work)
{
    elo_device_kind kind = elo_backend_choose(requested, op, work);
    elo_backend *b = NULL;
    int rc = elo_backend_get(kind, &b);
    if (rc < 0) {
        fprintf(stderr, "elohim %s: --device %s: %s\n", cmd, elo_device_name(requested),
                elo_errmsg());
        return NULL;
    }
    if (requested == ELO_DEVICE_AUTO)
        elo_info("%s: device auto chose %s", cmd, elo_device_name(b->kind));
    return b;
}

FILE *cli_popen_peer(const char *cmd)
{
    const char *unset = elo_backend_forced_env();
    if (!unset)
        return popen(cmd, "r");
    size_t n = strlen(cmd) + strlen(unset) + 16;
    char *full = malloc(n);
    if (!full)
        return NULL;
    snprintf(full, n, "env -u %s %s", unset, cmd);
    FILE *p = popen(full, "r");
    free(full);
    return p;
}

void cli_print_json(json_t *obj)
{
    char *s = json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(9));
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        free(s);
    }
    json_decref(obj);
}
