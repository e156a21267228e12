// cmd_model.c — the model commands: model new|info|save|load|factorize (optim: cmd_optim.c).
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "../engine/tempfile.h"
#include "commands.h"
#include "output.h"
#include "../engine/checkpoint.h"
#include "../engine/factorize.h"

cJSON *model_config_json(const ModelConfig *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "dim", c->dim);
    cJSON_AddNumberToObject(o, "layers", c->layers);
    cJSON_AddNumberToObject(o, "heads", c->heads);
    cJSON_AddNumberToObject(o, "kv_heads", c->kv_heads);
    cJSON_AddNumberToObject(o, "ffn", c->ffn);
    cJSON_AddNumberToObject(o, "rank", c->rank);
    if (c->rank == -1) json_add_real(o, "rank_ratio", c->rank_ratio);
    else cJSON_AddNullToObject(o, "rank_ratio");   // a set rank: the ratio plays no part
    cJSON_AddNumberToObject(o, "seq", c->seq);
    cJSON_AddNumberToObject(o, "vocab", c->vocab);
    return o;
}

// ---- model new ----------------------------------------------------------------------------

// Whether msg names a shape key ("kv_heads=2 does not divide heads=3") that was not typed: a
// value `model new` kept from the last model, which the user may not know is there.
static int names_untyped_key(const Args *a, const char *msg) {
    static const char *const keys[] = {"dim", "layers", "heads", "kv_heads", "ffn", "rank", "rank_ratio", "seq", "vocab"};
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
        size_t n = strlen(keys[k]);
        for (const char *at = strstr(msg, keys[k]); at; at = strstr(at + 1, keys[k]))
            if (at[n] == '=' && (at == msg || !(isalnum((unsigned char)at[-1]) || at[-1] == '_')) && !args_has(a, keys[k]))
                return 1;
    }
    return 0;
}

// A rank kept from the last model was chosen for its width: `model new dim=64` after the
// bundled model (dim 256, rank 64) gave rank 64 of 64×64 matrices, more parameters than dense.
// dim= without rank= or rank_ratio= keeps the rank's share of dim instead (64 of 256 → 16 of
// 64, every matrix still the same rank), as dim= resets ffn; a note says so.
static void rank_follows_dim(Session *s, const Args *a, ModelConfig *cfg, const ModelConfig *start) {
    if (!args_has(a, "dim") || args_has(a, "rank") || args_has(a, "rank_ratio") || start->rank <= 0 ||
        cfg->dim == start->dim)
        return;
    long scaled = ((long)start->rank * cfg->dim + start->dim / 2) / start->dim;
    cfg->rank = scaled < 1 ? 1 : (int)scaled;
    out_note(s, "note: rank follows dim: rank=%d (the last model's rank %d of dim %d; rank= sets one)\n", cfg->rank,
             start->rank, start->dim);
}

// The config `model new` asks for: preset (or the last config), the tokenizer's vocab, the
// session seed — that much is *start —, then every key=value typed.
static int config_from_args(Session *s, const Args *a, ModelConfig *cfg, ModelConfig *start, Err *err) {
    if (a->n_pos) {
        if (model_config_preset(cfg, a->pos[0], err) != 0) return -1;
    } else {
        *cfg = s->model_cfg;
    }
    cfg->seed = s->seed;
    if (s->tok) cfg->vocab = tokenizer_vocab_size(s->tok);
    *start = *cfg;
    // dim= resets ffn, heads= caps kv_heads and rank_ratio= sets rank=-1, so they go first:
    // `ffn=` typed before `dim=` still counts, and so does `rank=0` typed before `rank_ratio=`.
    static const char *const first[] = {"dim", "heads", "rank_ratio"};
    for (int f = 0; f < 3; f++)
        if (args_has(a, first[f]) && model_config_set(cfg, first[f], args_str(a, first[f], ""), err) != 0) return -1;
    for (int i = 0; i < a->n_opt; i++) {
        if (!strcmp(a->key[i], "dim") || !strcmp(a->key[i], "heads") || !strcmp(a->key[i], "rank_ratio")) continue;
        if (model_config_set(cfg, a->key[i], a->val[i], err) != 0) return -1;
    }
    if (args_has(a, "rank") && args_has(a, "rank_ratio") && cfg->rank != -1)
        out_note(s, "note: rank=%d decides the rank: rank_ratio=%s is not used (rank=-1 uses it)\n", cfg->rank,
                 args_str(a, "rank_ratio", ""));
    rank_follows_dim(s, a, cfg, start);
    if (model_config_validate(cfg, err) == 0) return 0;
    return a->n_pos || !names_untyped_key(a, err->msg) ? -1
           : err_wrap(err, "", " (without a preset, `model new` keeps the last model's other values: give them "
                               "too, or name a preset)");
}

// "tiny", or "custom (from tiny)" once options have changed the preset's shape; a loaded model's
// shape changes only by `model factorize`: "loaded, then factorized"; `model new` without a
// preset after a load starts from the loaded model's shape ("as loaded").
const char *model_label(const Session *s, char *buf, size_t cap) {
    int loaded = strcmp(s->model_preset, "loaded") == 0, as_loaded = strcmp(s->model_preset, "as loaded") == 0;
    if (loaded && s->model_custom)   // rank=0 made it dense
        snprintf(buf, cap, s->has_model && s->model.cfg.rank == 0 ? "loaded, then made dense" : "loaded, then factorized");
    else if (as_loaded)
        snprintf(buf, cap, s->model_custom ? "custom (from the loaded model's shape)" : "new, shaped as the loaded model");
    else snprintf(buf, cap, s->model_custom ? "custom (from %s)" : "%s", s->model_preset);
    return buf;
}

static void model_summary(Session *s) {
    const ModelConfig *c = &s->model.cfg;
    ModelCounts k = model_counts(&s->model, s->batch, c->seq);   // the parameter counts only
    char p[32], d[32], label[48];
    char shape[256];
    const char *preset = model_label(s, label, sizeof label);
    model_config_describe(c, shape, sizeof shape);
    out_text(s, "model %s: %s\n", preset, shape);
    // the seed too: `model new` without seed= takes `set seed`'s, which a sweep's runs then differ by
    out_text(s, "  %s parameters (dense equivalent %s), initialized from seed %llu\n", fmt_count(p, sizeof p, (double)k.params),
             fmt_count(d, sizeof d, (double)k.dense_params), (unsigned long long)c->seed);
    cJSON_AddStringToObject(s->result, "preset", s->model_preset);
    cJSON_AddBoolToObject(s->result, "custom", s->model_custom);
    cJSON_AddItemToObject(s->result, "config", model_config_json(c));
    cJSON_AddNumberToObject(s->result, "params", (double)k.params);
    cJSON_AddNumberToObject(s->result, "dense_params", (double)k.dense_params);
}

