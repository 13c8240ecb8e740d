/* cmd-doctor.c - `elohim doctor [--json]`: what this machine offers. No GPU
 * is a normal state: it is described, and the exit code stays 0. */
#include "cli.h"

#include <getopt.h>
#include <string.h>

int cmd_doctor(int argc, char **argv)
{
    int json = 0;
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
        if (c == 'j')
            json = 1;
        else if (c == 'h') {
            printf("usage: elohim doctor [--json]\n");
            return CLI_OK;
        } else
            return CLI_USAGE;
    }
    elo_cpu_info cpu;
    elo_cpu_probe(&cpu);
    elo_gpu_info gpu;
    int gpu_rc = elo_gpu_probe(&gpu);
    char reason[512];
    snprintf(reason, sizeof reason, "%s", gpu_rc < 0 ? elo_errmsg() : "");
    if (gpu_rc == ELO_OK) {      /* present, but can we compute on it? */
        elo_backend *b;
        if (elo_backend_cuda(&b) < 0) {
            gpu_rc = ELO_NODEVICE;
            snprintf(reason, sizeof reason, "%s", elo_errmsg());
        }
    }

    if (json) {
        json_t *o = json_object();
        json_t *jc = json_object();
        json_object_set_new(jc, "model", json_string(cpu.model));
        json_object_set_new(jc, "cores", json_integer(cpu.cores));
        json_object_set_new(jc, "simd", json_string(cpu.simd));
        json_object_set_new(jc, "blas", json_string(cpu.blas));
        json_object_set_new(o, "cpu", jc);
        json_t *jg = json_object();
        json_object_set_new(jg, "available", json_boolean(gpu_rc == ELO_OK));
        if (gpu_rc == ELO_OK) {
            json_object_set_new(jg, "name", json_string(gpu.name));
            json_object_set_new(jg, "memory_total_bytes", json_integer((json_int_t)gpu.mem_total));
            json_object_set_new(jg, "memory_free_bytes", json_integer((json_int_t)gpu.mem_free));
            char cc[16];
            snprintf(cc, sizeof cc, "%d.%d", gpu.cc_major, gpu.cc_minor);
            json_object_set_new(jg, "compute_capability", json_string(cc));
            json_object_set_new(jg, "multiprocessors", json_integer(gpu.sm_count));
            json_object_set_new(jg, "l2_bytes", json_integer((json_int_t)gpu.l2_bytes));
            json_object_set_new(jg, "memory_bandwidth_gbs", json_real(gpu.mem_bandwidth_gbs));
        } else {
            json_object_set_new(jg, "reason", json_string(reason));
        }
        if (gpu.driver_version)
            json_object_set_new(jg, "driver_version", json_integer(gpu.driver_version));
        if (gpu.runtime_version)
            json_object_set_new(jg, "runtime_version", json_integer(gpu.runtime_version));
        json_object_set_new(o, "gpu", jg);
        cli_print_json(o);
        return CLI_OK;
    }
    printf("CPU:  %s\n", cpu.model);
    printf("      %d logical cores, SIMD: %s\n", cpu.cores, cpu.simd);
    printf("BLAS: %s\n", cpu.blas);
    if (gpu_rc == ELO_OK) {
        printf("GPU:  %s, %.1f GiB (%.1f GiB free), compute capability %d.%d, %d SMs\n",
               gpu.name, gpu.mem_total / 1073741824.0, gpu.mem_free / 1073741824.0,
               gpu.cc_major, gpu.cc_minor, gpu.sm_count);
        printf("      driver %d.%d, runtime %d.%d, ~%.0f GB/s memory bandwidth\n",
               gpu.driver_version / 1000, (gpu.driver_version % 1000) / 10,
               gpu.runtime_version / 1000, (gpu.runtime_version % 1000) / 10,
               gpu.mem_bandwidth_gbs);
    } else {
        printf("GPU:  none usable: %s\n", reason);
    }
    return CLI_OK;
}
