/*
 * generate_out: the bodies and events of a completion or chat request (generate.h), from its
 * choices' text, logprobs and finish through the writers of oai_response.h.
 */
#include <jansson.h>
#include <string.h>

#include "common/arena.h"
#include "common/err.h"
#include "frontend/generate.h"
#include "frontend/oai_response.h"

#define OUT_ARENA_LIMIT ((size_t)256 << 20)

static struct oai_resp_ctx ctx_of(const struct gen *g)
{
    return (struct oai_resp_ctx){.kind = g->q.kind,
                                 .id = g->id,
                                 .created = g->created,
                                 .model = g->q.model};
}

static struct oai_usage usage_of(const struct gen *g)
{
    struct oai_usage u = {0};
    for (uint32_t i = 0; i < g->n_prompts; i++) {
        u.prompt_tokens += (uint32_t)g->prompts[i].ids.n;
        u.cached_tokens += g->prompts[i].n_cached;
    }
    for (uint32_t i = 0; i < g->n_choices; i++)
        u.completion_tokens += (uint32_t)g->choices[i].ids.n;
    return u;
}

/* token_str: the logprob string of cand[i] in the arena. */
static int token_str(const struct gen *g, const int32_t *cand, size_t n, size_t i, int32_t prev,
                     struct arena *a, struct str *out)
{
    struct buf b;
    buf_init(&b, 1 << 16);
    int rc = text_stream_logprob_token(g->fe->tok, cand, n, i, prev, g->fe->clean_up, &b);
    char *p = rc ? NULL : arena_alloc(a, b.n + 1);
    if (!rc && !p)
        rc = ERR_NOMEM;
    if (!rc)
        memcpy(p, b.p, b.n + 1), *out = (struct str){p, b.n};
    buf_deinit(&b);
    return rc;
}

/* logprobs_of: positions [from, to) of v (prev: the token before v[0], -1 for none) as
 * writer entries in the arena, text offsets counted from chars_before. */
static int logprobs_of(const struct gen *g, const struct gen_lp *v, int32_t prev0, size_t from,
                       size_t to, size_t chars_before, struct arena *a,
                       struct oai_token_logprob **out)
{
    size_t n = to - from;
    struct oai_token_logprob *lp = arena_alloc(a, (n ? n : 1) * sizeof *lp);
    const char **strs = arena_alloc(a, (n ? n : 1) * sizeof *strs);
    size_t *lens = arena_alloc(a, (n ? n : 1) * sizeof *lens), *offs = arena_alloc(a, (n ? n : 1) * sizeof *offs);
    if (!lp || !strs || !lens || !offs)
        return ERR_NOMEM;
    for (size_t k = 0; k < n; k++) {
        const struct gen_lp *x = &v[from + k];
        int32_t cand[1 + SAMPLING_MAX_LOGPROBS], prev = from + k ? v[from + k - 1].id : prev0;
        cand[0] = x->id;
        memcpy(cand + 1, x->top_ids, x->n_top * sizeof *cand);
        struct oai_top_logprob *top = arena_alloc(a, (x->n_top ? x->n_top : 1) * sizeof *top);
        if (!top)
            return ERR_NOMEM;
        lp[k] = (struct oai_token_logprob){.logprob = x->logprob, .top = top, .n_top = x->n_top};
        int rc = token_str(g, cand, 1 + x->n_top, 0, prev, a, &lp[k].token);
        for (uint32_t t = 0; !rc && t < x->n_top; t++) {
            top[t].logprob = x->top_lps[t];
            rc = token_str(g, cand, 1 + x->n_top, 1 + t, prev, a, &top[t].token);
        }
        if (rc)
            return rc;
        strs[k] = lp[k].token.p, lens[k] = lp[k].token.n;
    }
    text_stream_text_offsets(strs, lens, n, chars_before, offs);
    for (size_t k = 0; k < n; k++)
        lp[k].text_offset = (uint32_t)offs[k];
    *out = lp;
    return 0;
}

