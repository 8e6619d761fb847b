/* tok_map: the tokenizer's hash tables (string -> id, and merge pairs). */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"

static inline uint64_t mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

uint64_t tok_hash(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ ((uint64_t)n * 0x100000001B3ull);
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, s, 8);
        h = (h ^ v) * 0x9FB21C651E98DF25ull;
        h ^= h >> 29;
        s += 8;
        n -= 8;
    }
    if (n) {
        uint64_t v = 0;
        memcpy(&v, s, n);
        h = (h ^ v) * 0x9FB21C651E98DF25ull;
    }
    return mix64(h);
}

void tok_strmap_init(struct tok_strmap *m)
{
    memset(m, 0, sizeof *m);
}

void tok_strmap_deinit(struct tok_strmap *m)
{
    free(m->pool);
    free(m->e);
    free(m->slots);
    memset(m, 0, sizeof *m);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need) {
        if (c > SIZE_MAX / 2 / elem)
            return ERR_NOMEM;
        c *= 2;
    }
    void *q = realloc(*p, c * elem);
    if (!q)
        return ERR_NOMEM;
    *p = q;
    *cap = c;
    return 0;
}

static int rehash(struct tok_strmap *m, uint32_t want)
{
    uint32_t cap = 64;
    while (cap < want * 2u)
        cap *= 2;
    uint32_t *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return ERR_NOMEM;
    uint32_t mask = cap - 1;
    for (uint32_t k = 0; k < m->n; k++) {
        uint32_t i = m->e[k].hash & mask;
        while (slots[i])
            i = (i + 1) & mask;
        slots[i] = k + 1;
    }
    free(m->slots);
    m->slots = slots;
    m->mask = mask;
    return 0;
}

const struct tok_str_entry *tok_strmap_find(const struct tok_strmap *m, const char *s, size_t n)
{
    if (!m->slots)
        return NULL;
    uint32_t h = (uint32_t)tok_hash(s, n);
    for (uint32_t i = h & m->mask;; i = (i + 1) & m->mask) {
        uint32_t k = m->slots[i];
        if (!k)
            return NULL;
        const struct tok_str_entry *e = &m->e[k - 1];
        if (e->hash == h && e->len == n && memcmp(m->pool + e->off, s, n) == 0)
            return e;
    }
}

int32_t tok_strmap_get(const struct tok_strmap *m, const char *s, size_t n)
{
    const struct tok_str_entry *e = tok_strmap_find(m, s, n);
    return e ? e->id : -1;
}

int tok_strmap_put(struct tok_strmap *m, const char *s, size_t n, int32_t id)
{
    struct tok_str_entry *old = (struct tok_str_entry *)tok_strmap_find(m, s, n);
    if (old) {
        old->id = id;
        return 0;
    }
    if (m->pool_n + n + 1 > UINT32_MAX || m->n >= UINT32_MAX / 4)
        return ERR_LIMIT;
    size_t cap = m->cap;
    if (grow((void **)&m->e, &cap, (size_t)m->n + 1, sizeof *m->e))
        return ERR_NOMEM;
    m->cap = (uint32_t)cap;
    if (grow((void **)&m->pool, &m->pool_cap, m->pool_n + n + 1, 1))
        return ERR_NOMEM;
    memcpy(m->pool + m->pool_n, s, n);
    m->pool[m->pool_n + n] = 0;
    m->e[m->n] =
        (struct tok_str_entry){(uint32_t)m->pool_n, (uint32_t)n, id, (uint32_t)tok_hash(s, n)};
    m->pool_n += n + 1;
    m->n++;
    if (!m->slots || m->n * 2u > m->mask + 1u)
        return rehash(m, m->n * 2u);
    uint32_t i = m->e[m->n - 1].hash & m->mask;
    while (m->slots[i])
        i = (i + 1) & m->mask;
    m->slots[i] = m->n;
    return 0;
}

int tok_mergemap_init(struct tok_mergemap *m, size_t expected)
{
    size_t cap = 64;
    while (cap < expected + expected / 3 + 1)
        cap *= 2;
    if (cap > UINT32_MAX / 2)
        return ERR_LIMIT;
    memset(m, 0, sizeof *m);
    m->keys = malloc(cap * sizeof *m->keys);
    m->rank = malloc(cap * sizeof *m->rank);
    m->merged = malloc(cap * sizeof *m->merged);
    if (!m->keys || !m->rank || !m->merged) {
        tok_mergemap_deinit(m);
        return ERR_NOMEM;
    }
    memset(m->keys, 0xFF, cap * sizeof *m->keys);
    m->mask = (uint32_t)cap - 1;
    return 0;
}

void tok_mergemap_deinit(struct tok_mergemap *m)
{
    free(m->keys);
    free(m->rank);
    free(m->merged);
    memset(m, 0, sizeof *m);
}

void tok_mergemap_put(struct tok_mergemap *m, int32_t a, int32_t b, uint32_t rank, int32_t merged)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    uint32_t i = (uint32_t)(h >> 32) & m->mask;
    while (m->keys[i] != UINT64_MAX && m->keys[i] != key)
        i = (i + 1) & m->mask;
    if (m->keys[i] == UINT64_MAX)
        m->n++;
    m->keys[i] = key;
    m->rank[i] = rank;
    m->merged[i] = merged;
}
