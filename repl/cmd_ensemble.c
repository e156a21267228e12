// cmd_ensemble.c — the ensemble commands (new, wash, papa, off, eval, average, use) and the
// hooks `train`, `eval`, `model info` and the session call while an ensemble exists.
//
// While an ensemble exists the session's model stays as it was (member 0 started from it,
// unless seeds= was given); `train` trains the members and `eval` evaluates them. `ensemble
// average` and `ensemble use I` make a single model again; `model new/load` and a second
// `ensemble new` drop the ensemble (saying what training goes with it); `model factorize`
// refuses while one exists.
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "commands.h"
#include "output.h"

#define ENSEMBLE_MIX_SEED_SALT 0x3a5fc0ffeeull

static int need_ensemble(const Session *s, Err *err) {
    if (s->has_ensemble) return 0;
    return err_set(err, "no ensemble: run `ensemble new K` first (e.g. `ensemble new 4`)");
}

static const char *method_name(EnsembleMethod m) {
    return m == ENSEMBLE_WASH ? "wash" : m == ENSEMBLE_PAPA ? "papa" : "independent";
}

void session_drop_ensemble(Session *s, const char *why) {
    if (!s->has_ensemble) return;
    // steps taken as an ensemble (what dropping it loses), and where the members stand (their
    // trainers' step: an ensemble started from a trained model or loaded from a file began past 0)
    int k = s->ens.k, steps = s->ens.step, at = s->ens.trainers ? s->ens.trainers[0].step : steps;
    ensemble_free(&s->ens);
    s->has_ensemble = 0;
    malloc_trim(0);   // its members' buffers back to the system, as a replaced model's (session.c)
    if (!why) return;
    if (steps > 0 && !s->dirty && s->model_file[0])   // trained, and saved since: where they are
        out_note(s, "ensemble dropped (%s): its %d member%s at step %d are in %s (`model load` brings them back)\n",
                 why, k, k == 1 ? "" : "s", at, NAME_TEXT(s->model_file));
    else if (steps > 0)   // trained members: say what is lost
        out_note(s, "ensemble dropped (%s): its %d member%s and their %d step%s of training are gone; `model save "
                    "PATH` first keeps them\n", why, k, k == 1 ? "" : "s", steps, steps == 1 ? "" : "s");
    else out_note(s, "ensemble dropped (%s)\n", why);
}

// "1,2,3" → k seeds
static int parse_seeds(const char *text, int k, uint64_t *out, Err *err) {
    const char *p = text;
    for (int i = 0; i < k; i++) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(p, &end, 10);
        if (end == p || *p == '-' || *p == '+' || (*end != ',' && *end != '\0'))
            return err_set(err, "seeds=%s: want %d comma-separated integers (e.g. seeds=1,2,3)", text, k);
        if (errno == ERANGE || v > (unsigned long long)SEED_MAX)   // every seed's bound, as `set seed`
            return err_set(err, "seeds=%s: %.*s is larger than %lld", text, (int)(end - p), p, SEED_MAX);
        for (int j = 0; j < i; j++)   // two members from one seed train identically: no ensemble
            if (out[j] == v) return err_set(err, "seeds=%s: seed %llu twice (those members would be one)", text, v);
        out[i] = v;
        p = *end == ',' ? end + 1 : end;
        if (*end == '\0' && i < k - 1)
            return err_set(err, "seeds=%s: %d seed%s for %d members", text, i + 1, i ? "s" : "", k);
    }
    if (*p != '\0' || p[-1] == ',') return err_set(err, "seeds=%s: more than %d seeds", text, k);
    return 0;
}

// Data the members can read (its tokens inside their vocabulary).
static int need_data(Session *s, Err *err) {
    if (session_need_data(s, err) != 0) return -1;
    if (s->data.vocab_size > s->model.cfg.vocab)
        return err_set(err, "the data's vocabulary (%d) is larger than the model's (%d)", s->data.vocab_size,
                       s->model.cfg.vocab);
    train_note_other_data(s);   // a loaded ensemble's file records its data as a model's does
    return 0;
}

// ---- ensemble new -------------------------------------------------------------------------

// At the prompt, before `ensemble new … seeds=` leaves a model with training not saved behind:
// once, while `model save` still saves that model (as session_keep_unsaved does).
static int keep_model_unsaved(Session *s, Err *err) {
    if (!s->interactive || !s->dirty || (s->unsaved_warned & DROP_ENSEMBLE_NEW)) return 0;
    s->unsaved_warned |= DROP_ENSEMBLE_NEW;
    return err_set(err, "the model has training not saved, which an ensemble from seeds= leaves behind (no member "
                   "continues it, and while an ensemble exists `model save` saves the ensemble): `model save PATH` "
                   "first keeps it; `ensemble new` again goes ahead");
}

