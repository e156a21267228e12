// test_checkpoint_fuzz.c — a seeded mutation fuzzer for the checkpoint loader: at least 100 000
// mutants of four small valid checkpoints (F32 with optimizer state, BF16, F32 model only, and a
// two-member WASH ensemble through ensemble_load_bytes) go through checkpoint_load_bytes, each in a buffer of exactly its size so that AddressSanitizer
// sees any read past the end; every 97th also goes through a file and checkpoint_load, which must
// agree. Mutations: byte and bit flips, truncations, insertions, deletions, header-length
// rewrites, JSON splices (tokens replaced by hostile values, header pieces copied elsewhere,
// entries duplicated) with the length fixed up, and data_offsets moved. A refusal must carry a
// one-line message and leave the caller's objects alone; a load must give a model that runs
// model_forward (finite or not). LRSH_FUZZ_ITERS and LRSH_FUZZ_SEED change the run.
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "test.h"
#include "../engine/checkpoint.h"
#include "../engine/ensemble.h"
#include "../engine/model_internal.h"
#include "../engine/rng.h"

static const Backend *be;

typedef struct { uint8_t *p; size_t n, cap; } Buf;

static void buf_reserve(Buf *b, size_t n) {
    if (n <= b->cap) return;
    b->cap = n * 2 + 64;
    b->p = realloc(b->p, b->cap);
    if (!b->p) abort();
}
static void buf_set(Buf *b, const void *p, size_t n) { buf_reserve(b, n); memcpy(b->p, p, n); b->n = n; }
static void buf_insert(Buf *b, size_t at, const void *p, size_t n) {
    buf_reserve(b, b->n + n);
    memmove(b->p + at + n, b->p + at, b->n - at);
    memcpy(b->p + at, p, n);
    b->n += n;
}
static void buf_erase(Buf *b, size_t at, size_t n) {
    memmove(b->p + at, b->p + at + n, b->n - at - n);
    b->n -= n;
}

static uint64_t rng;
static size_t below(size_t n) { return n ? (size_t)(rng_next(&rng) % n) : 0; }

static uint64_t header_len(const Buf *b) {
    uint64_t n = 0;
    for (int i = 0; i < 8 && i < (int)b->n; i++) n |= (uint64_t)b->p[i] << (8 * i);
    return n;
}
static void set_header_len(Buf *b, uint64_t n) {
    for (int i = 0; i < 8 && i < (int)b->n; i++) b->p[i] = (uint8_t)(n >> (8 * i));
}
// The JSON header's extent in b when the length field is still believable, else [8, n).
static void header_span(const Buf *b, size_t *lo, size_t *hi) {
    uint64_t n = header_len(b);
    *lo = 8;
    *hi = b->n >= 8 && n <= b->n - 8 ? 8 + (size_t)n : b->n;
    if (*hi < *lo) *hi = *lo;
}
// Somewhere in the header most of the time (where the parser lives), anywhere otherwise.
static size_t pick_offset(const Buf *b) {
    size_t lo, hi;
    header_span(b, &lo, &hi);
    if (hi > lo && below(4)) return lo + below(hi - lo);
    return below(b->n);
}

static const char *const hostile[] = {
    "-1", "0", "1", "2", "7", "8", "-0", "1e308", "-1e308", "1e-320", "NaN", "Infinity", "4294967296",
    "2147483647", "2147483648", "-2147483649", "9007199254740993", "18446744073709551615",
    "18446744073709551616", "3.5", "1e3", "0x10", "\"\"", "\"F16\"", "\"BF16\"", "\"U8\"", "\"F64\"",
    "\"F32\"", "null", "true", "[]", "{}", "[0]", "[1,2,3]", "[[1]]", "[0,0]", "[-1,4]",
    "\"\\u0000\"", "\"\\ud800\"", "\"\xff\xfe\"", "\"%s%n%s\"", "\"__metadata__\"", "\"lrsh\"",
    "\"tokenizer.model\"", "\"optim.m.embed\"", "\"embed\"", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    "{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}", "\"{\\\"dim\\\":8}\"", ",", ":", "\"", "\\", "}",
};

