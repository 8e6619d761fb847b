#include "common/mq.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "common/err.h"

#define MQ_LINGER_MAX_MS 60000
#define MQ_HEARTBEAT_TTL_MAX_MS 6553500 /* libzmq sends it in deciseconds, as a u16 */

struct mq_context {
    void *z; /* the libzmq context */
};

struct mq_engine {
    void *sock; /* ROUTER */
};

struct mq_frontend {
    void *sock; /* DEALER */
};

/* ---- helpers ---- */

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* code_of: the ERR_* code for a libzmq errno. */
static int code_of(int e)
{
    switch (e) {
    case EAGAIN: return ERR_LIMIT;
    case EHOSTUNREACH: return ERR_NOTFOUND;
    case ETERM: return ERR_STATE;
    case ENOMEM: return ERR_NOMEM;
    case EINVAL: return ERR_INVAL;
    case EPROTONOSUPPORT: return ERR_UNSUPPORTED;
    default: return ERR_IO;
    }
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int set_int(void *sock, int option, int v, const char *name, char *err, size_t errlen)
{
    if (zmq_setsockopt(sock, option, &v, sizeof v) == 0)
        return 0;
    int e = errno;
    seterr(err, errlen, "zmq_setsockopt %s=%d: %s", name, v, zmq_strerror(e));
    return code_of(e);
}

/* check_addr: refuses anything but ipc:// and tcp:// endpoints. */
static int check_addr(const char *addr, char *err, size_t errlen)
{
    if (!addr || !*addr) {
        seterr(err, errlen, "no address");
        return ERR_INVAL;
    }
    if (strncmp(addr, "ipc://", 6) != 0 && strncmp(addr, "tcp://", 6) != 0) {
        seterr(err, errlen, "%s: only ipc:// and tcp:// addresses are supported", addr);
        return ERR_UNSUPPORTED;
    }
    if (!addr[6]) {
        seterr(err, errlen, "%s: empty path or host", addr);
        return ERR_INVAL;
    }
    return 0;
}

/* check_range: lo <= v <= hi, else ERR_RANGE with a description. */
static int check_range(int64_t v, int64_t lo, int64_t hi, const char *name, char *err,
                       size_t errlen)
{
    if (v >= lo && v <= hi)
        return 0;
    seterr(err, errlen, "%s = %lld: must be in %lld .. %lld", name, (long long)v, (long long)lo,
           (long long)hi);
    return ERR_RANGE;
}

/* check_opts: the options common to both sides, and the frontend's when frontend. */
static int check_opts(const struct mq_opts *o, bool frontend, char *err, size_t errlen)
{
    if (!o || !o->ctx) {
        seterr(err, errlen, "no options or no context");
        return ERR_INVAL;
    }
    int rc = check_addr(o->addr, err, errlen);
    if (!rc)
        rc = check_range(o->sndhwm, 1, INT_MAX, "sndhwm", err, errlen);
    if (!rc)
        rc = check_range(o->rcvhwm, 1, INT_MAX, "rcvhwm", err, errlen);
    if (!rc)
        rc = check_range(o->linger_ms, 0, MQ_LINGER_MAX_MS, "linger_ms", err, errlen);
    if (!rc)
        rc = check_range(o->maxmsgsize, 1, INT64_MAX, "maxmsgsize", err, errlen);
    if (!rc)
        rc = check_range(o->heartbeat_ivl_ms, 0, INT_MAX, "heartbeat_ivl_ms", err, errlen);
    if (!rc)
        rc = check_range(o->heartbeat_timeout_ms, 0, INT_MAX, "heartbeat_timeout_ms", err, errlen);
    if (!rc)
        rc = check_range(o->heartbeat_ttl_ms, 0, MQ_HEARTBEAT_TTL_MAX_MS, "heartbeat_ttl_ms", err,
                         errlen);
    if (rc || !frontend)
        return rc;
    rc = check_range(o->reconnect_ivl_ms, 1, INT_MAX, "reconnect_ivl_ms", err, errlen);
    if (!rc)
        rc = check_range(o->reconnect_ivl_max_ms, o->reconnect_ivl_ms, INT_MAX,
                         "reconnect_ivl_max_ms", err, errlen);
    if (!rc && o->routing_id) {
        rc = check_range((int64_t)o->n_routing_id, 1, MQ_PEER_MAX, "n_routing_id", err, errlen);
        if (!rc && ((const uint8_t *)o->routing_id)[0] == 0) {
            seterr(err, errlen, "a routing id must not start with a zero byte");
            rc = ERR_INVAL;
        }
    }
    return rc;
}

/* set_common: the options both sides set. */
static int set_common(void *sock, const struct mq_opts *o, char *err, size_t errlen)
{
    int rc = set_int(sock, ZMQ_SNDHWM, o->sndhwm, "ZMQ_SNDHWM", err, errlen);
    if (!rc)
        rc = set_int(sock, ZMQ_RCVHWM, o->rcvhwm, "ZMQ_RCVHWM", err, errlen);
    if (!rc)
        rc = set_int(sock, ZMQ_LINGER, o->linger_ms, "ZMQ_LINGER", err, errlen);
    if (!rc)
        rc =
            set_int(sock, ZMQ_HEARTBEAT_IVL, o->heartbeat_ivl_ms, "ZMQ_HEARTBEAT_IVL", err, errlen);
    if (!rc)
        rc = set_int(sock, ZMQ_HEARTBEAT_TIMEOUT, o->heartbeat_timeout_ms, "ZMQ_HEARTBEAT_TIMEOUT",
                     err, errlen);
    if (!rc)
        rc =
            set_int(sock, ZMQ_HEARTBEAT_TTL, o->heartbeat_ttl_ms, "ZMQ_HEARTBEAT_TTL", err, errlen);
    if (!rc)
        rc = set_int(sock, ZMQ_IPV6, 0, "ZMQ_IPV6", err, errlen);
    if (rc)
        return rc;
    int64_t max = o->maxmsgsize;
    if (zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &max, sizeof max) != 0) {
        int e = errno;
        seterr(err, errlen, "zmq_setsockopt ZMQ_MAXMSGSIZE: %s", zmq_strerror(e));
        return code_of(e);
    }
    return 0;
}

