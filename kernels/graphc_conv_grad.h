/* graphc kernels: gradients of convolution and pooling on channels_last tensors (kernels/conv_grad.c). */
#ifndef GRAPHC_CONV_GRAD_H
#define GRAPHC_CONV_GRAD_H

#include <stddef.h>
#include <stdint.h>

#include "graphc_conv.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Every function takes the FORWARD op's window (graphc_window of graphc_conv.h): win->in is the size of
 * the forward input x, win->out that of the forward output y (and of its gradient dy), win->pad the
 * forward padding. Outputs are overwritten, never accumulated into. The convolution gradients take the
 * caller's scratch (graphc_kernels.h), as many floats per thread as their sizing function gives for the
 * same arguments (patches or columns of at most 512 KB, a 512 KB partial dw when threads may share the
 * filter gradient, plus graphc_sgemm_ex's); OpenMP threads are used when the work is large enough.
 */

/* dx = d conv(x, w) / dx applied to dy, for graphc_conv_f32(x, w, ...) with the same window and groups.
 * dy: (batch, *out, cout); w: (*kernel, cin / groups, cout); dx: (batch, *in, cin). */
size_t graphc_conv_input_grad_scratch_floats(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout,
                                             int64_t groups);
void graphc_conv_input_grad_f32(const float *dy, const float *w, float *dx, int64_t batch,
                                const graphc_window *win, int64_t cin, int64_t cout, int64_t groups,
                                const graphc_scratch *scratch);

/* dw = d conv(x, w) / dw applied to dy: dw[tap][c][o] = sum over images and output cells of the input cell
 * that tap meets (0 in padding) times dy. x: (batch, *in, cin); dy: (batch, *out, cout);
 * dw: (*kernel, cin / groups, cout). The sum over batch x cells is split between threads, each
 * accumulating a private partial that is then reduced (in thread order: deterministic for a thread count). */
size_t graphc_conv_filter_grad_scratch_floats(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout,
                                              int64_t groups);
void graphc_conv_filter_grad_f32(const float *x, const float *dy, float *dw, int64_t batch,
                                 const graphc_window *win, int64_t cin, int64_t cout, int64_t groups,
                                 const graphc_scratch *scratch);

/* dx = d max_pool(x) / dx applied to dy. all_ties == 0: each window's dy goes to its first maximum in
 * window order (row-major), as TensorFlow's MaxPoolGrad; all_ties != 0: to every cell equal to the
 * maximum, as TensorFlow's MaxPool3DGrad. x, dx: (batch, *in, channels); dy: (batch, *out, channels). */
void graphc_max_pool_grad_f32(const float *x, const float *dy, float *dx, int64_t batch, const graphc_window *win,
                              int64_t channels, int all_ties);

/* dx = d avg_pool(x) / dx applied to dy: each window's dy divided by its number of real (non-padding) cells,
 * added to those cells. dy: (batch, *out, channels); dx: (batch, *in, channels). */
void graphc_avg_pool_grad_f32(const float *dy, float *dx, int64_t batch, const graphc_window *win,
                              int64_t channels);

#ifdef __cplusplus
}
#endif

#endif /* GRAPHC_CONV_GRAD_H */
