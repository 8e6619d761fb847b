/*
 * http_client_internal: what http_client.c (requests, the wait queue, connections, timers),
 * http1_client.c (HTTP/1.1 over http_parser), http2_client.c (HTTP/2 over nghttp2) and
 * http_client_tls.c (OpenSSL) share. Not for use outside bench/http*client*.c.
 *
 * Ownership: the client owns its connections and its waiting requests; a connection owns
 * the requests it carries (HTTP/1.1: at most one). A request is on exactly one list at a
 * time (the client's wait queue or its connection's) until hc_req_finish frees it. Every
 * user callback runs from a libevent callback (a socket read, a timer, the client's kick),
 * never from hc_request; a user callback may call hc_request (it only queues and kicks) but
 * not hc_client_free.
 */
#ifndef KILN_BENCH_HTTP_CLIENT_INTERNAL_H
#define KILN_BENCH_HTTP_CLIENT_INTERNAL_H

#include "bench/http_client.h"

#include <stdint.h>

#include <http_parser.h>
#include <nghttp2/nghttp2.h>

struct bufferevent;
struct addrinfo;
struct event;

#define HC_MAX_HEADER_BYTES (64u * 1024)  /* status line and header fields of one response */
#define HC_DEFAULT_MAX_BODY ((size_t)64 << 20)
#define HC_MSG_MAX 256                   /* error messages handed to on_done */

struct hc_req;
struct hc_conn;

/* a list of requests (the client's wait queue, a connection's requests) */
struct hc_req_list {
    struct hc_req *head, *tail;
    size_t n;
};

struct hc_header {
    const char *name, *value; /* into hc_req.hmem, NUL-terminated */
    size_t name_n, value_n;
};

struct hc_req {
    struct hc_client *client;
    struct hc_req_list *list; /* the list it is on, NULL when on none */
    struct hc_req *prev, *next;
    struct hc_conn *conn; /* carrying it; NULL while waiting */
    char *method, *path, *ctype; /* ctype may be NULL */
    char *hmem;                  /* the headers' names and values */
    struct hc_header *hdrs;
    size_t n_hdrs;
    char *body;
    size_t body_n, body_off; /* body_off: HTTP/2, bytes handed to nghttp2 */
    struct hc_callbacks cb;
    void *ud;
    struct event *timer; /* the request's timeout */
    int32_t stream_id;   /* HTTP/2 */
    int status;          /* the final status once reported, else 0 */
    int pending_status;  /* HTTP/2: :status of the header block being read */
    size_t header_bytes; /* of the response being read */
    size_t body_bytes;
    unsigned retries; /* times requeued after a stale connection or a refused stream */
    bool got_bytes;   /* response bytes arrived: never retried */
    bool head;        /* HEAD: the response has no body */
    bool interim;     /* HTTP/1.1: the response being read is a 1xx */
    bool ended;       /* HTTP/2: END_STREAM received */
};

struct hc_conn {
    struct hc_client *client;
    struct hc_conn *prev, *next; /* the client's connections: idle HTTP/1.1 ones first */
    struct bufferevent *bev;
    struct hc_req_list reqs;
    double t_read;      /* hc_now() when the bytes being processed came off the socket */
    unsigned n_done;    /* responses completed on it */
    size_t addr_idx;    /* which of the client's addresses it connects to */
    bool connected;     /* TCP (and TLS) established */
    bool h2;
    /* HTTP/1.1 */
    http_parser parser;
    bool complete;   /* the parser paused after a whole response */
    bool keep_alive; /* ... and the connection may carry another */
    int err;       /* a failure found inside a parser callback */
    char msg[HC_MSG_MAX];
    /* HTTP/2 */
    nghttp2_session *session;
    size_t n_streams; /* streams opened and not yet closed */
    bool ready;       /* the server's SETTINGS arrived */
    bool goaway;      /* no new streams on it */
};

