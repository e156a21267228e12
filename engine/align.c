// align.c — gradient alignment (see align.h). Gradients are computed on the device with the
// model's own forward/backward (masked for subnetworks); cosines are taken on the host in
// double, where two n_params vectors are cheap next to the backward passes that made them.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "align.h"
#include "inspect.h"
#include "model_internal.h"
#include "rng.h"
#include "number.h"

// ---------------------------------------------------------------------------------------------
// configuration

static const char *const against_names[] = {"microbatch", "blockdrop", "width", "delayed", "members", "forward"};

int align_config_default(AlignConfig *cfg, const char *against, Err *err) {
    for (int i = 0; i < 6; i++) {
        if (strcmp(against, against_names[i]) != 0) continue;
        *cfg = (AlignConfig){.against = (AlignAgainst)i, .guess = ALIGN_GUESS_RANDOM, .p = 0.5f, .draws = 4,
                             .batches = 1, .B = 4, .T = 64, .seed = 1};
        return 0;
    }
    return err_set(err, "against=%s: unknown (known: microbatch, blockdrop, width, delayed, members, forward)", against);
}

static int parse_count(const char *key, const char *value, int lo, int hi, int *out, Err *err) {
    char *end;
    long v = strtol(value, &end, 10);
    if (end == value || *end || v < lo || v > hi) return err_set(err, "%s=%s: expected an integer in [%d, %d]", key, value, lo, hi);
    *out = (int)v;
    return 0;
}

// The local guess is one gradient of the blocks' early-exit losses: nothing to draw again.
static int local_takes_no_draws(Err *err) {
    return err_set(err, "guess=local takes no draws= (its guess is the one gradient of the local losses; "
                        "draws= averages guess=random's directions)");
}

int align_config_set(AlignConfig *cfg, const char *key, const char *value, Err *err) {
    AlignAgainst a = cfg->against;
    int sub = a == ALIGN_BLOCKDROP || a == ALIGN_WIDTH;
    if (strcmp(key, "p") == 0 && sub) {
        double d = NAN;
        float p = parse_decimal(value, &d) == 0 ? (float)d : NAN;
        float hi = a == ALIGN_BLOCKDROP ? 1.0f : 0.999f;   // width keeps at least one unit anyway
        if (!(p >= 0.0f && p <= hi)) return err_set(err, "p=%s: expected a number in [0, %g]", value, hi);
        cfg->p = p;
        return 0;
    }
    if (strcmp(key, "draws") == 0 && (sub || a == ALIGN_FORWARD)) {
        if (cfg->guess == ALIGN_GUESS_LOCAL) return local_takes_no_draws(err);
        cfg->draws_given = 1;
        return parse_count(key, value, 1, 1000, &cfg->draws, err);
    }
    if (strcmp(key, "batches") == 0) return parse_count(key, value, 1, 10000, &cfg->batches, err);
    if (strcmp(key, "batch") == 0) return parse_count(key, value, 1, 1 << 16, &cfg->B, err);
    if (strcmp(key, "seq") == 0) return parse_count(key, value, 1, 1 << 20, &cfg->T, err);
    if (strcmp(key, "seed") == 0) {
        char *end;
        unsigned long long v = strtoull(value, &end, 10);
        if (end == value || *end) return err_set(err, "seed=%s: expected a non-negative integer", value);
        cfg->seed = v;
        return 0;
    }
    if (strcmp(key, "guess") == 0 && a == ALIGN_FORWARD) {
        if (strcmp(value, "random") == 0) cfg->guess = ALIGN_GUESS_RANDOM;
        else if (strcmp(value, "local") == 0 && cfg->draws_given) return local_takes_no_draws(err);
        else if (strcmp(value, "local") == 0) cfg->guess = ALIGN_GUESS_LOCAL;
        else return err_set(err, "guess=%s: expected random or local", value);
        return 0;
    }
    return err_set(err, "align against=%s takes no option '%s'", against_names[a], key);
}

void align_config_describe(const AlignConfig *cfg, char *buf, size_t cap) {
    const char *name = against_names[cfg->against];
    switch (cfg->against) {
    case ALIGN_BLOCKDROP:
    case ALIGN_WIDTH: snprintf(buf, cap, "%s p=%g draws=%d", name, cfg->p, cfg->draws); break;
    case ALIGN_FORWARD:
        if (cfg->guess == ALIGN_GUESS_LOCAL) snprintf(buf, cap, "forward guess=local");
        else snprintf(buf, cap, "forward guess=random draws=%d", cfg->draws);
        break;
    default: snprintf(buf, cap, "%s", name);
    }
}

