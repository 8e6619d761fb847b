/*
 * model_load: builds a struct model from a Hugging Face directory: config, weights
 * (checked tensor by tensor against the config, then packed by the backend, each file
 * range released as soon as it is copied so that resident memory stays near the packed
 * size), KV cache and workspaces. See model.h.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/safetensors.h"
#include "worker/model.h"
#include "worker/model_internal.h"
#include "worker/rope.h"

struct loader {
    struct model *m;
    const struct model_opts *o;
    struct st_model *st; /* NULL for dummy weights */
    uint64_t next_seed;
    char *err;
    size_t errlen;
};

static int fail(struct loader *L, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct loader *L, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(L->err, L->errlen, fmt, ap);
    va_end(ap);
    return code;
}

/* find: the tensor `name`, checked to be F32/F16/BF16 of shape [rows] (cols == 0) or
 * [rows, cols]. Sets *t NULL for dummy loads. */
static int find(struct loader *L, const char *name, size_t rows, size_t cols,
                const struct st_tensor **t)
{
    *t = NULL;
    if (!L->st)
        return 0;
    const struct st_tensor *x = st_find(L->st, name);
    if (!x)
        return fail(L, ERR_NOTFOUND, "weights: tensor \"%s\" is missing", name);
    if (x->dtype != ST_F32 && x->dtype != ST_F16 && x->dtype != ST_BF16)
        return fail(L, ERR_UNSUPPORTED,
                    "weights: tensor \"%s\" has dtype %s (F32, F16 or BF16 "
                    "expected)",
                    name, st_dtype_name(x->dtype));
    int want_dims = cols ? 2 : 1;
    if (x->n_dims != want_dims || (uint64_t)x->shape[0] != rows ||
        (cols && (uint64_t)x->shape[1] != cols)) {
        char got[96] = "[", *p = got + 1;
        for (int d = 0; d < x->n_dims && p < got + sizeof got - 24; d++)
            p += sprintf(p, "%s%lld", d ? ", " : "", (long long)x->shape[d]);
        strcpy(p, "]");
        if (cols)
            return fail(L, ERR_RANGE,
                        "weights: tensor \"%s\" has shape %s, config.json implies "
                        "[%zu, %zu]",
                        name, got, rows, cols);
        return fail(L, ERR_RANGE, "weights: tensor \"%s\" has shape %s, config.json implies [%zu]",
                    name, got, rows);
    }
    *t = x;
    return 0;
}

static enum kn_dtype kn_of(enum st_dtype t)
{
    return t == ST_F32 ? KN_F32 : t == ST_F16 ? KN_F16 : KN_BF16;
}

/* A stacked part: rows [row0, row0 + rows) of tensor name ([full_rows, full_cols]) and of
 * its bias [full_rows] when bias is not NULL. */
struct part_spec {
    const char *name, *bias;
    size_t full_rows, row0, rows;
};

/* part: fills p from spec, taking columns [col0, col0 + cols) of each row. */
static int part(struct loader *L, struct backend_mat_part *p, const struct part_spec *sp,
                size_t full_cols, size_t col0, size_t cols)
{
    const struct st_tensor *t, *b = NULL;
    int rc = find(L, sp->name, sp->full_rows, full_cols, &t);
    if (rc == 0 && sp->bias)
        rc = find(L, sp->bias, sp->full_rows, 0, &b);
    if (rc)
        return rc;
    *p = (struct backend_mat_part){.rows = sp->rows,
                                   .src_cols = full_cols,
                                   .col0 = col0,
                                   .seed = ++L->next_seed + L->o->seed * 1000003u,
                                   .scale = (float)(1.0 / sqrt((double)cols))};
    if (t) {
        p->dtype = kn_of(t->dtype);
        p->data = (const char *)t->data + sp->row0 * full_cols * st_dtype_size(t->dtype);
    }
    if (b) {
        p->bias_dtype = kn_of(b->dtype);
        p->bias = (const char *)b->data + sp->row0 * st_dtype_size(b->dtype);
    }
    return 0;
}

static void release(struct loader *L, const char *name)
{
    const struct st_tensor *t = L->st && name ? st_find(L->st, name) : NULL;
    if (t)
        st_release(L->st, t);
}

