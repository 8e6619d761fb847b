/* engine_link: a frontend's connections to its engines. See engine_link.h. */
#include "frontend/engine_link.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/arena.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "common/mq.h"

#define LINK_MAX_IN_FLIGHT 65536        /* requests in flight per frontend (power of two) */
#define LINK_MAX_OUT ((size_t)64 << 20) /* bytes queued for one engine */
#define LINK_RETRY_MS 2                 /* retry of a send ZeroMQ refused */

struct link_req {
    uint64_t rid; /* 0: free */
    void *req;
    int engine;
    uint64_t epoch; /* the engine's epoch when it was sent */
    uint32_t n, n_done;
};

struct link_engine {
    struct engine_link *l;
    int idx;
    struct mq_frontend *mq;
    struct event *rd;
    struct buf out;
    struct engine_info info;
    bool greeted, alive;
    uint64_t last_msg_ms, step_seen_ms;
};

struct engine_link {
    struct event_base *base;
    struct engine_link_handler h;
    struct link_engine eng[ENGINE_LINK_MAX_ENGINES];
    size_t n;
    struct link_req *reqs; /* [LINK_MAX_IN_FLIGHT], indexed by rid mod the size */
    uint64_t next_rid;
    size_t n_live;
    struct event *beat, *flush;
    struct buf in;
    struct arena arena;
};

static uint64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

static struct link_req *req_of(struct engine_link *l, uint64_t rid)
{
    struct link_req *q = &l->reqs[rid & (LINK_MAX_IN_FLIGHT - 1)];
    return q->rid == rid && rid ? q : NULL;
}

static void req_forget(struct engine_link *l, struct link_req *q)
{
    if (q->engine >= 0 && l->eng[q->engine].info.in_flight)
        l->eng[q->engine].info.in_flight--;
    q->rid = 0;
    q->req = NULL;
    l->n_live--;
}

/* schedule_flush: sends what was queued once this pass of the loop is over. */
static void schedule_flush(struct engine_link *l)
{
    if (!event_pending(l->flush, EV_TIMEOUT, NULL))
        event_active(l->flush, EV_TIMEOUT, 0);
}

/* queue_abort: an ABORT of rid for engine e. */
static void queue_abort(struct link_engine *e, uint64_t rid)
{
    struct wire_abort a = {&rid, 1};
    if (e->out.n < LINK_MAX_OUT)
        wire_encode_abort(&e->out, &a, NULL, 0);
    schedule_flush(e->l);
}

/* engine_dead: fails every request in flight on e (and asks it to drop them). */
static void engine_dead(struct link_engine *e, const char *why)
{
    struct engine_link *l = e->l;
    if (e->info.ready || e->info.in_flight)
        log_warn("engine %d (%s) is dead: %s; failing %llu requests", e->idx, e->info.model, why,
                 (unsigned long long)e->info.in_flight);
    e->info.ready = false;
    e->alive = false;
    for (uint32_t i = 0; i < LINK_MAX_IN_FLIGHT && e->info.in_flight; i++) {
        struct link_req *q = &l->reqs[i];
        if (!q->rid || q->engine != e->idx)
            continue;
        void *req = q->req;
        queue_abort(e, q->rid);
        req_forget(l, q);
        l->h.on_fail(req, ENGINE_LINK_DIED);
    }
    if (l->h.on_engine)
        l->h.on_engine(l->h.ctx, e->idx);
}

static void set_ready(struct link_engine *e)
{
    e->info.ready = e->greeted && e->alive && e->info.state == WIRE_READY;
}

static void on_hello(struct link_engine *e, const struct wire_hello *h)
{
    if (e->greeted && h->epoch != e->info.epoch)
        engine_dead(e, "it restarted (new epoch)");
    struct engine_info *i = &e->info;
    i->epoch = h->epoch;
    i->engine_id = h->engine_id;
    snprintf(i->model, sizeof i->model, "%s", h->model);
    i->max_model_len = h->max_model_len;
    i->vocab_size = h->vocab_size;
    i->block_size = h->block_size;
    i->max_num_seqs = h->max_num_seqs;
    i->max_logprobs = h->max_logprobs;
    i->max_waiting = h->max_waiting;
    i->state = h->state;
    e->greeted = true;
    e->alive = true;
    set_ready(e);
    log_info("engine %d: %s, epoch %llu, max_model_len %u, %s", e->idx, i->model,
             (unsigned long long)i->epoch, i->max_model_len, i->ready ? "ready" : "not ready");
}

uint64_t engine_link_step_clock(uint64_t seen_ms, uint64_t now_ms, uint64_t prev_step,
                                uint32_t prev_running, uint64_t step)
{
    return step != prev_step || prev_running == 0 ? now_ms : seen_ms;
}

