/*
 * utf8: strict UTF-8 decoding and encoding, lossy repair of invalid input, and the few
 * Unicode character predicates the tokenizer needs (general categories come from utf8proc).
 * Pure functions, safe from any thread.
 */
#ifndef KILN_UTF8_H
#define KILN_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* utf8_decode: decodes the character at s[0..n). Returns its length (1-4) and sets *cp, or
 * 0 when s does not start with a well-formed character (overlongs, surrogates, values above
 * U+10FFFF and truncated sequences are all ill-formed). n must be > 0. */
size_t utf8_decode(const char *s, size_t n, uint32_t *cp);

/* utf8_encode: writes cp (<= U+10FFFF, not a surrogate) to out; returns its length (1-4). */
size_t utf8_encode(uint32_t cp, char out[4]);

/* utf8_valid: whether s[0..n) is entirely well-formed UTF-8. */
bool utf8_valid(const char *s, size_t n);

/* utf8_append_lossy: appends s[0..n) to out with every ill-formed sequence replaced by
 * U+FFFD, one replacement per maximal subpart (the Unicode/WHATWG practice that Rust's
 * from_utf8_lossy and Python's errors="replace" follow). Returns 0, ERR_LIMIT or ERR_NOMEM. */
int utf8_append_lossy(struct buf *out, const char *s, size_t n);

/* utf8_incomplete_tail: how many of the last bytes of s[0..n) (0-3) form the start of a
 * character that more bytes could complete. 0 when s ends at a character boundary or in
 * bytes that no continuation can make valid. */
size_t utf8_incomplete_tail(const char *s, size_t n);

/* utf8_count: the number of characters in well-formed s[0..n). */
size_t utf8_count(const char *s, size_t n);

/* Unicode predicates on code points. */
bool uc_is_white_space(uint32_t cp); /* the White_Space property (Rust char::is_whitespace) */
bool uc_is_numeric(uint32_t cp);     /* general category N* (Rust char::is_numeric) */
bool uc_is_punctuation(uint32_t cp); /* category P*, or ASCII punctuation */
bool uc_is_word(uint32_t cp); /* a regex \w character: Alphabetic, M*, Nd, Pc, Join_Control */

#endif
