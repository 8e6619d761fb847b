/*
 * scheduler.c: creation, requests (add, abort, free), the waiting and running queues and
 * statistics. Building and committing steps is in scheduler_step.c.
 */
#include "worker/scheduler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "worker/scheduler_internal.h"

/* config_ok: whether c fits kb (see scheduler_new). */
static bool config_ok(const struct scheduler_config *c, const struct kv_blocks *kb)
{
    struct kv_blocks_config k = kv_blocks_config_of(kb);
    if (c->max_num_batched_tokens < 1 || c->max_num_seqs < 1 || c->max_waiting < 1 ||
        c->max_model_len < 1 || c->block_size != k.block_size || c->vocab == 0 ||
        c->vocab > INT32_MAX || c->n_eos > SCHED_MAX_EOS || c->max_num_seqs > k.max_seqs ||
        c->max_prompt_logprob_rows < 0 || c->max_prompt_logprob_rows > c->max_num_batched_tokens)
        return false;
    if (c->policy != SCHED_FCFS && c->policy != SCHED_PRIORITY)
        return false;
    int64_t need = ((int64_t)c->max_model_len + c->block_size - 1) / c->block_size;
    return need <= k.max_blocks_per_seq;
}

int scheduler_new(const struct scheduler_config *c, struct kv_blocks *kb, struct scheduler **out)
{
    if (!c || !kb || !out || !config_ok(c, kb))
        return ERR_RANGE;
    struct scheduler *s = calloc(1, sizeof *s);
    if (!s)
        return ERR_NOMEM;
    s->c = *c;
    s->kb = kb;
    s->max_blocks = (size_t)kv_blocks_config_of(kb).max_blocks_per_seq;
    size_t nt = (size_t)c->max_num_batched_tokens, ns = (size_t)c->max_num_seqs;
    s->cap_waiting = (size_t)c->max_waiting + ns;
    s->running = calloc(ns, sizeof *s->running);
    s->waiting = calloc(s->cap_waiting, sizeof *s->waiting);
    s->ids = calloc(nt * 4, sizeof *s->ids);
    s->tables = calloc(ns * s->max_blocks, sizeof *s->tables);
    s->batch = calloc(ns, sizeof *s->batch);
    s->planned = calloc(ns, sizeof *s->planned);
    size_t np = (size_t)c->max_prompt_logprob_rows;
    s->logit_rows = calloc(ns * 2 + np * 4 + 1, sizeof *s->logit_rows);
    s->events = calloc(ns, sizeof *s->events);
    s->done = calloc(ns, sizeof *s->done);
    if (!s->running || !s->waiting || !s->ids || !s->tables || !s->batch || !s->planned ||
        !s->logit_rows || !s->events || !s->done) {
        scheduler_free(s);
        return ERR_NOMEM;
    }
    s->pos = s->ids + nt;
    s->seq_of = s->pos + nt;
    s->slots = s->seq_of + nt;
    s->logit_seq = s->logit_rows + ns + np;
    s->plp_rows = s->logit_seq + ns;
    s->plp_seq = s->plp_rows + np;
    s->plp_pos = s->plp_seq + np;
    *out = s;
    return 0;
}

/* req_release: frees every KV slot of r and takes its sequences out of the queues. */
static void req_release(struct scheduler *s, struct sched_req *r)
{
    for (uint32_t i = 0; i < r->n; i++) {
        struct sched_seq *q = &r->seqs[i];
        if (q->state == SEQ_WAITING) {
            size_t j = 0;
            while (j < s->n_waiting && s->waiting[j] != q)
                j++;
            memmove(s->waiting + j, s->waiting + j + 1,
                    (s->n_waiting - j - 1) * sizeof *s->waiting);
            s->n_waiting--;
        } else if (q->state == SEQ_RUNNING) {
            kv_blocks_seq_free(s->kb, q->kv_slot);
            sched_running_remove(s, q);
        }
        q->kv_slot = -1;
        q->state = SEQ_DONE;
    }
}

void scheduler_free(struct scheduler *s)
{
    if (!s)
        return;
    while (s->live) {
        req_release(s, s->live);
        sched_req_free(s, s->live);
    }
    free(s->running);
    free(s->waiting);
    free(s->ids);
    free(s->tables);
    free(s->batch);
    free(s->planned);
    free(s->logit_rows);
    free(s->events);
    free(s->done);
    free(s);
}

void sched_req_free(struct scheduler *s, struct sched_req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        s->live = r->next;
    if (r->next)
        r->next->prev = r->prev;
    s->n_requests--;
    for (uint32_t i = 0; i < r->n; i++)
        sampler_seq_deinit(&r->seqs[i].sampler);
    free(r->arrays);
    free(r->tokens);
    free(r);
}

