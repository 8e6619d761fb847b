/*
 * metrics_driver: applies a script of frontend/metrics updates read from stdin and prints the
 * renderings, for tests/frontend/test_metrics_prom.py.
 *
 * Usage: metrics_driver MODEL_NAME [--compat]. One command per line, words separated by
 * spaces; seconds are decimal floats, the rest integers:
 *
 *   iter PROMPT GEN                     metrics_iteration
 *   ttft S                              metrics_first_token
 *   itl S                               metrics_token_gap
 *   done REASON PROMPT GEN E2E QUEUE    metrics_request_done; REASON stop|length|abort|error
 *                                       or a number (passed as is)
 *   http PATH METHOD STATUS             metrics_http; "-" for a NULL path or method
 *   load ENGINE RUNNING WAITING USED TOTAL
 *   totals ENGINE EPOCH QUERIES HITS PREEMPTIONS
 *   gone ENGINE
 *   maxlen N                            metrics_set_max_model_len
 *   render                              prints metrics_render's text, then "=== end"
 *
 * A call that fails prints "=== rc LINE CODE" (LINE counts from 1). Exit status 0, or 2 for
 * a malformed command line or script.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "frontend/metrics.h"

#define MAXW 8

static struct metrics m;

static const char *opt(const char *w)
{
    return strcmp(w, "-") == 0 ? NULL : w;
}

static int reason(const char *w)
{
    static const char *const names[] = {"stop", "length", "abort", "error"};
    for (int i = 0; i < 4; i++)
        if (strcmp(w, names[i]) == 0)
            return i;
    return atoi(w);
}

static unsigned long long u(const char *w)
{
    return strtoull(w, NULL, 10);
}

static int render(void)
{
    struct buf b;
    buf_init(&b, 0);
    int rc = metrics_render(&m, &b);
    if (!rc) {
        fwrite(b.p, 1, b.n, stdout);
        puts("=== end");
    }
    buf_deinit(&b);
    return rc;
}

/* run: one command of n words; returns the call's code, or 1 for an unknown command. */
static int run(char **w, int n)
{
    const char *c = w[0];
    if (strcmp(c, "iter") == 0 && n == 3)
        metrics_iteration(&m, (uint32_t)u(w[1]), (uint32_t)u(w[2]));
    else if (strcmp(c, "ttft") == 0 && n == 2)
        metrics_first_token(&m, strtod(w[1], NULL));
    else if (strcmp(c, "itl") == 0 && n == 2)
        metrics_token_gap(&m, strtod(w[1], NULL));
    else if (strcmp(c, "done") == 0 && n == 6)
        metrics_request_done(&m, (enum metrics_finish)reason(w[1]), (uint32_t)u(w[2]),
                             (uint32_t)u(w[3]), strtod(w[4], NULL), strtod(w[5], NULL));
    else if (strcmp(c, "http") == 0 && n == 4)
        metrics_http(&m, opt(w[1]), opt(w[2]), atoi(w[3]));
    else if (strcmp(c, "load") == 0 && n == 6)
        return metrics_engine_load(&m, (uint32_t)u(w[1]), (uint32_t)u(w[2]), (uint32_t)u(w[3]),
                                   (uint32_t)u(w[4]), (uint32_t)u(w[5]));
    else if (strcmp(c, "totals") == 0 && n == 6)
        return metrics_engine_totals(&m, (uint32_t)u(w[1]), u(w[2]), u(w[3]), u(w[4]), u(w[5]));
    else if (strcmp(c, "gone") == 0 && n == 2)
        return metrics_engine_gone(&m, (uint32_t)u(w[1]));
    else if (strcmp(c, "maxlen") == 0 && n == 2)
        return metrics_set_max_model_len(&m, (uint32_t)u(w[1]));
    else if (strcmp(c, "render") == 0 && n == 1)
        return render();
    else
        return 1;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3 || (argc == 3 && strcmp(argv[2], "--compat") != 0)) {
        fprintf(stderr, "usage: metrics_driver MODEL_NAME [--compat] < script\n");
        return 2;
    }
    int rc = metrics_init(&m, argv[1], argc == 3);
    if (rc) {
        printf("=== rc 0 %d\n", rc);
        return 0;
    }
    char line[4096];
    for (int ln = 1; fgets(line, sizeof line, stdin); ln++) {
        char *w[MAXW];
        int n = 0;
        for (char *t = strtok(line, " \t\r\n"); t && n < MAXW; t = strtok(NULL, " \t\r\n"))
            w[n++] = t;
        if (n == 0)
            continue;
        rc = run(w, n);
        if (rc == 1) {
            fprintf(stderr, "metrics_driver: line %d: bad command\n", ln);
            return 2;
        }
        if (rc)
            printf("=== rc %d %d\n", ln, rc);
    }
    return 0;
}
