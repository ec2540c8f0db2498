/* 3x3 convolutions, stride 1, by Winograd's F(m x m, 3x3) (see graphc_conv.h); their input gradient the same
 * way, their filter gradient by F(3x3, m x m) (at the end of this file).
 *
 * Each m x m block of output cells (a tile) is computed from the a x a input cells under it (a = m + 2) as
 *   Y = A^T [ (G g G^T) .* (B^T d B) ] A
 * for every (input, output) channel pair: a^2 products per tile instead of 9 m^2. Over channels this is a^2
 * independent GEMMs, one per position xi of the a x a transformed tile:
 *   M[xi] (tiles x cout) = V[xi] (tiles x cin) @ U[xi] (cin x cout),
 * with V = B^T d B the transformed input and U = G g G^T the transformed kernel.
 * The kernel is transformed and packed for the GEMM once per call, into region 0 of the scratch (threads
 * share the positions, then meet at one barrier), or, given prepared (inference), once per set of weights
 * by graphc_winograd_prepare. Then each thread takes its share of the tiles in blocks (BLOCK_FLOATS):
 * transforms their input into V (its own, cache-sized), runs the a^2 GEMMs into M, and transforms M back
 * into the output with the bias and activation. Channel loops are the inner ones, so the transforms
 * vectorize along channels (channels_last). Tiles that make one block (batch 1) are shared otherwise: by output
 * channels when the kernel comes prepared (run_channels), else by positions (run_positions).
 * Every thread's region has room for the packed matrices, since the scratch is sized per thread, but only
 * region 0's are used: the price is workspace.
 *
 * The tile size. The forward pass (inference and training) keeps m = 2: 4 products per output cell, within
 * a few float32 roundings of the direct sum (about 3e-7 of the output's scale, measured), and an input cell
 * reaches exactly the outputs whose windows hold it, so a NaN or inf spreads as in the direct sum.
 * The gradients take the m of 2, 3, 4 with the fewest products for their output size (choose_m): a 28x28
 * output m = 4 (2.25 products per cell), a 9x9 one m = 3 (3x3 tiles, none wasted). The price of larger tiles
 * is rounding (the transforms' coefficients reach 8 at m = 4): about 2e-6 (m = 3) and 6e-6 (m = 4) of the
 * gradient's scale, which would fail a forward output's rtol 1e-4 / atol 1e-5 on cells near zero but is far
 * below what a gradient step notices; and a NaN in dy reaches every cell of its tile's gradient.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "graphc_conv.h"
#include "graphc_kernels.h"
#include "graphc_nn.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__GNUC__) && !defined(__clang__)
/* ISO C mode: let GCC contract a * b + c into FMA and turn the ReLU's comparison into a vector select. */
#pragma GCC optimize("no-trapping-math", "fp-contract=fast")
#endif

/* The transforms' channel loops read and write up to 36 streams each: more than GCC checks for overlap before
 * vectorizing, so they are marked independent (they are: V, M and y never overlap x or each other).
 * (Clang's counterpart turns into an error under sanitizers when it cannot vectorize: left out.) */
#if defined(__GNUC__) && !defined(__clang__)
#define INDEPENDENT _Pragma("GCC ivdep")
#define UNROLL _Pragma("GCC unroll 16")
#else
#define INDEPENDENT
#define UNROLL
#endif
#define INLINE static inline __attribute__((always_inline))

/* The transforms' matrices, B^T (a x a), A^T (m x a) and G (a x 3), row-major, from the interpolation points
 * 0, 1, -1 (m = 2), 0, 1, -1, 2 (m = 3), 0, 1, -1, 2, -2 (m = 4), and infinity; m = 4's are Lavin and Gray's
 * ("Fast Algorithms for Convolutional Neural Networks", 2015). Every transform below is written once for any
 * m and instantiated for each (the *_m functions, inlined with m constant): the tables' entries are then
 * constants, zeros drop out of the sums and +-1 need no multiply (combine). */
#define A_MAX 6 /* a for the largest m */
static const float BT2[] = {1, 0, -1, 0, 0, 1, 1, 0, 0, -1, 1, 0, 0, 1, 0, -1};
static const float AT2[] = {1, 1, 1, 0, 0, 1, -1, -1};
static const float G2[] = {1, 0, 0, .5f, .5f, .5f, .5f, -.5f, .5f, 0, 0, 1};
static const float BT3[] = {2, -1, -2, 1, 0, 0, -2, -1, 1, 0, 0, 2, -3, 1, 0, 0, -1, 0, 1, 0, 0, 2, -1, -2, 1};
static const float AT3[] = {1, 1, 1, 1, 0, 0, 1, -1, 2, 0, 0, 1, 1, 4, 1};
static const float G3[] = {1.0f / 2, 0, 0, -1.0f / 2, -1.0f / 2, -1.0f / 2, -1.0f / 6, 1.0f / 6, -1.0f / 6,
                           1.0f / 6, 1.0f / 3, 2.0f / 3, 0, 0, 1};
static const float BT4[] = {4, 0, -5, 0, 1, 0, 0, -4, -4, 1, 1, 0, 0, 4, -4, -1, 1, 0,
                            0, -2, -1, 2, 1, 0, 0, 2, -1, -2, 1, 0, 0, 4, 0, -5, 0, 1};
static const float AT4[] = {1, 1, 1, 1, 1, 0, 0, 1, -1, 2, -2, 0, 0, 1, 1, 4, 4, 0, 0, 1, -1, 8, -8, 1};
static const float G4[] = {1.0f / 4, 0, 0, -1.0f / 6, -1.0f / 6, -1.0f / 6, -1.0f / 6, 1.0f / 6, -1.0f / 6,
                           1.0f / 24, 1.0f / 12, 1.0f / 6, 1.0f / 24, -1.0f / 12, 1.0f / 6, 0, 0, 1};
