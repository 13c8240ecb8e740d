/* model.c - opens a sentence-transformers model folder: config.json (the
 * BERT shape), model.safetensors (mmap'd, validated, converted to the f32
 * layout the encoders use), the tokenizer, 1_Pooling/config.json,
 * sentence_bert_config.json and modules.json (Normalize). Every file is
 * untrusted: values are range-checked and each error names its file. */
#include "embed-impl.h"

#include <jansson.h>
#include <string.h>
#include <sys/stat.h>

#define MODEL_HINT "(run `make model` to fetch the default model)"

static int get_int(const char *file, json_t *o, const char *key, int lo, int hi, int dflt,
                   int required, int *out)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        if (required)
            return elo_seterr(ELO_CORRUPT, "%s: \"%s\" is missing", file, key);
        *out = dflt;
        return ELO_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return elo_seterr(ELO_CORRUPT, "%s: \"%s\" must be an integer in %d..%d", file, key, lo,
                          hi);
    *out = (int)json_integer_value(v);
    return ELO_OK;
}

int elo__bert_config_parse(const char *file, const char *text, size_t len, elo_embed_info *info)
{
    json_error_t jerr;
    json_t *o = json_loadb(text, len, 0, &jerr);
    if (!o)
        return elo_seterr(ELO_CORRUPT, "%s: line %d: %s", file, jerr.line, jerr.text);
    int rc = ELO_OK;
    if (!json_is_object(o)) {
        rc = elo_seterr(ELO_CORRUPT, "%s: not a JSON object", file);
        goto out;
    }
    json_t *mt = json_object_get(o, "model_type");
    if (mt && (!json_is_string(mt) || strcmp(json_string_value(mt), "bert"))) {
        rc = elo_seterr(ELO_UNSUPPORTED, "%s: model_type %s is not bert", file,
                        json_is_string(mt) ? json_string_value(mt) : "(not a string)");
        goto out;
    }
    json_t *act = json_object_get(o, "hidden_act");
    if (act && (!json_is_string(act) || strcmp(json_string_value(act), "gelu"))) {
        rc = elo_seterr(ELO_UNSUPPORTED, "%s: hidden_act %s: only \"gelu\" (erf) is supported",
                        file, json_is_string(act) ? json_string_value(act) : "(not a string)");
        goto out;
    }
    json_t *pe = json_object_get(o, "position_embedding_type");
    if (pe && !json_is_null(pe) &&
        (!json_is_string(pe) || strcmp(json_string_value(pe), "absolute"))) {
        rc = elo_seterr(ELO_UNSUPPORTED, "%s: position_embedding_type must be \"absolute\"",
                        file);
        goto out;
    }
    if ((rc = get_int(file, o, "vocab_size", 1, 4000000, 0, 1, &info->vocab_size)) < 0 ||
        (rc = get_int(file, o, "hidden_size", 1, 16384, 0, 1, &info->hidden)) < 0 ||
        (rc = get_int(file, o, "num_hidden_layers", 1, 256, 0, 1, &info->layers)) < 0 ||
        (rc = get_int(file, o, "num_attention_heads", 1, 1024, 0, 1, &info->heads)) < 0 ||
        (rc = get_int(file, o, "intermediate_size", 1, 65536, 0, 1, &info->intermediate)) < 0 ||
        (rc = get_int(file, o, "max_position_embeddings", 2, 65536, 512, 0,
                      &info->max_positions)) < 0 ||
        (rc = get_int(file, o, "type_vocab_size", 1, 1024, 2, 0, &info->type_vocab)) < 0)
        goto out;
    if (info->hidden % info->heads) {
        rc = elo_seterr(ELO_CORRUPT, "%s: hidden_size %d is not a multiple of "
                        "num_attention_heads %d", file, info->hidden, info->heads);
        goto out;
    }
    json_t *eps = json_object_get(o, "layer_norm_eps");
    info->layer_norm_eps = 1e-12f;
    if (eps) {
        if (!json_is_number(eps) || !(json_number_value(eps) >= 1e-30) ||
            json_number_value(eps) > 1) {
            rc = elo_seterr(ELO_CORRUPT, "%s: layer_norm_eps must be a number in [1e-30, 1]",
                            file);
            goto out;
        }
        info->layer_norm_eps = (float)json_number_value(eps);
    }
out:
    json_decref(o);
    return rc;
}

