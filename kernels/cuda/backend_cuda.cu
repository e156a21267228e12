// backend_cuda.cu — the Backend of kernels/kernels.h on an NVIDIA GPU: device memory through
// the CUDA runtime, GEMM through cuBLAS, and one straightforward CUDA kernel per other entry
// (attention has a file of its own, attention.cu). kernels/cpu/ is the reference; every kernel
// here computes the same function with the same float operations where it can (built with
// --fmad=false, so no fused multiply-adds that the C11 CPU code, compiled with
// -ffp-contract=off, does not do).
//
// Determinism: no atomics anywhere. Every reduction has a fixed shape (block sizes and grids
// that do not depend on the card), so a run repeats bit for bit on the same GPU model.
//
// Errors: the Backend functions return nothing, so every CUDA and cuBLAS call and every launch
// goes through a check that records the first failure (file, line, call, message, hint) in
// the backend's state; backend_cuda_last_error() reports it. LRSH_CUDA_SYNC=1 in the
// environment synchronizes after every launch, so a faulting kernel is named where it ran.
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cuda_common.cuh"
#include "layer_kernels.cuh"
#include "../adamw_scalars.h"

CudaState cuda;

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

static void *cuda_host_alloc(size_t bytes) {
    void *p = NULL;
    if (cudaMallocHost(&p, bytes ? bytes : 1) != cudaSuccess) {
        cudaGetLastError();   // out of page-locked memory: the caller reports NULL
        return NULL;
    }
    return p;
}

static void cuda_host_release(void *ptr) {
    if (ptr) CUDA_CHECK(cudaFreeHost(ptr));
}

