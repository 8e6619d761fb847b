/* model_config: config.json and generation_config.json readers (see model_config.h). */
#include "model_config.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"

#define MC_MAX_TEXT ((size_t)1 << 20) /* bytes of either file */
#define MC_MAX_ID 0x7fffffff          /* token ids */
#define MC_PATH_MAX 4096

/* The file being read, for messages. */
struct mc_ctx {
    const char *file;   /* "config.json" */
    const char *prefix; /* the object being read ("rope_scaling"), or NULL at the top */
    char *err;
    size_t errlen;
};

/* mc_fail: "<file>: <field>: <message>" into err, on one line; returns code. */
static int mc_fail(const struct mc_ctx *c, int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int mc_fail(const struct mc_ctx *c, int code, const char *field, const char *fmt, ...)
{
    if (!c->err || !c->errlen)
        return code;
    const char *pre = c->prefix ? c->prefix : "", *dot = c->prefix && field ? "." : "";
    int n = field || c->prefix
                ? snprintf(c->err, c->errlen, "%s: %s%s%s: ", c->file, pre, dot, field ? field : "")
                : snprintf(c->err, c->errlen, "%s: ", c->file);
    if (n >= 0 && (size_t)n < c->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    for (char *s = c->err; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
    return code;
}

/* mc_get: obj[key], or NULL when absent or null. */
static const json_t *mc_get(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

/* mc_int: obj[key] as an integer in [min, max]; absent or null gives def, or ERR_RANGE when
 * required. */
static int mc_int(const struct mc_ctx *c, const json_t *obj, const char *key, bool required,
                  int def, int min, int max, int *out)
{
    const json_t *v = mc_get(obj, key);
    if (!v) {
        *out = def;
        return required ? mc_fail(c, ERR_RANGE, key, "missing (required)") : 0;
    }
    if (!json_is_integer(v))
        return mc_fail(c, ERR_PARSE, key, "must be an integer");
    json_int_t x = json_integer_value(v);
    if (x < min || x > max)
        return mc_fail(c, ERR_RANGE, key, "%lld is outside [%d, %d]", (long long)x, min, max);
    *out = (int)x;
    return 0;
}

/* mc_num: obj[key] as a finite number (integer or real); *present says whether it was set
 * (absent or null leave *out alone). */
static int mc_num(const struct mc_ctx *c, const json_t *obj, const char *key, double *out,
                  bool *present)
{
    const json_t *v = mc_get(obj, key);
    *present = v != NULL;
    if (!v)
        return 0;
    if (!json_is_number(v))
        return mc_fail(c, ERR_PARSE, key, "must be a number");
    double x = json_number_value(v);
    if (!isfinite(x))
        return mc_fail(c, ERR_RANGE, key, "must be finite");
    *out = x;
    return 0;
}

/* mc_bool: obj[key] as true or false; absent or null gives def. */
static int mc_bool(const struct mc_ctx *c, const json_t *obj, const char *key, bool def, bool *out)
{
    const json_t *v = mc_get(obj, key);
    *out = def;
    if (!v)
        return 0;
    if (!json_is_boolean(v))
        return mc_fail(c, ERR_PARSE, key, "must be true or false");
    *out = json_is_true(v);
    return 0;
}

/* mc_str: obj[key] as a string, or NULL when absent or null. */
static int mc_str(const struct mc_ctx *c, const json_t *obj, const char *key, const char **out)
{
    const json_t *v = mc_get(obj, key);
    *out = NULL;
    if (!v)
        return 0;
    if (!json_is_string(v))
        return mc_fail(c, ERR_PARSE, key, "must be a string");
    *out = json_string_value(v);
    return 0;
}

/* mc_ids: obj[key] as one token id or a list of at most MODEL_CONFIG_MAX_EOS ids. */
static int mc_ids(const struct mc_ctx *c, const json_t *obj, const char *key, int32_t *ids, int *n)
{
    const json_t *v = mc_get(obj, key);
    *n = 0;
    if (!v)
        return 0;
    if (json_is_integer(v)) {
        int id;
        int rc = mc_int(c, obj, key, false, 0, 0, MC_MAX_ID, &id);
        if (rc == 0)
            ids[(*n)++] = id;
        return rc;
    }
    if (!json_is_array(v))
        return mc_fail(c, ERR_PARSE, key, "must be an integer or a list of integers");
    if (json_array_size(v) > MODEL_CONFIG_MAX_EOS)
        return mc_fail(c, ERR_RANGE, key, "%zu ids, at most %d", json_array_size(v),
                       MODEL_CONFIG_MAX_EOS);
    for (size_t i = 0; i < json_array_size(v); i++) {
        const json_t *e = json_array_get(v, i);
        if (!json_is_integer(e))
            return mc_fail(c, ERR_PARSE, key, "[%zu] must be an integer", i);
        if (json_integer_value(e) < 0 || json_integer_value(e) > MC_MAX_ID)
            return mc_fail(c, ERR_RANGE, key, "[%zu]: %lld is not a token id", i,
                           (long long)json_integer_value(e));
        ids[(*n)++] = (int32_t)json_integer_value(e);
    }
    return 0;
}

/* mc_load: text[0..n) parsed into a JSON object. */
static int mc_load(const struct mc_ctx *c, const char *text, size_t n, json_t **root)
{
    *root = NULL;
    if (n > MC_MAX_TEXT)
        return mc_fail(c, ERR_LIMIT, NULL, "%zu bytes, above the 1 MiB limit", n);
    json_error_t je;
    json_t *j = json_loadb(text, n, JSON_DECODE_ANY, &je);
    if (!j)
        return mc_fail(c, ERR_PARSE, NULL, "not valid JSON at line %d column %d: %s", je.line,
                       je.column, je.text);
    if (!json_is_object(j)) {
        json_decref(j);
        return mc_fail(c, ERR_PARSE, NULL, "must be a JSON object");
    }
    *root = j;
    return 0;
}

/* mc_read: DIR/name into a NUL-terminated buffer of at most MC_MAX_TEXT bytes. ERR_NOTFOUND
 * when the file does not exist (no message), ERR_IO, ERR_LIMIT, ERR_NOMEM. */
static int mc_read(const struct mc_ctx *c, const char *dir, char **out, size_t *n)
{
    char path[MC_PATH_MAX];
    int len = snprintf(path, sizeof path, "%s/%s", dir, c->file);
    if (len < 0 || (size_t)len >= sizeof path)
        return mc_fail(c, ERR_IO, NULL, "path too long in %s", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? ERR_NOTFOUND
                               : mc_fail(c, ERR_IO, NULL, "%s: %s", path, strerror(errno));
    struct stat st;
    char *p = NULL;
    size_t got = 0;
    int rc = 0;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode))
        rc = mc_fail(c, ERR_IO, NULL, "%s: not a readable regular file", path);
    else if ((uint64_t)st.st_size > MC_MAX_TEXT)
        rc =
            mc_fail(c, ERR_LIMIT, NULL, "%lld bytes, above the 1 MiB limit", (long long)st.st_size);
    else if (!(p = malloc((size_t)st.st_size + 1)))
        rc = mc_fail(c, ERR_NOMEM, NULL, "out of memory");
    while (rc == 0 && got < (size_t)st.st_size) {
        ssize_t r = read(fd, p + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            rc = mc_fail(c, ERR_IO, NULL, "%s: read failed", path);
        else
            got += (size_t)r;
    }
    close(fd);
    if (rc) {
        free(p);
        return rc;
    }
    p[got] = '\0';
    *out = p;
    *n = got;
    return 0;
}

/* ---- config.json ---- */

static const struct {
    const char *arch, *model_type;
    enum model_arch id;
    int max_pos;    /* transformers' default max_position_embeddings */
    int kv_heads;   /* its num_key_value_heads when absent; 0: num_attention_heads */
    bool honors_sw; /* sliding_window is read (Qwen2: only with use_sliding_window) */
} ARCHS[] = {
    {"LlamaForCausalLM", "llama", MODEL_ARCH_LLAMA, 2048, 0, false},
    {"MistralForCausalLM", "mistral", MODEL_ARCH_MISTRAL, 4096 * 32, 8, true},
    {"Qwen2ForCausalLM", "qwen2", MODEL_ARCH_QWEN2, 32768, 32, true},
};
#define N_ARCHS (sizeof ARCHS / sizeof ARCHS[0])

/* parse_arch: architectures[0], or model_type when architectures is absent or empty;
 * *which is the row of ARCHS. */
static int parse_arch(const struct mc_ctx *c, const json_t *root, struct model_config *m,
                      size_t *which)
{
    const json_t *a = mc_get(root, "architectures");
    const char *name = NULL, *type = NULL;
    if (a && (!json_is_array(a) || (json_array_size(a) && !json_is_string(json_array_get(a, 0)))))
        return mc_fail(c, ERR_PARSE, "architectures", "must be a list of strings");
    if (a && json_array_size(a)) {
        name = json_string_value(json_array_get(a, 0));
    } else {
        int rc = mc_str(c, root, "model_type", &type);
        if (rc)
            return rc;
        if (!type)
            return mc_fail(c, ERR_RANGE, "architectures", "missing, and no model_type either");
    }
    for (size_t i = 0; i < N_ARCHS; i++) {
        if (strcmp(name ? name : type, name ? ARCHS[i].arch : ARCHS[i].model_type) == 0) {
            m->arch = ARCHS[i].id;
            snprintf(m->arch_name, sizeof m->arch_name, "%s", ARCHS[i].arch);
            *which = i;
            return 0;
        }
    }
    return mc_fail(c, ERR_UNSUPPORTED, name ? "architectures" : "model_type",
                   "\"%.64s\" is not supported (kiln runs LlamaForCausalLM, MistralForCausalLM "
                   "and Qwen2ForCausalLM)",
                   name ? name : type);
}

/* parse_head_dim: head_dim, or hidden_size / num_attention_heads when absent or null. */
static int parse_head_dim(const struct mc_ctx *c, const json_t *root, struct model_config *m)
{
    if (mc_get(root, "head_dim")) {
        int rc = mc_int(c, root, "head_dim", true, 0, 1, 1024, &m->head_dim);
        if (rc)
            return rc;
    } else if (m->hidden_size % m->num_heads) {
        return mc_fail(c, ERR_RANGE, "head_dim",
                       "absent, and hidden_size %d is not a multiple of num_attention_heads %d",
                       m->hidden_size, m->num_heads);
    } else if ((m->head_dim = m->hidden_size / m->num_heads) > 1024) {
        return mc_fail(c, ERR_RANGE, "head_dim",
                       "absent, and hidden_size / num_attention_heads = %d is above 1024",
                       m->head_dim);
    }
    if (m->head_dim % 2)
        return mc_fail(c, ERR_RANGE, "head_dim", "%d is odd (rotary embeddings need pairs)",
                       m->head_dim);
    return 0;
}

static int parse_sizes(const struct mc_ctx *c, const json_t *root, size_t which,
                       struct model_config *m)
{
    int rc;
    if ((rc = mc_int(c, root, "hidden_size", true, 0, 1, 1 << 20, &m->hidden_size)) ||
        (rc = mc_int(c, root, "intermediate_size", true, 0, 1, 1 << 20, &m->intermediate_size)) ||
        (rc = mc_int(c, root, "num_hidden_layers", true, 0, 1, 1024, &m->num_layers)) ||
        (rc = mc_int(c, root, "num_attention_heads", true, 0, 1, 1024, &m->num_heads)) ||
        (rc = mc_int(c, root, "vocab_size", true, 0, 1, 1 << 24, &m->vocab_size)))
        return rc;
    /* transformers: absent takes the class default, an explicit null num_attention_heads */
    bool absent = json_object_get(root, "num_key_value_heads") == NULL;
    int kv_def = absent && ARCHS[which].kv_heads ? ARCHS[which].kv_heads : m->num_heads;
    if ((rc = mc_int(c, root, "num_key_value_heads", false, kv_def, 1, 1024, &m->num_kv_heads)))
        return rc;
    if (m->num_heads % m->num_kv_heads)
        return mc_fail(c, ERR_RANGE, "num_key_value_heads",
                       "%d does not divide num_attention_heads %d", m->num_kv_heads, m->num_heads);
    return parse_head_dim(c, root, m);
}

/* rope_number: s[key], a finite number > 0; required. */
static int rope_number(const struct mc_ctx *c, const json_t *s, const char *key, double *out)
{
    bool set;
    int rc = mc_num(c, s, key, out, &set);
    if (rc)
        return rc;
    if (!set)
        return mc_fail(c, ERR_RANGE, key, "missing (required by this rope_type)");
    if (*out <= 0)
        return mc_fail(c, ERR_RANGE, key, "%g must be > 0", *out);
    return 0;
}

/* parse_rope_scaling: the rope_scaling object s (c->prefix names it); a missing type is
 * "default" in the newer rope_parameters spelling (type_required false). */
static int parse_rope_scaling(const struct mc_ctx *c, const json_t *s, bool type_required,
                              struct model_config *m)
{
    const char *type = NULL;
    int rc = mc_str(c, s, "rope_type", &type);
    if (rc == 0 && !type)
        rc = mc_str(c, s, "type", &type);
    if (rc)
        return rc;
    if (!type && type_required)
        return mc_fail(c, ERR_PARSE, "rope_type", "missing");
    if (!type || strcmp(type, "default") == 0)
        return 0;
    if (strcmp(type, "linear") == 0) {
        m->rope_type = ROPE_SCALING_LINEAR;
        return rope_number(c, s, "factor", &m->rope_factor);
    }
    bool llama3 = strcmp(type, "llama3") == 0;
    if (!llama3 && strcmp(type, "dynamic") != 0)
        return mc_fail(c, ERR_UNSUPPORTED, "rope_type",
                       "\"%.64s\" is not supported (kiln implements default, linear, dynamic "
                       "and llama3)",
                       type);
    m->rope_type = llama3 ? ROPE_SCALING_LLAMA3 : ROPE_SCALING_DYNAMIC;
    if ((rc = rope_number(c, s, "factor", &m->rope_factor)) ||
        (rc = mc_int(c, s, "original_max_position_embeddings", llama3, m->max_position_embeddings,
                     1, 1 << 24, &m->rope_original_max_pos)))
        return rc;
    if (!llama3)
        return 0;
    if ((rc = rope_number(c, s, "low_freq_factor", &m->rope_low_freq_factor)) ||
        (rc = rope_number(c, s, "high_freq_factor", &m->rope_high_freq_factor)))
        return rc;
    if (m->rope_high_freq_factor <= m->rope_low_freq_factor)
        return mc_fail(c, ERR_RANGE, "high_freq_factor", "%g must be above low_freq_factor %g",
                       m->rope_high_freq_factor, m->rope_low_freq_factor);
    return 0;
}

/* parse_rope: max_position_embeddings, rms_norm_eps, rope_theta and the scaling, from
 * rope_theta/rope_scaling or the newer rope_parameters object. */
static int parse_rope(const struct mc_ctx *c, const json_t *root, size_t which,
                      struct model_config *m)
{
    bool set;
    int rc;
    m->rms_norm_eps = 1e-6;
    m->rope_theta = 10000.0;
    if ((rc = mc_int(c, root, "max_position_embeddings", false, ARCHS[which].max_pos, 1, 1 << 24,
                     &m->max_position_embeddings)) ||
        (rc = mc_num(c, root, "rms_norm_eps", &m->rms_norm_eps, &set)))
        return rc;
    if (!(m->rms_norm_eps > 0 && m->rms_norm_eps < 1))
        return mc_fail(c, ERR_RANGE, "rms_norm_eps", "%g is outside (0, 1)", m->rms_norm_eps);
    const json_t *params = mc_get(root, "rope_parameters"), *scaling = mc_get(root, "rope_scaling");
    struct mc_ctx pc = *c;
    pc.prefix = "rope_parameters";
    if (params && !json_is_object(params))
        return mc_fail(c, ERR_PARSE, "rope_parameters", "must be an object");
    bool top;
    if ((rc = mc_num(c, root, "rope_theta", &m->rope_theta, &top)) ||
        (!top && params && (rc = mc_num(&pc, params, "rope_theta", &m->rope_theta, &set))))
        return rc;
    if (m->rope_theta <= 0)
        return mc_fail(top ? c : &pc, ERR_RANGE, "rope_theta", "%g must be > 0", m->rope_theta);
    m->rope_type = ROPE_SCALING_NONE;
    m->rope_factor = 1.0;
    m->rope_original_max_pos = m->max_position_embeddings;
    if (scaling && !json_is_object(scaling))
        return mc_fail(c, ERR_PARSE, "rope_scaling", "must be an object or null");
    if (scaling) {
        pc.prefix = "rope_scaling";
        return parse_rope_scaling(&pc, scaling, true, m);
    }
    return params ? parse_rope_scaling(&pc, params, false, m) : 0;
}

/* parse_sliding: Mistral's sliding_window (absent: transformers' 4096; null or 0: none);
 * Qwen2's only with use_sliding_window, and only when it covers every layer (transformers
 * slides on layers >= max_window_layers, default 28). Llama has none. */
static int parse_sliding(const struct mc_ctx *c, const json_t *root, size_t which,
                         struct model_config *m)
{
    bool use = true;
    int sw, mwl, rc;
    m->sliding_window = 0;
    if (!ARCHS[which].honors_sw)
        return 0;
    if (m->arch == MODEL_ARCH_QWEN2 && (rc = mc_bool(c, root, "use_sliding_window", false, &use)))
        return rc;
    if (!use)
        return 0;
    int def = json_object_get(root, "sliding_window") ? 0 : 4096;
    if ((rc = mc_int(c, root, "sliding_window", false, def, 0, 1 << 30, &sw)))
        return rc;
    if (m->arch != MODEL_ARCH_QWEN2 || sw == 0) {
        m->sliding_window = sw;
        return 0;
    }
    if ((rc = mc_int(c, root, "max_window_layers", false, 28, 0, 1 << 30, &mwl)))
        return rc;
    if (mwl > 0 && mwl < m->num_layers)
        return mc_fail(c, ERR_UNSUPPORTED, "max_window_layers",
                       "%d: a sliding window on layers %d..%d only is not supported", mwl, mwl,
                       m->num_layers - 1);
    m->sliding_window = mwl == 0 ? sw : 0;
    return 0;
}

/* parse_features: activation, biases, tied embeddings, quantization, sliding window. */
static int parse_features(const struct mc_ctx *c, const json_t *root, size_t which,
                          struct model_config *m)
{
    const char *act;
    bool mlp_bias, attn_bias;
    int rc;
    if ((rc = mc_str(c, root, "hidden_act", &act)))
        return rc;
    if (act && strcmp(act, "silu") != 0 && strcmp(act, "swish") != 0)
        return mc_fail(c, ERR_UNSUPPORTED, "hidden_act", "\"%.64s\" is not supported (only silu)",
                       act);
    if ((rc = mc_bool(c, root, "mlp_bias", false, &mlp_bias)) ||
        (rc = mc_bool(c, root, "attention_bias", false, &attn_bias)) ||
        (rc = mc_bool(c, root, "tie_word_embeddings", false, &m->tie_word_embeddings)))
        return rc;
    /* transformers reads mlp_bias and attention_bias for Llama only: Mistral has no biases,
     * Qwen2 always a q/k/v bias */
    if (mlp_bias && m->arch == MODEL_ARCH_LLAMA)
        return mc_fail(c, ERR_UNSUPPORTED, "mlp_bias", "true is not supported");
    m->qkv_bias = m->arch == MODEL_ARCH_QWEN2 || (m->arch == MODEL_ARCH_LLAMA && attn_bias);
    m->o_bias = m->arch == MODEL_ARCH_LLAMA && attn_bias;
    const json_t *q = mc_get(root, "quantization_config");
    if (q) {
        const json_t *method = json_object_get(q, "quant_method");
        return mc_fail(c, ERR_UNSUPPORTED, "quantization_config",
                       "quantized checkpoints (%.32s) are not supported",
                       json_is_string(method) ? json_string_value(method) : "?");
    }
    return parse_sliding(c, root, which, m);
}

/* parse_tokens: bos and eos ids, and the informational torch_dtype (or dtype). */
static int parse_tokens(const struct mc_ctx *c, const json_t *root, struct model_config *m)
{
    const char *dtype, *key = "torch_dtype";
    int rc;
    if ((rc = mc_int(c, root, "bos_token_id", false, -1, 0, MC_MAX_ID, &m->bos_token_id)) ||
        (rc = mc_ids(c, root, "eos_token_id", m->eos_token_ids, &m->num_eos)) ||
        (rc = mc_str(c, root, key, &dtype)))
        return rc;
    if (!dtype && (rc = mc_str(c, root, key = "dtype", &dtype)))
        return rc;
    if (dtype && strlen(dtype) >= sizeof m->torch_dtype)
        return mc_fail(c, ERR_RANGE, key, "\"%.64s\" is not a torch dtype", dtype);
    snprintf(m->torch_dtype, sizeof m->torch_dtype, "%s", dtype ? dtype : "");
    return 0;
}

int model_config_parse(const char *text, size_t n, struct model_config *c, char *err, size_t errlen)
{
    struct mc_ctx ctx = {.file = "config.json", .err = err, .errlen = errlen};
    json_t *root;
    size_t which = 0;
    memset(c, 0, sizeof *c);
    int rc = mc_load(&ctx, text, n, &root);
    if (rc)
        return rc;
    if ((rc = parse_arch(&ctx, root, c, &which)) || (rc = parse_sizes(&ctx, root, which, c)) ||
        (rc = parse_rope(&ctx, root, which, c)) || (rc = parse_features(&ctx, root, which, c)))
        goto fail_root;
    rc = parse_tokens(&ctx, root, c);

fail_root:
    json_decref(root);
    return rc;
}

int model_config_load(const char *dir, struct model_config *c, char *err, size_t errlen)
{
    struct mc_ctx ctx = {.file = "config.json", .err = err, .errlen = errlen};
    char *text;
    size_t n;
    memset(c, 0, sizeof *c);
    int rc = mc_read(&ctx, dir, &text, &n);
    if (rc == ERR_NOTFOUND)
        return mc_fail(&ctx, ERR_IO, NULL, "no such file in %s", dir);
    if (rc)
        return rc;
    rc = model_config_parse(text, n, c, err, errlen);
    free(text);
    return rc;
}

/* ---- generation_config.json ---- */

/* gen_number: obj[key] into *out when present, within [lo, hi] (lo excluded when open). */
static int gen_number(const struct mc_ctx *c, const json_t *root, const char *key, double lo,
                      bool open, double hi, double *out, bool *has)
{
    int rc = mc_num(c, root, key, out, has);
    if (rc || !*has)
        return rc;
    if (*out < lo || (open && *out == lo) || *out > hi)
        return mc_fail(c, ERR_RANGE, key, "%g is outside %s%g, %g]", *out, open ? "(" : "[", lo,
                       hi);
    return 0;
}

int generation_config_parse(const char *text, size_t n, struct generation_config *g, char *err,
                            size_t errlen)
{
    struct mc_ctx ctx = {.file = "generation_config.json", .err = err, .errlen = errlen};
    json_t *root;
    memset(g, 0, sizeof *g);
    g->bos_token_id = -1;
    int rc = mc_load(&ctx, text, n, &root);
    if (rc)
        return rc;
    g->has_top_k = mc_get(root, "top_k") != NULL;
    g->has_max_new_tokens = mc_get(root, "max_new_tokens") != NULL;
    if ((rc = gen_number(&ctx, root, "temperature", 0, false, HUGE_VAL, &g->temperature,
                         &g->has_temperature)) ||
        (rc = gen_number(&ctx, root, "top_p", 0, true, 1, &g->top_p, &g->has_top_p)) ||
        (rc = gen_number(&ctx, root, "min_p", 0, false, 1, &g->min_p, &g->has_min_p)) ||
        (rc = gen_number(&ctx, root, "repetition_penalty", 0, true, HUGE_VAL,
                         &g->repetition_penalty, &g->has_repetition_penalty)) ||
        (rc = mc_int(&ctx, root, "top_k", false, 0, 0, 1 << 30, &g->top_k)) ||
        (rc = mc_int(&ctx, root, "max_new_tokens", false, 0, 1, 1 << 30, &g->max_new_tokens)) ||
        (rc = mc_int(&ctx, root, "bos_token_id", false, -1, 0, MC_MAX_ID, &g->bos_token_id)))
        goto fail_root;
    rc = mc_ids(&ctx, root, "eos_token_id", g->eos_token_ids, &g->num_eos);

fail_root:
    json_decref(root);
    return rc;
}

int generation_config_load(const char *dir, struct generation_config *g, char *err, size_t errlen)
{
    struct mc_ctx ctx = {.file = "generation_config.json", .err = err, .errlen = errlen};
    char *text;
    size_t n;
    int rc = mc_read(&ctx, dir, &text, &n);
    if (rc) {
        memset(g, 0, sizeof *g);
        g->bos_token_id = -1;
        return rc == ERR_NOTFOUND ? 0 : rc;
    }
    rc = generation_config_parse(text, n, g, err, errlen);
    free(text);
    return rc;
}
