/* chat_template: apply_chat_template in C (see chat_template.h). */
#include "chat_template.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

static int compile_named(struct jinja_template **out, const json_t *src, const char *name,
                         char *err, size_t errlen)
{
    char e[512];
    int rc = jinja_compile(json_string_value(src), json_string_length(src), out, e, sizeof e);
    if (rc)
        snprintf(err, errlen, "chat_template %s: %s", name, e);
    return rc;
}

int chat_templates_load_config(struct chat_templates *ct, const json_t *config, char *err,
                               size_t errlen)
{
    memset(ct, 0, sizeof *ct);
    const json_t *tpl = json_object_get(config, "chat_template");
    if (!tpl || json_is_null(tpl))
        return 0;
    if (json_is_string(tpl))
        return compile_named(&ct->def, tpl, "(default)", err, errlen);
    if (!json_is_array(tpl)) {
        snprintf(err, errlen, "chat_template: expected a string or a list of {name, template}");
        return ERR_PARSE;
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < json_array_size(tpl); i++) {
        const json_t *e = json_array_get(tpl, i);
        const char *name = json_string_value(json_object_get(e, "name"));
        const json_t *src = json_object_get(e, "template");
        if (!name || !json_is_string(src)) {
            snprintf(err, errlen, "chat_template[%zu]: expected {\"name\": ..., \"template\": ...}",
                     i);
            rc = ERR_PARSE;
        } else if (strcmp(name, "default") == 0 && !ct->def) {
            rc = compile_named(&ct->def, src, name, err, errlen);
        } else if (strcmp(name, "tool_use") == 0 && !ct->tool_use) {
            rc = compile_named(&ct->tool_use, src, name, err, errlen);
        }
    }
    if (rc)
        chat_templates_deinit(ct);
    return rc;
}

int chat_templates_load_file(struct chat_templates *ct, const char *path, char *err, size_t errlen)
{
    memset(ct, 0, sizeof *ct);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open", path);
        return ERR_IO;
    }
    struct buf b;
    buf_init(&b, 4u << 20);
    char chunk[65536];
    size_t k;
    int rc = 0;
    while (rc == 0 && (k = fread(chunk, 1, sizeof chunk, f)) > 0)
        rc = buf_append(&b, chunk, k);
    fclose(f);
    char e[512] = "";
    if (rc == 0)
        rc = jinja_compile(b.p, b.n, &ct->def, e, sizeof e);
    else
        snprintf(e, sizeof e, "template file too large");
    if (rc)
        snprintf(err, errlen, "%s: %s", path, e);
    buf_deinit(&b);
    return rc;
}

void chat_templates_deinit(struct chat_templates *ct)
{
    jinja_free(ct->def);
    jinja_free(ct->tool_use);
    memset(ct, 0, sizeof *ct);
}

const struct jinja_template *chat_templates_pick(const struct chat_templates *ct, bool has_tools)
{
    if (has_tools && ct->tool_use)
        return ct->tool_use;
    return ct->def ? ct->def : ct->tool_use;
}

/* ---- normalization ---- */

static int join_text_parts(json_t *msg, const json_t *content, char *err, size_t errlen, size_t i)
{
    struct buf b;
    buf_init(&b, 0);
    int rc = 0;
    size_t n = 0;
    for (size_t k = 0; rc == 0 && k < json_array_size(content); k++) {
        const json_t *part = json_array_get(content, k);
        const char *type = json_string_value(json_object_get(part, "type"));
        const json_t *text = json_object_get(part, "text");
        if (type && strcmp(type, "text") != 0)
            continue; /* images and other parts reach a text model as nothing */
        if (!json_is_string(text)) {
            snprintf(err, errlen, "messages[%zu].content[%zu]: a text part needs \"text\"", i, k);
            rc = ERR_INVAL;
            break;
        }
        if (n++ && (rc = buf_append_byte(&b, '\n')))
            break;
        rc = buf_append(&b, json_string_value(text), json_string_length(text));
    }
    if (rc == 0 && json_object_set_new(msg, "content", json_stringn(b.p, b.n)))
        rc = ERR_NOMEM;
    buf_deinit(&b);
    return rc;
}

static int parse_arguments(json_t *msg, char *err, size_t errlen, size_t i)
{
    json_t *calls = json_object_get(msg, "tool_calls");
    for (size_t k = 0; k < json_array_size(calls); k++) {
        json_t *fn = json_object_get(json_array_get(calls, k), "function");
        const json_t *args = json_object_get(fn, "arguments");
        if (!json_is_string(args))
            continue;
        json_error_t je;
        json_t *parsed =
            json_loadb(json_string_value(args), json_string_length(args), JSON_DECODE_ANY, &je);
        if (!parsed) {
            snprintf(err, errlen, "messages[%zu].tool_calls[%zu].function.arguments: not JSON: %s",
                     i, k, je.text);
            return ERR_INVAL;
        }
        json_object_set_new(fn, "arguments", parsed);
    }
    return 0;
}

