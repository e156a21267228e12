// test_kernels.c — the CPU kernels against naive references and finite differences.
//
// Gradient checks: for a backward kernel with forward y = f(x), take a random dout and the
// scalar L(x) = Σ dout ⊙ f(x) (summed in double); the backward with that dout must give
// ∂L/∂x, which is compared with central differences of L. Each check also runs the backward
// into a non-zero buffer, since every backward ADDS into its gradients.
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/cpu/blas_check.h"
#include "../kernels/cpu/cpu_kernels.h"
#include "../kernels/kernels.h"
#include "test.h"

static const Backend *be;

// ---- helpers ------------------------------------------------------------------------------

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static double rand_uniform(void) {  // [0, 1), xorshift64*
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
}

// n values in [−1, 1], none closer to 0 than 0.05 (fresh, non-zero inputs)
static float *rand_floats(long n) {
    float *x = malloc((size_t)n * sizeof(float));
    for (long i = 0; i < n; i++) {
        double u = rand_uniform() * 2.0 - 1.0;
        x[i] = (float)(u < 0 ? u - 0.05 : u + 0.05) / 1.05f;
    }
    return x;
}

static float *copy_floats(const float *x, long n) {
    float *y = malloc((size_t)n * sizeof(float));
    memcpy(y, x, (size_t)n * sizeof(float));
    return y;
}

static float *filled(long n, float value) {
    float *x = malloc((size_t)n * sizeof(float));
    for (long i = 0; i < n; i++) x[i] = value;
    return x;
}

static double dot_double(const float *a, const float *b, long n) {
    double s = 0.0;
    for (long i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

// L evaluated at the current inputs (which the finite differences perturb in place).
typedef double (*Objective)(void *ctx);

#define FD_EPS 5e-3

// Central differences of L w.r.t. x[0..n), into fd(n). The step is measured after rounding
// x ± eps to float, so the quotient uses the step actually taken.
static void fd_gradient(float *x, long n, Objective objective, void *ctx, double *fd) {
    for (long i = 0; i < n; i++) {
        float saved = x[i];
        float up = saved + (float)FD_EPS, down = saved - (float)FD_EPS;
        x[i] = up;
        double lp = objective(ctx);
        x[i] = down;
        double lm = objective(ctx);
        x[i] = saved;
        fd[i] = (lp - lm) / ((double)up - (double)down);
    }
}

// Worst |analytic − fd| / (4e-3·|fd| + 4e-4·max|fd| + 1e-6): ≤ 1 passes. Float forwards make
// the finite differences noisy at about 1e-5 of the gradient scale (the right gradients here
// reach ratios of 0.15 at most); a wrong one misses by far more.
static double grad_error(const float *analytic, const double *fd, long n) {
    double scale = 0.0, worst = 0.0;
    for (long i = 0; i < n; i++) scale = fmax(scale, fabs(fd[i]));
    for (long i = 0; i < n; i++) {
        double err = fabs(analytic[i] - fd[i]) / (4e-3 * fabs(fd[i]) + 4e-4 * scale + 1e-6);
        worst = fmax(worst, err);
    }
    return worst;
}

// Checks analytic = ∂L/∂x, where `analytic` came from a backward run into a buffer that held
// `base` (a constant), i.e. analytic − base is the gradient.
static void check_grad(const char *what, float *x, long n, Objective objective, void *ctx,
                       const float *analytic, float base) {
    double *fd = malloc((size_t)n * sizeof(double));
    fd_gradient(x, n, objective, ctx, fd);
    float *grad = malloc((size_t)n * sizeof(float));
    for (long i = 0; i < n; i++) grad[i] = analytic[i] - base;
    double err = grad_error(grad, fd, n);
    CHECK(err <= 1.0, "%s: gradient differs from finite differences (worst ratio %.3g)", what, err);
    free(grad);
    free(fd);
}

// ---- gemm ---------------------------------------------------------------------------------

static void test_gemm_all_transposes(void) {
    int m = 7, n = 5, k = 9;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            int lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 2, ldc = n + 4;
            float *a = rand_floats((long)(ta ? k : m) * lda);
            float *b = rand_floats((long)(tb ? n : k) * ldb);
            float *c = rand_floats((long)m * ldc);
            float *c0 = copy_floats(c, (long)m * ldc);
            float alpha = 0.75f, beta = -0.5f;
            be->gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < n; j++) {
                    double s = 0.0;
                    for (int p = 0; p < k; p++) {
                        double av = ta ? a[p * lda + i] : a[i * lda + p];
                        double bv = tb ? b[j * ldb + p] : b[p * ldb + j];
                        s += av * bv;
                    }
                    double want = alpha * s + beta * c0[i * ldc + j];
                    CHECK_NEAR(c[i * ldc + j], want, 1e-5, "gemm element");
                }
                for (int j = n; j < ldc; j++)  // padding between rows is left alone
                    CHECK(c[i * ldc + j] == c0[i * ldc + j], "gemm wrote past n (ta=%d tb=%d)", ta, tb);
            }
            free(a), free(b), free(c), free(c0);
        }
}

// A batch gives exactly what its calls give one by one, whatever runs them side by side: odd
// counts (a remainder after whole rounds), one-row products (the gemv path), every transpose.
static void check_gemm_batch(const int (*shapes)[5], int count) {
    GemmCall calls[8];
    float *want[8];
    for (int i = 0; i < count; i++) {
        int ta = shapes[i][0], tb = shapes[i][1], m = shapes[i][2], n = shapes[i][3], k = shapes[i][4];
        int lda = ta ? m : k, ldb = tb ? k : n;
        float *a = rand_floats((long)m * k), *b = rand_floats((long)k * n), *c = rand_floats((long)m * n);
        calls[i] = (GemmCall){ta, tb, m, n, k, 0.5f, a, lda, b, ldb, i % 2 ? 1.0f : 0.0f, c, n};
        want[i] = copy_floats(c, (long)m * n);
        be->gemm(ta, tb, m, n, k, 0.5f, a, lda, b, ldb, calls[i].beta, want[i], n);
    }
    for (int used = count; used >= 1; used -= 2) {
        float *saved[8];
        for (int i = 0; i < used; i++) saved[i] = copy_floats(calls[i].c, (long)calls[i].m * calls[i].n);
        be->gemm_batch(calls, used);
        for (int i = 0; i < used; i++) {
            CHECK(memcmp(calls[i].c, want[i], sizeof(float) * calls[i].m * calls[i].n) == 0,
                  "gemm_batch of %d: call %d differs from gemm", used, i);
            memcpy(calls[i].c, saved[i], sizeof(float) * calls[i].m * calls[i].n);
            free(saved[i]);
        }
    }
    for (int i = 0; i < count; i++) free((void *)calls[i].a), free((void *)calls[i].b), free(calls[i].c), free(want[i]);
}

