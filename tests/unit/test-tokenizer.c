/* test-tokenizer.c - the WordPiece tokenizer against hand-worked cases
 * (a small vocabulary), the tiny-bert fixture's ids, and malformed input:
 * invalid UTF-8, broken vocabularies and tokenizer.json files; and the
 * ASCII fast path against the general path on random texts, for every
 * option combination. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "elohim/core.h"
#include "elohim/embed.h"
#include "embed/embed-impl.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static const char VOCAB[] =
    "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n"          /* 0-4 */
    "hello\nworld\n!\n,\n.\n"                       /* 5-9 */
    "un\n##aff\n##able\nrun\n##ning\n"              /* 10-14 */
    "cafe\n中\n文\na\n##b\n"                        /* 15-19 */
    "'\ns\nx\n$\nhi\n";                             /* 20-24 */

static elo_tokenizer *small(int lowercase)
{
    elo_tokenizer_options o;
    elo_tokenizer_options_default(&o);
    o.lowercase = lowercase;
    o.strip_accents = lowercase;
    elo_tokenizer *t = NULL;
    assert_int_equal(elo_tokenizer_from_vocab("vocab", VOCAB, strlen(VOCAB), &o, &t), ELO_OK);
    assert_non_null(t);
    return t;
}

/* Encodes `text` and compares with the expected ids (terminated by -1). */
static void expect_ids(const elo_tokenizer *t, const char *text, size_t len, int max_tokens,
                       const int *want)
{
    int32_t ids[600];
    int n = elo_tokenizer_encode(t, text, len, ids, max_tokens);
    int wn = 0;
    while (want[wn] >= 0)
        wn++;
    if (n != wn) {
        fprintf(stderr, "'%s': %d ids, want %d:", text, n, wn);
        for (int i = 0; i < n; i++)
            fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "\n");
    }
    assert_int_equal(n, wn);
    for (int i = 0; i < n; i++)
        assert_int_equal(ids[i], want[i]);
}
#define EXPECT(t, s, ...)                                                       \
    do {                                                                        \
        static const int w_[] = {__VA_ARGS__, -1};                              \
        expect_ids(t, s, strlen(s), 512, w_);                                   \
    } while (0)

static void test_basic(void **state)
{
    (void)state;
    elo_tokenizer *t = small(1);
    assert_int_equal(elo_tokenizer_vocab_size(t), 25);
    assert_string_equal(elo_tokenizer_token(t, 5), "hello");
    assert_null(elo_tokenizer_token(t, 25));
    assert_int_equal(elo_tokenizer_lookup(t, "##able"), 12);
    assert_int_equal(elo_tokenizer_lookup(t, "nope"), -1);
    EXPECT(t, "", 2, 3);
    EXPECT(t, "Hello, World!", 2, 5, 8, 6, 7, 3);
    EXPECT(t, "  hello\t\n\r world  ", 2, 5, 6, 3);
    EXPECT(t, "unaffable running", 2, 10, 11, 12, 13, 14, 3);
    /* A missing piece makes the whole word [UNK]. */
    EXPECT(t, "unaffablex", 2, 1, 3);
    EXPECT(t, "abab", 2, 1, 3);  /* a, ##b, then "##a" is missing: all [UNK] */
    /* Accents stripped by NFD, lowercased: CAFÉ -> cafe. */
    EXPECT(t, "CAF\xc3\x89", 2, 15, 3);
    EXPECT(t, "cafe\xcc\x81", 2, 15, 3);               /* e + combining acute */
    /* Punctuation splits; ASCII symbols like $ count as punctuation. */
    EXPECT(t, "it's", 2, 1, 20, 21, 3);
    EXPECT(t, "$x$", 2, 23, 22, 23, 3);
    /* Control characters vanish; NBSP, ideographic space split words. */
    EXPECT(t, "hel\x01lo", 2, 5, 3);
    EXPECT(t, "hello\xc2\xa0world\xe3\x80\x80hi", 2, 5, 6, 24, 3);
    /* Zero-width space is a format char (Cf): dropped, joins the word. */
    EXPECT(t, "hel\xe2\x80\x8blo", 2, 5, 3);
    /* Unassigned code points (U+0378) stay in the word, as the reference
     * keeps them; U+061D, punctuation in today's Unicode but not in the
     * reference's tables, is an ordinary character there too. */
    EXPECT(t, "a\xcd\xb8", 2, 1, 3);
    EXPECT(t, "a\xd8\x9d", 2, 1, 3);
    EXPECT(t, "a\xd8\x9f", 2, 18, 1, 3);   /* U+061F ARABIC QUESTION MARK: punctuation */
    /* Special tokens are recognized in the raw text, exact case only. */
    EXPECT(t, "hello[SEP]world", 2, 5, 3, 6, 3);
    EXPECT(t, "[MASK][PAD]", 2, 4, 0, 3);
    EXPECT(t, "[sep]", 2, 1, 1, 1, 3);   /* "[", "sep", "]": sep is unknown */
    elo_tokenizer_free(t);
}

