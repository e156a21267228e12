// optim_internal.h — what optim.c and optim_step.c share; not public.
#pragma once
#include "optim.h"
#include "optim_linalg.h"
#include "model_internal.h"

// The update rule of one tensor (see the table in optim.h).
typedef enum { RULE_SGD, RULE_ADAMW, RULE_MUON, RULE_SPECTRON, RULE_RENORM } Rule;
Rule tensor_rule(OptimKind kind, TensorRole role);

// Offsets (floats) of the scratch areas in Optimizer.work, sized for the model's largest tensors.
typedef struct WorkLayout {
    size_t x, ns;  // slots of orthogonalized directions (x_each floats) and their Newton–Schulz
    size_t x_each, ns_each;   // scratch (ns_each): for the largest matrix
    int slots;     // matrices orthogonalized side by side: 2 to NS5_MAX_BATCH, within ORTHO_BUDGET
    size_t prev;   // A and B before the update (diagnostics)
    size_t pw;     // power-iteration scratch
    size_t pw_all; // the same for every factor at once: Σ (rows + cols) over the factors
    size_t eye;    // an eye_n×eye_n identity for newton_schulz5, written at build
    int eye_n;     // the largest min(rows, cols) of a matrix
    size_t total;
} WorkLayout;
void work_layout(const Model *m, WorkLayout *w);

// Floats the orthogonalization slots may take together (more slots: more matrices per batch,
// so fewer, larger batches of launches on a GPU); at least two slots (a matrix's A and B).
#define ORTHO_BUDGET (16u << 20)

// Power-iteration steps for the diagnostics ‖ΔW‖₂ and ‖W‖₂ (warm-started).
#define DIAG_POWER_ITERS 3
