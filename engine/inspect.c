// inspect.c — singular values, norms and update norms of the model's matrices, and the
// spectrum history (see inspect.h). Spectra are computed on the host (the matrices are at
// most a few thousand × a few hundred); norms on the device through the Backend.
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include <lapacke.h>
#include "inspect.h"
#include "lowrank_norm.h"
#include "model_internal.h"

// ---------------------------------------------------------------------------------------------
// the matrices and their names

static InspectMatrix single_tensor(const Model *m, int t) {
    const TensorDesc *d = &m->tensors[t];
    InspectMatrix x = {.rows = d->rows, .cols = d->cols, .rank = 0, .tensor_a = t, .tensor_b = -1, .layer = d->layer};
    snprintf(x.name, sizeof x.name, "%s", d->name);
    return x;
}

// A factor's tensor name less its ".A" suffix.
static InspectMatrix factorized(const Model *m, int ta, int tb) {
    const TensorDesc *a = &m->tensors[ta];
    InspectMatrix x = {.rows = a->rows, .cols = m->tensors[tb].rows, .rank = a->cols,
                       .tensor_a = ta, .tensor_b = tb, .layer = a->layer};
    size_t len = strlen(a->name) - 2;
    memcpy(x.name, a->name, len);
    x.name[len] = 0;
    return x;
}

int inspect_matrices(const Model *m, int include_io, InspectMatrix *out, int cap) {
    int n = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const TensorDesc *t = &m->tensors[i];
        InspectMatrix x;
        if (t->role == ROLE_DENSE) x = single_tensor(m, i);
        else if (t->role == ROLE_FACTOR_A && i + 1 < m->n_tensors && m->tensors[i + 1].role == ROLE_FACTOR_B)
            x = factorized(m, i, i + 1);
        else continue;
        if (n < cap) out[n] = x;
        n++;
    }
    if (include_io) {
        if (n < cap) out[n] = single_tensor(m, m->embed);
        n++;
        if (n < cap) out[n] = single_tensor(m, m->head);
        n++;
    }
    return n;
}

static int edit_distance(const char *a, const char *b) {
    int la = (int)strlen(a), lb = (int)strlen(b), row[128];
    if (la > 127 || lb > 127) return 1000;
    for (int j = 0; j <= lb; j++) row[j] = j;
    for (int i = 1; i <= la; i++) {
        int diag = row[0];   // D[i−1][j−1]
        row[0] = i;
        for (int j = 1; j <= lb; j++) {
            int up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[lb];
}

// Every name the shell accepts: the matrices (embed and head included), then each factor.
static int accepted_names(const Model *m, char (**names)[64]) {
    int nm = inspect_matrices(m, 1, NULL, 0), k = 0;
    InspectMatrix *mats = malloc(sizeof *mats * nm);
    *names = malloc(sizeof **names * (nm + m->n_tensors));
    if (!mats || !*names) {
        free(mats);
        return 0;
    }
    inspect_matrices(m, 1, mats, nm);
    for (int i = 0; i < nm; i++) memcpy((*names)[k++], mats[i].name, 64);
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].role == ROLE_FACTOR_A || m->tensors[i].role == ROLE_FACTOR_B)
            memcpy((*names)[k++], m->tensors[i].name, 64);
    free(mats);
    return k;
}

