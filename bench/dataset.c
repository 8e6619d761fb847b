/*
 * dataset: the prompts of `kiln bench serve` (see dataset.h), after vLLM's
 * vllm/benchmarks/datasets.py (RandomDataset, ShareGPTDataset, CustomDataset) and
 * dataset_utils.py (gen_prompt_decode_to_target_len, is_valid_sequence).
 *
 * Where kiln differs from vLLM, on purpose:
 *   - the random numbers come from bench/rng.h, not NumPy / Python's random: the same seed
 *     gives other prompts than vLLM's, drawn from the same distributions in the same order;
 *   - random: the vocabulary is tok_n_vocab() (every id, added tokens included; HF's
 *     vocab_size leaves added tokens out) and the allowed ids leave out every id
 *     tok_id_is_special() names (HF: all_special_ids, the special_tokens_map only), ids
 *     that name no token (they would decode to nothing) and tokens whose bytes are not
 *     UTF-8 on their own (byte-fallback <0x80>..<0xFF>, partial byte-level characters):
 *     next to arbitrary neighbours they decode to U+FFFD, which re-encodes to several
 *     tokens, so prompts missed their length by 3x on a byte-fallback vocabulary such as
 *     stories260K's; the ids that extend a prompt that re-encoded short come from the same
 *     allowed set (vLLM: the whole vocabulary);
 *   - sharegpt: entries that are not objects, or whose first two turns have no string
 *     "value", are skipped (vLLM raises); a text of more than 2048 tokens stops being
 *     encoded at 2049, since it can never pass the filters;
 *   - jsonl (vLLM's "custom"): lines in file order, no shuffle, no chat template, repeated in
 *     order (vLLM shuffles, applies the chat template unless --skip-chat-template, and
 *     oversamples at random); prompt_len counts the tokenizer's own special tokens, as
 *     vLLM's len(tokenizer(prompt).input_ids) does;
 *   - negative lengths and num_prompts <= 0 are rejected (vLLM clamps or takes all).
 *
 * As in vLLM, a random prompt may hold any character a token decodes to, NUL included (the
 * byte token <0x00>, GPT-2's "Ā"), and JSON strings may hold \u0000: prompt_n is the length.
 * A JSONL file is checked whole, lines past num_prompts included; only the lines used are
 * tokenized.
 */
#include "bench/dataset.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/rng.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/tokenizer.h"
#include "common/utf8.h"

#define DS_MAX_FILE ((size_t)1 << 30)  /* bytes of a dataset file */
#define DS_MAX_LINE ((size_t)16 << 20) /* bytes of one JSONL line */
#define DS_MAX_PROMPTS 10000000        /* num_prompts */
#define DS_MAX_RANDOM_TOKENS (1 << 22) /* prefix + input tokens of one random prompt */
#define DS_MAX_RETRY 10                /* gen_prompt_decode_to_target_len's max_retry */
#define DS_MIN_LEN 4                   /* is_valid_sequence's defaults */
#define DS_MAX_PROMPT_LEN 1024
#define DS_MAX_TOTAL_LEN 2048

void bench_dataset_opts_default(struct bench_dataset_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->name = "random";
    o->path = NULL;
    o->num_prompts = 1000;
    o->random_input_len = 1024;
    o->random_output_len = 128;
    o->random_range_ratio = 0.0;
    o->random_prefix_len = 0;
    o->sharegpt_output_len = -1;
    o->jsonl_output_len = 256;
    o->seed = 0;
}

void bench_dataset_free(struct bench_dataset *d)
{
    for (size_t i = 0; d->v && i < d->n; i++)
        free(d->v[i].prompt);
    free(d->v);
    d->v = NULL;
    d->n = 0;
    d->token_mismatch = 0;
}

/* ds_count: the number of ids tok encodes text[0..n) to. Past limit (0: none) the count
 * is limit and the encoding stops. 0, ERR_NOMEM. */
static int ds_count(struct tok_enc *enc, const char *text, size_t n, bool add_special, size_t limit,
                    size_t *count)
{
    struct tok_ids ids;
    tok_ids_init(&ids, limit);
    int rc = tok_encode(enc, text, n, add_special, &ids);
    *count = ids.n;
    tok_ids_deinit(&ids);
    if (rc == ERR_LIMIT && limit) {
        *count = limit;
        rc = 0;
    }
    return rc;
}

