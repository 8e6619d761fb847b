/*
 * http_client: requests, the FIFO wait queue, connections and timers. A request waits in
 * the client's queue until the kick (an event made active, so it runs on the loop's next
 * turn) hands it to a connection: HTTP/1.1 takes an idle connection or opens one while
 * under max_connections; HTTP/2 opens streams on the one current connection while the
 * server's SETTINGS_MAX_CONCURRENT_STREAMS allows. The protocols live in http1_client.c and
 * http2_client.c; the shared structures in http_client_internal.h.
 */
#include "bench/http_client.h"

#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>

#include "bench/http_client_internal.h"
#include "common/err.h"

double hc_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- request lists ---- */

void hc_list_push(struct hc_req_list *l, struct hc_req *q)
{
    q->list = l;
    q->next = NULL;
    q->prev = l->tail;
    if (l->tail)
        l->tail->next = q;
    else
        l->head = q;
    l->tail = q;
    l->n++;
}

void hc_list_unshift(struct hc_req_list *l, struct hc_req *q)
{
    q->list = l;
    q->prev = NULL;
    q->next = l->head;
    if (l->head)
        l->head->prev = q;
    else
        l->tail = q;
    l->head = q;
    l->n++;
}

void hc_req_unlink(struct hc_req *q)
{
    struct hc_req_list *l = q->list;
    if (!l)
        return;
    if (q->prev)
        q->prev->next = q->next;
    else
        l->head = q->next;
    if (q->next)
        q->next->prev = q->prev;
    else
        l->tail = q->prev;
    l->n--;
    q->list = NULL;
    q->prev = q->next = NULL;
}

/* ---- requests ---- */

static void hc_req_free(struct hc_req *q)
{
    if (q->timer)
        event_free(q->timer);
    free(q->method);
    free(q->path);
    free(q->ctype);
    free(q->hmem);
    free(q->hdrs);
    free(q->body);
    free(q);
}

void hc_req_finish(struct hc_req *q, int err, const char *msg)
{
    struct hc_callbacks cb = q->cb;
    void *ud = q->ud;
    hc_req_unlink(q);
    hc_req_free(q);
    cb.on_done(ud, err, err ? (msg && *msg ? msg : err_name(err)) : "");
}

void hc_req_fail(struct hc_req *q, int err, const char *fmt, ...)
{
    char msg[HC_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    hc_req_finish(q, err, msg);
}

/* hc_requeue: q goes back to the head of the wait queue to be sent again. */
static void hc_requeue(struct hc_req *q)
{
    hc_req_unlink(q);
    q->conn = NULL;
    q->stream_id = 0;
    q->status = q->pending_status = 0;
    q->header_bytes = q->body_bytes = q->body_off = 0;
    q->interim = q->ended = false;
    hc_list_unshift(&q->client->wait, q);
}

static void hc_req_on_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct hc_req *q = arg;
    struct hc_conn *k = q->conn;
    char msg[64];
    (void)fd;
    (void)what;
    snprintf(msg, sizeof msg, "timed out after %g s", q->client->cfg.timeout_s);
    if (!k) {
        hc_req_finish(q, ERR_IO, msg);
    } else if (k->h2) {
        hc_h2_cancel(k, q);
        hc_req_finish(q, ERR_IO, msg);
        hc_h2_flush(k);
    } else {
        hc_req_finish(q, ERR_IO, msg);
        hc_conn_close(k, 0, NULL); /* the rest of its response cannot be told apart */
    }
}

/* ---- validation of what hc_request copies ---- */

static bool hc_tchar(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static bool hc_token_ok(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!hc_tchar((unsigned char)s[i]))
            return false;
    return true;
}

/* hc_value_ok: a field value that cannot split a message: no CR, LF or NUL. */
static bool hc_value_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
            return false;
    return true;
}

static bool hc_path_ok(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || (unsigned char)*s == 0x7f)
            return false;
    return true;
}

/* hc_header_ours: fields the client writes itself (framing, connection, authority). */
static bool hc_header_ours(const char *name, size_t n)
{
    static const char *const own[] = {"host",       "content-length",   "transfer-encoding",
                                      "connection", "proxy-connection", "keep-alive",
                                      "upgrade",    "te"};
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
        if (strlen(own[i]) == n && strncasecmp(own[i], name, n) == 0)
            return true;
    return false;
}