// The members' seeds and where member 0 starts, into sp (whose seed arrays init, data hold k).
// With seeds= every member comes from its own seed (initialization and data order); without,
// member 0 continues the session's model — its weights, data stream and optimizer state — and
// the others get seeds after it.
static int spec_from_session(Session *s, const char *seeds, EnsembleSpec *sp, uint64_t *init, uint64_t *data,
                             Err *err) {
    int k = sp->k;
    if (seeds) {
        if (parse_seeds(seeds, k, init, err) != 0) return -1;
        memcpy(data, init, sizeof *init * (size_t)k);
        return 0;
    }
    for (int i = 0; i < k; i++) {
        init[i] = seed_offset(s->model.cfg.seed, (uint64_t)i);
        data[i] = seed_offset(s->seed, (uint64_t)i);
    }
    if (s->has_trainer) data[0] = s->trainer.data_rng, sp->start_step = s->trainer.step;
    else if (s->resume.step > 0) sp->start_step = s->resume.step, data[0] = s->resume.data_rng ? s->resume.data_rng : data[0];
    sp->from = &s->model;
    // its optimizer state too: member 0 is the model going on, not a restart with zero moments
    if (s->has_trainer) sp->from_trainer = &s->trainer;
    else sp->start_shape = s->resume.shape;
    return 0;
}

// Before building, the least k members hold: a clear refusal, not the first allocation that
// fails a minute in.
static int ensemble_fits(const Session *s, long k, Err *err) {
    double need = (double)k * (double)trainer_model_bytes(s->model.n_params), have = (double)s->be->mem_available();
    if (need <= have) return 0;
    char nb[32], hb[32];
    return err_set(err, "an ensemble of %ld needs at least %s (7 copies of the model's parameters each) and %s "
                   "is available: fewer members, or a smaller model", k, fmt_bytes(nb, sizeof nb, need),
                   fmt_bytes(hb, sizeof hb, have));
}

// Members that start past the warm-up with fresh moments take the full lr at once: said.
static void note_past_warmup(Session *s, const EnsembleSpec *sp, const OptimConfig *oc) {
    if (oc->warmup <= 0 || sp->start_step < oc->warmup) return;
    // fresh moments: the members after 0 always, member 0 too when no trainer had any
    char fresh[80];
    if (!sp->from_trainer) snprintf(fresh, sizeof fresh, "every member has fresh moments (the model had no "
                                    "optimizer state) and takes");
    else if (sp->k == 2) snprintf(fresh, sizeof fresh, "member 1 has fresh moments and takes");
    else snprintf(fresh, sizeof fresh, "members 1–%d have fresh moments and take", sp->k - 1);
    out_note(s, "note: the members start at step %d, past %s's warm-up: %s the full lr at once "
                "(`model new` first starts everything at step 0)\n", sp->start_step, oc->name, fresh);
}

// The new ensemble's line, its members' seeds (text and JSON) and what `train` now does.
static void report_new_ensemble(Session *s, const Ensemble *e, const EnsembleSpec *sp, int from_seeds,
                                const char *optim) {
    int k = sp->k, same = sp->same_init;
    size_t bytes = ensemble_bytes(e, s->batch, s->model.cfg.seq);
    char mem[32];
    out_text(s, "ensemble: %d member%s (%s init%s), %s, memory %s\n", k, k == 1 ? "" : "s", same ? "same" : "independent",
             from_seeds ? ", from seeds=" : ", member 0 from the current model", optim,
             fmt_bytes(mem, sizeof mem, (double)bytes));
    OutLine line = {0};
    line_add(&line, "  seeds (init, data):");
    for (int i = 0; i < k; i++) {
        unsigned long long init = e->init_seeds[i], data = e->data_seeds[i];
        // member 0 is the current model, whatever made it (an average, a factorization): no init seed
        if (i == 0 && !from_seeds && sp->start_step > 0)   // its data seed is the stream's state, not a seed one types
            line_add(&line, " 0:(the current model, its data stream at step %d)", sp->start_step);
        else if (i == 0 && !from_seeds) line_add(&line, " 0:(the current model, %llu)", data);
        else if (same && i > 0)   // its weights are member 0's: its init seed draws nothing
            line_add(&line, " %d:(member 0's weights, %llu)", i, data);
        else line_add(&line, " %d:(%llu, %llu)", i, init, data);
    }
    line_out(s, &line);
    out_note(s, "`train` now trains every member (coupling: independent; see `ensemble wash`, `ensemble papa`)\n");
    cJSON_AddNumberToObject(s->result, "k", (double)k);
    cJSON_AddBoolToObject(s->result, "same_init", same);
    cJSON *arr = cJSON_AddArrayToObject(s->result, "seeds"), *darr = cJSON_AddArrayToObject(s->result, "data_seeds");
    for (int i = 0; i < k; i++) {
        int model = i == 0 && !from_seeds;   // the current model: drawn from no seed of its own
        int copied = same && i > 0;          // member 0's weights: its init seed drew nothing
        cJSON_AddItemToArray(arr, model || copied ? cJSON_CreateNull() : json_u64(e->init_seeds[i]));
        int stream = model && sp->start_step > 0;   // a sampler's state, not a seed (nor a double's worth)
        cJSON_AddItemToArray(darr, stream ? cJSON_CreateNull() : json_u64(e->data_seeds[i]));
    }
    cJSON_AddNumberToObject(s->result, "bytes", (double)bytes);
    cJSON_AddStringToObject(s->result, "optim", optim);
}

