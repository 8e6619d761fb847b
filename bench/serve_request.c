/*
 * serve_request: one benchmark request: vLLM's payload, the streamed events it reads and the
 * timings it records (async_request_openai_completions / _chat_completions).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/serve_internal.h"
#include "common/err.h"
#include "common/tokenizer.h"

#define ERR_BODY_MAX 4096
#define EVENT_MAX (16u << 20)

int bench_target_parse(const char *base_url, const char *endpoint, struct bench_target *t,
                       char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    const char *p = base_url;
    if (strncmp(p, "http://", 7) == 0) {
        p += 7;
        t->port = 80;
    } else if (strncmp(p, "https://", 8) == 0) {
        p += 8;
        t->port = 443;
        t->tls = true;
    } else {
        snprintf(err, errlen, "base URL must start with http:// or https://: %s", base_url);
        return ERR_INVAL;
    }
    const char *host_end;
    const char *h = p;
    if (*p == '[') { /* [v6]:port */
        host_end = strchr(p, ']');
        if (!host_end) {
            snprintf(err, errlen, "unterminated IPv6 address in %s", base_url);
            return ERR_INVAL;
        }
        h = p + 1;
        p = host_end + 1;
    } else {
        p += strcspn(p, ":/");
        host_end = p;
    }
    size_t hn = (size_t)(host_end - h);
    if (hn == 0 || hn >= sizeof t->host) {
        snprintf(err, errlen, "bad host in %s", base_url);
        return ERR_INVAL;
    }
    memcpy(t->host, h, hn);
    if (*p == ':') {
        char *end;
        long port = strtol(p + 1, &end, 10);
        if (end == p + 1 || port < 1 || port > 65535 || (*end && *end != '/')) {
            snprintf(err, errlen, "bad port in %s", base_url);
            return ERR_INVAL;
        }
        t->port = (int)port;
        p = end;
    }
    size_t pn = strlen(p);
    while (pn && p[pn - 1] == '/')
        pn--;
    if (pn >= sizeof t->prefix || (pn && *p != '/')) {
        snprintf(err, errlen, "bad path in %s", base_url);
        return ERR_INVAL;
    }
    memcpy(t->prefix, p, pn);
    if (!endpoint || endpoint[0] != '/') {
        snprintf(err, errlen, "the endpoint must start with '/': %s", endpoint ? endpoint : "");
        return ERR_INVAL;
    }
    if ((size_t)snprintf(t->path, sizeof t->path, "%s%s", t->prefix, endpoint) >=
        sizeof t->path) {
        snprintf(err, errlen, "URL too long");
        return ERR_INVAL;
    }
    size_t en = strlen(endpoint);
    t->chat = en >= 16 && strcmp(endpoint + en - 16, "chat/completions") == 0;
    if (!t->chat && !(en >= 11 && strcmp(endpoint + en - 11, "completions") == 0)) {
        snprintf(err, errlen, "the endpoint must end with completions or chat/completions");
        return ERR_INVAL;
    }
    return 0;
}

char *breq_body(const struct bench_runner *run, const struct bench_sample *s)
{
    const struct bench_serve_opts *o = run->o;
    json_t *b = json_object();
    if (!b)
        return NULL;
    json_object_set_new(b, "model", json_string(run->model));
    if (run->tgt.chat) {
        json_t *part = json_pack("{s:s, s:s%}", "type", "text", "text", s->prompt, s->prompt_n);
        json_t *msg = json_pack("{s:s, s:[o]}", "role", "user", "content", part);
        json_object_set_new(b, "messages", json_pack("[o]", msg));
        json_object_set_new(b, "max_completion_tokens", json_integer(s->output_len));
    } else {
        json_object_set_new(b, "prompt", json_stringn(s->prompt, s->prompt_n));
        json_object_set_new(b, "repetition_penalty", json_real(1.0));
        json_object_set_new(b, "max_tokens", json_integer(s->output_len));
        if (o->logprobs >= 0)
            json_object_set_new(b, "logprobs", json_integer(o->logprobs));
    }
    if (o->temperature >= 0)
        json_object_set_new(b, "temperature", json_real(o->temperature));
    json_object_set_new(b, "stream", json_true());
    json_object_set_new(b, "stream_options", json_pack("{s:b}", "include_usage", 1));
    if (o->ignore_eos)
        json_object_set_new(b, "ignore_eos", json_true());
    if (run->extra_body)
        json_object_update(b, run->extra_body);
    char *text = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    return text;
}

/* set_error: r's error message, a followed by b (the first error wins). */
static void set_error(struct bench_result *r, const char *a, const char *b)
{
    if (r->error)
        return;
    size_t n = strlen(a) + strlen(b) + 1;
    r->error = malloc(n);
    if (r->error)
        snprintf(r->error, n, "%s%s", a, b);
}

