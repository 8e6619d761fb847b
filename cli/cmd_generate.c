/*
 * cmd_generate: `kiln generate --model DIR --prompt TEXT`, the offline path: load a model on
 * the CPU backend, run the prompt, and print the continuation as it is generated (greedy at
 * temperature 0, else sampled with a seeded generator). --ids prints the generated ids as a
 * JSON array instead. Generation stops at an EOS id of generation_config.json (or
 * config.json), which is not printed, at --max-tokens, or at the model's length.
 */
#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "common/buf.h"
#include "common/cfg.h"
#include "common/err.h"
#include "common/tokenizer.h"
#include "worker/backend.h"
#include "worker/model.h"

#define PREFILL_CHUNK 512

struct gen_opts {
    const char *model;
    const char *prompt;
    const char *prompt_ids;
    long long max_tokens;
    double temperature;
    long long seed;
    bool ids;
    bool ignore_eos;
    long long threads;
    int load_format; /* 0 auto, 1 dummy */
    long long block_size;
};

static const struct cfg_flag gen_flags[] = {
    {"model", CFG_STRING, offsetof(struct gen_opts, model), NULL, 1, 0, NULL,
     "model directory (config.json, tokenizer.json, *.safetensors)"},
    {"prompt", CFG_STRING, offsetof(struct gen_opts, prompt), "", 1, 0, NULL,
     "prompt text, tokenized with the model's BOS rule (empty: BOS alone)"},
    {"prompt-ids", CFG_STRING, offsetof(struct gen_opts, prompt_ids), NULL, 1, 0, NULL,
     "prompt as a JSON array of token ids, used verbatim (instead of --prompt)"},
    {"max-tokens", CFG_INT, offsetof(struct gen_opts, max_tokens), "256", 1, 1 << 24, NULL,
     "most tokens to generate"},
    {"temperature", CFG_DOUBLE, offsetof(struct gen_opts, temperature), "0", 0, 100, NULL,
     "0: greedy; else sample from softmax(logits / T)"},
    {"seed", CFG_INT, offsetof(struct gen_opts, seed), "0", 0, 9e18, NULL,
     "random seed for sampling (and dummy weights)"},
    {"ids", CFG_BOOL, offsetof(struct gen_opts, ids), "false", 1, 0, NULL,
     "print the generated token ids as a JSON array instead of text"},
    {"ignore-eos", CFG_BOOL, offsetof(struct gen_opts, ignore_eos), "false", 1, 0, NULL,
     "do not stop at EOS ids"},
    {"threads", CFG_INT, offsetof(struct gen_opts, threads), "0", 0, 1024, NULL,
     "CPU threads (0: one per CPU)"},
    {"load-format", CFG_ENUM, offsetof(struct gen_opts, load_format), "auto", 1, 0, "auto|dummy",
     "auto: safetensors weights; dummy: random weights of the config's shapes"},
    {"block-size", CFG_INT, offsetof(struct gen_opts, block_size), "16", 1, 1024, NULL,
     "tokens per KV-cache block"},
};

#define N_FLAGS (sizeof gen_flags / sizeof *gen_flags)

/* prompt_from_ids: parses --prompt-ids. */
static int prompt_from_ids(const char *text, struct tok_ids *ids)
{
    json_error_t je;
    json_t *arr = json_loads(text, 0, &je), *v;
    size_t i;
    if (!json_is_array(arr)) {
        fprintf(stderr, "kiln generate: --prompt-ids: expected a JSON array of ids\n");
        json_decref(arr);
        return 1;
    }
    json_array_foreach(arr, i, v)
    {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX ||
            tok_ids_push(ids, (int32_t)json_integer_value(v))) {
            fprintf(stderr, "kiln generate: --prompt-ids[%zu]: not a token id\n", i);
            json_decref(arr);
            return 1;
        }
    }
    json_decref(arr);
    return 0;
}

/* rng: a counter-based generator: a uniform double in [0, 1) for (seed, step). */
static double rng_uniform(uint64_t seed, uint64_t step)
{
    uint64_t z = seed * 0x9e3779b97f4a7c15ull + (step + 1) * 0xd1b54a32d192ed03ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) * 0x1p-53;
}

/* sample: argmax at temperature 0, else a draw from softmax(logits / t). */
static int32_t sample(const float *logits, int vocab, double t, uint64_t seed, uint64_t step)
{
    int32_t best = 0;
    for (int v = 1; v < vocab; v++)
        if (logits[v] > logits[best])
            best = v;
    if (t <= 0)
        return best;
    double sum = 0, mx = logits[best];
    for (int v = 0; v < vocab; v++)
        sum += exp((logits[v] - mx) / t);
    double u = rng_uniform(seed, step) * sum, acc = 0;
    for (int v = 0; v < vocab; v++) {
        acc += exp((logits[v] - mx) / t);
        if (u < acc)
            return v;
    }
    return best;
}

