/*
 * test_wire: the wire codec. Round trips of every message type with random contents (fixed
 * seed) compared field by field, concatenated messages, every truncation point, one test per
 * rule the decoder enforces, arena and buffer limits, and a hand-written byte layout.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/arena.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/wire.h"
#include "tests/test.h"

/* ---- random messages ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static uint32_t rnd_below(uint32_t n)
{
    return (uint32_t)(rnd() % n);
}

/* rnd_float: lo + a random fraction of (hi - lo), in 1/1000 steps. */
static float rnd_float(float lo, float hi)
{
    return lo + (hi - lo) * (float)rnd_below(1001) / 1000.0f;
}

static int32_t *rnd_ids(struct arena *a, uint32_t n)
{
    int32_t *v = arena_alloc(a, (size_t)n * 4 + 4);
    for (uint32_t i = 0; i < n; i++)
        v[i] = (int32_t)rnd_below(200000);
    return n ? v : NULL;
}

static float *rnd_logprobs(struct arena *a, size_t n)
{
    float *v = arena_alloc(a, n * 4 + 4);
    for (size_t i = 0; i < n; i++)
        v[i] = rnd_below(16) == 0 ? -INFINITY : rnd_float(-30, 0);
    return n ? v : NULL;
}

static void rnd_sampling(struct arena *a, struct sampling_params *sp)
{
    *sp = sampling_params_default();
    sp->temperature = rnd_float(0, 2);
    sp->top_p = rnd_float(0.001f, 1);
    sp->top_k = (int32_t)rnd_below(100) - 1;
    sp->min_p = rnd_float(0, 1);
    sp->repetition_penalty = rnd_float(0.5f, 2);
    sp->presence_penalty = rnd_float(-2, 2);
    sp->frequency_penalty = rnd_float(-2, 2);
    sp->has_seed = rnd_below(2);
    sp->seed = sp->has_seed ? rnd() : 0;
    sp->max_tokens = 1 + (int32_t)rnd_below(4096);
    sp->min_tokens = (int32_t)rnd_below((uint32_t)sp->max_tokens + 1);
    sp->ignore_eos = rnd_below(2);
    sp->logprobs = (int32_t)rnd_below(SAMPLING_MAX_LOGPROBS + 2) - 1;
    sp->prompt_logprobs = (int32_t)rnd_below(SAMPLING_MAX_LOGPROBS + 2) - 1;
    sp->n_stop_token_ids = rnd_below(5);
    sp->stop_token_ids = rnd_ids(a, sp->n_stop_token_ids);
    sp->n_logit_bias = rnd_below(4);
    sp->logit_bias_ids = rnd_ids(a, sp->n_logit_bias);
    float *bias = arena_alloc(a, 16);
    for (uint32_t i = 0; i < sp->n_logit_bias; i++)
        bias[i] = rnd_float(-100, 100);
    sp->logit_bias_values = sp->n_logit_bias ? bias : NULL;
    sp->n_allowed_token_ids = rnd_below(3) ? 0 : rnd_below(50);
    sp->allowed_token_ids = rnd_ids(a, sp->n_allowed_token_ids);
}

static void rnd_add(struct arena *a, struct wire_add *m)
{
    memset(m, 0, sizeof *m);
    m->request_id = rnd();
    m->arrival_us = rnd();
    m->priority = (int32_t)rnd();
    m->n = 1 + rnd_below(8);
    m->n_prompt = 1 + rnd_below(300);
    m->prompt = rnd_ids(a, m->n_prompt);
    rnd_sampling(a, &m->sp);
    m->n_guided = rnd_below(2) ? rnd_below(64) : 0;
    uint8_t *g = arena_alloc(a, 64);
    for (uint32_t i = 0; i < m->n_guided; i++)
        g[i] = (uint8_t)rnd();
    m->guided = m->n_guided ? g : NULL;
}

static void rnd_hello(struct wire_hello *m)
{
    static const char *models[] = {"stories260K", "meta-llama/Llama-3.1-8B-Instruct", "x"};
    memset(m, 0, sizeof *m);
    m->proto_version = (uint16_t)(1 + rnd_below(3));
    m->engine_id = rnd();
    m->epoch = rnd();
    m->model = models[rnd_below(3)];
    m->n_model = (uint32_t)strlen(m->model);
    m->max_model_len = 1 + rnd_below(1u << 20);
    m->vocab_size = 1 + rnd_below(300000);
    m->block_size = 1 + rnd_below(64);
    m->max_num_seqs = 1 + rnd_below(1024);
    m->max_num_batched_tokens = 1 + rnd_below(1u << 16);
    m->max_logprobs = rnd_below(SAMPLING_MAX_LOGPROBS + 1);
    m->max_waiting = (uint32_t)rnd();
    m->state = (uint8_t)rnd_below(4);
}

static void rnd_lp(struct arena *a, struct wire_logprobs *lp, uint32_t n)
{
    lp->n_top = rnd_below(SAMPLING_MAX_LOGPROBS + 1);
    lp->logprob = rnd_logprobs(a, n);
    lp->top_ids = rnd_ids(a, n * lp->n_top);
    lp->top_logprobs = rnd_logprobs(a, (size_t)n * lp->n_top);
}

