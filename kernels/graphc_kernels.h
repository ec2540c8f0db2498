/* graphc kernels: hand-written, portable C99 primitives used by generated code and exports. */
#ifndef GRAPHC_KERNELS_H
#define GRAPHC_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Per-thread scratch memory the caller provides: `nthreads` regions of `floats_per_thread` floats,
 * 64-byte aligned, at `base`. Thread t of a kernel's parallel region uses region t; regions that use
 * scratch run at most `nthreads` threads (a num_threads clause). */
typedef struct graphc_scratch { float *base; size_t floats_per_thread; int nthreads; } graphc_scratch;

/*
 * Every kernel that needs scratch takes a `const graphc_scratch *` and has a sizing function giving the
 * floats PER THREAD it needs for a problem (small problems need little; each is bounded by the kernel's
 * block sizes). floats_per_thread must be at least that and a multiple of 16 (so every region starts on
 * a 64-byte line). No kernel allocates or keeps state, so calls are reentrant: concurrent calls need
 * scratch of their own. A kernel that calls another one puts the callee's scratch first in each region
 * and its own after it: from its calling thread it passes its whole scratch (the callee may start up to
 * nthreads threads), from thread t of its own parallel region the one-thread graphc_scratch_thread(s, t).
 */
static inline float *graphc_scratch_region(const graphc_scratch *s, int t)
{
    return s->base + (size_t)t * s->floats_per_thread;
}

/* Region t alone, as a one-thread scratch (a kernel's thread t calling another kernel serially). */
static inline graphc_scratch graphc_scratch_thread(const graphc_scratch *s, int t)
{
    graphc_scratch one;
    one.base = graphc_scratch_region(s, t);
    one.floats_per_thread = s->floats_per_thread;
    one.nthreads = 1;
    return one;
}

/* floats rounded up to whole 64-byte lines, so that what follows them in a region stays aligned. */
static inline size_t graphc_scratch_round(size_t floats) { return (floats + 15u) & ~(size_t)15u; }

/* Threads a kernel may start: 1 inside an enclosing parallel region, without OpenMP or without scratch;
 * else OpenMP's count, at most the scratch's regions. */
static inline int graphc_scratch_threads(const graphc_scratch *s)
{
#ifdef _OPENMP
    const int n = omp_in_parallel() || s == NULL ? 1 : omp_get_max_threads();
    return s == NULL || n < s->nthreads ? n : s->nthreads;
#else
    (void)s;
    return 1;
#endif
}

