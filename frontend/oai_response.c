/*
 * oai_response: OpenAI response bodies and SSE events (see oai_response.h).
 *
 * Each writer builds its body through a `struct jw`, which remembers the first error and
 * makes every later append a no-op; at the end the body is kept or cut off as a whole.
 */
#include "frontend/oai_response.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "common/err.h"
#include "frontend/oai_response_json.h"

struct jw {
    struct buf *b;
    size_t n0; /* b->n before the body: kept on failure */
    int err;
};

static struct jw jw_begin(struct buf *b)
{
    return (struct jw){b, b->n, 0};
}

/* jw_end: the writer's result; on failure b gets back its length from jw_begin. */
static int jw_end(struct jw *w)
{
    if (w->err && w->b->cap) {
        w->b->n = w->n0;
        w->b->p[w->n0] = '\0';
    }
    return w->err;
}

static void put(struct jw *w, const char *s, size_t n)
{
    if (!w->err)
        w->err = buf_append(w->b, s, n);
}

#define PUT(w, lit) put((w), (lit), sizeof(lit) - 1)

static void put_str(struct jw *w, struct str s)
{
    if (!w->err)
        w->err = oai_response_json_str(w->b, s.p, s.n);
}

static void put_cstr(struct jw *w, const char *s)
{
    put_str(w, str_from_cstr(s));
}

static void put_int(struct jw *w, int64_t v)
{
    if (!w->err)
        w->err = oai_response_json_int(w->b, v);
}

static void put_lp(struct jw *w, float v)
{
    if (!w->err)
        w->err = oai_response_json_logprob(w->b, v);
}

static void put_ids(struct jw *w, const int32_t *ids, size_t n)
{
    if (!w->err)
        w->err = oai_response_json_ids(w->b, ids, n);
}

static void put_bytes(struct jw *w, struct str s)
{
    if (!w->err)
        w->err = oai_response_json_utf8_bytes(w->b, s.p, s.n);
}

/* ---- pieces ---- */

/* head: {"id", "object", "created", "model" (no closing brace). */
static void head(struct jw *w, const struct oai_resp_ctx *ctx, const char *object)
{
    PUT(w, "{\"id\":");
    put_cstr(w, ctx->id);
    PUT(w, ",\"object\":\"");
    put(w, object, strlen(object));
    PUT(w, "\",\"created\":");
    put_int(w, ctx->created);
    PUT(w, ",\"model\":");
    put_str(w, ctx->model);
}

static void usage(struct jw *w, const struct oai_usage *u)
{
    PUT(w, "{\"prompt_tokens\":");
    put_int(w, u->prompt_tokens);
    PUT(w, ",\"completion_tokens\":");
    put_int(w, u->completion_tokens);
    PUT(w, ",\"total_tokens\":");
    put_int(w, (int64_t)u->prompt_tokens + u->completion_tokens);
    PUT(w, ",\"prompt_tokens_details\":{\"cached_tokens\":");
    put_int(w, u->cached_tokens);
    PUT(w, "}}");
}

/* finish: ,"finish_reason":... and, with a finish (or always when `stop_always`),
 * ,"stop_reason":... */
static void finish(struct jw *w, const struct oai_choice *c, bool stop_always)
{
    static const char *const names[] = {
        [OAI_FINISH_STOP] = "\"stop\"",
        [OAI_FINISH_LENGTH] = "\"length\"",
        [OAI_FINISH_TOOL_CALLS] = "\"tool_calls\"",
        [OAI_FINISH_ABORT] = "\"abort\"",
    };
    bool known = c->finish > OAI_FINISH_NONE && c->finish <= OAI_FINISH_ABORT;
    PUT(w, ",\"finish_reason\":");
    if (known)
        put(w, names[c->finish], strlen(names[c->finish]));
    else
        PUT(w, "null");
    if (!known && !stop_always)
        return;
    PUT(w, ",\"stop_reason\":");
    if (c->stop.kind == OAI_STOP_STRING)
        put_str(w, c->stop.str);
    else if (c->stop.kind == OAI_STOP_TOKEN)
        put_int(w, c->stop.token);
    else
        PUT(w, "null");
}

