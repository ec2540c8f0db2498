/* Reference SGEMM (see graphc_kernels.h). Loop order i-k-j: the inner loop walks a row of B and a
 * row of C contiguously, so it vectorizes without any blocking. */
#include <stddef.h>

#include "graphc_kernels.h"

void graphc_sgemm_ref(int M, int N, int K, float alpha, const float *restrict A, int lda,
                      const float *restrict B, int ldb, float beta, float *restrict C, int ldc)
{
    int i, j, k;
    for (i = 0; i < M; ++i) {
        float *c = C + (size_t)i * (size_t)ldc;
        const float *a = A + (size_t)i * (size_t)lda;
        if (beta == 0.0f) {
            for (j = 0; j < N; ++j)
                c[j] = 0.0f;
        } else if (beta != 1.0f) {
            for (j = 0; j < N; ++j)
                c[j] *= beta;
        }
        if (alpha == 0.0f)
            continue;
        for (k = 0; k < K; ++k) {
            const float s = alpha * a[k];
            const float *b = B + (size_t)k * (size_t)ldb;
            for (j = 0; j < N; ++j)
                c[j] += s * b[j];
        }
    }
}
