// test_align.c — gradient alignment: a gradient with itself is 1; blockdrop and width at
// p = 0 are the full gradient (1); a forward-gradient "guess" equal to the true gradient gives
// 1; microbatch gradients of an untrained model on random tokens are nearly orthogonal;
// subnetwork (masked) forward/backward passes finite differences; local guesses are exact
// where the local loss is the true loss; m->grads survives an `align`.
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "test.h"
#include "test_fixtures.h"

static ModelConfig micro_config(int rank, int layers) { return micro_config_layers(rank, layers); }
#include "../engine/align.h"
#include "../engine/inspect.h"
#include "../engine/model_internal.h"
#include "../engine/rng.h"

static const Backend *be;

// An in-memory dataset of uniformly random tokens.
static Dataset random_dataset(uint16_t *store, long n, int vocab, uint64_t seed) {
    for (long i = 0; i < n; i++) store[i] = (uint16_t)(rng_next(&seed) % (uint64_t)vocab);
    return (Dataset){.vocab_size = vocab, .token_bytes = 2, .n_tokens = n, .n_train = n, .tokens = store};
}

static double tensor_grad_norm(const Model *m, const char *name) {
    const TensorDesc *t = &m->tensors[model_find_tensor(m, name)];
    size_t n = (size_t)t->rows * t->cols;
    float *g = malloc(n * 4);
    be->download(g, m->grads + t->offset, n * 4);
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)g[i] * g[i];
    free(g);
    return sqrt(s);
}

// Subnetworks: a skipped block, masked heads and masked MLP units, dense and factorized.
static void check_masked_gradients(int rank) {
    Err err;
    Model m;
    ModelConfig c = micro_config(rank, 3);
    CHECK_OK(model_build(&m, &c, be, &err));
    int B = 2, T = 6;
    int32_t tok[2 * 7];
    random_tokens(tok, B * (T + 1), c.vocab, 3);
    uint8_t blocks[3] = {1, 0, 1}, heads[3 * 4] = {1, 0, 1, 1, 1, 1, 1, 1, 0, 0, 1, 0}, ffn[3 * 24];
    for (int i = 0; i < 3 * 24; i++) ffn[i] = (i * 7 + 3) % 5 != 0;   // a fifth of the units off, in runs
    SubnetMask mask = {.block_keep = blocks, .head_keep = heads, .ffn_keep = ffn};
    float full, masked;
    CHECK_OK(model_forward(&m, tok, B, T, &full, &err));
    m.subnet = &mask;
    CHECK_OK(model_forward(&m, tok, B, T, &masked, &err));
    CHECK(full != masked, "rank %d: the subnetwork computes another loss (%g vs %g)", rank, full, masked);
    const char *worst = "";
    double rel = gradient_check(&m, tok, B, T, &worst);
    CHECK(rel < 2e-2, "rank %d, masked: finite differences disagree with backward: %.3g at %s", rank, rel, worst);
    // the gradient check left the masked gradient in m.grads
    CHECK(tensor_grad_norm(&m, "blocks.1.mlp_norm") == 0, "a skipped block gets no gradient");
    CHECK(tensor_grad_norm(&m, "blocks.0.attn_norm") > 0, "a kept block does");
    // each mask alone too: heads only, then units only
    SubnetMask heads_only = {.head_keep = heads}, ffn_only = {.ffn_keep = ffn};
    m.subnet = &heads_only;
    rel = gradient_check(&m, tok, B, T, &worst);
    CHECK(rel < 2e-2, "rank %d, head mask: relative error %.3g at %s", rank, rel, worst);
    m.subnet = &ffn_only;
    rel = gradient_check(&m, tok, B, T, &worst);
    CHECK(rel < 2e-2, "rank %d, unit mask: relative error %.3g at %s", rank, rel, worst);
    // all-keep masks are the full network, bit for bit
    uint8_t all_b[3] = {1, 1, 1}, all_h[12], all_f[72];
    memset(all_h, 1, sizeof all_h);
    memset(all_f, 1, sizeof all_f);
    SubnetMask all = {.block_keep = all_b, .head_keep = all_h, .ffn_keep = all_f};
    m.subnet = &all;
    CHECK_OK(model_forward(&m, tok, B, T, &masked, &err));
    CHECK(masked == full, "an all-keep mask is the full network: %.9g vs %.9g", masked, full);
    model_free(&m);
}

