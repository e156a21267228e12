// factorize.c — re-factorize a model at a new rank by truncated SVD of every block matrix.
// Each W is formed on the host (downloaded when dense, A·Bᵀ when factorized), decomposed with
// sgesdd, and its leading R singular triplets uploaded into the new model. The Frobenius error
// of the best rank-R approximation is exact from the spectrum (Eckart–Young):
//   ‖W − W_R‖_F² = Σ_{i>R} s_i²,   ‖W‖_F² = Σ s_i².
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include "factorize.h"
#include "linalg.h"
#include "model_internal.h"

#define LINEARS_PER_LAYER 7

static void layer_linears(const LayerWeights *w, const Linear *lins[LINEARS_PER_LAYER]) {
    const Linear *l[LINEARS_PER_LAYER] = {&w->wq, &w->wk, &w->wv, &w->wo, &w->w1, &w->w2, &w->w3};
    memcpy(lins, l, sizeof l);
}

// The matrix name of a linear: its tensor name without the ".A" of a factor.
static void linear_name(const Model *m, const Linear *lin, char *buf, size_t cap) {
    snprintf(buf, cap, "%s", m->tensors[lin->w].name);
    size_t n = strlen(buf);
    if (lin->rank > 0 && n > 2 && strcmp(buf + n - 2, ".A") == 0) buf[n - 2] = '\0';
}

// W (out×in) of a source linear on the host into w.
static void host_matrix(const Model *m, const Linear *lin, float *w, float *scratch) {
    const Backend *be = m->be;
    size_t out = (size_t)lin->out, in = (size_t)lin->in, r = (size_t)lin->rank;
    if (r == 0) {
        be->download(w, param(m, lin->w), sizeof(float) * out * in);
        return;
    }
    float *a = scratch, *b = scratch + out * r;
    be->download(a, param(m, lin->w), sizeof(float) * out * r);
    be->download(b, param(m, lin->b), sizeof(float) * in * r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)out, (int)in, (int)r, 1.0f, a, (int)r, b, (int)r,
                0.0f, w, (int)in);
}

void factorize_report_free(FactorizeReport *rep) {
    if (!rep) return;
    free(rep->items);
    memset(rep, 0, sizeof *rep);
}

// Layer l's seven matrices: formed on the host, decomposed side by side (truncated_svd_batch),
// their leading factors uploaded into m, and each one's relative error into items[0..7).
// host: 7 sets of `per` floats (W, its factors, its singular values).
static int factorize_layer(const Model *src, Model *m, int l, int rank, float *host, size_t per,
                           FactorizeError *items, Err *err) {
    const Linear *from[LINEARS_PER_LAYER], *to[LINEARS_PER_LAYER];
    SvdJob jobs[LINEARS_PER_LAYER];
    layer_linears(&src->layer[l], from);
    layer_linears(&m->layer[l], to);
    for (int i = 0; rank == 0 && i < LINEARS_PER_LAYER; i++) {   // dense: W itself, exactly
        float *w = host, *scratch = host + (size_t)from[i]->out * from[i]->in;
        host_matrix(src, from[i], w, scratch);
        m->be->upload(param(m, to[i]->w), w, sizeof(float) * from[i]->out * from[i]->in);
        items[i] = (FactorizeError){.rows = from[i]->out, .cols = from[i]->in, .source_rank = from[i]->rank};
        linear_name(src, from[i], items[i].name, sizeof items[i].name);
    }
    if (rank == 0) return 0;
    for (int i = 0; i < LINEARS_PER_LAYER; i++) {
        int o = from[i]->out, in = from[i]->in;
        float *w = host + i * per, *fac = w + (size_t)o * in, *s = fac + (size_t)(o + in) * (o < in ? o : in);
        host_matrix(src, from[i], w, fac);
        size_t bad = 0;
        while (bad < (size_t)o * in && isfinite(w[bad])) bad++;
        if (bad < (size_t)o * in) {   // LAPACK would fail with a bare code (NaN) or return NaN factors (inf)
            char name[sizeof items[0].name];
            linear_name(src, from[i], name, sizeof name);
            return err_set(err, "%s holds a non-finite value (%s at row %zu, column %zu): it has no truncated SVD", name,
                           nonfinite_text(w[bad]), bad / (size_t)in, bad % (size_t)in);
        }
        jobs[i] = (SvdJob){w, o, in, rank, fac, fac + (size_t)o * rank, s};
    }
    if (truncated_svd_batch(jobs, LINEARS_PER_LAYER, err)) return -1;
    for (int i = 0; i < LINEARS_PER_LAYER; i++) {
        const SvdJob *j = &jobs[i];
        int k = j->out < j->in ? j->out : j->in;
        m->be->upload(param(m, to[i]->w), j->a, sizeof(float) * j->out * rank);
        m->be->upload(param(m, to[i]->b), j->b, sizeof(float) * j->in * rank);
        FactorizeError *e = &items[i];
        linear_name(src, from[i], e->name, sizeof e->name);
        e->rows = j->out;
        e->cols = j->in;
        e->source_rank = from[i]->rank;
        e->rel_error = truncation_error(j->s, k, rank);
    }
    return 0;
}

