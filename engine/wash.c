// wash.c — the two ways ensemble members are coupled after a step: WASH's random permutation
// of a few coordinates across the members (with its layer schedule), and PAPA's pull toward
// the mean. Both work on host copies, one tensor at a time (see ensemble.h).
#include <stdlib.h>
#include <string.h>
#include "ensemble.h"
#include "model_internal.h"
#include "rng.h"

float wash_tensor_prob(const TensorDesc *t, int layers, float p, WashSchedule schedule) {
    if (schedule == WASH_FLAT) return p;
    int last = layers + 1, depth;
    if (t->role == ROLE_EMBED) depth = 0;
    else if (t->layer < 0) depth = last;          // final norm, output head
    else depth = t->layer + 1;
    return p * (1.0f - (float)depth / (float)last);
}

// The optimizer state of member `tr` laid out like parameter tensor ti: "optim.m.NAME" and
// "optim.v.NAME" when present with the tensor's shape. Returns how many (≤ 2) went into out.
static int moments_of(const StateTensor *st, int n_st, const TensorDesc *t, int ti, float **out) {
    int n = 0;
    for (int s = 0; s < n_st && n < 2; s++) {
        if (st[s].tensor != ti || st[s].rows != t->rows || st[s].cols != t->cols) continue;
        if (strncmp(st[s].name, "optim.m.", 8) != 0 && strncmp(st[s].name, "optim.v.", 8) != 0) continue;
        if (strcmp(st[s].name + 8, t->name) != 0) continue;
        out[n++] = st[s].data;
    }
    return n;
}

long wash_shuffle(Model *members, Trainer *trainers, int k, float p, WashSchedule schedule, int opt_state,
                  uint64_t *rng, long *picked, Err *err) {
    long n_picked = 0, moved_values = 0;
    if (picked) *picked = 0;
    if (k < 2 || !(p > 0)) return 0;
    const Model *m0 = &members[0];
    const Backend *be = m0->be;
    // optimizer state lists, per member (same optimizer config ⇒ same order)
    StateTensor *st[ENSEMBLE_MAX_K] = {0};
    int n_st[ENSEMBLE_MAX_K] = {0};
    int use_state = opt_state && trainers != NULL;
    size_t most = 0;
    for (int i = 0; i < m0->n_tensors; i++) {
        size_t n = (size_t)m0->tensors[i].rows * m0->tensors[i].cols;
        if (n > most) most = n;
    }
    // host copies of one tensor for every member: the values, and up to two moments
    float *buf = malloc(sizeof(float) * most * k * 3);
    int rc = buf ? 0 : err_set(err, "WASH: out of memory (%.1f MB of host scratch)", 12.0 * most * k / 1e6);
    for (int i = 0; use_state && rc == 0 && i < k; i++) {
        n_st[i] = optimizer_state_tensors(&trainers[i].opt, &members[i], NULL, 0);
        st[i] = malloc(sizeof(StateTensor) * (n_st[i] ? n_st[i] : 1));
        if (!st[i]) rc = err_set(err, "WASH: out of memory");
        else optimizer_state_tensors(&trainers[i].opt, &members[i], st[i], n_st[i]);
    }
    // members whose optimizer states differ cannot swap moments: refused before any tensor moves
    for (int ti = 0; use_state && rc == 0 && ti < m0->n_tensors; ti++) {
        float *ignored[2];
        int n_mom = moments_of(st[0], n_st[0], &m0->tensors[ti], ti, ignored);
        for (int i = 1; i < k && rc == 0; i++)
            if (moments_of(st[i], n_st[i], &m0->tensors[ti], ti, ignored) != n_mom)
                rc = err_set(err, "WASH: the members' optimizer states differ at %s", m0->tensors[ti].name);
    }
    for (int ti = 0; rc == 0 && ti < m0->n_tensors; ti++) {
        const TensorDesc *t = &m0->tensors[ti];
        float q = wash_tensor_prob(t, m0->cfg.layers, p, schedule);
        if (!(q > 0)) continue;
        size_t n = (size_t)t->rows * t->cols;
        float *vals = buf, *mom[2] = {buf + most * k, buf + 2 * most * k};
        float *dev_mom[ENSEMBLE_MAX_K][2];
        int n_mom = 0;
        for (int i = 0; use_state && i < k; i++) n_mom = moments_of(st[i], n_st[i], t, ti, dev_mom[i]);
        for (int i = 0; i < k; i++) {
            be->download(vals + i * n, param(&members[i], ti), sizeof(float) * n);
            for (int s = 0; s < n_mom; s++) be->download(mom[s] + i * n, dev_mom[i][s], sizeof(float) * n);
        }
        long tensor_picked = 0;
        for (size_t j = 0; j < n; j++) {
            if (rng_uniform(rng) >= q) continue;
            tensor_picked++;
            int perm[ENSEMBLE_MAX_K];
            for (int i = 0; i < k; i++) perm[i] = i;
            for (int i = k - 1; i > 0; i--) {   // Fisher–Yates
                int r = (int)(rng_next(rng) % (uint64_t)(i + 1)), tmp = perm[i];
                perm[i] = perm[r];
                perm[r] = tmp;
            }
            // member i takes the value member perm[i] had
            float old[ENSEMBLE_MAX_K];
            for (int i = 0; i < k; i++) old[i] = vals[i * n + j];
            for (int i = 0; i < k; i++) {
                vals[i * n + j] = old[perm[i]];
                if (perm[i] != i) moved_values += 1 + n_mom;
            }
            for (int s = 0; s < n_mom; s++) {
                for (int i = 0; i < k; i++) old[i] = mom[s][i * n + j];
                for (int i = 0; i < k; i++) mom[s][i * n + j] = old[perm[i]];
            }
        }
        if (tensor_picked == 0) continue;
        n_picked += tensor_picked;
        for (int i = 0; i < k; i++) {
            be->upload(param(&members[i], ti), vals + i * n, sizeof(float) * n);
            for (int s = 0; s < n_mom; s++) be->upload(dev_mom[i][s], mom[s] + i * n, sizeof(float) * n);
        }
    }
    for (int i = 0; i < k; i++) free(st[i]);
    free(buf);
    if (rc) return -1;
    if (picked) *picked = n_picked;
    return moved_values;
}

