/*
 * http_tls: TLS for the HTTP server's connections, OpenSSL over memory BIOs. The socket's
 * bufferevent carries ciphertext; each TLS connection has its own plaintext buffers
 * (c->in, c->out) that http1.c and http2.c read and write as they would a cleartext
 * bufferevent's. Ciphertext moves through OpenSSL only from http_server.c's connection
 * callbacks, so no OpenSSL call ever runs inside a handler's call, and the connection's
 * timers, limits and closing rules stay where they are. The contract is in
 * http_internal.h.
 */
#include "frontend/http_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

/* OpenSSL's <openssl/types.h> has a type named ERR_STATE, as common/err.h has a code: the
 * code takes another name here (this file does not use it). */
#define ERR_STATE KILN_ERR_STATE_
#include "common/err.h"
#undef ERR_STATE
#include "common/log.h"

#define TLS_RECORD 16384          /* plaintext per record (TLS's maximum) */
#define TLS_OUT_HIGH (64u * 1024) /* ciphertext queued on the socket before we stop */
#define TLS_OUT_LOW (16u * 1024)  /* the socket drained to this: encrypt more */
#define TLS_GOT 2                 /* tls_read_one: plaintext read */

struct http_tls_ctx {
    SSL_CTX *ssl_ctx;
};

struct http_tls {
    SSL *ssl;
    BIO *rbio, *wbio; /* ciphertext in (fed from the socket) and out (owned by ssl) */
    bool pending;     /* decrypting stopped because c->in was full */
    bool failed;      /* a TLS error: nothing more goes through ssl */
    bool notified;    /* close_notify queued */
};

/* ALPN: h2 first, then http/1.1 (wire format: length-prefixed names) */
static const unsigned char tls_alpn[] = "\x02h2\x08http/1.1";

/* ---- the server's context ---- */

static int tls_on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    unsigned char *sel = NULL;
    (void)ssl;
    (void)arg;
    if (SSL_select_next_proto(&sel, outlen, tls_alpn, sizeof tls_alpn - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK; /* no protocol in common: HTTP/1.1 without ALPN */
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* tls_why: OpenSSL's reason for the last failure (its first error, the root cause), and an
 * empty error queue. */
static const char *tls_why(char *buf, size_t n)
{
    unsigned long e = ERR_peek_error();
    if (e)
        ERR_error_string_n(e, buf, n);
    else
        snprintf(buf, n, "unknown error");
    ERR_clear_error();
    return buf;
}

/* tls_readable: whether path opens for reading (else err says why, naming what). */
static bool tls_readable(const char *what, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
        return false;
    }
    fclose(f);
    return true;
}

/* tls_load: the certificate chain and key into ctx. Returns 0 or ERR_INVAL (err says which
 * file and why). */
static int tls_load(SSL_CTX *ctx, const char *certfile, const char *keyfile, char *err,
                    size_t errlen)
{
    char why[256];
    if (!tls_readable("ssl certfile", certfile, err, errlen) ||
        !tls_readable("ssl keyfile", keyfile, err, errlen))
        return ERR_INVAL;
    if (SSL_CTX_use_certificate_chain_file(ctx, certfile) != 1) {
        snprintf(err, errlen, "ssl certfile %s: cannot load a PEM certificate chain (%s)", certfile,
                 tls_why(why, sizeof why));
        return ERR_INVAL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, keyfile, SSL_FILETYPE_PEM) != 1) {
        snprintf(err, errlen, "ssl keyfile %s: cannot load a PEM private key for %s (%s)", keyfile,
                 certfile, tls_why(why, sizeof why));
        return ERR_INVAL;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "ssl keyfile %s does not match certfile %s (%s)", keyfile, certfile,
                 tls_why(why, sizeof why));
        return ERR_INVAL;
    }
    return 0;
}

