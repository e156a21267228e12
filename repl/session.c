// session.c — creating and tearing down the session, the "run X first" guards, and the
// invalidation rules between tokenizer, data, model and trainer.
#include "session.h"
#include <errno.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <malloc.h>
#include <string.h>
#include <sys/stat.h>
#include "../engine/tempfile.h"
#include "commands.h"
#include "output.h"

volatile sig_atomic_t lrsh_interrupted = 0;
volatile sig_atomic_t lrsh_interrupt_command = 0;
volatile sig_atomic_t lrsh_sigints = 0;
volatile sig_atomic_t lrsh_stop_notice = 0;
volatile sig_atomic_t lrsh_term_saves = 0;
volatile sig_atomic_t lrsh_saving = 0;
volatile sig_atomic_t lrsh_term_signal = 0;

volatile sig_atomic_t lrsh_writing_result = 0;
const int lrsh_ending_signals[5] = {SIGTERM, SIGHUP, SIGUSR1, SIGUSR2, SIGXCPU};

static sig_atomic_t sigints_taken = 0;   // lrsh_sigints when a command, or nobody, last took them

void interrupts_drop(void) {
    lrsh_interrupted = 0;
    sigints_taken = lrsh_sigints;
}

void interrupts_for_command(void) {
    lrsh_interrupted = 0;   // one that comes from here on sets it itself
    if (lrsh_sigints != sigints_taken) lrsh_interrupted = 1;
}

const char *session_stop_signal(void) {
    static char name[24];
    const char *abbrev = lrsh_term_signal ? sigabbrev_np(lrsh_term_signal) : NULL;   // "TERM"
    if (!abbrev) return NULL;
    snprintf(name, sizeof name, "SIG%s", abbrev);
    return name;
}

const char *session_stop_cause(void) {
    static char cause[32];
    const char *sig = session_stop_signal();
    if (!sig) return "";
    snprintf(cause, sizeof cause, " by %s", sig);
    return cause;
}

int session_step(const Session *s) {
    return s->has_ensemble ? s->ens.trainers[0].step : s->has_trainer ? s->trainer.step : s->resume.step;
}

void session_end_if_terminated(const Session *s) {
    int sig = lrsh_term_signal;
    if (!sig) return;
    fflush(stdout);
    if (s->dirty)   // the save it waited for failed (a full disk, a file another job wrote)
        fprintf(stderr, "lrsh: ended by %s; the %s's unsaved work (at step %d) is gone\n", session_stop_signal(),
                s->has_ensemble ? "ensemble" : "model", session_step(s));
    else fprintf(stderr, "lrsh: ended by %s, after what it waited for\n", session_stop_signal());
    fflush(stderr);
    tempfile_remove_all();
    signal(sig, SIG_DFL);
    raise(sig);
}

// slot = the environment variable var when it is a value the setting key takes, else the
// setting's default (both from the settings table): the GPU backend reads the same variables
// when it starts, so the session's settings (which `show` prints and `set device cuda`
// applies) are what the GPU does.
static void setting_from_env(char *slot, size_t cap, const char *key, const char *var) {
    const OptSpec *o = opt_find(settings, key);
    const char *value = getenv(var);
    Err ignored;
    int ok = value && opt_check(o, value, &ignored) == 0;
    if (value && !ok) fprintf(stderr, "lrsh: %s=%s unknown (%s): using %s\n", var, value, opt_type_name(o), o->def);
    snprintf(slot, cap, "%s", ok ? bool_word(value) : o->def);   // the GPU backend takes on|off
}

