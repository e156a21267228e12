// generate.c — KV-cache inference and sampling. The same layers as training (model_forward.c)
// run on a chunk of Tq new tokens at positions len..len+Tq−1 attending to the whole cache.
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "generate.h"
#include "../kernels/cpu/cpu_expf.h"
#include "model_internal.h"
#include "rng.h"

// Scratch for one chunk of up to C = g->chunk tokens (against up to cap keys), carved from g->work. A decoded token also uses
// k, v (its key and value before they enter the cache), step (its id and position, on the
// device) and dec (decode_attention's scratch).
typedef struct ChunkBuffers {
    float *x, *ln, *rstd, *t, *q, *ao, *att, *gate, *up, *h, *logits, *k, *v, *dec;
    int32_t *step;   // (2): the token id, its position
} ChunkBuffers;

// [B…]ᵀ (R×in) of group g into dst (device), through the host scratch b and bt (in×R each):
// B_iᵀ's rows are B_i's columns.
static void pack_transposed(const Model *m, const LinearGroup *g, float *dst, float *b, float *bt) {
    int R = linear_group_rank(g), in = g->lin[0]->in, off = 0;
    for (int i = 0; i < g->count; i++) {
        const Linear *lin = g->lin[i];
        int r = lin->rank;
        if (r == 0) continue;
        m->be->download(b, param(m, lin->b), sizeof(float) * (size_t)in * r);                    // B_i (in×r)
        for (int row = 0; row < in; row++)
            for (int c = 0; c < r; c++) bt[(size_t)(off + c) * in + row] = b[(size_t)row * r + c];
        off += r;
    }
    m->be->upload(dst, bt, sizeof(float) * (size_t)in * R);
}

// Lays every group's factors out transposed once per run, so that a decoded token's x·[B…] is R
// contiguous dot products (the one-row product by B itself would stride through it).
static void pack_factors(Generator *g) {
    const Model *m = g->model;
    float *next = g->pack, *b = g->host_pack, *bt = b + g->max_pack;
    for (int l = 0; l < m->cfg.layers; l++) {
        LinearGroup groups[4];
        layer_linear_groups(&m->layer[l], groups);
        for (int i = 0; i < 4; i++) {
            int R = linear_group_rank(&groups[i]);
            g->packed[4 * l + i] = R ? next : NULL;
            if (R) pack_transposed(m, &groups[i], next, b, bt);
            next += (size_t)R * groups[i].lin[0]->in;
        }
    }
}

// A prompt goes through the layers at most this many tokens a pass: the chunk's attention
// scratch is heads·C·seq floats, not heads·seq² (at seq 8192 a 2-token `generate` held 2 GB).
#define PREFILL_CHUNK 512

// Lays the buffers out from base (NULL: only counts) for chunks of up to C tokens against a
// context of g->cap; returns the floats needed.
static size_t chunk_layout(const Generator *g, int C, float *base, ChunkBuffers *b) {
    const Model *m = g->model;
    const ModelConfig *c = &m->cfg;
    int hd = c->dim / c->heads;
    size_t kvd = (size_t)hd * c->kv_heads;
    size_t logits = (size_t)(c->vocab > C ? c->vocab : C);   // a chunk's ids borrow it (feed_chunk)
    size_t sizes[15] = {(size_t)C * c->dim, (size_t)C * c->dim, (size_t)C, (size_t)C * (g->max_rank + 1),
                        (size_t)C * c->dim, (size_t)C * c->dim, m->be->attention_saved_floats(1, c->heads, C, g->cap, hd),
                        (size_t)C * c->ffn, (size_t)C * c->ffn, (size_t)C * c->ffn, logits, kvd, kvd,
                        m->be->decode_attention_floats(c->heads, g->cap, hd), 2};
    float **slots[15] = {&b->x, &b->ln, &b->rstd, &b->t, &b->q, &b->ao, &b->att, &b->gate, &b->up, &b->h,
                         &b->logits, &b->k, &b->v, &b->dec, (float **)&b->step};
    size_t used = 0;
    for (int i = 0; i < 15; i++) {
        *slots[i] = base ? base + used : NULL;
        used += (sizes[i] + 15) / 16 * 16;
    }
    return used;
}

