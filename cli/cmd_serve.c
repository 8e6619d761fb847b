/*
 * cmd_serve: `kiln serve --model DIR [flags]`: one node. Binds the port once, starts the
 * engine (`kiln engine`, with its tensor-parallel ranks) on a private ipc:// socket and
 * --frontends frontend processes (`kiln frontend`) that share the listening socket, waits
 * until all are ready, prints the URL and supervises them: a process that dies is started
 * again (frontends reconnect to a restarted engine by themselves). SIGTERM or Ctrl-C drains:
 * the frontends stop accepting and finish in-flight requests up to --shutdown-timeout, then
 * the engine stops; exit 0. A second signal kills everything at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/commands.h"
#include "common/cfg.h"
#include "common/err.h"

#define MAX_FRONTENDS 64
#define MAX_ARGS 64
#define MAX_RESTARTS 5 /* a process dying this often within RESTART_WINDOW_S: give up */
#define RESTART_WINDOW_S 30

struct serve_opts {
    const char *model, *names, *host, *api_key, *kv_cache_memory, *chat_template, *origins,
        *log_level, *tool_parser, *certfile, *keyfile;
    long long port, frontends, tp, max_model_len, block_size, max_num_seqs,
        max_num_batched_tokens, seed, max_logprobs, shutdown_timeout, threads, max_in_flight;
    int load_format, device, dtype, metrics_compat;
    bool prefix_caching, trust_template, auto_tool;
};

#define F(name, type, field, def, lo, hi, choices, help)                                           \
    {name, type, offsetof(struct serve_opts, field), def, lo, hi, choices, help}
static const struct cfg_flag serve_flags[] = {
    F("model", CFG_STRING, model, NULL, 1, 0, NULL, "a Hugging Face model directory"),
    F("served-model-name", CFG_STRING, names, NULL, 1, 0, NULL,
      "comma-separated names clients use (default: --model as given)"),
    F("host", CFG_STRING, host, "127.0.0.1", 1, 0, NULL, "address to listen on"),
    F("port", CFG_INT, port, "8000", 0, 65535, NULL, "port (0: any free one)"),
    F("api-key", CFG_STRING, api_key, NULL, 1, 0, NULL,
      "comma-separated keys required on /v1 (also KILN_API_KEY)"),
    F("frontends", CFG_INT, frontends, "0", 0, MAX_FRONTENDS, NULL,
      "HTTP frontend processes (0: one per two cores, at least one)"),
    F("tensor-parallel-size", CFG_INT, tp, "1", 1, 64, NULL, "engine ranks (processes)"),
    F("device", CFG_ENUM, device, "cpu", 1, 0, "cpu", "where the model runs"),
    F("dtype", CFG_ENUM, dtype, "auto", 1, 0, "auto", "weights as stored (bf16, f16, f32)"),
    F("load-format", CFG_ENUM, load_format, "auto", 1, 0, "auto|dummy",
      "auto: safetensors weights; dummy: random weights of the config's shapes"),
    F("threads", CFG_INT, threads, "0", 0, 1024, NULL,
      "CPU threads per engine rank (0: the CPUs the frontends leave, split among the ranks)"),
    F("max-model-len", CFG_INT, max_model_len, "0", 0, 1 << 24, NULL,
      "longest prompt + output (0: the model's)"),
    F("block-size", CFG_INT, block_size, "16", 1, 4096, NULL, "tokens per KV-cache block"),
    F("max-num-seqs", CFG_INT, max_num_seqs, "256", 1, 65536, NULL, "sequences per step"),
    F("max-num-batched-tokens", CFG_INT, max_num_batched_tokens, "2048", 1, 1 << 20, NULL,
      "tokens per step"),
    F("kv-cache-memory", CFG_STRING, kv_cache_memory, "1GiB", 1, 0, NULL,
      "KV cache per rank (bytes; K, M, G, KiB, MiB, GiB suffixes)"),
    F("enable-prefix-caching", CFG_BOOL, prefix_caching, "true", 1, 0, NULL,
      "reuse cached prompt prefixes"),
    F("seed", CFG_INT, seed, "-1", -1, 9e18, NULL, "engine seed (-1: random)"),
    F("max-logprobs", CFG_INT, max_logprobs, "20", 0, 20, NULL, "top logprobs at most"),
    F("max-in-flight", CFG_INT, max_in_flight, "4096", 1, 1 << 20, NULL,
      "requests in flight per frontend; more get 503 with Retry-After"),
    F("chat-template", CFG_STRING, chat_template, NULL, 1, 0, NULL, "a chat template file"),
    F("trust-request-chat-template", CFG_BOOL, trust_template, "false", 1, 0, NULL,
      "allow a per-request chat_template"),
    F("enable-auto-tool-choice", CFG_BOOL, auto_tool, "false", 1, 0, NULL,
      "tool calling (a later release)"),
    F("tool-call-parser", CFG_STRING, tool_parser, NULL, 1, 0, NULL,
      "hermes|mistral|llama3_json (a later release)"),
    F("allowed-origins", CFG_STRING, origins, NULL, 1, 0, NULL, "CORS origins, or *"),
    F("ssl-certfile", CFG_STRING, certfile, NULL, 1, 0, NULL,
      "PEM certificate: serve TLS (ALPN h2, http/1.1) instead of cleartext"),
    F("ssl-keyfile", CFG_STRING, keyfile, NULL, 1, 0, NULL, "PEM private key of --ssl-certfile"),
    F("shutdown-timeout", CFG_INT, shutdown_timeout, "30", 0, 3600, NULL,
      "seconds in-flight requests may finish after SIGTERM"),
    F("metrics-compat", CFG_ENUM, metrics_compat, "none", 1, 0, "none|vllm",
      "vllm: also expose vllm:-prefixed metrics"),
    F("log-level", CFG_STRING, log_level, "info", 1, 0, NULL, "error|warn|info|debug"),
};
#undef F