static void token_ids(struct jw *w, const struct oai_choice *c)
{
    if (!c->has_token_ids)
        return;
    PUT(w, ",\"token_ids\":");
    put_ids(w, c->token_ids, c->n_token_ids);
}

/* prompt_logprob: one position's object, an id that comes twice written once. */
static void prompt_logprob(struct jw *w, const struct oai_prompt_logprob *p)
{
    if (!p->n) {
        PUT(w, "null");
        return;
    }
    PUT(w, "{");
    bool first = true;
    for (size_t i = 0; i < p->n; i++) {
        size_t last = i;
        bool seen = false;
        for (size_t k = 0; k < p->n && !seen; k++)
            if (p->e[k].id == p->e[i].id) {
                seen = k < i;
                if (k > last)
                    last = k;
            }
        if (seen)
            continue;
        const struct oai_prompt_logprob_entry *e = &p->e[last];
        if (!first)
            PUT(w, ",");
        PUT(w, "\"");
        put_int(w, e->id);
        PUT(w, "\":{\"logprob\":");
        put_lp(w, e->logprob);
        PUT(w, ",\"rank\":");
        if (e->rank > 0)
            put_int(w, e->rank);
        else
            PUT(w, "null");
        PUT(w, ",\"decoded_token\":");
        put_str(w, e->token);
        PUT(w, "}");
        first = false;
    }
    PUT(w, "}");
}

/* prompt_ext: ,"prompt_logprobs":[...] and ,"prompt_token_ids":[...] as p has them. */
static void prompt_ext(struct jw *w, const struct oai_prompt_info *p, bool logprobs)
{
    if (!p)
        return;
    if (logprobs && p->has_logprobs) {
        PUT(w, ",\"prompt_logprobs\":[");
        for (size_t i = 0; i < p->n_logprobs; i++) {
            if (i)
                PUT(w, ",");
            prompt_logprob(w, &p->logprobs[i]);
        }
        PUT(w, "]");
    }
    if (p->has_token_ids) {
        PUT(w, ",\"prompt_token_ids\":");
        put_ids(w, p->token_ids, p->n_token_ids);
    }
}

/* ---- chat ---- */

static void chat_top(struct jw *w, struct str token, float lp)
{
    PUT(w, "{\"token\":");
    put_str(w, token);
    PUT(w, ",\"logprob\":");
    put_lp(w, lp);
    PUT(w, ",\"bytes\":");
    put_bytes(w, token);
}

/* chat_logprobs: null or {"content":[...]}. */
static void chat_logprobs(struct jw *w, const struct oai_choice *c)
{
    if (!c->has_lp) {
        PUT(w, "null");
        return;
    }
    PUT(w, "{\"content\":[");
    for (size_t i = 0; i < c->n_lp && !w->err; i++) {
        const struct oai_token_logprob *p = &c->lp[i];
        if (i)
            PUT(w, ",");
        if (p->null) {
            PUT(w, "{\"token\":");
            put_str(w, p->token);
            PUT(w, ",\"logprob\":-9999.0,\"bytes\":null,\"top_logprobs\":[]}");
            continue;
        }
        chat_top(w, p->token, p->logprob);
        PUT(w, ",\"top_logprobs\":[");
        for (size_t j = 0; j < p->n_top; j++) {
            if (j)
                PUT(w, ",");
            chat_top(w, p->top[j].token, p->top[j].logprob);
            PUT(w, "}");
        }
        PUT(w, "]}");
    }
    PUT(w, "]}");
}

static void chat_choice(struct jw *w, const struct oai_choice *c)
{
    PUT(w, "{\"index\":");
    put_int(w, c->index);
    PUT(w, ",\"message\":{\"role\":\"assistant\",\"content\":");
    if (c->text_null)
        PUT(w, "null");
    else
        put_str(w, c->text);
    PUT(w, "},\"logprobs\":");
    chat_logprobs(w, c);
    finish(w, c, true);
    token_ids(w, c);
    PUT(w, "}");
}

