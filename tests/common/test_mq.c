/*
 * test_mq: the ZeroMQ transport with real sockets in one process: engines bound over ipc://
 * (in a temporary directory) and tcp://127.0.0.1 (an ephemeral port), several frontends.
 * Routing, malformed shapes, the maximum message size, router-mandatory, backpressure at the
 * high-water marks, options read back, and shutdown. Waits are bounded (2 s for a message);
 * nothing asserts on timing beyond generous limits.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/mq.h"
#include "tests/test.h"

#define WAIT_MS 2000

/* ---- helpers ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* An ipc:// address in a fresh temporary directory. */
struct ipc_dir {
    char dir[64];
    char path[128];
    char addr[160];
};

static int ipc_dir_make(struct ipc_dir *d)
{
    snprintf(d->dir, sizeof d->dir, "/tmp/kiln-mq-XXXXXX");
    if (!mkdtemp(d->dir))
        return -1;
    snprintf(d->path, sizeof d->path, "%s/engine.sock", d->dir);
    snprintf(d->addr, sizeof d->addr, "ipc://%s", d->path);
    return 0;
}

static void ipc_dir_remove(struct ipc_dir *d)
{
    unlink(d->path);
    rmdir(d->dir);
}

/* fe_send: mq_frontend_send, retrying ERR_LIMIT (not connected yet) for up to WAIT_MS. */
static int fe_send(struct mq_frontend *f, const void *p, size_t n)
{
    int64_t end = now_ms() + WAIT_MS;
    int rc;
    while ((rc = mq_frontend_send(f, p, n)) == ERR_LIMIT && now_ms() < end)
        sleep_ms(2);
    return rc;
}

static int fe_send_str(struct mq_frontend *f, const char *s)
{
    return fe_send(f, s, strlen(s));
}

static struct mq_engine *engine_open(struct mq_opts *o)
{
    struct mq_engine *e = NULL;
    char err[256] = "";
    int rc = mq_engine_open(o, &e, err, sizeof err);
    if (rc)
        fprintf(stderr, "    mq_engine_open %s: %s (%s)\n", o->addr, err_name(rc), err);
    return e;
}

static struct mq_frontend *frontend_open(struct mq_opts *o)
{
    struct mq_frontend *f = NULL;
    char err[256] = "";
    int rc = mq_frontend_open(o, &f, err, sizeof err);
    if (rc)
        fprintf(stderr, "    mq_frontend_open %s: %s (%s)\n", o->addr, err_name(rc), err);
    return f;
}

static int get_int(int (*fn)(void *, int, void *, size_t *), void *s, int option)
{
    int v = -12345;
    size_t len = sizeof v;
    if (fn(s, option, &v, &len) != 0)
        return -12345;
    return v;
}

static int eng_opt(void *s, int option, void *val, size_t *len)
{
    return mq_engine_sockopt(s, option, val, len);
}

static int fe_opt(void *s, int option, void *val, size_t *len)
{
    return mq_frontend_sockopt(s, option, val, len);
}

/* ---- routing ---- */

/* round_trip: n frontends (the first with a chosen routing id) each send one message; the
 * engine answers each by its peer id; each frontend receives only its own answer. */
