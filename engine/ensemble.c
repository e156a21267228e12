// ensemble.c — building, stepping, evaluating and averaging an ensemble of K models (see
// ensemble.h; the WASH shuffle and the PAPA pull are in wash.c).
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include "clock.h"
#include "ensemble.h"
#include "linalg.h"
#include "model_internal.h"

EnsembleCoupling ensemble_coupling_default(void) {
    return (EnsembleCoupling){.method = ENSEMBLE_INDEPENDENT, .p = 0.05f, .schedule = WASH_LINEAR,
                              .opt_state = 1, .alpha = 0.5f, .every = 1};
}

int ensemble_set_coupling(Ensemble *e, const EnsembleCoupling *c, Err *err) {
    if (!(c->p >= 0 && c->p <= 1)) return err_set(err, "p=%g: must be in [0, 1]", c->p);
    if (!(c->alpha >= 0 && c->alpha <= 1)) return err_set(err, "alpha=%g: must be in [0, 1]", c->alpha);
    if (c->every < 1) return err_set(err, "every=%d: must be at least 1", c->every);
    e->coupling = *c;
    return 0;
}

// Free members [0, n) and their trainers, skipping `keep` (−1: none).
static void free_members(Model *members, Trainer *trainers, int n, int keep) {
    for (int i = 0; i < n; i++) {
        if (i == keep) continue;
        if (trainers && trainers[i].model) trainer_free(&trainers[i]);
        model_free(&members[i]);
    }
}

int ensemble_build(Ensemble *e, const ModelConfig *cfg, const Backend *be, const OptimConfig *opt,
                   const EnsembleSpec *spec, Err *err) {
    int k = spec->k;
    if (k < 1 || k > ENSEMBLE_MAX_K) return err_set(err, "K=%d: an ensemble has 1 to %d members", k, ENSEMBLE_MAX_K);
    if (!spec->init_seeds || !spec->data_seeds) return err_set(err, "ensemble: no seeds");
    if (spec->from) {
        cfg = &spec->from->cfg;
        be = spec->from->be;
    }
    if (!cfg || !be) return err_set(err, "ensemble: no model config");
    const Trainer *cont = spec->from ? spec->from_trainer : NULL;
    if (cont && cont->opt.cfg.kind != opt->kind)
        return err_set(err, "ensemble: member 0 would continue %s's state with %s", cont->opt.cfg.name, opt->name);
    int start = cont ? cont->step : spec->start_step;   // the members step together
    Ensemble t;
    memset(&t, 0, sizeof t);
    t.k = k;
    t.be = be;
    t.same_init = spec->same_init;
    t.coupling = ensemble_coupling_default();
    t.mix_rng = spec->mix_seed;
    t.members = calloc((size_t)k, sizeof *t.members);
    t.trainers = calloc((size_t)k, sizeof *t.trainers);
    if (!t.members || !t.trainers) {
        free(t.members);
        free(t.trainers);
        return err_set(err, "ensemble: out of memory");
    }
    int built = 0, rc = 0;
    for (int i = 0; i < k && rc == 0; i++) {
        ModelConfig c = *cfg;
        c.seed = spec->init_seeds[i];
        t.init_seeds[i] = spec->init_seeds[i];
        t.data_seeds[i] = spec->data_seeds[i];
        const Model *copy_of = i == 0 ? spec->from : spec->same_init ? &t.members[0] : NULL;
        if (copy_of) {
            if (copy_of == spec->from) c.seed = spec->from->cfg.seed;
            rc = model_alloc(&t.members[i], &c, be, err);
            if (rc == 0 && t.members[i].n_params != copy_of->n_params) {
                model_free(&t.members[i]);
                rc = err_set(err, "ensemble: member %d's layout differs from the model it copies", i);
            }
            if (rc == 0) be->copy(t.members[i].params, copy_of->params, sizeof(float) * copy_of->n_params);
        } else {
            rc = model_build(&t.members[i], &c, be, err);
        }
        if (rc == 0) {
            rc = trainer_build(&t.trainers[i], &t.members[i], opt, spec->data_seeds[i], err);
            if (rc) model_free(&t.members[i]);
            else t.trainers[i].step = start;
        }
        if (rc == 0 && i == 0 && spec->from) {   // member 0 goes on as the model would have
            if (cont) trainer_take_state(&t.trainers[0], cont);
            else t.trainers[0].shape = spec->start_shape;
        }
        if (rc == 0) built++;
    }
    if (rc) {
        free_members(t.members, t.trainers, built, -1);
        free(t.members);
        free(t.trainers);
        return -1;
    }
    *e = t;
    return 0;
}