int oai_write_chat_completion(struct buf *b, const struct oai_resp_ctx *ctx,
                              const struct oai_choice *c, size_t n, const struct oai_usage *u,
                              const struct oai_prompt_info *prompt)
{
    struct jw w = jw_begin(b);
    head(&w, ctx, "chat.completion");
    PUT(&w, ",\"choices\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            PUT(&w, ",");
        chat_choice(&w, &c[i]);
    }
    PUT(&w, "],\"usage\":");
    usage(&w, u);
    PUT(&w, ",\"system_fingerprint\":");
    if (ctx->system_fingerprint)
        put_cstr(&w, ctx->system_fingerprint);
    else
        PUT(&w, "null");
    prompt_ext(&w, prompt, true);
    PUT(&w, "}");
    return jw_end(&w);
}

/* chunk_head: data: {"id", "object", "created", "model"[, "system_fingerprint"] */
static void chunk_head(struct jw *w, const struct oai_resp_ctx *ctx, bool chat)
{
    PUT(w, "data: ");
    head(w, ctx, chat ? "chat.completion.chunk" : "text_completion");
    if (ctx->system_fingerprint) {
        PUT(w, ",\"system_fingerprint\":");
        put_cstr(w, ctx->system_fingerprint);
    }
}

/* chunk_tail: [,"usage":{...}]}\n\n */
static void chunk_tail(struct jw *w, const struct oai_usage *u)
{
    if (u) {
        PUT(w, ",\"usage\":");
        usage(w, u);
    }
    PUT(w, "}\n\n");
}

int oai_write_chat_chunk(struct buf *b, const struct oai_resp_ctx *ctx, const struct oai_choice *c,
                         const struct oai_usage *u, const struct oai_prompt_info *prompt)
{
    struct jw w = jw_begin(b);
    chunk_head(&w, ctx, true);
    PUT(&w, ",\"choices\":[{\"index\":");
    put_int(&w, c->index);
    PUT(&w, ",\"delta\":{");
    if (c->role)
        PUT(&w, "\"role\":\"assistant\"");
    if (!c->text_null) {
        if (c->role)
            PUT(&w, ",");
        PUT(&w, "\"content\":");
        put_str(&w, c->text);
    }
    PUT(&w, "},\"logprobs\":");
    chat_logprobs(&w, c);
    finish(&w, c, false);
    token_ids(&w, c);
    PUT(&w, "}]");
    if (prompt && prompt->has_token_ids) {
        PUT(&w, ",\"prompt_token_ids\":");
        put_ids(&w, prompt->token_ids, prompt->n_token_ids);
    }
    chunk_tail(&w, u);
    return jw_end(&w);
}

int oai_write_usage_chunk(struct buf *b, const struct oai_resp_ctx *ctx, const struct oai_usage *u)
{
    struct jw w = jw_begin(b);
    chunk_head(&w, ctx, ctx->kind == OAI_CHAT);
    PUT(&w, ",\"choices\":[]");
    chunk_tail(&w, u);
    return jw_end(&w);
}

/* ---- completions ---- */

/* top_object: {token: logprob, ...} of p, a token that comes twice written once. */
static void top_object(struct jw *w, const struct oai_token_logprob *p)
{
    PUT(w, "{");
    bool first = true;
    for (size_t i = 0; i < p->n_top; i++) {
        struct str t = p->top[i].token;
        size_t last = i;
        bool seen = false;
        for (size_t k = 0; k < p->n_top && !seen; k++)
            if (str_eq(p->top[k].token, t)) {
                seen = k < i;
                if (k > last)
                    last = k;
            }
        if (seen)
            continue;
        if (!first)
            PUT(w, ",");
        put_str(w, t);
        PUT(w, ":");
        put_lp(w, p->top[last].logprob);
        first = false;
    }
    PUT(w, "}");
}

