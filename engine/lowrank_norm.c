// lowrank_norm.c — ‖X·Yᵀ‖₂ from the factors' Grams (see lowrank_norm.h).
#include <math.h>
#include <stdlib.h>
#include <lapacke.h>
#include <cblas.h>
#include "lowrank_norm.h"
#include "rng.h"

size_t lowrank_gram_floats(int blocks, int r) {
    size_t k = (size_t)blocks * r;
    return 2 * k * k;
}

// The upper blocks of G = ZᵀZ (k×k, row stride k) for Z = [Z₀ Z₁ …] of `rows` rows: block (i, j)
// = Z_iᵀ·Z_j for i ≤ j, each its own product (so each is accurate to its own scale: ΔA's
// entries are far smaller than A's). Appends them to calls.
static int gram_calls(const float *const *z, int blocks, int rows, int r, float *g, GemmCall *calls) {
    int k = blocks * r, n = 0;
    for (int i = 0; i < blocks; i++)
        for (int j = i; j < blocks; j++)
            calls[n++] = gemm_call(1, 0, r, r, rows, 1.0f, z[i], r, z[j], r, 0.0f, g + (size_t)i * r * k + j * r, k);
    return n;
}

// Whether block i of a Gram (k×k, blocks of r) is zero on its diagonal: X_i = 0, so that
// X_i·Y_iᵀ adds nothing (an unchanged factor's ΔA) and leaving it out gives an exact 0.
static int zero_block(const float *f, int k, int r, int i) {
    for (int p = i * r; p < (i + 1) * r; p++)
        if (f[(size_t)p * k + p] != 0.0f) return 0;
    return 1;
}

// The host copy, in double, of a Gram's rows and columns of the blocks in keep[0..n) (each r
// wide), its lower triangle from its upper; 0 if any is not finite.
static int gram_to_host(const float *f, int k, int r, const int *keep, int n, double *g) {
    int kn = n * r;
    for (int p = 0; p < kn; p++)
        for (int q = 0; q < kn; q++) {
            int fp = keep[p / r] * r + p % r, fq = keep[q / r] * r + q % r;
            double v = fq >= fp ? f[(size_t)fp * k + fq] : f[(size_t)fq * k + fp];
            if (!isfinite(v)) return 0;
            g[(size_t)p * kn + q] = v;
        }
    return 1;
}

// Below this a pivot of the unit-diagonal G_x is rounding: the Grams come from float products,
// so a column the others span to float precision leaves a residual of about 1e-7·k, not 0.
#define PIVOT_TOL 1e-5
// Lanczos steps for λ_max of an n×n M: n of them span the whole space (exact); for GPT-2's
// 384×384 updates 96 leave the top Ritz value converged far below float precision, at a
// tenth of forming M and its full eigenvalue problem.
#define LANCZOS_STEPS 96

// G_x → D^{-1/2}·G_x·D^{-1/2} and G_y → D^{1/2}·G_y·D^{1/2} (D: G_x's diagonal): the same
// product X·Yᵀ with X's columns at unit norm, so that ΔA's columns weigh as much as A's; then
// G_x = S·Sᵀ by pivoted Cholesky, S (k×n) of its numerical rank n (a column the others span —
// an update along A itself — drops out). s: room for k×k doubles. Returns n, or −1.
static int gram_root(double *gx, double *gy, int k, double *s) {
    double *d = malloc(sizeof(double) * k);
    lapack_int *piv = malloc(sizeof(lapack_int) * k), n = -1;
    if (d && piv) {
        for (int i = 0; i < k; i++) d[i] = gx[(size_t)i * k + i] > 0 ? sqrt(gx[(size_t)i * k + i]) : 1;
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++) gx[(size_t)i * k + j] /= d[i] * d[j], gy[(size_t)i * k + j] *= d[i] * d[j];
        if (LAPACKE_dpstrf(LAPACK_ROW_MAJOR, 'L', k, gx, k, piv, &n, PIVOT_TOL) < 0) n = -1;
        for (int i = 0; i < k && n > 0; i++)   // S = P·L, its first n columns: row piv[i] of S is row i of L
            for (int j = 0; j < n; j++) s[(size_t)(piv[i] - 1) * n + j] = j <= i ? gx[(size_t)i * k + j] : 0;
    }
    free(d), free(piv);
    return (int)n;
}

