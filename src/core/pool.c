/* pool.c - a fixed thread pool for data-parallel loops.
 *
 * DESIGN: see elo_pool in core.h. One job at a time: elo_pool_run() takes
 * `run_lock` for the whole job, publishes it under `mu` with a new
 * generation number and wakes the workers. Everyone (caller included)
 * claims task indexes from `next_task` until the count is reached; each
 * finished task bumps `done_tasks`; the last one signals `done_cv`, on
 * which the caller waits. A worker that wakes for a generation it has
 * already served goes back to sleep. Workers count themselves in
 * `inflight` (under `mu`) while they claim tasks, and a job is published
 * only when `inflight` is 0: a worker still leaving the last job's claim
 * loop could otherwise take a task of the new job against the old count
 * and run it twice. A task that calls elo_pool_run() itself (a nested job)
 * runs its inner job serially on its own thread. Idle workers, and the
 * caller waiting for the last task, poll for up to POOL_SPIN_SEC before
 * they sleep on their condition variable (`published` and `stop_flag`
 * mirror `generation` and `stopping` for that lock-free poll). */
#include "elohim/core.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

struct elo_pool {
    int thread_count;              /* including the caller */
    pthread_t *threads;            /* thread_count - 1 workers */
    pthread_mutex_t mu;
    pthread_cond_t work_cv;
    pthread_cond_t done_cv;
    pthread_mutex_t run_lock;      /* one job at a time */
    uint64_t generation;
    atomic_uint_least64_t published; /* generation, readable without mu */
    atomic_int stop_flag;            /* stopping, readable without mu */
    int inflight;                  /* workers inside run_tasks (under mu) */
    int stopping;
    elo_pool_fn fn;
    void *arg;
    int task_count;
    atomic_int next_task;
    atomic_int done_tasks;
};

static _Thread_local int in_pool_task;

static void run_tasks(elo_pool *p, int thread)
{
    in_pool_task = 1;
    for (;;) {
        int t = atomic_fetch_add(&p->next_task, 1);
        if (t >= p->task_count)
            break;
        p->fn(p->arg, t, thread);
        if (atomic_fetch_add(&p->done_tasks, 1) + 1 == p->task_count) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done_cv);
            pthread_mutex_unlock(&p->mu);
        }
    }
    in_pool_task = 0;
}

typedef struct {
    elo_pool *pool;
    int index;
} worker_arg;

/* How long an idle worker polls for the next job before it sleeps. Loops
 * often come back to back (an encoder layer is ~8 of them, a few tens of
 * microseconds apart) and waking a sleeping thread costs 50-100 us on a
 * VM; the poll costs at most this much CPU after each job. */
#define POOL_SPIN_SEC 100e-6

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Polls until cond(p, arg) holds or POOL_SPIN_SEC has passed (the caller
 * then sleeps on its condition variable, which it re-checks under mu). */
static void spin_until(elo_pool *p, int (*cond)(elo_pool *, uint64_t), uint64_t arg)
{
    double t0 = elo_time_sec();
    for (int i = 1; !cond(p, arg); i++) {
        cpu_relax();
        if ((i & 63) == 0 && elo_time_sec() - t0 > POOL_SPIN_SEC)
            return;
    }
}

/* A job newer than `seen` is out, or the pool is stopping (workers). */
static int job_published(elo_pool *p, uint64_t seen)
{
    return atomic_load_explicit(&p->published, memory_order_acquire) != seen ||
           atomic_load_explicit(&p->stop_flag, memory_order_relaxed);
}

/* All `count` tasks of the current job have finished (the caller). */
static int tasks_done(elo_pool *p, uint64_t count)
{
    return (uint64_t)atomic_load(&p->done_tasks) >= count;
}

static void *worker_main(void *raw)
{
    worker_arg wa = *(worker_arg *)raw;
    elo_free(raw);
    elo_pool *p = wa.pool;
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (!p->stopping && p->generation == seen) {
            pthread_mutex_unlock(&p->mu);
            spin_until(p, job_published, seen);
            pthread_mutex_lock(&p->mu);
        }
        while (!p->stopping && p->generation == seen)
            pthread_cond_wait(&p->work_cv, &p->mu);
        if (p->stopping)
            break;
        seen = p->generation;
        p->inflight++;
        pthread_mutex_unlock(&p->mu);
        run_tasks(p, wa.index);
        pthread_mutex_lock(&p->mu);
        if (--p->inflight == 0)
            pthread_cond_broadcast(&p->done_cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int elo_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

elo_pool *elo_pool_new(int threads)
{
    if (threads <= 0) {
        const char *env = getenv("ELOHIM_THREADS");
        threads = env ? atoi(env) : 0;
        if (threads <= 0)
            threads = elo_cpu_count();
    }
    if (threads > 1024)
        threads = 1024;
    elo_pool *p = elo_calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->thread_count = threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->run_lock, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    p->threads = elo_calloc((size_t)threads, sizeof(pthread_t));
    if (!p->threads) {
        elo_free(p);
        return NULL;
    }
    for (int i = 1; i < threads; i++) {
        worker_arg *wa = elo_malloc(sizeof *wa);
        if (wa) {                  /* filled before the thread can read it */
            wa->pool = p;
            wa->index = i;
        }
        if (!wa || pthread_create(&p->threads[i - 1], NULL, worker_main, wa) != 0) {
            elo_free(wa);
            p->thread_count = i;   /* keep the workers we have */
            break;
        }
    }
    return p;
}

void elo_pool_free(elo_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    atomic_store(&p->stop_flag, 1);
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->thread_count; i++)
        pthread_join(p->threads[i - 1], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->run_lock);
    pthread_cond_destroy(&p->work_cv);
    pthread_cond_destroy(&p->done_cv);
    elo_free(p->threads);
    elo_free(p);
}

int elo_pool_size(const elo_pool *p) { return p->thread_count; }

void elo_pool_run(elo_pool *p, elo_pool_fn fn, void *arg, int task_count)
{
    if (task_count <= 0)
        return;
    if (in_pool_task || p->thread_count == 1 || task_count == 1) {
        for (int t = 0; t < task_count; t++)
            fn(arg, t, 0);
        return;
    }
    pthread_mutex_lock(&p->run_lock);
    pthread_mutex_lock(&p->mu);
    while (p->inflight > 0)
        pthread_cond_wait(&p->done_cv, &p->mu);
    p->fn = fn;
    p->arg = arg;
    p->task_count = task_count;
    atomic_store(&p->next_task, 0);
    atomic_store(&p->done_tasks, 0);
    p->generation++;
    atomic_store_explicit(&p->published, p->generation, memory_order_release);
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);

    run_tasks(p, 0);

    spin_until(p, tasks_done, (uint64_t)task_count);
    pthread_mutex_lock(&p->mu);
    while (atomic_load(&p->done_tasks) < task_count)
        pthread_cond_wait(&p->done_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_unlock(&p->run_lock);
}

static elo_pool *global_pool;
static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void global_init(void) { global_pool = elo_pool_new(0); }

elo_pool *elo_pool_global(void)
{
    pthread_once(&global_once, global_init);
    return global_pool;
}