// Whether two optimizer configs are the same optimizer with the same options.
static int same_settings(const OptimConfig *a, const OptimConfig *b) {
    if (strcmp(a->name, b->name) != 0) return 0;
    char va[64], vb[64];
    Err ignored;
    for (int i = 0; optim_config_key(a, i); i++) {
        const char *key = optim_config_key(a, i);
        if (optim_config_get(a, key, va, sizeof va, &ignored) || optim_config_get(b, key, vb, sizeof vb, &ignored) ||
            strcmp(va, vb) != 0)
            return 0;
    }
    return 1;
}

// "wq" of "blocks.0.attn.wq.A": a factor's matrix, as a block names it.
static const char *matrix_kind(const char *factor_name, char *buf, size_t cap) {
    snprintf(buf, cap, "%.*s", (int)strlen(factor_name) - 2, factor_name);   // less ".A"
    const char *dot = strrchr(buf, '.');
    return dot ? dot + 1 : buf;
}

// rank_ratio·in below 1 rounds to rank 0, which would make the matrix dense: model_config_rank
// raises it to 1, and the user hears so (the shape line still says the ratio).
static void floored_note(Session *s) {
    const Model *m = &s->model;
    if (m->cfg.rank >= 0) return;
    int floored = 0, first = -1;
    for (int i = 0; i + 1 < m->n_tensors; i++) {
        const TensorDesc *A = &m->tensors[i], *B = &m->tensors[i + 1];   // A: out×r, then B: in×r
        if (A->layer != 0 || A->role != ROLE_FACTOR_A || (int)(m->cfg.rank_ratio * (float)B->rows) >= 1) continue;
        if (!floored++) first = i;
    }
    if (!floored) return;
    char kind[64];
    out_note(s, "note: rank_ratio=%g asks a rank below 1 of %d of a block's matrices (%s: %g·%d): they are "
                "factorized at rank 1\n", (double)m->cfg.rank_ratio, floored,
             matrix_kind(m->tensors[first].name, kind, sizeof kind), (double)m->cfg.rank_ratio, m->tensors[first + 1].rows);
}

// A factorized matrix stores r·(out + in) values, a dense one out·in: past r = out·in/(out + in)
// factorizing costs parameters. rank= says what it asks; rank_ratio·in may ask past min(out, in)
// and is capped there (model_config_rank). Either way the user hears how many of a block's
// matrices, and the first of each kind.
static void factorization_note(Session *s) {
    const Model *m = &s->model;
    int worse = 0, capped = 0, first_worse = -1, first_capped = -1;
    for (int i = 0; i + 1 < m->n_tensors; i++) {
        const TensorDesc *A = &m->tensors[i], *B = &m->tensors[i + 1];   // A: out×r, then B: in×r
        if (A->layer != 0 || A->role != ROLE_FACTOR_A) continue;
        if ((long)A->cols * (A->rows + B->rows) > (long)A->rows * B->rows) worse++, first_worse = first_worse < 0 ? i : first_worse;
        if (m->cfg.rank < 0 && (int)(m->cfg.rank_ratio * (float)B->rows) > A->cols)
            capped++, first_capped = first_capped < 0 ? i : first_capped;
    }
    floored_note(s);
    if (!worse) return;
    const TensorDesc *A = &m->tensors[first_worse], *B = &m->tensors[first_worse + 1];
    int r = A->cols, out = A->rows, in = B->rows;
    char capped_text[160] = "";
    if (capped) {
        const TensorDesc *CA = &m->tensors[first_capped], *CB = &m->tensors[first_capped + 1];
        snprintf(capped_text, sizeof capped_text, "; rank_ratio·in was capped at min(out, in) for %d (%.*s: asked %d, "
                 "got %d)", capped, (int)strlen(CA->name) - 2, CA->name, (int)(m->cfg.rank_ratio * (float)CB->rows),
                 CA->cols);
    }
    out_note(s, "note: %d of a block's factorized matrices store%s more parameters than dense (%.*s: rank %d of "
                "%d×%d stores %ld, dense %ld%s)\n", worse, worse == 1 ? "s" : "", (int)strlen(A->name) - 2, A->name, r,
             out, in, (long)r * (out + in), (long)out * in, capped_text);
}

int cmd_model_new(Session *s, const Args *a, Err *err) {
    ModelConfig cfg, start;
    if (config_from_args(s, a, &cfg, &start, err) != 0) return -1;
    if (session_keep_unsaved(s, DROP_MODEL_NEW, err) != 0) return -1;
    Model m;
    memset(&m, 0, sizeof m);
    if (model_build(&m, &cfg, s->be, err) != 0) return -1;
    if (s->has_trainer) out_note(s, "the previous model and its optimizer state are replaced\n");
    session_replace_model(s, &m, MODEL_OTHER);
    s->dirty = 0;
    s->model_file[0] = '\0';
    s->model_cfg = cfg;
    if (a->n_pos) snprintf(s->model_preset, sizeof s->model_preset, "%s", a->pos[0]);
    else if (strcmp(s->model_preset, "loaded") == 0) snprintf(s->model_preset, sizeof s->model_preset, "as loaded");
    s->model_custom = (s->model_custom && !a->n_pos) || !model_config_same_shape(&cfg, &start);
    s->model_tok_embedded = 0;   // built for whatever tokenizer the session has
    model_summary(s);
    factorization_note(s);
    if (s->tok && cfg.vocab < tokenizer_vocab_size(s->tok))
        out_note(s, "note: vocab=%d is below the tokenizer's %d: `train` and `generate` refuse this model with it "
                    "(without vocab= the model takes the tokenizer's)\n", cfg.vocab, tokenizer_vocab_size(s->tok));
    if (s->optim_from[0]) {   // a new model starts from the defaults, not a loaded checkpoint's choice
        OptimConfig was = s->optim;
        if (optim_config_default(&s->optim, "adamw", err) != 0) return -1;
        if (!same_settings(&was, &s->optim))
            out_note(s, "optimizer back to the default %s lr=%g: %s lr=%g came with %s (`optim %s lr=%g` keeps it)\n",
                 s->optim.name, s->optim.lr, was.name, was.lr, NAME_TEXT(s->optim_from), was.name, was.lr);
        s->optim_from[0] = '\0', s->optim_chosen = 0;   // the default again: not written as a choice
    }
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
    out_text(s, "\n  %-28s %-13s %s\n", "tensor", "shape", "role");  // shapes: × is 2 bytes, 1 column
    for (int i = 0; i < s->model.n_tensors; i++) {
        const TensorDesc *t = &s->model.tensors[i];
        char shape[32];
        snprintf(shape, sizeof shape, "%d×%d", t->rows, t->cols);
        out_text(s, "  %-28s %-14s %s\n", t->name, shape, role_name(t->role));
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", t->name);
        cJSON_AddNumberToObject(o, "rows", t->rows);
        cJSON_AddNumberToObject(o, "cols", t->cols);
        cJSON_AddStringToObject(o, "role", role_name(t->role));
        cJSON_AddItemToArray(list, o);
    }
}