// ---------------------------------------------------------------------------------------------
// groups and cosines (host, double)

// One group per matrix (A with its B) and per other tensor, in table order.
static AlignGroup *make_groups(const Model *m, int *n) {
    AlignGroup *g = calloc((size_t)m->n_tensors, sizeof *g);
    int k = 0;
    for (int i = 0; g && i < m->n_tensors; i++) {
        const TensorDesc *t = &m->tensors[i];
        if (t->role == ROLE_FACTOR_B) continue;   // joined to the A just before it
        AlignGroup *x = &g[k++];
        snprintf(x->param, sizeof x->param, "%s", t->name);
        x->layer = t->layer;
        x->tensor = i;
        x->tensor_b = -1;
        if (t->role == ROLE_FACTOR_A) {
            x->param[strlen(x->param) - 2] = 0;   // "NAME.A" → "NAME"
            x->tensor_b = i + 1;
        }
    }
    *n = k;
    return g;
}

typedef struct Dots { double xy, xx, yy; } Dots;

static Dots group_dots(const Model *m, const AlignGroup *g, const float *x, const float *y) {
    Dots d = {0};
    int ts[2] = {g->tensor, g->tensor_b};
    for (int j = 0; j < 2 && ts[j] >= 0; j++) {
        const TensorDesc *t = &m->tensors[ts[j]];
        const float *a = x + t->offset, *b = y + t->offset;
        size_t n = (size_t)t->rows * t->cols;
        for (size_t i = 0; i < n; i++) {
            d.xy += (double)a[i] * b[i];
            d.xx += (double)a[i] * a[i];
            d.yy += (double)b[i] * b[i];
        }
    }
    return d;
}

static double cosine(Dots d) { return d.xx > 0 && d.yy > 0 ? d.xy / sqrt(d.xx * d.yy) : NAN; }

// out = the cosines of host gradients g1, g2.
static int compare_host(const Model *m, const float *g1, const float *g2, AlignResult *out, Err *err) {
    memset(out, 0, sizeof *out);
    snprintf(out->against, sizeof out->against, "given");
    out->per_param = make_groups(m, &out->n);
    if (!out->per_param) return err_set(err, "out of memory for the alignment table");
    Dots all = {0};
    for (int i = 0; i < out->n; i++) {
        AlignGroup *g = &out->per_param[i];
        Dots d = group_dots(m, g, g1, g2);
        g->cosine = cosine(d);
        g->norm1 = sqrt(d.xx);
        g->norm2 = sqrt(d.yy);
        all.xy += d.xy;
        all.xx += d.xx;
        all.yy += d.yy;
    }
    out->overall = cosine(all);
    out->norm1 = sqrt(all.xx);
    out->norm2 = sqrt(all.yy);
    out->norm_ratio = all.xx > 0 ? out->norm2 / out->norm1 : NAN;
    return 0;
}

// est += weight·(g·u/‖u‖²)·u on every group (host): the per-group forward-gradient projection.
static void project_accumulate(const Model *m, const AlignGroup *groups, int n, const float *g, const float *u,
                               float weight, float *est) {
    for (int i = 0; i < n; i++) {
        Dots d = group_dots(m, &groups[i], g, u);
        if (d.yy == 0) continue;   // no guess for this group: the estimate stays 0 there
        float c = (float)(weight * d.xy / d.yy);
        int ts[2] = {groups[i].tensor, groups[i].tensor_b};
        for (int j = 0; j < 2 && ts[j] >= 0; j++) {
            const TensorDesc *t = &m->tensors[ts[j]];
            size_t len = (size_t)t->rows * t->cols;
            for (size_t k = 0; k < len; k++) est[t->offset + k] += c * u[t->offset + k];
        }
    }
}

void align_result_free(AlignResult *r) {
    free(r->per_param);
    r->per_param = NULL;
    r->n = 0;
}

// Host copies of device params-shaped buffers (NULL entries are skipped).
static float *host_copy(const Model *m, const float *dev) {
    float *h = malloc(sizeof(float) * m->n_params);
    if (h && dev) m->be->download(h, dev, sizeof(float) * m->n_params);
    return h;
}

