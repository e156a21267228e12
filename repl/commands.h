// commands.h — the one command table. Dispatch, `help`, tab completion and option checking
// all read it, so a command exists in exactly one place.
#pragma once
#include <limits.h>
#include <sys/stat.h>
#include "parse.h"
#include "session.h"

// What a command's positional arguments are, so completion knows what to offer.
// POS_PARAM: a matrix name of the model; POS_WATCH: watch's FIELD[:PARAM] words (cmd_inspect.c).
typedef enum { POS_NONE, POS_PATH, POS_TEXT, POS_WORD, POS_COMMAND, POS_SETTING, POS_PARAM, POS_WATCH } PosKind;

typedef struct CmdSpec {
    const char *name;            // "tok"
    const char *sub;             // "train", or NULL for a command without sub-commands
    const char *family;          // heading in `help`
    const char *args;            // usage after the name: "[FILE] vocab=N [type=bpe|unigram]"
    const char *summary;         // one line
    const char *help;            // paragraphs and examples for `help CMD`
    int min_pos, max_pos;        // positional arguments accepted (max −1: any number)
    PosKind pos;                 // what the positionals are
    const char *const *words;    // POS_WORD: the words to complete
    const OptSpec *opts;         // ends with {NULL}; NULL: no options
    int (*run)(Session *s, const Args *a, Err *err);
    // Options that depend on a word typed (optim NAME: that optimizer's keys, from the engine).
    // When set, `opts` is unused: dispatch accepts any key= and the handler checks them. The
    // i-th key for `word` (NULL: no word typed, the session's current choice), NULL past the last.
    const char *(*dyn_key)(const Session *s, const char *word, int i);
    // `help CMD [WORD]` calls this after the usage line to list those options.
    void (*dyn_help)(Session *s, const char *word);
} CmdSpec;

extern const CmdSpec commands[];
extern const int n_commands;

// Look up "name" or "name sub"; NULL when absent.
const CmdSpec *command_find(const char *name, const char *sub);
// Does any entry named `name` have sub-commands?
int command_has_subs(const char *name);
// The commands whose sub-command is `sub` (`load`: tok load, data load, model load): how many,
// the first cap of them into out.
int commands_with_sub(const char *sub, const CmdSpec **out, int cap);
// "tok train" or "train"
const char *command_title(const CmdSpec *c, char *buf, size_t size);

// Run every command on one line of input (`;`-separated). Returns 0, or -1 when a command
// failed (already reported); with errexit the rest of the line is skipped.
int run_line(Session *s, const char *line);

// What a file lrsh writes is, by its content ("a checkpoint"), and in *reader the command that
// reads it ("model load"; NULL for a token cache); NULL for anything else (a script, a corpus).
// cmd_model.c.
const char *file_kind_lrsh_writes(const char *path, const char **reader);