static void test_gemm_batch(void) {
    static const int mixed[5][5] = {{0, 0, 70, 33, 40}, {1, 0, 33, 64, 90}, {0, 1, 1, 300, 77},
                                    {1, 1, 45, 12, 200}, {0, 1, 128, 96, 64}};   // ta, tb, m, n, k
    static const int row_dots[3][5] = {{0, 1, 1, 300, 200}, {0, 1, 1, 57, 200}, {0, 1, 1, 129, 200}};   // decoding's q, k, v
    check_gemm_batch(mixed, 5);
    check_gemm_batch(row_dots, 3);
}

static void test_gemm_k_zero(void) {
    float c[6] = {1, 2, 3, 4, 5, 6}, a[1] = {0}, b[1] = {0};
    be->gemm(0, 0, 2, 3, 0, 1.0f, a, 1, b, 3, 2.0f, c, 3);
    CHECK(c[0] == 2.0f && c[5] == 12.0f, "gemm with k = 0 must give C = beta·C");
}

// ---- embedding ----------------------------------------------------------------------------

static void test_embedding(void) {
    int vocab = 7, dim = 130, n = 9;          // dim spans several column blocks, with a tail
    int32_t tokens[9] = {3, 0, 3, 6, 1, 3, 0, 2, 6};           // repeats
    float *table = rand_floats((long)vocab * dim);
    float *out = malloc((size_t)n * dim * sizeof(float));
    be->embedding_forward(out, tokens, table, n, dim);
    for (int i = 0; i < n; i++)
        CHECK(memcmp(out + i * dim, table + tokens[i] * dim, dim * sizeof(float)) == 0,
              "embedding_forward row %d", i);

    float *dout = rand_floats((long)n * dim);
    float *dtable = filled((long)vocab * dim, 0.5f);           // accumulates
    be->embedding_backward(dtable, dout, tokens, n, dim);
    for (int v = 0; v < vocab; v++)
        for (int c = 0; c < dim; c++) {
            double want = 0.5;
            for (int i = 0; i < n; i++)
                if (tokens[i] == v) want += dout[i * dim + c];
            CHECK_NEAR(dtable[v * dim + c], want, 1e-6, "embedding_backward");
        }
    free(table), free(out), free(dout), free(dtable);
}

// ---- rmsnorm ------------------------------------------------------------------------------

typedef struct {
    float *x, *gain, *dout, *out, *rstd;
    int n, dim;
} RmsnormCase;

static double rmsnorm_objective(void *ctx) {
    RmsnormCase *c = ctx;
    be->rmsnorm_forward(c->out, c->rstd, c->x, c->gain, c->n, c->dim, 1e-5f);
    return dot_double(c->dout, c->out, (long)c->n * c->dim);
}

static void test_rmsnorm_forward(void) {
    int n = 3, dim = 20;
    float *x = rand_floats(n * dim), *gain = rand_floats(dim);
    float *out = malloc(n * dim * sizeof(float)), rstd[3];
    be->rmsnorm_forward(out, rstd, x, gain, n, dim, 1e-5f);
    for (int r = 0; r < n; r++) {
        double ss = 0.0;
        for (int i = 0; i < dim; i++) ss += (double)x[r * dim + i] * x[r * dim + i];
        double s = 1.0 / sqrt(ss / dim + 1e-5);
        CHECK_NEAR(rstd[r], s, 1e-5, "rmsnorm rstd");
        for (int i = 0; i < dim; i++) CHECK_NEAR(out[r * dim + i], x[r * dim + i] * s * gain[i], 1e-5, "rmsnorm out");
    }
    free(x), free(gain), free(out);
}

static void test_rmsnorm_grad(void) {
    RmsnormCase c = {.n = 5, .dim = 16};
    long nd = (long)c.n * c.dim;
    c.x = rand_floats(nd), c.gain = rand_floats(c.dim), c.dout = rand_floats(nd);
    c.out = malloc(nd * sizeof(float)), c.rstd = malloc(c.n * sizeof(float));
    rmsnorm_objective(&c);
    float *dx = filled(nd, 0.25f), *dgain = filled(c.dim, -1.0f);
    be->rmsnorm_backward(dx, dgain, c.dout, c.x, c.gain, c.rstd, c.n, c.dim);
    check_grad("rmsnorm dx", c.x, nd, rmsnorm_objective, &c, dx, 0.25f);
    check_grad("rmsnorm dgain", c.gain, c.dim, rmsnorm_objective, &c, dgain, -1.0f);
    free(c.x), free(c.gain), free(c.dout), free(c.out), free(c.rstd), free(dx), free(dgain);
}

// RMSNorm is scale-invariant: rows of |x| ~ 1e20 (x² overflows float) and ~ 1e-15 give the
// output of x itself, dx scaled by 1/c and the same dgain — not a zero row (a model whose
// activations blew up must not look like one that outputs uniform probabilities).
static void test_rmsnorm_extreme_scales(void) {
    int n = 2, dim = 24;
    long nd = (long)n * dim;
    float *x = rand_floats(nd), *gain = rand_floats(dim), *dout = rand_floats(nd);
    float *out = malloc(nd * sizeof(float)), *out_c = malloc(nd * sizeof(float)), *xc = malloc(nd * sizeof(float));
    float rstd[2], rstd_c[2];
    float *dx = filled(nd, 0.0f), *dgain = filled(dim, 0.0f);
    be->rmsnorm_forward(out, rstd, x, gain, n, dim, 0.0f);
    be->rmsnorm_backward(dx, dgain, dout, x, gain, rstd, n, dim);
    const float scales[] = {1e20f, 1e-15f};
    for (int k = 0; k < 2; k++) {
        float c = scales[k];
        for (long i = 0; i < nd; i++) xc[i] = x[i] * c;
        float *dx_c = filled(nd, 0.0f), *dgain_c = filled(dim, 0.0f);
        be->rmsnorm_forward(out_c, rstd_c, xc, gain, n, dim, 0.0f);
        be->rmsnorm_backward(dx_c, dgain_c, dout, xc, gain, rstd_c, n, dim);
        for (long i = 0; i < nd; i++) {
            CHECK(fabsf(out_c[i] - out[i]) <= 1e-5f * (1 + fabsf(out[i])), "rmsnorm at scale %g: out[%ld] %g vs %g", c, i, out_c[i], out[i]);
            CHECK(fabsf(dx_c[i] * c - dx[i]) <= 1e-4f * (1 + fabsf(dx[i])), "rmsnorm at scale %g: dx[%ld]·c %g vs %g", c, i, dx_c[i] * c, dx[i]);
        }
        for (int i = 0; i < dim; i++)
            CHECK(fabsf(dgain_c[i] - dgain[i]) <= 1e-4f * (1 + fabsf(dgain[i])), "rmsnorm at scale %g: dgain[%d] %g vs %g", c, i, dgain_c[i], dgain[i]);
        free(dx_c), free(dgain_c);
    }
    free(x), free(gain), free(dout), free(out), free(out_c), free(xc), free(dx), free(dgain);
}

