// checkpoint.c — safetensors checkpoints (layout in checkpoint.h): an atomic writer, and a loader
// that validates every field of the header against the config before it allocates or copies
// anything. Only the optimizer state waits for the optimizer: its tensors' names and shapes are
// what the optimizer built from the saved config lists, so they are matched as it is filled.
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "checkpoint.h"
#include "tempfile.h"
#include "model_internal.h"

// Tensors are written as raw host floats; safetensors is little-endian.
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "checkpoint.c writes host-order floats and needs a little-endian machine"
#endif

#define FORMAT_NAME "lrsh"
#define FORMAT_VERSION "2"   // 1: AdamW moments and a fixed list of options only (refused)
#define MAX_HEADER_BYTES (100u << 20)     // the reference safetensors reader's limit
#define MAX_EXACT_DOUBLE 9007199254740992.0  // 2^53: integers beyond it do not survive JSON

// One error line: "PATH: why". Names and values quoted from a file may hold anything, so
// control characters become '?' to keep the message one printable line.
static int fail(Err *err, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(Err *err, const char *path, const char *fmt, ...) {
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    err_set(err, "%s: %s", path, why);
    for (char *p = err ? err->msg : why; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    return -1;
}

CheckpointOptions checkpoint_default_options(void) {
    return (CheckpointOptions){.dtype = CHECKPOINT_F32, .include_optim = 1};
}

// ---------------------------------------------------------------------------------------------
// bf16

static uint16_t bf16_from_f32(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);  // NaN stays NaN
    if ((u & 0x7fffffffu) < 0x7f800000u && (u & 0x7fffffffu) >= 0x7f7f8000u)   // finite, but would round to ∞:
        return (uint16_t)((u >> 16 & 0x8000u) | 0x7f7fu);                      // bf16's largest (±3.39e38)
    u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even
    return (uint16_t)(u >> 16);
}

static float f32_from_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

// ---------------------------------------------------------------------------------------------
// the tensors a config implies

// How many tensors cfg implies, computed before building its table: a hostile config
// (layers = 10⁷) is refused before it costs memory.
static long expected_count(const ModelConfig *c) {
    int kvd = c->dim / c->heads * c->kv_heads;
    int shapes[7][2] = {{c->dim, c->dim}, {kvd, c->dim}, {kvd, c->dim}, {c->dim, c->dim},
                        {c->ffn, c->dim}, {c->dim, c->ffn}, {c->ffn, c->dim}};
    long per_layer = 2;
    for (int i = 0; i < 7; i++) per_layer += model_config_rank(c, shapes[i][0], shapes[i][1]) ? 2 : 1;
    return 3 + per_layer * c->layers;
}

// The file's shape of a tensor: norm gains are 1-D [dim], everything else [rows, cols].
static int file_shape(const TensorDesc *t, size_t shape[2]) {
    if (t->role == ROLE_NORM) {
        shape[0] = (size_t)t->cols;
        return 1;
    }
    shape[0] = (size_t)t->rows;
    shape[1] = (size_t)t->cols;
    return 2;
}

static void format_shape(char *buf, size_t cap, const size_t *shape, int ndim) {
    size_t len = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%zu", i ? ", " : "", shape[i]);
    if (len < cap) snprintf(buf + len, cap - len, "]");
}

// ---------------------------------------------------------------------------------------------
// configs as JSON strings (inside __metadata__, whose values must be strings)

static const struct { const char *key; size_t offset; } config_ints[] = {
    {"dim", offsetof(ModelConfig, dim)}, {"layers", offsetof(ModelConfig, layers)},
    {"heads", offsetof(ModelConfig, heads)}, {"kv_heads", offsetof(ModelConfig, kv_heads)},
    {"ffn", offsetof(ModelConfig, ffn)}, {"seq", offsetof(ModelConfig, seq)},
    {"vocab", offsetof(ModelConfig, vocab)}, {"rank", offsetof(ModelConfig, rank)},
};
static const struct { const char *key; size_t offset; } config_floats[] = {
    {"rank_ratio", offsetof(ModelConfig, rank_ratio)}, {"rope_theta", offsetof(ModelConfig, rope_theta)},
    {"norm_eps", offsetof(ModelConfig, norm_eps)},
};
#define COUNT(a) (sizeof (a) / sizeof (a)[0])

// Floats go through double, which cJSON prints with enough digits to read back exactly.
// The seed is a decimal string: a JSON number would lose bits beyond 2^53.
static char *config_json(const ModelConfig *c) {
    cJSON *o = cJSON_CreateObject();
    char seed[24];
    for (size_t i = 0; i < COUNT(config_ints); i++)
        cJSON_AddNumberToObject(o, config_ints[i].key, *(const int *)((const char *)c + config_ints[i].offset));
    for (size_t i = 0; i < COUNT(config_floats); i++)
        cJSON_AddNumberToObject(o, config_floats[i].key, *(const float *)((const char *)c + config_floats[i].offset));
    snprintf(seed, sizeof seed, "%" PRIu64, c->seed);
    cJSON_AddStringToObject(o, "seed", seed);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

// Every option the optimizer takes, as the text optim_config_get prints: the same text
// optim_config_set reads back, so the file needs no knowledge of which option is a float.
static char *optim_json(const OptimConfig *c) {
    cJSON *o = cJSON_CreateObject();
    const char *key;
    char value[64];
    Err why;
    for (int i = 0; o && (key = optim_config_key(c, i)); i++) {
        if (optim_config_get(c, key, value, sizeof value, &why) || !cJSON_AddStringToObject(o, key, value)) {
            cJSON_Delete(o);
            return NULL;
        }
    }
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}

// Strict decimal: digits only, no sign, no spaces, no overflow.
static int parse_u64(const char *s, uint64_t *out) {
    if (!s || !*s || strlen(s) > 20) return -1;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9') return -1;
    errno = 0;
    unsigned long long v = strtoull(s, NULL, 10);
    if (errno) return -1;
    *out = (uint64_t)v;
    return 0;
}

static int parse_nonneg_int(const char *s, int *out) {
    uint64_t v;
    if (parse_u64(s, &v) || v > INT_MAX) return -1;
    *out = (int)v;
    return 0;
}

static int json_int(const cJSON *o, const char *key, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= INT_MIN && d <= INT_MAX) || d != floor(d)) return -1;
    *out = (int)d;
    return 0;
}

static int json_float(const cJSON *o, const char *key, float *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || !(fabs(v->valuedouble) <= FLT_MAX)) return -1;
    *out = (float)v->valuedouble;
    return 0;
}

static int parse_config(const char *path, const char *text, ModelConfig *c, Err *err) {
    cJSON *o = cJSON_Parse(text);
    const char *bad = NULL;
    memset(c, 0, sizeof *c);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return fail(err, path, "__metadata__ config is not a JSON object");
    }
    for (size_t i = 0; i < COUNT(config_ints) && !bad; i++)
        if (json_int(o, config_ints[i].key, (int *)((char *)c + config_ints[i].offset))) bad = config_ints[i].key;
    for (size_t i = 0; i < COUNT(config_floats) && !bad; i++)
        if (json_float(o, config_floats[i].key, (float *)((char *)c + config_floats[i].offset)))
            bad = config_floats[i].key;
    if (!bad && parse_u64(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "seed")), &c->seed)) bad = "seed";
    cJSON_Delete(o);
    if (bad) return fail(err, path, "__metadata__ config: '%s' is missing or not a valid number", bad);
    // model_config_validate leaves these to the setters; a file could hold anything
    if (!(c->rank_ratio > 0 && c->rank_ratio <= 1) || !(c->rope_theta > 0) || !(c->norm_eps >= 0))
        return fail(err, path, "__metadata__ config: rank_ratio=%g rope_theta=%g norm_eps=%g out of range",
                    c->rank_ratio, c->rope_theta, c->norm_eps);
    Err why;
    if (model_config_validate(c, &why)) return fail(err, path, "__metadata__ config: %s", why.msg);
    return 0;
}

// The optimizer's defaults, then every saved option through optim_config_set, which names an
// option this optimizer does not take or a value it refuses. An option the file lacks keeps its
// default (a newer build may add options; their defaults must reproduce the old behaviour).
static int parse_optim_config(const char *path, const char *name, const char *text, OptimConfig *c, Err *err) {
    Err why;
    if (optim_config_default(c, name, &why)) return fail(err, path, "__metadata__ optimizer: %s", why.msg);
    cJSON *o = cJSON_Parse(text);
    int rc = cJSON_IsObject(o) ? 0 : fail(err, path, "__metadata__ optim_config is not a JSON object");
    for (const cJSON *v = rc ? NULL : o->child; v && rc == 0; v = v->next) {
        const char *value = cJSON_GetStringValue(v);
        if (!value)
            rc = fail(err, path, "__metadata__ optim_config: option '%.64s' is not a string", v->string);
        else if (optim_config_set(c, v->string, value, &why))
            rc = fail(err, path, "__metadata__ optim_config: %s", why.msg);
    }
    cJSON_Delete(o);
    return rc;
}

// ---------------------------------------------------------------------------------------------
// saving

enum { ITEM_PARAM, ITEM_STATE, ITEM_TOKENIZER };

// One model of the file with its trainer (NULL: none) and the prefix of its tensors' names:
// "" in a single-model file, "member.{i}." in an ensemble file.
typedef struct Part {
    char prefix[24];
    const Model *m;
    const Trainer *tr;
} Part;

// One tensor of the file: where its bytes come from and where they go.
typedef struct Item {
    char name[24 + sizeof(((StateTensor *)0)->name)];
    int kind;
    const float *src;            // device data of a parameter or a state tensor
    const Backend *be;           // whose device src is on
    size_t numel;
    const char *dtype;           // "F32", "BF16", "U8"
    size_t shape[2];
    int ndim;
    size_t begin, end;           // in the data buffer
} Item;

