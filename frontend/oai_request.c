/*
 * oai_request: request bodies -> struct oai_request (see oai_request.h). This file holds the
 * entry point, the pre-scan, the model, the sampling fields both endpoints share, the
 * completion prompt, /detokenize and the context-length check; oai_request_chat.c holds the
 * messages, the chat-only fields, /tokenize and the features of later releases.
 */
#include "frontend/oai_request.h"

#include <float.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/err.h"
#include "frontend/oai_request_chat.h"
#include "frontend/oai_request_field.h"

#define MAX_REQUEST_ID 256         /* bytes of a client's request_id */
#define MAX_ALLOWED_IDS (1u << 20) /* allowed_token_ids entries */
#define MAX_PROMPT_IDS (1u << 24)  /* token ids of one prompt (the context decides later) */
#define MAX_DETOKENIZE (1u << 24)  /* ids of one /detokenize */
#define MAX_BIAS_VALUE 100.0       /* |logit_bias value|, as OpenAI */

struct oai_limits oai_limits_default(void)
{
    return (struct oai_limits){.vocab_size = 0,
                               .max_model_len = 2048,
                               .max_logprobs = SAMPLING_MAX_LOGPROBS,
                               .max_n = 128,
                               .max_stop = 16,
                               .max_depth = 64,
                               .max_nodes = 1u << 20};
}

int oai_request_prescan(const char *body, size_t n, int32_t max_depth, size_t max_nodes,
                        struct oai_error *err)
{
    int32_t depth = 0;
    size_t nodes = 0;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        char ch = body[i];
        if (in_str) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_str = false;
            continue;
        }
        switch (ch) {
        case '"': in_str = true; continue;
        case '{':
        case '[':
            if (++depth > max_depth)
                return oai_error_set(err, 413, NULL,
                                     "request body is nested too deeply: more than %" PRId32
                                     " levels of arrays and objects",
                                     max_depth);
            nodes++;
            break;
        case '}':
        case ']':
            if (depth > 0)
                depth--;
            continue;
        case ',':
        case ':': nodes++; break;
        default: continue;
        }
        if (nodes > max_nodes)
            return oai_error_set(err, 413, NULL,
                                 "request body has too many JSON values: more than %zu", max_nodes);
    }
    return 0;
}

static void on_free_root(void *p)
{
    json_decref(p);
}

/* load_root: pre-scan, parse, and tie the root's life to the arena. */
static int load_root(const struct oai_ctx *c, const char *body, size_t n, json_t **root)
{
    int rc = oai_request_prescan(body, n, c->lim->max_depth, c->lim->max_nodes, c->err);
    if (rc)
        return rc;
    json_error_t je;
    /* JSON allows \u0000 in strings (a prompt may hold NUL bytes); every string is read
     * with its length */
    json_t *r = json_loadb(body, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!r) {
        if (json_error_code(&je) == json_error_out_of_memory)
            return oai_error_set(c->err, 503, NULL, "out of memory, try again later");
        return oai_error_set(c->err, 400, NULL, "Invalid JSON body: %s (line %d, column %d)",
                             je.text, je.line, je.column);
    }
    if (arena_defer(c->a, on_free_root, r)) {
        json_decref(r);
        return oai_request_field_nomem(c);
    }
    *root = r;
    if (!json_is_object(r))
        return oai_error_set(c->err, 400, NULL, "request body: expected a JSON object, got %s",
                             oai_request_field_type_name(r));
    return 0;
}

/* served_list: the served names joined with ", " into out (cut with "..." to fit). */
static void served_list(const struct oai_limits *lim, char *out, size_t cap)
{
    size_t pos = 0;
    out[0] = '\0';
    for (size_t i = 0; i < lim->n_served; i++) {
        int k = snprintf(out + pos, cap - pos, "%s%s", i ? ", " : "", lim->served_names[i]);
        if (k < 0 || (size_t)k >= cap - pos) {
            if (cap > 4)
                memcpy(out + cap - 4, "...", 4);
            return;
        }
        pos += (size_t)k;
    }
}

