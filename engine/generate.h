// generate.h — autoregressive inference with a KV cache: batched prefill of a prompt, then one
// token at a time, sampled with temperature, top-k and top-p. Factorized layers stay factorized.
#pragma once
#include <stdint.h>
#include "err.h"
#include "model.h"

typedef struct SamplerConfig {
    float temperature;   // 0: greedy (argmax)
    int top_k;           // 0: no limit
    float top_p;         // 1: no nucleus cut
    uint64_t seed;
} SamplerConfig;

typedef struct SampleCandidate { float p; int32_t id; } SampleCandidate;

typedef struct Generator {
    Model *model;
    int len;             // tokens in the cache
    int cap;             // cache capacity (the model's context)
    int chunk;           // the most prompt tokens a pass (PREFILL_CHUNK, or cap when less)
    float *k_cache, *v_cache;  // device (layers, cap, kv_dim)
    float *work;         // device scratch for a chunk of up to `chunk` tokens against cap
    size_t work_floats;  // its size, for the backend's attention sizes when it was built
    float *pack;         // device: every layer's B factors, transposed, a group's side by side
    const float **packed;  // host (4·layers): per layer [B…]ᵀ of q/k/v, wo, w1/w3, w2 in pack
                           // (NULL for a dense group); refreshed by reset
    float *host_pack;    // host scratch for transposing one group's factors (twice its in×R)
    int max_rank;        // the largest group rank R (the width of the chunk's x·[B…] scratch)
    size_t max_pack;     // the largest group's in×R
    void *graph;         // a decoded token's calls, recorded by the backend (NULL: none yet)
    const Backend *graph_backend;  // the backend that recorded it (the model's may be swapped
                                   // for a profiling one meanwhile)
    int graph_warm;      // a token ran directly since the build or the last stale graph
    int graph_failed;    // recording failed once: decode directly from now on
    float *logits;       // host (vocab): logits after the last fed token
    int32_t *history;    // host (cap): the tokens now in the cache, for sliding the window
    float *probs;        // host (vocab) sampler scratch
    SampleCandidate *cand;  // host (vocab) sampler scratch
} Generator;

int generator_build(Generator *g, Model *m, Err *err);
void generator_free(Generator *g);
// Empty the cache and re-read the weights (call it after they change).
void generator_reset(Generator *g);
// Append n tokens (a prompt: batched passes of up to g->chunk) and leave the next-token logits in
// g->logits.
// When the cache would overflow, the window slides: the last half of the context is kept and
// re-encoded (g->len shrinks), so generation can go on past the context length.
int generator_feed(Generator *g, const int32_t *ids, int n, Err *err);
// The threads a decoded token (one fed at a time) runs on: 1 on the CPU under
// OMP_WAIT_POLICY=passive (waking sleeping threads costs more than the work), else all.
int generate_decode_threads(const Backend *be);
// How the last decoded tokens ran: "graph" (replayed from a recording), "direct" (each call
// issued by the host: the CPU, graphs off, or not yet recorded), "direct: recording failed".
const char *generator_decode_path(const Generator *g);
// Draw a token from logits (modified in place) without sorting the whole vocabulary.
int32_t sampler_sample(const SamplerConfig *s, Generator *g, uint64_t *rng);
