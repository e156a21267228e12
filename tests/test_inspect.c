// test_inspect.c — spectra of factorized matrices against LAPACK's SVD of the formed W
// (several shapes and ranks, rank-deficient factors too), the summaries (stable rank,
// effective rank, condition number, Gram Frobenius norm) on spectra the test chooses,
// the norms of W and ΔW (exact from the factors' Grams, power iteration for dense matrices), names
// and "did you mean", and the spectrum history.
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <float.h>
#include <lapacke.h>
#include "test.h"
#include "../engine/inspect.h"
#include "../engine/model_internal.h"
#include "../engine/rng.h"

static const Backend *be;

static ModelConfig micro_config(int rank) {
    return (ModelConfig){.dim = 32, .layers = 2, .heads = 4, .kv_heads = 2, .ffn = 48, .seq = 8,
                         .vocab = 37, .rank = rank, .rank_ratio = 0.25f, .rope_theta = 10000.0f,
                         .norm_eps = 1e-5f, .seed = 7};
}

static void fill_normal(float *x, size_t n, uint64_t *rng) {
    for (size_t i = 0; i < n; i++) x[i] = rng_normal(rng);
}

// w(rows×cols) = a(rows×r)·bᵀ (cols×r), in double.
static void form(const float *a, const float *b, int rows, int cols, int r, float *w) {
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            double s = 0;
            for (int k = 0; k < r; k++) s += (double)a[i * r + k] * b[j * r + k];
            w[i * cols + j] = (float)s;
        }
}

// All min(rows, cols) singular values of a host matrix (copied).
static void svd_reference(const float *w, int rows, int cols, float *s) {
    float *c = malloc(sizeof(float) * rows * cols);
    memcpy(c, w, sizeof(float) * rows * cols);
    LAPACKE_sgesdd(LAPACK_ROW_MAJOR, 'N', rows, cols, c, cols, s, NULL, rows, NULL, cols);
    free(c);
}

// q(n×k) with orthonormal columns: QR of a Gaussian matrix.
static void random_orthonormal(float *q, int n, int k, uint64_t *rng) {
    float *tau = malloc(sizeof(float) * k);
    fill_normal(q, (size_t)n * k, rng);
    LAPACKE_sgeqrf(LAPACK_ROW_MAJOR, n, k, q, k, tau);
    LAPACKE_sorgqr(LAPACK_ROW_MAJOR, n, k, k, q, k, tau);
    free(tau);
}

static void check_lowrank_against_svd(int rows, int cols, int r, int deficient, uint64_t seed) {
    Err err;
    uint64_t rng = seed;
    float *a = malloc(sizeof(float) * rows * r), *b = malloc(sizeof(float) * cols * r);
    float *w = malloc(sizeof(float) * rows * cols);
    int k = rows < cols ? rows : cols, n = k < r ? k : r;
    float *s = malloc(sizeof(float) * n), *ref = malloc(sizeof(float) * k);
    fill_normal(a, (size_t)rows * r, &rng);
    fill_normal(b, (size_t)cols * r, &rng);
    if (deficient) {   // A's last column repeats its first, B's second column is zero: rank ≤ r − 2
        for (int i = 0; i < rows; i++) a[i * r + r - 1] = a[i * r];
        for (int i = 0; i < cols; i++) b[i * r + 1] = 0.0f;
    }
    form(a, b, rows, cols, r, w);
    svd_reference(w, rows, cols, ref);
    CHECK_OK(lowrank_singular_values(a, b, rows, cols, r, s, &err));
    double worst = 0;
    for (int i = 0; i < n; i++) {
        double e = fabs(s[i] - ref[i]);
        if (ref[i] > 1e-3 * ref[0]) e /= ref[i];   // relative on the values that carry the matrix
        else e /= ref[0];                          // absolute (to σ₁) on the numerically zero ones
        if (e > worst) worst = e;
    }
    CHECK(worst < 1e-4, "%d×%d rank %d%s: singular values differ from LAPACK's SVD of W by %.3g (σ₁ %g vs %g)",
          rows, cols, r, deficient ? " (deficient)" : "", worst, s[0], ref[0]);
    for (int i = 1; i < n; i++) CHECK(s[i] <= s[i - 1], "values descend");
    if (deficient) CHECK(s[n - 1] < 1e-4 * s[0] && s[n - 2] < 1e-4 * s[0], "the two lost directions are ~0: %g %g", s[n - 2], s[n - 1]);
    free(a); free(b); free(w); free(s); free(ref);
}

