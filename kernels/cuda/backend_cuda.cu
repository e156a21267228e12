// backend_cuda.cu — the Backend of kernels/kernels.h on an NVIDIA GPU: device memory through
// the CUDA runtime, GEMM through cuBLAS, and one straightforward CUDA kernel per other entry.
// kernels/cpu/ is the reference; every kernel here computes the same function with the same
// float operations where it can (built with --fmad=false, so no fused multiply-adds that the
// C11 CPU code, compiled with -ffp-contract=off, does not do). Correct first: attention is one
// block per query row and stores the probabilities; no flash attention yet.
//
// Determinism: no atomics anywhere. Every reduction has a fixed shape (block sizes and grids
// that do not depend on the card), so a run repeats bit for bit on the same GPU model.
//
// Errors: the Backend functions return nothing, so every CUDA and cuBLAS call and every launch
// goes through a check that records the first failure (file, line, call, message, hint) in
// the backend's state; backend_cuda_last_error() reports it. LRSH_CUDA_SYNC=1 in the
// environment synchronizes after every launch, so a faulting kernel is named where it ran.
#include <cuda_runtime.h>
#include <cublas_v2.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "../kernels.h"
#include "backend_cuda.h"
}

// Kept free for the CUDA context's own needs and cuBLAS's workspace: mem_available reports
// what is left beyond it, so a model that "fits" does not fail at its first GEMM.
#define MEM_RESERVE (256ull << 20)
#define THREADS 256            // elementwise kernels and row kernels
#define ATT_THREADS 128        // attention: one block per query row (4 warps)
#define REDUCE_BLOCKS 512      // sum/sumsq: fixed grid, whatever the card (deterministic)
#define NORM_CHUNK_ROWS 64     // rmsnorm dgain: rows per partial sum

typedef struct CudaState {
    int ready;                 // device chosen, cuBLAS handle made
    int device;
    cudaDeviceProp prop;
    cublasHandle_t blas;
    cublasComputeType_t compute;
    const char *precision;     // "fp32", "tf32", "bf16"
    double *partials;          // REDUCE_BLOCKS + 1 doubles: sum/sumsq's per-block sums, then the total
    float *scratch;            // grow-only work buffer (rmsnorm dgain partial sums)
    size_t scratch_floats;
    int sync_each_launch;      // LRSH_CUDA_SYNC=1
    int flash;                 // attention without the T×T matrix (LRSH_CUDA_ATTENTION=flash)
    char error[768];           // the first error, "" when none
    char description[400];      // prop.name is up to 256 bytes
} CudaState;

// The backend's one state: a process drives one GPU through one table (as the CPU backend's
// table is one static object).
static CudaState cuda;

// ---- errors -------------------------------------------------------------------------------

static const char *cuda_hint(cudaError_t e) {
    switch (e) {
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorInitializationError:
        return "is a GPU visible? check nvidia-smi and CUDA_VISIBLE_DEVICES";
    case cudaErrorMemoryAllocation:
        return "out of GPU memory: try a smaller batch or model, and check nvidia-smi for other processes";
    case cudaErrorNoKernelImageForDevice:
    case cudaErrorUnsupportedPtxVersion:
    case cudaErrorInvalidKernelImage:
        return "this build has code for sm_90 (Hopper) and PTX for compute_90: this card or driver cannot run it";
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorMisalignedAddress:
        return "a kernel faulted (a bad pointer or size from the caller?); the GPU context is now unusable; "
               "rerun with LRSH_CUDA_SYNC=1 to name the launch";
    case cudaErrorInvalidValue:
    case cudaErrorInvalidConfiguration:
        return "an invalid size or pointer was passed: a bug in the caller or in the launch shape";
    default:
        return "check nvidia-smi; LRSH_CUDA_SYNC=1 synchronizes after every launch to locate the failure";
    }
}

static void record_error(const char *file, int line, const char *call, const char *what, const char *hint) {
    if (cuda.error[0]) return;   // keep the first: later ones are usually its consequences
    snprintf(cuda.error, sizeof cuda.error, "%s:%d: %s: %s — %s", file, line, call, what, hint);
}

static int check_cuda(cudaError_t e, const char *file, int line, const char *call) {
    if (e == cudaSuccess) return 0;
    record_error(file, line, call, cudaGetErrorString(e), cuda_hint(e));
    return -1;
}

static int check_cublas(cublasStatus_t s, const char *file, int line, const char *call) {
    if (s == CUBLAS_STATUS_SUCCESS) return 0;
    const char *hint = s == CUBLAS_STATUS_NOT_INITIALIZED ? "cuBLAS could not start: is a GPU visible? check nvidia-smi"
                     : s == CUBLAS_STATUS_ALLOC_FAILED    ? "out of GPU memory for cuBLAS's workspace"
                     : s == CUBLAS_STATUS_INVALID_VALUE   ? "a GEMM size or leading dimension is invalid (lda < columns?)"
                     : s == CUBLAS_STATUS_EXECUTION_FAILED ? "a cuBLAS kernel failed; an earlier fault may have broken the context"
                     : "see the cuBLAS documentation for this status";
    record_error(file, line, call, cublasGetStatusString(s), hint);
    return -1;
}

// A launch error (bad configuration) shows at once; a fault inside the kernel only at the
// next synchronization, or right here under LRSH_CUDA_SYNC=1.
static void check_launch(const char *file, int line, const char *kernel) {
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess && cuda.sync_each_launch) e = cudaDeviceSynchronize();
    check_cuda(e, file, line, kernel);
}

#define CUDA_CHECK(call) check_cuda((call), __FILE__, __LINE__, #call)
#define CUBLAS_CHECK(call) check_cublas((call), __FILE__, __LINE__, #call)
#define LAUNCH_CHECK(kernel) check_launch(__FILE__, __LINE__, kernel)

// Blocks for a grid-stride loop over n items.
static unsigned grid_for(long n, int threads) {
    long blocks = (n + threads - 1) / threads;
    return (unsigned)(blocks < 65536 * 8 ? blocks : 65536 * 8);
}

// ---- block reductions ---------------------------------------------------------------------
// Butterfly shuffles leave the same bits in every lane (a+b == b+a in IEEE arithmetic), and
// the order of additions depends only on blockDim: deterministic.

template <typename T> __device__ T warp_sum(T v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Every thread of the block gets the total; blockDim.x a multiple of 32. shared: 32 slots,
// reusable right after the call returns (the first barrier protects the previous use).
template <typename T> __device__ T block_sum(T v, T *shared) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    T t = lane < warps ? shared[lane] : (T)0;
    return warp_sum(t);
}

