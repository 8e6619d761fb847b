/*
 * shm_allreduce: the CPU backend's all-reduce across the tensor-parallel worker processes of
 * one node, through one shared memory mapping.
 *
 * The group's creator (the engine, before it forks or spawns the ranks) sizes and maps the
 * region with shm_allreduce_create; every rank attaches to the same mapping (inherited over
 * fork, or passed as a file descriptor) with shm_allreduce_attach and gets its own handle.
 * An all-reduce copies the rank's buffer into its slot, waits for every rank, sums its
 * 1/N share of the elements over all slots into the shared result, waits again, and copies
 * the whole result back: two barriers, N reads of each element, no locks.
 *
 * Failure: a rank that dies must take the group down, never hang it. A waiting rank checks
 * every millisecond or so that every peer process is alive and that the group was not
 * aborted (shm_allreduce_abort); shm_allreduce_run then returns ERR_STATE, and the model's
 * callback (shm_allreduce_model_hook) exits the process loudly so its supervisor restarts
 * the group.
 *
 * Threads: one thread per rank calls run; handles are per rank.
 */
#ifndef KILN_SHM_ALLREDUCE_H
#define KILN_SHM_ALLREDUCE_H

#include <stddef.h>
#include <sys/types.h>

struct shm_allreduce;

/* shm_allreduce_bytes: the size of the shared region for n_ranks ranks reducing at most
 * max_elems floats at a time. */
size_t shm_allreduce_bytes(int n_ranks, size_t max_elems);

/*
 * shm_allreduce_create: maps a new anonymous shared region (MAP_SHARED, inherited by
 * fork; *fd_out, when not NULL, gets a memfd of it for processes started otherwise) and
 * initializes it. Returns 0 and *region (unmap with shm_allreduce_unmap), or ERR_INVAL
 * (n_ranks outside [1, 64], max_elems 0 or huge), ERR_NOMEM / ERR_IO.
 */
int shm_allreduce_create(int n_ranks, size_t max_elems, void **region, int *fd_out);

/* shm_allreduce_unmap: unmaps a region from create (in this process). */
void shm_allreduce_unmap(void *region);

/* shm_allreduce_attach: rank's handle on region; records this process as the rank's live
 * process. Returns 0 and *out (free with shm_allreduce_detach), ERR_INVAL, ERR_NOMEM. */
int shm_allreduce_attach(void *region, int rank, struct shm_allreduce **out);
void shm_allreduce_detach(struct shm_allreduce *h);

/* shm_allreduce_run: buf[0..n) becomes the elementwise sum of every rank's buf. Every rank
 * must call it with the same n (<= max_elems). Returns 0, ERR_RANGE (n too large), or
 * ERR_STATE (a peer died or the group was aborted; the group is unusable). */
int shm_allreduce_run(struct shm_allreduce *h, float *buf, size_t n);

/* shm_allreduce_abort: marks the group failed; every waiting rank returns ERR_STATE. */
void shm_allreduce_abort(void *region);

/* shm_allreduce_model_hook: a model_opts.all_reduce callback (ctx: the handle); on failure
 * it prints why and exits the process with status 70. */
void shm_allreduce_model_hook(void *ctx, float *buf, size_t n);

#endif
