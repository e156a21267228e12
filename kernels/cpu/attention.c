// attention.c — causal multi-head attention with grouped KV heads, on BLAS per (batch, head).
//
// Layouts: q(B,Tq,H,hd), k,v(B,Tk,KVH,hd), out(B,Tq,H,hd), att(B,H,Tq,Tk). For a fixed
// (b, h) the Tq×hd block of q is a strided matrix (row stride H·hd), and likewise k and v
// (row stride KVH·hd), so every product below is one cblas_sgemm on views, no copies.
//
// Causality: query t sits at absolute position Tk−Tq+t and sees keys 0..Tk−Tq+t (Tq < Tk
// when decoding with a KV cache). Queries go in blocks of ATT_BLOCK rows; a block needs only
// the keys up to its last row's position, which skips most of the masked upper-right half at
// T = 256 while keeping the GEMMs big enough for BLAS. Within a block, entries past a row's
// own last key are computed by the GEMM and then zeroed (forward) or ignored (backward).
//
// Threads: the (b, h) pairs are independent, so OpenMP threads take whole heads and each
// runs its GEMMs on a single-threaded BLAS. At T = 256, hd = 64 the GEMMs are too small to
// split well: on 2 cores this is 2.3× faster than calling a 2-thread BLAS head after head.
// OpenBLAS (the OpenMP build lrsh links) is set to 1 thread around the parallel region, which
// makes each call run in its calling thread; the setting is restored afterwards.
#include <math.h>
#include <cblas.h>
#include <omp.h>

#include "cpu_kernels.h"

#define ATT_BLOCK 32

// The probabilities themselves: backward reads them instead of recomputing the softmax.
size_t cpu_attention_saved_floats(int B, int H, int Tq, int Tk, int hd) {
    (void)hd;
    return (size_t)B * H * Tq * Tk;
}

// Number of keys query row t can see.
static inline int visible_keys(int t, int Tq, int Tk) { return Tk - Tq + t + 1; }

// Dimensions shared by every head of one call.
typedef struct {
    int Tq, Tk, hd;
    int qs, ks;      // row strides: H·hd for q/out/dq/dout, KVH·hd for k/v/dk/dv
    float scale;     // 1/sqrt(hd)
} AttentionShape;

static AttentionShape attention_shape(int Tq, int Tk, int H, int KVH, int hd) {
    AttentionShape s = {Tq, Tk, hd, H * hd, KVH * hd, 1.0f / sqrtf((float)hd)};
    return s;
}

// In place over p(Tk): p[j] = softmax(p[0..L))[j] for j < L, 0 beyond (masked).
static void causal_softmax_row(float *p, int L, int Tk) {
    float max = -INFINITY;
    #pragma omp simd reduction(max : max)
    for (int j = 0; j < L; j++) max = p[j] > max ? p[j] : max;
    float sum = 0.0f;
    #pragma omp simd reduction(+ : sum)
    for (int j = 0; j < L; j++) {
        p[j] = cpu_expf(p[j] - max);
        sum += p[j];
    }
    float inv = 1.0f / sum;
    #pragma omp simd
    for (int j = 0; j < L; j++) p[j] *= inv;
    for (int j = L; j < Tk; j++) p[j] = 0.0f;
}

// One query row (decoding: Tq = 1) against its L visible keys: plain loops, since a BLAS call
// per head for a 1×L×hd product costs more in setup than in arithmetic.
static void row_forward(float *o, float *p, const float *q, const float *k, const float *v, int L,
                        const AttentionShape *s) {
    for (int j = 0; j < L; j++) {
        const float *kj = k + (long)j * s->ks;                  // (hd)
        float dot = 0.0f;
        #pragma omp simd reduction(+ : dot)
        for (int i = 0; i < s->hd; i++) dot += q[i] * kj[i];
        p[j] = s->scale * dot;
    }
    causal_softmax_row(p, L, s->Tk);
    for (int i = 0; i < s->hd; i++) o[i] = 0.0f;
    for (int j = 0; j < L; j++) {
        const float *vj = v + (long)j * s->ks;                  // (hd)
        #pragma omp simd
        for (int i = 0; i < s->hd; i++) o[i] += p[j] * vj[i];
    }
}

