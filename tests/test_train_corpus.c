// test_train_corpus.c — the tiny preset trained with AdamW on the default corpus must bring
// the validation loss well below the unigram entropy of the data (which the test computes).
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <unistd.h>
#include "test.h"
#include "../engine/train.h"
#include "../engine/dataset.h"
#include "../tokenizer/tokenizer.h"

static double token_at(const Dataset *ds, long i) {
    return ds->token_bytes == 2 ? ((const uint16_t *)ds->tokens)[i] : ((const uint32_t *)ds->tokens)[i];
}

// H = −Σ p log p over the train split's token frequencies, in nats (the loss of the best
// model that ignores context).
static double unigram_entropy(const Dataset *ds) {
    long *count = calloc((size_t)ds->vocab_size, sizeof(long));
    for (long i = 0; i < ds->n_train; i++) count[(long)token_at(ds, i)]++;
    double h = 0;
    for (int v = 0; v < ds->vocab_size; v++)
        if (count[v]) { double p = (double)count[v] / ds->n_train; h -= p * log(p); }
    free(count);
    return h;
}

static void test_tiny_learns_the_default_corpus(void) {
    Err err;
    char dir[] = "/tmp/lrsh-train-XXXXXX", corpus[256], tokpath[256];
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(corpus, sizeof corpus, "%s/fortunes.txt", dir);
    snprintf(tokpath, sizeof tokpath, "%s/tok.model", dir);
    CHECK_OK(dataset_default_corpus(corpus, &err));
    Tokenizer *tok = tokenizer_train(corpus, 1024, TOKENIZER_BPE, tokpath, NULL, NULL, &err);
    CHECK(tok != NULL, "tokenizer trained: %s", err.msg);
    if (!tok) return;
    Dataset ds;
    CHECK_OK(dataset_load(&ds, corpus, tok, 0.05, dir, &err));
    double h = unigram_entropy(&ds);

    ModelConfig mc;
    Model m;
    Trainer tr;
    OptimConfig oc;
    CHECK_OK(model_config_preset(&mc, "tiny", &err));
    mc.vocab = tokenizer_vocab_size(tok);
    CHECK_OK(model_build(&m, &mc, backend_cpu(0), &err));
    CHECK_OK(optim_config_default(&oc, "adamw", &err));
    oc.lr = 3e-3f;
    oc.warmup = 20;
    oc.horizon = 300;
    CHECK_OK(trainer_build(&tr, &m, &oc, 1, &err));
    double before, after;
    CHECK_OK(trainer_eval(&m, &ds, 8, 64, 20, 7, &before, &err));
    for (int i = 0; i < 300; i++) {
        StepStats s;
        if (trainer_step(&tr, &ds, 8, 64, 1, &s, &err)) { CHECK(0, "step %d failed: %s", i + 1, err.msg); break; }
    }
    CHECK_OK(trainer_eval(&m, &ds, 8, 64, 20, 7, &after, &err));
    printf("  unigram entropy %.3f nats; validation loss %.3f → %.3f after 300 steps\n", h, before, after);
    CHECK(after < h - 1.0, "validation loss %.3f should be at least 1 nat below the unigram entropy %.3f", after, h);
    trainer_free(&tr);
    model_free(&m);
    dataset_free(&ds);
    tokenizer_free(tok);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "cleanup");
}

int main(void) {
    RUN(test_tiny_learns_the_default_corpus);
    return TEST_SUMMARY();
}
