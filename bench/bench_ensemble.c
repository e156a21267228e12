// bench_ensemble — what coupling costs: mean ensemble step time for K members of the `tiny`
// shape (factorized at rank dim/4, vocab 8192, batch 4) trained independently, with WASH
// (p = 0.05 and 0.5, opt_state on) and with PAPA (α = 0.1 every step), the share of the step
// spent mixing (host shuffle / pull, see engine/ensemble.h), and the values communicated per
// step. Usage: bench_ensemble [steps] [K] [shape]
#include <stdio.h>
#include <stdlib.h>
#include "../engine/ensemble.h"
#include "../engine/rng.h"
#include "../kernels/cpu/blas_check.h"

int main(int argc, char **argv) {
    cpu_blas_ensure_core(argc, argv);
    const Backend *be = backend_cpu(0);
    int steps = argc > 1 ? atoi(argv[1]) : 5, k = argc > 2 ? atoi(argv[2]) : 4, batch = 4;
    const char *shape = argc > 3 ? argv[3] : "tiny";
    if (k < 1 || k > ENSEMBLE_MAX_K || steps < 1) { fprintf(stderr, "bench: K in [1, %d], steps ≥ 1\n", ENSEMBLE_MAX_K); return 1; }
    Err err;
    ModelConfig cfg;
    if (model_config_preset(&cfg, shape, &err)) { fprintf(stderr, "bench: %s\n", err.msg); return 1; }
    cfg.vocab = 8192;
    cfg.rank = cfg.dim / 4;
    long n_tok = (long)batch * (cfg.seq + 1) * 64;
    uint16_t *store = malloc(sizeof(uint16_t) * n_tok);
    uint64_t s = 5;
    for (long i = 0; i < n_tok; i++) store[i] = (uint16_t)(rng_next(&s) % 8192);
    Dataset ds = {.vocab_size = 8192, .token_bytes = 2, .n_tokens = n_tok, .n_train = n_tok * 9 / 10, .tokens = store};
    OptimConfig oc;
    optim_config_default(&oc, "adamw", &err);
    uint64_t seeds[ENSEMBLE_MAX_K];
    for (int i = 0; i < k; i++) seeds[i] = 100 + i;
    EnsembleSpec sp = {.k = k, .init_seeds = seeds, .data_seeds = seeds, .mix_seed = 1};
    struct { const char *name; EnsembleMethod m; float p, alpha; } rows[] = {
        {"independent", ENSEMBLE_INDEPENDENT, 0, 0}, {"wash p=0.05", ENSEMBLE_WASH, 0.05f, 0},
        {"wash p=0.5", ENSEMBLE_WASH, 0.5f, 0}, {"papa a=0.1", ENSEMBLE_PAPA, 0, 0.1f}};
    printf("ensemble: %s shape, rank %d, K=%d, batch %d × %d, %d steps, %s\n", shape, cfg.rank, k, batch, cfg.seq, steps,
           be->describe());
    printf("%-12s %10s %10s %7s %14s\n", "coupling", "step ms", "mix ms", "mix %", "values/step");
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        Ensemble e;
        if (ensemble_build(&e, &cfg, be, &oc, &sp, &err)) { fprintf(stderr, "bench: %s\n", err.msg); return 1; }
        EnsembleCoupling c = ensemble_coupling_default();
        c.method = rows[r].m;
        c.p = rows[r].p;
        c.alpha = rows[r].alpha;
        ensemble_set_coupling(&e, &c, &err);
        EnsembleStepStats st;
        double total = 0, mix = 0, values = 0;
        int rc = ensemble_step(&e, &ds, batch, cfg.seq, 1, &st, &err);   // warm-up
        for (int i = 0; i < steps && rc == 0; i++) {
            rc = ensemble_step(&e, &ds, batch, cfg.seq, 1, &st, &err);
            total += st.seconds;
            mix += st.mix_seconds;
            values += (double)st.exchanged;
        }
        if (rc) { fprintf(stderr, "bench: %s\n", err.msg); return 1; }
        printf("%-12s %10.2f %10.2f %6.1f%% %14.0f\n", rows[r].name, 1e3 * total / steps, 1e3 * mix / steps,
               100 * mix / total, values / steps);
        ensemble_free(&e);
    }
    free(store);
    return 0;
}
