// test_cuda_emu.cpp — CUDA kernels' own source run on the CPU under tests/emu/cuda_emu.h,
// against the CPU backend: the layer kernels (kernels/cuda/layer_kernels.cuh: RMSNorm, RoPE,
// SwiGLU, softmax cross-entropy, sumsq_batch) at fp32's bound, launched as backend_cuda.cu
// launches them; and the tensor-core flash attention (kernels/cuda/flash_tc.cuh): output,
// log-sum-exp, and dq, dk, dv (which add to what is there) at bf16's bound (its products take
// bf16 inputs; 1e-2 relative, as tests/test_cuda.c's BF16_TOL). This runs on every machine;
// tests/test_cuda.c runs the same kernels on a GPU.
#include "emu/cuda_emu.h"
#include "../kernels/cuda/flash_tc.cuh"
#include "../kernels/cuda/layer_kernels.cuh"

extern "C" {
#include "../kernels/kernels.h"
}
#include "test.h"

#define TC_TOL 1e-2
#define KERNEL_TOL 1e-5   // fp32 kernels, as tests/test_cuda.c

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float uniform_pm1(void) {   // in [−1, 1), never all zeros
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}
static std::vector<float> random_floats(long n, float scale) {
    std::vector<float> x((size_t)n);
    for (float &e : x) e = scale * uniform_pm1();
    return x;
}

static double relative_error(const std::vector<float> &got, const std::vector<float> &want) {
    double diff = 0.0, norm = 0.0;
    for (size_t i = 0; i < want.size(); i++) {
        double d = (double)got[i] - want[i];
        diff += d * d;
        norm += (double)want[i] * want[i];
    }
    return norm > 0.0 ? sqrt(diff / norm) : sqrt(diff);
}

static const char *names[] = {"out", "lse", "dq", "dk", "dv"};
static double worst[5];   // the largest relative error of each, over the cases

struct Shape {
    int B, Tq, Tk, H, KVH, hd;
};

// The launches attention.cu makes, through the emulator.
template <int HD>
static void tc_attention(const Shape &s, float *out, float *lse, float *D, float *dq, float *dk, float *dv,
                         const float *q, const float *k, const float *v, const float *dout) {
    using namespace flash_tc;
    float scale = 1.0f / sqrtf((float)HD);
    dim3 query_tiles((unsigned)((s.Tq + TC_TILE - 1) / TC_TILE), (unsigned)s.H, (unsigned)s.B);
    dim3 key_tiles((unsigned)((s.Tk + TC_TILE - 1) / TC_TILE), (unsigned)s.KVH, (unsigned)s.B);
    emu_launch(query_tiles, dim3(TC_THREADS), forward_smem(HD),
               [&] { tc_forward<HD>(out, lse, q, k, v, s.Tq, s.Tk, s.H, s.KVH, scale); });
    long rows = (long)s.B * s.Tq * s.H;
    emu_launch(dim3((unsigned)((rows + 3) / 4)), dim3(128), 0,
               [&] { tc_rowdot(D, dout, out, s.B, s.Tq, s.H, HD); });
    emu_launch(query_tiles, dim3(TC_THREADS), dq_smem(HD),
               [&] { tc_dq<HD>(dq, D, lse, dout, q, k, v, s.Tq, s.Tk, s.H, s.KVH, scale); });
    emu_launch(key_tiles, dim3(TC_THREADS), dkdv_smem(HD),
               [&] { tc_dkdv<HD>(dk, dv, D, lse, dout, q, k, v, s.Tq, s.Tk, s.H, s.KVH, scale); });
}