int cmd_ensemble_new(Session *s, const Args *a, Err *err) {
    if (session_need_model(s, err) != 0) return -1;
    char *end;
    long k = strtol(a->pos[0], &end, 10);
    if (*end || k < 2 || k > ENSEMBLE_MAX_K)   // one member is the model itself: `train`
        return err_set(err, "K=%s: an ensemble has 2 to %d members (e.g. `ensemble new 4`)", a->pos[0], ENSEMBLE_MAX_K);
    uint64_t init[ENSEMBLE_MAX_K], data[ENSEMBLE_MAX_K];
    const char *seeds = args_str(a, "seeds", NULL);
    EnsembleSpec sp = {.k = (int)k, .init_seeds = init, .data_seeds = data, .same_init = args_bool(a, "same_init", 0),
                       .mix_seed = s->seed ^ ENSEMBLE_MIX_SEED_SALT};
    if (spec_from_session(s, seeds, &sp, init, data, err) != 0) return -1;
    if (!seeds && !s->has_ensemble && !model_params_finite(&s->model))   // member 0 would carry them
        return err_set(err, "the model holds NaN or infinite values: member 0 would start from them (the next `step` "
                            "rolls back an update that made them; or `model load` a checkpoint, or seeds=)");
    const OptimConfig *oc = s->has_trainer ? &s->trainer.opt.cfg : &s->optim;
    if (ensemble_fits(s, k, err) != 0) return -1;
    // the session's own model: its training not saved is carried by member 0, or with seeds=
    // left behind for good (nothing brings that model back, and `model save` saves the ensemble)
    int model_unsaved = s->has_ensemble ? s->model_dirty : s->dirty;
    // an untrained ensemble replaced by one whose member 0 carries the model again loses nothing
    int loses = s->has_ensemble && (s->ens.step > 0 || seeds);
    if (loses && session_keep_unsaved(s, DROP_ENSEMBLE_NEW, err) != 0) return -1;
    if (!s->has_ensemble && seeds && keep_model_unsaved(s, err) != 0) return -1;
    Ensemble e;
    if (ensemble_build(&e, &s->model.cfg, s->be, oc, &sp, err) != 0) return -1;
    session_drop_ensemble(s, "replaced by a new one");   // says what goes: rebuilding is a workflow (demos/wash.lrsh)
    s->ens = e;
    s->has_ensemble = 1;
    s->model_dirty = model_unsaved;
    s->dirty = seeds ? 0 : model_unsaved;
    if (seeds) {   // members from seeds read the session tokenizer's ids: the left-behind model's own is not theirs
        tokenizer_free(s->model_tok);
        s->model_tok = NULL;
        s->model_tok_embedded = 0;
    }
    if (seeds && model_unsaved)
        out_note(s, "note: the model's training not saved is not in the ensemble (its members come from seeds=) and "
                    "cannot be saved while one exists (`model save` saves the ensemble)\n");
    char run[32];   // the members' mean loss is another series than the single model's
    snprintf(run, sizeof run, "ensemble-%ld", k);
    runlog_end(&s->runs);
    runlog_name_next(&s->runs, run);
    note_past_warmup(s, &sp, oc);
    report_new_ensemble(s, &s->ens, &sp, seeds != NULL, oc->name);
    return 0;
}

// ---- coupling -----------------------------------------------------------------------------

// The coupling's settings into o: method, and p, schedule, opt_state (WASH) or alpha (PAPA), every.
static void coupling_json(cJSON *o, const EnsembleCoupling *c) {
    cJSON_AddStringToObject(o, "method", method_name(c->method));
    if (c->method == ENSEMBLE_WASH) {
        json_add_real(o, "p", c->p);
        cJSON_AddStringToObject(o, "schedule", c->schedule == WASH_FLAT ? "flat" : "linear");
        cJSON_AddBoolToObject(o, "opt_state", c->opt_state);
    }
    if (c->method == ENSEMBLE_PAPA) json_add_real(o, "alpha", c->alpha);
    cJSON_AddNumberToObject(o, "every", c->every);
}

// A coupling replaces the one before: said, so that a run is not taken for WASH and PAPA at once.
static void say_replaced(Session *s, EnsembleMethod was, EnsembleMethod now) {
    if (was != ENSEMBLE_INDEPENDENT && was != now)
        out_note(s, "note: %s is off now (one coupling at a time)\n", was == ENSEMBLE_WASH ? "WASH" : "PAPA");
}

// p=0 or alpha=0 moves nothing: the members train independently, as after `ensemble off` (a
// WASH "with p=0" would count shuffles that exchange nothing, a PAPA one values it never moves).
static int zero_coupling_is_off(Session *s, EnsembleCoupling *c, const char *what, const char *key, Err *err) {
    c->method = ENSEMBLE_INDEPENDENT;
    if (ensemble_set_coupling(&s->ens, c, err) != 0) return -1;
    out_text(s, "%s moves nothing: coupling off, members train independently (as after `ensemble off`)\n", what);
    coupling_json(s->result, c);
    json_add_real(s->result, key, 0);   // the value typed, as help lists it
    return 0;
}