// "16 (wq wk wv wo w1 w3), 48 (w2)": the ranks of a block's factorized matrices, grouped by
// value (every block has the same), and each matrix's rank in the JSON; nothing when dense.
static void ranks_line(Session *s) {
    const Model *m = &s->model;
    char line[256] = "";
    size_t len = 0;
    char kind[64];
    cJSON *ranks = cJSON_CreateObject();
    for (int i = 0; i < m->n_tensors; i++) {   // each rank value once, in the order first met
        const TensorDesc *A = &m->tensors[i];
        if (A->layer != 0 || A->role != ROLE_FACTOR_A) continue;
        cJSON_AddNumberToObject(ranks, matrix_kind(A->name, kind, sizeof kind), A->cols);
        int seen = 0;
        for (int j = 0; j < i && !seen; j++)
            seen = m->tensors[j].layer == 0 && m->tensors[j].role == ROLE_FACTOR_A && m->tensors[j].cols == A->cols;
        if (seen) continue;
        len += (size_t)snprintf(line + len, len < sizeof line ? sizeof line - len : 0, "%s%d (", len ? ", " : "", A->cols);
        for (int j = i; j < m->n_tensors; j++)
            if (m->tensors[j].layer == 0 && m->tensors[j].role == ROLE_FACTOR_A && m->tensors[j].cols == A->cols)
                len += (size_t)snprintf(line + len, len < sizeof line ? sizeof line - len : 0, "%s%s",
                                        j == i ? "" : " ", matrix_kind(m->tensors[j].name, kind, sizeof kind));
        len += (size_t)snprintf(line + len, len < sizeof line ? sizeof line - len : 0, ")");
    }
    if (len) out_text(s, "ranks      %s in every block\n", line);
    cJSON_AddItemToObject(s->result, "ranks", ranks);
}

int cmd_model_info(Session *s, const Args *a, Err *err) {
    if (session_need_model(s, err) != 0) return -1;
    const ModelConfig *c = &s->model.cfg;
    static const Args none;   // the settings `train` takes without options
    int B, T, accum;
    Err refused;
    int too_long = session_batch_shape(s, &none, &B, &T, &accum, &refused) != 0;
    if (too_long) T = c->seq;   // `set seq` past the context: train refuses it, the note below says so
    ModelCounts k = model_counts(&s->model, B, T);
    char p[32], d[32], mm[32], fl[32], pb[32], ab[32];
    char shape[256];
    model_config_describe(c, shape, sizeof shape);
    char label[48];
    out_text(s, "model      %s: %s\n", model_label(s, label, sizeof label), shape);
    out_text(s, "params     %s stored; dense equivalent %s (%.0f%%)%s\n", fmt_count(p, sizeof p, (double)k.params),
             fmt_count(d, sizeof d, (double)k.dense_params),
             k.dense_params ? 100.0 * (double)k.params / (double)k.dense_params : 0.0,
             s->has_ensemble ? ", each member" : "");
    out_text(s, "matmul     %s parameters in matrix products\n", fmt_count(mm, sizeof mm, (double)k.matmul_params));
    ranks_line(s);
    out_text(s, "flops      %s per token (training at seq %d%s)\n", fmt_count(fl, sizeof fl, k.train_flops_per_token), T,
             T == c->seq ? ", the context" : ", `set seq`");
    if (too_long)
        out_note(s, "note: `set seq %d` is longer than this model's context (%d): `train` refuses it; these "
                    "numbers are at the context\n", s->seq, c->seq);
    out_text(s, "memory     parameters %s; activations %s at batch %d × %d\n",
             fmt_bytes(pb, sizeof pb, (double)k.param_bytes), fmt_bytes(ab, sizeof ab, (double)k.activation_bytes),
             B, T);
    // training holds seven copies of the parameters (with gradients, two moments and the rollback
    // copy of the three), the optimizer's vectors (and their rollback copy) and scratch, and the
    // activations: the running optimizer's, else the one `optim` chose, before it is built
    size_t n_vec, n_work;
    optimizer_sizes(&s->model, s->has_trainer ? &s->trainer.opt.cfg : &s->optim, &n_vec, &n_work);
    double training = (double)trainer_model_bytes(s->model.n_params) + (double)k.activation_bytes +
                      sizeof(float) * (2.0 * (double)n_vec + (double)n_work);
    char tb[32];
    const char *each = s->has_ensemble ? ", a member's (the ensemble's line below counts them all)" : "";
    out_text(s, "training   about %s with %s: 7× the parameters (gradients, moments, rollback), activations, "
                "scratch%s\n", fmt_bytes(tb, sizeof tb, training), s->has_trainer ? s->trainer.opt.cfg.name : s->optim.name,
             each);
    cJSON_AddItemToObject(s->result, "config", model_config_json(c));
    cJSON_AddNumberToObject(s->result, "params", (double)k.params);
    cJSON_AddNumberToObject(s->result, "dense_params", (double)k.dense_params);
    cJSON_AddNumberToObject(s->result, "matmul_params", (double)k.matmul_params);
    cJSON_AddNumberToObject(s->result, "flops_per_token", k.train_flops_per_token);   // a count: exact, not a float's
    cJSON_AddNumberToObject(s->result, "batch", B);
    cJSON_AddNumberToObject(s->result, "seq", T);
    cJSON_AddNumberToObject(s->result, "param_bytes", (double)k.param_bytes);
    cJSON_AddNumberToObject(s->result, "activation_bytes", (double)k.activation_bytes);
    cJSON_AddNumberToObject(s->result, "training_bytes", training);
    ensemble_info(s);
    if (args_bool(a, "tensors", 0)) tensor_table(s);
    return 0;
}

// ---- model save / load ---------------------------------------------------------------------

static const char *dtype_name(CheckpointDtype d) { return d == CHECKPOINT_BF16 ? "bf16" : "f32"; }

static const char *method_word(EnsembleMethod m) {
    return m == ENSEMBLE_WASH ? "wash" : m == ENSEMBLE_PAPA ? "papa" : "independent";
}

// `model save` while an ensemble exists: every member, its optimizer state and the coupling.
static int save_ensemble(Session *s, const char *path, const CheckpointOptions *o, cJSON *result, Err *err) {
    const Ensemble *e = &s->ens;
    const Tokenizer *tok = s->model_tok ? s->model_tok : s->tok;   // the members' own
    if (tok && tokenizer_vocab_size(tok) > e->members[0].cfg.vocab) tok = NULL;
    if (ensemble_save(path, e, tok, o, err) != 0) return -1;
    int bad = ensemble_nonfinite_member(e);
    if (bad >= 0)   // as a single model's save says it
        out_warning(s, "member %d holds NaN or infinite values (from the last update, which the next `step` rolls "
                       "back, or from the file it was loaded from): saved as it is", bad);
    struct stat st;
    double bytes = stat(path, &st) == 0 ? (double)st.st_size : 0;
    char size[32];
    int step = e->trainers[0].step;
    out_text(s, "saved %s (%s): ensemble of %d members (%s coupling) at step %d, %s parameters, optimizer state %s, "
                "tokenizer %s\n", NAME_TEXT(path), fmt_bytes(size, sizeof size, bytes), e->k, method_word(e->coupling.method), step,
             dtype_name(o->dtype), o->include_optim ? "included" : "left out", tok ? "embedded" : "none");
    s->dirty = 0;
    snprintf(s->model_file, sizeof s->model_file, "%s", path);
    cJSON_AddStringToObject(result, "path", path);
    cJSON_AddNumberToObject(result, "bytes", bytes);
    cJSON_AddNumberToObject(result, "step", step);
    cJSON_AddStringToObject(result, "dtype", dtype_name(o->dtype));
    cJSON_AddStringToObject(result, "optimizer", e->trainers[0].opt.cfg.name);   // as `model load` says them
    cJSON_AddBoolToObject(result, "optimizer_state", o->include_optim);
    cJSON_AddBoolToObject(result, "tokenizer", tok != NULL);
    cJSON_AddNumberToObject(result, "ensemble_k", e->k);
    cJSON_AddStringToObject(result, "method", method_word(e->coupling.method));
    return 0;
}

