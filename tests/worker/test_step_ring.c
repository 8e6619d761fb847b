/*
 * test_step_ring: tensor parallelism as the engine will run it: rank 0 publishes each step
 * in the ring, a forked rank process runs it, and their forwards meet in the shared-memory
 * all-reduce. Greedy generation over several mixed steps on stories260K must give the same
 * tokens as one process alone. Also: a dead rank 0 and oversized batches.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/err.h"
#include "tests/test.h"
#include "worker/backend.h"
#include "worker/model.h"
#include "worker/shm_allreduce.h"
#include "worker/step_ring.h"

enum { SEQS = 2, STEPS = 12, MAXB = 8 };

static const char *fixtures(void)
{
    const char *f = getenv("KILN_FIXTURES");
    return f ? f : "../shared/fixtures";
}

static struct model *load(struct backend **be, int rank, int tp, struct shm_allreduce *a)
{
    char dir[512], err[256];
    snprintf(dir, sizeof dir, "%s/models/stories260K", fixtures());
    if (backend_cpu_new(1, BACKEND_SIMD_AUTO, be))
        return NULL;
    struct model_opts o = {.backend = *be,
                           .block_size = 16,
                           .num_blocks = SEQS * MAXB,
                           .max_batch_tokens = 64,
                           .max_seqs = SEQS,
                           .max_logits = SEQS,
                           .max_model_len = MAXB * 16,
                           .tp_rank = rank,
                           .tp_size = tp,
                           .all_reduce = a ? shm_allreduce_model_hook : NULL,
                           .all_reduce_ctx = a};
    struct model *m = NULL;
    if (model_load(dir, &o, &m, err, sizeof err))
        fprintf(stderr, "    rank %d: %s\n", rank, err);
    return m;
}

/* generate: two sequences, prompts of 30 and 20 tokens in the first step, then greedy
 * decode steps for both; out[s][k] the k-th generated token of s. Steps go through ring when
 * given. */
static int generate(struct model *m, struct step_ring *ring, int32_t out[SEQS][STEPS])
{
    int32_t seq_ids[SEQS][64], len[SEQS] = {30, 20}, tables[SEQS * MAXB];
    for (int s = 0; s < SEQS; s++)
        for (int i = 0; i < 64; i++)
            seq_ids[s][i] = i ? (int32_t)(3 + (i * 41 + s * 97) % 500) : 1;
    for (int i = 0; i < SEQS * MAXB; i++)
        tables[i] = (i * 3 + 1) % (SEQS * MAXB);
    int32_t start[SEQS] = {0, 0};
    for (int k = 0; k < STEPS; k++) {
        int32_t ids[64], pos[64], seq_of[64], slots[64], rows[SEQS];
        size_t n = 0;
        for (int s = 0; s < SEQS; s++) {
            for (int p = start[s]; p < len[s]; p++, n++) {
                ids[n] = seq_ids[s][p], pos[n] = p, seq_of[n] = s;
                slots[n] = tables[s * MAXB + p / 16] * 16 + p % 16;
            }
            rows[s] = (int32_t)n - 1;
        }
        struct model_batch b = {n, ids, pos, seq_of, slots, SEQS, tables, MAXB, SEQS, rows};
        float logits[SEQS][512];
        char err[256];
        if ((ring && step_ring_publish(ring, &b)) ||
            model_forward(m, &b, &logits[0][0], err, sizeof err))
            return 1;
        for (int s = 0; s < SEQS; s++) {
            int best = 0;
            for (int v = 1; v < 512; v++)
                best = logits[s][v] > logits[s][best] ? v : best;
            out[s][k] = best;
            start[s] = len[s];
            seq_ids[s][len[s]++] = best;
        }
    }
    return 0;
}

