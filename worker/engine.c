/*
 * engine.c: set-up (ranks, model, KV pool, scheduler, socket), the step loop and tear-down.
 * Messages in and out are in engine_io.c. See engine.h.
 */
#include "worker/engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/model_config.h"
#include "worker/engine_internal.h"

#define IDLE_WAIT_MS 50 /* how long an idle engine waits for a message before checking *stop */

struct engine_config engine_config_default(void)
{
    return (struct engine_config){.addr = MQ_DEFAULT_ADDR,
                                  .tp_size = 1,
                                  .block_size = 16,
                                  .kv_cache_bytes = (size_t)1 << 30,
                                  .max_num_seqs = 256,
                                  .max_num_batched_tokens = 2048,
                                  .max_waiting = 4096,
                                  .policy = SCHED_FCFS,
                                  .enable_prefix_caching = true,
                                  .frontend_timeout_ms = 5000};
}

/* fail: writes the reason to err and returns rc. */
/* random_u64: 64 bits from the kernel (time-based when it has none). */
static uint64_t random_u64(void)
{
    uint64_t x;
    if (getrandom(&x, sizeof x, 0) == (ssize_t)sizeof x)
        return x;
    return engine_now_us() * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
}

/* kv_pool: sizes the KV pool from kv_cache_bytes and maps the block manager's region. */
static int kv_pool(struct engine *e, const struct model_config *mc, int max_len, int *n_blocks,
                   char *err, size_t errlen)
{
    const struct engine_config *c = &e->cfg;
    size_t per_block = 2 * (size_t)mc->num_layers * (size_t)c->block_size *
                       (size_t)(mc->num_kv_heads / c->tp_size) * (size_t)mc->head_dim *
                       sizeof(float);
    size_t blocks = c->kv_cache_bytes / per_block;
    int64_t need = ((int64_t)max_len + c->block_size - 1) / c->block_size;
    if (blocks > ((size_t)1 << 26))
        blocks = (size_t)1 << 26;
    if ((int64_t)blocks < need)
        return err_set(err, errlen, ERR_RANGE,
                       "the KV cache (--kv-cache-memory %zu bytes: %zu blocks of %zu bytes) cannot "
                       "hold one sequence of max_model_len %d (%lld blocks); raise "
                       "--kv-cache-memory or lower --max-model-len",
                       c->kv_cache_bytes, blocks, per_block, max_len, (long long)need);
    struct kv_blocks_config kc = {.n_blocks = (int32_t)blocks,
                                  .block_size = c->block_size,
                                  .max_seqs = c->max_num_seqs,
                                  .max_blocks_per_seq = (int32_t)need,
                                  .disable_prefix_caching = !c->enable_prefix_caching};
    e->kv_region_bytes = kv_blocks_bytes(&kc);
    if (!e->kv_region_bytes)
        return err_set(err, errlen, ERR_RANGE, "KV block manager limits out of range");
    /* shared: every rank may read the block tables (kv_blocks.h) */
    void *p =
        mmap(NULL, e->kv_region_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return err_set(err, errlen, ERR_NOMEM, "cannot map %zu bytes for the KV block manager",
                       e->kv_region_bytes);
    e->kv_region = p;
    *n_blocks = (int)blocks;
    return kv_blocks_init(p, e->kv_region_bytes, &kc, &e->kb);
}

/* check_config: the limits of c that need no model. */
static int check_config(const struct engine_config *c, char *err, size_t errlen)
{
    if (!c->model_dir || !c->addr)
        return err_set(err, errlen, ERR_INVAL, "a model directory and an address are required");
    if (c->tp_size < 1 || c->tp_size > 64 || c->block_size < 1 || c->block_size > 4096 ||
        c->max_num_seqs < 1 || c->max_num_seqs > 65536 || c->max_num_batched_tokens < 1 ||
        c->max_num_batched_tokens > (1 << 20) || c->max_waiting < 1 || c->max_waiting > (1 << 20) ||
        c->max_model_len < 0 || c->frontend_timeout_ms < 100)
        return err_set(err, errlen, ERR_RANGE, "an engine limit is out of range");
    return 0;
}

/* start_model: ranks 1..N-1, then rank 0's backend and model. */
static int start_model(struct engine *e, const struct model_config *mc, int max_len, int n_blocks,
                       char *err, size_t errlen)
{
    const struct engine_config *c = &e->cfg;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = c->threads ? c->threads : (int)(ncpu / c->tp_size > 1 ? ncpu / c->tp_size : 1);
    struct model_opts mo = {.max_logits = c->max_num_seqs + e->plp_rows,
                            .dummy = c->dummy,
                            .seed = 0, /* dummy weights: the same on every rank and run */
                            .dummy_dtype = KN_BF16,
                            .block_size = c->block_size,
                            .num_blocks = n_blocks,
                            .max_batch_tokens = c->max_num_batched_tokens,
                            .max_seqs = c->max_num_seqs,
                            .max_model_len = max_len};
    struct rank_pool_config rc = {.model_dir = c->model_dir,
                                  .tp_size = c->tp_size,
                                  .threads_per_rank = threads,
                                  .opts = mo,
                                  .max_allreduce =
                                      (size_t)c->max_num_batched_tokens * (size_t)mc->hidden_size};
    int r = rank_pool_start(&rc, &e->ranks, err, errlen);
    if (r)
        return r;
    if ((r = backend_cpu_new(threads, BACKEND_SIMD_AUTO, &e->be)) != 0)
        return err_set(err, errlen, r, "cannot start the CPU backend");
    mo.backend = e->be;
    rank_pool_model_opts(e->ranks, &mo);
    r = model_load(c->model_dir, &mo, &e->m, err, errlen);
    if (r == 0)
        model_set_progress(e->m, engine_progress, e);
    return r;
}

/* start_scheduler: the scheduler, sampler scratch and per-step buffers. */
static int start_scheduler(struct engine *e, int max_len, char *err, size_t errlen)
{
    const struct engine_config *c = &e->cfg;
    const struct generation_config *g = model_generation_config(e->m);
    const struct model_config *mc = model_config(e->m);
    const int32_t *eos = g->num_eos ? g->eos_token_ids : mc->eos_token_ids;
    int n_eos = g->num_eos ? g->num_eos : mc->num_eos;
    struct scheduler_config sc = {.max_num_batched_tokens = c->max_num_batched_tokens,
                                  .max_num_seqs = c->max_num_seqs,
                                  .max_waiting = c->max_waiting,
                                  .max_model_len = max_len,
                                  .block_size = c->block_size,
                                  .policy = c->policy,
                                  .vocab = (size_t)mc->vocab_size,
                                  .max_prompt_logprob_rows = e->plp_rows};
    for (int i = 0; i < n_eos && sc.n_eos < SCHED_MAX_EOS; i++)
        if (eos[i] >= 0 && eos[i] < mc->vocab_size)
            sc.eos_ids[sc.n_eos++] = eos[i];
    memcpy(e->eos, sc.eos_ids, sizeof e->eos);
    e->n_eos = sc.n_eos;
    e->vocab = (size_t)mc->vocab_size;
    e->max_model_len = max_len;
    int rc = scheduler_new(&sc, e->kb, &e->sched);
    if (rc)
        return err_set(err, errlen, rc, "scheduler limits out of range (max_num_seqs %d)",
                       c->max_num_seqs);
    size_t ns = (size_t)c->max_num_seqs;
    e->n_reqs = (uint32_t)(c->max_waiting + c->max_num_seqs);
    size_t np = (size_t)e->plp_rows;
    e->logits = malloc((ns + np) * e->vocab * sizeof *e->logits);
    e->plp = malloc(np * sizeof *e->plp);
    e->plp_targets = malloc(np * sizeof *e->plp_targets);
    e->plp_lp = malloc(np * sizeof *e->plp_lp);
    e->plp_top_ids = malloc(np * SAMPLING_MAX_LOGPROBS * sizeof *e->plp_top_ids);
    e->plp_top_lps = malloc(np * SAMPLING_MAX_LOGPROBS * sizeof *e->plp_top_lps);
    e->sampled = malloc(ns * sizeof *e->sampled);
    e->lps = malloc(ns * sizeof *e->lps);
    e->reqs = calloc(e->n_reqs, sizeof *e->reqs);
    for (e->index_cap = 16; e->index_cap < 2 * e->n_reqs; e->index_cap *= 2)
        ;
    e->req_index = malloc(e->index_cap * sizeof *e->req_index);
    if (e->req_index)
        memset(e->req_index, 0xff, e->index_cap * sizeof *e->req_index);
    if (sampler_scratch_init(&e->scratch, e->vocab) || !e->logits || !e->sampled || !e->lps ||
        !e->reqs || !e->req_index || !e->plp || !e->plp_targets || !e->plp_lp || !e->plp_top_ids ||
        !e->plp_top_lps)
        return err_set(err, errlen, ERR_NOMEM, "out of memory for the engine's step buffers");
    return 0;
}

/* start_socket: the ZeroMQ context and the bound ROUTER. */
static int start_socket(struct engine *e, char *err, size_t errlen)
{
    int rc = mq_context_new(&e->ctx);
    if (rc)
        return err_set(err, errlen, rc, "cannot create the ZeroMQ context");
    struct mq_opts o;
    mq_opts_init(&o, e->ctx, e->cfg.addr);
    if ((rc = mq_engine_open(&o, &e->mq, err, errlen)) != 0)
        return rc;
    if (mq_engine_endpoint(e->mq, e->endpoint, sizeof e->endpoint))
        snprintf(e->endpoint, sizeof e->endpoint, "%s", e->cfg.addr);
    return 0;
}

int engine_new(const struct engine_config *c, struct engine **out, char *err, size_t errlen)
{
    int rc = check_config(c, err, errlen);
    if (rc)
        return rc;
    struct model_config mc;
    if ((rc = model_config_load(c->model_dir, &mc, err, errlen)) != 0)
        return rc;
    if (mc.num_kv_heads % c->tp_size || mc.num_heads % c->tp_size)
        return err_set(
            err, errlen, ERR_RANGE,
            "--tensor-parallel-size %d must divide the %d attention heads and %d KV heads",
            c->tp_size, mc.num_heads, mc.num_kv_heads);
    int longest = model_longest_len(&mc), max_len = c->max_model_len ? c->max_model_len : longest;
    if (max_len > longest)
        return err_set(err, errlen, ERR_RANGE, "--max-model-len %d is longer than the model's %d",
                       max_len, longest);
    struct engine *e = calloc(1, sizeof *e);
    if (!e)
        return err_set(err, errlen, ERR_NOMEM, "out of memory");
    e->cfg = *c;
    snprintf(e->model_name, sizeof e->model_name, "%s",
             c->model_name ? c->model_name : c->model_dir);
    e->cfg.model_name = e->model_name;
    e->state = WIRE_STARTING;
    e->epoch = (uint64_t)time(NULL) * 1000000u + (random_u64() % 1000000u);
    e->engine_id = random_u64();
    e->seed_base = c->has_seed ? c->seed : random_u64();
    arena_init(&e->arena, 2 * (size_t)WIRE_MAX_BODY, 1 << 16);
    buf_init(&e->in, (size_t)MQ_DEFAULT_MAXMSGSIZE);
    /* prompt-logprob rows: at most 64 MiB of logits a step, 16 .. 256 rows */
    size_t rows = ((size_t)1 << 24) / (size_t)mc.vocab_size;
    rows = rows < 16 ? 16 : rows > 256 ? 256 : rows;
    e->plp_rows =
        (int)(rows < (size_t)c->max_num_batched_tokens ? rows : (size_t)c->max_num_batched_tokens);
    int n_blocks = 0;
    rc = kv_pool(e, &mc, max_len, &n_blocks, err, errlen);
    if (!rc)
        rc = start_model(e, &mc, max_len, n_blocks, err, errlen);
    if (!rc)
        rc = start_scheduler(e, max_len, err, errlen);
    if (!rc)
        rc = start_socket(e, err, errlen);
    if (rc) {
        engine_free(e);
        return rc;
    }
    e->state = WIRE_READY;
    *out = e;
    return 0;
}

const char *engine_endpoint(const struct engine *e)
{
    return e->endpoint;
}

void engine_describe(const struct engine *e, char *s, size_t n)
{
    struct kv_blocks_config k = kv_blocks_config_of(e->kb);
    snprintf(s, n,
             "model %s (%s, %.1f MB of weights per rank), tensor-parallel %d, %d KV blocks of %d "
             "tokens, max_model_len %d, max_num_seqs %d, max_num_batched_tokens %d, prefix "
             "caching %s",
             e->model_name, model_config(e->m)->arch_name, model_weight_bytes(e->m) / 1e6,
             e->cfg.tp_size, k.n_blocks, k.block_size, e->max_model_len, e->cfg.max_num_seqs,
             e->cfg.max_num_batched_tokens, e->cfg.enable_prefix_caching ? "on" : "off");
}

/* sample_rows: one token (and its logprobs when asked) per logit row of step. */
static void sample_rows(struct engine *e, const struct sched_step *step)
{
    for (size_t i = 0; i < step->n_logits; i++) {
        const struct sched_seq *q = step->seqs[step->logit_seq[i]];
        struct sampler_logprobs *lp = q->sampler.params.logprobs >= 0 ? &e->lps[i] : NULL;
        e->lps[i].n_top = lp ? 0 : -1; /* -1: none asked (the commit may free q) */
        /* sizes match by construction: sampler_sample cannot fail here */
        sampler_sample(&q->sampler, e->logits + i * e->vocab, e->eos, e->n_eos, &e->scratch,
                       &e->sampled[i], lp);
    }
}

/* run_step: schedules, computes, samples and commits one step. Returns 1 when a step ran, 0
 * when there was nothing to run, or a fatal error. */
static int run_step(struct engine *e, double *forward_us, char *err, size_t errlen)
{
    struct sched_step step;
    int rc = scheduler_schedule(e->sched, &step);
    if (rc)
        return err_set(err, errlen, rc, "scheduler: %s", err_name(rc));
    if (step.n_tokens == 0)
        return 0;
    struct model_batch b = scheduler_step_batch(&step);
    if ((rc = rank_pool_publish(e->ranks, &b)) != 0)
        return err_set(err, errlen, rc, "a tensor-parallel rank died");
    uint64_t t0 = engine_now_us();
    if ((rc = model_forward(e->m, &b, e->logits, err, errlen)) != 0)
        return rc; /* the scheduler built a batch the model refuses: a bug, loudly */
    *forward_us = (double)(engine_now_us() - t0);
    sample_rows(e, &step);
    engine_emit_prompt_logprobs(e, &step);
    struct sched_events ev;
    if ((rc = scheduler_commit(e->sched, &step, e->sampled, &ev)) != 0)
        return err_set(err, errlen, rc, "commit: %s", err_name(rc));
    engine_emit_events(e, &ev);
    e->step++;
    return 1;
}

/* run_loop: engine_run's body. */
static int run_loop(struct engine *e, volatile sig_atomic_t *stop, char *err, size_t errlen)
{
    uint64_t last_log = engine_now_us();
    for (;;) {
        if (*stop >= 2)
            return 0;
        if (*stop == 1 && e->state != WIRE_DRAINING) {
            e->state = WIRE_DRAINING;
            e->last_beat_us = 0; /* tell the frontends now */
            log_info("draining: %zu requests left", scheduler_stats(e->sched).n_requests);
        }
        bool idle = scheduler_stats(e->sched).n_requests == 0;
        if (idle && e->state == WIRE_DRAINING) {
            int rc = engine_flush(e);
            return rc < 0 ? err_set(err, errlen, rc, "socket failed while draining") : 0;
        }
        int rc = engine_receive(e, idle ? IDLE_WAIT_MS : 0);
        if (rc < 0)
            return err_set(err, errlen, rc, "the engine socket failed (%s)", err_name(rc));
        uint64_t t0 = engine_now_us();
        double fwd = 0;
        rc = run_step(e, &fwd, err, errlen);
        if (rc < 0)
            return rc;
        if ((rc = engine_flush(e)) < 0)
            return err_set(err, errlen, rc, "the engine socket failed (%s)", err_name(rc));
        if (fwd > 0) {
            e->overhead_us_sum += (double)(engine_now_us() - t0) - fwd;
            e->overhead_steps++;
        }
        if (e->overhead_steps && engine_now_us() - last_log > 10000000u) {
            log_debug("%llu steps, %.1f us per step outside the forward pass",
                      (unsigned long long)e->step, e->overhead_us_sum / (double)e->overhead_steps);
            last_log = engine_now_us();
        }
    }
}

int engine_run(struct engine *e, volatile sig_atomic_t *stop, char *err, size_t errlen)
{
    int rc = run_loop(e, stop, err, errlen);
    log_info("%llu steps, %llu preemptions; %.1f us per step outside the forward pass "
             "(receive, schedule, sample, commit, send)",
             (unsigned long long)e->step,
             (unsigned long long)scheduler_stats(e->sched).n_preemptions,
             e->overhead_steps ? e->overhead_us_sum / (double)e->overhead_steps : 0.0);
    return rc;
}

void engine_free(struct engine *e)
{
    if (!e)
        return;
    if (e->mq)
        mq_engine_close(e->mq);
    if (e->ctx)
        mq_context_free(e->ctx);
    scheduler_free(e->sched);
    rank_pool_stop(e->ranks);
    model_free(e->m);
    if (e->be)
        e->be->ops->destroy(e->be);
    if (e->kv_region)
        munmap(e->kv_region, e->kv_region_bytes);
    sampler_scratch_deinit(&e->scratch);
    for (int i = 0; i < ENGINE_MAX_FRONTENDS; i++) {
        struct engine_frontend *f = &e->fronts[i];
        buf_deinit(&f->pending);
        free(f->outs);
        free(f->tok);
        free(f->lp);
        free(f->top_ids);
        free(f->top_lps);
    }
    free(e->logits);
    free(e->plp);
    free(e->plp_targets);
    free(e->plp_lp);
    free(e->plp_top_ids);
    free(e->plp_top_lps);
    free(e->sampled);
    free(e->lps);
    free(e->reqs);
    free(e->req_index);
    arena_deinit(&e->arena);
    buf_deinit(&e->in);
    free(e);
}
