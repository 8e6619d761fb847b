/*
 * engine_io: the engine's messages: ADD, ABORT and HEARTBEAT in; HELLO, TOKENS, STATS and
 * HEARTBEAT out; frontends coming and going. See engine.h and engine_internal.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "common/log.h"
#include "worker/engine_internal.h"

#define BEAT_US 1000000 /* HEARTBEAT and STATS to every frontend this often */

uint64_t engine_now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

static uint64_t sched_id(const struct engine *e, const struct engine_request *r)
{
    return (uint64_t)r->gen << 32 | (uint32_t)(r - e->reqs);
}

/* request_of: the table entry of scheduler id id, or NULL. */
static struct engine_request *request_of(struct engine *e, uint64_t id)
{
    uint32_t i = (uint32_t)id;
    if (i >= e->n_reqs || !e->reqs[i].used || e->reqs[i].gen != (uint32_t)(id >> 32))
        return NULL;
    return &e->reqs[i];
}

static void send_hello(struct engine *e, struct engine_frontend *f)
{
    const struct model_config *c = model_config(e->m);
    struct wire_hello h = {.proto_version = WIRE_VERSION,
                           .engine_id = e->engine_id,
                           .epoch = e->epoch,
                           .model = e->model_name,
                           .n_model = (uint32_t)strlen(e->model_name),
                           .max_model_len = (uint32_t)e->max_model_len,
                           .vocab_size = (uint32_t)c->vocab_size,
                           .block_size = (uint32_t)e->cfg.block_size,
                           .max_num_seqs = (uint32_t)e->cfg.max_num_seqs,
                           .max_num_batched_tokens = (uint32_t)e->cfg.max_num_batched_tokens,
                           .max_logprobs = SAMPLING_MAX_LOGPROBS,
                           .max_waiting = (uint32_t)e->cfg.max_waiting,
                           .state = e->state};
    char err[160];
    if (wire_encode_hello(&f->pending, &h, err, sizeof err))
        log_error("HELLO: %s", err);
}

/* frontend_init: a slot's arrays for a newly seen frontend. */
static int frontend_init(struct engine *e, struct engine_frontend *f, const struct mq_peer *p)
{
    if (!f->outs) {
        size_t cap = (size_t)e->cfg.max_num_seqs + 64;
        f->outs = malloc(cap * sizeof *f->outs);
        f->tok = malloc(cap * sizeof *f->tok);
        f->lp = malloc(cap * sizeof *f->lp);
        f->top_ids = malloc(cap * SAMPLING_MAX_LOGPROBS * sizeof *f->top_ids);
        f->top_lps = malloc(cap * SAMPLING_MAX_LOGPROBS * sizeof *f->top_lps);
        if (!f->outs || !f->tok || !f->lp || !f->top_ids || !f->top_lps)
            return ERR_NOMEM;
        f->cap_outs = (uint32_t)cap;
        buf_init(&f->pending, ENGINE_MAX_BACKLOG + (1u << 20));
    }
    f->live = true;
    f->peer = *p;
    f->n_outs = 0;
    buf_reset(&f->pending);
    return 0;
}

/* frontend_of: the frontend with this routing id, created (and greeted) on first contact. */
static struct engine_frontend *frontend_of(struct engine *e, const struct mq_peer *p)
{
    struct engine_frontend *free_slot = NULL;
    for (int i = 0; i < ENGINE_MAX_FRONTENDS; i++) {
        struct engine_frontend *f = &e->fronts[i];
        if (f->live && mq_peer_equal(&f->peer, p))
            return f;
        if (!f->live && !free_slot)
            free_slot = f;
    }
    if (!free_slot) {
        log_warn("more than %d frontends: ignoring a new one", ENGINE_MAX_FRONTENDS);
        return NULL;
    }
    if (frontend_init(e, free_slot, p)) {
        log_error("out of memory for a new frontend");
        return NULL;
    }
    log_info("frontend %d connected", (int)(free_slot - e->fronts));
    send_hello(e, free_slot);
    return free_slot;
}

static void req_release(struct engine *e, struct engine_request *r);

