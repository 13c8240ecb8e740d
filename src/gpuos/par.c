/* par.c - the CPU path's "blocks": a small persistent thread pool private
 * to gpuos. (The process pool in core hands each new worker its argument
 * only after pthread_create returns, so a worker can read it before it is
 * written; until that is fixed there, gpuos uses this pool.)
 *
 * DESIGN: N-1 workers sleep on a condition variable; gos_par_run publishes
 * (fn, arg, count) under the mutex and bumps a generation; the workers and
 * the caller claim task indexes from an atomic counter; the caller waits
 * until every task has finished. One job at a time (a run lock). */
#include "gpuos/gpuos-impl.h"

#include <stdlib.h>

typedef struct {
    pthread_mutex_t mu, run_lock;
    pthread_cond_t work_cv, done_cv;
    gos_task_fn fn;
    void *arg;
    int count;
    int next;           /* atomic */
    int done;           /* atomic */
    uint64_t generation;
    int threads;
} gos_par;

static gos_par the_par;
static pthread_once_t par_once = PTHREAD_ONCE_INIT;

static void par_tasks(gos_par *p, int thread)
{
    for (;;) {
        int t = __atomic_fetch_add(&p->next, 1, __ATOMIC_ACQ_REL);
        if (t >= p->count)
            break;
        p->fn(p->arg, t, thread);
        if (__atomic_add_fetch(&p->done, 1, __ATOMIC_ACQ_REL) == p->count) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done_cv);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

static void *par_worker(void *arg)
{
    int index = (int)(intptr_t)arg;
    gos_par *p = &the_par;
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->generation == seen)
            pthread_cond_wait(&p->work_cv, &p->mu);
        seen = p->generation;
        pthread_mutex_unlock(&p->mu);
        par_tasks(p, index);
        pthread_mutex_lock(&p->mu);
    }
    return NULL;
}

static void par_init(void)
{
    gos_par *p = &the_par;
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->run_lock, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    int n = elo_cpu_count();
    const char *env = getenv("ELOHIM_THREADS");
    if (env && atoi(env) > 0)
        n = atoi(env);
    if (n < 1)
        n = 1;
    if (n > 256)
        n = 256;
    p->threads = 1;
    for (int i = 1; i < n; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, par_worker, (void *)(intptr_t)i) != 0)
            break;
        pthread_detach(t);
        p->threads = i + 1;
    }
}

int gos_par_threads(void)
{
    pthread_once(&par_once, par_init);
    return the_par.threads;
}

void gos_par_run(gos_task_fn fn, void *arg, int count)
{
    if (count <= 0)
        return;
    pthread_once(&par_once, par_init);
    gos_par *p = &the_par;
    pthread_mutex_lock(&p->run_lock);
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->count = count;
    __atomic_store_n(&p->next, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&p->done, 0, __ATOMIC_RELEASE);
    p->generation++;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    par_tasks(p, 0);
    pthread_mutex_lock(&p->mu);
    while (__atomic_load_n(&p->done, __ATOMIC_ACQUIRE) < count)
        pthread_cond_wait(&p->done_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_unlock(&p->run_lock);
}
