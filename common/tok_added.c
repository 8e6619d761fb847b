/*
 * tok_added: added tokens. Finds them in text the way HF's AddedVocabulary does: a
 * leftmost-longest scan over a byte trie, then the single_word, lstrip and rstrip rules.
 */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "utf8.h"

static int trie_node_new(struct tok_trie *t, uint8_t byte, uint32_t *out)
{
    if (t->n == t->cap) {
        uint32_t c = t->cap ? t->cap * 2 : 64;
        struct tok_trie_node *v = realloc(t->nodes, (size_t)c * sizeof *v);
        if (!v)
            return ERR_NOMEM;
        t->nodes = v;
        t->cap = c;
    }
    t->nodes[t->n] = (struct tok_trie_node){0, 0, -1, byte};
    *out = t->n++;
    return 0;
}

int tok_trie_add(struct tok_trie *t, const char *s, size_t n, int32_t token)
{
    uint32_t cur = 0;
    if (t->n == 0 && trie_node_new(t, 0, &cur))
        return ERR_NOMEM;
    if (n == 0)
        return 0;
    uint8_t b0 = (uint8_t)s[0];
    bool had = (t->first[b0 >> 3] >> (b0 & 7)) & 1;
    t->first[b0 >> 3] |= (uint8_t)(1u << (b0 & 7));
    if (!had)
        t->n_first++;
    t->single_first = t->n_first == 1 ? (int)b0 : -1;
    for (size_t i = 0; i < n; i++) {
        uint8_t b = (uint8_t)s[i];
        uint32_t child = cur == 0 ? t->root_child[b] : t->nodes[cur].child;
        if (cur != 0)
            while (child && t->nodes[child].byte != b)
                child = t->nodes[child].sibling;
        if (!child) {
            if (trie_node_new(t, b, &child))
                return ERR_NOMEM;
            if (cur == 0) {
                t->root_child[b] = child;
            } else {
                t->nodes[child].sibling = t->nodes[cur].child;
                t->nodes[cur].child = child;
            }
        }
        cur = child;
    }
    t->nodes[cur].token = token;
    return 0;
}

void tok_trie_deinit(struct tok_trie *t)
{
    free(t->nodes);
    memset(t, 0, sizeof *t);
}

/* longest_at: the longest token starting at s[i]; returns its length, 0 if none. */
static size_t longest_at(const struct tok_trie *t, const char *s, size_t n, size_t i,
                         int32_t *token)
{
    size_t best = 0;
    uint32_t cur = t->root_child[(uint8_t)s[i]];
    for (size_t k = i; cur;) {
        if (t->nodes[cur].token >= 0) {
            best = k + 1 - i;
            *token = t->nodes[cur].token;
        }
        if (++k >= n)
            break;
        uint8_t b = (uint8_t)s[k];
        cur = t->nodes[cur].child;
        while (cur && t->nodes[cur].byte != b)
            cur = t->nodes[cur].sibling;
    }
    return best;
}

/* Rust regex \w and \s tests at the edges of a token, for single_word, lstrip and rstrip. */
static bool ends_with_word(const char *s, size_t n)
{
    if (n == 0)
        return false;
    size_t i = n - 1;
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80)
        i--;
    uint32_t cp;
    return utf8_decode(s + i, n - i, &cp) && uc_is_word(cp);
}

static bool starts_with_word(const char *s, size_t n)
{
    uint32_t cp;
    return n > 0 && utf8_decode(s, n, &cp) && uc_is_word(cp);
}

static size_t space_start_of_tail(const char *s, size_t n) /* start of the trailing \s* */
{
    size_t i = n;
    while (i > 0) {
        size_t j = i - 1;
        while (j > 0 && ((unsigned char)s[j] & 0xC0) == 0x80)
            j--;
        uint32_t cp;
        if (!utf8_decode(s + j, i - j, &cp) || !uc_is_white_space(cp))
            break;
        i = j;
    }
    return i;
}

static size_t space_len_of_head(const char *s, size_t n) /* length of the leading \s* */
{
    size_t i = 0;
    uint32_t cp;
    while (i < n) {
        size_t l = utf8_decode(s + i, n - i, &cp);
        if (!l || !uc_is_white_space(cp))
            break;
        i += l;
    }
    return i;
}

static int segs_push(struct tok_segs *o, size_t start, size_t end, int32_t token)
{
    if (o->n == o->cap) {
        size_t c = o->cap ? o->cap * 2 : 16;
        struct tok_seg *v = realloc(o->v, c * sizeof *v);
        if (!v)
            return ERR_NOMEM;
        o->v = v;
        o->cap = c;
    }
    o->v[o->n++] = (struct tok_seg){(uint32_t)start, (uint32_t)end, token};
    return 0;
}

int tok_added_split(const struct tokenizer *t, const struct tok_trie *trie, const char *s, size_t n,
                    struct tok_segs *out)
{
    out->n = 0;
    size_t from = 0; /* HF's start_offset: end of the previous token */
    for (size_t i = 0; trie->n && i < n;) {
        if (trie->single_first >= 0) { /* every token starts with the same byte: memchr */
            const char *p = memchr(s + i, trie->single_first, n - i);
            if (!p)
                break;
            i = (size_t)(p - s);
        }
        uint8_t b = (uint8_t)s[i];
        int32_t tok = -1;
        size_t len = (trie->first[b >> 3] >> (b & 7)) & 1 ? longest_at(trie, s, n, i, &tok) : 0;
        if (!len) {
            i++;
            continue;
        }
        size_t start = i, stop = i + len;
        i = stop; /* the scan goes on after the raw match, as the Aho-Corasick iterator does */
        const struct tok_added *a = &t->added[tok];
        if (a->single_word && ((start > 0 && ends_with_word(s, start)) ||
                               (stop < n && starts_with_word(s + stop, n - stop))))
            continue;
        if (a->lstrip) {
            size_t ns = space_start_of_tail(s, start);
            start = ns > from ? ns : from;
        }
        if (a->rstrip)
            stop += space_len_of_head(s + stop, n - stop);
        if (from < start && segs_push(out, from, start, -1))
            return ERR_NOMEM;
        if (segs_push(out, start, stop, tok))
            return ERR_NOMEM;
        from = stop;
    }
    if (from != n && segs_push(out, from, n, -1))
        return ERR_NOMEM;
    return 0;
}