static void round_trip(const char *addr)
{
    enum { N = 3 };
    struct mq_context *ctx = NULL;
    REQUIRE(mq_context_new(&ctx) == 0);
    struct mq_opts o;
    mq_opts_init(&o, ctx, addr);
    struct mq_engine *e = engine_open(&o);
    REQUIRE(e);
    char ep[256];
    REQUIRE(mq_engine_endpoint(e, ep, sizeof ep) == 0);
    CHECK(strncmp(ep, addr, 6) == 0);
    CHECK_EQ(mq_engine_endpoint(e, ep, 4), ERR_LIMIT);

    struct mq_frontend *f[N];
    o.addr = ep;
    for (int i = 0; i < N; i++) {
        o.routing_id = i == 0 ? "fe-A" : NULL;
        o.n_routing_id = i == 0 ? 4 : 0;
        f[i] = frontend_open(&o);
        REQUIRE(f[i]);
    }
    struct mq_peer peers[N];
    struct buf b;
    buf_init(&b, 0);
    for (int i = 0; i < N; i++) {
        char msg[32];
        snprintf(msg, sizeof msg, "hello from %d", i);
        REQUIRE(fe_send_str(f[i], msg) == 0);
        struct mq_peer from;
        REQUIRE(mq_engine_recv(e, &from, &b, WAIT_MS) == 1);
        CHECK_MEMEQ(b.p, b.n, msg, strlen(msg));
        peers[i] = from;
        for (int j = 0; j < i; j++)
            CHECK(!mq_peer_equal(&peers[j], &from));
    }
    CHECK_MEMEQ(peers[0].id, peers[0].n, "fe-A", 4);
    for (int i = N - 1; i >= 0; i--) { /* answer in reverse order */
        char msg[32];
        snprintf(msg, sizeof msg, "reply to %d", i);
        CHECK_EQ(mq_engine_send(e, &peers[i], msg, strlen(msg)), 0);
    }
    for (int i = 0; i < N; i++) {
        char msg[32];
        snprintf(msg, sizeof msg, "reply to %d", i);
        REQUIRE(mq_frontend_recv(f[i], &b, WAIT_MS) == 1);
        CHECK_MEMEQ(b.p, b.n, msg, strlen(msg));
        CHECK_EQ(mq_frontend_recv(f[i], &b, 0), 0);
    }
    buf_deinit(&b);
    for (int i = 0; i < N; i++)
        mq_frontend_close(f[i]);
    mq_engine_close(e);
    mq_context_free(ctx);
}

TEST(round_trip_ipc)
{
    struct ipc_dir d;
    REQUIRE(ipc_dir_make(&d) == 0);
    round_trip(d.addr);
    ipc_dir_remove(&d);
}

TEST(round_trip_tcp)
{
    round_trip("tcp://127.0.0.1:*");
}

TEST(peer_equal)
{
    struct mq_peer a = {.n = 3, .id = {1, 2, 3}}, b = a, c = {.n = 2, .id = {1, 2}};
    CHECK(mq_peer_equal(&a, &b));
    CHECK(!mq_peer_equal(&a, &c));
    b.id[2] = 4;
    CHECK(!mq_peer_equal(&a, &b));
}

/* ---- options ---- */

