/*
 * oai_response_driver: runs the writers of frontend/oai_response.h on JSON-described cases,
 * for tests/frontend/test_oai_response_sdk.py (which reads the bytes with the openai SDK).
 *
 *   oai_response_driver < cases.json > results.json
 *
 * stdin: a JSON array of cases, each {"ops": [op, ...]}; the ops of a case append to one
 * buffer (a whole SSE stream, say). An op is {"op": NAME, ...} with NAME and its fields:
 *   "chat"             ctx, choices, usage, prompt       oai_write_chat_completion
 *   "completion"       ctx, choices, usage               oai_write_completion
 *   "chat_chunk"       ctx, choice, usage, prompt        oai_write_chat_chunk
 *   "completion_chunk" ctx, choice, usage                oai_write_completion_chunk
 *   "usage_chunk"      ctx, usage                        oai_write_usage_chunk
 *   "sse_error"        status, param, message            oai_sse_error
 *   "sse_done"                                           oai_sse_done
 *   "models"           names, created, max_model_len, root   oai_write_models
 *   "tokenize"         ids, max_model_len, token_strs    oai_write_tokenize
 *   "detokenize"       text                              oai_write_detokenize
 *   "version"          version                           oai_write_version
 *   "new_id"           kind, suffix                      oai_response_new_id (the id is the output)
 * ctx: {"kind": "chat"|"completion", "id", "created", "model", "fp"}; usage: null or
 * {"prompt_tokens", "completion_tokens", "cached_tokens"}; choice: {"index", "text" (null:
 * text_null), "role", "logprobs": null | [{"token", "logprob" (null: a null entry), "top":
 * [[token, logprob], ...], "text_offset"}], "finish": null | "stop" | "length" | "tool_calls"
 * | "abort", "stop": null | string | int, "token_ids": null | [ids], "prompt": prompt};
 * prompt: null | {"token_ids": null | [ids], "logprobs": null | [null | [[id, logprob, rank,
 * token], ...]]}. A string is a JSON string or {"hex": bytes} (any bytes, invalid UTF-8
 * too); a logprob is a number or "-inf", "inf", "nan".
 * stdout: a JSON array, one {"rc": code, "hex": the buffer's bytes} per case. Exit 0, or 2
 * when stdin is not such an array.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/arena.h"
#include "common/buf.h"
#include "common/err.h"
#include "frontend/oai_error.h"
#include "frontend/oai_response.h"

static struct arena A;

/* get_str: a string field (JSON string or {"hex"}) into the arena; {NULL, 0} when absent. */
static struct str get_str(const json_t *v)
{
    if (json_is_string(v))
        return (struct str){json_string_value(v), json_string_length(v)};
    const char *hex = json_string_value(json_object_get(v, "hex"));
    if (!hex)
        return (struct str){NULL, 0};
    size_t n = strlen(hex) / 2;
    char *p = arena_alloc(&A, n + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned x = 0;
        sscanf(hex + 2 * i, "%2x", &x);
        p[i] = (char)x;
    }
    p[n] = '\0';
    return (struct str){p, n};
}

static const char *get_cstr(const json_t *v)
{
    struct str s = get_str(v);
    return s.p ? arena_strndup(&A, s.p, s.n) : NULL;
}

static float get_lp(const json_t *v)
{
    const char *s = json_string_value(v);
    if (s)
        return strcmp(s, "nan") == 0 ? NAN : strcmp(s, "inf") == 0 ? INFINITY : -INFINITY;
    return (float)json_number_value(v);
}

static int32_t *get_ids(const json_t *v, size_t *n)
{
    *n = json_array_size(v);
    int32_t *ids = arena_calloc(&A, *n + 1, sizeof *ids);
    for (size_t i = 0; i < *n; i++)
        ids[i] = (int32_t)json_integer_value(json_array_get(v, i));
    return ids;
}

static struct oai_resp_ctx get_ctx(const json_t *v)
{
    struct oai_resp_ctx c = {0};
    const char *kind = json_string_value(json_object_get(v, "kind"));
    c.kind = kind && strcmp(kind, "chat") == 0 ? OAI_CHAT : OAI_COMPLETION;
    c.id = get_cstr(json_object_get(v, "id"));
    c.created = json_integer_value(json_object_get(v, "created"));
    c.model = get_str(json_object_get(v, "model"));
    c.system_fingerprint = get_cstr(json_object_get(v, "fp"));
    return c;
}

static const struct oai_usage *get_usage(const json_t *v)
{
    if (!json_is_object(v))
        return NULL;
    struct oai_usage *u = arena_calloc(&A, 1, sizeof *u);
    u->prompt_tokens = (uint32_t)json_integer_value(json_object_get(v, "prompt_tokens"));
    u->completion_tokens = (uint32_t)json_integer_value(json_object_get(v, "completion_tokens"));
    u->cached_tokens = (uint32_t)json_integer_value(json_object_get(v, "cached_tokens"));
    return u;
}

