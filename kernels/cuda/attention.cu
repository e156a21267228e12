// attention.cu — causal attention with grouped KV heads on the GPU, in three modes:
//
//   gemm  (the default) strided-batched cuBLAS products over the heads for S = scale·Q·Kᵀ and
//         O = P·V, a row kernel for the causal softmax; backward likewise (dP, dV, dS, dQ, dK).
//         The orchestration is kernels/attention_gemm.c (checked on the CPU by
//         tests/test_attention_gemm.c); the T×T probabilities are kept for backward.
//   rows  the first correct kernels: one block per query row, scores in global memory. Kept
//         as a second reference; slow (a thread walks all keys in order, latency-bound).
//   flash flash-style kernels that never store the T×T matrix: at bf16 precision on the tensor
//         cores (flash_tc.cuh, for head sizes that are multiples of 16 up to 128), otherwise the
//         fp32 kernels below, a warp per query row.
//
// Layouts as kernels/kernels.h: q(B,Tq,H,hd), k,v(B,Tk,KVH,hd), att(B,H,Tq,Tk). Query t sits at
// absolute position Tk−Tq+t and sees L = Tk−Tq+t+1 keys; probabilities past L are stored as 0.
// Query head h uses kv head h/group, group = H/KVH.
#include "cuda_common.cuh"
#include "flash_tc.cuh"

extern "C" {
#include "../attention_gemm.h"
}

// ---- gemm mode ------------------------------------------------------------------------------

// By the whole block, over a score row p(Tk) whose max over the L visible keys is mx (in every
// thread): p[j] ← exp(p[j] − mx)/Σ for j < L, 0 beyond. red: the block reductions' 32 slots.
static __device__ void softmax_from_max(float *p, int L, int Tk, float mx, float *red) {
    float sum = 0.0f;
    for (int j = threadIdx.x; j < L; j += blockDim.x) {
        float e = expf(p[j] - mx);
        p[j] = e;
        sum += e;
    }
    sum = block_sum(sum, red);
    float inv = 1.0f / sum;
    for (int j = threadIdx.x; j < Tk; j += blockDim.x) p[j] = j < L ? p[j] * inv : 0.0f;
}

// Softmax in place over each score row of att (a block per row r = (b·H + h)·Tq + t); keys
// past the row's last visible one become 0.
__global__ void k_causal_softmax(float *att, int Tq, int Tk) {
    __shared__ float red[32];
    long r = blockIdx.x;
    int L = Tk - Tq + (int)(r % Tq) + 1;
    float *p = att + r * Tk;                                       // (Tk)
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < L; j += blockDim.x) mx = fmaxf(mx, p[j]);
    softmax_from_max(p, L, Tk, block_max(mx, red), red);
}

// dS = P ⊙ (dP − Σ_j P·dP) in place over ds (dP in, dS out; 0 past the visible keys), a block
// per row. Each thread rewrites only the entries it read.
__global__ void k_causal_softmax_backward(float *ds, const float *att, int Tq, int Tk) {
    __shared__ float red[32];
    long r = blockIdx.x;
    int L = Tk - Tq + (int)(r % Tq) + 1;
    const float *p = att + r * Tk;                                 // (Tk)
    float *d = ds + r * Tk;                                        // (Tk)
    float dot = 0.0f;
    for (int j = threadIdx.x; j < L; j += blockDim.x) dot += p[j] * d[j];
    dot = block_sum(dot, red);
    for (int j = threadIdx.x; j < Tk; j += blockDim.x) d[j] = j < L ? p[j] * (d[j] - dot) : 0.0f;
}

static void launch_causal_softmax(float *att, long rows, int Tq, int Tk) {
    if (rows <= 0) return;
    k_causal_softmax<<<(unsigned)rows, ATT_THREADS, 0, cuda.stream>>>(att, Tq, Tk);
    LAUNCH_CHECK("k_causal_softmax");
}

static void launch_causal_softmax_backward(float *ds, const float *att, long rows, int Tq, int Tk) {
    if (rows <= 0) return;
    k_causal_softmax_backward<<<(unsigned)rows, ATT_THREADS, 0, cuda.stream>>>(ds, att, Tq, Tk);
    LAUNCH_CHECK("k_causal_softmax_backward");
}

// The products and row passes of kernels/attention_gemm.c, on cuBLAS and the kernels above.
static const AttentionGemmOps gemm_ops = {gemm_strided_batched, launch_causal_softmax, launch_causal_softmax_backward};

// ---- rows mode ------------------------------------------------------------------------------
// The simple correct version: one block per (query row t, head h, batch b), the row's scores
// kept in att itself (global memory, so no limit on Tk).

