// test_checkpoint.c — safetensors checkpoints: exact F32 and bf16 round trips, a resumed run
// whose losses, parameters and optimizer state are bit-identical to the uninterrupted one under
// every optimizer, the optimizer config round trip, the file checked against the spec by an
// independent parser (and by Python), corrupted files refused by name without touching the
// caller's model, atomic saves, the embedded tokenizer, and ensemble files (member prefixes).
#include <dirent.h>
#include <float.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "test.h"
#include "test_fixtures.h"

static ModelConfig micro_config(void) { return micro_config_layers(3, 2); }
#include "../engine/checkpoint.h"
#include "../engine/model_internal.h"
#include "../engine/rng.h"
#include "../engine/tempfile.h"

static const Backend *be;
static char dir[64];  // a fresh folder under /tmp for this run

static const char *in_dir(const char *name) {
    static char buf[8][256];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, 256, "%s/%s", dir, name);
    return p;
}

static void write_all(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(p, 1, n, f);
    fclose(f);
}

static float *host_copy(const float *dev, size_t n) {
    float *h = malloc(n * sizeof(float));
    be->download(h, dev, n * sizeof(float));
    return h;
}

// Files in dir whose name holds ".tmp." (left-over temporaries).
static int temp_files_left(const char *folder) {
    DIR *d = opendir(folder);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += strstr(e->d_name, ".tmp.") != NULL;
    if (d) closedir(d);
    return n;
}

static uint16_t store[4000];

// A model with a trainer under optimizer `name` a few steps in, so the state, t and data_rng
// are all non-trivial. AdamW at lr 1e-2; the others at their defaults.
static void trained_model_with(Model *m, Trainer *tr, const ModelConfig *c, const char *name, int steps) {
    Err err;
    OptimConfig oc;
    Dataset ds = pattern_dataset(store, 4000, c->vocab);
    CHECK_OK(model_build(m, c, be, &err));
    CHECK_OK(optim_config_default(&oc, name, &err));
    if (strcmp(name, "adamw") == 0) oc.lr = 1e-2f;
    oc.warmup = 3;
    oc.horizon = 20;  // the cosine schedule depends on the step: a resume must restore it
    CHECK_OK(trainer_build(tr, m, &oc, 42, &err));
    for (int i = 0; i < steps; i++) CHECK_OK(trainer_step(tr, &ds, 2, 8, 2, NULL, &err));
}

static void trained_model(Model *m, Trainer *tr, const ModelConfig *c, int steps) {
    trained_model_with(m, tr, c, "adamw", steps);
}

static int state_count(const Trainer *tr) { return optimizer_state_tensors(&tr->opt, tr->model, NULL, 0); }

static int same_config(const ModelConfig *a, const ModelConfig *b) {
    return a->dim == b->dim && a->layers == b->layers && a->heads == b->heads && a->kv_heads == b->kv_heads &&
           a->ffn == b->ffn && a->seq == b->seq && a->vocab == b->vocab && a->rank == b->rank &&
           a->rank_ratio == b->rank_ratio && a->rope_theta == b->rope_theta && a->norm_eps == b->norm_eps &&
           a->seed == b->seed;
}

// ---------------------------------------------------------------------------------------------
// (1) round trips

static void test_f32_round_trip_is_exact(void) {
    Err err;
    Model m, m2;
    Trainer tr, tr2;
    ModelConfig c = micro_config();
    c.seed = 0xFEDCBA9876543210ull;  // beyond 2^53: must survive as a string
    trained_model(&m, &tr, &c, 3);
    const char *path = in_dir("f32.safetensors");
    CheckpointOptions o = {.dtype = CHECKPOINT_F32, .include_optim = 1};
    CHECK_OK(checkpoint_save(path, &m, &tr, NULL, &o, &err));
    CheckpointInfo info;
    CHECK_OK(checkpoint_load(path, be, &m2, &tr2, NULL, &info, &err));
    if (err.msg[0]) {
        trainer_free(&tr);
        model_free(&m);
        return;
    }
    CHECK(same_config(&m.cfg, &m2.cfg), "the config round-trips (seed %llx)", (unsigned long long)m2.cfg.seed);
    CHECK(m2.n_params == m.n_params, "same parameter count");
    float *a = host_copy(m.params, m.n_params), *b = host_copy(m2.params, m2.n_params);
    CHECK(memcmp(a, b, m.n_params * 4) == 0, "F32 parameters round-trip bit for bit");
    free(a); free(b);
    a = host_copy(tr.opt.m, m.n_params); b = host_copy(tr2.opt.m, m.n_params);
    CHECK(memcmp(a, b, m.n_params * 4) == 0, "AdamW first moments round-trip bit for bit");
    free(a); free(b);
    a = host_copy(tr.opt.v, m.n_params); b = host_copy(tr2.opt.v, m.n_params);
    CHECK(memcmp(a, b, m.n_params * 4) == 0, "AdamW second moments round-trip bit for bit");
    free(a); free(b);
    CHECK(tr2.step == 3 && tr2.opt.t == tr.opt.t && tr2.data_rng == tr.data_rng && tr2.model == &m2,
          "trainer state: step %d t %d rng %llu", tr2.step, tr2.opt.t, (unsigned long long)tr2.data_rng);
    const OptimConfig *x = &tr.opt.cfg, *y = &tr2.opt.cfg;
    CHECK(strcmp(x->name, y->name) == 0 && x->lr == y->lr && x->min_lr_ratio == y->min_lr_ratio && x->wd == y->wd &&
          x->beta1 == y->beta1 && x->beta2 == y->beta2 && x->eps == y->eps && x->clip == y->clip &&
          x->warmup == y->warmup && x->horizon == y->horizon, "the optimizer config round-trips");
    CHECK(info.step == 3 && strcmp(info.optimizer, "adamw") == 0 && info.dtype == CHECKPOINT_F32 && info.has_optim &&
          !info.has_tokenizer && info.file_bytes > 0 && info.data_rng == tr.data_rng,
          "info: step %d optimizer '%s' optim %d tok %d", info.step, info.optimizer, info.has_optim, info.has_tokenizer);
    trainer_free(&tr2);
    model_free(&m2);

    // Without a trainer: parameters only; a trainer asked for comes back zeroed.
    CHECK_OK(checkpoint_save(path, &m, NULL, NULL, NULL, &err));
    memset(&tr2, 0x5a, sizeof tr2);
    CHECK_OK(checkpoint_load(path, be, &m2, &tr2, NULL, &info, &err));
    if (!err.msg[0]) {
        CHECK(!info.has_optim && info.step == 0 && info.optimizer[0] == 0, "no optimizer state in a model-only file");
        CHECK(tr2.model == NULL && tr2.opt.m == NULL, "the trainer is zeroed when the file has no optimizer state");
        model_free(&m2);
    }
    trainer_free(&tr);
    model_free(&m);
}

static void test_bf16_round_trip(void) {
    Err err;
    Model m, m2;
    ModelConfig c = {.dim = 64, .layers = 2, .heads = 4, .kv_heads = 4, .ffn = 176, .seq = 16, .vocab = 300,
                     .rank = -1, .rank_ratio = 0.25f, .rope_theta = 10000.0f, .norm_eps = 1e-5f, .seed = 3};
    CHECK_OK(model_build(&m, &c, be, &err));
    // Exact cases of round-to-nearest-even, plus NaN and infinity, in the first embedding values.
    float *p = host_copy(m.params, m.n_params);
    float *e = p + m.tensors[m.embed].offset;
    e[0] = 1.0f + 0x1p-8f;             // halfway between 1 and 1+2^-7: to the even 1
    e[1] = 1.0f + 0x1p-7f + 0x1p-8f;   // halfway between 1+2^-7 (odd) and 1+2^-6 (even)
    e[2] = NAN;
    e[3] = -INFINITY;
    e[4] = 1.0f + 0x1p-8f + 0x1p-20f;  // just above halfway: up
    e[5] = FLT_MAX, e[6] = -FLT_MAX;   // finite: bf16's largest, not ∞ (they rounded to ∞)
    be->upload(m.params, p, m.n_params * 4);
    const char *p32 = in_dir("big32.safetensors"), *p16 = in_dir("big16.safetensors");
    CheckpointOptions o32 = {.dtype = CHECKPOINT_F32}, o16 = {.dtype = CHECKPOINT_BF16};
    CHECK_OK(checkpoint_save(p32, &m, NULL, NULL, &o32, &err));
    CHECK_OK(checkpoint_save(p16, &m, NULL, NULL, &o16, &err));
    CheckpointInfo info;
    CHECK_OK(checkpoint_load(p16, be, &m2, NULL, NULL, &info, &err));
    if (err.msg[0]) { free(p); model_free(&m); return; }
    CHECK(info.dtype == CHECKPOINT_BF16, "info says BF16");
    float *q = host_copy(m2.params, m2.n_params), *f = q + m2.tensors[m2.embed].offset;
    CHECK(f[0] == 1.0f && f[1] == 1.0f + 0x1p-6f && isnan(f[2]) && f[3] == -INFINITY && f[4] == 1.0f + 0x1p-7f,
          "bf16 rounding: %.9g %.9g %g %g %.9g", f[0], f[1], f[2], f[3], f[4]);
    CHECK(f[5] == 0x1.fep127f && f[6] == -0x1.fep127f, "bf16 of ±FLT_MAX: %g %g (±3.3895e38 wanted)", f[5], f[6]);
    double worst = 0;
    for (int t = 0; t < m.n_tensors; t++) {
        size_t off = m.tensors[t].offset, n = (size_t)m.tensors[t].rows * m.tensors[t].cols;
        for (size_t i = t == m.embed ? 5 : 0; i < n; i++)
            worst = fmax(worst, fabs(q[off + i] - p[off + i]) / fmax(fabs(p[off + i]), 1e-30));
    }
    CHECK(worst <= 1.0 / 256, "bf16 parameters within bf16 precision: worst relative error %.3g", worst);
    struct stat s32, s16;
    stat(p32, &s32);
    stat(p16, &s16);
    double ratio = (double)s16.st_size / s32.st_size;
    CHECK(ratio > 0.45 && ratio < 0.55, "the bf16 file is about half the size: %ld vs %ld bytes (%.3f)",
          (long)s16.st_size, (long)s32.st_size, ratio);
    CHECK(info.file_bytes == (size_t)s16.st_size, "info.file_bytes %zu", info.file_bytes);
    free(p); free(q);
    model_free(&m2);
    model_free(&m);
}

