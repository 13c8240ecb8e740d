/* tokenizer.c - the BERT WordPiece tokenizer, matching the reference
 * (Hugging Face tokenizers: added tokens split out of the raw text, then
 * BertNormalizer, BertPreTokenizer and WordPiece), with utf8proc for the
 * Unicode tables.
 *
 * One pass over the text, character by character: a special token that
 * starts here is emitted as it is; otherwise the character is cleaned
 * (control characters dropped, whitespace made ' '), CJK ideographs become
 * words of their own, accents are stripped (NFD, nonspacing marks dropped)
 * and the result lowercased; whitespace ends a word, punctuation is a word
 * of its own. Each finished word goes through greedy longest-match-first
 * WordPiece ("##" continuations, [UNK] for the whole word when a piece is
 * missing or the word is over max_chars_per_word characters). The pass
 * stops as soon as the truncation length is reached, so work and memory do
 * not grow with the text.
 *
 * Two paths give the same ids. The general path does the above for every
 * character. The fast path (the default) reads each ASCII byte through a
 * 128-entry table built once per tokenizer from the general path's own
 * class functions and options (drop, space, punctuation word with its id,
 * or word byte already lowercased), and hashes a word while reading it, so
 * a word that is one token costs one probe. Both paths then share
 * WordPiece, which hashes all candidates of a piece in one pass.
 * Non-ASCII characters and bytes that may start a special token go
 * through the general path's step(), one character at a time.
 * elo__tokenizer_set_general() forces the general path, so tests can
 * compare the two. */
#include "embed-impl.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define MAX_WORD_CHARS_CAP 1024

/* Character classes of the reference, for the override table. */
enum { TOK_NORMAL, TOK_REMOVE, TOK_SPACE, TOK_MARK, TOK_PUNCT };
#include "tokenizer-tables.h"

typedef struct {
    const char *text;
    size_t len;
    int32_t id;
} special_token;

typedef struct {
    uint32_t hash;              /* hash_bytes() of the token: most misses stop here */
    int32_t id;                 /* -1: empty */
} vocab_slot;

/* What the fast path does with one ASCII byte. */
enum { ASCII_GENERAL, ASCII_DROP, ASCII_SPACE, ASCII_PUNCT, ASCII_WORD };
typedef struct {
    uint8_t kind;               /* ASCII_* */
    char c;                     /* ASCII_WORD: the byte to append (lowercased) */
    int8_t cased;               /* is_cased(), for lowercase_input's Final_Sigma; -1: case-
                                   ignorable, or no lowercase_input (no update) */
    int32_t id;                 /* ASCII_PUNCT: the id of the one-character word */
} ascii_action;

struct elo_tokenizer {
    elo_tokenizer_options o;
    char **tokens;              /* id -> token (NULL for unused ids) */
    uint32_t *token_len;
    int vocab_size;
    vocab_slot *table;          /* open addressing on hash_bytes() */
    uint32_t mask;
    special_token *specials;    /* longest first */
    int special_count;
    uint8_t special_first[256]; /* 1: some special token starts with this byte */
    int32_t unk, cls, sep;
    size_t max_token_bytes;
    char prefix[16];            /* continuing subword prefix, "##" */
    size_t prefix_len;
    uint64_t prefix_state;      /* fnv_add() state after the prefix */
    ascii_action ascii[128];    /* the fast path's table (tok_prepare) */
    int general_only;           /* tests: never take the fast path */
    elo_arena *arena;
};

static void tok_prepare(elo_tokenizer *t);

void elo_tokenizer_options_default(elo_tokenizer_options *o)
{
    o->lowercase = 1;
    o->strip_accents = 1;
    o->handle_cjk = 1;
    o->clean_text = 1;
    o->max_chars_per_word = 100;
    o->lowercase_input = 0;
}

void elo_tokenizer_set_lowercase_input(elo_tokenizer *t, int on)
{
    t->o.lowercase_input = on;
    tok_prepare(t);
}

void elo__tokenizer_set_general(elo_tokenizer *t, int on) { t->general_only = on; }

void elo_tokenizer_free(elo_tokenizer *t)
{
    if (!t)
        return;
    elo_arena_free(t->arena);
    elo_free(t->tokens);
    elo_free(t->token_len);
    elo_free(t->table);
    elo_free(t->specials);
    elo_free(t);
}

int elo_tokenizer_vocab_size(const elo_tokenizer *t) { return t->vocab_size; }

const char *elo_tokenizer_token(const elo_tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->vocab_size ? t->tokens[id] : NULL;
}

/* FNV-1a, folded to 32 bits. It runs left to right, so the hashes of all
 * prefixes of a string come out of one pass (the fast WordPiece uses that). */
#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static uint64_t fnv_add(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * FNV_PRIME;
    return h;
}

static uint32_t fnv_fold(uint64_t h) { return (uint32_t)(h ^ (h >> 32)); }

static uint32_t hash_bytes(const char *s, size_t n) { return fnv_fold(fnv_add(FNV_OFFSET, s, n)); }

