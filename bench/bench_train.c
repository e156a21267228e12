// bench_train — training tokens/s and MFU for the small and base shapes, dense and factorized
// (rank dim/4), against this machine's measured sgemm peak. The two models train in alternating
// rounds and each reports its median round, so a busy moment on a shared machine hits neither
// model alone. Usage: bench_train [steps per round] [rounds] [shape…]
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../engine/bench.h"
#include "../kernels/cpu/blas_check.h"

int main(int argc, char **argv) {
    cpu_blas_ensure_core(argc, argv);
    const Backend *be = backend_cpu(0);
    const char *usage = "usage: bench_train [steps per round] [rounds] [shape…]   (default 4 small / 2 base, 5, small base)";
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) return puts(usage), 0;
    int steps = argc > 1 ? atoi(argv[1]) : 0, rounds = argc > 2 ? atoi(argv[2]) : 5;
    if ((argc > 1 && steps < 1) || (argc > 2 && rounds < 1)) {
        fprintf(stderr, "bench_train: steps and rounds are positive whole numbers\n%s\n", usage);
        return 2;
    }
    const char *default_shapes[] = {"small", "base"};
    const char **shapes = argc > 3 ? (const char **)argv + 3 : default_shapes;
    int n_shapes = argc > 3 ? argc - 3 : 2;
    Err err;
    double peak;
    if (bench_sgemm_peak(be, &peak, &err)) { fprintf(stderr, "bench: %s\n", err.msg); return 1; }
    printf("bench train — %s; sgemm peak %.1f GFLOP/s; median of %d alternating rounds\n", be->describe(), peak, rounds);
    printf("%-6s %-10s %6s %6s %10s %8s %6s %9s %9s\n", "shape", "model", "batch", "steps", "tok/s", "GFLOP/s", "MFU",
           "model RSS", "peak RSS");
    for (int s = 0; s < n_shapes; s++) {
        int st = steps > 0 ? steps : (shapes[s][0] == 'b' ? 2 : 4);
        BenchResult r[2];
        static const int both[2] = {1, 1};
        if (bench_train(be, shapes[s], both, 4, st, rounds, peak, "adamw", 0, r, NULL, NULL, &err)) {
            fprintf(stderr, "bench: %s\n", err.msg);
            return 1;
        }
        for (int f = 0; f < 2; f++)
            printf("%-6s %-10s %6d %6d %10.0f %8.1f %5.1f%% %6.0f MB %6.0f MB\n", r[f].shape, r[f].model, r[f].batch,
                   r[f].steps, r[f].tok_per_s, r[f].gflops, 100 * r[f].mfu, r[f].model_rss / 1e6, r[f].peak_rss / 1e6);
        printf("%-6s factorized/dense %.2f×  (target ≥ %.2f×)\n", shapes[s], r[1].tok_per_s / r[0].tok_per_s,
               shapes[s][0] == 'b' ? 1.45 : 1.3);
        fflush(stdout);
    }
    return 0;
}
