/*
 * sampler_select: the ordering primitives of the sampler (worker/sampler.c): partial
 * selection and sorting of (logit, id) candidates, and the raw-logprob helpers built on
 * them. Candidates are ordered by descending logit, ties by ascending id, a total order, so
 * every result is independent of the input's order. Pure functions on caller memory; no
 * allocation; any thread.
 */
#ifndef KILN_SAMPLER_SELECT_H
#define KILN_SAMPLER_SELECT_H

#include <stddef.h>
#include <stdint.h>

#include "worker/sampler.h"

/* sampler_select_top: reorders c[0..n) so that its k best candidates come first, in no
 * particular order (quickselect, expected O(n)). k >= n or k == 0: nothing to do. */
void sampler_select_top(struct sampler_cand *c, size_t n, size_t k);

/* sampler_select_heap: the k best (logit, id) of x [n] among those >= thr and > -inf, into
 * h[0..k) in no particular order (a bounded heap: O(n) compares plus O(log k) per
 * insertion); returns how many, min(k, number passing). */
size_t sampler_select_heap(const float *x, size_t n, float thr, size_t k, struct sampler_cand *h);

/* sampler_select_sort: sorts c[0..n) best first (O(n log n); meant for small n). */
void sampler_select_sort(struct sampler_cand *c, size_t n);

/* sampler_select_exp: w[i] = exp((x[i] - m) * scale) for x [n] <= m (fp32, -inf allowed),
 * scale > 0, to about 2e-7 relative; below e^-87 gives 0. Vectorisable; w may be x. */
void sampler_select_exp(const float *x, size_t n, float m, float scale, float *w);

/* sampler_select_argmax: the first index of the largest of x [n] (no NaN); 0 when n is 0 or
 * every entry is -inf. */
size_t sampler_select_argmax(const float *x, size_t n);

/* sampler_select_sum: the sum of w [n], accumulated in double. */
double sampler_select_sum(const float *w, size_t n);

/* sampler_select_top_p: for candidates c[0..n) whose .logit holds a weight (>= 0, ordered
 * like the logits), reorders c so that the shortest best-first prefix whose mass reaches
 * target comes first, in no particular order, and returns its length (>= 1 when n >= 1):
 * a candidate is kept when the mass of the better ones is < target. Expected O(n): a
 * quickselect that descends by mass; no sort. */
size_t sampler_select_top_p(struct sampler_cand *c, size_t n, double target);

/* sampler_select_lse: log(sum(exp(logits))) over logits [n] (fp32, may hold -inf),
 * accumulated in double; -inf when every entry is -inf. */
double sampler_select_lse(const float *logits, size_t n);

/* sampler_select_logprobs: fills lp's token, logprob and rank for token, and its k best
 * alternatives, from the raw row logits [vocab] with lse = sampler_select_lse(row). Uses
 * cand [vocab] as workspace. k in 0..SAMPLING_MAX_LOGPROBS and token in range: the caller
 * checks. */
void sampler_select_logprobs(const float *logits, size_t vocab, double lse, int32_t token,
                             int32_t k, struct sampler_cand *cand, struct sampler_logprobs *lp);

#endif
