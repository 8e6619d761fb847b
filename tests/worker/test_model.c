/*
 * test_model: model_load and model_forward in C: the stories260K first-step logits against
 * the golden file recorded from the real model, the batch checks of model_forward, and
 * the load options. (tests/model/ compares every logit with a NumPy reference.)
 */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "tests/test.h"
#include "worker/backend.h"
#include "worker/model.h"

static const char *fixtures(void)
{
    const char *f = getenv("KILN_FIXTURES");
    return f ? f : "../shared/fixtures";
}

struct fixture {
    struct backend *be;
    struct model *m;
    char dir[512];
};

static int open_stories(struct fixture *f, int block_size, int num_blocks)
{
    snprintf(f->dir, sizeof f->dir, "%s/models/stories260K", fixtures());
    if (backend_cpu_new(2, BACKEND_SIMD_AUTO, &f->be))
        return -1;
    struct model_opts o = {.backend = f->be,
                           .block_size = block_size,
                           .num_blocks = num_blocks,
                           .max_batch_tokens = 64,
                           .max_seqs = 4,
                           .max_logits = 4};
    char err[256];
    int rc = model_load(f->dir, &o, &f->m, err, sizeof err);
    if (rc)
        fprintf(stderr, "    %s\n", err);
    return rc;
}

static void close_fixture(struct fixture *f)
{
    model_free(f->m);
    if (f->be)
        f->be->ops->destroy(f->be);
}

TEST(stories260k_first_step_logits_match_the_golden_file)
{
    struct fixture f = {0};
    REQUIRE(open_stories(&f, 16, 8) == 0);
    char path[600];
    snprintf(path, sizeof path, "%s/golden/golden_prompt_tom_and_sue.json", f.dir);
    json_t *g = json_load_file(path, 0, NULL);
    REQUIRE(g != NULL);
    json_t *ids = json_object_get(g, "prompt_ids"),
           *top = json_object_get(g, "first_step_logits_top5");
    size_t n = json_array_size(ids);
    REQUIRE(n > 16 && n <= 64);
    int32_t id[64], pos[64], seq[64], slot[64], table[32], last = (int32_t)n - 1;
    for (int i = 0; i < 32; i++)
        table[i] = (i * 5 + 3) % 8; /* blocks in scrambled order */
    for (size_t i = 0; i < n; i++) {
        id[i] = (int32_t)json_integer_value(json_array_get(ids, i));
        pos[i] = (int32_t)i, seq[i] = 0;
        slot[i] = table[i / 16] * 16 + (int32_t)(i % 16);
    }
    struct model_batch b = {n, id, pos, seq, slot, 1, table, model_max_blocks(f.m), 1, &last};
    float logits[512];
    char err[256];
    REQUIRE(model_forward(f.m, &b, logits, err, sizeof err) == 0);
    for (size_t k = 0; k < json_array_size(top); k++) {
        json_t *pair = json_array_get(top, k);
        int want_id = (int)json_integer_value(json_array_get(pair, 0));
        double want = json_real_value(json_array_get(pair, 1));
        if (fabs(logits[want_id] - want) > 1e-3)
            TEST_FAIL_AT("logit of %d: %g, golden %g", want_id, (double)logits[want_id], want);
        int rank = 0; /* its rank among all logits */
        for (int v = 0; v < 512; v++)
            rank += logits[v] > logits[want_id];
        CHECK_EQ(rank, (int)k);
    }
    json_decref(g);
    close_fixture(&f);
}

/* expect_refused: b must fail with ERR_RANGE and a message containing what. */
static void expect_refused(struct model *m, const struct model_batch *b, const char *what)
{
    float logits[4 * 512];
    char err[256] = "";
    int rc = model_forward(m, b, logits, err, sizeof err);
    CHECK_EQ(rc, ERR_RANGE);
    if (!strstr(err, what))
        TEST_FAIL_AT("message \"%s\" does not say \"%s\"", err, what);
}

