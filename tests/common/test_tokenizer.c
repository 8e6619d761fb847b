/*
 * The tokenizer against recorded references: the test vectors in ../shared/fixtures/vectors
 * (ids produced by Hugging Face tokenizers, tiktoken and sentencepiece), the stories260K
 * golden prompts, decode round trips, incremental decoding, and load errors.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/tokenizer.h"
#include "tests/test.h"

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)len + 1);
    if (p && fread(p, 1, (size_t)len, f) != (size_t)len) {
        free(p);
        p = NULL;
    }
    fclose(f);
    if (p) {
        p[len] = 0;
        *n = (size_t)len;
    }
    return p;
}

static struct tokenizer *load(const char *sub)
{
    char dir[1024], err[512];
    snprintf(dir, sizeof dir, "%s/%s", test_fixtures(), sub);
    struct tokenizer *t = NULL;
    int rc = tok_load_dir(dir, &t, err, sizeof err);
    if (rc)
        fprintf(stderr, "    load %s: %s (%s)\n", dir, err, err_name(rc));
    return t;
}

/* one_case: encodes s without special tokens and compares with want; then checks that the
 * decode is `round` and that streaming the ids gives the same text. */
static int one_case(struct tok_enc *e, const struct tokenizer *t, const char *s, size_t n,
                    const int32_t *want, size_t nwant, const char *round, size_t nround)
{
    struct tok_ids ids;
    tok_ids_init(&ids, 0);
    int bad = 0;
    if (tok_encode(e, s, n, false, &ids) || ids.n != nwant ||
        (nwant && memcmp(ids.v, want, nwant * sizeof *want) != 0)) {
        fprintf(stderr, "    encode mismatch for \"%.*s\": got", (int)n, s);
        for (size_t i = 0; i < ids.n; i++)
            fprintf(stderr, " %d", ids.v[i]);
        fprintf(stderr, "\n");
        bad = 1;
    }
    struct buf full, inc;
    buf_init(&full, 0);
    buf_init(&inc, 0);
    struct tok_stream st;
    tok_decode(t, want, nwant, false, &full);
    if (full.n != nround || memcmp(full.p, round, nround) != 0) {
        fprintf(stderr, "    decode mismatch for \"%.*s\": \"%s\"\n", (int)n, s, full.p);
        bad = 1;
    }
    tok_stream_init(&st, t, false);
    for (size_t i = 0; i < nwant; i++)
        tok_stream_feed(&st, want[i], &inc);
    tok_stream_flush(&st, &inc);
    tok_stream_deinit(&st);
    if (inc.n != full.n || memcmp(inc.p, full.p, full.n) != 0) {
        fprintf(stderr, "    stream mismatch for \"%.*s\": \"%s\"\n", (int)n, s, inc.p);
        bad = 1;
    }
    buf_deinit(&full);
    buf_deinit(&inc);
    tok_ids_deinit(&ids);
    return bad;
}

/* run_inp_out: a llama.cpp-style .inp/.out vector pair. strip_round: the decoder strips one
 * leading space, so a case that starts with one decodes without it (HF does the same). */
static void run_inp_out(const char *tokdir, const char *vec, bool strip_round)
{
    char path[1024];
    size_t ni, no;
    snprintf(path, sizeof path, "%s/vectors/%s.inp", test_fixtures(), vec);
    char *inp = slurp(path, &ni);
    snprintf(path, sizeof path, "%s/vectors/%s.out", test_fixtures(), vec);
    char *out = slurp(path, &no);
    struct tokenizer *t = load(tokdir);
    REQUIRE(inp && out && t);
    struct tok_enc *e = tok_enc_new(t);
    static const char sep[] = "\n__ggml_vocab_test__\n";
    char *s = inp, *line = out;
    int cases = 0, bad = 0;
    for (char *end; (end = strstr(s, sep)) != NULL; s = end + strlen(sep)) {
        char *nl = strchr(line, '\n');
        REQUIRE(nl);
        int32_t want[4096];
        size_t nw = 0;
        for (char *p = line; p < nl && nw < 4096;) {
            char *q;
            long v = strtol(p, &q, 10);
            if (q == p)
                break;
            want[nw++] = (int32_t)v;
            p = q;
        }
        size_t n = (size_t)(end - s);
        bool strip = strip_round && n > 0 && s[0] == ' ';
        bad += one_case(e, t, s, n, want, nw, s + strip, n - strip);
        cases++;
        line = nl + 1;
    }
    printf("    %s: %d cases, %d failed\n", vec, cases, bad);
    CHECK(cases == 46);
    CHECK_EQ(bad, 0);
    tok_enc_free(e);
    tok_free(t);
    free(inp);
    free(out);
}

