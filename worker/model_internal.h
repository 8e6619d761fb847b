/*
 * model_internal: struct model, shared by model_load.c (which builds it) and
 * model_forward.c (which runs it). Nothing else includes this.
 */
#ifndef KILN_MODEL_INTERNAL_H
#define KILN_MODEL_INTERNAL_H

#include "kernels/ref/kn_ref.h"
#include "worker/backend.h"
#include "worker/model.h"

struct model_layer {
    float *attn_norm;            /* [hidden] fp32, device */
    float *mlp_norm;             /* [hidden] fp32, device */
    struct backend_mat *qkv;     /* [q_dim + 2 kv_dim][hidden], q then k then v, with bias */
    struct backend_mat *o;       /* [hidden][q_dim] */
    struct backend_mat *gate_up; /* [2 intermediate][hidden], gate then up */
    struct backend_mat *down;    /* [hidden][intermediate] */
    struct kn_paged_kv kv;       /* this layer's cache */
};

struct model {
    struct model_config cfg;
    struct generation_config gen;
    struct backend *be;
    int tp_rank, tp_size;
    void (*all_reduce)(void *ctx, float *buf, size_t n);
    void *all_reduce_ctx;
    void (*progress)(void *ctx); /* called inside every layer (model_set_progress) */
    void *progress_ctx;
    /* this rank's share: */
    size_t n_heads, n_kv_heads, ff; /* attention heads, KV heads, MLP columns */
    size_t q_dim, kv_dim;           /* n_heads * head_dim, n_kv_heads * head_dim */
    int block_size, num_blocks, max_batch_tokens, max_seqs, max_logits, max_model_len;
    size_t max_blocks;
    struct model_layer *layers;  /* [num_layers] */
    struct backend_mat *embed;   /* [vocab][hidden] */
    struct backend_mat *lm_head; /* == embed when tied */
    float *final_norm;           /* [hidden] */
    double *inv_freq;            /* [head_dim / 2], host */
    float *kv_mem;               /* every layer's K and V, device */
    size_t weight_bytes;

    /* workspaces, device, [max_batch_tokens][ld] with ld rounded to BACKEND_ROW_ALIGN */
    size_t ld_h, ld_qkv, ld_q, ld_gu, ld_ff, ld_vocab;
    float *x, *h, *qkv, *attn, *gu, *act, *cos_sin, *logits;
    int32_t *d_ids, *d_pos, *d_seq, *d_slots, *d_tables;
    float *h_cos_sin; /* host staging [max_batch_tokens][head_dim / 2][2] */
};

#endif