#define N_FLAGS (sizeof serve_flags / sizeof *serve_flags)

struct child {
    pid_t pid;
    time_t starts[MAX_RESTARTS];
    int n_starts;
};

struct serve {
    struct serve_opts o;
    char self[4096], dir[64], addr[128], fd_arg[16];
    char num[16][24]; /* numbers as text for argv */
    int listen_fd, port, n_frontends;
    long long engine_threads; /* per rank */
    struct child engine, fronts[MAX_FRONTENDS];
};

static volatile sig_atomic_t signals;

static void on_signal(int sig)
{
    (void)sig;
    signals++;
}

/* listen_on: a bound, listening socket for host:port (SO_REUSEPORT, inheritable). */
static int listen_on(struct serve *s, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE}, *res;
    char port[16];
    snprintf(port, sizeof port, "%lld", s->o.port);
    int rc = getaddrinfo(s->o.host, port, &hints, &res);
    if (rc)
        return snprintf(err, errlen, "%s: %s", s->o.host, gai_strerror(rc)), ERR_INVAL;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) ||
        bind(fd, res->ai_addr, res->ai_addrlen) || listen(fd, 1024)) {
        snprintf(err, errlen, "cannot listen on %s:%s: %s", s->o.host, port, strerror(errno));
        freeaddrinfo(res);
        if (fd >= 0)
            close(fd);
        return ERR_IO;
    }
    freeaddrinfo(res);
    struct sockaddr_storage sa;
    socklen_t len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    s->port = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                             : ((struct sockaddr_in *)&sa)->sin_port);
    s->listen_fd = fd;
    return 0;
}

/* num: n as text in one of s's slots. */
static const char *num(struct serve *s, int slot, long long n)
{
    snprintf(s->num[slot], sizeof s->num[slot], "%lld", n);
    return s->num[slot];
}

/* engine_argv: the engine's command line. */
static void engine_argv(struct serve *s, const char **a)
{
    const struct serve_opts *o = &s->o;
    int k = 0;
    a[k++] = s->self, a[k++] = "engine", a[k++] = "--model", a[k++] = o->model;
    a[k++] = "--addr", a[k++] = s->addr;
    a[k++] = "--served-model-name", a[k++] = o->names ? o->names : o->model;
    a[k++] = "--tensor-parallel-size", a[k++] = num(s, 0, o->tp);
    a[k++] = "--load-format", a[k++] = o->load_format ? "dummy" : "auto";
    a[k++] = "--threads", a[k++] = num(s, 1, s->engine_threads);
    a[k++] = "--max-model-len", a[k++] = num(s, 2, o->max_model_len);
    a[k++] = "--block-size", a[k++] = num(s, 3, o->block_size);
    a[k++] = "--max-num-seqs", a[k++] = num(s, 4, o->max_num_seqs);
    a[k++] = "--max-num-batched-tokens", a[k++] = num(s, 5, o->max_num_batched_tokens);
    a[k++] = "--kv-cache-memory", a[k++] = o->kv_cache_memory;
    a[k++] = o->prefix_caching ? "--enable-prefix-caching" : "--no-enable-prefix-caching";
    a[k++] = "--seed", a[k++] = num(s, 6, o->seed);
    a[k++] = "--log-level", a[k++] = o->log_level;
    a[k] = NULL;
}