static void test_lowrank_values_match_svd_of_formed_w(void) {
    check_lowrank_against_svd(40, 24, 6, 0, 1);
    check_lowrank_against_svd(24, 40, 6, 0, 2);
    check_lowrank_against_svd(64, 16, 16, 0, 3);    // r = in: W has full column rank
    check_lowrank_against_svd(10, 30, 12, 0, 4);    // r > rows: the R of A is trapezoidal
    check_lowrank_against_svd(300, 120, 30, 0, 5);
    check_lowrank_against_svd(48, 32, 8, 1, 6);     // rank-deficient factors
    check_lowrank_against_svd(32, 48, 5, 1, 7);
}

// Put W = U·diag(s)·Vᵀ into a model's blocks.0.attn.wq (A = U·diag(s), B = V) and its spectrum.
static void set_factors(Model *m, const char *name, const float *a, const float *b) {
    char buf[80];
    snprintf(buf, sizeof buf, "%s.A", name);
    const TensorDesc *ta = &m->tensors[model_find_tensor(m, buf)], *tb = ta + 1;
    be->upload(m->params + ta->offset, a, sizeof(float) * ta->rows * ta->cols);
    be->upload(m->params + tb->offset, b, sizeof(float) * tb->rows * tb->cols);
}

static void chosen_factors(int rows, int cols, int r, const double *sv, float *a, float *b, uint64_t seed) {
    uint64_t rng = seed;
    random_orthonormal(a, rows, r, &rng);
    random_orthonormal(b, cols, r, &rng);
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < r; j++) a[i * r + j] *= (float)sv[j];
}