int elo__pooling_config_parse(const char *file, const char *text, size_t len, elo_pooling *out)
{
    json_error_t jerr;
    json_t *o = json_loadb(text, len, 0, &jerr);
    if (!o)
        return elo_seterr(ELO_CORRUPT, "%s: line %d: %s", file, jerr.line, jerr.text);
    int rc = ELO_OK;
    static const struct {
        const char *key;
        elo_pooling mode;
    } modes[] = {{"pooling_mode_mean_tokens", ELO_POOLING_MEAN},
                 {"pooling_mode_cls_token", ELO_POOLING_CLS},
                 {"pooling_mode_max_tokens", ELO_POOLING_MAX},
                 {"pooling_mode_mean_sqrt_len_tokens", ELO_POOLING_MEAN_SQRT_LEN}};
    int on = 0;
    if (!json_is_object(o)) {
        rc = elo_seterr(ELO_CORRUPT, "%s: not a JSON object", file);
        goto out;
    }
    for (size_t i = 0; i < ELO_ARRAY_LEN(modes); i++)
        if (json_is_true(json_object_get(o, modes[i].key))) {
            *out = modes[i].mode;
            on++;
        }
    static const char *const unsupported[] = {"pooling_mode_weightedmean_tokens",
                                              "pooling_mode_lasttoken"};
    for (size_t i = 0; i < ELO_ARRAY_LEN(unsupported); i++)
        if (json_is_true(json_object_get(o, unsupported[i]))) {
            rc = elo_seterr(ELO_UNSUPPORTED, "%s: %s is not supported", file, unsupported[i]);
            goto out;
        }
    json_t *pm = json_object_get(o, "pooling_mode");
    if (!on && json_is_string(pm)) {
        for (size_t i = 0; i < ELO_ARRAY_LEN(modes); i++)
            if (strstr(modes[i].key, json_string_value(pm)) && *json_string_value(pm)) {
                *out = modes[i].mode;
                on = 1;
                break;
            }
    }
    if (on != 1)
        rc = elo_seterr(ELO_UNSUPPORTED, "%s: exactly one of mean, cls, max or "
                        "mean_sqrt_len pooling must be on (%d are)", file, on);
out:
    json_decref(o);
    return rc;
}

/* Reads an optional small JSON file: ELO_NOTFOUND (no message) when absent. */
static int read_small(const char *dir, const char *rel, char *path, size_t cap, char **text,
                      size_t *len)
{
    snprintf(path, cap, "%s/%s", dir, rel);
    struct stat sb;
    if (stat(path, &sb) != 0)
        return ELO_NOTFOUND;
    return elo_read_file(path, 64u << 20, text, len);
}

/* ---- weights ------------------------------------------------------------- */

static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { /* subnormal: normalize */
            exp = 127 - 15 + 1;
            while (!(mant & 0x400)) {
                mant <<= 1;
                exp--;
            }
            bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* Copies tensor `name` (any float dtype) to `dst` as f32 after checking its
 * shape is [d0] or [d0, d1] (d1 = 0 for a vector). */
static int load_tensor(elo_embed_model *m, const char *file, const char *name, int64_t d0,
                       int64_t d1, float *dst)
{
    char full[256];
    const elo__st_tensor *t = elo__safetensors_find(&m->st, name);
    if (!t) {
        snprintf(full, sizeof full, "bert.%s", name);
        t = elo__safetensors_find(&m->st, full);
    }
    if (!t)
        return elo_seterr(ELO_CORRUPT, "%s: tensor '%s' is missing", file, name);
    int want_dims = d1 ? 2 : 1;
    if (t->ndim != want_dims || t->shape[0] != d0 || (d1 && t->shape[1] != d1))
        return elo_seterr(ELO_CORRUPT, "%s: tensor '%s' has shape [%lld%s%lld], config.json "
                          "says [%lld%s%lld]", file, name, (long long)t->shape[0],
                          t->ndim > 1 ? ", " : "", t->ndim > 1 ? (long long)t->shape[1] : 0LL,
                          (long long)d0, d1 ? ", " : "", (long long)d1);
    size_t n = (size_t)d0 * (size_t)(d1 ? d1 : 1);
    switch (t->dtype) {
    case ELO_ST_F32:
        memcpy(dst, t->data, n * 4);
        break;
    case ELO_ST_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, t->data + 2 * i, 2);
            dst[i] = f16_to_f32(h);
        }
        break;
    case ELO_ST_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, t->data + 2 * i, 2);
            uint32_t bits = (uint32_t)h << 16;
            memcpy(&dst[i], &bits, 4);
        }
        break;
    default:
        return elo_seterr(ELO_UNSUPPORTED, "%s: tensor '%s' is %s (F32, F16 or BF16 expected)",
                          file, name, elo__st_dtype_name(t->dtype));
    }
    for (size_t i = 0; i < n; i++)
        if (!(dst[i] == dst[i]) || dst[i] > 3.4e38f || dst[i] < -3.4e38f)
            return elo_seterr(ELO_CORRUPT, "%s: tensor '%s' holds a NaN or infinity at "
                              "element %zu", file, name, i);
    if (!strcmp(name, "encoder.layer.0.attention.self.query.weight"))
        m->info.weight_type = t->dtype == ELO_ST_F16    ? ELO_DTYPE_F16
                              : t->dtype == ELO_ST_BF16 ? ELO_DTYPE_BF16
                                                        : ELO_DTYPE_F32;
    return ELO_OK;
}