/* ds_push_sample: appends a copy of text as the next sample of d (d->v has room). */
static int ds_push_sample(struct bench_dataset *d, const char *text, size_t n, int prompt_len,
                          int output_len)
{
    char *p = malloc(n + 1);
    if (!p)
        return ERR_NOMEM;
    memcpy(p, text, n);
    p[n] = '\0';
    d->v[d->n++] = (struct bench_sample){p, n, prompt_len, output_len};
    return 0;
}

/* ---- random ---- */

/* The lengths and ids one random dataset draws from. */
struct ds_random {
    const struct tokenizer *tok;
    struct tok_enc *enc;
    struct rng rng;
    int32_t vocab;
    int32_t *allowed; /* [n_allowed] ids that are neither special nor holes, ascending */
    size_t n_allowed;
    int in_lo, in_hi, out_lo, out_hi;
};

/* One prompt's draws: sampled input length (without the prefix), output length, offset. */
struct ds_draw {
    int in, out;
    int64_t offset;
};

/* ds_random_bounds: vLLM's get_sampling_params intervals and the sample() validation. */
static int ds_random_bounds(const struct bench_dataset_opts *o, struct ds_random *R, char *err,
                            size_t errlen)
{
    double r = o->random_range_ratio;
    if (!(r >= 0.0 && r < 1.0))
        return err_set(err, errlen, ERR_INVAL, "random: range ratio %g is not in [0, 1)", r);
    if (o->random_input_len < 0 || o->random_output_len < 0 || o->random_prefix_len < 0)
        return err_set(err, errlen, ERR_INVAL,
                       "random: input, output and prefix lengths must not be negative");
    size_t num_special;
    int rc = ds_count(R->enc, "", 0, true, 0, &num_special);
    if (rc)
        return err_set(err, errlen, rc, "random: tokenizer: %s", err_name(rc));
    long real = (long)o->random_input_len - (long)num_special;
    real = real < 0 ? 0 : real;
    double in_lo = floor((double)real * (1.0 - r)), in_hi = ceil((double)real * (1.0 + r));
    double out_lo = floor((double)o->random_output_len * (1.0 - r));
    double out_hi = ceil((double)o->random_output_len * (1.0 + r));
    if ((double)o->random_prefix_len + in_lo < 1.0)
        return err_set(err, errlen, ERR_INVAL,
                       "random: input length %d is too small: with %zu special tokens and range "
                       "ratio %g the shortest prompt (prefix + sampled) has %.0f tokens",
                       o->random_input_len, num_special, r, (double)o->random_prefix_len + in_lo);
    if ((double)o->random_prefix_len + in_hi > DS_MAX_RANDOM_TOKENS)
        return err_set(err, errlen, ERR_LIMIT, "random: prompts of up to %.0f tokens (limit %d)",
                       (double)o->random_prefix_len + in_hi, DS_MAX_RANDOM_TOKENS);
    if (out_hi > INT_MAX)
        return err_set(err, errlen, ERR_LIMIT, "random: output lengths up to %.0f tokens", out_hi);
    R->in_lo = (int)in_lo;
    R->in_hi = (int)in_hi;
    R->out_lo = out_lo < 1.0 ? 1 : (int)out_lo;
    R->out_hi = out_hi < 1.0 ? 1 : (int)out_hi;
    return 0;
}

/* ds_random_allowed: every id that is neither special nor a hole and stands for whole
 * UTF-8 characters. */
static int ds_random_allowed(struct ds_random *R, char *err, size_t errlen)
{
    if (R->vocab <= 0)
        return err_set(err, errlen, ERR_INVAL, "random: the tokenizer has no vocabulary");
    R->allowed = malloc((size_t)R->vocab * sizeof(*R->allowed));
    if (!R->allowed)
        return ERR_NOMEM;
    struct buf bytes;
    buf_init(&bytes, 0);
    for (int32_t id = 0; id < R->vocab; id++) {
        size_t n;
        if (tok_id_is_special(R->tok, id) || !tok_id_to_str(R->tok, id, &n))
            continue;
        buf_reset(&bytes);
        if (tok_id_to_bytes(R->tok, id, &bytes) == 0 && utf8_valid(bytes.p, bytes.n))
            R->allowed[R->n_allowed++] = id;
    }
    buf_deinit(&bytes);
    if (R->n_allowed == 0)
        return err_set(err, errlen, ERR_INVAL, "random: the vocabulary has no ordinary tokens");
    return 0;
}

/*
 * ds_random_fit: gen_prompt_decode_to_target_len. Decodes seq to text, re-encodes it, and
 * truncates or extends (random allowed ids) until the text encodes to
 * target ids or DS_MAX_RETRY adjustments were made. On return text holds the prompt, seq its
 * ids, and *mismatch seq->n - target when the tries ran out.
 */
