// embedding.c — token embedding lookup and its (deterministic) scatter-add backward.
#include <string.h>

#include "cpu_kernels.h"

// Columns per work item in the backward: 64 floats = 4 cache lines, enough per token to
// amortize the loop, small enough that dim = 256 still splits among 4 threads.
#define EMBED_COLUMN_BLOCK 64

void cpu_embedding_forward(float *out, const int32_t *tokens, const float *table, int n, int dim) {
    #pragma omp parallel for schedule(static) if ((long)n * dim >= CPU_PARALLEL_MIN)
    for (int i = 0; i < n; i++)
        memcpy(out + (long)i * dim, table + (long)tokens[i] * dim, (size_t)dim * sizeof(float));
}

// Repeated tokens make rows of dtable collide, so rows cannot be split among threads.
// Columns can: each thread owns a block of columns and walks all n tokens in order, so
// every dtable element receives its additions in the same order whatever the thread count
// (bit-identical results, no atomics).
void cpu_embedding_backward(float *dtable, const float *dout, const int32_t *tokens, int n, int dim) {
    int blocks = (dim + EMBED_COLUMN_BLOCK - 1) / EMBED_COLUMN_BLOCK;
    #pragma omp parallel for schedule(static) if ((long)n * dim >= CPU_PARALLEL_MIN)
    for (int blk = 0; blk < blocks; blk++) {
        int c0 = blk * EMBED_COLUMN_BLOCK;
        int c1 = c0 + EMBED_COLUMN_BLOCK < dim ? c0 + EMBED_COLUMN_BLOCK : dim;
        for (int i = 0; i < n; i++) {
            float *row = dtable + (long)tokens[i] * dim;         // (dim) row of token i
            const float *grad = dout + (long)i * dim;            // (dim)
            #pragma omp simd
            for (int c = c0; c < c1; c++) row[c] += grad[c];
        }
    }
}