// A file there already is written over only when it is a safetensors file (a checkpoint saved
// before) that is not read-only: `model save notes.txt` must not turn the notes into a model, and
// the rename that makes saving atomic would bypass a file's own write protection.
static int check_save_target(const char *path, Err *err) {
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return 0;   // new, or not a file: the writer says
    const char *read_only = file_read_only(path, &st);
    if (read_only) return err_set(err, "%s is read-only: nothing was saved (%s)", path, read_only);
    if (st.st_size > 0 && !checkpoint_is_safetensors(path))   // an empty file (touch, mktemp) holds nothing
        return err_set(err, "%s exists and is not a safetensors file: nothing was saved (another name, or remove "
                            "it first)", path);
    return 0;
}

// The session's model (or ensemble) to path as `model save` writes it, its "saved" line said
// and its description put in result.
static int save_session_model(Session *s, const char *path, CheckpointDtype dtype, int include_optim, cJSON *result,
                              Err *err) {
    CheckpointOptions o = checkpoint_default_options();
    o.dtype = dtype;
    o.include_optim = include_optim;
    o.next = (TrainShape){s->batch, s->seq, s->accum};   // what the next `train` takes: a resume goes on the same
    o.has_next_seed = 1, o.next_seed = s->seed;           // and aligns and samples alike
    o.data = s->has_data ? dataset_identity(&s->data) : s->resume_data;   // a loaded file's kept without data
    o.run = runlog_current_name(&s->runs, &o.run_id);   // a resume goes on in the same run
    if (s->has_ensemble) return save_ensemble(s, path, &o, result, err);
    const Tokenizer *tok = s->model_tok ? s->model_tok : s->tok;   // the one the model reads its ids with
    if (tok && tokenizer_vocab_size(tok) > s->model.cfg.vocab) {
        out_note(s, "the tokenizer is not embedded: its vocabulary (%d) does not fit the model's (%d)\n",
                 tokenizer_vocab_size(tok), s->model.cfg.vocab);
        tok = NULL;
    }
    const Trainer *tr = s->has_trainer ? &s->trainer : NULL;
    // Not trained since loaded or averaged, or not yet: the step, data position and optimizer
    // settings go along (an `optim spectron` before any step was lost, and the file resumed as
    // adamw); settings nobody chose are not written, so that loading the file keeps a session's
    // own
    CheckpointProgress progress = {s->resume.step, s->resume.data_rng, s->optim, s->resume.shape};
    int settings = !tr && (s->resume.step > 0 || s->optim_chosen);
    int rc = settings ? checkpoint_save_progress(path, &s->model, &progress, tok, &o, err)
                      : checkpoint_save(path, &s->model, tr, tok, &o, err);
    if (rc != 0) return -1;
    // a step can leave NaN in the parameters that only the next step notices: said now, not
    // at the next load of a file that may have replaced a good one
    if (!model_params_finite(&s->model))
        out_warning(s, "the model holds NaN or infinite values (from the file it was loaded from, or from the last "
                       "update, which the next `step` rolls back): saved as it is");
    struct stat st;
    double bytes = stat(path, &st) == 0 ? (double)st.st_size : 0;
    int step = tr ? tr->step : s->resume.step, optim = tr && o.include_optim;
    char size[32];
    out_text(s, "saved %s (%s): step %d, %s parameters, optimizer state %s, tokenizer %s\n", NAME_TEXT(path),
             fmt_bytes(size, sizeof size, bytes), step, dtype_name(o.dtype),
             optim && tr->opt.t == 0 ? "included (fresh: no update since it was built or reset)"
             : optim ? "included"
             : tr  ? "left out"
             : step ? "none (not trained since it was loaded or averaged; its settings kept)"
             : settings ? "none (no trainer yet; its settings kept)"
                    : "none (no trainer yet)",
             tok ? s->model_tok ? "embedded (the model's own, not the session's)" : "embedded" : "none");
    s->dirty = 0;
    snprintf(s->model_file, sizeof s->model_file, "%s", path);
    cJSON_AddStringToObject(result, "path", path);
    cJSON_AddNumberToObject(result, "bytes", bytes);
    cJSON_AddNumberToObject(result, "step", step);
    cJSON_AddStringToObject(result, "dtype", dtype_name(o.dtype));
    if (tr || settings) cJSON_AddStringToObject(result, "optimizer", tr ? tr->opt.cfg.name : s->optim.name);
    else cJSON_AddNullToObject(result, "optimizer");   // no settings chosen: the file holds none, as `model load` says
    cJSON_AddBoolToObject(result, "optimizer_state", optim);
    cJSON_AddBoolToObject(result, "tokenizer", tok != NULL);
    return 0;
}

int cmd_model_save(Session *s, const Args *a, Err *err) {
    if (session_need_model(s, err) != 0) return -1;
    if (!*a->pos[0]) return err_set(err, "model save needs a file name (model save PATH): \"\" names none");
    char buf[PATH_MAX];
    const char *path = expand_path(a->pos[0], buf, sizeof buf);
    if (check_save_target(path, err) != 0) return -1;
    CheckpointDtype dtype = strcmp(args_str(a, "dtype", "f32"), "bf16") == 0 ? CHECKPOINT_BF16 : CHECKPOINT_F32;
    lrsh_saving = 1;   // a SIGTERM now waits for the file (session.h); run_command then ends lrsh
    int rc = save_session_model(s, path, dtype, args_bool(a, "optim", 1), s->result, err);
    lrsh_saving = 0;
    return rc;
}

// ---- train save=PATH save_every=N ----

// What a save to path will meet, found before an hour of training rather than after it: a
// folder, a folder that is missing or not writable, a file that is no checkpoint.
static int check_train_save_target(const char *path, Err *err) {
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return err_set(err, "save=%s is not a regular file (%s): name a checkpoint file; nothing was trained", path,
                       S_ISDIR(st.st_mode) ? "a folder: name a file in it" : "a device, pipe or socket");
    long planted = link_planted(path);
    if (planted)
        return err_set(err, "save=%s: " LINK_PLANTED_WHY "; nothing was trained", path, planted - 1);
    char dir[PATH_MAX];   // a 1024-byte buffer cut a long folder short and tested an ancestor's permission
    path_folder(path, dir, sizeof dir);
    if (access(dir, W_OK | X_OK) != 0)
        return err_set(err, "save=%s: cannot write in its folder %s (%s): nothing was trained", path, dir, strerror(errno));
    if (check_save_target(path, err) != 0) return err_wrap(err, "save= refused: ", "; nothing was trained");
    return 0;
}