static const struct oai_prompt_info *get_prompt(const json_t *v)
{
    if (!json_is_object(v))
        return NULL;
    struct oai_prompt_info *p = arena_calloc(&A, 1, sizeof *p);
    const json_t *ids = json_object_get(v, "token_ids"), *lps = json_object_get(v, "logprobs");
    if (json_is_array(ids)) {
        p->has_token_ids = true;
        p->token_ids = get_ids(ids, &p->n_token_ids);
    }
    if (json_is_array(lps)) {
        p->has_logprobs = true;
        p->n_logprobs = json_array_size(lps);
        struct oai_prompt_logprob *pos = arena_calloc(&A, p->n_logprobs + 1, sizeof *pos);
        for (size_t i = 0; i < p->n_logprobs; i++) {
            const json_t *e = json_array_get(lps, i);
            pos[i].n = json_array_size(e);
            struct oai_prompt_logprob_entry *x = arena_calloc(&A, pos[i].n + 1, sizeof *x);
            for (size_t k = 0; k < pos[i].n; k++) {
                const json_t *t = json_array_get(e, k);
                x[k].id = (int32_t)json_integer_value(json_array_get(t, 0));
                x[k].logprob = get_lp(json_array_get(t, 1));
                x[k].rank = (int32_t)json_integer_value(json_array_get(t, 2));
                x[k].token = get_str(json_array_get(t, 3));
            }
            pos[i].e = x;
        }
        p->logprobs = pos;
    }
    return p;
}

static void get_logprobs(const json_t *v, struct oai_choice *c)
{
    c->has_lp = json_is_array(v);
    c->n_lp = json_array_size(v);
    struct oai_token_logprob *lp = arena_calloc(&A, c->n_lp + 1, sizeof *lp);
    for (size_t i = 0; i < c->n_lp; i++) {
        const json_t *e = json_array_get(v, i), *top = json_object_get(e, "top");
        lp[i].token = get_str(json_object_get(e, "token"));
        lp[i].null = json_is_null(json_object_get(e, "logprob"));
        lp[i].logprob = lp[i].null ? 0 : get_lp(json_object_get(e, "logprob"));
        lp[i].text_offset = (uint32_t)json_integer_value(json_object_get(e, "text_offset"));
        lp[i].n_top = json_array_size(top);
        struct oai_top_logprob *t = arena_calloc(&A, lp[i].n_top + 1, sizeof *t);
        for (size_t k = 0; k < lp[i].n_top; k++) {
            t[k].token = get_str(json_array_get(json_array_get(top, k), 0));
            t[k].logprob = get_lp(json_array_get(json_array_get(top, k), 1));
        }
        lp[i].top = t;
    }
    c->lp = lp;
}

static void get_choice(const json_t *v, struct oai_choice *c)
{
    static const char *const finishes[] = {"", "stop", "length", "tool_calls", "abort"};
    memset(c, 0, sizeof *c);
    c->index = (uint32_t)json_integer_value(json_object_get(v, "index"));
    const json_t *text = json_object_get(v, "text");
    c->text_null = !text || json_is_null(text);
    c->text = get_str(text);
    c->role = json_is_true(json_object_get(v, "role"));
    get_logprobs(json_object_get(v, "logprobs"), c);
    const char *f = json_string_value(json_object_get(v, "finish"));
    for (int i = 1; f && i < 5; i++)
        if (strcmp(f, finishes[i]) == 0)
            c->finish = (enum oai_finish)i;
    const json_t *stop = json_object_get(v, "stop");
    if (json_is_integer(stop)) {
        c->stop.kind = OAI_STOP_TOKEN;
        c->stop.token = (int32_t)json_integer_value(stop);
    } else if (stop && !json_is_null(stop)) {
        c->stop.kind = OAI_STOP_STRING;
        c->stop.str = get_str(stop);
    }
    const json_t *ids = json_object_get(v, "token_ids");
    if (json_is_array(ids)) {
        c->has_token_ids = true;
        c->token_ids = get_ids(ids, &c->n_token_ids);
    }
    c->prompt = get_prompt(json_object_get(v, "prompt"));
}

static struct oai_choice *get_choices(const json_t *v, size_t *n)
{
    *n = json_array_size(v);
    struct oai_choice *c = arena_calloc(&A, *n + 1, sizeof *c);
    for (size_t i = 0; i < *n; i++)
        get_choice(json_array_get(v, i), &c[i]);
    return c;
}