// "unknown matrix 'x' (did you mean a, b, c?)": up to three nearest accepted names.
static int unknown_name(const Model *m, const char *name, Err *err) {
    char (*names)[64];
    int n = accepted_names(m, &names), best[3] = {-1, -1, -1}, best_d[3] = {1 << 30, 1 << 30, 1 << 30};
    for (int i = 0; i < n; i++) {
        int d = edit_distance(name, names[i]);
        for (int j = 0; j < 3; j++) {
            if (d >= best_d[j]) continue;
            for (int k = 2; k > j; k--) { best_d[k] = best_d[k - 1]; best[k] = best[k - 1]; }
            best_d[j] = d;
            best[j] = i;
            break;
        }
    }
    int limit = (int)strlen(name) / 2 > 3 ? (int)strlen(name) / 2 : 3;   // further is not a typo
    char list[256] = "";
    for (int j = 0; j < 3 && best[j] >= 0 && best_d[j] <= limit; j++) {
        size_t len = strlen(list);
        snprintf(list + len, sizeof list - len, "%s%s", j ? ", " : "", names[best[j]]);
    }
    free(names);
    if (!list[0])
        return err_set(err, "unknown matrix '%s' (names look like blocks.0.attn.wq, blocks.0.mlp.w1.A, embed, head)", name);
    return err_set(err, "unknown matrix '%s' (did you mean %s?)", name, list);
}

int inspect_resolve(const Model *m, const char *name, InspectMatrix *out, Err *err) {
    if (!name || !*name) return err_set(err, "no matrix named (e.g. blocks.0.attn.wq)");
    char buf[80];
    snprintf(buf, sizeof buf, "%s.A", name);
    int ta = model_find_tensor(m, buf), t = model_find_tensor(m, name);
    if (ta >= 0 && ta + 1 < m->n_tensors && m->tensors[ta + 1].role == ROLE_FACTOR_B) {
        *out = factorized(m, ta, ta + 1);
        return 0;
    }
    if (t >= 0 && m->tensors[t].role == ROLE_NORM)
        return err_set(err, "'%s' is a norm gain (a vector of %d), not a matrix", name, m->tensors[t].cols);
    if (t >= 0) {
        *out = single_tensor(m, t);
        return 0;
    }
    return unknown_name(m, name, err);
}

// ---------------------------------------------------------------------------------------------
// spectrum

// The upper-trapezoidal k×r factor R of x (rows×r) = Q·R, k = min(rows, r), into rr (k×r).
static int qr_r(const float *x, int rows, int r, float *rr, Err *err) {
    int k = rows < r ? rows : r;
    float *q = malloc(sizeof(float) * ((size_t)rows * r + r));
    if (!q) return err_set(err, "out of memory for the QR of a %d×%d factor", rows, r);
    memcpy(q, x, sizeof(float) * rows * r);
    lapack_int info = LAPACKE_sgeqrf(LAPACK_ROW_MAJOR, rows, r, q, r, q + (size_t)rows * r);
    if (info != 0) {
        free(q);
        return err_set(err, "QR of a %d×%d factor failed (LAPACK info %d)", rows, r, (int)info);
    }
    for (int i = 0; i < k; i++)
        for (int j = 0; j < r; j++) rr[(size_t)i * r + j] = j >= i ? q[(size_t)i * r + j] : 0.0f;
    free(q);
    return 0;
}

// Singular values only of a host x (rows×cols), destroyed; min(rows, cols) into s.
static int svd_values(float *x, int rows, int cols, float *s, Err *err) {
    lapack_int info = LAPACKE_sgesdd(LAPACK_ROW_MAJOR, 'N', rows, cols, x, cols, s, NULL, rows, NULL, cols);
    if (info != 0) return err_set(err, "SVD of a %d×%d matrix failed (LAPACK info %d)", rows, cols, (int)info);
    return 0;
}

int lowrank_singular_values(const float *a, const float *b, int rows, int cols, int r, float *s, Err *err) {
    if (rows < 1 || cols < 1 || r < 1) return err_set(err, "singular values: empty %d×%d matrix of rank %d", rows, cols, r);
    int ka = rows < r ? rows : r, kb = cols < r ? cols : r;
    float *ra = malloc(sizeof(float) * ((size_t)ka * r + (size_t)kb * r + (size_t)ka * kb));
    if (!ra) return err_set(err, "out of memory for the singular values of a rank-%d matrix", r);
    float *rb = ra + (size_t)ka * r, *core = rb + (size_t)kb * r;
    int rc = qr_r(a, rows, r, ra, err);
    if (rc == 0) rc = qr_r(b, cols, r, rb, err);
    if (rc == 0) {
        // W = Q_A·R_A·R_Bᵀ·Q_Bᵀ, Q's with orthonormal columns: W's values are the core's
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ka, kb, r, 1.0f, ra, r, rb, r, 0.0f, core, kb);  // ka×kb
        rc = svd_values(core, ka, kb, s, err);
    }
    free(ra);
    return rc;
}

