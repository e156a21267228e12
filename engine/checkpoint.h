// checkpoint.h — save and load a model (plus optimizer state and tokenizer) as a safetensors
// file, so any safetensors reader opens it and a checkpoint alone is enough to resume or
// generate.
//
// File layout (exactly safetensors): u64 little-endian header length N, N bytes of JSON padded
// with spaces to a multiple of 8, then the data buffer. Tensors, in this order, back to back:
//   every model tensor by its name ("embed", "blocks.0.attn.wq.A", ...), F32 or BF16;
//     matrices have shape [rows, cols]; the norm gains (attn_norm, mlp_norm, norm) are 1-D [dim];
//   with a trainer (unless include_optim = 0): every tensor optimizer_state_tensors lists for
//     its optimizer, in its order and under its names, always F32; shape [rows, cols], 1-D
//     [cols] when it has one row. That is "optim.m.NAME" (momentum or AdamW first moment) for
//     every tensor, "optim.v.NAME" (second moment) for those an AdamW-type rule updates, and per
//     factorized matrix W = A·Bᵀ the power-iteration vectors "optim.pv.W.A", "optim.pv.W.B"
//     (required by spectron and renorm; for the other optimizers only their σ diagnostics
//     use them). Files from before the diagnostics were exact also hold "optim.dv.W" and
//     "optim.wv.W": unknown now, so ignored;
//   "tokenizer.model": the serialized SentencePiece model, U8 [bytes].
// "__metadata__" (strings only, as the spec requires): format=lrsh, lrsh_version=2, config (the
// ModelConfig as a JSON string; seed as a decimal string), and with a trainer: step, data_rng
// (decimal), optimizer (its name), optim_config (a JSON object of strings: every option
// optim_config_key lists, as optim_config_get prints it, e.g. {"lr":"0.0199999996",
// "nesterov":"on","ns_steps":"5",...}, switches on|off (yes|no in earlier files, read the
// same); the hidden test-only exact_polar is not saved), optim_t,
// and once the trainer has taken an update its batches: batch, seq, accum (decimal, ≥ 1, all
// three or none; a file without them still loads). An ensemble file writes them once, unprefixed.
// With or without a trainer, the saver's next batches when given (CheckpointOptions.next):
// next_batch, next_seq, next_accum (decimal; batch and accum ≥ 1, seq 0 for the context; all
// three or none); the saver's session seed when given: next_seed (decimal); and the data it
// trains on when given (DataIdentity): data_tokens, data_train (decimal: all tokens, the train
// split's), and data_hash (decimal, ≥ 1: the ids' identity; a file of the two sizes alone loads);
// the run it was training in when given: run (the shell's run name, < 176 bytes) and run_id.
//
// Loading: version 1 (AdamW moments and a fixed list of options) is refused with a message.
// The optimizer config is optim_config_default(optimizer), then optim_config_set for every saved
// option (an option the file lacks keeps its default; one the optimizer does not take, or a
// value it refuses, is an error naming it). Optimizer state is any "optim.*" tensor: with some,
// the loader builds the trainer from that config, even when the caller asks for none (a brief
// cost in memory, so that a file is accepted or refused the same way whatever the caller asks),
// and fills each of its state tensors from the file. A required one missing, or one of another shape or dtype, is an error naming it; a
// diagnostic-only one missing keeps its built value; "optim.*" tensors it does not list (another
// optimizer's state) are ignored.
//
// Ensemble files (checkpoint_save_members) hold k models of one config side by side: every
// model tensor and every "optim.*" tensor of member i gets the prefix "member.{i}." (e.g.
// "member.0.embed", "member.0.optim.m.embed"), in member order; "tokenizer.model" appears once,
// unprefixed. __metadata__ adds ensemble_k (decimal, ≥ 1; its presence is what makes a file an
// ensemble file), per member "member.{i}.seed" (its ModelConfig seed; config is member 0's) and,
// with trainers, "member.{i}.step", "member.{i}.data_rng", "member.{i}.optim_t" instead of the
// single-model step/data_rng/optim_t; optimizer and optim_config are shared (every member's must be
// equal). Keys the caller adds (the ensemble's own state: ensemble.c) ride along as strings.
// Loading an ensemble file validates as strictly as a single model: every member complete, each
// tensor's shape from the config, one name per member (no leading zeros, i < ensemble_k), offsets
// inside the buffer and tiling it. checkpoint_load refuses an ensemble file (and
// checkpoint_load_members a single-model one) with a message saying which loader to use.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "err.h"
#include "model.h"
#include "train.h"
#include "../tokenizer/tokenizer.h"