static bool is_eos(const struct model *m, const struct tokenizer *tk, int32_t id)
{
    const struct generation_config *g = model_generation_config(m);
    const struct model_config *c = model_config(m);
    const int32_t *ids = g->num_eos ? g->eos_token_ids : c->eos_token_ids;
    int n = g->num_eos ? g->num_eos : c->num_eos;
    for (int i = 0; i < n; i++)
        if (ids[i] == id)
            return true;
    return n == 0 && tk && tok_special(tk)->eos == id;
}

struct gen {
    const struct gen_opts *o;
    struct tokenizer *tk;
    struct backend *be;
    struct model *m;
    struct tok_ids seq; /* prompt then generated ids */
    size_t n_prompt;
    int32_t *table; /* the one sequence's block table: block i is block i */
    float *logits;  /* [vocab] */
    struct tok_stream ts;
    bool ts_live;
    size_t skip_bytes; /* bytes of streamed text that belong to the prompt */
};

/* forward: runs seq[from, to) (positions from..to-1) and leaves the last token's logits. */
static int forward(struct gen *g, size_t from, size_t to)
{
    size_t n = to - from, bs = (size_t)model_block_size(g->m);
    int32_t *pos = malloc(n * 3 * sizeof(int32_t)), last = (int32_t)n - 1;
    if (!pos)
        return ERR_NOMEM;
    int32_t *seq_of = pos + n, *slots = seq_of + n;
    for (size_t i = 0; i < n; i++) {
        pos[i] = (int32_t)(from + i);
        seq_of[i] = 0;
        slots[i] = g->table[(from + i) / bs] * (int32_t)bs + (int32_t)((from + i) % bs);
    }
    struct model_batch b = {n,        g->seq.v + from,        pos, seq_of, slots, 1,
                            g->table, model_max_blocks(g->m), 1,   &last};
    char err[256];
    int rc = model_forward(g->m, &b, g->logits, err, sizeof err);
    if (rc)
        fprintf(stderr, "kiln generate: %s\n", err);
    free(pos);
    return rc;
}

static int load(struct gen *g)
{
    const struct gen_opts *o = g->o;
    char err[512];
    int rc = 0;
    if (!(o->prompt_ids && o->ids)) { /* text in or out needs the tokenizer */
        rc = tok_load_dir(o->model, &g->tk, err, sizeof err);
        if (rc) {
            fprintf(stderr, "kiln generate: %s\n", err);
            return rc;
        }
    }
    if (o->prompt_ids)
        rc = prompt_from_ids(o->prompt_ids, &g->seq) ? ERR_INVAL : 0;
    else {
        struct tok_enc *e = tok_enc_new(g->tk);
        rc = e ? tok_encode(e, o->prompt, strlen(o->prompt), true, &g->seq) : ERR_NOMEM;
        tok_enc_free(e);
    }
    if (!rc && g->seq.n == 0) {
        fprintf(stderr, "kiln generate: the prompt is empty and the tokenizer adds no BOS\n");
        rc = ERR_INVAL;
    }
    if (rc)
        return rc;
    g->n_prompt = g->seq.n;
    return 0;
}

static int build(struct gen *g)
{
    const struct gen_opts *o = g->o;
    char err[512];
    struct model_config c;
    int rc = model_config_load(o->model, &c, err, sizeof err);
    if (!rc)
        rc = backend_cpu_new((int)o->threads, BACKEND_SIMD_AUTO, &g->be);
    if (rc) {
        fprintf(stderr, "kiln generate: %s\n", rc == ERR_NOMEM ? "out of memory" : err);
        return rc;
    }
    size_t want = g->n_prompt + (size_t)o->max_tokens;
    size_t len =
        want < (size_t)c.max_position_embeddings ? want : (size_t)c.max_position_embeddings;
    if (g->n_prompt >= len) {
        fprintf(stderr,
                "kiln generate: the prompt (%zu tokens) leaves no room in the model's "
                "%d positions\n",
                g->n_prompt, c.max_position_embeddings);
        return ERR_RANGE;
    }
    int bs = (int)o->block_size, blocks = (int)((len + (size_t)bs - 1) / (size_t)bs);
    struct model_opts mo = {.backend = g->be,
                            .dummy = o->load_format == 1,
                            .seed = (uint64_t)o->seed,
                            .dummy_dtype = KN_BF16,
                            .block_size = bs,
                            .num_blocks = blocks,
                            .max_batch_tokens = PREFILL_CHUNK,
                            .max_seqs = 1,
                            .max_model_len = (int)len};
    if ((rc = model_load(o->model, &mo, &g->m, err, sizeof err)) != 0) {
        fprintf(stderr, "kiln generate: %s\n", err);
        return rc;
    }
    g->table = calloc(model_max_blocks(g->m), sizeof(int32_t));
    g->logits = malloc((size_t)c.vocab_size * sizeof(float));
    if (!g->table || !g->logits)
        return ERR_NOMEM;
    for (int i = 0; i < blocks; i++)
        g->table[i] = i;
    return 0;
}