struct hc_client {
    struct event_base *base;
    struct hc_config cfg; /* cfg.host points at host */
    char *host;
    char *authority; /* "host:port" ("[v6]:port"), for Host and :authority */
    struct addrinfo *addrs;
    size_t n_addrs, addr_cur; /* addresses resolved; the one new connections use */
    void *tls_ctx;            /* SSL_CTX when cfg.tls */
    struct hc_req_list wait;  /* requests not on a connection yet, FIFO */
    struct hc_conn *conns, *conns_tail; /* HTTP/1.1: idle ones first, LIFO */
    int n_conns;
    struct hc_conn *h2; /* HTTP/2: the connection new streams go to */
    struct event *kick; /* runs hc_dispatch on the next loop turn */
    bool freeing;
};

/* ---- http_client.c ---- */

/* hc_kick: hc_dispatch will run on the loop's next turn (not from inside this call). */
void hc_kick(struct hc_client *c);

void hc_list_push(struct hc_req_list *l, struct hc_req *q);
void hc_list_unshift(struct hc_req_list *l, struct hc_req *q);
void hc_req_unlink(struct hc_req *q);

/* hc_req_finish: unlinks q, reports on_done(err, msg) and frees q. */
void hc_req_finish(struct hc_req *q, int err, const char *msg);

/* hc_req_fail: hc_req_finish with a printf-formatted message. */
void hc_req_fail(struct hc_req *q, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* hc_conn_close: closes k; its requests fail with err and msg (or wait again when they can
 * safely be retried). err 0: k carries no request. Frees k: the caller returns at once. */
void hc_conn_close(struct hc_conn *k, int err, const char *msg);

/* hc_conn_idle: an HTTP/1.1 connection finished its request: first in line for the next. */
void hc_conn_idle(struct hc_conn *k);

/* ---- http1_client.c ---- */

void hc_h1_init(struct hc_conn *k);
/* hc_h1_send: writes q's request on the idle connection k, which then carries q. Returns 0
 * or ERR_NOMEM (q not taken). */
int hc_h1_send(struct hc_conn *k, struct hc_req *q);
/* hc_h1_read, hc_h1_eof: input arrived; the server closed. Either may close k. */
void hc_h1_read(struct hc_conn *k);
void hc_h1_eof(struct hc_conn *k);

/* ---- http2_client.c ---- */

/* hc_h2_init: the session, our SETTINGS and window. Returns 0 or ERR_NOMEM. */
int hc_h2_init(struct hc_conn *k);
void hc_h2_deinit(struct hc_conn *k);
/* hc_h2_submit: opens streams for waiting requests while the server's
 * SETTINGS_MAX_CONCURRENT_STREAMS allows, then flushes. May close k. */
void hc_h2_submit(struct hc_conn *k);
/* hc_h2_read: feeds the input to nghttp2 and flushes. May close k. */
void hc_h2_read(struct hc_conn *k);
/* hc_h2_flush: frames out to the socket. May close k (returns false then). */
bool hc_h2_flush(struct hc_conn *k);
/* hc_h2_cancel: resets q's stream and detaches q from it (q stays on k's list). */
void hc_h2_cancel(struct hc_conn *k, struct hc_req *q);

/* ---- http_client_tls.c ---- */

/* hc_tls_ctx_new: a client SSL_CTX offering ALPN h2 (http2) or http/1.1, no certificate
 * verification. Returns 0, ERR_NOMEM. */
int hc_tls_ctx_new(bool http2, void **out);
void hc_tls_ctx_free(void *ctx);
/* hc_tls_bev_new: a bufferevent doing the TLS client handshake on the connecting socket fd
 * (closed with the bufferevent), SNI `host` unless it is an address. NULL on failure (fd
 * not closed then). */
struct bufferevent *hc_tls_bev_new(struct event_base *base, void *ctx, int fd, const char *host);
/* hc_tls_alpn_h2: whether the handshake on bev chose h2. */
bool hc_tls_alpn_h2(struct bufferevent *bev);
/* hc_tls_why: OpenSSL's reason for bev's last failure into msg, or "" when none. */
void hc_tls_why(struct bufferevent *bev, char *msg, size_t n);

#endif
