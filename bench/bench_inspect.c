// bench_inspect — what the inspection calls cost next to one training step, for the small and
// base shapes factorized at rank dim/4 (batch 4, full context, AdamW), so the shell can pick a
// `watch every=` interval that keeps watching under 10% of step time:
//   interval ≥ cost / (0.10 · step).
// Usage: bench_inspect [shape…]
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "../engine/clock.h"
#include "../engine/inspect.h"
#include "../engine/align.h"
#include "../engine/train.h"
#include "../engine/rng.h"
#include "../kernels/cpu/blas_check.h"

typedef struct Setup {
    Model m;
    Trainer tr;
    Dataset ds;
    uint16_t *store;
    int B, T;
} Setup;

static int setup(Setup *s, const Backend *be, const char *shape, Err *err) {
    ModelConfig cfg;
    OptimConfig oc;
    if (model_config_preset(&cfg, shape, err)) return -1;
    cfg.rank = cfg.dim / 4;
    if (model_build(&s->m, &cfg, be, err)) return -1;
    optim_config_default(&oc, "adamw", err);
    if (trainer_build(&s->tr, &s->m, &oc, 1, err)) return -1;
    s->B = 4;
    s->T = cfg.seq;
    long n = (long)s->B * (s->T + 1) * 64;
    s->store = malloc(sizeof(uint16_t) * n);
    uint64_t r = 5;
    for (long i = 0; i < n; i++) s->store[i] = (uint16_t)(rng_next(&r) % (uint64_t)cfg.vocab);
    s->ds = (Dataset){.vocab_size = cfg.vocab, .token_bytes = 2, .n_tokens = n, .n_train = n, .tokens = s->store};
    return 0;
}

static void teardown(Setup *s) {
    trainer_free(&s->tr);
    model_free(&s->m);
    free(s->store);
}

static void row(const char *what, double seconds, double step) {
    double every = seconds / (0.10 * step);
    printf("  %-36s %9.2f ms  %7.2f%% of a step   watch every >= %.1f steps for <= 10%%\n", what, 1e3 * seconds,
           100 * seconds / step, every < 1 ? 1 : every);
}

// One inspection call to time; returns 0 or −1 with err.
typedef struct Probe {
    const char *what;
    int kind;                // see run_probe
    NormsOptions opt;
    const char *param;
} Probe;

static int run_probe(Setup *s, const Probe *p, Err *err) {
    NormRow *rows;
    int n, rc = 0;
    SpectrumResult r;
    SpectrumHistory h = {0};
    AlignConfig ac;
    AlignResult ar;
    switch (p->kind) {
    case 0:
        if ((rc = inspect_norms_opts(&s->m, &p->opt, &rows, &n, err)) == 0) free(rows);
        return rc;
    case 1:
        if ((rc = inspect_spectrum(&s->m, p->param, &r, err)) == 0) spectrum_result_free(&r);
        return rc;
    case 2:
        rc = spectrum_history_record_all(&h, &s->m, 1, err);
        spectrum_history_free(&h);
        return rc;
    default:
        align_config_default(&ac, "microbatch", err);
        ac.B = s->B;
        ac.T = s->T;
        if ((rc = align_run(&s->m, &s->ds, &ac, NULL, &ar, err)) == 0) align_result_free(&ar);
        return rc;
    }
}

// The fastest of reps runs: the machine is shared, and the best run is the call's own cost.
static int best_of(Setup *s, const Probe *p, int reps, double *seconds, Err *err) {
    *seconds = 1e30;
    for (int i = 0; i < reps; i++) {
        double t0 = clock_seconds();
        if (run_probe(s, p, err)) return -1;
        double t = clock_seconds() - t0;
        if (t < *seconds) *seconds = t;
    }
    return 0;
}

static int bench_shape(const Backend *be, const char *shape, Err *err) {
    Setup s;
    StepStats st;
    if (setup(&s, be, shape, err)) return -1;
    if (trainer_step(&s.tr, &s.ds, s.B, s.T, 1, &st, err)) return -1;   // warm-up
    int steps = shape[0] == 'b' ? 3 : 5, reps = shape[0] == 'b' ? 3 : 5;
    double step = 1e30;
    for (int i = 0; i < steps; i++) {
        double t0 = clock_seconds();
        if (trainer_step(&s.tr, &s.ds, s.B, s.T, 1, &st, err)) return -1;
        if (clock_seconds() - t0 < step) step = clock_seconds() - t0;
    }
    int nm = inspect_matrices(&s.m, 0, NULL, 0);
    printf("%s (dim %d, %d layers, rank %d, batch %dx%d, %d block matrices): one AdamW step %.1f ms (best of %d)\n",
           shape, s.m.cfg.dim, s.m.cfg.layers, s.m.cfg.dim / 4, s.B, s.T, nm, 1e3 * step, steps);

    // a snapshot before the step + norms with the update after it: `watch` of update norms
    float *prev;
    double t0 = clock_seconds();
    if (inspect_snapshot(&s.m, s.m.params, &prev, err)) return -1;
    row("snapshot of the parameters", clock_seconds() - t0, step);
    if (trainer_step(&s.tr, &s.ds, s.B, s.T, 1, &st, err)) return -1;
    Probe probes[] = {
        {"norms: spectral, Frobenius", 0, {0}, NULL},
        {"norms + update norm", 0, {.prev = prev, .lr = st.lr}, NULL},
        {"norms + update, with embed, head", 0, {.prev = prev, .lr = st.lr, .include_io = 1}, NULL},
        {"spectrum blocks.0.mlp.w1", 1, {0}, "blocks.0.mlp.w1"},
        {"spectra of all block matrices", 2, {0}, NULL},
        {"spectrum head (dense vocab x dim)", 1, {0}, "head"},
        {"align microbatch (2 gradients)", 3, {0}, NULL},
    };
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        double sec;
        if (best_of(&s, &probes[i], probes[i].kind == 3 ? 1 : reps, &sec, err)) return -1;
        row(probes[i].what, sec, step);
        fflush(stdout);
    }
    s.m.be->release(prev);
    teardown(&s);
    return 0;
}

int main(int argc, char **argv) {
    cpu_blas_ensure_core(argc, argv);
    const Backend *be = backend_cpu(0);
    const char *default_shapes[] = {"small", "base"};
    const char **shapes = argc > 1 ? (const char **)argv + 1 : default_shapes;
    int n_shapes = argc > 1 ? argc - 1 : 2;
    Err err;
    printf("bench inspect — %s\n", be->describe());
    for (int i = 0; i < n_shapes; i++) {
        if (bench_shape(be, shapes[i], &err)) {
            fprintf(stderr, "bench: %s\n", err.msg);
            return 1;
        }
        fflush(stdout);
    }
    return 0;
}
