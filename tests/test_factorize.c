// test_factorize.c — `model factorize`: full rank reproduces the model, the reported error is
// the exact ‖W − A′B′ᵀ‖_F/‖W‖_F, a rank-1 matrix factorizes exactly at rank 1, bad ranks are
// refused by matrix name, and the source model is never touched.
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "test.h"
#include "../engine/factorize.h"
#include "../engine/model_internal.h"
#include "../engine/rng.h"

static const Backend *be;

// kv_heads = heads and ffn > dim: every matrix has min(out, in) = dim, so rank dim is full.
static ModelConfig config(int rank, int kv_heads) {
    return (ModelConfig){.dim = 32, .layers = 2, .heads = 4, .kv_heads = kv_heads, .ffn = 48, .seq = 16,
                         .vocab = 53, .rank = rank, .rank_ratio = 0.25f, .rope_theta = 10000.0f,
                         .norm_eps = 1e-5f, .seed = 5};
}

static float *host_copy(const float *dev, size_t n) {
    float *h = malloc(n * sizeof(float));
    be->download(h, dev, n * sizeof(float));
    return h;
}

static float *logits_of(Model *m, const int32_t *tok, int T) {
    Err err;
    float loss;
    CHECK_OK(model_forward(m, tok, 1, T, &loss, &err));
    return host_copy(m->acts->logits, (size_t)T * m->cfg.vocab);
}

static double max_rel_diff(const float *a, const float *b, size_t n) {
    double w = 0;
    for (size_t i = 0; i < n; i++) w = fmax(w, fabs(a[i] - b[i]) / fmax(1.0, fabs(b[i])));
    return w;
}

static const Linear *linear_at(const Model *m, int l, int i) {
    const LayerWeights *w = &m->layer[l];
    const Linear *lins[7] = {&w->wq, &w->wk, &w->wv, &w->wo, &w->w1, &w->w2, &w->w3};
    return lins[i];
}

// W = A·Bᵀ (or the dense W) on the host, in double.
static double *dense_of(const Model *m, const Linear *lin) {
    size_t o = (size_t)lin->out, in = (size_t)lin->in, r = (size_t)lin->rank;
    double *w = calloc(o * in, sizeof(double));
    if (r == 0) {
        float *f = host_copy(param(m, lin->w), o * in);
        for (size_t i = 0; i < o * in; i++) w[i] = f[i];
        free(f);
        return w;
    }
    float *a = host_copy(param(m, lin->w), o * r), *b = host_copy(param(m, lin->b), in * r);
    for (size_t i = 0; i < o; i++)
        for (size_t j = 0; j < in; j++) {
            double acc = 0;
            for (size_t k = 0; k < r; k++) acc += (double)a[i * r + k] * b[j * r + k];
            w[i * in + j] = acc;
        }
    free(a);
    free(b);
    return w;
}

static void check_full_rank_reproduces(int src_rank, const char *what) {
    Err err;
    Model src, f;
    ModelConfig c = config(src_rank, 4);
    CHECK_OK(model_build(&src, &c, be, &err));
    int32_t tok[13];
    uint64_t s = 17;
    for (int i = 0; i < 13; i++) tok[i] = (int32_t)(rng_next(&s) % (uint64_t)c.vocab);
    float *before = host_copy(src.params, src.n_params);
    float *ref = logits_of(&src, tok, 12);
    FactorizeReport rep;
    CHECK_OK(model_factorize(&src, c.dim, &f, &rep, &err));
    if (err.msg[0]) { free(before); free(ref); model_free(&src); return; }
    CHECK(f.cfg.rank == c.dim && f.layer[0].wq.rank == c.dim && f.layer[1].w2.rank == c.dim,
          "%s: the new model is factorized at rank %d", what, c.dim);
    CHECK(rep.n == 7 * c.layers, "%s: one report line per matrix (%d)", what, rep.n);
    CHECK(rep.worst < 1e-4, "%s: full rank loses nothing: worst error %.3g", what, rep.worst);
    float *got = logits_of(&f, tok, 12);
    double d = max_rel_diff(got, ref, (size_t)12 * c.vocab);
    CHECK(d < 1e-4, "%s: full-rank logits vs the source: max relative difference %.3g", what, d);
    float *after = host_copy(src.params, src.n_params);
    CHECK(memcmp(before, after, src.n_params * sizeof(float)) == 0, "%s: the source parameters are untouched", what);
    free(before); free(after); free(ref); free(got);
    factorize_report_free(&rep);
    model_free(&f);
    model_free(&src);
}

