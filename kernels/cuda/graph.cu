// graph.cu — recording a sequence of Backend calls as a CUDA graph and replaying it with one
// launch (Backend.graph_*). A decoded token is about a hundred small kernels and GEMMs, each
// costing the host a few µs to launch, more than most of them take to run; replayed from a
// graph they go to the GPU together.
//
// A graph bakes in every kernel's arguments (pointers and scalars) and cuBLAS's choice of
// kernels for the precision of the moment. So whatever changes between replays must come from
// device memory (the engine's decode_* calls read the position there), and the backend counts
// in cuda.epoch each change that could make a recorded graph wrong — the precision, the
// attention mode, a grow-only buffer moving, graphs turned off: a graph recorded at another
// epoch is stale and is not launched.
//
// Recording needs calls that only queue work on cuda.stream: a synchronous copy, a cudaMalloc
// or a wait for the device breaks it (the recording then fails, nothing has run, and the
// caller runs the calls directly). The one such thing on the decode path is the address list
// of a pointer-batched GEMM, which travels through a ring of pinned memory that is reused
// after it wraps: while recording it goes instead to the graph's own arena, which lives as
// long as the graph (a replay copies the same addresses up again).
#include <stdlib.h>
#include <string.h>

#include "cuda_common.cuh"

#define ARENA_ADDRESSES 4096   // a GPT-2-sized decode step needs a few hundred

struct CudaGraph {
    cudaGraphExec_t exec;   // NULL until instantiated
    unsigned epoch;         // cuda.epoch when recorded
    void **host, **dev;     // the arena: ARENA_ADDRESSES pinned host and device addresses
    int used;
};

static void graph_free(CudaGraph *g) {
    if (!g) return;
    CUDA_CHECK(cudaStreamSynchronize(cuda.stream));   // a replay may still read the arena
    if (g->exec) CUDA_CHECK(cudaGraphExecDestroy(g->exec));
    if (g->host) CUDA_CHECK(cudaFreeHost(g->host));
    if (g->dev) CUDA_CHECK(cudaFree(g->dev));
    free(g);
}

int cuda_graph_begin(void) {
    if (!cuda.graphs || cuda.sync_each_launch || cuda.recording || cuda.error[0]) return -1;
    CudaGraph *g = (CudaGraph *)calloc(1, sizeof *g);
    if (!g) return -1;
    size_t bytes = sizeof(void *) * ARENA_ADDRESSES;
    if (cudaHostAlloc((void **)&g->host, bytes, cudaHostAllocDefault) != cudaSuccess ||
        cudaMalloc((void **)&g->dev, bytes) != cudaSuccess ||
        cudaStreamBeginCapture(cuda.stream, cudaStreamCaptureModeThreadLocal) != cudaSuccess) {
        cudaGetLastError();   // no memory or no capture: decoding runs directly, nothing to report
        graph_free(g);
        return -1;
    }
    g->epoch = cuda.epoch;
    cuda.recording = g;
    return 0;
}

void *cuda_graph_end(void) {
    CudaGraph *g = cuda.recording;
    if (!g) return NULL;
    cuda.recording = NULL;
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamEndCapture(cuda.stream, &graph);
    if (e == cudaSuccess && !cuda.error[0]) e = cudaGraphInstantiate(&g->exec, graph, 0);
    if (graph) cudaGraphDestroy(graph);
    // a change during the recording (a buffer moved) may have left old addresses in the graph
    if (e != cudaSuccess || cuda.error[0] || g->epoch != cuda.epoch) {
        // The recording failed and nothing ran: what the checks recorded meanwhile was about
        // the recording (a call it cannot hold), not about the device. Forget it. A fault of a
        // kernel queued before the recording is sticky: graph_free's synchronize records it.
        cuda.error[0] = 0;
        cudaGetLastError();
        graph_free(g);
        return NULL;
    }
    return g;
}

int cuda_graph_launch(void *graph) {
    CudaGraph *g = (CudaGraph *)graph;
    if (!g || g->epoch != cuda.epoch) return -1;
    return CUDA_CHECK(cudaGraphLaunch(g->exec, cuda.stream)) ? -1 : 0;
}

void cuda_graph_release(void *graph) { graph_free((CudaGraph *)graph); }

void **graph_addresses(const void *const *list, int n) {
    CudaGraph *g = cuda.recording;
    if (!g || g->used + n > ARENA_ADDRESSES) return NULL;
    memcpy(g->host + g->used, list, sizeof(void *) * n);
    if (CUDA_CHECK(cudaMemcpyAsync(g->dev + g->used, g->host + g->used, sizeof(void *) * n, cudaMemcpyHostToDevice,
                                   cuda.stream)))
        return NULL;
    void **out = g->dev + g->used;
    g->used += n;
    return out;
}