// The file's shape of a state tensor: vectors (one row: norm gains' moments, power-iteration
// vectors) are 1-D [cols], like the norm gains themselves; the rest [rows, cols].
static int state_shape(const StateTensor *s, size_t shape[2]) {
    if (s->rows == 1) {
        shape[0] = (size_t)s->cols;
        return 1;
    }
    shape[0] = (size_t)s->rows;
    shape[1] = (size_t)s->cols;
    return 2;
}

// Place an item of `bytes` bytes at *at in the data buffer.
static void place(Item *it, size_t *at, size_t bytes) {
    it->begin = *at;
    *at += bytes;
    it->end = *at;
}

// Per part: the parameters, then (with a trainer, unless left out) the optimizer's state tensors
// in the order optimizer_state_tensors gives them; then the tokenizer, once.
static int plan_items(const Part *parts, int n_parts, const Tokenizer *tok, const CheckpointOptions *o, Item **out) {
    size_t total = 1;
    for (int p = 0; p < n_parts; p++) {
        const Part *pt = &parts[p];
        total += (size_t)pt->m->n_tensors;
        if (pt->tr && o->include_optim) total += (size_t)optimizer_state_tensors(&pt->tr->opt, pt->m, NULL, 0);
    }
    Item *it = calloc(total, sizeof *it);
    if (!it) return -1;
    size_t at = 0;
    int k = 0, bf16 = o->dtype == CHECKPOINT_BF16;
    for (int p = 0; p < n_parts; p++) {
        const Part *pt = &parts[p];
        const Model *m = pt->m;
        for (int i = 0; i < m->n_tensors; i++, k++) {
            const TensorDesc *t = &m->tensors[i];
            it[k] = (Item){.kind = ITEM_PARAM, .src = param(m, i), .be = m->be, .numel = (size_t)t->rows * t->cols,
                           .dtype = bf16 ? "BF16" : "F32"};
            snprintf(it[k].name, sizeof it[k].name, "%s%s", pt->prefix, t->name);
            it[k].ndim = file_shape(t, it[k].shape);
            place(&it[k], &at, it[k].numel * (bf16 ? 2 : 4));
        }
        int n_state = pt->tr && o->include_optim ? optimizer_state_tensors(&pt->tr->opt, m, NULL, 0) : 0;
        StateTensor *st = calloc((size_t)n_state + 1, sizeof *st);
        if (!st) {
            free(it);
            return -1;
        }
        if (n_state) optimizer_state_tensors(&pt->tr->opt, m, st, n_state);
        for (int i = 0; i < n_state; i++, k++) {
            it[k] = (Item){.kind = ITEM_STATE, .src = st[i].data, .be = m->be, .numel = (size_t)st[i].numel,
                           .dtype = "F32"};
            snprintf(it[k].name, sizeof it[k].name, "%s%s", pt->prefix, st[i].name);
            it[k].ndim = state_shape(&st[i], it[k].shape);
            place(&it[k], &at, it[k].numel * 4);
        }
        free(st);
    }
    if (tok) {
        size_t bytes = 0;
        tokenizer_bytes(tok, &bytes);
        it[k] = (Item){.name = "tokenizer.model", .kind = ITEM_TOKENIZER, .dtype = "U8", .shape = {bytes}, .ndim = 1};
        place(&it[k++], &at, bytes);
    }
    *out = it;
    return k;
}

// Metadata values are strings (safetensors' rule). *bad is set when cJSON could not allocate:
// a header that silently lacked a key would still read as a file, and not load.
static void add_text(cJSON *md, const char *key, const char *v, int *bad) {
    if (!cJSON_AddStringToObject(md, key, v)) *bad = 1;
}

static void add_int(cJSON *md, const char *key, long long v, int *bad) {
    char num[32];
    snprintf(num, sizeof num, "%lld", v);
    add_text(md, key, num, bad);
}

static void add_u64(cJSON *md, const char *key, uint64_t v, int *bad) {
    char num[32];
    snprintf(num, sizeof num, "%" PRIu64, v);
    add_text(md, key, num, bad);
}

// members = 0: a single-model file (parts[0] only); else an ensemble file of n_parts members.
// Without the optimizer's state (o->include_optim 0) optim_t is 0, what a trainer resumed from
// the file counts from: saving such a file again writes the same bytes.
static cJSON *metadata(const Part *parts, int n_parts, int members, const CheckpointMeta *extra, int n_extra,
                       const CheckpointOptions *o) {
    int with_state = o->include_optim, bad = 0;
    cJSON *md = cJSON_CreateObject();
    const Trainer *tr = parts[0].tr;
    char *cfg = config_json(&parts[0].m->cfg), *ocfg = tr ? optim_json(&tr->opt.cfg) : NULL;
    if (!md || !cfg || (tr && !ocfg)) {   // out of memory: the caller reports it
        cJSON_Delete(md);
        free(cfg);
        free(ocfg);
        return NULL;
    }
    add_text(md, "format", FORMAT_NAME, &bad);
    add_text(md, "lrsh_version", FORMAT_VERSION, &bad);
    add_text(md, "config", cfg, &bad);
    free(cfg);
    if (members) add_int(md, "ensemble_k", n_parts, &bad);
    for (int p = 0; p < n_parts; p++) {
        char key[48];
        const Trainer *t = parts[p].tr;
        if (members) {
            snprintf(key, sizeof key, "member.%d.seed", p);
            add_u64(md, key, parts[p].m->cfg.seed, &bad);
        }
        if (!t) continue;
        snprintf(key, sizeof key, "%sstep", parts[p].prefix);
        add_int(md, key, t->step, &bad);
        snprintf(key, sizeof key, "%sdata_rng", parts[p].prefix);
        add_u64(md, key, t->data_rng, &bad);
        if (!members) break;   // a single model's keys keep their version-2 order
        snprintf(key, sizeof key, "%soptim_t", parts[p].prefix);
        add_int(md, key, with_state ? t->opt.t : 0, &bad);
    }
    if (tr) {
        add_text(md, "optimizer", tr->opt.cfg.name, &bad);
        add_text(md, "optim_config", ocfg, &bad);
        if (!members) add_int(md, "optim_t", with_state ? tr->opt.t : 0, &bad);
    }
    if (tr && tr->shape.batch > 0) {   // the last update's batches (the members share them)
        add_int(md, "batch", tr->shape.batch, &bad);
        add_int(md, "seq", tr->shape.seq, &bad);
        add_int(md, "accum", tr->shape.accum, &bad);
    }
    if (o->next.batch > 0) {   // the batches the next update would take unless told otherwise
        add_int(md, "next_batch", o->next.batch, &bad);
        add_int(md, "next_seq", o->next.seq, &bad);
        add_int(md, "next_accum", o->next.accum, &bad);
    }
    if (o->has_next_seed) add_u64(md, "next_seed", o->next_seed, &bad);
    if (o->run && *o->run) add_text(md, "run", o->run, &bad);
    if (o->run && *o->run && o->run_id) add_u64(md, "run_id", o->run_id, &bad);
    if (o->data.tokens > 0) {
        add_u64(md, "data_tokens", (uint64_t)o->data.tokens, &bad);
        add_u64(md, "data_train", (uint64_t)o->data.train, &bad);
        if (o->data.hash) add_u64(md, "data_hash", o->data.hash, &bad);
    }
    free(ocfg);
    for (int i = 0; i < n_extra; i++) add_text(md, extra[i].key, extra[i].value, &bad);
    if (bad) {
        cJSON_Delete(md);
        return NULL;
    }
    return md;
}

// The JSON header, padded with spaces to a multiple of 8 so the data buffer stays aligned.
static char *build_header(cJSON *md, const Item *it, int n, size_t *len) {
    cJSON *root = cJSON_CreateObject();
    if (!root || !md || !cJSON_AddItemToObject(root, "__metadata__", md)) {
        cJSON_Delete(root);
        cJSON_Delete(md);
        return NULL;
    }
    int bad = 0;   // out of memory in cJSON: no header rather than one missing an entry
    for (int i = 0; i < n && !bad; i++) {
        cJSON *e = cJSON_CreateObject();
        if (!e || !cJSON_AddItemToObject(root, it[i].name, e)) {
            cJSON_Delete(e);
            bad = 1;
            break;
        }
        cJSON *shape = cJSON_AddArrayToObject(e, "shape");   // keys in this order: the files' bytes
        add_text(e, "dtype", it[i].dtype, &bad);
        cJSON *offs = cJSON_AddArrayToObject(e, "data_offsets");
        bad |= !shape || !offs;
        for (int d = 0; d < it[i].ndim && !bad; d++)
            bad |= !cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)it[i].shape[d]));
        if (!bad) bad |= !cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)it[i].begin));
        if (!bad) bad |= !cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)it[i].end));
    }
    char *json = bad ? NULL : cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!json) return NULL;
    size_t raw = strlen(json), padded = (raw + 7) / 8 * 8;
    char *h = realloc(json, padded + 1);
    if (!h) {
        free(json);
        return NULL;
    }
    memset(h + raw, ' ', padded - raw);
    h[padded] = '\0';
    *len = padded;
    return h;
}

// Download one tensor's bytes (converted to bf16 when asked) into the scratch buffers.
static const void *item_bytes(const Item *it, const Tokenizer *tok, float *f32, uint16_t *b16) {
    if (it->kind == ITEM_TOKENIZER) {
        size_t size;
        return tokenizer_bytes(tok, &size);
    }
    it->be->download(f32, it->src, it->numel * sizeof(float));
    if (strcmp(it->dtype, "BF16") != 0) return f32;
    for (size_t i = 0; i < it->numel; i++) b16[i] = bf16_from_f32(f32[i]);
    return b16;
}