static struct oai_stop_reason stop_of(const struct gen_choice *c)
{
    if (c->stop_string && c->ts.stop_index >= 0) {
        const struct text_stream_stop *s = &c->ts.stop[c->ts.stop_index];
        return (struct oai_stop_reason){.kind = OAI_STOP_STRING, .str = {s->s, s->n}};
    }
    if (c->stop_token >= 0)
        return (struct oai_stop_reason){.kind = OAI_STOP_TOKEN, .token = c->stop_token};
    return (struct oai_stop_reason){.kind = OAI_STOP_NONE};
}

/* choice_of: writer view of c with text t and logprob positions [from, to). */
static int choice_of(const struct gen *g, const struct gen_choice *c, struct str t, size_t from,
                     size_t to, size_t chars_before, struct arena *a, struct oai_choice *o)
{
    *o = (struct oai_choice){.index = c->index,
                             .text = t,
                             .finish = c->finish,
                             .stop = stop_of(c),
                             .has_token_ids = g->q.return_token_ids,
                             .token_ids = c->ids.v + from,
                             .n_token_ids = c->ids.n - from};
    if (g->q.sp.logprobs < 0)
        return 0;
    struct oai_token_logprob *lp = NULL;
    int rc = logprobs_of(g, c->lps, -1, from, to, chars_before, a, &lp);
    o->has_lp = true, o->lp = lp, o->n_lp = to - from;
    return rc;
}

/* echo_logprobs: o's logprobs with the prompt's positions first (completions echo): the
 * first prompt token has null entries, the others their prompt logprobs. */
static int echo_logprobs(const struct gen *g, const struct gen_choice *c, struct arena *a,
                         struct oai_choice *o)
{
    const struct gen_prompt *p = &g->prompts[c->index / (uint32_t)g->q.n];
    size_t np = p->n_plps + 1, n = np + c->n_lps;
    struct gen_lp *all = arena_alloc(a, n * sizeof *all);
    struct oai_token_logprob *lp = NULL;
    if (!all)
        return ERR_NOMEM;
    all[0] = (struct gen_lp){.id = p->ids.v[0]};
    memcpy(all + 1, p->plps, p->n_plps * sizeof *all);
    memcpy(all + np, c->lps, c->n_lps * sizeof *all);
    int rc = logprobs_of(g, all, -1, 0, n, 0, a, &lp);
    if (rc)
        return rc;
    lp[0].null = true;
    lp[0].logprob = 0;
    lp[0].n_top = 0;
    o->has_lp = true, o->lp = lp, o->n_lp = n;
    return 0;
}

/* prompt_info: vLLM's prompt extensions of prompt p (return_token_ids, prompt_logprobs). */
static int prompt_info(const struct gen *g, const struct gen_prompt *p, struct arena *a,
                       struct oai_prompt_info *out)
{
    *out = (struct oai_prompt_info){.has_token_ids = g->q.return_token_ids,
                                    .token_ids = p->ids.v,
                                    .n_token_ids = p->ids.n,
                                    .has_logprobs = g->show_plp};
    if (!g->show_plp)
        return 0;
    size_t n = p->n_plps + 1;
    struct oai_prompt_logprob *pos = arena_alloc(a, n * sizeof *pos);
    if (!pos)
        return ERR_NOMEM;
    pos[0] = (struct oai_prompt_logprob){NULL, 0};
    for (size_t k = 1; k < n; k++) {
        const struct gen_lp *x = &p->plps[k - 1];
        struct oai_prompt_logprob_entry *e = arena_alloc(a, (1 + x->n_top) * sizeof *e);
        int32_t cand[1 + SAMPLING_MAX_LOGPROBS];
        if (!e)
            return ERR_NOMEM;
        cand[0] = x->id;
        memcpy(cand + 1, x->top_ids, x->n_top * sizeof *cand);
        for (uint32_t t = 0; t <= x->n_top; t++) {
            e[t] = (struct oai_prompt_logprob_entry){
                .id = cand[t], .logprob = t ? x->top_lps[t - 1] : x->logprob, .rank = (int32_t)t};
            for (uint32_t u = 0; t == 0 && u < x->n_top; u++)
                if (x->top_ids[u] == x->id)
                    e[0].rank = (int32_t)u + 1; /* else beyond the top k: unknown, null */
            int rc = token_str(g, cand, 1 + x->n_top, t, -1, a, &e[t].token);
            if (rc)
                return rc;
        }
        pos[k] = (struct oai_prompt_logprob){e, 1 + x->n_top};
    }
    out->logprobs = pos;
    out->n_logprobs = n;
    return 0;
}

