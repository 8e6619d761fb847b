/*
 * wire: the binary protocol between frontends and engines (carried over ZeroMQ by common/mq;
 * this module is only the codec). Pure functions: no global state, safe from any thread as
 * long as each call has its own buffers and arena.
 *
 * Byte layout. Every integer and float is little-endian; floats are IEEE-754 binary32 bit
 * patterns; there is no padding. A message is a 12-byte header and a body:
 *
 *     u32 magic "KLN1" (bytes 4b 4c 4e 31)   u16 version (WIRE_VERSION)
 *     u16 type (enum wire_type)              u32 body length (<= WIRE_MAX_BODY)
 *
 * One ZeroMQ message may carry several wire messages back to back (wire_iter walks them).
 * A string is u32 length + bytes (no NUL inside, at most WIRE_MAX_STRING); an array is a
 * u32 count + elements. The bodies (see wire.c for the field order):
 *
 *   HELLO     u16 proto_version, u64 engine_id, u64 epoch, string model, u32 max_model_len,
 *             u32 vocab_size, u32 block_size, u32 max_num_seqs, u32 max_num_batched_tokens,
 *             u32 max_logprobs, u32 max_waiting, u8 state
 *   ADD       u64 request_id, u64 arrival_us, i32 priority, u32 n, i32 prompt[], sampling,
 *             u8 guided[]; sampling = f32 temperature, top_p, i32 top_k, f32 min_p,
 *             repetition_penalty, presence_penalty, frequency_penalty, u8 flags (1 has_seed,
 *             2 ignore_eos), u64 seed, i32 max_tokens, min_tokens, logprobs, prompt_logprobs,
 *             i32 stop_token_ids[], u32 n_bias + n_bias x (i32 id, f32 value),
 *             i32 allowed_token_ids[]
 *   ABORT     u64 request_ids[]
 *   TOKENS    u32 n_seqs + n_seqs x seq; seq = u64 request_id, u32 choice, u8 finish,
 *             u8 flags (1 logprobs, 2 prompt logprobs), i32 stop_reason, u32 n_prompt_tokens,
 *             n_cached_tokens, n_generated_tokens, i32 ids[], [flag 1: logprobs over the ids],
 *             [flag 2: u32 n_positions + logprobs over them]; logprobs = u8 n_top,
 *             f32 logprob[n], then n x n_top x (i32 id, f32 logprob)
 *   STATS     u64 epoch, u64 step, u32 running, u32 waiting, u32 kv_blocks_used,
 *             u32 kv_blocks_total, u64 prefix_hit_tokens, u64 prefix_query_tokens
 *   HEARTBEAT u64 epoch, u64 step, u8 state, u32 running, u32 waiting, u32 kv_blocks_used,
 *             u32 kv_blocks_total
 *
 * The encoding is canonical: flag bits that are not defined, a seed without has_seed, and
 * anything wire_check refuses make a message invalid, so decoding then re-encoding gives the
 * same bytes. Decoding is strict: a count is checked against its limit and the bytes left
 * before anything is allocated; a message must end exactly where its body length says.
 */
#ifndef KILN_WIRE_H
#define KILN_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/arena.h"
#include "common/buf.h"
#include "common/sampling_params.h"

#define WIRE_MAGIC 0x314e4c4bu /* "KLN1" read as a little-endian u32 */
#define WIRE_VERSION 1
#define WIRE_HEADER_SIZE 12
#define WIRE_MAX_BODY (64u << 20)      /* bytes in one message body */
#define WIRE_MAX_STRING 4096           /* bytes in a string */
#define WIRE_MAX_PROMPT (1u << 20)     /* prompt ids, allowed ids, prompt logprob positions */
#define WIRE_MAX_GUIDED (1u << 20)     /* bytes of an opaque guided-decoding spec */
#define WIRE_MAX_ITEMS 65536           /* ABORT ids, TOKENS sequences, messages per buffer */
#define WIRE_MAX_NEW_TOKENS (1u << 20) /* token ids of one sequence in one TOKENS */
#define WIRE_MAX_CHOICES 128           /* n of an ADD */
#define WIRE_MAX_BIAS_VALUE 100.0f     /* |logit_bias value| (as OpenAI) */

enum wire_type {
    WIRE_HELLO = 1,     /* engine -> frontend, once per connection and after a restart */
    WIRE_ADD = 2,       /* frontend -> engine: one request */
    WIRE_ABORT = 3,     /* frontend -> engine: requests to drop */
    WIRE_TOKENS = 4,    /* engine -> frontend: new tokens of many sequences */
    WIRE_STATS = 5,     /* engine -> frontend: load, for routing and /metrics */
    WIRE_HEARTBEAT = 6, /* both ways */
    WIRE_TYPE_MAX_ = 6
};

