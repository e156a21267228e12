// adamw_scalars.h — the scalars of one AdamW update (see kernels/cpu/adamw.c), computed on the
// host once per call and the same way for the CPU kernel and the GPU's, so that the two
// backends start each update from the same bits.
#pragma once
#include <math.h>

typedef struct AdamwScalars {
    float step;           // lr / (1 − β1^t): lr·m̂/m
    float inv_sqrt_bc2;   // 1 / √(1 − β2^t): √v̂ = √v · this
    float decay;          // 1 − lr·wd, decoupled weight decay
} AdamwScalars;

// In double: 1 − β2^t is tiny in the first steps.
static inline AdamwScalars adamw_scalars(float lr, float beta1, float beta2, float wd, int t) {
    float bc1 = (float)(1.0 - pow((double)beta1, (double)t));
    AdamwScalars a = {lr / bc1, (float)(1.0 / sqrt(1.0 - pow((double)beta2, (double)t))), 1.0f - lr * wd};
    return a;
}
