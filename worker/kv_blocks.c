/*
 * kv_blocks: block tables, reference counts, the LRU free list and the prefix cache, all
 * inside one pointer-free region (see kv_blocks.h for the layout and the rules).
 */
#include "worker/kv_blocks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "worker/kv_blocks_internal.h"

/* kvb_find: the cached block with hash h, parent (parent, pgen) and tokens t, or -1. */
static int32_t kvb_find(const struct kv_blocks *kb, uint64_t h, int32_t parent, uint64_t pgen,
                        const int32_t *t)
{
    const int32_t *ht = kvb_htab(kb);
    const struct kvb_block *bl = kvb_blocks(kb);
    uint32_t m = kb->htab_cap - 1;
    size_t tb = (size_t)kb->block_size * sizeof(int32_t);
    for (uint32_t i = kvb_home(kb, h);; i = (i + 1) & m) {
        int32_t b = ht[i];
        if (b < 0)
            return -1;
        if (bl[b].hash == h && bl[b].parent == parent && bl[b].parent_gen == pgen &&
            memcmp(kvb_tokens(kb, b), t, tb) == 0)
            return b;
    }
}

static void kvb_htab_insert(struct kv_blocks *kb, int32_t b)
{
    int32_t *ht = kvb_htab(kb);
    uint32_t m = kb->htab_cap - 1;
    uint32_t i = kvb_home(kb, kvb_blocks(kb)[b].hash);
    while (ht[i] >= 0)
        i = (i + 1) & m;
    ht[i] = b;
}

/* kvb_htab_delete: removes b with backward-shift deletion (no tombstones). */
static void kvb_htab_delete(struct kv_blocks *kb, int32_t b)
{
    int32_t *ht = kvb_htab(kb);
    const struct kvb_block *bl = kvb_blocks(kb);
    uint32_t m = kb->htab_cap - 1;
    uint32_t i = kvb_home(kb, bl[b].hash);
    while (ht[i] != b)
        i = (i + 1) & m;
    for (uint32_t j = (i + 1) & m; ht[j] >= 0; j = (j + 1) & m) {
        uint32_t home = kvb_home(kb, bl[ht[j]].hash);
        if (((j - home) & m) >= ((j - i) & m)) {
            ht[i] = ht[j];
            i = j;
        }
    }
    ht[i] = -1;
}

static void kvb_uncache(struct kv_blocks *kb, int32_t b)
{
    struct kvb_block *x = &kvb_blocks(kb)[b];
    kvb_htab_delete(kb, b);
    x->flags &= ~(uint32_t)KVB_CACHED;
    x->hash = 0;
    x->gen = 0;
    x->parent = -1;
    x->parent_gen = 0;
    kb->n_cached--;
}

/* ---- free list ---- */

static void kvb_unlink(struct kv_blocks *kb, int32_t b)
{
    struct kvb_block *bl = kvb_blocks(kb);
    if (bl[b].prev >= 0)
        bl[bl[b].prev].next = bl[b].next;
    else
        kb->free_head = bl[b].next;
    if (bl[b].next >= 0)
        bl[bl[b].next].prev = bl[b].prev;
    else
        kb->free_tail = bl[b].prev;
    bl[b].prev = bl[b].next = -1;
    bl[b].flags &= ~(uint32_t)KVB_FREE;
    kb->n_free--;
    if (bl[b].flags & KVB_CACHED)
        kb->n_cached_free--;
}

/* kvb_push: b (ref 0) onto the free list: cached blocks at the tail, others at the head. */
static void kvb_push(struct kv_blocks *kb, int32_t b)
{
    struct kvb_block *bl = kvb_blocks(kb);
    bl[b].flags |= KVB_FREE;
    kb->n_free++;
    if (bl[b].flags & KVB_CACHED) {
        kb->n_cached_free++;
        bl[b].prev = kb->free_tail;
        bl[b].next = -1;
        if (kb->free_tail >= 0)
            bl[kb->free_tail].next = b;
        else
            kb->free_head = b;
        kb->free_tail = b;
    } else {
        bl[b].prev = -1;
        bl[b].next = kb->free_head;
        if (kb->free_head >= 0)
            bl[kb->free_head].prev = b;
        else
            kb->free_tail = b;
        kb->free_head = b;
    }
}

