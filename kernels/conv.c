/* Convolution, transposed convolution and pooling on channels_last tensors (contracts in graphc_conv.h).
 *
 * Convolution is an implicit GEMM: graphc_sgemm_implicit calls pack_patch_panels to pack the patch rows
 * of the output cells (rows of the flattened batch x spatial grid) straight from x into its micro-panels,
 *     y[m][o] = sum over (tap, c) of patch[m][tap * cin_g + c] * w[tap * cin_g + c][o]
 * so the patch matrix is never stored and the GEMM's own blocking and threads apply.
 * A 1x1 stride-1 convolution reads x directly (a plain GEMM). A convolution with few products per output
 * (taps x input channels <= SMALL_K, a first layer on 1-3 channels) runs as a direct loop instead (see
 * conv_small_k); 3x3 stride-1 ones with many channels and tiles as Winograd's F(2x2, 3x3) (winograd.c).
 * Transposed convolution multiplies a block
 * of input cells by the transposed kernel and scatter-adds the products into the output (col2im).
 * Blocks of images (transposed) are shared by OpenMP threads; inside a parallel region graphc_sgemm runs
 * serially, outside one (small problems) it may use the threads itself.
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
/* 512 KB per thread: a transposed convolution's block of the kernel and of products stays in L2 */
#define SCRATCH_FLOATS (1 << 17)
#endif
#define MR_PANEL 16                   /* the tallest micro-panel graphc_sgemm_implicit packs */
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

/* ------------------------------------------------------------------------------------------------ */
/* Convolution */

/* What the patch packer needs: the input, its geometry, the group's channels, and the first output cell of
 * the product (the flattened (batch, *out) grid may be split into products of at most GEMM_MAX_ROWS rows). */
typedef struct {
    const float *x;
    const graphc_window *win;
    int64_t cin, cin_g, coff, m_off;
} patch_source;

/* One patch row: where output cell m's window starts in its image (its tap (0, 0, 0) is element `at` of
 * the image, outside it when in padding), and its taps [lo, hi) per axis that lie inside the input (the
 * others read padding, zeros). */
typedef struct {
    const float *xn;
    int64_t at, lo[3], hi[3];
} patch_row;

/* The output cell the next row of a pack call is: found by division once per call, then stepped (divisions
 * cost more than packing a small patch row). */
typedef struct {
    int64_t img, o[3];
} cell_cursor;

static cell_cursor cursor_at(const graphc_window *g, int64_t m)
{
    const int64_t o1 = g->out[1], o2 = g->out[2], q = m % prod3(g->out);
    cell_cursor c;
    c.img = m / prod3(g->out);
    c.o[0] = q / (o2 * o1), c.o[1] = (q / o2) % o1, c.o[2] = q % o2;
    return c;
}

/* The next n rows from the cursor, which moves past them. */
static void locate_rows(const patch_source *ps, cell_cursor *cur, int n, patch_row *rows)
{
    const graphc_window *g = ps->win;
    const int64_t image = prod3(g->in) * ps->cin;
    int i, a;
    for (i = 0; i < n; i++) {
        patch_row *r = &rows[i];
        int64_t s[3];
        r->xn = ps->x + cur->img * image + ps->coff;
        for (a = 0; a < 3; a++) {
            s[a] = cur->o[a] * g->stride[a] - g->pad[a];
            graphc_tap_range(s[a], g->dilation[a], g->kernel[a], g->in[a], &r->lo[a], &r->hi[a]);
        }
        r->at = ((s[0] * g->in[1] + s[1]) * g->in[2] + s[2]) * ps->cin;
        if (++cur->o[2] == g->out[2]) {
            cur->o[2] = 0;
            if (++cur->o[1] == g->out[1]) {
                cur->o[1] = 0;
                if (++cur->o[0] == g->out[0]) {
                    cur->o[0] = 0;
                    cur->img++;
                }
            }
        }
    }
}

/* Ap[j * MR + i] = src[i][j] for j < n: one segment of MR rows, interleaved. With a constant MR the i loop
 * unrolls. */
static inline void interleave(int64_t n, int MR, const float *const *src, float *Ap)
{
    int64_t j;
    int i;
    for (j = 0; j < n; j++)
        for (i = 0; i < MR; i++)
            Ap[j * MR + i] = src[i][j];
}

#if defined(__AVX2__) && !defined(GRAPHC_FORCE_PORTABLE)
#include <immintrin.h>
/* interleave for 6 rows (the AVX2 micro-panel): 8 channels at a time as an 8x8 transpose whose rows 6 and
 * 7 are zero; column j of the transpose is channel j of the 6 rows. Each column is stored 8 wide, its last
 * 2 floats overwritten by the next column's store; the 8th column, which has no successor, stores 6. */
