// test_cuda.c — the CUDA backend against its CPU twin: every kernel on fresh random inputs
// (never zeros; forward outputs poisoned with NaN first, so an unwritten element fails),
// whole-model forward and backward, decode with the KV cache, and 50 training steps on both.
//
// Bounds: ‖cuda − cpu‖₂ / ‖cpu‖₂ per output. fp32 kernels ≤ 1e-5 (different summation orders
// only); GEMM in tf32 ≤ 1e-3 and in bf16 ≤ 1e-2. The whole model compounds a few dozen kernels,
// so its bounds are wider (MODEL_TOL, TRAIN_TOL). They were set on the CPU: the CPU backend
// against itself with relative noise of 1e-6 (about 8 ulp) on every GEMM output gave gradients
// within 2.6e-6 and 50-step losses within 3e-7, while a 1% error in AdamW's learning rate
// moved the 50-step losses by 5e-3. First GPU runs: see docs/gpu-results.md.
//
// Without a GPU (or in a build without CUDA) every GPU test prints "skip NAME: no CUDA device
// (reason)" and counts as skipped, never as passed; the one test that runs then checks that
// backend_cuda() said why, in one line, without crashing.
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/generate.h"
#include "../engine/model.h"
#include "../engine/rng.h"
#include "../engine/train.h"
#include "../kernels/cuda/backend_cuda.h"
#include "../kernels/kernels.h"
#include "test.h"

#define KERNEL_TOL 1e-5
#define TF32_TOL 1e-3
#define BF16_TOL 1e-2
#define MODEL_TOL 1e-4      // loss and each tensor's gradient after one forward and backward
#define TRAIN_TOL 1e-4      // |Δloss| / loss at every one of 50 steps

// Under AddressSanitizer (make SAN=1) the CUDA driver maps memory inside ASan's protected
// shadow gap when it starts, and cuInit fails; these options apply to this binary only, and
// only when it is built with the sanitizers (otherwise nothing calls them). The driver's and
// cuBLAS's own allocations that live until exit are not this program's leaks.
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "protect_shadow_gap=0"; }
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libcuda.so\nleak:libcudart.so\nleak:libcublas\nleak:libnvidia\n"; }

static const Backend *cpu, *gpu;
static char why[512];

// ---- helpers ------------------------------------------------------------------------------

static uint64_t seed = 0x5DEECE66Dull;

// n values in [−1, 1], none closer to 0 than 0.05
static float *rand_floats(long n) {
    float *x = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (long i = 0; i < n; i++) {
        double u = rng_uniform(&seed) * 2.0 - 1.0;
        x[i] = (float)(u < 0 ? u - 0.05 : u + 0.05) / 1.05f;
    }
    return x;
}

static float *copy_floats(const float *x, long n) {
    float *y = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    memcpy(y, x, (size_t)n * sizeof(float));
    return y;
}

static float *nan_floats(long n) {
    float *x = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (long i = 0; i < n; i++) x[i] = NAN;
    return x;
}

static int32_t *rand_ids(int n, int vocab) {
    int32_t *t = malloc(sizeof(int32_t) * (size_t)n);
    for (int i = 0; i < n; i++) t[i] = (int32_t)(rng_next(&seed) % (uint64_t)vocab);
    return t;
}

// A device copy of host data.
static void *to_gpu(const void *host, size_t bytes) {
    void *d = gpu->alloc(bytes);
    if (d) gpu->upload(d, host, bytes);
    return d;
}

static float *from_gpu(const float *dev, long n) {
    float *h = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    gpu->download(h, dev, (size_t)n * sizeof(float));
    return h;
}

// ‖got − want‖ / ‖want‖ ≤ tol, and nothing non-finite where want is finite (unwritten NaN).
static void compare(const char *what, const float *got, const float *want, long n, double tol) {
    double diff = 0, ref = 0, worst = 0;
    long bad = -1, worst_at = 0;
    for (long i = 0; i < n; i++) {
        if (isfinite(want[i]) && !isfinite(got[i])) { if (bad < 0) bad = i; continue; }
        double d = (double)got[i] - want[i];
        diff += d * d;
        ref += (double)want[i] * want[i];
        if (fabs(d) > worst) { worst = fabs(d); worst_at = i; }
    }
    double rel = ref > 0 ? sqrt(diff / ref) : sqrt(diff);
    CHECK(bad < 0, "%s: element %ld is %g on the GPU, %g on the CPU (not written?)", what, bad,
          bad >= 0 ? got[bad] : 0.0, bad >= 0 ? want[bad] : 0.0);
    CHECK(rel <= tol, "%s: relative error %.3g > %.1g (worst element %ld: gpu %.8g, cpu %.8g)", what, rel, tol,
          worst_at, n ? got[worst_at] : 0.0, n ? want[worst_at] : 0.0);
}

// A device output compared with its host reference.
static void compare_gpu(const char *what, const float *dev, const float *want, long n, double tol) {
    float *got = from_gpu(dev, n);
    compare(what, got, want, n, tol);
    free(got);
}

static void check_no_cuda_error(void) {
    const char *e = backend_cuda_last_error();
    CHECK(e == NULL, "CUDA error: %s", e);
    if (e) backend_cuda_clear_error();
}

// ---- the tests that need no GPU -------------------------------------------------------------

static void test_no_device_reason(void) {
    char again[512];
    CHECK(why[0] != 0, "backend_cuda returned NULL without a reason");
    CHECK(strchr(why, '\n') == NULL, "the reason should be one line: '%s'", why);
    CHECK(backend_cuda(again, sizeof again) == NULL && strcmp(again, why) == 0,
          "a second call should fail the same way: '%s' then '%s'", why, again);
    char tiny[8];
    CHECK(backend_cuda(tiny, sizeof tiny) == NULL && strlen(tiny) < sizeof tiny, "a short buffer must be respected");
    CHECK(backend_cuda(NULL, 0) == NULL, "why = NULL must be accepted");
    CHECK(backend_cuda_set_precision("tf32", again, sizeof again) != 0 && again[0],
          "setting a precision without a device should fail with a reason");
    CHECK(backend_cuda_last_error() == NULL, "no error should be recorded without a device");
    backend_cuda_synchronize();   // must not crash without a device
}

// ---- memory ---------------------------------------------------------------------------------

static void test_memory(void) {
    long n = 100003;
    float *d = gpu->alloc(sizeof(float) * n);
    float *h = from_gpu(d, n);
    int zero = 1;
    for (long i = 0; i < n; i++) zero &= h[i] == 0.0f;
    CHECK(zero, "alloc must return zero-filled memory");
    float *x = rand_floats(n);
    gpu->upload(d, x, sizeof(float) * n);
    compare_gpu("upload/download round trip", d, x, n, 0);
    // copy, including overlapping ranges (the CPU's copy is a memmove)
    float *e = gpu->alloc(sizeof(float) * n);
    gpu->copy(e, d, sizeof(float) * n);
    compare_gpu("copy", e, x, n, 0);
    gpu->copy(d + 10, d, sizeof(float) * (n - 10));
    float *shifted = copy_floats(x, n);
    memmove(shifted + 10, shifted, sizeof(float) * (n - 10));
    compare_gpu("overlapping copy forward", d, shifted, n, 0);
    gpu->upload(d, x, sizeof(float) * n);
    gpu->copy(d, d + 7, sizeof(float) * (n - 7));
    memcpy(shifted, x, sizeof(float) * n);
    memmove(shifted, shifted + 7, sizeof(float) * (n - 7));
    compare_gpu("overlapping copy backward", d, shifted, n, 0);
    gpu->zero(d + 5, sizeof(float) * 100);
    memset(shifted + 5, 0, sizeof(float) * 100);
    compare_gpu("zero", d, shifted, n, 0);
    CHECK(gpu->mem_available() > 0, "mem_available should be positive on a GPU");
    void *huge = gpu->alloc((size_t)1 << 50);   // 1 PiB
    CHECK(huge == NULL, "an impossible allocation should return NULL");
    CHECK(backend_cuda_last_error() == NULL, "out of memory is the caller's to report, not a backend error");
    void *empty = gpu->alloc(0);
    CHECK(empty != NULL, "a zero-size allocation is still a buffer");
    gpu->release(empty);
    gpu->release(NULL);
    // page-locked host memory: a download into it and an upload from it, exact
    float *pinned = gpu->host_alloc(sizeof(float) * n);
    CHECK(pinned != NULL, "host_alloc of %ld floats failed", n);
    if (pinned) {
        gpu->upload(d, x, sizeof(float) * n);
        gpu->download(pinned, d, sizeof(float) * n);
        CHECK(memcmp(pinned, x, sizeof(float) * n) == 0, "download into host_alloc'd memory differs");
        for (long i = 0; i < n; i++) pinned[i] = -x[i];
        gpu->upload(e, pinned, sizeof(float) * n);
        compare_gpu("upload from host_alloc'd memory", e, pinned, n, 0);
    }
    gpu->host_release(pinned);
    gpu->host_release(NULL);
    gpu->release(d);
    gpu->release(e);
    free(h); free(x); free(shifted);
    check_no_cuda_error();
}

// A call that fails without returning anything (here cuBLAS refusing a leading dimension
// below the row length) is recorded; Backend.take_error hands it over once, as one line.
static void test_take_error(void) {
    CHECK(gpu->take_error != NULL, "the CUDA backend should have take_error");
    if (!gpu->take_error) return;
    float *a = gpu->alloc(sizeof(float) * 64), *b = gpu->alloc(sizeof(float) * 64), *c = gpu->alloc(sizeof(float) * 64);
    CHECK(gpu->take_error() == NULL, "no error should be pending at the start");
    gpu->gemm(0, 0, 4, 4, 4, 1.0f, a, 2, b, 4, 0.0f, c, 4);   // lda = 2 < k = 4
    const char *e = gpu->take_error();
    CHECK(e && strstr(e, "cublasGemmEx") && !strchr(e, '\n'), "take_error should name the refused call in one line, "
          "got '%s'", e ? e : "(none)");
    CHECK(gpu->take_error() == NULL, "an error taken once should be forgotten");
    gpu->release(a); gpu->release(b); gpu->release(c);
    check_no_cuda_error();
}

// ---- GEMM ---------------------------------------------------------------------------------