static int ds_random_fit(struct ds_random *R, struct tok_ids *seq, size_t target, struct buf *text,
                         long *mismatch)
{
    *mismatch = 0;
    for (int tries = DS_MAX_RETRY;; tries--) {
        buf_reset(text);
        int rc = tok_decode(R->tok, seq->v, seq->n, false, text);
        if (rc)
            return rc;
        seq->n = 0;
        rc = tok_encode(R->enc, text->p, text->n, false, seq);
        if (rc)
            return rc;
        if (tries <= 0) {
            *mismatch = (long)seq->n - (long)target;
            return 0;
        }
        if (seq->n == target)
            return 0;
        if (seq->n > target)
            seq->n = target;
        while (seq->n < target) {
            rc = tok_ids_push(seq, R->allowed[rng_below(&R->rng, R->n_allowed)]);
            if (rc)
                return rc;
        }
    }
}

/* ds_random_build: the prompts, given the drawn lengths and offsets. */
static int ds_random_build(const struct bench_dataset_opts *o, struct ds_random *R,
                           const struct ds_draw *draws, struct bench_dataset *out)
{
    size_t np = (size_t)o->num_prompts, pl = (size_t)o->random_prefix_len;
    struct tok_ids prefix, seq;
    struct buf text;
    tok_ids_init(&prefix, 0);
    tok_ids_init(&seq, 0);
    buf_init(&text, 0);
    int rc = 0;
    for (size_t j = 0; rc == 0 && j < pl; j++)
        rc = tok_ids_push(&prefix, R->allowed[rng_below(&R->rng, R->n_allowed)]);
    for (size_t i = 0; rc == 0 && i < np; i++) {
        seq.n = 0;
        for (size_t j = 0; rc == 0 && j < pl; j++)
            rc = tok_ids_push(&seq, prefix.v[j]);
        for (size_t j = 0; rc == 0 && j < (size_t)draws[i].in; j++)
            rc = tok_ids_push(&seq, R->allowed[((uint64_t)draws[i].offset + i + j) % R->n_allowed]);
        long mismatch = 0;
        if (rc == 0)
            rc = ds_random_fit(R, &seq, pl + (size_t)draws[i].in, &text, &mismatch);
        if (rc == 0)
            rc = ds_push_sample(out, text.p, text.n, (int)seq.n, draws[i].out);
        out->token_mismatch += mismatch;
    }
    buf_deinit(&text);
    tok_ids_deinit(&seq);
    tok_ids_deinit(&prefix);
    return rc;
}

static int ds_load_random(const struct bench_dataset_opts *o, const struct tokenizer *tok,
                          struct bench_dataset *out, char *err, size_t errlen)
{
    struct ds_random R = {.tok = tok, .vocab = tok_n_vocab(tok)};
    size_t np = (size_t)o->num_prompts;
    struct ds_draw *draws = NULL;
    int rc = ERR_NOMEM;
    R.enc = tok_enc_new(tok);
    if (!R.enc)
        goto fail_enc;
    rc = ds_random_bounds(o, &R, err, errlen);
    if (rc)
        goto fail_bounds;
    rc = ERR_NOMEM;
    draws = malloc(np * sizeof(*draws));
    out->v = calloc(np, sizeof(*out->v));
    if (!draws || !out->v)
        goto fail_alloc;
    rc = ds_random_allowed(&R, err, errlen);
    if (rc)
        goto fail_alloc;
    /* vLLM's order: every input length, every output length, every offset, the prefix */
    rng_seed(&R.rng, o->seed);
    for (size_t i = 0; i < np; i++)
        draws[i].in = (int)rng_int(&R.rng, R.in_lo, R.in_hi);
    for (size_t i = 0; i < np; i++)
        draws[i].out = (int)rng_int(&R.rng, R.out_lo, R.out_hi);
    for (size_t i = 0; i < np; i++)
        draws[i].offset = rng_int(&R.rng, 0, (int64_t)R.vocab - 1);
    rc = ds_random_build(o, &R, draws, out);
    if (rc)
        err_set(err, errlen, rc, "random: building prompt %zu: %s", out->n, err_name(rc));
fail_alloc:
    free(R.allowed);
    free(draws);
fail_bounds:
    tok_enc_free(R.enc);
fail_enc:
    if (rc == ERR_NOMEM)
        err_set(err, errlen, rc, "random: out of memory");
    return rc;
}

