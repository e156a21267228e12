// layer_kernels.cuh — the kernels of a layer's steps between its GEMMs (RMSNorm, RoPE, SwiGLU),
// of the loss (softmax cross-entropy) and of the optimizers' norms (sumsq_batch). The kernels
// only: backend_cuda.cu launches them; tests/test_cuda_emu.cpp runs this same source on the
// CPU under tests/emu/cuda_emu.h against the CPU backend. Each is the CPU's arithmetic
// (kernels/cpu/), operation for operation where the order of sums allows.
#pragma once
#include <stdint.h>

#include "device_common.cuh"

// Up to this many calls of a batched kernel travel as its argument (a SumsqBatch is 1.3 KB, an
// AxpbyBatch 2 KB, of the 4 KB allowed): no copy to the device before the launch, so the host
// does not wait for the GPU.
#define ARG_CALLS 64

// ---- RMSNorm ------------------------------------------------------------------------------

// One block per row.
__global__ void k_rmsnorm_forward(float *out, float *rstd, const float *x, const float *gain, int dim, float eps) {
    __shared__ double red[32];
    pdl_wait();   // launched as a dependent (cuda_common.cuh)
    pdl_release();
    long r = blockIdx.x;
    const float *xr = x + r * dim;
    float *yr = out + r * dim;
    float s = rms_scale(xr, dim, eps, red);
    if (threadIdx.x == 0) rstd[r] = s;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = xr[i] * s * gain[i];
}

// dx_j += s·(g_j·dy_j − u_j·mean_i(dy_i·g_i·u_i)) with u = s·x (cpu_rmsnorm_backward says why),
// one block per row.
__global__ void k_rmsnorm_backward_dx(float *dx, const float *dout, const float *x, const float *gain,
                                      const float *rstd, int dim) {
    __shared__ float red[32];
    long r = blockIdx.x;
    const float *xr = x + r * dim, *dy = dout + r * dim;
    float *dxr = dx + r * dim;
    float s = rstd[r];
    float dot = 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) dot += dy[i] * gain[i] * (xr[i] * s);
    float mean = block_sum(dot, red) / (float)dim;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) dxr[i] += s * (gain[i] * dy[i] - xr[i] * s * mean);
}

// dgain_i = Σ_rows dy_i·(x_i·s), in chunks of rows (blockIdx.y) with a thread per column:
// add = 0 writes chunk sums into dst(chunks, dim); add = 1 (a single chunk) adds into dst(dim).
__global__ void k_rmsnorm_dgain(float *dst, int add, const float *dout, const float *x, const float *rstd,
                                int n, int dim, int chunk_rows) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= dim) return;
    long r0 = (long)blockIdx.y * chunk_rows, r1 = r0 + chunk_rows < n ? r0 + chunk_rows : n;
    float acc = 0.0f;
    for (long r = r0; r < r1; r++) acc += dout[r * dim + i] * (x[r * dim + i] * rstd[r]);
    if (add) dst[i] += acc;
    else dst[(long)blockIdx.y * dim + i] = acc;
}

// dgain_i += Σ_chunks partial(chunk, i), chunks in order.
__global__ void k_sum_chunks(float *dgain, const float *partial, int chunks, int dim) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= dim) return;
    float acc = 0.0f;
    for (int c = 0; c < chunks; c++) acc += partial[(long)c * dim + i];
    dgain[i] += acc;
}

// ---- RoPE ---------------------------------------------------------------------------------

// A block per row (b, t) of x(B·T, H, hd), position pos0 + t: the row's hd/2 angles' cos and
// sin into shared memory once (rope_cos_sin, the CPU's table entries), then every pair of its H
// heads. backward = 0: out = R·in; 1: out = Rᵀ·in (written, not added). In place is allowed:
// each pair is read before it is written, by the same thread.
__global__ void k_rope(float *out, const float *in, int T, int H, int hd, int pos0, float theta, int backward) {
    DYNAMIC_SHARED(float, cs);                                     // (hd/2, 2): cos, sin
    int half = hd / 2, t = (int)(blockIdx.x % T);
    for (int i = threadIdx.x; i < half; i += blockDim.x) rope_cos_sin(pos0 + t, i, hd, theta, &cs[2 * i], &cs[2 * i + 1]);
    __syncthreads();
    long row = (long)blockIdx.x * H * hd;                          // (H, hd)
    for (int p = threadIdx.x; p < H * half; p += blockDim.x) {
        int i = p % half;
        long at = row + (long)(p / half) * hd + 2 * i;
        float c = cs[2 * i], s = backward ? -cs[2 * i + 1] : cs[2 * i + 1];   // Rᵀ: the rotation by −angle
        rope_rotate(out + at, in + at, c, s);
    }
}