int cmd_ensemble_wash(Session *s, const Args *a, Err *err) {
    if (need_ensemble(s, err) != 0) return -1;
    if (!args_has(a, "p")) return err_set(err, "ensemble wash needs p= (e.g. ensemble wash p=0.05)");
    EnsembleCoupling c = s->ens.coupling;
    c.method = ENSEMBLE_WASH;
    c.p = (float)args_float(a, "p", 0.05);
    c.every = (int)args_int(a, "every", 1);
    c.schedule = strcmp(args_str(a, "schedule", "linear"), "flat") == 0 ? WASH_FLAT : WASH_LINEAR;
    c.opt_state = args_bool(a, "opt_state", 1);
    if (c.p == 0) return zero_coupling_is_off(s, &c, "WASH p=0", "p", err);
    EnsembleMethod was = s->ens.coupling.method;
    if (ensemble_set_coupling(&s->ens, &c, err) != 0) return -1;
    double expect = wash_expected_exchange(&s->ens, &c);   // as `train` will count them
    char v[32], depth[64];
    if (c.schedule == WASH_FLAT) snprintf(depth, sizeof depth, "flat: %g in every tensor", c.p);
    else snprintf(depth, sizeof depth, "linear over depth: embedding %g … head 0", c.p);
    out_text(s, "WASH: p=%g (%s), every %d step%s, optimizer moments %s; about %s values exchanged per shuffle%s\n",
             c.p, depth, c.every, c.every == 1 ? "" : "s", c.opt_state ? "permuted too" : "kept",
             fmt_count(v, sizeof v, expect), c.opt_state ? " (each with its moments)" : "");
    say_replaced(s, was, c.method);
    coupling_json(s->result, &c);
    json_add_real(s->result, "expected_values_per_shuffle", expect);
    return 0;
}

int cmd_ensemble_papa(Session *s, const Args *a, Err *err) {
    if (need_ensemble(s, err) != 0) return -1;
    EnsembleCoupling c = s->ens.coupling;
    c.method = ENSEMBLE_PAPA;
    c.alpha = (float)args_float(a, "alpha", 0.1);
    c.every = (int)args_int(a, "every", 1);
    if (c.alpha == 0) return zero_coupling_is_off(s, &c, "PAPA alpha=0", "alpha", err);
    EnsembleMethod was = s->ens.coupling.method;
    if (ensemble_set_coupling(&s->ens, &c, err) != 0) return -1;
    long n = 0;
    const Model *m = &s->ens.members[0];
    for (int i = 0; i < m->n_tensors; i++) n += (long)m->tensors[i].rows * m->tensors[i].cols;
    char v[32];
    out_text(s, "PAPA: every %d step%s each member moves %g of the way to the mean; %s values communicated per pull\n",
             c.every, c.every == 1 ? "" : "s", c.alpha, fmt_count(v, sizeof v, (double)n * s->ens.k));
    say_replaced(s, was, c.method);
    coupling_json(s->result, &c);
    return 0;
}

int cmd_ensemble_off(Session *s, const Args *a, Err *err) {
    (void)a;
    if (need_ensemble(s, err) != 0) return -1;
    s->ens.coupling.method = ENSEMBLE_INDEPENDENT;
    out_text(s, "members train independently (no shuffling, no pulling)\n");
    coupling_json(s->result, &s->ens.coupling);
    return 0;
}

// ---- train (the hook cmd_train calls) -----------------------------------------------------

// What one `train` of the ensemble did, as its steps went.
typedef struct EnsembleRun {
    int done;                          // steps taken and kept (a rollback takes one back)
    EnsembleStepStats last, before_last;
    long tokens;
    double exchanged, seconds, mix_seconds;
    double eval_seconds;               // eval_every='s part, not in seconds (as a single model's train)
    int mixes;                         // steps that shuffled (WASH) or pulled (PAPA)
    int diverged_at;                   // the step that was not finite (0: none)
} EnsembleRun;

// A divergence at step `attempt` (a member's loss or gradient, or the validation loss of the
// ensemble before it): every member went back; the run and this command's counts follow. A
// result, as a single model's divergence: the members are intact, and a script goes on.
static void stop_diverged(Session *s, EnsembleRun *r, int attempt, int steps, Err *err) {
    r->diverged_at = attempt;
    int back_to = train_rolled_back_to(&s->ens.trainers[0]);
    if (back_to == attempt - 2 && r->done > 0) {   // this command's last step, undone
        r->exchanged -= (double)r->last.exchanged;
        r->mixes -= r->last.mixed;
        r->done--, r->last = r->before_last;
    }
    char after[64];
    snprintf(after, sizeof after, "; training stopped after %d of %d steps", r->done, steps);
    train_report_divergence(s, attempt, back_to, after, err);
}

