// model_forward.c — the forward and backward passes, one pair of functions per layer.
// A factorized linear never forms W = A·Bᵀ: y = (x·B)·Aᵀ, and its backward is
//   G_t = G_y·A, G_A = G_yᵀ·t, G_B = xᵀ·G_t, G_x = G_t·Bᵀ.
#include <math.h>
#include <stdlib.h>
#include "model_internal.h"

// ---------------------------------------------------------------------------------------------
// linears that read the same input: y_i(n×out_i) = x(n×in)·W_iᵀ + beta·y_i
//
// q/k/v (and w1/w3) share their input, so their factorized members run x·B as ONE GEMM,
// t = x·[B_1 … B_k] (n×R, R = Σ rank): on the CPU three 1024×64×256 products cost 1.5× one
// 1024×192×256. In backward, G_[B_1 … B_k] = xᵀ·G_t and G_x = G_t·[B_1 … B_k]ᵀ are one GEMM each.
// The factors stay separate tensors; they are copied side by side into `pack` when needed.

LinearGroup linear_group_qkv(const LayerWeights *w, float *q, float *k, float *v) {
    return (LinearGroup){.lin = {&w->wq, &w->wk, &w->wv}, .y = {q, k, v}, .count = 3};
}

LinearGroup linear_group_13(const LayerWeights *w, float *gate, float *up) {
    return (LinearGroup){.lin = {&w->w1, &w->w3}, .y = {gate, up}, .count = 2};
}

LinearGroup linear_group_one(const Linear *lin, float *y) {
    return (LinearGroup){.lin = {lin}, .y = {y}, .count = 1};
}

void layer_linear_groups(const LayerWeights *w, LinearGroup groups[4]) {
    groups[0] = linear_group_qkv(w, NULL, NULL, NULL);
    groups[1] = linear_group_one(&w->wo, NULL);
    groups[2] = linear_group_13(w, NULL, NULL);
    groups[3] = linear_group_one(&w->w2, NULL);
}

LinearGroupSizes linear_group_sizes(const Model *m) {
    LinearGroupSizes s = {0, 0, 0};
    for (int l = 0; l < m->cfg.layers; l++) {
        LinearGroup groups[4];
        layer_linear_groups(&m->layer[l], groups);
        for (int i = 0; i < 4; i++) {
            size_t r = (size_t)linear_group_rank(&groups[i]), pack = r * groups[i].lin[0]->in;
            if (r > s.max_rank) s.max_rank = r;
            if (pack > s.max_pack) s.max_pack = pack;
            s.total_pack += pack;
        }
    }
    return s;
}

int linear_group_rank(const LinearGroup *g) {
    int r = 0;
    for (int i = 0; i < g->count; i++) r += g->lin[i]->rank;
    return r;
}

// The only factorized member, or NULL when there are several (or none).
static const Linear *lone_factor(const LinearGroup *g) {
    int R = linear_group_rank(g);
    for (int i = 0; i < g->count; i++)
        if (g->lin[i]->rank == R && R > 0) return g->lin[i];
    return NULL;
}

// [B_1 … B_k] (in×R) for the factorized members: a lone factor is used where it lies.
const float *linear_group_pack(const Model *m, const LinearGroup *g, float *pack) {
    const Linear *lone = lone_factor(g);
    if (lone) return param(m, lone->b);
    int R = linear_group_rank(g), off = 0;
    for (int i = 0; i < g->count; i++) {
        const Linear *lin = g->lin[i];
        if (lin->rank) m->be->add_matrix(pack + off, R, param(m, lin->b), lin->rank, lin->in, lin->rank, 0.0f);
        off += lin->rank;
    }
    return pack;
}

// t(n×R) keeps x·[B_1 … B_k] for backward. packed_t: the factors side by side and transposed,
// [B…]ᵀ (R×in), as the generator keeps them (t is then R one-row dot products when n = 1); or
// NULL to pack them here into `pack` (scratch of in×R floats).
void linear_group_forward(const Model *m, const LinearGroup *g, float *t, const float *x, int n, float beta,
                          const float *packed_t, float *pack) {
    const Backend *be = m->be;
    int R = linear_group_rank(g), in = g->lin[0]->in, off = 0;
    if (R > 0 && packed_t) {
        be->gemm(0, 1, n, R, in, 1.0f, x, in, packed_t, in, 0.0f, t, R);                   // t = x·([B…]ᵀ)ᵀ
    } else if (R > 0) {
        const float *packed = linear_group_pack(m, g, pack);
        be->gemm(0, 0, n, R, in, 1.0f, x, in, packed, R, 0.0f, t, R);                       // t = x·[B…]
    }
    GemmCall out[3];   // the members' outputs are independent products
    for (int i = 0; i < g->count; i++) {
        const Linear *lin = g->lin[i];
        int r = lin->rank;
        if (r == 0)
            out[i] = gemm_call(0, 1, n, lin->out, in, 1.0f, x, in, param(m, lin->w), in, beta, g->y[i], lin->out);
        else
            out[i] = gemm_call(0, 1, n, lin->out, r, 1.0f, t + off, R, param(m, lin->w), r, beta, g->y[i], lin->out);  // t_i·A_iᵀ
        off += r;
    }
    be->gemm_batch(out, g->count);
}