__global__ void k_attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                                    int Tq, int Tk, int H, int KVH, int hd, float scale) {
    extern __shared__ float qs[];   // (hd) this row's query
    __shared__ float red[32];
    int t = blockIdx.x, h = blockIdx.y;
    long b = blockIdx.z;
    int g = h / (H / KVH);
    int L = Tk - Tq + t + 1;
    long ks = (long)KVH * hd;                                      // row stride of k and v
    const float *qr = q + ((b * Tq + t) * H + h) * hd;
    const float *kb = k + (b * Tk * KVH + g) * hd, *vb = v + (b * Tk * KVH + g) * hd;
    float *p = att + ((b * H + h) * Tq + t) * (long)Tk;           // (Tk)
    float *o = out + ((b * Tq + t) * H + h) * hd;                  // (hd)
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    for (int i = threadIdx.x; i < hd; i += blockDim.x) qs[i] = qr[i];
    __syncthreads();
    // scores: a warp per key, lanes across hd
    float mx = -INFINITY;
    for (int j = warp; j < L; j += warps) {
        const float *kr = kb + j * ks;
        float d = 0.0f;
        for (int i = lane; i < hd; i += 32) d += qs[i] * kr[i];
        d = scale * warp_sum(d);
        if (lane == 0) p[j] = d;
        mx = fmaxf(mx, d);
    }
    mx = block_max(mx, red);   // its barriers also publish the scores to the whole block
    softmax_from_max(p, L, Tk, mx, red);
    __syncthreads();
    // out = P·V: a thread per output column, keys in order
    for (int i = threadIdx.x; i < hd; i += blockDim.x) {
        float acc = 0.0f;
        for (int j = 0; j < L; j++) acc += p[j] * vb[j * ks + i];
        o[i] = acc;
    }
}

// Backward, part 1, one block per query row: dP = do·vᵀ, dS = P ⊙ (dP − Σ P ⊙ dP) stored in
// scratch (0 past L), dq += scale·dS·k.
__global__ void k_attention_backward_rows(float *dq, float *ds, const float *dout, const float *att,
                                          const float *k, const float *v, int Tq, int Tk, int H, int KVH, int hd,
                                          float scale) {
    extern __shared__ float dos[];  // (hd) this row's dout
    __shared__ float red[32];
    int t = blockIdx.x, h = blockIdx.y;
    long b = blockIdx.z;
    int g = h / (H / KVH);
    int L = Tk - Tq + t + 1;
    long ks = (long)KVH * hd;
    long row = ((b * Tq + t) * H + h) * hd;
    const float *kb = k + (b * Tk * KVH + g) * hd, *vb = v + (b * Tk * KVH + g) * hd;
    const float *p = att + ((b * H + h) * Tq + t) * (long)Tk;
    float *d = ds + ((b * H + h) * Tq + t) * (long)Tk;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    for (int i = threadIdx.x; i < hd; i += blockDim.x) dos[i] = dout[row + i];
    __syncthreads();
    for (int j = warp; j < L; j += warps) {
        const float *vr = vb + j * ks;
        float dp = 0.0f;
        for (int i = lane; i < hd; i += 32) dp += dos[i] * vr[i];
        dp = warp_sum(dp);
        if (lane == 0) d[j] = dp;
    }
    __syncthreads();
    float dot = 0.0f;
    for (int j = threadIdx.x; j < L; j += blockDim.x) dot += p[j] * d[j];
    dot = block_sum(dot, red);
    for (int j = threadIdx.x; j < Tk; j += blockDim.x) d[j] = j < L ? p[j] * (d[j] - dot) : 0.0f;
    __syncthreads();
    for (int i = threadIdx.x; i < hd; i += blockDim.x) {
        float acc = 0.0f;
        for (int j = 0; j < L; j++) acc += d[j] * kb[j * ks + i];
        dq[row + i] += scale * acc;
    }
}

// Backward, part 2, one block per (key j, kv head g, batch b), a thread per column: every
// query head of the group and every query that sees key j add into dk[j], dv[j] in a fixed
// order, so grouped heads need no atomics.
__global__ void k_attention_backward_keys(float *dk, float *dv, const float *ds, const float *dout,
                                          const float *att, const float *q, int Tq, int Tk, int H, int KVH,
                                          int hd, float scale) {
    int j = blockIdx.x, g = blockIdx.y;
    long b = blockIdx.z;
    int group = H / KVH;
    int first = j - (Tk - Tq) > 0 ? j - (Tk - Tq) : 0;           // the first query that sees key j
    long kv = ((b * Tk + j) * KVH + g) * hd;
    for (int i = threadIdx.x; i < hd; i += blockDim.x) {
        float acc_v = 0.0f, acc_k = 0.0f;
        for (int h = g * group; h < (g + 1) * group; h++) {
            const float *pcol = att + (b * H + h) * (long)Tq * Tk + j;   // P[t][j] at pcol[t·Tk]
            const float *dcol = ds + (b * H + h) * (long)Tq * Tk + j;
            for (int t = first; t < Tq; t++) {
                long qi = ((b * Tq + t) * H + h) * hd + i;
                acc_v += pcol[(long)t * Tk] * dout[qi];
                acc_k += dcol[(long)t * Tk] * q[qi];
            }
        }
        dv[kv + i] += acc_v;
        dk[kv + i] += scale * acc_k;
    }
}

// ---- flash-style attention: the T×T matrix is never stored --------------------------------
// A warp per query row, the row's query and output accumulator in registers (hd ≤ 256: up to
// 8 values a lane), the keys in order with an online softmax (running max m and sum l); the
// forward keeps only each row's log-sum-exp. Backward recomputes P = exp(s − lse): a warp per
// query row for dq (first D = Σ_j P·dP, then dq), a warp per (key, kv head) for dk and dv, in a
// fixed order (no atomics). Correctness first: not tuned (no shared-memory tiles, no tensor
// cores) — it passed tests/test_cuda.c against the CPU on an H200, where training ran at about
// a sixth of gemm mode's speed (docs/gpu-results.md). Selected by LRSH_CUDA_ATTENTION=flash
// or `set attention flash`.

#define FLASH_WARPS 4
#define FLASH_MAX_HD 256
#define FLASH_PER_LANE (FLASH_MAX_HD / 32)

