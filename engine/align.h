// align.h — gradient alignment (`align`): the cosine similarity, per parameter group and
// overall, between the full gradient g₁ on a batch and a second gradient g₂:
//   microbatch   the gradient of other batches (gradient noise)
//   blockdrop p  the gradient of subnetworks that skip each block with probability p (its
//                residual path kept, x_out = x), averaged over `draws` subnetworks
//   width p      the gradient of subnetworks keeping round((1−p)·H) random heads and
//                round((1−p)·ffn) random MLP units per block (at least one), over `draws`
//   delayed      a gradient computed earlier (the caller keeps it: inspect_snapshot of
//                m->grads after the previous step's backward)
//   members      other ensemble members' gradients on the same batch (align_compare_members)
//   forward      a forward-gradient estimate: per group G, the projection of g₁ onto a guess
//                direction u, (g·u/‖u‖²)·u — what one jvp per group along u gives — with
//                guess=random (u ~ N(0, I), averaged over `draws`) or guess=local (u = the
//                gradient of local losses: each block trained by its own early-exit loss
//                through the shared final norm and head, backprop stopped at its input; see
//                model_backward_local). The projection is never anti-aligned, so these
//                cosines are ≥ 0; the norm ratio shows the estimate's shrinkage.
// Groups: each matrix (W, or A and B together), embed, head, and each norm gain. Subnetwork
// gradients are not rescaled (a dropped unit's parameters get 0). Never prints.
#pragma once
#include <stdint.h>
#include "err.h"
#include "model.h"
#include "dataset.h"

typedef enum { ALIGN_MICROBATCH, ALIGN_BLOCKDROP, ALIGN_WIDTH, ALIGN_DELAYED, ALIGN_MEMBERS, ALIGN_FORWARD } AlignAgainst;
typedef enum { ALIGN_GUESS_RANDOM, ALIGN_GUESS_LOCAL } AlignGuess;

typedef struct AlignConfig {
    AlignAgainst against;
    AlignGuess guess;        // forward only
    float p;                 // blockdrop: P(skip a block); width: fraction of heads/units dropped
    int draws;               // blockdrop, width, forward random: subnetworks/directions averaged
    int draws_given;         // draws= was said (guess=local, one deterministic guess, refuses it)
    int batches;             // micro-batches of B×T averaged into each gradient
    int B, T;                // micro-batch shape (the trainer's)
    uint64_t seed;           // the batches (train split) and the draws
    ProgressFn stop;         // asked before every batch's gradient: nonzero stops (NULL: never)
    void *stop_ctx;
} AlignConfig;

// Defaults for `against` ("microbatch", "blockdrop", "width", "delayed", "members",
// "forward"): p = 0.5, draws = 4, batches = 1, guess = random, B = 4, T = 64, seed = 1.
// An unknown name is an error listing the known ones.
int align_config_default(AlignConfig *cfg, const char *against, Err *err);
// Set "p", "draws", "batches", "guess" (random|local), "batch", "seq" or "seed"; a key the
// mode does not take, or a bad value, is an error naming it.
int align_config_set(AlignConfig *cfg, const char *key, const char *value, Err *err);
// "blockdrop p=0.5 draws=4", for tables and JSON's `against`.
void align_config_describe(const AlignConfig *cfg, char *buf, size_t cap);

typedef struct AlignGroup {
    char param[64];          // "blocks.0.attn.wq" (its A and B together), "embed", "norm", …
    int layer;               // block index, −1 outside the blocks
    int tensor, tensor_b;    // tensor indices (tensor_b: the B factor, else −1)
    double cosine;           // cos(g₁, g₂) over the group; NAN when either part is 0
    double norm1, norm2;     // ‖g₁‖, ‖g₂‖ over the group
} AlignGroup;

typedef struct AlignResult {
    char against[64];        // align_config_describe, or "given" for align_compare
    double overall;          // cosine over all parameters; NAN when either gradient is 0
    double norm1, norm2;     // ‖g₁‖, ‖g₂‖
    double norm_ratio;       // ‖g₂‖/‖g₁‖
    AlignGroup *per_param;   // n groups in tensor-table order (malloc'ed; align_result_free)
    int n;
} AlignResult;
void align_result_free(AlignResult *r);

// The cosines between two gradients laid out like m->grads (device buffers).
int align_compare(const Model *m, const float *g1, const float *g2, AlignResult *out, Err *err);
// members: g₁ against each of k gradients; every cosine, norm and the ratio is the mean over
// the k comparisons (not the cosine with their mean).
int align_compare_members(const Model *m, const float *g1, const float *const *gs, int k, AlignResult *out, Err *err);
// forward: g against its per-group projection onto guess (device buffers). guess = g gives 1.
int align_forward_compare(const Model *m, const float *g, const float *guess, AlignResult *out, Err *err);

// The whole `align` command for every mode but members: g₁ over cfg->batches batches drawn
// from ds's train split with cfg->seed, g₂ by cfg->against (delayed: the device buffer
// `delayed`, like m->grads; NULL is an error for that mode). m->grads and m->subnet are
// restored on return (the activations are not: the next forward rebuilds them).
int align_run(Model *m, const Dataset *ds, const AlignConfig *cfg, const float *delayed, AlignResult *out, Err *err);

// Random subnetwork masks as align_run draws them (host arrays sized for m; free with
// subnet_mask_free). blockdrop: each block kept with probability 1−p; width: exact counts.
int subnet_mask_blockdrop(const Model *m, float p, uint64_t *rng, SubnetMask *mask, Err *err);
int subnet_mask_width(const Model *m, float p, uint64_t *rng, SubnetMask *mask, Err *err);
void subnet_mask_free(SubnetMask *mask);
