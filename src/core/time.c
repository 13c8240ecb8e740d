/* time.c - monotonic, wall and CPU clocks. */
#include "elohim/core.h"

#include <time.h>

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t elo_time_ns(void) { return clock_ns(CLOCK_MONOTONIC); }
double elo_time_sec(void) { return (double)elo_time_ns() * 1e-9; }
uint64_t elo_wall_time_ms(void) { return clock_ns(CLOCK_REALTIME) / 1000000ull; }
uint64_t elo_cpu_time_ns(void) { return clock_ns(CLOCK_PROCESS_CPUTIME_ID); }
uint64_t elo_thread_cpu_time_ns(void) { return clock_ns(CLOCK_THREAD_CPUTIME_ID); }
