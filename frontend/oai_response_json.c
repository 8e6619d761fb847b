/*
 * oai_response_json: JSON primitives for the response writers (see oai_response_json.h).
 */
#include "frontend/oai_response_json.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/utf8.h"

/* plain: whether the byte c is copied as it is by itself (printable ASCII, not " or \). */
static inline bool plain(unsigned char c)
{
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

/* escape_ctl: the escape of c (< 0x20, '"' or '\\') into t; returns its length. */
static size_t escape_ctl(unsigned char c, char t[6])
{
    static const char hex[] = "0123456789abcdef";
    char s = 0;
    switch (c) {
    case '"': s = '"'; break;
    case '\\': s = '\\'; break;
    case '\b': s = 'b'; break;
    case '\t': s = 't'; break;
    case '\n': s = 'n'; break;
    case '\f': s = 'f'; break;
    case '\r': s = 'r'; break;
    default: break;
    }
    t[0] = '\\';
    if (s) {
        t[1] = s;
        return 2;
    }
    memcpy(t + 1, "u00", 3);
    t[4] = hex[c >> 4];
    t[5] = hex[c & 15];
    return 6;
}

/* bad_span: the length of the ill-formed bytes at s[0..n) (s[0] does not start a character):
 * up to the next byte that starts a well-formed character. A maximal ill-formed subpart never
 * contains such a byte past its first, so repairing the span alone repairs it as the whole
 * text would be. */
static size_t bad_span(const char *s, size_t n)
{
    size_t j = 1;
    uint32_t cp;
    while (j < n && (unsigned char)s[j] >= 0x80 && utf8_decode(s + j, n - j, &cp) == 0)
        j++;
    return j;
}

int oai_response_json_str_body(struct buf *b, const char *s, size_t n)
{
    size_t i = 0, run = 0; /* s[run..i) is copied as it is */
    if (!n)
        return 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (plain(c)) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t k = c >= 0x80 ? utf8_decode(s + i, n - i, &cp) : 0;
        if (k) {
            i += k;
            continue;
        }
        int rc = buf_append(b, s + run, i - run);
        if (rc)
            return rc;
        if (c >= 0x80) {
            size_t bad = bad_span(s + i, n - i);
            rc = utf8_append_lossy(b, s + i, bad);
            i += bad;
        } else {
            char t[6];
            rc = buf_append(b, t, escape_ctl(c, t));
            i++;
        }
        if (rc)
            return rc;
        run = i;
    }
    return buf_append(b, s + run, i - run);
}

int oai_response_json_str(struct buf *b, const char *s, size_t n)
{
    int rc = buf_append_byte(b, '"');
    if (!rc)
        rc = oai_response_json_str_body(b, s, n);
    if (!rc)
        rc = buf_append_byte(b, '"');
    return rc;
}

/* fmt_u64: v in decimal at the end of t[0..20); returns where it starts. */
static size_t fmt_u64(uint64_t v, char t[20])
{
    size_t i = 20;
    do {
        t[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return i;
}

int oai_response_json_int(struct buf *b, int64_t v)
{
    char t[21];
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    size_t i = fmt_u64(u, t + 1) + 1;
    if (v < 0)
        t[--i] = '-';
    return buf_append(b, t + i, 21 - i);
}

size_t oai_response_json_float_fmt(float v, char out[OAI_JSON_FLOAT_MAX])
{
    /* A normal float has 24 bits: 9 significant digits always read back, and when fewer do,
     * the %.6g text is already that short (%g drops trailing zeros). A subnormal has fewer
     * bits, so its search starts at one digit. */
    int n = 0;
    for (int prec = fabsf(v) < FLT_MIN ? 1 : 6; prec <= 9; prec++) {
        n = snprintf(out, OAI_JSON_FLOAT_MAX, "%.*g", prec, (double)v);
        if (prec == 9 || strtof(out, NULL) == v)
            break;
    }
    if (n < 0 || n > OAI_JSON_FLOAT_MAX - 3) { /* cannot happen for a finite float */
        memcpy(out, "0.0", 4);
        return 3;
    }
    if (!strpbrk(out, ".e")) {
        memcpy(out + n, ".0", 3);
        n += 2;
    }
    return (size_t)n;
}

int oai_response_json_logprob(struct buf *b, float v)
{
    if (!(v >= OAI_JSON_LOGPROB_FLOOR) || isinf(v))
        return buf_append(b, "-9999.0", 7);
    char t[OAI_JSON_FLOAT_MAX];
    size_t n = oai_response_json_float_fmt(v, t);
    return buf_append(b, t, n);
}

/* bytes_array: appends [s0,s1,...] for valid s[0..n). */
static int bytes_array(struct buf *b, const unsigned char *s, size_t n)
{
    size_t len = n ? 1 + n : 2; /* brackets and commas */
    for (size_t i = 0; i < n; i++)
        len += 1 + (s[i] >= 10) + (s[i] >= 100);
    int rc = buf_reserve(b, len);
    if (rc)
        return rc;
    char *p = b->p + b->n;
    *p++ = '[';
    for (size_t i = 0; i < n; i++) {
        unsigned c = s[i];
        if (i)
            *p++ = ',';
        if (c >= 100)
            *p++ = (char)('0' + c / 100);
        if (c >= 10)
            *p++ = (char)('0' + c / 10 % 10);
        *p++ = (char)('0' + c % 10);
    }
    *p++ = ']';
    b->n = (size_t)(p - b->p);
    b->p[b->n] = '\0';
    return 0;
}

int oai_response_json_utf8_bytes(struct buf *b, const char *s, size_t n)
{
    if (utf8_valid(s, n))
        return bytes_array(b, (const unsigned char *)s, n);
    struct buf fixed;
    buf_init(&fixed, b->limit);
    int rc = utf8_append_lossy(&fixed, s, n);
    if (!rc)
        rc = bytes_array(b, (const unsigned char *)fixed.p, fixed.n);
    buf_deinit(&fixed);
    return rc;
}

/* digits: the decimal length of v, its sign included. */
static size_t digits(int32_t v)
{
    size_t k = v < 0 ? 2 : 1;
    uint32_t u = v < 0 ? 0u - (uint32_t)v : (uint32_t)v;
    while (u >= 10) {
        u /= 10;
        k++;
    }
    return k;
}

int oai_response_json_ids(struct buf *b, const int32_t *ids, size_t n)
{
    size_t len = n ? 1 + n : 2;
    for (size_t i = 0; i < n; i++)
        len += digits(ids[i]);
    int rc = buf_reserve(b, len);
    if (rc)
        return rc;
    char *p = b->p + b->n;
    *p++ = '[';
    for (size_t i = 0; i < n; i++) {
        char t[20];
        if (i)
            *p++ = ',';
        int32_t v = ids[i];
        if (v < 0)
            *p++ = '-';
        uint64_t u = v < 0 ? 0 - (uint64_t)(int64_t)v : (uint64_t)v;
        size_t k = fmt_u64(u, t);
        memcpy(p, t + k, 20 - k);
        p += 20 - k;
    }
    *p++ = ']';
    b->n = (size_t)(p - b->p);
    b->p[b->n] = '\0';
    return 0;
}
