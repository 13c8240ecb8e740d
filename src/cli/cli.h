/* cli.h - shared by the `elohim` subcommands: the command table, exit
 * codes and small helpers for options and output.
 *
 * Output discipline: with --json, stdout carries only JSON; messages,
 * progress and warnings go to stderr. */
#ifndef ELOHIM_CLI_H
#define ELOHIM_CLI_H

#include "elohim/backend.h"
#include "elohim/core.h"

#include <jansson.h>
#include <stdio.h>

/* Exit codes: 0 success, 1 the work failed (bad data, I/O), 2 bad usage or
 * an unusable device requested. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* A subcommand: argv[0] is the command's name. Defined in cmd-<name>.c;
 * declared weak so the table lists only what this build holds. */
typedef int (*cli_cmd_fn)(int argc, char **argv);

#define CLI_COMMAND(fn) __attribute__((weak)) int fn(int argc, char **argv)
CLI_COMMAND(cmd_doctor);
CLI_COMMAND(cmd_vec);
CLI_COMMAND(cmd_embed);
CLI_COMMAND(cmd_import);
CLI_COMMAND(cmd_sql);
CLI_COMMAND(cmd_sqllogictest);
CLI_COMMAND(cmd_boot);
CLI_COMMAND(cmd_app);
CLI_COMMAND(cmd_serve);
CLI_COMMAND(cmd_audit);
CLI_COMMAND(cmd_bench);
/* `elohim bench <name>`: argv[0] is the benchmark's name. */
CLI_COMMAND(bench_vector);
CLI_COMMAND(bench_embed);
CLI_COMMAND(bench_sql);
CLI_COMMAND(bench_boot);

/* Prints "elohim: <cmd>: message" (+ the elo_errmsg() detail when `status`
 * is an error) on stderr and returns the exit code `code`. */
int cli_fail(int code, const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The exit code for a failed status: CLI_USAGE for NODEVICE/BADINPUT from
 * options, CLI_FAIL otherwise; prints elo_errmsg(). */
int cli_status_fail(const char *cmd, int status);

/* Resolves --device for `op` of size `work`: returns the backend to use
 * (CPU or CUDA) or NULL after printing a clear error (exit with
 * CLI_USAGE). */
elo_backend *cli_backend(const char *cmd, elo_device_kind requested, elo_op op,
                         double work);

/* Writes `obj` as one compact line to stdout and decrefs it. */
void cli_print_json(json_t *obj);
/* popen(cmd, "r") for a benchmark peer, in the environment it would have
 * without us: what elo_backend_preinit() set for our own OpenBLAS is not
 * passed on (the peer's BLAS picks its own kernels, as it would for a
 * user). */
FILE *cli_popen_peer(const char *cmd);

#endif
