/*
 * tok_bpe: the BPE model, as HF's models::bpe. A word becomes one symbol per character
 * (or per byte, for byte-level words), characters missing from the vocabulary fall back to
 * <0xNN> byte tokens or to the unknown token, and then the pair of adjacent symbols with the
 * lowest merge rank is merged, leftmost first, until no pair merges. A per-encoder cache
 * remembers the ids of recent words.
 */
#include "tok_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "utf8.h"

#define CACHE_SLOTS 65536u /* power of two */
#define CACHE_MAX_KEY 256u /* longer words are not cached (as HF) */
#define CACHE_MAX_POOL (8u << 20)

/* GPT-2's bytes_to_unicode: printable bytes stand for themselves, the others move to
 * U+0100 and up, in byte order. */
const uint16_t tok_byte_to_cp[256] = {
#define R8(b) b, b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7
    /* 0x00-0x20 -> U+0100-U+0120 */
    R8(0x100),
    R8(0x108),
    R8(0x110),
    R8(0x118),
    0x120,
    /* 0x21-0x7E are themselves */
    0x21,
    0x22,
    0x23,
    0x24,
    0x25,
    0x26,
    0x27,
    R8(0x28),
    R8(0x30),
    R8(0x38),
    R8(0x40),
    R8(0x48),
    R8(0x50),
    R8(0x58),
    R8(0x60),
    R8(0x68),
    R8(0x70),
    0x78,
    0x79,
    0x7A,
    0x7B,
    0x7C,
    0x7D,
    0x7E,
    /* 0x7F-0xA0 -> U+0121-U+0142 */
    0x121,
    0x122,
    0x123,
    0x124,
    0x125,
    0x126,
    0x127,
    R8(0x128),
    R8(0x130),
    R8(0x138),
    0x140,
    0x141,
    0x142,
    /* 0xA1-0xAC are themselves, 0xAD -> U+0143, 0xAE-0xFF are themselves */
    0xA1,
    0xA2,
    0xA3,
    0xA4,
    0xA5,
    0xA6,
    0xA7,
    0xA8,
    0xA9,
    0xAA,
    0xAB,
    0xAC,
    0x143,
    0xAE,
    0xAF,
    R8(0xB0),
    R8(0xB8),
    R8(0xC0),
    R8(0xC8),
    R8(0xD0),
    R8(0xD8),
    R8(0xE0),
    R8(0xE8),
    R8(0xF0),
    R8(0xF8),
#undef R8
};

int tok_cp_to_byte(uint32_t cp)
{
    if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF))
        return (int)cp;
    if (cp >= 0x100 && cp <= 0x143)
        for (int b = 0; b < 256; b++)
            if (tok_byte_to_cp[b] == cp)
                return b;
    return -1;
}

/* meta_chunks_ok: true when no vocabulary token has a "▁" right after another character
 * than "▁", and "▁" itself is a token: then no merge can cross the start of a "▁" run, and
 * a long word may be cut there and its chunks encoded on their own with the same result. */
static bool meta_chunks_ok(const struct tok_bpe *m)
{
    if (m->prefix || m->suffix || m->ignore_merges ||
        tok_strmap_get(&m->vocab, "\xE2\x96\x81", 3) < 0)
        return false;
    for (uint32_t k = 0; k < m->vocab.n; k++) {
        const char *s = m->vocab.pool + m->vocab.e[k].off;
        size_t n = m->vocab.e[k].len;
        for (size_t i = 1; i + 3 <= n; i++) {
            if (memcmp(s + i, "\xE2\x96\x81", 3) != 0)
                continue;
            if (i < 3 || memcmp(s + i - 3, "\xE2\x96\x81", 3) != 0)
                return false;
        }
    }
    return true;
}

int tok_bpe_finish(struct tok_bpe *m, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    char name[8], enc[4];
    for (int b = 0; b < 256; b++) {
        snprintf(name, sizeof name, "<0x%02X>", b);
        m->byte_tok[b] = tok_strmap_get(&m->vocab, name, 6);
        int32_t id = tok_strmap_get(&m->vocab, enc, utf8_encode(tok_byte_to_cp[b], enc));
        m->bl_tok[b] = id >= 0 ? id : -2;
    }
    m->cp_tok = malloc(TOK_CP_DIRECT * sizeof *m->cp_tok);
    if (!m->cp_tok)
        return ERR_NOMEM;
    for (uint32_t cp = 0; cp < TOK_CP_DIRECT; cp++) {
        size_t l = (cp >= 0xD800 && cp <= 0xDFFF) ? 0 : utf8_encode(cp, enc);
        m->cp_tok[cp] = l ? tok_strmap_get(&m->vocab, enc, l) : -1;
    }
    m->unk_id = m->unk ? tok_strmap_get(&m->vocab, m->unk, strlen(m->unk)) : -1;
    m->meta_chunks = meta_chunks_ok(m);
    return 0;
}