/* The fixture shapes ship tokenizer.json as a git symlink that a checkout without symlink
 * support leaves as a file holding the target's relative path. */
TEST(tokenizer_json_holding_a_link_path_is_followed)
{
    struct tokenizer *via_link = load("shapes/tinyllama-1.1b-chat"),
                     *direct = load("tokenizers/llama2");
    REQUIRE(via_link != NULL && direct != NULL);
    struct tok_enc *a = tok_enc_new(via_link), *b = tok_enc_new(direct);
    struct tok_ids x, y;
    tok_ids_init(&x, 0);
    tok_ids_init(&y, 0);
    const char *s = "Hello world, the link is followed.";
    CHECK(tok_encode(a, s, strlen(s), true, &x) == 0);
    CHECK(tok_encode(b, s, strlen(s), true, &y) == 0);
    CHECK(x.n == y.n && x.n > 3 && memcmp(x.v, y.v, x.n * sizeof *x.v) == 0);
    tok_ids_deinit(&x);
    tok_ids_deinit(&y);
    tok_enc_free(a);
    tok_enc_free(b);
    tok_free(via_link);
    tok_free(direct);
}

TEST(vectors_gpt2)
{
    run_inp_out("tokenizers/gpt2", "llama.cpp/ggml-vocab-gpt-2.gguf", false);
}
TEST(vectors_llama3)
{
    run_inp_out("tokenizers/llama3", "llama.cpp/ggml-vocab-llama-bpe.gguf", false);
}
TEST(vectors_qwen2)
{
    run_inp_out("tokenizers/qwen2", "llama.cpp/ggml-vocab-qwen2.gguf", false);
}
TEST(vectors_llama2)
{
    run_inp_out("tokenizers/llama2", "llama.cpp/ggml-vocab-llama-spm.gguf", false);
}
TEST(vectors_phi3)
{
    run_inp_out("tokenizers/llama2", "llama.cpp/ggml-vocab-phi-3.gguf", false);
}
TEST(vectors_mistral)
{
    run_inp_out("tokenizers/mistral-v3", "derived/mistral-v3", true);
}

/* run_testplans: gpt-tokenizer's TestPlans.txt blocks for one encoding. */
static void run_testplans(const char *tokdir, const char *encoding, int expect_cases)
{
    char path[1024];
    size_t n;
    snprintf(path, sizeof path, "%s/vectors/gpt-tokenizer/TestPlans.txt", test_fixtures());
    char *txt = slurp(path, &n);
    struct tokenizer *t = load(tokdir);
    REQUIRE(txt && t);
    struct tok_enc *e = tok_enc_new(t);
    char name[64];
    snprintf(name, sizeof name, "EncodingName: %s\nSample: ", encoding);
    int cases = 0, bad = 0;
    for (char *p = txt; (p = strstr(p, name)) != NULL;) {
        char *sample = p + strlen(name), *nl = strchr(sample, '\n');
        REQUIRE(nl && strncmp(nl + 1, "Encoded: ", 9) == 0);
        json_error_t je;
        json_t *arr = json_loadb(nl + 10, strcspn(nl + 10, "\n"), 0, &je);
        REQUIRE(json_is_array(arr));
        int32_t want[4096];
        size_t nw = json_array_size(arr) < 4096 ? json_array_size(arr) : 4096;
        for (size_t i = 0; i < nw; i++)
            want[i] = (int32_t)json_integer_value(json_array_get(arr, i));
        json_decref(arr);
        bad +=
            one_case(e, t, sample, (size_t)(nl - sample), want, nw, sample, (size_t)(nl - sample));
        cases++;
        p = nl;
    }
    printf("    %s: %d cases, %d failed\n", encoding, cases, bad);
    CHECK_EQ(cases, expect_cases);
    CHECK_EQ(bad, 0);
    tok_enc_free(e);
    tok_free(t);
    free(txt);
}

