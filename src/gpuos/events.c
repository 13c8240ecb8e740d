/* events.c - input-event scripts for `elohim boot --events`: JSON Lines
 * turned into one event set per frame (see elo_gpuos_parse_events). A frame
 * is a pure function of the apps, the frame number and its events, so a
 * script replays the same frames on the CPU and the GPU. */
#include "elohim/core.h"
#include "elohim/gpuos.h"

#include <jansson.h>
#include <math.h>
#include <string.h>

#define MOUSE_LIMIT 1e6       /* screen pixels either way: off-screen allowed */
#define LINE_MAX_BYTES 4096

static int bad(const char *name, long line, const char *msg)
{
    return elo_seterr(ELO_BADINPUT, "%s:%ld: %s", name, line, msg);
}

/* An integer field in [lo, hi]; *out untouched when absent. */
static int get_uint(const char *name, long line, json_t *o, const char *key, json_int_t lo,
                    json_int_t hi, json_int_t *out, int required)
{
    json_t *v = json_object_get(o, key);
    if (!v) {
        if (required)
            return elo_seterr(ELO_BADINPUT, "%s:%ld: \"%s\" is missing", name, line, key);
        return ELO_OK;
    }
    if (!json_is_integer(v))
        return elo_seterr(ELO_BADINPUT, "%s:%ld: \"%s\" must be an integer", name, line, key);
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return elo_seterr(ELO_BADINPUT, "%s:%ld: \"%s\" %lld is outside %lld..%lld", name,
                          line, key, (long long)x, (long long)lo, (long long)hi);
    *out = x;
    return ELO_OK;
}

static int parse_line(const char *name, long line, const char *s, size_t n, uint32_t frames,
                      int64_t *last_frame, float mouse[2], elo_gpuos_input *out)
{
    json_error_t jerr;
    json_t *o = json_loadb(s, n, JSON_REJECT_DUPLICATES, &jerr);
    if (!o)
        return elo_seterr(ELO_BADINPUT, "%s:%ld: not JSON: %s", name, line, jerr.text);
    int rc = ELO_OK;
    json_int_t frame = -1, buttons = 0, key = 0;
    if (!json_is_object(o)) {
        rc = bad(name, line, "each line must be a JSON object");
        goto out;
    }
    if ((rc = get_uint(name, line, o, "frame", 0, (json_int_t)frames - 1, &frame, 1)) < 0 ||
        (rc = get_uint(name, line, o, "buttons", 0, 255, &buttons, 0)) < 0 ||
        (rc = get_uint(name, line, o, "key", 0, 0x10ffff, &key, 0)) < 0)
        goto out;
    if (frame <= *last_frame) {
        rc = elo_seterr(ELO_BADINPUT, "%s:%ld: frame %lld is not after the previous line's %lld",
                        name, line, (long long)frame, (long long)*last_frame);
        goto out;
    }
    /* The mouse rests where the last line put it until this frame. */
    for (int64_t f = *last_frame + 1; f < frame; f++) {
        out[f].mouse_x = mouse[0];
        out[f].mouse_y = mouse[1];
    }
    json_t *m = json_object_get(o, "mouse");
    if (m) {
        if (!json_is_array(m) || json_array_size(m) != 2 ||
            !json_is_number(json_array_get(m, 0)) || !json_is_number(json_array_get(m, 1))) {
            rc = bad(name, line, "\"mouse\" must be [x, y], two numbers");
            goto out;
        }
        for (int i = 0; i < 2; i++) {
            double v = json_number_value(json_array_get(m, i));
            if (!(fabs(v) <= MOUSE_LIMIT)) {
                rc = bad(name, line, "\"mouse\" coordinates must be within +-1000000 pixels");
                goto out;
            }
            mouse[i] = (float)v;
        }
    }
    out[frame].mouse_x = mouse[0];
    out[frame].mouse_y = mouse[1];
    out[frame].buttons = (uint32_t)buttons;
    out[frame].key = (uint32_t)key;
    *last_frame = frame;
out:
    json_decref(o);
    return rc;
}

int elo_gpuos_parse_events(const char *name, const char *text, size_t len, uint32_t frames,
                           elo_gpuos_input *out)
{
    memset(out, 0, (size_t)frames * sizeof *out);
    float mouse[2] = {0, 0};
    int64_t last = -1;
    long line = 0;
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t n = nl ? (size_t)(nl - (text + i)) : len - i;
        const char *s = text + i;
        i += n + (nl ? 1 : 0);
        line++;
        if (n > LINE_MAX_BYTES)
            return bad(name, line, "line longer than 4096 bytes");
        size_t k = 0;
        while (k < n && (s[k] == ' ' || s[k] == '\t' || s[k] == '\r'))
            k++;
        if (k == n)
            continue;
        if (frames == 0)
            return bad(name, line, "events given but no frames are run (--frames 0)");
        int rc = parse_line(name, line, s, n, frames, &last, mouse, out);
        if (rc < 0)
            return rc;
    }
    for (int64_t f = last + 1; f < (int64_t)frames; f++) {
        out[f].mouse_x = mouse[0];
        out[f].mouse_y = mouse[1];
    }
    return ELO_OK;
}
