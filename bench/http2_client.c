/*
 * http2_client: HTTP/2 for the benchmark's client over an nghttp2 client session (h2c with
 * prior knowledge, or h2 after TLS ALPN). Streams open only once the server's SETTINGS have
 * arrived and only while fewer than its SETTINGS_MAX_CONCURRENT_STREAMS are open; the rest
 * wait in the client's FIFO queue. Our receive windows (connection and streams) are 1 GiB
 * so that flow control never slows a stream down. Frames leave through
 * nghttp2_session_mem_send into the socket's output, at most HC_H2_OUT_HIGH bytes ahead of
 * it. The contract is in http_client_internal.h.
 */
#include "bench/http_client_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "common/err.h"

#define HC_H2_WINDOW (1 << 30)        /* our initial stream window and connection window */
#define HC_H2_OUT_HIGH (1u << 20)     /* frames queued on the socket before we wait */
#define HC_H2_OUT_LOW (256u * 1024)   /* the socket drained to this: send more */
#define HC_H2_MAX_RETRIES 1           /* requeues of a request whose stream was refused */

static struct hc_req *hc_h2_req(nghttp2_session *s, int32_t stream_id)
{
    return nghttp2_session_get_stream_user_data(s, stream_id);
}

void hc_h2_cancel(struct hc_conn *k, struct hc_req *q)
{
    if (q->stream_id <= 0)
        return;
    nghttp2_session_set_stream_user_data(k->session, q->stream_id, NULL);
    nghttp2_submit_rst_stream(k->session, NGHTTP2_FLAG_NONE, q->stream_id, NGHTTP2_CANCEL);
    q->stream_id = 0;
}

