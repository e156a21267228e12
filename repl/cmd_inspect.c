// cmd_inspect.c — looking inside a model while it trains: `spectrum` (exact singular values of
// one matrix, with an earlier step's overlaid), `norms` (‖W‖₂, ‖W‖_F, stable rank and the last
// update's ‖ΔW‖₂ per matrix), `watch` (chosen diagnostics recorded every N training steps, for
// the live line, `plot` and `log`) and `align` (gradient cosines against microbatches,
// subnetworks, the previous step, ensemble members, forward-gradient guesses). The numbers are
// the engine's (inspect.h, align.h); this file keeps the session's side of them and prints.
//
// What ΔW and "the previous gradient" refer to costs nothing to keep: the trainer snapshots the
// parameters before every update (Trainer.good_params, its rollback copy), and m->grads holds
// the last step's gradient until something computes another (align restores it). The session
// only remembers which step they belong to, so a replaced model or a failed step cannot pass
// off stale buffers as the last update's.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../engine/align.h"
#include "../engine/inspect.h"
#include "commands.h"
#include "output.h"
#include "textwrap.h"

#define WATCH_MAX 16
#define WATCH_DEFAULT_EVERY 10

typedef enum { AGG_MAX, AGG_MEAN } Aggregate;
typedef enum { SRC_NORMS, SRC_DELTA, SRC_OPTIM } Source;

// The fields `watch` records. The default aggregate over the block matrices follows what a
// reader looks for: the largest norm or update (the one that breaks a bound), the mean rank
// and factor norms.
static const struct WatchFieldSpec {
    const char *name;
    Aggregate agg;
    Source src;
    const char *doc;
} watch_fields[] = {
    {"spectral", AGG_MAX, SRC_NORMS, "‖W‖₂"},
    {"frobenius", AGG_MAX, SRC_NORMS, "‖W‖_F"},
    {"stable_rank", AGG_MEAN, SRC_NORMS, "‖W‖_F²/‖W‖₂²"},
    {"dw_spectral", AGG_MAX, SRC_DELTA, "‖ΔW‖₂ of the step"},
    {"dw_over_eta", AGG_MAX, SRC_DELTA, "‖ΔW‖₂/η (η: the rate the matrix moved at)"},
    {"dw_over_w", AGG_MAX, SRC_DELTA, "‖ΔW‖₂/‖W‖₂"},
    {"sigma_a", AGG_MEAN, SRC_OPTIM, "σ_A = ‖A‖₂ before the update (factorized; the optimizer's)"},
    {"sigma_b", AGG_MEAN, SRC_OPTIM, "σ_B = ‖B‖₂ before the update (factorized; the optimizer's)"},
    {"rho", AGG_MAX, SRC_OPTIM, "the factor step ρ (factorized; the optimizer's)"},
};
#define N_WATCH_FIELDS ((int)(sizeof watch_fields / sizeof watch_fields[0]))

typedef struct WatchItem {
    int field;               // index into watch_fields
    Aggregate agg;           // when param is empty
    char param[64];          // a matrix, or "" for the aggregate over the block matrices
    char key[112];           // "spectral", "spectral:mean", "stable_rank:blocks.1.mlp.w2"
} WatchItem;

struct InspectState {
    SpectrumHistory spectra;     // `spectrum compare=`: train's start and end, every `spectrum`
    WatchItem watch[WATCH_MAX];
    int n_watch, every;
    char live[200];              // the last watched values, for the progress line
    int spectra_skipped_noted;   // said once that train keeps no spectra of this (large) model
    // Trainer.good_params holds the parameters before update dw_step (valid while the trainer
    // is at that step and the model is the one it was); m->grads the gradient of that update.
    int dw_step, grad_step;
    float dw_lr, dw_io_lr;       // the update's rates: the matrices', the AdamW group's (embed, head…)
    OptimKind dw_kind;           // and its optimizer, which says which moved a matrix (kept: `optim` may switch)
    const float *dw_params, *grad_buf;
};

typedef struct InspectState InspectState;

static InspectState *state(Session *s) {
    if (!s->inspect) {
        s->inspect = calloc(1, sizeof *s->inspect);
        if (!s->inspect) return NULL;
        s->inspect->every = WATCH_DEFAULT_EVERY;
        s->inspect->dw_step = s->inspect->grad_step = -1;
    }
    return s->inspect;
}

void inspect_state_free(Session *s) {
    if (!s->inspect) return;
    spectrum_history_free(&s->inspect->spectra);
    free(s->inspect);
    s->inspect = NULL;
}

static int parse_watch_word(Session *s, const char *word, WatchItem *it, Err *err);

// The watched fields the new model has, the others dropped with a note (a matrix it lacks; σ,
// ρ on a model with no factorized matrix): they would record nothing, silently.
static void watch_recheck(Session *s, InspectState *st) {
    int kept = 0;
    for (int i = 0; i < st->n_watch; i++) {
        WatchItem again;
        Err why;
        if (parse_watch_word(s, st->watch[i].key, &again, &why) == 0) st->watch[kept++] = st->watch[i];
        else out_note(s, "watch: dropped for the new model: %s\n", why.msg);
    }
    st->n_watch = kept;
}

void inspect_model_replaced(Session *s) {
    InspectState *st = s->inspect;
    if (!st) return;
    spectrum_history_free(&st->spectra);   // its steps were the old model's
    st->dw_step = st->grad_step = -1;
    st->dw_params = st->grad_buf = NULL;
    st->live[0] = '\0';
    watch_recheck(s, st);
}

static int current_step(const Session *s) { return s->has_trainer ? s->trainer.step : s->resume.step; }

// The ΔW columns' reference in o: the parameters before the last update (o->prev), when they
// are still that, with that update's rates; else o->prev NULL.
static void update_reference(const Session *s, NormsOptions *o) {
    const InspectState *st = s->inspect;
    if (!st || !s->has_model || !s->has_trainer || !s->trainer.has_good || st->dw_step != s->trainer.step ||
        st->dw_params != s->model.params)
        return;
    o->prev = s->trainer.good_params;
    o->lr = st->dw_lr, o->io_lr = st->dw_io_lr, o->kind = st->dw_kind;
}

static int has_last_gradient(const Session *s) {
    const InspectState *st = s->inspect;
    return st && s->has_model && s->has_trainer && st->grad_step == s->trainer.step && st->grad_step > 0 &&
           st->grad_buf == s->model.grads;
}

// ---- formatting -----------------------------------------------------------------------------

static const char *num_digits(char *buf, size_t cap, double v, int digits) {
    if (isnan(v)) snprintf(buf, cap, "–");
    else if (isinf(v)) snprintf(buf, cap, "∞");
    else snprintf(buf, cap, "%.*g", digits, v);
    return buf;
}

static const char *num(char *buf, size_t cap, double v) { return num_digits(buf, cap, v, 4); }

static void real_or_null(cJSON *o, const char *key, double v) {
    if (isfinite(v)) json_add_real(o, key, v);
    else cJSON_AddNullToObject(o, key);
}