TEST(testplans_cl100k)
{
    run_testplans("tokenizers/cl100k", "cl100k_base", 64);
}
TEST(testplans_r50k)
{
    run_testplans("tokenizers/gpt2", "r50k_base", 64);
}

/* stories260K: the golden prompts' ids (with BOS) and generated text. */
static void golden_prompt(const char *file)
{
    char path[1024];
    size_t n;
    snprintf(path, sizeof path, "%s/models/stories260K/golden/%s", test_fixtures(), file);
    char *js = slurp(path, &n);
    struct tokenizer *t = load("models/stories260K");
    REQUIRE(js && t);
    json_error_t je;
    json_t *g = json_loads(js, 0, &je);
    REQUIRE(g);
    const json_t *prompt = json_object_get(g, "prompt"), *pids = json_object_get(g, "prompt_ids");
    const json_t *gen = json_object_get(g, "generated_ids");
    struct tok_enc *e = tok_enc_new(t);
    struct tok_ids ids;
    tok_ids_init(&ids, 0);
    REQUIRE(tok_encode(e, json_string_value(prompt), json_string_length(prompt), true, &ids) == 0);
    CHECK_EQ(ids.n, json_array_size(pids));
    for (size_t i = 0; i < ids.n && i < json_array_size(pids); i++)
        CHECK_EQ(ids.v[i], json_integer_value(json_array_get(pids, i)));
    /* generated_text = decode(prompt + generated) minus decode(prompt), specials skipped */
    size_t np = ids.n;
    for (size_t i = 0; i < json_array_size(gen); i++)
        tok_ids_push(&ids, (int32_t)json_integer_value(json_array_get(gen, i)));
    struct buf a, b;
    buf_init(&a, 0);
    buf_init(&b, 0);
    tok_decode(t, ids.v, np, true, &a);
    tok_decode(t, ids.v, ids.n, true, &b);
    const char *want = json_string_value(json_object_get(g, "generated_text"));
    REQUIRE(want && b.n >= a.n);
    CHECK_STREQ(b.p + a.n, want);
    buf_deinit(&a);
    buf_deinit(&b);
    tok_ids_deinit(&ids);
    tok_enc_free(e);
    tok_free(t);
    json_decref(g);
    free(js);
}

TEST(stories_golden_once_upon)
{
    golden_prompt("golden_prompt_once_upon_a_time.json");
}
TEST(stories_golden_tom_and_sue)
{
    golden_prompt("golden_prompt_tom_and_sue.json");
}

