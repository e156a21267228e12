// bench.h — training throughput against the machine's measured sgemm peak (MFU).
#pragma once
#include <stddef.h>
#include "err.h"
#include "progress.h"
#include "../kernels/kernels.h"
#include "../kernels/profile.h"
#include "model.h"
#include "optim.h"

typedef struct BenchResult {
    char shape[16];        // preset name: "small", "base", ...
    char model[16];        // "dense" or "factorized"
    int batch, seq, steps, threads;
    double tok_per_s;      // training tokens per second (forward + backward + AdamW)
    double gflops;         // achieved: tok_per_s · train FLOPs per token
    double peak_gflops;    // measured sgemm peak at the same thread count
    double mfu;            // gflops / peak_gflops
    size_t peak_rss;       // bytes, process high-water mark after the run (all models built)
    size_t model_rss;      // bytes of resident memory this model's build and first step added
    char kernel[160];      // backend description (which BLAS core runs)
    char optim[16];        // the optimizer timed ("adamw" for bench_train)
    double optim_fraction; // mean share of a step's wall time spent in the optimizer update
    int profiled;          // profile holds one more step, every Backend call timed (bench_train's profile)
    Profile profile;       // phases "forward+backward" and "optimizer"
} BenchResult;

// The best sgemm GFLOP/s over a few square and training-shaped sizes on backend `be`.
int bench_sgemm_peak(const Backend *be, double *gflops, Err *err);
enum { BENCH_MAX_ROUNDS = 64 };

// The median of v[0..n) (n ≥ 1); v is sorted in place.
double bench_median(double *v, int n);

// Train the dense (out[0]) and factorized (out[1], rank dim/4) models of preset `shape` with
// vocab 8192 on random tokens — those with want[f] set — with optimizer `optim` at its defaults:
// one warm-up step each, then `rounds` (≤ BENCH_MAX_ROUNDS) rounds of `steps` steps, the models
// in alternation so that both meet the same machine (on a shared machine its speed drifts over
// seconds). A model's tok/s is from its median round. peak_gflops is from bench_sgemm_peak.
// progress (may be NULL) hears of each round and may stop the run. With profile set, each model
// then takes one more step (forward+backward and the optimizer update; no clipping) with every
// Backend call timed into out[f].profile (kernels/profile.h).
int bench_train(const Backend *be, const char *shape, const int want[2], int batch, int steps, int rounds,
                double peak_gflops, const char *optim, int profile, BenchResult out[2], ProgressFn progress,
                void *ctx, Err *err);
// The same profiled step on any built model and optimizer, into p: B×T random tokens.
int bench_profile_step(Model *m, Optimizer *opt, int B, int T, Profile *p, Err *err);

// Batch-1 decode throughput: tokens/s of one-token-at-a-time generation with a KV cache.
typedef struct GenerateBench {
    char model[16];          // "dense" or "factorized"
    int rank;                // factor rank (0: dense)
    int threads, prompt, n_tokens;
    double tok_per_s;        // decode: each token fed alone, greedy sampling included
    double prefill_tok_per_s; // the prompt as one batched pass
    size_t peak_rss;         // bytes, process high-water mark after the run (all models built)
    size_t model_rss;        // bytes of resident memory the model and its KV cache added
    char kernel[160];        // backend description
    char decode_path[32];    // generator_decode_path after the timed rounds: "graph", "direct", ...
    int profiled;            // profile holds one more round, every Backend call timed (profile set)
    Profile profile;         // phases "prefill" and "decode"
} GenerateBench;

// Batch-1 decode of cfg with random weights, dense (out[0]) and factorized (out[1], at cfg->rank
// when > 0 else dim/4) — those with want[f] set: prefill a 16-token prompt, then decode n_tokens
// (capped so the window never slides) one at a time; a warm-up round, then `rounds` rounds with
// the models in alternation; tok/s from each model's median round. progress may stop it. With
// profile set, each model then runs one more round with every Backend call timed (profile.h).
int bench_generate(const Backend *be, const ModelConfig *cfg, const int want[2], int n_tokens, int rounds,
                   int profile, GenerateBench out[2], ProgressFn progress, void *ctx, Err *err);
