// bench_generate — batch-1 decode tokens/s with the KV cache: llama2.c's stories15M shape
// (dense; bench/llama2c/compare.sh measures llama2.c's OpenMP build on this machine beside it:
// docs/benchmarks.md) and the base preset dense vs factorized at rank dim/4.
// Usage: bench_generate [n_tokens] [stories15M|base] [rounds]
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "../engine/bench.h"
#include "../engine/model.h"
#include "../kernels/cpu/blas_check.h"
#include <omp.h>

// The comparison for "at least as fast as llama2.c on the same machine": llama2.c's decode
// spends most of each token in a matmul that gives one output row per OpenMP iteration
// (built with -Ofast, so the dot product vectorizes: `omp simd` allows the same here). We time
// only those matmuls over every weight a stories15M token reads — a lower bound on llama2.c's
// time per token on this machine, so its tok/s here is an upper bound on llama2.c's.
static void rowwise_matvec(float *y, const float *x, const float *w, int n, int d) {
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < d; i++) {
        float v = 0.0f;
        #pragma omp simd reduction(+ : v)
        for (int j = 0; j < n; j++) v += w[(long)i * n + j] * x[j];
        y[i] = v;
    }
}

// Tokens/s of those matmuls over every weight of a token, repeated for at least 0.3 s.
static double llama2c_matvec_tok_per_s(const ModelConfig *c) {
    int kvd = c->dim / c->heads * c->kv_heads;
    int shapes[7][2] = {{c->dim, c->dim}, {kvd, c->dim}, {kvd, c->dim}, {c->dim, c->dim},
                        {c->ffn, c->dim}, {c->ffn, c->dim}, {c->dim, c->ffn}};   // (out, in)
    int n_mats = 7 * c->layers + 1;
    float **w = malloc(sizeof(float *) * n_mats);
    int (*shape)[2] = malloc(sizeof(int[2]) * n_mats);
    for (int i = 0; i < n_mats; i++) {
        int out = i < 7 * c->layers ? shapes[i % 7][0] : c->vocab, in = i < 7 * c->layers ? shapes[i % 7][1] : c->dim;
        shape[i][0] = out;
        shape[i][1] = in;
        w[i] = malloc(sizeof(float) * out * in);
        for (long j = 0; j < (long)out * in; j++) w[i][j] = (float)(j % 13) * 0.01f;
    }
    int big = c->vocab > c->ffn ? c->vocab : c->ffn;
    float *x = calloc((size_t)big, sizeof(float)), *y = calloc((size_t)big, sizeof(float));
    int tokens = 0;
    double t0 = omp_get_wtime(), t;
    do {
        for (int i = 0; i < n_mats; i++) rowwise_matvec(y, x, w[i], shape[i][1], shape[i][0]);
        tokens++;
    } while ((t = omp_get_wtime() - t0) < 0.3);
    for (int i = 0; i < n_mats; i++) free(w[i]);
    free(w); free(shape); free(x); free(y);
    return tokens / t;
}


static void row(const char *name, const GenerateBench *r) {
    printf("%-11s %-10s %5d %6d %5d %9.0f %11.0f %7.0f MB\n", name, r->model, r->rank, r->prompt, r->n_tokens,
           r->tok_per_s, r->prefill_tok_per_s, r->model_rss / 1e6);
}

int main(int argc, char **argv) {
    cpu_blas_ensure_core(argc, argv);
    const Backend *be = backend_cpu(0);
    const char *usage = "usage: bench_generate [n_tokens] [stories15M|base] [rounds]   (default 256, both, 5)";
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) return puts(usage), 0;
    int n = argc > 1 ? atoi(argv[1]) : 256, rounds = argc > 3 ? atoi(argv[3]) : 5;
    const char *only = argc > 2 ? argv[2] : "";
    if (strcasecmp(only, "stories15M") == 0) only = "stories15M";   // the shell's `shape=stories15m` too
    if (n < 1 || (only[0] && strcmp(only, "base") != 0 && strcmp(only, "stories15M") != 0)) {
        fprintf(stderr, "bench_generate: expected a token count, then stories15M or base (got '%s'%s%s%s)\n%s\n",
                argv[1], argc > 2 ? ", '" : "", argc > 2 ? argv[2] : "", argc > 2 ? "'" : "", usage);
        return 2;
    }
    Err err;
    GenerateBench r[2];
    printf("bench generate — %s; batch 1, greedy; median of %d rounds, models in alternation\n", be->describe(), rounds);
    printf("%-11s %-10s %5s %6s %5s %9s %11s %10s\n", "shape", "model", "rank", "prompt", "toks", "tok/s",
           "prefill t/s", "model RSS");
    // llama2.c stories15M: dim 288, 6 layers, 6 heads, ffn 768, vocab 32000, seq 256
    ModelConfig s15 = {.dim = 288, .layers = 6, .heads = 6, .kv_heads = 6, .ffn = 768, .seq = 256, .vocab = 32000,
                       .rank = 0, .rank_ratio = 0.25f, .rope_theta = 10000.0f, .norm_eps = 1e-5f, .seed = 1};
    if (strcmp(only, "base") != 0) {
        // lrsh and the matmul bound alternate too, so that both meet the same machine
        static const int dense_only[2] = {1, 0};
        double lrsh[BENCH_MAX_ROUNDS], bound[BENCH_MAX_ROUNDS];
        if (rounds < 1 || rounds > BENCH_MAX_ROUNDS) { fprintf(stderr, "bench: rounds 1 to %d\n", BENCH_MAX_ROUNDS); return 1; }
        for (int i = 0; i < rounds; i++) {
            if (bench_generate(be, &s15, dense_only, n, 1, 0, r, NULL, NULL, &err)) { fprintf(stderr, "bench: %s\n", err.msg); return 1; }
            lrsh[i] = r[0].tok_per_s;
            bound[i] = llama2c_matvec_tok_per_s(&s15);
        }
        r[0].tok_per_s = bench_median(lrsh, rounds);
        row("stories15M", &r[0]);
        double ref = bench_median(bound, rounds);
        printf("   llama2.c's matmuls alone: %.0f tok/s → lrsh/(llama2.c's matmul bound) %.2f×; for llama2.c itself "
               "run bench/llama2c/compare.sh\n", ref, r[0].tok_per_s / ref);
    }
    if (strcmp(only, "stories15M") == 0) return 0;
    ModelConfig base;
    if (model_config_preset(&base, "base", &err)) { fprintf(stderr, "bench: %s\n", err.msg); return 1; }
    base.vocab = 8192;
    static const int both[2] = {1, 1};
    if (bench_generate(be, &base, both, n, rounds, 0, r, NULL, NULL, &err)) { fprintf(stderr, "bench: %s\n", err.msg); return 1; }
    row("base", &r[0]);
    row("base", &r[1]);
    printf("   factorized/dense %.2f× (target ≥ 1.5×)\n", r[1].tok_per_s / r[0].tok_per_s);
    return 0;
}
