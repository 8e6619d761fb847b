/*
 * rng: the benchmark's seeded pseudo-random numbers (xoshiro256**, seeded through splitmix64).
 *
 * The same seed gives the same stream on every machine, so `--seed` reproduces a dataset and
 * an arrival schedule. Not NumPy's generator: the streams differ from vLLM's, the
 * distributions do not. One owner per state; no locks.
 */
#ifndef KILN_BENCH_RNG_H
#define KILN_BENCH_RNG_H

#include <stdint.h>

struct rng {
    uint64_t s[4];
};

/* rng_seed: starts the stream for `seed` (any value, 0 included). */
void rng_seed(struct rng *r, uint64_t seed);

/* rng_u64: the next 64 uniformly random bits. */
uint64_t rng_u64(struct rng *r);

/* rng_below: a uniform integer in [0, n) without modulo bias; 0 when n == 0. */
uint64_t rng_below(struct rng *r, uint64_t n);

/* rng_int: a uniform integer in [lo, hi] (inclusive, lo <= hi), as numpy's integers(lo, hi+1). */
int64_t rng_int(struct rng *r, int64_t lo, int64_t hi);

/* rng_uniform: a uniform double in [0, 1) with 53 random bits. */
double rng_uniform(struct rng *r);

/* rng_normal: a standard normal deviate (polar Box-Muller, one value per call). */
double rng_normal(struct rng *r);

/* rng_gamma: a Gamma(shape, scale) deviate, shape > 0 and scale > 0 (Marsaglia and Tsang;
 * shape < 1 through Gamma(shape + 1) * U^(1/shape)). Mean shape*scale, variance
 * shape*scale^2: numpy.random.gamma's distribution. */
double rng_gamma(struct rng *r, double shape, double scale);

#endif