static void test_masked_gradients_dense(void) { check_masked_gradients(0); }
static void test_masked_gradients_factorized(void) { check_masked_gradients(3); }

static float *model_gradient(Model *m, const int32_t *tok, int B, int T) {
    Err err;
    float loss, *g;
    model_zero_grad(m);
    model_forward(m, tok, B, T, &loss, &err);
    model_backward(m, 1.0f, &err);
    inspect_snapshot(m, m->grads, &g, &err);
    return g;
}

static void test_self_alignment_is_one(void) {
    Err err;
    Model m;
    ModelConfig c = micro_config(3, 2);
    CHECK_OK(model_build(&m, &c, be, &err));
    int32_t tok[4 * 9];
    random_tokens(tok, 4 * 9, c.vocab, 1);
    float *g = model_gradient(&m, tok, 4, 8);
    AlignResult r;
    CHECK_OK(align_compare(&m, g, g, &r, &err));
    CHECK_NEAR(r.overall, 1.0, 1e-12, "cos(g, g)");
    CHECK_NEAR(r.norm_ratio, 1.0, 1e-12, "‖g‖/‖g‖");
    // groups: 2 blocks × (2 norms + 7 matrices) + embed, norm, head; A and B together
    CHECK(r.n == 2 * 9 + 3, "21 groups, got %d", r.n);
    int found = 0;
    for (int i = 0; i < r.n; i++) {
        CHECK_NEAR(r.per_param[i].cosine, 1.0, 1e-12, r.per_param[i].param);
        if (strcmp(r.per_param[i].param, "blocks.1.mlp.w2") == 0) found = r.per_param[i].tensor_b == r.per_param[i].tensor + 1 && r.per_param[i].layer == 1;
    }
    CHECK(found, "the group blocks.1.mlp.w2 holds its A and B");
    align_result_free(&r);
    // forward gradient with the true gradient as its guess: the projection is g itself
    CHECK_OK(align_forward_compare(&m, g, g, &r, &err));
    CHECK_NEAR(r.overall, 1.0, 1e-6, "forward with guess = g");
    CHECK_NEAR(r.norm_ratio, 1.0, 1e-6, "forward with guess = g: same norm");
    align_result_free(&r);
    // members: the same gradient twice is 1; with its negative the mean is 0
    float *neg;
    CHECK_OK(inspect_snapshot(&m, g, &neg, &err));
    be->scale(neg, -1.0f, (long)m.n_params);
    const float *gs[2] = {g, neg};
    CHECK_OK(align_compare_members(&m, g, gs, 1, &r, &err));
    CHECK_NEAR(r.overall, 1.0, 1e-12, "members: one identical member");
    align_result_free(&r);
    CHECK_OK(align_compare_members(&m, g, gs, 2, &r, &err));
    CHECK_NEAR(r.overall, 0.0, 1e-12, "members: mean of +1 and −1");
    align_result_free(&r);
    be->release(neg);
    be->release(g);
    model_free(&m);
}

static void run_align(Model *m, const Dataset *ds, const char *against, const char *k1, const char *v1,
                      const char *k2, const char *v2, AlignResult *r) {
    Err err;
    AlignConfig cfg;
    CHECK_OK(align_config_default(&cfg, against, &err));
    cfg.B = 4;
    cfg.T = 8;
    if (k1) CHECK_OK(align_config_set(&cfg, k1, v1, &err));
    if (k2) CHECK_OK(align_config_set(&cfg, k2, v2, &err));
    CHECK_OK(align_run(m, ds, &cfg, NULL, r, &err));
}

