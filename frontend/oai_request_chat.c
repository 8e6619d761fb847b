/*
 * oai_request_chat: messages, chat fields, /tokenize and later-release features (see
 * oai_request_chat.h).
 */
#include "frontend/oai_request_chat.h"

#include <inttypes.h>
#include <string.h>

#include "common/err.h"

#define LATER " is not supported yet (it comes in a later release of kiln)"

/* check_part: one element of a message's content list: {"type": "text", "text": str}. */
static int check_part(const struct oai_ctx *c, size_t i, size_t j, const json_t *part)
{
    if (!json_is_object(part))
        return oai_error_set(c->err, 400, "messages",
                             "messages[%zu].content[%zu]: expected an object, got %s", i, j,
                             oai_request_field_type_name(part));
    const json_t *type = json_object_get(part, "type");
    if (!json_is_string(type))
        return oai_error_set(c->err, 400, "messages",
                             "messages[%zu].content[%zu].type: expected a string, got %s", i, j,
                             type ? oai_request_field_type_name(type) : "nothing");
    struct str t = {json_string_value(type), json_string_length(type)};
    if (!str_eq_cstr(t, "text"))
        return oai_error_set(c->err, 400, "messages",
                             "messages[%zu].content[%zu]: content parts of type \"%.*s\" are not "
                             "supported (text only)",
                             i, j, oai_request_clip(t), t.p);
    const json_t *text = json_object_get(part, "text");
    if (!json_is_string(text))
        return oai_error_set(c->err, 400, "messages",
                             "messages[%zu].content[%zu].text: expected a string, got %s", i, j,
                             text ? oai_request_field_type_name(text) : "nothing");
    return 0;
}

/* check_tool_calls: an assistant's tool_calls: objects with a function {name, arguments}. */
static int check_tool_calls(const struct oai_ctx *c, size_t i, const json_t *calls)
{
    if (!json_is_array(calls))
        return oai_error_set(c->err, 400, "messages",
                             "messages[%zu].tool_calls: expected an array, got %s", i,
                             oai_request_field_type_name(calls));
    for (size_t j = 0; j < json_array_size(calls); j++) {
        const json_t *call = json_array_get(calls, j);
        const json_t *fn = json_object_get(call, "function");
        const json_t *name = json_object_get(fn, "name");
        const json_t *args = json_object_get(fn, "arguments");
        if (!json_is_object(call) || !json_is_object(fn) || !json_is_string(name))
            return oai_error_set(c->err, 400, "messages",
                                 "messages[%zu].tool_calls[%zu]: expected an object with a "
                                 "\"function\" object holding a string \"name\"",
                                 i, j);
        if (args && !json_is_string(args) && !json_is_object(args))
            return oai_error_set(c->err, 400, "messages",
                                 "messages[%zu].tool_calls[%zu].function.arguments: expected a "
                                 "string or an object, got %s",
                                 i, j, oai_request_field_type_name(args));
    }
    return 0;
}

/* check_message: an object with a string role; content a string, null or text parts. */
static int check_message(const struct oai_ctx *c, size_t i, const json_t *m)
{
    if (!json_is_object(m))
        return oai_error_set(c->err, 400, "messages", "messages[%zu]: expected an object, got %s",
                             i, oai_request_field_type_name(m));
    const json_t *role = json_object_get(m, "role");
    if (!json_is_string(role))
        return oai_error_set(c->err, 400, "messages",
                             "messages[%zu].role: expected a string, got %s", i,
                             role ? oai_request_field_type_name(role) : "nothing");
    const json_t *content = json_object_get(m, "content");
    if (json_is_array(content)) {
        for (size_t j = 0; j < json_array_size(content); j++) {
            int rc = check_part(c, i, j, json_array_get(content, j));
            if (rc)
                return rc;
        }
    } else if (content && !json_is_string(content) && !json_is_null(content)) {
        return oai_error_set(c->err, 400, "messages",
                             "messages[%zu].content: expected a string, an array of content "
                             "parts or null, got %s",
                             i, oai_request_field_type_name(content));
    }
    const json_t *name = json_object_get(m, "name");
    if (name && !json_is_string(name) && !json_is_null(name))
        return oai_error_set(c->err, 400, "messages",
                             "messages[%zu].name: expected a string, got %s", i,
                             oai_request_field_type_name(name));
    const json_t *calls = json_object_get(m, "tool_calls");
    if (calls && !json_is_null(calls))
        return check_tool_calls(c, i, calls);
    return 0;
}

