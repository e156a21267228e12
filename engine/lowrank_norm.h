// lowrank_norm.h — the exact spectral norm of a matrix held as a product of thin factors,
// W = X·Yᵀ with X = [X₀ X₁ …] (rows_x × k) and Y likewise (rows_y × k), k = blocks·r small;
// and, by the same Lanczos, of a dense matrix from its Gram.
//
// A factorized weight is one block each (W = A·Bᵀ); an update of one is two, without the
// cancellation of A′B′ᵀ − ABᵀ: ΔW = (A′ − A)·B′ᵀ + A·(B′ − B)ᵀ = [ΔA A]·[B′ ΔB]ᵀ. The nonzero
// singular values of X·Yᵀ are the square roots of the eigenvalues of G_X·G_Y, with the k×k
// Grams G_X = XᵀX and G_Y = YᵀY: the backend forms them (block by block, each accurate to its
// own scale), the host takes the rest in double — G_X = S·Sᵀ by pivoted Cholesky, then the
// largest eigenvalue of Sᵀ·G_Y·S by Lanczos. Exact to rounding whatever the gap between σ₁ and
// σ₂; power iteration, whose error shrinks like (σ₂/σ₁)^(2·iterations), read updates 20–40 %
// low after 3 iterations.
#pragma once
#include "err.h"
#include "../kernels/kernels.h"

#define LOWRANK_MAX_BLOCKS 2

typedef struct LowRankProduct {
    const float *x[LOWRANK_MAX_BLOCKS], *y[LOWRANK_MAX_BLOCKS];   // each block r columns, row stride r
    int blocks, rows_x, rows_y, r;
} LowRankProduct;

// The update of a factorized W = A·Bᵀ from (A, B) to (A′, B′) as a product without the
// cancellation of A′B′ᵀ − ABᵀ: ΔW = ΔA·B′ᵀ + A·ΔBᵀ = [ΔA A]·[B′ ΔB]ᵀ, with ΔA and ΔB written into
// delta (device, (rows + cols)·r floats), which the product then reads.
LowRankProduct lowrank_update(const Backend *be, const float *a, const float *b, const float *a0, const float *b0,
                              int rows, int cols, int r, float *delta);

// Floats of the two k×k Grams of a product of `blocks` blocks of r columns.
size_t lowrank_gram_floats(int blocks, int r);

// The Grams' products, queued on the backend into gram (device, lowrank_gram_floats floats).
void lowrank_grams(const Backend *be, const LowRankProduct *p, float *gram);
// ‖X·Yᵀ‖₂ from the Grams lowrank_grams wrote, copied to the host (gram_host). NAN when a
// factor is not finite; NAN with err set when out of memory or LAPACK fails. Thread-safe:
// callers may run several side by side (OpenBLAS runs one thread inside a parallel region).
double lowrank_norm_from_grams(const float *gram_host, int blocks, int r, Err *err);
// Both in one: ‖X·Yᵀ‖₂; gram: device scratch of lowrank_gram_floats floats.
double lowrank_spectral_norm(const Backend *be, const LowRankProduct *p, float *gram, Err *err);

// ‖W‖₂ of a dense W (rows×cols, row-major, device) the same way: the backend forms its Gram
// G = WᵀW or W·Wᵀ (d×d, d = min(rows, cols)), the host takes λ_max(G) in double by Lanczos.
// gram: device scratch of d·d floats. NAN when W is not finite; NAN with err set when out of
// memory or LAPACK fails.
double dense_spectral_norm(const Backend *be, const float *w, int rows, int cols, float *gram, Err *err);
