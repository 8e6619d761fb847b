/* http_client over HTTP/1.1 against a scripted server in a thread of this process: bytes
 * written by hand (so the responses are exactly the edge cases meant), sent in pieces with
 * pauses so that the client reads them separately. HTTP/2 and TLS are tested from Python
 * (tests/benchserve/test_http_client_py.py) against independent servers. */
#include "bench/http_client.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/err.h"
#include "tests/test.h"

/* ---- the scripted server ---- */

struct srv;
typedef void (*srv_conn_fn)(struct srv *s, int fd, int idx);

struct srv {
    int lfd, port;
    pthread_t th;
    srv_conn_fn fn;
    volatile int stop;
    int n_accepted;
    char req[8][8192]; /* the first requests read, in order */
    int n_req;
    const char *resp; /* the response some scenarios send */
    size_t piece;     /* ... in pieces of this many bytes (0: whole) */
    int delay_us;     /* ... with this pause between pieces */
};

/* srv_wait: waits up to ms for fd to be readable. */
static bool srv_wait(int fd, int ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, ms) == 1;
}

/* srv_read_request: one request (head and Content-Length body) into s->req. Returns its
 * length, or -1 when the client closed or sent nothing within 2 s. */
static int srv_read_request(struct srv *s, int fd)
{
    char buf[8192];
    size_t n = 0, want = 0;
    while (n < sizeof buf - 1) {
        if (!srv_wait(fd, 2000))
            return -1;
        ssize_t k = recv(fd, buf + n, want ? want - n : 1, 0);
        if (k <= 0)
            return -1;
        n += (size_t)k;
        buf[n] = '\0';
        if (!want && n >= 4 && !memcmp(buf + n - 4, "\r\n\r\n", 4)) {
            const char *cl = strstr(buf, "Content-Length: ");
            want = n + (cl ? strtoul(cl + 16, NULL, 10) : 0);
        }
        if (want && n >= want)
            break;
    }
    if (s->n_req < 8)
        memcpy(s->req[s->n_req++], buf, n + 1);
    return (int)n;
}

static void srv_send(int fd, const char *p, size_t n, size_t piece, int delay_us)
{
    if (!piece)
        piece = n;
    for (size_t at = 0; at < n; at += piece) {
        size_t k = n - at < piece ? n - at : piece;
        if (send(fd, p + at, k, MSG_NOSIGNAL) < 0)
            return;
        if (delay_us && at + k < n)
            usleep((useconds_t)delay_us);
    }
}

/* srv_drain: waits (up to 2 s) for the client to close. */
static void srv_drain(int fd)
{
    char b[256];
    while (srv_wait(fd, 2000) && recv(fd, b, sizeof b, 0) > 0)
        ;
}

static void *srv_main(void *arg)
{
    struct srv *s = arg;
    int idx = 0;
    while (!s->stop) {
        if (!srv_wait(s->lfd, 20))
            continue;
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        s->n_accepted++;
        s->fn(s, fd, idx++);
        close(fd);
    }
    return NULL;
}

static bool srv_start(struct srv *s, srv_conn_fn fn)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    memset(s, 0, sizeof *s);
    s->fn = fn;
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(s->lfd, 16) != 0 || getsockname(s->lfd, (struct sockaddr *)&a, &al) != 0)
        return false;
    s->port = ntohs(a.sin_port);
    return pthread_create(&s->th, NULL, srv_main, s) == 0;
}

static void srv_stop(struct srv *s)
{
    s->stop = 1;
    pthread_join(s->th, NULL);
    close(s->lfd);
}

/* scenarios: what the server does with one connection */

static void sc_respond(struct srv *s, int fd, int idx)
{
    (void)idx;
    if (srv_read_request(s, fd) < 0)
        return;
    srv_send(fd, s->resp, strlen(s->resp), s->piece, s->delay_us);
    srv_drain(fd);
}

static void sc_respond_keepalive(struct srv *s, int fd, int idx)
{
    (void)idx;
    while (srv_read_request(s, fd) >= 0)
        srv_send(fd, s->resp, strlen(s->resp), s->piece, s->delay_us);
}