static void hc_trim(const char **p, size_t *n)
{
    while (*n && (**p == ' ' || **p == '\t')) {
        (*p)++;
        (*n)--;
    }
    while (*n && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t'))
        (*n)--;
}

/* hc_headers_parse: "Name: value\r\n" lines (LF alone or no final line end accepted; blank
 * lines skipped) into q->hdrs, names lowercased, our own fields dropped. Returns 0,
 * ERR_INVAL or ERR_NOMEM. */
static int hc_headers_parse(struct hc_req *q, const char *s)
{
    size_t len = strlen(s), lines = 1;
    for (size_t i = 0; i < len; i++)
        lines += s[i] == '\n';
    q->hmem = malloc(len + lines + 1);
    q->hdrs = calloc(lines, sizeof *q->hdrs);
    if (!q->hmem || !q->hdrs)
        return ERR_NOMEM;
    char *w = q->hmem;
    for (const char *p = s; *p;) {
        const char *nl = strchr(p, '\n'), *end = nl ? nl : p + strlen(p);
        const char *next = nl ? nl + 1 : end;
        if (end > p && end[-1] == '\r')
            end--;
        if (end == p) {
            p = next;
            continue;
        }
        const char *colon = memchr(p, ':', (size_t)(end - p));
        if (!colon || !hc_token_ok(p, (size_t)(colon - p)))
            return ERR_INVAL;
        const char *v = colon + 1;
        size_t nn = (size_t)(colon - p), vn = (size_t)(end - v);
        hc_trim(&v, &vn);
        if (!hc_value_ok(v, vn))
            return ERR_INVAL;
        if (!hc_header_ours(p, nn)) {
            struct hc_header *h = &q->hdrs[q->n_hdrs++];
            for (size_t i = 0; i < nn; i++)
                w[i] = (char)((p[i] >= 'A' && p[i] <= 'Z') ? p[i] + 32 : p[i]);
            w[nn] = '\0';
            memcpy(w + nn + 1, v, vn);
            w[nn + 1 + vn] = '\0';
            *h = (struct hc_header){w, w + nn + 1, nn, vn};
            w += nn + vn + 2;
        }
        p = next;
    }
    return 0;
}

/* ---- connections ---- */

void hc_kick(struct hc_client *c)
{
    if (!c->freeing)
        event_active(c->kick, EV_TIMEOUT, 0);
}

static void hc_conn_unlink(struct hc_conn *k)
{
    struct hc_client *c = k->client;
    if (k->prev)
        k->prev->next = k->next;
    else
        c->conns = k->next;
    if (k->next)
        k->next->prev = k->prev;
    else
        c->conns_tail = k->prev;
    k->prev = k->next = NULL;
}

static void hc_conn_push_head(struct hc_conn *k)
{
    struct hc_client *c = k->client;
    k->prev = NULL;
    k->next = c->conns;
    if (c->conns)
        c->conns->prev = k;
    else
        c->conns_tail = k;
    c->conns = k;
}

/* hc_conn_to_tail: k is busy: behind every idle connection. */
static void hc_conn_to_tail(struct hc_conn *k)
{
    struct hc_client *c = k->client;
    if (c->conns_tail == k)
        return;
    hc_conn_unlink(k);
    k->prev = c->conns_tail; /* not NULL: k was not the only connection */
    c->conns_tail->next = k;
    c->conns_tail = k;
}

void hc_conn_idle(struct hc_conn *k)
{
    hc_conn_unlink(k);
    hc_conn_push_head(k);
    if (k->client->wait.n)
        hc_kick(k->client);
}

static void hc_fail_waiting(struct hc_client *c, int err, const char *msg);

/* hc_retryable: q can go to another connection: it never saw a byte of its response and
 * its connection was either never established (another address is left to try) or an
 * HTTP/1.1 keep-alive connection the server had closed while idle. */
static bool hc_retryable(const struct hc_conn *k, const struct hc_req *q, bool fallback)
{
    if (q->got_bytes)
        return false;
    return fallback || (!k->h2 && k->n_done > 0 && q->retries == 0);
}

void hc_conn_close(struct hc_conn *k, int err, const char *msg)
{
    struct hc_client *c = k->client;
    struct hc_req_list orphans = {0}, again = {0};
    struct hc_req *q;
    char m[HC_MSG_MAX];
    snprintf(m, sizeof m, "%s", msg ? msg : "");
    /* connecting failed: its requests try the host's next address, as new connections do */
    bool fallback = err && err != ERR_STATE && !k->connected && k->addr_idx + 1 < c->n_addrs;
    if (fallback && c->addr_cur <= k->addr_idx)
        c->addr_cur = k->addr_idx + 1;
    hc_conn_unlink(k);
    c->n_conns--;
    if (c->h2 == k)
        c->h2 = NULL;
    while ((q = k->reqs.head)) {
        hc_req_unlink(q);
        hc_list_push(&orphans, q);
    }
    if (k->h2)
        hc_h2_deinit(k);
    bufferevent_free(k->bev);
    while ((q = orphans.head)) {
        hc_req_unlink(q);
        if (err != ERR_STATE && hc_retryable(k, q, fallback)) {
            q->retries += !fallback;
            hc_list_push(&again, q);
        } else {
            hc_req_finish(q, err ? err : ERR_IO, m);
        }
    }
    while ((q = again.tail)) /* to the head of the queue, in their order */
        hc_requeue(q);
    /* HTTP/2 requests wait for a connection's SETTINGS: when it fails before them, they fail
     * too rather than open connection after connection */
    if (k->h2 && !k->ready && err && !fallback && c->wait.n)
        hc_fail_waiting(c, err, m);
    free(k);
    if (c->wait.n)
        hc_kick(c);
}

/* hc_resolve: the host's addresses, looked up once (getaddrinfo, blocking). */
static int hc_resolve(struct hc_client *c, char *msg, size_t n)
{
    if (c->addrs)
        return 0;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    char port[16];
    snprintf(port, sizeof port, "%d", c->cfg.port);
    int e = getaddrinfo(c->host, port, &hints, &c->addrs);
    if (e != 0) {
        c->addrs = NULL;
        snprintf(msg, n, "cannot resolve %s: %s", c->host, gai_strerror(e));
        return ERR_IO;
    }
    c->n_addrs = 0;
    for (struct addrinfo *a = c->addrs; a; a = a->ai_next)
        c->n_addrs++;
    c->addr_cur = 0;
    return 0;
}

static const struct addrinfo *hc_addr(const struct hc_client *c, size_t idx)
{
    const struct addrinfo *a = c->addrs;
    while (idx-- && a->ai_next)
        a = a->ai_next;
    return a;
}

static void hc_on_read(struct bufferevent *bev, void *arg)
{
    struct hc_conn *k = arg;
    (void)bev;
    k->t_read = hc_now(); /* before any parsing: the arrival time of these bytes */
    if (k->h2)
        hc_h2_read(k);
    else
        hc_h1_read(k);
}

static void hc_on_write(struct bufferevent *bev, void *arg)
{
    (void)bev;
    hc_h2_flush(arg);
}

static void hc_on_event(struct bufferevent *bev, short what, void *arg)
{
    struct hc_conn *k = arg;
    struct hc_client *c = k->client;
    int e = EVUTIL_SOCKET_ERROR();
    char why[160], msg[HC_MSG_MAX];
    if (what & BEV_EVENT_CONNECTED) {
        k->connected = true;
        if (c->cfg.tls && c->cfg.http2 && !hc_tls_alpn_h2(bev))
            hc_conn_close(k, ERR_UNSUPPORTED, "the server did not choose h2 in TLS ALPN");
        return;
    }
    k->t_read = hc_now();
    if (what & BEV_EVENT_EOF) {
        if (k->h2)
            hc_conn_close(k, ERR_IO, "connection closed by the server");
        else
            hc_h1_eof(k);
        return;
    }
    why[0] = '\0';
    if (c->cfg.tls)
        hc_tls_why(bev, why, sizeof why);
    if (!why[0])
        snprintf(why, sizeof why, "%s", e ? evutil_socket_error_to_string(e) : "socket error");
    snprintf(msg, sizeof msg, "%s %s: %s", k->connected ? "connection to" : "connecting to",
             c->authority, why);
    hc_conn_close(k, ERR_IO, msg);
}

/* hc_socket: a non-blocking TCP socket with TCP_NODELAY, connecting to a. Returns the fd
 * or -1 (msg says why). */
static int hc_socket(const struct addrinfo *a, bool start, char *msg, size_t n)
{
    int one = 1;
    int fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(msg, n, "socket: %s", strerror(errno));
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (start && connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
        snprintf(msg, n, "connect: %s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* hc_conn_new: a connection (connecting) at the head of the list. Returns 0, ERR_IO or
 * ERR_NOMEM (msg says why). */
static int hc_conn_new(struct hc_client *c, struct hc_conn **out, char *msg, size_t n)
{
    int rv = hc_resolve(c, msg, n);
    if (rv)
        return rv;
    const struct addrinfo *a = hc_addr(c, c->addr_cur);
    struct hc_conn *k = calloc(1, sizeof *k);
    if (!k)
        goto fail_nomem;
    k->client = c;
    k->addr_idx = c->addr_cur;
    k->h2 = c->cfg.http2;
    int fd = hc_socket(a, c->cfg.tls, msg, n);
    if (fd < 0)
        goto fail_io;
    if (c->cfg.tls) {
        if (!(k->bev = hc_tls_bev_new(c->base, c->tls_ctx, fd, c->host))) {
            close(fd);
            goto fail_nomem;
        }
    } else {
        if (!(k->bev = bufferevent_socket_new(c->base, fd, BEV_OPT_CLOSE_ON_FREE))) {
            close(fd);
            goto fail_nomem;
        }
        /* callbacks are set afterwards: a connect that fails at once reports nothing */
        if (bufferevent_socket_connect(k->bev, a->ai_addr, (int)a->ai_addrlen) != 0) {
            snprintf(msg, n, "connect: %s", strerror(errno));
            goto fail_bev;
        }
    }
    if (!k->h2)
        hc_h1_init(k);
    else if (hc_h2_init(k) != 0)
        goto fail_bev_nomem;
    bufferevent_setcb(k->bev, hc_on_read, k->h2 ? hc_on_write : NULL, hc_on_event, k);
    bufferevent_enable(k->bev, EV_READ | EV_WRITE);
    hc_conn_push_head(k);
    c->n_conns++;
    *out = k;
    return 0;

fail_bev_nomem:
    snprintf(msg, n, "out of memory");
    rv = ERR_NOMEM;
    bufferevent_free(k->bev);
    free(k);
    return rv;
fail_bev:
    bufferevent_free(k->bev);
fail_io:
    free(k);
    return ERR_IO;
fail_nomem:
    free(k);
    snprintf(msg, n, "out of memory");
    return ERR_NOMEM;
}

/* hc_fail_waiting: every request now waiting fails with err (requests queued from their
 * on_done wait for the next turn). */
static void hc_fail_waiting(struct hc_client *c, int err, const char *msg)
{
    struct hc_req_list l = c->wait;
    for (struct hc_req *q = l.head; q; q = q->next)
        q->list = &l;
    c->wait = (struct hc_req_list){0};
    while (l.head)
        hc_req_finish(l.head, err, msg);
}

static void hc_dispatch_h1(struct hc_client *c)
{
    char msg[HC_MSG_MAX];
    size_t budget = c->wait.n; /* on_done may queue more: those wait for the next turn */
    while (c->wait.head && budget--) {
        struct hc_conn *k = c->conns;
        /* a request retried after a stale keep-alive connection gets a new one: the other
         * idle connections may be just as stale (a server closing every connection after N
         * requests without saying so) */
        bool fresh = c->wait.head->retries > 0;
        if (!k || k->reqs.n || !k->connected || fresh) {
            if (c->cfg.max_connections > 0 && c->n_conns >= c->cfg.max_connections)
                return;
            int rv = hc_conn_new(c, &k, msg, sizeof msg);
            if (rv) {
                hc_req_finish(c->wait.head, rv, msg);
                continue;
            }
        }
        struct hc_req *q = c->wait.head;
        hc_req_unlink(q);
        if (hc_h1_send(k, q) != 0) {
            hc_req_finish(q, ERR_NOMEM, "out of memory");
            hc_conn_close(k, 0, NULL);
            continue;
        }
        hc_conn_to_tail(k);
    }
    if (c->wait.head && (c->cfg.max_connections <= 0 || c->n_conns < c->cfg.max_connections))
        hc_kick(c);
}

static void hc_dispatch_h2(struct hc_client *c)
{
    char msg[HC_MSG_MAX];
    if (!c->wait.head)
        return;
    if (!c->h2) {
        struct hc_conn *k;
        int rv = hc_conn_new(c, &k, msg, sizeof msg);
        if (rv) {
            hc_fail_waiting(c, rv, msg);
            return;
        }
        c->h2 = k;
    }
    hc_h2_submit(c->h2);
}

static void hc_on_kick(evutil_socket_t fd, short what, void *arg)
{
    struct hc_client *c = arg;
    (void)fd;
    (void)what;
    if (c->cfg.http2)
        hc_dispatch_h2(c);
    else
        hc_dispatch_h1(c);
}

/* ---- the API ---- */

/* hc_host_ok: a name or address that is safe in Host and :authority. */
static bool hc_host_ok(const char *h)
{
    if (!*h)
        return false;
    for (; *h; h++)
        if (!((*h >= '0' && *h <= '9') || (*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z') ||
              strchr(".-_:%", *h)))
            return false;
    return true;
}

/* hc_ignore_sigpipe: a server that closes while a request is being written must fail that
 * request (EPIPE), not kill the process; a handler the program installed is kept. */
static void hc_ignore_sigpipe(void)
{
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
        sa.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &sa, NULL);
    }
}

int hc_client_new(struct event_base *base, const struct hc_config *cfg, struct hc_client **out)
{
    if (!out)
        return ERR_INVAL;
    *out = NULL;
    if (!base || !cfg || !cfg->host || cfg->port < 1 || cfg->port > 65535 ||
        cfg->max_connections < 0 || !(cfg->timeout_s >= 0) || isinf(cfg->timeout_s))
        return ERR_INVAL;
    size_t hn = strlen(cfg->host);
    const char *h = cfg->host;
    if (hn >= 2 && h[0] == '[' && h[hn - 1] == ']') { /* [v6] */
        h++;
        hn -= 2;
    }
    struct hc_client *c = calloc(1, sizeof *c);
    if (!c)
        return ERR_NOMEM;
    int rv = ERR_NOMEM;
    hc_ignore_sigpipe();
    c->base = base;
    c->cfg = *cfg;
    if (!(c->host = strndup(h, hn)))
        goto fail;
    rv = ERR_INVAL;
    if (!hc_host_ok(c->host))
        goto fail;
    rv = ERR_NOMEM;
    size_t an = hn + 16;
    if (!(c->authority = malloc(an)))
        goto fail;
    snprintf(c->authority, an, strchr(c->host, ':') ? "[%s]:%d" : "%s:%d", c->host, cfg->port);
    c->cfg.host = c->host;
    if (!c->cfg.max_response_bytes)
        c->cfg.max_response_bytes = HC_DEFAULT_MAX_BODY;
    if (!(c->kick = event_new(base, -1, 0, hc_on_kick, c)))
        goto fail;
    if (cfg->tls && (rv = hc_tls_ctx_new(cfg->http2, &c->tls_ctx)) != 0)
        goto fail;
    *out = c;
    return 0;

fail:
    hc_client_free(c);
    return rv;
}

/* hc_req_copy: q's strings, headers and body, validated. Returns 0, ERR_INVAL, ERR_NOMEM. */
static int hc_req_copy(struct hc_req *q, const char *method, const char *path, const char *ctype,
                       const char *body, size_t n, const char *headers)
{
    if (!hc_token_ok(method, strlen(method)) || !hc_path_ok(path) ||
        (ctype && !hc_value_ok(ctype, strlen(ctype))))
        return ERR_INVAL;
    q->method = strdup(method);
    q->path = strdup(path);
    q->ctype = ctype ? strdup(ctype) : NULL;
    q->body = malloc(n ? n : 1);
    if (!q->method || !q->path || (ctype && !q->ctype) || !q->body)
        return ERR_NOMEM;
    if (n)
        memcpy(q->body, body, n);
    q->body_n = n;
    q->head = strcmp(method, "HEAD") == 0;
    return headers ? hc_headers_parse(q, headers) : 0;
}

int hc_request(struct hc_client *c, const char *method, const char *path,
               const char *content_type, const char *body, size_t n, const char *headers,
               const struct hc_callbacks *cb, void *ud)
{
    if (!c || !method || !path || !cb || !cb->on_done || (n && !body))
        return ERR_INVAL;
    if (c->freeing)
        return ERR_STATE;
    struct hc_req *q = calloc(1, sizeof *q);
    if (!q)
        return ERR_NOMEM;
    q->client = c;
    q->cb = *cb;
    q->ud = ud;
    int rv = hc_req_copy(q, method, path, content_type, body, n, headers);
    if (rv == 0 && !(q->timer = evtimer_new(c->base, hc_req_on_timeout, q)))
        rv = ERR_NOMEM;
    if (rv) {
        hc_req_free(q);
        return rv;
    }
    double t = c->cfg.timeout_s;
    if (t > 0) {
        struct timeval tv = {(time_t)t, (suseconds_t)((t - floor(t)) * 1e6)};
        evtimer_add(q->timer, &tv);
    }
    hc_list_push(&c->wait, q);
    hc_kick(c);
    return 0;
}

void hc_client_free(struct hc_client *c)
{
    if (!c)
        return;
    c->freeing = true;
    hc_fail_waiting(c, ERR_STATE, "the client was freed");
    while (c->conns)
        hc_conn_close(c->conns, ERR_STATE, "the client was freed");
    hc_fail_waiting(c, ERR_STATE, "the client was freed");
    if (c->kick)
        event_free(c->kick);
    if (c->addrs)
        freeaddrinfo(c->addrs);
    if (c->tls_ctx)
        hc_tls_ctx_free(c->tls_ctx);
    free(c->host);
    free(c->authority);
    free(c);
}