INLINE const float *bt_of(int m) { return m == 2 ? BT2 : m == 3 ? BT3 : BT4; }
INLINE const float *at_of(int m) { return m == 2 ? AT2 : m == 3 ? AT3 : AT4; }
INLINE const float *g_of(int m) { return m == 2 ? G2 : m == 3 ? G3 : G4; }

/* sum_j k[j * step] x[j] over j < n, k a constant table (see above). */
INLINE float combine(const float *k, int step, int n, const float *x)
{
    float sum = 0.0f;
    int j, any = 0;
    UNROLL
    for (j = 0; j < n; j++) {
        const float c = k[j * step];
        if (c != 0.0f) {
            const float t = c == 1.0f ? x[j] : c == -1.0f ? -x[j] : c * x[j];
            sum = any ? sum + t : t;
            any = 1;
        }
    }
    return sum;
}

#define BLOCK_FLOATS 65536 /* V and M of a block of tiles: a^2 x tiles x (cin + cout) floats, to stay in L2 */
/* Fewer tiles do not pay for transforming and packing the kernel on every call (measured with m = 2: a 9x9
 * image of 64 channels, 25 tiles, ran 1.5-2x slower than the implicit GEMM; 28x28, 196 tiles, slightly
 * faster). With the kernel prepared (inference) they do, down to PREPARED_MIN_TILES (measured at batch 1, 2
 * threads: 25 tiles of 32 -> 64 channels 1.6x faster than the implicit GEMM, 16 tiles of 64 -> 64 1.1x);
 * below it, the transformed matrices are read for too few tiles. Both count tiles of 2x2 output cells,
 * whatever m the call then takes. */
#define MIN_TILES 128
#define PREPARED_MIN_TILES 16
#define PARALLEL_MIN (1L << 21) /* multiply-adds (a^2 per tile and channel pair) below which one thread runs */
#define POSITIONS_MIN (1L << 18) /* the same for one block split by positions (two barriers) */

typedef struct {
    int m, a, positions;                    /* tile m x m from a x a input cells (a = m + 2), a^2 positions */
    int64_t n, h, w, oh, ow, th, tw, tiles; /* images, input and output sizes, tiles per row/column/total */
    int64_t pad_h, pad_w, cin, cout, block; /* block: tiles per block */
    int flip;                               /* w is a forward kernel (3, 3, cout, cin), flipped: dx's conv */
    int pool;                               /* y is the 2x2, stride-2 max-pool of the output (m = 2) */
    size_t v, m_floats, gemm, edge, zeros, u; /* floats of each part of a thread's region (u: one position */
    size_t packed, region;                  /* of the transformed kernel), then region 0's packed matrices */
} plan;

/* The gradients' tile size for an oh x ow output: the fewest products (tiles x (m + 2)^2) over m = 2, 3, 4;
 * a tie goes to the smaller m. */
static int choose_m(int64_t oh, int64_t ow)
{
    int m, best = 2;
    double best_cost = 0.0;
    for (m = 2; m <= 4; m++) {
        const double cost = (double)((oh + m - 1) / m) * (double)((ow + m - 1) / m) * (double)((m + 2) * (m + 2));
        if (m == 2 || cost < best_cost) best = m, best_cost = cost;
    }
    return best;
}

static int64_t tiles_2x2(int64_t batch, const graphc_window *win)
{
    return batch * ((win->out[1] + 1) / 2) * ((win->out[2] + 1) / 2);
}

int graphc_winograd_fits(const graphc_window *win, int64_t cin, int64_t cout, int64_t groups)
{
    return groups == 1 && win->in[0] == 1 && win->kernel[0] == 1 && win->kernel[1] == 3 && win->kernel[2] == 3 &&
           win->stride[1] == 1 && win->stride[2] == 1 && win->dilation[1] == 1 && win->dilation[2] == 1 &&
           cin >= 16 && cout >= 16;
}

int graphc_winograd_applies(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout, int64_t groups,
                            int prepared)
{
    return graphc_winograd_fits(win, cin, cout, groups) &&
           tiles_2x2(batch, win) >= (prepared ? PREPARED_MIN_TILES : MIN_TILES);
}

static plan make_plan(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout, int flip, int m,
                      int64_t block_floats)
{
    plan p;
    p.m = m, p.a = m + 2, p.positions = p.a * p.a;
    p.n = batch, p.h = win->in[1], p.w = win->in[2], p.oh = win->out[1], p.ow = win->out[2];
    p.th = (p.oh + m - 1) / m, p.tw = (p.ow + m - 1) / m, p.tiles = p.n * p.th * p.tw;
    p.pad_h = win->pad[1], p.pad_w = win->pad[2], p.cin = cin, p.cout = cout, p.flip = flip, p.pool = 0;
    p.block = block_floats / (p.positions * (cin + cout));
    p.block = p.block < 6 ? 6 : p.block / 6 * 6; /* whole micro-panels of the AVX2 kernel's 6 rows */
    if (p.block > p.tiles) p.block = p.tiles;
    p.v = graphc_scratch_round((size_t)(p.positions * p.block * cin));
    p.m_floats = graphc_scratch_round((size_t)(p.positions * p.block * cout));
    p.gemm = graphc_scratch_round(graphc_sgemm_scratch_floats(p.block, cout, cin));
    p.edge = graphc_scratch_round((size_t)(m * m * cout));
    p.zeros = graphc_scratch_round((size_t)(cin > cout ? cin : cout));
    p.u = graphc_scratch_round((size_t)(cin * cout));
    p.packed = graphc_scratch_round(graphc_sgemm_packed_b_size((int)cin, (int)cout));
    p.region = p.v + p.m_floats + p.gemm + p.edge + p.zeros + p.u + (size_t)p.positions * p.packed;
    return p;
}

