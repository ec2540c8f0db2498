/* Recurrent layers over a whole sequence (see graphc_rnn.h).
 *
 * For a block of samples and a chunk of timesteps that fit the thread's scratch buffer:
 *   1. proj[t] = x[:, t] @ kernel + bias for every t of the chunk: GEMMs with many rows;
 *   2. per step: z = proj[t] + h @ recurrent (accumulated into proj[t], or a step buffer where the
 *      GRU needs the recurrent part alone), then one pass applies the gates and updates h (and c).
 * The projection is stored time-major, (chunk, rows, k*units), so each step reads one contiguous
 * (rows, k*units) block. The per-step product has as many rows as the block has samples: with few
 * rows (batch 1 is a matrix-vector product) a register-tiled kernel reads the recurrent kernel in
 * place, since packing it for the GEMM would cost as much as the product itself.
 * Threads: a batch of at least as many samples as threads is split by samples (run_rows: no thread waits
 * for another). Fewer samples than threads split the units instead (run_units: each thread computes the
 * same columns of every gate, and the threads meet once per step).
 * Each region of the caller's scratch holds the GEMMs' scratch, then the projections and step buffer,
 * then the packed recurrent kernel (all of it for the GEMM, or a thread's columns for run_units), then
 * run_units' second h (rnn_plan: sized for the call, the same in the kernel and its sizing).
 */
#include "graphc_rnn.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "graphc_kernels.h"
#include "graphc_nn.h"

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__unix__) || defined(__APPLE__)
#include <sched.h> /* sched_yield, for run_units' wait */
#endif

/* The per-step tiles use AVX2+FMA intrinsics where the build targets them, else portable C. */
#if defined(__AVX2__) && defined(__FMA__) && !defined(GRAPHC_FORCE_PORTABLE)
#define RNN_AVX2 1
#include <immintrin.h>
#else
#define RNN_AVX2 0
#endif

#if defined(__GNUC__) && !defined(__clang__)
/* In ISO C mode GCC neither turns float comparisons into vector selects (the activations would stay
 * scalar) nor contracts a * b + c into FMA instructions: allow both here. The first only stops modelling
 * floating-point exception flags; the second rounds once instead of twice. */
#pragma GCC optimize("no-trapping-math", "fp-contract=fast")
#endif

#define SCRATCH GRAPHC_RNN_SCRATCH_FLOATS
#define MIN_CHUNK 8          /* timesteps projected together at least, when the batch block allows */
#define SMALL_ROWS 8         /* per-step products with up to this many rows skip the packed GEMM */
#define PARALLEL_MIN (1L << 22) /* multiply-adds of a whole call below which it stays on one thread */
/* Splitting the units of a few samples between threads (run_units) costs a barrier per step: it pays from
 * this many multiply-adds per step and per call, with at least UNITS_PER_THREAD units per thread. */
#define UNITS_STEP_MIN (1L << 15)
#define UNITS_CALL_MIN (1L << 19)
#define UNITS_PER_THREAD 16
#define DONE_STRIDE 16 /* floats: run_units' step counters, one per cache line */

void graphc_rnn_product_init(graphc_rnn_product *r, int transb, int K, int N, const float *B, int ldb, float **buf,
                             size_t *left, const graphc_scratch *scratch)
{
    const size_t need = graphc_sgemm_packed_b_size(K, N);
    r->transb = transb, r->K = K, r->N = N, r->ldb = ldb, r->B = B, r->packed = NULL, r->scratch = scratch;
    if (need <= *left) {
        if (*buf != NULL) { /* else only counting */
            graphc_sgemm_pack_b(transb, K, N, B, ldb, *buf);
            r->packed = *buf;
            *buf += need;
        }
        *left -= need;
    }
}

void graphc_rnn_product_run(const graphc_rnn_product *r, int m, const float *A, int lda, float beta, float *C,
                            int ldc)
{
    if (r->packed != NULL)
        graphc_sgemm_with_packed_b(m, r->N, r->K, 1.0f, A, lda, r->packed, beta, C, ldc, r->scratch);
    else
        graphc_sgemm_ex(0, r->transb, m, r->N, r->K, 1.0f, A, lda, r->B, r->ldb, beta, C, ldc, r->scratch);
}

enum { CELL_SIMPLE, CELL_LSTM, CELL_GRU };

typedef struct {
    int cell, features, units, gates, act, ract, backwards, reset_after;
    int64_t batch, steps;
    const float *x, *kernel, *recurrent, *packed_recurrent, *bias, *h0, *c0;
    const float *mask; /* (batch, steps), time order, or NULL: a sample's step with 0 keeps its states */
    float *seq, *h, *c;
} problem;

/* Whether sample n skips processing step s (its mask is 0 there): its h and c stay as they were. */
static int skips(const problem *p, int64_t n, int64_t s)
{
    return p->mask != NULL && p->mask[n * p->steps + (p->backwards ? p->steps - 1 - s : s)] == 0.0f;
}

/* ---------------------------------------------------------------------------------------------- */
/* Activations. The sigmoid uses a polynomial exp that vectorizes (libm's expf does not): Cephes' expf
 * (relative error about 2 ulp), with Cody-Waite range reduction. tanh is a rational function, x P(x^2) /
 * Q(x^2) on |x| <= 9 (beyond, tanh rounds to +-1 in float32): a minimax fit in relative error (7e-9 before
 * float32 rounding) made by kernels/tools/fit_tanh.py. One division and no exp, where tanh from exp needed
 * both branches, a polynomial near 0 and 1 - 2 / (exp(2|x|) + 1) elsewhere: 2.8x faster. */

#define TANH_P0 9.999999934e-01f
#define TANH_P1 1.308400973e-01f
#define TANH_P2 3.103955780e-03f
#define TANH_P3 1.115430329e-05f
#define TANH_P4 -2.022520363e-08f
#define TANH_P5 5.277937153e-11f
#define TANH_P6 -8.488681005e-14f
#define TANH_Q1 4.641733683e-01f
#define TANH_Q2 2.449517671e-02f
#define TANH_Q3 2.546144560e-04f

static inline float exp_approx(float x)
{
    float n, r, p, y;
    union { int32_t bits; float value; } scale; /* a union, not memcpy: GCC vectorizes it */
    y = x > 88.0f ? 88.0f : x; /* comparisons, not fmaxf: NaN passes through */
    y = y < -87.0f ? -87.0f : y;
    n = floorf(y * 1.44269504088896341f + 0.5f);
    n = n == n ? n : 0.0f; /* NaN: keep the conversion below defined; r carries the NaN */
    r = y - n * 0.693359375f + n * 2.12194440e-4f;
    p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    scale.bits = ((int32_t)n + 127) * 8388608; /* 2^n as a float's exponent field (n in [-126, 127]) */
    /* past the clamps: overflow to infinity, underflow to zero (below float's normal range) */
    return x > 88.72283f ? INFINITY : x < -87.33654f ? 0.0f : p * scale.value;
}

static inline float sigmoid_approx(float x) { return 1.0f / (1.0f + exp_approx(-x)); }

static inline float tanh_approx(float x)
{
    const float y = x > 9.0f ? 9.0f : x < -9.0f ? -9.0f : x, s = y * y; /* comparisons: NaN passes */
    const float p = (((((TANH_P6 * s + TANH_P5) * s + TANH_P4) * s + TANH_P3) * s + TANH_P2) * s + TANH_P1) * s + TANH_P0;
    /* at the clamps, +-1 exactly (y / 9: the ratio there is 1 - 2 ulp) */
    return s >= 81.0f ? y * (1.0f / 9.0f) : y * p / (((TANH_Q3 * s + TANH_Q2) * s + TANH_Q1) * s + 1.0f);
}

#if RNN_AVX2
/* The same functions eight lanes at a time (GCC's own vectorization of the scalar code above spills). */

/* exp for the sigmoid's 1 / (1 + exp(-x)): below -87 it returns exp(-87), which the 1 + rounds away like
 * the true value. n = round(y / ln 2) by adding and subtracting 1.5 * 2^23, whose low bits then hold n. */
