/*
 * text_stream_driver: runs frontend/text_stream over cases read from stdin, for the
 * differential test tests/frontend/test_text_stream_hf.py. Usage: text_stream_driver DIR
 * (a tokenizer directory). Input: whitespace-separated words, one command after another;
 * byte strings travel as lowercase hex ("-" for an empty one). Output: one line per command.
 *
 *   T skip include min_tokens n_stop HEX... n_prompt ID... n_gen ID... n_chunks SIZE...
 *       streams the generated ids in chunks of the given sizes (the rest in one last chunk),
 *       then finishes; prints "stopped stop_index n_tokens n_chars n_deltas HEX..." where
 *       each HEX is one feed's (then the finish's) output, or "ERR code" when init fails.
 *   L clean prev i n_cand ID...   prints text_stream_logprob_token(cand, i, prev) as HEX
 *   S clean ID                    prints text_stream_token_str(ID) as HEX
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/arena.h"
#include "common/buf.h"
#include "common/str.h"
#include "common/tokenizer.h"
#include "frontend/text_stream.h"

#define MAXN 65536

static int32_t prompt[MAXN], gen[MAXN];
static size_t chunks[MAXN];

static void put_hex(const char *p, size_t n)
{
    if (n == 0)
        fputs(" -", stdout);
    else
        fputc(' ', stdout);
    for (size_t i = 0; i < n; i++)
        printf("%02x", (unsigned char)p[i]);
}

static int read_hex(char *w, struct buf *out)
{
    buf_reset(out);
    if (strcmp(w, "-") == 0)
        return 0;
    for (size_t i = 0; w[i] && w[i + 1]; i += 2) {
        unsigned v;
        if (sscanf(w + i, "%2x", &v) != 1 || buf_append_byte(out, (char)v))
            return -1;
    }
    return 0;
}

static int read_ids(int32_t *ids, size_t *n)
{
    if (scanf("%zu", n) != 1 || *n > MAXN)
        return -1;
    for (size_t i = 0; i < *n; i++)
        if (scanf("%d", &ids[i]) != 1)
            return -1;
    return 0;
}

static int run_stream(const struct tokenizer *t)
{
    int skip, incl;
    size_t min_tokens, n_stop, n_prompt, n_gen, n_chunks;
    static char word[1 << 16];
    struct str stops[TEXT_STREAM_MAX_STOP + 1];
    struct buf sb[TEXT_STREAM_MAX_STOP + 1];
    if (scanf("%d %d %zu %zu", &skip, &incl, &min_tokens, &n_stop) != 4 ||
        n_stop > TEXT_STREAM_MAX_STOP + 1)
        return -1;
    for (size_t i = 0; i < n_stop; i++) {
        buf_init(&sb[i], 0);
        if (scanf("%65535s", word) != 1 || read_hex(word, &sb[i]))
            return -1;
        stops[i] = (struct str){sb[i].p, sb[i].n};
    }
    if (read_ids(prompt, &n_prompt) || read_ids(gen, &n_gen) || scanf("%zu", &n_chunks) != 1 ||
        n_chunks > MAXN)
        return -1;
    for (size_t i = 0; i < n_chunks; i++)
        if (scanf("%zu", &chunks[i]) != 1)
            return -1;
    struct arena a;
    arena_init(&a, 1 << 20, 0);
    struct text_stream ts;
    struct text_stream_opts o = {.skip_special = skip,
                                 .include_stop = incl,
                                 .stop = stops,
                                 .n_stop = n_stop,
                                 .prompt = n_prompt ? prompt : NULL,
                                 .n_prompt = n_prompt,
                                 .min_tokens = min_tokens};
    int rc = text_stream_init(&ts, t, &o, &a);
    if (rc) {
        printf("ERR %d\n", rc);
    } else {
        struct buf out[MAXN / 64 + 2];
        size_t nd = 0, at = 0;
        for (size_t c = 0; !rc && at < n_gen && nd < MAXN / 64; c++) {
            size_t k = c < n_chunks && chunks[c] ? chunks[c] : n_gen - at;
            k = k < n_gen - at ? k : n_gen - at;
            buf_init(&out[nd], 0);
            rc = text_stream_feed(&ts, gen + at, k, &out[nd++]);
            at += k;
        }
        if (!rc && at < n_gen)
            rc = -1; /* more chunks than out[] holds */
        buf_init(&out[nd], 0);
        if (!rc)
            rc = text_stream_finish(&ts, &out[nd++]);
        printf("%d %d %zu %zu %zu", ts.stopped, ts.stop_index, ts.n_tokens, ts.n_chars, nd);
        for (size_t i = 0; i < nd; i++) {
            put_hex(out[i].p, out[i].n);
            buf_deinit(&out[i]);
        }
        printf(rc ? " ERR%d\n" : "\n", rc);
    }
    text_stream_deinit(&ts);
    arena_deinit(&a);
    for (size_t i = 0; i < n_stop; i++)
        buf_deinit(&sb[i]);
    return 0;
}

static int run_logprob(const struct tokenizer *t, bool lp)
{
    int clean, prev = -1;
    size_t i = 0, n = 1;
    if (scanf("%d", &clean) != 1)
        return -1;
    if (lp) {
        if (scanf("%d %zu", &prev, &i) != 2 || read_ids(gen, &n))
            return -1;
    } else if (scanf("%d", &gen[0]) != 1) {
        return -1;
    }
    struct buf out;
    buf_init(&out, 0);
    int rc = lp ? text_stream_logprob_token(t, gen, n, i, prev, clean, &out)
                : text_stream_token_str(t, gen[0], clean, &out);
    if (rc)
        printf("ERR %d\n", rc);
    else
        put_hex(out.p, out.n), putchar('\n');
    buf_deinit(&out);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: text_stream_driver TOKENIZER_DIR < cases\n");
        return 2;
    }
    char err[256], cmd[8];
    struct tokenizer *t;
    if (tok_load_dir(argv[1], &t, err, sizeof err)) {
        fprintf(stderr, "text_stream_driver: %s\n", err);
        return 1;
    }
    int rc = 0;
    while (rc == 0 && scanf("%7s", cmd) == 1) {
        if (strcmp(cmd, "T") == 0)
            rc = run_stream(t);
        else if (strcmp(cmd, "L") == 0 || strcmp(cmd, "S") == 0)
            rc = run_logprob(t, cmd[0] == 'L');
        else
            rc = -1;
        fflush(stdout);
    }
    tok_free(t);
    if (rc)
        fprintf(stderr, "text_stream_driver: bad input\n");
    return rc ? 1 : 0;
}
