/*
 * tok_encode: the encoding pipeline, in HF's order: split out added tokens that match the
 * raw text; normalize each remaining piece and split out added tokens that match the
 * normalized text; pre-tokenize; encode each word with the model; add the post-processor's
 * special tokens.
 */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "utf8.h"

void tok_ids_init(struct tok_ids *ids, size_t limit)
{
    memset(ids, 0, sizeof *ids);
    ids->limit = limit;
}

void tok_ids_deinit(struct tok_ids *ids)
{
    free(ids->v);
    memset(ids, 0, sizeof *ids);
}

int tok_ids_push(struct tok_ids *out, int32_t id)
{
    if (out->n == out->cap) {
        if (out->limit && out->n >= out->limit)
            return ERR_LIMIT;
        size_t c = out->cap ? out->cap * 2 : 64;
        if (out->limit && c > out->limit)
            c = out->limit;
        int32_t *v = realloc(out->v, c * sizeof *v);
        if (!v)
            return ERR_NOMEM;
        out->v = v;
        out->cap = c;
    }
    out->v[out->n++] = id;
    return 0;
}

struct tok_enc *tok_enc_new(const struct tokenizer *t)
{
    struct tok_enc *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->t = t;
    buf_init(&e->clean, 0);
    buf_init(&e->norm, 0);
    buf_init(&e->work, 0);
    buf_init(&e->text[0], 0);
    buf_init(&e->text[1], 0);
    buf_init(&e->word, 0);
    buf_init(&e->cache_pool, 0);
    e->cache = calloc(65536, sizeof *e->cache);
    if (tok_rx_init(&e->rx) || !e->cache) {
        tok_enc_free(e);
        return NULL;
    }
    e->cache_mask = 65535;
    return e;
}

void tok_enc_free(struct tok_enc *e)
{
    if (!e)
        return;
    tok_rx_deinit(&e->rx);
    buf_deinit(&e->clean);
    buf_deinit(&e->norm);
    buf_deinit(&e->work);
    buf_deinit(&e->text[0]);
    buf_deinit(&e->text[1]);
    buf_deinit(&e->word);
    buf_deinit(&e->cache_pool);
    free(e->segs.v);
    free(e->segs2.v);
    free(e->spans.v);
    free(e->pieces[0].v);
    free(e->pieces[1].v);
    free(e->sym_id);
    free(e->sym_prev);
    free(e->sym_next);
    free(e->sym_len);
    free(e->heap);
    free(e->cache);
    free(e->cache_ids);
    free(e);
}

/* encode_text: pre-tokenize and model-encode one piece of normalized text. */
static int encode_text(struct tok_enc *e, const char *s, size_t n, bool orig0, struct tok_ids *out)
{
    int which;
    int rc = tok_pretokenize(e, s, n, orig0, &which);
    const struct tok_pieces *ps = &e->pieces[which];
    const char *text = e->text[which].p;
    for (size_t i = 0; rc == 0 && i < ps->n; i++)
        rc = tok_bpe_word(e, text + ps->v[i].off, ps->v[i].len, e->t->bytelevel_words, out);
    return rc;
}

/* encode_segment: normalize a raw-text segment, split out normalized added tokens, encode
 * the rest. */
static int encode_segment(struct tok_enc *e, const char *s, size_t n, bool orig0,
                          struct tok_ids *out)
{
    const struct tokenizer *t = e->t;
    const char *ns = s;
    size_t nn = n;
    if (t->n_norms) {
        int rc = tok_normalize(t, &e->rx, s, n, &e->norm, &e->work, &e->spans);
        if (rc)
            return rc;
        ns = e->norm.p;
        nn = e->norm.n;
    }
    if (!t->trie_norm.n)
        return nn ? encode_text(e, ns, nn, orig0, out) : 0;
    if (tok_added_split(t, &t->trie_norm, ns, nn, &e->segs2))
        return ERR_NOMEM;
    for (size_t i = 0; i < e->segs2.n; i++) {
        struct tok_seg g = e->segs2.v[i];
        int rc = g.token >= 0
                     ? tok_ids_push(out, t->added[g.token].id)
                     : encode_text(e, ns + g.start, g.end - g.start, orig0 && g.start == 0, out);
        if (rc)
            return rc;
    }
    return 0;
}

int tok_encode(struct tok_enc *e, const char *text, size_t n, bool add_special, struct tok_ids *out)
{
    const struct tokenizer *t = e->t;
    if (!utf8_valid(text, n)) {
        buf_reset(&e->clean);
        if (utf8_append_lossy(&e->clean, text, n))
            return ERR_NOMEM;
        text = e->clean.p;
        n = e->clean.n;
    }
    int rc = 0;
    for (size_t i = 0; add_special && rc == 0 && i < t->n_post_prefix; i++)
        rc = tok_ids_push(out, t->post_prefix[i]);
    if (rc == 0 && tok_added_split(t, &t->trie_raw, text, n, &e->segs))
        rc = ERR_NOMEM;
    /* encode_segment reuses e->segs2 only, so e->segs stays valid across the loop */
    for (size_t i = 0; rc == 0 && i < e->segs.n; i++) {
        struct tok_seg g = e->segs.v[i];
        if (g.token >= 0)
            rc = tok_ids_push(out, t->added[g.token].id);
        else if (g.end > g.start)
            rc = encode_segment(e, text + g.start, g.end - g.start, g.start == 0, out);
    }
    for (size_t i = 0; add_special && rc == 0 && i < t->n_post_suffix; i++)
        rc = tok_ids_push(out, t->post_suffix[i]);
    return rc;
}