/* sock_open: a new socket of type on o->ctx with the common options, into *out. */
static int sock_open(const struct mq_opts *o, int type, void **out, char *err, size_t errlen)
{
    void *sock = zmq_socket(o->ctx->z, type);
    if (!sock) {
        int e = errno;
        seterr(err, errlen, "zmq_socket: %s", zmq_strerror(e));
        return code_of(e);
    }
    int rc = set_common(sock, o, err, errlen);
    if (rc) {
        zmq_close(sock);
        return rc;
    }
    *out = sock;
    return 0;
}

/* sock_poll: waits up to timeout_ms (< 0: forever) for POLLIN. 1, 0 or an error. */
static int sock_poll(void *sock, long timeout_ms)
{
    zmq_pollitem_t it = {.socket = sock, .events = ZMQ_POLLIN};
    int rc = zmq_poll(&it, 1, timeout_ms);
    if (rc < 0)
        return errno == EINTR ? 0 : code_of(errno);
    return rc > 0 && (it.revents & ZMQ_POLLIN) ? 1 : 0;
}

static int sock_readable(void *sock)
{
    int ev = 0;
    size_t len = sizeof ev;
    if (zmq_getsockopt(sock, ZMQ_EVENTS, &ev, &len) != 0)
        return code_of(errno);
    return (ev & ZMQ_POLLIN) ? 1 : 0;
}

static int sock_fd(void *sock, int *fd)
{
    size_t len = sizeof *fd;
    if (zmq_getsockopt(sock, ZMQ_FD, fd, &len) != 0)
        return ERR_IO;
    return 0;
}

