// bench_cuda — the CUDA backend against the CPU: sgemm peak in fp32, tf32 and bf16; training
// tokens/s (and MFU against the same precision's sgemm peak) for small, base and a
// GPT-2-small-shaped model, dense and factorized at rank dim/4 (GPT-2 in tf32 and bf16 at batch
// 4, in bf16 at batch 16 with Spectron's share of the step and a per-kernel profile of one
// step, with the default attention and, last of all rows, with flash attention on the tensor
// cores);
// batch-1 decode tokens/s for base (GPU and CPU) and GPT-2 (GPU), on the GPU with and without
// the recorded graph of a decoded token, through cuBLAS and the step kernels or lrsh's fused
// kernels (LRSH_CUDA_FUSED), and with or without programmatic dependent launch (LRSH_CUDA_PDL): the
// decode modes below (LRSH_BENCH_SAFE=1: only the direct ones, no flash rows); and the cost of one more small kernel in a decoded token's chain (the
// chain rows). Ends with a summary table and issue 9's speed targets
// next to what this run measured. Without a GPU it says why and exits 0 (make bench runs it too).
// Usage: bench_cuda [quick|targets]   (quick: fewer steps and no GPT-2 shape, for a smoke run;
// targets: the rows issue 9's targets read — the bf16 peak, GPT-2 training at batch 16 with
// Spectron's share, decoding without the knobs' rows — with the chain rows, in about half the
// time). LRSH_BENCH_SECONDS=N
// skips the rows that would start after N seconds.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../engine/bench.h"
#include "../engine/model.h"
#include "../engine/rng.h"
#include "../engine/train.h"
#include "../kernels/cpu/blas_check.h"
#include "../kernels/cuda/backend_cuda.h"
#include "../kernels/kernels.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// LRSH_BENCH_SECONDS=N: a row that would start N seconds or more after the start is skipped
// (and counted in the summary), so that a run under an outside time limit — check.sh on a lent
// machine — still ends with its summary and targets table instead of being killed mid-row.
static double bench_start, bench_seconds;
static int rows_skipped;

static int out_of_time(const char *what) {
    if (bench_seconds <= 0 || now() - bench_start < bench_seconds) return 0;
    if (rows_skipped++ == 0)
        printf("bench_cuda: %.0f s (LRSH_BENCH_SECONDS) are up: \"%s\" and every later row skipped\n", bench_seconds,
               what);
    return 1;
}