/* frontend_drop: aborts every request of f and forgets it. */
static void frontend_drop(struct engine *e, struct engine_frontend *f, const char *why)
{
    uint32_t front = (uint32_t)(f - e->fronts), n = 0;
    for (uint32_t i = 0; i < e->n_reqs; i++) {
        struct engine_request *r = &e->reqs[i];
        if (r->used && r->front == front) {
            scheduler_abort(e->sched, sched_id(e, r));
            req_release(e, r);
            n++;
        }
    }
    log_info("frontend %u %s: %u requests aborted", front, why, n);
    f->live = false;
    f->n_outs = 0;
    buf_reset(&f->pending);
}

/* encode_outs: this step's entries of f as one TOKENS message in f->pending. */
static void encode_outs(struct engine *e, struct engine_frontend *f)
{
    if (f->n_outs == 0)
        return;
    struct wire_tokens t = {f->outs, f->n_outs};
    char err[200];
    int rc = wire_encode_tokens(&f->pending, &t, err, sizeof err);
    f->n_outs = 0;
    if (rc == ERR_LIMIT)
        frontend_drop(e, f, "fell too far behind");
    else if (rc)
        log_error("TOKENS: %s", err);
}

/* out_entry: a new, cleared TOKENS entry for f (earlier entries are encoded when full). */
static struct wire_seq_out *out_entry(struct engine *e, struct engine_frontend *f)
{
    if (f->n_outs == f->cap_outs)
        encode_outs(e, f);
    if (!f->live)
        return NULL;
    uint32_t k = f->n_outs++;
    struct wire_seq_out *o = &f->outs[k];
    memset(o, 0, sizeof *o);
    o->stop_reason = -1;
    o->ids = &f->tok[k];
    return o;
}

/* refuse: answers request rid at once with finish ERROR and the reason. */
static void refuse(struct engine *e, struct engine_frontend *f, uint64_t rid, uint32_t n_prompt,
                   enum wire_error why)
{
    struct wire_seq_out *o = out_entry(e, f);
    if (!o)
        return;
    o->request_id = rid;
    o->finish = WIRE_FINISH_ERROR;
    o->stop_reason = (int32_t)why;
    o->n_prompt_tokens = n_prompt;
}

/* key_slot: the home slot of (front, rid) in req_index. */
static uint32_t key_slot(const struct engine *e, uint32_t front, uint64_t rid)
{
    uint64_t z = rid ^ ((uint64_t)front + 1) * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (uint32_t)(z ^ (z >> 31)) & (e->index_cap - 1);
}

/* req_find: the live request (front, rid), or NULL; *slot gets its index slot, or the empty
 * slot where it would go. */
static struct engine_request *req_find(struct engine *e, uint32_t front, uint64_t rid,
                                       uint32_t *slot)
{
    uint32_t mask = e->index_cap - 1, h = key_slot(e, front, rid);
    for (;; h = (h + 1) & mask) {
        int32_t i = e->req_index[h];
        if (i < 0 || (e->reqs[i].front == front && e->reqs[i].front_rid == rid)) {
            *slot = h;
            return i < 0 ? NULL : &e->reqs[i];
        }
    }
}

/* req_release: frees live request r's entry and its index slot (backward-shift deletion:
 * later entries of the probe run move up so that no lookup stops early). */
static void req_release(struct engine *e, struct engine_request *r)
{
    uint32_t mask = e->index_cap - 1, hole, j;
    req_find(e, r->front, r->front_rid, &hole);
    r->used = false;
    for (j = (hole + 1) & mask; e->req_index[j] >= 0; j = (j + 1) & mask) {
        const struct engine_request *q = &e->reqs[e->req_index[j]];
        uint32_t home = key_slot(e, q->front, q->front_rid);
        if (((j - home) & mask) >= ((j - hole) & mask)) { /* hole lies in [home, j) */
            e->req_index[hole] = e->req_index[j];
            hole = j;
        }
    }
    e->req_index[hole] = -1;
}

/* request_new: a table entry for (front, rid). NULL with *dup false when the table is full,
 * with *dup true when that frontend already has a live request with this id. */
static struct engine_request *request_new(struct engine *e, uint32_t front, uint64_t rid,
                                          bool *dup)
{
    uint32_t slot;
    *dup = req_find(e, front, rid, &slot) != NULL;
    if (*dup)
        return NULL;
    for (uint32_t k = 0; k < e->n_reqs; k++) {
        uint32_t i = (e->next_free + k) % e->n_reqs;
        struct engine_request *r = &e->reqs[i];
        if (!r->used) {
            *r = (struct engine_request){true, r->gen + 1, front, rid};
            e->req_index[slot] = (int32_t)i;
            e->next_free = (i + 1) % e->n_reqs;
            return r;
        }
    }
    return NULL;
}

