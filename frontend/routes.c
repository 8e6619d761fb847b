/*
 * routes: HTTP dispatch of the frontend (../shared/API.md "Endpoints"): authentication of
 * /v1 paths, Content-Type checks, CORS, X-Request-Id, and the small endpoints (/health,
 * /version, /v1/models). Completions and chat go to generate.c.
 */
#include <stdio.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "frontend/frontend_internal.h"
#include "frontend/oai_error.h"
#include "frontend/oai_response.h"

#define KILN_VERSION "0.1.0"
#define MAX_REQUEST_ID 128

/* request_id_ok: a client X-Request-Id we echo: 1..128 of [A-Za-z0-9._:-]. */
static bool request_id_ok(const char *s, size_t n)
{
    if (n == 0 || n > MAX_REQUEST_ID)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-'))
            return false;
    }
    return true;
}

/* origin_allowed: the Origin header of r, when --allowed-origins lets it in. */
static const char *origin_allowed(const struct fe *fe, const struct http_request *r, size_t *n)
{
    const char *list = fe->cfg.allowed_origins, *o = http_request_header(r, "origin", n);
    if (!list || !o)
        return NULL;
    if (strcmp(list, "*") == 0) {
        *n = 1;
        return "*";
    }
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == *n && memcmp(p, o, len) == 0)
            return o;
        p += len + (end != NULL);
    }
    return NULL;
}

size_t routes_headers(struct fe *fe, const struct http_request *r, const char *content_type,
                      struct http_header *h)
{
    size_t k = 0, n;
    if (content_type)
        h[k++] = (struct http_header){"content-type", 12, content_type, strlen(content_type)};
    const char *id = http_request_header(r, "x-request-id", &n);
    if (id && request_id_ok(id, n))
        h[k++] = (struct http_header){"x-request-id", 12, id, n};
    const char *origin = origin_allowed(fe, r, &n);
    if (origin) {
        h[k++] = (struct http_header){"access-control-allow-origin", 27, origin, n};
        h[k++] = (struct http_header){"vary", 4, "Origin", 6};
    }
    return k;
}

void routes_respond_json(struct fe *fe, struct http_request *r, int status, const char *body,
                         size_t len)
{
    struct http_header h[8];
    size_t n = routes_headers(fe, r, "application/json", h);
    metrics_http(&fe->metrics, r->path, r->method, status);
    http_respond(r, status, h, n, body, len);
}

void routes_respond_error(struct fe *fe, struct http_request *r, const struct oai_error *e)
{
    char body[1200];
    size_t len = oai_error_json(e, body, sizeof body);
    struct http_header h[10];
    size_t n = routes_headers(fe, r, "application/json", h);
    if (e->status == 429 || e->status == 503)
        h[n++] = (struct http_header){"retry-after", 11, "1", 1};
    metrics_http(&fe->metrics, r->path, r->method, e->status);
    http_respond(r, e->status, h, n, body, len);
}

static void respond_status(struct fe *fe, struct http_request *r, int status, const char *param,
                           const char *msg)
{
    struct oai_error e;
    oai_error_set(&e, status, param, "%s", msg);
    routes_respond_error(fe, r, &e);
}

/* authorized: Bearer token check (constant time per key) for /v1 paths. */
static bool authorized(const struct fe *fe, const struct http_request *r)
{
    if (fe->cfg.n_api_keys == 0 || strncmp(r->path, "/v1/", 4) != 0)
        return true;
    size_t n;
    const char *v = http_request_header(r, "authorization", &n);
    if (!v || n < 7 || strncasecmp(v, "Bearer ", 7) != 0)
        return false;
    v += 7, n -= 7;
    bool ok = false;
    for (size_t k = 0; k < fe->cfg.n_api_keys; k++) {
        const char *key = fe->cfg.api_keys[k];
        size_t kn = strlen(key);
        unsigned diff = (unsigned)(kn ^ n);
        for (size_t i = 0; i < n; i++)
            diff |= (unsigned char)v[i] ^ (unsigned char)key[i < kn ? i : 0];
        ok |= diff == 0 && kn > 0;
    }
    return ok;
}

/* json_body: whether r declares a JSON body (application/json, any parameters). */
static bool json_body(const struct http_request *r)
{
    size_t n;
    const char *ct = http_request_header(r, "content-type", &n);
    return ct && n >= 16 && strncasecmp(ct, "application/json", 16) == 0 &&
           (n == 16 || ct[16] == ';' || ct[16] == ' ');
}

static void health(struct fe *fe, struct http_request *r)
{
    struct http_header h[8];
    size_t n = routes_headers(fe, r, NULL, h);
    if (!fe->draining && engine_link_ready(fe->link)) {
        metrics_http(&fe->metrics, r->path, r->method, 200);
        http_respond(r, 200, h, n, "", 0);
    }
    else {
        respond_status(fe, r, 503, NULL,
                       fe->draining ? "the server is shutting down" : "no engine is ready");
    }
}

