// model_forward.c — the forward and backward passes, one pair of functions per layer.
// A factorized linear never forms W = A·Bᵀ: y = (x·B)·Aᵀ, and its backward is
//   G_t = G_y·A, G_A = G_yᵀ·t, G_B = xᵀ·G_t, G_x = G_t·Bᵀ.
#include <math.h>
#include <stdlib.h>
#include "model_internal.h"

// ---------------------------------------------------------------------------------------------
// linear: y(n×out) = x(n×in)·Wᵀ + beta·y

void linear_forward(const Model *m, const Linear *lin, float *y, float *t, const float *x, int n, float beta) {
    const Backend *be = m->be;
    if (lin->rank == 0) {
        be->gemm(0, 1, n, lin->out, lin->in, 1.0f, x, lin->in, param(m, lin->w), lin->in, beta, y, lin->out);
        return;
    }
    int r = lin->rank;
    be->gemm(0, 0, n, r, lin->in, 1.0f, x, lin->in, param(m, lin->b), r, 0.0f, t, r);           // t = x·B
    be->gemm(0, 1, n, lin->out, r, 1.0f, t, r, param(m, lin->w), r, beta, y, lin->out);         // y = t·Aᵀ
}

// Adds the weight gradients; dx = dy·W + beta_dx·dx. dt is scratch of n×rank.
static void linear_backward(const Model *m, const Linear *lin, float *dx, float beta_dx, float *dt,
                            const float *dy, const float *x, const float *t, int n) {
    const Backend *be = m->be;
    if (lin->rank == 0) {
        be->gemm(1, 0, lin->out, lin->in, n, 1.0f, dy, lin->out, x, lin->in, 1.0f, grad(m, lin->w), lin->in);
        be->gemm(0, 0, n, lin->in, lin->out, 1.0f, dy, lin->out, param(m, lin->w), lin->in, beta_dx, dx, lin->in);
        return;
    }
    int r = lin->rank;
    be->gemm(0, 0, n, r, lin->out, 1.0f, dy, lin->out, param(m, lin->w), r, 0.0f, dt, r);       // G_t = G_y·A
    be->gemm(1, 0, lin->out, r, n, 1.0f, dy, lin->out, t, r, 1.0f, grad(m, lin->w), r);         // G_A += G_yᵀ·t
    be->gemm(1, 0, lin->in, r, n, 1.0f, x, lin->in, dt, r, 1.0f, grad(m, lin->b), r);           // G_B += xᵀ·G_t
    be->gemm(0, 1, n, lin->in, r, 1.0f, dt, r, param(m, lin->b), r, beta_dx, dx, lin->in);      // G_x = G_t·Bᵀ
}

// ---------------------------------------------------------------------------------------------
// subnetwork masks (Model.subnet): zeroing runs of columns of an activation or its gradient

// x[:, c0:c0+nc] = 0 for x (rows×ld) as C = zeros(rows×1)·zeros(1×nc) with beta = 0: the Backend
// has no strided fill, and one GEMM per run keeps masking device-agnostic.
static void zero_columns(const Model *m, float *x, int rows, int ld, int c0, int nc) {
    const float *z = m->acts->zeros;
    m->be->gemm(0, 0, rows, nc, 1, 1.0f, z, 1, z, nc, 0.0f, x + c0, ld);
}

// x(rows × count·group): zero the columns of every unit u with keep[u] == 0, a run at a time.
static void mask_units(const Model *m, float *x, int rows, const uint8_t *keep, int count, int group) {
    for (int u = 0; u < count;) {
        if (keep[u]) { u++; continue; }
        int e = u;
        while (e < count && !keep[e]) e++;
        zero_columns(m, x, rows, count * group, u * group, (e - u) * group);
        u = e;
    }
}

static const uint8_t *head_mask(const Model *m, int l) {
    const SubnetMask *s = m->acts->subnet;
    return s && s->head_keep ? s->head_keep + (size_t)l * m->cfg.heads : NULL;
}