void spectrum_summarize(SpectrumResult *r) {
    double sum = 0, sumsq = 0, top = r->n > 0 ? r->values[0] : 0;
    for (int i = 0; i < r->n; i++) {
        sum += r->values[i];
        sumsq += (double)r->values[i] * r->values[i];
    }
    double entropy = 0;
    for (int i = 0; i < r->n && sum > 0; i++) {
        double p = r->values[i] / sum;
        if (p > 0) entropy -= p * log(p);
    }
    r->spectral_norm = top;
    r->frobenius_norm = sqrt(sumsq);
    r->stable_rank = top > 0 ? sumsq / (top * top) : 0;
    r->effective_rank = sum > 0 ? exp(entropy) : 0;
    int big = r->rows > r->cols ? r->rows : r->cols;
    r->numerical_zero = top * (big > 0 ? big : 1) * FLT_EPSILON;   // numpy's matrix_rank tolerance
    r->numerical_rank = 0;
    for (int i = 0; i < r->n; i++) r->numerical_rank += r->values[i] > r->numerical_zero;
    double last = r->n > 0 ? r->values[r->n - 1] : 0;
    r->condition_number = r->n > 0 && last > r->numerical_zero ? top / last : INFINITY;
}

static int spectrum_of(const Model *m, const InspectMatrix *x, SpectrumResult *out, Err *err) {
    memset(out, 0, sizeof *out);
    snprintf(out->param, sizeof out->param, "%s", x->name);
    out->rows = x->rows;
    out->cols = x->cols;
    out->rank = x->rank;
    out->n = x->rows < x->cols ? x->rows : x->cols;
    if (x->rank > 0 && x->rank < out->n) out->n = x->rank;
    size_t na = (size_t)x->rows * (x->rank ? x->rank : x->cols), nb = (size_t)x->cols * x->rank;
    float *host = malloc(sizeof(float) * (na + nb));
    out->values = malloc(sizeof(float) * out->n);
    if (!host || !out->values) {
        free(host);
        spectrum_result_free(out);
        return err_set(err, "out of memory for the spectrum of %s", x->name);
    }
    m->be->download(host, m->params + m->tensors[x->tensor_a].offset, sizeof(float) * na);
    if (x->rank) m->be->download(host + na, m->params + m->tensors[x->tensor_b].offset, sizeof(float) * nb);
    size_t bad = 0;
    while (bad < na + nb && isfinite(host[bad])) bad++;
    if (bad < na + nb) {   // LAPACK would fail with a bare info code
        float value = host[bad];
        free(host);
        spectrum_result_free(out);
        const char *tensor = bad < na ? m->tensors[x->tensor_a].name : m->tensors[x->tensor_b].name;
        if (strcmp(tensor, x->name) == 0)   // a dense W: its own tensor
            return err_set(err, "%s holds a non-finite value (%s); it has no singular values", x->name,
                           nonfinite_text(value));
        return err_set(err, "%s: %s holds a non-finite value (%s); it has no singular values", x->name, tensor,
                       nonfinite_text(value));
    }
    int rc = x->rank ? lowrank_singular_values(host, host + na, x->rows, x->cols, x->rank, out->values, err)
                     : svd_values(host, x->rows, x->cols, out->values, err);
    free(host);
    if (rc) {
        spectrum_result_free(out);
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err ? err->msg : "");
        return err_set(err, "%s: %s", x->name, why);
    }
    spectrum_summarize(out);
    return 0;
}

