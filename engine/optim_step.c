// optim_step.c — one optimizer update: the rules (AdamW, SGD, Muon, Spectron, renorm) over the
// tensor table, and the spectral diagnostics of the factorized matrices. Everything computes
// through the Backend; only per-matrix scalars (norms) come back to the host.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "optim_internal.h"
#include "lowrank_norm.h"

typedef struct StepCtx {
    Optimizer *opt;
    Model *m;
    const Backend *be;
    float lr;          // the matrices' rate this step (η)
    float adam_lr;     // the AdamW group's rate this step
    float gs;          // gradient scale (clipping)
    int diag_now;      // compute ‖ΔW‖₂ and ‖W‖₂ this step
    WorkLayout w;
} StepCtx;

static long numel(const TensorDesc *t) { return (long)t->rows * t->cols; }
static float *moment(const StepCtx *c, int i) { return c->opt->m + c->m->tensors[i].offset; }
static float *work(const StepCtx *c, size_t at) { return c->opt->work + at; }
static float weight_decay(const StepCtx *c, int i) {
    return c->m->tensors[i].role == ROLE_NORM ? 0.0f : c->opt->cfg.wd;   // no decay on norm gains
}

static void adamw_tensor(const StepCtx *c, int i, float lr) {
    const OptimConfig *k = &c->opt->cfg;
    size_t at = c->m->tensors[i].offset;
    c->be->adamw_update(c->m->params + at, c->m->grads + at, c->opt->m + at, c->opt->v + at,
                        numel(&c->m->tensors[i]), lr, k->beta1, k->beta2, k->eps, weight_decay(c, i), c->gs,
                        c->opt->t);
}

// SGD with PyTorch's momentum (M ← μM + G; the step M, or G + μM with Nesterov) and decoupled
// weight decay P ← (1 − lr·wd)P, as AdamW decays (PyTorch's SGD adds wd·P to G instead).
static void sgd_tensor(const StepCtx *c, int i) {
    const OptimConfig *k = &c->opt->cfg;
    long n = numel(&c->m->tensors[i]);
    float *p = param(c->m, i), *g = grad(c->m, i), *mom = moment(c, i);
    float mu = k->momentum, decay = 1.0f - c->lr * weight_decay(c, i);
    c->be->axpby(mom, c->gs, g, mu, n);
    if (k->nesterov) {
        c->be->axpby(p, -c->lr * c->gs, g, decay, n);
        c->be->axpby(p, -c->lr * mu, mom, 1.0f, n);
    } else {
        c->be->axpby(p, -c->lr, mom, decay, n);
    }
}

// One matrix to orthogonalize this step (Muon, Spectron): tensor, and its step η or ρ.
typedef struct OrthoJob {
    int tensor;
    float step;
} OrthoJob;

// Muon's shape factor √max(1, rows/cols) when shape_scale is on.
static float shape_factor(const StepCtx *c, int i) {
    const TensorDesc *t = &c->m->tensors[i];
    return c->opt->cfg.shape_scale && t->rows > t->cols ? sqrtf((float)t->rows / (float)t->cols) : 1.0f;
}

// Muon's momentum of every job, and into its slot x_j what gets orthogonalized: M ← βM + (1−β)G,
// then x = G + β(M − G) (Nesterov) or M; each pass one axpby_batch over the jobs.
static void ortho_momentum(const StepCtx *c, const OrthoJob *jobs, int count, float *const *x) {
    const OptimConfig *k = &c->opt->cfg;
    float beta = k->momentum, alpha = (1.0f - beta) * c->gs;
    AxpbyCall mom[NS5_MAX_BATCH] = {{0}}, copy[NS5_MAX_BATCH] = {{0}}, nesterov[NS5_MAX_BATCH] = {{0}};
    for (int j = 0; j < count; j++) {
        int i = jobs[j].tensor;
        long n = numel(&c->m->tensors[i]);
        mom[j] = (AxpbyCall){moment(c, i), alpha, grad(c->m, i), beta, n};    // M = βM + (1−β)G
        copy[j] = (AxpbyCall){x[j], 1.0f, moment(c, i), 0.0f, n};             // x = M
        nesterov[j] = (AxpbyCall){x[j], alpha, grad(c->m, i), beta, n};       // βM + (1−β)G = G + β(M − G)
    }
    c->be->axpby_batch(mom, count);
    c->be->axpby_batch(copy, count);
    if (k->nesterov) c->be->axpby_batch(nesterov, count);
}