static void on_add(struct engine *e, struct engine_frontend *f, const struct wire_add *a)
{
    uint32_t front = (uint32_t)(f - e->fronts);
    if (e->state == WIRE_DRAINING) {
        refuse(e, f, a->request_id, a->n_prompt, WIRE_ERROR_DRAINING);
        return;
    }
    bool dup;
    struct engine_request *r = request_new(e, front, a->request_id, &dup);
    char err[256] = "the engine's request table is full";
    int rc = ERR_LIMIT;
    if (dup) {
        snprintf(err, sizeof err, "request id %llu is already live",
                 (unsigned long long)a->request_id);
        rc = ERR_STATE;
    } else if (r) {
        uint64_t k = ++e->n_added * 0x9e3779b97f4a7c15ull;
        struct sched_request q = {.id = sched_id(e, r),
                                  .key = front,
                                  .prompt = a->prompt,
                                  .n_prompt = a->n_prompt,
                                  .params = &a->sp,
                                  .n = a->n,
                                  .priority = a->priority,
                                  .arrival = a->arrival_us,
                                  .engine_seed = e->seed_base ^ (k ^ (k >> 29))};
        rc = scheduler_add(e->sched, &q, err, sizeof err);
        if (rc)
            req_release(e, r);
    }
    if (rc) {
        log_info("request %llu refused: %s", (unsigned long long)a->request_id, err);
        refuse(e, f, a->request_id, a->n_prompt,
               rc == ERR_LIMIT   ? WIRE_ERROR_OVERLOADED
               : rc == ERR_NOMEM ? WIRE_ERROR_INTERNAL
                                 : WIRE_ERROR_INVALID);
    }
}

static void on_abort(struct engine *e, struct engine_frontend *f, const struct wire_abort *a)
{
    uint32_t front = (uint32_t)(f - e->fronts), slot;
    for (uint32_t k = 0; k < a->n_ids; k++) {
        struct engine_request *r = req_find(e, front, a->ids[k], &slot);
        if (r) {
            scheduler_abort(e->sched, sched_id(e, r));
            req_release(e, r);
        }
    }
}

static void queue_beat(struct engine *e, struct engine_frontend *f);

/* handle: one ZeroMQ message (one or more wire messages) from peer. */
static void handle(struct engine *e, const struct mq_peer *peer)
{
    struct engine_frontend *f = frontend_of(e, peer);
    if (!f)
        return;
    f->last_seen_us = engine_now_us();
    struct wire_iter it;
    struct wire_msg m;
    char err[256];
    int rc;
    wire_iter_init(&it, e->in.p, e->in.n);
    for (;;) {
        arena_reset(&e->arena);
        if ((rc = wire_iter_next(&it, &m, &e->arena, err, sizeof err)) != 1)
            break;
        if (m.type == WIRE_ADD)
            on_add(e, f, &m.u.add);
        else if (m.type == WIRE_ABORT)
            on_abort(e, f, &m.u.aborts);
        else if (m.type == WIRE_HEARTBEAT)
            queue_beat(e, f); /* answered at once: the frontend's liveness and load probe */
        else
            log_warn("unexpected %s from frontend %d", wire_type_name(m.type),
                     (int)(f - e->fronts));
        if (!f->live)
            break;
    }
    if (rc < 0)
        log_warn("dropped the rest of a malformed message from frontend %d: %s",
                 (int)(f - e->fronts), err);
}

int engine_receive(struct engine *e, int timeout_ms)
{
    int handled = 0;
    e->last_poll_us = engine_now_us();
    for (;;) {
        struct mq_peer peer;
        int rc = mq_engine_recv(e->mq, &peer, &e->in, handled ? 0 : timeout_ms);
        if (rc == 0)
            return handled;
        if (rc == ERR_LIMIT) {
            log_warn("dropped a message above the size limit");
            continue;
        }
        if (rc < 0)
            return rc;
        handle(e, &peer);
        handled++;
    }
}

