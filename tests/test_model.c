// test_model.c — the whole model: gradients against finite differences (dense and factorized
// at several ranks), factorized forward == dense forward of A·Bᵀ, determinism (also of the
// initialization across thread counts), bad configs, a non-finite loss that leaves the
// parameters untouched, and a backend's late failure reported by the call that meets it.
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <omp.h>
#include "test.h"
#include "test_fixtures.h"

static ModelConfig micro_config(int rank) { return micro_config_layers(rank, 2); }
#include "../engine/generate.h"
#include "../engine/model.h"
#include "../engine/model_internal.h"
#include "../engine/train.h"
#include "../engine/rng.h"

static const Backend *be;

static void check_gradients(ModelConfig c, const char *what) {
    Err err;
    Model m;
    CHECK_OK(model_build(&m, &c, be, &err));
    int B = 2, T = 6;
    int32_t tok[2 * 7];
    random_tokens(tok, B * (T + 1), c.vocab, 3);
    const char *worst = "";
    double rel = gradient_check(&m, tok, B, T, &worst);
    CHECK(rel < 2e-2, "%s: finite differences disagree with backward: relative error %.3g at %s", what, rel, worst);
    model_free(&m);
}

static void check_model_gradients(int rank, const char *what) { check_gradients(micro_config(rank), what); }

static void test_gradients_dense(void) { check_model_gradients(0, "dense"); }
// rank ratio 0.75: wq gets rank 12, wk and wv 8 (their out), so the q/k/v group packs factors
// of unequal ranks side by side
static void test_gradients_unequal_ranks(void) {
    ModelConfig c = micro_config(-1);
    c.rank_ratio = 0.75f;
    check_gradients(c, "rank ratio 0.75");
}
static void test_gradients_rank1(void) { check_model_gradients(1, "rank 1"); }
static void test_gradients_rank3(void) { check_model_gradients(3, "rank 3"); }
static void test_gradients_full_rank(void) { check_model_gradients(8, "rank = min(in,out) of wk/wv"); }

// The check must be able to fail: corrupt one gradient tensor and expect a large error.
static void test_gradient_check_catches_a_wrong_gradient(void) {
    Err err;
    Model m;
    ModelConfig c = micro_config(3);
    CHECK_OK(model_build(&m, &c, be, &err));
    int32_t tok[2 * 7];
    random_tokens(tok, 14, c.vocab, 3);
    // halve the attention norm gain gradient after backward by scaling the gain's loss effect:
    // simplest honest corruption: compare against FD with gradients of a different batch.
    size_t np = m.n_params;
    float *g_true = malloc(np * 4), *p0 = malloc(np * 4);
    float loss;
    be->download(p0, m.params, np * 4);
    model_zero_grad(&m);
    model_forward(&m, tok, 2, 6, &loss, &err);
    model_backward(&m, 1.0f, &err);
    be->download(g_true, m.grads, np * 4);
    // scale the gradient of one factor by 1.5 and measure the directional mismatch
    int ti = model_find_tensor(&m, "blocks.1.mlp.w2.A");
    CHECK(ti >= 0, "tensor blocks.1.mlp.w2.A exists");
    const TensorDesc *t = &m.tensors[ti];
    size_t n = (size_t)t->rows * t->cols;
    double gn = 0;
    for (size_t i = 0; i < n; i++) gn += (double)g_true[t->offset + i] * g_true[t->offset + i];
    gn = sqrt(gn);
    float *p = malloc(np * 4);
    const double eps = 1e-2;
    memcpy(p, p0, np * 4);
    for (size_t i = 0; i < n; i++) p[t->offset + i] += eps * g_true[t->offset + i] / gn;
    double lp = loss_at(&m, p, tok, 2, 6);
    memcpy(p, p0, np * 4);
    for (size_t i = 0; i < n; i++) p[t->offset + i] -= eps * g_true[t->offset + i] / gn;
    double lm = loss_at(&m, p, tok, 2, 6);
    double fd = (lp - lm) / (2 * eps);
    double rel_true = fabs(fd - gn) / gn, rel_wrong = fabs(fd - 1.5 * gn) / (1.5 * gn);
    CHECK(rel_true < 2e-2, "the true gradient passes (relative error %.3g)", rel_true);
    CHECK(rel_wrong > 0.2, "a gradient 1.5× too large fails (relative error %.3g)", rel_wrong);
    free(g_true); free(p0); free(p);
    model_free(&m);
}