/* The plan of a forward call: m = 2 (see the top of the file). */
static plan forward_plan(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout)
{
    return make_plan(batch, win, cin, cout, 0, 2, BLOCK_FLOATS);
}

/* A prepared kernel needs neither U nor the made kernel matrices, the region's last parts. */
static size_t scratch_floats(const plan *p, int prepared)
{
    return prepared ? p->region - p->u - (size_t)p->positions * p->packed : p->region;
}

size_t graphc_winograd_scratch_floats(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout,
                                      int prepared)
{
    plan p;
    if (batch <= 0) return 0;
    p = forward_plan(batch, win, cin, cout);
    return scratch_floats(&p, prepared);
}

/* U = (G g G^T)[xi], position xi = a i + j of the transformed kernel, for every channel pair: (cin x cout)
 * from w (3, 3, cin, cout), g[r][s] at tap 3r + s, [ci][co]; or, flipped, from a forward kernel (3, 3, cout,
 * cin) read at tap 8 - (3r + s), [co][ci], stored transposed (cout x cin). Either way the inner loop runs
 * along w's contiguous axis (read across it, the flipped case cost 2.4% of a ResNet training step), and
 * pack_kernel packs U as the GEMM's B. One position at a time, so a thread needs room for one matrix. */
static void transform_kernel(const plan *p, const float *w, int xi, float *U)
{
    const float *G = g_of(p->m), *gi = G + 3 * (xi / p->a), *gj = G + 3 * (xi % p->a);
    const int64_t plane = p->cin * p->cout, rows = p->flip ? p->cout : p->cin, cols = p->flip ? p->cin : p->cout;
    const int64_t tap0 = p->flip ? 8 * plane : 0, dtap = p->flip ? -plane : plane;
    int64_t a, b;
    for (a = 0; a < rows; a++) {
        const float *g = w + tap0 + a * cols; /* g[(3 * r + s) * dtap + b] */
        float *u = U + a * cols;
        INDEPENDENT
        for (b = 0; b < cols; b++) {
            float sum = 0.0f;
            int r, s;
            for (s = 0; s < 3; s++) { /* gj . (gi . g)[s] */
                float t = 0.0f;
                for (r = 0; r < 3; r++) t += gi[r] * g[(3 * r + s) * dtap + b];
                sum += gj[s] * t;
            }
            u[b] = sum;
        }
    }
}

/* U from transform_kernel, packed as the B (cin x cout) of position xi's GEMM. */
static void pack_kernel(const plan *p, const float *U, float *packed)
{
    graphc_sgemm_pack_b(p->flip, (int)p->cin, (int)p->cout, U, (int)(p->flip ? p->cin : p->cout), packed);
}

/* V[xi][j][c] = (B^T d B)[xi] for tiles [t0, t0 + nt): d the a x a input cells under tile t0 + j (zeros
 * outside the image). V[xi] holds ld tiles' rows (nt, or more when other threads fill the rest). */
INLINE void transform_input_m(const plan *p, const float *x, int64_t t0, int nt, int ld, const float *zeros,
                              float *V, const int m)
{
    const int a = m + 2;
    const float *BT = bt_of(m);
    const int64_t C = p->cin, stride = (int64_t)ld * C; /* floats between V[xi] and V[xi + 1] */
    int j, r, s;
    int64_t c;
    for (j = 0; j < nt; j++) {
        const int64_t t = t0 + j, img = t / (p->th * p->tw), ty = (t / p->tw) % p->th, tx = t % p->tw;
        const int64_t y0 = m * ty - p->pad_h, x0 = m * tx - p->pad_w;
        const float *d[A_MAX][A_MAX];
        float *v = V + (int64_t)j * C;
        for (r = 0; r < a; r++)
            for (s = 0; s < a; s++) {
                const int64_t yy = y0 + r, xx = x0 + s;
                d[r][s] = yy >= 0 && yy < p->h && xx >= 0 && xx < p->w ? x + ((img * p->h + yy) * p->w + xx) * C
                                                                      : zeros;
            }
        INDEPENDENT
        for (c = 0; c < C; c++) {
            float col[A_MAX], bd[A_MAX][A_MAX]; /* bd = B^T d */
            UNROLL
            for (s = 0; s < a; s++) {
                UNROLL
                for (r = 0; r < a; r++) col[r] = d[r][s][c];
                UNROLL
                for (r = 0; r < a; r++) bd[r][s] = combine(BT + r * a, 1, a, col);
            }
            UNROLL
            for (r = 0; r < a; r++) /* (B^T d) B, row r */
                UNROLL
                for (s = 0; s < a; s++) v[(r * a + s) * stride + c] = combine(BT + s * a, 1, a, bd[r]);
        }
    }
}

static void transform_input(const plan *p, const float *x, int64_t t0, int nt, int ld, const float *zeros, float *V)
{
    switch (p->m) {
    case 2: transform_input_m(p, x, t0, nt, ld, zeros, V, 2); break;
    case 3: transform_input_m(p, x, t0, nt, ld, zeros, V, 3); break;
    default: transform_input_m(p, x, t0, nt, ld, zeros, V, 4); break;
    }
}

/* act(A^T M A + bias) of one tile's channel: its m x m cells o[m r + s] (row-major), M[xi] at mm[xi * stride].
 * bias is never NULL (zeros instead): with a NULL test in the loop GCC loads it by a masked load, which
 * AMD's cores run slowly (a microcode assist per load) when the masked-off address is invalid. */
