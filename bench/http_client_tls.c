/*
 * http_client_tls: the benchmark client's TLS, libevent's OpenSSL bufferevent over the
 * connecting socket. ALPN offers exactly the protocol the client speaks (h2 or http/1.1).
 * A load generator talks to servers with self-signed certificates: the certificate is not
 * verified. The contract is in http_client_internal.h.
 */
#include "bench/http_client_internal.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

/* OpenSSL's <openssl/types.h> has a type named ERR_STATE, as common/err.h has a code: the
 * code takes another name here (this file does not use it). */
#define ERR_STATE KILN_ERR_STATE_
#include "common/err.h"
#undef ERR_STATE

static const unsigned char hc_tls_alpn_h2_proto[] = "\x02h2";
static const unsigned char hc_tls_alpn_h1_proto[] = "\x08http/1.1";

int hc_tls_ctx_new(bool http2, void **out)
{
    SSL_CTX *x = SSL_CTX_new(TLS_client_method());
    if (!x) {
        ERR_clear_error();
        return ERR_NOMEM;
    }
    SSL_CTX_set_min_proto_version(x, TLS1_2_VERSION);
    SSL_CTX_set_verify(x, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_mode(x, SSL_MODE_RELEASE_BUFFERS);
    const unsigned char *p = http2 ? hc_tls_alpn_h2_proto : hc_tls_alpn_h1_proto;
    unsigned n = http2 ? sizeof hc_tls_alpn_h2_proto - 1 : sizeof hc_tls_alpn_h1_proto - 1;
    if (SSL_CTX_set_alpn_protos(x, p, n) != 0) { /* 0 is success here */
        SSL_CTX_free(x);
        ERR_clear_error();
        return ERR_NOMEM;
    }
    *out = x;
    return 0;
}

void hc_tls_ctx_free(void *ctx)
{
    SSL_CTX_free(ctx);
}

/* hc_tls_is_address: whether host is an IPv4 or IPv6 literal (no SNI for those). */
static bool hc_tls_is_address(const char *host)
{
    unsigned char a[16];
    return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

struct bufferevent *hc_tls_bev_new(struct event_base *base, void *ctx, int fd, const char *host)
{
    SSL *ssl = SSL_new(ctx);
    BIO *bio = BIO_new_socket(fd, BIO_NOCLOSE); /* the bufferevent closes fd */
    struct bufferevent *bev = NULL;
    if (!ssl || !bio)
        goto fail;
    SSL_set_bio(ssl, bio, bio); /* ssl owns bio */
    bio = NULL;
    if (!hc_tls_is_address(host) && SSL_set_tlsext_host_name(ssl, host) != 1)
        goto fail;
    bev = bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_CONNECTING,
                                         BEV_OPT_CLOSE_ON_FREE);
    if (!bev)
        goto fail;
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;

fail:
    if (ssl)
        SSL_free(ssl);
    if (bio)
        BIO_free(bio);
    ERR_clear_error();
    return NULL;
}

bool hc_tls_alpn_h2(struct bufferevent *bev)
{
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    const unsigned char *p = NULL;
    unsigned n = 0;
    if (ssl)
        SSL_get0_alpn_selected(ssl, &p, &n);
    return n == 2 && memcmp(p, "h2", 2) == 0;
}

void hc_tls_why(struct bufferevent *bev, char *msg, size_t n)
{
    unsigned long e = bufferevent_get_openssl_error(bev);
    msg[0] = '\0';
    if (e) {
        char s[200];
        ERR_error_string_n(e, s, sizeof s);
        snprintf(msg, n, "TLS: %s", s);
    }
    ERR_clear_error();
}
