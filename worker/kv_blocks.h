/*
 * kv_blocks: the engine's KV-cache block manager with prefix caching. It decides which
 * blocks of the model's paged KV pool each sequence owns (its block table, one int32 block
 * id per block_size tokens; token at position p lives in KV slot
 * table[p / block_size] * block_size + p % block_size, see worker/model.h).
 *
 * Memory layout. Every byte of bookkeeping lives in ONE region the caller provides
 * (kv_blocks_bytes() says how big; 8-byte aligned), which holds no pointers, only indices
 * and byte offsets from its start, so it can sit in a shared-memory mapping at different
 * addresses in different processes, or be copied with memcpy. In order:
 *   header     config, free-list head/tail, counters, statistics, array offsets
 *   blocks     [n_blocks] per block: ref count, free-list links, hash, chain parent, flags
 *   tokens     [n_blocks][block_size] int32: the token ids a block holds
 *   seqs       [max_seqs] per sequence: length, block count, hash-chain state
 *   tables     [max_seqs][max_blocks_per_seq] int32 block tables
 *   htab       [htab_cap] int32 open-addressing hash table (block index or -1), linear
 *              probing, backward-shift deletion; htab_cap = power of two >= 2 * n_blocks
 * Cost: 48 + 4 * block_size bytes per block plus 8 to 16 for the hash table; 48 + 4 *
 * max_blocks_per_seq bytes per sequence (kv_blocks_bytes is exact).
 *
 * Blocks. A block is either free (ref 0, on the intrusive doubly-linked free list) or
 * referenced by ref table entries. Blocks are allocated from the head of the free list.
 * A freed block that holds no cached content goes to the head (reused first); a freed block
 * that is registered in the prefix cache goes to the tail, so cached blocks are evicted
 * least-recently-freed first, and stay reusable by hash until then. A sequence's blocks
 * are freed last block first, so the tail of a prompt is evicted before its head.
 *
 * Prefix caching (on unless disable_prefix_caching). When a block becomes full and its
 * token ids are known (kv_blocks_append with ids), its chained hash
 *   h_i = H(h_{i-1}, tokens of block i),  h_{-1} = a fixed root,
 * (a 64-bit multiply-xorshift mixer applied per token; written here) indexes it in the
 * hash table. Hits are exact, never trusted to the hash: a cached block also stores its
 * token ids (4 * block_size bytes) and its parent (the cached block before it in the chain
 * and that block's registration number, "gen"), and a lookup compares hash, parent and
 * tokens. By induction from the first block, a hit means the whole prefix is equal, so
 * even a deliberately weak hash (test_hash_bits) gives no false hits, only longer probes.
 * If a block with the same prefix and tokens is already cached when a sequence fills its
 * own copy (it computed it itself), the existing one stays the canonical entry and the new
 * one is not registered (no dedupe of KV data: the sequence keeps its block, which goes to
 * the free list head when freed). A cached block whose parent has been evicted can no
 * longer be reached; it is evicted in its turn.
 *
 * Sharing rules. kv_blocks_seq_new matches the longest run of cached full blocks from the
 * start of the prompt and shares them (ref++, taken off the free list if free). At most
 * (prompt_len - 1) / block_size blocks are matched, so at least the last prompt token is
 * always computed (the engine needs its logits): a prompt of exactly k full blocks gets
 * at most k - 1 of them from the cache. Only full blocks are ever shared; a sequence's
 * partially filled last block always has ref 1, and only that block is ever written.
 * kv_blocks_seq_fork shares all full blocks and gives the child a copy of a partial last
 * block (the engine copies its KV data, src -> dst).
 *
 * A block is registered when the append that fills it is made, before the step that
 * computes its KV runs. So a sequence that hits it in the same step reads KV written by
 * that step (the model writes a layer's KV of all batch tokens before attention). If a
 * step is abandoned after its appends, free its sequences with kv_blocks_seq_abort, which
 * drops cached content of the blocks it frees.
 *
 * Threads and processes. One writer (the engine thread) calls every mutating function.
 * Readers (tensor-parallel ranks mapping the same region) only call the const accessors
 * (kv_blocks_attach, kv_blocks_table, kv_blocks_seq_len, ...) for the sequences of the
 * step that was published to them. Protocol: the writer finishes every update for step k
 * (appends, forks, frees) before publishing step k's descriptor (with a release store or
 * a message); it does not free or otherwise change those sequences' tables until every
 * rank has finished step k. Appends only write table entries past those step k uses.
 */
#ifndef KILN_KV_BLOCKS_H
#define KILN_KV_BLOCKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kv_blocks_config {
    int32_t n_blocks;           /* blocks in the KV pool, 1 .. 2^26 */
    int32_t block_size;         /* tokens per block, 1 .. 4096 */
    int32_t max_seqs;           /* sequence slots, 1 .. 2^20 */
    int32_t max_blocks_per_seq; /* block-table width, 1 .. 2^20 */
    bool disable_prefix_caching;
    int32_t test_hash_bits; /* tests only, to force collisions: 1..63 keeps that many low bits
                               of every hash, -1 makes every hash 0; 0: the full hash */
};

struct kv_blocks_stats {
    int32_t n_blocks;
    int32_t in_use;        /* blocks with ref > 0 */
    int32_t free;          /* blocks on the free list (cached or not) */
    int32_t cached_free;   /* free blocks still holding cached content (evictable) */
    int32_t cached;        /* blocks registered in the prefix cache (in use or free) */
    int32_t n_seqs;        /* live sequences */
    uint64_t query_tokens; /* prompt tokens looked up by kv_blocks_seq_new */
    uint64_t hit_tokens;   /* of which found in the cache; hit rate = hit / query */
};

