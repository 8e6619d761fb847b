/*
 * oai_request_driver: runs oai_request_parse on request bodies and prints what it made of
 * them, for tests/frontend/test_oai_request_sdk.py (the openai SDK builds the bodies).
 *
 *   oai_request_driver < cases.json > results.json
 *
 * stdin: a JSON array of cases {"kind": "chat"|"completion"|"tokenize"|"detokenize",
 * "body": the raw body as a string, "limits": {"vocab_size", "max_model_len", "max_logprobs",
 * "max_n", "max_stop", "max_depth", "max_nodes", "served": [names], "trust": bool,
 * "gen": {"temperature", "top_p", "top_k", "min_p", "repetition_penalty",
 * "max_new_tokens"}} (all optional), "n_prompt": tokens, to run oai_request_fit_length}.
 * stdout: a JSON array, one result per case: {"ok": {the struct's fields}} or
 * {"status": N, "error": the error body as JSON}. Exit 0, or 2 when stdin is not such an
 * array.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/arena.h"
#include "frontend/oai_error.h"
#include "frontend/oai_request.h"

#define MAX_SERVED 16

static json_t *str_json(struct str s)
{
    return s.p ? json_stringn(s.p, s.n) : json_null();
}

static json_t *ids_json(const int32_t *ids, uint32_t n)
{
    json_t *a = json_array();
    for (uint32_t i = 0; i < n; i++)
        json_array_append_new(a, json_integer(ids[i]));
    return a;
}

static void dump_sampling(json_t *o, const struct oai_request *r)
{
    const struct sampling_params *sp = &r->sp;
    json_object_set_new(o, "max_tokens",
                        r->max_tokens_set ? json_integer(sp->max_tokens) : json_null());
    json_object_set_new(o, "temperature", json_real(sp->temperature));
    json_object_set_new(o, "top_p", json_real(sp->top_p));
    json_object_set_new(o, "top_k", json_integer(sp->top_k));
    json_object_set_new(o, "min_p", json_real(sp->min_p));
    json_object_set_new(o, "repetition_penalty", json_real(sp->repetition_penalty));
    json_object_set_new(o, "presence_penalty", json_real(sp->presence_penalty));
    json_object_set_new(o, "frequency_penalty", json_real(sp->frequency_penalty));
    json_object_set_new(o, "seed", sp->has_seed ? json_integer((json_int_t)sp->seed) : json_null());
    json_object_set_new(o, "min_tokens", json_integer(sp->min_tokens));
    json_object_set_new(o, "ignore_eos", json_boolean(sp->ignore_eos));
    json_object_set_new(o, "logprobs", json_integer(sp->logprobs));
    json_object_set_new(o, "prompt_logprobs", json_integer(sp->prompt_logprobs));
    json_object_set_new(o, "stop_token_ids", ids_json(sp->stop_token_ids, sp->n_stop_token_ids));
    json_t *bias = json_object();
    for (uint32_t i = 0; i < sp->n_logit_bias; i++) {
        char k[16];
        snprintf(k, sizeof k, "%d", (int)sp->logit_bias_ids[i]);
        json_object_set_new(bias, k, json_real(sp->logit_bias_values[i]));
    }
    json_object_set_new(o, "logit_bias", bias);
    json_object_set_new(o, "allowed_token_ids",
                        sp->allowed_token_ids
                            ? ids_json(sp->allowed_token_ids, sp->n_allowed_token_ids)
                            : json_null());
}

static void dump_flags(json_t *o, const struct oai_request *r)
{
    static const char *const kinds[] = {"chat", "completion", "tokenize", "detokenize"};
    json_object_set_new(o, "kind", json_string(kinds[r->kind]));
    json_object_set_new(o, "model", str_json(r->model));
    json_object_set_new(o, "model_index", json_integer((json_int_t)r->model_index));
    json_object_set_new(o, "stream", json_boolean(r->stream));
    json_object_set_new(o, "include_usage", json_boolean(r->include_usage));
    json_object_set_new(o, "continuous_usage_stats", json_boolean(r->continuous_usage_stats));
    json_object_set_new(o, "n", json_integer(r->n));
    json_object_set_new(o, "echo", json_boolean(r->echo));
    json_t *stop = json_array();
    for (uint32_t i = 0; i < r->n_stop; i++)
        json_array_append_new(stop, str_json(r->stop[i]));
    json_object_set_new(o, "stop", stop);
    json_object_set_new(o, "include_stop_str_in_output",
                        json_boolean(r->include_stop_str_in_output));
    json_object_set_new(o, "skip_special_tokens", json_boolean(r->skip_special_tokens));
    json_object_set_new(o, "spaces_between_special_tokens",
                        json_boolean(r->spaces_between_special_tokens));
    json_object_set_new(o, "priority", json_integer(r->priority));
    json_object_set_new(o, "request_id", str_json(r->request_id));
    json_object_set_new(o, "return_token_ids", json_boolean(r->return_token_ids));
    json_object_set_new(o, "truncate_prompt_tokens", json_integer(r->truncate_prompt_tokens));
    json_object_set_new(o, "return_token_strs", json_boolean(r->return_token_strs));
}

static void dump_inputs(json_t *o, const struct oai_request *r)
{
    json_t *prompts = json_array();
    for (uint32_t i = 0; i < r->n_prompts; i++) {
        const struct oai_prompt *p = &r->prompts[i];
        json_t *e = json_object();
        if (p->ids)
            json_object_set_new(e, "ids", ids_json(p->ids, p->n_ids));
        else
            json_object_set_new(e, "text", str_json(p->text));
        json_array_append_new(prompts, e);
    }
    json_object_set_new(o, "prompts", prompts);
    json_object_set(o, "messages", r->messages ? (json_t *)r->messages : json_null());
    json_object_set(o, "tools", r->tools ? (json_t *)r->tools : json_null());
    json_object_set_new(o, "add_generation_prompt", json_boolean(r->add_generation_prompt));
    json_object_set_new(o, "continue_final_message", json_boolean(r->continue_final_message));
    json_object_set_new(o, "add_special_tokens", json_boolean(r->add_special_tokens));
    json_object_set_new(o, "chat_template", str_json(r->chat_template));
    json_object_set(o, "chat_template_kwargs",
                    r->chat_template_kwargs ? (json_t *)r->chat_template_kwargs : json_null());
    json_object_set_new(o, "tokens", r->tokens ? ids_json(r->tokens, r->n_tokens) : json_null());
}

static int limit_int(const json_t *l, const char *k, int def)
{
    const json_t *v = json_object_get(l, k);
    return json_is_integer(v) ? (int)json_integer_value(v) : def;
}

/* read_limits: the case's limits into *lim (names and gen in caller storage). */
static void read_limits(const json_t *l, struct oai_limits *lim, const char **names,
                        struct generation_config *gen)
{
    *lim = oai_limits_default();
    lim->vocab_size = limit_int(l, "vocab_size", lim->vocab_size);
    lim->max_model_len = limit_int(l, "max_model_len", lim->max_model_len);
    lim->max_logprobs = limit_int(l, "max_logprobs", lim->max_logprobs);
    lim->max_n = limit_int(l, "max_n", lim->max_n);
    lim->max_stop = limit_int(l, "max_stop", lim->max_stop);
    lim->max_depth = limit_int(l, "max_depth", lim->max_depth);
    lim->max_nodes = (size_t)limit_int(l, "max_nodes", (int)lim->max_nodes);
    lim->trust_request_chat_template = json_is_true(json_object_get(l, "trust"));
    const json_t *served = json_object_get(l, "served");
    for (size_t i = 0; i < json_array_size(served) && i < MAX_SERVED; i++)
        names[lim->n_served++] = json_string_value(json_array_get(served, i));
    lim->served_names = names;
    const json_t *g = json_object_get(l, "gen");
    if (!json_is_object(g))
        return;
    memset(gen, 0, sizeof *gen);
    const json_t *v;
    if ((gen->has_temperature = (v = json_object_get(g, "temperature")) != NULL))
        gen->temperature = json_number_value(v);
    if ((gen->has_top_p = (v = json_object_get(g, "top_p")) != NULL))
        gen->top_p = json_number_value(v);
    if ((gen->has_top_k = (v = json_object_get(g, "top_k")) != NULL))
        gen->top_k = (int)json_integer_value(v);
    if ((gen->has_min_p = (v = json_object_get(g, "min_p")) != NULL))
        gen->min_p = json_number_value(v);
    if ((gen->has_repetition_penalty = (v = json_object_get(g, "repetition_penalty")) != NULL))
        gen->repetition_penalty = json_number_value(v);
    if ((gen->has_max_new_tokens = (v = json_object_get(g, "max_new_tokens")) != NULL))
        gen->max_new_tokens = (int)json_integer_value(v);
    lim->gen = gen;
}