TEST(forward_refuses_inconsistent_batches)
{
    struct fixture f = {0};
    REQUIRE(open_stories(&f, 16, 4) == 0);
    int32_t id[2] = {1, 400}, pos[2] = {0, 1}, seq[2] = {0, 0}, slot[2] = {16, 17}, row = 1;
    int32_t table[32] = {1, 2};
    size_t mb = model_max_blocks(f.m);
    struct model_batch good = {2, id, pos, seq, slot, 1, table, mb, 1, &row}, b;
    float logits[512];
    char err[256];
    CHECK(model_forward(f.m, &good, logits, err, sizeof err) == 0);

    b = good, b.ids = (int32_t[]){1, 512};
    expect_refused(f.m, &b, "outside the vocabulary");
    b = good, b.pos = (int32_t[]){0, 512};
    expect_refused(f.m, &b, "beyond the model length");
    b = good, b.pos = (int32_t[]){0, -1};
    expect_refused(f.m, &b, "beyond the model length");
    b = good, b.seq_of = (int32_t[]){0, 1};
    expect_refused(f.m, &b, "not in the batch");
    b = good, b.block_tables = (int32_t[32]){4, 0};
    expect_refused(f.m, &b, "outside the pool");
    b = good, b.slot_mapping = (int32_t[]){16, 18};
    expect_refused(f.m, &b, "disagrees with its block table");
    b = good, b.logit_rows = (int32_t[]){2};
    expect_refused(f.m, &b, "not a token of the batch");
    b = good, b.n_tokens = 65;
    expect_refused(f.m, &b, "tokens");
    b = good, b.n_tokens = 0;
    expect_refused(f.m, &b, "tokens");
    b = good, b.n_seqs = 5;
    expect_refused(f.m, &b, "sequences");
    b = good, b.n_logits = 5;
    expect_refused(f.m, &b, "logit rows");
    close_fixture(&f);
}

TEST(load_refuses_bad_options_and_missing_directories)
{
    struct backend *be;
    REQUIRE(backend_cpu_new(1, BACKEND_SIMD_AUTO, &be) == 0);
    char dir[512], err[256];
    snprintf(dir, sizeof dir, "%s/models/stories260K", fixtures());
    struct model *m = NULL;
    struct model_opts o = {
        .backend = be, .block_size = 0, .num_blocks = 4, .max_batch_tokens = 8, .max_seqs = 1};
    CHECK_EQ(model_load(dir, &o, &m, err, sizeof err), ERR_RANGE);
    o.block_size = 16, o.max_model_len = 100000;
    CHECK_EQ(model_load(dir, &o, &m, err, sizeof err), ERR_RANGE);
    CHECK(strstr(err, "max_model_len") != NULL);
    o.max_model_len = 0;
    CHECK_EQ(model_load("/nonexistent-kiln-model", &o, &m, err, sizeof err), ERR_IO);
    CHECK(strstr(err, "config.json") != NULL);
    CHECK(m == NULL);
    be->ops->destroy(be);
}

TEST(dummy_load_builds_the_config_shapes_and_runs)
{
    struct backend *be;
    REQUIRE(backend_cpu_new(2, BACKEND_SIMD_AUTO, &be) == 0);
    char dir[512], err[256];
    snprintf(dir, sizeof dir, "%s/shapes/qwen2.5-0.5b-instruct", fixtures());
    struct model *m = NULL;
    struct model_opts o = {.backend = be,
                           .dummy = true,
                           .seed = 3,
                           .dummy_dtype = KN_BF16,
                           .block_size = 16,
                           .num_blocks = 2,
                           .max_batch_tokens = 4,
                           .max_seqs = 1,
                           .max_model_len = 32};
    REQUIRE(model_load(dir, &o, &m, err, sizeof err) == 0);
    const struct model_config *c = model_config(m);
    /* every matrix in bf16 (2 bytes a value; rows padded to 16) plus fp32 norms and biases */
    size_t hid = (size_t)c->hidden_size, ff = (size_t)c->intermediate_size;
    size_t layer =
        hid * (size_t)c->head_dim * (2 * (size_t)c->num_heads + 2 * (size_t)c->num_kv_heads) +
        3 * hid * ff;
    size_t values = layer * (size_t)c->num_layers + (size_t)c->vocab_size * hid;
    CHECK(model_weight_bytes(m) >= values * 2);
    CHECK(model_weight_bytes(m) < values * 2 + values / 20);
    int32_t id[3] = {1, 2, 3}, pos[3] = {0, 1, 2}, seq[3] = {0}, slot[3] = {0, 1, 2}, row = 2;
    int32_t table[2] = {0, 1};
    struct model_batch b = {3, id, pos, seq, slot, 1, table, 2, 1, &row};
    float *logits = malloc((size_t)c->vocab_size * sizeof(float));
    CHECK(model_forward(m, &b, logits, err, sizeof err) == 0);
    int finite = 1;
    for (int v = 0; v < c->vocab_size; v++)
        finite &= isfinite(logits[v]);
    CHECK(finite);
    free(logits);
    model_free(m);
    be->ops->destroy(be);
}

/* An in-process all-reduce for two ranks, the protocol the shared-memory one follows: each
 * rank publishes its buffer, then sums its half of the elements into both buffers. */
struct tp_group {
    pthread_barrier_t bar;
    float *buf[2];
};

struct tp_rank {
    struct tp_group *g;
    int rank;
    struct model *m;
    const int32_t *ids;
    size_t n;
    float logits[512];
    int rc;
};

