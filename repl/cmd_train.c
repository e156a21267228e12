// cmd_train.c — the training commands: train, step, eval; and the benchmarks, bench train and
// bench generate.
#include <math.h>
#include <string.h>
#include "commands.h"
#include "output.h"

typedef struct Shape { int B, T, accum; } Shape;

static int batch_shape(const Session *s, const Args *a, Shape *sh, Err *err) {
    return session_batch_shape(s, a, &sh->B, &sh->T, &sh->accum, err);
}

void train_note_other_data(Session *s) {
    DataIdentity was = s->resume_data, now = dataset_identity(&s->data);
    s->resume_data = (DataIdentity){0};   // said once: training on other data may be the point
    if (was.tokens <= 0) return;
    if (was.tokens != now.tokens || was.train != now.train)
        out_note(s, "note: the loaded model was training on data of %ld tokens (%ld to train on); this data has %ld "
                    "(%ld): its batches are not the ones the run would have taken\n", was.tokens, was.train,
                 now.tokens, now.train);
    else if (was.hash && was.hash != now.hash)
        out_note(s, "note: the loaded model was training on other tokens of the same size (%ld): its batches are "
                    "not the ones the run would have taken\n", now.tokens);
}

// A model and data that fit each other; token ids past the model's vocabulary would index
// outside its embedding.
static int need_model_and_data(Session *s, Err *err) {
    if (session_need_model(s, err) != 0 || session_need_data(s, err) != 0) return -1;
    train_note_other_data(s);
    if (s->data.vocab_size > s->model.cfg.vocab)
        return err_set(err, "the data's vocabulary (%d) is larger than the model's (%d): run `model new` "
                       "without vocab= (it then takes the tokenizer's)", s->data.vocab_size, s->model.cfg.vocab);
    if (s->model_tok)   // the same size, other pieces: the numbers are of a model reading other text
        out_note(s, "note: this data is in the session's tokenizer, not the one the model learned (its own is kept "
                    "for `model save`): `tok load` that one and `data load` again, or `model new` for this one\n");
    return 0;
}

// A model, data and a trainer, and the batch shape a step takes: the shape checked before the
// trainer is built, so that a refused shape does not first say "trainer built".
static int need_trainer(Session *s, const Args *a, Shape *sh, Err *err) {
    if (need_model_and_data(s, err) != 0 || batch_shape(s, a, sh, err) != 0) return -1;
    return session_need_trainer(s, err);
}

// The last update's spectral summary over the factorized matrices, for the run's history:
// max ‖ΔW‖₂/η and ρ, mean σ_A and σ_B, each NAN when no matrix had it this step (a dense
// model's ‖ΔW‖₂/η: inspect_dense_dw_over_eta).
static StepDiag step_diag(const Optimizer *o) {
    StepDiag d = {NAN, NAN, NAN, NAN};
    double sa = 0, sb = 0;
    int na = 0, nb = 0;
    for (int i = 0; i < o->n_diag; i++) {
        const MatrixDiag *g = &o->diag[i];
        if (isfinite(g->dw_over_eta) && !(g->dw_over_eta <= d.dw_over_eta)) d.dw_over_eta = g->dw_over_eta;
        if (isfinite(g->rho) && !(g->rho <= d.rho)) d.rho = g->rho;
        if (isfinite(g->sigma_a)) sa += g->sigma_a, na++;
        if (isfinite(g->sigma_b)) sb += g->sigma_b, nb++;
    }
    if (na) d.sigma_a = (float)(sa / na);
    if (nb) d.sigma_b = (float)(sb / nb);
    return d;
}

// What the run records of the step just taken: the optimizer's summary, a dense model's
// ‖ΔW‖₂/η from its norms. After inspect_after_step (a watched value is taken instead).
static StepDiag recorded_diag(Session *s, const StepStats *st) {
    StepDiag d = step_diag(&s->trainer.opt);
    if (!isfinite(d.dw_over_eta)) d.dw_over_eta = inspect_dense_dw_over_eta(s, st);
    return d;
}

// The engine went back to before the update that broke the model (trainer_step and
// ensemble_step say "not finite" for a loss and a gradient alike).
int train_diverged(const Err *err) { return strstr(err->msg, "not finite") != NULL; }

int train_rolled_back_to(const Trainer *tr) { return trainer_rolled_back(tr) ? tr->step : -1; }

void train_report_divergence(Session *s, int attempt, int back_to, const char *after, Err *err) {
    session_record_divergence(s, attempt, back_to);
    out_text(s, "diverged: %s%s\n", err->msg, after);
    cJSON_AddStringToObject(s->result, "reason", err->msg);
    err->msg[0] = '\0';
}

