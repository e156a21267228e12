// linalg.h — host-side dense linear algebra the engine shares (initialization, `model factorize`).
#pragma once
#include "err.h"

// Best rank-r approximation of a dense host W (out×in, row-major) as A = U_r·√S_r (out×r) and
// B = V_r·√S_r (in×r), so W ≈ A·Bᵀ. When s != NULL it receives all min(out, in) singular values,
// largest first. W is not modified. 1 ≤ r ≤ min(out, in).
int truncated_svd(const float *w, int out, int in, int r, float *a, float *b, float *s, Err *err);

// ‖W − W_r‖_F / ‖W‖_F for the best rank-r approximation, from W's k singular values s
// (largest first): sqrt(Σ_{j≥r} s_j² / Σ_j s_j²), 0 for W = 0.
double truncation_error(const float *s, int k, int r);

// One truncated_svd's arguments.
typedef struct SvdJob {
    const float *w;
    int out, in, r;
    float *a, *b, *s;
} SvdJob;

// count independent truncated_svd calls side by side, one thread each (OpenBLAS runs a call
// single-threaded inside the parallel loop). sgesdd spends most of its time reducing W to
// bidiagonal form with matrix-vector products, bound by memory traffic, which more threads
// inside one call barely speed up: across the matrices of a model they do. On failure, the
// error of the first failing job in order.
int truncated_svd_batch(const SvdJob *jobs, int count, Err *err);
