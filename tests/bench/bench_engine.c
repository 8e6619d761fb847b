/*
 * bench_engine: `kiln engine` end to end over real ZeroMQ: generated tokens per second,
 * requests per second, time to first token and time per output token, as a frontend sees them.
 *
 *   bench_engine KILN_BINARY MODEL_DIR [--max-tokens 128] [--prompt-len 32] [--threads 1]
 *
 * Starts `KILN_BINARY engine --model MODEL_DIR --threads N` on a fresh ipc:// address in a
 * temporary directory (its stderr goes to a file there), connects one frontend (a DEALER, as
 * common/mq.h sets it up) and waits for HELLO. After a short warm-up that is not counted, for
 * each concurrency C in 1, 16 and 64 it runs a closed loop: C requests in flight until
 * max(2 C, 8) have finished. Every request has its own prompt of prompt-len ids (BOS, then
 * pseudo-random ids from a seed derived from its id), ignore_eos, temperature 1 with a seed,
 * so each must end after exactly max-tokens tokens with finish LENGTH; anything else (a
 * refusal, a short sequence, the engine not ready in 60 s, a run over 120 s, the engine dying)
 * is reported and the bench exits 1 after killing the engine. Prints one line per
 * concurrency, then stops the engine with SIGTERM and prints its "us per step outside the
 * forward pass" line and any warnings or errors it logged.
 *
 * Times are CLOCK_MONOTONIC, taken when a message is sent or received: the wall time of a run
 * runs from its first ADD to its last finished request; TTFT is ADD to the first TOKENS entry
 * of the request; TPOT is (E2E - TTFT) / (tokens - 1).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/arena.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/mq.h"
#include "common/wire.h"

#define READY_TIMEOUT_S 60.0
#define RUN_TIMEOUT_S 120.0
#define STOP_TIMEOUT_S 20.0
#define BEAT_S 0.5 /* HEARTBEAT this often (the engine drops a frontend silent for 5 s) */
#define BOS_ID 1
#define FIRST_ID 3 /* prompt ids are drawn from FIRST_ID .. vocab - 1 */
#define N_WARMUP 4

static const int concurrencies[] = {1, 16, 64};

struct opts {
    const char *kiln, *model;
    int max_tokens, prompt_len, threads;
};

/* The engine process. */
struct child {
    pid_t pid;  /* 0 once reaped */
    int out_fd; /* read end of its stdout, -1 when closed */
    char dir[32];
    char addr[80];
    char log_path[64];
    char sock_path[64];
};

struct req {
    double t_send, t_first, t_done; /* seconds (CLOCK_MONOTONIC); 0 until it happened */
    uint32_t n_tokens;              /* ids received */
};

/* One closed-loop run: request i of it has id first_id + i. */
struct run {
    struct req *reqs; /* [n_total] */
    uint64_t first_id;
    int n_total, n_sent, n_done, conc;
    double t0, t_end; /* first ADD, last finish */
};

struct bench {
    const struct opts *o;
    struct child eng;
    struct mq_context *ctx;
    struct mq_frontend *fe;
    struct buf in, out; /* a received message; wire messages waiting to be sent */
    struct arena arena; /* the decoded messages of one received message */
    int32_t *prompt;    /* [o->prompt_len], the prompt being encoded */
    uint32_t vocab;     /* from HELLO, 0 until it came */
    uint32_t max_model_len;
    uint64_t next_id; /* request ids, never reused */
    double ready_s;   /* from fork to the engine's ready line */
    double last_beat;
    char err[512];
};

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void sleep_ms(int ms)
{
    struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static int fail(struct bench *b, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct bench *b, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->err, sizeof b->err, fmt, ap);
    va_end(ap);
    return rc;
}

/* ---- the engine process ---- */

/* child_exec: in the forked child: stdout to the pipe, stderr to the log, then the engine.
 * The parent has no other thread yet (the ZeroMQ context comes later), so stdio is safe. */
