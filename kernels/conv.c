/* Convolution, transposed convolution and pooling on channels_last tensors (contracts in graphc_conv.h).
 *
 * Convolution packs the patches of a block of output cells (rows of the flattened batch x spatial grid)
 * into the thread's region of the caller's scratch and multiplies them by the kernel with graphc_sgemm:
 *     y[m][o] = sum over (tap, c) of patch[m][tap * cin_g + c] * w[tap * cin_g + c][o]
 * A block holds at most SCRATCH_FLOATS floats, so it has SCRATCH_FLOATS / width rows (all rows when fewer);
 * when a patch row alone is too wide (huge kernels), its columns are split into chunks whose products
 * accumulate in y. Each region holds graphc_sgemm's scratch first, then the patches (see conv_plan).
 * A 1x1 stride-1 convolution reads x directly (a plain GEMM). Transposed convolution multiplies a block
 * of input cells by the transposed kernel and scatter-adds the products into the output (col2im).
 * Blocks of rows (convolution) or images (transposed) are shared by OpenMP threads; inside a parallel
 * region graphc_sgemm runs serially, outside one (small problems) it may use the threads itself.
 */
#include "graphc_conv.h"
#include "graphc_kernels.h"
#include "graphc_nn.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#ifndef SCRATCH_FLOATS /* (a -D flag may override it, for tuning) */
#define SCRATCH_FLOATS (1 << 17)      /* 512 KB per thread: a block of patches stays in L2 */
#endif
#define MIN_ROWS 32                   /* patch rows per block at least (for an efficient GEMM) */
#define MAX_KC 1024                   /* input channels per GEMM of a transposed convolution */
#define PARALLEL_MIN_WORK (1L << 18)  /* multiply-adds below which one thread is faster */
#define PARALLEL_MIN 32768            /* pooling: elements read below which one thread is faster */
#define GEMM_MAX_ROWS (1L << 30)      /* graphc_sgemm takes int sizes */

static int64_t prod3(const int64_t *a) { return a[0] * a[1] * a[2]; }

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* What a kernel's loop body passes to graphc_sgemm: the whole scratch from the calling thread (the GEMM
 * may start threads itself), thread t's region alone from a team of its own. */
static graphc_scratch gemm_scratch(const graphc_scratch *scratch, int par, int t)
{
    return par ? graphc_scratch_thread(scratch, t) : *scratch;
}

static float activate(float v, int act)
{
    switch (act) {
    case GRAPHC_ACT_RELU:
        return v < 0.0f ? 0.0f : v; /* NaN stays NaN, as np.maximum(x, 0) */
    case GRAPHC_ACT_SIGMOID:
        return 1.0f / (1.0f + expf(-v));
    case GRAPHC_ACT_TANH:
        return tanhf(v);
    default:
        return v;
    }
}

/* dst[j] = act(src[j] + (bias ? bias[j] : 0)) for j < n; dst may be src. The activation is chosen
 * outside the loops so ReLU and the copy vectorize. */
static void store_act(float *dst, const float *src, const float *bias, int64_t n, int act)
{
    int64_t j;
    if (act == GRAPHC_ACT_RELU) {
        if (bias)
            for (j = 0; j < n; j++) {
                const float v = src[j] + bias[j];
                dst[j] = v < 0.0f ? 0.0f : v;
            }
        else
            for (j = 0; j < n; j++)
                dst[j] = src[j] < 0.0f ? 0.0f : src[j];
    } else if (act == GRAPHC_ACT_NONE) {
        if (bias)
            for (j = 0; j < n; j++)
                dst[j] = src[j] + bias[j];
        else if (dst != src)
            for (j = 0; j < n; j++)
                dst[j] = src[j];
    } else {
        for (j = 0; j < n; j++)
            dst[j] = activate(src[j] + (bias ? bias[j] : 0.0f), act);
    }
}

/* rows x n block of y (row stride ld): y = act(y + bias). */
static void bias_act(float *y, int64_t rows, int64_t n, int64_t ld, const float *bias, int act)
{
    int64_t i;
    if (bias == NULL && act == GRAPHC_ACT_NONE)
        return;
    for (i = 0; i < rows; i++)
        store_act(y + i * ld, y + i * ld, bias, n, act);
}

