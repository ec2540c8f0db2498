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

/* Sums over n for a block of columns [i0, i0 + w) of one (n, inner) slab, row by row (contiguous and
 * vectorizable), in double. */
static void sum_rows(const float *x, int64_t k0, int64_t k1, int64_t inner, int64_t i0, int64_t w, double *acc) {
    for (int64_t j = 0; j < w; j++) acc[j] = 0.0;
    for (int64_t k = k0; k < k1; k++) {
        const float *r = x + k * inner + i0;
        for (int64_t j = 0; j < w; j++) acc[j] += (double)r[j];
    }
}

#define REDUCE_COLS 512   /* columns per block: the chunks' partial sums stay on the caller's stack */
#define REDUCE_CHUNKS 8   /* row chunks, fixed so that the result does not depend on the thread count */

void graphc_reduce(const float *x, float *y, int64_t outer, int64_t n, int64_t inner, int kind) {
    /* x: (outer, n, inner) -> y: (outer, inner); sums accumulate in double for accuracy */
    if (kind == GRAPHC_REDUCE_SUM || kind == GRAPHC_REDUCE_MEAN) {
        const double scale = kind == GRAPHC_REDUCE_MEAN ? 1.0 / (double)n : 1.0;
        if (outer >= 8 || n < 64) {  /* enough independent slabs: one per thread at a time */
            GRAPHC_OMP(omp parallel for if (outer * n * inner > PARALLEL_MIN))
            for (int64_t o = 0; o < outer; o++) {
                double acc[REDUCE_COLS];
                for (int64_t i0 = 0; i0 < inner; i0 += REDUCE_COLS) {
                    const int64_t w = inner - i0 < REDUCE_COLS ? inner - i0 : REDUCE_COLS;
                    sum_rows(x + o * n * inner, 0, n, inner, i0, w, acc);
                    for (int64_t j = 0; j < w; j++) y[o * inner + i0 + j] = (float)(acc[j] * scale);
                }
            }
            return;
        }
        /* Few slabs of many rows (a bias gradient sums batch x positions): rows split into fixed chunks
         * summed in parallel, then added in chunk order. */
        double part[REDUCE_CHUNKS][REDUCE_COLS];
        for (int64_t o = 0; o < outer; o++) {
            for (int64_t i0 = 0; i0 < inner; i0 += REDUCE_COLS) {
                const int64_t w = inner - i0 < REDUCE_COLS ? inner - i0 : REDUCE_COLS;
                GRAPHC_OMP(omp parallel for if (n * w > PARALLEL_MIN))
                for (int c = 0; c < REDUCE_CHUNKS; c++)
                    sum_rows(x + o * n * inner, n * c / REDUCE_CHUNKS, n * (c + 1) / REDUCE_CHUNKS, inner, i0, w,
                             part[c]);
                for (int64_t j = 0; j < w; j++) {
                    double s = 0.0;
                    for (int c = 0; c < REDUCE_CHUNKS; c++) s += part[c][j];
                    y[o * inner + i0 + j] = (float)(s * scale);
                }
            }
        }
        return;
    }
    GRAPHC_OMP(omp parallel for if (outer * n * inner > PARALLEL_MIN))
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t i = 0; i < inner; i++) {
            const float *xl = x + o * n * inner + i;
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