/* matrix: builds a matrix of n stacked parts, columns [col0, col0 + cols) of tensors
 * full_cols wide. */
static int matrix(struct loader *L, int n, const struct part_spec *sp, size_t full_cols,
                  size_t col0, size_t cols, struct backend_mat **out)
{
    struct backend_mat_desc d = {.cols = cols, .n_parts = n};
    for (int i = 0; i < n; i++) {
        int rc = part(L, &d.parts[i], &sp[i], full_cols, col0, cols);
        if (rc)
            return rc;
    }
    d.dtype = d.parts[0].data ? d.parts[0].dtype : L->o->dummy_dtype;
    int rc = L->m->be->ops->mat_new(L->m->be, &d, out);
    if (rc)
        return fail(L, rc, "weights: cannot build \"%s\" (%zu x %zu)", sp[0].name, sp[0].rows,
                    cols);
    L->m->weight_bytes += L->m->be->ops->mat_bytes(*out);
    for (int i = 0; i < n; i++) {
        release(L, sp[i].name);
        release(L, sp[i].bias);
    }
    return 0;
}

/* norm: an RMSNorm weight [dim] as fp32 on the device (ones for dummy loads). */
static int norm(struct loader *L, const char *name, size_t dim, float **out)
{
    const struct st_tensor *t;
    int rc = find(L, name, dim, 0, &t);
    if (rc)
        return rc;
    float *host = malloc(dim * sizeof(float));
    *out = L->m->be->ops->alloc(L->m->be, dim * sizeof(float));
    if (!host || !*out) {
        free(host);
        return fail(L, ERR_NOMEM, "out of memory loading \"%s\"", name);
    }
    if (t)
        kn_ref_to_f32(host, t->data, kn_of(t->dtype), dim);
    else
        for (size_t i = 0; i < dim; i++)
            host[i] = 1.0f;
    L->m->be->ops->upload(L->m->be, *out, host, dim * sizeof(float));
    L->m->weight_bytes += dim * sizeof(float);
    free(host);
    if (t)
        st_release(L->st, t);
    return 0;
}

/* load_layer: layer i's norms and matrices, this rank's shard of them: its heads of q, k
 * and v, the matching columns of o, its rows of gate and up, the matching columns of down.
 * o's bias is added by rank 0 only (the all-reduce sums the ranks' partial outputs). */
static int load_layer(struct loader *L, int i)
{
    struct model *m = L->m;
    struct model_layer *ly = &m->layers[i];
    size_t hid = (size_t)m->cfg.hidden_size, ff = (size_t)m->cfg.intermediate_size;
    size_t hd = (size_t)m->cfg.head_dim, r = (size_t)m->tp_rank;
    size_t q_full = (size_t)m->cfg.num_heads * hd, kv_full = (size_t)m->cfg.num_kv_heads * hd;
    char n[12][96];
    const char *sfx[12] = {"input_layernorm.weight",  "post_attention_layernorm.weight",
                           "self_attn.q_proj.weight", "self_attn.k_proj.weight",
                           "self_attn.v_proj.weight", "self_attn.o_proj.weight",
                           "mlp.gate_proj.weight",    "mlp.up_proj.weight",
                           "mlp.down_proj.weight",    "self_attn.q_proj.bias",
                           "self_attn.k_proj.bias",   "self_attn.v_proj.bias"};
    char ob[96];
    for (int k = 0; k < 12; k++)
        snprintf(n[k], sizeof n[k], "model.layers.%d.%s", i, sfx[k]);
    snprintf(ob, sizeof ob, "model.layers.%d.self_attn.o_proj.bias", i);
    int qb = m->cfg.qkv_bias;
    struct part_spec qkv[3] = {{n[2], qb ? n[9] : NULL, q_full, r * m->q_dim, m->q_dim},
                               {n[3], qb ? n[10] : NULL, kv_full, r * m->kv_dim, m->kv_dim},
                               {n[4], qb ? n[11] : NULL, kv_full, r * m->kv_dim, m->kv_dim}};
    struct part_spec o = {n[5], m->cfg.o_bias && r == 0 ? ob : NULL, hid, 0, hid};
    struct part_spec gu[2] = {{n[6], NULL, ff, r * m->ff, m->ff},
                              {n[7], NULL, ff, r * m->ff, m->ff}};
    struct part_spec dn = {n[8], NULL, hid, 0, hid};
    int rc = norm(L, n[0], hid, &ly->attn_norm);
    if (!rc)
        rc = norm(L, n[1], hid, &ly->mlp_norm);
    if (!rc)
        rc = matrix(L, 3, qkv, hid, 0, hid, &ly->qkv);
    if (!rc)
        rc = matrix(L, 1, &o, q_full, r * m->q_dim, m->q_dim, &ly->o);
    if (!rc)
        rc = matrix(L, 2, gu, hid, 0, hid, &ly->gate_up);
    if (!rc)
        rc = matrix(L, 1, &dn, ff, r * m->ff, m->ff, &ly->down);
    return rc;
}

