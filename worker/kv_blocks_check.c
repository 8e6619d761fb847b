/*
 * kv_blocks_check: the invariant checker of the kv_blocks region (declared in kv_blocks.h).
 */
#include "worker/kv_blocks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "worker/kv_blocks_internal.h"

/* ---- invariants ---- */

#define KVB_FAIL(...)                                                                              \
    do {                                                                                           \
        snprintf(err, errlen, __VA_ARGS__);                                                        \
        return ERR_STATE;                                                                          \
    } while (0)

static int kvb_check_free_list(const struct kv_blocks *kb, char *err, size_t errlen)
{
    const struct kvb_block *bl = kvb_blocks(kb);
    int32_t n = 0, n_cached = 0, prev = -1;
    for (int32_t b = kb->free_head; b >= 0; prev = b, b = bl[b].next) {
        if (b >= kb->n_blocks || n >= kb->n_blocks)
            KVB_FAIL("free list: bad index %d or cycle after %d entries", b, n);
        if (!(bl[b].flags & KVB_FREE) || bl[b].ref != 0)
            KVB_FAIL("free list: block %d has ref %d, flags %u", b, bl[b].ref, bl[b].flags);
        if (bl[b].prev != prev)
            KVB_FAIL("free list: block %d prev %d, expected %d", b, bl[b].prev, prev);
        n++;
        n_cached += (bl[b].flags & KVB_CACHED) != 0;
    }
    if (prev != kb->free_tail)
        KVB_FAIL("free list: tail %d, last entry %d", kb->free_tail, prev);
    if (n != kb->n_free || n_cached != kb->n_cached_free)
        KVB_FAIL("free list: %d entries (%d cached), counters say %d (%d)", n, n_cached, kb->n_free,
                 kb->n_cached_free);
    return 0;
}

/* kvb_check_seq: one live sequence's table; counts its references into refs. */
static int kvb_check_seq(const struct kv_blocks *kb, int32_t slot, int32_t *refs, char *err,
                         size_t errlen)
{
    const struct kvb_seq *s = &kvb_seqs(kb)[slot];
    const int32_t *row = kvb_row(kb, slot);
    int64_t bs = kb->block_size;
    if (s->n_tokens < 0 || s->n_blocks != (s->n_tokens + bs - 1) / bs ||
        s->n_blocks > kb->max_blocks_per_seq)
        KVB_FAIL("seq %d: %d blocks for %lld tokens", slot, s->n_blocks, (long long)s->n_tokens);
    if (s->n_hashed < 0 || s->n_hashed > s->n_tokens / bs)
        KVB_FAIL("seq %d: %d hashed blocks of %lld tokens", slot, s->n_hashed,
                 (long long)s->n_tokens);
    for (int32_t j = 0; j < kb->max_blocks_per_seq; j++) {
        if (j >= s->n_blocks) {
            if (row[j] != -1)
                KVB_FAIL("seq %d: table entry %d past the end is %d", slot, j, row[j]);
            continue;
        }
        if (row[j] < 0 || row[j] >= kb->n_blocks)
            KVB_FAIL("seq %d: table entry %d is %d", slot, j, row[j]);
        refs[row[j]]++;
    }
    return 0;
}

static int kvb_check_seqs(const struct kv_blocks *kb, int32_t *refs, char *err, size_t errlen)
{
    const struct kvb_seq *sq = kvb_seqs(kb);
    int32_t live = 0, dead = 0;
    for (int32_t s = 0; s < kb->max_seqs; s++) {
        if (!sq[s].live) {
            if (sq[s].n_blocks != 0 || kvb_row(kb, s)[0] != -1)
                KVB_FAIL("seq %d: free slot holds blocks", s);
            continue;
        }
        live++;
        int rc = kvb_check_seq(kb, s, refs, err, errlen);
        if (rc)
            return rc;
    }
    for (int32_t s = kb->seq_free_head; s >= 0; s = sq[s].next_free) {
        if (s >= kb->max_seqs || dead >= kb->max_seqs || sq[s].live)
            KVB_FAIL("slot free list: bad entry %d after %d", s, dead);
        dead++;
    }
    if (live != kb->n_seqs || live + dead != kb->max_seqs)
        KVB_FAIL("seqs: %d live, %d on the free list, counter %d of %d", live, dead, kb->n_seqs,
                 kb->max_seqs);
    for (int32_t s = 0; s < kb->max_seqs; s++) {
        if (!sq[s].live || sq[s].n_tokens % kb->block_size == 0)
            continue;
        int32_t last = kvb_row(kb, s)[sq[s].n_blocks - 1];
        if (refs[last] != 1)
            KVB_FAIL("seq %d: partial last block %d is shared (%d refs)", s, last, refs[last]);
    }
    return 0;
}

