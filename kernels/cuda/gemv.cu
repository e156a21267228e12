// gemv.cu — one-row products y(n) = alpha·x(k)·Wᵀ + beta·y, W row-major n×k: Backend.gemm
// with m = 1, trans_a = 0, trans_b = 1, which is every product of a decoded token (x·Wᵀ for a
// dense linear, t·Aᵀ and x·[B…]ᵀ packed for a factorized one, the head); and Backend.row_products,
// the same products with the RMSNorm or SwiGLU before them folded in (k_gemv_step). On by default
// (LRSH_CUDA_FUSED, backend_cuda_set_fused): an H200 decoded faster with it than with cuBLAS's
// products, which bench_cuda still times against it.
//
// Why a kernel of our own: a batch-1 product reads W once and does two flops a float, so it is
// bound by memory and by launches, not by arithmetic. Up to GEMV_CALLS products of any shapes go
// in one launch with their pointers passed by value — a pointer-batched cuBLAS call needs its
// address list copied to the device first, a second node in a recorded graph. It computes in
// fp32 whatever the precision (tensor cores buy nothing here), each output by one warp — or,
// when the rows are too few to keep the card's memory busy, by up to 8 warps each summing a
// chunk of the row — in a fixed order: deterministic. With LRSH_CUDA_PDL on it is launched as a programmatic dependent
// (cuda_common.cuh) and asks L2 for its weights before waiting for the kernel ahead of it: a
// decoded token's weights are most of its bytes, and none depends on that kernel.
#include <string.h>

#include "cuda_common.cuh"

#define GEMV_WARPS 8   // rows per block, a warp each
static_assert(32 * GEMV_WARPS == THREADS, "k_gemv_step sums RMSNorm's squares as k_rmsnorm_forward does: same block size");

typedef struct GemvCall {
    const float *w, *x;   // W (rows × k, row stride ldw), x (k)
    float *y;             // (rows)
    int rows, k, ldw, vec4;   // vec4: k, ldw multiples of 4 and w, x 16-byte aligned
    float alpha, beta;
} GemvCall;

// A launch's warps, numbered across its blocks, are slots: call c's rows take split[c] slots
// each (1, 2, 4 or 8: each warp sums a chunk of k) from first_slot[c], a multiple of split[c],
// so that a row's warps share a block; slots between calls are idle.
typedef struct GemvBatch {
    GemvCall call[GEMV_CALLS];
    int split[GEMV_CALLS];
    int first_slot[GEMV_CALLS + 1];   // first_slot[count]: the launch's slots
    int count;
    int any_split;   // some split above 1: the rows' sums meet in shared memory (a barrier)
    int prefetch;    // launched as a dependent (cuda.pdl): fetch the weights into L2 before waiting
} GemvBatch;

// Asks L2 for w (n floats) a 128-byte line a lane, the last float's line too (w may start
// mid-line). A hint: nothing waits for it.
static __device__ void prefetch_row(const float *w, int n, int lane) {
    for (int i = lane * 32; i < n; i += 32 * 32) asm volatile("prefetch.L2 [%0];" ::"l"(w + i));   // generic address
    if (lane == 0 && n > 0) asm volatile("prefetch.L2 [%0];" ::"l"(w + n - 1));
}

// This warp's place: its call *c, its row within that call (the return value, −1 for an idle
// slot), its part of the row (0 .. split − 1) and that part's floats [*lo, *hi) of k — chunks
// a multiple of 4 long, so that a float4 row stays aligned in each.
static __device__ int warp_row(const GemvBatch &b, int *c, int *part, int *lo, int *hi) {
    int slot = blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5);
    *c = 0, *part = 0, *lo = *hi = 0;
    if (slot >= b.first_slot[b.count]) return -1;
    while (slot >= b.first_slot[*c + 1]) ++*c;
    int split = b.split[*c], row = (slot - b.first_slot[*c]) / split, k = b.call[*c].k;
    if (row >= b.call[*c].rows) return -1;
    int size = ((k + split - 1) / split + 3) & ~3;
    *part = (slot - b.first_slot[*c]) % split;
    *lo = min(k, *part * size), *hi = min(k, *lo + size);
    return row;
}

