// cuda_common.cuh — what the CUDA backend's files share on the host side: its one state, the
// checked-call macros (file, line, call, message and a hint, recorded as the backend's first
// error), the launch helpers. The device code they share is device_common.cuh.
#pragma once
#include <cuda_runtime.h>
#include <cublas_v2.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>

extern "C" {
#include "../kernels.h"
#include "backend_cuda.h"
}
#include "device_common.cuh"

// Kept free for the CUDA context's and cuBLAS's own needs (its workspace, BLAS_WORKSPACE, is
// allocated at start): mem_available reports
// what is left beyond it, so a model that "fits" does not fail at its first GEMM.
#define MEM_RESERVE (256ull << 20)
#define BLAS_WORKSPACE (32ull << 20)   // cuBLAS's workspace (its documented need on Hopper)
#define ATT_THREADS 128        // attention: one block per query row (4 warps)
#define REDUCE_BLOCKS 512      // sum/sumsq: fixed grid, whatever the card (deterministic)
#define NORM_CHUNK_ROWS 64     // rmsnorm dgain: rows per partial sum

// How attention runs (attention.cu): strided-batched cuBLAS GEMMs with the probabilities kept
// (the default), the first simple kernels (one block per query row), or flash-style kernels.
typedef enum { ATTENTION_GEMM, ATTENTION_ROWS, ATTENTION_FLASH } AttentionMode;

typedef struct CudaGraph CudaGraph;   // graph.cu

typedef struct CudaState {
    int ready;                 // device chosen, cuBLAS handle made
    int device;
    cudaDeviceProp prop;
    cublasHandle_t blas;
    // Every launch, cuBLAS call and asynchronous copy goes to this stream: a stream can be
    // recorded as a graph, the legacy default stream cannot. It is a blocking stream, so the
    // synchronous copies (on the legacy stream) still wait for its work and it for theirs.
    cudaStream_t stream;
    void *blas_workspace;      // cuBLAS's workspace, set once: a recorded GEMM must not allocate
    // Bumped by every change a recorded graph may have baked in and no longer matches: the
    // precision (cuBLAS chose its kernels for it), the attention mode, a grow-only buffer moved.
    unsigned epoch;
    CudaGraph *recording;      // the graph being recorded, NULL otherwise
    int graphs;                // recording allowed (LRSH_CUDA_GRAPHS, backend_cuda_set_graphs)
    int fused;                 // lrsh's fused decode kernels (LRSH_CUDA_FUSED, backend_cuda_set_fused)
    int pdl;                   // programmatic dependent launch (LRSH_CUDA_PDL, backend_cuda_set_pdl)
    int fold_split;            // gemv.cu folds a step into products of at most this many warps a row
    int gemv_warps_per_sm;     // gemv.cu splits rows until a call has this many warps an SM
    cublasComputeType_t compute;
    const char *precision;     // "fp32", "tf32", "bf16"
    double *partials;          // REDUCE_BLOCKS + 1 doubles: sum/sumsq's per-block sums, then the total
    float *scratch;            // grow-only work buffer (rmsnorm dgain partial sums)
    size_t scratch_floats;
    int sync_each_launch;      // LRSH_CUDA_SYNC=1
    AttentionMode attention;   // LRSH_CUDA_ATTENTION=gemm|rows|flash (attention.cu)
    char error[768];           // the first error, "" when none
    char note[256];            // said once by backend_cuda: an environment switch it did not understand
    char description[400];      // prop.name is up to 256 bytes
} CudaState;

// The backend's one state (defined in backend_cuda.cu): a process drives one GPU through one
// table, as the CPU backend's table is one static object.
extern CudaState cuda;

// ---- errors -------------------------------------------------------------------------------

