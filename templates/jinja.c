/* jinja: compile and free (see jinja.h); rendering is in jinja_eval.c. */
#include "jinja.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "jinja_internal.h"

#define MAX_TEMPLATE_BYTES (4u << 20)

int jinja_compile(const char *src, size_t n, struct jinja_template **out, char *err, size_t errlen)
{
    *out = NULL;
    if (err && errlen)
        err[0] = 0;
    if (n > MAX_TEMPLATE_BYTES) {
        if (err && errlen)
            snprintf(err, errlen, "TemplateSyntaxError: template larger than %u bytes",
                     MAX_TEMPLATE_BYTES);
        return ERR_LIMIT;
    }
    struct jinja_template *t = calloc(1, sizeof *t);
    if (!t)
        return ERR_NOMEM;
    arena_init(&t->arena, (size_t)256 << 20, 64 << 10);
    struct jtokens toks = {0};
    int rc = jinja_lex(&t->arena, src, n, &toks, err, errlen);
    if (rc == 0)
        rc = jinja_parse(t, &toks, err, errlen);
    free(toks.v);
    if (rc) {
        if (rc == ERR_NOMEM && err && errlen && !err[0])
            snprintf(err, errlen, "MemoryError: out of memory");
        jinja_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void jinja_free(struct jinja_template *t)
{
    if (!t)
        return;
    arena_deinit(&t->arena);
    free(t);
}