/* ---- files ---- */

/* A file read through jansson's callback, stopping past a byte limit. */
struct ds_reader {
    FILE *f;
    size_t n, limit;
    bool over, ioerr;
};

static size_t ds_reader_on_read(void *buffer, size_t buflen, void *data)
{
    struct ds_reader *r = data;
    size_t got = fread(buffer, 1, buflen, r->f);
    if (got == 0 && ferror(r->f)) {
        r->ioerr = true;
        return (size_t)-1;
    }
    r->n += got;
    if (r->n > r->limit) {
        r->over = true;
        return (size_t)-1;
    }
    return got;
}

/* ds_read_file: the whole of path, at most limit bytes, into *text (free()). */
static int ds_read_file(const char *path, size_t limit, char **text, size_t *n, char *err,
                        size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return err_set(err, errlen, ERR_IO, "%s: %s", path, strerror(errno));
    struct buf b;
    buf_init(&b, limit);
    char chunk[65536];
    int rc = 0;
    size_t got;
    while (rc == 0 && (got = fread(chunk, 1, sizeof(chunk), f)) > 0)
        rc = buf_append(&b, chunk, got);
    if (rc == 0 && ferror(f))
        rc = err_set(err, errlen, ERR_IO, "%s: read error", path);
    else if (rc == ERR_LIMIT)
        err_set(err, errlen, rc, "%s: larger than %zu bytes", path, limit);
    else if (rc)
        err_set(err, errlen, rc, "%s: out of memory", path);
    fclose(f);
    if (rc == 0) {
        *text = buf_detach(&b, n);
        if (!*text)
            rc = err_set(err, errlen, ERR_NOMEM, "%s: out of memory", path);
    }
    buf_deinit(&b);
    return rc;
}

/* ---- sharegpt ---- */

/* ds_sharegpt_parse: the file's top-level array into *root. */
static int ds_sharegpt_parse(const char *path, json_t **root, char *err, size_t errlen)
{
    struct ds_reader r = {.f = fopen(path, "rb"), .limit = DS_MAX_FILE};
    if (!r.f)
        return err_set(err, errlen, ERR_IO, "%s: %s", path, strerror(errno));
    json_error_t je;
    *root = json_load_callback(ds_reader_on_read, &r, JSON_ALLOW_NUL, &je);
    fclose(r.f);
    if (r.over || r.ioerr) {
        json_decref(*root);
        *root = NULL;
        return r.over ? err_set(err, errlen, ERR_LIMIT, "%s: larger than %zu bytes", path, r.limit)
                      : err_set(err, errlen, ERR_IO, "%s: read error", path);
    }
    if (!*root)
        return err_set(err, errlen, ERR_PARSE, "%s:%d:%d: %s", path, je.line, je.column, je.text);
    if (!json_is_array(*root)) {
        json_decref(*root);
        *root = NULL;
        return err_set(err, errlen, ERR_PARSE, "%s: expected a JSON array of conversations", path);
    }
    return 0;
}

/* ds_turn: conversations[i].value when it is a string, else NULL. */
static const char *ds_turn(json_t *conv, size_t i, size_t *n)
{
    json_t *v = json_object_get(json_array_get(conv, i), "value");
    if (!json_is_string(v))
        return NULL;
    *n = json_string_length(v);
    return json_string_value(v);
}

/* ds_sharegpt_take: is_valid_sequence over the entries in order, until num_prompts. */
static int ds_sharegpt_take(const struct bench_dataset_opts *o, struct tok_enc *enc, json_t **convs,
                            size_t n_convs, struct bench_dataset *out)
{
    const size_t cap = DS_MAX_TOTAL_LEN + 1; /* past it an entry can never pass */
    bool fixed = o->sharegpt_output_len >= 0;
    for (size_t k = 0; k < n_convs && out->n < (size_t)o->num_prompts; k++) {
        size_t pn, cn, plen, olen = (size_t)o->sharegpt_output_len;
        const char *p = ds_turn(convs[k], 0, &pn), *c = ds_turn(convs[k], 1, &cn);
        if (!p || !c)
            continue;
        int rc = ds_count(enc, p, pn, true, cap, &plen);
        if (rc == 0 && !fixed)
            rc = ds_count(enc, c, cn, true, cap, &olen);
        if (rc)
            return rc;
        if (plen < DS_MIN_LEN || (!fixed && olen < DS_MIN_LEN) || plen > DS_MAX_PROMPT_LEN ||
            plen + olen > DS_MAX_TOTAL_LEN)
            continue;
        rc = ds_push_sample(out, p, pn, (int)plen, (int)olen);
        if (rc)
            return rc;
    }
    return 0;
}

