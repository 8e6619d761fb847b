/*
 * wire.c: the checks every message must pass (wire_check) and the encoder. The decoder is in
 * wire_decode.c; both follow the layout described in wire.h.
 */
#include "common/wire.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"

const char *wire_type_name(unsigned type)
{
    static const char *const names[] = {"UNKNOWN", "HELLO", "ADD",      "ABORT",
                                        "TOKENS",  "STATS", "HEARTBEAT"};
    return type <= WIRE_TYPE_MAX_ ? names[type] : names[0];
}

/* ---- checks ---- */

/* check_ids: n ids (NULL only when n == 0), at most max, each >= 0. */
static int check_ids(const int32_t *ids, uint32_t n, uint32_t max, const char *what, char *err,
                     size_t errlen)
{
    if (n > max)
        return err_set(err, errlen, ERR_LIMIT, "%s: %u ids, at most %u", what, n, max);
    if (n && !ids)
        return err_set(err, errlen, ERR_INVAL, "%s: %u ids but no array", what, n);
    for (uint32_t i = 0; i < n; i++)
        if (ids[i] < 0)
            return err_set(err, errlen, ERR_RANGE, "%s: id %d at %u is negative", what, ids[i], i);
    return 0;
}

/* check_float: lo <= x <= hi (lo_open: lo < x), which refuses NaN. */
static int check_float(float x, float lo, bool lo_open, float hi, const char *what, char *err,
                       size_t errlen)
{
    bool ok = (lo_open ? x > lo : x >= lo) && x <= hi;
    if (!ok)
        return err_set(err, errlen, ERR_RANGE, "ADD: %s %g outside %c%g, %g]", what, (double)x,
                       lo_open ? '(' : '[', (double)lo, (double)hi);
    return 0;
}

/* check_sampling_values: the scalar fields of sp, per sampling_params.h. */
static int check_sampling_values(const struct sampling_params *sp, char *err, size_t errlen)
{
    int rc;
    if ((rc = check_float(sp->temperature, 0, false, FLT_MAX, "temperature", err, errlen)) ||
        (rc = check_float(sp->top_p, 0, true, 1, "top_p", err, errlen)) ||
        (rc = check_float(sp->min_p, 0, false, 1, "min_p", err, errlen)) ||
        (rc = check_float(sp->repetition_penalty, 0, true, FLT_MAX, "repetition_penalty", err,
                          errlen)) ||
        (rc = check_float(sp->presence_penalty, -2, false, 2, "presence_penalty", err, errlen)) ||
        (rc = check_float(sp->frequency_penalty, -2, false, 2, "frequency_penalty", err, errlen)))
        return rc;
    if (!sp->has_seed && sp->seed)
        return err_set(err, errlen, ERR_RANGE, "ADD: a seed without has_seed");
    if (sp->max_tokens < 1)
        return err_set(err, errlen, ERR_RANGE, "ADD: max_tokens %d < 1", sp->max_tokens);
    if (sp->min_tokens < 0 || sp->min_tokens > sp->max_tokens)
        return err_set(err, errlen, ERR_RANGE, "ADD: min_tokens %d outside [0, max_tokens %d]",
                       sp->min_tokens, sp->max_tokens);
    if (sp->logprobs < -1 || sp->logprobs > SAMPLING_MAX_LOGPROBS)
        return err_set(err, errlen, ERR_RANGE, "ADD: logprobs %d outside [-1, %d]", sp->logprobs,
                       SAMPLING_MAX_LOGPROBS);
    if (sp->prompt_logprobs < -1 || sp->prompt_logprobs > SAMPLING_MAX_LOGPROBS)
        return err_set(err, errlen, ERR_RANGE, "ADD: prompt_logprobs %d outside [-1, %d]",
                       sp->prompt_logprobs, SAMPLING_MAX_LOGPROBS);
    return 0;
}