/* frontend_argv: a frontend's command line. */
static void frontend_argv(struct serve *s, const char **a)
{
    const struct serve_opts *o = &s->o;
    int k = 0;
    a[k++] = s->self, a[k++] = "frontend", a[k++] = "--model", a[k++] = o->model;
    a[k++] = "--engine", a[k++] = s->addr, a[k++] = "--listen-fd", a[k++] = s->fd_arg;
    a[k++] = "--served-model-name", a[k++] = o->names ? o->names : o->model;
    a[k++] = "--max-logprobs", a[k++] = num(s, 7, o->max_logprobs);
    a[k++] = "--max-in-flight", a[k++] = num(s, 9, o->max_in_flight);
    a[k++] = "--shutdown-timeout", a[k++] = num(s, 8, o->shutdown_timeout);
    a[k++] = "--metrics-compat", a[k++] = o->metrics_compat ? "vllm" : "none";
    a[k++] = "--log-level", a[k++] = o->log_level;
    if (o->api_key)
        a[k++] = "--api-key", a[k++] = o->api_key;
    if (o->origins)
        a[k++] = "--allowed-origins", a[k++] = o->origins;
    if (o->chat_template)
        a[k++] = "--chat-template", a[k++] = o->chat_template;
    if (o->trust_template)
        a[k++] = "--trust-request-chat-template";
    if (o->certfile)
        a[k++] = "--ssl-certfile", a[k++] = o->certfile;
    if (o->keyfile)
        a[k++] = "--ssl-keyfile", a[k++] = o->keyfile;
    a[k] = NULL;
}

/* spawn: starts argv (handing it inherit_fd, or none when -1) and waits up to timeout_s for
 * a stdout line containing want. */
static int spawn(struct child *c, const char **argv, int inherit_fd, const char *want,
                 int timeout_s)
{
    int p[2];
    if (pipe(p))
        return ERR_IO;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]), close(p[1]);
        if (inherit_fd >= 0) /* the listening socket is close-on-exec for everyone else */
            fcntl(inherit_fd, F_SETFD, 0);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    c->pid = pid;
    char line[512];
    size_t n = 0;
    time_t end = time(NULL) + timeout_s;
    int rc = ERR_STATE;
    while (pid > 0 && time(NULL) < end && n < sizeof line - 1) {
        struct pollfd pf = {p[0], POLLIN, 0};
        if (poll(&pf, 1, 200) <= 0) {
            if (signals)
                break;
            continue;
        }
        ssize_t k = read(p[0], line + n, sizeof line - 1 - n);
        if (k <= 0)
            break;
        n += (size_t)k;
        line[n] = 0;
        if (strstr(line, want)) {
            rc = 0;
            break;
        }
    }
    close(p[0]);
    if (c->n_starts == MAX_RESTARTS)
        memmove(c->starts, c->starts + 1, (MAX_RESTARTS - 1) * sizeof *c->starts), c->n_starts--;
    c->starts[c->n_starts++] = time(NULL);
    return pid > 0 ? rc : ERR_IO;
}

static int start_engine(struct serve *s)
{
    const char *argv[MAX_ARGS];
    engine_argv(s, argv);
    return spawn(&s->engine, argv, -1, "ready on", 3600);
}

static int start_frontend(struct serve *s, int i)
{
    const char *argv[MAX_ARGS];
    frontend_argv(s, argv);
    return spawn(&s->fronts[i], argv, s->listen_fd, "listening on", 120);
}

/* crash_looping: c was started MAX_RESTARTS times within RESTART_WINDOW_S. */
static bool crash_looping(const struct child *c)
{
    return c->n_starts == MAX_RESTARTS && time(NULL) - c->starts[0] < RESTART_WINDOW_S;
}

/* stop_all: SIGTERM the frontends and wait for their drain, then the engine. */
static void stop_all(struct serve *s, int grace_s)
{
    for (int i = 0; i < s->n_frontends; i++)
        if (s->fronts[i].pid > 0)
            kill(s->fronts[i].pid, signals > 1 ? SIGKILL : SIGTERM);
    time_t end = time(NULL) + grace_s;
    for (int i = 0; i < s->n_frontends; i++) {
        while (s->fronts[i].pid > 0 && waitpid(s->fronts[i].pid, NULL, WNOHANG) == 0) {
            if (time(NULL) > end || signals > 1)
                kill(s->fronts[i].pid, SIGKILL);
            usleep(20000);
        }
        s->fronts[i].pid = 0;
    }
    if (s->engine.pid > 0) {
        kill(s->engine.pid, SIGTERM);
        end = time(NULL) + 10;
        while (waitpid(s->engine.pid, NULL, WNOHANG) == 0) {
            if (time(NULL) > end || signals > 1)
                kill(s->engine.pid, SIGKILL);
            usleep(20000);
        }
        s->engine.pid = 0;
    }
}

