/* fuzz-model-json.c - libFuzzer harness for the model folder's JSON files:
 * config.json and 1_Pooling/config.json parsers on any bytes; accepted
 * configs must hold values in their documented ranges. */
#include "embed/embed-impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    elo_embed_info in = {0};
    if (elo__bert_config_parse("config.json", (const char *)data, size, &in) == ELO_OK) {
        if (in.hidden < 1 || in.heads < 1 || in.hidden % in.heads || in.layers < 1 ||
            in.vocab_size < 1 || in.intermediate < 1 || in.max_positions < 2 ||
            !(in.layer_norm_eps > 0))
            __builtin_trap();
    }
    elo_pooling p;
    if (elo__pooling_config_parse("pooling.json", (const char *)data, size, &p) == ELO_OK) {
        if (p < ELO_POOLING_MEAN || p > ELO_POOLING_MEAN_SQRT_LEN)
            __builtin_trap();
    }
    return 0;
}