// Copy a factorized model into a dense one with W = A·Bᵀ; the losses and logits must agree.
// The training pass that computes the softmax once gives exactly forward then backward.
static void test_forward_backward_equals_the_two_calls(void) {
    Err err;
    for (int rank = 0; rank <= 3; rank += 3) {
        Model m;
        ModelConfig c = micro_config(rank);
        CHECK_OK(model_build(&m, &c, be, &err));
        int B = 2, T = 6;
        int32_t tok[2 * 7];
        random_tokens(tok, B * (T + 1), c.vocab, 5);
        float l1, l2;
        model_zero_grad(&m);
        CHECK_OK(model_forward(&m, tok, B, T, &l1, &err));
        CHECK_OK(model_backward(&m, 0.25f, &err));
        float *g1 = malloc(sizeof(float) * m.n_params);
        memcpy(g1, m.grads, sizeof(float) * m.n_params);
        model_zero_grad(&m);
        CHECK_OK(model_forward_backward(&m, tok, B, T, 0.25f, &l2, &err));
        CHECK(l1 == l2, "rank %d: loss %.9g vs %.9g", rank, l1, l2);
        CHECK(memcmp(g1, m.grads, sizeof(float) * m.n_params) == 0, "rank %d: gradients differ", rank);
        CHECK(model_backward(&m, 1.0f, &err) != 0, "a second backward after the combined pass must be refused");
        free(g1);
        model_free(&m);
    }
}

static void test_factorized_equals_dense_product(void) {
    Err err;
    Model f, d;
    ModelConfig cf = micro_config(3), cd = micro_config(0);
    CHECK_OK(model_build(&f, &cf, be, &err));
    CHECK_OK(model_build(&d, &cd, be, &err));
    float *pf = malloc(f.n_params * 4), *pd = calloc(d.n_params, 4);
    be->download(pf, f.params, f.n_params * 4);
    for (int i = 0; i < d.n_tensors; i++) {
        const TensorDesc *t = &d.tensors[i];
        int j = model_find_tensor(&f, t->name);
        if (j >= 0) { memcpy(pd + t->offset, pf + f.tensors[j].offset, (size_t)t->rows * t->cols * 4); continue; }
        char an[80], bn[80];
        snprintf(an, sizeof an, "%s.A", t->name);
        snprintf(bn, sizeof bn, "%s.B", t->name);
        const TensorDesc *ta = &f.tensors[model_find_tensor(&f, an)], *tb = &f.tensors[model_find_tensor(&f, bn)];
        for (int r = 0; r < t->rows; r++)
            for (int c = 0; c < t->cols; c++) {
                double s = 0;
                for (int k = 0; k < ta->cols; k++) s += (double)pf[ta->offset + r * ta->cols + k] * pf[tb->offset + c * tb->cols + k];
                pd[t->offset + (size_t)r * t->cols + c] = (float)s;
            }
    }
    be->upload(d.params, pd, d.n_params * 4);
    int32_t tok[2 * 7];
    random_tokens(tok, 14, cf.vocab, 5);
    float lf, ld;
    CHECK_OK(model_forward(&f, tok, 2, 6, &lf, &err));
    CHECK_OK(model_forward(&d, tok, 2, 6, &ld, &err));
    CHECK_NEAR(lf, ld, 1e-5, "factorized loss vs dense loss of A·Bᵀ");
    size_t nl = (size_t)12 * cf.vocab;
    float *lgf = malloc(nl * 4), *lgd = malloc(nl * 4);
    be->download(lgf, f.acts->logits, nl * 4);
    be->download(lgd, d.acts->logits, nl * 4);
    double worst = 0;
    for (size_t i = 0; i < nl; i++) worst = fmax(worst, fabs(lgf[i] - lgd[i]) / fmax(1.0, fabs(lgd[i])));
    CHECK(worst < 1e-5, "factorized logits equal dense logits: worst relative difference %.3g", worst);
    free(pf); free(pd); free(lgf); free(lgd);
    model_free(&f);
    model_free(&d);
}

