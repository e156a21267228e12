// optim.c — optimizer configs (options by optimizer), state (build, free, the named state
// tensors, a description) and the schedule. The update rules are in optim_step.c.
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "optim.h"
#include "optim_internal.h"
#include "lowrank_norm.h"
#include "rng.h"
#include "number.h"

const char *const optim_names[] = {"sgd", "adamw", "muon", "spectron", "renorm", "ortho", NULL};
_Static_assert(sizeof optim_names / sizeof *optim_names == OPTIM_COUNT + 1, "a name for every OptimKind");

int optim_kind_of(const char *name) {
    for (int i = 0; optim_names[i]; i++)
        if (strcmp(name, optim_names[i]) == 0) return i;
    return -1;
}

#define BIT(k) (1u << (k))
#define ALL (BIT(OPTIM_COUNT) - 1)
#define ORTHO_KINDS (BIT(OPTIM_MUON) | BIT(OPTIM_ORTHO) | BIT(OPTIM_SPECTRON))
#define SPLIT_KINDS (ORTHO_KINDS | BIT(OPTIM_RENORM))            // an AdamW group at adam_lr
#define ADAM_KINDS (SPLIT_KINDS | BIT(OPTIM_ADAMW))
#define MOMENTUM_KINDS (ORTHO_KINDS | BIT(OPTIM_SGD))

enum { OPT_FLOAT, OPT_INT, OPT_BOOL };
static const struct Option {
    const char *key;
    int type;
    size_t offset;
    double lo, hi;
    unsigned kinds;      // BIT(kind) for each optimizer that takes it
    int hidden;          // settable, but not listed (test-only switches)
} options[] = {
    {"lr", OPT_FLOAT, offsetof(OptimConfig, lr), 0, 10, ALL, 0},
    {"adam_lr", OPT_FLOAT, offsetof(OptimConfig, adam_lr), 0, 10, SPLIT_KINDS, 0},
    {"wd", OPT_FLOAT, offsetof(OptimConfig, wd), 0, 10, ALL, 0},
    {"momentum", OPT_FLOAT, offsetof(OptimConfig, momentum), 0, 0.99999, MOMENTUM_KINDS, 0},
    {"nesterov", OPT_BOOL, offsetof(OptimConfig, nesterov), 0, 1, MOMENTUM_KINDS, 0},
    {"ns_steps", OPT_INT, offsetof(OptimConfig, ns_steps), 1, 50, ORTHO_KINDS, 0},
    {"power_iters", OPT_INT, offsetof(OptimConfig, power_iters), 1, 100, BIT(OPTIM_SPECTRON) | BIT(OPTIM_RENORM), 0},
    {"shape_scale", OPT_BOOL, offsetof(OptimConfig, shape_scale), 0, 1, SPLIT_KINDS, 0},
    {"beta1", OPT_FLOAT, offsetof(OptimConfig, beta1), 0, 0.99999, ADAM_KINDS, 0},
    {"beta2", OPT_FLOAT, offsetof(OptimConfig, beta2), 0, 0.99999, ADAM_KINDS, 0},
    {"eps", OPT_FLOAT, offsetof(OptimConfig, eps), 0, 1, ADAM_KINDS, 0},
    {"clip", OPT_FLOAT, offsetof(OptimConfig, clip), 0, 1e9, ALL, 0},
    {"warmup", OPT_INT, offsetof(OptimConfig, warmup), 0, 1e9, ALL, 0},
    {"horizon", OPT_INT, offsetof(OptimConfig, horizon), 0, 1e9, ALL, 0},
    {"min_lr_ratio", OPT_FLOAT, offsetof(OptimConfig, min_lr_ratio), 0, 1, ALL, 0},
    {"exact_polar", OPT_BOOL, offsetof(OptimConfig, exact_polar), 0, 1, ORTHO_KINDS, 1},
};
#define N_OPTIONS (int)(sizeof options / sizeof options[0])

