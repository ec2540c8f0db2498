/* Fast SGEMM (see graphc_kernels.h): packed, cache-blocked, register-blocked, as in BLIS/GotoBLAS.
 *
 * Row-major C (M x N) = alpha * op(A) (M x K) @ op(B) (K x N) + beta * C, computed in five loops:
 *
 *   jc: N in blocks of NC   -- B block (KC x NC) packed once, read from L3 by every A block
 *    pc: K in blocks of KC  --   "
 *     ic: M in blocks of MC -- A block (MC x KC) packed once, stays in L2 for all of jr
 *      jr: NC in steps of NR -- B micro-panel (KC x NR) stays in L1 for all of ir
 *       ir: MC in steps of MR -- micro-kernel: MR x NR tile of C held in registers over KC
 *
 * Packing layout (what the micro-kernel reads, both contiguous and in the order it reads them):
 *   A micro-panel: MR rows x kc, stored column by column:  Ap[k * MR + i] = op(A)[i][k]
 *   B micro-panel: kc x NR, stored row by row:             Bp[k * NR + j] = op(B)[k][j]
 * (alpha and beta are applied when the micro-kernel writes its tile of C.)
 * Transposed operands (graphc_sgemm_ex's transa/transb) only change how packing reads them, so all
 * four layouts share the micro-kernels, blocking and threading. Packing a transposed A is a plain
 * copy; a transposed B goes through 8 x 8 SIMD block transposes where available.
 * Rows/columns past the edge of A/B are packed as zeros, so the micro-kernel always computes a
 * full MR x NR tile; edge tiles are written to a small local tile and only the valid part copied.
 *
 * The micro-kernel is chosen at compile time (AVX-512, AVX2+FMA, AArch64 NEON, else portable C; see below);
 * the portable one is always compiled and reachable through graphc_sgemm_portable, so one build
 * tests both. Packing buffers come from the caller's scratch (graphc_scratch): region t holds thread
 * t's A block, then its B block (the B block of region 0 is shared by a team splitting rows), each
 * clipped to the problem, so a small product needs little (see graphc_sgemm_scratch_floats).
 * With OpenMP, one parallel region per call splits C between threads (see gemm_parallel).
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "graphc_kernels.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* AVX-512 where the CPU has two 512-bit FMA pipes. AMD Zen runs 512-bit FMAs at the 256-bit rate (measured on
 * a Zen 5 VM: 235 GFLOP/s either way, GCC 12 tuning it as znver3), and there the AVX2 kernels, with their
 * fused-epilogue and in-place-A variants, ran the benchmark models 1.2-2x faster. GRAPHC_GEMM_AVX512 or
 * GRAPHC_GEMM_AVX2 overrides the choice. */
#if defined(__AVX512F__) && !defined(GRAPHC_GEMM_AVX2) &&                                                     \
    (defined(GRAPHC_GEMM_AVX512) || !(defined(__znver1__) || defined(__znver2__) || defined(__znver3__) ||       \
                                      defined(__znver4__) || defined(__znver5__)))
#define GRAPHC_GEMM_USE_AVX512 1
#endif

#if defined(GRAPHC_FORCE_PORTABLE)
/* portable micro-kernel only */
#elif defined(GRAPHC_GEMM_USE_AVX512)
#define GRAPHC_SIMD_AVX512 1
#include <immintrin.h>
#elif defined(__AVX2__) && defined(__FMA__)
#define GRAPHC_SIMD_AVX2 1
#include <immintrin.h>
#elif defined(__ARM_NEON) && defined(__aarch64__)
#define GRAPHC_SIMD_NEON 1
#include <arm_neon.h>
#endif

/* Cache blocks. Each path picks kc (<= KC_MAX) and mc (<= MC_MAX) so that a B micro-panel,
 * kc * NR floats (24-32 KB), stays in L1 next to a streaming A micro-panel, and an A block, mc * kc
 * floats (~170-220 KB), in L2 (512 KB-1 MB). A larger kc means fewer passes over C (each K block
 * reads and writes all of C). NC * kc floats of B (1-1.5 MB) sit in L3. NC is a multiple of every
 * NR, MC_MAX of every MR used. */
#define KC_MAX 384
#define NC 1024
#define MC_MAX 168
#define MR_MAX 16
#define NR_MAX 32

/* Below this many multiply-adds per thread one thread is faster: waking the team costs a few
 * microseconds (measured on 2 cores: 48^3 gains nothing from a second thread, 64^3 = 2 * 2^17
 * runs 1.3x faster, 80^3 1.5x). */
#define PARALLEL_MIN_WORK (1L << 17)
/* The unpacked few-rows path (2-3 rows) is bound by reading B from memory: a second thread only helped
 * from about 3 x 4096 x 4096 on (measured on 2 cores; OpenBLAS's GEMV slowed down with 2 threads too).
 * One row keeps C in registers and splits from far less: called again and again (batch-1 inference), each
 * thread's half of B stays in its own core's L2 (1 x 128 x 1600 ran 18 -> 11 us on 2 threads, 1 x 216 x 512
 * 10 -> 5 us, 1 x 512 x 784 28 -> 16 us). */
#define PARALLEL_MIN_WORK_FEW_ROWS (1L << 24)
#define PARALLEL_MIN_WORK_ONE_ROW (1L << 15)
#define MAX_GRID_THREADS 256

static float *align64(float *p) { return (float *)(((uintptr_t)p + 63u) & ~(uintptr_t)63u); }

/* One micro-kernel: C[0..MR)[0..NR) = alpha * Ap^T Bp + beta * C over kc steps.
 * beta == 0 means C is written without being read. */
typedef void (*micro_kernel_fn)(int kc, const float *Ap, const float *Bp, float *C, int ldc, float alpha,
                                float beta);

/* The same with the epilogue of full tiles fused into the store: + bias[0..NR) (if not NULL), then ReLU (if
 * relu), before C is written (a tile stored and then re-read stalls on its store misses). */
typedef void (*micro_kernel_epi_fn)(int kc, const float *Ap, const float *Bp, float *C, int ldc, float alpha,
                                    float beta, const float *bias, int relu);

/* The same reading A in place: `rows` rows (1 to MR) from A, row stride lda (A[i * lda + k]), no packing,
 * into as many rows of C; with the epilogue of micro_kernel_epi_fn (bias NULL and relu 0: none). */
typedef void (*micro_kernel_direct_fn)(int rows, int kc, const float *A, int lda, const float *Bp, float *C,
                                       int ldc, float alpha, float beta, const float *bias, int relu);

typedef struct {
    int mr, nr;     /* register tile */
    int mc, kc;     /* A block (mc a multiple of mr, <= MC_MAX; kc <= KC_MAX) */
    micro_kernel_fn kernel;
    const char *name;
    micro_kernel_epi_fn kernel_epi;       /* or NULL: epilogue() after the tile */
    micro_kernel_direct_fn kernel_direct; /* or NULL: A is always packed */
} gemm_impl;

/* ------------------------------------------------------------------------------------------------ */
/* Portable micro-kernel: 4 x 16, in plain C the compiler vectorizes over j (16 floats = 2 AVX or
 * 4 SSE/NEON vectors). One array per row, not acc[4][16]: GCC then keeps them in registers and
 * vectorizes the j loop (with the 2-D array it ran 4x slower). */
#define P_MR 4
#define P_NR 16

static void store_row_portable(float *c, const float *acc, float alpha, float beta)
{
    int j;
    if (beta == 0.0f)
        for (j = 0; j < P_NR; ++j)
            c[j] = alpha * acc[j];
    else
        for (j = 0; j < P_NR; ++j)
            c[j] = alpha * acc[j] + beta * c[j];
}

static void kernel_portable(int kc, const float *Ap, const float *Bp, float *C, int ldc, float alpha,
                            float beta)
{
    float c0[P_NR] = {0.0f}, c1[P_NR] = {0.0f}, c2[P_NR] = {0.0f}, c3[P_NR] = {0.0f};
    int j, k;
    for (k = 0; k < kc; ++k) {
        const float a0 = Ap[0], a1 = Ap[1], a2 = Ap[2], a3 = Ap[3]; /* A[0..4)[k] */
        for (j = 0; j < P_NR; ++j) {                                 /* B[k][0..16) */
            c0[j] += a0 * Bp[j];
            c1[j] += a1 * Bp[j];
            c2[j] += a2 * Bp[j];
            c3[j] += a3 * Bp[j];
        }
        Ap += P_MR;
        Bp += P_NR;
    }
    store_row_portable(C, c0, alpha, beta);
    store_row_portable(C + (size_t)ldc, c1, alpha, beta);
    store_row_portable(C + 2 * (size_t)ldc, c2, alpha, beta);
    store_row_portable(C + 3 * (size_t)ldc, c3, alpha, beta);
}

static void epilogue(int m, int n, float *C, int ldc, const float *bias, int act);

/* rows < 4: the missing rows repeat the last one (read in bounds) and are not stored. */
static void kernel_portable_direct(int rows, int kc, const float *A, int lda, const float *Bp, float *C, int ldc,
                                   float alpha, float beta, const float *bias, int relu)
{
    float c0[P_NR] = {0.0f}, c1[P_NR] = {0.0f}, c2[P_NR] = {0.0f}, c3[P_NR] = {0.0f};
    const float *a0 = A, *a1 = A + (rows > 1 ? 1 : 0) * (size_t)lda, *a2 = A + (rows > 2 ? 2 : rows - 1) * (size_t)lda;
    const float *a3 = A + (rows > 3 ? 3 : rows - 1) * (size_t)lda;
    int j, k;
    for (k = 0; k < kc; ++k) {
        for (j = 0; j < P_NR; ++j) {
            c0[j] += a0[k] * Bp[j];
            c1[j] += a1[k] * Bp[j];
            c2[j] += a2[k] * Bp[j];
            c3[j] += a3[k] * Bp[j];
        }
        Bp += P_NR;
    }
    store_row_portable(C, c0, alpha, beta);
    if (rows > 1) store_row_portable(C + (size_t)ldc, c1, alpha, beta);
    if (rows > 2) store_row_portable(C + 2 * (size_t)ldc, c2, alpha, beta);
    if (rows > 3) store_row_portable(C + 3 * (size_t)ldc, c3, alpha, beta);
    if (bias != NULL || relu)
        epilogue(rows, P_NR, C, ldc, bias, relu ? GRAPHC_ACT_RELU : GRAPHC_ACT_NONE);
}