// Σ w[i]·x[i] over n by one warp, lanes striding along n (float4 where vec4), summed across
// the warp in a fixed order: every lane gets the total.
static __device__ float row_dot(const float *w, const float *x, int n, int vec4, int lane) {
    return warp_sum(strided_dot(w, x, n, lane, 32, vec4));   // GPT-2's rows of 768: one round trip
}

static __device__ void store_row(const GemvCall &g, int row, float acc, int lane) {
    if (lane == 0)   // beta = 0 ignores y (NaN included), as cuBLAS and the CPU do
        g.y[row] = g.beta == 0.0f ? g.alpha * acc : g.alpha * acc + g.beta * g.y[row];
}

// The start both kernels share: this warp's place (warp_row), its chunk of weights asked for
// from L2, then the wait for the kernel ahead. Only the prefetch comes before pdl_wait:
// decoding's weights depend on no earlier kernel, but training's can (a backward product by a
// pack an earlier kernel wrote). A prefetched line is no stale copy — L2 is where the device's
// writes land — and every load comes after the wait. Returns the row's weights.
static __device__ const float *gemv_start(const GemvBatch &b, int *row, int *c, int *part, int *lo, int *hi,
                                          int lane) {
    *row = warp_row(b, c, part, lo, hi);
    const GemvCall &g = b.call[*c];
    const float *w = g.w + (long)(*row < 0 ? 0 : *row) * g.ldw;
    if (*row >= 0 && b.prefetch) prefetch_row(w + *lo, *hi - *lo, lane);
    pdl_wait();
    pdl_release();
    return w;
}

// The row's total: the warp's own sum, or with split warps a row their sums in part order
// (every thread of the block comes here: the barrier). A call's rows get the same bits in any
// batch: its split depends on the call alone. partial: GEMV_WARPS shared floats.
static __device__ void finish_row(const GemvBatch &b, int row, int c, int part, float dot, int lane, float *partial) {
    if (!b.any_split) {
        if (row >= 0) store_row(b.call[c], row, dot, lane);
        return;
    }
    int warp = threadIdx.x >> 5;
    if (lane == 0) partial[warp] = dot;
    __syncthreads();
    if (row < 0 || part != 0) return;
    float acc = partial[warp];
    for (int j = 1; j < b.split[c]; j++) acc += partial[warp + j];
    store_row(b.call[c], row, acc, lane);
}

// A warp per output row, or b.split warps a row, over every call's rows.
__global__ void k_gemv(GemvBatch b) {
    __shared__ float partial[GEMV_WARPS];
    int lane = threadIdx.x & 31, row, c, part, lo, hi;
    const float *w = gemv_start(b, &row, &c, &part, &lo, &hi, lane);
    const GemvCall g = b.call[c];
    float dot = row >= 0 ? row_dot(w + lo, g.x + lo, hi - lo, g.vec4, lane) : 0.0f;
    finish_row(b, row, c, part, dot, lane, partial);
}

// k_gemv with the input's step folded in (Backend.row_products): every block first writes
// x̂ = step(in.x) to shared memory (in.k floats, dynamic) by the functions the step's own kernel
// uses — RMSNorm's sum in the same order over the same THREADS — so x̂ and the products equal
// the unfused path's to the bit. Every call reads x̂ (their x is unused). Costs each block one
// pass over x (a few KB, from L2) and saves a launch and a round trip of x̂ through memory.
__global__ void k_gemv_step(GemvBatch b, RowInput in) {
    extern __shared__ float4 xhat4[];   // (in.k / 4, rounded up): float4 for row_dot's vec4 loads
    __shared__ double red[32];
    __shared__ float partial[GEMV_WARPS];
    float *xhat = (float *)xhat4;
    int lane = threadIdx.x & 31, row, c, part, lo, hi;
    const float *w = gemv_start(b, &row, &c, &part, &lo, &hi, lane);
    const GemvCall g = b.call[c];
    if (in.step == ROW_RMSNORM) {   // every thread: rms_scale has barriers
        float s = rms_scale(in.x, in.k, in.eps, red);
        for (int i = threadIdx.x; i < in.k; i += blockDim.x) xhat[i] = in.x[i] * s * in.gain[i];
    } else {
        for (int i = threadIdx.x; i < in.k; i += blockDim.x) xhat[i] = swiglu(in.x[i], in.up[i]);
    }
    __syncthreads();
    float dot = row >= 0 ? row_dot(w + lo, xhat + lo, hi - lo, g.vec4, lane) : 0.0f;
    finish_row(b, row, c, part, dot, lane, partial);
}

