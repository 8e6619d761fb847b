/*
 * tok_internal: the data structures shared by the tokenizer's source files (tok_*.c).
 * Nothing outside common/tok_*.c includes this header; the public API is tokenizer.h.
 *
 * A struct tokenizer is built once by tok_load_* and is immutable afterwards, so any number
 * of threads may encode and decode with it at once. Mutable per-call state (scratch
 * buffers, the BPE word cache, PCRE2 match data) lives in a struct tok_enc, one per thread.
 */
#ifndef KILN_TOK_INTERNAL_H
#define KILN_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "tokenizer.h"

#define TOK_META_CP 0x2581u /* "▁", SentencePiece's space */

/* ---- hashing and maps (tok_map.c) ---- */

uint64_t tok_hash(const void *p, size_t n);

struct tok_str_entry {
    uint32_t off; /* into the pool */
    uint32_t len;
    int32_t id;
    uint32_t hash; /* low bits of tok_hash, to skip most string compares */
};

/* string -> id, built by put calls then finished; lookups after finish only. */
struct tok_strmap {
    char *pool;
    size_t pool_n, pool_cap;
    struct tok_str_entry *e;
    uint32_t n, cap;
    uint32_t *slots; /* entry index + 1, 0 = empty */
    uint32_t mask;
};

void tok_strmap_init(struct tok_strmap *m);
void tok_strmap_deinit(struct tok_strmap *m);
/* tok_strmap_put: adds s -> id, or sets the id of an existing s. 0, ERR_NOMEM or ERR_LIMIT
 * (the pool is addressed with 32-bit offsets). Valid before and after finish. */
int tok_strmap_put(struct tok_strmap *m, const char *s, size_t n, int32_t id);
/* tok_strmap_get: the id of s, or -1. */
int32_t tok_strmap_get(const struct tok_strmap *m, const char *s, size_t n);
/* tok_strmap_entry: the entry of s, or NULL. */
const struct tok_str_entry *tok_strmap_find(const struct tok_strmap *m, const char *s, size_t n);

/* (left id, right id) -> (rank, merged id) */
struct tok_mergemap {
    uint64_t *keys; /* (left << 32 | right); UINT64_MAX = empty */
    uint32_t *rank;
    int32_t *merged;
    uint32_t mask, n;
};

int tok_mergemap_init(struct tok_mergemap *m, size_t expected);
void tok_mergemap_deinit(struct tok_mergemap *m);
/* tok_mergemap_put: inserts or overwrites (a later duplicate pair wins, as in HF). */
void tok_mergemap_put(struct tok_mergemap *m, int32_t a, int32_t b, uint32_t rank, int32_t merged);
/* tok_mergemap_get: 1 and (*rank, *merged) when the pair merges, else 0. */
static inline int tok_mergemap_get(const struct tok_mergemap *m, int32_t a, int32_t b,
                                   uint32_t *rank, int32_t *merged)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    uint32_t i = (uint32_t)(h >> 32) & m->mask;
    for (;;) {
        uint64_t k = m->keys[i];
        if (k == key) {
            *rank = m->rank[i];
            *merged = m->merged[i];
            return 1;
        }
        if (k == UINT64_MAX)
            return 0;
        i = (i + 1) & m->mask;
    }
}

/* ---- regular expressions (tok_regex.c) ---- */

/* A Split/Replace pattern: a literal string or an Oniguruma-syntax regex, both compiled
 * to PCRE2 (UTF, UCP, JIT). */
struct tok_pattern {
    pcre2_code *re; /* NULL for the empty literal, which matches nothing */
};

/* tok_pattern_compile: compiles an Oniguruma-syntax regex (is_regex) or a literal. On
 * failure returns ERR_PARSE with the PCRE2 message and offset in err. */
int tok_pattern_compile(struct tok_pattern *p, const char *s, size_t n, bool is_regex, char *err,
                        size_t errlen);
void tok_pattern_deinit(struct tok_pattern *p);

/* One match span; the find functions produce HF's (offsets, is_match) list covering s. */
struct tok_span {
    uint32_t start, end;
    bool match;
};

struct tok_spans {
    struct tok_span *v;
    size_t n, cap;
};