/* check_sampling: sp's values and arrays. */
static int check_sampling(const struct sampling_params *sp, char *err, size_t errlen)
{
    int rc = check_sampling_values(sp, err, errlen);
    if (rc ||
        (rc = check_ids(sp->stop_token_ids, sp->n_stop_token_ids, SAMPLING_MAX_STOP_IDS,
                        "ADD stop_token_ids", err, errlen)) ||
        (rc = check_ids(sp->logit_bias_ids, sp->n_logit_bias, SAMPLING_MAX_BIAS, "ADD logit_bias",
                        err, errlen)) ||
        (rc = check_ids(sp->allowed_token_ids, sp->n_allowed_token_ids, WIRE_MAX_PROMPT,
                        "ADD allowed_token_ids", err, errlen)))
        return rc;
    if (sp->n_logit_bias && !sp->logit_bias_values)
        return err_set(err, errlen, ERR_INVAL, "ADD logit_bias: no values");
    for (uint32_t i = 0; i < sp->n_logit_bias; i++) {
        float v = sp->logit_bias_values[i];
        if (!(v >= -WIRE_MAX_BIAS_VALUE && v <= WIRE_MAX_BIAS_VALUE))
            return err_set(err, errlen, ERR_RANGE,
                           "ADD logit_bias: value %g at %u outside [-%g, %g]", (double)v, i,
                           (double)WIRE_MAX_BIAS_VALUE, (double)WIRE_MAX_BIAS_VALUE);
    }
    return 0;
}

static int check_add(const struct wire_add *m, char *err, size_t errlen)
{
    if (m->n < 1 || m->n > WIRE_MAX_CHOICES)
        return err_set(err, errlen, ERR_RANGE, "ADD: n %u outside [1, %d]", m->n, WIRE_MAX_CHOICES);
    if (m->n_prompt == 0)
        return err_set(err, errlen, ERR_RANGE, "ADD: empty prompt");
    if (m->n_guided > WIRE_MAX_GUIDED)
        return err_set(err, errlen, ERR_LIMIT, "ADD: guided spec of %u bytes, at most %u",
                       m->n_guided, WIRE_MAX_GUIDED);
    if (m->n_guided && !m->guided)
        return err_set(err, errlen, ERR_INVAL, "ADD: guided spec of %u bytes but no bytes",
                       m->n_guided);
    int rc = check_ids(m->prompt, m->n_prompt, WIRE_MAX_PROMPT, "ADD prompt", err, errlen);
    return rc ? rc : check_sampling(&m->sp, err, errlen);
}

static int check_hello(const struct wire_hello *m, char *err, size_t errlen)
{
    if (m->proto_version < 1)
        return err_set(err, errlen, ERR_RANGE, "HELLO: protocol version 0");
    if (m->n_model < 1 || m->n_model > WIRE_MAX_STRING)
        return err_set(err, errlen, ERR_LIMIT, "HELLO: model name of %u bytes, 1 to %d allowed",
                       m->n_model, WIRE_MAX_STRING);
    if (!m->model)
        return err_set(err, errlen, ERR_INVAL, "HELLO: no model name");
    if (memchr(m->model, '\0', m->n_model))
        return err_set(err, errlen, ERR_RANGE, "HELLO: NUL byte in the model name");
    if (!m->max_model_len || !m->vocab_size || !m->block_size || !m->max_num_seqs ||
        !m->max_num_batched_tokens)
        return err_set(err, errlen, ERR_RANGE, "HELLO: a zero model or scheduler limit");
    if (m->max_logprobs > SAMPLING_MAX_LOGPROBS)
        return err_set(err, errlen, ERR_RANGE, "HELLO: max_logprobs %u > %d", m->max_logprobs,
                       SAMPLING_MAX_LOGPROBS);
    if (m->state > WIRE_FATAL)
        return err_set(err, errlen, ERR_RANGE, "HELLO: unknown engine state %u", m->state);
    return 0;
}

/* check_logprobs: n tokens' logprobs, each finite or -inf; top ids >= 0. */
static int check_logprobs(const struct wire_logprobs *lp, uint32_t n, uint32_t seq, char *err,
                          size_t errlen)
{
    if (lp->n_top > SAMPLING_MAX_LOGPROBS)
        return err_set(err, errlen, ERR_LIMIT, "TOKENS seq %u: %u top logprobs, at most %d", seq,
                       lp->n_top, SAMPLING_MAX_LOGPROBS);
    size_t nt = (size_t)n * lp->n_top;
    if ((n && !lp->logprob) || (nt && (!lp->top_ids || !lp->top_logprobs)))
        return err_set(err, errlen, ERR_INVAL, "TOKENS seq %u: logprob arrays missing", seq);
    for (uint32_t i = 0; i < n; i++)
        if (!(lp->logprob[i] < INFINITY))
            return err_set(err, errlen, ERR_RANGE, "TOKENS seq %u: logprob %g at %u", seq,
                           (double)lp->logprob[i], i);
    for (size_t i = 0; i < nt; i++)
        if (!(lp->top_logprobs[i] < INFINITY) || lp->top_ids[i] < 0)
            return err_set(err, errlen, ERR_RANGE, "TOKENS seq %u: top logprob %g of id %d", seq,
                           (double)lp->top_logprobs[i], lp->top_ids[i]);
    return 0;
}

