/*
 * test_scheduler: the continuous-batching scheduler against a fake model. The fake model
 * keeps a shadow KV cache (one token id per KV slot, written through each step's slot
 * mapping) and "samples" a pure function of what the sequence's block table makes visible
 * at positions 0..p, plus the choice index; so a wrong slot, a wrongly shared cached block
 * or a lost token after preemption changes the output stream. Every step is checked (token
 * budget, sequence cap, continuous positions, slots equal kv_blocks_slot_of, logit rows)
 * and kv_blocks_check runs after every operation.
 */
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "tests/test.h"
#include "worker/kv_blocks.h"
#include "worker/scheduler.h"

#define VOCAB 1000
#define MAXR 2048 /* request ids in tests */
#define MAXC 4    /* choices */
#define MAXT 64   /* max_tokens in tests */

struct stream {
    int32_t tok[MAXT];
    int n;
    int finish;
    int32_t stop_reason;
    uint32_t cached;
    bool done; /* request_done seen on this choice */
};

struct harness {
    void *mem;
    struct kv_blocks *kb;
    struct scheduler *s;
    struct scheduler_config c;
    int32_t *kv;       /* shadow KV: [n_blocks * block_size] token ids */
    struct stream *st; /* [MAXR][MAXC] */
    int n_done;        /* requests finished */
    size_t max_step_tokens, steps;
};

static int h_open(struct harness *h, int32_t n_blocks, int32_t bs, int32_t budget, int32_t max_seqs,
                  int32_t max_waiting, enum sched_policy pol)
{
    memset(h, 0, sizeof *h);
    struct kv_blocks_config k = {.n_blocks = n_blocks,
                                 .block_size = bs,
                                 .max_seqs = max_seqs,
                                 .max_blocks_per_seq = (512 + bs - 1) / bs};
    h->mem = malloc(kv_blocks_bytes(&k));
    h->kv = calloc((size_t)n_blocks * (size_t)bs, sizeof *h->kv);
    h->st = calloc((size_t)MAXR * MAXC, sizeof *h->st);
    if (!h->mem || !h->kv || !h->st || kv_blocks_init(h->mem, kv_blocks_bytes(&k), &k, &h->kb))
        return ERR_NOMEM;
    h->c = (struct scheduler_config){.max_num_batched_tokens = budget,
                                     .max_num_seqs = max_seqs,
                                     .max_waiting = max_waiting,
                                     .max_model_len = 512,
                                     .block_size = bs,
                                     .policy = pol,
                                     .vocab = VOCAB,
                                     .eos_ids = {2},
                                     .n_eos = 1};
    return scheduler_new(&h->c, h->kb, &h->s);
}

static void h_close(struct harness *h)
{
    scheduler_free(h->s);
    free(h->mem);
    free(h->kv);
    free(h->st);
}

static int kv_ok(const struct kv_blocks *kb)
{
    char err[256];
    int rc = kv_blocks_check(kb, err, sizeof err);
    if (rc)
        fprintf(stderr, "    kv_blocks_check: %s\n", err);
    return rc == 0;
}

/* add: request id with prompt of n tokens (prompt[i] = f(seed, i)), max_tokens mt. */
static int add(struct harness *h, uint64_t id, size_t n, uint32_t seed, int32_t mt, uint32_t n_ch,
               int32_t prio, uint64_t arrival)
{
    int32_t prompt[512];
    for (size_t i = 0; i < n && i < 512; i++)
        prompt[i] = (int32_t)(10 + (seed * 2654435761u + (uint32_t)i * 40503u) % (VOCAB - 10));
    struct sampling_params p = sampling_params_default();
    p.max_tokens = mt;
    p.ignore_eos = true;
    struct sched_request r = {.id = id,
                              .key = (uint32_t)id * 7,
                              .prompt = prompt,
                              .n_prompt = n,
                              .params = &p,
                              .n = n_ch,
                              .priority = prio,
                              .arrival = arrival};
    char err[128];
    return scheduler_add(h->s, &r, err, sizeof err);
}

