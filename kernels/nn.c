/* Row-wise primitives and N-d copies for generated code. Shapes are in comments; the (outer, n, inner)
 * view lets one function serve any axis. Loops over `outer` are parallel when the work is large. */
#include "graphc_nn.h"

#include <float.h>
#include <math.h>
#include <string.h>

#define PARALLEL_MIN 32768 /* elements below which a kernel stays on one thread */

void graphc_softmax(const float *x, float *y, int64_t outer, int64_t n, int64_t inner, int log) {
    /* x, y: (outer, n, inner); normalise each of the outer*inner lines of n elements */
    GRAPHC_OMP(omp parallel for if (outer * n * inner > PARALLEL_MIN))
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t i = 0; i < inner; i++) {
            const float *xl = x + o * n * inner + i;
            float *yl = y + o * n * inner + i;
            float m = -INFINITY;
            for (int64_t k = 0; k < n; k++) m = xl[k * inner] > m ? xl[k * inner] : m;
            float sum = 0.0f;
            for (int64_t k = 0; k < n; k++) {
                float e = expf(xl[k * inner] - m);
                sum += e;
                if (!log) yl[k * inner] = e;
            }
            if (log) {
                float lse = logf(sum);
                for (int64_t k = 0; k < n; k++) yl[k * inner] = xl[k * inner] - m - lse;
            } else {
                float inv = 1.0f / sum;
                for (int64_t k = 0; k < n; k++) yl[k * inner] *= inv;
            }
        }
    }
}

void graphc_reduce(const float *x, float *y, int64_t outer, int64_t n, int64_t inner, int kind) {
    /* x: (outer, n, inner) -> y: (outer, inner); sums accumulate in double for accuracy */
    GRAPHC_OMP(omp parallel for if (outer * n * inner > PARALLEL_MIN))
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t i = 0; i < inner; i++) {
            const float *xl = x + o * n * inner + i;
            if (kind == GRAPHC_REDUCE_SUM || kind == GRAPHC_REDUCE_MEAN) {
                double s = 0.0;
                for (int64_t k = 0; k < n; k++) s += xl[k * inner];
                y[o * inner + i] = (float)(kind == GRAPHC_REDUCE_MEAN ? s / (double)n : s);
            } else {
                float m = xl[0];
                for (int64_t k = 1; k < n; k++) {
                    float v = xl[k * inner];
                    if (v != v || m != m) { m = NAN; break; }  /* NaN propagates, as in NumPy */
                    if (kind == GRAPHC_REDUCE_MAX ? v > m : v < m) m = v;
                }
                y[o * inner + i] = m;
            }
        }
    }
}

void graphc_argmax(const float *x, int32_t *y, int64_t outer, int64_t n, int64_t inner) {
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t i = 0; i < inner; i++) {
            const float *xl = x + o * n * inner + i;
            int64_t best = 0;
            for (int64_t k = 1; k < n; k++)
                if (xl[k * inner] > xl[best * inner] || (xl[k * inner] != xl[k * inner] && xl[best * inner] == xl[best * inner]))
                    best = k;
            y[o * inner + i] = (int32_t)best;
        }
    }
}

/* Visit every output position of an N-d copy: `src_of(j)` is computed incrementally from strides. */
static void strided_copy(const char *x, char *y, int rank, const int64_t *out_shape, const int64_t *src_stride,
                         int64_t src_base, size_t size) {
    int64_t total = 1, idx[GRAPHC_MAX_RANK] = {0};
    for (int a = 0; a < rank; a++) total *= out_shape[a];
    int64_t src = src_base;
    for (int64_t j = 0; j < total; j++) {
        memcpy(y + (size_t)j * size, x + (size_t)src * size, size);
        for (int a = rank - 1; a >= 0; a--) {  /* odometer step */
            src += src_stride[a];
            if (++idx[a] < out_shape[a]) break;
            src -= src_stride[a] * out_shape[a];
            idx[a] = 0;
        }
    }
}

static void row_major_strides(int rank, const int64_t *shape, int64_t *stride) {
    int64_t s = 1;
    for (int a = rank - 1; a >= 0; a--) { stride[a] = s; s *= shape[a]; }
}

void graphc_transpose(const void *x, void *y, int rank, const int64_t *in_shape, const int *perm, size_t size) {
    int64_t in_stride[GRAPHC_MAX_RANK], out_shape[GRAPHC_MAX_RANK], src_stride[GRAPHC_MAX_RANK];
    row_major_strides(rank, in_shape, in_stride);
    for (int a = 0; a < rank; a++) { out_shape[a] = in_shape[perm[a]]; src_stride[a] = in_stride[perm[a]]; }
    strided_copy((const char *)x, (char *)y, rank, out_shape, src_stride, 0, size);
}

void graphc_slice(const void *x, void *y, int rank, const int64_t *in_shape, const int64_t *begin,
                  const int64_t *step, const int64_t *out_shape, size_t size) {
    int64_t in_stride[GRAPHC_MAX_RANK], src_stride[GRAPHC_MAX_RANK], base = 0;
    row_major_strides(rank, in_shape, in_stride);
    for (int a = 0; a < rank; a++) { src_stride[a] = in_stride[a] * step[a]; base += begin[a] * in_stride[a]; }
    strided_copy((const char *)x, (char *)y, rank, out_shape, src_stride, base, size);
}

void graphc_pad_f32(const float *x, float *y, int rank, const int64_t *in_shape, const int64_t *before,
                    const int64_t *out_shape, float fill) {
    int64_t total = 1, out_stride[GRAPHC_MAX_RANK], base = 0;
    for (int a = 0; a < rank; a++) total *= out_shape[a];
    for (int64_t j = 0; j < total; j++) y[j] = fill;
    row_major_strides(rank, out_shape, out_stride);
    for (int a = 0; a < rank; a++) base += before[a] * out_stride[a];
    /* copy x into the window of y: walk x's positions, writing with y's strides */
    int64_t idx[GRAPHC_MAX_RANK] = {0}, n = 1, dst = base;
    for (int a = 0; a < rank; a++) n *= in_shape[a];
    for (int64_t j = 0; j < n; j++) {
        y[dst] = x[j];
        for (int a = rank - 1; a >= 0; a--) {
            dst += out_stride[a];
            if (++idx[a] < in_shape[a]) break;
            dst -= out_stride[a] * in_shape[a];
            idx[a] = 0;
        }
    }
}
