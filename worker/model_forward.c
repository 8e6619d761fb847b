/*
 * model_forward: one step of a Llama-family decoder over a flattened batch (model.h):
 *
 *   x = embed(ids)
 *   per layer: h = rmsnorm(x); q,k,v = h Wqkv (+b); rope(q, k); cache <- k, v;
 *              x += attention(q, cache) Wo; h = rmsnorm(x); x += (silu(h Wg) * h Wu) Wd
 *   logits = rmsnorm(x[rows]) Wlm
 *
 * Everything runs through the backend's ops; only the batch checks and the rope angle
 * table are computed here, on the host.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "worker/model.h"
#include "worker/model_internal.h"
#include "worker/rope.h"

static int bad_batch(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* bad_batch: writes the reason into err and returns ERR_RANGE. */
static int bad_batch(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return ERR_RANGE;
}

/* check_token: token i's id, position, sequence, blocks and slot. */
static int check_token(const struct model *m, const struct model_batch *b, size_t i, char *err,
                       size_t errlen)
{
    size_t bs = (size_t)m->block_size;
    int32_t id = b->ids[i], p = b->pos[i], s = b->seq_of[i];
    if (id < 0 || id >= m->cfg.vocab_size)
        return bad_batch(err, errlen, "token %zu: id %d is outside the vocabulary", i, id);
    if (p < 0 || p >= m->max_model_len || (size_t)p / bs >= b->max_blocks)
        return bad_batch(err, errlen, "token %zu: position %d is beyond the model length %d", i, p,
                         m->max_model_len);
    if (s < 0 || (size_t)s >= b->n_seqs)
        return bad_batch(err, errlen, "token %zu: sequence %d is not in the batch", i, s);
    const int32_t *table = b->block_tables + (size_t)s * b->max_blocks;
    for (size_t j = 0; j <= (size_t)p / bs; j++)
        if (table[j] < 0 || table[j] >= m->num_blocks)
            return bad_batch(err, errlen, "sequence %d: block %d is outside the pool", s, table[j]);
    int64_t slot = (int64_t)table[(size_t)p / bs] * (int64_t)bs + (int64_t)((size_t)p % bs);
    if ((int64_t)b->slot_mapping[i] != slot)
        return bad_batch(err, errlen, "token %zu: slot %d disagrees with its block table", i,
                         b->slot_mapping[i]);
    return 0;
}

/* check_batch: every index the kernels will follow is inside its array. */
static int check_batch(const struct model *m, const struct model_batch *b, char *err, size_t errlen)
{
    if (b->n_tokens == 0 || b->n_tokens > (size_t)m->max_batch_tokens)
        return bad_batch(err, errlen, "batch of %zu tokens (1 to %d allowed)", b->n_tokens,
                         m->max_batch_tokens);
    if (b->n_seqs == 0 || b->n_seqs > (size_t)m->max_seqs || b->max_blocks > m->max_blocks)
        return bad_batch(err, errlen,
                         "batch of %zu sequences, %zu blocks per sequence (at most "
                         "%d and %zu)",
                         b->n_seqs, b->max_blocks, m->max_seqs, m->max_blocks);
    if (b->n_logits > (size_t)m->max_logits)
        return bad_batch(err, errlen, "%zu logit rows asked for (at most %d)", b->n_logits,
                         m->max_logits);
    for (size_t i = 0; i < b->n_tokens; i++) {
        int rc = check_token(m, b, i, err, errlen);
        if (rc)
            return rc;
    }
    for (size_t r = 0; r < b->n_logits; r++)
        if (b->logit_rows[r] < 0 || (size_t)b->logit_rows[r] >= b->n_tokens)
            return bad_batch(err, errlen, "logit row %d is not a token of the batch",
                             b->logit_rows[r]);
    return 0;
}

static void upload_batch(struct model *m, const struct model_batch *b)
{
    struct backend *be = m->be;
    size_t n = b->n_tokens, half = (size_t)m->cfg.head_dim / 2;
    be->ops->upload(be, m->d_ids, b->ids, n * sizeof(int32_t));
    be->ops->upload(be, m->d_pos, b->pos, n * sizeof(int32_t));
    be->ops->upload(be, m->d_seq, b->seq_of, n * sizeof(int32_t));
    be->ops->upload(be, m->d_slots, b->slot_mapping, n * sizeof(int32_t));
    be->ops->upload(be, m->d_tables, b->block_tables, b->n_seqs * b->max_blocks * sizeof(int32_t));
    rope_cos_sin(m->inv_freq, half, b->pos, n, m->h_cos_sin);
    be->ops->upload(be, m->cos_sin, m->h_cos_sin, n * half * 2 * sizeof(float));
}