int http_tls_ctx_new(const char *certfile, const char *keyfile, struct http_tls_ctx **out,
                     char *err, size_t errlen)
{
    int rv = ERR_NOMEM;
    struct http_tls_ctx *x = calloc(1, sizeof *x);
    if (!x)
        goto fail_alloc;
    ERR_clear_error();
    x->ssl_ctx = SSL_CTX_new(TLS_server_method());
    if (!x->ssl_ctx)
        goto fail_ctx;
    SSL_CTX_set_min_proto_version(x->ssl_ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(x->ssl_ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                        SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(x->ssl_ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_alpn_select_cb(x->ssl_ctx, tls_on_alpn, NULL);
    if ((rv = tls_load(x->ssl_ctx, certfile, keyfile, err, errlen)) != 0)
        goto fail_load;
    *out = x;
    return 0;

fail_load:
    SSL_CTX_free(x->ssl_ctx);
fail_ctx:
    free(x);
fail_alloc:
    ERR_clear_error();
    if (rv == ERR_NOMEM)
        snprintf(err, errlen, "out of memory");
    return rv;
}

void http_tls_ctx_free(struct http_tls_ctx *x)
{
    if (!x)
        return;
    SSL_CTX_free(x->ssl_ctx);
    free(x);
}

/* ---- a connection ---- */

/* tls_on_out: plaintext was queued (perhaps by a handler's call): the connection's
 * deferred work encrypts it. */
static void tls_on_out(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
    (void)b;
    if (info->n_added)
        http_conn_kick(arg);
}

int http_tls_conn_init(struct http_conn *c, struct http_tls_ctx *x)
{
    struct http_tls *t = calloc(1, sizeof *t);
    if (!t)
        return ERR_NOMEM;
    t->ssl = SSL_new(x->ssl_ctx);
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    c->in = evbuffer_new();
    c->out = evbuffer_new();
    if (!t->ssl || !t->rbio || !t->wbio || !c->in || !c->out ||
        !evbuffer_add_cb(c->out, tls_on_out, c))
        goto fail;
    SSL_set_bio(t->ssl, t->rbio, t->wbio); /* ssl owns both now */
    SSL_set_accept_state(t->ssl);
    bufferevent_setwatermark(c->bev, EV_WRITE, TLS_OUT_LOW, 0);
    c->tls = t;
    return 0;

fail:
    if (t->ssl)
        SSL_free(t->ssl);
    BIO_free(t->rbio);
    BIO_free(t->wbio);
    free(t);
    http_tls_conn_deinit(c);
    ERR_clear_error();
    return ERR_NOMEM;
}

void http_tls_conn_deinit(struct http_conn *c)
{
    if (c->tls) {
        SSL_free(c->tls->ssl);
        free(c->tls);
        c->tls = NULL;
    }
    if (c->in)
        evbuffer_free(c->in);
    if (c->out)
        evbuffer_free(c->out);
    c->in = c->out = NULL;
}

/* tls_send: what OpenSSL wrote (records, alerts, tickets) to the socket's output. */
static int tls_send(struct http_conn *c)
{
    struct evbuffer *dst = bufferevent_get_output(c->bev);
    size_t n;
    while ((n = BIO_ctrl_pending(c->tls->wbio)) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_reserve_space(dst, (ev_ssize_t)n, &v, 1) < 1)
            return ERR_NOMEM;
        int k = BIO_read(c->tls->wbio, v.iov_base, (int)(v.iov_len < n ? v.iov_len : n));
        if (k <= 0)
            return ERR_NOMEM;
        v.iov_len = (size_t)k;
        evbuffer_commit_space(dst, &v, 1);
    }
    return 0;
}

/* tls_feed: up to a record's worth of the socket's input into OpenSSL. Returns the bytes
 * moved (0: none waiting) or ERR_NOMEM. */
static int tls_feed(struct http_conn *c)
{
    struct evbuffer *src = bufferevent_get_input(c->bev);
    struct evbuffer_iovec v;
    if (evbuffer_peek(src, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
        return 0;
    size_t n = v.iov_len < TLS_RECORD ? v.iov_len : TLS_RECORD;
    int k = BIO_write(c->tls->rbio, v.iov_base, (int)n);
    if (k <= 0)
        return ERR_NOMEM;
    evbuffer_drain(src, (size_t)k);
    return k;
}

/* tls_error: logs a TLS failure (debug: clients cause them) and empties the error queue. */
static int tls_error(struct http_conn *c, int ssl_err)
{
    char why[256];
    c->tls->failed = true;
    log_debug("conn %llu: TLS: %s", (unsigned long long)c->id,
              ssl_err == SSL_ERROR_SSL ? tls_why(why, sizeof why) : "I/O error");
    ERR_clear_error();
    return ERR_PARSE;
}

/* tls_read_one: one SSL_read into c->in. Returns TLS_GOT (plaintext read), 0 (OpenSSL needs
 * more input), HTTP_TLS_CLOSED, or an ERR_*. */
static int tls_read_one(struct http_conn *c)
{
    struct evbuffer_iovec v;
    if (evbuffer_reserve_space(c->in, TLS_RECORD, &v, 1) < 1)
        return ERR_NOMEM;
    ERR_clear_error();
    int n =
        SSL_read(c->tls->ssl, v.iov_base, (int)(v.iov_len < TLS_RECORD ? v.iov_len : TLS_RECORD));
    if (n > 0) {
        v.iov_len = (size_t)n;
        evbuffer_commit_space(c->in, &v, 1);
        return TLS_GOT;
    }
    evbuffer_commit_space(c->in, &v, 0);
    int e = SSL_get_error(c->tls->ssl, n);
    if (e == SSL_ERROR_WANT_READ)
        return 0;
    if (e == SSL_ERROR_ZERO_RETURN)
        return HTTP_TLS_CLOSED;
    return tls_error(c, e);
}

int http_tls_read(struct http_conn *c)
{
    struct http_tls *t = c->tls;
    int rv = 0;
    t->pending = false;
    while (!t->failed) {
        if (evbuffer_get_length(c->in) >= HTTP_READ_HIGH_WATER) {
            t->pending = true; /* the rest waits in the socket's input */
            rv = 0;
            break;
        }
        rv = tls_read_one(c);
        if (rv == TLS_GOT)
            continue;
        if (rv == 0 && (rv = tls_feed(c)) > 0)
            continue;
        break; /* 0: all input consumed; HTTP_TLS_CLOSED; an error */
    }
    int sv = tls_send(c); /* handshake records, tickets, alerts */
    return rv != 0 ? rv : sv;
}

bool http_tls_ready(const struct http_conn *c)
{
    return c->tls && !c->tls->failed && SSL_is_init_finished(c->tls->ssl);
}

bool http_tls_h2(const struct http_conn *c)
{
    const unsigned char *p = NULL;
    unsigned int n = 0;
    SSL_get0_alpn_selected(c->tls->ssl, &p, &n);
    return n == 2 && memcmp(p, "h2", 2) == 0;
}

bool http_tls_pending(const struct http_conn *c)
{
    return c->tls && c->tls->pending;
}

/* tls_write: encrypts c->out while the socket's output is below TLS_OUT_HIGH. */
static int tls_write(struct http_conn *c)
{
    struct evbuffer *dst = bufferevent_get_output(c->bev);
    size_t n;
    while ((n = evbuffer_get_length(c->out)) > 0 && evbuffer_get_length(dst) < TLS_OUT_HIGH) {
        if (n > TLS_RECORD)
            n = TLS_RECORD;
        const unsigned char *p = evbuffer_pullup(c->out, (ev_ssize_t)n);
        if (!p)
            return ERR_NOMEM;
        ERR_clear_error();
        int k = SSL_write(c->tls->ssl, p, (int)n);
        if (k <= 0)
            return tls_error(c, SSL_get_error(c->tls->ssl, k));
        evbuffer_drain(c->out, (size_t)k);
        if (tls_send(c) != 0)
            return ERR_NOMEM;
    }
    return 0;
}

void http_tls_settle(struct http_conn *c)
{
    struct http_tls *t = c->tls;
    if (t->failed || !SSL_is_init_finished(t->ssl)) {
        evbuffer_drain(c->out, evbuffer_get_length(c->out)); /* nothing can go out */
        return;
    }
    if (tls_write(c) != 0) {
        c->want_close = true;
        return;
    }
    if (c->closing && !c->shut && !t->notified && evbuffer_get_length(c->out) == 0) {
        t->notified = true;
        ERR_clear_error();
        SSL_shutdown(t->ssl); /* queues close_notify; the client's answer is not awaited */
        ERR_clear_error();
        if (tls_send(c) != 0)
            c->want_close = true;
    }
    if (t->pending && !c->closing && evbuffer_get_length(c->in) < HTTP_READ_HIGH_WATER)
        http_conn_kick(c);
}
