/* fuzz-tokenizer.c - libFuzzer harness for the WordPiece tokenizer: the
 * first byte picks options (two bits) and a token cap (six), the rest is the text (any
 * bytes: invalid UTF-8 must be an error, never a crash). The fast path's
 * ids must equal the general path's. Also feeds the bytes to the vocab.txt
 * and tokenizer.json readers. */
#include "elohim/core.h"
#include "elohim/embed.h"
#include "embed/embed-impl.h"

#include <string.h>

static const char VOCAB[] =
    "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\n##s\nrun\n##ning\n!\n.\na\n##b\n##c\nb\nc\n"
    "\xe4\xb8\xad\n\xc3\xa9\n##\xc3\xa9\ncafe\n[\n]\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static elo_tokenizer *tok[4];
    if (!tok[0]) {
        elo_tokenizer_options o;
        elo_tokenizer_options_default(&o);
        o.max_chars_per_word = 12;
        elo_tokenizer_from_vocab("v", VOCAB, sizeof VOCAB - 1, &o, &tok[0]);
        o.lowercase = o.strip_accents = o.handle_cjk = o.clean_text = 0;
        elo_tokenizer_from_vocab("v", VOCAB, sizeof VOCAB - 1, &o, &tok[1]);
        o.lowercase_input = 1;  /* sentence-transformers' do_lower_case */
        elo_tokenizer_from_vocab("v", VOCAB, sizeof VOCAB - 1, &o, &tok[2]);
        elo_tokenizer_options_default(&o);
        o.lowercase_input = 1;
        elo_tokenizer_from_vocab("v", VOCAB, sizeof VOCAB - 1, &o, &tok[3]);
    }
    if (size == 0)
        return 0;
    int cap = 2 + data[0] % 64;
    elo_tokenizer *t = tok[data[0] >> 6];
    int32_t ids[66], general[66];
    int n = elo_tokenizer_encode(t, (const char *)data + 1, size - 1, ids, cap);
    if (n >= 0) {
        if (n < 2 || n > cap)
            __builtin_trap();
        for (int i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= elo_tokenizer_vocab_size(t))
                __builtin_trap();
    }
    elo__tokenizer_set_general(t, 1);
    int ng = elo_tokenizer_encode(t, (const char *)data + 1, size - 1, general, cap);
    elo__tokenizer_set_general(t, 0);
    if (ng != n || (n > 0 && memcmp(ids, general, sizeof ids[0] * (size_t)n)))
        __builtin_trap();
    elo_tokenizer *v = NULL;
    if (elo_tokenizer_from_vocab("fuzz", (const char *)data, size, NULL, &v) == ELO_OK) {
        elo_tokenizer_encode(v, "hello world [SEP] x", 19, ids, 16);
        elo_tokenizer_free(v);
    }
    if (elo_tokenizer_from_json("fuzz", (const char *)data, size, &v) == ELO_OK) {
        elo_tokenizer_encode(v, "hello world [SEP] x", 19, ids, 16);
        elo_tokenizer_free(v);
    }
    return 0;
}
