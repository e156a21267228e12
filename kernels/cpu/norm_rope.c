// norm_rope.c — RMSNorm and rotary position embedding, forward and backward.
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_kernels.h"

// ---- RMSNorm ------------------------------------------------------------------------------

void cpu_rmsnorm_forward(float *out, float *rstd, const float *x, const float *gain, int n, int dim,
                         float eps) {
    #pragma omp parallel for schedule(static) if ((long)n * dim >= CPU_PARALLEL_MIN)
    for (int r = 0; r < n; r++) {
        const float *xr = x + (long)r * dim;                     // (dim)
        float *yr = out + (long)r * dim;                         // (dim)
        double ss = 0.0;   // in double: float's x² overflows from |x| ~ 1e19, and s would be 0
        #pragma omp simd reduction(+ : ss)
        for (int i = 0; i < dim; i++) ss += (double)xr[i] * xr[i];
        float s = (float)(1.0 / sqrt(ss / dim + eps));
        rstd[r] = s;
        #pragma omp simd
        for (int i = 0; i < dim; i++) yr[i] = xr[i] * s * gain[i];
    }
}

// y_i = x_i·s·g_i with s = (mean(x²)+eps)^(−1/2), so ∂s/∂x_j = −s³·x_j/dim and
//   dx_j = s·g_j·dy_j − (s³/dim)·x_j·Σ_i dy_i·g_i·x_i,    dg_i = Σ_rows dy_i·x_i·s,
// computed through the normalized u = s·x (of order 1 at any scale of x, where s³ underflows
// and dy·x overflows): dx_j = s·(g_j·dy_j − u_j·mean_i(dy_i·g_i·u_i)), dg_i = Σ_rows dy_i·u_i.
// dgain is a reduction over rows: each thread sums its static share of rows into a private
// partial, and the partials are added in thread order — deterministic for a thread count.
void cpu_rmsnorm_backward(float *dx, float *dgain, const float *dout, const float *x,
                          const float *gain, const float *rstd, int n, int dim) {
    int threads = (long)n * dim >= CPU_PARALLEL_MIN ? omp_get_max_threads() : 1;
    float *partial = calloc((size_t)threads * dim, sizeof(float));   // (threads, dim)
    if (!partial) threads = 0;  // out of memory: fall back to accumulating straight into dgain
    #pragma omp parallel num_threads(threads > 0 ? threads : 1)
    {
        int tid = omp_get_thread_num(), nt = omp_get_num_threads();
        float *dg = partial ? partial + (long)tid * dim : dgain;        // (dim)
        int r0 = (int)((long)n * tid / nt), r1 = (int)((long)n * (tid + 1) / nt);
        for (int r = r0; r < r1; r++) {
            const float *xr = x + (long)r * dim, *dy = dout + (long)r * dim;   // (dim)
            float *dxr = dx + (long)r * dim;                                    // (dim)
            float s = rstd[r];
            float dot = 0.0f;                                    // Σ_i dy_i·g_i·u_i
            #pragma omp simd reduction(+ : dot)
            for (int i = 0; i < dim; i++) dot += dy[i] * gain[i] * (xr[i] * s);
            float mean = dot / (float)dim;
            #pragma omp simd
            for (int i = 0; i < dim; i++) {
                float u = xr[i] * s;
                dxr[i] += s * (gain[i] * dy[i] - u * mean);
                dg[i] += dy[i] * u;
            }
        }
        if (partial) {
            #pragma omp barrier
            #pragma omp for schedule(static)
            for (int i = 0; i < dim; i++) {
                float acc = 0.0f;
                for (int t = 0; t < nt; t++) acc += partial[(long)t * dim + i];   // fixed order
                dgain[i] += acc;
            }
        }
    }
    free(partial);
}

// ---- RoPE ---------------------------------------------------------------------------------