/* memcmp() == 0 for the few bytes of a token, without a library call. */
static inline int same_bytes(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

/* The id of the token pre[0..pre_len) + s[0..n), whose hash_bytes() is
 * `h`; -1 when absent. */
static int32_t lookup_hashed(const elo_tokenizer *t, uint32_t h, const char *pre, size_t pre_len,
                             const char *s, size_t n)
{
    for (uint32_t i = h & t->mask;; i = (i + 1) & t->mask) {
        int32_t id = t->table[i].id;
        if (id < 0)
            return -1;
        if (t->table[i].hash == h && t->token_len[id] == pre_len + n &&
            same_bytes(t->tokens[id], pre, pre_len) && same_bytes(t->tokens[id] + pre_len, s, n))
            return id;
    }
}

static int32_t lookup(const elo_tokenizer *t, const char *s, size_t n)
{
    return lookup_hashed(t, hash_bytes(s, n), "", 0, s, n);
}

int32_t elo_tokenizer_lookup(const elo_tokenizer *t, const char *token)
{
    return lookup(t, token, strlen(token));
}

static elo_tokenizer *tok_alloc(int vocab_size)
{
    elo_tokenizer *t = elo_calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->vocab_size = vocab_size;
    t->arena = elo_arena_new(0);
    t->tokens = elo_calloc((size_t)vocab_size, sizeof *t->tokens);
    t->token_len = elo_calloc((size_t)vocab_size, sizeof *t->token_len);
    memcpy(t->prefix, "##", 3);
    t->prefix_len = 2;
    elo_tokenizer_options_default(&t->o);
    if (!t->arena || !t->tokens || !t->token_len) {
        elo_tokenizer_free(t);
        return NULL;
    }
    return t;
}

/* Sets token `id`; a token seen twice keeps its first id (as the
 * reference's vocab.txt reader does). */
static int tok_set(elo_tokenizer *t, int32_t id, const char *s, size_t n)
{
    t->tokens[id] = elo_arena_strndup(t->arena, s, n);
    if (!t->tokens[id])
        return elo_seterr(ELO_NOMEM, "out of memory reading the vocabulary");
    t->token_len[id] = (uint32_t)n;
    if (n > t->max_token_bytes)
        t->max_token_bytes = n;
    return ELO_OK;
}

static int tok_index(elo_tokenizer *t)
{
    uint32_t cap = 16;
    while (cap < (uint32_t)t->vocab_size * 2u)
        cap <<= 1;
    t->table = elo_malloc((size_t)cap * sizeof *t->table);
    if (!t->table)
        return elo_seterr(ELO_NOMEM, "out of memory indexing the vocabulary");
    memset(t->table, 0xff, (size_t)cap * sizeof *t->table);
    t->mask = cap - 1;
    for (int32_t id = 0; id < t->vocab_size; id++) {
        if (!t->tokens[id] || lookup(t, t->tokens[id], t->token_len[id]) >= 0)
            continue;
        uint32_t h = hash_bytes(t->tokens[id], t->token_len[id]), i = h & t->mask;
        while (t->table[i].id >= 0)
            i = (i + 1) & t->mask;
        t->table[i] = (vocab_slot){h, id};
    }
    return ELO_OK;
}

static int by_length_desc(const void *a, const void *b)
{
    size_t x = ((const special_token *)a)->len, y = ((const special_token *)b)->len;
    return x < y ? 1 : x > y ? -1 : 0;
}

static int add_special(elo_tokenizer *t, const char *s, int32_t id)
{
    if (!*s || id < 0 || id >= t->vocab_size)
        return ELO_OK;
    for (int i = 0; i < t->special_count; i++)
        if (!strcmp(t->specials[i].text, s))
            return ELO_OK;
    special_token *n = elo_realloc(t->specials, (size_t)(t->special_count + 1) * sizeof *n);
    if (!n)
        return elo_seterr(ELO_NOMEM, "out of memory");
    t->specials = n;
    char *copy = elo_arena_strdup(t->arena, s);
    if (!copy)
        return elo_seterr(ELO_NOMEM, "out of memory");
    n[t->special_count].text = copy;
    n[t->special_count].len = strlen(copy);
    n[t->special_count].id = id;
    t->special_count++;
    t->special_first[(uint8_t)copy[0]] = 1;
    qsort(t->specials, t->special_count, sizeof *t->specials, by_length_desc);
    return ELO_OK;
}

/* After the vocabulary is in: the unknown/CLS/SEP ids must exist. */
static int tok_finish(elo_tokenizer *t, const char *name, const char *unk, const char *cls,
                      const char *sep)
{
    int rc = tok_index(t);
    if (rc < 0)
        return rc;
    t->unk = lookup(t, unk, strlen(unk));
    t->cls = lookup(t, cls, strlen(cls));
    t->sep = lookup(t, sep, strlen(sep));
    if (t->unk < 0 || t->cls < 0 || t->sep < 0)
        return elo_seterr(ELO_CORRUPT, "%s: the vocabulary lacks %s", name,
                          t->unk < 0 ? unk : t->cls < 0 ? cls : sep);
    if (t->o.max_chars_per_word <= 0 || t->o.max_chars_per_word > MAX_WORD_CHARS_CAP)
        return elo_seterr(ELO_CORRUPT, "%s: max_input_chars_per_word %d out of range 1..%d",
                          name, t->o.max_chars_per_word, MAX_WORD_CHARS_CAP);
    return ELO_OK;
}

int elo_tokenizer_from_vocab(const char *name, const char *text, size_t len,
                             const elo_tokenizer_options *opts, elo_tokenizer **out)
{
    *out = NULL;
    size_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    if (len && text[len - 1] != '\n')
        lines++;
    if (lines == 0)
        return elo_seterr(ELO_CORRUPT, "%s: empty vocabulary", name);
    if (lines > 10000000)
        return elo_seterr(ELO_TOOBIG, "%s: %zu lines is too many for a vocabulary", name, lines);
    elo_tokenizer *t = tok_alloc((int)lines);
    if (!t)
        return elo_seterr(ELO_NOMEM, "out of memory");
    if (opts)
        t->o = *opts;
    int rc = ELO_OK;
    size_t pos = 0;
    for (size_t line = 0; line < lines; line++) {
        size_t end = pos;
        while (end < len && text[end] != '\n')
            end++;
        size_t n = end - pos;
        if (n && text[pos + n - 1] == '\r')
            n--;
        if (utf8proc_decompose((const utf8proc_uint8_t *)text + pos, (utf8proc_ssize_t)n, NULL,
                               0, 0) < 0 || memchr(text + pos, '\0', n)) {
            rc = elo_seterr(ELO_CORRUPT, "%s:%zu: token is not valid UTF-8 text", name, line + 1);
            goto fail;
        }
        if ((rc = tok_set(t, (int32_t)line, text + pos, n)) < 0)
            goto fail;
        pos = end + 1;
    }
    if ((rc = tok_finish(t, name, "[UNK]", "[CLS]", "[SEP]")) < 0)
        goto fail;
    static const char *const specials[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    for (size_t i = 0; i < ELO_ARRAY_LEN(specials); i++)
        if ((rc = add_special(t, specials[i], lookup(t, specials[i], strlen(specials[i])))) < 0)
            goto fail;
    tok_prepare(t);
    *out = t;
    return ELO_OK;
fail:
    elo_tokenizer_free(t);
    return rc;
}

/* Reads an optional boolean (null means "unset": -1). */
static int json_flag(json_t *o, const char *key, int dflt)
{
    json_t *v = json_object_get(o, key);
    if (json_is_boolean(v))
        return json_is_true(v);
    return dflt;
}

int elo_tokenizer_from_json(const char *name, const char *text, size_t len,
                            elo_tokenizer **out)
{
    *out = NULL;
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return elo_seterr(ELO_CORRUPT, "%s: line %d: %s", name, jerr.line, jerr.text);
    int rc = ELO_OK;
    elo_tokenizer *t = NULL;
    json_t *model = json_object_get(root, "model");
    json_t *vocab = json_object_get(model, "vocab");
    json_t *mtype = json_object_get(model, "type");
    if (!json_is_object(root) || !json_is_object(model) || !json_is_object(vocab)) {
        rc = elo_seterr(ELO_CORRUPT, "%s: needs a \"model\" object with a \"vocab\" object",
                        name);
        goto out;
    }
    if (mtype && (!json_is_string(mtype) || strcmp(json_string_value(mtype), "WordPiece"))) {
        rc = elo_seterr(ELO_UNSUPPORTED, "%s: model type %s is not WordPiece", name,
                        json_is_string(mtype) ? json_string_value(mtype) : "(not a string)");
        goto out;
    }
    json_int_t max_id = -1;
    const char *key;
    json_t *v;
    json_object_foreach(vocab, key, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) >= 10000000) {
            rc = elo_seterr(ELO_CORRUPT, "%s: vocab entry '%.40s' has no valid id", name, key);
            goto out;
        }
        if (json_integer_value(v) > max_id)
            max_id = json_integer_value(v);
    }
    if (max_id < 0) {
        rc = elo_seterr(ELO_CORRUPT, "%s: empty vocabulary", name);
        goto out;
    }
    if (!(t = tok_alloc((int)max_id + 1))) {
        rc = elo_seterr(ELO_NOMEM, "out of memory");
        goto out;
    }
    json_object_foreach(vocab, key, v) {
        int32_t id = (int32_t)json_integer_value(v);
        if (t->tokens[id]) {
            rc = elo_seterr(ELO_CORRUPT, "%s: id %d is given to two tokens", name, (int)id);
            goto out;
        }
        if ((rc = tok_set(t, id, key, strlen(key))) < 0)
            goto out;
    }
    json_t *norm = json_object_get(root, "normalizer");
    if (json_is_object(norm)) {
        json_t *nt = json_object_get(norm, "type");
        if (!json_is_string(nt) || strcmp(json_string_value(nt), "BertNormalizer")) {
            rc = elo_seterr(ELO_UNSUPPORTED, "%s: normalizer %s is not BertNormalizer", name,
                            json_is_string(nt) ? json_string_value(nt) : "(no type)");
            goto out;
        }
        t->o.clean_text = json_flag(norm, "clean_text", 1);
        t->o.handle_cjk = json_flag(norm, "handle_chinese_chars", 1);
        t->o.lowercase = json_flag(norm, "lowercase", 1);
        /* strip_accents null: follow lowercase, as the reference does. */
        t->o.strip_accents = json_flag(norm, "strip_accents", t->o.lowercase);
    } else if (!json_is_null(norm) && norm) {
        rc = elo_seterr(ELO_CORRUPT, "%s: normalizer is not an object", name);
        goto out;
    } else {
        t->o.clean_text = t->o.handle_cjk = t->o.lowercase = t->o.strip_accents = 0;
    }
    json_t *pre = json_object_get(root, "pre_tokenizer");
    json_t *pt = json_object_get(pre, "type");
    if (pre && !json_is_null(pre) &&
        (!json_is_string(pt) || strcmp(json_string_value(pt), "BertPreTokenizer"))) {
        rc = elo_seterr(ELO_UNSUPPORTED, "%s: pre_tokenizer %s is not BertPreTokenizer", name,
                        json_is_string(pt) ? json_string_value(pt) : "(no type)");
        goto out;
    }
    json_t *mc = json_object_get(model, "max_input_chars_per_word");
    if (json_is_integer(mc))
        t->o.max_chars_per_word = (int)ELO_MIN(json_integer_value(mc), 1 << 30);
    json_t *pfx = json_object_get(model, "continuing_subword_prefix");
    if (json_is_string(pfx)) {
        size_t n = strlen(json_string_value(pfx));
        if (n >= sizeof t->prefix) {
            rc = elo_seterr(ELO_CORRUPT, "%s: continuing_subword_prefix is too long", name);
            goto out;
        }
        memcpy(t->prefix, json_string_value(pfx), n + 1);
        t->prefix_len = n;
    }
    json_t *unk = json_object_get(model, "unk_token");
    if ((rc = tok_finish(t, name, json_is_string(unk) ? json_string_value(unk) : "[UNK]",
                         "[CLS]", "[SEP]")) < 0)
        goto out;
    json_t *added = json_object_get(root, "added_tokens");
    size_t i;
    json_array_foreach(added, i, v) {
        json_t *c = json_object_get(v, "content"), *id = json_object_get(v, "id");
        if (!json_is_string(c) || !json_is_integer(id)) {
            rc = elo_seterr(ELO_CORRUPT, "%s: added_tokens[%zu] needs content and id", name, i);
            goto out;
        }
        json_int_t idv = json_integer_value(id);
        if (idv < 0 || idv >= t->vocab_size) {
            rc = elo_seterr(ELO_CORRUPT, "%s: added_tokens[%zu] id %lld is outside the vocabulary",
                            name, i, (long long)idv);
            goto out;
        }
        if ((rc = add_special(t, json_string_value(c), (int32_t)idv)) < 0)
            goto out;
    }
out:
    json_decref(root);
    if (rc < 0) {
        elo_tokenizer_free(t);
        return rc;
    }
    tok_prepare(t);
    *out = t;
    return ELO_OK;
}