/* chat_echo: vLLM's chat echo: the last message's text when it has the role of the answer
 * ("assistant"), else nothing. */
static int chat_echo(const struct gen *g, struct buf *b)
{
    size_t n = json_array_size(g->q.messages);
    const json_t *last = n ? json_array_get(g->q.messages, n - 1) : NULL;
    const char *role = json_string_value(json_object_get(last, "role"));
    const json_t *content = json_object_get(last, "content");
    if (!role || strcmp(role, "assistant") != 0)
        return 0;
    if (json_is_string(content))
        return buf_append(b, json_string_value(content), json_string_length(content));
    size_t i;
    const json_t *part;
    int rc = 0, k = 0;
    json_array_foreach(content, i, part) /* text parts joined with newlines, as the template */
    {
        const json_t *t = json_object_get(part, "text");
        if (!rc && json_is_string(t)) {
            if (k++)
                rc = buf_append(b, "\n", 1);
            if (!rc)
                rc = buf_append(b, json_string_value(t), json_string_length(t));
        }
    }
    return rc;
}

/* echo_text: the prompt's text of choice c (completions echo; chat: chat_echo) into b. */
static int echo_text(const struct gen *g, const struct gen_choice *c, struct buf *b)
{
    if (g->q.kind == OAI_CHAT)
        return chat_echo(g, b);
    const struct gen_prompt *p = &g->prompts[c->index / (uint32_t)g->q.n];
    const struct oai_prompt *q = &g->q.prompts[c->index / (uint32_t)g->q.n];
    if (!q->ids)
        return buf_append(b, q->text.p, q->text.n);
    return tok_decode(g->fe->tok, p->ids.v, p->ids.n, g->q.skip_special_tokens, b);
}

int gen_out_final(struct gen *g)
{
    struct arena a;
    arena_init(&a, OUT_ARENA_LIMIT, 1 << 14);
    struct oai_choice *ch = arena_alloc(&a, g->n_choices * sizeof *ch);
    struct buf *texts = arena_alloc(&a, g->n_choices * sizeof *texts);
    int rc = ch && texts ? 0 : ERR_NOMEM;
    for (uint32_t i = 0; !rc && i < g->n_choices; i++) {
        struct gen_choice *c = &g->choices[i];
        buf_init(&texts[i], 0);
        if (g->q.echo)
            rc = echo_text(g, c, &texts[i]);
        if (!rc)
            rc = buf_append(&texts[i], c->text.p, c->text.n);
        if (!rc)
            rc = choice_of(g, c, (struct str){texts[i].p, texts[i].n}, 0, c->n_lps, 0, &a, &ch[i]);
        if (!rc && g->echo_lp)
            rc = echo_logprobs(g, c, &a, &ch[i]);
        struct oai_prompt_info *pi = arena_alloc(&a, sizeof *pi);
        if (!rc && !pi)
            rc = ERR_NOMEM;
        if (!rc && g->q.kind == OAI_COMPLETION && (g->show_plp || g->q.return_token_ids)) {
            rc = prompt_info(g, &g->prompts[c->index / (uint32_t)g->q.n], &a, pi);
            ch[i].prompt = pi;
        }
    }
    struct oai_prompt_info chat_prompt;
    if (!rc && g->q.kind == OAI_CHAT)
        rc = prompt_info(g, &g->prompts[0], &a, &chat_prompt);
    struct oai_resp_ctx ctx = ctx_of(g);
    struct oai_usage u = usage_of(g);
    buf_reset(&g->out);
    if (!rc)
        rc = g->q.kind == OAI_CHAT
                 ? oai_write_chat_completion(&g->out, &ctx, ch, g->n_choices, &u,
                                             g->show_plp || g->q.return_token_ids ? &chat_prompt
                                                                                  : NULL)
                 : oai_write_completion(&g->out, &ctx, ch, g->n_choices, &u);
    for (uint32_t i = 0; texts && i < g->n_choices; i++)
        buf_deinit(&texts[i]);
    arena_deinit(&a);
    return rc;
}

