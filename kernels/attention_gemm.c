// attention_gemm.c — attention by strided-batched GEMMs over the heads (see attention_gemm.h).
//
// For batch b and position r inside a kv group (group = H/KVH query heads share a kv head),
// the KVH query heads h = g·group + r, g = 0..KVH−1, form one strided batch: their blocks of q
// start group·hd floats apart, their kv heads hd apart, their att blocks group·Tq·Tk apart. So
// a product over all heads is B·group strided calls of KVH (plain multi-head: B calls of H).
// The calls run in order, so the heads of one group that add into the same dk, dv rows do so
// one after another, in a fixed order.
//
// The full Tq×Tk score block is computed and its masked part zeroed (the CPU backend skips most
// of it in blocks of query rows): twice the attention flops, on tensor cores, for fewer calls.
#include <math.h>
#include "attention_gemm.h"

typedef struct {
    int B, Tq, Tk, H, KVH, hd, group;
} Heads;

// What a product reads or writes per head: a query-side (Tq×hd, row stride H·hd), a kv-side
// (Tk×hd, row stride KVH·hd) or a score (Tq×Tk) matrix.
typedef enum { QSIDE, KVSIDE, SCORES } View;

typedef struct {
    const float *base;   // the tensor
    View view;
} Operand;

// Where head h = r (g = 0) of batch b starts in a tensor of this view.
static long view_offset(const Heads *s, View w, int b, int r) {
    if (w == QSIDE) return ((long)b * s->Tq * s->H + r) * s->hd;
    if (w == KVSIDE) return (long)b * s->Tk * s->KVH * s->hd;
    return ((long)b * s->H + r) * s->Tq * s->Tk;
}

static int view_ld(const Heads *s, View w) { return w == QSIDE ? s->H * s->hd : w == KVSIDE ? s->KVH * s->hd : s->Tk; }

// From head g·group + r to head (g+1)·group + r.
static long view_stride(const Heads *s, View w) {
    return w == QSIDE ? (long)s->group * s->hd : w == KVSIDE ? s->hd : (long)s->group * s->Tq * s->Tk;
}

// C_h = alpha·op(A_h)·op(B_h) + beta·C_h for every head h.
static void heads_gemm(const AttentionGemmOps *ops, const Heads *s, int trans_a, int trans_b, int m, int n, int k,
                       float alpha, Operand a, Operand b, float beta, float *c, View cv) {
    for (int bi = 0; bi < s->B; bi++)
        for (int r = 0; r < s->group; r++)
            ops->gemm_strided_batched(trans_a, trans_b, m, n, k, alpha, a.base + view_offset(s, a.view, bi, r),
                                      view_ld(s, a.view), view_stride(s, a.view),
                                      b.base + view_offset(s, b.view, bi, r), view_ld(s, b.view),
                                      view_stride(s, b.view), beta, c + view_offset(s, cv, bi, r), view_ld(s, cv),
                                      view_stride(s, cv), s->KVH);
}

void attention_gemm_forward(const AttentionGemmOps *ops, float *out, float *att, const float *q, const float *k,
                            const float *v, int B, int Tq, int Tk, int H, int KVH, int hd) {
    Heads s = {B, Tq, Tk, H, KVH, hd, H / KVH};
    float scale = 1.0f / sqrtf((float)hd);
    Operand Q = {q, QSIDE}, K = {k, KVSIDE}, V = {v, KVSIDE}, P = {att, SCORES};
    heads_gemm(ops, &s, 0, 1, Tq, Tk, hd, scale, Q, K, 0.0f, att, SCORES);      // S = scale·Q·Kᵀ
    ops->causal_softmax(att, (long)B * H * Tq, Tq, Tk);                          // P = softmax(S), causal
    heads_gemm(ops, &s, 0, 0, Tq, hd, Tk, 1.0f, P, V, 0.0f, out, QSIDE);        // O = P·V
}

void attention_gemm_backward(const AttentionGemmOps *ops, float *dq, float *dk, float *dv, float *scratch,
                             const float *dout, const float *att, const float *q, const float *k, const float *v,
                             int B, int Tq, int Tk, int H, int KVH, int hd) {
    Heads s = {B, Tq, Tk, H, KVH, hd, H / KVH};
    float scale = 1.0f / sqrtf((float)hd);
    Operand Q = {q, QSIDE}, K = {k, KVSIDE}, V = {v, KVSIDE}, P = {att, SCORES}, dO = {dout, QSIDE};
    Operand dS = {scratch, SCORES};
    heads_gemm(ops, &s, 0, 1, Tq, Tk, hd, 1.0f, dO, V, 0.0f, scratch, SCORES);  // dP = dO·Vᵀ
    heads_gemm(ops, &s, 1, 0, Tk, hd, Tq, 1.0f, P, dO, 1.0f, dv, KVSIDE);       // dV += Pᵀ·dO
    ops->causal_softmax_backward(scratch, att, (long)B * H * Tq, Tq, Tk);        // dS = P ⊙ (dP − Σ P·dP)
    heads_gemm(ops, &s, 0, 0, Tq, hd, Tk, scale, dS, K, 1.0f, dq, QSIDE);       // dQ += scale·dS·K
    heads_gemm(ops, &s, 1, 0, Tk, hd, Tq, scale, dS, Q, 1.0f, dk, KVSIDE);      // dK += scale·dSᵀ·Q
}