int train_failed(Err *err, const char *what, int done, int steps) {
    char after[80];
    snprintf(after, sizeof after, " (%s stopped after %d of %d steps)", what, done, steps);
    return done > 0 ? err_wrap(err, "", after) : -1;
}

// ---- train --------------------------------------------------------------------------------

typedef struct Run {
    int done;           // steps taken in this run (and kept: a rollback takes one back)
    long tokens;
    double seconds;     // training's, the evaluations' and saves' apart: tok/s is the training rate
    double eval_seconds;
    int evals;
    // A step's seconds as the live rate and ETA take them: the first step left out (it pays
    // first-touch allocation, ~5× a later one), then the mean of the later ones up to 20, then
    // a moving average over about the last 20 — a machine that slows down shows within seconds,
    // not after the run's whole length (an ETA 25 % off after 20 s of a 230 s run)
    double recent_step_seconds;
    StepStats last, before_last;
    int diverged_at;    // the step that was not finite (0: none)
    int val_missed;     // an eval_every= step whose evaluation a stop cut short or skipped (0: none)
} Run;

// A divergence at step `attempt` (its loss or gradient, or the validation loss of the model
// before it, not finite): the engine went back; the run and this command's count follow, and
// the result says why. A result, not a failure: the model is intact and a script comparing
// runs goes on.
static void stop_diverged(Session *s, Run *r, int attempt, int steps, Err *err) {
    r->diverged_at = attempt;
    int back_to = train_rolled_back_to(&s->trainer);
    if (back_to == attempt - 2 && r->done > 0) r->done--, r->last = r->before_last;   // this command's, undone
    char after[64];
    snprintf(after, sizeof after, "; training stopped after %d of %d steps", r->done, steps);
    train_report_divergence(s, attempt, back_to, after, err);
}

// The evaluations eval_every= still owes after this run's r->done of steps: this step's own (it
// runs after the progress line), the multiples of eval_every among the steps to come, and one
// after the last step when it is not one.
static int evals_left(const Run *r, int eval_every, int steps) {
    if (eval_every <= 0) return 0;
    int now = r->last.step, end = now + (steps - r->done);
    int this_one = now % eval_every == 0 || r->done == steps;
    if (r->done >= steps) return this_one;
    return this_one + end / eval_every - now / eval_every + (end % eval_every != 0);
}

static void note_step_seconds(Run *r, double step_seconds) {
    if (r->done < 2) return;
    double w = fmax(1.0 / (r->done - 1), 0.05);
    r->recent_step_seconds += w * (step_seconds - r->recent_step_seconds);
}
static double live_step_seconds(const Run *r) { return r->done > 1 ? r->recent_step_seconds : r->seconds; }
static double live_rate(const Run *r) {   // the batches stay the same through a command
    double step = live_step_seconds(r);
    return step > 0 ? (double)r->last.tokens / step : 0;
}

static void train_report(Session *s, const Run *r, int steps, int interrupted) {
    s->reported = 1;
    double rate = r->seconds > 0 ? (double)r->tokens / r->seconds : 0;
    char t[32], d[32];
    if (interrupted)
        out_text(s, "interrupted%s at step %d (%d of %d steps); the model keeps every step taken\n",
                 session_stop_cause(), r->done ? r->last.step : s->trainer.step, r->done, steps);
    char e[48] = "";
    if (r->evals)
        snprintf(e, sizeof e, " (+ %s for %d evaluation%s)", fmt_elapsed(t, sizeof t, r->eval_seconds), r->evals,
                 r->evals == 1 ? "" : "s");
    if (r->done)
        out_text(s, "step %d: loss %s, %s tok/s, %s for %d step%s%s\n", r->last.step, LOSS_TEXT(r->last.loss),
                 fmt_count(t, sizeof t, rate), fmt_elapsed(d, sizeof d, r->seconds), r->done, r->done == 1 ? "" : "s",
                 e);
    cJSON_AddNumberToObject(s->result, "steps", r->done);
    cJSON_AddNumberToObject(s->result, "step", s->trainer.step);
    const char *last[] = {"loss", "lr", "grad_norm"};   // the last step taken's: none is null, not 0
    double value[] = {r->last.loss, r->last.lr, r->last.grad_norm};
    for (int i = 0; i < 3; i++) {
        if (r->done) json_add_real(s->result, last[i], value[i]);
        else cJSON_AddNullToObject(s->result, last[i]);
    }
    train_result_end(s, r->done, rate, r->seconds, r->eval_seconds, interrupted, r->diverged_at);
}

// An error after r->done steps: they are reported (said, and in --json's partial) before it.
static int run_failed(Session *s, const Run *r, Progress *p, int steps, Err *err) {
    progress_end(p);
    if (r->done) train_report(s, r, steps, 0);
    return train_failed(err, "training", r->done, steps);
}