typedef enum { CHECKPOINT_F32, CHECKPOINT_BF16 } CheckpointDtype;

typedef struct CheckpointOptions {
    CheckpointDtype dtype;   // of the parameters; BF16 rounds to nearest even (NaN kept)
    int include_optim;       // 1: save the optimizer state (needed for an exact resume)
    // The batches the next update takes when its command names none (the shell's `set batch`,
    // `set seq`, `set accum`; seq 0: the model's context): next_batch, next_seq, next_accum in
    // the metadata, so that a resumed session goes on as the saving one would have, one-off
    // batch= or seq= of the last update or not. batch 0: not recorded.
    TrainShape next;
    // The saving session's seed (the shell's `set seed`, from which its evaluation and
    // alignment batches come): next_seed, so that a resume evaluates on the same batches.
    int has_next_seed;
    uint64_t next_seed;
    // The loaded data (sizes and hash; all 0: none loaded), so that a resume on other data, or
    // another split, can be told apart: a sampler state means nothing there.
    DataIdentity data;
    // The run the model was training in (the shell's run name and id; NULL or "": none), so
    // that a resume goes on in it rather than under the file's name: run (a string), run_id
    // (decimal). Only a hint: a name of 176 bytes or more, or an id that is no number, is
    // ignored when loading (the model loads all the same).
    const char *run;
    uint64_t run_id;
} CheckpointOptions;

// Optimizer state in a file that no optimizer writes (NaN, ±inf, a negative second moment): the
// trainer it belonged to starts from fresh state instead.
typedef struct StateDamage {
    long values;      // 0: none
    char first[128];  // the first state tensor holding one ("member.1.optim.v.head")
} StateDamage;

typedef struct CheckpointInfo {
    int step;                // updates taken when saved (0 when saved without a trainer or progress)
    char optimizer[16];      // "" when saved without a trainer or progress
    OptimConfig optim;       // the optimizer's settings when optimizer[0] (state or not)
    CheckpointDtype dtype;   // BF16 when any parameter tensor is BF16
    int has_optim;           // optimizer state is in the file (a trainer was restored from it)
    int has_tokenizer;       // "tokenizer.model" is in the file
    uint64_t data_rng;       // the batch sampler's state when saved (0 without a trainer)
    TrainShape shape;        // the last update's batch, seq, accum (0s: none, or an older file)
    TrainShape next;         // CheckpointOptions.next as saved (batch 0: none, or an older file)
    int has_next_seed;       // CheckpointOptions.next_seed was saved (0: an older file)
    uint64_t next_seed;
    DataIdentity data;       // CheckpointOptions' as saved (0s: none, or an older file; hash 0: older)
    char run[176];           // CheckpointOptions.run as saved ("": none, an older file, or ignored)
    uint64_t run_id;         // and its id (0: none)
    size_t file_bytes;
    int ensemble_k;          // an ensemble file's members (0: a single model); step, data_rng: member 0's
    long nonfinite;          // parameter values that are NaN or ±inf (loaded as they are)
    char nonfinite_tensor[64];   // the first tensor holding one ("" when none)
    StateDamage state_damage;    // the state was dropped for fresh state (loaded files only)
} CheckpointInfo;

// A limit on ensemble_k that a file may claim (the ensemble layer may allow fewer).
#define CHECKPOINT_MAX_MEMBERS 64

// Options a caller gets with opt == NULL: F32 parameters, optimizer state included.
CheckpointOptions checkpoint_default_options(void);

// Write m (and tr's step, data position and optimizer state when tr != NULL; tok when != NULL) to
// path through a temporary file beside it (tempfile.h) + fsync + rename: on any failure path is
// left as it was.
int checkpoint_save(const char *path, const Model *m, const Trainer *tr, const Tokenizer *tok,
                    const CheckpointOptions *opt, Err *err);

