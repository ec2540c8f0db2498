/* Reference SGEMM (see graphc_kernels.h). Loop order i-k-j: the inner loop walks a row of B and a row
 * of C contiguously, so it vectorizes without any blocking. With transb, i-j-k instead: B's rows are
 * op(B)'s columns, read contiguously as dot products (same rounding: each term is (alpha a) b added to
 * the running C in k order). */
#include <stddef.h>

#include "graphc_kernels.h"

void graphc_sgemm_ref_ex(int transa, int transb, int M, int N, int K, float alpha, const float *restrict A,
                         int lda, const float *restrict B, int ldb, float beta, float *restrict C, int ldc)
{
    int i, j, k;
    for (i = 0; i < M; ++i) {
        float *c = C + (size_t)i * (size_t)ldc;
        const float *a = transa ? A : A + (size_t)i * (size_t)lda; /* row i of A (without transa) */
        if (beta == 0.0f) {
            for (j = 0; j < N; ++j)
                c[j] = 0.0f;
        } else if (beta != 1.0f) {
            for (j = 0; j < N; ++j)
                c[j] *= beta;
        }
        if (alpha == 0.0f)
            continue;
        if (transb) { /* op(B)[k][j] = B[j][k]: one dot product per element, rows of B read contiguously */
            for (j = 0; j < N; ++j) {
                const float *b = B + (size_t)j * (size_t)ldb;
                float acc = c[j];
                for (k = 0; k < K; ++k)
                    acc += alpha * (transa ? A[(size_t)k * (size_t)lda + i] : a[k]) * b[k];
                c[j] = acc;
            }
            continue;
        }
        for (k = 0; k < K; ++k) {
            const float s = alpha * (transa ? A[(size_t)k * (size_t)lda + i] : a[k]);
            const float *b = B + (size_t)k * (size_t)ldb;
            for (j = 0; j < N; ++j)
                c[j] += s * b[j];
        }
    }
}

void graphc_sgemm_ref(int M, int N, int K, float alpha, const float *restrict A, int lda,
                      const float *restrict B, int ldb, float beta, float *restrict C, int ldc)
{
    graphc_sgemm_ref_ex(0, 0, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
