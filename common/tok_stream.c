/*
 * tok_stream: incremental detokenization. See tokenizer.h for the contract.
 *
 * A decoder chain is cut into windows of tokens. For the chains real tokenizers use
 * (ByteLevel; Replace/ByteFallback/Fuse/Strip; Metaspace) the decode of a whole text equals
 * the concatenation of its windows' decodes, provided that each window closes where no
 * UTF-8 character is open, that only the first window applies Metaspace's first-token rule,
 * and that a Strip at the end of the chain (which acts on the whole text's edges) is applied
 * across windows by this file rather than inside each window. Chains outside that shape
 * (tok_stream_plan decides at load) fall back to re-decoding every id at each step.
 */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "utf8.h"

struct stream_scratch {
    struct tok_strlist a, b;
    struct tok_rx rx;
    bool has_rx;
};

int tok_stream_plan(struct tokenizer *t)
{
    bool merged = false;
    t->stream_fallback = false;
    t->stream_stages = t->n_decs;
    t->stream_strip = -1;
    t->stream_utf8_tail = false;
    for (size_t i = 0; i < t->n_decs; i++) {
        const struct tok_dec *d = &t->decs[i];
        if (d->type == TOK_DEC_BYTELEVEL || d->type == TOK_DEC_BYTE_FALLBACK)
            t->stream_utf8_tail = true;
        if (merged && d->type == TOK_DEC_STRIP && i + 1 == t->n_decs) {
            t->stream_strip = (int)i;
            t->stream_stages = i;
        } else if (merged && (d->type == TOK_DEC_METASPACE || d->type == TOK_DEC_STRIP ||
                              (d->type == TOK_DEC_REPLACE && !d->one_char))) {
            t->stream_fallback = true;
        }
        if (d->type == TOK_DEC_BYTELEVEL || d->type == TOK_DEC_FUSE)
            merged = true;
    }
    if (!t->stream_utf8_tail || t->stream_fallback)
        return 0;
    /* the last raw bytes of every token, to tell where a window may close */
    t->raw_tail = calloc((size_t)t->n_vocab + 1, sizeof *t->raw_tail);
    struct buf cur, tmp;
    buf_init(&cur, 0);
    buf_init(&tmp, 0);
    struct tok_rx rx = {0};
    int rc = t->raw_tail ? tok_rx_init(&rx) : ERR_NOMEM;
    for (int32_t id = 0; rc == 0 && id < t->n_vocab; id++) {
        buf_reset(&cur);
        rc = t->dec[id].present ? tok_raw_bytes(t, id, &rx, &cur, &tmp) : 0;
        size_t k = cur.n < 3 ? cur.n : 3;
        uint32_t v = (uint32_t)k << 24;
        for (size_t i = 0; i < k; i++)
            v |= (uint32_t)(uint8_t)cur.p[cur.n - k + i] << (16 - 8 * i);
        t->raw_tail[id] = v;
    }
    tok_rx_deinit(&rx);
    buf_deinit(&cur);
    buf_deinit(&tmp);
    return rc;
}

int tok_stream_init(struct tok_stream *s, const struct tokenizer *t, bool skip_special)
{
    memset(s, 0, sizeof *s);
    s->t = t;
    s->skip_special = skip_special;
    buf_init(&s->held, 0);
    buf_init(&s->text, 0);
    tok_ids_init(&s->win, 0);
    tok_ids_init(&s->all, 0);
    if (t->stream_strip >= 0)
        s->strip_left = t->decs[t->stream_strip].start;
    struct stream_scratch *sc = calloc(1, sizeof *sc);
    if (!sc)
        return ERR_NOMEM;
    tok_strlist_init(&sc->a);
    tok_strlist_init(&sc->b);
    s->scratch = sc;
    for (size_t i = 0; i < t->n_decs; i++)
        if (t->decs[i].type == TOK_DEC_REPLACE && !sc->has_rx) {
            if (tok_rx_init(&sc->rx))
                return ERR_NOMEM;
            sc->has_rx = true;
        }
    return 0;
}

void tok_stream_deinit(struct tok_stream *s)
{
    struct stream_scratch *sc = s->scratch;
    if (sc) {
        tok_strlist_deinit(&sc->a);
        tok_strlist_deinit(&sc->b);
        if (sc->has_rx)
            tok_rx_deinit(&sc->rx);
        free(sc);
    }
    buf_deinit(&s->held);
    buf_deinit(&s->text);
    tok_ids_deinit(&s->win);
    tok_ids_deinit(&s->all);
    s->scratch = NULL;
}

