/* progress.c - a progress bar on stderr, only when stderr is a terminal. */
#include "elohim/core.h"

#include <stdlib.h>
#include <unistd.h>

static void draw(elo_progress *p, int final)
{
    double secs = (double)(elo_time_ns() - p->start_ns) * 1e-9;
    double rate = secs > 0 ? (double)p->done / secs : 0.0;
    if (p->total > 0) {
        int width = 30;
        double frac = (double)p->done / (double)p->total;
        if (frac > 1.0)
            frac = 1.0;
        int filled = (int)(frac * width);
        char bar[32];
        for (int i = 0; i < width; i++)
            bar[i] = i < filled ? '#' : '.';
        bar[width] = '\0';
        fprintf(stderr, "\r%s [%s] %5.1f%% %llu/%llu %.0f/s%s", p->label, bar,
                frac * 100.0, (unsigned long long)p->done,
                (unsigned long long)p->total, rate, final ? "\n" : "");
    } else {
        fprintf(stderr, "\r%s %llu %.0f/s%s", p->label,
                (unsigned long long)p->done, rate, final ? "\n" : "");
    }
    fflush(stderr);
}

void elo_progress_begin(elo_progress *p, const char *label, uint64_t total)
{
    p->label = label;
    p->total = total;
    p->done = 0;
    p->start_ns = elo_time_ns();
    p->last_draw_ns = 0;
    p->enabled = isatty(STDERR_FILENO) && !getenv("ELOHIM_NO_PROGRESS");
}

void elo_progress_update(elo_progress *p, uint64_t done)
{
    p->done = done;
    if (!p->enabled)
        return;
    uint64_t now = elo_time_ns();
    if (now - p->last_draw_ns < 100000000ull)
        return;
    p->last_draw_ns = now;
    draw(p, 0);
}

void elo_progress_end(elo_progress *p)
{
    if (p->enabled)
        draw(p, 1);
    p->enabled = 0;
}