/* CJK ideographs are words of their own, even inside other text. */
static void test_cjk(void **state)
{
    (void)state;
    elo_tokenizer *t = small(1);
    /* "a中文a": a | 中 | 文 | a */
    static const int w[] = {2, 18, 16, 17, 18, 3, -1};
    const char *s = "a\xe4\xb8\xad\xe6\x96\x87" "a";
    expect_ids(t, s, strlen(s), 64, w);
    elo_tokenizer_free(t);
}

static void test_long_words_and_truncation(void **state)
{
    (void)state;
    elo_tokenizer *t = small(1);
    char buf[400];
    /* 100 characters is still a word; 101 is [UNK]. */
    memset(buf, 'a', 100);
    buf[100] = 0;
    int32_t ids[600];
    int n = elo_tokenizer_encode(t, buf, 100, ids, 512);
    assert_int_equal(n, 3);   /* "aaaa..." -> "a" + "##a"? missing -> [UNK] */
    assert_int_equal(ids[1], 1);
    memcpy(buf, "ab", 2);
    for (int i = 2; i < 100; i += 2)
        memcpy(buf + i, "bb", 2);
    buf[100] = 0;             /* "a" then 99 "b": a ##b x 99 */
    n = elo_tokenizer_encode(t, buf, 100, ids, 512);
    assert_int_equal(n, 102);
    assert_int_equal(ids[1], 18);
    assert_int_equal(ids[100], 19);
    buf[100] = 'b';
    buf[101] = 0;             /* 101 chars: [UNK] */
    n = elo_tokenizer_encode(t, buf, 101, ids, 512);
    assert_int_equal(n, 3);
    assert_int_equal(ids[1], 1);
    /* Truncation keeps the first max-2 pieces, then [SEP]. */
    n = elo_tokenizer_encode(t, "hello world hello world", 23, ids, 4);
    assert_int_equal(n, 4);
    assert_int_equal(ids[0], 2);
    assert_int_equal(ids[1], 5);
    assert_int_equal(ids[2], 6);
    assert_int_equal(ids[3], 3);
    /* Cut inside a word's pieces, as the reference does. */
    n = elo_tokenizer_encode(t, "unaffable", 9, ids, 4);
    assert_int_equal(n, 4);
    assert_int_equal(ids[1], 10);
    assert_int_equal(ids[2], 11);
    assert_int_equal(elo_tokenizer_encode(t, "x", 1, ids, 1), ELO_BADINPUT);
    /* A huge text costs only what the first tokens need. */
    size_t big = 50u << 20;
    char *huge = malloc(big);
    assert_non_null(huge);
    for (size_t i = 0; i < big; i += 6)
        memcpy(huge + i, "hello ", ELO_MIN(6, big - i));
    n = elo_tokenizer_encode(t, huge, big, ids, 128);
    assert_int_equal(n, 128);
    assert_int_equal(ids[127], 3);
    free(huge);
    elo_tokenizer_free(t);
}

static void test_cased(void **state)
{
    (void)state;
    elo_tokenizer *t = small(0);
    EXPECT(t, "Hello hello", 2, 1, 5, 3);
    EXPECT(t, "caf\xc3\xa9", 2, 1, 3);   /* accent kept: not in the vocabulary */
    elo_tokenizer_free(t);
}

