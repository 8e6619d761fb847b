/*
 * sse: Server-Sent Events, line by line. `pending` holds the line not yet ended (never a
 * complete line), except for one marker: pending == "\r" means the last line ended with a CR
 * at the end of the input, so an LF that starts the next input belongs to it. `data` holds
 * the event's data lines so far, each followed by "\n" (the WHATWG algorithm's data buffer:
 * non-empty exactly when the event has a data line). Both together stay within the limit,
 * kept as pending.limit.
 */
#include "bench/sse.h"

#include <string.h>

#include "common/err.h"

#define SSE_DEFAULT_LIMIT (16u << 20)

void sse_init(struct sse *s, size_t limit)
{
    if (limit == 0)
        limit = SSE_DEFAULT_LIMIT;
    buf_init(&s->pending, limit);
    buf_init(&s->data, limit);
}

void sse_deinit(struct sse *s)
{
    buf_deinit(&s->pending);
    buf_deinit(&s->data);
}

/* sse_reset: forgets the event in progress (after an error or a stop). */
static void sse_reset(struct sse *s)
{
    buf_reset(&s->pending);
    buf_reset(&s->data);
}

/* sse_line: one complete line (terminator removed): a blank line ends the event. */
static int sse_line(struct sse *s, const char *p, size_t n, sse_event_fn fn, void *ctx)
{
    struct buf *d = &s->data;
    if (n == 0) {
        if (d->n == 0)
            return 0; /* no data line: nothing to report */
        d->n--;       /* the last line's "\n" */
        d->p[d->n] = '\0';
        int rc = fn(ctx, d->p, d->n);
        buf_reset(d);
        return rc;
    }
    if (p[0] == ':')
        return 0; /* a comment */
    const char *colon = memchr(p, ':', n);
    size_t name_n = colon ? (size_t)(colon - p) : n;
    if (name_n != 4 || memcmp(p, "data", 4) != 0)
        return 0; /* event, id, retry and unknown fields: not needed here */
    const char *v = colon ? colon + 1 : p + n;
    size_t vn = (size_t)(p + n - v);
    if (vn && v[0] == ' ') {
        v++;
        vn--;
    }
    if (vn + 1 > s->pending.limit - d->n)
        return ERR_LIMIT;
    int rc = buf_append(d, v, vn);
    return rc ? rc : buf_append_byte(d, '\n');
}

/* sse_line_end: the index of the first CR or LF in p[i..n), or n. */
static size_t sse_line_end(const char *p, size_t i, size_t n)
{
    while (i < n && p[i] != '\n' && p[i] != '\r')
        i++;
    return i;
}

int sse_feed(struct sse *s, const char *p, size_t n, sse_event_fn fn, void *ctx)
{
    struct buf *pend = &s->pending;
    size_t limit = pend->limit, i = 0;
    if (n == 0)
        return 0;
    if (pend->n == 1 && pend->p[0] == '\r') {
        buf_reset(pend);
        if (p[0] == '\n')
            i = 1; /* the CRLF that the last input split */
    }
    while (i < n) {
        size_t j = sse_line_end(p, i, n);
        size_t len = j - i;
        /* the line so far and the event's data together within the limit */
        if (len > limit || pend->n + len > limit - s->data.n) {
            sse_reset(s);
            return ERR_LIMIT;
        }
        if (j == n) {
            int rc = buf_append(pend, p + i, len);
            if (rc)
                sse_reset(s);
            return rc;
        }
        int rc;
        if (pend->n == 0) {
            rc = sse_line(s, p + i, len, fn, ctx);
        } else if ((rc = buf_append(pend, p + i, len)) == 0) {
            rc = sse_line(s, pend->p, pend->n, fn, ctx);
        }
        buf_reset(pend);
        if (rc) {
            sse_reset(s);
            return rc;
        }
        if (p[j] == '\r' && j + 1 < n && p[j + 1] == '\n')
            j++;
        else if (p[j] == '\r' && j + 1 == n)
            return buf_append_byte(pend, '\r'); /* fits: pend is empty, limit >= 1 */
        i = j + 1;
    }
    return 0;
}
