/*
 * test_engine_link: the frontend's engine link against the real `kiln engine` process
 * (started from $KILN_BUILD/kiln on stories260K) over real ZeroMQ, in a libevent loop:
 * greedy requests give the model's golden ids, n choices and refusals end as they should,
 * an abort stops the tokens, a killed engine fails its requests within seconds and a
 * restarted one is used again.
 */
#include <event2/event.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/mq.h"
#include "frontend/engine_link.h"
#include "tests/test.h"

#define MAXR 8
#define MAXT 512

struct req {
    int32_t ids[2][MAXT];
    uint32_t n[2];
    uint8_t finish[2];
    int32_t stop_reason;
    bool done, failed;
    int callbacks_after_done;
};

static struct req reqs[MAXR];
static char addr[128];

static void on_tokens(void *p, const struct wire_seq_out *s, bool done)
{
    struct req *r = p;
    if (r->done || r->failed)
        r->callbacks_after_done++;
    uint32_t c = s->choice < 2 ? s->choice : 1;
    for (uint32_t i = 0; i < s->n_ids && r->n[c] < MAXT; i++)
        r->ids[c][r->n[c]++] = s->ids[i];
    if (s->finish)
        r->finish[c] = s->finish, r->stop_reason = s->stop_reason;
    r->done = done;
}

static void on_fail(void *p, int why)
{
    struct req *r = p;
    (void)why;
    r->failed = true;
}

static pid_t start_engine(void)
{
    const char *b = getenv("KILN_BUILD");
    char kiln[512], model[512];
    snprintf(kiln, sizeof kiln, "%s/kiln", b ? b : "build");
    snprintf(model, sizeof model, "%s/models/stories260K", test_fixtures());
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* no engine outlives a failed test */
        if (!freopen("/dev/null", "w", stdout))
            _exit(127);
        execl(kiln, kiln, "engine", "--model", model, "--addr", addr, "--threads", "1",
              "--log-level", "warn", (char *)NULL);
        _exit(127);
    }
    return pid;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* run_until: runs the loop until cond(arg) or timeout seconds; returns whether cond held. */
static bool run_until(struct event_base *base, bool (*cond)(void *), void *arg, double timeout)
{
    double end = now_s() + timeout;
    while (!cond(arg)) {
        if (now_s() > end)
            return false;
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        usleep(500);
    }
    return true;
}

static bool is_ready(void *l)
{
    return engine_link_ready(l);
}

static bool is_over(void *r)
{
    return ((struct req *)r)->done || ((struct req *)r)->failed;
}

static bool has_tokens(void *r)
{
    return ((struct req *)r)->n[0] > 0;
}

/* golden: prompt and generated ids of a stories260K golden file. */
static int golden(const char *name, int32_t *prompt, size_t *np, int32_t *gen, size_t *ng)
{
    char path[512];
    snprintf(path, sizeof path, "%s/models/stories260K/golden/%s", test_fixtures(), name);
    json_t *j = json_load_file(path, 0, NULL);
    json_t *p = json_object_get(j, "prompt_ids"), *g = json_object_get(j, "generated_ids");
    if (!json_is_array(p) || !json_is_array(g))
        return json_decref(j), -1;
    *np = json_array_size(p), *ng = json_array_size(g);
    for (size_t i = 0; i < *np; i++)
        prompt[i] = (int32_t)json_integer_value(json_array_get(p, i));
    for (size_t i = 0; i < *ng; i++)
        gen[i] = (int32_t)json_integer_value(json_array_get(g, i));
    json_decref(j);
    return 0;
}

static int submit(struct engine_link *l, struct req *r, const int32_t *prompt, size_t np,
                  int max_tokens, uint32_t n, uint64_t *rid)
{
    memset(r, 0, sizeof *r);
    struct wire_add a = {.n = n, .prompt = prompt, .n_prompt = (uint32_t)np};
    a.sp = sampling_params_default();
    a.sp.temperature = n > 1 ? 1.0f : 0.0f;
    a.sp.has_seed = n > 1;
    a.sp.seed = n > 1 ? 5 : 0;
    a.sp.max_tokens = max_tokens;
    a.sp.ignore_eos = max_tokens > 64;
    char err[200];
    int rc = engine_link_submit(l, &a, r, rid, err, sizeof err);
    if (rc)
        fprintf(stderr, "    submit: %s\n", err);
    return rc;
}

struct fixture {
    struct event_base *base;
    struct mq_context *ctx;
    struct engine_link *l;
    pid_t engine;
};

static int open_fixture(struct fixture *f, const char *name)
{
    snprintf(addr, sizeof addr, "ipc:///tmp/kiln-test-link-%d-%s.sock", (int)getpid(), name);
    f->engine = start_engine();
    f->base = event_base_new();
    struct engine_link_handler h = {on_tokens, on_fail, NULL, NULL};
    const char *addrs[1] = {addr};
    char err[200];
    if (!f->base || mq_context_new(&f->ctx) ||
        engine_link_new(f->base, f->ctx, addrs, 1, &h, &f->l, err, sizeof err))
        return -1;
    return run_until(f->base, is_ready, f->l, 30) ? 0 : -1;
}

static void close_fixture(struct fixture *f)
{
    engine_link_free(f->l);
    mq_context_free(f->ctx);
    event_base_free(f->base);
    if (f->engine > 0) {
        kill(f->engine, SIGKILL);
        waitpid(f->engine, NULL, 0);
    }
}

