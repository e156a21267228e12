// lowrank_norm.h — the exact spectral norm of a matrix held as a product of thin factors,
// W = X·Yᵀ with X = [X₀ X₁ …] (rows_x × k) and Y likewise (rows_y × k), k = blocks·r small.
//
// A factorized weight is one block each (W = A·Bᵀ); an update of one is two, without the
// cancellation of A′B′ᵀ − ABᵀ: ΔW = (A′ − A)·B′ᵀ + A·(B′ − B)ᵀ = [ΔA A]·[B′ ΔB]ᵀ. The nonzero
// singular values of X·Yᵀ are the square roots of the eigenvalues of S·G_Y·S, where G_X = XᵀX =
// S² and G_Y = YᵀY are k×k: the backend forms the Grams (block by block, each accurate to its
// own scale), the host takes the rest in double (LAPACK). Exact to rounding, whatever the gap
// between σ₁ and σ₂ — power iteration, whose error shrinks like (σ₂/σ₁)^(2·iterations), read
// updates 20–40 % low after 3 iterations.
#pragma once
#include "err.h"
#include "../kernels/kernels.h"

#define LOWRANK_MAX_BLOCKS 2

typedef struct LowRankProduct {
    const float *x[LOWRANK_MAX_BLOCKS], *y[LOWRANK_MAX_BLOCKS];   // each block r columns, row stride r
    int blocks, rows_x, rows_y, r;
} LowRankProduct;

// Device floats of gram scratch lowrank_spectral_norm needs for a product of `blocks` blocks
// of r columns: both k×k Grams.
size_t lowrank_gram_floats(int blocks, int r);

// ‖X·Yᵀ‖₂; gram: device scratch of lowrank_gram_floats floats. NAN (with err set) when out of
// host memory or LAPACK fails; non-finite factors give NAN too.
double lowrank_spectral_norm(const Backend *be, const LowRankProduct *p, float *gram, Err *err);