/* fake_token: the fake model's output for logit row i of st. */
static int32_t fake_token(const struct harness *h, const struct sched_step *st, size_t i)
{
    size_t b = (size_t)st->logit_seq[i], bs = (size_t)h->c.block_size;
    int32_t last = st->pos[st->logit_rows[i]];
    const int32_t *table = st->block_tables + b * st->max_blocks;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int32_t p = 0; p <= last; p++) {
        x ^= (uint64_t)h->kv[(size_t)table[(size_t)p / bs] * bs + (size_t)p % bs] + 1;
        x *= 0xff51afd7ed558ccdull;
        x ^= x >> 29;
    }
    return (int32_t)(10 + (x + st->seqs[b]->choice) % (VOCAB - 10));
}

/* check_step: the step's invariants. */
static void check_step(const struct harness *h, const struct sched_step *st)
{
    CHECK(st->n_tokens <= (size_t)h->c.max_num_batched_tokens);
    CHECK(st->n_seqs <= (size_t)h->c.max_num_seqs);
    size_t t = 0, li = 0;
    for (size_t b = 0; b < st->n_seqs; b++) {
        const struct sched_seq *q = st->seqs[b];
        CHECK(q->n_sched > 0);
        for (size_t j = 0; j < q->n_sched; j++, t++) {
            CHECK_EQ(st->seq_of[t], b);
            CHECK_EQ(st->pos[t], q->n_computed + j);
            CHECK_EQ(st->ids[t], q->tokens[q->n_computed + j]);
            CHECK_EQ(st->slot_mapping[t], kv_blocks_slot_of(h->kb, q->kv_slot, (size_t)st->pos[t]));
        }
        if (q->n_computed + q->n_sched == q->n_tokens) {
            CHECK(li < st->n_logits);
            CHECK_EQ(st->logit_rows[li], t - 1);
            CHECK_EQ(st->logit_seq[li], b);
            li++;
        }
    }
    CHECK_EQ(t, st->n_tokens);
    CHECK_EQ(li, st->n_logits);
}

/* record: the events of a commit into the streams. */
static void record(struct harness *h, const struct sched_events *ev)
{
    for (size_t i = 0; i < ev->n; i++) {
        const struct sched_event *e = &ev->ev[i];
        if (e->request_id >= MAXR || e->choice >= MAXC)
            continue;
        struct stream *s = &h->st[e->request_id * MAXC + e->choice];
        CHECK(!s->finish);
        if (s->n < MAXT)
            s->tok[s->n++] = e->token;
        CHECK_EQ(e->n_generated, s->n);
        s->finish = e->finish;
        s->stop_reason = e->stop_reason;
        s->cached = e->n_cached;
        s->done = e->request_done;
        h->n_done += e->request_done;
    }
}

/* step: schedule, check, run the fake model, commit, record. Returns tokens in the step. */
static size_t step(struct harness *h)
{
    struct sched_step st;
    int32_t sampled[256];
    CHECK_EQ(scheduler_schedule(h->s, &st), 0);
    CHECK(kv_ok(h->kb));
    if (st.n_tokens == 0)
        return 0;
    check_step(h, &st);
    for (size_t t = 0; t < st.n_tokens; t++)
        h->kv[st.slot_mapping[t]] = st.ids[t];
    for (size_t i = 0; i < st.n_logits; i++)
        sampled[i] = fake_token(h, &st, i);
    struct sched_events ev;
    CHECK_EQ(scheduler_commit(h->s, &st, sampled, &ev), 0);
    CHECK(kv_ok(h->kb));
    CHECK_EQ(ev.n, st.n_logits);
    for (size_t i = 0; i < ev.n; i++)
        CHECK_EQ(ev.ev[i].token, sampled[i]);
    record(h, &ev);
    h->steps++;
    if (st.n_tokens > h->max_step_tokens)
        h->max_step_tokens = st.n_tokens;
    return st.n_tokens;
}

