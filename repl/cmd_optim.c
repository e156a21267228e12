// cmd_optim.c — the optimizer commands and the Spectron view: optim (options come from the
// engine, per optimizer), the per-matrix diagnostics table of `step`, and inspect (here, not in
// cmd_inspect.c: it prints the same table, sorted and marked).
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "commands.h"
#include "output.h"
#include "textwrap.h"

// ---- options, from the engine ---------------------------------------------------------------

// What each key means under cfg's optimizer, for help. Only documentation: which keys an
// optimizer takes, and what values they accept, is the engine's (optim_config_key, optim_config_set).
static const char *key_doc(const OptimConfig *cfg, const char *key) {
    if (cfg->kind == OPTIM_SGD && strcmp(key, "momentum") == 0)   // PyTorch's SGD: no (1−β) damping
        return "β of the momentum buffer: M ← βM + G";
    if (cfg->kind == OPTIM_SGD && strcmp(key, "nesterov") == 0) return "step along G + βM instead of M";
    static const char *const docs[][2] = {
        {"lr", "peak learning rate of the matrices (of every tensor under sgd and adamw)"},
        {"adam_lr", "peak rate of the AdamW group: embeddings, head, norm gains (follows lr's schedule)"},
        {"wd", "decoupled weight decay on every tensor but the norm gains (on factors with the unscaled lr)"},
        {"momentum", "β of the momentum buffer: M ← βM + (1−β)G"},
        {"nesterov", "step along G + β(M − G) instead of M"},
        {"ns_steps", "Newton–Schulz iterations of the orthogonalization"},
        {"power_iters", "power-iteration steps per σ_A, σ_B per update (warm-started)"},
        {"shape_scale", "multiply each factor's step by √max(1, rows/cols) of that factor (A: out×r, B: in×r; "
                        "Muon's shape factor; loosens ‖ΔW‖₂ ≤ lr; the ρ shown is before it)"},
        {"beta1", "AdamW first-moment decay"},
        {"beta2", "AdamW second-moment decay"},
        {"eps", "AdamW epsilon (0: a gradient exactly 0 — an embedding row no batch touched — gives 0/0, NaN)"},
        {"clip", "global gradient-norm clip (0: off)"},
        {"warmup", "steps of linear warm-up"},
        {"horizon", "step where the cosine decay reaches min_lr_ratio·lr (0: constant after warm-up)"},
        {"min_lr_ratio", "final lr as a fraction of lr"},
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++)
        if (strcmp(docs[i][0], key) == 0) return docs[i][1];
    return "";
}

// The config `word` names (its defaults), or the session's current one when word is NULL.
static int config_for(const Session *s, const char *word, OptimConfig *cfg) {
    Err err;
    if (word) return optim_config_default(cfg, word, &err);
    if (s) { *cfg = s->optim; return 0; }
    return optim_config_default(cfg, "adamw", &err);
}

const char *optim_dyn_key(const Session *s, const char *word, int i) {
    OptimConfig cfg;
    if (config_for(s, word, &cfg) != 0) return NULL;
    return optim_config_key(&cfg, i);
}

