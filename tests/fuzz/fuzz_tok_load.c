/*
 * libFuzzer driver: tokenizer.json loading. Any bytes must load or fail with an error
 * message, never crash or leak; a tokenizer that loads must then encode, decode and
 * stream-decode a few strings without trouble.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/buf.h"
#include "common/tokenizer.h"

static void exercise(const struct tokenizer *t)
{
    static const char *const texts[] = {"Hello world! 123", " <s>x</s>  \n\t", "héllo ▁ 😀 中文",
                                        "\xFF\xFE bad"};
    struct tok_enc *e = tok_enc_new(t);
    if (!e)
        return;
    struct tok_ids ids;
    tok_ids_init(&ids, 4096);
    struct buf out;
    buf_init(&out, 1 << 20);
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        ids.n = 0;
        tok_encode(e, texts[i], strlen(texts[i]), true, &ids);
        buf_reset(&out);
        tok_decode(t, ids.v, ids.n, false, &out);
        struct tok_stream st;
        if (tok_stream_init(&st, t, true) == 0) {
            for (size_t k = 0; k < ids.n; k++)
                tok_stream_feed(&st, ids.v[k], &out);
            tok_stream_flush(&st, &out);
        }
        tok_stream_deinit(&st);
    }
    for (int32_t id = 0; id < tok_n_vocab(t) && id < 64; id++) {
        buf_reset(&out);
        tok_id_to_bytes(t, id, &out);
    }
    buf_deinit(&out);
    tok_ids_deinit(&ids);
    tok_enc_free(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tokenizer *t = NULL;
    char err[256];
    if (tok_load_json((const char *)data, size, NULL, 0, &t, err, sizeof err) == 0) {
        exercise(t);
        tok_free(t);
    }
    return 0;
}
