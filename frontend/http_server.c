/*
 * http_server: the listener, connections, protocol sniffing, requests and the public API
 * of http.h. The protocols live in http1.c and http2.c, TLS in http_tls.c; http_internal.h
 * says who owns what.
 */
#include "frontend/http.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <http_parser.h>

#include "common/err.h"
#include "common/log.h"
#include "frontend/http_internal.h"

#define LINGER_MS 2000       /* after a final response: wait this long for EOF */
#define GOAWAY_DELAY_MS 1000 /* drain: notice, then the real GOAWAY */
#define ACCEPT_PAUSE_MS 100  /* accept failed (EMFILE): try again after this */
#define PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define PREFACE_LEN 24

static void conn_free(struct http_conn *c);

/* ---- configuration ---- */

struct http_server_config http_server_config_default(void)
{
    struct http_server_config c;
    memset(&c, 0, sizeof c);
    c.host = "127.0.0.1";
    c.port = 8000;
    c.listen_fd = -1;
    c.max_header_bytes = 32 * 1024;
    c.max_headers = 100;
    c.max_url_bytes = 8 * 1024;
    c.max_body = 4u << 20;
    c.max_queued = 1u << 20;
    c.arena_limit = 64u << 20;
    c.max_streams = 100;
    c.header_timeout_ms = 10000;
    c.idle_timeout_ms = 75000;
    return c;
}

static bool config_valid(const struct http_server_config *c)
{
    return c->handler.on_request && c->handler.on_abort && c->max_header_bytes > 0 &&
           c->max_headers > 0 && c->max_url_bytes > 0 && c->max_queued > 0 && c->arena_limit > 0 &&
           c->max_streams > 0 && c->header_timeout_ms > 0 && c->idle_timeout_ms > 0 &&
           c->port >= 0 && c->port <= 65535 && (c->listen_fd >= 0 || c->host);
}

/* ---- requests ---- */

struct http_req *http_req_new(struct http_conn *c)
{
    struct http_req *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    arena_init(&q->arena, c->srv->cfg.arena_limit, 0);
    q->srv = c->srv;
    q->pub.conn = c;
    q->pub.arena = &q->arena;
    q->pub.method = "";
    q->pub.path = "";
    q->pub.query = "";
    q->pub.body = "";
    q->pub.version = c->proto == HTTP_PROTO_2 ? 2 : 1;
    q->state = HTTP_REQ_RECV;
    q->proto_ref = true;
    q->prev = c->reqs_tail;
    if (c->reqs_tail)
        c->reqs_tail->next = q;
    else
        c->reqs = q;
    c->reqs_tail = q;
    return q;
}

static void req_free(struct http_req *q)
{
    arena_deinit(&q->arena);
    if (q->out)
        evbuffer_free(q->out);
    free(q);
}

void http_req_release(struct http_req *q)
{
    struct http_conn *c = q->pub.conn;
    if (c) {
        if (q->prev)
            q->prev->next = q->next;
        else
            c->reqs = q->next;
        if (q->next)
            q->next->prev = q->prev;
        else
            c->reqs_tail = q->prev;
    }
    q->prev = q->next = NULL;
    q->pub.conn = NULL;
    q->proto_ref = false;
    if (!q->user_ref)
        req_free(q);
}

int http_req_fail(struct http_req *q, int status, const char *msg)
{
    if (!q->err_status) {
        q->err_status = status;
        q->err_msg = msg;
    }
    return ERR_LIMIT;
}

static int req_arena_fail(struct http_req *q, int status)
{
    if (arena_error(&q->arena) == ERR_LIMIT)
        return http_req_fail(q, status, "request too large");
    http_req_fail(q, 503, "out of memory");
    return ERR_NOMEM;
}

int http_req_set_method(struct http_req *q, const char *p, size_t n)
{
    char *m = arena_strndup(&q->arena, p, n);
    if (!m)
        return req_arena_fail(q, 431);
    q->pub.method = m;
    q->head = n == 4 && memcmp(p, "HEAD", 4) == 0;
    return 0;
}