// GFLOP/s of C(n×n) = A·B at the current precision: median-free best of 3 timed batches,
// synchronized before and after each (the GPU runs asynchronously).
static double gemm_gflops(const Backend *be, int n) {
    size_t bytes = sizeof(float) * (size_t)n * n;
    float *a = be->alloc(bytes), *b = be->alloc(bytes), *c = be->alloc(bytes);
    double best = 0;
    if (a && b && c) {
        float *h = malloc(bytes);
        uint64_t s = 3;
        for (size_t i = 0; i < (size_t)n * n; i++) h[i] = rng_uniform(&s) - 0.5f;   // not zeros: zeros run faster
        be->upload(a, h, bytes);
        be->upload(b, h, bytes);
        free(h);
        be->gemm(0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);   // warm-up: handle, kernels chosen
        backend_cuda_synchronize();
        for (int rep = 0; rep < 3; rep++) {
            int iters = 0;
            double t0 = now(), t;
            do {
                for (int i = 0; i < 4; i++) be->gemm(0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
                iters += 4;
                backend_cuda_synchronize();
            } while ((t = now() - t0) < 0.3);
            double g = 2.0 * n * n * (double)n * iters / t / 1e9;
            if (g > best) best = g;
        }
    }
    be->release(a); be->release(b); be->release(c);
    return best;
}

typedef struct Row {
    char what[96], backend[8], precision[8];
    double value, extra;   // tok/s (or GFLOP/s), and MFU or a ratio
} Row;

static Row rows[128];
static int n_rows;

static void add_row(const char *what, const char *backend, const char *precision, double value, double extra) {
    if (n_rows >= (int)(sizeof rows / sizeof rows[0])) return;
    Row *r = &rows[n_rows++];
    snprintf(r->what, sizeof r->what, "%s", what);
    snprintf(r->backend, sizeof r->backend, "%s", backend);
    snprintf(r->precision, sizeof r->precision, "%s", precision);
    r->value = value;
    r->extra = extra;
}

static const Row *find_row(const char *what, const char *backend, const char *precision) {
    for (int i = 0; i < n_rows; i++)
        if (!strcmp(rows[i].what, what) && !strcmp(rows[i].backend, backend) && !strcmp(rows[i].precision, precision))
            return &rows[i];
    return NULL;
}

// How a decoded token runs on the GPU: its row's name, then the graphs, fused and pdl switches
// and two of gemv.cu's knobs (backend_cuda_tune; 0: the backend's default): fold_split and
// gemv_warps_per_sm. The last four rows vary the knobs around the default way.
typedef struct DecodeMode {
    const char *name;
    int graphs, fused, pdl, fold_split, warps_per_sm;
} DecodeMode;

static const DecodeMode decode_modes[] = {
    {"graph", 1, 0, 0, 0, 0},
    {"graph pdl", 1, 0, 1, 0, 0},
    {"graph fused", 1, 1, 0, 0, 0},
    {"graph fused pdl", 1, 1, 1, 0, 0},
    {"direct", 0, 0, 0, 0, 0},
    {"direct fused", 0, 1, 0, 0, 0},
    {"graph fused pdl fold<=2", 1, 1, 1, 2, 0},
    {"graph fused pdl fold<=1", 1, 1, 1, 1, 0},
    {"graph fused pdl wps 8", 1, 1, 1, 0, 8},
    {"graph fused pdl wps 32", 1, 1, 1, 0, 32},
};
#define N_DECODE_MODES (int)(sizeof decode_modes / sizeof decode_modes[0])

// A way beyond the plainest (direct, unfused: what the first card ran), timed in the second
// pass, so that a kernel's fault — it loses the CUDA context — costs only the rows after it.
static int newer_mode(const DecodeMode *m) { return m->graphs || m->fused || m->pdl; }

// A row that turns one of gemv.cu's knobs away from its default.
static int tuned_mode(const DecodeMode *m) { return m->fold_split || m->warps_per_sm; }

// One target's line: the measured value as a percentage or a ratio, or "not measured".
static void target_line(const char *what, int measured, double value, int percent, const char *asked) {
    if (!measured) printf("%-64s %12s\n", what, "not measured");
    else if (percent) printf("%-64s %11.1f%% %8s\n", what, 100 * value, asked);
    else printf("%-64s %11.2fx %8s\n", what, value, asked);
}

// Issue 9's speed targets against the rows this run measured (a quick run measures none).
static void print_targets(void) {
    const Row *dense = find_row("train gpt2 dense b16", "cuda", "bf16");
    const Row *fact = find_row("train gpt2 factorized b16", "cuda", "bf16");
    const Row *spectron = find_row("spectron share gpt2 factorized b16", "cuda", "bf16");
    printf("\n%-64s %12s %8s\n", "targets (issue 9, GPT-2 shape)", "measured", "asked");
    target_line("bf16 training, dense, batch 16: MFU", dense != NULL, dense ? dense->extra : 0, 1, ">= 35%");
    double train_ratio = dense && fact ? fact->value / dense->value : 0;
    target_line("bf16 training, batch 16: factorized / dense tok/s", dense && fact, train_ratio, 0, ">= 1.4x");
    target_line("Spectron's share of a factorized step, batch 16", spectron != NULL, spectron ? spectron->extra : 0, 1,
                "<= 5%");
    const Row *dense_flash = find_row("train gpt2 dense b16 flash", "cuda", "bf16");
    const Row *fact_flash = find_row("train gpt2 factorized b16 flash", "cuda", "bf16");
    const Row *spectron_flash = find_row("spectron share gpt2 factorized b16 flash", "cuda", "bf16");
    target_line("the same, flash attention: MFU", dense_flash != NULL, dense_flash ? dense_flash->extra : 0, 1,
                ">= 35%");
    target_line("the same, flash attention: factorized / dense tok/s", dense_flash && fact_flash,
                dense_flash && fact_flash ? fact_flash->value / dense_flash->value : 0, 0, ">= 1.4x");
    target_line("the same, flash attention: Spectron's share", spectron_flash != NULL,
                spectron_flash ? spectron_flash->extra : 0, 1, "<= 5%");
    for (int i = 0; i < N_DECODE_MODES; i++) {
        char d[80], f[80], what[96];
        snprintf(d, sizeof d, "decode gpt2 dense %s", decode_modes[i].name);
        snprintf(f, sizeof f, "decode gpt2 factorized %s", decode_modes[i].name);
        snprintf(what, sizeof what, "batch-1 decode (%s): factorized / dense tok/s", decode_modes[i].name);
        const Row *rd = find_row(d, "cuda", "fp32"), *rf = find_row(f, "cuda", "fp32");
        if (tuned_mode(&decode_modes[i]) && !(rd && rf)) continue;   // a knob's row `targets` leaves out
        target_line(what, rd && rf, rd && rf ? rf->value / rd->value : 0, 0, ">= 1.5x");
    }
}

static ModelConfig shape_config(const char *shape, int factorized, Err *err, int *ok) {
    ModelConfig c;
    *ok = 1;
    if (strcmp(shape, "gpt2") == 0) {
        c = (ModelConfig){.dim = 768, .layers = 12, .heads = 12, .kv_heads = 12, .ffn = 3072, .seq = 1024,
                          .vocab = 32768, .rank = 0, .rank_ratio = 0.25f, .rope_theta = 10000.0f, .norm_eps = 1e-5f,
                          .seed = 1};
    } else if (model_config_preset(&c, shape, err)) {
        *ok = 0;
        return c;
    } else {
        c.vocab = 8192;
    }
    c.rank = factorized ? c.dim / 4 : 0;
    return c;
}

// The profiled step's rows (kernels/profile.h), costliest first.
static void print_profile(const Profile *p) {
    printf("one step, every call timed to completion: %.1f ms\n", 1e3 * p->seconds);
    for (int i = 0; i < p->n && i < 16; i++) {
        const ProfileRow *r = &p->rows[i];
        printf("  %-17s %-19s %6ld calls %9.2f ms %5.1f%%\n", r->phase, r->op, r->calls, 1e3 * r->seconds,
               100 * r->seconds / p->seconds);
    }
    fflush(stdout);
}

// Training tokens/s with `optim` on random tokens, after one warm-up step; MFU against peak;
// for an optimizer other than AdamW also its share of the step; with profile, one more step
// with every Backend call timed.
static int train_row(const Backend *be, const char *shape, int factorized, int batch, int steps, double peak,
                     const char *optim, int profile) {
    Err err;
    int ok;
    if (out_of_time(shape)) return 0;
    ModelConfig c = shape_config(shape, factorized, &err, &ok);
    if (!ok) { fprintf(stderr, "bench_cuda: %s\n", err.msg); return -1; }
    OptimConfig oc;
    Model m;
    Trainer tr;
    if (optim_config_default(&oc, optim, &err) || model_build(&m, &c, be, &err)) {
        fprintf(stderr, "bench_cuda: %s %s on %s: %s\n", shape, factorized ? "factorized" : "dense", be->name, err.msg);
        return -1;
    }
    if (trainer_build(&tr, &m, &oc, 1, &err)) {
        fprintf(stderr, "bench_cuda: %s\n", err.msg);
        model_free(&m);
        return -1;
    }
    long n_tok = (long)batch * (c.seq + 1) * 16;
    uint16_t *store = malloc(sizeof(uint16_t) * n_tok);
    uint64_t s = 5;
    for (long i = 0; i < n_tok; i++) store[i] = (uint16_t)(rng_next(&s) % (uint64_t)c.vocab);
    Dataset ds = {.vocab_size = c.vocab, .token_bytes = 2, .n_tokens = n_tok, .n_train = n_tok, .tokens = store};
    StepStats st;
    int rc = trainer_step(&tr, &ds, batch, c.seq, 1, &st, &err);   // warm-up: activations, cuBLAS heuristics
    be->synchronize();
    double t0 = now(), optim_share = 0;
    for (int i = 0; i < steps && rc == 0; i++) {
        rc = trainer_step(&tr, &ds, batch, c.seq, 1, &st, &err);
        optim_share += st.optim_fraction / steps;
    }
    be->synchronize();
    double seconds = now() - t0;
    const char *cuda_err = strcmp(be->name, "cuda") == 0 ? backend_cuda_last_error() : NULL;
    if (rc == 0 && !cuda_err) {
        ModelCounts k = model_counts(&m, batch, c.seq);
        double tps = (double)batch * c.seq * steps / seconds;
        double mfu = peak > 0 ? tps * k.train_flops_per_token / 1e9 / peak : 0;
        const char *prec = strcmp(be->name, "cuda") == 0 ? backend_cuda_precision() : "fp32";
        const char *mode = strcmp(be->name, "cuda") == 0 ? backend_cuda_attention() : "gemm";
        printf("train  %-6s %-10s %-4s %-4s %-5s %-8s batch %2d seq %4d  %10.0f tok/s  MFU %5.1f%%  optim %4.1f%%  "
               "(%d steps, %.2f s)\n", shape, factorized ? "factorized" : "dense", be->name, prec, mode, optim, batch,
               c.seq, tps, 100 * mfu, 100 * optim_share, steps, seconds);
        fflush(stdout);
        char what[48], mode_suffix[16] = "";   // " flash", " rows": the default (gemm) goes unnamed
        if (strcmp(mode, "gemm") != 0) snprintf(mode_suffix, sizeof mode_suffix, " %s", mode);
        snprintf(what, sizeof what, "train %s %s b%d%s", shape, factorized ? "factorized" : "dense", batch,
                 mode_suffix);
        add_row(what, be->name, prec, tps, mfu);
        if (strcmp(optim, "adamw") != 0) {
            char share[48];
            snprintf(share, sizeof share, "%s share %s %s b%d%s", optim, shape, factorized ? "factorized" : "dense",
                     batch, mode_suffix);
            add_row(share, be->name, prec, tps, optim_share);
        }
        static Profile p;
        if (profile && bench_profile_step(&m, &tr.opt, batch, c.seq, &p, &err) == 0) {
            printf("profile — %s, %s, %s: ", what, prec, optim);
            print_profile(&p);
        }
    } else {
        fprintf(stderr, "bench_cuda: training %s on %s failed: %s\n", shape, be->name, cuda_err ? cuda_err : err.msg);
    }
    free(store);
    trainer_free(&tr);
    model_free(&m);
    return rc == 0 && !cuda_err ? 0 : -1;
}

// Batch-1 decode of shape, on the GPU as mode says (the CPU ignores it).
static int decode_row(const Backend *be, const char *shape, int factorized, const DecodeMode *mode, int profile) {
    Err err;
    int ok;
    char why[256];
    ModelConfig c = shape_config(shape, 0, &err, &ok);
    GenerateBench rs[2], r;
    const int want[2] = {!factorized, factorized};
    int on_gpu = strcmp(be->name, "cuda") == 0;
    if (out_of_time(shape)) return 0;
    if (on_gpu) {
        backend_cuda_set_graphs(mode->graphs ? "on" : "off", why, sizeof why);
        backend_cuda_set_fused(mode->fused ? "on" : "off", why, sizeof why);
        backend_cuda_set_pdl(mode->pdl ? "on" : "off", why, sizeof why);
        backend_cuda_tune("fold_split", mode->fold_split);
        backend_cuda_tune("gemv_warps_per_sm", mode->warps_per_sm);
    }
    if (!ok || bench_generate(be, &c, want, 256, 3, profile, rs, NULL, NULL, &err)) {
        fprintf(stderr, "bench_cuda: decode on %s: %s\n", be->name, err.msg);
        return -1;
    }
    r = rs[factorized];
    // rows are named by how the tokens did run: a failed recording must not pass for a graph row
    char how[64] = "", tuned[24] = "";
    if (mode->fold_split) snprintf(tuned, sizeof tuned, " fold<=%d", mode->fold_split);
    if (mode->warps_per_sm) snprintf(tuned, sizeof tuned, " wps %d", mode->warps_per_sm);
    if (on_gpu)
        snprintf(how, sizeof how, " %.24s%s%s%s", r.decode_path, mode->fused ? " fused" : "", mode->pdl ? " pdl" : "",
                 tuned);
    printf("decode %-6s %-10s %-4s %-24s rank %3d  %10.0f tok/s  prefill %8.0f tok/s\n", shape, r.model, be->name,
           how, r.rank, r.tok_per_s, r.prefill_tok_per_s);
    if (on_gpu && mode->graphs && strcmp(r.decode_path, "graph") != 0)
        fprintf(stderr, "bench_cuda: decode %s %s asked for a graph and ran %s\n", shape, r.model, r.decode_path);
    fflush(stdout);
    char what[96];   // "decode gpt2 factorized direct: recording failed fused pdl fold<=2" fits
    snprintf(what, sizeof what, "decode %.6s %s%s", shape, factorized ? "factorized" : "dense", how);
    add_row(what, be->name, "fp32", r.tok_per_s, 0);
    if (r.profiled) {   // a profile times every call: it runs without the graph
        printf("profile — %s (%d-token prompt, %d decoded): ", what, r.prompt, r.n_tokens);
        print_profile(&r.profile);
    }
    return 0;
}

// ns per call of a chain of CHAIN_CALLS dependent one-row calls (each reads what the one before
// wrote: x → y → x …) recorded as one graph and replayed: what one more small kernel costs a
// decoded token — its launch, the wait for its input, its run — against the time its bytes
// take at the card's bandwidth. kind 0: RMSNorm of one row of 768; 1: a 768×768 one-row
// product (gemv.cu or cuBLAS as the gemv switch says); 2: both, as a decoded token has them
// (row_products: one kernel with fused on, RMSNorm's kernel then cuBLAS's with it off); 3: a
// GPT-2 layer's decode attention (12 heads of 64, cache of 1 024) at position CHAIN_POS, the
// query the last call's output (one kernel with fused on, three with it off). The cache (6 MB)
// stays in L2 here, as it would not beside a model's weights: the kernels' latency, not HBM's.
// Kinds 4 and 5 read their weights from memory as a decoded GPT-2 token does, each call the
// next of CHAIN_LAYERS copies (113 MB, past the 60 MB L2): 4, RMSNorm then the 2 304×768 q/k/v
// product (7.1 MB: 1.65 µs at 4.3 TB/s); 5, SwiGLU then the 768×3 072 down projection (9.4 MB:
// 2.2 µs) — row_products, as above. −1 when the graph cannot be recorded.
#define CHAIN_CALLS 200
#define CHAIN_DIM 768
#define CHAIN_FFN 3072
#define CHAIN_CAP 1024
#define CHAIN_POS 511
#define CHAIN_LAYERS 12

typedef struct ChainBuffers {
    float *x, *y, *up, *rstd, *gain, *xhat;      // (3 072) each but rstd (1)
    float *w[CHAIN_LAYERS];                      // (3 072 × 768) each
    float *k, *v, *k_cache, *v_cache, *scratch;  // (768), (768), (1 024 × 768) × 2, decode's scratch
    int32_t *pos;                                // (1) on the device
} ChainBuffers;

static void chain_calls(const Backend *be, int kind, const ChainBuffers *b) {
    for (int i = 0; i < CHAIN_CALLS; i++) {
        float *in = i % 2 ? b->y : b->x, *out = i % 2 ? b->x : b->y, *w = b->w[kind >= 4 ? i % CHAIN_LAYERS : 0];
        RowInput normed = {ROW_RMSNORM, in, b->gain, NULL, 1e-5f, CHAIN_DIM, b->xhat, b->rstd};
        RowInput gated = {ROW_SWIGLU, in, NULL, b->up, 0.0f, CHAIN_FFN, b->xhat, NULL};
        RowProduct product = {out, w, CHAIN_DIM, 0.0f}, qkv = {out, w, 3 * CHAIN_DIM, 0.0f};
        if (kind == 0) be->rmsnorm_forward(out, b->rstd, in, b->gain, 1, CHAIN_DIM, 1e-5f);
        else if (kind == 1)
            be->gemm(0, 1, 1, CHAIN_DIM, CHAIN_DIM, 1.0f, in, CHAIN_DIM, w, CHAIN_DIM, 0.0f, out, CHAIN_DIM);
        else if (kind == 2) be->row_products(&normed, &product, 1);
        else if (kind == 3)
            be->decode_attention(out, b->scratch, in, b->k, b->v, b->k_cache, b->v_cache, b->pos, CHAIN_CAP, 12, 12, 64,
                                 10000.0f);
        else if (kind == 4) be->row_products(&normed, &qkv, 1);
        else be->row_products(&gated, &product, 1);
    }
}

// Random values (not zeros: zeros run faster), small enough to keep a norm of about 1.
static float *chain_upload(const Backend *be, size_t n, uint64_t seed) {
    float *h = malloc(sizeof(float) * n), *d = be->alloc(sizeof(float) * n);
    if (h && d) {
        for (size_t i = 0; i < n; i++) h[i] = (rng_uniform(&seed) - 0.5f) * 0.125f;   // 768·0.125²/12 = 1
        be->upload(d, h, sizeof(float) * n);
    }
    free(h);
    return d;
}

static double chain_ns(const Backend *be, int kind) {
    size_t cache = (size_t)CHAIN_CAP * CHAIN_DIM;
    ChainBuffers b = {chain_upload(be, CHAIN_FFN, 1), chain_upload(be, CHAIN_FFN, 2), chain_upload(be, CHAIN_FFN, 3),
                      be->alloc(sizeof(float)), chain_upload(be, CHAIN_FFN, 4), be->alloc(sizeof(float) * CHAIN_FFN),
                      {NULL}, chain_upload(be, CHAIN_DIM, 5), chain_upload(be, CHAIN_DIM, 6), chain_upload(be, cache, 7),
                      chain_upload(be, cache, 8),
                      be->alloc(sizeof(float) * be->decode_attention_floats(12, CHAIN_CAP, 64)),
                      be->alloc(sizeof(int32_t))};
    int ok = b.x && b.y && b.up && b.rstd && b.gain && b.xhat && b.k && b.v && b.k_cache && b.v_cache && b.scratch &&
             b.pos;
    for (int l = 0; l < (kind >= 4 ? CHAIN_LAYERS : 1); l++)
        ok &= (b.w[l] = chain_upload(be, (size_t)CHAIN_FFN * CHAIN_DIM, 10 + l)) != NULL;
    int32_t pos = CHAIN_POS;
    double ns = -1;
    if (ok) {
        be->upload(b.pos, &pos, sizeof pos);
        chain_calls(be, kind, &b);   // direct first: anything sized on first use
        void *graph = NULL;
        if (be->graph_begin && be->graph_begin() == 0) {
            chain_calls(be, kind, &b);   // recorded, not run
            graph = be->graph_end();
        }
        if (graph && be->graph_launch(graph) == 0) {
            int reps = 50;
            backend_cuda_synchronize();
            double t0 = now();
            for (int r = 0; r < reps; r++) be->graph_launch(graph);
            backend_cuda_synchronize();
            ns = (now() - t0) / reps / CHAIN_CALLS * 1e9;
        }
        if (graph) be->graph_release(graph);
    }
    float *all[] = {b.x, b.y, b.up, b.rstd, b.gain, b.xhat, b.k, b.v, b.k_cache, b.v_cache, b.scratch, (float *)b.pos};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) be->release(all[i]);
    for (int l = 0; l < CHAIN_LAYERS; l++) be->release(b.w[l]);
    return ns;
}

