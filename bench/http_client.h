/*
 * http_client: the benchmark's HTTP client on a libevent loop: HTTP/1.1 (keep-alive pool, one
 * request per connection at a time) or HTTP/2 over cleartext with prior knowledge (h2c, one
 * connection, many streams), optionally over TLS (https://, ALPN h2 or http/1.1).
 *
 * The caller owns the event_base and runs it. A request reports its status line and headers
 * once, then its body bytes as they arrive (chunked transfer decoded; HTTP/2 DATA frames), each
 * with the CLOCK_MONOTONIC time of the socket read that delivered them, then exactly one
 * on_done. Every callback runs on the loop's thread. Sizes are bounded (header bytes, body
 * bytes per response) and a response that passes them fails that request with ERR_LIMIT; a
 * broken connection fails the requests on it, never the client.
 */
#ifndef KILN_BENCH_HTTP_CLIENT_H
#define KILN_BENCH_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct hc_client;

struct hc_config {
    const char *host;          /* name or address to connect to */
    int port;
    bool tls;                  /* https:// */
    bool http2;                /* h2c prior knowledge (or ALPN h2 with tls); false: HTTP/1.1 */
    int max_connections;       /* HTTP/1.1: most connections open at once (0: unlimited);
                                  requests past it wait in FIFO order */
    size_t max_response_bytes; /* per response body; 0: 64 MiB */
    double timeout_s;          /* per request, from send to on_done; 0: none */
};

struct hc_callbacks {
    /* on_headers: the response's status code (called once, before any body). */
    void (*on_headers)(void *ud, int status);
    /* on_body: n body bytes; t is the CLOCK_MONOTONIC time (seconds) of the read that
     * delivered them. */
    void (*on_body)(void *ud, const char *p, size_t n, double t);
    /* on_done: the request ended: err 0 (whole response read) or a negative ERR_* code with
     * a message (connect failure, reset, timeout, limit, malformed response). Called exactly
     * once; after it the client does not touch ud again. */
    void (*on_done)(void *ud, int err, const char *msg);
};

/* hc_now: CLOCK_MONOTONIC in seconds (the clock of on_body's t). */
double hc_now(void);

/* hc_client_new: a client for one origin on `base`. Connects lazily. Returns 0, ERR_INVAL
 * (bad config), ERR_NOMEM or ERR_UNSUPPORTED (TLS asked but unavailable). */
int hc_client_new(struct event_base *base, const struct hc_config *cfg, struct hc_client **out);

/* hc_request: sends `method path` with the body (may be NULL when n == 0) and its
 * content_type (may be NULL), plus `headers` ("Name: value\r\n" lines, may be NULL). The
 * client copies everything it needs before returning. Returns 0 (callbacks will follow, none
 * of them before this returns) or a negative ERR_* code (no callback will follow). */
int hc_request(struct hc_client *c, const char *method, const char *path,
               const char *content_type, const char *body, size_t n, const char *headers,
               const struct hc_callbacks *cb, void *ud);

/* hc_client_free: closes every connection; requests still open get on_done(ERR_STATE)
 * first. NULL is a no-op. */
void hc_client_free(struct hc_client *c);

#endif