/* run: steps until nothing is left (bounded). */
static void run(struct harness *h)
{
    for (int i = 0; i < 100000 && (scheduler_stats(h->s).n_requests > 0); i++)
        step(h);
    CHECK_EQ(scheduler_stats(h->s).n_requests, 0);
    CHECK_EQ(kv_blocks_stats(h->kb).in_use, 0);
    CHECK_EQ(kv_blocks_stats(h->kb).n_seqs, 0);
}

TEST(chunked_prefill)
{
    struct harness h;
    REQUIRE(h_open(&h, 64, 4, 16, 4, 8, SCHED_FCFS) == 0);
    REQUIRE(add(&h, 1, 100, 1, 3, 1, 0, 0) == 0);
    size_t steps_with_prompt = 0;
    while (scheduler_stats(h.s).n_requests) {
        struct sched_step st;
        REQUIRE(scheduler_schedule(h.s, &st) == 0);
        check_step(&h, &st);
        if (st.n_logits == 0) {
            CHECK_EQ(st.n_tokens, 16);
            steps_with_prompt++;
        }
        int32_t t = 50;
        struct sched_events ev;
        REQUIRE(scheduler_commit(h.s, &st, &t, &ev) == 0);
        CHECK(kv_ok(h.kb));
    }
    CHECK_EQ(steps_with_prompt, 6); /* 6 chunks of 16, then 4 + logits, then 2 decodes */
    CHECK_EQ(kv_blocks_stats(h.kb).in_use, 0);
    h_close(&h);
}

TEST(decode_first)
{
    struct harness h;
    REQUIRE(h_open(&h, 64, 4, 8, 4, 8, SCHED_FCFS) == 0);
    REQUIRE(add(&h, 1, 3, 1, 10, 1, 0, 0) == 0);
    CHECK_EQ(step(&h), 3);
    REQUIRE(add(&h, 2, 40, 2, 5, 1, 0, 1) == 0);
    struct sched_step st;
    REQUIRE(scheduler_schedule(h.s, &st) == 0);
    REQUIRE(st.n_seqs == 2);
    CHECK_EQ(st.seqs[0]->request_id, 1);
    CHECK_EQ(st.seqs[0]->n_sched, 1);
    CHECK_EQ(st.seqs[1]->request_id, 2);
    CHECK_EQ(st.seqs[1]->n_sched, 7);
    CHECK_EQ(st.n_decode, 1);
    CHECK_EQ(st.n_logits, 1);
    int32_t t = 11;
    struct sched_events ev;
    REQUIRE(scheduler_commit(h.s, &st, &t, &ev) == 0);
    record(&h, &ev);
    run(&h);
    h_close(&h);
}

/* admission_order: the request ids in the order they first get a step. */
static void admission_order(enum sched_policy pol, uint64_t *order)
{
    struct harness h;
    REQUIRE(h_open(&h, 64, 4, 64, 1, 8, pol) == 0);
    /* id, priority, arrival */
    REQUIRE(add(&h, 1, 5, 1, 1, 1, 5, 10) == 0);
    REQUIRE(add(&h, 2, 5, 2, 1, 1, 1, 30) == 0);
    REQUIRE(add(&h, 3, 5, 3, 1, 1, 1, 20) == 0);
    REQUIRE(add(&h, 4, 5, 4, 1, 1, 0, 40) == 0);
    for (int i = 0; i < 4; i++) {
        struct sched_step st;
        REQUIRE(scheduler_schedule(h.s, &st) == 0);
        REQUIRE(st.n_seqs == 1);
        order[i] = st.seqs[0]->request_id;
        int32_t t = 12;
        struct sched_events ev;
        REQUIRE(scheduler_commit(h.s, &st, &t, &ev) == 0);
    }
    run(&h);
    h_close(&h);
}