void eval_note_rereads(Session *s, int batches, int B, int T) {
    long val = s->data.n_tokens - s->data.n_train;
    double read = (double)batches * B * T;
    if (read > 2.0 * val)   // the windows overlap: more batches only repeat the same tokens
        out_note(s, "note: the validation split has %ld tokens and %s %d batch%s read%s %.0f: each about %.0f "
                    "times over (`data load val=` holds out more)\n", val, batches == 1 ? "this" : "these",
                 batches, batches == 1 ? "" : "es", batches == 1 ? "s" : "", read, read / val);
}

void train_result_end(Session *s, int done, double rate, double seconds, double eval_seconds, int interrupted,
                      int diverged_at) {
    if (done) json_add_real(s->result, "tok_per_s", rate);
    else cJSON_AddNullToObject(s->result, "tok_per_s");   // no step: no rate, as generate's
    json_add_real(s->result, "seconds", seconds);
    json_add_real(s->result, "eval_seconds", eval_seconds);
    cJSON_AddBoolToObject(s->result, "interrupted", interrupted);
    if (session_stop_signal()) cJSON_AddStringToObject(s->result, "signal", session_stop_signal());
    cJSON_AddBoolToObject(s->result, "diverged", diverged_at != 0);
    if (diverged_at) cJSON_AddNumberToObject(s->result, "diverged_at", diverged_at);
    const RunSeries *run = s->runs.current >= 0 ? &s->runs.runs[s->runs.current] : NULL;
    if (!run) return;
    cJSON_AddStringToObject(s->result, "run", run->name);
    cJSON_AddNumberToObject(s->result, "spikes", run->spikes);
    if (isfinite(run->max_dw_over_eta)) json_add_real(s->result, "max_dw_over_eta", run->max_dw_over_eta);
    else cJSON_AddNullToObject(s->result, "max_dw_over_eta");
}

// eval_every's evaluation after the step just taken, into the run and the result's val list.
// Returns 0 to go on, 1 when the run stops (Ctrl-C in it; a validation loss not finite: the
// step rolled back), −1 on failure (the steps taken stay, and the error says how many).
static int train_eval_point(Session *s, Run *r, const Shape *sh, int eval_batches, int steps, Progress *p,
                            cJSON *val, Err *err) {
    double loss, e0 = now_seconds();
    int batches_done;
    if (trainer_eval_progress(&s->model, &s->data, sh->B, sh->T, eval_batches, EVAL_BATCH_SEED,
                              progress_stop_on_interrupt, NULL, &loss, &batches_done, err) != 0) {
        progress_end(p);
        if (lrsh_interrupted) {   // Ctrl-C in the evaluation: the steps stay, the val is not taken
            err->msg[0] = '\0';
            r->eval_seconds += now_seconds() - e0;
            r->val_missed = r->last.step;
            return 1;
        }
        if (!train_diverged(err)) return run_failed(s, r, p, steps, err);
        char why[sizeof err->msg];   // "the loss is not finite (NaN)" of the validation batches
        snprintf(why, sizeof why, "the validation %.400s", strncmp(err->msg, "the ", 4) == 0 ? err->msg + 4 : err->msg);
        trainer_diverged(&s->trainer, why, err);
        stop_diverged(s, r, r->last.step + 1, steps, err);
        return 1;
    }
    r->eval_seconds += now_seconds() - e0;
    r->evals++;
    session_record_val(s, r->last.step, loss);
    progress_end(p);
    out_text(s, "step %d: val loss %s\n", r->last.step, LOSS_TEXT(loss));
    cJSON *v = cJSON_CreateObject();
    cJSON_AddNumberToObject(v, "step", r->last.step);
    json_add_real(v, "val_loss", loss);
    cJSON_AddItemToArray(val, v);
    return 0;
}

// An update whose loss and gradient were finite can still leave NaN or ∞ in the parameters
// (lr=10): only the next step finds it (and rolls it back), so say so now.
static void warn_nonfinite_params(Session *s) {
    if (!model_params_finite(&s->model))
        out_warning(s, "this update left NaN or infinite values in the parameters: the next step rolls it back");
}

int train_steps_asked(Session *s, const Args *a, int step_now, int *steps, Err *err) {
    int has_steps = args_has(a, "steps"), has_until = args_has(a, "until");
    if (has_steps && has_until) return err_set(err, "steps= and until= both say how far to train: give one");
    if (!has_steps && !has_until)
        return err_set(err, "train needs steps=N or until=STEP (e.g. train steps=100, train until=6000)");
    if (has_steps) {
        *steps = (int)args_int(a, "steps", 1);
        return 0;
    }
    long until = args_int(a, "until", 1);
    *steps = until > step_now ? (int)(until - step_now) : 0;
    if (!*steps) {   // a resume script run again: done, not an error
        out_note(s, "the model is at step %d, at or past until=%ld: nothing to train (steps=N trains on)\n", step_now,
                 until);
        cJSON_AddNumberToObject(s->result, "steps", 0);
        cJSON_AddNumberToObject(s->result, "step", step_now);
    }
    return 0;
}