static void interleave6_avx2(int64_t n, const float *const *src, float *Ap)
{
    const __m256 z = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 8 <= n; j += 8, Ap += 48) {
        const __m256 t0 = _mm256_unpacklo_ps(_mm256_loadu_ps(src[0] + j), _mm256_loadu_ps(src[1] + j));
        const __m256 t1 = _mm256_unpackhi_ps(_mm256_loadu_ps(src[0] + j), _mm256_loadu_ps(src[1] + j));
        const __m256 t2 = _mm256_unpacklo_ps(_mm256_loadu_ps(src[2] + j), _mm256_loadu_ps(src[3] + j));
        const __m256 t3 = _mm256_unpackhi_ps(_mm256_loadu_ps(src[2] + j), _mm256_loadu_ps(src[3] + j));
        const __m256 t4 = _mm256_unpacklo_ps(_mm256_loadu_ps(src[4] + j), _mm256_loadu_ps(src[5] + j));
        const __m256 t5 = _mm256_unpackhi_ps(_mm256_loadu_ps(src[4] + j), _mm256_loadu_ps(src[5] + j));
        const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
        const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
        const __m256 s4 = _mm256_shuffle_ps(t4, z, 0x44), s5 = _mm256_shuffle_ps(t4, z, 0xEE);
        const __m256 s6 = _mm256_shuffle_ps(t5, z, 0x44), s7 = _mm256_shuffle_ps(t5, z, 0xEE);
        const __m256 c7 = _mm256_permute2f128_ps(s3, s7, 0x31);
        _mm256_storeu_ps(Ap + 0, _mm256_permute2f128_ps(s0, s4, 0x20));
        _mm256_storeu_ps(Ap + 6, _mm256_permute2f128_ps(s1, s5, 0x20));
        _mm256_storeu_ps(Ap + 12, _mm256_permute2f128_ps(s2, s6, 0x20));
        _mm256_storeu_ps(Ap + 18, _mm256_permute2f128_ps(s3, s7, 0x20));
        _mm256_storeu_ps(Ap + 24, _mm256_permute2f128_ps(s0, s4, 0x31));
        _mm256_storeu_ps(Ap + 30, _mm256_permute2f128_ps(s1, s5, 0x31));
        _mm256_storeu_ps(Ap + 36, _mm256_permute2f128_ps(s2, s6, 0x31));
        _mm_storeu_ps(Ap + 42, _mm256_castps256_ps128(c7));
        _mm_storel_pi((__m64 *)(Ap + 46), _mm256_extractf128_ps(c7, 1));
    }
    for (; j < n; j++, Ap += 6) {
        int i;
        for (i = 0; i < 6; i++)
            Ap[i] = src[i][j];
    }
}
#define INTERLEAVE6(n, src, dst) interleave6_avx2(n, src, dst)
#else
#define INTERLEAVE6(n, src, dst) interleave(n, 6, src, dst)
#endif

/* Zeros that padding rows of a segment point at (longer segments are interleaved in pieces of this size;
 * graphc_sgemm's K blocks are shorter). */
#define ZERO_FLOATS 512
static const float zero_floats[ZERO_FLOATS];

/* Ap = the segment's rows src[0..mr) interleaved (see interleave), n floats of each. */
static inline void interleave_rows(int64_t n, int mr, const float *const *src, float *Ap)
{
    switch (mr) { /* the micro-tile heights in use */
    case 4: interleave(n, 4, src, Ap); break;
    case 6: INTERLEAVE6(n, src, Ap); break;
    case 8: interleave(n, 8, src, Ap); break;
    case 14: interleave(n, 14, src, Ap); break;
    default: interleave(n, mr, src, Ap); break;
    }
}

/* graphc_pack_a_fn of a convolution: op(A)[m][tap * cin_g + c] = x at output cell m_off + m's window tap
 * `tap`, channel coff + c (0 in padding). A patch row is a sequence of segments, each contiguous in x (or all
 * padding): one per tap (seg = cin_g floats), or, in a panel whose rows all lie inside the input and when a
 * whole row of taps along the last axis is one run of memory (all channels, undilated), one per such row
 * (seg = kernel[2] * cin floats). A segment's rows are interleaved from x, padding rows from zeros. */
static void pack_patch_panels(const void *ctx, int i0, int rows, int k0, int kc, int mr, float *Ap)
{
    const patch_source *ps = (const patch_source *)ctx;
    const graphc_window *g = ps->win;
    const int64_t cin = ps->cin, cin_g = ps->cin_g, k1 = g->kernel[1], k2 = g->kernel[2];
    const int64_t in1 = g->in[1], in2 = g->in[2];
    const int runs = g->dilation[2] == 1 && cin_g == cin;
    patch_row row[MR_PANEL];
    const float *src[MR_PANEL];
    cell_cursor cur = cursor_at(g, ps->m_off + i0);
    int p, i;
    for (p = 0; p < rows; p += mr, Ap += (size_t)mr * kc) {
        const int live = rows - p < mr ? rows - p : mr;
        int inside = live == mr, axis;
        int64_t sg, seg, taps_per_seg, a, b, c;
        locate_rows(ps, &cur, live, row);
        for (i = 0; i < live; i++)
            for (axis = 0; axis < 3; axis++)
                inside &= row[i].lo[axis] == 0 && row[i].hi[axis] == g->kernel[axis];
        taps_per_seg = inside && runs ? k2 : 1;
        seg = taps_per_seg * cin_g;
        sg = k0 / seg;
        a = sg * taps_per_seg / (k1 * k2), b = (sg * taps_per_seg / k2) % k1, c = sg * taps_per_seg % k2;
        for (; sg * seg < k0 + kc; sg++) { /* segment sg starts at tap (a, b, c), stepped below */
            const int64_t j0 = sg * seg > k0 ? 0 : k0 - sg * seg, j1 = min64(seg, k0 + kc - sg * seg);
            /* the tap's offset from a window's start, the same for every row */
            const int64_t tap_at = ((a * g->dilation[0] * in1 + b * g->dilation[1]) * in2 + c * g->dilation[2]) * cin;
            float *dst = Ap + (sg * seg + j0 - k0) * mr;
            if (inside) {
                for (i = 0; i < mr; i++)
                    src[i] = row[i].xn + (row[i].at + tap_at + j0);
            } else {
                for (i = 0; i < mr; i++) { /* padding and rows past the last: zeros */
                    const patch_row *r = &row[i];
                    const int valid = i < live && a >= r->lo[0] && a < r->hi[0] && b >= r->lo[1] && b < r->hi[1]
                                      && c >= r->lo[2] && c < r->hi[2];
                    src[i] = valid ? r->xn + (r->at + tap_at + j0) : zero_floats;
                }
            }
            if (j1 - j0 <= ZERO_FLOATS) {
                interleave_rows(j1 - j0, mr, src, dst);
            } else { /* (a K block longer than the zeros: in pieces) */
                const float *piece[MR_PANEL];
                int64_t j;
                for (j = 0; j < j1 - j0; j += ZERO_FLOATS) {
                    for (i = 0; i < mr; i++)
                        piece[i] = src[i] == zero_floats ? zero_floats : src[i] + j;
                    interleave_rows(min64(ZERO_FLOATS, j1 - j0 - j), mr, piece, dst + j * mr);
                }
            }
            for (c += taps_per_seg; c >= k2; c -= k2)
                if (++b == k1) {
                    b = 0;
                    a++;
                }
        }
    }
}

