/*
 * model_config: every real config.json and generation_config.json under the fixtures parses
 * to the values the files hold (read from them by hand); each malformed value is refused
 * with the right code and a message naming the field; absent fields take transformers'
 * defaults.
 */
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/model_config.h"
#include "tests/test.h"

#define CHECK_NEAR(a, b) CHECK(fabs((double)(a) - (double)(b)) <= 1e-12 * fabs((double)(b)))

/* ---- the fixtures ---- */

struct want {
    const char *dir; /* under the fixtures */
    enum model_arch arch;
    int hidden, inter, layers, heads, kv, head_dim, vocab, max_pos;
    double eps, theta;
    enum rope_scaling_type rope;
    double factor, low, high;
    int orig;
    bool tie, qkv_bias;
    int bos, eos[4], n_eos;
    const char *dtype;
};

static const struct want WANT[] = {
    {"models/stories260K",
     MODEL_ARCH_LLAMA,
     64,
     172,
     5,
     8,
     4,
     8,
     512,
     512,
     1e-5,
     10000.0,
     ROPE_SCALING_NONE,
     1,
     0,
     0,
     512,
     true,
     false,
     1,
     {2},
     1,
     "float32"},
    {"shapes/llama-3-8b-instruct",
     MODEL_ARCH_LLAMA,
     4096,
     14336,
     32,
     32,
     8,
     128,
     128256,
     8192,
     1e-5,
     500000.0,
     ROPE_SCALING_NONE,
     1,
     0,
     0,
     8192,
     false,
     false,
     128000,
     {128009},
     1,
     "bfloat16"},
    {"shapes/llama-3.1-8b-instruct",
     MODEL_ARCH_LLAMA,
     4096,
     14336,
     32,
     32,
     8,
     128,
     128256,
     131072,
     1e-5,
     500000.0,
     ROPE_SCALING_LLAMA3,
     8.0,
     1.0,
     4.0,
     8192,
     false,
     false,
     128000,
     {128001, 128008, 128009},
     3,
     "bfloat16"},
    {"shapes/mistral-7b-instruct-v0.3",
     MODEL_ARCH_MISTRAL,
     4096,
     14336,
     32,
     32,
     8,
     128,
     32768,
     32768,
     1e-5,
     1000000.0,
     ROPE_SCALING_NONE,
     1,
     0,
     0,
     32768,
     false,
     false,
     1,
     {2},
     1,
     "bfloat16"},
    {"shapes/qwen2.5-0.5b-instruct",
     MODEL_ARCH_QWEN2,
     896,
     4864,
     24,
     14,
     2,
     64,
     151936,
     32768,
     1e-6,
     1000000.0,
     ROPE_SCALING_NONE,
     1,
     0,
     0,
     32768,
     true,
     true,
     151643,
     {151645},
     1,
     "bfloat16"},
    {"shapes/tinyllama-1.1b-chat",
     MODEL_ARCH_LLAMA,
     2048,
     5632,
     22,
     32,
     4,
     64,
     32000,
     2048,
     1e-5,
     10000.0,
     ROPE_SCALING_NONE,
     1,
     0,
     0,
     2048,
     false,
     false,
     1,
     {2},
     1,
     "bfloat16"},
};
#define N_WANT (sizeof WANT / sizeof WANT[0])

static void check_config(const struct want *w)
{
    char dir[1024], err[512] = "";
    struct model_config c;
    memset(&c, 0x5a, sizeof c);
    snprintf(dir, sizeof dir, "%s/%s", test_fixtures(), w->dir);
    int rc = model_config_load(dir, &c, err, sizeof err);
    if (rc) {
        TEST_FAIL_AT("%s: %s (%s)", w->dir, err, err_name(rc));
        return;
    }
    int failed_before = test_cur_failed;
    test_cur_failed = 0;
    CHECK_EQ(c.arch, w->arch);
    CHECK_STREQ(c.arch_name, w->arch == MODEL_ARCH_LLAMA     ? "LlamaForCausalLM"
                             : w->arch == MODEL_ARCH_MISTRAL ? "MistralForCausalLM"
                                                             : "Qwen2ForCausalLM");
    CHECK_EQ(c.hidden_size, w->hidden);
    CHECK_EQ(c.intermediate_size, w->inter);
    CHECK_EQ(c.num_layers, w->layers);
    CHECK_EQ(c.num_heads, w->heads);
    CHECK_EQ(c.num_kv_heads, w->kv);
    CHECK_EQ(c.head_dim, w->head_dim);
    CHECK_EQ(c.vocab_size, w->vocab);
    CHECK_EQ(c.max_position_embeddings, w->max_pos);
    CHECK_NEAR(c.rms_norm_eps, w->eps);
    CHECK_NEAR(c.rope_theta, w->theta);
    CHECK_EQ(c.rope_type, w->rope);
    CHECK_NEAR(c.rope_factor, w->factor);
    CHECK_NEAR(c.rope_low_freq_factor, w->low);
    CHECK_NEAR(c.rope_high_freq_factor, w->high);
    CHECK_EQ(c.rope_original_max_pos, w->orig);
    CHECK_EQ(c.tie_word_embeddings, w->tie);
    CHECK_EQ(c.qkv_bias, w->qkv_bias);
    CHECK_EQ(c.o_bias, false);
    CHECK_EQ(c.sliding_window, 0);
    CHECK_EQ(c.bos_token_id, w->bos);
    CHECK_EQ(c.num_eos, w->n_eos);
    for (int i = 0; i < w->n_eos && i < c.num_eos; i++)
        CHECK_EQ(c.eos_token_ids[i], w->eos[i]);
    CHECK_STREQ(c.torch_dtype, w->dtype);
    if (test_cur_failed)
        fprintf(stderr, "    (in %s)\n", w->dir);
    test_cur_failed |= failed_before;
}