// "lr= wd= beta1= …": the keys cfg's optimizer takes
static void key_list(const OptimConfig *cfg, char *buf, size_t cap) {
    size_t used = 0;
    buf[0] = '\0';
    const char *k;
    for (int i = 0; (k = optim_config_key(cfg, i)) && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%s=", i ? " " : "", k);
}

// A value for people: the engine's round-trip text of a float ("0.00100000005") as "0.001".
static const char *readable(const char *text, char *buf, size_t cap) {
    char *end;
    double x = strtod(text, &end);
    if (*text && !*end) snprintf(buf, cap, "%.6g", x);
    else snprintf(buf, cap, "%s", text);
    return buf;
}

// A value as JSON: on/off as a boolean, a number as a number.
static void add_value(cJSON *into, const char *key, const char *text) {
    char *end;
    double x = strtod(text, &end);
    if (strcmp(text, "on") == 0) cJSON_AddTrueToObject(into, key);
    else if (strcmp(text, "off") == 0) cJSON_AddFalseToObject(into, key);
    else if (*text && !*end) json_add_real(into, key, x);
    else cJSON_AddStringToObject(into, key, text);
}

void optim_settings_text(const OptimConfig *o, char *line, size_t cap) {
    size_t used = (size_t)snprintf(line, cap, "%s", o->name);
    const char *k;
    for (int i = 0; (k = optim_config_key(o, i)); i++) {
        char v[64], r[64];
        Err err;
        if (optim_config_get(o, k, v, sizeof v, &err) == 0 && used < cap)
            used += (size_t)snprintf(line + used, cap - used, " %s=%s", k, readable(v, r, sizeof r));
    }
}

void optim_describe(const Session *s, const OptimConfig *o, cJSON *into) {
    char line[1024];
    optim_settings_text(o, line, sizeof line);
    cJSON_AddStringToObject(into, "name", o->name);
    const char *k;
    for (int i = 0; (k = optim_config_key(o, i)); i++) {
        char v[64];
        Err err;
        if (optim_config_get(o, k, v, sizeof v, &err) == 0) add_value(into, k, v);
    }
    out_text(s, "optimizer  %s\n", line);
}

void optim_dyn_help(Session *s, const char *word) {
    OptimConfig cfg;
    if (word && config_for(s, word, &cfg) != 0) word = NULL;   // cmd_help has refused an unknown name
    if (!word) config_for(s, NULL, &cfg);
    out_text(s, "\noptions of %s (%s):\n", cfg.name, word ? "defaults" : "current values");
    cJSON *list = cJSON_AddArrayToObject(s->result, "options");
    const char *k;
    for (int i = 0; (k = optim_config_key(&cfg, i)); i++) {
        char v[64], r[64], form[96], range[64];
        Err err;
        if (optim_config_get(&cfg, k, v, sizeof v, &err) != 0) continue;
        snprintf(form, sizeof form, "%s=%s", k, readable(v, r, sizeof r));
        out_text(s, "  %-20s %s  [%s]\n", form, key_doc(&cfg, k), optim_config_range(k, range, sizeof range));
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "name", k);
        cJSON_AddStringToObject(j, word ? "default" : "value", r);
        cJSON_AddStringToObject(j, "doc", key_doc(&cfg, k));
        cJSON_AddStringToObject(j, "range", range);
        cJSON_AddStringToObject(j, "type", strncmp(range, "integer", 7) == 0  ? "an integer"   // as a command's options
                                           : strncmp(range, "number", 6) == 0 ? "a number" : "on or off");
        cJSON_AddItemToArray(list, j);
    }
    out_text(s, "\nkeys by optimizer:\n");
    cJSON *by = cJSON_AddObjectToObject(s->result, "optimizers");
    for (int n = 0; optim_names[n]; n++) {
        OptimConfig c;
        char keys[512];
        if (config_for(s, optim_names[n], &c) != 0) continue;
        key_list(&c, keys, sizeof keys);
        out_text(s, "  %-9s %s\n", optim_names[n], keys);
        cJSON *a = cJSON_AddArrayToObject(by, optim_names[n]);
        for (int i = 0; (k = optim_config_key(&c, i)); i++) cJSON_AddItemToArray(a, cJSON_CreateString(k));
    }
}

// ---- optim ----------------------------------------------------------------------------------

static int unknown_optimizer(const char *name, Err *err) {
    Suggest sg;
    suggest_init(&sg, name);
    char list[128] = "";
    size_t used = 0;
    for (int i = 0; optim_names[i]; i++) {
        suggest_try(&sg, optim_names[i]);
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", optim_names[i]);
    }
    if (suggest_best(&sg))
        return err_set(err, "unknown optimizer '%s': did you mean '%s'? (optimizers: %s)", name, suggest_best(&sg), list);
    return err_set(err, "unknown optimizer '%s' (optimizers: %s)", name, list);
}

// A key cfg's optimizer does not take: name it, suggest one, list the ones it takes.
static int unknown_key(const OptimConfig *cfg, const char *key, Err *err) {
    char keys[512];
    key_list(cfg, keys, sizeof keys);
    Suggest sg;
    suggest_init(&sg, key);
    const char *k;
    for (int i = 0; (k = optim_config_key(cfg, i)); i++) suggest_try(&sg, k);
    const char *also = NULL;  // a key of another optimizer: say which ones take it
    for (int n = 0; optim_names[n] && !also; n++) {
        OptimConfig c;
        Err e;
        if (optim_config_default(&c, optim_names[n], &e) != 0) continue;
        for (int i = 0; (k = optim_config_key(&c, i)); i++)
            if (strcmp(k, key) == 0) also = optim_names[n];
    }
    if (suggest_best(&sg))
        return err_set(err, "optimizer %s takes no option '%s=': did you mean '%s='? (%s takes: %s)", cfg->name, key,
                       suggest_best(&sg), cfg->name, keys);
    if (also)
        return err_set(err, "optimizer %s takes no option '%s=' (%s does); %s takes: %s", cfg->name, key, also,
                       cfg->name, keys);
    return err_set(err, "optimizer %s takes no option '%s=' (it takes: %s)", cfg->name, key, keys);
}

