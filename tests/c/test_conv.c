/* Checks graphc_conv_f32 (the implicit GEMM: patches packed from x into the micro-panels of whichever
 * micro-kernel this build has, SIMD or portable; the direct loop for few products; Winograd) against a double-precision loop over output cells, on 1-D,
 * 2-D and 3-D windows with strides, padding on every side, dilation, groups, channel counts that are and are
 * not multiples of the panel and tile sizes, batch 1 and larger, bias and activations, and 1 to several
 * threads. Every call gets exactly graphc_conv_scratch_floats(...) floats per thread followed by a guard
 * that must stay intact, and the output is surrounded by guards. Prints "N passed, N failed". */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graphc_conv.h"
#include "graphc_kernels.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#define GUARD 16
#define SENTINEL (-12345.0f)

static int passed = 0, failed = 0;
static unsigned long rng_state = 777u;

static float rand_float(void) /* uniform in [-1, 1) */
{
    rng_state = (rng_state * 1103515245u + 12345u) & 0x7fffffffu;
    return (float)((double)(rng_state >> 8) / (double)(1u << 22)) - 1.0f;
}

static void *xmalloc(size_t n)
{
    void *p = calloc(n ? n : 1, 1);
    if (!p) {
        printf("FAIL: out of memory\n");
        exit(2);
    }
    return p;
}

static double act_ref(double v, int act)
{
    switch (act) {
    case GRAPHC_ACT_RELU: return v > 0 ? v : 0;
    case GRAPHC_ACT_SIGMOID: return 1.0 / (1.0 + exp(-v));
    case GRAPHC_ACT_TANH: return tanh(v);
    default: return v;
    }
}

/* One case: spatial sizes (leading 1s for 1-D/2-D), kernel, stride, dilation, pad before; out from them
 * (pad after = pad_after). */
typedef struct {
    int batch, in[3], kernel[3], stride[3], dilation[3], pad[3], pad_after[3], cin, cout, groups, act, bias;
} conv_case;

/* prepared: the kernel prepared ahead (graphc_conv_prepare into a buffer with NaN guards on both sides, at an
 * unaligned start), then graphc_conv_prepared_f32, which must read it, not write it, and give the same. */