TEST(fcfs_vs_priority)
{
    uint64_t o[4] = {0};
    admission_order(SCHED_FCFS, o);
    CHECK(o[0] == 1 && o[1] == 3 && o[2] == 2 && o[3] == 4);
    admission_order(SCHED_PRIORITY, o);
    CHECK(o[0] == 4 && o[1] == 3 && o[2] == 2 && o[3] == 1);
}

TEST(bounded_waiting_and_validation)
{
    struct harness h;
    REQUIRE(h_open(&h, 32, 4, 16, 2, 3, SCHED_FCFS) == 0);
    CHECK_EQ(add(&h, 1, 5, 1, 4, 2, 0, 0), 0);
    CHECK_EQ(add(&h, 2, 5, 1, 4, 2, 0, 0), ERR_LIMIT);
    CHECK_EQ(add(&h, 3, 5, 1, 4, 1, 0, 0), 0);
    CHECK_EQ(add(&h, 4, 5, 1, 4, 1, 0, 0), ERR_LIMIT);
    CHECK_EQ(add(&h, 1, 5, 1, 4, 1, 0, 0), ERR_STATE); /* id 1 is live */
    CHECK_EQ(scheduler_stats(h.s).n_waiting, 3);
    step(&h);                                              /* admits two: room again */
    CHECK_EQ(add(&h, 1, 5, 1, 4, 1, 0, 0), ERR_STATE);     /* id 1 still live */
    CHECK_EQ(add(&h, 5, 500, 1, 13, 1, 0, 0), ERR_RANGE);  /* > max_model_len */
    CHECK_EQ(add(&h, 5, 100, 1, 100, 1, 0, 0), ERR_RANGE); /* > the KV pool */
    CHECK_EQ(add(&h, 5, 0, 1, 4, 1, 0, 0), ERR_RANGE);
    CHECK_EQ(add(&h, 5, 5, 1, 0, 1, 0, 0), ERR_RANGE);
    CHECK_EQ(add(&h, 5, 5, 1, 4, 0, 0, 0), ERR_RANGE);
    CHECK_EQ(add(&h, 5, 5, 1, 4, 1, 0, 0), 0);
    run(&h);
    h_close(&h);
}

/* run_alone: request id's stream(s) when it runs alone with a big pool. */
static void run_alone(uint64_t id, size_t n, uint32_t seed, int32_t mt, uint32_t n_ch,
                      struct stream *out)
{
    struct harness h;
    REQUIRE(h_open(&h, 1024, 4, 64, 8, 8, SCHED_FCFS) == 0);
    REQUIRE(add(&h, id, n, seed, mt, n_ch, 0, 0) == 0);
    run(&h);
    memcpy(out, &h.st[id * MAXC], MAXC * sizeof *out);
    h_close(&h);
}

static void preemption_case(enum sched_policy pol)
{
    struct harness h;
    REQUIRE(h_open(&h, 24, 4, 32, 8, 16, pol) == 0);
    for (uint64_t id = 0; id < 8; id++)
        REQUIRE(add(&h, id, 10 + 5 * id, (uint32_t)id, 20 + (int32_t)id, 1, (int32_t)(id % 3),
                    id) == 0);
    run(&h);
    CHECK(scheduler_stats(h.s).n_preemptions > 0);
    for (uint64_t id = 0; id < 8; id++) {
        struct stream alone[MAXC];
        run_alone(id, 10 + 5 * id, (uint32_t)id, 20 + (int32_t)id, 1, alone);
        const struct stream *got = &h.st[id * MAXC];
        CHECK_EQ(got->n, 20 + (int)id);
        CHECK_EQ(got->finish, SCHED_LENGTH);
        CHECK(got->n == alone[0].n && memcmp(got->tok, alone[0].tok, sizeof got->tok) == 0);
    }
    h_close(&h);
}

TEST(preemption_same_outputs_fcfs)
{
    preemption_case(SCHED_FCFS);
}