int ensemble_set_optimizer(Ensemble *e, const OptimConfig *cfg, int *kept, Err *err) {
    *kept = e->k > 0 && strcmp(e->trainers[0].opt.cfg.name, cfg->name) == 0;
    if (*kept) {
        for (int i = 0; i < e->k; i++)
            if (optimizer_retune(&e->trainers[i].opt, cfg, err)) return -1;   // cannot fail: one optimizer
        return 0;
    }
    Trainer fresh[ENSEMBLE_MAX_K];
    for (int i = 0; i < e->k; i++) {
        if (trainer_build(&fresh[i], &e->members[i], cfg, e->data_seeds[i], err) == 0) continue;
        while (i-- > 0) trainer_free(&fresh[i]);
        return -1;
    }
    for (int i = 0; i < e->k; i++) {
        trainer_continue(&fresh[i], &e->trainers[i]);
        trainer_free(&e->trainers[i]);
        e->trainers[i] = fresh[i];
    }
    return 0;
}

void ensemble_free(Ensemble *e) {
    if (!e || !e->members) return;
    free_members(e->members, e->trainers, e->k, -1);
    free(e->members);
    free(e->trainers);
    memset(e, 0, sizeof *e);
}

size_t ensemble_bytes(const Ensemble *e, int B, int T) {
    size_t total = 0;
    for (int i = 0; i < e->k; i++) {
        const Model *m = &e->members[i];
        const Optimizer *o = &e->trainers[i].opt;
        // the seven copies of the parameters; the vectors and their rollback copy; scratch
        total += trainer_model_bytes(m->n_params) + sizeof(float) * (2 * o->n_vec + o->n_work);
        total += activations_bytes(m, B, T);
    }
    return total;
}

// Member `failed` went back to before the last step: the others and the mixing follow.
static void roll_back_all(Ensemble *e, int failed) {
    for (int i = 0; i < e->k; i++)
        if (i != failed) trainer_roll_back(&e->trainers[i]);
    e->step = e->good.step, e->mixes = e->good.mixes;
    e->mix_rng = e->good.mix_rng, e->total_exchanged = e->good.total_exchanged;
    e->last_exchanged = e->good.last_exchanged;
}

int ensemble_nonfinite_member(const Ensemble *e) {
    for (int i = 0; i < e->k; i++)
        if (!model_params_finite(&e->members[i])) return i;
    return -1;
}

int ensemble_diverged(Ensemble *e, const char *why, Err *err) {
    int step = e->step + 1;
    if (!e->k || !e->trainers[0].has_good) return err_set(err, "step %d: %s; no update taken", step, why);
    roll_back_all(e, -1);
    return err_set(err, "step %d: %s; update %d made the ensemble non-finite: every member rolled back to step %d "
                   "(parameters, optimizer state and data position as they were before it)", step, why, step - 1,
                   e->step);
}