static void tp_all_reduce(void *ctx, float *buf, size_t n)
{
    struct tp_rank *r = ctx;
    r->g->buf[r->rank] = buf;
    pthread_barrier_wait(&r->g->bar);
    for (size_t i = n / 2 * (size_t)r->rank; i < (r->rank ? n : n / 2); i++) {
        float s = r->g->buf[0][i] + r->g->buf[1][i];
        r->g->buf[0][i] = s, r->g->buf[1][i] = s;
    }
    pthread_barrier_wait(&r->g->bar);
}

/* run_prompt: the prompt in one step, logits of its last token. */
static int run_prompt(struct model *m, const int32_t *ids, size_t n, float *logits)
{
    int32_t pos[64], seq[64], slot[64], table[32] = {0, 1, 2, 3}, last = (int32_t)n - 1;
    for (size_t i = 0; i < n; i++)
        pos[i] = (int32_t)i, seq[i] = 0, slot[i] = (int32_t)i;
    struct model_batch b = {n, ids, pos, seq, slot, 1, table, model_max_blocks(m), 1, &last};
    char err[256];
    return model_forward(m, &b, logits, err, sizeof err);
}

static void *tp_rank_main(void *arg)
{
    struct tp_rank *r = arg;
    r->rc = run_prompt(r->m, r->ids, r->n, r->logits);
    return NULL;
}

TEST(tensor_parallel_two_ranks_match_one)
{
    struct fixture one = {0};
    REQUIRE(open_stories(&one, 16, 8) == 0);
    int32_t ids[40];
    for (int i = 0; i < 40; i++)
        ids[i] = i ? (int32_t)(3 + (i * 37) % 500) : 1;
    float want[512];
    REQUIRE(run_prompt(one.m, ids, 40, want) == 0);

    struct tp_group g;
    pthread_barrier_init(&g.bar, NULL, 2);
    struct tp_rank r[2];
    struct backend *be[2];
    char err[256];
    for (int k = 0; k < 2; k++) {
        r[k] = (struct tp_rank){.g = &g, .rank = k, .ids = ids, .n = 40};
        REQUIRE(backend_cpu_new(1, BACKEND_SIMD_AUTO, &be[k]) == 0);
        struct model_opts o = {.backend = be[k],
                               .block_size = 16,
                               .num_blocks = 8,
                               .max_batch_tokens = 64,
                               .max_seqs = 4,
                               .max_logits = 4,
                               .tp_rank = k,
                               .tp_size = 2,
                               .all_reduce = tp_all_reduce,
                               .all_reduce_ctx = &r[k]};
        REQUIRE(model_load(one.dir, &o, &r[k].m, err, sizeof err) == 0);
    }
    CHECK(model_weight_bytes(r[0].m) < model_weight_bytes(one.m));
    pthread_t t;
    pthread_create(&t, NULL, tp_rank_main, &r[1]);
    tp_rank_main(&r[0]);
    pthread_join(t, NULL);
    CHECK(r[0].rc == 0 && r[1].rc == 0);
    double worst = 0, scale = 0;
    for (int v = 0; v < 512; v++) {
        worst = fmax(worst, fabs((double)r[0].logits[v] - want[v]));
        scale = fmax(scale, fabs((double)want[v]));
    }
    if (worst > 1e-5 * scale)
        TEST_FAIL_AT("TP=2 logits differ from TP=1 by %g (max |logit| %g)", worst, scale);
    CHECK(memcmp(r[0].logits, r[1].logits, sizeof r[0].logits) == 0);
    for (int k = 0; k < 2; k++) {
        model_free(r[k].m);
        be[k]->ops->destroy(be[k]);
    }
    pthread_barrier_destroy(&g.bar);
    close_fixture(&one);
}

TEST(tensor_parallel_size_must_divide_the_heads)
{
    struct backend *be;
    REQUIRE(backend_cpu_new(1, BACKEND_SIMD_AUTO, &be) == 0);
    char dir[512], err[256];
    snprintf(dir, sizeof dir, "%s/models/stories260K", fixtures());
    struct model *m = NULL;
    struct model_opts o = {.backend = be,
                           .block_size = 16,
                           .num_blocks = 4,
                           .max_batch_tokens = 8,
                           .max_seqs = 1,
                           .tp_size = 3,
                           .all_reduce = tp_all_reduce};
    CHECK_EQ(model_load(dir, &o, &m, err, sizeof err), ERR_UNSUPPORTED);
    CHECK(strstr(err, "does not divide") != NULL);
    o.tp_size = 2, o.all_reduce = NULL;
    CHECK_EQ(model_load(dir, &o, &m, err, sizeof err), ERR_INVAL);
    CHECK(m == NULL);
    be->ops->destroy(be);
}

int main(int argc, char **argv)
{
    return test_main(argc, argv);
}
