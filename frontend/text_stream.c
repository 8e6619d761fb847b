/*
 * text_stream: generated ids -> text deltas with stop strings. See text_stream.h.
 *
 * Stop strings are matched with one Knuth-Morris-Pratt automaton each, fed the generated
 * text byte by byte: the first byte at which an automaton reaches its full length ends the
 * occurrence that ends first (the lowest index wins among automata completing on the same
 * byte). Each automaton's state is also the length of the longest tail of the text that
 * is a proper prefix of its string, so the text to hold back is the largest state. The
 * held-back bytes are the only text kept; per byte the cost is O(number of stops) amortized.
 */
#include "frontend/text_stream.h"

#include <string.h>

#include "common/err.h"
#include "common/utf8.h"

static const char fffd[3] = {(char)0xEF, (char)0xBF, (char)0xBD}; /* U+FFFD */

/* buf_cut: shortens b to n bytes (n <= b->n). */
static void buf_cut(struct buf *b, size_t n)
{
    if (b->cap) {
        b->n = n;
        b->p[n] = '\0';
    }
}

/* ---- stop strings ---- */

/* stop_build: copies s into the arena and fills its border table. */
static int stop_build(struct text_stream_stop *st, struct str s, struct arena *a)
{
    char *p = arena_strndup(a, s.p, s.n);
    uint32_t *kmp = arena_alloc(a, (s.n + 1) * sizeof *kmp);
    if (!p || !kmp)
        return arena_error(a) ? arena_error(a) : ERR_NOMEM;
    kmp[0] = 0;
    kmp[1] = 0;
    size_t k = 0;
    for (size_t q = 1; q < s.n; q++) {
        while (k > 0 && p[q] != p[k])
            k = kmp[k];
        if (p[q] == p[k])
            k++;
        kmp[q + 1] = (uint32_t)k;
    }
    *st = (struct text_stream_stop){.s = p, .n = s.n, .kmp = kmp, .state = 0};
    return 0;
}

static int stops_init(struct text_stream *ts, const struct text_stream_opts *o, struct arena *a)
{
    if (o->n_stop > TEXT_STREAM_MAX_STOP)
        return ERR_INVAL;
    for (size_t i = 0; i < o->n_stop; i++) {
        struct str s = o->stop[i];
        if (s.n == 0 || s.n > UINT32_MAX || !utf8_valid(s.p, s.n))
            return ERR_INVAL;
        int rc = stop_build(&ts->stop[i], s, a);
        if (rc)
            return rc;
        ts->n_stop = i + 1;
    }
    return 0;
}

/* stop_step: the automaton's state after one more text byte c. */
static size_t stop_step(const struct text_stream_stop *st, size_t q, char c)
{
    while (q > 0 && st->s[q] != c)
        q = st->kmp[q];
    return st->s[q] == c ? q + 1 : q;
}

/* ---- priming with the prompt ---- */

/* raw_first: the first raw byte of id's text, -1 when it has none. */
static int raw_first(struct text_stream *ts, int32_t id)
{
    buf_reset(&ts->piece);
    if (tok_id_to_bytes(ts->t, id, &ts->piece) || ts->piece.n == 0)
        return -1;
    return (unsigned char)ts->piece.p[0];
}

static bool starts_mid_char(struct text_stream *ts, int32_t id)
{
    int c = raw_first(ts, id);
    return c >= 0x80 && c < 0xC0;
}

/* prime_end: n, less the trailing ids that hold an unfinished UTF-8 character. */
static int prime_end(struct text_stream *ts, const int32_t *ids, size_t n, size_t *end)
{
    size_t from = n > 4 ? n - 4 : 0, len[4] = {0};
    buf_reset(&ts->piece);
    for (size_t i = from; i < n; i++) {
        size_t before = ts->piece.n;
        if (!(ts->st.skip_special && tok_id_is_special(ts->t, ids[i]))) {
            int rc = tok_id_to_bytes(ts->t, ids[i], &ts->piece);
            if (rc && rc != ERR_NOTFOUND)
                return rc;
        }
        len[i - from] = ts->piece.n - before;
    }
    size_t open = utf8_incomplete_tail(ts->piece.p, ts->piece.n), cut = 0, e = n;
    while (cut < open && e > from)
        cut += len[--e - from];
    *end = e;
    return 0;
}

/* prime_start: where the primed suffix of ids[0..end) begins: TEXT_STREAM_PRIME ids back,
 * moved back (within TEXT_STREAM_PRIME_MAX) or else forward to a character's first byte. */
static size_t prime_start(struct text_stream *ts, const int32_t *ids, size_t end)
{
    size_t start = end > TEXT_STREAM_PRIME ? end - TEXT_STREAM_PRIME : 0;
    while (start > 0 && end - start < TEXT_STREAM_PRIME_MAX && starts_mid_char(ts, ids[start]))
        start--;
    while (start < end && starts_mid_char(ts, ids[start]))
        start++;
    return start;
}