// Everything after the temp file is open; returns 0 or an errno.
static int write_contents(FILE *f, const char *header, size_t hlen, const Item *it, int n, const Tokenizer *tok) {
    size_t most = 1;
    for (int i = 0; i < n; i++)
        if (it[i].kind != ITEM_TOKENIZER && it[i].numel > most) most = it[i].numel;
    float *f32 = malloc(most * sizeof(float));
    uint16_t *b16 = malloc(most * sizeof(uint16_t));
    if (!f32 || !b16) {
        free(f32);
        free(b16);
        return ENOMEM;
    }
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    int rc = 0;
    errno = 0;
    if (fwrite(len, 1, 8, f) != 8 || fwrite(header, 1, hlen, f) != hlen) rc = errno ? errno : EIO;
    for (int i = 0; i < n && rc == 0; i++) {
        const void *bytes = item_bytes(&it[i], tok, f32, b16);
        size_t size = it[i].end - it[i].begin;
        errno = 0;
        if (fwrite(bytes, 1, size, f) != size) rc = errno ? errno : EIO;
    }
    free(f32);
    free(b16);
    return rc;
}

static int save_failed(Err *err, const char *path, int existed, const char *what, int e) {
    return fail(err, path, "cannot save: %s (%s); %s", what, strerror(e),
                existed ? "the previous file is unchanged" : "nothing was written");
}

static int write_file(const char *path, int existed, const char *header, size_t hlen, const Item *it, int n,
                      const Tokenizer *tok, Err *err) {
    AtomicFile af;
    const char *what;
    int e = atomic_file_open(&af, path, 0666, &what);
    if (e != 0) return save_failed(err, path, existed, what, e);
    e = write_contents(af.f, header, hlen, it, n, tok);
    if (e != 0) {
        atomic_file_abandon(&af);
        return save_failed(err, path, existed, "writing failed", e);
    }
    e = atomic_file_commit(&af, &what);
    return e == 0 ? 0 : save_failed(err, path, existed, what, e);
}

// Where a save of path writes (*target, malloc'd): path itself, or the file a symbolic link at
// path names (renaming over the link would replace it and leave that file stale). An existing
// target must be a regular file — renaming over a device or a pipe would replace it — and
// keeps its permissions (atomic_file_open).
static int save_target(const char *path, char **target, int *existed, Err *err) {
    struct stat link, st;
    *existed = lstat(path, &link) == 0;
    if (*existed && stat(path, &st) != 0)
        return fail(err, path, "cannot save: %s (%s); nothing was written",
                    !S_ISLNK(link.st_mode) ? "cannot look at it"
                    : errno == ELOOP ? "it is a symbolic link in a loop" : "it is a symbolic link to a missing file",
                    strerror(errno));
    if (*existed && !S_ISREG(st.st_mode))
        return fail(err, path, "cannot save: it exists and is not a regular file (%s); nothing was written",
                    S_ISDIR(st.st_mode) ? "a folder" : "a device, pipe or socket");
    long planted = link_planted(path);
    if (planted)
        return fail(err, path, "cannot save: " LINK_PLANTED_WHY "; nothing was written", planted - 1);
    *target = *existed && S_ISLNK(link.st_mode) ? realpath(path, NULL) : strdup(path);
    return *target ? 0 : save_failed(err, path, *existed, "cannot resolve the path", errno ? errno : ENOMEM);
}

// Write the whole file under a temporary name next to its target, then rename it over that.
static int write_atomically(const char *path, const char *header, size_t hlen, const Item *it, int n,
                            const Tokenizer *tok, Err *err) {
    char *target;
    int existed;
    if (save_target(path, &target, &existed, err) != 0) return -1;
    int rc = write_file(target, existed, header, hlen, it, n, tok, err);
    free(target);
    return rc;
}

// The checks every save shares, then plan, header, write.
static int save_parts(const char *path, const Part *parts, int n_parts, int members, const Tokenizer *tok,
                      const CheckpointMeta *extra, int n_extra, const CheckpointOptions *opt, Err *err) {
    CheckpointOptions o = opt ? *opt : checkpoint_default_options();
    if (o.dtype != CHECKPOINT_F32 && o.dtype != CHECKPOINT_BF16)
        return fail(err, path, "cannot save: unknown dtype %d (F32 or BF16)", (int)o.dtype);
    const Model *m = parts[0].m;
    if (tok && tokenizer_vocab_size(tok) > m->cfg.vocab)
        return fail(err, path, "cannot save: the tokenizer has %d pieces but the model's vocab is %d",
                    tokenizer_vocab_size(tok), m->cfg.vocab);
    Item *it = NULL;
    int n = plan_items(parts, n_parts, tok, &o, &it);
    size_t hlen = 0;
    char *header = n < 0 ? NULL : build_header(metadata(parts, n_parts, members, extra, n_extra, &o), it, n, &hlen);
    int rc = header ? write_atomically(path, header, hlen, it, n, tok, err)
                    : fail(err, path, "cannot save: out of memory building the header; nothing was written");
    free(header);
    free(it);
    return rc;
}

int checkpoint_save(const char *path, const Model *m, const Trainer *tr, const Tokenizer *tok,
                    const CheckpointOptions *opt, Err *err) {
    if (!path || !*path) return err_set(err, "checkpoint save: no file name given");
    if (!m || !m->params || !m->be) return fail(err, path, "cannot save: no model");
    if (tr && tr->model != m) return fail(err, path, "cannot save: the trainer belongs to another model");
    Part part = {.prefix = "", .m = m, .tr = tr};
    return save_parts(path, &part, 1, 0, tok, NULL, 0, opt, err);
}

// The metadata a trainer writes, from a trainer that holds only those numbers: no state is read
// from it (include_optim is forced off), and optim_t = 0, as a resumed trainer's fresh moments.
int checkpoint_save_progress(const char *path, const Model *m, const CheckpointProgress *progress,
                             const Tokenizer *tok, const CheckpointOptions *opt, Err *err) {
    Trainer numbers;
    memset(&numbers, 0, sizeof numbers);
    numbers.model = (Model *)m;   // only compared with m
    numbers.step = progress->step;
    numbers.data_rng = progress->data_rng;
    numbers.shape = progress->shape;
    numbers.opt.cfg = progress->optim;
    CheckpointOptions o = opt ? *opt : checkpoint_default_options();
    o.include_optim = 0;
    return checkpoint_save(path, m, &numbers, tok, &o, err);
}

// Keys the layout uses itself; an extra entry may not take one.
static int reserved_key(const char *key) {
    static const char *const names[] = {"format", "lrsh_version", "config", "step", "data_rng", "optimizer",
                                        "optim_config", "optim_t", "ensemble_k", "batch", "seq", "accum",
                                        "next_batch", "next_seq", "next_accum", "next_seed", "data_tokens",
                                        "data_train", "data_hash", "run", "run_id"};
    for (size_t i = 0; i < COUNT(names); i++)
        if (strcmp(key, names[i]) == 0) return 1;
    return strncmp(key, "member.", 7) == 0;
}

int checkpoint_save_members(const char *path, int k, const Model *models, const Trainer *trainers,
                            const Tokenizer *tok, const CheckpointMeta *extra, int n_extra,
                            const CheckpointOptions *opt, Err *err) {
    if (!path || !*path) return err_set(err, "checkpoint save: no file name given");
    if (k < 1 || k > CHECKPOINT_MAX_MEMBERS || !models)
        return fail(err, path, "cannot save: %d members (1 to %d)", k, CHECKPOINT_MAX_MEMBERS);
    for (int i = 0; i < n_extra; i++)
        if (!extra[i].key || !extra[i].value || reserved_key(extra[i].key))
            return fail(err, path, "cannot save: metadata key '%.64s' is missing, reserved or without a value",
                        extra[i].key ? extra[i].key : "(null)");
    Part *parts = calloc((size_t)k, sizeof *parts);
    if (!parts) return fail(err, path, "cannot save: out of memory");
    char *ocfg0 = trainers ? optim_json(&trainers[0].opt.cfg) : NULL;
    int rc = trainers && !ocfg0 ? fail(err, path, "cannot save: out of memory") : 0;
    for (int i = 0; i < k && rc == 0; i++) {
        const Model *m = &models[i];
        if (!m->params || !m->be) rc = fail(err, path, "cannot save: member %d has no model", i);
        else if (m->be != models[0].be || !model_config_same_shape(&m->cfg, &models[0].cfg) ||
                 m->n_params != models[0].n_params)
            rc = fail(err, path, "cannot save: member %d's config differs from member 0's", i);
        else if (trainers && trainers[i].model != m)
            rc = fail(err, path, "cannot save: member %d's trainer belongs to another model", i);
        else if (trainers) {
            char *ocfg = optim_json(&trainers[i].opt.cfg);
            if (!ocfg || strcmp(trainers[i].opt.cfg.name, trainers[0].opt.cfg.name) != 0 || strcmp(ocfg, ocfg0) != 0)
                rc = fail(err, path, "cannot save: member %d's optimizer settings differ from member 0's (%s)", i,
                          ocfg ? trainers[i].opt.cfg.name : "out of memory");
            free(ocfg);
        }
        snprintf(parts[i].prefix, sizeof parts[i].prefix, "member.%d.", i);
        parts[i].m = m;
        parts[i].tr = trainers ? &trainers[i] : NULL;
    }
    free(ocfg0);
    if (rc == 0) rc = save_parts(path, parts, k, 1, tok, extra, n_extra, opt, err);
    free(parts);
    return rc;
}

// ---------------------------------------------------------------------------------------------
// loading: first validate, then build

enum { DT_F32, DT_BF16, DT_U8 };
static const size_t dtype_size[] = {4, 2, 1};
static const char *const dtype_name[] = {"F32", "BF16", "U8"};

// One tensor entry of the header, parsed and bounds-checked.
typedef struct Entry {
    const char *name;           // points into the parsed JSON
    int dtype;
    size_t shape[8];
    int ndim;
    size_t begin, end;
} Entry;

