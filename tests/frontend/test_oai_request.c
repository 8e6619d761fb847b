/*
 * test_oai_request: request bodies -> struct oai_request, and the OpenAI error object.
 *
 * Table-driven: every request-parsing row of ../shared/API.md's error table (malformed JSON,
 * wrong types, out-of-range values, unknown model, too deep / too many values, suffix, the
 * features of a later release, stream_options without stream, n > 1 at temperature 0, ...),
 * each field's type and range errors with the param the error names, the defaults
 * (including generation_config's), the limits (depth, node count, arena bytes), the
 * context-length check and the exact error body. The openai SDK's own request building is
 * checked against this parser in test_oai_request_sdk.py.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/arena.h"
#include "common/buf.h"
#include "common/err.h"
#include "frontend/oai_error.h"
#include "frontend/oai_request.h"
#include "tests/test.h"

#define MSG "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"

static const char *const served[] = {"llama", "llama-alias"};

static struct oai_limits limits(void)
{
    struct oai_limits l = oai_limits_default();
    l.vocab_size = 1000;
    l.max_model_len = 4096;
    l.served_names = served;
    l.n_served = 2;
    return l;
}

struct fixture {
    struct arena a;
    struct oai_request r;
    struct oai_error e;
    int rc;
};

static int run(struct fixture *f, enum oai_kind kind, const char *body, const struct oai_limits *l)
{
    arena_init(&f->a, 64u << 20, 0);
    memset(&f->e, 0, sizeof f->e);
    f->rc = oai_request_parse(kind, body, strlen(body), l, &f->a, &f->r, &f->e);
    return f->rc;
}

static void done(struct fixture *f)
{
    arena_deinit(&f->a);
}

/* ---- rejected bodies: status, param, a piece of the message ---- */

struct bad {
    enum oai_kind kind;
    const char *body;
    int status;
    const char *param; /* NULL: null */
    const char *msg;   /* substring of the message */
};

