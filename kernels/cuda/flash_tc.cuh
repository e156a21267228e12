// flash_tc.cuh — flash attention on the tensor cores: bf16 products with fp32 accumulation,
// the softmax in fp32, the T×T matrix never stored. The kernels only; attention.cu launches
// them (flash mode at bf16 precision). tests/test_cuda_emu.cpp runs this same source on the CPU
// under tests/emu/cuda_emu.h, so that a machine without a GPU checks its indexing, masking,
// barriers and WMMA layouts against the CPU attention.
//
// Layouts as kernels/kernels.h: q, out, dq (B,Tq,H,hd); k, v, dk, dv (B,Tk,KVH,hd); lse and D
// (B,H,Tq). Query t sits at absolute position Tk−Tq+t and sees keys 0..Tk−Tq+t.
//
// A block is 4 warps and owns a tile of 64 rows — query rows (forward, dq) or keys (dk, dv) —
// 16 a warp; it walks the other side in steps of 64. Every product is a warp's WMMA 16×16×16
// bf16 → fp32 on tiles in shared memory. A warp touches only its own 16 rows of the score and
// output tiles, so within a step it needs only __syncwarp; the block waits (__syncthreads)
// only around loading the step's shared tile. The algorithm is FlashAttention-2's:
//   forward  m, l, O over key tiles: m' = max(m, rowmax S), O ← e^{m−m'}·O + e^{S−m'}·V,
//            l ← e^{m−m'}·l + Σ e^{S−m'}; out = O/l, lse = m + log l.
//   backward D = rowsum(dO ⊙ O) (tc_rowdot); P = e^{S−lse}, dP = dO·Vᵀ, dS = P ⊙ (dP − D);
//            dq += scale·dS·K by query tile (tc_dq), dv += Pᵀ·dO and dk += scale·dSᵀ·Q by key
//            tile (tc_dkdv), each written by one block: no atomics, the same sums every run.
#pragma once
#ifndef LRSH_CUDA_EMU
#include <cuda_bf16.h>
#include <mma.h>
#endif

#define TC_THREADS 128                 // 4 warps
#define TC_TILE 64                     // rows a block, and rows a step
#define TC_MAX_HD 128
#define TC_SCORE_LD (TC_TILE + 4)      // fp32 score rows: 272 bytes (4 banks apart)
#define TC_PROB_LD (TC_TILE + 8)       // bf16 probability rows: 144 bytes

