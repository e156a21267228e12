// optim.h — optimizers over the model's tensor table, grouped by role, and the learning-rate
// schedule (linear warm-up, then cosine decay to min_lr_ratio·lr over `horizon` steps).
#pragma once
#include "err.h"
#include "model.h"

typedef struct OptimConfig {
    char name[16];       // "adamw"
    float lr, min_lr_ratio, wd, beta1, beta2, eps, clip;
    int warmup;          // steps of linear warm-up
    int horizon;         // step at which cosine decay reaches min_lr (0: constant after warm-up)
} OptimConfig;

typedef struct Optimizer {
    OptimConfig cfg;
    float *m, *v;        // device moment buffers, laid out like the parameters
    int t;               // updates taken (bias correction)
} Optimizer;

// Defaults of optimizer `name`; an unknown name is an error listing the known ones.
int optim_config_default(OptimConfig *cfg, const char *name, Err *err);
int optim_config_set(OptimConfig *cfg, const char *key, const char *value, Err *err);
int optimizer_build(Optimizer *opt, const Model *m, const OptimConfig *cfg, Err *err);
void optimizer_free(Optimizer *opt, const Model *m);
float optimizer_lr(const OptimConfig *cfg, int step);   // step is 0-based
// One update of every tensor with gradients scaled by grad_scale; weight decay by role
// (none on norm gains).
int optimizer_step(Optimizer *opt, Model *m, float lr, float grad_scale, Err *err);