static void on_beat(struct link_engine *e, const struct wire_heartbeat *b)
{
    if (!e->greeted || b->epoch != e->info.epoch)
        return; /* a HELLO comes first after a restart */
    struct engine_info *i = &e->info;
    e->step_seen_ms =
        engine_link_step_clock(e->step_seen_ms, now_ms(), i->step, i->running, b->step);
    i->step = b->step;
    i->state = b->state;
    i->running = b->running;
    i->waiting = b->waiting;
    i->kv_blocks_used = b->kv_blocks_used;
    i->kv_blocks_total = b->kv_blocks_total;
    e->alive = true;
    if (b->state == WIRE_FATAL)
        engine_dead(e, "it reported a fatal error");
    set_ready(e);
}

static void on_stats(struct link_engine *e, const struct wire_stats *s)
{
    if (!e->greeted || s->epoch != e->info.epoch)
        return;
    e->info.prefix_hit_tokens = s->prefix_hit_tokens;
    e->info.prefix_query_tokens = s->prefix_query_tokens;
}

static void on_tokens(struct link_engine *e, const struct wire_tokens *t)
{
    struct engine_link *l = e->l;
    for (uint32_t k = 0; k < t->n_seqs; k++) {
        const struct wire_seq_out *s = &t->seqs[k];
        struct link_req *q = req_of(l, s->request_id);
        if (!q || q->engine != e->idx || q->epoch != e->info.epoch)
            continue; /* aborted, failed, or not ours */
        bool done = s->finish == WIRE_FINISH_ERROR ||
                    (s->finish != WIRE_FINISH_NONE && ++q->n_done == q->n);
        void *req = q->req;
        if (done)
            req_forget(l, q);
        l->h.on_tokens(req, s, done);
    }
}

/* handle: the wire messages of one received buffer. */
static void handle(struct link_engine *e)
{
    struct wire_iter it;
    struct wire_msg m;
    char err[200];
    int rc;
    e->last_msg_ms = now_ms();
    wire_iter_init(&it, e->l->in.p, e->l->in.n);
    for (;;) {
        arena_reset(&e->l->arena);
        if ((rc = wire_iter_next(&it, &m, &e->l->arena, err, sizeof err)) != 1)
            break;
        if (m.type == WIRE_HELLO)
            on_hello(e, &m.u.hello);
        else if (m.type == WIRE_HEARTBEAT)
            on_beat(e, &m.u.hb);
        else if (m.type == WIRE_STATS)
            on_stats(e, &m.u.stats);
        else if (m.type == WIRE_TOKENS)
            on_tokens(e, &m.u.tokens);
    }
    if (rc < 0)
        log_warn("engine %d: dropped a malformed message: %s", e->idx, err);
    if (e->l->h.on_engine)
        e->l->h.on_engine(e->l->h.ctx, e->idx);
}

/* read_all: every message ready on e (ZMQ_FD is edge-triggered: drain it). */
static void read_all(struct link_engine *e)
{
    for (int i = 0; i < 4096; i++) {
        int rc = mq_frontend_recv(e->mq, &e->l->in, 0);
        if (rc == 1)
            handle(e);
        else if (rc != ERR_LIMIT)
            return;
    }
    event_active(e->rd, EV_READ, 0); /* more than a pass's worth: come back soon */
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    read_all(arg);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct engine_link *l = arg;
    bool again = false;
    for (size_t i = 0; i < l->n; i++) {
        struct link_engine *e = &l->eng[i];
        if (e->out.n) {
            int rc = mq_frontend_send(e->mq, e->out.p, e->out.n);
            if (rc == 0)
                buf_reset(&e->out);
            else if (rc == ERR_LIMIT)
                again = true; /* not connected or its queue is full: retry */
            else
                log_warn("engine %d: send failed (%s)", e->idx, err_name(rc));
        }
        read_all(e); /* a send may consume ZMQ_FD's edge */
    }
    if (again) {
        struct timeval tv = {0, LINK_RETRY_MS * 1000};
        event_add(l->flush, &tv);
    }
}

static void on_beat_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct engine_link *l = arg;
    uint64_t now = now_ms();
    for (size_t i = 0; i < l->n; i++) {
        struct link_engine *e = &l->eng[i];
        struct wire_heartbeat hb = {.state = WIRE_READY};
        if (e->out.n == 0)
            wire_encode_heartbeat(&e->out, &hb, NULL, 0);
        if (e->alive && now - e->last_msg_ms > ENGINE_LINK_DEAD_MS)
            engine_dead(e, "no message for 3 seconds");
        else if (e->alive && e->info.running && now - e->step_seen_ms > ENGINE_LINK_HUNG_MS)
            engine_dead(e, "its step counter stands still");
    }
    schedule_flush(l);
}

/* engine_open: the DEALER of engine i and its read event. */
static int engine_open(struct engine_link *l, struct mq_context *ctx, int i, const char *addr,
                       char *err, size_t errlen)
{
    struct link_engine *e = &l->eng[i];
    e->l = l;
    e->idx = i;
    e->last_msg_ms = e->step_seen_ms = now_ms();
    buf_init(&e->out, LINK_MAX_OUT + (1u << 20));
    struct mq_opts o;
    mq_opts_init(&o, ctx, addr);
    int rc = mq_frontend_open(&o, &e->mq, err, errlen), fd;
    if (rc)
        return rc;
    if ((rc = mq_frontend_fd(e->mq, &fd)) != 0)
        return rc;
    e->rd = event_new(l->base, fd, EV_READ | EV_PERSIST, on_readable, e);
    if (!e->rd || event_add(e->rd, NULL))
        return ERR_NOMEM;
    struct wire_heartbeat hb = {.state = WIRE_READY};
    return wire_encode_heartbeat(&e->out, &hb, NULL, 0);
}