int cmd_train(Session *s, const Args *a, Err *err) {
    Shape sh;
    int steps;
    if (s->has_ensemble) return ensemble_cmd_train(s, a, err);   // trains every member
    if (train_steps_asked(s, a, s->has_trainer ? s->trainer.step : s->resume.step, &steps, err) != 0) return -1;
    if (!steps) return 0;
    if (need_trainer(s, a, &sh, err) != 0) return -1;
    int eval_every = (int)args_int(a, "eval_every", 0), eval_batches = (int)args_int(a, "eval_batches", 20);
    Shape eval_sh = sh;   // without eval_every= unused: `set seq` is not held to the context then
    if (eval_every > 0 && session_eval_shape(s, &eval_sh.B, &eval_sh.T, err) != 0) return -1;
    s->trainer.diag_every = (int)args_int(a, "diag_every", 10);
    s->trainer.diag_also_every = inspect_watch_diag_every(s);   // watched σ and ρ on every watch step
    TrainSave save;
    if (train_save_begin(s, a, &save, err) != 0) return -1;
    cJSON *val = eval_every > 0 ? cJSON_AddArrayToObject(s->result, "val") : NULL;
    Run r = {0};
    Progress p;
    inspect_record_spectra(s);  // `spectrum PARAM compare=STEP` can look back at this step
    progress_begin(&p, s, steps);
    p.extra = inspect_live_text(s);
    double t0 = now_seconds();
    s->trainer.stop = progress_stop_on_interrupt;   // Ctrl-C within a step of many micro-batches
    while (r.done < steps && !lrsh_interrupted) {
        int attempt = s->trainer.step + 1;
        StepStats prev = r.last;
        // the last step measures too, so that `inspect` after `train` reads the update it ended on
        s->trainer.diag_next = r.done + 1 == steps && s->trainer.diag_every > 0;
        if (trainer_step(&s->trainer, &s->data, sh.B, sh.T, sh.accum, &r.last, err) != 0) {
            inspect_after_step(s, NULL, 0);
            progress_end(&p);
            if (lrsh_interrupted) {   // stopped within a step: it took no update, the steps before stay
                err->msg[0] = '\0';
                break;
            }
            if (!train_diverged(err)) return run_failed(s, &r, &p, steps, err);
            stop_diverged(s, &r, attempt, steps, err);
            break;
        }
        r.before_last = prev;
        r.done++;
        r.tokens += r.last.tokens;
        double before = r.seconds;
        r.seconds = now_seconds() - t0 - r.eval_seconds - save.seconds;
        note_step_seconds(&r, r.seconds - before);
        inspect_after_step(s, &r.last, 1);  // `watch` values of this step, before it is recorded
        StepDiag d = recorded_diag(s, &r.last);
        session_record_step(s, &r.last, r.last.seconds > 0 ? (double)r.last.tokens / r.last.seconds : 0, &d);
        // an evaluation: as long as the last ones, or before any, a forward pass a batch (a third of a step's)
        double per_step = live_step_seconds(&r), per_eval = r.evals ? r.eval_seconds / r.evals
                                                                  : eval_batches * per_step / (3.0 * sh.accum) *
                                                                        eval_sh.B * eval_sh.T / ((double)sh.B * sh.T);
        int end = r.last.step + steps - r.done;
        double eta = per_step * (steps - r.done) + evals_left(&r, eval_every, steps) * per_eval +
                     (save.count ? train_saves_left(&save, r.last.step, end) * save.seconds / save.count : 0);
        progress_update(&p, r.done, r.last.step, r.last.loss, live_rate(&r), eta);
        if (eval_every > 0 && (r.last.step % eval_every == 0 || r.done == steps)) {
            int rc = lrsh_interrupted ? (r.val_missed = r.last.step, 1)   // stopped in the step: no eval
                                      : train_eval_point(s, &r, &eval_sh, eval_batches, steps, &p, val, err);
            if (rc < 0) return -1;
            if (rc > 0) break;
        }
        if (train_save_after_step(s, &save, r.last.step, end, &p, err) != 0)
            return run_failed(s, &r, &p, steps, err);
    }
    progress_end(&p);
    if (r.done) inspect_record_spectra(s);
    train_report(s, &r, steps, (r.done < steps || lrsh_interrupted) && !r.diverged_at);
    if (r.val_missed) {   // a resumed run starts after it: nothing measures it later
        out_note(s, "note: step %d's evaluation was cut short by the stop: no val loss there (`eval` measures it now)\n",
                 r.val_missed);
        cJSON_AddNumberToObject(s->result, "val_missed_step", r.val_missed);
    }
    if (train_save_end(s, &save, r.done, s->trainer.step, err) != 0)
        return train_failed(err, "training", r.done, steps);
    if (r.done && !r.diverged_at) warn_nonfinite_params(s);
    if (p.live && p.extra && p.extra[0])   // the live line may have had no room for them all
        out_text(s, "watched: %s\n", p.extra);
    return 0;
}

