/* generate: completions and chat requests in the frontend. See generate.h. */
#include "frontend/generate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "common/log.h"
#include "frontend/oai_error.h"
#include "frontend/oai_response.h"
#include "templates/jinja.h"

#define MAX_PROMPT_TOKENS (1u << 20)
#define MAX_TEXT ((size_t)64 << 20) /* bytes of one choice's text */

/* done_metrics: the request's end in the metrics. */
static void done_metrics(struct gen *g, enum metrics_finish why)
{
    uint32_t prompt = 0, gen = 0;
    for (uint32_t i = 0; i < g->n_prompts; i++)
        prompt += (uint32_t)g->prompts[i].ids.n;
    for (uint32_t i = 0; i < g->n_choices; i++)
        gen += (uint32_t)g->choices[i].ids.n;
    double e2e = (double)(fe_now_ms() - g->t_start_ms) / 1000.0;
    metrics_request_done(&g->fe->metrics, why, prompt, gen, e2e, 0.0);
}

static void gen_free(struct gen *g)
{
    struct fe *fe = g->fe;
    if (g->prev)
        g->prev->next = g->next;
    else if (fe->live == g)
        fe->live = g->next;
    if (g->next)
        g->next->prev = g->prev;
    fe->n_live--;
    for (uint32_t i = 0; i < g->n_prompts; i++) {
        if (g->prompts[i].rid)
            engine_link_abort(fe->link, g->prompts[i].rid);
        tok_ids_deinit(&g->prompts[i].ids);
        free(g->prompts[i].plps);
    }
    for (uint32_t i = 0; i < g->n_choices; i++) {
        struct gen_choice *c = &g->choices[i];
        if (c->ts_live)
            text_stream_deinit(&c->ts);
        buf_deinit(&c->text);
        tok_ids_deinit(&c->ids);
        free(c->lps);
    }
    if (g->r)
        g->r->user = NULL;
    free(g->prompts);
    free(g->choices);
    buf_deinit(&g->out);
    free(g);
}

/* fail: answers g's client with e (a status before the stream began, an SSE error event
 * after) and frees g. */
static void fail(struct gen *g, const struct oai_error *e)
{
    struct http_request *r = g->r;
    done_metrics(g, METRICS_FINISH_ERROR);
    if (r) /* a response call on a client that is gone is followed by on_abort: not ours */
        r->user = NULL;
    if (r && g->begun) {
        buf_reset(&g->out);
        if (!oai_sse_error(&g->out, e) && !oai_sse_done(&g->out))
            http_stream_write(r, g->out.p, g->out.n);
        http_stream_end(r);
    } else if (r) {
        routes_respond_error(g->fe, r, e);
    }
    g->r = NULL;
    gen_free(g);
}

static void fail_status(struct gen *g, int status, const char *msg)
{
    struct oai_error e;
    oai_error_set(&e, status, NULL, "%s", msg);
    fail(g, &e);
}

/* flush: sends g->out (streaming) and empties it. A client that stopped reading gets
 * aborted by the server (ERR_LIMIT), which calls gen_abort from the loop. */
static void flush(struct gen *g)
{
    if (g->r && g->out.n)
        http_stream_write(g->r, g->out.p, g->out.n);
    buf_reset(&g->out);
}

/* finish: every choice ended: the last events or the whole body; frees g. */
static void finish(struct gen *g)
{
    struct http_request *r = g->r;
    int rc = g->streaming ? gen_out_end(g) : gen_out_final(g);
    if (rc) {
        fail_status(g, 500, "cannot build the response");
        return;
    }
    enum oai_finish f0 = g->n_choices ? g->choices[0].finish : OAI_FINISH_STOP;
    done_metrics(g, f0 == OAI_FINISH_LENGTH  ? METRICS_FINISH_LENGTH
                    : f0 == OAI_FINISH_ABORT ? METRICS_FINISH_ABORT
                                             : METRICS_FINISH_STOP);
    if (r) /* as in fail: an on_abort after our last call must not find g */
        r->user = NULL;
    if (r && g->streaming) {
        flush(g);
        http_stream_end(r);
    } else if (r) {
        struct http_header h[8];
        size_t n = routes_headers(g->fe, r, "application/json", h);
        metrics_http(&g->fe->metrics, r->path, r->method, 200);
        http_respond(r, 200, h, n, g->out.p, g->out.n);
    }
    g->r = NULL;
    gen_free(g);
}