int optim_config_default(OptimConfig *cfg, const char *name, Err *err) {
    int kind = optim_kind_of(name);
    if (kind < 0) {
        char known[128] = "";
        for (int i = 0; optim_names[i]; i++)
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "", optim_names[i]);
        return err_set(err, "unknown optimizer '%s' (known: %s)", name, known);
    }
    // Shared: AdamW β = 0.9/0.95, clipping at 1, 10 warm-up steps. The matrix rules use Muon's
    // lr 0.02 with adam_lr 3e-3 for the rest; wd 0.01 there, since the decay uses the matrix lr.
    *cfg = (OptimConfig){.kind = kind, .lr = 0.02f, .adam_lr = 3e-3f, .min_lr_ratio = 0.1f, .wd = 0.01f,
                         .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .clip = 1.0f, .warmup = 10, .horizon = 0,
                         .momentum = 0.95f, .nesterov = 1, .ns_steps = 5, .power_iters = 1};
    if (kind == OPTIM_ADAMW) {
        cfg->lr = 1e-3f;
        cfg->wd = 0.1f;
    } else if (kind == OPTIM_SGD) {
        cfg->lr = 0.05f;
        cfg->wd = 0.0f;
        cfg->momentum = 0.9f;
        cfg->nesterov = 0;
    }
    snprintf(cfg->name, sizeof cfg->name, "%s", name);
    return 0;
}

static const struct Option *find_option(const char *key) {
    for (int i = 0; i < N_OPTIONS; i++)
        if (strcmp(options[i].key, key) == 0) return &options[i];
    return NULL;
}

static int takes(const OptimConfig *cfg, const struct Option *o) { return (o->kinds & BIT(cfg->kind)) != 0; }

const char *optim_config_key(const OptimConfig *cfg, int i) {
    for (int k = 0; k < N_OPTIONS; k++)
        if (takes(cfg, &options[k]) && !options[k].hidden && i-- == 0) return options[k].key;
    return NULL;
}

static int unknown_option(const OptimConfig *cfg, const char *key, Err *err) {
    char list[256] = "";
    size_t used = 0;
    for (int i = 0; optim_config_key(cfg, i) && used < sizeof list; i++)
        used += snprintf(list + used, sizeof list - used, "%s%s", i ? " " : "", optim_config_key(cfg, i));
    return err_set(err, "unknown option '%s' for optimizer %s (it takes: %s)", key, cfg->name, list);
}

int optim_config_set(OptimConfig *cfg, const char *key, const char *value, Err *err) {
    const struct Option *o = find_option(key);
    if (!o || !takes(cfg, o)) return unknown_option(cfg, key, err);
    void *field = (char *)cfg + o->offset;
    char *end;
    if (o->type == OPT_BOOL) {
        if (parse_bool(value, field))
            return err_set(err, "option %s= expects on or off (yes or no), got '%s'", key, value);
        return 0;
    }
    double v = 0;
    errno = 0;   // strtod's ERANGE: a value below double's range too (1e-400), or subnormal
    int bad = o->type == OPT_FLOAT ? parse_decimal(value, &v) : (v = (double)strtol(value, &end, 10), end == value || *end);
    if (bad) {   // worded as the shell words its own options
        char hint[96];
        parse_number_hint(value, o->type != OPT_FLOAT, hint, sizeof hint);
        return err_set(err, "option %s= expects %s, got '%s'%s", key, o->type == OPT_FLOAT ? "a number" : "an integer",
                       value, hint);
    }
    if (!(v >= o->lo && v <= o->hi))
        return err_set(err, o->type == OPT_FLOAT ? "option %s= must be between %g and %g, got %s"
                                                 : "option %s= must be between %.0f and %.0f, got %s",   // 1000000000, not 1e+09
                       key, o->lo, o->hi, value);
    // a value float cannot hold apart from 0 would act as 0 (clip=1e-40 turned clipping off).
    // The float stored is tested (FLT_MIN saved as 1.17549435e-38 reads back as it), and the
    // text for "not zero": subnormals compare equal to 0 here (the CPU backend flushes them)
    int underflow = errno == ERANGE && fabs(v) < 1;
    float stored = (float)v;
    int nonzero = strcspn(value, "123456789") < strcspn(value, "eE");
    if (o->type == OPT_FLOAT && nonzero && (underflow || !(fabsf(stored) >= FLT_MIN)))
        return err_set(err, "option %s=%s is below the smallest float (%.3g), so it would act as 0", key, value, FLT_MIN);
    if (o->type == OPT_FLOAT) *(float *)field = v == 0 ? 0.0f : (float)v;   // -0 is 0
    else *(int *)field = (int)v;
    return 0;
}