static void gemm_case(int ta, int tb, int m, int n, int k, float alpha, float beta, double tol) {
    int pad = 3;
    int a_rows = ta ? k : m, a_cols = ta ? m : k, lda = a_cols + pad;
    int b_rows = tb ? n : k, b_cols = tb ? k : n, ldb = b_cols + pad;
    int ldc = n + pad;
    long na = (long)a_rows * lda, nb = (long)b_rows * ldb, nc = (long)m * ldc;
    float *a = rand_floats(na), *b = rand_floats(nb), *c = rand_floats(nc);
    float *gc = copy_floats(c, nc);
    if (beta == 0.0f)   // C is not read: poison the GPU's copy where it must be written
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) gc[(long)i * ldc + j] = NAN;
    float *da = to_gpu(a, sizeof(float) * na), *db = to_gpu(b, sizeof(float) * nb), *dc = to_gpu(gc, sizeof(float) * nc);
    cpu->gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    gpu->gemm(ta, tb, m, n, k, alpha, da, lda, db, ldb, beta, dc, ldc);
    char what[96];
    snprintf(what, sizeof what, "gemm ta=%d tb=%d m=%d n=%d k=%d beta=%g (%s)", ta, tb, m, n, k, beta,
             backend_cuda_precision());
    compare_gpu(what, dc, c, nc, tol);
    gpu->release(da); gpu->release(db); gpu->release(dc);
    free(a); free(b); free(c); free(gc);
}

static void test_gemm_fp32(void) {
    static const int shapes[][3] = {{37, 53, 29}, {1, 71, 45}, {64, 64, 128}, {130, 7, 300}, {5, 1, 9}};
    for (int ta = 0; ta <= 1; ta++)
        for (int tb = 0; tb <= 1; tb++)
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
                gemm_case(ta, tb, shapes[s][0], shapes[s][1], shapes[s][2], 0.7f, 0.0f, KERNEL_TOL);
                gemm_case(ta, tb, shapes[s][0], shapes[s][1], shapes[s][2], 1.0f, 1.3f, KERNEL_TOL);
            }
    gemm_case(0, 0, 9, 11, 0, 1.0f, 0.5f, KERNEL_TOL);   // k = 0: C = beta·C
    gemm_case(0, 1, 9, 11, 0, 1.0f, 0.0f, KERNEL_TOL);   // k = 0, beta = 0: C = 0
    check_no_cuda_error();
}

// count products of the shapes (ta, tb, m, n, k) on fresh random matrices, C = alpha·op(A)·op(B)
// + betas[i % 2]·C, as one gemm_batch on the GPU against the same on the CPU.
static void gemm_batch_case(const int (*shapes)[5], int count, float alpha, const float betas[2], const char *what) {
    GemmCall *host = calloc((size_t)count, sizeof(GemmCall)), *dev = calloc((size_t)count, sizeof(GemmCall));
    for (int i = 0; i < count; i++) {
        int ta = shapes[i][0], tb = shapes[i][1], m = shapes[i][2], n = shapes[i][3], k = shapes[i][4];
        float *a = rand_floats((long)m * k), *b = rand_floats((long)k * n), *c = rand_floats((long)m * n);
        host[i] = (GemmCall){ta, tb, m, n, k, alpha, a, ta ? m : k, b, tb ? k : n, betas[i % 2], c, n};
        dev[i] = host[i];
        dev[i].a = to_gpu(a, sizeof(float) * m * k);
        dev[i].b = to_gpu(b, sizeof(float) * k * n);
        dev[i].c = to_gpu(c, sizeof(float) * m * n);
    }
    cpu->gemm_batch(host, count);
    gpu->gemm_batch(dev, count);
    for (int i = 0; i < count; i++) {
        char label[96];
        snprintf(label, sizeof label, "%s, call %d", what, i);
        compare_gpu(label, dev[i].c, host[i].c, (long)host[i].m * host[i].n, KERNEL_TOL);
        gpu->release((void *)dev[i].a), gpu->release((void *)dev[i].b), gpu->release(dev[i].c);
        free((void *)host[i].a), free((void *)host[i].b), free(host[i].c);
    }
    free(host);
    free(dev);
}

// A batch on the GPU against the same calls on the CPU: mixed shapes (one launch each), then
// runs of one shape (one batched launch per run: four tall products, then three wide ones).
static void test_gemm_batch(void) {
    static const int shapes[][5] = {{0, 0, 70, 33, 40}, {1, 0, 33, 64, 90}, {0, 1, 1, 300, 77},
                                    {0, 0, 48, 48, 48}, {0, 0, 48, 48, 48}, {0, 0, 48, 48, 48},
                                    {0, 0, 48, 48, 48}, {1, 1, 20, 90, 31}, {1, 1, 20, 90, 31},
                                    {1, 1, 20, 90, 31}};
    static const float betas[2] = {1.0f, 1.0f};
    gemm_batch_case(shapes, (int)(sizeof shapes / sizeof shapes[0]), 0.5f, betas, "gemm_batch");
    check_no_cuda_error();
}

// Products of one shape whose matrices sit in one allocation: at one stride (the optimizer's
// slots; B shared at stride 0, like its identity), the strided-batch path of gemm_batch; then
// with one slot moved (uneven), the path with addresses on the device.
static void gemm_slots_case(int uneven) {
    enum { COUNT = 5, M = 24, N = 24, K = 24, SLOT = 700 };   // slots wider than a matrix
    long total = (long)COUNT * SLOT + 64;
    float *a = rand_floats(total), *b = rand_floats((long)K * N), *c = rand_floats(total);
    float *ga = to_gpu(a, sizeof(float) * total), *gb = to_gpu(b, sizeof(float) * K * N);
    float *gc = to_gpu(c, sizeof(float) * total);
    GemmCall host[COUNT], dev[COUNT];
    for (int i = 0; i < COUNT; i++) {
        long at = (long)i * SLOT + (uneven && i == 2 ? 37 : 0);
        host[i] = (GemmCall){0, 1, M, N, K, 0.9f, a + at, K, b, K, -0.5f, c + at, N};
        dev[i] = (GemmCall){0, 1, M, N, K, 0.9f, ga + at, K, gb, K, -0.5f, gc + at, N};
    }
    cpu->gemm_batch(host, COUNT);
    gpu->gemm_batch(dev, COUNT);
    compare_gpu(uneven ? "gemm_batch, uneven slots" : "gemm_batch, strided slots", gc, c, total, KERNEL_TOL);
    gpu->release(ga), gpu->release(gb), gpu->release(gc);
    free(a), free(b), free(c);
}

static void test_gemm_batch_strided(void) {
    gemm_slots_case(0);
    gemm_slots_case(1);
    check_no_cuda_error();
}

static void test_gemm_tf32_bf16(void) {
    char reason[256];
    CHECK(backend_cuda_set_precision("tf32", reason, sizeof reason) == 0, "tf32: %s", reason);
    CHECK(strcmp(backend_cuda_precision(), "tf32") == 0, "precision should read tf32");
    for (int ta = 0; ta <= 1; ta++) gemm_case(ta, 1 - ta, 128, 96, 256, 1.0f, 0.5f, TF32_TOL);
    CHECK(backend_cuda_set_precision("bf16", reason, sizeof reason) == 0, "bf16: %s", reason);
    for (int ta = 0; ta <= 1; ta++) gemm_case(ta, ta, 128, 96, 256, 1.0f, 0.0f, BF16_TOL);
    CHECK(backend_cuda_set_precision("fp16", reason, sizeof reason) != 0 && strstr(reason, "fp16"),
          "an unknown precision should be refused by name");
    CHECK(backend_cuda_set_precision("fp32", reason, sizeof reason) == 0, "fp32: %s", reason);
    CHECK(strstr(gpu->describe(), "fp32") != NULL, "describe() should name the precision: %s", gpu->describe());
    check_no_cuda_error();
}

// ---- one-row products by gemv.cu ------------------------------------------------------------

static void test_generate_matches_cpu(void);   // decoding against the CPU (below)

// y(n) = alpha·x(k)·Wᵀ + beta·y with W (n × ldw) and x shifted by `shift` floats from their
// allocation (1: not 16-byte aligned, the scalar path); beta = 0 over NaN in y.
static void gemv_case(int n, int k, int ldw, int shift, float alpha, float beta, double tol) {
    long nw = (long)n * ldw + shift;
    float *w = rand_floats(nw), *x = rand_floats(k + shift), *y = rand_floats(n);
    float *gy = beta == 0.0f ? nan_floats(n) : copy_floats(y, n);
    float *dw = to_gpu(w, sizeof(float) * nw), *dx = to_gpu(x, sizeof(float) * (k + shift));
    float *dy = to_gpu(gy, sizeof(float) * n);
    cpu->gemm(0, 1, 1, n, k, alpha, x + shift, k, w + shift, ldw, beta, y, n);
    gpu->gemm(0, 1, 1, n, k, alpha, dx + shift, k, dw + shift, ldw, beta, dy, n);
    char what[112];
    snprintf(what, sizeof what, "gemv n=%d k=%d ldw=%d shift=%d beta=%g (%s)", n, k, ldw, shift, beta,
             backend_cuda_precision());
    compare_gpu(what, dy, y, n, tol);
    gpu->release(dw); gpu->release(dx); gpu->release(dy);
    free(w); free(x); free(y); free(gy);
}

// Seven one-row products of different shapes (two launches of the GEMV kernel) among two that
// it leaves to cuBLAS, in one gemm_batch.
static void gemv_batch_case(void) {
    static const int shapes[][5] = {{0, 1, 1, 96, 64}, {0, 1, 1, 32, 64}, {0, 1, 5, 40, 24}, {0, 1, 1, 32, 64},
                                    {0, 1, 1, 200, 45}, {0, 1, 1, 768, 192}, {0, 1, 5, 40, 24}, {0, 1, 1, 17, 8},
                                    {0, 1, 1, 1000, 256}};
    static const float betas[2] = {0.0f, 1.0f};
    gemm_batch_case(shapes, (int)(sizeof shapes / sizeof shapes[0]), 0.8f, betas, "gemm_batch with fused on");
}

