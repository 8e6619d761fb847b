/*
 * cmd_tokenize: `kiln tokenize DIR` and `kiln detokenize DIR`, the tokenizer on the command
 * line. Both read one JSON array from stdin and write one JSON array (one line) to stdout.
 */
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/commands.h"
#include "common/buf.h"
#include "common/cfg.h"
#include "common/err.h"
#include "common/tokenizer.h"

#define STDIN_MAX (1u << 30)

struct tok_opts {
    bool no_special;
    bool skip_special;
    bool stream;
};

static const struct cfg_flag tokenize_flags[] = {
    {"no-special", CFG_BOOL, offsetof(struct tok_opts, no_special), "false", 1, 0, NULL,
     "do not add special tokens (HF add_special_tokens=False)"},
};

static const struct cfg_flag detokenize_flags[] = {
    {"skip-special", CFG_BOOL, offsetof(struct tok_opts, skip_special), "false", 1, 0, NULL,
     "drop special tokens (HF skip_special_tokens=True)"},
    {"stream", CFG_BOOL, offsetof(struct tok_opts, stream), "false", 1, 0, NULL,
     "decode incrementally: print, per input, the array of text deltas"},
};

/* parse_args: flags and the one positional DIR. Returns -1 to go on, else an exit code. */
static int parse_args(const char *usage, const struct cfg_flag *flags, size_t n, int argc,
                      char **argv, struct tok_opts *o, char **dir)
{
    char err[256];
    int npos = 0;
    int rc = cfg_parse(flags, n, o, argc, argv, dir, 1, &npos, err, sizeof err);
    if (rc == CFG_HELP) {
        cfg_print_help(stdout, usage, flags, n);
        return 0;
    }
    if (rc == 0 && npos != 1)
        snprintf(err, sizeof err, "expected one model directory");
    if (rc || npos != 1) {
        fprintf(stderr, "kiln: %s\n", err);
        cfg_print_help(stderr, usage, flags, n);
        return 2;
    }
    return -1;
}

static json_t *read_stdin_json(void)
{
    struct buf b;
    buf_init(&b, STDIN_MAX);
    char chunk[65536];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, stdin)) > 0)
        if (buf_append(&b, chunk, k)) {
            fprintf(stderr, "kiln: input larger than %u bytes\n", STDIN_MAX);
            buf_deinit(&b);
            return NULL;
        }
    json_error_t je;
    json_t *j = json_loadb(b.p, b.n, JSON_ALLOW_NUL, &je);
    buf_deinit(&b);
    if (!j)
        fprintf(stderr, "kiln: stdin: line %d column %d: %s\n", je.line, je.column, je.text);
    else if (!json_is_array(j)) {
        fprintf(stderr, "kiln: stdin: expected a JSON array\n");
        json_decref(j);
        j = NULL;
    }
    return j;
}

static struct tokenizer *load(const char *dir)
{
    struct tokenizer *t;
    char err[512];
    int rc = tok_load_dir(dir, &t, err, sizeof err);
    if (rc) {
        fprintf(stderr, "kiln: %s (%s)\n", err, err_name(rc));
        return NULL;
    }
    return t;
}

int cmd_tokenize(int argc, char **argv)
{
    struct tok_opts o;
    char *dir = NULL;
    int rc = parse_args("usage: kiln tokenize DIR [flags]  < strings.json", tokenize_flags,
                        sizeof tokenize_flags / sizeof *tokenize_flags, argc, argv, &o, &dir);
    if (rc >= 0)
        return rc;
    json_t *in = read_stdin_json();
    struct tokenizer *t = in ? load(dir) : NULL;
    struct tok_enc *e = t ? tok_enc_new(t) : NULL;
    if (!e) {
        json_decref(in);
        tok_free(t);
        return 1;
    }
    struct tok_ids ids;
    tok_ids_init(&ids, 0);
    rc = 0;
    fputc('[', stdout);
    for (size_t i = 0; rc == 0 && i < json_array_size(in); i++) {
        const json_t *s = json_array_get(in, i);
        if (!json_is_string(s)) {
            fprintf(stderr, "kiln: stdin[%zu]: expected a string\n", i);
            rc = ERR_INVAL;
            break;
        }
        ids.n = 0;
        rc = tok_encode(e, json_string_value(s), json_string_length(s), !o.no_special, &ids);
        printf("%s[", i ? "," : "");
        for (size_t k = 0; rc == 0 && k < ids.n; k++)
            printf("%s%d", k ? "," : "", ids.v[k]);
        fputc(']', stdout);
    }
    printf("]\n");
    if (rc)
        fprintf(stderr, "kiln: encode failed: %s\n", err_name(rc));
    tok_ids_deinit(&ids);
    tok_enc_free(e);
    tok_free(t);
    json_decref(in);
    return rc ? 1 : 0;
}