static int check_seq(const struct wire_seq_out *s, uint32_t i, char *err, size_t errlen)
{
    if (s->choice >= WIRE_MAX_CHOICES || s->finish > WIRE_FINISH_ERROR)
        return err_set(err, errlen, ERR_RANGE, "TOKENS seq %u: choice %u or finish %u out of range",
                       i, s->choice, s->finish);
    if (s->stop_reason < -1 ||
        (s->stop_reason >= 0 && s->finish != WIRE_FINISH_STOP &&
         (s->finish != WIRE_FINISH_ERROR || s->stop_reason > WIRE_ERROR_MAX_)))
        return err_set(err, errlen, ERR_RANGE, "TOKENS seq %u: stop reason %d with finish %u", i,
                       s->stop_reason, s->finish);
    if (s->n_cached_tokens > s->n_prompt_tokens)
        return err_set(err, errlen, ERR_RANGE, "TOKENS seq %u: %u cached of %u prompt tokens", i,
                       s->n_cached_tokens, s->n_prompt_tokens);
    int rc = check_ids(s->ids, s->n_ids, WIRE_MAX_NEW_TOKENS, "TOKENS ids", err, errlen);
    if (rc || (s->has_logprobs && (rc = check_logprobs(&s->lp, s->n_ids, i, err, errlen))))
        return rc;
    if (!s->has_prompt_logprobs)
        return 0;
    if (s->n_prompt_lp > WIRE_MAX_PROMPT)
        return err_set(err, errlen, ERR_LIMIT, "TOKENS seq %u: %u prompt logprobs, at most %u", i,
                       s->n_prompt_lp, WIRE_MAX_PROMPT);
    return check_logprobs(&s->prompt_lp, s->n_prompt_lp, i, err, errlen);
}

static int check_tokens(const struct wire_tokens *m, char *err, size_t errlen)
{
    if (m->n_seqs < 1 || m->n_seqs > WIRE_MAX_ITEMS)
        return err_set(err, errlen, ERR_LIMIT, "TOKENS: %u sequences, 1 to %d allowed", m->n_seqs,
                       WIRE_MAX_ITEMS);
    if (!m->seqs)
        return err_set(err, errlen, ERR_INVAL, "TOKENS: no sequences array");
    for (uint32_t i = 0; i < m->n_seqs; i++) {
        int rc = check_seq(&m->seqs[i], i, err, errlen);
        if (rc)
            return rc;
    }
    return 0;
}

/* check_load: the load figures STATS and HEARTBEAT share. */
static int check_load(const char *what, uint32_t used, uint32_t total, char *err, size_t errlen)
{
    if (used > total)
        return err_set(err, errlen, ERR_RANGE, "%s: %u of %u KV blocks used", what, used, total);
    return 0;
}

int wire_check(const struct wire_msg *m, char *err, size_t errlen)
{
    switch (m->type) {
    case WIRE_HELLO: return check_hello(&m->u.hello, err, errlen);
    case WIRE_ADD: return check_add(&m->u.add, err, errlen);
    case WIRE_ABORT:
        if (m->u.aborts.n_ids < 1 || m->u.aborts.n_ids > WIRE_MAX_ITEMS)
            return err_set(err, errlen, ERR_LIMIT, "ABORT: %u ids, 1 to %d allowed",
                           m->u.aborts.n_ids, WIRE_MAX_ITEMS);
        if (!m->u.aborts.ids)
            return err_set(err, errlen, ERR_INVAL, "ABORT: no ids array");
        return 0;
    case WIRE_TOKENS: return check_tokens(&m->u.tokens, err, errlen);
    case WIRE_STATS:
        if (m->u.stats.prefix_hit_tokens > m->u.stats.prefix_query_tokens)
            return err_set(err, errlen, ERR_RANGE, "STATS: more prefix hits than queries");
        return check_load("STATS", m->u.stats.kv_blocks_used, m->u.stats.kv_blocks_total, err,
                          errlen);
    case WIRE_HEARTBEAT:
        if (m->u.hb.state > WIRE_FATAL)
            return err_set(err, errlen, ERR_RANGE, "HEARTBEAT: unknown state %u", m->u.hb.state);
        return check_load("HEARTBEAT", m->u.hb.kv_blocks_used, m->u.hb.kv_blocks_total, err,
                          errlen);
    }
    return err_set(err, errlen, ERR_UNSUPPORTED, "unknown message type %u", m->type);
}

