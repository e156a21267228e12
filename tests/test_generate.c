// test_generate.c — KV-cache inference equals the training forward; the window slides past
// the context; the sampler honours temperature, top-k and top-p.
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "test.h"
#include "../engine/generate.h"
#include "../engine/model_internal.h"
#include "../engine/rng.h"
#include "../engine/train.h"

static const Backend *be;

static ModelConfig config(int rank) {
    return (ModelConfig){.dim = 32, .layers = 2, .heads = 4, .kv_heads = 2, .ffn = 48, .seq = 16,
                         .vocab = 53, .rank = rank, .rank_ratio = 0.25f, .rope_theta = 10000.0f,
                         .norm_eps = 1e-5f, .seed = 3};
}

static double max_rel_diff(const float *a, const float *b, int n) {
    double w = 0;
    for (int i = 0; i < n; i++) w = fmax(w, fabs(a[i] - b[i]) / fmax(1.0, fabs(b[i])));
    return w;
}

// Logits of the training forward at every position of tokens[0..T).
static float *training_logits(Model *m, const int32_t *tokens, int T) {
    Err err;
    float loss;
    int32_t *tt = malloc(sizeof(int32_t) * (T + 1));
    memcpy(tt, tokens, sizeof(int32_t) * T);
    tt[T] = 0;
    model_forward(m, tt, 1, T, &loss, &err);
    float *out = malloc(sizeof(float) * T * m->cfg.vocab);
    be->download(out, m->acts->logits, sizeof(float) * T * m->cfg.vocab);
    free(tt);
    return out;
}

static void check_cache_matches_forward(int rank, const char *what) {
    Err err;
    Model m;
    Generator g;
    ModelConfig c = config(rank);
    CHECK_OK(model_build(&m, &c, be, &err));
    CHECK_OK(generator_build(&g, &m, &err));
    int T = 12, V = c.vocab;
    int32_t tok[12];
    uint64_t s = 9;
    for (int i = 0; i < T; i++) tok[i] = (int32_t)(rng_next(&s) % (uint64_t)V);
    float *ref = training_logits(&m, tok, T);
    CHECK_OK(generator_feed(&g, tok, T, &err));   // one batched prefill
    double d = max_rel_diff(g.logits, ref + (size_t)(T - 1) * V, V);
    CHECK(d < 1e-4, "%s: prefill logits vs training forward: max relative difference %.3g", what, d);
    generator_reset(&g);
    double worst = 0;
    for (int t = 0; t < T; t++) {   // one token at a time
        CHECK_OK(generator_feed(&g, tok + t, 1, &err));
        worst = fmax(worst, max_rel_diff(g.logits, ref + (size_t)t * V, V));
    }
    CHECK(worst < 1e-4, "%s: token-by-token logits vs training forward: max relative difference %.3g", what, worst);
    free(ref);
    generator_free(&g);
    model_free(&m);
}

static void test_cache_dense(void) { check_cache_matches_forward(0, "dense"); }
static void test_cache_factorized(void) { check_cache_matches_forward(4, "factorized rank 4"); }

static void test_window_slides_past_context(void) {
    Err err;
    Model m;
    Generator g, fresh;
    ModelConfig c = config(4);
    CHECK_OK(model_build(&m, &c, be, &err));
    CHECK_OK(generator_build(&g, &m, &err));
    CHECK_OK(generator_build(&fresh, &m, &err));
    int32_t tok[40];
    for (int i = 0; i < 40; i++) tok[i] = (i * 7) % c.vocab;
    CHECK_OK(generator_feed(&g, tok, 40, &err));   // 2.5 contexts
    CHECK(g.len > 0 && g.len <= g.cap, "the cache holds 1..%d tokens, got %d", g.cap, g.len);
    CHECK_OK(generator_feed(&fresh, tok + 40 - g.len, g.len, &err));
    double d = max_rel_diff(g.logits, fresh.logits, c.vocab);
    CHECK(d < 1e-4, "after sliding, logits equal a fresh encoding of the kept window: %.3g", d);
    int32_t bad = c.vocab + 5;
    CHECK(generator_feed(&g, &bad, 1, &err) != 0 && strstr(err.msg, "out of range"), "a bad id is refused: '%s'", err.msg);
    generator_free(&g);
    generator_free(&fresh);
    model_free(&m);
}