static int parse_model(const struct oai_ctx *c, struct oai_request *r)
{
    const struct oai_limits *lim = c->lim;
    struct str m = {0};
    int rc = oai_request_field_str(c, "model", &m);
    if (rc < 0)
        return rc;
    if (lim->n_served == 0 || m.n == 0) {
        r->model = m.n || !lim->n_served ? m : str_from_cstr(lim->served_names[0]);
        r->model_index = 0;
        return 0;
    }
    for (size_t i = 0; i < lim->n_served; i++) {
        if (str_eq_cstr(m, lim->served_names[i])) {
            r->model = m;
            r->model_index = i;
            return 0;
        }
    }
    char names[512];
    served_list(lim, names, sizeof names);
    return oai_error_set(c->err, 404, "model", "The model `%.*s` does not exist. Served models: %s",
                         oai_request_clip(m), m.p, names);
}

/* get_float: a float field in the interval given (see oai_request_field_real); *out kept
 * when not given. */
static int get_float(const struct oai_ctx *c, const char *key, double lo, bool lo_open, double hi,
                     bool hi_open, float *out)
{
    double d;
    int rc = oai_request_field_real(c, key, lo, lo_open, hi, hi_open, &d);
    if (rc == 1)
        *out = (float)d;
    return rc < 0 ? rc : 0;
}

/* get_int32: an int32 field in [lo, hi]; *out kept when not given. Returns 1, 0 or < 0. */
static int get_int32(const struct oai_ctx *c, const char *key, int64_t lo, int64_t hi, int32_t *out)
{
    int64_t x;
    int rc = oai_request_field_int(c, key, lo, hi, &x);
    if (rc == 1)
        *out = (int32_t)x;
    return rc;
}

/* gen_defaults: the defaults of generation_config.json, when there is one. */
static void gen_defaults(const struct generation_config *g, struct sampling_params *sp)
{
    if (!g)
        return;
    if (g->has_temperature)
        sp->temperature = (float)g->temperature;
    if (g->has_top_p)
        sp->top_p = (float)g->top_p;
    if (g->has_top_k)
        sp->top_k = g->top_k > 0 ? g->top_k : 0;
    if (g->has_min_p)
        sp->min_p = (float)g->min_p;
    if (g->has_repetition_penalty)
        sp->repetition_penalty = (float)g->repetition_penalty;
}

/* parse_sampling_values: the scalar sampling fields. */
static int parse_sampling_values(const struct oai_ctx *c, struct sampling_params *sp)
{
    int rc;
    if ((rc = get_float(c, "temperature", 0, false, FLT_MAX, false, &sp->temperature)) ||
        (rc = get_float(c, "top_p", 0, true, 1, false, &sp->top_p)) ||
        (rc = get_float(c, "min_p", 0, false, 1, false, &sp->min_p)) ||
        (rc = get_float(c, "repetition_penalty", 0, true, FLT_MAX, false,
                        &sp->repetition_penalty)) ||
        (rc = get_float(c, "presence_penalty", -2, false, 2, false, &sp->presence_penalty)) ||
        (rc = get_float(c, "frequency_penalty", -2, false, 2, false, &sp->frequency_penalty)))
        return rc;
    if ((rc = get_int32(c, "top_k", -1, INT32_MAX, &sp->top_k)) < 0)
        return rc;
    if (sp->top_k < 0)
        sp->top_k = 0;
    int64_t seed;
    if ((rc = oai_request_field_int(c, "seed", INT64_MIN, INT64_MAX, &seed)) < 0)
        return rc;
    if (rc == 1) {
        sp->has_seed = true;
        sp->seed = (uint64_t)seed;
    }
    bool ignore_eos = false;
    if ((rc = oai_request_field_bool(c, "ignore_eos", &ignore_eos)) < 0)
        return rc;
    sp->ignore_eos = ignore_eos;
    return 0;
}

/* parse_stop: "stop", a string or a list of at most max_stop non-empty strings. */
static int parse_stop(const struct oai_ctx *c, struct oai_request *r)
{
    const json_t *v = oai_request_field_get(c, "stop");
    if (!v)
        return 0;
    size_t n = json_is_string(v) ? 1 : json_array_size(v);
    if (!json_is_string(v) && !json_is_array(v))
        return oai_request_field_type_error(c, "stop", "stop", "a string or an array of strings",
                                            v);
    if (n > (size_t)c->lim->max_stop)
        return oai_error_set(c->err, 400, "stop",
                             "stop: at most %" PRId32 " stop sequences, got %zu", c->lim->max_stop,
                             n);
    struct str *out = arena_alloc(c->a, n * sizeof *out);
    if (!out)
        return oai_request_field_nomem(c);
    for (size_t i = 0; i < n; i++) {
        const json_t *s = json_is_string(v) ? v : json_array_get(v, i);
        if (!json_is_string(s))
            return oai_error_set(c->err, 400, "stop", "stop[%zu]: expected a string, got %s", i,
                                 oai_request_field_type_name(s));
        if (json_string_length(s) == 0)
            return oai_error_set(c->err, 400, "stop", "stop: must not contain an empty string");
        out[i] = (struct str){json_string_value(s), json_string_length(s)};
    }
    r->stop = out;
    r->n_stop = (uint32_t)n;
    return 0;
}