// cos/sin of (pos0 + t)·theta^(−2i/hd) for t < T, i < hd/2, into table(T, hd/2, 2). The
// angle is formed and reduced to [−π, π] in double (pos·freq reaches thousands of radians,
// where float loses the phase); float sincosf of the reduced angle is then exact enough and
// several times faster than double sin and cos.
static float *rope_table(int T, int hd, int pos0, float theta) {
    int half = hd / 2;
    float *table = malloc((size_t)T * half * 2 * sizeof(float) + (size_t)half * sizeof(double));
    if (!table) return NULL;
    double *freq = (double *)(table + (size_t)T * half * 2);   // (hd/2), after the table
    for (int i = 0; i < half; i++) freq[i] = pow((double)theta, -2.0 * i / hd);
    #pragma omp parallel for schedule(static) if ((long)T * half >= CPU_PARALLEL_MIN / 8)
    for (int t = 0; t < T; t++)
        for (int i = 0; i < half; i++) {
            double angle = (double)(pos0 + t) * freq[i];
            angle -= 2.0 * M_PI * nearbyint(angle / (2.0 * M_PI));
            sincosf((float)angle, &table[((long)t * half + i) * 2 + 1], &table[((long)t * half + i) * 2]);
        }
    return table;
}

// out = R(sign·angle)·in per pair: (x0, x1) → (x0·cos − x1·s, x0·s + x1·cos), s = sign·sin,
// with the angles' cos/sin from table(T, hd/2, 2). In place is fine: each pair is read
// completely before it is written.
static void rope_apply(float *out, const float *in, int B, int T, int H, int hd, const float *table, float sign) {
    int half = hd / 2;
    #pragma omp parallel for collapse(2) schedule(static) if ((long)B * T * H * hd >= CPU_PARALLEL_MIN)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float *cs = table + (long)t * half * 2;       // (hd/2, 2)
            for (int h = 0; h < H; h++) {
                long base = (((long)b * T + t) * H + h) * hd;
                const float *x = in + base;                     // (hd)
                float *y = out + base;                          // (hd)
                #pragma omp simd
                for (int i = 0; i < half; i++) {
                    float c = cs[2 * i], s = sign * cs[2 * i + 1];
                    float x0 = x[2 * i], x1 = x[2 * i + 1];
                    y[2 * i] = x0 * c - x1 * s;
                    y[2 * i + 1] = x0 * s + x1 * c;
                }
            }
        }
}

static void rope_rotate(float *out, const float *in, int B, int T, int H, int hd, int pos0, float theta, float sign) {
    float *table = rope_table(T, hd, pos0, theta);              // (T, hd/2, 2)
    if (!table) {   // T·hd floats: up to 64 MB
        cpu_fail("rope: out of memory for the cos/sin table");
        return;
    }
    rope_apply(out, in, B, T, H, hd, table, sign);
    free(table);
}

// out = R·in: each pair rotated by its position's angle.
void cpu_rope_forward(float *out, const float *in, int B, int T, int H, int hd, int pos0, float theta) {
    rope_rotate(out, in, B, T, H, hd, pos0, theta, 1.0f);
}

// din = Rᵀ·dout: the rotation by −angle (written, not added; in place is fine).
void cpu_rope_backward(float *din, const float *dout, int B, int T, int H, int hd, int pos0, float theta) {
    rope_rotate(din, dout, B, T, H, hd, pos0, theta, -1.0f);
}

// The cos/sin row of one position, kept for the next call: every layer's q and k of a decoded
// token share it, so it is built once a token instead of twice a layer (its pow and sincosf
// were a third of a small model's decode_attention). Per thread, should two ever decode.
static const float *decode_rope_row(int hd, int pos, float theta) {
    static _Thread_local float *row;                            // (hd/2, 2)
    static _Thread_local int row_hd = -1, row_pos = -1;
    static _Thread_local float row_theta;
    if (row && row_hd == hd && row_pos == pos && row_theta == theta) return row;
    free(row);
    row = rope_table(1, hd, pos, theta);
    row_hd = hd, row_pos = pos, row_theta = theta;
    return row;
}

// The decoded token's q and k rotated at *pos (a plain pointer here: the CPU's memory is the
// host's), k and v stored as cache row *pos: the same rotation as rope_forward of one token.
void cpu_decode_rope_append(float *q, const float *k, const float *v, float *k_cache, float *v_cache,
                            const int32_t *pos, int H, int KVH, int hd, float theta) {
    long kvd = (long)KVH * hd, at = (long)*pos * kvd;   // row *pos of the (cap, kvd) caches
    const float *row = decode_rope_row(hd, *pos, theta);
    if (!row) {
        cpu_fail("rope: out of memory for the cos/sin table");
        return;
    }
    rope_apply(q, q, 1, 1, H, hd, row, 1.0f);
    rope_apply(k_cache + at, k, 1, 1, KVH, hd, row, 1.0f);
    memcpy(v_cache + at, v, sizeof(float) * kvd);
}
