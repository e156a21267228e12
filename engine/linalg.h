// linalg.h — host-side dense linear algebra the engine shares (initialization, `model factorize`).
#pragma once
#include "err.h"

// Best rank-r approximation of a dense host W (out×in, row-major) as A = U_r·√S_r (out×r) and
// B = V_r·√S_r (in×r), so W ≈ A·Bᵀ. When s != NULL it receives all min(out, in) singular values,
// largest first. W is not modified. 1 ≤ r ≤ min(out, in).
int truncated_svd(const float *w, int out, int in, int r, float *a, float *b, float *s, Err *err);
