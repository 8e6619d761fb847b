/*
 * test_kv_blocks: the KV block manager: allocation, ERR_LIMIT without side effects, prefix
 * hits and the chained hash, forced hash collisions, LRU eviction, fork, prefix caching
 * off, a pointer-free region (memcpy), and 10,000 random operations checked against a
 * shadow KV cache. kv_blocks_check runs after every operation.
 */
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "tests/test.h"
#include "worker/kv_blocks.h"

#define BS 4 /* block size of most tests */

struct fx {
    void *mem;
    size_t bytes;
    struct kv_blocks *kb;
};

static int fx_open(struct fx *f, int32_t n_blocks, int32_t max_seqs, int32_t max_bps,
                   int32_t hash_bits, bool no_cache)
{
    struct kv_blocks_config c = {.n_blocks = n_blocks,
                                 .block_size = BS,
                                 .max_seqs = max_seqs,
                                 .max_blocks_per_seq = max_bps,
                                 .disable_prefix_caching = no_cache,
                                 .test_hash_bits = hash_bits};
    f->bytes = kv_blocks_bytes(&c);
    f->mem = f->bytes ? malloc(f->bytes) : NULL;
    if (!f->mem)
        return ERR_NOMEM;
    return kv_blocks_init(f->mem, f->bytes, &c, &f->kb);
}

static void fx_close(struct fx *f)
{
    free(f->mem);
}

/* checked: kv_blocks_check passes (printing the violation otherwise). */
static int checked(const struct kv_blocks *kb)
{
    char err[256];
    int rc = kv_blocks_check(kb, err, sizeof err);
    if (rc)
        fprintf(stderr, "    kv_blocks_check: %s\n", err);
    return rc == 0;
}

/* seq_add: a sequence for prompt p (n tokens) with its uncached part appended. */
static int seq_add(struct kv_blocks *kb, const int32_t *p, size_t n, int32_t *slot, size_t *cached)
{
    int rc = kv_blocks_seq_new(kb, p, n, slot, cached);
    if (rc)
        return rc;
    return kv_blocks_append(kb, *slot, n - *cached, p + *cached);
}

static void fill(int32_t *t, size_t n, int32_t base)
{
    for (size_t i = 0; i < n; i++)
        t[i] = base + (int32_t)i;
}

TEST(init_rejects_bad_configs_and_short_buffers)
{
    struct kv_blocks_config c = {
        .n_blocks = 8, .block_size = 4, .max_seqs = 2, .max_blocks_per_seq = 4};
    size_t n = kv_blocks_bytes(&c);
    CHECK(n > 0);
    uint64_t *mem = calloc(n / 8 + 1, 8);
    REQUIRE(mem != NULL);
    struct kv_blocks *kb = NULL;
    CHECK_EQ(kv_blocks_init(mem, n - 1, &c, &kb), ERR_LIMIT);
    CHECK_EQ(kv_blocks_init((char *)mem + 4, n, &c, &kb), ERR_INVAL);
    CHECK(kv_blocks_attach(mem, n) == NULL); /* not initialised yet */
    struct kv_blocks_config bad = c;
    bad.block_size = 0;
    CHECK_EQ(kv_blocks_bytes(&bad), 0);
    CHECK_EQ(kv_blocks_init(mem, n, &bad, &kb), ERR_RANGE);
    bad = c;
    bad.test_hash_bits = 64;
    CHECK_EQ(kv_blocks_init(mem, n, &bad, &kb), ERR_RANGE);
    REQUIRE(kv_blocks_init(mem, n, &c, &kb) == 0);
    CHECK(kv_blocks_attach(mem, n) == kb);
    CHECK(kv_blocks_attach(mem, n - 1) == NULL);
    CHECK(checked(kb));
    struct kv_blocks_stats st = kv_blocks_stats(kb);
    CHECK_EQ(st.free, 8);
    CHECK_EQ(st.in_use, 0);
    free(mem);
}

