/*
 * oai_error: the OpenAI error object and its JSON body (see oai_error.h).
 */
#include "frontend/oai_error.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "common/utf8.h"

const char *oai_error_type(int status)
{
    switch (status) {
    case 400: return "BadRequestError";
    case 401: return "AuthenticationError";
    case 404: return "NotFoundError";
    case 405: return "MethodNotAllowed";
    case 413:
    case 414:
    case 431: return "RequestTooLarge";
    case 415: return "UnsupportedMediaType";
    case 429: return "RateLimitError";
    case 503: return "ServiceUnavailableError";
    default: return status >= 400 && status < 500 ? "BadRequestError" : "InternalServerError";
    }
}

int oai_error_code(int status)
{
    switch (status) {
    case 400: return ERR_INVAL;
    case 404: return ERR_NOTFOUND;
    case 413:
    case 414:
    case 431: return ERR_LIMIT;
    case 503: return ERR_NOMEM;
    default: return ERR_STATE;
    }
}

/* cut_utf8: n less an incomplete character at the end of s[0..n). */
static size_t cut_utf8(const char *s, size_t n)
{
    return n - utf8_incomplete_tail(s, n);
}

int oai_error_set(struct oai_error *e, int status, const char *param, const char *fmt, ...)
{
    if (!e)
        return oai_error_code(status);
    e->status = status;
    e->param[0] = '\0';
    if (param) {
        size_t n = strlen(param);
        if (n >= sizeof e->param)
            n = cut_utf8(param, sizeof e->param - 1);
        memcpy(e->param, param, n);
        e->param[n] = '\0';
    }
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    if (len < 0)
        e->message[0] = '\0';
    else if ((size_t)len >= sizeof e->message)
        e->message[cut_utf8(e->message, sizeof e->message - 1)] = '\0';
    for (char *p = e->message; *p; p++) /* one line, for logs too */
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    return oai_error_code(status);
}

/* escape_one: the JSON text of the character at s[0..n) into t (at most 6 bytes); *used
 * gets the input bytes it stands for. Invalid UTF-8 bytes become U+FFFD. */
static size_t escape_one(const char *s, size_t n, char t[6], size_t *used)
{
    unsigned char c = (unsigned char)s[0];
    *used = 1;
    if (c == '"' || c == '\\') {
        t[0] = '\\';
        t[1] = (char)c;
        return 2;
    }
    if (c < 0x20) {
        static const char hex[] = "0123456789abcdef";
        memcpy(t, "\\u00", 4);
        t[4] = hex[c >> 4];
        t[5] = hex[c & 15];
        return 6;
    }
    if (c < 0x80) {
        t[0] = (char)c;
        return 1;
    }
    uint32_t cp;
    size_t k = utf8_decode(s, n, &cp);
    if (k == 0) {
        memcpy(t, "\xEF\xBF\xBD", 3);
        return 3;
    }
    memcpy(t, s, k);
    *used = k;
    return k;
}

/* escape_into: appends the escaped s[0..n) to out at *pos, whole characters only, while
 * they fit below `end`. Returns whether all of s fit. */
static bool escape_into(char *out, size_t end, size_t *pos, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        char t[6];
        size_t used;
        size_t k = escape_one(s + i, n - i, t, &used);
        if (*pos + k > end)
            return false;
        memcpy(out + *pos, t, k);
        *pos += k;
        i += used;
    }
    return true;
}

/* put: appends the literal s when it fits below end. */
static bool put(char *out, size_t end, size_t *pos, const char *s)
{
    size_t k = strlen(s);
    if (*pos + k > end)
        return false;
    memcpy(out + *pos, s, k);
    *pos += k;
    return true;
}

size_t oai_error_json(const struct oai_error *e, char *out, size_t cap)
{
    if (cap < OAI_ERROR_JSON_MIN) {
        if (cap)
            out[0] = '\0';
        return 0;
    }
    /* the tail first, in a scratch area: it is never cut */
    char tail[OAI_ERROR_PARAM_MAX * 6 + 128];
    size_t tn = 0, tend = sizeof tail - 1;
    put(tail, tend, &tn, "\", \"type\": \"");
    put(tail, tend, &tn, oai_error_type(e->status));
    put(tail, tend, &tn, "\", \"param\": ");
    if (e->param[0]) {
        put(tail, tend, &tn, "\"");
        escape_into(tail, tend, &tn, e->param, strnlen(e->param, sizeof e->param));
        put(tail, tend, &tn, "\"");
    } else {
        put(tail, tend, &tn, "null");
    }
    char code[32];
    snprintf(code, sizeof code, ", \"code\": %d}}", e->status);
    put(tail, tend, &tn, code);

    size_t pos = 0, end = cap - 1 - tn;
    put(out, end, &pos, "{\"error\": {\"message\": \"");
    size_t mn = strnlen(e->message, sizeof e->message);
    if (!escape_into(out, end, &pos, e->message, mn)) {
        /* cut: leave room for an ellipsis */
        pos = 0;
        put(out, end - 3, &pos, "{\"error\": {\"message\": \"");
        escape_into(out, end - 3, &pos, e->message, mn);
        put(out, end, &pos, "...");
    }
    memcpy(out + pos, tail, tn);
    pos += tn;
    out[pos] = '\0';
    return pos;
}

int oai_error_json_buf(const struct oai_error *e, struct buf *b)
{
    char out[OAI_ERROR_MESSAGE_MAX * 6 + OAI_ERROR_PARAM_MAX * 6 + 160];
    size_t n = oai_error_json(e, out, sizeof out);
    return buf_append(b, out, n);
}

size_t oai_error_format(int status, const char *message, char *out, size_t cap)
{
    struct oai_error e;
    oai_error_set(&e, status, NULL, "%s", message ? message : "");
    return oai_error_json(&e, out, cap);
}