// This lane's share of a row of hd values: x[lane + 32u] for u < FLASH_PER_LANE (0 past hd).
static __device__ void lane_load(float *dst, const float *row, int hd, float scale) {
    int lane = threadIdx.x & 31;
#pragma unroll
    for (int u = 0; u < FLASH_PER_LANE; u++) {
        int i = lane + 32 * u;
        dst[u] = i < hd ? scale * row[i] : 0.0f;
    }
}

// Σ_i a_i·row_i over the warp (every lane gets it).
static __device__ float lane_dot(const float *a, const float *row, int hd) {
    int lane = threadIdx.x & 31;
    float d = 0.0f;
#pragma unroll
    for (int u = 0; u < FLASH_PER_LANE; u++) {
        int i = lane + 32 * u;
        if (i < hd) d += a[u] * row[i];
    }
    return warp_sum(d);
}

__global__ void k_flash_forward(float *out, float *lse, const float *q, const float *k, const float *v, int Tq,
                                int Tk, int H, int KVH, int hd, float scale) {
    int t = blockIdx.x * FLASH_WARPS + (threadIdx.x >> 5), h = blockIdx.y, lane = threadIdx.x & 31;
    long b = blockIdx.z;
    if (t >= Tq) return;                                           // a whole warp leaves together
    int g = h / (H / KVH), L = Tk - Tq + t + 1;
    long ks = (long)KVH * hd, row = ((b * Tq + t) * H + h) * hd;
    const float *kb = k + (b * Tk * KVH + g) * hd, *vb = v + (b * Tk * KVH + g) * hd;
    float qv[FLASH_PER_LANE], acc[FLASH_PER_LANE];
    lane_load(qv, q + row, hd, scale);
#pragma unroll
    for (int u = 0; u < FLASH_PER_LANE; u++) acc[u] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    for (int j = 0; j < L; j++) {
        float s = lane_dot(qv, kb + j * ks, hd);                   // scale·q·k_j
        float m_new = fmaxf(m, s), c = expf(m - m_new), p = expf(s - m_new);   // c = 0 at the first key
        l = l * c + p;
        const float *vr = vb + j * ks;
#pragma unroll
        for (int u = 0; u < FLASH_PER_LANE; u++) {
            int i = lane + 32 * u;
            if (i < hd) acc[u] = acc[u] * c + p * vr[i];
        }
        m = m_new;
    }
#pragma unroll
    for (int u = 0; u < FLASH_PER_LANE; u++) {
        int i = lane + 32 * u;
        if (i < hd) out[row + i] = acc[u] / l;
    }
    if (lane == 0) lse[(b * H + h) * Tq + t] = m + logf(l);
}

// dq += scale·Σ_j dS_ij·k_j with dS = P ⊙ (dP − D), dP_ij = do_i·v_j, D_i = Σ_j P_ij·dP_ij
// (kept in dsum for the keys' kernel).
__global__ void k_flash_backward_dq(float *dq, float *dsum, const float *dout, const float *lse, const float *q,
                                    const float *k, const float *v, int Tq, int Tk, int H, int KVH, int hd,
                                    float scale) {
    int t = blockIdx.x * FLASH_WARPS + (threadIdx.x >> 5), h = blockIdx.y, lane = threadIdx.x & 31;
    long b = blockIdx.z;
    if (t >= Tq) return;
    int g = h / (H / KVH), L = Tk - Tq + t + 1;
    long ks = (long)KVH * hd, row = ((b * Tq + t) * H + h) * hd, at = (b * H + h) * Tq + t;
    const float *kb = k + (b * Tk * KVH + g) * hd, *vb = v + (b * Tk * KVH + g) * hd;
    float qv[FLASH_PER_LANE], dov[FLASH_PER_LANE], acc[FLASH_PER_LANE];
    lane_load(qv, q + row, hd, scale);
    lane_load(dov, dout + row, hd, 1.0f);
    float lse_t = lse[at], D = 0.0f;
    for (int j = 0; j < L; j++) {
        float p = expf(lane_dot(qv, kb + j * ks, hd) - lse_t);
        D += p * lane_dot(dov, vb + j * ks, hd);
    }
#pragma unroll
    for (int u = 0; u < FLASH_PER_LANE; u++) acc[u] = 0.0f;
    for (int j = 0; j < L; j++) {
        const float *kr = kb + j * ks;
        float p = expf(lane_dot(qv, kr, hd) - lse_t);
        float ds = p * (lane_dot(dov, vb + j * ks, hd) - D);
#pragma unroll
        for (int u = 0; u < FLASH_PER_LANE; u++) {
            int i = lane + 32 * u;
            if (i < hd) acc[u] += ds * kr[i];
        }
    }
#pragma unroll
    for (int u = 0; u < FLASH_PER_LANE; u++) {
        int i = lane + 32 * u;
        if (i < hd) dq[row + i] += scale * acc[u];
    }
    if (lane == 0) dsum[at] = D;
}