/* waiting_before: whether a goes before b in the waiting queue's key order. */
static bool waiting_before(const struct scheduler *s, const struct sched_seq *a,
                           const struct sched_seq *b)
{
    if (s->c.policy == SCHED_PRIORITY && a->req->priority != b->req->priority)
        return a->req->priority < b->req->priority;
    if (a->req->arrival != b->req->arrival)
        return a->req->arrival < b->req->arrival;
    return a->order < b->order;
}

void sched_waiting_insert(struct scheduler *s, struct sched_seq *q, bool front)
{
    size_t i = front ? 0 : s->n_waiting;
    while (i > 0 && waiting_before(s, q, s->waiting[i - 1]))
        i--;
    memmove(s->waiting + i + 1, s->waiting + i, (s->n_waiting - i) * sizeof *s->waiting);
    s->waiting[i] = q;
    s->n_waiting++;
    q->state = SEQ_WAITING;
}

void sched_running_remove(struct scheduler *s, struct sched_seq *q)
{
    size_t i = s->n_running;
    while (i > 0 && s->running[i - 1] != q)
        i--;
    if (i == 0)
        return;
    memmove(s->running + i - 1, s->running + i, (s->n_running - i) * sizeof *s->running);
    s->n_running--;
}

/* check_request: the validation of scheduler_add before anything is allocated. */
static int check_request(const struct scheduler *s, const struct sched_request *r, char *err,
                         size_t errlen)
{
    if (!r || !r->params || (!r->prompt && r->n_prompt))
        return err_set(err, errlen, ERR_INVAL, "missing request, prompt or params");
    if (s->in_step)
        return err_set(err, errlen, ERR_STATE, "a step is open");
    const struct sampling_params *p = r->params;
    if (r->n_prompt == 0)
        return err_set(err, errlen, ERR_RANGE, "the prompt is empty");
    if (r->n == 0 || r->n > (uint32_t)s->c.max_waiting)
        return err_set(err, errlen, ERR_RANGE, "n must be 1 .. %d", s->c.max_waiting);
    if (p->prompt_logprobs >= 0 && s->c.max_prompt_logprob_rows == 0)
        return err_set(err, errlen, ERR_UNSUPPORTED, "prompt logprobs are not enabled");
    if (p->max_tokens < 1)
        return err_set(err, errlen, ERR_RANGE, "max_tokens must be at least 1");
    uint64_t total = (uint64_t)r->n_prompt + (uint64_t)p->max_tokens;
    if (total > (uint64_t)s->c.max_model_len)
        return err_set(err, errlen, ERR_RANGE,
                       "prompt (%zu tokens) + max_tokens (%d) exceeds max_model_len %d",
                       r->n_prompt, (int)p->max_tokens, s->c.max_model_len);
    uint64_t blocks = (total + (uint64_t)s->c.block_size - 1) / (uint64_t)s->c.block_size;
    if (blocks > (uint64_t)kv_blocks_config_of(s->kb).n_blocks)
        return err_set(err, errlen, ERR_RANGE, "prompt + max_tokens needs %llu KV blocks of %d",
                       (unsigned long long)blocks, kv_blocks_config_of(s->kb).n_blocks);
    for (const struct sched_req *q = s->live; q; q = q->next)
        if (q->id == r->id)
            return err_set(err, errlen, ERR_STATE, "request id %llu is already live",
                           (unsigned long long)r->id);
    if (s->n_waiting + r->n > (size_t)s->c.max_waiting)
        return err_set(err, errlen, ERR_LIMIT, "the waiting queue is full (%d sequences)",
                       s->c.max_waiting);
    return 0;
}

/* copy_arrays: r's own copies of p's arrays, pointed at by r->params. */
static int copy_arrays(struct sched_req *r, const struct sampling_params *p)
{
    size_t n = (size_t)p->n_stop_token_ids + 2 * (size_t)p->n_logit_bias + p->n_allowed_token_ids;
    r->params = *p;
    if (n == 0)
        return 0;
    if ((p->n_stop_token_ids && !p->stop_token_ids) ||
        (p->n_logit_bias && (!p->logit_bias_ids || !p->logit_bias_values)) ||
        (p->n_allowed_token_ids && !p->allowed_token_ids))
        return ERR_INVAL;
    int32_t *a = malloc(n * sizeof *a);
    if (!a)
        return ERR_NOMEM;
    r->arrays = a;
    if (p->n_stop_token_ids)
        r->params.stop_token_ids = memcpy(a, p->stop_token_ids, p->n_stop_token_ids * 4);
    a += p->n_stop_token_ids;
    if (p->n_logit_bias) {
        r->params.logit_bias_ids = memcpy(a, p->logit_bias_ids, p->n_logit_bias * 4);
        a += p->n_logit_bias;
        r->params.logit_bias_values = memcpy(a, p->logit_bias_values, p->n_logit_bias * 4);
        a += p->n_logit_bias;
    }
    if (p->n_allowed_token_ids)
        r->params.allowed_token_ids = memcpy(a, p->allowed_token_ids, p->n_allowed_token_ids * 4);
    return 0;
}