// The checker must reject plausible wrong gradients: rmsnorm's dx without the term through
// rstd, and the right dx with one element off by 1% of the gradient scale.
static void test_gradcheck_catches_wrong_gradient(void) {
    RmsnormCase c = {.n = 4, .dim = 12};
    long nd = (long)c.n * c.dim;
    c.x = rand_floats(nd), c.gain = rand_floats(c.dim), c.dout = rand_floats(nd);
    c.out = malloc(nd * sizeof(float)), c.rstd = malloc(c.n * sizeof(float));
    rmsnorm_objective(&c);
    double *fd = malloc(nd * sizeof(double));
    fd_gradient(c.x, nd, rmsnorm_objective, &c, fd);

    float *naive = malloc(nd * sizeof(float));                 // dx = rstd·g·dout only
    for (int r = 0; r < c.n; r++)
        for (int i = 0; i < c.dim; i++) naive[r * c.dim + i] = c.rstd[r] * c.gain[i] * c.dout[r * c.dim + i];
    CHECK(grad_error(naive, fd, nd) > 1.0, "gradient check accepted rmsnorm dx without the rstd term");

    float *dx = filled(nd, 0.0f), *dgain = filled(c.dim, 0.0f);
    be->rmsnorm_backward(dx, dgain, c.dout, c.x, c.gain, c.rstd, c.n, c.dim);
    CHECK(grad_error(dx, fd, nd) <= 1.0, "gradient check rejected the right rmsnorm dx");
    double scale = 0.0;
    for (long i = 0; i < nd; i++) scale = fmax(scale, fabs(fd[i]));
    dx[7] += (float)(0.01 * scale);
    CHECK(grad_error(dx, fd, nd) > 1.0, "gradient check accepted a 1%% error in one element");
    free(c.x), free(c.gain), free(c.dout), free(c.out), free(c.rstd), free(fd), free(naive), free(dx), free(dgain);
}

// ---- rope ---------------------------------------------------------------------------------

typedef struct {
    float *in, *out, *dout;
    int B, T, H, hd, pos0;
} RopeCase;

#define ROPE_THETA 10000.0f

static double rope_objective(void *ctx) {
    RopeCase *c = ctx;
    be->rope_forward(c->out, c->in, c->B, c->T, c->H, c->hd, c->pos0, ROPE_THETA);
    return dot_double(c->dout, c->out, (long)c->B * c->T * c->H * c->hd);
}

static void test_rope_forward(void) {
    int B = 2, T = 3, H = 2, hd = 8, pos0 = 5;
    long n = (long)B * T * H * hd;
    float *in = rand_floats(n), *out = malloc(n * sizeof(float));
    be->rope_forward(out, in, B, T, H, hd, pos0, ROPE_THETA);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < H; h++)
                for (int i = 0; i < hd / 2; i++) {
                    long base = (((long)b * T + t) * H + h) * hd + 2 * i;
                    double angle = (pos0 + t) * pow(ROPE_THETA, -2.0 * i / hd);
                    double x0 = in[base], x1 = in[base + 1];
                    CHECK_NEAR(out[base], x0 * cos(angle) - x1 * sin(angle), 1e-5, "rope x0");
                    CHECK_NEAR(out[base + 1], x0 * sin(angle) + x1 * cos(angle), 1e-5, "rope x1");
                }
    float *inplace = copy_floats(in, n);                      // out == in is allowed
    be->rope_forward(inplace, inplace, B, T, H, hd, pos0, ROPE_THETA);
    CHECK(memcmp(inplace, out, n * sizeof(float)) == 0, "rope in place differs from out of place");
    free(in), free(out), free(inplace);
}

static void test_rope_grad(void) {
    RopeCase c = {.B = 2, .T = 3, .H = 2, .hd = 8, .pos0 = 11};
    long n = (long)c.B * c.T * c.H * c.hd;
    c.in = rand_floats(n), c.dout = rand_floats(n), c.out = malloc(n * sizeof(float));
    float *din = filled(n, NAN);                                // written, not added
    be->rope_backward(din, c.dout, c.B, c.T, c.H, c.hd, c.pos0, ROPE_THETA);
    check_grad("rope din", c.in, n, rope_objective, &c, din, 0.0f);
    float *inplace = copy_floats(c.dout, n);                     // din == dout is allowed
    be->rope_backward(inplace, inplace, c.B, c.T, c.H, c.hd, c.pos0, ROPE_THETA);
    CHECK(memcmp(inplace, din, n * sizeof(float)) == 0, "rope backward in place differs from out of place");
    free(c.in), free(c.dout), free(c.out), free(din), free(inplace);
}

// ---- attention ----------------------------------------------------------------------------

// out and att by the definition: explicit causal mask, softmax in double.
static void attention_reference(double *out, double *att, const float *q, const float *k, const float *v,
                                int B, int Tq, int Tk, int H, int KVH, int hd) {
    double scale = 1.0 / sqrt(hd);
    double *s = malloc(Tk * sizeof(double));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            int kvh = h / (H / KVH);
            for (int t = 0; t < Tq; t++) {
                const float *qt = q + (((long)b * Tq + t) * H + h) * hd;
                double max = -INFINITY, sum = 0.0;
                for (int j = 0; j < Tk; j++) {
                    const float *kj = k + (((long)b * Tk + j) * KVH + kvh) * hd;
                    double dot = 0.0;
                    for (int i = 0; i < hd; i++) dot += (double)qt[i] * kj[i];
                    s[j] = j <= Tk - Tq + t ? dot * scale : -INFINITY;   // causal mask
                    max = fmax(max, s[j]);
                }
                for (int j = 0; j < Tk; j++) sum += s[j] = exp(s[j] - max);
                double *ot = out + (((long)b * Tq + t) * H + h) * hd;
                for (int i = 0; i < hd; i++) ot[i] = 0.0;
                for (int j = 0; j < Tk; j++) {
                    double p = s[j] / sum;
                    att[(((long)b * H + h) * Tq + t) * Tk + j] = p;
                    const float *vj = v + (((long)b * Tk + j) * KVH + kvh) * hd;
                    for (int i = 0; i < hd; i++) ot[i] += p * vj[i];
                }
            }
        }
    free(s);
}