typedef struct Loader {
    const char *path;
    int fd;
    const uint8_t *bytes;       // checkpoint_load_bytes: the whole file, the caller's (else read from fd)
    size_t size;                // the whole file
    char *json;                 // the header, read whole
    size_t data_at, data_size;  // the data buffer: its offset in the file, its length
    float *scratch;             // the largest tensor widened to floats: every upload goes through it
    cJSON *header;
    ModelConfig cfg;
    OptimConfig ocfg;
    char optimizer[16];
    int has_trainer_meta;
    TrainShape shape;           // the last update's batches (0s: not in the file)
    TrainShape next;            // the saving session's next batches (0s: not in the file)
    int has_next_seed;          // the saving session's seed was in the file
    uint64_t next_seed;
    DataIdentity data;              // the saving session's data (0s: not in the file)
    char run[176];                  // the saving session's run ("": not in the file)
    uint64_t run_id;
    int want_members;           // checkpoint_load_members is reading (else checkpoint_load)
    int probe;                  // checkpoint_probe: the header only, whatever the file holds
    int k;                      // ensemble_k (0: a single-model file)
    struct MemberMeta {         // per member (one for a single model)
        uint64_t seed, data_rng;
        int step, optim_t;
    } *mm;
    CheckpointMeta *meta;       // the extra __metadata__ entries (ensemble files)
    int n_meta;
    TensorDesc *expect;         // the tensors cfg implies
    int n_expect;
    const TensorDesc **by_name; // expect sorted by name, for lookups
    Entry *entries;
    int n_entries;
    int *param;                 // entry index per member and expected tensor, −1 when absent
    const Entry **state;        // the "optim.*" entries, sorted by name
    int n_state;
    int tokenizer;              // entry index of tokenizer.model, −1 when absent
    int has_optim, any_bf16;
} Loader;

static void loader_free(Loader *L) {
    if (L->fd >= 0) close(L->fd);
    free(L->json);
    free(L->scratch);
    cJSON_Delete(L->header);
    free(L->expect);
    free(L->by_name);
    free(L->entries);
    free(L->param);
    free(L->state);
    free(L->mm);
    for (int i = 0; i < L->n_meta; i++) {
        free(L->meta[i].key);
        free(L->meta[i].value);
    }
    free(L->meta);
}

static int open_file(Loader *L, Err *err) {
    if (L->bytes) {   // checkpoint_load_bytes: the bytes are already in memory
        if (L->size < 8)
            return fail(err, L->path, "truncated: %zu bytes, but a safetensors file starts with an 8-byte header length",
                        L->size);
        return 0;
    }
    L->fd = open(L->path, O_RDONLY | O_NONBLOCK);   // a pipe's open would wait for a writer
    if (L->fd < 0) return fail(err, L->path, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(L->fd, &st) != 0) return fail(err, L->path, "cannot stat: %s", strerror(errno));
    if (!S_ISREG(st.st_mode))
        return fail(err, L->path, "not a regular file (%s)", S_ISDIR(st.st_mode) ? "a folder" : "a device, pipe or socket");
    L->size = (size_t)st.st_size;
    if (L->size < 8)
        return fail(err, L->path, "truncated: %zu bytes, but a safetensors file starts with an 8-byte header length",
                    L->size);
    return 0;
}

// Copy n bytes at offset `at` of the file (at + n ≤ L->size, checked by the caller) into dst.
// By pread, not through a mapping: a file cut short by another program while it loads is a
// short read and an error line here, where a mapped read would fault (SIGBUS) and end the
// session with its unsaved training.
static int read_at(const Loader *L, size_t at, void *dst, size_t n, Err *err) {
    if (L->bytes) {
        memcpy(dst, L->bytes + at, n);
        return 0;
    }
    for (size_t done = 0; done < n;) {
        ssize_t got = pread(L->fd, (uint8_t *)dst + done, n - done, (off_t)(at + done));
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) return fail(err, L->path, "cannot read: %s", strerror(errno));
        if (got == 0)
            return fail(err, L->path, "cut short while it loaded (by another program?): it ends before byte %zu of %zu",
                        at + done, L->size);
        done += (size_t)got;
    }
    return 0;
}

// The first bytes of a file as text for a message: printable ASCII and whole UTF-8 characters
// as they are ("# lrsh — the l"), anything else as \xNN; a character the 16 bytes cut ends it
// with "…".
static void file_start_text(const unsigned char *p, size_t size, char *out, size_t cap) {
    size_t k = size < 16 ? size : 16, n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < k && n + 5 < cap;) {
        size_t len = p[i] >= 0xf0 ? 4 : p[i] >= 0xe0 ? 3 : p[i] >= 0xc0 ? 2 : 1;
        size_t whole = len > 1 && i + len <= size ? tokenizer_utf8_valid_prefix((const char *)p + i, len) : 0;
        if (whole == len && i + len > k) {   // valid, but past the 16 bytes
            n += (size_t)snprintf(out + n, cap - n, "…");
            break;
        }
        if (whole == len && !tokenizer_utf8_bidi_control((const char *)p + i)) {
            memcpy(out + n, p + i, len), n += len, i += len;
        } else {
            n += (size_t)snprintf(out + n, cap - n, p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\' ? "%c" : "\\x%02x", p[i]);
            i++;
        }
    }
    out[n] = '\0';
}

static int string_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// The first key that appears twice in one object of o, at any depth (NULL: none). Readers
// differ over which one counts — cJSON keeps the first, Python's json the last —, so a file
// holding one means two things. (cJSON's nesting limit bounds the recursion.)
static const char *duplicate_key(const cJSON *o, int *oom) {
    int n = 0;
    for (const cJSON *a = o->child; a; a = a->next) n++;
    const char *twice = NULL;
    if (cJSON_IsObject(o) && n > 1) {   // sorted, a key twice sits beside itself: thousands of tensors stay quick
        char **names = malloc(sizeof *names * (size_t)n);
        if (!names) return *oom = 1, NULL;
        int k = 0;
        for (const cJSON *a = o->child; a; a = a->next) names[k++] = a->string ? a->string : "";
        qsort(names, (size_t)n, sizeof *names, string_cmp);
        for (int i = 1; i < n && !twice; i++)
            if (strcmp(names[i - 1], names[i]) == 0) twice = names[i];
        free(names);
    }
    for (const cJSON *a = o->child; a && !twice && !*oom; a = a->next) twice = duplicate_key(a, oom);
    return twice;
}

// A NUL in the header — a raw byte, or a \u0000 escape — would cut the name or value it is in
// short here ("head\u0000junk" read as head) and not in other readers. Byte offset, or −1.
static long header_nul_at(const char *json, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (json[i] == '\0') return (long)i;
        if (json[i] != '\\' || i + 1 >= n) continue;
        if (json[i + 1] == 'u' && i + 5 < n && strncmp(json + i + 2, "0000", 4) == 0) return (long)i;
        i++;   // the escaped character: \\u0000 is a backslash and text
    }
    return -1;
}

static int parse_header(Loader *L, Err *err) {
    uint8_t head[24];   // the header length, and enough bytes to quote another kind of file
    size_t k = L->size < sizeof head ? L->size : sizeof head;
    if (read_at(L, 0, head, k, err)) return -1;
    uint64_t n = 0;
    for (int i = 0; i < 8; i++) n |= (uint64_t)head[i] << (8 * i);
    if (n > L->size - 8 && L->size > 8 && head[8] != '{') {   // another kind of file: text read as a huge length
        char start[96];
        file_start_text(head, k, start, sizeof start);
        return fail(err, L->path, "not a safetensors file: one starts with an 8-byte header length and then its JSON "
                                  "header '{'; this one starts \"%s\"", start);
    }
    if (n > L->size - 8)
        return fail(err, L->path, "truncated or not safetensors: header length %" PRIu64 " is beyond the file (%zu bytes)",
                    n, L->size);
    if (n >= MAX_HEADER_BYTES)
        return fail(err, L->path, "header length %" PRIu64 " is beyond the 100 MB limit", n);
    if (!(L->json = malloc((size_t)n + 1))) return fail(err, L->path, "out of memory for a %" PRIu64 "-byte header", n);
    if (read_at(L, 8, L->json, (size_t)n, err)) return -1;
    const char *json = L->json, *end = NULL;
    long nul = header_nul_at(json, (size_t)n);
    if (nul >= 0) return fail(err, L->path, "malformed JSON header: a NUL character at byte %ld", nul);
    L->header = cJSON_ParseWithLengthOpts(json, (size_t)n, &end, 0);
    if (!L->header) {
        size_t at = end && end >= json && end <= json + n ? (size_t)(end - json) : 0;
        return fail(err, L->path, "malformed JSON header (near byte %zu of %" PRIu64 ")", at, n);
    }
    for (const char *p = end; p < json + n; p++)  // the spec pads with spaces; nothing else may follow
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
            return fail(err, L->path, "malformed JSON header: unexpected bytes after the JSON object at byte %zu",
                        (size_t)(p - json));
    if (!cJSON_IsObject(L->header)) return fail(err, L->path, "malformed header: not a JSON object");
    int oom = 0;
    const char *twice = duplicate_key(L->header, &oom);
    if (oom) return fail(err, L->path, "out of memory checking the header's keys");
    if (twice) return fail(err, L->path, "malformed header: key \"%.64s\" appears twice in one object", twice);
    L->data_at = 8 + (size_t)n;
    L->data_size = L->size - 8 - (size_t)n;
    return 0;
}

static const char *meta_string(const cJSON *md, const char *key) {
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(md, key));
}

