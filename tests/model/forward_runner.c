/*
 * forward_runner: drives model_forward from a JSON schedule, for the Python tests in
 * tests/model (the NumPy reference and batch-invariance checks).
 *
 *   forward_runner MODEL_DIR [--threads N] [--block-size B] [--simd auto|scalar|avx2]
 *
 * stdin: {"num_blocks": N, "shuffle_blocks": true,
 *         "steps": [[{"seq": K, "ids": [...], "logits": "last"|"all"|"none"}, ...], ...]}
 * Each step is one model_forward over the listed chunks; a chunk continues sequence K at
 * its current length (a new K starts at position 0). KV blocks are handed out from the pool
 * in a scrambled order unless shuffle_blocks is false. stdout: {"steps": [[{"seq": K,
 * "logits": [[...], ...]}, ...], ...]}. Errors: "forward_runner: <message>" and exit 1.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "worker/backend.h"
#include "worker/model.h"

#define MAX_SEQS 4096

struct seq {
    long key;
    int len;
    int n_blocks;
    int32_t *blocks; /* [max_blocks] */
};

struct runner {
    struct model *m;
    struct seq seqs[MAX_SEQS];
    int n_seqs;
    int32_t *free_blocks;
    int n_free;
    size_t max_blocks;
    int bs;
    int32_t *ids, *pos, *seq_of, *slots, *rows; /* [max_tokens] */
    int32_t *tables;                            /* [max_chunks][max_blocks] */
    float *logits;                              /* [max_tokens][vocab] */
};

/* die: prints "forward_runner: <what><arg>" and returns the exit status 1. */
static int die2(const char *what, const char *arg)
{
    fprintf(stderr, "forward_runner: %s%s\n", what, arg);
    return 1;
}

static int die(const char *what)
{
    return die2(what, "");
}

static struct seq *seq_get(struct runner *r, long key)
{
    for (int i = 0; i < r->n_seqs; i++)
        if (r->seqs[i].key == key)
            return &r->seqs[i];
    if (r->n_seqs == MAX_SEQS)
        return NULL;
    struct seq *s = &r->seqs[r->n_seqs++];
    s->key = key;
    s->blocks = calloc(r->max_blocks, sizeof(int32_t));
    return s->blocks ? s : NULL;
}

/* schedule_sizes: tokens per step, chunks per step and blocks all sequences need. */
static int schedule_sizes(json_t *steps, int bs, int *max_tokens, int *max_chunks, long *blocks)
{
    json_t *lens = json_object(), *step, *chunk;
    size_t i, j;
    *max_tokens = *max_chunks = 1;
    *blocks = 1;
    json_array_foreach(steps, i, step)
    {
        int tokens = 0;
        if (!json_is_array(step) || json_array_size(step) == 0)
            return json_decref(lens), ERR_PARSE;
        json_array_foreach(step, j, chunk)
        {
            json_t *ids = json_object_get(chunk, "ids");
            char key[32];
            snprintf(key, sizeof key, "%lld", json_integer_value(json_object_get(chunk, "seq")));
            long len = json_integer_value(json_object_get(lens, key)) + (long)json_array_size(ids);
            json_object_set_new(lens, key, json_integer(len));
            tokens += (int)json_array_size(ids);
        }
        *max_tokens = tokens > *max_tokens ? tokens : *max_tokens;
        *max_chunks = (int)j > *max_chunks ? (int)j : *max_chunks;
    }
    const char *k;
    json_t *v;
    json_object_foreach(lens, k, v) *blocks += (json_integer_value(v) + bs - 1) / bs;
    json_decref(lens);
    return 0;
}

static void print_row(const float *row, int vocab)
{
    putchar('[');
    for (int v = 0; v < vocab; v++)
        printf(v ? ",%.9g" : "%.9g", (double)row[v]);
    putchar(']');
}

