/*
 * tok_decode: ids -> text, as HF's Tokenizer::decode: each id becomes its token string
 * (added tokens first, then the model's vocabulary; special tokens dropped on request),
 * then the decoder stages rewrite the list of strings, and the result is joined. Also the
 * per-token views of tokenizer.h.
 */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "utf8.h"

void tok_strlist_init(struct tok_strlist *l)
{
    memset(l, 0, sizeof *l);
    buf_init(&l->bytes, 0);
}

void tok_strlist_deinit(struct tok_strlist *l)
{
    buf_deinit(&l->bytes);
    free(l->off);
    memset(l, 0, sizeof *l);
}

void tok_strlist_clear(struct tok_strlist *l)
{
    buf_reset(&l->bytes);
    l->n = 0;
}

int tok_strlist_push(struct tok_strlist *l, const char *s, size_t n)
{
    if (l->n + 2 > l->cap) {
        size_t c = l->cap ? l->cap * 2 : 64;
        uint32_t *v = realloc(l->off, c * sizeof *v);
        if (!v)
            return ERR_NOMEM;
        l->off = v;
        l->cap = c;
    }
    if (l->bytes.n + n > UINT32_MAX)
        return ERR_LIMIT;
    l->off[l->n] = (uint32_t)l->bytes.n;
    int rc = buf_append(&l->bytes, s, n);
    if (rc)
        return rc;
    l->off[++l->n] = (uint32_t)l->bytes.n;
    return 0;
}

#define STR(l, i) ((l)->bytes.p + (l)->off[i])
#define LEN(l, i) ((size_t)((l)->off[(i) + 1] - (l)->off[i]))

/* byte_token: whether s is "<0xNN>" (HF: six characters, "<0x", two hex digits, ">"). */
static int byte_token(const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEFabcdef";
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>' || !s[3] || !s[4] || !strchr(hex, s[3]) ||
        !strchr(hex, s[4]))
        return -1;
    int hi = s[3] <= '9' ? s[3] - '0' : (s[3] | 0x20) - 'a' + 10;
    int lo = s[4] <= '9' ? s[4] - '0' : (s[4] | 0x20) - 'a' + 10;
    return hi * 16 + lo;
}

/* bytelevel_bytes: a token's characters mapped back to bytes; the token's own bytes when a
 * character is outside the byte-level alphabet (as HF). */
static int bytelevel_bytes(const char *s, size_t n, struct buf *out)
{
    size_t start = out->n;
    uint32_t cp;
    for (size_t i = 0; i < n;) {
        size_t l = utf8_decode(s + i, n - i, &cp);
        int b = l ? tok_cp_to_byte(cp) : -1;
        if (b < 0) {
            out->n = start;
            return buf_append(out, s, n);
        }
        int rc = buf_append_byte(out, (char)b);
        if (rc)
            return rc;
        i += l;
    }
    return 0;
}

static int dec_bytelevel(struct tok_strlist *in, struct tok_strlist *out, struct buf *tmp)
{
    buf_reset(tmp);
    for (size_t i = 0; i < in->n; i++)
        if (bytelevel_bytes(STR(in, i), LEN(in, i), tmp))
            return ERR_NOMEM;
    /* one string: an empty entry, then its bytes appended in place */
    int rc = tok_strlist_push(out, "", 0);
    if (rc == 0)
        rc = utf8_append_lossy(&out->bytes, tmp->p, tmp->n);
    if (rc == 0 && out->bytes.n > UINT32_MAX)
        rc = ERR_LIMIT;
    out->off[out->n] = (uint32_t)out->bytes.n;
    return rc;
}

static int flush_run(struct tok_strlist *out, struct buf *run)
{
    int rc = 0;
    if (!run->n)
        return 0;
    if (utf8_valid(run->p, run->n))
        rc = tok_strlist_push(out, run->p, run->n);
    else
        for (size_t k = 0; rc == 0 && k < run->n; k++)
            rc = tok_strlist_push(out, "\xEF\xBF\xBD", 3);
    buf_reset(run);
    return rc;
}

static int dec_byte_fallback(struct tok_strlist *in, struct tok_strlist *out, struct buf *run)
{
    buf_reset(run);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < in->n; i++) {
        int b = byte_token(STR(in, i), LEN(in, i));
        if (b >= 0) {
            rc = buf_append_byte(run, (char)b);
            continue;
        }
        rc = flush_run(out, run);
        if (rc == 0)
            rc = tok_strlist_push(out, STR(in, i), LEN(in, i));
    }
    return rc ? rc : flush_run(out, run);
}