static void check_attention_forward(int B, int Tq, int Tk, int H, int KVH, int hd) {
    long nq = (long)B * Tq * H * hd, nk = (long)B * Tk * KVH * hd, na = (long)B * H * Tq * Tk;
    float *q = rand_floats(nq), *k = rand_floats(nk), *v = rand_floats(nk);
    for (long i = 0; i < nq; i++) q[i] *= 3.0f;                 // peaky softmax rows too
    float *out = malloc(nq * sizeof(float)), *att = filled(na, NAN);   // every entry must be written
    double *out_ref = malloc(nq * sizeof(double)), *att_ref = malloc(na * sizeof(double));
    be->attention_forward(out, att, q, k, v, B, Tq, Tk, H, KVH, hd);
    attention_reference(out_ref, att_ref, q, k, v, B, Tq, Tk, H, KVH, hd);
    double worst_out = 0.0, worst_att = 0.0;
    for (long i = 0; i < nq; i++) worst_out = fmax(worst_out, fabs(out[i] - out_ref[i]));
    for (long i = 0; i < na; i++) worst_att = fmax(worst_att, isnan(att[i]) ? INFINITY : fabs(att[i] - att_ref[i]));
    CHECK(worst_out < 2e-5, "attention out (B=%d Tq=%d Tk=%d H=%d KVH=%d hd=%d): max error %.3g",
          B, Tq, Tk, H, KVH, hd, worst_out);
    CHECK(worst_att < 2e-6, "attention att (B=%d Tq=%d Tk=%d H=%d KVH=%d hd=%d): max error %.3g",
          B, Tq, Tk, H, KVH, hd, worst_att);
    free(q), free(k), free(v), free(out), free(att), free(out_ref), free(att_ref);
}

static void test_attention_forward(void) {
    check_attention_forward(2, 5, 5, 4, 2, 8);       // training shape, GQA
    check_attention_forward(1, 3, 7, 4, 4, 16);      // Tq < Tk (chunked prefill)
    check_attention_forward(2, 1, 37, 4, 2, 8);      // decoding one token against a cache
    check_attention_forward(1, 150, 150, 2, 1, 8);   // several query blocks with a tail
    check_attention_forward(1, 70, 100, 3, 1, 4);    // blocks and Tq < Tk, MQA
}

typedef struct {
    float *q, *k, *v, *dout, *out, *att;
    int B, Tq, Tk, H, KVH, hd;
} AttentionCase;

static double attention_objective(void *ctx) {
    AttentionCase *c = ctx;
    be->attention_forward(c->out, c->att, c->q, c->k, c->v, c->B, c->Tq, c->Tk, c->H, c->KVH, c->hd);
    return dot_double(c->dout, c->out, (long)c->B * c->Tq * c->H * c->hd);
}

static void check_attention_grad(int B, int Tq, int Tk, int H, int KVH, int hd) {
    AttentionCase c = {.B = B, .Tq = Tq, .Tk = Tk, .H = H, .KVH = KVH, .hd = hd};
    long nq = (long)B * Tq * H * hd, nk = (long)B * Tk * KVH * hd, na = (long)B * H * Tq * Tk;
    c.q = rand_floats(nq), c.k = rand_floats(nk), c.v = rand_floats(nk), c.dout = rand_floats(nq);
    for (long i = 0; i < nq; i++) c.q[i] *= 2.0f;
    c.out = malloc(nq * sizeof(float)), c.att = malloc(na * sizeof(float));
    attention_objective(&c);
    float *dq = filled(nq, 0.5f), *dk = filled(nk, -0.5f), *dv = filled(nk, 2.0f);
    float *scratch = filled(na, NAN);                           // contents on entry must not matter
    be->attention_backward(dq, dk, dv, scratch, c.dout, c.out, c.att, c.q, c.k, c.v, B, Tq, Tk, H, KVH, hd);
    char what[96];
    snprintf(what, sizeof what, "attention dq (B=%d Tq=%d Tk=%d H=%d KVH=%d)", B, Tq, Tk, H, KVH);
    check_grad(what, c.q, nq, attention_objective, &c, dq, 0.5f);
    snprintf(what, sizeof what, "attention dk (B=%d Tq=%d Tk=%d H=%d KVH=%d)", B, Tq, Tk, H, KVH);
    check_grad(what, c.k, nk, attention_objective, &c, dk, -0.5f);
    snprintf(what, sizeof what, "attention dv (B=%d Tq=%d Tk=%d H=%d KVH=%d)", B, Tq, Tk, H, KVH);
    check_grad(what, c.v, nk, attention_objective, &c, dv, 2.0f);
    free(c.q), free(c.k), free(c.v), free(c.dout), free(c.out), free(c.att), free(dq), free(dk), free(dv), free(scratch);
}

static void test_attention_grad(void) {
    check_attention_grad(2, 4, 4, 4, 2, 4);      // GQA, square
    check_attention_grad(2, 3, 6, 4, 2, 4);      // GQA, Tq < Tk
    check_attention_grad(1, 1, 9, 2, 1, 4);      // a single query
    check_attention_grad(1, 70, 70, 2, 1, 4);    // two query blocks
}

// ---- swiglu -------------------------------------------------------------------------------

typedef struct {
    float *gate, *up, *dout, *out;
    long n;
} SwigluCase;

static double swiglu_objective(void *ctx) {
    SwigluCase *c = ctx;
    be->swiglu_forward(c->out, c->gate, c->up, c->n);
    return dot_double(c->dout, c->out, c->n);
}

static void test_swiglu(void) {
    SwigluCase c = {.n = 61};
    c.gate = rand_floats(c.n), c.up = rand_floats(c.n), c.dout = rand_floats(c.n);
    for (long i = 0; i < c.n; i++) c.gate[i] *= 4.0f;           // reach both tails of σ
    c.out = malloc(c.n * sizeof(float));
    swiglu_objective(&c);
    for (long i = 0; i < c.n; i++) {
        double g = c.gate[i];
        CHECK_NEAR(c.out[i], g / (1.0 + exp(-g)) * c.up[i], 1e-5, "swiglu out");
    }
    float *dgate = filled(c.n, NAN), *dup = filled(c.n, NAN);   // written, not added
    be->swiglu_backward(dgate, dup, c.dout, c.gate, c.up, c.n);
    check_grad("swiglu dgate", c.gate, c.n, swiglu_objective, &c, dgate, 0.0f);
    check_grad("swiglu dup", c.up, c.n, swiglu_objective, &c, dup, 0.0f);
    free(c.gate), free(c.up), free(c.dout), free(c.out), free(dgate), free(dup);
}

// ---- decoding one token ------------------------------------------------------------------

// decode_attention at pos: the cache rows 0..pos−1 as they were, row pos the rotated k and v,
// out = attention of the rotated q over rows 0..pos — the same bits as rope_forward at pos0 =
// pos and attention_forward over those rows.
enum { DEC_H = 4, DEC_KVH = 2, DEC_HD = 8, DEC_CAP = 6, DEC_KVD = DEC_KVH * DEC_HD };