/* Per-thread PCRE2 matching state. */
struct tok_rx {
    pcre2_match_data *md;
    pcre2_match_context *mc;
    pcre2_jit_stack *js; /* NULL until a match needs more than the default JIT stack */
};

int tok_rx_init(struct tok_rx *rx);
void tok_rx_deinit(struct tok_rx *rx);

/* tok_pattern_find: appends to out (cleared first) HF's (offsets, is_match) list of p over
 * s: alternating non-match and match spans covering s, found with Oniguruma's find-iterator
 * semantics (an empty match right after the previous match is skipped). Returns 0,
 * ERR_NOMEM or ERR_LIMIT (the regex hit its match limit). */
int tok_pattern_find(const struct tok_pattern *p, struct tok_rx *rx, const char *s, size_t n,
                     struct tok_spans *out);
int tok_spans_push(struct tok_spans *sp, uint32_t start, uint32_t end, bool match);

/* ---- added tokens (tok_added.c) ---- */

struct tok_added {
    char *content; /* as written in tokenizer.json */
    size_t content_n;
    char *match; /* what is matched: content, or its normalized form when normalized */
    size_t match_n;
    int32_t id;
    bool special, lstrip, rstrip, single_word, normalized;
};

/* Byte trie for leftmost-longest matching of added tokens. */
struct tok_trie_node {
    uint32_t child;   /* first child, 0 = none */
    uint32_t sibling; /* next sibling, 0 = none */
    int32_t token;    /* index into tokenizer.added, or -1 */
    uint8_t byte;
};

struct tok_trie {
    struct tok_trie_node *nodes; /* nodes[0] is the root */
    uint32_t n, cap;
    uint32_t root_child[256]; /* direct table for the root's children */
    uint8_t first[32];        /* bitmap of bytes that can start a match */
    int n_first;              /* bytes set in first */
    int single_first;         /* the one byte every token starts with, or -1 */
};

int tok_trie_add(struct tok_trie *t, const char *s, size_t n, int32_t token);
void tok_trie_deinit(struct tok_trie *t);

/* One piece of input after added-token splitting: a token, or text to tokenize. */
struct tok_seg {
    uint32_t start, end; /* byte range in the string that was split */
    int32_t token;       /* index into tokenizer.added, or -1 for text */
};

struct tok_segs {
    struct tok_seg *v;
    size_t n, cap;
};

/* tok_added_split: HF's AddedVocabulary::find_matches over s with the given trie: fills out
 * (cleared first) with text and token segments covering s. 0 or ERR_NOMEM. */
int tok_added_split(const struct tokenizer *t, const struct tok_trie *trie, const char *s, size_t n,
                    struct tok_segs *out);

/* ---- normalizers (tok_norm.c) ---- */

enum tok_norm_type {
    TOK_NORM_NFC,
    TOK_NORM_NFD,
    TOK_NORM_NFKC,
    TOK_NORM_NFKD,
    TOK_NORM_LOWERCASE,
    TOK_NORM_STRIP,
    TOK_NORM_STRIP_ACCENTS,
    TOK_NORM_PREPEND,
    TOK_NORM_REPLACE,
};

struct tok_norm {
    enum tok_norm_type type;
    bool left, right; /* Strip */
    char *str;        /* Prepend: the prefix; Replace: the content */
    size_t str_n;
    struct tok_pattern pat; /* Replace */
};

/* tok_normalize: applies every normalizer to s, result in out (cleared first). work is
 * scratch. Returns 0, ERR_NOMEM or ERR_LIMIT. */
int tok_normalize(const struct tokenizer *t, struct tok_rx *rx, const char *s, size_t n,
                  struct buf *out, struct buf *work, struct tok_spans *spans);

/* ---- pre-tokenizers (tok_pretok.c) ---- */

enum tok_pretok_type {
    TOK_PRE_SPLIT,
    TOK_PRE_BYTELEVEL,
    TOK_PRE_METASPACE,
    TOK_PRE_DIGITS,
    TOK_PRE_WHITESPACE,
    TOK_PRE_WHITESPACE_SPLIT,
    TOK_PRE_PUNCTUATION,
    TOK_PRE_BERT,
    TOK_PRE_CHAR_DELIMITER,
};

