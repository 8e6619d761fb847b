/*
 * tool_http_get: bench/http_client from the command line, for test_http_client_py.py.
 *
 *   tool_http_get [--http2] [--tls] [--count N] [--max-connections N] [--timeout S]
 *                 [--max-bytes N] [--times FILE] [--bodies DIR] [--method M]
 *                 HOST PORT PATH [BODYFILE]
 *
 * Sends N copies of the request at once (POST with BODYFILE as application/json when
 * given). With N == 1 stdout is the status on one line, then the body; with N > 1 one line
 * per request as it ends: "done <i> <err> <status> <bytes>", bodies under DIR/<i>. --times
 * writes one line per body piece: "<i> <t> <n>", t being the CLOCK_MONOTONIC seconds of the
 * read that delivered it. Failures go to stderr as "error <i>: <ERR_NAME> <message>".
 * After the last request the loop runs 50 ms more, so that frames the last callbacks queued
 * (an RST_STREAM) reach the server. Exits 0 when every request succeeded, 1 when one
 * failed, 2 on bad usage.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "bench/http_client.h"
#include "common/err.h"

struct req {
    int i, status, err;
    size_t n;
    FILE *body;
};

static struct event_base *base;
static FILE *times;
static int n_left, n_failed, count = 1;

static void on_headers(void *ud, int status)
{
    struct req *r = ud;
    r->status = status;
    if (count == 1) {
        printf("%d\n", status);
        fflush(stdout);
    }
}

static void on_body(void *ud, const char *p, size_t n, double t)
{
    struct req *r = ud;
    r->n += n;
    if (r->body)
        fwrite(p, 1, n, r->body);
    if (times)
        fprintf(times, "%d %.9f %zu\n", r->i, t, n);
}

static void on_done(void *ud, int err, const char *msg)
{
    struct req *r = ud;
    r->err = err;
    if (err) {
        n_failed++;
        fprintf(stderr, "error %d: %s %s\n", r->i, err_name(err), msg);
    }
    if (count > 1)
        printf("done %d %d %d %zu\n", r->i, err, r->status, r->n);
    if (r->body && r->body != stdout)
        fclose(r->body);
    r->body = NULL;
    if (--n_left == 0)
        event_base_loopbreak(base);
}

static char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    char *p = NULL;
    long len;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (p = malloc((size_t)len + 1)) && fread(p, 1, (size_t)len, f) == (size_t)len) {
        *n = (size_t)len;
    } else {
        free(p);
        p = NULL;
    }
    fclose(f);
    return p;
}

static int usage(void)
{
    fprintf(stderr, "usage: tool_http_get [--http2] [--tls] [--count N] [--max-connections N] "
                    "[--timeout S] [--max-bytes N] [--times FILE] [--bodies DIR] [--method M] "
                    "HOST PORT PATH [BODYFILE]\n");
    return 2;
}

int main(int argc, char **argv)
{
    struct hc_config cfg = {0};
    const char *times_path = NULL, *bodies = NULL, *method = NULL, *pos[4];
    int n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--http2"))
            cfg.http2 = true;
        else if (!strcmp(a, "--tls"))
            cfg.tls = true;
        else if (!strcmp(a, "--count") && v && ++i)
            count = atoi(v);
        else if (!strcmp(a, "--max-connections") && v && ++i)
            cfg.max_connections = atoi(v);
        else if (!strcmp(a, "--timeout") && v && ++i)
            cfg.timeout_s = atof(v);
        else if (!strcmp(a, "--max-bytes") && v && ++i)
            cfg.max_response_bytes = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--times") && v && ++i)
            times_path = v;
        else if (!strcmp(a, "--bodies") && v && ++i)
            bodies = v;
        else if (!strcmp(a, "--method") && v && ++i)
            method = v;
        else if (a[0] == '-' || n_pos == 4)
            return usage();
        else
            pos[n_pos++] = a;
    }
    if (n_pos < 3 || count < 1)
        return usage();
    cfg.host = pos[0];
    cfg.port = atoi(pos[1]);
    size_t body_n = 0;
    char *body = NULL;
    if (n_pos == 4 && !(body = read_file(pos[3], &body_n))) {
        fprintf(stderr, "cannot read %s\n", pos[3]);
        return 2;
    }
    if (!method)
        method = body ? "POST" : "GET";
    if (times_path && !(times = fopen(times_path, "w"))) {
        fprintf(stderr, "cannot write %s\n", times_path);
        return 2;
    }
    struct hc_client *c;
    base = event_base_new();
    int rv = base ? hc_client_new(base, &cfg, &c) : ERR_NOMEM;
    if (rv) {
        fprintf(stderr, "hc_client_new: %s\n", err_name(rv));
        return 2;
    }
    struct req *r = calloc((size_t)count, sizeof *r);
    const struct hc_callbacks cb = {on_headers, on_body, on_done};
    for (int i = 0; i < count && r; i++) {
        char path[4096];
        r[i].i = i;
        if (count == 1) {
            r[i].body = stdout;
        } else if (bodies) {
            snprintf(path, sizeof path, "%s/%d", bodies, i);
            r[i].body = fopen(path, "wb");
        }
        rv = hc_request(c, method, pos[2], body ? "application/json" : NULL, body, body_n,
                        "Accept: text/event-stream\r\n", &cb, &r[i]);
        if (rv) {
            fprintf(stderr, "hc_request: %s\n", err_name(rv));
            return 2;
        }
        n_left++;
    }
    event_base_dispatch(base);
    struct timeval linger = {0, 50000}; /* what the last callbacks queued (RST_STREAM) goes out */
    event_base_loopexit(base, &linger);
    event_base_dispatch(base);
    hc_client_free(c);
    event_base_free(base);
    if (times)
        fclose(times);
    free(r);
    free(body);
    fflush(stdout);
    return n_failed ? 1 : 0;
}
