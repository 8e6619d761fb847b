/*
 * libFuzzer driver: encoding and decoding with real tokenizers. The first input byte picks
 * a tokenizer from the fixtures; the rest is text (any bytes, invalid UTF-8 included). The
 * ids must decode, and the incremental decoder must produce exactly the full decode for
 * tokenizers without byte fallback (see tokenizer.h for the one documented divergence).
 * The same bytes are then read as token ids (random, out of range included) and decoded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/tokenizer.h"
#include "common/utf8.h"

static const char *const names[] = {"tokenizers/gpt2",   "tokenizers/llama3",
                                    "tokenizers/qwen2",  "tokenizers/mistral-v3",
                                    "tokenizers/llama2", "models/stories260K"};
#define N_TOK (sizeof names / sizeof *names)
static struct tokenizer *toks[N_TOK];
static struct tok_enc *encs[N_TOK];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *fx = getenv("KILN_FIXTURES");
    for (size_t i = 0; i < N_TOK; i++) {
        char dir[1024], err[512];
        snprintf(dir, sizeof dir, "%s/%s", fx ? fx : "../shared/fixtures", names[i]);
        if (tok_load_dir(dir, &toks[i], err, sizeof err)) {
            fprintf(stderr, "fuzz_tok_encode: %s\n", err);
            abort();
        }
        encs[i] = tok_enc_new(toks[i]);
    }
    return 0;
}

static void check_stream(const struct tokenizer *t, const int32_t *ids, size_t n, bool skip,
                         bool exact)
{
    struct buf full, inc;
    buf_init(&full, 0);
    buf_init(&inc, 0);
    tok_decode(t, ids, n, skip, &full);
    if (!utf8_valid(full.p, full.n))
        abort();
    struct tok_stream st;
    tok_stream_init(&st, t, skip);
    for (size_t i = 0; i < n; i++) {
        size_t before = inc.n;
        tok_stream_feed(&st, ids[i], &inc);
        if (!utf8_valid(inc.p + before, inc.n - before)) /* half a character emitted */
            abort();
    }
    tok_stream_flush(&st, &inc);
    tok_stream_deinit(&st);
    if (exact && (inc.n != full.n || memcmp(inc.p, full.p, full.n) != 0))
        abort();
    buf_deinit(&full);
    buf_deinit(&inc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t k = data[0] % N_TOK;
    const struct tokenizer *t = toks[k];
    bool byte_fallback = k >= 3; /* mistral-v3, llama2, stories260K */
    struct tok_ids ids;
    tok_ids_init(&ids, 0);
    tok_encode(encs[k], (const char *)data + 1, size - 1, (data[0] & 0x80) != 0, &ids);
    check_stream(t, ids.v, ids.n, false, true);
    check_stream(t, ids.v, ids.n, true, true);
    /* the bytes as ids */
    ids.n = 0;
    for (size_t i = 1; i + 4 <= size; i += 4) {
        int32_t id;
        memcpy(&id, data + i, 4);
        tok_ids_push(&ids, id % (tok_n_vocab(t) + 8));
    }
    check_stream(t, ids.v, ids.n, (data[0] & 0x40) != 0, !byte_fallback);
    tok_ids_deinit(&ids);
    return 0;
}