int chat_messages_normalize(const json_t *messages, json_t **out, char *err, size_t errlen)
{
    json_t *copy = json_deep_copy(messages);
    if (!copy)
        return ERR_NOMEM;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < json_array_size(copy); i++) {
        json_t *msg = json_array_get(copy, i);
        if (!json_is_object(msg)) {
            snprintf(err, errlen, "messages[%zu]: expected an object", i);
            rc = ERR_INVAL;
            break;
        }
        const json_t *content = json_object_get(msg, "content");
        if (json_is_array(content))
            rc = join_text_parts(msg, content, err, errlen, i);
        const char *role = json_string_value(json_object_get(msg, "role"));
        if (rc == 0 && role && strcmp(role, "assistant") == 0)
            rc = parse_arguments(msg, err, errlen, i);
    }
    if (rc) {
        json_decref(copy);
        return rc;
    }
    *out = copy;
    return 0;
}

/* ---- rendering ---- */

/* trim_to_final: transformers' continue_final_message: cut the prompt right after the
 * final message's text, so that the model continues it. */
static int trim_to_final(const json_t *messages, struct buf *out, size_t start, char *err,
                         size_t errlen)
{
    const json_t *last = json_array_get(messages, json_array_size(messages) - 1);
    const json_t *c = json_object_get(last, "content");
    for (size_t k = json_array_size(c); json_is_array(c) && k-- > 0;) {
        const json_t *t = json_object_get(json_array_get(c, k), "text");
        if (json_is_string(t)) {
            c = t;
            break;
        }
    }
    if (!json_is_string(c)) {
        snprintf(err, errlen,
                 "continue_final_message is set but we could not find any text to "
                 "continue in the final message!");
        return ERR_INVAL;
    }
    const char *m = json_string_value(c);
    size_t n = json_string_length(c), a = 0, b = n;
    while (a < b && strchr(" \t\n\r\f\v", m[a]))
        a++;
    while (b > a && strchr(" \t\n\r\f\v", m[b - 1]))
        b--;
    const char *text = out->p + start, *hit = NULL;
    size_t tn = out->n - start;
    for (size_t i = tn + 1; i-- > 0 && b - a <= tn;) /* rindex of the stripped message */
        if (i + (b - a) <= tn && memcmp(text + i, m + a, b - a) == 0) {
            hit = text + i;
            break;
        }
    if (!hit) {
        snprintf(err, errlen,
                 "continue_final_message is set but the final message does not "
                 "appear in the chat after applying the chat template!");
        return ERR_INVAL;
    }
    size_t loc = (size_t)(hit - out->p), keep = n - a; /* len(final_message.lstrip()) */
    if (!(loc + keep <= out->n && memcmp(out->p + loc, m + a, keep) == 0))
        keep = b - a;
    if (loc + keep < out->n) { /* (an empty buffer may be the shared read-only "") */
        out->n = loc + keep;
        out->p[out->n] = 0;
    }
    return 0;
}

int chat_template_render(const struct jinja_template *t, const struct chat_input *in,
                         const struct jinja_limits *limits, struct buf *out, char *err,
                         size_t errlen)
{
    if (in->add_generation_prompt && in->continue_final_message) {
        snprintf(err, errlen,
                 "continue_final_message and add_generation_prompt are not "
                 "compatible");
        return ERR_INVAL;
    }
    json_t *msgs = NULL, *vars = json_object();
    int rc = vars ? 0 : ERR_NOMEM;
    if (rc == 0 && in->normalize)
        rc = chat_messages_normalize(in->messages, &msgs, err, errlen);
    else if (rc == 0)
        msgs = json_incref((json_t *)in->messages);
    const char *k;
    json_t *v;
    if (rc == 0 && in->extra)
        json_object_foreach((json_t *)in->extra, k, v) json_object_set(vars, k, v);
    if (rc == 0 &&
        (json_object_set(vars, "messages", msgs) ||
         json_object_set_new(vars, "tools",
                             in->tools ? json_incref((json_t *)in->tools) : json_null()) ||
         json_object_set_new(vars, "documents",
                             in->documents ? json_incref((json_t *)in->documents) : json_null()) ||
         json_object_set_new(vars, "add_generation_prompt",
                             json_boolean(in->add_generation_prompt))))
        rc = ERR_NOMEM;
    size_t start = out->n;
    if (rc == 0)
        rc = jinja_render(t, vars, in->now, limits, out, err, errlen);
    if (rc == 0 && in->continue_final_message)
        rc = trim_to_final(msgs, out, start, err, errlen);
    json_decref(msgs);
    json_decref(vars);
    return rc;
}