/* cmpl_logprobs: null or {"tokens", "token_logprobs", "top_logprobs", "text_offset"}. */
static void cmpl_logprobs(struct jw *w, const struct oai_choice *c)
{
    if (!c->has_lp) {
        PUT(w, "null");
        return;
    }
    PUT(w, "{\"tokens\":[");
    for (size_t i = 0; i < c->n_lp; i++) {
        if (i)
            PUT(w, ",");
        put_str(w, c->lp[i].token);
    }
    PUT(w, "],\"token_logprobs\":[");
    for (size_t i = 0; i < c->n_lp; i++) {
        if (i)
            PUT(w, ",");
        if (c->lp[i].null)
            PUT(w, "null");
        else
            put_lp(w, c->lp[i].logprob);
    }
    PUT(w, "],\"top_logprobs\":[");
    for (size_t i = 0; i < c->n_lp && !w->err; i++) {
        if (i)
            PUT(w, ",");
        if (c->lp[i].null)
            PUT(w, "null");
        else
            top_object(w, &c->lp[i]);
    }
    PUT(w, "],\"text_offset\":[");
    for (size_t i = 0; i < c->n_lp; i++) {
        if (i)
            PUT(w, ",");
        put_int(w, c->lp[i].text_offset);
    }
    PUT(w, "]}");
}

/* cmpl_choice: a completion choice, of a body (whole) or of a chunk. */
static void cmpl_choice(struct jw *w, const struct oai_choice *c, bool whole)
{
    PUT(w, "{\"index\":");
    put_int(w, c->index);
    PUT(w, ",\"text\":");
    if (c->text_null)
        PUT(w, "\"\"");
    else
        put_str(w, c->text);
    PUT(w, ",\"logprobs\":");
    cmpl_logprobs(w, c);
    finish(w, c, whole);
    token_ids(w, c);
    prompt_ext(w, c->prompt, true);
    PUT(w, "}");
}

int oai_write_completion(struct buf *b, const struct oai_resp_ctx *ctx, const struct oai_choice *c,
                         size_t n, const struct oai_usage *u)
{
    struct jw w = jw_begin(b);
    head(&w, ctx, "text_completion");
    PUT(&w, ",\"choices\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            PUT(&w, ",");
        cmpl_choice(&w, &c[i], true);
    }
    PUT(&w, "],\"usage\":");
    usage(&w, u);
    PUT(&w, ",\"system_fingerprint\":");
    if (ctx->system_fingerprint)
        put_cstr(&w, ctx->system_fingerprint);
    else
        PUT(&w, "null");
    PUT(&w, "}");
    return jw_end(&w);
}

int oai_write_completion_chunk(struct buf *b, const struct oai_resp_ctx *ctx,
                               const struct oai_choice *c, const struct oai_usage *u)
{
    struct jw w = jw_begin(b);
    chunk_head(&w, ctx, false);
    PUT(&w, ",\"choices\":[");
    cmpl_choice(&w, c, false);
    PUT(&w, "]");
    chunk_tail(&w, u);
    return jw_end(&w);
}

/* ---- SSE ---- */

int oai_sse_error(struct buf *b, const struct oai_error *e)
{
    struct jw w = jw_begin(b);
    PUT(&w, "data: ");
    if (!w.err)
        w.err = oai_error_json_buf(e, b);
    PUT(&w, "\n\n");
    return jw_end(&w);
}

int oai_sse_done(struct buf *b)
{
    return buf_append(b, "data: [DONE]\n\n", 14);
}

/* ---- small endpoints ---- */

/* perm_id: "modelperm-" and 32 hex digits derived from name (FNV-1a, two seeds). */
static void perm_id(const char *name, char out[43])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t h[2] = {0xcbf29ce484222325ull, 0x84222325cbf29ce4ull};
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        for (int k = 0; k < 2; k++)
            h[k] = (h[k] ^ *p) * 0x100000001b3ull;
    memcpy(out, "modelperm-", 10);
    for (int i = 0; i < 32; i++)
        out[10 + i] = hex[(h[i / 16] >> (60 - 4 * (i % 16))) & 15];
    out[42] = '\0';
}

