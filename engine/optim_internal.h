// optim_internal.h — what optim.c and optim_step.c share; not public.
#pragma once
#include "optim.h"
#include "optim_linalg.h"
#include "model_internal.h"
#include "lowrank_norm.h"

// The update rule of one tensor (see the table in optim.h).
typedef enum { RULE_SGD, RULE_ADAMW, RULE_MUON, RULE_SPECTRON, RULE_RENORM } Rule;
Rule tensor_rule(OptimKind kind, TensorRole role);

// Offsets (floats) of the scratch areas in Optimizer.work, sized for the model's tensors.
typedef struct WorkLayout {
    size_t ortho;         // the orthogonalization area: matrices to orthogonalize side by side,
    size_t ortho_floats;  // each with its Newton–Schulz scratch (ortho_slot); 0 if none is
    size_t delta;  // ΔA and ΔB of one matrix (diagnostics)
    size_t gram, gram_floats;   // the Grams of a round of the diagnostics' exact norms
    size_t pw;     // power-iteration scratch
    size_t pw_all; // the same for every factor at once: Σ (rows + cols) over the factors
    size_t eye;    // an eye_n×eye_n identity for newton_schulz5, written at build
    int eye_n;     // the largest min(rows, cols) of a matrix
    size_t total;
} WorkLayout;
void work_layout(const Model *m, OptimKind kind, WorkLayout *w);
// Floats one rows×cols matrix takes in the orthogonalization area: itself and its scratch.
size_t ortho_slot(int rows, int cols);
// How many rows×cols matrices the area holds at once (≥ 2 for every shape the kind
// orthogonalizes: a factor pair, A and B, always fits), at most NS5_MAX_BATCH.
int ortho_slots(const WorkLayout *w, int rows, int cols);

// Floats the orthogonalization area may take (more room: more matrices of a shape per batch,
// so fewer, larger batches of launches on a GPU — GPT-2's 132 factors of 768×192 in one).
// The area is never more than the largest shape's matrices need together, nor less than two
// of the largest.
#define ORTHO_BUDGET (64u << 20)

// Matrices whose Grams one round of the diagnostics holds (WorkLayout.gram): one download and
// one parallel host pass per round.
#define DIAG_CHUNK 16

// Floats of one matrix's Grams in a round of the diagnostics (rank r): ΔW's (two blocks), W′'s
// and W's before the update (one each; the last gives the exact σ_A, σ_B).
static inline size_t diag_gram_floats(int r) { return lowrank_gram_floats(2, r) + 2 * lowrank_gram_floats(1, r); }