static int use_color(const Session *s) { return !s->json && terminal_takes_color(stdout); }

// A horizontal bar of v/max·width cells in eighths (█ and ▏…▉), padded to width.
static void bar(char *out, size_t cap, double v, double max, int width, const char *full, const char *const *parts) {
    int eighths = max > 0 && v > 0 ? (int)lround(v / max * width * 8) : 0;
    if (eighths > width * 8) eighths = width * 8;
    size_t n = 0;
    out[0] = '\0';
    int cells = 0;
    for (; eighths >= 8; eighths -= 8, cells++) n += (size_t)snprintf(out + n, cap - n, "%s", full);
    if (eighths > 0 && parts) n += (size_t)snprintf(out + n, cap - n, "%s", parts[eighths - 1]), cells++;
    for (; cells < width && n + 1 < cap; cells++) out[n++] = ' ', out[n] = '\0';
}

static const char *const eighth_blocks[] = {"▏", "▎", "▍", "▌", "▋", "▊", "▉"};

// "σ₁₂"
static void sigma_label(char *out, size_t cap, int i) {
    char digits[16];
    snprintf(digits, sizeof digits, "%d", i);
    size_t n = (size_t)snprintf(out, cap, "σ");
    for (const char *d = digits; *d && n + 4 < cap; d++) n += (size_t)snprintf(out + n, cap - n, "\xe2\x82%c", 0x80 + (*d - '0'));
}

// ---- spectrum -------------------------------------------------------------------------------

static void spectrum_json(cJSON *o, const SpectrumResult *r) {
    cJSON *v = cJSON_AddArrayToObject(o, "singular_values");
    for (int i = 0; i < r->n; i++) {
        char b[32];
        snprintf(b, sizeof b, "%.7g", r->values[i]);
        cJSON_AddItemToArray(v, cJSON_CreateRaw(b));
    }
    json_add_real(o, "spectral_norm", r->spectral_norm);
    json_add_real(o, "frobenius_norm", r->frobenius_norm);
    json_add_real(o, "stable_rank", r->stable_rank);
    json_add_real(o, "effective_rank", r->effective_rank);
    real_or_null(o, "condition_number", r->condition_number);
    cJSON_AddNumberToObject(o, "numerical_rank", r->numerical_rank);
}

static void record_spectrum(Session *s, const SpectrumResult *r) {
    InspectState *st = state(s);
    Err e = {{0}};
    if (st && spectrum_history_record(&st->spectra, current_step(s), r->param, r->values, r->n, &e) != 0)
        out_warning(s, "%s (the spectrum is not kept for compare=)", e.msg);
}

// The recorded steps of param, "0, 5, 20", into buf.
static void recorded_steps(const SpectrumHistory *h, const char *param, int now, char *buf, size_t cap) {
    buf[0] = '\0';
    int shown = 0;
    for (int i = 0; i < h->n; i++) {
        if (strcmp(h->rec[i].param, param) != 0) continue;
        int dup = 0;
        for (int j = 0; j < i; j++) dup |= h->rec[j].step == h->rec[i].step && strcmp(h->rec[j].param, param) == 0;
        if (dup) continue;
        size_t n = strlen(buf);
        if (shown++ == 12) { snprintf(buf + n, cap - n, ", …"); break; }
        snprintf(buf + n, cap - n, "%s%d%s", n ? ", " : "", h->rec[i].step, h->rec[i].step == now ? " (this one)" : "");
    }
}

// *then: the spectrum of now's matrix recorded at step `at`, to compare with (values copied);
// an error naming the steps there are when none was recorded there.
static int spectrum_then(Session *s, const SpectrumResult *now, int at, int step, SpectrumResult *then, Err *err) {
    InspectState *st = state(s);
    char steps[160];
    recorded_steps(&st->spectra, now->param, step, steps, sizeof steps);
    if (at == step)   // the record just made: a chart of the spectrum against itself
        return err_set(err, "compare=%d is this step: nothing to compare (a spectrum recorded at it before `model "
                       "factorize` or `model load` is not kept); recorded: %s", at, steps[0] ? steps : "none");
    const SpectrumRecord *rec = spectrum_history_lookup(&st->spectra, at, now->param);
    if (!rec) {   // the step shown now is no suggestion: comparing with itself shows nothing
        const SpectrumRecord *near = spectrum_history_nearest(&st->spectra, at, now->param, step);
        if (!near)
            return err_set(err, "no spectrum of %s recorded at step %d, nor at another step to compare with: `train` "
                           "records every block matrix at its start and end (not embed or head), `spectrum %s` "
                           "records it now", now->param, at, now->param);
        return err_set(err, "no spectrum of %s recorded at step %d; the nearest other than this one is step %d "
                       "(compare=%d); recorded: %s", now->param, at, near->step, near->step, steps);
    }
    *then = (SpectrumResult){.n = rec->n, .rows = now->rows, .cols = now->cols, .rank = now->rank};
    then->values = malloc(sizeof(float) * (size_t)(rec->n ? rec->n : 1));
    if (!then->values) return err_set(err, "out of memory");
    memcpy(then->values, rec->values, sizeof(float) * (size_t)rec->n);
    snprintf(then->param, sizeof then->param, "%s", rec->param);
    spectrum_summarize(then);
    return 0;
}

// The heading and the bars of σ₁…σ_k: now's, and then's under them (then NULL: none).
static void spectrum_chart(Session *s, const SpectrumResult *now, const SpectrumResult *then, int step, int then_step,
                           int k) {
    char what[96];
    if (now->rank > 0) snprintf(what, sizeof what, "W = A·Bᵀ, %d×%d at rank %d", now->rows, now->cols, now->rank);
    else snprintf(what, sizeof what, "%d×%d", now->rows, now->cols);
    int full = now->rows < now->cols ? now->rows : now->cols;   // past a factorized W's rank: zeros, not listed
    const char *order = then || now->n == 1 ? "" : ", largest first";
    if (now->n < full)
        out_text(s, "%s  %s, step %d: %d singular value%s%s (the other %d are exactly 0: rank ≤ %d)\n", now->param,
                 what, step, now->n, now->n == 1 ? "" : "s", order, full - now->n, now->n);
    else
        out_text(s, "%s  %s, step %d: %d singular value%s%s\n", now->param, what, step, now->n,
                 now->n == 1 ? "" : "s", order);
    if (then) out_text(s, "  █ step %d (now)   ░ step %d\n", step, then_step);
    double max = now->n ? now->values[0] : 0;
    if (then && then->n && then->values[0] > max) max = then->values[0];
    int shown = k < now->n ? k : now->n, color = use_color(s);
    // 40 cells, fewer on a terminal too narrow for "  σ₁₂₃  BAR 0.0001234" (a wrapped bar reads as two)
    int width = table_columns(s) - 20;
    width = width > 40 ? 40 : width < 8 ? 8 : width;
    for (int i = 0; i < shown || (then && i < k && i < then->n); i++) {
        char label[32], b[640], v[32];
        sigma_label(label, sizeof label, i + 1);
        if (i < now->n) {
            bar(b, sizeof b, now->values[i], max, width, "█", eighth_blocks);
            out_text(s, "  %s%*s %s %s\n", label, 5 - text_columns(label), "", b, num(v, sizeof v, now->values[i]));
        }
        if (then && i < then->n) {
            bar(b, sizeof b, then->values[i], max, width, "░", NULL);
            out_text(s, "  %*s %s%s%s %s\n", 5, i < now->n ? "" : label, color ? "\033[2m" : "", b,
                     color ? "\033[0m" : "", num(v, sizeof v, then->values[i]));
        }
    }
    if (shown < now->n) out_text(s, "  (%d more; k=%d shows them all)\n", now->n - shown, now->n);
}

