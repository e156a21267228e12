// model.c — the tensor table, initialization, and the model's lifetime.
// The forward and backward passes are in model_forward.c; activations in activations.c.
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <math.h>
#include <omp.h>
#include <lapacke.h>
#include "model.h"
#include "model_internal.h"
#include "linalg.h"
#include "rng.h"

// ---------------------------------------------------------------------------------------------
// the tensor table

// The table is allocated whole first (build_tensor_table): entries are only filled in here.
static int add_tensor(Model *m, const char *name, int rows, int cols, TensorRole role, int layer) {
    TensorDesc *t = &m->tensors[m->n_tensors];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->rows = rows;
    t->cols = cols;
    t->offset = m->n_params;
    t->role = role;
    t->layer = layer;
    m->n_params += ((size_t)rows * cols + 15) / 16 * 16;  // keep every tensor 64-byte aligned
    return m->n_tensors++;
}

// W: out×in, dense or factorized into NAME.A (out×r) and NAME.B (in×r).
static Linear add_linear(Model *m, const char *name, int out, int in, int layer) {
    Linear lin = {.in = in, .out = out, .rank = model_config_rank(&m->cfg, out, in), .b = -1};
    char buf[64];
    if (lin.rank == 0) {
        lin.w = add_tensor(m, name, out, in, ROLE_DENSE, layer);
    } else {
        snprintf(buf, sizeof buf, "%s.A", name);
        lin.w = add_tensor(m, buf, out, lin.rank, ROLE_FACTOR_A, layer);
        snprintf(buf, sizeof buf, "%s.B", name);
        lin.b = add_tensor(m, buf, in, lin.rank, ROLE_FACTOR_B, layer);
    }
    return lin;
}

#define TENSORS_PER_LAYER 16   // two norm gains and seven linears of at most two factors each

static int build_tensor_table(Model *m, Err *err) {
    const ModelConfig *c = &m->cfg;
    int kvd = c->dim / c->heads * c->kv_heads;
    char name[64];
    m->tensors = calloc((size_t)c->layers * TENSORS_PER_LAYER + 3, sizeof *m->tensors);   // + embed, norm, head
    m->layer = calloc((size_t)c->layers, sizeof *m->layer);
    if (!m->tensors || !m->layer) {
        free(m->tensors), free(m->layer);
        m->tensors = NULL, m->layer = NULL;
        return err_set(err, "out of memory for the tensor table of %d layers", c->layers);
    }
    m->embed = add_tensor(m, "embed", c->vocab, c->dim, ROLE_EMBED, -1);
    for (int l = 0; l < c->layers; l++) {
        LayerWeights *w = &m->layer[l];
#define NAME(s) (snprintf(name, sizeof name, "blocks.%d.%s", l, s), name)
        w->attn_norm = add_tensor(m, NAME("attn_norm"), 1, c->dim, ROLE_NORM, l);
        w->wq = add_linear(m, NAME("attn.wq"), c->dim, c->dim, l);
        w->wk = add_linear(m, NAME("attn.wk"), kvd, c->dim, l);
        w->wv = add_linear(m, NAME("attn.wv"), kvd, c->dim, l);
        w->wo = add_linear(m, NAME("attn.wo"), c->dim, c->dim, l);
        w->mlp_norm = add_tensor(m, NAME("mlp_norm"), 1, c->dim, ROLE_NORM, l);
        w->w1 = add_linear(m, NAME("mlp.w1"), c->ffn, c->dim, l);
        w->w2 = add_linear(m, NAME("mlp.w2"), c->dim, c->ffn, l);
        w->w3 = add_linear(m, NAME("mlp.w3"), c->ffn, c->dim, l);
#undef NAME
    }
    m->norm = add_tensor(m, "norm", 1, c->dim, ROLE_NORM, -1);
    m->head = add_tensor(m, "head", c->vocab, c->dim, ROLE_HEAD, -1);
    return 0;
}

int model_find_tensor(const Model *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return i;
    return -1;
}