// A warp per (key j, kv head g, batch b): every query head of the group and every query that
// sees key j, in order: dv_j += Σ P·do, dk_j += scale·Σ dS·q.
__global__ void k_flash_backward_dkdv(float *dk, float *dv, const float *dsum, const float *dout, const float *lse,
                                      const float *q, const float *k, const float *v, int Tq, int Tk, int H,
                                      int KVH, int hd, float scale) {
    int j = blockIdx.x * FLASH_WARPS + (threadIdx.x >> 5), g = blockIdx.y, lane = threadIdx.x & 31;
    long b = blockIdx.z;
    if (j >= Tk) return;
    int group = H / KVH, first = j - (Tk - Tq) > 0 ? j - (Tk - Tq) : 0;   // the first query that sees key j
    long kv = ((b * Tk + j) * KVH + g) * hd;
    float kv_k[FLASH_PER_LANE], kv_v[FLASH_PER_LANE], acc_k[FLASH_PER_LANE], acc_v[FLASH_PER_LANE];
    lane_load(kv_k, k + kv, hd, scale);
    lane_load(kv_v, v + kv, hd, 1.0f);
#pragma unroll
    for (int u = 0; u < FLASH_PER_LANE; u++) acc_k[u] = acc_v[u] = 0.0f;
    for (int h = g * group; h < (g + 1) * group; h++)
        for (int t = first; t < Tq; t++) {
            long row = ((b * Tq + t) * H + h) * hd, at = (b * H + h) * Tq + t;
            float p = expf(lane_dot(kv_k, q + row, hd) - lse[at]);
            float ds = p * (lane_dot(kv_v, dout + row, hd) - dsum[at]);
#pragma unroll
            for (int u = 0; u < FLASH_PER_LANE; u++) {
                int i = lane + 32 * u;
                if (i < hd) {
                    acc_v[u] += p * dout[row + i];
                    acc_k[u] += ds * q[row + i];
                }
            }
        }
#pragma unroll
    for (int u = 0; u < FLASH_PER_LANE; u++) {
        int i = lane + 32 * u;
        if (i < hd) {
            dv[kv + i] += acc_v[u];
            dk[kv + i] += scale * acc_k[u];
        }
    }
}

// ---- decoding: one query row per head, keys split across blocks ------------------------------
// A decoded token's query sees the len = *pos + 1 keys of the cache, *pos read on the device (a
// recorded graph replays at every position). One block per head would use a dozen of the
// card's hundred-odd SMs and walk up to cap keys each: instead block (h, s) takes keys
// s·DECODE_KEYS.. of head h and leaves a partial result — its max score m, Σ exp(score − m) = l
// and o = Σ exp(score − m)·v — and the head's partials are merged (the flash-decoding split).
// Blocks past len exit at once; the grid is sized for the whole cache.
//
// Two ways to run it. Split (the default): k_decode_rope_append rotates q and k and appends k
// and v to the caches, k_decode_attention_part leaves the partials, k_decode_attention_merge
// merges them — three kernels. Fused (cuda.fused): k_decode_attention_fused does all three in
// one; every block rotates its own q, the blocks holding the new key take it (and v) from
// shared memory while one of them per kv head writes the cache row, and the last of a head's
// blocks to finish merges its partials. Both run the same device functions in the same order:
// they agree to the bit.

static int attention_shape_ok(int B, int Tq, int Tk, int H, int KVH, int hd, const char *what);

#define DECODE_KEYS 128                 // keys per block (and threads: 4 warps)
#define DECODE_SUMS (4 * DECODE_KEYS)   // floats of group sums: groups · hd ≤ 4 · threads

static int decode_splits(int cap) { return (cap + DECODE_KEYS - 1) / DECODE_KEYS; }

// A head's partials: (splits, hd + 2) = o(hd), m, l per split.
size_t cuda_decode_attention_floats(int H, int cap, int hd) {
    return (size_t)H * decode_splits(cap > 0 ? cap : 1) * (hd + 2);
}

// A decoded token at *pos: one thread per pair of q (H·hd/2, rotated in place), per pair of k
// (KVH·hd/2, rotated into cache row *pos) and per value of v (KVH·hd, copied into row *pos).
// Every decode kernel does nothing for a position outside the cache (a caller's bug).
__global__ void k_decode_rope_append(float *q, const float *k, const float *v, float *k_cache, float *v_cache,
                                     const int32_t *pos, int cap, int H, int KVH, int hd, float theta) {
    pdl_wait();   // launched as a dependent (cuda_common.cuh)
    pdl_release();
    int half = hd / 2, p = *pos;
    if (p < 0 || p >= cap) return;
    long kvd = (long)KVH * hd, q_pairs = (long)H * half, k_pairs = (long)KVH * half;
    float *k_row = k_cache + p * kvd, *v_row = v_cache + p * kvd;   // (kvd) each
    for (long idx = blockIdx.x * (long)blockDim.x + threadIdx.x; idx < q_pairs + k_pairs + kvd;
         idx += (long)gridDim.x * blockDim.x) {
        if (idx >= q_pairs + k_pairs) {
            long j = idx - q_pairs - k_pairs;
            v_row[j] = v[j];
            continue;
        }
        int is_k = idx >= q_pairs;
        long pair = is_k ? idx - q_pairs : idx;
        float s, c;
        rope_cos_sin(p, (int)(pair % half), hd, theta, &c, &s);
        rope_rotate((is_k ? k_row : q) + 2 * pair, (is_k ? k : q) + 2 * pair, c, s);
    }
}

// A key's score against the query, by one thread over the whole row: the loads of a row are
// independent of each other, so they are all in flight at once (a warp per key waited on each
// key's loads and its shuffles in turn: 32 round trips to memory a warp). vec4: hd a multiple
// of 4 and both rows 16-byte aligned.
static __device__ float key_dot(const float *qs, const float *kj, int hd, int vec4) {
    return strided_dot(qs, kj, hd, 0, 1, vec4);
}