/* parse_bias_key: a logit_bias key, an optionally signed decimal integer. */
static int parse_bias_key(const struct oai_ctx *c, const char *key, int64_t *id)
{
    const char *p = key + (key[0] == '-' || key[0] == '+');
    size_t nd = strspn(p, "0123456789");
    if (nd == 0 || p[nd] != '\0' || nd > 18) {
        struct str k = str_from_cstr(key);
        return oai_error_set(c->err, 400, "logit_bias",
                             "logit_bias: key \"%.*s\" is not a token id", oai_request_clip(k),
                             key);
    }
    *id = strtoll(key, NULL, 10);
    int32_t vocab = c->lim->vocab_size;
    if (*id < 0 || *id > INT32_MAX || (vocab > 0 && *id >= vocab))
        return oai_error_set(c->err, 400, "logit_bias",
                             "logit_bias: token id %" PRId64 " is out of vocabulary "
                             "(vocabulary size %" PRId32 ")",
                             *id, vocab);
    return 0;
}

/* parse_logit_bias: {"token id": bias in [-100, 100]}; a repeated id keeps the last bias. */
static int parse_logit_bias(const struct oai_ctx *c, struct sampling_params *sp)
{
    const json_t *v;
    int rc = oai_request_field_object(c, "logit_bias", &v);
    if (rc <= 0)
        return rc;
    size_t n = json_object_size(v);
    if (n > SAMPLING_MAX_BIAS)
        return oai_error_set(c->err, 400, "logit_bias", "logit_bias: at most %d entries, got %zu",
                             SAMPLING_MAX_BIAS, n);
    int32_t *ids = arena_alloc(c->a, n * sizeof *ids);
    float *vals = arena_alloc(c->a, n * sizeof *vals);
    if (!ids || !vals)
        return oai_request_field_nomem(c);
    uint32_t k = 0;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)v, key, val)
    {
        int64_t id = 0;
        if ((rc = parse_bias_key(c, key, &id)))
            return rc;
        if (!json_is_number(val))
            return oai_error_set(c->err, 400, "logit_bias",
                                 "logit_bias[\"%s\"]: expected a number, got %s", key,
                                 oai_request_field_type_name(val));
        double b = json_number_value(val);
        if (!(b >= -MAX_BIAS_VALUE && b <= MAX_BIAS_VALUE))
            return oai_error_set(c->err, 400, "logit_bias",
                                 "logit_bias[\"%s\"]: must be in [-100, 100], got %g", key, b);
        uint32_t j = 0;
        while (j < k && ids[j] != (int32_t)id)
            j++;
        ids[j] = (int32_t)id;
        vals[j] = (float)b;
        k += j == k;
    }
    sp->logit_bias_ids = ids;
    sp->logit_bias_values = vals;
    sp->n_logit_bias = k;
    return 0;
}

/* parse_id_lists: stop_token_ids and allowed_token_ids. */
static int parse_id_lists(const struct oai_ctx *c, struct sampling_params *sp)
{
    const json_t *v = oai_request_field_get(c, "stop_token_ids");
    int rc;
    if (v &&
        (rc = oai_request_value_ids(c, "stop_token_ids", "stop_token_ids", v, SAMPLING_MAX_STOP_IDS,
                                    &sp->stop_token_ids, &sp->n_stop_token_ids)))
        return rc;
    v = oai_request_field_get(c, "allowed_token_ids");
    if (!v)
        return 0;
    if ((rc = oai_request_value_ids(c, "allowed_token_ids", "allowed_token_ids", v, MAX_ALLOWED_IDS,
                                    &sp->allowed_token_ids, &sp->n_allowed_token_ids)))
        return rc;
    if (sp->n_allowed_token_ids == 0)
        return oai_error_set(c->err, 400, "allowed_token_ids",
                             "allowed_token_ids: must not be empty");
    return 0;
}

