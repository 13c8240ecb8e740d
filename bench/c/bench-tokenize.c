/* bench-tokenize.c - times elo_tokenizer_encode alone on a few texts with
 * the real model's tokenizer (models/all-MiniLM-L6-v2, or the folder given
 * as argv[1]): 30 and 126 repeats of "hello ", English sentences with
 * punctuation, and a mixed non-ASCII text. Prints the best of 300 short
 * rounds in ns per text (short rounds: on a shared machine some of them
 * run undisturbed), and a checksum of the ids so that two builds can
 * be compared for identical output. Used while tuning the tokenizer. */
#include "elohim/core.h"
#include "elohim/embed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char ENGLISH[] =
    "The quick brown fox jumps over the lazy dog. It's a well-known pangram, "
    "used by typists (and font designers) since the late 19th century! "
    "Dr. Smith's lab measured 3.5 kg of samples on 2024-03-15; results were "
    "\"inconclusive\", according to the report. Why does tokenization matter? "
    "Because every embedding starts with it: words, sub-words, punctuation & "
    "numbers like 1,234,567 all become ids.";

static const char MIXED[] =
    "Le caf\xc3\xa9 de la gare \xc3\xa9tait ferm\xc3\xa9, alors nous sommes all\xc3\xa9s "
    "\xc3\xa0 la boulangerie. Die Stra\xc3\x9f" "e f\xc3\xbchrt \xc3\xbc" "ber die "
    "Br\xc3\xbc" "cke. \xe4\xb8\xad\xe6\x96\x87\xe6\x96\x87\xe6\x9c\xac\xe5\x92\x8c "
    "\xce\x95\xce\xbb\xce\xbb\xce\xb7\xce\xbd\xce\xb9\xce\xba\xce\xac, "
    "\xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 \xd0\xbc\xd0\xb8\xd1\x80! "
    "Na\xc3\xaf" "ve r\xc3\xa9sum\xc3\xa9 co\xc3\xb6perate.";

static char *repeat(const char *word, int times)
{
    size_t n = strlen(word);
    char *s = malloc(n * (size_t)times + 1);
    for (int i = 0; i < times; i++)
        memcpy(s + n * (size_t)i, word, n);
    s[n * (size_t)times] = 0;
    return s;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "models/all-MiniLM-L6-v2";
    elo_embed_model *m;
    if (elo_embed_model_open(dir, &m) < 0) {
        fprintf(stderr, "%s\n", elo_errmsg());
        return 2;
    }
    const elo_tokenizer *t = elo_embed_model_tokenizer(m);
    char *hello30 = repeat("hello ", 30), *hello126 = repeat("hello ", 126);
    const struct {
        const char *name, *text;
    } cases[] = {
        {"hello-x30", hello30},
        {"hello-x126", hello126},
        {"english", ENGLISH},
        {"non-ascii", MIXED},
    };
    printf("%-12s %6s %6s %10s %10s\n", "text", "bytes", "ids", "ns/text", "checksum");
    for (size_t c = 0; c < ELO_ARRAY_LEN(cases); c++) {
        const char *s = cases[c].text;
        size_t len = strlen(s);
        int32_t ids[512];
        int n = elo_tokenizer_encode(t, s, len, ids, 512);
        if (n < 0) {
            fprintf(stderr, "%s: %s\n", cases[c].name, elo_errmsg());
            return 1;
        }
        uint64_t sum = elo_hash64(ids, sizeof ids[0] * (size_t)n);
        int iters = 1;   /* grown until one round takes >= 2 ms */
        for (;;) {
            uint64_t t0 = elo_time_ns();
            for (int i = 0; i < iters; i++)
                elo_tokenizer_encode(t, s, len, ids, 512);
            if (elo_time_ns() - t0 >= 2000000)
                break;
            iters *= 2;
        }
        double best = 1e30;
        for (int round = 0; round < 300; round++) {
            uint64_t t0 = elo_time_ns();
            for (int i = 0; i < iters; i++)
                elo_tokenizer_encode(t, s, len, ids, 512);
            double ns = (double)(elo_time_ns() - t0) / iters;
            if (ns < best)
                best = ns;
        }
        printf("%-12s %6zu %6d %10.0f %10llx\n", cases[c].name, len, n, best,
               (unsigned long long)(sum & 0xffffffffffull));
    }
    free(hello30);
    free(hello126);
    elo_embed_model_free(m);
    return 0;
}