/* ds_oversample: maybe_oversample_requests: copies of samples drawn uniformly (seeded) up
 * to num_prompts. out->v has room for them. */
static int ds_oversample(const struct bench_dataset_opts *o, struct bench_dataset *out)
{
    size_t have = out->n;
    struct rng r;
    rng_seed(&r, o->seed);
    while (out->n < (size_t)o->num_prompts) {
        const struct bench_sample *s = &out->v[rng_below(&r, have)];
        int rc = ds_push_sample(out, s->prompt, s->prompt_n, s->prompt_len, s->output_len);
        if (rc)
            return rc;
    }
    return 0;
}

static int ds_load_sharegpt(const struct bench_dataset_opts *o, const struct tokenizer *tok,
                            struct bench_dataset *out, char *err, size_t errlen)
{
    json_t *root, **convs;
    int rc = ds_sharegpt_parse(o->path, &root, err, errlen);
    if (rc)
        return rc;
    size_t n_convs = 0, n = json_array_size(root);
    struct tok_enc *enc = tok_enc_new(tok);
    convs = malloc((n ? n : 1) * sizeof(*convs));
    out->v = calloc((size_t)o->num_prompts, sizeof(*out->v));
    rc = ERR_NOMEM;
    if (!enc || !convs || !out->v)
        goto fail_alloc;
    /* entries with at least two turns, shuffled (random.shuffle: Fisher-Yates from the end) */
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_object_get(json_array_get(root, i), "conversations");
        if (json_is_array(c) && json_array_size(c) >= 2)
            convs[n_convs++] = c;
    }
    struct rng r;
    rng_seed(&r, o->seed);
    for (size_t i = n_convs; i > 1; i--) {
        size_t j = (size_t)rng_below(&r, i);
        json_t *t = convs[i - 1];
        convs[i - 1] = convs[j];
        convs[j] = t;
    }
    rc = ds_sharegpt_take(o, enc, convs, n_convs, out);
    if (rc == 0 && out->n == 0)
        rc = err_set(err, errlen, ERR_INVAL,
                     "%s: none of its %zu conversations passes the filters (prompt and output "
                     "of at least %d tokens, prompt at most %d, both at most %d)",
                     o->path, n_convs, DS_MIN_LEN, DS_MAX_PROMPT_LEN, DS_MAX_TOTAL_LEN);
    else if (rc == 0)
        rc = ds_oversample(o, out);
fail_alloc:
    if (rc == ERR_NOMEM || rc == ERR_LIMIT)
        err_set(err, errlen, rc, "%s: %s", o->path, err_name(rc));
    free(convs);
    tok_enc_free(enc);
    json_decref(root);
    return rc;
}

/* ---- jsonl ---- */

/* ds_jsonl_line: one line's prompt and output length. 0 or ERR_PARSE. */
static int ds_jsonl_line(const struct bench_dataset_opts *o, const char *s, size_t n, size_t line,
                         json_t **obj, int *output_len, char *err, size_t errlen)
{
    json_error_t je;
    *obj = json_loadb(s, n, JSON_ALLOW_NUL, &je);
    if (!*obj)
        return err_set(err, errlen, ERR_PARSE, "%s:%zu: %s", o->path, line, je.text);
    if (!json_is_object(*obj))
        return err_set(err, errlen, ERR_PARSE, "%s:%zu: expected a JSON object", o->path, line);
    if (!json_is_string(json_object_get(*obj, "prompt")))
        return err_set(err, errlen, ERR_PARSE, "%s:%zu: \"prompt\" must be a string", o->path,
                       line);
    if (o->jsonl_output_len >= 0) {
        *output_len = o->jsonl_output_len;
        return 0;
    }
    json_t *t = json_object_get(*obj, "output_tokens");
    if (!json_is_integer(t) || json_integer_value(t) < 1 || json_integer_value(t) > INT_MAX)
        return err_set(err, errlen, ERR_PARSE,
                       "%s:%zu: \"output_tokens\" must be an integer >= 1 (no fixed output "
                       "length was given)",
                       o->path, line);
    *output_len = (int)json_integer_value(t);
    return 0;
}

/* ds_blank: whether s[0..n) is all JSON whitespace. */
static bool ds_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return false;
    return true;
}