void tok_bpe_deinit(struct tok_bpe *m)
{
    tok_strmap_deinit(&m->vocab);
    tok_mergemap_deinit(&m->merges);
    free(m->unk);
    free(m->prefix);
    free(m->suffix);
    free(m->cp_tok);
    memset(m, 0, sizeof *m);
}

/* ---- symbols ---- */

static int sym_reserve(struct tok_enc *e, size_t n)
{
    if (n <= e->sym_cap)
        return 0;
    if (n >= (1u << 31))
        return ERR_LIMIT;
    size_t c = e->sym_cap ? e->sym_cap : 256;
    while (c < n)
        c *= 2;
    int32_t *id = realloc(e->sym_id, c * sizeof *id);
    if (id)
        e->sym_id = id;
    int32_t *pv = realloc(e->sym_prev, c * sizeof *pv);
    if (pv)
        e->sym_prev = pv;
    int32_t *nx = realloc(e->sym_next, c * sizeof *nx);
    if (nx)
        e->sym_next = nx;
    uint32_t *ln = realloc(e->sym_len, c * sizeof *ln);
    if (ln)
        e->sym_len = ln;
    uint64_t *hp = realloc(e->heap, 3 * c * sizeof *hp); /* <= 3 queued pairs a symbol */
    if (hp)
        e->heap = hp;
    if (!id || !pv || !nx || !ln || !hp)
        return ERR_NOMEM;
    e->sym_cap = c;
    e->heap_cap = 3 * c;
    return 0;
}

struct word {
    struct tok_enc *e;
    const struct tok_bpe *m;
    size_t n;         /* symbols so far */
    int32_t unk;      /* pending unknown token id, -1 none */
    uint32_t unk_len; /* its byte length */
};

static void sym_add(struct word *w, int32_t id, uint32_t len)
{
    struct tok_enc *e = w->e;
    size_t i = w->n++;
    e->sym_id[i] = id;
    e->sym_len[i] = len;
    e->sym_prev[i] = (int32_t)i - 1;
    e->sym_next[i] = -1;
    if (i)
        e->sym_next[i - 1] = (int32_t)i;
}

/* char_add: HF merge_word's body for one character whose lookup string is s[0..n) (the
 * character with any subword prefix/suffix) and whose byte length is len; id its vocab id
 * or -1. */
static void char_add(struct word *w, int32_t id, const char *s, size_t n, uint32_t len)
{
    const struct tok_bpe *m = w->m;
    if (id >= 0) {
        if (w->unk >= 0) {
            sym_add(w, w->unk, w->unk_len);
            w->unk = -1;
        }
        sym_add(w, id, len);
        return;
    }
    if (m->byte_fallback) {
        size_t i = 0;
        while (i < n && m->byte_tok[(uint8_t)s[i]] >= 0)
            i++;
        if (i == n) {
            for (i = 0; i < n; i++)
                sym_add(w, m->byte_tok[(uint8_t)s[i]], 1);
            return;
        }
    }
    if (m->unk_id < 0)
        return; /* no unk token: HF drops the character */
    if (w->unk >= 0 && m->fuse_unk) {
        w->unk_len += len;
        return;
    }
    if (w->unk >= 0)
        sym_add(w, w->unk, w->unk_len);
    w->unk = m->unk_id;
    w->unk_len = len;
}

/* lookup_affixed: the id of prefix + c + suffix as the position requires. */
static int32_t lookup_affixed(struct word *w, const char *c, size_t cl, bool first, bool last,
                              struct buf *tmp)
{
    const struct tok_bpe *m = w->m;
    buf_reset(tmp);
    if (!first && m->prefix)
        buf_append(tmp, m->prefix, m->prefix_n);
    buf_append(tmp, c, cl);
    if (last && m->suffix)
        buf_append(tmp, m->suffix, m->suffix_n);
    return tok_strmap_get(&m->vocab, tmp->p, tmp->n);
}

