// write_model.c — a random-weight model shaped like llama2.c's stories15M, in llama2.c's own
// checkpoint format, and a tokenizer.bin it can read: what `compare.sh` feeds llama2.c's `run`
// so its decode speed can be measured on this machine next to lrsh's.
//
// Checkpoint (llama2.c's run.c): 7 int32 — dim, hidden_dim, n_layers, n_heads, n_kv_heads,
// vocab_size (negative: the classifier is a separate matrix, as lrsh's untied head), seq_len —
// then float32: token embedding (V·D), attention RMS gains (L·D), wq (L·D·D), wk, wv (L·D·kvD),
// wo (L·D·D), MLP RMS gains (L·D), w1 (L·H·D), w2 (L·D·H), w3 (L·H·D), final RMS gain (D), two
// RoPE tables run.c skips (S·hs/2 each), classifier (V·D).
// Tokenizer: int32 max token length, then per token float score, int32 length, bytes.
//
// Usage: write_model MODEL.bin TOKENIZER.bin
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

enum { DIM = 288, HIDDEN = 768, LAYERS = 6, HEADS = 6, KV_HEADS = 6, VOCAB = 32000, SEQ = 256 };
enum { BOS = 1 };   // run.c stops when it samples BOS

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static float normal(void) {   // Box–Muller over xorshift64*
    double u[2];
    for (int i = 0; i < 2; i++) {
        rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
        u[i] = ((rng * 0x2545F4914F6CDD1Dull) >> 11) * (1.0 / 9007199254740992.0);
    }
    return (float)(sqrt(-2.0 * log(u[0] + 1e-300)) * cos(2.0 * M_PI * u[1]));
}

// n floats: N(0, std²) when std > 0, else the constant -std (so 0 and -1 give 0 and 1)
static int put(FILE *f, long n, float std) {
    float buf[4096];
    while (n > 0) {
        int k = n > 4096 ? 4096 : (int)n;
        for (int i = 0; i < k; i++) buf[i] = std > 0 ? std * normal() : -std;
        if (fwrite(buf, sizeof(float), (size_t)k, f) != (size_t)k) return -1;
        n -= k;
    }
    return 0;
}

static int write_model(const char *path) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int kvd = DIM / HEADS * KV_HEADS, hs = DIM / HEADS;
    int32_t header[7] = {DIM, HIDDEN, LAYERS, HEADS, KV_HEADS, -VOCAB, SEQ};
    const float w = 0.02f, one = -1.0f, zero = -0.0f;
    int rc = fwrite(header, sizeof header, 1, f) != 1;
    rc |= put(f, (long)VOCAB * DIM, w) | put(f, (long)LAYERS * DIM, one);
    rc |= put(f, (long)LAYERS * DIM * DIM, w) | put(f, (long)LAYERS * DIM * kvd, w) | put(f, (long)LAYERS * DIM * kvd, w);
    rc |= put(f, (long)LAYERS * DIM * DIM, w) | put(f, (long)LAYERS * DIM, one);
    rc |= put(f, (long)LAYERS * HIDDEN * DIM, w) | put(f, (long)LAYERS * DIM * HIDDEN, w);
    rc |= put(f, (long)LAYERS * HIDDEN * DIM, w) | put(f, DIM, one);
    rc |= put(f, (long)SEQ * hs / 2, zero) | put(f, (long)SEQ * hs / 2, zero);
    // classifier: BOS's row is zero, so its logit is 0 and greedy decoding (which always finds
    // some positive logit among 32000 random ones) never stops early
    rc |= put(f, (long)BOS * DIM, w) | put(f, DIM, zero) | put(f, (long)(VOCAB - BOS - 1) * DIM, w);
    return fclose(f) | rc ? -1 : 0;
}

// <unk>, BOS, EOS, the 256 byte tokens <0xNN> (ids 3..258), the printable ASCII characters (the
// encoder needs " "), then filler pieces.
static int write_tokenizer(const char *path) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int32_t max_len = 16;
    int rc = fwrite(&max_len, sizeof max_len, 1, f) != 1;
    for (int i = 0; i < VOCAB && !rc; i++) {
        char piece[32];
        if (i < 3) snprintf(piece, sizeof piece, "%s", (const char *[]){"<unk>", "\n<s>\n", "\n</s>\n"}[i]);
        else if (i < 259) snprintf(piece, sizeof piece, "<0x%02X>", i - 3);
        else if (i < 259 + 95) snprintf(piece, sizeof piece, "%c", 32 + (i - 259));
        else snprintf(piece, sizeof piece, "t%d", i);
        float score = -(float)i;
        int32_t len = (int32_t)strlen(piece);
        rc = fwrite(&score, sizeof score, 1, f) != 1 || fwrite(&len, sizeof len, 1, f) != 1 ||
             fwrite(piece, 1, (size_t)len, f) != (size_t)len;
    }
    return fclose(f) | rc ? -1 : 0;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL.bin TOKENIZER.bin\n", argv[0]);
        return 2;
    }
    if (write_model(argv[1]) || write_tokenizer(argv[2])) {
        perror("write_model");
        return 1;
    }
    return 0;
}