int elo_tokenizer_open_dir(const char *dir, elo_tokenizer **out)
{
    char path[4096];
    char *text = NULL;
    size_t len = 0;
    *out = NULL;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    int rc = elo_read_file(path, 256u << 20, &text, &len);
    if (rc == ELO_OK) {
        rc = elo_tokenizer_from_json(path, text, len, out);
        elo_free(text);
        return rc;
    }
    elo_tokenizer_options o;
    elo_tokenizer_options_default(&o);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    if (elo_read_file(path, 16u << 20, &text, &len) == ELO_OK) {
        json_error_t jerr;
        json_t *cfg = json_loadb(text, len, 0, &jerr);
        elo_free(text);
        if (!json_is_object(cfg)) {
            json_decref(cfg);
            return elo_seterr(ELO_CORRUPT, "%s: not a JSON object", path);
        }
        o.lowercase = json_flag(cfg, "do_lower_case", 1);
        o.strip_accents = json_flag(cfg, "strip_accents", o.lowercase);
        o.handle_cjk = json_flag(cfg, "tokenize_chinese_chars", 1);
        json_decref(cfg);
    }
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    rc = elo_read_file(path, 256u << 20, &text, &len);
    if (rc < 0)
        return elo_seterr(rc, "%s/tokenizer.json and %s are missing or unreadable (run `make "
                          "model` for the default model)", dir, path);
    rc = elo_tokenizer_from_vocab(path, text, len, &o, out);
    elo_free(text);
    return rc;
}