/* read_ids: a JSON array of integers. */
static int read_ids(const json_t *arr, struct tok_ids *ids)
{
    if (!json_is_array(arr))
        return ERR_INVAL;
    ids->n = 0;
    for (size_t k = 0; k < json_array_size(arr); k++) {
        const json_t *v = json_array_get(arr, k);
        if (!json_is_integer(v) || json_integer_value(v) < INT32_MIN ||
            json_integer_value(v) > INT32_MAX)
            return ERR_INVAL;
        if (tok_ids_push(ids, (int32_t)json_integer_value(v)))
            return ERR_NOMEM;
    }
    return 0;
}

/* decode_one: the JSON value for one id array: a string, or with --stream the deltas. */
static json_t *decode_one(const struct tokenizer *t, const struct tok_ids *ids,
                          const struct tok_opts *o, struct buf *text)
{
    buf_reset(text);
    if (!o->stream)
        return tok_decode(t, ids->v, ids->n, o->skip_special, text)
                   ? NULL
                   : json_stringn(text->p, text->n);
    struct tok_stream st;
    json_t *deltas = json_array();
    int rc = tok_stream_init(&st, t, o->skip_special);
    for (size_t k = 0; rc == 0 && k <= ids->n; k++) {
        buf_reset(text);
        rc = k < ids->n ? tok_stream_feed(&st, ids->v[k], text) : tok_stream_flush(&st, text);
        /* json_stringn refuses invalid UTF-8: a delta that splits a character fails here */
        json_t *d = rc ? NULL : json_stringn(text->p, text->n);
        if (!d || json_array_append_new(deltas, d))
            rc = ERR_INVAL;
    }
    tok_stream_deinit(&st);
    if (rc) {
        json_decref(deltas);
        return NULL;
    }
    return deltas;
}

int cmd_detokenize(int argc, char **argv)
{
    struct tok_opts o;
    char *dir = NULL;
    int rc = parse_args("usage: kiln detokenize DIR [flags]  < ids.json", detokenize_flags,
                        sizeof detokenize_flags / sizeof *detokenize_flags, argc, argv, &o, &dir);
    if (rc >= 0)
        return rc;
    json_t *in = read_stdin_json();
    struct tokenizer *t = in ? load(dir) : NULL;
    if (!t) {
        json_decref(in);
        return 1;
    }
    struct tok_ids ids;
    struct buf text;
    tok_ids_init(&ids, 0);
    buf_init(&text, 0);
    json_t *out = json_array();
    for (size_t i = 0; rc < 0 && i < json_array_size(in); i++) {
        if (read_ids(json_array_get(in, i), &ids)) {
            fprintf(stderr, "kiln: stdin[%zu]: expected an array of token ids\n", i);
            rc = 1;
            break;
        }
        json_t *v = decode_one(t, &ids, &o, &text);
        if (!v) {
            fprintf(stderr, "kiln: stdin[%zu]: decode failed (or a delta was not UTF-8)\n", i);
            rc = 1;
            break;
        }
        json_array_append_new(out, v);
    }
    if (rc < 0) {
        json_dumpf(out, stdout, JSON_COMPACT | JSON_ENSURE_ASCII);
        fputc('\n', stdout);
        rc = 0;
    }
    json_decref(out);
    buf_deinit(&text);
    tok_ids_deinit(&ids);
    tok_free(t);
    json_decref(in);
    return rc;
}