/* Few products per output (K = taps x cin_g <= SMALL_K, e.g. a first layer on 1-3 input channels): the
 * implicit GEMM would pack patch panels of a few floats and load and store its C tile every few
 * multiply-adds (28x28x1 -> 32 channels, 3x3, ran at a sixth of a core's peak). Here an output cell keeps a
 * strip of STRIP outputs in registers over its K products, reading x and w in place; two neighbouring
 * cells at a time where both windows lie whole inside the row (twice the independent FMA chains). With no
 * activation or ReLU, four cells at a time instead (small_k_quad), through bias, ReLU and a fused pool's
 * maximum without leaving the registers. */
#define SMALL_K 32
#define STRIP 32
#define CELLS 2 /* neighbouring cells at a time: 8 sums in registers (3 measured slower) */
#define SMALL_K_PARALLEL_MIN (1L << 16) /* multiply-adds below which one thread is faster (no barriers) */

typedef struct {
    const float *x, *w, *bias;
    float *y;
    const graphc_window *g;
    int64_t cin, cout, cin_g, cout_g, ci0, co0; /* ci0, co0: the group's first input and output channel */
    int act;
} small_k_conv;

/* Eight floats, as one AVX register or two SSE/NEON ones: the strip's sums are written with these so that
 * GCC keeps them in registers (left to itself it vectorized the k loop instead, with gathers). */
typedef float vec8 __attribute__((vector_size(32)));
typedef int vec8i __attribute__((vector_size(32)));

/* (Macros and pointers, not vec8 arguments or results: without AVX those would change the ABI, which GCC
 * warns of even for static functions.) */
#define VEC8_SPLAT(f) ((vec8){(f), (f), (f), (f), (f), (f), (f), (f)})
#define VEC8_SELECT(mask, a, b) ((vec8)(((vec8i)(a) & (mask)) | ((vec8i)(b) & ~(mask)))) /* mask ? a : b */

static inline void vec8_relu(vec8 *v) { *v = VEC8_SELECT(*v < VEC8_SPLAT(0.0f), VEC8_SPLAT(0.0f), *v); }

/* *m = the largest of a[0..3], NaN where one is (as max_nan over them, but for the sign of a zero). */
static inline void vec8_max4_nan(vec8 *m, const vec8 *a)
{
#if defined(__AVX2__) && !defined(GRAPHC_FORCE_PORTABLE)
    const __m256 x = (__m256)a[0], y = (__m256)a[1], z = (__m256)a[2], w = (__m256)a[3];
    const __m256 top = _mm256_max_ps(_mm256_max_ps(x, y), _mm256_max_ps(z, w));
    const __m256 nan = _mm256_or_ps(_mm256_cmp_ps(x, y, _CMP_UNORD_Q), _mm256_cmp_ps(z, w, _CMP_UNORD_Q));
    *m = (vec8)_mm256_blendv_ps(top, (__m256)(a[0] + a[1] + a[2] + a[3]), nan); /* (a sum with a NaN is NaN) */
#else
    int i;
    *m = a[0];
    for (i = 1; i < 4; i++) {
        *m = VEC8_SELECT(a[i] > *m, a[i], *m);
        *m = VEC8_SELECT(a[i] != a[i], a[i], *m);
    }
#endif
}

/* y0's `cells` (1 to CELLS) neighbouring output cells over their K products: product k reads x0[xoff[k]]
 * (cell i's xstep * i floats further) and the kernel row wrow[k]. */
