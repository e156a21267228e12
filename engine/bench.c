// bench.c — training throughput and MFU against the machine's measured sgemm peak.
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include "clock.h"
#include <sys/resource.h>
#include <unistd.h>
#include <omp.h>
#include "bench.h"
#include "model.h"
#include "model_internal.h"   // activations_ensure: a batch too big refused first
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

// Resident memory now, in bytes (the high-water mark of getrusage cannot be split by model).
static size_t rss_now(void) {
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f && fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    if (f) fclose(f);
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

// What resident memory grew by since `before` (0 if it shrank).
static size_t rss_growth(size_t before) {
    size_t now = rss_now();
    return now > before ? now - before : 0;
}

// The seconds of each timed round of one model; its median is what the benchmark reports.
typedef struct RoundTimes {
    double seconds[BENCH_MAX_ROUNDS];
    int n;
} RoundTimes;

static void round_add(RoundTimes *r, double seconds) {
    if (r->n < BENCH_MAX_ROUNDS) r->seconds[r->n++] = seconds;
}

double bench_median(double *v, int n) {
    for (int i = 1; i < n; i++)   // insertion sort: a few dozen values at most
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) { double t = v[j]; v[j] = v[j - 1]; v[j - 1] = t; }
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double round_median(const RoundTimes *r) {
    double s[BENCH_MAX_ROUNDS];
    memcpy(s, r->seconds, sizeof(double) * r->n);
    return bench_median(s, r->n);
}

// One model under training on random tokens: throughput does not depend on the text.
typedef struct TrainRun {
    Model m;
    Trainer tr;
    uint16_t *store;
    Dataset ds;
    BenchResult *out;
    RoundTimes rounds;
    double optim_share;   // summed over every timed step
} TrainRun;

static int train_run_build(TrainRun *r, const Backend *be, const char *shape, int factorized, int batch,
                           const char *optim, Err *err) {
    OptimConfig oc;
    ModelConfig cfg;
    if (optim_config_default(&oc, optim, err) || model_config_preset(&cfg, shape, err)) return -1;
    cfg.vocab = 8192;
    cfg.rank = factorized ? cfg.dim / 4 : 0;
    size_t rss0 = rss_now();
    if (model_build(&r->m, &cfg, be, err) || trainer_build(&r->tr, &r->m, &oc, 1, err)) return -1;
    // The activations first: a batch too big for memory is refused in one line before its
    // 16 batches of tokens are drawn (as big again, on the host).
    if (activations_ensure(&r->m, batch, cfg.seq, err)) return -1;
    long n_tok = (long)batch * (cfg.seq + 1) * 16;
    r->store = malloc(sizeof(uint16_t) * n_tok);
    if (!r->store) return err_set(err, "out of memory for bench train's %ld tokens (batch=%d)", n_tok, batch);
    uint64_t s = 5;
    for (long i = 0; i < n_tok; i++) r->store[i] = (uint16_t)(rng_next(&s) % 8192);
    r->ds = (Dataset){.vocab_size = 8192, .token_bytes = 2, .n_tokens = n_tok, .n_train = n_tok, .tokens = r->store};
    StepStats st;
    if (trainer_step(&r->tr, &r->ds, batch, cfg.seq, 1, &st, err)) return -1;   // warm-up: allocations, caches
    memset(r->out, 0, sizeof *r->out);
    r->out->model_rss = rss_growth(rss0);
    return 0;
}

static void train_run_free(TrainRun *r) {
    free(r->store);
    trainer_free(&r->tr);   // both are no-ops on a zeroed struct
    model_free(&r->m);
}

// One round of steps; progress(ctx, at, total) after each (a round of a big shape is many
// seconds: a stop waited for its end), at counting rounds.
static int train_run_round(TrainRun *r, int batch, int steps, ProgressFn progress, void *ctx, double at, int rounds,
                           Err *err) {
    StepStats st;
    double share = 0, t0 = clock_seconds();
    for (int i = 0; i < steps; i++) {
        if (trainer_step(&r->tr, &r->ds, batch, r->m.cfg.seq, 1, &st, err)) return -1;
        share += st.optim_fraction;
        if (progress && progress(ctx, at + 0.5 * (i + 1) / steps, rounds)) return err_set(err, "bench train interrupted");
    }
    double seconds = clock_seconds() - t0;
    round_add(&r->rounds, seconds);
    r->optim_share += share;
    return 0;
}

static void train_run_result(TrainRun *r, const char *shape, int batch, int steps, double peak, const char *optim,
                             const Backend *be) {
    BenchResult *out = r->out;
    ModelCounts k = model_counts(&r->m, batch, r->m.cfg.seq);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    snprintf(out->shape, sizeof out->shape, "%s", shape);
    snprintf(out->model, sizeof out->model, "%s", r->m.cfg.rank ? "factorized" : "dense");
    snprintf(out->kernel, sizeof out->kernel, "%s", be->describe());
    snprintf(out->optim, sizeof out->optim, "%s", optim);
    out->batch = batch;
    out->seq = r->m.cfg.seq;
    out->steps = steps;
    out->threads = omp_get_max_threads();
    out->tok_per_s = (double)batch * r->m.cfg.seq * steps / round_median(&r->rounds);
    out->gflops = out->tok_per_s * k.train_flops_per_token / 1e9;
    out->peak_gflops = peak;
    out->mfu = peak > 0 ? out->gflops / peak : 0;
    out->peak_rss = (size_t)ru.ru_maxrss * 1024;
    out->optim_fraction = r->optim_share / ((double)steps * r->rounds.n);
}

// Random tokens in [0, vocab) for B sequences of T + 1.
static int32_t *random_tokens(int B, int T, int vocab, uint64_t seed) {
    int32_t *t = malloc(sizeof(int32_t) * (size_t)B * (T + 1));
    for (long i = 0; t && i < (long)B * (T + 1); i++) t[i] = (int32_t)(rng_next(&seed) % (uint64_t)vocab);
    return t;
}

int bench_profile_step(Model *m, Optimizer *opt, int B, int T, Profile *p, Err *err) {
    int32_t *tokens = random_tokens(B, T, m->cfg.vocab, 17);
    if (!tokens) return err_set(err, "out of memory for %d×%d tokens", B, T + 1);
    const Backend *be = m->be;
    m->be = profile_begin(p, be);   // the model's buffers are be's: the profiled table shares them
    profile_phase("forward+backward");
    model_zero_grad(m);
    float loss;
    int rc = model_forward_backward(m, tokens, B, T, 1.0f, &loss, err);
    profile_phase("optimizer");
    if (rc == 0) rc = optimizer_step(opt, m, optimizer_lr(&opt->cfg, opt->t), optimizer_io_lr(&opt->cfg, opt->t), 1.0f, NULL, err);   // no diagnostics
    profile_end();
    m->be = be;
    free(tokens);
    return rc;
}

int bench_train(const Backend *be, const char *shape, const int want[2], int batch, int steps, int rounds,
                double peak_gflops, const char *optim, int profile, BenchResult out[2], ProgressFn progress,
                void *ctx, Err *err) {
    if (rounds < 1 || rounds > BENCH_MAX_ROUNDS) return err_set(err, "rounds=%d: 1 to %d", rounds, BENCH_MAX_ROUNDS);
    TrainRun runs[2];
    memset(runs, 0, sizeof runs);
    int rc = 0;
    for (int f = 0; f < 2 && rc == 0; f++) {
        runs[f].out = &out[f];
        if (want[f]) rc = train_run_build(&runs[f], be, shape, f, batch, optim, err);
    }
    for (int round = 0; round < rounds && rc == 0; round++) {
        for (int f = 0; f < 2 && rc == 0; f++)   // each model half a round
            if (want[f]) rc = train_run_round(&runs[f], batch, steps, progress, ctx, round + 0.5 * f, rounds, err);
        if (rc == 0 && progress && progress(ctx, round + 1, rounds)) rc = err_set(err, "bench train interrupted");
    }
    for (int f = 0; f < 2; f++) {
        if (rc == 0 && want[f]) train_run_result(&runs[f], shape, batch, steps, peak_gflops, optim, be);
        if (rc == 0 && want[f] && profile) {
            rc = bench_profile_step(&runs[f].m, &runs[f].tr.opt, batch, runs[f].m.cfg.seq, &out[f].profile, err);
            out[f].profiled = rc == 0;
        }
        train_run_free(&runs[f]);
    }
    return rc;
}

// ---------------------------------------------------------------------------------------------
// decode throughput

#include "generate.h"

// One model decoding: the generator, the prompt, and its round times.
typedef struct DecodeRun {
    Model m;
    Generator g;
    int32_t *prompt;
    int prompt_len, n_tokens;
    size_t rss;
    RoundTimes decode, prefill;
} DecodeRun;

static int decode_run_build(DecodeRun *r, const Backend *be, const ModelConfig *cfg, int factorized, int n_tokens,
                            Err *err) {
    ModelConfig c = *cfg;
    c.rank = factorized ? (cfg->rank > 0 ? cfg->rank : cfg->dim / 4) : 0;
    size_t rss0 = rss_now();
    if (model_build(&r->m, &c, be, err) || generator_build(&r->g, &r->m, err)) return -1;
    r->prompt_len = c.seq > 32 ? 16 : c.seq / 2 > 0 ? c.seq / 2 : 1;
    if (n_tokens > c.seq - r->prompt_len) n_tokens = c.seq - r->prompt_len;   // no window slide inside the timing
    r->n_tokens = n_tokens < 1 ? 1 : n_tokens;
    r->prompt = malloc(sizeof(int32_t) * r->prompt_len);
    if (!r->prompt) return err_set(err, "out of memory for bench generate's prompt");
    uint64_t s = 7;
    for (int i = 0; i < r->prompt_len; i++) r->prompt[i] = (int32_t)(rng_next(&s) % (uint64_t)c.vocab);
    r->rss = rss_growth(rss0);
    return 0;
}

static void decode_run_free(DecodeRun *r) {
    free(r->prompt);
    if (r->g.model) generator_free(&r->g);
    model_free(&r->m);
}

// Prefill the prompt, then decode n_tokens greedily one at a time; `timed` records the times;
// the phases are named for a profile (profile_phase: a no-op when none is running).
static int decode_run_round(DecodeRun *r, int timed, Err *err) {
    SamplerConfig greedy = {.temperature = 0, .top_k = 0, .top_p = 1};
    uint64_t s = 7;
    profile_phase("reset");   // the generator packs the factorized model's B factors again
    generator_reset(&r->g);
    double t0 = clock_seconds();
    profile_phase("prefill");
    if (generator_feed(&r->g, r->prompt, r->prompt_len, err)) return -1;
    double t1 = clock_seconds();
    profile_phase("decode");
    for (int i = 0; i < r->n_tokens; i++) {
        int32_t next = sampler_sample(&greedy, &r->g, &s);
        if (generator_feed(&r->g, &next, 1, err)) return -1;
    }
    double t2 = clock_seconds();
    if (timed) {
        round_add(&r->decode, t2 - t1);
        round_add(&r->prefill, t1 - t0);
    }
    return 0;
}

static void decode_run_result(const DecodeRun *r, const Backend *be, GenerateBench *out) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    memset(out, 0, sizeof *out);
    snprintf(out->model, sizeof out->model, "%s", r->m.cfg.rank ? "factorized" : "dense");
    snprintf(out->kernel, sizeof out->kernel, "%s", be->describe());
    out->rank = r->m.cfg.rank;
    out->threads = generate_decode_threads(be);   // a decoded token's (the prompt takes every thread)
    out->prompt = r->prompt_len;
    out->n_tokens = r->n_tokens;
    out->tok_per_s = r->n_tokens / round_median(&r->decode);
    out->prefill_tok_per_s = r->prompt_len / round_median(&r->prefill);
    out->peak_rss = (size_t)ru.ru_maxrss * 1024;
    out->model_rss = r->rss;
    snprintf(out->decode_path, sizeof out->decode_path, "%s", generator_decode_path(&r->g));
}