/* parse_stream: stream and stream_options (only with stream). */
static int parse_stream(const struct oai_ctx *c, struct oai_request *r)
{
    int rc = oai_request_field_bool(c, "stream", &r->stream);
    const json_t *so;
    if (rc < 0 || (rc = oai_request_field_object(c, "stream_options", &so)) <= 0)
        return rc;
    if (!r->stream)
        return oai_error_set(c->err, 400, "stream_options",
                             "stream_options: only allowed when stream is true");
    static const char *const keys[] = {"include_usage", "continuous_usage_stats"};
    bool *dst[] = {&r->include_usage, &r->continuous_usage_stats};
    for (size_t i = 0; i < 2; i++) {
        const json_t *v = json_object_get(so, keys[i]);
        if (!v || json_is_null(v))
            continue;
        if (!json_is_boolean(v))
            return oai_error_set(c->err, 400, "stream_options",
                                 "stream_options.%s: expected a boolean, got %s", keys[i],
                                 oai_request_field_type_name(v));
        *dst[i] = json_is_true(v);
    }
    return 0;
}

/* parse_flags: the boolean and small integer extensions. */
static int parse_flags(const struct oai_ctx *c, struct oai_request *r)
{
    int rc;
    if ((rc = oai_request_field_bool(c, "include_stop_str_in_output",
                                     &r->include_stop_str_in_output)) < 0 ||
        (rc = oai_request_field_bool(c, "skip_special_tokens", &r->skip_special_tokens)) < 0 ||
        (rc = oai_request_field_bool(c, "spaces_between_special_tokens",
                                     &r->spaces_between_special_tokens)) < 0 ||
        (rc = oai_request_field_bool(c, "return_token_ids", &r->return_token_ids)) < 0 ||
        (rc = get_int32(c, "priority", INT32_MIN, INT32_MAX, &r->priority)) < 0 ||
        (rc = oai_request_field_str(c, "request_id", &r->request_id)) < 0)
        return rc;
    if (r->request_id.n > MAX_REQUEST_ID)
        return oai_error_set(c->err, 400, "request_id", "request_id: at most %d bytes, got %zu",
                             MAX_REQUEST_ID, r->request_id.n);
    if ((rc = get_int32(c, "truncate_prompt_tokens", -1, INT32_MAX, &r->truncate_prompt_tokens)) <
        0)
        return rc;
    if (rc == 1 && r->truncate_prompt_tokens == 0)
        return oai_error_set(c->err, 400, "truncate_prompt_tokens",
                             "truncate_prompt_tokens: must be -1 or >= 1, got 0");
    if (r->truncate_prompt_tokens > c->lim->max_model_len)
        return oai_error_set(c->err, 400, "truncate_prompt_tokens",
                             "truncate_prompt_tokens: must be <= max_model_len (%" PRId32
                             "), got %" PRId32,
                             c->lim->max_model_len, r->truncate_prompt_tokens);
    return 0;
}

/* parse_choices: n, best_of and use_beam_search, checked against the temperature. */
static int parse_choices(const struct oai_ctx *c, struct oai_request *r)
{
    int rc = get_int32(c, "n", 1, c->lim->max_n, &r->n);
    int64_t best_of = 1;
    if (rc < 0 || (rc = oai_request_field_int(c, "best_of", 1, INT32_MAX, &best_of)) < 0)
        return rc;
    if (best_of > 1)
        return oai_error_set(c->err, 400, "best_of",
                             "best_of: values above 1 are not supported, "
                             "got %" PRId64,
                             best_of);
    bool beam = false;
    if ((rc = oai_request_field_bool(c, "use_beam_search", &beam)) < 0)
        return rc;
    if (beam)
        return oai_error_set(c->err, 400, "use_beam_search",
                             "use_beam_search: beam search is not supported");
    if (r->n > 1 && r->sp.temperature == 0)
        return oai_error_set(c->err, 400, "n",
                             "n: must be 1 when temperature is 0 (greedy sampling), got %" PRId32,
                             r->n);
    return 0;
}