// The rows' log-sum-exp of scale·q·kᵀ over the visible keys, in double.
static std::vector<float> reference_lse(const Shape &s, const std::vector<float> &q, const std::vector<float> &k) {
    std::vector<float> lse((size_t)s.B * s.H * s.Tq);
    double scale = 1.0 / sqrt((double)s.hd);
    for (int b = 0; b < s.B; b++)
        for (int h = 0; h < s.H; h++)
            for (int t = 0; t < s.Tq; t++) {
                int g = h / (s.H / s.KVH), L = s.Tk - s.Tq + t + 1;
                std::vector<double> sc((size_t)L);
                double mx = -INFINITY, sum = 0.0;
                for (int j = 0; j < L; j++) {
                    const float *qr = &q[(((size_t)b * s.Tq + t) * s.H + h) * s.hd];
                    const float *kr = &k[(((size_t)b * s.Tk + j) * s.KVH + g) * s.hd];
                    double d = 0.0;
                    for (int i = 0; i < s.hd; i++) d += (double)qr[i] * kr[i];
                    sc[(size_t)j] = scale * d;
                    mx = fmax(mx, sc[(size_t)j]);
                }
                for (int j = 0; j < L; j++) sum += exp(sc[(size_t)j] - mx);
                lse[((size_t)b * s.H + h) * s.Tq + t] = (float)(mx + log(sum));
            }
    return lse;
}

static void attention_case(Shape s) {
    const Backend *cpu = backend_cpu(1);
    long nq = (long)s.B * s.Tq * s.H * s.hd, nk = (long)s.B * s.Tk * s.KVH * s.hd;
    long na = (long)s.B * s.H * s.Tq * s.Tk, nr = (long)s.B * s.H * s.Tq;
    std::vector<float> q = random_floats(nq, 3.0f), k = random_floats(nk, 1.0f), v = random_floats(nk, 1.0f);
    std::vector<float> dout = random_floats(nq, 1.0f);
    std::vector<float> dq = random_floats(nq, 1.0f), dk = random_floats(nk, 1.0f), dv = random_floats(nk, 1.0f);
    std::vector<float> out((size_t)nq), att((size_t)na), scratch((size_t)na);
    std::vector<float> t_out((size_t)nq, NAN), t_lse((size_t)nr, NAN), t_D((size_t)nr, NAN);
    std::vector<float> t_dq = dq, t_dk = dk, t_dv = dv;
    cpu->attention_forward(out.data(), att.data(), q.data(), k.data(), v.data(), s.B, s.Tq, s.Tk, s.H, s.KVH, s.hd);
    cpu->attention_backward(dq.data(), dk.data(), dv.data(), scratch.data(), dout.data(), out.data(), att.data(), q.data(),
                            k.data(), v.data(), s.B, s.Tq, s.Tk, s.H, s.KVH, s.hd);
    float *args[] = {t_out.data(), t_lse.data(), t_D.data(), t_dq.data(), t_dk.data(), t_dv.data()};
#define TC_RUN(HD) tc_attention<HD>(s, args[0], args[1], args[2], args[3], args[4], args[5], q.data(), k.data(), \
                                    v.data(), dout.data())
    switch (s.hd) {
    case 16: TC_RUN(16); break;
    case 32: TC_RUN(32); break;
    case 48: TC_RUN(48); break;
    case 64: TC_RUN(64); break;
    case 80: TC_RUN(80); break;
    case 96: TC_RUN(96); break;
    case 112: TC_RUN(112); break;
    case 128: TC_RUN(128); break;
    default: CHECK(0, "no instance for hd=%d in this test", s.hd); return;
    }
#undef TC_RUN
    char shape[96];
    snprintf(shape, sizeof shape, "B=%d Tq=%d Tk=%d H=%d KVH=%d hd=%d", s.B, s.Tq, s.Tk, s.H, s.KVH, s.hd);
    std::vector<float> lse = reference_lse(s, q, k);
    const std::vector<float> *got[] = {&t_out, &t_lse, &t_dq, &t_dk, &t_dv}, *want[] = {&out, &lse, &dq, &dk, &dv};
    for (int i = 0; i < 5; i++) {
        double e = relative_error(*got[i], *want[i]);
        if (e > worst[i]) worst[i] = e;
        CHECK(e <= TC_TOL, "flash_tc %s %s: relative error %.3g above %.0e", names[i], shape, e, TC_TOL);
    }
}

