/*
 * http2: HTTP/2 connections over nghttp2 (cleartext with prior knowledge, or TLS with ALPN
 * "h2"). Input is fed to nghttp2_session_mem_recv; frames leave through
 * nghttp2_session_mem_send into the connection's output, never more than OUT_HIGH bytes ahead
 * of the socket, so a slow reader makes the
 * streams' own buffers grow until max_queued aborts them. Complete requests are delivered
 * after mem_recv returns, not from nghttp2's callbacks; handler calls only submit and kick
 * the connection's deferred work, which flushes. The contract is in http_internal.h.
 */
#include "frontend/http_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>

#include "common/err.h"
#include "common/log.h"

#define OUT_HIGH (64u * 1024)   /* frames queued on the socket before we stop sending */
#define OUT_LOW (16u * 1024)    /* the socket drained to this: send more */
#define STREAM_WINDOW (1 << 20) /* SETTINGS_INITIAL_WINDOW_SIZE */
#define CONN_WINDOW (4 << 20)   /* the connection's receive window */
#define ERROR_BUDGET 10         /* protocol errors before GOAWAY(ENHANCE_YOUR_CALM) */
#define MAX_CONTINUATIONS 8     /* CONTINUATION frames per header block */
#define RESET_BURST 1000        /* rapid-reset limiter: burst ... */
#define RESET_RATE 33           /* ... and refill per second */
#define CONN_QUEUED_FACTOR 8    /* per connection: this many streams' max_queued */

struct http2_conn {
    nghttp2_session *session;
    unsigned n_errors; /* protocol errors seen and resets sent */
    size_t queued;     /* bytes in every stream's out buffer */
    bool calm;         /* error budget spent */
    bool noticed;      /* drain: shutdown notice submitted */
    bool goaway;       /* drain: the real GOAWAY submitted */
};

static void h2_error(struct http_conn *c)
{
    if (++c->h2->n_errors > ERROR_BUDGET)
        c->h2->calm = true;
}

static struct http_req *h2_req(nghttp2_session *s, int32_t stream_id)
{
    return nghttp2_session_get_stream_user_data(s, stream_id);
}

/* ---- responses ---- */

static ssize_t h2_read_body(nghttp2_session *s, int32_t stream_id, uint8_t *buf, size_t len,
                            uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    struct http_conn *c = ud;
    struct http_req *q = src->ptr;
    (void)s;
    (void)stream_id;
    int n = evbuffer_remove(q->out, buf, len);
    if (n < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    c->h2->queued -= (size_t)n;
    if (q->ended && evbuffer_get_length(q->out) == 0) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        return n;
    }
    if (n == 0) {
        q->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    return n;
}

/* h2_skip_header: connection-specific fields HTTP/2 forbids, and the ones we add. */
static bool h2_skip_header(const struct http_header *h)
{
    static const char *const skip[] = {"connection",        "keep-alive", "proxy-connection",
                                       "transfer-encoding", "upgrade",    "content-length"};
    if (h->name_len == 0 || h->name[0] == ':')
        return true;
    for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++)
        if (strlen(skip[i]) == h->name_len && strncasecmp(skip[i], h->name, h->name_len) == 0)
            return true;
    return false;
}

/* h2_submit: HEADERS for q (names lowercased, content-length when clen >= 0) and a data
 * source reading q->out when with_body. */
static int h2_submit(struct http_req *q, int status, const struct http_header *hs, size_t nh,
                     long long clen, bool with_body)
{
    struct http_conn *c = q->pub.conn;
    char st[8], cl[24], *names;
    size_t total = 1, k = 0;
    for (size_t i = 0; i < nh; i++)
        total += hs[i].name_len;
    nghttp2_nv *nva = malloc((nh + 2) * sizeof *nva);
    names = malloc(total);
    if (!nva || !names) {
        free(nva);
        free(names);
        return ERR_NOMEM;
    }
    snprintf(st, sizeof st, "%d", status);
    nva[k++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)st, 7, strlen(st), 0};
    char *np = names;
    for (size_t i = 0; i < nh; i++) {
        if (h2_skip_header(&hs[i]))
            continue;
        for (size_t j = 0; j < hs[i].name_len; j++)
            np[j] = (char)((hs[i].name[j] >= 'A' && hs[i].name[j] <= 'Z') ? hs[i].name[j] + 32
                                                                          : hs[i].name[j]);
        nva[k++] =
            (nghttp2_nv){(uint8_t *)np, (uint8_t *)hs[i].value, hs[i].name_len, hs[i].value_len, 0};
        np += hs[i].name_len;
    }
    if (clen >= 0) {
        snprintf(cl, sizeof cl, "%lld", clen);
        nva[k++] = (nghttp2_nv){(uint8_t *)"content-length", (uint8_t *)cl, 14, strlen(cl), 0};
    }
    nghttp2_data_provider prd = {.source.ptr = q, .read_callback = h2_read_body};
    int rv =
        nghttp2_submit_response(c->h2->session, q->pub.stream_id, nva, k, with_body ? &prd : NULL);
    free(nva);
    free(names);
    if (rv != 0)
        return rv == NGHTTP2_ERR_NOMEM ? ERR_NOMEM : ERR_STATE;
    http_conn_kick(c);
    return 0;
}