/* req_build: allocates r's request with its n sequences (not queued yet). */
static int req_build(struct scheduler *s, const struct sched_request *r, struct sched_req **out)
{
    struct sched_req *q = calloc(1, sizeof *q + r->n * sizeof q->seqs[0]);
    if (!q)
        return ERR_NOMEM;
    size_t cap = r->n_prompt + (size_t)r->params->max_tokens;
    q->n = r->n;
    int rc = copy_arrays(q, r->params);
    if (rc == 0 && !(q->tokens = malloc(r->n * cap * sizeof *q->tokens)))
        rc = ERR_NOMEM;
    for (uint32_t i = 0; rc == 0 && i < r->n; i++) {
        struct sched_seq *e = &q->seqs[i];
        *e = (struct sched_seq){.req = q,
                                .request_id = r->id,
                                .key = r->key,
                                .choice = i,
                                .tokens = q->tokens + i * cap,
                                .n_prompt = r->n_prompt,
                                .n_tokens = r->n_prompt,
                                .kv_slot = -1};
        memcpy(e->tokens, r->prompt, r->n_prompt * sizeof *e->tokens);
        rc = sampler_seq_init(&e->sampler, &q->params, r->engine_seed, i, r->prompt, r->n_prompt,
                              s->c.vocab);
    }
    if (rc) {
        for (uint32_t i = 0; i < r->n; i++)
            sampler_seq_deinit(&q->seqs[i].sampler);
        free(q->arrays);
        free(q->tokens);
        free(q);
        return rc;
    }
    *out = q;
    return 0;
}

int scheduler_add(struct scheduler *s, const struct sched_request *r, char *err, size_t errlen)
{
    int rc = check_request(s, r, err, errlen);
    if (rc)
        return rc;
    struct sched_req *q;
    rc = req_build(s, r, &q);
    if (rc == ERR_INVAL)
        return err_set(err, errlen, rc,
                       "invalid sampling params or a token id outside the vocabulary (%zu)",
                       s->c.vocab);
    if (rc)
        return err_set(err, errlen, rc, "out of memory");
    q->id = r->id;
    q->key = r->key;
    q->priority = r->priority;
    q->arrival = r->arrival;
    q->n_live = r->n;
    q->next = s->live;
    if (s->live)
        s->live->prev = q;
    s->live = q;
    s->n_requests++;
    for (uint32_t i = 0; i < r->n; i++) {
        q->seqs[i].order = s->next_order++;
        sched_waiting_insert(s, &q->seqs[i], false);
    }
    return 0;
}

int scheduler_abort(struct scheduler *s, uint64_t request_id)
{
    if (s->in_step)
        return ERR_STATE;
    struct sched_req *r = s->live;
    while (r && r->id != request_id)
        r = r->next;
    if (!r)
        return ERR_NOTFOUND;
    req_release(s, r);
    sched_req_free(s, r);
    return 0;
}

struct sched_stats scheduler_stats(const struct scheduler *s)
{
    struct kv_blocks_stats k = kv_blocks_stats(s->kb);
    struct sched_stats st = {.n_running = s->n_running,
                             .n_waiting = s->n_waiting,
                             .n_requests = s->n_requests,
                             .n_preemptions = s->n_preemptions};
    st.kv_usage = k.n_blocks ? (double)k.in_use / k.n_blocks : 0;
    st.prefix_hit_rate = k.query_tokens ? (double)k.hit_tokens / (double)k.query_tokens : 0;
    return st;
}

struct model_batch scheduler_step_batch(const struct sched_step *step)
{
    return (struct model_batch){.n_tokens = step->n_tokens,
                                .ids = step->ids,
                                .pos = step->pos,
                                .seq_of = step->seq_of,
                                .slot_mapping = step->slot_mapping,
                                .n_seqs = step->n_seqs,
                                .block_tables = step->block_tables,
                                .max_blocks = step->max_blocks,
                                .n_logits = step->n_logits + step->n_plp,
                                .logit_rows = step->logit_rows};
}