INLINE void tile_cells(const float *mm, int64_t stride, float bias, int relu, float *o, const int m)
{
    const int a = m + 2;
    const float *AT = at_of(m);
    float col[A_MAX], am[A_MAX][A_MAX]; /* am = A^T M (m x a) */
    int i, k, s;
    UNROLL
    for (s = 0; s < a; s++) {
        UNROLL
        for (k = 0; k < a; k++) col[k] = mm[(k * a + s) * stride];
        UNROLL
        for (i = 0; i < m; i++) am[i][s] = combine(AT + i * a, 1, a, col);
    }
    UNROLL
    for (i = 0; i < m; i++)
        UNROLL
        for (k = 0; k < m; k++) {
            const float v = combine(AT + k * a, 1, a, am[i]) + bias, r = v > 0.0f ? v : 0.0f;
            o[i * m + k] = relu ? r : v; /* (selects, no branch: the channel loop vectorizes) */
        }
}

/* One tile's cells, for every channel: cell m r + s at out[m r + s][co]. M[xi][co] at mm + xi * stride + co. */
INLINE void tile_output_m(const float *mm, int64_t stride, int64_t K, const float *bias, int relu,
                          float *const *out, const int m)
{
    int64_t co;
    int i;
    INDEPENDENT
    for (co = 0; co < K; co++) {
        float o[4 * 4];
        tile_cells(mm + co, stride, bias[co], relu, o, m);
        UNROLL
        for (i = 0; i < m * m; i++) out[i][co] = o[i];
    }
}

/* NaN-propagating maximum (as graphc_max_pool_f32), as selects one after another (no ||: the loop vectorizes). */
INLINE float max_nan(float a, float b)
{
    const float v = b > a ? b : a;
    return b != b ? b : v;
}

/* Pooled (m even): the maximum of each 2x2 window of the tile's cells, window (r, s) into out[m/2 r + s]. */
INLINE void tile_output_pooled_m(const float *mm, int64_t stride, int64_t K, const float *bias, int relu,
                                 float *const *out, const int m)
{
    int64_t co;
    int r, s;
    INDEPENDENT
    for (co = 0; co < K; co++) {
        float o[4 * 4];
        tile_cells(mm + co, stride, bias[co], relu, o, m);
        UNROLL
        for (r = 0; r < m / 2; r++)
            UNROLL
            for (s = 0; s < m / 2; s++) {
                const float *q = o + 2 * r * m + 2 * s;
                out[r * (m / 2) + s][co] = max_nan(max_nan(q[0], q[1]), max_nan(q[m], q[m + 1]));
            }
    }
}

/* y's cells of tiles [t0, t0 + nt) from M[xi][j][co] (M[xi] of ld rows, as V in transform_input), channels
 * [k0, k1). A tile over the edge of the output goes through edge (m^2 x cout floats), and only its cells inside
 * the output are copied. Pooled, y is the pool's output and a tile holds (m/2)^2 of its cells. */
INLINE void transform_output_m(const plan *p, const float *M, int64_t t0, int nt, int ld, const float *bias,
                               int act, float *edge, float *y, int64_t k0, int64_t k1, const int m)
{
    const int64_t K = p->cout, stride = (int64_t)ld * K;
    const int q = p->pool ? m / 2 : m;                                  /* y's cells per tile along each axis */
    const int64_t yh = p->pool ? p->oh / 2 : p->oh, yw = p->pool ? p->ow / 2 : p->ow; /* y's size */
    const int relu = act == GRAPHC_ACT_RELU;
    int j, r, s;
    for (j = 0; j < nt; j++) {
        const int64_t t = t0 + j, img = t / (p->th * p->tw), ty = (t / p->tw) % p->th, tx = t % p->tw;
        const int64_t oy = q * ty, ox = q * tx;
        const int rows = yh - oy < q ? (int)(yh - oy) : q, cols = yw - ox < q ? (int)(yw - ox) : q;
        float *y0 = y + ((img * yh + oy) * yw + ox) * K + k0;
        float *out[4 * 4];
        const int whole = rows == q && cols == q;
        for (r = 0; r < q; r++)
            for (s = 0; s < q; s++) out[r * q + s] = whole ? y0 + (r * yw + s) * K : edge + (r * q + s) * K + k0;
        if (p->pool)
            tile_output_pooled_m(M + (int64_t)j * K + k0, stride, k1 - k0, bias + k0, relu, out, m);
        else
            tile_output_m(M + (int64_t)j * K + k0, stride, k1 - k0, bias + k0, relu, out, m);
        if (!whole)
            for (r = 0; r < rows; r++)
                for (s = 0; s < cols; s++)
                    memcpy(y0 + (r * yw + s) * K, edge + (r * q + s) * K + k0, (size_t)(k1 - k0) * sizeof(float));
    }
}

static void transform_output(const plan *p, const float *M, int64_t t0, int nt, int ld, const float *bias, int act,
                             float *edge, float *y, int64_t k0, int64_t k1)
{
    switch (p->m) {
    case 2: transform_output_m(p, M, t0, nt, ld, bias, act, edge, y, k0, k1, 2); break;
    case 3: transform_output_m(p, M, t0, nt, ld, bias, act, edge, y, k0, k1, 3); break;
    default: transform_output_m(p, M, t0, nt, ld, bias, act, edge, y, k0, k1, 4); break;
    }
}

/* Thread t's tiles [lo, hi) of a team's even split, in blocks of `size` (the last one shorter): the bounds and the
 * size in whole micro-panels of 6 rows (the AVX2 kernel's; a short panel costs about a full one), size at most
 * p->block. */
static void thread_tiles(const plan *p, int t, int team, int64_t *lo, int64_t *hi, int64_t *size)
{
    int64_t blocks;
    *lo = t == 0 ? 0 : p->tiles * t / team / 6 * 6;
    *hi = t == team - 1 ? p->tiles : p->tiles * (t + 1) / team / 6 * 6;
    blocks = (*hi - *lo + p->block - 1) / p->block;
    *size = blocks > 0 ? ((*hi - *lo + blocks - 1) / blocks + 5) / 6 * 6 : p->block;
    *size = *size < p->block ? *size : p->block;
}