__device__ float block_max(float v, float *shared) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    float t = lane < warps ? shared[lane] : -INFINITY;
    return warp_max(t);
}

// ---- memory -------------------------------------------------------------------------------

static void *cuda_alloc(size_t bytes) {
    void *p = NULL;
    size_t size = bytes ? bytes : 256;   // a zero-size buffer is still a buffer, not out of memory
    cudaError_t e = cudaMalloc(&p, size);
    if (e != cudaSuccess) {
        // Out of memory is the caller's to report (alloc returns NULL); anything else is recorded.
        if (e != cudaErrorMemoryAllocation) check_cuda(e, __FILE__, __LINE__, "cudaMalloc");
        cudaGetLastError();   // clear the non-sticky error so later calls do not see it
        return NULL;
    }
    if (CUDA_CHECK(cudaMemset(p, 0, size))) {
        cudaFree(p);
        return NULL;
    }
    return p;
}

static void cuda_release(void *ptr) {
    if (ptr) CUDA_CHECK(cudaFree(ptr));
}

// Synchronous copies on the legacy default stream, where every kernel also runs: a download
// waits for the kernels that wrote its source.
static void cuda_upload(void *dst, const void *host_src, size_t bytes) {
    if (bytes) CUDA_CHECK(cudaMemcpy(dst, host_src, bytes, cudaMemcpyHostToDevice));
}

static void cuda_download(void *host_dst, const void *src, size_t bytes) {
    if (bytes) CUDA_CHECK(cudaMemcpy(host_dst, src, bytes, cudaMemcpyDeviceToHost));
}

// The CPU backend's copy is a memmove; cudaMemcpy is undefined on overlapping ranges, so an
// overlap goes through a temporary buffer.
static void cuda_copy(void *dst, const void *src, size_t bytes) {
    if (!bytes || dst == src) return;
    const char *d = (const char *)dst, *s = (const char *)src;
    if (d + bytes <= s || s + bytes <= d) {
        CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice));
        return;
    }
    void *tmp = NULL;
    if (CUDA_CHECK(cudaMalloc(&tmp, bytes))) return;
    CUDA_CHECK(cudaMemcpy(tmp, src, bytes, cudaMemcpyDeviceToDevice));
    CUDA_CHECK(cudaMemcpy(dst, tmp, bytes, cudaMemcpyDeviceToDevice));
    CUDA_CHECK(cudaFree(tmp));
}

static void cuda_zero(void *dst, size_t bytes) {
    if (bytes) CUDA_CHECK(cudaMemset(dst, 0, bytes));
}

static size_t cuda_mem_available(void) {
    size_t free_bytes = 0, total = 0;
    if (CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total))) return 0;
    return free_bytes > MEM_RESERVE ? free_bytes - MEM_RESERVE : 0;
}

// A grow-only work buffer: allocated on first need per size, reused by every later call.
static float *scratch_floats(size_t n) {
    if (n <= cuda.scratch_floats) return cuda.scratch;
    if (cuda.scratch) CUDA_CHECK(cudaFree(cuda.scratch));
    cuda.scratch = NULL;
    cuda.scratch_floats = 0;
    if (cudaMalloc((void **)&cuda.scratch, n * sizeof(float)) != cudaSuccess) {
        cudaGetLastError();
        cuda.scratch = NULL;
        return NULL;
    }
    cuda.scratch_floats = n;
    return cuda.scratch;
}

// ---- GEMM ---------------------------------------------------------------------------------

// C = beta·C over m×n (k = 0: BLAS implementations disagree there, so the CPU does it by hand)
__global__ void k_scale_matrix(float *c, int m, int n, int ldc, float beta) {
    long total = (long)m * n;
    for (long idx = blockIdx.x * (long)blockDim.x + threadIdx.x; idx < total; idx += (long)gridDim.x * blockDim.x) {
        long i = idx / n, j = idx % n;
        float *x = c + i * ldc + j;
        *x = beta == 0.0f ? 0.0f : beta * *x;   // beta = 0 ignores C (NaN included)
    }
}

// Row-major C = alpha·op(A)·op(B) + beta·C is column-major Cᵀ = alpha·op(B)ᵀ·op(A)ᵀ + beta·Cᵀ,
// and a row-major matrix with leading dimension ld is its transpose in column-major with the
// same ld: so cuBLAS gets B first, then A, with the same trans flags, and n, m swapped.
static void cuda_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                      const float *b, int ldb, float beta, float *c, int ldc) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        k_scale_matrix<<<grid_for((long)m * n, THREADS), THREADS>>>(c, m, n, ldc, beta);
        LAUNCH_CHECK("k_scale_matrix");
        return;
    }
    // cuBLAS does not read C when beta == 0, so NaN in C is ignored there as on the CPU
    CUBLAS_CHECK(cublasGemmEx(cuda.blas, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                              n, m, k, &alpha, b, CUDA_R_32F, ldb, a, CUDA_R_32F, lda, &beta, c, CUDA_R_32F, ldc,
                              cuda.compute, CUBLAS_GEMM_DEFAULT));
}

// One after the other on the one stream (products side by side on several streams: not yet).
static void cuda_gemm_batch(const GemmCall *calls, int count) {
    for (int i = 0; i < count; i++) {
        const GemmCall *g = &calls[i];
        cuda_gemm(g->trans_a, g->trans_b, g->m, g->n, g->k, g->alpha, g->a, g->lda, g->b, g->ldb, g->beta, g->c, g->ldc);
    }
}

// ---- embedding ----------------------------------------------------------------------------

__global__ void k_embedding_forward(float *out, const int32_t *tokens, const float *table, int n, int dim) {
    long total = (long)n * dim;
    for (long idx = blockIdx.x * (long)blockDim.x + threadIdx.x; idx < total; idx += (long)gridDim.x * blockDim.x) {
        long i = idx / dim, c = idx % dim;
        out[idx] = table[(long)tokens[i] * dim + c];
    }
}

// One thread per column walks every token in order (repeated tokens collide on rows, so
// tokens cannot be split without atomics): the same additions in the same order as the CPU.
__global__ void k_embedding_backward(float *dtable, const float *dout, const int32_t *tokens, int n, int dim) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= dim) return;
    for (int i = 0; i < n; i++) dtable[(long)tokens[i] * dim + c] += dout[(long)i * dim + c];
}

