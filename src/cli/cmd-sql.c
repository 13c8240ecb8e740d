/* cmd-sql.c - `elohim sql`, `elohim import csv` and `elohim sqllogictest`:
 * the command-line front of the SQL subsystem (include/elohim/sql.h). */
#include "cli.h"
#include "elohim/sql.h"

#include <getopt.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

static int parse_sql_device(const char *s, elo_sql_device *d)
{
    if (!strcmp(s, "auto")) *d = ELO_SQL_DEVICE_AUTO;
    else if (!strcmp(s, "cpu")) *d = ELO_SQL_DEVICE_CPU;
    else if (!strcmp(s, "cuda") || !strcmp(s, "gpu")) *d = ELO_SQL_DEVICE_CUDA;
    else if (!strcmp(s, "sqlite")) *d = ELO_SQL_DEVICE_SQLITE;
    else return -1;
    return 0;
}

static json_t *value_json(elo_sql_value v)
{
    switch (v.type) {
    case ELO_SQL_INTEGER: return json_integer(v.i);
    case ELO_SQL_REAL: return json_real(v.r);
    case ELO_SQL_TEXT: return json_stringn_nocheck(v.s, v.len);
    default: return json_null();
    }
}

static void print_csv_field(const char *s, size_t n)
{
    int quote = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r')
            quote = 1;
    if (!quote) {
        fwrite(s, 1, n, stdout);
        return;
    }
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"')
            putchar('"');
        putchar(s[i]);
    }
    putchar('"');
}

static void value_text(elo_sql_value v, char *buf, size_t cap, const char **s, size_t *n)
{
    switch (v.type) {
    case ELO_SQL_INTEGER: snprintf(buf, cap, "%lld", (long long)v.i); break;
    case ELO_SQL_REAL: sqlite3_snprintf((int)cap, buf, "%!.15g", v.r); break; /* as sqlite3 prints */
    case ELO_SQL_TEXT: *s = v.s; *n = v.len; return;
    default: buf[0] = 0; break;
    }
    *s = buf;
    *n = strlen(buf);
}

int cmd_sql(int argc, char **argv)
{
    const char *data = NULL, *device = "auto";
    int json = 0, csv = 0, explain = 0;
    static const struct option opts[] = {{"data", required_argument, NULL, 'd'},
                                         {"device", required_argument, NULL, 'D'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"csv", no_argument, NULL, 'c'},
                                         {"explain", no_argument, NULL, 'e'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'd': data = optarg; break;
        case 'D': device = optarg; break;
        case 'j': json = 1; break;
        case 'c': csv = 1; break;
        case 'e': explain = 1; break;
        case 'h':
            printf("usage: elohim sql [--data DIR] [--device auto|cpu|cuda|sqlite] [--json|--csv] "
                   "[--explain] \"SQL\"\n");
            return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    if (optind != argc - 1)
        return cli_fail(CLI_USAGE, "sql", "expected one SQL statement (see --help)");
    if (json && csv)
        return cli_fail(CLI_USAGE, "sql", "--json and --csv exclude each other");
    elo_sql_device dev;
    if (parse_sql_device(device, &dev) < 0)
        return cli_fail(CLI_USAGE, "sql", "--device %s: expected auto, cpu, cuda or sqlite", device);
    const char *sql = argv[optind];
    elo_sql *db;
    int rc = elo_sql_open(data, &db);
    if (rc < 0)
        return cli_status_fail("sql", rc);
    rc = elo_sql_set_device(db, dev);
    if (rc < 0) {
        elo_sql_close(db);
        return cli_fail(CLI_USAGE, "sql", "--device %s: %s", device, elo_errmsg());
    }
    elo_sql_result *res;
    rc = elo_sql_query(db, sql, &res);
    if (rc < 0) {
        int code = cli_fail(CLI_FAIL, "sql", "%s", elo_errmsg());
        elo_sql_close(db);
        return code;
    }
    int ncols = elo_sql_result_columns(res);
    int64_t nrows = elo_sql_result_rows(res);
    if (explain) {
        const char *why = elo_sql_result_reason(res);
        if (*why)
            fprintf(stderr, "engine: %s (ours did not: %s)\n", elo_sql_result_engine(res), why);
        else
            fprintf(stderr, "engine: %s\n", elo_sql_result_engine(res));
    }
    if (json) {
        json_t *o = json_object(), *cols = json_array(), *rows = json_array();
        for (int i = 0; i < ncols; i++)
            json_array_append_new(cols, json_string(elo_sql_result_name(res, i)));
        for (int64_t r = 0; r < nrows; r++) {
            json_t *row = json_array();
            for (int i = 0; i < ncols; i++)
                json_array_append_new(row, value_json(elo_sql_result_value(res, r, i)));
            json_array_append_new(rows, row);
        }
        json_object_set_new(o, "columns", cols);
        json_object_set_new(o, "rows", rows);
        json_object_set_new(o, "engine", json_string(elo_sql_result_engine(res)));
        if (explain && *elo_sql_result_reason(res))
            json_object_set_new(o, "reason", json_string(elo_sql_result_reason(res)));
        char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17));
        if (s) {
            puts(s);
            free(s);
        }
        json_decref(o);
    } else {
        const char *sep = csv ? "," : "|";
        for (int i = 0; i < ncols && csv; i++) {
            if (i)
                fputs(sep, stdout);
            const char *n = elo_sql_result_name(res, i);
            print_csv_field(n, strlen(n));
        }
        if (csv && ncols)
            putchar('\n');
        char buf[64];
        for (int64_t r = 0; r < nrows; r++) {
            for (int i = 0; i < ncols; i++) {
                if (i)
                    fputs(sep, stdout);
                const char *s;
                size_t n;
                elo_sql_value v = elo_sql_result_value(res, r, i);
                value_text(v, buf, sizeof buf, &s, &n);
                if (csv) print_csv_field(s, n);
                else fwrite(s, 1, n, stdout);
            }
            putchar('\n');
        }
    }
    elo_sql_result_free(res);
    elo_sql_close(db);
    return CLI_OK;
}

