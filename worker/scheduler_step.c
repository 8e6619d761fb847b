/*
 * scheduler_step.c: scheduler_schedule (plan the step's token counts with preemption, then
 * lay the batch out) and scheduler_commit (tokens, stop conditions, finishes).
 */
#include <stdint.h>
#include <string.h>

#include "common/err.h"
#include "worker/scheduler.h"
#include "worker/scheduler_internal.h"

/* The step being planned. */
struct plan {
    size_t budget;      /* tokens left */
    size_t plp_left;    /* prompt-logprob rows left */
    size_t n_preempted; /* in this step */
};

/* wants_plp: whether q still needs prompt-logprob rows (see scheduler.h). */
static bool wants_plp(const struct sched_seq *q)
{
    return q->choice == 0 && q->req->params.prompt_logprobs >= 0 &&
           (size_t)q->n_plp_done + 1 < q->n_prompt;
}

/* plp_rows_of: the prompt-logprob rows q's chunk of n tokens from position a needs: one per
 * position p in [max(a, n_plp_done), n_prompt - 1). */
static size_t plp_rows_of(const struct sched_seq *q, size_t a, size_t n)
{
    if (!wants_plp(q))
        return 0;
    size_t lo = a > q->n_plp_done ? a : q->n_plp_done;
    size_t hi = a + n < q->n_prompt - 1 ? a + n : q->n_prompt - 1;
    return hi > lo ? hi - lo : 0;
}

/* chunk_fit: n, cut so that q's chunk from position a needs at most p->plp_left rows; 0 when
 * not even one token fits. */
static size_t chunk_fit(const struct sched_seq *q, const struct plan *p, size_t a, size_t n)
{
    if (plp_rows_of(q, a, n) <= p->plp_left)
        return n;
    size_t lo = a > q->n_plp_done ? a : q->n_plp_done, end = lo + p->plp_left;
    return end > a ? end - a : 0;
}

/* victim_pick: the running sequence to preempt (see scheduler.h). */
static struct sched_seq *victim_pick(const struct scheduler *s)
{
    struct sched_seq *v = s->running[s->n_running - 1];
    if (s->c.policy != SCHED_PRIORITY)
        return v;
    for (size_t i = 0; i < s->n_running; i++) {
        struct sched_seq *q = s->running[i];
        const struct sched_req *a = q->req, *b = v->req;
        if (a->priority != b->priority ? a->priority > b->priority
            : a->arrival != b->arrival ? a->arrival > b->arrival
                                       : q->order > v->order)
            v = q;
    }
    return v;
}

/* preempt: releases v's KV blocks and sends it back to the waiting queue for recompute. */
static void preempt(struct scheduler *s, struct plan *p, struct sched_seq *v)
{
    if (v->n_sched) {
        kv_blocks_seq_abort(s->kb, v->kv_slot); /* this step's appends were never computed */
        p->budget += v->n_sched;
        p->plp_left += v->n_sched_plp;
        v->n_sched = 0;
        v->n_sched_plp = 0;
    } else {
        kv_blocks_seq_free(s->kb, v->kv_slot); /* computed blocks stay cached */
    }
    v->kv_slot = -1;
    v->n_computed = 0;
    sched_running_remove(s, v);
    sched_waiting_insert(s, v, s->c.policy == SCHED_FCFS);
    p->n_preempted++;
    s->n_preemptions++;
}

/* plan_seq: appends n tokens of running q, preempting until they fit. Returns 0 when q is
 * scheduled, 1 when q itself was preempted, or a kv_blocks error. */
static int plan_seq(struct scheduler *s, struct plan *p, struct sched_seq *q, size_t n)
{
    for (;;) {
        int rc = kv_blocks_append(s->kb, q->kv_slot, n, q->tokens + q->n_computed);
        if (rc == 0) {
            q->n_sched = (uint32_t)n;
            q->n_sched_plp = (uint32_t)plp_rows_of(q, q->n_computed, n);
            p->plp_left -= q->n_sched_plp;
            p->budget -= n;
            s->planned[s->n_planned++] = q;
            return 0;
        }
        if (rc != ERR_LIMIT)
            return rc;
        struct sched_seq *v = victim_pick(s);
        preempt(s, p, v);
        if (v == q)
            return 1;
    }
}

/* plan_running: one pass over the running sequences: decode (a single token left) or
 * prefill (more). Restarts from the front after a preemption, which reorders the array. */
