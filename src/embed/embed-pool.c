/* embed-pool.c - the encoder's thread pool: a fixed set of workers for
 * data-parallel loops, the calling thread taking part.
 *
 * This is a private pool rather than elo_pool_global() because the shared
 * pool's elo_pool_new() fills in each worker's argument after
 * pthread_create() returns, so a worker that starts at once can read it
 * before it is written (seen here as an occasional crash at start-up).
 * Here each worker's argument is complete before its thread starts.
 *
 * DESIGN: workers sleep on `work_cv`. run() publishes (fn, arg, count)
 * under `mu` and bumps `generation`; workers and the caller claim task
 * indexes from an atomic counter; the caller then waits on `done_cv` until
 * `done` reaches the count. One job at a time (`run_lock`); the workers
 * live until the process exits. Workers count themselves in `inflight`
 * (under `mu`) while they claim tasks, and a new job is published only
 * when `inflight` is 0, so no worker can mix two jobs' counters. */
#include "embed-impl.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

typedef struct {
    pthread_mutex_t mu, run_lock;
    pthread_cond_t work_cv, done_cv;
    uint64_t generation;
    elo__embed_task_fn fn;
    void *arg;
    int task_count;
    atomic_int next_task, done;
    int inflight;               /* workers inside claim_tasks (under mu) */
    int threads;
} embed_pool;

typedef struct {
    embed_pool *pool;
    int index;
} worker_arg;

static embed_pool the_pool;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static void claim_tasks(embed_pool *p, int thread)
{
    for (;;) {
        int t = atomic_fetch_add(&p->next_task, 1);
        if (t >= p->task_count)
            return;
        p->fn(p->arg, t, thread);
        if (atomic_fetch_add(&p->done, 1) + 1 == p->task_count) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_broadcast(&p->done_cv);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

static void *worker_main(void *raw)
{
    worker_arg *wa = raw;
    embed_pool *p = wa->pool;
    int index = wa->index;
    elo_free(wa);
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->generation == seen)
            pthread_cond_wait(&p->work_cv, &p->mu);
        seen = p->generation;
        p->inflight++;
        pthread_mutex_unlock(&p->mu);
        claim_tasks(p, index);
        pthread_mutex_lock(&p->mu);
        if (--p->inflight == 0)
            pthread_cond_broadcast(&p->done_cv);
    }
    return NULL;
}

static void pool_init(void)
{
    embed_pool *p = &the_pool;
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->run_lock, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    int want = 0;
    const char *env = getenv("ELOHIM_THREADS");
    if (env)
        want = atoi(env);
    if (want <= 0)
        want = elo_cpu_count();
    if (want > 256)
        want = 256;
    p->threads = 1;
    for (int i = 1; i < want; i++) {
        worker_arg *wa = elo_malloc(sizeof *wa);
        if (!wa)
            break;
        wa->pool = p;
        wa->index = i;
        pthread_t tid;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&tid, &attr, worker_main, wa);
        pthread_attr_destroy(&attr);
        if (rc != 0) {
            elo_free(wa);
            break;
        }
        p->threads++;
    }
}

int elo__embed_threads(void)
{
    pthread_once(&pool_once, pool_init);
    return the_pool.threads;
}

void elo__embed_parallel(elo__embed_task_fn fn, void *arg, int task_count)
{
    pthread_once(&pool_once, pool_init);
    embed_pool *p = &the_pool;
    if (task_count <= 0)
        return;
    if (p->threads <= 1 || task_count == 1) {
        for (int t = 0; t < task_count; t++)
            fn(arg, t, 0);
        return;
    }
    pthread_mutex_lock(&p->run_lock);
    pthread_mutex_lock(&p->mu);
    /* No worker may still be inside the previous job's claim loop when
     * its counters are reset (it would take a task of this job with the
     * last job's count). */
    while (p->inflight > 0)
        pthread_cond_wait(&p->done_cv, &p->mu);
    p->fn = fn;
    p->arg = arg;
    p->task_count = task_count;
    atomic_store(&p->done, 0);
    atomic_store(&p->next_task, 0);
    p->generation++;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    claim_tasks(p, 0);
    pthread_mutex_lock(&p->mu);
    while (atomic_load(&p->done) < task_count)
        pthread_cond_wait(&p->done_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_unlock(&p->run_lock);
}

int elo_embed_cpu_threads(void) { return elo__embed_threads(); }