// Batches under three keys (batch, seq, accum): all three or none; batch and accum positive,
// seq positive or, where zero_seq, 0 (the context), and no longer than the context.
static int parse_batches(Loader *L, const cJSON *md, const char *const key[3], int zero_seq, TrainShape *out, Err *err) {
    int *field[3] = {&out->batch, &out->seq, &out->accum}, present = 0;
    for (int i = 0; i < 3; i++) present += meta_string(md, key[i]) != NULL;
    for (int i = 0; i < 3 && present; i++) {
        const char *v = meta_string(md, key[i]);
        if (parse_nonneg_int(v, field[i]) || *field[i] < (i == 1 && zero_seq ? 0 : 1))
            return fail(err, L->path, "__metadata__ %s '%.32s' is not a %s number up to %d (%s, %s and %s go together)",
                        key[i], v ? v : "(none)", i == 1 && zero_seq ? "whole" : "positive", INT_MAX, key[0], key[1],
                        key[2]);
    }
    if (present && out->seq > L->cfg.seq)   // parse_config ran first
        return fail(err, L->path, "__metadata__ %s %d is longer than the model's context (%d)", key[1], out->seq,
                    L->cfg.seq);
    return 0;
}

// The last update's batches (none in a file from before they were kept).
static int parse_shape(Loader *L, const cJSON *md, Err *err) {
    static const char *const key[3] = {"batch", "seq", "accum"};
    return parse_batches(L, md, key, 0, &L->shape, err);
}

// What the saving session would go on with: its next batches (CheckpointOptions.next; seq 0:
// the context), its seed, the size of its data.
static int parse_saver_state(Loader *L, const cJSON *md, Err *err) {
    static const char *const key[3] = {"next_batch", "next_seq", "next_accum"};
    if (parse_batches(L, md, key, 1, &L->next, err)) return -1;
    const char *seed = meta_string(md, "next_seed");
    L->has_next_seed = seed != NULL;
    if (seed && parse_u64(seed, &L->next_seed))
        return fail(err, L->path, "__metadata__ next_seed '%.32s' is not a whole number", seed);
    const char *tokens = meta_string(md, "data_tokens"), *train = meta_string(md, "data_train");
    uint64_t nt = 0, ntr = 0;
    if ((tokens || train) && (parse_u64(tokens, &nt) || parse_u64(train, &ntr) || nt > LONG_MAX || ntr > nt))
        return fail(err, L->path, "__metadata__ data_tokens '%.32s', data_train '%.32s': two whole numbers, the "
                    "second at most the first, go together", tokens ? tokens : "(none)", train ? train : "(none)");
    const char *hash = meta_string(md, "data_hash");
    uint64_t nh = 0;
    if (hash && (!tokens || parse_u64(hash, &nh) || nh == 0))
        return fail(err, L->path, "__metadata__ data_hash '%.32s': a whole number ≥ 1, with data_tokens", hash);
    L->data = (DataIdentity){.tokens = (long)nt, .train = (long)ntr, .hash = nh};
    const char *run = meta_string(md, "run"), *run_id = meta_string(md, "run_id");
    if (run && strlen(run) < sizeof L->run) snprintf(L->run, sizeof L->run, "%s", run);   // else none: a hint only
    if (!L->run[0] || !run_id || parse_u64(run_id, &L->run_id)) L->run_id = 0;
    return 0;
}

// The format and version: an lrsh checkpoint this build reads.
static int parse_format(Loader *L, const cJSON *md, Err *err) {
    const char *format = meta_string(md, "format");
    if (!cJSON_IsObject(md) || !format || strcmp(format, FORMAT_NAME) != 0)
        return fail(err, L->path, "a safetensors file but not an lrsh checkpoint (no __metadata__ format=lrsh)");
    for (const cJSON *v = md->child; v; v = v->next)  // the spec: a string-to-string map
        if (!cJSON_IsString(v)) return fail(err, L->path, "__metadata__ '%.64s' is not a string", v->string);
    const char *version = meta_string(md, "lrsh_version");
    if (version && strcmp(version, "1") == 0)
        return fail(err, L->path, "lrsh checkpoint version 1 is not supported: it predates the optimizer rewrite "
                    "(AdamW moments and a fixed list of options only); this build reads version %s", FORMAT_VERSION);
    if (!version || strcmp(version, FORMAT_VERSION) != 0)
        return fail(err, L->path, "lrsh checkpoint version '%.32s' is not supported (this build reads version %s)",
                    version ? version : "(none)", FORMAT_VERSION);
    return 0;
}

// ensemble_k (L->k: 0 for a single model) against what the caller asked for.
static int parse_member_count(Loader *L, const cJSON *md, Err *err) {
    const char *ek = meta_string(md, "ensemble_k");
    if (ek && (parse_nonneg_int(ek, &L->k) || L->k < 1 || L->k > CHECKPOINT_MAX_MEMBERS))
        return fail(err, L->path, "__metadata__ ensemble_k '%.32s' is not a member count (1 to %d)", ek,
                    CHECKPOINT_MAX_MEMBERS);
    if (!L->probe && L->k && !L->want_members)
        return fail(err, L->path, "holds an ensemble of %d members, not a single model: load it with `model load` in "
                    "an lrsh session (engine: ensemble_load)", L->k);
    if (!L->probe && !L->k && L->want_members)
        return fail(err, L->path, "holds a single model, not an ensemble (no ensemble_k in __metadata__): load it "
                    "with `model load` or checkpoint_load");
    if (!L->k && (meta_string(md, "member.0.step") || meta_string(md, "member.0.seed")))
        return fail(err, L->path, "__metadata__ has member.0.* entries but no ensemble_k (an ensemble's member count)");
    return 0;
}

// Member i's trainer keys: "step", "data_rng", "optim_t", prefixed "member.I." in an ensemble.
static void trainer_keys(const Loader *L, int i, char key[3][48]) {
    static const char *const names[3] = {"step", "data_rng", "optim_t"};
    for (int j = 0; j < 3; j++)
        if (L->k) snprintf(key[j], 48, "member.%d.%s", i, names[j]);
        else snprintf(key[j], 48, "%s", names[j]);
}

// Each member's seed (an ensemble's member.I.seed; a single model's is its config's).
static int parse_member_seeds(Loader *L, const cJSON *md, Err *err) {
    for (int i = 0; i < (L->k ? L->k : 1); i++) {
        L->mm[i].seed = L->cfg.seed;
        if (!L->k) continue;
        char key[48];
        snprintf(key, sizeof key, "member.%d.seed", i);
        const char *seed = meta_string(md, key);
        if (parse_u64(seed, &L->mm[i].seed))
            return fail(err, L->path, "__metadata__ %s '%.32s' is not a decimal number", key, seed ? seed : "(none)");
    }
    return 0;
}

// The trainers' state: all of it or none of it (every member's).
static int parse_trainer_meta(Loader *L, const cJSON *md, Err *err) {
    int nm = L->k ? L->k : 1;
    char key[3][48];
    const char *opt = meta_string(md, "optimizer"), *ocfg = meta_string(md, "optim_config");
    int any = opt || ocfg;
    for (int i = 0; i < nm && !any; i++) {
        trainer_keys(L, i, key);
        any = meta_string(md, key[0]) || meta_string(md, key[1]) || meta_string(md, key[2]);
    }
    if (!any) return 0;
    for (int i = 0; i < nm; i++) {
        trainer_keys(L, i, key);
        const char *step = meta_string(md, key[0]), *rng = meta_string(md, key[1]), *t = meta_string(md, key[2]);
        if (parse_nonneg_int(step, &L->mm[i].step) || L->mm[i].step > TRAINER_LAST_STEP)
            return fail(err, L->path, "__metadata__ %s '%.32s' is not a step number (0 to %d)", key[0],
                        step ? step : "(none)", TRAINER_LAST_STEP);
        if (parse_u64(rng, &L->mm[i].data_rng))
            return fail(err, L->path, "__metadata__ %s '%.32s' is not a decimal number", key[1], rng ? rng : "(none)");
        if (parse_nonneg_int(t, &L->mm[i].optim_t) || L->mm[i].optim_t > TRAINER_LAST_STEP)
            return fail(err, L->path, "__metadata__ %s '%.32s' is not a step number (0 to %d)", key[2],
                        t ? t : "(none)", TRAINER_LAST_STEP);
    }
    if (!opt || !ocfg) return fail(err, L->path, "__metadata__ has a step but no optimizer or optim_config");
    if (parse_shape(L, md, err)) return -1;
    if (parse_optim_config(L->path, opt, ocfg, &L->ocfg, err)) return -1;
    snprintf(L->optimizer, sizeof L->optimizer, "%s", L->ocfg.name);
    L->has_trainer_meta = 1;
    return 0;
}

// The entries the layout does not use belong to the caller (an ensemble's own state): copied.
static int keep_caller_meta(Loader *L, const cJSON *md, Err *err) {
    int n = 0;
    for (const cJSON *v = md->child; v; v = v->next) n += !reserved_key(v->string);
    L->meta = calloc((size_t)n + 1, sizeof *L->meta);
    if (!L->meta) return fail(err, L->path, "out of memory for %d metadata entries", n);
    for (const cJSON *v = md->child; v; v = v->next) {
        if (reserved_key(v->string)) continue;
        CheckpointMeta *m = &L->meta[L->n_meta++];
        m->key = strdup(v->string);
        m->value = strdup(v->valuestring);
        if (!m->key || !m->value) return fail(err, L->path, "out of memory copying __metadata__");
    }
    return 0;
}

static int parse_metadata(Loader *L, Err *err) {
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(L->header, "__metadata__");
    if (parse_format(L, md, err)) return -1;
    const char *config = meta_string(md, "config");
    if (!config) return fail(err, L->path, "__metadata__ has no model config");
    if (parse_config(L->path, config, &L->cfg, err) || parse_member_count(L, md, err)) return -1;
    int nm = L->k ? L->k : 1;
    L->mm = calloc((size_t)nm, sizeof *L->mm);
    if (!L->mm) return fail(err, L->path, "out of memory for %d members", nm);
    if (parse_member_seeds(L, md, err) || parse_trainer_meta(L, md, err) || parse_saver_state(L, md, err)) return -1;
    return L->want_members ? keep_caller_meta(L, md, err) : 0;
}

