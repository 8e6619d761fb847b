/*
 * tok_load: builds a struct tokenizer from tokenizer.json (+ tokenizer_config.json), in
 * the order HF's deserializer does: the components, then the BPE model, then the added
 * tokens (whose ids are assigned as HF assigns them, not read from the file).
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "tok_json.h"
#include "utf8.h"

#define MAX_FILE_BYTES (512u << 20)
#define MAX_ID ((1 << 24) - 1) /* ids above this are refused (real vocabularies: < 300k) */
#define MAX_ADDED 65536

/* ---- the BPE model ---- */

static int vocab_entry(struct tok_loader *L, void *ctx, const json_t *key, const json_t *v)
{
    (void)ctx;
    struct tok_bpe *m = &L->t->bpe;
    const char *k = json_string_value(key);
    size_t kn = json_string_length(key);
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > MAX_ID)
        return tok_json_fail(L, ERR_PARSE, "model.vocab",
                             "the id of \"%.64s\" must be an integer in [0, %d]", k, MAX_ID);
    int32_t id = (int32_t)json_integer_value(v);
    if (tok_strmap_put(&m->vocab, k, kn, id))
        return tok_json_fail(L, ERR_NOMEM, "model.vocab", "out of memory");
    if (id > m->max_id)
        m->max_id = id;
    return 0;
}

/* merge_parts: a merge as "a b" (split on the one space) or ["a", "b"]. */
static int merge_parts(const json_t *mg, const char **a, size_t *an, const char **b, size_t *bn)
{
    if (json_is_string(mg)) {
        const char *s = json_string_value(mg);
        size_t n = json_string_length(mg);
        const char *sp = memchr(s, ' ', n);
        if (!sp || memchr(sp + 1, ' ', n - (size_t)(sp + 1 - s)))
            return ERR_PARSE;
        *a = s, *an = (size_t)(sp - s), *b = sp + 1, *bn = n - *an - 1;
        return 0;
    }
    const json_t *x = json_array_get(mg, 0), *y = json_array_get(mg, 1);
    if (!json_is_array(mg) || json_array_size(mg) != 2 || !json_is_string(x) || !json_is_string(y))
        return ERR_PARSE;
    *a = json_string_value(x), *an = json_string_length(x);
    *b = json_string_value(y), *bn = json_string_length(y);
    return 0;
}

static int merge_entry(struct tok_loader *L, void *ctx, size_t i, const json_t *mg)
{
    struct buf *cat = ctx;
    struct tok_bpe *m = &L->t->bpe;
    char path[64];
    const char *a, *b;
    size_t an, bn;
    if (merge_parts(mg, &a, &an, &b, &bn)) {
        snprintf(path, sizeof path, "model.merges[%zu]", i);
        return tok_json_fail(L, ERR_PARSE, path, "expected \"a b\" or [\"a\", \"b\"]");
    }
    int32_t ia = tok_strmap_get(&m->vocab, a, an), ib = tok_strmap_get(&m->vocab, b, bn);
    if (ia < 0 || ib < 0 || bn < m->prefix_n) {
        snprintf(path, sizeof path, "model.merges[%zu]", i);
        return tok_json_fail(L, ERR_PARSE, path, "merge token \"%.*s\" is not in the vocabulary",
                             (int)(ia < 0 ? (an > 64 ? 64 : an) : (bn > 64 ? 64 : bn)),
                             ia < 0 ? a : b);
    }
    buf_reset(cat);
    if (buf_append(cat, a, an) || buf_append(cat, b + m->prefix_n, bn - m->prefix_n))
        return ERR_NOMEM;
    int32_t im = tok_strmap_get(&m->vocab, cat->p, cat->n);
    if (im < 0) {
        snprintf(path, sizeof path, "model.merges[%zu]", i);
        return tok_json_fail(L, ERR_PARSE, path, "merged token \"%.*s\" is not in the vocabulary",
                             (int)(cat->n > 64 ? 64 : cat->n), cat->p);
    }
    if (i >= m->merges_cap)
        return tok_json_fail(L, ERR_LIMIT, "model.merges", "too many merges");
    tok_mergemap_put(&m->merges, ia, ib, (uint32_t)i, im);
    return 0;
}