// linear_group_forward of one row whose input step is folded into the group's first products
// (Backend.row_products): x̂·[B…]ᵀ into t(R) by packed_t (R×in) and the dense members' x̂·Wᵀ,
// then the factorized members' t_i·A_iᵀ.
void linear_group_row(const Model *m, const LinearGroup *g, float *t, const RowInput *in, float beta,
                      const float *packed_t) {
    RowProduct first[4] = {{0}};
    GemmCall second[3] = {{0}};
    int R = linear_group_rank(g), n_first = 0, n_second = 0, off = 0;
    if (R > 0) first[n_first++] = (RowProduct){t, packed_t, R, 0.0f};
    for (int i = 0; i < g->count; i++) {
        const Linear *lin = g->lin[i];
        int r = lin->rank;
        if (r == 0) first[n_first++] = (RowProduct){g->y[i], param(m, lin->w), lin->out, beta};
        else
            second[n_second++] = gemm_call(0, 1, 1, lin->out, r, 1.0f, t + off, R, param(m, lin->w), r, beta, g->y[i],
                                           lin->out);   // t_i·A_iᵀ
        off += r;
    }
    m->be->row_products(in, first, n_first);
    if (n_second) m->be->gemm_batch(second, n_second);
}

// Adds the weight gradients; dx = Σ_i dy_i·W_i + beta_dx·dx, with dy_i in g->y[i]. dt: n×R
// scratch; pack and gpack: in×R scratch each.
static void linear_group_backward(const Model *m, const LinearGroup *g, float *dx, float beta_dx, float *dt,
                                  const float *t, const float *x, int n, float *pack, float *gpack) {
    const Backend *be = m->be;
    int R = linear_group_rank(g), in = g->lin[0]->in, off = 0, count = 0;
    GemmCall calls[6] = {{0}};   // per member G_t and G_A, or G_W: independent products
    for (int i = 0; i < g->count; i++) {
        const Linear *lin = g->lin[i];
        const float *dy = g->y[i];
        int r = lin->rank;
        if (r == 0) {
            calls[count++] = gemm_call(1, 0, lin->out, in, n, 1.0f, dy, lin->out, x, in, 1.0f, grad(m, lin->w), in);
            continue;
        }
        calls[count++] = gemm_call(0, 0, n, r, lin->out, 1.0f, dy, lin->out, param(m, lin->w), r, 0.0f, dt + off, R);    // G_t = G_y·A
        calls[count++] = gemm_call(1, 0, lin->out, r, n, 1.0f, dy, lin->out, t + off, R, 1.0f, grad(m, lin->w), r);      // G_A += G_yᵀ·t
        off += r;
    }
    be->gemm_batch(calls, count);
    for (int i = 0; i < g->count; i++) {   // dense members' share of dx, one after the other
        const Linear *lin = g->lin[i];
        if (lin->rank) continue;
        be->gemm(0, 0, n, in, lin->out, 1.0f, g->y[i], lin->out, param(m, lin->w), in, beta_dx, dx, in);
        beta_dx = 1.0f;
    }
    if (R == 0) return;
    const Linear *lone = lone_factor(g);
    const float *packed = linear_group_pack(m, g, pack);
    calls[0] = lone ? gemm_call(1, 0, in, R, n, 1.0f, x, in, dt, R, 1.0f, grad(m, lone->b), R)     // G_B += xᵀ·G_t
                    : gemm_call(1, 0, in, R, n, 1.0f, x, in, dt, R, 0.0f, gpack, R);               // G_[B…] = xᵀ·G_t
    calls[1] = gemm_call(0, 1, n, in, R, 1.0f, dt, R, packed, R, beta_dx, dx, in);                 // G_x += G_t·[B…]ᵀ
    be->gemm_batch(calls, 2);
    off = 0;
    for (int i = 0; i < g->count && !lone; i++) {
        const Linear *lin = g->lin[i];
        if (lin->rank) be->add_matrix(grad(m, lin->b), lin->rank, gpack + off, R, in, lin->rank, 1.0f);
        off += lin->rank;
    }
}

// ---------------------------------------------------------------------------------------------
// subnetwork masks (Model.subnet): zeroing runs of columns of an activation or its gradient