TEST(stories_golden_greedy_text)
{
    char path[1024];
    size_t n, tn;
    snprintf(path, sizeof path, "%s/models/stories260K/golden/golden_greedy_ids.json",
             test_fixtures());
    char *js = slurp(path, &n);
    snprintf(path, sizeof path, "%s/models/stories260K/golden/golden_greedy.txt", test_fixtures());
    char *txt = slurp(path, &tn);
    struct tokenizer *t = load("models/stories260K");
    REQUIRE(js && txt && t);
    json_t *g = json_loads(js, 0, NULL);
    const json_t *gen = json_object_get(g, "generated_ids");
    struct tok_ids ids;
    tok_ids_init(&ids, 0);
    for (size_t i = 0; i < json_array_size(gen); i++)
        tok_ids_push(&ids, (int32_t)json_integer_value(json_array_get(gen, i)));
    struct buf full, inc;
    buf_init(&full, 0);
    buf_init(&inc, 0);
    tok_decode(t, ids.v, ids.n, true, &full);
    CHECK_MEMEQ(full.p, full.n, txt, tn);
    struct tok_stream st;
    tok_stream_init(&st, t, true);
    for (size_t i = 0; i < ids.n; i++)
        tok_stream_feed(&st, ids.v[i], &inc);
    tok_stream_flush(&st, &inc);
    tok_stream_deinit(&st);
    CHECK_MEMEQ(inc.p, inc.n, txt, tn);
    /* encoding the text with BOS gives back [1] + generated ids (fixture README, check 4) */
    struct tok_enc *e = tok_enc_new(t);
    struct tok_ids back;
    tok_ids_init(&back, 0);
    tok_encode(e, txt, tn, true, &back);
    CHECK_EQ(back.n, ids.n + 1);
    CHECK(back.n == ids.n + 1 && back.v[0] == 1 &&
          memcmp(back.v + 1, ids.v, ids.n * sizeof *ids.v) == 0);
    tok_ids_deinit(&back);
    tok_enc_free(e);
    buf_deinit(&full);
    buf_deinit(&inc);
    tok_ids_deinit(&ids);
    tok_free(t);
    json_decref(g);
    free(js);
    free(txt);
}

/* ---- special ids and views ---- */

TEST(special_ids_llama3)
{
    struct tokenizer *t = load("tokenizers/llama3");
    REQUIRE(t);
    const struct tok_special_ids *s = tok_special(t);
    CHECK_EQ(s->bos, 128000);
    CHECK_EQ(s->eos, 128009);
    CHECK_EQ(s->eot, 128009);
    CHECK_EQ(s->pad, -1);
    CHECK(tok_id_is_special(t, 128006));
    CHECK(!tok_id_is_special(t, 9906));
    CHECK_EQ(tok_n_vocab(t), 128256);
    size_t n;
    const char *str = tok_id_to_str(t, 128006, &n);
    CHECK_MEMEQ(str, n, "<|start_header_id|>", 19);
    struct buf b;
    buf_init(&b, 0);
    CHECK_EQ(tok_id_to_bytes(t, tok_str_to_id(t, "\xC4\xA0hello", 7), &b), 0);
    CHECK_MEMEQ(b.p, b.n, " hello", 6);
    buf_deinit(&b);
    tok_free(t);
}

TEST(special_ids_qwen2_nonspecial_added)
{
    struct tokenizer *t = load("tokenizers/qwen2");
    REQUIRE(t);
    CHECK_EQ(tok_special(t)->bos, -1);
    int32_t tc = tok_str_to_id(t, "<tool_call>", 11);
    CHECK(tc > 0);
    CHECK(!tok_id_is_special(t, tc)); /* special: false in tokenizer.json */
    CHECK(tok_id_is_special(t, tok_special(t)->eos));
    tok_free(t);
}

TEST(token_bytes_byte_fallback)
{
    struct tokenizer *t = load("tokenizers/llama2");
    REQUIRE(t);
    struct buf b;
    buf_init(&b, 0);
    CHECK_EQ(tok_id_to_bytes(t, tok_str_to_id(t, "<0xE4>", 6), &b), 0);
    CHECK_MEMEQ(b.p, b.n, "\xE4", 1);
    buf_reset(&b);
    CHECK_EQ(tok_id_to_bytes(t, tok_str_to_id(t, "\xE2\x96\x81the", 6), &b), 0);
    CHECK_MEMEQ(b.p, b.n, " the", 4);
    CHECK_EQ(tok_id_to_bytes(t, 1 << 30, &b), ERR_NOTFOUND);
    buf_deinit(&b);
    tok_free(t);
}

/* ---- bad input ---- */