enum tok_behavior {
    TOK_SPLIT_REMOVED,
    TOK_SPLIT_ISOLATED,
    TOK_SPLIT_MERGED_PREV,
    TOK_SPLIT_MERGED_NEXT,
    TOK_SPLIT_CONTIGUOUS,
};

enum tok_prepend { TOK_PREPEND_ALWAYS, TOK_PREPEND_FIRST, TOK_PREPEND_NEVER };

struct tok_pretok {
    enum tok_pretok_type type;
    enum tok_behavior behavior;
    bool invert;
    struct tok_pattern pat; /* Split, Whitespace, ByteLevel with use_regex */
    bool add_prefix_space;  /* ByteLevel */
    bool use_regex;         /* ByteLevel */
    bool map_bytes;         /* ByteLevel: map to the byte alphabet here (false when last) */
    uint32_t replacement;   /* Metaspace / CharDelimiterSplit: the character */
    char rep[4];            /* its UTF-8 */
    size_t rep_n;
    enum tok_prepend prepend; /* Metaspace */
    bool split;               /* Metaspace */
    bool individual_digits;   /* Digits */
};

/* A word (or a piece being split): bytes in a scratch buffer. */
struct tok_piece {
    uint32_t off, len;
    bool orig0; /* starts at offset 0 of the original input (Metaspace prepend "first") */
};

struct tok_pieces {
    struct tok_piece *v;
    size_t n, cap;
};

/* ---- the BPE model (tok_bpe.c) ---- */

struct tok_bpe {
    struct tok_strmap vocab; /* token string -> id */
    struct tok_mergemap merges;
    size_t merges_cap;     /* merges the table was sized for */
    size_t n_entries;      /* vocabulary size as HF counts it (entries, not max id) */
    int32_t max_id;        /* largest id in the vocabulary */
    char *unk;             /* unk_token, or NULL */
    int32_t unk_id;        /* -1 when unk is NULL or not in the vocabulary */
    char *prefix, *suffix; /* continuing_subword_prefix, end_of_word_suffix (NULL if none) */
    size_t prefix_n, suffix_n;
    bool fuse_unk, byte_fallback, ignore_merges;
    int32_t byte_tok[256]; /* id of "<0xNN>", -1 when absent */
    int32_t *cp_tok;       /* [TOK_CP_DIRECT] id of the one-character token, -1 absent */
    int32_t bl_tok[256];   /* id of the byte-level character of byte b, -2 = not in vocab */
    bool meta_chunks;      /* words may be cut before each "▁" that follows a non-"▁" */
};

#define TOK_CP_DIRECT 0x3000u

int tok_bpe_finish(struct tok_bpe *m, char *err, size_t errlen);
void tok_bpe_deinit(struct tok_bpe *m);

/* ---- decoders (tok_decode.c) ---- */

enum tok_dec_type {
    TOK_DEC_BYTELEVEL,
    TOK_DEC_METASPACE,
    TOK_DEC_BYTE_FALLBACK,
    TOK_DEC_FUSE,
    TOK_DEC_STRIP,
    TOK_DEC_REPLACE,
};

struct tok_dec {
    enum tok_dec_type type;
    uint32_t ch;              /* Strip: content; Metaspace: replacement */
    size_t start, stop;       /* Strip */
    enum tok_prepend prepend; /* Metaspace */
    char *str;                /* Replace: content */
    size_t str_n;
    struct tok_pattern pat; /* Replace */
    bool one_char;          /* Replace: the pattern is one literal character */
};

/* A list of strings, the unit the decoder stages work on. */
struct tok_strlist {
    struct buf bytes;
    uint32_t *off; /* [n + 1]: string i is bytes[off[i] .. off[i+1]) */
    size_t n, cap;
};

void tok_strlist_init(struct tok_strlist *l);
void tok_strlist_deinit(struct tok_strlist *l);
void tok_strlist_clear(struct tok_strlist *l);
int tok_strlist_push(struct tok_strlist *l, const char *s, size_t n);

/* tok_decoders_run: runs decoder stages [from, to) over in -> out. first: whether in[0] is
 * the first token of the whole text (Metaspace drops its leading replacement). */
