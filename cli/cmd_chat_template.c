/*
 * cmd_chat_template: `kiln chat-template render TEMPLATE_FILE INPUT_JSON` renders a chat
 * template exactly as transformers' apply_chat_template (the reference_render.py of the
 * fixtures) does: prints the text with nothing added and exits 0, or prints the error
 * ("ExceptionClass: message") and exits 1. INPUT_JSON: {"messages": [...], "tools": [...],
 * "documents": [...], "add_generation_prompt": bool, any other variable...; keys starting
 * with "_" are not variables ("_now" fixes strftime_now's clock)}.
 */
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "common/buf.h"
#include "common/cfg.h"
#include "common/err.h"
#include "templates/chat_template.h"

struct ct_opts {
    bool normalize;
    bool continue_final;
    bool batch;
};

static const struct cfg_flag ct_flags[] = {
    {"normalize", CFG_BOOL, offsetof(struct ct_opts, normalize), "false", 1, 0, NULL,
     "normalize messages as the server does (join text parts, parse tool-call arguments)"},
    {"continue-final-message", CFG_BOOL, offsetof(struct ct_opts, continue_final), "false", 1, 0,
     NULL, "end the prompt inside the last message (transformers continue_final_message)"},
    {"batch", CFG_BOOL, offsetof(struct ct_opts, batch), "false", 1, 0, NULL,
     "INPUT_JSON is an array of inputs (- for stdin); print a JSON array of {\"text\"} or "
     "{\"error\"}, one per input, compiling the template once"},
};

#define USAGE "usage: kiln chat-template render TEMPLATE_FILE INPUT_JSON [flags]"

/* render_one: renders one input object; 0 with the text in out, else the error in err. */
static int render_one(const struct chat_templates *ct, const json_t *in, const struct ct_opts *o,
                      struct buf *out, char *err, size_t errlen)
{
    if (!json_is_object(in) || !json_is_array(json_object_get(in, "messages"))) {
        snprintf(err, errlen, "input: expected an object with a \"messages\" array");
        return ERR_INVAL;
    }
    json_t *extra = json_object();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)in, k, v)
    {
        if (k[0] != '_' && strcmp(k, "messages") && strcmp(k, "tools") && strcmp(k, "documents") &&
            strcmp(k, "add_generation_prompt"))
            json_object_set(extra, k, v);
    }
    const json_t *tools = json_object_get(in, "tools"), *docs = json_object_get(in, "documents");
    struct chat_input ci = {
        .messages = json_object_get(in, "messages"),
        .tools = json_is_null(tools) ? NULL : tools,
        .documents = json_is_null(docs) ? NULL : docs,
        .add_generation_prompt = json_is_true(json_object_get(in, "add_generation_prompt")),
        .continue_final_message = o->continue_final,
        .extra = extra,
        .now = json_string_value(json_object_get(in, "_now")),
        .normalize = o->normalize,
    };
    const struct jinja_template *t = chat_templates_pick(ct, tools && !json_is_null(tools));
    int rc = chat_template_render(t, &ci, NULL, out, err, errlen);
    json_decref(extra);
    return rc;
}

static int render(const char *tpl_path, const char *input_path, const struct ct_opts *o)
{
    char err[1024] = "";
    struct chat_templates ct;
    int lrc = chat_templates_load_file(&ct, tpl_path, err, sizeof err);
    const char *e = strstr(err, "Template") ? strstr(err, "Template") : err;
    if (lrc && o->batch && lrc != ERR_IO) { /* one error per input, as a render would give */
        json_error_t je;
        json_t *in = strcmp(input_path, "-") == 0 ? json_loadf(stdin, 0, &je)
                                                  : json_load_file(input_path, 0, &je);
        json_t *res = json_array();
        for (size_t i = 0; i < json_array_size(in); i++)
            json_array_append_new(res, json_pack("{s:s}", "error", e));
        json_dumpf(res, stdout, JSON_COMPACT | JSON_ENSURE_ASCII);
        json_decref(res);
        json_decref(in);
        return 0;
    }
    if (lrc) {
        fprintf(stderr, "%s\n", e);
        return 1;
    }
    json_error_t je;
    json_t *in = strcmp(input_path, "-") == 0 ? json_loadf(stdin, JSON_ALLOW_NUL, &je)
                                              : json_load_file(input_path, JSON_ALLOW_NUL, &je);
    if (!in) {
        fprintf(stderr, "kiln: %s: %s\n", input_path, je.text);
        chat_templates_deinit(&ct);
        return 1;
    }
    struct buf out;
    buf_init(&out, 0);
    int rc = 0;
    if (o->batch) { /* an array in, an array of results out */
        json_t *res = json_array();
        for (size_t i = 0; i < json_array_size(in); i++) {
            buf_reset(&out);
            err[0] = 0;
            int r = render_one(&ct, json_array_get(in, i), o, &out, err, sizeof err);
            json_t *item =
                r ? json_pack("{s:s}", "error", err) : json_pack("{s:s%}", "text", out.p, out.n);
            json_array_append_new(res, item ? item : json_pack("{s:s}", "error", "not UTF-8"));
        }
        json_dumpf(res, stdout, JSON_COMPACT | JSON_ENSURE_ASCII);
        json_decref(res);
    } else {
        rc = render_one(&ct, in, o, &out, err, sizeof err);
        if (rc == 0)
            fwrite(out.p, 1, out.n, stdout);
        else
            fprintf(stderr, "%s\n", err);
    }
    buf_deinit(&out);
    json_decref(in);
    chat_templates_deinit(&ct);
    return rc ? 1 : 0;
}

int cmd_chat_template(int argc, char **argv)
{
    struct ct_opts o;
    char *pos[3] = {NULL, NULL, NULL};
    int npos = 0;
    char err[256];
    int rc = cfg_parse(ct_flags, sizeof ct_flags / sizeof *ct_flags, &o, argc, argv, pos, 3, &npos,
                       err, sizeof err);
    if (rc == CFG_HELP) {
        cfg_print_help(stdout, USAGE, ct_flags, sizeof ct_flags / sizeof *ct_flags);
        return 0;
    }
    if (rc == 0 && (npos != 3 || strcmp(pos[0], "render") != 0)) {
        snprintf(err, sizeof err, "expected: render TEMPLATE_FILE INPUT_JSON");
        rc = ERR_INVAL;
    }
    if (rc) {
        fprintf(stderr, "kiln: %s\n", err);
        cfg_print_help(stderr, USAGE, ct_flags, sizeof ct_flags / sizeof *ct_flags);
        return 2;
    }
    return render(pos[1], pos[2], &o);
}