static void train_losses(int rank, float *losses, int steps) {
    Err err;
    Model m;
    Trainer tr;
    OptimConfig oc;
    ModelConfig c = micro_config(rank);
    static uint16_t store[4000];
    Dataset ds = pattern_dataset(store, 4000, c.vocab);
    CHECK_OK(model_build(&m, &c, be, &err));
    CHECK_OK(optim_config_default(&oc, "adamw", &err));
    oc.lr = 1e-2f;
    CHECK_OK(trainer_build(&tr, &m, &oc, 42, &err));
    for (int i = 0; i < steps; i++) {
        StepStats s;
        CHECK_OK(trainer_step(&tr, &ds, 2, 8, 2, &s, &err));
        losses[i] = s.loss;
    }
    trainer_free(&tr);
    model_free(&m);
}

static void test_same_seed_same_losses(void) {
    float a[40], b[40];
    train_losses(3, a, 40);
    train_losses(3, b, 40);
    CHECK(memcmp(a, b, sizeof a) == 0, "same seed gives bit-identical losses (step 40: %.9g vs %.9g)", a[39], b[39]);
    CHECK(a[39] < a[0] - 0.5f, "training lowers the loss by at least 0.5 (%.4f → %.4f)", a[0], a[39]);
}

// The factorized matrices' SVDs at initialization run one per thread, each single-threaded:
// the same seed gives the same model, to the bit, whatever the number of threads (a BLAS
// splitting one SVD across threads gave other low bits). Large enough for OpenBLAS to thread.
static void test_init_independent_of_threads(void) {
    Err err;
    ModelConfig c;
    CHECK_OK(model_config_preset(&c, "tiny", &err));
    c.vocab = 256;
    float *params[2] = {NULL, NULL};
    long n = 0;
    int threads = omp_get_max_threads();
    for (int t = 0; t < 2; t++) {
        Model m;
        const Backend *cpu = backend_cpu(t + 1);
        CHECK_OK(model_build(&m, &c, cpu, &err));
        n = (long)m.n_params;
        params[t] = malloc(sizeof(float) * n);
        cpu->download(params[t], m.params, sizeof(float) * n);
        model_free(&m);
    }
    CHECK(memcmp(params[0], params[1], sizeof(float) * n) == 0, "a model built on 1 and on 2 threads should be "
          "the same to the bit");
    free(params[0]);
    free(params[1]);
    backend_cpu(threads);   // as before the test
}