static int op_small(const json_t *op, const char *name, struct buf *b)
{
    if (strcmp(name, "models") == 0) {
        const json_t *names = json_object_get(op, "names");
        size_t n = json_array_size(names);
        const char **v = arena_calloc(&A, n + 1, sizeof *v);
        for (size_t i = 0; i < n; i++)
            v[i] = get_cstr(json_array_get(names, i));
        return oai_write_models(b, v, n, json_integer_value(json_object_get(op, "created")),
                                (int32_t)json_integer_value(json_object_get(op, "max_model_len")),
                                get_cstr(json_object_get(op, "root")));
    }
    if (strcmp(name, "tokenize") == 0) {
        size_t n, ns;
        int32_t *ids = get_ids(json_object_get(op, "ids"), &n);
        const json_t *strs = json_object_get(op, "token_strs");
        struct str *s = NULL;
        if (json_is_array(strs)) {
            ns = json_array_size(strs);
            s = arena_calloc(&A, ns + 1, sizeof *s);
            for (size_t i = 0; i < ns && i < n; i++)
                s[i] = get_str(json_array_get(strs, i));
        }
        return oai_write_tokenize(
            b, ids, n, (int32_t)json_integer_value(json_object_get(op, "max_model_len")), s);
    }
    if (strcmp(name, "detokenize") == 0) {
        struct str t = get_str(json_object_get(op, "text"));
        return oai_write_detokenize(b, t.p, t.n);
    }
    if (strcmp(name, "version") == 0)
        return oai_write_version(b, get_cstr(json_object_get(op, "version")));
    if (strcmp(name, "new_id") == 0) {
        char id[OAI_RESP_ID_MAX];
        const char *kind = json_string_value(json_object_get(op, "kind"));
        struct str s = get_str(json_object_get(op, "suffix"));
        int rc = oai_response_new_id(kind && strcmp(kind, "chat") == 0 ? OAI_CHAT : OAI_COMPLETION,
                                     s.p, s.n, id);
        return rc ? rc : buf_append_str(b, id);
    }
    return ERR_INVAL;
}

static int run_op(const json_t *op, struct buf *b)
{
    const char *name = json_string_value(json_object_get(op, "op"));
    if (!name)
        return ERR_INVAL;
    struct oai_resp_ctx ctx = get_ctx(json_object_get(op, "ctx"));
    const struct oai_usage *u = get_usage(json_object_get(op, "usage"));
    const struct oai_prompt_info *prompt = get_prompt(json_object_get(op, "prompt"));
    size_t n;
    if (strcmp(name, "chat") == 0 || strcmp(name, "completion") == 0) {
        struct oai_choice *c = get_choices(json_object_get(op, "choices"), &n);
        static const struct oai_usage zero = {0, 0, 0};
        if (name[1] == 'h')
            return oai_write_chat_completion(b, &ctx, c, n, u ? u : &zero, prompt);
        return oai_write_completion(b, &ctx, c, n, u ? u : &zero);
    }
    if (strcmp(name, "chat_chunk") == 0 || strcmp(name, "completion_chunk") == 0) {
        struct oai_choice c;
        get_choice(json_object_get(op, "choice"), &c);
        if (name[1] == 'h')
            return oai_write_chat_chunk(b, &ctx, &c, u, prompt);
        return oai_write_completion_chunk(b, &ctx, &c, u);
    }
    if (strcmp(name, "usage_chunk") == 0)
        return u ? oai_write_usage_chunk(b, &ctx, u) : ERR_INVAL;
    if (strcmp(name, "sse_done") == 0)
        return oai_sse_done(b);
    if (strcmp(name, "sse_error") == 0) {
        struct oai_error e;
        const char *param = get_cstr(json_object_get(op, "param"));
        const char *msg = get_cstr(json_object_get(op, "message"));
        oai_error_set(&e, (int)json_integer_value(json_object_get(op, "status")), param, "%s",
                      msg ? msg : "");
        return oai_sse_error(b, &e);
    }
    return op_small(op, name, b);
}

static json_t *run_case(const json_t *c)
{
    struct buf b;
    buf_init(&b, 0);
    arena_reset(&A);
    int rc = 0;
    const json_t *ops = json_object_get(c, "ops");
    for (size_t i = 0; i < json_array_size(ops) && !rc; i++)
        rc = run_op(json_array_get(ops, i), &b);
    char *hex = malloc(2 * b.n + 1);
    for (size_t i = 0; i < b.n; i++)
        snprintf(hex + 2 * i, 3, "%02x", (unsigned char)b.p[i]);
    hex[2 * b.n] = '\0';
    json_t *out = json_pack("{s:i, s:s}", "rc", rc, "hex", hex);
    free(hex);
    buf_deinit(&b);
    return out;
}

int main(void)
{
    json_error_t err;
    json_t *cases = json_loadf(stdin, JSON_ALLOW_NUL, &err);
    if (!json_is_array(cases)) {
        fprintf(stderr, "oai_response_driver: stdin: %s\n", err.text);
        return 2;
    }
    arena_init(&A, 0, 1 << 16);
    json_t *out = json_array();
    for (size_t i = 0; i < json_array_size(cases); i++)
        json_array_append_new(out, run_case(json_array_get(cases, i)));
    json_dumpf(out, stdout, JSON_COMPACT);
    fputc('\n', stdout);
    json_decref(out);
    json_decref(cases);
    arena_deinit(&A);
    return 0;
}