/* reduce: sums x over the tensor-parallel ranks. Each rank's o and down matmuls add their
 * partial products to x on rank 0 only and overwrite x elsewhere, so the sum is
 * x + every rank's part. */
static void reduce(struct model *m, size_t n)
{
    if (m->tp_size > 1)
        m->all_reduce(m->all_reduce_ctx, m->x, n * m->ld_h);
}

/* progress: the caller's hook (model_set_progress), between the layer's big operations. */
static inline void progress(const struct model *m)
{
    if (m->progress)
        m->progress(m->progress_ctx);
}

static void layer_forward(struct model *m, const struct model_layer *ly,
                          const struct model_batch *b)
{
    struct backend *be = m->be;
    const struct backend_ops *op = be->ops;
    const struct model_config *c = &m->cfg;
    size_t n = b->n_tokens, hid = (size_t)c->hidden_size, hd = (size_t)c->head_dim;
    float eps = (float)c->rms_norm_eps;
    int residual = m->tp_rank == 0;

    op->rmsnorm(be, m->h, m->ld_h, m->x, m->ld_h, n, hid, ly->attn_norm, eps);
    op->matmul(be, m->qkv, m->ld_qkv, m->h, m->ld_h, n, ly->qkv, 0);
    op->rope(be, m->qkv, m->ld_qkv, n, m->n_heads + m->n_kv_heads, hd, m->cos_sin);
    float *k = m->qkv + m->q_dim, *v = k + m->kv_dim;
    op->kv_store(be, &ly->kv, k, m->ld_qkv, v, m->ld_qkv, n, m->d_slots);
    op->attention(be, m->attn, m->ld_q, m->qkv, m->ld_qkv, n, m->n_heads, &ly->kv, m->d_pos,
                  m->d_seq, m->d_tables, b->max_blocks, c->sliding_window,
                  (float)(1.0 / sqrt((double)hd)));
    progress(m);
    op->matmul(be, m->x, m->ld_h, m->attn, m->ld_q, n, ly->o, residual);
    reduce(m, n);

    op->rmsnorm(be, m->h, m->ld_h, m->x, m->ld_h, n, hid, ly->mlp_norm, eps);
    op->matmul(be, m->gu, m->ld_gu, m->h, m->ld_h, n, ly->gate_up, 0);
    progress(m);
    op->silu_mul(be, m->act, m->ld_ff, m->gu, m->ld_gu, n, m->ff);
    op->matmul(be, m->x, m->ld_h, m->act, m->ld_ff, n, ly->down, residual);
    reduce(m, n);
    progress(m);
}

int model_forward(struct model *m, const struct model_batch *b, float *logits, char *err,
                  size_t errlen)
{
    int rc = check_batch(m, b, err, errlen);
    if (rc)
        return rc;
    struct backend *be = m->be;
    const struct backend_ops *op = be->ops;
    size_t hid = (size_t)m->cfg.hidden_size, vocab = (size_t)m->cfg.vocab_size;
    upload_batch(m, b);
    op->embed(be, m->x, m->ld_h, m->d_ids, b->n_tokens, m->embed);
    for (int l = 0; l < m->cfg.num_layers; l++)
        layer_forward(m, &m->layers[l], b);
    if (b->n_logits == 0)
        return 0;
    /* the final norm of just the rows asked for, gathered into h */
    for (size_t r = 0; r < b->n_logits; r++)
        op->rmsnorm(be, m->h + r * m->ld_h, m->ld_h, m->x + (size_t)b->logit_rows[r] * m->ld_h,
                    m->ld_h, 1, hid, m->final_norm, (float)m->cfg.rms_norm_eps);
    op->matmul(be, m->logits, m->ld_vocab, m->h, m->ld_h, b->n_logits, m->lm_head, 0);
    for (size_t r = 0; r < b->n_logits; r++)
        op->download(be, logits + r * vocab, m->logits + r * m->ld_vocab, vocab * sizeof(float));
    return 0;
}

void model_set_progress(struct model *m, void (*fn)(void *ctx), void *ctx)
{
    m->progress = fn;
    m->progress_ctx = ctx;
}