enum wire_state { WIRE_STARTING = 0, WIRE_READY = 1, WIRE_DRAINING = 2, WIRE_FATAL = 3 };

enum wire_finish {
    WIRE_FINISH_NONE = 0, /* still running */
    WIRE_FINISH_STOP = 1, /* EOS, a stop id or a stop string */
    WIRE_FINISH_LENGTH = 2,
    WIRE_FINISH_ABORT = 3,
    WIRE_FINISH_ERROR = 4 /* the engine refused or failed it; stop_reason says why */
};

/* Why a request ended with WIRE_FINISH_ERROR (carried in stop_reason; the frontend maps
 * it to an HTTP status). */
enum wire_error {
    WIRE_ERROR_INTERNAL = 0,   /* 500 */
    WIRE_ERROR_OVERLOADED = 1, /* the engine's queue or request table is full: 429 */
    WIRE_ERROR_INVALID = 2,    /* too long for the model or the KV pool, a bad id: 400 */
    WIRE_ERROR_DRAINING = 3,   /* the engine is shutting down: 503 */
    WIRE_ERROR_MAX_ = 3
};

struct wire_hello {
    uint16_t proto_version; /* highest version the engine speaks, >= 1 */
    uint64_t engine_id;
    uint64_t epoch;    /* engine start time; a new one means everything in flight failed */
    const char *model; /* n_model bytes, NUL-terminated when decoded; 1 .. WIRE_MAX_STRING */
    uint32_t n_model;
    uint32_t max_model_len;          /* >= 1 */
    uint32_t vocab_size;             /* >= 1 */
    uint32_t block_size;             /* KV block, tokens, >= 1 */
    uint32_t max_num_seqs;           /* >= 1 */
    uint32_t max_num_batched_tokens; /* >= 1 */
    uint32_t max_logprobs;           /* <= SAMPLING_MAX_LOGPROBS */
    uint32_t max_waiting;            /* queued requests the engine accepts */
    uint8_t state;                   /* enum wire_state */
};

struct wire_add {
    uint64_t request_id;   /* the frontend's; the frontend itself is the ZeroMQ identity */
    uint64_t arrival_us;   /* when the frontend received it, microseconds */
    int32_t priority;      /* lower runs first */
    uint32_t n;            /* choices, 1 .. WIRE_MAX_CHOICES */
    const int32_t *prompt; /* [n_prompt] token ids >= 0 */
    uint32_t n_prompt;     /* 1 .. WIRE_MAX_PROMPT */
    struct sampling_params sp;
    const uint8_t *guided; /* [n_guided] opaque guided-decoding spec; NULL when none */
    uint32_t n_guided;     /* <= WIRE_MAX_GUIDED */
};

struct wire_abort {
    const uint64_t *ids; /* [n_ids] request ids */
    uint32_t n_ids;      /* 1 .. WIRE_MAX_ITEMS */
};

/* Log-probabilities of n tokens (n known from the enclosing struct): finite or -inf. */
struct wire_logprobs {
    uint32_t n_top;            /* alternatives per token, <= SAMPLING_MAX_LOGPROBS */
    const float *logprob;      /* [n] the chosen (or prompt) token's */
    const int32_t *top_ids;    /* [n][n_top], ids >= 0; NULL when n * n_top == 0 */
    const float *top_logprobs; /* [n][n_top] */
};

struct wire_seq_out {
    uint64_t request_id;
    uint32_t choice;     /* < the request's n */
    uint8_t finish;      /* enum wire_finish */
    int32_t stop_reason; /* finish STOP: the stop token id that matched, or -1; finish
                            ERROR: enum wire_error; otherwise -1 */
    uint32_t n_prompt_tokens;
    uint32_t n_cached_tokens; /* <= n_prompt_tokens */
    uint32_t n_generated_tokens;
    const int32_t *ids; /* [n_ids] new token ids >= 0 */
    uint32_t n_ids;     /* <= WIRE_MAX_NEW_TOKENS */
    bool has_logprobs;  /* lp covers the n_ids tokens */
    struct wire_logprobs lp;
    bool has_prompt_logprobs; /* prompt_lp covers n_prompt_lp prompt positions */
    uint32_t n_prompt_lp;     /* <= WIRE_MAX_PROMPT */
    struct wire_logprobs prompt_lp;
};

struct wire_tokens {
    const struct wire_seq_out *seqs; /* [n_seqs] */
    uint32_t n_seqs;                 /* 1 .. WIRE_MAX_ITEMS */
};