/* ---- encoding ------------------------------------------------------------ */

/* Strict UTF-8 decoding (no overlongs, surrogates or values past
 * U+10FFFF). Returns the sequence length, or 0 when invalid. */
static int utf8_next(const uint8_t *s, size_t avail, int32_t *cp)
{
    uint8_t c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int n;
    int32_t v, min;
    if ((c & 0xe0) == 0xc0) {
        n = 2; v = c & 0x1f; min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        n = 3; v = c & 0x0f; min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        n = 4; v = c & 0x07; min = 0x10000;
    } else {
        return 0;
    }
    if ((size_t)n > avail)
        return 0;
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return n;
}

static int utf8_put(int32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* The White_Space property (what the reference splits words on). */
static int is_whitespace(int32_t c)
{
    return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
           c == 0x205f || c == 0x3000;
}

/* The reference's class for `c` where it differs from what utf8proc's
 * (newer) tables give; -1 elsewhere. */
static int override_class(int32_t c)
{
    int lo = 0, hi = (int)ELO_ARRAY_LEN(tok_overrides) - 1;
    if (c < 0x80)
        return -1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if ((uint32_t)c < tok_overrides[mid].lo)
            hi = mid - 1;
        else if ((uint32_t)c > tok_overrides[mid].hi)
            lo = mid + 1;
        else
            return tok_overrides[mid].cls;
    }
    return -1;
}

