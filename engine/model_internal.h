// model_internal.h — what model.c, activations.c and model_forward.c share; not public.
#pragma once
#include "model.h"

// Saved forward state of one block for a batch of B×T tokens (all device pointers).
typedef struct LayerActs {
    float *x;                  // (B·T, dim) residual entering the block
    float *ln1, *rstd1;        // (B·T, dim), (B·T) attention RMSNorm output and 1/rms
    float *tqkv, *to;          // (B·T, rq+rk+rv), (B·T, ro) low-rank intermediates x·B; NULL when dense
    float *q, *k, *v;          // (B,T,H,hd), (B,T,KVH,hd) ×2; q and k after RoPE
    float *att;                // what attention keeps for backward: (B,H,T,T) probabilities, or a
                               // flash kernel's (B,H,T) log-sum-exp (Backend.attention_saved_floats)
    float *ao;                 // (B·T, dim) attention output before wo
    float *xmid;               // (B·T, dim) residual after attention
    float *ln2, *rstd2;        // (B·T, dim), (B·T) MLP RMSNorm output and 1/rms
    float *t13, *t2;           // (B·T, r1+r3), (B·T, r2) low-rank intermediates x·B of w1 and w3
                               // side by side, and of w2; NULL when dense
    float *g, *u, *h;          // (B·T, ffn) gate, up, silu(gate)·up
} LayerActs;

typedef struct Activations {
    int B, T;
    size_t att_floats;         // what attention keeps per layer, as the backend sized it for B, T
    float *base;               // the one allocation everything below is carved from
    size_t floats;
    LayerActs *layer;
    float *xf, *lnf, *rstdf;   // final residual, final norm output, its 1/rms
    float *logits;             // (B·T, vocab); overwritten by dlogits in backward
    float *losses;             // (B·T)
    int32_t *inputs, *targets; // (B·T) token ids on the device
    // backward scratch, shared by all blocks
    float *dres;               // (B·T, dim) gradient of the residual stream
    float *dln, *dao;          // (B·T, dim)
    float *dq, *dk, *dv;       // attention's gradients, then dq and dk before RoPE (rope_backward in place)
    float *dt;                 // (B·T, max group rank)
    float *pack, *gpack;       // (max in × max group rank) B factors and their gradient side by side
    float *datt;               // (B,H,T,T) attention backward scratch
    float *dg, *du, *dh;       // (B·T, ffn)
    int forward_done;          // a forward ran since the last backward
    const SubnetMask *subnet;  // the mask the last forward ran with (NULL: full network)
    float *zeros;              // max(B·T, dim, ffn) zeros, never written: the source for masking
} Activations;

// Size the activations for (B, T), reallocating only when the shape changes.
int activations_ensure(Model *m, int B, int T, Err *err);
void activations_free(Model *m);
size_t activations_bytes(const Model *m, int B, int T);

static inline float *param(const Model *m, int tensor) { return m->params + m->tensors[tensor].offset; }
static inline float *grad(const Model *m, int tensor) { return m->grads + m->tensors[tensor].offset; }

// Linears that read the same input: q/k/v, w1/w3, or one alone (wo, w2). y[i] is member i's
// output in forward and its output's gradient in backward.
typedef struct LinearGroup {
    const Linear *lin[3];
    float *y[3];
    int count;
} LinearGroup;

// Σ rank of the members (0 when all are dense).
int linear_group_rank(const LinearGroup *g);
// The members' B factors side by side (in×R), copied into pack (in×R floats); a lone factor
// is returned where it lies.
const float *linear_group_pack(const Model *m, const LinearGroup *g, float *pack);
// y_i = x(n×in)·W_iᵀ + beta·y_i; a factorized W_i goes through t = x·[B…] (n×R, kept for
// backward) and never forms W. packed_t: the factors side by side and transposed, [B…]ᵀ (R×in),
// or NULL to pack them here, into pack (in×R floats).
void linear_group_forward(const Model *m, const LinearGroup *g, float *t, const float *x, int n, float beta,
                          const float *packed_t, float *pack);
// The same for one row x̂ = the step `in` of its input (RMSNorm or SwiGLU, folded into the
// first products by Backend.row_products); packed_t as above, required when the group has a rank.
void linear_group_row(const Model *m, const LinearGroup *g, float *t, const RowInput *in, float beta,
                      const float *packed_t);
// The group of one layer's q/k/v or w1/w3 with outputs y0, y1, y2.
LinearGroup linear_group_qkv(const LayerWeights *w, float *q, float *k, float *v);
LinearGroup linear_group_13(const LayerWeights *w, float *gate, float *up);
LinearGroup linear_group_one(const Linear *lin, float *y);
// A layer's four groups in order — q/k/v, wo, w1/w3, w2 — with their outputs unset.
void layer_linear_groups(const LayerWeights *w, LinearGroup groups[4]);
// Over every group of the model: the largest R, the largest in×R and the sum of in×R.
typedef struct LinearGroupSizes { size_t max_rank, max_pack, total_pack; } LinearGroupSizes;
LinearGroupSizes linear_group_sizes(const Model *m);

// Backward of the last forward with local losses instead of the model's loss, for the
// forward-gradient "local guess" (align.c): block l's parameters get the gradient of its own
// early-exit loss L_l = CE(head(norm(x_{l+1}))) through block l alone (stop-gradient at its
// input; the final norm and head reused, their gradients not touched by L_l), the embedding
// gets L_0's through block 0, and the final norm and head the true loss's (their local loss).
// ADDS grad_scale·(that gradient) into m->grads. Overwrites the forward's logits and final norm.
int model_backward_local(Model *m, float grad_scale, Err *err);