// x[:, c0:c0+nc] = 0 for x (rows×ld): a row of zeros copied into every row (add_matrix with
// the zeros' row stride 0 and beta = 0, which ignores what x held, NaN included).
static void zero_columns(const Model *m, float *x, int rows, int ld, int c0, int nc) {
    m->be->add_matrix(x + c0, ld, m->acts->zeros, 0, rows, nc, 0.0f);
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
    LinearGroup qkv = linear_group_qkv(w, a->q, a->k, a->v);
    LinearGroup o = linear_group_one(&w->wo, a->xmid), mlp13 = linear_group_13(w, a->g, a->u);
    LinearGroup down = linear_group_one(&w->w2, x_out);
    float *pack = m->acts->pack;
    linear_group_forward(m, &qkv, a->tqkv, a->ln1, n, 0.0f, NULL, pack);
    be->rope_forward(a->q, a->q, B, T, c->heads, hd, 0, c->rope_theta);
    be->rope_forward(a->k, a->k, B, T, c->kv_heads, hd, 0, c->rope_theta);
    be->attention_forward(a->ao, a->att, a->q, a->k, a->v, B, T, T, c->heads, c->kv_heads, hd);
    if (head_mask(m, l)) mask_units(m, a->ao, n, head_mask(m, l), c->heads, hd);
    be->copy(a->xmid, a->x, sizeof(float) * n * c->dim);
    linear_group_forward(m, &o, a->to, a->ao, n, 1.0f, NULL, pack);                              // residual add
    be->rmsnorm_forward(a->ln2, a->rstd2, a->xmid, param(m, w->mlp_norm), n, c->dim, c->norm_eps);
    linear_group_forward(m, &mlp13, a->t13, a->ln2, n, 0.0f, NULL, pack);
    be->swiglu_forward(a->h, a->g, a->u, (long)n * c->ffn);
    if (ffn_mask(m, l)) mask_units(m, a->h, n, ffn_mask(m, l), c->ffn, 1);
    be->copy(x_out, a->xmid, sizeof(float) * n * c->dim);
    linear_group_forward(m, &down, a->t2, a->h, n, 1.0f, NULL, pack);                            // residual add
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
    LinearGroup down = linear_group_one(&w->w2, s->dres), mlp13 = linear_group_13(w, s->dg, s->du);
    LinearGroup o = linear_group_one(&w->wo, s->dres), qkv = linear_group_qkv(w, s->dq, s->dk, s->dv);
    linear_group_backward(m, &down, s->dh, 0.0f, s->dt, a->t2, a->h, n, s->pack, s->gpack);
    if (ffn_mask(m, l)) mask_units(m, s->dh, n, ffn_mask(m, l), c->ffn, 1);   // masked h is constant 0
    be->swiglu_backward(s->dg, s->du, s->dh, a->g, a->u, (long)nf);
    linear_group_backward(m, &mlp13, s->dln, 0.0f, s->dt, a->t13, a->ln2, n, s->pack, s->gpack);
    be->rmsnorm_backward(s->dres, grad(m, w->mlp_norm), s->dln, a->xmid, param(m, w->mlp_norm), a->rstd2, n, c->dim);
    // attention
    linear_group_backward(m, &o, s->dao, 0.0f, s->dt, a->to, a->ao, n, s->pack, s->gpack);
    if (head_mask(m, l)) mask_units(m, s->dao, n, head_mask(m, l), c->heads, hd);
    be->zero(s->dq, sizeof(float) * n * c->dim);
    be->zero(s->dk, sizeof(float) * n * kvd);
    be->zero(s->dv, sizeof(float) * n * kvd);
    be->attention_backward(s->dq, s->dk, s->dv, s->datt, s->dao, a->ao, a->att, a->q, a->k, a->v,
                           B, T, T, c->heads, c->kv_heads, hd);
    be->rope_backward(s->dq, s->dq, B, T, c->heads, hd, 0, c->rope_theta);      // in place: before RoPE
    be->rope_backward(s->dk, s->dk, B, T, c->kv_heads, hd, 0, c->rope_theta);
    linear_group_backward(m, &qkv, s->dln, 0.0f, s->dt, a->tqkv, a->ln1, n, s->pack, s->gpack);
    be->rmsnorm_backward(s->dres, grad(m, w->attn_norm), s->dln, a->x, param(m, w->attn_norm), a->rstd1, n, c->dim);
}

// ---------------------------------------------------------------------------------------------
// the model