static int sock_opt(void *sock, int option, void *val, size_t *len)
{
    return zmq_getsockopt(sock, option, val, len) == 0 ? 0 : ERR_INVAL;
}

/* ---- receiving ---- */

#define MQ_MALFORMED 2

/*
 * recv_parts: one whole message of exactly `want` frames into parts[0..want) (initialized
 * here; the caller closes them on 1). Returns 1, 0 (nothing queued), MQ_MALFORMED (a
 * message of another shape, consumed and dropped) or an error.
 */
static int recv_parts(void *sock, zmq_msg_t *parts, int want)
{
    zmq_msg_t extra;
    int got = 0, more = 1;
    for (; more; got++) {
        zmq_msg_t *m = got < want ? &parts[got] : &extra;
        zmq_msg_init(m);
        if (zmq_msg_recv(m, sock, ZMQ_DONTWAIT) < 0) {
            int e = errno;
            for (int i = 0; i <= got && i < want; i++)
                zmq_msg_close(&parts[i]);
            if (m == &extra)
                zmq_msg_close(&extra);
            /* later frames of a message arrive with its first: EAGAIN means none queued */
            if (e == EAGAIN || e == EINTR)
                return 0;
            return code_of(e);
        }
        more = zmq_msg_more(m);
        if (m == &extra)
            zmq_msg_close(&extra);
    }
    if (got == want)
        return 1;
    for (int i = 0; i < got && i < want; i++)
        zmq_msg_close(&parts[i]);
    return MQ_MALFORMED;
}

/* recv_wait: recv_parts, dropping malformed messages, waiting up to timeout_ms for one. */
static int recv_wait(void *sock, zmq_msg_t *parts, int want, int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    for (;;) {
        int rc = recv_parts(sock, parts, want);
        if (rc == MQ_MALFORMED)
            continue;
        if (rc)
            return rc;
        long left = -1;
        if (deadline >= 0) {
            left = (long)(deadline - now_ms());
            if (left <= 0)
                return 0;
        }
        rc = sock_poll(sock, left);
        if (rc <= 0)
            return rc;
    }
}

/* take_body: body = the bytes of m, which is closed. 0, ERR_LIMIT or ERR_NOMEM. */
static int take_body(zmq_msg_t *m, struct buf *body)
{
    buf_reset(body);
    int rc = buf_append(body, zmq_msg_data(m), zmq_msg_size(m));
    zmq_msg_close(m);
    return rc;
}

/* ---- context, options, peers ---- */

int mq_context_new(struct mq_context **out)
{
    struct mq_context *c = calloc(1, sizeof *c);
    if (!c)
        return ERR_NOMEM;
    c->z = zmq_ctx_new();
    if (!c->z) {
        free(c);
        return ERR_IO;
    }
    /* sockets closed with unsent messages never hold up termination beyond their linger */
    zmq_ctx_set(c->z, ZMQ_BLOCKY, 0);
    *out = c;
    return 0;
}

void mq_context_free(struct mq_context *c)
{
    if (!c)
        return;
    while (zmq_ctx_term(c->z) != 0 && errno == EINTR) {
    }
    free(c);
}

void mq_opts_init(struct mq_opts *o, struct mq_context *ctx, const char *addr)
{
    *o = (struct mq_opts){
        .ctx = ctx,
        .addr = addr ? addr : MQ_DEFAULT_ADDR,
        .sndhwm = MQ_DEFAULT_HWM,
        .rcvhwm = MQ_DEFAULT_HWM,
        .linger_ms = MQ_DEFAULT_LINGER_MS,
        .maxmsgsize = MQ_DEFAULT_MAXMSGSIZE,
        .heartbeat_ivl_ms = MQ_DEFAULT_HEARTBEAT_IVL_MS,
        .heartbeat_timeout_ms = MQ_DEFAULT_HEARTBEAT_TIMEOUT_MS,
        .heartbeat_ttl_ms = MQ_DEFAULT_HEARTBEAT_TTL_MS,
        .reconnect_ivl_ms = MQ_DEFAULT_RECONNECT_IVL_MS,
        .reconnect_ivl_max_ms = MQ_DEFAULT_RECONNECT_IVL_MAX_MS,
    };
}

