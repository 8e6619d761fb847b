/* shm_allreduce: all-reduce across processes through shared memory. See shm_allreduce.h. */
#include "worker/shm_allreduce.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/err.h"
#include "worker/peer.h"

#define MAX_RANKS 64
#define MAGIC 0x6b696c6e61727231ull /* "kilnarr1" */

/* The region: this header, then result[max_elems], then slot[n_ranks][max_elems]. */
struct shm_header {
    uint64_t magic;
    int32_t n_ranks;
    uint64_t max_elems;
    atomic_int aborted;
    atomic_uint arrived;    /* ranks at the current barrier */
    atomic_uint generation; /* barriers completed */
    atomic_int pid[MAX_RANKS];
    _Alignas(64) char pad[64];
};

struct shm_allreduce {
    struct shm_header *hdr;
    float *result, *slots;
    int rank;
};

static size_t header_bytes(void)
{
    return (sizeof(struct shm_header) + 63) / 64 * 64;
}

size_t shm_allreduce_bytes(int n_ranks, size_t max_elems)
{
    return header_bytes() + (size_t)(n_ranks + 1) * max_elems * sizeof(float);
}

int shm_allreduce_create(int n_ranks, size_t max_elems, void **region, int *fd_out)
{
    if (n_ranks < 1 || n_ranks > MAX_RANKS || max_elems == 0 || max_elems > ((size_t)1 << 32))
        return ERR_INVAL;
    size_t bytes = shm_allreduce_bytes(n_ranks, max_elems);
    int fd = memfd_create("kiln-allreduce", MFD_CLOEXEC);
    if (fd < 0)
        return ERR_IO;
    if (ftruncate(fd, (off_t)bytes) != 0) {
        close(fd);
        return ERR_NOMEM;
    }
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        close(fd);
        return ERR_NOMEM;
    }
    struct shm_header *h = p;
    h->magic = MAGIC;
    h->n_ranks = n_ranks;
    h->max_elems = max_elems;
    if (fd_out)
        *fd_out = fd;
    else
        close(fd);
    *region = p;
    return 0;
}

void shm_allreduce_unmap(void *region)
{
    struct shm_header *h = region;
    if (h)
        munmap(region, shm_allreduce_bytes(h->n_ranks, (size_t)h->max_elems));
}

int shm_allreduce_attach(void *region, int rank, struct shm_allreduce **out)
{
    struct shm_header *h = region;
    if (!h || h->magic != MAGIC || rank < 0 || rank >= h->n_ranks)
        return ERR_INVAL;
    struct shm_allreduce *a = calloc(1, sizeof *a);
    if (!a)
        return ERR_NOMEM;
    a->hdr = h;
    a->rank = rank;
    a->result = (float *)((char *)region + header_bytes());
    a->slots = a->result + h->max_elems;
    atomic_store(&h->pid[rank], (int)getpid());
    *out = a;
    return 0;
}

void shm_allreduce_detach(struct shm_allreduce *h)
{
    free(h);
}

void shm_allreduce_abort(void *region)
{
    atomic_store(&((struct shm_header *)region)->aborted, 1);
}

/* peers_alive: every registered peer process is alive and the group is not aborted. */
static int peers_alive(const struct shm_header *h)
{
    if (atomic_load(&h->aborted))
        return 0;
    for (int r = 0; r < h->n_ranks; r++) {
        int pid = atomic_load(&h->pid[r]);
        if (pid > 0 && !peer_alive(pid))
            return 0;
    }
    return 1;
}

/* barrier: waits for every rank (a generation-counting barrier). 0 or ERR_STATE. */
static int barrier(struct shm_header *h)
{
    unsigned gen = atomic_load(&h->generation);
    if (atomic_fetch_add(&h->arrived, 1) + 1 == (unsigned)h->n_ranks) {
        atomic_store(&h->arrived, 0);
        atomic_fetch_add(&h->generation, 1);
        return 0;
    }
    for (unsigned long i = 1; atomic_load(&h->generation) == gen; i++)
        if (peer_backoff(i) && !peers_alive(h)) {
            /* the last rank may have released the barrier and exited (a zombie now) since
             * the generation was read: only a barrier still closed is a failure */
            if (atomic_load(&h->generation) != gen)
                break;
            atomic_store(&h->aborted, 1);
            return ERR_STATE;
        }
    return atomic_load(&h->aborted) ? ERR_STATE : 0;
}

int shm_allreduce_run(struct shm_allreduce *a, float *buf, size_t n)
{
    struct shm_header *h = a->hdr;
    size_t N = (size_t)h->n_ranks, stride = (size_t)h->max_elems;
    if (n > stride)
        return ERR_RANGE;
    if (N == 1)
        return 0;
    memcpy(a->slots + (size_t)a->rank * stride, buf, n * sizeof(float));
    if (barrier(h))
        return ERR_STATE;
    size_t begin = n * (size_t)a->rank / N, end = n * (size_t)(a->rank + 1) / N;
    for (size_t i = begin; i < end; i++) {
        float s = 0;
        for (size_t r = 0; r < N; r++) /* the same order on every rank: identical results */
            s += a->slots[r * stride + i];
        a->result[i] = s;
    }
    if (barrier(h))
        return ERR_STATE;
    memcpy(buf, a->result, n * sizeof(float));
    return 0;
}

void shm_allreduce_model_hook(void *ctx, float *buf, size_t n)
{
    struct shm_allreduce *a = ctx;
    int rc = shm_allreduce_run(a, buf, n);
    if (rc) {
        fprintf(stderr,
                "kiln worker rank %d: all-reduce failed (%s): a peer rank died or the "
                "group was aborted; exiting\n",
                a->rank, err_name(rc));
        _exit(70);
    }
}