/* rank_main: the other rank's process: run published steps until the ring stops. */
static int rank_main(void *ring_region, void *ar_region)
{
    struct step_ring *ring;
    struct shm_allreduce *a;
    struct backend *be;
    if (step_ring_attach(ring_region, 1, &ring) || shm_allreduce_attach(ar_region, 1, &a))
        return 2;
    struct model *m = load(&be, 1, 2, a);
    if (!m)
        return 3;
    int rc;
    struct model_batch b;
    char err[256];
    while ((rc = step_ring_next(ring, &b)) == 1) {
        if (model_forward(m, &b, NULL, err, sizeof err))
            return 4;
        step_ring_done(ring);
    }
    model_free(m);
    be->ops->destroy(be);
    return rc == 0 ? 0 : 5;
}

TEST(two_rank_processes_generate_what_one_process_does)
{
    int32_t alone[SEQS][STEPS], tp[SEQS][STEPS];
    struct backend *be;
    struct model *m = load(&be, 0, 1, NULL);
    REQUIRE(m != NULL);
    REQUIRE(generate(m, NULL, alone) == 0);
    model_free(m);
    be->ops->destroy(be);

    void *ring_region, *ar_region;
    REQUIRE(step_ring_create(2, 64, SEQS, MAXB, SEQS, &ring_region, NULL) == 0);
    REQUIRE(shm_allreduce_create(2, 64 * 64, &ar_region, NULL) == 0);
    pid_t kid = fork();
    if (kid == 0)
        _exit(rank_main(ring_region, ar_region));
    struct step_ring *ring;
    struct shm_allreduce *a;
    REQUIRE(step_ring_attach(ring_region, 0, &ring) == 0);
    REQUIRE(shm_allreduce_attach(ar_region, 0, &a) == 0);
    m = load(&be, 0, 2, a);
    REQUIRE(m != NULL);
    CHECK(generate(m, ring, tp) == 0);
    step_ring_stop(ring);
    int st;
    waitpid(kid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(memcmp(alone, tp, sizeof alone) == 0);
    model_free(m);
    be->ops->destroy(be);
    step_ring_detach(ring);
    shm_allreduce_detach(a);
    step_ring_unmap(ring_region);
    shm_allreduce_unmap(ar_region);
}

TEST(a_rank_waiting_for_a_dead_rank_0_fails_instead_of_hanging)
{
    void *region;
    REQUIRE(step_ring_create(2, 4, 1, 1, 1, &region, NULL) == 0);
    int sync[2];
    REQUIRE(pipe(sync) == 0);
    pid_t zero = fork();
    if (zero == 0) { /* rank 0: attaches, says so, dies */
        struct step_ring *r;
        int rc = step_ring_attach(region, 0, &r);
        (void)!write(sync[1], "x", 1);
        _exit(rc ? 1 : 0);
    }
    char c;
    (void)!read(sync[0], &c, 1);
    pid_t one = fork();
    if (one == 0) {
        struct step_ring *r;
        struct model_batch b;
        if (step_ring_attach(region, 1, &r))
            _exit(1);
        _exit(step_ring_next(r, &b) == ERR_STATE ? 0 : 2);
    }
    int st;
    waitpid(one, &st, 0); /* rank 0 is a zombie until reaped below: still dead */
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    waitpid(zero, &st, 0);
    close(sync[0]), close(sync[1]);
    step_ring_unmap(region);
}

TEST(publish_refuses_a_batch_larger_than_the_ring)
{
    void *region;
    REQUIRE(step_ring_create(1, 4, 1, 2, 1, &region, NULL) == 0);
    struct step_ring *r;
    REQUIRE(step_ring_attach(region, 0, &r) == 0);
    int32_t v[8] = {0}, row = 0;
    struct model_batch b = {5, v, v, v, v, 1, v, 2, 1, &row};
    CHECK_EQ(step_ring_publish(r, &b), ERR_RANGE);
    b.n_tokens = 4;
    CHECK_EQ(step_ring_publish(r, &b), 0);
    b.max_blocks = 3;
    CHECK_EQ(step_ring_publish(r, &b), ERR_RANGE);
    CHECK(step_ring_bytes(0, 1, 1, 1) == 0);
    step_ring_detach(r);
    step_ring_unmap(region);
}

int main(int argc, char **argv)
{
    return test_main(argc, argv);
}