// The validation losses of train's eval_every=: 0, or −1 with err set (a divergence included).
static int eval_during_train(Session *s, int B, int T, int batches, int step, cJSON *val, Err *err) {
    EnsembleEval v;
    if (ensemble_eval(&s->ens, &s->data, B, T, batches, EVAL_BATCH_SEED, progress_stop_on_interrupt, NULL, &v,
                      err) != 0) {
        if (lrsh_interrupted) { err->msg[0] = '\0'; return 0; }   // Ctrl-C: the steps stay, no val taken
        if (!train_diverged(err)) return -1;
        char why[sizeof err->msg];   // "member 1: the loss is not finite (NaN)" of the validation batches
        snprintf(why, sizeof why, "the validation loss of %.400s", err->msg);
        return ensemble_diverged(&s->ens, why, err);
    }
    session_record_val(s, step, v.member_mean);
    out_text(s, "step %d: val loss members %s (mean), ensemble %s, average factors %s, product %s\n", step,
             LOSS_TEXT(v.member_mean), LOSS_TEXT(v.ensemble), LOSS_TEXT(v.avg_factors), LOSS_TEXT(v.avg_product));
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "step", step);
    json_add_real(o, "member_mean", v.member_mean);   // the keys `ensemble eval` gives
    json_add_real(o, "ensemble_loss", v.ensemble);
    json_add_real(o, "avg_factors_loss", v.avg_factors);
    json_add_real(o, "avg_product_loss", v.avg_product);
    cJSON_AddItemToArray(val, o);
    return 0;
}

// What the coupling exchanged in this run, per shuffle or pull as it happened (every=N mixes on
// every N-th step only; a shuffle's count varies with its draw, a pull's does not).
static void exchange_report(Session *s, const EnsembleRun *r, char x[32], char per[32], char total[32]) {
    const Ensemble *e = &s->ens;
    const char *mix = e->coupling.method == ENSEMBLE_WASH ? "shuffle" : "pull";
    fmt_count(total, 32, e->total_exchanged);
    if (r->mixes == 0) {
        char steps[32] = "this step";
        if (r->done > 1) snprintf(steps, sizeof steps, "these %d steps", r->done);
        out_text(s, "%s: no %s in %s (every %d steps); %s values exchanged in total since `ensemble new`\n",
                 method_name(e->coupling.method), mix, steps, e->coupling.every, total);
        return;
    }
    out_text(s, "%s: %s values exchanged in %d %s%s (%s per %s%s), %.1f%% of the time mixing; %s in total since "
                "`ensemble new`\n", method_name(e->coupling.method), fmt_count(x, 32, r->exchanged), r->mixes, mix,
             r->mixes == 1 ? "" : "s", fmt_count(per, 32, r->exchanged / r->mixes), mix,
             e->coupling.method == ENSEMBLE_WASH && r->mixes > 1 ? " on average" : "",
             r->seconds > 0 ? 100 * r->mix_seconds / r->seconds : 0.0, total);
}

static void ensemble_train_report(Session *s, const EnsembleRun *r, int steps) {
    s->reported = 1;
    const Ensemble *e = &s->ens;
    const EnsembleStepStats *st = &r->last;
    int interrupted = r->done < steps && !r->diverged_at;
    if (interrupted)
        out_text(s, "interrupted%s after %d of %d steps; every member keeps the steps taken\n", session_stop_cause(),
                 r->done, steps);
    double rate = r->seconds > 0 ? r->tokens / r->seconds : 0;
    char t[32], d[32], x[32], xs[32];
    if (r->done) {
        OutLine line = {0};
        line_add(&line, "step %d: mean loss %s over %d member%s (", e->trainers[0].step, LOSS_TEXT(st->mean_loss), e->k,
                 e->k == 1 ? "" : "s");
        for (int i = 0; i < e->k; i++) line_add(&line, "%s%s", i ? " " : "", LOSS_TEXT(st->member[i].loss));
        line_add(&line, "), %s tok/s, %s for %d step%s", fmt_count(t, sizeof t, rate), fmt_elapsed(d, sizeof d, r->seconds),
                 r->done, r->done == 1 ? "" : "s");
        line_out(s, &line);
        if (e->coupling.method != ENSEMBLE_INDEPENDENT)   // independent members exchange nothing: no line of zeros
            exchange_report(s, r, x, xs, d);
    }
    cJSON_AddNumberToObject(s->result, "steps", r->done);
    cJSON_AddNumberToObject(s->result, "step", e->trainers[0].step);
    cJSON_AddNumberToObject(s->result, "k", e->k);
    cJSON_AddStringToObject(s->result, "method", method_name(e->coupling.method));
    coupling_json(cJSON_AddObjectToObject(s->result, "coupling"), &e->coupling);   // wash and wash-params apart
    cJSON *ml = cJSON_AddArrayToObject(s->result, "member_loss"), *mg = cJSON_AddArrayToObject(s->result, "member_grad_norm");
    if (r->done) {   // the last step taken's; none: null, not 0
        json_add_real(s->result, "loss", st->mean_loss);
        json_add_real(s->result, "lr", st->member[0].lr);   // the members share the schedule
        for (int i = 0; i < e->k; i++) cJSON_AddItemToArray(ml, json_real(st->member[i].loss));
        for (int i = 0; i < e->k; i++) cJSON_AddItemToArray(mg, json_real(st->member[i].grad_norm));
    } else {
        cJSON_AddNullToObject(s->result, "loss");
        cJSON_AddNullToObject(s->result, "lr");
    }
    cJSON_AddNumberToObject(s->result, "values_exchanged", r->exchanged);
    cJSON_AddNumberToObject(s->result, "mixes", r->mixes);   // shuffles or pulls in this run
    cJSON_AddNumberToObject(s->result, "values_exchanged_total", e->total_exchanged);
    train_result_end(s, r->done, rate, r->seconds, r->eval_seconds, interrupted, r->diverged_at);
}

