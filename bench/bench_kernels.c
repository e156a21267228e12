// bench_kernels — the CPU backend's memory-bound kernels at the `small` training shape (batch 4 ×
// seq 256 = 1024 rows; dim 256, ffn 704, 4 heads, vocab 8192), each timed against streaming the
// same number of bytes through axpby (y = αx + βy: two reads and a write a float) on buffers of
// its size. A kernel with exp in it does arithmetic as well and runs at 2–4× its bytes' time;
// past 8× it is computing far too slowly: on an AVX2 host without -fno-trapping-math GCC 12 left
// cpu_expf's loops scalar, and softmax_xent and SwiGLU ran at 13–22× (the small training step
// 1.3× slower), unseen until a profile. Rounds alternate kernel and reference; each reports its
// median.
// Usage: bench_kernels [rounds]
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../engine/bench.h"
#include "../engine/clock.h"
#include "../engine/rng.h"
#include "../kernels/cpu/blas_check.h"

enum { ROWS = 1024, DIM = 256, FFN = 704, HEADS = 4, VOCAB = 8192, BATCH = 4, SEQ = 256 };
#define MAX_ROUNDS 64
#define TARGET 8.0   // a kernel's median over its bytes' streaming median

typedef struct Buffers {
    float *a, *b, *c, *d, *e;   // each max_floats long, random
    float *small;               // [0, ROWS): rstd or losses; then the gains, then dgain (DIM each)
    int32_t *targets;
} Buffers;

typedef struct Kernel {
    const char *name;
    long elements;      // what the kernel walks
    double bytes;       // bytes it must read and write, once each
} Kernel;

static void fill(float *x, long n, uint64_t *s) {
    for (long i = 0; i < n; i++) x[i] = 4.0f * ((float)(rng_next(s) % 20001) / 10000.0f - 1.0f);   // [−4, 4]
}

enum { K_SOFTMAX, K_SWIGLU_FORWARD, K_SWIGLU_BACKWARD, K_RMSNORM_FORWARD, K_RMSNORM_BACKWARD, K_ROPE, K_ADAMW };

// Runs kernel k once.
static void run_kernel(const Backend *be, int k, Buffers *b) {
    switch (k) {
    case K_SOFTMAX: be->softmax_xent_forward(b->small, b->a, b->a, b->targets, ROWS, VOCAB, 1.0f / ROWS); break;
    case K_SWIGLU_FORWARD: be->swiglu_forward(b->c, b->a, b->b, (long)ROWS * FFN); break;
    case K_SWIGLU_BACKWARD: be->swiglu_backward(b->d, b->e, b->c, b->a, b->b, (long)ROWS * FFN); break;
    case K_RMSNORM_FORWARD: be->rmsnorm_forward(b->b, b->small, b->a, b->small + ROWS, ROWS, DIM, 1e-5f); break;
    case K_RMSNORM_BACKWARD: be->rmsnorm_backward(b->c, b->small + ROWS + DIM, b->b, b->a, b->small + ROWS, b->small, ROWS, DIM); break;
    case K_ROPE: be->rope_forward(b->a, b->a, BATCH, SEQ, HEADS, DIM / HEADS, 0, 10000.0f); break;
    case K_ADAMW: be->adamw_update(b->a, b->b, b->c, b->d, (long)ROWS * FFN, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, 3); break;
    }
}

static const Kernel kernels[] = {
    {"softmax_xent (in place)", (long)ROWS * VOCAB, 8.0 * ROWS * VOCAB},
    {"swiglu_forward", (long)ROWS * FFN, 12.0 * ROWS * FFN},
    {"swiglu_backward", (long)ROWS * FFN, 20.0 * ROWS * FFN},
    {"rmsnorm_forward", (long)ROWS * DIM, 8.0 * ROWS * DIM},
    {"rmsnorm_backward", (long)ROWS * DIM, 12.0 * ROWS * DIM},
    {"rope_forward (in place)", (long)ROWS * DIM, 8.0 * ROWS * DIM},
    {"adamw_update", (long)ROWS * FFN, 28.0 * ROWS * FFN},
};

