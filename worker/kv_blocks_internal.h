/*
 * kv_blocks_internal: the layout of the kv_blocks region, shared by kv_blocks.c (the
 * operations) and kv_blocks_check.c (the invariant checker). Not for other modules.
 */
#ifndef KILN_KV_BLOCKS_INTERNAL_H
#define KILN_KV_BLOCKS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "worker/kv_blocks.h"

#define KVB_MAGIC 0x6b696c6e6b766231ull /* "kilnkvb1" */
#define KVB_ROOT 0x243f6a8885a308d3ull  /* h_{-1}, the hash before the first block */
#define KVB_MUL 0xd6e8feb86659fd93ull
#define KVB_TOK 0x9e3779b97f4a7c15ull

enum { KVB_FREE = 1u, KVB_CACHED = 2u };

struct kvb_block {
    int32_t ref;
    int32_t prev, next; /* free-list links (block indices), -1 at the ends */
    int32_t parent;     /* cached: the cached block before it in the chain, -1 if first */
    uint32_t flags;     /* KVB_FREE, KVB_CACHED */
    uint32_t pad;
    uint64_t hash;       /* cached: chained hash of its prefix and tokens */
    uint64_t gen;        /* cached: registration number (never reused); 0 otherwise */
    uint64_t parent_gen; /* cached: parent's gen when this block was registered */
};

struct kvb_seq {
    int32_t live;
    int32_t next_free; /* slot free list, -1 at the end */
    int32_t n_blocks;
    int32_t n_hashed; /* leading full blocks whose chain hash is known */
    int64_t n_tokens;
    int32_t chain_block; /* canonical cached block of full block n_hashed - 1, or -1 */
    int32_t hash_ok;     /* 0 once a token id was unknown or the chain went stale */
    uint64_t chain_gen;  /* chain_block's gen when it was taken */
    uint64_t chain_hash; /* h of full block n_hashed - 1 (KVB_ROOT when none) */
};

struct kv_blocks {
    uint64_t magic;
    uint64_t bytes;
    int32_t n_blocks, block_size, max_seqs, max_blocks_per_seq;
    int32_t prefix_caching;
    uint32_t htab_cap;  /* power of two */
    uint64_t hash_mask; /* ANDed with every hash: all ones unless a test weakens it */
    uint64_t off_blocks, off_tokens, off_seqs, off_tables, off_htab;
    int32_t free_head, free_tail;
    int32_t n_free, n_cached_free, n_cached;
    int32_t seq_free_head, n_seqs;
    int32_t hash_bits; /* the test hook, as configured */
    uint64_t next_gen;
    uint64_t query_tokens, hit_tokens;
};

/* ---- region access ---- */

static inline struct kvb_block *kvb_blocks(const struct kv_blocks *kb)
{
    return (struct kvb_block *)((char *)kb + kb->off_blocks);
}

static inline int32_t *kvb_tokens(const struct kv_blocks *kb, int32_t b)
{
    return (int32_t *)((char *)kb + kb->off_tokens) + (size_t)b * (size_t)kb->block_size;
}

static inline struct kvb_seq *kvb_seqs(const struct kv_blocks *kb)
{
    return (struct kvb_seq *)((char *)kb + kb->off_seqs);
}

static inline int32_t *kvb_row(const struct kv_blocks *kb, int32_t s)
{
    return (int32_t *)((char *)kb + kb->off_tables) + (size_t)s * (size_t)kb->max_blocks_per_seq;
}

static inline int32_t *kvb_htab(const struct kv_blocks *kb)
{
    return (int32_t *)((char *)kb + kb->off_htab);
}

static inline size_t kvb_align8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

/* ---- hashing ---- */

static inline uint64_t kvb_mix(uint64_t x)
{
    x ^= x >> 31;
    x *= KVB_MUL;
    x ^= x >> 29;
    x *= KVB_MUL;
    x ^= x >> 32;
    return x;
}

/* kvb_hash: h_i = H(h_{i-1}, block tokens), masked by the test hook. */
static inline uint64_t kvb_hash(const struct kv_blocks *kb, uint64_t prev, const int32_t *t)
{
    uint64_t h = kvb_mix(prev ^ KVB_ROOT);
    for (int32_t i = 0; i < kb->block_size; i++)
        h = kvb_mix(h ^ ((uint64_t)(uint32_t)t[i] * KVB_TOK + (uint64_t)i));
    h = kvb_mix(h + (uint64_t)kb->block_size);
    return h & kb->hash_mask;
}

static inline uint32_t kvb_home(const struct kv_blocks *kb, uint64_t h)
{
    return (uint32_t)(h ^ (h >> 32)) & (kb->htab_cap - 1);
}

#endif