// Carves the orthogonalization area for the jobs: their matrices one after another, then their
// Newton–Schulz scratch likewise — evenly spaced when the shapes are equal, as ortho_all's
// batches are, so that a batch's copies are one strided add_matrix.
static void carve_ortho_area(const StepCtx *c, const OrthoJob *jobs, int count, float **x, float **scratch) {
    size_t at = c->w.ortho;
    for (int j = 0; j < count; j++) {
        const TensorDesc *t = &c->m->tensors[jobs[j].tensor];
        x[j] = work(c, at);
        at += (size_t)t->rows * t->cols;
    }
    for (int j = 0; j < count; j++) {
        const TensorDesc *t = &c->m->tensors[jobs[j].tensor];
        scratch[j] = work(c, at);
        at += newton_schulz5_work(t->rows, t->cols);
    }
}

// Matrices that fit the orthogonalization area together (one of ortho_all's batches): the
// momenta into their slots, NS5 of all as one batch (or the exact polar factor, a test-only
// switch), then P ← (1 − η·wd)·P − step·shape·O, the decay with the unscaled η whatever the step.
static int ortho_batch(const StepCtx *c, const OrthoJob *jobs, int count, Err *err) {
    const OptimConfig *k = &c->opt->cfg;
    NS5Job ns[NS5_MAX_BATCH] = {{0}};
    float *x[NS5_MAX_BATCH], *scratch[NS5_MAX_BATCH];
    carve_ortho_area(c, jobs, count, x, scratch);
    ortho_momentum(c, jobs, count, x);
    for (int j = 0; j < count; j++) {
        const TensorDesc *t = &c->m->tensors[jobs[j].tensor];
        if (k->exact_polar && polar_exact(c->be, x[j], t->rows, t->cols, err)) return -1;
        ns[j] = (NS5Job){x[j], t->rows, t->cols, scratch[j]};
    }
    if (!k->exact_polar) newton_schulz5_batch(c->be, ns, count, k->ns_steps, work(c, c->w.eye), c->w.eye_n);
    AxpbyCall update[NS5_MAX_BATCH] = {{0}};
    for (int j = 0; j < count; j++) {
        int i = jobs[j].tensor;
        update[j] = (AxpbyCall){param(c->m, i), -jobs[j].step * shape_factor(c, i), x[j],
                                1.0f - c->lr * weight_decay(c, i), numel(&c->m->tensors[i])};
    }
    c->be->axpby_batch(update, count);
    return 0;
}

// Every job, those of one shape in batches of as many as the area holds (ortho_slots), in
// tensor order: Newton–Schulz across layers, each of its stages one gemm_batch of equal
// products (one launch on a GPU). Each matrix's arithmetic is the same as alone, so the result
// is too.
static int ortho_all(const StepCtx *c, const OrthoJob *jobs, int n, Err *err) {
    char *done = calloc(n > 0 ? (size_t)n : 1, 1);
    if (!done) return err_set(err, "out of memory for %d orthogonalization jobs", n);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        if (done[i]) continue;
        const TensorDesc *t = &c->m->tensors[jobs[i].tensor];
        OrthoJob batch[NS5_MAX_BATCH];
        int count = 0, room = ortho_slots(&c->w, t->rows, t->cols);
        if (c->opt->batch_cap > 0 && room > c->opt->batch_cap) room = c->opt->batch_cap;
        for (int j = i; j < n && count < room; j++) {
            const TensorDesc *u = &c->m->tensors[jobs[j].tensor];
            if (!done[j] && u->rows == t->rows && u->cols == t->cols) batch[count++] = jobs[j], done[j] = 1;
        }
        rc = ortho_batch(c, batch, count, err);
    }
    free(done);
    return rc;
}

// The AdamW direction at step ρ·shape; decay η·wd, passed as the kernel's lr·wd.
static void renorm_tensor(const StepCtx *c, int i, float rho) {
    const OptimConfig *k = &c->opt->cfg;
    size_t at = c->m->tensors[i].offset;
    float step = rho * shape_factor(c, i), wd = step > 0 ? c->lr * weight_decay(c, i) / step : 0.0f;
    c->be->adamw_update(c->m->params + at, c->m->grads + at, c->opt->m + at, c->opt->v + at,
                        numel(&c->m->tensors[i]), step, k->beta1, k->beta2, k->eps, wd, c->gs, c->opt->t);
}

// One tensor by a rule that updates it alone; step is ρ for renorm's factors. (Muon and
// Spectron's tensors are orthogonalized across layers instead: ortho_all.)
static void update_tensor(const StepCtx *c, int i, float step) {
    switch (tensor_rule(c->opt->cfg.kind, c->m->tensors[i].role)) {
    case RULE_SGD: sgd_tensor(c, i); return;
    case RULE_ADAMW: adamw_tensor(c, i, c->adam_lr); return;
    case RULE_RENORM: renorm_tensor(c, i, step); return;
    case RULE_MUON: case RULE_SPECTRON: return;   // never sent here (update_pair, optimizer_step)
    }
}

