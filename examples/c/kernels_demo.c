/* Calling graphc's kernels directly from C: a Dense layer with ReLU (y = relu(x @ W + b)) through the
 * fast GEMM with its fused epilogue, checked against the reference GEMM. The kernels allocate nothing:
 * the caller gives them scratch memory sized by graphc_sgemm_scratch_floats. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "graphc_kernels.h"

enum { BATCH = 37, IN = 300, OUT = 129, THREADS = 4 };

int main(void)
{
    float *x = malloc(sizeof(float) * BATCH * IN), *w = malloc(sizeof(float) * IN * OUT);
    float *b = malloc(sizeof(float) * OUT), *y = malloc(sizeof(float) * BATCH * OUT);
    float *ref = malloc(sizeof(float) * BATCH * OUT);
    size_t per_thread = graphc_scratch_round(graphc_sgemm_scratch_floats(BATCH, OUT, IN));
    float *raw = malloc(sizeof(float) * (per_thread * THREADS + 16));
    graphc_scratch scratch;
    double worst = 0.0;
    int i;
    if (!x || !w || !b || !y || !ref || !raw) return 2;
    for (i = 0; i < BATCH * IN; i++) x[i] = (float)((i * 7) % 13) / 13.0f - 0.5f;
    for (i = 0; i < IN * OUT; i++) w[i] = (float)((i * 5) % 11) / 11.0f - 0.5f;
    for (i = 0; i < OUT; i++) b[i] = 0.01f * (float)(i % 7);
    /* 64-byte aligned regions, one per thread */
    scratch.base = (float *)((char *)raw + (64 - (size_t)raw % 64) % 64);
    scratch.floats_per_thread = per_thread;
    scratch.nthreads = THREADS;

    graphc_sgemm_bias_act(BATCH, OUT, IN, x, IN, w, OUT, b, GRAPHC_ACT_RELU, y, OUT, &scratch);

    graphc_sgemm_ref(BATCH, OUT, IN, 1.0f, x, IN, w, OUT, 0.0f, ref, OUT);
    for (i = 0; i < BATCH * OUT; i++) {
        float want = ref[i] + b[i % OUT];
        double err = fabs((double)y[i] - (double)(want > 0.0f ? want : 0.0f));
        if (err > worst) worst = err;
    }
    printf("dense %dx%d -> %d with %s: max error vs reference %.3g (scratch %lu floats per thread)\n", BATCH, IN,
           OUT, graphc_sgemm_kernel_name(), worst, (unsigned long)per_thread);
    free(x); free(w); free(b); free(y); free(ref); free(raw);
    return worst < 1e-4 ? 0 : 1;
}