int generator_build(Generator *g, Model *m, Err *err) {
    memset(g, 0, sizeof *g);
    const ModelConfig *c = &m->cfg;
    size_t kvd = (size_t)c->dim / c->heads * c->kv_heads, cache = (size_t)c->layers * c->seq * kvd;
    ChunkBuffers b;
    g->model = m;
    g->cap = c->seq;
    g->chunk = c->seq < PREFILL_CHUNK ? c->seq : PREFILL_CHUNK;
    g->k_cache = m->be->alloc(cache * sizeof(float));
    g->v_cache = m->be->alloc(cache * sizeof(float));
    LinearGroupSizes sizes = linear_group_sizes(m);
    g->max_rank = (int)sizes.max_rank;
    g->max_pack = sizes.max_pack;
    g->work_floats = chunk_layout(g, g->chunk, NULL, &b);
    g->work = m->be->alloc(g->work_floats * sizeof(float));
    g->logits = m->be->host_alloc(sizeof(float) * c->vocab);   // downloaded every token
    g->probs = malloc(sizeof(float) * c->vocab);
    g->cand = malloc(sizeof(SampleCandidate) * c->vocab);
    g->history = malloc(sizeof(int32_t) * g->cap);
    g->pack = m->be->alloc(sizes.total_pack * sizeof(float));
    g->packed = malloc(sizeof(float *) * 4 * c->layers);
    g->host_pack = malloc(sizeof(float) * (2 * sizes.max_pack + 1));
    if (!g->k_cache || !g->v_cache || !g->work || !g->logits || !g->probs || !g->cand || !g->history || !g->pack ||
        !g->packed || !g->host_pack) {
        generator_free(g);
        return err_set(err, "out of memory for the KV cache (%.1f MB), the factors (%.1f MB) and the scratch (%.1f "
                       "MB)", 2.0 * cache * 4 / 1e6, sizes.total_pack * 4 / 1e6, g->work_floats * 4 / 1e6);
    }
    pack_factors(g);
    return 0;
}

void generator_free(Generator *g) {
    if (g->model) {
        if (g->graph) g->graph_backend->graph_release(g->graph);
        g->model->be->release(g->k_cache);
        g->model->be->release(g->v_cache);
        g->model->be->release(g->work);
        g->model->be->release(g->pack);
        g->model->be->host_release(g->logits);
    }
    free(g->packed);
    free(g->host_pack);
    free(g->probs);
    free(g->cand);
    free(g->history);
    memset(g, 0, sizeof *g);
}

void generator_reset(Generator *g) {
    g->len = 0;
    pack_factors(g);   // the weights may have changed since the last run
}

// The group's products of rmsnorm(b->x)·gain for Tq tokens into its outputs; one token's
// fold the norm into the first products (Backend.row_products).
static void normed_group_forward(const Generator *g, const LinearGroup *group, const float *gain, int Tq,
                                 ChunkBuffers *b, const float *packed) {
    const Model *m = g->model;
    const ModelConfig *c = &m->cfg;
    if (Tq == 1) {
        RowInput normed = {ROW_RMSNORM, b->x, gain, NULL, c->norm_eps, c->dim, b->ln, b->rstd};
        linear_group_row(m, group, b->t, &normed, 0.0f, packed);
        return;
    }
    m->be->rmsnorm_forward(b->ln, b->rstd, b->x, gain, Tq, c->dim, c->norm_eps);
    linear_group_forward(m, group, b->t, b->ln, Tq, 0.0f, packed, NULL);
}

// Layer l's cache rows (cap, kvd): keys into *kc, values into *vc.
static void layer_cache(const Generator *g, int l, float **kc, float **vc) {
    const ModelConfig *c = &g->model->cfg;
    size_t rows = (size_t)l * g->cap * (c->dim / c->heads * c->kv_heads);
    *kc = g->k_cache + rows, *vc = g->v_cache + rows;
}