int ensemble_step(Ensemble *e, const Dataset *ds, int B, int T, int accum, EnsembleStepStats *out, Err *err) {
    double t0 = clock_seconds();
    EnsembleStepStats s;
    memset(&s, 0, sizeof s);
    double loss = 0;
    // Every member's gradients before any update: a member whose loss or gradient is not finite
    // (rolled back as a single model would be) stops the step for all and takes every member
    // back with it, so the members stay at one step count and the ensemble's step is theirs.
    for (int i = 0; i < e->k; i++) {
        Err me = {{0}};
        if (trainer_gradients(&e->trainers[i], ds, B, T, accum, &s.member[i], &me) != 0) {
            if (trainer_rolled_back(&e->trainers[i])) roll_back_all(e, i);
            else for (int j = 0; j < i; j++) trainer_redraw_batches(&e->trainers[j]);   // no update taken
            return err_set(err, "member %d: %s", i, me.msg);
        }
    }
    e->good.step = e->step, e->good.mixes = e->mixes;   // with the members' rollback points
    e->good.mix_rng = e->mix_rng, e->good.total_exchanged = e->total_exchanged;
    e->good.last_exchanged = e->last_exchanged;
    for (int i = 0; i < e->k; i++) {
        Err me = {{0}};
        if (trainer_update(&e->trainers[i], B, T, accum, &s.member[i], &me) != 0) {
            // member i's update was undone; the members before it took theirs: undone too, and
            // those after it draw this step's batches again, so all stand at one step as before
            for (int j = 0; j < e->k; j++)
                if (j < i) trainer_roll_back(&e->trainers[j]);
                else if (j > i) trainer_redraw_batches(&e->trainers[j]);
            Err again;   // the GPU's context lost: nothing was undone (member i's error says so)
            int lost = backend_failed(e->trainers[i].model->be, &again);
            return err_set(err, "member %d: %s%s", i, me.msg, lost ? "" : " (every member as before this step)");
        }
        loss += s.member[i].loss;
        s.tokens += s.member[i].tokens;
    }
    e->step++;
    s.step = e->step;
    s.mean_loss = (float)(loss / e->k);
    const EnsembleCoupling *c = &e->coupling;
    double t1 = clock_seconds();
    if (c->method != ENSEMBLE_INDEPENDENT && e->k > 1 && e->step % c->every == 0) {
        long moved;
        if (c->method == ENSEMBLE_WASH)
            moved = wash_shuffle(e->members, e->trainers, e->k, c->p, c->schedule, c->opt_state, &e->mix_rng,
                                 &s.picked, err);
        else
            moved = papa_pull(e->members, e->k, c->alpha, err);
        if (moved < 0) {   // out of memory midway: the members' updates and any values moved go too
            roll_back_all(e, -1);
            return err_wrap(err, "mixing: ", "; every member as before this step");
        }
        s.mixed = 1;
        s.exchanged = moved;
        e->mixes++;
    }
    double t2 = clock_seconds();
    e->last_exchanged = s.exchanged;
    e->total_exchanged += (double)s.exchanged;
    s.mix_seconds = t2 - t1;
    s.seconds = t2 - t0;
    if (out) *out = s;
    return 0;
}

// ---- probabilities ------------------------------------------------------------------------

// As model_token_logprobs, also returning the forward's own mean loss in *loss (NULL: not).
static int token_logprobs(Model *m, const int32_t *tokens, int B, int T, double *logp, float *loss, Err *err) {
    float l = 0;
    if (model_forward(m, tokens, B, T, &l, err) != 0) return -1;
    if (loss) *loss = l;
    int V = m->cfg.vocab;
    size_t n = (size_t)B * T;
    float *logits = malloc(sizeof(float) * n * V);
    if (!logits) return err_set(err, "out of memory for %zu×%d logits", n, V);
    m->be->download(logits, m->acts->logits, sizeof(float) * n * V);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            size_t row = (size_t)b * T + t;
            const float *x = logits + row * V;
            int target = tokens[(size_t)b * (T + 1) + t + 1];
            double mx = x[0];
            for (int v = 1; v < V; v++)
                if (x[v] > mx) mx = x[v];
            double sum = 0;
            for (int v = 0; v < V; v++) sum += exp((double)x[v] - mx);
            logp[row] = (double)x[target] - mx - log(sum);
        }
    free(logits);
    return 0;
}

int model_token_logprobs(Model *m, const int32_t *tokens, int B, int T, double *logp, Err *err) {
    return token_logprobs(m, tokens, B, T, logp, NULL, err);
}

// log((1/k)·Σ exp(lp_i)) for k log-probabilities, stable
static double log_mean_exp(const double *lp, int k) {
    double mx = lp[0];
    for (int i = 1; i < k; i++)
        if (lp[i] > mx) mx = lp[i];
    double sum = 0;
    for (int i = 0; i < k; i++) sum += exp(lp[i] - mx);
    return mx + log(sum) - log((double)k);
}

// Member losses (forward's) and the ensemble NLL over the same tokens; member_loss may be NULL.
static int ensemble_losses(Model *members, int k, const int32_t *tokens, int B, int T, double *member_loss,
                           double *ens_loss, Err *err) {
    size_t n = (size_t)B * T;
    double *lp = malloc(sizeof(double) * n * k);
    if (!lp) return err_set(err, "out of memory");
    for (int i = 0; i < k; i++) {
        float l = 0;
        if (token_logprobs(&members[i], tokens, B, T, lp + i * n, &l, err) != 0) {
            free(lp);
            char why[sizeof err->msg];   // which member, when there are several
            snprintf(why, sizeof why, "%s", err->msg);
            return k > 1 ? err_set(err, "member %d: %.400s", i, why) : -1;
        }
        if (member_loss) member_loss[i] = l;
    }
    double total = 0, one[ENSEMBLE_MAX_K];
    for (size_t j = 0; j < n; j++) {
        for (int i = 0; i < k; i++) one[i] = lp[i * n + j];
        total -= log_mean_exp(one, k);
    }
    free(lp);
    *ens_loss = total / (double)n;
    return 0;
}