static const struct bad bad_rows[] = {
    /* malformed bodies */
    {OAI_CHAT, "", 400, NULL, "Invalid JSON body"},
    {OAI_CHAT, "{", 400, NULL, "Invalid JSON body"},
    {OAI_CHAT, "{\"a\":1} x", 400, NULL, "Invalid JSON body"},
    {OAI_CHAT, "{\"a\":'x'}", 400, NULL, "Invalid JSON body"},
    {OAI_CHAT, "{\"a\":\"\xff\"}", 400, NULL, "Invalid JSON body"},
    {OAI_CHAT, "{\"a\":\"\xc0\xaf\"}", 400, NULL, "Invalid JSON body"},
    /* JSON allows \u0000 in strings: the body parses and the missing field is the error */
    {OAI_CHAT, "{\"a\":\"\\u0000\"}", 400, "messages", "messages: field required"},
    {OAI_CHAT, "{\"a\":NaN}", 400, NULL, "Invalid JSON body"},
    {OAI_CHAT, "{\"a\":1e999}", 400, NULL, "Invalid JSON body"},
    {OAI_CHAT, "{\"a\":99999999999999999999}", 400, NULL, "Invalid JSON body"},
    {OAI_CHAT, "[]", 400, NULL, "expected a JSON object, got an array"},
    {OAI_CHAT, "\"x\"", 400, NULL, "expected a JSON object, got a string"},
    {OAI_CHAT, "null", 400, NULL, "expected a JSON object"},
    /* model */
    {OAI_CHAT, "{\"model\":\"gpt-4\"," MSG "}", 404, "model",
     "The model `gpt-4` does not exist. Served models: llama, llama-alias"},
    {OAI_COMPLETION, "{\"model\":\"x\",\"prompt\":\"a\"}", 404, "model", "llama, llama-alias"},
    {OAI_TOKENIZE, "{\"model\":\"x\",\"prompt\":\"a\"}", 404, "model", "does not exist"},
    {OAI_DETOKENIZE, "{\"model\":\"x\",\"tokens\":[1]}", 404, "model", "does not exist"},
    {OAI_CHAT, "{\"model\":7," MSG "}", 400, "model", "model: expected a string, got an integer"},
    /* messages */
    {OAI_CHAT, "{}", 400, "messages", "messages: field required"},
    {OAI_CHAT, "{\"messages\":null}", 400, "messages", "field required"},
    {OAI_CHAT, "{\"messages\":[]}", 400, "messages", "must not be empty"},
    {OAI_CHAT, "{\"messages\":{}}", 400, "messages", "messages: expected an array, got an object"},
    {OAI_CHAT, "{\"messages\":[\"hi\"]}", 400, "messages", "messages[0]: expected an object"},
    {OAI_CHAT, "{\"messages\":[{\"content\":\"hi\"}]}", 400, "messages",
     "messages[0].role: expected a string, got nothing"},
    {OAI_CHAT, "{\"messages\":[{\"role\":1,\"content\":\"hi\"}]}", 400, "messages",
     "messages[0].role: expected a string, got an integer"},
    {OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":5}]}", 400, "messages",
     "messages[0].content: expected a string, an array of content parts or null"},
    {OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":{}}]}", 400, "messages",
     "messages[0].content"},
    {OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":[\"x\"]}]}", 400, "messages",
     "messages[0].content[0]: expected an object"},
    {OAI_CHAT,
     "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":"
     "[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"image_url\",\"image_url\":{\"url\":\"u\"}}]}"
     "]}",
     400, "messages", "messages[1].content[1]: content parts of type \"image_url\" are not"},
    {OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"a\"}]}]}", 400,
     "messages", "messages[0].content[0].type: expected a string"},
    {OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}]}", 400,
     "messages", "messages[0].content[0].text: expected a string, got nothing"},
    {OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":3}]}]}",
     400, "messages", "content[0].text: expected a string, got an integer"},
    {OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\",\"name\":3}]}", 400, "messages",
     "messages[0].name: expected a string"},
    {OAI_CHAT, "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":{}}]}", 400, "messages",
     "messages[0].tool_calls: expected an array"},
    {OAI_CHAT, "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{}}]}]}", 400,
     "messages", "messages[0].tool_calls[0]"},
    {OAI_CHAT,
     "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{\"name\":\"f\","
     "\"arguments\":3}}]}]}",
     400, "messages", "function.arguments: expected a string or an object"},
    /* sampling: types */
    {OAI_CHAT, "{" MSG ",\"temperature\":\"0.5\"}", 400, "temperature",
     "temperature: expected a number, got a string"},
    {OAI_CHAT, "{" MSG ",\"top_p\":true}", 400, "top_p", "expected a number, got a boolean"},
    {OAI_CHAT, "{" MSG ",\"top_k\":1.5}", 400, "top_k", "top_k: expected an integer, got 1.5"},
    {OAI_CHAT, "{" MSG ",\"top_k\":\"5\"}", 400, "top_k", "expected an integer, got a string"},
    {OAI_CHAT, "{" MSG ",\"min_p\":[]}", 400, "min_p", "expected a number, got an array"},
    {OAI_CHAT, "{" MSG ",\"repetition_penalty\":{}}", 400, "repetition_penalty", "an object"},
    {OAI_CHAT, "{" MSG ",\"presence_penalty\":\"1\"}", 400, "presence_penalty", "a string"},
    {OAI_CHAT, "{" MSG ",\"frequency_penalty\":false}", 400, "frequency_penalty", "a boolean"},
    {OAI_CHAT, "{" MSG ",\"seed\":1.5}", 400, "seed", "expected an integer"},
    {OAI_CHAT, "{" MSG ",\"seed\":\"7\"}", 400, "seed", "expected an integer"},
    {OAI_CHAT, "{" MSG ",\"n\":\"2\"}", 400, "n", "n: expected an integer, got a string"},
    {OAI_CHAT, "{" MSG ",\"stream\":1}", 400, "stream", "stream: expected a boolean, got an int"},
    {OAI_CHAT, "{" MSG ",\"stream\":\"true\"}", 400, "stream", "expected a boolean"},
    {OAI_CHAT, "{" MSG ",\"ignore_eos\":0}", 400, "ignore_eos", "expected a boolean"},
    {OAI_CHAT, "{" MSG ",\"max_tokens\":\"16\"}", 400, "max_tokens", "expected an integer"},
    {OAI_CHAT, "{" MSG ",\"max_completion_tokens\":2.5}", 400, "max_completion_tokens",
     "expected an integer"},
    {OAI_CHAT, "{" MSG ",\"min_tokens\":true}", 400, "min_tokens", "expected an integer"},
    {OAI_CHAT, "{" MSG ",\"stop\":5}", 400, "stop", "stop: expected a string or an array of"},
    {OAI_CHAT, "{" MSG ",\"stop\":[\"a\",5]}", 400, "stop", "stop[1]: expected a string"},
    {OAI_CHAT, "{" MSG ",\"stop_token_ids\":5}", 400, "stop_token_ids", "expected an array"},
    {OAI_CHAT, "{" MSG ",\"stop_token_ids\":[\"5\"]}", 400, "stop_token_ids",
     "expected token ids (integers), got a string at index 0"},
    {OAI_CHAT, "{" MSG ",\"allowed_token_ids\":{}}", 400, "allowed_token_ids", "an array"},
    {OAI_CHAT, "{" MSG ",\"logit_bias\":[]}", 400, "logit_bias",
     "logit_bias: expected an object, got an array"},
    {OAI_CHAT, "{" MSG ",\"logit_bias\":{\"5\":\"x\"}}", 400, "logit_bias",
     "logit_bias[\"5\"]: expected a number, got a string"},
    {OAI_CHAT, "{" MSG ",\"logprobs\":1}", 400, "logprobs", "logprobs: expected a boolean"},
    {OAI_CHAT, "{" MSG ",\"top_logprobs\":\"2\",\"logprobs\":true}", 400, "top_logprobs",
     "expected an integer"},
    {OAI_CHAT, "{" MSG ",\"prompt_logprobs\":true}", 400, "prompt_logprobs", "expected an integer"},
    {OAI_CHAT, "{" MSG ",\"echo\":\"yes\"}", 400, "echo", "expected a boolean"},
    {OAI_CHAT, "{" MSG ",\"stream_options\":true,\"stream\":true}", 400, "stream_options",
     "stream_options: expected an object"},
    {OAI_CHAT, "{" MSG ",\"stream\":true,\"stream_options\":{\"include_usage\":1}}", 400,
     "stream_options", "stream_options.include_usage: expected a boolean"},
    {OAI_CHAT, "{" MSG ",\"stream\":true,\"stream_options\":{\"continuous_usage_stats\":\"x\"}}",
     400, "stream_options", "continuous_usage_stats: expected a boolean"},
    {OAI_CHAT, "{" MSG ",\"skip_special_tokens\":null,\"include_stop_str_in_output\":1}", 400,
     "include_stop_str_in_output", "expected a boolean"},
    {OAI_CHAT, "{" MSG ",\"skip_special_tokens\":\"no\"}", 400, "skip_special_tokens", "boolean"},
    {OAI_CHAT, "{" MSG ",\"spaces_between_special_tokens\":2}", 400,
     "spaces_between_special_tokens", "boolean"},
    {OAI_CHAT, "{" MSG ",\"return_token_ids\":[]}", 400, "return_token_ids", "boolean"},
    {OAI_CHAT, "{" MSG ",\"priority\":\"high\"}", 400, "priority", "expected an integer"},
    {OAI_CHAT, "{" MSG ",\"request_id\":5}", 400, "request_id", "expected a string"},
    {OAI_CHAT, "{" MSG ",\"truncate_prompt_tokens\":\"5\"}", 400, "truncate_prompt_tokens",
     "expected an integer"},
    {OAI_CHAT, "{" MSG ",\"add_generation_prompt\":1}", 400, "add_generation_prompt", "boolean"},
    {OAI_CHAT, "{" MSG ",\"continue_final_message\":\"y\"}", 400, "continue_final_message",
     "boolean"},
    {OAI_CHAT, "{" MSG ",\"add_special_tokens\":0}", 400, "add_special_tokens", "boolean"},
    {OAI_CHAT, "{" MSG ",\"chat_template\":5}", 400, "chat_template", "expected a string"},
    {OAI_CHAT, "{" MSG ",\"chat_template_kwargs\":[]}", 400, "chat_template_kwargs",
     "chat_template_kwargs: expected an object, got an array"},
    {OAI_CHAT, "{" MSG ",\"parallel_tool_calls\":\"yes\"}", 400, "parallel_tool_calls", "boolean"},
    /* sampling: ranges */
    {OAI_CHAT, "{" MSG ",\"temperature\":-1}", 400, "temperature",
     "temperature: must be >= 0, got -1"},
    {OAI_CHAT, "{" MSG ",\"temperature\":1e39}", 400, "temperature", "must be <="},
    {OAI_CHAT, "{" MSG ",\"top_p\":0}", 400, "top_p", "top_p: must be > 0, got 0"},
    {OAI_CHAT, "{" MSG ",\"top_p\":1.01}", 400, "top_p", "top_p: must be <= 1, got 1.01"},
    {OAI_CHAT, "{" MSG ",\"top_p\":-0.5}", 400, "top_p", "must be > 0"},
    {OAI_CHAT, "{" MSG ",\"top_k\":-2}", 400, "top_k", "top_k: must be >= -1, got -2"},
    {OAI_CHAT, "{" MSG ",\"top_k\":4294967296}", 400, "top_k", "top_k: must be <= 2147483647"},
    {OAI_CHAT, "{" MSG ",\"min_p\":-0.1}", 400, "min_p", "min_p: must be >= 0"},
    {OAI_CHAT, "{" MSG ",\"min_p\":1.5}", 400, "min_p", "min_p: must be <= 1, got 1.5"},
    {OAI_CHAT, "{" MSG ",\"repetition_penalty\":0}", 400, "repetition_penalty",
     "repetition_penalty: must be > 0, got 0"},
    {OAI_CHAT, "{" MSG ",\"repetition_penalty\":-1}", 400, "repetition_penalty", "must be > 0"},
    {OAI_CHAT, "{" MSG ",\"presence_penalty\":-2.5}", 400, "presence_penalty",
     "presence_penalty: must be >= -2, got -2.5"},
    {OAI_CHAT, "{" MSG ",\"presence_penalty\":2.01}", 400, "presence_penalty", "must be <= 2"},
    {OAI_CHAT, "{" MSG ",\"frequency_penalty\":3}", 400, "frequency_penalty",
     "frequency_penalty: must be <= 2, got 3"},
    {OAI_CHAT, "{" MSG ",\"frequency_penalty\":-3}", 400, "frequency_penalty", "must be >= -2"},
    {OAI_CHAT, "{" MSG ",\"seed\":1e19}", 400, "seed", "seed: must be in"},
    {OAI_CHAT, "{" MSG ",\"n\":0}", 400, "n", "n: must be >= 1, got 0"},
    {OAI_CHAT, "{" MSG ",\"n\":-1}", 400, "n", "n: must be >= 1, got -1"},
    {OAI_CHAT, "{" MSG ",\"n\":129}", 400, "n", "n: must be <= 128, got 129"},
    {OAI_CHAT, "{" MSG ",\"n\":2,\"temperature\":0}", 400, "n",
     "n: must be 1 when temperature is 0"},
    {OAI_COMPLETION, "{\"prompt\":\"a\",\"n\":3,\"temperature\":0.0}", 400, "n",
     "must be 1 when temperature is 0"},
    {OAI_CHAT, "{" MSG ",\"best_of\":2}", 400, "best_of", "best_of: values above 1 are not"},
    {OAI_CHAT, "{" MSG ",\"use_beam_search\":true}", 400, "use_beam_search", "not supported"},
    {OAI_CHAT, "{" MSG ",\"max_tokens\":0}", 400, "max_tokens", "max_tokens: must be >= 1, got 0"},
    {OAI_CHAT, "{" MSG ",\"max_tokens\":-5}", 400, "max_tokens", "must be >= 1"},
    {OAI_CHAT, "{" MSG ",\"max_completion_tokens\":0}", 400, "max_completion_tokens",
     "max_completion_tokens: must be >= 1"},
    {OAI_CHAT, "{" MSG ",\"max_tokens\":3000000000}", 400, "max_tokens", "must be <= 2147483647"},
    {OAI_COMPLETION, "{\"prompt\":\"a\",\"max_tokens\":0}", 400, "max_tokens", "must be >= 1"},
    {OAI_CHAT, "{" MSG ",\"min_tokens\":-1}", 400, "min_tokens", "min_tokens: must be >= 0"},
    {OAI_CHAT, "{" MSG ",\"min_tokens\":20,\"max_tokens\":10}", 400, "min_tokens",
     "min_tokens: must be <= max_tokens (10), got 20"},
    {OAI_COMPLETION, "{\"prompt\":\"a\",\"min_tokens\":17}", 400, "min_tokens",
     "must be <= max_tokens (16), got 17"},
    {OAI_CHAT, "{" MSG ",\"stop\":\"\"}", 400, "stop", "stop: must not contain an empty string"},
    {OAI_CHAT, "{" MSG ",\"stop\":[\"a\",\"\"]}", 400, "stop", "must not contain an empty"},
    {OAI_CHAT,
     "{" MSG ",\"stop\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\",\"11\","
     "\"12\",\"13\",\"14\",\"15\",\"16\",\"17\"]}",
     400, "stop", "stop: at most 16 stop sequences, got 17"},
    {OAI_CHAT, "{" MSG ",\"stop_token_ids\":[1,1000]}", 400, "stop_token_ids",
     "stop_token_ids: token id 1000 at index 1 is out of vocabulary (vocabulary size 1000)"},
    {OAI_CHAT, "{" MSG ",\"stop_token_ids\":[-1]}", 400, "stop_token_ids", "token id -1 at index"},
    {OAI_CHAT, "{" MSG ",\"allowed_token_ids\":[]}", 400, "allowed_token_ids",
     "allowed_token_ids: must not be empty"},
    {OAI_CHAT, "{" MSG ",\"allowed_token_ids\":[5,99999]}", 400, "allowed_token_ids",
     "token id 99999 at index 1 is out of vocabulary"},
    {OAI_CHAT, "{" MSG ",\"logit_bias\":{\"1000\":1}}", 400, "logit_bias",
     "logit_bias: token id 1000 is out of vocabulary (vocabulary size 1000)"},
    {OAI_CHAT, "{" MSG ",\"logit_bias\":{\"-3\":1}}", 400, "logit_bias", "token id -3 is out"},
    {OAI_CHAT, "{" MSG ",\"logit_bias\":{\"abc\":1}}", 400, "logit_bias",
     "logit_bias: key \"abc\" is not a token id"},
    {OAI_CHAT, "{" MSG ",\"logit_bias\":{\"\":1}}", 400, "logit_bias", "is not a token id"},
    {OAI_CHAT, "{" MSG ",\"logit_bias\":{\"1 \":1}}", 400, "logit_bias", "is not a token id"},
    {OAI_CHAT, "{" MSG ",\"logit_bias\":{\"99999999999999999999\":1}}", 400, "logit_bias",
     "is not a token id"},
    {OAI_CHAT, "{" MSG ",\"logit_bias\":{\"5\":100.5}}", 400, "logit_bias",
     "logit_bias[\"5\"]: must be in [-100, 100], got 100.5"},
    {OAI_CHAT, "{" MSG ",\"logit_bias\":{\"5\":-101}}", 400, "logit_bias", "must be in [-100"},
    {OAI_CHAT, "{" MSG ",\"top_logprobs\":2}", 400, "top_logprobs",
     "top_logprobs: requires logprobs to be true"},
    {OAI_CHAT, "{" MSG ",\"top_logprobs\":2,\"logprobs\":false}", 400, "top_logprobs",
     "requires logprobs"},
    {OAI_CHAT, "{" MSG ",\"top_logprobs\":21,\"logprobs\":true}", 400, "top_logprobs",
     "top_logprobs: must be <= 20, got 21"},
    {OAI_CHAT, "{" MSG ",\"top_logprobs\":-1,\"logprobs\":true}", 400, "top_logprobs",
     "must be >= 0"},
    {OAI_COMPLETION, "{\"prompt\":\"a\",\"logprobs\":21}", 400, "logprobs",
     "logprobs: must be <= 20, got 21"},
    {OAI_COMPLETION, "{\"prompt\":\"a\",\"logprobs\":-1}", 400, "logprobs", "must be >= 0"},
    {OAI_COMPLETION, "{\"prompt\":\"a\",\"logprobs\":true}", 400, "logprobs",
     "expected an integer, got a boolean"},
    {OAI_CHAT, "{" MSG ",\"prompt_logprobs\":21}", 400, "prompt_logprobs", "must be <= 20"},
    {OAI_CHAT, "{" MSG ",\"prompt_logprobs\":-1}", 400, "prompt_logprobs", "must be >= 0"},
    {OAI_CHAT, "{" MSG ",\"prompt_logprobs\":1,\"stream\":true}", 400, "prompt_logprobs",
     "not available when stream is true"},
    {OAI_CHAT, "{" MSG ",\"priority\":3000000000}", 400, "priority", "must be <="},
    {OAI_CHAT, "{" MSG ",\"truncate_prompt_tokens\":0}", 400, "truncate_prompt_tokens",
     "truncate_prompt_tokens: must be -1 or >= 1, got 0"},
    {OAI_CHAT, "{" MSG ",\"truncate_prompt_tokens\":-2}", 400, "truncate_prompt_tokens",
     "must be >= -1"},
    {OAI_CHAT, "{" MSG ",\"truncate_prompt_tokens\":5000}", 400, "truncate_prompt_tokens",
     "must be <= max_model_len (4096), got 5000"},
    /* stream_options only with stream */
    {OAI_CHAT, "{" MSG ",\"stream_options\":{\"include_usage\":true}}", 400, "stream_options",
     "stream_options: only allowed when stream is true"},
    {OAI_CHAT, "{" MSG ",\"stream\":false,\"stream_options\":{}}", 400, "stream_options",
     "only allowed when stream is true"},
    {OAI_COMPLETION, "{\"prompt\":\"a\",\"stream_options\":{\"include_usage\":true}}", 400,
     "stream_options", "only allowed when stream is true"},
    /* chat template fields */
    {OAI_CHAT, "{" MSG ",\"continue_final_message\":true}", 400, "continue_final_message",
     "cannot be true while add_generation_prompt is true"},
    {OAI_CHAT, "{" MSG ",\"chat_template\":\"{{ x }}\"}", 400, "chat_template",
     "--trust-request-chat-template"},
    /* later releases */
    {OAI_CHAT, "{" MSG ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]}", 400,
     "tools", "tools: tool calling is not supported yet"},
    {OAI_CHAT, "{" MSG ",\"tools\":[]}", 400, "tools", "tools: must not be empty"},
    {OAI_CHAT, "{" MSG ",\"tools\":{}}", 400, "tools", "tools: expected an array"},
    {OAI_CHAT, "{" MSG ",\"tool_choice\":\"auto\"}", 400, "tool_choice", "requires tools"},
    {OAI_CHAT, "{" MSG ",\"tool_choice\":\"required\"}", 400, "tool_choice", "requires tools"},
    {OAI_CHAT, "{" MSG ",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"f\"}}}",
     400, "tool_choice", "requires tools"},
    {OAI_CHAT, "{" MSG ",\"tool_choice\":\"sometimes\"}", 400, "tool_choice",
     "tool_choice: must be \"none\", \"auto\", \"required\""},
    {OAI_CHAT, "{" MSG ",\"tool_choice\":5}", 400, "tool_choice", "expected a string or an"},
    {OAI_CHAT, "{" MSG ",\"functions\":[{\"name\":\"f\"}]}", 400, "functions", "not supported yet"},
    {OAI_CHAT, "{" MSG ",\"function_call\":\"auto\"}", 400, "function_call", "not supported yet"},
    {OAI_CHAT, "{" MSG ",\"response_format\":{\"type\":\"json_object\"}}", 400, "response_format",
     "response_format: type \"json_object\" is not supported yet"},
    {OAI_CHAT,
     "{" MSG ",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\","
     "\"schema\":{}}}}",
     400, "response_format", "\"json_schema\" is not supported yet"},
    {OAI_CHAT, "{" MSG ",\"response_format\":{\"type\":\"yaml\"}}", 400, "response_format",
     "response_format.type: must be \"text\", \"json_object\" or \"json_schema\", got \"yaml\""},
    {OAI_CHAT, "{" MSG ",\"response_format\":{}}", 400, "response_format",
     "response_format.type: expected a string, got nothing"},
    {OAI_CHAT, "{" MSG ",\"response_format\":\"json\"}", 400, "response_format",
     "expected an object"},
    {OAI_CHAT, "{" MSG ",\"structured_outputs\":{\"json\":{}}}", 400, "structured_outputs",
     "structured_outputs: structured output is not supported yet"},
    {OAI_CHAT, "{" MSG ",\"guided_json\":{}}", 400, "guided_json", "not supported yet"},
    {OAI_CHAT, "{" MSG ",\"guided_regex\":\"a+\"}", 400, "guided_regex", "not supported yet"},
    {OAI_CHAT, "{" MSG ",\"guided_choice\":[\"a\"]}", 400, "guided_choice", "not supported yet"},
    {OAI_CHAT, "{" MSG ",\"guided_grammar\":\"g\"}", 400, "guided_grammar", "not supported yet"},
    {OAI_COMPLETION, "{\"prompt\":\"a\",\"guided_json\":{}}", 400, "guided_json",
     "not supported yet"},
    {OAI_COMPLETION, "{\"prompt\":\"a\",\"response_format\":{\"type\":\"json_object\"}}", 400,
     "response_format", "not supported yet"},
    /* completions: prompt and suffix */
    {OAI_COMPLETION, "{}", 400, "prompt", "prompt: field required"},
    {OAI_COMPLETION, "{\"prompt\":\"\"}", 400, "prompt", "prompt: must not be empty"},
    {OAI_COMPLETION, "{\"prompt\":[]}", 400, "prompt", "prompt: must not be empty"},
    {OAI_COMPLETION, "{\"prompt\":[\"a\",\"\"]}", 400, "prompt", "prompt[1]: must not be empty"},
    {OAI_COMPLETION, "{\"prompt\":[[1],[]]}", 400, "prompt", "prompt[1]: must not be empty"},
    {OAI_COMPLETION, "{\"prompt\":5}", 400, "prompt",
     "prompt: expected a string, an array of strings, an array of token ids"},
    {OAI_COMPLETION, "{\"prompt\":{}}", 400, "prompt", "expected a string"},
    {OAI_COMPLETION, "{\"prompt\":[1,\"a\"]}", 400, "prompt",
     "expected token ids (integers), got a string at index 1"},
    {OAI_COMPLETION, "{\"prompt\":[\"a\",1]}", 400, "prompt",
     "prompt[1]: expected a string, got an integer"},
    {OAI_COMPLETION, "{\"prompt\":[[1],\"a\"]}", 400, "prompt", "prompt[1]: expected an array"},
    {OAI_COMPLETION, "{\"prompt\":[{}]}", 400, "prompt", "prompt[0]: expected a string, a token"},
    {OAI_COMPLETION, "{\"prompt\":[true]}", 400, "prompt", "prompt[0]"},
    {OAI_COMPLETION, "{\"prompt\":[1,2,1000]}", 400, "prompt",
     "prompt: token id 1000 at index 2 is out of vocabulary (vocabulary size 1000)"},
    {OAI_COMPLETION, "{\"prompt\":[[1],[2,-7]]}", 400, "prompt",
     "prompt[1]: token id -7 at index 1 is out of vocabulary"},
    {OAI_COMPLETION, "{\"prompt\":[1.5]}", 400, "prompt", "expected an integer, got 1.5"},
    {OAI_COMPLETION, "{\"prompt\":\"a\",\"suffix\":\"b\"}", 400, "suffix", "suffix: not supported"},
    {OAI_COMPLETION, "{\"prompt\":\"a\",\"suffix\":3}", 400, "suffix", "expected a string"},
    {OAI_COMPLETION, "{\"prompt\":\"a\",\"echo\":1}", 400, "echo", "expected a boolean"},
    {OAI_COMPLETION, "{\"prompt\":\"a\",\"add_special_tokens\":\"no\"}", 400, "add_special_tokens",
     "expected a boolean"},
    /* tokenize / detokenize */
    {OAI_TOKENIZE, "{}", 400, "prompt", "prompt: field required (or messages)"},
    {OAI_TOKENIZE, "{\"prompt\":[1,2]}", 400, "prompt", "prompt: expected a string, got an array"},
    {OAI_TOKENIZE, "{\"prompt\":\"a\",\"add_special_tokens\":1}", 400, "add_special_tokens",
     "boolean"},
    {OAI_TOKENIZE, "{\"prompt\":\"a\",\"return_token_strs\":1}", 400, "return_token_strs",
     "boolean"},
    {OAI_TOKENIZE, "{\"messages\":[]}", 400, "messages", "must not be empty"},
    {OAI_TOKENIZE, "{" MSG ",\"continue_final_message\":true}", 400, "continue_final_message",
     "cannot be true"},
    {OAI_TOKENIZE, "{" MSG ",\"tools\":{}}", 400, "tools", "expected an array"},
    {OAI_TOKENIZE, "{" MSG ",\"tools\":[1]}", 400, "tools", "tools[0]: expected an object"},
    {OAI_TOKENIZE, "{" MSG ",\"chat_template\":\"x\"}", 400, "chat_template", "refused"},
    {OAI_DETOKENIZE, "{}", 400, "tokens", "tokens: field required"},
    {OAI_DETOKENIZE, "{\"tokens\":\"a\"}", 400, "tokens", "expected an array of token ids"},
    {OAI_DETOKENIZE, "{\"tokens\":[1,1000]}", 400, "tokens",
     "tokens: token id 1000 at index 1 is out of vocabulary"},
    {OAI_DETOKENIZE, "{\"tokens\":[[1]]}", 400, "tokens", "expected token ids (integers)"},
};

