/*
 * http_test_server: the HTTP server of frontend/http.h with test routes, for
 * tests/frontend/test_http.py. Prints "listening on PORT" on stdout once it accepts.
 * --ssl-certfile and --ssl-keyfile serve TLS (ALPN h2 and http/1.1) instead of cleartext.
 *
 *   POST /echo             the body back, with the request's content-type
 *   GET  /stream?n=K&ms=M  K SSE events "data: i\n\n", M ms apart, then the end
 *   GET  /slow?ms=M&size=S an event of S bytes every M ms until the client goes away
 *   GET  /wait?ms=M        a whole response ("waited") after M ms
 *   GET  /stats            {"completed","aborted","n_requests","n_conns","pid"}
 *   anything else          404 with an OpenAI-shaped error body
 *
 * SIGTERM drains (http_server_drain) and exits 0 once no request and no connection is left
 * (or after --shutdown-timeout-ms); a second SIGTERM exits at once.
 */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/cfg.h"
#include "common/err.h"
#include "common/log.h"
#include "frontend/http.h"

struct opts {
    const char *host, *ssl_certfile, *ssl_keyfile;
    long long port, max_body, max_queued, max_headers, max_header_bytes, max_url_bytes;
    long long max_streams, header_timeout_ms, idle_timeout_ms, shutdown_timeout_ms;
    bool reuseport;
};

#define F(name, field, def, lo, hi, help)                                                          \
    {                                                                                              \
        name, CFG_INT, offsetof(struct opts, field), def, lo, hi, NULL, help                       \
    }
static const struct cfg_flag flags[] = {
    {"host", CFG_STRING, offsetof(struct opts, host), "127.0.0.1", 0, 0, NULL, "bind address"},
    F("port", port, "0", 0, 65535, "port (0: any free one)"),
    F("max-body", max_body, "4194304", 0, 1e12, "request body bytes"),
    F("max-queued", max_queued, "1048576", 1, 1e12, "response bytes queued per stream"),
    F("max-headers", max_headers, "100", 1, 1e6, "header fields"),
    F("max-header-bytes", max_header_bytes, "32768", 1, 1e9, "header list bytes"),
    F("max-url-bytes", max_url_bytes, "8192", 1, 1e9, "request target bytes"),
    F("max-streams", max_streams, "100", 1, 1e6, "HTTP/2 concurrent streams"),
    F("header-timeout-ms", header_timeout_ms, "10000", 1, 1e9, "headers complete within"),
    F("idle-timeout-ms", idle_timeout_ms, "75000", 1, 1e9, "idle connections close after"),
    F("shutdown-timeout-ms", shutdown_timeout_ms, "30000", 1, 1e9, "drain at most this long"),
    {"reuseport", CFG_BOOL, offsetof(struct opts, reuseport), NULL, 0, 0, NULL, "SO_REUSEPORT"},
    {"ssl-certfile", CFG_STRING, offsetof(struct opts, ssl_certfile), NULL, 0, 0, NULL,
     "TLS certificate chain (PEM)"},
    {"ssl-keyfile", CFG_STRING, offsetof(struct opts, ssl_keyfile), NULL, 0, 0, NULL,
     "TLS private key (PEM)"},
};

struct app {
    struct event_base *base;
    struct http_server *srv;
    struct event *ev_check; /* drain: polls for the end */
    unsigned long long completed, aborted;
    int n_signals;
    long long drain_ms;
};

/* a streamed or delayed response in progress */
struct job {
    struct app *app;
    struct http_request *r;
    struct event *ev;
    int kind; /* 0 stream, 1 slow, 2 wait */
    long i, n, ms;
    size_t size;
};

static size_t format_error(int status, const char *message, char *out, size_t cap)
{
    const char *type = status >= 500 ? "server_error" : "invalid_request_error";
    int n = snprintf(out, cap,
                     "{\"error\":{\"message\":\"%s\",\"type\":\"%s\",\"param\":null,\"code\":%d}}",
                     message, type, status);
    return n < 0 ? 0 : (size_t)n;
}

