/* Checks graphc_sgemm_ref and graphc_sgemm_ref_ex (all four transa/transb layouts) against a naive
 * triple loop (double accumulation) on several shapes, alpha/beta values and padded leading dimensions
 * (whose padding holds NaN, so reading it fails the check). Prints "N passed, N failed". */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "graphc_kernels.h"

#define SENTINEL (-12345.0f)

static unsigned long rng_state = 12345u;

static float rand_float(void) /* uniform in [-1, 1), deterministic across platforms */
{
    rng_state = (rng_state * 1103515245u + 12345u) & 0x7fffffffu;
    return (float)((double)(rng_state >> 8) / (double)(1u << 22)) - 1.0f;
}

static double dabs(double x) { return x < 0 ? -x : x; }

/* C_out = alpha*op(A)*op(B) + beta*C_in, written for clarity: one dot product per element.
 * op(A)[i][k] is A[k][i] when ta, op(B)[k][j] is B[j][k] when tb. */
static void naive_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                        int ldb, float beta, const float *C_in, double *out, double *scale, int ldc)
{
    int i, j, k;
    for (i = 0; i < M; ++i) {
        for (j = 0; j < N; ++j) {
            double acc = 0.0, mag = 0.0;
            for (k = 0; k < K; ++k) {
                const double a = ta ? A[k * lda + i] : A[i * lda + k], b = tb ? B[j * ldb + k] : B[k * ldb + j];
                acc += a * b;
                mag += dabs(a * b);
            }
            out[i * ldc + j] = alpha * acc + (beta == 0.0f ? 0.0 : beta * (double)C_in[i * ldc + j]);
            scale[i * ldc + j] = dabs(alpha) * mag;
            if (beta != 0.0f)
                scale[i * ldc + j] += dabs(beta) * dabs((double)C_in[i * ldc + j]);
        }
    }
}

/* 0 when every element of C is within float rounding of the reference and the row padding is intact.
 * The bound is twice the worst-case rounding error of a K-term float dot product (plus alpha, beta). */
static int compare(int M, int N, int K, const float *C, const double *ref, const double *scale, int ldc,
                   const char *what, int report)
{
    int i, j;
    double tol;
    for (i = 0; i < M; ++i) {
        for (j = 0; j < ldc; ++j) {
            float got = C[i * ldc + j];
            if (j >= N) {
                if (got != SENTINEL) {
                    if (report)
                        printf("FAIL %s: padding C[%d][%d] was overwritten (%g)\n", what, i, j, (double)got);
                    return 1;
                }
                continue;
            }
            tol = (K + 4) * FLT_EPSILON * scale[i * ldc + j];
            if (got != got || dabs((double)got - ref[i * ldc + j]) > tol) {
                if (report)
                    printf("FAIL %s: C[%d][%d] = %.8g, expected %.8g\n", what, i, j, (double)got,
                           ref[i * ldc + j]);
                return 1;
            }
        }
    }
    return 0;
}

struct gemm_case {
    int M, N, K, pad_a, pad_b, pad_c;
    float alpha, beta;
    int nan_in_c; /* fill C with NaN: beta == 0 must ignore it */
    int corrupt;  /* perturb one result element: the checker itself must catch it */
};

/* Returns 1 if the case behaves as expected (for corrupt cases: if the mismatch is detected).
 * ta/tb: A stored K x M, B stored N x K; (0, 0) goes through graphc_sgemm_ref, the rest through _ex. */