const char *optim_config_range(const char *key, char *buf, size_t cap) {
    const struct Option *o = find_option(key);
    if (!o) return NULL;
    if (o->type == OPT_BOOL) snprintf(buf, cap, "on|off");
    else snprintf(buf, cap, o->type == OPT_INT ? "integer %.0f..%.0f" : "number %g..%g", o->lo, o->hi);
    return buf;
}

int optim_config_get(const OptimConfig *cfg, const char *key, char *buf, size_t cap, Err *err) {
    const struct Option *o = find_option(key);
    if (!o || !takes(cfg, o)) return unknown_option(cfg, key, err);
    const void *field = (const char *)cfg + o->offset;
    if (o->type == OPT_FLOAT) snprintf(buf, cap, "%.9g", *(const float *)field);
    else if (o->type == OPT_INT) snprintf(buf, cap, "%d", *(const int *)field);
    else snprintf(buf, cap, "%s", *(const int *)field ? "on" : "off");   // as every on|off option reads
    return 0;
}

// The shell numbers steps from 1 (step = 0 here is its step 1): warm-up reaches peak at its
// step warmup=, the cosine min_lr_ratio·peak at its step horizon=.
static float scheduled(const OptimConfig *c, float peak, int step) {
    if (step < c->warmup) return peak * (float)(step + 1) / (float)c->warmup;
    if (c->horizon <= c->warmup) return peak;
    float progress = (float)(step + 1 - c->warmup) / (float)(c->horizon - c->warmup);
    if (progress > 1.0f) progress = 1.0f;
    float cosine = 0.5f * (1.0f + cosf(3.14159265f * progress));  // 1 → 0
    float floor = peak * c->min_lr_ratio;
    return floor + (peak - floor) * cosine;
}

float optimizer_lr(const OptimConfig *c, int step) { return scheduled(c, c->lr, step); }

// adam_lr on lr's schedule: lr's rate scaled by adam_lr/lr — the same rate as adam_lr scheduled,
// in the rounding every run so far was computed with (at lr 0.05 the last bit moves whole runs)
// — and with lr=0, the matrices held still, adam_lr scheduled itself (the scaling gave 0).
float optimizer_io_lr(const OptimConfig *c, int step) {
    if (!(BIT(c->kind) & SPLIT_KINDS)) return optimizer_lr(c, step);   // one rate for every tensor
    return c->lr > 0 ? c->adam_lr * (optimizer_lr(c, step) / c->lr) : scheduled(c, c->adam_lr, step);
}

// ---------------------------------------------------------------------------------------------
// state

Rule tensor_rule(OptimKind kind, TensorRole role) {
    int matrix = role == ROLE_DENSE || role == ROLE_FACTOR_A || role == ROLE_FACTOR_B;
    int factor = role == ROLE_FACTOR_A || role == ROLE_FACTOR_B;
    switch (kind) {
    case OPTIM_SGD: return RULE_SGD;
    case OPTIM_ADAMW: return RULE_ADAMW;
    case OPTIM_MUON:
    case OPTIM_ORTHO: return matrix ? RULE_MUON : RULE_ADAMW;
    case OPTIM_SPECTRON: return factor ? RULE_SPECTRON : matrix ? RULE_MUON : RULE_ADAMW;
    case OPTIM_RENORM: return factor ? RULE_RENORM : RULE_ADAMW;
    }
    return RULE_ADAMW;
}

float optimizer_tensor_lr(OptimKind kind, TensorRole role, float lr, float io_lr) {
    return tensor_rule(kind, role) == RULE_ADAMW ? io_lr : lr;
}

static int uses_v(Rule r) { return r == RULE_ADAMW || r == RULE_RENORM; }

size_t ortho_slot(int rows, int cols) { return (size_t)rows * cols + newton_schulz5_work(rows, cols); }

static int orthogonalized(OptimKind kind, TensorRole role) {
    Rule r = tensor_rule(kind, role);
    return r == RULE_MUON || r == RULE_SPECTRON;
}

