/*
 * tok_pretok: pre-tokenizers. Each stage turns the current list of pieces into a new one,
 * as HF's PreTokenizedString::split does (empty pieces are dropped after every stage):
 * splitting stages only re-slice the current text, transforming stages (Metaspace,
 * ByteLevel's prefix space and byte mapping) write new text into the other buffer.
 */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "utf8.h"

enum pred { PRED_NUMERIC, PRED_WHITESPACE, PRED_PUNCT, PRED_CHAR };

struct stage_io {
    struct tok_enc *e;
    int tin, pin; /* current text and piece buffers */
};

static int pieces_push(struct tok_pieces *p, size_t off, size_t len, bool orig0)
{
    if (len == 0)
        return 0; /* HF drops empty splits */
    if (p->n == p->cap) {
        size_t c = p->cap ? p->cap * 2 : 256;
        struct tok_piece *v = realloc(p->v, c * sizeof *v);
        if (!v)
            return ERR_NOMEM;
        p->v = v;
        p->cap = c;
    }
    p->v[p->n++] = (struct tok_piece){(uint32_t)off, (uint32_t)len, orig0};
    return 0;
}

static bool pred_test(enum pred pr, uint32_t ch, uint32_t cp)
{
    switch (pr) {
    case PRED_NUMERIC: return uc_is_numeric(cp);
    case PRED_WHITESPACE: return uc_is_white_space(cp);
    case PRED_PUNCT: return uc_is_punctuation(cp);
    default: return cp == ch;
    }
}

/* find_pred: HF's Pattern for Fn(char) -> bool: every matching character is its own match
 * span; the characters between matches form one non-match span. */
static int find_pred(enum pred pr, uint32_t ch, const char *s, size_t n, struct tok_spans *out)
{
    out->n = 0;
    if (n == 0)
        return tok_spans_push(out, 0, 0, false);
    size_t last = 0;
    uint32_t cp;
    for (size_t i = 0; i < n;) {
        size_t l = utf8_decode(s + i, n - i, &cp);
        if (!l)
            return ERR_INVAL;
        if (pred_test(pr, ch, cp)) {
            if (last < i && tok_spans_push(out, (uint32_t)last, (uint32_t)i, false))
                return ERR_NOMEM;
            if (tok_spans_push(out, (uint32_t)i, (uint32_t)(i + l), true))
                return ERR_NOMEM;
            last = i + l;
        }
        i += l;
    }
    if (last < n && tok_spans_push(out, (uint32_t)last, (uint32_t)n, false))
        return ERR_NOMEM;
    return 0;
}

/* behave: rewrites spans in place per HF's SplitDelimiterBehavior; spans flagged match
 * afterwards are the ones to remove. */
static void behave(struct tok_spans *sp, enum tok_behavior b, bool invert)
{
    size_t n = sp->n, w = 0;
    struct tok_span *v = sp->v;
    if (invert)
        for (size_t i = 0; i < n; i++)
            v[i].match = !v[i].match;
    if (b == TOK_SPLIT_REMOVED)
        return;
    if (b == TOK_SPLIT_ISOLATED) {
        for (size_t i = 0; i < n; i++)
            v[i].match = false;
        return;
    }
    bool prev = false;
    if (b == TOK_SPLIT_MERGED_NEXT) {
        /* walk backwards, writing the result from the end */
        size_t r = n;
        for (size_t i = n; i-- > 0;) {
            struct tok_span s = v[i];
            if (s.match && !prev && r < n)
                v[r].start = s.start;
            else
                v[--r] = (struct tok_span){s.start, s.end, false};
            prev = s.match;
        }
        memmove(v, v + r, (n - r) * sizeof *v);
        sp->n = n - r;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct tok_span s = v[i];
        bool merge = b == TOK_SPLIT_CONTIGUOUS ? s.match == prev : (s.match && !prev);
        if (merge && w > 0)
            v[w - 1].end = s.end;
        else
            v[w++] = (struct tok_span){s.start, s.end, false};
        prev = s.match;
    }
    sp->n = w;
}

