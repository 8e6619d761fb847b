/*
 * http_internal: what the four parts of the HTTP server share, and nothing outside
 * frontend/http_server.c, frontend/http1.c, frontend/http2.c and frontend/http_tls.c may use.
 *
 *   http_server.c  listener, connections (bufferevents, timers, deferred work, closing),
 *                  protocol sniffing, requests (arena, headers, body, limits), the abort
 *                  queue and the public API of http.h, which dispatches to:
 *   http1.c        HTTP/1.1 over Debian's http-parser: one request at a time per
 *                  connection (pipelined ones wait, unparsed, in the input buffer)
 *   http2.c        HTTP/2 over nghttp2: many streams per connection
 *   http_tls.c     TLS (OpenSSL over memory BIOs) between the socket's bufferevent and the
 *                  connection's plaintext buffers c->in and c->out; ALPN picks h2 or http/1.1
 *
 * Bytes. The protocols read c->in and write c->out, never the bufferevent's buffers. On a
 * cleartext connection those are the bufferevent's own input and output; on a TLS
 * connection they are separate buffers: http_tls_read decrypts the socket's input into
 * c->in, http_tls_settle encrypts c->out into the socket's output (a bounded amount ahead
 * of the socket, so that a slow reader's bytes wait, countable, in c->out). Output queued
 * for the client is http_conn_out_len: both buffers.
 *
 * Ownership. The server owns its connections. A connection refers to the requests it is
 * receiving or sending (proto_ref, the list c->reqs); the handler refers to a request from
 * delivery until the response is complete or on_abort has run (user_ref). A request is
 * freed when neither refers to it. Connections are freed only at the end of an event
 * callback of http_server.c (conn_settle): the protocol parts never free one, they set
 * c->want_close (close now, aborting requests) or c->closing (flush the output, then
 * close). Calls from the handler never free anything and never call on_abort; what they
 * start finishes in the connection's deferred work (http_conn_kick).
 *
 * Threads: everything runs on the server's event-base thread.
 */
#ifndef KILN_HTTP_INTERNAL_H
#define KILN_HTTP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/arena.h"
#include "frontend/http.h"

struct bufferevent;
struct evbuffer;
struct event;
struct evconnlistener;
struct http1_conn;
struct http2_conn;
struct http_tls;
struct http_tls_ctx;

#define HTTP_READ_HIGH_WATER (1u << 20) /* input buffered before reading pauses */

enum http_proto {
    HTTP_PROTO_SNIFF, /* fewer than 24 bytes seen, all a prefix of the HTTP/2 preface */
    HTTP_PROTO_1,
    HTTP_PROTO_2
};

enum http_req_state {
    HTTP_REQ_RECV,      /* being received; the handler has not seen it */
    HTTP_REQ_READY,     /* received whole; delivery pending */
    HTTP_REQ_ACTIVE,    /* delivered; no response begun */
    HTTP_REQ_STREAMING, /* delivered; a streamed response begun */
    HTTP_REQ_DONE,      /* response complete or answered by the protocol layer */
    HTTP_REQ_GONE       /* delivered, client gone: on_abort pending */
};

struct http_req {
    struct http_request pub; /* first: the handler holds &pub */
    struct http_server *srv;
    struct arena arena;
    enum http_req_state state;
    bool user_ref;       /* the handler holds it (counted in srv->n_requests) */
    bool proto_ref;      /* a connection holds it (in c->reqs) */
    bool head;           /* a HEAD request: responses carry no body */
    bool keep_alive;     /* HTTP/1.x: the connection stays open after this response */
    bool http10;         /* HTTP/1.0: no chunked responses */
    bool chunked;        /* HTTP/1.1: the streamed response is chunked */
    bool ended;          /* HTTP/2: no more bytes will be added to out */
    bool deferred;       /* HTTP/2: the data source answered NGHTTP2_ERR_DEFERRED */
    bool rejected;       /* HTTP/2: answered by the protocol layer (4xx) */
    int err_status;      /* a limit passed while receiving: the status to answer; 0 when none */
    const char *err_msg; /* its message (a literal) */
    struct http_header *hdrs;     /* [cap_hdrs], arena */
    size_t n_hdrs, cap_hdrs;      /* fields stored, room */
    size_t hdr_bytes;             /* header list bytes: name + value + 32 each */
    char *body;                   /* [body_cap], arena; NULL until the first byte */
    size_t body_cap;              /* bytes at body, the NUL's included */
    struct evbuffer *out;         /* HTTP/2: response bytes nghttp2 has not taken */
    struct http_req *prev, *next; /* the connection's requests, oldest first */
    struct http_req *abort_next;  /* the server's queue of pending aborts */
};

