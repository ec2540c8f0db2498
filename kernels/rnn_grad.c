/* Training forward and backprop through time of the recurrent layers (see graphc_rnn_grad.h).
 *
 * Forward: zs = x @ kernel + bias for every timestep in one GEMM, then per step zs[t] += h @ recurrent and
 * the gates; zs keeps the pre-activations, hp the state entering each step, cs the LSTM cell state. Keras's
 * default LSTM instead multiplies [x_t | h] by [kernel; recurrent] at each step (train_rows_fused).
 * Backward: per step (processing order reversed) the gate gradients dzs[t] from the saved tensors, then
 * dh_prev = dzs[t] @ recurrent^T. The recurrence only involves the samples' own rows, so threads split the
 * batch and run BPTT without a barrier; afterwards the gradients that sum over timesteps are single GEMMs
 * with the batch and time folded into the inner dimension: dx = dzs @ kernel^T, dkernel = x^T @ dzs,
 * drecurrent = hp^T @ dzs (hp is time-aligned with dzs, so no shifting; for narrow layers the two are one
 * product, [x | hp]^T @ dzs), dbias = column sums of dzs.
 * With recurrent dropout (rdrop), every product with the recurrent kernel is one per gate, on the state times
 * that gate's mask, and the joint weight-gradient product and the fused forward are not used.
 * Activation values are recomputed from the saved pre-activations with the forward kernel's own code, except
 * in Keras's default LSTM, whose zs keeps the gates' activations (graphc_rnn_grad.h).
 * Each region of the caller's scratch holds the GEMMs' scratch, then the per-block buffers, then the packed
 * recurrent kernel; after the recurrence, the joint weight-gradient product's results take their place
 * (grad_plan: sized for the call, the same in the kernels and their sizing functions).
 */
#include "graphc_rnn_grad.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "graphc_kernels.h"
#include "graphc_nn.h"
#include "graphc_rnn.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__GNUC__) && !defined(__clang__)
/* As kernels/rnn.c: let GCC vectorize the selects and contract a * b + c. */
#pragma GCC optimize("no-trapping-math", "fp-contract=fast")
#endif

#define SCRATCH GRAPHC_RNN_GRAD_SCRATCH_FLOATS
#define PARALLEL_MIN (1L << 22) /* multiply-adds of a whole call below which the recurrence stays on one thread */
#define JOINT_MAX 256      /* features + units up to which dkernel and drecurrent are one product (joint_grads) */
#define JOINT_COLS 512     /* ... computed this many columns at a time into the scratch */

/* Floats of each region of a call's scratch: the GEMMs', then a block's buffers, then the packed kernel. */
typedef struct {
    int64_t block; /* samples per block at most */
    size_t gemm, buf, pack, wgrad, sums, total; /* wgrad: the joint weight gradients' buffer (0: two products);
                                                   sums: offset of bias_sums */
} grad_plan;

typedef struct {
    int cell, features, units, gates, act, ract, backwards, reset_after, sequences;
    int64_t batch, steps;
    const float *x, *kernel, *recurrent, *bias, *h0, *c0;
    const float *mask; /* (batch, steps) in time order or NULL: a sample's step with 0 keeps its states */
    const float *rdrop; /* (batch, gates, units) or NULL: recurrent dropout, each gate's mask of the state */
    /* the forward's results and saved tensors (written by the forward, read by the backward) */
    float *seq, *h, *c, *hp, *cs, *zs, *aux;
    const float *dout, *dh, *dc;
    float *dh0, *dc0, *dzs, *daux, *dx, *dkernel, *drecurrent, *dbias;
    const graphc_scratch *scratch;
    grad_plan plan;
} problem;

/* a block's buffers per sample: the gates' activations, then dh, dc, two work vectors and (with a mask) the
 * masked samples' dh and dc kept through a step */
static int per_sample(const problem *p) { return (p->gates + 6) * p->units; }

/* Whether sample n's timestep t is masked (its states pass through it unchanged). */
static int masked(const problem *p, int64_t n, int64_t t)
{
    return p->mask != NULL && p->mask[n * p->steps + t] == 0.0f;
}

/* Gate g's recurrent dropout mask of sample n (units floats). */
static const float *rdrop_of(const problem *p, int64_t n, int g)
{
    return p->rdrop + ((size_t)n * p->gates + (size_t)g) * p->units;
}

/* What thread `part` of a team of `parts` uses: its region of the scratch, and the scratch its GEMMs get (all
 * of it for a team of one: they may start threads themselves). */
static float *region_of(const problem *p, int part) { return graphc_scratch_region(p->scratch, part); }

static graphc_scratch gemm_scratch(const problem *p, int part, int parts)
{
    return parts > 1 ? graphc_scratch_thread(p->scratch, part) : *p->scratch;
}

/* out[j] += sum of the rows of A (rows x cols, leading dimension lda). */
static void add_column_sums(int64_t rows, int cols, const float *A, int lda, float *out)
{
    int j0, j;
    int64_t r;
    for (j0 = 0; j0 < cols; j0 += 64) {
        const int n = cols - j0 < 64 ? cols - j0 : 64;
        float acc[64];
        for (j = 0; j < n; j++) acc[j] = out[j0 + j];
        for (r = 0; r < rows; r++) {
            const float *a = A + (size_t)r * lda + j0;
            for (j = 0; j < n; j++) acc[j] += a[j];
        }
        for (j = 0; j < n; j++) out[j0 + j] = acc[j];
    }
}

/* Thread `part`'s column sums of the dzs rows it computed (G floats, after the rest of its region): summed
 * step by step while the rows are in cache, where one pass over all of dzs afterwards read it from memory. */
static float *bias_sums(const problem *p, int part) { return region_of(p, part) + p->plan.sums; }

