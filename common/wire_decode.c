/*
 * wire_decode.c: the strict decoder of wire.h (wire_decode, wire_iter_*). A reader walks one
 * body and remembers its first failure; every count is checked against its limit and the
 * bytes left before the arena is asked for memory, and the values are then checked by
 * wire_check, the same function the encoder runs.
 */
#include "common/wire.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"

/* A reader over one body; p[0..n) is the body, base its offset in the caller's buffer. */
struct rd {
    const uint8_t *p;
    size_t n;
    size_t off;
    size_t base;
    const char *what; /* the message type's name */
    struct arena *a;
    char *err;
    size_t errlen;
    int rc; /* the first failure, 0 until one */
};

/* rd_fail: records the reader's first failure, with the type and the absolute offset. */
__attribute__((format(printf, 3, 4))) static void rd_fail(struct rd *r, int code, const char *fmt,
                                                          ...)
{
    if (r->rc)
        return;
    r->rc = code;
    char why[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    err_set(r->err, r->errlen, code, "%s at byte %zu: %s", r->what,
            r->base + WIRE_HEADER_SIZE + r->off, why);
}

/* need: whether `size` more bytes are there (a failure otherwise). */
static bool need(struct rd *r, size_t size)
{
    if (r->rc)
        return false;
    if (size > r->n - r->off) {
        rd_fail(r, ERR_PARSE, "truncated: %zu bytes needed, %zu left", size, r->n - r->off);
        return false;
    }
    return true;
}

static uint64_t get_le(struct rd *r, size_t size)
{
    uint64_t v = 0;
    if (!need(r, size))
        return 0;
    for (size_t i = 0; i < size; i++)
        v |= (uint64_t)r->p[r->off + i] << (8 * i);
    r->off += size;
    return v;
}

static uint8_t get_u8(struct rd *r)
{
    return (uint8_t)get_le(r, 1);
}

static uint16_t get_u16(struct rd *r)
{
    return (uint16_t)get_le(r, 2);
}

static uint32_t get_u32(struct rd *r)
{
    return (uint32_t)get_le(r, 4);
}

static uint64_t get_u64(struct rd *r)
{
    return get_le(r, 8);
}

static int32_t get_i32(struct rd *r)
{
    uint32_t u = get_u32(r);
    int32_t v;
    memcpy(&v, &u, 4);
    return v;
}

static float get_f32(struct rd *r)
{
    uint32_t u = get_u32(r);
    float v;
    memcpy(&v, &u, 4);
    return v;
}

/* get_count: a u32 count of elements of at least `size` bytes each: at most max, and no
 * more than the bytes left can hold. 0 on failure. */
static uint32_t get_count(struct rd *r, uint32_t max, size_t size, const char *what)
{
    uint32_t n = get_u32(r);
    if (r->rc)
        return 0;
    if (n > max) {
        rd_fail(r, ERR_LIMIT, "%s: count %u over the limit %u", what, n, max);
        return 0;
    }
    if ((size_t)n * size > r->n - r->off) {
        rd_fail(r, ERR_PARSE, "%s: count %u needs %zu bytes, %zu left", what, n, (size_t)n * size,
                r->n - r->off);
        return 0;
    }
    return n;
}

/* alloc: size bytes of the arena, NULL when size is 0 or on failure (recorded). */
static void *alloc(struct rd *r, size_t size)
{
    if (r->rc || size == 0)
        return NULL;
    void *p = arena_alloc(r->a, size);
    if (!p) {
        int code = arena_error(r->a) ? arena_error(r->a) : ERR_NOMEM;
        rd_fail(r, code, "no memory for %zu bytes (arena %s)", size,
                code == ERR_LIMIT ? "limit reached" : "allocation failed");
    }
    return p;
}

/* get_i32s: n int32 values into the arena (n already checked against the bytes left). */
static const int32_t *get_i32s(struct rd *r, uint32_t n)
{
    int32_t *v = alloc(r, (size_t)n * sizeof *v);
    for (uint32_t i = 0; v && i < n; i++)
        v[i] = get_i32(r);
    return v;
}

/* get_ids: a counted int32 array, at most max. */
static const int32_t *get_ids(struct rd *r, uint32_t *n, uint32_t max, const char *what)
{
    *n = get_count(r, max, 4, what);
    return get_i32s(r, *n);
}

/* get_bytes: a counted byte string, at most max, copied with a NUL after it; `text`
 * refuses a NUL inside. */
static const char *get_bytes(struct rd *r, uint32_t *n, uint32_t max, bool text, const char *what)
{
    *n = get_count(r, max, 1, what);
    if (r->rc || *n == 0)
        return NULL;
    const char *s = (const char *)r->p + r->off;
    if (text && memchr(s, '\0', *n)) {
        rd_fail(r, ERR_PARSE, "%s: NUL byte inside the string", what);
        return NULL;
    }
    char *copy = alloc(r, (size_t)*n + 1);
    if (copy) {
        memcpy(copy, s, *n);
        copy[*n] = '\0';
        r->off += *n;
    }
    return copy;
}

/* get_flags: a u8 of flag bits, refusing bits outside `defined`. */
static uint8_t get_flags(struct rd *r, uint8_t defined)
{
    uint8_t f = get_u8(r);
    if (!r->rc && (f & ~defined))
        rd_fail(r, ERR_PARSE, "undefined flag bits 0x%02x", f & ~defined);
    return f;
}

static void get_sampling(struct rd *r, struct sampling_params *sp)
{
    sp->temperature = get_f32(r);
    sp->top_p = get_f32(r);
    sp->top_k = get_i32(r);
    sp->min_p = get_f32(r);
    sp->repetition_penalty = get_f32(r);
    sp->presence_penalty = get_f32(r);
    sp->frequency_penalty = get_f32(r);
    uint8_t flags = get_flags(r, 3);
    sp->has_seed = flags & 1;
    sp->ignore_eos = (flags & 2) != 0;
    sp->seed = get_u64(r);
    sp->max_tokens = get_i32(r);
    sp->min_tokens = get_i32(r);
    sp->logprobs = get_i32(r);
    sp->prompt_logprobs = get_i32(r);
    sp->stop_token_ids = get_ids(r, &sp->n_stop_token_ids, SAMPLING_MAX_STOP_IDS, "stop_token_ids");
    uint32_t nb = get_count(r, SAMPLING_MAX_BIAS, 8, "logit_bias");
    int32_t *ids = alloc(r, (size_t)nb * sizeof *ids);
    float *values = alloc(r, (size_t)nb * sizeof *values);
    for (uint32_t i = 0; ids && values && i < nb; i++) {
        ids[i] = get_i32(r);
        values[i] = get_f32(r);
    }
    sp->n_logit_bias = nb;
    sp->logit_bias_ids = ids;
    sp->logit_bias_values = values;
    sp->allowed_token_ids =
        get_ids(r, &sp->n_allowed_token_ids, WIRE_MAX_PROMPT, "allowed_token_ids");
}

static void get_add(struct rd *r, struct wire_add *m)
{
    m->request_id = get_u64(r);
    m->arrival_us = get_u64(r);
    m->priority = get_i32(r);
    m->n = get_u32(r);
    m->prompt = get_ids(r, &m->n_prompt, WIRE_MAX_PROMPT, "prompt");
    get_sampling(r, &m->sp);
    m->guided = (const uint8_t *)get_bytes(r, &m->n_guided, WIRE_MAX_GUIDED, false, "guided spec");
}

static void get_hello(struct rd *r, struct wire_hello *m)
{
    m->proto_version = get_u16(r);
    m->engine_id = get_u64(r);
    m->epoch = get_u64(r);
    m->model = get_bytes(r, &m->n_model, WIRE_MAX_STRING, true, "model name");
    m->max_model_len = get_u32(r);
    m->vocab_size = get_u32(r);
    m->block_size = get_u32(r);
    m->max_num_seqs = get_u32(r);
    m->max_num_batched_tokens = get_u32(r);
    m->max_logprobs = get_u32(r);
    m->max_waiting = get_u32(r);
    m->state = get_u8(r);
}

/* get_logprobs: n tokens' logprobs and n_top alternatives each. */
static void get_logprobs(struct rd *r, struct wire_logprobs *lp, uint32_t n)
{
    lp->n_top = get_u8(r);
    if (!r->rc && lp->n_top > SAMPLING_MAX_LOGPROBS)
        rd_fail(r, ERR_LIMIT, "%u top logprobs, at most %d", lp->n_top, SAMPLING_MAX_LOGPROBS);
    size_t nt = (size_t)n * lp->n_top; /* <= 2^20 * 20: no overflow */
    if (!need(r, (size_t)n * 4 + nt * 8))
        return;
    float *v = alloc(r, (size_t)n * sizeof *v);
    int32_t *ids = alloc(r, nt * sizeof *ids);
    float *top = alloc(r, nt * sizeof *top);
    if (r->rc)
        return;
    for (uint32_t i = 0; i < n; i++)
        v[i] = get_f32(r);
    for (size_t i = 0; i < nt; i++) {
        ids[i] = get_i32(r);
        top[i] = get_f32(r);
    }
    lp->logprob = v;
    lp->top_ids = ids;
    lp->top_logprobs = top;
}

static void get_seq(struct rd *r, struct wire_seq_out *s)
{
    s->request_id = get_u64(r);
    s->choice = get_u32(r);
    s->finish = get_u8(r);
    uint8_t flags = get_flags(r, 3);
    s->has_logprobs = flags & 1;
    s->has_prompt_logprobs = (flags & 2) != 0;
    s->stop_reason = get_i32(r);
    s->n_prompt_tokens = get_u32(r);
    s->n_cached_tokens = get_u32(r);
    s->n_generated_tokens = get_u32(r);
    s->ids = get_ids(r, &s->n_ids, WIRE_MAX_NEW_TOKENS, "token ids");
    if (s->has_logprobs)
        get_logprobs(r, &s->lp, s->n_ids);
    if (s->has_prompt_logprobs) {
        s->n_prompt_lp = get_count(r, WIRE_MAX_PROMPT, 4, "prompt logprobs");
        get_logprobs(r, &s->prompt_lp, s->n_prompt_lp);
    }
}

/* The fixed part of one TOKENS sequence: a lower bound on its bytes. */
#define SEQ_MIN_BYTES 34

static void get_tokens(struct rd *r, struct wire_tokens *m)
{
    m->n_seqs = get_count(r, WIRE_MAX_ITEMS, SEQ_MIN_BYTES, "sequences");
    struct wire_seq_out *s = alloc(r, (size_t)m->n_seqs * sizeof *s);
    if (!s)
        return;
    memset(s, 0, (size_t)m->n_seqs * sizeof *s);
    for (uint32_t i = 0; i < m->n_seqs && !r->rc; i++)
        get_seq(r, &s[i]);
    m->seqs = s;
}

static void get_abort(struct rd *r, struct wire_abort *m)
{
    m->n_ids = get_count(r, WIRE_MAX_ITEMS, 8, "request ids");
    uint64_t *ids = alloc(r, (size_t)m->n_ids * sizeof *ids);
    for (uint32_t i = 0; ids && i < m->n_ids; i++)
        ids[i] = get_u64(r);
    m->ids = ids;
}

/* get_body: the body of a message of type m->type (table dispatch). */
static void get_body(struct rd *r, struct wire_msg *m)
{
    struct wire_stats *st = &m->u.stats;
    struct wire_heartbeat *hb = &m->u.hb;
    switch (m->type) {
    case WIRE_HELLO: get_hello(r, &m->u.hello); break;
    case WIRE_ADD: get_add(r, &m->u.add); break;
    case WIRE_ABORT: get_abort(r, &m->u.aborts); break;
    case WIRE_TOKENS: get_tokens(r, &m->u.tokens); break;
    case WIRE_STATS:
        st->epoch = get_u64(r);
        st->step = get_u64(r);
        st->running = get_u32(r);
        st->waiting = get_u32(r);
        st->kv_blocks_used = get_u32(r);
        st->kv_blocks_total = get_u32(r);
        st->prefix_hit_tokens = get_u64(r);
        st->prefix_query_tokens = get_u64(r);
        break;
    case WIRE_HEARTBEAT:
        hb->epoch = get_u64(r);
        hb->step = get_u64(r);
        hb->state = get_u8(r);
        hb->running = get_u32(r);
        hb->waiting = get_u32(r);
        hb->kv_blocks_used = get_u32(r);
        hb->kv_blocks_total = get_u32(r);
        break;
    }
}

/* decode_header: checks the header at p[0..n) (base: its offset, for messages) and gives
 * the type and body length. */
static int decode_header(const uint8_t *p, size_t n, size_t base, uint16_t *type, uint32_t *body,
                         char *err, size_t errlen)
{
    if (n < WIRE_HEADER_SIZE)
        return err_set(err, errlen, ERR_PARSE,
                       "message at byte %zu: truncated header (%zu of %d bytes)", base, n,
                       WIRE_HEADER_SIZE);
    uint32_t magic =
        (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    uint16_t version = (uint16_t)(p[4] | p[5] << 8);
    *type = (uint16_t)(p[6] | p[7] << 8);
    *body = (uint32_t)p[8] | (uint32_t)p[9] << 8 | (uint32_t)p[10] << 16 | (uint32_t)p[11] << 24;
    if (magic != WIRE_MAGIC)
        return err_set(err, errlen, ERR_PARSE, "message at byte %zu: bad magic 0x%08x", base,
                       magic);
    if (version != WIRE_VERSION)
        return err_set(err, errlen, ERR_UNSUPPORTED,
                       "message at byte %zu: version %u, this build speaks %d", base, version,
                       WIRE_VERSION);
    if (*type < 1 || *type > WIRE_TYPE_MAX_)
        return err_set(err, errlen, ERR_UNSUPPORTED, "message at byte %zu: unknown type %u", base,
                       *type);
    if (*body > WIRE_MAX_BODY)
        return err_set(err, errlen, ERR_LIMIT, "%s at byte %zu: body of %u bytes, at most %u",
                       wire_type_name(*type), base, *body, WIRE_MAX_BODY);
    if (*body > n - WIRE_HEADER_SIZE)
        return err_set(err, errlen, ERR_PARSE,
                       "%s at byte %zu: body of %u bytes, %zu in the buffer", wire_type_name(*type),
                       base, *body, n - WIRE_HEADER_SIZE);
    return 0;
}

/* decode_at: wire_decode for a message at offset base of the caller's buffer. */
static int decode_at(const uint8_t *p, size_t n, size_t base, size_t *used, struct wire_msg *out,
                     struct arena *a, char *err, size_t errlen)
{
    *used = 0;
    memset(out, 0, sizeof *out);
    uint32_t body = 0;
    int rc = decode_header(p, n, base, &out->type, &body, err, errlen);
    if (rc)
        return rc;
    struct rd r = {
        p + WIRE_HEADER_SIZE, body, 0, base, wire_type_name(out->type), a, err, errlen, 0};
    get_body(&r, out);
    if (r.rc)
        return r.rc;
    if (r.off != r.n)
        return err_set(err, errlen, ERR_PARSE, "%s at byte %zu: %zu bytes left over in the body",
                       r.what, base, r.n - r.off);
    char why[200];
    rc = wire_check(out, why, sizeof why);
    if (rc)
        return err_set(err, errlen, rc, "%s (message at byte %zu)", why, base);
    *used = WIRE_HEADER_SIZE + (size_t)body;
    return 0;
}

int wire_decode(const uint8_t *p, size_t n, size_t *used, struct wire_msg *out, struct arena *a,
                char *err, size_t errlen)
{
    return decode_at(p, n, 0, used, out, a, err, errlen);
}

void wire_iter_init(struct wire_iter *it, const void *p, size_t n)
{
    it->p = p;
    it->n = n;
    it->off = 0;
    it->n_msgs = 0;
}

int wire_iter_next(struct wire_iter *it, struct wire_msg *out, struct arena *a, char *err,
                   size_t errlen)
{
    if (it->off >= it->n)
        return 0;
    if (it->n_msgs >= WIRE_MAX_ITEMS) {
        it->off = it->n;
        return err_set(err, errlen, ERR_LIMIT, "more than %d messages in one buffer",
                       WIRE_MAX_ITEMS);
    }
    size_t used;
    int rc = decode_at(it->p + it->off, it->n - it->off, it->off, &used, out, a, err, errlen);
    if (rc) {
        it->off = it->n; /* the rest is not trusted */
        return rc;
    }
    it->off += used;
    it->n_msgs++;
    return 1;
}