/* copy_logprobs: lp into entry o (slot k of f). */
static void copy_logprobs(struct engine_frontend *f, uint32_t k, struct wire_seq_out *o,
                          const struct sampler_logprobs *lp)
{
    f->lp[k] = lp->logprob;
    memcpy(&f->top_ids[k * SAMPLING_MAX_LOGPROBS], lp->top_ids,
           (size_t)lp->n_top * sizeof *lp->top_ids);
    memcpy(&f->top_lps[k * SAMPLING_MAX_LOGPROBS], lp->top_logprobs,
           (size_t)lp->n_top * sizeof *lp->top_logprobs);
    o->has_logprobs = true;
    o->lp = (struct wire_logprobs){.n_top = (uint32_t)lp->n_top,
                                   .logprob = &f->lp[k],
                                   .top_ids = lp->n_top ? &f->top_ids[k * SAMPLING_MAX_LOGPROBS]
                                                        : NULL,
                                   .top_logprobs =
                                       lp->n_top ? &f->top_lps[k * SAMPLING_MAX_LOGPROBS] : NULL};
}

/* plp_entry: the TOKENS entry for prompt-logprob rows [j0, j1) of sequence q, computed
 * with k alternatives; packs them into the engine's wire arrays. */
static void plp_entry(struct engine *e, const struct sched_seq *q, size_t j0, size_t j1, int k)
{
    struct engine_request *r = request_of(e, q->request_id);
    struct engine_frontend *f = r ? &e->fronts[r->front] : NULL;
    struct wire_seq_out *o = f && f->live ? out_entry(e, f) : NULL;
    if (!o)
        return;
    int32_t *ids = &e->plp_top_ids[j0 * SAMPLING_MAX_LOGPROBS];
    float *lps = &e->plp_top_lps[j0 * SAMPLING_MAX_LOGPROBS];
    for (size_t j = j0; j < j1; j++) {
        e->plp_lp[j] = e->plp[j].logprob;
        size_t at = (j - j0) * (size_t)k;
        memcpy(ids + at, e->plp[j].top_ids, (size_t)k * sizeof *ids);
        memcpy(lps + at, e->plp[j].top_logprobs, (size_t)k * sizeof *lps);
    }
    o->request_id = r->front_rid;
    o->n_prompt_tokens = (uint32_t)q->n_prompt;
    o->n_cached_tokens = q->n_cached;
    o->has_prompt_logprobs = true;
    o->n_prompt_lp = (uint32_t)(j1 - j0);
    o->prompt_lp = (struct wire_logprobs){.n_top = (uint32_t)k,
                                          .logprob = &e->plp_lp[j0],
                                          .top_ids = k ? ids : NULL,
                                          .top_logprobs = k ? lps : NULL};
}

void engine_emit_prompt_logprobs(struct engine *e, const struct sched_step *step)
{
    const float *rows = e->logits + step->n_logits * e->vocab;
    for (size_t j0 = 0, j1; j0 < step->n_plp; j0 = j1) {
        const struct sched_seq *q = step->seqs[step->plp_seq[j0]];
        for (j1 = j0; j1 < step->n_plp && step->plp_seq[j1] == step->plp_seq[j0]; j1++)
            e->plp_targets[j1] = q->tokens[step->plp_pos[j1] + 1];
        int k = q->sampler.params.prompt_logprobs;
        k = k > SAMPLING_MAX_LOGPROBS ? SAMPLING_MAX_LOGPROBS : k;
        /* k and the targets are in range by construction: this cannot fail */
        sampler_prompt_logprobs(rows + j0 * e->vocab, j1 - j0, e->plp_targets + j0, k,
                                &e->scratch, e->plp + j0);
        plp_entry(e, q, j0, j1, k);
    }
}

static const uint8_t finish_of[] = {[SCHED_NOT_FINISHED] = WIRE_FINISH_NONE,
                                    [SCHED_STOP] = WIRE_FINISH_STOP,
                                    [SCHED_LENGTH] = WIRE_FINISH_LENGTH,
                                    [SCHED_ABORT] = WIRE_FINISH_ABORT};