TEST(preemption_same_outputs_priority)
{
    preemption_case(SCHED_PRIORITY);
}

TEST(prefix_cache_hits)
{
    struct harness h;
    REQUIRE(h_open(&h, 128, 4, 256, 4, 8, SCHED_FCFS) == 0);
    REQUIRE(add(&h, 1, 101, 9, 4, 1, 0, 0) == 0);
    step(&h);
    int32_t used1 = kv_blocks_stats(h.kb).in_use;
    REQUIRE(add(&h, 2, 101, 9, 4, 1, 0, 1) == 0);
    step(&h);
    CHECK_EQ(h.st[2 * MAXC].cached, 100);
    CHECK_EQ(h.st[1 * MAXC].cached, 0);
    CHECK(kv_blocks_stats(h.kb).in_use <= used1 + 2); /* 25 full blocks shared */
    CHECK(scheduler_stats(h.s).prefix_hit_rate > 0.4);
    run(&h);
    CHECK(memcmp(h.st[1 * MAXC].tok, h.st[2 * MAXC].tok, sizeof h.st[0].tok) == 0);
    h_close(&h);
}

TEST(abort_frees_blocks)
{
    struct harness h;
    REQUIRE(h_open(&h, 64, 4, 8, 2, 8, SCHED_FCFS) == 0);
    REQUIRE(add(&h, 1, 30, 1, 30, 1, 0, 0) == 0);
    REQUIRE(add(&h, 2, 30, 2, 30, 2, 0, 1) == 0);
    REQUIRE(add(&h, 3, 30, 3, 30, 1, 0, 2) == 0);
    for (int i = 0; i < 6; i++)
        step(&h);
    CHECK(kv_blocks_stats(h.kb).in_use > 0);
    CHECK_EQ(scheduler_abort(h.s, 2), 0); /* one choice running, one waiting */
    CHECK(kv_ok(h.kb));
    CHECK_EQ(scheduler_abort(h.s, 2), ERR_NOTFOUND);
    CHECK_EQ(scheduler_abort(h.s, 3), 0); /* waiting */
    CHECK_EQ(scheduler_abort(h.s, 1), 0); /* running */
    CHECK(kv_ok(h.kb));
    CHECK_EQ(kv_blocks_stats(h.kb).in_use, 0);
    CHECK_EQ(scheduler_stats(h.s).n_requests, 0);
    struct sched_step st;
    CHECK_EQ(scheduler_schedule(h.s, &st), 0);
    CHECK_EQ(st.n_tokens, 0);
    h_close(&h);
}

TEST(n_choices)
{
    struct harness h;
    REQUIRE(h_open(&h, 64, 4, 64, 8, 8, SCHED_FCFS) == 0);
    REQUIRE(add(&h, 7, 41, 3, 12, 3, 0, 0) == 0);
    run(&h);
    struct stream alone[MAXC];
    run_alone(7, 41, 3, 12, 3, alone);
    for (int c = 0; c < 3; c++) {
        const struct stream *g = &h.st[7 * MAXC + c];
        CHECK_EQ(g->n, 12);
        CHECK(memcmp(g->tok, alone[c].tok, sizeof g->tok) == 0);
        CHECK_EQ(g->finish, SCHED_LENGTH);
    }
    CHECK(memcmp(h.st[7 * MAXC].tok, h.st[7 * MAXC + 1].tok, sizeof h.st[0].tok) != 0);
    CHECK_EQ(h.n_done, 1);
    CHECK(kv_blocks_stats(h.kb).hit_tokens >= 80); /* choices 1 and 2 share 10 blocks */
    h_close(&h);
}

/* commit_one: schedules a single-sequence step and commits token t; returns its event. */
static struct sched_event commit_one(struct harness *h, int32_t t)
{
    struct sched_step st;
    struct sched_events ev;
    struct sched_event none = {0};
    if (scheduler_schedule(h->s, &st) || st.n_logits != 1 || scheduler_commit(h->s, &st, &t, &ev) ||
        ev.n != 1)
        return none;
    return ev.ev[0];
}

