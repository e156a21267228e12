// session.h — everything one run of the shell holds: the backend, the tokenizer, the data, the
// model, the trainer and the settings. The engine objects live here and nowhere else; the
// globals are the signal handlers' flags (lrsh_interrupted, lrsh_stop_notice) and a few files'
// own output state (output.c's pending line end and lost stdout, complete.c's session).
#pragma once
#include <signal.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "../engine/err.h"
#include "../engine/bench.h"
#include "../engine/dataset.h"
#include "../engine/ensemble.h"
#include "../engine/generate.h"
#include "../engine/model.h"
#include "../engine/optim.h"
#include "../engine/train.h"
#include "../kernels/kernels.h"
#include "../tokenizer/tokenizer.h"
#include "runs.h"

#define LRSH_VERSION "0.1.0"
// The largest seed any command or --seed takes (exact as a double, as the option table holds it).
#define SEED_MAX 9000000000000000000LL
// A seed derived from another ("the session seed + calls so far", "the model's seed + i"): past
// SEED_MAX it wraps to 0, so that every seed reported can be given back as seed=.
static inline uint64_t seed_offset(uint64_t seed, uint64_t k) { return (seed + k) % ((uint64_t)SEED_MAX + 1); }
// The seed of every evaluation's batches (`eval`, eval_every=, `ensemble eval`): one fixed sample
// of the validation split whatever `set seed` is, so that two checkpoints, or runs of two seeds,
// are measured on the same batches. Its value is what the default seed 1234 drew when the sample
// followed the session seed: numbers recorded then still hold.
#define EVAL_BATCH_SEED (1234ull ^ 0x5eed5eedull)

// Set by SIGINT; loops that run many steps (train) poll it at step boundaries.
extern volatile sig_atomic_t lrsh_interrupted;
// `set interrupt command`: in a script or pipe a SIGINT stops the command, not the script, and
// presses never add up to leaving lrsh (a driving program's repeated SIGINTs at a slow step).
// A SIGINT is the command's that runs when it comes, or — one that comes between commands — the
// next line's when that line was sent already, else nobody's: lrsh_sigints counts them,
// interrupts_drop marks all so far taken (by a command that ended, or by nobody),
// interrupts_for_command sets lrsh_interrupted for one not taken yet.
extern volatile sig_atomic_t lrsh_interrupt_command;
extern volatile sig_atomic_t lrsh_sigints;
void interrupts_drop(void);
void interrupts_for_command(void);
// Set while a command typed at the prompt runs that stops at step boundaries (progress_begin
// arms it): a Ctrl-C it has not acted on within a second (a big model's step) is acknowledged
// on the terminal, so that it does not look like a hang and the third Ctrl-C, which leaves, is
// not pressed for want of a sign.
extern volatile sig_atomic_t lrsh_stop_notice;
// Set while a training with save=PATH runs (train_save_begin; every command clears it): SIGTERM,
// SIGHUP, SIGUSR1, SIGUSR2 or SIGXCPU (what batch schedulers send before a kill) then stops it
// at the step's end as Ctrl-C does, it saves as it would at any end, and lrsh ends by that
// signal after the command (session_end_if_terminated). A scheduler's SIGTERM before its
// SIGKILL, or a closed terminal, costs the steps since the last save no more.
extern volatile sig_atomic_t lrsh_term_saves;
// Set while `model save` writes its file (cmd_model_save): such a signal then waits for the
// file to be whole and in place, and ends lrsh after the command (a SIGTERM mid-save removed
// the temporary file and ended lrsh silently, the trained model with it).
extern volatile sig_atomic_t lrsh_saving;
// The one of those signals that arrived while lrsh_term_saves, lrsh_saving or
// lrsh_writing_result was set; 0: none.
extern volatile sig_atomic_t lrsh_term_signal;
// Set while a result line is written (output.c): such a signal then waits for the line's end
// (a program reading --json got half a line), whichever thread it reached.
extern volatile sig_atomic_t lrsh_writing_result;
// After a command: when lrsh_term_signal is set, flush what is written and end the process by
// that signal, as it would have ended at once without the save to make.
// It says so in one line, with the unsaved work that goes (a deferred save that failed).
struct Session;
void session_end_if_terminated(const struct Session *s);
// "SIGTERM" (SIGHUP, SIGUSR1, …) when such a signal stopped the command, else NULL.
const char *session_stop_signal(void);
// " by SIGTERM" when such a signal stopped the command, else "": for "interrupted%s".
const char *session_stop_cause(void);
// The signals that end lrsh by default and that schedulers send ahead of a kill: SIGTERM,
// SIGHUP, SIGUSR1, SIGUSR2, SIGXCPU (Slurm's --signal=USR1@90, LSF's USR2 and XCPU).
extern const int lrsh_ending_signals[5];