static void run_case(const conv_case *c, int threads, int prepared)
{
    graphc_window win;
    const int cin_g = c->cin / c->groups, cout_g = c->cout / c->groups;
    size_t nx, nw, ny, need, per_thread, i;
    float *x, *w, *bias, *y, *raw, *base, *prep = NULL, *kept;
    size_t nprep = 0;
    graphc_scratch s;
    double max_err = 0.0;
    int a, bad = 0, n, o0, o1, o2, o, t0, t1, t2, ci;
    for (a = 0; a < 3; a++) {
        const int span = (c->kernel[a] - 1) * c->dilation[a] + 1;
        win.in[a] = c->in[a];
        win.kernel[a] = c->kernel[a];
        win.stride[a] = c->stride[a];
        win.dilation[a] = c->dilation[a];
        win.pad[a] = c->pad[a];
        win.out[a] = (c->in[a] + c->pad[a] + c->pad_after[a] - span) / c->stride[a] + 1;
    }
    nx = (size_t)c->batch * (size_t)(c->in[0] * c->in[1] * c->in[2]) * (size_t)c->cin;
    nw = (size_t)(c->kernel[0] * c->kernel[1] * c->kernel[2]) * (size_t)cin_g * (size_t)c->cout;
    ny = (size_t)c->batch * (size_t)(win.out[0] * win.out[1] * win.out[2]) * (size_t)c->cout;
    x = xmalloc(nx * sizeof(float));
    w = xmalloc(nw * sizeof(float));
    bias = xmalloc((size_t)c->cout * sizeof(float));
    y = xmalloc((ny + 2 * GUARD) * sizeof(float));
    for (i = 0; i < nx; i++) x[i] = rand_float();
    for (i = 0; i < nw; i++) w[i] = rand_float();
    for (i = 0; i < (size_t)c->cout; i++) bias[i] = rand_float();
    for (i = 0; i < ny + 2 * GUARD; i++) y[i] = SENTINEL;

    need = graphc_conv_scratch_floats(c->batch, &win, c->cin, c->cout, c->groups);
    per_thread = graphc_scratch_round(need) + GUARD;
    raw = xmalloc((per_thread * (size_t)threads + 16) * sizeof(float));
    base = (float *)(((size_t)raw + 63u) & ~(size_t)63u);
    for (i = 0; i < per_thread * (size_t)threads; i++) base[i] = SENTINEL;
    s.base = base;
    s.floats_per_thread = per_thread;
    s.nthreads = threads;
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
    if (prepared) {
        nprep = graphc_conv_prepared_floats(&win, c->cin, c->cout, c->groups);
        prep = xmalloc((nprep + 2) * sizeof(float));
        for (i = 0; i < nprep + 2; i++) prep[i] = NAN;
        graphc_conv_prepare(w, &win, c->cin, c->cout, c->groups, prep + 1);
        kept = xmalloc((nprep + 2) * sizeof(float));
        memcpy(kept, prep, (nprep + 2) * sizeof(float));
        graphc_conv_prepared_f32(x, w, prep + 1, c->bias ? bias : NULL, y + GUARD, c->batch, &win, c->cin, c->cout,
                                 c->groups, c->act, &s);
        if (prep[0] == prep[0] || prep[nprep + 1] == prep[nprep + 1] ||
            memcmp(kept, prep, (nprep + 2) * sizeof(float)) != 0)
            bad = 1;
        free(kept);
    } else {
        graphc_conv_f32(x, w, c->bias ? bias : NULL, y + GUARD, c->batch, &win, c->cin, c->cout, c->groups, c->act, &s);
    }

    for (i = 0; i < GUARD; i++)
        if (y[i] != SENTINEL || y[GUARD + ny + i] != SENTINEL)
            bad = 1;
    for (a = 0; a < threads; a++)
        for (i = need; i < per_thread; i++)
            if (base[(size_t)a * per_thread + i] != SENTINEL)
                bad = 1;
    for (n = 0; n < c->batch; n++)
        for (o0 = 0; o0 < win.out[0]; o0++)
            for (o1 = 0; o1 < win.out[1]; o1++)
                for (o2 = 0; o2 < win.out[2]; o2++)
                    for (o = 0; o < c->cout; o++) {
                        const int g = o / cout_g;
                        double sum = c->bias ? bias[o] : 0.0, mag = fabs(sum), want, got;
                        for (t0 = 0; t0 < c->kernel[0]; t0++)
                            for (t1 = 0; t1 < c->kernel[1]; t1++)
                                for (t2 = 0; t2 < c->kernel[2]; t2++) {
                                    const int i0 = o0 * c->stride[0] - c->pad[0] + t0 * c->dilation[0];
                                    const int i1 = o1 * c->stride[1] - c->pad[1] + t1 * c->dilation[1];
                                    const int i2 = o2 * c->stride[2] - c->pad[2] + t2 * c->dilation[2];
                                    const int tap = (t0 * c->kernel[1] + t1) * c->kernel[2] + t2;
                                    if (i0 < 0 || i0 >= c->in[0] || i1 < 0 || i1 >= c->in[1] || i2 < 0 || i2 >= c->in[2])
                                        continue;
                                    for (ci = 0; ci < cin_g; ci++) {
                                        const double p = (double)x[((((size_t)n * c->in[0] + i0) * c->in[1] + i1) * c->in[2] + i2)
                                                                   * c->cin + g * cin_g + ci]
                                                         * (double)w[((size_t)tap * cin_g + ci) * c->cout + o];
                                        sum += p;
                                        mag += fabs(p);
                                    }
                                }
                        want = act_ref(sum, c->act);
                        got = y[GUARD + ((((size_t)n * win.out[0] + o0) * win.out[1] + o1) * win.out[2] + o2) * c->cout + o];
                        if (!(fabs(got - want) <= 1e-5 * mag + 1e-6)) {
                            bad = 1;
                            if (fabs(got - want) > max_err || got != got)
                                max_err = got != got ? INFINITY : fabs(got - want);
                        }
                    }
    if (bad) {
        failed++;
        printf("FAIL conv batch %d in %dx%dx%d cin %d cout %d kernel %dx%dx%d stride %d,%d,%d dilation %d,%d,%d "
               "pad %d,%d,%d groups %d act %d threads %d prepared %d: max error %g (or a guard was overwritten)\n",
               c->batch, c->in[0], c->in[1], c->in[2], c->cin, c->cout, c->kernel[0], c->kernel[1], c->kernel[2],
               c->stride[0], c->stride[1], c->stride[2], c->dilation[0], c->dilation[1], c->dilation[2], c->pad[0],
               c->pad[1], c->pad[2], c->groups, c->act, threads, prepared, max_err);
    } else {
        passed++;
    }
    free(x);
    free(w);
    free(bias);
    free(y);
    free(raw);
    free(prep);
}

