/*
 * http: kiln's HTTP server, protocol-independent view. One listening socket serves HTTP/1.1
 * (parsed by Debian's http-parser library: keep-alive, chunked request bodies, responses
 * with Content-Length or chunked for streams) and HTTP/2 cleartext with prior knowledge
 * (nghttp2; the connection preface "PRI * HTTP/2.0" is detected on a connection's first
 * bytes). An "Upgrade: h2c" request is answered as plain HTTP/1.1 (OPERATIONS.md).
 *
 * Handlers see one struct http_request per exchange, with the whole body (bounded by
 * max_body: 413 before reading past it), and answer with http_respond (a whole response) or
 * http_stream_begin / http_stream_write / http_stream_end (a streamed one: HTTP/1.1 chunked,
 * HTTP/2 DATA frames flushed as written). A handler may answer later, from another event
 * callback on the same event base (the engine's tokens arrive that way).
 *
 * Lifetimes: a request lives from on_request until the response is complete (http_respond
 * or http_stream_end returned) or on_abort was called, whichever comes first; its arena is
 * freed then. on_abort tells the handler the client went away (EOF or RST on HTTP/1.1,
 * RST_STREAM or connection close on HTTP/2, a write error, or a stream whose queued bytes
 * passed max_queued) before the response was complete: the handler must drop every pointer
 * to the request. on_abort is never called during a call the handler makes into this API; a
 * response call on a request whose client is gone returns ERR_STATE until on_abort runs
 * from the event loop.
 *
 * Limits, enforced by the protocol layers and answered with the OpenAI error shape (the
 * server's error formatter): header list bytes (431), header count (431), URL bytes (414),
 * body bytes (413), headers complete within header_timeout_ms (the connection is closed),
 * idle connections closed after idle_timeout_ms, HTTP/2 max_concurrent_streams (SETTINGS),
 * rapid-reset and CONTINUATION-flood protection (nghttp2 options), protocol-error budget per
 * connection (GOAWAY ENHANCE_YOUR_CALM).
 *
 * Threads: everything runs on the event base's thread. The process must ignore SIGPIPE
 * (a write to a socket the client closed raises it).
 */
#ifndef KILN_HTTP_H
#define KILN_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/arena.h"

struct event_base;
struct http_server;
struct http_conn;

struct http_header {
    const char *name; /* lowercase (HTTP/1.1 names are lowercased on receipt) */
    size_t name_len;
    const char *value;
    size_t value_len;
};

struct http_request {
    const char *method; /* NUL-terminated, e.g. "POST" */
    const char *path;   /* NUL-terminated request target without the query string */
    const char *query;  /* NUL-terminated query string without '?', "" when none */
    const struct http_header *headers; /* [n_headers], in the request's arena */
    size_t n_headers;
    const char *body; /* [body_len] bytes, NUL-terminated; "" when none */
    size_t body_len;
    int version;         /* 1 (HTTP/1.1, also 1.0) or 2 */
    struct arena *arena; /* per-request memory, freed when the request ends */
    void *user;          /* the handler's; NULL at first */
    /* internal to the protocol layers */
    struct http_conn *conn;
    int32_t stream_id;
};

struct http_handler {
    /* on_request: a complete request. Answer now or later (see the top of this file). */
    void (*on_request)(struct http_request *r, void *ctx);
    /* on_abort: the client is gone before the response completed; r dies after this. */
    void (*on_abort)(struct http_request *r, void *ctx);
    /* format_error: the body of an error the protocol layer answers by itself (413, 431,
     * 400 for a malformed request): writes JSON into out[0..cap) and returns its length. */
    size_t (*format_error)(int status, const char *message, char *out, size_t cap);
    void *ctx;
};