/* Loads linear weight `name` ([out, in] in the file) transposed into
 * dst[k * ldd + col + n] (the [in, out] layout, at column offset `col`). */
static int load_linear(elo_embed_model *m, const char *file, const char *name, int64_t out_dim,
                       int64_t in_dim, float *dst, int64_t ldd, int64_t col)
{
    float *tmp = elo_malloc((size_t)out_dim * (size_t)in_dim * sizeof(float));
    if (!tmp)
        return elo_seterr(ELO_NOMEM, "out of memory loading %s", name);
    int rc = load_tensor(m, file, name, out_dim, in_dim, tmp);
    if (rc == ELO_OK)
        for (int64_t n = 0; n < out_dim; n++)
            for (int64_t k = 0; k < in_dim; k++)
                dst[k * ldd + col + n] = tmp[n * in_dim + k];
    elo_free(tmp);
    return rc;
}

static float *arena_floats(elo_embed_model *m, size_t n)
{
    size_t bytes;
    if (elo_mul_size(n, sizeof(float), &bytes) < 0)
        return NULL;
    return elo_arena_alloc(m->arena, bytes);
}

static int load_weights(elo_embed_model *m, const char *file)
{
    const elo_embed_info *in = &m->info;
    int64_t H = in->hidden, I = in->intermediate;
    elo__bert_weights *w = &m->w;
    int rc;
    size_t need = (size_t)in->vocab_size * H + (size_t)in->max_positions * H +
                  (size_t)in->type_vocab * H + 2 * H;
    need += (size_t)in->layers * (size_t)(4 * H * H + 4 * H + 2 * H * I + I + 5 * H);
    m->arena = elo_arena_new(need * sizeof(float) + 64 * (20 * (size_t)in->layers + 16));
    if (!m->arena)
        return elo_seterr(ELO_NOMEM, "out of memory for the weights (%zu MB)", need * 4 >> 20);
    w->word_emb = arena_floats(m, (size_t)in->vocab_size * H);
    w->pos_emb = arena_floats(m, (size_t)in->max_positions * H);
    w->type_emb = arena_floats(m, (size_t)in->type_vocab * H);
    w->emb_ln_g = arena_floats(m, H);
    w->emb_ln_b = arena_floats(m, H);
    w->layers = elo_arena_alloc(m->arena, sizeof(elo__bert_layer) * (size_t)in->layers);
    if (!w->word_emb || !w->pos_emb || !w->type_emb || !w->emb_ln_g || !w->emb_ln_b ||
        !w->layers)
        return elo_seterr(ELO_NOMEM, "out of memory for the weights");
    if ((rc = load_tensor(m, file, "embeddings.word_embeddings.weight", in->vocab_size, H,
                          w->word_emb)) < 0 ||
        (rc = load_tensor(m, file, "embeddings.position_embeddings.weight", in->max_positions,
                          H, w->pos_emb)) < 0 ||
        (rc = load_tensor(m, file, "embeddings.token_type_embeddings.weight", in->type_vocab,
                          H, w->type_emb)) < 0 ||
        (rc = load_tensor(m, file, "embeddings.LayerNorm.weight", H, 0, w->emb_ln_g)) < 0 ||
        (rc = load_tensor(m, file, "embeddings.LayerNorm.bias", H, 0, w->emb_ln_b)) < 0)
        return rc;
    for (int l = 0; l < in->layers; l++) {
        elo__bert_layer *L = &w->layers[l];
        L->qkv_w = arena_floats(m, (size_t)(3 * H * H));
        L->qkv_b = arena_floats(m, (size_t)(3 * H));
        L->ao_w = arena_floats(m, (size_t)(H * H));
        L->ao_b = arena_floats(m, H);
        L->ln1_g = arena_floats(m, H);
        L->ln1_b = arena_floats(m, H);
        L->ff1_w = arena_floats(m, (size_t)(I * H));
        L->ff1_b = arena_floats(m, I);
        L->ff2_w = arena_floats(m, (size_t)(H * I));
        L->ff2_b = arena_floats(m, H);
        L->ln2_g = arena_floats(m, H);
        L->ln2_b = arena_floats(m, H);
        if (!L->qkv_w || !L->qkv_b || !L->ao_w || !L->ao_b || !L->ln1_g || !L->ln1_b ||
            !L->ff1_w || !L->ff1_b || !L->ff2_w || !L->ff2_b || !L->ln2_g || !L->ln2_b)
            return elo_seterr(ELO_NOMEM, "out of memory for the weights");
        static const char *const qkv[3] = {"query", "key", "value"};
        char name[160];
        for (int j = 0; j < 3; j++) {
            snprintf(name, sizeof name, "encoder.layer.%d.attention.self.%s.weight", l, qkv[j]);
            if ((rc = load_linear(m, file, name, H, H, L->qkv_w, 3 * H, j * H)) < 0)
                return rc;
            snprintf(name, sizeof name, "encoder.layer.%d.attention.self.%s.bias", l, qkv[j]);
            if ((rc = load_tensor(m, file, name, H, 0, L->qkv_b + j * H)) < 0)
                return rc;
        }
        struct {
            const char *suffix;
            int64_t out, in;
            float *dst;
        } linears[] = {
            {"attention.output.dense.weight", H, H, L->ao_w},
            {"intermediate.dense.weight", I, H, L->ff1_w},
            {"output.dense.weight", H, I, L->ff2_w},
        };
        for (size_t j = 0; j < ELO_ARRAY_LEN(linears); j++) {
            snprintf(name, sizeof name, "encoder.layer.%d.%s", l, linears[j].suffix);
            if ((rc = load_linear(m, file, name, linears[j].out, linears[j].in, linears[j].dst,
                                  linears[j].out, 0)) < 0)
                return rc;
        }
        struct {
            const char *suffix;
            int64_t d0, d1;
            float *dst;
        } parts[] = {
            {"attention.output.dense.bias", H, 0, L->ao_b},
            {"attention.output.LayerNorm.weight", H, 0, L->ln1_g},
            {"attention.output.LayerNorm.bias", H, 0, L->ln1_b},
            {"intermediate.dense.bias", I, 0, L->ff1_b},
            {"output.dense.bias", H, 0, L->ff2_b},
            {"output.LayerNorm.weight", H, 0, L->ln2_g},
            {"output.LayerNorm.bias", H, 0, L->ln2_b},
        };
        for (size_t j = 0; j < ELO_ARRAY_LEN(parts); j++) {
            snprintf(name, sizeof name, "encoder.layer.%d.%s", l, parts[j].suffix);
            if ((rc = load_tensor(m, file, name, parts[j].d0, parts[j].d1, parts[j].dst)) < 0)
                return rc;
        }
    }
    return ELO_OK;
}

