// test_fixtures.h — the small models and data the engine tests share.
#pragma once
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../engine/model.h"
#include "../engine/dataset.h"
#include "../engine/rng.h"

// Small enough for finite differences, with grouped KV heads (4 query heads, 2 kv heads).
static inline ModelConfig micro_config_layers(int rank, int layers) {
    return (ModelConfig){.dim = 16, .layers = layers, .heads = 4, .kv_heads = 2, .ffn = 24, .seq = 8,
                         .vocab = 37, .rank = rank, .rank_ratio = 0.25f, .rope_theta = 10000.0f,
                         .norm_eps = 1e-5f, .seed = 7};
}

// An in-memory dataset for training without a tokenizer: mostly next = 5·prev + 1 (mod vocab),
// one token in eight random, so there is something to learn and something left to noise.
static inline Dataset pattern_dataset(uint16_t *store, long n, int vocab) {
    uint64_t s = 11;
    store[0] = 0;
    for (long i = 1; i < n; i++)
        store[i] = rng_next(&s) % 8 ? (uint16_t)((5 * store[i - 1] + 1) % vocab) : (uint16_t)(rng_next(&s) % (uint64_t)vocab);
    return (Dataset){.vocab_size = vocab, .token_bytes = 2, .n_tokens = n, .n_train = n * 9 / 10, .tokens = store};
}

static inline void random_tokens(int32_t *tok, int n, int vocab, uint64_t seed) {
    for (int i = 0; i < n; i++) tok[i] = (int32_t)(rng_next(&seed) % (uint64_t)vocab);
}

// A whole file in a malloc'ed, NUL-terminated buffer (NULL when it cannot be opened).
static inline char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)size + 1);
    *n = fread(buf, 1, (size_t)size, f);
    buf[*n] = 0;
    fclose(f);
    return buf;
}

// The mean loss with the parameters set to host (model_forward's loss; errors give 0).
static inline double loss_at(Model *m, const float *host, const int32_t *tok, int B, int T) {
    Err err;
    float loss = 0;
    m->be->upload(m->params, host, m->n_params * sizeof(float));
    model_forward(m, tok, B, T, &loss, &err);
    return loss;
}

// Per tensor, the directional derivative along the normalized gradient and along a random
// direction against a central finite difference, under whatever m->subnet is. A tensor with a
// zero gradient (masked away) must have a zero difference too. The error is relative to the
// tensor's gradient norm, floored so an ~zero gradient is not judged on noise. Returns the
// worst error and names its tensor in *worst; the parameters are restored.
static inline double gradient_check(Model *m, const int32_t *tok, int B, int T, const char **worst) {
    const Backend *be = m->be;
    Err err;
    float loss;
    size_t np = m->n_params;
    float *p0 = malloc(np * 4), *g = malloc(np * 4), *p = malloc(np * 4);
    be->download(p0, m->params, np * 4);
    model_zero_grad(m);
    model_forward(m, tok, B, T, &loss, &err);
    model_backward(m, 1.0f, &err);
    be->download(g, m->grads, np * 4);
    double max_rel = 0;
    uint64_t rng = 99;
    for (int ti = 0; ti < m->n_tensors; ti++) {
        const TensorDesc *t = &m->tensors[ti];
        size_t n = (size_t)t->rows * t->cols;
        double gnorm = 0;
        for (size_t i = 0; i < n; i++) gnorm += (double)g[t->offset + i] * g[t->offset + i];
        gnorm = sqrt(gnorm);
        for (int dir = gnorm > 0 ? 0 : 1; dir < 2; dir++) {
            float *d = malloc(n * 4);
            double dn = 0, gd = 0;
            for (size_t i = 0; i < n; i++) {
                d[i] = dir == 0 ? g[t->offset + i] : rng_normal(&rng);
                dn += (double)d[i] * d[i];
            }
            dn = sqrt(dn);
            for (size_t i = 0; i < n; i++) { d[i] /= dn; gd += (double)g[t->offset + i] * d[i]; }
            const double eps = 1e-2;
            memcpy(p, p0, np * 4);
            for (size_t i = 0; i < n; i++) p[t->offset + i] = p0[t->offset + i] + eps * d[i];
            double lp = loss_at(m, p, tok, B, T);
            for (size_t i = 0; i < n; i++) p[t->offset + i] = p0[t->offset + i] - eps * d[i];
            double lm = loss_at(m, p, tok, B, T);
            double rel = fabs((lp - lm) / (2 * eps) - gd) / fmax(gnorm, 1e-3);
            if (rel > max_rel) { max_rel = rel; *worst = t->name; }
            free(d);
        }
    }
    be->upload(m->params, p0, np * 4);
    free(p0), free(g), free(p);
    return max_rel;
}