// rank=0 makes a factorized model dense: every W = A·Bᵀ formed, the same logits, errors 0; a
// dense model is refused (nothing to form).
static void test_rank0_makes_dense(void) {
    Err err;
    Model src, f;
    ModelConfig c = config(6, 4);
    CHECK_OK(model_build(&src, &c, be, &err));
    int32_t tok[13];
    uint64_t s = 29;
    for (int i = 0; i < 13; i++) tok[i] = (int32_t)(rng_next(&s) % (uint64_t)c.vocab);
    float *ref = logits_of(&src, tok, 12);
    FactorizeReport rep;
    CHECK_OK(model_factorize(&src, 0, &f, &rep, &err));
    if (err.msg[0]) { free(ref); model_free(&src); return; }
    CHECK(f.cfg.rank == 0 && f.layer[0].wq.rank == 0 && f.layer[1].w2.rank == 0 && !model_has_factors(&f),
          "the new model is dense");
    CHECK(rep.n == 7 * c.layers && rep.worst == 0 && rep.items[3].source_rank == 6, "errors 0 (worst %g), from rank %d",
          rep.worst, rep.items[3].source_rank);
    float *got = logits_of(&f, tok, 12);
    double d = max_rel_diff(got, ref, (size_t)12 * c.vocab);
    CHECK(d < 1e-5, "dense logits vs the factorized source: max relative difference %.3g", d);
    Model g;
    CHECK(model_factorize(&f, 0, &g, NULL, &err) != 0 && strstr(err.msg, "dense already"), "a dense model: '%s'",
          err.msg);
    free(ref); free(got);
    factorize_report_free(&rep);
    model_free(&f);
    model_free(&src);
}

static void test_full_rank_from_dense(void) { check_full_rank_reproduces(0, "dense source"); }
static void test_full_rank_from_factorized(void) { check_full_rank_reproduces(6, "rank-6 source"); }

// The reported error against ‖W − A′B′ᵀ‖_F/‖W‖_F computed from the matrices themselves.
static void check_report_is_exact(int src_rank, int rank, const char *what) {
    Err err;
    Model src, f;
    ModelConfig c = config(src_rank, 2);
    CHECK_OK(model_build(&src, &c, be, &err));
    FactorizeReport rep;
    CHECK_OK(model_factorize(&src, rank, &f, &rep, &err));
    if (err.msg[0]) { model_free(&src); return; }
    double worst = 0, smallest = 1;
    for (int l = 0; l < c.layers; l++)
        for (int i = 0; i < 7; i++) {
            const Linear *a = linear_at(&src, l, i), *b = linear_at(&f, l, i);
            double *w = dense_of(&src, a), *w2 = dense_of(&f, b), num = 0, den = 0;
            for (size_t j = 0; j < (size_t)a->out * a->in; j++) {
                num += (w[j] - w2[j]) * (w[j] - w2[j]);
                den += w[j] * w[j];
            }
            double exact = sqrt(num / den);
            const FactorizeError *e = &rep.items[l * 7 + i];
            worst = fmax(worst, fabs(e->rel_error - exact));
            smallest = fmin(smallest, exact);
            CHECK(e->rows == a->out && e->cols == a->in && e->source_rank == src_rank && strstr(e->name, "blocks.") &&
                  !strstr(e->name, ".A"), "%s: report entry %s %d×%d", what, e->name, e->rows, e->cols);
            free(w);
            free(w2);
        }
    CHECK(worst < 2e-5, "%s: reported vs computed error: worst difference %.3g", what, worst);
    CHECK(smallest > 0.05, "%s: the truncation really loses something (smallest error %.3g)", what, smallest);
    CHECK(strcmp(rep.items[0].name, "blocks.0.attn.wq") == 0 && strcmp(rep.items[13].name, "blocks.1.mlp.w3") == 0,
          "%s: names in table order: '%s' … '%s'", what, rep.items[0].name, rep.items[13].name);
    factorize_report_free(&rep);
    model_free(&f);
    model_free(&src);
}

static void test_report_from_dense(void) { check_report_is_exact(0, 5, "dense → rank 5"); }
static void test_report_from_factorized(void) { check_report_is_exact(8, 3, "rank 8 → rank 3"); }

