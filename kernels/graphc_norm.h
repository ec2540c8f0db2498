/* graphc kernels: embedding lookup and normalization layers (kernels/norm.c). */
#ifndef GRAPHC_NORM_H
#define GRAPHC_NORM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Return code of a generated run function (and of graphc_gather) when an id is negative or not below the
 * table's number of rows: nothing is read out of bounds, the run stops and the runtime raises. */
#define GRAPHC_ERR_ID_RANGE 2

/* out[o][j][i] = table[o][ids[j]][i]: the table is (outer, rows, inner), ids has n_ids entries (int32 when
 * ids64 == 0, else int64), out is (outer, n_ids, inner); elements are `size` bytes. Every id is checked
 * before anything is copied: returns 0, or GRAPHC_ERR_ID_RANGE (out is then left untouched). */
int graphc_gather(const void *table, const void *ids, int ids64, void *out, int64_t outer, int64_t rows,
                  int64_t inner, int64_t n_ids, size_t size);

/* Inference batch normalization of x viewed as (outer, channels, inner):
 * y = x * s + (beta - mean * s) with s = gamma / sqrt(var + eps), per channel, in float (as the reference). */
void graphc_batch_norm(const float *x, float *y, const float *mean, const float *var, const float *gamma,
                       const float *beta, float eps, int64_t outer, int64_t channels, int64_t inner);

/* Layer normalization of x viewed as (outer, n, inner): each of the outer*inner lines of n elements
 * (stride inner) is normalized with its own mean and biased variance (two passes, double accumulation).
 * gamma/beta hold n values (gamma_n == n) or one (== 1). rms != 0: Keras's deprecated rms_scaling
 * (y = x * gamma / sqrt(var + eps) + beta, no centring). */
void graphc_layer_norm(const float *x, float *y, const float *gamma, int64_t gamma_n, const float *beta,
                       int64_t beta_n, double eps, int rms, int64_t outer, int64_t n, int64_t inner);

#ifdef __cplusplus
}
#endif

#endif /* GRAPHC_NORM_H */