/* ---- encoder ---- */

/* A writer appends to a buf and remembers its first failure (then writes nothing more). */
struct wr {
    struct buf *b;
    int rc;
};

static void put(struct wr *w, const void *p, size_t n)
{
    if (!w->rc)
        w->rc = buf_append(w->b, p, n);
}

static void put_u8(struct wr *w, uint8_t v)
{
    put(w, &v, 1);
}

static void put_u16(struct wr *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    put(w, b, 2);
}

static void put_u32(struct wr *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(w, b, 4);
}

static void put_u64(struct wr *w, uint64_t v)
{
    put_u32(w, (uint32_t)v);
    put_u32(w, (uint32_t)(v >> 32));
}

static void put_i32(struct wr *w, int32_t v)
{
    put_u32(w, (uint32_t)v);
}

static void put_f32(struct wr *w, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    put_u32(w, u);
}

/* put_i32s: a u32 count and the ids. */
static void put_i32s(struct wr *w, const int32_t *v, uint32_t n)
{
    put_u32(w, n);
    if (!w->rc)
        w->rc = buf_reserve(w->b, (size_t)n * 4);
    for (uint32_t i = 0; i < n; i++)
        put_i32(w, v[i]);
}

static void put_sampling(struct wr *w, const struct sampling_params *sp)
{
    put_f32(w, sp->temperature);
    put_f32(w, sp->top_p);
    put_i32(w, sp->top_k);
    put_f32(w, sp->min_p);
    put_f32(w, sp->repetition_penalty);
    put_f32(w, sp->presence_penalty);
    put_f32(w, sp->frequency_penalty);
    put_u8(w, (uint8_t)((sp->has_seed ? 1 : 0) | (sp->ignore_eos ? 2 : 0)));
    put_u64(w, sp->seed);
    put_i32(w, sp->max_tokens);
    put_i32(w, sp->min_tokens);
    put_i32(w, sp->logprobs);
    put_i32(w, sp->prompt_logprobs);
    put_i32s(w, sp->stop_token_ids, sp->n_stop_token_ids);
    put_u32(w, sp->n_logit_bias);
    for (uint32_t i = 0; i < sp->n_logit_bias; i++) {
        put_i32(w, sp->logit_bias_ids[i]);
        put_f32(w, sp->logit_bias_values[i]);
    }
    put_i32s(w, sp->allowed_token_ids, sp->n_allowed_token_ids);
}

static void put_add(struct wr *w, const struct wire_add *m)
{
    put_u64(w, m->request_id);
    put_u64(w, m->arrival_us);
    put_i32(w, m->priority);
    put_u32(w, m->n);
    put_i32s(w, m->prompt, m->n_prompt);
    put_sampling(w, &m->sp);
    put_u32(w, m->n_guided);
    put(w, m->guided, m->n_guided);
}

static void put_hello(struct wr *w, const struct wire_hello *m)
{
    put_u16(w, m->proto_version);
    put_u64(w, m->engine_id);
    put_u64(w, m->epoch);
    put_u32(w, m->n_model);
    put(w, m->model, m->n_model);
    put_u32(w, m->max_model_len);
    put_u32(w, m->vocab_size);
    put_u32(w, m->block_size);
    put_u32(w, m->max_num_seqs);
    put_u32(w, m->max_num_batched_tokens);
    put_u32(w, m->max_logprobs);
    put_u32(w, m->max_waiting);
    put_u8(w, m->state);
}

/* put_logprobs: n tokens' logprobs and their n_top alternatives each. */
static void put_logprobs(struct wr *w, const struct wire_logprobs *lp, uint32_t n)
{
    put_u8(w, (uint8_t)lp->n_top);
    for (uint32_t i = 0; i < n; i++)
        put_f32(w, lp->logprob[i]);
    for (size_t i = 0; i < (size_t)n * lp->n_top; i++) {
        put_i32(w, lp->top_ids[i]);
        put_f32(w, lp->top_logprobs[i]);
    }
}