// The run's record of an ensemble step: member 0's step and lr, the members' mean loss, gradient
// norms and clip scale (the log had the mean loss beside member 0's gradient norm), all tokens.
static StepStats members_mean(const EnsembleStepStats *st, int k) {
    StepStats rec = st->member[0];
    rec.loss = st->mean_loss, rec.tokens = st->tokens, rec.seconds = st->seconds;
    rec.grad_norm = rec.grad_norm_clipped = rec.clip_scale = 0;
    for (int i = 0; i < k; i++) {
        rec.grad_norm += st->member[i].grad_norm / k;
        rec.grad_norm_clipped += st->member[i].grad_norm_clipped / k;
        rec.clip_scale += st->member[i].clip_scale / k;
    }
    return rec;
}

int ensemble_cmd_train(Session *s, const Args *a, Err *err) {
    Ensemble *e = &s->ens;
    int B, T, accum, steps;
    if (train_steps_asked(s, a, e->trainers[0].step, &steps, err) != 0) return -1;
    if (!steps) return 0;
    if (need_data(s, err) != 0 || session_batch_shape(s, a, &B, &T, &accum, err) != 0) return -1;
    int eval_every = (int)args_int(a, "eval_every", 0), eval_batches = (int)args_int(a, "eval_batches", 20), eval_B = B,
        eval_T = T;   // without eval_every= unused: `set seq` is not held to the context then
    if (eval_every > 0 && session_eval_shape(s, &eval_B, &eval_T, err) != 0) return -1;
    for (int i = 0; i < e->k; i++) e->trainers[i].diag_every = (int)args_int(a, "diag_every", 10);
    TrainSave save;
    if (train_save_begin(s, a, &save, err) != 0) return -1;
    cJSON *val = eval_every > 0 ? cJSON_AddArrayToObject(s->result, "val") : NULL;
    if (inspect_watching(s))   // it follows one model's updates; the members' are several
        out_note(s, "note: `watch` records nothing while an ensemble trains (`ensemble use I` or `ensemble average` "
                    "makes one model it can follow)\n");
    Progress p;
    progress_begin(&p, s, steps);
    double t0 = now_seconds();
    EnsembleRun r = {0};
    while (r.done < steps && !lrsh_interrupted) {
        EnsembleStepStats prev = r.last;
        int attempt = e->step + 1, rc = ensemble_step(e, &s->data, B, T, accum, &r.last, err);
        if (rc == 0) {
            r.before_last = prev;
            r.done++;
            r.tokens += r.last.tokens;
            r.exchanged += (double)r.last.exchanged;
            r.mixes += r.last.mixed;
            r.mix_seconds += r.last.mix_seconds;
            r.seconds = now_seconds() - t0 - r.eval_seconds - save.seconds;
            StepStats rec = members_mean(&r.last, e->k);
            session_record_step(s, &rec, rec.seconds > 0 ? (double)rec.tokens / rec.seconds : 0, NULL);
            progress_update(&p, r.done, rec.step, rec.loss, r.tokens / r.seconds, r.seconds / r.done * (steps - r.done));
            if (eval_every > 0 && (rec.step % eval_every == 0 || r.done == steps) && !lrsh_interrupted) {
                progress_end(&p);
                attempt = rec.step + 1;   // a non-finite val: that step's loss would be
                double e0 = now_seconds();
                rc = eval_during_train(s, eval_B, eval_T, eval_batches, rec.step, val, err);
                r.eval_seconds += now_seconds() - e0;
            }
            if (rc == 0 && train_save_after_step(s, &save, rec.step, rec.step + steps - r.done, &p, err) != 0)
                return train_failed(err, "ensemble training", r.done, steps);
        }
        if (rc == 0) continue;
        progress_end(&p);
        if (!train_diverged(err)) return train_failed(err, "ensemble training", r.done, steps);
        stop_diverged(s, &r, attempt, steps, err);
        break;
    }
    progress_end(&p);
    ensemble_train_report(s, &r, steps);
    if (train_save_end(s, &save, r.done, s->ens.step, err) != 0)
        return train_failed(err, "ensemble training", r.done, steps);
    int bad = r.done && !r.diverged_at ? ensemble_nonfinite_member(&s->ens) : -1;
    if (bad >= 0)   // as a single model's train says it
        out_warning(s, "the last update left NaN or infinite values in member %d: the next step rolls every member "
                       "back", bad);
    return 0;
}

// ---- eval ---------------------------------------------------------------------------------