TEST(fixture_configs)
{
    for (size_t i = 0; i < N_WANT; i++)
        check_config(&WANT[i]);
}

/* every shapes/ folder parses, and each has its row above */
TEST(every_shape_config_parses)
{
    char dir[1024], sub[1400], err[512];
    snprintf(dir, sizeof dir, "%s/shapes", test_fixtures());
    DIR *d = opendir(dir);
    REQUIRE(d != NULL);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        struct stat st;
        snprintf(sub, sizeof sub, "%s/%s/config.json", dir, e->d_name);
        if (e->d_name[0] == '.' || stat(sub, &st) != 0)
            continue;
        snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
        struct model_config c;
        struct generation_config g;
        int rc = model_config_load(sub, &c, err, sizeof err);
        if (rc)
            TEST_FAIL_AT("%s: %s", sub, err);
        rc = generation_config_load(sub, &g, err, sizeof err);
        if (rc)
            TEST_FAIL_AT("%s: %s", sub, err);
        char name[300];
        snprintf(name, sizeof name, "shapes/%s", e->d_name);
        int known = 0;
        for (size_t i = 0; i < N_WANT; i++)
            known |= strcmp(WANT[i].dir, name) == 0;
        if (!known)
            TEST_FAIL_AT("%s has no expected values in this test", name);
        n++;
    }
    closedir(d);
    CHECK_EQ(n, 5);
}

struct gwant {
    const char *dir;
    double temperature, top_p, repetition_penalty; /* 0: absent */
    int top_k;                                     /* 0: absent */
    int bos, eos[4], n_eos;
};

static const struct gwant GWANT[] = {
    {"models/stories260K", 0, 0, 0, 0, 1, {2, 1}, 2},
    {"shapes/llama-3-8b-instruct", 0.6, 0.9, 0, 0, 128000, {128001, 128009}, 2},
    {"shapes/llama-3.1-8b-instruct", 0.6, 0.9, 0, 0, 128000, {128001, 128008, 128009}, 3},
    {"shapes/mistral-7b-instruct-v0.3", 0, 0, 0, 0, 1, {2}, 1},
    {"shapes/qwen2.5-0.5b-instruct", 0.7, 0.8, 1.05, 20, 151643, {151645, 151643}, 2},
    {"shapes/tinyllama-1.1b-chat", 0, 0, 0, 0, 1, {2}, 1},
};

TEST(fixture_generation_configs)
{
    for (size_t i = 0; i < sizeof GWANT / sizeof *GWANT; i++) {
        const struct gwant *w = &GWANT[i];
        char dir[1024], err[512] = "";
        struct generation_config g;
        memset(&g, 0x5a, sizeof g);
        snprintf(dir, sizeof dir, "%s/%s", test_fixtures(), w->dir);
        int rc = generation_config_load(dir, &g, err, sizeof err);
        if (rc) {
            TEST_FAIL_AT("%s: %s", w->dir, err);
            continue;
        }
        CHECK_EQ(g.has_temperature, w->temperature != 0);
        if (w->temperature)
            CHECK_NEAR(g.temperature, w->temperature);
        CHECK_EQ(g.has_top_p, w->top_p != 0);
        if (w->top_p)
            CHECK_NEAR(g.top_p, w->top_p);
        CHECK_EQ(g.has_repetition_penalty, w->repetition_penalty != 0);
        if (w->repetition_penalty)
            CHECK_NEAR(g.repetition_penalty, w->repetition_penalty);
        CHECK_EQ(g.has_top_k, w->top_k != 0);
        CHECK_EQ(g.top_k, w->top_k);
        CHECK_EQ(g.has_min_p, false);
        CHECK_EQ(g.has_max_new_tokens, false);
        CHECK_EQ(g.bos_token_id, w->bos);
        CHECK_EQ(g.num_eos, w->n_eos);
        for (int k = 0; k < w->n_eos && k < g.num_eos; k++)
            CHECK_EQ(g.eos_token_ids[k], w->eos[k]);
    }
}

/* ---- edits of a small valid config ---- */

static const char BASE[] = "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64,"
                           " \"intermediate_size\": 172, \"num_hidden_layers\": 2,"
                           " \"num_attention_heads\": 8, \"vocab_size\": 512}";

/* edit: BASE (or the previous result) with key set to the JSON value text, or deleted when
 * value is NULL; pairs end with a NULL key. Returns malloc'd JSON text. */
static char *edit(const char *base, ...)
{
    json_t *root = json_loads(base, 0, NULL);
    va_list ap;
    va_start(ap, base);
    for (const char *key; (key = va_arg(ap, const char *));) {
        const char *value = va_arg(ap, const char *);
        if (value)
            json_object_set_new(root, key, json_loads(value, JSON_DECODE_ANY, NULL));
        else
            json_object_del(root, key);
    }
    va_end(ap);
    char *s = json_dumps(root, 0);
    json_decref(root);
    return s;
}