// Σ_j p_j·v_j over the keys j ≡ g (mod groups), for column c (a float4 of columns where vec4),
// into sums (groups, hd) row g. The keys' loads are independent: many in flight per thread.
static __device__ void value_sums(float *sums, const float *score, const float *v, const float *v_last, int keys,
                                  int cached, long kvd, int hd, int g, int groups, int c, int vec4) {
    if (vec4) {
        float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll 8
        for (int j = g; j < keys; j += groups) {
            float4 x = ((const float4 *)(j < cached ? v + j * kvd : v_last))[c];
            float p = score[j];
            acc.x += p * x.x, acc.y += p * x.y, acc.z += p * x.z, acc.w += p * x.w;
        }
        ((float4 *)sums)[(long)g * (hd / 4) + c] = acc;
    } else {
        float acc = 0.0f;
#pragma unroll 4
        for (int j = g; j < keys; j += groups) acc += score[j] * (j < cached ? v + j * kvd : v_last)[c];
        sums[(long)g * hd + c] = acc;
    }
}

// One block's partial over `keys` ≤ DECODE_KEYS keys of one head into out (hd + 2): a thread
// per key for the scores, then the block's m and l, then the weighted values — thread t sums
// column t % cols over every groups-th key (groups = DECODE_KEYS / cols) and the group sums are
// added in group order. k, v: the first key's row of this head in the caches (rows kvd apart).
// With k_last != NULL the last key is not read from the caches but from k_last, v_last (hd
// each): the same numbers in the same place of every sum, so both decode ways agree to the bit.
// Shared: qs, the rotated query (hd); score (DECODE_KEYS); sums (DECODE_SUMS, 16-byte aligned).
static __device__ void decode_partial(float *out, const float *qs, const float *k, const float *v, int keys, long kvd,
                                      int hd, float scale, const float *k_last, const float *v_last, int vec4,
                                      float *score, float *sums, float *red) {
    int cached = k_last ? keys - 1 : keys;   // keys read from the caches
    for (int j = threadIdx.x; j < keys; j += blockDim.x)
        score[j] = scale * key_dot(qs, j < cached ? k + j * kvd : k_last, hd, vec4);
    __syncthreads();
    float m = -INFINITY;
    for (int j = threadIdx.x; j < keys; j += blockDim.x) m = fmaxf(m, score[j]);
    m = block_max(m, red);
    float l = 0.0f;
    for (int j = threadIdx.x; j < keys; j += blockDim.x) {
        float e = expf(score[j] - m);
        score[j] = e;
        l += e;
    }
    l = block_sum(l, red);                                   // its barriers publish score[]
    int cols = vec4 ? hd / 4 : hd;
    if (cols > (int)blockDim.x) {                            // hd past the block: a column a thread, keys in order
        for (int i = threadIdx.x; i < hd; i += blockDim.x) {
            float acc = 0.0f;
            for (int j = 0; j < keys; j++) acc += score[j] * (j < cached ? v + j * kvd : v_last)[i];
            out[i] = acc;
        }
    } else {
        int groups = blockDim.x / cols, g = threadIdx.x / cols;
        if (g < groups) value_sums(sums, score, v, v_last, keys, cached, kvd, hd, g, groups, threadIdx.x % cols, vec4);
        __syncthreads();
        for (int i = threadIdx.x; i < hd; i += blockDim.x) {
            float acc = 0.0f;
            for (int s = 0; s < groups; s++) acc += sums[(long)s * hd + i];
            out[i] = acc;
        }
    }
    if (threadIdx.x == 0) out[hd] = m, out[hd + 1] = l;
}

// out(hd) = Σ_s e^(m_s − M)·o_s / Σ_s e^(m_s − M)·l_s over a head's first `used` partials
// p(splits, hd + 2), read past L1 (__ldcg): the fused kernel reads what other blocks wrote.
static __device__ void decode_merge(float *out, const float *p, int used, int hd) {
    float M = -INFINITY, L = 0.0f;
    for (int s = 0; s < used; s++) M = fmaxf(M, __ldcg(p + (long)s * (hd + 2) + hd));
    for (int s = 0; s < used; s++)
        L += expf(__ldcg(p + (long)s * (hd + 2) + hd) - M) * __ldcg(p + (long)s * (hd + 2) + hd + 1);
    for (int i = threadIdx.x; i < hd; i += blockDim.x) {
        float acc = 0.0f;
        for (int s = 0; s < used; s++) acc += expf(__ldcg(p + (long)s * (hd + 2) + hd) - M) * __ldcg(p + (long)s * (hd + 2) + i);
        out[i] = acc / L;
    }
}

// Block (h, s) of the split way. Shared: the group sums (DECODE_SUMS), q (hd), the scores
// (DECODE_KEYS).
__global__ void k_decode_attention_part(float *part, const float *q, const float *k_cache, const float *v_cache,
                                        const int32_t *pos, int cap, int splits, int H, int KVH, int hd, float scale,
                                        int vec4) {
    extern __shared__ float4 shared4[];   // float4: the sums and q are read 16 bytes at a time
    __shared__ float red[32];
    pdl_wait();   // launched as a dependent (cuda_common.cuh)
    pdl_release();
    int h = blockIdx.x, s = blockIdx.y, j0 = s * DECODE_KEYS, len = *pos + 1;
    if (len < 1 || len > cap || j0 >= len) return;           // the whole block: no barrier skipped
    int keys = len - j0 < DECODE_KEYS ? len - j0 : DECODE_KEYS;
    long kvd = (long)KVH * hd, head = (long)(h / (H / KVH)) * hd;
    float *sums = (float *)shared4, *qs = sums + DECODE_SUMS, *score = qs + hd;
    for (int i = threadIdx.x; i < hd; i += blockDim.x) qs[i] = q[(long)h * hd + i];
    __syncthreads();
    decode_partial(part + ((long)h * splits + s) * (hd + 2), qs, k_cache + j0 * kvd + head, v_cache + j0 * kvd + head,
                   keys, kvd, hd, scale, NULL, NULL, vec4, score, sums, red);
}

