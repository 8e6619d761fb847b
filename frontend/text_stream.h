/*
 * text_stream: one choice's generated token ids -> the text deltas the HTTP layer sends,
 * with vLLM's stop strings; and the per-token strings of logprobs.
 *
 * Ids arrive a few at a time (one engine message per step). Each id goes through the
 * incremental detokenizer (tok_stream: a delta never ends inside a UTF-8 character), and the
 * text is scanned for the request's stop strings as it grows. The text that could still be
 * the beginning of a stop string is held back, so a stop string split across tokens is never
 * partly sent. When a stop string completes, the text is cut before it (or after it with
 * include_stop_str_in_output), the stream is stopped, and nothing more is emitted.
 *
 * What the concatenated deltas equal, at the end (after text_stream_finish):
 *   T = HF decode(generated ids, skip_special_tokens) when no prompt is given, or
 *   T = decode(prompt + generated)[len(decode(prompt)):] with one (the detokenizer is primed
 *       with the prompt's last ids, as vLLM primes its DecodeStream, so that the first
 *       generated token keeps the leading space a SentencePiece decoder strips from a text's
 *       start);
 * cut at the stop string occurrence that ENDS first in T (ties: the earlier stop in the
 * request's list), counting only occurrences that end in generated text past the text of the
 * first min_tokens tokens. vLLM (StopChecker.check_stop_strings, v1 detokenizer.py update)
 * searches each step's new text for each stop string in list order and takes the first that
 * is found; the two agree whenever one step completes at most one stop string. Ours does not
 * depend on how the ids were grouped into steps. Matching is on bytes (equivalent to vLLM's
 * characters: the text and the stop strings are valid UTF-8).
 *
 * Where this differs from vLLM on purpose:
 * - Held back: only the longest tail that is a proper prefix of a stop string (vLLM holds
 *   back max(len(stop)) - 1 characters always); the final text is the same, deltas come
 *   sooner. Nothing is held back with include_stop_str_in_output, as in vLLM.
 * - At the end, text_stream_finish flushes an unfinished UTF-8 sequence as U+FFFD, as HF
 *   decode does; vLLM's DecodeStream never emits a text ending in U+FFFD, so it drops it.
 * - spaces_between_special_tokens has no effect here: vLLM's fast detokenizer (used for
 *   every tokenizer.json) only changes the text between two added tokens that a decoder
 *   joins with a space, which only a tokenizer.json without a decoder does.
 *
 * EOS and stop_token_ids: vLLM detokenizes the id that ended generation only with
 * include_stop_str_in_output (v1 detokenizer.py update(), "stop_terminated"), and then does
 * not look for stop strings in that step's text. The caller feeds that id or not, then
 * calls text_stream_finish; the id's text (a special token's is usually skipped) is
 * scanned for stop strings here, a difference only when it completes one.
 *
 * Memory: the stop strings and their match tables (5 bytes per stop byte) are copied into
 * the caller's arena at init (client-sized: ERR_LIMIT at the arena's limit). Two malloc'd
 * buffers grow amortized and are reused for every token: the held-back tail (shorter than
 * the longest stop string) and one token's text; tok_stream keeps its own windows (a few
 * tokens; every id only for a decoder chain tok_stream cannot cut, which no supported
 * tokenizer has). So memory does not grow with the generation length, and the time per
 * byte of text is O(number of stop strings). text_stream_deinit frees the buffers and the
 * tok_stream.
 *
 * Threads: a text_stream belongs to one request on one thread; the tokenizer is shared.
 */
#ifndef KILN_TEXT_STREAM_H
#define KILN_TEXT_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/arena.h"
#include "common/buf.h"
#include "common/str.h"
#include "common/tokenizer.h"

#define TEXT_STREAM_MAX_STOP 16  /* stop strings per request (API.md) */
#define TEXT_STREAM_PRIME 8      /* prompt ids the detokenizer is primed with, */
#define TEXT_STREAM_PRIME_MAX 24 /* or up to this many to start at a character's first byte */

struct text_stream_opts {
    bool skip_special;      /* skip_special_tokens */
    bool include_stop;      /* include_stop_str_in_output */
    const struct str *stop; /* [n_stop] stop strings: valid UTF-8, none empty */
    size_t n_stop;          /* <= TEXT_STREAM_MAX_STOP */
    const int32_t *prompt;  /* [n_prompt] the prompt's ids (a suffix is used), or NULL */
    size_t n_prompt;
    size_t min_tokens; /* stop strings ending in the first min_tokens tokens' text
                          do not count (vLLM min_tokens) */
};

/* One stop string and its matcher: kmp[k] is the longest proper border of stop[0..k). */
struct text_stream_stop {
    const char *s;
    size_t n;
    uint32_t *kmp; /* [n + 1], in the arena */
    size_t state;  /* bytes of s that the text ends with now, < n */
};

struct text_stream {
    const struct tokenizer *t;
    struct tok_stream st;
    struct text_stream_stop stop[TEXT_STREAM_MAX_STOP];
    size_t n_stop;
    bool include_stop;
    bool st_live; /* st needs tok_stream_deinit */
    size_t min_tokens;
    size_t skip;      /* bytes of primed prompt text still to drop from st's output */
    struct buf held;  /* generated text not emitted yet: a possible stop string start */
    struct buf piece; /* scratch: one token's text */

