/* 3x3 convolutions, stride 1, by Winograd's F(2x2, 3x3) (see graphc_conv.h); their input gradient the same
 * way, their filter gradient by F(3x3, 2x2) (at the end of this file).
 *
 * Each 2x2 block of output cells (a tile) is computed from the 4x4 input cells under it as
 *   Y = A^T [ (G g G^T) .* (B^T d B) ] A
 * for every (input, output) channel pair: 16 products per tile instead of 36. Over channels this is 16
 * independent GEMMs, one per position xi of the 4x4 transformed tile:
 *   M[xi] (tiles x cout) = V[xi] (tiles x cin) @ U[xi] (cin x cout),
 * with V = B^T d B the transformed input and U = G g G^T the transformed kernel.
 * The kernel is transformed and packed for the GEMM once per call, into region 0 of the scratch (threads
 * share the 16 positions, then meet at one barrier), or, given prepared (inference), once per set of weights
 * by graphc_winograd_prepare. Then each thread takes blocks of tiles (TILE_FLOATS):
 * transforms their input into V (its own, cache-sized), runs the 16 GEMMs into M, and transforms M back
 * into the output with the bias and activation. Channel loops are the inner ones, so the transforms
 * vectorize along channels (channels_last).
 * Every thread's region has room for the 16 packed matrices, since the scratch is sized per thread, but only
 * region 0's are used: the price is workspace (toy ResNet exported for 8 threads: 3.5 MB instead of 2.2).
 *
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]   G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]
 *   A^T = [1 1 1 0; 0 1 -1 -1]
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

/* The transforms' channel loops read and write 16 streams each: more than GCC checks for overlap before
 * vectorizing, so they are marked independent (they are: V, M and y never overlap x or each other).
 * (Clang's counterpart turns into an error under sanitizers when it cannot vectorize: left out.) */
#if defined(__GNUC__) && !defined(__clang__)
#define INDEPENDENT _Pragma("GCC ivdep")
#else
#define INDEPENDENT
#endif

#define TILE_FLOATS 4096  /* tiles per block: TILE_FLOATS / (cin + cout), so V and M of a block fit in L2 */
/* Fewer tiles do not pay for transforming and packing the kernel on every call (measured: a 9x9 image of
 * 64 channels, 25 tiles, ran 1.5-2x slower than the implicit GEMM; 28x28, 196 tiles, slightly faster).
 * With the kernel prepared (inference) they do, down to PREPARED_MIN_TILES (measured at batch 1, 2
 * threads: 25 tiles of 32 -> 64 channels 1.6x faster than the implicit GEMM, 16 tiles of 64 -> 64 1.1x);
 * below it, the 16 transformed matrices (16/9 of the kernel's size) are read for too few tiles. */
#define MIN_TILES 128
#define PREPARED_MIN_TILES 16
#define PARALLEL_MIN (1L << 21) /* multiply-adds (16 per tile and channel pair) below which one thread runs */
#define POSITIONS_MIN (1L << 18) /* the same for one block split by positions (two barriers) */

typedef struct {
    int64_t n, h, w, oh, ow, th, tw, tiles; /* images, input and output sizes, tiles per row/column/total */
    int64_t pad_h, pad_w, cin, cout, block; /* block: tiles per block */
    int flip;                               /* w is a forward kernel (3, 3, cout, cin), flipped: dx's conv */
    int pool;                               /* y is the 2x2, stride-2 max-pool of the output: one cell a tile */
    size_t v, m, gemm, edge, zeros, u;      /* floats of each part of a thread's region (u: one position of */
    size_t packed, region;                  /* the transformed kernel), then region 0's 16 packed matrices */
} plan;

int graphc_winograd_fits(const graphc_window *win, int64_t cin, int64_t cout, int64_t groups)
{
    return groups == 1 && win->in[0] == 1 && win->kernel[0] == 1 && win->kernel[1] == 3 && win->kernel[2] == 3 &&
           win->stride[1] == 1 && win->stride[2] == 1 && win->dilation[1] == 1 && win->dilation[2] == 1 &&
           cin >= 16 && cout >= 16;
}

