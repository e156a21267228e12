// kernels.h — the device-agnostic compute interface. Everything above kernels/ computes on the
// model's tensors through a Backend and never dereferences a pointer the backend allocated: on
// CUDA those pointers live in GPU memory (host copies — checkpoints, factorize, inspection —
// use CBLAS/LAPACKE on the host directly). kernels/cpu/ is the readable reference; kernels/cuda/ must
// match it kernel by kernel.
//
// Conventions:
//   - float32, row-major. Shapes are in the arguments; (B,T,H,hd) means index
//     ((b*T + t)*H + h)*hd + i.
//   - Every *_backward ADDS into every gradient it writes (dx += ..., dparam += ...), so the
//     residual stream and shared weights accumulate naturally; callers zero the buffers.
//   - Exceptions are named in the comment (softmax_xent_forward writes dlogits).
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct Backend Backend;

// The arguments of one Backend.axpby: y(n) = alpha·x + beta·y.
typedef struct AxpbyCall {
    float *y;
    float alpha;
    const float *x;
    float beta;
    long n;
} AxpbyCall;

// The arguments of one Backend.gemm call.
typedef struct GemmCall {
    int trans_a, trans_b, m, n, k;
    float alpha;
    const float *a;
    int lda;
    const float *b;
    int ldb;
    float beta;
    float *c;
    int ldc;
} GemmCall;

static inline GemmCall gemm_call(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                                 const float *b, int ldb, float beta, float *c, int ldc) {
    return (GemmCall){trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc};
}

// The input step of a decoded token's products (Backend.row_products), folded into them where
// a GPU would otherwise launch a kernel only to write x̂ for them to read.
typedef enum {
    ROW_RMSNORM,   // x̂ = x / rms(x) · gain, as rmsnorm_forward (the norm before q/k/v, the MLP, the head)
    ROW_SWIGLU,    // x̂ = silu(x) · up, as swiglu_forward with gate = x (before the down projection)
} RowStep;

typedef struct RowInput {
    RowStep step;
    const float *x;      // (k)
    const float *gain;   // (k) ROW_RMSNORM
    const float *up;     // (k) ROW_SWIGLU
    float eps;           // ROW_RMSNORM
    int k;
    // Scratch a backend may write x̂ (k) and the norm's rstd (1) into when it runs the step
    // apart (the CPU does; a fused GPU kernel does not): their contents afterwards are unspecified.
    float *xhat, *rstd;
} RowInput;

// One product of row_products: y(n) = x̂·Wᵀ + beta·y, W row-major n×k (row stride k); beta = 0
// ignores y.
typedef struct RowProduct {
    float *y;
    const float *w;
    int n;
    float beta;
} RowProduct;

struct Backend {
    const char *name;                              // "cpu" or "cuda"
    const char *(*describe)(void);                 // e.g. "cpu: OpenBLAS 0.3.21 (Cooperlake), 2 threads"

    // memory
    void *(*alloc)(size_t bytes);                  // zero-filled; NULL when out of memory
    void (*release)(void *ptr);                    // NULL is fine
    void (*upload)(void *dst, const void *host_src, size_t bytes);
    void (*download)(void *host_dst, const void *src, size_t bytes);
    void (*copy)(void *dst, const void *src, size_t bytes);  // device to device
    void (*zero)(void *dst, size_t bytes);
    // Host memory that upload and download move fastest, for buffers crossing every step (a
    // decoded token's logits): page-locked on CUDA (copied by DMA, no staging), plain on the
    // CPU. NULL when out of memory; host_release(NULL) is fine.
    void *(*host_alloc)(size_t bytes);
    void (*host_release)(void *ptr);
    size_t (*mem_available)(void);                 // bytes an allocation may still take
    int memory_is_host;                            // its buffers are host memory (the CPU's): host copies count too
    // Wait until every queued operation has finished: for timing (a GPU backend returns from
    // most calls before the work is done). Nothing to wait for on the CPU.
    void (*synchronize)(void);
    // The first failure since the last call that no call could return (the calls return
    // nothing; a GPU kernel's fault shows only later): one line, forgotten once taken; NULL
    // when none. Waits for the queued work first. On the CPU: a kernel's scratch that could not
    // be allocated (cpu_fail).
    const char *(*take_error)(void);