// ---------------------------------------------------------------------------------------------
// (2) resume

// Every state tensor of a and b (same optimizer over same-shaped models) byte for byte; the
// name of the first that differs in *which.
static int same_state(const Trainer *a, const Trainer *b, const char **which) {
    static StateTensor sa[512], sb[512];
    int n = optimizer_state_tensors(&a->opt, a->model, sa, 512);
    if (n > 512 || n != optimizer_state_tensors(&b->opt, b->model, sb, 512)) return *which = "(the count)", 0;
    for (int i = 0; i < n; i++) {
        float *x = host_copy(sa[i].data, (size_t)sa[i].numel), *y = host_copy(sb[i].data, (size_t)sb[i].numel);
        int same = strcmp(sa[i].name, sb[i].name) == 0 && sa[i].numel == sb[i].numel &&
                   memcmp(x, y, (size_t)sa[i].numel * 4) == 0;
        free(x);
        free(y);
        if (!same) return *which = sa[i].name, 0;
    }
    return 1;
}

// Train K steps, save, go on to N; load into fresh objects and go K → N: the same losses, the
// same parameters and the same optimizer state, bit for bit. Diagnostics every other step, so
// the diagnostic vectors are exercised (and must come back) too.
static void resume_under(const char *name) {
    enum { N = 12, K = 5 };
    Err err;
    Model m, m2;
    Trainer tr, tr2;
    ModelConfig c = micro_config();
    Dataset ds = pattern_dataset(store, 4000, c.vocab);
    float full[N], resumed[N];
    char file[64];
    snprintf(file, sizeof file, "resume-%s.safetensors", name);
    const char *path = in_dir(file);
    trained_model_with(&m, &tr, &c, name, 0);
    tr.diag_every = 2;
    for (int i = 0; i < N; i++) {
        StepStats s = {0};
        CHECK_OK(trainer_step(&tr, &ds, 2, 8, 2, &s, &err));
        full[i] = s.loss;
        if (i + 1 == K) CHECK_OK(checkpoint_save(path, &m, &tr, NULL, NULL, &err));
    }
    CheckpointInfo info;
    CHECK_OK(checkpoint_load(path, be, &m2, &tr2, NULL, &info, &err));
    if (err.msg[0]) {
        trainer_free(&tr);
        model_free(&m);
        return;
    }
    CHECK(tr2.step == K && info.has_optim && strcmp(info.optimizer, name) == 0 && strcmp(tr2.opt.cfg.name, name) == 0,
          "%s: resumed at step %d under '%s'", name, tr2.step, tr2.opt.cfg.name);
    CHECK(tr2.shape.batch == 2 && tr2.shape.seq == 8 && tr2.shape.accum == 2 && info.shape.batch == 2 &&
              info.shape.seq == 8 && info.shape.accum == 2,
          "%s: the last update's batches come back: batch %d seq %d accum %d, want 2, 8, 2", name, tr2.shape.batch,
          tr2.shape.seq, tr2.shape.accum);
    tr2.diag_every = 2;   // a session setting, not state
    for (int i = K; i < N; i++) {
        StepStats s = {0};
        CHECK_OK(trainer_step(&tr2, &ds, 2, 8, 2, &s, &err));
        resumed[i] = s.loss;
    }
    CHECK(memcmp(full + K, resumed + K, sizeof(float) * (N - K)) == 0,
          "%s: losses after the resume are bit-identical: step %d %.9g vs %.9g", name, N, full[N - 1], resumed[N - 1]);
    float *a = host_copy(m.params, m.n_params), *b = host_copy(m2.params, m2.n_params);
    CHECK(m.n_params == m2.n_params && memcmp(a, b, m.n_params * 4) == 0,
          "%s: the final parameters are bit-identical", name);
    free(a);
    free(b);
    const char *which = NULL;
    CHECK(same_state(&tr, &tr2, &which), "%s: the final optimizer state is bit-identical (%s differs)", name, which);
    CHECK(isfinite(full[N - 1]) && full[N - 1] < full[0], "%s: the run is learning (%.4f → %.4f)", name, full[0],
          full[N - 1]);
    trainer_free(&tr2);
    model_free(&m2);
    trainer_free(&tr);
    model_free(&m);
}

static void test_resume_is_bit_identical(void) {
    for (int i = 0; optim_names[i]; i++) resume_under(optim_names[i]);
}

// Every option the optimizer takes comes back as it was, not as its default.
static void test_optim_config_round_trip(void) {
    Err err;
    Model m, m2;
    Trainer tr, tr2;
    ModelConfig c = micro_config();
    OptimConfig oc, def;
    CHECK_OK(model_build(&m, &c, be, &err));
    CHECK_OK(optim_config_default(&oc, "spectron", &err));
    def = oc;
    const char *set[][2] = {{"lr", "0.013"}, {"adam_lr", "1e-3"}, {"wd", "0.02"}, {"momentum", "0.9"},
                            {"nesterov", "no"}, {"ns_steps", "4"}, {"power_iters", "3"}, {"shape_scale", "yes"},
                            {"beta1", "0.8"}, {"beta2", "0.99"}, {"eps", "1e-6"}, {"clip", "0.5"},
                            {"warmup", "7"}, {"horizon", "50"}, {"min_lr_ratio", "0.05"}};
    for (size_t i = 0; i < sizeof set / sizeof set[0]; i++) CHECK_OK(optim_config_set(&oc, set[i][0], set[i][1], &err));
    CHECK_OK(trainer_build(&tr, &m, &oc, 5, &err));
    const char *path = in_dir("config.safetensors");
    CHECK_OK(checkpoint_save(path, &m, &tr, NULL, NULL, &err));
    CHECK_OK(checkpoint_load(path, be, &m2, &tr2, NULL, NULL, &err));
    if (!err.msg[0]) {
        const OptimConfig *y = &tr2.opt.cfg;
        CHECK(strcmp(y->name, "spectron") == 0 && y->kind == OPTIM_SPECTRON, "the optimizer: %s", y->name);
        int keys = 0;
        for (const char *key; (key = optim_config_key(&oc, keys)); keys++) {
            char want[64], got[64], was[64];
            CHECK_OK(optim_config_get(&oc, key, want, sizeof want, &err));
            CHECK_OK(optim_config_get(y, key, got, sizeof got, &err));
            CHECK_OK(optim_config_get(&def, key, was, sizeof was, &err));
            CHECK(strcmp(want, got) == 0 && strcmp(want, was) != 0, "option %s: saved %s, loaded %s (default %s)",
                  key, want, got, was);
        }
        CHECK(keys == (int)(sizeof set / sizeof set[0]), "spectron takes %d options; the test sets %zu", keys,
              sizeof set / sizeof set[0]);
        CHECK(tr2.shape.batch == 0 && tr2.shape.seq == 0 && tr2.shape.accum == 0,
              "a trainer that took no update saves no batches (loaded %d, %d, %d)", tr2.shape.batch, tr2.shape.seq,
              tr2.shape.accum);
        CHECK(y->lr == oc.lr && y->adam_lr == oc.adam_lr && y->momentum == oc.momentum && y->eps == oc.eps &&
              y->nesterov == 0 && y->ns_steps == 4 && y->power_iters == 3 && y->shape_scale == 1 &&
              y->min_lr_ratio == oc.min_lr_ratio && y->warmup == 7 && y->horizon == 50,
              "the floats come back bit for bit, the switches as set");
        trainer_free(&tr2);
        model_free(&m2);
    }
    // the file holds the options as text, by name
    size_t size = 0;
    uint8_t *f = (uint8_t *)read_all(path, &size);
    f[size - 1] = 0;   // the JSON header has no NUL; the 8-byte length before it does
    CHECK(strstr((char *)f + 8, "\\\"ns_steps\\\":\\\"4\\\"") && strstr((char *)f + 8, "\\\"shape_scale\\\":\\\"on\\\"") &&
              strstr((char *)f + 8, "\"lrsh_version\":\"2\""),
          "optim_config holds ns_steps and shape_scale as text; lrsh_version 2");
    CHECK(!strstr((char *)f + 8, "\"batch\"") && !strstr((char *)f + 8, "\"accum\""), "no batches before an update");
    free(f);
    trainer_free(&tr);
    model_free(&m);
}