static void test_flash_tc_attention(void) {
    attention_case({2, 13, 13, 4, 2, 16});    // grouped KV heads, one tile
    attention_case({1, 3, 10, 3, 1, 48});     // Tq < Tk (a KV cache), three query heads on one kv head
    attention_case({2, 70, 70, 2, 2, 64});    // a tail past the first tile of queries and of keys
    attention_case({1, 1, 150, 4, 4, 32});    // one query row over three key tiles
    attention_case({1, 40, 40, 2, 1, 128});   // the largest head size
    attention_case({1, 130, 130, 1, 1, 64});  // three tiles each way: the causal skip of whole tiles
    attention_case({1, 100, 200, 2, 1, 32});  // queries start mid-cache: tiles not aligned to positions
    attention_case({1, 20, 70, 2, 2, 80});    // head sizes that are not powers of two
    attention_case({1, 70, 20 + 70, 1, 1, 112});
    attention_case({3, 65, 65, 8, 2, 96});     // hd 96, four query heads a kv head, a row past a tile
    attention_case({1, 64, 128, 3, 3, 64});    // Tk − Tq a whole tile
    printf("     worst relative errors (bound %.0e):", TC_TOL);
    for (int i = 0; i < 5; i++) printf(" %s %.1e", names[i], worst[i]);
    printf("\n");
}

// The kernels' shared memory fits the card (227 KiB a block on Hopper) at every head size, and the
// backward's stage fits in its two score tiles.
static void test_flash_tc_smem(void) {
    using namespace flash_tc;
    for (int hd = 16; hd <= TC_MAX_HD; hd += 16) {
        size_t most = forward_smem(hd) > dq_smem(hd) ? forward_smem(hd) : dq_smem(hd);
        if (dkdv_smem(hd) > most) most = dkdv_smem(hd);
        CHECK(most <= 227u * 1024, "hd=%d needs %zu bytes of shared memory a block", hd, most);
        CHECK(out_tile(hd) <= 2 * score_tile(), "hd=%d: the stage does not fit in the score tiles", hd);
    }
}

// ---- the layer kernels ------------------------------------------------------------------------

static void check_close(const char *what, const std::vector<float> &got, const std::vector<float> &want) {
    double e = relative_error(got, want);
    CHECK(e <= KERNEL_TOL, "%s: relative error %.3g above %.0e", what, e, KERNEL_TOL);
}