int session_init(Session *s, int threads, uint64_t seed, Err *err) {
    memset(s, 0, sizeof *s);
    s->default_threads = omp_get_max_threads();   // before any setting: all cores, or OMP_NUM_THREADS
    s->threads = threads;
    s->be = backend_cpu(threads);
    if (!s->be) return err_set(err, "the CPU backend could not start");
    s->seed = seed;
    s->batch = 8;
    s->accum = 1;
    s->seq = 0;
    s->errexit = 1;
    snprintf(s->precision, sizeof s->precision, "fp32");
    setting_from_env(s->attention, sizeof s->attention, "attention", "LRSH_CUDA_ATTENTION");
    setting_from_env(s->graphs, sizeof s->graphs, "graphs", "LRSH_CUDA_GRAPHS");
    setting_from_env(s->fused, sizeof s->fused, "fused", "LRSH_CUDA_FUSED");
    setting_from_env(s->pdl, sizeof s->pdl, "pdl", "LRSH_CUDA_PDL");
    runlog_init(&s->runs);
    if (model_config_preset(&s->model_cfg, "tiny", err) != 0) return -1;
    snprintf(s->model_preset, sizeof s->model_preset, "tiny");
    return optim_config_default(&s->optim, "adamw", err);
}

void session_free(Session *s) {
    runlog_free(&s->runs);
    inspect_state_free(s);
    session_drop_generator(s);
    session_drop_trainer(s);
    session_drop_ensemble(s, NULL);
    if (s->has_model) model_free(&s->model);
    s->has_model = 0;
    if (s->has_data) dataset_free(&s->data);
    s->has_data = 0;
    tokenizer_free(s->tok);
    s->tok = NULL;
    tokenizer_free(s->model_tok);
    s->model_tok = NULL;
}

int session_need_tokenizer(const Session *s, Err *err) {
    if (s->tok) return 0;
    return err_set(err, "no tokenizer: run `tok train` or `tok load` first (or `model load` a checkpoint that carries one)");
}

int session_need_data(const Session *s, Err *err) {
    if (s->has_data) return dataset_check_unchanged(&s->data, err);
    if (s->tok) return err_set(err, "no data: run `data load` first (it tokenizes with the tokenizer loaded now)");
    return err_set(err, "no data: run `data load` first (after `tok train` or `tok load`)");
}

int session_need_model(const Session *s, Err *err) {
    if (s->has_model) return 0;
    return err_set(err, "no model: run `model new` first (e.g. `model new tiny`)");
}

void session_drop_data(Session *s, const char *why) {
    if (!s->has_data) return;
    dataset_free(&s->data);
    s->has_data = 0;
    out_note(s, "data dropped (%s): run `data load` again\n", why);
}

void session_drop_trainer(Session *s) {
    if (!s->has_trainer) return;
    trainer_free(&s->trainer);
    s->has_trainer = 0;
}

void session_drop_generator(Session *s) {
    if (!s->has_gen) return;
    generator_free(&s->gen);
    s->has_gen = 0;
}

void session_replace_model(Session *s, Model *m, int how) {
    if (how != MODEL_DERIVED) {   // the new model goes with the session's tokenizer (or its file's)
        tokenizer_free(s->model_tok);
        s->model_tok = NULL;
    }
    session_drop_generator(s);
    session_drop_trainer(s);
    session_drop_ensemble(s, "the model it grew from was replaced");
    if (s->has_model) model_free(&s->model);
    s->model = *m;
    memset(m, 0, sizeof *m);
    s->has_model = 1;
    inspect_model_replaced(s);
    s->resume = (Resume){0};
    s->resume_data = (DataIdentity){0};
    runlog_end(&s->runs);
    // the old model's buffers back to the system: glibc keeps freed heap pages resident, and a
    // session that once built `small` held its peak (hundreds of MiB) on `tiny` afterwards
    malloc_trim(0);
}

int session_same_tokenizer(const Tokenizer *a, const Tokenizer *b) {
    size_t na, nb;
    const void *pa = a ? tokenizer_bytes(a, &na) : NULL, *pb = b ? tokenizer_bytes(b, &nb) : NULL;
    return pa && pb && na == nb && memcmp(pa, pb, na) == 0;
}

const char *session_unsaved_leave_warning(const Session *s) {
    return s->has_ensemble ? "unsaved ensemble: `model save PATH` keeps it; quit again or Ctrl-D leaves\n"
                           : "unsaved model: `model save PATH` keeps it; quit again or Ctrl-D leaves\n";
}