static void test_full_subnetworks_are_one(void) {
    Err err;
    Model m;
    ModelConfig c = micro_config(3, 3);
    static uint16_t store[5000];
    Dataset ds = random_dataset(store, 5000, c.vocab, 2);
    CHECK_OK(model_build(&m, &c, be, &err));
    AlignResult r;
    run_align(&m, &ds, "blockdrop", "p", "0", "draws", "2", &r);
    CHECK_NEAR(r.overall, 1.0, 1e-9, "blockdrop p=0");
    CHECK_NEAR(r.norm_ratio, 1.0, 1e-6, "blockdrop p=0: same norm");
    CHECK(strcmp(r.against, "blockdrop p=0 draws=2") == 0, "described: '%s'", r.against);
    align_result_free(&r);
    run_align(&m, &ds, "width", "p", "0", NULL, NULL, &r);
    CHECK_NEAR(r.overall, 1.0, 1e-9, "width p=0");
    align_result_free(&r);
    // p = 1: every block skipped, so block groups have no second gradient (NAN) and the rest
    // still align partially
    run_align(&m, &ds, "blockdrop", "p", "1", NULL, NULL, &r);
    int nan_blocks = 1;
    for (int i = 0; i < r.n; i++) if (r.per_param[i].layer >= 0) nan_blocks &= isnan(r.per_param[i].cosine) && r.per_param[i].norm2 == 0;
    CHECK(nan_blocks, "blockdrop p=1: blocks have no gradient");
    CHECK(r.overall > 0 && r.overall < 1, "blockdrop p=1: overall %g in (0, 1)", r.overall);
    align_result_free(&r);
    // half the width: still clearly aligned, not identical
    // half the width: the block matrices' gradients change (the overall cosine is dominated by
    // the unmasked head and embedding), yet stay aligned
    run_align(&m, &ds, "width", "p", "0.5", NULL, NULL, &r);
    double lo = 1, hi = 0;
    for (int i = 0; i < r.n; i++) {
        if (r.per_param[i].layer < 0 || strstr(r.per_param[i].param, "norm")) continue;
        lo = fmin(lo, r.per_param[i].cosine);
        hi = fmax(hi, r.per_param[i].cosine);
    }
    CHECK(lo > 0.1 && lo < 0.99, "width p=0.5: block matrices' cosines in [%g, %g]", lo, hi);
    align_result_free(&r);
    model_free(&m);
}

static void test_forward_guesses(void) {
    Err err;
    static uint16_t store[5000];
    Dataset ds = random_dataset(store, 5000, 37, 4);
    for (int layers = 1; layers <= 3; layers += 2) {
        Model m;
        ModelConfig c = micro_config(3, layers);
        CHECK_OK(model_build(&m, &c, be, &err));
        AlignResult r;
        run_align(&m, &ds, "forward", "guess", "local", NULL, NULL, &r);
        if (layers == 1) CHECK_NEAR(r.overall, 1.0, 1e-5, "one block: the local loss is the loss");
        for (int i = 0; i < r.n; i++) {
            const AlignGroup *g = &r.per_param[i];
            if (g->layer == layers - 1 || g->layer == -1) {
                if (strcmp(g->param, "embed") == 0 && layers > 1) continue;   // L_0's gradient
                CHECK_NEAR(g->cosine, 1.0, 1e-5, g->param);
            } else {
                CHECK(g->cosine >= 0 && g->cosine <= 1 + 1e-9, "%s: projections are never anti-aligned (%g)", g->param, g->cosine);
            }
        }
        if (layers == 3) CHECK(r.overall < 0.9999, "three blocks: the local guess is not the gradient (%g)", r.overall);
        align_result_free(&r);
        // random guesses: cos ≈ √(draws/N) per group (N its size) — small, never negative
        run_align(&m, &ds, "forward", "guess", "random", "draws", "4", &r);
        CHECK(r.overall > 0 && r.overall < 0.6, "random guesses align weakly: %g", r.overall);
        CHECK(r.norm_ratio < 1, "projections shrink: ratio %g", r.norm_ratio);
        align_result_free(&r);
        model_free(&m);
    }
}

// An untrained model on uniformly random tokens: the expected gradient is what pushes the
// initial logits (std ≈ 0.02·√dim) towards uniform, tiny next to each token's (softmax −
// onehot) noise, and the embedding rows two batches touch barely overlap when vocab ≫ B·T.
// So two batches' gradients are nearly orthogonal; measured 0.003 at these sizes (1024 tokens, vocab 2048), and
// 0.2 leaves room for seeds while a shared-batch bug (cos = 1) or a sign bug would fail.
static void test_microbatch_noise_is_near_orthogonal(void) {
    Err err;
    Model m;
    ModelConfig c = micro_config(4, 2);
    c.vocab = 2048;
    c.dim = 32;
    c.ffn = 64;
    c.seq = 64;
    static uint16_t store[200000];
    Dataset ds = random_dataset(store, 200000, c.vocab, 9);
    CHECK_OK(model_build(&m, &c, be, &err));
    AlignConfig cfg;
    CHECK_OK(align_config_default(&cfg, "microbatch", &err));
    cfg.B = 16;
    cfg.T = 64;
    AlignResult r;
    CHECK_OK(align_run(&m, &ds, &cfg, NULL, &r, &err));
    CHECK(fabs(r.overall) < 0.2, "microbatch alignment of an untrained model on random tokens: %g", r.overall);
    CHECK(r.norm_ratio > 0.5 && r.norm_ratio < 2, "two batches' gradients have similar norms: %g", r.norm_ratio);
    align_result_free(&r);
    model_free(&m);
}