/* ---- the folder ---------------------------------------------------------- */

static int read_configs(elo_embed_model *m, const char *dir)
{
    char path[4096];
    char *text = NULL;
    size_t len = 0;
    int rc;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if ((rc = elo_read_file(path, 16u << 20, &text, &len)) < 0)
        return elo_seterr(rc, "%s: cannot read it %s", path, MODEL_HINT);
    rc = elo__bert_config_parse(path, text, len, &m->info);
    elo_free(text);
    if (rc < 0)
        return rc;

    m->info.pooling = ELO_POOLING_MEAN;
    rc = read_small(dir, "1_Pooling/config.json", path, sizeof path, &text, &len);
    if (rc == ELO_OK) {
        rc = elo__pooling_config_parse(path, text, len, &m->info.pooling);
        elo_free(text);
    }
    if (rc < 0 && rc != ELO_NOTFOUND)
        return rc;

    m->info.max_seq_length = ELO_MIN(512, m->info.max_positions);
    rc = read_small(dir, "sentence_bert_config.json", path, sizeof path, &text, &len);
    if (rc == ELO_OK) {
        json_error_t jerr;
        json_t *o = json_loadb(text, len, 0, &jerr);
        elo_free(text);
        if (!json_is_object(o)) {
            json_decref(o);
            return elo_seterr(ELO_CORRUPT, "%s: not a JSON object", path);
        }
        rc = get_int(path, o, "max_seq_length", 2, 1 << 20, m->info.max_seq_length, 0,
                     &m->info.max_seq_length);
        json_t *lower = json_object_get(o, "do_lower_case");
        if (rc == ELO_OK && lower && !json_is_boolean(lower))
            rc = elo_seterr(ELO_CORRUPT, "%s: do_lower_case must be true or false", path);
        m->info.lowercase_input = json_is_true(lower);
        json_decref(o);
        if (rc < 0)
            return rc;
        if (m->info.max_seq_length > m->info.max_positions)
            m->info.max_seq_length = m->info.max_positions;
    } else if (rc != ELO_NOTFOUND) {
        return rc;
    }

    /* Normalize: listed in modules.json, or a 2_Normalize folder. */
    snprintf(path, sizeof path, "%s/2_Normalize", dir);
    struct stat sb;
    m->info.normalize = stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
    rc = read_small(dir, "modules.json", path, sizeof path, &text, &len);
    if (rc == ELO_OK) {
        json_error_t jerr;
        json_t *o = json_loadb(text, len, 0, &jerr);
        elo_free(text);
        if (!json_is_array(o)) {
            json_decref(o);
            return elo_seterr(ELO_CORRUPT, "%s: not a JSON array", path);
        }
        size_t i;
        json_t *v;
        json_array_foreach(o, i, v) {
            json_t *type = json_object_get(v, "type");
            if (!json_is_string(type)) {
                json_decref(o);
                return elo_seterr(ELO_CORRUPT, "%s: module %zu has no \"type\" string", path, i);
            }
            const char *ty = json_string_value(type);
            if (strstr(ty, "Normalize"))
                m->info.normalize = 1;
            else if (!strstr(ty, "Transformer") && !strstr(ty, "Pooling")) {
                json_decref(o);
                return elo_seterr(ELO_UNSUPPORTED, "%s: module type %s is not supported", path,
                                  ty);
            }
        }
        json_decref(o);
    } else if (rc != ELO_NOTFOUND) {
        return rc;
    }
    return ELO_OK;
}