TEST(greedy_requests_give_the_golden_ids)
{
    struct fixture f;
    REQUIRE(open_fixture(&f, "golden") == 0);
    static const char *names[] = {"golden_prompt_once_upon_a_time.json",
                                  "golden_prompt_tom_and_sue.json", "golden_chat.json"};
    static int32_t prompt[3][512], gen[3][512];
    size_t np[3], ng[3];
    for (int i = 0; i < 3; i++) {
        REQUIRE(golden(names[i], prompt[i], &np[i], gen[i], &ng[i]) == 0);
        REQUIRE(submit(f.l, &reqs[i], prompt[i], np[i], 64, 1, NULL) == 0);
    }
    for (int i = 0; i < 3; i++) {
        REQUIRE(run_until(f.base, is_over, &reqs[i], 30));
        CHECK(!reqs[i].failed);
        CHECK_MEMEQ(reqs[i].ids[0], reqs[i].n[0] * 4, gen[i], ng[i] * 4);
    }
    CHECK_EQ(engine_link_info(f.l, 0)->in_flight, 0);
    CHECK(strstr(engine_link_limits(f.l)->model, "stories260K") != NULL);
    close_fixture(&f);
}

TEST(choices_refusals_and_aborts_end_as_they_should)
{
    struct fixture f;
    REQUIRE(open_fixture(&f, "ends") == 0);
    int32_t prompt[3] = {1, 300, 301}, bad[2] = {1, 100000};
    uint64_t rid;
    REQUIRE(submit(f.l, &reqs[0], prompt, 3, 20, 2, NULL) == 0);
    REQUIRE(submit(f.l, &reqs[1], bad, 2, 4, 1, NULL) == 0);
    REQUIRE(submit(f.l, &reqs[2], prompt, 3, 450, 1, &rid) == 0);
    REQUIRE(run_until(f.base, is_over, &reqs[0], 30));
    CHECK(reqs[0].n[0] == 20 && reqs[0].n[1] == 20);
    CHECK(memcmp(reqs[0].ids[0], reqs[0].ids[1], 20 * 4) != 0);
    REQUIRE(run_until(f.base, is_over, &reqs[1], 30));
    CHECK_EQ(reqs[1].finish[0], WIRE_FINISH_ERROR);
    CHECK_EQ(reqs[1].stop_reason, WIRE_ERROR_INVALID);
    REQUIRE(run_until(f.base, has_tokens, &reqs[2], 30));
    engine_link_abort(f.l, rid);
    uint32_t seen = reqs[2].n[0];
    run_until(f.base, is_over, &reqs[2], 0.3); /* nothing more may arrive */
    CHECK(reqs[2].n[0] <= seen + 1 && !reqs[2].done);
    CHECK_EQ(reqs[0].callbacks_after_done + reqs[1].callbacks_after_done, 0);
    close_fixture(&f);
}

TEST(a_killed_engine_fails_its_requests_and_a_restarted_one_serves_again)
{
    struct fixture f;
    REQUIRE(open_fixture(&f, "restart") == 0);
    int32_t prompt[3] = {1, 300, 301};
    uint64_t epoch = engine_link_info(f.l, 0)->epoch;
    REQUIRE(submit(f.l, &reqs[0], prompt, 3, 500, 1, NULL) == 0);
    REQUIRE(run_until(f.base, has_tokens, &reqs[0], 30));
    kill(f.engine, SIGKILL);
    waitpid(f.engine, NULL, 0);
    double t0 = now_s();
    REQUIRE(run_until(f.base, is_over, &reqs[0], 10));
    CHECK(reqs[0].failed && now_s() - t0 < ENGINE_LINK_DEAD_MS / 1000.0 + 1.5);
    CHECK(!engine_link_ready(f.l));
    CHECK_EQ(submit(f.l, &reqs[1], prompt, 3, 4, 1, NULL), ERR_STATE);
    f.engine = start_engine();
    REQUIRE(run_until(f.base, is_ready, f.l, 30));
    CHECK(engine_link_info(f.l, 0)->epoch != epoch);
    REQUIRE(submit(f.l, &reqs[2], prompt, 3, 8, 1, NULL) == 0);
    REQUIRE(run_until(f.base, is_over, &reqs[2], 30));
    CHECK(!reqs[2].failed && reqs[2].n[0] == 8);
    close_fixture(&f);
}

/* The hung rule's clock, replayed over a heartbeat history: an engine idle for longer than
 * ENGINE_LINK_HUNG_MS that then gets a request is not hung at its first (long) step; one
 * whose counter stands still with work for that long is. */
TEST(the_hung_clock_starts_when_work_arrives)
{
    struct beat {
        uint64_t at_ms, step;
        uint32_t running;
    } h[] = {
        {0, 7, 0},     {1000, 7, 0},   {90000, 7, 0}, /* idle for 90 s */
        {91000, 7, 1}, {92000, 7, 1},                 /* a request: its first step runs */
        {93000, 8, 1}, {94000, 9, 1},                 /* steps advance */
        {95000, 9, 1}, {200000, 9, 1},                /* then stand still, with work */
    };
    uint64_t seen = 0, step = h[0].step;
    uint32_t running = h[0].running;
    uint64_t want_seen[] = {0, 1000, 90000, 91000, 91000, 93000, 94000, 94000, 94000};
    for (size_t k = 0; k < sizeof h / sizeof *h; k++) {
        seen = engine_link_step_clock(seen, h[k].at_ms, step, running, h[k].step);
        step = h[k].step, running = h[k].running;
        CHECK(seen == want_seen[k]);
    }
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    log_config.level = LOG_WARN;
    return test_main(argc, argv);
}