// A model saved with progress but no trainer (loaded, not trained since) reads back as one saved
// by a trainer without state: its step, data position and optimizer settings, no moments.
static void test_progress_without_trainer(void) {
    Err err;
    Model m, m2;
    Trainer tr2;
    ModelConfig c = micro_config();
    CheckpointProgress p = {.step = 2500, .data_rng = 0x1234567890abcdefull, .shape = {3, 7, 2}};
    CHECK_OK(model_build(&m, &c, be, &err));
    CHECK_OK(optim_config_default(&p.optim, "spectron", &err));
    CHECK_OK(optim_config_set(&p.optim, "lr", "0.02", &err));
    const char *path = in_dir("progress.safetensors");
    CheckpointOptions o = checkpoint_default_options();   // optimizer state asked for: there is none
    o.next = (TrainShape){5, 0, 3};                       // the saver's own settings, seq 0: the context
    o.data = (DataIdentity){1000003, 950002, 0xfedcba9876543210ull};   // a hash past 2^53: exact as a string
    o.run = "sp8-lr0.02", o.run_id = 0xabcdef0123456789ull;
    CHECK_OK(checkpoint_save_progress(path, &m, &p, NULL, &o, &err));
    CheckpointInfo info;
    CHECK_OK(checkpoint_load(path, be, &m2, &tr2, NULL, &info, &err));
    if (!err.msg[0]) {
        CHECK(info.step == 2500 && info.data_rng == p.data_rng && !info.has_optim,
              "step %d, data_rng %llx, state %d: want 2500, %llx, none", info.step, (unsigned long long)info.data_rng,
              info.has_optim, (unsigned long long)p.data_rng);
        CHECK(strcmp(info.optimizer, "spectron") == 0 && info.optim.kind == OPTIM_SPECTRON && info.optim.lr == p.optim.lr,
              "optimizer %s lr %g: want spectron lr 0.02", info.optimizer, info.optim.lr);
        CHECK(tr2.model == NULL, "no trainer is built from a file without state");
        CHECK(info.shape.batch == 3 && info.shape.seq == 7 && info.shape.accum == 2, "batches %d, %d, %d: want 3, 7, 2",
              info.shape.batch, info.shape.seq, info.shape.accum);
        CHECK(info.next.batch == 5 && info.next.seq == 0 && info.next.accum == 3, "next batches %d, %d, %d: want 5, 0, 3",
              info.next.batch, info.next.seq, info.next.accum);
        CHECK(info.data.tokens == o.data.tokens && info.data.train == o.data.train && info.data.hash == o.data.hash,
              "data %ld, %ld, %llx: want %ld, %ld, %llx", info.data.tokens, info.data.train,
              (unsigned long long)info.data.hash, o.data.tokens, o.data.train, (unsigned long long)o.data.hash);
        CHECK(strcmp(info.run, "sp8-lr0.02") == 0 && info.run_id == o.run_id, "run '%s' %llx: want sp8-lr0.02 %llx",
              info.run, (unsigned long long)info.run_id, (unsigned long long)o.run_id);
        model_free(&m2);
    }
    model_free(&m);
}

// ---------------------------------------------------------------------------------------------
// (3) the file is safetensors, checked without the loader

static uint64_t le64(const uint8_t *p) {
    uint64_t n = 0;
    for (int i = 0; i < 8; i++) n |= (uint64_t)p[i] << (8 * i);
    return n;
}

static int entry_cmp(const void *a, const void *b) {
    double x = (*(cJSON *const *)a)->valuedouble, y = (*(cJSON *const *)b)->valuedouble;
    return (x > y) - (x < y);
}

static void check_spec(const char *path, int expect_tensors) {
    size_t size = 0;
    uint8_t *f = (uint8_t *)read_all(path, &size);
    CHECK(f && size >= 8, "%s readable", path);
    if (!f || size < 8) { free(f); return; }
    uint64_t n = le64(f);
    CHECK(n <= size - 8 && n % 8 == 0, "header length %llu within the file and a multiple of 8", (unsigned long long)n);
    if (n > size - 8) { free(f); return; }
    CHECK(f[8] == '{', "the header starts with '{'");
    char *json = malloc(n + 1);
    memcpy(json, f + 8, n);
    json[n] = 0;
    size_t raw = strlen(json);
    while (raw && json[raw - 1] == ' ') raw--;
    cJSON *root = cJSON_ParseWithLength(json, raw);
    CHECK(cJSON_IsObject(root), "the header is one JSON object (padding: spaces)");
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(root, "__metadata__");
    int strings = cJSON_IsObject(md);
    for (const cJSON *v = md ? md->child : NULL; v; v = v->next) strings &= cJSON_IsString(v);
    CHECK(strings, "__metadata__ is a string-to-string map");
    const char *format = cJSON_GetStringValue(cJSON_GetObjectItem(md, "format"));
    CHECK(format && strcmp(format, "lrsh") == 0, "format=lrsh");
    const char *config = cJSON_GetStringValue(cJSON_GetObjectItem(md, "config"));
    cJSON *cfg = config ? cJSON_Parse(config) : NULL;
    CHECK(cJSON_IsObject(cfg) && cJSON_GetObjectItem(cfg, "kv_heads"), "config is a JSON string with every field");
    cJSON_Delete(cfg);
    // every entry: known dtype, bytes = numel·size; offsets tile the buffer in order
    int count = 0, ok = 1;
    cJSON *begins[4096];
    size_t data = size - 8 - n;
    for (cJSON *e = root ? root->child : NULL; e && count < 4096; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) continue;
        const char *dt = cJSON_GetStringValue(cJSON_GetObjectItem(e, "dtype"));
        int sz = !dt ? 0 : !strcmp(dt, "F32") ? 4 : !strcmp(dt, "BF16") ? 2 : !strcmp(dt, "U8") ? 1 : 0;
        double numel = 1;
        cJSON *d;
        cJSON_ArrayForEach(d, cJSON_GetObjectItem(e, "shape")) numel *= d->valuedouble;
        cJSON *offs = cJSON_GetObjectItem(e, "data_offsets");
        double b = cJSON_GetArrayItem(offs, 0)->valuedouble, en = cJSON_GetArrayItem(offs, 1)->valuedouble;
        if (!sz || en - b != numel * sz || en > (double)data) {
            ok = 0;
            fprintf(stderr, "  entry %s: dtype %s numel %.0f offsets [%.0f, %.0f]\n", e->string, dt, numel, b, en);
        }
        begins[count++] = cJSON_GetArrayItem(offs, 0);
    }
    CHECK(ok, "every entry has a known dtype and data_offsets sized for its shape");
    CHECK(count == expect_tensors, "%d tensors, expected %d", count, expect_tensors);
    qsort(begins, (size_t)count, sizeof begins[0], entry_cmp);
    double at = 0;
    for (int i = 0; i < count; i++) {
        ok &= begins[i]->valuedouble == at;
        at = begins[i]->next->valuedouble;
    }
    CHECK(ok && at == (double)data, "offsets are contiguous and cover the %zu-byte data buffer", data);
    cJSON_Delete(root);
    free(json);
    free(f);
}

// Python's own reading (numpy when present, else struct): the sum of the embedding must match.
static const char *py_reader =
    "import json, struct, sys\n"
    "raw = open(sys.argv[1], 'rb').read()\n"
    "n = struct.unpack('<Q', raw[:8])[0]\n"
    "hdr = json.loads(raw[8:8 + n])\n"
    "buf = raw[8 + n:]\n"
    "e = hdr['embed']\n"
    "b, en = e['data_offsets']\n"
    "try:\n"
    "    import numpy as np\n"
    "    x = np.frombuffer(buf[b:en], dtype='<f4').reshape(e['shape'])\n"
    "    vals = [float(v) for v in x.reshape(-1)]\n"
    "    how = 'numpy'\n"
    "except ImportError:\n"
    "    vals = list(struct.unpack('<%df' % ((en - b) // 4), buf[b:en]))\n"
    "    how = 'struct'\n"
    "try:\n"
    "    from safetensors.numpy import load_file\n"
    "    assert sorted(load_file(sys.argv[1]).keys()) == sorted(k for k in hdr if k != '__metadata__')\n"
    "    how += '+safetensors'\n"
    "except ImportError:\n"
    "    pass\n"
    "s = 0.0\n"
    "for v in vals:\n"
    "    s += v\n"
    "print(how, len(vals), repr(s))\n";

static void test_file_is_safetensors(void) {
    Err err;
    Model m;
    Trainer tr;
    ModelConfig c = micro_config();
    trained_model(&m, &tr, &c, 2);
    const char *path = in_dir("spec.safetensors"), *bf = in_dir("spec16.safetensors");
    CHECK_OK(checkpoint_save(path, &m, &tr, NULL, NULL, &err));
    check_spec(path, m.n_tensors + state_count(&tr));
    CheckpointOptions o = {.dtype = CHECKPOINT_BF16, .include_optim = 0};
    CHECK_OK(checkpoint_save(bf, &m, &tr, NULL, &o, &err));
    check_spec(bf, m.n_tensors);

    if (system("python3 -c 'import json, struct' >/dev/null 2>&1") != 0) {
        printf("  (skipped: no python3 to read the file independently)\n");
    } else {
        const char *script = in_dir("read.py"), *out = in_dir("read.out");
        write_all(script, py_reader, strlen(py_reader));
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "python3 %s %s > %s 2>&1", script, path, out);
        int rc = system(cmd);
        size_t n = 0;
        char *text = (char *)read_all(out, &n);
        if (text) text[n] = 0;
        char how[32] = "";
        int count = 0;
        double sum = NAN;
        int got = text ? sscanf(text, "%31s %d %lf", how, &count, &sum) : 0;
        CHECK(rc == 0 && got == 3, "python read the file: rc %d, output '%s'", rc, text ? text : "");
        float *p = host_copy(param(&m, m.embed), (size_t)c.vocab * c.dim);
        double want = 0;
        for (int i = 0; i < c.vocab * c.dim; i++) want += p[i];  // the same order as Python's loop
        CHECK(count == c.vocab * c.dim && sum == want, "python (%s) sees the embedding: %d values, sum %.17g vs %.17g",
              how, count, sum, want);
        printf("  (python read it with %s)\n", how);
        free(p);
        free(text);
    }
    trainer_free(&tr);
    model_free(&m);
}

// ---------------------------------------------------------------------------------------------
// (4) corrupted files

typedef struct Victim {
    Model m;
    Trainer tr;
    Tokenizer *tok;
    Model m_before;
    Trainer tr_before;
    float *params;
} Victim;

// Load a bad file into a live model; the load must fail naming the problem and touch nothing.
static void expect_refused(Victim *v, const char *path, const char *want1, const char *want2, const char *what) {
    Err err = {{0}};
    CheckpointInfo info;
    int rc = checkpoint_load(path, be, &v->m, &v->tr, &v->tok, &info, &err);
    CHECK(rc != 0 && strstr(err.msg, want1) && (!want2 || strstr(err.msg, want2)),
          "%s: expected an error with '%s'%s%s, got rc=%d '%s'", what, want1, want2 ? " and " : "", want2 ? want2 : "",
          rc, err.msg);
    CHECK(rc == 0 || strstr(err.msg, path), "%s: the error names the file: '%s'", what, err.msg);
    float *now = host_copy(v->m.params, v->m.n_params);
    CHECK(memcmp(&v->m, &v->m_before, sizeof v->m) == 0 && memcmp(&v->tr, &v->tr_before, sizeof v->tr) == 0 &&
          v->tok == (Tokenizer *)v && memcmp(now, v->params, v->m.n_params * 4) == 0,
          "%s: the caller's model, trainer and tokenizer are untouched", what);
    free(now);
}

