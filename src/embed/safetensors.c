/* safetensors.c - reads the safetensors format: an 8-byte little-endian
 * header length N, N bytes of JSON ({"name": {"dtype", "shape",
 * "data_offsets": [begin, end]}, "__metadata__": {...}}), then the data
 * section. Everything in the header is untrusted: each field is checked
 * before use, sizes with overflow checks, and no tensor may reach outside
 * the data section or overlap another. */
#include "embed-impl.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* A header larger than this is not a model we would load. */
#define ST_MAX_HEADER (100u << 20)

static const struct {
    const char *name;
    elo__st_dtype type;
    size_t size;
} st_types[] = {
    {"F32", ELO_ST_F32, 4}, {"F16", ELO_ST_F16, 2}, {"BF16", ELO_ST_BF16, 2},
    {"F64", ELO_ST_F64, 8}, {"I64", ELO_ST_I64, 8}, {"I32", ELO_ST_I32, 4},
    {"I16", ELO_ST_I16, 2}, {"I8", ELO_ST_I8, 1},   {"U8", ELO_ST_U8, 1},
    {"BOOL", ELO_ST_BOOL, 1},
};

size_t elo__st_dtype_size(elo__st_dtype t)
{
    for (size_t i = 0; i < ELO_ARRAY_LEN(st_types); i++)
        if (st_types[i].type == t)
            return st_types[i].size;
    return 0;
}

const char *elo__st_dtype_name(elo__st_dtype t)
{
    for (size_t i = 0; i < ELO_ARRAY_LEN(st_types); i++)
        if (st_types[i].type == t)
            return st_types[i].name;
    return "?";
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const elo__st_tensor *)a)->name, ((const elo__st_tensor *)b)->name);
}