int inspect_spectrum(const Model *m, const char *param_name, SpectrumResult *out, Err *err) {
    InspectMatrix x;
    if (inspect_resolve(m, param_name, &x, err)) return -1;
    return spectrum_of(m, &x, out, err);
}

void spectrum_result_free(SpectrumResult *r) {
    free(r->values);
    r->values = NULL;
    r->n = 0;
}

// ---------------------------------------------------------------------------------------------
// norms

int inspect_snapshot(const Model *m, const float *src, float **dst, Err *err) {
    size_t bytes = m->n_params * sizeof(float);
    *dst = bytes < m->be->mem_available() ? m->be->alloc(bytes) : NULL;
    if (!*dst) return err_set(err, "out of memory: a snapshot of the parameters needs %.1f MB", bytes / 1e6);
    m->be->copy(*dst, src, bytes);
    return 0;
}

void inspect_snapshot_free(const Model *m, float *snapshot) {
    if (snapshot) m->be->release(snapshot);
}

// Device scratch for one norms call, sized for the largest matrix.
typedef struct NormScratch {
    float *base, *gram_a, *gram_b, *dot, *dense_diff;
    float *delta;   // ΔA, then ΔB, of a factorized matrix (rows·r + cols·r)
    float *grams;   // lowrank_spectral_norm's, or a dense matrix's Gram (dense_spectral_norm)
} NormScratch;

static int scratch_alloc(const Model *m, const InspectMatrix *mats, int n, int with_diff, NormScratch *s, Err *err) {
    size_t rr = 1, diff = 0, delta = 0, grams = 0;
    for (int i = 0; i < n; i++) {
        const InspectMatrix *x = &mats[i];
        size_t d = x->rows < x->cols ? x->rows : x->cols;
        if (x->rank == 0 && d * d > grams) grams = d * d;
        if ((size_t)x->rank * x->rank > rr) rr = (size_t)x->rank * x->rank;
        if (with_diff && x->rank == 0 && (size_t)x->rows * x->cols > diff) diff = (size_t)x->rows * x->cols;
        if (x->rank && (size_t)(x->rows + x->cols) * x->rank > delta) delta = (size_t)(x->rows + x->cols) * x->rank;
        if (x->rank && lowrank_gram_floats(2, x->rank) > grams) grams = lowrank_gram_floats(2, x->rank);
    }
    if (!with_diff) delta = 0;
    size_t total = 2 * rr + 1 + diff + delta + grams;
    s->base = total * sizeof(float) < m->be->mem_available() ? m->be->alloc(total * sizeof(float)) : NULL;
    if (!s->base) return err_set(err, "out of memory: norms need %.1f MB of scratch", total * 4.0 / 1e6);
    s->gram_a = s->base;
    s->gram_b = s->gram_a + rr;
    s->dot = s->gram_b + rr;
    s->dense_diff = s->dot + 1;
    s->delta = s->dense_diff + diff;
    s->grams = s->delta + delta;
    return 0;
}

// ‖A·Bᵀ‖_F² = tr(AᵀA·BᵀB) = Σᵢⱼ (AᵀA)ᵢⱼ(BᵀB)ᵢⱼ (both symmetric): two r×r Grams and a dot.
static double frobenius_factorized(const Model *m, const float *a, const float *b, int rows, int cols, int r, NormScratch *s) {
    const Backend *be = m->be;
    be->gemm(1, 0, r, r, rows, 1.0f, a, r, a, r, 0.0f, s->gram_a, r);   // AᵀA (r×r)
    be->gemm(1, 0, r, r, cols, 1.0f, b, r, b, r, 0.0f, s->gram_b, r);   // BᵀB (r×r)
    be->gemm(0, 0, 1, 1, r * r, 1.0f, s->gram_a, r * r, s->gram_b, 1, 0.0f, s->dot, 1);   // vec·vec
    float f2;
    be->download(&f2, s->dot, sizeof f2);
    if (!isfinite(f2)) return NAN;   // a factor holding NaN or Inf: not a norm
    return f2 > 0 ? sqrt(f2) : 0;   // rounding can leave a tiny negative for W ≈ 0
}