/* choice_end: choice c ended with finish reason why (text flushed, stop reason set). */
static void choice_end(struct gen *g, struct gen_prompt *p, struct gen_choice *c,
                       enum oai_finish why)
{
    c->done = true;
    c->finish = why;
    g->n_open--;
    if (--p->n_open == 0 && p->rid) {
        engine_link_abort(g->fe->link, p->rid); /* a stop string ended it before the engine */
        p->rid = 0;
    }
}

/* keep: n positions of lp (ids[i] the token of position i) appended to *v [*n, *cap]. */
static int keep(struct gen_lp **v, size_t *n, size_t *cap, const int32_t *ids, uint32_t count,
                const struct wire_logprobs *lp)
{
    if (*n + count > *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        while (c < *n + count)
            c *= 2;
        struct gen_lp *p = realloc(*v, c * sizeof *p);
        if (!p)
            return ERR_NOMEM;
        *v = p, *cap = c;
    }
    uint32_t k = lp->n_top;
    for (uint32_t i = 0; i < count; i++) {
        struct gen_lp *x = &(*v)[(*n)++];
        x->id = ids[i];
        x->logprob = lp->logprob[i];
        x->n_top = k;
        memcpy(x->top_ids, lp->top_ids + (size_t)i * k, k * sizeof *x->top_ids);
        memcpy(x->top_lps, lp->top_logprobs + (size_t)i * k, k * sizeof *x->top_lps);
    }
    return 0;
}

/* keep_lps: the entry's logprobs for choice c. */
static int keep_lps(struct gen_choice *c, const struct wire_seq_out *s)
{
    if (!s->has_logprobs)
        return 0;
    return keep(&c->lps, &c->n_lps, &c->cap_lps, s->ids, s->n_ids, &s->lp);
}

/* keep_plps: the entry's prompt logprobs for prompt p (positions arrive in order; position
 * i's token is prompt token i + 1). */
static int keep_plps(struct gen_prompt *p, const struct wire_seq_out *s)
{
    size_t at = p->n_plps;
    if (at + s->n_prompt_lp + 1 > p->ids.n)
        return ERR_RANGE; /* more positions than the prompt has: not ours */
    return keep(&p->plps, &p->n_plps, &p->cap_plps, p->ids.v + at + 1, s->n_prompt_lp,
                &s->prompt_lp);
}

/* choice_tokens: s's ids for choice c: text, logprobs, end. */
static int choice_tokens(struct gen *g, struct gen_prompt *p, struct gen_choice *c,
                         const struct wire_seq_out *s)
{
    if (c->done)
        return 0; /* ended by a stop string while the engine went on */
    if (g->streaming && !g->opened) {
        g->opened = true;
        int rc = gen_out_begin(g);
        if (rc)
            return rc;
    }
    if (g->streaming)
        buf_reset(&c->text);
    uint32_t n = s->n_ids;
    /* the EOS or stop id that ended it is counted, not shown (vLLM) */
    uint32_t shown = s->finish == WIRE_FINISH_STOP && n && !g->q.include_stop_str_in_output
                         ? n - 1
                         : n;
    int rc = 0;
    for (uint32_t i = 0; rc == 0 && i < n; i++)
        rc = tok_ids_push(&c->ids, s->ids[i]);
    if (!rc)
        rc = keep_lps(c, s);
    if (!rc)
        rc = text_stream_feed(&c->ts, s->ids, shown, &c->text);
    if (!rc && (s->finish || c->ts.stopped) && !c->ts.finished)
        rc = text_stream_finish(&c->ts, &c->text);
    if (rc)
        return rc;
    if (c->ts.stopped) {
        c->stop_string = true;
        choice_end(g, p, c, OAI_FINISH_STOP);
    } else if (s->finish) {
        c->stop_token = s->finish == WIRE_FINISH_STOP ? s->stop_reason : -1;
        choice_end(g, p, c,
                   s->finish == WIRE_FINISH_STOP     ? OAI_FINISH_STOP
                   : s->finish == WIRE_FINISH_LENGTH ? OAI_FINISH_LENGTH
                                                     : OAI_FINISH_ABORT);
    }
    return g->streaming ? gen_out_delta(g, c) : 0;
}