static void train_save_remember(TrainSave *ts, const struct stat *st) {
    ts->known = 1, ts->dev = st->st_dev, ts->ino = st->st_ino, ts->mtime = st->st_mtim;
}

int train_save_begin(Session *s, const Args *a, TrainSave *ts, Err *err) {
    memset(ts, 0, sizeof *ts);
    ts->every = (int)args_int(a, "save_every", 0);
    if (!args_has(a, "save"))
        return ts->every ? err_set(err, "save_every=%d needs save=PATH, the file to write (e.g. save=run.safetensors)",
                                   ts->every) : 0;
    char buf[sizeof ts->path];
    snprintf(ts->path, sizeof ts->path, "%s", expand_path(args_str(a, "save", ""), buf, sizeof buf));
    if (!ts->path[0]) return err_set(err, "save=\"\" names no file");
    if (check_train_save_target(ts->path, err) != 0) return -1;
    struct stat st;
    if (stat(ts->path, &st) == 0) train_save_remember(ts, &st);
    ts->saved = cJSON_AddArrayToObject(s->result, "saved");
    lrsh_term_saves = 1;   // run_command clears it when the command ends
    return 0;
}

// A file put at the path since the training began or last saved — a teammate's read-only
// checkpoint in a group folder, a second job given the same save= — is not renamed over (the two
// jobs each said "saved" and one model survived). One written between this look and the rename
// still goes: the window is a save's length, not the training's.
static int train_save_target_unchanged(const TrainSave *ts, Err *err) {
    if (check_save_target(ts->path, err) != 0) return -1;
    struct stat st;
    if (stat(ts->path, &st) != 0 ||
        (ts->known && st.st_dev == ts->dev && st.st_ino == ts->ino && st.st_mtim.tv_sec == ts->mtime.tv_sec &&
         st.st_mtim.tv_nsec == ts->mtime.tv_nsec))
        return 0;
    return err_set(err, "%s was written by another program (or user) since this training %s: nothing was saved; "
                        "`model save` under another name keeps this model", ts->path,
                   ts->count ? "last saved it" : "began");
}

static int train_save_now(Session *s, TrainSave *ts, Err *err) {
    if (train_save_target_unchanged(ts, err) != 0) return -1;
    cJSON *one = cJSON_CreateObject();
    if (!one) return err_set(err, "out of memory");
    cJSON_AddItemToArray(ts->saved, one);
    double t0 = now_seconds();
    int rc = save_session_model(s, ts->path, CHECKPOINT_F32, 1, one, err);
    ts->seconds += now_seconds() - t0;
    ts->count++;
    if (rc != 0) cJSON_DeleteItemFromArray(ts->saved, cJSON_GetArraySize(ts->saved) - 1);   // no save: no entry
    struct stat st;
    if (rc == 0 && stat(ts->path, &st) == 0) train_save_remember(ts, &st);
    return rc;
}

int train_save_after_step(Session *s, TrainSave *ts, int step, int last, Progress *p, Err *err) {
    if (!ts->path[0] || ts->every <= 0 || step % ts->every != 0 || step >= last) return 0;
    progress_end(p);
    ts->last_step = step;
    return train_save_now(s, ts, err);
}

// The end's save, after `done` steps of the command: none when it took none (but a signal that
// stopped it before its first step still saves the session's unsaved training), nor when
// save_every= just wrote this very step (a signal during that save stopped the run: the same
// bytes again would only spend the scheduler's grace period).
int train_save_end(Session *s, TrainSave *ts, int done, int step, Err *err) {
    if (!ts->path[0] || !(done || (lrsh_term_signal && s->dirty))) return 0;
    if (ts->count > 0 && ts->last_step == step && !s->dirty) return 0;
    return train_save_now(s, ts, err);
}

int train_saves_left(const TrainSave *ts, int step, int last) {
    if (!ts->path[0]) return 0;
    return 1 + (ts->every > 0 ? (last - 1) / ts->every - step / ts->every : 0);
}

// The embedded tokenizer replaces the session's; data tokenized with a different one goes.
static void adopt_tokenizer(Session *s, Tokenizer *tok, const char *path) {
    int same = session_same_tokenizer(s->tok, tok);
    tokenizer_free(s->tok);
    s->tok = tok;
    snprintf(s->tok_path, sizeof s->tok_path, "%s", path);
    s->tok_embedded = 1;
    if (!same) session_drop_data(s, "it was tokenized with another tokenizer than the checkpoint's");
}

// The run a loaded model's training goes on in: the one it was training in when saved, else one
// named after the file (an older file, or one saved before any step).
static void resume_run(Session *s, const char *path, const CheckpointInfo *info) {
    char name[sizeof info->run];
    if (info->run[0]) {
        snprintf(name, sizeof name, "%s", info->run);
    } else {   // the file's stem
        const char *base = strrchr(path, '/');
        snprintf(name, 64, "%s", base ? base + 1 : path);
        char *dot = strrchr(name, '.');
        if (dot && dot != name) *dot = '\0';
    }
    for (char *p = name; *p; p++)   // as `run NAME` allows (a file's run too: another program may have written it)
        if ((unsigned char)*p < 0x20 || strchr("\"'\\,", *p)) *p = '_';
    if (!info->run[0]) {
        runlog_name_next(&s->runs, name);
    } else if (runlog_resume(&s->runs, name, info->run_id, info->step)) {
        out_note(s, "run %s goes on (this session's, at step %d)\n", NAME_TEXT(name), info->step);
    } else if (strcmp(s->runs.next_name, name) == 0) {
        out_note(s, "run %s goes on from step %d; its steps before are not in the file (a `log` file keeps them: "
                    "`plot from=FILE`)\n", NAME_TEXT(name), info->step);
    } else if (s->runs.next_name[0]) {   // (not when a `run NAME` typed before wins)
        out_note(s, "the file's run %s goes on as %s from step %d (this session has a run %s)\n", NAME_TEXT(name),
                 NAME_TEXT(s->runs.next_name), info->step, NAME_TEXT(name));
    }
}

// After a successful load: the session's model (and tokenizer, when the file had one) now come
// from path, which is also what is "saved".
static void session_took_file(Session *s, Tokenizer *tok, const char *path, const CheckpointInfo *info) {
    if (tok) adopt_tokenizer(s, tok, path);
    resume_run(s, path, info);
    s->model_cfg = s->model.cfg;
    snprintf(s->model_preset, sizeof s->model_preset, "loaded");
    s->model_custom = 0;
    s->model_tok_embedded = tok != NULL;
    snprintf(s->model_file, sizeof s->model_file, "%s", path);
    s->dirty = 0;
}

