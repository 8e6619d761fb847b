/*
 * tokenizer: Hugging Face tokenizer.json, reproduced exactly.
 *
 * Loads a model directory's tokenizer.json (+ tokenizer_config.json) and encodes text to
 * token ids and decodes ids to text with the same results as the Hugging Face `tokenizers`
 * library: BPE models (byte-level like GPT-2, Llama 3, Qwen2; SentencePiece-style with
 * byte_fallback like Llama 2, Mistral), normalizers, pre-tokenizers, added and special
 * tokens, post-processors and decoders. WordPiece and Unigram models are rejected at load.
 *
 * Threads: a struct tokenizer is immutable after loading and may be shared by any number
 * of threads. Encoding needs a struct tok_enc (scratch and a word cache), one per thread.
 * A struct tok_stream (incremental detokenizer) belongs to one request.
 *
 * Input text may be any bytes: ill-formed UTF-8 is first repaired to U+FFFD (as Python's
 * errors="replace" does), so encoding never fails on content, only on limits or memory.
 */
#ifndef KILN_TOKENIZER_H
#define KILN_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct tokenizer;
struct tok_enc;

/* Token ids, growable. limit caps n (0 = no cap): a push beyond it fails with ERR_LIMIT. */
struct tok_ids {
    int32_t *v;
    size_t n, cap;
    size_t limit;
};

void tok_ids_init(struct tok_ids *ids, size_t limit);
void tok_ids_deinit(struct tok_ids *ids);
/* tok_ids_push: appends one id, honouring ids->limit. 0, ERR_LIMIT or ERR_NOMEM. */
int tok_ids_push(struct tok_ids *ids, int32_t id);

/* Ids of the tokens named in tokenizer_config.json; -1 when absent. eot is the end-of-turn
 * token of chat models (<|eot_id|>, <|im_end|>, ...) when the vocabulary has one, else eos. */
struct tok_special_ids {
    int32_t bos, eos, pad, unk, eot;
    bool add_bos, add_eos; /* tokenizer_config.json add_bos_token / add_eos_token */
};

/* tok_load_dir: loads DIR/tokenizer.json and, when present, DIR/tokenizer_config.json. A
 * tokenizer.json holding only a relative path to a .json file (a git symbolic link checked
 * out as a plain file) is followed, once. Returns 0 and *out (free with tok_free), or ERR_IO (file), ERR_PARSE (bad JSON or a bad
 * field), ERR_UNSUPPORTED (a component kiln does not implement), ERR_NOMEM, ERR_LIMIT; err
 * then holds a one-line message naming the file and field. */
int tok_load_dir(const char *dir, struct tokenizer **out, char *err, size_t errlen);

/* tok_load_json: the same from memory. config may be NULL (no tokenizer_config.json). */
int tok_load_json(const char *json, size_t n, const char *config, size_t config_n,
                  struct tokenizer **out, char *err, size_t errlen);

void tok_free(struct tokenizer *t);

/* tok_enc_new: per-thread encoder for t (t must outlive it). NULL when out of memory. */
struct tok_enc *tok_enc_new(const struct tokenizer *t);
void tok_enc_free(struct tok_enc *e);

/* tok_encode: encodes text[0..n) and appends the ids to out. add_special: apply the
 * post-processor (BOS/EOS), as HF add_special_tokens. Returns 0, ERR_LIMIT (out->limit
 * reached, or a regex hit its match limit) or ERR_NOMEM; on error out holds a prefix. */
int tok_encode(struct tok_enc *e, const char *text, size_t n, bool add_special,
               struct tok_ids *out);

/* tok_decode: appends the text of ids to out, as HF decode(ids, skip_special_tokens).
 * Unknown ids are skipped, as HF does. The text is valid UTF-8. 0, ERR_LIMIT or ERR_NOMEM. */
int tok_decode(const struct tokenizer *t, const int32_t *ids, size_t n, bool skip_special,
               struct buf *out);

/* ---- per-token views ---- */

/* tok_n_vocab: one more than the largest id (ids may have holes). */
int32_t tok_n_vocab(const struct tokenizer *t);
/* tok_special: the special ids (see struct tok_special_ids). */
const struct tok_special_ids *tok_special(const struct tokenizer *t);
/* tok_id_to_str: the token's string as in the vocabulary ("Ġhello", "▁the", "<0x0A>"), or
 * NULL for an id that names no token. *n gets its length. Points into t. */
const char *tok_id_to_str(const struct tokenizer *t, int32_t id, size_t *n);
/* tok_str_to_id: the id of a token string (added tokens first, then the model), or -1. */
int32_t tok_str_to_id(const struct tokenizer *t, const char *s, size_t n);
/* tok_id_is_special: whether skip_special_tokens drops this id. */
bool tok_id_is_special(const struct tokenizer *t, int32_t id);
/* tok_id_to_bytes: appends the raw bytes this token stands for (byte-level characters
 * mapped back to bytes, "▁" to a space, "<0xNN>" to byte NN; not necessarily UTF-8).
 * ERR_NOTFOUND for an unknown id, else 0, ERR_LIMIT, ERR_NOMEM. */
int tok_id_to_bytes(const struct tokenizer *t, int32_t id, struct buf *out);

/* ---- incremental detokenization ---- */

/* Feed ids one at a time and get text deltas: a delta never ends inside a UTF-8 character,
 * and the concatenation of every delta (flush included) equals tok_decode of all the ids.
 * Text is produced in windows that close at token boundaries where the decoder chain can
 * be cut (a complete UTF-8 character, no open byte-fallback sequence), so each token costs
 * time proportional to its window, usually itself. The one divergence from tok_decode: a
 * run of <0xNN> byte-fallback tokens that is not valid UTF-8 (garbage a model can emit)
 * becomes U+FFFD for its invalid bytes only, where HF replaces every byte of the run,
 * including characters already streamed. */
struct tok_stream {
    const struct tokenizer *t;
    bool skip_special;
    bool started;       /* a window was closed: later windows are not the text's start */
    struct tok_ids win; /* the ids of the open window (unknown and skipped ids left out) */
    uint8_t tail[3];    /* the last raw bytes of the window, to find an open character */
    size_t tail_n;
    size_t strip_left;  /* trailing Strip decoder: leading characters still to drop */
    struct buf held;    /* trailing Strip decoder: trailing characters held back */
    struct buf text;    /* scratch */
    struct tok_ids all; /* fallback plan only: every id so far */
    size_t emitted;     /* fallback plan only: bytes of the decode already returned */
    void *scratch;      /* decoder scratch (string lists, regex state) */
};

/* tok_stream_init: 0 or ERR_NOMEM. Free with tok_stream_deinit. */
int tok_stream_init(struct tok_stream *s, const struct tokenizer *t, bool skip_special);
void tok_stream_deinit(struct tok_stream *s);
/* tok_stream_feed: adds one id and appends the new text, possibly none, to delta. */
int tok_stream_feed(struct tok_stream *s, int32_t id, struct buf *delta);
/* tok_stream_flush: appends what was held back (end of the sequence). */
int tok_stream_flush(struct tok_stream *s, struct buf *delta);

#endif
