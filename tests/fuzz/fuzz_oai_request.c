/*
 * libFuzzer driver: OpenAI request bodies (oai_request_parse). The first input byte picks
 * the endpoint and the limits (vocabulary known or not, served names or not, a
 * generation_config or not, a small arena, a small depth); the rest is the body. Any bytes
 * must parse or be refused with an OpenAI error (a known status, a one-line message, a body
 * that is valid JSON of the right shape), never crash, leak or read out of bounds; a body
 * that parses must satisfy every range oai_request.h and sampling_params.h promise (the
 * engine trusts them). The fuzz build links only common/ and templates/, so the frontend
 * sources are included here.
 */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/oai_error.c"
#include "frontend/oai_request.c"
#include "frontend/oai_request_chat.c"
#include "frontend/oai_request_field.c"

static const char *const fuzz_served[] = {"m", "other"};

static void check_error(const struct oai_error *e, int rc)
{
    if (rc != ERR_INVAL && rc != ERR_NOTFOUND && rc != ERR_LIMIT && rc != ERR_NOMEM)
        abort();
    if (oai_error_code(e->status) != rc || !e->message[0] || strchr(e->message, '\n'))
        abort();
    char out[8192];
    size_t n = oai_error_json(e, out, sizeof out);
    json_t *root = json_loadb(out, n, 0, NULL);
    json_t *err = json_object_get(root, "error");
    if (!root || json_object_size(root) != 1 || json_object_size(err) != 4 ||
        !json_is_string(json_object_get(err, "message")) ||
        !json_is_string(json_object_get(err, "type")) ||
        json_integer_value(json_object_get(err, "code")) != e->status)
        abort();
    json_decref(root);
}

static void check_ids(const int32_t *ids, uint32_t n, int32_t vocab)
{
    for (uint32_t i = 0; i < n; i++)
        if (ids[i] < 0 || (vocab > 0 && ids[i] >= vocab))
            abort();
}

static void check_sampling(const struct oai_request *r, const struct oai_limits *l)
{
    const struct sampling_params *sp = &r->sp;
    if (!(sp->temperature >= 0) || !(sp->top_p > 0 && sp->top_p <= 1) || sp->top_k < 0 ||
        !(sp->min_p >= 0 && sp->min_p <= 1) || !(sp->repetition_penalty > 0) ||
        !(sp->presence_penalty >= -2 && sp->presence_penalty <= 2) ||
        !(sp->frequency_penalty >= -2 && sp->frequency_penalty <= 2) || sp->min_tokens < 0 ||
        (r->max_tokens_set && (sp->max_tokens < 1 || sp->min_tokens > sp->max_tokens)) ||
        sp->logprobs < -1 || sp->logprobs > l->max_logprobs || sp->prompt_logprobs < -1 ||
        sp->prompt_logprobs > l->max_logprobs || (!sp->has_seed && sp->seed))
        abort();
    if (r->n < 1 || r->n > l->max_n || (r->n > 1 && sp->temperature == 0))
        abort();
    if (sp->n_stop_token_ids > SAMPLING_MAX_STOP_IDS || sp->n_logit_bias > SAMPLING_MAX_BIAS ||
        (sp->allowed_token_ids && sp->n_allowed_token_ids == 0))
        abort();
    check_ids(sp->stop_token_ids, sp->n_stop_token_ids, l->vocab_size);
    check_ids(sp->logit_bias_ids, sp->n_logit_bias, l->vocab_size);
    check_ids(sp->allowed_token_ids, sp->n_allowed_token_ids, l->vocab_size);
    for (uint32_t i = 0; i < sp->n_logit_bias; i++)
        if (!(sp->logit_bias_values[i] >= -100 && sp->logit_bias_values[i] <= 100))
            abort();
    if (r->n_stop > (uint32_t)l->max_stop)
        abort();
    for (uint32_t i = 0; i < r->n_stop; i++)
        if (r->stop[i].n == 0 || strlen(r->stop[i].p) != r->stop[i].n)
            abort();
    if ((r->include_usage || r->continuous_usage_stats) && !r->stream)
        abort();
}

static void check_request(const struct oai_request *r, const struct oai_limits *l)
{
    if (l->n_served && r->model_index >= l->n_served)
        abort();
    if (r->kind == OAI_CHAT || r->kind == OAI_COMPLETION)
        check_sampling(r, l);
    if (r->kind == OAI_CHAT && (!json_is_array(r->messages) || !json_array_size(r->messages) ||
                                (r->add_generation_prompt && r->continue_final_message)))
        abort();
    if (r->kind == OAI_COMPLETION && r->n_prompts < 1)
        abort();
    for (uint32_t i = 0; i < r->n_prompts; i++) {
        const struct oai_prompt *p = &r->prompts[i];
        check_ids(p->ids, p->n_ids, l->vocab_size);
        if (r->kind == OAI_COMPLETION && (p->ids ? p->n_ids == 0 : p->text.n == 0))
            abort();
    }
    check_ids(r->tokens, r->n_tokens, l->vocab_size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t sel = data[0];
    struct generation_config gen = {0};
    gen.has_temperature = gen.has_top_k = gen.has_max_new_tokens = true;
    gen.temperature = 0;
    gen.top_k = 20;
    gen.max_new_tokens = 64;
    struct oai_limits l = oai_limits_default();
    l.vocab_size = sel & 4 ? 0 : 1000;
    l.served_names = fuzz_served;
    l.n_served = sel & 8 ? 0 : 2;
    l.gen = sel & 16 ? &gen : NULL;
    l.max_depth = sel & 32 ? 8 : 64;
    l.max_nodes = 100000;
    l.trust_request_chat_template = sel & 128;
    struct arena a;
    arena_init(&a, sel & 64 ? 4096 : 64u << 20, sel & 64 ? 256 : 0);
    struct oai_request r;
    struct oai_error e;
    memset(&e, 0, sizeof e);
    int rc = oai_request_parse((enum oai_kind)(sel & 3), (const char *)data + 1, size - 1, &l, &a,
                               &r, &e);
    if (rc) {
        check_error(&e, rc);
    } else {
        check_request(&r, &l);
        rc = oai_request_fit_length(&r, &l, (uint32_t)(size * 7 % 3000), &e);
        if (rc)
            check_error(&e, rc);
        else if (r.kind <= OAI_COMPLETION && (r.sp.max_tokens < 1 || !r.max_tokens_set))
            abort();
    }
    arena_deinit(&a);
    return 0;
}
