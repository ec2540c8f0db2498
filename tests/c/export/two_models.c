/* Two exported models (alpha, beta) linked into one program, each called from its own thread at the same
 * time with its own workspace; every call must give the single-threaded result. Prints both outputs. */
#define _POSIX_C_SOURCE 200112L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alpha.h"
#include "beta.h"

#define BATCH 3
#define CALLS 50

static float alpha_x[BATCH * ALPHA_INPUT0_SAMPLE_ELEMENTS], alpha_y[BATCH * ALPHA_OUTPUT0_SAMPLE_ELEMENTS];
static float beta_x[BATCH * BETA_INPUT0_SAMPLE_ELEMENTS], beta_y[BATCH * BETA_OUTPUT0_SAMPLE_ELEMENTS];

/* the inputs the Python side makes too: exact in float32 */
static void fill(float *x, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) x[i] = (float)((i * 37) % 101) / 101.0f - 0.5f;
}

struct job { int model; int mismatches; int failures; };

static void *worker(void *arg)
{
    struct job *job = (struct job *)arg;
    int call;
    for (call = 0; call < CALLS; call++) {
        float y[BATCH * (ALPHA_OUTPUT0_SAMPLE_ELEMENTS + BETA_OUTPUT0_SAMPLE_ELEMENTS)];
        void *out[1];
        int rc;
        out[0] = y;
        if (job->model == 0) {
            const void *in[1];
            in[0] = alpha_x;
            rc = alpha_predict_alloc(NULL, BATCH, in, out);
            if (memcmp(y, alpha_y, sizeof alpha_y) != 0) job->mismatches++;
        } else {
            const void *in[1];
            in[0] = beta_x;
            rc = beta_predict_alloc(NULL, BATCH, in, out);
            if (memcmp(y, beta_y, sizeof beta_y) != 0) job->mismatches++;
        }
        if (rc != 0) job->failures++;
    }
    return NULL;
}

static void print(const char *name, const float *y, size_t n)
{
    size_t i;
    printf("%s", name);
    for (i = 0; i < n; i++) printf(" %.9g", (double)y[i]);
    printf("\n");
}

int main(void)
{
    const void *in[1];
    void *out[1];
    pthread_t threads[2];
    struct job jobs[2] = {{0, 0, 0}, {1, 0, 0}};
    int t;
    fill(alpha_x, sizeof alpha_x / sizeof alpha_x[0]);
    fill(beta_x, sizeof beta_x / sizeof beta_x[0]);
    in[0] = alpha_x; out[0] = alpha_y;
    if (alpha_predict_alloc(NULL, BATCH, in, out) != ALPHA_OK) return 1;
    in[0] = beta_x; out[0] = beta_y;
    if (beta_predict_alloc(NULL, BATCH, in, out) != BETA_OK) return 1;
    for (t = 0; t < 2; t++) pthread_create(&threads[t], NULL, worker, &jobs[t]);
    for (t = 0; t < 2; t++) pthread_join(threads[t], NULL);
    printf("concurrent calls: %d mismatches, %d failures\n", jobs[0].mismatches + jobs[1].mismatches,
           jobs[0].failures + jobs[1].failures);
    print("alpha", alpha_y, sizeof alpha_y / sizeof alpha_y[0]);
    print("beta", beta_y, sizeof beta_y / sizeof beta_y[0]);
    return 0;
}