static int dec_metaspace(const struct tok_dec *d, bool first, struct tok_strlist *in,
                         struct tok_strlist *out, struct buf *tmp)
{
    char rep[4];
    size_t rn = utf8_encode(d->ch, rep);
    for (size_t i = 0; i < in->n; i++) {
        const char *s = STR(in, i);
        size_t n = LEN(in, i);
        bool drop = i == 0 && first && d->prepend != TOK_PREPEND_NEVER;
        buf_reset(tmp);
        for (size_t k = 0; k < n;) {
            if (k + rn <= n && memcmp(s + k, rep, rn) == 0) {
                if (!drop && buf_append_byte(tmp, ' '))
                    return ERR_NOMEM;
                k += rn;
            } else if (buf_append_byte(tmp, s[k++])) {
                return ERR_NOMEM;
            }
        }
        if (tok_strlist_push(out, tmp->p, tmp->n))
            return ERR_NOMEM;
    }
    return 0;
}

static int dec_strip(const struct tok_dec *d, struct tok_strlist *in, struct tok_strlist *out)
{
    char c[4];
    size_t cn = utf8_encode(d->ch, c);
    for (size_t i = 0; i < in->n; i++) {
        const char *s = STR(in, i);
        size_t a = 0, b = LEN(in, i);
        for (size_t k = 0; k < d->start && a + cn <= b && memcmp(s + a, c, cn) == 0; k++)
            a += cn;
        for (size_t k = 0; k < d->stop && b >= a + cn && memcmp(s + b - cn, c, cn) == 0; k++)
            b -= cn;
        if (tok_strlist_push(out, s + a, b - a))
            return ERR_NOMEM;
    }
    return 0;
}

static int dec_replace(const struct tok_dec *d, struct tok_rx *rx, struct tok_strlist *in,
                       struct tok_strlist *out, struct buf *tmp)
{
    struct tok_spans sp = {0};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < in->n; i++) {
        const char *s = STR(in, i);
        rc = tok_pattern_find(&d->pat, rx, s, LEN(in, i), &sp);
        buf_reset(tmp);
        for (size_t k = 0; rc == 0 && k < sp.n; k++)
            rc = sp.v[k].match ? buf_append(tmp, d->str, d->str_n)
                               : buf_append(tmp, s + sp.v[k].start, sp.v[k].end - sp.v[k].start);
        if (rc == 0)
            rc = tok_strlist_push(out, tmp->p, tmp->n);
    }
    free(sp.v);
    return rc;
}

static int run_stage(const struct tok_dec *d, bool first, struct tok_strlist *in,
                     struct tok_strlist *out, struct tok_rx *rx, struct buf *tmp)
{
    switch (d->type) {
    case TOK_DEC_BYTELEVEL: return dec_bytelevel(in, out, tmp);
    case TOK_DEC_FUSE: return tok_strlist_push(out, in->bytes.p, in->bytes.n);
    case TOK_DEC_BYTE_FALLBACK: return dec_byte_fallback(in, out, tmp);
    case TOK_DEC_METASPACE: return dec_metaspace(d, first, in, out, tmp);
    case TOK_DEC_STRIP: return dec_strip(d, in, out);
    case TOK_DEC_REPLACE: return dec_replace(d, rx, in, out, tmp);
    }
    return ERR_INVAL;
}

int tok_decoders_run(const struct tokenizer *t, size_t from, size_t to, bool first,
                     struct tok_strlist *in, struct tok_strlist *out, struct tok_rx *rx)
{
    struct buf tmp;
    buf_init(&tmp, 0);
    struct tok_strlist *a = in, *b = out;
    int rc = 0;
    for (size_t i = from; rc == 0 && i < to; i++) {
        tok_strlist_clear(b);
        rc = run_stage(&t->decs[i], first, a, b, rx, &tmp);
        struct tok_strlist *x = a;
        a = b;
        b = x;
    }
    buf_deinit(&tmp);
    if (a != out) { /* the result is in `in`: swap the two lists */
        struct tok_strlist x = *in;
        *in = *out;
        *out = x;
    }
    return rc;
}

/* tok_decode_list: the token strings of ids (skipping unknown ids and, when asked,
 * special tokens) into l. */
static int decode_list(const struct tokenizer *t, const int32_t *ids, size_t n, bool skip_special,
                       struct tok_strlist *l)
{
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->n_vocab || !t->dec[id].present)
            continue;
        if (skip_special && t->dec[id].special)
            continue;
        if (tok_strlist_push(l, t->dec_pool + t->dec[id].off, t->dec[id].len))
            return ERR_NOMEM;
    }
    return 0;
}

int tok_decode(const struct tokenizer *t, const int32_t *ids, size_t n, bool skip_special,
               struct buf *out)
{
    struct tok_strlist a, b;
    tok_strlist_init(&a);
    tok_strlist_init(&b);
    struct tok_rx rx = {0};
    int rc = decode_list(t, ids, n, skip_special, &a);
    if (rc == 0 && !t->has_decoder) {
        for (size_t i = 0; rc == 0 && i < a.n; i++) {
            if (i)
                rc = buf_append_byte(out, ' ');
            if (rc == 0)
                rc = buf_append(out, STR(&a, i), LEN(&a, i));
        }
    } else if (rc == 0) {
        for (size_t i = 0; rc == 0 && i < t->n_decs; i++)
            if (t->decs[i].type == TOK_DEC_REPLACE && !rx.md)
                rc = tok_rx_init(&rx);
        if (rc == 0)
            rc = tok_decoders_run(t, 0, t->n_decs, true, &a, &b, &rx);
        if (rc == 0)
            rc = buf_append(out, b.bytes.p, b.bytes.n);
        tok_rx_deinit(&rx);
    }
    tok_strlist_deinit(&a);
    tok_strlist_deinit(&b);
    return rc;
}