// ‖ΔW‖₂ of a factorized W's last update, exactly (lowrank_update, lowrank_spectral_norm).
static double factorized_update_norm(const Model *m, const InspectMatrix *x, const float *prev, NormScratch *s,
                                     Err *err) {
    const float *a0 = prev + m->tensors[x->tensor_a].offset, *b0 = prev + m->tensors[x->tensor_b].offset;
    LowRankProduct dw = lowrank_update(m->be, param(m, x->tensor_a), param(m, x->tensor_b), a0, b0, x->rows, x->cols,
                                       x->rank, s->delta);
    return lowrank_spectral_norm(m->be, &dw, s->grams, err);
}

static void norm_row(const Model *m, const InspectMatrix *x, const NormsOptions *opt, NormScratch *s, NormRow *row) {
    const Backend *be = m->be;
    const float *a = param(m, x->tensor_a), *b = x->rank ? param(m, x->tensor_b) : NULL;
    size_t elems = (size_t)x->rows * (x->rank ? x->rank : x->cols);
    LowRankProduct w = {{a}, {b}, 1, x->rows, x->cols, x->rank};
    Err err;   // a failure gives NAN, shown as "–"
    row->mat = *x;
    row->spectral = x->rank ? lowrank_spectral_norm(be, &w, s->grams, &err)
                            : dense_spectral_norm(be, a, x->rows, x->cols, s->grams, &err);
    row->frobenius = x->rank ? frobenius_factorized(m, a, b, x->rows, x->cols, x->rank, s) : sqrt(be->sumsq(a, (long)elems));
    if (row->spectral == 0 && row->frobenius == 0) row->stable_rank = 0;   // W = 0
    else if (row->spectral > 0 && isfinite(row->frobenius))
        row->stable_rank = row->frobenius * row->frobenius / (row->spectral * row->spectral);
    else row->stable_rank = NAN;   // a factor holding NaN: "–", null
    row->dw_spectral = row->dw_over_eta = row->dw_over_w = NAN;
    TensorRole role = x->layer < 0 ? ROLE_EMBED : x->rank ? ROLE_FACTOR_A : ROLE_DENSE;   // (head: as embed)
    row->eta = optimizer_tensor_lr(opt->kind, role, opt->lr, opt->io_lr);
    if (!opt->prev) return;
    if (x->rank) {
        row->dw_spectral = factorized_update_norm(m, x, opt->prev, s, &err);
    } else {
        const float *a0 = opt->prev + m->tensors[x->tensor_a].offset;
        be->copy(s->dense_diff, a0, elems * sizeof(float));      // dense ΔW = W′ − W, formed
        be->scale(s->dense_diff, -1.0f, (long)elems);
        be->add(s->dense_diff, a, (long)elems);
        row->dw_spectral = dense_spectral_norm(be, s->dense_diff, x->rows, x->cols, s->grams, &err);
    }
    row->dw_over_eta = row->eta > 0 ? row->dw_spectral / row->eta : NAN;
    row->dw_over_w = row->spectral > 0 ? row->dw_spectral / row->spectral : NAN;
}

