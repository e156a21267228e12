// cpu_kernels.h — private to kernels/cpu/: the CPU implementations behind backend_cpu()'s
// table. Signatures and semantics are those of the Backend fields in kernels/kernels.h.
#pragma once
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "../kernels.h"
#include "cpu_expf.h"

// A kernel that cannot do its work (no memory for its scratch) records why and returns; the
// engine hears of it through Backend.take_error after the call, as of a GPU kernel's fault.
void cpu_fail(const char *why);

// Below this many floats an OpenMP fork/join costs more than the loop it would split.
#define CPU_PARALLEL_MIN 32768

void cpu_gemv_rows(float *y, const float *w, int ldw, const float *x, int n, int k, float alpha, float beta);

// backend_cpu.c
void cpu_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc);
void cpu_gemm_batch(const GemmCall *calls, int count);

// embedding.c
void cpu_embedding_forward(float *out, const int32_t *tokens, const float *table, int n, int dim);
void cpu_embedding_backward(float *dtable, const float *dout, const int32_t *tokens, int n, int dim);

// norm_rope.c
void cpu_rmsnorm_forward(float *out, float *rstd, const float *x, const float *gain, int n, int dim,
                         float eps);
void cpu_rmsnorm_backward(float *dx, float *dgain, const float *dout, const float *x,
                          const float *gain, const float *rstd, int n, int dim);
void cpu_rope_forward(float *out, const float *in, int B, int T, int H, int hd, int pos0, float theta);
void cpu_rope_backward(float *din, const float *dout, int B, int T, int H, int hd, int pos0, float theta);
void cpu_decode_rope_append(float *q, const float *k, const float *v, float *k_cache, float *v_cache,
                            const int32_t *pos, int H, int KVH, int hd, float theta);

// attention.c
size_t cpu_attention_saved_floats(int B, int H, int Tq, int Tk, int hd);
void cpu_attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                           int B, int Tq, int Tk, int H, int KVH, int hd);
void cpu_attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                            const float *out, const float *att, const float *q, const float *k, const float *v,
                            int B, int Tq, int Tk, int H, int KVH, int hd);
size_t cpu_decode_attention_floats(int H, int cap, int hd);
void cpu_decode_attention(float *out, float *scratch, float *q, const float *k, const float *v, float *k_cache,
                          float *v_cache, const int32_t *pos, int cap, int H, int KVH, int hd, float theta);

// elementwise.c
void cpu_swiglu_forward(float *out, const float *gate, const float *up, long n);
void cpu_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                         const float *up, long n);
void cpu_add(float *y, const float *x, long n);
void cpu_scale(float *x, float s, long n);
void cpu_axpby(float *y, float alpha, const float *x, float beta, long n);
void cpu_axpby_batch(const AxpbyCall *calls, int count);
void cpu_sumsq_batch(const float *const *x, const long *n, int count, double *out);
void cpu_add_matrix(float *y, int ldy, const float *x, int ldx, int rows, int cols, float beta);
double cpu_sum(const float *x, long n);
double cpu_sumsq(const float *x, long n);

// loss.c
void cpu_softmax_xent_forward(float *losses, float *dlogits, const float *logits,
                              const int32_t *targets, int n, int V, float dscale);

// adamw.c
void cpu_adamw_update(float *param, const float *grad, float *m, float *v, long n, float lr,
                      float beta1, float beta2, float eps, float wd, float grad_scale, int t);
