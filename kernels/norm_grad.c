/* Training batch normalization and the backward passes of batch/layer normalization and of the embedding
 * lookup. Tensors are viewed as (outer, channels, inner). Per-channel sums are taken over NG_CHUNKS fixed
 * chunks of rows whose partial sums are added in chunk order: results are the same for any thread count. */
#include "graphc_norm_grad.h"
#include "graphc_norm.h"
#include "graphc_nn.h"

#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define PARALLEL_MIN 32768 /* elements below which a kernel stays on one thread */
#define NG_BLOCK 64        /* channels handled together (their sums live on the stack) */
#define NG_CHUNKS 16       /* row chunks of the channels-last sums */

/* For channels c0 .. c0 + nc - 1 (block-local index c): s1[c] = sum a and, when b != NULL,
 * s2[c] = sum (a - sa[c]) * (b - sb[c]); sa/sb are per-channel shifts (NULL: 0). Double accumulation. */
static void block_sums(const float *a, const double *sa, const float *b, const double *sb, double *s1, double *s2,
                       int64_t outer, int64_t channels, int64_t inner, int64_t c0, int64_t nc) {
    double za[NG_BLOCK], zb[NG_BLOCK];
    for (int64_t c = 0; c < nc; c++) {
        za[c] = sa ? sa[c] : 0.0;
        zb[c] = sb ? sb[c] : 0.0;
    }
    const int par = outer * nc * inner > PARALLEL_MIN;
    (void)par;  /* unused without OpenMP */
    if (inner == 1) {  /* channels last: rows of `channels` values, the block a contiguous run of each */
        double p1[NG_CHUNKS][NG_BLOCK], p2[NG_CHUNKS][NG_BLOCK];
        GRAPHC_OMP(omp parallel for if (par) schedule(static))
        for (int k = 0; k < NG_CHUNKS; k++) {
            const int64_t o0 = outer * k / NG_CHUNKS, o1 = outer * (k + 1) / NG_CHUNKS;
            double q1[NG_BLOCK], q2[NG_BLOCK];
            for (int64_t c = 0; c < nc; c++) q1[c] = q2[c] = 0.0;
            for (int64_t o = o0; o < o1; o++) {
                const float *ar = a + o * channels + c0;
                if (b) {
                    const float *br = b + o * channels + c0;
                    for (int64_t c = 0; c < nc; c++) {
                        const double d = (double)ar[c];
                        q1[c] += d;
                        q2[c] += (d - za[c]) * ((double)br[c] - zb[c]);
                    }
                } else {
                    for (int64_t c = 0; c < nc; c++) q1[c] += (double)ar[c];
                }
            }
            memcpy(p1[k], q1, (size_t)nc * sizeof(double));
            memcpy(p2[k], q2, (size_t)nc * sizeof(double));
        }
        for (int64_t c = 0; c < nc; c++) {
            double t1 = 0.0, t2 = 0.0;
            for (int k = 0; k < NG_CHUNKS; k++) {
                t1 += p1[k][c];
                t2 += p2[k][c];
            }
            s1[c] = t1;
            if (b) s2[c] = t2;
        }
    } else {  /* each channel is outer runs of `inner` contiguous values: one channel per iteration */
        GRAPHC_OMP(omp parallel for if (par) schedule(static))
        for (int64_t c = 0; c < nc; c++) {
            double t1 = 0.0, t2 = 0.0;
            for (int64_t o = 0; o < outer; o++) {
                const float *ar = a + (o * channels + c0 + c) * inner;
                const float *br = b ? b + (o * channels + c0 + c) * inner : NULL;
                for (int64_t i = 0; i < inner; i++) {
                    const double d = (double)ar[i];
                    t1 += d;
                    if (br) t2 += (d - za[c]) * ((double)br[i] - zb[c]);
                }
            }
            s1[c] = t1;
            if (b) s2[c] = t2;
        }
    }
}