struct http_conn {
    struct http_server *srv;
    struct http_conn *prev, *next; /* the server's connections */
    struct bufferevent *bev;
    struct evbuffer *in;    /* plaintext from the client (the bufferevent's, or TLS's) */
    struct evbuffer *out;   /* plaintext to the client (the bufferevent's, or TLS's) */
    struct http_tls *tls;   /* NULL on a cleartext connection */
    struct event *ev_work;  /* deferred work: resume parsing, flush, drain */
    struct event *ev_timer; /* header, idle or linger timeout */
    enum http_proto proto;
    bool want_close;  /* close at the end of this callback, aborting requests */
    bool closing;     /* process no more input; close once the output is written */
    bool shut;        /* output written and the write side shut: lingering for EOF */
    bool read_paused; /* the socket's input is at its high-water mark: not reading */
    struct http_req *reqs, *reqs_tail;
    struct http1_conn *h1; /* HTTP_PROTO_1 */
    struct http2_conn *h2; /* HTTP_PROTO_2 */
    uint64_t id;
};

struct http_server {
    struct event_base *base;
    struct http_server_config cfg;
    struct evconnlistener *listener; /* NULL once draining */
    struct http_tls_ctx *tls;        /* every connection is TLS; NULL: cleartext */
    int port;
    struct http_conn *conns;
    size_t n_conns;
    size_t n_requests;
    struct http_req *abort_head, *abort_tail;
    struct event *ev_abort;  /* delivers the abort queue */
    struct event *ev_goaway; /* drain: the real HTTP/2 GOAWAY, a second after the notice */
    struct event *ev_accept; /* accepting again after a failed accept */
    bool draining;
    bool goaway_due;
    uint64_t next_conn_id;
};

/* ---- http_server.c: connections ---- */

/* http_conn_kick: schedules the connection's deferred work (safe from handler calls). */
void http_conn_kick(struct http_conn *c);

/* http_conn_out_len: bytes queued for the client and not yet written to the socket
 * (plaintext waiting for TLS included). */
size_t http_conn_out_len(const struct http_conn *c);

/* http_conn_arm: (re)starts the connection's timer for ms milliseconds; ms <= 0 stops it.
 * When it fires the connection closes (HTTP/2 first sends GOAWAY). */
void http_conn_arm(struct http_conn *c, int ms);

/* ---- http_server.c: requests ---- */

/* http_req_new: a request in state RECV, linked into c->reqs (proto_ref). NULL when out of
 * memory. */
struct http_req *http_req_new(struct http_conn *c);

/* http_req_release: the connection lets go of q (unlinks it); freed unless the handler
 * still holds it. */
void http_req_release(struct http_req *q);

/* http_req_fail: records a receive error (status, literal message) unless one is recorded;
 * returns ERR_LIMIT for the caller to pass on. */
int http_req_fail(struct http_req *q, int status, const char *msg);

/* http_req_set_method: copies the method. Returns 0 or ERR_NOMEM/ERR_LIMIT (recorded). */
int http_req_set_method(struct http_req *q, const char *p, size_t n);

/* http_req_set_target: checks max_url_bytes (414) and splits the request target into path
 * and query (400 when it does not parse). Returns 0 or an ERR_* (recorded). */
int http_req_set_target(struct http_req *q, const char *p, size_t n);

/* http_req_count_header: adds one field to the header list size and count limits (431).
 * Returns 0 or ERR_LIMIT (recorded). */
int http_req_count_header(struct http_req *q, size_t name_len, size_t value_len);

/* http_req_add_header: stores one field (name lowercased) in the arena; does not count it.
 * Returns 0 or an ERR_* (recorded). */
int http_req_add_header(struct http_req *q, const char *name, size_t nlen, const char *value,
                        size_t vlen);

/* http_req_reserve_body: makes room for a body of n bytes (413 past max_body). */
int http_req_reserve_body(struct http_req *q, uint64_t n);

/* http_req_append_body: appends body bytes (413 past max_body). Returns 0 or an ERR_*
 * (recorded). */
int http_req_append_body(struct http_req *q, const char *p, size_t n);

/* http_req_header: the value of the stored field `name` (lowercase) or NULL. */
const char *http_req_header(const struct http_req *q, const char *name, size_t *len);

/* http_req_deliver: READY -> ACTIVE, counted, and on_request runs. */
void http_req_deliver(struct http_req *q);

/* http_req_gone: the client of a delivered, unfinished request is gone: queues on_abort
 * (run from the event loop). No-op in any other state. */
void http_req_gone(struct http_req *q);

/* http_error_body: the OpenAI-shaped error body (the handler's format_error). */
size_t http_error_body(const struct http_server *s, int status, const char *msg, char *out,
                       size_t cap);

