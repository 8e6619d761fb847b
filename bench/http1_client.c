/*
 * http1_client: HTTP/1.1 for the benchmark's client over Debian's http-parser (responses,
 * chunked decoding, Content-Length and read-until-close bodies). One request per connection
 * at a time: the request goes out whole, the parser pauses once its response is complete,
 * and the connection then either waits for the next request or closes (Connection: close,
 * HTTP/1.0, a body that ended with the connection, bytes the server should not have sent).
 * A failure found inside a parser callback is kept in the connection (err, msg) and acted
 * on once http_parser_execute returns. The contract is in http_client_internal.h.
 */
#include "bench/http_client_internal.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "common/buf.h"
#include "common/err.h"

static struct hc_conn *hc_h1_conn(http_parser *p)
{
    return p->data;
}

/* hc_h1_stop: a parser callback found the response unacceptable: stop parsing. */
__attribute__((format(printf, 3, 4))) static int hc_h1_stop(struct hc_conn *k, int err,
                                                            const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(k->msg, sizeof k->msg, fmt, ap);
    va_end(ap);
    k->err = err;
    return -1;
}

/* ---- parser callbacks ---- */

static int hc_h1_on_begin(http_parser *p)
{
    hc_h1_conn(p)->reqs.head->header_bytes = 0;
    return 0;
}

/* hc_h1_count: status line and header bytes of the response, bounded. */
static int hc_h1_count(http_parser *p, const char *at, size_t n)
{
    struct hc_conn *k = hc_h1_conn(p);
    struct hc_req *q = k->reqs.head;
    (void)at;
    q->header_bytes += n;
    if (q->header_bytes > HC_MAX_HEADER_BYTES)
        return hc_h1_stop(k, ERR_LIMIT, "response headers over %u bytes", HC_MAX_HEADER_BYTES);
    return 0;
}

static int hc_h1_on_headers_complete(http_parser *p)
{
    struct hc_conn *k = hc_h1_conn(p);
    struct hc_req *q = k->reqs.head;
    size_t max = k->client->cfg.max_response_bytes;
    int st = (int)p->status_code;
    if (p->http_major != 1)
        return hc_h1_stop(k, ERR_PARSE, "response in HTTP/%u.%u", p->http_major, p->http_minor);
    if (st < 100 || st == 101)
        return hc_h1_stop(k, ERR_PARSE, "unexpected status %d", st);
    if (st < 200) {
        q->interim = true; /* 100 Continue, 103 Early Hints: the real one follows */
        return 0;
    }
    if (!q->head && p->content_length != ULLONG_MAX && p->content_length > max)
        return hc_h1_stop(k, ERR_LIMIT, "response body of %llu bytes, over %zu",
                          (unsigned long long)p->content_length, max);
    q->status = st;
    if (q->cb.on_headers)
        q->cb.on_headers(q->ud, st);
    return q->head ? 1 : 0; /* 1: the response to HEAD has no body */
}

static int hc_h1_on_body(http_parser *p, const char *at, size_t n)
{
    struct hc_conn *k = hc_h1_conn(p);
    struct hc_req *q = k->reqs.head;
    size_t max = k->client->cfg.max_response_bytes;
    if (n > max - q->body_bytes)
        return hc_h1_stop(k, ERR_LIMIT, "response body over %zu bytes", max);
    q->body_bytes += n;
    if (q->cb.on_body)
        q->cb.on_body(q->ud, at, n, k->t_read);
    return 0;
}

