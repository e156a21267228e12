// backend_cuda.h — the CUDA backend's controls beyond the Backend table (kernels/kernels.h
// declares backend_cuda() itself). Every function here exists in every build: without CUDA
// (make CUDA=0, or no nvcc) they come from backend_cuda_absent.c and report that plainly.
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// The first CUDA/cuBLAS error since start (or since backend_cuda_clear_error), as one line
// "file:line: call: message — hint"; NULL when none. The Backend functions cannot return
// errors, so the engine calls this after a step: it first waits for the GPU to finish, so a
// fault in an asynchronous kernel shows up here too.
const char *backend_cuda_last_error(void);
// Forget a recorded error (a fault that corrupted the context will come back at once).
void backend_cuda_clear_error(void);
// Wait until every queued GPU operation has finished (for timing); errors are recorded.
void backend_cuda_synchronize(void);

// GEMM precision: "fp32" (the default: exact float32, matches the CPU to ~1e-6), "tf32"
// (tensor cores, 10-bit mantissa operands, ~1e-3) or "bf16" (bf16 operands, fp32
// accumulation, ~1e-2). Only gemm is affected. Returns 0, or -1 with a reason in why.
int backend_cuda_set_precision(const char *name, char *why, size_t cap);
const char *backend_cuda_precision(void);   // "fp32", "tf32" or "bf16"

// How attention runs (kernels/cuda/attention.cu): "gemm" (the default: strided-batched cuBLAS
// products over the heads, the T×T probabilities kept for backward), "rows" (the first simple
// kernels, one block per query row; a second reference, slow) or "flash" (only each row's
// log-sum-exp kept, the probabilities recomputed in backward). LRSH_CUDA_ATTENTION=gemm|rows|flash
// chooses at start. Activations sized before a change (Backend.attention_saved_floats) must be
// sized again: build the model after it.
int backend_cuda_set_attention(const char *name, char *why, size_t cap);
const char *backend_cuda_attention(void);   // "gemm", "rows" or "flash"

// Whether a decoded token's calls are recorded once as a CUDA graph and replayed (Backend.graph_*;
// kernels/cuda/graph.cu): "on" (the default) or "off" (every call launched from the host, as
// while training). LRSH_CUDA_GRAPHS=on|off chooses at start; a generator's graph recorded
// before a change is not replayed after it.
int backend_cuda_set_graphs(const char *name, char *why, size_t cap);
const char *backend_cuda_graphs(void);   // "on" or "off"

// A decoded token through lrsh's fused kernels: one-row products (Backend.gemm with m = 1,
// trans_a = 0, trans_b = 1) by its own GEMV kernel (kernels/cuda/gemv.cu, fp32 whatever the
// precision, up to four products a launch) instead of cuBLAS, Backend.row_products with the
// step folded in, and decode_attention as one kernel (attention.cu): "on" (the default: faster
// on an H200, docs/gpu-results.md) or "off". LRSH_CUDA_FUSED=on|off chooses at start; a graph
// recorded before a change is not replayed.
int backend_cuda_set_fused(const char *name, char *why, size_t cap);
const char *backend_cuda_fused(void);   // "on" or "off"

// Programmatic dependent launch (Hopper) for a decoded token's own kernels (RMSNorm, gemv.cu's
// products, RoPE and the cache append, decode attention, SwiGLU): each may start while the one
// before it still runs, gemv.cu's fetching its weights into L2 meanwhile, and waits on the
// device for that one's results. "on" (the default: faster on an H200) or "off".
// LRSH_CUDA_PDL=on|off chooses at start; a graph recorded before a change is not replayed.
int backend_cuda_set_pdl(const char *name, char *why, size_t cap);
const char *backend_cuda_pdl(void);   // "on" or "off"

// Calls that ran the tensor-core flash kernels (flash_tc.cuh) so far, a forward and a backward
// one each: tests check that bf16 flash mode takes them, since their error bound would pass the
// fp32 kernels too. 0 without CUDA.
long backend_cuda_flash_tc_calls(void);

// Tuning knobs that bench_cuda varies to choose their defaults (not settings for users):
// "fold_split" — gemv.cu folds a decoded token's RMSNorm or SwiGLU into its products only when
// each of them takes at most this many warps a row (8, the default: always; below that, the
// step's kernel runs first when a block holds so few rows that its copy of x̂ costs as much as
// its weights); "gemv_warps_per_sm" — gemv.cu gives a call's rows more warps each until the
// call has this many warps an SM (16). value 0 restores the default. Returns the old value, or
// −1 for an unknown knob, a negative value or no device. A change makes recorded graphs stale.
int backend_cuda_tune(const char *knob, int value);

#ifdef __cplusplus
}
#endif
