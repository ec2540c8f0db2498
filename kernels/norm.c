/* Embedding lookup and normalization kernels for generated code. Tensors are viewed as (outer, n, inner),
 * so one function serves any axis; loops over rows are parallel only when the work is large. */
#include "graphc_norm.h"
#include "graphc_nn.h"

#include <math.h>
#include <string.h>

#define PARALLEL_MIN 32768 /* elements below which a kernel stays on one thread */
#define BN_BLOCK 256       /* channels whose scale/shift are computed at once (on the stack) */

int graphc_gather(const void *table, const void *ids, int ids64, void *out, int64_t outer, int64_t rows,
                  int64_t inner, int64_t n_ids, size_t size) {
    const int32_t *ids32 = (const int32_t *)ids;
    const int64_t *idsl = (const int64_t *)ids;
    /* validate first: a bad id must neither be read through nor leave a half-written output */
    for (int64_t j = 0; j < n_ids; j++) {
        int64_t id = ids64 ? idsl[j] : (int64_t)ids32[j];
        if (id < 0 || id >= rows) return GRAPHC_ERR_ID_RANGE;
    }
    const size_t row_bytes = (size_t)inner * size;
    const char *t = (const char *)table;
    char *y = (char *)out;
    GRAPHC_OMP(omp parallel for if (outer * n_ids * inner > PARALLEL_MIN))
    for (int64_t j = 0; j < n_ids; j++) {
        int64_t id = ids64 ? idsl[j] : (int64_t)ids32[j];
        for (int64_t o = 0; o < outer; o++)
            memcpy(y + ((size_t)o * (size_t)n_ids + (size_t)j) * row_bytes,
                   t + ((size_t)o * (size_t)rows + (size_t)id) * row_bytes, row_bytes);
    }
    return 0;
}

void graphc_batch_norm(const float *x, float *y, const float *mean, const float *var, const float *gamma,
                       const float *beta, float eps, int64_t outer, int64_t channels, int64_t inner) {
    GRAPHC_OMP(omp parallel if (outer * channels * inner > PARALLEL_MIN))
    {
        float scale[BN_BLOCK], shift[BN_BLOCK];  /* per thread: each computes the block's few sqrts itself */
        for (int64_t c0 = 0; c0 < channels; c0 += BN_BLOCK) {
            const int64_t nc = channels - c0 < BN_BLOCK ? channels - c0 : BN_BLOCK;
            for (int64_t c = 0; c < nc; c++) {
                scale[c] = gamma[c0 + c] / sqrtf(var[c0 + c] + eps);
                shift[c] = beta[c0 + c] - mean[c0 + c] * scale[c];
            }
            GRAPHC_OMP(omp for)
            for (int64_t o = 0; o < outer; o++) {
                const float *xo = x + (o * channels + c0) * inner;
                float *yo = y + (o * channels + c0) * inner;
                if (inner == 1) {  /* channels last: the block is one contiguous run */
                    for (int64_t c = 0; c < nc; c++) yo[c] = xo[c] * scale[c] + shift[c];
                } else {
                    for (int64_t c = 0; c < nc; c++)
                        for (int64_t i = 0; i < inner; i++) yo[c * inner + i] = xo[c * inner + i] * scale[c] + shift[c];
                }
            }
        }
    }
}

void graphc_layer_norm(const float *x, float *y, const float *gamma, int64_t gamma_n, const float *beta,
                       int64_t beta_n, double eps, int rms, int64_t outer, int64_t n, int64_t inner) {
    const int64_t lines = outer * inner;
    GRAPHC_OMP(omp parallel for if (lines * n > PARALLEL_MIN))
    for (int64_t line = 0; line < lines; line++) {
        const int64_t o = line / inner, i = line % inner;
        const float *xl = x + o * n * inner + i;
        float *yl = y + o * n * inner + i;
        double sum = 0.0, sq = 0.0;
        for (int64_t k = 0; k < n; k++) sum += (double)xl[k * inner];
        const double mean = sum / (double)n;
        for (int64_t k = 0; k < n; k++) {
            const double d = (double)xl[k * inner] - mean;
            sq += d * d;
        }
        const double rstd = 1.0 / sqrt(sq / (double)n + eps);
        const double centre = rms ? 0.0 : mean;
        for (int64_t k = 0; k < n; k++) {
            const double g = (double)gamma[gamma_n == 1 ? 0 : k], b = (double)beta[beta_n == 1 ? 0 : k];
            yl[k * inner] = (float)(((double)xl[k * inner] - centre) * rstd * g + b);
        }
    }
}