int http_req_set_target(struct http_req *q, const char *p, size_t n)
{
    struct http_parser_url u;
    if (n > q->srv->cfg.max_url_bytes)
        return http_req_fail(q, 414, "request target too long");
    http_parser_url_init(&u);
    if (n == 0 || http_parser_parse_url(p, n, 0, &u) != 0)
        return http_req_fail(q, 400, "malformed request target");
    const char *path = "/";
    size_t path_len = 1;
    if (u.field_set & (1 << UF_PATH)) {
        path = p + u.field_data[UF_PATH].off;
        path_len = u.field_data[UF_PATH].len;
    }
    char *ps = arena_strndup(&q->arena, path, path_len);
    char *qs = arena_strndup(&q->arena, p + u.field_data[UF_QUERY].off,
                             (u.field_set & (1 << UF_QUERY)) ? u.field_data[UF_QUERY].len : 0);
    if (!ps || !qs)
        return req_arena_fail(q, 414);
    q->pub.path = ps;
    q->pub.query = qs;
    return 0;
}

int http_req_count_header(struct http_req *q, size_t name_len, size_t value_len)
{
    const struct http_server_config *cfg = &q->srv->cfg;
    q->hdr_bytes += name_len + value_len + 32;
    if (q->hdr_bytes > cfg->max_header_bytes)
        return http_req_fail(q, 431, "request header fields too large");
    return 0;
}

int http_req_add_header(struct http_req *q, const char *name, size_t nlen, const char *value,
                        size_t vlen)
{
    if (q->n_hdrs >= q->srv->cfg.max_headers)
        return http_req_fail(q, 431, "too many request header fields");
    if (q->n_hdrs == q->cap_hdrs) {
        size_t cap = q->cap_hdrs ? q->cap_hdrs * 2 : 16;
        struct http_header *h =
            arena_realloc(&q->arena, q->hdrs, q->cap_hdrs * sizeof *h, cap * sizeof *h);
        if (!h)
            return req_arena_fail(q, 431);
        q->hdrs = h;
        q->cap_hdrs = cap;
    }
    char *n = arena_strndup(&q->arena, name, nlen);
    char *v = arena_strndup(&q->arena, value, vlen);
    if (!n || !v)
        return req_arena_fail(q, 431);
    for (size_t i = 0; i < nlen; i++)
        if (n[i] >= 'A' && n[i] <= 'Z')
            n[i] = (char)(n[i] - 'A' + 'a');
    q->hdrs[q->n_hdrs++] = (struct http_header){n, nlen, v, vlen};
    return 0;
}

static int req_grow_body(struct http_req *q, size_t need)
{
    size_t cap = q->body_cap ? q->body_cap : 1024;
    while (cap < need)
        cap *= 2;
    if (cap > q->srv->cfg.max_body + 1)
        cap = q->srv->cfg.max_body + 1;
    char *b = arena_realloc(&q->arena, q->body, q->body ? q->pub.body_len + 1 : 0, cap);
    if (!b)
        return req_arena_fail(q, 413);
    q->body = b;
    q->body_cap = cap;
    q->pub.body = b;
    return 0;
}

int http_req_reserve_body(struct http_req *q, uint64_t n)
{
    if (n > q->srv->cfg.max_body)
        return http_req_fail(q, 413, "request body too large");
    if (n + 1 <= q->body_cap)
        return 0;
    int rv = req_grow_body(q, (size_t)n + 1);
    if (rv == 0)
        q->body[q->pub.body_len] = '\0';
    return rv;
}

int http_req_append_body(struct http_req *q, const char *p, size_t n)
{
    size_t len = q->pub.body_len;
    if (n > q->srv->cfg.max_body - len)
        return http_req_fail(q, 413, "request body too large");
    if (len + n + 1 > q->body_cap) {
        int rv = req_grow_body(q, len + n + 1);
        if (rv)
            return rv;
    }
    memcpy(q->body + len, p, n);
    q->pub.body_len = len + n;
    q->body[len + n] = '\0';
    return 0;
}

