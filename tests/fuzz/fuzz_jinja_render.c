/*
 * libFuzzer driver: render inputs. The first byte picks one of the real chat templates of
 * the fixtures; the rest is the request JSON (messages, tools, variables), parsed with
 * jansson and rendered through chat_template_render, normalized or not. Any input must give
 * text or an error.
 */
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "templates/chat_template.h"

#define MAX_TPL 128
static struct chat_templates tpls[MAX_TPL];
static size_t n_tpl;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *fx = getenv("KILN_FIXTURES");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/templates", fx ? fx : "../shared/fixtures");
    DIR *d = opendir(dir);
    struct dirent *e;
    char names[MAX_TPL][256];
    size_t n = 0;
    while (d && (e = readdir(d)) && n < MAX_TPL)
        if (e->d_name[0] != '.' && strlen(e->d_name) < 200)
            snprintf(names[n++], 256, "%s", e->d_name);
    if (d)
        closedir(d);
    qsort(names, n, 256, (int (*)(const void *, const void *))strcmp);
    for (size_t i = 0; i < n; i++) {
        char path[1500], err[512];
        snprintf(path, sizeof path, "%s/%s/template.jinja", dir, names[i]);
        if (chat_templates_load_file(&tpls[n_tpl], path, err, sizeof err) == 0)
            n_tpl++;
    }
    if (!n_tpl) {
        fprintf(stderr, "fuzz_jinja_render: no templates under %s\n", dir);
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    json_t *in = json_loadb((const char *)data + 1, size - 1, 0, NULL);
    if (!in)
        return 0;
    const json_t *msgs = json_object_get(in, "messages");
    if (json_is_array(msgs)) {
        const json_t *tools = json_object_get(in, "tools");
        struct chat_input ci = {.messages = msgs,
                                .tools = json_is_array(tools) ? tools : NULL,
                                .add_generation_prompt = data[0] & 1,
                                .continue_final_message = (data[0] & 6) == 6,
                                .extra = in,
                                .now = "2025-01-15T10:30:00",
                                .normalize = (data[0] & 2) != 0};
        struct jinja_limits lim = {
            .max_output = 1 << 20, .max_memory = 32 << 20, .max_steps = 200000, .max_depth = 100};
        struct buf out;
        char err[512];
        buf_init(&out, 0);
        chat_template_render(chat_templates_pick(&tpls[(data[0] >> 3) % n_tpl], ci.tools != NULL),
                             &ci, &lim, &out, err, sizeof err);
        buf_deinit(&out);
    }
    json_decref(in);
    return 0;
}