/* parse_text: model_config_parse on text (freed); the message goes to err. */
static int parse_text(char *text, struct model_config *c, char *err)
{
    err[0] = '\0';
    int rc = model_config_parse(text, strlen(text), c, err, 512);
    free(text);
    return rc;
}

#define PARSE(c, err, ...) parse_text(edit(BASE, __VA_ARGS__, NULL), (c), (err))

/* REFUSED: the edited BASE is refused with code and a message holding piece. */
#define REFUSED(code, piece, ...)                                                                  \
    do {                                                                                           \
        char err_[512];                                                                            \
        struct model_config c_;                                                                    \
        int rc_ = PARSE(&c_, err_, __VA_ARGS__);                                                   \
        CHECK_STREQ(err_name(rc_), err_name(code));                                                \
        if (!strstr(err_, piece))                                                                  \
            TEST_FAIL_AT("\"%s\" not in \"%s\"", piece, err_);                                     \
        if (strncmp(err_, "config.json: ", 13) != 0 || strchr(err_, '\n'))                         \
            TEST_FAIL_AT("message \"%s\" must start with config.json: on one line", err_);         \
    } while (0)

TEST(base_defaults)
{
    char err[512];
    struct model_config c;
    REQUIRE(parse_text(edit(BASE, NULL), &c, err) == 0);
    CHECK_EQ(c.arch, MODEL_ARCH_LLAMA);
    CHECK_EQ(c.num_kv_heads, 8);
    CHECK_EQ(c.head_dim, 8);
    CHECK_EQ(c.max_position_embeddings, 2048);
    CHECK(c.rms_norm_eps == 1e-6);
    CHECK(c.rope_theta == 10000.0);
    CHECK_EQ(c.rope_type, ROPE_SCALING_NONE);
    CHECK(c.rope_factor == 1.0);
    CHECK_EQ(c.rope_original_max_pos, 2048);
    CHECK_EQ(c.tie_word_embeddings, false);
    CHECK_EQ(c.qkv_bias, false);
    CHECK_EQ(c.o_bias, false);
    CHECK_EQ(c.sliding_window, 0);
    CHECK_EQ(c.bos_token_id, -1);
    CHECK_EQ(c.num_eos, 0);
    CHECK_STREQ(c.torch_dtype, "");
}

TEST(arch_defaults_follow_transformers)
{
    char err[512];
    struct model_config c;
    /* Mistral: max_position_embeddings 4096 * 32, kv heads 8, sliding window 4096 */
    REQUIRE(PARSE(&c, err, "architectures", "[\"MistralForCausalLM\"]") == 0);
    CHECK_EQ(c.arch, MODEL_ARCH_MISTRAL);
    CHECK_EQ(c.max_position_embeddings, 131072);
    CHECK_EQ(c.num_kv_heads, 8);
    CHECK_EQ(c.sliding_window, 4096);
    /* Qwen2: 32768, kv heads 32 (with 32 heads), no sliding window */
    REQUIRE(PARSE(&c, err, "architectures", "[\"Qwen2ForCausalLM\"]", "num_attention_heads", "32",
                  "hidden_size", "2048") == 0);
    CHECK_EQ(c.arch, MODEL_ARCH_QWEN2);
    CHECK_EQ(c.max_position_embeddings, 32768);
    CHECK_EQ(c.num_kv_heads, 32);
    CHECK_EQ(c.head_dim, 64);
    CHECK_EQ(c.qkv_bias, true);
    CHECK_EQ(c.sliding_window, 0);
    /* an explicit null is num_attention_heads, for every class */
    REQUIRE(PARSE(&c, err, "architectures", "[\"MistralForCausalLM\"]", "num_key_value_heads",
                  "null", "num_attention_heads", "4", "hidden_size", "256") == 0);
    CHECK_EQ(c.num_kv_heads, 4);
    /* Mistral's default 8 does not divide 4 heads */
    REQUIRE(PARSE(&c, err, "architectures", "[\"MistralForCausalLM\"]", "num_attention_heads",
                  "4") == ERR_RANGE);
    CHECK(strstr(err, "num_key_value_heads: 8 does not divide num_attention_heads 4") != NULL);
}

TEST(arch_from_model_type)
{
    char err[512];
    struct model_config c;
    REQUIRE(PARSE(&c, err, "architectures", NULL, "model_type", "\"mistral\"") == 0);
    CHECK_EQ(c.arch, MODEL_ARCH_MISTRAL);
    CHECK_STREQ(c.arch_name, "MistralForCausalLM");
    REQUIRE(PARSE(&c, err, "architectures", "[]", "model_type", "\"qwen2\"", "num_key_value_heads",
                  "4") == 0);
    CHECK_EQ(c.arch, MODEL_ARCH_QWEN2);
    REQUIRE(PARSE(&c, err, "architectures", "null", "model_type", "\"llama\"") == 0);
    CHECK_EQ(c.arch, MODEL_ARCH_LLAMA);
    /* architectures wins over model_type */
    REQUIRE(PARSE(&c, err, "model_type", "\"qwen2\"") == 0);
    CHECK_EQ(c.arch, MODEL_ARCH_LLAMA);
}