// A JSON number that is a whole, exactly representable, non-negative value.
static int json_size(const cJSON *v, size_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0 && d <= MAX_EXACT_DOUBLE) || d != floor(d)) return -1;
    *out = (size_t)d;
    return 0;
}

// dtype, shape and data_offsets of one entry; offsets inside the buffer and sized for the shape.
static int parse_entry(Loader *L, const cJSON *e, Entry *out, Err *err) {
    const char *name = e->string;
    out->name = name;
    if (!cJSON_IsObject(e)) return fail(err, L->path, "tensor %s: entry is not a JSON object", name);
    const char *dt = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "dtype"));
    if (!dt) return fail(err, L->path, "tensor %s: no dtype", name);
    out->dtype = -1;
    for (int i = 0; i < 3; i++)
        if (strcmp(dt, dtype_name[i]) == 0) out->dtype = i;
    if (strcmp(dt, "F16") == 0)
        return fail(err, L->path, "tensor %s: dtype F16 is not supported (F32, BF16 or U8)", name);
    if (out->dtype < 0) return fail(err, L->path, "tensor %s: unknown dtype '%.32s' (F32, BF16 or U8)", name, dt);
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    int ndim = cJSON_IsArray(shape) ? cJSON_GetArraySize(shape) : -1;
    if (ndim < 0 || ndim > 8) return fail(err, L->path, "tensor %s: shape is not an array of at most 8 sizes", name);
    size_t numel = 1;
    out->ndim = 0;
    for (const cJSON *d = shape->child; d; d = d->next) {
        size_t k;
        if (json_size(d, &k)) return fail(err, L->path, "tensor %s: shape holds something that is not a size", name);
        if (k && numel > SIZE_MAX / 8 / k) return fail(err, L->path, "tensor %s: shape is impossibly large", name);
        numel *= k;
        out->shape[out->ndim++] = k;
    }
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || json_size(offs->child, &out->begin) ||
        json_size(offs->child->next, &out->end))
        return fail(err, L->path, "tensor %s: data_offsets is not [begin, end]", name);
    if (out->begin > out->end)
        return fail(err, L->path, "tensor %s: data_offsets [%zu, %zu] end before they begin", name, out->begin, out->end);
    if (out->end > L->data_size)
        return fail(err, L->path,
                    "tensor %s: data_offsets [%zu, %zu] outside the data buffer (%zu bytes; truncated file?)",
                    name, out->begin, out->end, L->data_size);
    size_t need = numel * dtype_size[out->dtype];
    if (out->end - out->begin != need)
        return fail(err, L->path, "tensor %s: data_offsets span %zu bytes but %zu %s values need %zu bytes",
                    name, out->end - out->begin, numel, dt, need);
    return 0;
}


static int parse_entries(Loader *L, Err *err) {
    int n = 0;
    for (const cJSON *e = L->header->child; e; e = e->next) n += strcmp(e->string, "__metadata__") != 0;
    L->entries = calloc((size_t)n + 1, sizeof *L->entries);
    if (!L->entries) return fail(err, L->path, "out of memory reading %d tensor entries", n);
    for (const cJSON *e = L->header->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) continue;
        if (parse_entry(L, e, &L->entries[L->n_entries], err)) return -1;
        L->n_entries++;
    }
    return 0;
}