// A symmetric n×n operator Lanczos applies: y = M·x.
typedef struct SymOp {
    void (*apply)(const struct SymOp *op, const double *x, double *y);
    const double *s, *g;   // M = Sᵀ·G·S (S k×n), or M = G (k = n, s NULL)
    int k, n;
    double *u, *z;         // k each, for Sᵀ·G·S
} SymOp;

// y = Sᵀ·G_y·S·x through u, z: the n×n matrix is never formed.
static void apply_sgs(const SymOp *op, const double *x, double *y) {
    cblas_dgemv(CblasRowMajor, CblasNoTrans, op->k, op->n, 1.0, op->s, op->n, x, 1, 0.0, op->u, 1);
    cblas_dsymv(CblasRowMajor, CblasUpper, op->k, 1.0, op->g, op->k, op->u, 1, 0.0, op->z, 1);
    cblas_dgemv(CblasRowMajor, CblasTrans, op->k, op->n, 1.0, op->s, op->n, op->z, 1, 0.0, y, 1);
}

// y = G·x.
static void apply_g(const SymOp *op, const double *x, double *y) {
    cblas_dsymv(CblasRowMajor, CblasUpper, op->n, 1.0, op->g, op->n, x, 1, 0.0, y, 1);
}

// λ_max of M (symmetric PSD, n×n) by Lanczos with full reorthogonalization from a fixed start:
// the largest eigenvalue of the tridiagonal T it builds. 0, or −1 when memory runs out or
// LAPACK fails.
static int lanczos_max(const SymOp *op, double *out) {
    int n = op->n, steps = n < LANCZOS_STEPS ? n : LANCZOS_STEPS, j = 0;
    double *alpha = malloc(sizeof(double) * steps), *beta = malloc(sizeof(double) * steps);
    double *v = calloc((size_t)(steps + 1) * n, sizeof(double));
    if (!alpha || !beta || !v) {
        free(alpha), free(beta), free(v);
        return -1;
    }
    uint64_t seed = 0x1a2c05;   // a fixed start: the same matrices give the same number
    for (int i = 0; i < n; i++) v[i] = rng_normal(&seed);
    cblas_dscal(n, 1.0 / cblas_dnrm2(n, v, 1), v, 1);
    for (; j < steps; j++) {
        double *vj = v + (size_t)j * n, *w = vj + n;
        op->apply(op, vj, w);
        alpha[j] = cblas_ddot(n, vj, 1, w, 1);
        for (int pass = 0; pass < 2; pass++)   // against every earlier vector, twice: no ghost copies
            for (int i = 0; i <= j; i++) cblas_daxpy(n, -cblas_ddot(n, v + (size_t)i * n, 1, w, 1), v + (size_t)i * n, 1, w, 1);
        beta[j] = cblas_dnrm2(n, w, 1);
        if (j + 1 == steps || beta[j] <= 1e-12 * fabs(alpha[0])) break;   // the space is spanned: T is exact
        cblas_dscal(n, 1.0 / beta[j], w, 1);
    }
    int rc = LAPACKE_dsterf(j + 1, alpha, beta) != 0;   // T's eigenvalues, ascending, into alpha
    if (rc == 0) *out = alpha[j];
    free(alpha), free(beta), free(v);
    return rc;
}

// λ_max of G_x·G_y (k×k symmetric PSD, row-major; both overwritten): the squared largest
// singular value of X·Yᵀ, as the largest eigenvalue of Sᵀ·G_y·S for G_x = S·Sᵀ. 0, or −1
// when LAPACK fails or memory runs out.
static int largest_eigenvalue(double *gx, double *gy, int k, double *out) {
    double *s = malloc(sizeof(double) * k * k), *uz = malloc(sizeof(double) * 2 * k);
    int n = s && uz ? gram_root(gx, gy, k, s) : -1, rc = n < 0 ? -1 : 0;
    if (n == 0) *out = 0;
    if (n > 0) rc = lanczos_max(&(SymOp){apply_sgs, s, gy, k, n, uz, uz + k}, out);
    free(s), free(uz);
    return rc;
}

LowRankProduct lowrank_update(const Backend *be, const float *a, const float *b, const float *a0, const float *b0,
                              int rows, int cols, int r, float *delta) {
    long na = (long)rows * r, nb = (long)cols * r;
    float *da = delta, *db = delta + na;
    be->copy(da, a, sizeof(float) * na);
    be->axpby(da, -1.0f, a0, 1.0f, na);   // ΔA = A′ − A
    be->copy(db, b, sizeof(float) * nb);
    be->axpby(db, -1.0f, b0, 1.0f, nb);   // ΔB = B′ − B
    return (LowRankProduct){{da, a0}, {b, db}, 2, rows, cols, r};
}

