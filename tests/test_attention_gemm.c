// test_attention_gemm.c — kernels/attention_gemm.c (attention as strided-batched GEMMs over the
// heads, as the CUDA backend runs it) against the CPU backend's attention, on the CPU: the
// products go to a loop of cblas_sgemm, the two row passes to plain C twins of the CUDA kernels.
// What this checks is the orchestration: every head's offset, leading dimension and stride,
// every transpose, and which products add. The CUDA kernels themselves are test_cuda's.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>

#include "../kernels/attention_gemm.h"
#include "../kernels/kernels.h"
#include "test.h"

static void strided_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                          long stride_a, const float *b, int ldb, long stride_b, float beta, float *c, int ldc,
                          long stride_c, int count) {
    for (int i = 0; i < count; i++)
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k,
                    alpha, a + i * stride_a, lda, b + i * stride_b, ldb, beta, c + i * stride_c, ldc);
}

static void softmax_rows(float *att, long rows, int Tq, int Tk) {
    for (long r = 0; r < rows; r++) {
        int L = Tk - Tq + (int)(r % Tq) + 1;
        float *p = att + r * Tk, mx = -INFINITY, sum = 0.0f;
        for (int j = 0; j < L; j++) mx = fmaxf(mx, p[j]);
        for (int j = 0; j < L; j++) sum += p[j] = expf(p[j] - mx);
        for (int j = 0; j < Tk; j++) p[j] = j < L ? p[j] / sum : 0.0f;
    }
}

static void softmax_backward_rows(float *ds, const float *att, long rows, int Tq, int Tk) {
    for (long r = 0; r < rows; r++) {
        int L = Tk - Tq + (int)(r % Tq) + 1;
        const float *p = att + r * Tk;
        float *d = ds + r * Tk, dot = 0.0f;
        for (int j = 0; j < L; j++) dot += p[j] * d[j];
        for (int j = 0; j < Tk; j++) d[j] = j < L ? p[j] * (d[j] - dot) : 0.0f;
    }
}

static const AttentionGemmOps ops = {strided_sgemm, softmax_rows, softmax_backward_rows};

static float *random_floats(long n, unsigned *seed, float scale) {
    float *x = malloc(sizeof(float) * n);
    for (long i = 0; i < n; i++) x[i] = scale * ((float)rand_r(seed) / RAND_MAX - 0.5f);
    return x;
}

static float *copy_of(const float *x, long n) {
    float *y = malloc(sizeof(float) * n);
    memcpy(y, x, sizeof(float) * n);
    return y;
}

// ‖got − want‖₂ / ‖want‖₂
static double relative_error(const float *got, const float *want, long n) {
    double d = 0, w = 0;
    for (long i = 0; i < n; i++) {
        d += ((double)got[i] - want[i]) * ((double)got[i] - want[i]);
        w += (double)want[i] * want[i];
    }
    return sqrt(d / (w > 0 ? w : 1e-300));
}

static void check_case(int B, int Tq, int Tk, int H, int KVH, int hd) {
    const Backend *cpu = backend_cpu(0);
    unsigned seed = (unsigned)(B * 1000003 + Tq * 1009 + Tk * 101 + H * 11 + hd);
    long nq = (long)B * Tq * H * hd, nk = (long)B * Tk * KVH * hd, na = (long)B * H * Tq * Tk;
    float *q = random_floats(nq, &seed, 6.0f), *k = random_floats(nk, &seed, 1.0f), *v = random_floats(nk, &seed, 1.0f);
    float *dout = random_floats(nq, &seed, 1.0f);
    float *dq = random_floats(nq, &seed, 1.0f), *dk = random_floats(nk, &seed, 1.0f), *dv = random_floats(nk, &seed, 1.0f);
    float *dq2 = copy_of(dq, nq), *dk2 = copy_of(dk, nk), *dv2 = copy_of(dv, nk);
    float *out = calloc(nq, sizeof(float)), *out2 = calloc(nq, sizeof(float));
    float *att = calloc(na, sizeof(float)), *att2 = calloc(na, sizeof(float));
    float *scratch = calloc(na, sizeof(float)), *scratch2 = calloc(na, sizeof(float));
    for (long i = 0; i < na; i++) att2[i] = scratch2[i] = NAN;   // every entry must be written
    cpu->attention_forward(out, att, q, k, v, B, Tq, Tk, H, KVH, hd);
    attention_gemm_forward(&ops, out2, att2, q, k, v, B, Tq, Tk, H, KVH, hd);
    cpu->attention_backward(dq, dk, dv, scratch, dout, out, att, q, k, v, B, Tq, Tk, H, KVH, hd);
    attention_gemm_backward(&ops, dq2, dk2, dv2, scratch2, dout, att2, q, k, v, B, Tq, Tk, H, KVH, hd);
    const char *names[5] = {"out", "att", "dq (adds)", "dk (adds)", "dv (adds)"};
    const float *got[5] = {out2, att2, dq2, dk2, dv2}, *want[5] = {out, att, dq, dk, dv};
    long n[5] = {nq, na, nq, nk, nk};
    for (int i = 0; i < 5; i++) {
        double e = relative_error(got[i], want[i], n[i]);
        CHECK(e <= 1e-5, "attention_gemm %s (B=%d Tq=%d Tk=%d H=%d KVH=%d hd=%d): relative error %.3g (≤ 1e-5)",
              names[i], B, Tq, Tk, H, KVH, hd, e);
    }
    float *bufs[] = {q, k, v, dout, dq, dk, dv, dq2, dk2, dv2, out, out2, att, att2, scratch, scratch2};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
}

static void test_multi_head(void) {
    check_case(2, 70, 70, 2, 2, 64);    // several batches
    check_case(1, 33, 33, 6, 6, 8);
}

static void test_grouped_kv_heads(void) {
    check_case(2, 13, 13, 4, 2, 16);    // two query heads per kv head
    check_case(3, 33, 33, 6, 3, 8);
    check_case(1, 40, 40, 2, 1, 160);   // every query head on one kv head
}

static void test_kv_cache_rows(void) {
    check_case(1, 3, 10, 3, 1, 40);     // Tq < Tk: chunked prefill
    check_case(1, 1, 150, 4, 4, 32);    // one decoded token
    check_case(2, 1, 9, 4, 2, 16);
}

int main(void) {
    RUN(test_multi_head);
    RUN(test_grouped_kv_heads);
    RUN(test_kv_cache_rows);
    return TEST_SUMMARY();
}