static void cuda_embedding_forward(float *out, const int32_t *tokens, const float *table, int n, int dim) {
    if (n <= 0 || dim <= 0) return;
    k_embedding_forward<<<grid_for((long)n * dim, THREADS), THREADS>>>(out, tokens, table, n, dim);
    LAUNCH_CHECK("k_embedding_forward");
}

static void cuda_embedding_backward(float *dtable, const float *dout, const int32_t *tokens, int n, int dim) {
    if (n <= 0 || dim <= 0) return;
    int threads = 128;
    k_embedding_backward<<<(dim + threads - 1) / threads, threads>>>(dtable, dout, tokens, n, dim);
    LAUNCH_CHECK("k_embedding_backward");
}

// ---- RMSNorm ------------------------------------------------------------------------------

// One block per row.
__global__ void k_rmsnorm_forward(float *out, float *rstd, const float *x, const float *gain, int dim, float eps) {
    __shared__ float red[32];
    long r = blockIdx.x;
    const float *xr = x + r * dim;
    float *yr = out + r * dim;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) ss += xr[i] * xr[i];
    ss = block_sum(ss, red);
    float s = 1.0f / sqrtf(ss / (float)dim + eps);
    if (threadIdx.x == 0) rstd[r] = s;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = xr[i] * s * gain[i];
}

// dx_j += s·g_j·dy_j − (s³/dim)·x_j·Σ_i dy_i·g_i·x_i, one block per row.
__global__ void k_rmsnorm_backward_dx(float *dx, const float *dout, const float *x, const float *gain,
                                      const float *rstd, int dim) {
    __shared__ float red[32];
    long r = blockIdx.x;
    const float *xr = x + r * dim, *dy = dout + r * dim;
    float *dxr = dx + r * dim;
    float s = rstd[r];
    float dot = 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) dot += dy[i] * gain[i] * xr[i];
    dot = block_sum(dot, red);
    float c = s * s * s * dot / (float)dim;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) dxr[i] += s * gain[i] * dy[i] - c * xr[i];
}

// dgain_i = Σ_rows dy_i·x_i·s, in chunks of rows (blockIdx.y) with a thread per column:
// add = 0 writes chunk sums into dst(chunks, dim); add = 1 (a single chunk) adds into dst(dim).
__global__ void k_rmsnorm_dgain(float *dst, int add, const float *dout, const float *x, const float *rstd,
                                int n, int dim, int chunk_rows) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= dim) return;
    long r0 = (long)blockIdx.y * chunk_rows, r1 = r0 + chunk_rows < n ? r0 + chunk_rows : n;
    float acc = 0.0f;
    for (long r = r0; r < r1; r++) acc += dout[r * dim + i] * x[r * dim + i] * rstd[r];
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

static void cuda_rmsnorm_forward(float *out, float *rstd, const float *x, const float *gain, int n, int dim, float eps) {
    if (n <= 0 || dim <= 0) return;
    k_rmsnorm_forward<<<n, THREADS>>>(out, rstd, x, gain, dim, eps);
    LAUNCH_CHECK("k_rmsnorm_forward");
}

static void cuda_rmsnorm_backward(float *dx, float *dgain, const float *dout, const float *x, const float *gain,
                                  const float *rstd, int n, int dim) {
    if (n <= 0 || dim <= 0) return;
    k_rmsnorm_backward_dx<<<n, THREADS>>>(dx, dout, x, gain, rstd, dim);
    LAUNCH_CHECK("k_rmsnorm_backward_dx");
    dim3 cols((dim + THREADS - 1) / THREADS);
    int chunks = (n + NORM_CHUNK_ROWS - 1) / NORM_CHUNK_ROWS;
    float *partial = chunks > 1 ? scratch_floats((size_t)chunks * dim) : NULL;
    if (!partial) {   // one chunk, or no memory for the partial sums: one pass over all rows
        k_rmsnorm_dgain<<<cols, THREADS>>>(dgain, 1, dout, x, rstd, n, dim, n);
        LAUNCH_CHECK("k_rmsnorm_dgain");
        return;
    }
    k_rmsnorm_dgain<<<dim3(cols.x, chunks), THREADS>>>(partial, 0, dout, x, rstd, n, dim, NORM_CHUNK_ROWS);
    LAUNCH_CHECK("k_rmsnorm_dgain");
    k_sum_chunks<<<cols, THREADS>>>(dgain, partial, chunks, dim);
    LAUNCH_CHECK("k_sum_chunks");
}

// ---- RoPE ---------------------------------------------------------------------------------

// One thread per pair (b, t, h, i). The angle is formed and reduced to [−π, π] in double, as
// on the CPU (pos·freq reaches thousands of radians, where float loses the phase), then
// sincosf of the reduced angle. backward = 0: out = R·in (in place allowed: each pair is read
// before it is written); backward = 1: out += Rᵀ·in.
__global__ void k_rope(float *out, const float *in, int B, int T, int H, int hd, int pos0, float theta, int backward) {
    int half = hd / 2;
    long total = (long)B * T * H * half;
    for (long idx = blockIdx.x * (long)blockDim.x + threadIdx.x; idx < total; idx += (long)gridDim.x * blockDim.x) {
        int i = (int)(idx % half);
        long rest = idx / half;
        int h = (int)(rest % H);
        rest /= H;
        int t = (int)(rest % T);
        long b = rest / T;
        double freq = pow((double)theta, -2.0 * i / hd);
        double angle = (double)(pos0 + t) * freq;
        angle -= 2.0 * M_PI * rint(angle / (2.0 * M_PI));
        float s, c;
        sincosf((float)angle, &s, &c);
        long at = ((b * T + t) * H + h) * hd + 2 * i;
        float x0 = in[at], x1 = in[at + 1];
        if (!backward) {
            out[at] = x0 * c - x1 * s;
            out[at + 1] = x0 * s + x1 * c;
        } else {
            out[at] += x0 * c + x1 * s;
            out[at + 1] += -x0 * s + x1 * c;
        }
    }
}

static void cuda_rope_forward(float *out, const float *in, int B, int T, int H, int hd, int pos0, float theta) {
    long pairs = (long)B * T * H * (hd / 2);
    if (pairs <= 0) return;
    k_rope<<<grid_for(pairs, THREADS), THREADS>>>(out, in, B, T, H, hd, pos0, theta, 0);
    LAUNCH_CHECK("k_rope (forward)");
}

static void cuda_rope_backward(float *din, const float *dout, int B, int T, int H, int hd, int pos0, float theta) {
    long pairs = (long)B * T * H * (hd / 2);
    if (pairs <= 0) return;
    k_rope<<<grid_for(pairs, THREADS), THREADS>>>(din, dout, B, T, H, hd, pos0, theta, 1);
    LAUNCH_CHECK("k_rope (backward)");
}