int graphc_winograd_applies(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout, int64_t groups,
                            int prepared)
{
    const int64_t tiles = batch * ((win->out[1] + 1) / 2) * ((win->out[2] + 1) / 2);
    return graphc_winograd_fits(win, cin, cout, groups) && tiles >= (prepared ? PREPARED_MIN_TILES : MIN_TILES);
}

static plan make_plan(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout, int flip)
{
    plan p;
    p.n = batch, p.h = win->in[1], p.w = win->in[2], p.oh = win->out[1], p.ow = win->out[2];
    p.th = (p.oh + 1) / 2, p.tw = (p.ow + 1) / 2, p.tiles = p.n * p.th * p.tw;
    p.pad_h = win->pad[1], p.pad_w = win->pad[2], p.cin = cin, p.cout = cout, p.flip = flip, p.pool = 0;
    p.block = TILE_FLOATS / (cin + cout);
    p.block = p.block < 6 ? 6 : p.block / 6 * 6; /* whole micro-panels of the AVX2 kernel's 6 rows */
    if (p.block > p.tiles) p.block = p.tiles;
    p.v = graphc_scratch_round((size_t)(16 * p.block * cin));
    p.m = graphc_scratch_round((size_t)(16 * p.block * cout));
    p.gemm = graphc_scratch_round(graphc_sgemm_scratch_floats(p.block, cout, cin));
    p.edge = graphc_scratch_round((size_t)(4 * cout));
    p.zeros = graphc_scratch_round((size_t)(cin > cout ? cin : cout));
    p.u = graphc_scratch_round((size_t)(cin * cout));
    p.packed = graphc_scratch_round(graphc_sgemm_packed_b_size((int)cin, (int)cout));
    p.region = p.v + p.m + p.gemm + p.edge + p.zeros + p.u + 16 * p.packed;
    return p;
}

/* A prepared kernel needs neither U nor the made kernel matrices, the region's last parts. */
size_t graphc_winograd_scratch_floats(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout,
                                      int prepared)
{
    plan p;
    if (batch <= 0) return 0;
    p = make_plan(batch, win, cin, cout, 0);
    return prepared ? p.region - p.u - 16 * p.packed : p.region;
}

/* U = (G g G^T)[xi], position xi = 4i + j of the transformed kernel, for every channel pair: (cin x cout)
 * from w (3, 3, cin, cout), g[r][s] at tap 3r + s, [ci][co]; or, flipped, from a forward kernel (3, 3, cout,
 * cin) read at tap 8 - (3r + s), [co][ci], stored transposed (cout x cin). Either way the inner loop runs
 * along w's contiguous axis (read across it, the flipped case cost 2.4% of a ResNet training step), and
 * pack_kernel packs U as the GEMM's B. One position at a time, so a thread needs room for one matrix. */