// A model not trained since it was loaded (or averaged) still has a place in training: the
// step, the batch sampler's state and the optimizer settings the next trainer resumes with.
typedef struct CheckpointProgress {
    int step;
    uint64_t data_rng;
    OptimConfig optim;
    TrainShape shape;
} CheckpointProgress;

// checkpoint_save without a trainer but with that progress: the file reads back as one saved
// by a trainer without its optimizer state (the step, data position and settings; no moments).
int checkpoint_save_progress(const char *path, const Model *m, const CheckpointProgress *progress,
                             const Tokenizer *tok, const CheckpointOptions *opt, Err *err);

// Validate the whole file, then build a fresh model on be into *out_model; when out_trainer
// != NULL and the file holds optimizer state, a trainer over out_model with the saved state
// (else *out_trainer is zeroed); when out_tok != NULL, the embedded tokenizer or NULL. The
// outputs are written only on success and are NOT freed first: load into fresh objects and
// swap, so a bad file never costs the caller its model. info may be NULL.
int checkpoint_load(const char *path, const Backend *be, Model *out_model, Trainer *out_trainer,
                    Tokenizer **out_tok, CheckpointInfo *info, Err *err);

// As checkpoint_load, from a whole file's size bytes already in memory (read only, not kept
// after the call); name stands for the path in messages (NULL: "(memory)").
int checkpoint_load_bytes(const void *bytes, size_t size, const char *name, const Backend *be, Model *out_model,
                          Trainer *out_trainer, Tokenizer **out_tok, CheckpointInfo *info, Err *err);

// What a file is, from its header alone (nothing beyond __metadata__ and the entries' names and
// dtypes is checked: a load still validates everything): ensemble_k, step, optimizer, dtype,
// has_optim, has_tokenizer, file_bytes. For the shell's `model load` to pick its loader.
int checkpoint_probe(const char *path, CheckpointInfo *info, Err *err);

// ---- ensemble files (layout above) ----------------------------------------------------------

// One extra __metadata__ entry (both strings owned by whoever built the list).
typedef struct CheckpointMeta {
    char *key, *value;
} CheckpointMeta;

// Write k models of one config (seeds may differ) with their trainers (trainers == NULL: none;
// else trainers[i].model == &models[i], one optimizer config), tok when != NULL, and the extra
// metadata (keys must not be ones the layout above uses), atomically as checkpoint_save does.
int checkpoint_save_members(const char *path, int k, const Model *models, const Trainer *trainers,
                            const Tokenizer *tok, const CheckpointMeta *extra, int n_extra,
                            const CheckpointOptions *opt, Err *err);

// What checkpoint_load_members builds; every pointer is owned by it until checkpoint_members_free
// (or until a caller takes the arrays over and NULLs them).
typedef struct CheckpointMembers {
    int k;
    Model *models;            // k models
    Trainer *trainers;        // k trainers over models[i] (NULL when the file has no optimizer settings):
                              // restored state when has_state, else fresh moments at the saved step
    int has_state;
    Tokenizer *tok;           // the embedded tokenizer, or NULL
    CheckpointInfo info;
    CheckpointMeta *meta;     // the __metadata__ entries the layout above does not use, as saved
    int n_meta;
} CheckpointMembers;

// Validate an ensemble file, then build its members on be into *out (written only on success).
int checkpoint_load_members(const char *path, const Backend *be, CheckpointMembers *out, Err *err);
// As checkpoint_load_members from a whole file in memory (name: for messages; NULL: "(memory)").
int checkpoint_load_members_bytes(const void *bytes, size_t size, const char *name, const Backend *be,
                                  CheckpointMembers *out, Err *err);
// The value of an extra metadata entry, or NULL.
const char *checkpoint_members_meta(const CheckpointMembers *cm, const char *key);
// Free whatever *cm still owns (trainers before their models) and zero it.
void checkpoint_members_free(CheckpointMembers *cm);

// Whether path starts as a safetensors file does (an 8-byte little-endian header length that the
// file holds, then '{'), readable or not by this program: what `model save` may write over.
int checkpoint_is_safetensors(const char *path);