// A block per head merges the used splits.
__global__ void k_decode_attention_merge(float *out, const float *part, const int32_t *pos, int cap, int splits,
                                         int hd) {
    pdl_wait();   // launched as a dependent (cuda_common.cuh)
    pdl_release();
    int h = blockIdx.x, used = (*pos + DECODE_KEYS) / DECODE_KEYS;   // splits holding keys 0..*pos
    if (*pos < 0 || *pos >= cap) return;
    decode_merge(out + (long)h * hd, part + (long)h * splits * (hd + 2), used, hd);
}

// Block (h, s) of the fused way: q and k from the products (not rotated), v; arrivals(H): how
// many of head h's blocks have left their partial, zero between calls (the merging block resets
// it). A position outside the cache writes nothing. Shared: the group sums (DECODE_SUMS), q,
// the new key and value (hd each), then the scores (DECODE_KEYS).
__global__ void k_decode_attention_fused(float *out, float *part, unsigned *arrivals, const float *q, const float *k,
                                         const float *v, float *k_cache, float *v_cache, const int32_t *pos, int cap,
                                         int H, int KVH, int hd, float theta, float scale, int vec4) {
    extern __shared__ float4 shared4[];   // float4: the sums, q and the new key are read 16 bytes at a time
    __shared__ float red[32];
    __shared__ int merges;
    pdl_wait();   // launched as a dependent (cuda_common.cuh)
    pdl_release();
    int h = blockIdx.x, s = blockIdx.y, splits = gridDim.y, p = *pos, j0 = s * DECODE_KEYS;
    if (p < 0 || p >= cap || j0 > p) return;                 // the whole block: no barrier skipped
    int keys = p + 1 - j0 < DECODE_KEYS ? p + 1 - j0 : DECODE_KEYS, used = p / DECODE_KEYS + 1;
    int group = H / KVH, holds_new = j0 + keys == p + 1;     // this block's last key is the new one
    long kvd = (long)KVH * hd, head = (long)(h / group) * hd;
    float *sums = (float *)shared4, *qs = sums + DECODE_SUMS, *k_new = qs + hd, *v_new = k_new + hd, *score = v_new + hd;
    for (int i = threadIdx.x; i < hd / 2; i += blockDim.x) {
        float sn, c;
        rope_cos_sin(p, i, hd, theta, &c, &sn);
        rope_rotate(qs + 2 * i, q + (long)h * hd + 2 * i, c, sn);
        if (holds_new) rope_rotate(k_new + 2 * i, k + head + 2 * i, c, sn);
    }
    for (int i = threadIdx.x; i < hd && holds_new; i += blockDim.x) v_new[i] = v[head + i];
    __syncthreads();
    if (holds_new && h % group == 0)                         // one block per kv head appends
        for (int i = threadIdx.x; i < hd; i += blockDim.x)
            k_cache[p * kvd + head + i] = k_new[i], v_cache[p * kvd + head + i] = v_new[i];
    float *mine = part + ((long)h * splits + s) * (hd + 2);
    decode_partial(mine, qs, k_cache + j0 * kvd + head, v_cache + j0 * kvd + head, keys, kvd, hd, scale,
                   holds_new ? k_new : NULL, holds_new ? v_new : NULL, vec4, score, sums, red);
    __threadfence();                                         // the partial, seen device-wide before it counts
    __syncthreads();
    if (threadIdx.x == 0) merges = atomicAdd(&arrivals[h], 1u) == (unsigned)used - 1;
    __syncthreads();
    if (!merges) return;
    __threadfence();                                         // the others' partials, seen after their count
    decode_merge(out + (long)h * hd, part + (long)h * splits * (hd + 2), used, hd);
    if (threadIdx.x == 0) arrivals[h] = 0;                   // for the next call (later on the stream)
}

// The fused kernel's arrival counters: H zeros, kept by the backend (a caller's scratch may
// hold anything). Grown only outside a recording (an allocation cannot be recorded); NULL
// when they would have to grow during one, or when the GPU has no memory left for them: the
// caller then runs the split way, which needs none, and nothing is reported.
static unsigned *decode_arrivals(int H) {
    static unsigned *counters;
    static int have;
    if (H <= have) return counters;
    if (cuda.recording) return NULL;
    cuda.epoch++;   // before the free: a graph recorded with the old address is never replayed
    if (counters) cudaFree(counters);
    counters = NULL, have = 0;
    if (cudaMalloc((void **)&counters, sizeof(unsigned) * H) != cudaSuccess ||
        cudaMemsetAsync(counters, 0, sizeof(unsigned) * H, cuda.stream) != cudaSuccess) {
        cudaGetLastError();   // clears the failure: it is not the caller's
        if (counters) cudaFree(counters);
        return counters = NULL;
    }
    have = H;
    return counters;
}