static int plan_running(struct scheduler *s, struct plan *p, bool decode)
{
    size_t i = 0;
    while (i < s->n_running && p->budget > 0) {
        struct sched_seq *q = s->running[i];
        size_t left = q->n_tokens - q->n_computed;
        if (q->n_sched || (left == 1) != decode) {
            i++;
            continue;
        }
        size_t n = chunk_fit(q, p, q->n_computed, left < p->budget ? left : p->budget);
        if (n == 0) {
            i++;
            continue;
        }
        size_t before = p->n_preempted;
        int rc = plan_seq(s, p, q, n);
        if (rc < 0)
            return rc;
        i = p->n_preempted != before ? 0 : i + 1;
    }
    return 0;
}

/* admit_one: the waiting queue's first sequence into the running set with its first chunk.
 * Returns 0, 1 when it does not fit (nothing changed), or a kv_blocks error. */
static int admit_one(struct scheduler *s, struct plan *p)
{
    struct sched_seq *q = s->waiting[0];
    int32_t slot;
    size_t cached;
    /* prompt logprobs need the logits of every prompt position: no prefix-cache hits */
    int rc = kv_blocks_seq_new(s->kb, q->tokens, wants_plp(q) ? 1 : q->n_tokens, &slot, &cached);
    if (rc)
        return rc == ERR_LIMIT ? 1 : rc;
    size_t n = q->n_tokens - cached;
    n = chunk_fit(q, p, cached, n < p->budget ? n : p->budget);
    rc = n ? kv_blocks_append(s->kb, slot, n, q->tokens + cached) : ERR_LIMIT;
    if (rc) {
        kv_blocks_seq_free(s->kb, slot); /* only cached, computed blocks were taken */
        return rc == ERR_LIMIT ? 1 : rc;
    }
    memmove(s->waiting, s->waiting + 1, (s->n_waiting - 1) * sizeof *s->waiting);
    s->n_waiting--;
    if (q->n_admissions++ == 0)
        q->n_cached = (uint32_t)cached;
    q->kv_slot = slot;
    q->n_computed = cached;
    q->n_sched = (uint32_t)n;
    q->n_sched_plp = (uint32_t)plp_rows_of(q, cached, n);
    p->plp_left -= q->n_sched_plp;
    q->state = SEQ_RUNNING;
    s->running[s->n_running++] = q;
    s->planned[s->n_planned++] = q;
    p->budget -= n;
    return 0;
}

/* lay_seq: q's tokens, table and logit row as batch sequence b. */
static void lay_seq(struct scheduler *s, struct sched_step *st, struct sched_seq *q, size_t b)
{
    const int32_t *table = kv_blocks_table(s->kb, q->kv_slot);
    int32_t nb = kv_blocks_seq_n_blocks(s->kb, q->kv_slot);
    memcpy(s->tables + b * s->max_blocks, table, (size_t)nb * sizeof *table);
    s->batch[b] = q;
    size_t bs = (size_t)s->c.block_size, t = st->n_tokens;
    size_t plp_from = q->n_sched_plp ? (q->n_computed > q->n_plp_done ? q->n_computed
                                                                        : q->n_plp_done)
                                     : SIZE_MAX;
    for (size_t j = 0; j < q->n_sched; j++, t++) {
        size_t pos = q->n_computed + j;
        s->ids[t] = q->tokens[pos];
        s->pos[t] = (int32_t)pos;
        s->seq_of[t] = (int32_t)b;
        s->slots[t] = table[pos / bs] * (int32_t)bs + (int32_t)(pos % bs);
        if (pos >= plp_from && pos + 1 < q->n_prompt) {
            s->plp_rows[st->n_plp] = (int32_t)t;
            s->plp_seq[st->n_plp] = (int32_t)b;
            s->plp_pos[st->n_plp++] = (int32_t)pos;
        }
    }
    st->n_tokens = t;
    if (q->n_computed + q->n_sched == q->n_tokens) {
        s->logit_rows[st->n_logits] = (int32_t)(t - 1);
        s->logit_seq[st->n_logits++] = (int32_t)b;
    }
    if (q->n_tokens - q->n_computed == 1)
        st->n_decode++;
}

/* lay_out: the step's arrays from the planned sequences still scheduled. */
static void lay_out(struct scheduler *s, struct sched_step *st, size_t n_preempted)
{
    *st = (struct sched_step){.ids = s->ids,
                              .pos = s->pos,
                              .seq_of = s->seq_of,
                              .slot_mapping = s->slots,
                              .block_tables = s->tables,
                              .max_blocks = s->max_blocks,
                              .seqs = s->batch,
                              .logit_rows = s->logit_rows,
                              .logit_seq = s->logit_seq,
                              .plp_seq = s->plp_seq,
                              .plp_pos = s->plp_pos,
                              .n_preempted = n_preempted};
    for (size_t i = 0; i < s->n_planned; i++)
        if (s->planned[i]->n_sched)
            lay_seq(s, st, s->planned[i], st->n_seqs++);
    memcpy(s->logit_rows + st->n_logits, s->plp_rows, st->n_plp * sizeof *s->plp_rows);
}