static const uint8_t *ffn_mask(const Model *m, int l) {
    const SubnetMask *s = m->acts->subnet;
    return s && s->ffn_keep ? s->ffn_keep + (size_t)l * m->cfg.ffn : NULL;
}

static int block_kept(const Model *m, int l) {
    const SubnetMask *s = m->acts->subnet;
    return !s || !s->block_keep || s->block_keep[l];
}

// ---------------------------------------------------------------------------------------------
// one transformer block: x_mid = x + wo(attn(norm(x))); x_out = x_mid + w2(swiglu(w1·, w3·))

static void block_forward(const Model *m, int l, float *x_out, int B, int T) {
    const Backend *be = m->be;
    const ModelConfig *c = &m->cfg;
    const LayerWeights *w = &m->layer[l];
    LayerActs *a = &m->acts->layer[l];
    int n = B * T, hd = c->dim / c->heads;
    be->rmsnorm_forward(a->ln1, a->rstd1, a->x, param(m, w->attn_norm), n, c->dim, c->norm_eps);
    linear_forward(m, &w->wq, a->q, a->tq, a->ln1, n, 0.0f);
    linear_forward(m, &w->wk, a->k, a->tk, a->ln1, n, 0.0f);
    linear_forward(m, &w->wv, a->v, a->tv, a->ln1, n, 0.0f);
    be->rope_forward(a->q, a->q, B, T, c->heads, hd, 0, c->rope_theta);
    be->rope_forward(a->k, a->k, B, T, c->kv_heads, hd, 0, c->rope_theta);
    be->attention_forward(a->ao, a->att, a->q, a->k, a->v, B, T, T, c->heads, c->kv_heads, hd);
    if (head_mask(m, l)) mask_units(m, a->ao, n, head_mask(m, l), c->heads, hd);
    be->copy(a->xmid, a->x, sizeof(float) * n * c->dim);
    linear_forward(m, &w->wo, a->xmid, a->to, a->ao, n, 1.0f);                                  // residual add
    be->rmsnorm_forward(a->ln2, a->rstd2, a->xmid, param(m, w->mlp_norm), n, c->dim, c->norm_eps);
    linear_forward(m, &w->w1, a->g, a->t1, a->ln2, n, 0.0f);
    linear_forward(m, &w->w3, a->u, a->t3, a->ln2, n, 0.0f);
    be->swiglu_forward(a->h, a->g, a->u, (long)n * c->ffn);
    if (ffn_mask(m, l)) mask_units(m, a->h, n, ffn_mask(m, l), c->ffn, 1);
    be->copy(x_out, a->xmid, sizeof(float) * n * c->dim);
    linear_forward(m, &w->w2, x_out, a->t2, a->h, n, 1.0f);                                     // residual add
}

