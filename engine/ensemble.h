// ensemble.h — K models of one config trained side by side (each its own Model, Trainer,
// seed and data order), optionally coupled: WASH (Fournier et al. 2024, arXiv 2405.17517)
// randomly permutes a few coordinates across the members after a step; PAPA pulls every member
// toward the mean. Then: per-member, ensemble (averaged probabilities) and weight-averaged
// validation losses, and the averaged model itself. Factorized W = A·Bᵀ is unchanged by
// A→AQ, B→BQ (Q orthogonal), so averaging the factors is not averaging the products: both
// modes are offered (mode=factors averages A and B; mode=product averages A_i·B_iᵀ and goes
// back to rank r by truncated SVD).
//
// WASH's layer schedule. Depth d runs over L+2 positions: the embedding is the first (d = 0),
// block l is d = l+1, the final norm and the output head are the last (d = L+1). schedule
// linear gives p_d = p·(1 − d/(L+1)): p at the embedding, 0 at the head and final norm; flat
// gives p everywhere. Each step that mixes, every coordinate of a tensor at depth d is picked
// independently with probability p_d, and a picked coordinate's K values are permuted by a
// uniformly random permutation (Fisher–Yates); with opt_state the same permutation moves that
// coordinate's optimizer moments ("optim.m.NAME", "optim.v.NAME"); the per-matrix power-
// iteration vectors are not coordinate-aligned and stay with their member.
//
// Communication (what a distributed run would send), counted in values:
//   WASH: the values that change member (a picked coordinate whose permutation fixes a member
//   moves nothing for it), plus the moments moved with them under opt_state;
//   PAPA: every member sends its whole parameter vector to the mean (K·N values per pull).
//
// Where the work happens: the shuffle, PAPA and the averages run on the host, one tensor at a
// time through the backend's download/upload (fine at the sizes lrsh trains on a CPU; a
// Backend-level permutation kernel would keep it on a GPU).
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "checkpoint.h"
#include "err.h"
#include "model.h"
#include "optim.h"
#include "train.h"
#include "dataset.h"

#define ENSEMBLE_MAX_K 16

typedef enum { ENSEMBLE_INDEPENDENT, ENSEMBLE_WASH, ENSEMBLE_PAPA } EnsembleMethod;
typedef enum { WASH_LINEAR, WASH_FLAT } WashSchedule;
typedef enum { ENSEMBLE_AVG_FACTORS, ENSEMBLE_AVG_PRODUCT } EnsembleAvgMode;

// How the members are coupled after their steps.
typedef struct EnsembleCoupling {
    EnsembleMethod method;
    float p;                 // WASH: shuffle probability at the first layer, in [0, 1]
    WashSchedule schedule;
    int opt_state;           // WASH: permute the optimizer moments with the parameters
    float alpha;             // PAPA: θ_i ← (1−α)θ_i + α·mean, α in [0, 1]
    int every;               // mix after every `every`-th ensemble step (≥ 1)
} EnsembleCoupling;

// What ensemble_build makes.
typedef struct EnsembleSpec {
    int k;                       // members, 1..ENSEMBLE_MAX_K
    const uint64_t *init_seeds;  // k entries: member i's initialization seed (ModelConfig.seed)
    const uint64_t *data_seeds;  // k entries: member i's batch sampler seed (Trainer.data_rng)
    int same_init;               // 1: every member starts from member 0's weights
    const Model *from;           // non-NULL: member 0 starts from a copy of its weights
    const Trainer *from_trainer; // non-NULL (with from): member 0 continues it — its optimizer
                                 // state, step, data position and batch shape (trainer_take_state)
    int start_step;              // the members' trainers start at this step (lr schedule position)
    TrainShape start_shape;      // member 0's last update's batches, without from_trainer
    uint64_t mix_seed;           // seed of the shuffle's generator
} EnsembleSpec;

typedef struct Ensemble {
    int k;
    const Backend *be;
    Model *members;              // k models of one config
    Trainer *trainers;           // trainers[i].model == &members[i]
    uint64_t init_seeds[ENSEMBLE_MAX_K], data_seeds[ENSEMBLE_MAX_K];
    int same_init;
    EnsembleCoupling coupling;
    uint64_t mix_rng;            // the shuffle's generator (advanced by every WASH mix)
    int step;                    // ensemble steps taken
    int mixes;                   // WASH shuffles or PAPA pulls done
    long last_exchanged;         // values communicated by the last step (0 when it did not mix)
    double total_exchanged;      // over all steps
    // The ensemble's side of the members' rollback point (Trainer.good), taken with theirs
    // before every step's updates.
    struct { int step, mixes; uint64_t mix_rng; double total_exchanged; long last_exchanged; } good;
} Ensemble;

