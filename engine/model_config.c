// model_config.c — presets, key=value settings and validation of a ModelConfig.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include "model.h"
#include "number.h"

// SwiGLU hidden size: 8/3·dim (same parameter count as a 4·dim GELU MLP), rounded up to 64.
static int default_ffn(int dim) { return ((8 * dim / 3) + 63) / 64 * 64; }

const char *const model_preset_names[] = {"tiny", "small", "base", NULL};

int model_config_preset(ModelConfig *cfg, const char *name, Err *err) {
    static const struct { int dim, layers, heads, seq; } presets[] = {   // by model_preset_names
        {128, 2, 4, 128},
        {256, 4, 4, 256},   // small: the shape of llm.c's CPU trainer
        {512, 8, 8, 512},
    };
    _Static_assert(sizeof presets / sizeof *presets + 1 == sizeof model_preset_names / sizeof *model_preset_names,
                   "a shape for every preset name");
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        if (strcmp(name, model_preset_names[i]) != 0) continue;
        *cfg = (ModelConfig){
            .dim = presets[i].dim, .layers = presets[i].layers, .heads = presets[i].heads,
            .kv_heads = presets[i].heads, .ffn = default_ffn(presets[i].dim), .seq = presets[i].seq,
            .vocab = 8192, .rank = -1, .rank_ratio = 0.25f, .rope_theta = 10000.0f,
            .norm_eps = 1e-5f, .seed = 1337,
        };
        return 0;
    }
    return err_set(err, "unknown preset '%s' (known: tiny, small, base)", name);
}

static int parse_int(const char *key, const char *value, long lo, long hi, long *out, Err *err) {
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || end == value || *end != '\0')
        return err_set(err, "option %s= expects an integer, got '%s'", key, value);
    if (v < lo || v > hi)   // worded as the shell words its own options' ranges
        return err_set(err, "option %s= must be between %ld and %ld, got %ld", key, lo, hi, v);
    *out = v;
    return 0;
}

int model_config_set(ModelConfig *cfg, const char *key, const char *value, Err *err) {
    struct { const char *key; int *field; } ints[] = {
        {"dim", &cfg->dim}, {"layers", &cfg->layers}, {"heads", &cfg->heads},
        {"kv_heads", &cfg->kv_heads}, {"ffn", &cfg->ffn}, {"seq", &cfg->seq},
        {"vocab", &cfg->vocab}, {"rank", &cfg->rank},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        if (strcmp(key, ints[i].key) != 0) continue;
        long v = 0;
        long lo = strcmp(key, "rank") == 0 ? -1 : 1;
        int heads_before = cfg->heads;
        if (parse_int(key, value, lo, 1 << 24, &v, err)) return -1;
        *ints[i].field = (int)v;
        // plain multi-head attention stays plain (heads=12 on a 4-and-4 preset: 12 key/value
        // heads, not 4); grouped-query keeps its kv_heads while they still fit
        int plain = cfg->kv_heads == heads_before;
        if (strcmp(key, "heads") == 0 && (plain || cfg->kv_heads > v)) cfg->kv_heads = (int)v;
        if (strcmp(key, "dim") == 0) cfg->ffn = default_ffn((int)v);
        return 0;
    }
    if (strcmp(key, "seed") == 0) {
        long v = 0;
        if (parse_int(key, value, 0, LONG_MAX, &v, err)) return -1;
        cfg->seed = (uint64_t)v;
        return 0;
    }
    if (strcmp(key, "rank_ratio") == 0) {
        double d = NAN;
        float v = parse_decimal(value, &d) == 0 ? (float)d : NAN;
        if (!(v > 0.0f && v <= 1.0f))
            return err_set(err, "rank_ratio=%s: expected a number in (0, 1]", value);
        cfg->rank_ratio = v;
        cfg->rank = -1;
        return 0;
    }
    return err_set(err, "unknown model setting '%s'", key);
}

int model_config_rank(const ModelConfig *cfg, int out, int in) {
    if (cfg->rank == 0) return 0;
    if (cfg->rank > 0) return cfg->rank;
    int r = (int)(cfg->rank_ratio * (float)in);  // the ratio never asks more than the matrix has
    int lim = out < in ? out : in;
    return r < 1 ? 1 : r > lim ? lim : r;
}

int model_config_validate(const ModelConfig *c, Err *err) {
    if (c->dim <= 0 || c->layers <= 0 || c->heads <= 0 || c->kv_heads <= 0 || c->ffn <= 0 ||
        c->seq <= 0 || c->vocab <= 0)
        return err_set(err, "every size must be positive (dim=%d layers=%d heads=%d kv_heads=%d ffn=%d seq=%d vocab=%d)",
                       c->dim, c->layers, c->heads, c->kv_heads, c->ffn, c->seq, c->vocab);
    if (c->dim % c->heads)
        return err_set(err, "heads=%d does not divide dim=%d", c->heads, c->dim);
    if ((c->dim / c->heads) % 2)
        return err_set(err, "head size dim/heads=%d must be even for rotary embeddings", c->dim / c->heads);
    if (c->heads % c->kv_heads)
        return err_set(err, "kv_heads=%d does not divide heads=%d", c->kv_heads, c->heads);
    if (c->vocab < 2 || c->vocab > (1 << 24))
        return err_set(err, "vocab=%d out of range [2, %d]", c->vocab, 1 << 24);
    if (c->seq > 1 << 16)
        return err_set(err, "seq=%d is beyond the supported context (65536)", c->seq);
    if (c->rank < -1)
        return err_set(err, "rank=%d: 0 is dense, R > 0 factorized at rank R, -1 the rank_ratio", c->rank);
    if (c->rank == -1 && !(c->rank_ratio > 0 && c->rank_ratio <= 1))
        return err_set(err, "rank_ratio=%g: expected a number in (0, 1]", (double)c->rank_ratio);
    // Every matrix: (out, in). The rank must fit each one.
    int kvd = c->dim / c->heads * c->kv_heads;
    int shapes[4][2] = {{c->dim, c->dim}, {kvd, c->dim}, {c->ffn, c->dim}, {c->dim, c->ffn}};
    for (int i = 0; i < 4; i++) {
        int out = shapes[i][0], in = shapes[i][1];
        int r = model_config_rank(c, out, in);
        int lim = out < in ? out : in;
        if (r > lim)
            return err_set(err, "rank=%d exceeds min(out, in)=%d of a %d×%d matrix", r, lim, out, in);
    }
    return 0;
}

int model_config_same_shape(const ModelConfig *a, const ModelConfig *b) {
    return a->dim == b->dim && a->layers == b->layers && a->heads == b->heads && a->kv_heads == b->kv_heads &&
           a->ffn == b->ffn && a->seq == b->seq && a->vocab == b->vocab && a->rank == b->rank &&
           a->rank_ratio == b->rank_ratio && a->rope_theta == b->rope_theta && a->norm_eps == b->norm_eps;
}

void model_config_describe(const ModelConfig *c, char *buf, size_t cap) {
    char rank[32];
    if (c->rank == 0) snprintf(rank, sizeof rank, "0 (dense)");
    else if (c->rank > 0) snprintf(rank, sizeof rank, "%d", c->rank);
    else snprintf(rank, sizeof rank, "%g·in", c->rank_ratio);
    snprintf(buf, cap, "dim=%d layers=%d heads=%d kv_heads=%d ffn=%d rank=%s seq=%d vocab=%d", c->dim, c->layers,
             c->heads, c->kv_heads, c->ffn, rank, c->seq, c->vocab);
}
