/* Gradients of convolution and pooling on channels_last tensors (contracts in graphc_conv_grad.h).
 *
 * Filter gradient: 3x3 stride-1 convolutions with many tiles go to Winograd's F(3x3, m x m) (winograd.c). Others:
 * the patches of a block of output cells (im2col) go into the thread's region of the
 * caller's scratch and dw_g += patch^T @ dy_g, one graphc_sgemm_ex with a transposed A whose inner
 * dimension is the batch x spatial positions. Threads take contiguous ranges of
 * those positions, each accumulating a private partial dw (in its region too, bounded), reduced at the end.
 * When dw is wider than a partial or a patch row too wide for the buffer, dw is done in chunks of rows
 * (taps x channels) and columns (output channels). A 1x1, stride-1, unpadded convolution reads x in place.
 * Input gradient: cols = dy_g @ w_g^T for a block of output cells (transposed B: the kernel is read as
 * stored), then every row of cols is scatter-added to the input cells its taps met (col2im). Images
 * write disjoint parts of dx, so they are what the threads share.
 * Pooling gradients: one task per (image, block of channels), so tasks write disjoint parts of dx.
 * Inside a parallel region graphc_sgemm_ex runs serially; outside one it may use the threads itself.
 * Each region of the scratch holds graphc_sgemm_ex's scratch first, then the kernel's own buffers.
 */
#include "graphc_conv_grad.h"
#include "graphc_kernels.h"
#include "graphc_nn.h"

#include <stdint.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#define SCRATCH_FLOATS (1 << 17)      /* a block of patches or columns: 512 KB per thread, stays in L2 */
#define PARTIAL_FLOATS (1 << 17)      /* a thread's partial filter gradient: 512 KB */
#define MIN_ROWS 256                  /* rows per block at least, so the GEMM reuses each packed kernel */
                                      /* element that often (rows x width fill the scratch) */
#define MIN_COLS 16                   /* dw columns per chunk at least */
#define PARALLEL_MIN_WORK (1L << 18)  /* multiply-adds per thread below which fewer threads are faster */
#define PARALLEL_MIN 32768            /* pooling: elements read below which one thread is faster */
#define MAX_THREADS 256               /* partials reduced by the filter gradient */
#define GEMM_MAX_ROWS (1L << 30)      /* graphc_sgemm_ex takes int sizes */
#define POOL_CHUNK 256                /* channels per pooling task */

static int64_t prod3(const int64_t *a) { return a[0] * a[1] * a[2]; }

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* The window start of output cell p (within an image) along each axis: cell * stride - pad. */
static void window_start(const graphc_window *g, int64_t p, int64_t *s)
{
    s[0] = (p / (g->out[2] * g->out[1])) * g->stride[0] - g->pad[0];
    s[1] = ((p / g->out[2]) % g->out[1]) * g->stride[1] - g->pad[1];
    s[2] = (p % g->out[2]) * g->stride[2] - g->pad[2];
}

/* Columns per chunk of a (taps x channels) row, at most max_width: all taps, or tc taps of all channels, or
 * cc channels of one tap, so that a chunk is a contiguous run of kernel rows (tap * channels + channel).
 * The chunks are of nearly equal width (9 taps in chunks of at most 4 are split 3 + 3 + 3, not 4 + 4 + 1). */