static void transform_kernel(const plan *p, const float *w, int xi, float *U)
{
    static const float G[4][3] = {{1.0f, 0.0f, 0.0f}, {0.5f, 0.5f, 0.5f}, {0.5f, -0.5f, 0.5f}, {0.0f, 0.0f, 1.0f}};
    const float *gi = G[xi / 4], *gj = G[xi % 4];
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

/* V[xi][j][c] = (B^T d B)[xi] for tiles [t0, t0 + nt): d the 4x4 input cells under tile t0 + j (zeros
 * outside the image). V[xi] holds ld tiles' rows (nt, or more when other threads fill the rest). */
static void transform_input(const plan *p, const float *x, int64_t t0, int nt, int ld, const float *zeros, float *V)
{
    const int64_t C = p->cin, stride = (int64_t)ld * C; /* floats between V[xi] and V[xi + 1] */
    int j, r, s;
    int64_t c;
    for (j = 0; j < nt; j++) {
        const int64_t t = t0 + j, img = t / (p->th * p->tw), ty = (t / p->tw) % p->th, tx = t % p->tw;
        const int64_t y0 = 2 * ty - p->pad_h, x0 = 2 * tx - p->pad_w;
        const float *d[4][4];
        float *v = V + (int64_t)j * C;
        for (r = 0; r < 4; r++)
            for (s = 0; s < 4; s++) {
                const int64_t yy = y0 + r, xx = x0 + s;
                d[r][s] = yy >= 0 && yy < p->h && xx >= 0 && xx < p->w ? x + ((img * p->h + yy) * p->w + xx) * C
                                                                      : zeros;
            }
        INDEPENDENT
        for (c = 0; c < C; c++) {
            float b[4][4]; /* B^T d: column s of row combinations */
            for (s = 0; s < 4; s++) {
                const float d0 = d[0][s][c], d1 = d[1][s][c], d2 = d[2][s][c], d3 = d[3][s][c];
                b[0][s] = d0 - d2, b[1][s] = d1 + d2, b[2][s] = d2 - d1, b[3][s] = d1 - d3;
            }
            for (r = 0; r < 4; r++) { /* (B^T d) B */
                v[(4 * r + 0) * stride + c] = b[r][0] - b[r][2];
                v[(4 * r + 1) * stride + c] = b[r][1] + b[r][2];
                v[(4 * r + 2) * stride + c] = b[r][2] - b[r][1];
                v[(4 * r + 3) * stride + c] = b[r][1] - b[r][3];
            }
        }
    }
}

/* act(A^T M A + bias) of one tile's channel co: its 2x2 cells o[0..3] (row-major), M[xi] at m[xi * stride]. */
static inline __attribute__((always_inline)) void tile_cells(const float *m, int64_t stride, float b, int relu,
                                                             float o[4])
{
    float a[2][4];
    int s, r;
    for (s = 0; s < 4; s++) { /* A^T M */
        const float m0 = m[(0 + s) * stride], m1 = m[(4 + s) * stride];
        const float m2 = m[(8 + s) * stride], m3 = m[(12 + s) * stride];
        a[0][s] = m0 + m1 + m2, a[1][s] = m1 - m2 - m3;
    }
    for (r = 0; r < 2; r++) { /* (A^T M) A */
        o[2 * r] = a[r][0] + a[r][1] + a[r][2] + b;
        o[2 * r + 1] = a[r][1] - a[r][2] - a[r][3] + b;
    }
    if (relu)
        for (r = 0; r < 4; r++) o[r] = o[r] > 0.0f ? o[r] : 0.0f;
}

/* One tile's cells into o0..o3, for every channel. M[xi][co] at m + xi * stride + co.
 * bias is never NULL (zeros instead): with a NULL test in the loop GCC loads it by a masked load, which
 * AMD's cores run slowly (a microcode assist per load) when the masked-off address is invalid. */
static void tile_output(const float *m, int64_t stride, int64_t K, const float *bias, int relu, float *o0, float *o1,
                        float *o2, float *o3)
{
    int64_t co;
    INDEPENDENT
    for (co = 0; co < K; co++) {
        float o[4];
        tile_cells(m + co, stride, bias[co], relu, o);
        o0[co] = o[0], o1[co] = o[1], o2[co] = o[2], o3[co] = o[3];
    }
}

/* Pooled: the maximum of the tile's cells alone, into y (NaN propagates, as graphc_max_pool_f32). */
static void tile_output_pooled(const float *m, int64_t stride, int64_t K, const float *bias, int relu, float *y)
{
    int64_t co;
    INDEPENDENT
    for (co = 0; co < K; co++) {
        float o[4], top, bottom, v;
        tile_cells(m + co, stride, bias[co], relu, o);
        /* (selects one after another, no || : the loop vectorizes) */
        top = o[1] > o[0] ? o[1] : o[0];
        top = o[1] != o[1] ? o[1] : top;
        bottom = o[3] > o[2] ? o[3] : o[2];
        bottom = o[3] != o[3] ? o[3] : bottom;
        v = bottom > top ? bottom : top;
        y[co] = bottom != bottom ? bottom : v;
    }
}

/* y's cells of tiles [t0, t0 + nt) from M[xi][j][co] (M[xi] of ld rows, as V in transform_input). A tile
 * over the edge of an odd-sized output goes through edge (4 x cout floats), and only its cells inside the
 * output are copied. */
static void transform_output(const plan *p, const float *M, int64_t t0, int nt, int ld, const float *bias, int act,
                             float *edge, float *y)
{
    const int64_t K = p->cout, stride = (int64_t)ld * K;
    int j, r, s;
    for (j = 0; j < nt; j++) {
        const int64_t t = t0 + j, img = t / (p->th * p->tw), ty = (t / p->tw) % p->th, tx = t % p->tw;
        const int64_t oy = 2 * ty, ox = 2 * tx;
        const int rows = oy + 1 < p->oh ? 2 : 1, cols = ox + 1 < p->ow ? 2 : 1;
        float *y0 = y + ((img * p->oh + oy) * p->ow + ox) * K;
        if (p->pool) { /* (the plan's output is whole tiles) */
            tile_output_pooled(M + (int64_t)j * K, stride, K, bias, act == GRAPHC_ACT_RELU, y + t * K);
            continue;
        }
        if (rows == 2 && cols == 2) {
            tile_output(M + (int64_t)j * K, stride, K, bias, act == GRAPHC_ACT_RELU, y0, y0 + K, y0 + p->ow * K,
                        y0 + (p->ow + 1) * K);
            continue;
        }
        tile_output(M + (int64_t)j * K, stride, K, bias, act == GRAPHC_ACT_RELU, edge, edge + K, edge + 2 * K,
                    edge + 3 * K);
        for (r = 0; r < rows; r++)
            for (s = 0; s < cols; s++)
                memcpy(y0 + (r * p->ow + s) * K, edge + (2 * r + s) * K, (size_t)K * sizeof(float));
    }
}

/* What thread t of team does: its share of the kernel's 16 positions, transformed and packed into region 0,
 * then (after the team's one barrier) every team-th block of tiles. */
static void run_part(const plan *p, const float *x, const float *w, const float *prepared, const float *bias,
                     float *y, int act, const graphc_scratch *scratch, int t, int team)
{
    float *region = graphc_scratch_region(scratch, t), *region0 = graphc_scratch_region(scratch, 0);
    float *V = region, *M = V + p->v, *edge = M + p->m + p->gemm, *zeros = edge + p->edge, *U = zeros + p->zeros;
    float *made = region0 + p->v + p->m + p->gemm + p->edge + p->zeros + p->u; /* (when not prepared) */
    const float *packed = prepared ? prepared : made;
    const int64_t C = p->cin, K = p->cout, blocks = (p->tiles + p->block - 1) / p->block;
    graphc_scratch gs = graphc_scratch_thread(scratch, t);
    int64_t b;
    int xi;
    gs.base = M + p->m;
    memset(zeros, 0, p->zeros * sizeof(float));
    if (prepared == NULL) {
        for (xi = t; xi < 16; xi += team) {
            transform_kernel(p, w, xi, U);
            pack_kernel(p, U, made + (size_t)xi * p->packed);
        }
        GRAPHC_OMP(omp barrier)
    }
    for (b = t; b < blocks; b += team) {
        const int64_t t0 = b * p->block;
        const int nt = (int)(p->tiles - t0 < p->block ? p->tiles - t0 : p->block);
        transform_input(p, x, t0, nt, nt, zeros, V);
        for (xi = 0; xi < 16; xi++)
            graphc_sgemm_with_packed_b(nt, (int)K, (int)C, 1.0f, V + (size_t)xi * nt * C, (int)C,
                                       packed + (size_t)xi * p->packed, 0.0f, M + (size_t)xi * nt * K, (int)K, &gs);
        transform_output(p, M, t0, nt, nt, bias != NULL ? bias : zeros, act, edge, y);
    }
}

/* One block of tiles (few tiles: batch 1) for a team: thread t transforms its share of the tiles into
 * region 0's V, runs the GEMMs of its share of the 16 positions (their kernel matrices made by itself when
 * not prepared) into region 0's M, and transforms its tiles back. Two barriers. */
static void run_positions(const plan *p, const float *x, const float *w, const float *prepared, const float *bias,
                          float *y, int act, const graphc_scratch *scratch, int t, int team)
{
    float *region = graphc_scratch_region(scratch, t), *region0 = graphc_scratch_region(scratch, 0);
    float *V = region0, *M = V + p->v, *edge = region + p->v + p->m + p->gemm, *zeros = edge + p->edge;
    float *U = zeros + p->zeros, *made = region0 + p->v + p->m + p->gemm + p->edge + p->zeros + p->u;
    const float *packed = prepared ? prepared : made;
    const int64_t C = p->cin, K = p->cout;
    const int nt = (int)p->tiles, j0 = nt * t / team, j1 = nt * (t + 1) / team;
    const int x0 = 16 * t / team, x1 = 16 * (t + 1) / team;
    graphc_scratch gs = graphc_scratch_thread(scratch, t);
    int xi;
    gs.base = region + p->v + p->m;
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
    transform_output(p, M + (size_t)j0 * K, j0, j1 - j0, nt, bias != NULL ? bias : zeros, act, edge, y);
}

/* Threads for a plan's blocks of tiles: one below PARALLEL_MIN, else up to one per block. */
static int team_for(const plan *p, const graphc_scratch *scratch)
{
    const int64_t blocks = (p->tiles + p->block - 1) / p->block;
    int team = 1;
    if ((double)p->tiles * 16.0 * (double)p->cin * (double)p->cout >= (double)PARALLEL_MIN) {
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
    if (p->tiles <= p->block && (double)p->tiles * 16.0 * (double)p->cin * (double)p->cout >= (double)POSITIONS_MIN) {
        team = graphc_scratch_threads(scratch);
        team = team < 16 ? team : 16;
    }
    return team;
}

static void run(const plan *p, const float *x, const float *w, const float *prepared, const float *bias, float *y,
                int act, const graphc_scratch *scratch)
{
    int team, by_positions;
    if (p->tiles <= 0)
        return;
    team = positions_team(p, scratch);
    by_positions = team > 1;
    if (!by_positions) team = team_for(p, scratch);
    (void)team; /* (unused without OpenMP) */
    GRAPHC_OMP(omp parallel num_threads(team) if (team > 1)) /* (one thread: run inline) */
    {
        int t = 0, n = 1;
#ifdef _OPENMP
        t = omp_get_thread_num(), n = omp_get_num_threads();
#endif
        if (by_positions && n > 1)
            run_positions(p, x, w, prepared, bias, y, act, scratch, t, n);
        else
            run_part(p, x, w, prepared, bias, y, act, scratch, t, n);
    }
}

void graphc_winograd_f32(const float *x, const float *w, const float *prepared, const float *bias, float *y,
                         int64_t batch, const graphc_window *win, int64_t cin, int64_t cout, int act,
                         const graphc_scratch *scratch)
{
    const plan p = make_plan(batch, win, cin, cout, 0);
    run(&p, x, w, prepared, bias, y, act, scratch);
}

/* Pooled: the tiles are the pool's windows, so only whole ones are computed (an odd last output row or
 * column, which the pool drops, is not), each transformed back into its maximum. */
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

size_t graphc_winograd_pool_scratch_floats(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout,
                                           int prepared)
{
    const graphc_window t = even_output(win);
    return graphc_winograd_scratch_floats(batch, &t, cin, cout, prepared);
}

void graphc_winograd_pool_f32(const float *x, const float *w, const float *prepared, const float *bias, float *y,
                              int64_t batch, const graphc_window *win, int64_t cin, int64_t cout, int act,
                              const graphc_scratch *scratch)
{
    const graphc_window t = even_output(win);
    plan p = make_plan(batch, &t, cin, cout, 0);
    p.pool = 1;
    run(&p, x, w, prepared, bias, y, act, scratch);
}

/* A plan for the kernel alone (its sizes do not depend on the image): one 3x3 image, one tile. */
static plan kernel_plan(int64_t cin, int64_t cout)
{
    static const graphc_window one = {{1, 3, 3}, {1, 1, 1}, {1, 3, 3}, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}};
    return make_plan(1, &one, cin, cout, 0);
}

/* The 16 transformed, packed kernel matrices as run_part makes them, then room for one untransformed
 * position while making them. */
size_t graphc_winograd_prepared_floats(int64_t cin, int64_t cout)
{
    const plan p = kernel_plan(cin, cout);
    return 16 * p.packed + p.u;
}

void graphc_winograd_prepare(const float *w, int64_t cin, int64_t cout, float *prepared)
{
    const plan p = kernel_plan(cin, cout);
    int xi;
    for (xi = 0; xi < 16; xi++) {
        transform_kernel(&p, w, xi, prepared + 16 * p.packed);
        pack_kernel(&p, prepared + 16 * p.packed, prepared + (size_t)xi * p.packed);
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

int graphc_winograd_input_grad_applies(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout,
                                       int64_t groups)
{
    const graphc_window t = input_grad_window(win);
    return graphc_winograd_applies(batch, &t, cout, cin, groups, 0);
}

size_t graphc_winograd_input_grad_scratch_floats(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout)
{
    const graphc_window t = input_grad_window(win);
    return graphc_winograd_scratch_floats(batch, &t, cout, cin, 0);
}

void graphc_winograd_input_grad_f32(const float *dy, const float *w, float *dx, int64_t batch,
                                    const graphc_window *win, int64_t cin, int64_t cout, const graphc_scratch *scratch)
{
    const graphc_window t = input_grad_window(win);
    const plan p = make_plan(batch, &t, cout, cin, 1);
    run(&p, dy, w, NULL, NULL, dx, GRAPHC_ACT_NONE, scratch);
}

/* ------------------------------------------------------------------------------------------------ */
/* Filter gradient by F(3x3, 2x2)
 *
 * dw[r][s] = sum over output cells (y, x) of x[y + r - pad][x + s - pad] dy[y][x] is a correlation of the
 * input with dy, whose result is the 3x3 kernel. Tiled by the forward pass's 2x2 output tiles, one tile adds
 * sum_{a,b} d[a + r][b + s] g[a][b] (d: the tile's 4x4 input cells, g: its 2x2 dy cells), which is
 * F(3x3, 2x2): the forward algorithm's matrices transposed (its trilinear form read with dw as the output),
 *   dw_tile = G^T [ (A g A^T) .* (B^T d B) ] G,    A = [1 0; 1 1; 1 -1; 0 -1] (4x2), B and G as above.
 * Summed over tiles, the sum moves inside: dw = G^T W G with W[xi] (cin x cout) = V[xi]^T D[xi], V the
 * forward pass's transformed input (tiles x cin) and D = A g A^T the transformed dy (tiles x cout): 16
 * GEMMs with the tiles as their inner dimension, 16 products per tile and channel pair instead of 36.
 * Each thread accumulates its own W over every team-th block of tiles; then the threads sum the Ws and
 * transform them back, each for a range of input channels (in thread order: deterministic for a count). */

#define MAX_TEAM 256 /* threads whose Ws the filter gradient sums */

typedef struct {
    plan p;                   /* the forward pass's tiles, input transform and block size */
    size_t d, w, gemm; /* floats of a region: V (p.v), D, W (16 x cin x cout), graphc_sgemm_ex's, zeros */
    size_t region;
} filter_plan;

static filter_plan make_filter_plan(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout)
{
    filter_plan f;
    f.p = make_plan(batch, win, cin, cout, 0);
    f.d = graphc_scratch_round((size_t)(16 * f.p.block * cout));
    f.w = graphc_scratch_round((size_t)(16 * cin * cout));
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

/* D[xi][j][co] = (A g A^T)[xi] for tiles [t0, t0 + nt): g the 2x2 dy cells of tile t0 + j (zeros past the
 * edge of an odd-sized output). */
static void transform_dy(const plan *p, const float *dy, int64_t t0, int nt, const float *zeros, float *D)
{
    const int64_t K = p->cout, stride = (int64_t)nt * K;
    int j, a, b;
    int64_t co;
    for (j = 0; j < nt; j++) {
        const int64_t t = t0 + j, img = t / (p->th * p->tw), ty = (t / p->tw) % p->th, tx = t % p->tw;
        const float *g[2][2];
        float *dd = D + (int64_t)j * K;
        for (a = 0; a < 2; a++)
            for (b = 0; b < 2; b++) {
                const int64_t oy = 2 * ty + a, ox = 2 * tx + b;
                g[a][b] = oy < p->oh && ox < p->ow ? dy + ((img * p->oh + oy) * p->ow + ox) * K : zeros;
            }
        INDEPENDENT
        for (co = 0; co < K; co++) {
            float h[4][2]; /* A g */
            int i;
            for (b = 0; b < 2; b++) {
                const float g0 = g[0][b][co], g1 = g[1][b][co];
                h[0][b] = g0, h[1][b] = g0 + g1, h[2][b] = g0 - g1, h[3][b] = -g1;
            }
            for (i = 0; i < 4; i++) { /* (A g) A^T */
                dd[(4 * i + 0) * stride + co] = h[i][0];
                dd[(4 * i + 1) * stride + co] = h[i][0] + h[i][1];
                dd[(4 * i + 2) * stride + co] = h[i][0] - h[i][1];
                dd[(4 * i + 3) * stride + co] = -h[i][1];
            }
        }
    }
}

/* dw[r][s][ci][co] = (G^T W G)[r][s] for input channels [c0, c1), W the sum of the team's Ws
 * (W[xi][ci][co] at parts[u] + xi * plane + ci * cout). */
static void transform_filter(const plan *p, float *const *parts, int team, int64_t c0, int64_t c1, float *dw)
{
    const int64_t K = p->cout, plane = p->cin * K;
    int64_t ci, co;
    for (ci = c0; ci < c1; ci++) {
        INDEPENDENT
        for (co = 0; co < K; co++) {
            float m[16], e[3][4];
            int xi, u, r, j;
            for (xi = 0; xi < 16; xi++) {
                float sum = parts[0][xi * plane + ci * K + co];
                for (u = 1; u < team; u++)
                    sum += parts[u][xi * plane + ci * K + co];
                m[xi] = sum;
            }
            for (j = 0; j < 4; j++) { /* G^T W: rows i -> r */
                e[0][j] = m[j] + 0.5f * (m[4 + j] + m[8 + j]);
                e[1][j] = 0.5f * (m[4 + j] - m[8 + j]);
                e[2][j] = 0.5f * (m[4 + j] + m[8 + j]) + m[12 + j];
            }
            for (r = 0; r < 3; r++) { /* (G^T W) G: columns j -> s */
                float *o = dw + (3 * r * p->cin + ci) * K + co; /* tap 3r + s at o + s * plane */
                o[0] = e[r][0] + 0.5f * (e[r][1] + e[r][2]);
                o[plane] = 0.5f * (e[r][1] - e[r][2]);
                o[2 * plane] = 0.5f * (e[r][1] + e[r][2]) + e[r][3];
            }
        }
    }
}

/* What thread t of team does: W over every team-th block of tiles, then (after a barrier) dw for its share
 * of the input channels. */
static void filter_part(const filter_plan *f, const float *x, const float *dy, float *dw,
                        const graphc_scratch *scratch, int t, int team)
{
    const plan *p = &f->p;
    float *region = graphc_scratch_region(scratch, t);
    float *V = region, *D = V + p->v, *W = D + f->d, *zeros = W + f->w + f->gemm;
    float *parts[MAX_TEAM];
    const int64_t C = p->cin, K = p->cout, blocks = (p->tiles + p->block - 1) / p->block;
    graphc_scratch gs = graphc_scratch_thread(scratch, t);
    int64_t b;
    int xi, u;
    gs.base = W + f->w;
    memset(zeros, 0, p->zeros * sizeof(float));
    memset(W, 0, (size_t)(16 * C * K) * sizeof(float));
    for (b = t; b < blocks; b += team) {
        const int64_t t0 = b * p->block;
        const int nt = (int)(p->tiles - t0 < p->block ? p->tiles - t0 : p->block);
        transform_input(p, x, t0, nt, nt, zeros, V);
        transform_dy(p, dy, t0, nt, zeros, D);
        for (xi = 0; xi < 16; xi++) /* W[xi] += V[xi]^T D[xi] */
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