// The saving session's `set batch`, `set seq`, `set accum` (an older file: its last update's
// batches, which were those unless that command named others) become this session's, so that
// `train` goes on as the run would have: a resume repeats it exactly.
static void adopt_batches(Session *s, const CheckpointInfo *info) {
    int saved = info->next.batch > 0;
    TrainShape sh = saved ? info->next : info->shape;
    if (sh.batch <= 0) return;
    // 0: the context, whatever the model. The saving session's setting is kept as it was typed
    // (`set seq N` with N the context stays N); an older file's last update only knew the length.
    int seq = saved || sh.seq != s->model.cfg.seq ? sh.seq : 0;
    if (sh.seq == 0) sh.seq = s->model.cfg.seq;
    int was_seq = s->seq > 0 ? s->seq : s->model.cfg.seq;   // the session's seq 0 follows the model loaded
    char had_seq[32] = "its model's context";
    if (s->seq > 0) snprintf(had_seq, sizeof had_seq, "%d", s->seq);
    if (s->batch != sh.batch || s->accum != sh.accum || was_seq != sh.seq)
        out_note(s, "batch %d, seq %d, accum %d: %s (the session had %d, %s, %d; `set` changes them)\n", sh.batch,
                 sh.seq, sh.accum, saved ? "the saving session's settings" : "the run's last update", s->batch, had_seq,
                 s->accum);
    s->batch = sh.batch, s->accum = sh.accum, s->seq = seq;
    cJSON *b = cJSON_AddObjectToObject(s->result, "batches");
    cJSON_AddNumberToObject(b, "batch", sh.batch);
    cJSON_AddNumberToObject(b, "seq", sh.seq);
    cJSON_AddNumberToObject(b, "accum", sh.accum);
}

// The saving session's seed (an older file: the model's own, the session's when it was made)
// becomes this session's: alignment batches, samples and new members come from it, so that a
// resume goes on as the run would have (evaluations do not: EVAL_BATCH_SEED). What it records of
// the data it trained on is kept to compare with the data of the next train, step or eval.
static void adopt_seed_and_data(Session *s, const CheckpointInfo *info, uint64_t model_seed) {
    uint64_t seed = info->has_next_seed ? info->next_seed : model_seed;
    if (seed != s->seed)
        out_note(s, "seed %llu: %s (the session had %llu; `set seed` changes it)\n", (unsigned long long)seed,
                 info->has_next_seed ? "the saving session's" : "the model's", (unsigned long long)s->seed);
    s->seed = seed;
    json_add_u64(s->result, "seed", seed);
    s->resume_data = info->data;   // checked at `train`
}

// A file may hold NaN or ±inf parameters (damaged, or written by another program): they load
// as they are, and the user hears of it before a loss or a sample shows it. Optimizer state no
// optimizer writes was replaced by fresh state (checkpoint.c): said too, or every `train` would
// seem to diverge for no reason.
static void damage_warnings(Session *s, const CheckpointInfo *info) {
    cJSON_AddNumberToObject(s->result, "nonfinite", (double)info->nonfinite);
    cJSON_AddNumberToObject(s->result, "state_damaged", (double)info->state_damage.values);
    if (info->nonfinite)
        out_warning(s, "%ld parameter value%s NaN or infinite (the first in %s): the file is damaged or was "
                       "saved from a broken model; a loss or sample that reads one will not be finite",
                    info->nonfinite, info->nonfinite == 1 ? " is" : "s are", info->nonfinite_tensor);
    if (info->state_damage.values)
        out_warning(s, "the optimizer state holds %ld value%s no optimizer writes (NaN, infinite or a negative "
                       "second moment; the first in %s): it was left out — training goes on from fresh moments",
                    info->state_damage.values, info->state_damage.values == 1 ? "" : "s", info->state_damage.first);
}

// `model load` of an ensemble file: the members (with their trainers) become the session's
// ensemble, a copy of member 0 its model, as after `ensemble new`.
static int load_ensemble(Session *s, const char *path, Err *err) {
    Ensemble e;
    Tokenizer *tok = NULL;
    CheckpointInfo info;
    Model m;
    memset(&m, 0, sizeof m);
    if (ensemble_load(path, s->be, &e, &tok, &info, err) != 0) return -1;  // the session is untouched
    if (model_clone(&m, &e.members[0], err) != 0) {   // the session's own model: member 0
        ensemble_free(&e);
        tokenizer_free(tok);
        return -1;
    }
    session_drop_ensemble(s, NULL);
    session_replace_model(s, &m, MODEL_OTHER);
    s->ens = e;
    s->has_ensemble = 1;
    s->optim = e.trainers[0].opt.cfg, s->optim_chosen = 1;
    snprintf(s->optim_from, sizeof s->optim_from, "%s", path);
    session_took_file(s, tok, path, &info);
    s->resume = trainer_resume(&s->ens.trainers[0]);   // the session's model is member 0, at its step
    s->model_dirty = 0;                                 // as it is in the file
    const ModelConfig *c = &s->model.cfg;
    char size[32], x[32];
    out_text(s, "loaded %s (%s): ensemble of %d members at step %d, %s parameters, optimizer %s%s, tokenizer %s\n",
             NAME_TEXT(path), fmt_bytes(size, sizeof size, (double)info.file_bytes), e.k, info.step, dtype_name(info.dtype),
             info.optimizer, info.has_optim ? "" : " (state not saved)", tok ? "embedded" : "none in the file");
    char shape[256];
    model_config_describe(c, shape, sizeof shape);
    out_text(s, "model: %s per member\n", shape);
    out_note(s, "%s coupling, %s values exchanged so far; `train` continues every member %s\n",
             method_word(e.coupling.method), fmt_count(x, sizeof x, e.total_exchanged),
             !info.has_optim ? "from its step with fresh moments (no optimizer state in the file)"
             : info.state_damage.values ? "where it stopped (a member whose state was damaged: with fresh moments)"
                                        : "where it stopped");
    cJSON_AddStringToObject(s->result, "path", path);
    cJSON_AddNumberToObject(s->result, "bytes", (double)info.file_bytes);
    cJSON_AddNumberToObject(s->result, "step", info.step);
    cJSON_AddStringToObject(s->result, "dtype", dtype_name(info.dtype));
    cJSON_AddStringToObject(s->result, "optimizer", info.optimizer);
    cJSON_AddBoolToObject(s->result, "optimizer_state", info.has_optim && !info.state_damage.values);
    cJSON_AddBoolToObject(s->result, "tokenizer", tok != NULL);
    cJSON_AddItemToObject(s->result, "config", model_config_json(c));
    cJSON_AddNumberToObject(s->result, "ensemble_k", e.k);
    cJSON_AddStringToObject(s->result, "method", method_word(e.coupling.method));
    adopt_batches(s, &info);
    adopt_seed_and_data(s, &info, c->seed);
    damage_warnings(s, &info);
    return 0;
}