/* kvb_alloc: the free list's head block, evicted from the cache, with ref 1. The caller
 * has checked n_free. */
static int32_t kvb_alloc(struct kv_blocks *kb)
{
    int32_t b = kb->free_head;
    kvb_unlink(kb, b);
    if (kvb_blocks(kb)[b].flags & KVB_CACHED)
        kvb_uncache(kb, b);
    kvb_blocks(kb)[b].ref = 1;
    return b;
}

/* kvb_take: one more reference to b, off the free list if it was free. */
static void kvb_take(struct kv_blocks *kb, int32_t b)
{
    struct kvb_block *x = &kvb_blocks(kb)[b];
    if (x->flags & KVB_FREE)
        kvb_unlink(kb, b);
    x->ref++;
}

static void kvb_release(struct kv_blocks *kb, int32_t b, bool drop_cache)
{
    struct kvb_block *x = &kvb_blocks(kb)[b];
    if (--x->ref > 0)
        return;
    if (drop_cache && (x->flags & KVB_CACHED))
        kvb_uncache(kb, b);
    kvb_push(kb, b);
}

/* ---- set-up ---- */

static bool kvb_config_ok(const struct kv_blocks_config *c)
{
    return c && c->n_blocks >= 1 && c->n_blocks <= (1 << 26) && c->block_size >= 1 &&
           c->block_size <= 4096 && c->max_seqs >= 1 && c->max_seqs <= (1 << 20) &&
           c->max_blocks_per_seq >= 1 && c->max_blocks_per_seq <= (1 << 20) &&
           c->test_hash_bits >= -1 && c->test_hash_bits <= 63;
}

static uint64_t kvb_mask(int32_t bits)
{
    if (bits < 0)
        return 0;
    return bits == 0 ? ~(uint64_t)0 : ((uint64_t)1 << bits) - 1;
}

static uint32_t kvb_htab_cap(int32_t n_blocks)
{
    uint32_t cap = 16;
    while (cap < 2u * (uint32_t)n_blocks)
        cap *= 2;
    return cap;
}

/* kvb_layout: fills the offsets of hdr for c and returns the total size. */
static size_t kvb_layout(const struct kv_blocks_config *c, struct kv_blocks *hdr)
{
    size_t nb = (size_t)c->n_blocks, ns = (size_t)c->max_seqs;
    size_t off = kvb_align8(sizeof(struct kv_blocks));
    hdr->off_blocks = off;
    off += kvb_align8(nb * sizeof(struct kvb_block));
    hdr->off_tokens = off;
    off += kvb_align8(nb * (size_t)c->block_size * sizeof(int32_t));
    hdr->off_seqs = off;
    off += kvb_align8(ns * sizeof(struct kvb_seq));
    hdr->off_tables = off;
    off += kvb_align8(ns * (size_t)c->max_blocks_per_seq * sizeof(int32_t));
    hdr->off_htab = off;
    hdr->htab_cap = kvb_htab_cap(c->n_blocks);
    off += kvb_align8((size_t)hdr->htab_cap * sizeof(int32_t));
    return off;
}

size_t kv_blocks_bytes(const struct kv_blocks_config *c)
{
    struct kv_blocks hdr;
    if (!kvb_config_ok(c))
        return 0;
    return kvb_layout(c, &hdr);
}

static void kvb_reset(struct kv_blocks *kb)
{
    struct kvb_block *bl = kvb_blocks(kb);
    for (int32_t b = 0; b < kb->n_blocks; b++) {
        bl[b] = (struct kvb_block){
            .ref = 0, .prev = b - 1, .next = b + 1, .parent = -1, .flags = KVB_FREE};
    }
    bl[kb->n_blocks - 1].next = -1;
    kb->free_head = 0;
    kb->free_tail = kb->n_blocks - 1;
    kb->n_free = kb->n_blocks;
    struct kvb_seq *sq = kvb_seqs(kb);
    for (int32_t s = 0; s < kb->max_seqs; s++)
        sq[s] = (struct kvb_seq){.next_free = s + 1 < kb->max_seqs ? s + 1 : -1, .chain_block = -1};
    kb->seq_free_head = 0;
    memset(kvb_tokens(kb, 0), 0, (size_t)kb->n_blocks * (size_t)kb->block_size * sizeof(int32_t));
    memset(kvb_row(kb, 0), 0xff,
           (size_t)kb->max_seqs * (size_t)kb->max_blocks_per_seq * sizeof(int32_t));
    memset(kvb_htab(kb), 0xff, (size_t)kb->htab_cap * sizeof(int32_t));
}