// The orthogonalization area's floats: room for every matrix of the shape that needs the most
// together, within ORTHO_BUDGET, and never less than two of the largest.
static size_t ortho_area(const Model *m, OptimKind kind) {
    size_t largest = 0, most = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const TensorDesc *t = &m->tensors[i];
        if (!orthogonalized(kind, t->role)) continue;
        size_t same = 0;
        for (int j = 0; j < m->n_tensors; j++) {
            const TensorDesc *u = &m->tensors[j];
            same += orthogonalized(kind, u->role) && u->rows == t->rows && u->cols == t->cols;
        }
        size_t slot = ortho_slot(t->rows, t->cols), need = (same < NS5_MAX_BATCH ? same : NS5_MAX_BATCH) * slot;
        if (slot > largest) largest = slot;
        if (need > most) most = need;
    }
    if (most > ORTHO_BUDGET) most = ORTHO_BUDGET;
    return most > 2 * largest ? most : 2 * largest;
}

int ortho_slots(const WorkLayout *w, int rows, int cols) {
    size_t n = w->ortho_floats / ortho_slot(rows, cols);
    return n > NS5_MAX_BATCH ? NS5_MAX_BATCH : (int)n;
}

void work_layout(const Model *m, OptimKind kind, WorkLayout *w) {
    size_t delta = 0, pw = 0, pw_all = 0, gram = 0;
    int eye = 1;
    for (int i = 0; i < m->n_tensors; i++) {
        const TensorDesc *t = &m->tensors[i];
        size_t n = (size_t)t->rows * t->cols;
        if (t->role != ROLE_DENSE && t->role != ROLE_FACTOR_A && t->role != ROLE_FACTOR_B) continue;
        if (t->rows < t->cols ? t->rows > eye : t->cols > eye) eye = t->rows < t->cols ? t->rows : t->cols;
        if (t->role != ROLE_DENSE) pw_all += (size_t)t->rows + t->cols;
        if (t->role != ROLE_FACTOR_A || i + 1 >= m->n_tensors) continue;
        const TensorDesc *b = &m->tensors[i + 1];
        size_t both = n + (size_t)b->rows * b->cols, p = (size_t)t->rows + b->rows + t->cols;
        size_t grams = diag_gram_floats(t->cols);
        if (both > delta) delta = both;
        if (p > pw) pw = p;
        if (grams > gram) gram = grams;
    }
    w->ortho = 0;
    w->ortho_floats = ortho_area(m, kind);
    w->delta = w->ortho + w->ortho_floats;
    w->gram = w->delta + delta;
    w->gram_floats = DIAG_CHUNK * gram;
    w->pw = w->gram + w->gram_floats;
    w->pw_all = w->pw + pw;
    w->eye = w->pw_all + pw_all;
    w->eye_n = eye;
    w->total = w->eye + (size_t)eye * eye;
}

// Random unit vectors, then WARM_ITERS power-iteration steps on the current factors, so the
// first update's σ estimates are already good.
#define WARM_ITERS 10
static int init_vectors(Optimizer *opt, const Model *m) {
    WorkLayout w;
    work_layout(m, opt->cfg.kind, &w);
    float *h = malloc(sizeof(float) * (opt->n_vec ? opt->n_vec : 1));
    float *eye = calloc((size_t)w.eye_n * w.eye_n + 1, sizeof(float));
    if (!h || !eye) { free(h); free(eye); return -1; }
    uint64_t s = 0x5eed5eedull;
    for (size_t i = 0; i < opt->n_vec; i++) h[i] = rng_normal(&s);
    for (int d = 0; d < opt->n_diag; d++) {       // normalize each vector: pv_a, pv_b
        const MatrixDiag *g = &opt->diag[d];
        float *v = h + g->vec_at;
        for (int k = 0; k < 2; v += g->rank, k++) {
            double ss = 0;
            for (int i = 0; i < g->rank; i++) ss += (double)v[i] * v[i];
            for (int i = 0; i < g->rank; i++) v[i] = (float)(v[i] / sqrt(ss));
        }
    }
    m->be->upload(opt->vec, h, sizeof(float) * opt->n_vec);
    free(h);
    for (int i = 0; i < w.eye_n; i++) eye[(size_t)i * w.eye_n + i] = 1.0f;
    m->be->upload(opt->work + w.eye, eye, sizeof(float) * w.eye_n * w.eye_n);
    free(eye);
    for (int d = 0; d < opt->n_diag; d++) {
        const MatrixDiag *g = &opt->diag[d];
        const float *a = param(m, g->tensor_a), *b = param(m, g->tensor_b);
        float *v = opt->vec + g->vec_at;
        LinOp opa = {g->rows, g->rank, 0, a, NULL, NULL, NULL}, opb = {g->cols, g->rank, 0, b, NULL, NULL, NULL};
        power_iteration(m->be, &opa, v, WARM_ITERS, opt->work + w.pw);
        power_iteration(m->be, &opb, v + g->rank, WARM_ITERS, opt->work + w.pw);
    }
    return 0;
}