TEST(rejected_rows)
{
    struct oai_limits l = limits();
    for (size_t i = 0; i < sizeof bad_rows / sizeof bad_rows[0]; i++) {
        const struct bad *b = &bad_rows[i];
        struct fixture f;
        run(&f, b->kind, b->body, &l);
        int want = b->status == 404 ? ERR_NOTFOUND : ERR_INVAL;
        if (f.rc != want || f.e.status != b->status ||
            strcmp(f.e.param, b->param ? b->param : "") != 0 || !strstr(f.e.message, b->msg))
            TEST_FAIL_AT("row %zu %s: rc %d status %d param \"%s\" message \"%s\"; want status "
                         "%d param \"%s\" message containing \"%s\"",
                         i, b->body, f.rc, f.e.status, f.e.param, f.e.message, b->status,
                         b->param ? b->param : "", b->msg);
        done(&f);
    }
}

/* ---- defaults ---- */

static void check_common_defaults(const struct oai_request *r)
{
    CHECK_EQ(r->n, 1);
    CHECK(!r->stream && !r->include_usage && !r->continuous_usage_stats && !r->echo);
    CHECK(r->sp.temperature == 1.0f && r->sp.top_p == 1.0f && r->sp.top_k == 0);
    CHECK(r->sp.min_p == 0.0f && r->sp.repetition_penalty == 1.0f);
    CHECK(r->sp.presence_penalty == 0.0f && r->sp.frequency_penalty == 0.0f);
    CHECK(!r->sp.has_seed && r->sp.seed == 0 && !r->sp.ignore_eos);
    CHECK_EQ(r->sp.min_tokens, 0);
    CHECK_EQ(r->sp.logprobs, -1);
    CHECK_EQ(r->sp.prompt_logprobs, -1);
    CHECK(r->sp.stop_token_ids == NULL || r->sp.n_stop_token_ids == 0);
    CHECK_EQ(r->sp.n_logit_bias, 0);
    CHECK(r->sp.allowed_token_ids == NULL);
    CHECK_EQ(r->n_stop, 0);
    CHECK(!r->include_stop_str_in_output && r->skip_special_tokens &&
          r->spaces_between_special_tokens);
    CHECK_EQ(r->priority, 0);
    CHECK(r->request_id.p == NULL);
    CHECK(!r->return_token_ids);
    CHECK_EQ(r->truncate_prompt_tokens, 0);
}

