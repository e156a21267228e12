// activations.c — one device buffer for every saved activation and backward scratch,
// carved by a size table: the same walk counts the sizes (base == NULL) and assigns pointers.
#include <stdlib.h>
#include <string.h>
#include "model_internal.h"

typedef struct Carver { float *base; size_t used; } Carver;

static float *carve(Carver *c, size_t n) {
    float *p = c->base ? c->base + c->used : NULL;
    c->used += (n + 15) / 16 * 16;  // 64-byte aligned pieces
    return n ? p : NULL;
}

static void carve_all(const Model *m, Activations *a, Carver *c) {
    const ModelConfig *cfg = &m->cfg;
    size_t n = (size_t)a->B * a->T, d = cfg->dim, f = cfg->ffn;
    size_t kvd = d / cfg->heads * cfg->kv_heads;
    size_t att = a->att_floats;
    LinearGroupSizes sizes = linear_group_sizes(m);
    for (int l = 0; l < cfg->layers; l++) {
        const LayerWeights *w = &m->layer[l];
        LayerActs *la = &a->layer[l];
        LinearGroup groups[4];
        layer_linear_groups(w, groups);
        la->x = carve(c, n * d);
        la->ln1 = carve(c, n * d);
        la->rstd1 = carve(c, n);
        la->tqkv = carve(c, n * linear_group_rank(&groups[0]));
        la->to = carve(c, n * w->wo.rank);
        la->q = carve(c, n * d);
        la->k = carve(c, n * kvd);
        la->v = carve(c, n * kvd);
        la->att = carve(c, att);
        la->ao = carve(c, n * d);
        la->xmid = carve(c, n * d);
        la->ln2 = carve(c, n * d);
        la->rstd2 = carve(c, n);
        la->t13 = carve(c, n * linear_group_rank(&groups[2]));
        la->t2 = carve(c, n * w->w2.rank);
        la->g = carve(c, n * f);
        la->u = carve(c, n * f);
        la->h = carve(c, n * f);
    }
    a->xf = carve(c, n * d);
    a->lnf = carve(c, n * d);
    a->rstdf = carve(c, n);
    a->logits = carve(c, n * cfg->vocab);
    a->losses = carve(c, n);
    a->inputs = (int32_t *)carve(c, n);   // int32 and float have the same size
    a->targets = (int32_t *)carve(c, n);
    a->dres = carve(c, n * d);
    a->dln = carve(c, n * d);
    a->dao = carve(c, n * d);
    a->dq = carve(c, n * d);
    a->dk = carve(c, n * kvd);
    a->dv = carve(c, n * kvd);
    a->dt = carve(c, n * sizes.max_rank);
    a->pack = carve(c, sizes.max_pack);
    a->gpack = carve(c, sizes.max_pack);
    a->datt = carve(c, att);
    a->dg = carve(c, n * f);
    a->du = carve(c, n * f);
    a->dh = carve(c, n * f);
    a->zeros = carve(c, n > d ? (n > f ? n : f) : (d > f ? d : f));   // alloc zero-fills it
}

// What attention keeps per layer for B×T: the backend's answer can change with its mode (the
// GPU's flash kernels keep B·H·T floats, the others B·H·T²), so buffers sized for another
// answer are carved again.
static size_t attention_floats(const Model *m, int B, int T) {
    return m->be->attention_saved_floats(B, m->cfg.heads, T, T, m->cfg.dim / m->cfg.heads);
}

size_t activations_bytes(const Model *m, int B, int T) {
    // attention's part counted too: at a long context the B·H·T² floats are most of it (model
    // info said 19.4 MiB at seq 8192 where training needed 4.3 GB)
    Activations a = {.B = B, .T = T, .att_floats = attention_floats(m, B, T)};
    a.layer = calloc((size_t)m->cfg.layers, sizeof *a.layer);
    if (!a.layer) return 0;   // out of memory for a few pointers: no estimate
    Carver c = {0};
    carve_all(m, &a, &c);
    free(a.layer);
    return c.used * sizeof(float);
}

int activations_ensure(Model *m, int B, int T, Err *err) {
    Activations *a = m->acts;
    if (a && a->B == B && a->T == T && a->att_floats == attention_floats(m, B, T)) return 0;
    if (B <= 0 || T <= 0) return err_set(err, "batch=%d seq=%d: both must be positive", B, T);
    if (T > m->cfg.seq) return err_set(err, "seq=%d is beyond the model's context of %d", T, m->cfg.seq);
    activations_free(m);
    a = calloc(1, sizeof *a);
    if (a) a->layer = calloc((size_t)m->cfg.layers, sizeof *a->layer);
    if (!a || !a->layer) {
        free(a);
        return err_set(err, "out of memory for the activations' table");
    }
    a->B = B;
    a->T = T;
    a->att_floats = attention_floats(m, B, T);
    Carver c = {0};
    carve_all(m, a, &c);
    a->floats = c.used;
    a->base = c.used * sizeof(float) < m->be->mem_available() ? m->be->alloc(c.used * sizeof(float)) : NULL;
    if (!a->base) {
        free(a->layer);
        free(a);
        double gb = c.used * 4.0 / 1e9;   // in the unit a person reads: 24.6 TB, not 24567193.6 MB
        return err_set(err, "out of memory: activations for batch=%d seq=%d need %.1f %s (%.1f GB available)", B, T,
                       gb >= 1e3 ? gb / 1e3 : gb >= 1 ? gb : gb * 1e3, gb >= 1e3 ? "TB" : gb >= 1 ? "GB" : "MB",
                       m->be->mem_available() / 1e9);
    }
    c = (Carver){.base = a->base};
    carve_all(m, a, &c);
    m->acts = a;
    return 0;
}

void activations_free(Model *m) {
    Activations *a = m->acts;
    if (!a) return;
    m->be->release(a->base);
    free(a->layer);
    free(a);
    m->acts = NULL;
}