// The summaries, of W or of the factor shown (NAME.A: ‖A‖₂), with then's beside them.
static void spectrum_summary(Session *s, const SpectrumResult *now, const SpectrumResult *then) {
    static const SpectrumResult none;
    const SpectrumResult *t = then ? then : &none;
    size_t len = strlen(now->param);
    const char *m = len > 2 && now->param[len - 2] == '.' ? now->param + len - 1 : "W";
    int full = now->rows < now->cols ? now->rows : now->cols;
    char spectral[32], frobenius[32], stable[40];
    snprintf(spectral, sizeof spectral, "spectral norm ‖%s‖₂", m);
    snprintf(frobenius, sizeof frobenius, "Frobenius norm ‖%s‖_F", m);
    snprintf(stable, sizeof stable, "‖%s‖_F²/‖%s‖₂²", m, m);
    struct { const char *name, *note; double a, b; } rows[] = {
        {spectral, "σ₁", now->spectral_norm, t->spectral_norm},
        {frobenius, "√Σσᵢ²", now->frobenius_norm, t->frobenius_norm},
        {"stable rank", stable, now->stable_rank, t->stable_rank},
        {"effective rank", "exp(entropy of σᵢ/Σσⱼ)", now->effective_rank, t->effective_rank},
        {"condition number", isinf(now->condition_number) ? "σ₁/σ_min, whose smallest are numerically 0"
                             : now->n < full                ? "σ₁/σ_r over the nonzero values"
                                                            : "σ₁/σₙ",
         now->condition_number, t->condition_number},
    };
    if (then) out_text(s, "  %-22s %10s %10s\n", "", "now", "then");
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char x[32], y[32], line[160] = "";
        table_cell(line, sizeof line, rows[i].name, 22, 0);
        table_cell(line, sizeof line, num(x, sizeof x, rows[i].a), 10, 1);
        if (then) table_cell(line, sizeof line, num(y, sizeof y, rows[i].b), 10, 1);
        out_text(s, "  %s (%s)\n", line, rows[i].note);
    }
    if (isinf(now->condition_number))
        out_text(s, "  (rank-deficient: %d of %d values above %.3g)\n", now->numerical_rank, now->n,
                 now->numerical_zero);
}

int cmd_spectrum(Session *s, const Args *a, Err *err) {
    if (session_need_model(s, err) != 0) return -1;
    ensemble_note_single_model(s);
    int k = (int)args_int(a, "k", 10), step = current_step(s);
    if (!state(s)) return err_set(err, "out of memory");
    SpectrumResult now, then = {0};
    if (inspect_spectrum(&s->model, a->pos[0], &now, err) != 0) return -1;
    record_spectrum(s, &now);   // kept before the lookup: compare= names this step too
    int comparing = args_has(a, "compare"), then_step = comparing ? (int)args_int(a, "compare", 0) : 0;
    if (comparing && spectrum_then(s, &now, then_step, step, &then, err) != 0) {
        spectrum_result_free(&now);
        free(then.values);
        return -1;
    }
    spectrum_chart(s, &now, comparing ? &then : NULL, step, then_step, k);
    spectrum_summary(s, &now, comparing ? &then : NULL);
    cJSON *o = s->result;
    cJSON_AddStringToObject(o, "param", now.param);
    cJSON_AddNumberToObject(o, "rows", now.rows);
    cJSON_AddNumberToObject(o, "cols", now.cols);
    cJSON_AddNumberToObject(o, "rank", now.rank);
    cJSON_AddNumberToObject(o, "step", step);
    cJSON_AddNumberToObject(o, "k", k);
    spectrum_json(o, &now);
    if (comparing) {
        cJSON *c = cJSON_AddObjectToObject(o, "compare");
        cJSON_AddNumberToObject(c, "step", then_step);
        spectrum_json(c, &then);
    }
    spectrum_result_free(&now);
    free(then.values);
    return 0;
}

// ---- norms ----------------------------------------------------------------------------------

static void shape_text(char *buf, size_t cap, const InspectMatrix *m) {
    if (m->rank > 0) snprintf(buf, cap, "%d×%d r%d", m->rows, m->cols, m->rank);
    else snprintf(buf, cap, "%d×%d", m->rows, m->cols);
}

// The norms table's column widths: each column as wide as its header and its widest cell, the
// numbers of 4 significant digits when that fits the terminal (80 columns when it is not one),
// else of 3 — so that GPT-2's "blocks.11.mlp.w2  768×3072 r192" rows fit 80 columns; JSON keeps
// every digit. (A fixed width for "0.008223" let "0.000968" push the rest of its row over.)
typedef struct NormsLayout {
    int width[8];
    int digits;
} NormsLayout;

static const char *const norms_head[] = {"matrix", "shape", "‖W‖₂", "‖W‖_F", "st.rank", "‖ΔW‖₂", "‖ΔW‖₂/η", "‖ΔW‖₂/‖W‖₂"};

static void norm_values(const NormRow *r, double v[6]) {
    const double all[6] = {r->spectral, r->frobenius, r->stable_rank, r->dw_spectral, r->dw_over_eta, r->dw_over_w};
    memcpy(v, all, sizeof all);
}

static NormsLayout norms_layout(const Session *s, const NormRow *rows, int n) {
    NormsLayout t = {{0}, 4};
    for (int c = 0; c < 8; c++) t.width[c] = text_columns(norms_head[c]);
    for (int i = 0; i < n; i++) {
        char shape[48];
        shape_text(shape, sizeof shape, &rows[i].mat);
        if (text_columns(rows[i].mat.name) > t.width[0]) t.width[0] = text_columns(rows[i].mat.name);
        if (text_columns(shape) > t.width[1]) t.width[1] = text_columns(shape);
    }
    int limit = table_columns(s);
    for (;; t.digits--) {
        for (int c = 2; c < 8; c++) t.width[c] = text_columns(norms_head[c]);
        for (int i = 0; i < n; i++) {
            double v[6];
            norm_values(&rows[i], v);
            for (int c = 2; c < 8; c++) {
                char b[32];
                int w = text_columns(num_digits(b, sizeof b, v[c - 2], t.digits));
                if (w > t.width[c]) t.width[c] = w;
            }
        }
        int total = 7;   // the spaces between the 8 columns
        for (int c = 0; c < 8; c++) total += t.width[c];
        if (total <= limit || t.digits == 3) return t;
    }
}