// ---- step ---------------------------------------------------------------------------------

int cmd_step(Session *s, const Args *a, Err *err) {
    Shape sh;
    StepStats st;
    if (s->has_ensemble)
        return err_set(err, "an ensemble is training: `train steps=1` steps every member (or `ensemble use I` first)");
    if (need_trainer(s, a, &sh, err) != 0) return -1;
    Optimizer *o = &s->trainer.opt;
    int every = s->trainer.diag_every, attempt = s->trainer.step + 1;
    s->trainer.diag_every = 1;  // this step measures ‖ΔW‖₂ and ‖W‖₂ of every factorized matrix
    s->trainer.stop = progress_stop_on_interrupt;   // Ctrl-C between its micro-batches: no update
    if (s->trainer.step == 0) inspect_record_spectra(s);   // `compare=0` after stepping, as after `train`
    int rc = trainer_step(&s->trainer, &s->data, sh.B, sh.T, sh.accum, &st, err);
    s->trainer.diag_every = every;
    inspect_after_step(s, rc == 0 ? &st : NULL, rc == 0);
    if (rc != 0 && !train_diverged(err)) return -1;
    if (rc != 0) {   // a result, as in `train`: the model is intact and a script goes on
        train_report_divergence(s, attempt, train_rolled_back_to(&s->trainer), "", err);
        cJSON_AddBoolToObject(s->result, "diverged", 1);
        cJSON_AddNumberToObject(s->result, "diverged_at", attempt);
        cJSON_AddNumberToObject(s->result, "step", s->trainer.step);
        cJSON_AddStringToObject(s->result, "optim", o->cfg.name);
        static const char *const none[] = {"loss", "lr", "grad_norm", "grad_norm_clipped", "clip_scale", "tokens",
                                           "seconds", "optim_seconds", "optim_fraction", "tok_per_s"};
        for (size_t i = 0; i < sizeof none / sizeof *none; i++)   // the same keys: no update was taken
            cJSON_AddNullToObject(s->result, none[i]);
        cJSON_AddArrayToObject(s->result, "matrices");
        return 0;
    }
    cJSON_AddBoolToObject(s->result, "diverged", 0);
    warn_nonfinite_params(s);
    double rate = st.seconds > 0 ? (double)st.tokens / st.seconds : 0;
    StepDiag d = recorded_diag(s, &st);
    session_record_step(s, &st, rate, &d);
    char r[32];
    out_text(s, "step          %d (%s)\nloss          %s\nlr            %.4g\ngrad norm     %.4g before clipping, "
                "%.4g after (clip scale %.3f)\ntokens        %ld (batch %d × seq %d × accum %d)\n"
                "seconds       %.3f, optimizer %.3f (%.1f%% of the step)\ntok/s         %s\n",
             st.step, o->cfg.name, LOSS_TEXT(st.loss), st.lr, st.grad_norm, st.grad_norm_clipped, st.clip_scale, st.tokens, sh.B,
             sh.T, sh.accum, st.seconds, st.optim_seconds, 100.0 * st.optim_fraction, fmt_count(r, sizeof r, rate));
    const char *watched = inspect_live_text(s);
    int at = -1;
    if (sscanf(watched, "[step %d]", &at) == 1 && at == st.step)   // a `watch` step: what it measured
        out_text(s, "watched       %s\n", watched);
    cJSON_AddNumberToObject(s->result, "step", st.step);
    cJSON_AddStringToObject(s->result, "optim", o->cfg.name);
    json_add_real(s->result, "loss", st.loss);
    json_add_real(s->result, "lr", st.lr);
    json_add_real(s->result, "grad_norm", st.grad_norm);
    json_add_real(s->result, "grad_norm_clipped", st.grad_norm_clipped);
    json_add_real(s->result, "clip_scale", st.clip_scale);
    cJSON_AddNumberToObject(s->result, "tokens", (double)st.tokens);
    json_add_real(s->result, "seconds", st.seconds);
    json_add_real(s->result, "optim_seconds", st.optim_seconds);
    json_add_real(s->result, "optim_fraction", st.optim_fraction);
    json_add_real(s->result, "tok_per_s", rate);
    optim_diag_table(s, s->result);
    return 0;
}

