/* cmd-bench.c - `elohim bench <what>`: dispatches to each service's
 * benchmark (bench_<what> in that service's cli file). */
#include "cli.h"

#include <string.h>

int cmd_bench(int argc, char **argv)
{
    static const struct {
        const char *name;
        const char *summary;
    } benches[] = {
        {"vector", "exact top-k search: ours vs numpy/faiss (CPU) and PyTorch (GPU)"},
        {"embed", "sentence embeddings: ours vs sentence-transformers"},
        {"sql", "GROUP BY aggregation: ours vs SQLite/DuckDB"},
        {"boot", "GPU-native runtime boot and frame times"},
    };
    cli_cmd_fn fns[] = {bench_vector, bench_embed, bench_sql, bench_boot};
    if (argc >= 2) {
        for (size_t i = 0; i < ELO_ARRAY_LEN(benches); i++)
            if (!strcmp(argv[1], benches[i].name) && fns[i])
                return fns[i](argc - 1, argv + 1);
    }
    FILE *out = argc >= 2 && !strcmp(argv[1], "--help") ? stdout : stderr;
    fprintf(out, "usage: elohim bench <benchmark> [options]\n\nbenchmarks:\n");
    for (size_t i = 0; i < ELO_ARRAY_LEN(benches); i++)
        if (fns[i])
            fprintf(out, "  %-8s %s\n", benches[i].name, benches[i].summary);
    return out == stdout ? CLI_OK : CLI_USAGE;
}