static int h2_queue(struct http_req *q, const void *p, size_t n)
{
    if (!q->out && !(q->out = evbuffer_new()))
        return ERR_NOMEM;
    if (n && evbuffer_add(q->out, p, n) != 0)
        return ERR_NOMEM;
    q->pub.conn->h2->queued += n;
    return 0;
}

int http2_respond(struct http_req *q, int status, const struct http_header *h, size_t nh,
                  const void *body, size_t len)
{
    bool with_body = !q->head && len > 0;
    int rv = with_body ? h2_queue(q, body, len) : 0;
    if (rv)
        return rv;
    q->ended = true;
    return h2_submit(q, status, h, nh, (long long)len, with_body);
}

int http2_stream_begin(struct http_req *q, int status, const struct http_header *h, size_t nh)
{
    /* a data source even for HEAD (no bytes, END_STREAM at http_stream_end), so that the
     * stream stays open until the handler ends it */
    int rv = h2_queue(q, NULL, 0);
    return rv ? rv : h2_submit(q, status, h, nh, -1, true);
}

static void h2_resume(struct http_req *q)
{
    struct http_conn *c = q->pub.conn;
    if (q->deferred) {
        q->deferred = false;
        nghttp2_session_resume_data(c->h2->session, q->pub.stream_id);
    }
    http_conn_kick(c);
}

int http2_stream_write(struct http_req *q, const void *p, size_t n)
{
    const struct http_server_config *cfg = &q->srv->cfg;
    struct http_conn *c = q->pub.conn;
    if (q->head)
        return 0;
    if (evbuffer_get_length(q->out) + n > cfg->max_queued ||
        c->h2->queued + n > cfg->max_queued * CONN_QUEUED_FACTOR)
        return ERR_LIMIT;
    int rv = h2_queue(q, p, n);
    if (rv == 0)
        h2_resume(q);
    return rv;
}

int http2_stream_end(struct http_req *q)
{
    q->ended = true;
    h2_resume(q);
    return 0;
}

size_t http2_queued(const struct http_req *q)
{
    return q->out ? evbuffer_get_length(q->out) : 0;
}

void http2_req_cancel(struct http_req *q)
{
    struct http_conn *c = q->pub.conn;
    nghttp2_submit_rst_stream(c->h2->session, NGHTTP2_FLAG_NONE, q->pub.stream_id, NGHTTP2_CANCEL);
    http_conn_kick(c);
}

/* h2_reject: answers a request the protocol layer refuses (413, 431, ...) itself. */
static void h2_reject(struct http_conn *c, struct http_req *q)
{
    char body[1024];
    struct http_header ct = {"content-type", 12, "application/json", 16};
    size_t n = http_error_body(c->srv, q->err_status, q->err_msg, body, sizeof body);
    q->state = HTTP_REQ_DONE;
    q->rejected = true;
    q->ended = true;
    if (q->err_status == 431)
        h2_error(c);
    if (h2_queue(q, body, n) != 0 || h2_submit(q, q->err_status, &ct, 1, (long long)n, true))
        nghttp2_submit_rst_stream(c->h2->session, NGHTTP2_FLAG_NONE, q->pub.stream_id,
                                  NGHTTP2_INTERNAL_ERROR);
}

/* ---- nghttp2 callbacks ---- */

static int h2_on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    struct http_conn *c = ud;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct http_req *q = http_req_new(c);
    if (!q)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    q->pub.stream_id = f->hd.stream_id;
    nghttp2_session_set_stream_user_data(s, f->hd.stream_id, q);
    return 0;
}

