// attention_gemm.h — causal attention as strided-batched GEMMs over the heads plus two row
// passes (softmax, softmax backward): how a GPU backend runs it on its matrix units. The
// orchestration (which head's block sits where, which product adds into what) is plain C over
// three operations the backend supplies, so tests/test_attention_gemm.c checks it on the CPU
// against the CPU backend's attention, and kernels/cuda/attention.cu runs it on cuBLAS.
//
// Shapes and semantics are those of Backend.attention_forward/_backward (kernels.h): q, out,
// dq, dout (B,Tq,H,hd); k, v, dk, dv (B,Tk,KVH,hd); att and the backward's scratch
// (B,H,Tq,Tk). att keeps the probabilities, 0 past each row's last visible key.
#pragma once

typedef struct AttentionGemmOps {
    // count row-major products C_i = alpha·op(A_i)·op(B_i) + beta·C_i, X_i = X + i·stride_x
    void (*gemm_strided_batched)(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                                 long stride_a, const float *b, int ldb, long stride_b, float beta, float *c, int ldc,
                                 long stride_c, int count);
    // In place over rows×Tk scores, row r being query r % Tq: softmax over its visible keys
    // (Tk − Tq + r % Tq + 1 of them), 0 beyond.
    void (*causal_softmax)(float *att, long rows, int Tq, int Tk);
    // In place over ds (dP in, dS out): dS = P ⊙ (dP − Σ_j P·dP) over the visible keys, 0 beyond.
    void (*causal_softmax_backward)(float *ds, const float *att, long rows, int Tq, int Tk);
} AttentionGemmOps;

void attention_gemm_forward(const AttentionGemmOps *ops, float *out, float *att, const float *q, const float *k,
                            const float *v, int B, int Tq, int Tk, int H, int KVH, int hd);
// dq, dk, dv +=; scratch holds B·H·Tq·Tk floats
void attention_gemm_backward(const AttentionGemmOps *ops, float *dq, float *dk, float *dv, float *scratch,
                             const float *dout, const float *att, const float *q, const float *k, const float *v,
                             int B, int Tq, int Tk, int H, int KVH, int hd);