// Rewrite the file with a new header (padded to 8) and the given data buffer.
static void write_with_header(const char *path, const char *json, const uint8_t *data, size_t data_size) {
    size_t n = strlen(json), padded = (n + 7) / 8 * 8;
    uint8_t *f = malloc(8 + padded + data_size);
    for (int i = 0; i < 8; i++) f[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    memcpy(f + 8, json, n);
    memset(f + 8 + n, ' ', padded - n);
    memcpy(f + 8 + padded, data, data_size);
    write_all(path, f, 8 + padded + data_size);
    free(f);
}

typedef struct Good {
    uint8_t *file;
    size_t size, hlen;
    const uint8_t *data;
    size_t data_size;
} Good;

// A file read whole, with its header and data buffer located.
static Good read_good(const char *path) {
    Good g = {0};
    g.file = (uint8_t *)read_all(path, &g.size);
    g.hlen = le64(g.file);
    g.data = g.file + 8 + g.hlen;
    g.data_size = g.size - 8 - g.hlen;
    return g;
}

// The good header, edited by fn, written with the good data buffer.
static void write_edited(const char *path, const Good *g, void (*fn)(cJSON *root, const void *arg), const void *arg) {
    char *json = malloc(g->hlen + 1);
    memcpy(json, g->file + 8, g->hlen);
    json[g->hlen] = 0;
    cJSON *root = cJSON_Parse(json);
    fn(root, arg);
    char *out = cJSON_PrintUnformatted(root);
    write_with_header(path, out, g->data, g->data_size);
    free(out);
    cJSON_Delete(root);
    free(json);
}

static void set_dtype(cJSON *root, const void *arg) {
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(root, "blocks.0.attn.wq.A"), "dtype", cJSON_CreateString(arg));
}
static void transpose_shape(cJSON *root, const void *arg) {
    (void)arg;
    cJSON *s = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "blocks.1.mlp.w2.A"), "shape");
    double r = cJSON_GetArrayItem(s, 0)->valuedouble, c = cJSON_GetArrayItem(s, 1)->valuedouble;
    cJSON_SetNumberValue(cJSON_GetArrayItem(s, 0), c);
    cJSON_SetNumberValue(cJSON_GetArrayItem(s, 1), r);
}
static void set_offsets(cJSON *root, const char *name, double b, double e) {
    cJSON *o = cJSON_GetObjectItem(cJSON_GetObjectItem(root, name), "data_offsets");
    cJSON_SetNumberValue(cJSON_GetArrayItem(o, 0), b);
    cJSON_SetNumberValue(cJSON_GetArrayItem(o, 1), e);
}
static void offsets_out_of_range(cJSON *root, const void *arg) {
    (void)arg;
    cJSON *o = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "head"), "data_offsets");
    double b = cJSON_GetArrayItem(o, 0)->valuedouble, e = cJSON_GetArrayItem(o, 1)->valuedouble;
    set_offsets(root, "head", b + 1e6, e + 1e6);
}
static void offsets_reversed(cJSON *root, const void *arg) {
    (void)arg;
    cJSON *o = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "head"), "data_offsets");
    set_offsets(root, "head", cJSON_GetArrayItem(o, 1)->valuedouble, cJSON_GetArrayItem(o, 0)->valuedouble);
}
static void overlap(cJSON *root, const void *arg) {
    (void)arg;
    cJSON *o = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "blocks.0.attn.wk.A"), "data_offsets");
    set_offsets(root, "blocks.0.attn.wv.A", cJSON_GetArrayItem(o, 0)->valuedouble, cJSON_GetArrayItem(o, 1)->valuedouble);
}
static void delete_tensor(cJSON *root, const void *arg) { cJSON_DeleteItemFromObject(root, arg); }
static void add_zero_tensor(cJSON *root, const void *arg) {
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "dtype", "F32");
    cJSON *s = cJSON_AddArrayToObject(e, "shape");
    cJSON_AddItemToArray(s, cJSON_CreateNumber(0));
    cJSON *o = cJSON_AddArrayToObject(e, "data_offsets");
    cJSON_AddItemToArray(o, cJSON_CreateNumber(0));
    cJSON_AddItemToArray(o, cJSON_CreateNumber(0));
    cJSON_AddItemToObject(root, arg, e);
}
static void set_meta(cJSON *root, const void *arg) {
    const char *const *kv = arg;  // {key, value}
    cJSON *md = cJSON_GetObjectItem(root, "__metadata__");
    cJSON_DeleteItemFromObject(md, kv[0]);
    if (kv[1]) cJSON_AddStringToObject(md, kv[0], kv[1]);
}
// Data sizes that load, with arg as the data hash.
static void set_data_hash(cJSON *root, const void *arg) {
    const char *data[][2] = {{"data_tokens", "1000"}, {"data_train", "900"}, {"data_hash", arg}};
    for (int i = 0; i < 3; i++) set_meta(root, data[i]);
}
static void set_config_field(cJSON *root, const void *arg) {
    const char *const *kv = arg;
    cJSON *md = cJSON_GetObjectItem(root, "__metadata__");
    cJSON *cfg = cJSON_Parse(cJSON_GetStringValue(cJSON_GetObjectItem(md, "config")));
    cJSON_ReplaceItemInObject(cfg, kv[0], cJSON_CreateNumber(atof(kv[1])));
    char *s = cJSON_PrintUnformatted(cfg);
    cJSON_ReplaceItemInObject(md, "config", cJSON_CreateString(s));
    free(s);
    cJSON_Delete(cfg);
}
// Remove a tensor and its bytes, shifting the later ones: a well-formed file that lacks it.
static void remove_with_bytes(const char *path, const Good *g, const char *name) {
    char *json = malloc(g->hlen + 1);
    memcpy(json, g->file + 8, g->hlen);
    json[g->hlen] = 0;
    cJSON *root = cJSON_Parse(json);
    cJSON *o = cJSON_GetObjectItem(cJSON_GetObjectItem(root, name), "data_offsets");
    size_t b = (size_t)cJSON_GetArrayItem(o, 0)->valuedouble, e = (size_t)cJSON_GetArrayItem(o, 1)->valuedouble;
    cJSON_DeleteItemFromObject(root, name);
    for (cJSON *t = root->child; t; t = t->next) {
        cJSON *to = cJSON_GetObjectItem(t, "data_offsets");
        if (!to || cJSON_GetArrayItem(to, 0)->valuedouble < (double)e) continue;
        set_offsets(root, t->string, cJSON_GetArrayItem(to, 0)->valuedouble - (double)(e - b),
                    cJSON_GetArrayItem(to, 1)->valuedouble - (double)(e - b));
    }
    uint8_t *data = malloc(g->data_size);
    memcpy(data, g->data, b);
    memcpy(data + b, g->data + e, g->data_size - e);
    char *out = cJSON_PrintUnformatted(root);
    write_with_header(path, out, data, g->data_size - (e - b));
    free(out);
    free(data);
    cJSON_Delete(root);
    free(json);
}

