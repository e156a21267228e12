// cmd_model.c — the model and optimizer commands: model new|info, optim.
#include <string.h>
#include "commands.h"
#include "output.h"

cJSON *model_config_json(const ModelConfig *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "dim", c->dim);
    cJSON_AddNumberToObject(o, "layers", c->layers);
    cJSON_AddNumberToObject(o, "heads", c->heads);
    cJSON_AddNumberToObject(o, "kv_heads", c->kv_heads);
    cJSON_AddNumberToObject(o, "ffn", c->ffn);
    cJSON_AddNumberToObject(o, "rank", c->rank);
    json_add_real(o, "rank_ratio", c->rank_ratio);
    cJSON_AddNumberToObject(o, "seq", c->seq);
    cJSON_AddNumberToObject(o, "vocab", c->vocab);
    return o;
}

void optim_describe(const Session *s, const OptimConfig *o, cJSON *into) {
    out_text(s, "optimizer  %s lr=%g wd=%g beta1=%g beta2=%g eps=%g clip=%g warmup=%d horizon=%d min_lr_ratio=%g\n",
             o->name, o->lr, o->wd, o->beta1, o->beta2, o->eps, o->clip, o->warmup, o->horizon, o->min_lr_ratio);
    cJSON_AddStringToObject(into, "name", o->name);
    json_add_real(into, "lr", o->lr);
    json_add_real(into, "wd", o->wd);
    json_add_real(into, "beta1", o->beta1);
    json_add_real(into, "beta2", o->beta2);
    json_add_real(into, "eps", o->eps);
    json_add_real(into, "clip", o->clip);
    cJSON_AddNumberToObject(into, "warmup", o->warmup);
    cJSON_AddNumberToObject(into, "horizon", o->horizon);
    json_add_real(into, "min_lr_ratio", o->min_lr_ratio);
}

// ---- model new ----------------------------------------------------------------------------

// The config `model new` asks for: preset (or the last config), the tokenizer's vocab, the
// session seed, then every key=value typed.
static int config_from_args(Session *s, const Args *a, ModelConfig *cfg, Err *err) {
    if (a->n_pos) {
        if (model_config_preset(cfg, a->pos[0], err) != 0) return -1;
    } else {
        *cfg = s->model_cfg;
    }
    cfg->seed = s->seed;
    if (s->tok) cfg->vocab = tokenizer_vocab_size(s->tok);
    // dim= resets ffn and heads= caps kv_heads, so they go first: `ffn=` typed before
    // `dim=` still counts.
    static const char *const first[] = {"dim", "heads"};
    for (int f = 0; f < 2; f++)
        if (args_has(a, first[f]) && model_config_set(cfg, first[f], args_str(a, first[f], ""), err) != 0) return -1;
    for (int i = 0; i < a->n_opt; i++) {
        if (strcmp(a->key[i], "dim") == 0 || strcmp(a->key[i], "heads") == 0) continue;
        if (model_config_set(cfg, a->key[i], a->val[i], err) != 0) return -1;
    }
    return model_config_validate(cfg, err);
}

static void model_summary(Session *s, const char *preset) {
    const ModelConfig *c = &s->model.cfg;
    ModelCounts k = model_counts(&s->model, s->batch, c->seq);
    char p[32], d[32];
    out_text(s, "model %s: dim=%d layers=%d heads=%d kv_heads=%d ffn=%d rank=%d seq=%d vocab=%d\n", preset, c->dim,
             c->layers, c->heads, c->kv_heads, c->ffn, c->rank, c->seq, c->vocab);
    out_text(s, "  %s parameters (dense equivalent %s)\n", fmt_count(p, sizeof p, (double)k.params),
             fmt_count(d, sizeof d, (double)k.dense_params));
    cJSON_AddStringToObject(s->result, "preset", preset);
    cJSON_AddItemToObject(s->result, "config", model_config_json(c));
    cJSON_AddNumberToObject(s->result, "params", (double)k.params);
    cJSON_AddNumberToObject(s->result, "dense_params", (double)k.dense_params);
}

int cmd_model_new(Session *s, const Args *a, Err *err) {
    ModelConfig cfg;
    if (config_from_args(s, a, &cfg, err) != 0) return -1;
    Model m;
    memset(&m, 0, sizeof m);
    if (model_build(&m, &cfg, s->be, err) != 0) return -1;
    if (s->has_trainer) out_note(s, "the previous model and its optimizer state are replaced\n");
    session_drop_trainer(s);
    if (s->has_model) model_free(&s->model);
    s->model = m;
    s->has_model = 1;
    s->model_cfg = cfg;
    if (a->n_pos) snprintf(s->model_preset, sizeof s->model_preset, "%s", a->pos[0]);
    model_summary(s, s->model_preset);
    return 0;
}