/* Control, format, private use or surrogate, except \t \n \r. Unassigned
 * code points are kept as ordinary characters, as the reference does. */
static int is_control(int32_t c)
{
    if (c == '\t' || c == '\n' || c == '\r')
        return 0;
    int o = override_class(c);
    if (o >= 0)
        return o == TOK_REMOVE;
    utf8proc_category_t k = utf8proc_category(c);
    return k == UTF8PROC_CATEGORY_CC || k == UTF8PROC_CATEGORY_CF ||
           k == UTF8PROC_CATEGORY_CS || k == UTF8PROC_CATEGORY_CO;
}

/* A nonspacing mark (dropped when stripping accents). */
static int is_mark(int32_t c)
{
    int o = override_class(c);
    if (o >= 0)
        return o == TOK_MARK;
    return utf8proc_category(c) == UTF8PROC_CATEGORY_MN;
}

static int is_punct(int32_t c)
{
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
        (c >= 123 && c <= 126))
        return 1;
    if (c < 128)
        return 0;
    int o = override_class(c);
    if (o >= 0)
        return o == TOK_PUNCT;
    utf8proc_category_t k = utf8proc_category(c);
    return k == UTF8PROC_CATEGORY_PC || k == UTF8PROC_CATEGORY_PD ||
           k == UTF8PROC_CATEGORY_PS || k == UTF8PROC_CATEGORY_PE ||
           k == UTF8PROC_CATEGORY_PI || k == UTF8PROC_CATEGORY_PF ||
           k == UTF8PROC_CATEGORY_PO;
}

static int is_cjk(int32_t c)
{
    return (c >= 0x4e00 && c <= 0x9fff) || (c >= 0x3400 && c <= 0x4dbf) ||
           (c >= 0x20000 && c <= 0x2a6df) || (c >= 0x2a700 && c <= 0x2b73f) ||
           (c >= 0x2b740 && c <= 0x2b81f) || (c >= 0x2b920 && c <= 0x2ceaf) ||
           (c >= 0xf900 && c <= 0xfaff) || (c >= 0x2f800 && c <= 0x2fa1f);
}

typedef struct {
    const elo_tokenizer *t;
    int32_t *ids;
    int count, cap;             /* cap: content tokens allowed */
    char word[MAX_WORD_CHARS_CAP * 4 + 8];
    size_t word_bytes;
    int word_chars;
    int prev_cased;             /* lowercase_input: Final_Sigma context */
    uint64_t word_hash;         /* fast path: fnv_add() state of word[0..word_hashed) */
    size_t word_hashed;
    uint32_t piece_hash[MAX_WORD_CHARS_CAP * 4 + 9]; /* wordpiece() scratch */
} enc_state;

static void push(enc_state *s, int32_t id)
{
    if (s->count < s->cap)
        s->ids[s->count++] = id;
}

/* Greedy longest-match-first WordPiece over w[0..n): writes the piece ids
 * to `pieces` and returns their count, or -1 when a piece is missing. One
 * FNV pass from each piece start gives the hash of every candidate (prefix
 * included), so a word costs O(length x pieces) bytes hashed instead of
 * O(length^2), and no key is copied. `hash` has room for n + 1 values. */