// The span of the JSON token (number, string, literal, or bracket) at or after i in [lo, hi).
static int token_at(const Buf *b, size_t lo, size_t hi, size_t i, size_t *t0, size_t *t1) {
    const uint8_t *p = b->p;
    while (i < hi && (p[i] == ' ' || p[i] == ',' || p[i] == ':')) i++;
    if (i >= hi) return 0;
    *t0 = i;
    if (p[i] == '"') {
        size_t j = i + 1;
        while (j < hi && p[j] != '"') j += p[j] == '\\' ? 2 : 1;
        *t1 = j < hi ? j + 1 : hi;
    } else if (p[i] == '{' || p[i] == '}' || p[i] == '[' || p[i] == ']') {
        *t1 = i + 1;
    } else {
        size_t j = i;
        while (j < hi && p[j] != ',' && p[j] != ']' && p[j] != '}' && p[j] != ':' && p[j] != ' ') j++;
        *t1 = j > i ? j : i + 1;
    }
    (void)lo;
    return 1;
}

// After a JSON edit: the length field tells the truth again (most of the time).
static void fix_length(Buf *b, uint64_t old_len, long delta) {
    if (below(8)) set_header_len(b, old_len + (uint64_t)delta);   // unsigned: wraps, no UB
}

enum { M_FLIP, M_BITS, M_TRUNC, M_INSERT, M_DELETE, M_HEADER_LEN, M_SPLICE_TOKEN, M_SPLICE_COPY,
       M_OFFSETS, M_NUMBER_NUDGE, M_KINDS };
static const char *const kind_name[M_KINDS] = {"byte flips", "bit flips", "truncations", "insertions", "deletions",
                                               "header-length rewrites", "JSON token splices", "JSON piece copies",
                                               "data_offsets moves", "number nudges"};

