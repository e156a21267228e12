// runs.h — what the session remembers of training for `plot` and `log`: a list of named runs,
// each with its per-step history and the validation losses measured along it, and the JSON
// lines log that every step is appended to.
#pragma once
#include <stdio.h>
#include "../engine/train.h"

// A step's spectral diagnostics over the factorized matrices (NAN: not measured that step).
typedef struct StepDiag {
    float dw_over_eta;     // the largest ‖ΔW‖₂/η
    float rho;             // the largest factor step ρ
    float sigma_a, sigma_b; // the mean ‖A‖₂, ‖B‖₂
} StepDiag;

typedef struct RunPoint {
    int step;
    float loss, lr, grad_norm, clip_scale;
    double tok_per_s, seconds;
    StepDiag diag;
} RunPoint;

// A loss spike: a step whose loss exceeds SPIKE_FACTOR × the mean loss of the SPIKE_WINDOW
// steps before it, counted once SPIKE_MIN_HISTORY of them exist.
#define SPIKE_FACTOR 1.5
#define SPIKE_WINDOW 50
#define SPIKE_MIN_HISTORY 3

typedef struct ValPoint {
    int step;
    double loss;
} ValPoint;

// A diagnostic chosen with `watch` ("spectral", "stable_rank:blocks.1.mlp.w2"): its values at
// the steps that recorded it.
typedef struct WatchSeries {
    char key[112];
    int *step;
    float *value;
    int n, cap;
} WatchSeries;

typedef struct RunSeries {
    char name[176];       // up to 40 characters of UTF-8 and a "-N" suffix
    uint64_t id;          // drawn when it starts (or a checkpoint's run_id it goes on from): a file
                          // finds its very run again, where a name and a step could be another's
    char optim[48];       // the optimizer(s) its steps used ("adamw", "adamw+spectron")
    float lr;             // the peak lr of its first step's optimizer
    float last_lr;        // and of its last step's (another after `optim lr=` or a switch)
    int spikes;           // loss spikes (see SPIKE_FACTOR)
    int diverged_at;      // the last step that had a non-finite loss or gradient (0: none)
    float max_dw_over_eta; // over the steps that measured it (NAN: none did)
    double unigram;       // the unigram loss of the data its last validation loss was on (NAN: none)
    char model[256];      // the model its first step trained ("dim=128 layers=2 … rank=0.25·in …"; "": none yet)
    long params;          // and its parameters (an ensemble's: one member's)
    int batch, seq, accum; // its first step's batches (0: read from a log)
    uint64_t init_seed, session_seed, data_rng, data_hash;   // RunConfig's, of its first step
    char optim_settings[512]; // "": none recorded (a run read from a log, or without steps)
    long train_tokens;
    int ensemble_k;
    char checkpoint[1024];
    int config_logged;    // its config went into the open log (with its first line there)
    RunPoint *steps;
    int n_steps, cap_steps;
    ValPoint *val;
    int n_val, cap_val;
    WatchSeries *watch;   // `watch` series, in the order first recorded
    int n_watch, cap_watch;
} RunSeries;

typedef struct RunLog {
    RunSeries *runs;
    int n_runs, cap_runs;
    int current;          // index of the run steps go to; −1: the next step starts a new one
    char next_name[176];  // the name that new run takes ("": the optimizer's), as long as a run's
    uint64_t next_id;     // and its id, when it goes on from a file's run (0: a new one)
    FILE *log;            // `log FILE`; NULL: off
    char log_path[1024];
    char session[17];     // this process's random id, in every log line: two lrsh appending to one
                          // file at once stay two writers when read back (`plot from=`)
    long log_lines;
    // `watch` values measured for the step about to be recorded (runlog_watch_pending); the
    // next runlog_step stores them in its run and writes them as the line's "watch" object.
    char (*pending_key)[112];
    float *pending_value;
    int n_pending, cap_pending;
} RunLog;