/* prime: feeds the prompt's suffix to the detokenizer. The bytes of its text that the
 * detokenizer has not returned yet come first out of the generated ids' deltas: a second
 * detokenizer fed the same ids returns exactly those when flushed. (Not tok_decode's length
 * minus what was returned: tok_stream's text differs from HF's where a byte-fallback run is
 * not UTF-8.) */
static int prime(struct text_stream *ts, const int32_t *ids, size_t n)
{
    size_t end;
    int rc = prime_end(ts, ids, n, &end);
    if (rc || end == 0)
        return rc;
    size_t start = prime_start(ts, ids, end);
    struct tok_stream probe;
    rc = tok_stream_init(&probe, ts->t, ts->st.skip_special);
    for (size_t i = start; i < end && !rc; i++) {
        buf_reset(&ts->piece);
        rc = tok_stream_feed(&ts->st, ids[i], &ts->piece);
        if (!rc)
            rc = tok_stream_feed(&probe, ids[i], &ts->piece);
    }
    buf_reset(&ts->piece);
    if (!rc)
        rc = tok_stream_flush(&probe, &ts->piece);
    tok_stream_deinit(&probe);
    ts->skip = rc ? 0 : ts->piece.n;
    return rc;
}

int text_stream_init(struct text_stream *ts, const struct tokenizer *t,
                     const struct text_stream_opts *opts, struct arena *a)
{
    memset(ts, 0, sizeof *ts);
    ts->t = t;
    ts->include_stop = opts->include_stop;
    ts->min_tokens = opts->min_tokens;
    ts->stop_index = -1;
    buf_init(&ts->held, 0);
    buf_init(&ts->piece, 0);
    int rc = tok_stream_init(&ts->st, t, opts->skip_special);
    ts->st_live = true;
    if (!rc)
        rc = stops_init(ts, opts, a);
    if (!rc && opts->prompt)
        rc = prime(ts, opts->prompt, opts->n_prompt);
    return rc;
}

void text_stream_deinit(struct text_stream *ts)
{
    if (ts->st_live)
        tok_stream_deinit(&ts->st);
    ts->st_live = false;
    buf_deinit(&ts->held);
    buf_deinit(&ts->piece);
}

/* ---- matching and emitting ---- */

