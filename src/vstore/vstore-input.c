/* vstore-input.c - readers for the vector and id files `elohim vec` takes:
 * .npy (NumPy format 1.0-3.0: float32 2-D vectors, int64 1-D ids),
 * .fvecs (ANN-benchmarks: per vector an int32 dimension then the floats)
 * and .jsonl (one JSON array per line); ids also as plain text, one integer
 * per line. Every parser works on a memory buffer (the file is mmap'd), is
 * bounds-checked, and names the file with the line or byte offset of the
 * first problem. */
#include "elohim/vstore.h"

#include <ctype.h>
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <string.h>

/* ---- .npy ---------------------------------------------------------------- */

typedef struct {
    char descr[16];
    int fortran;
    int ndim;
    uint64_t shape[2];
    size_t data_offset;
} npy_header;

/* Finds `'key':` in the header dict; returns a pointer after the colon. */
static const char *npy_find(const char *dict, size_t len, const char *key)
{
    size_t klen = strlen(key);
    for (size_t i = 0; i + klen + 2 < len; i++) {
        if ((dict[i] == '\'' || dict[i] == '"') && !memcmp(dict + i + 1, key, klen) &&
            dict[i + 1 + klen] == dict[i]) {
            size_t j = i + 2 + klen;
            while (j < len && dict[j] == ' ')
                j++;
            if (j < len && dict[j] == ':') {
                j++;
                while (j < len && dict[j] == ' ')
                    j++;
                return j < len ? dict + j : NULL;
            }
        }
    }
    return NULL;
}

static int npy_parse_header(const char *name, const uint8_t *data, size_t size, npy_header *out)
{
    memset(out, 0, sizeof *out);
    if (size < 10 || memcmp(data, "\x93NUMPY", 6) != 0)
        return elo_seterr(ELO_BADINPUT, "%s: not a .npy file (bad magic)", name);
    unsigned major = data[6];
    size_t hlen, hstart;
    if (major == 1) {
        hlen = (size_t)data[8] | ((size_t)data[9] << 8);
        hstart = 10;
    } else if (major == 2 || major == 3) {
        if (size < 12)
            return elo_seterr(ELO_BADINPUT, "%s: truncated .npy header", name);
        hlen = (size_t)data[8] | ((size_t)data[9] << 8) | ((size_t)data[10] << 16) |
               ((size_t)data[11] << 24);
        hstart = 12;
    } else {
        return elo_seterr(ELO_BADINPUT, "%s: .npy format version %u is not supported", name, major);
    }
    if (hlen > 65536 || hstart + hlen > size)
        return elo_seterr(ELO_BADINPUT, "%s: truncated .npy header (%zu bytes at offset %zu)",
                          name, hlen, hstart);
    const char *dict = (const char *)data + hstart;
    out->data_offset = hstart + hlen;

    const char *d = npy_find(dict, hlen, "descr");
    if (!d || (*d != '\'' && *d != '"'))
        return elo_seterr(ELO_BADINPUT, "%s: .npy header has no descr", name);
    char quote = *d++;
    size_t n = 0;
    while (d + n < dict + hlen && d[n] != quote && n < sizeof out->descr - 1)
        n++;
    if (d + n >= dict + hlen || d[n] != quote)
        return elo_seterr(ELO_BADINPUT, "%s: bad descr in the .npy header", name);
    memcpy(out->descr, d, n);
    out->descr[n] = 0;

    const char *f = npy_find(dict, hlen, "fortran_order");
    if (!f)
        return elo_seterr(ELO_BADINPUT, "%s: .npy header has no fortran_order", name);
    size_t rest = (size_t)(dict + hlen - f);
    if (rest >= 4 && !memcmp(f, "True", 4))
        out->fortran = 1;
    else if (!(rest >= 5 && !memcmp(f, "False", 5)))
        return elo_seterr(ELO_BADINPUT, "%s: bad fortran_order in the .npy header", name);

    const char *s = npy_find(dict, hlen, "shape");
    if (!s || *s != '(')
        return elo_seterr(ELO_BADINPUT, "%s: .npy header has no shape", name);
    s++;
    const char *end = dict + hlen;
    for (;;) {
        while (s < end && (*s == ' ' || *s == ','))
            s++;
        if (s >= end)
            return elo_seterr(ELO_BADINPUT, "%s: bad shape in the .npy header", name);
        if (*s == ')')
            break;
        if (!isdigit((unsigned char)*s))
            return elo_seterr(ELO_BADINPUT, "%s: bad shape in the .npy header", name);
        uint64_t v = 0;
        while (s < end && isdigit((unsigned char)*s)) {
            if (v > ((uint64_t)1 << 48))
                return elo_seterr(ELO_BADINPUT, "%s: shape too large in the .npy header", name);
            v = v * 10 + (uint64_t)(*s - '0');
            s++;
        }
        if (s < end && *s == 'L')
            s++;
        if (out->ndim >= 2)
            return elo_seterr(ELO_BADINPUT, "%s: .npy array has more than 2 dimensions", name);
        out->shape[out->ndim++] = v;
    }
    return ELO_OK;
}