TEST(basic_allocate_append_free)
{
    struct fx f;
    REQUIRE(fx_open(&f, 8, 4, 4, 0, false) == 0);
    int32_t s;
    size_t cached = 99;
    REQUIRE(kv_blocks_seq_new(f.kb, NULL, 0, &s, &cached) == 0);
    CHECK_EQ(cached, 0);
    CHECK(checked(f.kb));
    int32_t ids[10];
    fill(ids, 10, 100);
    REQUIRE(kv_blocks_append(f.kb, s, 5, ids) == 0);
    CHECK(checked(f.kb));
    CHECK_EQ(kv_blocks_seq_len(f.kb, s), 5);
    CHECK_EQ(kv_blocks_seq_n_blocks(f.kb, s), 2);
    REQUIRE(kv_blocks_append(f.kb, s, 3, ids + 5) == 0);
    CHECK(checked(f.kb));
    CHECK_EQ(kv_blocks_seq_n_blocks(f.kb, s), 2);
    REQUIRE(kv_blocks_append(f.kb, s, 1, NULL) == 0);
    CHECK(checked(f.kb));
    CHECK_EQ(kv_blocks_seq_n_blocks(f.kb, s), 3);
    const int32_t *t = kv_blocks_table(f.kb, s);
    REQUIRE(t != NULL);
    CHECK(t[0] != t[1] && t[1] != t[2] && t[0] != t[2]);
    CHECK_EQ(kv_blocks_slot_of(f.kb, s, 6), (int64_t)t[1] * BS + 2);
    CHECK_EQ(kv_blocks_slot_of(f.kb, s, 9), -1);
    struct kv_blocks_stats st = kv_blocks_stats(f.kb);
    CHECK_EQ(st.in_use, 3);
    CHECK_EQ(st.free, 5);
    CHECK_EQ(st.cached, 2); /* the two blocks filled with known tokens */
    CHECK_EQ(st.n_seqs, 1);
    REQUIRE(kv_blocks_seq_free(f.kb, s) == 0);
    CHECK(checked(f.kb));
    st = kv_blocks_stats(f.kb);
    CHECK_EQ(st.in_use, 0);
    CHECK_EQ(st.cached_free, 2);
    CHECK_EQ(kv_blocks_seq_free(f.kb, s), ERR_STATE);
    CHECK_EQ(kv_blocks_seq_free(f.kb, 4), ERR_RANGE);
    CHECK_EQ(kv_blocks_append(f.kb, s, 1, ids), ERR_STATE);
    fx_close(&f);
}

TEST(err_limit_leaves_the_region_unchanged)
{
    struct fx f;
    REQUIRE(fx_open(&f, 4, 2, 3, 0, false) == 0);
    int32_t ids[16], a, b, c;
    fill(ids, 16, 1);
    size_t cached;
    REQUIRE(seq_add(f.kb, ids, 6, &a, &cached) == 0); /* 2 blocks, the last partial */
    REQUIRE(kv_blocks_seq_new(f.kb, ids, 0, &b, &cached) == 0);
    char *snap = malloc(f.bytes);
    REQUIRE(snap != NULL);
    memcpy(snap, f.mem, f.bytes);
    CHECK_EQ(kv_blocks_append(f.kb, b, 9, ids), ERR_LIMIT);            /* 3 blocks, 2 free */
    CHECK_EQ(kv_blocks_append(f.kb, a, 7, ids), ERR_LIMIT);            /* 4 blocks > max_blocks 3 */
    CHECK_EQ(kv_blocks_seq_new(f.kb, ids, 4, &c, &cached), ERR_LIMIT); /* no slot */
    CHECK_EQ(kv_blocks_seq_fork(f.kb, a, &c, NULL), ERR_LIMIT);
    CHECK(memcmp(snap, f.mem, f.bytes) == 0);
    CHECK(checked(f.kb));
    REQUIRE(kv_blocks_append(f.kb, b, 8, ids) == 0); /* exactly the 2 free blocks */
    CHECK_EQ(kv_blocks_stats(f.kb).free, 0);
    REQUIRE(kv_blocks_seq_free(f.kb, b) == 0);
    memcpy(snap, f.mem, f.bytes);
    REQUIRE(kv_blocks_append(f.kb, a, 2, ids) == 0); /* fills block 1: no new block */
    CHECK(checked(f.kb));
    free(snap);
    fx_close(&f);
}