int ensemble_prob_loss(Model *members, int k, const int32_t *tokens, int B, int T, double *loss, Err *err) {
    if (k < 1 || k > ENSEMBLE_MAX_K) return err_set(err, "K=%d: 1 to %d members", k, ENSEMBLE_MAX_K);
    return ensemble_losses(members, k, tokens, B, T, NULL, loss, err);
}

// ---- averaging ----------------------------------------------------------------------------

static int same_layout(const Model *a, const Model *b) {
    if (a->n_params != b->n_params || a->n_tensors != b->n_tensors) return 0;
    for (int i = 0; i < a->n_tensors; i++)
        if (a->tensors[i].rows != b->tensors[i].rows || a->tensors[i].cols != b->tensors[i].cols ||
            a->tensors[i].offset != b->tensors[i].offset || a->tensors[i].role != b->tensors[i].role)
            return 0;
    return 1;
}

// Host scratch for averaging: the largest tensor's floats (*most) and, for the product mode,
// the largest W = A·Bᵀ's (*most_w).
static void average_scratch_sizes(const Model *m0, size_t *most, size_t *most_w) {
    *most = *most_w = 0;
    for (int i = 0; i < m0->n_tensors; i++) {
        const TensorDesc *t = &m0->tensors[i];
        size_t n = (size_t)t->rows * t->cols;
        if (n > *most) *most = n;
        if (t->role == ROLE_FACTOR_A) {
            size_t w = (size_t)t->rows * m0->tensors[i + 1].rows;
            if (w > *most_w) *most_w = w;
        }
    }
}

// Tensor ti of out = the members' elementwise mean, summed in double. h (n), acc (n): scratch.
static void average_tensor(Model *members, int k, int ti, Model *out, float *h, double *acc) {
    const Backend *be = out->be;
    const TensorDesc *t = &out->tensors[ti];
    size_t n = (size_t)t->rows * t->cols;
    for (size_t j = 0; j < n; j++) acc[j] = 0;
    for (int i = 0; i < k; i++) {
        be->download(h, param(&members[i], ti), sizeof(float) * n);
        for (size_t j = 0; j < n; j++) acc[j] += h[j];
    }
    for (size_t j = 0; j < n; j++) h[j] = (float)(acc[j] / k);
    be->upload(param(out, ti), h, sizeof(float) * n);
}

// Factors ti (A, out×r) and ti + 1 (B, in×r) of out from the rank-r truncated SVD of the mean
// product W̄ = (1/k)·Σ A_i·B_iᵀ; *rel: the truncation's relative error. Scratch: a, b (most
// each), w (out×in), s (min(out, in)), laid out by the caller.
static int average_product(Model *members, int k, int ti, Model *out, float *a, float *b, float *w, float *s,
                           double *rel, Err *err) {
    const Backend *be = out->be;
    const TensorDesc *ta = &out->tensors[ti], *tb = &out->tensors[ti + 1];
    int out_dim = ta->rows, in_dim = tb->rows, rank = ta->cols;
    for (int i = 0; i < k; i++) {
        be->download(a, param(&members[i], ti), sizeof(float) * (size_t)out_dim * rank);
        be->download(b, param(&members[i], ti + 1), sizeof(float) * (size_t)in_dim * rank);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, out_dim, in_dim, rank, 1.0f / k, a, rank, b, rank,
                    i == 0 ? 0.0f : 1.0f, w, in_dim);   // w (out × in) += A_i·B_iᵀ / k
    }
    if (truncated_svd(w, out_dim, in_dim, rank, a, b, s, err) != 0) return -1;
    be->upload(param(out, ti), a, sizeof(float) * (size_t)out_dim * rank);
    be->upload(param(out, ti + 1), b, sizeof(float) * (size_t)in_dim * rank);
    *rel = truncation_error(s, out_dim < in_dim ? out_dim : in_dim, rank);
    return 0;
}

// The worst and mean truncation errors of the product mode, by matrix (its factors' name
// without ".A").
static void report_truncation(EnsembleAvgReport *r, const char *factor_name, double rel) {
    r->n_matrices++;
    r->mean_error += rel;   // a sum until models_average divides it
    if (rel > r->worst_error || r->n_matrices == 1) {
        r->worst_error = rel;
        size_t len = strlen(factor_name);
        snprintf(r->worst_name, sizeof r->worst_name, "%.*s", (int)(len > 2 ? len - 2 : len), factor_name);
    }
}