// One more round of r with every Backend call timed into p (the generator computes through its
// model's table, which the profiled one stands in for meanwhile).
static int decode_run_profile(DecodeRun *r, Profile *p, Err *err) {
    const Backend *be = r->m.be;
    r->m.be = profile_begin(p, be);
    int rc = decode_run_round(r, 0, err);
    profile_end();
    r->m.be = be;
    return rc;
}

int bench_generate(const Backend *be, const ModelConfig *cfg, const int want[2], int n_tokens, int rounds,
                   int profile, GenerateBench out[2], ProgressFn progress, void *ctx, Err *err) {
    if (rounds < 1 || rounds > BENCH_MAX_ROUNDS) return err_set(err, "rounds=%d: 1 to %d", rounds, BENCH_MAX_ROUNDS);
    DecodeRun runs[2];
    memset(runs, 0, sizeof runs);
    int rc = 0;
    for (int f = 0; f < 2 && rc == 0; f++)
        if (want[f]) rc = decode_run_build(&runs[f], be, cfg, f, n_tokens, err);
    for (int round = 0; round <= rounds && rc == 0; round++) {   // round 0 warms up
        for (int f = 0; f < 2 && rc == 0; f++)
            if (want[f]) rc = decode_run_round(&runs[f], round > 0, err);
        if (rc == 0 && progress && progress(ctx, round, rounds)) rc = err_set(err, "bench generate interrupted");
    }
    for (int f = 0; f < 2; f++) {
        if (rc == 0 && want[f]) decode_run_result(&runs[f], be, &out[f]);
        if (rc == 0 && want[f] && profile) {
            rc = decode_run_profile(&runs[f], &out[f].profile, err);
            out[f].profiled = rc == 0;
        }
        decode_run_free(&runs[f]);
    }
    return rc;
}
