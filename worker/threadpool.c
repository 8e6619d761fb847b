/* threadpool: see threadpool.h. */
#include "worker/threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "common/err.h"

#define SPIN_ROUNDS 4000 /* pause rounds (~100 us) before sleeping */

struct threadpool {
    int n;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    pthread_cond_t done;      /* the owner sleeps on it when a loop runs long */
    atomic_int owner_waiting; /* set while the owner sleeps on done */
    atomic_uint generation;   /* bumped for every loop; workers wait for it to change */
    atomic_int pending;       /* workers still inside the current loop */
    atomic_int stop;
    atomic_int sleepers;
    threadpool_fn fn;
    void *ctx;
};

struct worker_arg {
    struct threadpool *p;
    int index;
};

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* wait_generation: returns once the generation differs from seen (or stop is set). */
static unsigned wait_generation(struct threadpool *p, unsigned seen)
{
    for (int r = 0; r < SPIN_ROUNDS; r++) {
        unsigned g = atomic_load_explicit(&p->generation, memory_order_acquire);
        if (g != seen || atomic_load(&p->stop))
            return g;
        cpu_relax();
    }
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->sleepers, 1);
    unsigned g;
    while ((g = atomic_load(&p->generation)) == seen && !atomic_load(&p->stop))
        pthread_cond_wait(&p->wake, &p->mu);
    atomic_fetch_sub(&p->sleepers, 1);
    pthread_mutex_unlock(&p->mu);
    return g;
}

static void *worker_main(void *arg)
{
    struct worker_arg a = *(struct worker_arg *)arg;
    free(arg);
    struct threadpool *p = a.p;
    unsigned seen = 0;
    for (;;) {
        seen = wait_generation(p, seen);
        if (atomic_load(&p->stop))
            return NULL;
        p->fn(p->ctx, a.index, p->n);
        /* seq_cst: pairs with owner_waiting (one of the two sides sees the other) */
        if (atomic_fetch_sub(&p->pending, 1) == 1 && atomic_load(&p->owner_waiting)) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_broadcast(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

int threadpool_new(int n_threads, struct threadpool **out)
{
    if (n_threads < 1 || n_threads > 1024)
        return ERR_INVAL;
    struct threadpool *p = calloc(1, sizeof *p);
    if (!p)
        return ERR_NOMEM;
    p->n = n_threads;
    p->threads = calloc((size_t)n_threads, sizeof *p->threads);
    if (!p->threads) {
        free(p);
        return ERR_NOMEM;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    for (int i = 1; i < n_threads; i++) {
        struct worker_arg *a = malloc(sizeof *a);
        if (a) {
            a->p = p;
            a->index = i;
        }
        if (!a || pthread_create(&p->threads[i], NULL, worker_main, a) != 0) {
            free(a);
            p->n = i;
            threadpool_free(p);
            return ERR_NOMEM;
        }
    }
    *out = p;
    return 0;
}

void threadpool_free(struct threadpool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    free(p->threads);
    free(p);
}

int threadpool_size(const struct threadpool *p)
{
    return p->n;
}

void threadpool_run(struct threadpool *p, threadpool_fn fn, void *ctx)
{
    if (p->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
    atomic_fetch_add(&p->generation, 1); /* seq_cst: pairs with the sleepers count */
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
    fn(ctx, 0, p->n);
    for (int r = 0; r < SPIN_ROUNDS; r++) {
        if (atomic_load_explicit(&p->pending, memory_order_acquire) == 0)
            return;
        cpu_relax();
    }
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->owner_waiting, 1);
    while (atomic_load(&p->pending) > 0)
        pthread_cond_wait(&p->done, &p->mu);
    atomic_store(&p->owner_waiting, 0);
    pthread_mutex_unlock(&p->mu);
}

void threadpool_split(long total, long grain, int i, int n, long *begin, long *end)
{
    long units = (total + grain - 1) / grain;
    long per = units / n, extra = units % n;
    long b = i * per + (i < extra ? i : extra);
    long e = b + per + (i < extra ? 1 : 0);
    *begin = b * grain < total ? b * grain : total;
    *end = e * grain < total ? e * grain : total;
}