// Attention of Tq tokens at positions len.. whose residual is in b->x, into b->ao; their keys
// and values go straight into the cache rows len.. (the position is the host's g->len).
static void attention_chunk(Generator *g, int l, int Tq, ChunkBuffers *b) {
    const Model *m = g->model;
    const Backend *be = m->be;
    const ModelConfig *c = &m->cfg;
    const LayerWeights *w = &m->layer[l];
    int hd = c->dim / c->heads, kvd = hd * c->kv_heads, pos0 = g->len;
    float *kc, *vc;
    layer_cache(g, l, &kc, &vc);
    float *k_new = kc + (size_t)pos0 * kvd, *v_new = vc + (size_t)pos0 * kvd;   // (Tq, kvd) rows
    LinearGroup qkv = linear_group_qkv(w, b->q, k_new, v_new);
    normed_group_forward(g, &qkv, param(m, w->attn_norm), Tq, b, g->packed[4 * l]);
    be->rope_forward(b->q, b->q, 1, Tq, c->heads, hd, pos0, c->rope_theta);
    be->rope_forward(k_new, k_new, 1, Tq, c->kv_heads, hd, pos0, c->rope_theta);
    be->attention_forward(b->ao, b->att, b->q, kc, vc, 1, Tq, pos0 + Tq, c->heads, c->kv_heads, hd);
}

// The same for one token whose position is b->step[1] on the device: nothing here depends on
// the host's g->len, so a recorded graph of it replays at every position.
static void attention_token(Generator *g, int l, ChunkBuffers *b) {
    const Model *m = g->model;
    const Backend *be = m->be;
    const ModelConfig *c = &m->cfg;
    const LayerWeights *w = &m->layer[l];
    int hd = c->dim / c->heads;
    const int32_t *pos = b->step + 1;
    float *kc, *vc;
    layer_cache(g, l, &kc, &vc);
    LinearGroup qkv = linear_group_qkv(w, b->q, b->k, b->v);
    normed_group_forward(g, &qkv, param(m, w->attn_norm), 1, b, g->packed[4 * l]);
    be->decode_attention(b->ao, b->dec, b->q, b->k, b->v, kc, vc, pos, g->cap, c->heads, c->kv_heads, hd,
                         c->rope_theta);
}

// The rest of block l after attention, on Tq tokens: the output projection into the residual,
// then the MLP.
static void block_rest(Generator *g, int l, int Tq, ChunkBuffers *b) {
    const Model *m = g->model;
    const Backend *be = m->be;
    const ModelConfig *c = &m->cfg;
    const LayerWeights *w = &m->layer[l];
    LinearGroup o = linear_group_one(&w->wo, b->x), mlp13 = linear_group_13(w, b->gate, b->up);
    LinearGroup down = linear_group_one(&w->w2, b->x);
    const float *const *packed = g->packed + 4 * l;   // q/k/v, wo, w1/w3, w2
    linear_group_forward(m, &o, b->t, b->ao, Tq, 1.0f, packed[1], NULL);
    normed_group_forward(g, &mlp13, param(m, w->mlp_norm), Tq, b, packed[2]);
    if (Tq == 1) {   // SwiGLU folded into the down projection's first products
        RowInput h = {ROW_SWIGLU, b->gate, NULL, b->up, 0.0f, c->ffn, b->h, NULL};
        linear_group_row(m, &down, b->t, &h, 1.0f, packed[3]);
        return;
    }
    be->swiglu_forward(b->h, b->gate, b->up, (long)Tq * c->ffn);
    linear_group_forward(m, &down, b->t, b->h, Tq, 1.0f, packed[3], NULL);
}

// The next-token logits of the residual row `last` into b->logits (device).
static void head_logits(const Generator *g, const float *last, ChunkBuffers *b) {
    const Model *m = g->model;
    const ModelConfig *c = &m->cfg;
    RowInput normed = {ROW_RMSNORM, last, param(m, m->norm), NULL, c->norm_eps, c->dim, b->ln, b->rstd};
    RowProduct head = {b->logits, param(m, m->head), c->vocab, 0.0f};
    m->be->row_products(&normed, &head, 1);   // logits(vocab) = rmsnorm(last)·headᵀ
}