/* load_vocab_merges: model.vocab, then model.merges, each read element by element straight
 * from the text (see tok_json_each_member): no JSON tree of either is ever built. */
static int load_vocab_merges(struct tok_loader *L)
{
    struct tok_bpe *m = &L->t->bpe;
    if (!L->vocab_n || !L->merges_n)
        return tok_json_fail(L, ERR_PARSE, "model", "missing field \"%s\"",
                             L->vocab_n ? "merges" : "vocab");
    m->max_id = -1;
    int rc = tok_json_each_member(L, L->vocab_at, L->vocab_n, "model.vocab", vocab_entry, NULL);
    if (rc)
        return rc;
    m->n_entries = m->vocab.n;
    size_t n = tok_json_count_elements(L, L->merges_at, L->merges_n);
    if (n > (1u << 26) || tok_mergemap_init(&m->merges, n))
        return tok_json_fail(L, ERR_LIMIT, "model.merges", "too many merges");
    m->merges_cap = n;
    struct buf cat;
    buf_init(&cat, 0);
    rc = tok_json_each_element(L, L->merges_at, L->merges_n, "model.merges", merge_entry, &cat);
    buf_deinit(&cat);
    return rc;
}

static int dup_affix(struct tok_loader *L, const json_t *model, const char *key, char **out,
                     size_t *n)
{
    const char *s;
    int rc = tok_json_str(L, model, key, "model", false, &s, n);
    if (rc || !s || *n == 0) { /* an empty affix behaves as none */
        *n = 0;
        return rc;
    }
    return (*out = tok_json_dup(s, *n)) ? 0 : ERR_NOMEM;
}

