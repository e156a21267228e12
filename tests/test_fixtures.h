// test_fixtures.h — the small models and data the engine tests share.
#pragma once
#include <stdint.h>
#include "../engine/model.h"
#include "../engine/dataset.h"
#include "../engine/rng.h"

// Small enough for finite differences, with grouped KV heads (4 query heads, 2 kv heads).
static inline ModelConfig micro_config_layers(int rank, int layers) {
    return (ModelConfig){.dim = 16, .layers = layers, .heads = 4, .kv_heads = 2, .ffn = 24, .seq = 8,
                         .vocab = 37, .rank = rank, .rank_ratio = 0.25f, .rope_theta = 10000.0f,
                         .norm_eps = 1e-5f, .seed = 7};
}

// An in-memory dataset for training without a tokenizer: mostly next = 5·prev + 1 (mod vocab),
// one token in eight random, so there is something to learn and something left to noise.
static inline Dataset pattern_dataset(uint16_t *store, long n, int vocab) {
    uint64_t s = 11;
    store[0] = 0;
    for (long i = 1; i < n; i++)
        store[i] = rng_next(&s) % 8 ? (uint16_t)((5 * store[i - 1] + 1) % vocab) : (uint16_t)(rng_next(&s) % (uint64_t)vocab);
    return (Dataset){.vocab_size = vocab, .token_bytes = 2, .n_tokens = n, .n_train = n * 9 / 10, .tokens = store};
}