int align_compare(const Model *m, const float *g1, const float *g2, AlignResult *out, Err *err) {
    float *h1 = host_copy(m, g1), *h2 = host_copy(m, g2);
    int rc = h1 && h2 ? compare_host(m, h1, h2, out, err) : err_set(err, "out of memory for two gradients on the host");
    free(h1);
    free(h2);
    return rc;
}

int align_compare_members(const Model *m, const float *g1, const float *const *gs, int k, AlignResult *out, Err *err) {
    if (k < 1) return err_set(err, "members: no other member to compare with");
    float *h1 = host_copy(m, g1), *h2 = host_copy(m, NULL);
    int rc = h1 && h2 ? 0 : err_set(err, "out of memory for two gradients on the host");
    for (int j = 0; j < k && rc == 0; j++) {
        AlignResult r;
        m->be->download(h2, gs[j], sizeof(float) * m->n_params);
        if ((rc = compare_host(m, h1, h2, j == 0 ? out : &r, err)) || j == 0) continue;
        for (int i = 0; i < out->n; i++) {
            out->per_param[i].cosine += r.per_param[i].cosine;
            out->per_param[i].norm2 += r.per_param[i].norm2;
        }
        out->overall += r.overall;
        out->norm2 += r.norm2;
        out->norm_ratio += r.norm_ratio;
        align_result_free(&r);
    }
    for (int i = 0; rc == 0 && i < out->n; i++) {
        out->per_param[i].cosine /= k;
        out->per_param[i].norm2 /= k;
    }
    if (rc == 0) {
        out->overall /= k;
        out->norm2 /= k;
        out->norm_ratio /= k;
        snprintf(out->against, sizeof out->against, "members (member 0 against the %d other%s)", k, k == 1 ? "" : "s");
    }
    free(h1);
    free(h2);
    return rc;
}

static int forward_compare_host(const Model *m, const float *g, const float *guess, AlignResult *out, Err *err) {
    int n;
    AlignGroup *groups = make_groups(m, &n);
    float *est = calloc(m->n_params, sizeof(float));
    int rc = groups && est ? 0 : err_set(err, "out of memory for a forward-gradient estimate");
    if (rc == 0) {
        project_accumulate(m, groups, n, g, guess, 1.0f, est);
        rc = compare_host(m, g, est, out, err);
    }
    free(groups);
    free(est);
    return rc;
}

int align_forward_compare(const Model *m, const float *g, const float *guess, AlignResult *out, Err *err) {
    float *hg = host_copy(m, g), *hu = host_copy(m, guess);
    int rc = hg && hu ? forward_compare_host(m, hg, hu, out, err) : err_set(err, "out of memory for two gradients on the host");
    free(hg);
    free(hu);
    return rc;
}

// ---------------------------------------------------------------------------------------------
// subnetwork masks

void subnet_mask_free(SubnetMask *mask) {
    free((void *)mask->block_keep);
    free((void *)mask->head_keep);
    free((void *)mask->ffn_keep);
    memset(mask, 0, sizeof *mask);
}

int subnet_mask_blockdrop(const Model *m, float p, uint64_t *rng, SubnetMask *mask, Err *err) {
    memset(mask, 0, sizeof *mask);
    uint8_t *keep = malloc((size_t)m->cfg.layers);
    if (!keep) return err_set(err, "out of memory for a block mask");
    for (int l = 0; l < m->cfg.layers; l++) keep[l] = rng_uniform(rng) >= p;
    mask->block_keep = keep;
    return 0;
}

// keep[0..n): exactly k ones at random places (a partial Fisher–Yates shuffle of the indices).
static void keep_exactly(uint8_t *keep, int n, int k, int *idx, uint64_t *rng) {
    for (int i = 0; i < n; i++) { idx[i] = i; keep[i] = 0; }
    for (int i = 0; i < k; i++) {
        int j = i + (int)(rng_next(rng) % (uint64_t)(n - i));
        int t = idx[i]; idx[i] = idx[j]; idx[j] = t;
        keep[idx[i]] = 1;
    }
}

static int kept_count(int n, float p) {
    int k = (int)lroundf((1.0f - p) * n);
    return k < 1 ? 1 : k > n ? n : k;
}