static void child_exec(int out_fd, int log_fd, char **argv)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* no orphaned engine if the bench dies */
    if (dup2(out_fd, 1) < 0 || dup2(log_fd, 2) < 0)
        _exit(127);
    execv(argv[0], argv);
    dprintf(2, "bench_engine: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

/* child_start: a temporary directory and the engine in it, not yet ready. Returns 0 or
 * ERR_IO. */
static int child_start(struct bench *b)
{
    struct child *c = &b->eng;
    snprintf(c->dir, sizeof c->dir, "/tmp/kiln-bench-XXXXXX");
    if (!mkdtemp(c->dir))
        return c->dir[0] = '\0', fail(b, ERR_IO, "mkdtemp: %s", strerror(errno));
    snprintf(c->sock_path, sizeof c->sock_path, "%s/engine.sock", c->dir);
    snprintf(c->addr, sizeof c->addr, "ipc://%s", c->sock_path);
    snprintf(c->log_path, sizeof c->log_path, "%s/engine.log", c->dir);
    char threads[16];
    snprintf(threads, sizeof threads, "%d", b->o->threads);
    char *argv[] = {(char *)b->o->kiln, "engine", "--model",   (char *)b->o->model,
                    "--addr",           c->addr,  "--threads", threads,
                    "--log-level",      "info",   NULL};
    int p[2], log_fd = open(c->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (log_fd < 0 || pipe2(p, O_CLOEXEC) < 0) {
        if (log_fd >= 0)
            close(log_fd);
        return fail(b, ERR_IO, "%s: %s", c->log_path, strerror(errno));
    }
    fflush(NULL);
    c->pid = fork();
    if (c->pid == 0)
        child_exec(p[1], log_fd, argv);
    close(p[1]);
    close(log_fd);
    c->out_fd = p[0];
    if (c->pid < 0)
        return c->pid = 0, fail(b, ERR_IO, "fork: %s", strerror(errno));
    return 0;
}

/* child_exited: whether the engine has exited (reaping it); *status gets its wait status. */
static bool child_exited(struct child *c, int *status)
{
    if (c->pid == 0)
        return true;
    if (waitpid(c->pid, status, WNOHANG) != c->pid)
        return false;
    c->pid = 0;
    return true;
}

static void describe_status(int st, char *s, size_t n)
{
    if (WIFEXITED(st))
        snprintf(s, n, "exit status %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(s, n, "signal %d", WTERMSIG(st));
    else
        snprintf(s, n, "wait status %d", st);
}

/* child_gone: the error for an engine that closed its stdout before it was ready (its
 * exit status when it exits within a second). Returns ERR_STATE. */
static int child_gone(struct bench *b)
{
    int st = 0;
    for (int i = 0; i < 100 && !child_exited(&b->eng, &st); i++)
        sleep_ms(10);
    char how[64] = "still running";
    if (b->eng.pid == 0)
        describe_status(st, how, sizeof how);
    return fail(b, ERR_STATE, "the engine closed its stdout before it was ready (%s)", how);
}

/* child_wait_ready: reads the engine's stdout until "ready on". Returns 0, ERR_STATE (it
 * exited or closed stdout) or ERR_LIMIT (not ready in READY_TIMEOUT_S). */
static int child_wait_ready(struct bench *b)
{
    char line[512];
    size_t n = 0;
    double t0 = now(), deadline = t0 + READY_TIMEOUT_S;
    for (;;) {
        line[n] = '\0';
        if (strstr(line, "ready on") && strchr(line, '\n'))
            return b->ready_s = now() - t0, 0;
        double left = deadline - now();
        if (left <= 0)
            return fail(b, ERR_LIMIT, "the engine was not ready within %.0f s", READY_TIMEOUT_S);
        struct pollfd pfd = {b->eng.out_fd, POLLIN, 0};
        if (poll(&pfd, 1, (int)(left * 1000) + 1) <= 0)
            continue;
        if (n == sizeof line - 1)
            n = 0; /* a line longer than ours: not the one we wait for */
        ssize_t k = read(b->eng.out_fd, line + n, sizeof line - 1 - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return child_gone(b);
        n += (size_t)k;
    }
}

/* child_stop: SIGTERM, then waits for the engine to drain and exit. Returns 0, ERR_LIMIT
 * (still running after STOP_TIMEOUT_S: killed) or ERR_STATE (it did not exit with 0). */
static int child_stop(struct bench *b)
{
    struct child *c = &b->eng;
    int st = 0;
    if (c->pid == 0)
        return fail(b, ERR_STATE, "the engine had already exited");
    kill(c->pid, SIGTERM);
    double deadline = now() + STOP_TIMEOUT_S;
    while (!child_exited(c, &st)) {
        if (now() > deadline) {
            kill(c->pid, SIGKILL);
            waitpid(c->pid, &st, 0);
            c->pid = 0;
            return fail(b, ERR_LIMIT, "the engine did not exit within %.0f s of SIGTERM",
                        STOP_TIMEOUT_S);
        }
        sleep_ms(10);
    }
    char how[64];
    describe_status(st, how, sizeof how);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return fail(b, ERR_STATE, "the engine ended with %s after SIGTERM", how);
    return 0;
}

/* child_kill: SIGKILL to the engine if it still runs, and reaps it. */
static void child_kill(struct child *c)
{
    if (c->pid > 0) {
        kill(c->pid, SIGKILL);
        waitpid(c->pid, NULL, 0);
        c->pid = 0;
    }
}

/* child_cleanup: kills the engine if it still runs and removes the temporary directory. */
static void child_cleanup(struct child *c)
{
    child_kill(c);
    if (c->out_fd >= 0)
        close(c->out_fd);
    c->out_fd = -1;
    if (!c->dir[0])
        return;
    unlink(c->sock_path);
    unlink(c->log_path);
    if (rmdir(c->dir) < 0)
        fprintf(stderr, "bench_engine: rmdir %s: %s\n", c->dir, strerror(errno));
    c->dir[0] = '\0';
}

/* log_message: the message of an engine log line "<time> <level> <file>:<line> <message>". */
static const char *log_message(const char *line)
{
    const char *p = line;
    for (int field = 0; field < 3; field++) {
        p += strspn(p, " ");
        const char *sp = strchr(p, ' ');
        if (!sp)
            return line;
        p = sp;
    }
    return p + strspn(p, " ");
}

/* print_engine_log: the engine's per-step overhead line and its warnings and errors to f;
 * with tail > 0, also its last tail lines (after a failure). */
static void print_engine_log(const struct child *c, FILE *f, int tail)
{
    FILE *in = c->dir[0] ? fopen(c->log_path, "r") : NULL;
    if (!in)
        return;
    char line[2048], last[16][2048];
    int n = 0, n_overhead = 0;
    while (fgets(line, sizeof line, in)) {
        const char *msg = log_message(line);
        char level[8];
        if (strstr(line, "us per step outside the forward pass") && ++n_overhead)
            fprintf(f, "engine: %s", msg);
        else if (sscanf(line, "%*s %7s", level) == 1 &&
                 (strcmp(level, "warn") == 0 || strcmp(level, "error") == 0))
            fprintf(f, "engine %s: %s", level, msg);
        snprintf(last[n % 16], sizeof last[0], "%s", line);
        n++;
    }
    fclose(in);
    if (!n_overhead && tail == 0)
        fprintf(f, "engine: (no \"us per step outside the forward pass\" line in its log)\n");
    if (tail > 16)
        tail = 16;
    if (tail > 0 && n > 0)
        fprintf(f, "engine log (last lines):\n");
    for (int i = n > tail ? n - tail : 0; tail > 0 && i < n; i++)
        fprintf(f, "  %s", last[i % 16]);
}

/* ---- the frontend ---- */

/* flush: sends b->out as one ZeroMQ message, retrying while the queue is full or the
 * connection not up yet. Returns 0, ERR_LIMIT (still refused after 10 s) or the send error. */
static int flush(struct bench *b)
{
    double deadline = now() + 10;
    while (b->out.n) {
        int rc = mq_frontend_send(b->fe, b->out.p, b->out.n);
        if (rc == 0)
            buf_reset(&b->out);
        else if (rc != ERR_LIMIT)
            return fail(b, rc, "send to the engine failed: %s", err_name(rc));
        else if (now() > deadline)
            return fail(b, rc, "the engine did not take a message for 10 s");
        else
            sleep_ms(1);
    }
    return 0;
}

/* beat: queues and sends a HEARTBEAT. Returns 0 or as flush. */
static int beat(struct bench *b)
{
    struct wire_heartbeat hb = {.state = WIRE_READY, .kv_blocks_total = 1};
    int rc = wire_encode_heartbeat(&b->out, &hb, b->err, sizeof b->err);
    if (rc)
        return rc;
    b->last_beat = now();
    return flush(b);
}

/* queue_add: encodes the ADD of request i of r into b->out. Returns 0 or a wire error. */
static int queue_add(struct bench *b, struct run *r, int i)
{
    uint64_t id = r->first_id + (uint64_t)i, s = mix(id);
    b->prompt[0] = BOS_ID;
    for (int k = 1; k < b->o->prompt_len; k++) {
        s = mix(s);
        b->prompt[k] = (int32_t)(FIRST_ID + s % (b->vocab - FIRST_ID));
    }
    struct wire_add a = {.request_id = id, .n = 1, .prompt = b->prompt};
    a.n_prompt = (uint32_t)b->o->prompt_len;
    a.sp = sampling_params_default();
    a.sp.max_tokens = b->o->max_tokens;
    a.sp.ignore_eos = true;
    a.sp.has_seed = true;
    a.sp.seed = mix(id ^ 0x5eed);
    double t = now();
    a.arrival_us = (uint64_t)(t * 1e6);
    int rc = wire_encode_add(&b->out, &a, b->err, sizeof b->err);
    if (rc)
        return rc;
    r->reqs[i].t_send = t;
    if (i == 0)
        r->t0 = t;
    r->n_sent++;
    return 0;
}

static const char *finish_name(unsigned f)
{
    static const char *const names[] = {"none", "stop", "length", "abort", "error"};
    return f < sizeof names / sizeof *names ? names[f] : "unknown";
}

static const char *error_name(int32_t why)
{
    static const char *const names[] = {"internal", "overloaded", "invalid", "draining"};
    return why >= 0 && why <= WIRE_ERROR_MAX_ ? names[why] : "unknown";
}

/* on_seq: one TOKENS entry of run r received at t. Returns 0 or ERR_STATE (a refusal, an unknown
 * request, a wrong length or finish). */
static int on_seq(struct bench *b, struct run *r, const struct wire_seq_out *s, double t)
{
    uint64_t i = s->request_id - r->first_id;
    if (s->request_id < r->first_id || i >= (uint64_t)r->n_sent)
        return fail(b, ERR_STATE, "TOKENS for request %llu, which is not in flight",
                    (unsigned long long)s->request_id);
    if (s->finish == WIRE_FINISH_ERROR)
        return fail(b, ERR_STATE, "the engine refused request %llu (%s)",
                    (unsigned long long)s->request_id, error_name(s->stop_reason));
    struct req *q = &r->reqs[i];
    if (q->t_done > 0)
        return fail(b, ERR_STATE, "TOKENS for request %llu after it finished",
                    (unsigned long long)s->request_id);
    if (q->t_first == 0)
        q->t_first = t;
    q->n_tokens += s->n_ids;
    if (s->finish == WIRE_FINISH_NONE)
        return 0;
    if (s->finish != WIRE_FINISH_LENGTH || q->n_tokens != (uint32_t)b->o->max_tokens)
        return fail(b, ERR_STATE,
                    "request %llu ended with finish %s after %u tokens (expected length after %d)",
                    (unsigned long long)s->request_id, finish_name(s->finish), q->n_tokens,
                    b->o->max_tokens);
    q->t_done = t;
    r->t_end = t;
    r->n_done++;
    return r->n_sent < r->n_total ? queue_add(b, r, r->n_sent) : 0;
}

/* on_msg: one decoded wire message received at t (r is NULL before the first run). */
static int on_msg(struct bench *b, struct run *r, const struct wire_msg *m, double t)
{
    if (m->type == WIRE_HELLO) {
        if (b->vocab)
            return fail(b, ERR_STATE, "a second HELLO: the engine restarted");
        b->vocab = m->u.hello.vocab_size;
        b->max_model_len = m->u.hello.max_model_len;
    } else if (m->type == WIRE_TOKENS) {
        for (uint32_t k = 0; k < m->u.tokens.n_seqs; k++) {
            int rc = r ? on_seq(b, r, &m->u.tokens.seqs[k], t)
                       : fail(b, ERR_STATE, "TOKENS before any request");
            if (rc)
                return rc;
        }
    }
    return 0; /* HEARTBEAT and STATS: nothing to do */
}

/* pump: receives one message (waiting up to timeout_ms), handles every wire message in it
 * and sends the ADDs that finished requests made room for. Returns 0 or an error. */
static int pump(struct bench *b, struct run *r, int timeout_ms)
{
    int rc = mq_frontend_recv(b->fe, &b->in, timeout_ms);
    if (rc <= 0)
        return rc < 0 ? fail(b, rc, "receive from the engine failed: %s", err_name(rc)) : 0;
    double t = now();
    struct wire_iter it;
    struct wire_msg m;
    wire_iter_init(&it, b->in.p, b->in.n);
    while ((rc = wire_iter_next(&it, &m, &b->arena, b->err, sizeof b->err)) == 1)
        if ((rc = on_msg(b, r, &m, t)) != 0)
            break;
    arena_reset(&b->arena);
    return rc ? rc : flush(b);
}

/* tick: a HEARTBEAT when one is due, and whether the engine still runs. */
static int tick(struct bench *b)
{
    int st = 0;
    if (child_exited(&b->eng, &st)) {
        char how[64];
        describe_status(st, how, sizeof how);
        return fail(b, ERR_STATE, "the engine exited (%s)", how);
    }
    return now() - b->last_beat >= BEAT_S ? beat(b) : 0;
}

/* connect_engine: the frontend, a HEARTBEAT and the engine's HELLO. */
static int connect_engine(struct bench *b)
{
    struct mq_opts mo;
    int rc = mq_context_new(&b->ctx);
    if (rc)
        return fail(b, rc, "mq_context_new: %s", err_name(rc));
    mq_opts_init(&mo, b->ctx, b->eng.addr);
    if ((rc = mq_frontend_open(&mo, &b->fe, b->err, sizeof b->err)) != 0)
        return rc;
    double deadline = now() + 10;
    if ((rc = beat(b)) != 0)
        return rc;
    while (!b->vocab && (rc = tick(b)) == 0 && (rc = pump(b, NULL, 50)) == 0)
        if (now() > deadline)
            return fail(b, ERR_LIMIT, "no HELLO from the engine within 10 s");
    if (rc)
        return rc;
    if (b->vocab <= FIRST_ID ||
        (uint64_t)b->o->prompt_len + (uint64_t)b->o->max_tokens > b->max_model_len)
        return fail(b, ERR_RANGE,
                    "prompt %d + %d tokens do not fit the model (vocab %u, "
                    "max_model_len %u)",
                    b->o->prompt_len, b->o->max_tokens, b->vocab, b->max_model_len);
    return 0;
}

/* run_closed_loop: r->n_total requests, r->conc in flight at a time. Returns 0 or an error
 * (ERR_LIMIT: not done within RUN_TIMEOUT_S). */
static int run_closed_loop(struct bench *b, struct run *r)
{
    int rc = 0;
    for (int i = 0; i < r->conc && i < r->n_total && rc == 0; i++)
        rc = queue_add(b, r, i);
    if (rc || (rc = flush(b)) != 0)
        return rc;
    double deadline = r->t0 + RUN_TIMEOUT_S;
    while (r->n_done < r->n_total) {
        if (now() > deadline)
            return fail(b, ERR_LIMIT, "concurrency %d: %d of %d requests done after %.0f s",
                        r->conc, r->n_done, r->n_total, RUN_TIMEOUT_S);
        if ((rc = tick(b)) != 0 || (rc = pump(b, r, 50)) != 0)
            return rc;
    }
    return 0;
}

/* ---- results ---- */

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, c = *(const double *)y;
    return (a > c) - (a < c);
}

/* pct: the p-th percentile (nearest rank) of the sorted v[0..n). */
static double pct(const double *v, int n, double p)
{
    int k = (int)ceil(p / 100 * n) - 1;
    return v[k < 0 ? 0 : k >= n ? n - 1 : k];
}

static double mean(const double *v, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += v[i];
    return s / n;
}

/* report: one line for run r; v is scratch of 3 * r->n_total doubles. */
static void report(const struct run *r, const char *name, double *v)
{
    int n = r->n_total;
    double *ttft = v, *tpot = v + n, *e2e = v + 2 * n, tokens = 0;
    for (int i = 0; i < n; i++) {
        const struct req *q = &r->reqs[i];
        ttft[i] = (q->t_first - q->t_send) * 1e3;
        e2e[i] = (q->t_done - q->t_send) * 1e3;
        tpot[i] = q->n_tokens > 1 ? (e2e[i] - ttft[i]) / (q->n_tokens - 1) : 0;
        tokens += q->n_tokens;
    }
    qsort(ttft, (size_t)n, sizeof *ttft, cmp_double);
    qsort(e2e, (size_t)n, sizeof *e2e, cmp_double);
    double wall = r->t_end - r->t0;
    printf("engine e2e %s, concurrency %d: %.1f generated tokens/s, %.1f requests/s, TTFT mean "
           "%.2f ms p50 %.2f p99 %.2f, TPOT mean %.3f ms, E2E p50 %.1f ms p99 %.1f\n",
           name, r->conc, tokens / wall, n / wall, mean(ttft, n), pct(ttft, n, 50),
           pct(ttft, n, 99), mean(tpot, n), pct(e2e, n, 50), pct(e2e, n, 99));
    fflush(stdout);
}

/* measure: a run of n requests at concurrency c; prints its line unless name is NULL. */
static int measure(struct bench *b, int c, int n, const char *name)
{
    struct run r = {.first_id = b->next_id, .n_total = n, .conc = c};
    r.reqs = calloc((size_t)n, sizeof *r.reqs);
    double *v = calloc((size_t)n * 3, sizeof *v);
    if (!r.reqs || !v) {
        free(r.reqs);
        free(v);
        return fail(b, ERR_NOMEM, "out of memory");
    }
    b->next_id += (uint64_t)n;
    int rc = run_closed_loop(b, &r);
    if (rc == 0 && name)
        report(&r, name, v);
    free(r.reqs);
    free(v);
    return rc;
}

/* ---- main ---- */

static int parse_int(const char *s, int lo, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < lo || v > 1 << 20)
        return ERR_INVAL;
    *out = (int)v;
    return 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){.max_tokens = 128, .prompt_len = 32, .threads = 1};
    if (argc < 3 || (argc - 3) % 2)
        return ERR_INVAL;
    o->kiln = argv[1];
    o->model = argv[2];
    for (int i = 3; i < argc; i += 2) {
        int rc = strcmp(argv[i], "--max-tokens") == 0   ? parse_int(argv[i + 1], 1, &o->max_tokens)
                 : strcmp(argv[i], "--prompt-len") == 0 ? parse_int(argv[i + 1], 1, &o->prompt_len)
                 : strcmp(argv[i], "--threads") == 0    ? parse_int(argv[i + 1], 0, &o->threads)
                                                        : ERR_INVAL;
        if (rc)
            return rc;
    }
    return 0;
}

/* model_name: the last component of the model directory. */
static const char *model_name(const char *dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    static char name[256];
    snprintf(name, sizeof name, "%.*s", (int)n, dir);
    const char *slash = strrchr(name, '/');
    return slash ? slash + 1 : name;
}

/* bench_all: start the engine, connect, warm up, measure every concurrency, stop it. */
static int bench_all(struct bench *b)
{
    int rc;
    if ((rc = child_start(b)) || (rc = child_wait_ready(b)) || (rc = connect_engine(b)))
        return rc;
    b->prompt = malloc((size_t)b->o->prompt_len * sizeof *b->prompt);
    if (!b->prompt)
        return fail(b, ERR_NOMEM, "out of memory");
    if ((rc = measure(b, N_WARMUP, N_WARMUP, NULL)) != 0)
        return rc;
    printf("(each: max(2 x concurrency, 8) requests of %d prompt + %d generated tokens, "
           "engine --threads %d ready in %.2f s, after a %d-request warm-up)\n",
           b->o->prompt_len, b->o->max_tokens, b->o->threads, b->ready_s, N_WARMUP);
    const char *name = model_name(b->o->model);
    for (size_t i = 0; i < sizeof concurrencies / sizeof *concurrencies; i++) {
        int c = concurrencies[i], n = 2 * c > 8 ? 2 * c : 8;
        if ((rc = measure(b, c, n, name)) != 0)
            return rc;
    }
    if ((rc = child_stop(b)) != 0)
        return rc;
    print_engine_log(&b->eng, stdout, 0);
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o;
    if (parse_args(argc, argv, &o)) {
        fprintf(stderr, "usage: bench_engine KILN_BINARY MODEL_DIR [--max-tokens 128] "
                        "[--prompt-len 32] [--threads 1]\n");
        return 2;
    }
    struct bench b = {.o = &o, .eng = {.out_fd = -1}};
    buf_init(&b.in, (size_t)MQ_DEFAULT_MAXMSGSIZE);
    buf_init(&b.out, 0);
    arena_init(&b.arena, 0, 0);
    int rc = bench_all(&b);
    if (rc) {
        fprintf(stderr, "bench_engine: %s (%s)\n", b.err, err_name(rc));
        child_kill(&b.eng);
        print_engine_log(&b.eng, stderr, 12);
    }
    mq_frontend_close(b.fe);
    mq_context_free(b.ctx);
    child_cleanup(&b.eng);
    arena_deinit(&b.arena);
    buf_deinit(&b.in);
    buf_deinit(&b.out);
    free(b.prompt);
    return rc ? 1 : 0;
}