static void test_bad_configs(void) {
    Err err;
    Model m;
    struct { const char *key, *value, *expect; } cases[] = {
        {"heads", "5", "does not divide"}, {"rank", "99", "exceeds"}, {"dim", "0", "option dim= must be between 1 and"},
        {"dim", "abc", "option dim= expects an integer, got 'abc'"}, {"layers", "-2", "option layers= must be between"}, {"kv_heads", "3", "does not divide"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ModelConfig c = micro_config(3);
        err.msg[0] = 0;
        int rc = model_config_set(&c, cases[i].key, cases[i].value, &err);
        if (rc == 0) rc = model_build(&m, &c, be, &err);
        CHECK(rc != 0 && strstr(err.msg, cases[i].expect),
              "%s=%s: expected an error mentioning '%s', got rc=%d '%s'", cases[i].key, cases[i].value, cases[i].expect, rc, err.msg);
    }
    ModelConfig c = micro_config(3);
    c.kv_heads = c.heads;
    CHECK_OK(model_config_set(&c, "heads", "8", &err));
    CHECK(c.kv_heads == 8, "heads=8 on plain multi-head attention gives 8 kv heads, got %d", c.kv_heads);
    c.kv_heads = 2;   // grouped-query: kept while it divides, capped when heads fall below it
    CHECK_OK(model_config_set(&c, "heads", "4", &err));
    CHECK(c.kv_heads == 2, "heads=4 keeps grouped-query kv_heads=2, got %d", c.kv_heads);
    CHECK_OK(model_config_set(&c, "heads", "1", &err));
    CHECK(c.kv_heads == 1, "heads=1 caps kv_heads at 1, got %d", c.kv_heads);
    c = micro_config(3);
    CHECK_OK(model_build(&m, &c, be, &err));
    int32_t tok[2 * 20] = {0};
    float loss;
    CHECK(model_forward(&m, tok, 2, 19, &loss, &err) != 0 && strstr(err.msg, "context"),
          "seq beyond the context is refused: got '%s'", err.msg);
    tok[3] = 1000;
    CHECK(model_forward(&m, tok, 2, 6, &loss, &err) != 0 && strstr(err.msg, "out of range"),
          "a token beyond the vocab is refused: got '%s'", err.msg);
    model_free(&m);
}

// A micro model (rank 3) on backend `on` with an AdamW trainer (seed 1), and the pattern data:
// the setup of the trainer tests below.
static uint16_t trainer_store[4000];
static Dataset adamw_micro(Model *m, Trainer *tr, const Backend *on) {
    Err err;
    OptimConfig oc;
    ModelConfig c = micro_config(3);
    CHECK_OK(model_build(m, &c, on, &err));
    CHECK_OK(optim_config_default(&oc, "adamw", &err));
    CHECK_OK(trainer_build(tr, m, &oc, 1, &err));
    return pattern_dataset(trainer_store, 4000, c.vocab);
}

// A failure no backend call could return (Backend.take_error: a GPU kernel's fault, seen only
// later) fails the training step, the evaluation and the generator feed that come upon it,
// with its line, once: the next call goes on.
static const char *pending_failure;
static const char *take_pending_failure(void) {
    const char *e = pending_failure;
    pending_failure = NULL;
    return e;
}

static void test_backend_failure_is_reported(void) {
    Err err;
    Model m;
    Trainer tr;
    Generator g;
    Backend faulty = *be;
    faulty.take_error = take_pending_failure;
    Dataset ds = adamw_micro(&m, &tr, &faulty);
    CHECK_OK(generator_build(&g, &m, &err));
    pending_failure = "k_fault: an illegal memory access";
    uint64_t drawn = tr.data_rng;
    CHECK(trainer_step(&tr, &ds, 2, 8, 1, NULL, &err) != 0 && strstr(err.msg, "cpu backend: k_fault"),
          "a training step should report the backend's failure, got '%s'", err.msg);
    CHECK(tr.data_rng == drawn, "a step that took no update keeps the data position (its batches come again)");
    CHECK_OK(trainer_step(&tr, &ds, 2, 8, 1, NULL, &err));   // reported once
    double loss;
    pending_failure = "cublasGemmEx: out of memory";
    CHECK(trainer_eval(&m, &ds, 2, 8, 2, 1, &loss, &err) != 0 && strstr(err.msg, "cublasGemmEx"),
          "an evaluation should report the backend's failure, got '%s'", err.msg);
    int32_t ids[3] = {1, 2, 3};
    pending_failure = "k_decode_attention_part: launch failed";
    CHECK(generator_feed(&g, ids, 3, &err) != 0 && strstr(err.msg, "k_decode_attention_part"),
          "a generator feed should report the backend's failure, got '%s'", err.msg);
    CHECK_OK(generator_feed(&g, ids, 1, &err));
    generator_free(&g);
    trainer_free(&tr);
    model_free(&m);
}

// The memory a model needs before it is built: parameters and gradients, and the host copy
// initialization makes only where the backend's memory is the host's. With room for 2.5 copies
// a host backend refuses and a device backend builds (it was refused at two thirds of a GPU).
static size_t fake_available;
static size_t fake_mem_available(void) { return fake_available; }

static void test_memory_check_counts_host_copy_only_on_host(void) {
    Err err;
    Model m;
    ModelConfig c = micro_config(3);
    TensorDesc *t;
    int n;
    CHECK_OK(model_tensor_table(&c, &t, &n, &err));
    size_t params = 0;
    for (int i = 0; i < n; i++) params = t[i].offset + ((size_t)t[i].rows * t[i].cols + 15) / 16 * 16;
    free(t);
    fake_available = params * 4 * 5 / 2;
    Backend host = *be, device = *be;
    host.mem_available = device.mem_available = fake_mem_available;
    host.memory_is_host = 1, device.memory_is_host = 0;
    CHECK(model_build(&m, &c, &host, &err) != 0 && strstr(err.msg, "init"), "a host backend counts the init copy: '%s'",
          err.msg);
    CHECK_OK(model_build(&m, &c, &device, &err));
    model_free(&m);
}

// A failure during an update (here the GPU's, seen after AdamW's kernels ran) undoes all of it:
// parameters, moments, the optimizer's t, the step count and data position as before it, so the
// next step is the update it would have been.
static void (*real_adamw_update)(float *, const float *, float *, float *, long, float, float, float, float, float,
                                 float, int);
static void adamw_then_fail(float *p, const float *g, float *m, float *v, long n, float lr, float b1, float b2,
                            float eps, float wd, float gs, int t) {
    real_adamw_update(p, g, m, v, n, lr, b1, b2, eps, wd, gs, t);
    pending_failure = "k_adamw: an illegal memory access";
}

static void test_failed_update_is_undone(void) {
    Err err;
    Model m, ref;
    Trainer tr, rtr;
    OptimConfig oc;
    Backend faulty = *be;
    faulty.take_error = take_pending_failure;
    real_adamw_update = be->adamw_update;
    ModelConfig c = micro_config(3);
    static uint16_t store[4000];
    Dataset ds = pattern_dataset(store, 4000, c.vocab);
    CHECK_OK(model_build(&m, &c, &faulty, &err));
    CHECK_OK(model_build(&ref, &c, be, &err));
    CHECK_OK(optim_config_default(&oc, "adamw", &err));
    CHECK_OK(trainer_build(&tr, &m, &oc, 1, &err));
    CHECK_OK(trainer_build(&rtr, &ref, &oc, 1, &err));
    CHECK_OK(trainer_step(&tr, &ds, 2, 8, 1, NULL, &err));
    CHECK_OK(trainer_step(&rtr, &ds, 2, 8, 1, NULL, &err));
    size_t bytes = m.n_params * 4;
    float *before = malloc(bytes), *after = malloc(bytes), *want = malloc(bytes);
    be->download(before, m.params, bytes);
    uint64_t rng = tr.data_rng;
    faulty.adamw_update = adamw_then_fail;
    CHECK(trainer_step(&tr, &ds, 2, 8, 1, NULL, &err) != 0 && strstr(err.msg, "k_adamw") && strstr(err.msg, "was undone"),
          "the failed update is reported and undone: '%s'", err.msg);
    be->download(after, m.params, bytes);
    CHECK(memcmp(before, after, bytes) == 0 && tr.step == 1 && tr.opt.t == 1 && tr.data_rng == rng,
          "parameters as before (%s), step %d, t %d, data position %s", memcmp(before, after, bytes) ? "changed" : "same",
          tr.step, tr.opt.t, tr.data_rng == rng ? "kept" : "moved");
    faulty.adamw_update = real_adamw_update;
    CHECK_OK(trainer_step(&tr, &ds, 2, 8, 1, NULL, &err));
    CHECK_OK(trainer_step(&rtr, &ds, 2, 8, 1, NULL, &err));
    be->download(after, m.params, bytes);
    be->download(want, ref.params, bytes);
    CHECK(memcmp(after, want, bytes) == 0, "the next step is the update that failed, bit for bit");
    free(before); free(after); free(want);
    trainer_free(&tr); trainer_free(&rtr);
    model_free(&m); model_free(&ref);
}

// A fault that lost the GPU's context (sticky: every later check fails too) fails the copies
// back as well: the error says the update could not be undone, not that it was.
static const char *take_sticky_failure(void) { return "an illegal memory access (sticky)"; }

static void test_update_lost_with_the_context_says_so(void) {
    Err err;
    Model m;
    Trainer tr;
    OptimConfig oc;
    Backend faulty = *be;
    ModelConfig c = micro_config(3);
    static uint16_t store[4000];
    Dataset ds = pattern_dataset(store, 4000, c.vocab);
    CHECK_OK(model_build(&m, &c, &faulty, &err));
    CHECK_OK(optim_config_default(&oc, "adamw", &err));
    CHECK_OK(trainer_build(&tr, &m, &oc, 1, &err));
    faulty.take_error = take_sticky_failure;
    CHECK(trainer_step(&tr, &ds, 2, 8, 1, NULL, &err) != 0 && strstr(err.msg, "could not be undone") &&
              !strstr(err.msg, "was undone") && strstr(err.msg, "model load"),
          "a sticky fault: not undone, and said so: '%s'", err.msg);
    faulty.take_error = NULL;
    trainer_free(&tr);
    model_free(&m);
}

// A non-finite loss takes no update and undoes the update that broke the model: here update 1
// (its result is poisoned), so parameters, optimizer state, step count and data position go
// back to where they were before it, and the next step repeats update 1 exactly.
static void test_nonfinite_loss_restores_last_good_parameters(void) {
    Err err;
    Model m;
    Trainer tr;
    Dataset ds = adamw_micro(&m, &tr, be);
    size_t bytes = m.n_params * 4;
    float *p0 = malloc(bytes), *p1 = malloc(bytes), *p = malloc(bytes), *after = malloc(bytes), *mom = malloc(bytes);
    be->download(p0, m.params, bytes);
    uint64_t rng0 = tr.data_rng;
    StepStats s, first, again;
    CHECK_OK(trainer_step(&tr, &ds, 2, 8, 1, &first, &err));
    be->download(p1, m.params, bytes);
    memcpy(p, p1, bytes);
    p[m.tensors[m.norm].offset] = NAN;   // poison the final norm gain
    be->upload(m.params, p, bytes);
    int rc = trainer_step(&tr, &ds, 2, 8, 1, &s, &err);
    CHECK(rc != 0 && strstr(err.msg, "step 2") && strstr(err.msg, "not finite") && strstr(err.msg, "update 1") &&
          strstr(err.msg, "rolled back to step 0"), "NaN loss reported with its step and the rollback: '%s'", err.msg);
    be->download(after, m.params, bytes);
    CHECK(memcmp(p0, after, bytes) == 0, "parameters back to the initial ones, bit for bit");
    be->download(mom, tr.opt.m, bytes);
    int zero = 1;
    for (size_t i = 0; i < m.n_params; i++) zero &= mom[i] == 0.0f;
    CHECK(zero && tr.opt.t == 0, "optimizer state back to before update 1: first moment zero %d, t %d", zero, tr.opt.t);
    CHECK(tr.step == 0 && tr.data_rng == rng0 && tr.n_history == 0 && trainer_rolled_back(&tr),
          "step %d, data position %s, history %d after the rollback", tr.step, tr.data_rng == rng0 ? "back" : "moved",
          tr.n_history);
    double val = 0;
    CHECK_OK(trainer_eval(&m, &ds, 2, 8, 2, 3, &val, &err));
    CHECK(isfinite(val), "the restored model evaluates to a finite loss, got %g", val);
    CHECK_OK(trainer_step(&tr, &ds, 2, 8, 1, &again, &err));
    be->download(after, m.params, bytes);
    CHECK(again.step == 1 && again.loss == first.loss && memcmp(p1, after, bytes) == 0 && !trainer_rolled_back(&tr),
          "the next step repeats update 1 exactly: step %d, loss %.9g vs %.9g", again.step, again.loss, first.loss);
    free(p0); free(p1); free(p); free(after); free(mom);
    trainer_free(&tr);
    model_free(&m);
}

// A non-finite loss with nothing to roll back to (the first step) takes no update and leaves
// the data position where it was: the step's batches are drawn again, so a seed's losses repeat.
static void test_step_without_update_keeps_data_position(void) {
    Err err;
    Model m;
    Trainer tr;
    Dataset ds = adamw_micro(&m, &tr, be);
    size_t bytes = m.n_params * 4;
    float *p = malloc(bytes);
    be->download(p, m.params, bytes);
    p[m.tensors[m.norm].offset] = NAN;
    be->upload(m.params, p, bytes);
    uint64_t rng0 = tr.data_rng;
    CHECK(trainer_step(&tr, &ds, 2, 8, 1, NULL, &err) != 0 && strstr(err.msg, "no update taken"),
          "a NaN loss at step 1 takes no update: '%s'", err.msg);
    CHECK(tr.data_rng == rng0 && tr.step == 0, "data position %s, step %d", tr.data_rng == rng0 ? "kept" : "moved",
          tr.step);
    free(p);
    trainer_free(&tr);
    model_free(&m);
}

static int stop_at_two(void *ctx, double done, double total) {
    (void)total;
    *(int *)ctx += 1;
    return done >= 2;
}

// eval reports every batch and stops when its progress callback asks.
static void test_eval_progress_and_stop(void) {
    Err err;
    Model m;
    ModelConfig c = micro_config(3);
    static uint16_t store[4000];
    Dataset ds = pattern_dataset(store, 4000, c.vocab);
    CHECK_OK(model_build(&m, &c, be, &err));
    int calls = 0, done = 0;
    double loss = 0, full = 0, first_two = 0;
    int rc = trainer_eval_progress(&m, &ds, 2, 8, 5, 3, stop_at_two, &calls, &loss, &done, &err);
    CHECK(rc != 0 && calls == 2 && done == 2 && strstr(err.msg, "interrupted after 2 of 5"),
          "eval stops after 2 batches: rc=%d calls=%d done=%d '%s'", rc, calls, done, err.msg);
    CHECK_OK(trainer_eval(&m, &ds, 2, 8, 2, 3, &first_two, &err));
    CHECK(loss == first_two, "a stopped eval's loss is the mean of the batches done: %.9g vs %.9g", loss, first_two);
    CHECK_OK(trainer_eval(&m, &ds, 2, 8, 5, 3, &full, &err));
    CHECK(isfinite(full) && full != first_two, "a full eval after a stopped one works (%g)", full);
    model_free(&m);
}

int main(void) {
    be = backend_cpu(0);
    RUN(test_gradients_dense);
    RUN(test_gradients_rank1);
    RUN(test_gradients_unequal_ranks);
    RUN(test_gradients_rank3);
    RUN(test_gradients_full_rank);
    RUN(test_gradient_check_catches_a_wrong_gradient);
    RUN(test_forward_backward_equals_the_two_calls);
    RUN(test_factorized_equals_dense_product);
    RUN(test_same_seed_same_losses);
    RUN(test_init_independent_of_threads);
    RUN(test_bad_configs);
    RUN(test_nonfinite_loss_restores_last_good_parameters);
    RUN(test_backend_failure_is_reported);
    RUN(test_failed_update_is_undone);
    RUN(test_update_lost_with_the_context_says_so);
    RUN(test_step_without_update_keeps_data_position);
    RUN(test_memory_check_counts_host_copy_only_on_host);
    RUN(test_eval_progress_and_stop);
    return TEST_SUMMARY();
}
