/*
 * threadpool: a fixed set of threads that run one parallel loop at a time.
 *
 * threadpool_run(p, fn, ctx) calls fn(ctx, i, n) once for every thread index i < n (n is
 * the pool's size, the calling thread included as index 0) and returns when all calls have
 * returned. Workers spin briefly for the next loop, then sleep, so back-to-back loops of a
 * model step cost microseconds, and an idle pool costs no CPU. One thread (the pool's owner)
 * calls threadpool_run at a time; fn must split its work by i itself.
 */
#ifndef KILN_THREADPOOL_H
#define KILN_THREADPOOL_H

struct threadpool;

typedef void (*threadpool_fn)(void *ctx, int i, int n);

/* threadpool_new: a pool of n_threads (>= 1; the caller counts as one, so n_threads - 1
 * threads are started). Returns 0 and *out, or ERR_NOMEM / ERR_INVAL. */
int threadpool_new(int n_threads, struct threadpool **out);

/* threadpool_free: stops and joins the threads. NULL is allowed. */
void threadpool_free(struct threadpool *p);

int threadpool_size(const struct threadpool *p);

/* threadpool_run: runs fn(ctx, i, n) for i in [0, n) in parallel and waits for all. */
void threadpool_run(struct threadpool *p, threadpool_fn fn, void *ctx);

/* threadpool_split: the [*begin, *end) share of thread i among n of a range of `total`
 * items, in units of `grain` (the last share takes the remainder). */
void threadpool_split(long total, long grain, int i, int n, long *begin, long *end);

#endif