// Point the trainer's optimizer at a new config: new state, same step count and data stream;
// says what state of the old optimizer was reset, `why` in its parentheses ("adamw → spectron").
static int optim_rebuild_trainer(Session *s, const char *why, Err *err) {
    Trainer fresh;
    if (trainer_build(&fresh, &s->model, &s->optim, s->seed, err) != 0) return -1;
    char old[256];
    optimizer_state_describe(&s->trainer.opt, &s->model, old, sizeof old);
    char from[16];
    snprintf(from, sizeof from, "%s", s->trainer.opt.cfg.name);
    int step = s->trainer.step;
    trainer_continue(&fresh, &s->trainer);
    session_drop_trainer(s);
    s->trainer = fresh;
    s->has_trainer = 1;
    out_note(s, "optimizer state reset at step %d (%s): %s's %s dropped; the step count and data stream are kept\n",
             step, why, from, old[0] ? old : "(empty) state");
    session_warmup_note(s, step);
    cJSON_AddBoolToObject(s->result, "state_reset", 1);
    cJSON_AddStringToObject(s->result, "reset", old);
    cJSON_AddStringToObject(s->result, "from", from);
    cJSON_AddNumberToObject(s->result, "step", step);
    return 0;
}

// The ensemble's members follow the session's optimizer: the same one keeps their state.
static int ensemble_optimizer(Session *s, const OptimConfig *cfg, Err *err) {
    int kept;
    if (ensemble_set_optimizer(&s->ens, cfg, &kept, err) != 0) return -1;
    out_note(s, "the ensemble's %d member%s now train%s with %s (%s)\n", s->ens.k, s->ens.k == 1 ? "" : "s",
             s->ens.k == 1 ? "s" : "", cfg->name, kept ? "their state kept" : "fresh state, the same step");
    cJSON_AddBoolToObject(s->result, "ensemble_state_reset", !kept);
    return 0;
}

// Spectron, ortho and renorm act on factors: a dense matrix gets muon's orthogonalized
// momentum, to the bit, under the first two, and AdamW at adam_lr under renorm.
static void dense_model_note(Session *s, const OptimConfig *cfg) {
    int as_muon = strcmp(cfg->name, "spectron") == 0 || strcmp(cfg->name, "ortho") == 0;
    int renorm = strcmp(cfg->name, "renorm") == 0;
    int dense = s->has_model && !s->has_ensemble && !model_has_factors(&s->model);
    if (dense && as_muon)
        out_note(s, "the model has no factorized matrices (rank=0): %s updates its dense matrices exactly as muon "
                    "does (`model factorize rank=R` makes factors)\n", cfg->name);
    else if (dense && renorm)
        out_note(s, "the model has no factorized matrices (rank=0): renorm updates its dense matrices with AdamW at "
                    "adam_lr=%g, and lr goes unused (`model factorize rank=R` makes factors)\n", cfg->adam_lr);
    else if (strcmp(cfg->name, "ortho") == 0)   // a run of each would otherwise read as two baselines
        out_note(s, "ortho is Spectron without its step size ρ, which is Muon on the factors: its updates are "
                    "muon's exactly (the ablation's name, for its row of the table)\n");
}