static int upload_tokens(Model *m, const int32_t *tokens, int B, int T, Err *err) {
    int n = B * T;
    int32_t *host = malloc(sizeof(int32_t) * 2 * (size_t)n);
    if (!host) return err_set(err, "out of memory for %d×%d tokens", B, T);
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

// The forward down to the mean loss. write_dlogits: the logits are replaced by
// dlogits = (softmax − onehot)·dscale, which the loss's backward then uses as they are.
static int forward_to_loss(Model *m, const int32_t *tokens, int B, int T, int write_dlogits, float dscale,
                           float *loss, Err *err) {
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
    be->softmax_xent_forward(a->losses, write_dlogits ? a->logits : NULL, a->logits, a->targets, n, c->vocab, dscale);
    *loss = (float)(be->sum(a->losses, n) / n);
    a->forward_done = !write_dlogits;   // logits overwritten by dlogits are no forward to go back from
    if (!isfinite(*loss)) return err_set(err, "the loss is not finite (%s)", nonfinite_text(*loss));
    return 0;
}

int model_forward(Model *m, const int32_t *tokens, int B, int T, float *loss, Err *err) {
    return forward_to_loss(m, tokens, B, T, 0, 0.0f, loss, err);
}

// The loss's backward down to the residual x at the top of the stack: acts->dres = ∂L/∂x,
// and the head and final-norm gradients added into dhead (NULL: not computed) and dnorm.
// recompute: first run the final norm and head forward on x (an early exit; the logits and
// final-norm outputs of the forward are overwritten). dlogits_ready: the logits already hold
// dlogits at this grad_scale (forward_to_loss wrote them).
static void loss_backward(const Model *m, const float *x, int recompute, float *dhead, float *dnorm, float grad_scale,
                          int dlogits_ready) {
    const Backend *be = m->be;
    const ModelConfig *c = &m->cfg;
    Activations *a = m->acts;
    int n = a->B * a->T;
    if (recompute) {
        be->rmsnorm_forward(a->lnf, a->rstdf, x, param(m, m->norm), n, c->dim, c->norm_eps);
        be->gemm(0, 1, n, c->vocab, c->dim, 1.0f, a->lnf, c->dim, param(m, m->head), c->dim, 0.0f, a->logits, c->vocab);
    }
    // dlogits = (softmax − onehot)·grad_scale/n, written over the logits
    if (!dlogits_ready)
        be->softmax_xent_forward(a->losses, a->logits, a->logits, a->targets, n, c->vocab, grad_scale / n);
    if (dhead) be->gemm(1, 0, c->vocab, c->dim, n, 1.0f, a->logits, c->vocab, a->lnf, c->dim, 1.0f, dhead, c->dim);
    be->gemm(0, 0, n, c->dim, c->vocab, 1.0f, a->logits, c->vocab, param(m, m->head), c->dim, 0.0f, a->dln, c->dim);
    be->zero(a->dres, sizeof(float) * n * c->dim);
    be->rmsnorm_backward(a->dres, dnorm, a->dln, x, param(m, m->norm), a->rstdf, n, c->dim);
}

// The backward of the last forward (whose logits may hold dlogits already).
static void backward_from_loss(Model *m, float grad_scale, int dlogits_ready) {
    Activations *a = m->acts;
    const ModelConfig *c = &m->cfg;
    int B = a->B, T = a->T, n = B * T;
    loss_backward(m, a->xf, 0, grad(m, m->head), grad(m, m->norm), grad_scale, dlogits_ready);
    for (int l = c->layers - 1; l >= 0; l--)
        if (block_kept(m, l)) block_backward(m, l, B, T);   // a skipped block passes dres through
    m->be->embedding_backward(grad(m, m->embed), a->dres, a->inputs, n, c->dim);
    a->forward_done = 0;  // the logits now hold gradients
}

int model_backward(Model *m, float grad_scale, Err *err) {
    if (!m->acts || !m->acts->forward_done) return err_set(err, "backward without a forward");
    backward_from_loss(m, grad_scale, 0);
    return 0;
}

int model_forward_backward(Model *m, const int32_t *tokens, int B, int T, float grad_scale, float *loss, Err *err) {
    if (forward_to_loss(m, tokens, B, T, 1, grad_scale / (B * T), loss, err)) return -1;
    backward_from_loss(m, grad_scale, 1);
    return 0;
}

int model_backward_local(Model *m, float grad_scale, Err *err) {
    Activations *a = m->acts;
    if (!a || !a->forward_done) return err_set(err, "backward without a forward");
    const ModelConfig *c = &m->cfg;
    int B = a->B, T = a->T, n = B * T;
    for (int l = c->layers - 1; l >= 0; l--) {
        if (l == c->layers - 1) loss_backward(m, a->xf, 0, grad(m, m->head), grad(m, m->norm), grad_scale, 0);
        else loss_backward(m, a->layer[l + 1].x, 1, NULL, a->dao, grad_scale, 0);   // dao: discarded scratch
        if (block_kept(m, l)) block_backward(m, l, B, T);
    }
    m->be->embedding_backward(grad(m, m->embed), a->dres, a->inputs, n, c->dim);   // L_0's, through block 0
    a->forward_done = 0;
    return 0;
}