// With fused on: one-row products (float4 and scalar paths, a head-sized one, a batch) against
// the CPU; in tf32 still within fp32's bound (so they did not go to cuBLAS's tensor cores);
// decoding, recorded as a graph, against the CPU. Other products are cuBLAS's as before.
static void test_gemv(void) {
    char reason[256];
    const char *was = backend_cuda_fused();
    CHECK(backend_cuda_set_fused("on", reason, sizeof reason) == 0 && strcmp(backend_cuda_fused(), "on") == 0,
          "fused on: %s", reason);
    CHECK(backend_cuda_set_fused("fast", reason, sizeof reason) != 0 && strstr(reason, "fast"),
          "an unknown fused setting should be refused by name");
    gemv_case(300, 64, 64, 0, 0.7f, 0.0f, KERNEL_TOL);      // float4
    gemv_case(77, 45, 48, 0, 1.0f, 1.3f, KERNEL_TOL);       // k not a multiple of 4
    gemv_case(33, 64, 66, 0, 1.0f, 0.0f, KERNEL_TOL);       // row stride not a multiple of 4
    gemv_case(50, 64, 64, 1, 1.0f, 1.0f, KERNEL_TOL);       // misaligned: scalar
    gemv_case(32768, 768, 768, 0, 1.0f, 0.0f, KERNEL_TOL);  // a GPT-2-sized head
    gemv_case(3, 3072, 3072, 0, 1.0f, 1.0f, KERNEL_TOL);    // long rows, few of them
    // few rows for the card: 8 warps a row (192: a factorized GPT-2's down projection B), the
    // last chunk short; 8 a row on the scalar paths (k odd; misaligned)
    gemv_case(192, 3072, 3072, 0, 1.0f, 0.0f, KERNEL_TOL);
    gemv_case(40, 1030, 1030, 0, 1.0f, 1.0f, KERNEL_TOL);
    gemv_case(20, 2000, 2004, 1, 0.5f, 1.0f, KERNEL_TOL);
    gemm_case(0, 1, 1, 71, 45, 0.7f, 0.0f, KERNEL_TOL);     // through gemm_case's padded strides
    gemv_batch_case();
    CHECK(backend_cuda_set_precision("tf32", reason, sizeof reason) == 0, "tf32: %s", reason);
    gemv_case(512, 1024, 1024, 0, 1.0f, 0.0f, KERNEL_TOL);  // tf32 would miss 1e-5 at k = 1024
    CHECK(backend_cuda_set_precision("fp32", reason, sizeof reason) == 0, "fp32: %s", reason);
    test_generate_matches_cpu();
    CHECK(backend_cuda_set_fused(was, reason, sizeof reason) == 0, "fused back to %s: %s", was, reason);
    check_no_cuda_error();
}

// ---- a decoded token's products with their step folded in -------------------------------------

// count products (rows n[i]; beta 0 over NaN, then 1, alternately) of x̂ = step(x), x of k
// floats, by row_products: against the CPU; and when `exact`, against the GPU's own step
// kernel followed by its gemm of x̂, to the bit — gemv.cu folds in the very same arithmetic.
static void row_products_case(RowStep step, int k, const int *n, int count, int exact) {
    float *x = rand_floats(k), *aux = rand_floats(k), host_rstd;   // aux: the gain, or SwiGLU's up
    float *xhat = malloc(sizeof(float) * k), *poison = nan_floats(k);
    float *gx = to_gpu(x, sizeof(float) * k), *gaux = to_gpu(aux, sizeof(float) * k);
    float *gxhat = to_gpu(poison, sizeof(float) * k), *grstd = to_gpu(poison, sizeof(float));
    const float *gain = step == ROW_RMSNORM ? aux : NULL, *up = step == ROW_SWIGLU ? aux : NULL;
    RowInput host_in = {step, x, gain, up, 1e-5f, k, xhat, &host_rstd};
    RowInput dev_in = {step, gx, gain ? gaux : NULL, up ? gaux : NULL, 1e-5f, k, gxhat, grstd};
    RowProduct host[8], dev[8];
    float *w[8], *dw[8], *y[8], *dy[8], *dy_apart[8];
    for (int i = 0; i < count; i++) {
        float beta = (float)(i % 2);
        w[i] = rand_floats((long)n[i] * k), y[i] = rand_floats(n[i]);
        float *start = beta == 0.0f ? nan_floats(n[i]) : copy_floats(y[i], n[i]);
        dw[i] = to_gpu(w[i], sizeof(float) * n[i] * k);
        dy[i] = to_gpu(start, sizeof(float) * n[i]), dy_apart[i] = to_gpu(start, sizeof(float) * n[i]);
        host[i] = (RowProduct){y[i], w[i], n[i], beta}, dev[i] = (RowProduct){dy[i], dw[i], n[i], beta};
        free(start);
    }
    cpu->row_products(&host_in, host, count);
    gpu->row_products(&dev_in, dev, count);
    if (exact && step == ROW_RMSNORM) gpu->rmsnorm_forward(gxhat, grstd, gx, gaux, 1, k, 1e-5f);
    if (exact && step == ROW_SWIGLU) gpu->swiglu_forward(gxhat, gx, gaux, k);
    for (int i = 0; i < count; i++) {
        char what[128];
        snprintf(what, sizeof what, "row_products %s k=%d, product %d of %d (n=%d, beta=%d), fused %s, pdl %s",
                 step == ROW_RMSNORM ? "rmsnorm" : "swiglu", k, i + 1, count, n[i], i % 2, backend_cuda_fused(),
                 backend_cuda_pdl());
        compare_gpu(what, dy[i], y[i], n[i], KERNEL_TOL);
        if (exact) {
            gpu->gemm(0, 1, 1, n[i], k, 1.0f, gxhat, k, dw[i], k, host[i].beta, dy_apart[i], n[i]);
            float *apart = from_gpu(dy_apart[i], n[i]);
            strncat(what, ": fused against apart", sizeof what - strlen(what) - 1);
            compare_gpu(what, dy[i], apart, n[i], 0);
            free(apart);
        }
        gpu->release(dw[i]), gpu->release(dy[i]), gpu->release(dy_apart[i]);
        free(w[i]), free(y[i]);
    }
    gpu->release(gx), gpu->release(gaux), gpu->release(gxhat), gpu->release(grstd);
    free(x), free(aux), free(xhat), free(poison);
}

// RMSNorm before q/k/v (float4 loads; beta 0 and 1), SwiGLU before a down projection, a short
// odd k (scalar loads) over five products (two launches), an x̂ longer than shared memory
// holds (the step runs apart), rows too few for the card (several warps a row: a factorized
// down projection's B; an odd k), and a GPT-2-sized head; with fused on (one kernel, and equal to the
// unfused kernels to the bit) and off (the step's kernel, then cuBLAS), with pdl off and on.
static void test_row_products(void) {
    char why[256];
    const char *was_fused = backend_cuda_fused(), *was_pdl = backend_cuda_pdl();
    static const int qkv[3] = {768, 192, 192}, down[1] = {768}, odd[5] = {33, 7, 64, 1, 100}, wide[1] = {40};
    static const int head[1] = {32768}, factor[1] = {192}, few[2] = {40, 24};
    for (int fused = 1; fused >= 0; fused--)
        for (int pdl = 0; pdl <= 1; pdl++) {
            CHECK(backend_cuda_set_fused(fused ? "on" : "off", why, sizeof why) == 0, "fused: %s", why);
            CHECK(backend_cuda_set_pdl(pdl ? "on" : "off", why, sizeof why) == 0, "pdl: %s", why);
            row_products_case(ROW_RMSNORM, 768, qkv, 3, fused);
            row_products_case(ROW_SWIGLU, 2048, down, 1, fused);
            row_products_case(ROW_RMSNORM, 45, odd, 5, fused);
            row_products_case(ROW_SWIGLU, 16384, wide, 1, 0);
            row_products_case(ROW_SWIGLU, 3072, factor, 1, fused);
            row_products_case(ROW_RMSNORM, 1030, few, 2, fused);
        }
    CHECK(backend_cuda_set_fused("on", why, sizeof why) == 0, "fused on: %s", why);
    row_products_case(ROW_RMSNORM, 768, head, 1, 1);
    CHECK(backend_cuda_set_fused(was_fused, why, sizeof why) == 0, "fused back to %s: %s", was_fused, why);
    CHECK(backend_cuda_set_pdl(was_pdl, why, sizeof why) == 0, "pdl back to %s: %s", was_pdl, why);
    check_no_cuda_error();
}

// ---- embedding, RMSNorm, RoPE ------------------------------------------------------------------

// The backward groups positions by token on the host and adds each group in order: the CPU's
// sums to the bit (tolerance 0), small and with many repeats across several column blocks.
static void embedding_case(int n, int dim, int vocab) {
    int32_t *tok = rand_ids(n, vocab);
    float *table = rand_floats((long)vocab * dim), *dout = rand_floats((long)n * dim);
    float *out = malloc(sizeof(float) * n * dim), *dtable = rand_floats((long)vocab * dim);
    float *poison = nan_floats((long)n * dim);
    int32_t *dtok = to_gpu(tok, sizeof(int32_t) * n);
    float *dtab = to_gpu(table, sizeof(float) * vocab * dim), *dout_d = to_gpu(dout, sizeof(float) * n * dim);
    float *dout_f = to_gpu(poison, sizeof(float) * n * dim), *ddtable = to_gpu(dtable, sizeof(float) * vocab * dim);
    cpu->embedding_forward(out, tok, table, n, dim);
    gpu->embedding_forward(dout_f, dtok, dtab, n, dim);
    compare_gpu("embedding_forward", dout_f, out, (long)n * dim, 0);
    cpu->embedding_backward(dtable, dout, tok, n, dim);
    gpu->embedding_backward(ddtable, dout_d, dtok, n, dim);
    compare_gpu("embedding_backward (adds)", ddtable, dtable, (long)vocab * dim, 0);
    gpu->release(dtok); gpu->release(dtab); gpu->release(dout_d); gpu->release(dout_f); gpu->release(ddtable);
    free(tok); free(table); free(dout); free(out); free(dtable); free(poison);
}

static void test_embedding(void) {
    embedding_case(50, 67, 23);       // repeated tokens collide in the backward
    embedding_case(3000, 300, 40);    // ~75 positions per token, three blocks of columns
    embedding_case(1, 8, 5);
    embedding_case(16384, 96, 32768);   // a GPT-2 step's tokens: most distinct, some repeated
    check_no_cuda_error();
}