int cmd_optim(Session *s, const Args *a, Err *err) {
    OptimConfig cfg = s->optim;
    if (a->n_pos && optim_config_default(&cfg, a->pos[0], err) != 0) return unknown_optimizer(a->pos[0], err);
    for (int i = 0; i < a->n_opt; i++) {
        int known = 0;
        const char *k;
        for (int j = 0; (k = optim_config_key(&cfg, j)); j++) known |= strcmp(k, a->key[i]) == 0;
        if (!known) return unknown_key(&cfg, a->key[i], err);
        if (optim_config_set(&cfg, a->key[i], a->val[i], err) != 0) return -1;
    }
    if (cfg.horizon > 0 && cfg.horizon <= cfg.warmup)   // the cosine would never start: lr stays constant
        return err_set(err, "horizon=%d must be above warmup=%d (or 0: constant after the warm-up)", cfg.horizon,
                       cfg.warmup);
    int changed = a->n_pos || a->n_opt;
    char why[64];
    if (strcmp(cfg.name, s->optim.name) != 0) snprintf(why, sizeof why, "%s → %s", s->optim.name, cfg.name);
    else snprintf(why, sizeof why, "new %s options", cfg.name);
    if (changed && s->has_ensemble && ensemble_optimizer(s, &cfg, err) != 0) return -1;
    s->optim = cfg;
    if (changed) s->optim_from[0] = '\0', s->optim_chosen = 1;   // the user's choice now
    optim_describe(s, &s->optim, s->result);
    if (a->n_pos) dense_model_note(s, &s->optim);
    if (!changed && s->has_trainer) {
        char state[256];
        optimizer_state_describe(&s->trainer.opt, &s->model, state, sizeof state);
        out_text(s, "state      %s; %d updates, step %d\n", state, s->trainer.opt.t, s->trainer.step);
        cJSON_AddStringToObject(s->result, "state", state);
        cJSON_AddNumberToObject(s->result, "updates", s->trainer.opt.t);
        cJSON_AddNumberToObject(s->result, "step", s->trainer.step);
    }
    if (changed && s->has_trainer && strcmp(s->trainer.opt.cfg.name, cfg.name) == 0) {
        if (optimizer_retune(&s->trainer.opt, &cfg, err) != 0) return -1;
        char state[256];
        optimizer_state_describe(&s->trainer.opt, &s->model, state, sizeof state);
        out_note(s, "new %s options from step %d on; its state (%s) is kept\n", cfg.name, s->trainer.step, state);
        session_horizon_note(s, s->trainer.step);
        cJSON_AddBoolToObject(s->result, "state_reset", 0);
        return 0;
    }
    if (changed && s->has_trainer) return optim_rebuild_trainer(s, why, err);
    return 0;
}

// ---- the per-matrix table -------------------------------------------------------------------

static const char *num(char *buf, size_t cap, float v) {
    if (!isfinite(v)) snprintf(buf, cap, "–");
    else snprintf(buf, cap, "%.4g", v);
    return buf;
}

static void real_or_null(cJSON *o, const char *key, float v) {
    if (isfinite(v)) json_add_real(o, key, v);
    else cJSON_AddNullToObject(o, key);
}

static cJSON *diag_json(const MatrixDiag *d) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "param", d->name);   // the names `norms` uses for the same quantities
    cJSON_AddNumberToObject(o, "rows", d->rows);
    cJSON_AddNumberToObject(o, "cols", d->cols);
    cJSON_AddNumberToObject(o, "rank", d->rank);
    real_or_null(o, "sigma_a", d->sigma_a);
    real_or_null(o, "sigma_b", d->sigma_b);
    real_or_null(o, "rho", d->rho);
    real_or_null(o, "dw_spectral", d->dw_norm);
    real_or_null(o, "dw_over_eta", d->dw_over_eta);
    real_or_null(o, "spectral", d->w_norm);
    return o;
}

static const int widths[] = {17, 9, 9, 9, 9, 9, 9};   // within 80 columns, with inspect's "* " lead

static void table_header(Session *s, const char *lead) {
    static const char *const head[] = {"matrix", "σ_A", "σ_B", "ρ", "‖ΔW‖₂", "‖ΔW‖₂/η", "‖W‖₂"};
    char line[512] = "";
    for (int c = 0; c < 7; c++) table_cell(line, sizeof line, head[c], widths[c], c > 0);
    table_out(s, lead, line, widths, 7, "");
}

static void table_row(Session *s, const MatrixDiag *d, const char *lead, const char *on, const char *off) {
    char line[512] = "", b[32];
    table_cell(line, sizeof line, d->name, widths[0], 0);
    const float v[] = {d->sigma_a, d->sigma_b, d->rho, d->dw_norm, d->dw_over_eta, d->w_norm};
    for (int c = 0; c < 6; c++) table_cell(line, sizeof line, num(b, sizeof b, v[c]), widths[c + 1], 1);
    char color_lead[32];
    snprintf(color_lead, sizeof color_lead, "%s%s", on, lead);
    table_out(s, color_lead, line, widths, 7, off);
}

void optim_diag_table(Session *s, cJSON *into) {
    const Optimizer *o = &s->trainer.opt;
    cJSON *list = cJSON_AddArrayToObject(into, "matrices");
    if (o->n_diag == 0) return;
    out_text(s, "\n");
    table_header(s, "");
    for (int i = 0; i < o->n_diag; i++) {
        table_row(s, &o->diag[i], "", "", "");
        cJSON_AddItemToArray(list, diag_json(&o->diag[i]));
    }
}