static void release_memory(void)
{
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

static int load_model(struct tok_loader *L, json_t *model)
{
    struct tok_bpe *m = &L->t->bpe;
    const char *type = NULL, *unk;
    if (!json_is_object(model))
        return tok_json_fail(L, ERR_PARSE, "model", "expected an object");
    int rc = tok_json_str(L, model, "type", "model", false, &type, NULL);
    if (rc)
        return rc;
    if (type && strcmp(type, "BPE") != 0)
        return tok_json_fail(L, ERR_UNSUPPORTED, "model.type",
                             "unsupported model \"%s\" (kiln supports BPE)", type);
    const json_t *dropout = json_object_get(model, "dropout");
    if (json_is_number(dropout) && json_number_value(dropout) != 0.0)
        return tok_json_fail(L, ERR_UNSUPPORTED, "model.dropout", "BPE dropout is not supported");
    size_t unk_n;
    if ((rc = tok_json_str(L, model, "unk_token", "model", false, &unk, &unk_n)) ||
        (rc = dup_affix(L, model, "continuing_subword_prefix", &m->prefix, &m->prefix_n)) ||
        (rc = dup_affix(L, model, "end_of_word_suffix", &m->suffix, &m->suffix_n)) ||
        (rc = tok_json_bool(L, model, "fuse_unk", "model", false, &m->fuse_unk)) ||
        (rc = tok_json_bool(L, model, "byte_fallback", "model", false, &m->byte_fallback)) ||
        (rc = tok_json_bool(L, model, "ignore_merges", "model", false, &m->ignore_merges)))
        return rc;
    if (unk && !(m->unk = tok_json_dup(unk, unk_n)))
        return ERR_NOMEM;
    if ((rc = load_vocab_merges(L)))
        return rc;
    return tok_bpe_finish(m, L->err, L->errlen);
}

/* ---- added tokens ---- */

struct added_in {
    const char *content;
    size_t n;
    bool special, lstrip, rstrip, single_word, normalized;
};

static int added_entry(struct tok_loader *L, const json_t *j, size_t i, struct added_in *a)
{
    char path[48];
    snprintf(path, sizeof path, "added_tokens[%zu]", i);
    if (!json_is_object(j))
        return tok_json_fail(L, ERR_PARSE, path, "expected an object");
    int rc = tok_json_str(L, j, "content", path, true, &a->content, &a->n);
    if (!rc)
        rc = tok_json_bool(L, j, "special", path, false, &a->special);
    if (!rc)
        rc = tok_json_bool(L, j, "lstrip", path, false, &a->lstrip);
    if (!rc)
        rc = tok_json_bool(L, j, "rstrip", path, false, &a->rstrip);
    if (!rc)
        rc = tok_json_bool(L, j, "single_word", path, false, &a->single_word);
    if (!rc)
        rc = tok_json_bool(L, j, "normalized", path, !a->special, &a->normalized);
    return rc;
}

/* add_token: HF's AddedVocabulary::add_tokens for one token. */
static int add_token(struct tok_loader *L, const struct added_in *in, int32_t *next_id,
                     struct tok_strmap *special_set)
{
    struct tokenizer *t = L->t;
    int32_t id = tok_strmap_get(&t->added_map, in->content, in->n);
    if (id < 0)
        id = tok_strmap_get(&t->bpe.vocab, in->content, in->n);
    if (id < 0) {
        if (*next_id > MAX_ID)
            return tok_json_fail(L, ERR_LIMIT, "added_tokens", "too many tokens");
        id = (*next_id)++;
    }
    struct tok_added a = {.id = id,
                          .special = in->special,
                          .lstrip = in->lstrip,
                          .rstrip = in->rstrip,
                          .single_word = in->single_word,
                          .normalized = in->normalized};
    a.content = tok_json_dup(in->content, in->n);
    a.content_n = in->n;
    struct buf norm, work;
    struct tok_spans spans = {0};
    buf_init(&norm, 0);
    buf_init(&work, 0);
    int rc = a.content ? 0 : ERR_NOMEM;
    if (rc == 0 && in->normalized && t->n_norms)
        rc = tok_normalize(t, &L->rx, in->content, in->n, &norm, &work, &spans);
    else if (rc == 0)
        rc = buf_append(&norm, in->content, in->n);
    a.match_n = norm.n;
    a.match = buf_detach(&norm, &a.match_n);
    buf_deinit(&work);
    free(spans.v);
    if (rc == 0 && !a.match)
        rc = ERR_NOMEM;
    if (rc == 0)
        rc = tok_strmap_put(&t->added_map, in->content, in->n, id);
    if (rc == 0 && in->special)
        rc = tok_strmap_put(special_set, in->content, in->n, id);
    /* one token per id: a later token with the same id replaces the earlier one */
    size_t k = 0;
    while (k < t->n_added && t->added[k].id != id)
        k++;
    if (rc == 0 && k == t->n_added) {
        struct tok_added *v = realloc(t->added, (t->n_added + 1) * sizeof *v);
        if (v) {
            t->added = v;
            t->n_added++;
        } else {
            rc = ERR_NOMEM;
        }
    } else if (rc == 0) {
        free(t->added[k].content);
        free(t->added[k].match);
    }
    if (rc) {
        free(a.content);
        free(a.match);
        return rc;
    }
    t->added[k] = a;
    return 0;
}

static bool same_props(const struct tok_added *a, const struct added_in *in)
{
    return a->content_n == in->n && memcmp(a->content, in->content, in->n) == 0 &&
           a->special == in->special && a->lstrip == in->lstrip && a->rstrip == in->rstrip &&
           a->single_word == in->single_word && a->normalized == in->normalized;
}

static int load_added(struct tok_loader *L, const json_t *arr, struct tok_strmap *special_set)
{
    struct tokenizer *t = L->t;
    if (!arr || json_is_null(arr))
        return 0;
    if (!json_is_array(arr) || json_array_size(arr) > MAX_ADDED)
        return tok_json_fail(L, ERR_PARSE, "added_tokens", "expected an array of at most %d",
                             MAX_ADDED);
    int32_t next_id = (int32_t)t->bpe.n_entries; /* HF: the model's vocabulary size */
    for (size_t i = 0; i < json_array_size(arr); i++) {
        struct added_in in;
        int rc = added_entry(L, json_array_get(arr, i), i, &in);
        if (rc)
            return rc;
        if (in.n == 0)
            continue;
        int32_t id = tok_strmap_get(&t->added_map, in.content, in.n);
        bool same = false;
        for (size_t k = 0; id >= 0 && k < t->n_added; k++)
            if (t->added[k].id == id)
                same = same_props(&t->added[k], &in);
        if (!same && (rc = add_token(L, &in, &next_id, special_set)))
            return rc;
    }
    for (size_t k = 0; k < t->n_added; k++) {
        const struct tok_added *a = &t->added[k];
        struct tok_trie *trie = a->normalized ? &t->trie_norm : &t->trie_raw;
        if (tok_trie_add(trie, a->match, a->match_n, (int32_t)k))
            return ERR_NOMEM;
        if (a->content_n > t->max_token_len)
            t->max_token_len = a->content_n;
    }
    return 0;
}

/* ---- tokenizer_config.json ---- */

/* config_token: a token named by tokenizer_config.json ("<s>" or {"content": "<s>", ...}). */
static int32_t config_token(const struct tokenizer *t, const json_t *cfg, const char *key)
{
    const json_t *v = json_object_get(cfg, key);
    if (json_is_object(v))
        v = json_object_get(v, "content");
    if (!json_is_string(v))
        return -1;
    return tok_str_to_id(t, json_string_value(v), json_string_length(v));
}

static void load_config(struct tokenizer *t, const json_t *cfg)
{
    struct tok_special_ids *s = &t->special_ids;
    s->bos = config_token(t, cfg, "bos_token");
    s->eos = config_token(t, cfg, "eos_token");
    s->pad = config_token(t, cfg, "pad_token");
    s->unk = config_token(t, cfg, "unk_token");
    if (s->unk < 0)
        s->unk = t->bpe.unk_id;
    s->add_bos = json_is_true(json_object_get(cfg, "add_bos_token"));
    s->add_eos = json_is_true(json_object_get(cfg, "add_eos_token"));
    static const char *const eot[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                                      "<|end_of_turn|>"};
    s->eot = s->eos;
    for (size_t i = 0; i < sizeof eot / sizeof *eot; i++) {
        int32_t id = tok_str_to_id(t, eot[i], strlen(eot[i]));
        if (id >= 0) {
            s->eot = id;
            break;
        }
    }
}

/* ---- the decode table: id -> the string decoding starts from ---- */

static int dec_set(struct tokenizer *t, struct buf *pool, int32_t id, const char *s, size_t n,
                   const struct tok_strmap *special_set)
{
    struct tok_dec_entry *d = &t->dec[id];
    d->off = (uint32_t)pool->n;
    d->len = (uint32_t)n;
    d->present = true;
    d->special = tok_strmap_get(special_set, s, n) >= 0;
    if (pool->n + n > UINT32_MAX)
        return ERR_LIMIT;
    return buf_append(pool, s, n);
}

static int build_dec(struct tokenizer *t, const struct tok_strmap *special_set)
{
    int32_t max = t->bpe.max_id;
    for (size_t k = 0; k < t->n_added; k++)
        if (t->added[k].id > max)
            max = t->added[k].id;
    t->n_vocab = max + 1;
    t->dec = calloc((size_t)t->n_vocab + 1, sizeof *t->dec);
    if (!t->dec)
        return ERR_NOMEM;
    struct buf pool;
    buf_init(&pool, 0);
    int rc = 0;
    /* added tokens first (HF's simple_id_to_token), then the model's vocabulary */
    for (size_t k = 0; rc == 0 && k < t->n_added; k++)
        rc = dec_set(t, &pool, t->added[k].id, t->added[k].match, t->added[k].match_n, special_set);
    const struct tok_strmap *v = &t->bpe.vocab;
    for (uint32_t k = 0; rc == 0 && k < v->n; k++) {
        const struct tok_str_entry *e = &v->e[k];
        if (!t->dec[e->id].present)
            rc = dec_set(t, &pool, e->id, v->pool + e->off, e->len, special_set);
        if (e->len > t->max_token_len)
            t->max_token_len = e->len;
    }
    size_t n;
    t->dec_pool = buf_detach(&pool, &n);
    t->dec_pool_n = n;
    buf_deinit(&pool);
    return rc ? rc : t->dec_pool ? 0 : ERR_NOMEM;
}

/* ---- top level ---- */

static int load_root(struct tok_loader *L, json_t *root, struct tok_strmap *special_set)
{
    struct tokenizer *t = L->t;
    if (!json_is_object(root))
        return tok_json_fail(L, ERR_PARSE, "(root)", "expected an object");
    const json_t *ver = json_object_get(root, "version");
    if (ver && (!json_is_string(ver) || strcmp(json_string_value(ver), "1.0") != 0))
        return tok_json_fail(L, ERR_UNSUPPORTED, "version", "unknown tokenizer version");
    int rc;
    if ((rc = tok_load_normalizer(L, json_object_get(root, "normalizer"), "normalizer")) ||
        (rc = tok_load_pretokenizer(L, json_object_get(root, "pre_tokenizer"), "pre_tokenizer")) ||
        (rc = load_model(L, json_object_get(root, "model"))) ||
        (rc = tok_load_post(L, json_object_get(root, "post_processor"), "post_processor")) ||
        (rc = tok_load_decoder(L, json_object_get(root, "decoder"), "decoder")) ||
        (rc = load_added(L, json_object_get(root, "added_tokens"), special_set)))
        return rc;
    /* ByteLevel as the last pre-tokenizer: leave words as raw bytes, the model maps them */
    if (t->n_pretoks && t->pretoks[t->n_pretoks - 1].type == TOK_PRE_BYTELEVEL) {
        t->pretoks[t->n_pretoks - 1].map_bytes = false;
        t->bytelevel_words = true;
    }
    return build_dec(t, special_set);
}

int tok_load_json(const char *json, size_t n, const char *config, size_t config_n,
                  struct tokenizer **out, char *err, size_t errlen)
{
    *out = NULL;
    if (err && errlen)
        err[0] = 0;
    struct tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return ERR_NOMEM;
    memset(&t->special_ids, 0xFF, sizeof t->special_ids);
    t->special_ids.add_bos = t->special_ids.add_eos = false;
    struct tok_loader L = {.t = t, .file = "tokenizer.json", .err = err, .errlen = errlen};
    struct tok_strmap special_set;
    tok_strmap_init(&special_set);
    json_error_t je;
    json_t *root = NULL;
    int rc = tok_rx_init(&L.rx);
    if (rc == 0)
        rc = tok_json_load_root(&L, json, n, &root);
    if (rc == 0)
        rc = load_root(&L, root, &special_set);
    json_decref(root);
    release_memory();
    if (rc == 0 && config) {
        json_t *cfg = json_loadb(config, config_n, JSON_ALLOW_NUL, &je);
        L.file = "tokenizer_config.json";
        if (!json_is_object(cfg))
            rc = tok_json_fail(&L, ERR_PARSE, "(json)", "line %d column %d: %s", je.line, je.column,
                               cfg ? "expected an object" : je.text);
        else
            load_config(t, cfg);
        json_decref(cfg);
    } else if (rc == 0) {
        t->special_ids.unk = t->bpe.unk_id;
        t->special_ids.eot = t->special_ids.eos;
    }
    if (rc == 0 && tok_stream_plan(t))
        rc = tok_json_fail(&L, ERR_NOMEM, "(stream plan)", "out of memory");
    tok_rx_deinit(&L.rx);
    tok_strmap_deinit(&special_set);
    if (rc) {
        if (rc == ERR_NOMEM && err && errlen && !err[0])
            snprintf(err, errlen, "tokenizer.json: out of memory");
        tok_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

static int read_file(const char *path, size_t max, char **out, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT ? ERR_NOTFOUND : ERR_IO;
    struct stat st;
    int rc = fstat(fileno(f), &st) ? ERR_IO : (uint64_t)st.st_size > max ? ERR_LIMIT : 0;
    char *p = rc ? NULL : malloc((size_t)st.st_size + 1);
    if (rc == 0 && !p)
        rc = ERR_NOMEM;
    if (rc == 0 && fread(p, 1, (size_t)st.st_size, f) != (size_t)st.st_size)
        rc = ERR_IO;
    fclose(f);
    if (rc) {
        free(p);
        return rc;
    }
    p[st.st_size] = 0;
    *out = p;
    *n = (size_t)st.st_size;
    return 0;
}

/* link_target: when text[0..n) is a git symbolic link checked out as a plain file (a short
 * relative path to a .json file, as a clone without symlink support leaves it), writes the
 * target's path, relative to dir, into path and returns true. */
static bool link_target(const char *dir, const char *text, size_t n, char *path, size_t cap)
{
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
        n--;
    if (n < 6 || n > 1024 || text[0] == '/' || memcmp(text + n - 5, ".json", 5) != 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)text[i] < 0x20 || text[i] == '{' || text[i] == '"')
            return false;
    return snprintf(path, cap, "%s/%.*s", dir, (int)n, text) < (int)cap;
}

int tok_load_dir(const char *dir, struct tokenizer **out, char *err, size_t errlen)
{
    char path[4096];
    char *json = NULL, *cfg = NULL;
    size_t n = 0, cn = 0;
    *out = NULL;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    int rc = read_file(path, MAX_FILE_BYTES, &json, &n);
    if (rc == 0 && link_target(dir, json, n, path, sizeof path)) {
        free(json);
        json = NULL;
        rc = read_file(path, MAX_FILE_BYTES, &json, &n);
    }
    if (rc) {
        snprintf(err, errlen, "%s: %s", path,
                 rc == ERR_NOTFOUND ? "no such file"
                 : rc == ERR_LIMIT  ? "file too large"
                                    : strerror(errno));
        return rc == ERR_NOTFOUND ? ERR_IO : rc;
    }
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    int crc = read_file(path, 64u << 20, &cfg, &cn);
    if (crc && crc != ERR_NOTFOUND) {
        snprintf(err, errlen, "%s: cannot read", path);
        free(json);
        return crc;
    }
    rc = tok_load_json(json, n, cfg, cn, out, err, errlen);
    free(json);
    free(cfg);
    return rc;
}

void tok_free(struct tokenizer *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_norms; i++) {
        free(t->norms[i].str);
        tok_pattern_deinit(&t->norms[i].pat);
    }
    for (size_t i = 0; i < t->n_pretoks; i++)
        tok_pattern_deinit(&t->pretoks[i].pat);
    for (size_t i = 0; i < t->n_decs; i++) {
        free(t->decs[i].str);
        tok_pattern_deinit(&t->decs[i].pat);
    }
    for (size_t i = 0; i < t->n_added; i++) {
        free(t->added[i].content);
        free(t->added[i].match);
    }
    free(t->norms);
    free(t->pretoks);
    free(t->decs);
    free(t->added);
    tok_strmap_deinit(&t->added_map);
    tok_trie_deinit(&t->trie_raw);
    tok_trie_deinit(&t->trie_norm);
    tok_bpe_deinit(&t->bpe);
    free(t->post_prefix);
    free(t->post_suffix);
    free(t->dec);
    free(t->dec_pool);
    free(t->raw_tail);
    free(t);
}