int session_keep_unsaved(Session *s, UnsavedDrop what, Err *err) {
    if (!s->interactive || !s->dirty || (s->unsaved_warned & what)) return 0;
    s->unsaved_warned |= what;   // until more training: this action, tried again, goes ahead
    static const struct { UnsavedDrop what; const char *again; } said[] = {
        {DROP_MODEL_NEW, "`model new` again replaces it"},
        {DROP_MODEL_LOAD, "`model load` again replaces it"},
        {DROP_MODEL_FACTORIZE, "`model factorize` again truncates it"},
        {DROP_ENSEMBLE_NEW, "`ensemble new` again replaces the ensemble"},
        {DROP_ENSEMBLE_USE, "`ensemble use` again keeps that member alone"},
        {DROP_ENSEMBLE_AVERAGE, "`ensemble average` again makes one model of it"},
    };
    const char *again = "quit again leaves";
    for (size_t i = 0; i < sizeof said / sizeof said[0]; i++)
        if (said[i].what == what) again = said[i].again;
    if (s->has_ensemble && s->ens.step == 0)   // not trained: what is unsaved is the model it continues
        return err_set(err, "the ensemble's member 0 carries the model's training not saved: `model save PATH` keeps "
                       "it (with the ensemble); %s", again);
    return err_set(err, "the %s has training not saved: `model save PATH` keeps it; %s",
                   s->has_ensemble ? "ensemble" : "model", again);
}

// Fresh moments at a step past the warm-up start at the full rate: the warm-up counts the run's
// steps, not the moments' (after `model factorize` or an optimizer switch at step 750, a
// warmup=100 has nothing left to do). Said so, since the step after is often the roughest.
void session_horizon_note(Session *s, int step) {
    if (s->optim.horizon > 0 && step >= s->optim.horizon)   // a fine-tune from a loaded run's step
        out_warning(s, "step %d is past horizon=%d (the schedule counts the run's steps): training goes on at "
                       "min_lr_ratio·lr = %.4g, not lr=%g; `optim horizon=N` sets a later end, horizon=0 a constant "
                       "rate", step, s->optim.horizon, optimizer_lr(&s->optim, step), s->optim.lr);
}

void session_warmup_note(Session *s, int step) {
    if (step > 0 && s->optim.warmup > 0 && step >= s->optim.warmup)
        out_note(s, "note: the warm-up is past (step %d, warmup=%d counts the run's steps): the fresh moments start "
                    "without one, at the schedule's lr=%.4g\n", step, s->optim.warmup, optimizer_lr(&s->optim, step));
    session_horizon_note(s, step);
}

int session_need_trainer(Session *s, Err *err) {
    if (s->has_trainer) return 0;
    if (trainer_build(&s->trainer, &s->model, &s->optim, s->seed, err) != 0) return -1;
    s->has_trainer = 1;
    if (s->resume.step > 0) {
        s->trainer.step = s->resume.step;
        s->trainer.shape = s->resume.shape;
        if (s->resume.data_rng) s->trainer.data_rng = s->resume.data_rng;
        out_note(s, "trainer built: %s lr=%g, continuing from step %d with fresh optimizer moments\n",
                 s->optim.name, s->optim.lr, s->resume.step);
        session_warmup_note(s, s->resume.step);
    } else {
        out_note(s, "trainer built: %s lr=%g (change with `optim`)\n", s->optim.name, s->optim.lr);
    }
    s->resume = (Resume){0};
    return 0;
}

void session_mark_unsaved(Session *s) {
    s->dirty = 1;
    s->unsaved_warned = 0;   // new work not saved: quit and every replacing command warn again
}