int kv_blocks_init(void *mem, size_t bytes, const struct kv_blocks_config *c,
                   struct kv_blocks **out)
{
    if (!kvb_config_ok(c))
        return ERR_RANGE;
    if (!mem || ((uintptr_t)mem & 7) != 0 || !out)
        return ERR_INVAL;
    struct kv_blocks hdr = {0};
    size_t need = kvb_layout(c, &hdr);
    if (bytes < need)
        return ERR_LIMIT;
    hdr.magic = KVB_MAGIC;
    hdr.bytes = need;
    hdr.n_blocks = c->n_blocks;
    hdr.block_size = c->block_size;
    hdr.max_seqs = c->max_seqs;
    hdr.max_blocks_per_seq = c->max_blocks_per_seq;
    hdr.prefix_caching = !c->disable_prefix_caching;
    hdr.hash_mask = kvb_mask(c->test_hash_bits);
    hdr.hash_bits = c->test_hash_bits;
    hdr.next_gen = 1;
    struct kv_blocks *kb = mem;
    *kb = hdr;
    kvb_reset(kb);
    *out = kb;
    return 0;
}

struct kv_blocks *kv_blocks_attach(void *mem, size_t bytes)
{
    struct kv_blocks *kb = mem;
    if (!mem || ((uintptr_t)mem & 7) != 0 || bytes < sizeof *kb || kb->magic != KVB_MAGIC ||
        kb->bytes > bytes)
        return NULL;
    return kb;
}

/* ---- sequences ---- */

static int kvb_seq_get(const struct kv_blocks *kb, int32_t slot, struct kvb_seq **out)
{
    if (slot < 0 || slot >= kb->max_seqs)
        return ERR_RANGE;
    struct kvb_seq *s = &kvb_seqs(kb)[slot];
    if (!s->live)
        return ERR_STATE;
    *out = s;
    return 0;
}

static int32_t kvb_slot_take(struct kv_blocks *kb)
{
    int32_t slot = kb->seq_free_head;
    struct kvb_seq *s = &kvb_seqs(kb)[slot];
    kb->seq_free_head = s->next_free;
    *s = (struct kvb_seq){.live = 1,
                          .next_free = -1,
                          .chain_block = -1,
                          .hash_ok = kb->prefix_caching,
                          .chain_hash = KVB_ROOT};
    kb->n_seqs++;
    return slot;
}

/* kvb_match: shares the cached full blocks that begin prompt; returns how many. */
static int32_t kvb_match(struct kv_blocks *kb, int32_t slot, const int32_t *prompt,
                         size_t prompt_len)
{
    struct kvb_seq *s = &kvb_seqs(kb)[slot];
    int32_t *row = kvb_row(kb, slot);
    size_t bs = (size_t)kb->block_size;
    size_t max = prompt_len ? (prompt_len - 1) / bs : 0;
    if (max > (size_t)kb->max_blocks_per_seq)
        max = (size_t)kb->max_blocks_per_seq;
    int32_t n = 0;
    while ((size_t)n < max) {
        const int32_t *t = prompt + (size_t)n * bs;
        uint64_t h = kvb_hash(kb, s->chain_hash, t);
        int32_t b = kvb_find(kb, h, s->chain_block, s->chain_gen, t);
        if (b < 0)
            break;
        kvb_take(kb, b);
        row[n++] = b;
        s->chain_block = b;
        s->chain_gen = kvb_blocks(kb)[b].gen;
        s->chain_hash = h;
    }
    s->n_blocks = n;
    s->n_hashed = n;
    s->n_tokens = (int64_t)n * kb->block_size;
    return n;
}