/* symbols_init: one symbol per character (byte-level: per byte). */
static int symbols_init(struct word *w, const char *s, size_t n, bool bytelevel)
{
    const struct tok_bpe *m = w->m;
    char enc[4];
    w->n = 0;
    w->unk = -1;
    bool affix = m->prefix || m->suffix;
    /* a character gives at most its byte length in symbols (byte fallback), plus the
     * affixes' bytes; a byte-level byte at most 2 */
    size_t bound = (bytelevel ? 2 * n : n) + (affix ? n * (m->prefix_n + m->suffix_n + 2) : 0);
    int rc = sym_reserve(w->e, bound + 4);
    if (rc)
        return rc;
    struct buf *tmp = &w->e->word;
    for (size_t i = 0; i < n;) {
        if (bytelevel) {
            uint8_t b = (uint8_t)s[i++];
            size_t l = utf8_encode(tok_byte_to_cp[b], enc);
            if (affix) {
                int32_t id = lookup_affixed(w, enc, l, i == 1, i == n, tmp);
                char_add(w, id, tmp->p, tmp->n, 1);
            } else {
                char_add(w, m->bl_tok[b] >= 0 ? m->bl_tok[b] : -1, enc, l, 1);
            }
            continue;
        }
        uint32_t cp;
        size_t l = utf8_decode(s + i, n - i, &cp);
        if (!l)
            return ERR_INVAL;
        if (affix) {
            int32_t id = lookup_affixed(w, s + i, l, i == 0, i + l == n, tmp);
            char_add(w, id, tmp->p, tmp->n, (uint32_t)l);
        } else {
            int32_t id = cp < TOK_CP_DIRECT ? m->cp_tok[cp] : tok_strmap_get(&m->vocab, s + i, l);
            char_add(w, id, s + i, l, (uint32_t)l);
        }
        i += l;
    }
    if (w->unk >= 0)
        sym_add(w, w->unk, w->unk_len);
    return 0;
}

/* ---- the merge loop ---- */

static void heap_push(struct tok_enc *e, uint64_t key)
{
    size_t i = e->heap_n++;
    uint64_t *h = e->heap;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p] <= key)
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = key;
}

static uint64_t heap_pop(struct tok_enc *e)
{
    uint64_t *h = e->heap;
    uint64_t top = h[0], last = h[--e->heap_n];
    size_t n = e->heap_n, i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && h[c + 1] < h[c])
            c++;
        if (last <= h[c])
            break;
        h[i] = h[c];
        i = c;
    }
    if (n)
        h[i] = last;
    return top;
}

static void try_push(struct tok_enc *e, const struct tok_mergemap *mm, int32_t pos)
{
    uint32_t rank;
    int32_t merged;
    int32_t nx = e->sym_next[pos];
    if (nx >= 0 && tok_mergemap_get(mm, e->sym_id[pos], e->sym_id[nx], &rank, &merged)) {
        if (e->heap_n < e->heap_cap)
            heap_push(e, ((uint64_t)rank << 32) | (uint32_t)pos);
    }
}

static void merge_all(struct tok_enc *e, const struct tok_mergemap *mm, size_t n)
{
    e->heap_n = 0;
    for (size_t i = 0; i + 1 < n; i++)
        try_push(e, mm, (int32_t)i);
    while (e->heap_n) {
        uint64_t top = heap_pop(e);
        int32_t p = (int32_t)(uint32_t)top;
        uint32_t want = (uint32_t)(top >> 32), rank;
        int32_t q = e->sym_next[p], merged;
        if (e->sym_len[p] == 0 || q < 0)
            continue;
        if (!tok_mergemap_get(mm, e->sym_id[p], e->sym_id[q], &rank, &merged) || rank != want)
            continue; /* stale: the pair at p changed since it was queued */
        e->sym_id[p] = merged;
        e->sym_len[p] += e->sym_len[q];
        e->sym_len[q] = 0;
        e->sym_next[p] = e->sym_next[q];
        if (e->sym_next[q] >= 0)
            e->sym_prev[e->sym_next[q]] = p;
        if (e->sym_prev[p] >= 0)
            try_push(e, mm, e->sym_prev[p]);
        try_push(e, mm, p);
    }
}

/* ---- the word cache ---- */

static void cache_clear(struct tok_enc *e)
{
    memset(e->cache, 0, (size_t)(e->cache_mask + 1) * sizeof *e->cache);
    e->cache_n = 0;
    buf_reset(&e->cache_pool);
    e->cache_ids_n = 0;
}

static struct tok_cache_slot *cache_find(struct tok_enc *e, const char *w, size_t n, uint64_t h)
{
    for (uint32_t i = (uint32_t)h & e->cache_mask;; i = (i + 1) & e->cache_mask) {
        struct tok_cache_slot *s = &e->cache[i];
        if (s->hash == 0)
            return s;
        if (s->hash == h && s->key_len == n && memcmp(e->cache_pool.p + s->key_off, w, n) == 0)
            return s;
    }
}

