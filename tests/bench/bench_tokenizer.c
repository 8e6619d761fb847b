/*
 * bench_tokenizer: single-thread encode throughput of kiln's tokenizer on a text file, with
 * the tokenizer's load time and resident memory, and the speed of one UTF-8 validation pass
 * over the same text (the least any tokenizer must do: read every byte once) as the limit.
 *
 *   bench_tokenizer MODEL_DIR TEXT_FILE [REPEATS]
 *
 * Prints one line of key=value pairs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/tokenizer.h"
#include "common/utf8.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static long status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t k = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, k) == 0 && line[k] == ':')
            v = atol(line + k + 1);
    if (f)
        fclose(f);
    return v;
}

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)len + 1);
    if (p && fread(p, 1, (size_t)len, f) != (size_t)len) {
        free(p);
        p = NULL;
    }
    fclose(f);
    if (p)
        *n = (size_t)len;
    return p;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_tokenizer MODEL_DIR TEXT_FILE [REPEATS]\n");
        return 2;
    }
    int repeats = argc > 3 ? atoi(argv[3]) : 5;
    long rss0 = status_kb("VmRSS");
    double t0 = now();
    struct tokenizer *t;
    char err[512];
    if (tok_load_dir(argv[1], &t, err, sizeof err)) {
        fprintf(stderr, "bench_tokenizer: %s\n", err);
        return 1;
    }
    double load_s = now() - t0;
    long rss_loaded = status_kb("VmRSS"), hwm_loaded = status_kb("VmHWM");
    size_t n = 0;
    char *text = slurp(argv[2], &n);
    if (!text) {
        fprintf(stderr, "bench_tokenizer: cannot read %s\n", argv[2]);
        return 1;
    }
    struct tok_enc *e = tok_enc_new(t);
    struct tok_ids ids;
    tok_ids_init(&ids, 0);
    double best = 1e30;
    for (int r = 0; r <= repeats; r++) { /* the first run warms up and is not counted */
        ids.n = 0;
        double a = now();
        if (tok_encode(e, text, n, false, &ids)) {
            fprintf(stderr, "bench_tokenizer: encode failed\n");
            return 1;
        }
        double dt = now() - a;
        if (r > 0 && dt < best)
            best = dt;
    }
    double floor_best = 1e30;
    volatile bool ok = true;
    for (int r = 0; r < 20; r++) {
        double a = now();
        ok = ok && utf8_valid(text, n);
        double dt = now() - a;
        if (dt < floor_best)
            floor_best = dt;
    }
    printf("kiln_mb_s=%.2f tokens=%zu load_s=%.3f rss_mb=%.1f peak_rss_mb=%.1f "
           "utf8_scan_mb_s=%.0f\n",
           (double)n / best / 1e6, ids.n, load_s, (double)(rss_loaded - rss0) / 1024.0,
           (double)hwm_loaded / 1024.0, (double)n / floor_best / 1e6);
    tok_ids_deinit(&ids);
    tok_enc_free(e);
    tok_free(t);
    free(text);
    return 0;
}