int cmd_ensemble_eval(Session *s, const Args *a, Err *err) {
    if (need_ensemble(s, err) != 0) return -1;
    int B, T, accum;
    if (need_data(s, err) != 0 || session_batch_shape(s, a, &B, &T, &accum, err) != 0) return -1;
    int batches = (int)args_int(a, "batches", 20);
    Ensemble *e = &s->ens;
    EnsembleEval r;
    ProgressLine pl;
    progress_line_begin(&pl, s, "ensemble eval", "batches", 1);
    int rc = ensemble_eval(e, &s->data, B, T, batches, EVAL_BATCH_SEED, progress_engine, &pl, &r, err);
    progress_end(&pl.p);
    if (rc != 0 && !lrsh_interrupted && train_diverged(err))   // as a single model's eval says it
        return err_wrap(err, "", e->trainers[0].has_good ? ": the ensemble diverged (`norms` shows a member's "
                                 "matrices' sizes); the next training step rolls every member's last update back"
                                 : ": a member holds NaN or ∞, or its activations overflow (`norms` shows its "
                                 "matrices' sizes)");
    if (rc != 0) return -1;   // Ctrl-C included: nothing measured is recorded
    int step = e->trainers[0].step;
    session_record_val(s, step, r.member_mean);
    out_text(s, "%-22s %9s %11s\n", "model", "val loss", "perplexity");
    char name[32];
    for (int i = 0; i < e->k; i++) {
        snprintf(name, sizeof name, "member %d", i);
        out_text(s, "%-22s %9s %11.2f\n", name, LOSS_TEXT(r.member[i]), exp(r.member[i]));
    }
    out_text(s, "%-22s %9s %11.2f\n", "members (mean)", LOSS_TEXT(r.member_mean), exp(r.member_mean));
    out_text(s, "%-22s %9s %11.2f\n", "ensemble (probs)", LOSS_TEXT(r.ensemble), exp(r.ensemble));
    // a dense ensemble has no factors: its two averages are one (the weights' mean), one row
    int factored = model_has_factors(&e->members[0]);
    if (factored) out_text(s, "%-22s %9s %11.2f\n", "average: factors", LOSS_TEXT(r.avg_factors), exp(r.avg_factors));
    OutLine line = {0};
    line_add(&line, "%-22s %9s %11.2f", factored ? "average: product" : "average (weights)", LOSS_TEXT(r.avg_product),
             exp(r.avg_product));
    if (r.product.n_matrices)
        line_add(&line, "   truncation ‖W̄−A′B′ᵀ‖/‖W̄‖: mean %.3f, worst %.3f (%s)", r.product.mean_error,
                 r.product.worst_error, r.product.worst_name);
    line_out(s, &line);
    char x[32];
    if (e->coupling.method == ENSEMBLE_INDEPENDENT && e->total_exchanged == 0)   // no count of zeros
        out_text(s, "(step %d, independent members; %d batch%s of %d×%d tokens)\n", step, batches,
                 batches == 1 ? "" : "es", B, T);
    else if (e->coupling.method == ENSEMBLE_INDEPENDENT)   // `ensemble off` after coupled steps
        out_text(s, "(step %d, independent now; %s values exchanged earlier; %d batch%s of %d×%d tokens)\n", step,
                 fmt_count(x, sizeof x, e->total_exchanged), batches, batches == 1 ? "" : "es", B, T);
    else
        out_text(s, "(step %d, %s coupling, %s values exchanged so far; %d batch%s of %d×%d tokens)\n", step,
                 method_name(e->coupling.method), fmt_count(x, sizeof x, e->total_exchanged), batches,
                 batches == 1 ? "" : "es", B, T);
    eval_note_rereads(s, batches, B, T);
    cJSON *arr = cJSON_AddArrayToObject(s->result, "members");
    for (int i = 0; i < e->k; i++) cJSON_AddItemToArray(arr, json_real(r.member[i]));
    json_add_real(s->result, "member_mean", r.member_mean);
    json_add_real(s->result, "ensemble_loss", r.ensemble);
    json_add_real(s->result, "avg_factors_loss", r.avg_factors);
    json_add_real(s->result, "avg_product_loss", r.avg_product);
    json_add_real(s->result, "truncation_error", r.product.mean_error);
    json_add_real(s->result, "truncation_error_worst", r.product.worst_error);
    cJSON_AddNumberToObject(s->result, "step", step);
    cJSON_AddStringToObject(s->result, "method", method_name(e->coupling.method));
    coupling_json(cJSON_AddObjectToObject(s->result, "coupling"), &e->coupling);
    cJSON_AddNumberToObject(s->result, "values_exchanged_total", e->total_exchanged);   // train's name for it
    cJSON_AddNumberToObject(s->result, "batches", batches);
    if (s->runs.current >= 0)   // the run its validation loss went to: tells wash from wash-params in a table
        cJSON_AddStringToObject(s->result, "run", s->runs.runs[s->runs.current].name);
    return 0;
}

// ---- average / use ------------------------------------------------------------------------