static enum oai_kind kind_of(const char *s)
{
    if (s && strcmp(s, "completion") == 0)
        return OAI_COMPLETION;
    if (s && strcmp(s, "tokenize") == 0)
        return OAI_TOKENIZE;
    if (s && strcmp(s, "detokenize") == 0)
        return OAI_DETOKENIZE;
    return OAI_CHAT;
}

static json_t *run_case(const json_t *cs)
{
    const char *names[MAX_SERVED];
    struct generation_config gen;
    struct oai_limits lim;
    read_limits(json_object_get(cs, "limits"), &lim, names, &gen);
    const json_t *body = json_object_get(cs, "body");
    struct arena a;
    arena_init(&a, 64u << 20, 0);
    struct oai_request r;
    struct oai_error err;
    int rc =
        oai_request_parse(kind_of(json_string_value(json_object_get(cs, "kind"))),
                          json_string_value(body), json_string_length(body), &lim, &a, &r, &err);
    const json_t *np = json_object_get(cs, "n_prompt");
    if (!rc && json_is_integer(np))
        rc = oai_request_fit_length(&r, &lim, (uint32_t)json_integer_value(np), &err);
    json_t *out = json_object();
    if (rc) {
        char text[8192];
        size_t n = oai_error_json(&err, text, sizeof text);
        json_object_set_new(out, "status", json_integer(err.status));
        json_object_set_new(out, "error", json_loadb(text, n, 0, NULL));
    } else {
        json_t *o = json_object();
        dump_flags(o, &r);
        dump_sampling(o, &r);
        dump_inputs(o, &r);
        json_object_set_new(out, "ok", o);
    }
    arena_deinit(&a);
    return out;
}

int main(void)
{
    json_error_t je;
    json_t *cases = json_loadf(stdin, 0, &je);
    if (!json_is_array(cases)) {
        fprintf(stderr, "oai_request_driver: stdin: %s\n", cases ? "not an array" : je.text);
        return 2;
    }
    json_t *results = json_array();
    for (size_t i = 0; i < json_array_size(cases); i++)
        json_array_append_new(results, run_case(json_array_get(cases, i)));
    json_dumpf(results, stdout, JSON_COMPACT);
    putchar('\n');
    json_decref(results);
    json_decref(cases);
    return 0;
}
