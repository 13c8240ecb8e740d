/* body.c - request bodies and responses: strict JSON object parsing with
 * typed field getters (unknown fields ignored, wrong types rejected), JSON
 * error responses, and small hex helpers. Nothing here echoes client input
 * back into an error message, so an error never reflects a secret. */
#include "server-impl.h"

#include <string.h>

int elo__body_parse(const char *data, size_t len, json_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!data || len == 0) {
        snprintf(err, errlen, "request body must be a JSON object");
        return ELO_BADINPUT;
    }
    json_error_t je;
    json_t *v = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
    if (!v) {
        snprintf(err, errlen, "malformed JSON at line %d, column %d (byte %d)", je.line,
                 je.column, je.position);
        return ELO_BADINPUT;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        snprintf(err, errlen, "request body must be a JSON object");
        return ELO_BADINPUT;
    }
    *out = v;
    return ELO_OK;
}

int elo__body_string(json_t *o, const char *key, int required, size_t min_len, size_t max_len,
                     const char **out, char *err, size_t errlen)
{
    json_t *v = o ? json_object_get(o, key) : NULL;
    *out = NULL;
    if (!v) {
        if (!required)
            return ELO_NOTFOUND;
        snprintf(err, errlen, "field '%s' is required", key);
        return ELO_BADINPUT;
    }
    if (!json_is_string(v)) {
        snprintf(err, errlen, "field '%s' must be a string", key);
        return ELO_BADINPUT;
    }
    size_t n = json_string_length(v);
    const char *s = json_string_value(v);
    if (strlen(s) != n) {
        snprintf(err, errlen, "field '%s' must not contain NUL characters", key);
        return ELO_BADINPUT;
    }
    if (n < min_len) {
        snprintf(err, errlen, "field '%s' must be at least %zu characters", key, min_len);
        return ELO_BADINPUT;
    }
    if (n > max_len) {
        snprintf(err, errlen, "field '%s' must be at most %zu characters", key, max_len);
        return ELO_BADINPUT;
    }
    *out = s;
    return ELO_OK;
}

int elo__body_bool(json_t *o, const char *key, int required, int *out, char *err, size_t errlen)
{
    json_t *v = o ? json_object_get(o, key) : NULL;
    if (!v) {
        if (!required)
            return ELO_NOTFOUND;
        snprintf(err, errlen, "field '%s' is required", key);
        return ELO_BADINPUT;
    }
    if (!json_is_boolean(v)) {
        snprintf(err, errlen, "field '%s' must be true or false", key);
        return ELO_BADINPUT;
    }
    *out = json_is_true(v);
    return ELO_OK;
}

int elo__valid_username(const char *name)
{
    size_t n = strlen(name);
    if (n < 3 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

/* ---- responses ------------------------------------------------------------ */

void elo__resp_init(elo_resp *r)
{
    memset(r, 0, sizeof *r);
    r->status = 500;
    r->fd = -1;
    r->content_type = "application/json";
}

void elo__resp_free(elo_resp *r)
{
    elo_free(r->body);
    r->body = NULL;
    r->len = 0;
}

void elo__resp_json(elo_resp *r, int status, json_t *obj)
{
    elo_free(r->body);
    r->body = NULL;
    r->len = 0;
    r->status = status;
    r->content_type = "application/json";
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!text) {
        static const char oom[] = "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";
        r->status = 500;
        r->body = elo_strdup(oom);
        r->len = r->body ? strlen(r->body) : 0;
        return;
    }
    size_t n = strlen(text);
    r->body = elo_malloc(n + 2);
    if (r->body) {
        memcpy(r->body, text, n);
        r->body[n] = '\n';
        r->body[n + 1] = 0;
        r->len = n + 1;
    }
    free(text);
}

void elo__resp_error(elo_resp *r, int status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *o = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
    elo__resp_json(r, status, o);
}

/* ---- hex ------------------------------------------------------------------ */

void elo__hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = 0;
}

static int nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int elo__unhex(const char *in, unsigned char *out, size_t n)
{
    if (strlen(in) != 2 * n)
        return ELO_BADINPUT;
    for (size_t i = 0; i < n; i++) {
        int hi = nibble(in[2 * i]), lo = nibble(in[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return ELO_BADINPUT;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return ELO_OK;
}