// Forward (out, rstd) and backward (dx and dgain add), the backward's dgain in chunks of 64 rows
// summed in order when there are several, added directly when one, as backend_cuda.cu.
static void rmsnorm_case(int n, int dim, float magnitude) {
    const Backend *cpu = backend_cpu(1);
    std::vector<float> x = random_floats((long)n * dim, magnitude), gain = random_floats(dim, 1.0f);
    std::vector<float> dout = random_floats((long)n * dim, 1.0f), dx = random_floats((long)n * dim, 1.0f);
    std::vector<float> dgain = random_floats(dim, 1.0f);
    std::vector<float> out((size_t)n * dim), rstd((size_t)n), e_out((size_t)n * dim, NAN), e_rstd((size_t)n, NAN);
    std::vector<float> e_dx = dx, e_dgain = dgain;
    cpu->rmsnorm_forward(out.data(), rstd.data(), x.data(), gain.data(), n, dim, 1e-5f);
    cpu->rmsnorm_backward(dx.data(), dgain.data(), dout.data(), x.data(), gain.data(), rstd.data(), n, dim);
    emu_launch(dim3(n), dim3(THREADS), 0,
               [&] { k_rmsnorm_forward(e_out.data(), e_rstd.data(), x.data(), gain.data(), dim, 1e-5f); });
    emu_launch(dim3(n), dim3(THREADS), 0,
               [&] { k_rmsnorm_backward_dx(e_dx.data(), dout.data(), x.data(), gain.data(), e_rstd.data(), dim); });
    int chunk_rows = 64, chunks = (n + chunk_rows - 1) / chunk_rows;
    dim3 cols((dim + THREADS - 1) / THREADS);
    std::vector<float> partial((size_t)chunks * dim, NAN);
    if (chunks > 1) {
        emu_launch(dim3(cols.x, chunks), dim3(THREADS), 0, [&] {
            k_rmsnorm_dgain(partial.data(), 0, dout.data(), x.data(), e_rstd.data(), n, dim, chunk_rows);
        });
        emu_launch(cols, dim3(THREADS), 0, [&] { k_sum_chunks(e_dgain.data(), partial.data(), chunks, dim); });
    } else {
        emu_launch(cols, dim3(THREADS), 0,
                   [&] { k_rmsnorm_dgain(e_dgain.data(), 1, dout.data(), x.data(), e_rstd.data(), n, dim, n); });
    }
    char what[96];
    snprintf(what, sizeof what, "rmsnorm n=%d dim=%d |x|~%g: out", n, dim, magnitude);
    check_close(what, e_out, out);
    snprintf(what, sizeof what, "rmsnorm n=%d dim=%d |x|~%g: rstd", n, dim, magnitude);
    check_close(what, e_rstd, rstd);
    snprintf(what, sizeof what, "rmsnorm n=%d dim=%d |x|~%g: dx (adds)", n, dim, magnitude);
    check_close(what, e_dx, dx);
    snprintf(what, sizeof what, "rmsnorm n=%d dim=%d |x|~%g: dgain (adds)", n, dim, magnitude);
    check_close(what, e_dgain, dgain);
}

static void test_rmsnorm_kernels(void) {
    rmsnorm_case(3, 300, 1.0f);      // dim past a block's threads, one chunk
    rmsnorm_case(70, 64, 2.0f);      // two chunks of rows
    rmsnorm_case(2, 96, 1e20f);      // Σx² past float's range: in double, s stays > 0
}

// Forward out of place and backward in place (din = dout), at a position where float loses
// the phase unless the angle is reduced in double.
static void rope_case(int B, int T, int H, int hd, int pos0) {
    const Backend *cpu = backend_cpu(1);
    long n = (long)B * T * H * hd;
    std::vector<float> x = random_floats(n, 1.0f), out((size_t)n), back((size_t)n), e_out((size_t)n, NAN);
    cpu->rope_forward(out.data(), x.data(), B, T, H, hd, pos0, 10000.0f);
    cpu->rope_backward(back.data(), x.data(), B, T, H, hd, pos0, 10000.0f);
    size_t smem = (size_t)(hd / 2) * 2 * sizeof(float);
    emu_launch(dim3((unsigned)(B * T)), dim3(128), smem,
               [&] { k_rope(e_out.data(), x.data(), T, H, hd, pos0, 10000.0f, 0); });
    std::vector<float> e_back = x;
    emu_launch(dim3((unsigned)(B * T)), dim3(128), smem,
               [&] { k_rope(e_back.data(), e_back.data(), T, H, hd, pos0, 10000.0f, 1); });
    char what[96];
    snprintf(what, sizeof what, "rope B=%d T=%d H=%d hd=%d pos0=%d forward", B, T, H, hd, pos0);
    check_close(what, e_out, out);
    snprintf(what, sizeof what, "rope B=%d T=%d H=%d hd=%d pos0=%d backward (in place)", B, T, H, hd, pos0);
    check_close(what, e_back, back);
}

static void test_rope_kernel(void) {
    rope_case(2, 7, 3, 16, 0);
    rope_case(1, 5, 2, 300, 4000);   // more pairs than a block's threads, large positions
}

