// dataset.h — tokenized text corpora: a cached, memory-mapped token file split into train and
// validation, with seeded random batches of B×(T+1) tokens.
#pragma once
#include <stdint.h>
#include <stddef.h>
#include "err.h"
#include "progress.h"
#include "corpus_files.h"
#include "../tokenizer/tokenizer.h"

// What a checkpoint records of the data a model trains on, so that a resume on other data can be
// told apart (a sampler state means nothing there): its size, its train split's, and a hash of
// what its token ids are made of (the source's bytes in order, file by file, whatever the files
// are named; the tokenizer; the cache's layout version): equal hashes, equal ids. All 0: no
// data, or a file from before they were recorded.
typedef struct DataIdentity {
    long tokens, train;
    uint64_t hash;            // 0: not recorded (a file from before it was)
} DataIdentity;

typedef struct Dataset {
    char source[1024];        // the file or folder that was tokenized
    char cache_path[1024];    // the token cache file
    int vocab_size;
    int token_bytes;          // 2 (uint16) or 4 (uint32)
    long n_tokens;            // all tokens in the cache
    long n_train;             // tokens [0, n_train) are train, [n_train, n_tokens) validation
    long long source_bytes;   // of the text the tokens came from
    uint64_t token_hash;      // DataIdentity.hash: of the source's bytes in order, the tokenizer, the layout
    int reused_cache;         // 1 when an up-to-date cache was found and not rebuilt
    unsigned older_cache;     // the version of an older lrsh's cache found there and rebuilt (0: none)
    SourceListing listing;    // the files the tokens came from
    const void *tokens;       // mmap'ed token array (after the header)
    void *map;                // the whole mapping
    size_t map_size;
    // The mapped file as it was (dataset_check_unchanged): rewritten in place, the mapping sees
    // the new bytes — other data, unchecked ids, or a fault once it is cut short.
    unsigned long long cache_ino;
    long long cache_mtime_ns;
} Dataset;

// Tokenize `path` (a UTF-8 text file, or a folder: every *.txt under it, sorted) with tok into
// a cache next to it (or under cache_dir when non-NULL), reusing an up-to-date cache.
// val_fraction in [0, 0.5]. Streams: memory use does not grow with the file size.
int dataset_load(Dataset *ds, const char *path, const Tokenizer *tok, double val_fraction,
                 const char *cache_dir, Err *err);
// The same, reporting source bytes tokenized (not called when the cache is reused); progress
// may stop it, and then nothing is cached.
int dataset_load_progress(Dataset *ds, const char *path, const Tokenizer *tok, double val_fraction,
                          const char *cache_dir, ProgressFn progress, void *ctx, Err *err);
void dataset_free(Dataset *ds);
// ds's identity for a checkpoint (all 0 for NULL or no data).
DataIdentity dataset_identity(const Dataset *ds);
// The files dataset_load reads from path: the file itself, or every regular *.txt under a
// folder (hidden entries skipped, symbolic links followed but for a folder read already or one
// at or above the source), sorted. *paths
// gets *count strings, given back by dataset_files_free.
int dataset_source_files(const char *path, char ***paths, size_t *count, Err *err);
void dataset_files_free(char **paths, size_t count);
// For tests: called with a token cache's path once it is mapped, before its ids are read (a
// test cuts the file short there, as another program rewriting it can).
extern void (*dataset_cache_mapped_hook)(const char *path);
// Where dataset_load keeps path's tokens by tok: SOURCE.TOK.tok, TOK a hash of the tokenizer
// (one cache per corpus and tokenizer), or under cache_dir (or the user's cache folder when
// the source's folder is not writable).
int dataset_cache_path(const char *path, const Tokenizer *tok, const char *cache_dir, char *out, size_t cap, Err *err);
// Whether path starts as a token cache does (a hint for a file given to the wrong command).
int dataset_is_token_cache(const char *path);
// 0 while the mapped cache file is as it was loaded (or gone, or replaced by another file: the
// mapping keeps the old one); an error when the same file was rewritten in place since.
int dataset_check_unchanged(const Dataset *ds, Err *err);

// The default corpus (the fortunes collection from Debian's `fortunes` packages), concatenated
// into one text file at out_path; returns 0 or -1 with err set.
int dataset_default_corpus(const char *out_path, Err *err);

// Whether the train (split = 0) or validation (split = 1) part holds a window of T+1 tokens;
// the error says how many it has.
int dataset_window_fits(const Dataset *ds, int split, int T, Err *err);
// Fill tokens[B×(T+1)] with B random windows of T+1 consecutive tokens from the train
// (split = 0) or validation (split = 1) part, drawn with *rng_state (advanced).
int dataset_batch(const Dataset *ds, int split, int B, int T, uint64_t *rng_state, int32_t *tokens, Err *err);

// The loss of a model that knows only token frequencies: the unigram entropy of the validation
// split, in nats. A run whose loss stays there has learned nothing else (the plateau that
// factorized AdamW falls to at a high learning rate). NAN when there is no such split, or when
// the token cache was rewritten or cut short since it was loaded.
double dataset_unigram_entropy(const Dataset *d);