/* out = p[c] * a + q[c] * (b - m[c]) + r[c] per channel of the block (b == NULL: out = p[c] * a + r[c]). */
static void block_apply(const float *a, const float *b, const float *m, const float *p, const float *q,
                        const float *r, float *out, int64_t outer, int64_t channels, int64_t inner, int64_t c0,
                        int64_t nc) {
    const int par = outer * nc * inner > PARALLEL_MIN;
    (void)par;  /* unused without OpenMP */
    if (inner == 1) {
        GRAPHC_OMP(omp parallel for if (par) schedule(static))
        for (int64_t o = 0; o < outer; o++) {
            const float *ar = a + o * channels + c0;
            float *yr = out + o * channels + c0;
            if (b) {
                const float *br = b + o * channels + c0;
                for (int64_t c = 0; c < nc; c++) yr[c] = p[c] * ar[c] + q[c] * (br[c] - m[c]) + r[c];
            } else {
                for (int64_t c = 0; c < nc; c++) yr[c] = p[c] * ar[c] + r[c];
            }
        }
    } else {
        GRAPHC_OMP(omp parallel for if (par) schedule(static))
        for (int64_t oc = 0; oc < outer * nc; oc++) {
            const int64_t o = oc / nc, c = oc % nc, at = (o * channels + c0 + c) * inner;
            const float *ar = a + at;
            float *yr = out + at;
            if (b) {
                const float *br = b + at;
                for (int64_t i = 0; i < inner; i++) yr[i] = p[c] * ar[i] + q[c] * (br[i] - m[c]) + r[c];
            } else {
                for (int64_t i = 0; i < inner; i++) yr[i] = p[c] * ar[i] + r[c];
            }
        }
    }
}

void graphc_batch_norm_train(const float *x, float *y, float *mean, float *var, const float *gamma,
                             const float *beta, double eps, int64_t outer, int64_t channels, int64_t inner) {
    const double count = (double)(outer * inner);
    for (int64_t c0 = 0; c0 < channels; c0 += NG_BLOCK) {
        const int64_t nc = channels - c0 < NG_BLOCK ? channels - c0 : NG_BLOCK;
        double s1[NG_BLOCK], s2[NG_BLOCK], m[NG_BLOCK];
        float p[NG_BLOCK], r[NG_BLOCK];
        block_sums(x, NULL, NULL, NULL, s1, NULL, outer, channels, inner, c0, nc);
        for (int64_t c = 0; c < nc; c++) m[c] = s1[c] / count;
        block_sums(x, m, x, m, s1, s2, outer, channels, inner, c0, nc);  /* centred: no cancellation */
        for (int64_t c = 0; c < nc; c++) {
            const double v = s2[c] / count;
            const double scale = (double)gamma[c0 + c] / sqrt(v + eps);
            mean[c0 + c] = (float)m[c];
            var[c0 + c] = (float)v;
            p[c] = (float)scale;
            r[c] = (float)((double)beta[c0 + c] - m[c] * scale);
        }
        block_apply(x, NULL, NULL, p, NULL, r, y, outer, channels, inner, c0, nc);
    }
}

void graphc_batch_norm_grad(const float *x, const float *dy, const float *mean, const float *var,
                            const float *gamma, double eps, int train, float *dx, float *dgamma, float *dbeta,
                            int64_t outer, int64_t channels, int64_t inner) {
    const double count = (double)(outer * inner);
    for (int64_t c0 = 0; c0 < channels; c0 += NG_BLOCK) {
        const int64_t nc = channels - c0 < NG_BLOCK ? channels - c0 : NG_BLOCK;
        double s1[NG_BLOCK], s2[NG_BLOCK], m[NG_BLOCK];
        float mf[NG_BLOCK], p[NG_BLOCK], q[NG_BLOCK], r[NG_BLOCK];
        for (int64_t c = 0; c < nc; c++) {
            m[c] = (double)mean[c0 + c];
            mf[c] = mean[c0 + c];
        }
        block_sums(dy, NULL, x, m, s1, s2, outer, channels, inner, c0, nc);  /* sum dy, sum dy * (x - mean) */
        for (int64_t c = 0; c < nc; c++) {
            const double rstd = 1.0 / sqrt((double)var[c0 + c] + eps), k = (double)gamma[c0 + c] * rstd;
            dbeta[c0 + c] = (float)s1[c];
            dgamma[c0 + c] = (float)(s2[c] * rstd);
            p[c] = (float)k;
            q[c] = train ? (float)(-k * s2[c] * rstd * rstd / count) : 0.0f;
            r[c] = train ? (float)(-k * s1[c] / count) : 0.0f;
        }
        block_apply(dy, train ? x : NULL, mf, p, q, r, dx, outer, channels, inner, c0, nc);
    }
}

