/* frontend: set-up, signals and drain of one frontend process. See frontend.h. */
#include "frontend/frontend.h"

#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "common/log.h"
#include "common/mq.h"
#include "frontend/frontend_internal.h"
#include "frontend/oai_error.h"

#define TICK_MS 100

struct frontend_config frontend_config_default(void)
{
    return (struct frontend_config){.host = "127.0.0.1",
                                    .port = 8000,
                                    .listen_fd = -1,
                                    .max_logprobs = 20,
                                    .max_in_flight = 4096,
                                    .shutdown_timeout_ms = 30000,
                                    .ready_fd_note = ""};
}

uint64_t fe_now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

/* special_string: a tokenizer_config.json special token, a string or {"content": ...}. */
static json_t *special_string(const json_t *config, const char *key)
{
    const json_t *v = json_object_get(config, key);
    if (json_is_object(v))
        v = json_object_get(v, "content");
    return json_is_string(v) ? json_string(json_string_value(v)) : json_null();
}

/* load_templates: the chat template(s), the template's bos/eos variables and clean_up. */
static int load_templates(struct fe *fe, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", fe->cfg.model_dir);
    json_t *config = json_load_file(path, 0, NULL);
    if (!config)
        config = json_object();
    fe->template_vars = json_object();
    json_object_set_new(fe->template_vars, "bos_token", special_string(config, "bos_token"));
    json_object_set_new(fe->template_vars, "eos_token", special_string(config, "eos_token"));
    fe->clean_up = json_is_true(json_object_get(config, "clean_up_tokenization_spaces"));
    int rc = fe->cfg.chat_template
                 ? chat_templates_load_file(&fe->ct, fe->cfg.chat_template, err, errlen)
                 : chat_templates_load_config(&fe->ct, config, err, errlen);
    json_decref(config);
    return rc;
}

/* load_model_files: tokenizer, templates and generation_config.json of the model dir. */
static int load_model_files(struct fe *fe, char *err, size_t errlen)
{
    int rc = tok_load_dir(fe->cfg.model_dir, &fe->tok, err, errlen);
    if (rc)
        return rc;
    if (!(fe->enc = tok_enc_new(fe->tok)))
        return snprintf(err, errlen, "out of memory"), ERR_NOMEM;
    if ((rc = load_templates(fe, err, errlen)) != 0)
        return rc;
    if ((rc = generation_config_load(fe->cfg.model_dir, &fe->gen, err, errlen)) != 0)
        return rc;
    fe->lim = oai_limits_default();
    fe->lim.served_names = fe->cfg.names;
    fe->lim.n_served = fe->cfg.n_names;
    fe->lim.gen = &fe->gen;
    fe->lim.max_logprobs = fe->cfg.max_logprobs;
    fe->lim.trust_request_chat_template = fe->cfg.trust_request_chat_template;
    return 0;
}

/* on_engine: the first HELLO gives the limits requests are validated against. */
static void on_engine(void *ctx, int engine)
{
    struct fe *fe = ctx;
    const struct engine_info *e = engine_link_info(fe->link, (size_t)engine);
    if (e && e->ready) {
        metrics_engine_load(&fe->metrics, (uint32_t)engine, e->running, e->waiting,
                            e->kv_blocks_used <= e->kv_blocks_total ? e->kv_blocks_used : 0,
                            e->kv_blocks_total);
        metrics_engine_totals(&fe->metrics, (uint32_t)engine, e->epoch, e->prefix_query_tokens,
                              e->prefix_hit_tokens, 0);
    } else if (e) {
        metrics_engine_gone(&fe->metrics, (uint32_t)engine);
    }
    const struct engine_info *i = engine_link_limits(fe->link);
    if (i && !fe->max_len_set && i->max_model_len)
        fe->max_len_set = metrics_set_max_model_len(&fe->metrics, i->max_model_len) == 0;
    if (i) {
        fe->lim.vocab_size = (int32_t)i->vocab_size;
        fe->lim.max_model_len = (int32_t)i->max_model_len;
        if (fe->lim.max_logprobs > (int32_t)i->max_logprobs)
            fe->lim.max_logprobs = (int32_t)i->max_logprobs;
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct fe *fe = arg;
    (void)what;
    if (++fe->signals > 1) {
        log_warn("second signal: exiting now");
        event_base_loopbreak(fe->base);
        return;
    }
    log_info("signal %d: draining (up to %d ms)", (int)sig, fe->cfg.shutdown_timeout_ms);
    fe->draining = true;
    fe->drain_deadline_ms = fe_now_ms() + (uint64_t)fe->cfg.shutdown_timeout_ms;
    http_server_drain(fe->http);
}

/* on_tick: ends the loop once a drain is done (or past its deadline). */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct fe *fe = arg;
    (void)fd, (void)what;
    if (!fe->draining)
        return;
    if (fe->n_live && fe_now_ms() < fe->drain_deadline_ms)
        return;
    if (fe->n_live) {
        log_warn("drain deadline: ending %zu requests", fe->n_live);
        gen_fail_all(fe);
    }
    if (http_server_n_requests(fe->http) == 0 &&
        (http_server_n_conns(fe->http) == 0 || fe_now_ms() > fe->drain_deadline_ms + 2000))
        event_base_loopexit(fe->base, NULL);
}