/* What thread t of team does: its share of the kernel's positions, transformed and packed into region 0,
 * then (after the team's one barrier) its 1/team of the tiles, in blocks. (Every team-th block instead left
 * one thread 112 of ResNet's 196 tiles at batch 1, the other 84.) */
static void run_part(const plan *p, const float *x, const float *w, const float *prepared, const float *bias,
                     float *y, int act, const graphc_scratch *scratch, int t, int team)
{
    float *region = graphc_scratch_region(scratch, t), *region0 = graphc_scratch_region(scratch, 0);
    float *V = region, *M = V + p->v, *edge = M + p->m_floats + p->gemm, *zeros = edge + p->edge;
    float *U = zeros + p->zeros;
    float *made = region0 + p->v + p->m_floats + p->gemm + p->edge + p->zeros + p->u; /* (when not prepared) */
    const float *packed = prepared ? prepared : made;
    const int64_t C = p->cin, K = p->cout;
    int64_t lo, hi, size, t0;
    graphc_scratch gs = graphc_scratch_thread(scratch, t);
    int xi;
    gs.base = M + p->m_floats;
    memset(zeros, 0, p->zeros * sizeof(float));
    if (prepared == NULL) {
        for (xi = t; xi < p->positions; xi += team) {
            transform_kernel(p, w, xi, U);
            pack_kernel(p, U, made + (size_t)xi * p->packed);
        }
        GRAPHC_OMP(omp barrier)
    }
    thread_tiles(p, t, team, &lo, &hi, &size);
    for (t0 = lo; t0 < hi; t0 += size) {
        const int nt = (int)(hi - t0 < size ? hi - t0 : size);
        transform_input(p, x, t0, nt, nt, zeros, V);
        for (xi = 0; xi < p->positions; xi++)
            graphc_sgemm_with_packed_b(nt, (int)K, (int)C, 1.0f, V + (size_t)xi * nt * C, (int)C,
                                       packed + (size_t)xi * p->packed, 0.0f, M + (size_t)xi * nt * K, (int)K, &gs);
        transform_output(p, M, t0, nt, nt, bias != NULL ? bias : zeros, act, edge, y, 0, K);
    }
}

/* One block of tiles (few tiles: batch 1) for a team: thread t transforms its share of the tiles into
 * region 0's V, runs the GEMMs of its share of the positions (their kernel matrices made by itself when
 * not prepared) into region 0's M, and transforms its tiles back. Two barriers. */
static void run_positions(const plan *p, const float *x, const float *w, const float *prepared, const float *bias,
                          float *y, int act, const graphc_scratch *scratch, int t, int team)
{
    float *region = graphc_scratch_region(scratch, t), *region0 = graphc_scratch_region(scratch, 0);
    float *V = region0, *M = V + p->v, *edge = region + p->v + p->m_floats + p->gemm, *zeros = edge + p->edge;
    float *U = zeros + p->zeros, *made = region0 + p->v + p->m_floats + p->gemm + p->edge + p->zeros + p->u;
    const float *packed = prepared ? prepared : made;
    const int64_t C = p->cin, K = p->cout;
    const int nt = (int)p->tiles, j0 = nt * t / team, j1 = nt * (t + 1) / team;
    const int x0 = p->positions * t / team, x1 = p->positions * (t + 1) / team;
    graphc_scratch gs = graphc_scratch_thread(scratch, t);
    int xi;
    gs.base = region + p->v + p->m_floats;
    memset(zeros, 0, p->zeros * sizeof(float));
    for (xi = x0; xi < x1 && prepared == NULL; xi++) {
        transform_kernel(p, w, xi, U);
        pack_kernel(p, U, made + (size_t)xi * p->packed);
    }
    transform_input(p, x, j0, j1 - j0, nt, zeros, V + (size_t)j0 * C);
    GRAPHC_OMP(omp barrier)
    for (xi = x0; xi < x1; xi++)
        graphc_sgemm_with_packed_b(nt, (int)K, (int)C, 1.0f, V + (size_t)xi * nt * C, (int)C,
                                   packed + (size_t)xi * p->packed, 0.0f, M + (size_t)xi * nt * K, (int)K, &gs);
    GRAPHC_OMP(omp barrier)
    transform_output(p, M + (size_t)j0 * K, j0, j1 - j0, nt, bias != NULL ? bias : zeros, act, edge, y, 0, K);
}

/* One block of tiles (batch 1) with the kernel prepared, for a team split by output channels: thread t
 * transforms every tile's input into its own V (a small duplicate), runs the GEMMs of its whole micro-panels of
 * columns into its own M and transforms those channels back. No barrier, where the positions' split
 * (run_positions) has two: at batch 1 on 2 threads, ResNet's 9x9x64 convolutions took 21 us against 24, the
 * CNN's pooled 13x13x32 -> 64 one 12 us against 14.7 (a harness calling graphc_winograd_f32 alone). */
static void run_channels(const plan *p, const float *x, const float *prepared, const float *bias, float *y, int act,
                         const graphc_scratch *scratch, int t, int team)
{
    float *V = graphc_scratch_region(scratch, t), *M = V + p->v, *edge = M + p->m_floats + p->gemm;
    float *zeros = edge + p->edge;
    const int64_t C = p->cin, K = p->cout, nr = graphc_sgemm_packed_nr(), panels = (K + nr - 1) / nr;
    const int64_t k0 = nr * (panels * t / team), end = nr * (panels * (t + 1) / team), k1 = end < K ? end : K;
    const int nt = (int)p->tiles;
    graphc_scratch gs = graphc_scratch_thread(scratch, t);
    int xi;
    gs.base = M + p->m_floats;
    memset(zeros, 0, p->zeros * sizeof(float));
    transform_input(p, x, 0, nt, nt, zeros, V);
    for (xi = 0; xi < p->positions; xi++)
        graphc_sgemm_with_packed_b_columns(nt, (int)K, (int)C, (int)k0, (int)k1, 1.0f, V + (size_t)xi * nt * C, (int)C,
                                           prepared + (size_t)xi * p->packed, 0.0f, M + (size_t)xi * nt * K, (int)K,
                                           &gs);
    transform_output(p, M, 0, nt, nt, bias != NULL ? bias : zeros, act, edge, y, k0, k1);
}