static void rnd_seq(struct arena *a, struct wire_seq_out *s)
{
    memset(s, 0, sizeof *s);
    s->request_id = rnd();
    s->choice = rnd_below(WIRE_MAX_CHOICES);
    s->finish = (uint8_t)rnd_below(5);
    s->stop_reason = s->finish == WIRE_FINISH_STOP && rnd_below(2)    ? (int32_t)rnd_below(9)
                     : s->finish == WIRE_FINISH_ERROR && rnd_below(2) ? (int32_t)rnd_below(4)
                                                                      : -1;
    s->n_prompt_tokens = rnd_below(100000);
    s->n_cached_tokens = rnd_below(s->n_prompt_tokens + 1);
    s->n_generated_tokens = (uint32_t)rnd();
    s->n_ids = rnd_below(6);
    s->ids = rnd_ids(a, s->n_ids);
    s->has_logprobs = rnd_below(2);
    if (s->has_logprobs)
        rnd_lp(a, &s->lp, s->n_ids);
    s->has_prompt_logprobs = rnd_below(4) == 0;
    if (s->has_prompt_logprobs) {
        s->n_prompt_lp = rnd_below(40);
        rnd_lp(a, &s->prompt_lp, s->n_prompt_lp);
    }
}

/* rnd_msg: a random valid message of the given type, its arrays in a. */
static void rnd_msg(struct arena *a, uint16_t type, struct wire_msg *m)
{
    memset(m, 0, sizeof *m);
    m->type = type;
    if (type == WIRE_HELLO) {
        rnd_hello(&m->u.hello);
    } else if (type == WIRE_ADD) {
        rnd_add(a, &m->u.add);
    } else if (type == WIRE_ABORT) {
        m->u.aborts.n_ids = 1 + rnd_below(100);
        uint64_t *ids = arena_alloc(a, m->u.aborts.n_ids * 8);
        for (uint32_t i = 0; i < m->u.aborts.n_ids; i++)
            ids[i] = rnd();
        m->u.aborts.ids = ids;
    } else if (type == WIRE_TOKENS) {
        m->u.tokens.n_seqs = 1 + rnd_below(20);
        struct wire_seq_out *s = arena_alloc(a, m->u.tokens.n_seqs * sizeof *s);
        for (uint32_t i = 0; i < m->u.tokens.n_seqs; i++)
            rnd_seq(a, &s[i]);
        m->u.tokens.seqs = s;
    } else if (type == WIRE_STATS) {
        struct wire_stats *st = &m->u.stats;
        *st = (struct wire_stats){
            rnd(), rnd(), (uint32_t)rnd(), (uint32_t)rnd(), 0, 1 + rnd_below(100000), 0, rnd()};
        st->kv_blocks_used = rnd_below(st->kv_blocks_total + 1);
        st->prefix_hit_tokens = st->prefix_query_tokens / (1 + rnd_below(5));
    } else {
        struct wire_heartbeat *hb = &m->u.hb;
        *hb =
            (struct wire_heartbeat){rnd(),           rnd(), (uint8_t)rnd_below(4), (uint32_t)rnd(),
                                    (uint32_t)rnd(), 0,     1 + rnd_below(10000)};
        hb->kv_blocks_used = rnd_below(hb->kv_blocks_total + 1);
    }
}

/* ---- field-by-field comparison ---- */

/* same_bits: floats compared as bit patterns (so -0, -inf and NaN payloads count). */
static int same_bits(const float *a, const float *b, size_t n)
{
    return n == 0 || (a && b && memcmp(a, b, n * 4) == 0);
}

static int same_ids(const int32_t *a, const int32_t *b, size_t n)
{
    return n == 0 || (a && b && memcmp(a, b, n * 4) == 0);
}

static void check_same_sampling(const struct sampling_params *a, const struct sampling_params *b)
{
    CHECK(same_bits(&a->temperature, &b->temperature, 1));
    CHECK(same_bits(&a->top_p, &b->top_p, 1));
    CHECK_EQ(a->top_k, b->top_k);
    CHECK(same_bits(&a->min_p, &b->min_p, 1));
    CHECK(same_bits(&a->repetition_penalty, &b->repetition_penalty, 1));
    CHECK(same_bits(&a->presence_penalty, &b->presence_penalty, 1));
    CHECK(same_bits(&a->frequency_penalty, &b->frequency_penalty, 1));
    CHECK_EQ(a->has_seed, b->has_seed);
    CHECK_EQ(a->seed, b->seed);
    CHECK_EQ(a->max_tokens, b->max_tokens);
    CHECK_EQ(a->min_tokens, b->min_tokens);
    CHECK_EQ(a->ignore_eos, b->ignore_eos);
    CHECK_EQ(a->logprobs, b->logprobs);
    CHECK_EQ(a->prompt_logprobs, b->prompt_logprobs);
    CHECK_EQ(a->n_stop_token_ids, b->n_stop_token_ids);
    CHECK(same_ids(a->stop_token_ids, b->stop_token_ids, a->n_stop_token_ids));
    CHECK_EQ(a->n_logit_bias, b->n_logit_bias);
    CHECK(same_ids(a->logit_bias_ids, b->logit_bias_ids, a->n_logit_bias));
    CHECK(same_bits(a->logit_bias_values, b->logit_bias_values, a->n_logit_bias));
    CHECK_EQ(a->n_allowed_token_ids, b->n_allowed_token_ids);
    CHECK(same_ids(a->allowed_token_ids, b->allowed_token_ids, a->n_allowed_token_ids));
    CHECK(a->n_allowed_token_ids || !b->allowed_token_ids); /* none decodes as NULL */
}