TEST(shared_prefix_of_three_blocks_is_shared)
{
    struct fx f;
    REQUIRE(fx_open(&f, 16, 4, 8, 0, false) == 0);
    int32_t p[3 * BS + 2], q[3 * BS + 2];
    fill(p, 3 * BS + 2, 10);
    memcpy(q, p, sizeof q);
    q[3 * BS + 1] = 999; /* differs after the prefix */
    int32_t a, b, c;
    size_t cached;
    REQUIRE(seq_add(f.kb, p, 3 * BS + 2, &a, &cached) == 0);
    CHECK_EQ(cached, 0);
    CHECK(checked(f.kb));
    REQUIRE(seq_add(f.kb, q, 3 * BS + 2, &b, &cached) == 0);
    CHECK(checked(f.kb));
    CHECK_EQ(cached, 3 * BS);
    const int32_t *ta = kv_blocks_table(f.kb, a), *tb = kv_blocks_table(f.kb, b);
    for (int j = 0; j < 3; j++)
        CHECK_EQ(ta[j], tb[j]);
    CHECK(ta[3] != tb[3]);
    /* the last-token rule: a prompt of exactly 3 full blocks gets 2 from the cache */
    REQUIRE(seq_add(f.kb, p, 3 * BS, &c, &cached) == 0);
    CHECK(checked(f.kb));
    CHECK_EQ(cached, 2 * BS);
    const int32_t *tc = kv_blocks_table(f.kb, c);
    CHECK_EQ(tc[0], ta[0]);
    CHECK_EQ(tc[1], ta[1]);
    CHECK(tc[2] != ta[2]); /* recomputed into its own block */
    struct kv_blocks_stats st = kv_blocks_stats(f.kb);
    CHECK_EQ(st.query_tokens, 3 * (3 * BS) + 4);
    CHECK_EQ(st.hit_tokens, 5 * BS);
    /* freed shared blocks stay referenced by the others */
    REQUIRE(kv_blocks_seq_free(f.kb, a) == 0);
    CHECK(checked(f.kb));
    REQUIRE(kv_blocks_seq_free(f.kb, c) == 0);
    CHECK(checked(f.kb));
    REQUIRE(kv_blocks_seq_free(f.kb, b) == 0);
    CHECK(checked(f.kb));
    CHECK_EQ(kv_blocks_stats(f.kb).in_use, 0);
    fx_close(&f);
}

TEST(a_differing_token_in_block_2_stops_the_match_there)
{
    struct fx f;
    REQUIRE(fx_open(&f, 16, 4, 8, 0, false) == 0);
    int32_t p[4 * BS + 1], q[4 * BS + 1];
    fill(p, 4 * BS + 1, 10);
    memcpy(q, p, sizeof q);
    q[2 * BS + 1] = -5; /* block 2 differs; block 3 is equal but its chain is not */
    int32_t a, b;
    size_t cached;
    REQUIRE(seq_add(f.kb, p, 4 * BS + 1, &a, &cached) == 0);
    REQUIRE(seq_add(f.kb, q, 4 * BS + 1, &b, &cached) == 0);
    CHECK(checked(f.kb));
    CHECK_EQ(cached, 2 * BS);
    const int32_t *ta = kv_blocks_table(f.kb, a), *tb = kv_blocks_table(f.kb, b);
    CHECK_EQ(ta[1], tb[1]);
    CHECK(ta[2] != tb[2]);
    CHECK(ta[3] != tb[3]);
    fx_close(&f);
}