/* on_event: one SSE event: vLLM's handling of a streamed chunk. */
static int on_event(void *ctx, const char *data, size_t n)
{
    struct breq *q = ctx;
    double t = q->most_recent_read;
    if (n == 6 && memcmp(data, "[DONE]", 6) == 0)
        return 0;
    json_error_t jerr;
    json_t *root = json_loadb(data, n, 0, &jerr);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        if (!q->parse_error) {
            size_t m = n < 200 ? n : 200;
            q->parse_error = malloc(m + 64);
            if (q->parse_error)
                snprintf(q->parse_error, m + 64, "a streamed event is not a JSON object: %.*s",
                         (int)m, data);
        }
        return ERR_PARSE;
    }
    json_t *choices = json_object_get(root, "choices");
    json_t *usage = json_object_get(root, "usage");
    if (json_is_array(choices) && json_array_size(choices) > 0) {
        json_t *c0 = json_array_get(choices, 0);
        json_t *text = q->run->tgt.chat ? json_object_get(json_object_get(c0, "delta"), "content")
                                        : json_object_get(c0, "text");
        if (!q->first) {
            q->first = true;
            q->res->ttft = t - q->st;
        } else if (bench_result_add_itl(q->res, t - q->most_recent)) {
            json_decref(root);
            return ERR_NOMEM;
        }
        q->most_recent = t;
        if (json_is_string(text) &&
            buf_append(&q->text, json_string_value(text), json_string_length(text))) {
            json_decref(root);
            return ERR_LIMIT;
        }
    } else if (json_is_object(usage)) {
        json_t *ct = json_object_get(usage, "completion_tokens");
        json_t *pt = json_object_get(usage, "prompt_tokens");
        if (json_is_integer(ct) && json_integer_value(ct) >= 0 &&
            json_integer_value(ct) <= 1 << 30)
            q->res->output_tokens = (int)json_integer_value(ct);
        if (json_is_integer(pt) && json_integer_value(pt) >= 0 &&
            json_integer_value(pt) <= 1 << 30)
            q->res->prompt_len = (int)json_integer_value(pt);
    }
    json_decref(root);
    return 0;
}

static void on_headers(void *ud, int status)
{
    struct breq *q = ud;
    q->status = status;
}

static void on_body(void *ud, const char *p, size_t n, double t)
{
    struct breq *q = ud;
    if (q->status != 200) {
        size_t room = ERR_BODY_MAX - q->err_body.n;
        (void)buf_append(&q->err_body, p, n < room ? n : room);
        return;
    }
    if (q->stopped)
        return;
    q->most_recent_read = t;
    int rc = sse_feed(&q->sse, p, n, on_event, q);
    if (rc) {
        q->stopped = true;
        if (!q->parse_error) {
            q->parse_error = malloc(64);
            if (q->parse_error)
                snprintf(q->parse_error, 64, "reading the stream: %s", err_name(rc));
        }
    }
}

/* count_output: vLLM's fallback when the server sent no usage: the tokenizer's count of the
 * generated text. */
static int count_output(struct bench_runner *run, const struct buf *text)
{
    struct tok_ids ids;
    tok_ids_init(&ids, 0);
    int n = tok_encode(run->enc, text->p, text->n, false, &ids) ? 0 : (int)ids.n;
    tok_ids_deinit(&ids);
    return n;
}

static void on_done(void *ud, int err, const char *msg)
{
    struct breq *q = ud;
    struct bench_result *r = q->res;
    char status[32];
    if (err) {
        set_error(r, msg ? msg : err_name(err), "");
    } else if (q->status != 200) {
        snprintf(status, sizeof status, "HTTP %d: ", q->status);
        set_error(r, status, q->err_body.p);
    } else if (q->parse_error) {
        set_error(r, q->parse_error, "");
    } else if (!q->first) {
        set_error(r, "Never received a valid chunk to calculate TTFT. This response will be "
                  "marked as failed!",
                  "");
    } else {
        r->success = true;
        r->latency = q->most_recent - q->st;
        if (r->output_tokens == 0)
            r->output_tokens = count_output(q->run, &q->text);
    }
    free(r->generated_text);
    r->generated_text = buf_detach(&q->text, NULL);
    sse_deinit(&q->sse);
    buf_deinit(&q->err_body);
    buf_deinit(&q->text);
    free(q->parse_error);
    q->parse_error = NULL;
    q->done(q);
}

static const struct hc_callbacks breq_callbacks = {on_headers, on_body, on_done};

int breq_start(struct breq *q)
{
    struct bench_result *r = q->res;
    double queue_time = r->queue_time;
    bench_result_deinit(r);
    r->queue_time = queue_time;
    r->prompt_len = q->sample->prompt_len;
    q->status = 0;
    q->first = false;
    q->stopped = false;
    q->parse_error = NULL;
    sse_init(&q->sse, EVENT_MAX);
    buf_init(&q->text, 1u << 30);
    buf_init(&q->err_body, ERR_BODY_MAX + 1);
    char *body = breq_body(q->run, q->sample);
    q->st = hc_now();
    q->most_recent = q->st;
    r->start_time = q->st;
    int rc = body ? hc_request(q->run->hc, "POST", q->run->tgt.path, "application/json", body,
                               strlen(body), q->run->auth_header, &breq_callbacks, q)
                  : ERR_NOMEM;
    free(body);
    if (rc)
        on_done(q, rc, "could not send the request");
    return rc;
}