static void mutate_once(Buf *b, int kind) {
    size_t lo, hi;
    header_span(b, &lo, &hi);
    uint64_t hlen = header_len(b);
    switch (kind) {
    case M_FLIP: {
        int n = 1 + (int)below(8);
        for (int i = 0; i < n && b->n; i++) b->p[pick_offset(b)] = (uint8_t)rng_next(&rng);
        break;
    }
    case M_BITS: {
        int n = 1 + (int)below(4);
        for (int i = 0; i < n && b->n; i++) b->p[pick_offset(b)] ^= (uint8_t)(1u << below(8));
        break;
    }
    case M_TRUNC: {
        size_t r = below(4);
        b->n = r == 0 ? below(16) : r == 1 ? below(hi + 1) : below(b->n + 1);
        break;
    }
    case M_INSERT: {
        uint8_t junk[64];
        size_t n = 1 + below(below(2) ? 4 : sizeof junk);
        for (size_t i = 0; i < n; i++) junk[i] = below(2) ? (uint8_t)rng_next(&rng) : (uint8_t)" {}[]\",:0123456789e-"[below(20)];
        size_t at = pick_offset(b);
        buf_insert(b, at, junk, n);
        if (at >= lo && at < hi) fix_length(b, hlen, (long)n);
        break;
    }
    case M_DELETE: {
        if (!b->n) break;
        size_t at = pick_offset(b), n = 1 + below(below(2) ? 4 : 256);
        if (n > b->n - at) n = b->n - at;
        buf_erase(b, at, n);
        if (at >= lo && at + n <= hi) fix_length(b, hlen, -(long)n);
        break;
    }
    case M_HEADER_LEN: {
        static const uint64_t fixed[] = {0, 1, 2, 7, 8, 0x7fffffff, 0x80000000ull, 0xffffffffull, 100u << 20,
                                         (100u << 20) - 1, UINT64_MAX, UINT64_MAX - 7, 1ull << 63};
        size_t r = below(5);
        uint64_t v = r == 0 ? fixed[below(sizeof fixed / sizeof fixed[0])]
                   : r == 1 ? rng_next(&rng)
                   : r == 2 ? (uint64_t)b->n - 8 + below(3) - 1
                   : hlen + below(33) - 16;
        set_header_len(b, v);
        break;
    }
    case M_SPLICE_TOKEN: {
        size_t t0, t1;
        if (!token_at(b, lo, hi, lo + below(hi - lo), &t0, &t1)) break;
        const char *s = hostile[below(sizeof hostile / sizeof hostile[0])];
        size_t n = strlen(s);
        buf_erase(b, t0, t1 - t0);
        buf_insert(b, t0, s, n);
        if (below(16)) set_header_len(b, hlen + n - (t1 - t0));
        break;
    }
    case M_SPLICE_COPY: {   // a piece of the header copied over or into another place in it
        if (hi <= lo + 2) break;
        size_t a0, a1, c0, c1;
        if (!token_at(b, lo, hi, lo + below(hi - lo), &a0, &a1)) break;
        // widen the source to a run of tokens (whole entries, sometimes)
        size_t extra = below(8);
        for (size_t i = 0; i < extra && a1 < hi; i++) {
            size_t x0, x1;
            if (!token_at(b, lo, hi, a1, &x0, &x1)) break;
            a1 = x1;
        }
        size_t n = a1 - a0;
        uint8_t *piece = malloc(n);
        memcpy(piece, b->p + a0, n);
        int replace = (int)below(2);
        if (!token_at(b, lo, hi, lo + below(hi - lo), &c0, &c1)) { free(piece); break; }
        long delta = (long)n;
        if (replace) { buf_erase(b, c0, c1 - c0); delta -= (long)(c1 - c0); }
        else if (below(2)) buf_insert(b, c0, ",", 1), c0++, delta++;
        buf_insert(b, c0, piece, n);
        free(piece);
        if (below(16)) set_header_len(b, hlen + (uint64_t)delta);
        break;
    }
    case M_OFFSETS: {   // one number inside some "data_offsets":[a,b] moved a little or a lot
        size_t start = lo + below(hi - lo), at = 0;
        static const char key[] = "\"data_offsets\":[";
        for (size_t i = start; i + sizeof key - 1 < hi; i++)
            if (memcmp(b->p + i, key, sizeof key - 1) == 0) { at = i + sizeof key - 1; break; }
        if (!at) break;
        if (below(2)) {
            while (at < hi && b->p[at] != ',') at++;
            at++;
        }
        size_t t0, t1;
        if (!token_at(b, lo, hi, at, &t0, &t1)) break;
        char old[32], num[32];
        size_t k = t1 - t0 < 31 ? t1 - t0 : 31;
        memcpy(old, b->p + t0, k);
        old[k] = 0;
        // strtol saturates (atol's overflow is undefined); the clamp keeps v ± 128 representable
        long v = strtol(old, NULL, 10), data = (long)(b->n - hi), r = (long)below(6);
        if (v > LONG_MAX / 2) v = LONG_MAX / 2;
        if (v < LONG_MIN / 2) v = LONG_MIN / 2;
        long nv = r == 0 ? v + (long)below(9) - 4 : r == 1 ? 0 : r == 2 ? data : r == 3 ? data + 4
                : r == 4 ? v + 4 * ((long)below(65) - 32) : (long)below((size_t)data + 1);
        int len = snprintf(num, sizeof num, "%ld", nv);
        buf_erase(b, t0, t1 - t0);
        buf_insert(b, t0, num, (size_t)len);
        set_header_len(b, hlen + (size_t)len - (t1 - t0));
        break;
    }
    case M_NUMBER_NUDGE: {   // a digit changed, keeping the length (shapes, config values, offsets)
        for (int tries = 0; tries < 16 && hi > lo; tries++) {
            size_t i = lo + below(hi - lo);
            if (b->p[i] >= '0' && b->p[i] <= '9') { b->p[i] = (uint8_t)('0' + below(10)); break; }
        }
        break;
    }
    }
}

