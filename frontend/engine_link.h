/*
 * engine_link: a frontend's connections to its engines (one ZeroMQ DEALER each, common/mq),
 * driven by the frontend's libevent loop.
 *
 * It learns each engine's limits and epoch from HELLO, keeps its load from HEARTBEAT and
 * STATS, sends ADDs (to the ready engine with the fewest running + waiting sequences) and
 * ABORTs, and routes every TOKENS entry to the request it belongs to. Messages produced in
 * one pass of the event loop go to an engine as one ZeroMQ message; bytes ZeroMQ refuses
 * (its queue full) are kept and retried, never blocking the loop.
 *
 * Failure: an engine that sends nothing for ENGINE_LINK_DEAD_MS (it answers every HEARTBEAT,
 * sent each second), whose step counter stands still for ENGINE_LINK_HUNG_MS while it has
 * running sequences (counted from its last step or from when work came, whichever is later:
 * engine_link_step_clock), that reports state FATAL, or that greets us with a new epoch (it
 * restarted) is dead to its in-flight requests: each gets on_fail once, and the engine
 * counts as not ready until a HELLO arrives again. /health reads engine_link_ready.
 *
 * Callbacks run on the loop's thread, never inside a call the caller makes into this API,
 * except on_tokens for refusals that engine_link_submit cannot even send (none: such
 * failures are returned instead). After on_fail, or after a TOKENS entry whose every choice
 * finished, or after engine_link_abort, the request is forgotten: no more callbacks.
 */
#ifndef KILN_ENGINE_LINK_H
#define KILN_ENGINE_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/wire.h"

#define ENGINE_LINK_MAX_ENGINES 16
#define ENGINE_LINK_BEAT_MS 1000  /* HEARTBEAT to each engine this often */
#define ENGINE_LINK_DEAD_MS 3000  /* an engine silent this long is dead */
#define ENGINE_LINK_HUNG_MS 60000 /* a step counter standing still this long, with work: hung */

/*
 * engine_link_step_clock: the hung rule's clock: when the step counter of an engine was last
 * seen moving, or its work began. Given the clock so far (seen_ms), a heartbeat at now_ms
 * that reports step, and the previous heartbeat's step and running count, it returns the new
 * clock: now_ms when the step moved or the engine had no running sequence before (an idle
 * engine's counter stands still by rights, so its first step counts from when work came).
 */
uint64_t engine_link_step_clock(uint64_t seen_ms, uint64_t now_ms, uint64_t prev_step,
                                uint32_t prev_running, uint64_t step);

struct event_base;
struct mq_context;
struct engine_link;

/* What a frontend knows of one engine. */
struct engine_info {
    bool ready;    /* HELLO seen, alive, state READY */
    uint8_t state; /* enum wire_state of its last HELLO or HEARTBEAT */
    uint64_t epoch, engine_id;
    char model[WIRE_MAX_STRING + 1];
    uint32_t max_model_len, vocab_size, block_size, max_num_seqs, max_logprobs, max_waiting;
    uint32_t running, waiting, kv_blocks_used, kv_blocks_total;
    uint64_t step, prefix_hit_tokens, prefix_query_tokens;
    uint64_t in_flight; /* this frontend's requests on it */
};

enum engine_link_fail {
    ENGINE_LINK_DIED = 1,     /* silent, hung, fatal or restarted while the request ran */
    ENGINE_LINK_NO_ENGINE = 2 /* (from submit) no engine is ready */
};

struct engine_link_handler {
    /* on_tokens: one TOKENS entry of request req (the pointer given to submit); s and its
     * arrays live until the callback returns. done: every choice of the request finished
     * (or it was refused): the request is forgotten after this call. */
    void (*on_tokens)(void *req, const struct wire_seq_out *s, bool done);
    /* on_fail: the request's engine died (enum engine_link_fail); it is forgotten. */
    void (*on_fail)(void *req, int why);
    /* on_engine: an engine's state or load changed (HELLO, HEARTBEAT, STATS, death). */
    void (*on_engine)(void *ctx, int engine);
    void *ctx;
};

/*
 * engine_link_new: connects to addrs[0..n) (ipc:// or tcp://; n <= ENGINE_LINK_MAX_ENGINES)
 * and starts greeting them. Connecting is asynchronous: engines become ready as their HELLO
 * arrives. Returns 0 and *out, ERR_INVAL / ERR_RANGE / ERR_UNSUPPORTED (a bad address: err
 * says which), ERR_NOMEM, ERR_IO. Free with engine_link_free.
 */
int engine_link_new(struct event_base *base, struct mq_context *ctx, const char *const *addrs,
                    size_t n, const struct engine_link_handler *h, struct engine_link **out,
                    char *err, size_t errlen);

/* engine_link_free: closes the sockets; requests still in flight get no callback. */
void engine_link_free(struct engine_link *l);

/*
 * engine_link_submit: sends request a (its request_id is replaced by the link's own) to the
 * least loaded ready engine and remembers req for the callbacks. *rid (may be NULL) gets the
 * link's id, for engine_link_abort. Returns 0, ERR_STATE (no engine is ready), ERR_LIMIT
 * (more than the link's in-flight cap), ERR_RANGE (a wire limit: err says which), ERR_NOMEM.
 */
int engine_link_submit(struct engine_link *l, const struct wire_add *a, void *req, uint64_t *rid,
                       char *err, size_t errlen);

/* engine_link_abort: tells the engine to drop request rid and forgets it (no callback). A
 * finished or unknown rid is ignored. */
void engine_link_abort(struct engine_link *l, uint64_t rid);

/* engine_link_ready: whether some engine is ready (for /health). */
bool engine_link_ready(const struct engine_link *l);

/* engine_link_n_engines, engine_link_info: what the link knows of engine i. */
size_t engine_link_n_engines(const struct engine_link *l);
const struct engine_info *engine_link_info(const struct engine_link *l, size_t i);

/* engine_link_limits: the limits of the first engine that said HELLO (the frontends'
 * validation uses them), or NULL when none has yet. */
const struct engine_info *engine_link_limits(const struct engine_link *l);

#endif