static void check_decode_at(int32_t pos, float theta) {
    enum { H = DEC_H, KVH = DEC_KVH, HD = DEC_HD, CAP = DEC_CAP, KVD = DEC_KVD };
    float *q = rand_floats(H * HD), *k = rand_floats(KVD), *v = rand_floats(KVD);
    float *kc = rand_floats(CAP * KVD), *vc = rand_floats(CAP * KVD), *out = filled(H * HD, NAN);
    float *qr = malloc(sizeof(float) * H * HD), *kr = copy_floats(kc, CAP * KVD), *ref = malloc(sizeof(float) * H * HD);
    float *scratch = malloc(sizeof(float) * be->decode_attention_floats(H, CAP, HD));
    float *att = malloc(sizeof(float) * be->attention_saved_floats(1, H, 1, CAP, HD));
    be->rope_forward(qr, q, 1, 1, H, HD, pos, theta);
    be->rope_forward(kr + pos * KVD, k, 1, 1, KVH, HD, pos, theta);
    float *vr = copy_floats(vc, CAP * KVD);
    memcpy(vr + pos * KVD, v, sizeof(float) * KVD);
    be->attention_forward(ref, att, qr, kr, vr, 1, 1, pos + 1, H, KVH, HD);
    be->decode_attention(out, scratch, q, k, v, kc, vc, &pos, CAP, H, KVH, HD, theta);
    CHECK(memcmp(out, ref, sizeof(float) * H * HD) == 0, "decode_attention at pos %d, theta %g differs from rope + "
          "attention_forward", pos, theta);
    CHECK(memcmp(kc, kr, sizeof(float) * CAP * KVD) == 0, "decode_attention's k cache at pos %d, theta %g differs from "
          "rope_forward's row", pos, theta);
    CHECK(memcmp(vc, vr, sizeof(float) * CAP * KVD) == 0, "decode_attention's v cache differs");
    free(q), free(k), free(v), free(kc), free(vc), free(out), free(qr), free(kr), free(ref);
    free(scratch), free(att), free(vr);
}

// Positions in a generator's order, then back (a new prompt) and with another theta: the CPU
// keeps a position's cos/sin row for the next call, which must never serve another position.
// At pos = cap nothing is written.
static void test_decode_attention(void) {
    const int32_t order[] = {3, 4, 5, 1, 1};
    for (int i = 0; i < 5; i++) check_decode_at(order[i], i == 4 ? 500.0f : 10000.0f);
    enum { H = DEC_H, KVH = DEC_KVH, HD = DEC_HD, CAP = DEC_CAP, KVD = DEC_KVD };
    float *q = rand_floats(H * HD), *k = rand_floats(KVD), *v = rand_floats(KVD);
    float *kc = rand_floats(CAP * KVD), *vc = rand_floats(CAP * KVD), *out = filled(H * HD, NAN);
    float *scratch = malloc(sizeof(float) * be->decode_attention_floats(H, CAP, HD));
    int32_t pos = CAP;   // outside the cache: nothing written
    be->decode_attention(out, scratch, q, k, v, kc, vc, &pos, CAP, H, KVH, HD, 10000.0f);
    int written = 0;
    for (int i = 0; i < H * HD; i++) written += !isnan(out[i]);
    CHECK(written == 0, "decode_attention at pos = cap wrote %d values of out", written);
    free(q), free(k), free(v), free(kc), free(vc), free(out), free(scratch);
}

// ---- a decoded token's products with their step ---------------------------------------------

// row_products of `count` products (beta 0 over NaN, then 1.5, alternately) against a double
// reference of the step and the products; and to the bit against the step's own kernel followed
// by gemm, which is what it stands for (a GPU folds the step into the products).
static void row_products_case(RowStep step, int k, int count) {
    float *x = rand_floats(k), *aux = rand_floats(k), *xhat = malloc(sizeof(float) * k), rstd;
    float *xhat2 = malloc(sizeof(float) * k), rstd2;
    RowInput in = {step, x, step == ROW_RMSNORM ? aux : NULL, step == ROW_SWIGLU ? aux : NULL, 1e-5f, k, xhat, &rstd};
    RowProduct calls[12];
    float *w[12], *y[12], *y_apart[12], *y0[12];
    double *ref = malloc(sizeof(double) * k), ss = 0;
    for (int i = 0; i < k; i++) ss += (double)x[i] * x[i];
    for (int i = 0; i < k; i++)
        ref[i] = step == ROW_RMSNORM ? x[i] / sqrt(ss / k + 1e-5) * aux[i] : x[i] / (1.0 + exp(-(double)x[i])) * aux[i];
    for (int c = 0; c < count; c++) {
        int n = 5 + 7 * c;
        float beta = c % 2 ? 1.5f : 0.0f;
        w[c] = rand_floats((long)n * k), y0[c] = rand_floats(n);
        y[c] = beta == 0.0f ? filled(n, NAN) : copy_floats(y0[c], n), y_apart[c] = copy_floats(y[c], n);
        calls[c] = (RowProduct){y[c], w[c], n, beta};
    }
    be->row_products(&in, calls, count);
    if (step == ROW_RMSNORM) be->rmsnorm_forward(xhat2, &rstd2, x, aux, 1, k, 1e-5f);
    else be->swiglu_forward(xhat2, x, aux, k);
    for (int c = 0; c < count; c++) {
        const RowProduct *p = &calls[c];
        be->gemm(0, 1, 1, p->n, k, 1.0f, xhat2, k, p->w, k, p->beta, y_apart[c], p->n);
        CHECK(memcmp(y[c], y_apart[c], sizeof(float) * p->n) == 0, "row_products %s k=%d: product %d of %d differs "
              "from the step then gemm", step == ROW_RMSNORM ? "rmsnorm" : "swiglu", k, c + 1, count);
        for (int r = 0; r < p->n; r++) {
            double want = p->beta ? p->beta * y0[c][r] : 0.0;
            for (int i = 0; i < k; i++) want += (double)p->w[(long)r * k + i] * ref[i];
            CHECK_NEAR(y[c][r], want, 1e-5, "row_products against the double reference");
        }
        free(w[c]), free(y[c]), free(y_apart[c]), free(y0[c]);
    }
    free(x), free(aux), free(xhat), free(xhat2), free(ref);
}

static void test_row_products(void) {
    row_products_case(ROW_RMSNORM, 64, 3);    // q, k, v after the norm
    row_products_case(ROW_SWIGLU, 150, 1);    // the down projection after SwiGLU
    row_products_case(ROW_RMSNORM, 33, 11);   // more products than one batch of row dots
}

// ---- softmax cross-entropy ----------------------------------------------------------------

typedef struct {
    float *logits, *losses;
    int32_t *targets;
    int n, V;
    float dscale;
} XentCase;

static double xent_objective(void *ctx) {  // dscale·Σ losses, whose gradient dlogits is
    XentCase *c = ctx;
    be->softmax_xent_forward(c->losses, NULL, c->logits, c->targets, c->n, c->V, 0.0f);
    double s = 0.0;
    for (int r = 0; r < c->n; r++) s += c->losses[r];
    return c->dscale * s;
}