static int kvb_check_blocks(const struct kv_blocks *kb, const int32_t *refs, char *err,
                            size_t errlen)
{
    const struct kvb_block *bl = kvb_blocks(kb);
    int32_t n_cached = 0;
    for (int32_t b = 0; b < kb->n_blocks; b++) {
        if (bl[b].ref != refs[b])
            KVB_FAIL("block %d: ref %d but %d table entries", b, bl[b].ref, refs[b]);
        if ((bl[b].ref == 0) != ((bl[b].flags & KVB_FREE) != 0))
            KVB_FAIL("block %d: ref %d, flags %u", b, bl[b].ref, bl[b].flags);
        if (bl[b].flags & KVB_CACHED)
            n_cached++;
        else if (bl[b].gen != 0)
            KVB_FAIL("block %d: uncached with gen %llu", b, (unsigned long long)bl[b].gen);
    }
    if (n_cached != kb->n_cached)
        KVB_FAIL("blocks: %d cached, counter %d", n_cached, kb->n_cached);
    return 0;
}

/* kvb_check_entry: hash-table slot i holds block b: b is cached, reachable from its home,
 * and its hash is that of its tokens after its parent's hash (when the parent is still
 * the block it was registered under). */
static int kvb_check_entry(const struct kv_blocks *kb, uint32_t i, int32_t b, char *err,
                           size_t errlen)
{
    const struct kvb_block *bl = kvb_blocks(kb);
    const int32_t *ht = kvb_htab(kb);
    if (b >= kb->n_blocks || !(bl[b].flags & KVB_CACHED))
        KVB_FAIL("htab: slot %u holds %d, not a cached block", i, b);
    uint32_t m = kb->htab_cap - 1;
    for (uint32_t k = kvb_home(kb, bl[b].hash); k != i; k = (k + 1) & m)
        if (ht[k] < 0)
            KVB_FAIL("htab: block %d at %u unreachable (empty slot %u)", b, i, k);
    if (bl[b].gen == 0 || bl[b].gen >= kb->next_gen)
        KVB_FAIL("htab: block %d has gen %llu", b, (unsigned long long)bl[b].gen);
    int32_t p = bl[b].parent;
    if (p < -1 || p >= kb->n_blocks || p == b)
        KVB_FAIL("htab: block %d has parent %d", b, p);
    uint64_t prev = KVB_ROOT;
    if (p >= 0) {
        if (!(bl[p].flags & KVB_CACHED) || bl[p].gen != bl[b].parent_gen)
            return 0; /* parent evicted: unreachable, nothing to compare with */
        prev = bl[p].hash;
    }
    if (kvb_hash(kb, prev, kvb_tokens(kb, b)) != bl[b].hash)
        KVB_FAIL("htab: block %d hash does not match its content", b);
    return 0;
}

static int kvb_check_htab(const struct kv_blocks *kb, int32_t *seen, char *err, size_t errlen)
{
    const int32_t *ht = kvb_htab(kb);
    int32_t n = 0;
    for (uint32_t i = 0; i < kb->htab_cap; i++) {
        int32_t b = ht[i];
        if (b == -1)
            continue;
        if (b < 0)
            KVB_FAIL("htab: slot %u holds %d", i, b);
        int rc = kvb_check_entry(kb, i, b, err, errlen);
        if (rc)
            return rc;
        if (seen[b]++)
            KVB_FAIL("htab: block %d appears twice", b);
        n++;
    }
    if (n != kb->n_cached)
        KVB_FAIL("htab: %d entries, %d cached blocks", n, kb->n_cached);
    return 0;
}

int kv_blocks_check(const struct kv_blocks *kb, char *err, size_t errlen)
{
    if (kb->magic != KVB_MAGIC)
        KVB_FAIL("bad magic");
    if (kb->hit_tokens > kb->query_tokens)
        KVB_FAIL("stats: %llu hits of %llu queries", (unsigned long long)kb->hit_tokens,
                 (unsigned long long)kb->query_tokens);
    int32_t *scratch = calloc((size_t)kb->n_blocks, sizeof *scratch);
    if (!scratch)
        return ERR_NOMEM;
    int rc = kvb_check_free_list(kb, err, errlen);
    if (!rc)
        rc = kvb_check_seqs(kb, scratch, err, errlen);
    if (!rc)
        rc = kvb_check_blocks(kb, scratch, err, errlen);
    if (!rc) {
        memset(scratch, 0, (size_t)kb->n_blocks * sizeof *scratch);
        rc = kvb_check_htab(kb, scratch, err, errlen);
    }
    free(scratch);
    if (!rc && errlen)
        err[0] = '\0';
    return rc;
}