// One head: q,o(Tq,hd) with row stride qs; k,v(Tk,hd) with row stride ks; att(Tq,Tk).
static void head_forward(float *o, float *att, const float *q, const float *k, const float *v,
                         const AttentionShape *s) {
    if (s->Tq == 1) {
        row_forward(o, att, q, k, v, s->Tk, s);
        return;
    }
    for (int t0 = 0; t0 < s->Tq; t0 += ATT_BLOCK) {
        int rows = t0 + ATT_BLOCK < s->Tq ? ATT_BLOCK : s->Tq - t0;
        int keys = visible_keys(t0 + rows - 1, s->Tq, s->Tk);   // keys the block's last row sees
        float *p = att + (long)t0 * s->Tk;                      // (rows, Tk)
        // p[:, 0:keys] = scale · q[t0:t0+rows] · k[0:keys]ᵀ
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, keys, s->hd, s->scale,
                    q + (long)t0 * s->qs, s->qs, k, s->ks, 0.0f, p, s->Tk);
        for (int t = 0; t < rows; t++)
            causal_softmax_row(p + (long)t * s->Tk, visible_keys(t0 + t, s->Tq, s->Tk), s->Tk);
        // o[t0:t0+rows] = p[:, 0:keys] · v[0:keys]
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, s->hd, keys, 1.0f,
                    p, s->Tk, v, s->ks, 0.0f, o + (long)t0 * s->qs, s->qs);
    }
}

void cpu_attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                           int B, int Tq, int Tk, int H, int KVH, int hd) {
    AttentionShape s = attention_shape(Tq, Tk, H, KVH, hd);
    int group = H / KVH;                                        // query heads per kv head
    // One thread per head, each calling a one-thread BLAS. In OpenBLAS's OpenMP build
    // openblas_set_num_threads also sets OpenMP's count, so the team size is taken first.
    int threads = omp_get_max_threads(), blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    #pragma omp parallel for collapse(2) schedule(static) num_threads(threads)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            long qo = ((long)b * Tq * H + h) * hd;              // row 0 of (b, h) in q, out
            long ko = ((long)b * Tk * KVH + h / group) * hd;    // row 0 of (b, kv head) in k, v
            head_forward(out + qo, att + ((long)b * H + h) * Tq * Tk, q + qo, k + ko, v + ko, &s);
        }
    openblas_set_num_threads(blas_threads);
}

