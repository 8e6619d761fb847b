/*
 * bench_model: the CPU backend against this machine's limits, measured in the same run.
 *
 *   bench_model MODEL_DIR [--threads N] [--prompt-len 512] [--decode-steps 32]
 *
 * Loads MODEL_DIR's config with dummy bf16 weights (--load-format dummy), then measures:
 * prompt processing of one prompt-len-token prompt, decode at batch 1 after it, and decode
 * at batch 16. Beside each: the streaming-read bandwidth (AVX2 loads over a buffer far
 * larger than the caches, all threads) and the peak FLOP/s (independent FMA chains, 256-bit
 * and, on a CPU with AVX-512, 512-bit, all threads), each measured in a child process so
 * that the parent's peak resident memory is the model's own. Prints one line per measurement and the ratios.
 */
#pragma GCC target("avx2,fma")

#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "worker/backend.h"
#include "worker/model.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

struct limit_arg {
    const float *buf;
    size_t n;
    long iters;
    double result;
};

static void *read_loop(void *p)
{
    struct limit_arg *a = p;
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (size_t i = 0; i + 32 <= a->n; i += 32) {
        s0 = _mm256_add_ps(s0, _mm256_load_ps(a->buf + i));
        s1 = _mm256_add_ps(s1, _mm256_load_ps(a->buf + i + 8));
        s2 = _mm256_add_ps(s2, _mm256_load_ps(a->buf + i + 16));
        s3 = _mm256_add_ps(s3, _mm256_load_ps(a->buf + i + 24));
    }
    float out[8];
    _mm256_storeu_ps(out, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    a->result = out[0];
    return NULL;
}

static void *fma_loop(void *p)
{
    struct limit_arg *a = p;
    __m256 acc[12], x = _mm256_set1_ps(0.999f), y = _mm256_set1_ps(1e-6f);
#pragma GCC unroll 12
    for (int k = 0; k < 12; k++)
        acc[k] = _mm256_set1_ps((float)k);
    for (long i = 0; i < a->iters; i++) {
#pragma GCC unroll 12
        for (int k = 0; k < 12; k++)
            acc[k] = _mm256_fmadd_ps(acc[k], x, y);
    }
    float out[8];
    __m256 s = acc[0];
    for (int k = 1; k < 12; k++)
        s = _mm256_add_ps(s, acc[k]);
    _mm256_storeu_ps(out, s);
    a->result = out[0];
    return NULL;
}

/* fma512_loop: fma_loop with 512-bit vectors, for CPUs with AVX-512 (where they may double
 * the rate: AMD Zen 5, Intel server cores). */
__attribute__((target("avx512f"))) static void *fma512_loop(void *p)
{
    struct limit_arg *a = p;
    __m512 acc[12], x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(1e-6f);
#pragma GCC unroll 12
    for (int k = 0; k < 12; k++)
        acc[k] = _mm512_set1_ps((float)k);
    for (long i = 0; i < a->iters; i++) {
#pragma GCC unroll 12
        for (int k = 0; k < 12; k++)
            acc[k] = _mm512_fmadd_ps(acc[k], x, y);
    }
    __m512 s = acc[0];
    for (int k = 1; k < 12; k++)
        s = _mm512_add_ps(s, acc[k]);
    float out[16];
    _mm512_storeu_ps(out, s);
    a->result = out[0];
    return NULL;
}

/* run_threads: fn over n threads, each with its own arg; returns the wall time. */
static double run_threads(void *(*fn)(void *), struct limit_arg *args, int n)
{
    pthread_t t[256];
    double t0 = now();
    for (int i = 1; i < n; i++)
        pthread_create(&t[i], NULL, fn, &args[i]);
    fn(&args[0]);
    for (int i = 1; i < n; i++)
        pthread_join(t[i], NULL);
    return now() - t0;
}

/* measure_limits: bandwidth (bytes/s) and FMA peak (FLOP/s), best of several runs. */
static void measure_limits(int threads, double *bw, double *flops)
{
    size_t bytes = (size_t)1 << 30, n = bytes / sizeof(float);
    float *buf = aligned_alloc(64, bytes);
    for (size_t i = 0; i < n; i++)
        buf[i] = (float)(i & 1023);
    struct limit_arg a[256];
    *bw = 0;
    for (int rep = 0; rep < 5; rep++) {
        for (int i = 0; i < threads; i++)
            a[i] = (struct limit_arg){buf + n / (size_t)threads * (size_t)i,
                                      n / (size_t)threads / 32 * 32, 0, 0};
        double t = run_threads(read_loop, a, threads);
        if ((double)bytes / t > *bw)
            *bw = (double)bytes / t;
    }
    free(buf);
    *flops = 0;
    for (int rep = 0; rep < 5; rep++) {
        for (int i = 0; i < threads; i++)
            a[i] = (struct limit_arg){NULL, 0, 20000000, 0};
        double t = run_threads(fma_loop, a, threads);
        double f = (double)threads * 20000000.0 * 12 * 8 * 2 / t;
        if (f > *flops)
            *flops = f;
        if (!__builtin_cpu_supports("avx512f"))
            continue;
        for (int i = 0; i < threads; i++)
            a[i] = (struct limit_arg){NULL, 0, 20000000, 0};
        t = run_threads(fma512_loop, a, threads);
        f = (double)threads * 20000000.0 * 12 * 16 * 2 / t;
        if (f > *flops)
            *flops = f;
    }
}

/* limits_in_child: measure_limits in a child process (its memory is not ours). */
static int limits_in_child(int threads, double *bw, double *flops)
{
    int fds[2];
    double r[2] = {0, 0};
    if (pipe(fds))
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        measure_limits(threads, &r[0], &r[1]);
        ssize_t w = write(fds[1], r, sizeof r);
        _exit(w == (ssize_t)sizeof r ? 0 : 1);
    }
    close(fds[1]);
    ssize_t got = read(fds[0], r, sizeof r);
    close(fds[0]);
    waitpid(pid, NULL, 0);
    *bw = r[0];
    *flops = r[1];
    return got == (ssize_t)sizeof r ? 0 : -1;
}