// ---- attention ----------------------------------------------------------------------------
// The simple correct version: one block per (query row t, head h, batch b), the row's scores
// kept in att itself (global memory, so no limit on Tk). Query t sits at absolute position
// Tk−Tq+t and sees L = Tk−Tq+t+1 keys; probabilities past L are stored as 0, as on the CPU.

__global__ void k_attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                                    int Tq, int Tk, int H, int KVH, int hd, float scale) {
    extern __shared__ float qs[];   // (hd) this row's query
    __shared__ float red[32];
    int t = blockIdx.x, h = blockIdx.y;
    long b = blockIdx.z;
    int g = h / (H / KVH);
    int L = Tk - Tq + t + 1;
    long ks = (long)KVH * hd;                                      // row stride of k and v
    const float *qr = q + ((b * Tq + t) * H + h) * hd;
    const float *kb = k + (b * Tk * KVH + g) * hd, *vb = v + (b * Tk * KVH + g) * hd;
    float *p = att + ((b * H + h) * Tq + t) * (long)Tk;           // (Tk)
    float *o = out + ((b * Tq + t) * H + h) * hd;                  // (hd)
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    for (int i = threadIdx.x; i < hd; i += blockDim.x) qs[i] = qr[i];
    __syncthreads();
    // scores: a warp per key, lanes across hd
    float mx = -INFINITY;
    for (int j = warp; j < L; j += warps) {
        const float *kr = kb + j * ks;
        float d = 0.0f;
        for (int i = lane; i < hd; i += 32) d += qs[i] * kr[i];
        d = scale * warp_sum(d);
        if (lane == 0) p[j] = d;
        mx = fmaxf(mx, d);
    }
    mx = block_max(mx, red);   // its barriers also publish the scores to the whole block
    float sum = 0.0f;
    for (int j = threadIdx.x; j < L; j += blockDim.x) {
        float e = expf(p[j] - mx);
        p[j] = e;
        sum += e;
    }
    sum = block_sum(sum, red);
    float inv = 1.0f / sum;
    for (int j = threadIdx.x; j < Tk; j += blockDim.x) p[j] = j < L ? p[j] * inv : 0.0f;
    __syncthreads();
    // out = P·V: a thread per output column, keys in order
    for (int i = threadIdx.x; i < hd; i += blockDim.x) {
        float acc = 0.0f;
        for (int j = 0; j < L; j++) acc += p[j] * vb[j * ks + i];
        o[i] = acc;
    }
}

// Backward, part 1, one block per query row: dP = do·vᵀ, dS = P ⊙ (dP − Σ P ⊙ dP) stored in
// scratch (0 past L), dq += scale·dS·k.
__global__ void k_attention_backward_rows(float *dq, float *ds, const float *dout, const float *att,
                                          const float *k, const float *v, int Tq, int Tk, int H, int KVH, int hd,
                                          float scale) {
    extern __shared__ float dos[];  // (hd) this row's dout
    __shared__ float red[32];
    int t = blockIdx.x, h = blockIdx.y;
    long b = blockIdx.z;
    int g = h / (H / KVH);
    int L = Tk - Tq + t + 1;
    long ks = (long)KVH * hd;
    long row = ((b * Tq + t) * H + h) * hd;
    const float *kb = k + (b * Tk * KVH + g) * hd, *vb = v + (b * Tk * KVH + g) * hd;
    const float *p = att + ((b * H + h) * Tq + t) * (long)Tk;
    float *d = ds + ((b * H + h) * Tq + t) * (long)Tk;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    for (int i = threadIdx.x; i < hd; i += blockDim.x) dos[i] = dout[row + i];
    __syncthreads();
    for (int j = warp; j < L; j += warps) {
        const float *vr = vb + j * ks;
        float dp = 0.0f;
        for (int i = lane; i < hd; i += 32) dp += dos[i] * vr[i];
        dp = warp_sum(dp);
        if (lane == 0) d[j] = dp;
    }
    __syncthreads();
    float dot = 0.0f;
    for (int j = threadIdx.x; j < L; j += blockDim.x) dot += p[j] * d[j];
    dot = block_sum(dot, red);
    for (int j = threadIdx.x; j < Tk; j += blockDim.x) d[j] = j < L ? p[j] * (d[j] - dot) : 0.0f;
    __syncthreads();
    for (int i = threadIdx.x; i < hd; i += blockDim.x) {
        float acc = 0.0f;
        for (int j = 0; j < L; j++) acc += d[j] * kb[j * ks + i];
        dq[row + i] += scale * acc;
    }
}

// Backward, part 2, one block per (key j, kv head g, batch b), a thread per column: every
// query head of the group and every query that sees key j add into dk[j], dv[j] in a fixed
// order, so grouped heads need no atomics.
__global__ void k_attention_backward_keys(float *dk, float *dv, const float *ds, const float *dout,
                                          const float *att, const float *q, int Tq, int Tk, int H, int KVH,
                                          int hd, float scale) {
    int j = blockIdx.x, g = blockIdx.y;
    long b = blockIdx.z;
    int group = H / KVH;
    int first = j - (Tk - Tq) > 0 ? j - (Tk - Tq) : 0;           // the first query that sees key j
    long kv = ((b * Tk + j) * KVH + g) * hd;
    for (int i = threadIdx.x; i < hd; i += blockDim.x) {
        float acc_v = 0.0f, acc_k = 0.0f;
        for (int h = g * group; h < (g + 1) * group; h++) {
            const float *pcol = att + (b * H + h) * (long)Tq * Tk + j;   // P[t][j] at pcol[t·Tk]
            const float *dcol = ds + (b * H + h) * (long)Tq * Tk + j;
            for (int t = first; t < Tq; t++) {
                long qi = ((b * Tq + t) * H + h) * hd + i;
                acc_v += pcol[(long)t * Tk] * dout[qi];
                acc_k += dcol[(long)t * Tk] * q[qi];
            }
        }
        dv[kv + i] += acc_v;
        dk[kv + i] += scale * acc_k;
    }
}