const char *http_req_header(const struct http_req *q, const char *name, size_t *len)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < q->n_hdrs; i++) {
        if (q->hdrs[i].name_len == n && memcmp(q->hdrs[i].name, name, n) == 0) {
            if (len)
                *len = q->hdrs[i].value_len;
            return q->hdrs[i].value;
        }
    }
    return NULL;
}

void http_req_deliver(struct http_req *q)
{
    struct http_server *s = q->srv;
    q->pub.headers = q->hdrs;
    q->pub.n_headers = q->n_hdrs;
    q->state = HTTP_REQ_ACTIVE;
    q->user_ref = true;
    s->n_requests++;
    s->cfg.handler.on_request(&q->pub, s->cfg.handler.ctx);
}

void http_req_gone(struct http_req *q)
{
    struct http_server *s = q->srv;
    if (!q->user_ref || (q->state != HTTP_REQ_ACTIVE && q->state != HTTP_REQ_STREAMING))
        return;
    q->state = HTTP_REQ_GONE;
    q->abort_next = NULL;
    if (s->abort_tail)
        s->abort_tail->abort_next = q;
    else
        s->abort_head = q;
    s->abort_tail = q;
    event_active(s->ev_abort, 0, 0);
}

/* server_on_aborts: runs on_abort for every queued request (event, or http_server_free). */
static void server_on_aborts(evutil_socket_t fd, short what, void *arg)
{
    struct http_server *s = arg;
    (void)fd;
    (void)what;
    while (s->abort_head) {
        struct http_req *q = s->abort_head;
        s->abort_head = q->abort_next;
        if (!s->abort_head)
            s->abort_tail = NULL;
        s->cfg.handler.on_abort(&q->pub, s->cfg.handler.ctx);
        s->n_requests--;
        q->user_ref = false;
        if (!q->proto_ref)
            req_free(q);
        else
            arena_deinit(&q->arena);
    }
}

/* req_done: the handler's response is complete: it lets go of q. */
static void req_done(struct http_req *q)
{
    q->state = HTTP_REQ_DONE;
    q->user_ref = false;
    q->srv->n_requests--;
    arena_deinit(&q->arena);
    if (q->pub.conn)
        http_conn_kick(q->pub.conn);
    if (!q->proto_ref)
        req_free(q);
}

size_t http_error_body(const struct http_server *s, int status, const char *msg, char *out,
                       size_t cap)
{
    size_t n = 0;
    if (s->cfg.handler.format_error)
        n = s->cfg.handler.format_error(status, msg, out, cap);
    else
        n = (size_t)snprintf(out, cap,
                             "{\"error\":{\"message\":\"%s\",\"type\":\"invalid_request_error\","
                             "\"param\":null,\"code\":%d}}",
                             msg, status);
    return n < cap ? n : (cap ? cap - 1 : 0);
}

/* ---- connections ---- */

void http_conn_kick(struct http_conn *c)
{
    event_active(c->ev_work, 0, 0);
}

void http_conn_arm(struct http_conn *c, int ms)
{
    if (ms <= 0) {
        evtimer_del(c->ev_timer);
        return;
    }
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(c->ev_timer, &tv);
}

size_t http_conn_out_len(const struct http_conn *c)
{
    size_t n = evbuffer_get_length(bufferevent_get_output(c->bev));
    return c->tls ? n + evbuffer_get_length(c->out) : n;
}

/* conn_throttle: reading stops while the socket's input sits at its high-water mark (HTTP/1.1
 * parsing waits for a response or for the output to drain; TLS waits for room in c->in) and
 * goes on once it is below. Without this, libevent 2.1 runs the read callback again and
 * again, spinning, while the input stays there. */
static void conn_throttle(struct http_conn *c)
{
    bool full = evbuffer_get_length(bufferevent_get_input(c->bev)) >= HTTP_READ_HIGH_WATER;
    if (full == c->read_paused)
        return;
    c->read_paused = full;
    if (full)
        bufferevent_disable(c->bev, EV_READ);
    else
        bufferevent_enable(c->bev, EV_READ);
}

