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
    float lr;
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
typedef struct TrainShape {
    int batch, seq, accum;
} TrainShape;

typedef struct Trainer {
    Model *model;
    Optimizer opt;
    int step;              // updates taken so far
    TrainShape shape;      // the last update's (a checkpoint keeps it, so a resume can repeat it)
    uint64_t data_rng;     // state of the batch sampler (advances every micro-batch)
    float *good_params;    // device copy of the last parameters known to give a finite loss
    int has_good;          // good_params holds a snapshot (taken before every update)
    StepStats *history;    // one entry per step taken
    int n_history, cap_history;
} Trainer;

int trainer_build(Trainer *tr, Model *m, const OptimConfig *cfg, uint64_t seed, Err *err);
void trainer_free(Trainer *tr);
// One update from accum micro-batches of B×T. A non-finite loss or gradient takes no update:
// the parameters go back to the last ones that gave a finite loss (the snapshot taken before
// the previous update), and the error names the step.
int trainer_step(Trainer *tr, const Dataset *ds, int B, int T, int accum, StepStats *out, Err *err);
// trainer_step's two halves, for callers that must see every model's gradients before any
// updates (an ensemble): the gradients and their checks (a non-finite loss or gradient rolls
// back as trainer_step does, and fails), then the update from them. *s carries the step's
// stats from the first to the second.
int trainer_gradients(Trainer *tr, const Dataset *ds, int B, int T, int accum, StepStats *s, Err *err);
int trainer_update(Trainer *tr, int B, int T, int accum, StepStats *s, Err *err);
// Mean validation loss over `batches` batches drawn with `seed` (the same batches every call).
int trainer_eval(Model *m, const Dataset *ds, int B, int T, int batches, uint64_t seed, double *val_loss, Err *err);
// The same, reporting batches done; progress may stop it: then it fails, saying so, with the
// mean over the batches done in *val_loss and their count in *done (done < batches).
int trainer_eval_progress(Model *m, const Dataset *ds, int B, int T, int batches, uint64_t seed,
                          ProgressFn progress, void *ctx, double *val_loss, int *done, Err *err);
