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
};

static const struct cfg_flag ct_flags[] = {
    {"normalize", CFG_BOOL, offsetof(struct ct_opts, normalize), "false", 1, 0, NULL,
     "normalize messages as the server does (join text parts, parse tool-call arguments)"},
    {"continue-final-message", CFG_BOOL, offsetof(struct ct_opts, continue_final), "false", 1, 0,
     NULL, "end the prompt inside the last message (transformers continue_final_message)"},
};

#define USAGE "usage: kiln chat-template render TEMPLATE_FILE INPUT_JSON [flags]"

static int render(const char *tpl_path, const char *input_path, const struct ct_opts *o)
{
    char err[1024] = "";
    struct chat_templates ct;
    if (chat_templates_load_file(&ct, tpl_path, err, sizeof err)) {
        fprintf(stderr, "%s\n", strstr(err, "TemplateSyntaxError") ? strstr(err, "TemplateSyntaxError") : err);
        return 1;
    }
    json_error_t je;
    json_t *in = json_load_file(input_path, JSON_ALLOW_NUL, &je);
    if (!json_is_object(in) || !json_is_array(json_object_get(in, "messages"))) {
        fprintf(stderr, "kiln: %s: %s\n", input_path,
                in ? "expected an object with a \"messages\" array" : je.text);
        json_decref(in);
        chat_templates_deinit(&ct);
        return 1;
    }
    json_t *extra = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(in, k, v) if (k[0] != '_' && strcmp(k, "messages") && strcmp(k, "tools") &&
                                      strcmp(k, "documents") && strcmp(k, "add_generation_prompt"))
        json_object_set(extra, k, v);
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
    struct buf out;
    buf_init(&out, 0);
    int rc = chat_template_render(chat_templates_pick(&ct, tools && !json_is_null(tools)), &ci,
                                  NULL, &out, err, sizeof err);
    if (rc == 0)
        fwrite(out.p, 1, out.n, stdout);
    else
        fprintf(stderr, "%s\n", err);
    buf_deinit(&out);
    json_decref(extra);
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
    int rc = cfg_parse(ct_flags, sizeof ct_flags / sizeof *ct_flags, &o, argc, argv, pos, 3,
                       &npos, err, sizeof err);
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