static void check_same_lp(const struct wire_logprobs *a, const struct wire_logprobs *b, size_t n)
{
    CHECK_EQ(a->n_top, b->n_top);
    CHECK(same_bits(a->logprob, b->logprob, n));
    CHECK(same_ids(a->top_ids, b->top_ids, n * a->n_top));
    CHECK(same_bits(a->top_logprobs, b->top_logprobs, n * a->n_top));
}

static void check_same_seq(const struct wire_seq_out *a, const struct wire_seq_out *b)
{
    CHECK_EQ(a->request_id, b->request_id);
    CHECK_EQ(a->choice, b->choice);
    CHECK_EQ(a->finish, b->finish);
    CHECK_EQ(a->stop_reason, b->stop_reason);
    CHECK_EQ(a->n_prompt_tokens, b->n_prompt_tokens);
    CHECK_EQ(a->n_cached_tokens, b->n_cached_tokens);
    CHECK_EQ(a->n_generated_tokens, b->n_generated_tokens);
    CHECK_EQ(a->n_ids, b->n_ids);
    CHECK(same_ids(a->ids, b->ids, a->n_ids));
    CHECK_EQ(a->has_logprobs, b->has_logprobs);
    if (a->has_logprobs)
        check_same_lp(&a->lp, &b->lp, a->n_ids);
    CHECK_EQ(a->has_prompt_logprobs, b->has_prompt_logprobs);
    if (a->has_prompt_logprobs) {
        CHECK_EQ(a->n_prompt_lp, b->n_prompt_lp);
        check_same_lp(&a->prompt_lp, &b->prompt_lp, a->n_prompt_lp);
    }
}

static void check_same_hello(const struct wire_hello *a, const struct wire_hello *b)
{
    CHECK_EQ(a->proto_version, b->proto_version);
    CHECK_EQ(a->engine_id, b->engine_id);
    CHECK_EQ(a->epoch, b->epoch);
    CHECK_EQ(a->n_model, b->n_model);
    CHECK_STREQ(a->model, b->model); /* decoded names are NUL-terminated */
    CHECK_EQ(a->max_model_len, b->max_model_len);
    CHECK_EQ(a->vocab_size, b->vocab_size);
    CHECK_EQ(a->block_size, b->block_size);
    CHECK_EQ(a->max_num_seqs, b->max_num_seqs);
    CHECK_EQ(a->max_num_batched_tokens, b->max_num_batched_tokens);
    CHECK_EQ(a->max_logprobs, b->max_logprobs);
    CHECK_EQ(a->max_waiting, b->max_waiting);
    CHECK_EQ(a->state, b->state);
}

static void check_same_add(const struct wire_add *a, const struct wire_add *b)
{
    CHECK_EQ(a->request_id, b->request_id);
    CHECK_EQ(a->arrival_us, b->arrival_us);
    CHECK_EQ(a->priority, b->priority);
    CHECK_EQ(a->n, b->n);
    CHECK_EQ(a->n_prompt, b->n_prompt);
    CHECK(same_ids(a->prompt, b->prompt, a->n_prompt));
    check_same_sampling(&a->sp, &b->sp);
    CHECK_EQ(a->n_guided, b->n_guided);
    CHECK(a->n_guided == 0 || memcmp(a->guided, b->guided, a->n_guided) == 0);
}

static void check_same(const struct wire_msg *a, const struct wire_msg *b)
{
    CHECK_EQ(a->type, b->type);
    if (a->type != b->type)
        return;
    const struct wire_stats *sa = &a->u.stats, *sb = &b->u.stats;
    const struct wire_heartbeat *ha = &a->u.hb, *hb = &b->u.hb;
    switch (a->type) {
    case WIRE_HELLO: check_same_hello(&a->u.hello, &b->u.hello); break;
    case WIRE_ADD: check_same_add(&a->u.add, &b->u.add); break;
    case WIRE_ABORT:
        CHECK_EQ(a->u.aborts.n_ids, b->u.aborts.n_ids);
        CHECK(memcmp(a->u.aborts.ids, b->u.aborts.ids, a->u.aborts.n_ids * 8) == 0);
        break;
    case WIRE_TOKENS:
        CHECK_EQ(a->u.tokens.n_seqs, b->u.tokens.n_seqs);
        for (uint32_t i = 0; i < a->u.tokens.n_seqs && i < b->u.tokens.n_seqs; i++)
            check_same_seq(&a->u.tokens.seqs[i], &b->u.tokens.seqs[i]);
        break;
    case WIRE_STATS:
        CHECK(memcmp(sa, sb, sizeof *sa) == 0); /* all u64/u32 fields, no padding */
        CHECK_EQ(sa->kv_blocks_used, sb->kv_blocks_used);
        CHECK_EQ(sa->prefix_hit_tokens, sb->prefix_hit_tokens);
        break;
    case WIRE_HEARTBEAT:
        CHECK_EQ(ha->epoch, hb->epoch);
        CHECK_EQ(ha->step, hb->step);
        CHECK_EQ(ha->state, hb->state);
        CHECK_EQ(ha->running, hb->running);
        CHECK_EQ(ha->waiting, hb->waiting);
        CHECK_EQ(ha->kv_blocks_used, hb->kv_blocks_used);
        CHECK_EQ(ha->kv_blocks_total, hb->kv_blocks_total);
        break;
    }
}