// Feed Tq ≤ cap − len tokens through the scratch b; the logits of the last one go to g->logits.
static void feed_chunk(Generator *g, ChunkBuffers *b, const int32_t *ids, int Tq) {
    const Model *m = g->model;
    const Backend *be = m->be;
    const ModelConfig *c = &m->cfg;
    int32_t *dev_ids = (int32_t *)b->logits;   // ids borrow the logits slot until the head runs
    be->upload(dev_ids, ids, sizeof(int32_t) * Tq);
    be->embedding_forward(b->x, dev_ids, param(m, m->embed), Tq, c->dim);
    for (int l = 0; l < c->layers; l++) {
        attention_chunk(g, l, Tq, b);
        block_rest(g, l, Tq, b);
    }
    head_logits(g, b->x + (size_t)(Tq - 1) * c->dim, b);   // only the last position needs logits
    be->download(g->logits, b->logits, sizeof(float) * c->vocab);
    memcpy(g->history + g->len, ids, sizeof(int32_t) * Tq);
    g->len += Tq;
}

// One token, its id and position already in b->step: every input from the device.
static void decode_token(Generator *g, ChunkBuffers *b) {
    const Model *m = g->model;
    m->be->embedding_forward(b->x, b->step, param(m, m->embed), 1, m->cfg.dim);
    for (int l = 0; l < m->cfg.layers; l++) {
        attention_token(g, l, b);
        block_rest(g, l, 1, b);
    }
    head_logits(g, b->x, b);
}

// decode_token through a recorded graph where the backend records: the first token after a
// build or a stale graph runs directly (any buffer the backend sizes on first use takes its
// size), the next is recorded and replayed, every later one only replayed — one launch where
// there were a hundred. A recording that fails leaves this generator running directly.
static void run_token(Generator *g, ChunkBuffers *b) {
    const Backend *be = g->model->be;
    if (g->graph && be->graph_launch && be->graph_launch(g->graph) == 0) return;   // the usual case
    if (g->graph) {   // stale, or a backend that cannot replay it (a profile): drop it
        g->graph_backend->graph_release(g->graph);
        g->graph = NULL, g->graph_warm = 0;
    }
    if (!be->graph_begin || g->graph_failed || !g->graph_warm || be->graph_begin() != 0) {
        decode_token(g, b);
        g->graph_warm = 1;
        return;
    }
    decode_token(g, b);   // recorded, not run
    g->graph = be->graph_end();
    g->graph_backend = be;
    if (g->graph && be->graph_launch(g->graph) == 0) return;
    if (g->graph) be->graph_release(g->graph);
    g->graph = NULL, g->graph_failed = 1;   // directly from now on
    decode_token(g, b);
}

const char *generator_decode_path(const Generator *g) {
    return g->graph ? "graph" : g->graph_failed ? "direct: recording failed" : "direct";
}

// Feed one token at position g->len.
static void feed_token(Generator *g, ChunkBuffers *b, int32_t id) {
    const Backend *be = g->model->be;
    int32_t step[2] = {id, g->len};
    be->upload(b->step, step, sizeof step);
    run_token(g, b);
    be->download(g->logits, b->logits, sizeof(float) * g->model->cfg.vocab);
    g->history[g->len++] = id;
}

// Of n tokens fed to an empty cache, the ones the window holds when they are in: the sliding
// below keeps re-encoding the last half afresh, so the end state is that of feeding only these
// (a prompt of 8 000 tokens into a context of 128 took 0.8 s for the same state).
static int tokens_kept(int cap, int n) {
    int len = 0;
    while (n > 0) {
        if (len == cap) len = cap / 2;
        int chunk = n < cap - len ? n : cap - len;
        len += chunk;
        n -= chunk;
    }
    return len;
}