/* sentence-transformers' do_lower_case: Python's str.lower() of the text
 * before anything else, so "[CLS]" in text is no longer a special token,
 * U+0130 becomes two characters and a word-final capital sigma becomes
 * the final form. The tokenizer itself is cased here to isolate it. */
static void test_lowercase_input(void **state)
{
    (void)state;
    static const char V[] =
        "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n"            /* 0-4 */
        "hello\n[\ncl\n##s\n]\n"                           /* 5-9 */
        "\xce\xbf\xce\xb4\xce\xbf\xcf\x82\n"             /* 10: odos, final sigma */
        "\xce\xbf\xce\xb4\xce\xbf\xcf\x83\n"             /* 11: odos, medial sigma */
        "\xcf\x83\n"                                       /* 12: sigma */
        "\xcf\x83\xce\xb1\n"                               /* 13: sigma alpha */
        "i\n##\xcc\x87\n"                                   /* 14-15: i, ##dot */
        "[mask]\n";                                         /* 16 */
    elo_tokenizer_options o;
    elo_tokenizer_options_default(&o);
    o.lowercase = o.strip_accents = 0;
    elo_tokenizer *t = NULL;
    assert_int_equal(elo_tokenizer_from_vocab("vocab", V, strlen(V), &o, &t), ELO_OK);
    EXPECT(t, "HELLO [CLS]", 2, 1, 2, 3);            /* cased: unknown word, special */
    elo_tokenizer_set_lowercase_input(t, 1);
    EXPECT(t, "HELLO [CLS]", 2, 5, 6, 7, 8, 9, 3);
    /* ODOS: final sigma; alone or before a letter: the medial form. */
    EXPECT(t, "\xce\x9f\xce\x94\xce\x9f\xce\xa3", 2, 10, 3);
    EXPECT(t, "\xce\xa3", 2, 12, 3);
    EXPECT(t, "\xce\xa3\xce\x91", 2, 13, 3);
    EXPECT(t, "\xc4\xb0", 2, 14, 15, 3);            /* U+0130 -> i + U+0307 */
    elo_tokenizer_free(t);
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    elo_tokenizer *t = small(1);
    static const struct {
        const char *s;
        size_t len, offset;
    } bad[] = {
        {"ab\xff", 3, 2},                 /* never valid */
        {"hello \xc3", 7, 6},             /* truncated 2-byte */
        {"\xe2\x82", 2, 0},               /* truncated 3-byte */
        {"x\xc0\xaf", 3, 1},              /* overlong '/' */
        {"\xe0\x80\xaf", 3, 0},           /* overlong 3-byte */
        {"ok\xed\xa0\x80", 5, 2},         /* surrogate U+D800 */
        {"\xf4\x90\x80\x80", 4, 0},       /* past U+10FFFF */
        {"a\x80", 2, 1},                  /* lone continuation */
        {"abc\xf0\x9f\x99", 6, 3},        /* truncated emoji */
    };
    int32_t ids[64];
    for (size_t i = 0; i < ELO_ARRAY_LEN(bad); i++) {
        assert_int_equal(elo_tokenizer_encode(t, bad[i].s, bad[i].len, ids, 64), ELO_BADINPUT);
        char want[64];
        snprintf(want, sizeof want, "byte offset %zu", bad[i].offset);
        assert_non_null(strstr(elo_errmsg(), want));
    }
    /* An invalid byte far past the truncation point is still reported. */
    char buf[4000];
    memset(buf, 'a', sizeof buf);
    for (size_t i = 1; i < sizeof buf; i += 2)
        buf[i] = ' ';
    buf[3999] = (char)0xfe;
    assert_int_equal(elo_tokenizer_encode(t, buf, sizeof buf, ids, 8), ELO_BADINPUT);
    assert_non_null(strstr(elo_errmsg(), "byte offset 3999"));
    /* NUL bytes are data (dropped by cleaning), not an end of string. */
    EXPECT(t, "", 2, 3);
    static const int w[] = {2, 5, 3, -1};
    expect_ids(t, "hel\0lo", 6, 64, w);
    elo_tokenizer_free(t);
}