TEST(invalid_utf8_input_never_fails)
{
    struct tokenizer *t = load("tokenizers/llama3");
    REQUIRE(t);
    struct tok_enc *e = tok_enc_new(t);
    static const char bad[] = "a\xFF\xC3(b\xE2\x82\xF0\x9F\x98\xED\xA0\x80z";
    struct tok_ids ids, want;
    tok_ids_init(&ids, 0);
    tok_ids_init(&want, 0);
    CHECK_EQ(tok_encode(e, bad, sizeof bad - 1, true, &ids), 0);
    /* the same as encoding the U+FFFD-repaired text (one per maximal subpart) */
    static const char fixed[] = "a\xEF\xBF\xBD\xEF\xBF\xBD(b\xEF\xBF\xBD\xEF\xBF\xBD"
                                "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDz";
    CHECK_EQ(tok_encode(e, fixed, sizeof fixed - 1, true, &want), 0);
    CHECK(ids.n == want.n && memcmp(ids.v, want.v, ids.n * sizeof *ids.v) == 0);
    tok_ids_deinit(&ids);
    tok_ids_deinit(&want);
    tok_enc_free(e);
    tok_free(t);
}

TEST(ids_limit)
{
    struct tokenizer *t = load("tokenizers/gpt2");
    REQUIRE(t);
    struct tok_enc *e = tok_enc_new(t);
    struct tok_ids ids;
    tok_ids_init(&ids, 3);
    CHECK_EQ(tok_encode(e, "one two three four five", 23, false, &ids), ERR_LIMIT);
    CHECK_EQ(ids.n, 3);
    tok_ids_deinit(&ids);
    tok_enc_free(e);
    tok_free(t);
}

static void expect_load_error(const char *json, int code, const char *needle)
{
    struct tokenizer *t = NULL;
    char err[512];
    int rc = tok_load_json(json, strlen(json), NULL, 0, &t, err, sizeof err);
    CHECK_EQ(rc, code);
    CHECK(t == NULL);
    if (!strstr(err, needle)) {
        fprintf(stderr, "    error \"%s\" does not mention \"%s\"\n", err, needle);
        CHECK(0);
    }
}

#define BPE_MODEL                                                                                  \
    "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\"]}"

TEST(load_errors_name_the_field)
{
    expect_load_error("{", ERR_PARSE, "tokenizer.json: (json)");
    expect_load_error("[]", ERR_PARSE, "expected an object");
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}}", ERR_PARSE,
                      "missing field \"merges\"");
    expect_load_error("{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": [1 2]}}", ERR_PARSE,
                      "model.merges");
    expect_load_error("{} x", ERR_PARSE, "after the end");
    expect_load_error("{\"model\":{\"type\":\"WordPiece\",\"vocab\":{}}}", ERR_UNSUPPORTED,
                      "model.type");
    expect_load_error("{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}", ERR_UNSUPPORTED,
                      "Unigram");
    expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a b\"]}}",
                      ERR_PARSE, "model.merges[0]");
    expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-1},\"merges\":[]}}",
                      ERR_PARSE, "model.vocab");
    expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a\"]}}",
                      ERR_PARSE, "model.merges[0]");
    expect_load_error("{" BPE_MODEL ",\"normalizer\":{\"type\":\"Precompiled\"}}", ERR_UNSUPPORTED,
                      "normalizer");
    expect_load_error(
        "{" BPE_MODEL ",\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":"
        "[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(\"},\"behavior\":\"Isolated\"}]}}",
        ERR_PARSE, "pre_tokenizer.pretokenizers[0]");
    expect_load_error("{" BPE_MODEL ",\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":"
                      "{\"Regex\":\"a\"},\"behavior\":\"Sideways\"}}",
                      ERR_PARSE, "behavior");
    expect_load_error("{" BPE_MODEL ",\"decoder\":{\"type\":\"WordPiece\"}}", ERR_UNSUPPORTED,
                      "decoder");
    expect_load_error("{" BPE_MODEL ",\"post_processor\":{\"type\":\"TemplateProcessing\","
                      "\"single\":[{\"SpecialToken\":{\"id\":\"<s>\"}}],\"special_tokens\":{}}}",
                      ERR_PARSE, "post_processor");
    expect_load_error("{" BPE_MODEL ",\"added_tokens\":[{\"id\":3}]}", ERR_PARSE,
                      "added_tokens[0]");
    expect_load_error("{\"model\":{\"type\":\"BPE\",\"dropout\":0.1,\"vocab\":{},\"merges\":[]}}",
                      ERR_UNSUPPORTED, "dropout");
}

