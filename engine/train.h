// train.h — the training loop pieces: one optimizer step over micro-batches with gradient
// accumulation and global-norm clipping, and evaluation on held-out batches.
#pragma once
#include <stdint.h>
#include "err.h"
#include "model.h"
#include "optim.h"
#include "dataset.h"
#include "progress.h"

typedef struct StepStats {
    int step;              // 1-based index of the update just taken
    float loss;            // mean over micro-batches
    float lr;              // the matrices' rate
    float io_lr;           // the AdamW group's: embeddings, head, norm gains
    float grad_norm;       // before clipping
    float clip_scale;      // ≤ 1; the factor applied to the gradient
    float grad_norm_clipped;  // after clipping: grad_norm·clip_scale
    double seconds;        // wall time of the whole step
    double optim_seconds;  // time in the optimizer update
    float optim_fraction;  // optim_seconds / seconds
    int diagnostics;       // the optimizer computed ‖ΔW‖₂, ‖W‖₂ this step (tr->opt.diag)
    long tokens;           // tokens processed
} StepStats;

// The batches of an update: accum micro-batches of batch × seq tokens. All 0: none taken yet.
// Step numbers are ints: the last one a trainer takes (a checkpoint that says more is refused;
// train's steps= and until= take up to 1e9 each).
#define TRAINER_LAST_STEP 2000000000

typedef struct TrainShape {
    int batch, seq, accum;
} TrainShape;

// Where a trainer stood before an update: with the parameters and optimizer state copied then,
// everything a rollback puts back.
typedef struct TrainerMark {
    int step;              // updates taken
    uint64_t data_rng;     // the batch sampler before that update's batches
    TrainShape shape;
    int n_history;
    int opt_t, opt_diag_t; // the optimizer's update count and last diagnostics update
} TrainerMark;

typedef struct Trainer {
    Model *model;
    Optimizer opt;
    int step;              // updates taken so far
    TrainShape shape;      // the last update's (a checkpoint keeps it, so a resume can repeat it)
    uint64_t data_rng;     // state of the batch sampler (advances every micro-batch)
    uint64_t step_rng;     // data_rng before the batches of the step in progress
    int diag_every;        // measure ‖ΔW‖₂, ‖W‖₂ at steps that are multiples of it (0: never)
    int diag_also_every;   // and at multiples of this (`watch` of the optimizer's σ, ρ; 0: none)
    int diag_next;         // and at the next update, whatever its number (then cleared)
    ProgressFn stop;       // asked between micro-batches (done, accum): non-zero stops the step,
    void *stop_ctx;        // which takes no update (NULL: never asked)
    // The rollback point, taken before every update: the parameters (also the `before` of the
    // update's ΔW), the optimizer's m, v and power-iteration vectors, and the rest in `good`.
    float *good_params;
    float *good_state;     // (2·n_params + opt.n_vec) floats
    TrainerMark good;
    int has_good;          // the rollback point is set
    StepStats *history;    // one entry per step taken
    int n_history, cap_history;
} Trainer;

int trainer_build(Trainer *tr, Model *m, const OptimConfig *cfg, uint64_t seed, Err *err);
// Bytes a model in training holds for its n_params: parameters, gradients, the two moments and
// the rollback copy of the three — seven copies (the optimizer's vectors, scratch and the
// activations aside).
size_t trainer_model_bytes(size_t n_params);
void trainer_free(Trainer *tr);
// One update from accum micro-batches of B×T. A non-finite loss or gradient takes no update
// and undoes the update before it, the one that broke the model: the trainer goes back to
// where it stood then (trainer_roll_back), and the error names the step and says so. With the
// same settings the next step repeats that update exactly; another lr (or optimizer) tries
// another way.
int trainer_step(Trainer *tr, const Dataset *ds, int B, int T, int accum, StepStats *out, Err *err);
// trainer_step's two halves, for callers that must see every model's gradients before any
// updates (an ensemble): the gradients and their checks (a non-finite loss or gradient rolls
// back as trainer_step does, and fails), then the update from them. *s carries the step's
// stats from the first to the second.
int trainer_gradients(Trainer *tr, const Dataset *ds, int B, int T, int accum, StepStats *s, Err *err);
int trainer_update(Trainer *tr, int B, int T, int accum, StepStats *s, Err *err);
// The data position back to where trainer_gradients began: its batches are drawn again by the
// next step (a step that took no update must not move the data, so a seed's losses repeat).
static inline void trainer_redraw_batches(Trainer *tr) { tr->data_rng = tr->step_rng; }
// Put back the parameters, optimizer state, step, data position and history of before the
// last update. Returns the step gone back to, or −1 when there is no rollback point (no update
// yet since the trainer was built).
int trainer_roll_back(Trainer *tr);
// `to`, just built on from's model with another optimizer, goes on where `from` stands: its
// step, data position and batch shape, and its rollback point — with to's fresh optimizer
// state, as if this optimizer had been chosen there — so a divergence right after a switch
// still undoes the old optimizer's last update.
void trainer_continue(Trainer *to, const Trainer *from);
// `to`, just built with from's optimizer on a model of the same layout (a copy of from's model),
// takes from's optimizer state (moments, power-iteration vectors, update count), step, data
// position and batch shape, so that it goes on as `from` would. Not its rollback point or
// history: those describe from's model, and an ensemble's members must roll back together.
void trainer_take_state(Trainer *to, const Trainer *from);
// The trainer stands at its rollback point: the last thing it did was a rollback (an update
// moves it past the point, and the next update takes a new one).
static inline int trainer_rolled_back(const Trainer *tr) { return tr->has_good && tr->step == tr->good.step; }
// The model as it stands gives a non-finite loss elsewhere (`why`: a validation loss): roll back
// as a failed step would, and fail with the same message ("not finite", naming step tr->step+1).
int trainer_diverged(Trainer *tr, const char *why, Err *err);
// Mean validation loss over `batches` batches drawn with `seed` (the same batches every call).
int trainer_eval(Model *m, const Dataset *ds, int B, int T, int batches, uint64_t seed, double *val_loss, Err *err);
// The same, reporting batches done; progress may stop it: then it fails, saying so, with the
// mean over the batches done in *val_loss and their count in *done (done < batches).
int trainer_eval_progress(Model *m, const Dataset *ds, int B, int T, int batches, uint64_t seed,
                          ProgressFn progress, void *ctx, double *val_loss, int *done, Err *err);