    // C(m×n) = alpha·op(A)·op(B) + beta·C, op(X) = Xᵀ when trans_x != 0; A is m×k after op.
    void (*gemm)(int trans_a, int trans_b, int m, int n, int k, float alpha,
                 const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);
    // Independent products (no call's C is another's A, B or C), run in any order or at once:
    // on the CPU, thin products side by side on one thread each beat one after the other on all.
    void (*gemm_batch)(const GemmCall *calls, int count);

    // Independent one-row products of one input after its step (decoding): the results of
    // gemm_batch of the x̂·W_iᵀ, x̂ the step's output (which in->xhat may or may not hold after).
    // No call's y may overlap in's x, gain or up.
    void (*row_products)(const RowInput *in, const RowProduct *calls, int count);

    // out(n×dim) = table[tokens[i]]
    void (*embedding_forward)(float *out, const int32_t *tokens, const float *table, int n, int dim);
    // dtable[tokens[i]] += dout[i]
    void (*embedding_backward)(float *dtable, const float *dout, const int32_t *tokens, int n, int dim);

    // out = x / rms(x) * gain per row of x(n×dim); rstd(n) saved for backward
    void (*rmsnorm_forward)(float *out, float *rstd, const float *x, const float *gain, int n, int dim, float eps);
    void (*rmsnorm_backward)(float *dx, float *dgain, const float *dout, const float *x,
                             const float *gain, const float *rstd, int n, int dim);

    // Rotary embedding on x(B,T,H,hd), interleaved pairs (x[2i], x[2i+1]) rotated by angle
    // (pos0 + t)·theta^(−2i/hd). forward may run in place (out == in).
    void (*rope_forward)(float *out, const float *in, int B, int T, int H, int hd, int pos0, float theta);
    // din = Rᵀ·dout, written (not added): din's old values are ignored; may run in place
    void (*rope_backward)(float *din, const float *dout, int B, int T, int H, int hd, int pos0, float theta);

    // Causal attention. q(B,Tq,H,hd), k,v(B,Tk,KVH,hd) with Tk >= Tq: query t sits at absolute
    // position Tk−Tq+t and sees keys 0..Tk−Tq+t. Head h uses kv head h/(H/KVH).
    // out(B,Tq,H,hd); att keeps what backward needs: the softmax probabilities (B,H,Tq,Tk) on
    // the CPU, the rows' log-sum-exp (B,H,Tq) in CUDA's flash mode.
    // Floats of att, and of attention_backward's scratch, for these shapes.
    size_t (*attention_saved_floats)(int B, int H, int Tq, int Tk, int hd);
    void (*attention_forward)(float *out, float *att, const float *q, const float *k, const float *v,
                              int B, int Tq, int Tk, int H, int KVH, int hd);
    // dq, dk, dv +=; scratch holds attention_saved_floats floats; out is the forward's output
    // (CUDA's flash mode takes rowsum(dout ⊙ out) from it: rows whose dout is 0 may differ)
    void (*attention_backward)(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                               const float *out, const float *att, const float *q, const float *k, const float *v,
                               int B, int Tq, int Tk, int H, int KVH, int hd);