int cmd_ensemble_average(Session *s, const Args *a, Err *err) {
    if (need_ensemble(s, err) != 0) return -1;
    EnsembleAvgMode mode = strcmp(args_str(a, "mode", "product"), "factors") == 0 ? ENSEMBLE_AVG_FACTORS
                                                                                 : ENSEMBLE_AVG_PRODUCT;
    if (session_keep_unsaved(s, DROP_ENSEMBLE_AVERAGE, err) != 0) return -1;   // the members go
    Model avg;
    EnsembleAvgReport rep;
    if (ensemble_average(&s->ens, mode, &avg, &rep, err) != 0) return -1;
    int k = s->ens.k, step = s->ens.trainers[0].step;
    Resume resume = trainer_resume(&s->ens.trainers[0]);
    session_drop_ensemble(s, NULL);
    session_replace_model(s, &avg, MODEL_DERIVED);
    runlog_name_next(&s->runs, mode == ENSEMBLE_AVG_FACTORS ? "average-factors" : "average-product");
    s->resume = resume;             // the next trainer continues the schedule (fresh moments)
    session_mark_unsaved(s);
    OutLine line = {0};
    line_add(&line, "the ensemble's %d members are now one model (mode=%s, step %d)", k,
             mode == ENSEMBLE_AVG_FACTORS ? "factors" : "product", step);
    if (mode == ENSEMBLE_AVG_PRODUCT && rep.n_matrices)
        line_add(&line, "; truncation ‖W̄−A′B′ᵀ‖/‖W̄‖ mean %.3f, worst %.3f (%s)", rep.mean_error, rep.worst_error,
                 rep.worst_name);
    line_out(s, &line);
    cJSON_AddStringToObject(s->result, "mode", mode == ENSEMBLE_AVG_FACTORS ? "factors" : "product");
    cJSON_AddNumberToObject(s->result, "k", k);
    cJSON_AddNumberToObject(s->result, "step", step);
    if (mode == ENSEMBLE_AVG_PRODUCT) {
        json_add_real(s->result, "truncation_error", rep.mean_error);
        json_add_real(s->result, "truncation_error_worst", rep.worst_error);
    }
    return 0;
}

int cmd_ensemble_use(Session *s, const Args *a, Err *err) {
    if (need_ensemble(s, err) != 0) return -1;
    char *end;
    long i = strtol(a->pos[0], &end, 10);
    if (*end || i < 0 || i >= s->ens.k)
        return err_set(err, "member %s: the ensemble has members 0 to %d", a->pos[0], s->ens.k - 1);
    if (session_keep_unsaved(s, DROP_ENSEMBLE_USE, err) != 0) return -1;   // the other members go
    int k = s->ens.k;
    Model m;
    Trainer tr;
    if (ensemble_take_member(&s->ens, (int)i, &m, &tr, err) != 0) return -1;
    s->has_ensemble = 0;
    session_replace_model(s, &m, MODEL_DERIVED);
    char member[32];
    snprintf(member, sizeof member, "member-%ld", i);
    runlog_name_next(&s->runs, member);
    s->trainer = tr;
    s->trainer.model = &s->model;   // the member moved into the session
    s->has_trainer = 1;
    s->optim = tr.opt.cfg, s->optim_chosen = 1;
    // unsaved as the ensemble was: after `model save` the member is in that file as it is (and
    // a member of an ensemble never trained or saved holds no training of its own)
    out_text(s, "continuing with member %ld of %d (step %d, its optimizer state kept); the others are freed\n", i, k,
             s->trainer.step);
    cJSON_AddNumberToObject(s->result, "member", (double)i);
    cJSON_AddNumberToObject(s->result, "step", s->trainer.step);
    return 0;
}

// ---- model info ---------------------------------------------------------------------------

void ensemble_note_single_model(Session *s) {
    if (!s->has_ensemble) return;
    // a warning, so that --json results carry it too (a program read step-0 numbers as the members')
    out_warning(s, "an ensemble of %d trains beside the session's own model, which this reads: the model the "
                   "ensemble was made from (after `model load` of an ensemble file, member 0 as saved), at step %d, "
                   "not the members as they are now; `ensemble use I` or `ensemble average` makes the members one model",
                s->ens.k, s->has_trainer ? s->trainer.step : s->resume.step);
}

// generate and inspect while an ensemble trains: refused. The session's own model is not the
// members' — it stands where the ensemble began — so text sampled from it, or its last update,
// right after `train` would pass for the ensemble's (a class saw step-0 gibberish).
int ensemble_refuse_single_model(const Session *s, const char *what, Err *err) {
    if (!s->has_ensemble) return 0;
    return err_set(err, "an ensemble of %d is training: `ensemble average` or `ensemble use I` makes one model to %s "
                        "(the session's own model is the one the ensemble was made from, or member 0 as a file saved it, at step %d)",
                   s->ens.k, what, s->has_trainer ? s->trainer.step : s->resume.step);
}

void ensemble_info(Session *s) {
    if (!s->has_ensemble) return;
    size_t bytes = ensemble_bytes(&s->ens, s->batch, s->model.cfg.seq);
    char b[32], x[32];
    out_text(s, "ensemble   %d member%s, %s (parameters, gradients, optimizer state and activations); %s "
                "coupling, step %d, %s values exchanged\n",
             s->ens.k, s->ens.k == 1 ? "" : "s", fmt_bytes(b, sizeof b, (double)bytes),
             method_name(s->ens.coupling.method),
             s->ens.trainers[0].step, fmt_count(x, sizeof x, s->ens.total_exchanged));
    cJSON *o = cJSON_AddObjectToObject(s->result, "ensemble");
    cJSON_AddNumberToObject(o, "k", s->ens.k);
    cJSON_AddNumberToObject(o, "bytes", (double)bytes);
    cJSON_AddStringToObject(o, "method", method_name(s->ens.coupling.method));
    cJSON_AddNumberToObject(o, "values_exchanged", s->ens.total_exchanged);
    cJSON_AddNumberToObject(o, "step", s->ens.trainers[0].step);
}
