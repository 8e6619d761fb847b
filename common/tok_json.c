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
    if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max)
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

/* ---- reading tokenizer.json member by member ---- */

#define PARSE_FLAGS (JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK | JSON_ALLOW_NUL)

static size_t skip_ws(const char *s, size_t n, size_t i)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* skip_container: the length of the array or object starting at s[i] ('[' or '{'), found
 * by counting brackets outside strings; 0 when it does not end. jansson checks the range
 * itself when it is parsed. */
static size_t skip_container(const char *s, size_t n, size_t i)
{
    size_t depth = 0;
    for (size_t k = i; k < n; k++) {
        char c = s[k];
        if (c == '"') {
            for (k++; k < n && s[k] != '"'; k++)
                if (s[k] == '\\')
                    k++;
        } else if (c == '[' || c == '{') {
            depth++;
        } else if ((c == ']' || c == '}') && --depth == 0) {
            return k + 1 - i;
        }
    }
    return 0;
}

static int syntax_error(struct tok_loader *L, size_t at, const char *what)
{
    return tok_json_fail(L, ERR_PARSE, "(json)", "byte %zu: %s", at, what);
}

/* parse_value: one JSON value at s[*i]; advances *i past it. */
static int parse_value(struct tok_loader *L, const char *s, size_t n, size_t *i, json_t **out)
{
    json_error_t je;
    *out = json_loadb(s + *i, n - *i, PARSE_FLAGS, &je);
    if (!*out)
        return tok_json_fail(L, ERR_PARSE, "(json)", "byte %zu: %s", *i + (size_t)je.position,
                             je.text);
    *i += (size_t)je.position;
    return 0;
}

/* member_fn: handles one member whose value starts at s[*i]; advances *i past the value. */
typedef int (*member_fn)(struct tok_loader *L, json_t *obj, const char *key, size_t *i);

static int scan_object(struct tok_loader *L, json_t *obj, size_t *pos, member_fn fn)
{
    const char *s = L->text;
    size_t n = L->text_n, i = skip_ws(s, n, *pos);
    if (i >= n || s[i] != '{')
        return syntax_error(L, i, "expected an object");
    for (i = skip_ws(s, n, i + 1); i < n && s[i] != '}';) {
        json_t *key;
        int rc =
            s[i] == '"' ? parse_value(L, s, n, &i, &key) : syntax_error(L, i, "expected a key");
        if (rc)
            return rc;
        i = skip_ws(s, n, i);
        if (i >= n || s[i] != ':')
            rc = syntax_error(L, i, "expected ':'");
        if (rc == 0) {
            i = skip_ws(s, n, i + 1);
            rc = fn(L, obj, json_string_value(key), &i);
        }
        json_decref(key);
        if (rc)
            return rc;
        i = skip_ws(s, n, i);
        if (i < n && s[i] == ',')
            i = skip_ws(s, n, i + 1);
        else if (i >= n || s[i] != '}')
            return syntax_error(L, i, "expected ',' or '}'");
    }
    if (i >= n)
        return syntax_error(L, i, "unterminated object");
    *pos = i + 1;
    return 0;
}

static int set_member(struct tok_loader *L, json_t *obj, const char *key, size_t *i)
{
    json_t *v;
    int rc = parse_value(L, L->text, L->text_n, i, &v);
    if (rc == 0 && json_object_set_new(obj, key, v))
        rc = ERR_NOMEM;
    return rc;
}

static int model_member(struct tok_loader *L, json_t *obj, const char *key, size_t *i)
{
    bool vocab = strcmp(key, "vocab") == 0;
    if (!vocab && strcmp(key, "merges") != 0)
        return set_member(L, obj, key, i);
    char c = *i < L->text_n ? L->text[*i] : 0;
    size_t len = c == '{' || c == '[' ? skip_container(L->text, L->text_n, *i) : 0;
    if (!len)
        return tok_json_fail(L, ERR_PARSE, vocab ? "model.vocab" : "model.merges", "expected %s",
                             vocab ? "an object" : "an array");
    *(vocab ? &L->vocab_n : &L->merges_n) = len;
    *(vocab ? &L->vocab_at : &L->merges_at) = *i;
    *i += len;
    return 0;
}

static int root_member(struct tok_loader *L, json_t *obj, const char *key, size_t *i)
{
    if (strcmp(key, "model") != 0 || *i >= L->text_n || L->text[*i] != '{')
        return set_member(L, obj, key, i);
    json_t *model = json_object();
    L->vocab_n = L->merges_n = 0; /* a later "model" replaces an earlier one */
    int rc = model ? scan_object(L, model, i, model_member) : ERR_NOMEM;
    if (rc == 0 && json_object_set(obj, key, model))
        rc = ERR_NOMEM;
    json_decref(model);
    return rc;
}