int cmd_norms(Session *s, const Args *a, Err *err) {
    if (session_need_model(s, err) != 0) return -1;
    ensemble_note_single_model(s);
    NormsOptions o = {.include_io = args_bool(a, "io", 0)};
    update_reference(s, &o);
    NormRow *rows;
    int n;
    double t0 = now_seconds();
    if (inspect_norms_opts(&s->model, &o, &rows, &n, err) != 0) return -1;
    double seconds = now_seconds() - t0;
    int step = current_step(s);
    int undone = s->has_trainer && trainer_rolled_back(&s->trainer);
    // the block matrices' η, as the rows have it: lr, or the AdamW group's rate where AdamW moved
    // them (renorm's dense)
    float eta = o.lr;
    for (int i = n - 1; i >= 0; i--)
        if (rows[i].mat.layer >= 0) eta = rows[i].eta;
    const char *whose = eta != o.lr ? ", adam_lr's: AdamW moved these matrices" : "";
    if (o.prev && o.include_io && o.io_lr != eta)   // embed and head moved at the AdamW group's rate
        out_text(s, "step %d: ΔW is the update of step %d (η %.4g; embed and head: %.4g)\n", step, step, eta, o.io_lr);
    else if (o.prev) out_text(s, "step %d: ΔW is the update of step %d (η %.4g%s)\n", step, step, eta, whose);
    else if (undone) out_text(s, "step %d: the update after it was undone (a divergence rolled the model back); the ΔW "
                                 "columns appear after the next `step` or `train`\n", step);
    else out_text(s, "step %d: no update to measure yet (the ΔW columns appear after `step` or `train`)\n", step);
    NormsLayout t = norms_layout(s, rows, n);
    char line[512] = "";
    for (int c = 0; c < 8; c++) table_cell(line, sizeof line, norms_head[c], t.width[c], c > 1);
    table_out(s, "", line, t.width, 8, "");
    for (int i = 0; i < n; i++) {
        const NormRow *r = &rows[i];
        char b[6][32], shape[48];
        shape_text(shape, sizeof shape, &r->mat);
        line[0] = '\0';
        table_cell(line, sizeof line, r->mat.name, t.width[0], 0);
        table_cell(line, sizeof line, shape, t.width[1], 0);
        double v[6];
        norm_values(r, v);
        for (int c = 0; c < 6; c++) table_cell(line, sizeof line, num_digits(b[c], sizeof b[c], v[c], t.digits), t.width[c + 2], 1);
        table_out(s, "", line, t.width, 8, "");
        cJSON *j = cJSON_CreateObject();
        cJSON_AddTrueToObject(j, "ok");
        cJSON_AddStringToObject(j, "command", "norms");
        cJSON_AddStringToObject(j, "param", r->mat.name);
        cJSON_AddNumberToObject(j, "rows", r->mat.rows);
        cJSON_AddNumberToObject(j, "cols", r->mat.cols);
        cJSON_AddNumberToObject(j, "rank", r->mat.rank);
        cJSON_AddNumberToObject(j, "layer", r->mat.layer);
        cJSON_AddNumberToObject(j, "step", step);
        real_or_null(j, "spectral", r->spectral);
        real_or_null(j, "frobenius", r->frobenius);
        real_or_null(j, "stable_rank", r->stable_rank);
        real_or_null(j, "dw_spectral", r->dw_spectral);
        real_or_null(j, "dw_over_eta", r->dw_over_eta);
        real_or_null(j, "dw_over_w", r->dw_over_w);
        real_or_null(j, "eta", o.prev ? r->eta : NAN);   // which η the row divides by (adam_lr's for embed)
        out_emit(s, j);
    }
    int dense = 0;
    for (int i = 0; i < n; i++) dense += rows[i].mat.rank == 0;
    out_note(s, "(%d matrices in %.3f s; the norms exact, from %s%s)\n", n, seconds,
             dense == 0 ? "the factors' r×r Grams" : dense == n ? "each matrix's Gram" : "the factors' r×r Grams and each dense matrix's own",
             o.include_io ? "" : "; io=on adds embed and head");
    free(rows);
    return 0;
}

// ---- watch ----------------------------------------------------------------------------------

static int field_index(const char *name) {
    if (strcmp(name, "dw_over_lr") == 0) name = "dw_over_eta";   // its name before it took everyone else's
    for (int i = 0; i < N_WATCH_FIELDS; i++)
        if (strcmp(name, watch_fields[i].name) == 0) return i;
    return -1;
}

static int unknown_field(const char *word, Err *err) {
    Suggest sg;
    suggest_init(&sg, word);
    for (int i = 0; i < N_WATCH_FIELDS; i++) suggest_try(&sg, watch_fields[i].name);
    char list[256] = "";
    for (int i = 0; i < N_WATCH_FIELDS; i++) {
        size_t n = strlen(list);
        snprintf(list + n, sizeof list - n, "%s%s", i ? " " : "", watch_fields[i].name);
    }
    if (suggest_best(&sg)) return err_set(err, "watch: no field '%s': did you mean '%s'? (fields: %s)", word, suggest_best(&sg), list);
    return err_set(err, "watch: no field '%s' (FIELD or FIELD:PARAM; fields: %s)", word, list);
}

// A typed word FIELD[:PARAM|:max|:mean] (PARAM:FIELD is taken too) split in place: the field's
// index (−1: none) and what followed it (*right: NULL or the PARAM, "max", "mean").
static int split_watch_word(char *left, char **right) {
    char *colon = strchr(left, ':');
    *right = NULL;
    if (colon) *colon = '\0', *right = colon + 1;
    int field = field_index(left);
    if (field < 0 && *right && field_index(*right) >= 0) {   // blocks.0.attn.wq:spectral
        field = field_index(*right);
        *right = left;
    }
    return field;
}

// The aggregate a word asks for (its field's own when it names none), and the key it is recorded
// under: the plain FIELD for the field's own aggregate, else FIELD:max or FIELD:mean.
static Aggregate aggregate_key(const struct WatchFieldSpec *f, const char *right, char *key, size_t cap) {
    Aggregate agg = right && *right ? (strcmp(right, "max") == 0 ? AGG_MAX : AGG_MEAN) : f->agg;
    if (agg == f->agg) snprintf(key, cap, "%s", f->name);
    else snprintf(key, cap, "%s:%s", f->name, agg == AGG_MAX ? "max" : "mean");
    return agg;
}

static int is_aggregate(const char *right) {
    return !right || !*right || strcmp(right, "max") == 0 || strcmp(right, "mean") == 0;
}

const char *watch_key(const char *word, char *key, size_t cap) {
    char left[128], *right;
    snprintf(left, sizeof left, "%s", word);
    int field = split_watch_word(left, &right);
    if (field < 0) return NULL;
    if (is_aggregate(right)) aggregate_key(&watch_fields[field], right, key, cap);
    else snprintf(key, cap, "%s:%s", watch_fields[field].name, right);
    return key;
}

