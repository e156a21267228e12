// optim.h — optimizers over the model's tensor table, grouped by role, and the learning-rate
// schedule (linear warm-up, then cosine decay to min_lr_ratio·lr over `horizon` steps).
//
// Which rule updates which tensor:
//   optimizer   embed/head/norm   dense W        factors A, B
//   sgd         SGD               SGD            SGD
//   adamw       AdamW             AdamW          AdamW                  (the unstable baseline)
//   muon        AdamW(adam_lr)    Muon           Muon on each factor
//   ortho       AdamW(adam_lr)    Muon           Muon on each factor    (ablation: no renormalization)
//   spectron    AdamW(adam_lr)    Muon           Spectron: NS5 direction, step ρ = lr/(σ_A+σ_B+1)
//   renorm      AdamW(adam_lr)    AdamW(adam_lr) AdamW direction, step ρ (ablation: no orthogonalization)
// `lr` is the matrices' rate (all tensors under sgd and adamw); adam_lr follows the same
// schedule (adam_lr·lr_t/lr). No weight decay on norm gains; decoupled decay everywhere else,
// with the unscaled lr on factors (A ← A − lr·wd·A) whatever the step size.
#pragma once
#include <stddef.h>
#include "err.h"
#include "model.h"

// A new optimizer: a kind here (before OPTIM_COUNT's), its name in optim_names, its options'
// kinds in optim.c, its rules in tensor_rule — the compiler and a static assertion name the rest.
typedef enum { OPTIM_SGD, OPTIM_ADAMW, OPTIM_MUON, OPTIM_SPECTRON, OPTIM_RENORM, OPTIM_ORTHO } OptimKind;
#define OPTIM_COUNT (OPTIM_ORTHO + 1)

// The optimizer names optim_config_default knows, by kind, NULL-terminated.
extern const char *const optim_names[];

// The kind of an optimizer name, or -1 when there is none.
int optim_kind_of(const char *name);

typedef struct OptimConfig {
    char name[16];       // one of optim_names
    OptimKind kind;
    float lr, min_lr_ratio, wd, beta1, beta2, eps, clip;
    int warmup;          // steps of linear warm-up
    int horizon;         // step at which cosine decay reaches min_lr (0: constant after warm-up)
    float adam_lr;       // muon, ortho, spectron, renorm: the AdamW group's rate
    float momentum;      // sgd, muon, ortho, spectron: β of the momentum buffer
    int nesterov;        // 1: step along G + β(M − G) (sgd: G + βM) instead of M
    int ns_steps;        // Newton–Schulz iterations
    int power_iters;     // spectron, renorm: power-iteration steps per σ per update
    int shape_scale;     // 1: multiply a matrix's step by √max(1, rows/cols) (Muon's shape factor)
    int exact_polar;     // test-only: the exact polar factor U·Vᵀ (host SVD) in place of NS5
} OptimConfig;

// Spectral diagnostics of one factorized matrix W = A·Bᵀ for the last update.
typedef struct MatrixDiag {
    char name[64];       // the matrix, "blocks.0.attn.wq" (its tensors are NAME.A, NAME.B)
    int tensor_a, tensor_b;
    int rows, cols, rank;
    float sigma_a, sigma_b;  // ‖A‖₂, ‖B‖₂ before the update (power iteration); NAN when not computed
    float rho;           // step size on the factors: lr/(σ_A+σ_B+1) under spectron/renorm, lr otherwise
    float dw_norm;       // ‖ΔW‖₂, ΔW = A'·B'ᵀ − A·Bᵀ (exact, never formed: lowrank_norm.h); NAN when off
    float dw_over_eta;   // dw_norm / lr: ≤ 1 is Spectron's bound
    float w_norm;        // ‖W‖₂ after the update; NAN when off
    size_t vec_at;       // (internal) offset of this matrix's vectors in Optimizer.vec
} MatrixDiag;

// One named piece of optimizer state on the device, for checkpoints.
typedef struct StateTensor {
    char name[96];       // "optim.m.blocks.0.attn.wq.A", "optim.v.embed", "optim.pv.blocks.0.attn.wq.A", …
    float *data;         // device pointer
    int rows, cols;      // shape; numel = rows·cols
    long numel;
    int tensor;          // the parameter tensor it belongs to (the A factor for per-matrix vectors)
    int required;        // 1: later updates depend on it; 0: only diagnostics do
} StateTensor;