static void model_card(struct jw *w, const char *name, int64_t created, int32_t max_model_len,
                       const char *root)
{
    char perm[43];
    perm_id(name, perm);
    PUT(w, "{\"id\":");
    put_cstr(w, name);
    PUT(w, ",\"object\":\"model\",\"created\":");
    put_int(w, created);
    PUT(w, ",\"owned_by\":\"kiln\",\"root\":");
    if (root)
        put_cstr(w, root);
    else
        PUT(w, "null");
    PUT(w, ",\"parent\":null,\"max_model_len\":");
    if (max_model_len > 0)
        put_int(w, max_model_len);
    else
        PUT(w, "null");
    PUT(w, ",\"permission\":[{\"id\":\"");
    put(w, perm, 42);
    PUT(w, "\",\"object\":\"model_permission\",\"created\":");
    put_int(w, created);
    PUT(w, ",\"allow_create_engine\":false,\"allow_sampling\":true,\"allow_logprobs\":true,"
           "\"allow_search_indices\":false,\"allow_view\":true,\"allow_fine_tuning\":false,"
           "\"organization\":\"*\",\"group\":null,\"is_blocking\":false}]}");
}

int oai_write_models(struct buf *b, const char *const *names, size_t n, int64_t created,
                     int32_t max_model_len, const char *root)
{
    struct jw w = jw_begin(b);
    PUT(&w, "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            PUT(&w, ",");
        model_card(&w, names[i], created, max_model_len, root);
    }
    PUT(&w, "]}");
    return jw_end(&w);
}

int oai_write_tokenize(struct buf *b, const int32_t *ids, size_t n, int32_t max_model_len,
                       const struct str *token_strs)
{
    struct jw w = jw_begin(b);
    PUT(&w, "{\"count\":");
    put_int(&w, (int64_t)n);
    PUT(&w, ",\"max_model_len\":");
    put_int(&w, max_model_len);
    PUT(&w, ",\"tokens\":");
    put_ids(&w, ids, n);
    if (token_strs) {
        PUT(&w, ",\"token_strs\":[");
        for (size_t i = 0; i < n; i++) {
            if (i)
                PUT(&w, ",");
            put_str(&w, token_strs[i]);
        }
        PUT(&w, "]");
    }
    PUT(&w, "}");
    return jw_end(&w);
}

int oai_write_detokenize(struct buf *b, const char *text, size_t n)
{
    struct jw w = jw_begin(b);
    PUT(&w, "{\"prompt\":");
    put_str(&w, (struct str){text, n});
    PUT(&w, "}");
    return jw_end(&w);
}

int oai_write_version(struct buf *b, const char *version)
{
    struct jw w = jw_begin(b);
    PUT(&w, "{\"version\":");
    put_cstr(&w, version);
    PUT(&w, "}");
    return jw_end(&w);
}

/* ---- ids ---- */

/* random_bytes: n bytes from the kernel's random source. 0 or ERR_IO. */
static int random_bytes(unsigned char *p, size_t n)
{
    while (n) {
        ssize_t k = getrandom(p, n, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return ERR_IO;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

int oai_response_new_id(enum oai_kind kind, const char *suffix, size_t n, char out[OAI_RESP_ID_MAX])
{
    const char *prefix = kind == OAI_CHAT ? "chatcmpl-" : "cmpl-";
    size_t k = strlen(prefix);
    memcpy(out, prefix, k);
    if (suffix && n) {
        if (n > OAI_RESP_ID_SUFFIX_MAX)
            n = OAI_RESP_ID_SUFFIX_MAX;
        for (size_t i = 0; i < n; i++)
            out[k + i] = suffix[i] >= '!' && suffix[i] <= '~' ? suffix[i] : '_';
        out[k + n] = '\0';
        return 0;
    }
    static const char hex[] = "0123456789abcdef";
    unsigned char r[16];
    if (random_bytes(r, sizeof r)) {
        out[0] = '\0';
        return ERR_IO;
    }
    for (size_t i = 0; i < sizeof r; i++) {
        out[k + 2 * i] = hex[r[i] >> 4];
        out[k + 2 * i + 1] = hex[r[i] & 15];
    }
    out[k + 32] = '\0';
    return 0;
}