// A small valid checkpoint: 2 layers, tiny dims (a few KB). The trainer is spectron's: its state
// has every kind of tensor (momentum, AdamW moments, required and diagnostic-only vectors).
static uint8_t *seed_file(const char *path, int with_trainer, CheckpointDtype dtype, size_t *size) {
    Err err;
    Model m;
    Trainer tr;
    ModelConfig c = {.dim = 8, .layers = 2, .heads = 2, .kv_heads = 1, .ffn = 12, .seq = 6, .vocab = 11,
                     .rank = 2, .rank_ratio = 0.25f, .rope_theta = 10000.0f, .norm_eps = 1e-5f, .seed = 9};
    if (dtype == CHECKPOINT_BF16) c.rank = 0;
    CHECK_OK(model_build(&m, &c, be, &err));
    OptimConfig oc;
    if (with_trainer) {
        CHECK_OK(optim_config_default(&oc, "spectron", &err));
        CHECK_OK(trainer_build(&tr, &m, &oc, 4, &err));
    }
    CheckpointOptions o = {.dtype = dtype, .include_optim = with_trainer};
    CHECK_OK(checkpoint_save(path, &m, with_trainer ? &tr : NULL, NULL, &o, &err));
    if (with_trainer) trainer_free(&tr);
    model_free(&m);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)n);
    *size = fread(p, 1, (size_t)n, f);
    fclose(f);
    return p;
}

// A two-member ensemble of the same tiny config (AdamW, WASH on, one step in): its file carries
// member prefixes, per-member metadata and the ensemble's own keys.
static uint8_t *ensemble_seed_file(const char *path, size_t *size) {
    Err err;
    ModelConfig c = {.dim = 8, .layers = 2, .heads = 2, .kv_heads = 1, .ffn = 12, .seq = 6, .vocab = 11,
                     .rank = 2, .rank_ratio = 0.25f, .rope_theta = 10000.0f, .norm_eps = 1e-5f, .seed = 9};
    OptimConfig oc;
    CHECK_OK(optim_config_default(&oc, "adamw", &err));
    uint64_t is[2] = {9, 10}, ds[2] = {4, 5};
    EnsembleSpec sp = {.k = 2, .init_seeds = is, .data_seeds = ds, .mix_seed = 3};
    Ensemble e;
    CHECK_OK(ensemble_build(&e, &c, be, &oc, &sp, &err));
    if (err.msg[0]) return NULL;
    EnsembleCoupling cp = ensemble_coupling_default();
    cp.method = ENSEMBLE_WASH;
    cp.p = 0.5f;
    CHECK_OK(ensemble_set_coupling(&e, &cp, &err));
    CHECK_OK(ensemble_save(path, &e, NULL, NULL, &err));
    ensemble_free(&e);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)n);
    *size = fread(p, 1, (size_t)n, f);
    fclose(f);
    return p;
}

static int one_line(const char *s) {
    for (; *s; s++) if ((unsigned char)*s < 0x20) return 0;
    return 1;
}

static long counts[M_KINDS][2];   // [first mutation kind][loaded]
static long refused, loaded, loaded_with_trainer, forward_ok, forward_nonfinite, via_file, ensembles_loaded;

