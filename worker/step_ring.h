/*
 * step_ring: how the engine (tensor-parallel rank 0) hands each step's batch to the other
 * rank processes, through one shared memory mapping.
 *
 * The region holds one step slot: the arrays of a struct model_batch (ids, positions,
 * sequences, slots, block tables, logit rows) and a step counter. Rank 0 copies a batch in
 * and bumps the counter (step_ring_publish); every other rank waits for the counter to move
 * (step_ring_next), runs model_forward on the views into the slot, and reports the step done
 * (step_ring_done); the ranks' forwards meet in their all-reduces, so they run in lockstep.
 * Rank 0 publishes the next step only once every rank has finished reading the previous one.
 * Ranks other than 0 get n_logits 0: only rank 0 computes logits.
 *
 * Failure: a waiting side checks about every millisecond that the other processes are alive
 * (and not zombies) and that the ring was not stopped; it then returns ERR_STATE.
 * step_ring_stop asks the ranks to exit cleanly (step_ring_next returns 0).
 *
 * Threads: one thread per process uses a handle.
 */
#ifndef KILN_STEP_RING_H
#define KILN_STEP_RING_H

#include <stddef.h>

#include "worker/model.h"

struct step_ring;

/* step_ring_bytes: the region's size for steps of at most max_tokens tokens, max_seqs
 * sequences of max_blocks blocks, and max_logits logit rows; 0 if a size is out of range. */
size_t step_ring_bytes(size_t max_tokens, size_t max_seqs, size_t max_blocks, size_t max_logits);

/* step_ring_create: maps and initializes a shared region (MAP_SHARED: inherited over fork;
 * *fd_out, when not NULL, gets a memfd of it). Returns 0 and *region, ERR_INVAL, ERR_IO,
 * ERR_NOMEM. Unmap with step_ring_unmap. */
int step_ring_create(int n_ranks, size_t max_tokens, size_t max_seqs, size_t max_blocks,
                     size_t max_logits, void **region, int *fd_out);
void step_ring_unmap(void *region);

/* step_ring_attach: rank's handle; records this process as the rank's. 0, ERR_INVAL,
 * ERR_NOMEM. */
int step_ring_attach(void *region, int rank, struct step_ring **out);
void step_ring_detach(struct step_ring *r);

/* step_ring_publish (rank 0): waits until every rank finished the previous step, then
 * copies b into the slot and releases it. 0, ERR_RANGE (b larger than the ring's sizes),
 * ERR_STATE (a rank died or the ring stopped). */
int step_ring_publish(struct step_ring *r, const struct model_batch *b);

/* step_ring_next (ranks > 0): waits for the next step and points *b into the slot (valid
 * until step_ring_done). Returns 1 with a step, 0 when the ring was stopped, ERR_STATE when
 * rank 0 died. */
int step_ring_next(struct step_ring *r, struct model_batch *b);

/* step_ring_done (ranks > 0): this rank is finished with the step step_ring_next gave. */
void step_ring_done(struct step_ring *r);

/* step_ring_stop (rank 0): every rank's step_ring_next returns 0 from now on. */
void step_ring_stop(struct step_ring *r);

#endif
