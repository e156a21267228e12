// test_generate.c — KV-cache inference equals the training forward; the window slides past
// the context; the sampler honours temperature, top-k and top-p.
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <omp.h>
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
    CHECK_OK(generator_feed(&g, tok, 1, &err));        // a token first: the rest slides through the loop
    CHECK_OK(generator_feed(&g, tok + 1, 39, &err));   // 2.5 contexts
    CHECK(g.len > 0 && g.len <= g.cap, "the cache holds 1..%d tokens, got %d", g.cap, g.len);
    CHECK_OK(generator_feed(&fresh, tok + 40 - g.len, g.len, &err));
    double d = max_rel_diff(g.logits, fresh.logits, c.vocab);
    CHECK(d < 1e-4, "after sliding, logits equal a fresh encoding of the kept window: %.3g", d);
    // a fresh generator fed all 40 at once encodes only what the window keeps, to the same end
    generator_reset(&fresh);
    CHECK_OK(generator_feed(&fresh, tok, 40, &err));
    CHECK(fresh.len == g.len && memcmp(fresh.history, g.history, sizeof(int32_t) * (size_t)g.len) == 0,
          "a long prompt at once keeps the window sliding keeps (%d tokens, got %d)", g.len, fresh.len);
    d = max_rel_diff(g.logits, fresh.logits, c.vocab);
    CHECK(d < 1e-4, "a long prompt at once gives the logits of sliding through it: %.3g", d);
    int32_t bad = c.vocab + 5;
    CHECK(generator_feed(&g, &bad, 1, &err) != 0 && strstr(err.msg, "out of range"), "a bad id is refused: '%s'", err.msg);
    generator_free(&g);
    generator_free(&fresh);
    model_free(&m);
}

// A context longer than a prefill pass (PREFILL_CHUNK, 512): a 1 100-token prompt goes through
// in three passes, each attending to the cache the ones before it filled, to the training
// forward's logits; the slide re-encodes its kept 550 in two; the scratch holds no seq×seq.
static void test_prompt_longer_than_a_pass(void) {
    Err err;
    Model m;
    Generator g, fresh;
    ModelConfig c = config(4);
    c.dim = 16, c.heads = 2, c.kv_heads = 1, c.layers = 1, c.ffn = 24, c.seq = 1100;
    CHECK_OK(model_build(&m, &c, be, &err));
    CHECK_OK(generator_build(&g, &m, &err));
    CHECK_OK(generator_build(&fresh, &m, &err));
    CHECK(g.chunk == 512 && g.work_floats < (size_t)c.heads * c.seq * c.seq,
          "passes of 512 tokens, scratch under heads·seq² (%zu floats)", g.work_floats);
    int T = c.seq, V = c.vocab;
    int32_t *tok = malloc(sizeof(int32_t) * (T + 1));
    uint64_t s = 11;
    for (int i = 0; i <= T; i++) tok[i] = (int32_t)(rng_next(&s) % (uint64_t)V);
    float *ref = training_logits(&m, tok, T);
    CHECK_OK(generator_feed(&g, tok, T, &err));
    double d = max_rel_diff(g.logits, ref + (size_t)(T - 1) * V, V);
    CHECK(d < 1e-4, "a prompt in three passes vs the training forward: max relative difference %.3g", d);
    CHECK_OK(generator_feed(&g, tok + T, 1, &err));   // the window slides: 550 kept, re-encoded in two passes
    CHECK_OK(generator_feed(&fresh, g.history, g.len, &err));
    d = max_rel_diff(g.logits, fresh.logits, V);
    CHECK(g.len == 551 && d < 1e-4, "after the slide (%d tokens) logits equal a fresh encoding: %.3g", g.len, d);
    free(ref);
    free(tok);
    generator_free(&g);
    generator_free(&fresh);
    model_free(&m);
}