static inline const char *cuda_hint(cudaError_t e) {
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

static inline void record_error(const char *file, int line, const char *call, const char *what, const char *hint) {
    if (cuda.error[0]) return;   // keep the first: later ones are usually its consequences
    snprintf(cuda.error, sizeof cuda.error, "%s:%d: %s: %s — %s", file, line, call, what, hint);
}

static inline int check_cuda(cudaError_t e, const char *file, int line, const char *call) {
    if (e == cudaSuccess) return 0;
    record_error(file, line, call, cudaGetErrorString(e), cuda_hint(e));
    return -1;
}

static inline int check_cublas(cublasStatus_t s, const char *file, int line, const char *call) {
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
static inline void check_launch(const char *file, int line, const char *kernel) {
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess && cuda.sync_each_launch) e = cudaDeviceSynchronize();
    check_cuda(e, file, line, kernel);
}

#define CUDA_CHECK(call) check_cuda((call), __FILE__, __LINE__, #call)
#define CUBLAS_CHECK(call) check_cublas((call), __FILE__, __LINE__, #call)
#define LAUNCH_CHECK(kernel) check_launch(__FILE__, __LINE__, kernel)

// ---- programmatic dependent launch (Hopper) ---------------------------------------------------
// A decoded token is a chain of 10–14 small kernels a layer, each waiting for the one before:
// the gap between two kernels and each one's ramp-up are a large share of its time. With
// cuda.pdl on, LAUNCH_DEPENDENT launches a kernel as a programmatic dependent of the previous
// one (cudaLaunchAttributeProgrammaticStreamSerialization): it may start while that one still
// runs, fetch what does not depend on it (gemv.cu: its weights, into L2), and then wait.
// The rule for every kernel launched so: pdl_wait() in every thread before reading anything an
// earlier kernel wrote and before returning (a grid counts as finished only when all its threads
// are, so a chain of kernels that all wait stays ordered), then pdl_release() to let the next
// one start — not earlier, or every kernel of the chain could be started and waiting at once.
// Both are no-ops in a kernel launched without the attribute; with pdl off the launch is a plain
// one.
// pdl_wait() and pdl_release() are in device_common.cuh.

template <typename... Params, typename... Args>
static inline void launch_dependent(const char *file, int line, const char *name, void (*kernel)(Params...),
                                    dim3 grid, dim3 block, size_t shared, Args... args) {
    cudaLaunchAttribute attribute = {};
    attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attribute.val.programmaticStreamSerializationAllowed = cuda.pdl;
    cudaLaunchConfig_t config = {};
    config.gridDim = grid, config.blockDim = block, config.dynamicSmemBytes = shared, config.stream = cuda.stream;
    config.attrs = &attribute, config.numAttrs = 1;
    if (check_cuda(cudaLaunchKernelEx(&config, kernel, (Params)args...), file, line, name) == 0)
        check_launch(file, line, name);
}

#define LAUNCH_DEPENDENT(kernel, grid, block, shared, ...) \
    launch_dependent(__FILE__, __LINE__, #kernel, kernel, grid, block, shared, __VA_ARGS__)

// Blocks for a grid-stride loop over n items.
static inline unsigned grid_for(long n, int threads) {
    long blocks = (n + threads - 1) / threads;
    return (unsigned)(blocks < 65536 * 8 ? blocks : 65536 * 8);
}


// ---- shared between the files --------------------------------------------------------------

// A grow-only device work buffer of n floats (NULL when out of memory), reused by every call.
float *scratch_floats(size_t n);

// count products C_i = alpha·op(A_i)·op(B_i) + beta·C_i, row-major as Backend.gemm, with
// X_i = X + i·stride_x: cublasGemmStridedBatchedEx in the backend's precision.
void gemm_strided_batched(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                          long stride_a, const float *b, int ldb, long stride_b, float beta, float *c, int ldc,
                          long stride_c, int count);

// gemv.cu: one-row products y = alpha·x·Wᵀ + beta·y (Backend.gemm with m = 1, trans_a = 0,
// trans_b = 1) by our own kernel when cuda.fused is on: gemv_takes says whether it takes a call;
// gemv_batch runs up to GEMV_CALLS such calls (independent) in one launch.
// gemv_row_products runs Backend.row_products with the step folded into the kernel, when
// cuda.fused is on and x̂ fits in shared memory: 1 when it ran them, 0 when the caller must.
#define GEMV_CALLS 4
#define FOLD_SPLIT_DEFAULT 8            // cuda.fold_split: fold the step in always (backend_cuda_tune)
#define GEMV_WARPS_PER_SM_DEFAULT 16    // cuda.gemv_warps_per_sm
int gemv_takes(const GemmCall *c);
void gemv_batch(const GemmCall *calls, int count);
int gemv_row_products(const RowInput *in, const RowProduct *calls, int count);

// sort.cu: n int32 pairs sorted by key, stably, on stream; work NULL: only *work_bytes is set.
cudaError_t sort_pairs(void *work, size_t *work_bytes, const int32_t *keys, int32_t *keys_out, const int32_t *values,
                       int32_t *values_out, int n, cudaStream_t stream);

// graph.cu: Backend.graph_*; while recording, the address lists of pointer-batched GEMMs go to
// the graph's own arena (NULL when full: the caller then issues the products one by one).
int cuda_graph_begin(void);
void *cuda_graph_end(void);
int cuda_graph_launch(void *graph);
void cuda_graph_release(void *graph);
void **graph_addresses(const void *const *list, int n);

// attention.cu: Backend.attention_saved_floats, attention_forward, attention_backward.
size_t cuda_attention_saved_floats(int B, int H, int Tq, int Tk, int hd);
void cuda_attention_forward(float *out, float *att, const float *q, const float *k, const float *v, int B, int Tq,
                            int Tk, int H, int KVH, int hd);
void cuda_attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout, const float *out,
                             const float *att, const float *q, const float *k, const float *v, int B, int Tq, int Tk, int H, int KVH,
                             int hd);
size_t cuda_decode_attention_floats(int H, int cap, int hd);
void cuda_decode_attention(float *out, float *scratch, float *q, const float *k, const float *v, float *k_cache,
                           float *v_cache, const int32_t *pos, int cap, int H, int KVH, int hd, float theta);