/* refused: the engine would not take the request: its reason as an HTTP error. */
static void refused(struct gen *g, int32_t why)
{
    static const struct {
        int status;
        const char *msg;
    } map[] = {{500, "the engine failed the request"},
               {429, "the server is overloaded: too many requests are queued"},
               {400, "the request does not fit the engine's limits (prompt too long for the "
                     "KV cache, or a token id out of range)"},
               {503, "the server is shutting down"}};
    size_t i = why >= 0 && why <= WIRE_ERROR_MAX_ ? (size_t)why : 0;
    fail_status(g, map[i].status, map[i].msg);
}

/* token_metrics: TTFT, inter-token latency and the iteration's tokens of entry s. */
static void token_metrics(struct gen *g, struct gen_prompt *p, const struct wire_seq_out *s)
{
    struct metrics *m = &g->fe->metrics;
    uint64_t now = fe_now_ms();
    uint32_t prefill = 0;
    if (s->n_ids && !p->first_seen) {
        p->first_seen = true;
        prefill = (uint32_t)p->ids.n;
    }
    if (s->n_ids && !g->t_first_ms) {
        g->t_first_ms = now;
        metrics_first_token(m, (double)(now - g->t_start_ms) / 1000.0);
    }
    uint32_t ci = (uint32_t)(p - g->prompts) * (uint32_t)g->q.n + s->choice;
    if (s->n_ids && s->choice < (uint32_t)g->q.n) {
        struct gen_choice *c = &g->choices[ci];
        if (c->t_last_ms)
            metrics_token_gap(m, (double)(now - c->t_last_ms) / 1000.0);
        c->t_last_ms = now;
    }
    metrics_iteration(m, prefill, s->n_ids);
}

void gen_on_tokens(void *req, const struct wire_seq_out *s, bool done)
{
    struct gen_prompt *p = req;
    struct gen *g = p->g;
    if (done)
        p->rid = 0;
    if (s->finish == WIRE_FINISH_ERROR) {
        refused(g, s->stop_reason);
        return;
    }
    p->n_cached = s->n_cached_tokens;
    token_metrics(g, p, s);
    if (s->has_prompt_logprobs && keep_plps(p, s)) {
        fail_status(g, 500, "the engine sent more prompt logprobs than the prompt has");
        return;
    }
    if (s->n_ids == 0 && !s->finish)
        return;
    uint32_t ci = (uint32_t)(p - g->prompts) * (uint32_t)g->q.n + s->choice;
    if (s->choice >= (uint32_t)g->q.n)
        return;
    int rc = choice_tokens(g, p, &g->choices[ci], s);
    if (rc) {
        fail_status(g, 500, "cannot build the response");
        return;
    }
    if (g->streaming)
        flush(g);
    if (g->n_open == 0)
        finish(g);
}

void gen_on_fail(void *req, int why)
{
    struct gen_prompt *p = req;
    (void)why;
    p->rid = 0;
    fail_status(p->g, 503, "the engine serving this request died; retry");
}

void gen_abort(struct fe *fe, struct http_request *r)
{
    (void)fe;
    struct gen *g = r->user;
    g->r = NULL;
    done_metrics(g, METRICS_FINISH_ABORT);
    gen_free(g);
}

void gen_fail_all(struct fe *fe)
{
    while (fe->live)
        fail_status(fe->live, 503, "the server is shutting down");
}

int gen_render_prompt(struct fe *fe, const struct oai_request *q, struct buf *out,
                      struct oai_error *e)
{
    json_t *extra = json_copy(fe->template_vars);
    if (q->chat_template_kwargs)
        json_object_update(extra, (json_t *)q->chat_template_kwargs);
    struct chat_input in = {.messages = q->messages,
                            .tools = q->tools,
                            .add_generation_prompt = q->add_generation_prompt,
                            .continue_final_message = q->continue_final_message,
                            .extra = extra,
                            .normalize = true};
    const struct jinja_template *t = chat_templates_pick(&fe->ct, q->tools != NULL);
    struct jinja_template *own = NULL; /* a per-request template (--trust-request-chat-template) */
    char err[512] = "";
    int rc = 0;
    if (q->chat_template.n) {
        rc = jinja_compile(q->chat_template.p, q->chat_template.n, &own, err, sizeof err);
        t = own;
    }
    if (!rc)
        rc = t ? chat_template_render(t, &in, NULL, out, err, sizeof err) : ERR_NOTFOUND;
    jinja_free(own);
    json_decref(extra);
    if (rc == ERR_NOTFOUND)
        return oai_error_set(e, 400, NULL, "the model has no chat template; start the server "
                                           "with --chat-template");
    if (rc)
        return oai_error_set(e, 400, "messages", "chat template: %s", err);
    return 0;
}