// ---- flash-style attention: the T×T matrix is never stored --------------------------------
// A warp per query row, the row's query and output accumulator in registers (hd ≤ 256: up to
// 8 values a lane), the keys in order with an online softmax (running max m and sum l); the
// forward keeps only each row's log-sum-exp. Backward recomputes P = exp(s − lse): a warp per
// query row for dq (first D = Σ_j P·dP, then dq), a warp per (key, kv head) for dk and dv, in a
// fixed order (no atomics). Correctness first: not yet tuned (no shared-memory tiles).
// NOT YET RUN ON A GPU: selected by LRSH_CUDA_ATTENTION=flash or backend_cuda_set_attention;
// tests/test_cuda.c checks it against the CPU.

#define FLASH_WARPS 4
#define FLASH_MAX_HD 256
#define FLASH_PER_LANE (FLASH_MAX_HD / 32)

// This lane's share of a row of hd values: x[lane + 32u] for u < FLASH_PER_LANE (0 past hd).
__device__ void lane_load(float *dst, const float *row, int hd, float scale) {
    int lane = threadIdx.x & 31;
#pragma unroll
    for (int u = 0; u < FLASH_PER_LANE; u++) {
        int i = lane + 32 * u;
        dst[u] = i < hd ? scale * row[i] : 0.0f;
    }
}

// Σ_i a_i·row_i over the warp (every lane gets it).
__device__ float lane_dot(const float *a, const float *row, int hd) {
    int lane = threadIdx.x & 31;
    float d = 0.0f;
#pragma unroll
    for (int u = 0; u < FLASH_PER_LANE; u++) {
        int i = lane + 32 * u;
        if (i < hd) d += a[u] * row[i];
    }
    return warp_sum(d);
}

__global__ void k_flash_forward(float *out, float *lse, const float *q, const float *k, const float *v, int Tq,
                                int Tk, int H, int KVH, int hd, float scale) {
    int t = blockIdx.x * FLASH_WARPS + (threadIdx.x >> 5), h = blockIdx.y, lane = threadIdx.x & 31;
    long b = blockIdx.z;
    if (t >= Tq) return;                                           // a whole warp leaves together
    int g = h / (H / KVH), L = Tk - Tq + t + 1;
    long ks = (long)KVH * hd, row = ((b * Tq + t) * H + h) * hd;
    const float *kb = k + (b * Tk * KVH + g) * hd, *vb = v + (b * Tk * KVH + g) * hd;
    float qv[FLASH_PER_LANE], acc[FLASH_PER_LANE];
    lane_load(qv, q + row, hd, scale);
#pragma unroll
    for (int u = 0; u < FLASH_PER_LANE; u++) acc[u] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    for (int j = 0; j < L; j++) {
        float s = lane_dot(qv, kb + j * ks, hd);                   // scale·q·k_j
        float m_new = fmaxf(m, s), c = expf(m - m_new), p = expf(s - m_new);   // c = 0 at the first key
        l = l * c + p;
        const float *vr = vb + j * ks;
#pragma unroll
        for (int u = 0; u < FLASH_PER_LANE; u++) {
            int i = lane + 32 * u;
            if (i < hd) acc[u] = acc[u] * c + p * vr[i];
        }
        m = m_new;
    }
#pragma unroll
    for (int u = 0; u < FLASH_PER_LANE; u++) {
        int i = lane + 32 * u;
        if (i < hd) out[row + i] = acc[u] / l;
    }
    if (lane == 0) lse[(b * H + h) * Tq + t] = m + logf(l);
}

// dq += scale·Σ_j dS_ij·k_j with dS = P ⊙ (dP − D), dP_ij = do_i·v_j, D_i = Σ_j P_ij·dP_ij
// (kept in dsum for the keys' kernel).
__global__ void k_flash_backward_dq(float *dq, float *dsum, const float *dout, const float *lse, const float *q,
                                    const float *k, const float *v, int Tq, int Tk, int H, int KVH, int hd,
                                    float scale) {
    int t = blockIdx.x * FLASH_WARPS + (threadIdx.x >> 5), h = blockIdx.y, lane = threadIdx.x & 31;
    long b = blockIdx.z;
    if (t >= Tq) return;
    int g = h / (H / KVH), L = Tk - Tq + t + 1;
    long ks = (long)KVH * hd, row = ((b * Tq + t) * H + h) * hd, at = (b * H + h) * Tq + t;
    const float *kb = k + (b * Tk * KVH + g) * hd, *vb = v + (b * Tk * KVH + g) * hd;
    float qv[FLASH_PER_LANE], dov[FLASH_PER_LANE], acc[FLASH_PER_LANE];
    lane_load(qv, q + row, hd, scale);
    lane_load(dov, dout + row, hd, 1.0f);
    float lse_t = lse[at], D = 0.0f;
    for (int j = 0; j < L; j++) {
        float p = expf(lane_dot(qv, kb + j * ks, hd) - lse_t);
        D += p * lane_dot(dov, vb + j * ks, hd);
    }
#pragma unroll
    for (int u = 0; u < FLASH_PER_LANE; u++) acc[u] = 0.0f;
    for (int j = 0; j < L; j++) {
        const float *kr = kb + j * ks;
        float p = expf(lane_dot(qv, kr, hd) - lse_t);
        float ds = p * (lane_dot(dov, vb + j * ks, hd) - D);
#pragma unroll
        for (int u = 0; u < FLASH_PER_LANE; u++) {
            int i = lane + 32 * u;
            if (i < hd) acc[u] += ds * kr[i];
        }
    }
#pragma unroll
    for (int u = 0; u < FLASH_PER_LANE; u++) {
        int i = lane + 32 * u;
        if (i < hd) dq[row + i] += scale * acc[u];
    }
    if (lane == 0) dsum[at] = D;
}