static long peak_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            kb = atol(line + 6);
    if (f)
        fclose(f);
    return kb;
}

struct bseq {
    int32_t *table;
    int len;
};

struct bench {
    struct model *m;
    const struct model_config *c;
    size_t max_blocks;
    int32_t *ids, *pos, *seq_of, *slots, *rows, *tables;
    float *logits;
};

/* step: one forward with `count` new tokens for each of the n sequences s[0..n). */
static int step(struct bench *B, struct bseq **s, int n, int count)
{
    size_t t = 0;
    for (int k = 0; k < n; k++) {
        for (int j = 0; j < count; j++, t++) {
            int p = s[k]->len++;
            B->ids[t] = (int32_t)((p * 7919 + k * 104729) % B->c->vocab_size);
            B->pos[t] = p;
            B->seq_of[t] = k;
            B->slots[t] = s[k]->table[p / 16] * 16 + p % 16;
        }
        B->rows[k] = (int32_t)t - 1;
        memcpy(B->tables + (size_t)k * B->max_blocks, s[k]->table, B->max_blocks * sizeof(int32_t));
    }
    struct model_batch b = {t,         B->ids,    B->pos,        B->seq_of, B->slots,
                            (size_t)n, B->tables, B->max_blocks, (size_t)n, B->rows};
    char err[256];
    int rc = model_forward(B->m, &b, B->logits, err, sizeof err);
    if (rc)
        fprintf(stderr, "bench_model: %s\n", err);
    return rc;
}

/* setup: workspaces, and block tables: sequence 0 holds the prompt, 1..16 the batch. */
static int setup(struct bench *B, struct bseq *seqs, int n_seqs, int prompt_len, int steps)
{
    size_t mb = B->max_blocks = model_max_blocks(B->m);
    size_t t = (size_t)prompt_len;
    B->ids = calloc(t * 5, sizeof(int32_t));
    B->tables = calloc(16 * mb, sizeof(int32_t));
    B->logits = malloc(16 * (size_t)B->c->vocab_size * sizeof(float));
    if (!B->ids || !B->tables || !B->logits)
        return -1;
    B->pos = B->ids + t;
    B->seq_of = B->pos + t;
    B->slots = B->seq_of + t;
    B->rows = B->slots + t;
    int next = 0;
    for (int k = 0; k < n_seqs; k++) {
        seqs[k].table = calloc(mb, sizeof(int32_t));
        if (!seqs[k].table)
            return -1;
        size_t need = k == 0 ? mb : (size_t)(prompt_len / 16 + steps + 15) / 16;
        for (size_t j = 0; j < need; j++)
            seqs[k].table[j] = next++;
    }
    return 0;
}

struct results {
    double prompt_tps, decode1_tps, decode16_tps;
};

static int run_all(struct bench *B, struct bseq *s, int prompt_len, int steps, struct results *r)
{
    struct bseq *one[1] = {&s[0]}, *many[16];
    double best = 1e30;
    for (int rep = 0; rep < 2; rep++) { /* the first run also touches every page */
        s[0].len = 0;
        double t0 = now();
        if (step(B, one, 1, prompt_len))
            return -1;
        double t = now() - t0;
        best = t < best ? t : best;
    }
    r->prompt_tps = prompt_len / best;
    double t0 = now();
    for (int k = 0; k < steps; k++)
        if (step(B, one, 1, 1))
            return -1;
    r->decode1_tps = steps / (now() - t0);
    for (int k = 0; k < 16; k++)
        many[k] = &s[k + 1];
    if (step(B, many, 16, prompt_len / 16))
        return -1;
    t0 = now();
    for (int k = 0; k < steps; k++)
        if (step(B, many, 16, 1))
            return -1;
    r->decode16_tps = 16.0 * steps / (now() - t0);
    return 0;
}