static void test_summaries_on_chosen_spectrum(void) {
    Err err;
    Model m;
    ModelConfig c = micro_config(8);
    CHECK_OK(model_build(&m, &c, be, &err));
    const double sv[8] = {5, 3, 2, 1.5, 1, 0.5, 0.25, 0.1};
    float a[32 * 8], b[32 * 8];
    chosen_factors(32, 32, 8, sv, a, b, 11);
    set_factors(&m, "blocks.0.attn.wq", a, b);
    SpectrumResult r;
    CHECK_OK(inspect_spectrum(&m, "blocks.0.attn.wq", &r, &err));
    double sum = 0, sumsq = 0, h = 0;
    for (int i = 0; i < 8; i++) { sum += sv[i]; sumsq += sv[i] * sv[i]; }
    for (int i = 0; i < 8; i++) h -= sv[i] / sum * log(sv[i] / sum);
    CHECK(r.n == 8 && r.rank == 8 && r.rows == 32 && r.cols == 32, "shape: n %d rank %d %d×%d", r.n, r.rank, r.rows, r.cols);
    for (int i = 0; i < 8 && i < r.n; i++) CHECK_NEAR(r.values[i], sv[i], 1e-5, "chosen singular value");
    CHECK_NEAR(r.spectral_norm, 5.0, 1e-5, "spectral norm");
    CHECK_NEAR(r.frobenius_norm, sqrt(sumsq), 1e-5, "Frobenius norm");
    CHECK_NEAR(r.stable_rank, sumsq / 25.0, 1e-5, "stable rank Σσ²/σ₁²");
    CHECK_NEAR(r.effective_rank, exp(h), 1e-5, "effective rank exp(H(σ/Σσ))");
    CHECK_NEAR(r.condition_number, 50.0, 1e-4, "condition number σ₁/σ₈");
    CHECK(r.numerical_rank == 8, "numerical rank 8, got %d", r.numerical_rank);
    spectrum_result_free(&r);

    // equal values: effective rank and stable rank both equal the count
    const double flat[8] = {2, 2, 2, 2, 2, 2, 2, 2};
    float a3[48 * 8];   // w3 is ffn×dim: A 48×8, B 32×8
    chosen_factors(48, 32, 8, flat, a3, b, 13);
    set_factors(&m, "blocks.1.mlp.w3", a3, b);
    CHECK_OK(inspect_spectrum(&m, "blocks.1.mlp.w3", &r, &err));
    CHECK_NEAR(r.effective_rank, 8.0, 1e-4, "flat spectrum: effective rank = 8");
    CHECK_NEAR(r.stable_rank, 8.0, 1e-4, "flat spectrum: stable rank = 8");
    CHECK_NEAR(r.condition_number, 1.0, 1e-4, "flat spectrum: condition number 1");
    spectrum_result_free(&r);

    // rank-deficient: two zero values → infinite condition number, numerical rank 6
    const double def[8] = {4, 3, 2, 1, 1, 0.5, 0, 0};
    chosen_factors(32, 32, 8, def, a, b, 14);
    set_factors(&m, "blocks.0.attn.wo", a, b);
    CHECK_OK(inspect_spectrum(&m, "blocks.0.attn.wo", &r, &err));
    CHECK(isinf(r.condition_number), "rank-deficient: condition number inf, got %g", r.condition_number);
    CHECK(r.numerical_rank == 6, "numerical rank 6, got %d", r.numerical_rank);
    double s6 = 0, h6 = 0, sq6 = 0;
    for (int i = 0; i < 6; i++) { s6 += def[i]; sq6 += def[i] * def[i]; }
    for (int i = 0; i < 6; i++) h6 -= def[i] / s6 * log(def[i] / s6);
    CHECK_NEAR(r.effective_rank, exp(h6), 1e-4, "effective rank ignores zero values");
    CHECK_NEAR(r.stable_rank, sq6 / 16.0, 1e-5, "stable rank of the deficient matrix");
    spectrum_result_free(&r);

    // norms: Gram Frobenius and power-iteration spectral norm agree with the chosen spectra
    NormRow *rows;
    int n;
    CHECK_OK(inspect_norms(&m, &rows, &n, &err));
    CHECK(n == 14, "14 block matrices, got %d", n);
    for (int i = 0; i < n; i++) {
        if (strcmp(rows[i].mat.name, "blocks.0.attn.wq") == 0) {
            CHECK_NEAR(rows[i].frobenius, sqrt(sumsq), 1e-5, "Gram Frobenius norm of wq");
            CHECK_NEAR(rows[i].spectral, 5.0, 1e-4, "power-iteration ‖wq‖₂");
            CHECK_NEAR(rows[i].stable_rank, sumsq / 25.0, 1e-3, "stable rank from norms");
            CHECK(isnan(rows[i].dw_spectral), "no ΔW column without a snapshot");
        }
        if (strcmp(rows[i].mat.name, "blocks.1.mlp.w3") == 0) CHECK_NEAR(rows[i].frobenius, sqrt(32.0), 1e-5, "Gram Frobenius of w3");
        if (strcmp(rows[i].mat.name, "blocks.0.attn.wo") == 0) CHECK_NEAR(rows[i].frobenius, sqrt(sq6), 1e-5, "Gram Frobenius of wo");
    }
    free(rows);
    model_free(&m);
}

// A factor holding NaN: norms give NaN ("–", null) for that matrix, never a 0 that reads as a
// zero matrix; spectrum says which tensor is not finite instead of LAPACK's info code.
static void test_non_finite_factor(void) {
    Err err;
    Model m;
    ModelConfig c = micro_config(8);
    CHECK_OK(model_build(&m, &c, be, &err));
    const TensorDesc *ta = &m.tensors[model_find_tensor(&m, "blocks.1.mlp.w2.A")];
    float nan_value = NAN;
    be->upload(m.params + ta->offset + 5, &nan_value, sizeof nan_value);
    NormRow *rows;
    int n, seen = 0;
    CHECK_OK(inspect_norms(&m, &rows, &n, &err));
    for (int i = 0; i < n; i++) {
        int bad = strcmp(rows[i].mat.name, "blocks.1.mlp.w2") == 0;
        seen += bad;
        if (bad)
            CHECK(isnan(rows[i].spectral) && isnan(rows[i].frobenius) && isnan(rows[i].stable_rank),
                  "NaN factor: spectral %g, frobenius %g, stable rank %g (want NaN)", rows[i].spectral,
                  rows[i].frobenius, rows[i].stable_rank);
        else
            CHECK(rows[i].frobenius > 0 && rows[i].stable_rank >= 1, "%s unaffected", rows[i].mat.name);
    }
    CHECK(seen == 1, "the NaN matrix is listed");
    free(rows);
    SpectrumResult r;
    CHECK(inspect_spectrum(&m, "blocks.1.mlp.w2", &r, &err) != 0 && strstr(err.msg, "blocks.1.mlp.w2.A holds a non-finite"),
          "spectrum names the non-finite tensor: '%s'", err.msg);
    model_free(&m);
}

