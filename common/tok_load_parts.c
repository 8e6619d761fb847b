/*
 * tok_load_parts: tokenizer.json's normalizer, pre_tokenizer, post_processor and decoder
 * sections. Sequences are flattened into the tokenizer's stage lists (a Sequence of
 * Sequences runs the same stages in the same order). Anything kiln does not implement is
 * refused with ERR_UNSUPPORTED and the field's path.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "tok_json.h"
#include "utf8.h"

#define MAX_DEPTH 32
#define MAX_STAGES 256

static int grow_array(void **v, size_t n, size_t elem)
{
    if (n >= MAX_STAGES)
        return ERR_LIMIT;
    void *p = realloc(*v, (n + 1) * elem);
    if (!p)
        return ERR_NOMEM;
    *v = p;
    memset((char *)p + n * elem, 0, elem);
    return 0;
}

/* for_each_child: runs fn on every element of obj[key] (an array), with paths key[i]. */
static int for_each_child(struct tok_loader *L, const json_t *obj, const char *key,
                          const char *path,
                          int (*fn)(struct tok_loader *, const json_t *, const char *))
{
    const json_t *arr = json_object_get(obj, key);
    if (!json_is_array(arr))
        return tok_json_fail(L, ERR_PARSE, path, "\"%s\" must be an array", key);
    if (++L->depth > MAX_DEPTH)
        return tok_json_fail(L, ERR_LIMIT, path, "Sequence nested too deeply");
    for (size_t i = 0; i < json_array_size(arr); i++) {
        char sub[512];
        snprintf(sub, sizeof sub, "%s.%s[%zu]", path, key, i);
        int rc = fn(L, json_array_get(arr, i), sub);
        if (rc)
            return rc;
    }
    L->depth--;
    return 0;
}

static int behavior(struct tok_loader *L, const json_t *j, const char *path, const char *def,
                    enum tok_behavior *out)
{
    static const char *const names[] = {"Removed", "Isolated", "MergedWithPrevious",
                                        "MergedWithNext", "Contiguous"};
    const char *b;
    int rc = tok_json_str(L, j, "behavior", path, def == NULL, &b, NULL);
    if (rc)
        return rc;
    if (!b)
        b = def;
    for (int i = 0; i < 5; i++)
        if (strcmp(b, names[i]) == 0) {
            *out = (enum tok_behavior)i;
            return 0;
        }
    return tok_json_fail(L, ERR_PARSE, path, "unknown behavior \"%s\"", b);
}

/* ---- normalizers ---- */

int tok_load_normalizer(struct tok_loader *L, const json_t *j, const char *path)
{
    struct tokenizer *t = L->t;
    if (!j || json_is_null(j))
        return 0;
    const char *type;
    int rc = tok_json_type(L, j, path, &type);
    if (rc)
        return rc;
    if (strcmp(type, "Sequence") == 0)
        return for_each_child(L, j, "normalizers", path, tok_load_normalizer);
    if ((rc = grow_array((void **)&t->norms, t->n_norms, sizeof *t->norms)))
        return tok_json_fail(L, rc, path, "too many normalizers");
    struct tok_norm *nm = &t->norms[t->n_norms];
    static const struct {
        const char *name;
        enum tok_norm_type type;
    } simple[] = {{"NFC", TOK_NORM_NFC},
                  {"NFD", TOK_NORM_NFD},
                  {"NFKC", TOK_NORM_NFKC},
                  {"NFKD", TOK_NORM_NFKD},
                  {"Lowercase", TOK_NORM_LOWERCASE},
                  {"StripAccents", TOK_NORM_STRIP_ACCENTS}};
    for (size_t i = 0; i < sizeof simple / sizeof *simple; i++)
        if (strcmp(type, simple[i].name) == 0) {
            nm->type = simple[i].type;
            t->n_norms++;
            return 0;
        }
    const char *s = NULL;
    size_t n = 0;
    if (strcmp(type, "Strip") == 0) {
        nm->type = TOK_NORM_STRIP;
        rc = tok_json_bool(L, j, "strip_left", path, true, &nm->left);
        if (!rc)
            rc = tok_json_bool(L, j, "strip_right", path, true, &nm->right);
    } else if (strcmp(type, "Prepend") == 0) {
        nm->type = TOK_NORM_PREPEND;
        rc = tok_json_str(L, j, "prepend", path, true, &s, &n);
    } else if (strcmp(type, "Replace") == 0) {
        nm->type = TOK_NORM_REPLACE;
        rc = tok_json_str(L, j, "content", path, true, &s, &n);
        if (!rc)
            rc = tok_json_pattern(L, j, "pattern", path, &nm->pat);
    } else {
        return tok_json_fail(L, ERR_UNSUPPORTED, path,
                             "unsupported normalizer \"%s\" (kiln supports NFC, NFD, NFKC, NFKD, "
                             "Lowercase, Strip, StripAccents, Prepend, Replace, Sequence)",
                             type);
    }
    t->n_norms++; /* counted even on error, so that deinit frees what was built */
    if (rc)
        return rc;
    if (s && !(nm->str = tok_json_dup(s, n)))
        return ERR_NOMEM;
    nm->str_n = n;
    return 0;
}