int gen_out_begin(struct gen *g)
{
    struct oai_resp_ctx ctx = ctx_of(g);
    int rc = 0;
    for (uint32_t i = 0; !rc && i < g->n_choices; i++) {
        struct gen_choice *c = &g->choices[i];
        struct oai_choice o = {.index = c->index, .text_null = false, .role = true};
        if (g->q.kind == OAI_CHAT) {
            struct buf t;
            buf_init(&t, 0);
            rc = g->q.echo ? echo_text(g, c, &t) : 0;
            o.text = (struct str){t.p, t.n};
            if (!rc)
                rc = oai_write_chat_chunk(&g->out, &ctx, &o, NULL, NULL);
            buf_deinit(&t);
        } else if (g->q.echo) {
            struct buf t;
            buf_init(&t, 0);
            rc = echo_text(g, c, &t);
            o = (struct oai_choice){.index = c->index, .text = {t.p, t.n}};
            if (!rc)
                rc = oai_write_completion_chunk(&g->out, &ctx, &o, NULL);
            buf_deinit(&t);
        }
    }
    return rc;
}

int gen_out_delta(struct gen *g, struct gen_choice *c)
{
    size_t from = c->lp_sent, to = c->n_lps;
    if (c->text.n == 0 && !c->done && to == from)
        return 0; /* nothing new this round (a held-back stop prefix) */
    struct arena a;
    arena_init(&a, OUT_ARENA_LIMIT, 1 << 12);
    struct oai_choice o;
    struct oai_resp_ctx ctx = ctx_of(g);
    struct oai_usage u; /* summed over every choice: only when each chunk carries it */
    if (g->q.continuous_usage_stats)
        u = usage_of(g);
    size_t ids_from = c->ids_sent;
    int rc = choice_of(g, c, (struct str){c->text.p, c->text.n}, from, to, c->chars_sent, &a, &o);
    if (!g->q.return_token_ids)
        o.has_token_ids = false;
    o.token_ids = c->ids.v + ids_from;
    o.n_token_ids = c->ids.n - ids_from;
    const struct oai_usage *cu = g->q.continuous_usage_stats ? &u : NULL;
    if (!rc)
        rc = g->q.kind == OAI_CHAT ? oai_write_chat_chunk(&g->out, &ctx, &o, cu, NULL)
                                   : oai_write_completion_chunk(&g->out, &ctx, &o, cu);
    arena_deinit(&a);
    if (!rc) {
        c->lp_sent = to;
        c->ids_sent = c->ids.n;
        c->chars_sent += text_stream_chars(c->text.p, c->text.n);
    }
    return rc;
}

int gen_out_end(struct gen *g)
{
    struct oai_resp_ctx ctx = ctx_of(g);
    struct oai_usage u = usage_of(g);
    int rc = 0;
    if (g->q.include_usage)
        rc = oai_write_usage_chunk(&g->out, &ctx, &u);
    return rc ? rc : oai_sse_done(&g->out);
}