int subnet_mask_width(const Model *m, float p, uint64_t *rng, SubnetMask *mask, Err *err) {
    const ModelConfig *c = &m->cfg;
    memset(mask, 0, sizeof *mask);
    uint8_t *heads = malloc((size_t)c->layers * c->heads), *ffn = malloc((size_t)c->layers * c->ffn);
    int *idx = malloc(sizeof(int) * (c->ffn > c->heads ? c->ffn : c->heads));
    if (!heads || !ffn || !idx) {
        free(heads); free(ffn); free(idx);
        return err_set(err, "out of memory for a width mask");
    }
    for (int l = 0; l < c->layers; l++) {
        keep_exactly(heads + (size_t)l * c->heads, c->heads, kept_count(c->heads, p), idx, rng);
        keep_exactly(ffn + (size_t)l * c->ffn, c->ffn, kept_count(c->ffn, p), idx, rng);
    }
    free(idx);
    mask->head_keep = heads;
    mask->ffn_keep = ffn;
    return 0;
}

// ---------------------------------------------------------------------------------------------
// the `align` command

// m->grads += scale·∇(mean loss over `batches` batches of tokens) under mask; local: the
// local-loss gradient (model_backward_local) instead.
static int accumulate(Model *m, const int32_t *tokens, const AlignConfig *cfg, const SubnetMask *mask, int local,
                      float scale, Err *err) {
    size_t per = (size_t)cfg->B * (cfg->T + 1);
    m->subnet = mask;
    for (int b = 0; b < cfg->batches; b++) {
        if (cfg->stop && cfg->stop(cfg->stop_ctx, b, cfg->batches)) return err_set(err, "align interrupted");
        float loss;
        if (model_forward(m, tokens + b * per, cfg->B, cfg->T, &loss, err)) return -1;
        int rc = local ? model_backward_local(m, scale / cfg->batches, err) : model_backward(m, scale / cfg->batches, err);
        if (rc) return -1;
    }
    return 0;
}

// The host gradient of kind `against`'s second term: subnetworks averaged over draws.
static int subnetwork_gradient(Model *m, const int32_t *tokens, const AlignConfig *cfg, float *host, Err *err) {
    uint64_t rng = cfg->seed ^ 0xd1ce5eedull;
    model_zero_grad(m);
    for (int d = 0; d < cfg->draws; d++) {
        SubnetMask mask;
        int rc = cfg->against == ALIGN_BLOCKDROP ? subnet_mask_blockdrop(m, cfg->p, &rng, &mask, err)
                                                 : subnet_mask_width(m, cfg->p, &rng, &mask, err);
        if (rc == 0) rc = accumulate(m, tokens, cfg, &mask, 0, 1.0f / cfg->draws, err);
        subnet_mask_free(&mask);
        if (rc) return -1;
    }
    m->be->download(host, m->grads, sizeof(float) * m->n_params);
    return 0;
}

static int device_gradient(Model *m, const int32_t *tokens, const AlignConfig *cfg, int local, float *host, Err *err) {
    model_zero_grad(m);
    if (accumulate(m, tokens, cfg, NULL, local, 1.0f, err)) return -1;
    m->be->download(host, m->grads, sizeof(float) * m->n_params);
    return 0;
}

// est = mean over draws of the per-group projections of g onto u ~ N(0, I).
static int random_forward_estimate(const Model *m, const float *g, const AlignConfig *cfg, float *est, Err *err) {
    int n;
    AlignGroup *groups = make_groups(m, &n);
    float *u = malloc(sizeof(float) * m->n_params);
    if (!groups || !u) {
        free(groups); free(u);
        return err_set(err, "out of memory for random guesses");
    }
    uint64_t rng = cfg->seed ^ 0xf0e3a2d5ull;
    memset(est, 0, sizeof(float) * m->n_params);
    for (int d = 0; d < cfg->draws; d++) {
        for (size_t i = 0; i < m->n_params; i++) u[i] = rng_normal(&rng);
        project_accumulate(m, groups, n, g, u, 1.0f / cfg->draws, est);
    }
    free(groups);
    free(u);
    return 0;
}

