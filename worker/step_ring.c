/* step_ring: rank 0 hands each step's batch to the other ranks. See step_ring.h. */
#include "worker/step_ring.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/err.h"
#include "worker/peer.h"

#define MAX_RANKS 64
#define MAGIC 0x6b696c6e73746570ull /* "kilnstep" */
#define MAX_SIZE ((size_t)1 << 24)

/* The region: this header, then int32 ids, pos, seq_of, slots [max_tokens], logit rows
 * [max_logits], block tables [max_seqs][max_blocks]. */
struct ring_header {
    uint64_t magic;
    int32_t n_ranks;
    uint64_t max_tokens, max_seqs, max_blocks, max_logits;
    atomic_uint_fast64_t published;       /* steps published so far */
    atomic_uint_fast64_t done[MAX_RANKS]; /* steps each rank has finished */
    atomic_int stopped;
    atomic_int pid[MAX_RANKS];
    uint64_t n_tokens, n_seqs, table_width, n_logits; /* the current step */
};

struct step_ring {
    struct ring_header *h;
    int32_t *ids, *pos, *seq_of, *slots, *rows, *tables;
    int rank;
    uint64_t seen; /* ranks > 0: the step being run */
};

static size_t header_bytes(void)
{
    return (sizeof(struct ring_header) + 63) / 64 * 64;
}

size_t step_ring_bytes(size_t max_tokens, size_t max_seqs, size_t max_blocks, size_t max_logits)
{
    if (!max_tokens || !max_seqs || !max_blocks || max_tokens > MAX_SIZE || max_seqs > MAX_SIZE ||
        max_blocks > MAX_SIZE || max_logits > MAX_SIZE || max_seqs * max_blocks > MAX_SIZE * 16)
        return 0;
    return header_bytes() + (4 * max_tokens + max_logits + max_seqs * max_blocks) * 4;
}

int step_ring_create(int n_ranks, size_t max_tokens, size_t max_seqs, size_t max_blocks,
                     size_t max_logits, void **region, int *fd_out)
{
    size_t bytes = step_ring_bytes(max_tokens, max_seqs, max_blocks, max_logits);
    if (n_ranks < 1 || n_ranks > MAX_RANKS || bytes == 0)
        return ERR_INVAL;
    int fd = memfd_create("kiln-steps", MFD_CLOEXEC);
    if (fd < 0)
        return ERR_IO;
    void *p = ftruncate(fd, (off_t)bytes) == 0
                  ? mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
                  : MAP_FAILED;
    if (p == MAP_FAILED) {
        close(fd);
        return ERR_NOMEM;
    }
    struct ring_header *h = p;
    h->magic = MAGIC;
    h->n_ranks = n_ranks;
    h->max_tokens = max_tokens, h->max_seqs = max_seqs;
    h->max_blocks = max_blocks, h->max_logits = max_logits;
    if (fd_out)
        *fd_out = fd;
    else
        close(fd);
    *region = p;
    return 0;
}

void step_ring_unmap(void *region)
{
    struct ring_header *h = region;
    if (h)
        munmap(region, step_ring_bytes(h->max_tokens, h->max_seqs, h->max_blocks, h->max_logits));
}

int step_ring_attach(void *region, int rank, struct step_ring **out)
{
    struct ring_header *h = region;
    if (!h || h->magic != MAGIC || rank < 0 || rank >= h->n_ranks)
        return ERR_INVAL;
    struct step_ring *r = calloc(1, sizeof *r);
    if (!r)
        return ERR_NOMEM;
    r->h = h;
    r->rank = rank;
    r->ids = (int32_t *)((char *)region + header_bytes());
    r->pos = r->ids + h->max_tokens;
    r->seq_of = r->pos + h->max_tokens;
    r->slots = r->seq_of + h->max_tokens;
    r->rows = r->slots + h->max_tokens;
    r->tables = r->rows + h->max_logits;
    r->seen = 0; /* a rank that attaches late still runs step 1: the slot waits for it */
    atomic_store(&h->pid[rank], (int)getpid());
    *out = r;
    return 0;
}

void step_ring_detach(struct step_ring *r)
{
    free(r);
}

/* ranks_alive: every attached process is alive and the ring is running. */
static int ranks_alive(const struct ring_header *h)
{
    if (atomic_load(&h->stopped))
        return 0;
    for (int i = 0; i < h->n_ranks; i++) {
        int pid = atomic_load(&h->pid[i]);
        if (pid > 0 && !peer_alive(pid))
            return 0;
    }
    return 1;
}

/* all_done: every rank > 0 finished step n. */
static int all_done(const struct ring_header *h, uint64_t n)
{
    for (int i = 1; i < h->n_ranks; i++)
        if (atomic_load_explicit(&h->done[i], memory_order_acquire) < n)
            return 0;
    return 1;
}

int step_ring_publish(struct step_ring *r, const struct model_batch *b)
{
    struct ring_header *h = r->h;
    if (b->n_tokens > h->max_tokens || b->n_seqs > h->max_seqs || b->max_blocks > h->max_blocks ||
        b->n_logits > h->max_logits)
        return ERR_RANGE;
    uint64_t n = atomic_load(&h->published);
    for (unsigned long i = 1; !all_done(h, n); i++)
        if (peer_backoff(i) && !ranks_alive(h))
            return ERR_STATE;
    size_t t = b->n_tokens * sizeof(int32_t);
    memcpy(r->ids, b->ids, t);
    memcpy(r->pos, b->pos, t);
    memcpy(r->seq_of, b->seq_of, t);
    memcpy(r->slots, b->slot_mapping, t);
    memcpy(r->rows, b->logit_rows, b->n_logits * sizeof(int32_t));
    memcpy(r->tables, b->block_tables, b->n_seqs * b->max_blocks * sizeof(int32_t));
    h->n_tokens = b->n_tokens, h->n_seqs = b->n_seqs;
    h->table_width = b->max_blocks, h->n_logits = b->n_logits;
    atomic_store_explicit(&h->published, n + 1, memory_order_release);
    return 0;
}

int step_ring_next(struct step_ring *r, struct model_batch *b)
{
    struct ring_header *h = r->h;
    for (unsigned long i = 1; atomic_load_explicit(&h->published, memory_order_acquire) == r->seen;
         i++) {
        if (atomic_load(&h->stopped))
            return 0;
        if (peer_backoff(i) && !ranks_alive(h))
            return atomic_load(&h->stopped) ? 0 : ERR_STATE;
    }
    r->seen++;
    *b = (struct model_batch){.n_tokens = h->n_tokens,
                              .ids = r->ids,
                              .pos = r->pos,
                              .seq_of = r->seq_of,
                              .slot_mapping = r->slots,
                              .n_seqs = h->n_seqs,
                              .block_tables = r->tables,
                              .max_blocks = h->table_width,
                              .n_logits = 0,
                              .logit_rows = r->rows};
    return 1;
}

void step_ring_done(struct step_ring *r)
{
    atomic_store_explicit(&r->h->done[r->rank], r->seen, memory_order_release);
}

void step_ring_stop(struct step_ring *r)
{
    atomic_store(&r->h->stopped, 1);
}