/* conn_settle: the end of every connection callback: frees the connection or moves its
 * closing on (output written: shut the write side, linger for the client's EOF). */
static void conn_settle(struct http_conn *c)
{
    if (c->tls && !c->want_close)
        http_tls_settle(c); /* encrypt, close_notify, resume decrypting */
    if (c->want_close) {
        conn_free(c);
        return;
    }
    conn_throttle(c);
    if (!c->closing || c->shut)
        return;
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    if (http_conn_out_len(c) > 0) {
        if (!evtimer_pending(c->ev_timer, NULL)) /* a client that never reads */
            http_conn_arm(c, c->srv->cfg.idle_timeout_ms);
        return;
    }
    shutdown(bufferevent_getfd(c->bev), SHUT_WR);
    c->shut = true;
    bufferevent_enable(c->bev, EV_READ);
    http_conn_arm(c, LINGER_MS);
}

/* conn_sniff: decides the protocol from the first bytes (TLS: from ALPN once the handshake
 * is complete). Returns false while undecided. */
static bool conn_sniff(struct http_conn *c)
{
    if (c->tls) {
        if (!http_tls_ready(c))
            return false;
        c->proto = http_tls_h2(c) ? HTTP_PROTO_2 : HTTP_PROTO_1; /* no ALPN: HTTP/1.1 */
    } else {
        size_t n = evbuffer_get_length(c->in);
        size_t k = n < PREFACE_LEN ? n : PREFACE_LEN;
        const unsigned char *p = n ? evbuffer_pullup(c->in, (ssize_t)k) : NULL;
        if (!p) {
            c->want_close = n > 0;
            return false;
        }
        bool h2 = memcmp(p, PREFACE, k) == 0;
        if (h2 && k < PREFACE_LEN)
            return false;
        c->proto = h2 ? HTTP_PROTO_2 : HTTP_PROTO_1;
    }
    int rv = c->proto == HTTP_PROTO_2 ? http2_conn_init(c) : http1_conn_init(c);
    if (rv != 0) {
        log_warn("conn %llu: out of memory", (unsigned long long)c->id);
        c->want_close = true;
        return false;
    }
    return true;
}

/* conn_eof: the client will send nothing more. HTTP/1.1 with nothing pending: write what
 * is queued, then close; otherwise close now. */
static void conn_eof(struct http_conn *c)
{
    if (c->shut || c->proto != HTTP_PROTO_1 || http1_conn_busy(c))
        c->want_close = true;
    else
        c->closing = true;
}

/* conn_read: input arrived (or, with TLS, room for more decrypted input): runs the
 * protocol over it. */
static void conn_read(struct http_conn *c)
{
    int tls = 0;
    if (c->closing || c->want_close) {
        struct evbuffer *in = bufferevent_get_input(c->bev);
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    if (c->tls && (tls = http_tls_read(c)) < 0) {
        c->closing = true; /* the TLS alert goes out, then the connection closes */
        if (tls == ERR_NOMEM)
            c->want_close = true;
        return;
    }
    if (c->proto != HTTP_PROTO_SNIFF || conn_sniff(c)) {
        if (c->proto == HTTP_PROTO_1)
            http1_conn_process(c);
        else
            http2_conn_process(c);
    }
    if (tls == HTTP_TLS_CLOSED && !c->want_close)
        conn_eof(c); /* close_notify */
}

static void conn_on_read(struct bufferevent *bev, void *arg)
{
    struct http_conn *c = arg;
    (void)bev;
    conn_read(c);
    conn_settle(c);
}

static void conn_on_write(struct bufferevent *bev, void *arg)
{
    struct http_conn *c = arg;
    (void)bev;
    if (c->proto == HTTP_PROTO_2 && !c->closing && !c->want_close)
        http2_conn_flush(c);
    else if (c->proto == HTTP_PROTO_1 && !c->closing && !c->want_close)
        http1_conn_process(c); /* pipelined requests wait for the output to drain */
    conn_settle(c);
}

static void conn_on_event(struct bufferevent *bev, short what, void *arg)
{
    struct http_conn *c = arg;
    (void)bev;
    if (what & BEV_EVENT_ERROR)
        c->want_close = true;
    else if (what & BEV_EVENT_EOF)
        conn_eof(c);
    conn_settle(c);
}

static void conn_on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct http_conn *c = arg;
    (void)fd;
    (void)what;
    if (c->proto == HTTP_PROTO_2 && !c->shut && !c->closing && !c->want_close)
        http2_conn_timeout(c);
    else
        c->want_close = true;
    conn_settle(c);
}