static void metrics_page(struct fe *fe, struct http_request *r)
{
    struct buf b;
    buf_init(&b, (size_t)16 << 20);
    struct http_header h[8];
    size_t n = routes_headers(fe, r, "text/plain; version=0.0.4; charset=utf-8", h);
    metrics_http(&fe->metrics, r->path, r->method, 200);
    if (metrics_render(&fe->metrics, &b))
        respond_status(fe, r, 500, NULL, "cannot render the metrics");
    else
        http_respond(r, 200, h, n, b.p, b.n);
    buf_deinit(&b);
}

static void models(struct fe *fe, struct http_request *r)
{
    struct buf b;
    buf_init(&b, 1 << 20);
    const struct engine_info *i = engine_link_limits(fe->link);
    int rc = oai_write_models(&b, fe->cfg.names, fe->cfg.n_names, (int64_t)fe->started_s,
                              i ? i->max_model_len : 0, fe->cfg.model_dir);
    if (rc)
        respond_status(fe, r, 500, NULL, "out of memory");
    else
        routes_respond_json(fe, r, 200, b.p, b.n);
    buf_deinit(&b);
}

/* dispatch_post: the POST endpoints with JSON bodies. Returns false for an unknown path. */
static bool dispatch_post(struct fe *fe, struct http_request *r)
{
    const char *p = r->path;
    bool gen = strcmp(p, "/v1/completions") == 0 || strcmp(p, "/v1/chat/completions") == 0;
    if (!gen && strcmp(p, "/tokenize") != 0 && strcmp(p, "/detokenize") != 0)
        return false;
    if (!json_body(r)) {
        respond_status(fe, r, 415, NULL, "Content-Type must be application/json");
        return true;
    }
    if (strcmp(p, "/v1/completions") == 0)
        gen_start(fe, r, OAI_COMPLETION);
    else if (strcmp(p, "/v1/chat/completions") == 0)
        gen_start(fe, r, OAI_CHAT);
    else if (strcmp(p, "/tokenize") == 0)
        gen_tokenize(fe, r);
    else
        gen_detokenize(fe, r);
    return true;
}

static bool known_path(const char *p)
{
    static const char *const paths[] = {"/health",         "/version",         "/metrics",
                                        "/v1/models",      "/v1/completions",  "/tokenize",
                                        "/v1/chat/completions", "/detokenize"};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++)
        if (strcmp(p, paths[i]) == 0)
            return true;
    return false;
}

/* preflight: a CORS OPTIONS request. */
static void preflight(struct fe *fe, struct http_request *r)
{
    struct http_header h[12];
    size_t n = routes_headers(fe, r, NULL, h);
    h[n++] = (struct http_header){"access-control-allow-methods", 28, "GET, POST, OPTIONS", 18};
    h[n++] = (struct http_header){"access-control-allow-headers", 28,
                                  "Authorization, Content-Type, X-Request-Id", 41};
    metrics_http(&fe->metrics, r->path, r->method, 204);
    http_respond(r, 204, h, n, "", 0);
}

void routes_on_request(struct http_request *r, void *ctx)
{
    struct fe *fe = ctx;
    bool get = strcmp(r->method, "GET") == 0, post = strcmp(r->method, "POST") == 0;
    if (strcmp(r->method, "OPTIONS") == 0 && fe->cfg.allowed_origins) {
        preflight(fe, r);
        return;
    }
    if (!authorized(fe, r)) {
        respond_status(fe, r, 401, NULL, "Invalid or missing API key");
        return;
    }
    if (get && strcmp(r->path, "/health") == 0) {
        health(fe, r);
        return;
    }
    if (get && strcmp(r->path, "/version") == 0) {
        static const char v[] = "{\"version\":\"" KILN_VERSION "\"}";
        routes_respond_json(fe, r, 200, v, sizeof v - 1);
        return;
    }
    if (get && strcmp(r->path, "/metrics") == 0) {
        metrics_page(fe, r);
        return;
    }
    if (get && strcmp(r->path, "/v1/models") == 0) {
        models(fe, r);
        return;
    }
    if (post && dispatch_post(fe, r))
        return;
    if (known_path(r->path)) {
        respond_status(fe, r, 405, NULL, "Method Not Allowed");
        return;
    }
    char msg[128];
    snprintf(msg, sizeof msg, "Not Found: %.80s", r->path);
    respond_status(fe, r, 404, NULL, msg);
}

void routes_on_abort(struct http_request *r, void *ctx)
{
    if (r->user)
        gen_abort(ctx, r);
}