// ---- inspect --------------------------------------------------------------------------------

static float sort_value(const MatrixDiag *d, const char *key) {
    if (strcmp(key, "rho") == 0) return d->rho;
    if (strcmp(key, "sigma") == 0) return d->sigma_a + d->sigma_b;
    if (strcmp(key, "name") == 0) return NAN;
    return d->dw_over_eta;
}

// Does a come before b? Larger values first, values not measured last, then table order.
static int before(const MatrixDiag *a, const MatrixDiag *b, const char *key) {
    float x = sort_value(a, key), y = sort_value(b, key);
    int fx = isfinite(x), fy = isfinite(y);
    if (fx != fy) return fx;
    if (fx && x != y) return x > y;
    return a->tensor_a < b->tensor_a;
}

// Insertion sort: a model has tens of matrices, and qsort's comparator could not see the key.
static void sort_rows(const MatrixDiag **rows, int n, const char *key) {
    for (int i = 1; i < n; i++) {
        const MatrixDiag *x = rows[i];
        int j = i;
        for (; j > 0 && before(x, rows[j - 1], key); j--) rows[j] = rows[j - 1];
        rows[j] = x;
    }
}

// Why there is nothing to inspect yet, or 0 with *reported set when there is a state to
// report instead of a table (a rollback: not a failure, so a script goes on).
static int inspect_ready(Session *s, int *reported, Err *err) {
    *reported = 0;
    if (s->has_trainer && trainer_rolled_back(&s->trainer)) {
        out_text(s, "no diagnostics: a divergence rolled the model back to step %d (its last update was undone); the "
                    "next `step` measures again\n", s->trainer.step);
        cJSON_AddArrayToObject(s->result, "matrices");
        cJSON_AddNumberToObject(s->result, "step", s->trainer.step);
        cJSON_AddBoolToObject(s->result, "measured", 0);
        cJSON_AddBoolToObject(s->result, "rolled_back", 1);
        *reported = 1;
        return 0;
    }
    if (!s->has_trainer || s->trainer.opt.t == 0) {
        if (s->has_trainer && s->trainer.step > 0)   // `optim` switched: a new optimizer has no diagnostics
            return err_set(err, "no update since %s was set up at step %d (by `optim` or `model factorize`): run "
                           "`step`; inspect shows the last step's diagnostics", s->trainer.opt.cfg.name, s->trainer.step);
        return err_set(err, "no update yet: run `step` (or `train steps=N`) first; inspect shows the last step's "
                       "diagnostics");
    }
    const Optimizer *o = &s->trainer.opt;
    if (o->n_diag == 0)
        return err_set(err, "the model has no factorized matrices (rank=0): inspect shows W = A·Bᵀ diagnostics; "
                       "`model factorize rank=R` or `model new rank=R` makes one");
    int seen = 0;   // a trainer restored from a checkpoint has its state but no diagnostics yet
    for (int i = 0; i < o->n_diag && !seen; i++)
        seen = isfinite(o->diag[i].sigma_a) || isfinite(o->diag[i].rho) || isfinite(o->diag[i].dw_norm);
    if (!seen)
        return err_set(err, "no update in this session yet (the loaded optimizer state carries no diagnostics): run "
                            "`step` first; inspect shows the last step's diagnostics");
    return 0;
}

// The last line: the largest ‖ΔW‖₂/η against Spectron's bound of 1, and what explains it.
static void inspect_verdict(Session *s, const Optimizer *o, const MatrixDiag *worst) {
    if (!worst) {
        cJSON_AddNullToObject(s->result, "max_dw_over_eta");
        return;
    }
    const OptimConfig *cfg = &o->cfg;
    double decay = 2.0 * o->last_wd * worst->w_norm;   // weight decay's share of ‖ΔW‖₂/η, outside the bound
    char verdict[160];
    if (strcmp(cfg->name, "spectron") != 0)   // the bound is Spectron's: other optimizers are measured against it
        snprintf(verdict, sizeof verdict, "%s, Spectron's bound; %s does not bound ‖ΔW‖₂",
                 worst->dw_over_eta <= 1.0f ? "within 1" : "above 1", cfg->name);
    else if (worst->dw_over_eta <= 1.0f)
        snprintf(verdict, sizeof verdict, "within Spectron's bound of 1");
    else if (cfg->shape_scale)   // the factors' steps were scaled up past ρ on purpose
        snprintf(verdict, sizeof verdict, "above Spectron's bound of 1, which shape_scale=on loosens (each factor's "
                 "step × √max(1, rows/cols))");
    else if (decay > 0.3 * worst->dw_over_eta)
        snprintf(verdict, sizeof verdict, "above Spectron's bound of 1, mostly weight decay's 2·wd·‖W‖₂ = %.3g, "
                 "which the bound does not cover", decay);
    else if (worst->dw_over_eta <= 1.3f)
        snprintf(verdict, sizeof verdict, "a little above Spectron's bound of 1: Newton–Schulz's slack, or σ_A, σ_B "
                 "estimated under their norms (power_iters=)");
    else
        snprintf(verdict, sizeof verdict, "above Spectron's bound of 1");
    out_text(s, "this step's max ‖ΔW‖₂/η %.3g (%s): %s\n", worst->dw_over_eta, worst->name, verdict);
    json_add_real(s->result, "max_dw_over_eta", worst->dw_over_eta);
    cJSON_AddStringToObject(s->result, "worst", worst->name);
}