static void sc_respond_then_close(struct srv *s, int fd, int idx)
{
    (void)idx;
    if (srv_read_request(s, fd) >= 0)
        srv_send(fd, s->resp, strlen(s->resp), s->piece, s->delay_us);
}

static void sc_silent(struct srv *s, int fd, int idx)
{
    (void)idx;
    srv_read_request(s, fd);
    srv_drain(fd);
}

/* echoes the request's path in the body: tells requests apart */
static void sc_echo_path(struct srv *s, int fd, int idx)
{
    (void)idx;
    while (srv_read_request(s, fd) >= 0) {
        char path[128] = "", out[256];
        sscanf(s->req[s->n_req - 1], "%*s %127s", path);
        int n = snprintf(out, sizeof out, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s",
                         strlen(path), path);
        usleep(5000);
        srv_send(fd, out, (size_t)n, 0, 0);
    }
}

/* the first connection answers one request, then takes the next and closes without an
 * answer (a keep-alive race); later connections answer normally */
static void sc_stale(struct srv *s, int fd, int idx)
{
    if (srv_read_request(s, fd) < 0)
        return;
    srv_send(fd, s->resp, strlen(s->resp), 0, 0);
    if (idx == 0) {
        srv_read_request(s, fd);
        return;
    }
    srv_drain(fd);
}

/* ---- the client side ---- */

#define MAX_CALLS 8

struct call {
    struct loop *lp;
    int id;
    int n_headers, status, done, err, order;
    bool body_before_headers;
    char msg[256];
    char body[4096];
    size_t n, n_chunks;
    double t_first, t_last, t_prev;
    bool t_monotonic;
    struct call *next_req; /* sent from this one's on_done */
};

struct loop {
    struct event_base *base;
    struct hc_client *client;
    int n_done, want, n_order;
};

static void cb_headers(void *ud, int status)
{
    struct call *c = ud;
    c->n_headers++;
    c->status = status;
}

static void cb_body(void *ud, const char *p, size_t n, double t)
{
    struct call *c = ud;
    if (!c->n_headers)
        c->body_before_headers = true;
    if (c->n + n < sizeof c->body) {
        memcpy(c->body + c->n, p, n);
        c->n += n;
    }
    if (!c->n_chunks)
        c->t_first = t;
    else if (t < c->t_prev)
        c->t_monotonic = false;
    c->t_prev = c->t_last = t;
    c->n_chunks++;
}

static const struct hc_callbacks cbs = {cb_headers, cb_body, NULL};

static void cb_done(void *ud, int err, const char *msg)
{
    struct call *c = ud;
    c->done++;
    c->err = err;
    c->order = c->lp->n_order++;
    snprintf(c->msg, sizeof c->msg, "%s", msg ? msg : "(null)");
    if (c->next_req) {
        struct hc_callbacks cb = cbs;
        cb.on_done = cb_done;
        hc_request(c->lp->client, "GET", "/second", NULL, NULL, 0, NULL, &cb, c->next_req);
    }
    if (++c->lp->n_done >= c->lp->want)
        event_base_loopbreak(c->lp->base);
}

static void call_init(struct call *c, struct loop *lp, int id)
{
    memset(c, 0, sizeof *c);
    c->lp = lp;
    c->id = id;
    c->t_monotonic = true;
}

static bool loop_open(struct loop *lp, int port, const struct hc_config *over)
{
    struct hc_config cfg = {.host = "127.0.0.1", .port = port};
    if (over)
        cfg = *over;
    cfg.port = port;
    memset(lp, 0, sizeof *lp);
    lp->base = event_base_new();
    return lp->base && hc_client_new(lp->base, &cfg, &lp->client) == 0;
}

static int send_req(struct loop *lp, struct call *c, const char *method, const char *path,
                    const char *body, const char *headers)
{
    struct hc_callbacks cb = cbs;
    cb.on_done = cb_done;
    return hc_request(lp->client, method, path, body ? "application/json" : NULL, body,
                      body ? strlen(body) : 0, headers, &cb, c);
}

