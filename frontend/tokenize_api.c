/*
 * tokenize_api: POST /tokenize ({prompt} or {messages} through the chat template) and POST
 * /detokenize ({tokens}) of ../shared/API.md, answered at once (no engine involved).
 */
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "frontend/frontend_internal.h"
#include "frontend/oai_error.h"
#include "frontend/oai_response.h"
#include "frontend/text_stream.h"

#define MAX_TOKENIZE (1u << 20) /* ids in one /tokenize answer */

/* token_strs: each id's vocabulary string (return_token_strs) in the arena. */
static struct str *token_strs(struct fe *fe, const struct tok_ids *ids, struct arena *a)
{
    struct str *s = arena_alloc(a, (ids->n ? ids->n : 1) * sizeof *s);
    for (size_t i = 0; s && i < ids->n; i++) {
        size_t n;
        const char *p = tok_id_to_str(fe->tok, ids->v[i], &n);
        s[i] = p ? (struct str){p, n} : (struct str){"", 0};
    }
    return s;
}

/* tokenize_text: the ids of q's prompt or rendered messages. */
static int tokenize_text(struct fe *fe, const struct oai_request *q, struct tok_ids *ids,
                         struct oai_error *e)
{
    struct buf text;
    buf_init(&text, (size_t)64 << 20);
    int rc = 0;
    const char *p = NULL;
    size_t n = 0;
    if (q->messages) {
        rc = gen_render_prompt(fe, q, &text, e);
        p = text.p, n = text.n;
    } else if (q->n_prompts && q->prompts[0].ids) {
        for (uint32_t i = 0; !rc && i < q->prompts[0].n_ids; i++)
            rc = tok_ids_push(ids, q->prompts[0].ids[i]);
    } else if (q->n_prompts) {
        p = q->prompts[0].text.p, n = q->prompts[0].text.n;
    }
    if (!rc && p && tok_encode(fe->enc, p, n, q->add_special_tokens, ids))
        rc = oai_error_set(e, 413, "prompt", "the prompt is too long");
    buf_deinit(&text);
    return rc;
}

void gen_tokenize(struct fe *fe, struct http_request *r)
{
    struct oai_request q;
    struct oai_error e;
    if (oai_request_parse(OAI_TOKENIZE, r->body, r->body_len, &fe->lim, r->arena, &q, &e)) {
        routes_respond_error(fe, r, &e);
        return;
    }
    struct tok_ids ids;
    tok_ids_init(&ids, MAX_TOKENIZE);
    struct buf b;
    buf_init(&b, 0);
    int rc = tokenize_text(fe, &q, &ids, &e);
    if (!rc) {
        const struct str *strs = q.return_token_strs ? token_strs(fe, &ids, r->arena) : NULL;
        if (oai_write_tokenize(&b, ids.v, ids.n, fe->lim.max_model_len, strs))
            rc = oai_error_set(&e, 500, NULL, "cannot build the response");
    }
    if (rc)
        routes_respond_error(fe, r, &e);
    else
        routes_respond_json(fe, r, 200, b.p, b.n);
    buf_deinit(&b);
    tok_ids_deinit(&ids);
}

void gen_detokenize(struct fe *fe, struct http_request *r)
{
    struct oai_request q;
    struct oai_error e;
    if (oai_request_parse(OAI_DETOKENIZE, r->body, r->body_len, &fe->lim, r->arena, &q, &e)) {
        routes_respond_error(fe, r, &e);
        return;
    }
    struct buf text, b;
    buf_init(&text, (size_t)64 << 20);
    buf_init(&b, 0);
    int rc = tok_decode(fe->tok, q.tokens, q.n_tokens, true, &text);
    if (!rc)
        rc = oai_write_detokenize(&b, text.p, text.n);
    if (rc) {
        oai_error_set(&e, 500, NULL, "cannot build the response");
        routes_respond_error(fe, r, &e);
    } else {
        routes_respond_json(fe, r, 200, b.p, b.n);
    }
    buf_deinit(&text);
    buf_deinit(&b);
}