// ---- SwiGLU, softmax cross-entropy ---------------------------------------------------------

__global__ void k_swiglu_forward(float *out, const float *gate, const float *up, long n) {
    pdl_wait();   // launched as a dependent (cuda_common.cuh)
    pdl_release();
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        out[i] = swiglu(gate[i], up[i]);
}

__global__ void k_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        float g = gate[i], s = swish_sigmoid(g);
        dgate[i] = dout[i] * up[i] * s * (1.0f + g * (1.0f - s));
        dup[i] = dout[i] * g * s;
    }
}

// A block per row of logits(V): the max and the sum of exponentials in one read (each thread
// keeps its own running max m and sum s relative to it, rescaled when m grows), combined over
// the block, then — for backward — one more read writing d = softmax·dscale, minus dscale at the
// target: two reads of the row and one write where a max pass, an exp pass and a scaling pass
// took three and two (the head's 16 384 × 32 768 logits are 2 GB). In place is fine (d = x):
// each d[j] is written by the thread that read x[j], and x[target] is read before any write.
__global__ void k_softmax_xent(float *losses, float *dlogits, const float *logits, const int32_t *targets, int V,
                               float dscale) {
    __shared__ float red[32];
    long r = blockIdx.x;
    const float *x = logits + r * V;
    int target = targets[r];
    float x_target = x[target], m = -INFINITY, s = 0.0f;
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
        float xj = x[j];
        if (xj > m) s = s * expf(m - xj) + 1.0f, m = xj;
        else s += xj == m ? 1.0f : expf(xj - m);   // equal infinities count exp(0), not exp(NaN)
    }
    float mx = block_max(m, red);
    float sum = block_sum(s * expf(m - mx), red);   // a NaN logit stays in s: the loss is NaN
    if (dlogits) {
        float *d = dlogits + r * V, c = dscale / sum;
        for (int j = threadIdx.x; j < V; j += blockDim.x) {
            float p = expf(x[j] - mx) * c;
            d[j] = j == target ? p - dscale : p;
        }
    }
    if (threadIdx.x == 0) losses[r] = logf(sum) + mx - x_target;
}

// ---- the optimizers' norms ------------------------------------------------------------------

// Up to ARG_CALLS vectors of sumsq_batch as the kernel's argument: address, length, and the
// blocks that sum it — vector v's are first_block[v] .. first_block[v + 1] − 1 of the launch.
typedef struct SumsqBatch {
    const float *x[ARG_CALLS];
    long n[ARG_CALLS];
    int first_block[ARG_CALLS + 1];
} SumsqBatch;

// Blocks a vector of n floats is summed by: one per SUMSQ_SHARE floats, at most SUMSQ_BLOCKS —
// a function of n alone, so the order of the sums is fixed. (One block a vector left a batch
// of a few big factors to a few SMs: a quarter of a Spectron step's optimizer time on an H200.)
#define SUMSQ_SHARE (THREADS * 8)
#define SUMSQ_BLOCKS 32
static inline int sumsq_blocks(long n) {
    long b = (n + SUMSQ_SHARE - 1) / SUMSQ_SHARE;
    return b < 1 ? 1 : b > SUMSQ_BLOCKS ? SUMSQ_BLOCKS : (int)b;
}

// Pass 1: block j of vector v sums, in double, every blocks-th THREADS-wide stretch of it from
// the j-th, into partials[first_block[v] + j].
__global__ void k_sumsq_many(SumsqBatch batch, double *partials) {
    __shared__ double red[32];
    int v = 0;
    while ((int)blockIdx.x >= batch.first_block[v + 1]) v++;
    int j = blockIdx.x - batch.first_block[v], blocks = batch.first_block[v + 1] - batch.first_block[v];
    const float *x = batch.x[v];
    long n = batch.n[v];
    double acc = 0.0;
    for (long i = (long)j * blockDim.x + threadIdx.x; i < n; i += (long)blocks * blockDim.x) acc += (double)x[i] * x[i];
    acc = block_sum(acc, red);
    if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

// Pass 2: vector v's total, its blocks' sums added in block order by one thread.
__global__ void k_sumsq_finish(SumsqBatch batch, const double *partials, double *out, int count) {
    int v = blockIdx.x * blockDim.x + threadIdx.x;
    if (v >= count) return;
    double acc = 0.0;
    for (int b = batch.first_block[v]; b < batch.first_block[v + 1]; b++) acc += partials[b];
    out[v] = acc;
}
