/*
 * http1: HTTP/1.1 (and 1.0) connections over Debian's http-parser. One request at a time:
 * once a request is complete the parser pauses and later bytes (pipelined requests) wait in
 * the input buffer until its response is complete, so responses go out in order. The
 * contract is in http_internal.h.
 */
#include "frontend/http_internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <http_parser.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"

enum h1_phase {
    H1_IDLE,    /* between requests: idle timeout */
    H1_HEADERS, /* request line and headers arriving: header timeout */
    H1_BODY,    /* body arriving: idle timeout from the last read */
    H1_WAIT     /* delivered: the handler answers; no timeout */
};

struct http1_conn {
    http_parser parser;
    struct http_req *cur; /* the request being received or answered */
    enum h1_phase phase;
    struct buf url, field, value; /* pieces still arriving */
    bool in_value;                /* the last header callback was a value */
    bool headers_done;            /* later header callbacks are trailers (ignored) */
};

static struct http_conn *conn_of(http_parser *p)
{
    return p->data;
}

/* ---- parser callbacks ---- */

static int h1_on_message_begin(http_parser *p)
{
    struct http_conn *c = conn_of(p);
    struct http1_conn *h = c->h1;
    h->cur = http_req_new(c);
    if (!h->cur)
        return -1;
    buf_reset(&h->url);
    buf_reset(&h->field);
    buf_reset(&h->value);
    h->in_value = false;
    h->headers_done = false;
    if (h->phase == H1_IDLE)
        http_conn_arm(c, c->srv->cfg.header_timeout_ms);
    h->phase = H1_HEADERS;
    return 0;
}

static int h1_on_url(http_parser *p, const char *at, size_t len)
{
    struct http1_conn *h = conn_of(p)->h1;
    if (buf_append(&h->url, at, len) != 0)
        return http_req_fail(h->cur, 414, "request target too long");
    return 0;
}

/* h1_commit_header: the field and value read so far become one header. */
static int h1_commit_header(struct http1_conn *h)
{
    struct http_req *q = h->cur;
    if (http_req_count_header(q, h->field.n, h->value.n) != 0)
        return -1;
    if (http_req_add_header(q, h->field.p, h->field.n, h->value.p, h->value.n) != 0)
        return -1;
    buf_reset(&h->field);
    buf_reset(&h->value);
    h->in_value = false;
    return 0;
}

static int h1_on_header_field(http_parser *p, const char *at, size_t len)
{
    struct http1_conn *h = conn_of(p)->h1;
    if (h->headers_done)
        return 0;
    if (h->in_value && h1_commit_header(h) != 0)
        return -1;
    if (buf_append(&h->field, at, len) != 0)
        return http_req_fail(h->cur, 431, "request header fields too large");
    return 0;
}

static int h1_on_header_value(http_parser *p, const char *at, size_t len)
{
    struct http1_conn *h = conn_of(p)->h1;
    if (h->headers_done)
        return 0;
    h->in_value = true;
    if (buf_append(&h->value, at, len) != 0)
        return http_req_fail(h->cur, 431, "request header fields too large");
    return 0;
}

static bool h1_expects_continue(const struct http_req *q)
{
    size_t n;
    const char *v = http_req_header(q, "expect", &n);
    return v && n == 12 && strncasecmp(v, "100-continue", 12) == 0;
}

static int h1_on_headers_complete(http_parser *p)
{
    struct http_conn *c = conn_of(p);
    struct http1_conn *h = c->h1;
    struct http_req *q = h->cur;
    const char *method = http_method_str((enum http_method)p->method);
    if (h->in_value && h1_commit_header(h) != 0)
        return -1;
    h->headers_done = true;
    if (p->method == HTTP_CONNECT)
        return http_req_fail(q, 405, "method not allowed");
    if (p->http_major != 1)
        return http_req_fail(q, 505, "HTTP version not supported");
    if (http_req_set_method(q, method, strlen(method)) != 0 ||
        http_req_set_target(q, h->url.p, h->url.n) != 0)
        return -1;
    q->http10 = p->http_minor == 0;
    q->keep_alive = http_should_keep_alive(p) && !c->srv->draining;
    bool has_body =
        (p->flags & F_CHUNKED) || (p->content_length > 0 && p->content_length != ULLONG_MAX);
    if (!(p->flags & F_CHUNKED) && has_body && http_req_reserve_body(q, p->content_length) != 0)
        return -1;
    if (has_body && !q->http10 && h1_expects_continue(q))
        evbuffer_add(c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    h->phase = H1_BODY;
    http_conn_arm(c, c->srv->cfg.idle_timeout_ms);
    return 0;
}

static int h1_on_body(http_parser *p, const char *at, size_t len)
{
    struct http1_conn *h = conn_of(p)->h1;
    return http_req_append_body(h->cur, at, len) == 0 ? 0 : -1;
}

static int h1_on_message_complete(http_parser *p)
{
    struct http1_conn *h = conn_of(p)->h1;
    h->cur->state = HTTP_REQ_READY;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings h1_settings = {
    .on_message_begin = h1_on_message_begin,
    .on_url = h1_on_url,
    .on_header_field = h1_on_header_field,
    .on_header_value = h1_on_header_value,
    .on_headers_complete = h1_on_headers_complete,
    .on_body = h1_on_body,
    .on_message_complete = h1_on_message_complete,
};

/* ---- responses ---- */

static const char *h1_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Status";
    }
}