void engine_emit_events(struct engine *e, const struct sched_events *ev)
{
    for (size_t i = 0; i < ev->n; i++) {
        const struct sched_event *x = &ev->ev[i];
        struct engine_request *r = request_of(e, x->request_id);
        if (!r)
            continue;
        struct engine_frontend *f = &e->fronts[r->front];
        struct wire_seq_out *o = f->live ? out_entry(e, f) : NULL;
        if (o) {
            uint32_t k = (uint32_t)(o->ids - f->tok);
            f->tok[k] = x->token;
            o->request_id = r->front_rid;
            o->choice = x->choice;
            o->finish = finish_of[x->finish];
            o->stop_reason = x->stop_reason;
            o->n_prompt_tokens = x->n_prompt;
            o->n_cached_tokens = x->n_cached;
            o->n_generated_tokens = x->n_generated;
            o->n_ids = 1;
            if (e->lps[i].n_top >= 0)
                copy_logprobs(f, k, o, &e->lps[i]);
        }
        if (x->request_done)
            req_release(e, r);
    }
}

/* queue_beat: HEARTBEAT and STATS for f. */
static void queue_beat(struct engine *e, struct engine_frontend *f)
{
    struct sched_stats s = scheduler_stats(e->sched);
    struct kv_blocks_stats k = kv_blocks_stats(e->kb);
    struct wire_heartbeat hb = {.epoch = e->epoch,
                                .step = e->step,
                                .state = e->state,
                                .running = (uint32_t)s.n_running,
                                .waiting = (uint32_t)s.n_waiting,
                                .kv_blocks_used = (uint32_t)k.in_use,
                                .kv_blocks_total = (uint32_t)k.n_blocks};
    struct wire_stats st = {.epoch = e->epoch,
                            .step = e->step,
                            .running = hb.running,
                            .waiting = hb.waiting,
                            .kv_blocks_used = hb.kv_blocks_used,
                            .kv_blocks_total = hb.kv_blocks_total,
                            .prefix_hit_tokens = k.hit_tokens,
                            .prefix_query_tokens = k.query_tokens};
    char err[160];
    if (wire_encode_heartbeat(&f->pending, &hb, err, sizeof err) ||
        wire_encode_stats(&f->pending, &st, err, sizeof err))
        log_error("HEARTBEAT/STATS: %s", err);
}

/* send_pending: offers f's pending bytes to ZeroMQ. Returns 0 or a fatal socket error. */
static int send_pending(struct engine *e, struct engine_frontend *f)
{
    if (f->pending.n == 0)
        return 0;
    int rc = mq_engine_send(e->mq, &f->peer, f->pending.p, f->pending.n);
    if (rc == 0)
        buf_reset(&f->pending);
    else if (rc == ERR_LIMIT && f->pending.n > ENGINE_MAX_BACKLOG)
        frontend_drop(e, f, "fell too far behind");
    else if (rc == ERR_NOTFOUND || rc == ERR_IO || rc == ERR_RANGE)
        frontend_drop(e, f, "disconnected");
    else if (rc == ERR_STATE)
        return rc;
    return 0; /* ERR_LIMIT: its queue is full; the bytes wait for the next round */
}

int engine_flush(struct engine *e)
{
    uint64_t now = engine_now_us();
    bool beat = now - e->last_beat_us >= BEAT_US;
    if (beat)
        e->last_beat_us = now;
    uint64_t timeout = (uint64_t)e->cfg.frontend_timeout_ms * 1000u;
    for (int i = 0; i < ENGINE_MAX_FRONTENDS; i++) {
        struct engine_frontend *f = &e->fronts[i];
        if (!f->live)
            continue;
        /* silent at the last look at the socket: a long step is not the frontend's fault */
        if (e->last_poll_us > f->last_seen_us && e->last_poll_us - f->last_seen_us > timeout) {
            frontend_drop(e, f, "fell silent");
            continue;
        }
        encode_outs(e, f);
        if (f->live && beat)
            queue_beat(e, f);
        int rc = f->live ? send_pending(e, f) : 0;
        if (rc < 0)
            return rc;
    }
    return 0;
}

void engine_progress(void *ctx)
{
    struct engine *e = ctx;
    uint64_t now = engine_now_us();
    if (now - e->last_beat_us < BEAT_US)
        return;
    e->last_beat_us = now;
    for (int i = 0; i < ENGINE_MAX_FRONTENDS; i++) {
        struct engine_frontend *f = &e->fronts[i];
        if (!f->live)
            continue;
        queue_beat(e, f);
        /* offered as is: a full queue or a gone peer is left to the step's flush, which may
         * drop the frontend; dropping it here would abort requests in the running step */
        if (mq_engine_send(e->mq, &f->peer, f->pending.p, f->pending.n) == 0)
            buf_reset(&f->pending);
    }
}