TEST(chat_defaults)
{
    struct oai_limits l = limits();
    struct fixture f;
    REQUIRE(run(&f, OAI_CHAT, "{" MSG "}", &l) == 0);
    const struct oai_request *r = &f.r;
    CHECK_EQ(r->kind, OAI_CHAT);
    CHECK(str_eq_cstr(r->model, "llama"));
    CHECK_EQ(r->model_index, 0);
    check_common_defaults(r);
    CHECK(!r->max_tokens_set);
    CHECK(r->add_generation_prompt && !r->continue_final_message && !r->add_special_tokens);
    CHECK(r->chat_template.p == NULL && r->chat_template_kwargs == NULL);
    REQUIRE(r->messages != NULL);
    CHECK_EQ(json_array_size(r->messages), 1);
    CHECK(r->root != NULL && json_object_get(r->root, "messages") == r->messages);
    CHECK_EQ(r->n_prompts, 0);
    done(&f);
}

TEST(completion_defaults)
{
    struct oai_limits l = limits();
    struct fixture f;
    REQUIRE(run(&f, OAI_COMPLETION, "{\"prompt\":\"Once\"}", &l) == 0);
    check_common_defaults(&f.r);
    CHECK(f.r.max_tokens_set);
    CHECK_EQ(f.r.sp.max_tokens, 16);
    CHECK(f.r.add_special_tokens);
    REQUIRE(f.r.n_prompts == 1);
    CHECK(str_eq_cstr(f.r.prompts[0].text, "Once") && f.r.prompts[0].ids == NULL);
    CHECK(f.r.messages == NULL);
    done(&f);
}