static void rmsnorm_case(int n, int dim, float scale, double dgain_tol) {
    long nd = (long)n * dim;
    float *x = rand_floats(nd), *gain = rand_floats(dim), *dy = rand_floats(nd);
    float *out = malloc(sizeof(float) * nd), *rstd = malloc(sizeof(float) * n);
    float *dx = rand_floats(nd), *dgain = rand_floats(dim);
    float *px = nan_floats(nd), *pr = nan_floats(n);
    for (long i = 0; i < nd; i++) x[i] *= scale;
    float *gx = to_gpu(x, sizeof(float) * nd), *gg = to_gpu(gain, sizeof(float) * dim), *gdy = to_gpu(dy, sizeof(float) * nd);
    float *gout = to_gpu(px, sizeof(float) * nd), *grstd = to_gpu(pr, sizeof(float) * n);
    float *gdx = to_gpu(dx, sizeof(float) * nd), *gdg = to_gpu(dgain, sizeof(float) * dim);
    cpu->rmsnorm_forward(out, rstd, x, gain, n, dim, 1e-5f);
    gpu->rmsnorm_forward(gout, grstd, gx, gg, n, dim, 1e-5f);
    char what[64];
    snprintf(what, sizeof what, "rmsnorm_forward n=%d dim=%d scale=%g", n, dim, scale);
    compare_gpu(what, gout, out, nd, KERNEL_TOL);
    compare_gpu("rmsnorm rstd", grstd, rstd, n, KERNEL_TOL);
    cpu->rmsnorm_backward(dx, dgain, dy, x, gain, rstd, n, dim);
    gpu->rmsnorm_backward(gdx, gdg, gdy, gx, gg, grstd, n, dim);
    snprintf(what, sizeof what, "rmsnorm_backward dx n=%d dim=%d", n, dim);
    compare_gpu(what, gdx, dx, nd, KERNEL_TOL);
    snprintf(what, sizeof what, "rmsnorm_backward dgain n=%d dim=%d", n, dim);
    compare_gpu(what, gdg, dgain, dim, dgain_tol);
    gpu->release(gx); gpu->release(gg); gpu->release(gdy); gpu->release(gout); gpu->release(grstd);
    gpu->release(gdx); gpu->release(gdg);
    free(x); free(gain); free(dy); free(out); free(rstd); free(dx); free(dgain); free(px); free(pr);
}

static void test_rmsnorm(void) {
    rmsnorm_case(33, 300, 1, KERNEL_TOL);   // one chunk of rows for dgain; dim not a multiple of the block
    rmsnorm_case(200, 64, 1, KERNEL_TOL);   // several chunks: the partial-sum path
    rmsnorm_case(1, 5, 1, KERNEL_TOL);
    rmsnorm_case(8, 768, 1e20f, KERNEL_TOL);   // x² overflows float: both sum it in double
    // more chunks of 64 rows than gridDim.y holds (65 535): longer chunks. dgain sums 4.2 M
    // rows, the CPU's in float one after another: its own error is ~1e-4
    rmsnorm_case(65535 * 64 + 100, 3, 1, 1e-3);
    check_no_cuda_error();
}

static void rope_case(int B, int T, int H, int hd, int pos0) {
    long n = (long)B * T * H * hd;
    float theta = 10000.0f;
    float *in = rand_floats(n), *dy = rand_floats(n), *din = rand_floats(n);
    float *out = malloc(sizeof(float) * n), *poison = nan_floats(n);
    float *gin = to_gpu(in, sizeof(float) * n), *gout = to_gpu(poison, sizeof(float) * n);
    float *gdy = to_gpu(dy, sizeof(float) * n), *gdin = to_gpu(poison, sizeof(float) * n);
    char what[80];
    cpu->rope_forward(out, in, B, T, H, hd, pos0, theta);
    gpu->rope_forward(gout, gin, B, T, H, hd, pos0, theta);
    snprintf(what, sizeof what, "rope_forward pos0=%d", pos0);
    compare_gpu(what, gout, out, n, KERNEL_TOL);
    gpu->rope_forward(gin, gin, B, T, H, hd, pos0, theta);   // in place
    snprintf(what, sizeof what, "rope_forward in place pos0=%d", pos0);
    compare_gpu(what, gin, out, n, KERNEL_TOL);
    cpu->rope_backward(din, dy, B, T, H, hd, pos0, theta);
    gpu->rope_backward(gdin, gdy, B, T, H, hd, pos0, theta);
    snprintf(what, sizeof what, "rope_backward (writes) pos0=%d", pos0);
    compare_gpu(what, gdin, din, n, KERNEL_TOL);
    gpu->rope_backward(gdy, gdy, B, T, H, hd, pos0, theta);   // in place
    snprintf(what, sizeof what, "rope_backward in place pos0=%d", pos0);
    compare_gpu(what, gdy, din, n, KERNEL_TOL);
    gpu->release(gin); gpu->release(gout); gpu->release(gdy); gpu->release(gdin);
    free(in); free(dy); free(din); free(out); free(poison);
}

static void test_rope(void) {
    rope_case(2, 7, 3, 16, 0);
    rope_case(1, 5, 2, 64, 4000);   // large positions: the angle reduction in double
    check_no_cuda_error();
}

// ---- attention --------------------------------------------------------------------------------

// The output and the gradients against the CPU. When the GPU keeps the softmax probabilities
// (gemm and rows modes) they are compared too, and its backward starts from the CPU's; in flash
// mode it keeps its own state (the rows' log-sum-exp), so each side's backward runs from its
// own forward.
static void attention_case(int B, int Tq, int Tk, int H, int KVH, int hd, double tol) {
    long nq = (long)B * Tq * H * hd, nk = (long)B * Tk * KVH * hd, na = (long)B * H * Tq * Tk;
    long ns = (long)gpu->attention_saved_floats(B, H, Tq, Tk, hd);
    int probabilities = ns == na;
    float *q = rand_floats(nq), *k = rand_floats(nk), *v = rand_floats(nk), *dout = rand_floats(nq);
    for (long i = 0; i < nq; i++) q[i] *= 3.0f;   // peakier softmax than uniform inputs give
    float *out = malloc(sizeof(float) * nq), *att = malloc(sizeof(float) * na), *scratch = malloc(sizeof(float) * na);
    float *dq = rand_floats(nq), *dk = rand_floats(nk), *dv = rand_floats(nk), *poison = nan_floats(na > nq ? na : nq);
    float *gq = to_gpu(q, sizeof(float) * nq), *gk = to_gpu(k, sizeof(float) * nk), *gv = to_gpu(v, sizeof(float) * nk);
    float *gdout = to_gpu(dout, sizeof(float) * nq), *gout = to_gpu(poison, sizeof(float) * nq);
    float *gatt = to_gpu(poison, sizeof(float) * ns), *gscratch = to_gpu(poison, sizeof(float) * ns);
    float *gdq = to_gpu(dq, sizeof(float) * nq), *gdk = to_gpu(dk, sizeof(float) * nk), *gdv = to_gpu(dv, sizeof(float) * nk);
    char what[160], shape[96];
    snprintf(shape, sizeof shape, "(%s) B=%d Tq=%d Tk=%d H=%d KVH=%d hd=%d", backend_cuda_attention(), B, Tq, Tk, H,
             KVH, hd);
    cpu->attention_forward(out, att, q, k, v, B, Tq, Tk, H, KVH, hd);
    gpu->attention_forward(gout, gatt, gq, gk, gv, B, Tq, Tk, H, KVH, hd);
    snprintf(what, sizeof what, "attention_forward out %s", shape);
    compare_gpu(what, gout, out, nq, tol);
    if (probabilities) {
        snprintf(what, sizeof what, "attention_forward att %s", shape);
        compare_gpu(what, gatt, att, na, KERNEL_TOL);
        gpu->upload(gatt, att, sizeof(float) * na);   // the backward from identical probabilities
    }
    cpu->attention_backward(dq, dk, dv, scratch, dout, out, att, q, k, v, B, Tq, Tk, H, KVH, hd);
    gpu->attention_backward(gdq, gdk, gdv, gscratch, gdout, gout, gatt, gq, gk, gv, B, Tq, Tk, H, KVH, hd);
    const char *names[3] = {"dq", "dk", "dv"};
    float *gots[3] = {gdq, gdk, gdv}, *wants[3] = {dq, dk, dv};
    long ns3[3] = {nq, nk, nk};
    for (int i = 0; i < 3; i++) {
        snprintf(what, sizeof what, "attention_backward %s (adds) %s", names[i], shape);
        compare_gpu(what, gots[i], wants[i], ns3[i], tol);
    }
    float *bufs[] = {gq, gk, gv, gdout, gout, gatt, gdq, gdk, gdv, gscratch};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) gpu->release(bufs[i]);
    free(q); free(k); free(v); free(dout); free(out); free(att); free(scratch);
    free(dq); free(dk); free(dv); free(poison);
}

// The default mode (strided-batched cuBLAS products and two row kernels), then the first
// simple kernels ("rows"), each on the same shapes.
static void test_attention(void) {
    char why[256];
    const char *modes[2] = {"gemm", "rows"};
    for (int i = 0; i < 2; i++) {
        CHECK(backend_cuda_set_attention(modes[i], why, sizeof why) == 0, "%s: %s", modes[i], why);
        attention_case(2, 13, 13, 4, 2, 16, KERNEL_TOL);    // grouped KV heads
        attention_case(1, 3, 10, 3, 1, 40, KERNEL_TOL);     // Tq < Tk (KV cache), one kv head for three query heads
        attention_case(2, 70, 70, 2, 2, 64, KERNEL_TOL);    // more keys than a block's threads, hd = 64
        attention_case(1, 1, 150, 4, 4, 32, KERNEL_TOL);    // batch-1 decode
        attention_case(1, 40, 40, 2, 1, 160, KERNEL_TOL);   // hd above a block's threads
        attention_case(3, 33, 33, 6, 3, 8, KERNEL_TOL);     // several batches of grouped heads
        attention_case(1, 1024, 1024, 2, 1, 64, KERNEL_TOL);   // GPT-2's context: 8 keys a thread
    }
    CHECK(backend_cuda_set_attention("gemm", why, sizeof why) == 0, "gemm: %s", why);
    CHECK(strcmp(backend_cuda_attention(), "gemm") == 0, "the mode should read back as gemm, not %s",
          backend_cuda_attention());
    check_no_cuda_error();
}

static void model_case(int rank, double tol);