/* Threads for a plan's blocks of tiles: one below PARALLEL_MIN, else up to one per block. */
static int team_for(const plan *p, const graphc_scratch *scratch)
{
    const int64_t blocks = (p->tiles + p->block - 1) / p->block;
    int team = 1;
    if ((double)p->tiles * p->positions * (double)p->cin * (double)p->cout >= (double)PARALLEL_MIN) {
        team = graphc_scratch_threads(scratch);
        team = team < blocks ? team : (int)blocks;
    }
    return team;
}

/* Threads for one block split by positions (run_positions): from POSITIONS_MIN multiply-adds, up to one per
 * position; 1 when the blocks split instead, or too little work. */
static int positions_team(const plan *p, const graphc_scratch *scratch)
{
    int team = 1;
    if (p->tiles <= p->block &&
        (double)p->tiles * p->positions * (double)p->cin * (double)p->cout >= (double)POSITIONS_MIN) {
        team = graphc_scratch_threads(scratch);
        team = team < p->positions ? team : p->positions;
    }
    return team;
}

/* Threads for one block split by output channels (run_channels): as positions_team, when the kernel comes
 * prepared; up to one per micro-panel of columns. */
static int channels_team(const plan *p, const float *prepared, const graphc_scratch *scratch)
{
    const int panels = (int)((p->cout + graphc_sgemm_packed_nr() - 1) / graphc_sgemm_packed_nr());
    const int team = prepared != NULL ? positions_team(p, scratch) : 1;
    return team < panels ? team : panels;
}

static void run(const plan *p, const float *x, const float *w, const float *prepared, const float *bias, float *y,
                int act, const graphc_scratch *scratch)
{
    enum { BY_BLOCKS, BY_POSITIONS, BY_CHANNELS } split = BY_CHANNELS;
    int team;
    if (p->tiles <= 0)
        return;
    team = channels_team(p, prepared, scratch);
    if (team <= 1) split = BY_POSITIONS, team = positions_team(p, scratch);
    if (team <= 1) split = BY_BLOCKS, team = team_for(p, scratch);
    (void)team; /* (unused without OpenMP) */
    GRAPHC_OMP(omp parallel num_threads(team) if (team > 1)) /* (one thread: run inline) */
    {
        int t = 0, n = 1;
#ifdef _OPENMP
        t = omp_get_thread_num(), n = omp_get_num_threads();
#endif
        if (split == BY_CHANNELS && n > 1)
            run_channels(p, x, prepared, bias, y, act, scratch, t, n);
        else if (split == BY_POSITIONS && n > 1)
            run_positions(p, x, w, prepared, bias, y, act, scratch, t, n);
        else
            run_part(p, x, w, prepared, bias, y, act, scratch, t, n);
    }
}

void graphc_winograd_f32(const float *x, const float *w, const float *prepared, const float *bias, float *y,
                         int64_t batch, const graphc_window *win, int64_t cin, int64_t cout, int act,
                         const graphc_scratch *scratch)
{
    const plan p = forward_plan(batch, win, cin, cout);
    run(&p, x, w, prepared, bias, y, act, scratch);
}

/* Pooled: the forward's 2x2 tiles are the pool's windows, so only whole ones are computed (an odd last output
 * row or column, which the pool drops, is not), each transformed back into its maximum. */
static graphc_window even_output(const graphc_window *win)
{
    graphc_window t = *win;
    t.out[1] = win->out[1] / 2 * 2, t.out[2] = win->out[2] / 2 * 2;
    return t;
}

int graphc_winograd_pool_applies(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout, int64_t groups,
                                 int prepared)
{
    const graphc_window t = even_output(win);
    return graphc_winograd_applies(batch, &t, cin, cout, groups, prepared);
}

static plan pool_plan(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout)
{
    const graphc_window t = even_output(win);
    plan p = forward_plan(batch, &t, cin, cout);
    p.pool = 1;
    return p;
}

size_t graphc_winograd_pool_scratch_floats(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout,
                                           int prepared)
{
    plan p;
    if (batch <= 0) return 0;
    p = pool_plan(batch, win, cin, cout);
    return scratch_floats(&p, prepared);
}

void graphc_winograd_pool_f32(const float *x, const float *w, const float *prepared, const float *bias, float *y,
                              int64_t batch, const graphc_window *win, int64_t cin, int64_t cout, int act,
                              const graphc_scratch *scratch)
{
    const plan p = pool_plan(batch, win, cin, cout);
    run(&p, x, w, prepared, bias, y, act, scratch);
}

/* A plan for the kernel alone (its sizes do not depend on the image): one 3x3 image, one tile. */
static plan kernel_plan(int64_t cin, int64_t cout)
{
    static const graphc_window one = {{1, 3, 3}, {1, 1, 1}, {1, 3, 3}, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}};
    return forward_plan(1, &one, cin, cout);
}

/* The transformed, packed kernel matrices as run_part makes them, then room for one untransformed position
 * while making them. */
size_t graphc_winograd_prepared_floats(int64_t cin, int64_t cout)
{
    const plan p = kernel_plan(cin, cout);
    return (size_t)p.positions * p.packed + p.u;
}

