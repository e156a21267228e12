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
    size_t x, x2;  // the orthogonalized directions of A and B (or of a matrix): the largest matrix
    size_t ns, ns2;  // Newton–Schulz scratch for each
    size_t prev;   // A and B before the update (diagnostics)
    size_t pw;     // power-iteration scratch
    size_t eye;    // an eye_n×eye_n identity for newton_schulz5, written at build
    int eye_n;     // the largest min(rows, cols) of a matrix
    size_t total;
} WorkLayout;
void work_layout(const Model *m, WorkLayout *w);

// Power-iteration steps for the diagnostics ‖ΔW‖₂ and ‖W‖₂ (warm-started).
#define DIAG_POWER_ITERS 3