size_t text_stream_chars(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

static int emit(struct text_stream *ts, const char *p, size_t n, struct buf *out)
{
    int rc = buf_append(out, p, n);
    if (!rc) {
        ts->n_out += n;
        ts->n_chars += text_stream_chars(p, n);
    }
    return rc;
}

/* matched: stop k ended on the byte that makes the generated text `end` bytes long; p is the
 * new text, whose first byte is at ts->n_text. Emits up to the cut and stops. */
static int matched(struct text_stream *ts, int k, size_t end, const char *p, struct buf *out)
{
    size_t cut = ts->include_stop ? end : end - ts->stop[k].n;
    int rc = 0;
    ts->stopped = true;
    ts->stop_index = k;
    if (cut < ts->n_out) /* cannot happen: the held tail covers any stop string start */
        cut = ts->n_out;
    size_t from_held = cut - ts->n_out < ts->held.n ? cut - ts->n_out : ts->held.n;
    rc = emit(ts, ts->held.p, from_held, out);
    if (!rc && cut > ts->n_text)
        rc = emit(ts, p, cut - ts->n_text, out);
    buf_reset(&ts->held);
    ts->n_text = cut;
    return rc;
}

/* scan: runs the new text p[0..n) through the stop automata; emits what can no longer be
 * part of a stop string (everything when final), or up to a stop string's cut. */
static int scan(struct text_stream *ts, const char *p, size_t n, bool final, struct buf *out)
{
    for (size_t i = 0; i < n; i++) {
        size_t end = ts->n_text + i + 1;
        int hit = -1;
        for (size_t k = 0; k < ts->n_stop; k++) {
            struct text_stream_stop *st = &ts->stop[k];
            st->state = stop_step(st, st->state, p[i]);
            if (st->state == st->n) {
                if (hit < 0 && end > ts->min_text)
                    hit = (int)k;
                st->state = st->kmp[st->n];
            }
        }
        if (hit >= 0)
            return matched(ts, hit, end, p, out);
    }
    ts->n_text += n;
    int rc = buf_append(&ts->held, p, n);
    size_t hold = 0;
    for (size_t k = 0; k < ts->n_stop && !ts->include_stop && !final; k++)
        hold = ts->stop[k].state > hold ? ts->stop[k].state : hold;
    if (hold > ts->held.n)
        hold = ts->held.n;
    size_t go = ts->held.n - hold;
    if (!rc && go) {
        rc = emit(ts, ts->held.p, go, out);
        memmove(ts->held.p, ts->held.p + go, hold);
        buf_cut(&ts->held, hold);
    }
    return rc;
}

/* take: the detokenizer's output for one id (or the final flush): the primed prompt's
 * remaining bytes are dropped, the rest is generated text. */
static int take(struct text_stream *ts, const char *p, size_t n, bool final, struct buf *out)
{
    size_t k = ts->skip < n ? ts->skip : n;
    ts->skip -= k;
    p += k;
    n -= k;
    if (ts->n_tokens <= ts->min_tokens)
        ts->min_text = ts->n_text + n; /* text of the first min_tokens ids: no stop ends here */
    if (n == 0 && !final)
        return 0;
    return scan(ts, p, n, final, out);
}

int text_stream_feed(struct text_stream *ts, const int32_t *ids, size_t n, struct buf *out)
{
    for (size_t i = 0; i < n && !ts->stopped && !ts->finished; i++) {
        ts->n_tokens++;
        buf_reset(&ts->piece);
        int rc = tok_stream_feed(&ts->st, ids[i], &ts->piece);
        if (!rc)
            rc = take(ts, ts->piece.p, ts->piece.n, false, out);
        if (rc)
            return rc;
    }
    return 0;
}

int text_stream_finish(struct text_stream *ts, struct buf *out)
{
    if (ts->stopped || ts->finished) {
        ts->finished = true;
        return 0;
    }
    ts->finished = true;
    buf_reset(&ts->piece);
    int rc = tok_stream_flush(&ts->st, &ts->piece);
    return rc ? rc : take(ts, ts->piece.p, ts->piece.n, true, out);
}

/* ---- logprobs ---- */

/* transformers' clean_up_tokenization, in order; each rewrite drops bytes, so in place. */
static const struct {
    const char *from, *to;
} cleanups[] = {
    {" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
    {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
};

static void clean_up(struct buf *b, size_t from)
{
    for (size_t c = 0; c < sizeof cleanups / sizeof cleanups[0]; c++) {
        size_t fn = strlen(cleanups[c].from), tn = strlen(cleanups[c].to), w = from;
        for (size_t r = from; r < b->n;) {
            if (b->n - r >= fn && memcmp(b->p + r, cleanups[c].from, fn) == 0) {
                memcpy(b->p + w, cleanups[c].to, tn);
                w += tn;
                r += fn;
            } else {
                b->p[w++] = b->p[r++];
            }
        }
        buf_cut(b, w);
    }
}

/* decode_hf: transformers' tokenizer.decode(ids) appended to out. */
static int decode_hf(const struct tokenizer *t, const int32_t *ids, size_t n, bool clean,
                     struct buf *out)
{
    size_t at = out->n;
    int rc = tok_decode(t, ids, n, false, out);
    if (!rc && clean && out->n > at)
        clean_up(out, at);
    return rc;
}

static bool ends_fffd(const struct buf *b, size_t from)
{
    return b->n - from >= 3 && memcmp(b->p + b->n - 3, fffd, 3) == 0;
}

int text_stream_token_str(const struct tokenizer *t, int32_t id, bool clean, struct buf *out)
{
    return decode_hf(t, &id, 1, clean, out);
}

int text_stream_logprob_token(const struct tokenizer *t, const int32_t *cand, size_t n_cand,
                              size_t i, int32_t prev, bool clean, struct buf *out)
{
    if (i >= n_cand)
        return ERR_INVAL;
    size_t at = out->n;
    int rc = decode_hf(t, &cand[i], 1, clean, out);
    if (rc || !ends_fffd(out, at))
        return rc;
    buf_cut(out, at);
    if (i > 0) { /* vLLM: the previous id of the same candidate list */
        rc = decode_hf(t, &cand[i - 1], 2, clean, out);
        if (rc || !ends_fffd(out, at))
            return rc;
        buf_cut(out, at);
    }
    if (prev >= 0) { /* vLLM: the previous position's sampled id in front */
        int32_t ids[3] = {prev, i > 0 ? cand[i - 1] : cand[i], cand[i]};
        rc = decode_hf(t, ids, i > 0 ? 3 : 2, clean, out);
        if (rc || !ends_fffd(out, at))
            return rc;
        buf_cut(out, at);
    }
    return 0;
}

void text_stream_text_offsets(const char *const *tok, const size_t *tok_n, size_t n, size_t initial,
                              size_t *off)
{
    for (size_t k = 0; k < n; k++) {
        off[k] = initial;
        initial += text_stream_chars(tok[k], tok_n[k]);
    }
}