// The flash kernels, then the whole model and decoding with them; the default (gemm) after.
static void test_flash_attention(void) {
    char why[256];
    CHECK(backend_cuda_set_attention("flash", why, sizeof why) == 0, "flash: %s", why);
    CHECK(gpu->attention_saved_floats(2, 4, 13, 13, 16) == 2 * 4 * 13, "flash mode should keep one value per query row");
    CHECK(gpu->attention_saved_floats(1, 2, 8, 8, 264) == 1 * 2 * 8 * 8, "hd above 256 should fall back to gemm");
    attention_case(2, 13, 13, 4, 2, 16, KERNEL_TOL);     // grouped KV heads
    attention_case(1, 3, 10, 3, 1, 40, KERNEL_TOL);      // Tq < Tk, one kv head for three query heads
    attention_case(2, 70, 70, 2, 2, 64, KERNEL_TOL);     // a tail of the last block of query rows
    attention_case(1, 1, 150, 4, 4, 32, KERNEL_TOL);     // batch-1 decode
    attention_case(1, 40, 40, 2, 1, 160, KERNEL_TOL);    // hd needing 5 values a lane
    attention_case(1, 9, 9, 2, 2, 264, KERNEL_TOL);      // hd beyond flash: the gemm mode
    attention_case(1, 1024, 1024, 2, 1, 64, KERNEL_TOL); // GPT-2's context: many tiles of keys and queries
    model_case(0, MODEL_TOL);
    model_case(-1, MODEL_TOL);
    test_generate_matches_cpu();
    CHECK(backend_cuda_set_attention("gemm", why, sizeof why) == 0, "gemm: %s", why);
    CHECK(backend_cuda_set_attention("tiled", why, sizeof why) != 0 && strstr(why, "tiled"), "an unknown mode is refused");
    check_no_cuda_error();
}

// Flash mode at bf16 precision: the tensor-core kernels (kernels/cuda/flash_tc.cuh, also run on
// the CPU by tests/test_cuda_emu.cpp) where hd is a multiple of 16 up to 128, the fp32 flash
// kernels otherwise; kernels at bf16's bound, then the whole model. The model's bound (5e-2 on
// the loss and on each gradient tensor, its GEMMs in bf16 too) was set without a GPU: bf16
// rounds to 2^-8 relative, and a gradient passes through about ten products.
#define BF16_MODEL_TOL 5e-2
// An attention case that must (tc = 1) or must not (tc = 0) run the tensor-core kernels: their
// bound would pass the fp32 flash kernels too, so a dispatch that fell back would go unseen.
static void flash_tc_case(int B, int Tq, int Tk, int H, int KVH, int hd, int tc) {
    long before = backend_cuda_flash_tc_calls();
    attention_case(B, Tq, Tk, H, KVH, hd, BF16_TOL);
    long calls = backend_cuda_flash_tc_calls() - before;
    CHECK(tc ? calls >= 2 : calls == 0, "hd=%d: %ld tensor-core calls (forward and backward expected: %s)", hd, calls,
          tc ? "yes" : "no");
}

static void test_flash_tc_attention(void) {
    char why[256];
    CHECK(backend_cuda_set_precision("bf16", why, sizeof why) == 0, "precision bf16: %s", why);
    CHECK(backend_cuda_set_attention("flash", why, sizeof why) == 0, "attention flash: %s", why);
    flash_tc_case(2, 13, 13, 4, 2, 16, 1);      // grouped KV heads, one tile
    flash_tc_case(1, 3, 10, 3, 1, 48, 1);       // Tq < Tk, three query heads on one kv head
    flash_tc_case(2, 70, 70, 2, 2, 64, 1);      // a tail past the first tile each way
    flash_tc_case(1, 1, 150, 4, 4, 32, 1);      // one query row over three key tiles
    flash_tc_case(1, 40, 40, 2, 1, 128, 1);     // the largest tensor-core head size
    flash_tc_case(1, 100, 200, 2, 1, 80, 1);    // queries start mid-cache
    flash_tc_case(3, 65, 65, 8, 2, 96, 1);      // hd 96, four query heads a kv head, a row past a tile
    flash_tc_case(1, 40, 40, 2, 1, 40, 0);      // hd not a multiple of 16: the fp32 kernels
    flash_tc_case(2, 1024, 1024, 12, 12, 64, 1);   // GPT-2's heads and context
    long before = backend_cuda_flash_tc_calls();
    model_case(0, BF16_MODEL_TOL);
    model_case(-1, BF16_MODEL_TOL);
    CHECK(backend_cuda_flash_tc_calls() > before, "the whole model's attention took the tensor-core kernels");
    CHECK(backend_cuda_set_attention("gemm", why, sizeof why) == 0, "attention gemm: %s", why);
    CHECK(backend_cuda_set_precision("fp32", why, sizeof why) == 0, "precision fp32: %s", why);
    check_no_cuda_error();
}

// ---- SwiGLU, loss, elementwise, reductions, AdamW -------------------------------------------------

static void test_swiglu(void) {
    long n = 100003;
    float *gate = rand_floats(n), *up = rand_floats(n), *dy = rand_floats(n);
    for (long i = 0; i < n; i++) gate[i] *= 6.0f;   // both tails of the sigmoid
    float *out = malloc(sizeof(float) * n), *dgate = rand_floats(n), *dup = rand_floats(n), *poison = nan_floats(n);
    float *gg = to_gpu(gate, sizeof(float) * n), *gu = to_gpu(up, sizeof(float) * n), *gdy = to_gpu(dy, sizeof(float) * n);
    float *gout = to_gpu(poison, sizeof(float) * n), *gdg = to_gpu(poison, sizeof(float) * n), *gdu = to_gpu(poison, sizeof(float) * n);
    cpu->swiglu_forward(out, gate, up, n);
    gpu->swiglu_forward(gout, gg, gu, n);
    compare_gpu("swiglu_forward", gout, out, n, KERNEL_TOL);
    cpu->swiglu_backward(dgate, dup, dy, gate, up, n);
    gpu->swiglu_backward(gdg, gdu, gdy, gg, gu, n);
    compare_gpu("swiglu_backward dgate (writes)", gdg, dgate, n, KERNEL_TOL);
    compare_gpu("swiglu_backward dup (writes)", gdu, dup, n, KERNEL_TOL);
    float *bufs[] = {gg, gu, gdy, gout, gdg, gdu};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) gpu->release(bufs[i]);
    free(gate); free(up); free(dy); free(out); free(dgate); free(dup); free(poison);
    check_no_cuda_error();
}

// masked: every third logit of the first row but its target is −∞ (a class ruled out).
static void xent_case(int n, int V, int masked) {
    long nv = (long)n * V;
    float *logits = rand_floats(nv);
    for (long i = 0; i < nv; i++) logits[i] *= 8.0f;
    int32_t *targets = rand_ids(n, V);
    for (int j = 0; masked && j < V; j += 3)
        if (j != targets[0]) logits[j] = -INFINITY;
    float *losses = malloc(sizeof(float) * n), *dl = malloc(sizeof(float) * nv);
    float *pl = nan_floats(n), *pd = nan_floats(nv);
    float *gl = to_gpu(logits, sizeof(float) * nv), *glosses = to_gpu(pl, sizeof(float) * n), *gdl = to_gpu(pd, sizeof(float) * nv);
    int32_t *gt = to_gpu(targets, sizeof(int32_t) * n);
    char what[64];
    float dscale = 0.37f;
    // losses only
    cpu->softmax_xent_forward(losses, NULL, logits, targets, n, V, 0.0f);
    gpu->softmax_xent_forward(glosses, NULL, gl, gt, n, V, 0.0f);
    snprintf(what, sizeof what, "softmax_xent losses V=%d", V);
    compare_gpu(what, glosses, losses, n, KERNEL_TOL);
    // separate dlogits
    gpu->upload(glosses, pl, sizeof(float) * n);
    cpu->softmax_xent_forward(losses, dl, logits, targets, n, V, dscale);
    gpu->softmax_xent_forward(glosses, gdl, gl, gt, n, V, dscale);
    snprintf(what, sizeof what, "softmax_xent dlogits V=%d", V);
    compare_gpu(what, gdl, dl, nv, KERNEL_TOL);
    compare_gpu(what, glosses, losses, n, KERNEL_TOL);
    // in place: dlogits over the logits
    gpu->upload(glosses, pl, sizeof(float) * n);
    gpu->softmax_xent_forward(glosses, gl, gl, gt, n, V, dscale);
    snprintf(what, sizeof what, "softmax_xent in place V=%d", V);
    compare_gpu(what, gl, dl, nv, KERNEL_TOL);
    compare_gpu(what, glosses, losses, n, KERNEL_TOL);
    gpu->release(gl); gpu->release(glosses); gpu->release(gdl); gpu->release(gt);
    free(logits); free(targets); free(losses); free(dl); free(pl); free(pd);
}

static void test_softmax_xent(void) {
    xent_case(9, 1000, 0);
    xent_case(4, 5, 0);        // fewer classes than threads
    xent_case(3, 32768, 0);    // a GPT-2-sized vocabulary
    xent_case(2, 1000, 1);     // −∞ logits: a thread may see nothing else
    check_no_cuda_error();
}

static void test_add_scale(void) {
    long n = 100003;
    float *x = rand_floats(n), *y = rand_floats(n);
    float *gx = to_gpu(x, sizeof(float) * n), *gy = to_gpu(y, sizeof(float) * n);
    cpu->add(y, x, n);
    gpu->add(gy, gx, n);
    compare_gpu("add", gy, y, n, 0);
    cpu->scale(y, -0.3f, n);
    gpu->scale(gy, -0.3f, n);
    compare_gpu("scale", gy, y, n, 0);
    cpu->axpby(y, 0.7f, x, -1.3f, n);
    gpu->axpby(gy, 0.7f, gx, -1.3f, n);
    compare_gpu("axpby", gy, y, n, 0);
    float *poison = nan_floats(n);
    gpu->upload(gy, poison, sizeof(float) * n);
    cpu->axpby(y, 2.5f, x, 0.0f, n);
    gpu->axpby(gy, 2.5f, gx, 0.0f, n);
    compare_gpu("axpby, beta 0 ignores y", gy, y, n, 0);
    gpu->release(gx); gpu->release(gy);
    free(x); free(y); free(poison);
    check_no_cuda_error();
}

// A column block of a wider matrix: packed (beta 0) then accumulated, as the shared-input
// linears do with their B factors and gradients.
static void test_add_matrix(void) {
    int rows = 517, cols = 70, ldx = 90, ldy = 200;
    float *x = rand_floats((long)rows * ldx), *y = rand_floats((long)rows * ldy);
    float *gx = to_gpu(x, sizeof(float) * rows * ldx), *gy = to_gpu(y, sizeof(float) * rows * ldy);
    cpu->add_matrix(y + 33, ldy, x, ldx, rows, cols, 0.0f);
    gpu->add_matrix(gy + 33, ldy, gx, ldx, rows, cols, 0.0f);
    cpu->add_matrix(y + 33, ldy, x, ldx, rows, cols, -0.7f);
    gpu->add_matrix(gy + 33, ldy, gx, ldx, rows, cols, -0.7f);
    compare_gpu("add_matrix", gy, y, (long)rows * ldy, 0);
    gpu->release(gx); gpu->release(gy);
    free(x); free(y);
    check_no_cuda_error();
}

