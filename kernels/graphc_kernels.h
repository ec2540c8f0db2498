/* graphc kernels: hand-written, portable C99 primitives used by generated code and exports. */
#ifndef GRAPHC_KERNELS_H
#define GRAPHC_KERNELS_H

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Reference single-precision GEMM, row-major:
 *     C[i][j] = alpha * sum_k A[i][k] * B[k][j] + beta * C[i][j]
 * A is M x K with row stride lda (>= K), B is K x N with row stride ldb (>= N),
 * C is M x N with row stride ldc (>= N). Elements past each row's width are not touched.
 * As in BLAS, C is not read when beta == 0 (so NaN/Inf garbage there does not propagate),
 * and A, B are not read when alpha == 0 or K == 0.
 * A, B and C must not overlap. This is the portable, always-tested fallback of the fast kernel.
 */
void graphc_sgemm_ref(int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                      float beta, float *C, int ldc);

#ifdef __cplusplus
}
#endif

#endif /* GRAPHC_KERNELS_H */