/* ---- http1.c ---- */

/* http1_conn_init / deinit: HTTP/1.1 state of a connection. init returns 0 or ERR_NOMEM. */
int http1_conn_init(struct http_conn *c);
void http1_conn_deinit(struct http_conn *c);

/* http1_conn_process: parses buffered input and delivers requests, one at a time; after a
 * response completes, frees it and goes on (or starts closing). Read and work events. */
void http1_conn_process(struct http_conn *c);

/* http1_conn_busy: whether a delivered request awaits its response. */
bool http1_conn_busy(const struct http_conn *c);

/* The response calls, for a delivered request in the right state (http_server.c checks):
 * 0, ERR_NOMEM, or ERR_LIMIT from http1_stream_write (max_queued). */
int http1_respond(struct http_req *q, int status, const struct http_header *h, size_t nh,
                  const void *body, size_t len);
int http1_stream_begin(struct http_req *q, int status, const struct http_header *h, size_t nh);
int http1_stream_write(struct http_req *q, const void *p, size_t n);
int http1_stream_end(struct http_req *q);
size_t http1_queued(const struct http_req *q);

/* ---- http2.c ---- */

/* http2_conn_init / deinit: the nghttp2 server session, SETTINGS submitted at once.
 * init returns 0 or ERR_NOMEM. */
int http2_conn_init(struct http_conn *c);
void http2_conn_deinit(struct http_conn *c);

/* http2_conn_process: feeds buffered input to nghttp2, delivers complete requests, flushes. */
void http2_conn_process(struct http_conn *c);

/* http2_conn_work: drain notices and GOAWAY when due, then http2_conn_flush. */
void http2_conn_work(struct http_conn *c);

/* http2_conn_flush: moves frames from nghttp2 to the socket's output, up to a bound; starts
 * closing when the session is over. */
void http2_conn_flush(struct http_conn *c);

/* http2_conn_timeout: idle: GOAWAY, then close. */
void http2_conn_timeout(struct http_conn *c);

/* http2_req_cancel: RST_STREAM(CANCEL) for a stream whose reader fell behind. */
void http2_req_cancel(struct http_req *q);

int http2_respond(struct http_req *q, int status, const struct http_header *h, size_t nh,
                  const void *body, size_t len);
int http2_stream_begin(struct http_req *q, int status, const struct http_header *h, size_t nh);
int http2_stream_write(struct http_req *q, const void *p, size_t n);
int http2_stream_end(struct http_req *q);
size_t http2_queued(const struct http_req *q);

/* ---- http_tls.c ---- */

/* http_tls_ctx_new: the server's TLS settings: the certificate chain and private key (PEM
 * files), TLS 1.2 at least, OpenSSL's default ciphers, no renegotiation, ALPN "h2" then
 * "http/1.1". Returns 0 and *out, ERR_INVAL (a file does not load: err names it) or
 * ERR_NOMEM. Freed with http_tls_ctx_free (NULL is a no-op). */
int http_tls_ctx_new(const char *certfile, const char *keyfile, struct http_tls_ctx **out,
                     char *err, size_t errlen);
void http_tls_ctx_free(struct http_tls_ctx *x);

/* http_tls_conn_init: makes c a TLS connection in the accepting state (c->in and c->out
 * become its own plaintext buffers). Returns 0 or ERR_NOMEM. deinit frees it all. */
int http_tls_conn_init(struct http_conn *c, struct http_tls_ctx *x);
void http_tls_conn_deinit(struct http_conn *c);

/* http_tls_read: moves the socket's input through OpenSSL (the handshake, then records
 * decrypted into c->in until it holds HTTP_READ_HIGH_WATER bytes) and what OpenSSL answers
 * to the socket's output. Returns 0, HTTP_TLS_CLOSED (the client sent close_notify: no more
 * input), ERR_PARSE (a TLS error: the alert is queued, the connection must close) or
 * ERR_NOMEM. */
#define HTTP_TLS_CLOSED 1
int http_tls_read(struct http_conn *c);

/* http_tls_ready: whether the handshake is complete. http_tls_h2: whether ALPN chose h2. */
bool http_tls_ready(const struct http_conn *c);
bool http_tls_h2(const struct http_conn *c);

/* http_tls_settle: the end of a connection callback: encrypts c->out into the socket's
 * output (a bounded amount ahead of the socket), sends close_notify once a closing
 * connection's plaintext is out, and kicks the connection when input waits for room in
 * c->in. A failure sets c->want_close. */
void http_tls_settle(struct http_conn *c);

/* http_tls_pending: whether decrypting stopped because c->in was full (http_tls_read
 * should run again once the protocol consumed it). */
bool http_tls_pending(const struct http_conn *c);

#endif