int tok_json_load_root(struct tok_loader *L, const char *text, size_t n, json_t **root)
{
    L->text = text;
    L->text_n = n;
    L->vocab_n = L->merges_n = 0;
    *root = json_object();
    if (!*root)
        return ERR_NOMEM;
    size_t i = 0;
    int rc = scan_object(L, *root, &i, root_member);
    if (rc == 0 && skip_ws(text, n, i) != n)
        rc = syntax_error(L, i, "text after the end of the object");
    if (rc) {
        json_decref(*root);
        *root = NULL;
    }
    return rc;
}

/* each_value: the loop both iterators share: values (for objects, "key": value pairs)
 * separated by commas between the brackets at text[at] and text[at+len-1]. */
static int each_value(struct tok_loader *L, size_t at, size_t len, const char *path, bool object,
                      int (*fn)(struct tok_loader *, void *, size_t, const json_t *,
                                const json_t *),
                      void *ctx)
{
    const char *s = L->text;
    size_t end = at + len - 1, i = skip_ws(s, end, at + 1); /* inside the brackets */
    int rc = 0;
    for (size_t k = 0; rc == 0 && i < end; k++) {
        json_t *key = NULL, *val = NULL;
        if (object) {
            rc = s[i] == '"' ? parse_value(L, s, end, &i, &key)
                             : syntax_error(L, i, "expected a key");
            i = skip_ws(s, end, i);
            if (rc == 0 && (i >= end || s[i] != ':'))
                rc = syntax_error(L, i, "expected ':'");
            i = skip_ws(s, end, i + 1);
        }
        if (rc == 0)
            rc = parse_value(L, s, end, &i, &val);
        if (rc == 0)
            rc = fn(L, ctx, k, key, val);
        json_decref(key);
        json_decref(val);
        i = skip_ws(s, end, i);
        if (rc == 0 && i < end && s[i] != ',')
            rc = syntax_error(L, i, "expected ','");
        if (rc == 0 && i < end && (i = skip_ws(s, end, i + 1)) >= end)
            rc = syntax_error(L, i, "trailing ','");
    }
    if (rc && L->err && !strstr(L->err, path)) { /* name the field: prefix the path */
        char tmp[512];
        snprintf(tmp, sizeof tmp, "%s", L->err);
        const char *rest = strstr(tmp, "(json): ");
        tok_json_fail(L, rc, path, "%s", rest ? rest + 8 : tmp);
    }
    return rc;
}

struct member_adapter {
    int (*fn)(struct tok_loader *, void *, const json_t *, const json_t *);
    void *ctx;
};

static int call_member(struct tok_loader *L, void *ctx, size_t i, const json_t *key,
                       const json_t *val)
{
    (void)i;
    struct member_adapter *a = ctx;
    return a->fn(L, a->ctx, key, val);
}

int tok_json_each_member(struct tok_loader *L, size_t at, size_t len, const char *path,
                         int (*fn)(struct tok_loader *L, void *ctx, const json_t *key,
                                   const json_t *value),
                         void *ctx)
{
    if (len < 2 || L->text[at] != '{')
        return tok_json_fail(L, ERR_PARSE, path, "expected an object");
    struct member_adapter a = {fn, ctx};
    return each_value(L, at, len, path, true, call_member, &a);
}

struct element_adapter {
    int (*fn)(struct tok_loader *, void *, size_t, const json_t *);
    void *ctx;
};

static int call_element(struct tok_loader *L, void *ctx, size_t i, const json_t *key,
                        const json_t *val)
{
    (void)key;
    struct element_adapter *a = ctx;
    return a->fn(L, a->ctx, i, val);
}

int tok_json_each_element(struct tok_loader *L, size_t at, size_t len, const char *path,
                          int (*fn)(struct tok_loader *L, void *ctx, size_t i, const json_t *value),
                          void *ctx)
{
    if (len < 2 || L->text[at] != '[')
        return tok_json_fail(L, ERR_PARSE, path, "expected an array");
    struct element_adapter a = {fn, ctx};
    return each_value(L, at, len, path, false, call_element, &a);
}

size_t tok_json_count_elements(const struct tok_loader *L, size_t at, size_t len)
{
    const char *s = L->text;
    size_t commas = 0, depth = 0;
    for (size_t k = at; k < at + len; k++) {
        char c = s[k];
        if (c == '"') {
            for (k++; k < at + len && s[k] != '"'; k++)
                if (s[k] == '\\')
                    k++;
        } else if (c == '[' || c == '{') {
            depth++;
        } else if (c == ']' || c == '}') {
            depth--;
        } else if (c == ',' && depth == 1) {
            commas++;
        }
    }
    return commas + 1;
}