TEST(load_missing_dir)
{
    struct tokenizer *t = NULL;
    char err[512];
    CHECK_EQ(tok_load_dir("/nonexistent/kiln", &t, err, sizeof err), ERR_IO);
    CHECK(strstr(err, "tokenizer.json") != NULL);
}

/* fuzz finding: a word whose characters are all unknown (no unk token, no byte fallback)
 * encodes to nothing; caching that empty result passed a null pointer to memcpy */
TEST(regression_word_of_unknown_chars_caches_empty)
{
    static const char json[] = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,"
                               "\"ab\":2},\"merges\":[\"a b\"]}}";
    struct tokenizer *t = NULL;
    char err[256];
    REQUIRE(tok_load_json(json, sizeof json - 1, NULL, 0, &t, err, sizeof err) == 0);
    struct tok_enc *e = tok_enc_new(t);
    struct tok_ids ids;
    tok_ids_init(&ids, 0);
    for (int round = 0; round < 2; round++) { /* the second round hits the cache */
        ids.n = 0;
        CHECK_EQ(tok_encode(e, "xyz", 3, true, &ids), 0);
        CHECK_EQ(ids.n, 0);
        CHECK_EQ(tok_encode(e, "ab", 2, true, &ids), 0);
        CHECK(ids.n == 1 && ids.v[0] == 2);
    }
    tok_ids_deinit(&ids);
    tok_enc_free(e);
    tok_free(t);
}

/* One tokenizer shared by threads, each with its own encoder, gives every thread the same
 * ids as a single thread (the tokenizer is immutable after loading). */
struct thread_job {
    const struct tokenizer *t;
    const char *const *texts;
    size_t n_texts;
    unsigned long long digest;
};

static unsigned long long encode_digest(const struct tokenizer *t, const char *const *texts,
                                        size_t n)
{
    struct tok_enc *e = tok_enc_new(t);
    struct tok_ids ids;
    tok_ids_init(&ids, 0);
    unsigned long long h = 1469598103934665603ull;
    for (int round = 0; round < 20; round++)
        for (size_t i = 0; i < n; i++) {
            ids.n = 0;
            tok_encode(e, texts[i], strlen(texts[i]), true, &ids);
            for (size_t k = 0; k < ids.n; k++)
                h = (h ^ (unsigned)ids.v[k]) * 1099511628211ull;
        }
    tok_ids_deinit(&ids);
    tok_enc_free(e);
    return h;
}

static void *thread_main(void *arg)
{
    struct thread_job *j = arg;
    j->digest = encode_digest(j->t, j->texts, j->n_texts);
    return NULL;
}

TEST(shared_between_threads)
{
    static const char *const texts[] = {"Hello world", " déjà vu 123456", "<|eot_id|>x",
                                        "中文 and English", "   spaces\n\nand lines"};
    struct tokenizer *t = load("tokenizers/llama3");
    REQUIRE(t);
    unsigned long long want = encode_digest(t, texts, 5);
    struct thread_job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (struct thread_job){t, texts, 5, 0};
        REQUIRE(pthread_create(&th[i], NULL, thread_main, &jobs[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK(jobs[i].digest == want);
    }
    tok_free(t);
}

int main(int argc, char **argv)
{
    return test_main(argc, argv);
}