// A decoded token is a few dozen small steps, each a parallel region on the CPU. With
// OMP_WAIT_POLICY=passive (advised where other programs share the cores) the idle threads
// sleep between them and waking them costs more than the step: on 2 cores, small models
// decoded 2.3–3.7× slower on 2 threads than on 1 (`bench generate`). So a single token is
// fed on one thread there; prompts, training and spinning waits keep every thread.
int generate_decode_threads(const Backend *be) {
    const char *policy = getenv("OMP_WAIT_POLICY");
    int threads = omp_get_max_threads();
    return policy && strcasecmp(policy, "passive") == 0 && strcmp(be->name, "cpu") == 0 ? 1 : threads;
}

// Returns the thread count to restore (0: nothing changed).
static int one_thread_if_passive(const Backend *be) {
    int threads = omp_get_max_threads();
    if (threads < 2 || generate_decode_threads(be) != 1) return 0;
    openblas_set_num_threads(1);   // in OpenBLAS's OpenMP build this sets OpenMP's count too
    omp_set_num_threads(1);
    return threads;
}

static void restore_threads(int threads) {
    if (threads <= 0) return;
    openblas_set_num_threads(threads);
    omp_set_num_threads(threads);
}

static int feed(Generator *g, const int32_t *ids, int n, Err *err) {
    ChunkBuffers b;   // laid out once per call; the layout is checked against the allocation
    if (chunk_layout(g, g->chunk, g->work, &b) > g->work_floats)   // e.g. the GPU's attention mode changed
        return err_set(err, "this generator's scratch was sized for other attention kernels: build it again");
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= g->model->cfg.vocab)
            return err_set(err, "token id %d out of range for vocab %d", ids[i], g->model->cfg.vocab);
    if (g->len == 0 && n > g->cap) {
        int kept = tokens_kept(g->cap, n);
        ids += n - kept, n = kept;
    }
    while (n > 0) {
        if (g->len == g->cap) {
            // slide the window: keep the last half of the context and encode it afresh (a
            // context of one token keeps none). feed_chunk copies the kept ids to the front of
            // the history, which they do not overlap (keep ≤ cap − keep).
            int keep = g->cap / 2;
            const int32_t *kept = g->history + g->len - keep;
            g->len = 0;
            for (int done = 0, piece; done < keep; done += piece) {
                piece = keep - done < g->chunk ? keep - done : g->chunk;
                feed_chunk(g, &b, kept + done, piece);
            }
        }
        int chunk = n < g->cap - g->len ? n : g->cap - g->len;
        if (chunk > g->chunk) chunk = g->chunk;
        if (chunk == 1) feed_token(g, &b, ids[0]);
        else feed_chunk(g, &b, ids, chunk);
        ids += chunk;
        n -= chunk;
    }
    if (backend_failed(g->model->be, err)) return -1;
    // A model with NaN or infinite parameters would otherwise sample noise without a word (the
    // sampler's own pass over the vocabulary costs more than this one).
    for (int i = 0; i < g->model->cfg.vocab; i++)
        if (!isfinite(g->logits[i]))
            return err_set(err, "the next-token logits are not finite (%s at id %d): the model's parameters hold NaN "
                                "or infinity, or its activations overflowed",
                           nonfinite_text(g->logits[i]), i);
    return 0;
}

int generator_feed(Generator *g, const int32_t *ids, int n, Err *err) {
    if (n <= 0) return err_set(err, "nothing to feed: the prompt has no tokens");
    int threads = n == 1 ? one_thread_if_passive(g->model->be) : 0;
    int rc = feed(g, ids, n, err);
    restore_threads(threads);
    return rc;
}

// ---------------------------------------------------------------------------------------------
// sampling

static int32_t argmax(const float *x, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++) if (x[i] > x[best]) best = i;
    return best;
}

// a above b in the heap: the smaller p in a min-heap (select_top_k), the larger in a max-heap
static int heap_above(const SampleCandidate *a, const SampleCandidate *b, int max_heap) {
    return max_heap ? a->p > b->p : a->p < b->p;
}