/* split_stage: splits every piece with a regex (pat) or a character predicate. */
static int split_stage(struct stage_io *io, const struct tok_pattern *pat, enum pred pr,
                       uint32_t ch, enum tok_behavior b, bool invert)
{
    struct tok_enc *e = io->e;
    struct tok_pieces *in = &e->pieces[io->pin], *out = &e->pieces[!io->pin];
    const char *text = e->text[io->tin].p;
    out->n = 0;
    for (size_t k = 0; k < in->n; k++) {
        struct tok_piece p = in->v[k];
        const char *s = text + p.off;
        int rc = pat ? tok_pattern_find(pat, &e->rx, s, p.len, &e->spans)
                     : find_pred(pr, ch, s, p.len, &e->spans);
        if (rc)
            return rc;
        behave(&e->spans, b, invert);
        for (size_t i = 0; i < e->spans.n; i++) {
            struct tok_span sp = e->spans.v[i];
            if (!sp.match &&
                pieces_push(out, p.off + sp.start, sp.end - sp.start, p.orig0 && sp.start == 0))
                return ERR_NOMEM;
        }
    }
    io->pin = !io->pin;
    return 0;
}

/* metaspace_stage: ' ' -> replacement, then the prepend scheme. */
static int metaspace_stage(struct stage_io *io, const struct tok_pretok *pt)
{
    struct tok_enc *e = io->e;
    struct tok_pieces *in = &e->pieces[io->pin], *out = &e->pieces[!io->pin];
    struct buf *dst = &e->text[!io->tin];
    const char *text = e->text[io->tin].p;
    buf_reset(dst);
    out->n = 0;
    for (size_t k = 0; k < in->n; k++) {
        struct tok_piece p = in->v[k];
        const char *s = text + p.off;
        size_t start = dst->n;
        /* after replacing spaces, the piece starts with the replacement if it started with
         * it or with a space */
        bool has_rep = (p.len >= pt->rep_n && memcmp(s, pt->rep, pt->rep_n) == 0) || s[0] == ' ';
        bool prepend = !has_rep && (pt->prepend == TOK_PREPEND_ALWAYS ||
                                    (pt->prepend == TOK_PREPEND_FIRST && p.orig0));
        int rc = prepend ? buf_append(dst, pt->rep, pt->rep_n) : 0;
        for (size_t i = 0; rc == 0 && i < p.len; i++)
            rc = s[i] == ' ' ? buf_append(dst, pt->rep, pt->rep_n) : buf_append_byte(dst, s[i]);
        if (rc || pieces_push(out, start, dst->n - start, p.orig0))
            return ERR_NOMEM;
    }
    io->pin = !io->pin;
    io->tin = !io->tin;
    if (pt->split)
        return split_stage(io, NULL, PRED_CHAR, pt->replacement, TOK_SPLIT_MERGED_NEXT, false);
    return 0;
}

/* bytelevel_prefix: ByteLevel's add_prefix_space: a space before every piece that does not
 * start with one. */
static int bytelevel_prefix(struct stage_io *io)
{
    struct tok_enc *e = io->e;
    struct tok_pieces *in = &e->pieces[io->pin], *out = &e->pieces[!io->pin];
    struct buf *dst = &e->text[!io->tin];
    const char *text = e->text[io->tin].p;
    buf_reset(dst);
    out->n = 0;
    for (size_t k = 0; k < in->n; k++) {
        struct tok_piece p = in->v[k];
        size_t start = dst->n;
        int rc = text[p.off] != ' ' ? buf_append_byte(dst, ' ') : 0;
        if (rc || buf_append(dst, text + p.off, p.len) ||
            pieces_push(out, start, dst->n - start, p.orig0))
            return ERR_NOMEM;
    }
    io->pin = !io->pin;
    io->tin = !io->tin;
    return 0;
}

