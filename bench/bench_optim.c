// bench_optim — the share of a training step spent in the optimizer update, on the `small`
// shape factorized at rank dim/4 (vocab 8192, batch 4), for AdamW, Muon and Spectron, with and
// without the per-matrix ‖ΔW‖₂/‖W‖₂ diagnostics. Usage: bench_optim [steps] [shape]
// One process, one model, the runs back to back: compare the ratios, not absolute times.
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "../engine/model.h"
#include "../engine/train.h"
#include "../engine/rng.h"
#include "../kernels/cpu/blas_check.h"

typedef struct Row { const char *optim; int diag_every; double step_ms, optim_ms; } Row;

// Mean step and optimizer times over `steps` updates after one warm-up update.
static int run(Model *m, const Dataset *ds, int batch, int steps, Row *row, Err *err) {
    OptimConfig oc;
    Trainer tr;
    if (optim_config_default(&oc, row->optim, err) || trainer_build(&tr, m, &oc, 1, err)) return -1;
    tr.diag_every = row->diag_every;
    StepStats st;
    int rc = trainer_step(&tr, ds, batch, m->cfg.seq, 1, &st, err);
    double total = 0, optim = 0;
    for (int i = 0; i < steps && rc == 0; i++) {
        rc = trainer_step(&tr, ds, batch, m->cfg.seq, 1, &st, err);
        total += st.seconds;
        optim += st.optim_seconds;
    }
    row->step_ms = 1e3 * total / steps;
    row->optim_ms = 1e3 * optim / steps;
    trainer_free(&tr);
    return rc;
}

int main(int argc, char **argv) {
    cpu_blas_ensure_core(argc, argv);
    const Backend *be = backend_cpu(0);
    int steps = argc > 1 ? atoi(argv[1]) : 5, batch = 4;
    const char *shape = argc > 2 ? argv[2] : "small";
    Err err;
    ModelConfig cfg;
    Model m;
    if (model_config_preset(&cfg, shape, &err)) { fprintf(stderr, "bench: %s\n", err.msg); return 1; }
    cfg.vocab = 8192;
    cfg.rank = cfg.dim / 4;
    if (model_build(&m, &cfg, be, &err)) { fprintf(stderr, "bench: %s\n", err.msg); return 1; }
    long n_tok = (long)batch * (cfg.seq + 1) * 16;
    uint16_t *store = malloc(sizeof(uint16_t) * n_tok);
    uint64_t s = 5;
    for (long i = 0; i < n_tok; i++) store[i] = (uint16_t)(rng_next(&s) % 8192);
    Dataset ds = {.vocab_size = 8192, .token_bytes = 2, .n_tokens = n_tok, .n_train = n_tok, .tokens = store};
    Row rows[] = {{"adamw", 0, 0, 0}, {"muon", 0, 0, 0}, {"spectron", 0, 0, 0}, {"spectron", 1, 0, 0}, {"adamw", 1, 0, 0}};
    int n_rows = sizeof rows / sizeof rows[0];
    printf("bench optim — %s; shape %s (dim %d, layers %d, rank %d, vocab 8192), batch %d × seq %d, %d steps each\n",
           be->describe(), shape, cfg.dim, cfg.layers, cfg.rank, batch, cfg.seq, steps);
    printf("%-9s %-12s %9s %10s %7s\n", "optimizer", "diagnostics", "step ms", "optim ms", "share");
    for (int r = 0; r < n_rows; r++) {
        if (run(&m, &ds, batch, steps, &rows[r], &err)) { fprintf(stderr, "bench: %s\n", err.msg); return 1; }
        printf("%-9s %-12s %9.1f %10.2f %6.2f%%\n", rows[r].optim, rows[r].diag_every ? "every step" : "off",
               rows[r].step_ms, rows[r].optim_ms, 100 * rows[r].optim_ms / rows[r].step_ms);
        fflush(stdout);
    }
    // Spectron's own cost over AdamW's, and what the diagnostics add, as shares of one step
    double base = rows[0].step_ms;
    printf("spectron update − adamw update: %.2f%% of a step; ‖ΔW‖₂/‖W‖₂ diagnostics add %.2f%%\n",
           100 * (rows[2].optim_ms - rows[0].optim_ms) / base, 100 * (rows[3].optim_ms - rows[2].optim_ms) / base);
    free(store);
    model_free(&m);
    return 0;
}
