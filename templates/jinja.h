/*
 * jinja: a Jinja2 template interpreter, as transformers' apply_chat_template runs jinja2
 * (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loop controls, the
 * {% generation %} tag, tojson without HTML escaping, raise_exception, strftime_now).
 *
 * jinja_compile parses a template once into an immutable struct jinja_template that any
 * number of threads may render at the same time. jinja_render evaluates it with a set of
 * variables; every value of one render lives in that render's arena, which bounds its
 * memory. Output size, evaluation steps and recursion depth are bounded too: exceeding a
 * limit is an error, never a crash or a hang.
 *
 * Errors read like jinja2's: "TemplateSyntaxError: ... (line N)", "UndefinedError: 'x' is
 * undefined", "TypeError: can only concatenate str (not \"NoneType\") to str",
 * "TemplateError: <raise_exception message>".
 */
#ifndef KILN_JINJA_H
#define KILN_JINJA_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

struct jinja_template;
struct json_t;

/* jinja_compile: compiles src[0..n). Returns 0 and *out (free with jinja_free), or
 * ERR_PARSE (err holds the TemplateSyntaxError with its line), ERR_LIMIT, ERR_NOMEM. */
int jinja_compile(const char *src, size_t n, struct jinja_template **out, char *err, size_t errlen);
void jinja_free(struct jinja_template *t);

struct jinja_limits {
    size_t max_output;  /* bytes of output (0: 16 MiB) */
    size_t max_memory;  /* bytes of values (0: 64 MiB) */
    uint64_t max_steps; /* evaluation steps (0: 10 million) */
    int max_depth;      /* nesting of calls, values and expressions (0: 200) */
};

/* jinja_render: renders t with the variables of vars (a JSON object: each key is a
 * variable; vars must outlive the call) and appends the text to out. now
 * ("YYYY-MM-DDTHH:MM:SS") fixes the clock strftime_now reads; NULL uses the real clock.
 * Returns 0, or ERR_INVAL (err holds the template's error: "ExceptionClass: message"),
 * ERR_LIMIT (a limit was exceeded; err says which). On error out may hold a prefix. */
int jinja_render(const struct jinja_template *t, const struct json_t *vars, const char *now,
                 const struct jinja_limits *limits, struct buf *out, char *err, size_t errlen);

#endif