static void test_corrupt_files_are_refused(void) {
    Err err;
    Model m;
    Trainer tr;
    ModelConfig c = micro_config();
    trained_model(&m, &tr, &c, 2);
    const char *good = in_dir("good.safetensors"), *bad = in_dir("bad.safetensors");
    CHECK_OK(checkpoint_save(good, &m, &tr, NULL, NULL, &err));
    trainer_free(&tr);
    model_free(&m);
    Good g = read_good(good);

    Victim v;
    ModelConfig vc = micro_config();
    vc.seed = 99;
    trained_model(&v.m, &v.tr, &vc, 1);
    v.tok = (Tokenizer *)&v;  // a sentinel: a failed load must not write it
    memcpy(&v.m_before, &v.m, sizeof v.m);  // memcpy, not =: padding bytes must match for memcmp
    memcpy(&v.tr_before, &v.tr, sizeof v.tr);
    v.params = host_copy(v.m.params, v.m.n_params);

    // truncations: inside the length, inside the header, inside the data, one byte short
    size_t cuts[] = {0, 3, 8, 8 + g.hlen / 2, 8 + g.hlen, 8 + g.hlen + 100, g.size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        write_all(bad, g.file, cuts[i]);
        char what[64];
        snprintf(what, sizeof what, "truncated at %zu of %zu bytes", cuts[i], g.size);
        expect_refused(&v, bad, "truncated", NULL, what);
    }
    uint8_t *f = malloc(g.size);
    memcpy(f, g.file, g.size);
    uint64_t big = g.size;
    for (int i = 0; i < 8; i++) f[i] = (uint8_t)(big >> (8 * i));
    write_all(bad, f, g.size);
    expect_refused(&v, bad, "beyond the file", NULL, "header length beyond the file");
    for (int i = 0; i < 8; i++) f[i] = (uint8_t)(~0ull >> (8 * i));
    write_all(bad, f, g.size);
    expect_refused(&v, bad, "beyond the file", NULL, "header length 2^64-1");
    // a path longer than a message: the error keeps its start and its reason at the end
    char longpath[3100];
    int at = snprintf(longpath, sizeof longpath, "/nonexistent");
    while (at < 3000) at += snprintf(longpath + at, sizeof longpath - (size_t)at, "/d");
    snprintf(longpath + at, sizeof longpath - (size_t)at, "/x.safetensors");
    Err lerr = {{0}};
    CheckpointInfo linfo;
    CHECK(checkpoint_load(longpath, be, &v.m, &v.tr, &v.tok, &linfo, &lerr) != 0 && strstr(lerr.msg, "/nonexistent/d/") &&
              strstr(lerr.msg, "…") && strstr(lerr.msg, "No such file or directory") && strlen(lerr.msg) < sizeof lerr.msg,
          "a long path's error keeps its reason: '%s'", lerr.msg);
    const char *text = "# notes — this is a text file, not a model\n";   // shown as it starts, the dash whole
    write_all(bad, text, strlen(text));
    expect_refused(&v, bad, "not a safetensors file", "starts \"# notes — this\"", "a text file");
    const char binary[] = "\x01\x02" "abc\xff\xfe\n\x1b[0mxxxxxxxxxxxx";
    write_all(bad, binary, sizeof binary - 1);
    expect_refused(&v, bad, "not a safetensors file", "starts \"\\x01\\x02abc\\xff\\xfe\\x0a\\x1b[0mxxxx\"", "a binary file");
    const char cut[] = "aaaaaaaaaaaaaa\xe2\x80\x94xyyyyyyyyyyyyy";   // the dash's bytes 15 to 17
    write_all(bad, cut, sizeof cut - 1);
    expect_refused(&v, bad, "not a safetensors file", "starts \"aaaaaaaaaaaaaa…\"", "a character cut at 16 bytes");
    const char bidi[] = "ab\xe2\x80\xae" "cdyyyyyyyyyyyyyyyyyyyy";   // U+202E would reverse the line
    write_all(bad, bidi, sizeof bidi - 1);
    expect_refused(&v, bad, "not a safetensors file", "starts \"ab\\xe2\\x80\\xaecd", "a bidi override");
    free(f);

    write_with_header(bad, "{\"__metadata__\": {\"format\": \"lrsh\"", g.data, g.data_size);
    expect_refused(&v, bad, "malformed JSON", NULL, "unterminated JSON");
    write_with_header(bad, "{} garbage", g.data, g.data_size);
    expect_refused(&v, bad, "malformed JSON", NULL, "bytes after the JSON object");
    write_with_header(bad, "[1, 2, 3]", g.data, g.data_size);
    expect_refused(&v, bad, "not a JSON object", NULL, "a JSON array header");

    write_edited(bad, &g, set_dtype, "Q8");
    expect_refused(&v, bad, "unknown dtype", "blocks.0.attn.wq.A", "unknown dtype");
    write_edited(bad, &g, set_dtype, "F16");
    expect_refused(&v, bad, "F16 is not supported", "blocks.0.attn.wq.A", "F16");
    write_edited(bad, &g, set_dtype, "U8");
    expect_refused(&v, bad, "blocks.0.attn.wq.A", NULL, "U8 parameter");
    write_edited(bad, &g, transpose_shape, NULL);
    expect_refused(&v, bad, "tensor blocks.1.mlp.w2.A: shape [3, 16] but the config needs [16, 3]", NULL, "shape mismatch");
    const char *rank2[] = {"rank", "2"};
    write_edited(bad, &g, set_config_field, rank2);
    expect_refused(&v, bad, "but the config needs [16, 2]", "blocks.0.attn.wq.A", "config rank 2 against rank-3 tensors");
    const char *rank_neg[] = {"rank", "-5"};   // only -1 (the rank_ratio) is a negative rank
    write_edited(bad, &g, set_config_field, rank_neg);
    expect_refused(&v, bad, "rank=-5", NULL, "config rank -5");
    write_edited(bad, &g, offsets_out_of_range, NULL);
    expect_refused(&v, bad, "outside the data buffer", "head", "offsets out of range");
    write_edited(bad, &g, offsets_reversed, NULL);
    expect_refused(&v, bad, "end before they begin", "head", "offsets reversed (not a truncation)");
    write_edited(bad, &g, overlap, NULL);
    expect_refused(&v, bad, "overlap", "blocks.0.attn.wv.A", "overlapping offsets");
    write_edited(bad, &g, delete_tensor, "blocks.1.mlp.w3.B");
    expect_refused(&v, bad, "blocks.1.mlp.w3.B is missing", NULL, "missing tensor (entry only)");
    remove_with_bytes(bad, &g, "blocks.1.mlp.w3.B");
    expect_refused(&v, bad, "blocks.1.mlp.w3.B is missing", NULL, "missing tensor (entry and bytes)");
    remove_with_bytes(bad, &g, "optim.v.head");
    expect_refused(&v, bad, "optim.v.head is missing", NULL, "missing optimizer moment");
    write_edited(bad, &g, add_zero_tensor, "blocks.9.attn.wq.A");
    expect_refused(&v, bad, "unknown tensor 'blocks.9.attn.wq.A'", NULL, "unknown tensor");
    const char *v3[] = {"lrsh_version", "3"}, *v1[] = {"lrsh_version", "1"}, *nofmt[] = {"format", "pt"},
               *nocfg[] = {"config", NULL}, *badstep[] = {"step", "-3"}, *badopt[] = {"optimizer", "lion"};
    write_edited(bad, &g, set_meta, v3);
    expect_refused(&v, bad, "version '3' is not supported", NULL, "future version");
    write_edited(bad, &g, set_meta, v1);
    expect_refused(&v, bad, "version 1 is not supported", "predates the optimizer rewrite", "version 1");
    write_edited(bad, &g, set_meta, nofmt);
    expect_refused(&v, bad, "not an lrsh checkpoint", NULL, "format=pt");
    write_edited(bad, &g, set_meta, nocfg);
    expect_refused(&v, bad, "no model config", NULL, "no config");
    write_edited(bad, &g, set_meta, badstep);
    expect_refused(&v, bad, "step '-3'", NULL, "negative step");
    write_edited(bad, &g, set_meta, badopt);
    expect_refused(&v, bad, "unknown optimizer 'lion'", NULL, "unknown optimizer");
    const char *noaccum[] = {"accum", NULL}, *batch0[] = {"batch", "0"}, *seq_long[] = {"seq", "100000"};
    write_edited(bad, &g, set_meta, seq_long);
    expect_refused(&v, bad, "seq 100000 is longer than the model's context", NULL, "seq beyond the context");
    write_edited(bad, &g, set_meta, noaccum);
    expect_refused(&v, bad, "accum '(none)'", "batch, seq and accum go together", "batch and seq without accum");
    write_edited(bad, &g, set_meta, batch0);
    expect_refused(&v, bad, "batch '0' is not a positive number up to", NULL, "batch 0");
    const char *ocfg_key[] = {"optim_config", "{\"lr\":\"0.01\",\"ns_steps\":\"5\"}"},
               *ocfg_val[] = {"optim_config", "{\"lr\":\"fast\"}"}, *ocfg_num[] = {"optim_config", "{\"lr\":0.01}"},
               *ocfg_range[] = {"optim_config", "{\"beta2\":\"1.5\"}"}, *ocfg_arr[] = {"optim_config", "[1]"};
    write_edited(bad, &g, set_meta, ocfg_key);
    expect_refused(&v, bad, "optim_config: unknown option 'ns_steps' for optimizer adamw", NULL, "an option adamw lacks");
    write_edited(bad, &g, set_meta, ocfg_val);
    expect_refused(&v, bad, "optim_config: option lr= expects a number, got 'fast'", NULL, "a value that is not a number");
    write_edited(bad, &g, set_meta, ocfg_num);
    expect_refused(&v, bad, "option 'lr' is not a string", NULL, "a value that is a JSON number");
    write_edited(bad, &g, set_meta, ocfg_range);
    expect_refused(&v, bad, "option beta2= must be between 0 and", NULL, "a value out of range");
    write_edited(bad, &g, set_meta, ocfg_arr);
    expect_refused(&v, bad, "optim_config is not a JSON object", NULL, "optim_config not an object");
    const char *hash_alone[] = {"data_hash", "12"};
    write_edited(bad, &g, set_data_hash, "0");
    expect_refused(&v, bad, "data_hash '0': a whole number ≥ 1", NULL, "data hash 0");
    write_edited(bad, &g, set_data_hash, "-7");
    expect_refused(&v, bad, "data_hash '-7': a whole number ≥ 1", NULL, "negative data hash");
    char long_run[200];
    memset(long_run, 'r', sizeof long_run - 1), long_run[sizeof long_run - 1] = '\0';
    const char *run_long[] = {"run", long_run};
    write_edited(bad, &g, set_meta, run_long);   // a hint only: the file loads, without it
    {
        Model m2;
        CheckpointInfo info2;
        CHECK_OK(checkpoint_load(bad, be, &m2, NULL, NULL, &info2, &err));
        if (!err.msg[0]) {
            CHECK(info2.run[0] == '\0' && info2.run_id == 0, "a run name past its field: ignored, got '%.20s'", info2.run);
            model_free(&m2);
        }
    }
    write_edited(bad, &g, set_meta, hash_alone);   // g was saved without data
    expect_refused(&v, bad, "data_hash '12': a whole number ≥ 1, with data_tokens", NULL, "data hash without sizes");
    const char *heads5[] = {"heads", "5"}, *huge[] = {"layers", "16000000"};
    write_edited(bad, &g, set_config_field, heads5);
    expect_refused(&v, bad, "does not divide", NULL, "invalid config");
    write_edited(bad, &g, set_config_field, huge);
    expect_refused(&v, bad, "the config needs", "tensors but the file holds", "a config of 16M layers");
    // a plain safetensors file from elsewhere, with and without metadata
    float x[2] = {1, 2};
    write_with_header(bad, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", (uint8_t *)x, 8);
    expect_refused(&v, bad, "not an lrsh checkpoint", NULL, "safetensors without __metadata__");
    write_with_header(bad, "{\"__metadata__\":{\"format\":\"pt\"},\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                      (uint8_t *)x, 8);
    expect_refused(&v, bad, "not an lrsh checkpoint", NULL, "a PyTorch safetensors file");
    // trailing bytes and holes break the spec's "fully indexed" rule
    uint8_t *longer = malloc(g.data_size + 8);
    memcpy(longer, g.data, g.data_size);
    memset(longer + g.data_size, 0, 8);
    char *hdr = malloc(g.hlen + 1);
    memcpy(hdr, g.file + 8, g.hlen);
    hdr[g.hlen] = 0;
    write_with_header(bad, hdr, longer, g.data_size + 8);
    expect_refused(&v, bad, "after the last tensor", NULL, "trailing bytes");
    free(longer);
    free(hdr);
    expect_refused(&v, in_dir("no-such-file.safetensors"), "cannot open", NULL, "a missing file");
    expect_refused(&v, dir, "not a regular file", NULL, "a folder");

    // unknown optim.* tensors belong to some other optimizer: ignored, the file loads
    Model m2;
    Trainer tr2;
    write_edited(bad, &g, add_zero_tensor, "optim.lion.momentum");
    CHECK_OK(checkpoint_load(bad, be, &m2, &tr2, NULL, NULL, &err));
    if (!err.msg[0]) { trainer_free(&tr2); model_free(&m2); }

    // random damage to the header: never a crash; an error always says something
    uint64_t rng = 5;
    uint8_t *d = malloc(g.size);
    int refused = 0;
    for (int i = 0; i < 300; i++) {
        memcpy(d, g.file, g.size);
        int flips = 1 + (int)(rng_next(&rng) % 4);
        for (int k = 0; k < flips; k++) d[8 + rng_next(&rng) % g.hlen] = (uint8_t)rng_next(&rng);
        write_all(bad, d, g.size);
        err.msg[0] = 0;
        if (checkpoint_load(bad, be, &m2, NULL, NULL, NULL, &err) == 0) {
            model_free(&m2);
            continue;
        }
        refused++;
        if (!err.msg[0]) CHECK(0, "damaged header %d: refused without a message", i);
    }
    CHECK(refused > 200, "most damaged headers are refused (%d of 300)", refused);
    free(d);

    free(v.params);
    trainer_free(&v.tr);
    model_free(&v.m);
    free(g.file);
    CHECK(temp_files_left(dir) == 0, "no temporary files left");
}

static void reshape_to_row(cJSON *root, const void *arg) {   // [n] → [1, n]: same bytes, another shape
    cJSON *s = cJSON_GetObjectItem(cJSON_GetObjectItem(root, arg), "shape");
    cJSON_InsertItemInArray(s, 0, cJSON_CreateNumber(1));
}
static void transpose(cJSON *root, const void *arg) {
    cJSON *s = cJSON_GetObjectItem(cJSON_GetObjectItem(root, arg), "shape");
    double r = cJSON_GetArrayItem(s, 0)->valuedouble, c = cJSON_GetArrayItem(s, 1)->valuedouble;
    cJSON_SetNumberValue(cJSON_GetArrayItem(s, 0), c);
    cJSON_SetNumberValue(cJSON_GetArrayItem(s, 1), r);
}
static void duplicate(cJSON *root, const void *arg) {
    cJSON_AddItemToObject(root, arg, cJSON_Duplicate(cJSON_GetObjectItem(root, arg), 1));
}
static void as_adamw(cJSON *root, const void *arg) {
    (void)arg;
    cJSON *md = cJSON_GetObjectItem(root, "__metadata__");
    cJSON_ReplaceItemInObject(md, "optimizer", cJSON_CreateString("adamw"));
    cJSON_ReplaceItemInObject(md, "optim_config", cJSON_CreateString("{}"));
}

// The optimizer built from the saved config decides which state tensors a file must hold and
// their shapes: a spectron file's required vectors, a diagnostic-only one, a foreign entry.
static void test_optimizer_state_is_checked(void) {
    Err err;
    Model m, m2;
    Trainer tr, tr2;
    ModelConfig c = micro_config();
    trained_model_with(&m, &tr, &c, "spectron", 2);
    const char *good = in_dir("spectron.safetensors"), *bad = in_dir("bad-state.safetensors");
    CHECK_OK(checkpoint_save(good, &m, &tr, NULL, NULL, &err));
    trainer_free(&tr);
    model_free(&m);
    Good g = read_good(good);
    Victim v;
    ModelConfig vc = micro_config();
    trained_model(&v.m, &v.tr, &vc, 1);
    v.tok = (Tokenizer *)&v;
    memcpy(&v.m_before, &v.m, sizeof v.m);
    memcpy(&v.tr_before, &v.tr, sizeof v.tr);
    v.params = host_copy(v.m.params, v.m.n_params);

    remove_with_bytes(bad, &g, "optim.pv.blocks.0.attn.wq.A");
    expect_refused(&v, bad, "tensor optim.pv.blocks.0.attn.wq.A is missing", "spectron", "a required vector missing");
    int rc = checkpoint_load(bad, be, &m2, NULL, NULL, NULL, &err);
    CHECK(rc != 0 && strstr(err.msg, "optim.pv.blocks.0.attn.wq.A"),
          "refused as well when no trainer is asked for: '%s'", err.msg);
    if (rc == 0) model_free(&m2);
    write_edited(bad, &g, reshape_to_row, "optim.pv.blocks.0.attn.wq.B");
    expect_refused(&v, bad, "tensor optim.pv.blocks.0.attn.wq.B: shape [1, 3] but optimizer spectron needs [3]", NULL,
                   "a vector of the right size but another shape");
    write_edited(bad, &g, transpose, "optim.m.blocks.1.mlp.w2.A");
    expect_refused(&v, bad, "tensor optim.m.blocks.1.mlp.w2.A: shape [3, 16] but optimizer spectron needs [16, 3]",
                   NULL, "a transposed momentum");
    write_edited(bad, &g, duplicate, "optim.v.embed");
    expect_refused(&v, bad, "key \"optim.v.embed\" appears twice", NULL, "a state tensor twice");
    write_edited(bad, &g, as_adamw, NULL);
    expect_refused(&v, bad, "is missing (optimizer adamw needs it", NULL, "spectron state under an adamw config");

    // a vector only diagnostics use (σ under a non-spectral optimizer) may be missing: the built
    // (warmed) one stays
    Model mm;
    Trainer mt;
    ModelConfig mc = micro_config();
    trained_model_with(&mm, &mt, &mc, "muon", 0);
    const char *muon = in_dir("muon.safetensors");
    CHECK_OK(checkpoint_save(muon, &mm, &mt, NULL, NULL, &err));
    trainer_free(&mt);
    model_free(&mm);
    Good gm = read_good(muon);
    remove_with_bytes(bad, &gm, "optim.pv.blocks.1.mlp.w2.A");
    CHECK_OK(checkpoint_load(bad, be, &m2, &tr2, NULL, NULL, &err));
    if (!err.msg[0]) {
        CHECK(strcmp(tr2.opt.cfg.name, "muon") == 0, "loads without a vector only diagnostics use");
        trainer_free(&tr2);
        model_free(&m2);
    }
    free(gm.file);
    free(v.params);
    trainer_free(&v.tr);
    model_free(&v.m);
    free(g.file);
}

// ---------------------------------------------------------------------------------------------
// (5) atomic saves

static void test_failed_save_keeps_the_old_file(void) {
    Err err;
    Model m;
    Trainer tr;
    ModelConfig c = micro_config();
    trained_model(&m, &tr, &c, 1);
    const char *path = in_dir("keep.safetensors");
    CHECK_OK(checkpoint_save(path, &m, NULL, NULL, NULL, &err));  // the "previous" file: no optimizer state
    size_t old_size = 0, now_size = 0;
    uint8_t *old = (uint8_t *)read_all(path, &old_size), *now;

    int rc = checkpoint_save("/nonexistent-lrsh-folder/x.safetensors", &m, &tr, NULL, NULL, &err);
    CHECK(rc != 0 && strstr(err.msg, "/nonexistent-lrsh-folder/x.safetensors") && strstr(err.msg, "No such file"),
          "a missing folder: '%s'", err.msg);
    write_all(in_dir("plainfile"), "x", 1);
    rc = checkpoint_save(in_dir("plainfile/x.safetensors"), &m, &tr, NULL, NULL, &err);
    CHECK(rc != 0 && strstr(err.msg, "Not a directory"), "a file used as a folder: '%s'", err.msg);

    // A read-only folder stops only non-root users.
    if (geteuid() != 0) {
        char ro[256];
        snprintf(ro, sizeof ro, "%s/ro", dir);
        mkdir(ro, 0755);
        char ro_file[300];
        snprintf(ro_file, sizeof ro_file, "%s/keep.safetensors", ro);
        write_all(ro_file, old, old_size);
        chmod(ro, 0555);
        rc = checkpoint_save(ro_file, &m, &tr, NULL, NULL, &err);
        CHECK(rc != 0 && strstr(err.msg, "Permission denied") && strstr(err.msg, "the previous file is unchanged"),
              "a read-only folder: '%s'", err.msg);
        now = (uint8_t *)read_all(ro_file, &now_size);
        CHECK(now && now_size == old_size && memcmp(now, old, old_size) == 0, "the file in the read-only folder is intact");
        free(now);
        CHECK(temp_files_left(ro) == 0, "no temporary file in the read-only folder");
        chmod(ro, 0755);
    } else {
        printf("  (running as root: the read-only folder case is covered by the full-disk case below)\n");
    }

    // A disk that fills up mid-write: the file-size limit makes write() fail with EFBIG there.
    struct rlimit saved, small;
    getrlimit(RLIMIT_FSIZE, &saved);
    small = saved;
    small.rlim_cur = old_size + 100;  // the new file (with optimizer state) is ~3× larger
    signal(SIGXFSZ, SIG_IGN);
    setrlimit(RLIMIT_FSIZE, &small);
    rc = checkpoint_save(path, &m, &tr, NULL, NULL, &err);
    setrlimit(RLIMIT_FSIZE, &saved);
    signal(SIGXFSZ, SIG_DFL);
    CHECK(rc != 0 && strstr(err.msg, "File too large") && strstr(err.msg, "the previous file is unchanged"),
          "a write that fails half way: '%s'", err.msg);
    now = (uint8_t *)read_all(path, &now_size);
    CHECK(now && now_size == old_size && memcmp(now, old, old_size) == 0, "the previous file is intact after a failed write");
    free(now);
    CHECK(temp_files_left(dir) == 0, "no temporary file left after a failed write");

    // and a save that succeeds replaces it whole
    CHECK_OK(checkpoint_save(path, &m, &tr, NULL, NULL, &err));
    CheckpointInfo info;
    Model m2;
    Trainer tr2;
    CHECK_OK(checkpoint_load(path, be, &m2, &tr2, NULL, &info, &err));
    if (!err.msg[0]) {
        CHECK(info.has_optim && info.step == 1, "the new file replaced the old one");
        trainer_free(&tr2);
        model_free(&m2);
    }
    struct stat st;
    stat(path, &st);
    CHECK((st.st_mode & 0777) == 0644, "the checkpoint is readable by others (mode %o)", st.st_mode & 0777);
    CHECK(temp_files_left(dir) == 0, "no temporary file left");
    free(old);
    trainer_free(&tr);
    model_free(&m);
}

// ---------------------------------------------------------------------------------------------
// (6) the embedded tokenizer

static void test_tokenizer_travels_with_the_checkpoint(void) {
    Err err;
    const char *text_path = in_dir("corpus.txt"), *model_path = in_dir("tok.model");
    static const char *words[] = {"the", "model", "learns", "a", "small", "pattern", "of", "tokens", "and",
                                  "every", "checkpoint", "keeps", "its", "tokenizer", "close", "by", "while",
                                  "training", "goes", "on", "quietly", "through", "night", "rain", "falls"};
    FILE *f = fopen(text_path, "w");
    uint64_t s = 3;
    for (int line = 0; line < 600; line++) {
        for (int w = 0; w < 9; w++) fprintf(f, "%s%s", w ? " " : "", words[rng_next(&s) % 25]);
        fprintf(f, ".\n");
    }
    fclose(f);
    Tokenizer *tok = tokenizer_train(text_path, 300, TOKENIZER_BPE, model_path, NULL, NULL, &err);
    CHECK(tok != NULL, "tokenizer_train: %s", err.msg);
    if (!tok) return;
    Model m, m2;
    ModelConfig c = micro_config();
    c.vocab = tokenizer_vocab_size(tok);
    CHECK_OK(model_build(&m, &c, be, &err));
    const char *path = in_dir("with-tok.safetensors");
    CHECK_OK(checkpoint_save(path, &m, NULL, tok, NULL, &err));
    Tokenizer *tok2 = NULL;
    CheckpointInfo info;
    CHECK_OK(checkpoint_load(path, be, &m2, NULL, &tok2, &info, &err));
    CHECK(tok2 && info.has_tokenizer, "the tokenizer comes back");
    if (tok2) {
        const char *samples[] = {"the model learns a small pattern.", "checkpoints keep their tokenizers!",
                                 "unseen: ünïcödé ✓ 123"};
        for (int i = 0; i < 3; i++) {
            int32_t *a = NULL, *b = NULL;
            long na = tokenizer_encode(tok, samples[i], strlen(samples[i]), &a, &err);
            long nb = tokenizer_encode(tok2, samples[i], strlen(samples[i]), &b, &err);
            CHECK(na > 0 && na == nb && memcmp(a, b, sizeof(int32_t) * (size_t)na) == 0,
                  "'%s' encodes the same (%ld vs %ld ids)", samples[i], na, nb);
            free(a);
            free(b);
        }
        size_t n1, n2;
        const void *b1 = tokenizer_bytes(tok, &n1), *b2 = tokenizer_bytes(tok2, &n2);
        CHECK(n1 == n2 && memcmp(b1, b2, n1) == 0, "the serialized tokenizer is byte-identical");
        tokenizer_free(tok2);
        model_free(&m2);
    }
    check_spec(path, m.n_tensors + 1);
    // a file without a tokenizer gives NULL
    CHECK_OK(checkpoint_save(path, &m, NULL, NULL, NULL, &err));
    tok2 = (Tokenizer *)&m;
    CHECK_OK(checkpoint_load(path, be, &m2, NULL, &tok2, &info, &err));
    CHECK(tok2 == NULL && !info.has_tokenizer, "no tokenizer in the file: *out_tok = NULL");
    if (!err.msg[0]) model_free(&m2);
    // a tokenizer larger than the model's vocab cannot be saved with it
    Model small;
    ModelConfig sc = micro_config();
    CHECK_OK(model_build(&small, &sc, be, &err));
    int rc = checkpoint_save(path, &small, NULL, tok, NULL, &err);
    CHECK(rc != 0 && strstr(err.msg, "the tokenizer has"), "tokenizer vocab > model vocab: '%s'", err.msg);
    model_free(&small);
    model_free(&m);
    tokenizer_free(tok);
}

// ---------------------------------------------------------------------------------------------
// (7) ensemble files: k members under "member.{i}." prefixes

static void set_shape_of(cJSON *root, const void *arg) {   // [rows, cols] → [cols, rows]
    cJSON *s = cJSON_GetObjectItem(cJSON_GetObjectItem(root, arg), "shape");
    double r = cJSON_GetArrayItem(s, 0)->valuedouble, c = cJSON_GetArrayItem(s, 1)->valuedouble;
    cJSON_SetNumberValue(cJSON_GetArrayItem(s, 0), c);
    cJSON_SetNumberValue(cJSON_GetArrayItem(s, 1), r);
}
static void overlap_members(cJSON *root, const void *arg) {   // member 1's wv on top of member 0's wk
    (void)arg;
    cJSON *o = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "member.0.blocks.0.attn.wk.A"), "data_offsets");
    set_offsets(root, "member.1.blocks.0.attn.wv.A", cJSON_GetArrayItem(o, 0)->valuedouble,
                cJSON_GetArrayItem(o, 1)->valuedouble);
}
static void member_head_out_of_range(cJSON *root, const void *arg) {
    (void)arg;
    cJSON *o = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "member.1.head"), "data_offsets");
    double b = cJSON_GetArrayItem(o, 0)->valuedouble, e = cJSON_GetArrayItem(o, 1)->valuedouble;
    set_offsets(root, "member.1.head", b + 1e6, e + 1e6);
}
static void rename_entry(cJSON *root, const void *arg) {
    const char *const *kv = arg;   // {from, to}
    cJSON *e = cJSON_DetachItemFromObject(root, kv[0]);
    cJSON_AddItemToObject(root, kv[1], e);
}