static int h2_pseudo(struct http_req *q, const uint8_t *name, size_t nlen, const uint8_t *value,
                     size_t vlen)
{
    const char *n = (const char *)name, *v = (const char *)value;
    if (nlen == 7 && memcmp(n, ":method", 7) == 0)
        return http_req_set_method(q, v, vlen);
    if (nlen == 5 && memcmp(n, ":path", 5) == 0)
        return http_req_set_target(q, v, vlen);
    if (nlen == 10 && memcmp(n, ":authority", 10) == 0)
        return http_req_add_header(q, "host", 4, v, vlen);
    return 0; /* :scheme, :protocol */
}

static int h2_on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                        size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *ud)
{
    struct http_req *q = h2_req(s, f->hd.stream_id);
    (void)flags;
    (void)ud;
    if (!q || q->state != HTTP_REQ_RECV || q->err_status)
        return 0;
    if (http_req_count_header(q, nlen, vlen) != 0)
        return 0;
    if (f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0; /* trailers: counted, not kept */
    int rv = name[0] == ':'
                 ? h2_pseudo(q, name, nlen, value, vlen)
                 : http_req_add_header(q, (const char *)name, nlen, (const char *)value, vlen);
    return rv == ERR_NOMEM ? NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE : 0;
}

/* h2_headers_done: the request's header block is complete. */
static void h2_headers_done(struct http_conn *c, struct http_req *q)
{
    size_t n;
    const char *cl = http_req_header(q, "content-length", &n);
    if (!q->err_status && cl && n < 20) {
        char tmp[24];
        memcpy(tmp, cl, n);
        tmp[n] = '\0';
        http_req_reserve_body(q, strtoull(tmp, NULL, 10));
    }
    if (q->err_status)
        h2_reject(c, q);
}

static int h2_on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    struct http_conn *c = ud;
    if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA)
        return 0;
    struct http_req *q = h2_req(s, f->hd.stream_id);
    if (!q || q->state != HTTP_REQ_RECV)
        return 0;
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST)
        h2_headers_done(c, q);
    if (q->state == HTTP_REQ_RECV && (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
        q->state = q->err_status ? HTTP_REQ_DONE : HTTP_REQ_READY;
    return 0;
}

static int h2_on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t stream_id,
                            const uint8_t *data, size_t len, void *ud)
{
    struct http_conn *c = ud;
    struct http_req *q = h2_req(s, stream_id);
    (void)flags;
    if (!q || q->state != HTTP_REQ_RECV)
        return 0;
    if (http_req_append_body(q, (const char *)data, len) != 0)
        h2_reject(c, q);
    return 0;
}

static int h2_on_stream_close(nghttp2_session *s, int32_t stream_id, uint32_t error_code, void *ud)
{
    struct http_conn *c = ud;
    struct http_req *q = h2_req(s, stream_id);
    (void)error_code;
    if (!q)
        return 0;
    nghttp2_session_set_stream_user_data(s, stream_id, NULL);
    c->h2->queued -= q->out ? evbuffer_get_length(q->out) : 0;
    http_req_gone(q);
    http_req_release(q);
    return 0;
}

static int h2_on_frame_send(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    struct http_conn *c = ud;
    if (f->hd.type == NGHTTP2_RST_STREAM && f->rst_stream.error_code != NGHTTP2_NO_ERROR &&
        f->rst_stream.error_code != NGHTTP2_CANCEL)
        h2_error(c);
    if ((f->hd.type != NGHTTP2_DATA && f->hd.type != NGHTTP2_HEADERS) ||
        !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    /* a refused request's answer is out: tell the client to stop sending its body */
    struct http_req *q = h2_req(s, f->hd.stream_id);
    if (q && q->rejected && !nghttp2_session_get_stream_remote_close(s, f->hd.stream_id))
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_NO_ERROR);
    return 0;
}

static int h2_on_invalid_frame(nghttp2_session *s, const nghttp2_frame *f, int err, void *ud)
{
    (void)s;
    (void)f;
    (void)err;
    h2_error(ud);
    return 0;
}

/* ---- the connection ---- */

static nghttp2_session_callbacks *h2_callbacks(void)
{
    nghttp2_session_callbacks *cb;
    if (nghttp2_session_callbacks_new(&cb) != 0)
        return NULL;
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, h2_on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, h2_on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, h2_on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, h2_on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, h2_on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, h2_on_frame_send);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cb, h2_on_invalid_frame);
    return cb;
}

static int h2_session_new(struct http_conn *c, nghttp2_session **out)
{
    nghttp2_session_callbacks *cb = h2_callbacks();
    nghttp2_option *opt = NULL;
    int rv = ERR_NOMEM;
    if (!cb)
        return ERR_NOMEM;
    if (nghttp2_option_new(&opt) != 0)
        goto fail_option;
    nghttp2_option_set_max_continuations(opt, MAX_CONTINUATIONS);
    nghttp2_option_set_stream_reset_rate_limit(opt, RESET_BURST, RESET_RATE);
    if (nghttp2_session_server_new2(out, cb, c, opt) == 0)
        rv = 0;
    nghttp2_option_del(opt);
fail_option:
    nghttp2_session_callbacks_del(cb);
    return rv;
}

