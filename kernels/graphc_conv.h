/* graphc kernels: convolution, transposed convolution and pooling on channels_last tensors (kernels/conv.c). */
#ifndef GRAPHC_CONV_H
#define GRAPHC_CONV_H

#include <stddef.h>
#include <stdint.h>

#include "graphc_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The geometry of a sliding window over 3 spatial axes. 1-D and 2-D ops are given as 3-D ones with
 * leading axes of size 1 (in = out = kernel = stride = dilation = 1, pad = 0), so one routine serves all.
 * Tensors are (batch, in[0], in[1], in[2], channels) and (batch, out[0], out[1], out[2], channels),
 * row-major. pad[a] is the padding before axis a (the padding after follows from the sizes).
 * Output cell o of an axis reads input cells o * stride - pad + k * dilation, k < kernel;
 * cells outside [0, in) are padding.
 */
typedef struct {
    int64_t in[3];
    int64_t out[3];
    int64_t kernel[3];
    int64_t stride[3];
    int64_t dilation[3];
    int64_t pad[3];
} graphc_window;

/* Taps [lo, hi) of a kernel of size k and dilation d whose cell start + tap * d lies in [0, n)
 * (shared by the convolution kernels and their gradients). */
static inline void graphc_tap_range(int64_t start, int64_t d, int64_t k, int64_t n, int64_t *lo, int64_t *hi)
{
    /* (undilated, the common case, without the divisions: packers call this for every patch row) */
    int64_t a = start >= 0 ? 0 : d == 1 ? -start : (-start + d - 1) / d;
    int64_t b = n - start <= 0 ? 0 : d == 1 ? n - start : (n - start + d - 1) / d;
    if (b > k)
        b = k;
    if (a > b)
        a = b;
    *lo = a;
    *hi = b;
}

/*
 * y = act(conv(x, w) + bias), a cross-correlation (the kernel is not flipped) as Keras/TensorFlow.
 * x: (batch, *in, cin); w: (*kernel, cin / groups, cout); bias: cout elements or NULL;
 * y: (batch, *out, cout); act: GRAPHC_ACT_* of graphc_kernels.h. Output channel o belongs to group
 * o / (cout / groups), which reads input channels [g * cin / groups, (g + 1) * cin / groups).
 * An implicit GEMM (graphc_sgemm_implicit): patches are packed from x straight into the GEMM's micro-panels,
 * never stored whole; scratch is graphc_conv_scratch_floats(...) floats per thread (the GEMM's packing
 * buffers), and the GEMM's threads share the output rows when the work is large enough. The sizing function
 * takes the same batch, window and channels as the kernel.
 */
size_t graphc_conv_scratch_floats(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout,
                                  int64_t groups);
void graphc_conv_f32(const float *x, const float *w, const float *bias, float *y, int64_t batch,
                     const graphc_window *win, int64_t cin, int64_t cout, int64_t groups, int act,
                     const graphc_scratch *scratch);

/* graphc_conv_f32 with the kernel prepared ahead (inference: once per set of weights, then every call):
 * graphc_conv_prepared_floats(...) floats (0 when this convolution has nothing to prepare; any alignment),
 * filled by graphc_conv_prepare from w, packed for the GEMM. graphc_conv_prepared_f32 reads them instead of
 * packing w on every call (prepared may be NULL: then it is graphc_conv_f32, which passes NULL). */
size_t graphc_conv_prepared_floats(const graphc_window *win, int64_t cin, int64_t cout, int64_t groups);
void graphc_conv_prepare(const float *w, const graphc_window *win, int64_t cin, int64_t cout, int64_t groups,
                         float *prepared);
void graphc_conv_prepared_f32(const float *x, const float *w, const float *prepared, const float *bias, float *y,
                              int64_t batch, const graphc_window *win, int64_t cin, int64_t cout, int64_t groups,
                              int act, const graphc_scratch *scratch);

/* Internal to graphc_conv_f32: 2-D 3x3 convolutions of stride 1 (any padding, one group, at least 16 input
 * and output channels, at least 128 tiles of 2x2 output cells over the batch, or 16 when the kernel comes
 * prepared: `prepared` nonzero) with no activation or ReLU run by Winograd's F(2x2, 3x3)
 * (kernels/winograd.c): 2.25x fewer multiplies; results differ from the direct sum by rounding (the
 * transforms add and subtract inputs before multiplying). graphc_conv_scratch_floats includes its scratch
 * wherever it may apply (prepared or not). */
int graphc_winograd_applies(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout, int64_t groups,
                            int prepared);
/* Whether it may apply at some batch (the geometry and channels fit); then graphc_conv_prepare also makes
 * its transformed, packed kernel (graphc_winograd_prepare, graphc_winograd_prepared_floats floats), which
 * graphc_winograd_f32 reads when given instead of making it on every call (prepared may be NULL). */