void cuda_decode_attention(float *out, float *scratch, float *q, const float *k, const float *v, float *k_cache,
                           float *v_cache, const int32_t *pos, int cap, int H, int KVH, int hd, float theta) {
    if (!attention_shape_ok(1, 1, cap, H, KVH, hd, "decode_attention")) return;
    int splits = decode_splits(cap);
    float scale = 1.0f / sqrtf((float)hd);
    // 16-byte loads when every row starts on 16 bytes (the caches' rows are kvd floats apart)
    int vec4 = hd % 4 == 0 && ((uintptr_t)k_cache & 15) == 0 && ((uintptr_t)v_cache & 15) == 0;
    size_t shared = sizeof(float) * (DECODE_SUMS + 3 * hd + DECODE_KEYS);   // the fused kernel's; under 48 KB up to hd ≈ 3 800
    unsigned *arrivals = cuda.fused && shared <= 47 * 1024 ? decode_arrivals(H) : NULL;
    if (arrivals) {
        LAUNCH_DEPENDENT(k_decode_attention_fused, dim3(H, splits), DECODE_KEYS, shared, out, scratch, arrivals, q, k,
                         v, k_cache, v_cache, pos, cap, H, KVH, hd, theta, scale, vec4);
        return;
    }
    long items = (long)(H + KVH) * (hd / 2) + (long)KVH * hd;
    LAUNCH_DEPENDENT(k_decode_rope_append, grid_for(items, THREADS), THREADS, 0, q, k, v, k_cache, v_cache, pos, cap, H,
                     KVH, hd, theta);
    LAUNCH_DEPENDENT(k_decode_attention_part, dim3(H, splits), DECODE_KEYS,
                     sizeof(float) * (DECODE_SUMS + hd + DECODE_KEYS), scratch, q, k_cache, v_cache, pos, cap, splits, H,
                     KVH, hd, scale, vec4);
    LAUNCH_DEPENDENT(k_decode_attention_merge, H, ATT_THREADS, 0, out, scratch, pos, cap, splits, hd);
}

// ---- dispatch -------------------------------------------------------------------------------

static int flash_on(int hd) { return cuda.attention == ATTENTION_FLASH && hd <= FLASH_MAX_HD; }

// The tensor-core kernels take flash mode's calls at bf16 precision (their products are bf16).
static int flash_tc_on(int hd) {
    return flash_on(hd) && cuda.compute == CUBLAS_COMPUTE_32F_FAST_16BF && hd % 16 == 0 && hd <= TC_MAX_HD;
}

static long flash_tc_calls;   // backend_cuda_flash_tc_calls
extern "C" long backend_cuda_flash_tc_calls(void) { return flash_tc_calls; }

// A flash_tc kernel instance for head size HD: its shared memory above the default 48 KiB is
// granted once (cudaFuncSetAttribute), then it is launched on the backend's stream.
template <int HD> struct FlashTc {
    static void forward(float *out, float *lse, const float *q, const float *k, const float *v, int B, int Tq, int Tk,
                        int H, int KVH, float scale) {
        static int granted;
        size_t smem = flash_tc::forward_smem(HD);
        if (!granted && CUDA_CHECK(cudaFuncSetAttribute(flash_tc::tc_forward<HD>,
                                                        cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem)))
            return;
        granted = 1;
        flash_tc_calls++;
        flash_tc::tc_forward<HD><<<dim3((Tq + TC_TILE - 1) / TC_TILE, H, B), TC_THREADS, smem, cuda.stream>>>(
            out, lse, q, k, v, Tq, Tk, H, KVH, scale);
        LAUNCH_CHECK("flash_tc::tc_forward");
    }
    static void backward(float *dq, float *dk, float *dv, float *D, const float *dout, const float *out,
                         const float *lse, const float *q, const float *k, const float *v, int B, int Tq, int Tk,
                         int H, int KVH, float scale) {
        static int granted;
        size_t dq_smem = flash_tc::dq_smem(HD), dkdv_smem = flash_tc::dkdv_smem(HD);
        if (!granted && (CUDA_CHECK(cudaFuncSetAttribute(flash_tc::tc_dq<HD>,
                                                         cudaFuncAttributeMaxDynamicSharedMemorySize, (int)dq_smem)) ||
                         CUDA_CHECK(cudaFuncSetAttribute(flash_tc::tc_dkdv<HD>,
                                                         cudaFuncAttributeMaxDynamicSharedMemorySize, (int)dkdv_smem))))
            return;
        granted = 1;
        flash_tc_calls++;
        long rows = (long)B * Tq * H;   // a warp a row, 8 a block
        flash_tc::tc_rowdot<<<(unsigned)((rows + 7) / 8), 256, 0, cuda.stream>>>(D, dout, out, B, Tq, H, HD);
        LAUNCH_CHECK("flash_tc::tc_rowdot");
        flash_tc::tc_dq<HD><<<dim3((Tq + TC_TILE - 1) / TC_TILE, H, B), TC_THREADS, dq_smem, cuda.stream>>>(
            dq, D, lse, dout, q, k, v, Tq, Tk, H, KVH, scale);
        LAUNCH_CHECK("flash_tc::tc_dq");
        flash_tc::tc_dkdv<HD><<<dim3((Tk + TC_TILE - 1) / TC_TILE, KVH, B), TC_THREADS, dkdv_smem, cuda.stream>>>(
            dk, dv, D, lse, dout, q, k, v, Tq, Tk, H, KVH, scale);
        LAUNCH_CHECK("flash_tc::tc_dkdv");
    }
};

