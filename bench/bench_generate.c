// bench_generate — batch-1 decode tokens/s with the KV cache: llama2.c's stories15M shape
// (dense; llama2.c's OpenMP build reaches ~675 tok/s on 2 AVX-512 cores) and the base preset
// dense vs factorized at rank dim/4. Usage: bench_generate [n_tokens] [stories15M|base]
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../engine/bench.h"
#include "../engine/model.h"
#include "../kernels/cpu/blas_check.h"

static int row(const Backend *be, const char *name, const ModelConfig *c, int factorized, int n, double *tps) {
    Err err;
    GenerateBench r;
    if (bench_generate(be, c, factorized, n, &r, &err)) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return -1;
    }
    printf("%-11s %-10s %5d %4d %4d %9.0f %11.0f %7.0f MB", name, r.model, r.rank, r.prompt, r.n_tokens, r.tok_per_s,
           r.prefill_tok_per_s, r.peak_rss / 1e6);
    *tps = r.tok_per_s;
    return 0;
}

int main(int argc, char **argv) {
    cpu_blas_ensure_core(argc, argv);
    const Backend *be = backend_cpu(0);
    int n = argc > 1 ? atoi(argv[1]) : 256;
    const char *only = argc > 2 ? argv[2] : "";
    Err err;
    printf("bench generate — %s; batch 1, greedy\n", be->describe());
    printf("%-11s %-10s %5s %4s %4s %9s %11s %10s\n", "shape", "model", "rank", "prompt", "toks", "tok/s",
           "prefill t/s", "peak RSS");
    // llama2.c stories15M: dim 288, 6 layers, 6 heads, ffn 768, vocab 32000, seq 256
    ModelConfig s15 = {.dim = 288, .layers = 6, .heads = 6, .kv_heads = 6, .ffn = 768, .seq = 256, .vocab = 32000,
                       .rank = 0, .rank_ratio = 0.25f, .rope_theta = 10000.0f, .norm_eps = 1e-5f, .seed = 1};
    double tps, dense;
    if (strcmp(only, "base") != 0) {
        if (row(be, "stories15M", &s15, 0, n, &tps)) return 1;
        printf("   target ≥ 675 tok/s (llama2.c, 2 cores): %.2f×\n", tps / 675.0);
    }
    if (strcmp(only, "stories15M") == 0) return 0;
    ModelConfig base;
    if (model_config_preset(&base, "base", &err)) { fprintf(stderr, "bench: %s\n", err.msg); return 1; }
    base.vocab = 8192;
    if (row(be, "base", &base, 0, n, &dense)) return 1;
    printf("\n");
    if (row(be, "base", &base, 1, n, &tps)) return 1;
    printf("   factorized/dense %.2f× (target ≥ 1.5×)\n", tps / dense);
    return 0;
}