TEST(options_read_back)
{
    struct mq_context *ctx = NULL;
    REQUIRE(mq_context_new(&ctx) == 0);
    struct mq_opts o;
    mq_opts_init(&o, ctx, "tcp://127.0.0.1:*");
    CHECK_STREQ(MQ_DEFAULT_ADDR, "ipc:///tmp/kiln-engine-0.sock");
    struct mq_engine *e = engine_open(&o);
    REQUIRE(e);
    CHECK_EQ(get_int(eng_opt, e, ZMQ_SNDHWM), MQ_DEFAULT_HWM);
    CHECK_EQ(get_int(eng_opt, e, ZMQ_RCVHWM), MQ_DEFAULT_HWM);
    CHECK_EQ(get_int(eng_opt, e, ZMQ_LINGER), 200);
    CHECK_EQ(get_int(eng_opt, e, ZMQ_HEARTBEAT_IVL), 1000);
    CHECK_EQ(get_int(eng_opt, e, ZMQ_HEARTBEAT_TIMEOUT), 3000);
    CHECK_EQ(get_int(eng_opt, e, ZMQ_HEARTBEAT_TTL), 3000);
    CHECK_EQ(get_int(eng_opt, e, ZMQ_IPV6), 0);
    CHECK_EQ(get_int(eng_opt, e, ZMQ_TYPE), ZMQ_ROUTER);
    int64_t max = 0;
    size_t len = sizeof max;
    CHECK_EQ(mq_engine_sockopt(e, ZMQ_MAXMSGSIZE, &max, &len), 0);
    CHECK_EQ(max, (64 << 20) + 12);
    int fd = -1;
    CHECK_EQ(mq_engine_fd(e, &fd), 0);
    CHECK(fd >= 0);

    char ep[256];
    REQUIRE(mq_engine_endpoint(e, ep, sizeof ep) == 0);
    o.addr = ep;
    o.linger_ms = 0;
    o.reconnect_ivl_ms = 50;
    o.reconnect_ivl_max_ms = 500;
    o.sndhwm = 7;
    o.routing_id = "fe";
    o.n_routing_id = 2;
    struct mq_frontend *f = frontend_open(&o);
    REQUIRE(f);
    CHECK_EQ(get_int(fe_opt, f, ZMQ_SNDHWM), 7);
    CHECK_EQ(get_int(fe_opt, f, ZMQ_LINGER), 0);
    CHECK_EQ(get_int(fe_opt, f, ZMQ_IMMEDIATE), 1);
    CHECK_EQ(get_int(fe_opt, f, ZMQ_RECONNECT_IVL), 50);
    CHECK_EQ(get_int(fe_opt, f, ZMQ_RECONNECT_IVL_MAX), 500);
    CHECK_EQ(get_int(fe_opt, f, ZMQ_HEARTBEAT_IVL), 1000);
    CHECK_EQ(get_int(fe_opt, f, ZMQ_TYPE), ZMQ_DEALER);
    char id[16];
    len = sizeof id;
    CHECK_EQ(mq_frontend_sockopt(f, ZMQ_ROUTING_ID, id, &len), 0);
    CHECK_MEMEQ(id, len, "fe", 2);
    CHECK_EQ(mq_frontend_fd(f, &fd), 0);
    CHECK(fd >= 0);
    len = 1;
    CHECK_EQ(mq_frontend_sockopt(f, ZMQ_ROUTING_ID, id, &len), ERR_INVAL);
    mq_frontend_close(f);
    mq_engine_close(e);
    mq_context_free(ctx);
}

static int try_engine(struct mq_opts *o)
{
    struct mq_engine *e = NULL;
    char err[256] = "";
    int rc = mq_engine_open(o, &e, err, sizeof err);
    if (rc)
        CHECK(err[0] != '\0');
    mq_engine_close(e);
    return rc;
}

static int try_frontend(struct mq_opts *o)
{
    struct mq_frontend *f = NULL;
    char err[256] = "";
    int rc = mq_frontend_open(o, &f, err, sizeof err);
    if (rc)
        CHECK(err[0] != '\0');
    mq_frontend_close(f);
    return rc;
}

TEST(options_refused)
{
    struct mq_context *ctx = NULL;
    REQUIRE(mq_context_new(&ctx) == 0);
    struct mq_opts o;
    mq_opts_init(&o, ctx, "inproc://x");
    CHECK_EQ(try_engine(&o), ERR_UNSUPPORTED);
    CHECK_EQ(try_frontend(&o), ERR_UNSUPPORTED);
    o.addr = "tcp://";
    CHECK_EQ(try_engine(&o), ERR_INVAL);
    o.addr = "tcp://no-such-interface-xyz:1";
    CHECK(try_engine(&o) < 0);
    o.addr = "ipc:///nonexistent-kiln-dir/x.sock";
    CHECK_EQ(try_engine(&o), ERR_IO);
    o.addr = "tcp://127.0.0.1:*";
    o.sndhwm = 0; /* libzmq's "unlimited" */
    CHECK_EQ(try_engine(&o), ERR_RANGE);
    o.sndhwm = 1;
    o.linger_ms = -1; /* libzmq's "forever" */
    CHECK_EQ(try_engine(&o), ERR_RANGE);
    o.linger_ms = 0;
    o.heartbeat_ttl_ms = 7000000;
    CHECK_EQ(try_engine(&o), ERR_RANGE);
    o.heartbeat_ttl_ms = 0;
    o.reconnect_ivl_max_ms = 10;
    o.reconnect_ivl_ms = 20;
    CHECK_EQ(try_frontend(&o), ERR_RANGE);
    o.reconnect_ivl_ms = 10;
    o.routing_id = "\0abc";
    o.n_routing_id = 4;
    CHECK_EQ(try_frontend(&o), ERR_INVAL);
    o.routing_id = "abc";
    o.n_routing_id = 0;
    CHECK_EQ(try_frontend(&o), ERR_RANGE);
    o.n_routing_id = 256;
    CHECK_EQ(try_frontend(&o), ERR_RANGE);
    o.ctx = NULL;
    CHECK_EQ(try_frontend(&o), ERR_INVAL);
    mq_context_free(ctx);
}

