// test_profile.c — kernels/profile.c (the timing Backend) and bench_profile_step: a profiled
// step computes exactly what an unprofiled one does, and its rows count the calls the model
// makes, by phase, with times that add up.
#include "../engine/bench.h"
#include "../engine/optim.h"
#include "test.h"
#include "test_fixtures.h"

enum { B = 2, T = 8, LAYERS = 2 };

static const ProfileRow *row(const Profile *p, const char *phase, const char *op) {
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->rows[i].phase, phase) == 0 && strcmp(p->rows[i].op, op) == 0) return &p->rows[i];
    return NULL;
}

static long calls(const Profile *p, const char *phase, const char *op) {
    const ProfileRow *r = row(p, phase, op);
    return r ? r->calls : 0;
}

// The same forward+backward with and without the profiling table: the same bits.
static void check_transparent(int rank) {
    Err err;
    Model a, b;
    ModelConfig c = micro_config_layers(rank, LAYERS);
    const Backend *cpu = backend_cpu(0);
    CHECK_OK(model_build(&a, &c, cpu, &err));
    CHECK_OK(model_build(&b, &c, cpu, &err));
    int32_t tok[B * (T + 1)];
    random_tokens(tok, B * (T + 1), c.vocab, 3);
    float la = 0, lb = 0;
    model_zero_grad(&a);
    CHECK_OK(model_forward_backward(&a, tok, B, T, 1.0f, &la, &err));
    Profile p;
    b.be = profile_begin(&p, cpu);
    profile_phase("forward+backward");
    model_zero_grad(&b);
    CHECK_OK(model_forward_backward(&b, tok, B, T, 1.0f, &lb, &err));
    profile_end();
    b.be = cpu;
    CHECK(la == lb, "rank %d: profiled loss %.9g differs from %.9g", rank, lb, la);
    CHECK(memcmp(a.grads, b.grads, sizeof(float) * a.n_params) == 0, "rank %d: profiled gradients differ", rank);
    CHECK(calls(&p, "forward+backward", "attention_forward") == LAYERS, "attention_forward calls: %ld, expected %d",
          calls(&p, "forward+backward", "attention_forward"), LAYERS);
    CHECK(calls(&p, "forward+backward", "rmsnorm_forward") == 2 * LAYERS + 1, "rmsnorm_forward calls: %ld, expected %d",
          calls(&p, "forward+backward", "rmsnorm_forward"), 2 * LAYERS + 1);
    CHECK(calls(&p, "forward+backward", "softmax_xent") == 1, "softmax_xent calls: %ld, expected 1",
          calls(&p, "forward+backward", "softmax_xent"));
    model_free(&a);
    model_free(&b);
}

static void test_profiling_changes_nothing(void) {
    check_transparent(0);
    check_transparent(4);
}

// Every entry the inner table has, the timing table has too (a missing wrapper is a NULL that
// the first profiled call through it would jump to); the graph entries are left out on purpose.
// The table's entries are read as pointer-sized slots.
static void test_every_entry_wrapped(void) {
    const Backend *cpu = backend_cpu(0);
    Profile p;
    const Backend *timed = profile_begin(&p, cpu);
    enum { SLOTS = sizeof(Backend) / sizeof(void *) };
    _Static_assert(sizeof(Backend) % sizeof(void *) == 0, "Backend is a table of pointers");
    size_t missing = SLOTS;
    for (size_t i = 0; i < SLOTS && missing == SLOTS; i++) {
        uintptr_t a, b;
        memcpy(&a, (const char *)cpu + i * sizeof(void *), sizeof a);
        memcpy(&b, (const char *)timed + i * sizeof(void *), sizeof b);
        if (a && !b) missing = i;
    }
    profile_end();
    CHECK(missing == SLOTS, "the profiling table lacks entry %zu of Backend (0-based, pointer slots)", missing);
}

// bench_profile_step: both phases, the optimizer's own kernels in its phase, rows sorted, times
// adding up to the total.
static void check_step(const char *optim, int rank, const char *optimizer_op) {
    Err err;
    Model m;
    Optimizer opt;
    OptimConfig oc;
    ModelConfig c = micro_config_layers(rank, LAYERS);
    CHECK_OK(model_build(&m, &c, backend_cpu(0), &err));
    CHECK_OK(optim_config_default(&oc, optim, &err));
    CHECK_OK(optimizer_build(&opt, &m, &oc, &err));
    Profile p;
    CHECK_OK(bench_profile_step(&m, &opt, B, T, &p, &err));
    CHECK(m.be == backend_cpu(0), "the model's backend should be restored after profiling");
    CHECK(calls(&p, "optimizer", optimizer_op) > 0, "%s: no %s calls in the optimizer phase", optim, optimizer_op);
    CHECK(calls(&p, "forward+backward", "attention_backward") == LAYERS, "%s: attention_backward calls %ld", optim,
          calls(&p, "forward+backward", "attention_backward"));
    CHECK(calls(&p, "optimizer", "attention_forward") == 0, "the optimizer phase should not run attention");
    double sum = 0;
    for (int i = 0; i < p.n; i++) {
        sum += p.rows[i].seconds;
        CHECK(p.rows[i].calls > 0 && p.rows[i].seconds >= 0, "row %s/%s: %ld calls, %g s", p.rows[i].phase,
              p.rows[i].op, p.rows[i].calls, p.rows[i].seconds);
        CHECK(i == 0 || p.rows[i - 1].seconds >= p.rows[i].seconds, "rows not sorted by time at %d", i);
    }
    CHECK(p.seconds > 0 && fabs(sum - p.seconds) <= 1e-9 * (1 + p.seconds), "rows sum to %g s, total %g s", sum,
          p.seconds);
    optimizer_free(&opt, &m);
    model_free(&m);
}

static void test_profile_step_phases(void) {
    check_step("adamw", 0, "adamw_update");
    check_step("spectron", 4, "gemm_batch");   // Newton–Schulz of both factors as one batch per stage
}

int main(void) {
    RUN(test_profiling_changes_nothing);
    RUN(test_every_entry_wrapped);
    RUN(test_profile_step_phases);
    return TEST_SUMMARY();
}
