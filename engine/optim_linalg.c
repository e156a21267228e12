// optim_linalg.c — axpby, NS5, power iteration and the exact polar factor (see optim_linalg.h).
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <lapacke.h>
#include "optim_linalg.h"

size_t newton_schulz5_work(int m, int n) {
    size_t k = (size_t)(m < n ? m : n);
    return (size_t)m * n + 5 * k * k;
}

// One matrix of a batch, with its k×k scratch carved from its work.
typedef struct NS5State {
    float *x, *y, *s, *r, *q, *t, *u;
    int m, n, k, tall;
} NS5State;

// A k×k×k product C = alpha·A·B + beta·C (all row strides k but the identity's).
static GemmCall square(float alpha, const float *a, int lda, const float *b, int ldb, float beta, float *c, int k) {
    return gemm_call(0, 0, k, k, k, alpha, a, lda, b, ldb, beta, c, k);
}

// The products by P = aI + R of an iteration: U = Q·P (tall) or P·Q (wide), T = S·P, S = P·T.
typedef enum { P_WITH_Q, S_TIMES_P, P_TIMES_T } PProduct;

// dst(k×k) = a·src + src·r, or a·src + r·src when left (dst ≠ src), for every matrix: the
// copies one by one, the products as one batch. Commuting polynomials of S make the order
// immaterial in exact arithmetic; it is kept for symmetry.
static void times_p(const Backend *be, NS5State *st, int count, PProduct which) {
    GemmCall calls[NS5_MAX_BATCH];
    for (int j = 0; j < count; j++) {
        NS5State *z = &st[j];
        float *dst = which == P_WITH_Q ? z->u : which == S_TIMES_P ? z->t : z->s;
        float *src = which == P_WITH_Q ? z->q : which == S_TIMES_P ? z->s : z->t;
        int left = which == P_WITH_Q ? !z->tall : which == P_TIMES_T;
        be->copy(dst, src, sizeof(float) * z->k * z->k);
        calls[j] = left ? square(1.0f, z->r, z->k, src, z->k, NS5_A, dst, z->k)
                        : square(1.0f, src, z->k, z->r, z->k, NS5_A, dst, z->k);
    }
    be->gemm_batch(calls, count);
}

// Every NS5 iterate is X_j = X₀·Q_j (tall; Q_j·X₀ wide) with Q_j = P₀⋯P_{j−1}, P_i = p(S_i) =
// aI + bS_i + cS_i², and S_{i+1} = P_i·S_i·P_i: all of it k×k. So X₀ is touched twice (S₀, then
// X₀·Q) instead of twice per iteration: O(m·n·k + steps·k³) instead of O(steps·m·n·k). The
// matrices of a batch go in lockstep, each stage's products as one gemm_batch.
void newton_schulz5_batch(const Backend *be, const NS5Job *jobs, int count, int steps, const float *eye, int eye_ld) {
    NS5State st[NS5_MAX_BATCH];
    GemmCall calls[NS5_MAX_BATCH];
    for (int j = 0; j < count; j++) {
        const NS5Job *b = &jobs[j];
        NS5State *z = &st[j];
        long mn = (long)b->m * b->n;
        z->x = b->x, z->m = b->m, z->n = b->n, z->tall = b->m >= b->n, z->k = z->tall ? b->n : b->m;
        size_t kk = (size_t)z->k * z->k;
        z->y = b->work, z->s = z->y + mn, z->r = z->s + kk, z->q = z->r + kk, z->t = z->q + kk, z->u = z->t + kk;
        double norm = sqrt(be->sumsq(z->x, mn));
        be->scale(z->x, (float)(1.0 / (norm + 1e-7)), mn);   // ‖X‖₂ ≤ ‖X‖_F ≤ 1: inside NS5's basin
        calls[j] = z->tall ? gemm_call(1, 0, z->n, z->n, z->m, 1.0f, z->x, z->n, z->x, z->n, 0.0f, z->s, z->n)   // S₀ = XᵀX
                           : gemm_call(0, 1, z->m, z->m, z->n, 1.0f, z->x, z->n, z->x, z->n, 0.0f, z->s, z->m); // S₀ = XXᵀ
    }
    if (steps <= 0) return;
    be->gemm_batch(calls, count);
    for (int i = 0; i < steps; i++) {
        for (int j = 0; j < count; j++) {   // R = bS + cS², P = aI + R
            NS5State *z = &st[j];
            be->copy(z->r, z->s, sizeof(float) * z->k * z->k);
            be->scale(z->r, NS5_B, (long)z->k * z->k);
            calls[j] = square(NS5_C, z->s, z->k, z->s, z->k, 1.0f, z->r, z->k);
        }
        be->gemm_batch(calls, count);
        if (i == 0) {
            for (int j = 0; j < count; j++) {   // Q₁ = P₀ = R + a·I
                NS5State *z = &st[j];
                be->copy(z->q, z->r, sizeof(float) * z->k * z->k);
                calls[j] = square(NS5_A, eye, eye_ld, eye, eye_ld, 1.0f, z->q, z->k);
            }
            be->gemm_batch(calls, count);
        } else {
            times_p(be, st, count, P_WITH_Q);                    // Q ← Q·P (tall), P·Q (wide)
            for (int j = 0; j < count; j++) { float *swap = st[j].q; st[j].q = st[j].u; st[j].u = swap; }
        }
        if (i + 1 == steps) break;
        times_p(be, st, count, S_TIMES_P);                       // T = S·P
        times_p(be, st, count, P_TIMES_T);                       // S ← P·S·P
    }
    for (int j = 0; j < count; j++) {
        NS5State *z = &st[j];
        calls[j] = z->tall ? gemm_call(0, 0, z->m, z->n, z->n, 1.0f, z->x, z->n, z->q, z->n, 0.0f, z->y, z->n)   // X₀·Q
                           : gemm_call(0, 0, z->m, z->n, z->m, 1.0f, z->q, z->m, z->x, z->n, 0.0f, z->y, z->n); // Q·X₀
    }
    be->gemm_batch(calls, count);
    for (int j = 0; j < count; j++) be->copy(st[j].x, st[j].y, sizeof(float) * st[j].m * st[j].n);
}