typedef struct Optimizer {
    OptimConfig cfg;
    float *m, *v;        // device buffers laid out like the parameters: momentum or AdamW first
                         // moment, AdamW second moment (v stays zero where no rule uses it)
    float *vec;          // device: per factorized matrix, power-iteration vectors (see state tensors)
    float *work;         // device scratch, not state
    size_t n_vec, n_work;
    int t;               // updates taken (bias correction)
    MatrixDiag *diag;    // one per factorized matrix, rewritten by every optimizer_step
    int n_diag;
    int diag_t;          // t of the last update that computed dw_norm and w_norm (0: none yet)
    float last_lr, last_wd;   // the last update's matrix rate (diag's η) and weight decay: `optim`
                              // may change cfg's since
    int batch_cap;       // (tests) at most this many matrices per orthogonalization batch (0: all that fit)
} Optimizer;

// Defaults of optimizer `name`; an unknown name is an error listing the known ones.
int optim_config_default(OptimConfig *cfg, const char *name, Err *err);
// Set one option; an option this optimizer does not take is an error naming it.
int optim_config_set(OptimConfig *cfg, const char *key, const char *value, Err *err);
// The i-th option (0-based) cfg's optimizer takes, NULL past the last: for help, completion
// and checkpoints (with optim_config_get / optim_config_set, a config round-trips as text).
const char *optim_config_key(const OptimConfig *cfg, int i);
// The values option `key` takes, as help shows them ("number 0..10", "integer 1..20", "on|off")
// in buf, or NULL for an unknown key.
const char *optim_config_range(const char *key, char *buf, size_t cap);
// Option `key`'s value as text ("0.02", "on", "5").
int optim_config_get(const OptimConfig *cfg, const char *key, char *buf, size_t cap, Err *err);

// Fresh state for cfg over m (zero moments; power-iteration vectors warmed on m's factors).
int optimizer_build(Optimizer *opt, const Model *m, const OptimConfig *cfg, Err *err);
void optimizer_free(Optimizer *opt, const Model *m);
// The floats optimizer_build would give cfg over m beside its two moments: the power-iteration
// vectors (n_vec) and the scratch (n_work) — for a memory estimate before any is built.
void optimizer_sizes(const Model *m, const OptimConfig *cfg, size_t *n_vec, size_t *n_work);
// New settings for the optimizer opt runs (the same one): its state's layout depends only on the
// model, so the moments, power-iteration vectors and t stay; another optimizer is an error.
int optimizer_retune(Optimizer *opt, const OptimConfig *cfg, Err *err);
float optimizer_lr(const OptimConfig *cfg, int step);   // step is 0-based
// The rate at that step of the tensors updated by AdamW (embeddings, head, norm gains): lr's
// under sgd and adamw, else adam_lr on the same schedule.
float optimizer_io_lr(const OptimConfig *cfg, int step);
// The rate a tensor of this role moved at in a step at lr (io_lr: the AdamW group's, as above):
// io_lr for the tensors AdamW updates — renorm's dense matrices among them — lr for the rest.
float optimizer_tensor_lr(OptimKind kind, TensorRole role, float lr, float io_lr);
// One update of every tensor with gradients scaled by grad_scale, at matrix rate lr and rate
// io_lr for the AdamW group (optimizer_lr and optimizer_io_lr of the step); fills
// opt->diag (ρ always; σ under spectron and renorm, which need it; dw_norm, w_norm — and σ for
// the others, exactly — when `before`, the parameters before this update, laid out like
// m->params on the device, as a trainer keeps them anyway, is given).
int optimizer_step(Optimizer *opt, Model *m, float lr, float io_lr, float grad_scale, const float *before, Err *err);

// The state tensors (device pointers into opt), in a fixed order. Writes up to cap entries
// into out and returns how many there are (call with cap 0 to count). Restoring every one
// of them, and opt->t, continues a run bit for bit.
int optimizer_state_tensors(const Optimizer *opt, const Model *m, StateTensor *out, int cap);
// One line on what the state holds, e.g. "momentum (1.2M values) + AdamW moments (2 × 2.2M
// values) + power-iteration vectors (4.6k values)" — what a switch of optimizer resets.
void optimizer_state_describe(const Optimizer *opt, const Model *m, char *buf, size_t cap);