int elo_embed_model_open(const char *dir, elo_embed_model **out)
{
    *out = NULL;
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return elo_seterr(ELO_NOTFOUND, "model folder %s does not exist %s", dir, MODEL_HINT);
    elo_embed_model *m = elo_calloc(1, sizeof *m);
    if (!m)
        return elo_seterr(ELO_NOMEM, "out of memory");
    m->map.fd = -1;
    int rc;
    char path[4096];
    if (!(m->dir = elo_strdup(dir))) {
        rc = elo_seterr(ELO_NOMEM, "out of memory");
        goto fail;
    }
    if ((rc = read_configs(m, dir)) < 0)
        goto fail;
    if ((rc = elo_tokenizer_open_dir(dir, &m->tok)) < 0)
        goto fail;
    elo_tokenizer_set_lowercase_input(m->tok, m->info.lowercase_input);
    if (elo_tokenizer_vocab_size(m->tok) > m->info.vocab_size) {
        rc = elo_seterr(ELO_CORRUPT, "%s: the tokenizer has %d tokens but config.json says "
                        "vocab_size %d", dir, elo_tokenizer_vocab_size(m->tok),
                        m->info.vocab_size);
        goto fail;
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if ((rc = elo_mmap_open(&m->map, path, 0)) < 0) {
        rc = elo_seterr(rc, "%s: cannot open it %s", path, MODEL_HINT);
        goto fail;
    }
    if ((rc = elo__safetensors_parse(path, m->map.data, m->map.size, &m->st)) < 0)
        goto fail;
    if ((rc = load_weights(m, path)) < 0)
        goto fail;
    /* The weights are copied out: the file need not stay mapped. */
    elo__safetensors_deinit(&m->st);
    elo_mmap_close(&m->map);
    *out = m;
    return ELO_OK;
fail:
    elo_embed_model_free(m);
    return rc;
}

void elo_embed_model_free(elo_embed_model *m)
{
    if (!m)
        return;
    elo__safetensors_deinit(&m->st);
    elo_mmap_close(&m->map);
    elo_tokenizer_free(m->tok);
    elo_arena_free(m->arena);
    elo_free(m->dir);
    elo_free(m);
}

const elo_embed_info *elo_embed_model_info(const elo_embed_model *m) { return &m->info; }

const elo_tokenizer *elo_embed_model_tokenizer(const elo_embed_model *m) { return m->tok; }