static void test_sampler(void) {
    Err err;
    Model m;
    Generator g;
    ModelConfig c = config(4);
    CHECK_OK(model_build(&m, &c, be, &err));
    CHECK_OK(generator_build(&g, &m, &err));
    int V = c.vocab;
    // a known distribution: logits log(p) with p ∝ 1..V for the first five ids, tiny elsewhere
    float base[53];
    for (int i = 0; i < V; i++) base[i] = i < 5 ? logf((float)(i + 1)) : -30.0f;
    uint64_t rng = 1;
    SamplerConfig greedy = {.temperature = 0, .top_k = 0, .top_p = 1};
    memcpy(g.logits, base, sizeof base);
    CHECK(sampler_sample(&greedy, &g, &rng) == 4, "greedy picks the argmax");
    SamplerConfig k2 = {.temperature = 1, .top_k = 2, .top_p = 1};
    int counts[53] = {0};
    for (int i = 0; i < 3000; i++) { memcpy(g.logits, base, sizeof base); counts[sampler_sample(&k2, &g, &rng)]++; }
    CHECK(counts[0] + counts[1] + counts[2] == 0, "top_k=2 never leaves the top two (got %d outside)", 3000 - counts[3] - counts[4]);
    CHECK(fabs(counts[4] / 3000.0 - 5.0 / 9.0) < 0.04, "top_k=2 renormalizes: P(id 4) = 5/9, got %.3f", counts[4] / 3000.0);
    SamplerConfig full = {.temperature = 1, .top_k = 0, .top_p = 1};
    memset(counts, 0, sizeof counts);
    for (int i = 0; i < 6000; i++) { memcpy(g.logits, base, sizeof base); counts[sampler_sample(&full, &g, &rng)]++; }
    for (int i = 0; i < 5; i++)
        CHECK(fabs(counts[i] / 6000.0 - (i + 1) / 15.0) < 0.03, "temperature 1 follows p: id %d expected %.3f got %.3f", i, (i + 1) / 15.0, counts[i] / 6000.0);
    SamplerConfig nucleus = {.temperature = 1, .top_k = 0, .top_p = 0.5f};   // 5/15 + 4/15 ≥ 0.5
    memset(counts, 0, sizeof counts);
    for (int i = 0; i < 2000; i++) { memcpy(g.logits, base, sizeof base); counts[sampler_sample(&nucleus, &g, &rng)]++; }
    CHECK(counts[3] + counts[4] == 2000, "top_p=0.5 keeps only ids 4 and 3 (got %d others)", 2000 - counts[3] - counts[4]);
    generator_free(&g);
    model_free(&m);
}