const char *watch_title(const char *key, char *title, size_t cap) {
    char left[128], *right;
    snprintf(left, sizeof left, "%s", key);
    int field = split_watch_word(left, &right);
    if (field < 0) return snprintf(title, cap, "watch: %s", key), title;
    const struct WatchFieldSpec *f = &watch_fields[field];
    if (!is_aggregate(right)) snprintf(title, cap, "%s of %s (watch)", f->doc, right);
    else snprintf(title, cap, "%s %s over the block matrices (watch)",
                  aggregate_key(f, right, left, sizeof left) == AGG_MAX ? "max" : "mean", f->doc);
    return title;
}

// One typed word, FIELD[:PARAM|:max|:mean] (PARAM:FIELD is taken too), into *it.
static int parse_watch_word(Session *s, const char *word, WatchItem *it, Err *err) {
    char left[128], *right;
    snprintf(left, sizeof left, "%s", word);
    memset(it, 0, sizeof *it);
    it->field = split_watch_word(left, &right);
    if (it->field < 0) return unknown_field(right && strchr(left, '.') ? right : left, err);
    if (right && !*right)   // `watch spectral:` — a matrix left out, not "every one"
        return err_set(err, "watch: '%s' names nothing after its ':' (a matrix, max or mean; or the field alone)", word);
    const struct WatchFieldSpec *f = &watch_fields[it->field];
    if (is_aggregate(right)) {
        it->agg = aggregate_key(f, right, it->key, sizeof it->key);
        if (f->src == SRC_OPTIM && s->has_model && !model_has_factors(&s->model))
            return err_set(err, "watch %s: the model is dense; σ_A, σ_B and ρ exist for factorized matrices W = A·Bᵀ "
                           "only", word);
        return 0;
    }
    it->agg = f->agg;
    if (session_need_model(s, err) != 0) return -1;
    InspectMatrix m;
    if (inspect_resolve(&s->model, right, &m, err) != 0) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        return err_set(err, "watch %s: %s", word, msg);
    }
    int nm = inspect_matrices(&s->model, 1, NULL, 0), whole = 0;
    InspectMatrix *all = malloc(sizeof *all * (size_t)(nm ? nm : 1));
    if (!all) return err_set(err, "out of memory");
    inspect_matrices(&s->model, 1, all, nm);
    for (int i = 0; i < nm; i++) whole |= strcmp(all[i].name, m.name) == 0;
    free(all);
    if (!whole) return err_set(err, "watch %s: watch takes whole matrices W (e.g. %.*s), not one factor; `spectrum %s` "
                               "shows a factor", word, (int)(strlen(m.name) > 2 ? strlen(m.name) - 2 : 0), m.name, m.name);
    if (f->src == SRC_OPTIM && m.rank == 0)
        return err_set(err, "watch %s: %s is dense; σ_A, σ_B and ρ exist for factorized matrices W = A·Bᵀ only", word,
                       m.name);
    snprintf(it->param, sizeof it->param, "%s", m.name);
    snprintf(it->key, sizeof it->key, "%s:%s", f->name, m.name);
    return 0;
}

static void watch_list(Session *s, const InspectState *st) {
    cJSON *list = cJSON_AddArrayToObject(s->result, "fields");
    cJSON_AddNumberToObject(s->result, "every", st->every);
    if (!st->n_watch) {
        out_text(s, "watching nothing (e.g. `watch spectral dw_over_eta every=10`; `help watch` lists the fields)\n");
        return;
    }
    if (st->every == 1) out_text(s, "watching every step of `train` and `step`:\n");
    else out_text(s, "watching every %d steps of `train` and `step`:\n", st->every);
    int width = 0;   // the keys' column: as wide as the longest
    for (int i = 0; i < st->n_watch; i++)
        if (text_columns(st->watch[i].key) > width) width = text_columns(st->watch[i].key);
    for (int i = 0; i < st->n_watch; i++) {
        const WatchItem *it = &st->watch[i];
        const struct WatchFieldSpec *f = &watch_fields[it->field];
        if (it->param[0]) out_text(s, "  %-*s  %s of %s\n", width, it->key, f->doc, it->param);
        else out_text(s, "  %-*s  %s of %s over the block matrices\n", width, it->key,
                      it->agg == AGG_MAX ? "largest" : "mean", f->doc);
        cJSON_AddItemToArray(list, cJSON_CreateString(it->key));
    }
    if (s->has_ensemble) out_note(s, "(an ensemble trains now: watch records the single model's steps only)\n");
}

int cmd_watch(Session *s, const Args *a, Err *err) {
    InspectState *st = state(s);
    if (!st) return err_set(err, "out of memory");
    if (a->n_pos == 1 && strcmp(a->pos[0], "off") == 0) {
        if (args_has(a, "every")) return err_set(err, "watch off takes no every=");
        out_text(s, st->n_watch ? "watching stopped (%d field%s)\n" : "watching was off\n", st->n_watch,
                 st->n_watch == 1 ? "" : "s");
        st->n_watch = 0;
        st->live[0] = '\0';
        cJSON_AddArrayToObject(s->result, "fields");   // the list's JSON, without its text
        cJSON_AddNumberToObject(s->result, "every", st->every);
        return 0;
    }
    if (a->n_pos > WATCH_MAX) return err_set(err, "watch: at most %d fields (got %d)", WATCH_MAX, a->n_pos);
    WatchItem items[WATCH_MAX];
    int n = 0;
    for (int i = 0; i < a->n_pos; i++) {
        if (parse_watch_word(s, a->pos[i], &items[n], err) != 0) return -1;
        int dup = 0;
        for (int j = 0; j < n; j++) dup |= strcmp(items[j].key, items[n].key) == 0;
        n += !dup;
    }
    if (args_has(a, "every")) st->every = (int)args_int(a, "every", WATCH_DEFAULT_EVERY);
    if (a->n_pos) {
        memcpy(st->watch, items, sizeof items[0] * (size_t)n);
        st->n_watch = n;
        st->live[0] = '\0';
    }
    watch_list(s, st);
    if (a->n_pos || args_has(a, "every"))
        out_note(s, "(each watched step adds a line's \"watch\" values to `log`; `plot FIELD` draws them)\n");
    return 0;
}

// The value of it over rows (norm rows) or the optimizer's diagnostics.
static double watch_value(const Session *s, const WatchItem *it, const NormRow *rows, int n) {
    const struct WatchFieldSpec *f = &watch_fields[it->field];
    double best = NAN, sum = 0;
    int count = 0;
    if (f->src == SRC_OPTIM) {
        const Optimizer *o = &s->trainer.opt;
        for (int i = 0; i < o->n_diag; i++) {
            const MatrixDiag *d = &o->diag[i];
            if (it->param[0] && strcmp(d->name, it->param) != 0) continue;
            double v = it->field == field_index("sigma_a") ? d->sigma_a : it->field == field_index("sigma_b") ? d->sigma_b : d->rho;
            if (!isfinite(v)) continue;
            if (!(v <= best)) best = v;
            sum += v, count++;
        }
    } else {
        for (int i = 0; i < n; i++) {
            const NormRow *r = &rows[i];
            if (it->param[0] ? strcmp(r->mat.name, it->param) != 0 : r->mat.layer < 0) continue;
            const double v[] = {r->spectral, r->frobenius, r->stable_rank, r->dw_spectral, r->dw_over_eta, r->dw_over_w};
            double x = v[it->field];
            if (!isfinite(x)) continue;
            if (!(x <= best)) best = x;
            sum += x, count++;
        }
    }
    if (!count) return NAN;
    return it->param[0] || it->agg == AGG_MAX ? best : sum / count;
}