static void test_bad_vocab(void **state)
{
    (void)state;
    elo_tokenizer *t = NULL;
    assert_int_equal(elo_tokenizer_from_vocab("v", "", 0, NULL, &t), ELO_CORRUPT);
    assert_null(t);
    const char *no_unk = "[CLS]\n[SEP]\nhello\n";
    assert_int_equal(elo_tokenizer_from_vocab("v", no_unk, strlen(no_unk), NULL, &t),
                     ELO_CORRUPT);
    assert_non_null(strstr(elo_errmsg(), "[UNK]"));
    const char *bad_utf8 = "[UNK]\n[CLS]\n[SEP]\nbad\xff\n";
    assert_int_equal(elo_tokenizer_from_vocab("v", bad_utf8, strlen(bad_utf8), NULL, &t),
                     ELO_CORRUPT);
    assert_non_null(strstr(elo_errmsg(), "v:4"));
    /* CRLF line ends and a missing final newline are fine. */
    const char *crlf = "[UNK]\r\n[CLS]\r\n[SEP]\r\nhello";
    assert_int_equal(elo_tokenizer_from_vocab("v", crlf, strlen(crlf), NULL, &t), ELO_OK);
    assert_int_equal(elo_tokenizer_lookup(t, "hello"), 3);
    assert_int_equal(elo_tokenizer_lookup(t, "[SEP]"), 2);
    elo_tokenizer_free(t);
}

static void test_bad_json(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "[]",
        "{\"model\": 1}",
        "{\"model\": {\"vocab\": []}}",
        "{\"model\": {\"vocab\": {}}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"[UNK]\": 0}}}",
        "{\"model\": {\"vocab\": {\"[UNK]\": -1}}}",
        "{\"model\": {\"vocab\": {\"[UNK]\": 0, \"[CLS]\": 0, \"[SEP]\": 1}}}",
        "{\"model\": {\"vocab\": {\"[UNK]\": 0, \"[CLS]\": 1}}}",
        "{\"model\": {\"vocab\": {\"[UNK]\": 0, \"[CLS]\": 1, \"[SEP]\": 2}},"
        " \"normalizer\": {\"type\": \"NFKC\"}}",
        "{\"model\": {\"vocab\": {\"[UNK]\": 0, \"[CLS]\": 1, \"[SEP]\": 2}},"
        " \"pre_tokenizer\": {\"type\": \"Whitespace\"}}",
        "{\"model\": {\"vocab\": {\"[UNK]\": 0, \"[CLS]\": 1, \"[SEP]\": 2}},"
        " \"added_tokens\": [{\"content\": \"[X]\", \"id\": 99}]}",
        "{\"model\": {\"vocab\": {\"[UNK]\": 0, \"[CLS]\": 1, \"[SEP]\": 2},"
        " \"max_input_chars_per_word\": 0}}",
        "{\"model\": {\"vocab\": {\"[UNK]\": 0, \"[CLS]\": 1, \"[SEP]\": 2, \"[UNK]\": 3}}}",
    };
    for (size_t i = 0; i < ELO_ARRAY_LEN(bad); i++) {
        elo_tokenizer *t = NULL;
        int rc = elo_tokenizer_from_json("tokenizer.json", bad[i], strlen(bad[i]), &t);
        if (rc >= 0)
            fprintf(stderr, "case %zu accepted\n", i);
        assert_true(rc < 0);
        assert_null(t);
        assert_non_null(strstr(elo_errmsg(), "tokenizer.json"));
    }
    const char *good = "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"[UNK]\": 0, "
                       "\"[CLS]\": 1, \"[SEP]\": 2, \"hi\": 3, \"<x>\": 4}},"
                       " \"normalizer\": {\"type\": \"BertNormalizer\", \"lowercase\": false},"
                       " \"added_tokens\": [{\"content\": \"<x>\", \"id\": 4}]}";
    elo_tokenizer *t = NULL;
    assert_int_equal(elo_tokenizer_from_json("t", good, strlen(good), &t), ELO_OK);
    EXPECT(t, "hi<x>HI", 1, 3, 4, 0, 2);
    elo_tokenizer_free(t);
}