// Synchronous copies on the legacy default stream. Every kernel runs on cuda.stream, a blocking
// stream (cudaStreamCreate, and no --default-stream per-thread): the legacy stream waits for its
// work and it for theirs, so a download waits for the kernels that wrote its source.
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
float *scratch_floats(size_t n) {
    if (n <= cuda.scratch_floats) return cuda.scratch;
    cuda.epoch++;   // a recorded graph may hold the old address
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

// A grow-only device buffer for one kind of per-call data (addresses, indices, totals).
typedef struct DeviceBuffer {
    void *ptr;
    size_t bytes;
} DeviceBuffer;

// At least `bytes` of b, or NULL (the error recorded). Reuse is safe: every user writes it with
// a copy ordered on the one stream after the kernels that read the previous contents.
static void *device_buffer(DeviceBuffer *b, size_t bytes) {
    if (bytes <= b->bytes) return b->ptr;
    cuda.epoch++;   // a recorded graph may hold the old address
    if (b->ptr) CUDA_CHECK(cudaFree(b->ptr));
    b->ptr = NULL, b->bytes = 0;
    if (CUDA_CHECK(cudaMalloc(&b->ptr, bytes))) return b->ptr = NULL;
    b->bytes = bytes;
    return b->ptr;
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
        k_scale_matrix<<<grid_for((long)m * n, THREADS), THREADS, 0, cuda.stream>>>(c, m, n, ldc, beta);
        LAUNCH_CHECK("k_scale_matrix");
        return;
    }
    GemmCall one = gemm_call(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    if (gemv_takes(&one)) {
        gemv_batch(&one, 1);
        return;
    }
    // cuBLAS does not read C when beta == 0, so NaN in C is ignored there as on the CPU
    CUBLAS_CHECK(cublasGemmEx(cuda.blas, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                              n, m, k, &alpha, b, CUDA_R_32F, ldb, a, CUDA_R_32F, lda, &beta, c, CUDA_R_32F, ldc,
                              cuda.compute, CUBLAS_GEMM_DEFAULT));
}

// The same swap as cuda_gemm, for count products at fixed strides (attention's heads).
void gemm_strided_batched(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                          long stride_a, const float *b, int ldb, long stride_b, float beta, float *c, int ldc,
                          long stride_c, int count) {
    if (m <= 0 || n <= 0 || count <= 0) return;
    if (k <= 0) {
        for (int i = 0; i < count; i++) cuda_gemm(0, 0, m, n, 0, alpha, NULL, 1, NULL, 1, beta, c + i * stride_c, ldc);
        return;
    }
    CUBLAS_CHECK(cublasGemmStridedBatchedEx(cuda.blas, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                            trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, b, CUDA_R_32F, ldb,
                                            stride_b, a, CUDA_R_32F, lda, stride_a, &beta, c, CUDA_R_32F, ldc,
                                            stride_c, count, cuda.compute, CUBLAS_GEMM_DEFAULT));
}

// Calls that differ only in their matrices: one cublasGemmBatchedEx launch can run them.
static int same_product(const GemmCall *x, const GemmCall *y) {
    return x->trans_a == y->trans_a && x->trans_b == y->trans_b && x->m == y->m && x->n == y->n && x->k == y->k &&
           x->alpha == y->alpha && x->beta == y->beta && x->lda == y->lda && x->ldb == y->ldb && x->ldc == y->ldc;
}

// The addresses of batched GEMMs travel through a ring: pinned host memory, so the copy up is
// asynchronous (from pageable memory the host would wait for the GPU), and a device twin. A
// region is written again only after the ring wraps, and wrapping first waits for the GPU, so
// no copy or GEMM still reading a region can see it change.
#define RING_ADDRESSES (1 << 16)

static void **ring_addresses(const void *const *host_list, int n) {
    static void **host, **dev;
    static int at;
    if (cuda.recording) return graph_addresses(host_list, n);   // a ring region is reused; a graph's is not
    if (n > RING_ADDRESSES) return NULL;
    if (!host && (CUDA_CHECK(cudaHostAlloc((void **)&host, sizeof(void *) * RING_ADDRESSES, cudaHostAllocDefault)) ||
                  CUDA_CHECK(cudaMalloc((void **)&dev, sizeof(void *) * RING_ADDRESSES)))) {
        if (host) cudaFreeHost(host);
        host = NULL;
        return NULL;
    }
    if (at + n > RING_ADDRESSES) {
        if (CUDA_CHECK(cudaDeviceSynchronize())) return NULL;
        at = 0;
    }
    memcpy(host + at, host_list, sizeof(void *) * n);
    if (CUDA_CHECK(cudaMemcpyAsync(dev + at, host + at, sizeof(void *) * n, cudaMemcpyHostToDevice, cuda.stream)))
        return NULL;
    void **out = dev + at;
    at += n;
    return out;
}

// count ≥ 2 products of one shape as one cublasGemmBatchedEx launch.
static void gemm_pointer_batch(const GemmCall *calls, int count) {
    const void **list = (const void **)malloc(3 * sizeof(void *) * count);   // A's, B's, C's
    if (!list) {
        record_error(__FILE__, __LINE__, "gemm_batch", "out of host memory", "free memory");
        return;
    }
    for (int i = 0; i < count; i++) list[i] = calls[i].a, list[count + i] = calls[i].b, list[2 * count + i] = calls[i].c;
    void **addresses = ring_addresses(list, 3 * count);
    free(list);
    const GemmCall *g = &calls[0];
    if (!addresses) {   // a batch too big for the ring (or no memory for it): one call each
        for (int i = 0; i < count; i++, g++)
            cuda_gemm(g->trans_a, g->trans_b, g->m, g->n, g->k, g->alpha, g->a, g->lda, g->b, g->ldb, g->beta, g->c,
                      g->ldc);
        return;
    }
    // the row-major swap of cuda_gemm: B's first, then A's
    CUBLAS_CHECK(cublasGemmBatchedEx(cuda.blas, g->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                     g->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, g->n, g->m, g->k, &g->alpha,
                                     (const void *const *)(addresses + count), CUDA_R_32F, g->ldb,
                                     (const void *const *)addresses, CUDA_R_32F, g->lda, &g->beta,
                                     addresses + 2 * count, CUDA_R_32F, g->ldc, count, cuda.compute,
                                     CUBLAS_GEMM_DEFAULT));
}

// Whether the group's A's, B's and C's each sit at one stride (the optimizer's slots do, and a
// shared operand at stride 0): then a strided batch needs no addresses at all.
// (Addresses compared as integers: the matrices may lie in different allocations.)
static long float_stride(const float *from, const float *to) {
    intptr_t bytes = (intptr_t)to - (intptr_t)from;
    return bytes % (intptr_t)sizeof(float) ? LONG_MIN : (long)(bytes / (intptr_t)sizeof(float));
}

static int evenly_spaced(const GemmCall *g, int n, long *sa, long *sb, long *sc) {
    *sa = float_stride(g[0].a, g[1].a), *sb = float_stride(g[0].b, g[1].b), *sc = float_stride(g[0].c, g[1].c);
    for (int i = 2; i < n; i++)
        if (float_stride(g[i - 1].a, g[i].a) != *sa || float_stride(g[i - 1].b, g[i].b) != *sb ||
            float_stride(g[i - 1].c, g[i].c) != *sc)
            return 0;
    return *sa >= 0 && *sb >= 0 && *sc > 0;   // forward strides (0: shared), distinct outputs
}

// The one-row products among calls go to gemv.cu, GEMV_CALLS a launch whatever their shapes;
// the others are copied to rest. Returns how many are left in rest.
static int run_gemv_calls(const GemmCall *calls, int count, GemmCall *rest) {
    GemmCall pending[GEMV_CALLS];
    int n_pending = 0, n_rest = 0;
    for (int i = 0; i < count; i++) {
        if (!gemv_takes(&calls[i])) {
            rest[n_rest++] = calls[i];
            continue;
        }
        pending[n_pending++] = calls[i];
        if (n_pending == GEMV_CALLS) gemv_batch(pending, n_pending), n_pending = 0;
    }
    if (n_pending) gemv_batch(pending, n_pending);
    return n_rest;
}

// The calls are independent, so any order will do: one-row products (a decoded token's) to the
// GEMV kernel when it is on; those of one shape (Newton–Schulz and the power iteration across
// layers) as one batched launch each; a shape met once, one call.
static void cuda_gemm_batch(const GemmCall *all, int count) {
    GemmCall *calls = (GemmCall *)malloc(sizeof(GemmCall) * (count > 0 ? count : 1));
    GemmCall *group = (GemmCall *)malloc(sizeof(GemmCall) * (count > 0 ? count : 1));
    char *done = (char *)calloc(count > 0 ? count : 1, 1);
    if (!calls || !group || !done) record_error(__FILE__, __LINE__, "gemm_batch", "out of host memory", "free memory");
    else count = run_gemv_calls(all, count, calls);
    for (int i = 0; calls && group && done && i < count; i++) {
        if (done[i]) continue;
        int n = 0;
        for (int j = i; j < count; j++)
            if (!done[j] && same_product(&calls[i], &calls[j])) group[n++] = calls[j], done[j] = 1;
        const GemmCall *g = &group[0];
        long sa, sb, sc;
        if (n >= 2 && g->m > 0 && g->n > 0 && g->k > 0 && evenly_spaced(group, n, &sa, &sb, &sc)) {
            gemm_strided_batched(g->trans_a, g->trans_b, g->m, g->n, g->k, g->alpha, g->a, g->lda, sa, g->b, g->ldb,
                                 sb, g->beta, g->c, g->ldc, sc, n);
            continue;
        }
        if (n >= 2 && g->m > 0 && g->n > 0 && g->k > 0) {
            gemm_pointer_batch(group, n);
            continue;
        }
        for (int c = 0; c < n; c++, g++)
            cuda_gemm(g->trans_a, g->trans_b, g->m, g->n, g->k, g->alpha, g->a, g->lda, g->b, g->ldb, g->beta, g->c,
                      g->ldc);
    }
    free(calls);
    free(group);
    free(done);
}

// ---- embedding ----------------------------------------------------------------------------

__global__ void k_embedding_forward(float *out, const int32_t *tokens, const float *table, int n, int dim) {
    long total = (long)n * dim;
    for (long idx = blockIdx.x * (long)blockDim.x + threadIdx.x; idx < total; idx += (long)gridDim.x * blockDim.x) {
        long i = idx / dim, c = idx % dim;
        out[idx] = table[(long)tokens[i] * dim + c];
    }
}

// dtable[row] += dout[i] for the positions i of one distinct token, in increasing i: the CPU's
// additions in the CPU's order, so the sums match to the bit, and different rows run in
// parallel without atomics. sorted(n): the tokens in increasing order; order(n): their
// positions, increasing within a token. Block x starts a token's run where sorted[x] is the
// run's first entry (the other blocks leave at once); a thread per column.
__global__ void k_embedding_backward(float *dtable, const float *dout, const int32_t *sorted, const int32_t *order,
                                     int n, int dim) {
    int first = blockIdx.x, c = blockIdx.y * blockDim.x + threadIdx.x, token = sorted[first];
    if (c >= dim || (first > 0 && sorted[first - 1] == token)) return;
    float *d = dtable + (long)token * dim + c;
    float acc = *d;
    for (int i = first; i < n && sorted[i] == token; i++) acc += dout[(long)order[i] * dim + c];
    *d = acc;
}

__global__ void k_iota(int32_t *x, int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) x[i] = i;
}