// The chain rows: RMSNorm and the 768×768 product by gemv.cu, each without and with PDL, and
// by cuBLAS; then both as one call — fused by gemv.cu (without and with PDL), or apart.
static void chain_rows(const Backend *gpu) {
    static const struct { const char *what; int kind, fused, pdl; } chains[] = {
        {"chain rmsnorm 768 (ns/call)", 0, 0, 0},           {"chain rmsnorm 768 pdl (ns/call)", 0, 0, 1},
        {"chain gemv 768x768 (ns/call)", 1, 1, 0},          {"chain gemv 768x768 pdl (ns/call)", 1, 1, 1},
        {"chain cublas 768x768 (ns/call)", 1, 0, 0},        {"chain norm+gemv fused (ns/call)", 2, 1, 0},
        {"chain norm+gemv fused pdl (ns/call)", 2, 1, 1}, {"chain norm, cublas (ns/call)", 2, 0, 0},
        {"chain attention 512 fused (ns/call)", 3, 1, 1},
        {"chain attention 512 split (ns/call)", 3, 0, 1},
        {"chain norm+qkv HBM fused (ns/call)", 4, 1, 1},    {"chain norm, qkv HBM cublas (ns/call)", 4, 0, 0},
        {"chain swiglu+down HBM fused (ns/call)", 5, 1, 1}, {"chain swiglu, down HBM cublas (ns/call)", 5, 0, 0},
    };
    char why[256];
    backend_cuda_set_graphs("on", why, sizeof why);
    for (size_t i = 0; i < sizeof chains / sizeof chains[0] && !out_of_time(chains[i].what); i++) {
        backend_cuda_set_fused(chains[i].fused ? "on" : "off", why, sizeof why);
        backend_cuda_set_pdl(chains[i].pdl ? "on" : "off", why, sizeof why);
        double ns = chain_ns(gpu, chains[i].kind);
        printf("%-36s %8.0f ns%s\n", chains[i].what, ns, ns < 0 ? " (no graph recorded)" : "");
        if (ns > 0) add_row(chains[i].what, "cuda", "fp32", ns, 0);
    }
    printf("(at 4.3 TB/s: a 768×768 fp32 product, 2.36 MB, 0.55 µs; attention at 512 keys, 3.1 MB, 0.73 µs;\n"
           " from HBM: q/k/v 2 304×768, 7.1 MB, 1.65 µs; down 768×3 072, 9.4 MB, 2.2 µs)\n");
    backend_cuda_set_fused("on", why, sizeof why);   // the defaults again
    backend_cuda_set_pdl("on", why, sizeof why);
    fflush(stdout);
}