// Every block matrix of a freshly built model: spectrum == SVD of the formed W; Gram
// Frobenius == √Σσ²; the spectrum of one factor and of dense matrices too.
static void test_model_spectra_and_norms_match_formed_w(void) {
    Err err;
    for (int rank = 0; rank <= 5; rank += 5) {
        Model m;
        ModelConfig c = micro_config(rank);
        CHECK_OK(model_build(&m, &c, be, &err));
        float *host = malloc(m.n_params * 4);
        be->download(host, m.params, m.n_params * 4);
        int nm = inspect_matrices(&m, 1, NULL, 0);
        CHECK(nm == 16, "14 block matrices + embed + head, got %d", nm);
        InspectMatrix *mats = malloc(sizeof *mats * nm);
        inspect_matrices(&m, 1, mats, nm);
        NormRow *rows;
        int n;
        NormsOptions opt = {.include_io = 1};
        CHECK_OK(inspect_norms_opts(&m, &opt, &rows, &n, &err));
        for (int i = 0; i < nm; i++) {
            const InspectMatrix *x = &mats[i];
            int k = x->rows < x->cols ? x->rows : x->cols;
            float *w = malloc(sizeof(float) * x->rows * x->cols), *ref = malloc(sizeof(float) * k);
            if (x->rank) form(host + m.tensors[x->tensor_a].offset, host + m.tensors[x->tensor_b].offset, x->rows, x->cols, x->rank, w);
            else memcpy(w, host + m.tensors[x->tensor_a].offset, sizeof(float) * x->rows * x->cols);
            svd_reference(w, x->rows, x->cols, ref);
            SpectrumResult r;
            CHECK_OK(inspect_spectrum(&m, x->name, &r, &err));
            CHECK(r.n == (x->rank && x->rank < k ? x->rank : k), "%s: %d values", x->name, r.n);
            for (int j = 0; j < 3 && j < r.n; j++) CHECK_NEAR(r.values[j] / ref[j], 1.0, 1e-4, x->name);
            double f2 = 0;
            for (int j = 0; j < k; j++) f2 += (double)ref[j] * ref[j];
            CHECK_NEAR(rows[i].frobenius / sqrt(f2), 1.0, 1e-5, "norms: Frobenius vs √Σσ²");
            // exact from the Grams, factorized or dense (a random init's flat top of the spectrum
            // left power iteration 2–3 % low here)
            CHECK_NEAR(rows[i].spectral / ref[0], 1.0, 1e-5, x->name);
            spectrum_result_free(&r);
            free(w); free(ref);
        }
        if (rank) {   // one factor as a matrix of its own
            SpectrumResult r;
            CHECK_OK(inspect_spectrum(&m, "blocks.1.mlp.w2.B", &r, &err));
            const TensorDesc *t = &m.tensors[model_find_tensor(&m, "blocks.1.mlp.w2.B")];
            float ref[5];
            svd_reference(host + t->offset, t->rows, t->cols, ref);
            CHECK(r.n == 5 && r.rank == 0, "a factor is a dense %d×%d matrix: n %d", t->rows, t->cols, r.n);
            for (int j = 0; j < 5 && j < r.n; j++) CHECK_NEAR(r.values[j] / ref[j], 1.0, 1e-5, "factor B's values");
            spectrum_result_free(&r);
        }
        free(rows); free(mats); free(host);
        model_free(&m);
    }
}