/* bytelevel_map: every byte becomes its character of the byte-level alphabet. */
static int bytelevel_map(struct stage_io *io)
{
    struct tok_enc *e = io->e;
    struct tok_pieces *in = &e->pieces[io->pin], *out = &e->pieces[!io->pin];
    struct buf *dst = &e->text[!io->tin];
    const char *text = e->text[io->tin].p;
    buf_reset(dst);
    out->n = 0;
    char enc[4];
    for (size_t k = 0; k < in->n; k++) {
        struct tok_piece p = in->v[k];
        size_t start = dst->n;
        if (buf_reserve(dst, (size_t)p.len * 2))
            return ERR_NOMEM;
        for (size_t i = 0; i < p.len; i++) {
            size_t l = utf8_encode(tok_byte_to_cp[(uint8_t)text[p.off + i]], enc);
            buf_append(dst, enc, l);
        }
        if (pieces_push(out, start, dst->n - start, p.orig0))
            return ERR_NOMEM;
    }
    io->pin = !io->pin;
    io->tin = !io->tin;
    return 0;
}

static int run_stage(struct stage_io *io, const struct tok_pretok *pt)
{
    int rc = 0;
    switch (pt->type) {
    case TOK_PRE_SPLIT: return split_stage(io, &pt->pat, 0, 0, pt->behavior, pt->invert);
    case TOK_PRE_WHITESPACE: return split_stage(io, &pt->pat, 0, 0, TOK_SPLIT_REMOVED, true);
    case TOK_PRE_WHITESPACE_SPLIT:
        return split_stage(io, NULL, PRED_WHITESPACE, 0, TOK_SPLIT_REMOVED, false);
    case TOK_PRE_CHAR_DELIMITER:
        return split_stage(io, NULL, PRED_CHAR, pt->replacement, TOK_SPLIT_REMOVED, false);
    case TOK_PRE_PUNCTUATION: return split_stage(io, NULL, PRED_PUNCT, 0, pt->behavior, false);
    case TOK_PRE_BERT:
        rc = split_stage(io, NULL, PRED_WHITESPACE, 0, TOK_SPLIT_REMOVED, false);
        return rc ? rc : split_stage(io, NULL, PRED_PUNCT, 0, TOK_SPLIT_ISOLATED, false);
    case TOK_PRE_DIGITS:
        return split_stage(io, NULL, PRED_NUMERIC, 0,
                           pt->individual_digits ? TOK_SPLIT_ISOLATED : TOK_SPLIT_CONTIGUOUS,
                           false);
    case TOK_PRE_METASPACE: return metaspace_stage(io, pt);
    case TOK_PRE_BYTELEVEL:
        if (pt->add_prefix_space)
            rc = bytelevel_prefix(io);
        if (rc == 0 && pt->use_regex)
            rc = split_stage(io, &pt->pat, 0, 0, TOK_SPLIT_ISOLATED, false);
        if (rc == 0 && pt->map_bytes)
            rc = bytelevel_map(io);
        return rc;
    }
    return ERR_INVAL;
}

int tok_pretokenize(struct tok_enc *e, const char *s, size_t n, bool orig0, int *which)
{
    struct stage_io io = {e, 0, 0};
    buf_reset(&e->text[0]);
    e->pieces[0].n = 0;
    if (buf_append(&e->text[0], s, n) || pieces_push(&e->pieces[0], 0, n, orig0))
        return ERR_NOMEM;
    const struct tokenizer *t = e->t;
    for (size_t i = 0; i < t->n_pretoks; i++) {
        int rc = run_stage(&io, &t->pretoks[i]);
        if (rc)
            return rc;
    }
    /* the caller reads words from pieces[pin] over text[tin]: make both the same index */
    if (io.pin != io.tin) {
        struct tok_pieces tmp = e->pieces[0];
        e->pieces[0] = e->pieces[1];
        e->pieces[1] = tmp;
    }
    *which = io.tin;
    return 0;
}
