/*
 * oai_request_field: typed field readers for the request parser (see oai_request_field.h).
 */
#include "frontend/oai_request_field.h"

#include <inttypes.h>
#include <math.h>

#include "common/err.h"
#include "common/utf8.h"

#define CLIP_BYTES 128

const json_t *oai_request_field_get(const struct oai_ctx *c, const char *key)
{
    const json_t *v = json_object_get(c->obj, key);
    return v && !json_is_null(v) ? v : NULL;
}

const char *oai_request_field_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

int oai_request_field_type_error(const struct oai_ctx *c, const char *param, const char *what,
                                 const char *expected, const json_t *v)
{
    return oai_error_set(c->err, 400, param, "%s: expected %s, got %s", what, expected,
                         oai_request_field_type_name(v));
}

int oai_request_field_nomem(const struct oai_ctx *c)
{
    if (arena_error(c->a) == ERR_LIMIT)
        return oai_error_set(c->err, 413, NULL,
                             "request too large: it needs more than the %zu bytes of memory "
                             "a request may use",
                             c->a->limit);
    return oai_error_set(c->err, 503, NULL, "out of memory, try again later");
}

int oai_request_field_bool(const struct oai_ctx *c, const char *key, bool *out)
{
    const json_t *v = oai_request_field_get(c, key);
    if (!v)
        return 0;
    if (!json_is_boolean(v))
        return oai_request_field_type_error(c, key, key, "a boolean", v);
    *out = json_is_true(v);
    return 1;
}

int oai_request_value_int(const struct oai_ctx *c, const char *param, const char *what,
                          const json_t *v, int64_t lo, int64_t hi, int64_t *out)
{
    int64_t x;
    if (json_is_integer(v)) {
        x = (int64_t)json_integer_value(v);
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d != floor(d))
            return oai_error_set(c->err, 400, param, "%s: expected an integer, got %g", what, d);
        if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0))
            return oai_error_set(c->err, 400, param,
                                 "%s: must be in [%" PRId64 ", %" PRId64 "], got %g", what, lo, hi,
                                 d);
        x = (int64_t)d;
    } else {
        return oai_request_field_type_error(c, param, what, "an integer", v);
    }
    if (x < lo)
        return oai_error_set(c->err, 400, param, "%s: must be >= %" PRId64 ", got %" PRId64, what,
                             lo, x);
    if (x > hi)
        return oai_error_set(c->err, 400, param, "%s: must be <= %" PRId64 ", got %" PRId64, what,
                             hi, x);
    *out = x;
    return 0;
}

int oai_request_field_int(const struct oai_ctx *c, const char *key, int64_t lo, int64_t hi,
                          int64_t *out)
{
    const json_t *v = oai_request_field_get(c, key);
    if (!v)
        return 0;
    int rc = oai_request_value_int(c, key, key, v, lo, hi, out);
    return rc ? rc : 1;
}

int oai_request_field_real(const struct oai_ctx *c, const char *key, double lo, bool lo_open,
                           double hi, bool hi_open, double *out)
{
    const json_t *v = oai_request_field_get(c, key);
    if (!v)
        return 0;
    if (!json_is_number(v))
        return oai_request_field_type_error(c, key, key, "a number", v);
    double d = json_number_value(v);
    if (lo_open ? !(d > lo) : !(d >= lo))
        return oai_error_set(c->err, 400, key, "%s: must be %s %g, got %g", key,
                             lo_open ? ">" : ">=", lo, d);
    if (hi_open ? !(d < hi) : !(d <= hi))
        return oai_error_set(c->err, 400, key, "%s: must be %s %g, got %g", key,
                             hi_open ? "<" : "<=", hi, d);
    *out = d;
    return 1;
}

int oai_request_field_str(const struct oai_ctx *c, const char *key, struct str *out)
{
    const json_t *v = oai_request_field_get(c, key);
    if (!v)
        return 0;
    if (!json_is_string(v))
        return oai_request_field_type_error(c, key, key, "a string", v);
    *out = (struct str){json_string_value(v), json_string_length(v)};
    return 1;
}

int oai_request_field_object(const struct oai_ctx *c, const char *key, const json_t **out)
{
    const json_t *v = oai_request_field_get(c, key);
    *out = NULL;
    if (!v)
        return 0;
    if (!json_is_object(v))
        return oai_request_field_type_error(c, key, key, "an object", v);
    *out = v;
    return 1;
}

int oai_request_check_id(const struct oai_ctx *c, const char *param, const char *what, size_t i,
                         int64_t id)
{
    int32_t vocab = c->lim->vocab_size;
    if (id < 0 || id > INT32_MAX || (vocab > 0 && id >= vocab)) {
        if (vocab > 0)
            return oai_error_set(c->err, 400, param,
                                 "%s: token id %" PRId64 " at index %zu is out of vocabulary "
                                 "(vocabulary size %" PRId32 ")",
                                 what, id, i, vocab);
        return oai_error_set(c->err, 400, param,
                             "%s: token id %" PRId64 " at index %zu is not a valid token id", what,
                             id, i);
    }
    return 0;
}

int oai_request_value_ids(const struct oai_ctx *c, const char *param, const char *what,
                          const json_t *v, uint32_t max, const int32_t **ids, uint32_t *n)
{
    if (!json_is_array(v))
        return oai_request_field_type_error(c, param, what, "an array of token ids", v);
    size_t len = json_array_size(v);
    if (len > max)
        return oai_error_set(c->err, 400, param, "%s: at most %" PRIu32 " token ids, got %zu", what,
                             max, len);
    int32_t *out = arena_alloc(c->a, len * sizeof *out);
    if (!out)
        return oai_request_field_nomem(c);
    for (size_t i = 0; i < len; i++) {
        const json_t *e = json_array_get(v, i);
        if (!json_is_integer(e) && !json_is_real(e))
            return oai_error_set(c->err, 400, param,
                                 "%s: expected token ids (integers), got %s "
                                 "at index %zu",
                                 what, oai_request_field_type_name(e), i);
        int64_t id;
        int rc = oai_request_value_int(c, param, what, e, INT64_MIN, INT64_MAX, &id);
        if (rc || (rc = oai_request_check_id(c, param, what, i, id)))
            return rc;
        out[i] = (int32_t)id;
    }
    *ids = out;
    *n = (uint32_t)len;
    return 0;
}

int oai_request_clip(struct str s)
{
    if (s.n <= CLIP_BYTES)
        return (int)s.n;
    return (int)(CLIP_BYTES - utf8_incomplete_tail(s.p, CLIP_BYTES));
}
