/* Trains the exported model "net" in C: STEPS steps of BATCH samples read from DATA (per step: the input's
 * float32 values, then the target's raw 4-byte values), printing each step's loss, then saves the weights.
 *   train_steps DATA STEPS BATCH OUT.weights */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"

static void *aligned(size_t bytes, void **raw)
{
    unsigned char *p = (unsigned char *)calloc(bytes + 64, 1);
    *raw = p;
    return p ? p + (64 - (size_t)p % 64) % 64 : NULL;
}

int main(int argc, char **argv)
{
    FILE *data;
    int steps, batch, step, rc;
    void *state_raw, *ws_raw, *state, *ws;
    float *x, *y, loss, probe[NET_OUTPUT0_SAMPLE_ELEMENTS * 64];
    size_t ws_bytes, nx, ny;
    if (argc != 5) return 2;
    steps = atoi(argv[2]);
    batch = atoi(argv[3]);
    if (batch < 1 || batch > 64) return 2;
    data = fopen(argv[1], "rb");
    if (!data) return 3;
    nx = (size_t)batch * NET_INPUT0_SAMPLE_ELEMENTS;
    ny = (size_t)batch * NET_TARGET0_SAMPLE_ELEMENTS;
    x = (float *)malloc(nx * 4);
    y = (float *)malloc(ny * 4);
    state = aligned(net_train_state_size(), &state_raw);
    ws_bytes = net_train_workspace_size(batch);
    ws = aligned(ws_bytes, &ws_raw);
    if (!x || !y || !state || !ws) return 4;
    printf("uninitialised: %d\n", net_train_step(state, batch, (const void *const *)&x, (const void *const *)&y,
                                                 &loss, ws, ws_bytes) == NET_ERR_NO_WEIGHTS);
    rc = net_train_init(state, net_train_state_size(), NULL);
    if (rc != NET_OK) { fprintf(stderr, "init: %s\n", net_status_message(rc)); return 5; }
    for (step = 0; step < steps; step++) {
        const void *in[1], *tg[1];
        if (fread(x, 4, nx, data) != nx || fread(y, 4, ny, data) != ny) return 6;
        in[0] = x;
        tg[0] = y;
        rc = net_train_step(state, batch, in, tg, &loss, ws, ws_bytes);
        if (rc != NET_OK) { fprintf(stderr, "step: %s\n", net_status_message(rc)); return 7; }
        printf("loss %.9g\n", (double)loss);
    }
    fclose(data);
    printf("iterations %lld\n", (long long)net_train_iterations(state));
    {   /* the state is a weights image: predict reads the trained weights */
        const void *in[1];
        void *out[1];
        in[0] = x;
        out[0] = probe;
        rc = net_predict_alloc(state, batch, in, out);
        printf("predict %d %.9g\n", rc, (double)probe[0]);
    }
    rc = net_save_weights(state, argv[4]);
    if (rc != NET_OK) { fprintf(stderr, "save: %s\n", net_status_message(rc)); return 8; }
    free(x); free(y); free(state_raw); free(ws_raw);
    return 0;
}