int scheduler_schedule(struct scheduler *s, struct sched_step *out)
{
    if (s->in_step)
        return ERR_STATE;
    struct plan p = {.budget = (size_t)s->c.max_num_batched_tokens,
                     .plp_left = (size_t)s->c.max_prompt_logprob_rows};
    s->n_planned = 0;
    int rc = plan_running(s, &p, true);
    if (rc == 0)
        rc = plan_running(s, &p, false);
    while (rc == 0 && p.n_preempted == 0 && p.budget > 0 && s->n_waiting > 0 &&
           s->n_running < (size_t)s->c.max_num_seqs)
        rc = admit_one(s, &p);
    if (rc < 0)
        return rc;
    lay_out(s, out, p.n_preempted);
    s->step = *out;
    s->in_step = out->n_tokens > 0;
    return 0;
}

/* stop_check: the finish reason after q's newest token t (vLLM V1's order). */
static enum sched_finish stop_check(const struct scheduler *s, const struct sched_seq *q, int32_t t,
                                    int32_t *stop_reason)
{
    const struct sampling_params *p = &q->req->params;
    size_t gen = q->n_tokens - q->n_prompt;
    *stop_reason = -1;
    if (gen >= (size_t)p->max_tokens || q->n_tokens >= (size_t)s->c.max_model_len)
        return SCHED_LENGTH;
    if (gen < (size_t)(p->min_tokens > 0 ? p->min_tokens : 0))
        return SCHED_NOT_FINISHED;
    for (uint32_t i = 0; !p->ignore_eos && i < s->c.n_eos; i++)
        if (t == s->c.eos_ids[i])
            return SCHED_STOP;
    for (uint32_t i = 0; i < p->n_stop_token_ids; i++)
        if (t == p->stop_token_ids[i]) {
            *stop_reason = t;
            return SCHED_STOP;
        }
    return SCHED_NOT_FINISHED;
}

/* commit_token: appends t to q, fills its event and finishes q when a stop condition holds;
 * a request whose last sequence finished goes to s->done[*n_done]. */
static void commit_token(struct scheduler *s, struct sched_seq *q, int32_t t, struct sched_event *e,
                         size_t *n_done)
{
    q->tokens[q->n_tokens++] = t;
    sampler_seq_append(&q->sampler, t); /* ERR_LIMIT cannot happen within max_tokens */
    struct sched_req *r = q->req;
    *e = (struct sched_event){.request_id = r->id,
                              .key = r->key,
                              .choice = q->choice,
                              .token = t,
                              .n_prompt = (uint32_t)q->n_prompt,
                              .n_cached = r->seqs[0].n_cached,
                              .n_generated = (uint32_t)(q->n_tokens - q->n_prompt)};
    e->finish = stop_check(s, q, t, &e->stop_reason);
    if (e->finish == SCHED_NOT_FINISHED)
        return;
    kv_blocks_seq_free(s->kb, q->kv_slot); /* every appended token was computed */
    q->kv_slot = -1;
    q->state = SEQ_DONE;
    e->request_done = --r->n_live == 0;
    if (e->request_done)
        s->done[(*n_done)++] = r;
}

int scheduler_commit(struct scheduler *s, const struct sched_step *step, const int32_t *sampled,
                     struct sched_events *ev)
{
    if (!s->in_step || step->n_logits != s->step.n_logits)
        return ERR_STATE;
    for (size_t i = 0; i < s->step.n_logits; i++)
        if (!sampled || sampled[i] < 0 || (size_t)sampled[i] >= s->c.vocab)
            return ERR_INVAL;
    for (size_t b = 0; b < s->step.n_seqs; b++) {
        struct sched_seq *q = s->batch[b];
        q->n_computed += q->n_sched;
        q->n_sched = 0;
        if (q->n_sched_plp) /* the rows ran up to the chunk's end (or the prompt's last row) */
            q->n_plp_done = (uint32_t)(q->n_computed < q->n_prompt - 1 ? q->n_computed
                                                                       : q->n_prompt - 1);
        q->n_sched_plp = 0;
    }
    size_t n_done = 0;
    for (size_t i = 0; i < s->step.n_logits; i++)
        commit_token(s, s->batch[s->logit_seq[i]], sampled[i], &s->events[i], &n_done);
    size_t k = 0;
    for (size_t i = 0; i < s->n_running; i++)
        if (s->running[i]->state == SEQ_RUNNING)
            s->running[k++] = s->running[i];
    s->n_running = k;
    for (size_t i = 0; i < n_done; i++)
        sched_req_free(s, s->done[i]);
    s->in_step = false;
    ev->n = s->step.n_logits;
    ev->ev = s->events;
    return 0;
}