// On a watch step: measure, hand the values to the run log (they go into this step's record)
// and the live line.
static void watch_step(Session *s, InspectState *st, const StepStats *ss) {
    if (!st->n_watch || st->every <= 0 || ss->step % st->every != 0) return;
    int norms = 0, delta = 0, io = 0;
    for (int i = 0; i < st->n_watch; i++) {
        Source src = watch_fields[st->watch[i].field].src;
        norms |= src != SRC_OPTIM;
        delta |= src == SRC_DELTA;
        io |= strcmp(st->watch[i].param, "embed") == 0 || strcmp(st->watch[i].param, "head") == 0;
    }
    NormRow *rows = NULL;
    int n = 0;
    Err e = {{0}};
    if (norms) {
        NormsOptions o = {.include_io = io};
        if (delta) update_reference(s, &o);
        if (inspect_norms_opts(&s->model, &o, &rows, &n, &e) != 0) {
            out_warning(s, "watch: %s", e.msg);
            rows = NULL, n = 0;
        }
    }
    // the progress lines of the steps until the next watch step repeat these: say whose they are
    size_t used = (size_t)snprintf(st->live, sizeof st->live, "[step %d]", ss->step);
    for (int i = 0; i < st->n_watch; i++) {
        const WatchItem *it = &st->watch[i];
        double v = watch_value(s, it, rows, n);
        if (runlog_watch_pending(&s->runs, it->key, (float)v, &e) != 0) out_warning(s, "watch: %s", e.msg);
        char b[32];
        if (used + 1 < sizeof st->live)
            used += (size_t)snprintf(st->live + used, sizeof st->live - used, " %s%s %s", i ? " " : "", it->key,
                                     num(b, sizeof b, v));
    }
    free(rows);
}

void inspect_after_step(Session *s, const StepStats *ss, int ok) {
    InspectState *st = state(s);
    if (!st) return;
    if (!ok) {   // the parameters went back to those before the failed update; the gradient is not finite
        st->dw_step = st->grad_step = -1;
        return;
    }
    st->dw_step = st->grad_step = s->trainer.step;
    st->dw_lr = ss->lr;
    st->dw_io_lr = ss->io_lr;   // kept: `optim` may switch after it
    st->dw_kind = s->trainer.opt.cfg.kind;
    st->dw_params = s->model.params;
    st->grad_buf = s->model.grads;
    watch_step(s, st, ss);
}

// Multiply-adds of one SVD of every block matrix: a dense m×n costs ~m·n·min(m, n), a factorized
// one two QRs and an r×r core, ~(m + n)·r². Measured on one core (LAPACK): tiny 3–13 ms, small
// 33–121 ms, base factorized (~3e9) 0.25 s, base dense (~1.3e10) 1.4 s.
static double spectra_cost(const Model *m) {
    int nm = inspect_matrices(m, 0, NULL, 0);
    InspectMatrix *all = malloc(sizeof *all * (size_t)(nm ? nm : 1));
    if (!all) return INFINITY;
    inspect_matrices(m, 0, all, nm);
    double cost = 0;
    for (int i = 0; i < nm; i++) {
        double r = all[i].rows, c = all[i].cols, k = all[i].rank;
        cost += k > 0 ? (r + c) * k * k + k * k * k : r * c * (r < c ? r : c);
    }
    free(all);
    return cost;
}

#define SPECTRA_AUTO_MAX 5e9   // above this (~0.5 s), train's start and end keep no spectra

void inspect_record_spectra(Session *s) {
    InspectState *st = state(s);
    Err e = {{0}};
    if (!st || !s->has_model) return;
    if (spectra_cost(&s->model) > SPECTRA_AUTO_MAX) {
        if (!st->spectra_skipped_noted)
            out_note(s, "(this model is too large to keep every matrix's spectrum at each `train` start and end; "
                        "`spectrum PARAM` keeps the one it shows, for compare=)\n");
        st->spectra_skipped_noted = 1;
        return;
    }
    if (spectrum_history_record_all(&st->spectra, &s->model, current_step(s), &e) != 0)
        out_warning(s, "spectra not kept for `spectrum compare=`: %s", e.msg);
}

// A dense model's steps with diagnostics: the optimizer measures only factorized matrices, so the
// run's ‖ΔW‖₂/η (`runs`, `plot dw_over_eta`, the log, train's JSON) comes from the block
// matrices' norms, as `norms` shows them — not again when `watch dw_over_eta` measured it.
float inspect_dense_dw_over_eta(Session *s, const StepStats *ss) {
    if (!ss || !ss->diagnostics || s->trainer.opt.n_diag > 0) return NAN;   // factorized: the optimizer's
    InspectState *st = state(s);
    const WatchItem max_dw = {.field = field_index("dw_over_eta"), .agg = AGG_MAX};   // over the block matrices
    for (int i = 0; st && i < st->n_watch; i++)
        if (st->watch[i].field == max_dw.field && !st->watch[i].param[0] && st->every > 0 && ss->step % st->every == 0)
            return NAN;   // the run takes the watched value
    NormsOptions o = {0};
    update_reference(s, &o);
    NormRow *rows = NULL;
    int n = 0;
    Err e = {{0}};
    if (!o.prev || inspect_norms_opts(&s->model, &o, &rows, &n, &e) != 0) {
        if (e.msg[0]) out_warning(s, "‖ΔW‖₂/η of step %d: %s", ss->step, e.msg);
        return NAN;
    }
    float best = (float)watch_value(s, &max_dw, rows, n);
    free(rows);
    return best;
}

int inspect_watching(const Session *s) { return s->inspect && s->inspect->n_watch > 0; }

int inspect_watch_diag_every(const Session *s) {
    const InspectState *st = s->inspect;
    for (int i = 0; st && i < st->n_watch; i++)
        if (watch_fields[st->watch[i].field].src == SRC_OPTIM) return st->every;
    return 0;
}

const char *inspect_live_text(Session *s) {
    InspectState *st = state(s);
    return st ? st->live : "";
}

// ---- align ----------------------------------------------------------------------------------

// One shaded cell per cosine: █ ≥ 0.75, ▓ ≥ 0.5, ▒ ≥ 0.25, ░ > 0, · ≤ 0, ? undefined.
static const char *shade(double c) {
    if (isnan(c)) return "?";
    return c >= 0.75 ? "█" : c >= 0.5 ? "▓" : c >= 0.25 ? "▒" : c > 0 ? "░" : "·";
}

