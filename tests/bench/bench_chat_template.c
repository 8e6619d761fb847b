/*
 * bench_chat_template: time to render one chat request with kiln's Jinja2 interpreter
 * (the template compiled once, rendered many times; each render converts the request JSON
 * into template values, as a server does per request).
 *
 *   bench_chat_template TEMPLATE_FILE REQUEST_JSON [SECONDS]
 *
 * Prints one line: us_per_render=... renders=... bytes=...; the rendered text goes to
 * REQUEST_JSON.kiln.out for the caller to compare with jinja2's.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "templates/chat_template.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_chat_template TEMPLATE_FILE REQUEST_JSON [SECONDS]\n");
        return 2;
    }
    double secs = argc > 3 ? atof(argv[3]) : 2.0;
    char err[1024];
    struct chat_templates ct;
    if (chat_templates_load_file(&ct, argv[1], err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    json_error_t je;
    json_t *req = json_load_file(argv[2], 0, &je);
    if (!req) {
        fprintf(stderr, "%s: %s\n", argv[2], je.text);
        return 1;
    }
    json_t *extra = json_pack("{s:O, s:O}", "bos_token", json_object_get(req, "bos_token"),
                              "eos_token", json_object_get(req, "eos_token"));
    struct chat_input in = {.messages = json_object_get(req, "messages"),
                            .tools = json_object_get(req, "tools"),
                            .add_generation_prompt = true,
                            .extra = extra,
                            .now = json_string_value(json_object_get(req, "_now"))};
    const struct jinja_template *t = chat_templates_pick(&ct, true);
    struct buf out;
    buf_init(&out, 0);
    long renders = 0;
    double best = 1e30, start = now();
    while (now() - start < secs) {
        double a = now();
        for (int i = 0; i < 50; i++) { /* batches of 50: the clock is read rarely */
            buf_reset(&out);
            if (chat_template_render(t, &in, NULL, &out, err, sizeof err)) {
                fprintf(stderr, "render: %s\n", err);
                return 1;
            }
        }
        double per = (now() - a) / 50;
        best = per < best ? per : best;
        renders += 50;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s.kiln.out", argv[2]);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(out.p, 1, out.n, f);
        fclose(f);
    }
    printf("us_per_render=%.2f renders=%ld bytes=%zu\n", best * 1e6, renders, out.n);
    buf_deinit(&out);
    json_decref(extra);
    json_decref(req);
    chat_templates_deinit(&ct);
    return 0;
}
