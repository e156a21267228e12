// optim_linalg.c — NS5, power iteration and the exact polar factor (see optim_linalg.h).
#include <limits.h>
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

// The buffers of a matrix's state, by name: X and Y are m×n, the others k×k.
typedef enum { F_X, F_Y, F_S, F_R, F_Q, F_T, F_U } Field;

static float *field(const NS5State *z, Field f) {
    float *const all[] = {z->x, z->y, z->s, z->r, z->q, z->t, z->u};
    return all[f];
}

// to ← from for every matrix of the batch: one strided Backend.add_matrix when the sizes are
// equal and both sides evenly spaced (ortho_all's slots are), else a copy each. Either way the
// same values; the first is one launch on a GPU instead of count.
static void copy_field(const Backend *be, const NS5State *st, int count, Field to, Field from) {
    long n = to <= F_Y ? (long)st[0].m * st[0].n : (long)st[0].k * st[0].k;
    long to_ld = count > 1 ? field(&st[1], to) - field(&st[0], to) : 0;
    long from_ld = count > 1 ? field(&st[1], from) - field(&st[0], from) : 0;
    int even = count > 1 && to_ld >= n && from_ld >= n && to_ld <= INT_MAX && from_ld <= INT_MAX && n <= INT_MAX;
    for (int j = 1; j < count && even; j++)
        even = st[j].m == st[0].m && st[j].n == st[0].n && field(&st[j], to) - field(&st[j - 1], to) == to_ld &&
               field(&st[j], from) - field(&st[j - 1], from) == from_ld;
    if (even) {
        be->add_matrix(field(&st[0], to), (int)to_ld, field(&st[0], from), (int)from_ld, count, (int)n, 0.0f);
        return;
    }
    for (int j = 0; j < count; j++) {
        const NS5State *z = &st[j];
        size_t floats = to <= F_Y ? (size_t)z->m * z->n : (size_t)z->k * z->k;
        be->copy(field(z, to), field(z, from), sizeof(float) * floats);
    }
}

// The products by P = aI + R of an iteration: U = Q·P (tall) or P·Q (wide), T = S·P, S = P·T.
typedef enum { P_WITH_Q, S_TIMES_P, P_TIMES_T } PProduct;