// A refused members load names the problem and leaves *out as it was.
static void expect_members_refused(const char *path, const char *want1, const char *want2, const char *what) {
    Err err = {{0}};
    CheckpointMembers cm, before;
    memset(&cm, 0x5a, sizeof cm);
    memcpy(&before, &cm, sizeof cm);
    int rc = checkpoint_load_members(path, be, &cm, &err);
    CHECK(rc != 0 && strstr(err.msg, want1) && (!want2 || strstr(err.msg, want2)),
          "%s: expected an error with '%s'%s%s, got rc=%d '%s'", what, want1, want2 ? " and " : "", want2 ? want2 : "",
          rc, err.msg);
    CHECK(memcmp(&cm, &before, sizeof cm) == 0, "%s: a refused load leaves the output alone", what);
    if (rc == 0) checkpoint_members_free(&cm);
}

static void test_ensemble_files(void) {
    enum { K = 2 };
    Err err;
    Model m[K];
    Trainer tr[K];
    ModelConfig c = micro_config();
    for (int i = 0; i < K; i++) {
        c.seed = 7 + (uint64_t)i;
        trained_model(&m[i], &tr[i], &c, 2 + i);   // different steps, state and data positions
    }
    const char *path = in_dir("members.safetensors"), *bad = in_dir("members-bad.safetensors");
    CheckpointMeta extra[] = {{"ensemble_note", "hello"}, {"ensemble_x", "1,2"}};
    CHECK_OK(checkpoint_save_members(path, K, m, tr, NULL, extra, 2, NULL, &err));
    check_spec(path, K * (m[0].n_tensors + state_count(&tr[0])));
    CheckpointMeta reserved[] = {{"member.0.step", "1"}};
    CHECK(checkpoint_save_members(bad, K, m, tr, NULL, reserved, 1, NULL, &err) != 0 && strstr(err.msg, "reserved"),
          "an extra key the layout uses is refused: '%s'", err.msg);

    // the probe tells an ensemble from a single model, from the header alone
    CheckpointInfo pi;
    CHECK_OK(checkpoint_probe(path, &pi, &err));
    CHECK(pi.ensemble_k == K && pi.has_optim && pi.step == 2 && strcmp(pi.optimizer, "adamw") == 0,
          "probe: ensemble_k %d, optim %d, step %d, '%s'", pi.ensemble_k, pi.has_optim, pi.step, pi.optimizer);
    const char *single = in_dir("single.safetensors");
    CHECK_OK(checkpoint_save(single, &m[0], &tr[0], NULL, NULL, &err));
    CHECK_OK(checkpoint_probe(single, &pi, &err));
    CHECK(pi.ensemble_k == 0 && pi.has_optim && pi.step == 2, "probe of a single model: ensemble_k %d", pi.ensemble_k);

    // round trip: every member's parameters, state, step, data position, t and seed
    CheckpointMembers cm;
    CHECK_OK(checkpoint_load_members(path, be, &cm, &err));
    if (!err.msg[0]) {
        CHECK(cm.k == K && cm.trainers && cm.has_state && !cm.tok && cm.info.ensemble_k == K, "k %d, state %d", cm.k,
              cm.has_state);
        for (int i = 0; i < K && cm.k == K; i++) {
            float *a = host_copy(m[i].params, m[i].n_params), *b = host_copy(cm.models[i].params, cm.models[i].n_params);
            CHECK(memcmp(a, b, m[i].n_params * 4) == 0, "member %d: parameters bit-identical", i);
            free(a);
            free(b);
            const char *which = NULL;
            CHECK(same_state(&tr[i], &cm.trainers[i], &which), "member %d: state bit-identical (%s differs)", i, which);
            CHECK(cm.trainers[i].model == &cm.models[i] && cm.trainers[i].step == tr[i].step &&
                      cm.trainers[i].data_rng == tr[i].data_rng && cm.trainers[i].opt.t == tr[i].opt.t &&
                      same_config(&cm.models[i].cfg, &m[i].cfg),
                  "member %d: step %d/%d, data_rng, t, config (seed %llu)", i, cm.trainers[i].step, tr[i].step,
                  (unsigned long long)cm.models[i].cfg.seed);
        }
        const char *note = checkpoint_members_meta(&cm, "ensemble_note"), *x = checkpoint_members_meta(&cm, "ensemble_x");
        CHECK(note && strcmp(note, "hello") == 0 && x && strcmp(x, "1,2") == 0 && cm.n_meta == 2 &&
                  !checkpoint_members_meta(&cm, "config"),
              "the extra metadata comes back, and only it (%d entries)", cm.n_meta);
        checkpoint_members_free(&cm);
    }
    // without optimizer state: trainers at the saved steps with fresh moments
    CheckpointOptions no_optim = {.dtype = CHECKPOINT_BF16, .include_optim = 0};
    const char *light = in_dir("members-light.safetensors");
    CHECK_OK(checkpoint_save_members(light, K, m, tr, NULL, NULL, 0, &no_optim, &err));
    CHECK_OK(checkpoint_load_members(light, be, &cm, &err));
    if (!err.msg[0]) {
        CHECK(cm.trainers && !cm.has_state && cm.trainers[1].step == tr[1].step && cm.trainers[1].opt.t == 0 &&
                  cm.info.dtype == CHECKPOINT_BF16,
              "no state: trainers rebuilt at step %d, t %d", cm.trainers ? cm.trainers[1].step : -1,
              cm.trainers ? cm.trainers[1].opt.t : -1);
        checkpoint_members_free(&cm);
    }

    // each loader refuses the other's files and says which to use
    Victim v;
    ModelConfig vc = micro_config();
    trained_model(&v.m, &v.tr, &vc, 1);
    v.tok = (Tokenizer *)&v;
    memcpy(&v.m_before, &v.m, sizeof v.m);
    memcpy(&v.tr_before, &v.tr, sizeof v.tr);
    v.params = host_copy(v.m.params, v.m.n_params);
    expect_refused(&v, path, "holds an ensemble of 2 members", "model load", "an ensemble file through checkpoint_load");
    expect_members_refused(single, "holds a single model", NULL, "a single-model file through the members loader");

    // corrupted ensemble files: each refused with a message naming the member's tensor or key
    Good g = read_good(path);
    remove_with_bytes(bad, &g, "member.1.blocks.0.attn.wq.A");
    expect_members_refused(bad, "tensor member.1.blocks.0.attn.wq.A is missing", "member 1", "a member's tensor gone");
    remove_with_bytes(bad, &g, "member.1.optim.v.head");
    expect_members_refused(bad, "member.1.optim.v.head is missing", NULL, "a member's moment gone");
    write_edited(bad, &g, set_shape_of, "member.1.blocks.1.mlp.w2.A");
    expect_members_refused(bad, "tensor member.1.blocks.1.mlp.w2.A: shape [3, 16] but the config needs [16, 3]", NULL,
                           "a member's shape");
    write_edited(bad, &g, overlap_members, NULL);
    expect_members_refused(bad, "overlap", "member.1.blocks.0.attn.wv.A", "members' tensors overlapping");
    write_edited(bad, &g, member_head_out_of_range, NULL);
    expect_members_refused(bad, "outside the data buffer", "member.1.head", "a member's offsets out of range");
    write_edited(bad, &g, add_zero_tensor, "embed");
    expect_members_refused(bad, "unknown tensor 'embed'", NULL, "an unprefixed tensor");
    write_edited(bad, &g, add_zero_tensor, "member.2.embed");
    expect_members_refused(bad, "unknown tensor 'member.2.embed'", "member.{0..1}", "a member beyond ensemble_k");
    const char *lead0[] = {"member.1.norm", "member.01.norm"}, *nodot[] = {"member.1.norm", "member.1norm"};
    write_edited(bad, &g, rename_entry, lead0);
    expect_members_refused(bad, "member.01.norm", NULL, "a member index with a leading zero");
    write_edited(bad, &g, rename_entry, nodot);
    expect_members_refused(bad, "member.1norm", NULL, "a member prefix without its dot");
    const char *k3[] = {"ensemble_k", "3"}, *k0[] = {"ensemble_k", "0"}, *kx[] = {"ensemble_k", "2 "},
               *nostep[] = {"member.1.step", NULL}, *noseed[] = {"member.0.seed", NULL},
               *badrng[] = {"member.1.data_rng", "-1"};
    write_edited(bad, &g, set_meta, k3);
    expect_members_refused(bad, "member.2.seed", NULL, "ensemble_k larger than the members saved");
    write_edited(bad, &g, set_meta, k0);
    expect_members_refused(bad, "ensemble_k '0'", NULL, "ensemble_k 0");
    write_edited(bad, &g, set_meta, kx);
    expect_members_refused(bad, "ensemble_k '2 '", NULL, "ensemble_k with a space");
    write_edited(bad, &g, set_meta, nostep);
    expect_members_refused(bad, "member.1.step", NULL, "a member's step missing");
    write_edited(bad, &g, set_meta, noseed);
    expect_members_refused(bad, "member.0.seed", NULL, "a member's seed missing");
    write_edited(bad, &g, set_meta, badrng);
    expect_members_refused(bad, "member.1.data_rng '-1'", NULL, "a member's data_rng");
    for (size_t cut = 8 + g.hlen / 2; cut < g.size; cut += (g.size - 8 - g.hlen / 2) / 3 + 1) {
        write_all(bad, g.file, cut);
        expect_members_refused(bad, "truncated", NULL, "a truncated ensemble file");
    }
    // members of different configs or optimizer settings are not one ensemble
    Model other;
    Trainer other_tr;
    ModelConfig oc = micro_config();
    oc.ffn = 32;
    trained_model(&other, &other_tr, &oc, 1);
    Model mix[2] = {m[0], other};
    CHECK(checkpoint_save_members(bad, 2, mix, NULL, NULL, NULL, 0, NULL, &err) != 0 &&
              strstr(err.msg, "member 1's config differs"),
          "members of two configs refused: '%s'", err.msg);
    tr[1].opt.cfg.lr *= 2;
    CHECK(checkpoint_save_members(bad, K, m, tr, NULL, NULL, 0, NULL, &err) != 0 &&
              strstr(err.msg, "member 1's optimizer settings differ"),
          "members with two optimizer settings refused: '%s'", err.msg);
    free(g.file);
    free(v.params);
    trainer_free(&v.tr);
    model_free(&v.m);
    trainer_free(&other_tr);
    model_free(&other);
    for (int i = 0; i < K; i++) {
        trainer_free(&tr[i]);
        model_free(&m[i]);
    }
}