/* ---- pre-tokenizers ---- */

static const char GPT2_REGEX[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+"
                                 "|\\s+(?!\\S)|\\s+";
/* The Whitespace pre-tokenizer's Rust regex \w+|[^\w\s]+, where Rust's \w is Alphabetic, M,
 * Nd, Pc and Join_Control, and \s is White_Space (which tok_regex spells out) */
static const char WHITESPACE_REGEX[] =
    "[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}]+|"
    "[^\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}\\s]+";

static int prepend_scheme(struct tok_loader *L, const json_t *j, const char *path,
                          enum tok_prepend *out)
{
    const char *s;
    bool aps;
    int rc = tok_json_str(L, j, "prepend_scheme", path, false, &s, NULL);
    if (!rc)
        rc = tok_json_bool(L, j, "add_prefix_space", path, true, &aps);
    if (rc)
        return rc;
    if (!s || strcmp(s, "always") == 0)
        *out = TOK_PREPEND_ALWAYS;
    else if (strcmp(s, "first") == 0)
        *out = TOK_PREPEND_FIRST;
    else if (strcmp(s, "never") == 0)
        *out = TOK_PREPEND_NEVER;
    else
        return tok_json_fail(L, ERR_PARSE, path, "unknown prepend_scheme \"%s\"", s);
    if (!aps) { /* the legacy field: false means never */
        if (*out != TOK_PREPEND_NEVER && s)
            return tok_json_fail(L, ERR_PARSE, path,
                                 "add_prefix_space does not match declared prepend_scheme");
        *out = TOK_PREPEND_NEVER;
    }
    return 0;
}

static int pretok_fields(struct tok_loader *L, const json_t *j, const char *path, const char *type,
                         struct tok_pretok *pt)
{
    char msg[256];
    if (strcmp(type, "Split") == 0) {
        pt->type = TOK_PRE_SPLIT;
        int rc = tok_json_pattern(L, j, "pattern", path, &pt->pat);
        if (!rc)
            rc = behavior(L, j, path, NULL, &pt->behavior);
        return rc ? rc : tok_json_bool(L, j, "invert", path, false, &pt->invert);
    }
    if (strcmp(type, "ByteLevel") == 0) {
        pt->type = TOK_PRE_BYTELEVEL;
        int rc = tok_json_bool(L, j, "add_prefix_space", path, true, &pt->add_prefix_space);
        if (!rc)
            rc = tok_json_bool(L, j, "use_regex", path, true, &pt->use_regex);
        pt->map_bytes = true;
        if (rc || !pt->use_regex)
            return rc;
        rc =
            tok_pattern_compile(&pt->pat, GPT2_REGEX, sizeof GPT2_REGEX - 1, true, msg, sizeof msg);
        return rc ? tok_json_fail(L, rc, path, "%s", msg) : 0;
    }
    if (strcmp(type, "Metaspace") == 0) {
        pt->type = TOK_PRE_METASPACE;
        int rc = tok_json_char(L, j, "replacement", path, &pt->replacement, pt->rep, &pt->rep_n);
        if (!rc)
            rc = prepend_scheme(L, j, path, &pt->prepend);
        return rc ? rc : tok_json_bool(L, j, "split", path, true, &pt->split);
    }
    if (strcmp(type, "Digits") == 0) {
        pt->type = TOK_PRE_DIGITS;
        return tok_json_bool(L, j, "individual_digits", path, false, &pt->individual_digits);
    }
    if (strcmp(type, "Punctuation") == 0) {
        pt->type = TOK_PRE_PUNCTUATION;
        return behavior(L, j, path, "Isolated", &pt->behavior);
    }
    if (strcmp(type, "CharDelimiterSplit") == 0) {
        pt->type = TOK_PRE_CHAR_DELIMITER;
        return tok_json_char(L, j, "delimiter", path, &pt->replacement, pt->rep, &pt->rep_n);
    }
    if (strcmp(type, "Whitespace") == 0) {
        pt->type = TOK_PRE_WHITESPACE;
        int rc = tok_pattern_compile(&pt->pat, WHITESPACE_REGEX, sizeof WHITESPACE_REGEX - 1, true,
                                     msg, sizeof msg);
        return rc ? tok_json_fail(L, rc, path, "%s", msg) : 0;
    }
    if (strcmp(type, "WhitespaceSplit") == 0 || strcmp(type, "BertPreTokenizer") == 0) {
        pt->type = type[0] == 'W' ? TOK_PRE_WHITESPACE_SPLIT : TOK_PRE_BERT;
        return 0;
    }
    return tok_json_fail(L, ERR_UNSUPPORTED, path,
                         "unsupported pre-tokenizer \"%s\" (kiln supports Split, ByteLevel, "
                         "Metaspace, Digits, Whitespace, WhitespaceSplit, Punctuation, "
                         "BertPreTokenizer, CharDelimiterSplit, Sequence)",
                         type);
}

int tok_load_pretokenizer(struct tok_loader *L, const json_t *j, const char *path)
{
    struct tokenizer *t = L->t;
    if (!j || json_is_null(j))
        return 0;
    const char *type;
    int rc = tok_json_type(L, j, path, &type);
    if (rc)
        return rc;
    if (strcmp(type, "Sequence") == 0)
        return for_each_child(L, j, "pretokenizers", path, tok_load_pretokenizer);
    if ((rc = grow_array((void **)&t->pretoks, t->n_pretoks, sizeof *t->pretoks)))
        return tok_json_fail(L, rc, path, "too many pre-tokenizers");
    rc = pretok_fields(L, j, path, type, &t->pretoks[t->n_pretoks]);
    t->n_pretoks++;
    return rc;
}

/* ---- post-processors ---- */

static int ids_append(int32_t **v, size_t *n, const int32_t *ids, size_t k, bool front)
{
    if (k == 0)
        return 0;
    int32_t *p = realloc(*v, (*n + k + 1) * sizeof *p);
    if (!p)
        return ERR_NOMEM;
    if (front) {
        memmove(p + k, p, *n * sizeof *p);
        memcpy(p, ids, k * sizeof *p);
    } else {
        memcpy(p + *n, ids, k * sizeof *p);
    }
    *v = p;
    *n += k;
    return 0;
}

/* template_special: the ids of special token `name` in the processor's special_tokens. */
static int template_special(struct tok_loader *L, const json_t *j, const char *name,
                            const char *path, int32_t *ids, size_t *k)
{
    const json_t *st = json_object_get(json_object_get(j, "special_tokens"), name);
    const json_t *arr = json_object_get(st, "ids");
    if (!json_is_array(arr) || json_array_size(arr) > 64)
        return tok_json_fail(L, ERR_PARSE, path,
                             "special token \"%s\" has no ids in special_tokens", name);
    *k = json_array_size(arr);
    for (size_t i = 0; i < *k; i++) {
        const json_t *v = json_array_get(arr, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX)
            return tok_json_fail(L, ERR_PARSE, path, "special token \"%s\": bad id", name);
        ids[i] = (int32_t)json_integer_value(v);
    }
    return 0;
}

/* template_piece: one element of "single": its special-token name, or NULL for $A. */
static int template_piece(struct tok_loader *L, const json_t *p, const char *path,
                          const char **name, char tmp[256])
{
    if (json_is_string(p)) { /* "$A", "$A:0", "[CLS]", "[CLS]:1" */
        const char *s = json_string_value(p);
        size_t n = strcspn(s, ":");
        if (n >= 256)
            return tok_json_fail(L, ERR_PARSE, path, "template piece too long");
        memcpy(tmp, s, n);
        tmp[n] = 0;
        *name = tmp[0] == '$' ? NULL : tmp;
        if (tmp[0] == '$' && strcmp(tmp, "$") && strcmp(tmp, "$A") && strcmp(tmp, "$a") &&
            strspn(tmp + 1, "0123456789") != n - 1)
            return tok_json_fail(L, ERR_PARSE, path, "template piece \"%s\" is not for $A", s);
        return 0;
    }
    const json_t *sp = json_object_get(p, "SpecialToken"), *sq = json_object_get(p, "Sequence");
    if (json_is_object(sp) && json_is_string(json_object_get(sp, "id"))) {
        *name = json_string_value(json_object_get(sp, "id"));
        return 0;
    }
    if (json_is_object(sq)) {
        *name = NULL;
        return 0;
    }
    return tok_json_fail(L, ERR_PARSE, path,
                         "expected {\"SpecialToken\": ...} or {\"Sequence\": ...}");
}

static int load_template(struct tok_loader *L, const json_t *j, const char *path)
{
    struct tokenizer *t = L->t;
    const json_t *single = json_object_get(j, "single");
    if (!json_is_array(single))
        return tok_json_fail(L, ERR_PARSE, path, "\"single\" must be an array");
    int32_t *pre = NULL, *suf = NULL;
    size_t npre = 0, nsuf = 0;
    bool seen_a = false;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < json_array_size(single); i++) {
        const char *name;
        char tmp[256];
        if ((rc = template_piece(L, json_array_get(single, i), path, &name, tmp)))
            break;
        if (!name) {
            if (seen_a)
                rc = tok_json_fail(L, ERR_UNSUPPORTED, path, "\"single\" uses $A twice");
            seen_a = true;
            continue;
        }
        int32_t ids[64];
        size_t k = 0;
        if ((rc = template_special(L, j, name, path, ids, &k)))
            break;
        rc = seen_a ? ids_append(&suf, &nsuf, ids, k, false)
                    : ids_append(&pre, &npre, ids, k, false);
    }
    /* a later processor wraps the output of the earlier ones */
    if (rc == 0)
        rc = ids_append(&t->post_prefix, &t->n_post_prefix, pre, npre, true);
    if (rc == 0)
        rc = ids_append(&t->post_suffix, &t->n_post_suffix, suf, nsuf, false);
    free(pre);
    free(suf);
    return rc;
}