/* parse_shared: every field chat and completions share; max_tokens is already known. */
static int parse_shared(const struct oai_ctx *c, struct oai_request *r)
{
    struct sampling_params *sp = &r->sp;
    int rc;
    if ((rc = parse_stream(c, r)) || (rc = parse_sampling_values(c, sp)) ||
        (rc = parse_choices(c, r)) || (rc = parse_stop(c, r)) || (rc = parse_id_lists(c, sp)) ||
        (rc = parse_logit_bias(c, sp)) || (rc = parse_flags(c, r)))
        return rc;
    if ((rc = get_int32(c, "min_tokens", 0, INT32_MAX, &sp->min_tokens)) < 0)
        return rc;
    if (r->max_tokens_set && sp->min_tokens > sp->max_tokens)
        return oai_error_set(c->err, 400, "min_tokens",
                             "min_tokens: must be <= max_tokens (%" PRId32 "), got %" PRId32,
                             sp->max_tokens, sp->min_tokens);
    if ((rc = get_int32(c, "prompt_logprobs", 0, c->lim->max_logprobs, &sp->prompt_logprobs)) < 0)
        return rc;
    if (rc == 1 && r->stream)
        return oai_error_set(c->err, 400, "prompt_logprobs",
                             "prompt_logprobs: not available when stream is true");
    return oai_request_chat_unsupported(c);
}

/* parse_prompt_list: a non-empty array: of token ids, of strings, or of arrays of ids. */
static int parse_prompt_list(const struct oai_ctx *c, const json_t *v, struct oai_request *r)
{
    size_t n = json_array_size(v);
    if (n == 0)
        return oai_error_set(c->err, 400, "prompt", "prompt: must not be empty");
    const json_t *first = json_array_get(v, 0);
    bool ids = json_is_integer(first) || json_is_real(first);
    struct oai_prompt *p = arena_calloc(c->a, ids ? 1 : n, sizeof *p);
    if (!p)
        return oai_request_field_nomem(c);
    r->prompts = p;
    r->n_prompts = ids ? 1 : (uint32_t)n;
    if (ids)
        return oai_request_value_ids(c, "prompt", "prompt", v, MAX_PROMPT_IDS, &p->ids, &p->n_ids);
    bool strings = json_is_string(first);
    if (!strings && !json_is_array(first))
        return oai_request_field_type_error(c, "prompt", "prompt[0]",
                                            "a string, a token id or an array of token ids", first);
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, i);
        char what[32];
        snprintf(what, sizeof what, "prompt[%zu]", i);
        int rc = 0;
        if (strings && !json_is_string(e))
            return oai_request_field_type_error(c, "prompt", what, "a string", e);
        if (strings)
            p[i].text = (struct str){json_string_value(e), json_string_length(e)};
        else if ((rc = oai_request_value_ids(c, "prompt", what, e, MAX_PROMPT_IDS, &p[i].ids,
                                             &p[i].n_ids)))
            return rc;
        if (strings ? p[i].text.n == 0 : p[i].n_ids == 0)
            return oai_error_set(c->err, 400, "prompt", "%s: must not be empty", what);
    }
    return 0;
}

/* parse_prompt: "prompt" of /v1/completions. */
static int parse_prompt(const struct oai_ctx *c, struct oai_request *r)
{
    const json_t *v = oai_request_field_get(c, "prompt");
    if (!v)
        return oai_error_set(c->err, 400, "prompt", "prompt: field required");
    if (json_is_array(v))
        return parse_prompt_list(c, v, r);
    if (!json_is_string(v))
        return oai_request_field_type_error(c, "prompt", "prompt",
                                            "a string, an array of strings, an array of token "
                                            "ids or an array of arrays of token ids",
                                            v);
    if (json_string_length(v) == 0)
        return oai_error_set(c->err, 400, "prompt", "prompt: must not be empty");
    struct oai_prompt *p = arena_calloc(c->a, 1, sizeof *p);
    if (!p)
        return oai_request_field_nomem(c);
    p->text = (struct str){json_string_value(v), json_string_length(v)};
    r->prompts = p;
    r->n_prompts = 1;
    return 0;
}

static int parse_completion(const struct oai_ctx *c, struct oai_request *r)
{
    int rc;
    struct str suffix = {0};
    if ((rc = parse_prompt(c, r)) || (rc = oai_request_field_bool(c, "echo", &r->echo)) < 0 ||
        (rc = oai_request_field_str(c, "suffix", &suffix)) < 0)
        return rc;
    if (suffix.n)
        return oai_error_set(c->err, 400, "suffix", "suffix: not supported");
    r->add_special_tokens = true;
    r->sp.max_tokens = 16;
    if ((rc = oai_request_field_bool(c, "add_special_tokens", &r->add_special_tokens)) < 0 ||
        (rc = get_int32(c, "logprobs", 0, c->lim->max_logprobs, &r->sp.logprobs)) < 0 ||
        (rc = get_int32(c, "max_tokens", 1, INT32_MAX, &r->sp.max_tokens)) < 0)
        return rc;
    r->max_tokens_set = true;
    return parse_shared(c, r);
}