// The instance for hd (a multiple of 16 up to TC_MAX_HD: flash_tc_on).
#define FLASH_TC_SWITCH(hd, call)                                                                       \
    switch (hd) {                                                                                       \
    case 16: FlashTc<16>::call; break;                                                                  \
    case 32: FlashTc<32>::call; break;                                                                  \
    case 48: FlashTc<48>::call; break;                                                                  \
    case 64: FlashTc<64>::call; break;                                                                  \
    case 80: FlashTc<80>::call; break;                                                                  \
    case 96: FlashTc<96>::call; break;                                                                  \
    case 112: FlashTc<112>::call; break;                                                                \
    default: FlashTc<128>::call; break;                                                                 \
    }

size_t cuda_attention_saved_floats(int B, int H, int Tq, int Tk, int hd) {
    return flash_on(hd) ? (size_t)B * H * Tq : (size_t)B * H * Tq * Tk;
}

static int attention_shape_ok(int B, int Tq, int Tk, int H, int KVH, int hd, const char *what) {
    if (B <= 0 || Tq <= 0 || H <= 0 || hd <= 0) return 0;
    if (KVH <= 0 || H % KVH || Tk < Tq || B > 65535 || H > 65535 || KVH > 65535) {
        char call[128];
        snprintf(call, sizeof call, "%s(B=%d, Tq=%d, Tk=%d, H=%d, KVH=%d, hd=%d)", what, B, Tq, Tk, H, KVH, hd);
        record_error(__FILE__, __LINE__, call, "unsupported shape", "needs Tk >= Tq, H a multiple of KVH, B and H below 65536");
        return 0;
    }
    return 1;
}


void cuda_attention_forward(float *out, float *att, const float *q, const float *k, const float *v, int B, int Tq,
                            int Tk, int H, int KVH, int hd) {
    if (!attention_shape_ok(B, Tq, Tk, H, KVH, hd, "attention_forward")) return;
    float scale = 1.0f / sqrtf((float)hd);
    if (flash_tc_on(hd)) {
        FLASH_TC_SWITCH(hd, forward(out, att, q, k, v, B, Tq, Tk, H, KVH, scale));
    } else if (flash_on(hd)) {
        k_flash_forward<<<dim3((Tq + FLASH_WARPS - 1) / FLASH_WARPS, H, B), 32 * FLASH_WARPS, 0, cuda.stream>>>(
            out, att, q, k, v, Tq, Tk, H, KVH, hd, scale);
        LAUNCH_CHECK("k_flash_forward");
    } else if (cuda.attention == ATTENTION_ROWS) {
        k_attention_forward<<<dim3(Tq, H, B), ATT_THREADS, hd * sizeof(float), cuda.stream>>>(
            out, att, q, k, v, Tq, Tk, H, KVH, hd, scale);
        LAUNCH_CHECK("k_attention_forward");
    } else {
        attention_gemm_forward(&gemm_ops, out, att, q, k, v, B, Tq, Tk, H, KVH, hd);
    }
}

void cuda_attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout, const float *out,
                             const float *att, const float *q, const float *k, const float *v, int B, int Tq, int Tk, int H, int KVH,
                             int hd) {
    if (!attention_shape_ok(B, Tq, Tk, H, KVH, hd, "attention_backward")) return;
    float scale = 1.0f / sqrtf((float)hd);
    if (flash_tc_on(hd)) {   // att: the rows' log-sum-exp; scratch: their D = rowsum(dout ⊙ out)
        FLASH_TC_SWITCH(hd, backward(dq, dk, dv, scratch, dout, out, att, q, k, v, B, Tq, Tk, H, KVH, scale));
    } else if (flash_on(hd)) {   // att: the rows' log-sum-exp; scratch: their D
        k_flash_backward_dq<<<dim3((Tq + FLASH_WARPS - 1) / FLASH_WARPS, H, B), 32 * FLASH_WARPS, 0, cuda.stream>>>(
            dq, scratch, dout, att, q, k, v, Tq, Tk, H, KVH, hd, scale);
        LAUNCH_CHECK("k_flash_backward_dq");
        k_flash_backward_dkdv<<<dim3((Tk + FLASH_WARPS - 1) / FLASH_WARPS, KVH, B), 32 * FLASH_WARPS, 0, cuda.stream>>>(
            dk, dv, scratch, dout, att, q, k, v, Tq, Tk, H, KVH, hd, scale);
        LAUNCH_CHECK("k_flash_backward_dkdv");
    } else if (cuda.attention == ATTENTION_ROWS) {
        k_attention_backward_rows<<<dim3(Tq, H, B), ATT_THREADS, hd * sizeof(float), cuda.stream>>>(
            dq, scratch, dout, att, k, v, Tq, Tk, H, KVH, hd, scale);
        LAUNCH_CHECK("k_attention_backward_rows");
        int threads = hd < ATT_THREADS ? (hd + 31) / 32 * 32 : ATT_THREADS;
        k_attention_backward_keys<<<dim3(Tk, KVH, B), threads, 0, cuda.stream>>>(
            dk, dv, scratch, dout, att, q, Tq, Tk, H, KVH, hd, scale);
        LAUNCH_CHECK("k_attention_backward_keys");
    } else {
        attention_gemm_backward(&gemm_ops, dq, dk, dv, scratch, dout, att, q, k, v, B, Tq, Tk, H, KVH, hd);
    }
}