int kv_blocks_seq_new(struct kv_blocks *kb, const int32_t *prompt, size_t prompt_len, int32_t *slot,
                      size_t *n_cached)
{
    if (!prompt && prompt_len > 0)
        return ERR_INVAL;
    if (kb->seq_free_head < 0)
        return ERR_LIMIT;
    int32_t sl = kvb_slot_take(kb);
    size_t cached = 0;
    if (kb->prefix_caching) {
        cached = (size_t)kvb_match(kb, sl, prompt, prompt_len) * (size_t)kb->block_size;
        kb->query_tokens += prompt_len;
        kb->hit_tokens += cached;
    }
    *slot = sl;
    if (n_cached)
        *n_cached = cached;
    return 0;
}

/* kvb_register: full block j of sequence slot (tokens known) joins the prefix cache, or
 * the chain moves onto an identical block already cached. */
static void kvb_register(struct kv_blocks *kb, int32_t slot, int32_t j)
{
    struct kvb_seq *s = &kvb_seqs(kb)[slot];
    struct kvb_block *bl = kvb_blocks(kb);
    int32_t b = kvb_row(kb, slot)[j];
    if (s->chain_block >= 0 &&
        (!(bl[s->chain_block].flags & KVB_CACHED) || bl[s->chain_block].gen != s->chain_gen)) {
        s->hash_ok = 0; /* the canonical parent was evicted: the chain cannot continue */
        return;
    }
    const int32_t *t = kvb_tokens(kb, b);
    uint64_t h = kvb_hash(kb, s->chain_hash, t);
    int32_t f = kvb_find(kb, h, s->chain_block, s->chain_gen, t);
    if (f < 0) {
        bl[b].flags |= KVB_CACHED;
        bl[b].hash = h;
        bl[b].parent = s->chain_block;
        bl[b].parent_gen = s->chain_gen;
        bl[b].gen = kb->next_gen++;
        kb->n_cached++;
        kvb_htab_insert(kb, b);
        f = b;
    }
    s->chain_block = f;
    s->chain_gen = bl[f].gen;
    s->chain_hash = h;
    s->n_hashed = j + 1;
}

int kv_blocks_append(struct kv_blocks *kb, int32_t slot, size_t n_new, const int32_t *ids)
{
    struct kvb_seq *s;
    int rc = kvb_seq_get(kb, slot, &s);
    if (rc)
        return rc;
    if (n_new == 0)
        return 0;
    size_t bs = (size_t)kb->block_size, old = (size_t)s->n_tokens;
    size_t max_tokens = (size_t)kb->max_blocks_per_seq * bs;
    if (n_new > max_tokens - old)
        return ERR_LIMIT;
    int32_t need = (int32_t)((old + n_new + bs - 1) / bs) - s->n_blocks;
    if (need > kb->n_free)
        return ERR_LIMIT;
    int32_t *row = kvb_row(kb, slot);
    for (int32_t i = 0; i < need; i++)
        row[s->n_blocks++] = kvb_alloc(kb);
    if (!ids)
        s->hash_ok = 0;
    for (size_t k = 0; ids && k < n_new; k++) {
        size_t pos = old + k;
        kvb_tokens(kb, row[pos / bs])[pos % bs] = ids[k];
    }
    s->n_tokens = (int64_t)(old + n_new);
    while (s->hash_ok && (size_t)(s->n_hashed + 1) * bs <= (size_t)s->n_tokens)
        kvb_register(kb, slot, s->n_hashed);
    return 0;
}

