// elementwise.c — SwiGLU, y += x, x *= s, y = αx + βy (alone, in batches, on a matrix's
// columns), and the deterministic sum / sum of squares (alone and in batches).
#include <math.h>
#include <stdlib.h>

#include "cpu_kernels.h"

// Reductions split x into fixed chunks of this many values, independent of the thread count,
// and add the chunk sums in chunk order: the result is the same bit for bit on any number of
// threads.
#define REDUCE_CHUNK 16384L

#pragma omp declare simd notinbranch
static inline float sigmoid(float x) { return 1.0f / (1.0f + cpu_expf(-x)); }

// out = silu(gate)·up, silu(g) = g·σ(g)
void cpu_swiglu_forward(float *out, const float *gate, const float *up, long n) {
    #pragma omp parallel for simd schedule(static) if (n >= CPU_PARALLEL_MIN)
    for (long i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g * sigmoid(g) * up[i];
    }
}

// dgate, dup written (not added); d silu(g)/dg = σ(g)·(1 + g·(1 − σ(g)))
void cpu_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                         const float *up, long n) {
    #pragma omp parallel for simd schedule(static) if (n >= CPU_PARALLEL_MIN)
    for (long i = 0; i < n; i++) {
        float g = gate[i], s = sigmoid(g);
        dgate[i] = dout[i] * up[i] * s * (1.0f + g * (1.0f - s));
        dup[i] = dout[i] * g * s;
    }
}

void cpu_add(float *y, const float *x, long n) {
    #pragma omp parallel for simd schedule(static) if (n >= CPU_PARALLEL_MIN)
    for (long i = 0; i < n; i++) y[i] += x[i];
}

void cpu_scale(float *x, float s, long n) {
    #pragma omp parallel for simd schedule(static) if (n >= CPU_PARALLEL_MIN)
    for (long i = 0; i < n; i++) x[i] *= s;
}

// α·x[i] + β·y[i] in that order, as the CUDA twin: the same bits on both.
void cpu_axpby(float *y, float alpha, const float *x, float beta, long n) {
    if (beta == 0.0f) {
        #pragma omp parallel for simd schedule(static) if (n >= CPU_PARALLEL_MIN)
        for (long i = 0; i < n; i++) y[i] = alpha * x[i];
        return;
    }
    #pragma omp parallel for simd schedule(static) if (n >= CPU_PARALLEL_MIN)
    for (long i = 0; i < n; i++) y[i] = alpha * x[i] + beta * y[i];
}

void cpu_add_matrix(float *y, int ldy, const float *x, int ldx, int rows, int cols, float beta) {
    #pragma omp parallel for schedule(static) if ((long)rows * cols >= CPU_PARALLEL_MIN)
    for (int i = 0; i < rows; i++) {
        float *yi = y + (long)i * ldy;
        const float *xi = x + (long)i * ldx;
        if (beta == 0.0f) {
            #pragma omp simd
            for (int j = 0; j < cols; j++) yi[j] = xi[j];
        } else {
            #pragma omp simd
            for (int j = 0; j < cols; j++) yi[j] = xi[j] + beta * yi[j];
        }
    }
}

// Σ x (squares = 0) or Σ x² (squares = 1), in double, in fixed chunks (see REDUCE_CHUNK).
static double chunked_sum(const float *x, long n, int squares) {
    if (n <= 0) return 0.0;
    long chunks = (n + REDUCE_CHUNK - 1) / REDUCE_CHUNK;
    double stack_partial[64];
    double *partial = chunks <= 64 ? stack_partial : malloc((size_t)chunks * sizeof(double));
    if (!partial) {   // n > 1M floats and no memory for n/16384 doubles
        cpu_fail("sum: out of memory for the partial sums");
        return NAN;
    }
    #pragma omp parallel for schedule(static) if (n >= CPU_PARALLEL_MIN)
    for (long c = 0; c < chunks; c++) {
        long i0 = c * REDUCE_CHUNK, i1 = i0 + REDUCE_CHUNK < n ? i0 + REDUCE_CHUNK : n;
        double acc = 0.0;
        if (squares) {
            #pragma omp simd reduction(+ : acc)
            for (long i = i0; i < i1; i++) acc += (double)x[i] * x[i];
        } else {
            #pragma omp simd reduction(+ : acc)
            for (long i = i0; i < i1; i++) acc += x[i];
        }
        partial[c] = acc;
    }
    double total = 0.0;
    for (long c = 0; c < chunks; c++) total += partial[c];   // fixed order
    if (partial != stack_partial) free(partial);
    return total;
}

double cpu_sum(const float *x, long n) { return chunked_sum(x, n, 0); }
double cpu_sumsq(const float *x, long n) { return chunked_sum(x, n, 1); }

void cpu_sumsq_batch(const float *const *x, const long *n, int count, double *out) {
    for (int i = 0; i < count; i++) out[i] = chunked_sum(x[i], n[i], 1);
}

void cpu_axpby_batch(const AxpbyCall *calls, int count) {
    for (int i = 0; i < count; i++) cpu_axpby(calls[i].y, calls[i].alpha, calls[i].x, calls[i].beta, calls[i].n);
}
