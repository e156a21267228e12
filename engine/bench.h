// bench.h — training throughput against the machine's measured sgemm peak (MFU).
#pragma once
#include <stddef.h>
#include "err.h"
#include "../kernels/kernels.h"

typedef struct BenchResult {
    char shape[16];        // preset name: "small", "base", ...
    char model[16];        // "dense" or "factorized"
    int batch, seq, steps, threads;
    double tok_per_s;      // training tokens per second (forward + backward + AdamW)
    double gflops;         // achieved: tok_per_s · train FLOPs per token
    double peak_gflops;    // measured sgemm peak at the same thread count
    double mfu;            // gflops / peak_gflops
    size_t peak_rss;       // bytes, process high-water mark after the run
    char kernel[160];      // backend description (which BLAS core runs)
    char optim[16];        // the optimizer timed ("adamw" for bench_train)
    double optim_fraction; // mean share of a step's wall time spent in the optimizer update
} BenchResult;

// The best sgemm GFLOP/s over a few square and training-shaped sizes on backend `be`.
int bench_sgemm_peak(const Backend *be, double *gflops, Err *err);
// Train `steps` AdamW steps (after one warm-up step) of preset `shape` on random tokens with
// vocab 8192, dense (factorized = 0) or factorized at rank dim/4; peak is from bench_sgemm_peak.
int bench_train(const Backend *be, const char *shape, int factorized, int batch, int steps,
                double peak_gflops, BenchResult *out, Err *err);
// The same with optimizer `optim` (one of optim_names, at its defaults, no diagnostics).
int bench_train_optim(const Backend *be, const char *shape, int factorized, int batch, int steps,
                      double peak_gflops, const char *optim, BenchResult *out, Err *err);

#include "model.h"

// Batch-1 decode throughput: tokens/s of one-token-at-a-time generation with a KV cache.
typedef struct GenerateBench {
    char model[16];          // "dense" or "factorized"
    int rank;                // factor rank (0: dense)
    int threads, prompt, n_tokens;
    double tok_per_s;        // decode: each token fed alone, greedy sampling included
    double prefill_tok_per_s; // the prompt as one batched pass
    size_t peak_rss;         // bytes, process high-water mark after the run
    char kernel[160];        // backend description
} GenerateBench;

// Build cfg with random weights (dense, or factorized at cfg->rank when > 0 else dim/4), prefill
// a 16-token prompt, then decode n_tokens (capped so the window never slides) one at a time,
// repeated until about a second of decoding has been timed.
int bench_generate(const Backend *be, const ModelConfig *cfg, int factorized, int n_tokens, GenerateBench *out,
                   Err *err);