void graphc_winograd_prepare(const float *w, int64_t cin, int64_t cout, float *prepared)
{
    const plan p = kernel_plan(cin, cout);
    float *U = prepared + (size_t)p.positions * p.packed;
    int xi;
    for (xi = 0; xi < p.positions; xi++) {
        transform_kernel(&p, w, xi, U);
        pack_kernel(&p, U, prepared + (size_t)xi * p.packed);
    }
}

/* The input gradient of a 3x3, stride-1 convolution is one too: dx[i] = sum_k dy[i + pad - k] w[k] is a
 * convolution of dy, padded by 2 - pad before, with the kernel flipped and its channels swapped. */
static graphc_window input_grad_window(const graphc_window *win)
{
    graphc_window t = *win;
    int a;
    for (a = 0; a < 3; a++) {
        t.in[a] = win->out[a], t.out[a] = win->in[a];
        t.pad[a] = win->kernel[a] - 1 - win->pad[a];
    }
    return t;
}

static plan input_grad_plan(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout)
{
    const graphc_window t = input_grad_window(win);
    return make_plan(batch, &t, cout, cin, 1, choose_m(t.out[1], t.out[2]), BLOCK_FLOATS);
}

int graphc_winograd_input_grad_applies(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout,
                                       int64_t groups)
{
    const graphc_window t = input_grad_window(win);
    return graphc_winograd_applies(batch, &t, cout, cin, groups, 0);
}

size_t graphc_winograd_input_grad_scratch_floats(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout)
{
    plan p;
    if (batch <= 0) return 0;
    p = input_grad_plan(batch, win, cin, cout);
    return scratch_floats(&p, 0);
}

void graphc_winograd_input_grad_f32(const float *dy, const float *w, float *dx, int64_t batch,
                                    const graphc_window *win, int64_t cin, int64_t cout, const graphc_scratch *scratch)
{
    const plan p = input_grad_plan(batch, win, cin, cout);
    run(&p, dy, w, NULL, NULL, dx, GRAPHC_ACT_NONE, scratch);
}

/* ------------------------------------------------------------------------------------------------ */
/* Filter gradient by F(3x3, m x m)
 *
 * dw[r][s] = sum over output cells (y, x) of x[y + r - pad][x + s - pad] dy[y][x] is a correlation of the
 * input with dy, whose result is the 3x3 kernel. Tiled by the forward pass's m x m output tiles, one tile adds
 * sum_{i,j} d[i + r][j + s] g[i][j] (d: the tile's a x a input cells, g: its m x m dy cells), which is
 * F(3x3, m x m): the forward algorithm's matrices transposed (its trilinear form read with dw as the output),
 *   dw_tile = G^T [ (A g A^T) .* (B^T d B) ] G,    A = (A^T)^T (a x m), B and G as above.
 * Summed over tiles, the sum moves inside: dw = G^T W G with W[xi] (cin x cout) = V[xi]^T D[xi], V the
 * forward pass's transformed input (tiles x cin) and D = A g A^T the transformed dy (tiles x cout): a^2
 * GEMMs with the tiles as their inner dimension.
 * Each thread accumulates its own W over every team-th block of tiles; then the threads sum the Ws and
 * transform them back, each for a range of input channels (in thread order: deterministic for a count). */

#define MAX_TEAM 256 /* threads whose Ws the filter gradient sums */

typedef struct {
    plan p;            /* the tiles (choose_m), input transform and block size */
    size_t d, w, gemm; /* floats of a region: V (p.v), D, W (a^2 x cin x cout), graphc_sgemm_ex's, zeros */
    size_t region;
} filter_plan;

static filter_plan make_filter_plan(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout)
{
    filter_plan f;
    f.p = make_plan(batch, win, cin, cout, 0, choose_m(win->out[1], win->out[2]), BLOCK_FLOATS);
    f.d = graphc_scratch_round((size_t)(f.p.positions * f.p.block * cout));
    f.w = graphc_scratch_round((size_t)(f.p.positions * cin * cout));
    f.gemm = graphc_scratch_round(graphc_sgemm_scratch_floats(cin, cout, f.p.block));
    f.region = f.p.v + f.d + f.w + f.gemm + f.p.zeros;
    return f;
}

int graphc_winograd_filter_grad_applies(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout,
                                        int64_t groups)
{
    return graphc_winograd_applies(batch, win, cin, cout, groups, 0);
}

size_t graphc_winograd_filter_grad_scratch_floats(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout)
{
    return batch > 0 ? make_filter_plan(batch, win, cin, cout).region : 0;
}

/* D[xi][j][co] = (A g A^T)[xi] for tiles [t0, t0 + nt): g the m x m dy cells of tile t0 + j (zeros past the
 * edge of the output). */
INLINE void transform_dy_m(const plan *p, const float *dy, int64_t t0, int nt, const float *zeros, float *D,
                           const int m)
{
    const int a = m + 2;
    const float *AT = at_of(m);
    const int64_t K = p->cout, stride = (int64_t)nt * K;
    int j, i, k, q;
    int64_t co;
    for (j = 0; j < nt; j++) {
        const int64_t t = t0 + j, img = t / (p->th * p->tw), ty = (t / p->tw) % p->th, tx = t % p->tw;
        const float *g[4][4];
        float *dd = D + (int64_t)j * K;
        for (i = 0; i < m; i++)
            for (k = 0; k < m; k++) {
                const int64_t oy = m * ty + i, ox = m * tx + k;
                g[i][k] = oy < p->oh && ox < p->ow ? dy + ((img * p->oh + oy) * p->ow + ox) * K : zeros;
            }
        INDEPENDENT
        for (co = 0; co < K; co++) {
            float col[4], ag[A_MAX][4]; /* ag = A g (a x m) */
            UNROLL
            for (q = 0; q < m; q++) {
                UNROLL
                for (k = 0; k < m; k++) col[k] = g[k][q][co];
                UNROLL
                for (i = 0; i < a; i++) ag[i][q] = combine(AT + i, a, m, col); /* A's row i: A^T's column i */
            }
            UNROLL
            for (i = 0; i < a; i++) /* (A g) A^T, row i */
                UNROLL
                for (k = 0; k < a; k++) dd[(i * a + k) * stride + co] = combine(AT + k, a, m, ag[i]);
        }
    }
}