static void conn_on_work(evutil_socket_t fd, short what, void *arg)
{
    struct http_conn *c = arg;
    (void)fd;
    (void)what;
    if (http_tls_pending(c))
        conn_read(c); /* TLS input waited for room in c->in */
    if (c->want_close || c->shut) {
        /* nothing: settle below */
    } else if (c->proto == HTTP_PROTO_1) {
        http1_conn_process(c);
    } else if (c->proto == HTTP_PROTO_2) {
        if (!c->closing)
            http2_conn_work(c);
    } else if (c->srv->draining && evbuffer_get_length(bufferevent_get_input(c->bev)) == 0 &&
               evbuffer_get_length(c->in) == 0) {
        c->want_close = true; /* drained before its first byte */
    }
    conn_settle(c);
}

static int conn_new(struct http_server *s, evutil_socket_t fd)
{
    struct http_conn *c = calloc(1, sizeof *c);
    if (!c)
        goto fail_alloc;
    c->srv = s;
    c->id = ++s->next_conn_id;
    c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev)
        goto fail_bev;
    c->ev_work = event_new(s->base, -1, 0, conn_on_work, c);
    c->ev_timer = evtimer_new(s->base, conn_on_timer, c);
    if (!c->ev_work || !c->ev_timer)
        goto fail_events;
    c->in = bufferevent_get_input(c->bev);
    c->out = bufferevent_get_output(c->bev);
    if (s->tls && http_tls_conn_init(c, s->tls) != 0)
        goto fail_events;
    bufferevent_setcb(c->bev, conn_on_read, conn_on_write, conn_on_event, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, HTTP_READ_HIGH_WATER);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    http_conn_arm(c, s->cfg.header_timeout_ms);
    return 0;

fail_events:
    if (c->ev_work)
        event_free(c->ev_work);
    if (c->ev_timer)
        event_free(c->ev_timer);
    bufferevent_free(c->bev);
    free(c);
    return ERR_NOMEM;
fail_bev:
    free(c);
fail_alloc:
    evutil_closesocket(fd);
    return ERR_NOMEM;
}

/* conn_free: closes the connection now; delivered, unfinished requests get on_abort. */
static void conn_free(struct http_conn *c)
{
    struct http_server *s = c->srv;
    while (c->reqs) {
        http_req_gone(c->reqs);
        http_req_release(c->reqs);
    }
    if (c->proto == HTTP_PROTO_1)
        http1_conn_deinit(c);
    else if (c->proto == HTTP_PROTO_2)
        http2_conn_deinit(c);
    if (c->tls)
        http_tls_conn_deinit(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->n_conns--;
    event_free(c->ev_work);
    event_free(c->ev_timer);
    bufferevent_free(c->bev);
    free(c);
}

/* ---- the server ---- */

static void server_on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                             int salen, void *arg)
{
    struct http_server *s = arg;
    (void)l;
    (void)salen;
    if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    evutil_make_socket_nonblocking(fd);
    if (conn_new(s, fd) != 0)
        log_warn("http: out of memory accepting a connection");
}

/* server_on_accept_error: out of descriptors or memory: pause accepting for a moment
 * instead of spinning on a listener that stays readable. */