int main(void)
{
    /* batch, in, kernel, stride, dilation, pad, pad_after, cin, cout, groups, act, bias */
    static const conv_case cases[] = {
        {128, {1, 28, 28}, {1, 3, 3}, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}, {0, 0, 0}, 1, 32, 1, GRAPHC_ACT_RELU, 1},
        {3, {1, 13, 13}, {1, 3, 3}, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}, {0, 0, 0}, 32, 64, 1, GRAPHC_ACT_RELU, 1},
        {1, {1, 9, 9}, {1, 3, 3}, {1, 1, 1}, {1, 1, 1}, {0, 1, 1}, {0, 1, 1}, 64, 64, 1, GRAPHC_ACT_RELU, 1},
        {5, {1, 9, 11}, {1, 3, 3}, {1, 1, 1}, {1, 1, 1}, {0, 1, 1}, {0, 1, 1}, 6, 8, 1, GRAPHC_ACT_NONE, 0},
        {2, {1, 10, 7}, {1, 4, 2}, {1, 2, 3}, {1, 1, 1}, {0, 1, 0}, {0, 2, 1}, 5, 19, 1, GRAPHC_ACT_SIGMOID, 1},
        {3, {1, 12, 12}, {1, 3, 3}, {1, 1, 1}, {1, 2, 3}, {0, 2, 3}, {0, 2, 3}, 9, 7, 1, GRAPHC_ACT_TANH, 1},
        {2, {1, 9, 8}, {1, 3, 3}, {1, 1, 1}, {1, 1, 1}, {0, 1, 1}, {0, 1, 1}, 12, 18, 3, GRAPHC_ACT_RELU, 1},
        {2, {1, 7, 7}, {1, 3, 3}, {1, 2, 2}, {1, 1, 1}, {0, 1, 1}, {0, 1, 1}, 8, 16, 8, GRAPHC_ACT_NONE, 1},
        {1, {1, 5, 6}, {1, 7, 8}, {1, 1, 1}, {1, 1, 1}, {0, 3, 4}, {0, 3, 3}, 3, 5, 1, GRAPHC_ACT_NONE, 1},
        {4, {1, 1, 23}, {1, 1, 5}, {1, 1, 2}, {1, 1, 1}, {0, 0, 2}, {0, 0, 2}, 70, 33, 1, GRAPHC_ACT_RELU, 1},
        {2, {5, 6, 7}, {3, 2, 3}, {1, 2, 1}, {2, 1, 1}, {2, 0, 1}, {2, 1, 1}, 4, 10, 2, GRAPHC_ACT_RELU, 0},
        {1, {1, 3, 3}, {1, 2, 1}, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}, {0, 0, 0}, 700, 9, 1, GRAPHC_ACT_NONE, 1},
        {2, {1, 3, 4}, {1, 3, 3}, {1, 1, 1}, {1, 1, 1}, {0, 1, 1}, {0, 1, 1}, 2100, 3, 1, GRAPHC_ACT_NONE, 1},
        {7, {1, 6, 6}, {1, 1, 1}, {1, 2, 2}, {1, 1, 1}, {0, 0, 0}, {0, 1, 1}, 6, 5, 1, GRAPHC_ACT_NONE, 1},
        {2, {1, 4, 4}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}, {0, 0, 0}, 16, 24, 2, GRAPHC_ACT_RELU, 1},
        /* the direct loop for few products per output (taps x cin_g <= 32): pairs of cells with whole windows
         * and single ones cut by padding (odd widths, so a pair cannot always form), strides and dilation
         * along the width, strips of 32 output channels and partial ones, groups (their channel offsets),
         * 1-D and 3-D windows */
        {3, {1, 11, 13}, {1, 3, 3}, {1, 1, 1}, {1, 1, 1}, {0, 1, 1}, {0, 1, 1}, 3, 64, 1, GRAPHC_ACT_RELU, 1},
        {2, {1, 9, 23}, {1, 3, 3}, {1, 1, 2}, {1, 1, 2}, {0, 1, 2}, {0, 0, 1}, 1, 32, 1, GRAPHC_ACT_NONE, 1},
        {2, {1, 8, 9}, {1, 2, 3}, {1, 2, 1}, {1, 1, 1}, {0, 1, 1}, {0, 1, 1}, 4, 144, 4, GRAPHC_ACT_TANH, 1},
        {3, {1, 1, 40}, {1, 1, 7}, {1, 1, 1}, {1, 1, 1}, {0, 0, 3}, {0, 0, 3}, 4, 33, 1, GRAPHC_ACT_RELU, 0},
        {2, {5, 6, 7}, {3, 2, 3}, {1, 2, 2}, {2, 1, 1}, {2, 0, 1}, {2, 1, 1}, 2, 40, 2, GRAPHC_ACT_SIGMOID, 1},
        /* Winograd F(2x2, 3x3) (3x3, stride 1, >= 16 channels, >= 128 tiles): many blocks of tiles, odd
         * output sizes (edge tiles), uneven padding, channel counts off the vector width; then a sigmoid,
         * which it does not take, on its geometry */
        {3, {1, 30, 30}, {1, 3, 3}, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}, {0, 0, 0}, 32, 64, 1, GRAPHC_ACT_RELU, 1},
        {4, {1, 16, 15}, {1, 3, 3}, {1, 1, 1}, {1, 1, 1}, {0, 1, 1}, {0, 1, 1}, 16, 24, 1, GRAPHC_ACT_RELU, 1},
        {8, {1, 7, 10}, {1, 3, 3}, {1, 1, 1}, {1, 1, 1}, {0, 0, 2}, {0, 2, 0}, 20, 17, 1, GRAPHC_ACT_NONE, 0},
        {8, {1, 8, 8}, {1, 3, 3}, {1, 1, 1}, {1, 1, 1}, {0, 1, 1}, {0, 1, 1}, 16, 16, 1, GRAPHC_ACT_SIGMOID, 1},
    };
    const int ncases = (int)(sizeof cases / sizeof cases[0]);
    int i, threads, prepared;
    for (prepared = 0; prepared <= 1; prepared++)
        for (threads = 1; threads <= 3; threads += 2)
            for (i = 0; i < ncases; i++)
                run_case(&cases[i], threads, prepared);
    printf("graphc_sgemm micro-kernel: %s\n", graphc_sgemm_kernel_name());
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
