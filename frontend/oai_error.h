/*
 * oai_error: an error as an OpenAI client sees it, and its JSON body
 *
 *     {"error": {"message": str, "type": str, "param": str|null, "code": int}}
 *
 * with the types of ../shared/API.md's error table, chosen from the HTTP status (the "code"
 * is the status too). The parsers of client bytes fill a struct oai_error in caller storage
 * (no allocation); the HTTP layer turns it into a response with oai_error_json. Messages
 * are human readable and name the offending field ("temperature: must be >= 0, got -1").
 * Text that is not valid UTF-8 is repaired (U+FFFD) on output, so the body is always valid
 * JSON. Pure functions; any thread.
 */
#ifndef KILN_OAI_ERROR_H
#define KILN_OAI_ERROR_H

#include <stddef.h>

#include "common/buf.h"

#define OAI_ERROR_MESSAGE_MAX 1024 /* message bytes kept, the NUL included */
#define OAI_ERROR_PARAM_MAX 64     /* param bytes kept, the NUL included */

struct oai_error {
    int status;                          /* HTTP status: 400, 401, 404, 405, 413, 415, ... */
    char param[OAI_ERROR_PARAM_MAX];     /* the request field at fault; "" means null */
    char message[OAI_ERROR_MESSAGE_MAX]; /* NUL-terminated, cut to fit */
};

/*
 * oai_error_type: the OpenAI error type of an HTTP status: 400 BadRequestError,
 * 401 AuthenticationError, 404 NotFoundError, 405 MethodNotAllowed, 413 / 414 / 431
 * RequestTooLarge, 415 UnsupportedMediaType, 429 RateLimitError, 503
 * ServiceUnavailableError, 500 and any other status InternalServerError (any other 4xx:
 * BadRequestError). Never NULL.
 */
const char *oai_error_type(int status);

/* oai_error_code: the ERR_* code a parser returns along with this status: 400 ERR_INVAL,
 * 404 ERR_NOTFOUND, 413 / 414 / 431 ERR_LIMIT, 503 ERR_NOMEM, anything else ERR_STATE. */
int oai_error_code(int status);

/*
 * oai_error_set: fills *e (status, param or NULL for null, printf-formatted message cut to
 * OAI_ERROR_MESSAGE_MAX - 1 bytes, control characters made spaces so that it is one line)
 * and returns oai_error_code(status), so that a parser can
 * `return oai_error_set(e, 400, "n", "n: must be >= 1, got %d", n);`. e may be NULL.
 */
int oai_error_set(struct oai_error *e, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * oai_error_json: writes the error body (no trailing newline) into out[0..cap) with a NUL,
 * and returns its length. When the whole body does not fit, the message is cut (at a
 * character boundary) so that it does; returns 0 (out[0] = NUL when cap > 0) only when cap
 * is below OAI_ERROR_JSON_MIN.
 */
#define OAI_ERROR_JSON_MIN 640
size_t oai_error_json(const struct oai_error *e, char *out, size_t cap);

/* oai_error_json_buf: appends the whole error body to b. Returns 0, ERR_LIMIT or ERR_NOMEM
 * (b unchanged on failure). */
int oai_error_json_buf(const struct oai_error *e, struct buf *b);

/* oai_error_format: the body of an error with no param, with the signature of
 * struct http_handler's format_error (the protocol layer's own 413, 431, 400 answers). */
size_t oai_error_format(int status, const char *message, char *out, size_t cap);

#endif
