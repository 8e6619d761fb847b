/*
 * rank_pool: the tensor-parallel worker processes of one engine. The engine (rank 0) starts
 * ranks 1 .. N-1 as forked child processes before it creates any thread or ZeroMQ context;
 * each child builds its own CPU backend, loads its 1/N shard of the model and then runs
 * every step rank 0 publishes in the shared-memory step ring (worker/step_ring.h), meeting
 * rank 0 in the shared-memory all-reduce (worker/shm_allreduce.h) twice per layer.
 *
 * Failure is loud, never a hang: a child that cannot load its shard makes rank_pool_start
 * fail with its reason; a child that dies later makes rank 0's all-reduce (and so its model
 * forward) exit the engine process with status 70, and a dead rank 0 makes every child exit
 * (step_ring_next fails, and each child asks the kernel for SIGKILL when its parent dies).
 * The supervisor restarts the whole group.
 *
 * With tp_size 1 there are no processes and no shared memory: publish is a no-op and the
 * model gets no all-reduce hook.
 *
 * Threads: the engine thread alone calls these functions.
 */
#ifndef KILN_RANK_POOL_H
#define KILN_RANK_POOL_H

#include <stddef.h>

#include "worker/model.h"

struct rank_pool_config {
    const char *model_dir;
    int tp_size;               /* 1 .. 64 */
    int threads_per_rank;      /* CPU threads of each rank's backend, 0: every CPU */
    struct model_opts opts;    /* the model options every rank uses (backend, tp_rank,
                                  all_reduce are filled per rank) */
    size_t max_allreduce;      /* floats in one all-reduce: max_batch_tokens * hidden_size */
};

struct rank_pool;

/*
 * rank_pool_start: maps the step ring and the all-reduce region, forks ranks 1 .. N-1 and
 * waits until each has loaded its shard (or failed: its message goes to err). Returns 0 and
 * *out, or ERR_INVAL (bad config), ERR_NOMEM, ERR_IO (fork or a region failed) or the
 * rank's load error (ERR_STATE when a rank died without saying why). Call before any thread
 * or ZeroMQ context exists in this process. Free with rank_pool_stop.
 */
int rank_pool_start(const struct rank_pool_config *c, struct rank_pool **out, char *err,
                    size_t errlen);

/* rank_pool_model_opts: o with rank 0's tensor-parallel fields (tp_rank 0, tp_size, the
 * all-reduce hook and its handle) filled in. */
void rank_pool_model_opts(const struct rank_pool *p, struct model_opts *o);

/* rank_pool_publish: hands step b to the other ranks (before rank 0 runs it). Returns 0, or
 * ERR_STATE when a rank died (the group is unusable), ERR_RANGE when b does not fit. */
int rank_pool_publish(struct rank_pool *p, const struct model_batch *b);

/* rank_pool_stop: asks every rank to exit, waits for them (killing those that do not exit
 * within a second), unmaps the regions and frees p. NULL is a no-op. */
void rank_pool_stop(struct rank_pool *p);

#endif