static void transform_dy(const plan *p, const float *dy, int64_t t0, int nt, const float *zeros, float *D)
{
    switch (p->m) {
    case 2: transform_dy_m(p, dy, t0, nt, zeros, D, 2); break;
    case 3: transform_dy_m(p, dy, t0, nt, zeros, D, 3); break;
    default: transform_dy_m(p, dy, t0, nt, zeros, D, 4); break;
    }
}

/* dw[r][s][ci][co] = (G^T W G)[r][s] for input channels [c0, c1), W the sum of the team's Ws
 * (W[xi][ci][co] at parts[u] + xi * plane + ci * cout), summed into parts[0] first (each thread its own rows). */
INLINE void transform_filter_m(const plan *p, float *const *parts, int team, int64_t c0, int64_t c1, float *dw,
                               const int m)
{
    const int a = m + 2;
    const float *G = g_of(m);
    const int64_t K = p->cout, plane = p->cin * K;
    float *W = parts[0];
    int64_t ci, co;
    int xi, u;
    for (u = 1; u < team; u++)
        for (xi = 0; xi < a * a; xi++)
            for (ci = c0; ci < c1; ci++) {
                float *to = W + xi * plane + ci * K;
                const float *from = parts[u] + xi * plane + ci * K;
                for (co = 0; co < K; co++) to[co] += from[co];
            }
    for (ci = c0; ci < c1; ci++) {
        INDEPENDENT
        for (co = 0; co < K; co++) {
            float col[A_MAX], e[3][A_MAX]; /* e = G^T W (3 x a) */
            int r, i, k;
            UNROLL
            for (k = 0; k < a; k++) {
                UNROLL
                for (i = 0; i < a; i++) col[i] = W[(i * a + k) * plane + ci * K + co];
                UNROLL
                for (r = 0; r < 3; r++) e[r][k] = combine(G + r, 3, a, col); /* G^T's row r: G's column r */
            }
            UNROLL
            for (r = 0; r < 3; r++) { /* (G^T W) G, row r: tap 3r + s at o + s * plane */
                float *o = dw + (3 * r * p->cin + ci) * K + co;
                UNROLL
                for (k = 0; k < 3; k++) o[k * plane] = combine(G + k, 3, a, e[r]);
            }
        }
    }
}

static void transform_filter(const plan *p, float *const *parts, int team, int64_t c0, int64_t c1, float *dw)
{
    switch (p->m) {
    case 2: transform_filter_m(p, parts, team, c0, c1, dw, 2); break;
    case 3: transform_filter_m(p, parts, team, c0, c1, dw, 3); break;
    default: transform_filter_m(p, parts, team, c0, c1, dw, 4); break;
    }
}

/* What thread t of team does: W over its 1/team of the tiles (as run_part), then (after a barrier) dw for its
 * share of the input channels. */
static void filter_part(const filter_plan *f, const float *x, const float *dy, float *dw,
                        const graphc_scratch *scratch, int t, int team)
{
    const plan *p = &f->p;
    float *region = graphc_scratch_region(scratch, t);
    float *V = region, *D = V + p->v, *W = D + f->d, *zeros = W + f->w + f->gemm;
    float *parts[MAX_TEAM];
    const int64_t C = p->cin, K = p->cout;
    int64_t lo, hi, size, t0;
    graphc_scratch gs = graphc_scratch_thread(scratch, t);
    int xi, u;
    gs.base = W + f->w;
    memset(zeros, 0, p->zeros * sizeof(float));
    memset(W, 0, (size_t)(p->positions * C * K) * sizeof(float));
    thread_tiles(p, t, team, &lo, &hi, &size);
    for (t0 = lo; t0 < hi; t0 += size) {
        const int nt = (int)(hi - t0 < size ? hi - t0 : size);
        transform_input(p, x, t0, nt, nt, zeros, V);
        transform_dy(p, dy, t0, nt, zeros, D);
        for (xi = 0; xi < p->positions; xi++) /* W[xi] += V[xi]^T D[xi] */
            graphc_sgemm_ex(1, 0, (int)C, (int)K, nt, 1.0f, V + (size_t)xi * nt * C, (int)C, D + (size_t)xi * nt * K,
                            (int)K, 1.0f, W + (size_t)xi * C * K, (int)K, &gs);
    }
    for (u = 0; u < team; u++)
        parts[u] = graphc_scratch_region(scratch, u) + p->v + f->d;
    GRAPHC_OMP(omp barrier)
    transform_filter(p, parts, team, C * t / team, C * (t + 1) / team, dw);
}

void graphc_winograd_filter_grad_f32(const float *x, const float *dy, float *dw, int64_t batch,
                                     const graphc_window *win, int64_t cin, int64_t cout, const graphc_scratch *scratch)
{
    const filter_plan f = make_filter_plan(batch, win, cin, cout);
    int team;
    if (f.p.tiles <= 0) {
        memset(dw, 0, (size_t)(9 * cin * cout) * sizeof(float));
        return;
    }
    team = team_for(&f.p, scratch);
    team = team < MAX_TEAM ? team : MAX_TEAM;
    (void)team; /* (unused without OpenMP) */
    GRAPHC_OMP(omp parallel num_threads(team) if (team > 1)) /* (one thread: run inline) */
    {
        int t = 0, n = 1;
#ifdef _OPENMP
        t = omp_get_thread_num(), n = omp_get_num_threads();
#endif
        filter_part(&f, x, dy, dw, scratch, t, n);
    }
}
