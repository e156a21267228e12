// bench.c — training throughput and MFU against the machine's measured sgemm peak.
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include "clock.h"
#include <sys/resource.h>
#include <omp.h>
#include "bench.h"
#include "model.h"
#include "train.h"
#include "rng.h"

// GFLOP/s of C(m×n) = A(m×k)·B(k×n), best of a few repetitions.
static double sgemm_gflops(const Backend *be, int m, int n, int k) {
    float *a = be->alloc(sizeof(float) * m * k), *b = be->alloc(sizeof(float) * k * n), *c = be->alloc(sizeof(float) * m * n);
    if (!a || !b || !c) { be->release(a); be->release(b); be->release(c); return 0; }
    be->gemm(0, 0, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);  // warm-up
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        int iters = 0;
        double t0 = clock_seconds(), t;
        do {
            be->gemm(0, 0, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
            iters++;
        } while ((t = clock_seconds() - t0) < 0.2);
        double g = 2.0 * m * n * k * iters / t / 1e9;
        if (g > best) best = g;
    }
    be->release(a); be->release(b); be->release(c);
    return best;
}

int bench_sgemm_peak(const Backend *be, double *gflops, Err *err) {
    static const int sizes[][3] = {{1024, 1024, 1024}, {2048, 2048, 2048}, {1024, 2048, 512}};
    double best = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        double g = sgemm_gflops(be, sizes[i][0], sizes[i][1], sizes[i][2]);
        if (g > best) best = g;
    }
    if (best <= 0) return err_set(err, "sgemm peak measurement failed (out of memory?)");
    *gflops = best;
    return 0;
}

int bench_train(const Backend *be, const char *shape, int factorized, int batch, int steps,
                double peak_gflops, BenchResult *out, Err *err) {
    return bench_train_optim(be, shape, factorized, batch, steps, peak_gflops, "adamw", out, err);
}

int bench_train_optim(const Backend *be, const char *shape, int factorized, int batch, int steps,
                      double peak_gflops, const char *optim, BenchResult *out, Err *err) {
    OptimConfig oc;
    if (optim_config_default(&oc, optim, err)) return -1;
    ModelConfig cfg;
    if (model_config_preset(&cfg, shape, err)) return -1;
    cfg.vocab = 8192;
    cfg.rank = factorized ? cfg.dim / 4 : 0;
    Model m;
    if (model_build(&m, &cfg, be, err)) return -1;
    Trainer tr;
    if (trainer_build(&tr, &m, &oc, 1, err)) { model_free(&m); return -1; }
    // random tokens: throughput does not depend on the text
    long n_tok = (long)batch * (cfg.seq + 1) * 16;
    uint16_t *store = malloc(sizeof(uint16_t) * n_tok);
    uint64_t s = 5;
    for (long i = 0; i < n_tok; i++) store[i] = (uint16_t)(rng_next(&s) % 8192);
    Dataset ds = {.vocab_size = 8192, .token_bytes = 2, .n_tokens = n_tok, .n_train = n_tok, .tokens = store};
    StepStats st;
    int rc = trainer_step(&tr, &ds, batch, cfg.seq, 1, &st, err);   // warm-up: allocations, caches
    double t0 = clock_seconds(), optim_share = 0;
    for (int i = 0; i < steps && rc == 0; i++) {
        rc = trainer_step(&tr, &ds, batch, cfg.seq, 1, &st, err);
        optim_share += st.optim_fraction;
    }
    double seconds = clock_seconds() - t0;
    if (rc == 0) {
        ModelCounts k = model_counts(&m, batch, cfg.seq);
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        memset(out, 0, sizeof *out);
        snprintf(out->shape, sizeof out->shape, "%s", shape);
        snprintf(out->model, sizeof out->model, "%s", factorized ? "factorized" : "dense");
        snprintf(out->kernel, sizeof out->kernel, "%s", be->describe());
        out->batch = batch;
        out->seq = cfg.seq;
        out->steps = steps;
        out->threads = omp_get_max_threads();
        out->tok_per_s = (double)batch * cfg.seq * steps / seconds;
        out->gflops = out->tok_per_s * k.train_flops_per_token / 1e9;
        out->peak_gflops = peak_gflops;
        out->mfu = peak_gflops > 0 ? out->gflops / peak_gflops : 0;
        out->peak_rss = (size_t)ru.ru_maxrss * 1024;
        snprintf(out->optim, sizeof out->optim, "%s", optim);
        out->optim_fraction = steps > 0 ? optim_share / steps : 0;
    }
    free(store);
    trainer_free(&tr);
    model_free(&m);
    return rc;
}

// ---------------------------------------------------------------------------------------------
// decode throughput

#include "generate.h"

int bench_generate(const Backend *be, const ModelConfig *cfg, int factorized, int n_tokens, GenerateBench *out,
                   Err *err) {
    ModelConfig c = *cfg;
    c.rank = factorized ? (cfg->rank > 0 ? cfg->rank : cfg->dim / 4) : 0;
    Model m;
    if (model_build(&m, &c, be, err)) return -1;
    Generator g;
    if (generator_build(&g, &m, err)) { model_free(&m); return -1; }
    int prompt_len = c.seq > 32 ? 16 : c.seq / 2 > 0 ? c.seq / 2 : 1;
    if (n_tokens > c.seq - prompt_len) n_tokens = c.seq - prompt_len;   // no window slide inside the timing
    if (n_tokens < 1) n_tokens = 1;
    int32_t *prompt = malloc(sizeof(int32_t) * prompt_len);
    uint64_t s = 7;
    for (int i = 0; i < prompt_len; i++) prompt[i] = (int32_t)(rng_next(&s) % (uint64_t)c.vocab);
    SamplerConfig greedy = {.temperature = 0, .top_k = 0, .top_p = 1};
    double decode_s = 0, prefill_s = 0;
    long decoded = 0, prefilled = 0;
    int rc = 0;
    for (int round = 0; rc == 0 && (round < 2 || decode_s < 1.0); round++) {   // round 0 warms up
        generator_reset(&g);
        double t0 = clock_seconds();
        rc = generator_feed(&g, prompt, prompt_len, err);
        double t1 = clock_seconds();
        for (int i = 0; rc == 0 && i < n_tokens; i++) {
            int32_t next = sampler_sample(&greedy, &g, &s);
            rc = generator_feed(&g, &next, 1, err);
        }
        double t2 = clock_seconds();
        if (round > 0) {
            prefill_s += t1 - t0;
            prefilled += prompt_len;
            decode_s += t2 - t1;
            decoded += n_tokens;
        }
    }
    if (rc == 0) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        memset(out, 0, sizeof *out);
        snprintf(out->model, sizeof out->model, "%s", factorized ? "factorized" : "dense");
        snprintf(out->kernel, sizeof out->kernel, "%s", be->describe());
        out->rank = c.rank;
        out->threads = omp_get_max_threads();
        out->prompt = prompt_len;
        out->n_tokens = n_tokens;
        out->tok_per_s = decoded / decode_s;
        out->prefill_tok_per_s = prefilled / prefill_s;
        out->peak_rss = (size_t)ru.ru_maxrss * 1024;
    }
    free(prompt);
    generator_free(&g);
    model_free(&m);
    return rc;
}