TEST(stop_conditions)
{
    struct harness h;
    REQUIRE(h_open(&h, 64, 4, 64, 4, 8, SCHED_FCFS) == 0);
    int32_t prompt[4] = {10, 11, 12, 13}, stops[1] = {77};
    struct sampling_params p = sampling_params_default();
    p.max_tokens = 10;
    p.min_tokens = 2;
    p.stop_token_ids = stops;
    p.n_stop_token_ids = 1;
    struct sched_request r = {.id = 1, .prompt = prompt, .n_prompt = 4, .params = &p, .n = 1};
    REQUIRE(scheduler_add(h.s, &r, NULL, 0) == 0);
    stops[0] = 0;                                           /* the scheduler copied it */
    CHECK_EQ(commit_one(&h, 2).finish, SCHED_NOT_FINISHED); /* EOS before min_tokens */
    struct sched_event e = commit_one(&h, 2);
    CHECK_EQ(e.finish, SCHED_STOP);
    CHECK_EQ(e.stop_reason, -1);
    CHECK(e.request_done);
    r.id = 2;
    stops[0] = 77;
    REQUIRE(scheduler_add(h.s, &r, NULL, 0) == 0);
    commit_one(&h, 5);
    e = commit_one(&h, 77);
    CHECK_EQ(e.finish, SCHED_STOP);
    CHECK_EQ(e.stop_reason, 77);
    CHECK_EQ(e.n_generated, 2);
    r.id = 3;
    p.ignore_eos = true;
    p.max_tokens = 3;
    REQUIRE(scheduler_add(h.s, &r, NULL, 0) == 0);
    CHECK_EQ(commit_one(&h, 2).finish, SCHED_NOT_FINISHED);
    CHECK_EQ(commit_one(&h, 2).finish, SCHED_NOT_FINISHED);
    CHECK_EQ(commit_one(&h, 2).finish, SCHED_LENGTH);
    CHECK_EQ(kv_blocks_stats(h.kb).in_use, 0);
    h_close(&h);
}

static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

TEST(random_budget_and_cap)
{
    struct harness h;
    REQUIRE(h_open(&h, 200, 8, 48, 6, 32, SCHED_FCFS) == 0);
    for (uint64_t id = 0; id < 60; id++)
        if (add(&h, id, 1 + rnd(200), rnd(5), 1 + (int32_t)rnd(40), 1 + rnd(3), 0, id) != 0)
            step(&h);
    run(&h);
    CHECK(h.max_step_tokens <= 48);
    h_close(&h);
}

TEST(random_ops_10000)
{
    struct harness h;
    REQUIRE(h_open(&h, 48, 4, 24, 5, 12, SCHED_PRIORITY) == 0);
    uint64_t next_id = 0;
    int added = 0, aborted = 0;
    for (int op = 0; op < 10000; op++) {
        uint32_t k = rnd(10);
        if (k < 3 && next_id < MAXR) {
            int rc = add(&h, next_id, 1 + rnd(60), rnd(4), 1 + (int32_t)rnd(30), 1 + rnd(3),
                         (int32_t)rnd(3), (uint64_t)op);
            CHECK(rc == 0 || rc == ERR_LIMIT || rc == ERR_RANGE);
            added += rc == 0;
            next_id++;
        } else if (k < 4 && next_id > 0) {
            aborted += scheduler_abort(h.s, rnd((uint32_t)next_id)) == 0;
        } else {
            step(&h);
        }
        CHECK(kv_ok(h.kb));
    }
    run(&h);
    CHECK(added > 100 && aborted > 10);
    CHECK(scheduler_stats(h.s).n_preemptions > 0);
    h_close(&h);
}

int main(int argc, char **argv)
{
    return test_main(argc, argv);
}
