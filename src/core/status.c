/* status.c - status strings and the per-thread error detail message. */
#include "elohim/core.h"

#include <stdio.h>
#include <string.h>

static _Thread_local char errmsg_buf[1024];

const char *elo_strstatus(int status)
{
    switch (status) {
#define ELO__X(name, value, msg) case value: return msg;
    ELO_STATUS_MAP(ELO__X)
#undef ELO__X
    default: return "unknown status";
    }
}

int elo_seterr(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errmsg_buf, sizeof errmsg_buf, fmt, ap);
    va_end(ap);
    return status;
}

const char *elo_errmsg(void) { return errmsg_buf; }

void elo_clearerr(void) { errmsg_buf[0] = '\0'; }