int models_average(Model *members, int k, EnsembleAvgMode mode, Model *out, EnsembleAvgReport *rep, Err *err) {
    if (k < 1) return err_set(err, "average: no members");
    const Model *m0 = &members[0];
    for (int i = 1; i < k; i++)
        if (!same_layout(m0, &members[i])) return err_set(err, "average: member %d has another layout", i);
    Model m;
    if (model_alloc(&m, &m0->cfg, m0->be, err) != 0) return -1;
    size_t most, most_w;
    average_scratch_sizes(m0, &most, &most_w);
    int product = mode == ENSEMBLE_AVG_PRODUCT;
    float *h = malloc(sizeof(float) * (most * 2 + (product ? most_w * 2 : 0) + 1));   // a, b, then W̄ and σ
    double *acc = malloc(sizeof(double) * most);
    int rc = h && acc ? 0 : err_set(err, "average: out of memory");
    EnsembleAvgReport r;
    memset(&r, 0, sizeof r);
    for (int ti = 0; rc == 0 && ti < m0->n_tensors; ti++) {
        const TensorDesc *t = &m0->tensors[ti];
        if (product && t->role == ROLE_FACTOR_B) continue;   // done with its A
        if (!product || t->role != ROLE_FACTOR_A) {
            average_tensor(members, k, ti, &m, h, acc);
            continue;
        }
        double rel;
        rc = average_product(members, k, ti, &m, h, h + most, h + 2 * most, h + 2 * most + most_w, &rel, err);
        if (rc == 0) report_truncation(&r, t->name, rel);
    }
    free(h);
    free(acc);
    if (rc) {
        model_free(&m);
        return -1;
    }
    if (r.n_matrices) r.mean_error /= r.n_matrices;
    if (rep) *rep = r;
    *out = m;
    return 0;
}

int ensemble_take_member(Ensemble *e, int i, Model *out_model, Trainer *out_trainer, Err *err) {
    if (!e->members) return err_set(err, "no ensemble");
    if (i < 0 || i >= e->k) return err_set(err, "member %d: the ensemble has members 0 to %d", i, e->k - 1);
    *out_model = e->members[i];
    if (out_trainer) {
        *out_trainer = e->trainers[i];
        out_trainer->model = out_model;
    } else {
        Trainer *tr = &e->trainers[i];
        tr->model = out_model;   // its optimizer state is freed against the model it lives with
        trainer_free(tr);
    }
    free_members(e->members, e->trainers, e->k, i);
    free(e->members);
    free(e->trainers);
    memset(e, 0, sizeof *e);
    return 0;
}

// ---- evaluation ---------------------------------------------------------------------------

// An average's evaluation as the second or third third of ensemble_eval's progress.
typedef struct ShiftedProgress {
    ProgressFn fn;
    void *ctx;
    double offset, total;
} ShiftedProgress;

static int shifted_progress(void *c, double done, double total) {
    const ShiftedProgress *p = c;
    (void)total;
    return p->fn(p->ctx, p->offset + done, p->total);
}

int ensemble_eval(Ensemble *e, const Dataset *ds, int B, int T, int batches, uint64_t seed, ProgressFn progress,
                  void *ctx, EnsembleEval *out, Err *err) {
    if (batches < 1) return err_set(err, "batches=%d: must be at least 1", batches);
    EnsembleEval r;
    memset(&r, 0, sizeof r);
    r.k = e->k;
    int32_t *tokens = malloc(sizeof(int32_t) * B * (T + 1));
    if (!tokens) return err_set(err, "out of memory");
    uint64_t rng = seed;
    int rc = 0;
    // the batches trainer_eval would draw with this seed, in its order
    for (int bi = 0; bi < batches && rc == 0; bi++) {
        double ml[ENSEMBLE_MAX_K], el = 0;
        rc = dataset_batch(ds, 1, B, T, &rng, tokens, err);
        if (rc == 0) rc = ensemble_losses(e->members, e->k, tokens, B, T, ml, &el, err);
        if (rc) break;
        for (int i = 0; i < e->k; i++) r.member[i] += ml[i];
        r.ensemble += el;
        if (progress && progress(ctx, bi + 1, 3.0 * batches) && bi + 1 < batches)
            rc = err_set(err, "ensemble eval interrupted after %d of %d batches of the members", bi + 1, batches);
    }
    free(tokens);
    if (rc) return -1;
    for (int i = 0; i < e->k; i++) {
        r.member[i] /= batches;
        r.member_mean += r.member[i] / e->k;
    }
    r.ensemble /= batches;
    for (int mode = 0; mode < 2; mode++) {
        Model avg;
        EnsembleAvgReport rep;
        if (ensemble_average(e, (EnsembleAvgMode)mode, &avg, &rep, err) != 0) return -1;
        double loss = 0;
        int done;
        ShiftedProgress sp = {progress, ctx, (1.0 + mode) * batches, 3.0 * batches};
        rc = trainer_eval_progress(&avg, ds, B, T, batches, seed, progress ? shifted_progress : NULL, &sp, &loss, &done,
                                   err);
        model_free(&avg);
        if (rc) return -1;
        if (mode == ENSEMBLE_AVG_FACTORS) r.avg_factors = loss;
        else {
            r.avg_product = loss;
            r.product = rep;
        }
    }
    *out = r;
    return 0;
}