static void test_sum_sumsq(void) {
    static const long sizes[] = {1, 1000, 3000017};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        long n = sizes[s];
        float *x = rand_floats(n);
        float *gx = to_gpu(x, sizeof(float) * n);
        double abs_sum = 0;
        for (long i = 0; i < n; i++) abs_sum += fabs(x[i]);
        double want = cpu->sum(x, n), got = gpu->sum(gx, n), again = gpu->sum(gx, n);
        CHECK(fabs(got - want) <= 1e-12 * abs_sum, "sum n=%ld: gpu %.17g, cpu %.17g", n, got, want);
        CHECK(memcmp(&got, &again, sizeof got) == 0, "sum n=%ld is not deterministic: %.17g then %.17g", n, got, again);
        want = cpu->sumsq(x, n);
        got = gpu->sumsq(gx, n);
        again = gpu->sumsq(gx, n);
        CHECK(fabs(got - want) <= 1e-12 * want, "sumsq n=%ld: gpu %.17g, cpu %.17g", n, got, want);
        CHECK(memcmp(&got, &again, sizeof got) == 0, "sumsq n=%ld is not deterministic", n);
        gpu->release(gx);
        free(x);
    }
    CHECK(gpu->sum(NULL, 0) == 0.0 && gpu->sumsq(NULL, 0) == 0.0, "an empty sum is 0");
    check_no_cuda_error();
}

// The batch forms against the CPU (axpby to the bit), and repeatable.
static void test_batches(void) {
    long n[3] = {100003, 17, 3000017};
    float *x[3], *y[3], *gx[3], *gy[3];
    for (int i = 0; i < 3; i++) {
        x[i] = rand_floats(n[i]), y[i] = rand_floats(n[i]);
        gx[i] = to_gpu(x[i], sizeof(float) * n[i]), gy[i] = to_gpu(y[i], sizeof(float) * n[i]);
    }
    AxpbyCall host[3] = {{y[0], 0.3f, x[0], -2.0f, n[0]}, {y[1], 1.5f, y[1], 0.0f, n[1]}, {y[2], -1.0f, x[2], 0.5f, n[2]}};
    AxpbyCall dev[3] = {{gy[0], 0.3f, gx[0], -2.0f, n[0]}, {gy[1], 1.5f, gy[1], 0.0f, n[1]}, {gy[2], -1.0f, gx[2], 0.5f, n[2]}};
    cpu->axpby_batch(host, 3);
    gpu->axpby_batch(dev, 3);
    for (int i = 0; i < 3; i++) compare_gpu("axpby_batch", gy[i], y[i], n[i], 0);
    // the sums: several blocks a vector (at most 32), one block, an empty vector
    const float *gxs[4] = {gx[0], gx[1], gx[2], gx[0]};
    long ns[4] = {n[0], 0, n[2], 5000};
    double got[4], again[4];
    gpu->sumsq_batch(gxs, ns, 4, got);
    gpu->sumsq_batch(gxs, ns, 4, again);
    for (int i = 0; i < 4; i++) {
        double want = cpu->sumsq(i == 3 ? x[0] : x[i], ns[i]);
        CHECK(fabs(got[i] - want) <= 1e-12 * want, "sumsq_batch %d: gpu %.17g, cpu %.17g", i, got[i], want);
        CHECK(memcmp(&got[i], &again[i], sizeof got[i]) == 0, "sumsq_batch %d is not deterministic", i);
    }
    for (int i = 0; i < 3; i++) gpu->release(gx[i]), gpu->release(gy[i]), free(x[i]), free(y[i]);
    check_no_cuda_error();
}

static void test_adamw(void) {
    long n = 10007;
    float *p = rand_floats(n), *g = rand_floats(n), *m = rand_floats(n), *v = rand_floats(n);
    for (long i = 0; i < n; i++) v[i] = v[i] * v[i];   // a second moment is non-negative
    float *gp = to_gpu(p, sizeof(float) * n), *gg = to_gpu(g, sizeof(float) * n);
    float *gm = to_gpu(m, sizeof(float) * n), *gv = to_gpu(v, sizeof(float) * n);
    for (int t = 1; t <= 3; t++) {
        cpu->adamw_update(p, g, m, v, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, t);
        gpu->adamw_update(gp, gg, gm, gv, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, t);
    }
    // the same float operations in the same order (nvcc --fmad=false): expected bit-identical
    compare_gpu("adamw param", gp, p, n, 1e-7);
    compare_gpu("adamw m", gm, m, n, 1e-7);
    compare_gpu("adamw v", gv, v, n, 1e-7);
    gpu->release(gp); gpu->release(gg); gpu->release(gm); gpu->release(gv);
    free(p); free(g); free(m); free(v);
    check_no_cuda_error();
}

// ---- the whole model ----------------------------------------------------------------------------

static ModelConfig micro_config(int rank) {
    // grouped KV heads, hd = 16, a vocabulary that is not a power of two
    return (ModelConfig){.dim = 64, .layers = 2, .heads = 4, .kv_heads = 2, .ffn = 96, .seq = 32, .vocab = 97,
                         .rank = rank, .rank_ratio = 0.25f, .rope_theta = 10000.0f, .norm_eps = 1e-5f, .seed = 11};
}

static float *download_all(const Model *m, const float *dev) {
    float *h = malloc(sizeof(float) * m->n_params);
    m->be->download(h, dev, sizeof(float) * m->n_params);
    return h;
}

// Loss and every gradient within tol of the CPU (MODEL_TOL in fp32).
static void model_case(int rank, double tol) {
    Err err;
    int before = test_failed_checks;
    ModelConfig c = micro_config(rank);
    Model mc, mg;
    CHECK_OK(model_build(&mc, &c, cpu, &err));
    CHECK_OK(model_build(&mg, &c, gpu, &err));
    if (test_failed_checks != before) return;   // (leaks on this path: the test has failed already)
    float *pc = download_all(&mc, mc.params), *pg = download_all(&mg, mg.params);
    compare("model parameters after model_build", pg, pc, (long)mc.n_params, 1e-6);
    int B = 3, T = c.seq;
    int32_t *tok = rand_ids(B * (T + 1), c.vocab);
    float lc = 0, lg = 0;
    model_zero_grad(&mc);
    model_zero_grad(&mg);
    CHECK_OK(model_forward(&mc, tok, B, T, &lc, &err));
    CHECK_OK(model_forward(&mg, tok, B, T, &lg, &err));
    CHECK(fabs(lg - lc) <= tol * lc, "rank %d: loss gpu %.8g, cpu %.8g", rank, lg, lc);
    CHECK_OK(model_backward(&mc, 1.0f, &err));
    CHECK_OK(model_backward(&mg, 1.0f, &err));
    float *gc = download_all(&mc, mc.grads), *gg = download_all(&mg, mg.grads);
    for (int i = 0; i < mc.n_tensors; i++) {
        const TensorDesc *t = &mc.tensors[i];
        char what[96];
        snprintf(what, sizeof what, "rank %d: gradient of %s", rank, t->name);
        compare(what, gg + t->offset, gc + t->offset, (long)t->rows * t->cols, tol);
    }
    free(pc); free(pg); free(gc); free(gg); free(tok);
    model_free(&mc);
    model_free(&mg);
    check_no_cuda_error();
}

static void test_model_forward_backward(void) {
    model_case(0, MODEL_TOL);    // dense
    model_case(-1, MODEL_TOL);   // factorized at rank in/4
}

// Prefill a prompt, then decode tokens one at a time (Tq = 1 < Tk, gemm with m = 1): the
// logits after every token, GPU against CPU.
static void test_generate_matches_cpu(void) {
    Err err;
    int before = test_failed_checks;
    ModelConfig c = micro_config(-1);
    Model mc, mg;
    Generator gc, gg;
    CHECK_OK(model_build(&mc, &c, cpu, &err));
    CHECK_OK(model_build(&mg, &c, gpu, &err));
    CHECK_OK(generator_build(&gc, &mc, &err));
    CHECK_OK(generator_build(&gg, &mg, &err));
    if (test_failed_checks != before) return;   // (leaks on this path: the test has failed already)
    int32_t *prompt = rand_ids(5, c.vocab);
    CHECK_OK(generator_feed(&gc, prompt, 5, &err));
    CHECK_OK(generator_feed(&gg, prompt, 5, &err));
    compare("logits after the prompt", gg.logits, gc.logits, c.vocab, MODEL_TOL);
    for (int i = 0; i < 10; i++) {
        int32_t next = (int32_t)((i * 31 + 7) % c.vocab);   // the same token on both sides
        CHECK_OK(generator_feed(&gc, &next, 1, &err));
        CHECK_OK(generator_feed(&gg, &next, 1, &err));
        char what[64];
        snprintf(what, sizeof what, "logits after decoded token %d", i + 1);
        compare(what, gg.logits, gc.logits, c.vocab, MODEL_TOL);
    }
    free(prompt);
    generator_free(&gc);
    generator_free(&gg);
    model_free(&mc);
    model_free(&mg);
    check_no_cuda_error();
}