// An ANSI 256-color from red (cosine ≤ 0) through yellow to green (1).
static int heat_color(double c) {
    if (!isfinite(c) || c <= 0) return 196;
    static const int ramp[] = {196, 202, 208, 214, 220, 226, 190, 154, 118, 82, 46};
    int i = (int)lround(c * 10);
    return ramp[i < 0 ? 0 : i > 10 ? 10 : i];
}

// Each block's cosine from its groups: dot = cos·‖g₁‖·‖g₂‖ summed, over √(Σ‖g₁‖²·Σ‖g₂‖²).
static void layer_cosines(const AlignResult *r, int layers, double *cos) {
    for (int l = 0; l < layers; l++) {
        double xy = 0, xx = 0, yy = 0;
        for (int i = 0; i < r->n; i++) {
            const AlignGroup *g = &r->per_param[i];
            if (g->layer != l) continue;
            if (isfinite(g->cosine)) xy += g->cosine * g->norm1 * g->norm2;
            xx += g->norm1 * g->norm1;
            yy += g->norm2 * g->norm2;
        }
        cos[l] = xx > 0 && yy > 0 ? xy / sqrt(xx * yy) : NAN;
    }
}

static void align_print(Session *s, const AlignResult *r, int layers, const char *lead) {
    char line[512] = "", b[3][32];
    static const int w[] = {22, 8, 11, 11};
    static const char *const head[] = {"param", "cosine", "‖g₁‖", "‖g₂‖"};
    out_text(s, "%s\n", lead);
    for (int c = 0; c < 4; c++) table_cell(line, sizeof line, head[c], w[c], c > 0);
    table_out(s, "  ", line, w, 4, "");
    cJSON *list = cJSON_AddArrayToObject(s->result, "per_param");
    for (int i = 0; i < r->n; i++) {
        const AlignGroup *g = &r->per_param[i];
        line[0] = '\0';
        table_cell(line, sizeof line, g->param, w[0], 0);
        char cosine[32];
        if (isnan(g->cosine)) snprintf(cosine, sizeof cosine, "–");
        else snprintf(cosine, sizeof cosine, "%.4f", g->cosine);
        table_cell(line, sizeof line, cosine, w[1], 1);
        table_cell(line, sizeof line, num(b[1], sizeof b[1], g->norm1), w[2], 1);
        table_cell(line, sizeof line, num(b[2], sizeof b[2], g->norm2), w[3], 1);
        char tail[8];
        snprintf(tail, sizeof tail, " %s", shade(g->cosine));
        table_out(s, "  ", line, w, 4, tail);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "param", g->param);
        cJSON_AddNumberToObject(o, "layer", g->layer);
        real_or_null(o, "cosine", g->cosine);
        real_or_null(o, "norm1", g->norm1);
        real_or_null(o, "norm2", g->norm2);
        cJSON_AddItemToArray(list, o);
    }
    out_text(s, "overall cosine %.4f   norm ratio ‖g₂‖/‖g₁‖ %.4g   (‖g₁‖ %.4g, ‖g₂‖ %.4g)\n", r->overall, r->norm_ratio,
             r->norm1, r->norm2);
    double *cos = malloc(sizeof(double) * (size_t)(layers ? layers : 1));
    cJSON *lj = cJSON_AddArrayToObject(s->result, "layers");
    if (cos && layers > 0) {
        layer_cosines(r, layers, cos);
        int color = use_color(s);
        char strip[4096] = "";
        size_t n = 0;
        for (int l = 0; l < layers && n + 32 < sizeof strip; l++) {
            if (color) n += (size_t)snprintf(strip + n, sizeof strip - n, "\033[38;5;%dm%s\033[0m", heat_color(cos[l]), shade(cos[l]));
            else n += (size_t)snprintf(strip + n, sizeof strip - n, "%s", shade(cos[l]));
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "layer", l);
            real_or_null(o, "cosine", cos[l]);
            cJSON_AddItemToArray(lj, o);
        }
        out_text(s, "per layer  [%s]  blocks 0..%d   (█ ≥ 0.75  ▓ ≥ 0.5  ▒ ≥ 0.25  ░ > 0  · ≤ 0  ? none: a gradient "
                    "of 0)\n", strip, layers - 1);
        char vals[2048] = "";
        size_t m = 0;
        for (int l = 0; l < layers && m + 32 < sizeof vals; l++)
            m += (size_t)snprintf(vals + m, sizeof vals - m, "%s%d: %s", l ? "  " : "", l, num(b[0], sizeof b[0], cos[l]));
        out_text(s, "           %s\n", vals);
    }
    free(cos);
    char word[64];   // r->against: "blockdrop p=0.5 draws=2"; the option's value is its first word
    snprintf(word, sizeof word, "%.*s", (int)strcspn(r->against, " "), r->against);
    cJSON_AddStringToObject(s->result, "against", word);
    cJSON_AddStringToObject(s->result, "setup", r->against);
    real_or_null(s->result, "overall", r->overall);
    real_or_null(s->result, "norm_ratio", r->norm_ratio);
    real_or_null(s->result, "norm1", r->norm1);
    real_or_null(s->result, "norm2", r->norm2);
}

// against=members: member 0's gradient against each other member's, all on one batch.
static int align_members(Session *s, const AlignConfig *cfg, Err *err) {
    Ensemble *e = &s->ens;
    if (e->k < 2) return err_set(err, "align against=members needs at least 2 members (this ensemble has %d)", e->k);
    if (cfg->batches != 1) return err_set(err, "align against=members uses one batch (batches= is not taken)");
    if (e->members[0].cfg.vocab < s->data.vocab_size)
        return err_set(err, "the data's vocabulary (%d) is larger than the members' (%d)", s->data.vocab_size,
                       e->members[0].cfg.vocab);
    int k = e->k;
    int32_t *tokens = malloc(sizeof(int32_t) * (size_t)cfg->B * (cfg->T + 1));
    double *cos = malloc(sizeof(double) * (size_t)k * k);
    const float **gs = malloc(sizeof *gs * (size_t)k);
    int rc = tokens && cos && gs ? 0 : err_set(err, "out of memory");
    uint64_t rng = cfg->seed;
    if (rc == 0) rc = dataset_batch(&s->data, 0, cfg->B, cfg->T, &rng, tokens, err);
    if (rc == 0) rc = ensemble_grad_cosines(e, tokens, cfg->B, cfg->T, cos, err);
    AlignResult r;
    memset(&r, 0, sizeof r);
    for (int i = 1; i < k && gs; i++) gs[i - 1] = e->members[i].grads;
    if (rc == 0) rc = align_compare_members(&e->members[0], e->members[0].grads, gs, k - 1, &r, err);
    if (rc == 0) {
        char lead[200];
        snprintf(lead, sizeof lead, "align against=members: member 0's gradient against %s%d (cosines and ‖g₂‖: "
                 "the mean over %d comparison%s), one batch of %d×%d tokens", k > 2 ? "members 1.." : "member ", k - 1,
                 k - 1, k > 2 ? "s" : "", cfg->B, cfg->T);
        align_print(s, &r, e->members[0].cfg.layers, lead);
        out_text(s, "pairwise cosines of the members' gradients (whole model):\n      ");
        for (int j = 0; j < k; j++) out_text(s, "%8d", j);
        out_text(s, "\n");
        cJSON *pw = cJSON_AddArrayToObject(s->result, "pairwise");
        for (int i = 0; i < k; i++) {
            out_text(s, "  %3d ", i);
            cJSON *row = cJSON_CreateArray();
            for (int j = 0; j < k; j++) {
                out_text(s, "%8.4f", cos[i * k + j]);
                char b[32];
                snprintf(b, sizeof b, "%.7g", cos[i * k + j]);
                cJSON_AddItemToArray(row, isfinite(cos[i * k + j]) ? cJSON_CreateRaw(b) : cJSON_CreateNull());
            }
            out_text(s, "\n");
            cJSON_AddItemToArray(pw, row);
        }
        cJSON_AddNumberToObject(s->result, "members", k);
    }
    align_result_free(&r);
    free(tokens);
    free(cos);
    free(gs);
    return rc;
}