static void copy_floats(float *dst, const float *src, int64_t n)
{
    int64_t i;
    for (i = 0; i < n; i++)
        dst[i] = src[i];
}

/* ------------------------------------------------------------------------------------------------ */
/* Convolution */

/* Patch rows of output cells [m0, m1) of the flattened (batch, *out) grid, for taps [t0, t1) and the
 * input channels [c0, c1) of each; coff is the group's first input channel. Row width (t1-t0)*(c1-c0);
 * padding cells are zeros. */
static void pack_patches(const float *x, const graphc_window *g, int64_t cin, int64_t coff, int64_t m0,
                         int64_t m1, int64_t t0, int64_t t1, int64_t c0, int64_t c1, float *patch)
{
    const int64_t k0 = g->kernel[0], k1 = g->kernel[1], k2 = g->kernel[2], taps = k0 * k1 * k2;
    const int64_t in1 = g->in[1], in2 = g->in[2], cells = prod3(g->in);
    const int64_t o1 = g->out[1], o2 = g->out[2], per_image = prod3(g->out);
    const int64_t cc = c1 - c0, width = (t1 - t0) * cc;
    const int all_taps = t0 == 0 && t1 == taps;
    /* whole cells, undilated along the last axis: a run of taps along it is one contiguous copy */
    const int runs = all_taps && coff == 0 && c0 == 0 && c1 == cin && g->dilation[2] == 1;
    int64_t m;
    for (m = m0; m < m1; m++) {
        const int64_t n = m / per_image, p = m % per_image;
        const int64_t s0 = (p / (o2 * o1)) * g->stride[0] - g->pad[0];
        const int64_t s1 = ((p / o2) % o1) * g->stride[1] - g->pad[1];
        const int64_t s2 = (p % o2) * g->stride[2] - g->pad[2];
        const float *xn = x + n * cells * cin + coff + c0;
        float *row = patch + (m - m0) * width;
        int64_t lo0, hi0, lo1, hi1, lo2, hi2, a, b, c;
        graphc_tap_range(s0, g->dilation[0], k0, g->in[0], &lo0, &hi0);
        graphc_tap_range(s1, g->dilation[1], k1, in1, &lo1, &hi1);
        graphc_tap_range(s2, g->dilation[2], k2, in2, &lo2, &hi2);
        if (all_taps) {
            for (a = 0; a < k0; a++) {
                for (b = 0; b < k1; b++) {
                    float *dst = row + (a * k1 + b) * k2 * cc;
                    const float *src;
                    if (a < lo0 || a >= hi0 || b < lo1 || b >= hi1) {
                        memset(dst, 0, (size_t)(k2 * cc) * sizeof(float));
                        continue;
                    }
                    src = xn + ((s0 + a * g->dilation[0]) * in1 + s1 + b * g->dilation[1]) * in2 * cin;
                    memset(dst, 0, (size_t)(lo2 * cc) * sizeof(float));
                    if (runs)
                        memcpy(dst + lo2 * cc, src + (s2 + lo2) * cin, (size_t)((hi2 - lo2) * cc) * sizeof(float));
                    else
                        for (c = lo2; c < hi2; c++)
                            copy_floats(dst + c * cc, src + (s2 + c * g->dilation[2]) * cin, cc);
                    memset(dst + hi2 * cc, 0, (size_t)((k2 - hi2) * cc) * sizeof(float));
                }
            }
        } else {
            int64_t t;
            for (t = t0; t < t1; t++) {
                float *dst = row + (t - t0) * cc;
                a = t / (k1 * k2);
                b = (t / k2) % k1;
                c = t % k2;
                if (a < lo0 || a >= hi0 || b < lo1 || b >= hi1 || c < lo2 || c >= hi2)
                    memset(dst, 0, (size_t)cc * sizeof(float));
                else
                    copy_floats(dst, xn + (((s0 + a * g->dilation[0]) * in1 + s1 + b * g->dilation[1]) * in2
                                           + s2 + c * g->dilation[2]) * cin, cc);
            }
        }
    }
}