// ---------------------------------------------------------------------------------------------
// initialization (on the host, then uploaded)

static void fill_normal(float *x, size_t n, float std, uint64_t *rng) {
    for (size_t i = 0; i < n; i++) x[i] = std * rng_normal(rng);
}

// The factorized linears waiting for their SVDs: their dense draws, and where the factors go.
typedef struct PendingSvds {
    SvdJob *jobs;
    int n, cap;
} PendingSvds;

// Runs the pending SVDs side by side and frees their dense draws.
static int finish_svds(PendingSvds *p, Err *err) {
    int rc = truncated_svd_batch(p->jobs, p->n, err);
    for (int i = 0; i < p->n; i++) free((void *)p->jobs[i].w);
    p->n = 0;
    return rc;
}

// A dense init W ~ N(0, std²); a low-rank linear's W joins the pending SVDs (A·Bᵀ is its
// truncated SVD), which run a batch at a time. The draws stay in the order of the linears: a
// seed gives the model it gave when the SVDs ran one after the other (on one thread).
static int init_linear(const Model *m, const Linear *lin, float std, float *host, uint64_t *rng, PendingSvds *p,
                       Err *err) {
    const TensorDesc *tw = &m->tensors[lin->w];
    if (lin->rank == 0) {
        fill_normal(host + tw->offset, (size_t)lin->out * lin->in, std, rng);
        return 0;
    }
    float *w = malloc(sizeof(float) * lin->out * lin->in);
    if (!w) return err_set(err, "out of memory for a %d×%d initialization", lin->out, lin->in);
    fill_normal(w, (size_t)lin->out * lin->in, std, rng);
    p->jobs[p->n++] = (SvdJob){w, lin->out, lin->in, lin->rank, host + tw->offset, host + m->tensors[lin->b].offset,
                               NULL};
    return p->n == p->cap ? finish_svds(p, err) : 0;
}

static int init_parameters(Model *m, float *host, Err *err) {
    const ModelConfig *c = &m->cfg;
    uint64_t rng = c->seed;
    const float std = 0.02f, proj_std = 0.02f / sqrtf(2.0f * c->layers);  // GPT-2's residual scaling
    fill_normal(host + m->tensors[m->embed].offset, (size_t)c->vocab * c->dim, std, &rng);
    fill_normal(host + m->tensors[m->head].offset, (size_t)c->vocab * c->dim, std, &rng);
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].role == ROLE_NORM)
            for (int j = 0; j < m->tensors[i].cols; j++) host[m->tensors[i].offset + j] = 1.0f;
    // two SVDs a thread per batch: matrices of different sizes even out (memory: a batch's draws)
    PendingSvds pending = {.cap = 2 * omp_get_max_threads()};
    pending.jobs = malloc(sizeof(SvdJob) * pending.cap);
    if (!pending.jobs) return err_set(err, "out of memory for the initialization");
    int rc = 0;
    for (int l = 0; rc == 0 && l < c->layers; l++) {
        const LayerWeights *w = &m->layer[l];
        const Linear *lins[7] = {&w->wq, &w->wk, &w->wv, &w->wo, &w->w1, &w->w3, &w->w2};
        for (int i = 0; rc == 0 && i < 7; i++) {
            float s = (lins[i] == &w->wo || lins[i] == &w->w2) ? proj_std : std;
            rc = init_linear(m, lins[i], s, host, &rng, &pending, err);
        }
    }
    if (rc == 0) rc = finish_svds(&pending, err);
    for (int i = 0; i < pending.n; i++) free((void *)pending.jobs[i].w);   // after a failure
    free(pending.jobs);
    return rc;
}

// ---------------------------------------------------------------------------------------------
// lifetime

int model_tensor_table(const ModelConfig *cfg, TensorDesc **tensors, int *n, Err *err) {
    if (model_config_validate(cfg, err)) return -1;
    Model m = {.cfg = *cfg};
    if (build_tensor_table(&m, err)) return -1;
    free(m.layer);
    *tensors = m.tensors;
    *n = m.n_tensors;
    return 0;
}