/* h1_header_ok: a handler header we pass on: no framing field (we add those), no byte that
 * could split the response. */
static bool h1_header_ok(const struct http_header *h)
{
    static const char *const own[] = {"content-length", "transfer-encoding", "connection",
                                      "keep-alive", "upgrade"};
    if (h->name_len == 0 || memchr(h->name, ':', h->name_len))
        return false;
    for (size_t i = 0; i < h->name_len; i++)
        if ((unsigned char)h->name[i] <= ' ')
            return false;
    for (size_t i = 0; i < h->value_len; i++)
        if (h->value[i] == '\r' || h->value[i] == '\n' || h->value[i] == '\0')
            return false;
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
        if (strlen(own[i]) == h->name_len && strncasecmp(own[i], h->name, h->name_len) == 0)
            return false;
    return true;
}

/* h1_write_head: the status line and headers; framing is "Content-Length: N" or
 * "Transfer-Encoding: chunked" or NULL (a body that ends with the connection). */
static int h1_write_head(struct http_req *q, int status, const struct http_header *hs, size_t nh,
                         const char *framing)
{
    struct http_conn *c = q->pub.conn;
    struct buf b;
    int rv = 0;
    buf_init(&b, 0);
    q->keep_alive = q->keep_alive && !c->srv->draining;
    rv = buf_printf(&b, "HTTP/1.1 %d %s\r\n", status, h1_reason(status));
    for (size_t i = 0; i < nh && rv == 0; i++) {
        if (!h1_header_ok(&hs[i]))
            continue;
        rv = buf_append(&b, hs[i].name, hs[i].name_len);
        rv = rv ? rv : buf_append(&b, ": ", 2);
        rv = rv ? rv : buf_append(&b, hs[i].value, hs[i].value_len);
        rv = rv ? rv : buf_append(&b, "\r\n", 2);
    }
    if (rv == 0 && framing)
        rv = buf_printf(&b, "%s\r\n", framing);
    if (rv == 0 && !q->keep_alive)
        rv = buf_append_str(&b, "Connection: close\r\n");
    else if (rv == 0 && q->http10)
        rv = buf_append_str(&b, "Connection: keep-alive\r\n");
    rv = rv ? rv : buf_append(&b, "\r\n", 2);
    if (rv == 0 && evbuffer_add(c->out, b.p, b.n) != 0)
        rv = ERR_NOMEM;
    buf_deinit(&b);
    return rv ? ERR_NOMEM : 0;
}

int http1_respond(struct http_req *q, int status, const struct http_header *h, size_t nh,
                  const void *body, size_t len)
{
    char framing[48];
    snprintf(framing, sizeof framing, "Content-Length: %zu", len);
    int rv = h1_write_head(q, status, h, nh, framing);
    if (rv == 0 && !q->head && len && evbuffer_add(q->pub.conn->out, body, len) != 0)
        rv = ERR_NOMEM;
    if (rv != 0)
        q->pub.conn->want_close = true; /* a response may be half written */
    return rv;
}

int http1_stream_begin(struct http_req *q, int status, const struct http_header *h, size_t nh)
{
    q->chunked = !q->http10;
    if (q->http10)
        q->keep_alive = false; /* the body ends with the connection */
    int rv = h1_write_head(q, status, h, nh, q->chunked ? "Transfer-Encoding: chunked" : NULL);
    if (rv != 0)
        q->pub.conn->want_close = true;
    return rv;
}

int http1_stream_write(struct http_req *q, const void *p, size_t n)
{
    struct http_conn *c = q->pub.conn;
    struct evbuffer *out = c->out;
    if (q->head)
        return 0;
    if (http_conn_out_len(c) + n > c->srv->cfg.max_queued)
        return ERR_LIMIT;
    int rv = 0;
    if (q->chunked)
        rv = evbuffer_add_printf(out, "%zx\r\n", n) < 0;
    rv = rv ? rv : evbuffer_add(out, p, n);
    if (q->chunked)
        rv = rv ? rv : evbuffer_add(out, "\r\n", 2);
    if (rv != 0) {
        c->want_close = true;
        return ERR_NOMEM;
    }
    return 0;
}