TEST(nulls_mean_not_given)
{
    struct oai_limits l = limits();
    struct fixture f;
    REQUIRE(run(&f, OAI_CHAT,
                "{" MSG ",\"model\":null,\"temperature\":null,\"top_p\":null,\"top_k\":null,"
                "\"min_p\":null,\"n\":null,\"max_tokens\":null,\"max_completion_tokens\":null,"
                "\"stop\":null,\"seed\":null,\"stream\":null,\"stream_options\":null,"
                "\"logit_bias\":null,\"logprobs\":null,\"top_logprobs\":null,\"tools\":null,"
                "\"tool_choice\":null,\"response_format\":null,\"user\":null,\"suffix\":null,"
                "\"guided_json\":null,\"chat_template\":null,\"presence_penalty\":null,"
                "\"frequency_penalty\":null,\"parallel_tool_calls\":null}",
                &l) == 0);
    check_common_defaults(&f.r);
    CHECK(!f.r.max_tokens_set);
    CHECK(str_eq_cstr(f.r.model, "llama"));
    done(&f);
}

TEST(generation_config_defaults)
{
    struct generation_config g = {0};
    g.has_temperature = g.has_top_p = g.has_top_k = g.has_min_p = g.has_repetition_penalty = true;
    g.temperature = 0.6;
    g.top_p = 0.9;
    g.top_k = 40;
    g.min_p = 0.05;
    g.repetition_penalty = 1.1;
    struct oai_limits l = limits();
    l.gen = &g;
    struct fixture f;
    REQUIRE(run(&f, OAI_CHAT, "{" MSG "}", &l) == 0);
    CHECK(f.r.sp.temperature == 0.6f && f.r.sp.top_p == 0.9f && f.r.sp.top_k == 40);
    CHECK(f.r.sp.min_p == 0.05f && f.r.sp.repetition_penalty == 1.1f);
    done(&f);
    /* the request's own values win */
    REQUIRE(run(&f, OAI_COMPLETION,
                "{\"prompt\":\"a\",\"temperature\":0.2,\"top_p\":0.5,\"top_k\":-1,\"min_p\":0,"
                "\"repetition_penalty\":1}",
                &l) == 0);
    CHECK(f.r.sp.temperature == 0.2f && f.r.sp.top_p == 0.5f && f.r.sp.top_k == 0);
    CHECK(f.r.sp.min_p == 0.0f && f.r.sp.repetition_penalty == 1.0f);
    done(&f);
    /* only some fields: the rest keep the API defaults */
    struct generation_config g2 = {0};
    g2.has_temperature = true;
    g2.temperature = 0.0;
    l.gen = &g2;
    REQUIRE(run(&f, OAI_CHAT, "{" MSG "}", &l) == 0);
    CHECK(f.r.sp.temperature == 0.0f && f.r.sp.top_p == 1.0f && f.r.sp.top_k == 0);
    done(&f);
    /* n > 1 against a greedy generation_config default is refused too */
    REQUIRE(run(&f, OAI_CHAT, "{" MSG ",\"n\":2}", &l) == ERR_INVAL);
    CHECK_STREQ(f.e.param, "n");
    done(&f);
    REQUIRE(run(&f, OAI_CHAT, "{" MSG ",\"n\":2,\"temperature\":0.7}", &l) == 0);
    CHECK_EQ(f.r.n, 2);
    done(&f);
}

/* ---- accepted values ---- */

TEST(chat_all_fields)
{
    struct oai_limits l = limits();
    l.trust_request_chat_template = true;
    struct fixture f;
    REQUIRE(run(&f, OAI_CHAT,
                "{\"model\":\"llama-alias\",\"messages\":[{\"role\":\"system\",\"content\":\"s\"},"
                "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"}],"
                "\"name\":\"bob\"},{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{"
                "\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":"
                "\"{}\"}}]},{\"role\":\"tool\",\"content\":\"r\",\"tool_call_id\":\"c1\"},"
                "{\"role\":\"critic\"}],"
                "\"temperature\":0.7,\"top_p\":0.9,\"top_k\":50,\"min_p\":0.1,"
                "\"repetition_penalty\":1.2,\"presence_penalty\":-2,\"frequency_penalty\":2,"
                "\"seed\":-9223372036854775808,\"n\":3,\"max_completion_tokens\":100,"
                "\"max_tokens\":5,\"min_tokens\":4,\"ignore_eos\":true,\"stop\":\"END\","
                "\"stop_token_ids\":[7,8],\"logit_bias\":{\"5\":100,\"6\":-100,\"05\":1.5},"
                "\"allowed_token_ids\":[1,2,3],\"logprobs\":true,\"top_logprobs\":20,"
                "\"prompt_logprobs\":0,\"stream\":true,\"stream_options\":{\"include_usage\":"
                "true,\"continuous_usage_stats\":true},\"include_stop_str_in_output\":true,"
                "\"skip_special_tokens\":false,\"spaces_between_special_tokens\":false,"
                "\"priority\":-5,\"request_id\":\"abc\",\"return_token_ids\":true,"
                "\"truncate_prompt_tokens\":-1,\"echo\":true,\"add_generation_prompt\":false,"
                "\"continue_final_message\":true,\"add_special_tokens\":true,"
                "\"chat_template\":\"{{ messages }}\",\"chat_template_kwargs\":{\"x\":1},"
                "\"user\":\"u\",\"tool_choice\":\"none\",\"parallel_tool_calls\":false,"
                "\"response_format\":{\"type\":\"text\"},\"best_of\":1,\"unknown\":[1,{}],"
                "\"prompt_logprobs\":null}",
                &l) == 0);
    const struct oai_request *r = &f.r;
    CHECK(str_eq_cstr(r->model, "llama-alias"));
    CHECK_EQ(r->model_index, 1);
    CHECK(r->sp.temperature == 0.7f && r->sp.top_p == 0.9f && r->sp.top_k == 50);
    CHECK(r->sp.min_p == 0.1f && r->sp.repetition_penalty == 1.2f);
    CHECK(r->sp.presence_penalty == -2.0f && r->sp.frequency_penalty == 2.0f);
    CHECK(r->sp.has_seed && r->sp.seed == (uint64_t)INT64_MIN);
    CHECK_EQ(r->n, 3);
    CHECK(r->max_tokens_set);
    CHECK_EQ(r->sp.max_tokens, 100); /* max_completion_tokens wins */
    CHECK_EQ(r->sp.min_tokens, 4);
    CHECK(r->sp.ignore_eos);
    REQUIRE(r->n_stop == 1);
    CHECK(str_eq_cstr(r->stop[0], "END"));
    REQUIRE(r->sp.n_stop_token_ids == 2);
    CHECK(r->sp.stop_token_ids[0] == 7 && r->sp.stop_token_ids[1] == 8);
    REQUIRE(r->sp.n_logit_bias == 2); /* "05" is id 5 again: the last value wins */
    CHECK(r->sp.logit_bias_ids[0] == 5 && r->sp.logit_bias_values[0] == 1.5f);
    CHECK(r->sp.logit_bias_ids[1] == 6 && r->sp.logit_bias_values[1] == -100.0f);
    REQUIRE(r->sp.n_allowed_token_ids == 3);
    CHECK(r->sp.allowed_token_ids[2] == 3);
    CHECK_EQ(r->sp.logprobs, 20);
    CHECK_EQ(r->sp.prompt_logprobs, -1); /* the later null wins */
    CHECK(r->stream && r->include_usage && r->continuous_usage_stats);
    CHECK(r->include_stop_str_in_output && !r->skip_special_tokens &&
          !r->spaces_between_special_tokens);
    CHECK_EQ(r->priority, -5);
    CHECK(str_eq_cstr(r->request_id, "abc"));
    CHECK(r->return_token_ids);
    CHECK_EQ(r->truncate_prompt_tokens, -1);
    CHECK(r->echo && !r->add_generation_prompt && r->continue_final_message);
    CHECK(r->add_special_tokens);
    CHECK(str_eq_cstr(r->chat_template, "{{ messages }}"));
    REQUIRE(r->chat_template_kwargs != NULL);
    CHECK_EQ(json_integer_value(json_object_get(r->chat_template_kwargs, "x")), 1);
    CHECK_EQ(json_array_size(r->messages), 5);
    done(&f);
}