static inline __m256 sigmoid_exp8(__m256 x)
{
    const __m256 magic = _mm256_set1_ps(12582912.0f);
    /* min/max return their second operand when one is NaN: NaN passes through the clamps */
    const __m256 y = _mm256_max_ps(_mm256_set1_ps(-87.0f), _mm256_min_ps(_mm256_set1_ps(88.0f), x));
    const __m256 shifted = _mm256_fmadd_ps(y, _mm256_set1_ps(1.44269504088896341f), magic);
    const __m256 n = _mm256_sub_ps(shifted, magic);
    const __m256i scale = _mm256_add_epi32(_mm256_slli_epi32(_mm256_castps_si256(shifted), 23),
                                           _mm256_set1_epi32(127 << 23)); /* 2^n */
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), y), p;
    r = _mm256_fmadd_ps(n, _mm256_set1_ps(2.12194440e-4f), r);
    p = _mm256_fmadd_ps(_mm256_set1_ps(1.9875691500e-4f), r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    p = _mm256_mul_ps(p, _mm256_castsi256_ps(scale));
    return _mm256_blendv_ps(p, _mm256_set1_ps(INFINITY), _mm256_cmp_ps(x, _mm256_set1_ps(88.72283f), _CMP_GT_OQ));
}

static inline __m256 sigmoid8(__m256 x)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    return _mm256_div_ps(one, _mm256_add_ps(one, sigmoid_exp8(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

static inline __m256 tanh8(__m256 x)
{
    const __m256 y = _mm256_max_ps(_mm256_set1_ps(-9.0f), _mm256_min_ps(_mm256_set1_ps(9.0f), x));
    const __m256 s = _mm256_mul_ps(y, y);
    __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(TANH_P6), s, _mm256_set1_ps(TANH_P5)), q;
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(TANH_P4));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(TANH_P3));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(TANH_P2));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(TANH_P1));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(TANH_P0));
    q = _mm256_fmadd_ps(_mm256_set1_ps(TANH_Q3), s, _mm256_set1_ps(TANH_Q2));
    q = _mm256_fmadd_ps(q, s, _mm256_set1_ps(TANH_Q1));
    q = _mm256_fmadd_ps(q, s, _mm256_set1_ps(1.0f));
    return _mm256_blendv_ps(_mm256_div_ps(_mm256_mul_ps(y, p), q), _mm256_mul_ps(y, _mm256_set1_ps(1.0f / 9.0f)),
                            _mm256_cmp_ps(s, _mm256_set1_ps(81.0f), _CMP_GE_OQ)); /* at the clamps, +-1 exactly */
}
#endif