/* ds_jsonl_lines: parses every line of text; keeps the first num_prompts as samples. */
static int ds_jsonl_lines(const struct bench_dataset_opts *o, struct tok_enc *enc, const char *text,
                          size_t n, struct bench_dataset *out, char *err, size_t errlen)
{
    size_t line = 0;
    for (size_t at = 0; at < n;) {
        const char *s = text + at, *nl = memchr(s, '\n', n - at);
        size_t len = nl ? (size_t)(nl - s) : n - at;
        at += len + 1;
        line++;
        if (len > DS_MAX_LINE)
            return err_set(err, errlen, ERR_LIMIT, "%s:%zu: line longer than %zu bytes", o->path,
                           line, DS_MAX_LINE);
        if (ds_blank(s, len))
            continue;
        json_t *obj;
        int output_len = 0;
        int rc = ds_jsonl_line(o, s, len, line, &obj, &output_len, err, errlen);
        if (rc == 0 && out->n < (size_t)o->num_prompts) {
            json_t *p = json_object_get(obj, "prompt");
            size_t plen;
            rc = ds_count(enc, json_string_value(p), json_string_length(p), true, 0, &plen);
            if (rc == 0 && plen > INT_MAX)
                rc = ERR_LIMIT;
            if (rc == 0)
                rc = ds_push_sample(out, json_string_value(p), json_string_length(p), (int)plen,
                                    output_len);
            if (rc)
                err_set(err, errlen, rc, "%s:%zu: %s", o->path, line, err_name(rc));
        }
        json_decref(obj);
        if (rc)
            return rc;
    }
    return 0;
}

static int ds_load_jsonl(const struct bench_dataset_opts *o, const struct tokenizer *tok,
                         struct bench_dataset *out, char *err, size_t errlen)
{
    char *text;
    size_t n;
    int rc = ds_read_file(o->path, DS_MAX_FILE, &text, &n, err, errlen);
    if (rc)
        return rc;
    struct tok_enc *enc = tok_enc_new(tok);
    out->v = calloc((size_t)o->num_prompts, sizeof(*out->v));
    rc = ERR_NOMEM;
    if (!enc || !out->v) {
        err_set(err, errlen, rc, "%s: out of memory", o->path);
        goto fail_alloc;
    }
    rc = ds_jsonl_lines(o, enc, text, n, out, err, errlen);
    if (rc == 0 && out->n == 0)
        rc = err_set(err, errlen, ERR_INVAL, "%s: no prompts (every line is blank)", o->path);
    /* the lines again, in order, up to num_prompts */
    for (size_t have = out->n, i = 0; rc == 0 && out->n < (size_t)o->num_prompts; i++) {
        const struct bench_sample *s = &out->v[i % have];
        rc = ds_push_sample(out, s->prompt, s->prompt_n, s->prompt_len, s->output_len);
        if (rc)
            err_set(err, errlen, rc, "%s: out of memory", o->path);
    }
fail_alloc:
    tok_enc_free(enc);
    free(text);
    return rc;
}

/* ---- entry ---- */

int bench_dataset_load(const struct bench_dataset_opts *o, const struct tokenizer *tok,
                       struct bench_dataset *out, char *err, size_t errlen)
{
    *out = (struct bench_dataset){0};
    if (err && errlen)
        err[0] = '\0';
    if (o->num_prompts <= 0)
        return err_set(err, errlen, ERR_INVAL, "num_prompts must be > 0 (got %d)", o->num_prompts);
    if (o->num_prompts > DS_MAX_PROMPTS)
        return err_set(err, errlen, ERR_LIMIT, "num_prompts %d is over the limit of %d",
                       o->num_prompts, DS_MAX_PROMPTS);
    const char *name = o->name ? o->name : "random";
    bool file = strcmp(name, "sharegpt") == 0 || strcmp(name, "jsonl") == 0;
    if (file && (!o->path || !*o->path))
        return err_set(err, errlen, ERR_INVAL, "dataset %s needs a file path", name);
    int rc;
    if (strcmp(name, "random") == 0)
        rc = ds_load_random(o, tok, out, err, errlen);
    else if (strcmp(name, "sharegpt") == 0)
        rc = ds_load_sharegpt(o, tok, out, err, errlen);
    else if (strcmp(name, "jsonl") == 0)
        rc = ds_load_jsonl(o, tok, out, err, errlen);
    else
        return err_set(err, errlen, ERR_INVAL, "unknown dataset '%s' (random, sharegpt or jsonl)",
                       name);
    if (rc)
        bench_dataset_free(out);
    return rc;
}