static inline __attribute__((always_inline)) void small_k_cells(const small_k_conv *c, int cells, int K,
                                                                const float *x0, const int64_t *xoff,
                                                                const float *const *wrow, int64_t xstep, float *y0)
{
    const float *bias = c->bias ? c->bias + c->co0 : NULL;
    float t[CELLS][STRIP];
    int64_t js;
    int i, j, k, q;
    for (js = 0; js < c->cout_g; js += STRIP) {
        const int n = c->cout_g - js < STRIP ? (int)(c->cout_g - js) : STRIP;
        if (n == STRIP) {
            vec8 a[CELLS][STRIP / 8];
            for (i = 0; i < cells; i++)
                for (q = 0; q < STRIP / 8; q++)
                    a[i][q] = (vec8){0.0f};
            for (k = 0; k < K; k++) {
                const float *wp = wrow[k] + js, *xk = x0 + xoff[k];
                for (i = 0; i < cells; i++) {
                    const vec8 s = VEC8_SPLAT(xk[i * xstep]);
                    for (q = 0; q < STRIP / 8; q++) {
                        vec8 w;
                        memcpy(&w, wp + 8 * q, sizeof w); /* (an unaligned load) */
                        a[i][q] += s * w;
                    }
                }
            }
            for (i = 0; i < cells; i++)
                memcpy(t[i], a[i], sizeof t[i]);
        } else {
            for (i = 0; i < cells; i++)
                for (j = 0; j < n; j++)
                    t[i][j] = 0.0f;
            for (k = 0; k < K; k++) {
                const float *wp = wrow[k] + js, *xk = x0 + xoff[k];
                for (i = 0; i < cells; i++)
                    for (j = 0; j < n; j++)
                        t[i][j] += xk[i * xstep] * wp[j];
            }
        }
        for (i = 0; i < cells; i++)
            store_act(y0 + i * c->cout + js, t[i], bias ? bias + js : NULL, n, c->act);
    }
}

/* max(m, v), NaN if v is (m already NaN stays): two selects, not ||, so that loops over it vectorize. */
static inline float max_nan(float m, float v)
{
    m = v > m ? v : m;
    return v != v ? v : m;
}

/* Four cells at once (cell i's window at x0 + xcell[i]), QUAD_STRIP output channels at a time, each strip's
 * sums kept in registers: then either the NaN-propagating maximum of the four (a 2x2 max-pool window) put
 * through the bias and the activation (none or ReLU, as store_act) and stored at y, or each cell through them
 * and stored at y + ycell[i]. Pooling first is exact: x -> x + b and ReLU never decrease (a zero's sign may
 * differ). small_k_cells' sums go through memory and store_act, and its pool reads two rows back: one thread
 * took 10 us for the CNN's first layer (28x28x1 -> 32, pooled) against 5.2 here, 23 us for ResNet's (32x32x3
 * -> 32) against 18 (AVX-512's strip of 32; 16 gave 5.8 and 23). */
#if defined(__AVX512VL__) && !defined(GRAPHC_FORCE_PORTABLE)
#define QUAD_STRIP 32 /* 16 sums, 4 kernel vectors and a broadcast: 21 of AVX-512's 32 vector registers */
#else
#define QUAD_STRIP 16 /* 8 sums, 2 kernel vectors and a broadcast: within AVX2's 16 */
#endif
static inline __attribute__((always_inline)) void small_k_quad(const small_k_conv *c, int K, const float *x0,
                                                               const int64_t *xoff, const float *const *wrow,
                                                               const int64_t *xcell, float *y, const int64_t *ycell,
                                                               int pool)
{
    const float *bias = c->bias ? c->bias + c->co0 : NULL;
    const int relu = c->act == GRAPHC_ACT_RELU;
    int64_t js;
    int i, j, k, q;
    for (js = 0; js < c->cout_g; js += QUAD_STRIP) {
        const int n = c->cout_g - js < QUAD_STRIP ? (int)(c->cout_g - js) : QUAD_STRIP;
        if (n == QUAD_STRIP) {
            vec8 a[4][QUAD_STRIP / 8], b[QUAD_STRIP / 8];
            for (i = 0; i < 4; i++)
                for (q = 0; q < QUAD_STRIP / 8; q++) a[i][q] = VEC8_SPLAT(0.0f);
            for (k = 0; k < K; k++) {
                const float *wp = wrow[k] + js, *xk = x0 + xoff[k];
                vec8 w[QUAD_STRIP / 8];
                for (q = 0; q < QUAD_STRIP / 8; q++) memcpy(&w[q], wp + 8 * q, sizeof w[q]); /* (unaligned loads) */
                for (i = 0; i < 4; i++) {
                    const vec8 v = VEC8_SPLAT(xk[xcell[i]]);
                    for (q = 0; q < QUAD_STRIP / 8; q++) a[i][q] += v * w[q];
                }
            }
            for (q = 0; q < QUAD_STRIP / 8; q++) {
                if (bias) memcpy(&b[q], bias + js + 8 * q, sizeof b[q]);
                else b[q] = VEC8_SPLAT(0.0f);
            }
            if (pool) {
                for (q = 0; q < QUAD_STRIP / 8; q++) {
                    const vec8 four[4] = {a[0][q], a[1][q], a[2][q], a[3][q]};
                    vec8 m;
                    vec8_max4_nan(&m, four);
                    m += b[q];
                    if (relu) vec8_relu(&m);
                    memcpy(y + js + 8 * q, &m, sizeof m);
                }
            } else {
                for (i = 0; i < 4; i++)
                    for (q = 0; q < QUAD_STRIP / 8; q++) {
                        vec8 v = a[i][q] + b[q];
                        if (relu) vec8_relu(&v);
                        memcpy(y + ycell[i] + js + 8 * q, &v, sizeof v);
                    }
            }
        } else { /* the last channels, fewer than a strip */
            float t[4][QUAD_STRIP];
            for (i = 0; i < 4; i++) {
                for (j = 0; j < n; j++) t[i][j] = 0.0f;
                for (k = 0; k < K; k++)
                    for (j = 0; j < n; j++) t[i][j] += x0[xoff[k] + xcell[i]] * wrow[k][js + j];
            }
            if (pool) {
                for (j = 0; j < n; j++) t[0][j] = max_nan(max_nan(max_nan(t[0][j], t[1][j]), t[2][j]), t[3][j]);
                store_act(y + js, t[0], bias ? bias + js : NULL, n, c->act);
            } else
                for (i = 0; i < 4; i++) store_act(y + ycell[i] + js, t[i], bias ? bias + js : NULL, n, c->act);
        }
    }
}