typedef struct EnsembleStepStats {
    int step;                    // the ensemble step just taken (1-based)
    StepStats member[ENSEMBLE_MAX_K];
    float mean_loss;
    int mixed;                   // this step ran WASH or PAPA
    long picked;                 // WASH: coordinates shuffled this step
    long exchanged;              // values communicated this step (see the header comment)
    double seconds, mix_seconds; // whole step, and the mixing part of it
    long tokens;                 // over all members
} EnsembleStepStats;

typedef struct EnsembleAvgReport {
    int n_matrices;              // factorized matrices truncated (mode=product)
    double mean_error, worst_error;  // ‖W̄ − A′B′ᵀ‖_F / ‖W̄‖_F over those matrices
    char worst_name[64];
} EnsembleAvgReport;

typedef struct EnsembleEval {
    int k;
    double member[ENSEMBLE_MAX_K];   // each member's validation loss
    double member_mean;
    double ensemble;             // NLL of the members' averaged probabilities
    double avg_factors;          // the factor-averaged model's loss
    double avg_product;          // the product-averaged model's loss
    EnsembleAvgReport product;   // truncation error of mode=product
} EnsembleEval;

// Defaults: independent (no coupling), p=0.05 linear, opt_state on, α=0.5, every=1.
EnsembleCoupling ensemble_coupling_default(void);
// Build k members of cfg on be with optimizer cfg opt. *e is written only on success.
int ensemble_build(Ensemble *e, const ModelConfig *cfg, const Backend *be, const OptimConfig *opt,
                   const EnsembleSpec *spec, Err *err);
void ensemble_free(Ensemble *e);
// Every member's trainer to optimizer cfg: the same optimizer keeps its state (*kept = 1);
// another is built fresh at the same step and data position (*kept = 0). All or nothing.
int ensemble_set_optimizer(Ensemble *e, const OptimConfig *cfg, int *kept, Err *err);
// Check and install a coupling (the ensemble's step count and members are kept).
int ensemble_set_coupling(Ensemble *e, const EnsembleCoupling *c, Err *err);
// Bytes the ensemble holds on its device: per member parameters, gradients, optimizer state,
// the trainer's rollback copy of them and scratch, and activations at B×T.
size_t ensemble_bytes(const Ensemble *e, int B, int T);

// One trainer_step per member (same B, T, accum; each its own batches), then WASH or PAPA
// when this step is a multiple of `every`. Every member's gradients come first: when one's loss
// or gradient is not finite, no member updates and the whole ensemble goes back to before its
// last step (every member rolled back as trainer_step does, the mixing undone), and the error
// names the member — "not finite", as a single model's divergence says.
int ensemble_step(Ensemble *e, const Dataset *ds, int B, int T, int accum, EnsembleStepStats *out, Err *err);
// The ensemble as it stands gives a non-finite loss elsewhere (`why`: a validation loss): every
// member goes back as ensemble_step's divergence takes them, and it fails saying so ("not
// finite", naming step e->step+1).
int ensemble_diverged(Ensemble *e, const char *why, Err *err);
// The first member whose parameters hold NaN or ∞ (model_params_finite), −1 when none.
int ensemble_nonfinite_member(const Ensemble *e);

// WASH's shuffle probability for tensor t of a model with `layers` blocks (see above).
float wash_tensor_prob(const TensorDesc *t, int layers, float p, WashSchedule schedule);
// One WASH shuffle over the members (and their optimizer moments when opt_state and trainers
// != NULL), drawing from *rng. *picked: coordinates shuffled; returns the values exchanged
// (a value changing member counts once, and once more for each moment moved with it), or −1
// with err set.
long wash_shuffle(Model *members, Trainer *trainers, int k, float p, WashSchedule schedule, int opt_state,
                  uint64_t *rng, long *picked, Err *err);