static int hc_h1_on_message_complete(http_parser *p)
{
    struct hc_conn *k = hc_h1_conn(p);
    struct hc_req *q = k->reqs.head;
    if (q->interim) {
        q->interim = false;
        return 0;
    }
    k->complete = true;
    k->keep_alive = http_should_keep_alive(p) != 0;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings hc_h1_settings = {
    .on_message_begin = hc_h1_on_begin,
    .on_status = hc_h1_count,
    .on_header_field = hc_h1_count,
    .on_header_value = hc_h1_count,
    .on_headers_complete = hc_h1_on_headers_complete,
    .on_body = hc_h1_on_body,
    .on_message_complete = hc_h1_on_message_complete,
};

/* ---- requests ---- */

void hc_h1_init(struct hc_conn *k)
{
    http_parser_init(&k->parser, HTTP_RESPONSE);
    k->parser.data = k;
}

/* hc_h1_bodyless: methods whose requests carry no Content-Length when they have no body. */
static bool hc_h1_bodyless(const char *method)
{
    return !strcmp(method, "GET") || !strcmp(method, "HEAD") || !strcmp(method, "DELETE") ||
           !strcmp(method, "OPTIONS");
}

int hc_h1_send(struct hc_conn *k, struct hc_req *q)
{
    struct evbuffer *out = bufferevent_get_output(k->bev);
    struct buf b;
    buf_init(&b, 0);
    int rv = buf_printf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", q->method, q->path,
                        k->client->authority);
    if (rv == 0 && q->ctype)
        rv = buf_printf(&b, "Content-Type: %s\r\n", q->ctype);
    if (rv == 0 && (q->body_n || !hc_h1_bodyless(q->method)))
        rv = buf_printf(&b, "Content-Length: %zu\r\n", q->body_n);
    for (size_t i = 0; i < q->n_hdrs && rv == 0; i++)
        rv = buf_printf(&b, "%s: %s\r\n", q->hdrs[i].name, q->hdrs[i].value);
    rv = rv ? rv : buf_append(&b, "\r\n", 2);
    if (rv == 0 && (evbuffer_add(out, b.p, b.n) != 0 ||
                    (q->body_n && evbuffer_add(out, q->body, q->body_n) != 0)))
        rv = ERR_NOMEM; /* the connection is closed: a partial request does not matter */
    buf_deinit(&b);
    if (rv)
        return ERR_NOMEM;
    hc_h1_init(k);
    k->complete = false;
    k->err = 0;
    q->conn = k;
    hc_list_push(&k->reqs, q);
    return 0;
}

/* ---- input ---- */

/* hc_h1_done: the response is complete: report it; keep the connection for the next
 * request, or close it. Returns false when k was closed. */
static bool hc_h1_done(struct hc_conn *k)
{
    /* a request still being written when its answer came: the server stopped reading it */
    bool keep = k->keep_alive && evbuffer_get_length(bufferevent_get_output(k->bev)) == 0;
    k->complete = false;
    k->n_done++;
    http_parser_pause(&k->parser, 0);
    hc_req_finish(k->reqs.head, 0, NULL);
    if (!keep) {
        hc_conn_close(k, 0, NULL);
        return false;
    }
    hc_conn_idle(k);
    return true;
}

/* hc_h1_check: acts on what http_parser_execute ended with. Returns false when k was
 * closed. */
static bool hc_h1_check(struct hc_conn *k)
{
    enum http_errno e = HTTP_PARSER_ERRNO(&k->parser);
    char msg[HC_MSG_MAX];
    if (k->err) {
        hc_conn_close(k, k->err, k->msg);
        return false;
    }
    if (k->complete)
        return hc_h1_done(k);
    if (e != HPE_OK) {
        snprintf(msg, sizeof msg, "malformed response: %s", http_errno_description(e));
        hc_conn_close(k, e == HPE_HEADER_OVERFLOW ? ERR_LIMIT : ERR_PARSE, msg);
        return false;
    }
    return true;
}

/* hc_h1_stray: bytes on a connection with no request: a blank line some servers add after
 * a body is dropped; anything else closes the connection. Returns false when k was
 * closed. */
static bool hc_h1_stray(struct hc_conn *k, struct evbuffer *in, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != '\r' && p[i] != '\n') {
            hc_conn_close(k, 0, NULL);
            return false;
        }
    evbuffer_drain(in, n);
    return true;
}

void hc_h1_read(struct hc_conn *k)
{
    struct evbuffer *in = bufferevent_get_input(k->bev);
    struct evbuffer_iovec v;
    while (evbuffer_peek(in, -1, NULL, &v, 1) >= 1 && v.iov_len > 0) {
        struct hc_req *q = k->reqs.head;
        if (!q) {
            if (!hc_h1_stray(k, in, v.iov_base, v.iov_len))
                return;
            continue;
        }
        q->got_bytes = true;
        size_t n = http_parser_execute(&k->parser, &hc_h1_settings, v.iov_base, v.iov_len);
        evbuffer_drain(in, n);
        if (!hc_h1_check(k))
            return;
    }
}

void hc_h1_eof(struct hc_conn *k)
{
    struct hc_req *q = k->reqs.head;
    if (q && q->got_bytes) {
        /* ends a body delimited by the close; anything else is cut short */
        http_parser_execute(&k->parser, &hc_h1_settings, NULL, 0);
        k->keep_alive = false;
        if (k->err || k->complete) {
            hc_h1_check(k);
            return;
        }
    }
    hc_conn_close(k, ERR_IO,
                  q && q->got_bytes ? "connection closed before the response ended"
                                    : "connection closed before a response");
}