/* run_step: one model_forward over the chunks of step; prints its JSON. */
static int run_step(struct runner *r, json_t *step)
{
    size_t n_chunks = json_array_size(step), n = 0, nl = 0, j;
    int rc = 0;
    int32_t *ids = r->ids, *pos = r->pos, *seq_of = r->seq_of, *slots = r->slots, *rows = r->rows,
            *tables = r->tables;
    float *logits = r->logits;
    int32_t *row_end = calloc(n_chunks, sizeof(int32_t));
    struct seq **seq_of_chunk = calloc(n_chunks, sizeof *seq_of_chunk);
    json_t *chunk;
    json_array_foreach(step, j, chunk)
    {
        struct seq *s = seq_get(r, (long)json_integer_value(json_object_get(chunk, "seq")));
        json_t *jids = json_object_get(chunk, "ids"), *id;
        const char *want = json_string_value(json_object_get(chunk, "logits"));
        size_t k;
        if (!s || !json_is_array(jids)) {
            rc = die("bad chunk");
            goto out;
        }
        if (want && strcmp(want, "all") && strcmp(want, "last") && strcmp(want, "none")) {
            rc = die2("unknown logits mode ", want);
            goto out;
        }
        for (size_t e = 0; e < j; e++)
            if (seq_of_chunk[e] == s) {
                rc = die("a sequence appears twice in one step");
                goto out;
            }
        seq_of_chunk[j] = s;
        json_array_foreach(jids, k, id)
        {
            int p = s->len++;
            if ((size_t)p / (size_t)r->bs >= r->max_blocks) {
                rc = die("sequence longer than the model");
                goto out;
            }
            if (p % r->bs == 0) {
                if (r->n_free == 0) {
                    rc = die("out of KV blocks");
                    goto out;
                }
                s->blocks[s->n_blocks++] = r->free_blocks[--r->n_free];
            }
            ids[n] = (int32_t)json_integer_value(id);
            pos[n] = p;
            seq_of[n] = (int32_t)j;
            slots[n] = s->blocks[p / r->bs] * r->bs + p % r->bs;
            if (want && (strcmp(want, "all") == 0 ||
                         (strcmp(want, "last") == 0 && k + 1 == json_array_size(jids))))
                rows[nl++] = (int32_t)n;
            n++;
        }
        row_end[j] = (int32_t)nl;
        memcpy(tables + j * r->max_blocks, s->blocks, r->max_blocks * sizeof(int32_t));
    }
    struct model_batch b = {n, ids, pos, seq_of, slots, n_chunks, tables, r->max_blocks, nl, rows};
    char err[256];
    rc = model_forward(r->m, &b, logits, err, sizeof err);
    if (rc) {
        rc = die(err);
        goto out;
    }
    int vocab = model_config(r->m)->vocab_size;
    size_t row = 0;
    putchar('[');
    json_array_foreach(step, j, chunk)
    {
        printf("%s{\"seq\":%lld,\"logits\":[", j ? "," : "",
               json_integer_value(json_object_get(chunk, "seq")));
        for (size_t first = row; row < (size_t)row_end[j]; row++) {
            if (row > first)
                putchar(',');
            print_row(logits + row * (size_t)vocab, vocab);
        }
        printf("]}");
    }
    putchar(']');
out:
    free(row_end);
    free(seq_of_chunk);
    return rc;
}

/* shuffle: a fixed scrambled order of the pool's blocks (or ascending). */
static void fill_free_list(struct runner *r, int n_blocks, int shuffle)
{
    for (int i = 0; i < n_blocks; i++)
        r->free_blocks[i] = n_blocks - 1 - i; /* popped from the end: 0, 1, 2, ... */
    uint64_t x = 0x2545f4914f6cdd1dull;
    for (int i = n_blocks - 1; shuffle && i > 0; i--) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int k = (int)(x % (uint64_t)(i + 1));
        int32_t t = r->free_blocks[i];
        r->free_blocks[i] = r->free_blocks[k];
        r->free_blocks[k] = t;
    }
    r->n_free = n_blocks;
}