static const gemm_impl impl_portable = {P_MR, P_NR, 160, 256, kernel_portable, "portable C 4x16", NULL,
                                        kernel_portable_direct};

/* ------------------------------------------------------------------------------------------------ */
#if defined(GRAPHC_SIMD_AVX512)
/* AVX-512: 14 x 32 tile = 28 zmm accumulators + 2 zmm of B + 1 broadcast of A = 31 of 32 registers.
 * Per k: 2 loads of B, 14 broadcasts, 28 FMAs; two FMA pipes with 4-cycle latency need >= 8
 * independent accumulators, 28 hides latency and amortizes the loads. */
#define V_MR 14
#define V_NR 32

/* Accumulators are named variables, not an array: an array indexed in a loop makes GCC keep it in
 * memory and store all of it on every k step. */
static inline void store_row_avx512(float *r, __m512 lo, __m512 hi, __m512 va, __m512 vb, float beta)
{
    lo = _mm512_mul_ps(va, lo);
    hi = _mm512_mul_ps(va, hi);
    if (beta != 0.0f) {
        lo = _mm512_fmadd_ps(vb, _mm512_loadu_ps(r), lo);
        hi = _mm512_fmadd_ps(vb, _mm512_loadu_ps(r + 16), hi);
    }
    _mm512_storeu_ps(r, lo);
    _mm512_storeu_ps(r + 16, hi);
}

#define GRAPHC_ZERO_ROW(i) __m512 c##i##0 = _mm512_setzero_ps(), c##i##1 = _mm512_setzero_ps()
#define GRAPHC_FMA_ROW(i)                                   \
    do {                                                    \
        const __m512 a = _mm512_set1_ps(Ap[i]);             \
        c##i##0 = _mm512_fmadd_ps(a, b0, c##i##0);          \
        c##i##1 = _mm512_fmadd_ps(a, b1, c##i##1);          \
    } while (0)
#define GRAPHC_STORE_ROW(i) store_row_avx512(C + (size_t)(i) * (size_t)ldc, c##i##0, c##i##1, va, vb, beta)

static void kernel_avx512(int kc, const float *Ap, const float *Bp, float *C, int ldc, float alpha,
                          float beta)
{
    GRAPHC_ZERO_ROW(0); GRAPHC_ZERO_ROW(1); GRAPHC_ZERO_ROW(2); GRAPHC_ZERO_ROW(3); GRAPHC_ZERO_ROW(4);
    GRAPHC_ZERO_ROW(5); GRAPHC_ZERO_ROW(6); GRAPHC_ZERO_ROW(7); GRAPHC_ZERO_ROW(8); GRAPHC_ZERO_ROW(9);
    GRAPHC_ZERO_ROW(10); GRAPHC_ZERO_ROW(11); GRAPHC_ZERO_ROW(12); GRAPHC_ZERO_ROW(13);
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    int k;
    for (k = 0; k < V_MR; ++k) { /* the C tile (128 B/row, 2-3 lines) arrives during the k loop */
        const char *row = (const char *)(C + (size_t)k * (size_t)ldc);
        _mm_prefetch(row, _MM_HINT_T0);
        _mm_prefetch(row + 64, _MM_HINT_T0);
        _mm_prefetch(row + 4 * V_NR - 4, _MM_HINT_T0);
    }
    for (k = 0; k < kc; ++k) {
        const __m512 b0 = _mm512_load_ps(Bp), b1 = _mm512_load_ps(Bp + 16); /* B[k][0..32) */
        GRAPHC_FMA_ROW(0); GRAPHC_FMA_ROW(1); GRAPHC_FMA_ROW(2); GRAPHC_FMA_ROW(3); GRAPHC_FMA_ROW(4);
        GRAPHC_FMA_ROW(5); GRAPHC_FMA_ROW(6); GRAPHC_FMA_ROW(7); GRAPHC_FMA_ROW(8); GRAPHC_FMA_ROW(9);
        GRAPHC_FMA_ROW(10); GRAPHC_FMA_ROW(11); GRAPHC_FMA_ROW(12); GRAPHC_FMA_ROW(13);
        Ap += V_MR;
        Bp += V_NR;
    }
    GRAPHC_STORE_ROW(0); GRAPHC_STORE_ROW(1); GRAPHC_STORE_ROW(2); GRAPHC_STORE_ROW(3); GRAPHC_STORE_ROW(4);
    GRAPHC_STORE_ROW(5); GRAPHC_STORE_ROW(6); GRAPHC_STORE_ROW(7); GRAPHC_STORE_ROW(8); GRAPHC_STORE_ROW(9);
    GRAPHC_STORE_ROW(10); GRAPHC_STORE_ROW(11); GRAPHC_STORE_ROW(12); GRAPHC_STORE_ROW(13);
}
#undef GRAPHC_ZERO_ROW
#undef GRAPHC_FMA_ROW
#undef GRAPHC_STORE_ROW

static const gemm_impl impl_simd = {V_MR, V_NR, 168, 256, kernel_avx512, "AVX-512 14x32", NULL, NULL};

#elif defined(GRAPHC_SIMD_AVX2)
/* AVX2 + FMA: 6 x 16 tile = 12 ymm accumulators + 2 ymm of B + 1 broadcast = 15 of 16 registers
 * (the BLIS Haswell/Zen shape). Per k: 2 loads, 6 broadcasts, 12 FMAs; two FMA pipes with 4-5
 * cycle latency need 8-10 independent accumulators. */
#define V_MR 6
#define V_NR 16

/* Accumulators are named variables, not an array: an array indexed in a loop makes GCC keep it in
 * memory and store all of it on every k step. */
static inline __attribute__((always_inline)) void store_row_avx2(float *r, __m256 lo, __m256 hi, __m256 va,
                                                                  __m256 vb, float beta, const float *bias, int relu)
{
    lo = _mm256_mul_ps(va, lo);
    hi = _mm256_mul_ps(va, hi);
    if (beta != 0.0f) {
        lo = _mm256_fmadd_ps(vb, _mm256_loadu_ps(r), lo);
        hi = _mm256_fmadd_ps(vb, _mm256_loadu_ps(r + 8), hi);
    }
    if (bias) {
        lo = _mm256_add_ps(lo, _mm256_loadu_ps(bias));
        hi = _mm256_add_ps(hi, _mm256_loadu_ps(bias + 8));
    }
    if (relu) { /* max(x, 0) gives 0 for NaN, as epilogue() */
        lo = _mm256_max_ps(lo, _mm256_setzero_ps());
        hi = _mm256_max_ps(hi, _mm256_setzero_ps());
    }
    _mm256_storeu_ps(r, lo);
    _mm256_storeu_ps(r + 8, hi);
}

#define GRAPHC_ZERO_ROW(i) __m256 c##i##0 = _mm256_setzero_ps(), c##i##1 = _mm256_setzero_ps()
#define GRAPHC_FMA_ROW(i)                                   \
    do {                                                    \
        const __m256 a = _mm256_broadcast_ss(Ap + (i));     \
        c##i##0 = _mm256_fmadd_ps(a, b0, c##i##0);          \
        c##i##1 = _mm256_fmadd_ps(a, b1, c##i##1);          \
    } while (0)
#define GRAPHC_STORE_ROW(i) store_row_avx2(C + (size_t)(i) * (size_t)ldc, c##i##0, c##i##1, va, vb, beta, bias, relu)