static int parse_detokenize(const struct oai_ctx *c, struct oai_request *r)
{
    const json_t *v = oai_request_field_get(c, "tokens");
    if (!v)
        return oai_error_set(c->err, 400, "tokens", "tokens: field required");
    return oai_request_value_ids(c, "tokens", "tokens", v, MAX_DETOKENIZE, &r->tokens,
                                 &r->n_tokens);
}

/* parse_chat: the chat fields (max_completion_tokens wins over max_tokens), then the shared. */
static int parse_chat(const struct oai_ctx *c, struct oai_request *r)
{
    int32_t mct = 0, mt = 0;
    int rc, has_mct = 0, has_mt = 0;
    if ((rc = oai_request_chat_parse(c, r)) ||
        (has_mct = rc = get_int32(c, "max_completion_tokens", 1, INT32_MAX, &mct)) < 0 ||
        (has_mt = rc = get_int32(c, "max_tokens", 1, INT32_MAX, &mt)) < 0)
        return rc;
    r->max_tokens_set = has_mct || has_mt;
    r->sp.max_tokens = has_mct ? mct : mt;
    return parse_shared(c, r);
}

/* request_init: the defaults of oai_request_parse. */
static void request_init(struct oai_request *r, enum oai_kind kind, const struct oai_limits *lim)
{
    memset(r, 0, sizeof *r);
    r->kind = kind;
    r->n = 1;
    r->sp = sampling_params_default();
    r->sp.max_tokens = 0;
    gen_defaults(lim->gen, &r->sp);
    r->skip_special_tokens = true;
    r->spaces_between_special_tokens = true;
    r->add_generation_prompt = true;
}

int oai_request_parse(enum oai_kind kind, const char *body, size_t n, const struct oai_limits *lim,
                      struct arena *a, struct oai_request *out, struct oai_error *err)
{
    struct oai_error scratch;
    struct oai_ctx c = {.lim = lim, .a = a, .err = err ? err : &scratch};
    request_init(out, kind, lim);
    json_t *root = NULL;
    int rc = load_root(&c, body, n, &root);
    if (rc)
        return rc;
    c.obj = root;
    out->root = root;
    if ((rc = parse_model(&c, out)))
        return rc;
    switch (kind) {
    case OAI_CHAT: return parse_chat(&c, out);
    case OAI_COMPLETION: return parse_completion(&c, out);
    case OAI_TOKENIZE: return oai_request_chat_tokenize(&c, out);
    case OAI_DETOKENIZE: return parse_detokenize(&c, out);
    }
    return oai_error_set(c.err, 500, NULL, "unknown request kind %d", (int)kind);
}

int oai_request_fit_length(struct oai_request *r, const struct oai_limits *lim, uint32_t n_prompt,
                           struct oai_error *err)
{
    int64_t ctx = lim->max_model_len;
    if (r->max_tokens_set) {
        int64_t total = (int64_t)n_prompt + r->sp.max_tokens;
        if (total <= ctx)
            return 0;
        return oai_error_set(err, 400, "max_tokens",
                             "This model's maximum context length is %" PRId64 " tokens. However, "
                             "you requested %" PRId32 " output tokens and your prompt contains "
                             "%" PRIu32 " input tokens, for a total of %" PRId64 " tokens. Please "
                             "reduce the length of the input prompt or the number of requested "
                             "output tokens.",
                             ctx, r->sp.max_tokens, n_prompt, total);
    }
    if ((int64_t)n_prompt >= ctx)
        return oai_error_set(err, 400, "input_tokens",
                             "This model's maximum context length is %" PRId64 " tokens. However, "
                             "your prompt contains %" PRIu32 " input tokens, which leaves no room "
                             "for output tokens. Please reduce the length of the input prompt.",
                             ctx, n_prompt);
    int64_t max = ctx - (int64_t)n_prompt;
    if (lim->gen && lim->gen->has_max_new_tokens && lim->gen->max_new_tokens > 0 &&
        lim->gen->max_new_tokens < max)
        max = lim->gen->max_new_tokens;
    r->sp.max_tokens = (int32_t)max;
    r->max_tokens_set = true;
    if (r->sp.min_tokens > r->sp.max_tokens)
        return oai_error_set(err, 400, "min_tokens",
                             "min_tokens: must be <= max_tokens (%" PRId32 "), got %" PRId32,
                             r->sp.max_tokens, r->sp.min_tokens);
    return 0;
}