// The grouping, on the device (no wait for the host): the (token, position) pairs sorted by
// token (sort.cu: CUB's radix sort, stable — positions stay increasing within a token).
// Into one grow-only buffer: sorted(n), order(n), the positions 0..n−1 (n), CUB's workspace.
static int embedding_sort(const int32_t *tokens, int n, int32_t **sorted, int32_t **order) {
    static DeviceBuffer index;
    size_t work = 0, stride = ((size_t)n + 63) / 64 * 64;   // each part 256-byte aligned, as CUB wants its own
    if (CUDA_CHECK(sort_pairs(NULL, &work, tokens, NULL, NULL, NULL, n, cuda.stream))) return -1;
    int32_t *base = (int32_t *)device_buffer(&index, sizeof(int32_t) * 3 * stride + work);
    if (!base) return -1;
    int32_t *positions = base + 2 * stride;
    *sorted = base, *order = base + stride;
    k_iota<<<grid_for(n, THREADS), THREADS, 0, cuda.stream>>>(positions, n);
    LAUNCH_CHECK("k_iota");
    return CUDA_CHECK(sort_pairs(base + 3 * stride, &work, tokens, *sorted, positions, *order, n, cuda.stream));
}

static void cuda_embedding_forward(float *out, const int32_t *tokens, const float *table, int n, int dim) {
    if (n <= 0 || dim <= 0) return;
    k_embedding_forward<<<grid_for((long)n * dim, THREADS), THREADS, 0, cuda.stream>>>(out, tokens, table, n, dim);
    LAUNCH_CHECK("k_embedding_forward");
}