/* This thread's number in its team (0 without OpenMP). */
static inline int graphc_thread_num(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

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

/*
 * The same with transposed operands, as BLAS sgemm (row-major):
 *     C = alpha * op(A) @ op(B) + beta * C,   op(A) is M x K, op(B) is K x N.
 * transa == 0: A is stored M x K, lda >= K;  transa != 0: A is stored K x M (op(A) = A^T), lda >= M.
 * transb == 0: B is stored K x N, ldb >= N;  transb != 0: B is stored N x K (op(B) = B^T), ldb >= K.
 * Same contract otherwise (beta == 0 never reads C, A and B not read when alpha == 0 or K == 0, no overlap).
 * graphc_sgemm_ref(...) is graphc_sgemm_ref_ex(0, 0, ...).
 */
void graphc_sgemm_ref_ex(int transa, int transb, int M, int N, int K, float alpha, const float *A, int lda,
                         const float *B, int ldb, float beta, float *C, int ldc);

/* Scratch floats per thread every fast GEMM below needs for an M x N x K product (any transa/transb,
 * with or without bias/activation, either micro-kernel, a packed B or not): the packing buffers of an
 * A block and a B block clipped to the problem, at most about 1.8 MB (0 when M, N or K is 0). */
size_t graphc_sgemm_scratch_floats(int64_t M, int64_t N, int64_t K);

/* Activations of the fused GEMM epilogue (graphc_sgemm_bias_act). */
#define GRAPHC_ACT_NONE 0
#define GRAPHC_ACT_RELU 1
#define GRAPHC_ACT_SIGMOID 2 /* 1 / (1 + exp(-x)) */
#define GRAPHC_ACT_TANH 3

/*
 * Fast single-precision GEMM, same contract as graphc_sgemm_ref (row-major, BLAS alpha/beta
 * semantics, beta == 0 never reads C, A and B not read when alpha == 0 or K == 0, no overlap).
 * Packed and cache-blocked with a SIMD micro-kernel chosen at compile time (AVX-512, AVX2+FMA,
 * AArch64 NEON, else portable C). Uses OpenMP threads (at most omp_get_max_threads() and
 * scratch->nthreads) when built with OpenMP and the product is large enough; runs serially inside an
 * enclosing parallel region. Packing buffers are the caller's scratch, at least
 * graphc_sgemm_scratch_floats(M, N, K) floats per thread (scratch may be NULL when that is 0).
 * Results may differ from graphc_sgemm_ref in the last bits (different summation order and FMA rounding).
 */
void graphc_sgemm(int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                  float beta, float *C, int ldc, const graphc_scratch *scratch);

/* graphc_sgemm with transposed operands (transa/transb, layouts as in graphc_sgemm_ref_ex), e.g. the
 * weight gradient X^T @ dY (transa) and the input gradient dY @ W^T (transb). The transposition is done
 * while packing, so every case runs at about the speed of the plain product. graphc_sgemm(...) is
 * graphc_sgemm_ex(0, 0, ...). */
void graphc_sgemm_ex(int transa, int transb, int M, int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc, const graphc_scratch *scratch);

/* C = act(A @ B + bias): the fused epilogue of Dense/convolution layers. A, B, C as in graphc_sgemm
 * (alpha = 1, beta = 0, so C is only written); bias has N elements or is NULL; act is one of
 * GRAPHC_ACT_*. With K == 0, C = act(bias) (or act(0)). */
void graphc_sgemm_bias_act(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                           const float *bias, int act, float *C, int ldc, const graphc_scratch *scratch);

/* graphc_sgemm_bias_act with B also given packed ahead (graphc_sgemm_pack_b(0, K, N, B, ldb, packed_b)),
 * e.g. a Dense layer's kernel at inference, packed once per set of weights: blocked products read the
 * packed copy instead of packing B on every call (products of a few rows read B itself). packed_b may be
 * NULL (then it is graphc_sgemm_bias_act). */
void graphc_sgemm_bias_act_prepacked(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                                     const float *packed_b, const float *bias, int act, float *C, int ldc,
                                     const graphc_scratch *scratch);

/* B packed once, multiplied many times (e.g. a recurrent kernel at every timestep): the same product
 * as graphc_sgemm_ex(0, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) without re-packing B on
 * every call. graphc_sgemm_packed_b_size gives the floats the caller provides (any alignment);
 * graphc_sgemm_pack_b fills them from op(B) (K x N, as graphc_sgemm_ex's transb); then
 * graphc_sgemm_with_packed_b computes C = alpha * A @ op(B) + beta * C with the same K and N. The packed
 * layout belongs to this build's micro-kernel. Neither function allocates or starts threads (safe inside
 * a parallel region, one caller per packed buffer while packing; many may multiply with it at once, each
 * with scratch of its own: region 0 of scratch, graphc_sgemm_scratch_floats(M, N, K) floats). */
size_t graphc_sgemm_packed_b_size(int K, int N);
void graphc_sgemm_pack_b(int transb, int K, int N, const float *B, int ldb, float *packed);
/* graphc_sgemm_pack_b on up to nthreads threads (one parallel region; serially inside one, or for a small B):
 * a training step re-packing a Dense kernel it has just updated, for the next step's forward pass. */
void graphc_sgemm_pack_b_threads(int transb, int K, int N, const float *B, int ldb, float *packed, int nthreads);
/* graphc_sgemm_pack_b(0, K1 + K2, N, ...) of the rows of B1 (K1 x N) stacked on those of B2 (K2 x N), both of
 * row stride ldb (a recurrent layer's [kernel; recurrent], for [x_t | h] @ it). */
void graphc_sgemm_pack_b_stacked(int K1, const float *B1, int K2, const float *B2, int N, int ldb, float *packed);
void graphc_sgemm_with_packed_b(int M, int N, int K, float alpha, const float *A, int lda, const float *packed,
                                float beta, float *C, int ldc, const graphc_scratch *scratch);
/* The same product for C's columns [j0, j1) only (a team splitting one product by columns, each thread its
 * own): A @ op(B)[:, j0:j1) into C[:, j0:j1), C and the packed B as above (C is column 0's address). j0 must
 * be a multiple of graphc_sgemm_packed_nr(), the width of the packed layout's micro-panels; else nothing is
 * computed. */
int graphc_sgemm_packed_nr(void);
void graphc_sgemm_with_packed_b_columns(int M, int N, int K, int j0, int j1, float alpha, const float *A, int lda,
                                        const float *packed, float beta, float *C, int ldc,
                                        const graphc_scratch *scratch);

/*
 * Implicit GEMM: C = act(op(A) @ B + beta * C + bias) where op(A), M x K, is never stored: the caller's
 * pack_a(ctx, i0, rows, k0, kc, mr, Ap) writes its rows [i0, i0 + rows) x columns [k0, k0 + kc) as
 * micro-panels of mr rows (mr <= 16), Ap[(p * kc + k) * mr + i] = op(A)[i0 + p * mr + i][k0 + k], rows past
 * `rows` zero (a convolution packs its patches straight from the input). It is called from the threads of the
 * GEMM's team with disjoint Ap, so it must be reentrant. B is K x N (row stride ldb); beta, bias and act
 * as in graphc_sgemm / graphc_sgemm_bias_act (beta == 0 never reads C; bias and act apply after the sum).
 * packed_b, if not NULL, is B already packed by graphc_sgemm_pack_b(0, K, N, B, ldb, packed_b), read instead
 * of packing B. Scratch: graphc_sgemm_implicit_scratch_floats(M, N, K) floats per thread.
 */
typedef void (*graphc_pack_a_fn)(const void *ctx, int i0, int rows, int k0, int kc, int mr, float *Ap);

/* For pack_a (and graphc_sgemm_ex's own packing of a transposed A): one full micro-panel of mr rows whose
 * mr values per k are contiguous (op(A)[i][k] at A[k * lda + i]) -> Ap[k * mr + i], a plain copy per k. The
 * micro-tile heights in use are dispatched as constants, so the copy unrolls (1.6x faster than a runtime mr). */
static inline void graphc_pack_at_rows(int kc, int mr, const float *A, int lda, float *Ap)
{
    int i, k;
    for (k = 0; k < kc; ++k)
        for (i = 0; i < mr; ++i)
            Ap[(size_t)k * mr + i] = A[(size_t)k * (size_t)lda + i];
}

static inline void graphc_pack_at_panel(int kc, int mr, const float *A, int lda, float *Ap)
{
    switch (mr) {
    case 4: graphc_pack_at_rows(kc, 4, A, lda, Ap); break;
    case 6: graphc_pack_at_rows(kc, 6, A, lda, Ap); break;
    case 8: graphc_pack_at_rows(kc, 8, A, lda, Ap); break;
    case 14: graphc_pack_at_rows(kc, 14, A, lda, Ap); break;
    default: graphc_pack_at_rows(kc, mr, A, lda, Ap); break;
    }
}
size_t graphc_sgemm_implicit_scratch_floats(int64_t M, int64_t N, int64_t K);
void graphc_sgemm_implicit(int M, int N, int K, graphc_pack_a_fn pack_a, const void *ctx, const float *B, int ldb,
                           const float *packed_b, float beta, const float *bias, int act, float *C, int ldc,
                           const graphc_scratch *scratch);

/* The same three functions forced onto the portable C micro-kernel (same blocking and threading):
 * always available, so one build can test both paths. */
void graphc_sgemm_portable(int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                           float beta, float *C, int ldc, const graphc_scratch *scratch);
void graphc_sgemm_ex_portable(int transa, int transb, int M, int N, int K, float alpha, const float *A, int lda,
                              const float *B, int ldb, float beta, float *C, int ldc,
                              const graphc_scratch *scratch);
void graphc_sgemm_bias_act_portable(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                                    const float *bias, int act, float *C, int ldc, const graphc_scratch *scratch);

/* Which micro-kernel graphc_sgemm uses in this build, e.g. "AVX2+FMA 6x16". */
const char *graphc_sgemm_kernel_name(void);

#ifdef __cplusplus
}
#endif

#endif /* GRAPHC_KERNELS_H */