static void server_on_accept_error(struct evconnlistener *l, void *arg)
{
    struct http_server *s = arg;
    struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
    log_warn("http: accept failed: %s", strerror(errno));
    evconnlistener_disable(l);
    evtimer_add(s->ev_accept, &tv);
}

static void server_on_accept_retry(evutil_socket_t fd, short what, void *arg)
{
    struct http_server *s = arg;
    (void)fd;
    (void)what;
    if (s->listener)
        evconnlistener_enable(s->listener);
}

static void server_on_goaway(evutil_socket_t fd, short what, void *arg)
{
    struct http_server *s = arg;
    (void)fd;
    (void)what;
    s->goaway_due = true;
    for (struct http_conn *c = s->conns; c; c = c->next)
        http_conn_kick(c);
}

/* server_bind: a bound, listening, non-blocking socket for host:port. */
static int server_bind(const struct http_server_config *c, int *fd_out, char *err, size_t errlen)
{
    char port[16];
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(port, sizeof port, "%d", c->port);
    int rv = getaddrinfo(c->host, port, &hints, &res);
    if (rv != 0) {
        snprintf(err, errlen, "%s: %s", c->host, gai_strerror(rv));
        return ERR_IO;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail_socket;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (c->reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
        goto fail_bind;
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 1024) != 0)
        goto fail_bind;
    freeaddrinfo(res);
    *fd_out = fd;
    return 0;

fail_bind:
    close(fd);
fail_socket:
    snprintf(err, errlen, "%s:%d: %s", c->host, c->port, strerror(errno));
    freeaddrinfo(res);
    return ERR_IO;
}

static int server_port_of(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}

int http_server_new(struct event_base *base, const struct http_server_config *c,
                    struct http_server **out, char *err, size_t errlen)
{
    int fd = c->listen_fd, rv = ERR_NOMEM;
    if (!c->ssl_certfile != !c->ssl_keyfile) {
        snprintf(err, errlen, "TLS needs both a certificate file and a key file");
        return ERR_INVAL;
    }
    if (!base || !config_valid(c)) {
        snprintf(err, errlen, "invalid HTTP server configuration");
        return ERR_INVAL;
    }
    struct http_server *s = calloc(1, sizeof *s);
    if (!s)
        goto fail_alloc;
    s->base = base;
    s->cfg = *c;
    if (c->ssl_certfile &&
        (rv = http_tls_ctx_new(c->ssl_certfile, c->ssl_keyfile, &s->tls, err, errlen)) != 0)
        goto fail_tls;
    rv = ERR_NOMEM;
    s->ev_abort = event_new(base, -1, 0, server_on_aborts, s);
    s->ev_goaway = evtimer_new(base, server_on_goaway, s);
    s->ev_accept = evtimer_new(base, server_on_accept_retry, s);
    if (!s->ev_abort || !s->ev_goaway || !s->ev_accept)
        goto fail_events;
    if (fd < 0 && (rv = server_bind(c, &fd, err, errlen)) != 0)
        goto fail_events;
    evutil_make_socket_nonblocking(fd);
    s->port = server_port_of(fd);
    s->listener = evconnlistener_new(base, server_on_accept, s, LEV_OPT_CLOSE_ON_FREE, 0, fd);
    if (!s->listener) {
        if (c->listen_fd < 0)
            close(fd);
        rv = ERR_NOMEM;
        goto fail_events;
    }
    evconnlistener_set_error_cb(s->listener, server_on_accept_error);
    *out = s;
    return 0;

fail_events:
    if (s->ev_abort)
        event_free(s->ev_abort);
    if (s->ev_goaway)
        event_free(s->ev_goaway);
    if (s->ev_accept)
        event_free(s->ev_accept);
    http_tls_ctx_free(s->tls);
fail_tls:
    free(s);
fail_alloc:
    if (rv == ERR_NOMEM)
        snprintf(err, errlen, "out of memory");
    return rv;
}

int http_server_port(const struct http_server *s)
{
    return s->port;
}