int inspect_norms_opts(const Model *m, const NormsOptions *opt, NormRow **rows, int *n, Err *err) {
    *rows = NULL;
    *n = 0;
    int nm = inspect_matrices(m, opt->include_io, NULL, 0);
    InspectMatrix *mats = malloc(sizeof *mats * (nm ? nm : 1));
    NormRow *out = calloc(nm ? nm : 1, sizeof *out);
    NormScratch s = {0};
    int rc = mats && out ? 0 : err_set(err, "out of memory for %d norm rows", nm);
    if (rc == 0) {
        inspect_matrices(m, opt->include_io, mats, nm);
        rc = scratch_alloc(m, mats, nm, opt->prev != NULL, &s, err);
    }
    if (rc) {
        free(mats);
        free(out);
        return -1;
    }
    for (int i = 0; i < nm; i++) norm_row(m, &mats[i], opt, &s, &out[i]);
    m->be->release(s.base);
    free(mats);
    *rows = out;
    *n = nm;
    return 0;
}

int inspect_norms(const Model *m, NormRow **rows, int *n, Err *err) {
    NormsOptions opt = {0};
    return inspect_norms_opts(m, &opt, rows, n, err);
}

int inspect_norms_delta(const Model *m, const float *prev, float lr, NormRow **rows, int *n, Err *err) {
    NormsOptions opt = {.prev = prev, .lr = lr};
    return inspect_norms_opts(m, &opt, rows, n, err);
}

// ---------------------------------------------------------------------------------------------
// spectrum history

int spectrum_history_record(SpectrumHistory *h, int step, const char *param, const float *values, int n, Err *err) {
    SpectrumRecord *r = (SpectrumRecord *)spectrum_history_lookup(h, step, param);
    if (!r) {
        if (h->n == h->cap) {
            int cap = h->cap ? 2 * h->cap : 64;
            SpectrumRecord *grown = realloc(h->rec, sizeof *grown * cap);
            if (!grown) return err_set(err, "out of memory for the spectrum history");
            h->rec = grown;
            h->cap = cap;
        }
        r = &h->rec[h->n++];
        memset(r, 0, sizeof *r);
        r->step = step;
        snprintf(r->param, sizeof r->param, "%s", param);
    }
    float *v = malloc(sizeof(float) * (n > 0 ? n : 1));
    if (!v) return err_set(err, "out of memory for the spectrum history");
    memcpy(v, values, sizeof(float) * n);
    free(r->values);
    r->values = v;
    r->n = n;
    return 0;
}

int spectrum_history_record_all(SpectrumHistory *h, const Model *m, int step, Err *err) {
    int nm = inspect_matrices(m, 0, NULL, 0), rc = 0;
    InspectMatrix *mats = malloc(sizeof *mats * (nm ? nm : 1));
    if (!mats) return err_set(err, "out of memory for the spectrum history");
    inspect_matrices(m, 0, mats, nm);
    for (int i = 0; i < nm && rc == 0; i++) {
        SpectrumResult r;
        if ((rc = spectrum_of(m, &mats[i], &r, err))) break;
        rc = spectrum_history_record(h, step, r.param, r.values, r.n, err);
        spectrum_result_free(&r);
    }
    free(mats);
    return rc;
}

const SpectrumRecord *spectrum_history_lookup(const SpectrumHistory *h, int step, const char *param) {
    for (int i = 0; i < h->n; i++)
        if (h->rec[i].step == step && strcmp(h->rec[i].param, param) == 0) return &h->rec[i];
    return NULL;
}

const SpectrumRecord *spectrum_history_nearest(const SpectrumHistory *h, int step, const char *param, int skip) {
    const SpectrumRecord *best = NULL;
    for (int i = 0; i < h->n; i++) {
        const SpectrumRecord *r = &h->rec[i];
        if (strcmp(r->param, param) != 0 || r->step == skip) continue;
        long d = labs((long)r->step - step), bd = best ? labs((long)best->step - step) : 0;
        if (!best || d < bd || (d == bd && r->step < best->step)) best = r;
    }
    return best;
}

void spectrum_history_free(SpectrumHistory *h) {
    for (int i = 0; i < h->n; i++) free(h->rec[i].values);
    free(h->rec);
    memset(h, 0, sizeof *h);
}