static void report(const struct bench *B, int threads, int prompt_len, int steps, double bw,
                   double peak, const struct results *r)
{
    const struct model_config *c = B->c;
    double hid = c->hidden_size, ff = c->intermediate_size, hd = c->head_dim;
    double layer = hid * hd * (2.0 * c->num_heads + 2.0 * c->num_kv_heads) + 3.0 * hid * ff;
    double head = (double)c->vocab_size * hid, weights = (double)model_weight_bytes(B->m);
    double streamed = (layer * c->num_layers + head) * 2.0; /* bf16 matrices a step reads */
    double kv_pos = 2.0 * c->num_layers * c->num_kv_heads * hd * sizeof(float);
    double ctx1 = prompt_len + steps / 2.0;
    double attn = 4.0 * c->num_layers * c->num_heads * hd * (prompt_len * (prompt_len + 1) / 2.0);
    double pflops = 2.0 * layer * c->num_layers * prompt_len + 2.0 * head + attn;
    double p_rate = pflops / (prompt_len / r->prompt_tps);
    double d_bytes = streamed + kv_pos * ctx1;
    long rss = peak_rss_kb();
    printf("limits (%d threads): streaming read %.2f GB/s, FMA peak %.1f GFLOP/s\n", threads,
           bw / 1e9, peak / 1e9);
    printf("weights: %.3f GB on the backend, %.3f GB of bf16 matrices read per decode step\n",
           weights / 1e9, streamed / 1e9);
    printf("prompt %d tokens: %.1f tokens/s, %.1f GFLOP/s = %.1f%% of FMA peak (goal 50%%)\n",
           prompt_len, r->prompt_tps, p_rate / 1e9, 100.0 * p_rate / peak);
    printf("decode batch 1 (context %d): %.2f tokens/s, %.2f GB/s = %.1f%% of read bandwidth "
           "(goal 80%%)\n",
           prompt_len, r->decode1_tps, r->decode1_tps * d_bytes / 1e9,
           100.0 * r->decode1_tps * d_bytes / bw);
    printf("decode batch 16 (context %d): %.2f tokens/s = %.2fx batch 1\n", prompt_len / 16,
           r->decode16_tps, r->decode16_tps / r->decode1_tps);
    printf("peak resident memory: %.3f GB = %.1f%% of the weights (goal <= 110%%)\n",
           rss * 1024.0 / 1e9, 100.0 * rss * 1024.0 / weights);
}

int main(int argc, char **argv)
{
    int threads = 0, prompt_len = 512, steps = 32;
    if (argc < 2) {
        fprintf(stderr, "usage: bench_model MODEL_DIR [--threads N] [--prompt-len N] "
                        "[--decode-steps N]\n");
        return 2;
    }
    for (int i = 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--threads") == 0)
            threads = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--prompt-len") == 0)
            prompt_len = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--decode-steps") == 0)
            steps = atoi(argv[i + 1]);
    }
    if (threads <= 0)
        threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (prompt_len < 16 || prompt_len > 8192 || steps < 1 || steps > 4096)
        return fprintf(stderr, "bench_model: bad sizes\n"), 2;
    double bw, peak;
    if (limits_in_child(threads, &bw, &peak))
        return fprintf(stderr, "bench_model: measuring the limits failed\n"), 1;
    struct backend *be;
    struct bench B = {0};
    struct bseq s[17] = {{0}};
    char err[512];
    if (backend_cpu_new(threads, BACKEND_SIMD_AUTO, &be))
        return fprintf(stderr, "bench_model: no backend\n"), 1;
    int len = prompt_len + steps + 16, mb = (len + 15) / 16;
    int blocks = mb + 16 * ((prompt_len / 16 + steps + 15) / 16);
    struct model_opts o = {.backend = be,
                           .dummy = true,
                           .seed = 1,
                           .dummy_dtype = KN_BF16,
                           .block_size = 16,
                           .num_blocks = blocks,
                           .max_batch_tokens = prompt_len,
                           .max_seqs = 16,
                           .max_logits = 16,
                           .max_model_len = len};
    if (model_load(argv[1], &o, &B.m, err, sizeof err))
        return fprintf(stderr, "bench_model: %s\n", err), 1;
    B.c = model_config(B.m);
    struct results r;
    int rc = setup(&B, s, 17, prompt_len, steps) || run_all(&B, s, prompt_len, steps, &r);
    if (!rc)
        report(&B, threads, prompt_len, steps, bw, peak, &r);
    for (int k = 0; k < 17; k++)
        free(s[k].table);
    free(B.ids);
    free(B.tables);
    free(B.logits);
    model_free(B.m);
    be->ops->destroy(be);
    return rc ? 1 : 0;
}