static void cuda_embedding_backward(float *dtable, const float *dout, const int32_t *tokens, int n, int dim) {
    if (n <= 0 || dim <= 0) return;
    int32_t *sorted, *order;
    if (embedding_sort(tokens, n, &sorted, &order)) return;   // the error is recorded
    int threads = 128;
    dim3 grid((unsigned)n, (unsigned)((dim + threads - 1) / threads));
    k_embedding_backward<<<grid, threads, 0, cuda.stream>>>(dtable, dout, sorted, order, n, dim);
    LAUNCH_CHECK("k_embedding_backward");
}

// ---- RMSNorm ------------------------------------------------------------------------------

static void cuda_rmsnorm_forward(float *out, float *rstd, const float *x, const float *gain, int n, int dim, float eps) {
    if (n <= 0 || dim <= 0) return;
    LAUNCH_DEPENDENT(k_rmsnorm_forward, n, THREADS, 0, out, rstd, x, gain, dim, eps);
}

static void cuda_rmsnorm_backward(float *dx, float *dgain, const float *dout, const float *x, const float *gain,
                                  const float *rstd, int n, int dim) {
    if (n <= 0 || dim <= 0) return;
    k_rmsnorm_backward_dx<<<n, THREADS, 0, cuda.stream>>>(dx, dout, x, gain, rstd, dim);
    LAUNCH_CHECK("k_rmsnorm_backward_dx");
    dim3 cols((dim + THREADS - 1) / THREADS);
    // chunks of NORM_CHUNK_ROWS rows, or longer where gridDim.y (≤ 65 535) would not hold them
    int chunk_rows = (n + 65534) / 65535 > NORM_CHUNK_ROWS ? (n + 65534) / 65535 : NORM_CHUNK_ROWS;
    int chunks = (n + chunk_rows - 1) / chunk_rows;
    float *partial = chunks > 1 ? scratch_floats((size_t)chunks * dim) : NULL;
    if (!partial) {   // one chunk, or no memory for the partial sums: one pass over all rows
        k_rmsnorm_dgain<<<cols, THREADS, 0, cuda.stream>>>(dgain, 1, dout, x, rstd, n, dim, n);
        LAUNCH_CHECK("k_rmsnorm_dgain");
        return;
    }
    k_rmsnorm_dgain<<<dim3(cols.x, chunks), THREADS, 0, cuda.stream>>>(partial, 0, dout, x, rstd, n, dim, chunk_rows);
    LAUNCH_CHECK("k_rmsnorm_dgain");
    k_sum_chunks<<<cols, THREADS, 0, cuda.stream>>>(dgain, partial, chunks, dim);
    LAUNCH_CHECK("k_sum_chunks");
}

// ---- RoPE ---------------------------------------------------------------------------------

static void launch_rope(float *out, const float *in, int B, int T, int H, int hd, int pos0, float theta,
                        int backward) {
    long rows = (long)B * T;
    if (rows <= 0 || H <= 0 || hd < 2) return;
    k_rope<<<(unsigned)rows, ATT_THREADS, (size_t)(hd / 2) * 2 * sizeof(float), cuda.stream>>>(out, in, T, H, hd, pos0,
                                                                                           theta, backward);
    LAUNCH_CHECK(backward ? "k_rope (backward)" : "k_rope (forward)");
}