static void split_columns(int64_t taps, int64_t channels, int64_t max_width, int64_t *tc, int64_t *cc)
{
    int64_t n;
    if (channels <= max_width) {
        n = (taps + max_width / channels - 1) / (max_width / channels);
        *tc = (taps + n - 1) / n;
        *cc = channels;
    } else {
        n = (channels + max_width - 1) / max_width;
        *tc = 1;
        *cc = (channels + n - 1) / n;
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* Filter gradient */

/* n floats: a loop for the few of a small-channel patch run (where memcpy/memset calls cost more than the
 * copy), the library's for longer runs. */
static inline void copy_floats(float *dst, const float *src, int64_t n)
{
    int64_t i;
    if (n > 16) {
        memcpy(dst, src, (size_t)n * sizeof(float));
        return;
    }
    for (i = 0; i < n; i++) dst[i] = src[i];
}

static inline void zero_floats(float *dst, int64_t n)
{
    int64_t i;
    if (n > 16) {
        memset(dst, 0, (size_t)n * sizeof(float));
        return;
    }
    for (i = 0; i < n; i++) dst[i] = 0.0f;
}

/* Patch rows of output cells [m0, m1) of the flattened (batch, *out) grid: taps [t0, t1) of input
 * channels [c0, c0 + cc) each (c0 counts from the first channel of x). Padding cells are zeros.
 * Cells and taps are walked with counters, not divisions: with few channels (a first layer's cin of 1-3)
 * a row is a few floats, and a dozen integer divisions per row took most of a CNN's filter gradient. */
static void pack_patches(const float *x, const graphc_window *g, int64_t cin, int64_t m0, int64_t m1, int64_t t0,
                         int64_t t1, int64_t c0, int64_t cc, float *patch)
{
    const int64_t k1 = g->kernel[1], k2 = g->kernel[2], in1 = g->in[1], in2 = g->in[2];
    const int64_t out1 = g->out[1], out2 = g->out[2], cells = prod3(g->in), per_image = prod3(g->out);
    const int64_t width = (t1 - t0) * cc, ta = t0 / (k1 * k2), tb = (t0 / k2) % k1, tc = t0 % k2;
    const int runs = cc == cin && g->dilation[2] == 1; /* taps along the last axis read contiguous cells */
    int64_t img = m0 / per_image, o0 = (m0 % per_image) / (out1 * out2), o1 = (m0 / out2) % out1, o2 = m0 % out2;
    int64_t m, k;
    for (m = m0; m < m1; m++) {
        const float *xn = x + img * cells * cin + c0;
        float *row = patch + (m - m0) * width;
        const int64_t s0 = o0 * g->stride[0] - g->pad[0], s1 = o1 * g->stride[1] - g->pad[1];
        const int64_t s2 = o2 * g->stride[2] - g->pad[2];
        int64_t lo0, hi0, lo1, hi1, lo2, hi2, t = t0, a = ta, b = tb, c = tc;
        graphc_tap_range(s0, g->dilation[0], g->kernel[0], g->in[0], &lo0, &hi0);
        graphc_tap_range(s1, g->dilation[1], k1, in1, &lo1, &hi1);
        graphc_tap_range(s2, g->dilation[2], k2, in2, &lo2, &hi2);
        while (t < t1) { /* taps [t, e): a run along the last kernel axis (tap a, b, c), kernel cells [c, ce) */
            const int64_t e = min64(t1, t - c + k2), ce = c + (e - t);
            const int64_t lo = min64(max64(lo2, c), ce), hi = max64(min64(hi2, ce), lo);
            float *dst = row + (t - t0) * cc;
            if (a < lo0 || a >= hi0 || b < lo1 || b >= hi1) {
                zero_floats(dst, (ce - c) * cc);
            } else {
                const float *src = xn + ((s0 + a * g->dilation[0]) * in1 + s1 + b * g->dilation[1]) * in2 * cin;
                zero_floats(dst, (lo - c) * cc);
                if (runs)
                    copy_floats(dst + (lo - c) * cc, src + (s2 + lo) * cin, (hi - lo) * cc);
                else
                    for (k = lo; k < hi; k++)
                        copy_floats(dst + (k - c) * cc, src + (s2 + k * g->dilation[2]) * cin, cc);
                zero_floats(dst + (hi - c) * cc, (ce - hi) * cc);
            }
            t = e, c = 0;
            if (++b == k1) b = 0, ++a;
        }
        if (++o2 == out2) { /* the next output cell */
            o2 = 0;
            if (++o1 == out1) {
                o1 = 0;
                if (++o0 == g->out[0]) o0 = 0, ++img;
            }
        }
    }
}

typedef struct {
    const float *x, *dy;
    const graphc_window *win;
    int64_t cin, cout, cin_g, cout_g, taps, M;
    int64_t tc, cc, nc;  /* chunk: tc taps x cc channels (rows of dw), nc output channels (columns) */
    int64_t rows;        /* output cells per GEMM */
    int direct;          /* 1x1, stride 1, unpadded: x's cells are the patch rows */
    size_t gemm, patch;  /* floats of a region: graphc_sgemm_ex's, then the patches, then a partial dw */
} filter_problem;

typedef struct {
    int64_t t0, t1, c0, cc, n0, nc; /* taps [t0, t1); channels [c0, c0 + cc) of x, [n0, n0 + nc) of dy */
    int64_t row0, col0;             /* the chunk's first element in dw */
} filter_chunk;

static int64_t count_chunks(const filter_problem *P)
{
    const int64_t nt = (P->taps + P->tc - 1) / P->tc, ncc = (P->cin_g + P->cc - 1) / P->cc;
    return (P->cout / P->cout_g) * nt * ncc * ((P->cout_g + P->nc - 1) / P->nc);
}

static filter_chunk chunk_at(const filter_problem *P, int64_t i)
{
    const int64_t ncc = (P->cin_g + P->cc - 1) / P->cc, nnc = (P->cout_g + P->nc - 1) / P->nc;
    const int64_t nt = (P->taps + P->tc - 1) / P->tc;
    const int64_t jn = i % nnc, jc = (i / nnc) % ncc, jt = (i / (nnc * ncc)) % nt, g = i / (nnc * ncc * nt);
    filter_chunk ch;
    const int64_t crel = jc * P->cc, nrel = jn * P->nc;
    ch.t0 = jt * P->tc;
    ch.t1 = min64(P->taps, ch.t0 + P->tc);
    ch.cc = min64(P->cin_g - crel, P->cc);
    ch.c0 = g * P->cin_g + crel;
    ch.nc = min64(P->cout_g - nrel, P->nc);
    ch.n0 = g * P->cout_g + nrel;
    ch.row0 = ch.t0 * P->cin_g + crel;
    ch.col0 = ch.n0;
    return ch;
}

/* out[r][j] (row stride ldo) = sum over output cells m in [m_lo, m_hi) of patch[m][r] * dy[m][n0 + j]. patch: the
 * thread's buffer; gs: the scratch of its GEMMs. */
static void filter_block(const filter_problem *P, const filter_chunk *ch, int64_t m_lo, int64_t m_hi, float *out,
                         int64_t ldo, float *patch, const graphc_scratch *gs)
{
    const int64_t width = (ch->t1 - ch->t0) * ch->cc;
    float beta = 0.0f;
    int64_t m0, r;
    if (m_hi <= m_lo) {
        for (r = 0; r < width; r++)
            memset(out + r * ldo, 0, (size_t)ch->nc * sizeof(float));
        return;
    }
    for (m0 = m_lo; m0 < m_hi; m0 += P->rows) {
        const int64_t mb = min64(m_hi - m0, P->rows);
        const float *a = P->x + m0 * P->cin + ch->c0;
        int64_t lda = P->cin;
        if (!P->direct) {
            pack_patches(P->x, P->win, P->cin, m0, m0 + mb, ch->t0, ch->t1, ch->c0, ch->cc, patch);
            a = patch;
            lda = width;
        }
        graphc_sgemm_ex(1, 0, (int)width, (int)ch->nc, (int)mb, 1.0f, a, (int)lda, P->dy + m0 * P->cout + ch->n0,
                        (int)P->cout, beta, out, (int)ldo, gs);
        beta = 1.0f;
    }
}

#ifdef _OPENMP
/* Threads split the output cells; per chunk, each fills its partial, then all sum the partials into dw. */
static void filter_grad_parallel(const filter_problem *P, int threads, float *dw, const graphc_scratch *scratch)
{
    const float *parts[MAX_THREADS];
    const int64_t nchunks = count_chunks(P);
#pragma omp parallel num_threads(threads)
    {
        const int team = omp_get_num_threads(), t = omp_get_thread_num();
        const int64_t m_lo = P->M * t / team, m_hi = P->M * (t + 1) / team;
        const graphc_scratch gs = graphc_scratch_thread(scratch, t);
        float *patch = gs.base + P->gemm, *partial = patch + P->patch;
        int64_t i, r, j;
        int u;
        parts[t] = partial;
        for (i = 0; i < nchunks; i++) {
            const filter_chunk ch = chunk_at(P, i);
            const int64_t width = (ch.t1 - ch.t0) * ch.cc;
            filter_block(P, &ch, m_lo, m_hi, partial, ch.nc, patch, &gs);
#pragma omp barrier
            for (r = width * t / team; r < width * (t + 1) / team; r++) {
                float *dst = dw + (ch.row0 + r) * P->cout + ch.col0;
                memcpy(dst, parts[0] + r * ch.nc, (size_t)ch.nc * sizeof(float));
                for (u = 1; u < team; u++) {
                    const float *src = parts[u] + r * ch.nc;
                    for (j = 0; j < ch.nc; j++)
                        dst[j] += src[j];
                }
            }
#pragma omp barrier /* the partials are free again */
        }
    }
}
#endif

/* The chunking and threads of a filter gradient, the same for the sizing function and the kernel. */
static int plan_filter(filter_problem *P, const graphc_window *win, int64_t batch, int64_t cin, int64_t cout,
                       int64_t groups, int max_team)
{
    int64_t max_width, rows;
    double work;
    int threads;
    P->win = win;
    P->cin = cin;
    P->cout = cout;
    P->cin_g = cin / groups;
    P->cout_g = cout / groups;
    P->taps = prod3(win->kernel);
    P->M = batch * prod3(win->out);
    P->direct = P->taps == 1 && prod3(win->stride) == 1 && win->pad[0] == 0 && win->pad[1] == 0 && win->pad[2] == 0;
    P->nc = min64(P->cout_g, PARTIAL_FLOATS / MIN_COLS);
    max_width = PARTIAL_FLOATS / P->nc;
    if (!P->direct)
        max_width = min64(max_width, SCRATCH_FLOATS / MIN_ROWS);
    split_columns(P->taps, P->cin_g, max_width, &P->tc, &P->cc);
    P->rows = P->direct ? GEMM_MAX_ROWS : SCRATCH_FLOATS / (P->tc * P->cc);
    rows = min64(P->rows, P->M); /* in one GEMM */
    P->gemm = graphc_sgemm_scratch_floats(P->tc * P->cc, P->nc, rows);
    P->patch = P->direct ? 0 : graphc_scratch_round((size_t)(rows * P->tc * P->cc));

    work = (double)P->M * (double)P->taps * (double)P->cin_g * (double)cout;
    threads = max_team > MAX_THREADS ? MAX_THREADS : max_team;
    if (work < (double)PARALLEL_MIN_WORK * threads)
        threads = (int)(work / PARALLEL_MIN_WORK);
    if (threads > P->M / MIN_ROWS)
        threads = (int)(P->M / MIN_ROWS);
    return threads;
}

size_t graphc_conv_filter_grad_scratch_floats(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout,
                                              int64_t groups)
{
    filter_problem P;
    size_t partial = 0, winograd = 0;
    if (prod3(win->kernel) * (cin / groups) <= 0 || cout <= 0 || batch <= 0)
        return 0;
    if (graphc_winograd_filter_grad_applies(batch, win, cin, cout, groups))
        winograd = graphc_winograd_filter_grad_scratch_floats(batch, win, cin, cout);
#ifdef _OPENMP
    if (plan_filter(&P, win, batch, cin, cout, groups, MAX_THREADS) > 1) /* threads may need a partial dw */
        partial = graphc_scratch_round((size_t)(P.tc * P.cc * P.nc));
#else
    plan_filter(&P, win, batch, cin, cout, groups, 1);
#endif
    return P.gemm + P.patch + partial > winograd ? P.gemm + P.patch + partial : winograd;
}

void graphc_conv_filter_grad_f32(const float *x, const float *dy, float *dw, int64_t batch,
                                 const graphc_window *win, int64_t cin, int64_t cout, int64_t groups,
                                 const graphc_scratch *scratch)
{
    filter_problem P;
    int threads;
    int64_t i, nchunks;
    if (prod3(win->kernel) * (cin / groups) <= 0 || cout <= 0)
        return;
    if (graphc_winograd_filter_grad_applies(batch, win, cin, cout, groups)) {
        graphc_winograd_filter_grad_f32(x, dy, dw, batch, win, cin, cout, scratch);
        return;
    }
    P.x = x;
    P.dy = dy;
    threads = plan_filter(&P, win, batch, cin, cout, groups, graphc_scratch_threads(scratch));
#ifdef _OPENMP
    if (threads > 1) {
        filter_grad_parallel(&P, threads, dw, scratch);
        return;
    }
#else
    (void)threads;
#endif
    nchunks = count_chunks(&P);
    for (i = 0; i < nchunks; i++) {
        const filter_chunk ch = chunk_at(&P, i);
        filter_block(&P, &ch, 0, P.M, dw + ch.row0 * cout + ch.col0, cout, scratch ? scratch->base + P.gemm : NULL,
                     scratch);
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* Input gradient */

/* dx += cols (rows: output cells [m0, m1) of the flattened (batch, *out) grid; columns: taps [t0, t1) x
 * channels [c0, c0 + cc) of x) scattered to the input cells those taps met; taps in padding are dropped. */
static void scatter_cols(const float *cols, const graphc_window *g, int64_t cin, int64_t m0, int64_t m1,
                         int64_t t0, int64_t t1, int64_t c0, int64_t cc, float *dx)
{
    const int64_t k1 = g->kernel[1], k2 = g->kernel[2], in1 = g->in[1], in2 = g->in[2];
    const int64_t cells = prod3(g->in), per_image = prod3(g->out), width = (t1 - t0) * cc;
    int64_t m, a, b, c, j;
    for (m = m0; m < m1; m++) {
        const float *src = cols + (m - m0) * width;
        float *dxn = dx + (m / per_image) * cells * cin + c0;
        int64_t s[3], lo0, hi0, lo1, hi1, lo2, hi2;
        window_start(g, m % per_image, s);
        graphc_tap_range(s[0], g->dilation[0], g->kernel[0], g->in[0], &lo0, &hi0);
        graphc_tap_range(s[1], g->dilation[1], k1, in1, &lo1, &hi1);
        graphc_tap_range(s[2], g->dilation[2], k2, in2, &lo2, &hi2);
        for (a = lo0; a < hi0; a++)
            for (b = lo1; b < hi1; b++) {
                float *row = dxn + ((s[0] + a * g->dilation[0]) * in1 + s[1] + b * g->dilation[1]) * in2 * cin;
                for (c = lo2; c < hi2; c++) {
                    const int64_t t = (a * k1 + b) * k2 + c;
                    const float *v;
                    float *dst;
                    if (t < t0 || t >= t1)
                        continue;
                    v = src + (t - t0) * cc;
                    dst = row + (s[2] + c * g->dilation[2]) * cin;
                    for (j = 0; j < cc; j++)
                        dst[j] += v[j];
                }
            }
    }
}

/* dx of images [n0, n1): blocks of output cells (spanning images, so small images still make tall GEMMs)
 * times each column chunk of the kernel, scattered. cols: the thread's buffer; gs: the scratch of its GEMMs. */
static void input_grad_images(const float *dy, const float *w, float *dx, int64_t n0, int64_t n1,
                              const graphc_window *win, int64_t cin, int64_t cout, int64_t groups, int64_t tc,
                              int64_t cc, float *cols, const graphc_scratch *gs)
{
    const int64_t cin_g = cin / groups, cout_g = cout / groups, taps = prod3(win->kernel);
    const int64_t p_out = prod3(win->out), m_end = n1 * p_out;
    int64_t gi, t0, c0, m0;
    memset(dx + n0 * prod3(win->in) * cin, 0, (size_t)((n1 - n0) * prod3(win->in) * cin) * sizeof(float));
    for (gi = 0; gi < groups; gi++)
        for (t0 = 0; t0 < taps; t0 += tc)
            for (c0 = 0; c0 < cin_g; c0 += cc) {
                const int64_t t1 = min64(taps, t0 + tc), c1 = min64(cin_g, c0 + cc);
                const int64_t width = (t1 - t0) * (c1 - c0), rows = SCRATCH_FLOATS / width;
                for (m0 = n0 * p_out; m0 < m_end; m0 += rows) {
                    const int64_t mb = min64(m_end - m0, rows);
                    graphc_sgemm_ex(0, 1, (int)mb, (int)width, (int)cout_g, 1.0f, dy + m0 * cout + gi * cout_g,
                                    (int)cout, w + (t0 * cin_g + c0) * cout + gi * cout_g, (int)cout, 0.0f, cols,
                                    (int)width, gs);
                    scatter_cols(cols, win, cin, m0, m0 + mb, t0, t1, gi * cin_g + c0, c1 - c0, dx);
                }
            }
}

/* 1x1, stride 1, unpadded: dx_g = dy_g @ w_g^T over all cells at once, no scatter. */
static int input_grad_direct(const graphc_window *win)
{
    return prod3(win->kernel) == 1 && prod3(win->stride) == 1 && win->pad[0] == 0 && win->pad[1] == 0 &&
           win->pad[2] == 0;
}

/* Floats of a region an input gradient uses for its GEMMs (first) and for a block of columns (after). */
static size_t input_grad_floats(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout, int64_t groups,
                                size_t *gemm)
{
    const int64_t cin_g = cin / groups, cout_g = cout / groups, M = batch * prod3(win->out);
    int64_t tc, cc, rows;
    if (input_grad_direct(win)) {
        *gemm = graphc_sgemm_scratch_floats(min64(batch * prod3(win->in), GEMM_MAX_ROWS), cin_g, cout_g);
        return *gemm;
    }
    split_columns(prod3(win->kernel), cin_g, SCRATCH_FLOATS / MIN_ROWS, &tc, &cc);
    rows = min64(M, SCRATCH_FLOATS); /* a chunk of width w takes SCRATCH_FLOATS / w rows at a time */
    *gemm = graphc_sgemm_scratch_floats(rows, tc * cc, cout_g);
    return *gemm + graphc_scratch_round((size_t)min64(M * tc * cc, SCRATCH_FLOATS));
}

size_t graphc_conv_input_grad_scratch_floats(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout,
                                             int64_t groups)
{
    size_t gemm, direct, winograd = 0;
    if (batch <= 0 || prod3(win->in) <= 0 || cin <= 0)
        return 0;
    direct = input_grad_floats(batch, win, cin, cout, groups, &gemm);
    if (graphc_winograd_input_grad_applies(batch, win, cin, cout, groups))
        winograd = graphc_winograd_input_grad_scratch_floats(batch, win, cin, cout);
    return direct > winograd ? direct : winograd;
}

void graphc_conv_input_grad_f32(const float *dy, const float *w, float *dx, int64_t batch,
                                const graphc_window *win, int64_t cin, int64_t cout, int64_t groups,
                                const graphc_scratch *scratch)
{
    const int64_t cin_g = cin / groups, cout_g = cout / groups;
    const int64_t taps = prod3(win->kernel), p_in = prod3(win->in), p_out = prod3(win->out);
    const double work = (double)batch * (double)p_out * (double)taps * (double)cin_g * (double)cout;
    size_t gemm;
    int64_t tc, cc, parts, part;
    if (batch <= 0 || p_in <= 0 || cin <= 0)
        return;
    if (graphc_winograd_input_grad_applies(batch, win, cin, cout, groups)) {
        graphc_winograd_input_grad_f32(dy, w, dx, batch, win, cin, cout, scratch);
        return;
    }
    if (input_grad_direct(win)) {
        const int64_t M = batch * p_in;
        int64_t gi, m0;
        for (gi = 0; gi < groups; gi++)
            for (m0 = 0; m0 < M; m0 += GEMM_MAX_ROWS)
                graphc_sgemm_ex(0, 1, (int)min64(M - m0, GEMM_MAX_ROWS), (int)cin_g, (int)cout_g, 1.0f,
                                dy + m0 * cout + gi * cout_g, (int)cout, w + gi * cout_g, (int)cout, 0.0f,
                                dx + m0 * cin + gi * cin_g, (int)cin, scratch);
        return;
    }
    input_grad_floats(batch, win, cin, cout, groups, &gemm);
    split_columns(taps, cin_g, SCRATCH_FLOATS / MIN_ROWS, &tc, &cc);
    /* Images scatter into disjoint parts of dx: each thread takes a contiguous range of them. With fewer
     * images than threads, one part runs and graphc_sgemm_ex may use the threads itself. */
    parts = graphc_scratch_threads(scratch);
    if (work < (double)PARALLEL_MIN_WORK * (double)parts)
        parts = (int64_t)(work / PARALLEL_MIN_WORK);
    parts = parts > batch ? batch : parts < 1 ? 1 : parts;
    GRAPHC_OMP(omp parallel for schedule(static) num_threads((int)parts) if (parts > 1))
    for (part = 0; part < parts; part++) {
        const int t = parts > 1 ? graphc_thread_num() : 0;
        const graphc_scratch gs = parts > 1 ? graphc_scratch_thread(scratch, t) : *scratch;
        input_grad_images(dy, w, dx, batch * part / parts, batch * (part + 1) / parts, win, cin, cout, groups, tc,
                          cc, graphc_scratch_region(scratch, t) + gemm, &gs);
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* Pooling gradients */

/* Cells [lo, hi) of an axis that the window starting at `start` covers. */
static void window_range(int64_t start, int64_t k, int64_t n, int64_t *lo, int64_t *hi)
{
    *lo = start > 0 ? start : 0;
    *hi = start + k < n ? start + k : n;
}

/* The real cells of output cell p's window (within an image); returns 0 when there are none. */
static int pool_window(const graphc_window *g, int64_t p, int64_t *lo, int64_t *hi)
{
    int64_t s[3], a;
    window_start(g, p, s);
    for (a = 0; a < 3; a++) {
        window_range(s[a], g->kernel[a], g->in[a], &lo[a], &hi[a]);
        if (hi[a] <= lo[a])
            return 0;
    }
    return 1;
}

/* Columns [0, cc) of every cell of an image (row stride `channels`) set to 0. */
static void zero_columns(float *d, int64_t cells, int64_t channels, int64_t cc)
{
    int64_t i;
    if (cc == channels) {
        memset(d, 0, (size_t)(cells * channels) * sizeof(float));
        return;
    }
    for (i = 0; i < cells; i++)
        memset(d + i * channels, 0, (size_t)cc * sizeof(float));
}

/* Both passes over a window run over cells in order with the channels innermost, branch-free, so they
 * vectorize: the first finds each channel's maximum, the second adds dy where a cell holds it. */
void graphc_max_pool_grad_f32(const float *x, const float *dy, float *dx, int64_t batch, const graphc_window *win,
                              int64_t channels, int all_ties)
{
    const int64_t cells = prod3(win->in), p_out = prod3(win->out), in1 = win->in[1], in2 = win->in[2];
    const int64_t chunks = (channels + POOL_CHUNK - 1) / POOL_CHUNK, tasks = batch * chunks;
    const double work = (double)batch * (double)p_out * (double)channels * (double)prod3(win->kernel);
    int64_t task;
    (void)work;
    if (channels <= 0 || batch <= 0)
        return;
    GRAPHC_OMP(omp parallel for schedule(static) if (work > PARALLEL_MIN && tasks > 1))
    for (task = 0; task < tasks; task++) {
        const int64_t n = task / chunks, c0 = (task % chunks) * POOL_CHUNK, cc = min64(channels - c0, POOL_CHUNK);
        const float *xn = x + n * cells * channels + c0, *dyn = dy + n * p_out * channels + c0;
        float *dxn = dx + n * cells * channels + c0;
        float best[POOL_CHUNK];
        int32_t done[POOL_CHUNK];
        int64_t p, j, a, b, c, lo[3], hi[3];
        zero_columns(dxn, cells, channels, cc);
        for (p = 0; p < p_out; p++) {
            const float *g = dyn + p * channels;
            if (!pool_window(win, p, lo, hi))
                continue;
            /* The first cell starts the maximum and a later one replaces it only when strictly greater, as
             * TensorFlow (a NaN first cell stays the maximum). */
            memcpy(best, xn + ((lo[0] * in1 + lo[1]) * in2 + lo[2]) * channels, (size_t)cc * sizeof(float));
            for (a = lo[0]; a < hi[0]; a++)
                for (b = lo[1]; b < hi[1]; b++)
                    for (c = lo[2]; c < hi[2]; c++) {
                        const float *xc = xn + ((a * in1 + b) * in2 + c) * channels;
                        for (j = 0; j < cc; j++)
                            best[j] = xc[j] > best[j] ? xc[j] : best[j];
                    }
            /* all ties: every cell equal to the maximum gets dy; else the first one (done: dy already given). */
            memset(done, 0, (size_t)cc * sizeof(int32_t));
            for (a = lo[0]; a < hi[0]; a++)
                for (b = lo[1]; b < hi[1]; b++)
                    for (c = lo[2]; c < hi[2]; c++) {
                        const int64_t off = ((a * in1 + b) * in2 + c) * channels;
                        const float *xc = xn + off;
                        float *dc = dxn + off;
                        if (all_ties)
                            for (j = 0; j < cc; j++)
                                dc[j] += xc[j] == best[j] ? g[j] : 0.0f;
                        else
                            for (j = 0; j < cc; j++) {
                                const int32_t hit = (xc[j] == best[j] || best[j] != best[j]) & !done[j];
                                dc[j] += hit ? g[j] : 0.0f;
                                done[j] |= hit;
                            }
                    }
        }
    }
}

void graphc_avg_pool_grad_f32(const float *dy, float *dx, int64_t batch, const graphc_window *win, int64_t channels)
{
    const int64_t cells = prod3(win->in), p_out = prod3(win->out), in1 = win->in[1], in2 = win->in[2];
    const int64_t chunks = (channels + POOL_CHUNK - 1) / POOL_CHUNK, tasks = batch * chunks;
    const double work = (double)batch * (double)p_out * (double)channels * (double)prod3(win->kernel);
    int64_t task;
    (void)work;
    if (channels <= 0 || batch <= 0)
        return;
    GRAPHC_OMP(omp parallel for schedule(static) if (work > PARALLEL_MIN && tasks > 1))
    for (task = 0; task < tasks; task++) {
        const int64_t n = task / chunks, c0 = (task % chunks) * POOL_CHUNK, cc = min64(channels - c0, POOL_CHUNK);
        const float *dyn = dy + n * p_out * channels + c0;
        float *dxn = dx + n * cells * channels + c0;
        float share[POOL_CHUNK];
        int64_t p, j, a, b, c, lo[3], hi[3];
        zero_columns(dxn, cells, channels, cc);
        for (p = 0; p < p_out; p++) {
            const float *g = dyn + p * channels;
            float count;
            if (!pool_window(win, p, lo, hi))
                continue;
            count = (float)((hi[0] - lo[0]) * (hi[1] - lo[1]) * (hi[2] - lo[2]));
            for (j = 0; j < cc; j++)
                share[j] = g[j] / count;
            for (a = lo[0]; a < hi[0]; a++)
                for (b = lo[1]; b < hi[1]; b++)
                    for (c = lo[2]; c < hi[2]; c++) {
                        float *dc = dxn + ((a * in1 + b) * in2 + c) * channels;
                        for (j = 0; j < cc; j++)
                            dc[j] += share[j];
                    }
        }
    }
}