TEST(forced_hash_collisions_are_not_hits)
{
    struct fx f; /* every hash is 0: only the token and parent comparisons tell blocks apart */
    REQUIRE(fx_open(&f, 32, 6, 8, -1, false) == 0);
    int32_t p[3 * BS + 1], q[3 * BS + 1], r[2 * BS + 1], x[2 * BS + 1];
    fill(p, 3 * BS + 1, 10);
    fill(q, 3 * BS + 1, 500);
    int32_t a, b, c, d, e;
    size_t cached;
    REQUIRE(seq_add(f.kb, p, 3 * BS + 1, &a, &cached) == 0);
    REQUIRE(kv_blocks_seq_free(f.kb, a) == 0);
    REQUIRE(seq_add(f.kb, q, 3 * BS + 1, &b, &cached) == 0);
    CHECK(checked(f.kb));
    CHECK_EQ(cached, 0); /* different tokens, same hash */
    /* same tokens in block 1 under a different block 0: r = [Y, Q], cached [Y, R], [X, Q] */
    fill(r, 2 * BS + 1, 700);       /* [Y, R] */
    fill(x, 2 * BS + 1, 800);       /* [X, ...] */
    memcpy(x + BS, r + BS, BS * 4); /* [X, R] */
    REQUIRE(seq_add(f.kb, x, 2 * BS + 1, &c, &cached) == 0);
    r[BS] = -1; /* [Y, R'] */
    REQUIRE(seq_add(f.kb, r, 2 * BS + 1, &d, &cached) == 0);
    CHECK(checked(f.kb));
    memcpy(r + BS, x + BS, BS * 4); /* [Y, R]: block 0 cached in d, block 1 only under X */
    REQUIRE(seq_add(f.kb, r, 2 * BS + 1, &e, &cached) == 0);
    CHECK(checked(f.kb));
    CHECK_EQ(cached, BS);
    /* and genuine hits still work under the weak hash */
    REQUIRE(kv_blocks_seq_free(f.kb, e) == 0);
    REQUIRE(seq_add(f.kb, p, 3 * BS + 1, &a, &cached) == 0);
    CHECK_EQ(cached, 3 * BS);
    REQUIRE(seq_add(f.kb, x, 2 * BS + 1, &e, &cached) == 0);
    CHECK_EQ(cached, 2 * BS);
    CHECK(checked(f.kb));
    fx_close(&f);
}

TEST(a_cached_block_whose_parent_was_evicted_and_reused_is_not_a_hit)
{
    struct fx f; /* every hash is 0, so only the parent's registration number can tell */
    REQUIRE(fx_open(&f, 4, 6, 4, -1, false) == 0);
    int32_t x[BS + 1], q[BS], y[2 * BS + 1];
    fill(x, BS + 1, 10);
    fill(q, BS, 20);
    fill(y, BS, 30);
    memcpy(y + BS, q, sizeof q);
    y[2 * BS] = 0;
    int32_t a, e, g, h, z;
    size_t cached;
    REQUIRE(seq_add(f.kb, x, BS + 1, &a, &cached) == 0); /* X cached in block x */
    int32_t xb = kv_blocks_table(f.kb, a)[0];
    REQUIRE(kv_blocks_seq_free(f.kb, a) == 0);
    REQUIRE(seq_add(f.kb, x, BS, &e, &cached) == 0); /* recomputes X: canonical stays x */
    REQUIRE(kv_blocks_append(f.kb, e, BS, q) == 0);  /* Q cached with parent x */
    CHECK_EQ(kv_blocks_stats(f.kb).cached, 2);
    REQUIRE(kv_blocks_seq_new(f.kb, NULL, 0, &z, &cached) == 0);
    REQUIRE(kv_blocks_append(f.kb, z, BS, NULL) == 0); /* the last uncached block */
    REQUIRE(seq_add(f.kb, y, BS, &g, &cached) == 0);   /* Y evicts X from block x */
    CHECK_EQ(kv_blocks_table(f.kb, g)[0], xb);
    CHECK(checked(f.kb));
    REQUIRE(kv_blocks_seq_new(f.kb, y, 2 * BS + 1, &h, &cached) == 0);
    CHECK_EQ(cached, BS); /* Y hits; Q was cached under X, not Y */
    CHECK(checked(f.kb));
    fx_close(&f);
}

