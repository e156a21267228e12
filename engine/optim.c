// optim.c — AdamW over the tensor table, with parameter groups by role, and the schedule.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "optim.h"

int optim_config_default(OptimConfig *cfg, const char *name, Err *err) {
    if (strcmp(name, "adamw") != 0)
        return err_set(err, "unknown optimizer '%s' (known: adamw)", name);
    *cfg = (OptimConfig){.lr = 1e-3f, .min_lr_ratio = 0.1f, .wd = 0.1f, .beta1 = 0.9f, .beta2 = 0.95f,
                         .eps = 1e-8f, .clip = 1.0f, .warmup = 10, .horizon = 0};
    snprintf(cfg->name, sizeof cfg->name, "%s", name);
    return 0;
}

int optim_config_set(OptimConfig *cfg, const char *key, const char *value, Err *err) {
    struct { const char *key; float *field; float lo, hi; } floats[] = {
        {"lr", &cfg->lr, 0, 10}, {"min_lr_ratio", &cfg->min_lr_ratio, 0, 1}, {"wd", &cfg->wd, 0, 10},
        {"beta1", &cfg->beta1, 0, 0.99999f}, {"beta2", &cfg->beta2, 0, 0.99999f},
        {"eps", &cfg->eps, 0, 1}, {"clip", &cfg->clip, 0, 1e9f},
    };
    char *end;
    for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++) {
        if (strcmp(key, floats[i].key) != 0) continue;
        float v = strtof(value, &end);
        if (end == value || *end) return err_set(err, "%s=%s: expected a number", key, value);
        if (!(v >= floats[i].lo && v <= floats[i].hi))
            return err_set(err, "%s=%s: out of range [%g, %g]", key, value, floats[i].lo, floats[i].hi);
        *floats[i].field = v;
        return 0;
    }
    int *ints[] = {&cfg->warmup, &cfg->horizon};
    const char *int_keys[] = {"warmup", "horizon"};
    for (int i = 0; i < 2; i++) {
        if (strcmp(key, int_keys[i]) != 0) continue;
        long v = strtol(value, &end, 10);
        if (end == value || *end || v < 0 || v > 1000000000)
            return err_set(err, "%s=%s: expected a non-negative integer", key, value);
        *ints[i] = (int)v;
        return 0;
    }
    return err_set(err, "unknown option '%s' for optimizer %s", key, cfg->name);
}

int optimizer_build(Optimizer *opt, const Model *m, const OptimConfig *cfg, Err *err) {
    memset(opt, 0, sizeof *opt);
    opt->cfg = *cfg;
    opt->m = m->be->alloc(m->n_params * sizeof(float));
    opt->v = m->be->alloc(m->n_params * sizeof(float));
    if (!opt->m || !opt->v) {
        optimizer_free(opt, m);
        return err_set(err, "out of memory: AdamW state needs 2 × %.1f MB", m->n_params * 4.0 / 1e6);
    }
    return 0;
}

void optimizer_free(Optimizer *opt, const Model *m) {
    m->be->release(opt->m);
    m->be->release(opt->v);
    opt->m = opt->v = NULL;
}

float optimizer_lr(const OptimConfig *c, int step) {
    if (step < c->warmup) return c->lr * (float)(step + 1) / (float)c->warmup;
    if (c->horizon <= c->warmup) return c->lr;
    float progress = (float)(step - c->warmup) / (float)(c->horizon - c->warmup);
    if (progress > 1.0f) progress = 1.0f;
    float cosine = 0.5f * (1.0f + cosf(3.14159265f * progress));  // 1 → 0
    float min_lr = c->lr * c->min_lr_ratio;
    return min_lr + (c->lr - min_lr) * cosine;
}

int optimizer_step(Optimizer *opt, Model *m, float lr, float grad_scale, Err *err) {
    (void)err;
    opt->t++;
    for (int i = 0; i < m->n_tensors; i++) {
        const TensorDesc *t = &m->tensors[i];
        float wd = t->role == ROLE_NORM ? 0.0f : opt->cfg.wd;   // no decay on norm gains
        long n = (long)t->rows * t->cols;
        m->be->adamw_update(m->params + t->offset, m->grads + t->offset, opt->m + t->offset,
                            opt->v + t->offset, n, lr, opt->cfg.beta1, opt->cfg.beta2, opt->cfg.eps,
                            wd, grad_scale, opt->t);
    }
    return 0;
}
