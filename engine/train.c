// train.c — one optimizer step over accumulated micro-batches, and evaluation.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "clock.h"
#include "train.h"

// Floats of the optimizer state a rollback point copies: m, v, then the power-iteration vectors.
static size_t state_floats(const Trainer *tr) { return 2 * tr->model->n_params + tr->opt.n_vec; }

size_t trainer_model_bytes(size_t n_params) { return 7 * n_params * sizeof(float); }

int trainer_build(Trainer *tr, Model *m, const OptimConfig *cfg, uint64_t seed, Err *err) {
    memset(tr, 0, sizeof *tr);
    tr->model = m;
    tr->data_rng = seed;
    if (optimizer_build(&tr->opt, m, cfg, err)) return -1;
    tr->good_params = m->be->alloc(m->n_params * sizeof(float));
    tr->good_state = m->be->alloc(state_floats(tr) * sizeof(float));
    if (!tr->good_params || !tr->good_state) {
        double mb = (m->n_params + state_floats(tr)) * 4.0 / 1e6;
        trainer_free(tr);
        return err_set(err, "out of memory for the %.1f MB rollback copy of the parameters and optimizer state", mb);
    }
    return 0;
}

void trainer_free(Trainer *tr) {
    if (tr->model) {
        optimizer_free(&tr->opt, tr->model);
        tr->model->be->release(tr->good_params);
        tr->model->be->release(tr->good_state);
    }
    free(tr->history);
    memset(tr, 0, sizeof *tr);
}

static void record(Trainer *tr, const StepStats *s) {
    if (tr->n_history == tr->cap_history) {
        int cap = tr->cap_history ? 2 * tr->cap_history : 256;
        StepStats *grown = realloc(tr->history, sizeof *tr->history * (size_t)cap);
        if (!grown) return;   // out of memory: the history keeps what it has (nothing reads it to train)
        tr->history = grown, tr->cap_history = cap;
    }
    tr->history[tr->n_history++] = *s;
}

// Forward and backward over accum micro-batches; the mean loss in *loss.
static int accumulate_gradients(Trainer *tr, const Dataset *ds, int B, int T, int accum, float *loss, Err *err) {
    Model *m = tr->model;
    int32_t *tokens = malloc(sizeof(int32_t) * B * (T + 1));
    if (!tokens) return err_set(err, "out of memory for %d×%d tokens", B, T + 1);
    double total = 0;
    int rc = 0;
    model_zero_grad(m);
    for (int i = 0; i < accum && rc == 0; i++) {
        float l = 0;
        rc = dataset_batch(ds, 0, B, T, &tr->data_rng, tokens, err);
        if (rc == 0) rc = model_forward_backward(m, tokens, B, T, 1.0f / accum, &l, err);
        total += l;   // a failed forward's non-finite loss too: the caller rolls back on it
        if (rc == 0 && i + 1 < accum && tr->stop && tr->stop(tr->stop_ctx, i + 1, accum))   // accum=1e6 is hours
            rc = err_set(err, "interrupted after %d of %d micro-batches", i + 1, accum);
    }
    free(tokens);
    *loss = (float)(total / accum);
    return rc;
}

// The optimizer's state as it is now into the rollback point.
static void keep_optimizer_state(Trainer *tr) {
    const Backend *be = tr->model->be;
    size_t n = tr->model->n_params;
    be->copy(tr->good_state, tr->opt.m, n * sizeof(float));
    be->copy(tr->good_state + n, tr->opt.v, n * sizeof(float));
    if (tr->opt.n_vec) be->copy(tr->good_state + 2 * n, tr->opt.vec, tr->opt.n_vec * sizeof(float));
}

// The rollback point: where the trainer stands now, before the update it is about to take.
static void take_rollback_point(Trainer *tr) {
    const Model *m = tr->model;
    m->be->copy(tr->good_params, m->params, m->n_params * sizeof(float));
    keep_optimizer_state(tr);
    tr->good = (TrainerMark){tr->step, tr->step_rng, tr->shape, tr->n_history, tr->opt.t, tr->opt.diag_t};
    tr->has_good = 1;
}

void trainer_continue(Trainer *to, const Trainer *from) {
    to->step = from->step;
    to->data_rng = from->data_rng;
    to->shape = from->shape;
    to->diag_every = from->diag_every;
    to->diag_also_every = from->diag_also_every;
    if (!from->has_good) return;
    const Model *m = to->model;
    m->be->copy(to->good_params, from->good_params, m->n_params * sizeof(float));
    keep_optimizer_state(to);   // this optimizer, fresh: as if chosen at the rollback point
    to->good = from->good;
    to->good.n_history = 0;     // the history is the old trainer's
    to->good.opt_t = to->opt.t, to->good.opt_diag_t = to->opt.diag_t;
    to->has_good = 1;
}

void trainer_take_state(Trainer *to, const Trainer *from) {
    const Backend *be = to->model->be;
    size_t n = to->model->n_params;
    be->copy(to->opt.m, from->opt.m, n * sizeof(float));
    be->copy(to->opt.v, from->opt.v, n * sizeof(float));
    if (to->opt.n_vec) be->copy(to->opt.vec, from->opt.vec, to->opt.n_vec * sizeof(float));
    to->opt.t = from->opt.t;
    to->step = from->step;
    to->data_rng = from->data_rng;
    to->shape = from->shape;
}