// Handlers, by family (cmd_*.c).
int cmd_help(Session *s, const Args *a, Err *err);
int cmd_quit(Session *s, const Args *a, Err *err);
int cmd_show(Session *s, const Args *a, Err *err);
int cmd_set(Session *s, const Args *a, Err *err);
int cmd_tok_train(Session *s, const Args *a, Err *err);
int cmd_tok_load(Session *s, const Args *a, Err *err);
int cmd_tok_encode(Session *s, const Args *a, Err *err);
int cmd_tok_decode(Session *s, const Args *a, Err *err);
int cmd_data_load(Session *s, const Args *a, Err *err);
int cmd_model_new(Session *s, const Args *a, Err *err);
int cmd_model_info(Session *s, const Args *a, Err *err);
int cmd_optim(Session *s, const Args *a, Err *err);
int cmd_train(Session *s, const Args *a, Err *err);
int cmd_step(Session *s, const Args *a, Err *err);
int cmd_eval(Session *s, const Args *a, Err *err);
int cmd_model_save(Session *s, const Args *a, Err *err);
int cmd_model_load(Session *s, const Args *a, Err *err);
int cmd_model_factorize(Session *s, const Args *a, Err *err);
int cmd_generate(Session *s, const Args *a, Err *err);
int cmd_bench_train(Session *s, const Args *a, Err *err);
int cmd_bench_generate(Session *s, const Args *a, Err *err);
int cmd_plot(Session *s, const Args *a, Err *err);
int cmd_log(Session *s, const Args *a, Err *err);
int cmd_run(Session *s, const Args *a, Err *err);
int cmd_runs(Session *s, const Args *a, Err *err);
int cmd_inspect(Session *s, const Args *a, Err *err);
int cmd_ensemble_new(Session *s, const Args *a, Err *err);
int cmd_ensemble_wash(Session *s, const Args *a, Err *err);
int cmd_ensemble_papa(Session *s, const Args *a, Err *err);
int cmd_ensemble_off(Session *s, const Args *a, Err *err);
int cmd_ensemble_eval(Session *s, const Args *a, Err *err);
int cmd_ensemble_average(Session *s, const Args *a, Err *err);
int cmd_ensemble_use(Session *s, const Args *a, Err *err);
int cmd_spectrum(Session *s, const Args *a, Err *err);
int cmd_norms(Session *s, const Args *a, Err *err);
int cmd_watch(Session *s, const Args *a, Err *err);
int cmd_align(Session *s, const Args *a, Err *err);
// inspection (cmd_inspect.c), called by `train` and `step`: record every matrix's spectrum at
// the current step (train's start and end); after each trainer_step (ok: it succeeded), before
// session_record_step: note what ΔW and the last gradient refer to, and measure the watched
// diagnostics on a watch step (they go into that step's record); the watched values as text for
// the live line ("" when none: a stable pointer, valid until the session ends).
void inspect_record_spectra(Session *s);
void inspect_after_step(Session *s, const StepStats *st, int ok);
const char *inspect_live_text(Session *s);
int inspect_watching(const Session *s);   // fields are watched
// A dense model's step with diagnostics: max ‖ΔW‖₂/η over its block matrices (NAN otherwise, or
// when `watch dw_over_eta` measured it this step). Call after inspect_after_step.
float inspect_dense_dw_over_eta(Session *s, const StepStats *ss);
// watch's interval when it watches the optimizer's own σ_A, σ_B or ρ (measured only on steps
// with diagnostics, which those steps must then be), else 0.
int inspect_watch_diag_every(const Session *s);
// Completion: the i-th candidate for a POS_PARAM / POS_WATCH positional (NULL past the last).
const char *inspect_complete(const Session *s, PosKind kind, int i);   // "": none at i, go on
// The key `watch` records a typed FIELD[:PARAM|:max|:mean] under (spectral:max is spectral, the
// field's own aggregate), in key; NULL when the word names no watch field. Checks no matrix.
const char *watch_key(const char *word, char *key, size_t cap);
// A chart's title for a watched key: "max ‖W‖₂ over the block matrices (watch)".
const char *watch_title(const char *key, char *title, size_t cap);
// ensemble (cmd_ensemble.c): `train` with an ensemble trains its members; `model info` adds
// the ensemble's memory.
int ensemble_cmd_train(Session *s, const Args *a, Err *err);
// A failed step whose loss or gradient was not finite: the run diverged (a result, not an error).
int train_diverged(const Err *err);
// The step a divergence rolled tr back to, or −1 when it had nothing to go back to.
int train_rolled_back_to(const Trainer *tr);
// A divergence at step `attempt` as a result, not a failure: recorded in the run with the
// rollback the engine did (back_to, −1: none), said in one line ("diverged: REASON" + after),
// the reason in the JSON; err is cleared.
void train_report_divergence(Session *s, int attempt, int back_to, const char *after, Err *err);
// An error in the middle of a `train` (not a divergence): one line, saying how far it got when
// it got anywhere ("(ensemble training stopped after 3 of 10 steps)"). Returns −1.
int train_failed(Err *err, const char *what, int done, int steps);
// How many steps `train` takes: steps=N, or until=STEP from step_now (0, said in a note and the
// result, when the model is there already); one of the two, not both.
int train_steps_asked(Session *s, const Args *a, int step_now, int *steps, Err *err);
// eval's note (and ensemble eval's) when batches × B × T reads the validation split more than
// twice over: more batches then only repeat the same tokens.
void eval_note_rereads(Session *s, int batches, int B, int T);
// The end of train's (and ensemble train's) JSON result: the rate (null when no step was kept),
// the seconds, whether it was interrupted (and by which signal) or diverged, then the current
// run's name, spikes and max ‖ΔW‖₂/η.
void train_result_end(Session *s, int done, double rate, double seconds, double eval_seconds, int interrupted,
                      int diverged_at);