static int load_weights(struct loader *L)
{
    struct model *m = L->m;
    size_t hid = (size_t)m->cfg.hidden_size, vocab = (size_t)m->cfg.vocab_size;
    struct part_spec emb = {"model.embed_tokens.weight", NULL, vocab, 0, vocab};
    struct part_spec head = {"lm_head.weight", NULL, vocab, 0, vocab};
    int rc = matrix(L, 1, &emb, hid, 0, hid, &m->embed);
    for (int i = 0; !rc && i < m->cfg.num_layers; i++)
        rc = load_layer(L, i);
    if (!rc)
        rc = norm(L, "model.norm.weight", hid, &m->final_norm);
    if (!rc && m->cfg.tie_word_embeddings)
        m->lm_head = m->embed;
    else if (!rc)
        rc = matrix(L, 1, &head, hid, 0, hid, &m->lm_head);
    return rc;
}

static size_t round_rows(size_t r)
{
    return BACKEND_ROUND_ROWS(r);
}

/* alloc_kv: one pool for every layer's K and V. */
static int alloc_kv(struct loader *L)
{
    struct model *m = L->m;
    size_t per =
        (size_t)m->num_blocks * m->n_kv_heads * (size_t)m->block_size * (size_t)m->cfg.head_dim;
    size_t total = per * 2 * (size_t)m->cfg.num_layers;
    if (total / 2 / (size_t)m->cfg.num_layers != per || total > ((size_t)1 << 40) / sizeof(float))
        return fail(L, ERR_LIMIT, "KV cache of %d blocks is too large", m->num_blocks);
    m->kv_mem = m->be->ops->alloc(m->be, total * sizeof(float));
    if (!m->kv_mem)
        return fail(L, ERR_NOMEM, "out of memory for the KV cache (%zu MiB)",
                    total * sizeof(float) >> 20);
    for (int i = 0; i < m->cfg.num_layers; i++) {
        struct kn_paged_kv *kv = &m->layers[i].kv;
        kv->k = m->kv_mem + per * 2 * (size_t)i;
        kv->v = kv->k + per;
        kv->n_blocks = (size_t)m->num_blocks;
        kv->n_kv_heads = m->n_kv_heads;
        kv->block_size = (size_t)m->block_size;
        kv->head_dim = (size_t)m->cfg.head_dim;
    }
    return 0;
}

static void *ws(struct model *m, size_t count, size_t elem, int *ok)
{
    void *p = m->be->ops->alloc(m->be, count * elem);
    if (!p)
        *ok = 0;
    return p;
}