int kv_blocks_seq_fork(struct kv_blocks *kb, int32_t parent, int32_t *child,
                       struct kv_blocks_copy *copy)
{
    struct kvb_seq *p;
    int rc = kvb_seq_get(kb, parent, &p);
    if (rc)
        return rc;
    size_t bs = (size_t)kb->block_size;
    int32_t n_full = (int32_t)((size_t)p->n_tokens / bs);
    bool partial = n_full < p->n_blocks;
    if (kb->seq_free_head < 0 || (partial && kb->n_free < 1))
        return ERR_LIMIT;
    int32_t c = kvb_slot_take(kb);
    struct kvb_seq *cs = &kvb_seqs(kb)[c];
    p = &kvb_seqs(kb)[parent];
    *cs = *p;
    cs->next_free = -1;
    const int32_t *prow = kvb_row(kb, parent);
    int32_t *crow = kvb_row(kb, c);
    for (int32_t j = 0; j < n_full; j++) {
        kvb_take(kb, prow[j]);
        crow[j] = prow[j];
    }
    struct kv_blocks_copy cp = {-1, -1};
    if (partial) {
        cp.src = prow[n_full];
        cp.dst = kvb_alloc(kb);
        memcpy(kvb_tokens(kb, cp.dst), kvb_tokens(kb, cp.src), bs * sizeof(int32_t));
        crow[n_full] = cp.dst;
    }
    *child = c;
    if (copy)
        *copy = cp;
    return 0;
}

static int kvb_seq_release(struct kv_blocks *kb, int32_t slot, bool drop_cache)
{
    struct kvb_seq *s;
    int rc = kvb_seq_get(kb, slot, &s);
    if (rc)
        return rc;
    int32_t *row = kvb_row(kb, slot);
    for (int32_t j = s->n_blocks - 1; j >= 0; j--) {
        kvb_release(kb, row[j], drop_cache);
        row[j] = -1;
    }
    *s = (struct kvb_seq){.next_free = kb->seq_free_head, .chain_block = -1};
    kb->seq_free_head = slot;
    kb->n_seqs--;
    return 0;
}

int kv_blocks_seq_free(struct kv_blocks *kb, int32_t slot)
{
    return kvb_seq_release(kb, slot, false);
}

int kv_blocks_seq_abort(struct kv_blocks *kb, int32_t slot)
{
    return kvb_seq_release(kb, slot, true);
}

/* ---- readers ---- */

const int32_t *kv_blocks_table(const struct kv_blocks *kb, int32_t slot)
{
    if (slot < 0 || slot >= kb->max_seqs)
        return NULL;
    return kvb_row(kb, slot);
}

bool kv_blocks_seq_live(const struct kv_blocks *kb, int32_t slot)
{
    return slot >= 0 && slot < kb->max_seqs && kvb_seqs(kb)[slot].live;
}

size_t kv_blocks_seq_len(const struct kv_blocks *kb, int32_t slot)
{
    return kv_blocks_seq_live(kb, slot) ? (size_t)kvb_seqs(kb)[slot].n_tokens : 0;
}

int32_t kv_blocks_seq_n_blocks(const struct kv_blocks *kb, int32_t slot)
{
    return kv_blocks_seq_live(kb, slot) ? kvb_seqs(kb)[slot].n_blocks : 0;
}

int64_t kv_blocks_slot_of(const struct kv_blocks *kb, int32_t slot, size_t pos)
{
    if (pos >= kv_blocks_seq_len(kb, slot))
        return -1;
    size_t bs = (size_t)kb->block_size;
    return (int64_t)kvb_row(kb, slot)[pos / bs] * (int64_t)bs + (int64_t)(pos % bs);
}

struct kv_blocks_config kv_blocks_config_of(const struct kv_blocks *kb)
{
    return (struct kv_blocks_config){.n_blocks = kb->n_blocks,
                                     .block_size = kb->block_size,
                                     .max_seqs = kb->max_seqs,
                                     .max_blocks_per_seq = kb->max_blocks_per_seq,
                                     .disable_prefix_caching = !kb->prefix_caching,
                                     .test_hash_bits = kb->hash_bits};
}

struct kv_blocks_stats kv_blocks_stats(const struct kv_blocks *kb)
{
    return (struct kv_blocks_stats){.n_blocks = kb->n_blocks,
                                    .in_use = kb->n_blocks - kb->n_free,
                                    .free = kb->n_free,
                                    .cached_free = kb->n_cached_free,
                                    .cached = kb->n_cached,
                                    .n_seqs = kb->n_seqs,
                                    .query_tokens = kb->query_tokens,
                                    .hit_tokens = kb->hit_tokens};
}
