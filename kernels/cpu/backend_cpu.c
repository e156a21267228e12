// backend_cpu.c — the CPU Backend table: host memory, GEMM through OpenBLAS, describe().
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <string.h>
#include <cblas.h>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif

#include "cpu_kernels.h"

// Rounded up so that every buffer starts and ends on a cache line (and an AVX-512 vector).
#define CPU_ALIGN 64

// Buffers of 2 MB and more start on a 2 MB boundary and ask for transparent huge pages: fewer
// TLB misses, which cost the most under a hypervisor. Without them the factorized model's
// training speed changed by up to 1.6× from one run to the next with where its pages fell.
#define HUGE_PAGE (2u << 20)

static void *cpu_alloc(size_t bytes) {
    size_t align = bytes >= HUGE_PAGE ? HUGE_PAGE : CPU_ALIGN;
    size_t rounded = (bytes + align - 1) / align * align;
    if (rounded < bytes) return NULL;                 // size_t overflow
    if (rounded == 0) rounded = CPU_ALIGN;            // a zero-size buffer is still a buffer, not OOM
    void *p = aligned_alloc(align, rounded);
    if (p && align == HUGE_PAGE) madvise(p, rounded, MADV_HUGEPAGE);
    if (p) memset(p, 0, rounded);
    return p;
}

static void cpu_release(void *ptr) { free(ptr); }

// The first number after key in a /proc file, scaled; 0 when absent.
static size_t read_number(const char *file, const char *key, size_t scale) {
    FILE *f = fopen(file, "r");
    char line[256];
    size_t n = 0, klen = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, klen) == 0 && sscanf(line + klen, " %zu", &n) == 1) break;
    if (f) fclose(f);
    return n * scale;
}