/* ---- receiving ---- */

TEST(recv_nonblocking_empty)
{
    struct mq_context *ctx = NULL;
    REQUIRE(mq_context_new(&ctx) == 0);
    struct mq_opts o;
    mq_opts_init(&o, ctx, "tcp://127.0.0.1:*");
    struct mq_engine *e = engine_open(&o);
    REQUIRE(e);
    char ep[256];
    REQUIRE(mq_engine_endpoint(e, ep, sizeof ep) == 0);
    o.addr = ep;
    struct mq_frontend *f = frontend_open(&o);
    REQUIRE(f);
    struct buf b;
    buf_init(&b, 0);
    struct mq_peer from;
    CHECK_EQ(mq_engine_recv(e, &from, &b, 0), 0);
    CHECK_EQ(mq_engine_recv(e, &from, &b, 20), 0);
    CHECK_EQ(mq_engine_wait(e, 0), 0);
    CHECK_EQ(mq_engine_readable(e), 0);
    CHECK_EQ(mq_frontend_recv(f, &b, 0), 0);
    CHECK_EQ(mq_frontend_readable(f), 0);

    /* then one message: wait and readable say so, recv takes it, the queue is empty again */
    REQUIRE(fe_send(f, "x", 1) == 0);
    CHECK_EQ(mq_engine_wait(e, WAIT_MS), 1);
    CHECK_EQ(mq_engine_readable(e), 1);
    CHECK_EQ(mq_engine_recv(e, &from, &b, 0), 1);
    CHECK_MEMEQ(b.p, b.n, "x", 1);
    CHECK_EQ(mq_engine_recv(e, &from, &b, 0), 0);
    CHECK_EQ(mq_engine_readable(e), 0);
    /* an empty body is a message too */
    REQUIRE(fe_send(f, "", 0) == 0);
    CHECK_EQ(mq_engine_recv(e, &from, &b, WAIT_MS), 1);
    CHECK_EQ(b.n, 0);
    buf_deinit(&b);
    mq_frontend_close(f);
    mq_engine_close(e);
    mq_context_free(ctx);
}

TEST(recv_body_limit)
{
    struct mq_context *ctx = NULL;
    REQUIRE(mq_context_new(&ctx) == 0);
    struct mq_opts o;
    mq_opts_init(&o, ctx, "tcp://127.0.0.1:*");
    struct mq_engine *e = engine_open(&o);
    REQUIRE(e);
    char ep[256];
    REQUIRE(mq_engine_endpoint(e, ep, sizeof ep) == 0);
    o.addr = ep;
    o.routing_id = "big";
    o.n_routing_id = 3;
    struct mq_frontend *f = frontend_open(&o);
    REQUIRE(f);
    struct buf b;
    buf_init(&b, 8);
    struct mq_peer from = {0};
    REQUIRE(fe_send(f, "0123456789abcdef", 16) == 0);
    REQUIRE(fe_send(f, "small", 5) == 0);
    CHECK_EQ(mq_engine_recv(e, &from, &b, WAIT_MS), ERR_LIMIT);
    CHECK_MEMEQ(from.id, from.n, "big", 3);
    CHECK_EQ(mq_engine_recv(e, &from, &b, WAIT_MS), 1);
    CHECK_MEMEQ(b.p, b.n, "small", 5);
    buf_deinit(&b);
    mq_frontend_close(f);
    mq_engine_close(e);
    mq_context_free(ctx);
}