TEST(unknown_architecture)
{
    REFUSED(ERR_UNSUPPORTED, "architectures: \"GPT2LMHeadModel\" is not supported", "architectures",
            "[\"GPT2LMHeadModel\"]");
    REFUSED(ERR_UNSUPPORTED, "\"MixtralForCausalLM\"", "architectures",
            "[\"MixtralForCausalLM\", \"LlamaForCausalLM\"]");
    REFUSED(ERR_UNSUPPORTED, "model_type: \"gpt2\" is not supported", "architectures", NULL,
            "model_type", "\"gpt2\"");
    REFUSED(ERR_RANGE, "architectures: missing", "architectures", NULL);
    REFUSED(ERR_PARSE, "architectures: must be a list of strings", "architectures",
            "\"LlamaForCausalLM\"");
    REFUSED(ERR_PARSE, "architectures: must be a list", "architectures", "[3]");
}

TEST(missing_required)
{
    REFUSED(ERR_RANGE, "config.json: hidden_size: missing", "hidden_size", NULL);
    REFUSED(ERR_RANGE, "intermediate_size: missing", "intermediate_size", NULL);
    REFUSED(ERR_RANGE, "num_hidden_layers: missing", "num_hidden_layers", NULL);
    REFUSED(ERR_RANGE, "num_attention_heads: missing", "num_attention_heads", NULL);
    REFUSED(ERR_RANGE, "vocab_size: missing", "vocab_size", "null");
}

TEST(wrong_types)
{
    REFUSED(ERR_PARSE, "hidden_size: must be an integer", "hidden_size", "\"64\"");
    REFUSED(ERR_PARSE, "hidden_size: must be an integer", "hidden_size", "64.5");
    REFUSED(ERR_PARSE, "hidden_size: must be an integer", "hidden_size", "64.0");
    REFUSED(ERR_PARSE, "num_hidden_layers: must be an integer", "num_hidden_layers", "true");
    REFUSED(ERR_PARSE, "num_key_value_heads: must be an integer", "num_key_value_heads", "[4]");
    REFUSED(ERR_PARSE, "rms_norm_eps: must be a number", "rms_norm_eps", "\"1e-5\"");
    REFUSED(ERR_PARSE, "rope_theta: must be a number", "rope_theta", "{}");
    REFUSED(ERR_PARSE, "tie_word_embeddings: must be true or false", "tie_word_embeddings",
            "\"true\"");
    REFUSED(ERR_PARSE, "attention_bias: must be true or false", "attention_bias", "1");
    REFUSED(ERR_PARSE, "hidden_act: must be a string", "hidden_act", "5");
    REFUSED(ERR_PARSE, "eos_token_id: must be an integer or a list", "eos_token_id", "\"2\"");
    REFUSED(ERR_PARSE, "eos_token_id: [1] must be an integer", "eos_token_id", "[1, \"x\"]");
    REFUSED(ERR_PARSE, "bos_token_id: must be an integer", "bos_token_id", "[1]");
    REFUSED(ERR_PARSE, "rope_scaling: must be an object", "rope_scaling", "\"linear\"");
    REFUSED(ERR_PARSE, "torch_dtype: must be a string", "torch_dtype", "16");
    REFUSED(ERR_PARSE, "max_window_layers: must be an integer", "architectures",
            "[\"Qwen2ForCausalLM\"]", "use_sliding_window", "true", "max_window_layers", "\"2\"",
            "num_key_value_heads", "4");
    REFUSED(ERR_PARSE, "use_sliding_window: must be true or false", "architectures",
            "[\"Qwen2ForCausalLM\"]", "use_sliding_window", "1", "num_key_value_heads", "4");
}

TEST(sizes_out_of_range)
{
    REFUSED(ERR_RANGE, "hidden_size: 0 is outside [1, 1048576]", "hidden_size", "0");
    REFUSED(ERR_RANGE, "hidden_size: -64 is outside", "hidden_size", "-64");
    REFUSED(ERR_RANGE, "hidden_size: 2097152 is outside", "hidden_size", "2097152");
    REFUSED(ERR_RANGE, "intermediate_size: 9223372036854775807 is outside", "intermediate_size",
            "9223372036854775807");
    REFUSED(ERR_RANGE, "num_hidden_layers: 1025 is outside [1, 1024]", "num_hidden_layers", "1025");
    REFUSED(ERR_RANGE, "num_attention_heads: 0 is outside", "num_attention_heads", "0");
    REFUSED(ERR_RANGE, "num_key_value_heads: 0 is outside", "num_key_value_heads", "0");
    REFUSED(ERR_RANGE, "vocab_size: 16777217 is outside [1, 16777216]", "vocab_size", "16777217");
    REFUSED(ERR_RANGE, "max_position_embeddings: 0 is outside", "max_position_embeddings", "0");
    REFUSED(ERR_RANGE, "max_position_embeddings: 16777217", "max_position_embeddings", "16777217");
    REFUSED(ERR_RANGE, "head_dim: 2048 is outside [1, 1024]", "head_dim", "2048");
    REFUSED(ERR_RANGE, "head_dim: 0 is outside", "head_dim", "0");
    REFUSED(ERR_RANGE, "head_dim: absent, and hidden_size / num_attention_heads = 2048",
            "hidden_size", "16384", "num_attention_heads", "8");
    REFUSED(ERR_RANGE, "bos_token_id: -1 is outside", "bos_token_id", "-1");
    REFUSED(ERR_RANGE, "eos_token_id: [0]: -2 is not a token id", "eos_token_id", "[-2]");
    REFUSED(ERR_RANGE, "eos_token_id: 17 ids, at most 16", "eos_token_id",
            "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]");
}

