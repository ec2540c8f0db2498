/* graphc kernels: training forward and backprop through time of SimpleRNN, LSTM, GRU (kernels/rnn_grad.c). */
#ifndef GRAPHC_RNN_GRAD_H
#define GRAPHC_RNN_GRAD_H

#include <stddef.h>
#include <stdint.h>

#include "graphc_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Shapes and arguments as graphc_rnn.h (row-major float32, Keras 3 layouts, G = k * units gates columns;
 * activations are GRAPHC_RNN_ACT_* codes). Saved tensors, indexed by timestep in time order whatever the
 * processing order:
 *   hp (batch, steps, units)  the state h entering each timestep;
 *   cs (batch, steps, units)  LSTM: the cell state after each timestep (NULL otherwise);
 *   zs (batch, steps, G)      every gate's pre-activation (a GRU's candidate includes its reset term), or
 *                             for an LSTM with tanh and sigmoid (Keras's default) the gates' activations;
 *   aux (batch, steps, units) GRU: with reset_after h_prev @ U_h + b_rh, else r * h_prev (NULL otherwise).
 * graphc_rnn_train computes what graphc_simple_rnn / graphc_lstm / graphc_gru compute (seq, h, c; seq may
 * be NULL; mask as there) and fills the saved tensors. rdrop (batch, k, units), or NULL, is recurrent dropout
 * as Keras's implementation 1 applies it: gate g's product with the recurrent kernel takes h times the sample's
 * mask g (a GRU's candidate without reset_after: r times the masked h; the state update reads h itself).
 *
 * graphc_rnn_grad takes the saved tensors, c0 (LSTM initial cell state or NULL for zeros), the forward's mask
 * (or NULL; at a masked step dh and dc pass through and dzs is zero), its rdrop and the
 * gradients of the outputs: dout (batch, steps, units) with return_sequences (processing order) else
 * (batch, units), dh (batch, units), dc (LSTM, batch x units); and writes dx, dkernel, drecurrent, dbias
 * (NULL without bias; (2, G) for a GRU with reset_after), dh0 / dc0 (dx, dh0, dc0 may be NULL: not
 * computed), and scratch:
 * dzs (batch, steps, G) the pre-activation gradients, daux (batch, steps, units) for a GRU with reset_after
 * (else NULL). Threads split the batch for BPTT, then the columns of the weight gradients and the rows of dx,
 * each a GEMM over the rows of all samples and timesteps.
 *
 * Scratch is the caller's (graphc_kernels.h), graphc_rnn_train_scratch_floats / graphc_rnn_grad_scratch_floats
 * floats per thread for the same sizes: per-block buffers of at most GRAPHC_RNN_GRAD_SCRATCH_FLOATS floats (a
 * block of samples; one sample needs G + 6 * units floats of it), the recurrent kernel packed once per call
 * (graphc_rnn_product, graphc_rnn.h; at most GRAPHC_RNN_PACK_FLOATS) and the GEMMs' scratch. Both kernels
 * return 0, or -1 (nothing computed) when one sample does not fit GRAPHC_RNN_GRAD_SCRATCH_FLOATS.
 */
#define GRAPHC_RNN_GRAD_SCRATCH_FLOATS 131072 /* 512 KB */

enum { GRAPHC_RNN_CELL_SIMPLE = 0, GRAPHC_RNN_CELL_LSTM, GRAPHC_RNN_CELL_GRU };

size_t graphc_rnn_train_scratch_floats(int cell, int64_t batch, int64_t steps, int features, int units,
                                       int reset_after);
size_t graphc_rnn_grad_scratch_floats(int cell, int64_t batch, int64_t steps, int features, int units,
                                      int reset_after);

int graphc_rnn_train(int cell, int64_t batch, int64_t steps, int features, int units, int activation,
                     int recurrent_activation, int go_backwards, int reset_after, int return_sequences,
                     const float *x, const float *kernel, const float *recurrent, const float *bias,
                     const float *h0, const float *c0, const float *mask, const float *rdrop, float *seq, float *h,
                     float *c, float *hp, float *cs, float *zs, float *aux, const graphc_scratch *scratch);

int graphc_rnn_grad(int cell, int64_t batch, int64_t steps, int features, int units, int activation,
                    int recurrent_activation, int go_backwards, int reset_after, int return_sequences,
                    const float *x, const float *kernel, const float *recurrent, const float *c0, const float *mask,
                    const float *rdrop, const float *hp, const float *cs, const float *zs, const float *aux,
                    const float *dout, const float *dh, const float *dc,
                    float *dx, float *dkernel, float *drecurrent, float *dbias, float *dh0, float *dc0,
                    float *dzs, float *daux, const graphc_scratch *scratch);

/* g[i] *= activation'(x[i]) given y[i] = activation(x[i]), with the conventions of graphc's gradient rules. */
void graphc_rnn_activate_grad(int activation, const float *x, const float *y, float *g, int64_t n);

#ifdef __cplusplus
}
#endif

#endif /* GRAPHC_RNN_GRAD_H */