/* The products of a window's taps [d0, d1) x [h0, h1) x [w0, w1): offsets of x from the window's tap
 * (0, 0, 0) and kernel rows (of the group's output channels). Returns how many. */
static int small_k_products(const small_k_conv *c, int64_t d0, int64_t d1, int64_t h0, int64_t h1, int64_t w0,
                            int64_t w1, int64_t *xoff, const float **wrow)
{
    const graphc_window *g = c->g;
    const int64_t sd = g->dilation[0] * g->in[1] * g->in[2] * c->cin, sh = g->dilation[1] * g->in[2] * c->cin;
    const int64_t sw = g->dilation[2] * c->cin;
    int64_t kd, kh, kw, ci;
    int K = 0;
    for (kd = d0; kd < d1; kd++)
        for (kh = h0; kh < h1; kh++)
            for (kw = w0; kw < w1; kw++)
                for (ci = 0; ci < c->cin_g; ci++, K++) {
                    xoff[K] = kd * sd + kh * sh + kw * sw + ci;
                    wrow[K] = c->w + (((kd * g->kernel[1] + kh) * g->kernel[2] + kw) * c->cin_g + ci) * c->cout + c->co0;
                }
    return K;
}

/* Whether output column ow's window lies whole inside the input's width. */
static int window_whole(const graphc_window *g, int64_t ow)
{
    const int64_t sw = ow * g->stride[2] - g->pad[2];
    return sw >= 0 && sw + (g->kernel[2] - 1) * g->dilation[2] < g->in[2];
}

/* Output row r (image, depth, height) of the group: every cell along the width, into yrow (the row's first
 * cell). */
static void small_k_row(const small_k_conv *c, int64_t r, float *yrow)
{
    const graphc_window *g = c->g;
    const int64_t out0 = g->out[0], out1 = g->out[1], out2 = g->out[2];
    const int64_t n = r / (out0 * out1), od = r / out1 % out0, oh = r % out1;
    const int64_t sd = od * g->stride[0] - g->pad[0], sh = oh * g->stride[1] - g->pad[1];
    const int64_t xstep = g->stride[2] * c->cin, kw_all = g->kernel[2];
    const int64_t xcell[4] = {0, xstep, 2 * xstep, 3 * xstep}, ycell[4] = {0, c->cout, 2 * c->cout, 3 * c->cout};
    const int quads = c->act == GRAPHC_ACT_NONE || c->act == GRAPHC_ACT_RELU; /* (what small_k_quad applies) */
    int64_t xoff[SMALL_K], exoff[SMALL_K], d0, d1, h0, h1, ow;
    const float *wrow[SMALL_K], *ewrow[SMALL_K];
    int K;
    graphc_tap_range(sd, g->dilation[0], g->kernel[0], g->in[0], &d0, &d1);
    graphc_tap_range(sh, g->dilation[1], g->kernel[1], g->in[1], &h0, &h1);
    K = small_k_products(c, d0, d1, h0, h1, 0, kw_all, xoff, wrow); /* windows whole along the width */
    for (ow = 0; ow < out2;) {
        const int64_t sw = ow * g->stride[2] - g->pad[2];
        float *y0 = yrow + ow * c->cout + c->co0;
        /* x at the window's tap (0, 0, 0), which may lie outside x: only its taps' offsets are added to it */
        const float *x0 = c->x + ((n * g->in[0] + sd) * g->in[1] + sh) * g->in[2] * c->cin + sw * c->cin + c->ci0;
        if (window_whole(g, ow)) { /* (the cells between it and a later whole window are whole too) */
            if (quads && ow + 4 <= out2 && window_whole(g, ow + 3)) {
                small_k_quad(c, K, x0, xoff, wrow, xcell, y0, ycell, 0);
                ow += 4;
            } else if (ow + CELLS <= out2 && window_whole(g, ow + CELLS - 1)) {
                small_k_cells(c, CELLS, K, x0, xoff, wrow, xstep, y0);
                ow += CELLS;
            } else {
                small_k_cells(c, 1, K, x0, xoff, wrow, xstep, y0);
                ow += 1;
            }
        } else { /* cut by padding along the width */
            int64_t w0, w1;
            int EK;
            graphc_tap_range(sw, g->dilation[2], kw_all, g->in[2], &w0, &w1);
            EK = small_k_products(c, d0, d1, h0, h1, w0, w1, exoff, ewrow);
            small_k_cells(c, 1, EK, x0, exoff, ewrow, xstep, y0);
            ow += 1;
        }
    }
}