void lowrank_grams(const Backend *be, const LowRankProduct *p, float *gram) {
    size_t k = (size_t)p->blocks * p->r;
    GemmCall calls[2 * LOWRANK_MAX_BLOCKS * (LOWRANK_MAX_BLOCKS + 1) / 2];
    int n = gram_calls(p->x, p->blocks, p->rows_x, p->r, gram, calls);
    n += gram_calls(p->y, p->blocks, p->rows_y, p->r, gram + k * k, calls + n);
    be->gemm_batch(calls, n);
}

double lowrank_norm_from_grams(const float *f, int blocks, int r, Err *err) {
    int k = blocks * r;
    size_t kk = (size_t)k * k;
    int keep[LOWRANK_MAX_BLOCKS], n_keep = 0;
    for (int i = 0; i < blocks; i++)
        if (!zero_block(f, k, r, i) && !zero_block(f + kk, k, r, i)) keep[n_keep++] = i;
    if (n_keep == 0) return 0;   // every term zero: X·Yᵀ = 0
    int kn = n_keep * r;
    double *g = malloc(sizeof(double) * 2 * (size_t)kn * kn), lambda = NAN;
    if (!g) {
        err_set(err, "out of memory for two %d×%d Grams", kn, kn);
        return NAN;
    }
    int finite = gram_to_host(f, k, r, keep, n_keep, g) && gram_to_host(f + kk, k, r, keep, n_keep, g + (size_t)kn * kn);
    if (finite && largest_eigenvalue(g, g + (size_t)kn * kn, kn, &lambda) != 0)
        err_set(err, "LAPACK failed on a %d×%d Gram (or out of memory)", kn, kn);
    free(g);
    return finite && isfinite(lambda) ? sqrt(lambda > 0 ? lambda : 0) : NAN;
}

double lowrank_spectral_norm(const Backend *be, const LowRankProduct *p, float *gram, Err *err) {
    size_t floats = lowrank_gram_floats(p->blocks, p->r);
    float *host = malloc(sizeof(float) * floats);
    if (!host) {
        err_set(err, "out of memory for two Grams");
        return NAN;
    }
    lowrank_grams(be, p, gram);
    be->download(host, gram, sizeof(float) * floats);
    // one thread: LAPACK's many small BLAS calls on a k×k matrix would wake the others for
    // each (in OpenBLAS's OpenMP build this sets OpenMP's count too), ten times the work
    int threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    double norm = lowrank_norm_from_grams(host, p->blocks, p->r, err);
    openblas_set_num_threads(threads);
    free(host);
    return norm;
}

double dense_spectral_norm(const Backend *be, const float *w, int rows, int cols, float *gram, Err *err) {
    int d = rows < cols ? rows : cols;
    size_t dd = (size_t)d * d;
    if (cols <= rows) be->gemm(1, 0, d, d, rows, 1.0f, w, cols, w, cols, 0.0f, gram, d);   // WᵀW (cols×cols)
    else be->gemm(0, 1, d, d, cols, 1.0f, w, cols, w, cols, 0.0f, gram, d);                // W·Wᵀ (rows×rows)
    float *host = malloc(sizeof(float) * dd);
    double *g = malloc(sizeof(double) * dd), lambda = NAN;
    if (!host || !g) {
        free(host), free(g);
        err_set(err, "out of memory for a %d×%d Gram", d, d);
        return NAN;
    }
    be->download(host, gram, sizeof(float) * dd);
    int finite = 1;
    for (size_t i = 0; i < dd; i++) finite &= isfinite(g[i] = host[i]);
    int threads = openblas_get_num_threads();   // one thread, as lowrank_spectral_norm
    openblas_set_num_threads(1);
    if (finite && lanczos_max(&(SymOp){apply_g, NULL, g, d, d, NULL, NULL}, &lambda) != 0)
        err_set(err, "LAPACK failed on a %d×%d Gram (or out of memory)", d, d);
    openblas_set_num_threads(threads);
    free(host), free(g);
    return finite && isfinite(lambda) ? sqrt(lambda > 0 ? lambda : 0) : NAN;
}