// dst(k×k) = a·src + src·r, or a·src + r·src when left (dst ≠ src), for every matrix: the
// copies and the products each as one batch. Commuting polynomials of S make the order
// immaterial in exact arithmetic; it is kept for symmetry.
static void times_p(const Backend *be, NS5State *st, int count, PProduct which) {
    GemmCall calls[NS5_MAX_BATCH];
    Field to = which == P_WITH_Q ? F_U : which == S_TIMES_P ? F_T : F_S;
    Field from = which == P_WITH_Q ? F_Q : which == S_TIMES_P ? F_S : F_T;
    copy_field(be, st, count, to, from);
    for (int j = 0; j < count; j++) {
        NS5State *z = &st[j];
        float *dst = field(z, to), *src = field(z, from);
        int left = which == P_WITH_Q ? !z->tall : which == P_TIMES_T;
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
    AxpbyCall unit[NS5_MAX_BATCH] = {{0}};
    const float *xs[NS5_MAX_BATCH] = {0};
    long mn[NS5_MAX_BATCH] = {0};
    double sumsq[NS5_MAX_BATCH] = {0};
    for (int j = 0; j < count; j++) xs[j] = jobs[j].x, mn[j] = (long)jobs[j].m * jobs[j].n;
    be->sumsq_batch(xs, mn, count, sumsq);
    for (int j = 0; j < count; j++) {   // X ← X/‖X‖_F: ‖X‖₂ ≤ ‖X‖_F ≤ 1, inside NS5's basin
        float scale = (float)(1.0 / (sqrt(sumsq[j]) + 1e-7));
        unit[j] = (AxpbyCall){jobs[j].x, scale, jobs[j].x, 0.0f, mn[j]};
    }
    be->axpby_batch(unit, count);
    for (int j = 0; j < count; j++) {
        const NS5Job *b = &jobs[j];
        NS5State *z = &st[j];
        z->x = b->x, z->m = b->m, z->n = b->n, z->tall = b->m >= b->n, z->k = z->tall ? b->n : b->m;
        size_t kk = (size_t)z->k * z->k;
        z->y = b->work, z->s = z->y + mn[j], z->r = z->s + kk, z->q = z->r + kk, z->t = z->q + kk, z->u = z->t + kk;
        calls[j] = z->tall ? gemm_call(1, 0, z->n, z->n, z->m, 1.0f, z->x, z->n, z->x, z->n, 0.0f, z->s, z->n)   // S₀ = XᵀX
                           : gemm_call(0, 1, z->m, z->m, z->n, 1.0f, z->x, z->n, z->x, z->n, 0.0f, z->s, z->m); // S₀ = XXᵀ
    }
    if (steps <= 0) return;
    be->gemm_batch(calls, count);
    for (int i = 0; i < steps; i++) {
        copy_field(be, st, count, F_R, F_S);   // R = bS + cS² (the GEMM scales its C = S by b), P = aI + R
        for (int j = 0; j < count; j++) calls[j] = square(NS5_C, st[j].s, st[j].k, st[j].s, st[j].k, NS5_B, st[j].r, st[j].k);
        be->gemm_batch(calls, count);
        if (i == 0) {
            copy_field(be, st, count, F_Q, F_R);   // Q₁ = P₀ = R + a·I
            for (int j = 0; j < count; j++) calls[j] = square(NS5_A, eye, eye_ld, eye, eye_ld, 1.0f, st[j].q, st[j].k);
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
    copy_field(be, st, count, F_X, F_Y);
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

// One power-iteration step's products, z = a·v then y = aᵀ·z, for the live operators.
static void rank0_products(const Backend *be, const LinOp *ops, float *const *v, const int *live, int n,
                           float *const *z, float *const *y, GemmCall *calls) {
    for (int l = 0; l < n; l++) {
        const LinOp *op = &ops[live[l]];
        calls[l] = gemm_call(0, 0, op->rows, 1, op->cols, 1.0f, op->a, op->cols, v[live[l]], 1, 0.0f, z[live[l]], 1);
    }
    be->gemm_batch(calls, n);
    for (int l = 0; l < n; l++) {
        const LinOp *op = &ops[live[l]];
        calls[l] = gemm_call(1, 0, op->cols, 1, op->rows, 1.0f, op->a, op->cols, z[live[l]], 1, 0.0f, y[live[l]], 1);
    }
    be->gemm_batch(calls, n);
}

int power_iteration_batch(const Backend *be, const LinOp *ops, float *const *v, int count, int iters, float *work,
                          float *sigma) {
    size_t per = sizeof(float *) * 2 + sizeof(int) + sizeof(GemmCall) + sizeof(AxpbyCall) +
                 2 * (sizeof(const float *) + sizeof(long) + sizeof(double));
    char *mem = malloc(per * (size_t)(count > 0 ? count : 1));
    if (!mem) return -1;
    float **z = (float **)mem, **y = z + count;
    GemmCall *calls = (GemmCall *)(y + count);
    AxpbyCall *unit = (AxpbyCall *)(calls + count);
    const float **vecs = (const float **)(unit + count);
    long *lens = (long *)(vecs + 2 * count);
    double *sq = (double *)(lens + 2 * count);
    int *live = (int *)(sq + 2 * count), n = count;
    for (int j = 0; j < count; j++) {
        live[j] = j, sigma[j] = 0.0f;
        z[j] = work, y[j] = work + ops[j].rows, work += ops[j].rows + ops[j].cols;
    }
    for (int i = 0; i < iters && n > 0; i++) {
        rank0_products(be, ops, v, live, n, z, y, calls);
        for (int l = 0; l < n; l++) {
            vecs[2 * l] = z[live[l]], lens[2 * l] = ops[live[l]].rows;
            vecs[2 * l + 1] = y[live[l]], lens[2 * l + 1] = ops[live[l]].cols;
        }
        be->sumsq_batch(vecs, lens, 2 * n, sq);
        int kept = 0, units = 0;
        for (int l = 0; l < n; l++) {   // as power_iteration: NaN or 0 ends an operator's iteration
            int j = live[l];
            double nz = sqrt(sq[2 * l]), ny = sqrt(sq[2 * l + 1]);
            if (!isfinite(nz) || !isfinite(ny)) { sigma[j] = NAN; continue; }
            if (nz == 0 || ny == 0) { sigma[j] = 0.0f; continue; }
            sigma[j] = (float)(ny / nz);
            unit[units++] = (AxpbyCall){v[j], (float)(1.0 / ny), y[j], 0.0f, ops[j].cols};   // v = y/‖y‖
            live[kept++] = j;
        }
        be->axpby_batch(unit, units);
        n = kept;
    }
    free(mem);
    return 0;
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