// Where a model's training stands without a trainer: the step, the batch sampler's state and
// the last update's batches (a loaded checkpoint's, or a trainer's that was dropped).
typedef struct Resume {
    int step;
    uint64_t data_rng;
    TrainShape shape;
} Resume;

static inline Resume trainer_resume(const Trainer *t) { return (Resume){t->step, t->data_rng, t->shape}; }

// The actions that drop a model's unsaved work, each warned about on its own.
typedef enum UnsavedDrop {
    DROP_LEAVE = 1,            // quit, Ctrl-D, Ctrl-C at the prompt
    DROP_MODEL_NEW = 2,
    DROP_MODEL_LOAD = 4,
    DROP_MODEL_FACTORIZE = 8,  // the trained weights become their truncation
    DROP_ENSEMBLE_NEW = 16,    // a trained ensemble replaced
    DROP_ENSEMBLE_USE = 32,    // ensemble use: the other members (one the model they grew from) go
    DROP_ENSEMBLE_AVERAGE = 64,   // ensemble average: the members go, their mean stays
} UnsavedDrop;

typedef struct Session {
    // compute
    const Backend *be;
    int threads;                 // 0: the backend's default (all cores, or OMP_NUM_THREADS when set)
    int default_threads;         // that default, as OpenMP found it at start (`set threads 0` goes back to it)

    // engine state; each `has_` flag says whether the struct beside it is live
    Tokenizer *tok;
    char tok_path[1024];         // its file, or the checkpoint it came embedded in (tok_embedded)
    int tok_embedded;
    Dataset data;
    int has_data;
    ModelConfig model_cfg;       // the config `model new` starts from when given no preset
    char model_preset[16];       // the preset the current config came from (or "loaded"), for `show`
    int model_custom;            // key=value options of `model new` changed that config since
    int model_tok_embedded;      // the model was loaded with its own tokenizer (another one gets a warning)
    Tokenizer *model_tok;        // the model's own tokenizer when the session's changed under it (`model
                                 // save` embeds this one); NULL: the session's is the model's
    Model model;
    int has_model;
    OptimConfig optim;           // the optimizer the next trainer gets
    char optim_from[1024];       // the checkpoint those settings came with ("": `optim` or the default)
    int optim_chosen;            // 1 once `optim`, a checkpoint or a trainer set them (0: the default)
    Trainer trainer;
    int has_trainer;
    Ensemble ens;                // `ensemble new`: K members that `train` trains instead of model
    int has_ensemble;
    Generator gen;               // built for the current model on the first `generate`
    int has_gen;
    // A checkpoint saved without optimizer state still knows its step, data position and
    // batches: the next trainer built continues from them.
    Resume resume;
    // The data a loaded model was training on (its file's sizes and hash; 0s: unknown or
    // already compared), compared once with the data of the next train, step or eval: a
    // resume repeats the run only on the same data and split.
    DataIdentity resume_data;
    int dirty;                   // the model was trained since it was last saved or loaded; while an
                                 // ensemble exists, the ensemble (member 0 carries the model's training)
    int model_dirty;             // while an ensemble exists: the session's own model's `dirty` (a
                                 // later `ensemble new` without seeds= carries it again)
    char model_file[1024];       // the checkpoint last saved or loaded ("": none)
    RunLog runs;                 // training history for `plot`, and the `log FILE` file
    struct InspectState *inspect; // cmd_inspect.c: spectra kept for `spectrum compare=`, `watch`, …
    unsigned generations;        // `generate` calls, so an unseeded one differs from the last

    // settings (`set KEY VALUE`)
    int batch, accum, seq;       // `set`: the batches' defaults (seq 0: the model's context)
    uint64_t seed;
    int json, quiet, errexit;
    int progress_lines;          // `set progress lines`: a pipe's plain progress lines on a terminal too
    char precision[8];           // the GPU's GEMMs: "fp32", "tf32" or "bf16"
    char attention[8];           // the GPU's attention kernels: "gemm", "flash" or "rows"
    char graphs[4];              // a decoded token replayed from a CUDA graph: "on" or "off"
    char fused[4];               // a decoded token through lrsh's fused GPU kernels: "on" or "off"
    char pdl[4];                 // programmatic dependent launch of a decoded token's kernels: "on" or "off"

    // where the command being run came from, for error messages ("file.lrsh:3")
    const char *src_name;
    int src_line;
    int src_command, src_commands;   // which of the line's ';'-separated commands runs (1-based), of how many

    // the JSON result of the command being run (dispatch creates it, handlers add fields)
    cJSON *result;
    int emitted;                 // the handler gave its own result lines (a row each: out_emit)
    cJSON *rows;                 // those lines, printed when the command ends (out_emit_rows)
    int reported;                // the command said what it did (train's steps, plot's chart): a
                                 // failure after it carries that under "partial"
    int quit;                    // `quit` was typed
    int interactive;             // at the readline prompt (leaving with unsaved work asks first)
    int wrap;                    // out_text also refills paragraphs to the terminal's width (help)
    // Which of the actions that drop unsaved work (UnsavedDrop bits) have warned since the model
    // last changed: each asks once for itself, and goes ahead when repeated; more training re-arms all.
    int unsaved_warned;
} Session;