TEST(kv_heads_must_divide_heads)
{
    char err[512];
    struct model_config c;
    CHECK_EQ(PARSE(&c, err, "num_key_value_heads", "3"), ERR_RANGE);
    CHECK_STREQ(err, "config.json: num_key_value_heads: 3 does not divide num_attention_heads 8");
    REFUSED(ERR_RANGE, "num_key_value_heads: 16 does not divide", "num_key_value_heads", "16");
    REQUIRE(PARSE(&c, err, "num_key_value_heads", "2") == 0);
    CHECK_EQ(c.num_kv_heads, 2);
}

TEST(head_dim_rules)
{
    char err[512];
    struct model_config c;
    REFUSED(ERR_RANGE, "head_dim: 7 is odd", "head_dim", "7");
    REFUSED(ERR_RANGE, "head_dim: 9 is odd", "hidden_size", "72");
    REFUSED(ERR_RANGE,
            "head_dim: absent, and hidden_size 100 is not a multiple of num_attention_heads 8",
            "hidden_size", "100");
    /* given, it need not match hidden_size / heads */
    REQUIRE(PARSE(&c, err, "hidden_size", "100", "head_dim", "16") == 0);
    CHECK_EQ(c.head_dim, 16);
    REQUIRE(PARSE(&c, err, "head_dim", "null") == 0);
    CHECK_EQ(c.head_dim, 8);
}

TEST(rope_scaling_types)
{
    char err[512];
    struct model_config c;
    REQUIRE(PARSE(&c, err, "rope_scaling", "{\"type\": \"linear\", \"factor\": 2.0}") == 0);
    CHECK_EQ(c.rope_type, ROPE_SCALING_LINEAR);
    CHECK(c.rope_factor == 2.0);
    REQUIRE(PARSE(&c, err, "rope_scaling", "{\"rope_type\": \"dynamic\", \"factor\": 4}",
                  "max_position_embeddings", "4096") == 0);
    CHECK_EQ(c.rope_type, ROPE_SCALING_DYNAMIC);
    CHECK(c.rope_factor == 4.0);
    CHECK_EQ(c.rope_original_max_pos, 4096);
    REQUIRE(PARSE(&c, err, "rope_scaling",
                  "{\"rope_type\": \"dynamic\", \"factor\": 2,"
                  " \"original_max_position_embeddings\": 1024}") == 0);
    CHECK_EQ(c.rope_original_max_pos, 1024);
    REQUIRE(PARSE(&c, err, "rope_scaling", "{\"rope_type\": \"default\"}") == 0);
    CHECK_EQ(c.rope_type, ROPE_SCALING_NONE);
    /* rope_type wins over the legacy type */
    REQUIRE(PARSE(&c, err, "rope_scaling",
                  "{\"rope_type\": \"linear\", \"type\": \"yarn\", \"factor\": 3}") == 0);
    CHECK_EQ(c.rope_type, ROPE_SCALING_LINEAR);
    /* the newer rope_parameters spelling, theta inside */
    REQUIRE(PARSE(&c, err, "rope_parameters",
                  "{\"rope_type\": \"llama3\", \"rope_theta\": 500000.0, \"factor\": 32.0,"
                  " \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0,"
                  " \"original_max_position_embeddings\": 8192}") == 0);
    CHECK_EQ(c.rope_type, ROPE_SCALING_LLAMA3);
    CHECK(c.rope_theta == 500000.0);
    CHECK(c.rope_factor == 32.0);
    CHECK_EQ(c.rope_original_max_pos, 8192);
    REQUIRE(PARSE(&c, err, "rope_parameters", "{\"rope_theta\": 20000}") == 0);
    CHECK_EQ(c.rope_type, ROPE_SCALING_NONE);
    CHECK(c.rope_theta == 20000.0);
}

TEST(rope_scaling_refused)
{
    REFUSED(ERR_UNSUPPORTED, "rope_scaling.rope_type: \"yarn\" is not supported", "rope_scaling",
            "{\"rope_type\": \"yarn\", \"factor\": 4.0}");
    REFUSED(ERR_UNSUPPORTED, "rope_scaling.rope_type: \"su\" is not supported", "rope_scaling",
            "{\"type\": \"su\", \"long_factor\": [1], \"short_factor\": [1]}");
    REFUSED(ERR_UNSUPPORTED, "\"longrope\"", "rope_scaling", "{\"rope_type\": \"longrope\"}");
    REFUSED(ERR_UNSUPPORTED, "rope_parameters.rope_type: \"yarn\"", "rope_parameters",
            "{\"rope_type\": \"yarn\"}");
    REFUSED(ERR_PARSE, "rope_scaling.rope_type: missing", "rope_scaling", "{\"factor\": 2}");
    REFUSED(ERR_RANGE, "rope_scaling.factor: missing", "rope_scaling", "{\"type\": \"linear\"}");
    REFUSED(ERR_RANGE, "rope_scaling.factor: 0 must be > 0", "rope_scaling",
            "{\"type\": \"linear\", \"factor\": 0}");
    REFUSED(ERR_RANGE, "rope_scaling.factor: -2 must be > 0", "rope_scaling",
            "{\"type\": \"dynamic\", \"factor\": -2}");
    REFUSED(ERR_PARSE, "rope_scaling.factor: must be a number", "rope_scaling",
            "{\"type\": \"dynamic\", \"factor\": \"2\"}");
    REFUSED(ERR_PARSE, "rope_parameters: must be an object", "rope_parameters", "[]");
}