static long query_long(const char *query, const char *key, long def)
{
    size_t k = strlen(key);
    for (const char *p = query; p && *p;) {
        if (strncmp(p, key, k) == 0 && p[k] == '=')
            return strtol(p + k + 1, NULL, 10);
        p = strchr(p, '&');
        p = p ? p + 1 : NULL;
    }
    return def;
}

static void job_free(struct job *j)
{
    event_free(j->ev);
    free(j);
}

static void job_arm(struct job *j)
{
    long ms = j->kind != 2 && j->i == 0 ? 0 : j->ms; /* the first event at once */
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(j->ev, &tv);
}

static void job_done(struct job *j, int rv)
{
    if (rv == 0) {
        j->app->completed++;
        j->r->user = NULL;
        job_free(j);
    }
    /* else the client is gone: on_abort frees the job */
}

static void job_tick(evutil_socket_t fd, short what, void *arg)
{
    struct job *j = arg;
    char line[64];
    (void)fd;
    (void)what;
    if (j->kind == 2) {
        job_done(j, http_respond(j->r, 200, NULL, 0, "waited", 6));
        return;
    }
    if (j->kind == 0 && j->i >= j->n) {
        job_done(j, http_stream_end(j->r));
        return;
    }
    int rv;
    if (j->kind == 0) {
        int k = snprintf(line, sizeof line, "data: %ld\n\n", j->i);
        rv = http_stream_write(j->r, line, (size_t)k);
    } else {
        char *p = malloc(j->size);
        if (!p)
            return;
        memset(p, 'x', j->size);
        rv = http_stream_write(j->r, p, j->size);
        free(p);
    }
    j->i++;
    if (rv == 0)
        job_arm(j);
}

static void start_job(struct app *a, struct http_request *r, int kind)
{
    static const struct http_header sse[] = {{"content-type", 12, "text/event-stream", 17},
                                             {"cache-control", 13, "no-cache", 8}};
    struct job *j = calloc(1, sizeof *j);
    if (!j || !(j->ev = evtimer_new(a->base, job_tick, j))) {
        free(j);
        http_respond(r, 500, NULL, 0, "oom", 3);
        return;
    }
    j->app = a;
    j->r = r;
    j->kind = kind;
    j->n = query_long(r->query, "n", 5);
    j->ms = query_long(r->query, "ms", kind == 1 ? 100 : 0);
    j->size = (size_t)query_long(r->query, "size", 64);
    if (j->size < 1 || j->size > (16u << 20))
        j->size = 64;
    r->user = j;
    if (kind != 2 && http_stream_begin(r, 200, sse, 2) != 0) {
        job_free(j);
        r->user = NULL;
        return;
    }
    job_arm(j);
}

static void respond_stats(struct app *a, struct http_request *r)
{
    static const struct http_header json[] = {{"content-type", 12, "application/json", 16}};
    char body[256];
    int n = snprintf(body, sizeof body,
                     "{\"completed\":%llu,\"aborted\":%llu,\"n_requests\":%zu,\"n_conns\":%zu,"
                     "\"pid\":%d}",
                     a->completed, a->aborted, http_server_n_requests(a->srv),
                     http_server_n_conns(a->srv), (int)getpid());
    if (http_respond(r, 200, json, 1, body, (size_t)n) == 0)
        a->completed++;
}