// Train on one 40-token passage repeated, then greedy generation from its first tokens must
// recite the rest; the same seed must give the same sample at temperature 1.
static void test_greedy_recites_training_text(void) {
    Err err;
    Model m;
    Trainer tr;
    OptimConfig oc;
    Generator g;
    ModelConfig c = config(0);
    c.seq = 48;
    enum { LEN = 40, REPEATS = 100 };
    static uint16_t store[LEN * REPEATS];
    int32_t passage[LEN];
    uint64_t s = 21;
    for (int i = 0; i < LEN; i++) passage[i] = 3 + (int32_t)(rng_next(&s) % (uint64_t)(c.vocab - 3));
    for (int i = 0; i < LEN * REPEATS; i++) store[i] = (uint16_t)passage[i % LEN];
    Dataset ds = {.vocab_size = c.vocab, .token_bytes = 2, .n_tokens = LEN * REPEATS, .n_train = LEN * (REPEATS - 2), .tokens = store};
    CHECK_OK(model_build(&m, &c, be, &err));
    CHECK_OK(optim_config_default(&oc, "adamw", &err));
    oc.lr = 1e-2f;
    CHECK_OK(trainer_build(&tr, &m, &oc, 5, &err));
    StepStats st;
    for (int i = 0; i < 300; i++) if (trainer_step(&tr, &ds, 4, 32, 1, &st, &err)) { CHECK(0, "step %d: %s", i + 1, err.msg); break; }
    CHECK_OK(generator_build(&g, &m, &err));
    CHECK_OK(generator_feed(&g, passage, 8, &err));
    SamplerConfig greedy = {.temperature = 0, .top_k = 0, .top_p = 1};
    uint64_t rng = 1;
    int right = 0;
    for (int i = 8; i < LEN; i++) {
        int32_t next = sampler_sample(&greedy, &g, &rng);
        right += next == passage[i];
        CHECK_OK(generator_feed(&g, &next, 1, &err));
    }
    CHECK(right == LEN - 8, "greedy generation recites the passage: %d of %d tokens right (final loss %.3f)", right, LEN - 8, st.loss);
    int32_t a[20], b[20];
    SamplerConfig warm = {.temperature = 1, .top_k = 0, .top_p = 1};
    for (int pass = 0; pass < 2; pass++) {
        int32_t *out = pass ? b : a;
        uint64_t r = 77;
        generator_reset(&g);
        CHECK_OK(generator_feed(&g, passage, 4, &err));
        for (int i = 0; i < 20; i++) { out[i] = sampler_sample(&warm, &g, &r); CHECK_OK(generator_feed(&g, &out[i], 1, &err)); }
    }
    CHECK(memcmp(a, b, sizeof a) == 0, "the same seed gives the same sample");
    generator_free(&g);
    trainer_free(&tr);
    model_free(&m);
}

// A backend whose attention keeps more when told to, as the GPU's does when its attention mode
// changes: the model's activations are carved again (same losses), and a generator built before
// refuses to run with one clear error instead of overrunning its scratch.
static size_t extra_floats;
static size_t grown_attention_floats(int B, int H, int Tq, int Tk, int hd) {
    return backend_cpu(0)->attention_saved_floats(B, H, Tq, Tk, hd) + extra_floats;
}

static void test_attention_sizes_change(void) {
    Err err;
    Model m;
    Generator g;
    Backend grows = *backend_cpu(0);
    grows.attention_saved_floats = grown_attention_floats;
    ModelConfig c = config(0);
    int32_t tok[2 * 9];
    for (int i = 0; i < 18; i++) tok[i] = (i * 7 + 3) % c.vocab;
    extra_floats = 0;
    CHECK_OK(model_build(&m, &c, &grows, &err));
    CHECK_OK(generator_build(&g, &m, &err));
    float before = 0, after = 0;
    CHECK_OK(model_forward(&m, tok, 2, 8, &before, &err));
    size_t floats = m.acts->floats;
    extra_floats = 4096;
    CHECK_OK(model_forward(&m, tok, 2, 8, &after, &err));
    CHECK(m.acts->floats > floats, "activations not carved again: %zu floats before and after", floats);
    CHECK(before == after, "loss %.9g then %.9g after the activations were carved again", before, after);
    int rc = generator_feed(&g, tok, 4, &err);
    CHECK(rc != 0 && strstr(err.msg, "build it again"), "a stale generator should refuse to run: rc %d, '%s'", rc,
          err.msg);
    generator_free(&g);
    CHECK_OK(generator_build(&g, &m, &err));
    CHECK_OK(generator_feed(&g, tok, 4, &err));
    generator_free(&g);
    model_free(&m);
}

int main(void) {
    be = backend_cpu(0);
    RUN(test_cache_dense);
    RUN(test_cache_factorized);
    RUN(test_window_slides_past_context);
    RUN(test_sampler);
    RUN(test_greedy_recites_training_text);
    RUN(test_attention_sizes_change);
    return TEST_SUMMARY();
}