TEST(rope_llama3_requires_every_field)
{
    static const char *const fields[] = {"factor", "low_freq_factor", "high_freq_factor",
                                         "original_max_position_embeddings"};
    for (int skip = 0; skip < 4; skip++) {
        json_t *s = json_pack("{s:s, s:f, s:f, s:f, s:i}", "rope_type", "llama3", "factor", 8.0,
                              "low_freq_factor", 1.0, "high_freq_factor", 4.0,
                              "original_max_position_embeddings", 8192);
        json_object_del(s, fields[skip]);
        char *text = json_dumps(s, 0), want[128];
        json_decref(s);
        snprintf(want, sizeof want, "rope_scaling.%s: missing", fields[skip]);
        REFUSED(ERR_RANGE, want, "rope_scaling", text);
        free(text);
    }
    REFUSED(ERR_RANGE, "rope_scaling.high_freq_factor: 1 must be above low_freq_factor 1",
            "rope_scaling",
            "{\"rope_type\": \"llama3\", \"factor\": 8, \"low_freq_factor\": 1,"
            " \"high_freq_factor\": 1, \"original_max_position_embeddings\": 8192}");
    REFUSED(ERR_PARSE, "rope_scaling.original_max_position_embeddings: must be an integer",
            "rope_scaling",
            "{\"rope_type\": \"llama3\", \"factor\": 8, \"low_freq_factor\": 1,"
            " \"high_freq_factor\": 4, \"original_max_position_embeddings\": 8192.5}");
}

TEST(activation_and_biases)
{
    char err[512];
    struct model_config c;
    REFUSED(ERR_UNSUPPORTED, "hidden_act: \"gelu\" is not supported", "hidden_act", "\"gelu\"");
    REFUSED(ERR_UNSUPPORTED, "hidden_act: \"gelu_pytorch_tanh\"", "hidden_act",
            "\"gelu_pytorch_tanh\"");
    REQUIRE(PARSE(&c, err, "hidden_act", "\"swish\"") == 0); /* the same function */
    REQUIRE(PARSE(&c, err, "hidden_act", "null") == 0);
    REFUSED(ERR_UNSUPPORTED, "mlp_bias: true is not supported", "mlp_bias", "true");
    REQUIRE(PARSE(&c, err, "mlp_bias", "false") == 0);
    /* Mistral and Qwen2 build their MLPs without biases whatever mlp_bias says */
    REQUIRE(PARSE(&c, err, "mlp_bias", "true", "architectures", "[\"MistralForCausalLM\"]") == 0);
    REQUIRE(PARSE(&c, err, "attention_bias", "true") == 0);
    CHECK_EQ(c.qkv_bias, true);
    CHECK_EQ(c.o_bias, true);
    REQUIRE(PARSE(&c, err, "attention_bias", "true", "architectures", "[\"MistralForCausalLM\"]") ==
            0);
    CHECK_EQ(c.qkv_bias, false);
    CHECK_EQ(c.o_bias, false);
    REQUIRE(PARSE(&c, err, "attention_bias", "false", "architectures", "[\"Qwen2ForCausalLM\"]",
                  "num_key_value_heads", "4") == 0);
    CHECK_EQ(c.qkv_bias, true);
    CHECK_EQ(c.o_bias, false);
    REQUIRE(PARSE(&c, err, "tie_word_embeddings", "true") == 0);
    CHECK_EQ(c.tie_word_embeddings, true);
    REFUSED(ERR_UNSUPPORTED, "quantization_config: quantized checkpoints (awq)",
            "quantization_config", "{\"quant_method\": \"awq\", \"bits\": 4}");
}

TEST(eps_and_theta_ranges)
{
    char err[512];
    struct model_config c;
    REFUSED(ERR_RANGE, "rms_norm_eps: 0 is outside (0, 1)", "rms_norm_eps", "0");
    REFUSED(ERR_RANGE, "rms_norm_eps: 1 is outside (0, 1)", "rms_norm_eps", "1");
    REFUSED(ERR_RANGE, "rms_norm_eps: -1e-05 is outside", "rms_norm_eps", "-1e-5");
    REFUSED(ERR_RANGE, "rope_theta: -10000 must be > 0", "rope_theta", "-10000");
    REFUSED(ERR_RANGE, "rope_theta: 0 must be > 0", "rope_theta", "0.0");
    REFUSED(ERR_RANGE, "rope_parameters.rope_theta: -1 must be > 0", "rope_parameters",
            "{\"rope_theta\": -1}");
    REQUIRE(PARSE(&c, err, "rms_norm_eps", "1e-5", "rope_theta", "500000") == 0);
    CHECK(c.rms_norm_eps == 1e-5);
    CHECK(c.rope_theta == 500000.0);
}

