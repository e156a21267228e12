// profile.c — the timing Backend of profile.h: one wrapper per entry, each forwarding to the
// inner table and adding its time (with the inner backend synchronized) to a (phase, op) row.
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "profile.h"

static const Backend *inner;
static Profile *profile;
static const char *phase = "";

static double seconds_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// Add one call of op; rows beyond PROFILE_MAX_ROWS fold into a last "(other)" row.
static void note(const char *op, double t0) {
    inner->synchronize();
    double dt = seconds_now() - t0;
    if (!profile) return;
    Profile *p = profile;
    int i = 0;
    while (i < p->n && !(p->rows[i].op == op && strcmp(p->rows[i].phase, phase) == 0)) i++;
    if (i == p->n) {
        if (p->n == PROFILE_MAX_ROWS) i = p->n - 1, op = "(other)";
        else p->rows[p->n++] = (ProfileRow){phase, op, 0, 0.0};
    }
    p->rows[i].calls++;
    p->rows[i].seconds += dt;
    p->seconds += dt;
}

// A timed forwarder: START before the inner call, DONE(op) after it.
#define START double t0_ = seconds_now()
#define DONE(op) note(op, t0_)

static const char *p_describe(void) { return inner->describe(); }
static void *p_alloc(size_t bytes) { return inner->alloc(bytes); }
static void p_release(void *ptr) { inner->release(ptr); }
static size_t p_mem_available(void) { return inner->mem_available(); }
static void p_synchronize(void) { inner->synchronize(); }
static void p_upload(void *dst, const void *src, size_t bytes) { START; inner->upload(dst, src, bytes); DONE("upload"); }
static void p_download(void *dst, const void *src, size_t bytes) { START; inner->download(dst, src, bytes); DONE("download"); }
static void p_copy(void *dst, const void *src, size_t bytes) { START; inner->copy(dst, src, bytes); DONE("copy"); }
static void p_zero(void *dst, size_t bytes) { START; inner->zero(dst, bytes); DONE("zero"); }

static void p_gemm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
                   float beta, float *c, int ldc) {
    START;
    inner->gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    DONE("gemm");
}

static void p_gemm_batch(const GemmCall *calls, int count) { START; inner->gemm_batch(calls, count); DONE("gemm_batch"); }

static void p_row_products(const RowInput *in, const RowProduct *calls, int count) {
    START;
    inner->row_products(in, calls, count);
    DONE(in->step == ROW_RMSNORM ? "row_products rmsnorm" : "row_products swiglu");
}

static void p_embedding_forward(float *out, const int32_t *tokens, const float *table, int n, int dim) {
    START;
    inner->embedding_forward(out, tokens, table, n, dim);
    DONE("embedding_forward");
}

static void p_embedding_backward(float *dtable, const float *dout, const int32_t *tokens, int n, int dim) {
    START;
    inner->embedding_backward(dtable, dout, tokens, n, dim);
    DONE("embedding_backward");
}

static void p_rmsnorm_forward(float *out, float *rstd, const float *x, const float *gain, int n, int dim, float eps) {
    START;
    inner->rmsnorm_forward(out, rstd, x, gain, n, dim, eps);
    DONE("rmsnorm_forward");
}

static void p_rmsnorm_backward(float *dx, float *dgain, const float *dout, const float *x, const float *gain,
                               const float *rstd, int n, int dim) {
    START;
    inner->rmsnorm_backward(dx, dgain, dout, x, gain, rstd, n, dim);
    DONE("rmsnorm_backward");
}

static void p_rope_forward(float *out, const float *in, int B, int T, int H, int hd, int pos0, float theta) {
    START;
    inner->rope_forward(out, in, B, T, H, hd, pos0, theta);
    DONE("rope_forward");
}

static void p_rope_backward(float *din, const float *dout, int B, int T, int H, int hd, int pos0, float theta) {
    START;
    inner->rope_backward(din, dout, B, T, H, hd, pos0, theta);
    DONE("rope_backward");
}

static size_t p_attention_saved_floats(int B, int H, int Tq, int Tk, int hd) {
    return inner->attention_saved_floats(B, H, Tq, Tk, hd);
}

static void p_attention_forward(float *out, float *att, const float *q, const float *k, const float *v, int B, int Tq,
                                int Tk, int H, int KVH, int hd) {
    START;
    inner->attention_forward(out, att, q, k, v, B, Tq, Tk, H, KVH, hd);
    DONE("attention_forward");
}

static void p_attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout, const float *out,
                                 const float *att, const float *q, const float *k, const float *v, int B, int Tq,
                                 int Tk, int H, int KVH, int hd) {
    START;
    inner->attention_backward(dq, dk, dv, scratch, dout, out, att, q, k, v, B, Tq, Tk, H, KVH, hd);
    DONE("attention_backward");
}

static size_t p_decode_attention_floats(int H, int cap, int hd) { return inner->decode_attention_floats(H, cap, hd); }