static void test_run_keeps_state_and_checks_input(void) {
    Err err;
    Model m;
    ModelConfig c = micro_config(3, 2);
    static uint16_t store[5000];
    Dataset ds = random_dataset(store, 5000, c.vocab, 2);
    CHECK_OK(model_build(&m, &c, be, &err));
    int32_t tok[4 * 9];
    random_tokens(tok, 4 * 9, c.vocab, 1);
    float *g = model_gradient(&m, tok, 4, 8), *before = malloc(m.n_params * 4), *after = malloc(m.n_params * 4);
    be->download(before, m.grads, m.n_params * 4);
    AlignConfig cfg;
    AlignResult r;
    CHECK_OK(align_config_default(&cfg, "delayed", &err));
    cfg.B = 4;
    cfg.T = 8;
    CHECK(align_run(&m, &ds, &cfg, NULL, &r, &err) != 0 && strstr(err.msg, "delayed"), "delayed without a buffer: '%s'", err.msg);
    CHECK_OK(align_run(&m, &ds, &cfg, g, &r, &err));
    CHECK(r.overall > -1 && r.overall < 1, "delayed: a cosine (%g)", r.overall);
    align_result_free(&r);
    be->download(after, m.grads, m.n_params * 4);
    CHECK(memcmp(before, after, m.n_params * 4) == 0, "align leaves m->grads as it found it");
    CHECK(m.subnet == NULL, "and no mask behind");
    // the same gradient through `delayed` is the batch's own: cos 1 (same seed ⇒ same batch)
    cfg.seed = 77;
    AlignConfig mb;
    CHECK_OK(align_config_default(&mb, "microbatch", &err));
    CHECK(align_config_set(&mb, "p", "0.5", &err) != 0 && strstr(err.msg, "no option 'p'"), "microbatch takes no p: '%s'", err.msg);
    CHECK(align_config_default(&mb, "sideways", &err) != 0 && strstr(err.msg, "microbatch"), "unknown mode lists the known: '%s'", err.msg);
    CHECK_OK(align_config_default(&mb, "blockdrop", &err));
    CHECK(align_config_set(&mb, "p", "1.5", &err) != 0, "p=1.5 refused");
    CHECK(align_config_set(&mb, "draws", "0", &err) != 0, "draws=0 refused");
    // guess=local is one deterministic guess: draws= is refused in either order, not ignored
    CHECK_OK(align_config_default(&mb, "forward", &err));
    CHECK_OK(align_config_set(&mb, "guess", "local", &err));
    CHECK(align_config_set(&mb, "draws", "3", &err) != 0 && strstr(err.msg, "guess=local"), "local then draws: '%s'", err.msg);
    CHECK_OK(align_config_default(&mb, "forward", &err));
    CHECK_OK(align_config_set(&mb, "draws", "3", &err));
    CHECK(align_config_set(&mb, "guess", "local", &err) != 0 && strstr(err.msg, "draws"), "draws then local: '%s'", err.msg);
    CHECK_OK(align_config_set(&mb, "guess", "random", &err));
    CHECK_OK(align_config_default(&mb, "members", &err));
    CHECK(align_run(&m, &ds, &mb, NULL, &r, &err) != 0 && strstr(err.msg, "ensemble"), "members needs an ensemble: '%s'", err.msg);
    free(before); free(after);
    be->release(g);
    model_free(&m);
}

int main(void) {
    be = backend_cpu(0);
    RUN(test_masked_gradients_dense);
    RUN(test_masked_gradients_factorized);
    RUN(test_self_alignment_is_one);
    RUN(test_full_subnetworks_are_one);
    RUN(test_forward_guesses);
    RUN(test_microbatch_noise_is_near_orthogonal);
    RUN(test_run_keeps_state_and_checks_input);
    return TEST_SUMMARY();
}