int tok_decoders_run(const struct tokenizer *t, size_t from, size_t to, bool first,
                     struct tok_strlist *in, struct tok_strlist *out, struct tok_rx *rx);

/* tok_stream_plan: decides, once at load, how tok_stream decodes incrementally for this
 * decoder chain (sets the stream_* fields). */
struct tokenizer;
int tok_stream_plan(struct tokenizer *t);

/* tok_raw_bytes: appends the raw bytes token id stands for to cur (see tok_id_to_bytes);
 * rx and tmp are the caller's scratch. */
int tok_raw_bytes(const struct tokenizer *t, int32_t id, struct tok_rx *rx, struct buf *cur,
                  struct buf *tmp);

/* ---- the tokenizer ---- */

struct tok_dec_entry {
    uint32_t off, len; /* the token's string for decoding, in tokenizer.dec_pool */
    bool special;      /* skipped by skip_special_tokens */
    bool present;
};

struct tokenizer {
    struct tok_norm *norms;
    size_t n_norms;
    struct tok_pretok *pretoks;
    size_t n_pretoks;
    bool bytelevel_words; /* words reach the model as raw bytes to map to the byte alphabet */
    struct tok_bpe bpe;

    struct tok_added *added;
    size_t n_added;
    struct tok_strmap added_map; /* content -> index into added */
    struct tok_trie trie_raw;    /* tokens with normalized = false */
    struct tok_trie trie_norm;   /* tokens with normalized = true, by their normalized form */

    int32_t *post_prefix, *post_suffix; /* ids the post-processor adds around the sequence */
    size_t n_post_prefix, n_post_suffix;

    struct tok_dec *decs;
    size_t n_decs;
    bool has_decoder; /* false: tokens are joined with " " */
    /* incremental decoding plan (tok_stream.c) */
    bool stream_fallback;  /* the chain is not decomposable: re-decode everything */
    size_t stream_stages;  /* stages run on each window; a trailing Strip is left out */
    int stream_strip;      /* index of that trailing Strip, -1 none */
    bool stream_utf8_tail; /* a window may only close at a complete UTF-8 character */
    uint32_t *raw_tail;    /* [n_vocab]: last raw bytes of each token, (n << 24 | b0 b1 b2) */

    int32_t n_vocab;           /* max id + 1 */
    struct tok_dec_entry *dec; /* [n_vocab] */
    char *dec_pool;
    size_t dec_pool_n;

    struct tok_special_ids special_ids;
    size_t max_token_len;
};

/* Per-thread encoder state. */
struct tok_cache_slot {
    uint64_t hash;
    uint32_t key_off, key_len; /* in cache_pool */
    uint32_t ids_off, ids_n;   /* in cache_ids */
};

struct tok_enc {
    const struct tokenizer *t;
    struct tok_rx rx;
    struct buf clean, norm, work, text[2];
    struct tok_segs segs, segs2;
    struct tok_spans spans;
    struct tok_pieces pieces[2];
    /* BPE scratch */
    int32_t *sym_id;
    int32_t *sym_prev, *sym_next;
    uint32_t *sym_len;
    size_t sym_cap;
    uint64_t *heap;
    size_t heap_n, heap_cap;
    struct buf word;
    /* word cache */
    struct tok_cache_slot *cache;
    uint32_t cache_mask, cache_n;
    struct buf cache_pool;
    int32_t *cache_ids;
    size_t cache_ids_n, cache_ids_cap;
};

/* tok_pretokenize: runs the pre-tokenizers over s (orig0: s starts the input); words land in
 * e->pieces[*which], their bytes in e->text[*which]. */
int tok_pretokenize(struct tok_enc *e, const char *s, size_t n, bool orig0, int *which);

/* tok_bpe_word: encodes one word with the BPE model, appending ids to out. bytelevel: the
 * word is raw bytes to be read through the byte-level alphabet. */
int tok_bpe_word(struct tok_enc *e, const char *w, size_t n, bool bytelevel, struct tok_ids *out);

/* The byte-level alphabet (GPT-2's bytes_to_unicode). */
extern const uint16_t tok_byte_to_cp[256];
/* tok_cp_to_byte: the byte for a byte-level code point, or -1. */
int tok_cp_to_byte(uint32_t cp);

#endif