/* load_cls_sep: BertProcessing / RobertaProcessing: cls $A sep. */
static int load_cls_sep(struct tok_loader *L, const json_t *j, const char *path)
{
    struct tokenizer *t = L->t;
    int32_t ids[2];
    const char *keys[2] = {"cls", "sep"};
    for (int i = 0; i < 2; i++) {
        const json_t *pair = json_object_get(j, keys[i]);
        const json_t *id = json_array_get(pair, 1);
        if (!json_is_array(pair) || !json_is_integer(id) || json_integer_value(id) < 0 ||
            json_integer_value(id) > INT32_MAX)
            return tok_json_fail(L, ERR_PARSE, path, "\"%s\" must be [token, id]", keys[i]);
        ids[i] = (int32_t)json_integer_value(id);
    }
    int rc = ids_append(&t->post_prefix, &t->n_post_prefix, &ids[0], 1, true);
    return rc ? rc : ids_append(&t->post_suffix, &t->n_post_suffix, &ids[1], 1, false);
}

int tok_load_post(struct tok_loader *L, const json_t *j, const char *path)
{
    if (!j || json_is_null(j))
        return 0;
    const char *type;
    int rc = tok_json_type(L, j, path, &type);
    if (rc)
        return rc;
    if (strcmp(type, "Sequence") == 0)
        return for_each_child(L, j, "processors", path, tok_load_post);
    if (strcmp(type, "ByteLevel") == 0)
        return 0; /* only moves offsets; ids are unchanged */
    if (strcmp(type, "TemplateProcessing") == 0)
        return load_template(L, j, path);
    if (strcmp(type, "BertProcessing") == 0 || strcmp(type, "RobertaProcessing") == 0)
        return load_cls_sep(L, j, path);
    return tok_json_fail(L, ERR_UNSUPPORTED, path,
                         "unsupported post-processor \"%s\" (kiln supports TemplateProcessing, "
                         "ByteLevel, BertProcessing, RobertaProcessing, Sequence)",
                         type);
}