static int parse_args(int argc, char **argv, const char **dir, int *threads, int *bs,
                      enum backend_simd *simd)
{
    for (int i = 2; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--threads") == 0)
            *threads = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--block-size") == 0)
            *bs = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--simd") == 0) {
            const char *v = argv[++i];
            *simd = strcmp(v, "scalar") == 0 ? BACKEND_SIMD_SCALAR
                    : strcmp(v, "avx2") == 0 ? BACKEND_SIMD_AVX2
                                             : BACKEND_SIMD_AUTO;
        } else
            return die2("unknown argument ", argv[i]);
    }
    *dir = argv[1];
    return 0;
}

static int alloc_buffers(struct runner *r, int max_tokens, int max_chunks)
{
    size_t t = (size_t)max_tokens;
    int vocab = model_config(r->m)->vocab_size;
    r->ids = calloc(t * 5, sizeof(int32_t));
    r->tables = calloc((size_t)max_chunks * r->max_blocks, sizeof(int32_t));
    r->logits = malloc(t * (size_t)vocab * sizeof(float));
    if (!r->ids || !r->tables || !r->logits)
        return die("out of memory");
    r->pos = r->ids + t;
    r->seq_of = r->pos + t;
    r->slots = r->seq_of + t;
    r->rows = r->slots + t;
    return 0;
}

static int run(struct runner *r, json_t *in, const char *dir, int threads, int bs,
               enum backend_simd simd, struct backend **be)
{
    json_t *steps = json_object_get(in, "steps");
    int max_tokens, max_chunks;
    long need;
    if (!json_is_array(steps) || schedule_sizes(steps, bs, &max_tokens, &max_chunks, &need))
        return die("stdin: expected {\"steps\": [[chunk, ...], ...]}");
    json_t *nb = json_object_get(in, "num_blocks");
    int n_blocks = nb ? (int)json_integer_value(nb) : (int)need;
    char err[512];
    int rc = backend_cpu_new(threads, simd, be);
    if (rc)
        return die2("cannot start the CPU backend: ", err_name(rc));
    struct model_opts o = {.backend = *be,
                           .block_size = bs,
                           .num_blocks = n_blocks,
                           .max_batch_tokens = max_tokens,
                           .max_seqs = max_chunks,
                           .max_logits = max_tokens};
    if ((rc = model_load(dir, &o, &r->m, err, sizeof err)) != 0)
        return die(err);
    r->bs = bs;
    r->max_blocks = model_max_blocks(r->m);
    r->free_blocks = calloc((size_t)n_blocks, sizeof(int32_t));
    if (!r->free_blocks || alloc_buffers(r, max_tokens, max_chunks))
        return die("out of memory");
    json_t *sh = json_object_get(in, "shuffle_blocks");
    fill_free_list(r, n_blocks, !json_is_false(sh));
    printf("{\"steps\":[");
    size_t i;
    json_t *step;
    json_array_foreach(steps, i, step)
    {
        if (i)
            putchar(',');
        if (run_step(r, step))
            return 1;
    }
    printf("]}\n");
    return 0;
}

int main(int argc, char **argv)
{
    const char *dir = NULL;
    int threads = 2, bs = 16;
    enum backend_simd simd = BACKEND_SIMD_AUTO;
    if (argc < 2 || parse_args(argc, argv, &dir, &threads, &bs, &simd))
        return argc < 2 ? die("usage: forward_runner MODEL_DIR [--threads N] "
                              "[--block-size B] [--simd auto|scalar|avx2]")
                        : 1;
    json_error_t jerr;
    json_t *in = json_loadf(stdin, 0, &jerr);
    if (!in)
        return die2("stdin: ", jerr.text);
    static struct runner r;
    struct backend *be = NULL;
    int rc = run(&r, in, dir, threads, bs, simd, &be);
    for (int i = 0; i < r.n_seqs; i++)
        free(r.seqs[i].blocks);
    free(r.free_blocks);
    free(r.ids);
    free(r.tables);
    free(r.logits);
    model_free(r.m);
    if (be)
        be->ops->destroy(be);
    json_decref(in);
    return rc;
}
