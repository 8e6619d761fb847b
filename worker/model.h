/*
 * model: a Llama-family decoder (Llama 2/3/3.1, Mistral, Qwen2) on a backend: weights
 * loaded from a Hugging Face directory (or random, for benchmarks), a paged KV cache, and
 * the forward pass of one step over a flattened batch.
 *
 * A step's batch mixes prompt chunks and decode tokens of many sequences: token i belongs
 * to sequence seq_of[i] of the step, sits at position pos[i], and its key and value go to
 * KV slot slot_mapping[i] = block_tables[seq][pos / block_size] * block_size + pos %
 * block_size. Tokens see every earlier position of their sequence that is in the cache
 * (written by this step or earlier ones), so a prompt may be fed in chunks over several
 * steps. Which blocks a sequence owns is the caller's business (the engine's block
 * manager); the model only checks that the batch is consistent.
 *
 * Ownership: the model owns its weights, KV cache and workspaces, all allocated by
 * model_load; model_forward allocates nothing. The backend is borrowed and must outlive
 * the model. Threads: one thread drives a model at a time.
 */
#ifndef KILN_MODEL_H
#define KILN_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/model_config.h"
#include "worker/backend.h"

struct model_opts {
    struct backend *backend;
    bool dummy;    /* --load-format dummy: random weights of the config's shapes */
    uint64_t seed; /* for dummy weights */
    enum kn_dtype dummy_dtype;
    int block_size;       /* tokens per KV block (default 16) */
    int num_blocks;       /* blocks in the KV pool */
    int max_batch_tokens; /* tokens per step */
    int max_seqs;         /* sequences per step */
    int max_logits;       /* logit rows per step; 0: max_seqs */
    /* Tensor parallelism: this model is rank tp_rank of tp_size (0 or 1: alone) and holds
     * 1/tp_size of the attention heads, KV heads and MLP columns (each must divide evenly).
     * all_reduce(ctx, buf, n) must replace buf[0..n) (device memory) by its sum over the
     * ranks; every rank calls it at the same two points of each layer of every step. */
    int tp_rank, tp_size;
    void (*all_reduce)(void *ctx, float *buf, size_t n);
    void *all_reduce_ctx;
    int max_model_len; /* longest sequence; 0: max_position_embeddings (times the
                          factor of linear and dynamic rope scaling, as vLLM) */
};

struct model_batch {
    size_t n_tokens;
    const int32_t *ids;          /* [n_tokens] */
    const int32_t *pos;          /* [n_tokens] */
    const int32_t *seq_of;       /* [n_tokens], < n_seqs */
    const int32_t *slot_mapping; /* [n_tokens] */
    size_t n_seqs;
    const int32_t *block_tables; /* [n_seqs][max_blocks] (entries past a sequence's end unused) */
    size_t max_blocks;
    size_t n_logits;
    const int32_t *logit_rows; /* [n_logits] token indices whose logits are wanted */
};

struct model;

/*
 * model_load: reads DIR/config.json, DIR/generation_config.json and (unless o->dummy) the
 * safetensors weights, checks every tensor's presence, dtype (F32, F16, BF16) and shape
 * against the config, and builds the model on o->backend. Returns 0 and *out, or
 * ERR_IO / ERR_PARSE / ERR_RANGE / ERR_UNSUPPORTED / ERR_NOTFOUND / ERR_NOMEM with a
 * message naming the file, tensor or field in err.
 */
int model_load(const char *dir, const struct model_opts *o, struct model **out, char *err,
               size_t errlen);

void model_free(struct model *m);

/* model_set_progress: fn(ctx) runs inside every layer of model_forward (after attention,
 * after the gate/up projection, at the layer's end) on the calling thread, so that the
 * caller stays responsive (heartbeats) during a step that takes seconds. fn must not touch
 * the model. NULL removes it. */
void model_set_progress(struct model *m, void (*fn)(void *ctx), void *ctx);

const struct model_config *model_config(const struct model *m);
const struct generation_config *model_generation_config(const struct model *m);

/* model_weight_bytes: memory the weights take on the backend. */
size_t model_weight_bytes(const struct model *m);

/* model_max_blocks: the block-table width the model was built for (max_model_len /
 * block_size, rounded up); model_block_size, model_num_blocks: as loaded. */
size_t model_max_blocks(const struct model *m);
int model_block_size(const struct model *m);
int model_num_blocks(const struct model *m);

/* model_longest_len: the longest sequence config c allows (max_position_embeddings, times
 * the factor of linear and dynamic rope scaling, as vLLM; at most 2^24): the default of
 * model_opts.max_model_len. */
int model_longest_len(const struct model_config *c);

/*
 * model_forward: runs one step and writes logits[n_logits][vocab_size] (host memory) for
 * the rows asked for. Returns 0, or ERR_RANGE (with the reason in err) when the batch is
 * inconsistent: too many tokens or sequences, an id outside the vocabulary, a position
 * beyond max_model_len, a block or slot outside the pool, a slot that disagrees with its
 * block table, a logit row out of range. Nothing is computed then.
 */
int model_forward(struct model *m, const struct model_batch *b, float *logits, char *err,
                  size_t errlen);

#endif