/* ---- decoders ---- */

static int decoder_fields(struct tok_loader *L, const json_t *j, const char *path, const char *type,
                          struct tok_dec *d)
{
    char enc[4];
    size_t n;
    if (strcmp(type, "ByteLevel") == 0 || strcmp(type, "ByteFallback") == 0 ||
        strcmp(type, "Fuse") == 0) {
        d->type = type[0] == 'F'   ? TOK_DEC_FUSE
                  : type[4] == 'L' ? TOK_DEC_BYTELEVEL
                                   : TOK_DEC_BYTE_FALLBACK;
        return 0;
    }
    if (strcmp(type, "Metaspace") == 0) {
        d->type = TOK_DEC_METASPACE;
        int rc = tok_json_char(L, j, "replacement", path, &d->ch, enc, &n);
        return rc ? rc : prepend_scheme(L, j, path, &d->prepend);
    }
    if (strcmp(type, "Strip") == 0) {
        d->type = TOK_DEC_STRIP;
        uint64_t a, b;
        int rc = tok_json_char(L, j, "content", path, &d->ch, enc, &n);
        if (!rc)
            rc = tok_json_uint(L, j, "start", path, 0, 1u << 20, &a);
        if (!rc)
            rc = tok_json_uint(L, j, "stop", path, 0, 1u << 20, &b);
        d->start = (size_t)a;
        d->stop = (size_t)b;
        return rc;
    }
    if (strcmp(type, "Replace") == 0) {
        d->type = TOK_DEC_REPLACE;
        const char *s;
        int rc = tok_json_str(L, j, "content", path, true, &s, &n);
        if (!rc)
            rc = tok_json_pattern(L, j, "pattern", path, &d->pat);
        if (rc)
            return rc;
        const json_t *lit = json_object_get(json_object_get(j, "pattern"), "String");
        uint32_t cp;
        d->one_char = json_is_string(lit) && json_string_length(lit) > 0 &&
                      utf8_decode(json_string_value(lit), json_string_length(lit), &cp) ==
                          json_string_length(lit);
        d->str_n = n;
        return (d->str = tok_json_dup(s, n)) ? 0 : ERR_NOMEM;
    }
    return tok_json_fail(L, ERR_UNSUPPORTED, path,
                         "unsupported decoder \"%s\" (kiln supports ByteLevel, Metaspace, "
                         "ByteFallback, Fuse, Strip, Replace, Sequence)",
                         type);
}

int tok_load_decoder(struct tok_loader *L, const json_t *j, const char *path)
{
    struct tokenizer *t = L->t;
    if (!j || json_is_null(j))
        return 0;
    t->has_decoder = true;
    const char *type;
    int rc = tok_json_type(L, j, path, &type);
    if (rc)
        return rc;
    if (strcmp(type, "Sequence") == 0)
        return for_each_child(L, j, "decoders", path, tok_load_decoder);
    if ((rc = grow_array((void **)&t->decs, t->n_decs, sizeof *t->decs)))
        return tok_json_fail(L, rc, path, "too many decoders");
    rc = decoder_fields(L, j, path, type, &t->decs[t->n_decs]);
    t->n_decs++;
    return rc;
}