// ---- model info ---------------------------------------------------------------------------

static const char *role_name(TensorRole r) {
    switch (r) {
    case ROLE_EMBED: return "embedding";
    case ROLE_HEAD: return "head";
    case ROLE_NORM: return "norm";
    case ROLE_DENSE: return "dense";
    case ROLE_FACTOR_A: return "factor A";
    default: return "factor B";
    }
}

static void tensor_table(Session *s) {
    cJSON *list = cJSON_AddArrayToObject(s->result, "tensors");
    out_text(s, "\n  %-28s %-13s %s\n", "tensor", "shape", "role");
    for (int i = 0; i < s->model.n_tensors; i++) {
        const TensorDesc *t = &s->model.tensors[i];
        char shape[32];
        snprintf(shape, sizeof shape, "%d×%d", t->rows, t->cols);
        out_text(s, "  %-28s %-13s %s\n", t->name, shape, role_name(t->role));
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", t->name);
        cJSON_AddNumberToObject(o, "rows", t->rows);
        cJSON_AddNumberToObject(o, "cols", t->cols);
        cJSON_AddStringToObject(o, "role", role_name(t->role));
        cJSON_AddItemToArray(list, o);
    }
}

int cmd_model_info(Session *s, const Args *a, Err *err) {
    if (session_need_model(s, err) != 0) return -1;
    const ModelConfig *c = &s->model.cfg;
    ModelCounts k = model_counts(&s->model, s->batch, c->seq);
    char p[32], d[32], mm[32], fl[32], pb[32], ab[32];
    out_text(s, "model      %s: dim=%d layers=%d heads=%d kv_heads=%d ffn=%d rank=%d seq=%d vocab=%d\n",
             s->model_preset, c->dim, c->layers, c->heads, c->kv_heads, c->ffn, c->rank, c->seq, c->vocab);
    out_text(s, "params     %s stored; dense equivalent %s (%.0f%%)\n", fmt_count(p, sizeof p, (double)k.params),
             fmt_count(d, sizeof d, (double)k.dense_params),
             k.dense_params ? 100.0 * (double)k.params / (double)k.dense_params : 0.0);
    out_text(s, "matmul     %s parameters in matrix products\n", fmt_count(mm, sizeof mm, (double)k.matmul_params));
    out_text(s, "flops      %s per token (training, context %d)\n", fmt_count(fl, sizeof fl, k.train_flops_per_token),
             c->seq);
    out_text(s, "memory     parameters %s; activations %s at batch %d × %d\n",
             fmt_bytes(pb, sizeof pb, (double)k.param_bytes), fmt_bytes(ab, sizeof ab, (double)k.activation_bytes),
             s->batch, c->seq);
    cJSON_AddItemToObject(s->result, "config", model_config_json(c));
    cJSON_AddNumberToObject(s->result, "params", (double)k.params);
    cJSON_AddNumberToObject(s->result, "dense_params", (double)k.dense_params);
    cJSON_AddNumberToObject(s->result, "matmul_params", (double)k.matmul_params);
    json_add_real(s->result, "flops_per_token", k.train_flops_per_token);
    cJSON_AddNumberToObject(s->result, "param_bytes", (double)k.param_bytes);
    cJSON_AddNumberToObject(s->result, "activation_bytes", (double)k.activation_bytes);
    if (args_bool(a, "tensors", 0)) tensor_table(s);
    return 0;
}

// ---- optim --------------------------------------------------------------------------------

// A new optimizer config on a live trainer: new moments, same step count and data stream.
static int rebuild_trainer(Session *s, Err *err) {
    int step = s->trainer.step;
    uint64_t data_rng = s->trainer.data_rng;
    session_drop_trainer(s);
    if (trainer_build(&s->trainer, &s->model, &s->optim, s->seed, err) != 0) return -1;
    s->has_trainer = 1;
    s->trainer.step = step;
    s->trainer.data_rng = data_rng;
    out_note(s, "optimizer state reset (moments start from zero); step count kept at %d\n", step);
    cJSON_AddBoolToObject(s->result, "state_reset", 1);
    return 0;
}

int cmd_optim(Session *s, const Args *a, Err *err) {
    OptimConfig cfg = s->optim;
    if (a->n_pos && optim_config_default(&cfg, a->pos[0], err) != 0) return -1;
    for (int i = 0; i < a->n_opt; i++)
        if (optim_config_set(&cfg, a->key[i], a->val[i], err) != 0) return -1;
    int changed = a->n_pos || a->n_opt;
    s->optim = cfg;
    optim_describe(s, &s->optim, s->result);
    if (changed && s->has_trainer) return rebuild_trainer(s, err);
    return 0;
}