void http_server_drain(struct http_server *s)
{
    if (s->draining)
        return;
    s->draining = true;
    if (s->listener) {
        evconnlistener_free(s->listener);
        s->listener = NULL;
    }
    for (struct http_conn *c = s->conns; c; c = c->next)
        http_conn_kick(c);
    struct timeval tv = {GOAWAY_DELAY_MS / 1000, (GOAWAY_DELAY_MS % 1000) * 1000};
    evtimer_add(s->ev_goaway, &tv);
}

size_t http_server_n_requests(const struct http_server *s)
{
    return s->n_requests;
}

size_t http_server_n_conns(const struct http_server *s)
{
    return s->n_conns;
}

void http_server_free(struct http_server *s)
{
    if (!s)
        return;
    if (s->listener)
        evconnlistener_free(s->listener);
    while (s->conns)
        conn_free(s->conns);
    server_on_aborts(-1, 0, s);
    event_free(s->ev_abort);
    event_free(s->ev_goaway);
    event_free(s->ev_accept);
    http_tls_ctx_free(s->tls);
    free(s);
}

/* ---- the response API ---- */

static struct http_req *req_of(struct http_request *r)
{
    return (struct http_req *)r; /* pub is the first member */
}

const char *http_request_header(const struct http_request *r, const char *name, size_t *len)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < r->n_headers; i++) {
        if (r->headers[i].name_len == n && memcmp(r->headers[i].name, name, n) == 0) {
            if (len)
                *len = r->headers[i].value_len;
            return r->headers[i].value;
        }
    }
    return NULL;
}

int http_respond(struct http_request *r, int status, const struct http_header *headers,
                 size_t n_headers, const void *body, size_t len)
{
    struct http_req *q = req_of(r);
    if (!q || q->state != HTTP_REQ_ACTIVE || !q->pub.conn)
        return ERR_STATE;
    int rv = q->pub.version == 2 ? http2_respond(q, status, headers, n_headers, body, len)
                                 : http1_respond(q, status, headers, n_headers, body, len);
    if (rv == 0)
        req_done(q);
    return rv;
}

int http_stream_begin(struct http_request *r, int status, const struct http_header *headers,
                      size_t n_headers)
{
    struct http_req *q = req_of(r);
    if (!q || q->state != HTTP_REQ_ACTIVE || !q->pub.conn)
        return ERR_STATE;
    int rv = q->pub.version == 2 ? http2_stream_begin(q, status, headers, n_headers)
                                 : http1_stream_begin(q, status, headers, n_headers);
    if (rv == 0)
        q->state = HTTP_REQ_STREAMING;
    return rv;
}

int http_stream_write(struct http_request *r, const void *p, size_t n)
{
    struct http_req *q = req_of(r);
    if (!q || q->state != HTTP_REQ_STREAMING || !q->pub.conn)
        return ERR_STATE;
    if (n == 0)
        return 0;
    int rv = q->pub.version == 2 ? http2_stream_write(q, p, n) : http1_stream_write(q, p, n);
    if (rv == ERR_LIMIT) {
        /* a reader that fell behind: the stream ends, on_abort follows from the loop */
        struct http_conn *c = q->pub.conn;
        http_req_gone(q);
        if (q->pub.version == 2) {
            http2_req_cancel(q);
        } else {
            c->want_close = true;
            http_conn_kick(c);
        }
    }
    return rv;
}

int http_stream_end(struct http_request *r)
{
    struct http_req *q = req_of(r);
    if (!q || q->state != HTTP_REQ_STREAMING || !q->pub.conn)
        return ERR_STATE;
    int rv = q->pub.version == 2 ? http2_stream_end(q) : http1_stream_end(q);
    if (rv == 0)
        req_done(q);
    return rv;
}

size_t http_stream_queued(const struct http_request *r)
{
    const struct http_req *q = (const struct http_req *)r;
    if (!q || !q->pub.conn)
        return 0;
    return q->pub.version == 2 ? http2_queued(q) : http1_queued(q);
}
