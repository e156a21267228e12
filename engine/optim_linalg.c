// optim_linalg.c — axpby, NS5, power iteration and the exact polar factor (see optim_linalg.h).
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <lapacke.h>
#include "optim_linalg.h"

void axpby(const Backend *be, float *y, float alpha, const float *x, float beta, long n, float *tmp) {
    if (n <= 0) return;
    if (beta != 1.0f) be->scale(y, beta, n);
    if (alpha == 0.0f) return;
    if (alpha == 1.0f) {
        be->add(y, x, n);
        return;
    }
    be->copy(tmp, x, n * sizeof(float));
    be->scale(tmp, alpha, n);
    be->add(y, tmp, n);
}

size_t newton_schulz5_work(int m, int n) {
    size_t k = (size_t)(m < n ? m : n);
    return (size_t)m * n + 5 * k * k;
}

// dst(k×k) = a·src + src·r, or a·src + r·src when left (all k×k; dst ≠ src). Commuting
// polynomials of S make the order immaterial in exact arithmetic; it is kept for symmetry.
static void times_p(const Backend *be, float *dst, const float *src, const float *r, int k, int left) {
    be->copy(dst, src, sizeof(float) * k * k);
    if (left) be->gemm(0, 0, k, k, k, 1.0f, r, k, src, k, NS5_A, dst, k);
    else be->gemm(0, 0, k, k, k, 1.0f, src, k, r, k, NS5_A, dst, k);
}

// Every NS5 iterate is X_j = X₀·Q_j (tall; Q_j·X₀ wide) with Q_j = P₀⋯P_{j−1}, P_i = p(S_i) =
// aI + bS_i + cS_i², and S_{i+1} = P_i·S_i·P_i: all of it k×k. So X₀ is touched twice (S₀, then
// X₀·Q) instead of twice per iteration: O(m·n·k + steps·k³) instead of O(steps·m·n·k).
void newton_schulz5(const Backend *be, float *x, int m, int n, int steps, float *work, const float *eye, int eye_ld) {
    long mn = (long)m * n;
    int tall = m >= n, k = tall ? n : m;
    size_t kk = (size_t)k * k;
    float *y = work, *s = y + mn, *r = s + kk, *q = r + kk, *t = q + kk, *u = t + kk;
    double norm = sqrt(be->sumsq(x, mn));
    be->scale(x, (float)(1.0 / (norm + 1e-7)), mn);   // ‖X‖₂ ≤ ‖X‖_F ≤ 1: inside NS5's basin
    if (steps <= 0) return;
    if (tall) be->gemm(1, 0, n, n, m, 1.0f, x, n, x, n, 0.0f, s, n);   // S₀ = XᵀX (n×n)
    else be->gemm(0, 1, m, m, n, 1.0f, x, n, x, n, 0.0f, s, m);        // S₀ = XXᵀ (m×m)
    for (int i = 0; i < steps; i++) {
        be->copy(r, s, kk * sizeof(float));
        be->scale(r, NS5_B, (long)kk);
        be->gemm(0, 0, k, k, k, NS5_C, s, k, s, k, 1.0f, r, k);          // R = bS + cS², P = aI + R
        if (i == 0) {
            be->copy(q, r, kk * sizeof(float));
            be->gemm(0, 0, k, k, k, NS5_A, eye, eye_ld, eye, eye_ld, 1.0f, q, k);   // Q₁ = P₀ = R + a·I
        } else {
            times_p(be, u, q, r, k, !tall);                              // Q ← Q·P (tall), P·Q (wide)
            float *swap = q; q = u; u = swap;
        }
        if (i + 1 == steps) break;
        times_p(be, t, s, r, k, 0);                                      // T = S·P
        times_p(be, s, t, r, k, 1);                                      // S ← P·S·P
    }
    if (tall) be->gemm(0, 0, m, n, n, 1.0f, x, n, q, n, 0.0f, y, n);    // X = X₀·Q
    else be->gemm(0, 0, m, n, m, 1.0f, q, m, x, n, 0.0f, y, n);         // X = Q·X₀
    be->copy(x, y, (size_t)mn * sizeof(float));
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
