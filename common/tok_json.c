/* tok_json: JSON helpers of the tokenizer loader (see tok_json.h). */
#include "tok_json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "utf8.h"

int tok_json_fail(struct tok_loader *L, int code, const char *path, const char *fmt, ...)
{
    if (L->err && L->errlen) {
        int n = snprintf(L->err, L->errlen, "%s: %s: ", L->file, path);
        if (n >= 0 && (size_t)n < L->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(L->err + n, L->errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return code;
}

char *tok_json_dup(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

int tok_json_str(struct tok_loader *L, const json_t *obj, const char *key, const char *path,
                 bool required, const char **s, size_t *n)
{
    const json_t *v = json_object_get(obj, key);
    *s = NULL;
    if (n)
        *n = 0;
    if (!v || json_is_null(v)) {
        if (required)
            return tok_json_fail(L, ERR_PARSE, path, "missing field \"%s\"", key);
        return 0;
    }
    if (!json_is_string(v))
        return tok_json_fail(L, ERR_PARSE, path, "\"%s\" must be a string", key);
    *s = json_string_value(v);
    if (n)
        *n = json_string_length(v);
    return 0;
}

int tok_json_bool(struct tok_loader *L, const json_t *obj, const char *key, const char *path,
                  bool def, bool *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_boolean(v))
        return tok_json_fail(L, ERR_PARSE, path, "\"%s\" must be true or false", key);
    *out = json_is_true(v);
    return 0;
}

int tok_json_uint(struct tok_loader *L, const json_t *obj, const char *key, const char *path,
                  uint64_t def, uint64_t max, uint64_t *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        (uint64_t)json_integer_value(v) > max)
        return tok_json_fail(L, ERR_PARSE, path, "\"%s\" must be an integer in [0, %llu]", key,
                             (unsigned long long)max);
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

int tok_json_char(struct tok_loader *L, const json_t *obj, const char *key, const char *path,
                  uint32_t *cp, char enc[4], size_t *enc_n)
{
    const char *s;
    size_t n;
    int rc = tok_json_str(L, obj, key, path, true, &s, &n);
    if (rc)
        return rc;
    size_t l = n ? utf8_decode(s, n, cp) : 0;
    if (!l || l != n)
        return tok_json_fail(L, ERR_PARSE, path, "\"%s\" must be exactly one character", key);
    memcpy(enc, s, l);
    *enc_n = l;
    return 0;
}

int tok_json_type(struct tok_loader *L, const json_t *obj, const char *path, const char **type)
{
    if (!json_is_object(obj))
        return tok_json_fail(L, ERR_PARSE, path, "expected an object");
    return tok_json_str(L, obj, "type", path, true, type, NULL);
}

int tok_json_pattern(struct tok_loader *L, const json_t *obj, const char *key, const char *path,
                     struct tok_pattern *p)
{
    const json_t *v = json_object_get(obj, key);
    const json_t *str = json_object_get(v, "String"), *re = json_object_get(v, "Regex");
    const json_t *which = str ? str : re;
    if (!json_is_object(v) || !json_is_string(which) || json_object_size(v) != 1)
        return tok_json_fail(L, ERR_PARSE, path,
                             "\"%s\" must be {\"String\": \"...\"} or {\"Regex\": \"...\"}", key);
    char msg[256];
    int rc = tok_pattern_compile(p, json_string_value(which), json_string_length(which),
                                 which == re, msg, sizeof msg);
    if (rc)
        return tok_json_fail(L, rc, path, "bad regex in \"%s\": %s", key, msg);
    return 0;
}