static void train_case(const char *optim) {
    Err err;
    int before = test_failed_checks;
    ModelConfig c = micro_config(-1);
    Model mc, mg;
    Trainer tc, tg;
    OptimConfig oc;
    CHECK_OK(optim_config_default(&oc, optim, &err));
    CHECK_OK(model_build(&mc, &c, cpu, &err));
    CHECK_OK(model_build(&mg, &c, gpu, &err));
    CHECK_OK(trainer_build(&tc, &mc, &oc, 3, &err));
    CHECK_OK(trainer_build(&tg, &mg, &oc, 3, &err));
    if (test_failed_checks != before) return;   // (leaks on this path: the test has failed already)
    // a learnable stream: a repeating pattern with a little noise
    long n = 20000;
    uint16_t *store = malloc(sizeof(uint16_t) * n);
    for (long i = 0; i < n; i++) store[i] = (uint16_t)(rng_next(&seed) % 10 == 0 ? (long)(rng_next(&seed) % (uint64_t)c.vocab) : i * 7 % c.vocab);
    Dataset ds = {.vocab_size = c.vocab, .token_bytes = 2, .n_tokens = n, .n_train = n, .tokens = store};
    double worst = 0;
    int worst_step = 0;
    float first = 0, last_c = 0, last_g = 0;
    for (int step = 1; step <= 50; step++) {
        StepStats sc, sg;
        CHECK_OK(trainer_step(&tc, &ds, 4, c.seq, 1, &sc, &err));
        CHECK_OK(trainer_step(&tg, &ds, 4, c.seq, 1, &sg, &err));
        if (test_failed_checks != before) break;
        double rel = fabs((double)sg.loss - sc.loss) / sc.loss;
        if (rel > worst) { worst = rel; worst_step = step; }
        if (step == 1) first = sc.loss;
        last_c = sc.loss;
        last_g = sg.loss;
    }
    CHECK(worst <= TRAIN_TOL, "%s: GPU and CPU losses part by %.3g (relative) at step %d (> %.1g)", optim, worst,
          worst_step, TRAIN_TOL);
    CHECK(last_c < first && last_g < first, "%s: training should lower the loss (%.4f → cpu %.4f, gpu %.4f)", optim,
          first, last_c, last_g);
    printf("     %s: 50 steps, loss %.4f → cpu %.4f, gpu %.4f; worst relative gap %.2g at step %d\n", optim, first,
           last_c, last_g, worst, worst_step);
    free(store);
    trainer_free(&tc);
    trainer_free(&tg);
    model_free(&mc);
    model_free(&mg);
    check_no_cuda_error();
}

static void test_training_tracks_cpu(void) {
    train_case("adamw");
    train_case("spectron");
}

// ---- decoding kernels (the position on the device) ----------------------------------------------

// One decode_attention on the GPU, the way `fused` says, from copies of the same inputs: out
// and both caches downloaded into *out, *kc, *vc (malloc'd).
static void gpu_decode(int fused, const float *q, const float *k, const float *v, const float *kc0, const float *vc0,
                       int cap, int pos, int H, int KVH, int hd, float **out, float **kc, float **vc) {
    char why[256];
    long nq = (long)H * hd, kvd = (long)KVH * hd, nc = (long)cap * kvd, ns = (long)gpu->decode_attention_floats(H, cap, hd);
    float *poison = nan_floats(ns > nq ? ns : nq);
    float *gq = to_gpu(q, sizeof(float) * nq), *gk = to_gpu(k, sizeof(float) * kvd), *gv = to_gpu(v, sizeof(float) * kvd);
    float *gkc = to_gpu(kc0, sizeof(float) * nc), *gvc = to_gpu(vc0, sizeof(float) * nc);
    float *gout = to_gpu(poison, sizeof(float) * nq), *gscratch = to_gpu(poison, sizeof(float) * ns);
    int32_t *gpos = to_gpu(&pos, sizeof pos);
    CHECK(backend_cuda_set_fused(fused ? "on" : "off", why, sizeof why) == 0, "fused: %s", why);
    gpu->decode_attention(gout, gscratch, gq, gk, gv, gkc, gvc, gpos, cap, H, KVH, hd, 10000.0f);
    *out = from_gpu(gout, nq), *kc = from_gpu(gkc, nc), *vc = from_gpu(gvc, nc);
    void *bufs[] = {gq, gk, gv, gkc, gvc, gout, gscratch, gpos};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) gpu->release(bufs[i]);
    free(poison);
}

// decode_attention at pos in a cache of cap rows (random, every row: the history): q and k
// rotated, k and v appended as row pos, attention over rows 0..pos — against the CPU's
// (rope_forward, then attention_forward with Tq = 1), split and fused, which must agree to
// the bit; the fused way twice (its arrival counters must be back at zero after a call).
static void decode_case(int cap, int pos, int H, int KVH, int hd) {
    long nq = (long)H * hd, kvd = (long)KVH * hd, nc = (long)cap * kvd;
    float *q = rand_floats(nq), *k = rand_floats(kvd), *v = rand_floats(kvd), *kc = rand_floats(nc), *vc = rand_floats(nc);
    for (long i = 0; i < nq; i++) q[i] *= 3.0f;   // peakier than uniform
    float *kc0 = copy_floats(kc, nc), *vc0 = copy_floats(vc, nc), *q0 = copy_floats(q, nq);
    float *out = malloc(sizeof(float) * nq), *scratch = malloc(sizeof(float) * cpu->decode_attention_floats(H, cap, hd));
    cpu->decode_attention(out, scratch, q, k, v, kc, vc, &pos, cap, H, KVH, hd, 10000.0f);
    const char *was = backend_cuda_fused();
    float *got[3][3];   // split, fused, fused again: out, k cache, v cache
    for (int way = 0; way < 3; way++)
        gpu_decode(way > 0, q0, k, v, kc0, vc0, cap, pos, H, KVH, hd, &got[way][0], &got[way][1], &got[way][2]);
    static const char *ways[3] = {"split", "fused", "fused again"};
    for (int way = 0; way < 3; way++) {
        char what[160];
        static const char *parts[3] = {"out", "k cache", "v cache"};
        for (int part = 0; part < 3; part++) {
            snprintf(what, sizeof what, "decode_attention %s pos %d of %d, H=%d KVH=%d hd=%d: %s", ways[way], pos, cap,
                     H, KVH, hd, parts[part]);
            compare(what, got[way][part], part == 0 ? out : part == 1 ? kc : vc, part ? nc : nq,
                    part == 2 ? 0.0 : KERNEL_TOL);
            if (way == 0) continue;
            strncat(what, ", against split", sizeof what - strlen(what) - 1);
            compare(what, got[way][part], got[0][part], part ? nc : nq, 0.0);
        }
    }
    char why[256];
    CHECK(backend_cuda_set_fused(was, why, sizeof why) == 0, "fused back to %s: %s", was, why);
    for (int way = 0; way < 3; way++) free(got[way][0]), free(got[way][1]), free(got[way][2]);
    free(q); free(k); free(v); free(kc); free(vc); free(kc0); free(vc0); free(q0); free(out); free(scratch);
}

// A position outside the cache (a caller's bug): nothing written, on the CPU and both ways on
// the GPU, and the next call still works.
static void decode_outside_cache(void) {
    int cap = 64, H = 2, KVH = 1, hd = 16, pos = cap;
    long nq = (long)H * hd, kvd = (long)KVH * hd, nc = (long)cap * kvd;
    float *q = rand_floats(nq), *k = rand_floats(kvd), *v = rand_floats(kvd), *kc = rand_floats(nc), *vc = rand_floats(nc);
    float *kc0 = copy_floats(kc, nc), *vc0 = copy_floats(vc, nc), *out = nan_floats(nq);
    float *scratch = malloc(sizeof(float) * cpu->decode_attention_floats(H, cap, hd));
    const char *was = backend_cuda_fused();
    cpu->decode_attention(out, scratch, q, k, v, kc, vc, &pos, cap, H, KVH, hd, 10000.0f);
    for (int way = -1; way <= 1; way++) {   // the CPU, then split and fused
        float *o = out, *gkc = kc, *gvc = vc;
        if (way >= 0) gpu_decode(way, q, k, v, kc0, vc0, cap, pos, H, KVH, hd, &o, &gkc, &gvc);
        int written = 0;
        for (long i = 0; i < nq; i++) written += !isnan(o[i]);
        const char *who = way < 0 ? "cpu" : way ? "fused" : "split";
        CHECK(written == 0, "%s decode_attention at pos = cap wrote %d values of out", who, written);
        char what[96];
        snprintf(what, sizeof what, "%s decode_attention at pos = cap: k cache untouched", who);
        compare(what, gkc, kc0, nc, 0.0);
        snprintf(what, sizeof what, "%s decode_attention at pos = cap: v cache untouched", who);
        compare(what, gvc, vc0, nc, 0.0);
        if (way >= 0) free(o), free(gkc), free(gvc);
    }
    char why[256];
    CHECK(backend_cuda_set_fused(was, why, sizeof why) == 0, "fused back to %s: %s", was, why);
    free(q); free(k); free(v); free(kc); free(vc); free(kc0); free(vc0); free(out); free(scratch);
    decode_case(cap, cap - 1, H, KVH, hd);
}

static void test_decode_kernels(void) {
    decode_case(16, 0, 4, 2, 16);          // one key
    decode_case(40, 39, 3, 1, 40);         // the last row; one kv head for three query heads
    decode_case(4001, 4000, 2, 2, 64);     // a large position: the angle reduction in double
    decode_case(300, 127, 3, 1, 40);       // exactly one block of keys
    decode_case(300, 128, 3, 1, 40);       // one key into the second block
    decode_case(300, 299, 6, 3, 8);        // the whole cache, a partial last block
    decode_case(1024, 1000, 12, 12, 64);   // GPT-2's heads, 8 blocks of keys
    decode_case(40, 17, 2, 1, 160);        // hd above the block's threads
    decode_case(1024, 700, 32, 4, 64);     // more heads than any case before: the counters grow
    decode_outside_cache();
    check_no_cuda_error();
}

// A generator's graph: kept while graphs are on, dropped when they go off, recorded again when
// they come back; a graph recorded in fp32 is not replayed after a switch to bf16.
static void check_graph_life(Generator *graph, Generator *gc, int vocab) {
    Err err;
    char why[256];
    CHECK(!graph->graph_failed, "recording a decoded token failed on this GPU (decoding ran without a graph)");
    CHECK(graph->graph != NULL, "no graph kept after 40 decoded tokens");
    // graphs off: the graph is stale, released, and no other is recorded
    int32_t next = 7;
    CHECK_OK(backend_cuda_set_graphs("off", why, sizeof why));
    CHECK(strcmp(backend_cuda_graphs(), "off") == 0, "graphs read back as %s, not off", backend_cuda_graphs());
    for (int i = 0; i < 2; i++) CHECK_OK(generator_feed(graph, &next, 1, &err));
    CHECK(graph->graph == NULL, "a graph was kept or recorded with graphs off");
    CHECK_OK(backend_cuda_set_graphs("on", why, sizeof why));
    for (int i = 0; i < 3; i++) CHECK_OK(generator_feed(graph, &next, 1, &err));
    CHECK(graph->graph != NULL, "no graph recorded after three tokens with graphs on again");
    for (int i = 0; i < 5; i++) CHECK_OK(generator_feed(gc, &next, 1, &err));
    compare("graph decoding against the CPU after graphs off and on", graph->logits, gc->logits, vocab, MODEL_TOL);
    // A graph recorded in fp32 is stale after a switch to bf16 (its GEMMs chose fp32 kernels):
    // the next token drops it and runs directly, the one after records again. (The logits cannot
    // tell: a decoded token's one-row products are fp32 whatever the precision — gemv.cu is, and
    // cuBLAS, asked for bf16, chose fp32 kernels for them on an H200.)
    CHECK_OK(backend_cuda_set_precision("bf16", why, sizeof why));
    int32_t more[2] = {8, 9};
    CHECK_OK(generator_feed(graph, &more[0], 1, &err));
    CHECK(graph->graph == NULL, "the fp32 graph was kept (replayed?) after a switch to bf16");
    CHECK_OK(generator_feed(graph, &more[1], 1, &err));
    CHECK(graph->graph != NULL, "no graph recorded again in bf16");
    CHECK_OK(generator_feed(gc, &more[0], 1, &err));
    CHECK_OK(generator_feed(gc, &more[1], 1, &err));
    compare("graph decoding against the CPU after a switch to bf16", graph->logits, gc->logits, vocab, 0.1);
    CHECK_OK(backend_cuda_set_precision("fp32", why, sizeof why));
}