TEST(eviction_reuses_freed_cached_blocks_lru_first)
{
    struct fx f;
    REQUIRE(fx_open(&f, 8, 4, 8, 0, false) == 0);
    int32_t pa[2 * BS], pc[2 * BS], pa1[2 * BS + 1], pc1[2 * BS + 1];
    fill(pa, 2 * BS, 10);
    fill(pc, 2 * BS, 50);
    memcpy(pa1, pa, sizeof pa);
    pa1[2 * BS] = 1;
    memcpy(pc1, pc, sizeof pc);
    pc1[2 * BS] = 1;
    int32_t a, c, b;
    size_t cached;
    REQUIRE(seq_add(f.kb, pa, 2 * BS, &a, &cached) == 0);
    REQUIRE(seq_add(f.kb, pc, 2 * BS, &c, &cached) == 0);
    int32_t a0 = kv_blocks_table(f.kb, a)[0], a1 = kv_blocks_table(f.kb, a)[1];
    REQUIRE(kv_blocks_seq_free(f.kb, a) == 0); /* A freed first: least recently used */
    REQUIRE(kv_blocks_seq_free(f.kb, c) == 0);
    CHECK(checked(f.kb));
    struct kv_blocks_stats st = kv_blocks_stats(f.kb);
    CHECK_EQ(st.cached_free, 4);
    CHECK_EQ(st.free, 8);
    /* 4 uncached free blocks, then A's last block, then A's first */
    REQUIRE(kv_blocks_seq_new(f.kb, NULL, 0, &b, &cached) == 0);
    REQUIRE(kv_blocks_append(f.kb, b, 4 * BS + 1, NULL) == 0);
    CHECK(checked(f.kb));
    CHECK_EQ(kv_blocks_table(f.kb, b)[4], a1);
    CHECK_EQ(kv_blocks_stats(f.kb).cached, 3);
    REQUIRE(kv_blocks_append(f.kb, b, BS, NULL) == 0);
    CHECK_EQ(kv_blocks_table(f.kb, b)[5], a0);
    CHECK(checked(f.kb));
    st = kv_blocks_stats(f.kb);
    CHECK_EQ(st.cached, 2);
    CHECK_EQ(st.cached_free, 2);
    int32_t s1, s2;
    REQUIRE(kv_blocks_seq_free(f.kb, b) == 0);
    REQUIRE(seq_add(f.kb, pc1, 2 * BS + 1, &s1, &cached) == 0);
    CHECK_EQ(cached, 2 * BS); /* C survived */
    REQUIRE(seq_add(f.kb, pa1, 2 * BS + 1, &s2, &cached) == 0);
    CHECK_EQ(cached, 0); /* A's hash entries went with its blocks */
    CHECK(checked(f.kb));
    fx_close(&f);
}

TEST(fork_shares_full_blocks_and_copies_the_partial_one)
{
    struct fx f;
    REQUIRE(fx_open(&f, 16, 4, 8, 0, false) == 0);
    int32_t p[2 * BS + 2];
    fill(p, 2 * BS + 2, 10);
    int32_t a, b, c;
    size_t cached;
    REQUIRE(seq_add(f.kb, p, 2 * BS + 2, &a, &cached) == 0);
    struct kv_blocks_copy cp;
    REQUIRE(kv_blocks_seq_fork(f.kb, a, &b, &cp) == 0);
    CHECK(checked(f.kb));
    const int32_t *ta = kv_blocks_table(f.kb, a), *tb = kv_blocks_table(f.kb, b);
    CHECK_EQ(kv_blocks_seq_len(f.kb, b), 2 * BS + 2);
    CHECK_EQ(ta[0], tb[0]);
    CHECK_EQ(ta[1], tb[1]);
    CHECK_EQ(cp.src, ta[2]);
    CHECK_EQ(cp.dst, tb[2]);
    CHECK(cp.src != cp.dst);
    /* both continue independently; equal continuations dedupe to the first one's entry */
    int32_t more[2] = {7, 8};
    REQUIRE(kv_blocks_append(f.kb, a, 2, more) == 0);
    REQUIRE(kv_blocks_append(f.kb, b, 2, more) == 0);
    CHECK(checked(f.kb));
    CHECK_EQ(kv_blocks_stats(f.kb).cached, 3);
    /* a fork at a block boundary copies nothing */
    REQUIRE(kv_blocks_seq_fork(f.kb, a, &c, &cp) == 0);
    CHECK_EQ(cp.src, -1);
    CHECK_EQ(cp.dst, -1);
    CHECK_EQ(kv_blocks_table(f.kb, c)[2], ta[2]);
    CHECK(checked(f.kb));
    REQUIRE(kv_blocks_seq_free(f.kb, a) == 0);
    REQUIRE(kv_blocks_seq_free(f.kb, b) == 0);
    REQUIRE(kv_blocks_seq_free(f.kb, c) == 0);
    CHECK(checked(f.kb));
    CHECK_EQ(kv_blocks_stats(f.kb).in_use, 0);
    fx_close(&f);
}