// One head's gradients. With P = softmax(S), S = scale·q·kᵀ, o = P·v:
//   dP = do·vᵀ,  dv += Pᵀ·do,  dS = P ⊙ (dP − rowsum(P ⊙ dP)),
//   dq += scale·dS·k,  dk += scale·dSᵀ·q.
// ds(Tq,Tk) is scratch: dP, then dS in place.
static void head_backward(float *dq, float *dk, float *dv, float *ds, const float *dout,
                          const float *att, const float *q, const float *k, const float *v,
                          const AttentionShape *s) {
    for (int t0 = 0; t0 < s->Tq; t0 += ATT_BLOCK) {
        int rows = t0 + ATT_BLOCK < s->Tq ? ATT_BLOCK : s->Tq - t0;
        int keys = visible_keys(t0 + rows - 1, s->Tq, s->Tk);
        const float *p = att + (long)t0 * s->Tk;                // (rows, Tk)
        float *d = ds + (long)t0 * s->Tk;                       // (rows, Tk)
        const float *dob = dout + (long)t0 * s->qs;             // (rows, hd), stride qs
        // d[:, 0:keys] = dout_blk · v[0:keys]ᵀ   (dP)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, keys, s->hd, 1.0f,
                    dob, s->qs, v, s->ks, 0.0f, d, s->Tk);
        // dv[0:keys] += p[:, 0:keys]ᵀ · dout_blk
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, keys, s->hd, rows, 1.0f,
                    p, s->Tk, dob, s->qs, 1.0f, dv, s->ks);
        // softmax backward, row by row; masked keys get dS = 0
        for (int t = 0; t < rows; t++) {
            const float *pr = p + (long)t * s->Tk;              // (Tk)
            float *dr = d + (long)t * s->Tk;                    // (Tk) dP in, dS out
            int L = visible_keys(t0 + t, s->Tq, s->Tk);
            float dot = 0.0f;
            #pragma omp simd reduction(+ : dot)
            for (int j = 0; j < L; j++) dot += pr[j] * dr[j];
            #pragma omp simd
            for (int j = 0; j < L; j++) dr[j] = pr[j] * (dr[j] - dot);
            for (int j = L; j < keys; j++) dr[j] = 0.0f;
        }
        // dq_blk += scale · d[:, 0:keys] · k[0:keys];  dk[0:keys] += scale · d[:, 0:keys]ᵀ · q_blk
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, s->hd, keys, s->scale,
                    d, s->Tk, k, s->ks, 1.0f, dq + (long)t0 * s->qs, s->qs);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, keys, s->hd, rows, s->scale,
                    d, s->Tk, q + (long)t0 * s->qs, s->qs, 1.0f, dk, s->ks);
    }
}

// Query heads of one group add into the same dk, dv rows, so a thread takes a whole
// (b, kv head) group and runs its heads in order: no races, and the sums come out the same
// on any number of threads.
void cpu_attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                            const float *out, const float *att, const float *q, const float *k, const float *v,
                            int B, int Tq, int Tk, int H, int KVH, int hd) {
    (void)out;   // the probabilities in att give Σ P ⊙ dP directly
    AttentionShape s = attention_shape(Tq, Tk, H, KVH, hd);
    int group = H / KVH;
    // One thread per head, each calling a one-thread BLAS. In OpenBLAS's OpenMP build
    // openblas_set_num_threads also sets OpenMP's count, so the team size is taken first.
    int threads = omp_get_max_threads(), blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    #pragma omp parallel for collapse(2) schedule(static) num_threads(threads)
    for (int b = 0; b < B; b++)
        for (int g = 0; g < KVH; g++) {
            long ko = ((long)b * Tk * KVH + g) * hd;            // row 0 of (b, g) in k, v, dk, dv
            for (int h = g * group; h < (g + 1) * group; h++) {
                long qo = ((long)b * Tq * H + h) * hd;          // row 0 of (b, h) in q, dq, dout
                long ao = ((long)b * H + h) * Tq * Tk;          // (b, h) in att, scratch
                head_backward(dq + qo, dk + ko, dv + ko, scratch + ao, dout + qo, att + ao,
                              q + qo, k + ko, v + ko, &s);
            }
        }
    openblas_set_num_threads(blas_threads);
}

// The probabilities of one query row per head: (H, *pos + 1) within (H, cap).
size_t cpu_decode_attention_floats(int H, int cap, int hd) {
    (void)hd;
    return (size_t)H * cap;
}

// q and k rotated and k, v appended at *pos (cpu_decode_rope_append), then one query row over the
// cache rows 0..*pos: attention_forward itself.
void cpu_decode_attention(float *out, float *scratch, float *q, const float *k, const float *v, float *k_cache,
                          float *v_cache, const int32_t *pos, int cap, int H, int KVH, int hd, float theta) {
    if (*pos < 0 || *pos >= cap) return;   // outside the cache: a caller's bug, nothing written
    cpu_decode_rope_append(q, k, v, k_cache, v_cache, pos, H, KVH, hd, theta);
    cpu_attention_forward(out, scratch, q, k_cache, v_cache, 1, 1, *pos + 1, H, KVH, hd);
}