    /* read-only for callers */
    size_t n_tokens; /* generated ids fed (up to the one that completed a stop string) */
    size_t n_text;   /* bytes of generated text decoded so far (emitted and held) */
    size_t min_text; /* n_text after the first min_tokens ids */
    size_t n_out;    /* bytes emitted */
    size_t n_chars;  /* code points emitted (Python len of the text sent so far) */
    bool stopped;    /* a stop string matched: feed and finish emit nothing more */
    bool finished;   /* text_stream_finish ran */
    int stop_index;  /* the matched stop string's index in opts.stop, -1 none;
                        stop[stop_index].s, .n is it (stop_reason), in the arena */
};

/*
 * text_stream_init: sets up ts in caller storage for one choice. t must outlive ts; opts's
 * strings are copied (into a), opts's prompt ids are read now only. With prompt ids, the
 * detokenizer is primed with at most the last TEXT_STREAM_PRIME of them (moved back, up to
 * TEXT_STREAM_PRIME_MAX, so that the suffix starts at a character's first byte; vLLM picks
 * the shortest suffix of 4..23 ids whose decode has no U+FFFD) and their text is not
 * emitted. A prompt that ends inside a UTF-8 character is primed without that character's
 * ids: the generated continuation bytes then decode as U+FFFD, as HF decode(generated) does.
 * Returns 0, ERR_INVAL (more than TEXT_STREAM_MAX_STOP stops, an empty or non-UTF-8 stop),
 * ERR_LIMIT (a's limit), ERR_NOMEM. Call text_stream_deinit in every case.
 */
int text_stream_init(struct text_stream *ts, const struct tokenizer *t,
                     const struct text_stream_opts *opts, struct arena *a);

/* text_stream_deinit: frees what ts holds (not the arena's memory). Harmless twice. */
void text_stream_deinit(struct text_stream *ts);

/*
 * text_stream_feed: detokenizes ids[0..n) in order and appends to out the text that can be
 * sent now (possibly none). When a stop string completes, out gets the text up to the cut,
 * ts->stopped is set with ts->stop_index, ts->n_tokens counts the ids up to and including
 * the one that completed it, and the remaining ids (and any later call) are ignored.
 * Returns 0, ERR_LIMIT (out's limit) or ERR_NOMEM; after an error ts is unusable.
 */
int text_stream_feed(struct text_stream *ts, const int32_t *ids, size_t n, struct buf *out);

/*
 * text_stream_finish: end of generation (EOS, stop id, length, abort): appends the text
 * still held back (the detokenizer's unfinished tail included, a stop string may still
 * complete in it: check ts->stopped after). Later feeds are ignored. 0, ERR_LIMIT, ERR_NOMEM.
 */
int text_stream_finish(struct text_stream *ts, struct buf *out);

/* ---- logprobs ---- */

/*
 * text_stream_token_str: appends transformers' tokenizer.decode([id]) (skip_special_tokens
 * False: "<|eot_id|>" shows; an unknown id gives ""), with clean_up_tokenization applied
 * when clean_up (tokenizer_config.json clean_up_tokenization_spaces). A lone byte of a
 * multi-byte character decodes to U+FFFD; a SentencePiece "▁the" decodes to "the" (the
 * decoder strips a text's leading space). vLLM shows this for a completions echo token
 * without logprobs (serving_completion: tokenizer.decode(token_id)).
 * Returns 0, ERR_LIMIT or ERR_NOMEM.
 */
int text_stream_token_str(const struct tokenizer *t, int32_t id, bool clean_up, struct buf *out);

/*
 * text_stream_logprob_token: appends vLLM's logprob `token` string (Logprob.decoded_token)
 * for cand[i], where cand[0..n_cand) are one position's ids as the engine sends them (the
 * sampled or prompt token first, then the top ones by rank) and prev is the sampled id of
 * the previous generated position (-1 for the first one and for prompt positions). This is
 * vllm/v1/engine/logprobs.py: convert_ids_list_to_tokens (decode([id]) each) then
 * _verify_tokens / _correct_decoded_token: a string ending in U+FFFD is replaced by
 * decode([cand[i-1], cand[i]]) when i > 0 and that does not end in U+FFFD, else by
 * decode([prev, cand[i-1], cand[i]]) (or [prev, cand[i]] for i == 0) likewise, else by "".
 * So a byte-fallback <0xE2> or a byte-level fragment shows "" unless the neighbour completes
 * the character, and then shows the whole character (and that neighbour's text).
 * The chat `bytes` field is the UTF-8 of this string (vLLM: token.encode("utf-8")), i.e.
 * its bytes as unsigned values. Returns 0, ERR_INVAL (i >= n_cand), ERR_LIMIT, ERR_NOMEM.
 */
int text_stream_logprob_token(const struct tokenizer *t, const int32_t *cand, size_t n_cand,
                              size_t i, int32_t prev, bool clean_up, struct buf *out);

/*
 * text_stream_text_offsets: completions' text_offset, vLLM's way
 * (serving_completion._create_completion_logprobs): off[0] = initial and off[k] = off[k-1] +
 * the code points of token string k-1, for the n token strings tok[k][0..tok_n[k]) (the
 * logprob `tokens` of one response or chunk, echo'd prompt tokens first). vLLM's initial
 * is 0 for a whole response and, in a stream, the code points of the generated text sent
 * before this chunk (ts->n_chars before the chunk's feed; vLLM leaves the echo'd prompt text
 * out of it). The offsets count token strings, not the text: they drift from the text where
 * a token's string differs from its share of it (stripped leading spaces, U+FFFD).
 */
void text_stream_text_offsets(const char *const *tok, const size_t *tok_n, size_t n, size_t initial,
                              size_t *off);

/* text_stream_chars: the code points in s[0..n) (bytes that do not start one are not
 * counted), Python's len() of valid UTF-8. */
size_t text_stream_chars(const char *s, size_t n);

#endif