/* parse_messages: "messages", a non-empty array of valid messages. */
static int parse_messages(const struct oai_ctx *c, struct oai_request *r)
{
    const json_t *v = oai_request_field_get(c, "messages");
    if (!v)
        return oai_error_set(c->err, 400, "messages", "messages: field required");
    if (!json_is_array(v))
        return oai_request_field_type_error(c, "messages", "messages", "an array", v);
    if (json_array_size(v) == 0)
        return oai_error_set(c->err, 400, "messages", "messages: must not be empty");
    for (size_t i = 0; i < json_array_size(v); i++) {
        int rc = check_message(c, i, json_array_get(v, i));
        if (rc)
            return rc;
    }
    r->messages = v;
    return 0;
}

/* parse_template_fields: what the chat template gets besides the messages. */
static int parse_template_fields(const struct oai_ctx *c, struct oai_request *r)
{
    int rc;
    r->add_special_tokens = false;
    if ((rc = oai_request_field_bool(c, "add_generation_prompt", &r->add_generation_prompt)) < 0 ||
        (rc = oai_request_field_bool(c, "continue_final_message", &r->continue_final_message)) <
            0 ||
        (rc = oai_request_field_bool(c, "add_special_tokens", &r->add_special_tokens)) < 0 ||
        (rc = oai_request_field_object(c, "chat_template_kwargs", &r->chat_template_kwargs)) < 0 ||
        (rc = oai_request_field_str(c, "chat_template", &r->chat_template)) < 0)
        return rc;
    if (r->add_generation_prompt && r->continue_final_message)
        return oai_error_set(c->err, 400, "continue_final_message",
                             "continue_final_message: cannot be true while add_generation_prompt "
                             "is true (set add_generation_prompt to false)");
    if (rc == 1 && !c->lim->trust_request_chat_template)
        return oai_error_set(c->err, 400, "chat_template",
                             "chat_template: a chat template in the request is refused; start the "
                             "server with --trust-request-chat-template to allow it");
    return 0;
}

/* parse_tool_choice: tool_choice is "none", "auto", "required" or {"type": "function", ...};
 * anything but "none" needs tools (and tools are refused before this is reached). */
static int parse_tool_choice(const struct oai_ctx *c)
{
    const json_t *v = oai_request_field_get(c, "tool_choice");
    bool b;
    int rc = oai_request_field_bool(c, "parallel_tool_calls", &b);
    if (rc < 0 || !v)
        return rc < 0 ? rc : 0;
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        struct str t = {s, json_string_length(v)};
        if (str_eq_cstr(t, "none"))
            return 0;
        if (!str_eq_cstr(t, "auto") && !str_eq_cstr(t, "required")) {
            return oai_error_set(c->err, 400, "tool_choice",
                                 "tool_choice: must be \"none\", \"auto\", \"required\" or an "
                                 "object naming a function, got \"%.*s\"",
                                 oai_request_clip(t), s);
        }
    } else if (!json_is_object(v)) {
        return oai_request_field_type_error(c, "tool_choice", "tool_choice",
                                            "a string or an object", v);
    }
    return oai_error_set(c->err, 400, "tool_choice", "tool_choice: requires tools");
}

/* parse_tools: tools ([] -> 400), functions and function_call: a later release. */
static int parse_tools(const struct oai_ctx *c)
{
    const json_t *v = oai_request_field_get(c, "tools");
    if (v && !json_is_array(v))
        return oai_request_field_type_error(c, "tools", "tools", "an array", v);
    if (v && json_array_size(v) == 0)
        return oai_error_set(c->err, 400, "tools", "tools: must not be empty");
    if (v)
        return oai_error_set(c->err, 400, "tools", "tools: tool calling" LATER);
    if (oai_request_field_get(c, "functions"))
        return oai_error_set(c->err, 400, "functions", "functions: function calling" LATER);
    if (oai_request_field_get(c, "function_call"))
        return oai_error_set(c->err, 400, "function_call", "function_call: function calling" LATER);
    return parse_tool_choice(c);
}