/* hc_h2_fail: resets q's stream and fails q (from inside nghttp2's callbacks too). */
__attribute__((format(printf, 4, 5))) static void hc_h2_fail(struct hc_conn *k, struct hc_req *q,
                                                             int err, const char *fmt, ...)
{
    char msg[HC_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    hc_h2_cancel(k, q);
    hc_req_finish(q, err, msg);
}

/* ---- requests ---- */

static ssize_t hc_h2_read_body(nghttp2_session *s, int32_t stream_id, uint8_t *buf, size_t len,
                               uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    struct hc_req *q = hc_h2_req(s, stream_id);
    (void)src;
    (void)ud;
    if (!q)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* cancelled: the stream is reset */
    size_t n = q->body_n - q->body_off;
    if (n > len)
        n = len;
    memcpy(buf, q->body + q->body_off, n);
    q->body_off += n;
    if (q->body_off == q->body_n)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static nghttp2_nv hc_h2_nv(const char *name, size_t nn, const char *value, size_t vn)
{
    return (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, nn, vn, NGHTTP2_NV_FLAG_NONE};
}

/* hc_h2_submit_one: HEADERS (and a body) for q on a new stream. Returns 0, ERR_STATE (no
 * stream id left: a new connection is needed) or ERR_NOMEM. */
static int hc_h2_submit_one(struct hc_conn *k, struct hc_req *q)
{
    const struct hc_client *c = k->client;
    char cl[24];
    size_t n = 0;
    bool with_cl = q->body_n || !(q->head || !strcmp(q->method, "GET"));
    nghttp2_nv *nva = malloc((q->n_hdrs + 6) * sizeof *nva);
    if (!nva)
        return ERR_NOMEM;
    const char *scheme = c->cfg.tls ? "https" : "http";
    nva[n++] = hc_h2_nv(":method", 7, q->method, strlen(q->method));
    nva[n++] = hc_h2_nv(":scheme", 7, scheme, strlen(scheme));
    nva[n++] = hc_h2_nv(":authority", 10, c->authority, strlen(c->authority));
    nva[n++] = hc_h2_nv(":path", 5, q->path, strlen(q->path));
    if (q->ctype)
        nva[n++] = hc_h2_nv("content-type", 12, q->ctype, strlen(q->ctype));
    if (with_cl) {
        snprintf(cl, sizeof cl, "%zu", q->body_n);
        nva[n++] = hc_h2_nv("content-length", 14, cl, strlen(cl));
    }
    for (size_t i = 0; i < q->n_hdrs; i++) /* names already lowercase */
        nva[n++] = hc_h2_nv(q->hdrs[i].name, q->hdrs[i].name_n, q->hdrs[i].value,
                            q->hdrs[i].value_n);
    nghttp2_data_provider prd = {.read_callback = hc_h2_read_body};
    int32_t id = nghttp2_submit_request(k->session, NULL, nva, n, q->body_n ? &prd : NULL, q);
    free(nva);
    if (id < 0)
        return id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE ? ERR_STATE : ERR_NOMEM;
    q->stream_id = id;
    q->conn = k;
    q->body_off = 0;
    hc_list_push(&k->reqs, q);
    k->n_streams++;
    return 0;
}

/* hc_h2_retire: k takes no new streams; new requests go to a new connection. */
static void hc_h2_retire(struct hc_conn *k)
{
    k->goaway = true;
    if (k->client->h2 == k)
        k->client->h2 = NULL;
    if (k->client->wait.n)
        hc_kick(k->client);
}

void hc_h2_submit(struct hc_conn *k)
{
    struct hc_client *c = k->client;
    if (k->ready && !k->goaway) {
        uint32_t max = nghttp2_session_get_remote_settings(
            k->session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
        size_t budget = c->wait.n; /* on_done may queue more: those wait for a later turn */
        while (c->wait.head && k->n_streams < max && budget--) {
            struct hc_req *q = c->wait.head;
            hc_req_unlink(q);
            int rv = hc_h2_submit_one(k, q);
            if (rv == ERR_STATE) {
                hc_list_unshift(&c->wait, q);
                hc_h2_retire(k);
                break;
            }
            if (rv)
                hc_req_finish(q, rv, "out of memory");
        }
    }
    hc_h2_flush(k);
}

bool hc_h2_flush(struct hc_conn *k)
{
    struct evbuffer *out = bufferevent_get_output(k->bev);
    char msg[HC_MSG_MAX];
    while (evbuffer_get_length(out) < HC_H2_OUT_HIGH) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(k->session, &data);
        if (n < 0) {
            snprintf(msg, sizeof msg, "HTTP/2: %s", nghttp2_strerror((int)n));
            hc_conn_close(k, ERR_IO, msg);
            return false;
        }
        if (n == 0)
            break;
        if (evbuffer_add(out, data, (size_t)n) != 0) {
            hc_conn_close(k, ERR_NOMEM, "out of memory");
            return false;
        }
    }
    if (!nghttp2_session_want_read(k->session) && !nghttp2_session_want_write(k->session)) {
        hc_conn_close(k, k->err ? k->err : ERR_IO, k->msg[0] ? k->msg : "HTTP/2 session ended");
        return false;
    }
    return true;
}

void hc_h2_read(struct hc_conn *k)
{
    struct evbuffer *in = bufferevent_get_input(k->bev);
    struct evbuffer_iovec v;
    char msg[HC_MSG_MAX];
    while (evbuffer_peek(in, -1, NULL, &v, 1) >= 1 && v.iov_len > 0) {
        ssize_t n = nghttp2_session_mem_recv(k->session, v.iov_base, v.iov_len);
        if (n < 0) {
            snprintf(msg, sizeof msg, "HTTP/2: %s", nghttp2_strerror((int)n));
            hc_conn_close(k, ERR_PARSE, msg);
            return;
        }
        evbuffer_drain(in, (size_t)n);
    }
    hc_h2_submit(k); /* streams may have closed, SETTINGS may have come: send what waits */
}

/* ---- nghttp2 callbacks ---- */

static int hc_h2_on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                           size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *ud)
{
    struct hc_conn *k = ud;
    struct hc_req *q = hc_h2_req(s, f->hd.stream_id);
    (void)flags;
    if (!q || f->hd.type != NGHTTP2_HEADERS)
        return 0;
    q->got_bytes = true;
    q->header_bytes += nlen + vlen;
    if (q->header_bytes > HC_MAX_HEADER_BYTES) {
        hc_h2_fail(k, q, ERR_LIMIT, "response headers over %u bytes", HC_MAX_HEADER_BYTES);
        return 0;
    }
    if (nlen == 7 && memcmp(name, ":status", 7) == 0) {
        int st = 0;
        for (size_t i = 0; i < vlen && i < 4; i++)
            st = value[i] >= '0' && value[i] <= '9' ? st * 10 + (value[i] - '0') : -1000;
        q->pending_status = vlen == 3 ? st : -1;
    }
    return 0;
}

/* hc_h2_on_headers_done: a header block ended: the final status is reported once; 1xx
 * blocks are skipped; later blocks are trailers. */
static void hc_h2_on_headers_done(struct hc_conn *k, struct hc_req *q)
{
    int st = q->pending_status;
    q->pending_status = 0;
    if (q->status)
        return; /* trailers */
    if (st >= 100 && st < 200 && st != 101)
        return;
    if (st < 200 || st > 999) {
        hc_h2_fail(k, q, ERR_PARSE, "malformed response: bad or missing :status");
        return;
    }
    q->status = st;
    if (q->cb.on_headers)
        q->cb.on_headers(q->ud, st);
}

static int hc_h2_on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    struct hc_conn *k = ud;
    struct hc_req *q;
    switch (f->hd.type) {
    case NGHTTP2_SETTINGS:
        if (!(f->hd.flags & NGHTTP2_FLAG_ACK))
            k->ready = true;
        return 0;
    case NGHTTP2_GOAWAY:
        if (f->goaway.error_code != NGHTTP2_NO_ERROR) {
            k->err = ERR_IO;
            snprintf(k->msg, sizeof k->msg, "the server ended the connection: %s",
                     nghttp2_http2_strerror(f->goaway.error_code));
        }
        hc_h2_retire(k);
        return 0;
    case NGHTTP2_HEADERS:
    case NGHTTP2_DATA:
        break;
    default:
        return 0;
    }
    if (!(q = hc_h2_req(s, f->hd.stream_id)))
        return 0;
    if (f->hd.type == NGHTTP2_HEADERS) {
        hc_h2_on_headers_done(k, q);
        if (!hc_h2_req(s, f->hd.stream_id))
            return 0; /* failed */
    }
    if (f->hd.flags & NGHTTP2_FLAG_END_STREAM)
        q->ended = true;
    return 0;
}