int graphc_winograd_fits(const graphc_window *win, int64_t cin, int64_t cout, int64_t groups);
size_t graphc_winograd_prepared_floats(int64_t cin, int64_t cout);
void graphc_winograd_prepare(const float *w, int64_t cin, int64_t cout, float *prepared);
/* Scratch per thread for a call whose kernel comes prepared (prepared 1) or is made in the scratch (0). */
size_t graphc_winograd_scratch_floats(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout,
                                      int prepared);
void graphc_winograd_f32(const float *x, const float *w, const float *prepared, const float *bias, float *y,
                         int64_t batch, const graphc_window *win, int64_t cin, int64_t cout, int act,
                         const graphc_scratch *scratch);
/* The same for graphc_conv_max_pool_f32: the output's 2x2 tiles are the pool's windows, each transformed back
 * into its maximum; an odd last row or column of the convolution, which the pool drops, is not computed. */
int graphc_winograd_pool_applies(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout, int64_t groups,
                                 int prepared);
size_t graphc_winograd_pool_scratch_floats(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout,
                                           int prepared);
void graphc_winograd_pool_f32(const float *x, const float *w, const float *prepared, const float *bias, float *y,
                              int64_t batch, const graphc_window *win, int64_t cin, int64_t cout, int act,
                              const graphc_scratch *scratch);
/* The same for graphc_conv_input_grad_f32 (graphc_conv_grad.h; win the forward window, w its kernel): dx is
 * the Winograd convolution of dy with the flipped kernel. */
int graphc_winograd_input_grad_applies(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout,
                                       int64_t groups);
size_t graphc_winograd_input_grad_scratch_floats(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout);
void graphc_winograd_input_grad_f32(const float *dy, const float *w, float *dx, int64_t batch,
                                    const graphc_window *win, int64_t cin, int64_t cout, const graphc_scratch *scratch);
/* And for graphc_conv_filter_grad_f32, by F(3x3, m x m) (x, dy and dw as there). Both gradients take tiles of
 * m x m cells, m = 2, 3 or 4 by the output's size (the fewest products; the forward keeps m = 2): rounding
 * errors up to about 6e-6 of the gradient's scale (winograd.c). */
int graphc_winograd_filter_grad_applies(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout,
                                        int64_t groups);
size_t graphc_winograd_filter_grad_scratch_floats(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout);
void graphc_winograd_filter_grad_f32(const float *x, const float *dy, float *dw, int64_t batch,
                                     const graphc_window *win, int64_t cin, int64_t cout, const graphc_scratch *scratch);

/*
 * y = max_pool(act(conv(x, w) + bias)) with a 2x2 pool of stride 2 and no padding (Keras's MaxPooling2D(2)),
 * without writing the convolution's output: graphc's inference fusion of Conv2D and MaxPooling2D. 2-D windows
 * only (win->in[0] == 1); win is the convolution's window (any activation: it is applied before the pool),
 * y: (batch, out[1] / 2, out[2] / 2, cout); prepared as for graphc_conv_prepared_f32 (may be NULL).
 * Where Winograd applies the tiles are the pool's windows; with few products per output, each pooled row is
 * made from two convolution rows in the thread's scratch; otherwise a chunk of images goes through
 * graphc_conv_prepared_f32 into the scratch and is pooled from there.
 * Scratch: graphc_conv_max_pool_scratch_floats(...) floats per thread.
 */
size_t graphc_conv_max_pool_scratch_floats(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout,
                                           int64_t groups, int act);
void graphc_conv_max_pool_f32(const float *x, const float *w, const float *prepared, const float *bias, float *y,
                              int64_t batch, const graphc_window *win, int64_t cin, int64_t cout, int64_t groups,
                              int act, const graphc_scratch *scratch);

/*
 * y = act(conv_transpose(x, w) + bias): the gradient of graphc_conv_f32 with respect to its input.
 * Here win->in is x's spatial size and win->out is y's: input cell i of an axis adds into output cell
 * i * stride - pad + k * dilation for every k < kernel (cells outside [0, out) are cropped).
 * x: (batch, *in, cin); w: (*kernel, cout, cin) (Keras's layout); bias: cout elements or NULL;
 * y: (batch, *out, cout). Scratch: graphc_conv_transpose_scratch_floats(...) floats per thread (a chunk of
 * the transposed kernel and of the products, at most 512 KB, plus graphc_sgemm's).
 */
size_t graphc_conv_transpose_scratch_floats(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout);
void graphc_conv_transpose_f32(const float *x, const float *w, const float *bias, float *y, int64_t batch,
                               const graphc_window *win, int64_t cin, int64_t cout, int act,
                               const graphc_scratch *scratch);

/* y = the maximum (average) of every window of x, per channel; padding cells are skipped (an average is
 * divided by the number of real cells in its window, as TensorFlow). x: (batch, *in, channels);
 * y: (batch, *out, channels); win->dilation must be 1. NaN propagates through the maximum. */
void graphc_max_pool_f32(const float *x, float *y, int64_t batch, const graphc_window *win, int64_t channels);
void graphc_avg_pool_f32(const float *x, float *y, int64_t batch, const graphc_window *win, int64_t channels);

#ifdef __cplusplus
}
#endif

#endif /* GRAPHC_CONV_H */