TEST(numbers_and_edges)
{
    struct oai_limits l = limits();
    struct fixture f;
    /* integral reals for integer fields; integers for real fields; boundaries */
    REQUIRE(run(&f, OAI_COMPLETION,
                "{\"prompt\":[1.0,2,999],\"max_tokens\":32.0,\"n\":128,\"temperature\":2,"
                "\"top_p\":1,\"min_p\":1,\"presence_penalty\":2,\"frequency_penalty\":-2,"
                "\"logprobs\":20,\"prompt_logprobs\":20,\"seed\":9223372036854775807,"
                "\"top_k\":0,\"min_tokens\":32,\"logit_bias\":{\"+7\":-0.5},"
                "\"truncate_prompt_tokens\":4096,\"stop\":[\"\\n\",\"\\u00e9\"]}",
                &l) == 0);
    REQUIRE(f.r.n_prompts == 1 && f.r.prompts[0].n_ids == 3);
    CHECK(f.r.prompts[0].ids[0] == 1 && f.r.prompts[0].ids[2] == 999);
    CHECK_EQ(f.r.sp.max_tokens, 32);
    CHECK_EQ(f.r.n, 128);
    CHECK(f.r.sp.temperature == 2.0f && f.r.sp.min_p == 1.0f);
    CHECK_EQ(f.r.sp.logprobs, 20);
    CHECK_EQ(f.r.sp.prompt_logprobs, 20);
    CHECK(f.r.sp.seed == (uint64_t)INT64_MAX);
    CHECK_EQ(f.r.sp.min_tokens, 32);
    REQUIRE(f.r.sp.n_logit_bias == 1);
    CHECK(f.r.sp.logit_bias_ids[0] == 7 && f.r.sp.logit_bias_values[0] == -0.5f);
    CHECK_EQ(f.r.truncate_prompt_tokens, 4096);
    REQUIRE(f.r.n_stop == 2);
    CHECK(str_eq_cstr(f.r.stop[0], "\n") && str_eq_cstr(f.r.stop[1], "\xc3\xa9"));
    done(&f);
    /* temperature 0 with n 1; chat logprobs without top_logprobs = 0 alternatives */
    REQUIRE(run(&f, OAI_CHAT, "{" MSG ",\"temperature\":0,\"logprobs\":true}", &l) == 0);
    CHECK(f.r.sp.temperature == 0.0f);
    CHECK_EQ(f.r.sp.logprobs, 0);
    done(&f);
    /* top_logprobs 0 without logprobs is allowed (vLLM), and asks for nothing */
    REQUIRE(run(&f, OAI_CHAT, "{" MSG ",\"top_logprobs\":0}", &l) == 0);
    CHECK_EQ(f.r.sp.logprobs, -1);
    done(&f);
    /* logprobs false with top_logprobs given: no logprobs */
    REQUIRE(run(&f, OAI_CHAT, "{" MSG ",\"logprobs\":false,\"top_logprobs\":0}", &l) == 0);
    CHECK_EQ(f.r.sp.logprobs, -1);
    done(&f);
    /* chat max_tokens alone; duplicate keys: the last wins (as Python's json) */
    REQUIRE(run(&f, OAI_CHAT, "{" MSG ",\"max_tokens\":7,\"n\":5,\"n\":2}", &l) == 0);
    CHECK(f.r.max_tokens_set);
    CHECK_EQ(f.r.sp.max_tokens, 7);
    CHECK_EQ(f.r.n, 2);
    done(&f);
    /* empty suffix, empty stop list, empty model: accepted */
    REQUIRE(run(&f, OAI_COMPLETION, "{\"prompt\":\"a\",\"suffix\":\"\",\"stop\":[],\"model\":\"\"}",
                &l) == 0);
    CHECK_EQ(f.r.n_stop, 0);
    CHECK(str_eq_cstr(f.r.model, "llama"));
    done(&f);
}

TEST(completion_prompt_forms)
{
    struct oai_limits l = limits();
    struct fixture f;
    REQUIRE(run(&f, OAI_COMPLETION, "{\"prompt\":[\"a\",\"bc\",\"d\"]}", &l) == 0);
    REQUIRE(f.r.n_prompts == 3);
    CHECK(str_eq_cstr(f.r.prompts[1].text, "bc") && f.r.prompts[1].ids == NULL);
    done(&f);
    REQUIRE(run(&f, OAI_COMPLETION, "{\"prompt\":[[1,2],[3],[4,5,6]]}", &l) == 0);
    REQUIRE(f.r.n_prompts == 3);
    CHECK_EQ(f.r.prompts[2].n_ids, 3);
    CHECK_EQ(f.r.prompts[2].ids[2], 6);
    CHECK_EQ(f.r.prompts[1].ids[0], 3);
    done(&f);
    REQUIRE(run(&f, OAI_COMPLETION, "{\"prompt\":[0]}", &l) == 0);
    REQUIRE(f.r.n_prompts == 1);
    CHECK(f.r.prompts[0].n_ids == 1 && f.r.prompts[0].ids[0] == 0);
    done(&f);
    /* no vocabulary known: ids only need to be non-negative int32 */
    struct oai_limits nov = l;
    nov.vocab_size = 0;
    REQUIRE(run(&f, OAI_COMPLETION, "{\"prompt\":[5000000]}", &nov) == 0);
    done(&f);
    CHECK(run(&f, OAI_COMPLETION, "{\"prompt\":[2147483648]}", &nov) == ERR_INVAL);
    CHECK(strstr(f.e.message, "not a valid token id") != NULL);
    done(&f);
}

TEST(model_names)
{
    struct oai_limits l = limits();
    struct fixture f;
    REQUIRE(run(&f, OAI_CHAT, "{\"model\":\"llama\"," MSG "}", &l) == 0);
    CHECK(str_eq_cstr(f.r.model, "llama"));
    done(&f);
    /* exact match only */
    CHECK(run(&f, OAI_CHAT, "{\"model\":\"LLAMA\"," MSG "}", &l) == ERR_NOTFOUND);
    CHECK_EQ(f.e.status, 404);
    done(&f);
    CHECK(run(&f, OAI_CHAT, "{\"model\":\"llama \"," MSG "}", &l) == ERR_NOTFOUND);
    done(&f);
    /* no served names: anything goes and is echoed */
    struct oai_limits any = l;
    any.n_served = 0;
    REQUIRE(run(&f, OAI_CHAT, "{\"model\":\"whatever\"," MSG "}", &any) == 0);
    CHECK(str_eq_cstr(f.r.model, "whatever"));
    done(&f);
    /* a long unknown name is quoted cut, the served list stays whole */
    char body[1200];
    char name[600];
    memset(name, 'x', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    snprintf(body, sizeof body, "{\"model\":\"%s\"," MSG "}", name);
    CHECK(run(&f, OAI_CHAT, body, &l) == ERR_NOTFOUND);
    CHECK(strlen(f.e.message) < 400);
    CHECK(strstr(f.e.message, "Served models: llama, llama-alias") != NULL);
    done(&f);
}

TEST(tokenize_bodies)
{
    struct oai_limits l = limits();
    struct fixture f;
    REQUIRE(run(&f, OAI_TOKENIZE, "{\"prompt\":\"Hello\"}", &l) == 0);
    REQUIRE(f.r.n_prompts == 1);
    CHECK(str_eq_cstr(f.r.prompts[0].text, "Hello"));
    CHECK(f.r.add_special_tokens && !f.r.return_token_strs && f.r.messages == NULL);
    done(&f);
    REQUIRE(run(&f, OAI_TOKENIZE,
                "{\"prompt\":\"\",\"add_special_tokens\":false,"
                "\"return_token_strs\":true,\"model\":\"llama\"}",
                &l) == 0);
    CHECK(!f.r.add_special_tokens && f.r.return_token_strs);
    done(&f);
    REQUIRE(run(&f, OAI_TOKENIZE,
                "{" MSG ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],"
                "\"chat_template_kwargs\":{\"enable_thinking\":false}}",
                &l) == 0);
    CHECK(f.r.messages != NULL && f.r.tools != NULL);
    CHECK(f.r.add_generation_prompt && !f.r.add_special_tokens);
    CHECK(f.r.chat_template_kwargs != NULL);
    done(&f);
    REQUIRE(run(&f, OAI_TOKENIZE,
                "{" MSG ",\"add_generation_prompt\":false,\"continue_final_message\":true,"
                "\"add_special_tokens\":true}",
                &l) == 0);
    CHECK(!f.r.add_generation_prompt && f.r.continue_final_message && f.r.add_special_tokens);
    done(&f);
}

TEST(detokenize_bodies)
{
    struct oai_limits l = limits();
    struct fixture f;
    REQUIRE(run(&f, OAI_DETOKENIZE, "{\"tokens\":[1,2,999]}", &l) == 0);
    REQUIRE(f.r.n_tokens == 3);
    CHECK(f.r.tokens[0] == 1 && f.r.tokens[2] == 999);
    done(&f);
    REQUIRE(run(&f, OAI_DETOKENIZE, "{\"tokens\":[]}", &l) == 0);
    CHECK_EQ(f.r.n_tokens, 0);
    done(&f);
}