static void sift_down(SampleCandidate *heap, int k, int i, int max_heap) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, s = i;
        if (l < k && heap_above(&heap[l], &heap[s], max_heap)) s = l;
        if (r < k && heap_above(&heap[r], &heap[s], max_heap)) s = r;
        if (s == i) return;
        SampleCandidate t = heap[i]; heap[i] = heap[s]; heap[s] = t;
        i = s;
    }
}

// The k most probable ids into cand[0..k) with a size-k min-heap: O(V log k), no full sort.
static int select_top_k(const float *p, int V, int k, SampleCandidate *cand) {
    for (int i = 0; i < k; i++) cand[i] = (SampleCandidate){p[i], i};
    for (int i = k / 2 - 1; i >= 0; i--) sift_down(cand, k, i, 0);
    for (int i = k; i < V; i++)
        if (p[i] > cand[0].p) { cand[0] = (SampleCandidate){p[i], i}; sift_down(cand, k, 0, 0); }
    return k;
}

// The nucleus of c[0..n): the most probable candidates, taken one at a time off a max-heap
// until their mass reaches `nucleus` (or all are taken). Each taken one goes to the end of the
// array, so the nucleus is c[first..n), in descending order from c[n−1]. Sorting all n instead
// halved the tokens/s at high temperatures, where most of the vocabulary passes the cutoff.
static int take_nucleus(SampleCandidate *c, int n, double nucleus, double *kept_mass) {
    for (int i = n / 2 - 1; i >= 0; i--) sift_down(c, n, i, 1);
    double mass = 0;
    int end = n;
    while (end > 0) {
        mass += c[0].p;
        SampleCandidate top = c[0];
        c[0] = c[--end];
        c[end] = top;
        sift_down(c, end, 0, 1);
        if (mass >= nucleus) break;
    }
    *kept_mass = mass;
    return end;
}

int32_t sampler_sample(const SamplerConfig *s, Generator *g, uint64_t *rng) {
    int V = g->model->cfg.vocab;
    float *p = g->probs;
    if (s->temperature <= 0) return argmax(g->logits, V);
    float mx = g->logits[argmax(g->logits, V)];
    double total = 0;
    #pragma omp simd reduction(+ : total)   // a vectorized exp: libm's took ~5 % of a small model's token
    for (int i = 0; i < V; i++) {
        float e = cpu_expf((g->logits[i] - mx) / s->temperature);   // ≤ 1: the max's is 1
        p[i] = e;
        total += e;
    }
    #pragma omp simd
    for (int i = 0; i < V; i++) p[i] = (float)(p[i] / total);
    int n = 0;
    if (s->top_k > 0 && s->top_k < V) n = select_top_k(p, V, s->top_k, g->cand);
    else if (s->top_p < 1.0f) {
        // a token below (1−top_p)/V can never be inside the nucleus (the V−1 tokens above it
        // would hold more than top_p): sort only the others. The most probable (≥ 1/V) stays.
        float cutoff = (1.0f - s->top_p) / V;
        for (int i = 0; i < V; i++) if (p[i] >= cutoff) g->cand[n++] = (SampleCandidate){p[i], i};
    }
    float r = rng_uniform(rng);
    if (n == 0) {   // no cut: draw from the whole distribution
        double acc = 0;
        for (int i = 0; i < V; i++) if ((acc += p[i]) > r) return i;
        return V - 1;
    }
    SampleCandidate *c = g->cand;
    double mass = 0, keep_mass;
    for (int i = 0; i < n; i++) mass += c[i].p;
    // the nucleus: of the whole distribution (the tokens left out above only save sorting), or
    // of the top k renormalized
    double nucleus = s->top_k > 0 && s->top_k < V ? s->top_p * mass : s->top_p;
    int first = take_nucleus(c, n, nucleus, &keep_mass);
    double acc = 0, target = r * keep_mass;
    for (int i = n - 1; i >= first; i--) if ((acc += c[i].p) > target) return c[i].id;
    return c[first].id;
}
