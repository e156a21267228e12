// cpu_expf.h — a float exp that vectorizes, for the CPU backend's softmax, SwiGLU and
// attention loops and the sampler's softmax over the vocabulary (engine/generate.c).
#pragma once
#include <math.h>
#include <stdint.h>
#include <string.h>

// exp(x) for float, in a form GCC vectorizes inside `#pragma omp simd` loops (libm's expf is
// an opaque call, ~10× slower in the softmax and SwiGLU loops). Cephes' expf: x = n·ln2 + r
// with |r| ≤ ln2/2, e^r by a degree-7 polynomial, 2^n put straight into the exponent bits.
// Within about 1 ulp of exp; 0 below −87.33 (where expf goes subnormal) and +inf above 88.37
// (expf overflows at 88.72): only softmaxes (x ≤ 0) and sigmoid call it. It vectorizes only
// with -fno-trapping-math (Makefile): without it GCC 12 keeps the selects below as branches
// ("control flow in loop") and every loop calling this runs scalar, 4–6× slower.
#pragma omp declare simd notinbranch
static inline float cpu_expf(float x) {
    // n in [−126, 127]: 2^n normal; a NaN x takes −87.33 here (converting a NaN n to int is
    // undefined), and comes back as the result below
    float xc = x > -87.33f ? (x < 88.37f ? x : 88.37f) : -87.33f;
    // n = round(x / ln2): adding and removing 1.5·2^23 rounds to an integer in the FPU
    float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = xc - n * 0.693359375f + n * 2.12194440e-4f;   // x − n·ln2, ln2 split in two for precision
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float er = p * r * r + r + 1.0f;                        // e^r
    // 2^n (the shift unsigned: a negative n + 127 never occurs, but a signed shift would need proof)
    int32_t bits = (int32_t)((uint32_t)((int32_t)n + 127) << 23);
    float two_n;
    memcpy(&two_n, &bits, sizeof two_n);
    float y = er * two_n;
    y = x < -87.33f ? 0.0f : y;
    y = x != x ? x : y;                                     // exp(NaN) is NaN
    return x > 88.37f ? INFINITY : y;
}