TEST(prefix_caching_off_shares_nothing)
{
    struct fx f;
    REQUIRE(fx_open(&f, 16, 4, 8, 0, true) == 0);
    int32_t p[3 * BS + 1];
    fill(p, 3 * BS + 1, 10);
    int32_t a, b;
    size_t cached;
    REQUIRE(seq_add(f.kb, p, 3 * BS + 1, &a, &cached) == 0);
    REQUIRE(seq_add(f.kb, p, 3 * BS + 1, &b, &cached) == 0);
    CHECK(checked(f.kb));
    CHECK_EQ(cached, 0);
    const int32_t *ta = kv_blocks_table(f.kb, a), *tb = kv_blocks_table(f.kb, b);
    for (int j = 0; j < 4; j++)
        CHECK(ta[j] != tb[j]);
    struct kv_blocks_stats st = kv_blocks_stats(f.kb);
    CHECK_EQ(st.cached, 0);
    CHECK_EQ(st.query_tokens, 0);
    fx_close(&f);
}

TEST(abort_drops_the_cached_content_of_freed_blocks)
{
    struct fx f;
    REQUIRE(fx_open(&f, 16, 4, 8, 0, false) == 0);
    int32_t p[2 * BS + 1];
    fill(p, 2 * BS + 1, 10);
    int32_t a;
    size_t cached;
    REQUIRE(seq_add(f.kb, p, 2 * BS + 1, &a, &cached) == 0);
    CHECK_EQ(kv_blocks_stats(f.kb).cached, 2);
    REQUIRE(kv_blocks_seq_abort(f.kb, a) == 0);
    CHECK(checked(f.kb));
    CHECK_EQ(kv_blocks_stats(f.kb).cached, 0);
    REQUIRE(seq_add(f.kb, p, 2 * BS + 1, &a, &cached) == 0);
    CHECK_EQ(cached, 0);
    fx_close(&f);
}

TEST(check_detects_a_corrupted_table)
{
    struct fx f;
    REQUIRE(fx_open(&f, 8, 2, 4, 0, false) == 0);
    int32_t p[2 * BS], a;
    fill(p, 2 * BS, 1);
    size_t cached;
    REQUIRE(seq_add(f.kb, p, 2 * BS, &a, &cached) == 0);
    CHECK(checked(f.kb));
    int32_t *t = (int32_t *)kv_blocks_table(f.kb, a);
    int32_t saved = t[1];
    t[1] = t[0]; /* two entries on one block: ref counts disagree */
    char err[256];
    CHECK_EQ(kv_blocks_check(f.kb, err, sizeof err), ERR_STATE);
    CHECK(strstr(err, "ref") != NULL);
    t[1] = saved;
    CHECK(checked(f.kb));
    fx_close(&f);
}