static int build_diag(Optimizer *opt, const Model *m) {
    int n = 0;
    for (int i = 0; i + 1 < m->n_tensors; i++)
        n += m->tensors[i].role == ROLE_FACTOR_A && m->tensors[i + 1].role == ROLE_FACTOR_B;
    opt->diag = calloc(n ? n : 1, sizeof *opt->diag);
    if (!opt->diag) return -1;
    for (int i = 0; i + 1 < m->n_tensors; i++) {
        const TensorDesc *a = &m->tensors[i], *b = &m->tensors[i + 1];
        if (a->role != ROLE_FACTOR_A || b->role != ROLE_FACTOR_B) continue;
        MatrixDiag *g = &opt->diag[opt->n_diag++];
        size_t len = strlen(a->name);
        *g = (MatrixDiag){.tensor_a = i, .tensor_b = i + 1, .rows = a->rows, .cols = b->rows, .rank = a->cols,
                          .sigma_a = NAN, .sigma_b = NAN, .rho = NAN, .dw_norm = NAN, .dw_over_eta = NAN,
                          .w_norm = NAN, .vec_at = opt->n_vec};
        snprintf(g->name, sizeof g->name, "%.*s", (int)(len > 2 ? len - 2 : len), a->name);   // drop ".A"
        opt->n_vec += 2 * (size_t)a->cols;   // pv_a, pv_b (rank each)
    }
    return 0;
}

void optimizer_sizes(const Model *m, const OptimConfig *cfg, size_t *n_vec, size_t *n_work) {
    WorkLayout w;
    work_layout(m, cfg->kind, &w);
    *n_work = w.total;
    *n_vec = 0;
    for (int i = 0; i + 1 < m->n_tensors; i++)   // as build_diag: pv_a, pv_b of rank each a factor pair
        if (m->tensors[i].role == ROLE_FACTOR_A && m->tensors[i + 1].role == ROLE_FACTOR_B)
            *n_vec += 2 * (size_t)m->tensors[i].cols;
}

int optimizer_build(Optimizer *opt, const Model *m, const OptimConfig *cfg, Err *err) {
    memset(opt, 0, sizeof *opt);
    opt->cfg = *cfg;
    if (cfg->kind < 0 || cfg->kind >= OPTIM_COUNT || strcmp(cfg->name, optim_names[cfg->kind]) != 0)
        return err_set(err, "optimizer config '%s' does not match its kind: build it with optim_config_default", cfg->name);
    WorkLayout w;
    work_layout(m, cfg->kind, &w);
    int diag_ok = build_diag(opt, m) == 0;
    opt->n_work = w.total;
    opt->m = m->be->alloc(m->n_params * sizeof(float));
    opt->v = m->be->alloc(m->n_params * sizeof(float));
    opt->vec = m->be->alloc((opt->n_vec ? opt->n_vec : 1) * sizeof(float));
    opt->work = m->be->alloc((w.total ? w.total : 1) * sizeof(float));
    if (!diag_ok || !opt->m || !opt->v || !opt->vec || !opt->work || init_vectors(opt, m) != 0) {
        double mb = (2.0 * m->n_params + (double)opt->n_vec + (double)w.total) * 4 / 1e6;
        optimizer_free(opt, m);
        return err_set(err, "out of memory: %s state needs %.1f MB", cfg->name, mb);
    }
    return 0;
}

