/*
 * sse: an incremental Server-Sent Events reader for streamed OpenAI responses.
 *
 * Bytes go in as they arrive, split anywhere; each complete event (ended by a blank line:
 * "\n\n", "\r\n\r\n" or "\r\r") comes out once with its data: the values of its "data:" lines
 * (one optional space after the colon removed) joined by "\n". Comment lines (":...") and
 * other fields are skipped; an event with no data line is not reported. Pending bytes are
 * bounded by `limit`; past it sse_feed fails with ERR_LIMIT.
 */
#ifndef KILN_BENCH_SSE_H
#define KILN_BENCH_SSE_H

#include <stddef.h>

#include "common/buf.h"

struct sse {
    struct buf pending; /* bytes of the event not yet complete */
    struct buf data;    /* scratch for the event's joined data */
};

/* sse_event_fn: one event's data (n bytes, NUL-terminated at data[n]). A non-zero return
 * stops sse_feed, which returns it. */
typedef int (*sse_event_fn)(void *ctx, const char *data, size_t n);

/* sse_init: an empty reader; `limit` bounds one event's bytes (0: 16 MiB). */
void sse_init(struct sse *s, size_t limit);

/* sse_deinit: frees the reader's memory. */
void sse_deinit(struct sse *s);

/* sse_feed: reads p[0..n), calling fn for each event it completes, in order.
 * Returns 0, ERR_LIMIT, ERR_NOMEM, or fn's non-zero return. */
int sse_feed(struct sse *s, const char *p, size_t n, sse_event_fn fn, void *ctx);

#endif
