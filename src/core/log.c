/* log.c - leveled logging to stderr (stdout is reserved for results). */
#include "elohim/core.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static int log_level = -1;   /* -1: not yet read from the environment */

static elo_log_level level_from_env(void)
{
    const char *s = getenv("ELOHIM_LOG");
    if (!s)
        return ELO_LOG_WARN;
    if (!strcmp(s, "debug")) return ELO_LOG_DEBUG;
    if (!strcmp(s, "info"))  return ELO_LOG_INFO;
    if (!strcmp(s, "error")) return ELO_LOG_ERROR;
    if (!strcmp(s, "off"))   return ELO_LOG_OFF;
    return ELO_LOG_WARN;
}

void elo_log_set_level(elo_log_level level) { log_level = (int)level; }

elo_log_level elo_log_get_level(void)
{
    if (log_level < 0)
        log_level = (int)level_from_env();
    return (elo_log_level)log_level;
}

void elo_log(elo_log_level level, const char *fmt, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    if (level < elo_log_get_level() || level >= ELO_LOG_OFF)
        return;
    char line[2048];
    int n = snprintf(line, sizeof line, "elohim: %s: ", names[level]);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = strlen(line);
    if (len + 1 < sizeof line && (len == 0 || line[len - 1] != '\n')) {
        line[len++] = '\n';
        line[len] = '\0';
    }
    fputs(line, stderr);   /* one call, so lines from threads do not mix */
}