/* How a convolution uses its scratch, the same for the sizing function and the kernel: columns per
 * chunk of a patch row (all taps, or tc taps of all channels, or cc channels of one tap), the most patch
 * rows per block, and the floats of a region: graphc_sgemm's first, then one block of patches. */
typedef struct {
    int direct;     /* 1x1, stride 1, unpadded: the input cells are the patch rows (no patches) */
    int64_t tc, cc, rows;
    size_t gemm, total;
} conv_plan;

static conv_plan plan_conv(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout, int64_t groups)
{
    const int64_t cin_g = cin / groups, cout_g = cout / groups;
    const int64_t taps = prod3(win->kernel), M = batch * prod3(win->out), K = taps * cin_g;
    const int64_t max_width = SCRATCH_FLOATS / MIN_ROWS;
    conv_plan c;
    c.direct = taps == 1 && prod3(win->stride) == 1 && win->pad[0] == 0 && win->pad[1] == 0 && win->pad[2] == 0;
    c.tc = taps, c.cc = cin_g, c.rows = M;
    if (c.direct) {
        c.gemm = c.total = graphc_sgemm_scratch_floats(min64(M, GEMM_MAX_ROWS), cout_g, cin_g);
        return c;
    }
    if (K > max_width) {
        if (cin_g <= max_width) {
            c.tc = max_width / cin_g;
        } else {
            c.tc = 1;
            c.cc = max_width;
        }
    }
    c.rows = min64(SCRATCH_FLOATS / (c.tc * c.cc), M);
    c.gemm = graphc_sgemm_scratch_floats(c.rows, cout_g, c.tc * c.cc);
    c.total = c.gemm + graphc_scratch_round((size_t)(c.rows * c.tc * c.cc));
    return c;
}

size_t graphc_conv_scratch_floats(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout,
                                  int64_t groups)
{
    if (batch <= 0 || prod3(win->out) <= 0 || cout <= 0)
        return 0;
    return plan_conv(batch, win, cin, cout, groups).total;
}

