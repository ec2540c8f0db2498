/* Checks the fast SGEMM (SIMD micro-kernel and the portable one) in all four transa/transb layouts
 * and its fused bias/activation epilogue against graphc_sgemm_ref_ex (itself checked against a
 * double-precision triple loop by test_sgemm_ref) on edge tiles, block boundaries, padded leading
 * dimensions (NaN in the padding of A and B: reading it fails), alpha/beta, NaN in C with beta == 0,
 * several thread counts and concurrent callers. Every call gets scratch of exactly
 * graphc_sgemm_scratch_floats(M, N, K) floats per thread followed by a guard that must stay intact (the
 * sizing function covers what the kernels use). Prints "N passed, N failed". */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graphc_kernels.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#define SENTINEL (-12345.0f)

typedef void (*sgemm_fn)(int, int, int, float, const float *, int, const float *, int, float, float *, int,
                         const graphc_scratch *);
typedef void (*sgemm_ex_fn)(int, int, int, int, int, float, const float *, int, const float *, int, float, float *,
                            int, const graphc_scratch *);
typedef void (*bias_act_fn)(int, int, int, const float *, int, const float *, int, const float *, int, float *,
                            int, const graphc_scratch *);

static const struct {
    const char *name;
    sgemm_fn gemm;
    sgemm_ex_fn gemm_ex;
    bias_act_fn bias_act;
} paths[] = {
    {"simd", graphc_sgemm, graphc_sgemm_ex, graphc_sgemm_bias_act},
    {"portable", graphc_sgemm_portable, graphc_sgemm_ex_portable, graphc_sgemm_bias_act_portable},
};
#define NPATHS ((int)(sizeof paths / sizeof paths[0]))

static int passed = 0, failed = 0;

static unsigned long rng_state = 4242u;

static unsigned rand_u31(void)
{
    rng_state = (rng_state * 1103515245u + 12345u) & 0x7fffffffu;
    return (unsigned)rng_state;
}

static float rand_float(void) /* uniform in [-1, 1) */
{
    return (float)((double)(rand_u31() >> 8) / (double)(1u << 22)) - 1.0f;
}

static int rand_int(int lo, int hi) { return lo + (int)(rand_u31() % (unsigned)(hi - lo + 1)); }

static void *xmalloc(size_t n)
{
    void *p = calloc(n ? n : 1, 1); /* zeroed: empty (K == 0) matrices are still "read" */
    if (!p) {
        printf("FAIL: out of memory\n");
        exit(2);
    }
    return p;
}

static double dabs(double x) { return x < 0 ? -x : x; }

/* Scratch: `need` floats per thread for `threads` threads, each region followed by GUARD floats of
 * SENTINEL (inside floats_per_thread, so the kernels see them as theirs if they overstep). */
#define GUARD 16

typedef struct {
    graphc_scratch s;
    size_t need;
    void *raw;
} test_scratch;

static void scratch_open(test_scratch *t, size_t need, int threads)
{
    size_t i;
    int r;
    t->need = need;
    t->s.floats_per_thread = graphc_scratch_round(need) + GUARD;
    t->s.nthreads = threads;
    t->raw = xmalloc((t->s.floats_per_thread * (size_t)threads + 16) * sizeof(float));
    t->s.base = (float *)(((size_t)t->raw + 63u) & ~(size_t)63u);
    for (r = 0; r < threads; ++r)
        for (i = need; i < t->s.floats_per_thread; ++i)
            graphc_scratch_region(&t->s, r)[i] = SENTINEL;
}

/* Frees the scratch; 0 when every guard is intact. */
static int scratch_close(test_scratch *t, const char *what)
{
    size_t i;
    int r, bad = 0;
    for (r = 0; r < t->s.nthreads && !bad; ++r)
        for (i = t->need; i < t->s.floats_per_thread; ++i)
            if (graphc_scratch_region(&t->s, r)[i] != SENTINEL) {
                printf("FAIL %s: scratch of thread %d written past the %zu floats of graphc_sgemm_scratch_floats\n",
                       what, r, t->need);
                bad = 1;
                break;
            }
    free(t->raw);
    return bad;
}

