// lowrank_norm.c — ‖X·Yᵀ‖₂ from the factors' Grams (see lowrank_norm.h).
#include <math.h>
#include <stdlib.h>
#include <lapacke.h>
#include <cblas.h>
#include "lowrank_norm.h"

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

// λ_max of S·G_y·S with S = G_x^{1/2} (both k×k symmetric PSD, row-major; gx is overwritten):
// the eigenvectors Q and values λ of G_x give S = Q·diag(√λ⁺)·Qᵀ.
static int largest_eigenvalue(double *gx, const double *gy, int k, double *out) {
    double *w = malloc(sizeof(double) * k), *t = malloc(sizeof(double) * k * k), *s = malloc(sizeof(double) * k * k);
    int rc = w && t && s ? 0 : -1;
    if (rc == 0) rc = LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'V', 'U', k, gx, k, w) != 0;   // gx ← Q
    for (int i = 0; rc == 0 && i < k; i++)
        for (int j = 0; j < k; j++) t[(size_t)i * k + j] = gx[(size_t)i * k + j] * sqrt(w[j] > 0 ? w[j] : 0);
    if (rc == 0) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, k, k, k, 1.0, t, k, gx, k, 0.0, s, k);   // S = Q·√Λ·Qᵀ
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, k, k, k, 1.0, s, k, gy, k, 0.0, t, k);  // S·G_y
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, k, k, k, 1.0, t, k, s, k, 0.0, gx, k);  // ·S
        rc = LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'N', 'U', k, gx, k, w) != 0;                             // ascending
    }
    if (rc == 0) *out = w[k - 1];
    free(w), free(t), free(s);
    return rc;
}

double lowrank_spectral_norm(const Backend *be, const LowRankProduct *p, float *gram, Err *err) {
    int k = p->blocks * p->r;
    size_t kk = (size_t)k * k;
    GemmCall calls[2 * LOWRANK_MAX_BLOCKS * (LOWRANK_MAX_BLOCKS + 1) / 2];
    int n = gram_calls(p->x, p->blocks, p->rows_x, p->r, gram, calls);
    n += gram_calls(p->y, p->blocks, p->rows_y, p->r, gram + kk, calls + n);
    be->gemm_batch(calls, n);
    float *f = malloc(sizeof(float) * 2 * kk);
    double *g = malloc(sizeof(double) * 2 * kk), lambda = NAN;
    if (!f || !g) {
        free(f), free(g);
        err_set(err, "out of memory for two %d×%d Grams", k, k);
        return NAN;
    }
    be->download(f, gram, sizeof(float) * 2 * kk);
    int keep[LOWRANK_MAX_BLOCKS], n_keep = 0;
    for (int i = 0; i < p->blocks; i++)
        if (!zero_block(f, k, p->r, i) && !zero_block(f + kk, k, p->r, i)) keep[n_keep++] = i;
    int kn = n_keep * p->r, finite = 1;
    if (n_keep == 0) lambda = 0;   // every term zero: X·Yᵀ = 0
    else if (!(finite = gram_to_host(f, k, p->r, keep, n_keep, g) && gram_to_host(f + kk, k, p->r, keep, n_keep, g + kk)))
        lambda = NAN;
    else if (largest_eigenvalue(g, g + (size_t)kn * kn, kn, &lambda) != 0)
        err_set(err, "LAPACK dsyev failed on a %d×%d Gram", kn, kn);
    free(f), free(g);
    return finite && isfinite(lambda) ? sqrt(lambda > 0 ? lambda : 0) : NAN;
}
