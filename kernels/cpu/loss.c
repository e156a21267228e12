// loss.c — fused softmax + cross-entropy: per-row losses and, optionally, dlogits.
#include <math.h>

#include "cpu_kernels.h"

// losses[r] = log Σ_j exp(x_j − max) + max − x[target], the max-subtracted (overflow-free)
// form of −log softmax(x)[target]. dlogits (written, not added) = (softmax − onehot)·dscale.
// In place (dlogits == logits) works because x[target] and the max are read before the
// row is overwritten, and each exp is written over the logit it came from.
void cpu_softmax_xent_forward(float *losses, float *dlogits, const float *logits,
                              const int32_t *targets, int n, int V, float dscale) {
    #pragma omp parallel for schedule(static) if ((long)n * V >= CPU_PARALLEL_MIN)
    for (int r = 0; r < n; r++) {
        const float *x = logits + (long)r * V;                  // (V)
        int target = targets[r];
        float x_target = x[target];
        float max = -INFINITY;
        #pragma omp simd reduction(max : max)
        for (int j = 0; j < V; j++) max = x[j] > max ? x[j] : max;
        float sum = 0.0f;
        if (dlogits) {
            float *d = dlogits + (long)r * V;                   // (V), may alias x
            #pragma omp simd reduction(+ : sum)
            for (int j = 0; j < V; j++) {
                float e = cpu_expf(x[j] - max);
                d[j] = e;                                       // j-th exp over the j-th logit: safe in place
                sum += e;
            }
            float c = dscale / sum;
            #pragma omp simd
            for (int j = 0; j < V; j++) d[j] *= c;
            d[target] -= dscale;
        } else {
            #pragma omp simd reduction(+ : sum)
            for (int j = 0; j < V; j++) sum += cpu_expf(x[j] - max);
        }
        losses[r] = logf(sum) + max - x_target;
    }
}