// ---- eval ---------------------------------------------------------------------------------

int cmd_eval(Session *s, const Args *a, Err *err) {
    Shape sh;
    if (s->has_ensemble) return cmd_ensemble_eval(s, a, err);   // members, ensemble, averages
    if (need_model_and_data(s, err) != 0 || batch_shape(s, a, &sh, err) != 0) return -1;
    int batches = (int)args_int(a, "batches", 20), done;
    double loss;
    ProgressLine pl;
    progress_line_begin(&pl, s, "eval", "batches", 1);
    int rc = trainer_eval_progress(&s->model, &s->data, sh.B, sh.T, batches, EVAL_BATCH_SEED, progress_engine,
                                   &pl, &loss, &done, err);
    progress_end(&pl.p);
    int interrupted = rc != 0 && lrsh_interrupted && done > 0 && done < batches;
    if (rc != 0 && !interrupted && train_diverged(err))   // finite parameters can overflow too (lr=10)
        return err_wrap(err, "", s->trainer.has_good ? ": the model diverged (`norms` shows its matrices' sizes); the "
                                 "next training step rolls its last update back" : ": the model holds NaN or ∞, or its "
                                 "activations overflow (`norms` shows its matrices' sizes)");
    if (rc != 0 && !interrupted) return -1;
    double ppl = exp(loss);
    int step = s->has_trainer ? s->trainer.step : s->resume.step;
    if (interrupted)   // a mean over fewer batches is another estimate: shown, not put in the run
        out_text(s, "interrupted after %d of %d batches: val loss %s  perplexity %.2f over those (step %d; not "
                    "recorded in the run)\n", done, batches, LOSS_TEXT(loss), ppl, step);
    else {
        session_record_val(s, step, loss);
        out_text(s, "val loss %s  perplexity %.2f  (step %d; %d batch%s of %d×%d tokens)\n", LOSS_TEXT(loss), ppl, step, batches,
                 batches == 1 ? "" : "es", sh.B, sh.T);
        eval_note_rereads(s, batches, sh.B, sh.T);
    }
    json_add_real(s->result, "val_loss", loss);
    json_add_real(s->result, "ppl", ppl);
    cJSON_AddNumberToObject(s->result, "step", step);
    cJSON_AddNumberToObject(s->result, "batches", done);
    cJSON_AddNumberToObject(s->result, "tokens", (double)done * sh.B * sh.T);
    cJSON_AddNumberToObject(s->result, "val_tokens", (double)(s->data.n_tokens - s->data.n_train));
    cJSON_AddBoolToObject(s->result, "interrupted", interrupted);
    return 0;
}

// ---- bench train --------------------------------------------------------------------------

// The JSON object of a bench line: ok, command, and which run it was.
static cJSON *bench_json(const char *command, const char *shape, const char *model) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddTrueToObject(o, "ok");
    cJSON_AddStringToObject(o, "command", command);
    cJSON_AddStringToObject(o, "shape", shape);
    cJSON_AddStringToObject(o, "model", model);
    return o;
}

static cJSON *bench_train_json(const char *command, const BenchResult *r) {
    cJSON *o = bench_json(command, r->shape, r->model);
    cJSON_AddStringToObject(o, "optim", r->optim);
    return o;
}

// RSS growth for a table: "–" when none was seen (the build reused memory freed before, as
// after an earlier bench in the same session), not "0 B".
static const char *rss_cell(char *buf, size_t size, size_t bytes) {
    if (bytes == 0) return snprintf(buf, size, "–"), buf;
    return fmt_bytes(buf, size, (double)bytes);
}

static void bench_row(Session *s, const BenchResult *r) {
    char rate[32], rss[32];
    out_text(s, "%-10s %-8s %8s %8.1f %5.1f%% %6.1f%% %9s\n", r->model, r->optim, fmt_count(rate, sizeof rate, r->tok_per_s),
             r->gflops, 100 * r->mfu, 100 * r->optim_fraction, rss_cell(rss, sizeof rss, r->model_rss));
    cJSON *o = bench_train_json("bench train", r);
    cJSON_AddNumberToObject(o, "batch", r->batch);
    cJSON_AddNumberToObject(o, "seq", r->seq);
    cJSON_AddNumberToObject(o, "steps", r->steps);
    cJSON_AddNumberToObject(o, "threads", r->threads);
    json_add_real(o, "tok_per_s", r->tok_per_s);
    json_add_real(o, "gflops", r->gflops);
    json_add_real(o, "peak_gflops", r->peak_gflops);
    json_add_real(o, "mfu", r->mfu);
    json_add_real(o, "optim_fraction", r->optim_fraction);
    cJSON_AddStringToObject(o, "kernel", r->kernel);
    cJSON_AddNumberToObject(o, "peak_rss", (double)r->peak_rss);
    cJSON_AddNumberToObject(o, "model_rss", (double)r->model_rss);
    out_emit(s, o);
}

