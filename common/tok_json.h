/*
 * tok_json: the JSON reading helpers of the tokenizer loader. Every error names the file
 * and the field ("tokenizer.json: model.merges[12]: expected \"a b\""), is written to the
 * loader's err buffer, and is returned as a negative ERR_* code. Used by tok_load*.c only.
 */
#ifndef KILN_TOK_JSON_H
#define KILN_TOK_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tok_internal.h"

struct tok_loader {
    struct tokenizer *t;
    const char *file; /* "tokenizer.json" */
    char *err;
    size_t errlen;
    struct tok_rx rx; /* for normalizing added tokens */
    int depth;        /* Sequence nesting */
    /* the model's vocab and merges, left unparsed in the text until they are read */
    const char *text;
    size_t text_n;
    size_t vocab_at, vocab_n, merges_at, merges_n;
};

/* tok_json_load_root: parses tokenizer.json text[0..n) into *root, except model.vocab and
 * model.merges, which the largest files spend most of their size on: their byte ranges are
 * stored in L, to be parsed one at a time (so that the whole tree never exists at once).
 * ERR_PARSE with the position on malformed JSON. */
int tok_json_load_root(struct tok_loader *L, const char *text, size_t n, json_t **root);
/* tok_json_each_member: for the object at text[at..at+len) (a range from load_root), calls
 * fn with each key and value, each parsed alone and freed after the call: no tree of the
 * whole object is ever built. Stops at fn's first non-zero return. */
int tok_json_each_member(struct tok_loader *L, size_t at, size_t len, const char *path,
                         int (*fn)(struct tok_loader *L, void *ctx, const json_t *key,
                                   const json_t *value),
                         void *ctx);
/* tok_json_each_element: the same for the elements of an array; fn gets the index. */
int tok_json_each_element(struct tok_loader *L, size_t at, size_t len, const char *path,
                          int (*fn)(struct tok_loader *L, void *ctx, size_t i, const json_t *value),
                          void *ctx);
/* tok_json_count_elements: an upper bound on the elements of the array at text[at..). */
size_t tok_json_count_elements(const struct tok_loader *L, size_t at, size_t len);

/* tok_json_fail: formats "<file>: <path>: <message>" into the loader's err; returns code. */
int tok_json_fail(struct tok_loader *L, int code, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* tok_json_str: obj[key] as a string. Absent or null: *s = NULL (ERR_PARSE if required). */
int tok_json_str(struct tok_loader *L, const json_t *obj, const char *key, const char *path,
                 bool required, const char **s, size_t *n);
/* tok_json_bool: obj[key] as a bool; absent or null gives def. */
int tok_json_bool(struct tok_loader *L, const json_t *obj, const char *key, const char *path,
                  bool def, bool *out);
/* tok_json_uint: obj[key] as an integer in [0, max]; absent or null gives def. */
int tok_json_uint(struct tok_loader *L, const json_t *obj, const char *key, const char *path,
                  uint64_t def, uint64_t max, uint64_t *out);
/* tok_json_char: obj[key] as a string of exactly one character. */
int tok_json_char(struct tok_loader *L, const json_t *obj, const char *key, const char *path,
                  uint32_t *cp, char enc[4], size_t *enc_n);
/* tok_json_type: obj["type"] (ERR_PARSE when obj is not an object or has no type). */
int tok_json_type(struct tok_loader *L, const json_t *obj, const char *path, const char **type);
/* tok_json_pattern: a {"String": s} or {"Regex": r} pattern, compiled. */
int tok_json_pattern(struct tok_loader *L, const json_t *obj, const char *key, const char *path,
                     struct tok_pattern *p);
/* tok_json_dup: a NUL-terminated copy of s[0..n), or NULL. */
char *tok_json_dup(const char *s, size_t n);

/* The component loaders (tok_load_parts.c). Each appends to the tokenizer's lists. */
int tok_load_normalizer(struct tok_loader *L, const json_t *j, const char *path);
int tok_load_pretokenizer(struct tok_loader *L, const json_t *j, const char *path);
int tok_load_post(struct tok_loader *L, const json_t *j, const char *path);
int tok_load_decoder(struct tok_loader *L, const json_t *j, const char *path);

#endif