static int wordpiece(const elo_tokenizer *t, const char *w, size_t n, int32_t *pieces,
                     uint32_t *hash)
{
    int npieces = 0;
    size_t start = 0;
    while (start < n) {
        size_t end = n;
        if (end - start > t->max_token_bytes)
            end = start + t->max_token_bytes;
        while (end < n && (w[end] & 0xc0) == 0x80)
            end--;
        const char *pre = start > 0 ? t->prefix : "";
        size_t pre_len = start > 0 ? t->prefix_len : 0;
        uint64_t h = start > 0 ? t->prefix_state : FNV_OFFSET;
        for (size_t k = start; k < end; k++) {
            h = (h ^ (uint8_t)w[k]) * FNV_PRIME;
            hash[k + 1] = fnv_fold(h);  /* hash of the candidate ending at k + 1 */
        }
        int32_t found = -1;
        while (end > start) {
            found = lookup_hashed(t, hash[end], pre, pre_len, w + start, end - start);
            if (found >= 0)
                break;
            do
                end--;
            while (end > start && (w[end] & 0xc0) == 0x80);
        }
        if (found < 0)
            return -1;
        pieces[npieces++] = found;
        start = end;
    }
    return npieces;
}

static void flush_word(enc_state *s)
{
    const elo_tokenizer *t = s->t;
    if (s->word_chars == 0)
        return;
    int chars = s->word_chars;
    size_t n = s->word_bytes;
    size_t hashed = s->word_hashed;
    uint64_t hash = s->word_hash;
    s->word_chars = 0;
    s->word_bytes = 0;
    s->word_hash = FNV_OFFSET;
    s->word_hashed = 0;
    if (chars > t->o.max_chars_per_word) {
        push(s, t->unk);
        return;
    }
    /* Most words are one token: the first candidate, the whole word, is
     * looked up with the hash the fast path made while reading it. */
    if (hashed == n && n <= t->max_token_bytes) {
        int32_t id = lookup_hashed(t, fnv_fold(hash), "", 0, s->word, n);
        if (id >= 0) {
            push(s, id);
            return;
        }
    }
    int32_t pieces[MAX_WORD_CHARS_CAP];
    int npieces = wordpiece(t, s->word, n, pieces, s->piece_hash);
    if (npieces < 0) {
        push(s, t->unk);
        return;
    }
    for (int i = 0; i < npieces; i++)
        push(s, pieces[i]);
}

static void add_char(enc_state *s, int32_t c)
{
    if (is_whitespace(c)) {
        flush_word(s);
        return;
    }
    if (is_punct(c)) {
        flush_word(s);
        s->word_bytes = (size_t)utf8_put(c, s->word);
        s->word_chars = 1;
        flush_word(s);
        return;
    }
    if (s->word_chars <= s->t->o.max_chars_per_word)
        s->word_bytes += (size_t)utf8_put(c, s->word + s->word_bytes);
    s->word_chars++;
}

/* Normalizes one character of the input and feeds the result. */
static void feed(enc_state *s, int32_t c)
{
    const elo_tokenizer_options *o = &s->t->o;
    if (c < 0x80) {
        /* ASCII: no decomposition, no CJK; controls are 0x00-0x1f, 0x7f. */
        if (o->clean_text && (c < 0x20 || c == 0x7f) && c != '\t' && c != '\n' && c != '\r')
            return;
        if (o->lowercase && c >= 'A' && c <= 'Z')
            c += 'a' - 'A';
        add_char(s, c);
        return;
    }
    if (o->clean_text) {
        if (c == 0 || c == 0xfffd || is_control(c))
            return;
        if (is_whitespace(c) || override_class(c) == TOK_SPACE)
            c = ' ';
    }
    int cjk = o->handle_cjk && is_cjk(c);
    if (cjk)
        flush_word(s);
    utf8proc_int32_t parts[32];
    int nparts = 1;
    parts[0] = c;
    if (o->strip_accents) {
        int boundclass = 0;
        utf8proc_ssize_t k =
            utf8proc_decompose_char(c, parts, 32, UTF8PROC_DECOMPOSE, &boundclass);
        nparts = k > 0 && k <= 32 ? (int)k : 1;
        if (k <= 0 || k > 32)
            parts[0] = c;
    }
    for (int i = 0; i < nparts; i++) {
        int32_t p = parts[i];
        if (o->strip_accents && is_mark(p))
            continue;
        if (o->lowercase) {
            if (p == 0x130) { /* the one unconditional multi-char lowercase */
                add_char(s, 'i');
                add_char(s, 0x307);
                continue;
            }
            p = utf8proc_tolower(p);
        }
        add_char(s, p);
    }
    if (cjk)
        flush_word(s);
}

/* ---- lowercasing the input (sentence-transformers' do_lower_case) --------
 * Python's str.lower(): the full lowercase mapping, whose only
 * multi-character case is U+0130 (i + combining dot), and Final_Sigma: a
 * capital sigma preceded by a cased letter and not followed by one
 * (case-ignorable characters skipped both ways) becomes final sigma. */

static int is_cased(int32_t c)
{
    utf8proc_category_t k = utf8proc_category(c);
    return k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL ||
           k == UTF8PROC_CATEGORY_LT || c == 0xaa || c == 0xba ||
           (k == UTF8PROC_CATEGORY_LM && utf8proc_toupper(c) != c);
}