// Every matrix set to u·vᵀ: rank 1 keeps it all.
static void test_rank_one_matrix(void) {
    Err err;
    Model src, f;
    ModelConfig c = config(0, 2);
    CHECK_OK(model_build(&src, &c, be, &err));
    float *h = host_copy(src.params, src.n_params);
    uint64_t s = 23;
    for (int l = 0; l < c.layers; l++)
        for (int i = 0; i < 7; i++) {
            const Linear *lin = linear_at(&src, l, i);
            float *w = h + src.tensors[lin->w].offset, u[64], v[64];
            for (int j = 0; j < lin->out; j++) u[j] = rng_normal(&s);
            for (int j = 0; j < lin->in; j++) v[j] = rng_normal(&s);
            for (int r = 0; r < lin->out; r++)
                for (int q = 0; q < lin->in; q++) w[(size_t)r * lin->in + q] = u[r] * v[q];
        }
    be->upload(src.params, h, src.n_params * sizeof(float));
    free(h);
    FactorizeReport rep;
    CHECK_OK(model_factorize(&src, 1, &f, &rep, &err));
    if (err.msg[0]) { model_free(&src); return; }
    CHECK(rep.worst < 1e-5, "rank-1 matrices at rank 1: worst reported error %.3g", rep.worst);
    double worst = 0;
    for (int l = 0; l < c.layers; l++)
        for (int i = 0; i < 7; i++) {
            double *w = dense_of(&src, linear_at(&src, l, i)), *w2 = dense_of(&f, linear_at(&f, l, i)), num = 0, den = 0;
            for (int j = 0; j < linear_at(&src, l, i)->out * linear_at(&src, l, i)->in; j++) {
                num += (w[j] - w2[j]) * (w[j] - w2[j]);
                den += w[j] * w[j];
            }
            worst = fmax(worst, sqrt(num / den));
            free(w);
            free(w2);
        }
    CHECK(worst < 1e-5, "A′B′ᵀ reproduces u·vᵀ: worst relative error %.3g", worst);
    factorize_report_free(&rep);
    model_free(&f);
    model_free(&src);
}

static void test_bad_ranks_refused(void) {
    Err err;
    Model src, f;
    ModelConfig c = config(4, 2);   // wk, wv are 16×32: rank ≤ 16
    CHECK_OK(model_build(&src, &c, be, &err));
    float *before = host_copy(src.params, src.n_params);
    memset(&f, 0x5a, sizeof f);
    Model untouched = f;
    struct { int rank; const char *names; } bad[] = {{-1, "blocks.0.attn.wq"}, {-3, "blocks.0.attn.wq"},
                                                       {17, "blocks.0.attn.wk"}, {33, "blocks.0.attn.wq"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err.msg[0] = 0;
        int rc = model_factorize(&src, bad[i].rank, &f, NULL, &err);
        CHECK(rc != 0 && strstr(err.msg, bad[i].names) && strstr(err.msg, "rank"),
              "rank=%d refused naming %s: '%s'", bad[i].rank, bad[i].names, err.msg);
        CHECK(memcmp(&f, &untouched, sizeof f) == 0, "rank=%d: the output is not written", bad[i].rank);
    }
    CHECK_OK(model_factorize(&src, 16, &f, NULL, &err));   // the largest that fits every matrix
    if (!err.msg[0]) model_free(&f);
    float *after = host_copy(src.params, src.n_params);
    CHECK(memcmp(before, after, src.n_params * sizeof(float)) == 0, "the source parameters are untouched");
    CHECK(src.cfg.rank == 4 && src.layer[0].wq.rank == 4, "the source config is untouched");
    free(before);
    free(after);
    model_free(&src);
}

// A matrix holding inf or NaN is refused by name (inf went through LAPACK as NaN factors with a
// reported error of 0; NaN failed with a bare LAPACK code), the output unwritten.
static void test_nonfinite_refused(void) {
    Err err;
    Model src, f;
    ModelConfig c = config(0, 2);   // dense
    CHECK_OK(model_build(&src, &c, be, &err));
    float values[2] = {INFINITY, NAN};
    for (int i = 0; i < 2; i++) {
        const TensorDesc *t = &src.tensors[src.layer[1].wv.w];
        float *p = src.params + t->offset + 5 * t->cols + 3;   // row 5, column 3 (the CPU backend's memory)
        float kept = *p;
        *p = values[i];
        memset(&f, 0x5a, sizeof f);
        Model untouched = f;
        err.msg[0] = 0;
        int rc = model_factorize(&src, 4, &f, NULL, &err);
        CHECK(rc != 0 && strstr(err.msg, "blocks.1.attn.wv holds a non-finite value") && strstr(err.msg, "row 5, column 3") &&
              strstr(err.msg, i ? "(NaN at" : "(inf at"), "%g refused naming the matrix, the value and where: '%s'",
              values[i], err.msg);
        CHECK(memcmp(&f, &untouched, sizeof f) == 0, "%g: the output is not written", values[i]);
        *p = kept;
    }
    model_free(&src);
}

int main(void) {
    be = backend_cpu(0);
    RUN(test_full_rank_from_dense);
    RUN(test_rank0_makes_dense);
    RUN(test_full_rank_from_factorized);
    RUN(test_report_from_dense);
    RUN(test_report_from_factorized);
    RUN(test_rank_one_matrix);
    RUN(test_bad_ranks_refused);
    RUN(test_nonfinite_refused);
    return TEST_SUMMARY();
}