int cmd_import(int argc, char **argv)
{
    const char *data = NULL, *table = NULL;
    int json = 0;
    static const struct option opts[] = {{"data", required_argument, NULL, 'd'},
                                         {"table", required_argument, NULL, 't'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'd': data = optarg; break;
        case 't': table = optarg; break;
        case 'j': json = 1; break;
        case 'h':
            printf("usage: elohim import csv FILE --table NAME [--data DIR] [--json]\n");
            return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    if (optind + 2 != argc || strcmp(argv[optind], "csv"))
        return cli_fail(CLI_USAGE, "import", "usage: elohim import csv FILE --table NAME [--data DIR]");
    if (!table || !*table)
        return cli_fail(CLI_USAGE, "import", "--table NAME is required");
    const char *file = argv[optind + 1];
    elo_sql *db;
    int rc = elo_sql_open(data, &db);
    if (rc < 0)
        return cli_status_fail("import", rc);
    elo_csv_report rep;
    double t0 = elo_time_sec();
    rc = elo_sql_import_csv(db, file, table, &rep);
    double dt = elo_time_sec() - t0;
    elo_sql_close(db);
    if (rc < 0)
        return cli_fail(CLI_FAIL, "import", "%s", elo_errmsg());
    if (json) {
        json_t *o = json_object(), *types = json_array();
        for (int i = 0; i < rep.columns && i < 64; i++)
            json_array_append_new(types, json_string(rep.types[i]));
        json_object_set_new(o, "table", json_string(table));
        json_object_set_new(o, "rows", json_integer(rep.rows));
        json_object_set_new(o, "columns", json_integer(rep.columns));
        json_object_set_new(o, "types", types);
        json_object_set_new(o, "seconds", json_real(dt));
        cli_print_json(o);
    } else {
        printf("imported %lld rows, %d columns into %s in %.2f s\n", (long long)rep.rows,
               rep.columns, table, dt);
    }
    return CLI_OK;
}

int cmd_sqllogictest(int argc, char **argv)
{
    const char *device = "auto";
    int json = 0, verbose = 0;
    static const struct option opts[] = {{"device", required_argument, NULL, 'D'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"verbose", no_argument, NULL, 'v'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
        switch (c) {
        case 'D': device = optarg; break;
        case 'j': json = 1; break;
        case 'v': verbose = 1; break;
        case 'h':
            printf("usage: elohim sqllogictest [--device auto|cpu|cuda|sqlite] [--json] [-v] FILE...\n");
            return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    if (optind >= argc)
        return cli_fail(CLI_USAGE, "sqllogictest", "expected one or more script files");
    elo_sql_device dev;
    if (parse_sql_device(device, &dev) < 0)
        return cli_fail(CLI_USAGE, "sqllogictest", "--device %s: expected auto, cpu, cuda or sqlite",
                        device);
    if (dev == ELO_SQL_DEVICE_CUDA) {
        elo_backend *b;
        if (elo_backend_get(ELO_DEVICE_CUDA, &b) < 0)
            return cli_fail(CLI_USAGE, "sqllogictest", "--device cuda: %s", elo_errmsg());
    }
    elo_slt_counts total;
    memset(&total, 0, sizeof total);
    json_t *files = json ? json_array() : NULL;
    int bad = 0;
    if (!json)
        printf("%-40s %8s %8s %8s %8s %8s\n", "file", "queries", "passed", "failed", "ours", "sqlite");
    for (int i = optind; i < argc; i++) {
        elo_slt_counts k;
        double t0 = elo_time_sec();
        int rc = elo_sql_logictest(argv[i], dev, &k, stderr, verbose ? 1000000 : 20);
        double dt = elo_time_sec() - t0;
        if (rc < 0) {
            fprintf(stderr, "elohim sqllogictest: %s: %s\n", argv[i], elo_errmsg());
            bad = 1;
            continue;
        }
        if (k.failed || k.statement_failures)
            bad = 1;
        total.queries += k.queries;
        total.passed += k.passed;
        total.failed += k.failed;
        total.ours += k.ours;
        total.sqlite += k.sqlite;
        total.statements += k.statements;
        total.statement_failures += k.statement_failures;
        total.skipped += k.skipped;
        for (int r = 0; r < k.nreasons; r++) {
            int m = 0;
            while (m < total.nreasons && strcmp(total.reasons[m].why, k.reasons[r].why))
                m++;
            if (m == total.nreasons && m < (int)ELO_ARRAY_LEN(total.reasons)) {
                snprintf(total.reasons[m].why, sizeof total.reasons[m].why, "%.95s", k.reasons[r].why);
                total.reasons[m].n = 0;
                total.nreasons++;
            }
            if (m < total.nreasons)
                total.reasons[m].n += k.reasons[r].n;
        }
        const char *base = strrchr(argv[i], '/');
        base = base ? base + 1 : argv[i];
        if (json) {
            json_t *o = json_object();
            json_object_set_new(o, "file", json_string(argv[i]));
            json_object_set_new(o, "queries", json_integer(k.queries));
            json_object_set_new(o, "passed", json_integer(k.passed));
            json_object_set_new(o, "failed", json_integer(k.failed));
            json_object_set_new(o, "ours", json_integer(k.ours));
            json_object_set_new(o, "sqlite", json_integer(k.sqlite));
            json_object_set_new(o, "statement_failures", json_integer(k.statement_failures));
            json_object_set_new(o, "seconds", json_real(dt));
            json_array_append_new(files, o);
        } else {
            printf("%-40s %8lld %8lld %8lld %8lld %8lld  %.1fs%s\n", base, (long long)k.queries,
                   (long long)k.passed, (long long)k.failed, (long long)k.ours,
                   (long long)k.sqlite, dt, k.statement_failures ? "  (statement failures)" : "");
        }
    }
    if (json) {
        json_t *o = json_object();
        json_object_set_new(o, "files", files);
        json_object_set_new(o, "queries", json_integer(total.queries));
        json_object_set_new(o, "passed", json_integer(total.passed));
        json_object_set_new(o, "failed", json_integer(total.failed));
        json_object_set_new(o, "ours", json_integer(total.ours));
        json_object_set_new(o, "sqlite", json_integer(total.sqlite));
        json_object_set_new(o, "device", json_string(device));
        cli_print_json(o);
    } else {
        printf("%-40s %8lld %8lld %8lld %8lld %8lld\n", "total", (long long)total.queries,
               (long long)total.passed, (long long)total.failed, (long long)total.ours,
               (long long)total.sqlite);
        if (total.queries)
            printf("ours answered %.1f%% of the queries\n", 100.0 * total.ours / total.queries);
        for (int r = 1; r < total.nreasons; r++) /* most frequent first */
            for (int q = r; q > 0 && total.reasons[q].n > total.reasons[q - 1].n; q--) {
                __typeof__(total.reasons[0]) tmp = total.reasons[q];
                total.reasons[q] = total.reasons[q - 1];
                total.reasons[q - 1] = tmp;
            }
        if (total.nreasons && verbose) {
            printf("why SQLite ran the others:\n");
            for (int r = 0; r < total.nreasons; r++)
                printf("  %8lld  %s\n", (long long)total.reasons[r].n, total.reasons[r].why);
        }
    }
    return bad ? CLI_FAIL : CLI_OK;
}