static int by_begin(const void *a, const void *b)
{
    const elo__st_tensor *x = *(const elo__st_tensor *const *)a;
    const elo__st_tensor *y = *(const elo__st_tensor *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

void elo__safetensors_deinit(elo__safetensors *st)
{
    if (!st)
        return;
    for (int i = 0; i < st->count; i++)
        elo_free(st->tensors[i].name);
    elo_free(st->tensors);
    memset(st, 0, sizeof *st);
}

static int parse_tensor(const char *file, const char *key, json_t *v, uint64_t data_bytes,
                        elo__st_tensor *t)
{
    if (!json_is_object(v))
        return elo_seterr(ELO_CORRUPT, "%s: tensor '%s': entry is not an object", file, key);
    json_t *dt = json_object_get(v, "dtype");
    json_t *shape = json_object_get(v, "shape");
    json_t *offs = json_object_get(v, "data_offsets");
    if (!json_is_string(dt) || !json_is_array(shape) || !json_is_array(offs))
        return elo_seterr(ELO_CORRUPT,
                          "%s: tensor '%s': needs string dtype, array shape and data_offsets",
                          file, key);
    size_t esize = 0;
    for (size_t i = 0; i < ELO_ARRAY_LEN(st_types); i++)
        if (!strcmp(json_string_value(dt), st_types[i].name)) {
            t->dtype = st_types[i].type;
            esize = st_types[i].size;
        }
    if (!esize)
        return elo_seterr(ELO_CORRUPT, "%s: tensor '%s': unknown dtype '%s'", file, key,
                          json_string_value(dt));
    size_t ndim = json_array_size(shape);
    if (ndim > ELO_ST_MAX_DIMS)
        return elo_seterr(ELO_CORRUPT, "%s: tensor '%s': %zu dimensions (at most %d)", file,
                          key, ndim, ELO_ST_MAX_DIMS);
    t->ndim = (int)ndim;
    size_t bytes = esize;
    for (size_t i = 0; i < ndim; i++) {
        json_t *d = json_array_get(shape, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return elo_seterr(ELO_CORRUPT, "%s: tensor '%s': shape[%zu] is not a size", file,
                              key, i);
        t->shape[i] = json_integer_value(d);
        if (elo_mul_size(bytes, (size_t)t->shape[i], &bytes) < 0)
            return elo_seterr(ELO_CORRUPT, "%s: tensor '%s': shape overflows", file, key);
    }
    json_t *b = json_array_get(offs, 0), *e = json_array_get(offs, 1);
    if (json_array_size(offs) != 2 || !json_is_integer(b) || !json_is_integer(e) ||
        json_integer_value(b) < 0 || json_integer_value(e) < json_integer_value(b))
        return elo_seterr(ELO_CORRUPT, "%s: tensor '%s': data_offsets must be [begin, end]",
                          file, key);
    t->begin = (uint64_t)json_integer_value(b);
    t->end = (uint64_t)json_integer_value(e);
    if (t->end > data_bytes)
        return elo_seterr(ELO_CORRUPT,
                          "%s: tensor '%s': data_offsets end %llu is past the data (%llu bytes)",
                          file, key, (unsigned long long)t->end,
                          (unsigned long long)data_bytes);
    if (t->end - t->begin != bytes)
        return elo_seterr(ELO_CORRUPT,
                          "%s: tensor '%s': %llu bytes of data but its shape needs %zu", file,
                          key, (unsigned long long)(t->end - t->begin), bytes);
    return ELO_OK;
}

int elo__safetensors_parse(const char *file, const uint8_t *data, size_t size,
                           elo__safetensors *st)
{
    memset(st, 0, sizeof *st);
    if (size < 8 || !data)
        return elo_seterr(ELO_CORRUPT, "%s: truncated (%zu bytes; a safetensors file starts "
                          "with an 8-byte header length)", file, size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | data[i];
    if (hlen < 2 || hlen > ST_MAX_HEADER || hlen > size - 8)
        return elo_seterr(ELO_CORRUPT, "%s: header length %llu does not fit the file "
                          "(%zu bytes)", file, (unsigned long long)hlen, size);
    json_error_t jerr;
    json_t *root = json_loadb((const char *)data + 8, (size_t)hlen,
                              JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return elo_seterr(ELO_CORRUPT, "%s: header JSON: %s at byte %d", file, jerr.text,
                          8 + jerr.position);
    int rc = ELO_OK;
    elo__st_tensor **order = NULL;
    if (!json_is_object(root)) {
        rc = elo_seterr(ELO_CORRUPT, "%s: header is not a JSON object", file);
        goto out;
    }
    st->base = data + 8 + hlen;
    st->data_bytes = size - 8 - hlen;
    size_t n = json_object_size(root);
    st->tensors = elo_calloc(n ? n : 1, sizeof *st->tensors);
    if (!st->tensors) {
        rc = elo_seterr(ELO_NOMEM, "%s: out of memory", file);
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (!strcmp(key, "__metadata__")) {
            if (!json_is_object(v)) {
                rc = elo_seterr(ELO_CORRUPT, "%s: __metadata__ is not an object", file);
                goto out;
            }
            continue;
        }
        elo__st_tensor *t = &st->tensors[st->count];
        if ((rc = parse_tensor(file, key, v, st->data_bytes, t)) < 0)
            goto out;
        t->name = elo_strdup(key);
        if (!t->name) {
            rc = elo_seterr(ELO_NOMEM, "%s: out of memory", file);
            goto out;
        }
        t->data = st->base + t->begin;
        st->count++;
    }
    /* No two tensors may share bytes (a crafted file could alias them). */
    order = elo_calloc(st->count ? st->count : 1, sizeof *order);
    if (!order) {
        rc = elo_seterr(ELO_NOMEM, "%s: out of memory", file);
        goto out;
    }
    for (int i = 0; i < st->count; i++)
        order[i] = &st->tensors[i];
    qsort(order, st->count, sizeof *order, by_begin);
    for (int i = 1; i < st->count; i++)
        if (order[i]->begin < order[i - 1]->end && order[i]->begin != order[i]->end &&
            order[i - 1]->begin != order[i - 1]->end) {
            rc = elo_seterr(ELO_CORRUPT, "%s: tensors '%s' and '%s' overlap", file,
                            order[i - 1]->name, order[i]->name);
            goto out;
        }
    qsort(st->tensors, st->count, sizeof *st->tensors, by_name);
out:
    elo_free(order);
    json_decref(root);
    if (rc < 0)
        elo__safetensors_deinit(st);
    return rc;
}

const elo__st_tensor *elo__safetensors_find(const elo__safetensors *st, const char *name)
{
    int lo = 0, hi = st->count - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(name, st->tensors[mid].name);
        if (c == 0)
            return &st->tensors[mid];
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}
