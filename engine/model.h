// model.h — a Llama-style decoder whose every non-embedding matrix is dense or factorized
// W = A·Bᵀ (A: out×r, B: in×r). Parameters live in one flat buffer described by a table of
// tensors; gradients mirror it. The model computes through a Backend and never prints.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "err.h"
#include "../kernels/kernels.h"

typedef struct ModelConfig {
    int dim, layers, heads, kv_heads, ffn, seq, vocab;
    int rank;          // 0: dense; > 0: this rank for every matrix; < 0: floor(rank_ratio·in)
    float rank_ratio;  // used when rank < 0 (default 0.25)
    float rope_theta;  // 10000
    float norm_eps;    // 1e-5
    uint64_t seed;     // initialization seed
} ModelConfig;

typedef enum { ROLE_EMBED, ROLE_HEAD, ROLE_NORM, ROLE_DENSE, ROLE_FACTOR_A, ROLE_FACTOR_B } TensorRole;

typedef struct TensorDesc {
    char name[64];     // "embed", "blocks.0.attn.wq.A", ...
    int rows, cols;    // row-major rows×cols
    size_t offset;     // in floats, into params / grads (64-byte aligned)
    TensorRole role;
    int layer;         // block index, −1 outside the blocks
} TensorDesc;

// One linear map y = x·Wᵀ, W: out×in; dense (rank 0) or factorized y = (x·B)·Aᵀ.
typedef struct Linear {
    int in, out, rank;
    int w;             // tensor index of W (dense) or A (factorized)
    int b;             // tensor index of B (factorized), −1 when dense
} Linear;

typedef struct LayerWeights {
    int attn_norm, mlp_norm;            // tensor indices of the norm gains
    Linear wq, wk, wv, wo, w1, w2, w3;  // w1: gate, w3: up, w2: down
} LayerWeights;

// A subnetwork for forward and backward (Model.subnet; NULL means the whole network). Host
// arrays, each NULL for "keep all": a skipped block passes its residual stream through
// (x_out = x) and its parameters get no gradient; a masked head's output (before wo) and a
// masked MLP hidden unit (silu(gate)·up, before w2) are zero, with no rescaling of the rest.
// A forward remembers the mask it ran with, and its backward uses that same mask.
typedef struct SubnetMask {
    const uint8_t *block_keep;   // [layers]       0: skip block l
    const uint8_t *head_keep;    // [layers·heads] 0: zero head h of block l
    const uint8_t *ffn_keep;     // [layers·ffn]   0: zero hidden unit j of block l
} SubnetMask;

typedef struct Model {
    ModelConfig cfg;
    const Backend *be;
    TensorDesc *tensors;
    int n_tensors;
    int embed, norm, head;              // tensor indices
    LayerWeights *layer;                // cfg.layers entries
    size_t n_params;                    // floats in params (including alignment padding)
    float *params, *grads;              // device buffers of n_params floats
    struct Activations *acts;           // lazily sized for the last (B, T); opaque
    const SubnetMask *subnet;           // NULL: the full network (see SubnetMask)
} Model;

// Presets: "tiny", "small", "base". Fills every field (vocab 8192, factorized at ratio 0.25).
int model_config_preset(ModelConfig *cfg, const char *name, Err *err);
extern const char *const model_preset_names[];   // the presets' names, NULL-terminated
// Set one field by name ("dim", "layers", "heads", "kv_heads", "ffn", "seq", "vocab", "rank",
// "rank_ratio", "seed"); a value that is not a number is an error naming the key.
int model_config_set(ModelConfig *cfg, const char *key, const char *value, Err *err);
int model_config_validate(const ModelConfig *cfg, Err *err);
// "dim=256 layers=4 … rank=0.25·in seq=256 vocab=8192": the config as the shell shows it.
void model_config_describe(const ModelConfig *cfg, char *buf, size_t cap);
// Every field but the seed equal: models of these configs have the same tensors.
int model_config_same_shape(const ModelConfig *a, const ModelConfig *b);
// The rank a matrix of out×in gets under cfg (0 = dense).
int model_config_rank(const ModelConfig *cfg, int out, int in);

// Allocate and initialize (dense init, then truncated SVD for factorized matrices).
int model_build(Model *m, const ModelConfig *cfg, const Backend *be, Err *err);
// Allocate with zeroed parameters (for a loader that fills them).
int model_alloc(Model *m, const ModelConfig *cfg, const Backend *be, Err *err);
// A new model (its own buffers, the same backend) holding src's config and parameters.
int model_clone(Model *out, const Model *src, Err *err);
// The tensor table a config implies (names, shapes, roles, offsets), without allocating the
// model; *tensors is malloc'ed and owned by the caller.
int model_tensor_table(const ModelConfig *cfg, TensorDesc **tensors, int *n, Err *err);
// Whether any matrix is factorized (W = A·Bᵀ): some tensor is a factor A.
int model_has_factors(const Model *m);
void model_free(Model *m);
int model_find_tensor(const Model *m, const char *name);   // −1 when absent

// Forward on tokens (host, B×(T+1)): inputs tokens[:, :T], targets tokens[:, 1:]; returns the
// mean cross-entropy in *loss and keeps the activations for model_backward.
int model_forward(Model *m, const int32_t *tokens, int B, int T, float *loss, Err *err);
// Backward of the last forward; ADDS grad_scale·∂loss/∂θ into m->grads.
int model_backward(Model *m, float grad_scale, Err *err);
// Both for one micro-batch of training: the same loss and gradients as model_forward then
// model_backward(grad_scale), with the softmax computed once (the forward writes dlogits).
int model_forward_backward(Model *m, const int32_t *tokens, int B, int T, float grad_scale, float *loss, Err *err);
void model_zero_grad(Model *m);
// 1 when every parameter is finite (one pass on the backend; the sum of squares in double).
int model_params_finite(const Model *m);

// A failure the backend could not return when it happened (Backend.take_error: a GPU
// kernel's fault, a library out of memory) as −1 with one line in err, then forgotten; 0 when
// there is none. The engine checks after each training step, evaluation and generator feed.
int backend_failed(const Backend *be, Err *err);

// Counts: parameters actually stored, the dense equivalent (every W full), those taking part
// in matrix products (all but the embedding and the norm gains), and training FLOPs per token
// at context T.
typedef struct ModelCounts {
    long params, dense_params, matmul_params;
    double train_flops_per_token;   // 6·matmul_params + attention's 12·layers·T·dim (see model.c)
    size_t param_bytes, activation_bytes;
} ModelCounts;
ModelCounts model_counts(const Model *m, int B, int T);