static void put_seq(struct wr *w, const struct wire_seq_out *s)
{
    put_u64(w, s->request_id);
    put_u32(w, s->choice);
    put_u8(w, s->finish);
    put_u8(w, (uint8_t)((s->has_logprobs ? 1 : 0) | (s->has_prompt_logprobs ? 2 : 0)));
    put_i32(w, s->stop_reason);
    put_u32(w, s->n_prompt_tokens);
    put_u32(w, s->n_cached_tokens);
    put_u32(w, s->n_generated_tokens);
    put_i32s(w, s->ids, s->n_ids);
    if (s->has_logprobs)
        put_logprobs(w, &s->lp, s->n_ids);
    if (s->has_prompt_logprobs) {
        put_u32(w, s->n_prompt_lp);
        put_logprobs(w, &s->prompt_lp, s->n_prompt_lp);
    }
}

/* put_load: running, waiting and KV figures (STATS and HEARTBEAT). */
static void put_load(struct wr *w, uint32_t running, uint32_t waiting, uint32_t used,
                     uint32_t total)
{
    put_u32(w, running);
    put_u32(w, waiting);
    put_u32(w, used);
    put_u32(w, total);
}

/* put_body: m's body (table dispatch). */
static void put_body(struct wr *w, const struct wire_msg *m)
{
    const struct wire_stats *st = &m->u.stats;
    const struct wire_heartbeat *hb = &m->u.hb;
    switch (m->type) {
    case WIRE_HELLO: put_hello(w, &m->u.hello); break;
    case WIRE_ADD: put_add(w, &m->u.add); break;
    case WIRE_ABORT:
        put_u32(w, m->u.aborts.n_ids);
        for (uint32_t i = 0; i < m->u.aborts.n_ids; i++)
            put_u64(w, m->u.aborts.ids[i]);
        break;
    case WIRE_TOKENS:
        put_u32(w, m->u.tokens.n_seqs);
        for (uint32_t i = 0; i < m->u.tokens.n_seqs; i++)
            put_seq(w, &m->u.tokens.seqs[i]);
        break;
    case WIRE_STATS:
        put_u64(w, st->epoch);
        put_u64(w, st->step);
        put_load(w, st->running, st->waiting, st->kv_blocks_used, st->kv_blocks_total);
        put_u64(w, st->prefix_hit_tokens);
        put_u64(w, st->prefix_query_tokens);
        break;
    case WIRE_HEARTBEAT:
        put_u64(w, hb->epoch);
        put_u64(w, hb->step);
        put_u8(w, hb->state);
        put_load(w, hb->running, hb->waiting, hb->kv_blocks_used, hb->kv_blocks_total);
        break;
    }
}

int wire_encode(struct buf *out, const struct wire_msg *m, char *err, size_t errlen)
{
    int rc = wire_check(m, err, errlen);
    if (rc)
        return rc;
    struct wr w = {out, 0};
    size_t start = out->n;
    put_u32(&w, WIRE_MAGIC);
    put_u16(&w, WIRE_VERSION);
    put_u16(&w, m->type);
    put_u32(&w, 0); /* body length, patched below */
    put_body(&w, m);
    size_t body = out->n - start - WIRE_HEADER_SIZE;
    if (!w.rc && body > WIRE_MAX_BODY)
        w.rc = ERR_LIMIT;
    if (w.rc) {
        if (out->cap) { /* roll back; an untouched buf may still point at a read-only "" */
            out->n = start;
            out->p[start] = '\0';
        }
        return err_set(err, errlen, w.rc, "%s: encoding failed (%s)", wire_type_name(m->type),
                       w.rc == ERR_LIMIT ? "size limit" : "out of memory");
    }
    uint8_t *len = (uint8_t *)out->p + start + 8;
    for (int i = 0; i < 4; i++)
        len[i] = (uint8_t)(body >> (8 * i));
    return 0;
}

/* One wrapper per message type: wraps the body in a wire_msg. */
#define WIRE_ENCODE_ONE(name, member, code)                                                        \
    int wire_encode_##name(struct buf *out, const struct wire_##name *m, char *err, size_t errlen) \
    {                                                                                              \
        struct wire_msg msg = {.type = code};                                                      \
        msg.u.member = *m;                                                                         \
        return wire_encode(out, &msg, err, errlen);                                                \
    }

WIRE_ENCODE_ONE(hello, hello, WIRE_HELLO)
WIRE_ENCODE_ONE(add, add, WIRE_ADD)
WIRE_ENCODE_ONE(abort, aborts, WIRE_ABORT)
WIRE_ENCODE_ONE(tokens, tokens, WIRE_TOKENS)
WIRE_ENCODE_ONE(stats, stats, WIRE_STATS)
WIRE_ENCODE_ONE(heartbeat, hb, WIRE_HEARTBEAT)
