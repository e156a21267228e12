// cuda_emu.h — just enough of CUDA to run a kernel's own source on the CPU: a block's threads
// are real threads (std::thread), __syncthreads and __syncwarp real barriers, __shfl_xor_sync
// an exchange through a warp's slots, __nv_bfloat16 rounded to nearest even as the GPU does,
// and nvcuda::wmma's 16×16×16 bf16 fragments with the documented memory layouts.
//
// It exists so that a machine without a GPU checks a kernel's indexing, masking, barriers and
// WMMA layouts against the CPU backend (tests/test_cuda_emu.cpp). It checks what the hardware
// would refuse or break on: a WMMA pointer not 32-byte aligned or a leading dimension not a
// multiple of 16 bytes, more dynamic shared memory than was granted, a barrier some threads of
// the block never reach (deadlock) or reach after others have exited, a shuffle with a partial
// mask. It does not model timing, so a missing barrier shows only when the threads happen to
// interleave badly; the GPU tests (tests/test_cuda.c) remain the judge.
//
// Include it before the kernel source, with LRSH_CUDA_EMU defined. Blocks run one at a time.
#pragma once
#define LRSH_CUDA_EMU 1

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(n)
// A kernel's `__shared__ T a[N]` is one static array: blocks run one at a time, so it is the
// block's. (`extern __shared__` goes through DYNAMIC_SHARED, kernels/cuda/device_common.cuh.)
#define __shared__ static

struct alignas(16) float4 {
    float x, y, z, w;
};

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;   // the same for every thread of a launch

[[noreturn]] inline void emu_fail(const char *what) {
    fprintf(stderr, "cuda_emu: %s (block %u,%u,%u thread %u)\n", what, blockIdx.x, blockIdx.y, blockIdx.z,
            threadIdx.x);
    abort();
}

// A barrier for `expected` threads. A thread that exits while others of its group still run
// makes the next wait an error (on the GPU: undefined, usually a hang); a wait longer than
// 30 s is taken for a deadlock.
struct EmuBarrier {
    std::mutex mu;
    std::condition_variable cv;
    int expected = 0, arrived = 0, exited = 0;
    unsigned long generation = 0;

    void wait() {
        std::unique_lock<std::mutex> lock(mu);
        if (exited) emu_fail("a barrier waited on by threads while others of the group have exited");
        unsigned long gen = generation;
        if (++arrived == expected) {
            arrived = 0;
            generation++;
            cv.notify_all();
            return;
        }
        if (!cv.wait_for(lock, std::chrono::seconds(30), [&] { return generation != gen || exited; }))
            emu_fail("barrier deadlock: some threads never arrived (a barrier in divergent code?)");
        if (generation == gen) emu_fail("a barrier waited on by threads while others of the group have exited");
    }
    void exit() {
        std::lock_guard<std::mutex> lock(mu);
        exited++;
        cv.notify_all();
    }
    void reset() {   // for the next block, while no thread waits at it
        std::lock_guard<std::mutex> lock(mu);
        arrived = exited = 0;
    }
};

// One block's shared state: its barriers, the warps' shuffle slots, its dynamic shared memory.
struct EmuBlock {
    EmuBarrier block;
    std::vector<EmuBarrier> warps;
    std::vector<double> slots;         // 32 a warp: a float, an int or a double each
    unsigned char *smem = nullptr;     // dynamic shared memory, NaN-filled before each block
    size_t smem_bytes = 0;             // rounded up to 128

    void start() {   // a fresh block
        block.reset();
        for (EmuBarrier &w : warps) w.reset();
        if (smem) memset(smem, 0xff, smem_bytes);   // NaN: a read before any write shows
    }
};
inline EmuBlock *emu_block;

inline void __syncthreads() { emu_block->block.wait(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) {
    if (mask != 0xffffffffu) emu_fail("__syncwarp with a partial mask is not emulated");
    emu_block->warps[threadIdx.x / 32].wait();
}
template <typename T> inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask) {
    if (mask != 0xffffffffu) emu_fail("__shfl_xor_sync with a partial mask is not emulated");
    unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    double *slots = &emu_block->slots[32 * warp];
    slots[lane] = (double)v;   // exact for float, int32 and double
    __syncwarp();
    T got = (T)slots[lane ^ (unsigned)lane_mask];
    __syncwarp();   // every lane has read before any writes the next exchange
    return got;
}

inline unsigned char *emu_dynamic_smem() { return emu_block->smem; }