/* Whether pooled row r's convolution rows (conv_row and the next, 2-D) lie whole inside x, every window of
 * the pool's 2 pw columns too, and act is none or ReLU: small_k_pooled_row's conditions. */
static int pooled_quads_apply(const small_k_conv *c, int64_t conv_row, int64_t pw)
{
    const graphc_window *g = c->g;
    const int64_t sh = conv_row % g->out[1] * g->stride[1] - g->pad[1];
    return (c->act == GRAPHC_ACT_NONE || c->act == GRAPHC_ACT_RELU) && sh >= 0 &&
           sh + g->stride[1] + (g->kernel[1] - 1) * g->dilation[1] < g->in[1] && window_whole(g, 0) &&
           window_whole(g, 2 * pw - 1);
}

/* Pooled row r (pooled_quads_apply holds) of the group, into yrow (the row's first cell): each 2x2 window's
 * four convolution cells at once (small_k_quad), only their maximum stored. */
static void small_k_pooled_row(const small_k_conv *c, int64_t conv_row, int64_t pw, float *yrow)
{
    const graphc_window *g = c->g;
    const int64_t n = conv_row / g->out[1], sh = conv_row % g->out[1] * g->stride[1] - g->pad[1];
    const int64_t xstep = g->stride[2] * c->cin, xrow = g->stride[1] * g->in[2] * c->cin;
    const int64_t xcell[4] = {0, xstep, xrow, xrow + xstep}; /* the window's cells: row-major, as pool_row_pair */
    const float *x0 = c->x + ((n * g->in[1] + sh) * g->in[2] - g->pad[2]) * c->cin + c->ci0;
    int64_t xoff[SMALL_K], j;
    const float *wrow[SMALL_K];
    const int K = small_k_products(c, 0, 1, 0, g->kernel[1], 0, g->kernel[2], xoff, wrow);
    for (j = 0; j < pw; j++)
        small_k_quad(c, K, x0 + 2 * j * xstep, xoff, wrow, xcell, yrow + j * c->cout + c->co0, NULL, 1);
}

static void conv_small_k(const small_k_conv *c, int64_t batch, const graphc_scratch *scratch)
{
    const graphc_window *g = c->g;
    const int64_t rows = batch * g->out[0] * g->out[1];
    const double work = (double)rows * (double)g->out[2] * (double)(prod3(g->kernel) * c->cin_g) * (double)c->cout_g;
    const int threads = graphc_scratch_threads(scratch);
    int64_t r;
    (void)threads, (void)work;
    GRAPHC_OMP(omp parallel for schedule(static) num_threads(threads) if (threads > 1 && work > SMALL_K_PARALLEL_MIN))
    for (r = 0; r < rows; r++)
        small_k_row(c, r, c->y + r * g->out[2] * c->cout);
}

size_t graphc_conv_scratch_floats(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout,
                                  int64_t groups)
{
    const int64_t M = batch * prod3(win->out), K = prod3(win->kernel) * (cin / groups);
    size_t implicit, winograd = 0;
    if (batch <= 0 || prod3(win->out) <= 0 || cout <= 0)
        return 0;
    implicit = graphc_sgemm_implicit_scratch_floats(min64(M, GEMM_MAX_ROWS), cout / groups, K);
    /* (whatever the activation, which is not an argument) a call with the kernel prepared, and one without */
    if (graphc_winograd_applies(batch, win, cin, cout, groups, 1))
        winograd = graphc_winograd_scratch_floats(batch, win, cin, cout, 1);
    if (graphc_winograd_applies(batch, win, cin, cout, groups, 0))
        winograd = graphc_winograd_scratch_floats(batch, win, cin, cout, 0);
    return implicit > winograd ? implicit : winograd;
}

/* A 1x1, stride-1, unpadded convolution: the input cells are the patch rows (a plain GEMM over x). */
static int is_pointwise(const graphc_window *win)
{
    return prod3(win->kernel) == 1 && prod3(win->stride) == 1 && win->pad[0] == 0 && win->pad[1] == 0 &&
           win->pad[2] == 0;
}

/* Whether the GEMMs of this convolution read its kernel as one K x cout matrix B that can be packed ahead
 * (one group, more than SMALL_K products per output: the implicit GEMM, or the 1x1 one). */
static int packs_kernel(const graphc_window *win, int64_t cin, int64_t groups)
{
    return groups == 1 && (prod3(win->kernel) * cin > SMALL_K || is_pointwise(win));
}

/* Prepared: the kernel packed for the GEMM (where packs_kernel), then, where Winograd may apply (it depends on
 * the batch), its transformed matrices. */
static size_t gemm_part(const graphc_window *win, int64_t cin, int64_t cout, int64_t groups)
{
    const size_t n = packs_kernel(win, cin, groups) && cout > 0
                         ? graphc_sgemm_packed_b_size((int)(prod3(win->kernel) * cin), (int)cout) : 0;
    return graphc_scratch_round(n);
}