// A context of one token: every token after the first slides the window and keeps none, so
// each token's logits are those of that token alone (the slide once read before its buffer).
static void test_context_of_one(void) {
    Err err;
    Model m;
    Generator g, fresh;
    ModelConfig c = config(0);
    c.seq = 1;
    CHECK_OK(model_build(&m, &c, be, &err));
    CHECK_OK(generator_build(&g, &m, &err));
    CHECK_OK(generator_build(&fresh, &m, &err));
    for (int i = 0; i < 5; i++) {
        int32_t t = (int32_t)(i * 11 % c.vocab);
        CHECK_OK(generator_feed(&g, &t, 1, &err));
        generator_reset(&fresh);
        CHECK_OK(generator_feed(&fresh, &t, 1, &err));
        double d = max_rel_diff(g.logits, fresh.logits, c.vocab);
        CHECK(g.len == 1 && d == 0, "token %d in a context of one: len %d, logits %.3g from a fresh feed", i, g.len, d);
    }
    int32_t two[2] = {3, 4};
    CHECK_OK(generator_feed(&g, two, 2, &err));   // a prompt longer than the context
    CHECK(g.len == 1, "after a two-token prompt the cache holds one token, got %d", g.len);
    generator_free(&g);
    generator_free(&fresh);
    model_free(&m);
}

