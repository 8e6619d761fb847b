/*
 * mq: the ZeroMQ transport between frontends and engines. It moves byte buffers only; what is
 * inside them (one or more wire messages back to back) is common/wire's business.
 *
 * An engine binds one ROUTER socket (mq_engine); each frontend connects one DEALER socket
 * (mq_frontend) to each engine. The ROUTER sees every frontend as a routing id (struct
 * mq_peer), which the engine keys its frontends by and sends replies to. Both sides are set
 * up against the libzmq defaults that bite (OPERATIONS.md "Engine links"): bounded queues
 * that refuse rather than block or drop (ZMQ_DONTWAIT everywhere, ZMQ_ROUTER_MANDATORY on
 * the engine, ZMQ_IMMEDIATE on frontends), a bounded linger, a maximum message size,
 * transport heartbeats and reconnect backoff.
 *
 * Ownership and threads: one mq_context per process owns the libzmq context and may be used
 * from any thread. An mq_engine or mq_frontend belongs to one thread at a time (libzmq
 * sockets are not thread-safe). Close every engine and frontend before mq_context_free,
 * which otherwise waits for them forever. No global state.
 *
 * Event loops: mq_engine_fd / mq_frontend_fd give libzmq's ZMQ_FD, which is edge-triggered
 * and signals "something changed", not "a message is ready": when it fires, call the recv
 * function with timeout 0 until it returns 0 (mq_*_readable tells whether ZMQ_EVENTS still
 * has POLLIN). A send may also consume the edge, so check readability after sending too.
 */
#ifndef KILN_MQ_H
#define KILN_MQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/wire.h"

#define MQ_PEER_MAX 255 /* bytes in a routing id (libzmq's limit) */

#define MQ_DEFAULT_HWM 10000 /* messages queued per peer and direction */
#define MQ_DEFAULT_LINGER_MS 200
#define MQ_DEFAULT_MAXMSGSIZE ((int64_t)WIRE_MAX_BODY + WIRE_HEADER_SIZE) /* bytes */
#define MQ_DEFAULT_HEARTBEAT_IVL_MS 1000
#define MQ_DEFAULT_HEARTBEAT_TIMEOUT_MS 3000
#define MQ_DEFAULT_HEARTBEAT_TTL_MS 3000
#define MQ_DEFAULT_RECONNECT_IVL_MS 100
#define MQ_DEFAULT_RECONNECT_IVL_MAX_MS 2000
#define MQ_DEFAULT_ADDR "ipc:///tmp/kiln-engine-0.sock"

struct mq_context;
struct mq_engine;
struct mq_frontend;

/* A frontend as the engine sees it: its routing id. Compare with mq_peer_equal. */
struct mq_peer {
    size_t n;                /* 1 .. MQ_PEER_MAX once received */
    uint8_t id[MQ_PEER_MAX]; /* id[0..n) */
};

/* Socket options. Fill with mq_opts_init, then change what differs. */
struct mq_opts {
    struct mq_context *ctx;   /* required; outlives the socket */
    const char *addr;         /* "ipc:///path" or "tcp://host:port"; an engine may bind port "*" */
    int sndhwm;               /* messages queued for sending per peer, >= 1 */
    int rcvhwm;               /* messages queued on receipt per peer, >= 1 */
    int linger_ms;            /* how long close waits to flush, 0 .. 60000 */
    int64_t maxmsgsize;       /* largest message accepted, bytes, >= 1; a peer sending a
                                 larger one is disconnected */
    int heartbeat_ivl_ms;     /* ZMTP PING interval, 0 = no heartbeats */
    int heartbeat_timeout_ms; /* a connection with no traffic this long after a PING is dead */
    int heartbeat_ttl_ms;     /* asks the peer to drop us after this long, 0 .. 6553500 */
    int reconnect_ivl_ms;     /* frontend: first reconnect delay, >= 1 */
    int reconnect_ivl_max_ms; /* frontend: backoff cap, >= reconnect_ivl_ms */
    const void *routing_id;   /* frontend: its routing id, or NULL to let the engine pick */
    size_t n_routing_id;      /* 1 .. MQ_PEER_MAX, first byte not 0 (libzmq reserves it) */
};

/* mq_context_new: a libzmq context (one per process). *out is freed with mq_context_free.
 * Returns 0, ERR_NOMEM or ERR_IO (libzmq could not start its I/O thread). */
int mq_context_new(struct mq_context **out);

/* mq_context_free: terminates the context; every engine and frontend on it must be closed
 * first (each waits at most its linger). NULL is a no-op. */
void mq_context_free(struct mq_context *c);

/* mq_opts_init: o = the defaults above, on ctx, for addr (MQ_DEFAULT_ADDR when NULL). */
void mq_opts_init(struct mq_opts *o, struct mq_context *ctx, const char *addr);

/* mq_peer_equal: whether a and b are the same routing id. */
bool mq_peer_equal(const struct mq_peer *a, const struct mq_peer *b);

/* ---- engine: one ROUTER, bound ---- */