/* tokenize_prompt: prompt i of q into p->ids (text through the tokenizer, or the ids),
 * truncated as asked. */
static int tokenize_prompt(struct fe *fe, const struct oai_request *q, uint32_t i,
                           struct gen_prompt *p, struct oai_error *e)
{
    tok_ids_init(&p->ids, MAX_PROMPT_TOKENS);
    int rc = 0;
    if (q->kind == OAI_CHAT) {
        struct buf text;
        buf_init(&text, (size_t)64 << 20);
        rc = gen_render_prompt(fe, q, &text, e);
        if (!rc && tok_encode(fe->enc, text.p, text.n, q->add_special_tokens, &p->ids))
            rc = oai_error_set(e, 413, "messages", "the prompt is too long");
        buf_deinit(&text);
    } else if (q->prompts[i].ids) {
        for (uint32_t k = 0; !rc && k < q->prompts[i].n_ids; k++)
            rc = tok_ids_push(&p->ids, q->prompts[i].ids[k]);
    } else if (tok_encode(fe->enc, q->prompts[i].text.p, q->prompts[i].text.n,
                          q->add_special_tokens, &p->ids)) {
        rc = oai_error_set(e, 413, "prompt", "the prompt is too long");
    }
    if (rc)
        return rc;
    int32_t keep = q->truncate_prompt_tokens < 0 ? fe->lim.max_model_len
                                                  : q->truncate_prompt_tokens;
    if (keep > 0 && p->ids.n > (size_t)keep) {
        memmove(p->ids.v, p->ids.v + p->ids.n - (size_t)keep, (size_t)keep * sizeof *p->ids.v);
        p->ids.n = (size_t)keep;
    }
    if (p->ids.n == 0)
        return oai_error_set(e, 400, q->kind == OAI_CHAT ? "messages" : "prompt",
                             "the prompt is empty after tokenization");
    return 0;
}

/* setup_prompt_logprobs: what the engine must compute for prompt_logprobs and for a
 * completions echo with logprobs (vLLM shows the prompt's logprobs then). */
static int setup_prompt_logprobs(struct gen *g, struct oai_error *e)
{
    struct sampling_params *sp = &g->q.sp;
    g->show_plp = sp->prompt_logprobs >= 0;
    g->echo_lp = g->q.kind == OAI_COMPLETION && g->q.echo && sp->logprobs >= 0;
    if (g->echo_lp && g->streaming)
        return oai_error_set(e, 400, "echo", "echo with logprobs and stream is not supported yet");
    if (g->echo_lp && sp->prompt_logprobs < sp->logprobs)
        sp->prompt_logprobs = sp->logprobs;
    return 0;
}

/* gen_new: g for parsed request q of r, its prompts tokenized, in the live list. */
static struct gen *gen_new(struct fe *fe, struct http_request *r, const struct oai_request *q,
                           struct oai_error *e)
{
    struct gen *g = calloc(1, sizeof *g);
    uint32_t np = q->kind == OAI_CHAT ? 1 : q->n_prompts;
    if (!g || !(g->prompts = calloc(np, sizeof *g->prompts)) ||
        !(g->choices = calloc((size_t)np * (size_t)q->n, sizeof *g->choices))) {
        if (g)
            free(g->prompts);
        free(g);
        oai_error_set(e, 503, NULL, "out of memory");
        return NULL;
    }
    g->fe = fe, g->r = r, g->q = *q, g->n_prompts = np;
    g->n_choices = np * (uint32_t)q->n;
    g->streaming = q->stream;
    g->created = (int64_t)time(NULL);
    g->t_start_ms = fe_now_ms();
    buf_init(&g->out, 0);
    g->next = fe->live;
    if (fe->live)
        fe->live->prev = g;
    fe->live = g;
    fe->n_live++;
    r->user = g;
    return g;
}