/* The threads a call may use: the OpenMP count (what a caller sizes its scratch for). */
static int team(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static double act_ref(double x, int act)
{
    switch (act) {
    case GRAPHC_ACT_RELU: return x > 0 ? x : 0;
    case GRAPHC_ACT_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case GRAPHC_ACT_TANH: return tanh(x);
    default: return x;
    }
}

/* Problem data: A (M x lda, or K x lda when ta), B (K x ldb, or N x ldb when tb) with NaN in their row
 * padding, C_in (M x ldc) with SENTINEL in its row padding, plus the reference result and a
 * per-element error bound, both from graphc_sgemm_ref_ex. */
struct problem {
    int ta, tb;
    int M, N, K, lda, ldb, ldc;
    float alpha, beta;
    float *A, *B, *C_in, *expect, *bound;
};

static void make_problem(struct problem *p, int ta, int tb, int M, int N, int K, int pad_a, int pad_b, int pad_c,
                         float alpha, float beta, int nan_in_c)
{
    const int rows_a = ta ? K : M, cols_a = ta ? M : K, rows_b = tb ? N : K, cols_b = tb ? K : N;
    size_t na, nb, nc, i;
    float *absA, *absB, *absC;
    int r, j;
    p->ta = ta; p->tb = tb;
    p->M = M; p->N = N; p->K = K;
    p->lda = cols_a + pad_a; p->ldb = cols_b + pad_b; p->ldc = N + pad_c;
    p->alpha = alpha; p->beta = beta;
    na = (size_t)rows_a * p->lda; nb = (size_t)rows_b * p->ldb; nc = (size_t)M * p->ldc;
    p->A = xmalloc(na * sizeof(float)); p->B = xmalloc(nb * sizeof(float));
    p->C_in = xmalloc(nc * sizeof(float)); p->expect = xmalloc(nc * sizeof(float));
    p->bound = xmalloc(nc * sizeof(float));
    absA = xmalloc(na * sizeof(float)); absB = xmalloc(nb * sizeof(float)); absC = xmalloc(nc * sizeof(float));
    for (i = 0; i < na; ++i) {
        p->A[i] = (int)(i % (size_t)p->lda) < cols_a ? rand_float() : NAN; /* padding: must not be read */
        absA[i] = fabsf(p->A[i]);
    }
    for (i = 0; i < nb; ++i) {
        p->B[i] = (int)(i % (size_t)p->ldb) < cols_b ? rand_float() : NAN;
        absB[i] = fabsf(p->B[i]);
    }
    for (r = 0; r < M; ++r)
        for (j = 0; j < p->ldc; ++j)
            p->C_in[(size_t)r * p->ldc + j] = j >= N ? SENTINEL : nan_in_c ? NAN : rand_float();
    memcpy(p->expect, p->C_in, nc * sizeof(float));
    graphc_sgemm_ref_ex(ta, tb, M, N, K, alpha, p->A, p->lda, p->B, p->ldb, beta, p->expect, p->ldc);
    /* Bound: both results lie within about (K + 2) eps * (|alpha| |A| |B| + |beta| |C|) of the exact one. */
    for (i = 0; i < nc; ++i) absC[i] = beta == 0.0f ? 0.0f : fabsf(p->C_in[i]);
    graphc_sgemm_ref_ex(ta, tb, M, N, K, fabsf(alpha), absA, p->lda, absB, p->ldb, fabsf(beta), absC, p->ldc);
    for (i = 0; i < nc; ++i) p->bound[i] = (float)(2.0 * (K + 4) * FLT_EPSILON * absC[i]) + 1e-30f;
    free(absA); free(absB); free(absC);
}

static void free_problem(struct problem *p)
{
    free(p->A); free(p->B); free(p->C_in); free(p->expect); free(p->bound);
}

/* 0 when C matches expect within bound (plus extra, for activations) and the padding is intact. */
static int check(const struct problem *p, const float *C, const float *expect, double extra, const char *what,
                 int report)
{
    int i, j;
    for (i = 0; i < p->M; ++i) {
        for (j = 0; j < p->ldc; ++j) {
            const size_t at = (size_t)i * p->ldc + j;
            const float got = C[at];
            if (j >= p->N) {
                if (got != SENTINEL) {
                    if (report) printf("FAIL %s: padding C[%d][%d] was overwritten (%g)\n", what, i, j, (double)got);
                    return 1;
                }
                continue;
            }
            if (got != got || dabs((double)got - (double)expect[at]) > (double)p->bound[at] + extra) {
                if (report)
                    printf("FAIL %s: C[%d][%d] = %.8g, expected %.8g (bound %.3g)\n", what, i, j, (double)got,
                           (double)expect[at], (double)p->bound[at] + extra);
                return 1;
            }
        }
    }
    return 0;
}

static void record(int ok)
{
    if (ok) ++passed;
    else ++failed;
}

/* One GEMM problem in layout (ta, tb) through every path: graphc_sgemm_ex, and graphc_sgemm too for
 * (0, 0). corrupt: perturb one element, the checker must notice. */
static void gemm_case_t(int ta, int tb, int M, int N, int K, int pad_a, int pad_b, int pad_c, float alpha, float beta,
                        int nan_in_c, int corrupt)
{
    struct problem p;
    float *C;
    char what[220];
    int path, api;
    make_problem(&p, ta, tb, M, N, K, pad_a, pad_b, pad_c, alpha, beta, nan_in_c);
    C = xmalloc((size_t)M * p.ldc * sizeof(float) + 1);
    for (path = 0; path < NPATHS; ++path) {
        for (api = 0; api < (ta || tb ? 1 : 2); ++api) {
            test_scratch ts;
            int guard_bad;
            scratch_open(&ts, graphc_sgemm_scratch_floats(M, N, K), team());
            memcpy(C, p.C_in, (size_t)M * p.ldc * sizeof(float));
            if (api == 0)
                paths[path].gemm_ex(ta, tb, M, N, K, alpha, p.A, p.lda, p.B, p.ldb, beta, C, p.ldc, &ts.s);
            else
                paths[path].gemm(M, N, K, alpha, p.A, p.lda, p.B, p.ldb, beta, C, p.ldc, &ts.s);
            snprintf(what, sizeof what, "%s%s ta=%d tb=%d M=%d N=%d K=%d lda=%d ldb=%d ldc=%d alpha=%g beta=%g%s",
                     paths[path].name, api ? " (graphc_sgemm)" : "", ta, tb, M, N, K, p.lda, p.ldb, p.ldc,
                     (double)alpha, (double)beta, nan_in_c ? " (NaN in C)" : "");
            guard_bad = scratch_close(&ts, what);
            if (guard_bad) {
                record(0);
            } else if (corrupt) {
                C[(size_t)(M / 2) * p.ldc + N / 2] += 0.5f;
                if (!check(&p, C, p.expect, 0.0, what, 0)) {
                    printf("FAIL %s: the checker missed a wrong element\n", what);
                    record(0);
                } else {
                    record(1);
                }
            } else {
                record(!check(&p, C, p.expect, 0.0, what, 1));
            }
        }
    }
    free(C);
    free_problem(&p);
}

/* The same problem in all four layouts. */
static void gemm_case(int M, int N, int K, int pad_a, int pad_b, int pad_c, float alpha, float beta, int nan_in_c,
                      int corrupt)
{
    int trans;
    for (trans = 0; trans < 4; ++trans)
        gemm_case_t(trans >> 1, trans & 1, M, N, K, pad_a, pad_b, pad_c, alpha, beta, nan_in_c, corrupt);
}

/* alpha == 0 or K == 0: A and B must not be read, so NULL operands are fine; C = beta * C. */
static void null_operands_case(int ta, int tb, int M, int N, int K, float alpha, float beta)
{
    struct problem p;
    float *C;
    char what[160];
    int path;
    make_problem(&p, ta, tb, M, N, K, 1, 1, 2, alpha, beta, beta == 0.0f);
    C = xmalloc((size_t)M * p.ldc * sizeof(float) + 1);
    for (path = 0; path < NPATHS; ++path) { /* A and B are not read: neither is the scratch */
        memcpy(C, p.C_in, (size_t)M * p.ldc * sizeof(float));
        paths[path].gemm_ex(ta, tb, M, N, K, alpha, NULL, p.lda, NULL, p.ldb, beta, C, p.ldc, NULL);
        snprintf(what, sizeof what, "%s NULL A/B ta=%d tb=%d M=%d N=%d K=%d alpha=%g beta=%g", paths[path].name, ta,
                 tb, M, N, K, (double)alpha, (double)beta);
        record(!check(&p, C, p.expect, 0.0, what, 1));
    }
    free(C);
    free_problem(&p);
}

/* C = act(A @ B + bias) through every path; C starts as NaN, which must never be read. */
static void bias_act_case(int M, int N, int K, int pad, int with_bias, int act)
{
    struct problem p;
    float *C, *bias = NULL, *expect;
    char what[200];
    int path, i, j;
    make_problem(&p, 0, 0, M, N, K, pad, pad, pad, 1.0f, 0.0f, 1);
    expect = xmalloc((size_t)M * p.ldc * sizeof(float) + 1);
    C = xmalloc((size_t)M * p.ldc * sizeof(float) + 1);
    if (with_bias) {
        bias = xmalloc((size_t)N * sizeof(float));
        for (j = 0; j < N; ++j) bias[j] = 2.0f * rand_float();
    }
    for (i = 0; i < M; ++i)
        for (j = 0; j < p.ldc; ++j) {
            const size_t at = (size_t)i * p.ldc + j;
            expect[at] = j >= N ? SENTINEL : (float)act_ref((double)p.expect[at] + (bias ? bias[j] : 0.0), act);
        }
    for (path = 0; path < NPATHS; ++path) {
        test_scratch ts;
        int guard_bad;
        scratch_open(&ts, graphc_sgemm_scratch_floats(M, N, K), team());
        memcpy(C, p.C_in, (size_t)M * p.ldc * sizeof(float));
        paths[path].bias_act(M, N, K, p.A, p.lda, p.B, p.ldb, bias, act, C, p.ldc, &ts.s);
        snprintf(what, sizeof what, "%s bias_act M=%d N=%d K=%d pad=%d bias=%d act=%d", paths[path].name, M, N, K,
                 pad, with_bias, act);
        guard_bad = scratch_close(&ts, what);
        /* relu, sigmoid and tanh have slope <= 1: the GEMM bound carries over, plus their own rounding */
        record(!guard_bad && !check(&p, C, expect, 1e-6, what, 1));
    }
    { /* B packed ahead (a Dense kernel at inference), from an unaligned start with NaN after it */
        const size_t size = graphc_sgemm_packed_b_size(K, N);
        float *packed = xmalloc((size + 2) * sizeof(float)), *B_nan;
        test_scratch ts;
        int guard_bad;
        size_t k;
        for (k = 0; k < size + 2; ++k) packed[k] = NAN;
        graphc_sgemm_pack_b(0, K, N, p.B, p.ldb, packed + 1);
        B_nan = xmalloc((size_t)(K > 0 ? K : 1) * p.ldb * sizeof(float)); /* a B that must not be read instead */
        for (k = 0; k < (size_t)(K > 0 ? K : 1) * p.ldb; ++k) B_nan[k] = NAN; /* (few rows too read the copy) */
        scratch_open(&ts, graphc_sgemm_scratch_floats(M, N, K), team());
        memcpy(C, p.C_in, (size_t)M * p.ldc * sizeof(float));
        graphc_sgemm_bias_act_prepacked(M, N, K, p.A, p.lda, B_nan, p.ldb, packed + 1, bias, act, C, p.ldc, &ts.s);
        snprintf(what, sizeof what, "prepacked bias_act M=%d N=%d K=%d pad=%d bias=%d act=%d", M, N, K, pad,
                 with_bias, act);
        guard_bad = scratch_close(&ts, what) || packed[0] == packed[0] || packed[size + 1] == packed[size + 1];
        record(!guard_bad && !check(&p, C, expect, 1e-6, what, 1));
        free(packed); free(B_nan);
    }
    free(bias); free(C); free(expect);
    free_problem(&p);
}

/* Shapes chosen around every micro-tile (4x16 portable, 6x16 AVX2, 8x12 NEON, 14x32 AVX-512) and
 * cache block (kc = 256 or 384, NC = 1024, MC = 144..168) edge. */
static void gemm_cases(void)
{
    static const int edge_m[] = {1, 3, 4, 5, 6, 7, 8, 9, 13, 14, 15, 28, 29};
    static const int edge_n[] = {1, 7, 11, 12, 13, 15, 16, 17, 24, 31, 32, 33, 48};
    static const float alphas[] = {1.0f, 0.5f, -1.25f};
    static const float betas[] = {0.0f, 1.0f, 0.25f, -0.5f};
    int i;
    /* M, N, K, pad_a, pad_b, pad_c, alpha, beta, nan_in_c, corrupt */
    gemm_case(1, 1, 1, 0, 0, 0, 1.0f, 0.0f, 0, 0);
    gemm_case(1, 1, 1, 2, 3, 1, 2.0f, 0.5f, 0, 0);
    gemm_case(9, 11, 13, 4, 4, 4, 1.0f, 0.0f, 1, 0);   /* beta == 0 must not read C */
    gemm_case(20, 70, 300, 1, 2, 3, -1.0f, 0.0f, 1, 0); /* ... also across K blocks */
    gemm_case(2, 40, 30, 1, 2, 3, 0.5f, 0.0f, 1, 0);    /* ... and with a few rows (unpacked path) */
    gemm_case(3, 4100, 2800, 0, 1, 2, 2.0f, -1.0f, 0, 0); /* few rows, threaded over columns */
    gemm_case(2, 4200, 20, 1, 1, 1, 1.0f, 0.5f, 0, 0);   /* few rows, two column strips (4096) */
    gemm_case(1, 130, 50, 1, 2, 3, 0.5f, -0.5f, 0, 0);  /* one row: two 64-column register strips and a tail */
    gemm_case(1, 1000, 900, 0, 1, 1, 1.0f, 0.0f, 1, 0); /* one row, threaded over columns */
    gemm_case(6, 8, 0, 0, 0, 2, 1.0f, 3.0f, 0, 0);     /* K == 0: C = beta * C */
    gemm_case(6, 8, 0, 0, 0, 2, 1.0f, 0.0f, 1, 0);     /* K == 0, beta == 0: zeros */
    gemm_case(6, 8, 5, 0, 0, 2, 0.0f, 0.5f, 0, 0);     /* alpha == 0: C = beta * C */
    gemm_case(0, 8, 5, 0, 0, 0, 1.0f, 0.0f, 0, 0);     /* empty */
    gemm_case(8, 0, 5, 0, 0, 3, 1.0f, 0.0f, 0, 0);     /* empty */
    gemm_case(10, 12, 14, 1, 2, 3, 1.0f, 0.5f, 0, 1);  /* checker sanity */
    for (i = 0; i < (int)(sizeof edge_m / sizeof edge_m[0]); ++i)
        gemm_case(edge_m[i], edge_n[i], 1 + i * 3, i % 3, i % 4, i % 5, alphas[i % 3], betas[i % 4], 0, 0);
    gemm_case(17, 45, 255, 0, 0, 0, 1.0f, 0.0f, 0, 0);  /* one K block minus one */
    gemm_case(17, 45, 256, 1, 1, 1, 1.0f, 1.0f, 0, 0);  /* exactly one K block */
    gemm_case(17, 45, 257, 2, 0, 1, 0.5f, -0.5f, 0, 0); /* one step into the second K block */
    gemm_case(29, 33, 700, 0, 3, 0, 1.0f, 0.25f, 0, 0); /* three K blocks (kc = 256), two (kc = 384) */
    gemm_case(13, 40, 384, 0, 0, 1, 1.0f, 0.5f, 0, 0);  /* exactly one K block of 384 */
    gemm_case(13, 40, 385, 1, 0, 0, 1.0f, 0.0f, 0, 0);  /* one step into the second */
    gemm_case(145, 20, 30, 1, 0, 0, 1.0f, 0.0f, 0, 0);  /* past MC (AVX2) */
    gemm_case(169, 35, 30, 0, 1, 2, 1.0f, 1.0f, 0, 0);  /* past MC (AVX-512) */
    gemm_case(7, 1041, 19, 0, 5, 7, 1.0f, 0.0f, 0, 0);  /* past NC */
    gemm_case(13, 2080, 40, 3, 0, 1, -1.0f, 2.0f, 0, 0);/* two NC blocks and an edge */
    gemm_case(200, 150, 300, 1, 2, 3, 1.0f, 0.5f, 0, 0); /* threaded, rows split */
    gemm_case(40, 700, 90, 0, 0, 0, 1.0f, 0.0f, 0, 0);   /* threaded */
    gemm_case(5, 1500, 120, 1, 3, 2, 1.0f, 0.5f, 0, 0);  /* threaded, one tile row: columns split */
    gemm_case(333, 333, 333, 5, 5, 5, 0.75f, 0.0f, 0, 0);
    /* every size 1..37 in each dimension (edge tiles of every micro-kernel, in all four layouts) */
    for (i = 1; i <= 37; ++i)
        gemm_case(i, (i * 11) % 37 + 1, (i * 7) % 37 + 1, i % 4, (i + 1) % 3, i % 5, alphas[i % 3], betas[i % 4],
                  i % 8 == 0, 0);
    gemm_case(2, 100, 4500, 1, 2, 0, 1.0f, 0.5f, 0, 0);  /* few rows, K over several chunks (transb: 2048) */
    gemm_case(1, 37, 2049, 3, 0, 1, -1.0f, 0.0f, 1, 0);  /* few rows, one step into the second chunk */
    gemm_case(150, 100, 64, 3, 5, 1, 1.0f, 1.0f, 0, 0);  /* weight-gradient shape (K = batch), accumulated */
    gemm_case(64, 150, 260, 0, 3, 2, 1.0f, 0.0f, 1, 0);  /* input-gradient shape */
    for (i = 0; i < 4; ++i) { /* alpha == 0 or K == 0: A and B not read */
        null_operands_case(i >> 1, i & 1, 7, 19, 5, 0.0f, 0.5f);
        null_operands_case(i >> 1, i & 1, 2, 19, 0, 1.0f, 0.0f);
        null_operands_case(i >> 1, i & 1, 30, 40, 0, 2.0f, -1.0f);
    }
    for (i = 0; i < 40; ++i) /* random shapes */
        gemm_case(rand_int(1, 80), rand_int(1, 80), rand_int(1, 80), rand_int(0, 5), rand_int(0, 5),
                  rand_int(0, 5), alphas[rand_int(0, 2)], betas[rand_int(0, 3)], 0, 0);
}

static void bias_act_cases(void)
{
    int act;
    for (act = GRAPHC_ACT_NONE; act <= GRAPHC_ACT_TANH; ++act) {
        bias_act_case(1, 1, 1, 0, 1, act);
        bias_act_case(7, 33, 5, 2, 1, act);
        bias_act_case(15, 17, 300, 1, 0, act); /* epilogue only after the last K block */
        bias_act_case(6, 8, 0, 1, 1, act);     /* K == 0: act(bias) */
        bias_act_case(150, 130, 260, 3, 1, act); /* threaded, rows split */
        bias_act_case(40, 300, 200, 0, 1, act);  /* threaded */
        bias_act_case(5, 1500, 120, 1, 1, act);  /* threaded, columns split: bias offset per thread */
        bias_act_case(3, 4000, 2900, 0, 1, act); /* few rows, threaded over columns */
        bias_act_case(1, 200, 700, 1, 1, act);   /* one row: strips, tail, threaded */
        bias_act_case(2, 1100, 800, 0, 1, act);  /* two rows, two NC blocks, threads' columns across them */
        bias_act_case(20, 1100, 800, 1, 1, act); /* two NC blocks of columns, three K blocks, threaded */
    }
}

/* graphc_sgemm_with_packed_b_columns: C made in pieces of one and of two micro-panels of columns; then one
 * piece alone (the second panel) must leave the other columns as they were, and a start off a panel boundary
 * must write nothing. Nonzero on failure. */
static int packed_columns_case(const struct problem *p, const float *packed, float *C, int nan_in_c, const char *what)
{
    const int nr = graphc_sgemm_packed_nr(), M = p->M, N = p->N, K = p->K;
    const size_t nc = (size_t)M * p->ldc;
    int width, j0, i, j, bad = 0;
    test_scratch ts;
    scratch_open(&ts, graphc_sgemm_scratch_floats(M, N, K), 1);
    for (width = nr; width <= 2 * nr && !bad; width += nr) {
        memcpy(C, p->C_in, nc * sizeof(float));
        for (j0 = 0; j0 < N; j0 += width)
            graphc_sgemm_with_packed_b_columns(M, N, K, j0, j0 + width, p->alpha, p->A, p->lda, packed, p->beta, C,
                                               p->ldc, &ts.s);
        bad = check(p, C, p->expect, 0.0, what, 1);
    }
    if (!bad && !nan_in_c && N > nr) { /* (a NaN left in C would fail check's comparison) */
        float *want = xmalloc(nc * sizeof(float) + 1);
        memcpy(want, p->C_in, nc * sizeof(float));
        for (i = 0; i < M; ++i)
            for (j = nr; j < 2 * nr && j < N; ++j) want[(size_t)i * p->ldc + j] = p->expect[(size_t)i * p->ldc + j];
        memcpy(C, p->C_in, nc * sizeof(float));
        graphc_sgemm_with_packed_b_columns(M, N, K, nr, 2 * nr, p->alpha, p->A, p->lda, packed, p->beta, C, p->ldc,
                                           &ts.s);
        graphc_sgemm_with_packed_b_columns(M, N, K, 1, N, p->alpha, p->A, p->lda, packed, p->beta, C, p->ldc, &ts.s);
        bad = check(p, C, want, 0.0, what, 1);
        if (bad) printf("  (above: columns [%d, %d) alone)\n", nr, 2 * nr);
        free(want);
    }
    return scratch_close(&ts, what) || bad;
}

/* B packed once (graphc_sgemm_pack_b, both transb) and multiplied by graphc_sgemm_with_packed_b, at an
 * unaligned buffer start with NaN around it: the packing must stay inside the promised size, and the
 * products must match the reference twice (the packed B is not consumed), also from every thread of an
 * enclosing parallel region at once. */
static void packed_case(int tb, int M, int N, int K, int pad_a, int pad_b, int pad_c, float alpha, float beta,
                        int nan_in_c)
{
    struct problem p;
    const size_t size = graphc_sgemm_packed_b_size(K, N);
    float *buf = xmalloc((size + 40) * sizeof(float)), *packed = buf + 13, *C;
    char what[200];
    size_t i;
    int rep, ok = 1;
    make_problem(&p, 0, tb, M, N, K, pad_a, pad_b, pad_c, alpha, beta, nan_in_c);
    C = xmalloc((size_t)M * p.ldc * sizeof(float) + 1);
    for (i = 0; i < size + 40; ++i) buf[i] = NAN;
    graphc_sgemm_pack_b(tb, K, N, p.B, p.ldb, packed);
    snprintf(what, sizeof what, "packed B tb=%d M=%d N=%d K=%d lda=%d ldb=%d ldc=%d alpha=%g beta=%g%s", tb, M, N, K,
             p.lda, p.ldb, p.ldc, (double)alpha, (double)beta, nan_in_c ? " (NaN in C)" : "");
    for (i = 0; i < 13; ++i) ok &= buf[i] != buf[i];
    for (i = 13 + size; i < size + 40; ++i) ok &= buf[i] != buf[i];
    if (!ok) printf("FAIL %s: packing wrote outside its %zu floats\n", what, size);
    for (rep = 0; rep < 2 && ok; ++rep) {
        test_scratch ts;
        scratch_open(&ts, graphc_sgemm_scratch_floats(M, N, K), 1);
        memcpy(C, p.C_in, (size_t)M * p.ldc * sizeof(float));
        graphc_sgemm_with_packed_b(M, N, K, alpha, p.A, p.lda, packed, beta, C, p.ldc, &ts.s);
        ok = !scratch_close(&ts, what) && !check(&p, C, p.expect, 0.0, what, 1);
    }
    if (ok)
        ok = !packed_columns_case(&p, packed, C, nan_in_c, what);
#ifdef _OPENMP
    if (ok) {
        int bad = 0;
#pragma omp parallel num_threads(2) reduction(+ : bad)
        {
            float *mine = xmalloc((size_t)M * p.ldc * sizeof(float) + 1);
            test_scratch ts; /* each caller its own */
            scratch_open(&ts, graphc_sgemm_scratch_floats(M, N, K), 1);
            memcpy(mine, p.C_in, (size_t)M * p.ldc * sizeof(float));
            graphc_sgemm_with_packed_b(M, N, K, alpha, p.A, p.lda, packed, beta, mine, p.ldc, &ts.s);
            bad += scratch_close(&ts, what);
            bad += check(&p, mine, p.expect, 0.0, what, 1);
            free(mine);
        }
        ok = bad == 0;
    }
#endif
    record(ok);
    free(C); free(buf);
    free_problem(&p);
}

static void packed_cases(void)
{
    static const float alphas[] = {1.0f, 0.5f, -1.25f};
    static const float betas[] = {0.0f, 1.0f, 0.25f, -0.5f};
    int tb, i;
    for (tb = 0; tb < 2; ++tb) {
        /* tb, M, N, K, pad_a, pad_b, pad_c, alpha, beta, nan_in_c */
        packed_case(tb, 1, 1, 1, 0, 0, 0, 1.0f, 0.0f, 0);
        packed_case(tb, 64, 512, 128, 0, 0, 0, 1.0f, 1.0f, 0);   /* LSTM(128) step at batch 64 */
        packed_case(tb, 32, 128, 512, 3, 0, 384, 1.0f, 0.0f, 1); /* its backward: K = 4 * units, ldc padded */
        packed_case(tb, 9, 11, 13, 4, 4, 4, 1.0f, 0.0f, 1);      /* beta == 0 must not read C */
        packed_case(tb, 20, 70, 300, 1, 2, 3, -1.0f, 0.0f, 1);   /* ... also across K blocks */
        packed_case(tb, 17, 45, 257, 2, 0, 1, 0.5f, -0.5f, 0);   /* one step into the second K block */
        packed_case(tb, 13, 40, 385, 1, 0, 0, 1.0f, 0.25f, 0);   /* one step past kc = 384 */
        packed_case(tb, 29, 33, 700, 0, 3, 0, 1.0f, 0.25f, 0);   /* three K blocks (256), two (384) */
        packed_case(tb, 7, 1041, 19, 0, 5, 7, 1.0f, 0.0f, 0);    /* past NC */
        packed_case(tb, 13, 2080, 400, 3, 0, 1, -1.0f, 2.0f, 0); /* two NC blocks, an edge, two K blocks */
        packed_case(tb, 169, 35, 30, 0, 1, 2, 1.0f, 1.0f, 0);    /* past MC */
        packed_case(tb, 6, 8, 0, 0, 0, 2, 1.0f, 3.0f, 0);        /* K == 0: C = beta * C */
        packed_case(tb, 6, 8, 5, 0, 0, 2, 0.0f, 0.5f, 0);        /* alpha == 0 */
        packed_case(tb, 0, 8, 5, 0, 0, 0, 1.0f, 0.0f, 0);        /* empty */
        packed_case(tb, 8, 0, 5, 0, 0, 3, 1.0f, 0.0f, 0);        /* empty */
        for (i = 1; i <= 3; ++i) { /* few rows: streamed packed panels, odd K, K and N blocks */
            packed_case(tb, i, 100, 129, i, 1, 2, alphas[i % 3], betas[i % 4], 0);
            packed_case(tb, i, 1050, 777, 0, 2, 1, alphas[(i + 1) % 3], betas[(i + 1) % 4], 0);
            packed_case(tb, i, 17, 1, 1, 0, 0, 1.0f, 0.0f, 1);
        }
        for (i = 1; i <= 37; ++i) /* every size 1..37 (edge tiles of every micro-kernel) */
            packed_case(tb, i, (i * 11) % 37 + 1, (i * 7) % 37 + 1, i % 4, (i + 1) % 3, i % 5, alphas[i % 3],
                        betas[i % 4], i % 8 == 0);
        for (i = 0; i < 20; ++i) /* random shapes */
            packed_case(tb, rand_int(1, 80), rand_int(1, 80), rand_int(1, 80), rand_int(0, 5), rand_int(0, 5),
                        rand_int(0, 5), alphas[rand_int(0, 2)], betas[rand_int(0, 3)], 0);
    }
}

#ifdef _OPENMP
/* Two application threads calling at once, each with scratch of its own, do not interfere. */
static void concurrent_case(void)
{
    struct problem p[2];
    test_scratch ts[2];
    float *C[2];
    int t, ok = 1;
    for (t = 0; t < 2; ++t) {
        make_problem(&p[t], t, 1 - t, 150 + 7 * t, 170 - 5 * t, 520, 1, 1, 1, 1.0f, 0.0f, 1);
        C[t] = xmalloc((size_t)p[t].M * p[t].ldc * sizeof(float));
        memcpy(C[t], p[t].C_in, (size_t)p[t].M * p[t].ldc * sizeof(float));
        scratch_open(&ts[t], graphc_sgemm_scratch_floats(p[t].M, p[t].N, p[t].K), 1);
    }
#pragma omp parallel num_threads(2)
    {
        int rep, me;
        for (rep = 0; rep < 3; ++rep)
            for (me = omp_get_thread_num(); me < 2; me += omp_get_num_threads())
                graphc_sgemm_ex(p[me].ta, p[me].tb, p[me].M, p[me].N, p[me].K, 1.0f, p[me].A, p[me].lda, p[me].B,
                                p[me].ldb, 0.0f, C[me], p[me].ldc, &ts[me].s);
    }
    for (t = 0; t < 2; ++t) {
        if (scratch_close(&ts[t], "concurrent callers") || check(&p[t], C[t], p[t].expect, 0.0, "concurrent callers", 1))
            ok = 0;
        free(C[t]);
        free_problem(&p[t]);
    }
    record(ok);
}
#endif

/* The sizing function: nothing for empty products, little for small ones (a Dense layer at batch 32 needs
 * well under 1 MB), never more than one A block and one B block of the largest blocking, and no less for a
 * larger problem (callers size for the largest product they make). */
/* graphc_sgemm_pack_b_stacked: the same floats as graphc_sgemm_pack_b of the stacked matrix, for a seam inside a
 * K block or on one, past a K block and past NC, with a partial micro-panel of columns. */
static void stacked_case(int K1, int K2, int N, int ldb)
{
    const size_t size = graphc_sgemm_packed_b_size(K1 + K2, N);
    float *B = xmalloc((size_t)(K1 + K2) * ldb * sizeof(float)), *B2 = xmalloc((size_t)K2 * ldb * sizeof(float) + 1);
    float *B1 = xmalloc((size_t)(K1 + 1) * ldb * sizeof(float));
    float *want = xmalloc(size * sizeof(float)), *got = xmalloc(size * sizeof(float));
    size_t i;
    int ok = 1;
    for (i = 0; i < (size_t)(K1 + K2) * ldb; ++i) B[i] = (float)(i % 1013) - 506.0f;
    for (i = 0; i < size; ++i) want[i] = got[i] = -7.0f;
    graphc_sgemm_pack_b(0, K1 + K2, N, B, ldb, want);
    /* B1 and B2 apart, a row of -1 after B1's: reading past B1 shows */
    memcpy(B1, B, (size_t)K1 * ldb * sizeof(float));
    for (i = 0; i < (size_t)ldb; ++i) B1[(size_t)K1 * ldb + i] = -1.0f;
    memcpy(B2, B + (size_t)K1 * ldb, (size_t)K2 * ldb * sizeof(float));
    graphc_sgemm_pack_b_stacked(K1, B1, K2, B2, N, ldb, got);
    /* each packed at its first 64-byte boundary: compare from there */
    const float *w = (const float *)(((uintptr_t)want + 63) & ~(uintptr_t)63);
    const float *g = (const float *)(((uintptr_t)got + 63) & ~(uintptr_t)63);
    for (i = 0; i + 16 < size && ok; ++i)
        if (memcmp(&w[i], &g[i], sizeof(float)) != 0) {
            printf("FAIL stacked pack K1=%d K2=%d N=%d ldb=%d: float %zu is %g, not %g\n", K1, K2, N, ldb, i,
                   (double)g[i], (double)w[i]);
            ok = 0;
        }
    record(ok);
    free(B); free(B1); free(B2); free(want); free(got);
}

static void stacked_cases(void)
{
    stacked_case(28, 128, 512, 512);   /* an LSTM(128) on 28 features: one K block */
    stacked_case(1, 128, 512, 520);    /* one feature, a padded row stride */
    stacked_case(300, 200, 84, 90);    /* the seam inside the second K block (384, 256), a partial panel */
    stacked_case(384, 5, 1041, 1041);  /* the seam on a K block's edge, past NC */
    stacked_case(0, 7, 33, 33);        /* nothing stacked on top */
}

/* graphc_sgemm_pack_b_threads: the same floats as graphc_sgemm_pack_b on any team (its threads split the
 * layout's panels, so a share may end inside a K block or a jc block). */
static void threads_pack_case(int transb, int K, int N, int nthreads)
{
    const int ldb = (transb ? K : N) + 3;
    const size_t size = graphc_sgemm_packed_b_size(K, N);
    float *B = xmalloc((size_t)(transb ? N : K) * ldb * sizeof(float));
    float *want = xmalloc(size * sizeof(float)), *got = xmalloc(size * sizeof(float) + 4);
    size_t i;
    int ok = 1;
    for (i = 0; i < (size_t)(transb ? N : K) * ldb; ++i) B[i] = (float)(i % 1013) - 506.0f;
    for (i = 0; i < size; ++i) want[i] = got[i] = -7.0f;
    graphc_sgemm_pack_b(transb, K, N, B, ldb, want);
    graphc_sgemm_pack_b_threads(transb, K, N, B, ldb, got + 1, nthreads); /* another alignment */
    const float *w = (const float *)(((uintptr_t)want + 63) & ~(uintptr_t)63);
    const float *g = (const float *)(((uintptr_t)(got + 1) + 63) & ~(uintptr_t)63);
    for (i = 0; i + 16 < size && ok; ++i)
        if (memcmp(&w[i], &g[i], sizeof(float)) != 0) {
            printf("FAIL threaded pack transb=%d K=%d N=%d on %d threads: float %zu is %g, not %g\n", transb, K, N,
                   nthreads, i, (double)g[i], (double)w[i]);
            ok = 0;
        }
    record(ok);
    free(B); free(want); free(got);
}

static void threads_pack_cases(void)
{
    int tb;
    for (tb = 0; tb < 2; ++tb) {
        threads_pack_case(tb, 784, 512, 2);   /* the seed MLP's first Dense kernel */
        threads_pack_case(tb, 784, 512, 3);   /* shares ending inside K blocks */
        threads_pack_case(tb, 1100, 1041, 3); /* past NC: two jc blocks, a partial panel */
        threads_pack_case(tb, 300, 200, 4);   /* small: fewer threads than asked */
        threads_pack_case(tb, 5, 7, 2);       /* tiny: serial */
    }
}

static void sizing_cases(void)
{
    const size_t most = 168 * 384 + 384 * 1024 + 32; /* MC_MAX x KC_MAX + KC_MAX x NC, rounded */
    int ok = graphc_sgemm_scratch_floats(0, 8, 8) == 0 && graphc_sgemm_scratch_floats(8, 0, 8) == 0 &&
             graphc_sgemm_scratch_floats(8, 8, 0) == 0;
    int i;
    ok &= graphc_sgemm_scratch_floats(32, 128, 784) < 65536;
    ok &= graphc_sgemm_scratch_floats(1, 10, 10) <= 16;
    ok &= graphc_sgemm_scratch_floats(4096, 4096, 4096) <= most;
    ok &= graphc_sgemm_scratch_floats(4096, 4096, 4096) >= 100000; /* big products keep big blocks */
    for (i = 0; i < 200; ++i) {
        const int M = rand_int(1, 400), N = rand_int(1, 1500), K = rand_int(1, 900);
        const size_t s = graphc_sgemm_scratch_floats(M, N, K);
        ok &= s % 16 == 0 && s <= most;
        ok &= s <= graphc_sgemm_scratch_floats(M + rand_int(0, 20), N + rand_int(0, 40), K + rand_int(0, 30));
    }
    if (!ok)
        printf("FAIL graphc_sgemm_scratch_floats: sizes out of bounds or not monotonic\n");
    record(ok);
}

int main(void)
{
    printf("graphc_sgemm micro-kernel: %s\n", graphc_sgemm_kernel_name());
#ifdef _OPENMP
    {
        static const int team_sizes[] = {1, 2, 3};
        int i;
        for (i = 0; i < 3; ++i) { /* 3 threads: an uneven grid */
            omp_set_num_threads(team_sizes[i]);
            gemm_cases();
            bias_act_cases();
        }
        concurrent_case();
    }
#else
    gemm_cases();
    bias_act_cases();
#endif
    packed_cases();
    stacked_cases();
    threads_pack_cases();
    sizing_cases();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