/* emit: prints the text the stream gives for id, minus what belongs to the prompt. */
static int emit(struct gen *g, int32_t id, bool flush)
{
    struct buf d;
    buf_init(&d, 0);
    int rc = flush ? tok_stream_flush(&g->ts, &d) : tok_stream_feed(&g->ts, id, &d);
    size_t skip = d.n < g->skip_bytes ? d.n : g->skip_bytes;
    g->skip_bytes -= skip;
    if (!rc && d.n > skip) {
        fwrite(d.p + skip, 1, d.n - skip, stdout);
        fflush(stdout);
    }
    buf_deinit(&d);
    return rc;
}

/* start_text: primes the detokenizer with the prompt, whose text is not printed. */
static int start_text(struct gen *g)
{
    struct buf full, d;
    buf_init(&full, 0);
    buf_init(&d, 0);
    int rc = tok_stream_init(&g->ts, g->tk, true);
    g->ts_live = rc == 0;
    if (!rc)
        rc = tok_decode(g->tk, g->seq.v, g->n_prompt, true, &full);
    size_t emitted = 0;
    for (size_t i = 0; !rc && i < g->n_prompt; i++) {
        d.n = 0;
        rc = tok_stream_feed(&g->ts, g->seq.v[i], &d);
        emitted += d.n;
    }
    g->skip_bytes = full.n > emitted ? full.n - emitted : 0;
    buf_deinit(&full);
    buf_deinit(&d);
    return rc;
}

static int generate(struct gen *g)
{
    const struct gen_opts *o = g->o;
    size_t len = (size_t)model_max_blocks(g->m) * (size_t)model_block_size(g->m);
    int vocab = model_config(g->m)->vocab_size, rc = 0;
    if (!o->ids && (rc = start_text(g)) != 0)
        return rc;
    for (size_t at = 0; !rc && at < g->n_prompt; at += PREFILL_CHUNK)
        rc = forward(g, at, at + PREFILL_CHUNK < g->n_prompt ? at + PREFILL_CHUNK : g->n_prompt);
    if (o->ids)
        printf("[");
    for (long long k = 0; !rc && k < o->max_tokens; k++) {
        int32_t id = sample(g->logits, vocab, o->temperature, (uint64_t)o->seed, (uint64_t)k);
        if (!o->ignore_eos && is_eos(g->m, g->tk, id))
            break;
        if ((rc = tok_ids_push(&g->seq, id)) != 0)
            break;
        if (o->ids)
            printf("%s%d", k ? "," : "", id);
        else
            rc = emit(g, id, false);
        if (!rc && k + 1 < o->max_tokens && g->seq.n < len &&
            g->seq.n < (size_t)model_config(g->m)->max_position_embeddings)
            rc = forward(g, g->seq.n - 1, g->seq.n);
        else
            break;
    }
    if (!rc && !o->ids)
        rc = emit(g, 0, true);
    printf(o->ids ? "]\n" : "\n");
    return rc;
}

int cmd_generate(int argc, char **argv)
{
    struct gen_opts o;
    char err[256];
    int npos = 0;
    static const char usage[] = "usage: kiln generate --model DIR [--prompt TEXT] [flags]";
    int rc = cfg_parse(gen_flags, N_FLAGS, &o, argc, argv, NULL, 0, &npos, err, sizeof err);
    if (rc == CFG_HELP) {
        cfg_print_help(stdout, usage, gen_flags, N_FLAGS);
        return 0;
    }
    if (rc == 0 && !o.model)
        snprintf(err, sizeof err, "--model is required"), rc = ERR_INVAL;
    if (rc) {
        fprintf(stderr, "kiln generate: %s\n", err);
        cfg_print_help(stderr, usage, gen_flags, N_FLAGS);
        return 2;
    }
    struct gen g = {.o = &o};
    tok_ids_init(&g.seq, 0);
    rc = load(&g);
    if (!rc)
        rc = build(&g);
    if (!rc)
        rc = generate(&g);
    if (g.ts_live)
        tok_stream_deinit(&g.ts);
    free(g.table);
    free(g.logits);
    model_free(g.m);
    if (g.be)
        g.be->ops->destroy(g.be);
    tok_free(g.tk);
    tok_ids_deinit(&g.seq);
    return rc ? 1 : 0;
}
