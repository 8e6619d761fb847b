/*
 * oai_request_field: the typed field readers of oai_request (internal to oai_request*.c).
 *
 * Each reader looks up one member of a JSON object, checks its type and range, and on a
 * mistake fills the request's oai_error (400, param = the field) and returns the negative
 * code. A member that is absent or null counts as not given. Memory comes from the
 * context's arena; a failed allocation is answered 413 (arena limit) or 503 (malloc).
 * Pure functions; any thread.
 */
#ifndef KILN_OAI_REQUEST_FIELD_H
#define KILN_OAI_REQUEST_FIELD_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "common/arena.h"
#include "common/str.h"
#include "frontend/oai_error.h"
#include "frontend/oai_request.h"

/* One parse: the object being read, the limits, the arena and where errors go. */
struct oai_ctx {
    const json_t *obj;
    const struct oai_limits *lim;
    struct arena *a;
    struct oai_error *err;
};

/* oai_request_field_get: obj's member key, or NULL when absent or null. */
const json_t *oai_request_field_get(const struct oai_ctx *c, const char *key);

/* oai_request_field_type_name: "a string", "an integer", "a number", "a boolean",
 * "an array", "an object", "null". */
const char *oai_request_field_type_name(const json_t *v);

/* oai_request_field_type_error: 400 "<what>: expected <expected>, got <type of v>" with
 * param; returns ERR_INVAL. */
int oai_request_field_type_error(const struct oai_ctx *c, const char *param, const char *what,
                                 const char *expected, const json_t *v);

/* oai_request_field_nomem: the error of a failed arena allocation (413 or 503); returns its
 * code. */
int oai_request_field_nomem(const struct oai_ctx *c);

/* oai_request_field_bool: *out = the boolean at key when given. Returns 1 (given), 0 (not
 * given: *out untouched) or ERR_INVAL. */
int oai_request_field_bool(const struct oai_ctx *c, const char *key, bool *out);

/* oai_request_value_int: v must be an integer (or an integral real) in [lo, hi]; what names
 * it in the message. Returns 0 or ERR_INVAL (param). */
int oai_request_value_int(const struct oai_ctx *c, const char *param, const char *what,
                          const json_t *v, int64_t lo, int64_t hi, int64_t *out);

/* oai_request_field_int: the integer at key in [lo, hi]. Returns 1, 0 (not given) or
 * ERR_INVAL. */
int oai_request_field_int(const struct oai_ctx *c, const char *key, int64_t lo, int64_t hi,
                          int64_t *out);

/* oai_request_field_real: the number at key in the interval from lo to hi (each end open
 * when its flag says so). Returns 1, 0 (not given) or ERR_INVAL. */
int oai_request_field_real(const struct oai_ctx *c, const char *key, double lo, bool lo_open,
                           double hi, bool hi_open, double *out);

/* oai_request_field_str: the string at key (NUL-terminated, in the JSON root). Returns 1, 0
 * (not given) or ERR_INVAL. */
int oai_request_field_str(const struct oai_ctx *c, const char *key, struct str *out);

/* oai_request_field_object: the object at key, or NULL when not given. Returns 1, 0 or
 * ERR_INVAL. */
int oai_request_field_object(const struct oai_ctx *c, const char *key, const json_t **out);

/*
 * oai_request_value_ids: v must be an array of at most max token ids, each in
 * [0, vocab_size) when the vocabulary is known; *ids (arena) and *n get them. what names v
 * in messages ("prompt[2]"). Returns 0 or ERR_INVAL, ERR_LIMIT, ERR_NOMEM.
 */
int oai_request_value_ids(const struct oai_ctx *c, const char *param, const char *what,
                          const json_t *v, uint32_t max, const int32_t **ids, uint32_t *n);

/* oai_request_check_id: id in [0, vocab_size) (always true with no vocabulary). Returns 0 or
 * ERR_INVAL naming what and the index i. */
int oai_request_check_id(const struct oai_ctx *c, const char *param, const char *what, size_t i,
                         int64_t id);

/* oai_request_clip: how many bytes of s to quote in a message ("%.*s"): all of it, or
 * at most 128 cut at a character boundary. */
int oai_request_clip(struct str s);

#endif