static int alloc_workspaces(struct loader *L)
{
    struct model *m = L->m;
    size_t t = (size_t)m->max_batch_tokens, half = (size_t)m->cfg.head_dim / 2;
    m->ld_h = round_rows((size_t)m->cfg.hidden_size);
    m->ld_qkv = round_rows(m->q_dim + 2 * m->kv_dim);
    m->ld_q = round_rows(m->q_dim);
    m->ld_gu = round_rows(2 * m->ff);
    m->ld_ff = round_rows(m->ff);
    m->ld_vocab = round_rows((size_t)m->cfg.vocab_size);
    int ok = 1;
    m->x = ws(m, t * m->ld_h, sizeof(float), &ok);
    m->h = ws(m, t * m->ld_h, sizeof(float), &ok);
    m->qkv = ws(m, t * m->ld_qkv, sizeof(float), &ok);
    m->attn = ws(m, t * m->ld_q, sizeof(float), &ok);
    m->gu = ws(m, t * m->ld_gu, sizeof(float), &ok);
    m->act = ws(m, t * m->ld_ff, sizeof(float), &ok);
    m->cos_sin = ws(m, t * half * 2, sizeof(float), &ok);
    m->logits = ws(m, (size_t)m->max_logits * m->ld_vocab, sizeof(float), &ok);
    m->d_ids = ws(m, t, sizeof(int32_t), &ok);
    m->d_pos = ws(m, t, sizeof(int32_t), &ok);
    m->d_seq = ws(m, t, sizeof(int32_t), &ok);
    m->d_slots = ws(m, t, sizeof(int32_t), &ok);
    m->d_tables = ws(m, (size_t)m->max_seqs * m->max_blocks, sizeof(int32_t), &ok);
    m->h_cos_sin = malloc(t * half * 2 * sizeof(float));
    m->inv_freq = malloc(half * sizeof(double));
    if (!ok || !m->h_cos_sin || !m->inv_freq)
        return fail(L, ERR_NOMEM, "out of memory for workspaces (%d tokens per step)",
                    m->max_batch_tokens);
    rope_inv_freq(&m->cfg, m->inv_freq);
    return 0;
}

static int check_opts(struct loader *L, const struct model_opts *o)
{
    if (!o->backend)
        return fail(L, ERR_INVAL, "no backend");
    if (o->block_size < 1 || o->block_size > 1024)
        return fail(L, ERR_RANGE, "block size %d is outside [1, 1024]", o->block_size);
    if (o->num_blocks < 1 || o->max_batch_tokens < 1 || o->max_batch_tokens > (1 << 20) ||
        o->max_seqs < 1 || o->max_seqs > (1 << 16) || o->max_logits < 0 || o->max_model_len < 0 ||
        o->max_model_len > (1 << 24))
        return fail(L, ERR_RANGE, "invalid sizes: %d blocks, %d tokens, %d sequences, length %d",
                    o->num_blocks, o->max_batch_tokens, o->max_seqs, o->max_model_len);
    return 0;
}

/* shard: this rank's share of heads and MLP columns. */
static int shard(struct loader *L)
{
    struct model *m = L->m;
    const struct model_config *c = &m->cfg;
    int tp = L->o->tp_size > 1 ? L->o->tp_size : 1;
    if (L->o->tp_rank < 0 || L->o->tp_rank >= tp)
        return fail(L, ERR_RANGE, "tensor-parallel rank %d of %d", L->o->tp_rank, tp);
    if (c->num_heads % tp || c->num_kv_heads % tp || c->intermediate_size % tp)
        return fail(L, ERR_UNSUPPORTED,
                    "tensor parallel size %d does not divide num_attention_heads %d, "
                    "num_key_value_heads %d and intermediate_size %d",
                    tp, c->num_heads, c->num_kv_heads, c->intermediate_size);
    if (tp > 1 && !L->o->all_reduce)
        return fail(L, ERR_INVAL, "tensor parallel size %d without an all-reduce", tp);
    m->tp_size = tp;
    m->tp_rank = L->o->tp_rank;
    m->all_reduce = L->o->all_reduce;
    m->all_reduce_ctx = L->o->all_reduce_ctx;
    m->n_heads = (size_t)(c->num_heads / tp);
    m->n_kv_heads = (size_t)(c->num_kv_heads / tp);
    m->ff = (size_t)(c->intermediate_size / tp);
    m->q_dim = m->n_heads * (size_t)c->head_dim;
    m->kv_dim = m->n_kv_heads * (size_t)c->head_dim;
    return 0;
}