/* emit_stripped: appends text to delta through the trailing Strip decoder's state. */
static int emit_stripped(struct tok_stream *s, const char *p, size_t n, bool final,
                         struct buf *delta)
{
    const struct tokenizer *t = s->t;
    if (t->stream_strip < 0)
        return buf_append(delta, p, n);
    const struct tok_dec *d = &t->decs[t->stream_strip];
    char c[4];
    size_t cn = utf8_encode(d->ch, c);
    while (s->strip_left && n >= cn && memcmp(p, c, cn) == 0) {
        p += cn;
        n -= cn;
        s->strip_left--;
    }
    if (n)
        s->strip_left = 0; /* a character other than the content: stripping is over */
    if (n && buf_append(&s->held, p, n))
        return ERR_NOMEM;
    /* up to `stop` trailing content characters: held back (the text may end after them),
     * or dropped at the end of the text */
    size_t keep = s->held.n;
    for (size_t k = 0; k < d->stop && keep >= cn && memcmp(s->held.p + keep - cn, c, cn) == 0; k++)
        keep -= cn;
    int rc = buf_append(delta, s->held.p, keep);
    memmove(s->held.p, s->held.p + keep, s->held.n - keep);
    s->held.n -= keep;
    if (final)
        buf_reset(&s->held);
    return rc;
}

/* close_window: decodes the open window and emits its text. */
static int close_window(struct tok_stream *s, bool final, struct buf *delta)
{
    const struct tokenizer *t = s->t;
    struct stream_scratch *sc = s->scratch;
    tok_strlist_clear(&sc->a);
    tok_strlist_clear(&sc->b);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < s->win.n; i++) {
        size_t n;
        const char *str = tok_id_to_str(t, s->win.v[i], &n);
        rc = tok_strlist_push(&sc->a, str, n);
    }
    if (rc == 0)
        rc = tok_decoders_run(t, 0, t->stream_stages, !s->started, &sc->a, &sc->b, &sc->rx);
    if (rc == 0 && (s->win.n || final))
        rc = emit_stripped(s, sc->b.bytes.p, sc->b.bytes.n, final, delta);
    if (s->win.n)
        s->started = true;
    s->win.n = 0;
    s->tail_n = 0;
    return rc;
}

static bool window_complete(struct tok_stream *s, int32_t id)
{
    uint32_t v = s->t->raw_tail[id];
    size_t k = v >> 24;
    for (size_t i = 0; i < k; i++) {
        uint8_t b = (uint8_t)(v >> (16 - 8 * i));
        if (s->tail_n == 3)
            memmove(s->tail, s->tail + 1, --s->tail_n);
        s->tail[s->tail_n++] = b;
    }
    return utf8_incomplete_tail((const char *)s->tail, s->tail_n) == 0;
}

/* feed_fallback: re-decodes everything; emits what extends the text already returned. */
static int feed_fallback(struct tok_stream *s, int32_t id, bool final, struct buf *delta)
{
    if (!final && tok_ids_push(&s->all, id))
        return ERR_NOMEM;
    buf_reset(&s->text);
    int rc = tok_decode(s->t, s->all.v, s->all.n, false, &s->text);
    if (rc)
        return rc;
    size_t n = s->text.n;
    if (!final) { /* keep the last character back: the next token may still change it */
        while (n > 0 && ((unsigned char)s->text.p[n - 1] & 0xC0) == 0x80)
            n--;
        n = n > 0 ? n - 1 : 0;
    }
    if (n > s->emitted) {
        rc = buf_append(delta, s->text.p + s->emitted, n - s->emitted);
        s->emitted = n;
    }
    return rc;
}

int tok_stream_feed(struct tok_stream *s, int32_t id, struct buf *delta)
{
    const struct tokenizer *t = s->t;
    if (id < 0 || id >= t->n_vocab || !t->dec[id].present)
        return 0; /* decode skips unknown ids */
    if (s->skip_special && t->dec[id].special)
        return 0;
    if (t->stream_fallback)
        return feed_fallback(s, id, false, delta);
    if (!t->has_decoder) { /* tokens joined with spaces */
        size_t n;
        const char *str = tok_id_to_str(t, id, &n);
        int rc = s->started ? buf_append_byte(delta, ' ') : 0;
        s->started = true;
        return rc ? rc : buf_append(delta, str, n);
    }
    if (tok_ids_push(&s->win, id))
        return ERR_NOMEM;
    if (t->stream_utf8_tail && !window_complete(s, id))
        return 0;
    return close_window(s, false, delta);
}

int tok_stream_flush(struct tok_stream *s, struct buf *delta)
{
    const struct tokenizer *t = s->t;
    if (t->stream_fallback)
        return feed_fallback(s, -1, true, delta);
    if (!t->has_decoder)
        return 0;
    return close_window(s, true, delta);
}