void graphc_conv_f32(const float *x, const float *w, const float *bias, float *y, int64_t batch,
                     const graphc_window *win, int64_t cin, int64_t cout, int64_t groups, int act,
                     const graphc_scratch *scratch)
{
    const int64_t cin_g = cin / groups, cout_g = cout / groups;
    const int64_t taps = prod3(win->kernel), M = batch * prod3(win->out), K = taps * cin_g;
    conv_plan plan;
    int64_t tc, cc, rows, nblocks, blk;
    int threads, chunked, par;
    if (M <= 0 || cout <= 0)
        return;
    plan = plan_conv(batch, win, cin, cout, groups);
    if (plan.direct) {
        int64_t gi, m0;
        for (gi = 0; gi < groups; gi++)
            for (m0 = 0; m0 < M; m0 += GEMM_MAX_ROWS)
                graphc_sgemm_bias_act((int)min64(M - m0, GEMM_MAX_ROWS), (int)cout_g, (int)cin_g,
                                      x + m0 * cin + gi * cin_g, (int)cin, w + gi * cout_g, (int)cout,
                                      bias ? bias + gi * cout_g : NULL, act, y + m0 * cout + gi * cout_g, (int)cout,
                                      scratch);
        return;
    }
    tc = plan.tc;
    cc = plan.cc;
    chunked = tc < taps || cc < cin_g;
    rows = plan.rows;
    threads = graphc_scratch_threads(scratch);
    if (threads > 1 && rows * threads > M) { /* small problem: one block per thread */
        rows = (M + threads - 1) / threads;
        if (rows < MIN_ROWS)
            rows = MIN_ROWS;
    }
    nblocks = (M + rows - 1) / rows;
    par = threads > 1 && nblocks > 1 && (double)M * (double)K * (double)cout > (double)PARALLEL_MIN_WORK * 2;

    GRAPHC_OMP(omp parallel for schedule(static) num_threads(threads) if (par))
    for (blk = 0; blk < nblocks; blk++) {
        const int t = graphc_thread_num();
        const graphc_scratch gs = gemm_scratch(scratch, par, t);
        float *patch = graphc_scratch_region(scratch, t) + plan.gemm;
        const int64_t m0 = blk * rows, mb = min64(M - m0, rows);
        int64_t gi;
        for (gi = 0; gi < groups; gi++) {
            float *yb = y + m0 * cout + gi * cout_g;
            const float *bg = bias ? bias + gi * cout_g : NULL;
            if (!chunked) {
                pack_patches(x, win, cin, gi * cin_g, m0, m0 + mb, 0, taps, 0, cin_g, patch);
                graphc_sgemm_bias_act((int)mb, (int)cout_g, (int)K, patch, (int)K, w + gi * cout_g, (int)cout, bg,
                                      act, yb, (int)cout, &gs);
            } else {
                int64_t t0, c0;
                float beta = 0.0f;
                for (t0 = 0; t0 < taps; t0 += tc) {
                    for (c0 = 0; c0 < cin_g; c0 += cc) {
                        const int64_t t1 = min64(taps, t0 + tc), c1 = min64(cin_g, c0 + cc);
                        const int64_t width = (t1 - t0) * (c1 - c0);
                        pack_patches(x, win, cin, gi * cin_g, m0, m0 + mb, t0, t1, c0, c1, patch);
                        graphc_sgemm((int)mb, (int)cout_g, (int)width, 1.0f, patch, (int)width,
                                     w + (t0 * cin_g + c0) * cout + gi * cout_g, (int)cout, beta, yb, (int)cout, &gs);
                        beta = 1.0f;
                    }
                }
                bias_act(yb, mb, cout_g, cout, bg, act);
            }
        }
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* Transposed convolution */

/* bt[ci - k0][(t - t0) * (c1 - c0) + co - c0] = w[t][co][ci]: the kernel as a (cin, taps * cout) matrix. */
static void transpose_kernel(const float *w, int64_t cin, int64_t cout, int64_t k0, int64_t k1, int64_t t0,
                             int64_t t1, int64_t c0, int64_t c1, float *bt)
{
    const int64_t cc = c1 - c0, width = (t1 - t0) * cc;
    int64_t t, co, ci;
    for (t = t0; t < t1; t++)
        for (co = c0; co < c1; co++) {
            const float *src = w + (t * cout + co) * cin;
            float *dst = bt + (t - t0) * cc + (co - c0);
            for (ci = k0; ci < k1; ci++)
                dst[(ci - k0) * width] = src[ci];
        }
}

/* yn += the products cols (rows: input cells [m0, m1) of one image; columns: taps [t0, t1) x output
 * channels [c0, c1)) scattered to the output cells they reach. */
static void scatter_add(const float *cols, const graphc_window *g, int64_t cout, int64_t m0, int64_t m1,
                        int64_t t0, int64_t t1, int64_t c0, int64_t c1, float *yn)
{
    const int64_t k1 = g->kernel[1], k2 = g->kernel[2], in1 = g->in[1], in2 = g->in[2];
    const int64_t cc = c1 - c0, width = (t1 - t0) * cc;
    int64_t m, t, j;
    for (m = m0; m < m1; m++) {
        const int64_t b0 = (m / (in2 * in1)) * g->stride[0] - g->pad[0];
        const int64_t b1 = ((m / in2) % in1) * g->stride[1] - g->pad[1];
        const int64_t b2 = (m % in2) * g->stride[2] - g->pad[2];
        const float *src = cols + (m - m0) * width;
        for (t = t0; t < t1; t++) {
            const int64_t o0 = b0 + (t / (k1 * k2)) * g->dilation[0];
            const int64_t o1 = b1 + ((t / k2) % k1) * g->dilation[1];
            const int64_t o2 = b2 + (t % k2) * g->dilation[2];
            const float *s = src + (t - t0) * cc;
            float *dst;
            if (o0 < 0 || o0 >= g->out[0] || o1 < 0 || o1 >= g->out[1] || o2 < 0 || o2 >= g->out[2])
                continue;
            dst = yn + ((o0 * g->out[1] + o1) * g->out[2] + o2) * cout + c0;
            for (j = 0; j < cc; j++)
                dst[j] += s[j];
        }
    }
}

/* How a transposed convolution uses its scratch: kc input channels per GEMM, tc taps x cc output channels
 * per chunk, the most input cells per GEMM, and the floats of a region: graphc_sgemm's, then the chunk of
 * the transposed kernel (kc x width), then the products (rows x width). */
typedef struct {
    int64_t kc, tc, cc, rows;
    size_t gemm, kernel, total;
} transpose_plan;

static transpose_plan plan_transpose(const graphc_window *win, int64_t cin, int64_t cout)
{
    const int64_t taps = prod3(win->kernel);
    transpose_plan c;
    int64_t max_width;
    c.kc = cin < MAX_KC ? cin : MAX_KC;
    max_width = (SCRATCH_FLOATS / 2) / (c.kc > 0 ? c.kc : 1);
    if (taps * cout <= max_width) {
        c.tc = taps;
        c.cc = cout;
    } else if (cout <= max_width) {
        c.tc = max_width / cout;
        c.cc = cout;
    } else {
        c.tc = 1;
        c.cc = max_width;
    }
    c.rows = min64((SCRATCH_FLOATS - c.kc * c.tc * c.cc) / (c.tc * c.cc), prod3(win->in));
    c.gemm = graphc_sgemm_scratch_floats(c.rows, c.tc * c.cc, c.kc);
    c.kernel = graphc_scratch_round((size_t)(c.kc * c.tc * c.cc));
    c.total = c.gemm + c.kernel + graphc_scratch_round((size_t)(c.rows * c.tc * c.cc));
    return c;
}

size_t graphc_conv_transpose_scratch_floats(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout)
{
    if (batch <= 0 || prod3(win->out) <= 0 || cout <= 0 || cin <= 0)
        return 0;
    return plan_transpose(win, cin, cout).total;
}

void graphc_conv_transpose_f32(const float *x, const float *w, const float *bias, float *y, int64_t batch,
                               const graphc_window *win, int64_t cin, int64_t cout, int act,
                               const graphc_scratch *scratch)
{
    const int64_t taps = prod3(win->kernel), p_in = prod3(win->in), p_out = prod3(win->out);
    transpose_plan plan;
    int64_t kc, tc, cc, rows, n;
    int threads, par;
    if (batch <= 0 || p_out <= 0 || cout <= 0)
        return;
    plan = plan_transpose(win, cin, cout);
    kc = plan.kc, tc = plan.tc, cc = plan.cc, rows = plan.rows > 0 ? plan.rows : 1;
    /* Images scatter into disjoint outputs, so they are what the threads share. */
    threads = graphc_scratch_threads(scratch);
    par = threads > 1 && batch > 1 &&
          (double)batch * (double)p_in * (double)taps * (double)cin * (double)cout > (double)PARALLEL_MIN_WORK * 2;

    GRAPHC_OMP(omp parallel for schedule(static) num_threads(threads) if (par))
    for (n = 0; n < batch; n++) {
        const int t = graphc_thread_num();
        const graphc_scratch gs = gemm_scratch(scratch, par, t);
        float *bt = cin > 0 ? graphc_scratch_region(scratch, t) + plan.gemm : NULL;
        float *cols = cin > 0 ? bt + plan.kernel : NULL;
        const float *xn = x + n * p_in * cin;
        float *yn = y + n * p_out * cout;
        int64_t p, t0, c0, m0, k0;
        for (p = 0; p < p_out; p++) {
            if (bias)
                memcpy(yn + p * cout, bias, (size_t)cout * sizeof(float));
            else
                memset(yn + p * cout, 0, (size_t)cout * sizeof(float));
        }
        if (cin > 0) {
            for (t0 = 0; t0 < taps; t0 += tc) {
                for (c0 = 0; c0 < cout; c0 += cc) {
                    const int64_t t1 = min64(taps, t0 + tc), c1 = min64(cout, c0 + cc);
                    const int64_t width = (t1 - t0) * (c1 - c0);
                    if (kc == cin) /* the whole kernel chunk fits: transpose it once per image */
                        transpose_kernel(w, cin, cout, 0, cin, t0, t1, c0, c1, bt);
                    for (m0 = 0; m0 < p_in; m0 += rows) {
                        const int64_t mb = min64(p_in - m0, rows);
                        for (k0 = 0; k0 < cin; k0 += kc) {
                            const int64_t k1 = min64(cin, k0 + kc);
                            if (kc < cin)
                                transpose_kernel(w, cin, cout, k0, k1, t0, t1, c0, c1, bt);
                            graphc_sgemm((int)mb, (int)width, (int)(k1 - k0), 1.0f, xn + m0 * cin + k0, (int)cin,
                                         bt, (int)width, k0 ? 1.0f : 0.0f, cols, (int)width, &gs);
                        }
                        scatter_add(cols, win, cout, m0, m0 + mb, t0, t1, c0, c1, yn);
                    }
                }
            }
        }
        bias_act(yn, p_out, cout, cout, NULL, act);
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* Pooling */

/* Cells [lo, hi) of an axis that the window starting at `start` covers. */
static void window_range(int64_t start, int64_t k, int64_t n, int64_t *lo, int64_t *hi)
{
    *lo = start > 0 ? start : 0;
    *hi = start + k < n ? start + k : n;
}

static void pool(const float *x, float *y, int64_t batch, const graphc_window *g, int64_t channels, int is_max)
{
    const int64_t out0 = g->out[0], out1 = g->out[1], out2 = g->out[2];
    const int64_t rows = batch * out0 * out1, cells = prod3(g->in);
    const double work = (double)rows * (double)out2 * (double)channels * (double)prod3(g->kernel);
    int64_t r;
    (void)work;
    GRAPHC_OMP(omp parallel for schedule(static) if (work > PARALLEL_MIN))
    for (r = 0; r < rows; r++) {
        const int64_t n = r / (out0 * out1);
        const float *xn = x + n * cells * channels;
        float *yr = y + r * out2 * channels;
        int64_t lo0, hi0, lo1, hi1, lo2, hi2, ow, a, b, c, j;
        window_range((r / out1 % out0) * g->stride[0] - g->pad[0], g->kernel[0], g->in[0], &lo0, &hi0);
        window_range((r % out1) * g->stride[1] - g->pad[1], g->kernel[1], g->in[1], &lo1, &hi1);
        for (ow = 0; ow < out2; ow++) {
            float *yc = yr + ow * channels;
            window_range(ow * g->stride[2] - g->pad[2], g->kernel[2], g->in[2], &lo2, &hi2);
            for (j = 0; j < channels; j++)
                yc[j] = is_max ? -INFINITY : 0.0f;
            for (a = lo0; a < hi0; a++)
                for (b = lo1; b < hi1; b++)
                    for (c = lo2; c < hi2; c++) {
                        const float *xc = xn + ((a * g->in[1] + b) * g->in[2] + c) * channels;
                        if (is_max)
                            for (j = 0; j < channels; j++) {
                                const float v = xc[j];
                                yc[j] = (v > yc[j] || v != v) ? v : yc[j];
                            }
                        else
                            for (j = 0; j < channels; j++)
                                yc[j] += xc[j];
                    }
            if (!is_max) {
                const float count = (float)((hi0 - lo0) * (hi1 - lo1) * (hi2 - lo2));
                for (j = 0; j < channels; j++)
                    yc[j] /= count;
            }
        }
    }
}

void graphc_max_pool_f32(const float *x, float *y, int64_t batch, const graphc_window *win, int64_t channels)
{
    pool(x, y, batch, win, channels, 1);
}

void graphc_avg_pool_f32(const float *x, float *y, int64_t batch, const graphc_window *win, int64_t channels)
{
    pool(x, y, batch, win, channels, 0);
}