/* ---- per-token views ---- */

int32_t tok_n_vocab(const struct tokenizer *t)
{
    return t->n_vocab;
}

const struct tok_special_ids *tok_special(const struct tokenizer *t)
{
    return &t->special_ids;
}

const char *tok_id_to_str(const struct tokenizer *t, int32_t id, size_t *n)
{
    if (id < 0 || id >= t->n_vocab || !t->dec[id].present)
        return NULL;
    *n = t->dec[id].len;
    return t->dec_pool + t->dec[id].off;
}

int32_t tok_str_to_id(const struct tokenizer *t, const char *s, size_t n)
{
    int32_t id = tok_strmap_get(&t->added_map, s, n);
    return id >= 0 ? id : tok_strmap_get(&t->bpe.vocab, s, n);
}

bool tok_id_is_special(const struct tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_vocab && t->dec[id].present && t->dec[id].special;
}

/* raw_replace: a Replace stage on raw bytes (only when they are UTF-8; else unchanged). */
static int raw_replace(const struct tok_dec *d, struct tok_rx *rx, struct buf *cur, struct buf *tmp)
{
    if (!utf8_valid(cur->p, cur->n))
        return 0;
    struct tok_spans sp = {0};
    int rc = tok_pattern_find(&d->pat, rx, cur->p, cur->n, &sp);
    buf_reset(tmp);
    for (size_t k = 0; rc == 0 && k < sp.n; k++)
        rc = sp.v[k].match ? buf_append(tmp, d->str, d->str_n)
                           : buf_append(tmp, cur->p + sp.v[k].start, sp.v[k].end - sp.v[k].start);
    free(sp.v);
    if (rc == 0) {
        buf_reset(cur);
        rc = buf_append(cur, tmp->p, tmp->n);
    }
    return rc;
}

/* raw_stage: one decoder stage applied to a single token, keeping raw bytes. */
static int raw_stage(const struct tok_dec *d, struct tok_rx *rx, struct buf *cur, struct buf *tmp)
{
    int b;
    switch (d->type) {
    case TOK_DEC_BYTELEVEL:
        buf_reset(tmp);
        if (bytelevel_bytes(cur->p, cur->n, tmp))
            return ERR_NOMEM;
        buf_reset(cur);
        return buf_append(cur, tmp->p, tmp->n);
    case TOK_DEC_BYTE_FALLBACK:
        if ((b = byte_token(cur->p, cur->n)) < 0)
            return 0;
        buf_reset(cur);
        return buf_append_byte(cur, (char)b);
    case TOK_DEC_METASPACE: {
        char rep[4];
        size_t rn = utf8_encode(d->ch, rep);
        buf_reset(tmp);
        for (size_t k = 0; k < cur->n;) {
            bool hit = k + rn <= cur->n && memcmp(cur->p + k, rep, rn) == 0;
            if (buf_append_byte(tmp, hit ? ' ' : cur->p[k]))
                return ERR_NOMEM;
            k += hit ? rn : 1;
        }
        buf_reset(cur);
        return buf_append(cur, tmp->p, tmp->n);
    }
    case TOK_DEC_REPLACE: return raw_replace(d, rx, cur, tmp);
    default: return 0; /* Fuse and Strip act on whole texts, not on a token */
    }
}

int tok_raw_bytes(const struct tokenizer *t, int32_t id, struct tok_rx *rx, struct buf *cur,
                  struct buf *tmp)
{
    size_t n;
    const char *s = tok_id_to_str(t, id, &n);
    if (!s)
        return ERR_NOTFOUND;
    size_t start = cur->n;
    int rc = buf_append(cur, s, n);
    if (rc)
        return rc;
    struct buf one = {0}; /* the token alone, in its own buffer */
    buf_init(&one, 0);
    rc = buf_append(&one, cur->p + start, cur->n - start);
    for (size_t i = 0; rc == 0 && i < t->n_decs; i++)
        rc = raw_stage(&t->decs[i], rx, &one, tmp);
    cur->n = start;
    if (rc == 0)
        rc = buf_append(cur, one.p, one.n);
    buf_deinit(&one);
    return rc;
}

int tok_id_to_bytes(const struct tokenizer *t, int32_t id, struct buf *out)
{
    struct buf tmp;
    buf_init(&tmp, 0);
    struct tok_rx rx = {0};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < t->n_decs; i++)
        if (t->decs[i].type == TOK_DEC_REPLACE && !rx.md)
            rc = tok_rx_init(&rx);
    if (rc == 0)
        rc = tok_raw_bytes(t, id, &rx, out, &tmp);
    tok_rx_deinit(&rx);
    buf_deinit(&tmp);
    return rc;
}
