// test_cuda_emu.cpp — the tensor-core flash attention kernels (kernels/cuda/flash_tc.cuh), their
// own source run on the CPU under tests/emu/cuda_emu.h, against the CPU backend's attention:
// output, log-sum-exp, and dq, dk, dv (which add to what is there). Inputs are bf16 on the
// tensor cores, so the bound is bf16's (1e-2 relative, as tests/test_cuda.c's BF16_TOL). This
// runs on every machine; tests/test_cuda.c runs the same kernels on a GPU.
#include "emu/cuda_emu.h"
#include "../kernels/cuda/flash_tc.cuh"

extern "C" {
#include "../kernels/kernels.h"
}
#include "test.h"

#define TC_TOL 1e-2

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

int main(void) {
    RUN(test_flash_tc_smem);
    RUN(test_flash_tc_attention);
    return TEST_SUMMARY();
}