// ‖ΔW‖₂ from a snapshot: factorized ΔW = A′B′ᵀ − ABᵀ never formed (exact, from the Grams),
// dense ΔW formed (its Gram); both exact, against the SVD of the formed difference. η under
// renorm: lr for factors, the AdamW group's for embed, head and dense block matrices (rank 0).
static void check_update_norms(int rank) {
    Err err;
    Model m;
    ModelConfig c = micro_config(rank);
    CHECK_OK(model_build(&m, &c, be, &err));
    float *prev;
    CHECK_OK(inspect_snapshot(&m, m.params, &prev, &err));
    size_t np = m.n_params;
    float *p0 = malloc(np * 4), *p1 = malloc(np * 4);
    be->download(p0, m.params, np * 4);
    uint64_t rng = 5;
    for (size_t i = 0; i < np; i++) p1[i] = p0[i] + 0.01f * rng_normal(&rng);
    be->upload(m.params, p1, np * 4);
    NormRow *rows;
    int n;
    NormsOptions opt = {.prev = prev, .lr = 0.01f, .io_lr = 0.003f, .kind = OPTIM_RENORM, .include_io = 1};
    CHECK_OK(inspect_norms_opts(&m, &opt, &rows, &n, &err));
    for (int i = 0; i < n; i++) {
        const InspectMatrix *x = &rows[i].mat;
        int k = x->rows < x->cols ? x->rows : x->cols;
        float *w0 = malloc(sizeof(float) * x->rows * x->cols), *w1 = malloc(sizeof(float) * x->rows * x->cols), *ref = malloc(sizeof(float) * k);
        const TensorDesc *ta = &m.tensors[x->tensor_a];
        if (x->rank) {
            const TensorDesc *tb = &m.tensors[x->tensor_b];
            form(p0 + ta->offset, p0 + tb->offset, x->rows, x->cols, x->rank, w0);
            form(p1 + ta->offset, p1 + tb->offset, x->rows, x->cols, x->rank, w1);
        } else {
            memcpy(w0, p0 + ta->offset, sizeof(float) * x->rows * x->cols);
            memcpy(w1, p1 + ta->offset, sizeof(float) * x->rows * x->cols);
        }
        for (int j = 0; j < x->rows * x->cols; j++) w1[j] -= w0[j];
        svd_reference(w1, x->rows, x->cols, ref);
        CHECK_NEAR(rows[i].dw_spectral / ref[0], 1.0, 1e-4, x->name);
        double eta = x->layer < 0 || !x->rank ? 0.003 : 0.01;   // AdamW moves embed, head (and renorm's dense)
        CHECK_NEAR(rows[i].dw_over_eta, rows[i].dw_spectral / eta, 1e-5, "‖ΔW‖₂/η");
        CHECK_NEAR(rows[i].dw_over_w, rows[i].dw_spectral / rows[i].spectral, 1e-6, "‖ΔW‖₂/‖W‖₂");
        free(w0); free(w1); free(ref);
    }
    free(rows);
    // no change: ΔW = 0 exactly
    be->upload(m.params, p0, np * 4);
    CHECK_OK(inspect_norms_delta(&m, prev, 0.01f, &rows, &n, &err));
    for (int i = 0; i < n; i++) CHECK(rows[i].dw_spectral == 0, "%s: unchanged weights, ‖ΔW‖₂ = %g", rows[i].mat.name, rows[i].dw_spectral);
    free(rows);
    be->release(prev);
    free(p0); free(p1);
    model_free(&m);
}

static void test_update_norms(void) {
    check_update_norms(4);
    check_update_norms(0);
}