/* ---- limits ---- */

/* nested: "{"a": [[[ ... ]]]}" with `depth` levels in all (the object counts). */
static char *nested(int depth, const char *prefix)
{
    size_t n = strlen(prefix) + 2 * (size_t)depth + 16;
    char *s = malloc(n);
    size_t k = (size_t)sprintf(s, "%s", prefix);
    for (int i = 1; i < depth; i++)
        s[k++] = '[';
    for (int i = 1; i < depth; i++)
        s[k++] = ']';
    strcpy(s + k, "}");
    return s;
}

TEST(depth_limit)
{
    struct oai_limits l = limits();
    struct fixture f;
    char *ok = nested(64, "{" MSG ",\"x\":");
    CHECK(run(&f, OAI_CHAT, ok, &l) == 0);
    done(&f);
    char *deep = nested(65, "{" MSG ",\"x\":");
    CHECK(run(&f, OAI_CHAT, deep, &l) == ERR_LIMIT);
    CHECK_EQ(f.e.status, 413);
    CHECK(strstr(f.e.message, "nested too deeply: more than 64 levels") != NULL);
    CHECK_STREQ(oai_error_type(f.e.status), "RequestTooLarge");
    done(&f);
    /* a configured limit */
    l.max_depth = 128;
    CHECK(run(&f, OAI_CHAT, deep, &l) == 0);
    done(&f);
    free(ok);
    free(deep);
    /* a hostile depth far beyond jansson's own limit is refused by the pre-scan */
    size_t n = 200000;
    char *huge = malloc(n + 1);
    memset(huge, '[', n);
    huge[n] = '\0';
    l.max_depth = 64;
    CHECK(run(&f, OAI_CHAT, huge, &l) == ERR_LIMIT);
    done(&f);
    free(huge);
    /* brackets inside strings, and escaped quotes, do not count */
    char body[2048];
    int k = snprintf(body, sizeof body, "{" MSG ",\"x\":\"");
    for (int i = 0; i < 300; i++)
        body[k++] = i % 2 ? '[' : '{';
    k += sprintf(body + k, "\\\"[[[[\\\\\"}");
    CHECK(run(&f, OAI_CHAT, body, &l) == 0);
    done(&f);
}

TEST(node_limit)
{
    struct oai_limits l = limits();
    l.max_nodes = 1000;
    struct fixture f;
    char body[16384];
    int k = sprintf(body, "{\"prompt\":[");
    for (int i = 0; i < 998; i++)
        k += sprintf(body + k, "%s1", i ? "," : "");
    sprintf(body + k, "]}");
    CHECK(run(&f, OAI_COMPLETION, body, &l) == 0); /* 997 commas + ':' + 2 containers */
    done(&f);
    k = sprintf(body, "{\"prompt\":[");
    for (int i = 0; i < 1200; i++)
        k += sprintf(body + k, "%s1", i ? "," : "");
    sprintf(body + k, "]}");
    CHECK(run(&f, OAI_COMPLETION, body, &l) == ERR_LIMIT);
    CHECK_EQ(f.e.status, 413);
    CHECK(strstr(f.e.message, "too many JSON values: more than 1000") != NULL);
    done(&f);
    /* commas inside strings do not count */
    k = sprintf(body, "{\"prompt\":\"");
    for (int i = 0; i < 5000; i++)
        body[k++] = ',';
    sprintf(body + k, "\"}");
    CHECK(run(&f, OAI_COMPLETION, body, &l) == 0);
    done(&f);
}

TEST(prescan_direct)
{
    struct oai_error e;
    CHECK(oai_request_prescan("", 0, 1, 1, &e) == 0);
    CHECK(oai_request_prescan("[]", 2, 1, 1, &e) == 0);
    CHECK(oai_request_prescan("[[]]", 4, 1, 10, &e) == ERR_LIMIT);
    CHECK(oai_request_prescan("]]]][]", 6, 1, 10, &e) == 0);
    CHECK(oai_request_prescan("\"\\", 2, 1, 10, &e) == 0); /* escape at the very end */
    CHECK(oai_request_prescan("[1,2,3]", 7, 4, 2, &e) == ERR_LIMIT);
    CHECK(oai_request_prescan("[1,2,3]", 7, 4, 3, &e) == 0);
}

TEST(arena_limit)
{
    struct oai_limits l = limits();
    struct fixture f;
    /* a small arena: the prompt ids do not fit -> 413, never a crash */
    char body[65536];
    int k = sprintf(body, "{\"prompt\":[");
    for (int i = 0; i < 5000; i++)
        k += sprintf(body + k, "%s%d", i ? "," : "", i % 1000);
    sprintf(body + k, "]}");
    arena_init(&f.a, 8192, 1024);
    int rc = oai_request_parse(OAI_COMPLETION, body, strlen(body), &l, &f.a, &f.r, &f.e);
    CHECK_EQ(rc, ERR_LIMIT);
    CHECK_EQ(f.e.status, 413);
    CHECK(strstr(f.e.message, "request too large") != NULL);
    arena_deinit(&f.a);
    /* an arena too small even to keep the root: still an error, the root is freed */
    arena_init(&f.a, 1, 1);
    rc = oai_request_parse(OAI_CHAT, "{" MSG "}", strlen("{" MSG "}"), &l, &f.a, &f.r, &f.e);
    CHECK_EQ(rc, ERR_LIMIT);
    arena_deinit(&f.a);
    /* one arena, many requests (reset between): nothing leaks (ASan) */
    arena_init(&f.a, 1u << 20, 0);
    for (int i = 0; i < 100; i++) {
        rc = oai_request_parse(OAI_CHAT, "{" MSG ",\"stop\":[\"a\"]}",
                               strlen("{" MSG ",\"stop\":[\"a\"]}"), &l, &f.a, &f.r, &f.e);
        CHECK_EQ(rc, 0);
        arena_reset(&f.a);
    }
    arena_deinit(&f.a);
}

TEST(body_with_length)
{
    /* the body is body[0..n): bytes after n are not read */
    struct oai_limits l = limits();
    struct fixture f;
    const char *s = "{\"prompt\":\"a\"}GARBAGE";
    arena_init(&f.a, 1u << 20, 0);
    CHECK_EQ(oai_request_parse(OAI_COMPLETION, s, 14, &l, &f.a, &f.r, &f.e), 0);
    CHECK_EQ(oai_request_parse(OAI_COMPLETION, s, strlen(s), &l, &f.a, &f.r, &f.e), ERR_INVAL);
    /* NULL error pointer is allowed */
    CHECK_EQ(oai_request_parse(OAI_COMPLETION, "{}", 2, &l, &f.a, &f.r, NULL), ERR_INVAL);
    arena_deinit(&f.a);
}

/* ---- context length ---- */

TEST(fit_length)
{
    struct oai_limits l = limits(); /* max_model_len 4096 */
    struct fixture f;
    struct oai_error e;
    REQUIRE(run(&f, OAI_CHAT, "{" MSG "}", &l) == 0);
    CHECK_EQ(oai_request_fit_length(&f.r, &l, 96, &e), 0);
    CHECK(f.r.max_tokens_set);
    CHECK_EQ(f.r.sp.max_tokens, 4000);
    done(&f);
    REQUIRE(run(&f, OAI_CHAT, "{" MSG "}", &l) == 0);
    CHECK_EQ(oai_request_fit_length(&f.r, &l, 4096, &e), ERR_INVAL);
    CHECK_STREQ(e.param, "input_tokens");
    CHECK(strstr(e.message, "This model's maximum context length is 4096 tokens. However, your "
                            "prompt contains 4096 input tokens") != NULL);
    done(&f);
    REQUIRE(run(&f, OAI_CHAT, "{" MSG ",\"max_tokens\":100}", &l) == 0);
    CHECK_EQ(oai_request_fit_length(&f.r, &l, 3996, &e), 0);
    CHECK_EQ(f.r.sp.max_tokens, 100);
    CHECK_EQ(oai_request_fit_length(&f.r, &l, 3997, &e), ERR_INVAL);
    CHECK_EQ(e.status, 400);
    CHECK_STREQ(e.param, "max_tokens");
    CHECK_STREQ(e.message, "This model's maximum context length is 4096 tokens. However, you "
                           "requested 100 output tokens and your prompt contains 3997 input "
                           "tokens, for a total of 4097 tokens. Please reduce the length of the "
                           "input prompt or the number of requested output tokens.");
    done(&f);
    /* completions: the default 16 counts */
    REQUIRE(run(&f, OAI_COMPLETION, "{\"prompt\":\"a\"}", &l) == 0);
    CHECK_EQ(oai_request_fit_length(&f.r, &l, 4090, &e), ERR_INVAL);
    CHECK(strstr(e.message, "requested 16 output tokens") != NULL);
    done(&f);
    /* generation_config's max_new_tokens caps the unset default */
    struct generation_config g = {0};
    g.has_max_new_tokens = true;
    g.max_new_tokens = 256;
    l.gen = &g;
    REQUIRE(run(&f, OAI_CHAT, "{" MSG "}", &l) == 0);
    CHECK_EQ(oai_request_fit_length(&f.r, &l, 10, &e), 0);
    CHECK_EQ(f.r.sp.max_tokens, 256);
    done(&f);
    REQUIRE(run(&f, OAI_CHAT, "{" MSG "}", &l) == 0);
    CHECK_EQ(oai_request_fit_length(&f.r, &l, 4000, &e), 0);
    CHECK_EQ(f.r.sp.max_tokens, 96);
    done(&f);
    /* min_tokens above what the context leaves */
    REQUIRE(run(&f, OAI_CHAT, "{" MSG ",\"min_tokens\":200}", &l) == 0);
    CHECK_EQ(oai_request_fit_length(&f.r, &l, 4000, &e), ERR_INVAL);
    CHECK_STREQ(e.param, "min_tokens");
    done(&f);
}

