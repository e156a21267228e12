// bench_train — training tokens/s and MFU for the small and base shapes, dense and factorized
// (rank dim/4), against this machine's measured sgemm peak. Usage: bench_train [steps] [shape…]
#include <stdio.h>
#include <stdlib.h>
#include "../engine/bench.h"
#include "../kernels/cpu/blas_check.h"

int main(int argc, char **argv) {
    cpu_blas_ensure_core(argc, argv);
    const Backend *be = backend_cpu(0);
    int steps = argc > 1 ? atoi(argv[1]) : 0;
    const char *default_shapes[] = {"small", "base"};
    const char **shapes = argc > 2 ? (const char **)argv + 2 : default_shapes;
    int n_shapes = argc > 2 ? argc - 2 : 2;
    Err err;
    double peak;
    if (bench_sgemm_peak(be, &peak, &err)) { fprintf(stderr, "bench: %s\n", err.msg); return 1; }
    printf("bench train — %s; sgemm peak %.1f GFLOP/s\n", be->describe(), peak);
    printf("%-6s %-10s %6s %10s %8s %6s %9s\n", "shape", "model", "batch", "tok/s", "GFLOP/s", "MFU", "peak RSS");
    for (int s = 0; s < n_shapes; s++) {
        double dense_tps = 0;
        for (int f = 0; f <= 1; f++) {
            BenchResult r;
            int st = steps > 0 ? steps : (shapes[s][0] == 'b' ? 4 : 10);
            if (bench_train(be, shapes[s], f, 4, st, peak, &r, &err)) { fprintf(stderr, "bench: %s\n", err.msg); return 1; }
            printf("%-6s %-10s %6d %10.0f %8.1f %5.1f%% %7.0f MB", r.shape, r.model, r.batch, r.tok_per_s,
                   r.gflops, 100 * r.mfu, r.peak_rss / 1e6);
            if (f == 0) dense_tps = r.tok_per_s;
            else printf("   factorized/dense %.2f×", r.tok_per_s / dense_tps);
            printf("\n");
            fflush(stdout);
        }
    }
    return 0;
}