void graphc_layer_norm_grad(const float *x, const float *gamma, int64_t gamma_n, const float *dy, double eps,
                            int rms, float *dx, float *xhat, int64_t outer, int64_t n, int64_t inner) {
    const int64_t lines = outer * inner;
    GRAPHC_OMP(omp parallel for if (lines * n > PARALLEL_MIN))
    for (int64_t line = 0; line < lines; line++) {
        const int64_t at = (line / inner) * n * inner + line % inner;
        const float *xl = x + at, *dyl = dy + at;
        float *dxl = dx + at, *hl = xhat + at;
        double sum = 0.0, sq = 0.0;
        for (int64_t k = 0; k < n; k++) sum += (double)xl[k * inner];
        const double mean = sum / (double)n;
        for (int64_t k = 0; k < n; k++) {
            const double d = (double)xl[k * inner] - mean;
            sq += d * d;
        }
        const double rstd = 1.0 / sqrt(sq / (double)n + eps), centre = rms ? 0.0 : mean;
        double sg = 0.0, sgh = 0.0;
        for (int64_t k = 0; k < n; k++) {
            const double g = (double)dyl[k * inner] * (double)gamma[gamma_n == 1 ? 0 : k];
            sg += g;
            sgh += g * ((double)xl[k * inner] - centre) * rstd;
        }
        const double mg = rms ? 0.0 : sg / (double)n, mgh = sgh / (double)n;
        for (int64_t k = 0; k < n; k++) {
            const double xv = (double)xl[k * inner];
            const double g = (double)dyl[k * inner] * (double)gamma[gamma_n == 1 ? 0 : k];
            dxl[k * inner] = (float)(rstd * (g - mg - (xv - mean) * rstd * mgh));
            hl[k * inner] = (float)((xv - centre) * rstd);
        }
    }
}

int graphc_scatter_add(const void *ids, int ids64, const float *dy, float *out, int64_t outer, int64_t rows,
                       int64_t inner, int64_t n_ids) {
    const int32_t *ids32 = (const int32_t *)ids;
    const int64_t *idsl = (const int64_t *)ids;
    for (int64_t j = 0; j < n_ids; j++) {
        const int64_t id = ids64 ? idsl[j] : (int64_t)ids32[j];
        if (id < 0 || id >= rows) return GRAPHC_ERR_ID_RANGE;
    }
    memset(out, 0, (size_t)(outer * rows * inner) * sizeof(float));
    /* Each thread owns a range of rows and adds, in id order, the dy rows that land in it: no races, and
     * every row sums in the same order whatever the thread count. */
    GRAPHC_OMP(omp parallel if (outer * n_ids * inner > PARALLEL_MIN))
    {
        int64_t t = 0, team = 1;
#ifdef _OPENMP
        t = omp_get_thread_num();
        team = omp_get_num_threads();
#endif
        const int64_t r0 = rows * t / team, r1 = rows * (t + 1) / team;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t j = 0; j < n_ids; j++) {
                const int64_t id = ids64 ? idsl[j] : (int64_t)ids32[j];
                if (id < r0 || id >= r1) continue;
                float *dst = out + (o * rows + id) * inner;
                const float *src = dy + (o * n_ids + j) * inner;
                for (int64_t i = 0; i < inner; i++) dst[i] += src[i];
            }
    }
    return 0;
}
