/*
 * engine: rank 0 of a model's worker group. It owns the ZeroMQ socket that frontends talk
 * to, the scheduler, the KV block manager, the sampler, the model and the other
 * tensor-parallel ranks, and runs the step loop:
 *
 *   receive every waiting message (ADD, ABORT, HEARTBEAT; a new frontend gets HELLO) ->
 *   schedule a step -> publish it to the other ranks -> run the model -> sample -> commit ->
 *   queue one TOKENS entry per sampled token for its frontend -> send each frontend ONE
 *   ZeroMQ message with everything this step produced for it -> HEARTBEAT and STATS once a
 *   second (and in answer to each HEARTBEAT a frontend sends) -> abort the requests of frontends that are gone (a send finds no such peer) or
 *   silent for frontend_timeout_ms.
 *
 * The loop never blocks on a frontend: sends are non-blocking, and bytes a full queue
 * refused are kept and retried after the next step (a frontend whose backlog passes 64 MiB
 * is dropped and its requests aborted). It waits on the socket only when it has nothing to
 * compute. A request the engine cannot take (queue full, too long, bad ids) is answered at
 * once with a TOKENS entry whose finish is ERROR and n_generated 0; the frontend turns a full
 * queue into 429.
 *
 * Signals: engine_run watches *stop: 1 drains (ADDs are refused, HEARTBEATs say draining,
 * running requests finish and are flushed, then engine_run returns 0), 2 or more returns at
 * once.
 *
 * One thread drives an engine; the CPU backend uses its own threads inside a step.
 */
#ifndef KILN_ENGINE_H
#define KILN_ENGINE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "worker/scheduler.h"

struct engine_config {
    const char *model_dir;
    const char *model_name;     /* the name in HELLO; NULL: model_dir */
    const char *addr;           /* ZeroMQ endpoint to bind: ipc://... or tcp://host:port */
    bool dummy;                 /* --load-format dummy */
    int threads;                /* CPU threads per rank, 0: every CPU / tp_size */
    int tp_size;                /* tensor-parallel ranks (processes), >= 1 */
    int block_size;             /* tokens per KV block */
    size_t kv_cache_bytes;      /* KV pool size per rank (CPU) */
    int max_num_seqs;           /* sequences per step */
    int max_num_batched_tokens; /* tokens per step */
    int max_waiting;            /* queued sequences before ADD is refused */
    int max_model_len;          /* 0: the model's */
    enum sched_policy policy;   /* FCFS or PRIORITY */
    bool enable_prefix_caching;
    bool has_seed;           /* seed given: unseeded requests draw reproducibly from it; */
    uint64_t seed;           /* otherwise each engine start draws a random base */
    int frontend_timeout_ms; /* a frontend silent this long has its requests aborted */
};

/* engine_config_default: the defaults of `kiln engine` (model_dir NULL). */
struct engine_config engine_config_default(void);

struct engine;

/*
 * engine_new: starts the tensor-parallel ranks, loads the model, sizes the KV pool from
 * kv_cache_bytes and binds the socket. Call before this process creates any thread (the
 * ranks are forked). Returns 0 and *out, or a negative ERR_* with the reason in err (the
 * model loader's message, a bad address, a KV pool too small for one sequence, ...).
 */
int engine_new(const struct engine_config *c, struct engine **out, char *err, size_t errlen);

/* engine_endpoint: the bound address (with the port a tcp "*" picked). */
const char *engine_endpoint(const struct engine *e);

/* engine_describe: one line on what was loaded (model, KV blocks, limits) into s. */
void engine_describe(const struct engine *e, char *s, size_t n);

/* engine_run: the step loop (see the top of this file). Returns 0 when stopped or drained,
 * or a negative ERR_* on a fatal error (a rank died, the socket failed; err says why). */
int engine_run(struct engine *e, volatile sig_atomic_t *stop, char *err, size_t errlen);

/* engine_free: stops the ranks, closes the socket and frees everything; NULL is a no-op. */
void engine_free(struct engine *e);

#endif