static void test_fixture_ids(void **state)
{
    (void)state;
    const char *shared = getenv("ELOHIM_SHARED");
    char path[4096];
    snprintf(path, sizeof path, "%s/fixtures/tiny_bert_public.json", shared ? shared : "../shared");
    json_error_t jerr;
    json_t *ref = json_load_file(path, 0, &jerr);
    assert_non_null(ref);
    snprintf(path, sizeof path, "%s/fixtures/tiny-bert", shared ? shared : "../shared");
    elo_tokenizer *t = NULL;
    assert_int_equal(elo_tokenizer_open_dir(path, &t), ELO_OK);
    size_t i;
    json_t *c;
    int checked = 0;
    json_array_foreach(json_object_get(ref, "cases"), i, c) {
        const char *text = json_string_value(json_object_get(c, "text"));
        json_t *want = json_object_get(c, "input_ids");
        int32_t ids[128];
        int n = elo_tokenizer_encode(t, text, strlen(text), ids, 128);
        assert_int_equal(n, (int)json_array_size(want));
        for (int k = 0; k < n; k++)
            assert_int_equal(ids[k], json_integer_value(json_array_get(want, k)));
        checked++;
    }
    assert_true(checked >= 18);
    elo_tokenizer_free(t);
    json_decref(ref);
}

/* ---- the fast path against the general path ------------------------------ */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

#define FRAG(s) {s, sizeof s - 1}
static const struct {
    const char *s;
    size_t n;
} FRAGMENTS[] = {
    /* ASCII words, digits, punctuation */
    FRAG("a"), FRAG("b"), FRAG("c"), FRAG("ab"), FRAG("abc"), FRAG("A"), FRAG("B"), FRAG("Ab"),
    FRAG("hello"), FRAG("Hello"), FRAG("HELLO"), FRAG("world"), FRAG("the"), FRAG("running"),
    FRAG("un"), FRAG("s"), FRAG("x"), FRAG("1"), FRAG("42"), FRAG("2024"), FRAG("."), FRAG(","),
    FRAG("!"), FRAG("'"), FRAG("#"), FRAG("##"), FRAG("$"), FRAG("-"), FRAG("("), FRAG(")"),
    FRAG("["), FRAG("]"), FRAG("<x>"), FRAG("\\"), FRAG("^"), FRAG("`"), FRAG("~"), FRAG("_"),
    /* whitespace and control characters, NUL included */
    FRAG(" "), FRAG(" "), FRAG(" "), FRAG("  "), FRAG("\t"), FRAG("\n"), FRAG("\r"),
    FRAG("\r\n"), FRAG("\x0b"), FRAG("\x0c"), FRAG("\x01"), FRAG("\x1f"), FRAG("\x7f"),
    FRAG("\0"),
    /* special tokens, in and out of case */
    FRAG("[CLS]"), FRAG("[SEP]"), FRAG("[MASK]"), FRAG("[PAD]"), FRAG("[UNK]"), FRAG("[cls]"),
    FRAG("[Mask]"), FRAG("[CLS"), FRAG("[SEP]]"),
    /* accents (precomposed and combining), CJK, sharp s, dotted I, sigmas */
    FRAG("\xc3\xa9"), FRAG("\xc3\x89"), FRAG("e\xcc\x81"), FRAG("\xcc\x81"),
    FRAG("\xe4\xb8\xad"), FRAG("\xe6\x96\x87"), FRAG("\xc3\x9f"), FRAG("\xe1\xba\x9e"),
    FRAG("\xc4\xb0"), FRAG("\xce\xa3"), FRAG("\xcf\x83"), FRAG("\xcf\x82"),
    FRAG("\xce\x9f\xce\x94\xce\x9f\xce\xa3"),
    /* NBSP, ideographic space, ZWSP, U+FFFD, NEL, soft hyphen, right quote,
     * emoji, U+061F, unassigned U+0378, fi ligature, Angstrom sign */
    FRAG("\xc2\xa0"), FRAG("\xe3\x80\x80"), FRAG("\xe2\x80\x8b"), FRAG("\xef\xbf\xbd"),
    FRAG("\xc2\x85"), FRAG("\xc2\xad"), FRAG("\xe2\x80\x99"), FRAG("\xf0\x9f\x98\x80"),
    FRAG("\xd8\x9f"), FRAG("\xcd\xb8"), FRAG("\xef\xac\x81"), FRAG("\xe2\x84\xab"),
};