TEST(the_region_has_no_pointers_and_works_after_memcpy)
{
    struct fx f;
    REQUIRE(fx_open(&f, 16, 4, 8, 0, false) == 0);
    int32_t p[2 * BS + 3], a, b;
    fill(p, 2 * BS + 3, 10);
    size_t cached;
    REQUIRE(seq_add(f.kb, p, 2 * BS + 3, &a, &cached) == 0);
    REQUIRE(seq_add(f.kb, p, 2 * BS + 1, &b, &cached) == 0);
    char *snap = malloc(f.bytes);
    uint64_t *copy = malloc(f.bytes);
    REQUIRE(snap && copy);
    memcpy(copy, f.mem, f.bytes);
    memcpy(snap, f.mem, f.bytes);
    struct kv_blocks *kc = kv_blocks_attach(copy, f.bytes);
    REQUIRE(kc != NULL);
    CHECK(checked(kc));
    const int32_t *ta = kv_blocks_table(f.kb, a), *tc = kv_blocks_table(kc, a);
    CHECK((const void *)tc >= (const void *)copy &&
          (const char *)tc < (const char *)copy + f.bytes);
    CHECK_EQ(kv_blocks_seq_n_blocks(kc, a), 3);
    for (int j = 0; j < 3; j++)
        CHECK_EQ(tc[j], ta[j]);
    /* operate on the copy: the original does not change, the copy stays sound */
    int32_t more[BS] = {1, 2, 3, 4};
    REQUIRE(kv_blocks_append(kc, a, BS, more) == 0);
    REQUIRE(kv_blocks_seq_free(kc, b) == 0);
    int32_t c;
    REQUIRE(seq_add(kc, p, 2 * BS + 1, &c, &cached) == 0);
    CHECK_EQ(cached, 2 * BS);
    CHECK(checked(kc));
    CHECK(memcmp(snap, f.mem, f.bytes) == 0);
    CHECK(checked(f.kb));
    free(copy);
    free(snap);
    fx_close(&f);
}

/* ---- randomized ---- */

#define R_SEQS 12
#define R_BPS 12
#define R_BLOCKS 48
#define R_MAXTOK (R_BPS * BS)

/* the shadow engine: what each sequence holds and what each KV slot was written with. Like
 * real KV data, a slot's value (fp) depends on the token and on every token before it. */
struct shadow {
    int32_t tok[R_SEQS][R_MAXTOK];
    uint64_t fp[R_SEQS][R_MAXTOK]; /* fingerprint of tokens [0, pos] */
    uint64_t kv[R_BLOCKS * BS];
    uint64_t rng;
    int fails;
};

static uint32_t rnd(struct shadow *sh, uint32_t n)
{
    sh->rng = sh->rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(sh->rng >> 33) % n;
}

/* sh_set: sequence s's tokens [from, to) become t[0, to - from), with fingerprints. */
static void sh_set(struct shadow *sh, int32_t s, size_t from, size_t to, const int32_t *t)
{
    for (size_t pos = from; pos < to; pos++) {
        uint64_t prev = pos ? sh->fp[s][pos - 1] : 0x1234567;
        sh->tok[s][pos] = t[pos - from];
        sh->fp[s][pos] = (prev ^ (uint64_t)(uint32_t)t[pos - from]) * 0x100000001b3ull + 1;
    }
}

/* sh_write: the engine computes tokens [from, to) of slot s into their KV slots. */
static void sh_write(struct shadow *sh, const struct kv_blocks *kb, int32_t s, size_t from,
                     size_t to)
{
    for (size_t pos = from; pos < to; pos++)
        sh->kv[kv_blocks_slot_of(kb, s, pos)] = sh->fp[s][pos];
}

/* sh_verify: every live sequence reads back its own tokens from the KV slots. */
static int sh_verify(const struct shadow *sh, const struct kv_blocks *kb)
{
    for (int32_t s = 0; s < R_SEQS; s++) {
        size_t n = kv_blocks_seq_len(kb, s);
        for (size_t pos = 0; pos < n; pos++)
            if (sh->kv[kv_blocks_slot_of(kb, s, pos)] != sh->fp[s][pos]) {
                fprintf(stderr, "    seq %d pos %zu reads the wrong KV\n", s, pos);
                return 0;
            }
    }
    return 1;
}

static int32_t pick_live(struct shadow *sh, const struct kv_blocks *kb)
{
    int32_t start = (int32_t)rnd(sh, R_SEQS);
    for (int32_t k = 0; k < R_SEQS; k++) {
        int32_t s = (start + k) % R_SEQS;
        if (kv_blocks_seq_live(kb, s))
            return s;
    }
    return -1;
}