void graphc_rnn_activate_grad(int activation, const float *x, const float *y, float *g, int64_t n)
{
    int64_t i;
    switch (activation) {
    case GRAPHC_RNN_ACT_TANH:
        for (i = 0; i < n; i++) g[i] *= 1.0f - y[i] * y[i];
        break;
    case GRAPHC_RNN_ACT_SIGMOID:
        for (i = 0; i < n; i++) g[i] *= y[i] * (1.0f - y[i]);
        break;
    case GRAPHC_RNN_ACT_HARD_SIGMOID:
        for (i = 0; i < n; i++) g[i] = x[i] > -3.0f && x[i] < 3.0f ? g[i] * (1.0f / 6.0f) : 0.0f;
        break;
    case GRAPHC_RNN_ACT_RELU:
        for (i = 0; i < n; i++) g[i] = x[i] > 0.0f ? g[i] : 0.0f;
        break;
    case GRAPHC_RNN_ACT_RELU6:
        for (i = 0; i < n; i++) g[i] = x[i] > 0.0f && x[i] < 6.0f ? g[i] : 0.0f;
        break;
    case GRAPHC_RNN_ACT_EXP:
        for (i = 0; i < n; i++) g[i] *= y[i];
        break;
    case GRAPHC_RNN_ACT_ELU:
        for (i = 0; i < n; i++) g[i] = x[i] > 0.0f ? g[i] : g[i] * (y[i] + 1.0f);
        break;
    case GRAPHC_RNN_ACT_SELU:
        for (i = 0; i < n; i++)
            g[i] = x[i] > 0.0f ? g[i] * 1.0507009873554805f
                               : g[i] * (y[i] + 1.0507009873554805f * 1.6732632423543772f);
        break;
    case GRAPHC_RNN_ACT_SOFTPLUS:
        for (i = 0; i < n; i++) g[i] /= 1.0f + expf(-x[i]);
        break;
    case GRAPHC_RNN_ACT_SOFTSIGN:
        for (i = 0; i < n; i++) {
            const float d = 1.0f + fabsf(x[i]);
            g[i] /= d * d;
        }
        break;
    case GRAPHC_RNN_ACT_SILU:
        for (i = 0; i < n; i++) {
            const float s = 1.0f / (1.0f + expf(-x[i]));
            g[i] *= s * (1.0f + x[i] * (1.0f - s));
        }
        break;
    case GRAPHC_RNN_ACT_GELU:
        for (i = 0; i < n; i++)
            g[i] *= 0.5f * (1.0f + erff(x[i] * 0.7071067811865476f))
                    + x[i] * expf(-0.5f * x[i] * x[i]) * 0.3989422804014327f;
        break;
    case GRAPHC_RNN_ACT_LEAKY_RELU:
        for (i = 0; i < n; i++) g[i] = x[i] >= 0.0f ? g[i] : 0.2f * g[i];
        break;
    default: /* identity */
        break;
    }
}

/* Keras's default LSTM (sigmoid gates, tanh): its cell runs forward and backward in one pass per sample
 * (graphc_lstm_cell_standard_train and _grad, in kernels/rnn.c with the vector sigmoid and tanh); the forward
 * leaves the gates' activations in zs, so the backward recomputes tanh(c) alone, not also three sigmoids and a
 * tanh with their divisions (one thread, LSTM-28 at batch 64: forward 3.34-3.43 -> 3.47-3.53 ms, backward
 * 6.30-6.47 -> 5.88-6.01 ms). */
static int standard_lstm(const problem *p)
{
    return p->cell == GRAPHC_RNN_CELL_LSTM && p->act == GRAPHC_RNN_ACT_TANH && p->ract == GRAPHC_RNN_ACT_SIGMOID;
}

/* a = the gates' activations of the pre-activations z (one sample's row of G). */
static void activate_gates(const problem *p, const float *z, float *a)
{
    const int u = p->units;
    memcpy(a, z, (size_t)p->gates * u * sizeof(float));
    switch (p->cell) {
    case GRAPHC_RNN_CELL_LSTM:
        graphc_rnn_activate(p->ract, a, 2 * (int64_t)u); /* i, f */
        graphc_rnn_activate(p->act, a + 2 * u, u);       /* candidate */
        graphc_rnn_activate(p->ract, a + 3 * u, u);      /* o */
        break;
    case GRAPHC_RNN_CELL_GRU:
        graphc_rnn_activate(p->ract, a, 2 * (int64_t)u); /* z, r */
        graphc_rnn_activate(p->act, a + 2 * u, u);       /* candidate */
        break;
    default:
        graphc_rnn_activate(p->act, a, u);
        break;
    }
}

/* The per-step products with the recurrent kernel R (units x G), packed once per call into the thread's
 * pack buffer while `left` allows (pack NULL: only counted; see graphc_rnn.h): rp[0] is R, or R's z and r
 * columns for a GRU; rp[1] a GRU's h columns. With recurrent dropout each gate's state is masked apart, so
 * rp[g] is gate g's columns of R. The forward multiplies by them (transb 0), the backward by their
 * transposes. Returns the floats left. */
static size_t products(const problem *p, int transb, graphc_rnn_product *rp, float *pack, size_t left,
                       const graphc_scratch *gs)
{
    const int u = p->units, G = p->gates * u;
    int g;
    if (p->rdrop != NULL) {
        for (g = 0; g < p->gates; g++)
            graphc_rnn_product_init(rp + g, transb, u, u, p->recurrent + (size_t)g * u, G, &pack, &left, gs);
    } else if (p->cell != GRAPHC_RNN_CELL_GRU) {
        graphc_rnn_product_init(rp, transb, transb ? G : u, transb ? u : G, p->recurrent, G, &pack, &left, gs);
    } else if (!transb) {
        /* with reset_after the forward takes all G columns in one product */
        graphc_rnn_product_init(rp, 0, u, p->reset_after ? G : 2 * u, p->recurrent, G, &pack, &left, gs);
        if (!p->reset_after) graphc_rnn_product_init(rp + 1, 0, u, u, p->recurrent + 2 * u, G, &pack, &left, gs);
    } else {
        graphc_rnn_product_init(rp, 1, 2 * u, u, p->recurrent, G, &pack, &left, gs);
        graphc_rnn_product_init(rp + 1, 1, u, u, p->recurrent + 2 * u, G, &pack, &left, gs);
    }
    return left;
}

/* A GRU's product with its candidate's columns of R (h's, rp[1]; with recurrent dropout rp[2]). */
static const graphc_rnn_product *candidate(const problem *p, const graphc_rnn_product *rp)
{
    return rp + (p->rdrop != NULL ? 2 : 1);
}

/* The forward's products of h (samples [n0, n0 + m), m x units) with gates [g0, g1) of R, into those gates'
 * columns of C (beta 1: added): rp[0] for all of them, or with recurrent dropout rp[g - g0] for gate g, times
 * h masked by gate g's mask (into hm, m x units). */
static void state_products(const problem *p, const graphc_rnn_product *rp, int g0, int g1, int64_t n0, int m,
                           const float *h, float beta, float *C, int ldc, float *hm)
{
    const int u = p->units;
    int g, i, j;
    if (p->rdrop == NULL) {
        graphc_rnn_product_run(rp, m, h, u, beta, C, ldc);
        return;
    }
    for (g = g0; g < g1; g++) {
        for (i = 0; i < m; i++) {
            const float *hi = h + (size_t)i * u, *keep = rdrop_of(p, n0 + i, g);
            for (j = 0; j < u; j++) hm[(size_t)i * u + j] = hi[j] * keep[j];
        }
        graphc_rnn_product_run(rp + (g - g0), m, hm, u, beta, C + (size_t)(g - g0) * u, ldc);
    }
}

/* The backward's: dh (beta 1: +=) the gradient reaching h through gates [g0, g1), D @ R^T with D those gates'
 * gradients (ldd); with recurrent dropout, per gate (rp[g - g0]), times the gate's mask (through tmp, m x units). */