/* setup_choices: the text streams of every choice. */
static int setup_choices(struct gen *g, struct http_request *r)
{
    for (uint32_t i = 0; i < g->n_choices; i++) {
        struct gen_choice *c = &g->choices[i];
        struct gen_prompt *p = &g->prompts[i / (uint32_t)g->q.n];
        c->index = i;
        c->stop_token = -1;
        buf_init(&c->text, MAX_TEXT);
        tok_ids_init(&c->ids, 0);
        struct text_stream_opts o = {.skip_special = g->q.skip_special_tokens,
                                     .include_stop = g->q.include_stop_str_in_output,
                                     .stop = g->q.stop,
                                     .n_stop = g->q.n_stop,
                                     .prompt = p->ids.v,
                                     .n_prompt = p->ids.n,
                                     .min_tokens = (size_t)g->q.sp.min_tokens};
        int rc = text_stream_init(&c->ts, g->fe->tok, &o, r->arena);
        c->ts_live = true;
        if (rc)
            return rc;
    }
    return 0;
}

/* submit: one engine request per prompt. */
static int submit(struct gen *g, struct oai_error *e)
{
    for (uint32_t i = 0; i < g->n_prompts; i++) {
        struct gen_prompt *p = &g->prompts[i];
        p->g = g;
        p->n_open = (uint32_t)g->q.n;
        struct wire_add a = {.arrival_us = g->t_start_ms * 1000u,
                             .priority = g->q.priority,
                             .n = (uint32_t)g->q.n,
                             .prompt = p->ids.v,
                             .n_prompt = (uint32_t)p->ids.n,
                             .sp = g->q.sp};
        char err[200];
        int rc = engine_link_submit(g->fe->link, &a, p, &p->rid, err, sizeof err);
        if (rc == ERR_STATE)
            return oai_error_set(e, 503, NULL, "no engine is ready; retry shortly");
        if (rc == ERR_LIMIT)
            return oai_error_set(e, 429, NULL, "the server is overloaded: %s", err);
        if (rc)
            return oai_error_set(e, 400, NULL, "%s", err);
    }
    g->n_open = g->n_choices;
    return 0;
}

void gen_start(struct fe *fe, struct http_request *r, enum oai_kind kind)
{
    struct oai_error e;
    struct oai_request q;
    if (fe->draining) {
        oai_error_set(&e, 503, NULL, "the server is shutting down");
        routes_respond_error(fe, r, &e);
        return;
    }
    if (fe->n_live >= (size_t)fe->cfg.max_in_flight) { /* admission control: shed, never queue */
        oai_error_set(&e, 503, NULL, "the server is overloaded (%d requests in flight); retry",
                      fe->cfg.max_in_flight);
        routes_respond_error(fe, r, &e);
        return;
    }
    if (!engine_link_limits(fe->link)) {
        oai_error_set(&e, 503, NULL, "no engine is ready; retry shortly");
        routes_respond_error(fe, r, &e);
        return;
    }
    if (oai_request_parse(kind, r->body, r->body_len, &fe->lim, r->arena, &q, &e)) {
        routes_respond_error(fe, r, &e);
        return;
    }
    struct gen *g = gen_new(fe, r, &q, &e);
    if (!g) {
        routes_respond_error(fe, r, &e);
        return;
    }
    uint32_t longest = 0;
    for (uint32_t i = 0; i < g->n_prompts; i++) {
        if (tokenize_prompt(fe, &g->q, i, &g->prompts[i], &e)) {
            fail(g, &e);
            return;
        }
        longest = g->prompts[i].ids.n > longest ? (uint32_t)g->prompts[i].ids.n : longest;
    }
    if (setup_prompt_logprobs(g, &e)) {
        fail(g, &e);
        return;
    }
    if (oai_request_fit_length(&g->q, &fe->lim, longest, &e)) {
        fail(g, &e);
        return;
    }
    if (setup_choices(g, r)) {
        oai_error_set(&e, 400, "stop", "bad stop strings");
        fail(g, &e);
        return;
    }
    size_t sn;
    const char *suffix = http_request_header(r, "x-request-id", &sn);
    if (!suffix)
        suffix = g->q.request_id.p, sn = g->q.request_id.n;
    if (oai_response_new_id(kind, suffix, suffix ? sn : 0, g->id)) {
        fail_status(g, 500, "no request id");
        return;
    }
    if (submit(g, &e)) {
        fail(g, &e);
        return;
    }
    if (g->streaming) {
        struct http_header h[10];
        size_t n = routes_headers(fe, r, "text/event-stream", h);
        h[n++] = (struct http_header){"cache-control", 13, "no-cache", 8};
        metrics_http(&fe->metrics, r->path, r->method, 200);
        if (http_stream_begin(r, 200, h, n)) {
            fail_status(g, 500, "cannot start the stream");
            return;
        }
        g->begun = true;
    }
}