static void test_names(void) {
    Err err;
    Model m;
    ModelConfig c = micro_config(4);
    CHECK_OK(model_build(&m, &c, be, &err));
    InspectMatrix x;
    CHECK_OK(inspect_resolve(&m, "blocks.1.attn.wk", &x, &err));
    CHECK(x.rank == 4 && x.rows == 16 && x.cols == 32 && x.layer == 1 && strcmp(x.name, "blocks.1.attn.wk") == 0,
          "wk: %d×%d rank %d layer %d '%s'", x.rows, x.cols, x.rank, x.layer, x.name);
    CHECK_OK(inspect_resolve(&m, "blocks.1.attn.wk.A", &x, &err));
    CHECK(x.rank == 0 && x.rows == 16 && x.cols == 4, "a factor is a 16×4 matrix: %d×%d", x.rows, x.cols);
    CHECK_OK(inspect_resolve(&m, "head", &x, &err));
    CHECK(x.rank == 0 && x.rows == 37 && x.cols == 32, "head is 37×32");
    SpectrumResult r;
    CHECK(inspect_spectrum(&m, "blocks.0.atn.wq", &r, &err) != 0 && strstr(err.msg, "did you mean") &&
          strstr(err.msg, "blocks.0.attn.wq"), "a typo suggests the name: '%s'", err.msg);
    CHECK(inspect_spectrum(&m, "blocks.0.attn_norm", &r, &err) != 0 && strstr(err.msg, "norm gain"),
          "a norm gain is refused: '%s'", err.msg);
    CHECK(inspect_spectrum(&m, "zzzzzzzzzzzzzzzzzzzz", &r, &err) != 0 && strstr(err.msg, "unknown matrix"),
          "nonsense is refused: '%s'", err.msg);
    CHECK(inspect_spectrum(&m, "", &r, &err) != 0, "an empty name is refused");
    model_free(&m);
}

static void test_spectrum_history(void) {
    Err err;
    SpectrumHistory h = {0};
    float v1[3] = {3, 2, 1}, v2[3] = {4, 2, 0.5f}, v3[2] = {9, 8};
    CHECK_OK(spectrum_history_record(&h, 10, "blocks.0.attn.wq", v1, 3, &err));
    CHECK_OK(spectrum_history_record(&h, 20, "blocks.0.attn.wq", v2, 3, &err));
    CHECK_OK(spectrum_history_record(&h, 10, "blocks.0.attn.wk", v3, 2, &err));
    const SpectrumRecord *r = spectrum_history_lookup(&h, 20, "blocks.0.attn.wq");
    CHECK(r && r->n == 3 && r->values[0] == 4, "lookup step 20");
    CHECK(!spectrum_history_lookup(&h, 15, "blocks.0.attn.wq"), "no record at step 15");
    r = spectrum_history_nearest(&h, 14, "blocks.0.attn.wq", -1);
    CHECK(r && r->step == 10, "nearest to 14 is 10");
    r = spectrum_history_nearest(&h, 15, "blocks.0.attn.wq", -1);
    CHECK(r && r->step == 10, "a tie goes to the earlier step");
    CHECK(!spectrum_history_nearest(&h, 15, "blocks.0.mlp.w1", -1), "no record of another matrix");
    CHECK_OK(spectrum_history_record(&h, 10, "blocks.0.attn.wq", v2, 2, &err));   // replaces
    r = spectrum_history_lookup(&h, 10, "blocks.0.attn.wq");
    CHECK(h.n == 3 && r && r->n == 2 && r->values[1] == 2, "re-recording replaces: %d records", h.n);
    Model m;
    ModelConfig c = micro_config(4);
    CHECK_OK(model_build(&m, &c, be, &err));
    CHECK_OK(spectrum_history_record_all(&h, &m, 30, &err));
    CHECK(h.n == 3 + 14, "one record per block matrix: %d", h.n);
    SpectrumResult s;
    CHECK_OK(inspect_spectrum(&m, "blocks.1.mlp.w2", &s, &err));
    r = spectrum_history_lookup(&h, 30, "blocks.1.mlp.w2");
    CHECK(r && r->n == s.n && memcmp(r->values, s.values, sizeof(float) * s.n) == 0, "recorded values are the spectrum");
    spectrum_result_free(&s);
    spectrum_history_free(&h);
    CHECK(h.n == 0 && !h.rec, "freed");
    model_free(&m);
}

int main(void) {
    be = backend_cpu(0);
    RUN(test_lowrank_values_match_svd_of_formed_w);
    RUN(test_summaries_on_chosen_spectrum);
    RUN(test_non_finite_factor);
    RUN(test_model_spectra_and_norms_match_formed_w);
    RUN(test_update_norms);
    RUN(test_names);
    RUN(test_spectrum_history);
    return TEST_SUMMARY();
}