// cpu_expf, the softmax's and sigmoid's exp: within 2e-7 relative of libm's on [−87, 88],
// 0 and ∞ past its range, NaN for NaN (which went through an undefined float → int conversion).
static void test_expf(void) {
    double worst = 0;
    for (int i = 0; i <= 200000; i++) {
        float x = -87.0f + 175.0f * (float)i / 200000.0f;
        double want = exp((double)x), got = cpu_expf(x);
        if (fabs(got - want) / want > worst) worst = fabs(got - want) / want;
    }
    CHECK(worst < 2e-7, "cpu_expf within 2e-7 of exp on [-87, 88] (worst %.3g)", worst);
    CHECK(cpu_expf(-100.0f) == 0.0f && cpu_expf(-INFINITY) == 0.0f, "cpu_expf underflows to 0");
    CHECK(isinf(cpu_expf(100.0f)) && isinf(cpu_expf(INFINITY)), "cpu_expf overflows to inf");
    CHECK(isnan(cpu_expf(NAN)) && isnan(cpu_expf(-NAN)), "cpu_expf(NaN) is NaN");
}

static void test_softmax_xent(void) {
    int32_t targets[4] = {3, 0, 10, 3};
    XentCase c = {.n = 4, .V = 11, .dscale = 0.25f, .targets = targets};
    long nv = (long)c.n * c.V;
    c.logits = rand_floats(nv), c.losses = malloc(c.n * sizeof(float));
    for (long i = 0; i < nv; i++) c.logits[i] *= 5.0f;
    c.logits[5] = 80.0f;                                        // would overflow expf unshifted
    xent_objective(&c);
    for (int r = 0; r < c.n; r++) {
        const float *x = c.logits + r * c.V;
        double max = -INFINITY, sum = 0.0;
        for (int j = 0; j < c.V; j++) max = fmax(max, x[j]);
        for (int j = 0; j < c.V; j++) sum += exp(x[j] - max);
        CHECK_NEAR(c.losses[r], log(sum) + max - x[targets[r]], 1e-5, "xent loss");
    }
    float *dlogits = filled(nv, 7.0f), *losses2 = malloc(c.n * sizeof(float));
    be->softmax_xent_forward(losses2, dlogits, c.logits, targets, c.n, c.V, c.dscale);
    CHECK(memcmp(losses2, c.losses, c.n * sizeof(float)) == 0, "xent losses change when dlogits is asked for");
    check_grad("softmax_xent dlogits", c.logits, nv, xent_objective, &c, dlogits, 0.0f);  // written, not added

    xent_objective(&c);                                         // losses at the unperturbed logits again
    float *inplace = copy_floats(c.logits, nv);                 // dlogits == logits
    be->softmax_xent_forward(losses2, inplace, inplace, targets, c.n, c.V, c.dscale);
    CHECK(memcmp(losses2, c.losses, c.n * sizeof(float)) == 0, "xent losses differ in place");
    CHECK(memcmp(inplace, dlogits, nv * sizeof(float)) == 0, "xent dlogits differ in place");
    free(c.logits), free(c.losses), free(dlogits), free(losses2), free(inplace);
}

// ---- elementwise and reductions -----------------------------------------------------------

static void test_add_scale(void) {
    long n = 100003;                                            // parallel, odd tail
    float *x = rand_floats(n), *y = rand_floats(n), *y0 = copy_floats(y, n);
    be->add(y, x, n);
    be->scale(y, -1.5f, n);
    int bad = 0;
    for (long i = 0; i < n; i++) bad += y[i] != (y0[i] + x[i]) * -1.5f;
    CHECK(bad == 0, "add/scale: %d of %ld values wrong", bad, n);
    free(x), free(y), free(y0);
}

// y = αx + βy as α·x + β·y in float, element by element; β = 0 ignores y (NaN included).
static void test_axpby(void) {
    long n = 100003;                                            // parallel, odd tail
    float *x = rand_floats(n), *y = rand_floats(n), *y0 = copy_floats(y, n);
    be->axpby(y, 0.7f, x, -1.3f, n);
    int bad = 0;
    for (long i = 0; i < n; i++) {
        float a = 0.7f * x[i], b = -1.3f * y0[i];
        bad += y[i] != a + b;
    }
    CHECK(bad == 0, "axpby: %d of %ld values wrong", bad, n);
    for (long i = 0; i < n; i++) y[i] = NAN;
    be->axpby(y, 2.0f, x, 0.0f, n);
    bad = 0;
    for (long i = 0; i < n; i++) bad += y[i] != 2.0f * x[i];
    CHECK(bad == 0, "axpby with beta 0: %d of %ld values wrong (y must be ignored)", bad, n);
    free(x), free(y), free(y0);
}

// The batch forms give the single calls' bits: three axpbys (one in place, one with beta 0) and
// three sums of squares (one empty).
static void test_batches_equal_single_calls(void) {
    long n[3] = {100003, 17, 5000};
    float *x[3], *y[3], *want[3];
    for (int i = 0; i < 3; i++) x[i] = rand_floats(n[i]), y[i] = rand_floats(n[i]), want[i] = copy_floats(y[i], n[i]);
    AxpbyCall calls[3] = {{y[0], 0.3f, x[0], -2.0f, n[0]}, {y[1], 1.5f, y[1], 0.0f, n[1]}, {y[2], -1.0f, x[2], 0.5f, n[2]}};
    be->axpby(want[0], 0.3f, x[0], -2.0f, n[0]);
    be->axpby(want[1], 1.5f, want[1], 0.0f, n[1]);
    be->axpby(want[2], -1.0f, x[2], 0.5f, n[2]);
    be->axpby_batch(calls, 3);
    for (int i = 0; i < 3; i++) CHECK(memcmp(y[i], want[i], sizeof(float) * n[i]) == 0, "axpby_batch call %d differs", i);
    const float *xs[3] = {x[0], x[1], x[2]};
    long ns[3] = {n[0], 0, n[2]};
    double got[3];
    be->sumsq_batch(xs, ns, 3, got);
    for (int i = 0; i < 3; i++) {
        double one = be->sumsq(xs[i], ns[i]);
        CHECK(memcmp(&got[i], &one, sizeof one) == 0, "sumsq_batch %d: %.17g, sumsq %.17g", i, got[i], one);
    }
    for (int i = 0; i < 3; i++) free(x[i]), free(y[i]), free(want[i]);
}