// Warps a row for a call of `rows` rows of k: more than one where its rows alone would leave
// the card's SMs short of warps to keep memory busy (a factorized linear's B product has dim/4
// rows; GPT-2's down projection 768 of 3 072), each warp keeping a chunk of at least 128 floats,
// a float4 a lane.
static int gemv_split(int rows, int k) {
    int enough = cuda.prop.multiProcessorCount * cuda.gemv_warps_per_sm, split = 1;
    while (split < GEMV_WARPS && (long)rows * split < enough && k / (2 * split) >= 128) split *= 2;
    return split;
}

// Call i of b (its call[i] set): its split and slots. Returns the launch's blocks so far.
static unsigned gemv_place(GemvBatch *b, int i) {
    int split = gemv_split(b->call[i].rows, b->call[i].k), start = b->first_slot[i];
    b->split[i] = split;
    b->any_split |= split > 1;
    b->first_slot[i] = start = (start + split - 1) / split * split;   // a row's warps in one block
    b->first_slot[i + 1] = start + b->call[i].rows * split;
    return (unsigned)((b->first_slot[i + 1] + GEMV_WARPS - 1) / GEMV_WARPS);
}

int gemv_takes(const GemmCall *c) {
    return cuda.fused && c->m == 1 && !c->trans_a && c->trans_b && c->n > 0 && c->k > 0;
}

static int aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

// x̂ in shared memory: up to 47 KB, which with red[] stays under the 48 KB a block may take
// without opting in (cudaFuncAttributeMaxDynamicSharedMemorySize).
#define GEMV_STEP_MAX_K (47 * 1024 / (int)sizeof(float))

int gemv_row_products(const RowInput *in, const RowProduct *calls, int count) {
    if (!cuda.fused || in->k <= 0 || in->k > GEMV_STEP_MAX_K) return 0;
    for (int i = 0; i < count; i++)   // a block of few rows: its copy of x̂ would cost more than it saves
        if (gemv_split(calls[i].n, in->k) > cuda.fold_split) return 0;
    for (int first = 0; first < count; first += GEMV_CALLS) {
        GemvBatch b;
        memset(&b, 0, sizeof b);
        unsigned blocks = 0;
        b.count = count - first < GEMV_CALLS ? count - first : GEMV_CALLS;
        b.prefetch = cuda.pdl;
        for (int i = 0; i < b.count; i++) {
            const RowProduct *p = &calls[first + i];   // W: n × k, row stride k; x̂ in shared memory
            int vec4 = in->k % 4 == 0 && aligned16(p->w);
            b.call[i] = (GemvCall){p->w, NULL, p->y, p->n, in->k, in->k, vec4, 1.0f, p->beta};
            blocks = gemv_place(&b, i);
        }
        size_t shared = sizeof(float4) * (size_t)((in->k + 3) / 4);
        if (blocks) LAUNCH_DEPENDENT(k_gemv_step, blocks, 32 * GEMV_WARPS, shared, b, *in);
    }
    return 1;
}

void gemv_batch(const GemmCall *calls, int count) {
    GemvBatch b;
    memset(&b, 0, sizeof b);
    unsigned blocks = 0;
    b.count = count;
    b.prefetch = cuda.pdl;
    for (int i = 0; i < count; i++) {
        const GemmCall *c = &calls[i];   // x = row A, W = B (n × k, ldb)
        int vec4 = c->k % 4 == 0 && c->ldb % 4 == 0 && aligned16(c->a) && aligned16(c->b);
        b.call[i] = (GemvCall){c->b, c->a, c->c, c->n, c->k, c->ldb, vec4, c->alpha, c->beta};
        blocks = gemv_place(&b, i);
    }
    LAUNCH_DEPENDENT(k_gemv, blocks, 32 * GEMV_WARPS, 0, b);
}