namespace flash_tc {
using namespace nvcuda;
typedef __nv_bfloat16 bf16;
typedef wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> FragA;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> FragB;    // B's rows in memory
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> FragBt;   // Bᵀ's rows in memory
typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> FragC;

// Leading dimensions: bf16 rows of hd (+8: 16 bytes, so rows fall on different banks), fp32
// rows of hd (+4). Both keep every 16-row, 16-column sub-tile 32-byte aligned, as WMMA needs.
__host__ __device__ inline int hd_ld(int hd) { return hd + 8; }
__host__ __device__ inline int out_ld(int hd) { return hd + 4; }
__host__ __device__ inline size_t round128(size_t bytes) { return (bytes + 127) / 128 * 128; }
__host__ __device__ inline size_t bf16_tile(int hd) { return round128((size_t)TC_TILE * hd_ld(hd) * sizeof(bf16)); }
__host__ __device__ inline size_t score_tile() { return round128((size_t)TC_TILE * TC_SCORE_LD * sizeof(float)); }
__host__ __device__ inline size_t prob_tile() { return round128((size_t)TC_TILE * TC_PROB_LD * sizeof(bf16)); }
__host__ __device__ inline size_t out_tile(int hd) { return round128((size_t)TC_TILE * out_ld(hd) * sizeof(float)); }
__host__ __device__ inline size_t row_floats() { return round128(TC_TILE * sizeof(float)); }

// Shared memory of each kernel, carved in this order. The backward kernels stage their fp32
// results in the two score tiles once the walk is done (out_tile(hd) ≤ 2·score_tile() for
// hd ≤ TC_MAX_HD).
__host__ __device__ inline size_t forward_smem(int hd) {   // Q K V | S | P | O | m l corr
    return 3 * bf16_tile(hd) + score_tile() + prob_tile() + out_tile(hd) + 3 * row_floats();
}
__host__ __device__ inline size_t dq_smem(int hd) {        // Q dO K V | S dP | dS | lse D
    return 4 * bf16_tile(hd) + 2 * score_tile() + prob_tile() + 2 * row_floats();
}
__host__ __device__ inline size_t dkdv_smem(int hd) {      // K V Q dO | S dP | P dS | lse D
    return 4 * bf16_tile(hd) + 2 * score_tile() + 2 * prob_tile() + 2 * row_floats();
}

#ifdef LRSH_CUDA_EMU
inline unsigned char *dynamic_smem() { return emu_dynamic_smem(); }
#else
extern __shared__ __align__(128) unsigned char flash_tc_smem[];
__device__ inline unsigned char *dynamic_smem() { return flash_tc_smem; }
#endif

// Hands out consecutive 128-byte-aligned pieces of shared memory.
struct Carver {
    unsigned char *at;
    __device__ bf16 *bf16s(size_t bytes) { bf16 *p = (bf16 *)at; at += bytes; return p; }
    __device__ float *floats(size_t bytes) { float *p = (float *)at; at += bytes; return p; }
};

// tile(64, hd) ← rows first.. of src (row stride `stride` floats, row r at src + r·stride) in
// bf16; rows at or past `rows` are zeros. By the whole block.
template <int HD>
__device__ inline void load_rows(bf16 *tile, const float *src, long stride, int first, int rows) {
    for (int e = threadIdx.x; e < TC_TILE * HD; e += TC_THREADS) {
        int r = e / HD, d = e % HD, row = first + r;
        float x = row < rows ? src[row * stride + d] : 0.0f;
        tile[r * hd_ld(HD) + d] = __float2bfloat16(x);
    }
}

// This warp's 16×64 strip of a score tile: s(16, 64) = a(16, HD)·xᵀ, x the step's 64 rows (64,
// HD); a and x bf16 rows of hd_ld(HD).
template <int HD>
__device__ inline void strip_scores(float *s, const bf16 *a, const bf16 *x) {
    for (int n = 0; n < TC_TILE / 16; n++) {
        FragC acc;
        wmma::fill_fragment(acc, 0.0f);
        for (int kk = 0; kk < HD; kk += 16) {
            FragA fa;
            FragBt fb;
            wmma::load_matrix_sync(fa, a + kk, hd_ld(HD));
            wmma::load_matrix_sync(fb, x + 16 * n * hd_ld(HD) + kk, hd_ld(HD));   // (d, row) = x[row][d]
            wmma::mma_sync(acc, fa, fb, acc);
        }
        wmma::store_matrix_sync(s + 16 * n, acc, TC_SCORE_LD, wmma::mem_row_major);
    }
}

// acc[n] += p(16, 64)·x(64, HD) columns 16n.., p bf16 rows of TC_PROB_LD, x bf16 rows of hd_ld.
template <int HD>
__device__ inline void strip_times_rows(FragC *acc, const bf16 *p, const bf16 *x) {
    for (int n = 0; n < HD / 16; n++)
        for (int kk = 0; kk < TC_TILE; kk += 16) {
            FragA fa;
            FragB fb;
            wmma::load_matrix_sync(fa, p + kk, TC_PROB_LD);
            wmma::load_matrix_sync(fb, x + kk * hd_ld(HD) + 16 * n, hd_ld(HD));
            wmma::mma_sync(acc[n], fa, fb, acc[n]);
        }
}

// The last key query t sees (t clamped to Tq−1: rows past the end compute harmlessly, unread).
__device__ inline int last_key(int t, int Tq, int Tk) { return (t < Tq ? t : Tq - 1) + Tk - Tq; }

// ---- forward: a block per (64 query rows, head h, batch b) ----------------------------------------

// One warp's online-softmax step over its 16 rows of the 64-key tile at j0: masks and scales s
// in place, writes P = e^{s−m'} in bf16 and the rows' new m, l and correction e^{m−m'}. Two
// lanes a row, 32 columns each.
__device__ inline void softmax_step(float *s, bf16 *p, float *m, float *l, float *corr, int row0, int t0, int j0,
                                    int Tq, int Tk, float scale) {
    int lane = threadIdx.x & 31, r = row0 + (lane >> 1), c0 = (lane & 1) * 32;
    int last = last_key(t0 + r, Tq, Tk);
    float *sr = s + r * TC_SCORE_LD;
    float mx = -INFINITY;
    for (int c = c0; c < c0 + 32; c++) {
        float x = j0 + c <= last ? sr[c] * scale : -INFINITY;
        sr[c] = x;
        mx = fmaxf(mx, x);
    }
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    float m_old = m[r], m_new = fmaxf(m_old, mx);   // finite: key 0 is in the first tile of every row
    float sum = 0.0f;
    for (int c = c0; c < c0 + 32; c++) {
        float e = expf(sr[c] - m_new);               // 0 where masked
        p[r * TC_PROB_LD + c] = __float2bfloat16(e);
        sum += e;
    }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    __syncwarp();                                    // both lanes of the row have read m[r]
    if ((lane & 1) == 0) {
        float c = expf(m_old - m_new);               // 0 at the first tile (m_old = −∞)
        corr[r] = c;
        l[r] = l[r] * c + sum;
        m[r] = m_new;
    }
    __syncwarp();
}

template <int HD>
__global__ void __launch_bounds__(TC_THREADS)
    tc_forward(float *out, float *lse, const float *q, const float *k, const float *v, int Tq, int Tk, int H,
               int KVH, float scale) {
    int t0 = blockIdx.x * TC_TILE, h = blockIdx.y, g = h / (H / KVH);
    long b = blockIdx.z;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, row0 = 16 * warp;
    long qs = (long)H * HD, ks = (long)KVH * HD;                           // row strides
    const float *qb = q + (b * Tq * H + h) * HD, *kb = k + (b * Tk * KVH + g) * HD, *vb = v + (b * Tk * KVH + g) * HD;
    Carver cv = {dynamic_smem()};
    bf16 *Q = cv.bf16s(bf16_tile(HD)), *K = cv.bf16s(bf16_tile(HD)), *V = cv.bf16s(bf16_tile(HD));
    float *S = cv.floats(score_tile());                                   // (64, 64) scores, then masked
    bf16 *P = cv.bf16s(prob_tile());                                      // (64, 64)
    float *O = cv.floats(out_tile(HD));                                   // (64, HD) unnormalized output
    float *m = cv.floats(row_floats()), *l = cv.floats(row_floats()), *corr = cv.floats(row_floats());

    load_rows<HD>(Q, qb, qs, t0, Tq);
    for (int e = threadIdx.x; e < TC_TILE * HD; e += TC_THREADS) O[(e / HD) * out_ld(HD) + e % HD] = 0.0f;
    for (int r = threadIdx.x; r < TC_TILE; r += TC_THREADS) { m[r] = -INFINITY; l[r] = 0.0f; }
    int keys = last_key(t0 + TC_TILE - 1, Tq, Tk) + 1;                   // this block's visible keys
    for (int j0 = 0; j0 < keys; j0 += TC_TILE) {
        __syncthreads();                                                  // the last step's K, V read
        load_rows<HD>(K, kb, ks, j0, Tk);
        load_rows<HD>(V, vb, ks, j0, Tk);
        __syncthreads();
        strip_scores<HD>(S + row0 * TC_SCORE_LD, Q + row0 * hd_ld(HD), K);
        __syncwarp();
        softmax_step(S, P, m, l, corr, row0, t0, j0, Tq, Tk, scale);
        for (int e = lane; e < 16 * HD; e += 32) {                        // O ← e^{m−m'}·O
            int r = row0 + e / HD;
            O[r * out_ld(HD) + e % HD] *= corr[r];
        }
        __syncwarp();
        FragC acc[HD / 16];
        for (int n = 0; n < HD / 16; n++)
            wmma::load_matrix_sync(acc[n], O + row0 * out_ld(HD) + 16 * n, out_ld(HD), wmma::mem_row_major);
        strip_times_rows<HD>(acc, P + row0 * TC_PROB_LD, V);              // O += P·V
        for (int n = 0; n < HD / 16; n++)
            wmma::store_matrix_sync(O + row0 * out_ld(HD) + 16 * n, acc[n], out_ld(HD), wmma::mem_row_major);
    }
    __syncwarp();
    for (int e = lane; e < 16 * HD; e += 32) {
        int r = row0 + e / HD, t = t0 + r;
        if (t < Tq) out[(b * Tq + t) * qs + (long)h * HD + e % HD] = O[r * out_ld(HD) + e % HD] / l[r];
    }
    if (lane < 16 && t0 + row0 + lane < Tq)
        lse[(b * H + h) * Tq + t0 + row0 + lane] = m[row0 + lane] + logf(l[row0 + lane]);
}

// ---- backward ----------------------------------------------------------------------------

// D(B,H,Tq) = rowsum(dout ⊙ out): a warp per (b, t, h) row of hd values.
__global__ void tc_rowdot(float *D, const float *dout, const float *out, int B, int Tq, int H, int hd) {
    long row = (long)blockIdx.x * (blockDim.x / 32) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    float s = 0.0f;
    if (row < (long)B * Tq * H)
        for (int i = lane; i < hd; i += 32) s += dout[row * hd + i] * out[row * hd + i];
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (row < (long)B * Tq * H && lane == 0) {
        long b = row / ((long)Tq * H), t = row / H % Tq, h = row % H;
        D[(b * H + h) * Tq + t] = s;
    }
}

// stage(64, HD) ← this warp's accumulators (its 16 rows), then dst rows first.. += alpha·stage
// (rows at or past `rows` skipped). The caller has made sure no warp still reads the stage.
template <int HD>
__device__ inline void add_strip(float *dst, long stride, int first, int rows, float alpha, float *stage,
                                 const FragC *acc) {
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, row0 = 16 * warp;
    for (int n = 0; n < HD / 16; n++)
        wmma::store_matrix_sync(stage + row0 * out_ld(HD) + 16 * n, acc[n], out_ld(HD), wmma::mem_row_major);
    __syncwarp();
    for (int e = lane; e < 16 * HD; e += 32) {
        int r = row0 + e / HD, row = first + r;
        if (row < rows) dst[row * stride + e % HD] += alpha * stage[r * out_ld(HD) + e % HD];
    }
    __syncwarp();
}

// dq += scale·dS·K: a block per (64 query rows, head h, batch b), over the key tiles it sees.
template <int HD>
__global__ void __launch_bounds__(TC_THREADS)
    tc_dq(float *dq, const float *D, const float *lse, const float *dout, const float *q, const float *k,
          const float *v, int Tq, int Tk, int H, int KVH, float scale) {
    int t0 = blockIdx.x * TC_TILE, h = blockIdx.y, g = h / (H / KVH);
    long b = blockIdx.z;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, row0 = 16 * warp;
    long qs = (long)H * HD, ks = (long)KVH * HD, at = (b * H + h) * Tq;
    const float *kb = k + (b * Tk * KVH + g) * HD, *vb = v + (b * Tk * KVH + g) * HD;
    Carver cv = {dynamic_smem()};
    bf16 *Q = cv.bf16s(bf16_tile(HD)), *dO = cv.bf16s(bf16_tile(HD));
    bf16 *K = cv.bf16s(bf16_tile(HD)), *V = cv.bf16s(bf16_tile(HD));
    float *S = cv.floats(score_tile()), *dP = cv.floats(score_tile());
    bf16 *dS = cv.bf16s(prob_tile());
    float *lse_r = cv.floats(row_floats()), *D_r = cv.floats(row_floats());

    load_rows<HD>(Q, q + (b * Tq * H + h) * HD, qs, t0, Tq);
    load_rows<HD>(dO, dout + (b * Tq * H + h) * HD, qs, t0, Tq);
    for (int r = threadIdx.x; r < TC_TILE; r += TC_THREADS) {
        lse_r[r] = t0 + r < Tq ? lse[at + t0 + r] : 0.0f;
        D_r[r] = t0 + r < Tq ? D[at + t0 + r] : 0.0f;
    }
    FragC acc[HD / 16];
    for (int n = 0; n < HD / 16; n++) wmma::fill_fragment(acc[n], 0.0f);
    int keys = last_key(t0 + TC_TILE - 1, Tq, Tk) + 1;
    for (int j0 = 0; j0 < keys; j0 += TC_TILE) {
        __syncthreads();
        load_rows<HD>(K, kb, ks, j0, Tk);
        load_rows<HD>(V, vb, ks, j0, Tk);
        __syncthreads();
        strip_scores<HD>(S + row0 * TC_SCORE_LD, Q + row0 * hd_ld(HD), K);    // S = Q·Kᵀ
        strip_scores<HD>(dP + row0 * TC_SCORE_LD, dO + row0 * hd_ld(HD), V);  // dP = dO·Vᵀ
        __syncwarp();
        for (int e = lane; e < 16 * TC_TILE; e += 32) {
            int r = row0 + e / TC_TILE, c = e % TC_TILE;
            float p = j0 + c <= last_key(t0 + r, Tq, Tk) ? expf(S[r * TC_SCORE_LD + c] * scale - lse_r[r]) : 0.0f;
            dS[r * TC_PROB_LD + c] = __float2bfloat16(p * (dP[r * TC_SCORE_LD + c] - D_r[r]));
        }
        __syncwarp();
        strip_times_rows<HD>(acc, dS + row0 * TC_PROB_LD, K);
    }
    __syncthreads();                                                       // S, dP free: the stage
    add_strip<HD>(dq + (b * Tq * H + h) * HD, qs, t0, Tq, scale, S, acc);
}

// dv += Pᵀ·dO, dk += scale·dSᵀ·Q: a block per (64 keys, kv head g, batch b), over every query
// head of the group and the query tiles that see its keys. Here the score tiles are
// transposed — row = key, column = query — so that Pᵀ and dSᵀ are this warp's own rows.
template <int HD>
__global__ void __launch_bounds__(TC_THREADS)
    tc_dkdv(float *dk, float *dv, const float *D, const float *lse, const float *dout, const float *q,
            const float *k, const float *v, int Tq, int Tk, int H, int KVH, float scale) {
    int j0 = blockIdx.x * TC_TILE, g = blockIdx.y, group = H / KVH;
    long b = blockIdx.z;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, row0 = 16 * warp;
    long qs = (long)H * HD, ks = (long)KVH * HD;
    Carver cv = {dynamic_smem()};
    bf16 *K = cv.bf16s(bf16_tile(HD)), *V = cv.bf16s(bf16_tile(HD));
    bf16 *Q = cv.bf16s(bf16_tile(HD)), *dO = cv.bf16s(bf16_tile(HD));
    float *S = cv.floats(score_tile()), *dP = cv.floats(score_tile());   // (key, query)
    bf16 *P = cv.bf16s(prob_tile()), *dS = cv.bf16s(prob_tile());
    float *lse_c = cv.floats(row_floats()), *D_c = cv.floats(row_floats());

    load_rows<HD>(K, k + (b * Tk * KVH + g) * HD, ks, j0, Tk);
    load_rows<HD>(V, v + (b * Tk * KVH + g) * HD, ks, j0, Tk);
    FragC acc_k[HD / 16], acc_v[HD / 16];
    for (int n = 0; n < HD / 16; n++) {
        wmma::fill_fragment(acc_k[n], 0.0f);
        wmma::fill_fragment(acc_v[n], 0.0f);
    }
    int first = j0 - (Tk - Tq) > 0 ? j0 - (Tk - Tq) : 0;                  // the first query that sees key j0
    for (int h = g * group; h < (g + 1) * group; h++)
        for (int t0 = first; t0 < Tq; t0 += TC_TILE) {
            long at = (b * H + h) * Tq;
            __syncthreads();                                               // the last step's tiles read
            load_rows<HD>(Q, q + (b * Tq * H + h) * HD, qs, t0, Tq);
            load_rows<HD>(dO, dout + (b * Tq * H + h) * HD, qs, t0, Tq);
            for (int c = threadIdx.x; c < TC_TILE; c += TC_THREADS) {
                lse_c[c] = t0 + c < Tq ? lse[at + t0 + c] : 0.0f;
                D_c[c] = t0 + c < Tq ? D[at + t0 + c] : 0.0f;
            }
            __syncthreads();
            strip_scores<HD>(S + row0 * TC_SCORE_LD, K + row0 * hd_ld(HD), Q);    // Sᵀ = K·Qᵀ
            strip_scores<HD>(dP + row0 * TC_SCORE_LD, V + row0 * hd_ld(HD), dO);  // dPᵀ = V·dOᵀ
            __syncwarp();
            for (int e = lane; e < 16 * TC_TILE; e += 32) {
                int r = row0 + e / TC_TILE, c = e % TC_TILE, t = t0 + c;
                int seen = t < Tq && j0 + r <= t + Tk - Tq;
                float p = seen ? expf(S[r * TC_SCORE_LD + c] * scale - lse_c[c]) : 0.0f;
                P[r * TC_PROB_LD + c] = __float2bfloat16(p);
                dS[r * TC_PROB_LD + c] = __float2bfloat16(p * (dP[r * TC_SCORE_LD + c] - D_c[c]));
            }
            __syncwarp();
            strip_times_rows<HD>(acc_v, P + row0 * TC_PROB_LD, dO);       // dv += Pᵀ·dO
            strip_times_rows<HD>(acc_k, dS + row0 * TC_PROB_LD, Q);       // dk += dSᵀ·Q
        }
    __syncthreads();                                                       // S, dP free: the stage
    add_strip<HD>(dv + (b * Tk * KVH + g) * HD, ks, j0, Tk, 1.0f, S, acc_v);
    add_strip<HD>(dk + (b * Tk * KVH + g) * HD, ks, j0, Tk, scale, S, acc_k);
}
}  // namespace flash_tc
