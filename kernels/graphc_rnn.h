/* graphc kernels: recurrent layers (SimpleRNN, LSTM, GRU) over a whole sequence (kernels/rnn.c). */
#ifndef GRAPHC_RNN_H
#define GRAPHC_RNN_H

#include <stddef.h>
#include <stdint.h>

#include "graphc_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Shapes (row-major, float32, Keras 3 weight layouts):
 *   x (batch, steps, features); kernel (features, k*units); recurrent (units, k*units);
 *   bias (k*units) or NULL, for a GRU with reset_after (2, 3*units): input bias, then recurrent bias;
 *   h0, c0 (batch, units) initial states or NULL for zeros;
 *   mask (batch, steps) or NULL: where it is 0 (padding) the sample skips that step, its states (and output)
 *   staying as they were, as Keras's masking does;
 *   seq (batch, steps, units) every step's output in processing order (reversed in time with
 *   go_backwards, as Keras returns it) or NULL; h, c (batch, units) the last states.
 * Gates: k = 1 (SimpleRNN), 4 for LSTM (i, f, c, o), 3 for GRU (z, r, h).
 *
 * The input projection x @ kernel + bias of many timesteps is one GEMM; then each step adds
 * h @ recurrent (one small GEMM) and applies the gates in one pass. Scratch is the caller's
 * (graphc_kernels.h), graphc_<cell>_scratch_floats(...) floats per thread for the same sizes: the
 * projections of a block of samples and timesteps, at most GRAPHC_RNN_SCRATCH_FLOATS floats (fewer for
 * a short sequence or a small batch), the recurrent kernel packed once (at most GRAPHC_RNN_PACK_FLOATS:
 * all of it for batches of more than 8 samples, a thread's share of its columns for fewer) and the GEMMs'
 * scratch. Samples and timesteps are processed in blocks that fit, which needs room for one sample's
 * step: k * units floats, plus 3 * units (GRU with reset_after) or units (GRU without) for the GRU's
 * recurrent part.
 * Batches large enough are split over OpenMP threads (each runs the recurrence of its samples); fewer
 * samples than threads share the units (each thread computes its units of every gate; one barrier per
 * step), when a step has enough work to pay for the barrier.
 * packed_recurrent, if not NULL, is recurrent packed once per set of weights by graphc_rnn_pack_recurrent:
 * the threads that share the units read it instead of packing their columns on every call (when each
 * thread's units are whole panels of it; see rnn.c).
 * Returns 0, or -1 (nothing computed) when one sample's step does not fit GRAPHC_RNN_SCRATCH_FLOATS.
 */
#define GRAPHC_RNN_SCRATCH_FLOATS 262144 /* 1 MB */

/* Activations, by the elementwise op name of graphc's IR (Keras "linear" is IDENTITY). */
enum {
    GRAPHC_RNN_ACT_IDENTITY = 0,
    GRAPHC_RNN_ACT_TANH,
    GRAPHC_RNN_ACT_SIGMOID,      /* 1 / (1 + exp(-x)) */
    GRAPHC_RNN_ACT_HARD_SIGMOID, /* clip(x / 6 + 0.5, 0, 1), as Keras 3 */
    GRAPHC_RNN_ACT_RELU,
    GRAPHC_RNN_ACT_RELU6,
    GRAPHC_RNN_ACT_EXP,
    GRAPHC_RNN_ACT_ELU,        /* alpha 1 */
    GRAPHC_RNN_ACT_SELU,
    GRAPHC_RNN_ACT_SOFTPLUS,
    GRAPHC_RNN_ACT_SOFTSIGN,
    GRAPHC_RNN_ACT_SILU,
    GRAPHC_RNN_ACT_GELU,       /* exact (erf) form */
    GRAPHC_RNN_ACT_LEAKY_RELU  /* negative slope 0.2 */
};

size_t graphc_simple_rnn_scratch_floats(int64_t batch, int64_t steps, int features, int units);
size_t graphc_lstm_scratch_floats(int64_t batch, int64_t steps, int features, int units);
size_t graphc_gru_scratch_floats(int64_t batch, int64_t steps, int features, int units, int reset_after);

int graphc_simple_rnn(int64_t batch, int64_t steps, int features, int units, int activation, int go_backwards,
                      const float *x, const float *kernel, const float *recurrent, const float *packed_recurrent,
                      const float *bias, const float *h0, const float *mask, float *seq, float *h,
                      const graphc_scratch *scratch);

int graphc_lstm(int64_t batch, int64_t steps, int features, int units, int activation, int recurrent_activation,
                int go_backwards, const float *x, const float *kernel, const float *recurrent,
                const float *packed_recurrent, const float *bias, const float *h0, const float *c0,
                const float *mask, float *seq, float *h, float *c, const graphc_scratch *scratch);

int graphc_gru(int64_t batch, int64_t steps, int features, int units, int activation, int recurrent_activation,
               int go_backwards, int reset_after, const float *x, const float *kernel, const float *recurrent,
               const float *packed_recurrent, const float *bias, const float *h0, const float *mask, float *seq,
               float *h, const graphc_scratch *scratch);

/* The recurrent kernel (units x k*units) packed for the threads that share the units, k the gates (1, 4, 3):
 * graphc_rnn_packed_recurrent_floats(units, k) floats, filled by graphc_rnn_pack_recurrent. */
size_t graphc_rnn_packed_recurrent_floats(int units, int gates);
void graphc_rnn_pack_recurrent(int units, int gates, const float *recurrent, float *packed);

/* y = activation(x) elementwise, in place, with the same code the recurrent kernels use (for tests). */
void graphc_rnn_activate(int activation, float *v, int64_t n);

/* Internal, shared by kernels/rnn.c and kernels/rnn_grad.c: Keras's default LSTM cell (sigmoid gates, tanh)
 * for n units of one sample in one pass, z its pre-activations (gate g at z + g * zs). The forward updates c
 * and writes h; the training forward (_train) also writes the gates' activations to a (laid out as z; a may
 * be z), which the backward (graphc_lstm_cell_standard_grad, formulas in rnn.c) reads as a, with this step's
 * c, the previous one cp (NULL: zeros) and dh; it writes dz (as z) and updates dc. All return 0, doing
 * nothing, for other activations. */
int graphc_lstm_cell_standard(int act, int ract, const float *z, int zs, int n, float *h, float *c);
int graphc_lstm_cell_standard_train(int act, int ract, const float *z, int zs, int n, float *h, float *c, float *a);
int graphc_lstm_cell_standard_grad(int act, int ract, const float *a, int zs, const float *c, const float *cp, int n,
                                   const float *dh, float *dc, float *dz);

/* Internal, shared by kernels/rnn.c and kernels/rnn_grad.c: a product C (+)= A @ op(B) with the recurrent
 * kernel (or a block of its columns), op(B) K x N (B^T when transb), repeated at every timestep.
 * graphc_rnn_product_init packs op(B) once into *buf (then advanced, *left floats remaining) when it fits,
 * so the per-step GEMMs do not re-pack it; else the product reads B in place. With *buf NULL it only
 * counts (*left goes down by what packing would take: how callers size the buffer). The buffer is the
 * caller's scratch, at most GRAPHC_RNN_PACK_FLOATS floats (a packed 256 x 1024 LSTM(256) kernel);
 * scratch is what the per-step GEMMs get. */
#define GRAPHC_RNN_PACK_FLOATS 262208 /* 1 MB (+ alignment and panel padding) */

typedef struct {
    int transb, K, N, ldb;
    const float *B, *packed; /* packed: NULL when B did not fit the buffer */
    const graphc_scratch *scratch;
} graphc_rnn_product;

void graphc_rnn_product_init(graphc_rnn_product *r, int transb, int K, int N, const float *B, int ldb, float **buf,
                             size_t *left, const graphc_scratch *scratch);
void graphc_rnn_product_run(const graphc_rnn_product *r, int m, const float *A, int lda, float beta, float *C,
                            int ldc);

#ifdef __cplusplus
}
#endif

#endif /* GRAPHC_RNN_H */