static void op_add(struct shadow *sh, struct kv_blocks *kb)
{
    int32_t p[R_MAXTOK];
    uint32_t base = rnd(sh, 4), len = 1 + rnd(sh, 6 * BS), shared = rnd(sh, len + 1);
    for (uint32_t i = 0; i < len; i++)
        p[i] = i < shared ? (int32_t)(base * 1000 + i) : (int32_t)rnd(sh, 3);
    int32_t s;
    size_t cached;
    if (kv_blocks_seq_new(kb, p, len, &s, &cached) != 0)
        return;
    if (cached >= len || cached % BS != 0)
        sh->fails++;
    sh_set(sh, s, 0, len, p);
    if (kv_blocks_append(kb, s, len - cached, p + cached) != 0) {
        kv_blocks_seq_free(kb, s); /* preempted */
        return;
    }
    sh_write(sh, kb, s, cached, len);
}

static void op_append(struct shadow *sh, struct kv_blocks *kb, int32_t s)
{
    size_t len = kv_blocks_seq_len(kb, s), n = 1 + rnd(sh, 6);
    if (len + n > R_MAXTOK)
        n = R_MAXTOK - len;
    int32_t t[6];
    for (size_t i = 0; i < n; i++)
        t[i] = (int32_t)rnd(sh, 3);
    sh_set(sh, s, len, len + n, t);
    bool unknown = rnd(sh, 10) == 0;
    int rc = kv_blocks_append(kb, s, n, unknown ? NULL : sh->tok[s] + len);
    if (rc == 0)
        sh_write(sh, kb, s, len, len + n);
    else if (rc != ERR_LIMIT || kv_blocks_seq_len(kb, s) != len)
        sh->fails++;
}

static void op_fork(struct shadow *sh, struct kv_blocks *kb, int32_t s)
{
    int32_t c;
    struct kv_blocks_copy cp;
    if (kv_blocks_seq_fork(kb, s, &c, &cp) != 0)
        return;
    memcpy(sh->tok[c], sh->tok[s], sizeof sh->tok[s]);
    memcpy(sh->fp[c], sh->fp[s], sizeof sh->fp[s]);
    if (cp.src >= 0)
        memcpy(&sh->kv[cp.dst * BS], &sh->kv[cp.src * BS], BS * sizeof(uint64_t));
}

static void random_run(int32_t hash_bits, uint64_t seed)
{
    struct fx f;
    REQUIRE(fx_open(&f, R_BLOCKS, R_SEQS, R_BPS, hash_bits, false) == 0);
    struct shadow *sh = calloc(1, sizeof *sh);
    REQUIRE(sh != NULL);
    sh->rng = seed;
    int i;
    for (i = 0; i < 10000; i++) {
        uint32_t op = rnd(sh, 10);
        int32_t s = pick_live(sh, f.kb);
        if (op < 3 || s < 0)
            op_add(sh, f.kb);
        else if (op < 6)
            op_append(sh, f.kb, s);
        else if (op < 7)
            op_fork(sh, f.kb, s);
        else if (op < 9)
            kv_blocks_seq_free(f.kb, s);
        else
            kv_blocks_seq_abort(f.kb, s);
        if (!checked(f.kb) || !sh_verify(sh, f.kb) || sh->fails)
            break;
    }
    CHECK_EQ(i, 10000);
    CHECK_EQ(sh->fails, 0);
    struct kv_blocks_stats st = kv_blocks_stats(f.kb);
    CHECK(st.hit_tokens > 0);
    for (int32_t s = 0; s < R_SEQS; s++)
        if (kv_blocks_seq_live(f.kb, s))
            CHECK_EQ(kv_blocks_seq_free(f.kb, s), 0);
    CHECK(checked(f.kb));
    st = kv_blocks_stats(f.kb);
    CHECK_EQ(st.in_use, 0);
    CHECK_EQ(st.free, R_BLOCKS);
    CHECK_EQ(st.n_seqs, 0);
    free(sh);
    fx_close(&f);
}

TEST(random_10000_operations_full_hash)
{
    random_run(0, 12345);
}

TEST(random_10000_operations_3_bit_hash)
{
    random_run(3, 777);
}

TEST(random_10000_operations_zero_hash)
{
    random_run(-1, 4242);
}

int main(int argc, char **argv)
{
    return test_main(argc, argv);
}