// A column block of a wider matrix, copied (beta 0, NaN in y ignored) and then accumulated;
// the columns outside the block stay as they were.
static void test_add_matrix(void) {
    int rows = 300, cols = 70, ldx = 90, ldy = 200, c0 = 33;   // 300·70 ≥ the parallel threshold
    float *x = rand_floats((long)rows * ldx), *y = rand_floats((long)rows * ldy), *y0 = copy_floats(y, (long)rows * ldy);
    for (int i = 0; i < rows; i++) y[(long)i * ldy + c0] = NAN;
    be->add_matrix(y + c0, ldy, x, ldx, rows, cols, 0.0f);
    be->add_matrix(y + c0, ldy, x, ldx, rows, cols, 0.5f);
    int bad = 0;
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < ldy; j++) {
            float want = j >= c0 && j < c0 + cols ? x[(long)i * ldx + j - c0] * 1.5f : y0[(long)i * ldy + j];
            bad += y[(long)i * ldy + j] != want;
        }
    CHECK(bad == 0, "add_matrix: %d of %d values wrong", bad, rows * ldy);
    free(x), free(y), free(y0);
}

// The CPU backend flushes subnormal floats to zero in every thread (a blown-up AdamW run's
// factors are full of them, at ~100 cycles each): a product below FLT_MIN is 0, in the calling
// thread, in each OpenMP thread, and out of BLAS; a subnormal input counts as 0.
static void test_subnormals_flushed(void) {
    volatile float tiny = 1e-30f, denormal_bits = 1e-39f;
    int kept = 0, threads = 0;
#pragma omp parallel reduction(+ : kept, threads)
    {
        kept += tiny * 1e-10f != 0.0f;        // FTZ: the result
        kept += denormal_bits * 1.0f != 0.0f; // DAZ: the input
        threads++;
    }
    CHECK(kept == 0, "%d subnormals kept (2 checks in each of %d threads)", kept, threads);
    float a[4] = {1e-20f, 0, 0, 0}, b[4] = {1e-20f, 0, 0, 0}, c[4] = {1, 1, 1, 1};
    be->gemm(0, 0, 2, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2);
    CHECK(c[0] == 0.0f, "BLAS kept the subnormal 1e-40 (%g)", (double)c[0]);
}

// A CPU kernel without memory for its scratch records why instead of aborting the process;
// Backend.take_error hands the first such failure over once.
static void test_failure_is_taken_once(void) {
    CHECK(be->take_error && be->take_error() == NULL, "nothing pending at first");
    cpu_fail("rope: out of memory for the cos/sin table");
    cpu_fail("a later failure");
    const char *e = be->take_error ? be->take_error() : NULL;
    CHECK(e && strstr(e, "rope: out of memory"), "the first failure is taken: '%s'", e ? e : "(none)");
    CHECK(be->take_error() == NULL, "and only once");
}

static void test_sum_sumsq(void) {
    long sizes[] = {1, 17, 16384, 16385, 1000003};
    for (int s = 0; s < 5; s++) {
        long n = sizes[s];
        float *x = rand_floats(n);
        double sum = 0.0, sumsq = 0.0;
        for (long i = 0; i < n; i++) sum += x[i], sumsq += (double)x[i] * x[i];
        CHECK(fabs(be->sum(x, n) - sum) <= 1e-12 * fmax(1.0, fabs(sum)) + 1e-9, "sum n=%ld", n);
        CHECK(fabs(be->sumsq(x, n) - sumsq) <= 1e-12 * sumsq + 1e-12, "sumsq n=%ld", n);
        free(x);
    }
    CHECK(be->sum(NULL, 0) == 0.0 && be->sumsq(NULL, 0) == 0.0, "sum of nothing is 0");
}

// ---- adamw --------------------------------------------------------------------------------

static void test_adamw(void) {
    long n = 40000;
    float lr = 1e-2f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.1f, gs = 0.5f;
    float *p = rand_floats(n), *m = filled(n, 0.0f), *v = filled(n, 0.0f);
    double *pr = malloc(n * sizeof(double)), *mr = calloc(n, sizeof(double)), *vr = calloc(n, sizeof(double));
    for (long i = 0; i < n; i++) pr[i] = p[i];
    for (int t = 1; t <= 3; t++) {
        float *g = rand_floats(n);
        be->adamw_update(p, g, m, v, n, lr, b1, b2, eps, wd, gs, t);
        for (long i = 0; i < n; i++) {                          // the textbook scalar form
            double gi = (double)g[i] * gs;
            mr[i] = b1 * mr[i] + (1 - b1) * gi;
            vr[i] = b2 * vr[i] + (1 - b2) * gi * gi;
            double mhat = mr[i] / (1 - pow(b1, t)), vhat = vr[i] / (1 - pow(b2, t));
            pr[i] -= lr * wd * pr[i];
            pr[i] -= lr * mhat / (sqrt(vhat) + eps);
        }
        free(g);
    }
    double worst = 0.0;
    for (long i = 0; i < n; i++) worst = fmax(worst, fabs(p[i] - pr[i]));
    CHECK(worst < 1e-6, "adamw differs from the scalar reference by %.3g", worst);
    free(p), free(m), free(v), free(pr), free(mr), free(vr);
}

// ---- determinism --------------------------------------------------------------------------

// Two runs of the reducing kernels on the same inputs give the same bits.
static void test_determinism(void) {
    int B = 2, T = 96, H = 4, KVH = 2, hd = 16, vocab = 50, dim = H * hd, n = B * T;
    long nq = (long)B * T * H * hd, nk = (long)B * T * KVH * hd, na = (long)B * H * T * T;
    float *q = rand_floats(nq), *k = rand_floats(nk), *v = rand_floats(nk), *dout = rand_floats(nq);
    float *x = rand_floats(nq), *gain = rand_floats(dim);
    int32_t *tokens = malloc(n * sizeof(int32_t));
    for (int i = 0; i < n; i++) tokens[i] = (int32_t)(rand_uniform() * vocab);
    float *results[2][6];
    double sums[2][2];
    for (int run = 0; run < 2; run++) {
        float *out = malloc(nq * sizeof(float)), *att = malloc(na * sizeof(float)), *scratch = malloc(na * sizeof(float));
        float *dq = filled(nq, 0), *dk = filled(nk, 0), *dv = filled(nk, 0);
        float *rstd = malloc(n * sizeof(float)), *dx = filled(nq, 0), *dgain = filled(dim, 0);
        float *dtable = filled((long)vocab * dim, 0);
        be->attention_forward(out, att, q, k, v, B, T, T, H, KVH, hd);
        be->attention_backward(dq, dk, dv, scratch, dout, out, att, q, k, v, B, T, T, H, KVH, hd);
        be->rmsnorm_forward(out, rstd, x, gain, n, dim, 1e-5f);
        be->rmsnorm_backward(dx, dgain, dout, x, gain, rstd, n, dim);
        be->embedding_backward(dtable, dout, tokens, n, dim);
        results[run][0] = dq, results[run][1] = dk, results[run][2] = dv;
        results[run][3] = dx, results[run][4] = dgain, results[run][5] = dtable;
        sums[run][0] = be->sum(dq, nq), sums[run][1] = be->sumsq(dq, nq);
        free(out), free(att), free(scratch), free(rstd);
    }
    long sizes[6] = {nq, nk, nk, nq, dim, (long)vocab * dim};
    const char *names[6] = {"dq", "dk", "dv", "rmsnorm dx", "dgain", "dembedding"};
    for (int i = 0; i < 6; i++) {
        CHECK(memcmp(results[0][i], results[1][i], sizes[i] * sizeof(float)) == 0, "%s differs between runs", names[i]);
        free(results[0][i]), free(results[1][i]);
    }
    CHECK(sums[0][0] == sums[1][0] && sums[0][1] == sums[1][1], "sum/sumsq differ between runs");
    free(q), free(k), free(v), free(dout), free(x), free(gain), free(tokens);
}