// A context longer than the vocabulary: a full-context prompt's ids borrow the logits slot,
// which must hold them. It was sized by the vocabulary alone; on the CPU the overflow landed in
// the decode scratch behind it (no test could see it), on CUDA that scratch is smaller and the
// ids would have run past the buffer. Here: the prompt's logits are still right.
static void test_context_longer_than_vocab(void) {
    Err err;
    Model m;
    Generator g;
    ModelConfig c = config(0);
    c.vocab = 5, c.seq = 200;
    CHECK_OK(model_build(&m, &c, be, &err));
    CHECK_OK(generator_build(&g, &m, &err));
    int32_t tok[200];
    for (int i = 0; i < 200; i++) tok[i] = i % c.vocab;
    float *ref = training_logits(&m, tok, 200);
    CHECK_OK(generator_feed(&g, tok, 200, &err));
    double d = max_rel_diff(g.logits, ref + (size_t)199 * c.vocab, c.vocab);
    CHECK(d < 1e-4, "a 200-token prompt in a vocabulary of 5: logits %.3g from the training forward", d);
    free(ref);
    generator_free(&g);
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
    // the nucleus is the smallest set holding top_p of the whole mass, however much the tail
    // below it weighs: p = .45, .44, .06 and 50 ids of .001 — top_p=0.9 needs id 2 (.89 < .9)
    float tail[53];
    for (int i = 0; i < V; i++) tail[i] = logf(i == 0 ? 0.45f : i == 1 ? 0.44f : i == 2 ? 0.06f : 0.001f);
    SamplerConfig p90 = {.temperature = 1, .top_k = 0, .top_p = 0.9f};
    memset(counts, 0, sizeof counts);
    for (int i = 0; i < 4000; i++) { memcpy(g.logits, tail, sizeof tail); counts[sampler_sample(&p90, &g, &rng)]++; }
    CHECK(counts[0] + counts[1] + counts[2] == 4000, "top_p=0.9 drew %d tail ids", 4000 - counts[0] - counts[1] - counts[2]);
    CHECK(fabs(counts[2] / 4000.0 - 0.06 / 0.95) < 0.02, "top_p=0.9 keeps id 2: P = %.3f, got %.3f", 0.06 / 0.95,
          counts[2] / 4000.0);
    // top_p below 1/V: the most probable id alone, even when every id is about as probable
    for (int i = 0; i < V; i++) tail[i] = i == 7 ? 0.005f : 0.0f;
    SamplerConfig p1 = {.temperature = 1, .top_k = 0, .top_p = 0.01f};
    int others = 0;
    for (int i = 0; i < 500; i++) { memcpy(g.logits, tail, sizeof tail); others += sampler_sample(&p1, &g, &rng) != 7; }
    CHECK(others == 0, "top_p=0.01 over a near-uniform distribution drew %d ids other than the most probable", others);
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

// ---- recorded decoding ---------------------------------------------------------------------
// A CPU stand-in that records as a GPU does: between graph_begin and graph_end the calls of a
// decoded token are stored with their arguments (a CUDA graph keeps kernel parameters by value)
// and not run; graph_launch replays them. Replayed logits equal direct ones only if everything
// that changes from token to token reaches the calls through device memory.

enum { REC_EMBED, REC_NORM, REC_GEMM, REC_GEMM_BATCH, REC_ROW_PRODUCTS, REC_ATTENTION, REC_SWIGLU };

typedef struct Recorded {
    int op, count, n[5];
    GemmCall calls[3];                 // REC_GEMM (one), REC_GEMM_BATCH (count)
    RowInput row;                      // REC_ROW_PRODUCTS: its input and (count) products
    RowProduct products[4];
    float *out[3];
    const float *in[4];
    float *caches[2];                  // REC_ATTENTION's k and v caches
    const int32_t *ids;                // tokens or the position
    float f;
    long len;
} Recorded;

typedef struct Recorder {
    Recorded calls[512];
    int n, recording, overflow;
    int begins, ends, launches, releases;
    int fail_next_end, stale_next_launch;
} Recorder;

static Recorder rec;
static const Backend *cpu_be;

// Store the call while recording (1), or say to run it now (0).
static int record(Recorded r) {
    if (!rec.recording) return 0;
    if (rec.n == 512) rec.overflow = 1;
    else rec.calls[rec.n++] = r;
    return 1;
}

static void r_embedding_forward(float *out, const int32_t *tokens, const float *table, int n, int dim) {
    if (!record((Recorded){.op = REC_EMBED, .out = {out}, .ids = tokens, .in = {table}, .n = {n, dim}}))
        cpu_be->embedding_forward(out, tokens, table, n, dim);
}
static void r_rmsnorm_forward(float *out, float *rstd, const float *x, const float *gain, int n, int dim, float eps) {
    if (!record((Recorded){.op = REC_NORM, .out = {out, rstd}, .in = {x, gain}, .n = {n, dim}, .f = eps}))
        cpu_be->rmsnorm_forward(out, rstd, x, gain, n, dim, eps);
}
static void r_gemm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
                   float beta, float *c, int ldc) {
    GemmCall g = gemm_call(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    if (!record((Recorded){.op = REC_GEMM, .calls = {g}, .count = 1}))
        cpu_be->gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
static void r_gemm_batch(const GemmCall *calls, int count) {
    Recorded r = {.op = REC_GEMM_BATCH, .count = count};
    if (count > 3) rec.overflow = 1;
    else memcpy(r.calls, calls, sizeof(GemmCall) * count);
    if (!record(r)) cpu_be->gemm_batch(calls, count);
}
static void r_row_products(const RowInput *in, const RowProduct *calls, int count) {
    Recorded r = {.op = REC_ROW_PRODUCTS, .row = *in, .count = count};
    if (count > 4) rec.overflow = 1;
    else memcpy(r.products, calls, sizeof(RowProduct) * count);
    if (!record(r)) cpu_be->row_products(in, calls, count);
}
static void r_decode_attention(float *out, float *scratch, float *q, const float *k, const float *v, float *kc,
                               float *vc, const int32_t *pos, int cap, int H, int KVH, int hd, float theta) {
    if (!record((Recorded){.op = REC_ATTENTION, .out = {out, scratch, q}, .in = {k, v}, .caches = {kc, vc},
                           .ids = pos, .n = {cap, H, KVH, hd}, .f = theta}))
        cpu_be->decode_attention(out, scratch, q, k, v, kc, vc, pos, cap, H, KVH, hd, theta);
}
static void r_swiglu_forward(float *out, const float *gate, const float *up, long n) {
    if (!record((Recorded){.op = REC_SWIGLU, .out = {out}, .in = {gate, up}, .len = n}))
        cpu_be->swiglu_forward(out, gate, up, n);
}

static void replay(const Recorded *r) {
    switch (r->op) {
    case REC_EMBED: cpu_be->embedding_forward(r->out[0], r->ids, r->in[0], r->n[0], r->n[1]); break;
    case REC_NORM: cpu_be->rmsnorm_forward(r->out[0], r->out[1], r->in[0], r->in[1], r->n[0], r->n[1], r->f); break;
    case REC_GEMM: {
        const GemmCall *g = &r->calls[0];
        cpu_be->gemm(g->trans_a, g->trans_b, g->m, g->n, g->k, g->alpha, g->a, g->lda, g->b, g->ldb, g->beta, g->c, g->ldc);
        break;
    }
    case REC_GEMM_BATCH: cpu_be->gemm_batch(r->calls, r->count); break;
    case REC_ROW_PRODUCTS: cpu_be->row_products(&r->row, r->products, r->count); break;
    case REC_ATTENTION:
        cpu_be->decode_attention(r->out[0], r->out[1], r->out[2], r->in[0], r->in[1], r->caches[0], r->caches[1],
                                 r->ids, r->n[0], r->n[1], r->n[2], r->n[3], r->f);
        break;
    case REC_SWIGLU: cpu_be->swiglu_forward(r->out[0], r->in[0], r->in[1], r->len); break;
    }
}

static int r_graph_begin(void) {
    rec.begins++;
    rec.n = 0, rec.recording = 1;
    return 0;
}
static void *r_graph_end(void) {
    rec.ends++;
    rec.recording = 0;
    if (rec.fail_next_end) { rec.fail_next_end = 0; return NULL; }
    return &rec;
}
static int r_graph_launch(void *graph) {
    if (graph != &rec) rec.overflow = 1;
    if (rec.stale_next_launch) { rec.stale_next_launch = 0; return -1; }
    rec.launches++;
    for (int i = 0; i < rec.n; i++) replay(&rec.calls[i]);
    return 0;
}
static void r_graph_release(void *graph) { (void)graph; rec.releases++; }

static Backend recording_backend(void) {
    Backend b = *backend_cpu(0);
    b.embedding_forward = r_embedding_forward, b.rmsnorm_forward = r_rmsnorm_forward, b.gemm = r_gemm;
    b.gemm_batch = r_gemm_batch, b.row_products = r_row_products, b.decode_attention = r_decode_attention;
    b.swiglu_forward = r_swiglu_forward;
    b.graph_begin = r_graph_begin, b.graph_end = r_graph_end, b.graph_launch = r_graph_launch;
    b.graph_release = r_graph_release;
    return b;
}

// A prompt, then 24 tokens one at a time (past the 16-token context: the window slides), on
// the recording stand-in and on the CPU: the logits must be the same bits after every token.
static void recorded_case(int rank, int stale_at, int fail_end) {
    Err err;
    Model mr, mc;
    Generator gr, gc;
    Backend rb = recording_backend();
    ModelConfig c = config(rank);
    memset(&rec, 0, sizeof rec);
    rec.fail_next_end = fail_end;
    CHECK_OK(model_build(&mr, &c, &rb, &err));
    CHECK_OK(model_build(&mc, &c, cpu_be, &err));
    CHECK_OK(generator_build(&gr, &mr, &err));
    CHECK_OK(generator_build(&gc, &mc, &err));
    int32_t prompt[3] = {5, 17, 2};
    CHECK_OK(generator_feed(&gr, prompt, 3, &err));
    CHECK_OK(generator_feed(&gc, prompt, 3, &err));
    int mismatch = -1;
    for (int i = 0; i < 24; i++) {
        int32_t next = (int32_t)((i * 13 + 1) % c.vocab);
        if (i == stale_at) rec.stale_next_launch = 1;
        CHECK_OK(generator_feed(&gr, &next, 1, &err));
        CHECK_OK(generator_feed(&gc, &next, 1, &err));
        if (mismatch < 0 && memcmp(gr.logits, gc.logits, sizeof(float) * c.vocab) != 0) mismatch = i;
    }
    CHECK(mismatch < 0, "rank %d: recorded decoding differs from direct after token %d", rank, mismatch + 1);
    CHECK(!rec.overflow, "a recorded call did not fit the stand-in");
    const char *want = fail_end ? "direct: recording failed" : "graph";
    CHECK(strcmp(generator_decode_path(&gr), want) == 0 && strcmp(generator_decode_path(&gc), "direct") == 0,
          "decode paths '%s' and '%s', want '%s' and 'direct'", generator_decode_path(&gr), generator_decode_path(&gc),
          want);
    if (fail_end)
        CHECK(rec.begins == 1 && rec.launches == 0 && gr.graph == NULL,
              "after a failed recording: %d recordings, %d launches (want 1, 0)", rec.begins, rec.launches);
    else
        CHECK(rec.begins == 1 + (stale_at >= 0) && rec.launches == 23 - (stale_at >= 0) &&
                  rec.releases == (stale_at >= 0),
              "rank %d: %d recordings, %d launches, %d releases", rank, rec.begins, rec.launches, rec.releases);
    generator_free(&gr);
    generator_free(&gc);
    model_free(&mr);
    model_free(&mc);
}

static void test_recorded_decoding(void) {
    recorded_case(0, -1, 0);   // dense: the first token direct, the second recorded, then replays
    recorded_case(4, -1, 0);   // factorized (the packed Bᵀ products)
    recorded_case(4, 9, 0);    // a stale graph: released, one token direct, recorded again
    recorded_case(0, -1, 1);   // a failed recording: direct from then on
}

// Under OMP_WAIT_POLICY=passive a single token is decoded on one thread (sleeping waits made
// more threads slower): the same logits as with every thread, and the thread count given back.
static void test_passive_decode_threads(void) {
    Err err;
    Model m;
    Generator g, h;
    ModelConfig c = config(4);
    CHECK_OK(model_build(&m, &c, be, &err));
    CHECK_OK(generator_build(&g, &m, &err));
    CHECK_OK(generator_build(&h, &m, &err));
    int32_t tok[6] = {1, 5, 9, 2, 7, 3};
    int saved = omp_get_max_threads();
    backend_cpu(2);   // OpenMP's count and OpenBLAS's (which otherwise resets OpenMP's to its own)
    CHECK_OK(generator_feed(&g, tok, 5, &err));
    CHECK_OK(generator_feed(&g, tok + 5, 1, &err));   // spinning waits: every thread
    setenv("OMP_WAIT_POLICY", "passive", 1);
    CHECK_OK(generator_feed(&h, tok, 5, &err));
    CHECK_OK(generator_feed(&h, tok + 5, 1, &err));   // passive: one thread, then two again
    unsetenv("OMP_WAIT_POLICY");
    CHECK(omp_get_max_threads() == 2, "the thread count is given back: %d", omp_get_max_threads());
    double d = max_rel_diff(g.logits, h.logits, c.vocab);
    CHECK(d < 1e-5, "one thread or two, the same logits: %.3g", d);
    backend_cpu(saved);
    generator_free(&g);
    generator_free(&h);
    model_free(&m);
}

int main(void) {
    be = cpu_be = backend_cpu(0);
    RUN(test_cache_dense);
    RUN(test_cache_factorized);
    RUN(test_window_slides_past_context);
    RUN(test_prompt_longer_than_a_pass);
    RUN(test_context_of_one);
    RUN(test_context_longer_than_vocab);
    RUN(test_sampler);
    RUN(test_greedy_recites_training_text);
    RUN(test_attention_sizes_change);
    RUN(test_recorded_decoding);
    RUN(test_passive_decode_threads);
    return TEST_SUMMARY();
}
