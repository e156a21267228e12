// train.c — one optimizer step over accumulated micro-batches, and evaluation.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "clock.h"
#include "train.h"

int trainer_build(Trainer *tr, Model *m, const OptimConfig *cfg, uint64_t seed, Err *err) {
    memset(tr, 0, sizeof *tr);
    tr->model = m;
    tr->data_rng = seed;
    tr->good_params = m->be->alloc(m->n_params * sizeof(float));
    if (!tr->good_params) return err_set(err, "out of memory for a %.1f MB parameter snapshot", m->n_params * 4.0 / 1e6);
    if (optimizer_build(&tr->opt, m, cfg, err)) {
        m->be->release(tr->good_params);
        return -1;
    }
    return 0;
}

void trainer_free(Trainer *tr) {
    if (tr->model) {
        optimizer_free(&tr->opt, tr->model);
        tr->model->be->release(tr->good_params);
    }
    free(tr->history);
    memset(tr, 0, sizeof *tr);
}

static void record(Trainer *tr, const StepStats *s) {
    if (tr->n_history == tr->cap_history) {
        tr->cap_history = tr->cap_history ? 2 * tr->cap_history : 256;
        tr->history = realloc(tr->history, sizeof *tr->history * tr->cap_history);
    }
    tr->history[tr->n_history++] = *s;
}

// Forward and backward over accum micro-batches; the mean loss in *loss.
static int accumulate_gradients(Trainer *tr, const Dataset *ds, int B, int T, int accum, float *loss, Err *err) {
    Model *m = tr->model;
    int32_t *tokens = malloc(sizeof(int32_t) * B * (T + 1));
    double total = 0;
    int rc = 0;
    model_zero_grad(m);
    for (int i = 0; i < accum && rc == 0; i++) {
        float l = 0;
        rc = dataset_batch(ds, 0, B, T, &tr->data_rng, tokens, err);
        if (rc == 0) rc = model_forward_backward(m, tokens, B, T, 1.0f / accum, &l, err);
        total += l;
    }
    free(tokens);
    *loss = (float)(total / accum);
    return rc;
}

// A step went non-finite: put back the last parameters that gave a finite loss, and say which.
static int roll_back(Trainer *tr, int step, const char *why, Err *err) {
    if (!tr->has_good) return err_set(err, "step %d: %s; no update taken", step, why);
    Model *m = tr->model;
    m->be->copy(m->params, tr->good_params, m->n_params * sizeof(float));
    return err_set(err, "step %d: %s; parameters restored to those before update %d (the last with a finite loss)",
                   step, why, tr->step);
}

int trainer_gradients(Trainer *tr, const Dataset *ds, int B, int T, int accum, StepStats *s, Err *err) {
    Model *m = tr->model;
    if (accum < 1) return err_set(err, "accum=%d: must be at least 1", accum);
    *s = (StepStats){.step = tr->step + 1, .tokens = (long)B * T * accum};
    s->seconds = -clock_seconds();   // trainer_update adds its end
    if (accumulate_gradients(tr, ds, B, T, accum, &s->loss, err)) {
        if (backend_failed(m->be, err)) return -1;   // the cause, rather than its garbage loss
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        if (!isfinite(s->loss)) return roll_back(tr, s->step, why, err);
        return err_set(err, "step %d: %s; no update taken", s->step, why);
    }
    s->grad_norm = (float)sqrt(m->be->sumsq(m->grads, (long)m->n_params));
    if (!isfinite(s->grad_norm)) return roll_back(tr, s->step, "the gradient norm is not finite", err);
    // these parameters gave a finite loss: keep them in case the update breaks them
    m->be->copy(tr->good_params, m->params, m->n_params * sizeof(float));
    tr->has_good = 1;
    return 0;
}

int trainer_update(Trainer *tr, int B, int T, int accum, StepStats *s, Err *err) {
    Model *m = tr->model;
    float clip = tr->opt.cfg.clip;
    s->clip_scale = clip > 0 && s->grad_norm > clip ? clip / s->grad_norm : 1.0f;
    s->grad_norm_clipped = s->grad_norm * s->clip_scale;
    s->lr = optimizer_lr(&tr->opt.cfg, tr->step);
    m->be->synchronize();   // a GPU's queued work counts where it was queued
    double t1 = clock_seconds();
    if (optimizer_step(&tr->opt, m, s->lr, s->clip_scale, tr->good_params, err)) return -1;   // the snapshot: ΔW
    m->be->synchronize();
    double t2 = clock_seconds();
    if (backend_failed(m->be, err)) return -1;
    tr->step++;
    tr->shape = (TrainShape){B, T, accum};
    s->optim_seconds = t2 - t1;
    s->seconds += t2;
    s->optim_fraction = (float)(s->optim_seconds / s->seconds);
    s->diagnostics = tr->opt.diag_t == tr->opt.t;
    record(tr, s);
    return 0;
}

int trainer_step(Trainer *tr, const Dataset *ds, int B, int T, int accum, StepStats *out, Err *err) {
    StepStats s;
    if (trainer_gradients(tr, ds, B, T, accum, &s, err) || trainer_update(tr, B, T, accum, &s, err)) return -1;
    if (out) *out = s;
    return 0;
}

int trainer_eval(Model *m, const Dataset *ds, int B, int T, int batches, uint64_t seed, double *val_loss, Err *err) {
    int done;
    return trainer_eval_progress(m, ds, B, T, batches, seed, NULL, NULL, val_loss, &done, err);
}

int trainer_eval_progress(Model *m, const Dataset *ds, int B, int T, int batches, uint64_t seed,
                          ProgressFn progress, void *ctx, double *val_loss, int *done, Err *err) {
    *done = 0;
    if (batches < 1) return err_set(err, "batches=%d: must be at least 1", batches);
    int32_t *tokens = malloc(sizeof(int32_t) * B * (T + 1));
    uint64_t rng = seed;
    double total = 0;
    int rc = 0, stopped = 0;
    while (*done < batches && rc == 0 && !stopped) {
        float l = 0;
        rc = dataset_batch(ds, 1, B, T, &rng, tokens, err);
        if (rc == 0) rc = model_forward(m, tokens, B, T, &l, err);
        if (rc == 0) total += l, ++*done;
        stopped = rc == 0 && progress && progress(ctx, *done, batches) && *done < batches;
    }
    free(tokens);
    if (rc == 0) rc = backend_failed(m->be, err);
    if (rc == 0 && *done > 0) *val_loss = total / *done;   // over the batches done, if stopped
    if (rc == 0 && stopped) rc = err_set(err, "eval interrupted after %d of %d batches", *done, batches);
    return rc;
}
