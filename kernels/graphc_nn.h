/* graphc kernels: data movement and row-wise primitives used by generated code (kernels/nn.c). */
#ifndef GRAPHC_NN_H
#define GRAPHC_NN_H

#include <stddef.h>
#include <stdint.h>

/* OpenMP directives that disappear (without warnings) in builds without OpenMP. */
#ifdef _OPENMP
#define GRAPHC_OMP(directive) _Pragma(#directive)
#else
#define GRAPHC_OMP(directive)
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* A tensor is viewed as (outer, n, inner): the op works along the middle axis of n elements. */

/* y = softmax(x) (or log_softmax when log != 0) along the middle axis. */
void graphc_softmax(const float *x, float *y, int64_t outer, int64_t n, int64_t inner, int log);

enum { GRAPHC_REDUCE_SUM = 0, GRAPHC_REDUCE_MEAN = 1, GRAPHC_REDUCE_MAX = 2, GRAPHC_REDUCE_MIN = 3 };
/* y[o][i] = reduce_k x[o][k][i]; y has outer * inner elements. */
void graphc_reduce(const float *x, float *y, int64_t outer, int64_t n, int64_t inner, int kind);

/* y[o][i] = argmax_k x[o][k][i] (first index of the maximum, as NumPy). */
void graphc_argmax(const float *x, int32_t *y, int64_t outer, int64_t n, int64_t inner);

/* N-d copies for elements of `size` bytes; rank <= GRAPHC_MAX_RANK. Shapes are of the input (in_shape)
 * or output (out_shape), row-major. */
#define GRAPHC_MAX_RANK 8
/* y = transpose(x, perm): y's axis a is x's axis perm[a]. */
void graphc_transpose(const void *x, void *y, int rank, const int64_t *in_shape, const int *perm, size_t size);
/* y = x[begin[a] + step[a] * j] along every axis a, for j < out_shape[a] (steps may be negative). */
void graphc_slice(const void *x, void *y, int rank, const int64_t *in_shape, const int64_t *begin,
                  const int64_t *step, const int64_t *out_shape, size_t size);
/* y = x padded by before[a] elements at the start of every axis, `fill` (a float) elsewhere. */
void graphc_pad_f32(const float *x, float *y, int rank, const int64_t *in_shape, const int64_t *before,
                    const int64_t *out_shape, float fill);

#ifdef __cplusplus
}
#endif

#endif /* GRAPHC_NN_H */