TEST(sliding_window_per_arch)
{
    char err[512];
    struct model_config c;
    /* Llama: ignored */
    REQUIRE(PARSE(&c, err, "sliding_window", "4096") == 0);
    CHECK_EQ(c.sliding_window, 0);
    /* Mistral: the value; null or 0 is none */
    REQUIRE(PARSE(&c, err, "architectures", "[\"MistralForCausalLM\"]", "sliding_window", "1024",
                  "num_key_value_heads", "8") == 0);
    CHECK_EQ(c.sliding_window, 1024);
    REQUIRE(PARSE(&c, err, "architectures", "[\"MistralForCausalLM\"]", "sliding_window", "null") ==
            0);
    CHECK_EQ(c.sliding_window, 0);
    REQUIRE(PARSE(&c, err, "architectures", "[\"MistralForCausalLM\"]", "sliding_window", "0") ==
            0);
    CHECK_EQ(c.sliding_window, 0);
    REFUSED(ERR_RANGE, "sliding_window: -1 is outside", "architectures", "[\"MistralForCausalLM\"]",
            "sliding_window", "-1");
    REFUSED(ERR_PARSE, "sliding_window: must be an integer", "architectures",
            "[\"MistralForCausalLM\"]", "sliding_window", "\"4096\"");
}

TEST(qwen2_sliding_window_only_with_use_sliding_window)
{
    char err[512];
    struct model_config c;
#define QWEN "architectures", "[\"Qwen2ForCausalLM\"]", "num_key_value_heads", "2"
    REQUIRE(PARSE(&c, err, QWEN, "sliding_window", "4096") == 0);
    CHECK_EQ(c.sliding_window, 0);
    REQUIRE(PARSE(&c, err, QWEN, "sliding_window", "4096", "use_sliding_window", "false") == 0);
    CHECK_EQ(c.sliding_window, 0);
    /* every layer slides when max_window_layers is 0 */
    REQUIRE(PARSE(&c, err, QWEN, "sliding_window", "1024", "use_sliding_window", "true",
                  "max_window_layers", "0") == 0);
    CHECK_EQ(c.sliding_window, 1024);
    REQUIRE(PARSE(&c, err, QWEN, "use_sliding_window", "true", "max_window_layers", "0") == 0);
    CHECK_EQ(c.sliding_window, 4096);
    /* none does when max_window_layers (default 28) covers every layer */
    REQUIRE(PARSE(&c, err, QWEN, "sliding_window", "1024", "use_sliding_window", "true") == 0);
    CHECK_EQ(c.sliding_window, 0);
    REQUIRE(PARSE(&c, err, QWEN, "sliding_window", "null", "use_sliding_window", "true",
                  "max_window_layers", "0") == 0);
    CHECK_EQ(c.sliding_window, 0);
    /* some layers only: refused */
    REFUSED(ERR_UNSUPPORTED, "max_window_layers: 1: a sliding window on layers 1..1 only", QWEN,
            "sliding_window", "1024", "use_sliding_window", "true", "max_window_layers", "1");
#undef QWEN
}

TEST(token_ids_and_dtype)
{
    char err[512];
    struct model_config c;
    REQUIRE(PARSE(&c, err, "bos_token_id", "0", "eos_token_id", "[]", "dtype", "\"float16\"") == 0);
    CHECK_EQ(c.bos_token_id, 0);
    CHECK_EQ(c.num_eos, 0);
    CHECK_STREQ(c.torch_dtype, "float16");
    REQUIRE(PARSE(&c, err, "eos_token_id", "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,2147483647]",
                  "torch_dtype", "\"bfloat16\"", "dtype", "\"float32\"") == 0);
    CHECK_EQ(c.num_eos, 16);
    CHECK_EQ(c.eos_token_ids[15], 2147483647);
    CHECK_STREQ(c.torch_dtype, "bfloat16");
    REFUSED(ERR_RANGE, "eos_token_id: 2147483648 is outside", "eos_token_id", "2147483648");
    REFUSED(ERR_RANGE, "torch_dtype: \"bfloat16bfloat16\" is not a torch dtype", "torch_dtype",
            "\"bfloat16bfloat16\"");
}

TEST(not_json_or_too_big)
{
    char err[512];
    struct model_config c;
    const char *bad[] = {"", "{", "{\"hidden_size\": 64,}", "{} x", "nul"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK_EQ(model_config_parse(bad[i], strlen(bad[i]), &c, err, sizeof err), ERR_PARSE);
        CHECK(strstr(err, "config.json: not valid JSON at line 1") != NULL);
    }
    CHECK_EQ(model_config_parse("[1]", 3, &c, err, sizeof err), ERR_PARSE);
    CHECK_STREQ(err, "config.json: must be a JSON object");
    CHECK_EQ(model_config_parse("7", 1, &c, err, sizeof err), ERR_PARSE);
    size_t n = ((size_t)1 << 20) + 1;
    char *big = malloc(n);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    CHECK_EQ(model_config_parse(big, n, &c, err, sizeof err), ERR_LIMIT);
    CHECK(strstr(err, "config.json: 1048577 bytes, above the 1 MiB limit") != NULL);
    CHECK_EQ(generation_config_parse(big, n, &(struct generation_config){0}, err, sizeof err),
             ERR_LIMIT);
    CHECK(strstr(err, "generation_config.json: 1048577 bytes") != NULL);
    /* and from a file */
    char dir[64] = "/tmp/kiln-mc-XXXXXX", path[128];
    REQUIRE(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "wb");
    REQUIRE(f != NULL);
    fwrite(big, 1, n, f);
    fclose(f);
    CHECK_EQ(model_config_load(dir, &c, err, sizeof err), ERR_LIMIT);
    unlink(path);
    CHECK_EQ(model_config_load(dir, &c, err, sizeof err), ERR_IO);
    CHECK(strstr(err, "config.json: no such file in /tmp/kiln-mc-") != NULL);
    /* no generation_config.json: every default */
    struct generation_config g;
    memset(&g, 0x5a, sizeof g);
    CHECK_EQ(generation_config_load(dir, &g, err, sizeof err), 0);
    CHECK_EQ(g.has_temperature || g.has_top_p || g.has_top_k || g.has_min_p ||
                 g.has_repetition_penalty || g.has_max_new_tokens,
             false);
    CHECK_EQ(g.bos_token_id, -1);
    CHECK_EQ(g.num_eos, 0);
    rmdir(dir);
    free(big);
}

