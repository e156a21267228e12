// device_common.cuh — device code the CUDA files share and that needs nothing of the host side:
// programmatic-dependent-launch waits, dot products, deterministic warp and block reductions,
// and the RMSNorm, SwiGLU and RoPE arithmetic that several kernels must compute to the same
// bits. Free of host state, so tests/emu/cuda_emu.h can run it on the CPU.
#pragma once
#include <math.h>

#define THREADS 256   // a block of the elementwise and row kernels

// Shared memory sized at launch: `extern __shared__` on the GPU, the emulated block's buffer
// under tests/emu/cuda_emu.h.
#ifdef LRSH_CUDA_EMU
#define DYNAMIC_SHARED(type, name) type *name = (type *)emu_dynamic_smem()
#else
#define DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#endif

// Programmatic dependent launch (cuda_common.cuh's LAUNCH_DEPENDENT says the rule); no-ops in
// the emulator, which runs one kernel at a time.
#ifdef LRSH_CUDA_EMU
static inline void pdl_wait(void) {}
static inline void pdl_release(void) {}
#else
static __device__ inline void pdl_wait(void) { asm volatile("griddepcontrol.wait;" ::: "memory"); }
static __device__ inline void pdl_release(void) { asm volatile("griddepcontrol.launch_dependents;" ::: "memory"); }
#endif

// ---- dot products --------------------------------------------------------------------------
// Σ a[i]·b[i] over i = first, first + step, … < n, in that order; with vec4 the same over
// float4s (n a multiple of 4, both 16-byte aligned; i counts float4s). Eight loads of 16 bytes
// in flight a thread: the loads do not depend on the sum, only the additions do.
static __device__ __forceinline__ float strided_dot(const float *a, const float *b, int n, int first, int step,
                                                   int vec4) {
    float acc = 0.0f;
    if (vec4) {
        const float4 *a4 = (const float4 *)a, *b4 = (const float4 *)b;
#pragma unroll 8
        for (int i = first; i < n / 4; i += step) {
            float4 x = a4[i], y = b4[i];
            acc += x.x * y.x;
            acc += x.y * y.y;
            acc += x.z * y.z;
            acc += x.w * y.w;
        }
    } else {
        for (int i = first; i < n; i += step) acc += a[i] * b[i];
    }
    return acc;
}

// ---- block reductions ---------------------------------------------------------------------
// Butterfly shuffles leave the same bits in every lane (a+b == b+a in IEEE arithmetic), and
// the order of additions depends only on blockDim: deterministic.

template <typename T> __device__ inline T warp_sum(T v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

static __device__ inline float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Every thread of the block gets the total; blockDim.x a multiple of 32. shared: 32 slots,
// reusable right after the call returns (the first barrier protects the previous use).
template <typename T> __device__ inline T block_sum(T v, T *shared) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    T t = lane < warps ? shared[lane] : (T)0;
    return warp_sum(t);
}

static __device__ inline float block_max(float v, float *shared) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    float t = lane < warps ? shared[lane] : -INFINITY;
    return warp_max(t);
}

// ---- RMSNorm and SwiGLU, as their kernels and gemv.cu's fused products compute them ---------
// One definition for both, so that a product with its step folded in reads the same x̂, to the
// bit, as one after the step's own kernel.

// 1/rms(x) of one row of dim, computed by the whole block: every thread gets it. The order of
// the sum depends only on blockDim.x.
// Σx² in double, as on the CPU: in float it overflows from |x| ~ 1e19 and s would be 0.
static __device__ inline float rms_scale(const float *x, int dim, float eps, double *red) {
    double ss = 0.0;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) ss += (double)x[i] * x[i];
    ss = block_sum(ss, red);
    return (float)(1.0 / sqrt(ss / dim + eps));
}

static __device__ inline float swish_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
static __device__ inline float swiglu(float gate, float up) { return gate * swish_sigmoid(gate) * up; }

// ---- RoPE, as k_rope and the decode kernels compute it -----------------------------------------

// cos and sin of position·theta^(−2i/hd). The angle is formed and reduced to [−π, π] in
// double, as on the CPU (pos·freq reaches thousands of radians, where float loses the phase),
// then sincosf of the reduced angle.
static __device__ inline void rope_cos_sin(int position, int i, int hd, float theta, float *c, float *s) {
    double freq = pow((double)theta, -2.0 * i / hd);
    double angle = (double)position * freq;
    angle -= 2.0 * M_PI * rint(angle / (2.0 * M_PI));
    sincosf((float)angle, s, c);
}

// The pair (x[0], x[1]) rotated by the angle whose cos and sin are c and s, into y.
static __device__ inline void rope_rotate(float *y, const float *x, float c, float s) {
    float x0 = x[0], x1 = x[1];
    y[0] = x0 * c - x1 * s;
    y[1] = x0 * s + x1 * c;
}