static void remove_tree(const char *path) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", path);
}

// The registry a SIGTERM handler empties: a registered file goes, one done with stays.
static void test_tempfile_registry(void) {
    char a[300], b[300];
    snprintf(a, sizeof a, "%s/a.tmp.1", dir);
    snprintf(b, sizeof b, "%s/b.tmp.1", dir);
    FILE *f = fopen(a, "w"), *g = fopen(b, "w");
    CHECK(f && g, "temporary files created");
    if (f) fclose(f);
    if (g) fclose(g);
    tempfile_begin(a);
    tempfile_begin(b);
    tempfile_done(b);   // renamed into place: no longer the registry's
    tempfile_remove_all();
    CHECK(access(a, F_OK) != 0, "a registered temporary file is removed");
    CHECK(access(b, F_OK) == 0, "a file done with is left alone");
    tempfile_remove_all();   // nothing left to remove: harmless
    CHECK(access(b, F_OK) == 0, "a second call removes nothing");
    unlink(b);
}

// A file cut short by another program while it loads (a cp over it): an error line naming it,
// not a fault — a mapped read past the new end would be SIGBUS, ending the session. The backend's
// upload cuts the file after the first tensor.
static const char *cut_path;
static const Backend *cut_inner;
static void upload_then_cut(void *dst, const void *src, size_t bytes) {
    cut_inner->upload(dst, src, bytes);
    if (cut_path && truncate(cut_path, 16) != 0) perror("truncate");
    cut_path = NULL;
}