static int cache_put(struct tok_enc *e, struct tok_cache_slot *slot, uint64_t h, const char *w,
                     size_t n, const int32_t *ids, size_t k)
{
    if (e->cache_ids_n + k > e->cache_ids_cap) {
        size_t c = e->cache_ids_cap ? e->cache_ids_cap * 2 : 65536;
        while (c < e->cache_ids_n + k)
            c *= 2;
        int32_t *v = realloc(e->cache_ids, c * sizeof *v);
        if (!v)
            return ERR_NOMEM;
        e->cache_ids = v;
        e->cache_ids_cap = c;
    }
    size_t off = e->cache_pool.n;
    if (buf_append(&e->cache_pool, w, n))
        return ERR_NOMEM;
    if (k)
        memcpy(e->cache_ids + e->cache_ids_n, ids, k * sizeof *ids);
    *slot = (struct tok_cache_slot){h, (uint32_t)off, (uint32_t)n, (uint32_t)e->cache_ids_n,
                                    (uint32_t)k};
    e->cache_ids_n += k;
    e->cache_n++;
    return 0;
}

/* whole_word_id: with ignore_merges, a word that is itself a token is that token. */
static int32_t whole_word_id(struct tok_enc *e, const char *w, size_t n, bool bytelevel)
{
    const struct tok_bpe *m = &e->t->bpe;
    if (!bytelevel)
        return tok_strmap_get(&m->vocab, w, n);
    buf_reset(&e->word);
    if (buf_reserve(&e->word, 2 * n))
        return -1;
    char *p = e->word.p;
    for (size_t i = 0; i < n; i++) { /* the byte-level alphabet is U+0021..U+0143 */
        uint32_t cp = tok_byte_to_cp[(uint8_t)w[i]];
        if (cp < 0x80) {
            *p++ = (char)cp;
        } else {
            *p++ = (char)(0xC0 | (cp >> 6));
            *p++ = (char)(0x80 | (cp & 0x3F));
        }
    }
    return tok_strmap_get(&m->vocab, e->word.p, (size_t)(p - e->word.p));
}

/* encode_chunk: one word (whole) or one chunk of a word: the cache, then ignore_merges'
 * whole-word lookup (whole words only), then the merges. */
static int encode_chunk(struct tok_enc *e, const char *w, size_t n, bool bytelevel, bool whole,
                        struct tok_ids *out)
{
    const struct tok_bpe *m = &e->t->bpe;
    bool cacheable = e->cache && n < CACHE_MAX_KEY;
    uint64_t h = 0;
    struct tok_cache_slot *slot = NULL;
    if (cacheable) {
        h = tok_hash(w, n) | 1;
        slot = cache_find(e, w, n, h);
        if (slot->hash) {
            int rc = 0;
            for (uint32_t k = 0; rc == 0 && k < slot->ids_n; k++)
                rc = tok_ids_push(out, e->cache_ids[slot->ids_off + k]);
            return rc;
        }
    }
    size_t first = out->n;
    int32_t id = whole && m->ignore_merges ? whole_word_id(e, w, n, bytelevel) : -1;
    int rc = 0;
    if (id >= 0) {
        rc = tok_ids_push(out, id);
    } else {
        struct word wd = {e, m, 0, -1, 0};
        rc = symbols_init(&wd, w, n, bytelevel);
        if (rc)
            return rc;
        merge_all(e, &m->merges, wd.n);
        for (int32_t i = wd.n ? 0 : -1; rc == 0 && i >= 0; i = e->sym_next[i])
            rc = tok_ids_push(out, e->sym_id[i]);
    }
    if (rc || !cacheable)
        return rc;
    if (e->cache_n * 4 >= (e->cache_mask + 1) * 3 || e->cache_pool.n > CACHE_MAX_POOL) {
        cache_clear(e);
        slot = cache_find(e, w, n, h);
    }
    return cache_put(e, slot, h, w, n, out->n > first ? out->v + first : NULL, out->n - first);
}

/* meta_cut: the next cut point after i: before a "▁" that follows another character. */
static size_t meta_cut(const char *w, size_t n, size_t i)
{
    for (size_t k = i + 1; k + 3 <= n; k++) {
        if (memcmp(w + k, "\xE2\x96\x81", 3) == 0 &&
            !(k >= 3 && memcmp(w + k - 3, "\xE2\x96\x81", 3) == 0))
            return k;
    }
    return n;
}

int tok_bpe_word(struct tok_enc *e, const char *w, size_t n, bool bytelevel, struct tok_ids *out)
{
    const struct tok_bpe *m = &e->t->bpe;
    if (n == 0)
        return 0;
    if (!m->meta_chunks || bytelevel)
        return encode_chunk(e, w, n, bytelevel, true, out);
    for (size_t i = 0; i < n;) {
        size_t j = meta_cut(w, n, i);
        int rc = encode_chunk(e, w + i, j - i, false, i == 0 && j == n, out);
        if (rc)
            return rc;
        i = j;
    }
    return 0;
}