// Decoding with the token's calls replayed from a recorded graph equals launching them one by
// one and the CPU's, past the context (the window slides); then, with life, the graph's life
// cycle.
static void graph_decoding_case(ModelConfig c, int life) {
    Err err;
    int before = test_failed_checks;
    Model mc, mg;
    Generator gc, graph, direct;
    CHECK_OK(model_build(&mc, &c, cpu, &err));
    CHECK_OK(model_build(&mg, &c, gpu, &err));
    CHECK_OK(generator_build(&gc, &mc, &err));
    CHECK_OK(generator_build(&graph, &mg, &err));
    CHECK_OK(generator_build(&direct, &mg, &err));
    if (test_failed_checks != before) return;   // (leaks on this path: the test has failed already)
    direct.graph_failed = 1;   // never records: every call launched from the host
    int32_t prompt[4] = {3, 14, 15, 92};
    CHECK_OK(generator_feed(&gc, prompt, 4, &err));
    CHECK_OK(generator_feed(&graph, prompt, 4, &err));
    CHECK_OK(generator_feed(&direct, prompt, 4, &err));
    for (int i = 0; i < 40; i++) {   // past the 32-token context: the window slides, positions restart
        int32_t next = (int32_t)((i * 37 + 5) % c.vocab);
        char what[112];
        CHECK_OK(generator_feed(&graph, &next, 1, &err));
        CHECK_OK(generator_feed(&direct, &next, 1, &err));
        CHECK_OK(generator_feed(&gc, &next, 1, &err));
        snprintf(what, sizeof what, "graph against direct decoding (kv_heads %d, rank %d), token %d", c.kv_heads,
                 c.rank, i + 1);
        compare(what, graph.logits, direct.logits, c.vocab, 1e-6);
        snprintf(what, sizeof what, "graph decoding against the CPU (kv_heads %d, rank %d), token %d", c.kv_heads,
                 c.rank, i + 1);
        compare(what, graph.logits, gc.logits, c.vocab, MODEL_TOL);
    }
    // LRSH_CUDA_SYNC=1 waits after every launch, which a recording cannot: no graph then
    const char *sync = getenv("LRSH_CUDA_SYNC");
    if (sync && sync[0] == '1') {
        CHECK(graph.graph == NULL, "a graph was recorded under LRSH_CUDA_SYNC=1");
        if (life) printf("     LRSH_CUDA_SYNC=1: decoding ran without graphs; their life cycle is not checked\n");
    } else if (life) {
        check_graph_life(&graph, &gc, c.vocab);
    }
    generator_free(&gc);
    generator_free(&graph);
    generator_free(&direct);
    model_free(&mc);
    model_free(&mg);
    check_no_cuda_error();
}

// Grouped-query attention, factorized, with the life cycle; then plain multi-head attention,
// dense and factorized: there q, k and v are three products of one shape into outputs at
// uneven distances, a pointer-batched GEMM whose addresses a graph keeps in its own arena.
static void test_graph_decoding(void) {
    char why[256];
    const char *fused = backend_cuda_fused();   // off here: its fp32 products would hide bf16's change
    CHECK(backend_cuda_set_fused("off", why, sizeof why) == 0, "fused off: %s", why);
    ModelConfig c = micro_config(-1);
    graph_decoding_case(c, 1);
    c.kv_heads = c.heads;
    graph_decoding_case(c, 0);
    c.rank = 0;
    graph_decoding_case(c, 0);
    CHECK(backend_cuda_set_fused(fused, why, sizeof why) == 0, "fused back to %s: %s", fused, why);
}

// ---- programmatic dependent launch ------------------------------------------------------------

// With pdl on, a decoded token's own kernels start before the one ahead of them has finished
// and wait on the device: a kernel that read its input before waiting would race, and the
// logits would part from direct decoding and the CPU's (graph_decoding_case compares every
// token, sliding window included). With gemv on (gemv.cu's products prefetch their weights and
// are dependents too), then off (each dependent follows a cuBLAS product); one-row products,
// and a whole model's forward and backward (RMSNorm and SwiGLU are dependents while training).
static void test_pdl(void) {
    char why[256];
    const char *was_pdl = backend_cuda_pdl(), *was_fused = backend_cuda_fused();
    CHECK(backend_cuda_set_pdl("on", why, sizeof why) == 0 && strcmp(backend_cuda_pdl(), "on") == 0, "pdl on: %s", why);
    CHECK(backend_cuda_set_pdl("maybe", why, sizeof why) != 0 && strstr(why, "maybe"),
          "an unknown pdl setting should be refused by name");
    for (int fused = 1; fused >= 0; fused--) {
        CHECK(backend_cuda_set_fused(fused ? "on" : "off", why, sizeof why) == 0, "fused: %s", why);
        ModelConfig c = micro_config(-1);
        graph_decoding_case(c, 0);   // grouped-query heads, factorized
        c.kv_heads = c.heads;
        c.rank = 0;
        graph_decoding_case(c, 0);   // plain heads, dense
    }
    CHECK(backend_cuda_set_fused("on", why, sizeof why) == 0, "fused on: %s", why);
    gemv_case(32768, 768, 768, 0, 1.0f, 0.0f, KERNEL_TOL);
    gemv_case(50, 64, 64, 1, 1.0f, 1.0f, KERNEL_TOL);
    gemv_batch_case();
    model_case(-1, MODEL_TOL);
    CHECK(backend_cuda_set_fused(was_fused, why, sizeof why) == 0, "fused back to %s: %s", was_fused, why);
    CHECK(backend_cuda_set_pdl(was_pdl, why, sizeof why) == 0, "pdl back to %s: %s", was_pdl, why);
    check_no_cuda_error();
}

// ---- main ---------------------------------------------------------------------------------

typedef struct { const char *name; void (*fn)(void); } GpuTest;

#define GPU_TEST(fn) {#fn, fn}

// chosen[i] = 1 for the tests named in argv (all when none); --list prints the names. −1 for
// a name that is not a test, after saying so.
static int pick_tests(int argc, char **argv, const GpuTest *tests, int n, int *chosen) {
    int list = argc == 2 && strcmp(argv[1], "--list") == 0;
    for (int i = 0; i < n; i++) {
        chosen[i] = argc < 2;
        if (list) printf("%s\n", tests[i].name);
    }
    for (int a = 1; a < argc && !list; a++) {
        int found = 0;
        for (int i = 0; i < n; i++)
            if (strcmp(argv[a], tests[i].name) == 0) chosen[i] = found = 1;
        if (!found) {
            fprintf(stderr, "test_cuda: no test named '%s' (test_cuda --list names them)\n", argv[a]);
            return -1;
        }
    }
    return 0;
}

// test_cuda [--list | NAME…]: every test, the names only, or the named tests alone (check.sh
// reruns a failed test by itself, in a fresh CUDA context, to tell its own fault from an
// earlier test's broken context).
int main(int argc, char **argv) {
    static const GpuTest tests[] = {
        GPU_TEST(test_memory),        GPU_TEST(test_take_error),     GPU_TEST(test_gemm_fp32),      GPU_TEST(test_gemm_tf32_bf16), GPU_TEST(test_gemm_batch), GPU_TEST(test_gemm_batch_strided),
        GPU_TEST(test_embedding),     GPU_TEST(test_rmsnorm),        GPU_TEST(test_rope),
        GPU_TEST(test_attention),     GPU_TEST(test_swiglu),         GPU_TEST(test_softmax_xent),
        GPU_TEST(test_add_scale), GPU_TEST(test_add_matrix),     GPU_TEST(test_sum_sumsq), GPU_TEST(test_batches),      GPU_TEST(test_adamw),
        GPU_TEST(test_model_forward_backward), GPU_TEST(test_generate_matches_cpu),
        GPU_TEST(test_training_tracks_cpu), GPU_TEST(test_flash_attention), GPU_TEST(test_flash_tc_attention), GPU_TEST(test_decode_kernels),
        GPU_TEST(test_graph_decoding), GPU_TEST(test_gemv),  GPU_TEST(test_pdl),
        GPU_TEST(test_row_products),
    };
    int n_tests = (int)(sizeof tests / sizeof tests[0]), skipped = 0;
    int chosen[sizeof tests / sizeof tests[0]];
    if (pick_tests(argc, argv, tests, n_tests, chosen) != 0) return 2;
    if (argc == 2 && strcmp(argv[1], "--list") == 0) return 0;
    cpu = backend_cpu(0);
    gpu = backend_cuda(why, sizeof why);
    if (!gpu) {
        const char *reason = strncmp(why, "no CUDA device: ", 16) == 0 ? why + 16 : why;
        for (int i = 0; i < n_tests; i++)
            if (chosen[i]) printf("skip %s: no CUDA device (%s)\n", tests[i].name, reason), skipped++;
        RUN(test_no_device_reason);
    } else {
        printf("     %s\n", gpu->describe());
        for (int i = 0; i < n_tests; i++) {
            if (!chosen[i]) continue;
            int before = test_failed_checks;
            tests[i].fn();
            if (test_failed_checks == before) { tests_passed++; printf("ok   %s\n", tests[i].name); }
            else { tests_failed++; printf("FAIL %s\n", tests[i].name); }
            fflush(stdout);
        }
    }
    printf("%d passed, %d failed, %d skipped\n", tests_passed, tests_failed, skipped);
    return tests_failed != 0;
}