/* kv_blocks_copy: a block whose KV data the engine must copy (src -> dst); -1 -1: none. */
struct kv_blocks_copy {
    int32_t src;
    int32_t dst;
};

struct kv_blocks; /* the region itself, seen through its header */

/* kv_blocks_bytes: the region size for config c; 0 when c is out of range. */
size_t kv_blocks_bytes(const struct kv_blocks_config *c);

/*
 * kv_blocks_init: formats mem (bytes long, 8-byte aligned) as an empty manager: all blocks
 * free, no sequences, zero statistics. Returns 0 and *out (== mem), ERR_RANGE when c is
 * out of range, ERR_INVAL when mem is NULL or misaligned, ERR_LIMIT when bytes is smaller
 * than kv_blocks_bytes(c). The caller owns mem; there is nothing to deinit.
 */
int kv_blocks_init(void *mem, size_t bytes, const struct kv_blocks_config *c,
                   struct kv_blocks **out);

/* kv_blocks_attach: views an initialised region (e.g. another process's mapping or a copy)
 * after checking its magic number and size; NULL when it is not one or bytes is short. */
struct kv_blocks *kv_blocks_attach(void *mem, size_t bytes);

/*
 * kv_blocks_seq_new: takes a free sequence slot for a prompt of prompt_len tokens and
 * shares the longest run of cached full blocks matching its start (at most
 * (prompt_len - 1) / block_size blocks). Returns 0, *slot and *n_cached (tokens already
 * in the cache; the sequence's length is n_cached and the engine appends the remaining
 * prompt_len - n_cached tokens with kv_blocks_append), or ERR_LIMIT when every slot is
 * taken, ERR_INVAL when prompt is NULL with prompt_len > 0. Nothing changes on error.
 */
int kv_blocks_seq_new(struct kv_blocks *kb, const int32_t *prompt, size_t prompt_len, int32_t *slot,
                      size_t *n_cached);

/*
 * kv_blocks_append: makes room for n_new more tokens of sequence slot, allocating blocks
 * as needed (evicting least-recently-freed cached blocks when no uncached free block is
 * left). ids (n_new token ids) may be NULL when unknown; the sequence's later blocks are
 * then never registered in the prefix cache. Each block filled with known tokens is
 * registered. Returns 0, ERR_LIMIT (with no change at all) when the pool lacks free blocks
 * or the sequence would exceed max_blocks_per_seq, ERR_RANGE / ERR_STATE for a slot out of
 * range / not in use.
 */
int kv_blocks_append(struct kv_blocks *kb, int32_t slot, size_t n_new, const int32_t *ids);

/*
 * kv_blocks_seq_fork: a new sequence *child equal to parent: it shares parent's full
 * blocks (ref++) and gets its own copy of a partially filled last block. *copy is the
 * block whose KV data the engine must copy before the child's next step, or {-1, -1}.
 * Returns 0, ERR_LIMIT (no change) when no slot or no free block is left, ERR_RANGE /
 * ERR_STATE for a bad parent.
 */
int kv_blocks_seq_fork(struct kv_blocks *kb, int32_t parent, int32_t *child,
                       struct kv_blocks_copy *copy);

/* kv_blocks_seq_free: releases every block of slot (ref--, free at 0) in O(blocks) and
 * gives the slot back. Returns 0, ERR_RANGE / ERR_STATE for a bad slot. */
int kv_blocks_seq_free(struct kv_blocks *kb, int32_t slot);

/* kv_blocks_seq_abort: kv_blocks_seq_free for a sequence whose last appended tokens were
 * never computed: blocks that become free also lose their cached content. */
int kv_blocks_seq_abort(struct kv_blocks *kb, int32_t slot);

/* kv_blocks_table: slot's block table (kv_blocks_seq_n_blocks entries are valid; the row
 * is max_blocks_per_seq wide), inside the region; NULL when slot is out of range. */
const int32_t *kv_blocks_table(const struct kv_blocks *kb, int32_t slot);

/* kv_blocks_seq_len, kv_blocks_seq_n_blocks: tokens and blocks of slot (0 if not live). */
size_t kv_blocks_seq_len(const struct kv_blocks *kb, int32_t slot);
int32_t kv_blocks_seq_n_blocks(const struct kv_blocks *kb, int32_t slot);

/* kv_blocks_seq_live: whether slot holds a sequence. */
bool kv_blocks_seq_live(const struct kv_blocks *kb, int32_t slot);

/* kv_blocks_slot_of: the KV slot (block * block_size + offset) of position pos of
 * sequence slot; -1 when pos is beyond its length. */
int64_t kv_blocks_slot_of(const struct kv_blocks *kb, int32_t slot, size_t pos);

/* kv_blocks_config_of: the configuration the region was initialised with. */
struct kv_blocks_config kv_blocks_config_of(const struct kv_blocks *kb);

/* kv_blocks_stats: the counters above. */
struct kv_blocks_stats kv_blocks_stats(const struct kv_blocks *kb);

/*
 * kv_blocks_check: verifies every invariant: each block is free-listed with ref 0 or
 * referenced; ref counts equal the table entries pointing at each block; the free list is
 * well formed and as long as the count; partial last blocks are unshared; the hash table
 * holds exactly the cached blocks, each reachable from its home slot and carrying the
 * hash of its content; the slot free list holds exactly the dead slots; counters agree.
 * O(n_blocks + table entries + htab_cap); allocates a scratch array. Returns 0, ERR_STATE
 * with the first violation in err, or ERR_NOMEM.
 */
int kv_blocks_check(const struct kv_blocks *kb, char *err, size_t errlen);

#endif