size_t graphc_conv_prepared_floats(const graphc_window *win, int64_t cin, int64_t cout, int64_t groups)
{
    return gemm_part(win, cin, cout, groups) +
           (graphc_winograd_fits(win, cin, cout, groups) ? graphc_winograd_prepared_floats(cin, cout) : 0);
}

void graphc_conv_prepare(const float *w, const graphc_window *win, int64_t cin, int64_t cout, int64_t groups,
                         float *prepared)
{
    if (gemm_part(win, cin, cout, groups) > 0)
        graphc_sgemm_pack_b(0, (int)(prod3(win->kernel) * cin), (int)cout, w, (int)cout, prepared);
    if (graphc_winograd_fits(win, cin, cout, groups))
        graphc_winograd_prepare(w, cin, cout, prepared + gemm_part(win, cin, cout, groups));
}

void graphc_conv_f32(const float *x, const float *w, const float *bias, float *y, int64_t batch,
                     const graphc_window *win, int64_t cin, int64_t cout, int64_t groups, int act,
                     const graphc_scratch *scratch)
{
    graphc_conv_prepared_f32(x, w, NULL, bias, y, batch, win, cin, cout, groups, act, scratch);
}

void graphc_conv_prepared_f32(const float *x, const float *w, const float *prepared, const float *bias, float *y,
                              int64_t batch, const graphc_window *win, int64_t cin, int64_t cout, int64_t groups,
                              int act, const graphc_scratch *scratch)
{
    const int64_t cin_g = cin / groups, cout_g = cout / groups;
    const int64_t taps = prod3(win->kernel), M = batch * prod3(win->out), K = taps * cin_g;
    const int direct = is_pointwise(win);
    const float *packed = prepared != NULL && packs_kernel(win, cin, groups) ? prepared : NULL;
    int64_t gi, m0;
    if (M <= 0 || cout <= 0)
        return;
    if (graphc_winograd_applies(batch, win, cin, cout, groups, prepared != NULL) &&
        (act == GRAPHC_ACT_NONE || act == GRAPHC_ACT_RELU)) {
        graphc_winograd_f32(x, w, prepared ? prepared + gemm_part(win, cin, cout, groups) : NULL, bias, y, batch, win,
                            cin, cout, act, scratch);
        return;
    }
    if (!direct && K <= SMALL_K) {
        small_k_conv c;
        c.x = x, c.w = w, c.bias = bias, c.y = y, c.g = win, c.act = act;
        c.cin = cin, c.cout = cout, c.cin_g = cin_g, c.cout_g = cout_g;
        for (gi = 0; gi < groups; gi++) {
            c.ci0 = gi * cin_g, c.co0 = gi * cout_g;
            conv_small_k(&c, batch, scratch);
        }
        return;
    }
    for (gi = 0; gi < groups; gi++) {
        const float *bg = bias ? bias + gi * cout_g : NULL;
        for (m0 = 0; m0 < M; m0 += GEMM_MAX_ROWS) {
            const int mb = (int)min64(M - m0, GEMM_MAX_ROWS);
            float *yb = y + m0 * cout + gi * cout_g;
            if (direct) { /* 1x1, stride 1, unpadded: the input cells are the patch rows */
                graphc_sgemm_bias_act_prepacked(mb, (int)cout_g, (int)cin_g, x + m0 * cin + gi * cin_g, (int)cin,
                                                w + gi * cout_g, (int)cout, packed, bg, act, yb, (int)cout, scratch);
            } else {
                patch_source ps;
                ps.x = x, ps.win = win, ps.cin = cin, ps.cin_g = cin_g, ps.coff = gi * cin_g, ps.m_off = m0;
                graphc_sgemm_implicit(mb, (int)cout_g, (int)K, pack_patch_panels, &ps, w + gi * cout_g, (int)cout,
                                      packed, 0.0f, bg, act, yb, (int)cout, scratch);
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
/* A convolution followed by a 2x2, stride-2, unpadded max-pool (graphc_conv.h) */

#define POOL_CHUNK_FLOATS (1L << 18) /* convolution output per chunk on the general path (one image at least) */

/* One row of pooled cells (pw of them) from two rows of convolution output. */
static void pool_row_pair(const float *r0, const float *r1, float *y, int64_t pw, int64_t channels)
{
    int64_t j, c;
    for (j = 0; j < pw; j++) {
        const float *a = r0 + 2 * j * channels, *b = r1 + 2 * j * channels;
        float *o = y + j * channels;
        for (c = 0; c < channels; c++)
            o[c] = max_nan(max_nan(max_nan(a[c], a[c + channels]), b[c]), b[c + channels]);
    }
}

typedef enum { POOL_WINOGRAD, POOL_SMALL_K, POOL_CHUNKS } pool_path;

static pool_path conv_pool_path(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout, int64_t groups,
                                int act, int prepared)
{
    if (graphc_winograd_pool_applies(batch, win, cin, cout, groups, prepared) &&
        (act == GRAPHC_ACT_NONE || act == GRAPHC_ACT_RELU))
        return POOL_WINOGRAD;
    if (!is_pointwise(win) && prod3(win->kernel) * (cin / groups) <= SMALL_K)
        return POOL_SMALL_K;
    return POOL_CHUNKS;
}

/* Images per chunk on the general path. */
static int64_t chunk_images(const graphc_window *win, int64_t cout)
{
    const int64_t image = prod3(win->out) * cout;
    return image > 0 && image < POOL_CHUNK_FLOATS ? POOL_CHUNK_FLOATS / image : 1;
}

/* The scratch of one path (prepared: whether the kernel comes prepared, which decides Winograd's). */
static size_t pool_path_scratch(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout, int64_t groups,
                                int act, int prepared)
{
    int64_t chunk;
    switch (conv_pool_path(batch, win, cin, cout, groups, act, prepared)) {
    case POOL_WINOGRAD: return graphc_winograd_pool_scratch_floats(batch, win, cin, cout, prepared);
    case POOL_SMALL_K: return graphc_scratch_round((size_t)(2 * win->out[2] * cout));
    default:
        chunk = min64(batch, chunk_images(win, cout));
        return graphc_scratch_round(graphc_conv_scratch_floats(chunk, win, cin, cout, groups)) +
               graphc_scratch_round((size_t)(chunk * prod3(win->out) * cout));
    }
}

size_t graphc_conv_max_pool_scratch_floats(int64_t batch, const graphc_window *win, int64_t cin, int64_t cout,
                                           int64_t groups, int act)
{
    size_t plain, prepared;
    if (batch <= 0 || win->out[1] < 2 || win->out[2] < 2 || cout <= 0)
        return 0;
    plain = pool_path_scratch(batch, win, cin, cout, groups, act, 0);
    prepared = pool_path_scratch(batch, win, cin, cout, groups, act, 1);
    return plain > prepared ? plain : prepared;
}

void graphc_conv_max_pool_f32(const float *x, const float *w, const float *prepared, const float *bias, float *y,
                              int64_t batch, const graphc_window *win, int64_t cin, int64_t cout, int64_t groups,
                              int act, const graphc_scratch *scratch)
{
    const int64_t ph = win->out[1] / 2, pw = win->out[2] / 2, out2 = win->out[2];
    const graphc_window pool_win = {{1, win->out[1], out2}, {1, ph, pw}, {1, 2, 2}, {1, 2, 2}, {1, 1, 1}, {0, 0, 0}};
    int64_t n0;
    if (batch <= 0 || ph <= 0 || pw <= 0 || cout <= 0)
        return;
    switch (conv_pool_path(batch, win, cin, cout, groups, act, prepared != NULL)) {
    case POOL_WINOGRAD:
        graphc_winograd_pool_f32(x, w, prepared ? prepared + gemm_part(win, cin, cout, groups) : NULL, bias, y, batch,
                                 win, cin, cout, act, scratch);
        return;
    case POOL_SMALL_K: { /* each pooled row from two rows of the convolution, made in the thread's region */
        const int64_t rows = batch * ph;
        const double work = (double)rows * 2.0 * (double)out2 * (double)(prod3(win->kernel) * (cin / groups)) *
                            (double)(cout / groups);
        const int threads = graphc_scratch_threads(scratch);
        int64_t r;
        (void)threads, (void)work;
        GRAPHC_OMP(omp parallel for schedule(static) num_threads(threads) if (threads > 1 && work > SMALL_K_PARALLEL_MIN))
        for (r = 0; r < rows; r++) {
            const int64_t conv_row = r / ph * win->out[1] + r % ph * 2; /* (2-D: out[0] is 1) */
            int t = 0;
            float *pair;
            small_k_conv c;
            int64_t gi;
#ifdef _OPENMP
            t = omp_get_thread_num();
#endif
            pair = graphc_scratch_region(scratch, t);
            c.x = x, c.w = w, c.bias = bias, c.y = NULL, c.g = win, c.act = act;
            c.cin = cin, c.cout = cout, c.cin_g = cin / groups, c.cout_g = cout / groups;
            if (pooled_quads_apply(&c, conv_row, pw)) { /* (in registers: the row pair is not stored) */
                for (gi = 0; gi < groups; gi++) {
                    c.ci0 = gi * c.cin_g, c.co0 = gi * c.cout_g;
                    small_k_pooled_row(&c, conv_row, pw, y + r * pw * cout);
                }
                continue;
            }
            for (gi = 0; gi < groups; gi++) {
                c.ci0 = gi * c.cin_g, c.co0 = gi * c.cout_g;
                small_k_row(&c, conv_row, pair);
                small_k_row(&c, conv_row + 1, pair + out2 * cout);
            }
            pool_row_pair(pair, pair + out2 * cout, y + r * pw * cout, pw, cout);
        }
        return;
    }
    default: { /* a chunk of images' convolution in region 0 after the convolution's own scratch, then the pool */
        const int64_t chunk = min64(batch, chunk_images(win, cout));
        float *out = graphc_scratch_region(scratch, 0) +
                     graphc_scratch_round(graphc_conv_scratch_floats(chunk, win, cin, cout, groups));
        for (n0 = 0; n0 < batch; n0 += chunk) {
            const int64_t nb = min64(batch - n0, chunk);
            graphc_conv_prepared_f32(x + n0 * prod3(win->in) * cin, w, prepared, bias, out, nb, win, cin, cout, groups,
                                     act, scratch);
            graphc_max_pool_f32(out, y + n0 * ph * pw * cout, nb, &pool_win, cout);
        }
    }
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
                            for (j = 0; j < channels; j++)
                                yc[j] = max_nan(yc[j], xc[j]);
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