// The median seconds of the kernel and of axpby over as many bytes, in alternating rounds.
static void time_kernel(const Backend *be, int k, Buffers *b, int rounds, double *kernel_s, double *stream_s) {
    double tk[MAX_ROUNDS], ts[MAX_ROUNDS];
    long stream_n = (long)(kernels[k].bytes / 12.0);   // axpby moves 12 bytes a float
    uint64_t s = 11;
    for (int r = -1; r < rounds; r++) {                // round −1 warms up both
        fill(b->a, kernels[k].elements, &s);           // softmax and rope work in place: fresh input
        if (k == K_ADAMW)                              // its v: the SwiGLU backward wrote signed values there
            for (long i = 0; i < kernels[k].elements; i++) b->d[i] = fabsf(b->d[i]);
        double t0 = clock_seconds();
        run_kernel(be, k, b);
        double t1 = clock_seconds();
        be->axpby(b->e, 0.5f, b->d, 0.5f, stream_n);
        double t2 = clock_seconds();
        if (r >= 0) tk[r] = t1 - t0, ts[r] = t2 - t1;
    }
    *kernel_s = bench_median(tk, rounds);
    *stream_s = bench_median(ts, rounds);
}

static int buffers_build(Buffers *b, long max_floats) {
    uint64_t s = 7;
    float **big[] = {&b->a, &b->b, &b->c, &b->d, &b->e};
    for (int i = 0; i < 5; i++) {
        if (!(*big[i] = malloc(sizeof(float) * max_floats))) return -1;
        fill(*big[i], max_floats, &s);
    }
    b->small = malloc(sizeof(float) * (ROWS + 2 * DIM));
    b->targets = malloc(sizeof(int32_t) * ROWS);
    if (!b->small || !b->targets) return -1;
    for (int i = 0; i < ROWS + 2 * DIM; i++) b->small[i] = 1.0f;
    for (int i = 0; i < ROWS; i++) b->targets[i] = (int32_t)(rng_next(&s) % VOCAB);
    return 0;
}

static void buffers_free(Buffers *b) {
    free(b->a), free(b->b), free(b->c), free(b->d), free(b->e), free(b->small), free(b->targets);
}

int main(int argc, char **argv) {
    cpu_blas_ensure_core(argc, argv);
    const Backend *be = backend_cpu(0);
    int rounds = argc > 1 ? atoi(argv[1]) : 15;
    if (rounds < 1 || rounds > MAX_ROUNDS) {
        fprintf(stderr, "usage: bench_kernels [rounds 1..%d]   (default 15)\n", MAX_ROUNDS);
        return 2;
    }
    Buffers b = {0};
    if (buffers_build(&b, (long)ROWS * VOCAB)) {
        fprintf(stderr, "bench_kernels: out of memory for the buffers\n");
        buffers_free(&b);
        return 1;
    }
    printf("bench kernels — %s; small's shape (%d rows, dim %d, ffn %d, vocab %d); median of %d alternating rounds\n",
           be->describe(), ROWS, DIM, FFN, VOCAB, rounds);
    printf("%-24s %10s %9s %9s %8s %9s\n", "kernel", "elements", "ms", "GB/s", "ns/elt", "× stream");
    int over = 0;
    for (int k = 0; k < (int)(sizeof kernels / sizeof kernels[0]); k++) {
        double tk, ts;
        time_kernel(be, k, &b, rounds, &tk, &ts);
        double ratio = tk / ts;
        over += ratio > TARGET;
        printf("%-24s %10ld %9.3f %9.1f %8.2f %8.2f×%s\n", kernels[k].name, kernels[k].elements, 1e3 * tk,
               kernels[k].bytes / tk / 1e9, 1e9 * tk / kernels[k].elements, ratio, ratio > TARGET ? "  (over)" : "");
        fflush(stdout);
    }
    printf("kernels within %.0f× of streaming their bytes: %d of %d (target: all)\n", TARGET,
           (int)(sizeof kernels / sizeof kernels[0]) - over, (int)(sizeof kernels / sizeof kernels[0]));
    buffers_free(&b);
    return 0;
}