// A profile (kernels/profile.h): its costliest (phase, kernel) rows, the rest summed; in JSON
// every row, added to o (which names the run) and emitted.
static void profile_table(Session *s, cJSON *o, const char *title, const Profile *p) {
    enum { SHOWN = 12 };
    out_text(s, "\nprofile: %s, every kernel call timed to completion: %.1f ms\n", title, 1e3 * p->seconds);
    out_text(s, "  %-17s %-22s %7s %10s %7s\n", "phase", "kernel", "calls", "ms", "share");
    cJSON *rows = cJSON_CreateArray();
    double rest = 0;
    int rest_rows = 0;
    for (int i = 0; i < p->n; i++) {
        const ProfileRow *w = &p->rows[i];
        double share = p->seconds > 0 ? w->seconds / p->seconds : 0;
        if (i < SHOWN)
            out_text(s, "  %-17s %-22s %7ld %10.2f %6.1f%%\n", w->phase, w->op, w->calls, 1e3 * w->seconds, 100 * share);
        else
            rest += w->seconds, rest_rows++;
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "phase", w->phase);
        cJSON_AddStringToObject(j, "kernel", w->op);
        cJSON_AddNumberToObject(j, "calls", (double)w->calls);
        json_add_real(j, "seconds", w->seconds);
        cJSON_AddItemToArray(rows, j);
    }
    if (rest_rows)
        out_text(s, "  (%d more rows: %.2f ms, %.1f%%)\n", rest_rows, 1e3 * rest, p->seconds > 0 ? 100 * rest / p->seconds : 0);
    json_add_real(o, "seconds", p->seconds);
    cJSON_AddItemToObject(o, "rows", rows);
    out_emit(s, o);
}

int cmd_bench_train(Session *s, const Args *a, Err *err) {
    const char *shape = args_str(a, "shape", "small"), *which = args_str(a, "model", "both");
    const char *optim = args_str(a, "optim", "adamw");
    int steps = (int)args_int(a, "steps", 5), batch = (int)args_int(a, "batch", s->batch);
    int rounds = (int)args_int(a, "rounds", 3), profile = args_bool(a, "profile", 0);
    double peak;
    out_note(s, "measuring the sgemm peak on %s\n", s->be->describe());
    if (bench_sgemm_peak(s->be, &peak, err) != 0) return -1;
    static const char *const variants[] = {"dense", "factorized"};
    int want[2];
    for (int f = 0; f < 2; f++) want[f] = strcmp(which, "both") == 0 || strcmp(which, variants[f]) == 0;
    BenchResult r[2];
    memset(r, 0, sizeof r);
    ProgressLine pl;
    progress_line_begin(&pl, s, "bench train", "rounds", 1);
    int rc = bench_train(s->be, shape, want, batch, steps, rounds, peak, optim, profile, r, progress_engine, &pl,
                         err);
    progress_end(&pl.p);
    if (rc != 0) return -1;
    const BenchResult *any = want[0] ? &r[0] : &r[1];   // what both rows share
    out_text(s, "%s, batch %d × seq %d, median of %d round%s of %d step%s; sgemm peak %.1f GFLOP/s\n",
             any->shape, any->batch, any->seq, rounds, rounds == 1 ? "" : "s", steps, steps == 1 ? "" : "s", peak);
    out_text(s, "%-10s %-8s %8s %8s %6s %7s %9s\n", "model", "optim", "tok/s", "GFLOP/s", "MFU", "optim%", "RSS");
    for (int f = 0; f < 2; f++)
        if (want[f]) bench_row(s, &r[f]);
    if (want[0] && want[1])
        out_text(s, "factorized/dense %.2f× (each model's median of %d alternating round%s of %d step%s)\n",
                 r[1].tok_per_s / r[0].tok_per_s, rounds, rounds == 1 ? "" : "s", steps, steps == 1 ? "" : "s");
    for (int f = 0; f < 2; f++) {
        if (!want[f] || !r[f].profiled) continue;
        char title[96];
        snprintf(title, sizeof title, "one step of %.15s %.15s (%.15s)", r[f].shape, r[f].model, r[f].optim);
        profile_table(s, bench_train_json("bench train profile", &r[f]), title, &r[f].profile);
    }
    return 0;
}

// ---- bench generate -----------------------------------------------------------------------