/* parse_chat_logprobs: logprobs (bool) and top_logprobs (0..max, needs logprobs). */
static int parse_chat_logprobs(const struct oai_ctx *c, struct oai_request *r)
{
    bool lp = false;
    int64_t top = 0;
    int rc;
    if ((rc = oai_request_field_bool(c, "logprobs", &lp)) < 0 ||
        (rc = oai_request_field_int(c, "top_logprobs", 0, c->lim->max_logprobs, &top)) < 0)
        return rc;
    if (top > 0 && !lp)
        return oai_error_set(c->err, 400, "top_logprobs",
                             "top_logprobs: requires logprobs to be true");
    r->sp.logprobs = lp ? (int32_t)top : -1;
    return 0;
}

int oai_request_chat_parse(const struct oai_ctx *c, struct oai_request *r)
{
    int rc;
    if ((rc = parse_messages(c, r)) || (rc = parse_template_fields(c, r)) ||
        (rc = oai_request_field_bool(c, "echo", &r->echo)) < 0 ||
        (rc = parse_chat_logprobs(c, r)) || (rc = parse_tools(c)))
        return rc;
    return 0;
}

/* check_response_format: {"type": "text"} passes; json_object / json_schema are later. */
static int check_response_format(const struct oai_ctx *c)
{
    const json_t *v;
    int rc = oai_request_field_object(c, "response_format", &v);
    if (rc <= 0)
        return rc;
    const json_t *type = json_object_get(v, "type");
    if (!json_is_string(type))
        return oai_error_set(c->err, 400, "response_format",
                             "response_format.type: expected a string, got %s",
                             type ? oai_request_field_type_name(type) : "nothing");
    struct str t = {json_string_value(type), json_string_length(type)};
    if (str_eq_cstr(t, "text"))
        return 0;
    if (str_eq_cstr(t, "json_object") || str_eq_cstr(t, "json_schema") ||
        str_eq_cstr(t, "structural_tag"))
        return oai_error_set(c->err, 400, "response_format", "response_format: type \"%.*s\"" LATER,
                             (int)t.n, t.p);
    return oai_error_set(c->err, 400, "response_format",
                         "response_format.type: must be \"text\", \"json_object\" or "
                         "\"json_schema\", got \"%.*s\"",
                         oai_request_clip(t), t.p);
}

int oai_request_chat_unsupported(const struct oai_ctx *c)
{
    static const char *const keys[] = {"structured_outputs", "guided_json", "guided_regex",
                                       "guided_choice", "guided_grammar"};
    int rc = check_response_format(c);
    if (rc)
        return rc;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (oai_request_field_get(c, keys[i]))
            return oai_error_set(c->err, 400, keys[i], "%s: structured output" LATER, keys[i]);
    }
    return 0;
}

/* tokenize_tools: tools for the template: an array of objects. */
static int tokenize_tools(const struct oai_ctx *c, struct oai_request *r)
{
    const json_t *v = oai_request_field_get(c, "tools");
    if (!v)
        return 0;
    if (!json_is_array(v))
        return oai_request_field_type_error(c, "tools", "tools", "an array", v);
    for (size_t i = 0; i < json_array_size(v); i++) {
        const json_t *t = json_array_get(v, i);
        if (!json_is_object(t))
            return oai_error_set(c->err, 400, "tools", "tools[%zu]: expected an object, got %s", i,
                                 oai_request_field_type_name(t));
    }
    r->tools = v;
    return 0;
}

int oai_request_chat_tokenize(const struct oai_ctx *c, struct oai_request *r)
{
    int rc = oai_request_field_bool(c, "return_token_strs", &r->return_token_strs);
    if (rc < 0)
        return rc;
    if (oai_request_field_get(c, "messages")) {
        if ((rc = parse_messages(c, r)) || (rc = parse_template_fields(c, r)))
            return rc;
        return tokenize_tools(c, r);
    }
    const json_t *v = oai_request_field_get(c, "prompt");
    if (!v)
        return oai_error_set(c->err, 400, "prompt", "prompt: field required (or messages)");
    if (!json_is_string(v))
        return oai_request_field_type_error(c, "prompt", "prompt", "a string", v);
    struct oai_prompt *p = arena_calloc(c->a, 1, sizeof *p);
    if (!p)
        return oai_request_field_nomem(c);
    p->text = (struct str){json_string_value(v), json_string_length(v)};
    r->prompts = p;
    r->n_prompts = 1;
    r->add_special_tokens = true;
    rc = oai_request_field_bool(c, "add_special_tokens", &r->add_special_tokens);
    return rc < 0 ? rc : 0;
}