/* loop_run: runs until `want` requests are done or 5 s pass. */
static void loop_run(struct loop *lp, int want)
{
    struct timeval tv = {5, 0};
    lp->want = want;
    event_base_loopexit(lp->base, &tv);
    event_base_dispatch(lp->base);
}

static void loop_close(struct loop *lp)
{
    hc_client_free(lp->client);
    event_base_free(lp->base);
}

/* ---- tests ---- */

static const char chunked_resp[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                                   "Content-Type: text/event-stream\r\n\r\n"
                                   "5\r\nhello\r\n7;ext=1\r\n, world\r\n19\r\n"
                                   " and the rest of the text\r\n0\r\nTrailer: x\r\n\r\n";
static const char chunked_body[] = "hello, world and the rest of the text";

TEST(chunked_split_at_every_odd_boundary)
{
    static const size_t pieces[] = {1, 3, 7, 13};
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
        struct srv s;
        struct loop lp;
        struct call c;
        REQUIRE(srv_start(&s, sc_respond));
        s.resp = chunked_resp;
        s.piece = pieces[i];
        s.delay_us = 300;
        REQUIRE(loop_open(&lp, s.port, NULL));
        call_init(&c, &lp, 0);
        double t0 = hc_now();
        REQUIRE(send_req(&lp, &c, "GET", "/stream", NULL, NULL) == 0);
        loop_run(&lp, 1);
        double t1 = hc_now();
        CHECK_EQ(c.done, 1);
        CHECK_EQ(c.err, 0);
        CHECK_EQ(c.status, 200);
        CHECK_EQ(c.n_headers, 1);
        CHECK(!c.body_before_headers);
        CHECK_MEMEQ(c.body, c.n, chunked_body, strlen(chunked_body));
        CHECK(c.t_monotonic);
        CHECK(c.t_first >= t0 && c.t_last <= t1);
        if (pieces[i] == 1)
            CHECK(c.n_chunks > 5); /* bytes reported as they came, not at the end */
        loop_close(&lp);
        srv_stop(&s);
    }
}