struct wire_stats {
    uint64_t epoch;
    uint64_t step; /* engine steps since start */
    uint32_t running;
    uint32_t waiting;
    uint32_t kv_blocks_used; /* <= kv_blocks_total */
    uint32_t kv_blocks_total;
    uint64_t prefix_hit_tokens;   /* <= prefix_query_tokens */
    uint64_t prefix_query_tokens; /* prompt tokens looked up in the prefix cache */
};

struct wire_heartbeat {
    uint64_t epoch; /* the sender's */
    uint64_t step;
    uint8_t state; /* enum wire_state */
    uint32_t running;
    uint32_t waiting;
    uint32_t kv_blocks_used; /* <= kv_blocks_total */
    uint32_t kv_blocks_total;
};

struct wire_msg {
    uint16_t type; /* enum wire_type: selects the member of u */
    union {
        struct wire_hello hello;
        struct wire_add add;
        struct wire_abort aborts;
        struct wire_tokens tokens;
        struct wire_stats stats;
        struct wire_heartbeat hb;
    } u;
};

/* wire_type_name: "HELLO", "ADD", ...; "UNKNOWN" for anything else. */
const char *wire_type_name(unsigned type);

/*
 * wire_check: whether m is a message the decoder would accept: a known type, every count
 * within its limit (and its pointer non-NULL when the count is not 0), every value in range
 * (sampling_params.h: temperature finite >= 0, top_p in (0, 1], ...; no NaN anywhere).
 * Returns 0, ERR_UNSUPPORTED (type), ERR_LIMIT (a count), ERR_RANGE (a value) or ERR_INVAL
 * (a NULL array), with a one-line reason in err.
 */
int wire_check(const struct wire_msg *m, char *err, size_t errlen);

/*
 * wire_encode: appends m (header and body) to out. The wire_encode_<type> functions do the
 * same for one body. m is checked first (wire_check). Returns 0, the wire_check codes,
 * ERR_LIMIT (the body would pass WIRE_MAX_BODY, or out's limit) or ERR_NOMEM; out is
 * unchanged on failure. err (may be NULL when errlen is 0) says why.
 */
int wire_encode(struct buf *out, const struct wire_msg *m, char *err, size_t errlen);
int wire_encode_hello(struct buf *out, const struct wire_hello *m, char *err, size_t errlen);
int wire_encode_add(struct buf *out, const struct wire_add *m, char *err, size_t errlen);
int wire_encode_abort(struct buf *out, const struct wire_abort *m, char *err, size_t errlen);
int wire_encode_tokens(struct buf *out, const struct wire_tokens *m, char *err, size_t errlen);
int wire_encode_stats(struct buf *out, const struct wire_stats *m, char *err, size_t errlen);
int wire_encode_heartbeat(struct buf *out, const struct wire_heartbeat *m, char *err,
                          size_t errlen);

/*
 * wire_decode: decodes the message at the start of p[0..n) into *out and sets *used to its
 * size (header included); bytes after it are left alone. Every array and string of *out is
 * a copy in the arena `a` (properly aligned, strings NUL-terminated) and lives until the
 * arena is reset or freed; p may be released at once. Zero-length arrays are NULL.
 *
 * Returns 0 or: ERR_PARSE (truncated, bad magic, a count larger than the bytes left, bytes
 * left over in the body, a NUL inside a string, an undefined flag bit), ERR_UNSUPPORTED
 * (version or type), ERR_LIMIT (a count or the body length past its limit, or the arena's
 * limit reached), ERR_NOMEM, ERR_RANGE (a value wire_check refuses). On failure *used is 0,
 * *out is unspecified, the arena may hold partial allocations, and err has a one-line
 * reason naming the message type and the byte offset.
 */
int wire_decode(const uint8_t *p, size_t n, size_t *used, struct wire_msg *out, struct arena *a,
                char *err, size_t errlen);

/* A walk over the messages of one buffer (one ZeroMQ message); the buffer is borrowed. */
struct wire_iter {
    const uint8_t *p;
    size_t n;
    size_t off;      /* start of the next message */
    uint32_t n_msgs; /* messages decoded so far, at most WIRE_MAX_ITEMS */
};

/* wire_iter_init: starts a walk over p[0..n). */
void wire_iter_init(struct wire_iter *it, const void *p, size_t n);

/*
 * wire_iter_next: decodes the next message into *out (arrays in `a`, as wire_decode).
 * Returns 1 with a message, 0 at the end of the buffer, or a wire_decode error (the offset
 * in err counts from the buffer's start), or ERR_LIMIT when the buffer holds more than
 * WIRE_MAX_ITEMS messages; after an error the rest of the buffer is not trusted: the caller
 * drops it.
 */
int wire_iter_next(struct wire_iter *it, struct wire_msg *out, struct arena *a, char *err,
                   size_t errlen);

#endif