// On entry acts->dres holds ∂L/∂x_out; on return ∂L/∂x (the block input).
static void block_backward(const Model *m, int l, int B, int T) {
    const Backend *be = m->be;
    const ModelConfig *c = &m->cfg;
    const LayerWeights *w = &m->layer[l];
    const LayerActs *a = &m->acts->layer[l];
    Activations *s = m->acts;
    int n = B * T, hd = c->dim / c->heads, kvd = hd * c->kv_heads;
    size_t nf = (size_t)n * c->ffn;
    // MLP
    linear_backward(m, &w->w2, s->dh, 0.0f, s->dt, s->dres, a->h, a->t2, n);
    if (ffn_mask(m, l)) mask_units(m, s->dh, n, ffn_mask(m, l), c->ffn, 1);   // masked h is constant 0
    be->zero(s->dg, nf * sizeof(float));
    be->zero(s->du, nf * sizeof(float));
    be->swiglu_backward(s->dg, s->du, s->dh, a->g, a->u, (long)nf);
    linear_backward(m, &w->w1, s->dln, 0.0f, s->dt, s->dg, a->ln2, a->t1, n);
    linear_backward(m, &w->w3, s->dln, 1.0f, s->dt, s->du, a->ln2, a->t3, n);
    be->rmsnorm_backward(s->dres, grad(m, w->mlp_norm), s->dln, a->xmid, param(m, w->mlp_norm), a->rstd2, n, c->dim);
    // attention
    linear_backward(m, &w->wo, s->dao, 0.0f, s->dt, s->dres, a->ao, a->to, n);
    if (head_mask(m, l)) mask_units(m, s->dao, n, head_mask(m, l), c->heads, hd);
    be->zero(s->dq, sizeof(float) * n * c->dim);
    be->zero(s->dk, sizeof(float) * n * kvd);
    be->zero(s->dv, sizeof(float) * n * kvd);
    be->attention_backward(s->dq, s->dk, s->dv, s->datt, s->dao, a->att, a->q, a->k, a->v,
                           B, T, T, c->heads, c->kv_heads, hd);
    be->zero(s->dq_pre, sizeof(float) * n * c->dim);
    be->zero(s->dk_pre, sizeof(float) * n * kvd);
    be->rope_backward(s->dq_pre, s->dq, B, T, c->heads, hd, 0, c->rope_theta);
    be->rope_backward(s->dk_pre, s->dk, B, T, c->kv_heads, hd, 0, c->rope_theta);
    linear_backward(m, &w->wq, s->dln, 0.0f, s->dt, s->dq_pre, a->ln1, a->tq, n);
    linear_backward(m, &w->wk, s->dln, 1.0f, s->dt, s->dk_pre, a->ln1, a->tk, n);
    linear_backward(m, &w->wv, s->dln, 1.0f, s->dt, s->dv, a->ln1, a->tv, n);
    be->rmsnorm_backward(s->dres, grad(m, w->attn_norm), s->dln, a->x, param(m, w->attn_norm), a->rstd1, n, c->dim);
}

// ---------------------------------------------------------------------------------------------
// the model

static int upload_tokens(Model *m, const int32_t *tokens, int B, int T, Err *err) {
    int n = B * T;
    int32_t *host = malloc(sizeof(int32_t) * 2 * n);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int32_t in = tokens[b * (T + 1) + t], tg = tokens[b * (T + 1) + t + 1];
            if (in < 0 || in >= m->cfg.vocab || tg < 0 || tg >= m->cfg.vocab) {
                free(host);
                return err_set(err, "token id %d out of range for vocab %d", in < 0 || in >= m->cfg.vocab ? in : tg, m->cfg.vocab);
            }
            host[b * T + t] = in;          // inputs  = tokens[:, :T]
            host[n + b * T + t] = tg;      // targets = tokens[:, 1:]
        }
    m->be->upload(m->acts->inputs, host, sizeof(int32_t) * n);
    m->be->upload(m->acts->targets, host + n, sizeof(int32_t) * n);
    free(host);
    return 0;
}

int model_forward(Model *m, const int32_t *tokens, int B, int T, float *loss, Err *err) {
    if (activations_ensure(m, B, T, err) || upload_tokens(m, tokens, B, T, err)) return -1;
    const Backend *be = m->be;
    const ModelConfig *c = &m->cfg;
    Activations *a = m->acts;
    int n = B * T;
    a->subnet = m->subnet;
    be->embedding_forward(a->layer[0].x, a->inputs, param(m, m->embed), n, c->dim);
    for (int l = 0; l < c->layers; l++) {
        float *x_out = l + 1 < c->layers ? a->layer[l + 1].x : a->xf;
        if (block_kept(m, l)) block_forward(m, l, x_out, B, T);
        else be->copy(x_out, a->layer[l].x, sizeof(float) * n * c->dim);   // skipped: residual only
    }
    be->rmsnorm_forward(a->lnf, a->rstdf, a->xf, param(m, m->norm), n, c->dim, c->norm_eps);
    be->gemm(0, 1, n, c->vocab, c->dim, 1.0f, a->lnf, c->dim, param(m, m->head), c->dim, 0.0f, a->logits, c->vocab);
    be->softmax_xent_forward(a->losses, NULL, a->logits, a->targets, n, c->vocab, 0.0f);
    *loss = (float)(be->sum(a->losses, n) / n);
    a->forward_done = 1;
    if (!isfinite(*loss)) return err_set(err, "the loss is not finite (%g)", *loss);
    return 0;
}

