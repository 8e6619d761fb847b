/*
 * chat_template: OpenAI messages (+ tools) -> a prompt string through a model's Jinja2 chat
 * template, as Hugging Face transformers' apply_chat_template does it (the variables it
 * passes, continue_final_message), with vLLM's message normalization available for the
 * server (text content parts joined, tool-call arguments given as JSON strings parsed).
 *
 * The template comes from tokenizer_config.json's "chat_template" (a string, or a list of
 * {"name", "template"} where "tool_use" is chosen when tools are given and "default"
 * otherwise) or from a file. A struct chat_templates is immutable once loaded; renders may
 * run on any threads at once.
 */
#ifndef KILN_CHAT_TEMPLATE_H
#define KILN_CHAT_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"
#include "jinja.h"

struct json_t;

struct chat_templates {
    struct jinja_template *def;      /* the default template, or NULL when there is none */
    struct jinja_template *tool_use; /* the tool_use template, or NULL */
};

/* chat_templates_load_config: compiles the chat template(s) of a tokenizer_config.json
 * object. No "chat_template" key is not an error (both stay NULL). Returns 0, ERR_PARSE
 * (err: which template and why), ERR_NOMEM. Free with chat_templates_deinit. */
int chat_templates_load_config(struct chat_templates *ct, const struct json_t *config, char *err,
                               size_t errlen);
/* chat_templates_load_file: compiles a template file (--chat-template) as the default. */
int chat_templates_load_file(struct chat_templates *ct, const char *path, char *err, size_t errlen);
void chat_templates_deinit(struct chat_templates *ct);
/* chat_templates_pick: the template for a request (tool_use when tools and it exists). */
const struct jinja_template *chat_templates_pick(const struct chat_templates *ct, bool has_tools);

struct chat_input {
    const struct json_t *messages;  /* array of message objects */
    const struct json_t *tools;     /* array, or NULL (passed as None) */
    const struct json_t *documents; /* array, or NULL (passed as None) */
    bool add_generation_prompt;
    bool continue_final_message; /* end the prompt inside the last (assistant) message */
    const struct json_t *extra; /* object: bos_token, eos_token, chat_template_kwargs...; or NULL */
    const char *now;            /* fixed clock for strftime_now, or NULL */
    bool normalize;             /* vLLM's message normalization (see the header) */
};

/* chat_template_render: renders the prompt into out. Returns 0; ERR_INVAL with the
 * template's error in err ("TemplateError: ...", "TypeError: ..."), or a bad input
 * (continue_final_message without a final message to continue); ERR_LIMIT; ERR_NOMEM. */
int chat_template_render(const struct jinja_template *t, const struct chat_input *in,
                         const struct jinja_limits *limits, struct buf *out, char *err,
                         size_t errlen);

/* chat_messages_normalize: vLLM's normalization of OpenAI messages into a new array (the
 * caller decrefs it): content given as a list of text parts becomes their texts joined
 * with "\n"; an assistant's tool_calls[].function.arguments given as a JSON string becomes
 * the parsed object. Returns 0, ERR_INVAL (err says which message), ERR_NOMEM. */
int chat_messages_normalize(const struct json_t *messages, struct json_t **out, char *err,
                            size_t errlen);

#endif