double wash_expected_exchange(const Ensemble *e, const EnsembleCoupling *c) {
    const Model *m = &e->members[0];
    int n_st = c->opt_state ? optimizer_state_tensors(&e->trainers[0].opt, m, NULL, 0) : 0;
    StateTensor *st = n_st ? malloc(sizeof(StateTensor) * n_st) : NULL;
    if (st) optimizer_state_tensors(&e->trainers[0].opt, m, st, n_st);
    double expect = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const TensorDesc *t = &m->tensors[i];
        float *ignored[2];
        int moments = st ? moments_of(st, n_st, t, i, ignored) : 0;
        expect += wash_tensor_prob(t, m->cfg.layers, c->p, c->schedule) * (double)t->rows * t->cols * (1 + moments);
    }
    free(st);
    return expect * (e->k - 1);   // a random permutation of K leaves one member's value in place on average
}

long papa_pull(Model *members, int k, float alpha, Err *err) {
    if (k < 1) return err_set(err, "PAPA: no members");
    const Model *m0 = &members[0];
    const Backend *be = m0->be;
    size_t np = m0->n_params;
    long values = 0;
    for (int i = 0; i < m0->n_tensors; i++) values += (long)m0->tensors[i].rows * m0->tensors[i].cols;
    float *h = malloc(sizeof(float) * np * k);
    if (!h) return err_set(err, "PAPA: out of memory (%.1f MB of host scratch)", 4.0 * np * k / 1e6);
    for (int i = 0; i < k; i++) be->download(h + i * np, members[i].params, sizeof(float) * np);
    double a = alpha;
    for (size_t j = 0; j < np; j++) {
        double sum = 0;
        for (int i = 0; i < k; i++) sum += h[i * np + j];
        double mean = sum / k;
        for (int i = 0; i < k; i++) h[i * np + j] = (float)((1.0 - a) * h[i * np + j] + a * mean);
    }
    for (int i = 0; i < k; i++) be->upload(members[i].params, h + i * np, sizeof(float) * np);
    free(h);
    return values * k;
}
