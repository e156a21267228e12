// optim_linalg.h — the device linear algebra the optimizers need, computed through the Backend
// only (so CUDA works unchanged): Newton–Schulz orthogonalization (NS5),
// power iteration on operators that are never formed (W, A·Bᵀ, A'·B'ᵀ − A·Bᵀ), and a host SVD
// polar factor used by tests as the exact reference for NS5.
#pragma once
#include <stddef.h>
#include "err.h"
#include "../kernels/kernels.h"

// Muon's quintic coefficients: fast growth of small singular values, limit cycle in ~[0.7, 1.2].
#define NS5_A 3.4445f
#define NS5_B (-4.7750f)
#define NS5_C 2.0315f

// Floats of scratch newton_schulz5 needs for an m×n matrix.
size_t newton_schulz5_work(int m, int n);
// X(m×n) ← NS5(X/‖X‖_F) in place, `steps` iterations of the Gram form on the smaller side
// (tall: S = XᵀX, X ← aX + X(bS + cS²); wide: S = XXᵀ, X ← aX + (bS + cS²)X), carried out on
// k×k matrices, k = min(m, n): O(m·n·k + steps·k³). eye: a device identity of at least k×k,
// row stride eye_ld (its top-left k×k block is used).
void newton_schulz5(const Backend *be, float *x, int m, int n, int steps, float *work, const float *eye, int eye_ld);
// The same for up to NS5_MAX_BATCH matrices at once, each with its own work: the matrices go
// in lockstep, every stage's products run as one Backend.gemm_batch (on the CPU side by side,
// one per core: its k×k products are too small to split well) and its copies as one strided
// add_matrix when the matrices and their work are evenly spaced (as the optimizer lays them).
#define NS5_MAX_BATCH 256   // GPT-2 has 132 factors of one shape; the arrays of a batch live on the stack
typedef struct NS5Job { float *x; int m, n; float *work; } NS5Job;
void newton_schulz5_batch(const Backend *be, const NS5Job *jobs, int count, int steps, const float *eye, int eye_ld);
// X(m×n) ← U·Vᵀ from an SVD on the host (X = U·S·Vᵀ): the exact polar factor. Slow; tests only.
int polar_exact(const Backend *be, float *x, int m, int n, Err *err);

// An operator on R^cols → R^rows that power iteration applies without forming it:
// dense (rank 0): a is rows×cols; low-rank: a·bᵀ with a rows×rank, b cols×rank;
// difference (a0, b0 non-NULL): a·bᵀ − a0·b0ᵀ.
typedef struct LinOp {
    int rows, cols, rank;
    const float *a, *b, *a0, *b0;
} LinOp;

// Estimate ‖op‖₂ by `iters` steps warm-started from the unit vector v (cols), which is left at
// the new estimate of the top right singular vector. Each step: z = op·v, y = opᵀ·z,
// σ = ‖y‖/‖z‖ (≤ ‖op‖₂, and ≥ ‖op·v‖), v = y/‖y‖. A zero operator gives 0 and keeps v.
float power_iteration(const Backend *be, const LinOp *op, float *v, int iters, float *work);
// The same for count operators of rank 0 together (the factors' σ in every Spectron step):
// each step's products one gemm_batch, its norms one sumsq_batch, the new v's one axpby_batch,
// so a GPU waits once per step instead of twice per operator. sigma[j] is what power_iteration
// gives for ops[j] (to the bit on the CPU; a GPU's norms may round apart in the last bits).
// work: Σ (rows + cols) floats. Returns 0, or −1 out of memory.
int power_iteration_batch(const Backend *be, const LinOp *ops, float *const *v, int count, int iters, float *work,
                          float *sigma);