int ensemble_grad_cosines(Ensemble *e, const int32_t *tokens, int B, int T, double *cos, Err *err) {
    int k = e->k;
    size_t np = e->members[0].n_params;
    float *g = malloc(sizeof(float) * np * k);
    if (!g) return err_set(err, "out of memory for %d gradients", k);
    for (int i = 0; i < k; i++) {
        Model *m = &e->members[i];
        float loss;
        model_zero_grad(m);
        if (model_forward(m, tokens, B, T, &loss, err) != 0 || model_backward(m, 1.0f, err) != 0) {
            free(g);
            return -1;
        }
        m->be->download(g + i * np, m->grads, sizeof(float) * np);
    }
    double norm[ENSEMBLE_MAX_K];
    for (int i = 0; i < k; i++) {
        double s = 0;
        for (size_t j = 0; j < np; j++) s += (double)g[i * np + j] * g[i * np + j];
        norm[i] = sqrt(s);
    }
    for (int i = 0; i < k; i++)
        for (int j = i; j < k; j++) {
            double d = 0;
            for (size_t x = 0; x < np; x++) d += (double)g[i * np + x] * g[j * np + x];
            double c = norm[i] > 0 && norm[j] > 0 ? d / (norm[i] * norm[j]) : 0.0;
            if (i == j) c = 1.0;
            cos[i * k + j] = cos[j * k + i] = c;
        }
    free(g);
    return 0;
}

// ---- checkpoints --------------------------------------------------------------------------

static const char *method_word(EnsembleMethod m) {
    return m == ENSEMBLE_WASH ? "wash" : m == ENSEMBLE_PAPA ? "papa" : "independent";
}

#define ENSEMBLE_META_MAX 16

int ensemble_save(const char *path, const Ensemble *e, const Tokenizer *tok, const CheckpointOptions *opt, Err *err) {
    if (!e || !e->members || e->k < 1) return err_set(err, "%s: cannot save: no ensemble", path ? path : "(none)");
    const EnsembleCoupling *c = &e->coupling;
    char v[ENSEMBLE_META_MAX][24];
    char seeds[2][ENSEMBLE_MAX_K * 21 + 1];
    for (int s = 0; s < 2; s++) {
        size_t at = 0;
        seeds[s][0] = '\0';
        for (int i = 0; i < e->k; i++)
            at += (size_t)snprintf(seeds[s] + at, sizeof seeds[s] - at, "%s%llu", i ? "," : "",
                                   (unsigned long long)(s ? e->data_seeds[i] : e->init_seeds[i]));
    }
    snprintf(v[0], sizeof v[0], "%s", method_word(c->method));
    snprintf(v[1], sizeof v[1], "%.9g", (double)c->p);
    snprintf(v[2], sizeof v[2], "%s", c->schedule == WASH_FLAT ? "flat" : "linear");
    snprintf(v[3], sizeof v[3], "%s", c->opt_state ? "yes" : "no");
    snprintf(v[4], sizeof v[4], "%.9g", (double)c->alpha);
    snprintf(v[5], sizeof v[5], "%d", c->every);
    snprintf(v[6], sizeof v[6], "%llu", (unsigned long long)e->mix_rng);
    snprintf(v[7], sizeof v[7], "%d", e->step);
    snprintf(v[8], sizeof v[8], "%d", e->mixes);
    snprintf(v[9], sizeof v[9], "%ld", e->last_exchanged);
    snprintf(v[10], sizeof v[10], "%.17g", e->total_exchanged);
    snprintf(v[11], sizeof v[11], "%s", e->same_init ? "yes" : "no");
    CheckpointMeta meta[] = {
        {"ensemble_method", v[0]}, {"ensemble_wash_p", v[1]}, {"ensemble_wash_schedule", v[2]},
        {"ensemble_wash_opt_state", v[3]}, {"ensemble_papa_alpha", v[4]}, {"ensemble_every", v[5]},
        {"ensemble_mix_rng", v[6]}, {"ensemble_step", v[7]}, {"ensemble_mixes", v[8]},
        {"ensemble_last_exchanged", v[9]}, {"ensemble_exchanged", v[10]}, {"ensemble_same_init", v[11]},
        {"ensemble_init_seeds", seeds[0]}, {"ensemble_data_seeds", seeds[1]},
    };
    return checkpoint_save_members(path, e->k, e->members, e->trainers, tok, meta, (int)(sizeof meta / sizeof meta[0]),
                                   opt, err);
}