/* ---- the error object ---- */

/* check_body: text is the error body of e: exactly four members of the right types. */
static void check_body(const char *text, size_t n, int status, const char *type, const char *param,
                       const char *message)
{
    json_error_t je;
    json_t *root = json_loadb(text, n, 0, &je);
    if (!root) {
        TEST_FAIL_AT("not JSON (%s): %.*s", je.text, (int)n, text);
        return;
    }
    CHECK_EQ(json_object_size(root), 1);
    json_t *e = json_object_get(root, "error");
    CHECK(json_is_object(e) && json_object_size(e) == 4);
    CHECK_STREQ(json_string_value(json_object_get(e, "type")), type);
    CHECK(json_is_integer(json_object_get(e, "code")));
    CHECK_EQ(json_integer_value(json_object_get(e, "code")), status);
    json_t *p = json_object_get(e, "param");
    if (param)
        CHECK_STREQ(json_string_value(p), param);
    else
        CHECK(json_is_null(p));
    if (message)
        CHECK_STREQ(json_string_value(json_object_get(e, "message")), message);
    json_decref(root);
}

TEST(error_types)
{
    static const struct {
        int status;
        const char *type;
    } rows[] = {{400, "BadRequestError"},     {401, "AuthenticationError"},
                {404, "NotFoundError"},       {405, "MethodNotAllowed"},
                {413, "RequestTooLarge"},     {414, "RequestTooLarge"},
                {431, "RequestTooLarge"},     {415, "UnsupportedMediaType"},
                {429, "RateLimitError"},      {503, "ServiceUnavailableError"},
                {500, "InternalServerError"}, {501, "InternalServerError"},
                {408, "BadRequestError"},     {0, "InternalServerError"}};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        CHECK_STREQ(oai_error_type(rows[i].status), rows[i].type);
        struct oai_error e;
        oai_error_set(&e, rows[i].status, i % 2 ? "field" : NULL, "message %zu", i);
        char out[2048];
        size_t n = oai_error_json(&e, out, sizeof out);
        CHECK_EQ(n, strlen(out));
        char want[32];
        snprintf(want, sizeof want, "message %zu", i);
        check_body(out, n, rows[i].status, rows[i].type, i % 2 ? "field" : NULL, want);
    }
    CHECK_EQ(oai_error_code(400), ERR_INVAL);
    CHECK_EQ(oai_error_code(404), ERR_NOTFOUND);
    CHECK_EQ(oai_error_code(413), ERR_LIMIT);
    CHECK_EQ(oai_error_code(431), ERR_LIMIT);
    CHECK_EQ(oai_error_code(503), ERR_NOMEM);
    CHECK_EQ(oai_error_code(500), ERR_STATE);
}

TEST(error_exact_shape)
{
    struct oai_error e;
    CHECK_EQ(oai_error_set(&e, 400, "temperature", "temperature: must be >= 0, got %d", -1),
             ERR_INVAL);
    char out[1024];
    size_t n = oai_error_json(&e, out, sizeof out);
    CHECK_STREQ(out, "{\"error\": {\"message\": \"temperature: must be >= 0, got -1\", \"type\": "
                     "\"BadRequestError\", \"param\": \"temperature\", \"code\": 400}}");
    CHECK_EQ(n, strlen(out));
    n = oai_error_format(413, "body too large", out, sizeof out);
    CHECK_STREQ(out, "{\"error\": {\"message\": \"body too large\", \"type\": \"RequestTooLarge\", "
                     "\"param\": null, \"code\": 413}}");
    CHECK_EQ(oai_error_set(NULL, 404, NULL, "x"), ERR_NOTFOUND);
}

TEST(error_escaping)
{
    struct oai_error e;
    /* oai_error_set makes a message one line */
    oai_error_set(&e, 400, NULL,
                  "a\nb\tc\x01"
                  "d\x7f"
                  "\xc3\xa9");
    CHECK_STREQ(e.message, "a b c d \xc3\xa9");
    /* a message filled by hand: the JSON escapes every control character */
    oai_error_set(&e, 400, "a\"b", "x");
    strcpy(e.message, "q\" b\\ nl\n tab\t ctl\x01 del\x7f ok\xc3\xa9 bad\xff\xc3 end");
    char out[2048];
    size_t n = oai_error_json(&e, out, sizeof out);
    check_body(out, n, 400, "BadRequestError", "a\"b",
               "q\" b\\ nl\n tab\t ctl\x01 del\x7f ok\xc3\xa9 bad\xef\xbf\xbd\xef\xbf\xbd end");
    CHECK(strstr(out, "\\u0001") != NULL);
    CHECK(strchr(out, '\n') == NULL);
}

TEST(error_truncation)
{
    struct oai_error e;
    char big[3000];
    for (size_t i = 0; i < sizeof big - 1; i++)
        big[i] = "\xc3\xa9\n"[i % 3]; /* é and newlines: escapes grow the text */
    big[sizeof big - 1] = '\0';
    oai_error_set(&e, 400, "a-param-name-that-is-much-longer-than-sixty-four-bytes-to-be-cut-xx",
                  "%s", big);
    CHECK(strlen(e.message) < OAI_ERROR_MESSAGE_MAX);
    CHECK(strlen(e.param) < OAI_ERROR_PARAM_MAX);
    /* every cap from the minimum up gives valid JSON that fits */
    for (size_t cap = OAI_ERROR_JSON_MIN; cap < 3000; cap += 37) {
        char *out = malloc(cap);
        size_t n = oai_error_json(&e, out, cap);
        CHECK(n > 0 && n < cap && out[n] == '\0');
        check_body(out, n, 400, "BadRequestError", e.param, NULL);
        free(out);
    }
    char small[OAI_ERROR_JSON_MIN - 1];
    CHECK_EQ(oai_error_json(&e, small, sizeof small), 0);
    CHECK_EQ(small[0], '\0');
    /* the buf variant keeps the whole message */
    struct buf b;
    buf_init(&b, 0);
    CHECK_EQ(oai_error_json_buf(&e, &b), 0);
    json_t *root = json_loadb(b.p, b.n, 0, NULL);
    REQUIRE(root != NULL);
    const char *msg = json_string_value(json_object_get(json_object_get(root, "error"), "message"));
    CHECK(msg && strcmp(msg, e.message) == 0);
    json_decref(root);
    buf_deinit(&b);
    buf_init(&b, 10);
    CHECK_EQ(oai_error_json_buf(&e, &b), ERR_LIMIT);
    buf_deinit(&b);
}

TEST(error_bodies_of_parse_failures_are_json)
{
    /* every rejected row's body parses as the error shape */
    struct oai_limits l = limits();
    for (size_t i = 0; i < sizeof bad_rows / sizeof bad_rows[0]; i++) {
        struct fixture f;
        run(&f, bad_rows[i].kind, bad_rows[i].body, &l);
        char out[4096];
        size_t n = oai_error_json(&f.e, out, sizeof out);
        check_body(out, n, bad_rows[i].status, oai_error_type(bad_rows[i].status),
                   bad_rows[i].param, f.e.message);
        done(&f);
    }
}

int main(int argc, char **argv)
{
    return test_main(argc, argv);
}