// A warp per (key j, kv head g, batch b): every query head of the group and every query that
// sees key j, in order: dv_j += Σ P·do, dk_j += scale·Σ dS·q.
__global__ void k_flash_backward_dkdv(float *dk, float *dv, const float *dsum, const float *dout, const float *lse,
                                      const float *q, const float *k, const float *v, int Tq, int Tk, int H,
                                      int KVH, int hd, float scale) {
    int j = blockIdx.x * FLASH_WARPS + (threadIdx.x >> 5), g = blockIdx.y, lane = threadIdx.x & 31;
    long b = blockIdx.z;
    if (j >= Tk) return;
    int group = H / KVH, first = j - (Tk - Tq) > 0 ? j - (Tk - Tq) : 0;   // the first query that sees key j
    long kv = ((b * Tk + j) * KVH + g) * hd;
    float kv_k[FLASH_PER_LANE], kv_v[FLASH_PER_LANE], acc_k[FLASH_PER_LANE], acc_v[FLASH_PER_LANE];
    lane_load(kv_k, k + kv, hd, scale);
    lane_load(kv_v, v + kv, hd, 1.0f);
#pragma unroll
    for (int u = 0; u < FLASH_PER_LANE; u++) acc_k[u] = acc_v[u] = 0.0f;
    for (int h = g * group; h < (g + 1) * group; h++)
        for (int t = first; t < Tq; t++) {
            long row = ((b * Tq + t) * H + h) * hd, at = (b * H + h) * Tq + t;
            float p = expf(lane_dot(kv_k, q + row, hd) - lse[at]);
            float ds = p * (lane_dot(kv_v, dout + row, hd) - dsum[at]);
#pragma unroll
            for (int u = 0; u < FLASH_PER_LANE; u++) {
                int i = lane + 32 * u;
                if (i < hd) {
                    acc_v[u] += p * dout[row + i];
                    acc_k[u] += ds * q[row + i];
                }
            }
        }
#pragma unroll
    for (int u = 0; u < FLASH_PER_LANE; u++) {
        int i = lane + 32 * u;
        if (i < hd) {
            dv[kv + i] += acc_v[u];
            dk[kv + i] += scale * acc_k[u];
        }
    }
}

static int flash_on(int hd) { return cuda.flash && hd <= FLASH_MAX_HD; }

static size_t cuda_attention_saved_floats(int B, int H, int Tq, int Tk, int hd) {
    return flash_on(hd) ? (size_t)B * H * Tq : (size_t)B * H * Tq * Tk;
}

static int attention_shape_ok(int B, int Tq, int Tk, int H, int KVH, int hd, const char *what) {
    if (B <= 0 || Tq <= 0 || H <= 0 || hd <= 0) return 0;
    if (KVH <= 0 || H % KVH || Tk < Tq || B > 65535 || H > 65535 || KVH > 65535) {
        char call[128];
        snprintf(call, sizeof call, "%s(B=%d, Tq=%d, Tk=%d, H=%d, KVH=%d, hd=%d)", what, B, Tq, Tk, H, KVH, hd);
        record_error(__FILE__, __LINE__, call, "unsupported shape", "needs Tk >= Tq, H a multiple of KVH, B and H below 65536");
        return 0;
    }
    return 1;
}

static void cuda_attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                                   int B, int Tq, int Tk, int H, int KVH, int hd) {
    if (!attention_shape_ok(B, Tq, Tk, H, KVH, hd, "attention_forward")) return;
    float scale = 1.0f / sqrtf((float)hd);
    if (flash_on(hd)) {
        k_flash_forward<<<dim3((Tq + FLASH_WARPS - 1) / FLASH_WARPS, H, B), 32 * FLASH_WARPS>>>(out, att, q, k, v, Tq,
                                                                                                Tk, H, KVH, hd, scale);
        LAUNCH_CHECK("k_flash_forward");
        return;
    }
    k_attention_forward<<<dim3(Tq, H, B), ATT_THREADS, hd * sizeof(float)>>>(out, att, q, k, v, Tq, Tk, H, KVH, hd, scale);
    LAUNCH_CHECK("k_attention_forward");
}

static void cuda_attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                                    const float *att, const float *q, const float *k, const float *v,
                                    int B, int Tq, int Tk, int H, int KVH, int hd) {
    if (!attention_shape_ok(B, Tq, Tk, H, KVH, hd, "attention_backward")) return;
    float scale = 1.0f / sqrtf((float)hd);
    if (flash_on(hd)) {   // att: the rows' log-sum-exp; scratch: their D
        k_flash_backward_dq<<<dim3((Tq + FLASH_WARPS - 1) / FLASH_WARPS, H, B), 32 * FLASH_WARPS>>>(
            dq, scratch, dout, att, q, k, v, Tq, Tk, H, KVH, hd, scale);
        LAUNCH_CHECK("k_flash_backward_dq");
        k_flash_backward_dkdv<<<dim3((Tk + FLASH_WARPS - 1) / FLASH_WARPS, KVH, B), 32 * FLASH_WARPS>>>(
            dk, dv, scratch, dout, att, q, k, v, Tq, Tk, H, KVH, hd, scale);
        LAUNCH_CHECK("k_flash_backward_dkdv");
        return;
    }
    k_attention_backward_rows<<<dim3(Tq, H, B), ATT_THREADS, hd * sizeof(float)>>>(dq, scratch, dout, att, k, v, Tq,
                                                                                    Tk, H, KVH, hd, scale);
    LAUNCH_CHECK("k_attention_backward_rows");
    int threads = hd < ATT_THREADS ? (hd + 31) / 32 * 32 : ATT_THREADS;
    k_attention_backward_keys<<<dim3(Tk, KVH, B), threads>>>(dk, dv, scratch, dout, att, q, Tq, Tk, H, KVH, hd, scale);
    LAUNCH_CHECK("k_attention_backward_keys");
}

// ---- SwiGLU, softmax cross-entropy ---------------------------------------------------------

__device__ float swish_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

__global__ void k_swiglu_forward(float *out, const float *gate, const float *up, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        float g = gate[i];
        out[i] = g * swish_sigmoid(g) * up[i];
    }
}

__global__ void k_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        float g = gate[i], s = swish_sigmoid(g);
        dgate[i] += dout[i] * up[i] * s * (1.0f + g * (1.0f - s));
        dup[i] += dout[i] * g * s;
    }
}

static void cuda_swiglu_forward(float *out, const float *gate, const float *up, long n) {
    if (n <= 0) return;
    k_swiglu_forward<<<grid_for(n, THREADS), THREADS>>>(out, gate, up, n);
    LAUNCH_CHECK("k_swiglu_forward");
}

static void cuda_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, long n) {
    if (n <= 0) return;
    k_swiglu_backward<<<grid_for(n, THREADS), THREADS>>>(dgate, dup, dout, gate, up, n);
    LAUNCH_CHECK("k_swiglu_backward");
}