int optimizer_retune(Optimizer *opt, const OptimConfig *cfg, Err *err) {
    if (cfg->kind != opt->cfg.kind || strcmp(cfg->name, opt->cfg.name) != 0)
        return err_set(err, "%s's state cannot serve %s: build a new optimizer", opt->cfg.name, cfg->name);
    opt->cfg = *cfg;
    return 0;
}

void optimizer_free(Optimizer *opt, const Model *m) {
    m->be->release(opt->m);
    m->be->release(opt->v);
    m->be->release(opt->vec);
    m->be->release(opt->work);
    free(opt->diag);
    opt->m = opt->v = opt->vec = opt->work = NULL;
    opt->diag = NULL;
    opt->n_diag = 0;
}

static void add_state(StateTensor *out, int cap, int *n, const char *prefix, const char *name, float *data,
                      int rows, int cols, int tensor, int required) {
    if (*n < cap) {
        StateTensor *s = &out[*n];
        *s = (StateTensor){.data = data, .rows = rows, .cols = cols, .numel = (long)rows * cols,
                           .tensor = tensor, .required = required};
        snprintf(s->name, sizeof s->name, "optim.%s.%s", prefix, name);
    }
    (*n)++;
}

int optimizer_state_tensors(const Optimizer *opt, const Model *m, StateTensor *out, int cap) {
    int n = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const TensorDesc *t = &m->tensors[i];
        add_state(out, cap, &n, "m", t->name, opt->m + t->offset, t->rows, t->cols, i, 1);
        if (uses_v(tensor_rule(opt->cfg.kind, t->role)))
            add_state(out, cap, &n, "v", t->name, opt->v + t->offset, t->rows, t->cols, i, 1);
    }
    int spectral = opt->cfg.kind == OPTIM_SPECTRON || opt->cfg.kind == OPTIM_RENORM;
    for (int d = 0; d < opt->n_diag; d++) {
        const MatrixDiag *g = &opt->diag[d];
        float *v = opt->vec + g->vec_at;
        add_state(out, cap, &n, "pv", m->tensors[g->tensor_a].name, v, 1, g->rank, g->tensor_a, spectral);
        add_state(out, cap, &n, "pv", m->tensors[g->tensor_b].name, v + g->rank, 1, g->rank, g->tensor_b, spectral);
    }
    return n;
}

// "5.3M", "12.3k", "768"
static void count_text(char *buf, size_t cap, double n) {
    if (n >= 1e6) snprintf(buf, cap, "%.1fM", n / 1e6);
    else if (n >= 1e3) snprintf(buf, cap, "%.1fk", n / 1e3);
    else snprintf(buf, cap, "%.0f", n);
}

void optimizer_state_describe(const Optimizer *opt, const Model *m, char *buf, size_t cap) {
    double mom = 0, adam = 0, vecs = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const TensorDesc *t = &m->tensors[i];
        double n = (double)t->rows * t->cols;
        if (uses_v(tensor_rule(opt->cfg.kind, t->role))) adam += n;
        else mom += n;
    }
    for (int d = 0; d < opt->n_diag; d++) vecs += 2.0 * opt->diag[d].rank;
    char a[32], b[32], c[32];
    count_text(a, sizeof a, mom);
    count_text(b, sizeof b, adam);
    count_text(c, sizeof c, vecs);
    int kind = opt->cfg.kind, spectral = kind == OPTIM_SPECTRON || kind == OPTIM_RENORM;
    const char *adam_name = kind == OPTIM_RENORM ? "Adam moments" : "AdamW moments";
    size_t used = 0;
    buf[0] = 0;
    if (mom > 0) used += snprintf(buf + used, cap - used, "%s (%s values)", kind == OPTIM_SGD ? "SGD momentum" : "momentum", a);
    if (adam > 0 && used < cap)
        used += snprintf(buf + used, cap - used, "%s%s (2 × %s values)", used ? " + " : "", adam_name, b);
    if (spectral && vecs > 0 && used < cap)
        snprintf(buf + used, cap - used, " + power-iteration vectors (%s values)", c);
}