    // Decoding one token at the position *pos, read from the device, so that a recorded step
    // (graph_begin) replays for every position: q(H,hd) and k(KVH,hd), as the products left them,
    // are rotated as by rope_forward at pos0 = *pos; k and v(KVH,hd) become row *pos of k_cache
    // and v_cache (rows of KVH·hd floats, cap of them); out(H,hd) = attention_forward of q with
    // Tq = 1 over the cache rows 0..*pos. q is scratch afterwards (rotated or not); scratch holds
    // decode_attention_floats(H, cap, hd) floats. A *pos outside 0..cap−1 writes nothing.
    size_t (*decode_attention_floats)(int H, int cap, int hd);
    void (*decode_attention)(float *out, float *scratch, float *q, const float *k, const float *v, float *k_cache,
                             float *v_cache, const int32_t *pos, int cap, int H, int KVH, int hd, float theta);

    // Recording, where issuing a call costs more than running it (a GPU; NULL on the CPU): the
    // calls between graph_begin and graph_end are recorded, not run, and graph_launch replays
    // them all for the price of one launch. What changes between replays must come from
    // device memory (decode_*'s pos). graph_begin: 0, or −1 when recording is unavailable now.
    // graph_end: the graph, or NULL when recording failed (the calls did not run: run them
    // directly). graph_launch: 0, or −1 when the graph is stale (the backend's settings or its
    // own buffers changed since it was recorded): release it and record again.
    int (*graph_begin)(void);
    void *(*graph_end)(void);
    int (*graph_launch)(void *graph);
    void (*graph_release)(void *graph);   // NULL is fine

    // out = silu(gate)·up elementwise over n values
    void (*swiglu_forward)(float *out, const float *gate, const float *up, long n);
    // dgate, dup written (not added) with dout's share through silu(gate)·up
    void (*swiglu_backward)(float *dgate, float *dup, const float *dout, const float *gate, const float *up, long n);

    // losses(n) = −log softmax(logits(n×V))[target]. When dlogits != NULL it is WRITTEN (not
    // added) with (softmax − onehot)·dscale; dlogits may equal logits (in place).
    void (*softmax_xent_forward)(float *losses, float *dlogits, const float *logits,
                                 const int32_t *targets, int n, int V, float dscale);

    // elementwise and reductions
    void (*add)(float *y, const float *x, long n);           // y += x
    void (*scale)(float *x, float s, long n);                // x *= s
    void (*axpby)(float *y, float alpha, const float *x, float beta, long n);   // y = αx + βy; β = 0 ignores y
    // Independent axpbys (a call's x may be its own y, never another's): one launch on a GPU
    // for the optimizers' per-tensor updates.
    void (*axpby_batch)(const AxpbyCall *calls, int count);
    // y(rows×cols, row stride ldy) = x(rows×cols, row stride ldx) + beta·y; beta = 0 ignores y.
    // Packs and unpacks column blocks: the B factors of linears that share an input.
    void (*add_matrix)(float *y, int ldy, const float *x, int ldx, int rows, int cols, float beta);
    double (*sum)(const float *x, long n);                   // deterministic order
    double (*sumsq)(const float *x, long n);                 // deterministic order
    // out[i] = Σ x[i]², deterministic (the CPU's bits are sumsq's; a GPU may sum in another
    // order); on a GPU one wait for all instead of count.
    void (*sumsq_batch)(const float *const *x, const long *n, int count, double *out);

    // AdamW on n values: m,v moments; bias correction for step t (1-based); the gradient is
    // multiplied by grad_scale first (clipping). Decoupled decay: p −= lr·wd·p.
    void (*adamw_update)(float *param, const float *grad, float *m, float *v, long n, float lr,
                         float beta1, float beta2, float eps, float wd, float grad_scale, int t);
};

// The CPU backend (always present). threads <= 0 keeps the current OpenMP/BLAS setting.
const Backend *backend_cpu(int threads);

// The CUDA backend on the first visible GPU, or NULL with a one-line reason in why (no device,
// no driver, an unsupported card, or a build without CUDA); present in every build. On success
// why holds a warning to show ("" when none: an LRSH_CUDA_* variable it did not understand).
// kernels/cuda/backend_cuda.h has its error check, synchronization and precision controls.
const Backend *backend_cuda(char *why, size_t cap);