static int hc_h2_on_data(nghttp2_session *s, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *ud)
{
    struct hc_conn *k = ud;
    struct hc_req *q = hc_h2_req(s, stream_id);
    size_t max = k->client->cfg.max_response_bytes;
    (void)flags;
    if (!q)
        return 0;
    q->got_bytes = true;
    if (len > max - q->body_bytes) {
        hc_h2_fail(k, q, ERR_LIMIT, "response body over %zu bytes", max);
        return 0;
    }
    q->body_bytes += len;
    if (q->cb.on_body && len)
        q->cb.on_body(q->ud, (const char *)data, len, k->t_read);
    return 0;
}

/* hc_h2_requeue: q was refused before the server processed it: it waits again. */
static void hc_h2_requeue(struct hc_conn *k, struct hc_req *q)
{
    struct hc_client *c = k->client;
    hc_req_unlink(q);
    q->conn = NULL;
    q->stream_id = 0;
    q->status = q->pending_status = 0;
    q->header_bytes = q->body_bytes = q->body_off = 0;
    q->ended = false;
    q->retries++;
    hc_list_unshift(&c->wait, q);
    hc_kick(c);
}

static int hc_h2_on_stream_close(nghttp2_session *s, int32_t stream_id, uint32_t error_code,
                                 void *ud)
{
    struct hc_conn *k = ud;
    struct hc_req *q = hc_h2_req(s, stream_id);
    if (k->n_streams)
        k->n_streams--;
    if (k->client->wait.n)
        hc_kick(k->client);
    if (!q)
        return 0;
    nghttp2_session_set_stream_user_data(s, stream_id, NULL);
    q->stream_id = 0;
    if (q->ended && q->status) {
        k->n_done++;
        hc_req_finish(q, 0, NULL);
    } else if (error_code == NGHTTP2_REFUSED_STREAM && !q->got_bytes &&
               q->retries < HC_H2_MAX_RETRIES) {
        hc_h2_requeue(k, q);
    } else {
        hc_req_fail(q, ERR_IO, "stream closed before the response ended: %s",
                    nghttp2_http2_strerror(error_code));
    }
    return 0;
}