static int setup(struct loader *L, const char *dir)
{
    struct model *m = L->m;
    const struct model_opts *o = L->o;
    int rc = model_config_load(dir, &m->cfg, L->err, L->errlen);
    if (!rc)
        rc = generation_config_load(dir, &m->gen, L->err, L->errlen);
    if (rc)
        return rc;
    m->be = o->backend;
    if ((rc = shard(L)) != 0)
        return rc;
    m->block_size = o->block_size;
    m->num_blocks = o->num_blocks;
    m->max_batch_tokens = o->max_batch_tokens;
    m->max_seqs = o->max_seqs;
    m->max_logits = o->max_logits ? o->max_logits : o->max_seqs;
    if (m->max_logits > m->max_batch_tokens)
        m->max_logits = m->max_batch_tokens;
    int longest = model_longest_len(&m->cfg);
    m->max_model_len = o->max_model_len ? o->max_model_len : longest;
    if (m->max_model_len > longest)
        return fail(L, ERR_RANGE, "max_model_len %d is longer than the model's %d positions",
                    m->max_model_len, longest);
    m->max_blocks = ((size_t)m->max_model_len + (size_t)m->block_size - 1) / (size_t)m->block_size;
    m->layers = calloc((size_t)m->cfg.num_layers, sizeof *m->layers);
    if (!m->layers)
        return fail(L, ERR_NOMEM, "out of memory");
    if (!o->dummy && (rc = st_open_model(dir, &L->st, L->err, L->errlen)) != 0)
        return rc;
    rc = load_weights(L);
    if (!rc)
        rc = alloc_kv(L);
    if (!rc)
        rc = alloc_workspaces(L);
    return rc;
}

int model_load(const char *dir, const struct model_opts *o, struct model **out, char *err,
               size_t errlen)
{
    struct loader L = {.o = o, .err = err, .errlen = errlen};
    int rc = check_opts(&L, o);
    if (rc)
        return rc;
    L.m = calloc(1, sizeof *L.m);
    if (!L.m)
        return fail(&L, ERR_NOMEM, "out of memory");
    L.m->be = o->backend;
    rc = setup(&L, dir);
    st_model_free(L.st);
    if (rc) {
        model_free(L.m);
        return rc;
    }
    *out = L.m;
    return 0;
}

void model_free(struct model *m)
{
    if (!m)
        return;
    const struct backend_ops *ops = m->be->ops;
    for (int i = 0; m->layers && i < m->cfg.num_layers; i++) {
        struct model_layer *ly = &m->layers[i];
        ops->dealloc(m->be, ly->attn_norm);
        ops->dealloc(m->be, ly->mlp_norm);
        if (ly->qkv)
            ops->mat_free(m->be, ly->qkv);
        if (ly->o)
            ops->mat_free(m->be, ly->o);
        if (ly->gate_up)
            ops->mat_free(m->be, ly->gate_up);
        if (ly->down)
            ops->mat_free(m->be, ly->down);
    }
    if (m->lm_head && m->lm_head != m->embed)
        ops->mat_free(m->be, m->lm_head);
    if (m->embed)
        ops->mat_free(m->be, m->embed);
    void *bufs[] = {m->final_norm, m->kv_mem, m->x,     m->h,       m->qkv,
                    m->attn,       m->gu,     m->act,   m->cos_sin, m->logits,
                    m->d_ids,      m->d_pos,  m->d_seq, m->d_slots, m->d_tables};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        ops->dealloc(m->be, bufs[i]);
    free(m->h_cos_sin);
    free(m->inv_freq);
    free(m->layers);
    free(m);
}

const struct model_config *model_config(const struct model *m)
{
    return &m->cfg;
}

const struct generation_config *model_generation_config(const struct model *m)
{
    return &m->gen;
}

size_t model_weight_bytes(const struct model *m)
{
    return m->weight_bytes;
}

size_t model_max_blocks(const struct model *m)
{
    return m->max_blocks;
}

int model_block_size(const struct model *m)
{
    return m->block_size;
}

int model_longest_len(const struct model_config *c)
{
    /* as vLLM: linear and dynamic scaling stretch the positions the model can take */
    double stretch = c->rope_type == ROPE_SCALING_LINEAR || c->rope_type == ROPE_SCALING_DYNAMIC
                         ? c->rope_factor
                         : 1.0;
    double longest = c->max_position_embeddings * (stretch > 1.0 ? stretch : 1.0);
    return longest > (1 << 24) ? 1 << 24 : (int)longest;
}

int model_num_blocks(const struct model *m)
{
    return m->num_blocks;
}