/*
 * mq_engine_open: a ROUTER socket bound to o->addr with o's options (routing_id and the
 * reconnect fields are ignored), ZMQ_ROUTER_MANDATORY, ZMQ_ROUTER_HANDOVER (a frontend that
 * reconnects with its own routing id takes its old slot over) and IPv4 only. *out is closed
 * with mq_engine_close. Returns 0, ERR_INVAL (bad options or address), ERR_RANGE (an option
 * out of range), ERR_UNSUPPORTED (a transport other than ipc or tcp), ERR_NOMEM or ERR_IO
 * (the bind failed: address in use, directory missing); err receives a description.
 */
int mq_engine_open(const struct mq_opts *o, struct mq_engine **out, char *err, size_t errlen);

/* mq_engine_close: closes the socket (waiting at most its linger) and frees e. NULL is a
 * no-op. */
void mq_engine_close(struct mq_engine *e);

/*
 * mq_engine_recv: one message from a frontend: its routing id into *from and its bytes into
 * body (reset first). Waits up to timeout_ms (0: do not wait, < 0: forever). Messages of
 * another shape than routing id + one body frame are dropped silently. Returns 1 (a
 * message), 0 (none in time, or interrupted by a signal), ERR_LIMIT (the body passes
 * body->limit: the message is dropped, *from says whose it was), ERR_NOMEM or ERR_STATE
 * (the context is being terminated).
 */
int mq_engine_recv(struct mq_engine *e, struct mq_peer *from, struct buf *body, int timeout_ms);

/*
 * mq_engine_send: queues p[0..n) for the frontend `to`, never blocking. Returns 0,
 * ERR_LIMIT (its queue is full: keep the bytes and retry later), ERR_NOTFOUND (no such
 * frontend connected: it went away), ERR_INVAL (to has no id), ERR_RANGE (n > INT_MAX),
 * ERR_STATE (context terminated) or ERR_IO.
 */
int mq_engine_send(struct mq_engine *e, const struct mq_peer *to, const void *p, size_t n);

/* mq_engine_wait: waits up to timeout_ms (< 0: forever) for a message to be ready. Returns
 * 1 (ready), 0 (timeout or signal), ERR_STATE or ERR_IO. */
int mq_engine_wait(struct mq_engine *e, int timeout_ms);

/* mq_engine_readable: 1 when a message can be received now, 0 when not (ZMQ_EVENTS), or
 * ERR_STATE / ERR_IO. Use after ZMQ_FD fired (see the top of this file). */
int mq_engine_readable(struct mq_engine *e);

/* mq_engine_fd: the socket's ZMQ_FD (edge-triggered; see the top of this file) into *fd.
 * Owned by libzmq: never read, write or close it. Returns 0 or ERR_IO. */
int mq_engine_fd(struct mq_engine *e, int *fd);

/* mq_engine_endpoint: the address actually bound (with the port a "*" picked), as a C
 * string into s[0..n). Returns 0, ERR_LIMIT (n too small) or ERR_IO. */
int mq_engine_endpoint(struct mq_engine *e, char *s, size_t n);

/* mq_engine_sockopt: zmq_getsockopt on the socket, for tests and diagnostics. Returns 0 or
 * ERR_INVAL (unknown option or *len too small). */
int mq_engine_sockopt(struct mq_engine *e, int option, void *val, size_t *len);

/* ---- frontend: one DEALER, connected to one engine ---- */

/*
 * mq_frontend_open: a DEALER socket connected to the engine at o->addr with o's options and
 * ZMQ_IMMEDIATE (nothing is queued until the connection is up). Connecting is asynchronous
 * and retried with backoff; open does not wait for it. *out is closed with
 * mq_frontend_close. Returns 0, ERR_INVAL, ERR_RANGE, ERR_UNSUPPORTED, ERR_NOMEM or ERR_IO;
 * err receives a description.
 */
int mq_frontend_open(const struct mq_opts *o, struct mq_frontend **out, char *err, size_t errlen);

/* mq_frontend_close: closes the socket (waiting at most its linger) and frees f. NULL is a
 * no-op. */
void mq_frontend_close(struct mq_frontend *f);

/*
 * mq_frontend_send: queues p[0..n) for the engine, never blocking. Returns 0, ERR_LIMIT
 * (not connected yet or the queue is full: keep the bytes and retry later), ERR_RANGE
 * (n > INT_MAX), ERR_STATE or ERR_IO.
 */
int mq_frontend_send(struct mq_frontend *f, const void *p, size_t n);

/* mq_frontend_recv: one message from the engine into body (reset first), waiting up to
 * timeout_ms (0: not at all, < 0: forever). Multi-frame messages are dropped. Returns 1,
 * 0, ERR_LIMIT (body->limit passed; the message is dropped), ERR_NOMEM or ERR_STATE. */
int mq_frontend_recv(struct mq_frontend *f, struct buf *body, int timeout_ms);

/* mq_frontend_readable: as mq_engine_readable. */
int mq_frontend_readable(struct mq_frontend *f);

/* mq_frontend_fd: as mq_engine_fd, for a libevent loop (EV_READ | EV_PERSIST, then drain
 * with mq_frontend_recv(f, body, 0) until it returns 0). Returns 0 or ERR_IO. */
int mq_frontend_fd(struct mq_frontend *f, int *fd);

/* mq_frontend_sockopt: as mq_engine_sockopt. */
int mq_frontend_sockopt(struct mq_frontend *f, int option, void *val, size_t *len);

#endif