TEST(body_times_are_read_times)
{
    static const char resp[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                               "4\r\naaaa\r\n4\r\nbbbb\r\n4\r\ncccc\r\n0\r\n\r\n";
    struct srv s;
    struct loop lp;
    struct call c;
    REQUIRE(srv_start(&s, sc_respond));
    s.resp = resp;
    s.piece = 9; /* one chunk per piece, 30 ms apart */
    s.delay_us = 30000;
    REQUIRE(loop_open(&lp, s.port, NULL));
    call_init(&c, &lp, 0);
    REQUIRE(send_req(&lp, &c, "GET", "/", NULL, NULL) == 0);
    loop_run(&lp, 1);
    CHECK_EQ(c.err, 0);
    CHECK_MEMEQ(c.body, c.n, "aaaabbbbcccc", 12);
    CHECK(c.n_chunks >= 3);
    CHECK(c.t_last - c.t_first > 0.045); /* at least two pauses apart, less scheduling */
    loop_close(&lp);
    srv_stop(&s);
}

TEST(content_length_and_the_request_sent)
{
    struct srv s;
    struct loop lp;
    struct call c;
    REQUIRE(srv_start(&s, sc_respond));
    s.resp = "HTTP/1.1 201 Created\r\nContent-Length: 11\r\n\r\nhello world";
    REQUIRE(loop_open(&lp, s.port, NULL));
    call_init(&c, &lp, 0);
    REQUIRE(send_req(&lp, &c, "POST", "/v1/completions?x=1", "{\"a\":1}",
                     "Authorization: Bearer k\r\nX-Extra:  v  \nConnection: close\r\n") == 0);
    loop_run(&lp, 1);
    CHECK_EQ(c.err, 0);
    CHECK_EQ(c.status, 201);
    CHECK_MEMEQ(c.body, c.n, "hello world", 11);
    REQUIRE(s.n_req == 1);
    char want[256];
    snprintf(want, sizeof want,
             "POST /v1/completions?x=1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
             "Content-Type: application/json\r\nContent-Length: 7\r\n"
             "authorization: Bearer k\r\nx-extra: v\r\n\r\n{\"a\":1}",
             s.port);
    CHECK_STREQ(s.req[0], want);
    loop_close(&lp);
    srv_stop(&s);
}

/* request_pair: against a server running script fn that answers resp, GET /first and, from
 * its on_done, a second request on the same client; runs both and stops the server (s keeps
 * its counts, a and b the results). False when the set-up failed. */
static bool request_pair(struct srv *s, srv_conn_fn fn, const char *resp, struct call *a,
                         struct call *b)
{
    struct loop lp;
    if (!srv_start(s, fn))
        return false;
    s->resp = resp;
    bool ok = loop_open(&lp, s->port, NULL);
    if (ok) {
        call_init(a, &lp, 0);
        call_init(b, &lp, 1);
        a->next_req = b;
        ok = send_req(&lp, a, "GET", "/first", NULL, NULL) == 0;
        if (ok)
            loop_run(&lp, 2);
        loop_close(&lp);
    }
    srv_stop(s);
    return ok;
}

TEST(keep_alive_reuses_one_connection)
{
    struct srv s;
    struct call a, b;
    REQUIRE(request_pair(&s, sc_respond_keepalive, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                         &a, &b));
    CHECK_EQ(a.err, 0);
    CHECK_EQ(b.err, 0);
    CHECK_MEMEQ(b.body, b.n, "ok", 2);
    CHECK_EQ(s.n_req, 2);
    CHECK_EQ(s.n_accepted, 1);
}

TEST(connection_close_opens_a_new_connection)
{
    struct srv s;
    struct call a, b;
    REQUIRE(request_pair(&s, sc_respond_then_close,
                         "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", &a,
                         &b));
    CHECK_EQ(a.err, 0);
    CHECK_EQ(b.err, 0);
    CHECK_MEMEQ(b.body, b.n, "ok", 2);
    CHECK_EQ(s.n_accepted, 2);
}

TEST(http10_body_ends_with_the_connection)
{
    struct srv s;
    struct loop lp;
    struct call c;
    REQUIRE(srv_start(&s, sc_respond_then_close));
    s.resp = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end";
    s.piece = 5;
    s.delay_us = 1000;
    REQUIRE(loop_open(&lp, s.port, NULL));
    call_init(&c, &lp, 0);
    REQUIRE(send_req(&lp, &c, "GET", "/", NULL, NULL) == 0);
    loop_run(&lp, 1);
    CHECK_EQ(c.err, 0);
    CHECK_EQ(c.status, 200);
    CHECK_MEMEQ(c.body, c.n, "until the end", 13);
    loop_close(&lp);
    srv_stop(&s);
}

TEST(interim_1xx_then_final)
{
    struct srv s;
    struct loop lp;
    struct call c;
    REQUIRE(srv_start(&s, sc_respond));
    s.resp = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
             "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes";
    s.piece = 4;
    REQUIRE(loop_open(&lp, s.port, NULL));
    call_init(&c, &lp, 0);
    REQUIRE(send_req(&lp, &c, "POST", "/", "{}", NULL) == 0);
    loop_run(&lp, 1);
    CHECK_EQ(c.err, 0);
    CHECK_EQ(c.n_headers, 1);
    CHECK_EQ(c.status, 200);
    CHECK_MEMEQ(c.body, c.n, "yes", 3);
    loop_close(&lp);
    srv_stop(&s);
}

TEST(head_has_no_body)
{
    struct srv s;
    struct loop lp;
    struct call a, b;
    struct hc_config cfg = {.host = "127.0.0.1", .max_connections = 1};
    REQUIRE(srv_start(&s, sc_respond_keepalive));
    s.resp = "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n";
    REQUIRE(loop_open(&lp, s.port, &cfg));
    call_init(&a, &lp, 0);
    call_init(&b, &lp, 1);
    REQUIRE(send_req(&lp, &a, "HEAD", "/", NULL, NULL) == 0);
    REQUIRE(send_req(&lp, &b, "HEAD", "/", NULL, NULL) == 0);
    loop_run(&lp, 2);
    CHECK_EQ(a.err, 0);
    CHECK_EQ(b.err, 0);
    CHECK_EQ(a.n + b.n, 0);
    loop_close(&lp);
    srv_stop(&s);
    CHECK_EQ(s.n_accepted, 1);
}

TEST(closed_mid_response_fails)
{
    struct srv s;
    struct loop lp;
    struct call c, d;
    REQUIRE(srv_start(&s, sc_respond_then_close));
    s.resp = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b";
    REQUIRE(loop_open(&lp, s.port, NULL));
    call_init(&c, &lp, 0);
    REQUIRE(send_req(&lp, &c, "GET", "/", NULL, NULL) == 0);
    loop_run(&lp, 1);
    CHECK_EQ(c.done, 1);
    CHECK_EQ(c.err, ERR_IO);
    CHECK_MEMEQ(c.body, c.n, "only ten b", 10);
    /* a chunked body cut short too */
    s.resp = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel";
    call_init(&d, &lp, 1);
    lp.n_done = 0;
    REQUIRE(send_req(&lp, &d, "GET", "/", NULL, NULL) == 0);
    loop_run(&lp, 1);
    CHECK_EQ(d.done, 1);
    CHECK_EQ(d.err, ERR_IO);
    CHECK(strstr(d.msg, "closed") != NULL);
    loop_close(&lp);
    srv_stop(&s);
}

TEST(oversized_headers_fail_with_limit)
{
    struct srv s;
    struct loop lp;
    struct call c;
    size_t n = 70 * 1024;
    char *resp = malloc(n + 128);
    REQUIRE(resp);
    int k = snprintf(resp, 128, "HTTP/1.1 200 OK\r\nX-Big: ");
    memset(resp + k, 'a', n);
    strcpy(resp + k + n, "\r\nContent-Length: 0\r\n\r\n");
    REQUIRE(srv_start(&s, sc_respond));
    s.resp = resp;
    REQUIRE(loop_open(&lp, s.port, NULL));
    call_init(&c, &lp, 0);
    REQUIRE(send_req(&lp, &c, "GET", "/", NULL, NULL) == 0);
    loop_run(&lp, 1);
    CHECK_EQ(c.done, 1);
    CHECK_EQ(c.err, ERR_LIMIT);
    CHECK_EQ(c.n_headers, 0);
    loop_close(&lp);
    srv_stop(&s);
    free(resp);
}

TEST(oversized_body_fails_with_limit)
{
    static const char *const resps[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",      /* refused up front */
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" /* counted as it comes */
        "40\r\n0123456789012345678901234567890123456789012345678901234567890123\r\n"
        "40\r\n0123456789012345678901234567890123456789012345678901234567890123\r\n0\r\n\r\n",
    };
    for (int i = 0; i < 2; i++) {
        struct srv s;
        struct loop lp;
        struct call c;
        struct hc_config cfg = {.host = "127.0.0.1", .max_response_bytes = 100};
        REQUIRE(srv_start(&s, sc_respond));
        s.resp = resps[i];
        REQUIRE(loop_open(&lp, s.port, &cfg));
        call_init(&c, &lp, 0);
        REQUIRE(send_req(&lp, &c, "GET", "/", NULL, NULL) == 0);
        loop_run(&lp, 1);
        CHECK_EQ(c.done, 1);
        CHECK_EQ(c.err, ERR_LIMIT);
        CHECK(c.n <= 100);
        loop_close(&lp);
        srv_stop(&s);
    }
}

TEST(garbage_fails)
{
    static const char *const resps[] = {
        "SSH-2.0-OpenSSH_9.6\r\n\r\n",
        "HTTP/1.1 abc OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
        "\x01\x02\x03\xff\xfe\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof resps / sizeof resps[0]; i++) {
        struct srv s;
        struct loop lp;
        struct call c;
        REQUIRE(srv_start(&s, sc_respond));
        s.resp = resps[i];
        REQUIRE(loop_open(&lp, s.port, NULL));
        call_init(&c, &lp, 0);
        REQUIRE(send_req(&lp, &c, "GET", "/", NULL, NULL) == 0);
        loop_run(&lp, 1);
        CHECK_EQ(c.done, 1);
        if (c.err != ERR_PARSE)
            fprintf(stderr, "    response %zu: %s\n", i, c.msg);
        CHECK_EQ(c.err, ERR_PARSE);
        loop_close(&lp);
        srv_stop(&s);
    }
}

TEST(timeout)
{
    struct srv s;
    struct loop lp;
    struct call c;
    struct hc_config cfg = {.host = "127.0.0.1", .timeout_s = 0.2};
    REQUIRE(srv_start(&s, sc_silent));
    REQUIRE(loop_open(&lp, s.port, &cfg));
    call_init(&c, &lp, 0);
    double t0 = hc_now();
    REQUIRE(send_req(&lp, &c, "GET", "/", NULL, NULL) == 0);
    loop_run(&lp, 1);
    double dt = hc_now() - t0;
    CHECK_EQ(c.done, 1);
    CHECK_EQ(c.err, ERR_IO);
    CHECK(strstr(c.msg, "timed out") != NULL);
    CHECK(dt >= 0.19 && dt < 1.0);
    loop_close(&lp);
    srv_stop(&s);
}

TEST(connect_refused_fails_later_not_inside_hc_request)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0); /* a port nobody listens on */
    REQUIRE(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    REQUIRE(getsockname(fd, (struct sockaddr *)&a, &al) == 0);
    close(fd);
    for (int h2 = 0; h2 < 2; h2++) {
        struct loop lp;
        struct call c[3];
        struct hc_config cfg = {.host = "127.0.0.1", .http2 = h2};
        REQUIRE(loop_open(&lp, ntohs(a.sin_port), &cfg));
        for (int i = 0; i < 3; i++) {
            call_init(&c[i], &lp, i);
            REQUIRE(send_req(&lp, &c[i], "GET", "/", NULL, NULL) == 0);
            CHECK_EQ(c[i].done, 0);
        }
        loop_run(&lp, 3);
        for (int i = 0; i < 3; i++) {
            CHECK_EQ(c[i].done, 1);
            CHECK_EQ(c[i].err, ERR_IO);
        }
        loop_close(&lp);
        CHECK_EQ(c[0].done + c[1].done + c[2].done, 3);
    }
}

