// inspect.h — what a user looks at while a model trains: the singular values of one matrix
// (`spectrum`), norms of every matrix and of its last update (`norms`, `watch`), and a small
// store of earlier spectra (`spectrum PARAM compare=STEP`). Never prints; every call returns
// 0, or −1 with err set.
//
// Names (DESIGN.md): "blocks.{i}.attn.{wq,wk,wv,wo}", "blocks.{i}.mlp.{w1,w2,w3}" mean the matrix
// W (dense, or W = A·Bᵀ when factorized); "NAME.A" / "NAME.B" one factor as a matrix of its
// own; "embed" and "head" the dense vocab×dim matrices. Norm gains are vectors, not matrices.
//
// A factorized W is never formed: its singular values come from the QR factors of A and B,
// its spectral and Frobenius norms from the factors' r×r Grams (lowrank_norm.h); a dense
// matrix's spectral norm comes from its Gram the same way, exact rather than a lower bound.
#pragma once
#include <stddef.h>
#include "err.h"
#include "model.h"
#include "optim.h"

// One matrix the inspection commands know, in tensor-table order.
typedef struct InspectMatrix {
    char name[64];           // "blocks.0.attn.wq", "embed", "head"
    int rows, cols;          // W is rows×cols (out×in)
    int rank;                // 0: dense (one tensor); > 0: W = A·Bᵀ with A rows×rank, B cols×rank
    int tensor_a, tensor_b;  // tensor indices: W or A, and B (−1 when dense)
    int layer;               // block index, −1 for embed and head
} InspectMatrix;

// The matrices of m: every block matrix in table order, then "embed" and "head" (when
// include_io). Writes up to cap entries and returns how many there are (cap 0 counts).
int inspect_matrices(const Model *m, int include_io, InspectMatrix *out, int cap);
// Resolve a name as the shell accepts it (a matrix, NAME.A, NAME.B, embed, head). An unknown
// name is an error with up to three close names ("did you mean …").
int inspect_resolve(const Model *m, const char *name, InspectMatrix *out, Err *err);

// ---------------------------------------------------------------------------------------------
// spectrum

typedef struct SpectrumResult {
    char param[64];
    int rows, cols, rank;    // rank 0: dense
    int n;                   // values: min(rows, cols, rank or ∞) — W has at most n non-zero ones
    float *values;           // n singular values, largest first (malloc'ed; spectrum_result_free)
    double spectral_norm;    // σ₁
    double frobenius_norm;   // √Σσᵢ²
    double stable_rank;      // ‖W‖_F²/‖W‖₂² = Σσᵢ²/σ₁² (0 for W = 0)
    double effective_rank;   // Roy & Vetterli: exp(−Σ pᵢ log pᵢ), pᵢ = σᵢ/Σσⱼ (0 for W = 0)
    double condition_number; // σ₁/σₙ; INFINITY when σₙ ≤ numerical_zero (rank-deficient)
    double numerical_zero;   // σ ≤ this counts as 0: σ₁·max(rows, cols)·FLT_EPSILON
    int numerical_rank;      // values above numerical_zero
} SpectrumResult;

// All singular values of the named matrix, and the summaries above. Downloads the matrix;
// dense W is decomposed directly, factorized W through QR(A), QR(B) and the small core.
int inspect_spectrum(const Model *m, const char *param_name, SpectrumResult *out, Err *err);
void spectrum_result_free(SpectrumResult *r);
// Host core of the factorized case: the min(rows, cols, r) singular values of W = A·Bᵀ
// (A rows×r, B cols×r, row-major) without forming W: A = Q_A·R_A, B = Q_B·R_B (sgeqrf), then
// W = Q_A·(R_A·R_Bᵀ)·Q_Bᵀ has the singular values of the small core R_A·R_Bᵀ (sgesdd).
// s receives min(rows, cols, r) values, largest first.
int lowrank_singular_values(const float *a, const float *b, int rows, int cols, int r, float *s, Err *err);
// Fill the summaries of r from r->values (n of them, descending). For tests and callers that
// have values from elsewhere (e.g. a SpectrumHistory record).
void spectrum_summarize(SpectrumResult *r);