struct http_server_config {
    const char *host; /* address to bind, e.g. "0.0.0.0" or "127.0.0.1" */
    int port;         /* 0: any free port (see http_server_port) */
    bool reuseport;   /* SO_REUSEPORT, so that several frontend processes share the port */
    int listen_fd;    /* >= 0: use this bound, listening socket (owned once _new succeeds) */
    size_t max_header_bytes;     /* header list bytes, counted name + value + 32 (32 KiB) */
    size_t max_headers;          /* header fields (100) */
    size_t max_url_bytes;        /* request target bytes (8 KiB) */
    size_t max_body;             /* request body bytes (4 MiB) */
    size_t max_queued;           /* response bytes queued per stream before abort (1 MiB) */
    size_t arena_limit;          /* bytes a request's arena may take (64 MiB) */
    uint32_t max_streams;        /* HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS (100) */
    int header_timeout_ms;       /* 10000 */
    int idle_timeout_ms;         /* 75000 */
    /* TLS: the certificate chain and private key, PEM files, both or neither. When set,
     * every connection on the listener is TLS 1.2 or 1.3 (OpenSSL's default ciphers, no
     * renegotiation) and ALPN picks the protocol: "h2" runs HTTP/2, anything else (or no
     * ALPN) HTTP/1.1; cleartext HTTP/2 with prior knowledge is not served. The handshake
     * counts against header_timeout_ms. NULL: cleartext. */
    const char *ssl_certfile;
    const char *ssl_keyfile;
    struct http_handler handler;
};

/* http_server_config_default: the limits above (host "127.0.0.1", port 8000, no fd). */
struct http_server_config http_server_config_default(void);

/* http_server_new: binds and listens (or adopts listen_fd) on base. Returns 0 and *out, or
 * ERR_IO (bind/listen failed: err says why), ERR_INVAL (a bad configuration, or a
 * certificate or key that does not load: err names the file), ERR_NOMEM. */
int http_server_new(struct event_base *base, const struct http_server_config *c,
                    struct http_server **out, char *err, size_t errlen);

/* http_server_port: the bound port. */
int http_server_port(const struct http_server *s);

/* http_server_drain: stops accepting; HTTP/2 connections get GOAWAY (a shutdown notice, then
 * the real one about a second later), HTTP/1.1 responses carry "Connection: close" and idle
 * HTTP/1.1 connections are closed. In-flight requests go on. */
void http_server_drain(struct http_server *s);

/* http_server_n_requests: requests not yet complete (0 once drained and done). */
size_t http_server_n_requests(const struct http_server *s);

/* http_server_n_conns: client connections open. Once drained, every connection closes
 * after its last response is written, so drained with 0 connections means all was sent. */
size_t http_server_n_conns(const struct http_server *s);

/* http_server_free: closes every connection (aborting their requests: on_abort runs) and the
 * listener. NULL is a no-op. */
void http_server_free(struct http_server *s);

/* http_request_header: the value of header `name` (lowercase), or NULL; *len its length. */
const char *http_request_header(const struct http_request *r, const char *name, size_t *len);

/*
 * http_respond: the whole response: status, extra headers (Content-Length and, on HTTP/1.1,
 * Connection are added), body. The request is complete when it returns 0. Returns 0,
 * ERR_STATE (already answered or the client is gone), ERR_NOMEM.
 */
int http_respond(struct http_request *r, int status, const struct http_header *headers,
                 size_t n_headers, const void *body, size_t len);

/* http_stream_begin: starts a streamed response (HTTP/1.1: Transfer-Encoding: chunked).
 * Returns 0, ERR_STATE, ERR_NOMEM. */
int http_stream_begin(struct http_request *r, int status, const struct http_header *headers,
                      size_t n_headers);

/* http_stream_write: queues p[0..n) and sends it as soon as the socket allows. Returns 0,
 * ERR_STATE, ERR_NOMEM, or ERR_LIMIT when the bytes queued for this stream would pass
 * max_queued (a client that does not read): nothing is queued, and on_abort follows from
 * the event loop. */
int http_stream_write(struct http_request *r, const void *p, size_t n);

/* http_stream_end: ends the stream; the request is complete. Returns 0 or ERR_STATE. */
int http_stream_end(struct http_request *r);

/* http_stream_queued: response bytes queued for r and not yet written to the socket. */
size_t http_stream_queued(const struct http_request *r);

#endif