static int run_case(const struct gemm_case *t, int ta, int tb)
{
    int rows_a = ta ? t->K : t->M, cols_a = ta ? t->M : t->K, rows_b = tb ? t->N : t->K, cols_b = tb ? t->K : t->N;
    int lda = cols_a + t->pad_a, ldb = cols_b + t->pad_b, ldc = t->N + t->pad_c;
    size_t na = (size_t)(rows_a * lda) + 1, nb = (size_t)(rows_b * ldb) + 1, nc = (size_t)(t->M * ldc) + 1;
    float *A = malloc(na * sizeof *A), *B = malloc(nb * sizeof *B), *C = malloc(nc * sizeof *C);
    float *C_in = malloc(nc * sizeof *C_in);
    double *ref = malloc(nc * sizeof *ref), *scale = malloc(nc * sizeof *scale);
    char what[160];
    int i, j, ok;
    if (!A || !B || !C || !C_in || !ref || !scale) {
        printf("FAIL: out of memory\n");
        exit(2);
    }
    for (i = 0; i < (int)na; ++i) A[i] = lda && i % lda < cols_a ? rand_float() : NAN; /* padding must not be read */
    for (i = 0; i < (int)nb; ++i) B[i] = ldb && i % ldb < cols_b ? rand_float() : NAN;
    for (i = 0; i < t->M; ++i) {
        for (j = 0; j < ldc; ++j) {
            C[i * ldc + j] = j >= t->N ? SENTINEL : t->nan_in_c ? NAN : rand_float();
        }
    }
    for (i = 0; i < (int)nc; ++i) C_in[i] = C[i];
    naive_sgemm(ta, tb, t->M, t->N, t->K, t->alpha, A, lda, B, ldb, t->beta, C_in, ref, scale, ldc);
    if (ta || tb)
        graphc_sgemm_ref_ex(ta, tb, t->M, t->N, t->K, t->alpha, A, lda, B, ldb, t->beta, C, ldc);
    else
        graphc_sgemm_ref(t->M, t->N, t->K, t->alpha, A, lda, B, ldb, t->beta, C, ldc);
    if (t->corrupt)
        C[(t->M / 2) * ldc + t->N / 2] += 1e-3f;
    snprintf(what, sizeof what, "ta=%d tb=%d M=%d N=%d K=%d lda=%d ldb=%d ldc=%d alpha=%g beta=%g%s%s", ta, tb,
             t->M, t->N, t->K,
             lda, ldb, ldc, (double)t->alpha, (double)t->beta, t->nan_in_c ? " (NaN in C)" : "",
             t->corrupt ? " (corrupted)" : "");
    ok = compare(t->M, t->N, t->K, C, ref, scale, ldc, what, !t->corrupt) == (t->corrupt ? 1 : 0);
    if (t->corrupt && !ok)
        printf("FAIL %s: the checker missed a wrong element\n", what);
    free(A); free(B); free(C); free(C_in); free(ref); free(scale);
    return ok;
}

int main(void)
{
    static const struct gemm_case cases[] = {
        /* M, N, K, pad_a, pad_b, pad_c, alpha, beta, nan_in_c, corrupt */
        {1, 1, 1, 0, 0, 0, 1.0f, 0.0f, 0, 0},
        {4, 4, 4, 0, 0, 0, 1.0f, 0.0f, 0, 0},
        {3, 5, 7, 0, 0, 0, 1.0f, 0.0f, 0, 0},
        {7, 3, 5, 0, 0, 0, 0.5f, 2.0f, 0, 0},
        {17, 13, 29, 3, 5, 2, -1.25f, 1.0f, 0, 0},
        {64, 48, 33, 1, 7, 4, 1.0f, -0.5f, 0, 0},
        {33, 65, 127, 0, 0, 9, 0.75f, 0.25f, 0, 0},
        {1, 100, 50, 2, 0, 3, 1.0f, 1.0f, 0, 0},
        {100, 1, 50, 0, 6, 1, 2.0f, 0.0f, 0, 0},
        {9, 11, 13, 4, 4, 4, 1.0f, 0.0f, 1, 0},  /* beta == 0 must not read C */
        {6, 8, 0, 0, 0, 2, 1.0f, 3.0f, 0, 0},    /* K == 0: C = beta * C */
        {6, 8, 5, 0, 0, 2, 0.0f, 0.5f, 0, 0},    /* alpha == 0: C = beta * C */
        {0, 8, 5, 0, 0, 0, 1.0f, 0.0f, 0, 0},    /* empty */
        {10, 12, 14, 1, 2, 3, 1.0f, 0.5f, 0, 1}, /* checker sanity */
        {37, 1, 23, 0, 2, 0, 1.0f, 0.0f, 1, 0},
        {2, 31, 37, 5, 0, 1, -0.5f, 1.0f, 0, 0},
    };
    int n = (int)(sizeof cases / sizeof cases[0]), passed = 0, failed = 0, i, trans;
    for (trans = 0; trans < 4; ++trans) { /* (transa, transb) = (0, 0), (0, 1), (1, 0), (1, 1) */
        for (i = 0; i < n; ++i) {
            if (run_case(&cases[i], trans >> 1, trans & 1))
                ++passed;
            else
                ++failed;
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