int cmd_align(Session *s, const Args *a, Err *err) {
    const char *against = args_str(a, "against", "microbatch");
    AlignConfig cfg;
    if (align_config_default(&cfg, against, err) != 0) return -1;
    int members = cfg.against == ALIGN_MEMBERS;
    if (members && !s->has_ensemble)
        return err_set(err, "align against=members compares the gradients of ensemble members, and there is no "
                       "ensemble: `ensemble new K` makes one (e.g. ensemble new 3)");
    if (!members && session_need_model(s, err) != 0) return -1;
    if (session_need_data(s, err) != 0) return -1;
    const ModelConfig *mc = members ? &s->ens.members[0].cfg : &s->model.cfg;
    if (!members && s->data.vocab_size > mc->vocab)
        return err_set(err, "the data's vocabulary (%d) is larger than the model's (%d): run `model new`",
                       s->data.vocab_size, mc->vocab);
    int step = members ? s->ens.step : current_step(s);
    int accum;   // the batches every command draws: batch=, seq= or `set batch|seq`
    if (session_batch_shape(s, a, &cfg.B, &cfg.T, &accum, err) != 0) return -1;
    cfg.seed = seed_offset(s->seed, (uint64_t)step);   // reproducible, and new batches as training moves on
    for (int i = 0; i < a->n_opt; i++) {
        if (strcmp(a->key[i], "against") == 0) continue;
        if (align_config_set(&cfg, a->key[i], a->val[i], err) != 0) return -1;
    }
    if (cfg.T > mc->seq) return err_set(err, "seq=%d is longer than the model's context (%d)", cfg.T, mc->seq);
    json_add_u64(s->result, "seed", cfg.seed);   // seed= draws these batches again
    if (members) return align_members(s, &cfg, err);
    ensemble_note_single_model(s);

    float *delayed = NULL;
    if (cfg.against == ALIGN_DELAYED) {
        if (!has_last_gradient(s))
            return err_set(err, "align against=delayed needs the gradient of the previous step, and there is none%s: "
                           "run `step` (or `train`) first, then `align against=delayed` compares the gradient now with "
                           "the one that step used",
                           s->has_trainer && s->trainer.step > 0 ? " for this model's current parameters" : " yet");
        // a copy: align_run computes its own gradients in m->grads (and puts the trainer's back)
        if (inspect_snapshot(&s->model, s->model.grads, &delayed, err) != 0) return -1;
    }
    AlignResult r;
    double t0 = now_seconds();
    cfg.stop = progress_stop_on_interrupt;   // Ctrl-C stops it between batches (batches=3000 ran on)
    int rc = align_run(&s->model, &s->data, &cfg, delayed, &r, err);
    double seconds = now_seconds() - t0;
    inspect_snapshot_free(&s->model, delayed);
    if (rc != 0) return -1;
    char lead[300];
    snprintf(lead, sizeof lead, "align against=%s — step %d, %d batch%s of %d×%d tokens%s", r.against, step, cfg.batches,
             cfg.batches == 1 ? "" : "es", cfg.B, cfg.T,
             cfg.against == ALIGN_DELAYED ? " against the gradient of the last step" : "");
    align_print(s, &r, s->model.cfg.layers, lead);
    out_note(s, "(%.2f s; g₁: the full gradient on %s, g₂: %s)\n", seconds,
             cfg.batches == 1 ? "this batch" : "these batches (averaged)",
             cfg.against == ALIGN_MICROBATCH ? "the gradient of other batches"
             : cfg.against == ALIGN_BLOCKDROP ? "subnetworks skipping each block with probability p, averaged"
             : cfg.against == ALIGN_WIDTH ? "subnetworks keeping a 1−p fraction of heads and MLP units, averaged"
             : cfg.against == ALIGN_DELAYED ? "the gradient of the previous step (its parameters and batch)"
             : "the forward-gradient estimate (projection on the guess)");
    cJSON_AddNumberToObject(s->result, "step", step);
    cJSON_AddNumberToObject(s->result, "batches", cfg.batches);
    align_result_free(&r);
    return 0;
}

// ---- completion -----------------------------------------------------------------------------

const char *inspect_complete(const Session *s, PosKind kind, int i) {
    static char buf[192];
    if (kind == POS_WATCH) {
        if (i == 0) return "off";
        if (--i < N_WATCH_FIELDS) return watch_fields[i].name;
        i -= N_WATCH_FIELDS;
    }
    if (!s || !s->has_model) return NULL;
    int nm = inspect_matrices(&s->model, 1, NULL, 0);
    // spectrum's PARAM: every matrix, then each factorized one's factors NAME.A and NAME.B
    int field = kind == POS_WATCH ? i / (nm ? nm : 1) : 0, at = kind == POS_WATCH ? i % (nm ? nm : 1) : i;
    if (nm == 0 || field >= N_WATCH_FIELDS || (kind == POS_WATCH && at >= nm)) return NULL;
    InspectMatrix *m = malloc(sizeof *m * (size_t)nm);
    if (!m) return NULL;
    inspect_matrices(&s->model, 1, m, nm);
    const char *found = buf;
    if (kind == POS_WATCH && watch_fields[field].src == SRC_OPTIM && m[at].rank == 0) {
        buf[0] = '\0';   // σ and ρ of a dense matrix: none to watch (the caller skips "")
    } else if (kind == POS_WATCH) {
        snprintf(buf, sizeof buf, "%s:%s", watch_fields[field].name, m[at].name);
    } else if (at < nm) {
        snprintf(buf, sizeof buf, "%s", m[at].name);
    } else {
        int factor = at - nm;   // the factor-th factor of the factorized matrices, in table order
        found = NULL;
        for (int j = 0; j < nm && !found; j++) {
            if (m[j].rank == 0) continue;
            if (factor < 2) snprintf(buf, sizeof buf, "%s.%c", m[j].name, factor ? 'B' : 'A'), found = buf;
            factor -= 2;
        }
    }
    free(m);
    return found;
}