int model_factorize(const Model *src, int rank, Model *out, FactorizeReport *rep, Err *err) {
    if (!src || !src->be || !src->params || !out) return err_set(err, "factorize: no model");
    const ModelConfig *c = &src->cfg;
    char name[64];
    if (rank == 0 && !model_has_factors(src))
        return err_set(err, "factorize: rank=0 forms a factorized model's matrices, and this model is dense already");
    // the rank must fit every matrix; name the first it does not
    for (int l = 0; l < c->layers; l++) {
        const Linear *lins[LINEARS_PER_LAYER];
        layer_linears(&src->layer[l], lins);
        for (int i = 0; i < LINEARS_PER_LAYER; i++) {
            int lim = lins[i]->out < lins[i]->in ? lins[i]->out : lins[i]->in;
            if (rank < 0 || rank > lim) {
                linear_name(src, lins[i], name, sizeof name);
                return err_set(err, "factorize: rank=%d does not fit %s (%d×%d): the rank must be in [1, %d] (or 0: dense)",
                               rank, name, lins[i]->out, lins[i]->in, lim);
            }
        }
    }
    ModelConfig nc = *c;
    nc.rank = rank;
    Model m;
    if (model_alloc(&m, &nc, src->be, err)) return -1;
    const Backend *be = src->be;
    int n_items = c->layers * LINEARS_PER_LAYER;
    FactorizeError *items = calloc((size_t)n_items, sizeof *items);
    // host buffers, one set per linear of a layer, sized for the largest matrix: W, its factors
    // (source or new), singular values
    size_t most = 0, most_k = 0;
    for (int l = 0; l < c->layers; l++) {
        const Linear *lins[LINEARS_PER_LAYER];
        layer_linears(&src->layer[l], lins);
        for (int i = 0; i < LINEARS_PER_LAYER; i++) {
            size_t o = (size_t)lins[i]->out, in = (size_t)lins[i]->in, k = o < in ? o : in;
            if (o * in > most) most = o * in;
            if (k > most_k) most_k = k;
        }
    }
    size_t per_linear = 3 * most + most_k;
    float *host = malloc(sizeof(float) * per_linear * LINEARS_PER_LAYER);
    int rc = 0;
    if (!items || !host)
        rc = err_set(err, "factorize: out of memory (%.1f MB of host scratch)",
                     4.0 * per_linear * LINEARS_PER_LAYER / 1e6);
    // embed, head and every norm gain are copied as they are
    int copied[2] = {src->embed, src->head};
    for (int i = 0; rc == 0 && i < 2; i++)
        be->copy(param(&m, i == 0 ? m.embed : m.head), param(src, copied[i]),
                 sizeof(float) * src->tensors[copied[i]].rows * src->tensors[copied[i]].cols);
    be->copy(param(&m, m.norm), param(src, src->norm), sizeof(float) * c->dim);
    for (int l = 0; rc == 0 && l < c->layers; l++) {
        be->copy(param(&m, m.layer[l].attn_norm), param(src, src->layer[l].attn_norm), sizeof(float) * c->dim);
        be->copy(param(&m, m.layer[l].mlp_norm), param(src, src->layer[l].mlp_norm), sizeof(float) * c->dim);
        rc = factorize_layer(src, &m, l, rank, host, per_linear, items + l * LINEARS_PER_LAYER, err);
    }
    free(host);
    if (rc != 0) {
        free(items);
        model_free(&m);
        return -1;
    }
    if (rep) {
        rep->n = n_items;
        rep->items = items;
        rep->worst = rep->mean = 0;
        for (int i = 0; i < n_items; i++) {
            if (items[i].rel_error > rep->worst) rep->worst = items[i].rel_error;
            rep->mean += items[i].rel_error / n_items;
        }
    } else {
        free(items);
    }
    *out = m;
    return 0;
}