int engine_link_new(struct event_base *base, struct mq_context *ctx, const char *const *addrs,
                    size_t n, const struct engine_link_handler *h, struct engine_link **out,
                    char *err, size_t errlen)
{
    if (n == 0 || n > ENGINE_LINK_MAX_ENGINES || !h || !h->on_tokens || !h->on_fail) {
        snprintf(err, errlen, "between 1 and %d engines", ENGINE_LINK_MAX_ENGINES);
        return ERR_INVAL;
    }
    struct engine_link *l = calloc(1, sizeof *l);
    if (!l)
        return ERR_NOMEM;
    l->base = base;
    l->h = *h;
    l->next_rid = 1;
    buf_init(&l->in, (size_t)MQ_DEFAULT_MAXMSGSIZE);
    arena_init(&l->arena, 2 * (size_t)WIRE_MAX_BODY, 1 << 16);
    l->reqs = calloc(LINK_MAX_IN_FLIGHT, sizeof *l->reqs);
    l->beat = event_new(base, -1, EV_PERSIST, on_beat_timer, l);
    l->flush = event_new(base, -1, 0, on_flush, l);
    struct timeval tv = {ENGINE_LINK_BEAT_MS / 1000, (ENGINE_LINK_BEAT_MS % 1000) * 1000};
    int rc = l->reqs && l->beat && l->flush && !event_add(l->beat, &tv) ? 0 : ERR_NOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++, l->n++)
        rc = engine_open(l, ctx, (int)i, addrs[i], err, errlen);
    if (rc) {
        engine_link_free(l);
        return rc;
    }
    schedule_flush(l);
    *out = l;
    return 0;
}

void engine_link_free(struct engine_link *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < ENGINE_LINK_MAX_ENGINES; i++) {
        struct link_engine *e = &l->eng[i];
        if (e->rd)
            event_free(e->rd);
        mq_frontend_close(e->mq);
        buf_deinit(&e->out);
    }
    if (l->beat)
        event_free(l->beat);
    if (l->flush)
        event_free(l->flush);
    free(l->reqs);
    buf_deinit(&l->in);
    arena_deinit(&l->arena);
    free(l);
}

/* pick: the ready engine with the least load, or -1. */
static int pick(const struct engine_link *l)
{
    int best = -1;
    uint64_t best_load = UINT64_MAX;
    for (size_t i = 0; i < l->n; i++) {
        const struct engine_info *x = &l->eng[i].info;
        uint64_t load = (uint64_t)x->running + x->waiting + x->in_flight;
        if (x->ready && load < best_load)
            best = (int)i, best_load = load;
    }
    return best;
}

int engine_link_submit(struct engine_link *l, const struct wire_add *a, void *req, uint64_t *rid,
                       char *err, size_t errlen)
{
    int i = pick(l);
    if (i < 0)
        return snprintf(err, errlen, "no engine is ready"), ERR_STATE;
    if (l->n_live >= LINK_MAX_IN_FLIGHT / 2)
        return snprintf(err, errlen, "too many requests in flight"), ERR_LIMIT;
    while (l->reqs[l->next_rid & (LINK_MAX_IN_FLIGHT - 1)].rid || l->next_rid == 0)
        l->next_rid++;
    struct link_engine *e = &l->eng[i];
    struct wire_add copy = *a;
    copy.request_id = l->next_rid;
    int rc = wire_encode_add(&e->out, &copy, err, errlen);
    if (rc)
        return rc;
    struct link_req *q = &l->reqs[copy.request_id & (LINK_MAX_IN_FLIGHT - 1)];
    *q = (struct link_req){copy.request_id, req, i, e->info.epoch, a->n, 0};
    l->n_live++;
    e->info.in_flight++;
    l->next_rid++;
    if (rid)
        *rid = copy.request_id;
    schedule_flush(l);
    return 0;
}

void engine_link_abort(struct engine_link *l, uint64_t rid)
{
    struct link_req *q = req_of(l, rid);
    if (!q)
        return;
    queue_abort(&l->eng[q->engine], rid);
    req_forget(l, q);
}

bool engine_link_ready(const struct engine_link *l)
{
    return pick(l) >= 0;
}

size_t engine_link_n_engines(const struct engine_link *l)
{
    return l->n;
}

const struct engine_info *engine_link_info(const struct engine_link *l, size_t i)
{
    return i < l->n ? &l->eng[i].info : NULL;
}

const struct engine_info *engine_link_limits(const struct engine_link *l)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->eng[i].greeted)
            return &l->eng[i].info;
    return NULL;
}
