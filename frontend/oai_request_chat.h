/*
 * oai_request_chat: the chat side of oai_request (internal to oai_request*.c): the
 * messages (validated for the chat template), the template fields, the chat-only fields,
 * /tokenize, and the refusal of the features of a later release (tools, structured
 * outputs). Errors as in oai_request_field.h. Pure functions; any thread.
 */
#ifndef KILN_OAI_REQUEST_CHAT_H
#define KILN_OAI_REQUEST_CHAT_H

#include "frontend/oai_request.h"
#include "frontend/oai_request_field.h"

/* oai_request_chat_parse: messages, add_generation_prompt, continue_final_message,
 * add_special_tokens, chat_template, chat_template_kwargs, echo, logprobs and
 * top_logprobs (into r->sp.logprobs), tools / tool_choice / functions. Returns 0 or
 * ERR_INVAL, ERR_LIMIT, ERR_NOMEM (c->err filled). */
int oai_request_chat_parse(const struct oai_ctx *c, struct oai_request *r);

/* oai_request_chat_unsupported: 400 "... not supported yet" for response_format other than
 * {"type": "text"}, structured_outputs and guided_json / _regex / _choice / _grammar;
 * 0 when none is given. */
int oai_request_chat_unsupported(const struct oai_ctx *c);

/* oai_request_chat_tokenize: the body of /tokenize: {messages, ...} or {prompt, ...}. */
int oai_request_chat_tokenize(const struct oai_ctx *c, struct oai_request *r);

#endif
