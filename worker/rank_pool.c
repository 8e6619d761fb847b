/* rank_pool: the tensor-parallel rank processes of one engine. See rank_pool.h. */
#include "worker/rank_pool.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "worker/backend.h"
#include "worker/shm_allreduce.h"
#include "worker/step_ring.h"

#define MAX_RANKS 64
#define EXIT_LOAD 3    /* a rank could not load its shard */
#define EXIT_FORWARD 4 /* a rank's forward refused a published step */

struct rank_pool {
    int tp_size;
    void *ring_region, *ar_region;
    struct step_ring *ring;    /* rank 0's handle; NULL when tp_size is 1 */
    struct shm_allreduce *ar;  /* rank 0's handle */
    pid_t pids[MAX_RANKS];     /* [1 .. tp_size) */
};

/* say: writes a rank's load result ("ok" or the error) to the parent's pipe. */
static void say(int fd, const char *s)
{
    size_t n = strlen(s);
    while (n) {
        ssize_t w = write(fd, s, n);
        if (w <= 0 && errno != EINTR)
            return;
        if (w > 0)
            s += w, n -= (size_t)w;
    }
}

/* rank_main: the body of rank `rank`'s process; never returns. */
static void rank_main(const struct rank_pool_config *c, struct rank_pool *p, int rank, int fd,
                      pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(EXIT_LOAD);
    char err[512] = "out of memory";
    struct step_ring *ring;
    struct shm_allreduce *ar;
    struct backend *be = NULL;
    struct model *m = NULL;
    if (step_ring_attach(p->ring_region, rank, &ring) ||
        shm_allreduce_attach(p->ar_region, rank, &ar) ||
        backend_cpu_new(c->threads_per_rank, BACKEND_SIMD_AUTO, &be)) {
        say(fd, err);
        _exit(EXIT_LOAD);
    }
    struct model_opts o = c->opts;
    o.backend = be;
    o.tp_rank = rank;
    o.tp_size = c->tp_size;
    o.all_reduce = shm_allreduce_model_hook;
    o.all_reduce_ctx = ar;
    if (model_load(c->model_dir, &o, &m, err, sizeof err)) {
        char msg[600];
        snprintf(msg, sizeof msg, "rank %d: %s", rank, err);
        say(fd, msg);
        _exit(EXIT_LOAD);
    }
    say(fd, "ok");
    close(fd);
    struct model_batch b;
    int rc;
    while ((rc = step_ring_next(ring, &b)) == 1) {
        if (model_forward(m, &b, NULL, err, sizeof err)) {
            fprintf(stderr, "kiln rank %d: step refused: %s\n", rank, err);
            shm_allreduce_abort(p->ar_region);
            _exit(EXIT_FORWARD);
        }
        step_ring_done(ring);
    }
    if (rc < 0)
        fprintf(stderr, "kiln rank %d: rank 0 is gone; exiting\n", rank);
    _exit(rc == 0 ? 0 : 70);
}

/* wait_ready: reads rank r's load result from fd until it closes. */
static int wait_ready(int fd, int r, char *err, size_t errlen)
{
    char msg[640];
    size_t n = 0;
    for (;;) {
        ssize_t k = read(fd, msg + n, sizeof msg - 1 - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0 || (n += (size_t)k) == sizeof msg - 1)
            break;
    }
    msg[n] = 0;
    close(fd);
    if (n == 2 && memcmp(msg, "ok", 2) == 0)
        return 0;
    snprintf(err, errlen, "%s", n ? msg : "a tensor-parallel rank died while loading");
    (void)r;
    return n ? ERR_INVAL : ERR_STATE;
}

/* reap: waits up to ms for pid to exit, then kills it. */
static void reap(pid_t pid, int ms)
{
    for (int i = 0; i < ms; i++) {
        if (waitpid(pid, NULL, WNOHANG) != 0)
            return;
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

int rank_pool_start(const struct rank_pool_config *c, struct rank_pool **out, char *err,
                    size_t errlen)
{
    if (c->tp_size < 1 || c->tp_size > MAX_RANKS || !c->model_dir) {
        snprintf(err, errlen, "tensor-parallel size %d is not in 1 .. %d", c->tp_size, MAX_RANKS);
        return ERR_INVAL;
    }
    struct rank_pool *p = calloc(1, sizeof *p);
    if (!p)
        return ERR_NOMEM;
    p->tp_size = c->tp_size;
    *out = p;
    if (c->tp_size == 1)
        return 0;
    const struct model_opts *o = &c->opts;
    size_t max_logits = (size_t)(o->max_logits ? o->max_logits : o->max_seqs);
    size_t max_blocks = ((size_t)o->max_model_len + (size_t)o->block_size - 1) / (size_t)o->block_size;
    int rc = step_ring_create(c->tp_size, (size_t)o->max_batch_tokens, (size_t)o->max_seqs,
                              max_blocks, max_logits, &p->ring_region, NULL);
    if (!rc)
        rc = shm_allreduce_create(c->tp_size, c->max_allreduce, &p->ar_region, NULL);
    if (!rc && (step_ring_attach(p->ring_region, 0, &p->ring) ||
                shm_allreduce_attach(p->ar_region, 0, &p->ar)))
        rc = ERR_NOMEM;
    if (rc) {
        snprintf(err, errlen, "cannot map the tensor-parallel shared memory (%s)", err_name(rc));
        goto fail;
    }
    pid_t parent = getpid();
    fflush(NULL);
    for (int r = 1; r < c->tp_size && !rc; r++) {
        int fds[2];
        if (pipe2(fds, O_CLOEXEC)) {
            snprintf(err, errlen, "pipe: %s", strerror(errno));
            rc = ERR_IO;
            break;
        }
        pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            rank_main(c, p, r, fds[1], parent);
        }
        close(fds[1]);
        if (pid < 0) {
            close(fds[0]);
            snprintf(err, errlen, "fork: %s", strerror(errno));
            rc = ERR_IO;
            break;
        }
        p->pids[r] = pid;
        rc = wait_ready(fds[0], r, err, errlen);
    }
    if (!rc)
        return 0;
fail:
    rank_pool_stop(p);
    *out = NULL;
    return rc;
}

void rank_pool_model_opts(const struct rank_pool *p, struct model_opts *o)
{
    o->tp_rank = 0;
    o->tp_size = p->tp_size;
    o->all_reduce = p->tp_size > 1 ? shm_allreduce_model_hook : NULL;
    o->all_reduce_ctx = p->ar;
}

int rank_pool_publish(struct rank_pool *p, const struct model_batch *b)
{
    return p->ring ? step_ring_publish(p->ring, b) : 0;
}

void rank_pool_stop(struct rank_pool *p)
{
    if (!p)
        return;
    if (p->ring)
        step_ring_stop(p->ring);
    for (int r = 1; r < p->tp_size; r++)
        if (p->pids[r] > 0)
            reap(p->pids[r], 1000);
    if (p->ring)
        step_ring_detach(p->ring);
    if (p->ar)
        shm_allreduce_detach(p->ar);
    if (p->ring_region)
        step_ring_unmap(p->ring_region);
    if (p->ar_region)
        shm_allreduce_unmap(p->ar_region);
    free(p);
}