static int begin_cmp(const void *a, const void *b) {
    const Entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

// The spec: tensors tile the data buffer exactly — no overlaps, no holes, nothing after.
static int check_layout(Loader *L, Err *err) {
    Entry *s = malloc(((size_t)L->n_entries + 1) * sizeof *s);
    if (!s) return fail(err, L->path, "out of memory checking the data layout");
    memcpy(s, L->entries, (size_t)L->n_entries * sizeof *s);
    qsort(s, (size_t)L->n_entries, sizeof *s, begin_cmp);
    size_t at = 0;
    int rc = 0;
    for (int i = 0; i < L->n_entries && rc == 0; i++) {
        if (s[i].begin < at)
            rc = fail(err, L->path, "tensors %s and %s overlap (bytes [%zu, %zu) and [%zu, %zu))", s[i - 1].name,
                      s[i].name, s[i - 1].begin, s[i - 1].end, s[i].begin, s[i].end);
        else if (s[i].begin > at)
            rc = fail(err, L->path, "bytes [%zu, %zu) of the data buffer belong to no tensor", at, s[i].begin);
        at = s[i].end;
    }
    if (rc == 0 && at != L->data_size)
        rc = fail(err, L->path, "%zu bytes after the last tensor belong to no tensor", L->data_size - at);
    free(s);
    return rc;
}

static int name_cmp(const void *a, const void *b) {
    return strcmp((*(const TensorDesc *const *)a)->name, (*(const TensorDesc *const *)b)->name);
}

static int find_expected(const Loader *L, const char *name) {
    TensorDesc key;
    if (strlen(name) >= sizeof key.name) return -1;
    snprintf(key.name, sizeof key.name, "%s", name);
    const TensorDesc *kp = &key;
    const TensorDesc **hit = bsearch(&kp, L->by_name, (size_t)L->n_expect, sizeof *L->by_name, name_cmp);
    return hit ? (int)(*hit - L->expect) : -1;
}

static int setup_expected(Loader *L, Err *err) {
    int nm = L->k ? L->k : 1;
    long need = expected_count(&L->cfg) * nm;
    // A config implying far more tensors than the file holds is refused before its table is built.
    if (need > (long)L->n_entries + 1000)
        return fail(err, L->path, "the config needs %ld tensors but the file holds %d", need, L->n_entries);
    Err why;
    if (model_tensor_table(&L->cfg, &L->expect, &L->n_expect, &why)) return fail(err, L->path, "%s", why.msg);
    L->by_name = malloc(((size_t)L->n_expect + 1) * sizeof *L->by_name);
    L->param = malloc(((size_t)L->n_expect * nm + 1) * sizeof(int));
    L->state = malloc(((size_t)L->n_entries + 1) * sizeof *L->state);
    if (!L->expect || !L->by_name || !L->param || !L->state)
        return fail(err, L->path, "out of memory for a table of %ld tensors", need);
    for (int i = 0; i < L->n_expect; i++) L->by_name[i] = &L->expect[i];
    for (long i = 0; i < (long)L->n_expect * nm; i++) L->param[i] = -1;
    qsort(L->by_name, (size_t)L->n_expect, sizeof *L->by_name, name_cmp);
    return 0;
}

// "member.{i}.REST" with i < k written the one way (no sign, no leading zero): i, and *rest; else −1.
static int split_member(const char *name, int k, const char **rest) {
    if (strncmp(name, "member.", 7) != 0) return -1;
    const char *p = name + 7;
    if (*p < '0' || *p > '9' || (*p == '0' && p[1] >= '0' && p[1] <= '9')) return -1;
    long v = 0;
    for (; *p >= '0' && *p <= '9'; p++)
        if ((v = v * 10 + (*p - '0')) >= k) return -1;
    if (*p != '.') return -1;
    *rest = p + 1;
    return (int)v;
}

// Which tensor entry k is; a parameter's dtype and shape checked against the config. An
// "optim.*" entry is only noted here: which ones the optimizer needs, and their shapes, are
// known once it is built (restore_state).
static int match_entry(Loader *L, int k, Err *err) {
    const Entry *e = &L->entries[k];
    if (strcmp(e->name, "tokenizer.model") == 0) {
        if (e->dtype != DT_U8 || e->ndim != 1) return fail(err, L->path, "tensor tokenizer.model: must be U8 and 1-D");
        L->tokenizer = k;   // once: parse_header refuses any key twice
        return 0;
    }
    const char *name = e->name;
    int member = 0;
    if (L->k && (member = split_member(e->name, L->k, &name)) < 0)
        return fail(err, L->path, "unknown tensor '%s' (an ensemble of %d members names its tensors member.{0..%d}.NAME)",
                    e->name, L->k, L->k - 1);
    if (strncmp(name, "optim.", 6) == 0) {
        L->state[L->n_state++] = e;
        return 0;
    }
    int i = find_expected(L, name);
    if (i < 0) return fail(err, L->path, "unknown tensor '%s' (the config has no such parameter)", e->name);
    size_t want[2];
    int nd = file_shape(&L->expect[i], want);
    if (e->ndim != nd || memcmp(e->shape, want, (size_t)nd * sizeof want[0]) != 0) {
        char got[96], need[64];
        format_shape(got, sizeof got, e->shape, e->ndim);
        format_shape(need, sizeof need, want, nd);
        return fail(err, L->path, "tensor %s: shape %s but the config needs %s", e->name, got, need);
    }
    if (e->dtype == DT_U8)
        return fail(err, L->path, "tensor %s: dtype U8 but a parameter must be F32 or BF16", e->name);
    int *slot = &L->param[(size_t)member * L->n_expect + i];
    // a guard: unreachable while parse_header refuses a key twice and split_member takes one
    // spelling per member index
    if (*slot >= 0) return fail(err, L->path, "tensor %s appears twice", e->name);
    *slot = k;
    if (e->dtype == DT_BF16) L->any_bf16 = 1;
    return 0;
}

static int entry_name_cmp(const void *a, const void *b) {
    return strcmp((*(const Entry *const *)a)->name, (*(const Entry *const *)b)->name);
}

// Member i's "optim.*" entry named name (the prefix added in an ensemble file), or NULL.
static const Entry *find_state(const Loader *L, int member, const char *name) {
    char full[24 + sizeof(((StateTensor *)0)->name)];
    snprintf(full, sizeof full, "%s", name);
    if (L->k) snprintf(full, sizeof full, "member.%d.%s", member, name);
    Entry key = {.name = full};
    const Entry *kp = &key;
    const Entry **hit = bsearch(&kp, L->state, (size_t)L->n_state, sizeof *L->state, entry_name_cmp);
    return hit ? *hit : NULL;
}

static int check_complete(Loader *L, Err *err) {
    for (int j = 0; j < (L->k ? L->k : 1); j++)
        for (int i = 0; i < L->n_expect; i++) {
            if (L->param[(size_t)j * L->n_expect + i] >= 0) continue;
            if (L->k) return fail(err, L->path, "tensor member.%d.%s is missing (member %d is incomplete)", j,
                                  L->expect[i].name, j);
            return fail(err, L->path, "tensor %s is missing", L->expect[i].name);
        }
    qsort(L->state, (size_t)L->n_state, sizeof *L->state, entry_name_cmp);
    for (int i = 1; i < L->n_state; i++)
        if (strcmp(L->state[i - 1]->name, L->state[i]->name) == 0)
            return fail(err, L->path, "tensor %s appears twice", L->state[i]->name);
    L->has_optim = L->n_state > 0;
    if (L->has_optim && !L->has_trainer_meta)
        return fail(err, L->path, "optimizer state without step, optimizer and optim_config in __metadata__");
    return 0;
}

// Room for the largest tensor as floats (a BF16 one is widened there).
static int alloc_scratch(Loader *L, Err *err) {
    size_t most = 1;
    for (int k = 0; k < L->n_entries; k++) {
        const Entry *e = &L->entries[k];
        if (e->dtype == DT_U8) continue;   // the tokenizer's bytes: read apart
        size_t numel = (e->end - e->begin) / (e->dtype == DT_F32 ? 4 : 2);
        if (numel > most) most = numel;
    }
    if (!(L->scratch = malloc(most * sizeof(float))))
        return fail(err, L->path, "out of memory (%zu floats of scratch)", most);
    return 0;
}

// Every check, in the order that names the most useful problem first (a missing tensor before
// the hole it leaves in the data buffer).
static int validate(Loader *L, Err *err) {
    if (open_file(L, err) || parse_header(L, err) || parse_metadata(L, err) || parse_entries(L, err) ||
        setup_expected(L, err))
        return -1;
    for (int k = 0; k < L->n_entries; k++)
        if (match_entry(L, k, err)) return -1;
    return check_complete(L, err) || check_layout(L, err) || alloc_scratch(L, err) ? -1 : 0;
}

// ---------------------------------------------------------------------------------------------
// loading: build from a validated file

// Copy one entry to the device at dst, through L->scratch, widening BF16 there. *bad counts
// its values that are NaN or ±inf: the format allows them, a model trained by lrsh never keeps
// them (a non-finite step is rolled back), so they mean a damaged file or one from elsewhere.
static int upload_entry(const Loader *L, const Entry *e, float *dst, const Backend *be, long *bad, Err *err) {
    float *x = L->scratch;
    size_t bytes = e->end - e->begin, n = bytes / (e->dtype == DT_F32 ? 4 : 2);
    if (read_at(L, L->data_at + e->begin, x, bytes, err)) return -1;
    if (e->dtype == DT_BF16)
        // in place, from the last value down: float i covers BF16 values 2i and 2i+1, both read by then
        for (size_t i = n; i-- > 0;) {
            uint16_t h;
            memcpy(&h, (const uint8_t *)x + 2 * i, 2);
            x[i] = f32_from_bf16(h);
        }
    for (size_t i = 0; i < n; i++) *bad += !isfinite(x[i]);
    be->upload(dst, x, n * sizeof(float));
    return 0;
}

// A model from member's tensors; *nonfinite counts their NaN and ±inf values, the first tensor
// holding any named in first (cap bytes).
static int build_model(const Loader *L, int member, const Backend *be, Model *m, long *nonfinite, char *first,
                       size_t cap, Err *err) {
    Err why;
    ModelConfig c = L->cfg;
    c.seed = L->mm[member].seed;
    if (model_alloc(m, &c, be, &why)) {
        if (L->k) return fail(err, L->path, "member %d: cannot build the model: %s", member, why.msg);
        return fail(err, L->path, "cannot build the model: %s", why.msg);
    }
    const int *slot = L->param + (size_t)member * L->n_expect;
    for (int i = 0; i < m->n_tensors; i++) {
        long bad = 0;
        if (upload_entry(L, &L->entries[slot[i]], param(m, i), be, &bad, err)) {
            model_free(m);
            return -1;
        }
        if (bad && !*nonfinite) snprintf(first, cap, "%s", m->tensors[i].name);
        *nonfinite += bad;
    }
    return 0;
}

// Values no optimizer writes: NaN, ±inf, and a negative second moment (AdamW's v ≥ 0).
static long damaged_values(const StateTensor *s, const float *x) {
    int second_moment = strncmp(s->name, "optim.v.", 8) == 0;
    long bad = 0;
    for (long i = 0; i < s->numel; i++) bad += !isfinite(x[i]) || (second_moment && x[i] < 0);
    return bad;
}

// Fill one state tensor of the freshly built optimizer from the file. A required one must be
// there; one only the diagnostics use keeps its built value (vectors warmed on the factors).
// *damaged counts damaged_values; the first tensor holding any is named in d->first.
static int restore_one(const Loader *L, int member, const StateTensor *s, const Backend *be, StateDamage *d,
                       Err *err) {
    const Entry *e = find_state(L, member, s->name);
    char prefix[24] = "";
    if (L->k) snprintf(prefix, sizeof prefix, "member.%d.", member);
    if (!e)
        return s->required ? fail(err, L->path, "tensor %s%s is missing (optimizer %s needs it to resume)", prefix,
                                  s->name, L->ocfg.name)
                           : 0;
    if (e->dtype != DT_F32)
        return fail(err, L->path, "tensor %s: dtype %s but optimizer state must be F32", e->name, dtype_name[e->dtype]);
    size_t want[2];
    int nd = state_shape(s, want);
    if (e->ndim != nd || memcmp(e->shape, want, (size_t)nd * sizeof want[0]) != 0) {
        char got[96], need[64];
        format_shape(got, sizeof got, e->shape, e->ndim);
        format_shape(need, sizeof need, want, nd);
        return fail(err, L->path, "tensor %s: shape %s but optimizer %s needs %s", e->name, got, L->ocfg.name, need);
    }
    if (read_at(L, L->data_at + e->begin, L->scratch, e->end - e->begin, err)) return -1;
    long bad = damaged_values(s, (const float *)L->scratch);
    if (bad && !d->values) snprintf(d->first, sizeof d->first, "%s%s", prefix, s->name);
    d->values += bad;
    be->upload(s->data, L->scratch, e->end - e->begin);   // F32, numel checked by parse_entry
    return 0;
}

// Every state tensor the optimizer lists, from the file. Entries it does not list (another
// optimizer's state, say) are ignored: they are not ours to interpret.
static int restore_state(const Loader *L, int member, Trainer *tr, StateDamage *d, Err *err) {
    const Model *m = tr->model;
    int n = optimizer_state_tensors(&tr->opt, m, NULL, 0);
    StateTensor *st = calloc((size_t)n + 1, sizeof *st);
    if (!st) return fail(err, L->path, "out of memory listing %d optimizer state tensors", n);
    optimizer_state_tensors(&tr->opt, m, st, n);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) rc = restore_one(L, member, &st[i], m->be, d, err);
    free(st);
    return rc;
}

// Member i's trainer from the saved optimizer config, at its saved step and data position; its
// state from the file when the file has some (else fresh moments, t = 0). State holding values
// no optimizer writes (d counts them) is replaced by fresh state: every update from it would
// diverge, and the rollback would come back to it.
static int build_trainer(const Loader *L, int member, Model *m, Trainer *tr, StateDamage *d, Err *err) {
    Err why;
    if (trainer_build(tr, m, &L->ocfg, L->mm[member].data_rng, &why)) {
        trainer_free(tr);
        if (L->k) return fail(err, L->path, "member %d: cannot build the trainer: %s", member, why.msg);
        return fail(err, L->path, "cannot build the trainer: %s", why.msg);
    }
    long before = d->values;
    if (L->has_optim && restore_state(L, member, tr, d, err)) {
        trainer_free(tr);
        return -1;
    }
    int fresh = d->values > before;
    if (fresh) {
        optimizer_free(&tr->opt, m);
        if (optimizer_build(&tr->opt, m, &L->ocfg, &why)) {
            trainer_free(tr);
            return fail(err, L->path, "cannot rebuild the optimizer's state: %s", why.msg);
        }
    }
    tr->step = L->mm[member].step;
    tr->shape = L->shape;
    if (L->has_optim && !fresh) tr->opt.t = L->mm[member].optim_t;
    return 0;
}

static Tokenizer *build_tokenizer(const Loader *L, Err *err) {
    const Entry *e = &L->entries[L->tokenizer];
    Err why;
    size_t n = e->end - e->begin;
    uint8_t *bytes = malloc(n ? n : 1);
    if (!bytes) {
        fail(err, L->path, "out of memory for the tokenizer's %zu bytes", n);
        return NULL;
    }
    if (read_at(L, L->data_at + e->begin, bytes, n, err)) {
        free(bytes);
        return NULL;
    }
    Tokenizer *tok = tokenizer_load_bytes(bytes, n, &why);
    free(bytes);
    if (!tok) {
        fail(err, L->path, "tensor tokenizer.model: %s", why.msg);
        return NULL;
    }
    if (tokenizer_vocab_size(tok) > L->cfg.vocab) {
        fail(err, L->path, "tensor tokenizer.model: %d pieces but the model's vocab is %d",
             tokenizer_vocab_size(tok), L->cfg.vocab);
        tokenizer_free(tok);
        return NULL;
    }
    return tok;
}

