// backend_cpu.c — the CPU Backend table: host memory, GEMM through OpenBLAS, describe().
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>

#include "cpu_kernels.h"

// Rounded up so that every buffer starts and ends on a cache line (and an AVX-512 vector).
#define CPU_ALIGN 64

static void *cpu_alloc(size_t bytes) {
    size_t rounded = (bytes + CPU_ALIGN - 1) / CPU_ALIGN * CPU_ALIGN;
    if (rounded < bytes) return NULL;                 // size_t overflow
    if (rounded == 0) rounded = CPU_ALIGN;            // a zero-size buffer is still a buffer, not OOM
    void *p = aligned_alloc(CPU_ALIGN, rounded);
    if (p) memset(p, 0, rounded);
    return p;
}

static void cpu_release(void *ptr) { free(ptr); }

// On the CPU "device" and host memory are the same: every transfer is a memmove (which,
// unlike memcpy, allows dst == src).
static void cpu_transfer(void *dst, const void *src, size_t bytes) {
    if (bytes) memmove(dst, src, bytes);
}

static void cpu_zero(void *dst, size_t bytes) {
    if (bytes) memset(dst, 0, bytes);
}

void cpu_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {  // C = beta·C; BLAS implementations disagree on k == 0, so do it here
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) c[(long)i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[(long)i * ldc + j];
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// "cpu: OpenBLAS 0.3.21 (Cooperlake), 2 threads". The string lives in thread-local storage
// and is rebuilt on each call, since the thread count may have changed.
static const char *cpu_describe(void) {
    static _Thread_local char text[160];
    char version[64] = "BLAS";
    const char *config = openblas_get_config();       // "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ..."
    if (config) {
        const char *space = strchr(config, ' ');
        if (space) space = strchr(space + 1, ' ');    // end of the second word
        size_t len = space ? (size_t)(space - config) : strlen(config);
        if (len >= sizeof version) len = sizeof version - 1;
        memcpy(version, config, len);
        version[len] = 0;
    }
    const char *core = openblas_get_corename();
    int threads = omp_get_max_threads();
    snprintf(text, sizeof text, "cpu: %s (%s), %d thread%s", version, core ? core : "unknown",
             threads, threads == 1 ? "" : "s");
    return text;
}

static const Backend cpu_backend = {
    .name = "cpu",
    .describe = cpu_describe,
    .alloc = cpu_alloc,
    .release = cpu_release,
    .upload = cpu_transfer,
    .download = cpu_transfer,
    .copy = cpu_transfer,
    .zero = cpu_zero,
    .gemm = cpu_gemm,
    .embedding_forward = cpu_embedding_forward,
    .embedding_backward = cpu_embedding_backward,
    .rmsnorm_forward = cpu_rmsnorm_forward,
    .rmsnorm_backward = cpu_rmsnorm_backward,
    .rope_forward = cpu_rope_forward,
    .rope_backward = cpu_rope_backward,
    .attention_forward = cpu_attention_forward,
    .attention_backward = cpu_attention_backward,
    .swiglu_forward = cpu_swiglu_forward,
    .swiglu_backward = cpu_swiglu_backward,
    .softmax_xent_forward = cpu_softmax_xent_forward,
    .add = cpu_add,
    .scale = cpu_scale,
    .sum = cpu_sum,
    .sumsq = cpu_sumsq,
    .adamw_update = cpu_adamw_update,
};

const Backend *backend_cpu(int threads) {
    if (threads > 0) {
        omp_set_num_threads(threads);
        openblas_set_num_threads(threads);
    }
    return &cpu_backend;
}