// Strict decimal: digits only, at most 20, no overflow.
static int meta_u64(const char *s, uint64_t *out) {
    if (!s || !*s || strlen(s) > 20) return -1;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (UINT64_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static int meta_int(const char *s, long max, long *out) {
    uint64_t v;
    if (meta_u64(s, &v) || v > (uint64_t)max) return -1;
    *out = (long)v;
    return 0;
}

static int meta_real(const char *s, double lo, double hi, double *out) {
    if (!s || !*s || strchr(" \t\n\r\f\v", *s)) return -1;
    char *end;
    double d = strtod(s, &end);
    if (*end || !(d >= lo && d <= hi)) return -1;
    *out = d;
    return 0;
}

// A float as "%.9g" wrote it, read back exactly (strtof: no double rounding), in [0, 1].
static int meta_unit_float(const char *s, double *out) {
    if (!s || !*s || strchr(" \t\n\r\f\v", *s)) return -1;
    char *end;
    float f = strtof(s, &end);
    if (*end || !(f >= 0 && f <= 1)) return -1;
    *out = f;
    return 0;
}

static int meta_word(const char *s, const char *a, const char *b, int *out) {
    if (s && strcmp(s, a) == 0) return *out = 0, 0;
    if (s && strcmp(s, b) == 0) return *out = 1, 0;
    return -1;
}

// "a,b,c": exactly k decimal seeds.
static int meta_seeds(const char *s, int k, uint64_t *out) {
    if (!s) return -1;
    for (int i = 0; i < k; i++) {
        const char *comma = strchr(s, ',');
        size_t n = comma ? (size_t)(comma - s) : strlen(s);
        char one[24];
        if (n == 0 || n >= sizeof one || (i < k - 1) != (comma != NULL)) return -1;
        memcpy(one, s, n);
        one[n] = '\0';
        if (meta_u64(one, &out[i])) return -1;
        s += n + (comma != NULL);
    }
    return 0;
}

// The ensemble's own state from the members' file, checked as strictly as the tensors were.
static int ensemble_from_members(const char *name, CheckpointMembers *cm, const Backend *be, Ensemble *out,
                                 Tokenizer **out_tok, CheckpointInfo *info, Err *err) {
    if (cm->k < 2 || cm->k > ENSEMBLE_MAX_K)   // one member is a model (`ensemble new 1` is refused): not loaded as one
        return err_set(err, "%s: an ensemble of %d member%s, but an ensemble has 2 to %d", name, cm->k,
                       cm->k == 1 ? "" : "s", ENSEMBLE_MAX_K);
    if (!cm->trainers)
        return err_set(err, "%s: the ensemble's members have no optimizer settings (step, optimizer, optim_config)",
                       name);
    Ensemble e;
    memset(&e, 0, sizeof e);
    EnsembleCoupling c = ensemble_coupling_default();
    const char *bad = NULL;
#define GET(key) checkpoint_members_meta(cm, key)
    long every = 0, step = 0, mixes = 0, last = 0;
    double p = 0, alpha = 0, total = 0;
    int method = -1, flat = 0, opt_state = 0, same = 0;
    const char *m = GET("ensemble_method");
    if (m) method = strcmp(m, "independent") == 0 ? ENSEMBLE_INDEPENDENT
                  : strcmp(m, "wash") == 0        ? ENSEMBLE_WASH
                  : strcmp(m, "papa") == 0        ? ENSEMBLE_PAPA
                                                  : -1;
    if (method < 0) bad = "ensemble_method";
    else if (meta_unit_float(GET("ensemble_wash_p"), &p)) bad = "ensemble_wash_p";
    else if (meta_word(GET("ensemble_wash_schedule"), "linear", "flat", &flat)) bad = "ensemble_wash_schedule";
    else if (meta_word(GET("ensemble_wash_opt_state"), "no", "yes", &opt_state)) bad = "ensemble_wash_opt_state";
    else if (meta_unit_float(GET("ensemble_papa_alpha"), &alpha)) bad = "ensemble_papa_alpha";
    else if (meta_int(GET("ensemble_every"), INT_MAX, &every) || every < 1) bad = "ensemble_every";
    else if (meta_u64(GET("ensemble_mix_rng"), &e.mix_rng)) bad = "ensemble_mix_rng";
    else if (meta_int(GET("ensemble_step"), TRAINER_LAST_STEP, &step)) bad = "ensemble_step";
    else if (meta_int(GET("ensemble_mixes"), INT_MAX, &mixes) || mixes > step) bad = "ensemble_mixes";
    else if (meta_int(GET("ensemble_last_exchanged"), LONG_MAX, &last)) bad = "ensemble_last_exchanged";
    else if (meta_real(GET("ensemble_exchanged"), 0, 1e300, &total)) bad = "ensemble_exchanged";
    else if (meta_word(GET("ensemble_same_init"), "no", "yes", &same)) bad = "ensemble_same_init";
    else if (meta_seeds(GET("ensemble_init_seeds"), cm->k, e.init_seeds)) bad = "ensemble_init_seeds";
    else if (meta_seeds(GET("ensemble_data_seeds"), cm->k, e.data_seeds)) bad = "ensemble_data_seeds";
    if (bad) {
        const char *v = GET(bad);
        return err_set(err, "%s: __metadata__ %s '%.32s' is missing or not valid", name, bad, v ? v : "(none)");
    }
#undef GET
    // members step together, from the step of the model they grew from (the ensemble's step
    // counts from there): one at another step, or members behind the ensemble, is a damaged file
    for (int i = 1; i < cm->k; i++)
        if (cm->trainers[i].step != cm->trainers[0].step)
            return err_set(err, "%s: member.%d.step is %d but member.0.step is %d (the members step together)", name,
                           i, cm->trainers[i].step, cm->trainers[0].step);
    if (cm->trainers[0].step < step)
        return err_set(err, "%s: the ensemble's step is %ld but its members are at step %d (they took every one of its "
                       "steps)", name, step, cm->trainers[0].step);
    c.method = (EnsembleMethod)method;
    c.p = (float)p;
    c.schedule = flat ? WASH_FLAT : WASH_LINEAR;
    c.opt_state = opt_state;
    c.alpha = (float)alpha;
    c.every = (int)every;
    Err why;
    if (ensemble_set_coupling(&e, &c, &why) != 0) return err_set(err, "%s: the ensemble's coupling: %s", name, why.msg);
    e.k = cm->k;
    e.be = be;
    e.members = cm->models;
    e.trainers = cm->trainers;
    e.same_init = same;
    e.step = (int)step;
    e.mixes = (int)mixes;
    e.last_exchanged = last;
    e.total_exchanged = total;
    if (info) *info = cm->info;
    if (out_tok) *out_tok = cm->tok;
    else tokenizer_free(cm->tok);
    cm->models = NULL;   // now the ensemble's
    cm->trainers = NULL;
    cm->tok = NULL;
    cm->k = 0;
    *out = e;
    return 0;
}

int ensemble_load(const char *path, const Backend *be, Ensemble *out, Tokenizer **out_tok, CheckpointInfo *info,
                  Err *err) {
    CheckpointMembers cm;
    if (checkpoint_load_members(path, be, &cm, err) != 0) return -1;
    int rc = ensemble_from_members(path, &cm, be, out, out_tok, info, err);
    checkpoint_members_free(&cm);
    return rc;
}

int ensemble_load_bytes(const void *bytes, size_t size, const char *name, const Backend *be, Ensemble *out,
                        Tokenizer **out_tok, CheckpointInfo *info, Err *err) {
    CheckpointMembers cm;
    if (!name || !*name) name = "(memory)";
    if (checkpoint_load_members_bytes(bytes, size, name, be, &cm, err) != 0) return -1;
    int rc = ensemble_from_members(name, &cm, be, out, out_tok, info, err);
    checkpoint_members_free(&cm);
    return rc;
}