static void cuda_rope_forward(float *out, const float *in, int B, int T, int H, int hd, int pos0, float theta) {
    launch_rope(out, in, B, T, H, hd, pos0, theta, 0);
}

static void cuda_rope_backward(float *din, const float *dout, int B, int T, int H, int hd, int pos0, float theta) {
    launch_rope(din, dout, B, T, H, hd, pos0, theta, 1);
}

// ---- SwiGLU, softmax cross-entropy ---------------------------------------------------------

static void cuda_swiglu_forward(float *out, const float *gate, const float *up, long n) {
    if (n <= 0) return;
    LAUNCH_DEPENDENT(k_swiglu_forward, grid_for(n, THREADS), THREADS, 0, out, gate, up, n);
}

static void cuda_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, long n) {
    if (n <= 0) return;
    k_swiglu_backward<<<grid_for(n, THREADS), THREADS, 0, cuda.stream>>>(dgate, dup, dout, gate, up, n);
    LAUNCH_CHECK("k_swiglu_backward");
}

// ---- a decoded token's products with their step -------------------------------------------

// Fused by gemv.cu when it takes them; otherwise the step's own kernel into in->xhat, then the
// products as one gemm_batch (cuBLAS, or gemv.cu unfused where x̂ is too long for it).
static void cuda_row_products(const RowInput *in, const RowProduct *calls, int count) {
    if (count <= 0 || gemv_row_products(in, calls, count)) return;
    if (in->step == ROW_RMSNORM) cuda_rmsnorm_forward(in->xhat, in->rstd, in->x, in->gain, 1, in->k, in->eps);
    else cuda_swiglu_forward(in->xhat, in->x, in->up, in->k);
    GemmCall gemm[GEMV_CALLS];
    for (int first = 0; first < count; first += GEMV_CALLS) {
        int n = count - first < GEMV_CALLS ? count - first : GEMV_CALLS;
        for (int i = 0; i < n; i++) {
            const RowProduct *p = &calls[first + i];
            gemm[i] = gemm_call(0, 1, 1, p->n, in->k, 1.0f, in->xhat, in->k, p->w, in->k, p->beta, p->y, p->n);
        }
        cuda_gemm_batch(gemm, n);
    }
}

static void cuda_softmax_xent_forward(float *losses, float *dlogits, const float *logits, const int32_t *targets,
                                      int n, int V, float dscale) {
    if (n <= 0 || V <= 0) return;
    k_softmax_xent<<<n, THREADS, 0, cuda.stream>>>(losses, dlogits, logits, targets, V, dscale);
    LAUNCH_CHECK("k_softmax_xent");
}

// ---- elementwise, reductions, AdamW ----------------------------------------------------------

__global__ void k_add(float *y, const float *x, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) y[i] += x[i];
}

__global__ void k_scale(float *x, float s, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) x[i] *= s;
}

__global__ void k_axpby(float *y, float alpha, const float *x, float beta, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        y[i] = beta == 0.0f ? alpha * x[i] : alpha * x[i] + beta * y[i];   // beta = 0 ignores y
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
    k_add_matrix<<<grid_for((long)rows * cols, THREADS), THREADS, 0, cuda.stream>>>(y, ldy, x, ldx, rows, cols, beta);
    LAUNCH_CHECK("k_add_matrix");
}

static void cuda_add(float *y, const float *x, long n) {
    if (n <= 0) return;
    k_add<<<grid_for(n, THREADS), THREADS, 0, cuda.stream>>>(y, x, n);
    LAUNCH_CHECK("k_add");
}

static void cuda_axpby(float *y, float alpha, const float *x, float beta, long n) {
    if (n <= 0) return;
    k_axpby<<<grid_for(n, THREADS), THREADS, 0, cuda.stream>>>(y, alpha, x, beta, n);
    LAUNCH_CHECK("k_axpby");
}

// Up to ARG_CALLS calls travel as the kernel's argument (layer_kernels.cuh).
typedef struct AxpbyBatch {
    AxpbyCall calls[ARG_CALLS];
} AxpbyBatch;

// A row of blocks per call (blockIdx.y), its values in a grid-stride loop: k_axpby's arithmetic.
__global__ void k_axpby_batch(AxpbyBatch batch) {
    AxpbyCall c = batch.calls[blockIdx.y];
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < c.n; i += (long)gridDim.x * blockDim.x)
        c.y[i] = c.beta == 0.0f ? c.alpha * c.x[i] : c.alpha * c.x[i] + c.beta * c.y[i];
}