static void test_file_cut_short_while_loading(void) {
    Err err;
    Model m, m2;
    Trainer tr;
    ModelConfig c = micro_config();
    trained_model(&m, &tr, &c, 2);
    const char *path = in_dir("cut.safetensors");
    for (int bf16 = 0; bf16 <= 1; bf16++) {
        CheckpointOptions o = {.dtype = bf16 ? CHECKPOINT_BF16 : CHECKPOINT_F32, .include_optim = 1};
        CHECK_OK(checkpoint_save(path, &m, &tr, NULL, &o, &err));
        Backend cutting = *be;
        cutting.upload = upload_then_cut;
        cut_inner = be, cut_path = path;
        int rc = checkpoint_load(path, &cutting, &m2, NULL, NULL, NULL, &err);
        CHECK(rc != 0, "a file cut short while it loads is refused (dtype %s)", bf16 ? "bf16" : "f32");
        CHECK(rc != 0 && strstr(err.msg, "cut short while it loaded"), "the error says so: %s", rc ? err.msg : "");
    }
    trainer_free(&tr);
    model_free(&m);
}

int main(void) {
    be = backend_cpu(1);
    snprintf(dir, sizeof dir, "/tmp/lrsh-test-checkpoint-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_f32_round_trip_is_exact);
    RUN(test_bf16_round_trip);
    RUN(test_resume_is_bit_identical);
    RUN(test_optim_config_round_trip);
    RUN(test_progress_without_trainer);
    RUN(test_file_is_safetensors);
    RUN(test_corrupt_files_are_refused);
    RUN(test_optimizer_state_is_checked);
    RUN(test_failed_save_keeps_the_old_file);
    RUN(test_tokenizer_travels_with_the_checkpoint);
    RUN(test_ensemble_files);
    RUN(test_tempfile_registry);
    RUN(test_file_cut_short_while_loading);
    remove_tree(dir);
    return TEST_SUMMARY();
}