/* A raw DEALER and a raw REQ send shapes mq never makes; the engine drops them and still
 * delivers the well-formed message that follows. */
TEST(engine_drops_malformed_shapes)
{
    struct mq_context *ctx = NULL;
    REQUIRE(mq_context_new(&ctx) == 0);
    struct mq_opts o;
    mq_opts_init(&o, ctx, "tcp://127.0.0.1:*");
    struct mq_engine *e = engine_open(&o);
    REQUIRE(e);
    char ep[256];
    REQUIRE(mq_engine_endpoint(e, ep, sizeof ep) == 0);

    void *z = zmq_ctx_new();
    REQUIRE(z);
    void *dealer = zmq_socket(z, ZMQ_DEALER), *req = zmq_socket(z, ZMQ_REQ);
    REQUIRE(dealer && req);
    int zero = 0;
    zmq_setsockopt(dealer, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(req, ZMQ_LINGER, &zero, sizeof zero);
    REQUIRE(zmq_connect(dealer, ep) == 0 && zmq_connect(req, ep) == 0);
    CHECK_EQ(zmq_send(req, "req", 3, 0), 3); /* [empty delimiter][req] */
    CHECK_EQ(zmq_send(dealer, "a", 1, ZMQ_SNDMORE), 1);
    CHECK_EQ(zmq_send(dealer, "b", 1, ZMQ_SNDMORE), 1);
    CHECK_EQ(zmq_send(dealer, "c", 1, 0), 1);
    CHECK_EQ(zmq_send(dealer, "good", 4, 0), 4);

    struct buf b;
    buf_init(&b, 0);
    struct mq_peer from;
    CHECK_EQ(mq_engine_recv(e, &from, &b, WAIT_MS), 1);
    CHECK_MEMEQ(b.p, b.n, "good", 4);
    CHECK_EQ(mq_engine_recv(e, &from, &b, 100), 0);
    buf_deinit(&b);
    zmq_close(dealer);
    zmq_close(req);
    zmq_ctx_term(z);
    mq_engine_close(e);
    mq_context_free(ctx);
}

/* A raw ROUTER sends a two-frame message to a frontend, then a one-frame one. */
TEST(frontend_drops_malformed_shapes)
{
    struct mq_context *ctx = NULL;
    REQUIRE(mq_context_new(&ctx) == 0);
    void *z = zmq_ctx_new();
    REQUIRE(z);
    void *router = zmq_socket(z, ZMQ_ROUTER);
    REQUIRE(router);
    int zero = 0, one = 1;
    zmq_setsockopt(router, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(router, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    REQUIRE(zmq_bind(router, "tcp://127.0.0.1:*") == 0);
    char ep[256];
    size_t len = sizeof ep;
    REQUIRE(zmq_getsockopt(router, ZMQ_LAST_ENDPOINT, ep, &len) == 0);

    struct mq_opts o;
    mq_opts_init(&o, ctx, ep);
    o.routing_id = "F";
    o.n_routing_id = 1;
    struct mq_frontend *f = frontend_open(&o);
    REQUIRE(f);
    int64_t end = now_ms() + WAIT_MS;
    int rc;
    while ((rc = zmq_send(router, "F", 1, ZMQ_SNDMORE | ZMQ_DONTWAIT)) < 0 && now_ms() < end)
        sleep_ms(2);
    REQUIRE(rc == 1);
    CHECK_EQ(zmq_send(router, "x", 1, ZMQ_SNDMORE), 1);
    CHECK_EQ(zmq_send(router, "y", 1, 0), 1);
    CHECK_EQ(zmq_send(router, "F", 1, ZMQ_SNDMORE), 1);
    CHECK_EQ(zmq_send(router, "ok", 2, 0), 2);

    struct buf b;
    buf_init(&b, 0);
    CHECK_EQ(mq_frontend_recv(f, &b, WAIT_MS), 1);
    CHECK_MEMEQ(b.p, b.n, "ok", 2);
    CHECK_EQ(mq_frontend_recv(f, &b, 0), 0);
    buf_deinit(&b);
    mq_frontend_close(f);
    zmq_close(router);
    zmq_ctx_term(z);
    mq_context_free(ctx);
}

/* ---- limits ---- */

/* heard_again: f, whose connection libzmq dropped, reconnects and reaches e as peer id. */
static int heard_again(struct mq_engine *e, struct mq_frontend *f, const char *id)
{
    struct buf m;
    buf_init(&m, 0);
    struct mq_peer from;
    int64_t end = now_ms() + WAIT_MS;
    int rc = 0;
    while (now_ms() < end && rc != 1) {
        mq_frontend_send(f, "again", 5);
        rc = mq_engine_recv(e, &from, &m, 50);
    }
    buf_deinit(&m);
    return rc == 1 && from.n == strlen(id) && memcmp(from.id, id, from.n) == 0;
}

/* A message above the engine's ZMQ_MAXMSGSIZE never reaches it (libzmq drops the sender's
 * connection); another frontend's messages still do. */
TEST(maxmsgsize_not_delivered)
{
    struct mq_context *ctx = NULL;
    REQUIRE(mq_context_new(&ctx) == 0);
    struct ipc_dir d;
    REQUIRE(ipc_dir_make(&d) == 0);
    struct mq_opts o;
    mq_opts_init(&o, ctx, d.addr);
    o.maxmsgsize = 1024;
    struct mq_engine *e = engine_open(&o);
    REQUIRE(e);
    o.maxmsgsize = MQ_DEFAULT_MAXMSGSIZE;
    o.routing_id = "A";
    o.n_routing_id = 1;
    struct mq_frontend *a = frontend_open(&o);
    o.routing_id = "B";
    struct mq_frontend *b = frontend_open(&o);
    REQUIRE(a && b);

    static char big[4096];
    memset(big, 'z', sizeof big);
    struct buf m;
    buf_init(&m, 0);
    struct mq_peer from;
    REQUIRE(fe_send(a, big, 1024) == 0); /* exactly the limit is fine */
    REQUIRE(mq_engine_recv(e, &from, &m, WAIT_MS) == 1);
    CHECK_EQ(m.n, 1024);
    REQUIRE(fe_send(a, big, sizeof big) == 0);
    REQUIRE(fe_send_str(b, "from B") == 0);
    int got_b = 0, got_a = 0;
    int64_t end = now_ms() + WAIT_MS;
    while (!got_b && now_ms() < end) {
        if (mq_engine_recv(e, &from, &m, 50) != 1)
            continue;
        if (from.n == 1 && from.id[0] == 'B')
            got_b = 1;
        else
            got_a++;
    }
    CHECK(got_b);
    CHECK_MEMEQ(m.p, m.n, "from B", 6);
    CHECK_EQ(mq_engine_recv(e, &from, &m, 200), 0);
    CHECK_EQ(got_a, 0);
    CHECK(heard_again(e, a, "A"));
    buf_deinit(&m);
    mq_frontend_close(a);
    mq_frontend_close(b);
    mq_engine_close(e);
    mq_context_free(ctx);
    ipc_dir_remove(&d);
}

TEST(send_to_unknown_or_gone_peer)
{
    struct mq_context *ctx = NULL;
    REQUIRE(mq_context_new(&ctx) == 0);
    struct ipc_dir d;
    REQUIRE(ipc_dir_make(&d) == 0);
    struct mq_opts o;
    mq_opts_init(&o, ctx, d.addr);
    struct mq_engine *e = engine_open(&o);
    REQUIRE(e);
    struct mq_peer nobody = {.n = 3, .id = "who"}, empty = {0};
    CHECK_EQ(mq_engine_send(e, &nobody, "x", 1), ERR_NOTFOUND);
    CHECK_EQ(mq_engine_send(e, &empty, "x", 1), ERR_INVAL);

    struct mq_frontend *f = frontend_open(&o), *g = frontend_open(&o);
    REQUIRE(f && g);
    struct buf b;
    buf_init(&b, 0);
    struct mq_peer pf, pg;
    REQUIRE(fe_send_str(f, "f") == 0);
    REQUIRE(mq_engine_recv(e, &pf, &b, WAIT_MS) == 1);
    REQUIRE(fe_send_str(g, "g") == 0);
    REQUIRE(mq_engine_recv(e, &pg, &b, WAIT_MS) == 1);
    CHECK_EQ(mq_engine_send(e, &pf, "ok", 2), 0);
    mq_frontend_close(f);
    int64_t end = now_ms() + WAIT_MS;
    int rc;
    while ((rc = mq_engine_send(e, &pf, "late", 4)) == 0 && now_ms() < end)
        sleep_ms(5);
    CHECK_EQ(rc, ERR_NOTFOUND);
    /* the other frontend is unaffected */
    CHECK_EQ(mq_engine_send(e, &pg, "still", 5), 0);
    CHECK_EQ(mq_frontend_recv(g, &b, WAIT_MS), 1);
    CHECK_MEMEQ(b.p, b.n, "still", 5);
    buf_deinit(&b);
    mq_frontend_close(g);
    mq_engine_close(e);
    mq_context_free(ctx);
    ipc_dir_remove(&d);
}

/* The engine sends 64 KiB messages to a frontend that never reads, with HWMs of 1: the
 * queues and the kernel's buffers fill and a send returns ERR_LIMIT instead of blocking.
 * Once the frontend reads, sending works again. */
TEST(engine_send_hwm_limit)
{
    struct mq_context *ctx = NULL;
    REQUIRE(mq_context_new(&ctx) == 0);
    struct mq_opts o;
    mq_opts_init(&o, ctx, "tcp://127.0.0.1:*");
    o.sndhwm = 1;
    o.rcvhwm = 1;
    struct mq_engine *e = engine_open(&o);
    REQUIRE(e);
    char ep[256];
    REQUIRE(mq_engine_endpoint(e, ep, sizeof ep) == 0);
    o.addr = ep;
    struct mq_frontend *f = frontend_open(&o);
    REQUIRE(f);
    struct buf b;
    buf_init(&b, 0);
    struct mq_peer p;
    REQUIRE(fe_send_str(f, "hi") == 0);
    REQUIRE(mq_engine_recv(e, &p, &b, WAIT_MS) == 1);

    static char chunk[64 << 10];
    int64_t t0 = now_ms();
    int rc = 0, sent = 0;
    while (sent < 20000 && (rc = mq_engine_send(e, &p, chunk, sizeof chunk)) == 0)
        sent++;
    CHECK_EQ(rc, ERR_LIMIT);
    CHECK(now_ms() - t0 < 10000);
    /* everything accepted arrives, nothing was dropped; then the engine can send again */
    for (int i = 0; i < sent; i++)
        CHECK_EQ(mq_frontend_recv(f, &b, WAIT_MS), 1);
    int64_t end = now_ms() + WAIT_MS;
    while ((rc = mq_engine_send(e, &p, "z", 1)) == ERR_LIMIT && now_ms() < end) {
        mq_frontend_recv(f, &b, 0);
        sleep_ms(1);
    }
    CHECK_EQ(rc, 0);
    buf_deinit(&b);
    mq_frontend_close(f);
    mq_engine_close(e);
    mq_context_free(ctx);
}

/* The same from a frontend whose engine never reads. */
TEST(frontend_send_hwm_limit)
{
    struct mq_context *ctx = NULL;
    REQUIRE(mq_context_new(&ctx) == 0);
    struct ipc_dir d;
    REQUIRE(ipc_dir_make(&d) == 0);
    struct mq_opts o;
    mq_opts_init(&o, ctx, d.addr);
    o.sndhwm = 1;
    o.rcvhwm = 1;
    struct mq_engine *e = engine_open(&o);
    REQUIRE(e);
    struct mq_frontend *f = frontend_open(&o);
    REQUIRE(f);
    static char chunk[64 << 10];
    REQUIRE(fe_send(f, chunk, sizeof chunk) == 0);
    int64_t t0 = now_ms();
    int rc = 0, sent = 0;
    while (sent < 20000 && (rc = mq_frontend_send(f, chunk, sizeof chunk)) == 0)
        sent++;
    CHECK_EQ(rc, ERR_LIMIT);
    CHECK(now_ms() - t0 < 10000);
    mq_frontend_close(f);
    mq_engine_close(e);
    mq_context_free(ctx);
    ipc_dir_remove(&d);
}

/* ZMQ_IMMEDIATE: with no engine a send is refused (ERR_LIMIT) rather than queued; once the
 * engine binds, the frontend reconnects by itself. */
TEST(frontend_before_engine)
{
    struct mq_context *ctx = NULL;
    REQUIRE(mq_context_new(&ctx) == 0);
    struct ipc_dir d;
    REQUIRE(ipc_dir_make(&d) == 0);
    struct mq_opts o;
    mq_opts_init(&o, ctx, d.addr);
    struct mq_frontend *f = frontend_open(&o);
    REQUIRE(f);
    CHECK_EQ(mq_frontend_send(f, "early", 5), ERR_LIMIT);
    struct mq_engine *e = engine_open(&o);
    REQUIRE(e);
    CHECK_EQ(fe_send_str(f, "later"), 0);
    struct buf b;
    buf_init(&b, 0);
    struct mq_peer p;
    CHECK_EQ(mq_engine_recv(e, &p, &b, WAIT_MS), 1);
    CHECK_MEMEQ(b.p, b.n, "later", 5);
    CHECK_EQ(mq_engine_recv(e, &p, &b, 100), 0);
    buf_deinit(&b);
    mq_frontend_close(f);
    mq_engine_close(e);
    mq_context_free(ctx);
    ipc_dir_remove(&d);
}

/* ---- shutdown ---- */

/* Closing with messages still queued both ways (the peers never read) and freeing the
 * context returns within the linger, not never. */
TEST(shutdown_with_queued_messages)
{
    struct mq_context *ctx = NULL;
    REQUIRE(mq_context_new(&ctx) == 0);
    struct mq_opts o;
    mq_opts_init(&o, ctx, "tcp://127.0.0.1:*");
    struct mq_engine *e = engine_open(&o);
    REQUIRE(e);
    char ep[256];
    REQUIRE(mq_engine_endpoint(e, ep, sizeof ep) == 0);
    o.addr = ep;
    struct mq_frontend *f = frontend_open(&o);
    REQUIRE(f);
    struct buf b;
    buf_init(&b, 0);
    struct mq_peer p;
    REQUIRE(fe_send_str(f, "hi") == 0);
    REQUIRE(mq_engine_recv(e, &p, &b, WAIT_MS) == 1);
    static char chunk[64 << 10];
    for (int i = 0; i < 200; i++) {
        mq_engine_send(e, &p, chunk, sizeof chunk);
        mq_frontend_send(f, chunk, sizeof chunk);
    }
    int64_t t0 = now_ms();
    mq_engine_close(e);
    mq_frontend_close(f);
    mq_context_free(ctx);
    CHECK(now_ms() - t0 < 5000);
    buf_deinit(&b);
    mq_context_free(NULL);
    mq_engine_close(NULL);
    mq_frontend_close(NULL);
}

int main(int argc, char **argv)
{
    return test_main(argc, argv);
}