// σ_A, σ_B of every factorized matrix for spectron and renorm, which need them every step for
// ρ = η/(σ_A + σ_B + 1): power_iters warm-started power-iteration steps on the factors before
// any update, all of them as one batch, so a GPU waits once per power-iteration step.
static int factor_sigmas(const StepCtx *c, Err *err) {
    const OptimConfig *k = &c->opt->cfg;
    Optimizer *opt = c->opt;
    Rule rule = tensor_rule(k->kind, ROLE_FACTOR_A);
    int spectral = rule == RULE_SPECTRON || rule == RULE_RENORM, n = 2 * opt->n_diag;
    for (int d = 0; d < opt->n_diag; d++) opt->diag[d].sigma_a = opt->diag[d].sigma_b = NAN;
    if (!spectral || n == 0) return 0;   // others' σ, on a diagnostics step, exact from diagnose_all
    LinOp *ops = malloc(sizeof *ops * n);
    float **v = malloc(sizeof *v * n), *sigma = malloc(sizeof *sigma * n);
    int rc = ops && v && sigma ? 0 : -1;
    for (int d = 0; d < opt->n_diag && rc == 0; d++) {
        const MatrixDiag *g = &opt->diag[d];
        ops[2 * d] = (LinOp){g->rows, g->rank, 0, param(c->m, g->tensor_a), NULL, NULL, NULL};
        ops[2 * d + 1] = (LinOp){g->cols, g->rank, 0, param(c->m, g->tensor_b), NULL, NULL, NULL};
        v[2 * d] = opt->vec + g->vec_at, v[2 * d + 1] = opt->vec + g->vec_at + g->rank;
    }
    if (rc == 0)
        rc = power_iteration_batch(c->be, ops, v, n, k->power_iters, work(c, c->w.pw_all), sigma);
    for (int d = 0; d < opt->n_diag && rc == 0; d++) opt->diag[d].sigma_a = sigma[2 * d], opt->diag[d].sigma_b = sigma[2 * d + 1];
    free(ops), free(v), free(sigma);
    return rc ? err_set(err, "out of memory for the power iteration of %d factors", n) : 0;
}

// Matrix d's Grams into g: ΔW (lowrank_update), W′ = A′·B′ᵀ, never formed, and with sigmas W =
// A·Bᵀ before the update (its two Grams, AᵀA and BᵀB, give σ_A and σ_B); ΔA and ΔB in the delta
// scratch (the next matrix's overwrite them after these products, in stream order).
static void diag_queue(const StepCtx *c, const MatrixDiag *d, const float *before, float *g, int sigmas) {
    const Backend *be = c->be;
    const Model *m = c->m;
    const float *a = param(m, d->tensor_a), *b = param(m, d->tensor_b);
    const float *a0 = before + m->tensors[d->tensor_a].offset, *b0 = before + m->tensors[d->tensor_b].offset;
    LowRankProduct dw = lowrank_update(be, a, b, a0, b0, d->rows, d->cols, d->rank, work(c, c->w.delta));
    LowRankProduct w = {{a}, {b}, 1, d->rows, d->cols, d->rank}, w0 = {{a0}, {b0}, 1, d->rows, d->cols, d->rank};
    lowrank_grams(be, &dw, g);
    lowrank_grams(be, &w, g + lowrank_gram_floats(2, d->rank));
    if (sigmas) lowrank_grams(be, &w0, g + lowrank_gram_floats(2, d->rank) + lowrank_gram_floats(1, d->rank));
}

// ‖F‖₂ of one factor from its Gram FᵀF (r×r, upper triangle valid): as the norm of F·Iᵀ, the
// Grams [FᵀF, I] (lowrank_norm_from_grams). NAN when F is not finite or memory runs out.
static double factor_norm_from_gram(const float *gram, int r) {
    size_t rr = (size_t)r * r;
    float *pair = calloc(2 * rr, sizeof *pair);
    if (!pair) return NAN;
    memcpy(pair, gram, sizeof(float) * rr);
    for (int i = 0; i < r; i++) pair[rr + (size_t)i * r + i] = 1.0f;
    Err ignored;
    double norm = lowrank_norm_from_grams(pair, 1, r, &ignored);
    free(pair);
    return norm;
}