static void test_swiglu_kernels(void) {
    const Backend *cpu = backend_cpu(1);
    long n = 1000;
    std::vector<float> gate = random_floats(n, 6.0f), up = random_floats(n, 1.0f), dy = random_floats(n, 1.0f);
    std::vector<float> out((size_t)n), dg((size_t)n), du((size_t)n);
    std::vector<float> e_out((size_t)n, NAN), e_dg((size_t)n, NAN), e_du((size_t)n, NAN);
    cpu->swiglu_forward(out.data(), gate.data(), up.data(), n);
    cpu->swiglu_backward(dg.data(), du.data(), dy.data(), gate.data(), up.data(), n);
    emu_launch(dim3(2), dim3(THREADS), 0, [&] { k_swiglu_forward(e_out.data(), gate.data(), up.data(), n); });
    emu_launch(dim3(2), dim3(THREADS), 0,
               [&] { k_swiglu_backward(e_dg.data(), e_du.data(), dy.data(), gate.data(), up.data(), n); });
    check_close("swiglu forward", e_out, out);
    check_close("swiglu backward dgate (written)", e_dg, dg);
    check_close("swiglu backward dup (written)", e_du, du);
}

// Losses and dlogits (in place: dlogits = logits), with a −∞ logit and a peaked row.
static void test_softmax_xent_kernel(void) {
    const Backend *cpu = backend_cpu(1);
    int n = 5, V = 700;
    std::vector<float> logits = random_floats((long)n * V, 8.0f);
    logits[3] = -INFINITY;
    logits[(size_t)V + 10] = 60.0f;
    std::vector<int32_t> targets = {3 + 1, 10, 699, 0, 350};
    std::vector<float> losses((size_t)n), d((size_t)n * V), e_losses((size_t)n, NAN), e_d = logits;
    cpu->softmax_xent_forward(losses.data(), d.data(), logits.data(), targets.data(), n, V, 0.25f);
    emu_launch(dim3(n), dim3(THREADS), 0,
               [&] { k_softmax_xent(e_losses.data(), e_d.data(), e_d.data(), targets.data(), V, 0.25f); });
    check_close("softmax_xent losses", e_losses, losses);
    check_close("softmax_xent dlogits (written in place)", e_d, d);
}

// Vectors of several lengths, one of them longer than SUMSQ_BLOCKS blocks cover in one pass,
// through both passes, against the sums in double.
static void test_sumsq_batch_kernels(void) {
    long lengths[] = {1, 255, 4096, 300000, 0};
    int count = 5;
    std::vector<std::vector<float>> xs;
    SumsqBatch batch;
    batch.first_block[0] = 0;
    for (int i = 0; i < count; i++) {
        xs.push_back(random_floats(lengths[i], 3.0f));
        batch.x[i] = xs.back().data();
        batch.n[i] = lengths[i];
        batch.first_block[i + 1] = batch.first_block[i] + sumsq_blocks(lengths[i]);
    }
    std::vector<double> partials((size_t)batch.first_block[count], NAN), out((size_t)count, NAN);
    emu_launch(dim3((unsigned)batch.first_block[count]), dim3(THREADS), 0,
               [&] { k_sumsq_many(batch, partials.data()); });
    emu_launch(dim3(1), dim3(ARG_CALLS), 0, [&] { k_sumsq_finish(batch, partials.data(), out.data(), count); });
    for (int i = 0; i < count; i++) {
        double want = 0.0;
        for (float v : xs[(size_t)i]) want += (double)v * v;
        CHECK(fabs(out[(size_t)i] - want) <= 1e-12 * fmax(1.0, want), "sumsq_batch vector %d (n=%ld): %.17g, want %.17g",
              i, lengths[i], out[(size_t)i], want);
    }
}

int main(void) {
    RUN(test_rmsnorm_kernels);
    RUN(test_rope_kernel);
    RUN(test_swiglu_kernels);
    RUN(test_softmax_xent_kernel);
    RUN(test_sumsq_batch_kernels);
    RUN(test_flash_tc_smem);
    RUN(test_flash_tc_attention);
    return TEST_SUMMARY();
}