// One block per row. In place (dlogits == logits) is safe: every thread reads x[target] before
// the first barrier (inside block_max), and each later write goes over the logit it came from.
__global__ void k_softmax_xent(float *losses, float *dlogits, const float *logits, const int32_t *targets, int V,
                               float dscale) {
    __shared__ float red[32];
    long r = blockIdx.x;
    const float *x = logits + r * V;
    int target = targets[r];
    float x_target = x[target];
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < V; j += blockDim.x) mx = fmaxf(mx, x[j]);
    mx = block_max(mx, red);
    float sum = 0.0f;
    if (dlogits) {
        float *d = dlogits + r * V;
        for (int j = threadIdx.x; j < V; j += blockDim.x) {
            float e = expf(x[j] - mx);
            d[j] = e;
            sum += e;
        }
        sum = block_sum(sum, red);
        float c = dscale / sum;
        for (int j = threadIdx.x; j < V; j += blockDim.x) d[j] *= c;
        __syncthreads();   // d[target] scaled by its owner before the one-hot is taken off
        if (threadIdx.x == 0) d[target] -= dscale;
    } else {
        for (int j = threadIdx.x; j < V; j += blockDim.x) sum += expf(x[j] - mx);
        sum = block_sum(sum, red);
    }
    if (threadIdx.x == 0) losses[r] = logf(sum) + mx - x_target;
}

static void cuda_softmax_xent_forward(float *losses, float *dlogits, const float *logits, const int32_t *targets,
                                      int n, int V, float dscale) {
    if (n <= 0 || V <= 0) return;
    k_softmax_xent<<<n, THREADS>>>(losses, dlogits, logits, targets, V, dscale);
    LAUNCH_CHECK("k_softmax_xent");
}

// ---- elementwise, reductions, AdamW ----------------------------------------------------------

__global__ void k_add(float *y, const float *x, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) y[i] += x[i];
}

__global__ void k_scale(float *x, float s, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) x[i] *= s;
}

__global__ void k_add_matrix(float *y, int ldy, const float *x, int ldx, int rows, int cols, float beta) {
    long total = (long)rows * cols;
    for (long idx = blockIdx.x * (long)blockDim.x + threadIdx.x; idx < total; idx += (long)gridDim.x * blockDim.x) {
        long i = idx / cols, j = idx % cols;
        float *yi = y + i * ldy + j;
        *yi = beta == 0.0f ? x[i * ldx + j] : x[i * ldx + j] + beta * *yi;   // beta = 0 ignores y
    }
}

static void cuda_add_matrix(float *y, int ldy, const float *x, int ldx, int rows, int cols, float beta) {
    if (rows <= 0 || cols <= 0) return;
    k_add_matrix<<<grid_for((long)rows * cols, THREADS), THREADS>>>(y, ldy, x, ldx, rows, cols, beta);
    LAUNCH_CHECK("k_add_matrix");
}

static void cuda_add(float *y, const float *x, long n) {
    if (n <= 0) return;
    k_add<<<grid_for(n, THREADS), THREADS>>>(y, x, n);
    LAUNCH_CHECK("k_add");
}

static void cuda_scale(float *x, float s, long n) {
    if (n <= 0) return;
    k_scale<<<grid_for(n, THREADS), THREADS>>>(x, s, n);
    LAUNCH_CHECK("k_scale");
}

// Pass 1: REDUCE_BLOCKS blocks, each a fixed grid-stride share of x summed in double.
__global__ void k_reduce_partial(double *partials, const float *x, long n, int squares) {
    __shared__ double red[32];
    double acc = 0.0;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        double xi = x[i];
        acc += squares ? xi * xi : xi;
    }
    acc = block_sum(acc, red);
    if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

// Pass 2: one block adds the REDUCE_BLOCKS partial sums into partials[REDUCE_BLOCKS].
__global__ void k_reduce_final(double *partials) {
    __shared__ double red[32];
    double acc = 0.0;
    for (int i = threadIdx.x; i < REDUCE_BLOCKS; i += blockDim.x) acc += partials[i];
    acc = block_sum(acc, red);
    if (threadIdx.x == 0) partials[REDUCE_BLOCKS] = acc;
}

static double reduce(const float *x, long n, int squares) {
    if (n <= 0) return 0.0;
    k_reduce_partial<<<REDUCE_BLOCKS, THREADS>>>(cuda.partials, x, n, squares);
    LAUNCH_CHECK("k_reduce_partial");
    k_reduce_final<<<1, THREADS>>>(cuda.partials);
    LAUNCH_CHECK("k_reduce_final");
    double total = NAN;
    if (CUDA_CHECK(cudaMemcpy(&total, cuda.partials + REDUCE_BLOCKS, sizeof total, cudaMemcpyDeviceToHost)))
        return NAN;   // the caller's finiteness checks then stop training instead of using a wrong norm
    return total;
}

static double cuda_sum(const float *x, long n) { return reduce(x, n, 0); }
static double cuda_sumsq(const float *x, long n) { return reduce(x, n, 1); }

// The CPU's update operation for operation (see kernels/cpu/adamw.c); the bias corrections
// come from the host, computed there exactly as the CPU computes them.
__global__ void k_adamw(float *param, const float *grad, float *m, float *v, long n, float beta1, float beta2,
                        float eps, float grad_scale, float step, float inv_sqrt_bc2, float decay) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        float g = grad[i] * grad_scale;
        float mi = beta1 * m[i] + (1.0f - beta1) * g;
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        param[i] = param[i] * decay - step * mi / (sqrtf(vi) * inv_sqrt_bc2 + eps);
    }
}

static void cuda_adamw_update(float *param, const float *grad, float *m, float *v, long n, float lr, float beta1,
                              float beta2, float eps, float wd, float grad_scale, int t) {
    if (n <= 0) return;
    float bc1 = (float)(1.0 - pow((double)beta1, (double)t));
    float inv_sqrt_bc2 = (float)(1.0 / sqrt(1.0 - pow((double)beta2, (double)t)));
    float step = lr / bc1;
    float decay = 1.0f - lr * wd;
    k_adamw<<<grid_for(n, THREADS), THREADS>>>(param, grad, m, v, n, beta1, beta2, eps, grad_scale, step,
                                               inv_sqrt_bc2, decay);
    LAUNCH_CHECK("k_adamw");
}

// ---- the table ----------------------------------------------------------------------------

static void describe_device(void) {
    int version = 0;
    cublasGetVersion(cuda.blas, &version);
    snprintf(cuda.description, sizeof cuda.description, "cuda: %s (sm_%d%d, %d SMs, %.1f GiB), cuBLAS %d.%d.%d, %s",
             cuda.prop.name, cuda.prop.major, cuda.prop.minor, cuda.prop.multiProcessorCount,
             cuda.prop.totalGlobalMem / 1073741824.0, version / 10000, version / 100 % 100, version % 100,
             cuda.precision);
}

static const char *cuda_describe(void) { return cuda.description; }

static Backend cuda_backend;