// ‖ΔW‖₂ and ‖W′‖₂ of every factorized matrix, exactly (lowrank_norm.h), from the parameters
// before the update — and σ_A, σ_B exactly when the optimizer took none itself (sigmas_exact) —
// the Grams of DIAG_CHUNK matrices at a time on the backend, one download, then their host
// parts side by side, a thread each.
static int diagnose_all(const StepCtx *c, const float *before, int sigmas_exact, Err *err) {
    Optimizer *opt = c->opt;
    float *host = malloc(sizeof(float) * c->w.gram_floats);
    if (!host) return err_set(err, "out of memory for the diagnostics' Grams");
    for (int first = 0; first < opt->n_diag; first += DIAG_CHUNK) {
        int count = opt->n_diag - first < DIAG_CHUNK ? opt->n_diag - first : DIAG_CHUNK;
        size_t at[DIAG_CHUNK + 1] = {0};
        for (int i = 0; i < count; i++) {
            diag_queue(c, &opt->diag[first + i], before, work(c, c->w.gram) + at[i], sigmas_exact);
            at[i + 1] = at[i] + diag_gram_floats(opt->diag[first + i].rank);
        }
        c->be->download(host, work(c, c->w.gram), sizeof(float) * at[count]);
        int per = sigmas_exact ? 4 : 2;   // ΔW, W′, then A's and B's norm (LAPACK runs one thread in here)
        #pragma omp parallel for schedule(dynamic, 1)
        for (int job = 0; job < per * count; job++) {
            MatrixDiag *d = &opt->diag[first + job / per];
            size_t r = (size_t)d->rank, one = lowrank_gram_floats(1, d->rank);
            const float *g = host + at[job / per] + lowrank_gram_floats(2, d->rank);   // W′'s, then W's
            Err ignored;   // a failure reads as NAN, as for non-finite factors
            double norm;
            switch (job % per) {
            case 0:
                norm = lowrank_norm_from_grams(host + at[job / per], 2, d->rank, &ignored);
                d->dw_norm = (float)norm, d->dw_over_eta = c->lr > 0 ? (float)norm / c->lr : NAN;
                break;
            case 1: d->w_norm = (float)lowrank_norm_from_grams(g, 1, d->rank, &ignored); break;
            case 2: d->sigma_a = (float)factor_norm_from_gram(g + one, d->rank); break;
            default: d->sigma_b = (float)factor_norm_from_gram(g + one + r * r, d->rank); break;
            }
        }
    }
    free(host);
    return 0;
}

// Both factors of W = A·Bᵀ (σ_A, σ_B already taken by factor_sigmas): ρ, and the updates —
// factors to orthogonalize join the step's jobs (run across layers by ortho_all).
static void update_pair(const StepCtx *c, MatrixDiag *d, OrthoJob *jobs, int *n_jobs) {
    const OptimConfig *k = &c->opt->cfg;
    Rule rule = tensor_rule(k->kind, ROLE_FACTOR_A);
    int spectral = rule == RULE_SPECTRON || rule == RULE_RENORM;
    d->dw_norm = d->dw_over_eta = d->w_norm = NAN;
    d->rho = spectral ? c->lr / (d->sigma_a + d->sigma_b + 1.0f) : c->lr;
    if (rule == RULE_MUON || rule == RULE_SPECTRON) {
        float step = rule == RULE_MUON ? c->lr : d->rho;
        jobs[(*n_jobs)++] = (OrthoJob){d->tensor_a, step};
        jobs[(*n_jobs)++] = (OrthoJob){d->tensor_b, step};
        return;
    }
    update_tensor(c, d->tensor_a, d->rho);
    update_tensor(c, d->tensor_b, d->rho);
}

int optimizer_step(Optimizer *opt, Model *m, float lr, float io_lr, float grad_scale, const float *before, Err *err) {
    if (!opt->m || !opt->work) return err_set(err, "the optimizer has no state: build it first");
    const OptimConfig *k = &opt->cfg;
    opt->t++;
    opt->last_lr = lr, opt->last_wd = k->wd;
    StepCtx c = {.opt = opt, .m = m, .be = m->be, .lr = lr, .gs = grad_scale, .diag_now = before != NULL};
    c.adam_lr = io_lr;
    work_layout(m, k->kind, &c.w);
    OrthoJob *jobs = malloc(sizeof *jobs * (size_t)(m->n_tensors > 0 ? m->n_tensors : 1));
    if (!jobs) return err_set(err, "out of memory for the optimizer's step");
    int d = 0, n_jobs = 0, rc = factor_sigmas(&c, err);
    for (int i = 0; i < m->n_tensors && rc == 0; i++) {
        Rule rule = tensor_rule(k->kind, m->tensors[i].role);
        if (d < opt->n_diag && opt->diag[d].tensor_a == i) {
            update_pair(&c, &opt->diag[d++], jobs, &n_jobs);
            i++;   // B goes with its A
        } else if (rule == RULE_MUON || rule == RULE_SPECTRON) {
            jobs[n_jobs++] = (OrthoJob){i, lr};
        } else {
            update_tensor(&c, i, lr);
        }
    }
    if (rc == 0) rc = ortho_all(&c, jobs, n_jobs, err);
    free(jobs);
    Rule rule = tensor_rule(k->kind, ROLE_FACTOR_A);
    if (rc == 0 && c.diag_now) rc = diagnose_all(&c, before, rule != RULE_SPECTRON && rule != RULE_RENORM, err);
    if (rc == 0 && c.diag_now) opt->diag_t = opt->t;
    return rc;
}