/* ---- round trips ---- */

/* roundtrip: `iters` random messages of `type`: encode, decode, compare. */
static void roundtrip(uint16_t type, int iters)
{
    struct arena a, d;
    arena_init(&a, 0, 0);
    arena_init(&d, 0, 0);
    struct buf b;
    buf_init(&b, 0);
    char err[256];
    for (int i = 0; i < iters; i++) {
        struct wire_msg m, out;
        rnd_msg(&a, type, &m);
        buf_reset(&b);
        int rc = wire_encode(&b, &m, err, sizeof err);
        if (rc)
            TEST_FAIL_AT("encode %s: %s", err_name(rc), err);
        REQUIRE(rc == 0);
        size_t used = 0;
        rc = wire_decode((const uint8_t *)b.p, b.n, &used, &out, &d, err, sizeof err);
        if (rc)
            TEST_FAIL_AT("decode %s: %s", err_name(rc), err);
        REQUIRE(rc == 0);
        CHECK_EQ(used, b.n);
        check_same(&m, &out);
        arena_reset(&a);
        arena_reset(&d);
    }
    buf_deinit(&b);
    arena_deinit(&a);
    arena_deinit(&d);
}

TEST(roundtrip_every_type)
{
    for (uint16_t type = 1; type <= WIRE_TYPE_MAX_; type++)
        roundtrip(type, type == WIRE_TOKENS ? 200 : 300);
}

TEST(concatenated_messages_iterate)
{
    struct arena a, d;
    arena_init(&a, 0, 0);
    arena_init(&d, 0, 0);
    struct buf b;
    buf_init(&b, 0);
    enum { N = 60 };
    struct wire_msg m[N];
    for (int i = 0; i < N; i++) {
        rnd_msg(&a, (uint16_t)(1 + rnd_below(WIRE_TYPE_MAX_)), &m[i]);
        REQUIRE(wire_encode(&b, &m[i], NULL, 0) == 0);
    }
    struct wire_iter it;
    wire_iter_init(&it, b.p, b.n);
    struct wire_msg out;
    char err[256] = "";
    int n = 0, rc;
    while ((rc = wire_iter_next(&it, &out, &d, err, sizeof err)) == 1) {
        REQUIRE(n < N);
        check_same(&m[n++], &out);
    }
    CHECK_EQ(rc, 0);
    CHECK_EQ(n, N);
    CHECK_EQ(it.off, b.n);
    CHECK_EQ(wire_iter_next(&it, &out, &d, err, sizeof err), 0); /* stays at the end */
    wire_iter_init(&it, NULL, 0);
    CHECK_EQ(wire_iter_next(&it, &out, &d, err, sizeof err), 0); /* empty buffer */
    buf_deinit(&b);
    arena_deinit(&a);
    arena_deinit(&d);
}

TEST(every_truncation_fails_cleanly)
{
    struct arena a, d;
    arena_init(&a, 0, 0);
    arena_init(&d, 0, 0);
    struct buf b;
    buf_init(&b, 0);
    char err[256];
    for (uint16_t type = 1; type <= WIRE_TYPE_MAX_; type++) {
        for (int i = 0; i < 5; i++) {
            struct wire_msg m, out;
            rnd_msg(&a, type, &m);
            buf_reset(&b);
            REQUIRE(wire_encode(&b, &m, NULL, 0) == 0);
            for (size_t cut = 0; cut < b.n; cut++) {
                /* a heap copy of exactly `cut` bytes, so ASan sees any read past it */
                uint8_t *p = malloc(cut ? cut : 1);
                memcpy(p, b.p, cut);
                size_t used = 99;
                err[0] = '\0';
                int rc = wire_decode(p, cut, &used, &out, &d, err, sizeof err);
                if (rc >= 0 || used != 0 || !err[0] || strchr(err, '\n'))
                    TEST_FAIL_AT("%s cut at %zu of %zu: rc %d used %zu err '%s'",
                                 wire_type_name(type), cut, b.n, rc, used, err);
                free(p);
                arena_reset(&d);
            }
            arena_reset(&a);
        }
    }
    buf_deinit(&b);
    arena_deinit(&a);
    arena_deinit(&d);
}