int http2_conn_init(struct http_conn *c)
{
    const struct http_server_config *cfg = &c->srv->cfg;
    struct http2_conn *h = calloc(1, sizeof *h);
    if (!h)
        return ERR_NOMEM;
    if (h2_session_new(c, &h->session) != 0) {
        free(h);
        return ERR_NOMEM;
    }
    c->h2 = h;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, cfg->max_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)cfg->max_header_bytes},
    };
    if (nghttp2_submit_settings(h->session, NGHTTP2_FLAG_NONE, iv, 3) != 0 ||
        nghttp2_session_set_local_window_size(h->session, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW)) {
        http2_conn_deinit(c);
        return ERR_NOMEM;
    }
    bufferevent_setwatermark(c->bev, EV_WRITE, OUT_LOW, 0);
    http_conn_arm(c, cfg->idle_timeout_ms);
    return 0;
}

void http2_conn_deinit(struct http_conn *c)
{
    if (!c->h2)
        return;
    nghttp2_session_del(c->h2->session);
    free(c->h2);
    c->h2 = NULL;
}

/* h2_handler_busy: whether the handler owes a response; otherwise the connection is idle
 * (nothing arriving, nothing the client reads) after idle_timeout_ms without traffic. */
static bool h2_handler_busy(const struct http_conn *c)
{
    for (const struct http_req *q = c->reqs; q; q = q->next)
        if (q->state == HTTP_REQ_READY || q->state == HTTP_REQ_ACTIVE ||
            q->state == HTTP_REQ_STREAMING || q->state == HTTP_REQ_GONE)
            return true;
    return false;
}

void http2_conn_flush(struct http_conn *c)
{
    nghttp2_session *s = c->h2->session;
    struct evbuffer *out = c->out;
    if (c->h2->calm) {
        c->h2->calm = false;
        log_info("conn %llu: too many HTTP/2 errors", (unsigned long long)c->id);
        nghttp2_session_terminate_session(s, NGHTTP2_ENHANCE_YOUR_CALM);
    }
    while (http_conn_out_len(c) < OUT_HIGH) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(s, &data);
        if (n < 0 || (n > 0 && evbuffer_add(out, data, (size_t)n) != 0)) {
            c->want_close = true;
            return;
        }
        if (n == 0)
            break;
    }
    if (!nghttp2_session_want_read(s) && !nghttp2_session_want_write(s))
        c->closing = true;
    else
        http_conn_arm(c, h2_handler_busy(c) ? 0 : c->srv->cfg.idle_timeout_ms);
}

/* h2_deliver: hands every complete request to the handler, oldest first. */
static void h2_deliver(struct http_conn *c)
{
    struct http_req *q = c->reqs, *next;
    for (; q; q = next) {
        next = q->next;
        if (q->state == HTTP_REQ_READY)
            http_req_deliver(q);
    }
}

void http2_conn_process(struct http_conn *c)
{
    struct evbuffer *in = c->in;
    struct evbuffer_iovec v;
    while (evbuffer_peek(in, -1, NULL, &v, 1) >= 1 && v.iov_len > 0) {
        ssize_t n = nghttp2_session_mem_recv(c->h2->session, v.iov_base, v.iov_len);
        if (n < 0) {
            log_debug("conn %llu: HTTP/2: %s", (unsigned long long)c->id, nghttp2_strerror((int)n));
            c->want_close = true;
            return;
        }
        evbuffer_drain(in, (size_t)n);
    }
    h2_deliver(c);
    http2_conn_work(c);
}

void http2_conn_work(struct http_conn *c)
{
    struct http2_conn *h = c->h2;
    if (c->srv->draining && !h->noticed) {
        h->noticed = true;
        nghttp2_submit_shutdown_notice(h->session);
    }
    if (c->srv->goaway_due && !h->goaway) {
        h->goaway = true;
        nghttp2_submit_goaway(h->session, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(h->session), NGHTTP2_NO_ERROR,
                              NULL, 0);
    }
    http2_conn_flush(c);
}

void http2_conn_timeout(struct http_conn *c)
{
    nghttp2_session_terminate_session(c->h2->session, NGHTTP2_NO_ERROR);
    http2_conn_flush(c);
    c->closing = true;
}