static int npy_vectors(const char *name, const uint8_t *data, size_t size, float **out,
                       size_t *count, int *dim)
{
    npy_header h;
    int rc = npy_parse_header(name, data, size, &h);
    if (rc < 0)
        return rc;
    if (strcmp(h.descr, "<f4") != 0)
        return elo_seterr(ELO_BADINPUT, "%s: dtype %s; vectors must be float32 ('<f4')", name,
                          h.descr);
    if (h.ndim == 1) {       /* a single vector */
        h.shape[1] = h.shape[0];
        h.shape[0] = 1;
    } else if (h.ndim != 2) {
        return elo_seterr(ELO_BADINPUT, "%s: the array must be 2-D (vectors x dim)", name);
    }
    if (h.fortran && h.shape[0] > 1 && h.shape[1] > 1)
        return elo_seterr(ELO_BADINPUT, "%s: Fortran-order arrays are not supported", name);
    if (h.shape[1] < 1 || h.shape[1] > ELO_VSTORE_MAX_DIM)
        return elo_seterr(ELO_BADINPUT, "%s: dimension %llu out of range 1..%d", name,
                          (unsigned long long)h.shape[1], ELO_VSTORE_MAX_DIM);
    uint64_t floats = h.shape[0] * h.shape[1];
    if (floats > (uint64_t)1 << 40 || h.data_offset + floats * 4 != size)
        return elo_seterr(ELO_BADINPUT, "%s: shape (%llu, %llu) needs %llu data bytes at offset %zu, the file has %zu",
                          name, (unsigned long long)h.shape[0], (unsigned long long)h.shape[1],
                          (unsigned long long)(floats * 4), h.data_offset, size);
    float *v = elo_malloc(floats ? floats * 4 : 1);
    if (!v)
        return elo_seterr(ELO_NOMEM, "%s: out of memory", name);
    memcpy(v, data + h.data_offset, floats * 4);
    *out = v;
    *count = (size_t)h.shape[0];
    *dim = (int)h.shape[1];
    return ELO_OK;
}

static int npy_ids(const char *name, const uint8_t *data, size_t size, int64_t **out, size_t *count)
{
    npy_header h;
    int rc = npy_parse_header(name, data, size, &h);
    if (rc < 0)
        return rc;
    size_t esize;
    if (!strcmp(h.descr, "<i8"))
        esize = 8;
    else if (!strcmp(h.descr, "<i4"))
        esize = 4;
    else
        return elo_seterr(ELO_BADINPUT, "%s: dtype %s; ids must be int64 ('<i8') or int32", name,
                          h.descr);
    if (h.ndim == 2 && (h.shape[0] == 1 || h.shape[1] == 1))
        h.shape[0] *= h.shape[1];
    else if (h.ndim != 1)
        return elo_seterr(ELO_BADINPUT, "%s: ids must be a 1-D array", name);
    uint64_t n = h.shape[0];
    if (n > (uint64_t)1 << 40 || h.data_offset + n * esize != size)
        return elo_seterr(ELO_BADINPUT, "%s: %llu ids need %llu data bytes at offset %zu, the file has %zu",
                          name, (unsigned long long)n, (unsigned long long)(n * esize),
                          h.data_offset, size);
    int64_t *ids = elo_malloc(n ? n * 8 : 1);
    if (!ids)
        return elo_seterr(ELO_NOMEM, "%s: out of memory", name);
    for (uint64_t i = 0; i < n; i++) {
        if (esize == 8) {
            memcpy(&ids[i], data + h.data_offset + i * 8, 8);
        } else {
            int32_t v;
            memcpy(&v, data + h.data_offset + i * 4, 4);
            ids[i] = v;
        }
    }
    *out = ids;
    *count = (size_t)n;
    return ELO_OK;
}

/* ---- .fvecs -------------------------------------------------------------- */