void runlog_init(RunLog *r);
void runlog_free(RunLog *r);
// Start a run named `name` (made unique with -2, -3, … when taken); a current run that has
// taken no step (empty, or only an eval of its start) is renamed instead. Returns the run's
// name, or NULL when out of memory.
const char *runlog_start(RunLog *r, const char *name);
// The next step starts a new run (after `model new`, `model load`).
void runlog_end(RunLog *r);
// The name the run a runlog_end started takes, for a model that came from somewhere: a file's
// stem, "member-1", "average-product" (else it is named after the optimizer).
void runlog_name_next(RunLog *r, const char *name);
// A model loaded from a file that was training in run `name` (its id) at `step`: that run goes
// on — the very run when this session has it ending at that step (saved and loaded back), else
// a run of that name (made unique as runlog_start does) with that id. A `run NAME` waiting for
// its first step wins. Returns 1 when the very run goes on, 0 otherwise.
int runlog_resume(RunLog *r, const char *name, uint64_t id, int step);
// The name and id the model's next steps go under, for a checkpoint to keep: the current run's,
// or the ones runlog_name_next or runlog_resume chose; NULL and 0 when none (named after the
// optimizer at its first step).
const char *runlog_current_name(const RunLog *r, uint64_t *id);
// What a run trained: kept with its first step, and written into its first line in each log
// file, so that a log alone says what each run was.
struct cJSON;
// A run's rerun fields (RunConfig's) into a JSON object: the log's first line, `runs`'s rows.
void runlog_add_rerun(struct cJSON *o, const RunSeries *s);

typedef struct RunConfig {
    const char *optim;     // the optimizer
    const char *model;     // its shape, as model_config_describe says it
    long params;           // (an ensemble's: one member's)
    int batch, seq, accum; // the step's batches
    // what else a rerun needs: the model's initialization seed, `set seed` then, the batch
    // sampler's state before the first step, the optimizer's settings ("adamw lr=0.003 wd=0.1
    // …"), and the data's identity (its tokens, from the corpus and the tokenizer; 0: none)
    uint64_t init_seed, session_seed, data_rng, data_hash;
    const char *optim_settings;
    long train_tokens;       // the training split's tokens (data load val= moves it)
    int ensemble_k;          // an ensemble's members (0: one model; init_seed is then member 0's)
    const char *checkpoint;  // the file the model last came from or went to ("": none)
} RunConfig;

// Record one training step in the current run (started under default_name when there is
// none) and append it to the log file. Returns 0, or -1 with err set when the log write failed.
// diag: the step's spectral summary, or NULL when it has none; cfg: what trained it (NULL for
// a step read back from a log).
int runlog_step(RunLog *r, const char *default_name, const StepStats *st, double tok_per_s, const StepDiag *diag,
                const RunConfig *cfg, Err *err);
// Record that the current run diverged at `step` (its loss or gradient was not finite) and, when
// back_to ≥ 0, that the model went back to step back_to: the run's points after it go (steps,
// validation losses, watched values; the run goes on from there), and the log says so.
int runlog_diverged(RunLog *r, const char *default_name, int step, int back_to, Err *err);
// Note which optimizer and peak lr the current run's steps use (called with each step).
void runlog_optim(RunLog *r, const char *optim, float lr);
// Record a validation loss at `step` in the current run (started as above when there is none).
int runlog_val(RunLog *r, const char *default_name, int step, double loss, Err *err);
// `log FILE` (appends) and `log off`.
int runlog_open(RunLog *r, const char *path, Err *err);
void runlog_close(RunLog *r);
// The run with this name, or NULL.
RunSeries *runlog_find(RunLog *r, const char *name);
// Attach a watched value to the next runlog_step (non-finite values are dropped there).
// Returns 0, or -1 with err set when out of memory.
int runlog_watch_pending(RunLog *r, const char *key, float value, Err *err);
// The series `key` of run x, or NULL.
const WatchSeries *runlog_watch_series(const RunSeries *x, const char *key);