int main(int argc, char **argv) {
    cpu_blas_ensure_core(argc, argv);   // the CPU rows must run OpenBLAS's kernel for this CPU
    int quick = argc > 1 && strcmp(argv[1], "quick") == 0, targets = argc > 1 && strcmp(argv[1], "targets") == 0;
    if (argc > 1 && !quick && !targets) {
        fprintf(stderr, "usage: bench_cuda [quick|targets]\n");
        return 2;
    }
    bench_start = now();
    const char *seconds = getenv("LRSH_BENCH_SECONDS");
    bench_seconds = seconds ? atof(seconds) : 0;
    char why[512];
    const Backend *gpu = backend_cuda(why, sizeof why);
    if (!gpu) {
        printf("bench_cuda: skipped: %s\n", why);
        return 0;
    }
    const Backend *cpu = backend_cpu(0);
    printf("bench_cuda — %s\n             %s\n", gpu->describe(), cpu->describe());
    static const char *precisions[] = {"fp32", "tf32", "bf16"};
    double peak[3] = {0};
    for (int p = targets ? 2 : 0; p < 3; p++) {
        backend_cuda_set_precision(precisions[p], why, sizeof why);
        for (int n = 4096; n <= 8192; n *= 2) {
            double g = gemm_gflops(gpu, n);
            printf("sgemm  %-4s n=%d: %.0f GFLOP/s\n", precisions[p], n, g);
            if (g > peak[p]) peak[p] = g;
        }
        add_row("sgemm peak (GFLOP/s)", "cuda", precisions[p], peak[p], 0);
    }
    double cpu_peak = 0;
    Err err;
    if (!targets && bench_sgemm_peak(cpu, &cpu_peak, &err) == 0) add_row("sgemm peak (GFLOP/s)", "cpu", "fp32", cpu_peak, 0);
    fflush(stdout);

    int rc = 0;
    for (int sh = 0; sh < 2 && !targets; sh++) {   // small and base: fp32 and tf32 on the GPU, fp32 on the CPU
        const char *shape = sh ? "base" : "small";
        for (int f = 0; f <= 1; f++)
            for (int p = 0; p < 2; p++) {
                backend_cuda_set_precision(precisions[p], why, sizeof why);
                rc |= train_row(gpu, shape, f, 8, quick ? 3 : 10, peak[p], "adamw", 0);
            }
        for (int f = 0; f <= 1; f++) rc |= train_row(cpu, shape, f, 4, quick ? 1 : 2, cpu_peak, "adamw", 0);
    }
    if (!quick) {   // GPT-2 small shapes: the targets
        for (int p = 1; p < 3 && !targets; p++) {   // tf32 and bf16 at batch 4, the default attention
            backend_cuda_set_precision(precisions[p], why, sizeof why);
            for (int f = 0; f <= 1; f++) rc |= train_row(gpu, "gpt2", f, 4, 5, peak[p], "adamw", 0);
        }
        // bf16 at batch 16 (16 384 tokens a step: GEMMs big enough to fill the card, as one
        // trains in earnest), profiled: the target rows
        for (int f = 0; f <= 1; f++) rc |= train_row(gpu, "gpt2", f, 16, 5, peak[2], "adamw", 1);
        // Spectron's share (≤ 5 % asked) at both batches: its cost does not grow with the batch
        rc |= train_row(gpu, "gpt2", 1, 16, 5, peak[2], "spectron", 1);
        rc |= train_row(gpu, "gpt2", 1, 4, 5, peak[2], "spectron", 0);
    }
    backend_cuda_set_precision("fp32", why, sizeof why);
    // Decode in every mode (base, then GPT-2: the target, factorized ≥ 1.5× dense); the
    // GPT-2 rows without a graph are profiled (a profile times every call). First the way a card
    // has run before (direct), then the chain rows and the newer ways (graphs, fused, pdl): a
    // fault loses the CUDA context, and with it only the rows after it. LRSH_BENCH_SAFE=1 (as
    // check.sh reruns after a failure) stops after the first pass.
    // targets leaves out the knobs' rows (measured in the fifth run; the defaults stayed): its
    // time goes to the flash rows after them
    const char *safe = getenv("LRSH_BENCH_SAFE");
    for (int pass = 0; pass <= 1 && !(pass == 1 && safe && strcmp(safe, "1") == 0); pass++) {
        if (pass == 1) chain_rows(gpu);
        for (int f = 0; f <= 1; f++) {
            for (int i = 0; i < N_DECODE_MODES; i++)
                if (newer_mode(&decode_modes[i]) == pass && !(targets && tuned_mode(&decode_modes[i])))
                    rc |= decode_row(gpu, "base", f, &decode_modes[i], 0);
            if (pass == 0) rc |= decode_row(cpu, "base", f, &decode_modes[0], 0);
        }
        for (int f = 0; f <= 1 && !quick; f++)
            for (int i = 0; i < N_DECODE_MODES; i++)
                if (newer_mode(&decode_modes[i]) == pass && !(targets && tuned_mode(&decode_modes[i])))
                    rc |= decode_row(gpu, "gpt2", f, &decode_modes[i], !decode_modes[i].graphs);
    }
    // Flash attention at bf16 — the tensor-core kernels (flash_tc.cuh) — at the target rows'
    // shapes, profiled, last: the newest kernels, so that a fault in them costs no other row.
    if (!quick && !(safe && strcmp(safe, "1") == 0)) {   // not on the older paths' rerun
        backend_cuda_set_precision("bf16", why, sizeof why);
        backend_cuda_set_attention("flash", why, sizeof why);
        for (int f = 0; f <= 1; f++) rc |= train_row(gpu, "gpt2", f, 16, 5, peak[2], "adamw", 1);
        rc |= train_row(gpu, "gpt2", 1, 16, 5, peak[2], "spectron", 0);
        backend_cuda_set_attention("gemm", why, sizeof why);
        backend_cuda_set_precision("fp32", why, sizeof why);
    }
    backend_cuda_set_graphs("on", why, sizeof why);   // the defaults again
    backend_cuda_set_fused("on", why, sizeof why);
    backend_cuda_set_pdl("on", why, sizeof why);
    const char *e = backend_cuda_last_error();
    if (e) { fprintf(stderr, "bench_cuda: CUDA error: %s\n", e); rc = -1; }

    printf("\n%-44s %-5s %-5s %14s %9s\n", "summary", "dev", "prec", "value", "MFU/share");
    for (int i = 0; i < n_rows; i++) {
        const Row *r = &rows[i];
        printf("%-44s %-5s %-5s %14.0f", r->what, r->backend, r->precision, r->value);
        if (r->extra > 0) printf(" %8.1f%%", 100 * r->extra);
        printf("\n");
    }
    if (rows_skipped) printf("(%d rows skipped: LRSH_BENCH_SECONDS=%.0f was up)\n", rows_skipped, bench_seconds);
    print_targets();
    return rc ? 1 : 0;
}