/* The byte layout written out by hand (wire.h), independent of the encoder. */
TEST(heartbeat_and_abort_byte_layout)
{
    static const uint8_t want[] = {'K',  'L',  'N',  '1',  1,    0,    6,    0,    33,   0,
                                   0,    0, /* header: v1, HEARTBEAT, 33 */
                                   0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* epoch */
                                   42,   0,    0,    0,    0,    0,    0,    0,    /* step */
                                   2, /* state: draining */
                                   3,    0,    0,    0,    4,    0,    0,    0,    5,    0,
                                   0,    0,    0,    1,    0,    0, /* running, waiting, kv 5/256 */
                                   'K',  'L',  'N',  '1',  1,    0,    3,    0,    20,   0,
                                   0,    0, /* header: ABORT, 20 bytes */
                                   2,    0,    0,    0,    1,    0,    0,    0,    0,    0,
                                   0,    0,    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    struct wire_heartbeat hb = {0x0102030405060708ull, 42, WIRE_DRAINING, 3, 4, 5, 256};
    uint64_t ids[] = {1, UINT64_MAX};
    struct wire_abort ab = {ids, 2};
    struct buf b;
    buf_init(&b, 0);
    REQUIRE(wire_encode_heartbeat(&b, &hb, NULL, 0) == 0);
    REQUIRE(wire_encode_abort(&b, &ab, NULL, 0) == 0);
    CHECK_MEMEQ(b.p, b.n, want, sizeof want);
    buf_deinit(&b);
}

/* ---- one test per rule ---- */

static const int32_t prompt4[4] = {1, 15043, 3186, 2};

/* ADD byte offsets (from the message's start) with the 4-id prompt above. */
enum {
    OFF_N_PROMPT = 12 + 24,
    OFF_TEMPERATURE = 12 + 28 + 16,
    OFF_TOP_P = OFF_TEMPERATURE + 4,
    OFF_FLAGS = OFF_TEMPERATURE + 28,
    OFF_SEED = OFF_FLAGS + 1,
    OFF_N_STOP = OFF_SEED + 8 + 16,
};

static struct wire_add add4(void)
{
    struct wire_add m = {0};
    m.request_id = 7;
    m.n = 1;
    m.prompt = prompt4;
    m.n_prompt = 4;
    m.sp = sampling_params_default();
    return m;
}

static void set_le32(struct buf *b, size_t off, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        b->p[off + i] = (char)(v >> (8 * i));
}

static void set_byte(struct buf *b, size_t off, uint8_t v)
{
    b->p[off] = (char)v;
}

static void set_f32(struct buf *b, size_t off, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    set_le32(b, off, u);
}

/* decode_rc: decodes b, checks the failure contract and that err contains `word`. */
static int decode_rc(const struct buf *b, const char *word)
{
    struct arena d;
    arena_init(&d, 0, 0);
    struct wire_msg out;
    char err[256] = "";
    size_t used = 99;
    int rc = wire_decode((const uint8_t *)b->p, b->n, &used, &out, &d, err, sizeof err);
    if (rc < 0 && (used != 0 || !strstr(err, word) || strchr(err, '\n')))
        TEST_FAIL_AT("%s: err '%s' lacks '%s' (used %zu)", err_name(rc), err, word, used);
    arena_deinit(&d);
    return rc;
}

/* encode4: b holds the encoding of add4(). */
static void encode4(struct buf *b)
{
    struct wire_add m = add4();
    buf_init(b, 0);
    int rc = wire_encode_add(b, &m, NULL, 0);
    CHECK_EQ(rc, 0);
    CHECK_EQ(decode_rc(b, ""), 0);
}

/* refuse_add: wire_encode_add refuses m with want, leaving a non-empty buffer unchanged. */
static void refuse_add(const struct wire_add *m, int want, const char *word)
{
    struct buf b;
    buf_init(&b, 0);
    buf_append_str(&b, "xy");
    char err[256] = "";
    CHECK_EQ(wire_encode_add(&b, m, err, sizeof err), want);
    CHECK(strstr(err, word) != NULL);
    CHECK_EQ(b.n, 2);
    CHECK_STREQ(b.p, "xy");
    buf_deinit(&b);
}

/* REFUSE_ADD: add4() with one change is refused by the encoder with code, err naming word. */
#define REFUSE_ADD(change, code, word)                                                             \
    do {                                                                                           \
        struct wire_add m_ = add4();                                                               \
        m_.change;                                                                                 \
        refuse_add(&m_, code, word);                                                               \
    } while (0)

/* REFUSE_PATCHED: add4()'s bytes with one value patched are refused by the decoder. */
#define REFUSE_PATCHED(setter, off, value, code, word)                                             \
    do {                                                                                           \
        struct buf b_;                                                                             \
        encode4(&b_);                                                                              \
        setter(&b_, off, value);                                                                   \
        CHECK_EQ(decode_rc(&b_, word), code);                                                      \
        buf_deinit(&b_);                                                                           \
    } while (0)

TEST(rule_nan_temperature)
{
    REFUSE_ADD(sp.temperature = NAN, ERR_RANGE, "temperature");
    REFUSE_ADD(sp.temperature = -0.5f, ERR_RANGE, "temperature");
    REFUSE_ADD(sp.temperature = INFINITY, ERR_RANGE, "temperature");
    REFUSE_PATCHED(set_f32, OFF_TEMPERATURE, NAN, ERR_RANGE, "temperature");
}

TEST(rule_top_p_zero)
{
    REFUSE_ADD(sp.top_p = 0, ERR_RANGE, "top_p");
    REFUSE_ADD(sp.top_p = 1.5f, ERR_RANGE, "top_p");
    REFUSE_PATCHED(set_f32, OFF_TOP_P, 0, ERR_RANGE, "top_p");
}

TEST(rule_other_sampling_ranges)
{
    static int32_t neg[4] = {1, 2, -3, 4};
    REFUSE_ADD(sp.min_p = -0.1f, ERR_RANGE, "min_p");
    REFUSE_ADD(sp.repetition_penalty = 0, ERR_RANGE, "repetition_penalty");
    REFUSE_ADD(sp.presence_penalty = 2.5f, ERR_RANGE, "presence_penalty");
    REFUSE_ADD(sp.frequency_penalty = NAN, ERR_RANGE, "frequency_penalty");
    REFUSE_ADD(sp.max_tokens = 0, ERR_RANGE, "max_tokens");
    REFUSE_ADD(sp.min_tokens = 17, ERR_RANGE, "min_tokens");
    REFUSE_ADD(sp.logprobs = SAMPLING_MAX_LOGPROBS + 1, ERR_RANGE, "logprobs");
    REFUSE_ADD(sp.prompt_logprobs = -2, ERR_RANGE, "prompt_logprobs");
    REFUSE_ADD(n = 0, ERR_RANGE, "n 0");
    REFUSE_ADD(n_prompt = 0, ERR_RANGE, "empty prompt");
    REFUSE_ADD(prompt = neg, ERR_RANGE, "negative");
}

TEST(rule_logit_bias_values)
{
    struct wire_add m = add4();
    int32_t ids[2] = {5, 6};
    float values[2] = {1, 100.5f};
    m.sp.logit_bias_ids = ids;
    m.sp.logit_bias_values = values;
    m.sp.n_logit_bias = 2;
    refuse_add(&m, ERR_RANGE, "logit_bias");
    values[1] = NAN;
    refuse_add(&m, ERR_RANGE, "logit_bias");
    m.sp.logit_bias_values = NULL;
    refuse_add(&m, ERR_INVAL, "logit_bias");
}

TEST(rule_too_many_ids)
{
    /* the count is checked before the array is read */
    REFUSE_ADD(n_prompt = WIRE_MAX_PROMPT + 1, ERR_LIMIT, "prompt");
    REFUSE_ADD(sp.n_stop_token_ids = SAMPLING_MAX_STOP_IDS + 1, ERR_LIMIT, "stop_token_ids");
    REFUSE_PATCHED(set_le32, OFF_N_PROMPT, WIRE_MAX_PROMPT + 1, ERR_LIMIT, "prompt");
    REFUSE_PATCHED(set_le32, OFF_N_STOP, SAMPLING_MAX_STOP_IDS + 1, ERR_LIMIT, "stop_token_ids");
}

TEST(rule_count_larger_than_remaining_body)
{
    REFUSE_PATCHED(set_le32, OFF_N_PROMPT, 1000, ERR_PARSE, "count 1000 needs 4000 bytes");
}

TEST(rule_body_length_beyond_buffer)
{
    struct buf b;
    encode4(&b);
    set_le32(&b, 8, (uint32_t)(b.n - WIRE_HEADER_SIZE + 1));
    CHECK_EQ(decode_rc(&b, "in the buffer"), ERR_PARSE);
    set_le32(&b, 8, WIRE_MAX_BODY + 1);
    CHECK_EQ(decode_rc(&b, "at most"), ERR_LIMIT);
    buf_deinit(&b);
}

TEST(rule_bad_magic)
{
    REFUSE_PATCHED(set_byte, 3, '2', ERR_PARSE, "bad magic");
}

TEST(rule_bad_version)
{
    REFUSE_PATCHED(set_byte, 4, 2, ERR_UNSUPPORTED, "version 2");
}

TEST(rule_unknown_type)
{
    REFUSE_PATCHED(set_byte, 6, 0, ERR_UNSUPPORTED, "unknown type 0");
    REFUSE_PATCHED(set_byte, 6, WIRE_TYPE_MAX_ + 1, ERR_UNSUPPORTED, "unknown type 7");
    struct wire_msg m = {.type = 99};
    struct buf b;
    buf_init(&b, 0);
    CHECK_EQ(wire_encode(&b, &m, NULL, 0), ERR_UNSUPPORTED);
    buf_deinit(&b);
}

TEST(rule_trailing_bytes_in_body)
{
    struct buf b;
    encode4(&b);
    buf_append_byte(&b, 0);
    set_le32(&b, 8, (uint32_t)(b.n - WIRE_HEADER_SIZE));
    CHECK_EQ(decode_rc(&b, "1 bytes left over"), ERR_PARSE);
    buf_deinit(&b);
}

TEST(rule_undefined_flag_bits)
{
    REFUSE_PATCHED(set_byte, OFF_FLAGS, 4, ERR_PARSE, "flag bits 0x04");
}

TEST(rule_seed_without_has_seed)
{
    REFUSE_ADD(sp.seed = 5, ERR_RANGE, "seed");
    REFUSE_PATCHED(set_byte, OFF_SEED, 5, ERR_RANGE, "seed");
}

TEST(rule_oversized_guided_spec)
{
    struct wire_add m = add4();
    uint8_t spec[4] = "abc";
    m.guided = spec;
    m.n_guided = WIRE_MAX_GUIDED + 1;
    refuse_add(&m, ERR_LIMIT, "guided");
    m.n_guided = 3;
    struct buf b;
    buf_init(&b, 0);
    REQUIRE(wire_encode_add(&b, &m, NULL, 0) == 0);
    set_le32(&b, b.n - 7, WIRE_MAX_GUIDED + 1);
    CHECK_EQ(decode_rc(&b, "guided spec: count"), ERR_LIMIT);
    buf_deinit(&b);
}

TEST(rule_nul_in_model_name)
{
    struct wire_hello h;
    rnd_hello(&h);
    h.model = "ab";
    h.n_model = 2;
    struct buf b;
    buf_init(&b, 0);
    REQUIRE(wire_encode_hello(&b, &h, NULL, 0) == 0);
    b.p[12 + 2 + 16 + 4 + 1] = '\0'; /* "a\0" */
    CHECK_EQ(decode_rc(&b, "NUL"), ERR_PARSE);
    h.model = "a\0b";
    h.n_model = 3;
    char err[128];
    CHECK_EQ(wire_encode_hello(&b, &h, err, sizeof err), ERR_RANGE);
    h.n_model = 0;
    CHECK_EQ(wire_encode_hello(&b, &h, err, sizeof err), ERR_LIMIT);
    buf_deinit(&b);
}

/* refuse_seq: a TOKENS message of the one sequence s is refused with want. */
static void refuse_seq(const struct wire_seq_out *s, int want, const char *word)
{
    struct wire_tokens t = {s, 1};
    struct buf b;
    buf_init(&b, 0);
    char err[256] = "";
    CHECK_EQ(wire_encode_tokens(&b, &t, err, sizeof err), want);
    if (!strstr(err, word))
        TEST_FAIL_AT("err '%s' lacks '%s'", err, word);
    CHECK_EQ(b.n, 0);
    buf_deinit(&b);
}

TEST(rule_tokens_values)
{
    int32_t ids[2] = {3, 4};
    float lps[2] = {-0.5f, -INFINITY};
    struct wire_seq_out s = {
        .request_id = 1, .finish = WIRE_FINISH_LENGTH, .stop_reason = 2, .ids = ids, .n_ids = 2};
    refuse_seq(&s, ERR_RANGE, "stop reason");
    s.finish = WIRE_FINISH_ERROR; /* an error's reason: enum wire_error */
    s.stop_reason = WIRE_ERROR_MAX_ + 1;
    refuse_seq(&s, ERR_RANGE, "stop reason");
    s.finish = WIRE_FINISH_LENGTH;
    s.stop_reason = -1;
    s.n_prompt_tokens = 3;
    s.n_cached_tokens = 4;
    refuse_seq(&s, ERR_RANGE, "cached");
    s.n_cached_tokens = 3;
    s.finish = 5;
    refuse_seq(&s, ERR_RANGE, "finish");
    s.finish = WIRE_FINISH_NONE;
    s.has_logprobs = true;
    s.lp.logprob = lps;
    struct wire_tokens t = {&s, 1};
    struct buf b;
    buf_init(&b, 0);
    CHECK_EQ(wire_encode_tokens(&b, &t, NULL, 0), 0); /* -inf is a valid logprob */
    CHECK_EQ(decode_rc(&b, ""), 0);
    buf_deinit(&b);
    lps[1] = NAN;
    refuse_seq(&s, ERR_RANGE, "logprob");
    lps[1] = INFINITY;
    refuse_seq(&s, ERR_RANGE, "logprob");
    lps[1] = 0;
    s.lp.n_top = SAMPLING_MAX_LOGPROBS + 1;
    refuse_seq(&s, ERR_LIMIT, "top logprobs");
    s.lp.n_top = 1;
    refuse_seq(&s, ERR_INVAL, "missing");
    struct wire_tokens none = {NULL, 0};
    CHECK_EQ(wire_encode_tokens(&b, &none, NULL, 0), ERR_LIMIT);
}

TEST(rule_load_figures)
{
    struct wire_stats st = {.kv_blocks_used = 5, .kv_blocks_total = 4};
    struct buf b;
    buf_init(&b, 0);
    char err[128] = "";
    CHECK_EQ(wire_encode_stats(&b, &st, err, sizeof err), ERR_RANGE);
    CHECK(strstr(err, "KV blocks") != NULL);
    st = (struct wire_stats){.prefix_hit_tokens = 2, .prefix_query_tokens = 1};
    CHECK_EQ(wire_encode_stats(&b, &st, NULL, 0), ERR_RANGE);
    struct wire_heartbeat hb = {.state = WIRE_FATAL + 1};
    CHECK_EQ(wire_encode_heartbeat(&b, &hb, NULL, 0), ERR_RANGE);
    hb.state = WIRE_READY;
    REQUIRE(wire_encode_heartbeat(&b, &hb, NULL, 0) == 0);
    b.p[12 + 16] = 9; /* the state byte */
    CHECK_EQ(decode_rc(&b, "state"), ERR_RANGE);
    buf_deinit(&b);
}

TEST(rule_empty_abort)
{
    struct wire_abort ab = {NULL, 0};
    struct buf b;
    buf_init(&b, 0);
    CHECK_EQ(wire_encode_abort(&b, &ab, NULL, 0), ERR_LIMIT);
    uint64_t id = 9;
    ab = (struct wire_abort){&id, 1};
    REQUIRE(wire_encode_abort(&b, &ab, NULL, 0) == 0);
    set_le32(&b, 12, 0); /* count 0, body keeps 8 bytes */
    CHECK_EQ(decode_rc(&b, "left over"), ERR_PARSE);
    set_le32(&b, 12, WIRE_MAX_ITEMS + 1);
    CHECK_EQ(decode_rc(&b, "over the limit"), ERR_LIMIT);
    buf_deinit(&b);
}

TEST(arena_limit_gives_err_limit)
{
    enum { NP = 100000 };
    int32_t *ids = calloc(NP, 4);
    struct wire_add m = add4();
    m.prompt = ids;
    m.n_prompt = NP;
    struct buf b;
    buf_init(&b, 0);
    REQUIRE(wire_encode_add(&b, &m, NULL, 0) == 0);
    struct arena d;
    arena_init(&d, 64 << 10, 0);
    struct wire_msg out;
    char err[256] = "";
    size_t used = 1;
    CHECK_EQ(wire_decode((const uint8_t *)b.p, b.n, &used, &out, &d, err, sizeof err), ERR_LIMIT);
    CHECK(strstr(err, "arena limit") != NULL);
    CHECK_EQ(used, 0);
    arena_deinit(&d);
    arena_init(&d, 1 << 20, 0); /* enough */
    CHECK_EQ(wire_decode((const uint8_t *)b.p, b.n, &used, &out, &d, err, sizeof err), 0);
    CHECK_EQ(out.u.add.n_prompt, NP);
    arena_deinit(&d);
    buf_deinit(&b);
    free(ids);
}

TEST(buffer_limit_leaves_buffer_unchanged)
{
    struct wire_add m = add4();
    struct buf b;
    buf_init(&b, 40);
    char err[128] = "";
    CHECK_EQ(wire_encode_add(&b, &m, err, sizeof err), ERR_LIMIT); /* never grown */
    CHECK_EQ(b.n, 0);
    CHECK_STREQ(b.p, "");
    buf_append_str(&b, "abc");
    CHECK_EQ(wire_encode_add(&b, &m, err, sizeof err), ERR_LIMIT); /* grown, rolled back */
    CHECK_EQ(b.n, 3);
    CHECK_STREQ(b.p, "abc");
    buf_deinit(&b);
}

TEST(iter_stops_at_a_bad_message)
{
    struct buf b;
    encode4(&b);
    size_t one = b.n;
    struct wire_add m = add4();
    REQUIRE(wire_encode_add(&b, &m, NULL, 0) == 0);
    REQUIRE(wire_encode_add(&b, &m, NULL, 0) == 0);
    b.p[one] = 'X'; /* the second one's magic */
    struct arena d;
    arena_init(&d, 0, 0);
    struct wire_iter it;
    wire_iter_init(&it, b.p, b.n);
    struct wire_msg out;
    char err[256] = "";
    CHECK_EQ(wire_iter_next(&it, &out, &d, err, sizeof err), 1);
    CHECK_EQ(out.u.add.request_id, 7);
    CHECK_EQ(wire_iter_next(&it, &out, &d, err, sizeof err), ERR_PARSE);
    char want[64];
    snprintf(want, sizeof want, "message at byte %zu: bad magic", one);
    CHECK(strstr(err, want) != NULL);
    CHECK_EQ(wire_iter_next(&it, &out, &d, err, sizeof err), 0);
    arena_deinit(&d);
    buf_deinit(&b);
}

TEST(iter_message_count_limit)
{
    struct wire_heartbeat hb = {.kv_blocks_total = 1};
    struct buf b;
    buf_init(&b, 0);
    for (int i = 0; i <= WIRE_MAX_ITEMS; i++)
        REQUIRE(wire_encode_heartbeat(&b, &hb, NULL, 0) == 0);
    struct arena d;
    arena_init(&d, 0, 0);
    struct wire_iter it;
    wire_iter_init(&it, b.p, b.n);
    struct wire_msg out;
    char err[128] = "";
    int n = 0, rc;
    while ((rc = wire_iter_next(&it, &out, &d, err, sizeof err)) == 1)
        n++;
    CHECK_EQ(n, WIRE_MAX_ITEMS);
    CHECK_EQ(rc, ERR_LIMIT);
    CHECK(strstr(err, "messages in one buffer") != NULL);
    arena_deinit(&d);
    buf_deinit(&b);
}

TEST(type_names)
{
    CHECK_STREQ(wire_type_name(WIRE_ADD), "ADD");
    CHECK_STREQ(wire_type_name(WIRE_HEARTBEAT), "HEARTBEAT");
    CHECK_STREQ(wire_type_name(0), "UNKNOWN");
    CHECK_STREQ(wire_type_name(1000), "UNKNOWN");
}

int main(int argc, char **argv)
{
    return test_main(argc, argv);
}