// An ensemble mutant: refused with a message and *out untouched, or an ensemble whose members run.
static void try_ensemble_mutant(const uint8_t *bytes, size_t n, int kind, const char *file) {
    Err err = {{0}};
    Ensemble e, sentinel;
    memset(&e, 0x5a, sizeof e);
    memset(&sentinel, 0x5a, sizeof sentinel);
    int rc = ensemble_load_bytes(bytes, n, "fuzz", be, &e, NULL, NULL, &err);
    if (file) {
        Err err2 = {{0}};
        Ensemble e2;
        FILE *f = fopen(file, "wb");
        if (f) { if (n) fwrite(bytes, 1, n, f); fclose(f); }
        int rc2 = ensemble_load(file, be, &e2, NULL, NULL, &err2);
        const char *why = strchr(err.msg, ':'), *why2 = strchr(err2.msg, ':');
        CHECK((rc == 0) == (rc2 == 0) && (rc == 0 || (why && why2 && strcmp(why, why2) == 0)),
              "ensemble: file and bytes disagree: '%s' vs '%s'", err.msg, err2.msg);
        if (rc2 == 0) ensemble_free(&e2);
        via_file++;
    }
    if (rc != 0) {
        refused++;
        counts[kind][0]++;
        CHECK(err.msg[0] && one_line(err.msg), "an ensemble refusal without a one-line message (mutation %s)",
              kind_name[kind]);
        CHECK(memcmp(&e, &sentinel, sizeof e) == 0, "a refused ensemble load wrote the caller's object: '%s'", err.msg);
        return;
    }
    loaded++;
    ensembles_loaded++;
    counts[kind][1]++;
    for (int i = 0; i < e.k; i++) {
        const ModelConfig *c = &e.members[i].cfg;
        int T = c->seq < 4 ? c->seq : 4;
        int32_t toks[5];
        for (int t = 0; t <= T; t++) toks[t] = (int32_t)((t * 7 + 3) % c->vocab);
        float loss = 0;
        Err ferr;
        if (model_forward(&e.members[i], toks, 1, T, &loss, &ferr) == 0) forward_ok++;
        else forward_nonfinite++;
        CHECK(e.trainers[i].model == &e.members[i], "a loaded member's trainer is its own");
    }
    ensemble_free(&e);
}

// Load one mutant; check what a caller may rely on.
static void try_mutant(const uint8_t *bytes, size_t n, int kind, const char *file) {
    Err err = {{0}};
    Model m, sentinel;
    Trainer tr;
    Tokenizer *tok = (Tokenizer *)&sentinel;
    memset(&m, 0x5a, sizeof m);
    memset(&sentinel, 0x5a, sizeof sentinel);
    CheckpointInfo info;
    int rc = checkpoint_load_bytes(bytes, n, "fuzz", be, &m, &tr, &tok, &info, &err);
    if (file) {   // the path entry point must agree
        Err err2 = {{0}};
        Model m2;
        FILE *f = fopen(file, "wb");
        if (f) { if (n) fwrite(bytes, 1, n, f); fclose(f); }
        int rc2 = checkpoint_load(file, be, &m2, NULL, NULL, NULL, &err2);
        const char *why = strchr(err.msg, ':'), *why2 = strchr(err2.msg, ':');
        CHECK((rc == 0) == (rc2 == 0) && (rc == 0 || (why && why2 && strcmp(why, why2) == 0)),
              "file and bytes disagree: '%s' vs '%s'", err.msg, err2.msg);
        if (rc2 == 0) model_free(&m2);
        via_file++;
    }
    if (rc != 0) {
        refused++;
        counts[kind][0]++;
        CHECK(err.msg[0] && one_line(err.msg), "a refusal without a one-line message (mutation %s)", kind_name[kind]);
        CHECK(memcmp(&m, &sentinel, sizeof m) == 0 && tok == (Tokenizer *)&sentinel,
              "a refused load wrote the caller's objects: '%s'", err.msg);
        return;
    }
    loaded++;
    counts[kind][1]++;
    if (tr.model) loaded_with_trainer++;
    const ModelConfig *c = &m.cfg;
    int T = c->seq < 4 ? c->seq : 4;
    int32_t toks[5];
    for (int i = 0; i <= T; i++) toks[i] = (int32_t)((i * 7 + 3) % c->vocab);
    float loss = 0;
    Err ferr;
    if (model_forward(&m, toks, 1, T, &loss, &ferr) == 0) forward_ok++;
    else {
        CHECK(ferr.msg[0] != 0, "a failed forward without a message");
        forward_nonfinite++;
    }
    if (tr.model) trainer_free(&tr);
    if (tok) tokenizer_free(tok);
    model_free(&m);
}

