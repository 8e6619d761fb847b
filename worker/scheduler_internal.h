/*
 * scheduler_internal: what scheduler.c (requests, queues) and scheduler_step.c (schedule,
 * commit) share. Not part of the scheduler's API.
 */
#ifndef KILN_SCHEDULER_INTERNAL_H
#define KILN_SCHEDULER_INTERNAL_H

#include "worker/scheduler.h"

enum { SEQ_WAITING = 1, SEQ_RUNNING = 2, SEQ_DONE = 3 };

/* One request: its copied params and arrays, and its n sequences. */
struct sched_req {
    struct sched_req *prev, *next; /* the live list */
    uint64_t id;
    uint32_t key;
    int32_t priority;
    uint64_t arrival;
    struct sampling_params params; /* arrays point into arrays */
    void *arrays;                  /* the copied stop ids, bias ids and values, allowed ids */
    int32_t *tokens;               /* [n][n_prompt + max_tokens] */
    uint32_t n, n_live;            /* sequences, and those not finished */
    struct sched_seq seqs[];       /* [n] */
};

struct scheduler {
    struct scheduler_config c;
    struct kv_blocks *kb;
    size_t max_blocks; /* kv_blocks' table width */
    struct sched_seq **running;
    size_t n_running; /* [max_num_seqs], admission order */
    struct sched_seq **waiting;
    size_t n_waiting, cap_waiting; /* [max_waiting + max_num_seqs], queue order */
    struct sched_req *live;        /* every live request */
    size_t n_requests;
    uint64_t next_order, n_preemptions;
    bool in_step;
    /* the step under construction / last built, [max_num_batched_tokens] */
    int32_t *ids, *pos, *seq_of, *slots;
    int32_t *tables;            /* [max_num_seqs][max_blocks] */
    struct sched_seq **batch;   /* [max_num_seqs] */
    struct sched_seq **planned; /* [max_num_seqs] in scheduling order */
    size_t n_planned;
    int32_t *logit_rows;             /* [max_num_seqs + plp rows]: sampling rows, then plp */
    int32_t *logit_seq;              /* [max_num_seqs] */
    int32_t *plp_rows, *plp_seq, *plp_pos; /* [max_prompt_logprob_rows] */
    struct sched_event *events;      /* [max_num_seqs] */
    struct sched_req **done;         /* [max_num_seqs] requests to free after a commit */
    struct sched_step step;
};

/* sched_waiting_insert: q into the waiting queue: at the front when front (FCFS
 * preemption), else at its place by key. The queue has room by construction. */
void sched_waiting_insert(struct scheduler *s, struct sched_seq *q, bool front);

/* sched_running_remove: takes q out of the running array (order kept). */
void sched_running_remove(struct scheduler *s, struct sched_seq *q);

/* sched_req_free: unlinks r from the live list and frees it (its sequences must hold no KV
 * slot and be out of both queues). */
void sched_req_free(struct scheduler *s, struct sched_req *r);

#endif