// The loss's backward down to the residual x at the top of the stack: acts->dres = ∂L/∂x,
// and the head and final-norm gradients added into dhead (NULL: not computed) and dnorm.
// recompute: first run the final norm and head forward on x (an early exit; the logits and
// final-norm outputs of the forward are overwritten).
static void loss_backward(const Model *m, const float *x, int recompute, float *dhead, float *dnorm, float grad_scale) {
    const Backend *be = m->be;
    const ModelConfig *c = &m->cfg;
    Activations *a = m->acts;
    int n = a->B * a->T;
    if (recompute) {
        be->rmsnorm_forward(a->lnf, a->rstdf, x, param(m, m->norm), n, c->dim, c->norm_eps);
        be->gemm(0, 1, n, c->vocab, c->dim, 1.0f, a->lnf, c->dim, param(m, m->head), c->dim, 0.0f, a->logits, c->vocab);
    }
    // dlogits = (softmax − onehot)·grad_scale/n, written over the logits
    be->softmax_xent_forward(a->losses, a->logits, a->logits, a->targets, n, c->vocab, grad_scale / n);
    if (dhead) be->gemm(1, 0, c->vocab, c->dim, n, 1.0f, a->logits, c->vocab, a->lnf, c->dim, 1.0f, dhead, c->dim);
    be->gemm(0, 0, n, c->dim, c->vocab, 1.0f, a->logits, c->vocab, param(m, m->head), c->dim, 0.0f, a->dln, c->dim);
    be->zero(a->dres, sizeof(float) * n * c->dim);
    be->rmsnorm_backward(a->dres, dnorm, a->dln, x, param(m, m->norm), a->rstdf, n, c->dim);
}

int model_backward(Model *m, float grad_scale, Err *err) {
    Activations *a = m->acts;
    if (!a || !a->forward_done) return err_set(err, "backward without a forward");
    const ModelConfig *c = &m->cfg;
    int B = a->B, T = a->T, n = B * T;
    loss_backward(m, a->xf, 0, grad(m, m->head), grad(m, m->norm), grad_scale);
    for (int l = c->layers - 1; l >= 0; l--)
        if (block_kept(m, l)) block_backward(m, l, B, T);   // a skipped block passes dres through
    m->be->embedding_backward(grad(m, m->embed), a->dres, a->inputs, n, c->dim);
    a->forward_done = 0;  // the logits now hold gradients
    return 0;
}

int model_backward_local(Model *m, float grad_scale, Err *err) {
    Activations *a = m->acts;
    if (!a || !a->forward_done) return err_set(err, "backward without a forward");
    const ModelConfig *c = &m->cfg;
    int B = a->B, T = a->T, n = B * T;
    for (int l = c->layers - 1; l >= 0; l--) {
        if (l == c->layers - 1) loss_backward(m, a->xf, 0, grad(m, m->head), grad(m, m->norm), grad_scale);
        else loss_backward(m, a->layer[l + 1].x, 1, NULL, a->dao, grad_scale);   // dao: discarded scratch
        if (block_kept(m, l)) block_backward(m, l, B, T);
    }
    m->be->embedding_backward(grad(m, m->embed), a->dres, a->inputs, n, c->dim);   // L_0's, through block 0
    a->forward_done = 0;
    return 0;
}