// C++17 has no designated initializers: the table is filled field by field, once.
static void fill_table(Backend *t) {
    t->name = "cuda";
    t->describe = cuda_describe;
    t->alloc = cuda_alloc;
    t->release = cuda_release;
    t->upload = cuda_upload;
    t->download = cuda_download;
    t->copy = cuda_copy;
    t->zero = cuda_zero;
    t->mem_available = cuda_mem_available;
    t->gemm = cuda_gemm;
    t->gemm_batch = cuda_gemm_batch;
    t->embedding_forward = cuda_embedding_forward;
    t->embedding_backward = cuda_embedding_backward;
    t->rmsnorm_forward = cuda_rmsnorm_forward;
    t->rmsnorm_backward = cuda_rmsnorm_backward;
    t->rope_forward = cuda_rope_forward;
    t->rope_backward = cuda_rope_backward;
    t->attention_saved_floats = cuda_attention_saved_floats;
    t->attention_forward = cuda_attention_forward;
    t->attention_backward = cuda_attention_backward;
    t->swiglu_forward = cuda_swiglu_forward;
    t->swiglu_backward = cuda_swiglu_backward;
    t->softmax_xent_forward = cuda_softmax_xent_forward;
    t->add = cuda_add;
    t->scale = cuda_scale;
    t->add_matrix = cuda_add_matrix;
    t->sum = cuda_sum;
    t->sumsq = cuda_sumsq;
    t->adamw_update = cuda_adamw_update;
}

static int fail(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *why, size_t cap, const char *fmt, ...) {
    if (why && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, cap, fmt, ap);
        va_end(ap);
    }
    return -1;
}

// Choose device 0, check that this build can run on it, make the cuBLAS handle and the
// reduction buffer. Without a driver or a GPU, cudart answers with an error code (it does not
// crash): that becomes the reason.
static int init(char *why, size_t cap) {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return fail(why, cap, "no CUDA device: cudaGetDeviceCount → %s (%s); is a GPU visible? check nvidia-smi",
                    cudaGetErrorString(e), cudaGetErrorName(e));
    }
    if (count == 0) {
        const char *visible = getenv("CUDA_VISIBLE_DEVICES");
        return fail(why, cap, "no CUDA device: the driver sees none%s%s%s; check nvidia-smi",
                    visible ? " (CUDA_VISIBLE_DEVICES=" : "", visible ? visible : "", visible ? ")" : "");
    }
    cuda.device = 0;
    if ((e = cudaSetDevice(cuda.device)) != cudaSuccess || (e = cudaGetDeviceProperties(&cuda.prop, cuda.device)) != cudaSuccess) {
        cudaGetLastError();
        return fail(why, cap, "CUDA device 0 unusable: %s (%s); check nvidia-smi", cudaGetErrorString(e), cudaGetErrorName(e));
    }
    if (cuda.prop.major < 9)
        return fail(why, cap, "CUDA device 0 unsupported: %s is compute capability %d.%d; this build has code for "
                    "sm_90 (Hopper) and newer only", cuda.prop.name, cuda.prop.major, cuda.prop.minor);
    cublasStatus_t s = cublasCreate(&cuda.blas);
    if (s != CUBLAS_STATUS_SUCCESS)
        return fail(why, cap, "cuBLAS could not start on CUDA device 0: %s; check nvidia-smi", cublasGetStatusString(s));
    cublasSetPointerMode(cuda.blas, CUBLAS_POINTER_MODE_HOST);
    if ((e = cudaMalloc((void **)&cuda.partials, (REDUCE_BLOCKS + 1) * sizeof(double))) != cudaSuccess) {
        cudaGetLastError();
        cublasDestroy(cuda.blas);
        return fail(why, cap, "CUDA device 0: cannot allocate the reduction buffer (%s)", cudaGetErrorString(e));
    }
    const char *sync = getenv("LRSH_CUDA_SYNC"), *attention = getenv("LRSH_CUDA_ATTENTION");
    cuda.sync_each_launch = sync && sync[0] == '1';
    cuda.flash = attention && strcmp(attention, "flash") == 0;
    cuda.compute = CUBLAS_COMPUTE_32F;
    cuda.precision = "fp32";
    cuda.error[0] = 0;
    describe_device();
    fill_table(&cuda_backend);
    cuda.ready = 1;
    return 0;
}

extern "C" const Backend *backend_cuda(char *why, size_t cap) {
    if (!cuda.ready && init(why, cap)) return NULL;
    if (why && cap) why[0] = 0;
    return &cuda_backend;
}

extern "C" const char *backend_cuda_last_error(void) {
    if (cuda.ready) {
        CUDA_CHECK(cudaDeviceSynchronize());
        CUDA_CHECK(cudaGetLastError());
    }
    return cuda.error[0] ? cuda.error : NULL;
}

extern "C" void backend_cuda_clear_error(void) {
    cuda.error[0] = 0;
    if (cuda.ready) cudaGetLastError();
}

extern "C" void backend_cuda_synchronize(void) {
    if (cuda.ready) CUDA_CHECK(cudaDeviceSynchronize());
}

extern "C" int backend_cuda_set_precision(const char *name, char *why, size_t cap) {
    if (!cuda.ready) return fail(why, cap, "the CUDA backend is not started (no device?)");
    cublasComputeType_t compute;
    if (name && strcmp(name, "fp32") == 0) compute = CUBLAS_COMPUTE_32F;
    else if (name && strcmp(name, "tf32") == 0) compute = CUBLAS_COMPUTE_32F_FAST_TF32;
    else if (name && strcmp(name, "bf16") == 0) compute = CUBLAS_COMPUTE_32F_FAST_16BF;
    else return fail(why, cap, "precision '%s' unknown: expected fp32, tf32 or bf16", name ? name : "(null)");
    cuda.compute = compute;
    cuda.precision = compute == CUBLAS_COMPUTE_32F ? "fp32" : compute == CUBLAS_COMPUTE_32F_FAST_TF32 ? "tf32" : "bf16";
    describe_device();
    return 0;
}

extern "C" const char *backend_cuda_precision(void) { return cuda.ready ? cuda.precision : "fp32"; }

extern "C" int backend_cuda_set_attention(const char *name, char *why, size_t cap) {
    if (!cuda.ready) return fail(why, cap, "the CUDA backend is not started (no device?)");
    if (name && strcmp(name, "flash") == 0) cuda.flash = 1;
    else if (name && strcmp(name, "materialized") == 0) cuda.flash = 0;
    else return fail(why, cap, "attention '%s' unknown: expected flash or materialized", name ? name : "(null)");
    return 0;
}

extern "C" const char *backend_cuda_attention(void) { return cuda.flash ? "flash" : "materialized"; }
