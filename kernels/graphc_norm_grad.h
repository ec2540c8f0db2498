/* graphc kernels: training batch normalization, normalization and embedding backward passes
 * (kernels/norm_grad.c), and the counter-based random numbers of training-time dropout. */
#ifndef GRAPHC_NORM_GRAD_H
#define GRAPHC_NORM_GRAD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Tensors are viewed as (outer, channels, inner): the channel axis in the middle.
 * Per-channel statistics are accumulated in double over fixed chunks added in a fixed order, so the results
 * do not depend on the number of threads. */

/* Training batch normalization: mean and biased variance of each channel over outer * inner elements (two
 * passes), written to mean/var, and y = x * s + (beta - mean * s) with s = gamma / sqrt(var + eps). */
void graphc_batch_norm_train(const float *x, float *y, float *mean, float *var, const float *gamma,
                             const float *beta, double eps, int64_t outer, int64_t channels, int64_t inner);

/* Backward of batch normalization with the given mean/var (rstd = 1 / sqrt(var + eps), N = outer * inner):
 * dbeta = sum(dy), dgamma = sum(dy * (x - mean)) * rstd, and
 * train != 0 (batch statistics): dx = gamma * rstd * (dy - dbeta / N - (x - mean) * rstd^2 * sum(dy * (x - mean)) / N)
 * train == 0 (fixed statistics): dx = gamma * rstd * dy. */
void graphc_batch_norm_grad(const float *x, const float *dy, const float *mean, const float *var,
                            const float *gamma, double eps, int train, float *dx, float *dgamma, float *dbeta,
                            int64_t outer, int64_t channels, int64_t inner);

/* Backward of graphc_layer_norm (lines of n elements, stride inner): with g = dy * gamma,
 * dx = rstd * (g - mean(g) - (x - mean) * rstd * mean(g * xhat)) (no mean(g) term when rms != 0), and
 * xhat = (x - mean) * rstd (x * rstd when rms != 0), from which the caller reduces dgamma. */
void graphc_layer_norm_grad(const float *x, const float *gamma, int64_t gamma_n, const float *dy, double eps,
                            int rms, float *dx, float *xhat, int64_t outer, int64_t n, int64_t inner);

/* The adjoint of graphc_gather: out (outer, rows, inner) = 0, then out[o][ids[j]][i] += dy[o][j][i] for j in
 * order (repeated ids add up in id order). Every id is checked first: returns 0, or GRAPHC_ERR_ID_RANGE (2)
 * with nothing written. */
int graphc_scatter_add(const void *ids, int ids64, const float *dy, float *out, int64_t outer, int64_t rows,
                       int64_t inner, int64_t n_ids);

/* --- counter-based random numbers (the IR op random_uniform) -----------------------------------------------
 * Element i of a draw is a pure function of (seed, stream, counter, i): SplitMix64's output function on a key
 * mixed from (seed, stream, counter), advanced i + 1 steps. graphc/ir/ops/random.py computes the same bits
 * in NumPy; any change here must be made there too. */
static inline uint64_t graphc_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* A float in [0, 1): the top 24 bits of the hash, so every value is exact in float32. */
static inline float graphc_random_uniform(uint32_t seed, uint32_t stream, int32_t counter, int64_t i) {
    uint64_t key = graphc_mix64(((uint64_t)seed << 32) | (uint64_t)stream);
    key = graphc_mix64(key ^ (uint64_t)(uint32_t)counter);
    const uint64_t z = graphc_mix64(key + ((uint64_t)i + 1u) * 0x9E3779B97F4A7C15ULL);
    return (float)(z >> 40) * (1.0f / 16777216.0f);
}

#ifdef __cplusplus
}
#endif

#endif /* GRAPHC_NORM_GRAD_H */