#define AXPBY_BATCH_BLOCKS 64   // blocks per call: ≥ 1000 blocks in all once a batch has 16 tensors

static void cuda_axpby_batch(const AxpbyCall *calls, int count) {
    for (int at = 0; at < count; at += ARG_CALLS) {
        int part = count - at < ARG_CALLS ? count - at : ARG_CALLS;
        AxpbyBatch batch;
        memcpy(batch.calls, calls + at, sizeof(AxpbyCall) * part);
        k_axpby_batch<<<dim3(AXPBY_BATCH_BLOCKS, part), THREADS, 0, cuda.stream>>>(batch);
        LAUNCH_CHECK("k_axpby_batch");
    }
}

static void cuda_scale(float *x, float s, long n) {
    if (n <= 0) return;
    k_scale<<<grid_for(n, THREADS), THREADS, 0, cuda.stream>>>(x, s, n);
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

// Pass 2: one block adds the REDUCE_BLOCKS partial sums into *total.
__global__ void k_reduce_final(const double *partials, double *total) {
    __shared__ double red[32];
    double acc = 0.0;
    for (int i = threadIdx.x; i < REDUCE_BLOCKS; i += blockDim.x) acc += partials[i];
    acc = block_sum(acc, red);
    if (threadIdx.x == 0) *total = acc;
}

// Σ x or Σ x² into the device double *total (n > 0), both passes.
static void reduce_into(double *total, const float *x, long n, int squares) {
    k_reduce_partial<<<REDUCE_BLOCKS, THREADS, 0, cuda.stream>>>(cuda.partials, x, n, squares);
    LAUNCH_CHECK("k_reduce_partial");
    k_reduce_final<<<1, THREADS, 0, cuda.stream>>>(cuda.partials, total);
    LAUNCH_CHECK("k_reduce_final");
}

static double reduce(const float *x, long n, int squares) {
    if (n <= 0) return 0.0;
    reduce_into(cuda.partials + REDUCE_BLOCKS, x, n, squares);
    double total = NAN;
    if (CUDA_CHECK(cudaMemcpy(&total, cuda.partials + REDUCE_BLOCKS, sizeof total, cudaMemcpyDeviceToHost)))
        return NAN;   // the caller's finiteness checks then stop training instead of using a wrong norm
    return total;
}

static double cuda_sum(const float *x, long n) { return reduce(x, n, 0); }
static double cuda_sumsq(const float *x, long n) { return reduce(x, n, 1); }

// Two launches per ARG_CALLS vectors into a device array, then one copy down: one wait for
// all (the sums can differ from sumsq's in the last bits: another summation order).
static void cuda_sumsq_batch(const float *const *x, const long *n, int count, double *out) {
    static DeviceBuffer totals, partial_sums;
    if (count <= 0) return;
    double *dev = (double *)device_buffer(&totals, sizeof(double) * count);
    double *partials = (double *)device_buffer(&partial_sums, sizeof(double) * ARG_CALLS * SUMSQ_BLOCKS);
    int ok = dev != NULL && partials != NULL;
    for (int at = 0; ok && at < count; at += ARG_CALLS) {
        int part = count - at < ARG_CALLS ? count - at : ARG_CALLS;
        SumsqBatch batch;
        batch.first_block[0] = 0;
        for (int i = 0; i < part; i++) {
            batch.x[i] = x[at + i], batch.n[i] = n[at + i] > 0 ? n[at + i] : 0;
            batch.first_block[i + 1] = batch.first_block[i] + sumsq_blocks(batch.n[i]);
        }
        k_sumsq_many<<<batch.first_block[part], THREADS, 0, cuda.stream>>>(batch, partials);
        LAUNCH_CHECK("k_sumsq_many");
        k_sumsq_finish<<<1, ARG_CALLS, 0, cuda.stream>>>(batch, partials, dev + at, part);
        LAUNCH_CHECK("k_sumsq_finish");
    }
    ok = ok && !CUDA_CHECK(cudaMemcpy(out, dev, sizeof(double) * count, cudaMemcpyDeviceToHost));
    if (!ok)
        for (int i = 0; i < count; i++) out[i] = NAN;   // as reduce: the callers stop on a non-finite norm
}

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
    AdamwScalars a = adamw_scalars(lr, beta1, beta2, wd, t);   // as the CPU's, to the bit
    k_adamw<<<grid_for(n, THREADS), THREADS, 0, cuda.stream>>>(param, grad, m, v, n, beta1, beta2, eps, grad_scale,
                                                                a.step, a.inv_sqrt_bc2, a.decay);
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

static const char *cuda_take_error(void) {
    static char taken[sizeof cuda.error];
    const char *e = backend_cuda_last_error();   // waits for the queued work first
    if (!e) return NULL;
    snprintf(taken, sizeof taken, "%s", e);
    backend_cuda_clear_error();
    return taken;
}

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
    t->host_alloc = cuda_host_alloc;
    t->host_release = cuda_host_release;
    t->mem_available = cuda_mem_available;
    t->synchronize = backend_cuda_synchronize;
    t->take_error = cuda_take_error;
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
    t->decode_attention_floats = cuda_decode_attention_floats;
    t->decode_attention = cuda_decode_attention;
    t->graph_begin = cuda_graph_begin;
    t->graph_end = cuda_graph_end;
    t->graph_launch = cuda_graph_launch;
    t->graph_release = cuda_graph_release;
    t->row_products = cuda_row_products;
    t->swiglu_forward = cuda_swiglu_forward;
    t->swiglu_backward = cuda_swiglu_backward;
    t->softmax_xent_forward = cuda_softmax_xent_forward;
    t->add = cuda_add;
    t->scale = cuda_scale;
    t->axpby = cuda_axpby;
    t->axpby_batch = cuda_axpby_batch;
    t->add_matrix = cuda_add_matrix;
    t->sum = cuda_sum;
    t->sumsq = cuda_sumsq;
    t->sumsq_batch = cuda_sumsq_batch;
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

// "on" → 1, "off" → 0, anything else (NULL too) → −1: the graphs, fused and pdl switches.
static int on_off(const char *name) {   // the spellings the shell's settings take
    static const char *const yes[] = {"on", "yes", "true", "1"}, *const no[] = {"off", "no", "false", "0"};
    for (int i = 0; name && i < 4; i++) {
        if (strcasecmp(name, yes[i]) == 0) return 1;
        if (strcasecmp(name, no[i]) == 0) return 0;
    }
    return -1;
}

// A switch from the environment variable var: its value, or the default with a warning when
// the value is neither on nor off.
static int env_switch(const char *var, int by_default) {
    const char *value = getenv(var);
    int on = value ? on_off(value) : by_default;
    if (on < 0)
        snprintf(cuda.note, sizeof cuda.note, "%s=%s unknown (on or off): using %s", var, value, by_default ? "on" : "off");
    return on < 0 ? by_default : on;
}

// Sets the switch *flag from name; a change makes recorded graphs stale (they hold the calls
// made under the old value).
static int set_switch(int *flag, const char *what, const char *name, char *why, size_t cap) {
    if (!cuda.ready) return fail(why, cap, "the CUDA backend is not started (no device?)");
    int on = on_off(name);
    if (on < 0) return fail(why, cap, "%s '%s' unknown: expected on or off", what, name ? name : "(null)");
    if (on != *flag) cuda.epoch++;
    *flag = on;
    return 0;
}

// The attention modes by name, in AttentionMode's order.
static const char *const attention_names[] = {"gemm", "rows", "flash"};

static int choose_attention(const char *name) {
    for (int i = 0; i < 3; i++)
        if (name && strcmp(name, attention_names[i]) == 0) {
            cuda.attention = (AttentionMode)i;
            return 0;
        }
    return -1;
}

// Choose device 0, check that this build can run on it, make the cuBLAS handle and the
// reduction buffer. Without a driver or a GPU, cudart answers with an error code (it does not
// crash): that becomes the reason.
// What init made before a later step of it failed: given back (init's failure is final).
static void init_undo(void) {
    if (cuda.stream) cudaStreamDestroy(cuda.stream);
    cudaFree(cuda.blas_workspace);   // cudaFree(NULL) does nothing
    cudaFree(cuda.partials);
    if (cuda.blas) cublasDestroy(cuda.blas);
    cuda.stream = 0, cuda.blas_workspace = NULL, cuda.partials = NULL, cuda.blas = NULL;
    cudaGetLastError();
}

static int init(char *why, size_t cap) {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        cudaGetLastError();
        // without a GPU the runtime often says "driver version is insufficient": there is no driver at all
        const char *hint = e == cudaErrorInsufficientDriver ? "no NVIDIA driver here, or one older than this CUDA; "
                           : e == cudaErrorNoDevice ? "no NVIDIA GPU here; " : "";
        return fail(why, cap, "no CUDA device: cudaGetDeviceCount → %s (%s); %sis a GPU visible? check nvidia-smi",
                    cudaGetErrorString(e), cudaGetErrorName(e), hint);
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
    if ((e = cudaMalloc((void **)&cuda.partials, (REDUCE_BLOCKS + 1) * sizeof(double))) != cudaSuccess ||
        (e = cudaMalloc(&cuda.blas_workspace, BLAS_WORKSPACE)) != cudaSuccess ||
        (e = cudaStreamCreate(&cuda.stream)) != cudaSuccess) {
        init_undo();
        return fail(why, cap, "CUDA device 0: cannot allocate the backend's buffers or stream (%s)",
                    cudaGetErrorString(e));
    }
    // the workspace after the stream: cublasSetStream resets it to cuBLAS's own pool
    if ((s = cublasSetStream(cuda.blas, cuda.stream)) != CUBLAS_STATUS_SUCCESS ||
        (s = cublasSetWorkspace(cuda.blas, cuda.blas_workspace, BLAS_WORKSPACE)) != CUBLAS_STATUS_SUCCESS) {
        init_undo();
        return fail(why, cap, "cuBLAS could not take the backend's stream and workspace: %s", cublasGetStatusString(s));
    }
    const char *sync = getenv("LRSH_CUDA_SYNC"), *attention = getenv("LRSH_CUDA_ATTENTION");
    cuda.graphs = env_switch("LRSH_CUDA_GRAPHS", 1);
    cuda.fused = env_switch("LRSH_CUDA_FUSED", 1);
    cuda.pdl = env_switch("LRSH_CUDA_PDL", 1);
    cuda.fold_split = FOLD_SPLIT_DEFAULT;
    cuda.gemv_warps_per_sm = GEMV_WARPS_PER_SM_DEFAULT;
    cuda.sync_each_launch = sync && sync[0] == '1';
    cuda.attention = ATTENTION_GEMM;
    if (attention && choose_attention(attention) != 0)
        snprintf(cuda.note, sizeof cuda.note, "LRSH_CUDA_ATTENTION=%s unknown (gemm, rows or flash): using gemm",
                 attention);
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
    if (why && cap) snprintf(why, cap, "%s", cuda.note);   // the shell says it: kernels print nothing
    cuda.note[0] = 0;
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
    if (compute != cuda.compute) cuda.epoch++;   // recorded GEMMs chose kernels for the old one
    cuda.compute = compute;
    cuda.precision = compute == CUBLAS_COMPUTE_32F ? "fp32" : compute == CUBLAS_COMPUTE_32F_FAST_TF32 ? "tf32" : "bf16";
    describe_device();
    return 0;
}

extern "C" const char *backend_cuda_precision(void) { return cuda.ready ? cuda.precision : "fp32"; }

extern "C" int backend_cuda_set_attention(const char *name, char *why, size_t cap) {
    if (!cuda.ready) return fail(why, cap, "the CUDA backend is not started (no device?)");
    if (choose_attention(name))
        return fail(why, cap, "attention '%s' unknown: expected gemm, rows or flash", name ? name : "(null)");
    cuda.epoch++;
    return 0;
}

extern "C" const char *backend_cuda_attention(void) { return attention_names[cuda.ready ? cuda.attention : 0]; }

extern "C" int backend_cuda_set_graphs(const char *name, char *why, size_t cap) {
    return set_switch(&cuda.graphs, "graphs", name, why, cap);   // off: no recorded graph replays
}

extern "C" const char *backend_cuda_graphs(void) { return !cuda.ready || cuda.graphs ? "on" : "off"; }

extern "C" int backend_cuda_set_fused(const char *name, char *why, size_t cap) {
    return set_switch(&cuda.fused, "fused", name, why, cap);
}

extern "C" const char *backend_cuda_fused(void) { return cuda.ready && cuda.fused ? "on" : "off"; }

extern "C" int backend_cuda_set_pdl(const char *name, char *why, size_t cap) {
    return set_switch(&cuda.pdl, "pdl", name, why, cap);
}

extern "C" const char *backend_cuda_pdl(void) { return cuda.ready && cuda.pdl ? "on" : "off"; }

extern "C" int backend_cuda_tune(const char *knob, int value) {
    int fold = strcmp(knob, "fold_split") == 0, warps = strcmp(knob, "gemv_warps_per_sm") == 0;
    int *slot = !cuda.ready ? NULL : fold ? &cuda.fold_split : warps ? &cuda.gemv_warps_per_sm : NULL;
    if (!slot || value < 0) return -1;
    if (value == 0) value = fold ? FOLD_SPLIT_DEFAULT : GEMV_WARPS_PER_SM_DEFAULT;
    int was = *slot;
    if (value != was) cuda.epoch++;   // a recorded graph holds the old choices
    *slot = value;
    return was;
}
