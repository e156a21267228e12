// linalg.c — truncated SVD through LAPACKE (divide and conquer, sgesdd).
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <lapacke.h>
#include "linalg.h"

int truncated_svd(const float *w, int out, int in, int r, float *a, float *b, float *s_out, Err *err) {
    int k = out < in ? out : in;
    if (r < 1 || r > k) return err_set(err, "truncated SVD: rank %d outside [1, %d] for a %d×%d matrix", r, k, out, in);
    float *work = malloc(sizeof(float) * ((size_t)out * in + (size_t)out * k + (size_t)k * in + k));
    if (!work) return err_set(err, "out of memory for the SVD of a %d×%d matrix", out, in);
    float *wc = work, *u = wc + (size_t)out * in, *vt = u + (size_t)out * k, *s = vt + (size_t)k * in;
    memcpy(wc, w, sizeof(float) * out * in);
    // wc = U(out×k)·diag(s)·Vt(k×in)
    lapack_int info = LAPACKE_sgesdd(LAPACK_ROW_MAJOR, 'S', out, in, wc, in, s, u, k, vt, in);
    if (info != 0) {
        free(work);
        return err_set(err, "truncated SVD of a %d×%d matrix failed (LAPACK info %d)", out, in, (int)info);
    }
    for (int j = 0; j < r; j++) {
        float rs = sqrtf(s[j]);
        for (int i = 0; i < out; i++) a[(size_t)i * r + j] = u[(size_t)i * k + j] * rs;
        for (int i = 0; i < in; i++) b[(size_t)i * r + j] = vt[(size_t)j * in + i] * rs;
    }
    if (s_out) memcpy(s_out, s, sizeof(float) * k);
    free(work);
    return 0;
}

double truncation_error(const float *s, int k, int r) {
    double total = 0, tail = 0;
    for (int j = k - 1; j >= 0; j--) {   // smallest first: the tail sum stays accurate
        double s2 = (double)s[j] * s[j];
        total += s2;
        if (j >= r) tail += s2;
    }
    return total > 0 ? sqrt(tail / total) : 0.0;
}

int truncated_svd_batch(const SvdJob *jobs, int count, Err *err) {
    Err *errs = calloc((size_t)(count > 0 ? count : 1), sizeof *errs);
    if (!errs) return err_set(err, "out of memory for %d SVDs", count);
    int failed = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(|| : failed)
    for (int i = 0; i < count; i++) {
        const SvdJob *j = &jobs[i];
        failed = truncated_svd(j->w, j->out, j->in, j->r, j->a, j->b, j->s, &errs[i]) != 0 || failed;
    }
    for (int i = 0; failed && i < count; i++)
        if (errs[i].msg[0]) {
            err_set(err, "%s", errs[i].msg);
            break;
        }
    free(errs);
    return failed ? -1 : 0;
}