static void p_decode_attention(float *out, float *scratch, float *q, const float *k, const float *v, float *k_cache,
                               float *v_cache, const int32_t *pos, int cap, int H, int KVH, int hd, float theta) {
    START;
    inner->decode_attention(out, scratch, q, k, v, k_cache, v_cache, pos, cap, H, KVH, hd, theta);
    DONE("decode_attention");
}

static void p_swiglu_forward(float *out, const float *gate, const float *up, long n) {
    START;
    inner->swiglu_forward(out, gate, up, n);
    DONE("swiglu_forward");
}

static void p_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, long n) {
    START;
    inner->swiglu_backward(dgate, dup, dout, gate, up, n);
    DONE("swiglu_backward");
}

static void p_softmax_xent_forward(float *losses, float *dlogits, const float *logits, const int32_t *targets, int n,
                                   int V, float dscale) {
    START;
    inner->softmax_xent_forward(losses, dlogits, logits, targets, n, V, dscale);
    DONE("softmax_xent");
}

static void p_add(float *y, const float *x, long n) { START; inner->add(y, x, n); DONE("add"); }
static void p_scale(float *x, float s, long n) { START; inner->scale(x, s, n); DONE("scale"); }

static void p_axpby(float *y, float alpha, const float *x, float beta, long n) {
    START;
    inner->axpby(y, alpha, x, beta, n);
    DONE("axpby");
}

static void p_add_matrix(float *y, int ldy, const float *x, int ldx, int rows, int cols, float beta) {
    START;
    inner->add_matrix(y, ldy, x, ldx, rows, cols, beta);
    DONE("add_matrix");
}

static void p_axpby_batch(const AxpbyCall *calls, int count) {
    START;
    inner->axpby_batch(calls, count);
    DONE("axpby_batch");
}

static void p_sumsq_batch(const float *const *x, const long *n, int count, double *out) {
    START;
    inner->sumsq_batch(x, n, count, out);
    DONE("sumsq_batch");
}

static double p_sum(const float *x, long n) { START; double r = inner->sum(x, n); DONE("sum"); return r; }
static double p_sumsq(const float *x, long n) { START; double r = inner->sumsq(x, n); DONE("sumsq"); return r; }

static void p_adamw_update(float *param, const float *grad, float *m, float *v, long n, float lr, float beta1,
                           float beta2, float eps, float wd, float grad_scale, int t) {
    START;
    inner->adamw_update(param, grad, m, v, n, lr, beta1, beta2, eps, wd, grad_scale, t);
    DONE("adamw_update");
}

static Backend profiled;

const Backend *profile_begin(Profile *p, const Backend *be) {
    memset(p, 0, sizeof *p);
    inner = be;
    profile = p;
    phase = "";
    profiled = (Backend){
        .name = be->name, .describe = p_describe, .alloc = p_alloc, .release = p_release, .upload = p_upload,
        .download = p_download, .copy = p_copy, .zero = p_zero, .mem_available = p_mem_available,
        .memory_is_host = be->memory_is_host,
        .host_alloc = be->host_alloc, .host_release = be->host_release,   // untimed
        .synchronize = p_synchronize, .gemm = p_gemm, .gemm_batch = p_gemm_batch,
        .row_products = p_row_products, .embedding_forward = p_embedding_forward,
        .embedding_backward = p_embedding_backward,
        .rmsnorm_forward = p_rmsnorm_forward, .rmsnorm_backward = p_rmsnorm_backward,
        .rope_forward = p_rope_forward, .rope_backward = p_rope_backward,
        .attention_saved_floats = p_attention_saved_floats, .attention_forward = p_attention_forward,
        .attention_backward = p_attention_backward,
        .decode_attention_floats = p_decode_attention_floats, .decode_attention = p_decode_attention,
        .swiglu_forward = p_swiglu_forward,
        .swiglu_backward = p_swiglu_backward, .softmax_xent_forward = p_softmax_xent_forward, .add = p_add,
        .scale = p_scale, .axpby = p_axpby, .axpby_batch = p_axpby_batch, .add_matrix = p_add_matrix,
        .sum = p_sum, .sumsq = p_sumsq, .sumsq_batch = p_sumsq_batch,
        .adamw_update = p_adamw_update, .take_error = be->take_error,   // untimed
        // no graph_*: a profile times each call, which a replayed graph would hide
    };
    inner->synchronize();   // earlier work is not this profile's
    return &profiled;
}

void profile_phase(const char *name) { phase = name ? name : ""; }

static int by_time(const void *a, const void *b) {
    double x = ((const ProfileRow *)a)->seconds, y = ((const ProfileRow *)b)->seconds;
    return (x < y) - (x > y);
}

void profile_end(void) {
    if (profile) qsort(profile->rows, (size_t)profile->n, sizeof profile->rows[0], by_time);
    profile = NULL;
    phase = "";
}
