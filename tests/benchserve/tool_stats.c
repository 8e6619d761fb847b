/*
 * tool_stats: prints bench_stat_compute's statistics of the numbers on stdin, for the NumPy
 * comparison in test_metrics_numpy.py. Usage: tool_stats P1,P2,... < numbers
 * Output: mean median std p1 p2 ... (one per line, %.17g, unscaled).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/metrics.h"

int main(int argc, char **argv)
{
    double pct[BENCH_MAX_PERCENTILES];
    int np = 0;
    for (char *p = argc > 1 ? argv[1] : ""; *p && np < BENCH_MAX_PERCENTILES;) {
        char *end;
        pct[np++] = strtod(p, &end);
        p = *end ? end + 1 : end;
    }
    size_t n = 0, cap = 1024;
    double *v = malloc(cap * sizeof *v), x;
    while (v && scanf("%lf", &x) == 1) {
        if (n == cap) {
            double *w = realloc(v, 2 * cap * sizeof *v);
            if (!w)
                return 1;
            v = w;
            cap *= 2;
        }
        v[n++] = x;
    }
    if (!v)
        return 1;
    struct bench_stat s;
    bench_stat_compute(v, n, pct, np, 1.0, &s);
    printf("%.17g\n%.17g\n%.17g\n", s.mean, s.median, s.std);
    for (int i = 0; i < np; i++)
        printf("%.17g\n", s.pct[i]);
    free(v);
    return 0;
}