// A loaded model's (or ensemble's) run going on with other data than it was training on: its
// batches (the sampler state it saved) are not the ones the run would have taken. A note, once
// (training on other data may be the point): another size or split, or the same sizes and
// other ids (an edit that kept the count, files reordered), told by the data hash when the file
// records one.
void train_note_other_data(Session *s);
// train save=PATH save_every=N (cmd_model.c): the model (or ensemble) saved as `model save PATH`
// saves it, every N steps by step number and when the command ends, so that a long run closed
// or killed loses at most N steps. begin checks the target before any step (a folder, a
// missing or unwritable folder, a file that is no checkpoint); each save's description goes
// into the result's "saved" list, its time into `seconds` (kept out of the training's).
typedef struct TrainSave {
    char path[PATH_MAX];   // "": no save= given
    int every;
    cJSON *saved;
    int count;
    int last_step;     // the step the last save held (count > 0)
    double seconds;
    int known;         // the file at path is this training's last save, or was there when it began:
    dev_t dev;         // its identity; one that differs was written by someone else since (the
    ino_t ino;         // time it was written too: a file system reuses a freed inode number at
    struct timespec mtime;   // once; not the change time, which a chmod moves)
} TrainSave;
int train_save_begin(Session *s, const Args *a, TrainSave *ts, Err *err);
// After step `step` of a command that ends at step `last`: the save save_every= asks for there
// (the last step's comes after the command's report, from train_save_end).
struct Progress;   // output.h: its line ends before a save's
int train_save_after_step(Session *s, TrainSave *ts, int step, int last, struct Progress *p, Err *err);
int train_save_end(Session *s, TrainSave *ts, int done, int step, Err *err);
// The saves save_every= and the end still owe after step `step` of a command ending at `last`.
int train_saves_left(const TrainSave *ts, int step, int last);
void ensemble_info(Session *s);
// A note, while an ensemble exists, that a command reads the session's own model, not a member.
void ensemble_note_single_model(Session *s);
int ensemble_refuse_single_model(const Session *s, const char *what, Err *err);

// optim (cmd_optim.c): the keys optimizer `word` takes (NULL: the session's), for the command
// table, completion and help.
const char *optim_dyn_key(const Session *s, const char *word, int i);
void optim_dyn_help(Session *s, const char *word);
void set_dyn_help(Session *s, const char *word);
// The per-matrix diagnostics of the trainer's last update as a table and into JSON (`step`).
void optim_diag_table(Session *s, cJSON *into);

// The runs, one line each, the last `most` of them (0: all) after a line counting the others
// (`show` lists SHOW_RUNS: a long session's hundreds buried the rest; `run` lists all).
#define SHOW_RUNS 8
void runs_describe(const Session *s, const char *indent, int most);

// The fields `plot` draws (NULL-terminated).
extern const char *const plot_fields[];

// Shared by handlers: "~/x" → "$HOME/x" (returns in or out: in when it does not fit size bytes,
// which PATH_MAX always does); the positionals joined by single
// spaces (malloc'ed; NULL when out of memory).
const char *expand_path(const char *in, char *out, size_t size);
// Before slow work that ends in writing path: its folder must be writable, and a path that is
// there already a regular file one may write (no folder, device, pipe, socket; not read-only).
// The error names path ("cannot write PATH: …").
int check_writable_file(const char *path, Err *err);
// The file a written file lands in: path itself, or the file a symbolic link at path names (a
// rename over the link would replace it); a link to a missing file is an error.
int file_through_link(const char *path, char out[PATH_MAX], Err *err);
// Whether the file at path (st: its stat) may not be written — no write bit for anyone (a root
// process, which access() lets write anything, honours it too) or access() says no — as the
// hint for the error (another name, or chmod for its owner); NULL when it may.
const char *file_read_only(const char *path, const struct stat *st);
char *join_words(const Args *a);

// Shared by handlers: a model config as JSON; the optimizer settings as a line of text and
// into a JSON object.
cJSON *model_config_json(const ModelConfig *c);
// The current config's name for people: its preset ("tiny", "loaded"), or "custom (from tiny)"
// once `model new` options have changed its shape.
const char *model_label(const Session *s, char *buf, size_t cap);
void optim_describe(const Session *s, const OptimConfig *o, cJSON *into);
// "adamw lr=0.003 wd=0.1 …": the optimizer and every setting of it, as `optim` shows them.
void optim_settings_text(const OptimConfig *o, char *line, size_t cap);

// `set` keys: name, type, doc — the same spec type as options, so checking and completion
// come for free.
extern const OptSpec settings[];

// Readline completion (complete.c); s answers what depends on the session (optim's keys).
void completion_install(const Session *s);