static void test_fuzz_loader(void) {
    char dir[] = "/tmp/lrsh-fuzz-XXXXXX";
    if (!mkdtemp(dir)) { CHECK(0, "mkdtemp"); return; }
    char path[4][64], mutant_path[64];
    size_t size[4];
    uint8_t *seed[4];
    for (int i = 0; i < 4; i++) snprintf(path[i], sizeof path[i], "%s/seed%d.safetensors", dir, i);
    snprintf(mutant_path, sizeof mutant_path, "%s/mutant.safetensors", dir);
    seed[0] = seed_file(path[0], 1, CHECKPOINT_F32, &size[0]);
    seed[1] = seed_file(path[1], 0, CHECKPOINT_BF16, &size[1]);
    seed[2] = seed_file(path[2], 0, CHECKPOINT_F32, &size[2]);
    seed[3] = ensemble_seed_file(path[3], &size[3]);
    if (!seed[0] || !seed[1] || !seed[2] || !seed[3]) { CHECK(0, "could not write the seed files"); return; }
    Err err;
    for (int i = 0; i < 3; i++) {   // the unmutated seeds load, both ways
        Model m;
        CHECK_OK(checkpoint_load_bytes(seed[i], size[i], NULL, be, &m, NULL, NULL, NULL, &err));
        if (!err.msg[0]) model_free(&m);
        CHECK_OK(checkpoint_load(path[i], be, &m, NULL, NULL, NULL, &err));
        if (!err.msg[0]) model_free(&m);
    }
    Ensemble ens;
    CHECK_OK(ensemble_load_bytes(seed[3], size[3], NULL, be, &ens, NULL, NULL, &err));
    if (!err.msg[0]) ensemble_free(&ens);
    const char *e = getenv("LRSH_FUZZ_ITERS"), *s = getenv("LRSH_FUZZ_SEED");
    long iters = e && atol(e) > 0 ? atol(e) : 100000;
    rng = s ? strtoull(s, NULL, 10) : 0x5eedf00dull;
    printf("  seeds: %zu, %zu, %zu, %zu (ensemble) bytes; %ld mutants, seed %llu\n", size[0], size[1], size[2], size[3], iters,
           (unsigned long long)rng);
    Buf b = {0};
    clock_t t0 = clock();
    for (long it = 0; it < iters; it++) {
        int which = (int)below(4);
        buf_set(&b, seed[which], size[which]);
        int first = (int)below(M_KINDS), stack = below(4) ? 1 : 2 + (int)below(3);
        for (int k = 0; k < stack; k++) mutate_once(&b, k == 0 ? first : (int)below(M_KINDS));
        // exactly n bytes, so any read past the end is a sanitizer report
        uint8_t *exact = malloc(b.n ? b.n : 1);
        if (b.n) memcpy(exact, b.p, b.n);
        if (which == 3) try_ensemble_mutant(exact, b.n, first, it % 97 == 0 ? mutant_path : NULL);
        else try_mutant(exact, b.n, first, it % 97 == 0 ? mutant_path : NULL);
        free(exact);
        if (test_failed_checks > 20) { printf("  stopping after %ld mutants: too many failures\n", it + 1); break; }
    }
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    printf("  %ld refused with a message, %ld loaded (%ld with optimizer state, %ld ensembles); forward: %ld finite, "
           "%ld not; %ld also via a file; %.1f s CPU\n", refused, loaded, loaded_with_trainer, ensembles_loaded,
           forward_ok, forward_nonfinite, via_file, secs);
    for (int k = 0; k < M_KINDS; k++)
        printf("    %-24s %7ld refused %7ld loaded\n", kind_name[k], counts[k][0], counts[k][1]);
    CHECK(refused + loaded >= (iters < 100000 ? iters : 100000), "ran every mutant (%ld)", refused + loaded);
    CHECK(refused > iters / 4 && loaded > iters / 50, "the fuzzer reaches both outcomes (%ld refused, %ld loaded)",
          refused, loaded);
    free(b.p);
    CHECK(ensembles_loaded > 0, "some ensemble mutants load (%ld)", ensembles_loaded);
    for (int i = 0; i < 4; i++) { free(seed[i]); unlink(path[i]); }
    unlink(mutant_path);
    rmdir(dir);
}

int main(void) {
    be = backend_cpu(1);
    RUN(test_fuzz_loader);
    return TEST_SUMMARY();
}