static int fvecs_vectors(const char *name, const uint8_t *data, size_t size, float **out,
                         size_t *count, int *dim)
{
    if (size < 4)
        return elo_seterr(ELO_BADINPUT, "%s: empty or truncated .fvecs file", name);
    int32_t d;
    memcpy(&d, data, 4);
    if (d < 1 || d > ELO_VSTORE_MAX_DIM)
        return elo_seterr(ELO_BADINPUT, "%s: byte 0: dimension %d out of range 1..%d", name, d,
                          ELO_VSTORE_MAX_DIM);
    size_t rec = 4 + (size_t)d * 4;
    if (size % rec != 0)
        return elo_seterr(ELO_BADINPUT, "%s: %zu bytes is not a whole number of %zu-byte records (truncated at byte %zu?)",
                          name, size, rec, size - size % rec);
    size_t n = size / rec;
    float *v = elo_malloc(n * (size_t)d * 4);
    if (!v)
        return elo_seterr(ELO_NOMEM, "%s: out of memory", name);
    for (size_t i = 0; i < n; i++) {
        int32_t di;
        memcpy(&di, data + i * rec, 4);
        if (di != d) {
            elo_free(v);
            return elo_seterr(ELO_BADINPUT, "%s: byte %zu: vector %zu has dimension %d, the first %d",
                              name, i * rec, i, di, d);
        }
        memcpy(v + i * (size_t)d, data + i * rec + 4, (size_t)d * 4);
    }
    *out = v;
    *count = n;
    *dim = d;
    return ELO_OK;
}

/* ---- .jsonl and text ---------------------------------------------------- */

/* Calls fn(line, len, lineno) for each non-blank line. */
typedef int (*line_fn)(void *ctx, const char *line, size_t len, size_t lineno);

static int for_lines(const uint8_t *data, size_t size, line_fn fn, void *ctx)
{
    size_t lineno = 0, i = 0;
    while (i < size) {
        size_t j = i;
        while (j < size && data[j] != '\n')
            j++;
        lineno++;
        size_t a = i, b = j;
        while (a < b && isspace(data[a]))
            a++;
        while (b > a && isspace(data[b - 1]))
            b--;
        if (b > a) {
            int rc = fn(ctx, (const char *)data + a, b - a, lineno);
            if (rc < 0)
                return rc;
        }
        i = j + 1;
    }
    return ELO_OK;
}

typedef struct {
    const char *name;
    float *v;
    size_t count, cap;   /* cap in floats */
    int dim;
} jsonl_vec_ctx;

static int jsonl_vec_line(void *arg, const char *line, size_t len, size_t lineno)
{
    jsonl_vec_ctx *c = arg;
    json_error_t err;
    json_t *a = json_loadb(line, len, 0, &err);
    if (!a)
        return elo_seterr(ELO_BADINPUT, "%s:%zu: column %d: %s", c->name, lineno, err.column,
                          err.text);
    int rc = ELO_OK;
    size_t n = json_is_array(a) ? json_array_size(a) : 0;
    if (!json_is_array(a))
        rc = elo_seterr(ELO_BADINPUT, "%s:%zu: expected a JSON array of numbers", c->name, lineno);
    else if (n < 1 || n > ELO_VSTORE_MAX_DIM)
        rc = elo_seterr(ELO_BADINPUT, "%s:%zu: %zu numbers; a vector has 1..%d", c->name, lineno,
                        n, ELO_VSTORE_MAX_DIM);
    else if (c->dim && (int)n != c->dim)
        rc = elo_seterr(ELO_BADINPUT, "%s:%zu: %zu numbers, the first line has %d", c->name,
                        lineno, n, c->dim);
    if (rc == ELO_OK) {
        c->dim = (int)n;
        if ((c->count + 1) * n > c->cap) {
            size_t cap = c->cap ? c->cap * 2 : n * 64;
            while (cap < (c->count + 1) * n)
                cap *= 2;
            float *nv = elo_realloc(c->v, cap * sizeof *nv);
            if (!nv)
                rc = elo_seterr(ELO_NOMEM, "%s: out of memory", c->name);
            else {
                c->v = nv;
                c->cap = cap;
            }
        }
    }
    for (size_t i = 0; rc == ELO_OK && i < n; i++) {
        json_t *x = json_array_get(a, i);
        if (!json_is_number(x)) {
            rc = elo_seterr(ELO_BADINPUT, "%s:%zu: element %zu is not a number", c->name, lineno, i);
            break;
        }
        double d = json_number_value(x);
        if (!isfinite(d) || fabs(d) > FLT_MAX) {
            rc = elo_seterr(ELO_BADINPUT, "%s:%zu: element %zu (%g) is out of float32 range",
                            c->name, lineno, i, d);
            break;
        }
        c->v[c->count * n + i] = (float)d;
    }
    json_decref(a);
    if (rc == ELO_OK)
        c->count++;
    return rc;
}

static int jsonl_vectors(const char *name, const uint8_t *data, size_t size, float **out,
                         size_t *count, int *dim)
{
    jsonl_vec_ctx c = {.name = name};
    int rc = for_lines(data, size, jsonl_vec_line, &c);
    if (rc == ELO_OK && c.count == 0)
        rc = elo_seterr(ELO_BADINPUT, "%s: no vectors", name);
    if (rc < 0) {
        elo_free(c.v);
        return rc;
    }
    *out = c.v;
    *count = c.count;
    *dim = c.dim;
    return ELO_OK;
}