bool mq_peer_equal(const struct mq_peer *a, const struct mq_peer *b)
{
    return a->n == b->n && a->n <= MQ_PEER_MAX && memcmp(a->id, b->id, a->n) == 0;
}

/* ---- engine ---- */

int mq_engine_open(const struct mq_opts *o, struct mq_engine **out, char *err, size_t errlen)
{
    int rc = check_opts(o, false, err, errlen);
    if (rc)
        return rc;
    struct mq_engine *e = calloc(1, sizeof *e);
    if (!e)
        return ERR_NOMEM;
    rc = sock_open(o, ZMQ_ROUTER, &e->sock, err, errlen);
    if (rc)
        goto fail_sock;
    rc = set_int(e->sock, ZMQ_ROUTER_MANDATORY, 1, "ZMQ_ROUTER_MANDATORY", err, errlen);
    if (!rc)
        rc = set_int(e->sock, ZMQ_ROUTER_HANDOVER, 1, "ZMQ_ROUTER_HANDOVER", err, errlen);
    if (rc)
        goto fail_bind;
    if (zmq_bind(e->sock, o->addr) != 0) {
        int en = errno;
        seterr(err, errlen, "bind %s: %s", o->addr, zmq_strerror(en));
        rc = en == EINVAL || en == EPROTONOSUPPORT ? code_of(en) : ERR_IO;
        goto fail_bind;
    }
    *out = e;
    return 0;

fail_bind:
    zmq_close(e->sock);
fail_sock:
    free(e);
    return rc;
}

void mq_engine_close(struct mq_engine *e)
{
    if (!e)
        return;
    zmq_close(e->sock);
    free(e);
}

int mq_engine_recv(struct mq_engine *e, struct mq_peer *from, struct buf *body, int timeout_ms)
{
    zmq_msg_t parts[2];
    for (;;) {
        int rc = recv_wait(e->sock, parts, 2, timeout_ms);
        if (rc <= 0)
            return rc;
        size_t n = zmq_msg_size(&parts[0]);
        if (n == 0 || n > MQ_PEER_MAX) { /* a ROUTER never makes these; drop it */
            zmq_msg_close(&parts[0]);
            zmq_msg_close(&parts[1]);
            continue;
        }
        from->n = n;
        memcpy(from->id, zmq_msg_data(&parts[0]), n);
        zmq_msg_close(&parts[0]);
        rc = take_body(&parts[1], body);
        return rc ? rc : 1;
    }
}

