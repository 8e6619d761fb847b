/*
 * test_shm_allreduce: the cross-process all-reduce with real forked processes: sums,
 * repeated rounds, a peer that dies, and tensor-parallel stories260K across two processes
 * against one process.
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

/* rank_sums: ranks rounds of all-reduce over n floats; 0 when every result was right. */
static int rank_sums(void *region, int rank, int n_ranks, size_t n, int rounds)
{
    struct shm_allreduce *a;
    if (shm_allreduce_attach(region, rank, &a))
        return 1;
    float *buf = malloc(n * sizeof(float));
    int bad = 0;
    for (int k = 0; k < rounds && !bad; k++) {
        for (size_t i = 0; i < n; i++)
            buf[i] = (float)(rank * 1000 + (int)i + k);
        if (shm_allreduce_run(a, buf, n))
            bad = 1;
        for (size_t i = 0; i < n && !bad; i++) { /* sum over r of r*1000 + i + k */
            float want = (float)(1000 * n_ranks * (n_ranks - 1) / 2 + n_ranks * ((int)i + k));
            bad = buf[i] != want;
        }
    }
    free(buf);
    shm_allreduce_detach(a);
    return bad;
}

TEST(three_processes_sum_over_many_rounds)
{
    size_t sizes[3] = {1, 7, 1000};
    for (int s = 0; s < 3; s++) {
        void *region;
        REQUIRE(shm_allreduce_create(3, 1000, &region, NULL) == 0);
        pid_t kids[2];
        for (int r = 1; r <= 2; r++)
            if ((kids[r - 1] = fork()) == 0)
                _exit(rank_sums(region, r, 3, sizes[s], 300));
        CHECK_EQ(rank_sums(region, 0, 3, sizes[s], 300), 0);
        for (int r = 0; r < 2; r++) {
            int st;
            waitpid(kids[r], &st, 0);
            CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        }
        shm_allreduce_unmap(region);
    }
}

TEST(a_dead_peer_fails_the_group_instead_of_hanging)
{
    void *region;
    REQUIRE(shm_allreduce_create(2, 16, &region, NULL) == 0);
    struct shm_allreduce *a;
    REQUIRE(shm_allreduce_attach(region, 0, &a) == 0);
    pid_t kid = fork();
    if (kid == 0) {
        struct shm_allreduce *b;
        _exit(shm_allreduce_attach(region, 1, &b) ? 1 : 0); /* attach, then die */
    }
    int st;
    waitpid(kid, &st, 0); /* reaped */
    float buf[16] = {0};
    CHECK_EQ(shm_allreduce_run(a, buf, 16), ERR_STATE);
    CHECK_EQ(shm_allreduce_run(a, buf, 17), ERR_RANGE);
    shm_allreduce_detach(a);
    shm_allreduce_unmap(region);

    /* the same with the dead child not reaped yet (a zombie) */
    REQUIRE(shm_allreduce_create(2, 16, &region, NULL) == 0);
    REQUIRE(shm_allreduce_attach(region, 0, &a) == 0);
    int sync[2];
    REQUIRE(pipe(sync) == 0);
    kid = fork();
    if (kid == 0) {
        struct shm_allreduce *b;
        int rc = shm_allreduce_attach(region, 1, &b);
        (void)!write(sync[1], "x", 1);
        _exit(rc ? 1 : 0);
    }
    char c;
    (void)!read(sync[0], &c, 1);
    CHECK_EQ(shm_allreduce_run(a, buf, 16), ERR_STATE);
    waitpid(kid, &st, 0);
    close(sync[0]), close(sync[1]);
    shm_allreduce_detach(a);
    shm_allreduce_unmap(region);
}

static const char *fixtures(void)
{
    const char *f = getenv("KILN_FIXTURES");
    return f ? f : "../shared/fixtures";
}

/* stories_logits: the last-token logits of ids on stories260K as rank/tp (tp 1: alone). */
static int stories_logits(int rank, int tp, void *region, const int32_t *ids, size_t n,
                          float *logits)
{
    char dir[512], err[256];
    snprintf(dir, sizeof dir, "%s/models/stories260K", fixtures());
    struct backend *be;
    struct shm_allreduce *a = NULL;
    if (backend_cpu_new(1, BACKEND_SIMD_AUTO, &be) ||
        (region && shm_allreduce_attach(region, rank, &a)))
        return 1;
    struct model_opts o = {.backend = be,
                           .block_size = 16,
                           .num_blocks = 4,
                           .max_batch_tokens = 64,
                           .max_seqs = 1,
                           .tp_rank = rank,
                           .tp_size = tp,
                           .all_reduce = a ? shm_allreduce_model_hook : NULL,
                           .all_reduce_ctx = a};
    struct model *m;
    int rc = model_load(dir, &o, &m, err, sizeof err);
    if (rc == 0) {
        int32_t pos[64], seq[64], table[32] = {0, 1, 2, 3}, last = (int32_t)n - 1;
        for (size_t i = 0; i < n; i++)
            pos[i] = (int32_t)i, seq[i] = 0;
        struct model_batch b = {n, ids, pos, seq, pos, 1, table, model_max_blocks(m), 1, &last};
        rc = model_forward(m, &b, logits, err, sizeof err);
        model_free(m);
    }
    if (rc)
        fprintf(stderr, "    rank %d: %s\n", rank, err);
    shm_allreduce_detach(a);
    be->ops->destroy(be);
    return rc ? 1 : 0;
}

TEST(stories260k_across_two_processes_matches_one)
{
    int32_t ids[50];
    for (int i = 0; i < 50; i++)
        ids[i] = i ? (int32_t)(3 + (i * 53) % 500) : 1;
    float alone[512], mine[512], theirs[512];
    REQUIRE(stories_logits(0, 1, NULL, ids, 50, alone) == 0);
    void *region;
    REQUIRE(shm_allreduce_create(2, 64 * 64, &region, NULL) == 0);
    int out[2];
    REQUIRE(pipe(out) == 0);
    pid_t kid = fork();
    if (kid == 0) {
        int rc = stories_logits(1, 2, region, ids, 50, theirs);
        ssize_t w = write(out[1], theirs, sizeof theirs);
        _exit(rc || w != (ssize_t)sizeof theirs);
    }
    CHECK(stories_logits(0, 2, region, ids, 50, mine) == 0);
    size_t got = 0;
    while (got < sizeof theirs) {
        ssize_t r = read(out[0], (char *)theirs + got, sizeof theirs - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    int st;
    waitpid(kid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    REQUIRE(got == sizeof theirs);
    CHECK(memcmp(mine, theirs, sizeof mine) == 0); /* both ranks hold the same result */
    double worst = 0, scale = 0;
    for (int v = 0; v < 512; v++) {
        worst = fmax(worst, fabs((double)mine[v] - alone[v]));
        scale = fmax(scale, fabs((double)alone[v]));
    }
    if (worst > 1e-5 * scale)
        TEST_FAIL_AT("two processes differ from one by %g (max |logit| %g)", worst, scale);
    close(out[0]), close(out[1]);
    shm_allreduce_unmap(region);
}

int main(int argc, char **argv)
{
    return test_main(argc, argv);
}