// A shape by name: the presets, and llama2.c's stories15M (a model people compare against).
static int bench_shape(const char *name, ModelConfig *cfg, Err *err) {
    if (strcmp(name, "stories15m") != 0) return model_config_preset(cfg, name, err);
    if (model_config_preset(cfg, "small", err) != 0) return -1;
    cfg->dim = 288, cfg->layers = 6, cfg->heads = 6, cfg->kv_heads = 6, cfg->ffn = 768, cfg->seq = 256;
    cfg->vocab = 32000;
    return model_config_validate(cfg, err);
}

static void generate_row(Session *s, const char *shape, const GenerateBench *r) {
    char rate[32], pre[32], rss[32];
    out_text(s, "%-10s %-10s %5d %7d %6d %13s %13s %9s\n", shape, r->model, r->rank, r->prompt, r->n_tokens,
             fmt_count(rate, sizeof rate, r->tok_per_s), fmt_count(pre, sizeof pre, r->prefill_tok_per_s),
             rss_cell(rss, sizeof rss, r->model_rss));
    cJSON *o = bench_json("bench generate", shape, r->model);
    cJSON_AddNumberToObject(o, "rank", r->rank);
    cJSON_AddNumberToObject(o, "threads", r->threads);
    cJSON_AddNumberToObject(o, "prompt", r->prompt);
    cJSON_AddNumberToObject(o, "n", r->n_tokens);
    json_add_real(o, "tok_per_s", r->tok_per_s);
    json_add_real(o, "prefill_tok_per_s", r->prefill_tok_per_s);
    cJSON_AddNumberToObject(o, "peak_rss", (double)r->peak_rss);
    cJSON_AddNumberToObject(o, "model_rss", (double)r->model_rss);
    cJSON_AddStringToObject(o, "kernel", r->kernel);
    cJSON_AddStringToObject(o, "decode", r->decode_path);
    out_emit(s, o);
}

int cmd_bench_generate(Session *s, const Args *a, Err *err) {
    const char *shape = args_str(a, "shape", "small"), *which = args_str(a, "model", "both");
    int n = (int)args_int(a, "n", 128), rounds = (int)args_int(a, "rounds", 3);
    int profile = args_bool(a, "profile", 0);
    ModelConfig cfg;
    if (bench_shape(shape, &cfg, err) != 0) return -1;
    out_note(s, "decoding on %s\n", s->be->describe());
    static const char *const variants[] = {"dense", "factorized"};
    int want[2];
    for (int f = 0; f < 2; f++) want[f] = strcmp(which, "both") == 0 || strcmp(which, variants[f]) == 0;
    GenerateBench rs[2];
    memset(rs, 0, sizeof rs);
    ProgressLine pl;
    progress_line_begin(&pl, s, "bench generate", "rounds", 1);
    int rc = bench_generate(s->be, &cfg, want, n, rounds, profile, rs, progress_engine, &pl, err);
    progress_end(&pl.p);
    if (rc != 0) return -1;
    out_text(s, "%-10s %-10s %5s %7s %6s %13s %13s %9s\n", "shape", "model", "rank", "prompt", "n", "decode tok/s",
             "prefill tok/s", "RSS");   // after the progress line, which a file or pipe keeps
    for (int f = 0; f < 2; f++)
        if (want[f]) generate_row(s, shape, &rs[f]);
    int decode_threads = rs[want[0] ? 0 : 1].threads, all = s->threads ? s->threads : s->default_threads;
    if (!s->be->graph_begin && decode_threads < all)   // describe() above counted them all
        out_note(s, "(a decoded token ran on %d thread%s, the prompt on %d: OMP_WAIT_POLICY=passive, README "
                    "\"Devices\")\n", decode_threads, decode_threads == 1 ? "" : "s", all);
    if (want[0] && want[1])
        out_text(s, "factorized/dense %.2f× (each model's median of %d alternating round%s)\n",
                 rs[1].tok_per_s / rs[0].tok_per_s, rounds, rounds == 1 ? "" : "s");
    for (int f = 0; f < 2; f++)   // only a GPU records: say how its tokens ran
        if (want[f] && s->be->graph_begin)
            out_note(s, "%s: decoded %s, fused %s, pdl %s (`set graphs|fused|pdl on|off` to compare)\n", rs[f].model,
                     strcmp(rs[f].decode_path, "graph") == 0 ? "through a recorded CUDA graph" : rs[f].decode_path,
                     s->fused, s->pdl);
    for (int f = 0; f < 2; f++) {
        if (!want[f] || !rs[f].profiled) continue;
        char title[96];
        snprintf(title, sizeof title, "prefill of %d tokens and %d decoded, %.15s %.15s", rs[f].prompt, rs[f].n_tokens,
                 shape, rs[f].model);
        profile_table(s, bench_json("bench generate profile", shape, rs[f].model), title, &rs[f].profile);
    }
    return 0;
}