typedef struct {
    const char *name;
    int64_t *ids;
    size_t count, cap;
    int json;
} ids_ctx;

static int ids_push(ids_ctx *c, int64_t v)
{
    if (c->count == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        int64_t *n = elo_realloc(c->ids, cap * sizeof *n);
        if (!n)
            return elo_seterr(ELO_NOMEM, "%s: out of memory", c->name);
        c->ids = n;
        c->cap = cap;
    }
    c->ids[c->count++] = v;
    return ELO_OK;
}

static int ids_line(void *arg, const char *line, size_t len, size_t lineno)
{
    ids_ctx *c = arg;
    if (!c->json) {
        char buf[32];
        int64_t v;
        if (len >= sizeof buf)
            return elo_seterr(ELO_BADINPUT, "%s:%zu: not an integer id", c->name, lineno);
        memcpy(buf, line, len);
        buf[len] = 0;
        if (elo_parse_i64(buf, &v) < 0)
            return elo_seterr(ELO_BADINPUT, "%s:%zu: '%s' is not an integer id", c->name, lineno, buf);
        return ids_push(c, v);
    }
    json_error_t err;
    json_t *j = json_loadb(line, len, JSON_DECODE_ANY, &err);
    if (!j)
        return elo_seterr(ELO_BADINPUT, "%s:%zu: column %d: %s", c->name, lineno, err.column, err.text);
    int rc = ELO_OK;
    if (json_is_integer(j)) {
        rc = ids_push(c, json_integer_value(j));
    } else if (json_is_array(j)) {
        for (size_t i = 0; rc == ELO_OK && i < json_array_size(j); i++) {
            json_t *x = json_array_get(j, i);
            if (!json_is_integer(x))
                rc = elo_seterr(ELO_BADINPUT, "%s:%zu: element %zu is not an integer", c->name, lineno, i);
            else
                rc = ids_push(c, json_integer_value(x));
        }
    } else {
        rc = elo_seterr(ELO_BADINPUT, "%s:%zu: expected an integer or an array of integers",
                        c->name, lineno);
    }
    json_decref(j);
    return rc;
}

/* ---- entry points ---------------------------------------------------------- */

static const char *format_of(const char *path)
{
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash))
        return "";
    return dot + 1;
}

int elo_vstore_parse_vectors(const char *format, const char *name, const void *data, size_t size,
                             float **out, size_t *count, int *dim)
{
    *out = NULL;
    *count = 0;
    *dim = 0;
    if (!strcmp(format, "npy"))
        return npy_vectors(name, data, size, out, count, dim);
    if (!strcmp(format, "fvecs"))
        return fvecs_vectors(name, data, size, out, count, dim);
    if (!strcmp(format, "jsonl") || !strcmp(format, "json"))
        return jsonl_vectors(name, data, size, out, count, dim);
    return elo_seterr(ELO_BADINPUT, "%s: unknown vector format '%s' (use .npy, .fvecs or .jsonl)",
                      name, format);
}

int elo_vstore_parse_ids(const char *format, const char *name, const void *data, size_t size,
                         int64_t **out, size_t *count)
{
    *out = NULL;
    *count = 0;
    if (!strcmp(format, "npy"))
        return npy_ids(name, data, size, out, count);
    ids_ctx c = {.name = name, .json = !strcmp(format, "jsonl") || !strcmp(format, "json")};
    int rc = for_lines(data, size, ids_line, &c);
    if (rc < 0) {
        elo_free(c.ids);
        return rc;
    }
    if (!c.ids && !(c.ids = elo_malloc(8)))
        return elo_seterr(ELO_NOMEM, "out of memory");
    *out = c.ids;
    *count = c.count;
    return ELO_OK;
}

int elo_vstore_read_vectors(const char *path, float **out, size_t *count, int *dim)
{
    *out = NULL;
    elo_mmap m;
    int rc = elo_mmap_open(&m, path, 0);
    if (rc < 0)
        return rc;
    rc = elo_vstore_parse_vectors(format_of(path), path, m.data ? m.data : "", m.size, out,
                                  count, dim);
    elo_mmap_close(&m);
    return rc;
}

int elo_vstore_read_ids(const char *path, int64_t **out, size_t *count)
{
    *out = NULL;
    elo_mmap m;
    int rc = elo_mmap_open(&m, path, 0);
    if (rc < 0)
        return rc;
    rc = elo_vstore_parse_ids(format_of(path), path, m.data ? m.data : "", m.size, out, count);
    elo_mmap_close(&m);
    return rc;
}