int mq_engine_send(struct mq_engine *e, const struct mq_peer *to, const void *p, size_t n)
{
    if (!to->n || to->n > MQ_PEER_MAX)
        return ERR_INVAL;
    if (n > INT_MAX)
        return ERR_RANGE;
    /* ROUTER_MANDATORY: the id frame fails with EAGAIN (full) or EHOSTUNREACH (unknown), and
     * once it is accepted the body frame is too */
    while (zmq_send(e->sock, to->id, to->n, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        if (errno != EINTR)
            return code_of(errno);
    }
    while (zmq_send(e->sock, p, n, ZMQ_DONTWAIT) < 0) {
        if (errno != EINTR)
            return errno == ETERM ? ERR_STATE : ERR_IO;
    }
    return 0;
}

int mq_engine_wait(struct mq_engine *e, int timeout_ms)
{
    return sock_poll(e->sock, timeout_ms < 0 ? -1 : timeout_ms);
}

int mq_engine_readable(struct mq_engine *e)
{
    return sock_readable(e->sock);
}

int mq_engine_fd(struct mq_engine *e, int *fd)
{
    return sock_fd(e->sock, fd);
}

int mq_engine_endpoint(struct mq_engine *e, char *s, size_t n)
{
    char tmp[1024];
    size_t len = sizeof tmp;
    if (zmq_getsockopt(e->sock, ZMQ_LAST_ENDPOINT, tmp, &len) != 0)
        return ERR_IO;
    size_t sl = strnlen(tmp, len);
    if (sl >= n)
        return ERR_LIMIT;
    memcpy(s, tmp, sl);
    s[sl] = '\0';
    return 0;
}

int mq_engine_sockopt(struct mq_engine *e, int option, void *val, size_t *len)
{
    return sock_opt(e->sock, option, val, len);
}

/* ---- frontend ---- */

/* frontend_setup: the DEALER-only options. */
static int frontend_setup(void *sock, const struct mq_opts *o, char *err, size_t errlen)
{
    int rc = set_int(sock, ZMQ_IMMEDIATE, 1, "ZMQ_IMMEDIATE", err, errlen);
    if (!rc)
        rc =
            set_int(sock, ZMQ_RECONNECT_IVL, o->reconnect_ivl_ms, "ZMQ_RECONNECT_IVL", err, errlen);
    if (!rc)
        rc = set_int(sock, ZMQ_RECONNECT_IVL_MAX, o->reconnect_ivl_max_ms, "ZMQ_RECONNECT_IVL_MAX",
                     err, errlen);
    if (rc || !o->routing_id)
        return rc;
    if (zmq_setsockopt(sock, ZMQ_ROUTING_ID, o->routing_id, o->n_routing_id) != 0) {
        int e = errno;
        seterr(err, errlen, "zmq_setsockopt ZMQ_ROUTING_ID: %s", zmq_strerror(e));
        return code_of(e);
    }
    return 0;
}

int mq_frontend_open(const struct mq_opts *o, struct mq_frontend **out, char *err, size_t errlen)
{
    int rc = check_opts(o, true, err, errlen);
    if (rc)
        return rc;
    struct mq_frontend *f = calloc(1, sizeof *f);
    if (!f)
        return ERR_NOMEM;
    rc = sock_open(o, ZMQ_DEALER, &f->sock, err, errlen);
    if (rc)
        goto fail_sock;
    rc = frontend_setup(f->sock, o, err, errlen);
    if (rc)
        goto fail_connect;
    if (zmq_connect(f->sock, o->addr) != 0) {
        int en = errno;
        seterr(err, errlen, "connect %s: %s", o->addr, zmq_strerror(en));
        rc = en == EINVAL || en == EPROTONOSUPPORT ? code_of(en) : ERR_IO;
        goto fail_connect;
    }
    *out = f;
    return 0;

fail_connect:
    zmq_close(f->sock);
fail_sock:
    free(f);
    return rc;
}

void mq_frontend_close(struct mq_frontend *f)
{
    if (!f)
        return;
    zmq_close(f->sock);
    free(f);
}

int mq_frontend_send(struct mq_frontend *f, const void *p, size_t n)
{
    if (n > INT_MAX)
        return ERR_RANGE;
    while (zmq_send(f->sock, p, n, ZMQ_DONTWAIT) < 0) {
        if (errno != EINTR)
            return code_of(errno);
    }
    return 0;
}

int mq_frontend_recv(struct mq_frontend *f, struct buf *body, int timeout_ms)
{
    zmq_msg_t part;
    int rc = recv_wait(f->sock, &part, 1, timeout_ms);
    if (rc <= 0)
        return rc;
    rc = take_body(&part, body);
    return rc ? rc : 1;
}

int mq_frontend_readable(struct mq_frontend *f)
{
    return sock_readable(f->sock);
}

int mq_frontend_fd(struct mq_frontend *f, int *fd)
{
    return sock_fd(f->sock, fd);
}

int mq_frontend_sockopt(struct mq_frontend *f, int option, void *val, size_t *len)
{
    return sock_opt(f->sock, option, val, len);
}