void session_record_step(Session *s, const StepStats *st, double tok_per_s, const StepDiag *diag) {
    Err err = {{0}};
    session_mark_unsaved(s);
    const OptimConfig *o = s->has_trainer ? &s->trainer.opt.cfg : &s->optim;
    const RunLog *r = &s->runs;
    int run_starts = r->current < 0 || r->runs[r->current].n_steps == 0;   // its config goes with its first step
    char model[256], settings[512];
    RunConfig cfg = {0};
    if (run_starts) {
        model_config_describe(&s->model.cfg, model, sizeof model);
        optim_settings_text(o, settings, sizeof settings);
        const Trainer *tr = s->has_ensemble ? &s->ens.trainers[0] : &s->trainer;
        DataIdentity data = s->has_data ? dataset_identity(&s->data) : (DataIdentity){0};
        cfg = (RunConfig){.optim = o->name, .model = model,
                          .params = (long)model_counts(&s->model, s->batch, s->model.cfg.seq).params,
                          .batch = tr->shape.batch, .seq = tr->shape.seq, .accum = tr->shape.accum,   // this step's
                          .init_seed = s->has_ensemble ? s->ens.members[0].cfg.seed : s->model.cfg.seed,
                          .session_seed = s->seed, .data_rng = tr->step_rng, .data_hash = data.hash,
                          .optim_settings = settings, .train_tokens = data.train,
                          .ensemble_k = s->has_ensemble ? s->ens.k : 0, .checkpoint = s->model_file};
    }
    if (runlog_step(&s->runs, s->optim.name, st, tok_per_s, diag, run_starts ? &cfg : NULL, &err) != 0)
        out_warning(s, "%s", err.msg);
    runlog_optim(&s->runs, o->name, o->lr);
}

int session_batch_shape(const Session *s, const Args *a, int *B, int *T, int *accum, Err *err) {
    int ctx = s->model.cfg.seq;
    *B = (int)args_int(a, "batch", s->batch);
    *accum = (int)args_int(a, "accum", s->accum);
    *T = (int)args_int(a, "seq", s->seq > 0 ? s->seq : ctx);
    if (*T <= ctx) return 0;
    if (args_has(a, "seq")) return err_set(err, "seq=%d is longer than the model's context (%d)", *T, ctx);
    return err_set(err, "`set seq %d` is longer than this model's context (%d): `set seq 0` uses the context", *T, ctx);
}

int session_eval_shape(const Session *s, int *B, int *T, Err *err) {
    static const Args none;   // no options: the settings
    int accum;
    if (session_batch_shape(s, &none, B, T, &accum, err) != 0) return err_wrap(err, "eval_every: ", " (nothing was trained)");
    if (dataset_window_fits(&s->data, 1, *T, err) != 0) return err_wrap(err, "", " (eval_every: nothing was trained)");
    return 0;
}

void session_record_divergence(Session *s, int step, int back_to) {
    Err err = {{0}};
    if (runlog_diverged(&s->runs, s->optim.name, step, back_to, &err) != 0) out_warning(s, "%s", err.msg);
    const RunSeries *run = &s->runs.runs[s->runs.current];
    if (!run->optim[0]) runlog_optim(&s->runs, s->optim.name, s->optim.lr);   // a failed step names no switch
}

void session_record_val(Session *s, int step, double loss) {
    Err err = {{0}};
    if (runlog_val(&s->runs, s->optim.name, step, loss, &err) != 0) {
        out_warning(s, "%s", err.msg);
        return;
    }
    RunSeries *run = &s->runs.runs[s->runs.current];
    if (s->has_data) run->unigram = dataset_unigram_entropy(&s->data);   // the plateau `runs` judges this loss by
    if (!run->model[0] && !run->n_steps) {   // a run of evaluations only (`model factorize rank=8; eval`): its model
        model_config_describe(&s->model.cfg, run->model, sizeof run->model);
        run->params = (long)model_counts(&s->model, s->batch, s->model.cfg.seq).params;
    }
}

static int make_dir(const char *path, Err *err) {
    if (mkdir(path, 0755) == 0 || errno == EEXIST) return 0;
    return err_set(err, "cannot create %s: %s", path, strerror(errno));
}

int session_cache_dir(char *out, size_t size, Err *err) {
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (xdg && *xdg) {
        snprintf(out, size, "%s", xdg);
    } else if (home && *home) {
        snprintf(out, size, "%s/.cache", home);
    } else {   // not a shared /tmp/lrsh: anyone could put a corpus or tokenizer there first
        return err_set(err, "no cache folder: neither $XDG_CACHE_HOME nor $HOME is set");
    }
    if (make_dir(out, err) != 0) return -1;
    size_t n = strlen(out);
    snprintf(out + n, size - n, "/lrsh");
    return make_dir(out, err);
}