// The step the session's model (or ensemble) stands at.
int session_step(const Session *s);

int session_init(Session *s, int threads, uint64_t seed, Err *err);
void session_free(Session *s);
// Hands the session's GPU settings (precision, attention, graphs, fused, pdl) to the CUDA backend,
// started: before the session computes there (`set device cuda`, `--device cuda`).
int session_apply_gpu_settings(Session *s, Err *err);

// Guards the commands share; each returns 0 or -1 with a message that says what to run first.
int session_need_tokenizer(const Session *s, Err *err);
int session_need_data(const Session *s, Err *err);
int session_need_model(const Session *s, Err *err);

// Drop the things that depend on what is being replaced (a new tokenizer invalidates the data,
// a new model the trainer), saying so to the user.
void session_drop_data(Session *s, const char *why);
void session_drop_trainer(Session *s);
void session_drop_generator(Session *s);
// Free the ensemble (cmd_ensemble.c), saying why when why != NULL.
void session_drop_ensemble(Session *s, const char *why);
// Install m as the session's model (the old one, its trainer and generator are freed); the
// next training step starts a new run. m is moved from: do not free it. MODEL_DERIVED: m grew
// from the current model (factorized, averaged, a member taken, moved to another device) and
// reads its ids with the same tokenizer — its own, where the session's changed under it, stays
// the one `model save` embeds; MODEL_OTHER: m goes with the session's tokenizer (or its file's).
enum { MODEL_OTHER, MODEL_DERIVED };
void session_replace_model(Session *s, Model *m, int how);
// Build the trainer when there is none (with the `optim` settings, continuing from a loaded
// checkpoint's step); says so in a note.
int session_need_trainer(Session *s, Err *err);
// At the prompt, before a command that would replace a model trained since it was saved — once
// its arguments are known to be good: the first try of each such action is refused with a line
// saying how to keep the model, so that only a second drops it. Scripts, -c and pipes go on.
// 0: go ahead.
int session_keep_unsaved(Session *s, UnsavedDrop what, Err *err);
// What Ctrl-D and quit say, once, before leaving unsaved training (naming the ensemble while
// one exists: `model save` saves it then).
const char *session_unsaved_leave_warning(const Session *s);
// Whether a and b are the same tokenizer model, byte for byte (NULL is none).
int session_same_tokenizer(const Tokenizer *a, const Tokenizer *b);
// The model changed since it was saved (trained, factorized, averaged): quit, `model new` and
// `model load` at the prompt warn once before dropping it.
void session_mark_unsaved(Session *s);
// A note when fresh optimizer moments start at a step past the warm-up (full lr at once).
void session_warmup_note(Session *s, int step);
// A warning when step is past the schedule's horizon: the rate is min_lr_ratio·lr, not lr.
void session_horizon_note(Session *s, int step);
// Record a step (history, log file, unsaved flag) and a validation loss; a failed log write
// is reported as a note and turns logging off, never stopping training.
void session_record_step(Session *s, const StepStats *st, double tok_per_s, const StepDiag *diag);
// The batches a command draws: batch=, seq=, accum= as typed, else `set batch|seq|accum` (seq
// 0: the model's context). A seq longer than the context is an error saying where it came from.
typedef struct Args Args;
int session_batch_shape(const Session *s, const Args *a, int *B, int *T, int *accum, Err *err);
// The batches of `train eval_every=`'s evaluations: `eval`'s own (`set batch`, `set seq`), not the
// train command's one-off batch= or seq=, so that the two give one number for one step; the
// validation split is checked for them first: an evaluation must not fail after steps were
// taken. For a train command with eval_every= only.
int session_eval_shape(const Session *s, int *B, int *T, Err *err);

// A step that failed with a non-finite loss or gradient: the current run diverged there, and
// went back to step back_to (−1: nothing to go back to).
void session_record_divergence(Session *s, int step, int back_to);
void session_record_val(Session *s, int step, double loss);

// cmd_inspect.c: free the inspection state; forget what belonged to the model just replaced (and
// drop watched fields the new one lacks, with a note).
void inspect_state_free(Session *s);
void inspect_model_replaced(Session *s);

// The directory for lrsh's caches ($XDG_CACHE_HOME/lrsh or ~/.cache/lrsh), created if needed.
int session_cache_dir(char *out, size_t size, Err *err);