/* supervise: restarts what dies until a signal comes. Returns the exit status. */
static int supervise(struct serve *s)
{
    while (!signals) {
        int st;
        pid_t pid = waitpid(-1, &st, 0);
        if (pid < 0) {
            if (errno == EINTR)
                continue;
            return 1;
        }
        if (pid == s->engine.pid) {
            fprintf(stderr, "kiln serve: the engine exited (status %d); restarting it\n", st);
            if (crash_looping(&s->engine) || start_engine(s)) {
                fprintf(stderr, "kiln serve: the engine keeps failing; giving up\n");
                return 1;
            }
            continue;
        }
        for (int i = 0; i < s->n_frontends; i++)
            if (pid == s->fronts[i].pid) {
                fprintf(stderr, "kiln serve: frontend %d exited (status %d); restarting it\n", i,
                        st);
                if (crash_looping(&s->fronts[i]) || start_frontend(s, i)) {
                    fprintf(stderr, "kiln serve: frontend %d keeps failing; giving up\n", i);
                    return 1;
                }
            }
    }
    return 0;
}

static int check(struct serve *s, char *err, size_t errlen)
{
    const struct serve_opts *o = &s->o;
    if (!o->model)
        return snprintf(err, errlen, "--model is required"), ERR_INVAL;
    if (!o->certfile != !o->keyfile)
        return snprintf(err, errlen, "--ssl-certfile and --ssl-keyfile go together"), ERR_INVAL;
    if (o->auto_tool || o->tool_parser)
        return snprintf(err, errlen, "tool calling (--enable-auto-tool-choice, "
                                     "--tool-call-parser) is not supported yet"),
               ERR_UNSUPPORTED;
    ssize_t n = readlink("/proc/self/exe", s->self, sizeof s->self - 1);
    if (n <= 0)
        return snprintf(err, errlen, "cannot find the kiln binary"), ERR_IO;
    s->self[n] = 0;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    s->n_frontends = o->frontends ? (int)o->frontends : (int)(ncpu / 2 > 1 ? ncpu / 2 : 1);
    /* the engine's threads spin between parallel loops: by default they leave the frontends
     * their cores (on 2 cores, oversubscribing halved the requests served a second) */
    long spare = ncpu - s->n_frontends;
    s->engine_threads = o->threads ? o->threads : (spare / o->tp > 1 ? spare / o->tp : 1);
    snprintf(s->dir, sizeof s->dir, "/tmp/kiln-serve-XXXXXX");
    if (!mkdtemp(s->dir))
        return snprintf(err, errlen, "mkdtemp: %s", strerror(errno)), ERR_IO;
    snprintf(s->addr, sizeof s->addr, "ipc://%s/engine.sock", s->dir);
    return 0;
}

int cmd_serve(int argc, char **argv)
{
    static struct serve s;
    char err[512];
    static const char usage[] = "usage: kiln serve --model DIR [flags]";
    int rc = cfg_parse(serve_flags, N_FLAGS, &s.o, argc, argv, NULL, 0, NULL, err, sizeof err);
    if (rc == CFG_HELP) {
        cfg_print_help(stdout, usage, serve_flags, N_FLAGS);
        return 0;
    }
    if (rc == 0)
        rc = check(&s, err, sizeof err);
    if (rc == 0)
        rc = listen_on(&s, err, sizeof err);
    if (rc) {
        fprintf(stderr, "kiln serve: %s\n", err);
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    snprintf(s.fd_arg, sizeof s.fd_arg, "%d", s.listen_fd);
    const char *what = "the engine";
    rc = start_engine(&s);
    for (int i = 0; rc == 0 && i < s.n_frontends; i++)
        what = "a frontend", rc = start_frontend(&s, i);
    /* the launcher keeps the listening socket open: a restarted frontend needs it */
    if (rc == 0) {
        printf("kiln serve: %s on %s://%s:%d/v1 (%d frontends; Ctrl-C to stop)\n",
               s.o.names ? s.o.names : s.o.model, s.o.certfile ? "https" : "http", s.o.host,
               s.port, s.n_frontends);
        fflush(stdout);
        rc = supervise(&s);
    } else {
        fprintf(stderr, "kiln serve: %s did not start\n", what);
        rc = 1;
    }
    stop_all(&s, (int)s.o.shutdown_timeout + 5);
    close(s.listen_fd);
    char sock[128];
    snprintf(sock, sizeof sock, "%s/engine.sock", s.dir);
    unlink(sock);
    rmdir(s.dir);
    return signals > 1 ? 1 : rc;
}
