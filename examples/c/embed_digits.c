/* Embedding an exported model in a plain C program: the digits classifier written by
 * examples/train_and_export.py (package digits_mlp), run over the test set it saved, with a workspace
 * allocated once and reused for every call.
 *   embed_digits DIGITS_TEST_BIN        (int32 count, then float32 images, then int32 labels) */
#include <stdio.h>
#include <stdlib.h>

#include "digits_mlp.h"

#define BATCH 32

int main(int argc, char **argv)
{
    FILE *f;
    int32_t n = 0, *labels;
    float *images, probs[BATCH * DIGITS_MLP_OUTPUT0_SAMPLE_ELEMENTS];
    size_t ws_bytes = digits_mlp_workspace_size(BATCH), per = DIGITS_MLP_INPUT0_SAMPLE_ELEMENTS;
    unsigned char *raw = (unsigned char *)malloc(ws_bytes + DIGITS_MLP_WORKSPACE_ALIGN), *ws;
    int correct = 0, start;
    if (argc != 2 || !raw) return 2;
    ws = raw + (DIGITS_MLP_WORKSPACE_ALIGN - (size_t)raw % DIGITS_MLP_WORKSPACE_ALIGN) % DIGITS_MLP_WORKSPACE_ALIGN;
    f = fopen(argv[1], "rb");
    if (!f || fread(&n, 4, 1, f) != 1 || n < 1) return 3;
    images = (float *)malloc((size_t)n * per * sizeof(float));
    labels = (int32_t *)malloc((size_t)n * sizeof(int32_t));
    if (!images || !labels || fread(images, sizeof(float) * per, (size_t)n, f) != (size_t)n ||
        fread(labels, 4, (size_t)n, f) != (size_t)n)
        return 4;
    fclose(f);
    for (start = 0; start < n; start += BATCH) {
        int batch = n - start < BATCH ? n - start : BATCH, b, k;
        const void *inputs[1];
        void *outputs[1];
        int rc;
        inputs[0] = images + (size_t)start * per;
        outputs[0] = probs;
        rc = digits_mlp_predict(NULL, batch, inputs, outputs, ws, ws_bytes);
        if (rc != DIGITS_MLP_OK) {
            fprintf(stderr, "predict: %s\n", digits_mlp_status_message(rc));
            return 5;
        }
        for (b = 0; b < batch; b++) {
            int best = 0;
            for (k = 1; k < DIGITS_MLP_OUTPUT0_SAMPLE_ELEMENTS; k++)
                if (probs[b * DIGITS_MLP_OUTPUT0_SAMPLE_ELEMENTS + k] > probs[b * DIGITS_MLP_OUTPUT0_SAMPLE_ELEMENTS + best]) best = k;
            correct += best == labels[start + b];
        }
    }
    printf("embed_digits: %d of %d test digits right (%.4f)\n", correct, (int)n, (double)correct / n);
    free(images);
    free(labels);
    free(raw);
    return correct * 10 >= n * 9 ? 0 : 1; /* a trained model gets at least 90% */
}