static inline __attribute__((always_inline)) void kernel_avx2_body(int kc, const float *Ap, const float *Bp, float *C,
                                                                    int ldc, float alpha, float beta,
                                                                    const float *bias, int relu)
{
    GRAPHC_ZERO_ROW(0); GRAPHC_ZERO_ROW(1); GRAPHC_ZERO_ROW(2);
    GRAPHC_ZERO_ROW(3); GRAPHC_ZERO_ROW(4); GRAPHC_ZERO_ROW(5);
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    int k;
    for (k = 0; k < V_MR; ++k) { /* the C tile (64 B/row, maybe 2 lines) arrives during the k loop */
        _mm_prefetch((const char *)(C + (size_t)k * (size_t)ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(C + (size_t)k * (size_t)ldc + V_NR - 1), _MM_HINT_T0);
    }
    for (k = 0; k < kc; ++k) {
        const __m256 b0 = _mm256_load_ps(Bp), b1 = _mm256_load_ps(Bp + 8); /* B[k][0..16) */
        GRAPHC_FMA_ROW(0); GRAPHC_FMA_ROW(1); GRAPHC_FMA_ROW(2);
        GRAPHC_FMA_ROW(3); GRAPHC_FMA_ROW(4); GRAPHC_FMA_ROW(5);
        Ap += V_MR;
        Bp += V_NR;
    }
    GRAPHC_STORE_ROW(0); GRAPHC_STORE_ROW(1); GRAPHC_STORE_ROW(2);
    GRAPHC_STORE_ROW(3); GRAPHC_STORE_ROW(4); GRAPHC_STORE_ROW(5);
}
#undef GRAPHC_ZERO_ROW
#undef GRAPHC_FMA_ROW
#undef GRAPHC_STORE_ROW

static void kernel_avx2(int kc, const float *Ap, const float *Bp, float *C, int ldc, float alpha, float beta)
{
    kernel_avx2_body(kc, Ap, Bp, C, ldc, alpha, beta, NULL, 0);
}

static void kernel_avx2_epi(int kc, const float *Ap, const float *Bp, float *C, int ldc, float alpha, float beta,
                            const float *bias, int relu)
{
    kernel_avx2_body(kc, Ap, Bp, C, ldc, alpha, beta, bias, relu);
}

/* Holds B's two vectors in registers: with few rows GCC folds their loads into each FMA instead, and at four
 * rows those 8 loads and 4 broadcasts per k, not the FMAs, set the pace. */
#if defined(__GNUC__)
#define GRAPHC_IN_REGISTERS(b0, b1) __asm__("" : "+x"(b0), "+x"(b1))
#else
#define GRAPHC_IN_REGISTERS(b0, b1) ((void)0)
#endif

/* A's rows read in place: the same loads as from a packed panel, from `rows` streams (up to six). A last,
 * partial micro-panel (rows < 6) runs with only its rows' accumulators, straight into C: packed, it was
 * zero-padded to six rows and went through a local tile (an LSTM step at batch 128, two threads, has 4 such
 * rows of its 64 at every step). */
static inline __attribute__((always_inline)) void direct_body(int kc, const float *A, int lda, const float *Bp,
                                                               float *C, int ldc, float alpha, float beta,
                                                               const float *bias, int relu, const int rows)
{
    const float *a0 = A, *a1 = A + (rows > 1) * (size_t)lda, *a2 = A + (rows > 2) * 2 * (size_t)lda;
    const float *a3 = A + (rows > 3) * 3 * (size_t)lda, *a4 = A + (rows > 4) * 4 * (size_t)lda;
    const float *a5 = A + (rows > 5) * 5 * (size_t)lda;
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    int k;
    for (k = 0; k < kc; ++k) {
        __m256 b0 = _mm256_load_ps(Bp), b1 = _mm256_load_ps(Bp + 8);
        __m256 a;
        GRAPHC_IN_REGISTERS(b0, b1);
        a = _mm256_broadcast_ss(a0 + k), c00 = _mm256_fmadd_ps(a, b0, c00), c01 = _mm256_fmadd_ps(a, b1, c01);
        if (rows > 1)
            a = _mm256_broadcast_ss(a1 + k), c10 = _mm256_fmadd_ps(a, b0, c10), c11 = _mm256_fmadd_ps(a, b1, c11);
        if (rows > 2)
            a = _mm256_broadcast_ss(a2 + k), c20 = _mm256_fmadd_ps(a, b0, c20), c21 = _mm256_fmadd_ps(a, b1, c21);
        if (rows > 3)
            a = _mm256_broadcast_ss(a3 + k), c30 = _mm256_fmadd_ps(a, b0, c30), c31 = _mm256_fmadd_ps(a, b1, c31);
        if (rows > 4)
            a = _mm256_broadcast_ss(a4 + k), c40 = _mm256_fmadd_ps(a, b0, c40), c41 = _mm256_fmadd_ps(a, b1, c41);
        if (rows > 5)
            a = _mm256_broadcast_ss(a5 + k), c50 = _mm256_fmadd_ps(a, b0, c50), c51 = _mm256_fmadd_ps(a, b1, c51);
        Bp += V_NR;
    }
    store_row_avx2(C, c00, c01, va, vb, beta, bias, relu);
    if (rows > 1) store_row_avx2(C + (size_t)ldc, c10, c11, va, vb, beta, bias, relu);
    if (rows > 2) store_row_avx2(C + 2 * (size_t)ldc, c20, c21, va, vb, beta, bias, relu);
    if (rows > 3) store_row_avx2(C + 3 * (size_t)ldc, c30, c31, va, vb, beta, bias, relu);
    if (rows > 4) store_row_avx2(C + 4 * (size_t)ldc, c40, c41, va, vb, beta, bias, relu);
    if (rows > 5) store_row_avx2(C + 5 * (size_t)ldc, c50, c51, va, vb, beta, bias, relu);
}

static void kernel_avx2_direct(int rows, int kc, const float *A, int lda, const float *Bp, float *C, int ldc,
                               float alpha, float beta, const float *bias, int relu)
{
    switch (rows) {
    case 6: direct_body(kc, A, lda, Bp, C, ldc, alpha, beta, bias, relu, 6); break;
    case 5: direct_body(kc, A, lda, Bp, C, ldc, alpha, beta, bias, relu, 5); break;
    case 4: direct_body(kc, A, lda, Bp, C, ldc, alpha, beta, bias, relu, 4); break;
    case 3: direct_body(kc, A, lda, Bp, C, ldc, alpha, beta, bias, relu, 3); break;
    case 2: direct_body(kc, A, lda, Bp, C, ldc, alpha, beta, bias, relu, 2); break;
    default: direct_body(kc, A, lda, Bp, C, ldc, alpha, beta, bias, relu, 1); break;
    }
}

static const gemm_impl impl_simd = {V_MR, V_NR, 144, 384, kernel_avx2, "AVX2+FMA 6x16", kernel_avx2_epi,
                                    kernel_avx2_direct};

#elif defined(GRAPHC_SIMD_NEON)
/* AArch64 NEON: 8 x 12 tile = 24 q-register accumulators + 3 of B + 2 of A = 29 of 32 registers
 * (the classic ARMv8 shape). FMA by lane takes A straight from a vector: no broadcasts. */
#define V_MR 8
#define V_NR 12

static inline void store_row_neon(float *r, float32x4_t c0, float32x4_t c1, float32x4_t c2, float alpha,
                                  float beta)
{
    c0 = vmulq_n_f32(c0, alpha);
    c1 = vmulq_n_f32(c1, alpha);
    c2 = vmulq_n_f32(c2, alpha);
    if (beta != 0.0f) {
        c0 = vfmaq_n_f32(c0, vld1q_f32(r), beta);
        c1 = vfmaq_n_f32(c1, vld1q_f32(r + 4), beta);
        c2 = vfmaq_n_f32(c2, vld1q_f32(r + 8), beta);
    }
    vst1q_f32(r, c0);
    vst1q_f32(r + 4, c1);
    vst1q_f32(r + 8, c2);
}

#define GRAPHC_ZERO_ROW(i) float32x4_t c##i##0 = vdupq_n_f32(0.0f), c##i##1 = c##i##0, c##i##2 = c##i##0
#define GRAPHC_FMA_ROW(i, a, lane)                          \
    do {                                                    \
        c##i##0 = vfmaq_laneq_f32(c##i##0, b0, a, lane);    \
        c##i##1 = vfmaq_laneq_f32(c##i##1, b1, a, lane);    \
        c##i##2 = vfmaq_laneq_f32(c##i##2, b2, a, lane);    \
    } while (0)
#define GRAPHC_STORE_ROW(i) store_row_neon(C + (size_t)(i) * (size_t)ldc, c##i##0, c##i##1, c##i##2, alpha, beta)

static void kernel_neon(int kc, const float *Ap, const float *Bp, float *C, int ldc, float alpha, float beta)
{
    GRAPHC_ZERO_ROW(0); GRAPHC_ZERO_ROW(1); GRAPHC_ZERO_ROW(2); GRAPHC_ZERO_ROW(3);
    GRAPHC_ZERO_ROW(4); GRAPHC_ZERO_ROW(5); GRAPHC_ZERO_ROW(6); GRAPHC_ZERO_ROW(7);
    int k;
    for (k = 0; k < V_MR; ++k) { /* the C tile (48 B/row) arrives during the k loop */
        __builtin_prefetch(C + (size_t)k * (size_t)ldc);
        __builtin_prefetch(C + (size_t)k * (size_t)ldc + V_NR - 1);
    }
    for (k = 0; k < kc; ++k) {
        const float32x4_t b0 = vld1q_f32(Bp), b1 = vld1q_f32(Bp + 4), b2 = vld1q_f32(Bp + 8); /* B[k][0..12) */
        const float32x4_t a0 = vld1q_f32(Ap), a1 = vld1q_f32(Ap + 4);                        /* A[0..8)[k] */
        GRAPHC_FMA_ROW(0, a0, 0); GRAPHC_FMA_ROW(1, a0, 1); GRAPHC_FMA_ROW(2, a0, 2); GRAPHC_FMA_ROW(3, a0, 3);
        GRAPHC_FMA_ROW(4, a1, 0); GRAPHC_FMA_ROW(5, a1, 1); GRAPHC_FMA_ROW(6, a1, 2); GRAPHC_FMA_ROW(7, a1, 3);
        Ap += V_MR;
        Bp += V_NR;
    }
    GRAPHC_STORE_ROW(0); GRAPHC_STORE_ROW(1); GRAPHC_STORE_ROW(2); GRAPHC_STORE_ROW(3);
    GRAPHC_STORE_ROW(4); GRAPHC_STORE_ROW(5); GRAPHC_STORE_ROW(6); GRAPHC_STORE_ROW(7);
}
#undef GRAPHC_ZERO_ROW
#undef GRAPHC_FMA_ROW
#undef GRAPHC_STORE_ROW

static const gemm_impl impl_simd = {V_MR, V_NR, 160, 256, kernel_neon, "NEON 8x12", NULL, NULL};

#else
#define impl_simd impl_portable
#endif

/* ------------------------------------------------------------------------------------------------ */
/* Packing. */

/* One full micro-panel: mr rows of A (row stride lda) x kc -> Ap[k * mr + i]. k outer: Ap is written
 * sequentially and each source row read sequentially. Inlined with a constant mr, the i loop unrolls
 * (1.6x faster than a runtime mr). */
static inline void pack_a_panel(int kc, int mr, const float *A, int lda, float *Ap)
{
    int i, k;
    for (k = 0; k < kc; ++k)
        for (i = 0; i < mr; ++i)
            Ap[(size_t)k * mr + i] = A[(size_t)i * (size_t)lda + k];
}

/* op(A) rows [0, mc) x cols [0, kc) -> micro-panels of mr rows, Ap[p][k][i]; rows past mc are zero.
 * A points at op(A)[0][0]; trans: op(A) is stored transposed (element (i, k) at A[k * lda + i]). */
static void pack_a(int mc, int kc, int mr, const float *A, int lda, int trans, float *Ap)
{
    int p, i, k;
    for (p = 0; p + mr <= mc; p += mr) {
        if (trans) {
            graphc_pack_at_panel(kc, mr, A + p, lda, Ap); /* (graphc_kernels.h: each k is a plain copy) */
        } else {
            const float *a = A + (size_t)p * (size_t)lda;
            switch (mr) { /* the micro-tile heights in use */
            case 4: pack_a_panel(kc, 4, a, lda, Ap); break;
            case 6: pack_a_panel(kc, 6, a, lda, Ap); break;
            case 8: pack_a_panel(kc, 8, a, lda, Ap); break;
            case 14: pack_a_panel(kc, 14, a, lda, Ap); break;
            default: pack_a_panel(kc, mr, a, lda, Ap); break;
            }
        }
        Ap += (size_t)mr * kc;
    }
    if (p < mc) { /* edge panel */
        for (k = 0; k < kc; ++k)
            for (i = 0; i < mr; ++i)
                Ap[(size_t)k * mr + i] = p + i >= mc ? 0.0f
                                         : trans ? A[(size_t)k * (size_t)lda + p + i]
                                                 : A[(size_t)(p + i) * (size_t)lda + k];
    }
}

/* op(B) rows [0, kc) x cols [0, nc) -> micro-panels of nr columns, Bp[p][k][j] (panel floats apart, nr * kc
 * for a whole block); cols past nc are zero.
 * k outer: each row of B is read once, front to back (prefetch-friendly), in nr-wide pieces. */
static void pack_b(int kc, int nc, int nr, const float *B, int ldb, float *Bp, size_t panel)
{
    int p, j, k;
    for (k = 0; k < kc; ++k) {
        const float *b = B + (size_t)k * (size_t)ldb;
        float *d = Bp + (size_t)k * nr;
        for (p = 0; p + nr <= nc; p += nr, d += panel)
            for (j = 0; j < nr; ++j)
                d[j] = b[p + j];
        if (p < nc)
            for (j = 0; j < nr; ++j)
                d[j] = p + j < nc ? b[p + j] : 0.0f;
    }
}

#if defined(__AVX2__) && !defined(GRAPHC_FORCE_PORTABLE)
#include <immintrin.h>
/* d[t * ldd + r] = s[r * lds + t] for an 8 x 8 block: 8 loads, 24 shuffles, 8 stores (the scalar
 * transpose is one load and one store per element). */
static inline void transpose8x8(const float *s, size_t lds, float *d, size_t ldd)
{
    __m256 r0 = _mm256_loadu_ps(s), r1 = _mm256_loadu_ps(s + lds), r2 = _mm256_loadu_ps(s + 2 * lds),
           r3 = _mm256_loadu_ps(s + 3 * lds), r4 = _mm256_loadu_ps(s + 4 * lds), r5 = _mm256_loadu_ps(s + 5 * lds),
           r6 = _mm256_loadu_ps(s + 6 * lds), r7 = _mm256_loadu_ps(s + 7 * lds);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
           t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
           t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    r0 = _mm256_shuffle_ps(t0, t2, 0x44); r1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    r2 = _mm256_shuffle_ps(t1, t3, 0x44); r3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    r4 = _mm256_shuffle_ps(t4, t6, 0x44); r5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    r6 = _mm256_shuffle_ps(t5, t7, 0x44); r7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(d, _mm256_permute2f128_ps(r0, r4, 0x20));
    _mm256_storeu_ps(d + ldd, _mm256_permute2f128_ps(r1, r5, 0x20));
    _mm256_storeu_ps(d + 2 * ldd, _mm256_permute2f128_ps(r2, r6, 0x20));
    _mm256_storeu_ps(d + 3 * ldd, _mm256_permute2f128_ps(r3, r7, 0x20));
    _mm256_storeu_ps(d + 4 * ldd, _mm256_permute2f128_ps(r0, r4, 0x31));
    _mm256_storeu_ps(d + 5 * ldd, _mm256_permute2f128_ps(r1, r5, 0x31));
    _mm256_storeu_ps(d + 6 * ldd, _mm256_permute2f128_ps(r2, r6, 0x31));
    _mm256_storeu_ps(d + 7 * ldd, _mm256_permute2f128_ps(r3, r7, 0x31));
}
#define GRAPHC_TRANSPOSE8 1
#endif

/* The same from a transposed B (op(B)[k][j] = B[j][k]): micro-panel p gathers nr rows of B, each read
 * front to back along k. Full panels go through 8 x 8 block transposes where available. */
static void pack_bt(int kc, int nc, int nr, const float *B, int ldb, float *Bp)
{
    int p, j, k;
    for (p = 0; p < nc; p += nr, Bp += (size_t)nr * kc) {
        const int w = nc - p < nr ? nc - p : nr;
        k = 0;
#ifdef GRAPHC_TRANSPOSE8
        if (w == nr && nr % 8 == 0) {
            for (; k + 8 <= kc; k += 8)
                for (j = 0; j < nr; j += 8)
                    transpose8x8(B + (size_t)(p + j) * (size_t)ldb + k, (size_t)ldb, Bp + (size_t)k * nr + j,
                                 (size_t)nr);
        }
#endif
        for (j = 0; j < nr; ++j) {
            float *d = Bp + j;
            int kk;
            if (j < w) {
                const float *b = B + (size_t)(p + j) * (size_t)ldb;
                for (kk = k; kk < kc; ++kk)
                    d[(size_t)kk * nr] = b[kk];
            } else {
                for (kk = k; kk < kc; ++kk)
                    d[(size_t)kk * nr] = 0.0f;
            }
        }
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* Epilogue: C[0..m)[0..n) = act(C + bias[0..n)), on a tile just finished (still in L1). */

static float activate(float x, int act)
{
    switch (act) {
    case GRAPHC_ACT_RELU:
        return x > 0.0f ? x : 0.0f;
    case GRAPHC_ACT_SIGMOID:
        return 1.0f / (1.0f + expf(-x));
    case GRAPHC_ACT_TANH:
        return tanhf(x);
    default:
        return x;
    }
}

static void epilogue(int m, int n, float *C, int ldc, const float *bias, int act)
{
    int i, j;
    for (i = 0; i < m; ++i) {
        float *c = C + (size_t)i * (size_t)ldc;
        if (bias)
            for (j = 0; j < n; ++j)
                c[j] += bias[j];
        if (act == GRAPHC_ACT_RELU)
            for (j = 0; j < n; ++j)
                c[j] = c[j] > 0.0f ? c[j] : 0.0f;
        else if (act != GRAPHC_ACT_NONE)
            for (j = 0; j < n; ++j)
                c[j] = activate(c[j], act);
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* Blocked GEMM. */

typedef struct { /* one call's operands, as given to graphc_sgemm_ex / graphc_sgemm_bias_act */
    int transa, transb; /* A stored K x M, B stored N x K (see graphc_sgemm_ref_ex) */
    int M, N, K;
    float alpha, beta;
    const float *A, *B;
    float *C;
    int lda, ldb, ldc;
    const float *bias; /* N entries or NULL; with act, applied after the last K block */
    int act;
    graphc_pack_a_fn pack_a; /* op(A) packed by the caller's function (A unused), or NULL */
    const void *pack_ctx;
    int row0;                /* row of the caller's op(A) that this product's row 0 is */
    const float *packed_b;   /* op(B) already packed (graphc_sgemm_pack_b's layout, this impl's), or NULL */
    int direct_a;            /* read A's micro-panels in place (kernel_direct), when the impl has one */
} gemm_args;

/* Floats of an A block and of a B block (each rounded to 64-byte lines) that impl g packs for an M x N x K
 * product: at most mc x kc and kc x NC, fewer for a smaller problem (rows and columns round up to whole
 * micro-panels, which are zero-padded). A region of scratch holds the A block, then the B block. */
static size_t a_block_floats(const gemm_impl *g, int64_t M, int64_t K)
{
    const int64_t kc = K < g->kc ? K : g->kc, mc = (M + g->mr - 1) / g->mr * g->mr;
    return graphc_scratch_round((size_t)((mc < g->mc ? mc : g->mc) * kc));
}

static size_t b_block_floats(const gemm_impl *g, int64_t N, int64_t K)
{
    const int64_t kc = K < g->kc ? K : g->kc, nc = (N + g->nr - 1) / g->nr * g->nr;
    return graphc_scratch_round((size_t)((nc < NC ? nc : NC) * kc));
}

/* The K block size for K: blocks of near-equal size, at most g->kc each (K = 784 runs as 264 + 264 + 256, not
 * 384 + 384 + 16: a thin last block reloads every C tile for a few multiply-adds). Packed B's layout
 * (graphc_sgemm_pack_b) follows it. */
static int kc_step(const gemm_impl *g, int K)
{
    const int blocks = K > 0 ? (K + g->kc - 1) / g->kc : 1, step = (K + blocks - 1) / blocks;
    return step > 0 ? (step + 7) / 8 * 8 : g->kc; /* (g->kc is a multiple of 8, so this stays <= g->kc) */
}

/* Where op(A)[i][k] and op(B)[k][j] are stored. */
static const float *a_at(const gemm_args *p, int i, int k)
{
    return p->transa ? p->A + (size_t)k * (size_t)p->lda + i : p->A + (size_t)i * (size_t)p->lda + k;
}

static const float *b_at(const gemm_args *p, int k, int j)
{
    return p->transb ? p->B + (size_t)j * (size_t)p->ldb + k : p->B + (size_t)k * (size_t)p->ldb + j;
}

/* op(B) rows [pc, pc + kc) x cols [jc, jc + nc) -> Bp (see pack_b). */
static void pack_b_block(const gemm_args *p, int pc, int kc, int jc, int nc, int nr, float *Bp)
{
    if (p->transb)
        pack_bt(kc, nc, nr, b_at(p, pc, jc), p->ldb, Bp);
    else
        pack_b(kc, nc, nr, b_at(p, pc, jc), p->ldb, Bp, (size_t)nr * kc);
}

/* Block (jc, pc) of a B packed by graphc_sgemm_pack_b (see there): every earlier jc block is a full NC. */
static const float *packed_block(const gemm_impl *g, const gemm_args *p, int jc, int pc, int nc)
{
    return p->packed_b + (size_t)jc * (size_t)p->K + (size_t)pc * (size_t)((nc + g->nr - 1) / g->nr * g->nr);
}

/* Rows of the next in-place micro-panel when `left` rows remain: a full panel, except that mr + 1 or mr + 2
 * rows (mr = 6) go as two panels of 3-4 rows. A panel of one or two rows waits on its FMAs' latency and
 * takes about 65% of a full panel's time; two of four take 75% each (harness, 128 x 512 recurrent kernel: 32
 * rows 39.8 -> 37.6 us). */
static int direct_rows(int left, int mr)
{
    return left < mr ? left : left > mr && left - mr < mr / 2 ? (left + 1) / 2 : mr;
}

/* The ic, jr, ir loops: C rows [m0, m1) x cols [jc, jc + nc) += A rows [m0, m1) x K block [pc, pc + kc)
 * times the packed B block Bp (kc x nc). Packs A into this thread's buffer Ap one MC block at a time. */
static void gemm_macro(const gemm_impl *g, const gemm_args *p, int m0, int m1, int jc, int nc, int pc, int kc,
                       const float *Bp, float *Ap)
{
    float tile[MR_MAX * NR_MAX]; /* edge tiles land here first */
    const int mr = g->mr, nr = g->nr;
    const float alpha = p->alpha, beta = pc == 0 ? p->beta : 1.0f; /* later K blocks accumulate onto C */
    const int epilogue_now = pc + kc >= p->K && (p->bias != NULL || p->act != GRAPHC_ACT_NONE);
    const int relu_or_none = p->act == GRAPHC_ACT_NONE || p->act == GRAPHC_ACT_RELU; /* what kernels fuse */
    const int fuse = epilogue_now && g->kernel_epi != NULL && relu_or_none;
    const float *bias_now = epilogue_now ? p->bias : NULL; /* a fused epilogue's bias and ReLU */
    const int relu_now = epilogue_now && p->act == GRAPHC_ACT_RELU;
    const int ldc = p->ldc;
    const int direct = p->direct_a && g->kernel_direct != NULL && !p->transa && (!epilogue_now || relu_or_none);
    int ic, jr, ir, i, j, m;

    for (ic = m0; ic < m1; ic += g->mc) {
        const int mc = m1 - ic < g->mc ? m1 - ic : g->mc;
        if (direct) { /* nothing packed: every micro-panel, full or not, is read in place */
        } else if (p->pack_a)
            p->pack_a(p->pack_ctx, p->row0 + ic, mc, pc, kc, mr, Ap);
        else
            pack_a(mc, kc, mr, a_at(p, ic, pc), p->lda, p->transa, Ap);
        for (jr = 0; jr < nc; jr += nr) {
            const int n = nc - jr < nr ? nc - jr : nr;
            const float *bp = Bp + (size_t)jr * kc;
            for (ir = 0; ir < mc; ir += m) {
                m = direct ? direct_rows(mc - ir, mr) : mc - ir < mr ? mc - ir : mr;
                const float *ap = Ap + (size_t)ir * kc;
                const float *ad = direct ? a_at(p, ic + ir, pc) : NULL; /* A in place */
                float *c = p->C + (size_t)(ic + ir) * (size_t)ldc + jc + jr;
                const float *tile_bias = bias_now ? bias_now + jc + jr : NULL;
                if (n == nr && ad != NULL) {
                    g->kernel_direct(m, kc, ad, p->lda, bp, c, ldc, alpha, beta, tile_bias, relu_now);
                    continue;
                }
                if (m == mr && n == nr && fuse) {
                    g->kernel_epi(kc, ap, bp, c, ldc, alpha, beta, tile_bias, relu_now);
                    continue;
                }
                if (m == mr && n == nr) {
                    g->kernel(kc, ap, bp, c, ldc, alpha, beta);
                } else {
                    if (ad != NULL)
                        g->kernel_direct(m, kc, ad, p->lda, bp, tile, nr, 1.0f, 0.0f, NULL, 0);
                    else
                        g->kernel(kc, ap, bp, tile, nr, 1.0f, 0.0f);
                    for (i = 0; i < m; ++i) {
                        float *cr = c + (size_t)i * (size_t)ldc;
                        const float *t = tile + (size_t)i * nr;
                        if (beta == 0.0f)
                            for (j = 0; j < n; ++j)
                                cr[j] = alpha * t[j];
                        else
                            for (j = 0; j < n; ++j)
                                cr[j] = alpha * t[j] + beta * cr[j];
                    }
                }
                if (epilogue_now)
                    epilogue(m, n, c, ldc, p->bias ? p->bias + jc + jr : NULL, p->act);
            }
        }
    }
}


/* C rows [m0, m1) x columns [n0, n1) (n0 a multiple of NR) from an already packed B: the parts of its
 * blocks that fall in the columns, read in place. */
static void gemm_packed_part(const gemm_impl *g, const gemm_args *p, int m0, int m1, int n0, int n1, float *Ap)
{
    int jc, pc;
    for (jc = n0 / NC * NC; jc < n1; jc += NC) {
        const int nc = p->N - jc < NC ? p->N - jc : NC;
        const int j0 = n0 > jc ? n0 - jc : 0, j1 = n1 < jc + nc ? n1 - jc : nc; /* the part in this block */
        const int kcs = kc_step(g, p->K);
        for (pc = 0; pc < p->K; pc += kcs) {
            const int kc = p->K - pc < kcs ? p->K - pc : kcs;
            gemm_macro(g, p, m0, m1, jc + j0, j1 - j0, pc, kc, packed_block(g, p, jc, pc, nc) + (size_t)j0 * kc, Ap);
        }
    }
}

/* Single thread: the jc, pc loops around gemm_macro, with this thread's buffers. */
static void gemm_serial(const gemm_impl *g, const gemm_args *p, float *Ap, float *Bp)
{
    int jc, pc;
    if (p->packed_b != NULL) {
        gemm_packed_part(g, p, 0, p->M, 0, p->N, Ap);
        return;
    }
    for (jc = 0; jc < p->N; jc += NC) {
        const int nc = p->N - jc < NC ? p->N - jc : NC;
        const int kcs = kc_step(g, p->K);
        for (pc = 0; pc < p->K; pc += kcs) {
            const int kc = p->K - pc < kcs ? p->K - pc : kcs;
            pack_b_block(p, pc, kc, jc, nc, g->nr, Bp);
            gemm_macro(g, p, 0, p->M, jc, nc, pc, kc, Bp, Ap);
        }
    }
}

/* A few rows (M < SMALL_M, e.g. a Dense layer at batch 1; B not transposed): packing B would cost
 * more than the product itself (each element of B is used M times), so B is streamed once, unpacked,
 * row by row (op(A) is read in place either way).
 * C columns [j0, j1) are done in strips of SMALL_M_STRIP floats (16 KB per row, in L1/L2 while all
 * of B's rows pass): long contiguous pieces of B's rows stream faster than short ones (measured:
 * 512-float strips ran at half the speed). The j loops vectorize. */
#define SMALL_M 4
#define SMALL_M_STRIP 4096

static void gemm_small_m_strided(const gemm_args *p, int j0, int j1, size_t a_row, size_t a_col);

/* One row (a Dense layer at batch 1): a strip of ROW_STRIP columns of C stays in registers for the whole
 * K loop (8 AVX2 / 4 AVX-512 accumulators), so each k costs only the loads of B's strip, where the loop
 * below stores C back at every k (bound by store-to-load forwarding: measured ~5x slower for N = 64). */
#define ROW_STRIP 64

static inline __attribute__((always_inline)) void gemm_one_row_body(const gemm_args *p, int j0, int j1, size_t a_col)
{
    const size_t ldb = (size_t)p->ldb;
    const float *a = p->A;
    int js, j, k;
    for (js = j0; js < j1; js += ROW_STRIP) {
        float acc[ROW_STRIP];
        float *c = p->C + js;
        const int n = j1 - js < ROW_STRIP ? j1 - js : ROW_STRIP;
        for (j = 0; j < ROW_STRIP; ++j)
            acc[j] = 0.0f;
        if (n == ROW_STRIP) {
            for (k = 0; k < p->K; ++k) {
                const float s = a[(size_t)k * a_col], *b = p->B + (size_t)k * ldb + js;
                for (j = 0; j < ROW_STRIP; ++j)
                    acc[j] += s * b[j];
            }
        } else {
            for (k = 0; k < p->K; ++k) {
                const float s = a[(size_t)k * a_col], *b = p->B + (size_t)k * ldb + js;
                for (j = 0; j < n; ++j)
                    acc[j] += s * b[j];
            }
        }
        for (j = 0; j < n; ++j)
            c[j] = p->alpha * acc[j] + (p->beta == 0.0f ? 0.0f : p->beta * c[j]);
        if (p->bias != NULL || p->act != GRAPHC_ACT_NONE)
            epilogue(1, n, c, p->ldc, p->bias ? p->bias + js : NULL, p->act);
    }
}

static void gemm_small_m(const gemm_args *p, int j0, int j1)
{
    if (p->M == 1) { /* op(A)'s one row: A itself, or A's column 0 when transa */
        if (p->transa)
            gemm_one_row_body(p, j0, j1, (size_t)p->lda);
        else
            gemm_one_row_body(p, j0, j1, 1);
        return;
    }
    /* op(A)[i][k] = A[i*a_row + k*a_col]: constant strides in the common case keep its loop as fast as it
     * was before transposes existed (a runtime stride measured 10-25% slower at batch 1) */
    if (p->transa)
        gemm_small_m_strided(p, j0, j1, 1, (size_t)p->lda);
    else
        gemm_small_m_strided(p, j0, j1, (size_t)p->lda, 1);
}

static inline __attribute__((always_inline)) void gemm_small_m_body(const gemm_args *p, int j0, int j1,
                                                                     size_t a_row, size_t a_col)
{
    const size_t ldb = (size_t)p->ldb, ldc = (size_t)p->ldc;
    int js, i, j, k;
    for (js = j0; js < j1; js += SMALL_M_STRIP) {
        const int n = j1 - js < SMALL_M_STRIP ? j1 - js : SMALL_M_STRIP;
        for (i = 0; i < p->M; ++i) {
            float *c = p->C + (size_t)i * ldc + js;
            for (j = 0; j < n; ++j)
                c[j] = p->beta == 0.0f ? 0.0f : p->beta * c[j];
        }
        for (k = 0; k < p->K; ++k) {
            const float *b = p->B + (size_t)k * ldb + js;
            for (i = 0; i < p->M; ++i) {
                const float s = p->alpha * p->A[(size_t)i * a_row + (size_t)k * a_col];
                float *c = p->C + (size_t)i * ldc + js;
                for (j = 0; j < n; ++j)
                    c[j] += s * b[j];
            }
        }
        if (p->bias != NULL || p->act != GRAPHC_ACT_NONE)
            epilogue(p->M, n, p->C + js, p->ldc, p->bias ? p->bias + js : NULL, p->act);
    }
}

static void gemm_small_m_strided(const gemm_args *p, int j0, int j1, size_t a_row, size_t a_col)
{
    if (a_col == 1)
        gemm_small_m_body(p, j0, j1, a_row, 1);
    else
        gemm_small_m_body(p, j0, j1, 1, a_col);
}

/* A few rows times a transposed B (stored N x K, e.g. dY @ W^T at batch 1-3): C[i][j] is the dot
 * product of op(A)'s row i and B's row j, both contiguous (op(A)'s rows are copied first when transa),
 * so B is still streamed once, front to back. K runs in chunks of SMALL_M_KCHUNK: the M rows of A
 * stay in L1 while the rows of B pass, each read once for all M dot products. */
#define SMALL_M_KCHUNK 2048

/* out[i] = sum_k a[i * lda + k] * b[k] for i < m <= 3 (m constant once inlined). */
#if defined(__AVX2__) && defined(__FMA__) && !defined(GRAPHC_FORCE_PORTABLE)
/* 4 vectors of partial sums per row: independent FMA chains (in plain C, GCC vectorized this loop
 * across k with permutes and ran at a tenth of the speed). */
static inline float hsum_avx(__m256 v)
{
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

#define GRAPHC_DOT_STEP(r, ar)                                                                   \
    do {                                                                                         \
        r##0 = _mm256_fmadd_ps(_mm256_loadu_ps(ar + k), b0, r##0);                               \
        r##1 = _mm256_fmadd_ps(_mm256_loadu_ps(ar + k + 8), b1, r##1);                           \
        r##2 = _mm256_fmadd_ps(_mm256_loadu_ps(ar + k + 16), b2, r##2);                          \
        r##3 = _mm256_fmadd_ps(_mm256_loadu_ps(ar + k + 24), b3, r##3);                          \
    } while (0)
#define GRAPHC_DOT_SUM(r) hsum_avx(_mm256_add_ps(_mm256_add_ps(r##0, r##1), _mm256_add_ps(r##2, r##3)))

static inline void dots(int m, int kc, const float *a, int lda, const float *b, float *out)
{
    const float *a0 = a, *a1 = m > 1 ? a + lda : a, *a2 = m > 2 ? a + 2 * (size_t)lda : a;
    __m256 s00 = _mm256_setzero_ps(), s01 = s00, s02 = s00, s03 = s00, s10 = s00, s11 = s00, s12 = s00,
           s13 = s00, s20 = s00, s21 = s00, s22 = s00, s23 = s00;
    float t0, t1 = 0.0f, t2 = 0.0f;
    int k;
    for (k = 0; k + 32 <= kc; k += 32) {
        const __m256 b0 = _mm256_loadu_ps(b + k), b1 = _mm256_loadu_ps(b + k + 8), b2 = _mm256_loadu_ps(b + k + 16),
                     b3 = _mm256_loadu_ps(b + k + 24);
        GRAPHC_DOT_STEP(s0, a0);
        if (m > 1)
            GRAPHC_DOT_STEP(s1, a1);
        if (m > 2)
            GRAPHC_DOT_STEP(s2, a2);
    }
    t0 = GRAPHC_DOT_SUM(s0);
    if (m > 1)
        t1 = GRAPHC_DOT_SUM(s1);
    if (m > 2)
        t2 = GRAPHC_DOT_SUM(s2);
    for (; k < kc; ++k) {
        t0 += a0[k] * b[k];
        t1 += a1[k] * b[k];
        t2 += a2[k] * b[k];
    }
    out[0] = t0;
    out[1] = t1;
    out[2] = t2;
}
#undef GRAPHC_DOT_STEP
#undef GRAPHC_DOT_SUM
#else
static inline void dots(int m, int kc, const float *a, int lda, const float *b, float *out)
{
    const float *a0 = a, *a1 = m > 1 ? a + lda : a, *a2 = m > 2 ? a + 2 * (size_t)lda : a;
    float t0 = 0.0f, t1 = 0.0f, t2 = 0.0f;
    int k;
    for (k = 0; k < kc; ++k) {
        t0 += a0[k] * b[k];
        t1 += a1[k] * b[k];
        t2 += a2[k] * b[k];
    }
    out[0] = t0;
    out[1] = t1;
    out[2] = t2;
}
#endif

static void gemm_small_m_bt(const gemm_args *p, int j0, int j1, float *abuf /* op(A)'s rows of a K chunk */)
{
    const int M = p->M;
    int k0, i, j, k;
    for (k0 = 0; k0 < p->K; k0 += SMALL_M_KCHUNK) {
        const int kc = p->K - k0 < SMALL_M_KCHUNK ? p->K - k0 : SMALL_M_KCHUNK;
        const float *a = p->A + k0;
        int lda = p->lda;
        if (p->transa) {
            for (k = 0; k < kc; ++k)
                for (i = 0; i < M; ++i)
                    abuf[(size_t)i * kc + k] = *a_at(p, i, k0 + k);
            a = abuf;
            lda = kc;
        }
        for (j = j0; j < j1; ++j) {
            const float *b = p->B + (size_t)j * (size_t)p->ldb + k0;
            float d[3];
            switch (M) {
            case 1: dots(1, kc, a, lda, b, d); break;
            case 2: dots(2, kc, a, lda, b, d); break;
            default: dots(3, kc, a, lda, b, d); break;
            }
            for (i = 0; i < M; ++i) {
                float *c = p->C + (size_t)i * (size_t)p->ldc + j;
                const float v = p->alpha * d[i];
                *c = k0 > 0 ? *c + v : p->beta == 0.0f ? v : v + p->beta * *c; /* later chunks accumulate */
            }
        }
    }
    if (p->bias != NULL || p->act != GRAPHC_ACT_NONE)
        epilogue(M, j1 - j0, p->C + j0, p->ldc, p->bias ? p->bias + j0 : NULL, p->act);
}

/* Few-rows product of C columns [j0, j1); abuf: M x min(K, SMALL_M_KCHUNK) floats (read with transa). */
static void gemm_few_rows(const gemm_args *p, int j0, int j1, float *abuf)
{
    if (p->transb)
        gemm_small_m_bt(p, j0, j1, abuf);
    else
        gemm_small_m(p, j0, j1);
}

/* ------------------------------------------------------------------------------------------------ */
#ifdef _OPENMP
/* Threads. One parallel region per call; the team splits C into a tm x tn grid of rectangles of
 * whole micro-tiles. A split over rows (tn == 1, the usual case) shares one packed B block: the team
 * packs it together, then each thread multiplies its rows with it (two barriers per kc x NC block).
 * A split over columns (wide, short C) gives each thread its own columns of B and its own copy of A,
 * with no barriers. choose_grid balances the tiles and the packing per thread. */

/* Per-thread time, in multiply-adds per k, of a tm x tn grid: its C rectangle (whole tiles, so the
 * largest share counts) plus what it packs, weighted by PACK_COST (one packed element costs about
 * as much as PACK_COST multiply-adds: a load and a store of hot data against 16 FMA lanes per cycle).
 * It decides between splitting rows and splitting columns when C is short: at 8, a batch of 64 through
 * Dense(216) (64 x 216 x 512) splits its columns and takes 84 us instead of 120 us (2 threads, the 30
 * this was before: the two row shares were 6 and 5 micro-panels, and each thread's copy of A is cheap). */
#define PACK_COST 8.0

static void choose_grid(int threads, int M, int N, const gemm_impl *g, int *tm_out, int *tn_out)
{
    const int mt = (M + g->mr - 1) / g->mr, nt = (N + g->nr - 1) / g->nr; /* tiles per dimension */
    int tm, tn, best_tm = 1, best_tn = 1;
    double best_cost = -1.0;
    for (tm = 1; tm <= threads && tm <= mt; ++tm) {
        for (tn = 1; tm * tn <= threads && tn <= nt; ++tn) {
            const double rows = (double)((mt + tm - 1) / tm) * g->mr, cols = (double)((nt + tn - 1) / tn) * g->nr;
            const double b_cols = tn == 1 ? (double)N / threads : cols; /* tn == 1: B packed together */
            const double cost = rows * cols + PACK_COST * (rows + b_cols);
            if (best_cost < 0.0 || cost < best_cost) {
                best_tm = tm;
                best_tn = tn;
                best_cost = cost;
            }
        }
    }
    *tm_out = best_tm;
    *tn_out = best_tn;
}

/* How many threads a call should use: 1 inside a parallel region (nested calls run serially), at most
 * the scratch's regions, and never so many that a thread gets less than min_work multiply-adds. */
static int team_size(int M, int N, int K, double min_work, const graphc_scratch *scratch)
{
    const double work = (double)M * N * K;
    int threads = omp_in_parallel() || scratch == NULL ? 1 : omp_get_max_threads();
    if (scratch != NULL && threads > scratch->nthreads)
        threads = scratch->nthreads;
    if (threads > MAX_GRID_THREADS)
        threads = MAX_GRID_THREADS;
    if (work < min_work * threads)
        threads = (int)(work / min_work);
    return threads < 1 ? 1 : threads;
}

/* [lo, hi) of the part-th of parts even shares of count tiles of size step, clipped to limit. */
static void share(int count, int step, int limit, int part, int parts, int *lo, int *hi)
{
    *lo = (int)((long long)count * part / parts) * step;
    *hi = (int)((long long)count * (part + 1) / parts) * step;
    if (*hi > limit)
        *hi = limit;
}

static void gemm_parallel(const gemm_impl *g, int threads, const gemm_args *p, const graphc_scratch *scratch,
                          size_t a_floats)
{
    float *Bp_shared = scratch->base + a_floats; /* the calling thread's B buffer, lent to the team */
#pragma omp parallel num_threads(threads)
    {
        /* The runtime may give fewer threads than asked: plan the grid from the real team. */
        const int team = omp_get_num_threads(), t = omp_get_thread_num();
        const int mt = (p->M + g->mr - 1) / g->mr, nt = (p->N + g->nr - 1) / g->nr;
        float *Ap = graphc_scratch_region(scratch, t);
        int tm, tn, m0, m1;
        choose_grid(team, p->M, p->N, g, &tm, &tn);
        if (p->packed_b != NULL) { /* B is ready: no block to pack together, so no barriers */
            int n0, n1;
            share(mt, g->mr, p->M, t / tn, tm, &m0, &m1);
            share(nt, g->nr, p->N, t % tn, tn, &n0, &n1);
            if (t < tm * tn && m1 > m0 && n1 > n0)
                gemm_packed_part(g, p, m0, m1, n0, n1, Ap);
        } else if (tn == 1) {
            int jc, pc;
            share(mt, g->mr, p->M, t, tm, &m0, &m1); /* threads t >= tm (if any) only help pack */
            for (jc = 0; jc < p->N; jc += NC) {
                const int nc = p->N - jc < NC ? p->N - jc : NC, panels = (nc + g->nr - 1) / g->nr;
                const int kcs = kc_step(g, p->K);
                for (pc = 0; pc < p->K; pc += kcs) {
                    const int kc = p->K - pc < kcs ? p->K - pc : kcs;
                    int n0, n1;
#pragma omp barrier /* everyone is done with the previous B block */
                    share(panels, g->nr, nc, t, team, &n0, &n1);
                    if (n1 > n0)
                        pack_b_block(p, pc, kc, jc + n0, n1 - n0, g->nr, Bp_shared + (size_t)n0 * kc);
#pragma omp barrier /* the B block is complete */
                    if (m1 > m0)
                        gemm_macro(g, p, m0, m1, jc, nc, pc, kc, Bp_shared, Ap);
                }
            }
        } else if (t < tm * tn) {
            gemm_args mine = *p;
            int n0, n1;
            share(mt, g->mr, p->M, t / tn, tm, &m0, &m1);
            share(nt, g->nr, p->N, t % tn, tn, &n0, &n1);
            if (m1 > m0 && n1 > n0) {
                mine.M = m1 - m0;
                mine.N = n1 - n0;
                mine.A = p->pack_a ? NULL : a_at(p, m0, 0);
                mine.row0 = p->row0 + m0;
                mine.B = b_at(p, 0, n0);
                mine.C = p->C + (size_t)m0 * (size_t)p->ldc + n0;
                mine.bias = p->bias ? p->bias + n0 : NULL;
                gemm_serial(g, &mine, Ap, Ap + a_floats);
            }
        }
    }
}
#endif

/* gemm_driver, or with pack_a != NULL a product whose op(A) the caller's function packs (A unused). */
static void gemm_few_rows_packed(const gemm_args *p, int kc_block, const float *Bp, int j0, int j1);

static void gemm_driver_fn(const gemm_impl *g, int transa, int transb, int M, int N, int K, float alpha,
                           const float *A, int lda, graphc_pack_a_fn pack_a, const void *pack_ctx, const float *B,
                           int ldb, const float *packed_b, float beta, float *C, int ldc, const float *bias,
                           int act, const graphc_scratch *scratch)
{
    gemm_args p;
    size_t a_floats;
    if (M <= 0 || N <= 0)
        return;
    if (K <= 0 || alpha == 0.0f) { /* C = beta * C (then the epilogue): A and B are not read */
        int i, j;
        for (i = 0; i < M; ++i) {
            float *c = C + (size_t)i * (size_t)ldc;
            for (j = 0; j < N; ++j)
                c[j] = beta == 0.0f ? 0.0f : beta * c[j];
        }
        if (bias != NULL || act != GRAPHC_ACT_NONE)
            epilogue(M, N, C, ldc, bias, act);
        return;
    }
    p.transa = transa != 0; p.transb = transb != 0;
    p.M = M; p.N = N; p.K = K;
    p.alpha = alpha; p.beta = beta;
    p.A = A; p.B = B; p.C = C;
    p.lda = lda; p.ldb = ldb; p.ldc = ldc;
    p.bias = bias; p.act = act;
    p.pack_a = pack_a; p.pack_ctx = pack_ctx; p.row0 = 0;
    p.direct_a = packed_b != NULL && pack_a == NULL; /* B ready (inference): A is an activation, small and hot */
    p.packed_b = packed_b ? align64((float *)packed_b) : NULL; /* (where graphc_sgemm_pack_b put it) */
    if (M < SMALL_M && pack_a == NULL) {
        /* B's packed copy where given: each thread's columns are one contiguous stream per K block, where B
         * itself is read in pieces of rows (measured at batch 1, 2 threads: Dense 512 x 216 4.5 -> 3.5 us,
         * 1600 x 128 10-13 -> 8.5 us) */
        const int packed = p.packed_b != NULL && g == &impl_simd; /* (the packed layout is impl_simd's) */
#ifdef _OPENMP
        /* one row keeps C in registers: then a second core's cache bandwidth pays off early */
        const double min_work = M == 1 && (!p.transb || packed) ? (double)PARALLEL_MIN_WORK_ONE_ROW
                                                                 : (double)PARALLEL_MIN_WORK_FEW_ROWS;
        int threads = team_size(M, N, K, min_work, scratch);
        if (threads > N / 64) /* at least 64 columns (4 cache lines per row of B) each */
            threads = N / 64;
        if (threads > 1) {
#pragma omp parallel num_threads(threads)
            {
                const int t = omp_get_thread_num();
                int j0, j1;
                /* in whole packed panels (32 columns for AVX-512), where B is packed */
                const int step = packed ? g->nr : 16;
                share((N + step - 1) / step, step, N, t, omp_get_num_threads(), &j0, &j1);
                if (j1 > j0 && packed)
                    gemm_few_rows_packed(&p, kc_step(g, K), p.packed_b, j0, j1);
                else if (j1 > j0)
                    gemm_few_rows(&p, j0, j1, graphc_scratch_region(scratch, t));
            }
            return;
        }
#endif
        if (packed)
            gemm_few_rows_packed(&p, kc_step(g, K), p.packed_b, 0, N);
        else
            gemm_few_rows(&p, 0, N, scratch != NULL ? scratch->base : NULL);
        return;
    }
    a_floats = a_block_floats(g, M, K);
#ifdef _OPENMP
    {
        const int threads = team_size(M, N, K, (double)PARALLEL_MIN_WORK, scratch);
        if (threads > 1) {
            gemm_parallel(g, threads, &p, scratch, a_floats);
            return;
        }
    }
#endif
    gemm_serial(g, &p, scratch->base, scratch->base + a_floats);
}

static void gemm_driver(const gemm_impl *g, int transa, int transb, int M, int N, int K, float alpha,
                        const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc,
                        const float *bias, int act, const graphc_scratch *scratch)
{
    gemm_driver_fn(g, transa, transb, M, N, K, alpha, A, lda, NULL, NULL, B, ldb, NULL, beta, C, ldc, bias, act,
                   scratch);
}

size_t graphc_sgemm_scratch_floats(int64_t M, int64_t N, int64_t K)
{
    size_t portable, simd, few;
    if (M <= 0 || N <= 0 || K <= 0)
        return 0;
    /* the few-rows path: op(A)'s rows of one K chunk (with transa and transb); larger M need at least as
     * much, so that a bound for M covers every smaller product */
    few = graphc_scratch_round((size_t)((M < SMALL_M ? M : SMALL_M - 1) * (K < SMALL_M_KCHUNK ? K : SMALL_M_KCHUNK)));
    if (M < SMALL_M)
        return few;
    portable = a_block_floats(&impl_portable, M, K) + b_block_floats(&impl_portable, N, K);
    simd = a_block_floats(&impl_simd, M, K) + b_block_floats(&impl_simd, N, K);
    portable = portable > simd ? portable : simd;
    return portable > few ? portable : few;
}

size_t graphc_sgemm_implicit_scratch_floats(int64_t M, int64_t N, int64_t K)
{
    if (M <= 0 || N <= 0 || K <= 0)
        return 0;
    return a_block_floats(&impl_simd, M, K) + b_block_floats(&impl_simd, N, K);
}

/* ------------------------------------------------------------------------------------------------ */
/* B packed once (graphc_sgemm_pack_b), multiplied many times (graphc_sgemm_with_packed_b). The packed
 * buffer holds gemm_serial's (jc, pc) blocks of op(B) in loop order, each as pack_b_block writes it
 * (zero-padded to whole micro-panels), from its first 64-byte boundary: block (jc, pc) starts at
 * jc * K + pc * ncp floats, ncp = nc rounded up to NR (every earlier jc block is a full NC, a multiple
 * of NR). Always this build's fastest micro-kernel, serial: the callers (recurrent kernels) run one
 * product per timestep on each thread of their own team. */
#if defined(V_NR)
#define PACKED_NR V_NR
#else
#define PACKED_NR P_NR
#endif

static size_t round_nr(int n) { return (size_t)((n + PACKED_NR - 1) / PACKED_NR) * PACKED_NR; }

size_t graphc_sgemm_packed_b_size(int K, int N)
{
    return (K > 0 && N > 0 ? (size_t)K * round_nr(N) : 0) + 16; /* + 16: room to align the start */
}

void graphc_sgemm_pack_b_stacked(int K1, const float *B1, int K2, const float *B2, int N, int ldb, float *packed)
{
    const gemm_impl *g = &impl_simd;
    const int K = K1 + K2;
    float *Bp = align64(packed);
    int jc, pc, k;
    for (jc = 0; jc < N; jc += NC) {
        const int nc = N - jc < NC ? N - jc : NC;
        const int kcs = kc_step(g, K);
        for (pc = 0; pc < K; pc += kcs) {
            const int kc = K - pc < kcs ? K - pc : kcs;
            float *blk = Bp + (size_t)jc * K + (size_t)pc * round_nr(nc);
            for (k = pc; k < pc + kc; k++) { /* row k of the block, as pack_b's one row */
                const float *row = (k < K1 ? B1 + (size_t)k * ldb : B2 + (size_t)(k - K1) * ldb) + jc;
                pack_b(1, nc, g->nr, row, ldb, blk + (size_t)(k - pc) * g->nr, (size_t)g->nr * kc);
            }
        }
    }
}

/* Panels [q0, q1) of graphc_sgemm_pack_b's layout, counted over its (jc, pc) blocks in order, each block's
 * panels left to right: a range of them is a range of B's rows (a block's panels share its rows). */
static void pack_b_panels(const gemm_args *p, int K, int N, float *Bp, long q0, long q1)
{
    const gemm_impl *g = &impl_simd;
    const int nr = g->nr, kcs = kc_step(g, K);
    long q = 0;
    int jc, pc;
    for (jc = 0; jc < N && q < q1; jc += NC) {
        const int nc = N - jc < NC ? N - jc : NC, panels = (nc + nr - 1) / nr;
        for (pc = 0; pc < K && q < q1; pc += kcs, q += panels) {
            const int kc = K - pc < kcs ? K - pc : kcs;
            float *blk = Bp + (size_t)jc * K + (size_t)pc * round_nr(nc);
            const int first = q0 > q ? (int)(q0 - q) : 0, last = q1 < q + panels ? (int)(q1 - q) : panels;
            if (first < last) {
                const int j0 = first * nr, j1 = last * nr < nc ? last * nr : nc;
                pack_b_block(p, pc, kc, jc + j0, j1 - j0, nr, blk + (size_t)j0 * kc);
            }
        }
    }
}

void graphc_sgemm_pack_b(int transb, int K, int N, const float *B, int ldb, float *packed)
{
    graphc_sgemm_pack_b_threads(transb, K, N, B, ldb, packed, 1);
}

void graphc_sgemm_pack_b_threads(int transb, int K, int N, const float *B, int ldb, float *packed, int nthreads)
{
    const gemm_impl *g = &impl_simd;
    const int kcs = kc_step(g, K), panels = (NC + g->nr - 1) / g->nr;
    long total = 0;
    gemm_args p;
    int jc;
    if (K <= 0 || N <= 0)
        return;
    p.transb = transb != 0;
    p.B = B;
    p.ldb = ldb;
    for (jc = 0; jc < N; jc += NC) /* panels of every (jc, pc) block */
        total += (long)((K + kcs - 1) / kcs) * (N - jc < NC ? (N - jc + g->nr - 1) / g->nr : panels);
#ifdef _OPENMP
    /* a share of at least 64K floats each (a thread's wake-up costs about as much as copying 16K) */
    if (nthreads > (long)K * N / 65536)
        nthreads = (int)((long)K * N / 65536);
    if (nthreads > 1 && !omp_in_parallel()) {
        /* static shares of the panels in layout order: thread t packs a band of B's rows, as a row-split
         * optimizer update of B (a training step) leaves them in its cache */
#pragma omp parallel num_threads(nthreads)
        {
            const int t = omp_get_thread_num(), team = omp_get_num_threads();
            pack_b_panels(&p, K, N, align64(packed), total * t / team, total * (t + 1) / team);
        }
        return;
    }
#else
    (void)nthreads;
#endif
    pack_b_panels(&p, K, N, align64(packed), 0, total);
}

/* out[0..m)[0..PACKED_NR) = A rows (m <= 3) x one packed micro-panel over kc; even and odd k in separate
 * sums (twice the independent FMA chains). */
static inline void few_rows_panel(int m, int kc, const float *A, int lda, const float *bp, float *out)
{
    float e0[PACKED_NR] = {0.0f}, e1[PACKED_NR] = {0.0f}, e2[PACKED_NR] = {0.0f};
    float o0[PACKED_NR] = {0.0f}, o1[PACKED_NR] = {0.0f}, o2[PACKED_NR] = {0.0f};
    const float *a0 = A, *a1 = m > 1 ? A + lda : A, *a2 = m > 2 ? A + 2 * (size_t)lda : A;
    int j, k;
    for (k = 0; k + 2 <= kc; k += 2) {
        const float *b = bp + (size_t)k * PACKED_NR, *c = b + PACKED_NR;
        for (j = 0; j < PACKED_NR; ++j) {
            e0[j] += a0[k] * b[j];
            o0[j] += a0[k + 1] * c[j];
        }
        if (m > 1)
            for (j = 0; j < PACKED_NR; ++j) {
                e1[j] += a1[k] * b[j];
                o1[j] += a1[k + 1] * c[j];
            }
        if (m > 2)
            for (j = 0; j < PACKED_NR; ++j) {
                e2[j] += a2[k] * b[j];
                o2[j] += a2[k + 1] * c[j];
            }
    }
    if (k < kc) {
        const float *b = bp + (size_t)k * PACKED_NR;
        for (j = 0; j < PACKED_NR; ++j) {
            e0[j] += a0[k] * b[j];
            e1[j] += a1[k] * b[j];
            e2[j] += a2[k] * b[j];
        }
    }
    for (j = 0; j < PACKED_NR; ++j) {
        out[j] = e0[j] + o0[j];
        out[PACKED_NR + j] = e1[j] + o1[j];
        out[2 * PACKED_NR + j] = e2[j] + o2[j];
    }
}

/* M < SMALL_M rows: the micro-kernel would compute a whole MR-row tile for them, so the packed panels
 * are streamed once with the rows' own dot products instead. Columns [j0, j1) (j0 a multiple of PACKED_NR):
 * each K block's panels of them are one contiguous stretch of Bp. The epilogue (bias, activation) follows
 * the last K block. */
static void gemm_few_rows_packed(const gemm_args *p, int kc_block, const float *Bp, int j0, int j1)
{
    float out[3 * PACKED_NR];
    int jc, pc, jr, i, j;
    for (jc = j0 / NC * NC; jc < j1; jc += NC) {
        const int nc = p->N - jc < NC ? p->N - jc : NC;
        const int r0 = j0 > jc ? j0 - jc : 0, r1 = j1 < jc + nc ? j1 - jc : nc; /* the part in this block */
        for (pc = 0; pc < p->K; pc += kc_block) {
            const int kc = p->K - pc < kc_block ? p->K - pc : kc_block;
            const float *blk = Bp + (size_t)jc * p->K + (size_t)pc * round_nr(nc);
            const float beta = pc == 0 ? p->beta : 1.0f; /* later K blocks accumulate onto C */
            for (jr = r0; jr < r1; jr += PACKED_NR) {
                const int n = r1 - jr < PACKED_NR ? r1 - jr : PACKED_NR;
                const float *a = p->A + pc;
                switch (p->M) {
                case 1: few_rows_panel(1, kc, a, p->lda, blk + (size_t)jr * kc, out); break;
                case 2: few_rows_panel(2, kc, a, p->lda, blk + (size_t)jr * kc, out); break;
                default: few_rows_panel(3, kc, a, p->lda, blk + (size_t)jr * kc, out); break;
                }
                for (i = 0; i < p->M; ++i) {
                    float *c = p->C + (size_t)i * (size_t)p->ldc + jc + jr;
                    const float *t = out + (size_t)i * PACKED_NR;
                    if (beta == 0.0f)
                        for (j = 0; j < n; ++j)
                            c[j] = p->alpha * t[j];
                    else
                        for (j = 0; j < n; ++j)
                            c[j] = p->alpha * t[j] + beta * c[j];
                }
                if (pc + kc >= p->K && (p->bias != NULL || p->act != GRAPHC_ACT_NONE))
                    epilogue(p->M, n, p->C + jc + jr, p->ldc, p->bias ? p->bias + jc + jr : NULL, p->act);
            }
        }
    }
}

int graphc_sgemm_packed_nr(void) { return PACKED_NR; }

void graphc_sgemm_with_packed_b_columns(int M, int N, int K, int j0, int j1, float alpha, const float *A, int lda,
                                        const float *packed, float beta, float *C, int ldc,
                                        const graphc_scratch *scratch)
{
    const gemm_impl *g = &impl_simd;
    const float *Bp = align64((float *)packed);
    gemm_args p;
    int jc, pc;
    j1 = j1 < N ? j1 : N;
    if (M <= 0 || j0 >= j1 || j0 < 0 || j0 % PACKED_NR != 0)
        return;
    if (K <= 0 || alpha == 0.0f) { /* C = beta * C: A and B are not read (as gemm_driver) */
        gemm_driver(g, 0, 0, M, j1 - j0, 0, alpha, A, lda, NULL, N, beta, C + j0, ldc, NULL, GRAPHC_ACT_NONE, NULL);
        return;
    }
    p.transa = 0; p.transb = 0;
    p.M = M; p.N = N; p.K = K;
    p.alpha = alpha; p.beta = beta;
    p.A = A; p.B = NULL; p.C = C;
    p.lda = lda; p.ldb = N; p.ldc = ldc;
    p.bias = NULL; p.act = GRAPHC_ACT_NONE;
    p.pack_a = NULL; p.pack_ctx = NULL; p.row0 = 0;
    p.direct_a = 1; /* its callers' A (a recurrent step's rows, Winograd's transformed tiles) is small and hot */
    if (M < SMALL_M) {
        gemm_few_rows_packed(&p, kc_step(g, K), Bp, j0, j1);
        return;
    }
    for (jc = j0 / NC * NC; jc < j1; jc += NC) { /* the NC blocks that hold [j0, j1), each as packed */
        const int nc = N - jc < NC ? N - jc : NC;
        const int r0 = j0 > jc ? j0 - jc : 0, r1 = j1 < jc + nc ? j1 - jc : nc; /* the part in this block */
        const int kcs = kc_step(g, K);
        for (pc = 0; pc < K; pc += kcs) {
            const int kc = K - pc < kcs ? K - pc : kcs;
            const float *blk = Bp + (size_t)jc * K + (size_t)pc * round_nr(nc);
            gemm_macro(g, &p, 0, M, jc + r0, r1 - r0, pc, kc, blk + (size_t)r0 * kc, scratch->base);
        }
    }
}

void graphc_sgemm_with_packed_b(int M, int N, int K, float alpha, const float *A, int lda, const float *packed,
                                float beta, float *C, int ldc, const graphc_scratch *scratch)
{
    graphc_sgemm_with_packed_b_columns(M, N, K, 0, N, alpha, A, lda, packed, beta, C, ldc, scratch);
}

/* ------------------------------------------------------------------------------------------------ */
/* Public entry points. */

void graphc_sgemm_ex(int transa, int transb, int M, int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc, const graphc_scratch *scratch)
{
    gemm_driver(&impl_simd, transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, NULL, GRAPHC_ACT_NONE,
                scratch);
}

void graphc_sgemm_ex_portable(int transa, int transb, int M, int N, int K, float alpha, const float *A, int lda,
                              const float *B, int ldb, float beta, float *C, int ldc, const graphc_scratch *scratch)
{
    gemm_driver(&impl_portable, transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, NULL,
                GRAPHC_ACT_NONE, scratch);
}

void graphc_sgemm(int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                  float beta, float *C, int ldc, const graphc_scratch *scratch)
{
    graphc_sgemm_ex(0, 0, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, scratch);
}

void graphc_sgemm_portable(int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                           float beta, float *C, int ldc, const graphc_scratch *scratch)
{
    graphc_sgemm_ex_portable(0, 0, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, scratch);
}

void graphc_sgemm_bias_act(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                           const float *bias, int act, float *C, int ldc, const graphc_scratch *scratch)
{
    gemm_driver(&impl_simd, 0, 0, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc, bias, act, scratch);
}

void graphc_sgemm_bias_act_portable(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                                    const float *bias, int act, float *C, int ldc, const graphc_scratch *scratch)
{
    gemm_driver(&impl_portable, 0, 0, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc, bias, act, scratch);
}

void graphc_sgemm_implicit(int M, int N, int K, graphc_pack_a_fn pack_a, const void *ctx, const float *B, int ldb,
                           const float *packed_b, float beta, const float *bias, int act, float *C, int ldc,
                           const graphc_scratch *scratch)
{
    gemm_driver_fn(&impl_simd, 0, 0, M, N, K, 1.0f, NULL, K, pack_a, ctx, B, ldb, packed_b, beta, C, ldc, bias, act,
                   scratch);
}

void graphc_sgemm_bias_act_prepacked(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                                     const float *packed_b, const float *bias, int act, float *C, int ldc,
                                     const graphc_scratch *scratch)
{
    gemm_driver_fn(&impl_simd, 0, 0, M, N, K, 1.0f, A, lda, NULL, NULL, B, ldb, packed_b, 0.0f, C, ldc, bias, act,
                   scratch);
}

const char *graphc_sgemm_kernel_name(void) { return impl_simd.name; }