// The values a shuffle of e's members under coupling c exchanges on average, counted as
// wash_shuffle counts them: Σ over tensors of p_t·n_t·(K−1)·(1 + moments moved with each).
double wash_expected_exchange(const Ensemble *e, const EnsembleCoupling *c);
// One PAPA pull: θ_i ← (1−α)θ_i + α·mean (α = 1: every member becomes the mean exactly).
// Returns the values communicated (k·N), or −1 with err set.
long papa_pull(Model *members, int k, float alpha, Err *err);

// log p(target) per token (B·T, row b·T + t) of the model on tokens (B×(T+1)): a forward, then
// the logits read back and log-softmaxed on the host in double precision.
int model_token_logprobs(Model *m, const int32_t *tokens, int B, int T, double *logp, Err *err);
// The ensemble's mean NLL on these tokens: −log((1/k)·Σ_i p_i(target)), per token, averaged.
int ensemble_prob_loss(Model *members, int k, const int32_t *tokens, int B, int T, double *loss, Err *err);

// The weight average of k models of one config into *out (same backend; written only on
// success): embed, head, norms and dense matrices averaged directly; factorized matrices as
// factors (mean A, mean B) or as products (mean A_i·B_iᵀ on the host, truncated SVD to rank r,
// rep gets the truncation errors). rep may be NULL.
int models_average(Model *members, int k, EnsembleAvgMode mode, Model *out, EnsembleAvgReport *rep, Err *err);
static inline int ensemble_average(Ensemble *e, EnsembleAvgMode mode, Model *out, EnsembleAvgReport *rep,
                                   Err *err) {
    return models_average(e->members, e->k, mode, out, rep, err);
}
// Move member i (and its trainer, re-pointed at *out_model) out of the ensemble, then free the
// rest: *e is empty afterwards. out_trainer may be NULL (the trainer is freed).
int ensemble_take_member(Ensemble *e, int i, Model *out_model, Trainer *out_trainer, Err *err);

// Validation losses (`batches` batches drawn with seed, the same for every member and model):
// each member, the ensemble, and both averaged models. progress (may be NULL) hears of
// 3·batches units of work (the members' pass, then each average's) and stops it by returning
// nonzero: an error "interrupted", nothing measured.
int ensemble_eval(Ensemble *e, const Dataset *ds, int B, int T, int batches, uint64_t seed, ProgressFn progress,
                  void *ctx, EnsembleEval *out, Err *err);

// Every member's gradient on the same tokens (B×(T+1)) into its m->grads (zeroed first), and
// the k×k matrix of pairwise cosines (row-major; 1 on the diagonal) into cos.
int ensemble_grad_cosines(Ensemble *e, const int32_t *tokens, int B, int T, double *cos, Err *err);

// ---- checkpoints (checkpoint.h's ensemble layout) -------------------------------------------
// Besides the members (tensors "member.{i}.NAME", each with its optimizer state and per-member
// step, data_rng and optim_t), __metadata__ holds the ensemble's own state, so that a reload
// continues bit for bit: ensemble_method (independent|wash|papa), ensemble_wash_p,
// ensemble_wash_schedule (linear|flat), ensemble_wash_opt_state (yes|no), ensemble_papa_alpha,
// ensemble_every, ensemble_mix_rng (the shuffle generator's state), ensemble_step, ensemble_mixes,
// ensemble_last_exchanged, ensemble_exchanged (values communicated so far), ensemble_same_init,
// ensemble_init_seeds and ensemble_data_seeds (comma-separated).

// Save the whole ensemble (and tok when != NULL) to path, atomically (checkpoint_save's rules;
// opt == NULL: F32 with optimizer state).
int ensemble_save(const char *path, const Ensemble *e, const Tokenizer *tok, const CheckpointOptions *opt, Err *err);
// Validate an ensemble file, then build it on be into *out (written only on success, not freed
// first); *out_tok gets the embedded tokenizer or NULL (out_tok == NULL: not kept); info may be NULL.
int ensemble_load(const char *path, const Backend *be, Ensemble *out, Tokenizer **out_tok, CheckpointInfo *info,
                  Err *err);
// As ensemble_load from a whole file's bytes in memory (name stands for the path in messages).
int ensemble_load_bytes(const void *bytes, size_t size, const char *name, const Backend *be, Ensemble *out,
                        Tokenizer **out_tok, CheckpointInfo *info, Err *err);