int model_alloc(Model *m, const ModelConfig *cfg, const Backend *be, Err *err) {
    memset(m, 0, sizeof *m);
    if (model_config_validate(cfg, err)) return -1;
    m->cfg = *cfg;
    m->be = be;
    if (build_tensor_table(m, err)) return -1;
    double mb = m->n_params * 4.0 / 1e6, avail_mb = be->mem_available() / 1e6;
    // parameters + gradients on the device; the host copy while initializing counts only where the
    // device's memory is the host's (a GPU model was refused at two thirds of what fits)
    int copies = be->memory_is_host ? 3 : 2;
    if (copies * mb > avail_mb) {
        model_free(m);
        return err_set(err, "the model needs %.0f MB (parameters, gradients%s) but only %.0f MB are available",
                       copies * mb, be->memory_is_host ? ", init" : "", avail_mb);
    }
    m->params = be->alloc(m->n_params * sizeof(float));
    m->grads = be->alloc(m->n_params * sizeof(float));
    if (!m->params || !m->grads) {
        model_free(m);
        return err_set(err, "out of memory: the model needs 2 × %.1f MB", mb);
    }
    return 0;
}

int model_clone(Model *out, const Model *src, Err *err) {
    if (model_alloc(out, &src->cfg, src->be, err) != 0) return -1;
    src->be->copy(out->params, src->params, sizeof(float) * src->n_params);
    return 0;
}

int model_build(Model *m, const ModelConfig *cfg, const Backend *be, Err *err) {
    if (model_alloc(m, cfg, be, err)) return -1;
    float *host = calloc(m->n_params, sizeof(float));
    if (!host) {
        model_free(m);
        return err_set(err, "out of memory: initialization needs %.1f MB of host memory", m->n_params * 4.0 / 1e6);
    }
    if (init_parameters(m, host, err)) {
        free(host);
        model_free(m);
        return -1;
    }
    m->be->upload(m->params, host, m->n_params * sizeof(float));
    free(host);
    return 0;
}

int backend_failed(const Backend *be, Err *err) {
    const char *e = be->take_error ? be->take_error() : NULL;
    return e ? err_set(err, "%s backend: %s", be->name, e) : 0;
}

int model_has_factors(const Model *m) {
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].role == ROLE_FACTOR_A) return 1;
    return 0;
}

void model_free(Model *m) {
    if (m->be) {
        activations_free(m);
        m->be->release(m->params);
        m->be->release(m->grads);
    }
    free(m->tensors);
    free(m->layer);
    memset(m, 0, sizeof *m);
}

void model_zero_grad(Model *m) { m->be->zero(m->grads, m->n_params * sizeof(float)); }

int model_params_finite(const Model *m) { return isfinite(m->be->sumsq(m->params, (long)m->n_params)); }

ModelCounts model_counts(const Model *m, int B, int T) {
    ModelCounts k = {0};
    const ModelConfig *c = &m->cfg;
    for (int i = 0; i < m->n_tensors; i++) {
        const TensorDesc *t = &m->tensors[i];
        long n = (long)t->rows * t->cols;
        k.params += n;
        if (t->role != ROLE_EMBED && t->role != ROLE_NORM) k.matmul_params += n;   // a gain multiplies, no product
        if (t->role == ROLE_FACTOR_B) continue;  // counted with its A below
        if (t->role == ROLE_FACTOR_A) n = (long)t->rows * m->tensors[i + 1].rows;  // out × in
        k.dense_params += n;
    }
    // 6 FLOPs per matmul parameter per token (forward 2, backward 4), plus attention's
    // QKᵀ and P·V: 2·2·T·dim per layer forward, ×3 with backward (PaLM's accounting).
    k.train_flops_per_token = 6.0 * k.matmul_params + 12.0 * c->layers * T * c->dim;
    k.param_bytes = m->n_params * sizeof(float);
    k.activation_bytes = activations_bytes(m, B, T);
    return k;
}
