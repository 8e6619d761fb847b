/*
 * oai_response_json: the few JSON primitives the response writers (oai_response.h) are made
 * of, written straight into a struct buf: strings with a hand-written escaper, integers,
 * logprob floats, and the byte and id arrays of OpenAI's logprobs and token ids. These run
 * once or more per generated token, so nothing here allocates in the common case and nothing
 * goes through jansson.
 *
 * Strings: '"' and '\\' are escaped, the control characters U+0000..U+001F become \b \t \n
 * \f \r or \u00XX (lower-case hex, as Python's json.dumps writes them), everything else,
 * valid UTF-8 included, is copied as it is (DEL, U+2028 and U+2029 too: JSON allows them).
 * Input that is not valid UTF-8 is repaired: each maximal ill-formed subpart becomes one
 * U+FFFD (utf8_append_lossy's rule, Python's errors="replace"), so the output is always
 * valid JSON in valid UTF-8.
 *
 * Every function appends to b and returns 0, ERR_LIMIT (b's limit) or ERR_NOMEM; on failure
 * b may hold part of the value (the callers in oai_response.c roll the whole body back).
 * Pure functions; any thread, one buffer per thread.
 */
#ifndef KILN_OAI_RESPONSE_JSON_H
#define KILN_OAI_RESPONSE_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* The value a logprob that is -inf, NaN or below it is written as (vLLM's max(lp, -9999.0)). */
#define OAI_JSON_LOGPROB_FLOOR (-9999.0f)

/* Bytes oai_response_json_float_fmt may write, the NUL included. */
#define OAI_JSON_FLOAT_MAX 32

/* oai_response_json_str: appends s[0..n) as a quoted, escaped JSON string. */
int oai_response_json_str(struct buf *b, const char *s, size_t n);

/* oai_response_json_str_body: the same without the quotes (to build one string in parts). */
int oai_response_json_str_body(struct buf *b, const char *s, size_t n);

/* oai_response_json_int: appends v in decimal. */
int oai_response_json_int(struct buf *b, int64_t v);

/*
 * oai_response_json_float_fmt: the shortest decimal text that reads back (strtof) as exactly
 * v, in %g style ("-0.5", "-12.25", "-1.5e-07"), with ".0" added when it would otherwise read
 * as a JSON integer ("-3.0", "0.0"). v must be finite. Writes at most OAI_JSON_FLOAT_MAX bytes
 * with the NUL into out (C locale) and returns the length.
 */
size_t oai_response_json_float_fmt(float v, char out[OAI_JSON_FLOAT_MAX]);

/* oai_response_json_logprob: appends a logprob: v as oai_response_json_float_fmt writes it,
 * or -9999.0 when v is below OAI_JSON_LOGPROB_FLOOR, -inf, NaN or +inf (never a valid JSON
 * number otherwise). */
int oai_response_json_logprob(struct buf *b, float v);

/* oai_response_json_utf8_bytes: appends the JSON array of the bytes (0..255) of s[0..n) as
 * oai_response_json_str writes them: the UTF-8 of the repaired text when s is not valid
 * UTF-8 (the chat logprobs "bytes" field, vLLM's token.encode("utf-8")). */
int oai_response_json_utf8_bytes(struct buf *b, const char *s, size_t n);

/* oai_response_json_ids: appends the JSON array of ids[0..n) (ids may be NULL when n == 0). */
int oai_response_json_ids(struct buf *b, const int32_t *ids, size_t n);

#endif
