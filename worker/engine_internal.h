/*
 * engine_internal: struct engine, shared by engine.c (set-up and the step loop) and
 * engine_io.c (messages in and out). Nothing else includes it.
 */
#ifndef KILN_ENGINE_INTERNAL_H
#define KILN_ENGINE_INTERNAL_H

#include "common/arena.h"
#include "common/buf.h"
#include "common/mq.h"
#include "common/wire.h"
#include "worker/backend.h"
#include "worker/engine.h"
#include "worker/kv_blocks.h"
#include "worker/model.h"
#include "worker/rank_pool.h"
#include "worker/sampler.h"
#include "worker/scheduler.h"

#define ENGINE_MAX_FRONTENDS 64
#define ENGINE_MAX_BACKLOG (64u << 20) /* bytes queued for one frontend before it is dropped */

/* A frontend we heard from, and what this step has for it. */
struct engine_frontend {
    bool live;
    struct mq_peer peer;
    uint64_t last_seen_us;
    struct buf pending;        /* encoded messages not yet accepted by ZeroMQ */
    struct wire_seq_out *outs; /* [cap_outs] this step's TOKENS entries */
    uint32_t n_outs, cap_outs;
    int32_t *tok;    /* [cap_outs] one new token per entry */
    float *lp;       /* [cap_outs] its logprob */
    int32_t *top_ids; /* [cap_outs][SAMPLING_MAX_LOGPROBS] */
    float *top_lps;   /* [cap_outs][SAMPLING_MAX_LOGPROBS] */
};

/* A live request: the scheduler's id for it is (gen << 32) | its index in the table. */
struct engine_request {
    bool used;
    uint32_t gen;
    uint32_t front;     /* index in fronts */
    uint64_t front_rid; /* the frontend's id */
};

struct engine {
    struct engine_config cfg;
    struct rank_pool *ranks;
    struct backend *be;
    struct model *m;
    void *kv_region; /* the block manager's bookkeeping (shared mapping) */
    size_t kv_region_bytes;
    struct kv_blocks *kb;
    struct scheduler *sched;
    struct sampler_scratch scratch;
    size_t vocab;
    int max_model_len;
    float *logits;                 /* [max_num_seqs + plp_rows][vocab] */
    int plp_rows;                  /* prompt-logprob rows per step */
    struct sampler_logprobs *plp;  /* [plp_rows] this step's prompt logprobs */
    int32_t *plp_targets;          /* [plp_rows] the prompt token each row predicts */
    float *plp_lp;                 /* [plp_rows] wire arrays of this step's entries */
    int32_t *plp_top_ids;          /* [plp_rows][SAMPLING_MAX_LOGPROBS] */
    float *plp_top_lps;            /* [plp_rows][SAMPLING_MAX_LOGPROBS] */
    int32_t *sampled;              /* [max_num_seqs] */
    struct sampler_logprobs *lps;  /* [max_num_seqs] per logit row; n_top -1: not asked */
    int32_t eos[SCHED_MAX_EOS];
    uint32_t n_eos;
    struct mq_context *ctx;
    struct mq_engine *mq;
    char endpoint[256];
    struct engine_frontend fronts[ENGINE_MAX_FRONTENDS];
    struct engine_request *reqs; /* [n_reqs] */
    uint32_t n_reqs;
    int32_t *req_index; /* [index_cap] open addressing by (front, front_rid): a reqs index or -1 */
    uint32_t index_cap; /* a power of two >= 2 * n_reqs */
    uint32_t next_free; /* where the search for a free reqs entry starts */
    struct arena arena; /* decoded messages, reset per message */
    struct buf in;
    uint64_t epoch, engine_id, step, last_beat_us;
    uint64_t last_poll_us; /* when engine_receive last read the socket */
    uint64_t seed_base, n_added; /* unseeded request k draws with a mix of the two */
    uint8_t state; /* enum wire_state */
    char model_name[WIRE_MAX_STRING + 1];
    /* per-step CPU time outside the model forward, for the debug log and the bench */
    double overhead_us_sum;
    uint64_t overhead_steps;
};

/* engine_now_us: a monotonic clock in microseconds. */
uint64_t engine_now_us(void);

/* engine_receive: handles every waiting message, waiting up to timeout_ms for the first.
 * Returns the number of messages handled or a negative ERR_* (fatal socket error). */
int engine_receive(struct engine *e, int timeout_ms);

/* engine_emit_events: turns a commit's events (event i with its logprobs in e->lps[i], n_top
 * -1 when none were asked) into TOKENS entries for their frontends, and frees finished
 * requests' table entries. The step's sequences may be freed already: only ev is read. */
void engine_emit_events(struct engine *e, const struct sched_events *ev);

/* engine_emit_prompt_logprobs: computes the prompt logprobs of step's plp rows (logits after
 * the sampling rows in e->logits) and queues them for their frontends, one TOKENS entry
 * without ids per sequence, ahead of the step's tokens. Call before the commit. */
void engine_emit_prompt_logprobs(struct engine *e, const struct sched_step *step);

/* engine_flush: sends each frontend what it has pending (one ZeroMQ message per frontend),
 * HEARTBEAT and STATS once a second; drops frontends that are gone, silent or too far
 * behind, aborting their requests. Returns 0 or a fatal socket error. */
int engine_flush(struct engine *e);

/* engine_progress: called inside a step (model_set_progress): when a beat is due, HEARTBEAT
 * and STATS to every frontend, and nothing else (no frontend is dropped, no request touched),
 * so that a step longer than the frontends' dead time (a long prefill on a CPU) does not look
 * like a dead engine. */
void engine_progress(void *ctx);

#endif
