/*
 * libFuzzer driver: template source. Any bytes must compile or fail with a message; a
 * template that compiles is rendered with a small conversation under tight limits, which
 * must end in text or an error, never a crash, a leak or a hang.
 */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "templates/jinja.h"

static json_t *vars;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    vars = json_loads("{\"messages\": [{\"role\": \"system\", \"content\": \"sys\"}, "
                      "{\"role\": \"user\", \"content\": \"hi <b> é\"}, "
                      "{\"role\": \"assistant\", \"content\": null, \"tool_calls\": "
                      "[{\"function\": {\"name\": \"f\", \"arguments\": {\"a\": [1, 2.5]}}}]}], "
                      "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}], "
                      "\"add_generation_prompt\": true, \"bos_token\": \"<s>\"}",
                      0, NULL);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct jinja_template *t;
    char err[512];
    if (jinja_compile((const char *)data, size, &t, err, sizeof err) != 0)
        return 0;
    struct jinja_limits lim = {
        .max_output = 1 << 16, .max_memory = 8 << 20, .max_steps = 20000, .max_depth = 64};
    struct buf out;
    buf_init(&out, 0);
    jinja_render(t, vars, "2025-01-15T10:30:00", &lim, &out, err, sizeof err);
    buf_deinit(&out);
    jinja_free(t);
    return 0;
}
