/* serve_internal: what the benchmark's run loop, request and report files share. */
#ifndef KILN_BENCH_SERVE_INTERNAL_H
#define KILN_BENCH_SERVE_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "bench/http_client.h"
#include "bench/metrics.h"
#include "bench/serve.h"
#include "bench/sse.h"
#include "common/buf.h"

struct event_base;
struct event;
struct tokenizer;
struct tok_enc;

/* the URL the requests go to */
struct bench_target {
    char host[256];
    int port;
    bool tls;
    char path[512]; /* prefix + endpoint */
    char prefix[256];
    bool chat;      /* the endpoint is chat/completions */
};

/* one request in flight */
struct breq {
    struct bench_runner *run;
    void *ctx;                /* the phase it belongs to */
    struct bench_result *res; /* where its outcome goes */
    const struct bench_sample *sample;
    struct sse sse;
    struct buf text;       /* generated text */
    struct buf err_body;   /* the body of a non-200 response, bounded */
    int status;
    bool first;            /* an event with choices arrived */
    bool stopped;          /* the stream failed to parse; the rest is ignored */
    double st, most_recent;
    double most_recent_read; /* time of the read being parsed */
    char *parse_error;     /* an event that is not JSON */
    void (*done)(struct breq *q); /* the phase's completion hook */
};

struct bench_runner {
    const struct bench_serve_opts *o;
    struct bench_target tgt;
    struct event_base *base;
    struct hc_client *hc;
    const char *model;
    char *model_owned;            /* the name found at /v1/models */
    struct tokenizer *tok;
    struct tok_enc *enc;
    struct bench_dataset ds;
    json_t *extra_body;
    char *auth_header;            /* "Authorization: Bearer $OPENAI_API_KEY\r\n" or NULL */
    /* the timed run */
    struct bench_result *results; /* one per sample */
    double *delays;               /* arrival offsets, seconds */
    double duration;              /* first send to last completion */
};

/* bench_target_parse: base URL + endpoint into *t. 0 or ERR_INVAL with a message in err. */
int bench_target_parse(const char *base_url, const char *endpoint, struct bench_target *t,
                       char *err, size_t errlen);

/* breq_start: builds the request body for q->sample and sends it; res is cleared and its
 * start_time set. On a send error the request ends at once through q->done. 0 or ERR_*. */
int breq_start(struct breq *q);

/* breq_body: the JSON body for a sample (vLLM's payload for the endpoint). NULL: no memory. */
char *breq_body(const struct bench_runner *run, const struct bench_sample *s);

/* bench_report_print: vLLM's result block. */
void bench_report_print(const struct bench_runner *run, const struct bench_metrics *m,
                        FILE *out);

/* bench_report_write: vLLM's JSON result file. 0 or ERR_IO / ERR_NOMEM. */
int bench_report_write(const struct bench_runner *run, const struct bench_metrics *m,
                       const char *path);

#endif