// Both entry points: L names the file (and holds its bytes when they came from memory).
static int load(Loader *L0, const Backend *be, Model *out_model, Trainer *out_trainer,
                Tokenizer **out_tok, CheckpointInfo *info, Err *err) {
    const char *path = L0->path;
    if (!be || !out_model) return fail(err, path, "cannot load: no backend or no model to load into");
    Loader L = *L0;
    Model m = {0};
    Trainer tr = {0};
    Tokenizer *tok = NULL;
    int rc = validate(&L, err);
    int want_trainer = out_trainer && L.has_optim;
    if (rc == 0 && out_tok && L.tokenizer >= 0 && !(tok = build_tokenizer(&L, err))) rc = -1;
    long nonfinite = 0;
    char first_bad[64] = "";
    if (rc == 0) rc = build_model(&L, 0, be, &m, &nonfinite, first_bad, sizeof first_bad, err);
    // The state's names and shapes are only known from a built optimizer: build it even when no
    // trainer is wanted, so a file is accepted or refused the same way whatever the caller asks.
    StateDamage damage = {0};
    if (rc == 0 && L.has_optim && build_trainer(&L, 0, &m, &tr, &damage, err)) {
        model_free(&m);
        rc = -1;
    }
    if (rc == 0 && L.has_optim && !want_trainer) trainer_free(&tr);
    if (rc != 0) {
        tokenizer_free(tok);
    } else {
        *out_model = m;
        if (out_trainer) *out_trainer = tr;  // zeroed when the file has no optimizer state
        if (want_trainer) out_trainer->model = out_model;
        if (out_tok) *out_tok = tok;
        if (info) {
            *info = (CheckpointInfo){.step = L.mm[0].step, .dtype = L.any_bf16 ? CHECKPOINT_BF16 : CHECKPOINT_F32,
                                     .has_optim = L.has_optim, .has_tokenizer = L.tokenizer >= 0,
                                     .file_bytes = L.size, .data_rng = L.mm[0].data_rng, .shape = L.shape,
                                     .next = L.next, .has_next_seed = L.has_next_seed, .next_seed = L.next_seed,
                                     .data = L.data,
                                     .nonfinite = nonfinite, .state_damage = damage};
            snprintf(info->optimizer, sizeof info->optimizer, "%s", L.optimizer);
            snprintf(info->run, sizeof info->run, "%s", L.run), info->run_id = L.run_id;
            if (L.has_trainer_meta) info->optim = L.ocfg;
            snprintf(info->nonfinite_tensor, sizeof info->nonfinite_tensor, "%s", first_bad);
        }
    }
    loader_free(&L);
    return rc;
}

int checkpoint_load(const char *path, const Backend *be, Model *out_model, Trainer *out_trainer,
                    Tokenizer **out_tok, CheckpointInfo *info, Err *err) {
    if (!path || !*path) return err_set(err, "checkpoint load: no file name given");
    Loader L = {.path = path, .fd = -1, .tokenizer = -1};
    return load(&L, be, out_model, out_trainer, out_tok, info, err);
}

int checkpoint_load_bytes(const void *bytes, size_t size, const char *name, const Backend *be, Model *out_model,
                          Trainer *out_trainer, Tokenizer **out_tok, CheckpointInfo *info, Err *err) {
    if (!name || !*name) name = "(memory)";
    if (!bytes && size) return err_set(err, "%s: no bytes to load", name);
    static const uint8_t empty[1];
    // the loader only reads the caller's buffer; it never writes or frees it
    Loader L = {.path = name, .fd = -1, .tokenizer = -1, .bytes = bytes ? bytes : empty, .size = size};
    return load(&L, be, out_model, out_trainer, out_tok, info, err);
}

// ---------------------------------------------------------------------------------------------
// ensemble files and the probe

static int load_members(Loader *L0, const Backend *be, CheckpointMembers *out, Err *err) {
    const char *path = L0->path;
    if (!be || !out) return fail(err, path, "cannot load: no backend or nothing to load into");
    Loader L = *L0;
    L.want_members = 1;
    CheckpointMembers r;
    memset(&r, 0, sizeof r);
    int rc = validate(&L, err), built = 0;
    if (rc == 0) {
        r.k = L.k;
        r.models = calloc((size_t)L.k, sizeof *r.models);
        r.trainers = L.has_trainer_meta ? calloc((size_t)L.k, sizeof *r.trainers) : NULL;
        if (!r.models || (L.has_trainer_meta && !r.trainers))
            rc = fail(err, path, "out of memory for %d members", L.k);
    }
    if (rc == 0 && L.tokenizer >= 0 && !(r.tok = build_tokenizer(&L, err))) rc = -1;
    long nonfinite = 0;
    char first_bad[64] = "";
    StateDamage damage = {0};
    for (int i = 0; rc == 0 && i < L.k; i++) {
        rc = build_model(&L, i, be, &r.models[i], &nonfinite, first_bad, sizeof first_bad, err);
        if (rc == 0 && r.trainers && build_trainer(&L, i, &r.models[i], &r.trainers[i], &damage, err)) {
            model_free(&r.models[i]);
            rc = -1;
        }
        if (rc == 0) built++;
    }
    if (rc == 0) {
        r.has_state = L.has_optim;
        r.info = (CheckpointInfo){.step = L.mm[0].step, .dtype = L.any_bf16 ? CHECKPOINT_BF16 : CHECKPOINT_F32,
                                  .has_optim = L.has_optim, .has_tokenizer = L.tokenizer >= 0, .file_bytes = L.size,
                                  .data_rng = L.mm[0].data_rng, .shape = L.shape, .next = L.next,
                                  .has_next_seed = L.has_next_seed, .next_seed = L.next_seed,
                                  .data = L.data, .ensemble_k = L.k,
                                  .nonfinite = nonfinite, .state_damage = damage};
        snprintf(r.info.optimizer, sizeof r.info.optimizer, "%s", L.optimizer);
        snprintf(r.info.run, sizeof r.info.run, "%s", L.run), r.info.run_id = L.run_id;
        snprintf(r.info.nonfinite_tensor, sizeof r.info.nonfinite_tensor, "%s", first_bad);
        r.meta = L.meta;
        r.n_meta = L.n_meta;
        L.meta = NULL;
        L.n_meta = 0;
        *out = r;
    } else {
        r.k = built;   // only what was built is freed
        checkpoint_members_free(&r);
    }
    loader_free(&L);
    return rc;
}

int checkpoint_load_members(const char *path, const Backend *be, CheckpointMembers *out, Err *err) {
    if (!path || !*path) return err_set(err, "checkpoint load: no file name given");
    Loader L = {.path = path, .fd = -1, .tokenizer = -1};
    return load_members(&L, be, out, err);
}

int checkpoint_load_members_bytes(const void *bytes, size_t size, const char *name, const Backend *be,
                                  CheckpointMembers *out, Err *err) {
    if (!name || !*name) name = "(memory)";
    if (!bytes && size) return err_set(err, "%s: no bytes to load", name);
    static const uint8_t empty[1];
    Loader L = {.path = name, .fd = -1, .tokenizer = -1, .bytes = bytes ? bytes : empty, .size = size};
    return load_members(&L, be, out, err);
}

const char *checkpoint_members_meta(const CheckpointMembers *cm, const char *key) {
    for (int i = 0; cm && key && i < cm->n_meta; i++)
        if (strcmp(cm->meta[i].key, key) == 0) return cm->meta[i].value;
    return NULL;
}

void checkpoint_members_free(CheckpointMembers *cm) {
    if (!cm) return;
    for (int i = 0; i < cm->k; i++) {   // a trainer's state is freed against its model: trainers first
        if (cm->trainers && cm->trainers[i].model) trainer_free(&cm->trainers[i]);
        if (cm->models) model_free(&cm->models[i]);
    }
    free(cm->trainers);
    free(cm->models);
    tokenizer_free(cm->tok);
    for (int i = 0; i < cm->n_meta; i++) {
        free(cm->meta[i].key);
        free(cm->meta[i].value);
    }
    free(cm->meta);
    memset(cm, 0, sizeof *cm);
}

int checkpoint_probe(const char *path, CheckpointInfo *info, Err *err) {
    if (!path || !*path) return err_set(err, "no file name given");
    Loader L = {.path = path, .fd = -1, .tokenizer = -1, .probe = 1};
    int rc = open_file(&L, err) || parse_header(&L, err) || parse_metadata(&L, err) ? -1 : 0;
    if (rc == 0 && info) {
        CheckpointInfo r = {.step = L.mm[0].step, .data_rng = L.mm[0].data_rng, .shape = L.shape, .next = L.next,
                            .has_next_seed = L.has_next_seed, .next_seed = L.next_seed,
                            .data = L.data,
                            .file_bytes = L.size, .ensemble_k = L.k};
        snprintf(r.optimizer, sizeof r.optimizer, "%s", L.optimizer);
        snprintf(r.run, sizeof r.run, "%s", L.run), r.run_id = L.run_id;
        for (const cJSON *e = L.header->child; e; e = e->next) {
            const char *name = e->string, *rest = name;
            if (strcmp(name, "tokenizer.model") == 0) r.has_tokenizer = 1;
            if (L.k && split_member(name, L.k, &rest) < 0) continue;
            if (strncmp(rest, "optim.", 6) == 0) r.has_optim = 1;
            const char *dt = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "dtype"));
            if (dt && strcmp(dt, "BF16") == 0) r.dtype = CHECKPOINT_BF16;
        }
        *info = r;
    }
    loader_free(&L);
    return rc;
}

int checkpoint_is_safetensors(const char *path) {
    unsigned char head[9];
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return 0;   // a pipe's open would wait
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t got = fread(head, 1, sizeof head, f);
    int ok = got == sizeof head && fseek(f, 0, SEEK_END) == 0;
    long size = ok ? ftell(f) : -1;
    fclose(f);
    if (!ok || size < 9 || head[8] != '{') return 0;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | head[i];
    return n <= (uint64_t)size - 8;
}