void newton_schulz5(const Backend *be, float *x, int m, int n, int steps, float *work, const float *eye, int eye_ld) {
    NS5Job job = {x, m, n, work};
    newton_schulz5_batch(be, &job, 1, steps, eye, eye_ld);
}

int polar_exact(const Backend *be, float *x, int m, int n, Err *err) {
    int k = m < n ? m : n;
    float *h = malloc(sizeof(float) * ((size_t)m * n * 2 + (size_t)m * k + (size_t)k * n + k));
    if (!h) return err_set(err, "out of memory for the SVD of a %d×%d matrix", m, n);
    float *a = h, *o = a + (size_t)m * n, *u = o + (size_t)m * n, *vt = u + (size_t)m * k, *s = vt + (size_t)k * n;
    be->download(a, x, sizeof(float) * m * n);
    lapack_int info = LAPACKE_sgesdd(LAPACK_ROW_MAJOR, 'S', m, n, a, n, s, u, k, vt, n);
    if (info != 0) {
        free(h);
        return err_set(err, "SVD of a %d×%d matrix failed (LAPACK info %d)", m, n, (int)info);
    }
    for (int i = 0; i < m; i++)          // O = U(m×k)·Vt(k×n), in double for an exact reference
        for (int j = 0; j < n; j++) {
            double acc = 0;
            for (int l = 0; l < k; l++) acc += (double)u[(size_t)i * k + l] * vt[(size_t)l * n + j];
            o[(size_t)i * n + j] = (float)acc;
        }
    be->upload(x, o, sizeof(float) * m * n);
    free(h);
    return 0;
}

size_t power_iteration_work(const LinOp *op) { return (size_t)op->rows + op->cols + op->rank; }

// y = op·x (x: cols, y: rows), or opᵀ·x when transpose (x: rows, y: cols); t: rank scratch.
static void linop_apply(const Backend *be, const LinOp *op, int transpose, const float *x, float *y, float *t) {
    int r = op->rank, out = transpose ? op->cols : op->rows, in = transpose ? op->rows : op->cols;
    if (r == 0) {
        if (transpose) be->gemm(1, 0, op->cols, 1, op->rows, 1.0f, op->a, op->cols, x, 1, 0.0f, y, 1);
        else be->gemm(0, 0, op->rows, 1, op->cols, 1.0f, op->a, op->cols, x, 1, 0.0f, y, 1);
        return;
    }
    // op·x = a·(bᵀx); opᵀ·x = b·(aᵀx): `inner` is the factor contracted with x first
    const float *inner = transpose ? op->a : op->b, *outer = transpose ? op->b : op->a;
    be->gemm(1, 0, r, 1, in, 1.0f, inner, r, x, 1, 0.0f, t, 1);        // t(r) = innerᵀ·x
    be->gemm(0, 0, out, 1, r, 1.0f, outer, r, t, 1, 0.0f, y, 1);       // y(out) = outer·t
    if (!op->a0) return;
    const float *inner0 = transpose ? op->a0 : op->b0, *outer0 = transpose ? op->b0 : op->a0;
    be->gemm(1, 0, r, 1, in, 1.0f, inner0, r, x, 1, 0.0f, t, 1);
    be->gemm(0, 0, out, 1, r, -1.0f, outer0, r, t, 1, 1.0f, y, 1);     // y −= outer0·t
}

float power_iteration(const Backend *be, const LinOp *op, float *v, int iters, float *work) {
    float *z = work, *y = z + op->rows, *t = y + op->cols;
    float sigma = 0.0f;
    for (int i = 0; i < iters; i++) {
        linop_apply(be, op, 0, v, z, t);                 // z(rows) = op·v
        linop_apply(be, op, 1, z, y, t);                 // y(cols) = opᵀ·z
        double nz = sqrt(be->sumsq(z, op->rows)), ny = sqrt(be->sumsq(y, op->cols));
        if (!isfinite(nz) || !isfinite(ny)) return NAN;   // non-finite weights: say so
        if (nz == 0 || ny == 0) return 0.0f;
        sigma = (float)(ny / nz);
        be->copy(v, y, sizeof(float) * op->cols);
        be->scale(v, (float)(1.0 / ny), op->cols);
    }
    return sigma;
}