void graphc_rnn_activate(int activation, float *v, int64_t n)
{
    int64_t i = 0;
#if RNN_AVX2
    /* one loop per function: a choice inside the loop cost 5-9% */
    if (activation == GRAPHC_RNN_ACT_TANH)
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(v + i, tanh8(_mm256_loadu_ps(v + i)));
    else if (activation == GRAPHC_RNN_ACT_SIGMOID)
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(v + i, sigmoid8(_mm256_loadu_ps(v + i)));
    else if (activation == GRAPHC_RNN_ACT_SILU)
        for (; i + 8 <= n; i += 8) {
            const __m256 x = _mm256_loadu_ps(v + i);
            _mm256_storeu_ps(v + i, _mm256_mul_ps(x, sigmoid8(x)));
        }
    v += i, n -= i; /* the scalar loops below finish the tail */
#endif
    switch (activation) {
    case GRAPHC_RNN_ACT_IDENTITY:
        break;
    case GRAPHC_RNN_ACT_TANH:
        for (i = 0; i < n; i++) v[i] = tanh_approx(v[i]);
        break;
    case GRAPHC_RNN_ACT_SIGMOID:
        for (i = 0; i < n; i++) v[i] = sigmoid_approx(v[i]);
        break;
    case GRAPHC_RNN_ACT_HARD_SIGMOID:
        for (i = 0; i < n; i++) {
            const float y = v[i] * (1.0f / 6.0f) + 0.5f;
            v[i] = y < 0.0f ? 0.0f : y > 1.0f ? 1.0f : y;
        }
        break;
    case GRAPHC_RNN_ACT_RELU:
        for (i = 0; i < n; i++) v[i] = v[i] < 0.0f ? 0.0f : v[i];
        break;
    case GRAPHC_RNN_ACT_RELU6:
        for (i = 0; i < n; i++) v[i] = v[i] < 0.0f ? 0.0f : v[i] > 6.0f ? 6.0f : v[i];
        break;
    case GRAPHC_RNN_ACT_EXP:
        for (i = 0; i < n; i++) v[i] = expf(v[i]);
        break;
    case GRAPHC_RNN_ACT_ELU:
        for (i = 0; i < n; i++) v[i] = v[i] > 0.0f ? v[i] : expm1f(v[i]);
        break;
    case GRAPHC_RNN_ACT_SELU:
        for (i = 0; i < n; i++)
            v[i] = 1.0507009873554805f * (v[i] > 0.0f ? v[i] : 1.6732632423543772f * expm1f(v[i]));
        break;
    case GRAPHC_RNN_ACT_SOFTPLUS:
        for (i = 0; i < n; i++) v[i] = (v[i] > 0.0f ? v[i] : 0.0f) + log1pf(expf(-fabsf(v[i])));
        break;
    case GRAPHC_RNN_ACT_SOFTSIGN:
        for (i = 0; i < n; i++) v[i] = v[i] / (1.0f + fabsf(v[i]));
        break;
    case GRAPHC_RNN_ACT_SILU:
        for (i = 0; i < n; i++) v[i] = v[i] * sigmoid_approx(v[i]);
        break;
    case GRAPHC_RNN_ACT_GELU:
        for (i = 0; i < n; i++) v[i] = 0.5f * v[i] * (1.0f + erff(v[i] * 0.7071067811865476f));
        break;
    case GRAPHC_RNN_ACT_LEAKY_RELU:
        for (i = 0; i < n; i++) v[i] = v[i] >= 0.0f ? v[i] : 0.2f * v[i];
        break;
    default:
        break;
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* C (m x n) = beta * C + A (m x k) @ B (k x n), row-major with leading dimensions; beta is 0 or 1. */

#if RNN_AVX2
/* One row against 64 columns: eight accumulators hide the FMA latency. (Inlined: called, the per-step
 * products at batch 1 took 6% longer.) */
static inline __attribute__((always_inline)) void tile_1x64(int k, const float *a, const float *B, int ldb, float beta,
                                                             float *c)
{
    __m256 acc[8];
    int p, j;
    for (j = 0; j < 8; j++) acc[j] = beta != 0.0f ? _mm256_loadu_ps(c + 8 * j) : _mm256_setzero_ps();
    for (p = 0; p < k; p++) {
        const __m256 ap = _mm256_broadcast_ss(a + p);
        const float *b = B + (size_t)p * (size_t)ldb;
        for (j = 0; j < 8; j++) acc[j] = _mm256_fmadd_ps(ap, _mm256_loadu_ps(b + 8 * j), acc[j]);
    }
    for (j = 0; j < 8; j++) _mm256_storeu_ps(c + 8 * j, acc[j]);
}

/* Four rows against 16 columns: each row of B is loaded once for four rows of A. */
static void tile_4x16(int k, const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    __m256 c00, c01, c10, c11, c20, c21, c30, c31;
    const float *a0 = A, *a1 = A + lda, *a2 = A + 2 * (size_t)lda, *a3 = A + 3 * (size_t)lda;
    float *r0 = C, *r1 = C + ldc, *r2 = C + 2 * (size_t)ldc, *r3 = C + 3 * (size_t)ldc;
    int p;
    if (beta != 0.0f) {
        c00 = _mm256_loadu_ps(r0), c01 = _mm256_loadu_ps(r0 + 8), c10 = _mm256_loadu_ps(r1);
        c11 = _mm256_loadu_ps(r1 + 8), c20 = _mm256_loadu_ps(r2), c21 = _mm256_loadu_ps(r2 + 8);
        c30 = _mm256_loadu_ps(r3), c31 = _mm256_loadu_ps(r3 + 8);
    } else {
        c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = _mm256_setzero_ps();
    }
    for (p = 0; p < k; p++) {
        const float *b = B + (size_t)p * (size_t)ldb;
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        __m256 a = _mm256_broadcast_ss(a0 + p);
        c00 = _mm256_fmadd_ps(a, b0, c00), c01 = _mm256_fmadd_ps(a, b1, c01);
        a = _mm256_broadcast_ss(a1 + p);
        c10 = _mm256_fmadd_ps(a, b0, c10), c11 = _mm256_fmadd_ps(a, b1, c11);
        a = _mm256_broadcast_ss(a2 + p);
        c20 = _mm256_fmadd_ps(a, b0, c20), c21 = _mm256_fmadd_ps(a, b1, c21);
        a = _mm256_broadcast_ss(a3 + p);
        c30 = _mm256_fmadd_ps(a, b0, c30), c31 = _mm256_fmadd_ps(a, b1, c31);
    }
    _mm256_storeu_ps(r0, c00), _mm256_storeu_ps(r0 + 8, c01), _mm256_storeu_ps(r1, c10);
    _mm256_storeu_ps(r1 + 8, c11), _mm256_storeu_ps(r2, c20), _mm256_storeu_ps(r2 + 8, c21);
    _mm256_storeu_ps(r3, c30), _mm256_storeu_ps(r3 + 8, c31);
}
#else
/* Portable C versions of the two tiles (compilers vectorize the column loops). */
static void tile_1x64(int k, const float *a, const float *B, int ldb, float beta, float *c)
{
    float acc[64];
    int p, j;
    for (j = 0; j < 64; j++) acc[j] = beta != 0.0f ? c[j] : 0.0f;
    for (p = 0; p < k; p++) {
        const float ap = a[p];
        const float *b = B + (size_t)p * (size_t)ldb;
        for (j = 0; j < 64; j++) acc[j] += ap * b[j];
    }
    for (j = 0; j < 64; j++) c[j] = acc[j];
}

static void tile_4x16(int k, const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    float acc[4][16];
    int p, i, j;
    for (i = 0; i < 4; i++)
        for (j = 0; j < 16; j++) acc[i][j] = beta != 0.0f ? C[(size_t)i * ldc + j] : 0.0f;
    for (p = 0; p < k; p++) {
        const float *b = B + (size_t)p * (size_t)ldb;
        for (i = 0; i < 4; i++) {
            const float a = A[(size_t)i * lda + p];
            for (j = 0; j < 16; j++) acc[i][j] += a * b[j];
        }
    }
    for (i = 0; i < 4; i++)
        for (j = 0; j < 16; j++) C[(size_t)i * ldc + j] = acc[i][j];
}
#endif

/* Any row against up to 64 columns (the edges of the tiles above). */
static void tile_edge(int k, int n, const float *a, const float *B, int ldb, float beta, float *c)
{
    float acc[64];
    int p, j;
    for (j = 0; j < n; j++) acc[j] = beta != 0.0f ? c[j] : 0.0f;
    for (p = 0; p < k; p++) {
        const float ap = a[p];
        const float *b = B + (size_t)p * (size_t)ldb;
        for (j = 0; j < n; j++) acc[j] += ap * b[j];
    }
    for (j = 0; j < n; j++) c[j] = acc[j];
}

static void small_gemm(int m, int n, int k, const float *A, int lda, const float *B, int ldb, float beta, float *C,
                       int ldc)
{
    int i = 0, j;
    for (; i + 4 <= m && m > 1; i += 4) {
        const float *a = A + (size_t)i * (size_t)lda;
        float *c = C + (size_t)i * (size_t)ldc;
        for (j = 0; j + 16 <= n; j += 16) tile_4x16(k, a, lda, B + j, ldb, beta, c + j, ldc);
        if (j < n) {
            int r;
            for (r = 0; r < 4; r++)
                tile_edge(k, n - j, a + (size_t)r * (size_t)lda, B + j, ldb, beta, c + (size_t)r * (size_t)ldc + j);
        }
    }
    for (; i < m; i++) {
        const float *a = A + (size_t)i * (size_t)lda;
        float *c = C + (size_t)i * (size_t)ldc;
        for (j = 0; j + 64 <= n; j += 64) tile_1x64(k, a, B + j, ldb, beta, c + j);
        if (j < n) tile_edge(k, n - j, a, B + j, ldb, beta, c + j);
    }
}

/* The per-step product with r (B not transposed): few rows read B in place, more rows use B packed once
 * per call (see run_rows). */
static void step_gemm(const graphc_rnn_product *r, int m, const float *A, int lda, float beta, float *C, int ldc)
{
    if (m <= SMALL_ROWS)
        small_gemm(m, r->N, r->K, A, lda, r->B, r->ldb, beta, C, ldc);
    else
        graphc_rnn_product_run(r, m, A, lda, beta, C, ldc);
}

/* ---------------------------------------------------------------------------------------------- */
/* The gate math of one sample for n units. Gate g's pre-activations (x @ kernel + bias + h @ recurrent)
 * are at z + g * zs: zs is units when a thread holds whole rows, and its own unit count when the threads
 * share the units of a row (run_units). h, c, hprev point at the sample's first unit of those n. */

static void simple_cell(const problem *p, float *z, int n, float *h)
{
    graphc_rnn_activate(p->act, z, n);
    memcpy(h, z, (size_t)n * sizeof(float));
}

/* Keras's default cell (sigmoid gates, tanh candidate and output) in one pass: eight units at a time stay in
 * registers from their four pre-activations to their new c and h; with keep (training), the four gates'
 * activations go there (gate g at keep + g * zs, as in z; may be z itself), for the backward. Returns 0 for
 * other activations. */
static inline int lstm_cell_standard(int act, int ract, const float *z, int zs, int n, float *h, float *c,
                                     float *keep)
{
    const float *gi = z, *gf = z + zs, *gc = z + 2 * (size_t)zs, *go = z + 3 * (size_t)zs;
    /* (no arithmetic on a NULL keep: even a zero offset from it is undefined) */
    float *ki = keep, *kf = keep ? keep + zs : NULL, *kc = keep ? kf + zs : NULL, *ko = keep ? kc + zs : NULL;
    int j = 0;
    if (act != GRAPHC_RNN_ACT_TANH || ract != GRAPHC_RNN_ACT_SIGMOID) return 0;
#if RNN_AVX2
    for (; j + 8 <= n; j += 8) {
        const __m256 i = sigmoid8(_mm256_loadu_ps(gi + j)), f = sigmoid8(_mm256_loadu_ps(gf + j));
        const __m256 g = tanh8(_mm256_loadu_ps(gc + j)), o = sigmoid8(_mm256_loadu_ps(go + j));
        const __m256 cj = _mm256_fmadd_ps(f, _mm256_loadu_ps(c + j), _mm256_mul_ps(i, g));
        _mm256_storeu_ps(c + j, cj);
        _mm256_storeu_ps(h + j, _mm256_mul_ps(o, tanh8(cj)));
        if (keep != NULL) {
            _mm256_storeu_ps(ki + j, i);
            _mm256_storeu_ps(kf + j, f);
            _mm256_storeu_ps(kc + j, g);
            _mm256_storeu_ps(ko + j, o);
        }
    }
#endif
    for (; j < n; j++) {
        const float i = sigmoid_approx(gi[j]), f = sigmoid_approx(gf[j]), g = tanh_approx(gc[j]);
        const float o = sigmoid_approx(go[j]);
        c[j] = f * c[j] + i * g;
        h[j] = o * tanh_approx(c[j]);
        if (keep != NULL) ki[j] = i, kf[j] = f, kc[j] = g, ko[j] = o;
    }
    return 1;
}

int graphc_lstm_cell_standard(int act, int ract, const float *z, int zs, int n, float *h, float *c)
{
    return lstm_cell_standard(act, ract, z, zs, n, h, c, NULL);
}

int graphc_lstm_cell_standard_train(int act, int ract, const float *z, int zs, int n, float *h, float *c, float *a)
{
    return lstm_cell_standard(act, ract, z, zs, n, h, c, a);
}

/* Its backward in one pass (for kernels/rnn_grad.c): from a, the gates' activations i, f, g, o as the training
 * forward kept them (graphc_lstm_cell_standard_train), and tanh(c) recomputed,
 *   d = dc + dh o (1 - tanh(c)^2),  dz = [d g i(1-i), d c_prev f(1-f), d i (1-g^2), dh tanh(c) o(1-o)],
 *   dc = d f
 * with c this step's cell state, cp the previous one (NULL: zeros), dz's gates at dz + g * zs as z's. The
 * products are grouped as the unfused path's (graphc_rnn_activate_grad after the chain rule's factors). */
int graphc_lstm_cell_standard_grad(int act, int ract, const float *a, int zs, const float *c, const float *cp, int n,
                                   const float *dh, float *dc, float *dz)
{
    const float *gi = a, *gf = a + zs, *gc = a + 2 * (size_t)zs, *go = a + 3 * (size_t)zs;
    int j = 0;
    if (act != GRAPHC_RNN_ACT_TANH || ract != GRAPHC_RNN_ACT_SIGMOID) return 0;
#if RNN_AVX2
    for (; j + 8 <= n; j += 8) {
        const __m256 one = _mm256_set1_ps(1.0f);
        const __m256 i = _mm256_loadu_ps(gi + j), f = _mm256_loadu_ps(gf + j);
        const __m256 g = _mm256_loadu_ps(gc + j), o = _mm256_loadu_ps(go + j);
        const __m256 tc = tanh8(_mm256_loadu_ps(c + j)), h = _mm256_loadu_ps(dh + j);
        const __m256 dtc = _mm256_mul_ps(_mm256_mul_ps(h, o), _mm256_fnmadd_ps(tc, tc, one));
        const __m256 d = _mm256_add_ps(_mm256_loadu_ps(dc + j), dtc);
        const __m256 df = cp != NULL /* (no previous state: 0, even where d is not finite, as the scalar tail) */
                              ? _mm256_mul_ps(_mm256_mul_ps(d, _mm256_loadu_ps(cp + j)),
                                              _mm256_mul_ps(f, _mm256_sub_ps(one, f)))
                              : _mm256_setzero_ps();
        _mm256_storeu_ps(dz + j, _mm256_mul_ps(_mm256_mul_ps(d, g), _mm256_mul_ps(i, _mm256_sub_ps(one, i))));
        _mm256_storeu_ps(dz + zs + j, df);
        _mm256_storeu_ps(dz + 2 * (size_t)zs + j, _mm256_mul_ps(_mm256_mul_ps(d, i), _mm256_fnmadd_ps(g, g, one)));
        _mm256_storeu_ps(dz + 3 * (size_t)zs + j,
                         _mm256_mul_ps(_mm256_mul_ps(h, tc), _mm256_mul_ps(o, _mm256_sub_ps(one, o))));
        _mm256_storeu_ps(dc + j, _mm256_mul_ps(d, f));
    }
#endif
    for (; j < n; j++) {
        const float i = gi[j], f = gf[j], g = gc[j], o = go[j], tc = tanh_approx(c[j]);
        const float d = dc[j] + dh[j] * o * (1.0f - tc * tc);
        dz[j] = d * g * (i * (1.0f - i));
        dz[zs + j] = cp != NULL ? d * cp[j] * (f * (1.0f - f)) : 0.0f;
        dz[2 * (size_t)zs + j] = d * i * (1.0f - g * g);
        dz[3 * (size_t)zs + j] = dh[j] * tc * (o * (1.0f - o));
        dc[j] = d * f;
    }
    return 1;
}

static void lstm_cell(const problem *p, float *z, int zs, int n, float *h, float *c)
{
    const float *gi = z, *gf = z + zs, *gc = z + 2 * (size_t)zs, *go = z + 3 * (size_t)zs;
    int j;
    if (graphc_lstm_cell_standard(p->act, p->ract, z, zs, n, h, c)) return;
    graphc_rnn_activate(p->ract, z, n);                   /* i */
    graphc_rnn_activate(p->ract, z + zs, n);              /* f */
    graphc_rnn_activate(p->act, z + 2 * (size_t)zs, n);   /* candidate */
    graphc_rnn_activate(p->ract, z + 3 * (size_t)zs, n);  /* o */
    for (j = 0; j < n; j++) {
        c[j] = gf[j] * c[j] + gi[j] * gc[j];
        h[j] = c[j];
    }
    graphc_rnn_activate(p->act, h, n);
    for (j = 0; j < n; j++) h[j] *= go[j];
}

/* A GRU with reset_after: w holds h @ recurrent (its gates at the same zs as z), rb its bias (gate g at
 * rb + g * units) or NULL. candidate = act(x_h + r * (h @ U_h + b_h)); h = z * hprev + (1 - z) * candidate. */
static void gru_cell(const problem *p, float *z, float *w, const float *rb, int zs, int n, const float *hprev,
                     float *h)
{
    float *gz = z, *gr = z + zs, *gc = z + 2 * (size_t)zs;
    int g, j;
    if (rb != NULL)
        for (g = 0; g < 3; g++)
            for (j = 0; j < n; j++) w[(size_t)g * zs + j] += rb[(size_t)g * p->units + j];
    for (g = 0; g < 2; g++)
        for (j = 0; j < n; j++) z[(size_t)g * zs + j] += w[(size_t)g * zs + j];
    graphc_rnn_activate(p->ract, gz, n);
    graphc_rnn_activate(p->ract, gr, n);
    for (j = 0; j < n; j++) gc[j] += gr[j] * w[2 * (size_t)zs + j];
    graphc_rnn_activate(p->act, gc, n);
    for (j = 0; j < n; j++) h[j] = gz[j] * hprev[j] + (1.0f - gz[j]) * gc[j];
}

/* One step for `m` rows: z (m x G) holds x @ kernel + bias; h, c (m x units) are updated in place;
 * work is the step buffer (m x G for a GRU with reset_after, m x units without); rp the products with
 * the recurrent kernel (all of it, or for a GRU without reset_after its z, r columns and its h columns). */

/* One step of the row path. zero_h: h is the zero initial state (no h0 given, first step), so its products
 * with the recurrent kernel are zero and are skipped (1/T of an LSTM's products: 3.6% at T = 28). */
static void step_simple(const problem *p, const graphc_rnn_product *rp, int m, float *z, float *h, int zero_h,
                        int64_t n0, int64_t s)
{
    const int u = p->units;
    int i;
    if (!zero_h) step_gemm(rp, m, h, u, 1.0f, z, u);
    if (p->mask == NULL) {
        simple_cell(p, z, m * u, h);
        return;
    }
    for (i = 0; i < m; i++)
        if (!skips(p, n0 + i, s)) simple_cell(p, z + (size_t)i * u, u, h + (size_t)i * u);
}

static void step_lstm(const problem *p, const graphc_rnn_product *rp, int m, float *z, float *h, float *c,
                      int zero_h, int64_t n0, int64_t s)
{
    const int u = p->units, G = 4 * u;
    int i;
    if (!zero_h) step_gemm(rp, m, h, u, 1.0f, z, G);
    for (i = 0; i < m; i++)
        if (!skips(p, n0 + i, s)) lstm_cell(p, z + (size_t)i * G, u, u, h + (size_t)i * u, c + (size_t)i * u);
}

static void step_gru(const problem *p, const graphc_rnn_product *rp, int m, float *z, float *work, float *h,
                     int zero_h, int64_t n0, int64_t s)
{
    const int u = p->units, G = 3 * u;
    int i, j;
    if (p->reset_after) {
        const float *rb = p->bias != NULL ? p->bias + G : NULL; /* recurrent bias */
        if (zero_h) memset(work, 0, (size_t)m * G * sizeof(float));
        else step_gemm(rp, m, h, u, 0.0f, work, G);
        for (i = 0; i < m; i++) {
            float *hi = h + (size_t)i * u;
            if (!skips(p, n0 + i, s)) gru_cell(p, z + (size_t)i * G, work + (size_t)i * G, rb, u, u, hi, hi);
        }
        return;
    }
    /* candidate = act(x_h + (r * h) @ U_h): the product needs all of r * h first */
    if (!zero_h) step_gemm(rp, m, h, u, 1.0f, z, G);
    for (i = 0; i < m; i++) {
        float *zi = z + (size_t)i * G;
        const float *hi = h + (size_t)i * u;
        float *wi = work + (size_t)i * u;
        graphc_rnn_activate(p->ract, zi, 2 * (int64_t)u);
        for (j = 0; j < u; j++) wi[j] = zi[u + j] * hi[j];
    }
    if (!zero_h) step_gemm(rp + 1, m, work, u, 1.0f, z + 2 * u, G); /* (r * 0 = 0) */
    for (i = 0; i < m; i++) {
        float *zi = z + (size_t)i * G, *hi = h + (size_t)i * u;
        if (skips(p, n0 + i, s)) continue;
        graphc_rnn_activate(p->act, zi + 2 * u, u);
        for (j = 0; j < u; j++) hi[j] = zi[j] * hi[j] + (1.0f - zi[j]) * zi[2 * u + j];
    }
}

/* ---------------------------------------------------------------------------------------------- */

static int step_buffer_floats(const problem *p)
{
    if (p->cell != CELL_GRU) return 0;
    return p->reset_after ? p->gates * p->units : p->units;
}

/* Columns [col, col + n) of the projection x @ kernel + bias for samples n0 .. n0+m-1 and timesteps t0 ..
 * t0+len-1, into proj (timestep r, sample i at proj + (r * m + i) * ld, plus out): GEMMs with the most
 * rows. The whole projection is col 0, n = ld = G, out 0. */
static void project(const problem *p, int64_t n0, int m, int64_t t0, int len, int col, int n, float *proj, int ld,
                    int out, const graphc_scratch *gs)
{
    const int F = p->features, G = p->gates * p->units;
    const float *x0 = p->x + ((size_t)n0 * (size_t)p->steps + (size_t)t0) * (size_t)F;
    const float *bias = p->bias != NULL ? p->bias + col : NULL;
    int r, i;
    if (m >= len) {
        for (r = 0; r < len; r++)
            graphc_sgemm_bias_act(m, n, F, x0 + (size_t)r * F, (int)(p->steps * F), p->kernel + col, G, bias,
                                  GRAPHC_ACT_NONE, proj + (size_t)r * m * ld + out, ld, gs);
    } else {
        for (i = 0; i < m; i++)
            graphc_sgemm_bias_act(len, n, F, x0 + (size_t)i * (size_t)p->steps * F, F, p->kernel + col, G, bias,
                                  GRAPHC_ACT_NONE, proj + (size_t)i * ld + out, m * ld, gs);
    }
}

/* A call's use of each region of its scratch: the GEMMs' scratch (projections and per-step products), the
 * projections of a block of samples and a chunk of steps with the step buffer, the packed recurrent kernel
 * (not with few rows: their per-step products read it in place). */
typedef struct {
    int64_t block;                    /* samples per block at most */
    size_t gemm, buf, pack, hnext, done, total; /* floats */
} rnn_plan;

/* The products with the recurrent kernel (rp[0], and rp[1] for a GRU without reset_after), packed into buf
 * while left allows (buf NULL: only counted); returns the floats left. */
static size_t recurrent_products(const problem *p, graphc_rnn_product *rp, float *buf, size_t left,
                                 const graphc_scratch *gs)
{
    const int u = p->units, G = p->gates * u;
    if (p->cell == CELL_GRU && !p->reset_after) {
        graphc_rnn_product_init(&rp[0], 0, u, 2 * u, p->recurrent, G, &buf, &left, gs);
        graphc_rnn_product_init(&rp[1], 0, u, u, p->recurrent + 2 * u, G, &buf, &left, gs);
    } else {
        graphc_rnn_product_init(&rp[0], 0, u, G, p->recurrent, G, &buf, &left, gs);
    }
    return left;
}

/* Floats of a thread's columns of the recurrent kernel packed for run_units: the largest share of any team
 * of two or more threads, or 0 when it would not fit GRAPHC_RNN_PACK_FLOATS (the product then reads the
 * kernel in place). */
static size_t units_pack_floats(const problem *p)
{
    const int64_t half = 8 * (((p->units + 7) / 8 + 1) / 2), share = half < p->units ? half : p->units;
    const size_t floats = (size_t)p->gates * (size_t)share * (size_t)p->units;
    return floats <= GRAPHC_RNN_PACK_FLOATS ? floats : 0;
}

/* Whether rows samples of an LSTM or SimpleRNN take the input projection into each step's product,
 * z_t = [x_t | h] @ [kernel; recurrent] + bias (K = features + units), where projecting all steps first
 * (K = features) wrote zs to memory and each step read it back: LSTM-28's steps at 64 rows 99 -> 92 us
 * (harness, one thread). Not for few rows (their products read the kernel in place), nor for a GRU (its
 * candidate takes the recurrent part apart). */
static int fused_projection(const problem *p, int64_t rows)
{
    return (p->cell == CELL_LSTM || p->cell == CELL_SIMPLE) && rows > SMALL_ROWS &&
           graphc_sgemm_packed_b_size(p->features + p->units, p->gates * p->units) <= GRAPHC_RNN_PACK_FLOATS;
}

static rnn_plan plan_rnn(const problem *p)
{
    const int64_t u = p->units, G = p->gates * u, S = step_buffer_floats(p), T = p->steps;
    const int64_t min_chunk = T < MIN_CHUNK ? (T > 0 ? T : 1) : MIN_CHUNK;
    const int64_t m = p->batch; /* rows of a thread at most (a team of one) */
    graphc_rnn_product rp[2];
    rnn_plan plan;
    int64_t rows, buf;
    plan.block = SCRATCH / (min_chunk * G + S);
    if (plan.block < 1) plan.block = 1; /* then a chunk of one step fits (checked by the caller) */
    rows = m < plan.block ? m : plan.block;
    /* a block of rows and a chunk of steps fitting SCRATCH: all T steps when they fit */
    buf = rows * (S + (T > 0 ? T : 1) * G);
    plan.buf = graphc_scratch_round((size_t)(buf < SCRATCH ? buf : SCRATCH));
    plan.pack = m > SMALL_ROWS ? GRAPHC_RNN_PACK_FLOATS - recurrent_products(p, rp, NULL, GRAPHC_RNN_PACK_FLOATS, NULL)
                               : units_pack_floats(p);
    if (fused_projection(p, m)) { /* [x_t | h] (rows x (F + u)) and z (rows x G); [kernel; recurrent] packed */
        const size_t xh = graphc_scratch_round((size_t)(rows * (p->features + u)));
        const size_t both = graphc_sgemm_packed_b_size(p->features + p->units, (int)G);
        if (xh + (size_t)(rows * G) > plan.buf) plan.buf = graphc_scratch_round(xh + (size_t)(rows * G));
        if (both > plan.pack) plan.pack = both;
    }
    plan.pack = graphc_scratch_round(plan.pack);
    plan.hnext = m <= SMALL_ROWS ? graphc_scratch_round((size_t)(m * u)) : 0; /* run_units' second h */
    /* run_units' step counters: one 64-byte line per thread of its largest team */
    plan.done = m <= SMALL_ROWS ? (size_t)DONE_STRIDE * (size_t)(u / UNITS_PER_THREAD > 1 ? u / UNITS_PER_THREAD : 1) : 0;
    /* projections: GEMMs of a block's rows or of a chunk's steps; per step: rows x G x units */
    plan.gemm = graphc_sgemm_scratch_floats(rows > T ? rows : T, G, p->features);
    if (graphc_sgemm_scratch_floats(rows, G, u) > plan.gemm) plan.gemm = graphc_sgemm_scratch_floats(rows, G, u);
    if (graphc_sgemm_scratch_floats(rows, G, p->features + u) > plan.gemm)
        plan.gemm = graphc_sgemm_scratch_floats(rows, G, p->features + u);
    plan.total = plan.gemm + plan.buf + plan.pack + plan.hnext + plan.done;
    return plan;
}

/* Initial states of samples [n0, n0 + m): h0 and c0, or zeros. */
static void initial_states(const problem *p, int64_t n0, int m, float *h, float *c)
{
    const int u = p->units;
    if (p->h0 != NULL) memcpy(h, p->h0 + (size_t)n0 * u, (size_t)m * u * sizeof(float));
    else memset(h, 0, (size_t)m * u * sizeof(float));
    if (c != NULL) {
        if (p->c0 != NULL) memcpy(c, p->c0 + (size_t)n0 * u, (size_t)m * u * sizeof(float));
        else memset(c, 0, (size_t)m * u * sizeof(float));
    }
}

/* With return_sequences, the h of samples [n0, n0 + m) after processing step s into seq. */
static void store_sequence(const problem *p, int64_t n0, int m, int64_t s, const float *h)
{
    const int u = p->units;
    int i;
    if (p->seq != NULL)
        for (i = 0; i < m; i++)
            memcpy(p->seq + ((size_t)(n0 + i) * (size_t)p->steps + (size_t)s) * u, h + (size_t)i * u,
                   (size_t)u * sizeof(float));
}

/* run_rows with the projection in each step's product (fused_projection): per step, the rows of x_t and h are
 * copied side by side into xh, then z = xh @ [kernel; recurrent] + bias, then the cell. */
static void run_rows_fused(const problem *p, const rnn_plan *plan, int64_t r0, int64_t r1, float *region,
                           const graphc_scratch *gs)
{
    const int u = p->units, G = p->gates * u, F = p->features, K = F + u;
    const int64_t T = p->steps;
    float *xh = region + plan->gemm, *both = xh + plan->buf;
    int64_t n0, s;
    int i;
    graphc_sgemm_pack_b_stacked(F, p->kernel, u, p->recurrent, G, G, both);
    for (n0 = r0; n0 < r1; n0 += plan->block) {
        const int m = (int)(r1 - n0 < plan->block ? r1 - n0 : plan->block);
        float *z = xh + graphc_scratch_round((size_t)m * K);
        float *h = p->h + (size_t)n0 * u, *c = p->c != NULL ? p->c + (size_t)n0 * u : NULL;
        initial_states(p, n0, m, h, c);
        for (s = 0; s < T; s++) {
            const int64_t t = p->backwards ? T - 1 - s : s;
            for (i = 0; i < m; i++) {
                memcpy(xh + (size_t)i * K, p->x + ((size_t)(n0 + i) * T + t) * F, (size_t)F * sizeof(float));
                memcpy(xh + (size_t)i * K + F, h + (size_t)i * u, (size_t)u * sizeof(float));
            }
            /* (B is only read through its packed copy: the kernel stands in for it) */
            graphc_sgemm_bias_act_prepacked(m, G, K, xh, K, p->kernel, G, both, p->bias, GRAPHC_ACT_NONE, z, G, gs);
            for (i = 0; i < m; i++) {
                if (skips(p, n0 + i, s)) continue;
                if (p->cell == CELL_LSTM) lstm_cell(p, z + (size_t)i * G, u, u, h + (size_t)i * u, c + (size_t)i * u);
                else simple_cell(p, z + (size_t)i * G, u, h + (size_t)i * u);
            }
            store_sequence(p, n0, m, s, h);
        }
    }
}

/* The whole sequence for samples [r0, r1), in region (this thread's) with GEMM scratch gs. */
static void run_rows(const problem *p, const rnn_plan *plan, int64_t r0, int64_t r1, float *region,
                     const graphc_scratch *gs)
{
    const int u = p->units, G = p->gates * u, S = step_buffer_floats(p);
    const int64_t T = p->steps, block = plan->block;
    float *buf = region + plan->gemm;
    int64_t n0;
    graphc_rnn_product rp[2];
    if (fused_projection(p, r1 - r0)) {
        run_rows_fused(p, plan, r0, r1, region, gs);
        return;
    }
    recurrent_products(p, rp, buf + plan->buf, r1 - r0 > SMALL_ROWS ? plan->pack : 0, gs);

    for (n0 = r0; n0 < r1; n0 += block) {
        const int m = (int)(r1 - n0 < block ? r1 - n0 : block);
        const int64_t fit = (SCRATCH - (int64_t)m * S) / ((int64_t)m * G);
        const int chunk = (int)(T < fit ? T : fit);
        float *proj = buf, *work = buf + (size_t)chunk * m * G;
        float *h = p->h + (size_t)n0 * u, *c = p->c != NULL ? p->c + (size_t)n0 * u : NULL;
        int64_t s0;
        int j;
        initial_states(p, n0, m, h, c);
        for (s0 = 0; s0 < T; s0 += chunk) {
            const int len = (int)(T - s0 < chunk ? T - s0 : chunk);
            /* processing steps s0 .. s0+len-1 read timesteps t0 .. t0+len-1, in reverse when going backwards */
            project(p, n0, m, p->backwards ? T - s0 - len : s0, len, 0, G, proj, G, 0, gs);
            for (j = 0; j < len; j++) {
                float *z = proj + (size_t)(p->backwards ? len - 1 - j : j) * m * G;
                const int zero_h = p->h0 == NULL && s0 + j == 0;
                if (p->cell == CELL_LSTM) step_lstm(p, rp, m, z, h, c, zero_h, n0, s0 + j);
                else if (p->cell == CELL_GRU) step_gru(p, rp, m, z, work, h, zero_h, n0, s0 + j);
                else step_simple(p, rp, m, z, h, zero_h, n0, s0 + j);
                store_sequence(p, n0, m, s0 + j, h);
            }
        }
    }
}

/* Columns [j0, j0 + n) of every gate of the recurrent kernel (units x gates*units), gate after gate, as panels
 * of 64 of them (the last narrower), each units x width contiguous floats. */
static void pack_columns(const float *recurrent, int units, int gates, int j0, int n, float *dst)
{
    const int G = gates * units, Gn = gates * n;
    int c0, r, c, len;
    for (c0 = 0; c0 < Gn; c0 += 64) {
        const int w = Gn - c0 < 64 ? Gn - c0 : 64;
        float *panel = dst + (size_t)c0 * units;
        for (c = 0; c < w; c += len) { /* runs of the panel's columns within one gate */
            const int g = (c0 + c) / n, k = (c0 + c) - g * n;
            const float *src = recurrent + (size_t)g * units + j0 + k;
            len = n - k < w - c ? n - k : w - c;
            for (r = 0; r < units; r++)
                memcpy(panel + (size_t)r * w + c, src + (size_t)r * G, (size_t)len * sizeof(float));
        }
    }
}

/* The whole recurrent kernel as pack_columns' panels: run_units reads a thread's columns from it (see
 * unit_columns). */
size_t graphc_rnn_packed_recurrent_floats(int units, int gates)
{
    return (size_t)units * (size_t)gates * (size_t)units;
}

void graphc_rnn_pack_recurrent(int units, int gates, const float *recurrent, float *packed)
{
    pack_columns(recurrent, units, gates, 0, units, packed);
}

#ifdef _OPENMP /* the unit split needs a team (without OpenMP every call runs run_rows) */
/* Units [j0, j1) of thread t of team: ranges of whole blocks of `block` units (the last ends at units). */
static void unit_range(int units, int block, int t, int team, int *j0, int *j1)
{
    const int64_t blocks = (units + block - 1) / block;
    const int a = block * (int)(blocks * t / team), b = block * (int)(blocks * (t + 1) / team);
    *j0 = a < units ? a : units;
    *j1 = b < units ? b : units;
}

/* run_units' product for its n units of every gate: out (m x Gn, gate g's units at g * n) (+)= h (m x units)
 * @ those columns of the recurrent kernel, read as panels of 64 columns, units x 64 contiguous floats each
 * (read in place, the columns of a gate are rows of 256 bytes strided by the kernel's width, and the per-step
 * product ran 1.5x slower). The caller's packed_recurrent (graphc_rnn_pack_recurrent) has them when every
 * thread's units are the same number of whole panels of each gate (prepared_panels); else each call packs a
 * thread's columns, when the plan has room (a thread's 128 KB at LSTM(128): 5% of a call of 28 steps). */
typedef struct {
    int n, Gn, prepared;  /* prepared: packed is the caller's packed_recurrent, else this call's packing */
    const float *packed;  /* NULL: neither */
} unit_columns;

/* Whether run_units reads the caller's packed_recurrent: units in whole 64-unit panels, as many per thread. */
static int prepared_panels(const problem *p, int team)
{
    return p->packed_recurrent != NULL && p->units % 64 == 0 && (p->units / 64) % team == 0;
}

static void pack_unit_columns(const problem *p, int j0, int n, float *buf, unit_columns *uc)
{
    uc->n = n, uc->Gn = p->gates * n, uc->prepared = 0, uc->packed = buf;
    if (buf != NULL) pack_columns(p->recurrent, p->units, p->gates, j0, n, buf);
}

/* The product by panels of 64 columns of out, in reverse order when reverse is set. Steps alternate the
 * order, so that a step starts on the panels the step before read last, which L1 still holds: 32 KB of a
 * thread's 128 KB at LSTM(128), where the product streams the rest from L2 at ~30 bytes a cycle (LSTM at
 * batch 1: T = 28 -3%, T = 784 -4%). Panel q holds this thread's columns [64 q, 64 q + 64): in its own packing
 * the q-th panel, in the caller's the panel of those units of their gate. */
static void unit_product(const problem *p, const unit_columns *uc, int j0, int m, const float *h, float beta,
                         float *out, int reverse)
{
    const int u = p->units, G = p->gates * u, n = uc->n, Gn = uc->Gn, panels = (Gn + 63) / 64;
    int i, g, q;
    if (uc->packed == NULL) {
        for (g = 0; g < p->gates; g++)
            small_gemm(m, n, u, h, u, p->recurrent + (size_t)g * u + j0, G, beta, out + g * n, Gn);
        return;
    }
    for (i = 0; i < m; i++)
        for (q = 0; q < panels; q++) {
            const int c0 = 64 * (reverse ? panels - 1 - q : q), w = Gn - c0 < 64 ? Gn - c0 : 64;
            /* (prepared: n is a multiple of 64, so c0 is within gate c0 / n) */
            const size_t col = uc->prepared ? (size_t)(c0 / n) * u + j0 + c0 % n : (size_t)c0;
            const float *panel = uc->packed + col * u;
            float *o = out + (size_t)i * Gn + c0;
            if (w == 64) tile_1x64(u, h + (size_t)i * u, panel, 64, beta, o);
            else tile_edge(u, w, h + (size_t)i * u, panel, w, beta, o);
        }
}

/* run_units' meeting after each step, a barrier made of one counter per thread (done, each on its own
 * line): thread t publishes how many steps it has finished, then waits until every other thread has
 * finished as many. OpenMP's barrier, where every thread updates one shared counter, cost 4-10% of a
 * batch-1 LSTM. The wait spins, and yields the core after a long wait (another process may hold the
 * thread it waits for). */
static void finish_step(int64_t *done, int t, int team, int64_t steps)
{
    int64_t seen;
    long spins;
    int o;
    GRAPHC_OMP(omp flush) /* this thread's units of h before its count */
    GRAPHC_OMP(omp atomic write)
    done[t * (DONE_STRIDE / 2)] = steps;
    for (o = 0; o < team; o++)
        for (spins = 0; o != t; spins++) {
            GRAPHC_OMP(omp atomic read)
            seen = done[o * (DONE_STRIDE / 2)];
            if (seen >= steps) break;
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
            __builtin_ia32_pause(); /* leaves the core's other hyperthread its share while waiting */
#endif
#if defined(__unix__) || defined(__APPLE__)
            if (spins >= 1000) sched_yield(); /* about 20 us: the other thread is not running */
#endif
        }
    GRAPHC_OMP(omp flush) /* the other threads' units of h after their counts */
}

/* Few samples and several threads (batch 1 above all): thread t of team owns units [j0, j1) of every gate,
 * so its gate math needs no other thread's columns. It projects its own columns of the input, and per step
 * multiplies all of h by its columns of the recurrent kernel, applies the gates to its units and writes
 * them into the next h. The team meets once per step, since the next product reads every unit. h
 * alternates between p->h and hnext (thread 0's region), so no thread writes the h another still reads. */
static void run_units(const problem *p, const rnn_plan *plan, float *region, float *hnext, int64_t *done, int t,
                      int team, const graphc_scratch *gs)
{
    const int u = p->units, gates = p->gates, m = (int)p->batch, prepared = prepared_panels(p, team);
    int j0, j1, n, Gn, S, chunk, i, j, g;
    const int64_t T = p->steps;
    const float *rb;
    float *proj, *work, *h = p->h, *hn = hnext, *swap;
    unit_columns uc;
    int64_t s0, fit;
    unit_range(u, prepared ? 64 : 8, t, team, &j0, &j1);
    done[t * (DONE_STRIDE / 2)] = 0;
    n = j1 - j0, Gn = gates * n;
    S = p->cell == CELL_GRU ? Gn : 0; /* the GRU's recurrent part of its columns */
    fit = Gn > 0 ? ((int64_t)plan->buf - (int64_t)m * S) / ((int64_t)m * Gn) : T;
    chunk = (int)(T < fit ? T : fit);
    rb = p->cell == CELL_GRU && p->bias != NULL ? p->bias + (size_t)gates * u + j0 : NULL;
    proj = region + plan->gemm, work = proj + (size_t)chunk * m * Gn;
    if (prepared) {
        uc.n = n, uc.Gn = Gn, uc.prepared = 1, uc.packed = p->packed_recurrent;
    } else {
        pack_unit_columns(p, j0, n, (size_t)Gn * u <= plan->pack ? proj + plan->buf : NULL, &uc);
    }
    for (i = 0; i < m; i++) { /* each thread starts its own units */
        float *hi = h + (size_t)i * u + j0, *ci = p->c != NULL ? p->c + (size_t)i * u + j0 : NULL;
        if (p->h0 != NULL) memcpy(hi, p->h0 + (size_t)i * u + j0, (size_t)n * sizeof(float));
        else memset(hi, 0, (size_t)n * sizeof(float));
        if (ci != NULL && p->c0 != NULL) memcpy(ci, p->c0 + (size_t)i * u + j0, (size_t)n * sizeof(float));
        else if (ci != NULL) memset(ci, 0, (size_t)n * sizeof(float));
    }
    GRAPHC_OMP(omp barrier)
    for (s0 = 0; s0 < T; s0 += chunk) {
        const int len = (int)(T - s0 < chunk ? T - s0 : chunk);
        for (g = 0; g < gates && n > 0; g++)
            project(p, 0, m, p->backwards ? T - s0 - len : s0, len, g * u + j0, n, proj, Gn, g * n, gs);
        for (j = 0; j < len; j++) {
            float *z = proj + (size_t)(p->backwards ? len - 1 - j : j) * m * Gn;
            if (n > 0 && p->h0 == NULL && s0 + j == 0) { /* h is zero: so are its products (see step_simple) */
                if (p->cell == CELL_GRU) memset(work, 0, (size_t)m * Gn * sizeof(float));
            } else if (n > 0) {
                if (p->cell == CELL_GRU) unit_product(p, &uc, j0, m, h, 0.0f, work, (int)((s0 + j) & 1));
                else unit_product(p, &uc, j0, m, h, 1.0f, z, (int)((s0 + j) & 1));
            }
            for (i = 0; i < m && n > 0; i++) {
                float *zi = z + (size_t)i * Gn, *hi = hn + (size_t)i * u + j0;
                if (skips(p, i, s0 + j)) memcpy(hi, h + (size_t)i * u + j0, (size_t)n * sizeof(float));
                else if (p->cell == CELL_LSTM) lstm_cell(p, zi, n, n, hi, p->c + (size_t)i * u + j0);
                else if (p->cell == CELL_GRU) gru_cell(p, zi, work + (size_t)i * Gn, rb, n, n, h + (size_t)i * u + j0, hi);
                else simple_cell(p, zi, n, hi);
                if (p->seq != NULL)
                    memcpy(p->seq + ((size_t)i * T + (size_t)(s0 + j)) * u + j0, hi, (size_t)n * sizeof(float));
            }
            finish_step(done, t, team, s0 + j + 1);
            swap = h, h = hn, hn = swap;
        }
    }
    if (h != p->h) /* the last step wrote hnext: copy this thread's units back */
        for (i = 0; i < m; i++) memcpy(p->h + (size_t)i * u + j0, h + (size_t)i * u + j0, (size_t)n * sizeof(float));
}

/* Whether run_units applies: a GRU without reset_after needs all of r * h for its candidate's product. The
 * batch must fit one block (the row path's blocks are what the plan sizes) and the step buffers. */
static int units_split_fits(const problem *p, const rnn_plan *plan)
{
    const int64_t m = p->batch, G = (int64_t)p->gates * p->units;
    return (p->cell != CELL_GRU || p->reset_after) && plan->hnext > 0 && m <= plan->block &&
           (int64_t)plan->buf >= m * (G + (p->cell == CELL_GRU ? G : 0));
}
#endif

static int fits(const problem *p) { return (int64_t)p->gates * p->units + step_buffer_floats(p) <= SCRATCH; }

static size_t scratch_floats(const problem *p) { return fits(p) && p->batch > 0 ? plan_rnn(p).total : 0; }

static int run(const problem *p, const graphc_scratch *scratch)
{
    rnn_plan plan;
    int threads = 1;
    if (!fits(p)) return -1;
    if (p->batch <= 0) return 0;
    plan = plan_rnn(p);
#ifdef _OPENMP
    {
        const double step = (double)p->batch * (double)p->gates * p->units * (double)p->units;
        const double work = (double)p->steps * (step + (double)p->batch * p->gates * p->units * (double)p->features);
        int team = graphc_scratch_threads(scratch); /* 1 inside a parallel region */
        if (p->batch < team && step >= (double)UNITS_STEP_MIN && work > (double)UNITS_CALL_MIN &&
            p->units >= 2 * UNITS_PER_THREAD && units_split_fits(p, &plan)) {
            float *hnext = scratch->base + plan.gemm + plan.buf + plan.pack; /* in thread 0's region */
            int64_t *done = (int64_t *)(hnext + plan.hnext);
            team = team < p->units / UNITS_PER_THREAD ? team : p->units / UNITS_PER_THREAD;
            GRAPHC_OMP(omp parallel num_threads(team))
            {
                const int t = omp_get_thread_num();
                graphc_scratch gs = graphc_scratch_thread(scratch, t);
                run_units(p, &plan, gs.base, hnext, done, t, omp_get_num_threads(), &gs);
            }
            return 0;
        }
        if (p->batch > 1 && work > (double)PARALLEL_MIN) {
            threads = team < p->batch ? team : (int)p->batch;
        }
    }
#endif
    /* Not an inactive parallel region (if clause) for one thread: then the GEMMs may use the threads. */
    if (threads <= 1) {
        run_rows(p, &plan, 0, p->batch, scratch->base, scratch);
        return 0;
    }
    /* Each thread runs the whole recurrence of a contiguous range of samples: no barrier per step. */
    GRAPHC_OMP(omp parallel num_threads(threads))
    {
        int t = 0, team = 1;
        graphc_scratch gs;
#ifdef _OPENMP
        t = omp_get_thread_num();
        team = omp_get_num_threads();
#endif
        gs = graphc_scratch_thread(scratch, t);
        run_rows(p, &plan, p->batch * t / team, p->batch * (t + 1) / team, gs.base, &gs);
    }
    return 0;
}

static void simple_problem(problem *p, int64_t batch, int64_t steps, int features, int units)
{
    memset(p, 0, sizeof *p);
    p->cell = CELL_SIMPLE, p->gates = 1;
    p->batch = batch, p->steps = steps, p->features = features, p->units = units;
}

static void lstm_problem(problem *p, int64_t batch, int64_t steps, int features, int units)
{
    memset(p, 0, sizeof *p);
    p->cell = CELL_LSTM, p->gates = 4;
    p->batch = batch, p->steps = steps, p->features = features, p->units = units;
}

static void gru_problem(problem *p, int64_t batch, int64_t steps, int features, int units, int reset_after)
{
    memset(p, 0, sizeof *p);
    p->cell = CELL_GRU, p->gates = 3, p->reset_after = reset_after;
    p->batch = batch, p->steps = steps, p->features = features, p->units = units;
}

size_t graphc_simple_rnn_scratch_floats(int64_t batch, int64_t steps, int features, int units)
{
    problem p;
    simple_problem(&p, batch, steps, features, units);
    return scratch_floats(&p);
}

size_t graphc_lstm_scratch_floats(int64_t batch, int64_t steps, int features, int units)
{
    problem p;
    lstm_problem(&p, batch, steps, features, units);
    return scratch_floats(&p);
}

size_t graphc_gru_scratch_floats(int64_t batch, int64_t steps, int features, int units, int reset_after)
{
    problem p;
    gru_problem(&p, batch, steps, features, units, reset_after);
    return scratch_floats(&p);
}

int graphc_simple_rnn(int64_t batch, int64_t steps, int features, int units, int activation, int go_backwards,
                      const float *x, const float *kernel, const float *recurrent, const float *packed_recurrent,
                      const float *bias, const float *h0, const float *mask, float *seq, float *h,
                      const graphc_scratch *scratch)
{
    problem p;
    simple_problem(&p, batch, steps, features, units);
    p.act = activation, p.backwards = go_backwards;
    p.x = x, p.kernel = kernel, p.recurrent = recurrent, p.packed_recurrent = packed_recurrent, p.bias = bias;
    p.h0 = h0, p.mask = mask, p.seq = seq, p.h = h;
    return run(&p, scratch);
}

int graphc_lstm(int64_t batch, int64_t steps, int features, int units, int activation, int recurrent_activation,
                int go_backwards, const float *x, const float *kernel, const float *recurrent,
                const float *packed_recurrent, const float *bias, const float *h0, const float *c0,
                const float *mask, float *seq, float *h, float *c, const graphc_scratch *scratch)
{
    problem p;
    lstm_problem(&p, batch, steps, features, units);
    p.act = activation, p.ract = recurrent_activation, p.backwards = go_backwards;
    p.x = x, p.kernel = kernel, p.recurrent = recurrent, p.packed_recurrent = packed_recurrent, p.bias = bias;
    p.h0 = h0, p.c0 = c0, p.mask = mask;
    p.seq = seq, p.h = h, p.c = c;
    return run(&p, scratch);
}

int graphc_gru(int64_t batch, int64_t steps, int features, int units, int activation, int recurrent_activation,
               int go_backwards, int reset_after, const float *x, const float *kernel, const float *recurrent,
               const float *packed_recurrent, const float *bias, const float *h0, const float *mask, float *seq,
               float *h, const graphc_scratch *scratch)
{
    problem p;
    gru_problem(&p, batch, steps, features, units, reset_after);
    p.act = activation, p.ract = recurrent_activation, p.backwards = go_backwards;
    p.x = x, p.kernel = kernel, p.recurrent = recurrent, p.packed_recurrent = packed_recurrent, p.bias = bias;
    p.h0 = h0, p.mask = mask, p.seq = seq, p.h = h;
    return run(&p, scratch);
}