const char *file_kind_lrsh_writes(const char *path, const char **reader) {
    struct stat st;
    *reader = NULL;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return NULL;
    CheckpointInfo info;
    Err ignored;
    if (checkpoint_probe(path, &info, &ignored) == 0)
        return *reader = "model load", info.ensemble_k ? "an ensemble checkpoint" : "a checkpoint";
    if (dataset_is_token_cache(path)) return "a token cache (`data load` writes them next to a corpus)";
    if (st.st_size > 64 << 20) return NULL;   // read whole to be parsed: a tokenizer is far smaller
    Tokenizer *tok = tokenizer_load(path, &ignored);
    if (!tok) return NULL;
    tokenizer_free(tok);
    return *reader = "tok load", "a SentencePiece tokenizer";
}

// A file `model load` refused: the other files lrsh writes get a pointer to the command that
// reads them (a tokenizer's protobuf read as a safetensors header length was a 19-digit number).
static int not_a_checkpoint(const char *path, const Err *why, Err *err) {
    struct stat st;
    char named[1100];   // `model load adamw` for adamw.safetensors: the name the user meant
    if (stat(path, &st) != 0 && errno == ENOENT && snprintf(named, sizeof named, "%s.safetensors", path) < (int)sizeof named &&
        stat(named, &st) == 0)
        return err_set(err, "%s: no such file; did you mean %s?", path, named);
    const char *reader, *kind = file_kind_lrsh_writes(path, &reader);
    if (kind) return err_set(err, "%s is %s, not a checkpoint%s%s%s", path, kind, reader ? ": `" : "", reader ? reader : "",
                             reader ? "` reads it" : "");
    return err_set(err, "%s", why->msg);
}

int cmd_model_load(Session *s, const Args *a, Err *err) {
    char buf[PATH_MAX];
    const char *path = expand_path(a->pos[0], buf, sizeof buf);
    if (!*path) return err_set(err, "model load needs a file name (model load PATH): \"\" names none");
    CheckpointInfo probe;
    Err probe_err = {{0}};   // a file that is no checkpoint is refused before the unsaved-work question
    if (checkpoint_probe(path, &probe, &probe_err) != 0) return not_a_checkpoint(path, &probe_err, err);
    // a save of this file killed outright (SIGKILL) left its part; a requeued job that only loads
    // the file would never save it again, so the sweep a save makes happens here too
    tempfile_remove_stale(path);
    if (session_keep_unsaved(s, DROP_MODEL_LOAD, err) != 0) return -1;
    if (probe.ensemble_k > 0) return load_ensemble(s, path, err);
    Model m;
    Trainer tr;
    Tokenizer *tok = NULL;
    CheckpointInfo info;
    memset(&m, 0, sizeof m);
    memset(&tr, 0, sizeof tr);
    memset(&info, 0, sizeof info);
    if (checkpoint_load(path, s->be, &m, &tr, &tok, &info, err) != 0) return -1;   // the session is untouched
    session_replace_model(s, &m, MODEL_OTHER);
    if (info.has_optim) {
        s->trainer = tr;
        s->trainer.model = &s->model;  // the loader pointed it at its own Model, now moved here
        s->has_trainer = 1;
        s->optim = tr.opt.cfg;
        s->optim_chosen = 1;
        snprintf(s->optim_from, sizeof s->optim_from, "%s", path);
    } else {
        s->resume = (Resume){info.step, info.data_rng, info.shape};
        if (info.optimizer[0]) {   // the settings it was trained with, fresh moments
            s->optim = info.optim;
            s->optim_chosen = 1;
            snprintf(s->optim_from, sizeof s->optim_from, "%s", path);
        }
    }
    session_took_file(s, tok, path, &info);
    const ModelConfig *c = &s->model.cfg;
    char size[32], p[32];
    out_text(s, "loaded %s (%s): step %d, %s parameters, optimizer %s, tokenizer %s\n", NAME_TEXT(path),
             fmt_bytes(size, sizeof size, (double)info.file_bytes), info.step, dtype_name(info.dtype),
             info.has_optim ? info.optimizer : info.optimizer[0] ? "settings without state" : "none",
             tok ? "embedded" : "none in the file");
    char shape[256];
    model_config_describe(c, shape, sizeof shape);
    out_text(s, "model: %s, %s parameters\n", shape, fmt_count(p, sizeof p, (double)model_counts(&s->model, 1, c->seq).params));
    if (info.has_optim && info.state_damage.values)   // damage_warnings says which tensor
        out_note(s, "trainer rebuilt: %s lr=%g at step %d with fresh moments (the file's state was damaged)\n",
                 s->optim.name, s->optim.lr, info.step);
    else if (info.has_optim)
        out_note(s, "trainer restored: %s lr=%g at step %d; `train` continues where it stopped\n", s->optim.name,
                 s->optim.lr, info.step);
    else if (info.optimizer[0])
        out_note(s, "no optimizer state in the file: the next `train` continues from step %d with %s lr=%g and "
                    "fresh moments\n", info.step, s->optim.name, s->optim.lr);
    else if (info.step > 0)
        out_note(s, "no optimizer state in the file: the next `train` continues from step %d with fresh moments\n",
                 info.step);
    if (info.has_optim) session_horizon_note(s, info.step);   // (without state: when `train` builds one)
    if (s->tok && tokenizer_vocab_size(s->tok) > c->vocab)
        out_warning(s, "the tokenizer's vocabulary (%d) is larger than the model's (%d)", tokenizer_vocab_size(s->tok),
                    c->vocab);
    cJSON_AddStringToObject(s->result, "path", path);
    cJSON_AddNumberToObject(s->result, "bytes", (double)info.file_bytes);
    cJSON_AddNumberToObject(s->result, "step", info.step);
    cJSON_AddStringToObject(s->result, "dtype", dtype_name(info.dtype));
    if (info.optimizer[0]) cJSON_AddStringToObject(s->result, "optimizer", info.optimizer);
    else cJSON_AddNullToObject(s->result, "optimizer");
    cJSON_AddBoolToObject(s->result, "optimizer_state", info.has_optim && !info.state_damage.values);
    cJSON_AddBoolToObject(s->result, "tokenizer", tok != NULL);
    cJSON_AddItemToObject(s->result, "config", model_config_json(c));
    adopt_batches(s, &info);
    adopt_seed_and_data(s, &info, c->seed);
    damage_warnings(s, &info);
    return 0;
}

// ---- model factorize ----------------------------------------------------------------------

// The factorized model's steps and evals go to a run of their own, named after the one it came
// from ("adamw-r8", "adamw-dense"), so that `runs` keeps the two apart. Before any step that is
// the name the next run would have taken (a loaded file's, or the optimizer's).
static void factorize_run_name(const Session *s, int rank, char *out, size_t cap) {
    const char *parent = s->runs.current >= 0 ? s->runs.runs[s->runs.current].name
                         : s->runs.next_name[0] ? s->runs.next_name
                                                : s->optim.name;
    if (rank) snprintf(out, cap, "%.48s-r%d", parent, rank);
    else snprintf(out, cap, "%.48s-dense", parent);
}