static int start(struct fe *fe, char *err, size_t errlen)
{
    int rc = load_model_files(fe, err, errlen);
    if (rc)
        return rc;
    if ((rc = metrics_init(&fe->metrics, fe->cfg.names[0], fe->cfg.metrics_vllm_compat)) != 0)
        return snprintf(err, errlen, "the served model name is not valid UTF-8 or too long"), rc;
    if (!(fe->base = event_base_new()) || mq_context_new(&fe->mq))
        return snprintf(err, errlen, "cannot start the event loop"), ERR_NOMEM;
    struct engine_link_handler lh = {gen_on_tokens, gen_on_fail, on_engine, fe};
    rc = engine_link_new(fe->base, fe->mq, fe->cfg.engines, fe->cfg.n_engines, &lh, &fe->link,
                         err, errlen);
    if (rc)
        return rc;
    struct http_server_config hc = http_server_config_default();
    hc.host = fe->cfg.host;
    hc.port = fe->cfg.port;
    hc.reuseport = true;
    hc.listen_fd = fe->cfg.listen_fd;
    hc.ssl_certfile = fe->cfg.ssl_certfile;
    hc.ssl_keyfile = fe->cfg.ssl_keyfile;
    hc.handler = (struct http_handler){routes_on_request, routes_on_abort, oai_error_format, fe};
    if ((rc = http_server_new(fe->base, &hc, &fe->http, err, errlen)) != 0)
        return rc;
    fe->sig_term = evsignal_new(fe->base, SIGTERM, on_signal, fe);
    fe->sig_int = evsignal_new(fe->base, SIGINT, on_signal, fe);
    fe->tick = event_new(fe->base, -1, EV_PERSIST, on_tick, fe);
    struct timeval tv = {0, TICK_MS * 1000};
    if (!fe->sig_term || !fe->sig_int || !fe->tick || event_add(fe->sig_term, NULL) ||
        event_add(fe->sig_int, NULL) || event_add(fe->tick, &tv))
        return snprintf(err, errlen, "cannot set up signals"), ERR_NOMEM;
    fe->started_s = (uint64_t)time(NULL);
    return 0;
}

static void stop(struct fe *fe)
{
    if (fe->n_live)
        gen_fail_all(fe);
    http_server_free(fe->http);
    engine_link_free(fe->link);
    if (fe->mq)
        mq_context_free(fe->mq);
    if (fe->sig_term)
        event_free(fe->sig_term);
    if (fe->sig_int)
        event_free(fe->sig_int);
    if (fe->tick)
        event_free(fe->tick);
    if (fe->base)
        event_base_free(fe->base);
    chat_templates_deinit(&fe->ct);
    json_decref(fe->template_vars);
    tok_enc_free(fe->enc);
    tok_free(fe->tok);
}

int frontend_run(const struct frontend_config *c)
{
    struct fe fe = {.cfg = *c};
    char err[1024] = "";
    signal(SIGPIPE, SIG_IGN);
    if (c->n_names == 0 || c->n_engines == 0 || !c->model_dir) {
        fprintf(stderr, "kiln frontend: a model directory, a name and an engine are required\n");
        return 1;
    }
    int rc = start(&fe, err, sizeof err);
    if (rc) {
        fprintf(stderr, "kiln frontend: %s\n", err[0] ? err : err_name(rc));
        stop(&fe);
        return 1;
    }
    if (c->ready_fd_note && c->ready_fd_note[0]) {
        printf("%s %d\n", c->ready_fd_note, http_server_port(fe.http));
        fflush(stdout);
    }
    log_info("listening on %s:%d for %s", c->host, http_server_port(fe.http), c->names[0]);
    event_base_dispatch(fe.base);
    stop(&fe);
    return 0;
}