// What this process may still allocate. Linux overcommits, so a too-large allocation would
// succeed and the process be killed later, when its pages are touched: callers check first.
// MemAvailable from /proc/meminfo, or less where an address-space limit (ulimit -v) leaves
// less. (A cgroup's memory.current counts page cache the kernel would reclaim: not used.)
static size_t cpu_mem_available(void) {
    size_t avail = read_number("/proc/meminfo", "MemAvailable:", 1024);
    if (avail == 0) avail = (size_t)sysconf(_SC_AVPHYS_PAGES) * (size_t)sysconf(_SC_PAGESIZE);
    struct rlimit lim;
    if (getrlimit(RLIMIT_AS, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY) {
        size_t mapped = read_number("/proc/self/statm", "", (size_t)sysconf(_SC_PAGESIZE));   // the address space in use
        size_t left = lim.rlim_cur > mapped ? lim.rlim_cur - mapped : 0;
        if (left < avail) avail = left;
    }
    return avail;
}

// On the CPU "device" and host memory are the same: every transfer is a memmove (which,
// unlike memcpy, allows dst == src).
static void cpu_transfer(void *dst, const void *src, size_t bytes) {
    if (bytes) memmove(dst, src, bytes);
}

static void cpu_zero(void *dst, size_t bytes) {
    if (bytes) memset(dst, 0, bytes);
}

// Row j of y = alpha·W·x + beta·y: one thread's dot product.
static inline void gemv_row(float *y, const float *w, int ldw, const float *x, int j, int k, float alpha, float beta) {
    const float *row = w + (long)j * ldw;
    float dot = 0.0f;
    #pragma omp simd reduction(+ : dot)
    for (int i = 0; i < k; i++) dot += row[i] * x[i];
    y[j] = alpha * dot + (beta == 0.0f ? 0.0f : beta * y[j]);   // beta = 0 ignores y (NaN included)
}

// y(n) = alpha·W(n×k)·x + beta·y, a row per OpenMP iteration. On the decode shapes this streams
// the weights faster than OpenBLAS 0.3.21's sgemv (bench_generate measures both), and every
// output is one thread's dot product, so the result does not depend on the thread count.
void cpu_gemv_rows(float *y, const float *w, int ldw, const float *x, int n, int k, float alpha, float beta) {
    #pragma omp parallel for schedule(static) if ((long)n * k >= CPU_PARALLEL_MIN)
    for (int j = 0; j < n; j++) gemv_row(y, w, ldw, x, j, k, alpha, beta);
}

void cpu_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {  // C = beta·C; BLAS implementations disagree on k == 0, so do it here
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) c[(long)i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[(long)i * ldc + j];
        return;
    }
    if (m == 1) {
        // One row (batch-1 decode): y = op(B)ᵀ·x is a matrix-vector product, memory-bound.
        // OpenBLAS 0.3.21's sgemm packs all of B for a single row: gemv is up to 2× faster on the
        // decode shapes (vocab×dim head, ffn×dim MLP). x is row 0 of op(A): contiguous, or
        // column 0 of a k×1 A (stride lda) when A is transposed.
        int incx = trans_a ? lda : 1;
        if (trans_b && incx == 1) {   // B is n×k: one dot product per row of B
            cpu_gemv_rows(c, b, ldb, a, n, k, alpha, beta);
            return;
        }
        if (beta == 0.0f) memset(c, 0, sizeof(float) * (size_t)n);   // BLAS reads C even when beta = 0 (NaN included)
        if (trans_b)   // B is n×k, x strided
            cblas_sgemv(CblasRowMajor, CblasNoTrans, n, k, alpha, b, ldb, a, incx, beta, c, 1);
        else           // B is k×n: y = Bᵀ·x
            cblas_sgemv(CblasRowMajor, CblasTrans, k, n, alpha, b, ldb, a, incx, beta, c, 1);
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

static void run_call(const GemmCall *g) {
    cpu_gemm(g->trans_a, g->trans_b, g->m, g->n, g->k, g->alpha, g->a, g->lda, g->b, g->ldb, g->beta, g->c, g->ldc);
}

#define ROW_PRODUCTS 8   // one-row products a cpu_gemm_batch runs in one parallel loop, at most

// A call that cpu_gemm turns into cpu_gemv_rows: one row of A, B given as n×k rows.
static int is_row_dots(const GemmCall *g) { return g->m == 1 && g->trans_b && !g->trans_a && g->k > 0; }

// Several one-row products (decoding's q, k, v): every row of every output in one parallel loop,
// evenly split, instead of a parallel region per product.
static void batch_row_dots(const GemmCall *calls, int count) {
    long start[ROW_PRODUCTS + 1] = {0};   // the calls' first rows in the joint numbering
    for (int i = 0; i < count; i++) start[i + 1] = start[i] + calls[i].n;
    #pragma omp parallel for schedule(static) if (start[count] * calls[0].k >= CPU_PARALLEL_MIN)
    for (long r = 0; r < start[count]; r++) {
        int i = 0;
        while (r >= start[i + 1]) i++;
        const GemmCall *g = &calls[i];
        gemv_row(g->c, g->b, g->ldb, g->a, (int)(r - start[i]), g->k, g->alpha, g->beta);
    }
}

// Whole rounds of one product per thread run side by side, each on a one-thread BLAS (for the
// thin products of factorized layers, 1.1–1.4× faster on 2 cores than each product on both);
// the rest one after the other on every thread. Which thread runs a product does not change
// its result.
void cpu_gemm_batch(const GemmCall *calls, int count) {
    int row_dots = count > 1 && count <= ROW_PRODUCTS;
    for (int i = 0; i < count && row_dots; i++) row_dots = is_row_dots(&calls[i]);
    if (row_dots) {
        batch_row_dots(calls, count);
        return;
    }
    int threads = omp_get_max_threads(), side_by_side = threads > 1 ? count / threads * threads : 0;
    if (side_by_side > 0) {
        // in OpenBLAS's OpenMP build openblas_set_num_threads also sets OpenMP's count
        int blas_threads = openblas_get_num_threads();
        openblas_set_num_threads(1);
        #pragma omp parallel for schedule(dynamic) num_threads(threads)
        for (int i = 0; i < side_by_side; i++) run_call(&calls[i]);
        openblas_set_num_threads(blas_threads);
    }
    for (int i = side_by_side; i < count; i++) run_call(&calls[i]);
}

// The step into in->xhat by the kernels that run it alone, then the products: the results of
// the unfused path to the bit, the reference for a GPU's fused kernel.
static void cpu_row_products(const RowInput *in, const RowProduct *calls, int count) {
    const float *x = in->xhat;
    if (in->step == ROW_RMSNORM) cpu_rmsnorm_forward(in->xhat, in->rstd, in->x, in->gain, 1, in->k, in->eps);
    else cpu_swiglu_forward(in->xhat, in->x, in->up, in->k);
    for (int first = 0; first < count; first += ROW_PRODUCTS) {
        GemmCall gemm[ROW_PRODUCTS];
        int n = count - first < ROW_PRODUCTS ? count - first : ROW_PRODUCTS;
        for (int i = 0; i < n; i++) {
            const RowProduct *p = &calls[first + i];
            gemm[i] = gemm_call(0, 1, 1, p->n, in->k, 1.0f, x, in->k, p->w, in->k, p->beta, p->y, p->n);
        }
        cpu_gemm_batch(gemm, n);
    }
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

static void cpu_synchronize(void) {}   // every call has finished when it returns

static const char *cpu_pending_error;   // set by cpu_fail, taken once by take_error

void cpu_fail(const char *why) {
    if (!cpu_pending_error) cpu_pending_error = why;   // the first failure is the cause
}

static const char *cpu_take_error(void) {
    const char *e = cpu_pending_error;
    cpu_pending_error = NULL;
    return e;
}

static const Backend cpu_backend = {
    .name = "cpu",
    .describe = cpu_describe,
    .alloc = cpu_alloc,
    .mem_available = cpu_mem_available,
    .synchronize = cpu_synchronize,
    .release = cpu_release,
    .upload = cpu_transfer,
    .download = cpu_transfer,
    .copy = cpu_transfer,
    .zero = cpu_zero,
    .host_alloc = malloc,
    .host_release = free,
    .gemm = cpu_gemm,
    .gemm_batch = cpu_gemm_batch,
    .row_products = cpu_row_products,
    .embedding_forward = cpu_embedding_forward,
    .embedding_backward = cpu_embedding_backward,
    .rmsnorm_forward = cpu_rmsnorm_forward,
    .rmsnorm_backward = cpu_rmsnorm_backward,
    .rope_forward = cpu_rope_forward,
    .rope_backward = cpu_rope_backward,
    .attention_saved_floats = cpu_attention_saved_floats,
    .attention_forward = cpu_attention_forward,
    .attention_backward = cpu_attention_backward,
    .decode_attention_floats = cpu_decode_attention_floats,
    .decode_attention = cpu_decode_attention,
    .swiglu_forward = cpu_swiglu_forward,
    .swiglu_backward = cpu_swiglu_backward,
    .softmax_xent_forward = cpu_softmax_xent_forward,
    .add = cpu_add,
    .scale = cpu_scale,
    .axpby = cpu_axpby,
    .axpby_batch = cpu_axpby_batch,
    .add_matrix = cpu_add_matrix,
    .sum = cpu_sum,
    .sumsq = cpu_sumsq,
    .sumsq_batch = cpu_sumsq_batch,
    .adamw_update = cpu_adamw_update,
    .take_error = cpu_take_error,
    .memory_is_host = 1,
};

// Subnormal floats (below 1.2e-38) flushed to zero, on inputs (DAZ) and results (FTZ), in this
// thread and every OpenMP thread (OpenBLAS's too; threads made later inherit the setting). A
// run AdamW blows up fills its factors with them, and x86 takes ~100 cycles for each: such a run
// trained at half the speed of a healthy one, which a class would read as the optimizer's cost.
// GPUs' fast paths flush them as well; no value lrsh shows is near that size.
static void flush_subnormals(void) {
#if defined(__SSE__)
#pragma omp parallel
    _mm_setcsr(_mm_getcsr() | 0x8040);   // FTZ (bit 15) | DAZ (bit 6)
#endif
}

const Backend *backend_cpu(int threads) {
    if (threads > 0) {
        omp_set_num_threads(threads);
        openblas_set_num_threads(threads);
    }
    flush_subnormals();
    return &cpu_backend;
}
