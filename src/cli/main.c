/* main.c - `elohim`: one binary, one subcommand per service. */
#include "cli.h"

#include <stdarg.h>
#include <string.h>

#ifndef ELOHIM_VERSION
#define ELOHIM_VERSION "0.1.0"
#endif

static const struct {
    const char *name;
    const char *summary;
} commands[] = {
    {"serve", "run the HTTP server, setup wizard and web UI"},
    {"embed", "sentence embeddings with a BERT model folder"},
    {"vec", "vector stores: create, add, search, delete, compact, info"},
    {"import", "import a CSV file into a table"},
    {"sql", "run SQL over the imported tables"},
    {"sqllogictest", "run sqllogictest scripts through the SQL engine"},
    {"boot", "boot the GPU-native runtime and run .gpuapp programs"},
    {"app", "build and inspect .gpuapp programs"},
    {"audit", "verify the tamper-evident audit log"},
    {"bench", "benchmarks: vector, embed, sql, boot"},
    {"doctor", "describe the CPU, BLAS and GPU of this machine"},
};

static cli_cmd_fn lookup(const char *name)
{
    if (!strcmp(name, "serve")) return cmd_serve;
    if (!strcmp(name, "embed")) return cmd_embed;
    if (!strcmp(name, "vec")) return cmd_vec;
    if (!strcmp(name, "import")) return cmd_import;
    if (!strcmp(name, "sql")) return cmd_sql;
    if (!strcmp(name, "sqllogictest")) return cmd_sqllogictest;
    if (!strcmp(name, "boot")) return cmd_boot;
    if (!strcmp(name, "app")) return cmd_app;
    if (!strcmp(name, "audit")) return cmd_audit;
    if (!strcmp(name, "bench")) return cmd_bench;
    if (!strcmp(name, "doctor")) return cmd_doctor;
    return NULL;
}

static void usage(FILE *out)
{
    fprintf(out,
            "elohim %s - offline-first AI system: semantic search, SQL, a GPU-native runtime\n\n"
            "usage: elohim <command> [options]   (elohim <command> --help for its options)\n\n"
            "commands:\n", ELOHIM_VERSION);
    for (size_t i = 0; i < ELO_ARRAY_LEN(commands); i++)
        if (lookup(commands[i].name))
            fprintf(out, "  %-13s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\ncommon options: --device auto|cpu|cuda, --json (stdout holds only JSON)\n");
}

int main(int argc, char **argv)
{
    elo_backend_preinit();
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
        usage(stdout);
        return CLI_OK;
    }
    if (!strcmp(name, "--version")) {
        printf("elohim %s\n", ELOHIM_VERSION);
        return CLI_OK;
    }
    cli_cmd_fn fn = lookup(name);
    if (!fn) {
        fprintf(stderr, "elohim: unknown command '%s'\n\n", name);
        usage(stderr);
        return CLI_USAGE;
    }
    return fn(argc - 1, argv + 1);
}