// One row per matrix: its shape, rank before → after, and the relative error of the cut.
static void factorize_table(Session *s, int rank, const FactorizeReport *rep) {
    out_text(s, "  %-18s %-12s %-10s %s\n", "matrix", "shape", "rank", "rel. error ‖W−ABᵀ‖/‖W‖");
    cJSON *list = cJSON_AddArrayToObject(s->result, "matrices");
    char to[16] = "dense";
    if (rank) snprintf(to, sizeof to, "%d", rank);
    for (int i = 0; i < rep->n; i++) {
        const FactorizeError *e = &rep->items[i];
        char shape[32], ranks[32];
        snprintf(shape, sizeof shape, "%d×%d", e->rows, e->cols);
        if (e->source_rank) snprintf(ranks, sizeof ranks, "%d→%s", e->source_rank, to);
        else snprintf(ranks, sizeof ranks, "dense→%s", to);
        char row[160] = "";   // cells padded by columns: × and → are one column, two and three bytes
        table_cell(row, sizeof row, e->name, 18, 0);
        table_cell(row, sizeof row, shape, 12, 0);
        table_cell(row, sizeof row, ranks, 10, 0);
        out_text(s, "  %s%.4f\n", row, e->rel_error);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "param", e->name);
        cJSON_AddNumberToObject(o, "rows", e->rows);
        cJSON_AddNumberToObject(o, "cols", e->cols);
        cJSON_AddNumberToObject(o, "source_rank", e->source_rank);
        json_add_real(o, "rel_error", e->rel_error);
        cJSON_AddItemToArray(list, o);
    }
}

// The summary line, and notes where the new rank saves nothing or cannot grow W's rank.
static void factorize_summary(Session *s, int rank, long before, const FactorizeReport *rep) {
    long after = model_counts(&s->model, 1, s->model.cfg.seq).params;
    char pb[32], pa[32];
    fmt_count(pb, sizeof pb, (double)before);
    fmt_count(pa, sizeof pa, (double)after);
    if (rank == 0) out_text(s, "dense: every W = A·Bᵀ formed, exactly; parameters %s → %s\n", pb, pa);
    else out_text(s, "rank %d: worst %.4f, mean %.4f; parameters %s → %s\n", rank, rep->worst, rep->mean, pb, pa);
    long dense = model_counts(&s->model, 1, s->model.cfg.seq).dense_params;   // every W formed
    if (rank > 0 && after >= dense)   // against the dense model: from rank 8, rank 32 may still save
        out_note(s, "note: at rank %d the factors hold %s numbers than the dense matrices they stand for (r·(in+out) "
                    "≥ in·out): nothing is saved, and each product becomes two, slower to train and to decode\n", rank,
                 after > dense ? "more" : "no fewer");
    int grown = 0, from = 0;   // factorized matrices given more rank than their W has
    for (int i = 0; i < rep->n; i++)
        if (rep->items[i].source_rank > 0 && rep->items[i].source_rank < rank) grown++, from = rep->items[i].source_rank;
    if (grown)
        out_note(s, "note: %d matri%s had rank %d: W keeps that rank, and the new directions of A and B start near 0, "
                    "where their gradients are near 0 too — training barely grows them (a dense model, or `model new "
                    "rank=%d`, starts at full rank %d)\n", grown, grown == 1 ? "x" : "ces", from, rank, rank);
    cJSON_AddNumberToObject(s->result, "rank", rank);
    json_add_real(s->result, "worst", rep->worst);
    json_add_real(s->result, "mean", rep->mean);
    cJSON_AddNumberToObject(s->result, "params_before", (double)before);
    cJSON_AddNumberToObject(s->result, "params", (double)after);
}

// A fresh optimizer for the new parameters, at the old step and data position. Without one
// (or when it cannot be built) the position waits in s->resume for the next `optim`/`train`.
static int factorize_new_trainer(Session *s, int had_trainer, Resume resume, int rank, Err *err) {
    if (!had_trainer || trainer_build(&s->trainer, &s->model, &s->optim, s->seed, err) != 0) {
        s->resume = resume;
        return had_trainer ? -1 : 0;
    }
    s->has_trainer = 1;
    s->trainer.step = resume.step;
    s->trainer.data_rng = resume.data_rng;
    s->trainer.shape = resume.shape;
    out_note(s, "optimizer state reset (the %s are new parameters); step count kept at %d\n",
             rank ? "factors" : "matrices", resume.step);
    session_warmup_note(s, resume.step);
    return 0;
}

int cmd_model_factorize(Session *s, const Args *a, Err *err) {
    if (session_need_model(s, err) != 0) return -1;
    if (s->has_ensemble)   // it would drop the members and their training: make one model first
        return err_set(err, "an ensemble of %d is training: `ensemble use I` or `ensemble average` makes one model to "
                            "factorize", s->ens.k);
    if (!args_has(a, "rank")) return err_set(err, "model factorize needs rank=R (e.g. model factorize rank=16)");
    int rank = (int)args_int(a, "rank", 0);
    if (!model_params_finite(&s->model))   // the new model would keep them, and lose the step's rollback
        return err_set(err, "the model holds NaN or infinite values: nothing to factorize (the next `step` rolls back "
                            "an update that made them; or `model load` a checkpoint)");
    Model m;
    FactorizeReport rep;
    memset(&m, 0, sizeof m);
    memset(&rep, 0, sizeof rep);
    long before = model_counts(&s->model, 1, s->model.cfg.seq).params;
    ModelConfig old_cfg = s->model.cfg;
    if (model_factorize(&s->model, rank, &m, &rep, err) != 0) return -1;
    if (!model_params_finite(&m)) {   // entries near the float range: the factors or W = A·Bᵀ overflow
        model_free(&m);
        factorize_report_free(&rep);
        return err_set(err, "factorizing at rank %d overflows float (the model's matrices hold values near 3.4e38): "
                            "the model is as it was", rank);
    }
    if (session_keep_unsaved(s, DROP_MODEL_FACTORIZE, err) != 0) {
        model_free(&m);
        factorize_report_free(&rep);
        return -1;
    }
    int had_trainer = s->has_trainer;
    Resume resume = had_trainer ? trainer_resume(&s->trainer) : s->resume;
    char next_run[64];
    factorize_run_name(s, rank, next_run, sizeof next_run);
    session_replace_model(s, &m, MODEL_DERIVED);   // (ends the current run)
    session_mark_unsaved(s);   // a new model: `quit` and `model new` ask before dropping it
    runlog_name_next(&s->runs, next_run);
    s->model_cfg = s->model.cfg;
    s->model_custom = s->model_custom || !model_config_same_shape(&old_cfg, &s->model.cfg);
    factorize_table(s, rank, &rep);
    factorize_summary(s, rank, before, &rep);
    factorize_report_free(&rep);
    cJSON_AddBoolToObject(s->result, "state_reset", had_trainer);
    return factorize_new_trainer(s, had_trainer, resume, rank, err);
}