// sum, sumsq and embedding_backward partition by data, not by thread, and attention gives
// each thread whole heads (whole kv groups in the backward): any thread count gives the same
// bits.
static void test_thread_count_invariance(void) {
    long n = 300001;
    int vocab = 20, dim = 256, rows = 300;
    int B = 2, T = 40, H = 4, KVH = 2, hd = 8;
    long nq = (long)B * T * H * hd, nk = (long)B * T * KVH * hd, na = (long)B * H * T * T;
    float *x = rand_floats(n), *dout = rand_floats((long)rows * dim);
    float *q = rand_floats(nq), *k = rand_floats(nk), *v = rand_floats(nk), *dy = rand_floats(nq);
    int32_t *tokens = malloc(rows * sizeof(int32_t));
    for (int i = 0; i < rows; i++) tokens[i] = (int32_t)(rand_uniform() * vocab);
    int saved = omp_get_max_threads();
    double sum[2], sumsq[2];
    float *dtable[2], *att[2], *grads[2];
    for (int run = 0; run < 2; run++) {
        omp_set_num_threads(run == 0 ? 1 : 3);
        sum[run] = be->sum(x, n), sumsq[run] = be->sumsq(x, n);
        dtable[run] = filled((long)vocab * dim, 0);
        be->embedding_backward(dtable[run], dout, tokens, rows, dim);
        float *out = malloc(nq * sizeof(float)), *scratch = malloc(na * sizeof(float));
        att[run] = malloc(na * sizeof(float));
        grads[run] = filled(nq + 2 * nk, 0);                    // dq, dk, dv back to back
        be->attention_forward(out, att[run], q, k, v, B, T, T, H, KVH, hd);
        be->attention_backward(grads[run], grads[run] + nq, grads[run] + nq + nk, scratch, dy, out, att[run],
                               q, k, v, B, T, T, H, KVH, hd);
        free(out), free(scratch);
    }
    omp_set_num_threads(saved);
    CHECK(sum[0] == sum[1] && sumsq[0] == sumsq[1], "sum/sumsq depend on the thread count");
    CHECK(memcmp(dtable[0], dtable[1], (size_t)vocab * dim * sizeof(float)) == 0,
          "embedding_backward depends on the thread count");
    CHECK(memcmp(att[0], att[1], na * sizeof(float)) == 0, "attention_forward depends on the thread count");
    CHECK(memcmp(grads[0], grads[1], (nq + 2 * nk) * sizeof(float)) == 0,
          "attention_backward depends on the thread count");
    for (int run = 0; run < 2; run++) free(dtable[run]), free(att[run]), free(grads[run]);
    free(x), free(dout), free(tokens), free(q), free(k), free(v), free(dy);
}

// cpu_blas_ensure_core re-execs only for a generic core with OPENBLAS_CORETYPE unset; with the
// variable set it must return at once (this is also what stops a re-exec loop).
static void test_blas_core(void) {
    const char *core = cpu_blas_core();
    CHECK(core && core[0], "cpu_blas_core is empty");
    char *argv[] = {"test_kernels", NULL};
    const char *saved = getenv("OPENBLAS_CORETYPE");
    setenv("OPENBLAS_CORETYPE", saved ? saved : core, 1);
    CHECK(cpu_blas_ensure_core(1, argv) == 0, "cpu_blas_ensure_core with OPENBLAS_CORETYPE set");
    if (!saved) unsetenv("OPENBLAS_CORETYPE");
}

// ---- backend table ------------------------------------------------------------------------

static void test_backend_table(void) {
    CHECK(strcmp(be->name, "cpu") == 0, "backend name");
    const char *d = be->describe();
    CHECK(strncmp(d, "cpu: ", 5) == 0 && strstr(d, "thread"), "describe: \"%s\"", d);
    float *buf = be->alloc(1000 * sizeof(float));
    CHECK(buf != NULL && ((uintptr_t)buf & 63) == 0, "alloc: aligned, non-NULL");
    int nonzero = 0;
    for (int i = 0; i < 1000; i++) nonzero += buf[i] != 0.0f;
    CHECK(nonzero == 0, "alloc must zero-fill");
    float host[4] = {1, 2, 3, 4}, back[4];
    be->upload(buf, host, sizeof host);
    be->copy(buf + 4, buf, sizeof host);
    be->download(back, buf + 4, sizeof back);
    CHECK(memcmp(back, host, sizeof host) == 0, "upload/copy/download round trip");
    be->zero(buf, sizeof host);
    CHECK(buf[0] == 0 && buf[3] == 0 && buf[4] == 1, "zero");
    be->release(buf);
    be->release(NULL);
    void *empty = be->alloc(0);
    CHECK(empty != NULL, "alloc(0) is not out of memory");
    be->release(empty);
}

int main(int argc, char **argv) {
    cpu_blas_ensure_core(argc, argv);  // as the shell does: the kernel timings should be real
    be = backend_cpu(0);
    RUN(test_backend_table);
    RUN(test_gemm_all_transposes);
    RUN(test_gemm_k_zero);
    RUN(test_embedding);
    RUN(test_rmsnorm_forward);
    RUN(test_rmsnorm_grad);
    RUN(test_rmsnorm_extreme_scales);
    RUN(test_gradcheck_catches_wrong_gradient);
    RUN(test_rope_forward);
    RUN(test_rope_grad);
    RUN(test_attention_forward);
    RUN(test_attention_grad);
    RUN(test_decode_attention);
    RUN(test_swiglu);
    RUN(test_row_products);
    RUN(test_expf);
    RUN(test_softmax_xent);
    RUN(test_gemm_batch);
    RUN(test_add_scale);
    RUN(test_axpby);
    RUN(test_batches_equal_single_calls);
    RUN(test_add_matrix);
    RUN(test_sum_sumsq);
    RUN(test_subnormals_flushed);
    RUN(test_failure_is_taken_once);
    RUN(test_adamw);
    RUN(test_determinism);
    RUN(test_thread_count_invariance);
    RUN(test_blas_core);
    return TEST_SUMMARY();
}