/* hc_h2_on_not_sent: a request's HEADERS could not go out (GOAWAY came first, no stream id
 * left): its stream never opened, so no close callback follows. */
static int hc_h2_on_not_sent(nghttp2_session *s, const nghttp2_frame *f, int lib_error, void *ud)
{
    struct hc_conn *k = ud;
    struct hc_req *q;
    (void)s;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    if (k->n_streams)
        k->n_streams--;
    for (q = k->reqs.head; q && q->stream_id != f->hd.stream_id; q = q->next)
        ;
    if (!q)
        return 0;
    hc_h2_retire(k);
    if (q->retries < HC_H2_MAX_RETRIES)
        hc_h2_requeue(k, q);
    else
        hc_req_fail(q, ERR_IO, "request not sent: %s", nghttp2_strerror(lib_error));
    return 0;
}

static int hc_h2_on_invalid(nghttp2_session *s, const nghttp2_frame *f, int lib_error, void *ud)
{
    struct hc_req *q = hc_h2_req(s, f->hd.stream_id);
    if (q && f->hd.stream_id > 0)
        hc_h2_fail(ud, q, ERR_PARSE, "malformed response: %s", nghttp2_strerror(lib_error));
    return 0;
}

/* ---- the session ---- */

static nghttp2_session_callbacks *hc_h2_callbacks(void)
{
    nghttp2_session_callbacks *cb;
    if (nghttp2_session_callbacks_new(&cb) != 0)
        return NULL;
    nghttp2_session_callbacks_set_on_header_callback(cb, hc_h2_on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, hc_h2_on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, hc_h2_on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, hc_h2_on_stream_close);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(cb, hc_h2_on_not_sent);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cb, hc_h2_on_invalid);
    return cb;
}

int hc_h2_init(struct hc_conn *k)
{
    nghttp2_session_callbacks *cb = hc_h2_callbacks();
    if (!cb)
        return ERR_NOMEM;
    int rv = nghttp2_session_client_new(&k->session, cb, k);
    nghttp2_session_callbacks_del(cb);
    if (rv != 0) {
        k->session = NULL;
        return ERR_NOMEM;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, HC_H2_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, HC_MAX_HEADER_BYTES},
    };
    if (nghttp2_submit_settings(k->session, NGHTTP2_FLAG_NONE, iv, 3) != 0 ||
        nghttp2_session_set_local_window_size(k->session, NGHTTP2_FLAG_NONE, 0, HC_H2_WINDOW)) {
        hc_h2_deinit(k);
        return ERR_NOMEM;
    }
    bufferevent_setwatermark(k->bev, EV_WRITE, HC_H2_OUT_LOW, 0);
    return 0;
}

void hc_h2_deinit(struct hc_conn *k)
{
    nghttp2_session_del(k->session); /* runs no callbacks */
    k->session = NULL;
}