static void state_grads(const problem *p, const graphc_rnn_product *rp, int g0, int g1, int64_t n0, int m,
                        const float *D, int ldd, float beta, float *dh, float *tmp)
{
    const int u = p->units;
    int g, i, j;
    if (p->rdrop == NULL) {
        graphc_rnn_product_run(rp, m, D, ldd, beta, dh, u);
        return;
    }
    for (g = g0; g < g1; g++) {
        const int add = g > g0 || beta != 0.0f;
        graphc_rnn_product_run(rp + (g - g0), m, D + (size_t)(g - g0) * u, ldd, 0.0f, tmp, u);
        for (i = 0; i < m; i++) {
            const float *ti = tmp + (size_t)i * u, *keep = rdrop_of(p, n0 + i, g);
            float *dhi = dh + (size_t)i * u;
            for (j = 0; j < u; j++) dhi[j] = (add ? dhi[j] : 0.0f) + ti[j] * keep[j];
        }
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* The initial states of samples [n0, n0 + m) into h and c (c NULL: no cell state): h0 and c0, or zeros. */
static void start_states(const problem *p, int64_t n0, int m, float *h, float *c)
{
    const size_t n = (size_t)m * p->units * sizeof(float), at = (size_t)n0 * p->units;
    if (p->h0 != NULL) memcpy(h, p->h0 + at, n);
    else memset(h, 0, n);
    if (c != NULL && p->c0 != NULL) memcpy(c, p->c0 + at, n);
    else if (c != NULL) memset(c, 0, n);
}

/* With return_sequences, h of samples [n0, n0 + m) after processing step s into seq. */
static void store_sequence(const problem *p, int64_t n0, int m, int64_t s, const float *h)
{
    const int u = p->units;
    int i;
    if (p->seq != NULL)
        for (i = 0; i < m; i++)
            memcpy(p->seq + ((size_t)(n0 + i) * p->steps + (size_t)s) * u, h + (size_t)i * u,
                   (size_t)u * sizeof(float));
}

/* Forward for samples [r0, r1): zs already holds x @ kernel + bias. */

static void train_rows(const problem *p, int64_t r0, int64_t r1, float *region, const graphc_scratch *gs)
{
    const int u = p->units, G = p->gates * u;
    const int64_t T = p->steps;
    const int ldz = (int)(T * G), ldh = (int)(T * u);
    const float *rb = p->cell == GRAPHC_RNN_CELL_GRU && p->reset_after && p->bias != NULL ? p->bias + G : NULL;
    const int64_t block = p->plan.block;
    float *a = region + p->plan.gemm; /* (m, G): activations, or a GRU's recurrent projection */
    float *hm = a + graphc_scratch_round((size_t)((p->batch < block ? p->batch : block) * G)); /* (m, u) */
    graphc_rnn_product rp[4];
    const graphc_rnn_product *cand = candidate(p, rp);
    int64_t n0, s;
    int i, j;
    products(p, 0, rp, a + p->plan.buf, p->plan.pack, gs);

    for (n0 = r0; n0 < r1; n0 += block) {
        const int m = (int)(r1 - n0 < block ? r1 - n0 : block);
        float *h = p->h + (size_t)n0 * u, *c = p->c != NULL ? p->c + (size_t)n0 * u : NULL;
        start_states(p, n0, m, h, c);
        for (s = 0; s < T; s++) {
            const int64_t t = p->backwards ? T - 1 - s : s;
            float *z = p->zs + ((size_t)n0 * T + t) * G, *hp = p->hp + ((size_t)n0 * T + t) * u;
            float *aux = p->aux != NULL ? p->aux + ((size_t)n0 * T + t) * u : NULL;
            /* the zero initial state's products with the recurrent kernel are zero: skipped (as in rnn.c) */
            const int zero_h = p->h0 == NULL && s == 0;
            for (i = 0; i < m; i++) memcpy(hp + (size_t)i * ldh, h + (size_t)i * u, (size_t)u * sizeof(float));
            if (p->cell == GRAPHC_RNN_CELL_SIMPLE) {
                if (!zero_h) state_products(p, rp, 0, 1, n0, m, h, 1.0f, z, ldz, hm);
                for (i = 0; i < m; i++) {
                    if (masked(p, n0 + i, t)) continue;
                    memcpy(h + (size_t)i * u, z + (size_t)i * ldz, (size_t)u * sizeof(float));
                    graphc_rnn_activate(p->act, h + (size_t)i * u, u);
                }
            } else if (p->cell == GRAPHC_RNN_CELL_LSTM) {
                if (!zero_h) state_products(p, rp, 0, 4, n0, m, h, 1.0f, z, ldz, hm);
                for (i = 0; i < m; i++) {
                    float *ai = a + (size_t)i * G, *hi = h + (size_t)i * u, *ci = c + (size_t)i * u;
                    float *csi = p->cs + ((size_t)(n0 + i) * T + t) * u;
                    if (masked(p, n0 + i, t)) { /* (zs keeps the pre-activations: the backward zeroes dz here) */
                        memcpy(csi, ci, (size_t)u * sizeof(float));
                        continue;
                    }
                    if (standard_lstm(p)) {
                        graphc_lstm_cell_standard_train(p->act, p->ract, z + (size_t)i * ldz, u, u, hi, ci,
                                                        z + (size_t)i * ldz);
                        memcpy(csi, ci, (size_t)u * sizeof(float));
                        continue;
                    }
                    activate_gates(p, z + (size_t)i * ldz, ai);
                    for (j = 0; j < u; j++) {
                        ci[j] = ai[u + j] * ci[j] + ai[j] * ai[2 * u + j];
                        csi[j] = hi[j] = ci[j];
                    }
                    graphc_rnn_activate(p->act, hi, u);
                    for (j = 0; j < u; j++) hi[j] *= ai[3 * u + j];
                }
            } else if (p->reset_after) { /* candidate = act(x_h + r * (h @ U_h + b_rh)) */
                if (zero_h) memset(a, 0, (size_t)m * G * sizeof(float));
                else state_products(p, rp, 0, 3, n0, m, h, 0.0f, a, G, hm);
                for (i = 0; i < m; i++) {
                    float *zi = z + (size_t)i * ldz, *wi = a + (size_t)i * G, *auxi = aux + (size_t)i * ldh;
                    float *hi = h + (size_t)i * u;
                    if (rb != NULL)
                        for (j = 0; j < G; j++) wi[j] += rb[j];
                    for (j = 0; j < 2 * u; j++) zi[j] += wi[j];
                    memcpy(auxi, wi + 2 * u, (size_t)u * sizeof(float));
                    memcpy(wi, zi, 2 * (size_t)u * sizeof(float));
                    graphc_rnn_activate(p->ract, wi, 2 * (int64_t)u);
                    for (j = 0; j < u; j++) zi[2 * u + j] += wi[u + j] * auxi[j];
                    memcpy(wi + 2 * u, zi + 2 * u, (size_t)u * sizeof(float));
                    graphc_rnn_activate(p->act, wi + 2 * u, u);
                    if (!masked(p, n0 + i, t))
                        for (j = 0; j < u; j++) hi[j] = wi[j] * hi[j] + (1.0f - wi[j]) * wi[2 * u + j];
                }
            } else { /* candidate = act(x_h + (r * h) @ U_h), h masked by the candidate's recurrent dropout */
                if (!zero_h) state_products(p, rp, 0, 2, n0, m, h, 1.0f, z, ldz, hm);
                for (i = 0; i < m; i++) {
                    float *wi = a + (size_t)i * G, *auxi = aux + (size_t)i * ldh;
                    const float *hi = h + (size_t)i * u;
                    memcpy(wi, z + (size_t)i * ldz, 2 * (size_t)u * sizeof(float));
                    graphc_rnn_activate(p->ract, wi, 2 * (int64_t)u);
                    for (j = 0; j < u; j++) auxi[j] = wi[u + j] * hi[j];
                    if (p->rdrop != NULL)
                        for (j = 0; j < u; j++) auxi[j] *= rdrop_of(p, n0 + i, 2)[j];
                }
                if (!zero_h) graphc_rnn_product_run(cand, m, aux, ldh, 1.0f, z + 2 * u, ldz); /* (r * 0 = 0) */
                for (i = 0; i < m; i++) {
                    float *zi = z + (size_t)i * ldz, *wi = a + (size_t)i * G, *hi = h + (size_t)i * u;
                    memcpy(wi + 2 * u, zi + 2 * u, (size_t)u * sizeof(float));
                    graphc_rnn_activate(p->act, wi + 2 * u, u);
                    if (!masked(p, n0 + i, t))
                        for (j = 0; j < u; j++) hi[j] = wi[j] * hi[j] + (1.0f - wi[j]) * wi[2 * u + j];
                }
            }
            store_sequence(p, n0, m, s, h);
        }
    }
}

/* The pack buffer's floats for train_rows_fused: [kernel; recurrent] and the kernel alone, packed. */
static size_t fused_pack_floats(const problem *p)
{
    const int G = p->gates * p->units;
    return graphc_sgemm_packed_b_size(p->features + p->units, G) + graphc_sgemm_packed_b_size(p->features, G);
}

/* Whether the forward of Keras's default LSTM multiplies [x_t | h] by [kernel; recurrent] at each step
 * (train_rows_fused) instead of projecting all timesteps first: the stacked kernel and the kernel alone (for a
 * zero initial state) must fit the pack buffer. The scratch is sized for it whatever the activations (the
 * sizing functions do not take them). */
static int fused_fits(const problem *p)
{
    return p->cell == GRAPHC_RNN_CELL_LSTM && fused_pack_floats(p) <= GRAPHC_RNN_PACK_FLOATS;
}

static int fused_forward(const problem *p) { return standard_lstm(p) && fused_fits(p) && p->rdrop == NULL; }

/* The forward of samples [r0, r1) with the input projection in each step's product: z = [x_t | h] @ [kernel;
 * recurrent] + bias into a buffer that stays in cache, the cell from there, and the gates' activations
 * written once to zs. Projected first, zs (2 KB per sample and timestep for 512 gate columns) went out to
 * memory and came back twice, for the step's product and for the cell (LSTM-28 at batch 64, 2 threads, harness:
 * the forward's best 1.62 -> 1.54 ms, its median 1.94-1.97 -> 1.82 ms). */
static void train_rows_fused(const problem *p, int64_t r0, int64_t r1, float *region, const graphc_scratch *gs)
{
    const int u = p->units, G = p->gates * u, F = p->features, K = F + u;
    const int64_t T = p->steps, block = p->plan.block;
    const int64_t m_max = r1 - r0 < block ? r1 - r0 : block;
    float *xh = region + p->plan.gemm, *z = xh + graphc_scratch_round((size_t)(m_max * K));
    float *both = xh + p->plan.buf, *kernel_only = both + graphc_sgemm_packed_b_size(K, G);
    int64_t n0, s;
    int i;
    graphc_sgemm_pack_b_stacked(F, p->kernel, u, p->recurrent, G, G, both);
    if (p->h0 == NULL) graphc_sgemm_pack_b(0, F, G, p->kernel, G, kernel_only);

    for (n0 = r0; n0 < r1; n0 += block) {
        const int m = (int)(r1 - n0 < block ? r1 - n0 : block);
        float *h = p->h + (size_t)n0 * u, *c = p->c + (size_t)n0 * u;
        start_states(p, n0, m, h, c);
        for (s = 0; s < T; s++) {
            const int64_t t = p->backwards ? T - 1 - s : s;
            const size_t row = (size_t)n0 * T + t; /* sample n0 + i's is row + i * T */
            for (i = 0; i < m; i++) {
                memcpy(xh + (size_t)i * K, p->x + (row + (size_t)i * T) * F, (size_t)F * sizeof(float));
                memcpy(xh + (size_t)i * K + F, h + (size_t)i * u, (size_t)u * sizeof(float));
                memcpy(p->hp + (row + (size_t)i * T) * u, h + (size_t)i * u, (size_t)u * sizeof(float));
            }
            /* (B is only read through its packed copy: the kernel stands in for it) */
            if (p->h0 == NULL && s == 0) /* the zero initial state's product is zero: x_t @ kernel alone */
                graphc_sgemm_bias_act_prepacked(m, G, F, xh, K, p->kernel, G, kernel_only, p->bias, GRAPHC_ACT_NONE, z,
                                                G, gs);
            else
                graphc_sgemm_bias_act_prepacked(m, G, K, xh, K, p->kernel, G, both, p->bias, GRAPHC_ACT_NONE, z, G, gs);
            for (i = 0; i < m; i++) {
                const float *zi = z + (size_t)i * G;
                float *saved = p->zs + (row + (size_t)i * T) * G, *ci = c + (size_t)i * u;
                if (masked(p, n0 + i, t)) /* h and c pass through (zs as the unfused path's: the backward zeroes dz) */
                    memcpy(saved, zi, (size_t)G * sizeof(float));
                else
                    graphc_lstm_cell_standard_train(p->act, p->ract, zi, u, u, h + (size_t)i * u, ci, saved);
                memcpy(p->cs + (row + (size_t)i * T) * u, ci, (size_t)u * sizeof(float));
            }
            store_sequence(p, n0, m, s, h);
        }
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* Backward for samples [r0, r1): fills dzs (and daux) and dh0 / dc0. */

static void grad_rows(const problem *p, int64_t r0, int64_t r1, float *region, const graphc_scratch *gs,
                      float *bsum)
{
    const int u = p->units, G = p->gates * u;
    const int64_t T = p->steps;
    const int ldz = (int)(T * G), ldh = (int)(T * u);
    const int64_t block = p->plan.block;
    graphc_rnn_product rp[4];
    const graphc_rnn_product *cand = candidate(p, rp);
    int64_t n0, s;
    int i, j;
    products(p, 1, rp, region + p->plan.gemm + p->plan.buf, p->plan.pack, gs);

    for (n0 = r0; n0 < r1; n0 += block) {
        const int m = (int)(r1 - n0 < block ? r1 - n0 : block);
        float *a = region + p->plan.gemm, *dh = a + (size_t)m * G, *dc = dh + (size_t)m * u;
        float *w1 = dc + (size_t)m * u, *w2 = w1 + (size_t)m * u;
        float *kept_dh = w2 + (size_t)m * u, *kept_dc = kept_dh + (size_t)m * u; /* the masked samples' */
        memcpy(dh, p->dh + (size_t)n0 * u, (size_t)m * u * sizeof(float));
        if (!p->sequences)
            for (j = 0; j < m * u; j++) dh[j] += p->dout[(size_t)n0 * u + j];
        if (p->cell == GRAPHC_RNN_CELL_LSTM) memcpy(dc, p->dc + (size_t)n0 * u, (size_t)m * u * sizeof(float));

        for (s = T - 1; s >= 0; s--) {
            const int64_t t = p->backwards ? T - 1 - s : s, tp = p->backwards ? t + 1 : t - 1;
            const size_t row = (size_t)n0 * T + t;
            const float *z = p->zs + row * G, *hp = p->hp + row * u;
            float *dz = p->dzs + row * G;
            /* the first step's dh_prev only reaches dh0: without it, its products are skipped */
            const int dh_unused = s == 0 && p->dh0 == NULL;
            if (p->sequences)
                for (i = 0; i < m; i++) {
                    const float *g = p->dout + ((size_t)(n0 + i) * T + s) * u;
                    for (j = 0; j < u; j++) dh[(size_t)i * u + j] += g[j];
                }
            if (p->mask != NULL) /* a masked step passes dh and dc on unchanged: keep them through the step */
                for (i = 0; i < m; i++)
                    if (masked(p, n0 + i, t)) {
                        memcpy(kept_dh + (size_t)i * u, dh + (size_t)i * u, (size_t)u * sizeof(float));
                        if (p->cell == GRAPHC_RNN_CELL_LSTM)
                            memcpy(kept_dc + (size_t)i * u, dc + (size_t)i * u, (size_t)u * sizeof(float));
                    }
            if (!standard_lstm(p)) /* (the standard cell recomputes them in its one pass) */
                for (i = 0; i < m; i++) activate_gates(p, z + (size_t)i * ldz, a + (size_t)i * G);

            if (p->cell == GRAPHC_RNN_CELL_SIMPLE) {
                for (i = 0; i < m; i++) {
                    float *dzi = dz + (size_t)i * ldz;
                    memcpy(dzi, dh + (size_t)i * u, (size_t)u * sizeof(float));
                    graphc_rnn_activate_grad(p->act, z + (size_t)i * ldz, a + (size_t)i * G, dzi, u);
                }
                if (!dh_unused) state_grads(p, rp, 0, 1, n0, m, dz, ldz, 0.0f, dh, a);
            } else if (p->cell == GRAPHC_RNN_CELL_LSTM) {
                for (i = 0; i < m; i++) {
                    const float *zi = z + (size_t)i * ldz, *ai = a + (size_t)i * G;
                    const float *ci = p->cs + ((size_t)(n0 + i) * T + t) * u;
                    const float *cp = s > 0 ? p->cs + ((size_t)(n0 + i) * T + tp) * u
                                            : p->c0 != NULL ? p->c0 + (size_t)(n0 + i) * u : NULL;
                    float *dzi = dz + (size_t)i * ldz, *dhi = dh + (size_t)i * u, *dci = dc + (size_t)i * u;
                    float *tc = w1 + (size_t)i * u, *g = w2 + (size_t)i * u;
                    if (standard_lstm(p)) {
                        graphc_lstm_cell_standard_grad(p->act, p->ract, zi, u, ci, cp, u, dhi, dci, dzi);
                        continue;
                    }
                    memcpy(tc, ci, (size_t)u * sizeof(float));
                    graphc_rnn_activate(p->act, tc, u);
                    for (j = 0; j < u; j++) g[j] = dhi[j] * ai[3 * u + j];
                    graphc_rnn_activate_grad(p->act, ci, tc, g, u);
                    for (j = 0; j < u; j++) {
                        const float d = dci[j] + g[j];
                        dzi[j] = d * ai[2 * u + j];
                        dzi[u + j] = cp != NULL ? d * cp[j] : 0.0f;
                        dzi[2 * u + j] = d * ai[j];
                        dzi[3 * u + j] = dhi[j] * tc[j];
                        dci[j] = d * ai[u + j];
                    }
                    graphc_rnn_activate_grad(p->ract, zi, ai, dzi, 2 * (int64_t)u);
                    graphc_rnn_activate_grad(p->act, zi + 2 * u, ai + 2 * u, dzi + 2 * u, u);
                    graphc_rnn_activate_grad(p->ract, zi + 3 * u, ai + 3 * u, dzi + 3 * u, u);
                }
                if (!dh_unused) state_grads(p, rp, 0, 4, n0, m, dz, ldz, 0.0f, dh, a);
            } else {
                const float *aux = p->aux + row * u;
                float *daux = p->daux != NULL ? p->daux + row * u : NULL;
                for (i = 0; i < m; i++) {
                    const float *zi = z + (size_t)i * ldz, *ai = a + (size_t)i * G, *hpi = hp + (size_t)i * ldh;
                    float *dzi = dz + (size_t)i * ldz, *dhi = dh + (size_t)i * u, *direct = w1 + (size_t)i * u;
                    for (j = 0; j < u; j++) {
                        dzi[j] = dhi[j] * (hpi[j] - ai[2 * u + j]);
                        dzi[2 * u + j] = dhi[j] * (1.0f - ai[j]);
                        direct[j] = dhi[j] * ai[j];
                    }
                    graphc_rnn_activate_grad(p->ract, zi, ai, dzi, u);
                    graphc_rnn_activate_grad(p->act, zi + 2 * u, ai + 2 * u, dzi + 2 * u, u);
                    if (p->reset_after) {
                        const float *auxi = aux + (size_t)i * ldh;
                        float *dauxi = daux + (size_t)i * ldh;
                        for (j = 0; j < u; j++) {
                            dzi[u + j] = dzi[2 * u + j] * auxi[j];
                            dauxi[j] = dzi[2 * u + j] * ai[u + j];
                        }
                        graphc_rnn_activate_grad(p->ract, zi + u, ai + u, dzi + u, u);
                    }
                }
                if (p->reset_after) { /* dh = [dz, dr] @ [U_z U_r]^T + daux @ U_h^T */
                    if (!dh_unused) {
                        state_grads(p, rp, 0, 2, n0, m, dz, ldz, 0.0f, dh, a);
                        state_grads(p, cand, 2, 3, n0, m, daux, ldh, 1.0f, dh, a);
                    }
                } else { /* d(r * h) = dcandidate @ U_h^T, then through r and h */
                    graphc_rnn_product_run(cand, m, dz + 2 * u, ldz, 0.0f, w2, u);
                    for (i = 0; i < m; i++) {
                        const float *zi = z + (size_t)i * ldz, *ai = a + (size_t)i * G;
                        const float *hpi = hp + (size_t)i * ldh;
                        float *dzi = dz + (size_t)i * ldz, *direct = w1 + (size_t)i * u, *drh = w2 + (size_t)i * u;
                        if (p->rdrop != NULL) /* r multiplied the masked state */
                            for (j = 0; j < u; j++) drh[j] *= rdrop_of(p, n0 + i, 2)[j];
                        for (j = 0; j < u; j++) {
                            dzi[u + j] = drh[j] * hpi[j];
                            direct[j] += drh[j] * ai[u + j];
                        }
                        graphc_rnn_activate_grad(p->ract, zi + u, ai + u, dzi + u, u);
                    }
                        if (!dh_unused) state_grads(p, rp, 0, 2, n0, m, dz, ldz, 0.0f, dh, a);
                }
                for (j = 0; j < m * u; j++) dh[j] += w1[j];
            }
            if (p->mask != NULL) /* ... and what the cell computed for them is dropped: no gradient flows there */
                for (i = 0; i < m; i++)
                    if (masked(p, n0 + i, t)) {
                        memset(dz + (size_t)i * ldz, 0, (size_t)G * sizeof(float));
                        if (p->daux != NULL) memset(p->daux + (row + (size_t)i * T) * u, 0, (size_t)u * sizeof(float));
                        memcpy(dh + (size_t)i * u, kept_dh + (size_t)i * u, (size_t)u * sizeof(float));
                        if (p->cell == GRAPHC_RNN_CELL_LSTM)
                            memcpy(dc + (size_t)i * u, kept_dc + (size_t)i * u, (size_t)u * sizeof(float));
                    }
            if (bsum != NULL) add_column_sums(m, G, dz, ldz, bsum);
        }
        if (p->dh0 != NULL) memcpy(p->dh0 + (size_t)n0 * u, dh, (size_t)m * u * sizeof(float));
        if (p->dc0 != NULL) memcpy(p->dc0 + (size_t)n0 * u, dc, (size_t)m * u * sizeof(float));
    }
}

/* ---------------------------------------------------------------------------------------------- */

/* [lo, hi) of part `part` of `parts` even shares of count, in multiples of step. */
static void share(int64_t count, int64_t step, int part, int parts, int64_t *lo, int64_t *hi)
{
    const int64_t units = (count + step - 1) / step;
    *lo = units * part / parts * step;
    *hi = units * (part + 1) / parts * step;
    *lo = *lo < count ? *lo : count;
    *hi = *hi < count ? *hi : count;
}

/* x @ kernel + bias for the timesteps of samples [r0, r1): rows r0 * T .. r1 * T of zs. A GRU with
 * reset_after adds its input bias (the first row of its (2, G) bias) here. */
static void project(const problem *p, int64_t r0, int64_t r1, const graphc_scratch *gs)
{
    const int G = p->gates * p->units;
    graphc_sgemm_bias_act((int)((r1 - r0) * p->steps), G, p->features, p->x + (size_t)r0 * p->steps * p->features,
                          p->features, p->kernel, G, p->bias, GRAPHC_ACT_NONE, p->zs + (size_t)r0 * p->steps * G, G,
                          gs);
}

/* dkernel and drecurrent, x^T @ dzs and hp^T @ dzs, as one product [x | hp]^T @ dzs: dzs, the larger operand,
 * is packed once instead of twice (LSTM-784 at batch 64, whose dkernel alone was a product of one row packing
 * all of dzs: its backward 109-119 -> 97-98 ms). The stacked left operand is never stored: pack_xh packs it
 * from x and hp. */
typedef struct { const float *x, *hp; int F, u; } xh_rows;

/* graphc_pack_a_fn of op(A) = [x | hp]^T ((F + u) x rows): each of its columns k is row k of x then of hp. */
static void pack_xh(const void *ctx, int i0, int rows, int k0, int kc, int mr, float *Ap)
{
    const xh_rows *c = (const xh_rows *)ctx;
    int p, i, k;
    for (p = 0; p < rows; p += mr, Ap += (size_t)mr * kc) {
        const int a0 = i0 + p;
        if (p + mr <= rows && (a0 + mr <= c->F || a0 >= c->F)) { /* a whole panel of x's or of hp's columns */
            const int ld = a0 < c->F ? c->F : c->u;
            const float *src = (a0 < c->F ? c->x + a0 : c->hp + (a0 - c->F)) + (size_t)k0 * ld;
            graphc_pack_at_panel(kc, mr, src, ld, Ap);
            continue;
        }
        for (k = 0; k < kc; k++) /* the panel across x's last and hp's first columns, or the last one */
            for (i = 0; i < mr; i++) {
                const int a = a0 + i;
                Ap[(size_t)k * mr + i] = p + i >= rows ? 0.0f
                                         : a < c->F ? c->x[(size_t)(k0 + k) * c->F + a]
                                                    : c->hp[(size_t)(k0 + k) * c->u + (a - c->F)];
            }
    }
}

/* Whether dkernel and drecurrent are one product: not for a GRU (its candidate's columns take other operands),
 * nor with recurrent dropout (each gate's columns take its own masked state), nor for wide inputs, whose
 * products are large enough alone. */
static int joint_grads(const problem *p)
{
    return p->cell != GRAPHC_RNN_CELL_GRU && p->rdrop == NULL && p->features + p->units <= JOINT_MAX;
}

/* With recurrent dropout, the left operand of gate g's columns of drecurrent: (hp * mask_g)^T. */
typedef struct { const problem *p; int g; } dropped_state;

/* graphc_pack_a_fn of op(A) = (hp * mask_g)^T (units x rows): row k of hp times its sample's mask of gate g. */
static void pack_dropped_state(const void *ctx, int i0, int rows, int k0, int kc, int mr, float *Ap)
{
    const dropped_state *c = (const dropped_state *)ctx;
    const problem *p = c->p;
    const int u = p->units;
    int q, i, k;
    for (q = 0; q < rows; q += mr, Ap += (size_t)mr * kc)
        for (k = 0; k < kc; k++) {
            const int64_t r = (int64_t)k0 + k;
            const float *h = p->hp + (size_t)r * u + i0 + q, *keep = rdrop_of(p, r / p->steps, c->g) + i0 + q;
            for (i = 0; i < mr; i++) Ap[(size_t)k * mr + i] = q + i < rows ? h[i] * keep[i] : 0.0f;
        }
}

/* drecurrent's columns [j0, j1) = hp^T @ D, D (rows x (j1 - j0), ldd) those columns' gradients; with recurrent
 * dropout, each gate's part with hp masked by the gate's mask. */
static void state_weight_grads(const problem *p, int64_t j0, int64_t j1, const float *D, int ldd,
                               const graphc_scratch *gs)
{
    const int u = p->units, G = p->gates * u, rows = (int)(p->batch * p->steps);
    int64_t a, b;
    if (j1 <= j0) return;
    if (p->rdrop == NULL) {
        graphc_sgemm_ex(1, 0, u, (int)(j1 - j0), rows, 1.0f, p->hp, u, D, ldd, 0.0f, p->drecurrent + j0, G, gs);
        return;
    }
    for (a = j0; a < j1; a = b) { /* [a, b): the part of one gate */
        const dropped_state ctx = {p, (int)(a / u)};
        b = (a / u + 1) * u < j1 ? (a / u + 1) * u : j1;
        graphc_sgemm_implicit(u, (int)(b - a), rows, pack_dropped_state, &ctx, D + (a - j0), ldd, NULL, 0.0f, NULL,
                              GRAPHC_ACT_NONE, p->drecurrent + a, G, gs);
    }
}

/* dkernel and drecurrent by the joint product, JOINT_COLS columns at a time. A team splits the product's
 * inner dimension, not its columns: each thread multiplies its own samples' rows (the rows of dzs it wrote
 * in the recurrence, still near its core) for all columns into its region's buffer, then sums its share of
 * the columns over the team's buffers. Split by columns, each thread had packed all of [x | hp] and read
 * half of dzs from the other core (LSTM-28 at batch 64, 2 threads: 1.56-1.76 -> 1.50-1.62 ms per thread). A team
 * of one leaves the threading to the GEMM. */
static void joint_weight_grads(const problem *p, int part, int parts, const graphc_scratch *gs)
{
    const int u = p->units, G = p->gates * u, F = p->features;
    const int64_t T = p->steps;
    float *mine = region_of(p, part) + p->plan.gemm;
    int64_t n0, n1, c0, j0, j1, r, j;
    int t;
    share(p->batch, 1, part, parts, &n0, &n1);
    {
        const xh_rows ctx = {p->x + (size_t)n0 * T * F, p->hp + (size_t)n0 * T * u, F, u};
        for (c0 = 0; c0 < G; c0 += JOINT_COLS) {
            const int n = (int)(G - c0 < JOINT_COLS ? G - c0 : JOINT_COLS);
            if (n1 > n0)
                graphc_sgemm_implicit(F + u, n, (int)((n1 - n0) * T), pack_xh, &ctx, p->dzs + (size_t)n0 * T * G + c0,
                                      G, NULL, 0.0f, NULL, GRAPHC_ACT_NONE, mine, n, gs);
            else
                memset(mine, 0, (size_t)(F + u) * n * sizeof(float));
            if (parts > 1) {
                GRAPHC_OMP(omp barrier) /* every thread's sums of its rows are in its buffer */
            }
            share(n, 16, part, parts, &j0, &j1);
            for (r = 0; r < F + u; r++) {
                float *out = (r < F ? p->dkernel + r * G : p->drecurrent + (r - F) * G) + c0;
                for (j = j0; j < j1; j++) {
                    float sum = 0.0f;
                    for (t = 0; t < parts; t++) sum += region_of(p, t)[p->plan.gemm + r * n + j];
                    out[j] = sum;
                }
            }
            if (parts > 1) {
                GRAPHC_OMP(omp barrier) /* the buffers are read before the next columns overwrite them */
            }
        }
    }
}

/* The gradients that sum over samples and timesteps, as GEMMs over all rows of dzs: thread `part` of
 * `parts` takes a share of the G columns of dkernel, drecurrent and dbias and of the rows of dx, so the
 * team needs no barrier (a team of one leaves the threading to the GEMMs); the joint product splits its rows
 * instead (joint_weight_grads). */
static void weight_grads(const problem *p, int part, int parts, const graphc_scratch *gs)
{
    const int u = p->units, G = p->gates * u, F = p->features;
    const int rows = (int)(p->batch * p->steps);
    const float *dzs = p->dzs;
    int64_t j0, j1, r0, r1, j;
    int t;
    share(G, 16, part, parts, &j0, &j1);
    share(rows, 16, part, parts, &r0, &r1);
    if (p->dx != NULL && r1 > r0)
        graphc_sgemm_ex(0, 1, (int)(r1 - r0), F, G, 1.0f, dzs + (size_t)r0 * G, G, p->kernel, G, 0.0f,
                        p->dx + (size_t)r0 * F, F, gs);
    if (p->dbias != NULL) /* the team's sums of their rows */
        for (j = j0; j < j1; j++) {
            float sum = 0.0f;
            for (t = 0; t < parts; t++) sum += bias_sums(p, t)[j];
            p->dbias[j] = sum;
        }
    if (joint_grads(p)) { /* (every thread: it has barriers) */
        joint_weight_grads(p, part, parts, gs);
        return;
    }
    if (j1 <= j0) return;
    graphc_sgemm_ex(1, 0, F, (int)(j1 - j0), rows, 1.0f, p->x, F, dzs + j0, G, 0.0f, p->dkernel + j0, G, gs);
    if (p->cell != GRAPHC_RNN_CELL_GRU) {
        state_weight_grads(p, j0, j1, dzs + j0, G, gs);
        return;
    }
    { /* GRU: the z and r columns as above; the candidate's from r * dcandidate (reset_after), or with
       * (r * h_prev) as the product's input */
        const int64_t split = j1 < 2 * u ? j1 : j0 > 2 * u ? j0 : 2 * u;
        state_weight_grads(p, j0, split, dzs + j0, G, gs);
        if (j1 > split && p->reset_after)
            state_weight_grads(p, split, j1, p->daux + (split - 2 * u), u, gs);
        else if (j1 > split) /* (aux is r times the masked state already) */
            graphc_sgemm_ex(1, 0, u, (int)(j1 - split), rows, 1.0f, p->aux, u, dzs + split, G, 0.0f,
                            p->drecurrent + split, G, gs);
        if (p->dbias != NULL && p->reset_after) { /* (2, G): the recurrent bias's row */
            if (split > j0) memcpy(p->dbias + G + j0, p->dbias + j0, (size_t)(split - j0) * sizeof(float));
            if (j1 > split) {
                memset(p->dbias + G + split, 0, (size_t)(j1 - split) * sizeof(float));
                add_column_sums(rows, (int)(j1 - split), p->daux + (split - 2 * u), u, p->dbias + G + split);
            }
        }
    }
}

static void train_part(const problem *p, int part, int parts)
{
    const graphc_scratch gs = gemm_scratch(p, part, parts);
    int64_t r0, r1;
    share(p->batch, 1, part, parts, &r0, &r1);
    if (r1 <= r0) return;
    if (fused_forward(p)) {
        train_rows_fused(p, r0, r1, region_of(p, part), &gs);
        return;
    }
    project(p, r0, r1, &gs);
    train_rows(p, r0, r1, region_of(p, part), &gs);
}

static void grad_part(const problem *p, int part, int parts)
{
    const graphc_scratch gs = gemm_scratch(p, part, parts);
    float *bsum = p->dbias != NULL ? bias_sums(p, part) : NULL;
    int64_t r0, r1;
    share(p->batch, 1, part, parts, &r0, &r1);
    if (bsum != NULL) memset(bsum, 0, (size_t)p->gates * p->units * sizeof(float));
    if (r1 > r0) grad_rows(p, r0, r1, region_of(p, part), &gs, bsum);
    GRAPHC_OMP(omp barrier) /* dzs is complete */
    weight_grads(p, part, parts, &gs);
}

/* Runs body(p, part, parts) on a team that splits the batch (each thread runs the recurrence of its own
 * samples, without barriers per step), when the call is large enough; else on the calling thread. */
static void run_team(const problem *p, void (*body)(const problem *, int, int))
{
    int threads = 1;
    (void)threads; /* only read by the OpenMP clause */
#ifdef _OPENMP
    {
        const double work = (double)p->batch * (double)p->steps * (double)p->gates * p->units *
                            (double)(p->units + p->features);
        if (!omp_in_parallel() && p->batch > 1 && work > (double)PARALLEL_MIN) {
            threads = omp_get_max_threads();
            threads = threads < p->batch ? threads : (int)p->batch;
            threads = threads < p->scratch->nthreads ? threads : p->scratch->nthreads;
        }
    }
#endif
    if (threads == 1) {
        body(p, 0, 1);
        return;
    }
    GRAPHC_OMP(omp parallel num_threads(threads))
    {
        int t = 0, team = 1;
#ifdef _OPENMP
        t = omp_get_thread_num();
        team = omp_get_num_threads();
#endif
        body(p, t, team);
    }
}

static int setup(problem *p, int cell, int64_t batch, int64_t steps, int features, int units, int activation,
                 int recurrent_activation, int go_backwards, int reset_after, int return_sequences)
{
    memset(p, 0, sizeof *p);
    p->cell = cell, p->batch = batch, p->steps = steps, p->features = features, p->units = units;
    p->gates = cell == GRAPHC_RNN_CELL_LSTM ? 4 : cell == GRAPHC_RNN_CELL_GRU ? 3 : 1;
    p->act = activation, p->ract = recurrent_activation, p->backwards = go_backwards;
    p->reset_after = reset_after, p->sequences = return_sequences;
    return per_sample(p) <= SCRATCH ? 0 : -1;
}

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

/* The scratch use of the forward (backward 0) or the backward (1) of the problem set up in p. */
static grad_plan plan_call(const problem *p, int backward)
{
    const int64_t u = p->units, G = p->gates * u, F = p->features, rows = p->batch * p->steps;
    graphc_rnn_product rp[4];
    grad_plan c;
    int64_t m;
    c.block = per_sample(p) > 0 ? SCRATCH / per_sample(p) : 1;
    m = p->batch < c.block ? p->batch : c.block;
    /* (the forward's: the activations, then h masked by a gate's recurrent dropout) */
    c.buf = backward ? graphc_scratch_round((size_t)(m * per_sample(p)))
                     : graphc_scratch_round((size_t)(m * G)) + graphc_scratch_round((size_t)(m * u));
    c.pack = graphc_scratch_round(GRAPHC_RNN_PACK_FLOATS - products(p, backward, rp, NULL, GRAPHC_RNN_PACK_FLOATS,
                                                                    NULL));
    if (!backward) /* the input projection, then the per-step products */
        c.gemm = max_size(graphc_sgemm_scratch_floats(rows, G, F), graphc_sgemm_scratch_floats(m, G, u));
    else { /* the per-step products, then dx, dkernel and drecurrent over all rows (by gate, with recurrent
            * dropout: the sizing functions do not know whether it is on) */
        c.gemm = max_size(graphc_sgemm_scratch_floats(m, u, G), graphc_sgemm_scratch_floats(rows, F, G));
        c.gemm = max_size(c.gemm, max_size(graphc_sgemm_scratch_floats(F, G, rows),
                                           graphc_sgemm_scratch_floats(u, G, rows)));
        c.gemm = max_size(c.gemm, graphc_sgemm_implicit_scratch_floats(u, u, rows));
    }
    if (!backward && fused_fits(p)) { /* or [x_t | h] and z per block; [kernel; recurrent] and kernel packed */
        c.buf = max_size(c.buf, graphc_scratch_round((size_t)(m * (F + u))) + graphc_scratch_round((size_t)(m * G)));
        c.pack = max_size(c.pack, graphc_scratch_round(fused_pack_floats(p)));
        c.gemm = max_size(c.gemm, graphc_sgemm_scratch_floats(m, G, F + u));
    }
    c.wgrad = 0;
    if (backward && joint_grads(p)) { /* the joint product's scratch, and its results (after the recurrence) */
        const int64_t cols = G < JOINT_COLS ? G : JOINT_COLS;
        c.gemm = max_size(c.gemm, graphc_sgemm_implicit_scratch_floats(F + u, cols, rows));
        c.wgrad = graphc_scratch_round((size_t)((F + u) * cols));
    }
    c.sums = c.gemm + max_size(c.buf + c.pack, c.wgrad);
    c.total = c.sums + (backward ? graphc_scratch_round((size_t)G) : 0);
    return c;
}

static size_t scratch_floats(int cell, int64_t batch, int64_t steps, int features, int units, int reset_after,
                             int backward)
{
    problem p;
    if (setup(&p, cell, batch, steps, features, units, 0, 0, 0, reset_after, 0) != 0 || batch <= 0)
        return 0;
    return plan_call(&p, backward).total;
}

size_t graphc_rnn_train_scratch_floats(int cell, int64_t batch, int64_t steps, int features, int units,
                                       int reset_after)
{
    return scratch_floats(cell, batch, steps, features, units, reset_after, 0);
}

size_t graphc_rnn_grad_scratch_floats(int cell, int64_t batch, int64_t steps, int features, int units,
                                      int reset_after)
{
    return scratch_floats(cell, batch, steps, features, units, reset_after, 1);
}

int graphc_rnn_train(int cell, int64_t batch, int64_t steps, int features, int units, int activation,
                     int recurrent_activation, int go_backwards, int reset_after, int return_sequences,
                     const float *x, const float *kernel, const float *recurrent, const float *bias,
                     const float *h0, const float *c0, const float *mask, const float *rdrop, float *seq, float *h,
                     float *c, float *hp, float *cs, float *zs, float *aux, const graphc_scratch *scratch)
{
    problem p;
    if (setup(&p, cell, batch, steps, features, units, activation, recurrent_activation, go_backwards,
              reset_after, return_sequences) != 0)
        return -1;
    p.x = x, p.kernel = kernel, p.recurrent = recurrent, p.bias = bias, p.h0 = h0, p.c0 = c0, p.mask = mask;
    p.rdrop = rdrop, p.seq = seq, p.h = h, p.c = c, p.hp = hp, p.cs = cs, p.zs = zs, p.aux = aux;
    p.scratch = scratch, p.plan = plan_call(&p, 0);
    if (batch > 0) run_team(&p, train_part);
    return 0;
}

int graphc_rnn_grad(int cell, int64_t batch, int64_t steps, int features, int units, int activation,
                    int recurrent_activation, int go_backwards, int reset_after, int return_sequences,
                    const float *x, const float *kernel, const float *recurrent, const float *c0, const float *mask,
                    const float *rdrop, const float *hp, const float *cs, const float *zs, const float *aux,
                    const float *dout, const float *dh, const float *dc,
                    float *dx, float *dkernel, float *drecurrent, float *dbias, float *dh0, float *dc0,
                    float *dzs, float *daux, const graphc_scratch *scratch)
{
    problem p;
    if (setup(&p, cell, batch, steps, features, units, activation, recurrent_activation, go_backwards,
              reset_after, return_sequences) != 0)
        return -1;
    /* the saved tensors are only read here: the const casts let one struct serve both directions */
    p.x = x, p.kernel = kernel, p.recurrent = recurrent, p.c0 = c0, p.mask = mask, p.rdrop = rdrop;
    p.hp = (float *)hp, p.cs = (float *)cs, p.zs = (float *)zs, p.aux = (float *)aux;
    p.dout = dout, p.dh = dh, p.dc = dc, p.dh0 = dh0, p.dc0 = dc0, p.dzs = dzs, p.daux = daux;
    p.dx = dx, p.dkernel = dkernel, p.drecurrent = drecurrent, p.dbias = dbias;
    p.scratch = scratch, p.plan = plan_call(&p, 1);
    run_team(&p, grad_part);
    return 0;
}