// kernel(): runs on every thread of every block of the grid, blocks in order. blockDim.x must
// be a multiple of 32; smem_bytes of dynamic shared memory, 128-byte aligned. The threads are
// made once a launch and walk the blocks together, waiting for each other between blocks.
inline void emu_launch(dim3 grid, dim3 block, size_t smem_bytes, const std::function<void()> &kernel) {
    if (block.x % 32 || block.y != 1 || block.z != 1) emu_fail("emu_launch: blocks must be x-only and whole warps");
    gridDim = grid;
    blockDim = block;
    EmuBlock b;
    b.block.expected = (int)block.x;
    b.warps = std::vector<EmuBarrier>(block.x / 32);
    for (EmuBarrier &w : b.warps) w.expected = 32;
    b.slots.assign(block.x, 0.0);
    b.smem_bytes = (smem_bytes + 127) / 128 * 128;
    b.smem = b.smem_bytes ? static_cast<unsigned char *>(aligned_alloc(128, b.smem_bytes)) : nullptr;
    b.start();
    emu_block = &b;
    EmuBarrier between;   // the emulator's own, between blocks: no thread exits it
    between.expected = (int)block.x;
    long blocks = (long)grid.x * grid.y * grid.z;
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < block.x; t++)
        threads.emplace_back([&, t] {
            threadIdx = dim3(t);
            for (long i = 0; i < blocks; i++) {
                blockIdx = dim3((unsigned)(i % grid.x), (unsigned)(i / grid.x % grid.y),
                                (unsigned)(i / ((long)grid.x * grid.y)));
                kernel();
                b.block.exit();
                b.warps[t / 32].exit();
                between.wait();
                if (t == 0) b.start();
                between.wait();
            }
        });
    for (std::thread &th : threads) th.join();
    emu_block = nullptr;
    free(b.smem);
}

// ---- bf16 --------------------------------------------------------------------------------

struct __nv_bfloat16 {
    uint16_t bits;
};
inline __nv_bfloat16 __float2bfloat16(float f) {   // round to nearest, ties to even
    uint32_t u;
    memcpy(&u, &f, 4);
    __nv_bfloat16 r;
    if ((u & 0x7fffffffu) > 0x7f800000u) r.bits = (uint16_t)((u >> 16) | 0x40);   // NaN stays NaN
    else r.bits = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    return r;
}
inline float __bfloat162float(__nv_bfloat16 b) {
    uint32_t u = (uint32_t)b.bits << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

// ---- nvcuda::wmma, 16×16×16 ----------------------------------------------------------------
// A fragment holds the whole tile in every lane (the GPU spreads it over the warp); loads and
// the product run in every lane on its own copy, a store writes each lane's 8 of the 256
// elements, as the lanes of a warp share a store on the GPU.

namespace nvcuda {
namespace wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K, class T, class Layout = void> struct fragment {
    static_assert(M == 16 && N == 16 && K == 16, "cuda_emu: only 16x16x16 fragments");
    float v[16][16];   // (row, column) of the tile: A(m, k), B(k, n), C(m, n)
};

inline void check_pointer(const void *p, unsigned ldm, size_t element_bytes) {
    if ((uintptr_t)p % 32) emu_fail("wmma: pointer not 256-bit (32-byte) aligned");
    if ((ldm * element_bytes) % 16) emu_fail("wmma: leading dimension not a multiple of 16 bytes");
    if (ldm < 16) emu_fail("wmma: leading dimension below the tile's 16");
}

template <class Use, class Layout>
inline void load_matrix_sync(fragment<Use, 16, 16, 16, __nv_bfloat16, Layout> &f, const __nv_bfloat16 *p,
                             unsigned ldm) {
    check_pointer(p, ldm, 2);
    const bool row = std::is_same<Layout, row_major>::value;
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 16; c++) f.v[r][c] = __bfloat162float(row ? p[r * ldm + c] : p[r + c * ldm]);
}

inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float> &f, const float *p, unsigned ldm,
                             layout_t layout) {
    check_pointer(p, ldm, 4);
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 16; c++) f.v[r][c] = layout == mem_row_major ? p[r * ldm + c] : p[r + c * ldm];
}

inline void store_matrix_sync(float *p, const fragment<accumulator, 16, 16, 16, float> &f, unsigned ldm,
                              layout_t layout) {
    check_pointer(p, ldm, 4);
    unsigned lane = threadIdx.x % 32;
    for (unsigned e = 8 * lane; e < 8 * lane + 8; e++) {
        int r = (int)e / 16, c = (int)e % 16;
        (layout == mem_row_major ? p[r * ldm + c] : p[r + c * ldm]) = f.v[r][c];
    }
}

inline void fill_fragment(fragment<accumulator, 16, 16, 16, float> &f, float x) {
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 16; c++) f.v[r][c] = x;
}

template <class LayoutA, class LayoutB>
inline void mma_sync(fragment<accumulator, 16, 16, 16, float> &d,
                     const fragment<matrix_a, 16, 16, 16, __nv_bfloat16, LayoutA> &a,
                     const fragment<matrix_b, 16, 16, 16, __nv_bfloat16, LayoutB> &b,
                     const fragment<accumulator, 16, 16, 16, float> &c) {
    float out[16][16];
    for (int m = 0; m < 16; m++)
        for (int n = 0; n < 16; n++) {
            float s = c.v[m][n];
            for (int k = 0; k < 16; k++) s += a.v[m][k] * b.v[k][n];
            out[m][n] = s;
        }
    memcpy(d.v, out, sizeof out);
}
}  // namespace wmma
}  // namespace nvcuda