// ---------------------------------------------------------------------------------------------
// norms of every matrix, and of its last update

typedef struct NormRow {
    InspectMatrix mat;
    double spectral;         // ‖W‖₂, exact (lowrank_spectral_norm, dense_spectral_norm)
    double frobenius;        // ‖W‖_F; factorized: √tr((AᵀA)(BᵀB))
    double stable_rank;      // frobenius²/spectral²
    double dw_spectral;      // ‖ΔW‖₂, ΔW = W_now − W_prev, exact; NAN without prev
    double dw_over_eta;      // ‖ΔW‖₂/η; NAN without prev or lr ≤ 0
    float eta;               // that η: the rate the matrix moved at (optimizer_tensor_lr)
    double dw_over_w;        // ‖ΔW‖₂/‖W‖₂ (W now); NAN without prev
} NormRow;

typedef struct NormsOptions {
    const float *prev;       // device, laid out like m->params: the parameters before the step
                             // (NULL: no ΔW columns). See inspect_snapshot.
    float lr;                // that step's matrix rate (optimizer_lr), and
    float io_lr;             // its AdamW group's (optimizer_io_lr): a matrix's η in ‖ΔW‖₂/η is
    OptimKind kind;          // the one its optimizer moved it at (optimizer_tensor_lr; left 0,
                             // OPTIM_SGD, every row's η is lr)
    int include_io;          // 1: also rows for embed and head
} NormsOptions;

// One row per matrix (*rows malloc'ed, *n of them; free()). Power iteration starts from a
// fixed vector, so repeated calls on the same weights agree bit for bit. Never forms a
// factorized W or ΔW: ΔW·v = A′(B′ᵀv) − A(Bᵀv). A dense ΔW (embed, head) is formed in scratch.
int inspect_norms_opts(const Model *m, const NormsOptions *opt, NormRow **rows, int *n, Err *err);
// The block matrices' norms without update columns (inspect_norms_opts with defaults).
int inspect_norms(const Model *m, NormRow **rows, int *n, Err *err);
// The same with the ΔW columns against prev (device, like m->params), step size lr.
int inspect_norms_delta(const Model *m, const float *prev, float lr, NormRow **rows, int *n, Err *err);

// A device copy of a params-shaped buffer (m->n_params floats), e.g. src = m->params just
// before optimizer_step, or src = m->grads just after a backward (align's `delayed`).
// Intended use for ‖ΔW‖₂: before the step `inspect_snapshot(m, m->params, &prev, err)` (or
// refresh an existing one with be->copy), after it `inspect_norms_delta(m, prev, lr, …)`;
// inspect_snapshot_free(m, prev) then. Costs one device buffer the size of the model.
int inspect_snapshot(const Model *m, const float *src, float **dst, Err *err);
void inspect_snapshot_free(const Model *m, float *snapshot);   // NULL: nothing

// ---------------------------------------------------------------------------------------------
// spectra kept across steps (`spectrum PARAM compare=STEP`): the shell keeps one per session

typedef struct SpectrumRecord {
    int step;
    char param[64];
    int n;
    float *values;           // n values, largest first
} SpectrumRecord;

typedef struct SpectrumHistory {
    SpectrumRecord *rec;
    int n, cap;
} SpectrumHistory;             // zero-initialized is empty

// Keep a copy of values for (step, param), replacing an earlier record of the same pair.
int spectrum_history_record(SpectrumHistory *h, int step, const char *param, const float *values, int n, Err *err);
// Record the spectrum of every block matrix of m at step (inspect_spectrum for each).
int spectrum_history_record_all(SpectrumHistory *h, const Model *m, int step, Err *err);
// The record for exactly (step, param), or NULL.
const SpectrumRecord *spectrum_history_lookup(const SpectrumHistory *h, int step, const char *param);
// The record of param whose step is closest to step (ties: the earlier), leaving out step skip
// (−1: none), or NULL when none.
const SpectrumRecord *spectrum_history_nearest(const SpectrumHistory *h, int step, const char *param, int skip);
void spectrum_history_free(SpectrumHistory *h);