int trainer_roll_back(Trainer *tr) {
    if (!tr->has_good) return -1;
    Model *m = tr->model;
    const Backend *be = m->be;
    size_t n = m->n_params;
    be->copy(m->params, tr->good_params, n * sizeof(float));
    be->copy(tr->opt.m, tr->good_state, n * sizeof(float));
    be->copy(tr->opt.v, tr->good_state + n, n * sizeof(float));
    if (tr->opt.n_vec) be->copy(tr->opt.vec, tr->good_state + 2 * n, tr->opt.n_vec * sizeof(float));
    tr->step = tr->good.step;
    tr->data_rng = tr->good.data_rng;
    tr->shape = tr->good.shape;
    tr->n_history = tr->good.n_history;
    tr->opt.t = tr->good.opt_t;
    tr->opt.diag_t = tr->good.opt_diag_t;
    for (int i = 0; i < tr->opt.n_diag; i++) {   // they described the update just undone
        MatrixDiag *d = &tr->opt.diag[i];
        d->sigma_a = d->sigma_b = d->rho = d->dw_norm = d->w_norm = NAN;
    }
    return tr->step;
}

// Step `step` went non-finite: undo the update before it, which broke the model, and say so.
static int roll_back(Trainer *tr, int step, const char *why, Err *err) {
    int back = trainer_roll_back(tr);
    if (back < 0) return err_set(err, "step %d: %s; no update taken", step, why);
    return err_set(err, "step %d: %s; update %d made the model non-finite: rolled back to step %d (parameters, "
                   "optimizer state and data position as they were before it)", step, why, back + 1, back);
}

int trainer_diverged(Trainer *tr, const char *why, Err *err) { return roll_back(tr, tr->step + 1, why, err); }

int trainer_gradients(Trainer *tr, const Dataset *ds, int B, int T, int accum, StepStats *s, Err *err) {
    Model *m = tr->model;
    if (accum < 1) return err_set(err, "accum=%d: must be at least 1", accum);
    if (tr->step >= TRAINER_LAST_STEP) return err_set(err, "step %d is the last one lrsh counts to", tr->step);
    *s = (StepStats){.step = tr->step + 1, .tokens = (long)B * T * accum};
    s->seconds = -clock_seconds();   // trainer_update adds its end
    tr->step_rng = tr->data_rng;
    if (accumulate_gradients(tr, ds, B, T, accum, &s->loss, err)) {
        trainer_redraw_batches(tr);   // no update taken (a rollback below goes further back)
        if (backend_failed(m->be, err)) return -1;   // the cause, rather than its garbage loss
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        if (!isfinite(s->loss)) return roll_back(tr, s->step, why, err);
        return err_set(err, "step %d: %s; no update taken", s->step, why);
    }
    s->grad_norm = (float)sqrt(m->be->sumsq(m->grads, (long)m->n_params));
    if (!isfinite(s->grad_norm)) {
        trainer_redraw_batches(tr);
        return roll_back(tr, s->step, "the gradient norm is not finite", err);
    }
    return 0;
}

// An update that failed midway (an allocation, a GPU fault) left some tensors and moments
// updated and others not, and the optimizer's t advanced: none of it stays.
static int undo_update(Trainer *tr, Err *err) {
    trainer_roll_back(tr);
    Err again;   // a fault that lost a GPU's context fails the copies back too: not undone, then
    if (backend_failed(tr->model->be, &again)) {
        char after[sizeof again.msg + 128];
        snprintf(after, sizeof after, "; the update could not be undone (%s): the model's weights are not to be "
                 "trusted — `model load` a checkpoint", again.msg);
        return err_wrap(err, "", after);
    }
    return err_wrap(err, "", "; the update was undone (the model as before this step)");
}

int trainer_update(Trainer *tr, int B, int T, int accum, StepStats *s, Err *err) {
    Model *m = tr->model;
    float clip = tr->opt.cfg.clip;
    s->clip_scale = clip > 0 && s->grad_norm > clip ? clip / s->grad_norm : 1.0f;
    s->grad_norm_clipped = s->grad_norm * s->clip_scale;
    s->lr = optimizer_lr(&tr->opt.cfg, tr->step);
    s->io_lr = optimizer_io_lr(&tr->opt.cfg, tr->step);
    // these parameters gave a finite loss: the point to come back to if this update breaks them
    take_rollback_point(tr);
    int next = tr->step + 1, diag = (tr->diag_every > 0 && next % tr->diag_every == 0) ||
                                    (tr->diag_also_every > 0 && next % tr->diag_also_every == 0) || tr->diag_next;
    tr->diag_next = 0;
    m->be->synchronize();   // a GPU's queued work counts where it was queued
    double t1 = clock_seconds();
    int failed = optimizer_step(&tr->opt, m, s->lr, s->io_lr, s->clip_scale, diag ? tr->good_params : NULL, err);
    m->be->synchronize();
    double t2 = clock_seconds();
    if (!failed) failed = backend_failed(m->be, err);
    if (failed) return undo_update(tr, err);
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
    if (!tokens) return err_set(err, "out of memory for %d×%d tokens", B, T + 1);
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