/* A random text in buf (room for 2048 bytes) from the fragments above,
 * random ASCII bytes and words of 90-130 letters; one in 40 texts gets a
 * byte that breaks UTF-8. Returns its length. */
static size_t random_text(char *buf)
{
    size_t n = 0;
    int parts = (int)rnd(40);
    for (int p = 0; p < parts; p++) {
        uint32_t pick = rnd(20);
        if (pick == 0) {
            buf[n++] = (char)rnd(128);
        } else if (pick == 1) {
            static const char letters[] = "abcB";
            for (uint32_t k = 90 + rnd(41); k > 0; k--)
                buf[n++] = letters[rnd(4)];
        } else {
            uint32_t f = rnd((uint32_t)ELO_ARRAY_LEN(FRAGMENTS));
            memcpy(buf + n, FRAGMENTS[f].s, FRAGMENTS[f].n);
            n += FRAGMENTS[f].n;
        }
    }
    if (rnd(40) == 0 && n > 0)
        buf[rnd((uint32_t)n)] = rnd(2) ? (char)0xff : (char)0xc3;
    return n;
}

/* Encodes `text` on both paths; they must agree on the result, the ids
 * and, for an error, the message. */
static void compare_paths(elo_tokenizer *t, const char *what, const char *text, size_t len,
                          int max_tokens)
{
    int32_t fast[600], general[600];
    char fast_msg[256];
    elo__tokenizer_set_general(t, 0);
    int nf = elo_tokenizer_encode(t, text, len, fast, max_tokens);
    snprintf(fast_msg, sizeof fast_msg, "%s", nf < 0 ? elo_errmsg() : "");
    elo__tokenizer_set_general(t, 1);
    int ng = elo_tokenizer_encode(t, text, len, general, max_tokens);
    elo__tokenizer_set_general(t, 0);
    int same = nf == ng && (nf >= 0 || !strcmp(fast_msg, elo_errmsg()));
    for (int i = 0; same && i < nf; i++)
        same = fast[i] == general[i];
    if (!same) {
        fprintf(stderr, "%s, max_tokens %d: the paths differ on \"", what, max_tokens);
        for (size_t i = 0; i < len; i++)
            fprintf(stderr, (uint8_t)text[i] < 0x20 || (uint8_t)text[i] >= 0x7f ? "\\x%02x" : "%c",
                    (uint8_t)text[i]);
        fprintf(stderr, "\"\n  fast   :");
        for (int i = 0; i < nf; i++)
            fprintf(stderr, " %d", fast[i]);
        fprintf(stderr, "\n  general:");
        for (int i = 0; i < ng; i++)
            fprintf(stderr, " %d", general[i]);
        fprintf(stderr, "\n");
    }
    assert_true(same);
}

static void compare_random(elo_tokenizer *t, const char *what, int texts)
{
    static const int caps[] = {2, 3, 5, 16, 64, 512};
    char buf[2048];
    for (int i = 0; i < texts; i++) {
        size_t len = random_text(buf);
        compare_paths(t, what, buf, len, caps[rnd((uint32_t)ELO_ARRAY_LEN(caps))]);
    }
}

/* Tokens that the fragments hit: whole words, "##" pieces, accented and
 * CJK characters, single punctuation. */
static const char DIFF_VOCAB[] =
    "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n"
    "a\nb\nc\nab\nabc\nba\n##a\n##b\n##c\n##ab\n##bc\n##bab\nA\n##B\nAb\n"
    "hello\nHello\nworld\nthe\nrun\n##ning\nrunning\nun\n##s\ns\nx\n##x\n"
    "1\n##1\n42\n##2\n20\n##24\n.\n,\n!\n'\n#\n[\n]\n<\n>\n$\n-\n(\n"
    "cls\nmask\nCLS\n"
    "e\n##e\n\xc3\xa9\n##\xc3\xa9\n\xc3\x89\n\xe4\xb8\xad\n\xe6\x96\x87\n"
    "\xc3\x9f\n##\xc3\x9f\nss\ni\n##\xcc\x87\n\xcf\x83\n\xcf\x82\n"
    "\xce\xbf\xce\xb4\xce\xbf\xcf\x82\n\xce\x9f\n##\xce\x94\n\xe2\x80\x99\n";