/* HTTP/2 with prior knowledge against an HTTP/1.1 server: every request fails, once */
TEST(h2_against_http11_fails_every_request_once)
{
    struct srv s;
    struct loop lp;
    struct call c[3];
    struct hc_config cfg = {.host = "127.0.0.1", .http2 = true};
    REQUIRE(srv_start(&s, sc_respond_then_close));
    s.resp = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    REQUIRE(loop_open(&lp, s.port, &cfg));
    for (int i = 0; i < 3; i++) {
        call_init(&c[i], &lp, i);
        REQUIRE(send_req(&lp, &c[i], "GET", "/", NULL, NULL) == 0);
    }
    loop_run(&lp, 3);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(c[i].done, 1);
        CHECK(c[i].err == ERR_PARSE || c[i].err == ERR_IO);
    }
    loop_close(&lp);
    srv_stop(&s);
    CHECK_EQ(s.n_accepted, 1);
}

TEST(max_connections_queues_in_order)
{
    struct srv s;
    struct loop lp;
    struct call c[5];
    struct hc_config cfg = {.host = "127.0.0.1", .max_connections = 1};
    REQUIRE(srv_start(&s, sc_echo_path));
    REQUIRE(loop_open(&lp, s.port, &cfg));
    for (int i = 0; i < 5; i++) {
        char path[16];
        snprintf(path, sizeof path, "/r%d", i);
        call_init(&c[i], &lp, i);
        REQUIRE(send_req(&lp, &c[i], "GET", path, NULL, NULL) == 0);
    }
    loop_run(&lp, 5);
    for (int i = 0; i < 5; i++) {
        char path[16];
        int n = snprintf(path, sizeof path, "/r%d", i);
        CHECK_EQ(c[i].err, 0);
        CHECK_EQ(c[i].order, i);
        CHECK_MEMEQ(c[i].body, c[i].n, path, (size_t)n);
    }
    loop_close(&lp);
    srv_stop(&s);
    CHECK_EQ(s.n_accepted, 1);
}