int cmd_inspect(Session *s, const Args *a, Err *err) {
    if (session_need_model(s, err) != 0 || ensemble_refuse_single_model(s, "inspect", err) != 0) return -1;
    int reported;
    if (inspect_ready(s, &reported, err) != 0) return -1;
    if (reported) return 0;
    const Optimizer *o = &s->trainer.opt;
    int top = (int)args_int(a, "top", 3);
    const char *by = args_str(a, "sort", "dw_over_eta");
    const MatrixDiag **rows = malloc(sizeof *rows * (size_t)o->n_diag);
    if (!rows) return err_set(err, "out of memory");
    for (int i = 0; i < o->n_diag; i++) rows[i] = &o->diag[i];
    sort_rows(rows, o->n_diag, by);
    int measured = o->diag_t == o->t, color = !s->json && terminal_takes_color(stdout);
    int by_name = strcmp(by, "name") == 0, marked = by_name ? 0 : top < o->n_diag ? top : o->n_diag, have = by_name;
    for (int i = 0; i < o->n_diag && !have; i++) have = isfinite(sort_value(&o->diag[i], by));
    if (!have) marked = 0;   // a column not measured at the last update sorts and marks nothing
    char marks[64] = "";
    if (!by_name && have) snprintf(marks, sizeof marks, ", largest first%s", marked ? " (* the top" : "");
    if (marked) snprintf(marks + strlen(marks), sizeof marks - strlen(marks), " %d)", marked);
    // η: the rate the last update took, which the rows are measured against (`optim lr=` since
    // changes lr, not that)
    out_text(s, "step %d, %s lr=%g (η this step %.4g): %d factorized matrices, %s %s%s\n", s->trainer.step,
             o->cfg.name, o->cfg.lr, o->last_lr, o->n_diag,
             have ? "sorted by" : "in model order (not measured:", by, have ? marks : ")");
    if (!measured)
        out_text(s, "(‖ΔW‖₂ and ‖W‖₂ were not measured at the last update: `step` measures them, as does `train` "
                    "every diag_every-th step and at its last; `watch` keeps only the values it shows)\n");
    table_header(s, "  ");
    cJSON *list = cJSON_AddArrayToObject(s->result, "matrices");
    const MatrixDiag *worst = NULL;
    for (int i = 0; i < o->n_diag; i++) {
        const MatrixDiag *d = rows[i];
        int mark = i < top && isfinite(sort_value(d, by));  // sort=name marks nothing
        // the top rows in bold; red only past Spectron's bound (with the verdict's slack): a
        // healthy run's largest values are no alarm
        const char *on = !mark || !color ? "" : d->dw_over_eta > 1.3f ? "\033[1;31m" : "\033[1m";
        table_row(s, d, mark ? "* " : "  ", on, *on ? "\033[0m" : "");
        cJSON *j = diag_json(d);
        cJSON_AddBoolToObject(j, "worst", mark);
        cJSON_AddItemToArray(list, j);
        if (isfinite(d->dw_over_eta) && (!worst || d->dw_over_eta > worst->dw_over_eta)) worst = d;
    }
    cJSON_AddNumberToObject(s->result, "step", s->trainer.step);
    cJSON_AddStringToObject(s->result, "optim", o->cfg.name);
    json_add_real(s->result, "lr", o->cfg.lr);
    json_add_real(s->result, "eta", o->last_lr);
    cJSON_AddStringToObject(s->result, "sort", by);
    cJSON_AddBoolToObject(s->result, "measured", measured);
    inspect_verdict(s, o, worst);
    free(rows);
    return 0;
}