static void test_fast_path(void **state)
{
    (void)state;
    /* Every option combination, two word-length caps. */
    for (int mask = 0; mask < 64; mask++) {
        elo_tokenizer_options o;
        elo_tokenizer_options_default(&o);
        o.lowercase = mask & 1;
        o.strip_accents = mask >> 1 & 1;
        o.handle_cjk = mask >> 2 & 1;
        o.clean_text = mask >> 3 & 1;
        o.lowercase_input = mask >> 4 & 1;
        o.max_chars_per_word = mask & 32 ? 7 : 100;
        elo_tokenizer *t = NULL;
        assert_int_equal(
            elo_tokenizer_from_vocab("vocab", DIFF_VOCAB, strlen(DIFF_VOCAB), &o, &t), ELO_OK);
        char what[64];
        snprintf(what, sizeof what, "options %d", mask);
        compare_random(t, what, 400);
        elo_tokenizer_free(t);
    }
    /* Added tokens that start with letters (the fast path must hand those
     * bytes to the general path), one of them non-ASCII, and a longer
     * continuation prefix. */
    json_t *vocab = json_object();
    const char *line = DIFF_VOCAB;
    for (int id = 0; *line; id++) {
        const char *end = strchr(line, '\n');
        char tok[64];
        snprintf(tok, sizeof tok, "%.*s", (int)(end - line), line);
        json_object_set_new(vocab, tok, json_integer(id));
        line = end + 1;
    }
    json_object_set_new(vocab, "@@ab", json_integer(1000));
    json_object_set_new(vocab, "@@b", json_integer(1001));
    json_t *root = json_pack("{s:{s:s, s:o, s:s, s:i}, s:{s:s, s:b}, s:[{s:s,s:i}, {s:s,s:i},"
                             " {s:s,s:i}, {s:s,s:i}]}",
                             "model", "type", "WordPiece", "vocab", vocab,
                             "continuing_subword_prefix", "@@", "max_input_chars_per_word", 50,
                             "normalizer", "type", "BertNormalizer", "lowercase", 1,
                             "added_tokens", "content", "[CLS]", "id", 2, "content", "ab", "id", 8,
                             "content", "Hello", "id", 21, "content", "\xc3\xa9", "id", 55);
    assert_non_null(root);
    char *text = json_dumps(root, 0);
    json_decref(root);
    elo_tokenizer *t = NULL;
    assert_int_equal(elo_tokenizer_from_json("tokenizer.json", text, strlen(text), &t), ELO_OK);
    free(text);
    compare_random(t, "added tokens", 3000);
    elo_tokenizer_set_lowercase_input(t, 1);
    compare_random(t, "added tokens, lowercase_input", 3000);
    elo_tokenizer_free(t);
    /* The fixture's vocabulary (uncased BERT, cut down). */
    const char *shared = getenv("ELOHIM_SHARED");
    char path[4096];
    snprintf(path, sizeof path, "%s/fixtures/tiny-bert", shared ? shared : "../shared");
    assert_int_equal(elo_tokenizer_open_dir(path, &t), ELO_OK);
    compare_random(t, "tiny-bert", 5000);
    elo_tokenizer_set_lowercase_input(t, 1);
    compare_random(t, "tiny-bert, lowercase_input", 5000);
    elo_tokenizer_free(t);
    /* The default model's 30522 tokens, when `make model` has fetched it. */
    if (elo_tokenizer_open_dir("models/all-MiniLM-L6-v2", &t) == ELO_OK) {
        compare_random(t, "all-MiniLM-L6-v2", 5000);
        elo_tokenizer_free(t);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_cjk),
        cmocka_unit_test(test_long_words_and_truncation),
        cmocka_unit_test(test_cased),
        cmocka_unit_test(test_lowercase_input),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_bad_vocab),
        cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_fixture_ids),
        cmocka_unit_test(test_fast_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