static int is_case_ignorable(int32_t c)
{
    switch (c) {
    case 0x27: case 0x2e: case 0x3a: case 0x5e: case 0x60: case 0xa8: case 0xad: case 0xaf:
    case 0xb4: case 0xb7: case 0xb8: case 0x2018: case 0x2019: case 0x2024: case 0x2027:
    case 0xfe13: case 0xfe52: case 0xfe55: case 0xff07: case 0xff0e: case 0xff1a:
        return 1;
    default:
        break;
    }
    utf8proc_category_t k = utf8proc_category(c);
    return k == UTF8PROC_CATEGORY_MN || k == UTF8PROC_CATEGORY_ME ||
           k == UTF8PROC_CATEGORY_CF || k == UTF8PROC_CATEGORY_LM ||
           k == UTF8PROC_CATEGORY_SK;
}

/* Is a cased letter next, after case-ignorable characters? The look-ahead
 * is capped so that work stays linear in the input. */
#define SIGMA_LOOKAHEAD 256
static int cased_follows(const uint8_t *u, size_t len, size_t i)
{
    for (int n = 0; i < len && n < SIGMA_LOOKAHEAD; n++) {
        int32_t c;
        i += (size_t)utf8_next(u + i, len - i, &c);
        if (!is_case_ignorable(c))
            return is_cased(c);
    }
    return 0;
}

/* The lowercase of `c`, the character before `next` (input offset); two
 * characters for U+0130. `prev_cased` tracks the Final_Sigma context. */
static int lower_char(int32_t c, const uint8_t *u, size_t len, size_t next, int prev_cased,
                      int32_t out[2])
{
    if (c == 0x130) {
        out[0] = 'i';
        out[1] = 0x307;
        return 2;
    }
    if (c == 0x3a3 && prev_cased && !cased_follows(u, len, next))
        out[0] = 0x3c2;
    else
        out[0] = c < 0x80 ? (c >= 'A' && c <= 'Z' ? c + 32 : c) : utf8proc_tolower(c);
    return 1;
}

/* The special token that the lowercased input at `i` starts with (-1 when
 * none) and the input bytes it covers. */
static int match_special_lower(const elo_tokenizer *t, const uint8_t *u, size_t len, size_t i,
                               size_t *used)
{
    for (int k = 0; k < t->special_count; k++) {
        const uint8_t *sp = (const uint8_t *)t->specials[k].text;
        size_t sl = t->specials[k].len, a = 0, b = i;
        while (a < sl && b < len) {
            int32_t sc, ic;
            int na = utf8_next(sp + a, sl - a, &sc), nb = utf8_next(u + b, len - b, &ic);
            if (!na || ic == 0x130 || ic == 0x3a3)
                break; /* a two-character or context-dependent lowercase */
            int32_t lc = ic < 0x80 ? (ic >= 'A' && ic <= 'Z' ? ic + 32 : ic) : utf8proc_tolower(ic);
            if (lc != sc)
                break;
            a += (size_t)na;
            b += (size_t)nb;
        }
        if (a == sl) {
            *used = b - i;
            return k;
        }
    }
    return -1;
}

static int match_special(const elo_tokenizer *t, const char *text, size_t avail)
{
    for (int i = 0; i < t->special_count; i++)
        if (t->specials[i].len <= avail && !memcmp(t->specials[i].text, text, t->specials[i].len))
            return i;
    return -1;
}

/* One step of the general path at u[i] (a character boundary): the
 * special token that starts there, or one character through
 * lowercase_input's lowering and feed(). Returns the offset after it. */
static size_t step(enc_state *s, const uint8_t *u, size_t len, size_t i)
{
    const elo_tokenizer *t = s->t;
    int32_t cp;
    size_t next = i + (size_t)utf8_next(u + i, len - i, &cp);
    if (!t->o.lowercase_input) {
        if (t->special_first[u[i]]) {
            int k = match_special(t, (const char *)u + i, len - i);
            if (k >= 0) {
                flush_word(s);
                push(s, t->specials[k].id);
                return i + t->specials[k].len;
            }
        }
        feed(s, cp);
        return next;
    }
    int32_t low[2];
    size_t used;
    int nl = lower_char(cp, u, len, next, s->prev_cased, low);
    char first[4];
    utf8_put(low[0], first);
    if (t->special_first[(uint8_t)first[0]]) {
        int k = match_special_lower(t, u, len, i, &used);
        if (k >= 0) {
            flush_word(s);
            push(s, t->specials[k].id);
            s->prev_cased = 0; /* special tokens hold no letter whose case matters */
            return i + used;
        }
    }
    if (!is_case_ignorable(cp))
        s->prev_cased = is_cased(cp);
    for (int j = 0; j < nl; j++)
        feed(s, low[j]);
    return next;
}

/* Fills t->ascii from the general path's own functions, so that the fast
 * path does for each ASCII byte exactly what step() would: lowercase_input
 * lowers it, a byte that may then start a special token stays general,
 * and the rest is feed()'s cleaning, lowercasing and add_char()'s class.
 * Run again whenever an option it reads changes. */