static int second_gradient(Model *m, const Dataset *ds, const AlignConfig *cfg, const int32_t *tokens, const float *g1,
                           const float *delayed, float *g2, Err *err) {
    switch (cfg->against) {
    case ALIGN_MICROBATCH: {
        size_t n = (size_t)cfg->batches * cfg->B * (cfg->T + 1);
        int32_t *other = malloc(sizeof(int32_t) * n);
        uint64_t rng = cfg->seed ^ 0x07e4ba7c4ull;   // another stream: other batches
        int rc = other ? 0 : err_set(err, "out of memory for tokens");
        for (int b = 0; b < cfg->batches && rc == 0; b++)
            rc = dataset_batch(ds, 0, cfg->B, cfg->T, &rng, other + (size_t)b * cfg->B * (cfg->T + 1), err);
        if (rc == 0) rc = device_gradient(m, other, cfg, 0, g2, err);
        free(other);
        return rc;
    }
    case ALIGN_BLOCKDROP:
    case ALIGN_WIDTH: return subnetwork_gradient(m, tokens, cfg, g2, err);
    case ALIGN_DELAYED:
        if (!delayed) return err_set(err, "against=delayed: no earlier gradient yet (take a training step first)");
        m->be->download(g2, delayed, sizeof(float) * m->n_params);
        return 0;
    case ALIGN_FORWARD:
        if (cfg->guess == ALIGN_GUESS_RANDOM) return random_forward_estimate(m, g1, cfg, g2, err);
        {
            float *guess = malloc(sizeof(float) * m->n_params);
            int rc = guess ? device_gradient(m, tokens, cfg, 1, guess, err) : err_set(err, "out of memory for a guess");
            if (rc == 0) {
                int n;
                AlignGroup *groups = make_groups(m, &n);
                memset(g2, 0, sizeof(float) * m->n_params);
                if (groups) project_accumulate(m, groups, n, g1, guess, 1.0f, g2);
                else rc = err_set(err, "out of memory for a forward-gradient estimate");
                free(groups);
            }
            free(guess);
            return rc;
        }
    case ALIGN_MEMBERS: break;
    }
    return err_set(err, "against=members compares ensemble members: it needs an ensemble (align_compare_members)");
}

static int align_with_buffers(Model *m, const Dataset *ds, const AlignConfig *cfg, const float *delayed, int32_t *tokens,
                              float *g1, float *g2, AlignResult *out, Err *err) {
    uint64_t rng = cfg->seed;
    for (int b = 0; b < cfg->batches; b++)
        if (dataset_batch(ds, 0, cfg->B, cfg->T, &rng, tokens + (size_t)b * cfg->B * (cfg->T + 1), err)) return -1;
    if (device_gradient(m, tokens, cfg, 0, g1, err)) return -1;
    if (second_gradient(m, ds, cfg, tokens, g1, delayed, g2, err)) return -1;
    if (compare_host(m, g1, g2, out, err)) return -1;
    align_config_describe(cfg, out->against, sizeof out->against);
    return 0;
}

int align_run(Model *m, const Dataset *ds, const AlignConfig *cfg, const float *delayed, AlignResult *out, Err *err) {
    memset(out, 0, sizeof *out);
    if (cfg->against == ALIGN_MEMBERS) return second_gradient(m, ds, cfg, NULL, NULL, NULL, NULL, err);
    if (cfg->batches < 1 || cfg->draws < 1) return err_set(err, "align: batches and draws must be at least 1");
    if (!ds) return err_set(err, "align needs training data (data load FILE)");
    size_t bytes = m->n_params * sizeof(float);
    int32_t *tokens = malloc(sizeof(int32_t) * (size_t)cfg->batches * cfg->B * (cfg->T + 1));
    float *g1 = malloc(bytes), *g2 = malloc(bytes), *saved = NULL;
    int rc = tokens && g1 && g2 ? 0 : err_set(err, "out of memory: align needs two gradients on the host (%.1f MB)", 2 * bytes / 1e6);
    if (rc == 0) rc = inspect_snapshot(m, m->grads, &saved, err);
    const SubnetMask *subnet = m->subnet;
    if (rc == 0) {
        rc = align_with_buffers(m, ds, cfg, delayed, tokens, g1, g2, out, err);
        m->be->copy(m->grads, saved, bytes);   // the trainer's gradient as it was
        m->be->release(saved);
    }
    m->subnet = subnet;
    free(tokens);
    free(g1);
    free(g2);
    return rc;
}