TEST(stale_keep_alive_connection_is_retried)
{
    struct srv s;
    struct call a, b;
    REQUIRE(request_pair(&s, sc_stale, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", &a, &b));
    CHECK_EQ(a.err, 0);
    CHECK_EQ(b.done, 1);
    CHECK_EQ(b.err, 0);
    CHECK_MEMEQ(b.body, b.n, "ok", 2);
    CHECK_EQ(s.n_accepted, 2);
}

TEST(client_free_fails_outstanding_with_state)
{
    struct srv s;
    struct loop lp;
    struct call a, b;
    struct hc_config cfg = {.host = "127.0.0.1", .max_connections = 1};
    REQUIRE(srv_start(&s, sc_silent));
    REQUIRE(loop_open(&lp, s.port, &cfg));
    call_init(&a, &lp, 0);
    call_init(&b, &lp, 1);
    REQUIRE(send_req(&lp, &a, "GET", "/", NULL, NULL) == 0); /* on a connection */
    REQUIRE(send_req(&lp, &b, "GET", "/", NULL, NULL) == 0); /* waiting for it */
    struct timeval tv = {0, 50000};
    event_base_loopexit(lp.base, &tv);
    event_base_dispatch(lp.base);
    CHECK_EQ(a.done + b.done, 0);
    hc_client_free(lp.client);
    CHECK_EQ(a.done, 1);
    CHECK_EQ(b.done, 1);
    CHECK_EQ(a.err, ERR_STATE);
    CHECK_EQ(b.err, ERR_STATE);
    event_base_free(lp.base);
    srv_stop(&s);
}

TEST(bad_arguments)
{
    struct event_base *base = event_base_new();
    struct hc_client *c = NULL;
    struct hc_callbacks cb = cbs;
    struct call k;
    REQUIRE(base);
    struct hc_config bad[] = {
        {.host = NULL, .port = 80},
        {.host = "", .port = 80},
        {.host = "a b", .port = 80},
        {.host = "x\r\nEvil: 1", .port = 80},
        {.host = "x", .port = 0},
        {.host = "x", .port = 65536},
        {.host = "x", .port = 80, .max_connections = -1},
        {.host = "x", .port = 80, .timeout_s = -1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ(hc_client_new(base, &bad[i], &c), ERR_INVAL);
        CHECK(c == NULL);
    }
    struct hc_config ok = {.host = "127.0.0.1", .port = 9};
    REQUIRE(hc_client_new(base, &ok, &c) == 0);
    call_init(&k, NULL, 0);
    CHECK_EQ(hc_request(c, "GET", "/", NULL, NULL, 0, NULL, &cb, &k), ERR_INVAL); /* no on_done */
    cb.on_done = cb_done;
    CHECK_EQ(hc_request(c, "GE T", "/", NULL, NULL, 0, NULL, &cb, &k), ERR_INVAL);
    CHECK_EQ(hc_request(c, "GET", "/a b", NULL, NULL, 0, NULL, &cb, &k), ERR_INVAL);
    CHECK_EQ(hc_request(c, "GET", "", NULL, NULL, 0, NULL, &cb, &k), ERR_INVAL);
    CHECK_EQ(hc_request(c, "GET", "/", "a\r\nb", NULL, 0, NULL, &cb, &k), ERR_INVAL);
    CHECK_EQ(hc_request(c, "GET", "/", NULL, NULL, 5, NULL, &cb, &k), ERR_INVAL);
    CHECK_EQ(hc_request(c, "GET", "/", NULL, NULL, 0, "No colon\r\n", &cb, &k), ERR_INVAL);
    CHECK_EQ(hc_request(c, "GET", "/", NULL, NULL, 0, "A: b\rc\r\n", &cb, &k), ERR_INVAL);
    CHECK_EQ(hc_request(c, "GET", "/", NULL, NULL, 0, "Bad name: v\r\n", &cb, &k), ERR_INVAL);
    CHECK_EQ(k.done, 0);
    hc_client_free(c);
    hc_client_free(NULL);
    CHECK_EQ(k.done, 0);
    event_base_free(base);
}

int main(int argc, char **argv)
{
    return test_main(argc, argv);
}
