// gemv.cu — one-row products y(n) = alpha·x(k)·Wᵀ + beta·y, W row-major n×k: Backend.gemm
// with m = 1, trans_a = 0, trans_b = 1, which is every product of a decoded token (x·Wᵀ for a
// dense linear, t·Aᵀ and x·[B…]ᵀ packed for a factorized one, the head). Off by default
// (LRSH_CUDA_GEMV=on, backend_cuda_set_gemv): an alternative to cuBLAS that bench_cuda times
// against it, to be made the default only where a card says it is faster.
//
// Why a kernel of our own: a batch-1 product reads W once and does two flops a float, so it is
// bound by memory and by launches, not by arithmetic. Up to GEMV_CALLS products of any shapes go
// in one launch with their pointers passed by value — a pointer-batched cuBLAS call needs its
// address list copied to the device first, a second node in a recorded graph. It computes in
// fp32 whatever the precision (tensor cores buy nothing here), each output by one warp in a
// fixed order: deterministic. With LRSH_CUDA_PDL on it is launched as a programmatic dependent
// (cuda_common.cuh) and asks L2 for its weights before waiting for the kernel ahead of it: a
// decoded token's weights are most of its bytes, and none depends on that kernel.
#include <string.h>

#include "cuda_common.cuh"

#define GEMV_WARPS 8   // rows per block, a warp each

typedef struct GemvCall {
    const float *w, *x;   // W (rows × k, row stride ldw), x (k)
    float *y;             // (rows)
    int rows, k, ldw, vec4;   // vec4: k, ldw multiples of 4 and w, x 16-byte aligned
    float alpha, beta;
} GemvCall;

typedef struct GemvBatch {
    GemvCall call[GEMV_CALLS];
    int first_row[GEMV_CALLS + 1];   // call c's rows are first_row[c] .. first_row[c + 1] − 1
    int count;
    int prefetch;   // launched as a dependent (cuda.pdl): fetch the weights into L2 before waiting
} GemvBatch;

// Asks L2 for row w (k floats) a 128-byte line a lane, the last float's line too (w may start
// mid-line). A hint: nothing waits for it.
static __device__ void prefetch_row(const float *w, int k, int lane) {
    for (int i = lane * 32; i < k; i += 32 * 32) asm volatile("prefetch.L2 [%0];" ::"l"(w + i));   // generic address
    if (lane == 0) asm volatile("prefetch.L2 [%0];" ::"l"(w + k - 1));
}

// A warp per output row, over every call's rows; lanes stride along k (float4 where aligned).
// Only the prefetch comes before pdl_wait: decoding's weights depend on no earlier kernel, but
// training's can (a backward product by a pack an earlier kernel wrote). A prefetched line is
// no stale copy — L2 is where the device's writes land — and every load comes after the wait.
__global__ void k_gemv(GemvBatch b) {
    int lane = threadIdx.x & 31, row = blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5), c = 0;
    int in_range = row < b.first_row[b.count];
    if (in_range) {
        while (row >= b.first_row[c + 1]) c++;
        row -= b.first_row[c];
    }
    const GemvCall g = b.call[c];
    const float *w = g.w + (long)row * g.ldw;
    if (in_range && b.prefetch) prefetch_row(w, g.k, lane);
    pdl_wait();
    pdl_release();
    if (!in_range) return;
    float acc = 0.0f;
    if (g.vec4) {
        const float4 *w4 = (const float4 *)w, *x4 = (const float4 *)g.x;
#pragma unroll 4
        for (int i = lane; i < g.k / 4; i += 32) {
            float4 a = w4[i], x = x4[i];
            acc += a.x * x.x;
            acc += a.y * x.y;
            acc += a.z * x.z;
            acc += a.w * x.w;
        }
    } else {
        for (int i = lane; i < g.k; i += 32) acc += w[i] * g.x[i];
    }
    acc = warp_sum(acc);
    if (lane == 0)   // beta = 0 ignores y (NaN included), as cuBLAS and the CPU do
        g.y[row] = g.beta == 0.0f ? g.alpha * acc : g.alpha * acc + g.beta * g.y[row];
}

int gemv_takes(const GemmCall *c) {
    return cuda.gemv && c->m == 1 && !c->trans_a && c->trans_b && c->n > 0 && c->k > 0;
}

static int aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

void gemv_batch(const GemmCall *calls, int count) {
    GemvBatch b;
    memset(&b, 0, sizeof b);
    b.count = count;
    b.prefetch = cuda.pdl;
    for (int i = 0; i < count; i++) {
        const GemmCall *c = &calls[i];   // x = row A, W = B (n × k, ldb)
        int vec4 = c->k % 4 == 0 && c->ldb % 4 == 0 && aligned16(c->a) && aligned16(c->b);
        b.call[i] = (GemvCall){c->b, c->a, c->c, c->n, c->k, c->ldb, vec4, c->alpha, c->beta};
        b.first_row[i + 1] = b.first_row[i] + c->n;
    }
    unsigned blocks = (unsigned)((b.first_row[count] + GEMV_WARPS - 1) / GEMV_WARPS);
    LAUNCH_DEPENDENT(k_gemv, blocks, 32 * GEMV_WARPS, 0, b);
}