static void on_request(struct http_request *r, void *ctx)
{
    struct app *a = ctx;
    bool get = strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0;
    if (strcmp(r->method, "POST") == 0 && strcmp(r->path, "/echo") == 0) {
        size_t n;
        const char *ct = http_request_header(r, "content-type", &n);
        struct http_header h = {"content-type", 12, ct ? ct : "application/octet-stream",
                                ct ? n : 24};
        if (http_respond(r, 200, &h, 1, r->body, r->body_len) == 0)
            a->completed++;
    } else if (get && strcmp(r->path, "/stream") == 0) {
        start_job(a, r, 0);
    } else if (get && strcmp(r->path, "/slow") == 0) {
        start_job(a, r, 1);
    } else if (get && strcmp(r->path, "/wait") == 0) {
        start_job(a, r, 2);
    } else if (get && strcmp(r->path, "/stats") == 0) {
        respond_stats(a, r);
    } else {
        static const struct http_header json[] = {{"content-type", 12, "application/json", 16}};
        char body[512];
        size_t n = format_error(404, "not found", body, sizeof body);
        if (http_respond(r, 404, json, 1, body, n) == 0)
            a->completed++;
    }
}

static void on_abort(struct http_request *r, void *ctx)
{
    struct app *a = ctx;
    a->aborted++;
    log_info("abort %s %s?%s", r->method, r->path, r->query);
    if (r->user)
        job_free(r->user);
    r->user = NULL;
}

static void on_check(evutil_socket_t fd, short what, void *arg)
{
    struct app *a = arg;
    (void)fd;
    (void)what;
    a->drain_ms -= 20;
    if ((http_server_n_requests(a->srv) == 0 && http_server_n_conns(a->srv) == 0) ||
        a->drain_ms <= 0)
        event_base_loopexit(a->base, NULL);
}

static void on_sigterm(evutil_socket_t fd, short what, void *arg)
{
    struct app *a = arg;
    (void)fd;
    (void)what;
    if (++a->n_signals > 1)
        _exit(0);
    log_info("draining");
    http_server_drain(a->srv);
    struct timeval tv = {0, 20000};
    event_add(a->ev_check, &tv);
}

static struct http_server_config make_config(const struct opts *o, struct app *a)
{
    struct http_server_config c = http_server_config_default();
    c.host = o->host;
    c.port = (int)o->port;
    c.reuseport = o->reuseport;
    c.max_body = (size_t)o->max_body;
    c.max_queued = (size_t)o->max_queued;
    c.max_headers = (size_t)o->max_headers;
    c.max_header_bytes = (size_t)o->max_header_bytes;
    c.max_url_bytes = (size_t)o->max_url_bytes;
    c.max_streams = (uint32_t)o->max_streams;
    c.header_timeout_ms = (int)o->header_timeout_ms;
    c.idle_timeout_ms = (int)o->idle_timeout_ms;
    c.ssl_certfile = o->ssl_certfile;
    c.ssl_keyfile = o->ssl_keyfile;
    c.handler = (struct http_handler){on_request, on_abort, format_error, a};
    return c;
}

int main(int argc, char **argv)
{
    struct opts o;
    struct app a = {0};
    char err[256];
    int rv = cfg_parse(flags, sizeof flags / sizeof flags[0], &o, argc - 1, argv + 1, NULL, 0, NULL,
                       err, sizeof err);
    if (rv == CFG_HELP) {
        cfg_print_help(stdout, "usage: http_test_server [flags]", flags,
                       sizeof flags / sizeof flags[0]);
        return 0;
    }
    if (rv != 0) {
        fprintf(stderr, "http_test_server: %s\n", err);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    a.base = event_base_new();
    a.drain_ms = o.shutdown_timeout_ms;
    struct http_server_config c = make_config(&o, &a);
    if (!a.base || http_server_new(a.base, &c, &a.srv, err, sizeof err) != 0) {
        fprintf(stderr, "http_test_server: %s\n", a.base ? err : "no event base");
        return 1;
    }
    struct event *sig = evsignal_new(a.base, SIGTERM, on_sigterm, &a);
    a.ev_check = event_new(a.base, -1, EV_PERSIST, on_check, &a);
    evsignal_add(sig, NULL);
    printf("listening on %d\n", http_server_port(a.srv));
    fflush(stdout);
    event_base_dispatch(a.base);
    http_server_free(a.srv);
    event_free(sig);
    event_free(a.ev_check);
    event_base_free(a.base);
    return 0;
}