int http1_stream_end(struct http_req *q)
{
    if (q->chunked && !q->head && evbuffer_add(q->pub.conn->out, "0\r\n\r\n", 5) != 0) {
        q->pub.conn->want_close = true;
        return ERR_NOMEM;
    }
    return 0;
}

size_t http1_queued(const struct http_req *q)
{
    return http_conn_out_len(q->pub.conn);
}

/* ---- the connection ---- */

int http1_conn_init(struct http_conn *c)
{
    const struct http_server_config *cfg = &c->srv->cfg;
    struct http1_conn *h = calloc(1, sizeof *h);
    if (!h)
        return ERR_NOMEM;
    http_parser_init(&h->parser, HTTP_REQUEST);
    h->parser.data = c;
    buf_init(&h->url, cfg->max_url_bytes);
    buf_init(&h->field, cfg->max_header_bytes);
    buf_init(&h->value, cfg->max_header_bytes);
    h->phase = H1_HEADERS; /* the accept armed the header timeout */
    c->h1 = h;
    return 0;
}

void http1_conn_deinit(struct http_conn *c)
{
    struct http1_conn *h = c->h1;
    if (!h)
        return;
    buf_deinit(&h->url);
    buf_deinit(&h->field);
    buf_deinit(&h->value);
    free(h);
    c->h1 = NULL;
}

bool http1_conn_busy(const struct http_conn *c)
{
    const struct http_req *q = c->h1 ? c->h1->cur : NULL;
    return q && (q->state == HTTP_REQ_ACTIVE || q->state == HTTP_REQ_STREAMING ||
                 q->state == HTTP_REQ_GONE);
}

/* h1_fail: answers a request the parser or a limit refused, then closes. */
static void h1_fail(struct http_conn *c, int status, const char *msg)
{
    char body[1024], head[256];
    size_t n = http_error_body(c->srv, status, msg, body, sizeof body);
    int k = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     status, h1_reason(status), n);
    log_debug("conn %llu: HTTP/1.1 %d: %s", (unsigned long long)c->id, status, msg);
    evbuffer_add(c->out, head, (size_t)k);
    evbuffer_add(c->out, body, n);
    c->closing = true;
}

/* h1_feed: runs the parser over the first chunk of input. Returns false when there was
 * nothing to parse or parsing stopped for good (an error: answered, closing). */
static bool h1_feed(struct http_conn *c)
{
    struct http1_conn *h = c->h1;
    struct evbuffer *in = c->in;
    struct evbuffer_iovec v;
    if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
        return false;
    size_t n = http_parser_execute(&h->parser, &h1_settings, v.iov_base, v.iov_len);
    evbuffer_drain(in, n);
    enum http_errno e = HTTP_PARSER_ERRNO(&h->parser);
    if (e == HPE_PAUSED) {
        http_parser_pause(&h->parser, 0);
        h->parser.upgrade = 0; /* "Upgrade: h2c" is served as HTTP/1.1 */
        return true;
    }
    if (e != HPE_OK) {
        struct http_req *q = h->cur;
        if (q && q->err_status)
            h1_fail(c, q->err_status, q->err_msg);
        else if (e == HPE_HEADER_OVERFLOW)
            h1_fail(c, 431, "request header fields too large");
        else
            h1_fail(c, 400, http_errno_description(e));
        return false;
    }
    if (h->phase == H1_BODY)
        http_conn_arm(c, c->srv->cfg.idle_timeout_ms);
    return n > 0;
}

/* h1_finish: the current response is complete: free the request, keep the connection open
 * for the next one or start closing. */
static void h1_finish(struct http_conn *c)
{
    struct http1_conn *h = c->h1;
    struct http_req *q = h->cur;
    bool keep = q->keep_alive && !c->srv->draining;
    h->cur = NULL;
    http_req_release(q);
    if (!keep) {
        c->closing = true;
        return;
    }
    h->phase = H1_IDLE;
    http_conn_arm(c, c->srv->cfg.idle_timeout_ms);
}

void http1_conn_process(struct http_conn *c)
{
    struct http1_conn *h = c->h1;
    struct evbuffer *in = c->in;
    while (!c->closing && !c->want_close) {
        struct http_req *q = h->cur;
        if (q && q->state == HTTP_REQ_DONE) {
            h1_finish(c);
        } else if (q && q->state == HTTP_REQ_READY) {
            h->phase = H1_WAIT;
            http_conn_arm(c, 0);
            http_req_deliver(q);
        } else if (q && q->state != HTTP_REQ_RECV) {
            return; /* the handler is answering */
        } else if (!q && http_conn_out_len(c) > c->srv->cfg.max_queued) {
            return; /* the client reads slower than it asks: resume on write */
        } else if (!h1_feed(c)) {
            break;
        }
    }
    /* drained: an idle connection closes now */
    if (!c->closing && !c->want_close && c->srv->draining && !h->cur &&
        evbuffer_get_length(in) == 0)
        c->closing = true;
}