/* ---- generation_config.json ---- */

static int gparse(const char *text, struct generation_config *g, char *err)
{
    err[0] = '\0';
    return generation_config_parse(text, strlen(text), g, err, 512);
}

TEST(generation_defaults_and_values)
{
    char err[512];
    struct generation_config g;
    memset(&g, 0x5a, sizeof g);
    REQUIRE(gparse("{\"do_sample\": true, \"max_length\": 10}", &g, err) == 0);
    CHECK_EQ(g.has_temperature || g.has_top_p || g.has_top_k || g.has_min_p ||
                 g.has_repetition_penalty || g.has_max_new_tokens,
             false);
    CHECK_EQ(g.bos_token_id, -1);
    CHECK_EQ(g.num_eos, 0);
    REQUIRE(gparse("{\"temperature\": 0, \"top_p\": 1, \"top_k\": 0, \"min_p\": 0.05,"
                   " \"repetition_penalty\": 1, \"max_new_tokens\": 256, \"bos_token_id\": 3,"
                   " \"eos_token_id\": 7, \"pad_token_id\": null}",
                   &g, err) == 0);
    CHECK(g.has_temperature && g.temperature == 0);
    CHECK(g.has_top_p && g.top_p == 1.0);
    CHECK(g.has_top_k && g.top_k == 0);
    CHECK(g.has_min_p && g.min_p == 0.05);
    CHECK(g.has_repetition_penalty && g.repetition_penalty == 1.0);
    CHECK(g.has_max_new_tokens && g.max_new_tokens == 256);
    CHECK_EQ(g.bos_token_id, 3);
    CHECK_EQ(g.num_eos, 1);
    CHECK_EQ(g.eos_token_ids[0], 7);
    REQUIRE(gparse("{\"temperature\": null, \"top_k\": null}", &g, err) == 0);
    CHECK_EQ(g.has_temperature, false);
    CHECK_EQ(g.has_top_k, false);
}

TEST(generation_errors)
{
    static const struct {
        const char *text;
        int code;
        const char *piece;
    } cases[] = {
        {"{\"temperature\": \"0.7\"}", ERR_PARSE, "temperature: must be a number"},
        {"{\"temperature\": -0.1}", ERR_RANGE, "temperature: -0.1 is outside [0, inf]"},
        {"{\"top_p\": 0}", ERR_RANGE, "top_p: 0 is outside (0, 1]"},
        {"{\"top_p\": 1.5}", ERR_RANGE, "top_p: 1.5 is outside (0, 1]"},
        {"{\"min_p\": 2}", ERR_RANGE, "min_p: 2 is outside [0, 1]"},
        {"{\"repetition_penalty\": 0}", ERR_RANGE, "repetition_penalty: 0 is outside (0, inf]"},
        {"{\"top_k\": 2.5}", ERR_PARSE, "top_k: must be an integer"},
        {"{\"top_k\": -1}", ERR_RANGE, "top_k: -1 is outside"},
        {"{\"max_new_tokens\": 0}", ERR_RANGE, "max_new_tokens: 0 is outside"},
        {"{\"bos_token_id\": true}", ERR_PARSE, "bos_token_id: must be an integer"},
        {"{\"eos_token_id\": [-1]}", ERR_RANGE, "eos_token_id: [0]: -1 is not a token id"},
        {"{\"eos_token_id\": [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]}", ERR_RANGE,
         "eos_token_id: 17 ids, at most 16"},
        {"{\"eos_token_id\": {}}", ERR_PARSE, "eos_token_id: must be an integer or a list"},
        {"not json", ERR_PARSE, "generation_config.json: not valid JSON"},
        {"[]", ERR_PARSE, "generation_config.json: must be a JSON object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char err[512];
        struct generation_config g;
        int rc = gparse(cases[i].text, &g, err);
        if (rc != cases[i].code || !strstr(err, cases[i].piece) ||
            strncmp(err, "generation_config.json: ", 24) != 0)
            TEST_FAIL_AT("%s: got %s \"%s\", want %s with \"%s\"", cases[i].text, err_name(rc), err,
                         err_name(cases[i].code), cases[i].piece);
    }
}

TEST(small_err_buffers)
{
    char err[6];
    struct model_config c;
    CHECK_EQ(model_config_parse("[]", 2, &c, err, sizeof err), ERR_PARSE);
    CHECK_STREQ(err, "confi");
    CHECK_EQ(model_config_parse("[]", 2, &c, NULL, 0), ERR_PARSE);
}

int main(int argc, char **argv)
{
    return test_main(argc, argv);
}