static void tok_prepare(elo_tokenizer *t)
{
    const elo_tokenizer_options *o = &t->o;
    t->prefix_state = fnv_add(FNV_OFFSET, t->prefix, t->prefix_len);
    for (int32_t b = 0; b < 128; b++) {
        ascii_action *a = &t->ascii[b];
        int32_t c = o->lowercase_input && b >= 'A' && b <= 'Z' ? b + 32 : b;
        a->cased = (int8_t)(!o->lowercase_input || is_case_ignorable(b) ? -1 : is_cased(b));
        a->id = -1;
        a->c = (char)c;
        if (t->special_first[c])
            a->kind = ASCII_GENERAL;
        else if (o->clean_text && (c < 0x20 || c == 0x7f) && c != '\t' && c != '\n' && c != '\r')
            a->kind = ASCII_DROP;
        else {
            if (o->lowercase && c >= 'A' && c <= 'Z')
                a->c = (char)(c + 32);
            if (is_whitespace(a->c)) {
                a->kind = ASCII_SPACE;
            } else if (is_punct(a->c)) {
                a->kind = ASCII_PUNCT;
                a->id = lookup(t, &a->c, 1); /* a one-character word: itself or [UNK] */
                if (a->id < 0)
                    a->id = t->unk;
            } else {
                a->kind = ASCII_WORD;
            }
        }
    }
}

/* The fast path: ASCII bytes through t->ascii, the rest through step(). */
static void encode_fast(enc_state *s, const uint8_t *u, size_t len)
{
    const elo_tokenizer *t = s->t;
    int max_chars = t->o.max_chars_per_word;
    size_t i = 0;
    while (i < len && s->count < s->cap) {
        if (u[i] >= 0x80 || t->ascii[u[i]].kind == ASCII_GENERAL) {
            i = step(s, u, len, i);
            continue;
        }
        const ascii_action *a = &t->ascii[u[i]];
        if (a->kind == ASCII_WORD) {
            /* A run of word bytes, counted in locals: a store into s->word
             * may alias the other fields of *s, which would otherwise be
             * reloaded for every byte. */
            size_t bytes = s->word_bytes;
            int chars = s->word_chars, cased = s->prev_cased;
            uint64_t h = s->word_hash;
            do {
                if (chars <= max_chars) {
                    s->word[bytes++] = a->c;
                    h = (h ^ (uint8_t)a->c) * FNV_PRIME;
                }
                chars++;
                if (a->cased >= 0)
                    cased = a->cased;
            } while (++i < len && u[i] < 0x80 && (a = &t->ascii[u[i]])->kind == ASCII_WORD);
            if (s->word_hashed == s->word_bytes) { /* else step() added bytes: stale */
                s->word_hash = h;
                s->word_hashed = bytes;
            }
            s->word_bytes = bytes;
            s->word_chars = chars;
            s->prev_cased = cased;
            continue;
        }
        i++;
        if (a->cased >= 0)
            s->prev_cased = a->cased;
        switch (a->kind) {
        case ASCII_SPACE:
            flush_word(s);
            break;
        case ASCII_PUNCT:
            flush_word(s);
            push(s, a->id);
            break;
        default: /* ASCII_DROP */
            break;
        }
    }
}

/* The offset of the first invalid UTF-8 sequence, or len. Eight ASCII
 * bytes at a time where it can. */
static size_t utf8_check(const uint8_t *u, size_t len)
{
    size_t i = 0;
    while (i < len) {
        if (len - i >= 8) {
            uint64_t chunk;
            memcpy(&chunk, u + i, 8);
            if (!(chunk & 0x8080808080808080ull)) {
                i += 8;
                continue;
            }
        }
        int32_t cp;
        int n = utf8_next(u + i, len - i, &cp);
        if (!n)
            return i;
        i += (size_t)n;
    }
    return len;
}

int elo_tokenizer_encode(const elo_tokenizer *t, const char *text, size_t len,
                         int32_t *ids, int max_tokens)
{
    if (max_tokens < 2)
        return elo_seterr(ELO_BADINPUT, "max_tokens %d: needs room for [CLS] and [SEP]",
                          max_tokens);
    const uint8_t *u = (const uint8_t *)text;
    size_t bad = utf8_check(u, len);
    if (bad < len)
        return elo_seterr(ELO_BADINPUT, "invalid UTF-8 at byte offset %zu (byte 0x%02x)", bad,
                          u[bad]);
    enc_state *s = elo_malloc(sizeof *s);
    if (!s)
        return elo_seterr(ELO_NOMEM, "out of memory");
    s->t = t;
    s->ids = ids + 1;
    s->count = 0;
    s->cap = max_tokens - 2;
    s->word_bytes = 0;
    s->word_chars = 0;
    s->prev_cased = 0;
    s->word_hash = FNV_OFFSET;
    s->word_hashed = 0;
    if (t->general_only) {
        for (size_t i = 0; i < len && s->count < s->cap;)
            i = step(s, u, len, i);
    } else {
        encode_fast(s, u, len);
    }
    flush_word(s);
    int count = s->count;
    elo_free(s);
    ids[0] = t->cls;
    ids[count + 1] = t->sep;
    return count + 2;
}
