// runs.c — the session's training history (named runs) and the JSON lines training log.
#include "runs.h"
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>
#include <cjson/cJSON.h>
#include "../engine/rng.h"
#include "../engine/tempfile.h"
#include "commands.h"   // file_read_only
#include "output.h"

static uint64_t new_run_id(void);

void runlog_init(RunLog *r) {
    memset(r, 0, sizeof *r);
    r->current = -1;
    snprintf(r->session, sizeof r->session, "%016llx", (unsigned long long)new_run_id());
}

void runlog_free(RunLog *r) {
    runlog_close(r);
    for (int i = 0; i < r->n_runs; i++) {
        free(r->runs[i].steps);
        free(r->runs[i].val);
        for (int k = 0; k < r->runs[i].n_watch; k++) {
            free(r->runs[i].watch[k].step);
            free(r->runs[i].watch[k].value);
        }
        free(r->runs[i].watch);
    }
    free(r->runs);
    free(r->pending_key);
    free(r->pending_value);
    runlog_init(r);
}

RunSeries *runlog_find(RunLog *r, const char *name) {
    for (int i = 0; i < r->n_runs; i++)
        if (strcmp(r->runs[i].name, name) == 0) return &r->runs[i];
    return NULL;
}

// Grow *buf (of *cap items of size) to hold one more than n.
static int grow(void **buf, int *cap, int n, size_t size) {
    if (n < *cap) return 0;
    int c = *cap ? *cap * 2 : 64;
    void *p = realloc(*buf, (size_t)c * size);
    if (!p) return -1;
    *buf = p;
    *cap = c;
    return 0;
}

// A run that has recorded nothing (just named with `run`): the next one takes its place. One a
// rollback emptied has a divergence and an optimizer to show, and stays.
static int untouched(const RunSeries *c) {
    return c->n_steps == 0 && c->n_val == 0 && !c->diverged_at && !c->optim[0];
}

// The least k ≥ 2 for which "NAME-k" names no run, in one pass over the runs (a search k by k,
// each a pass, made every new run of a name reused thousands of times slower than the last);
// −1 when out of memory. Of n runs at most n hold a k, so one in 2 … n+2 is free.
static int free_suffix(const RunLog *r, const char *name) {
    int n = r->n_runs + 3;
    unsigned char *taken = calloc((size_t)n, 1);
    if (!taken) return -1;
    size_t len = strlen(name);
    for (int i = 0; i < r->n_runs; i++) {
        const char *s = r->runs[i].name;   // "NAME-k", k as written here: no sign, no leading 0
        if (strncmp(s, name, len) != 0 || s[len] != '-' || s[len + 1] < '1' || s[len + 1] > '9') continue;
        char *end;
        long k = strtol(s + len + 1, &end, 10);
        if (!*end && k < n) taken[k] = 1;
    }
    int k = 2;
    while (taken[k]) k++;
    free(taken);
    return k;
}

// A run's id: another every time, never 0 (which means "none").
static uint64_t new_run_id(void) {
    static uint64_t state;
    if (!state) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        state = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec ^ (uint64_t)getpid() << 32;
    }
    uint64_t id = rng_next(&state);
    return id ? id : 1;
}

// A name as valid UTF-8 (it goes into checkpoints' JSON headers and logs), by the tokenizer's
// rule of a well-formed character: one cut short at the end (a name cut to its field) dropped,
// any other stray byte made '?'.
static void valid_utf8(char *name) {
    size_t n = strlen(name), i;
    while ((i = tokenizer_utf8_valid_prefix(name, n)) < n) {
        size_t k = 1;
        while (i + k < n && ((unsigned char)name[i + k] & 0xC0) == 0x80) k++;
        if (i + k == n && k < 4 && (unsigned char)name[i] >= 0xC2) {
            name[i] = '\0';
            return;
        }
        name[i] = '?';
    }
}

// What runlog_start names a run asked as `name`: itself, or NAME-k when taken (k from 2).
static int unique_name(RunLog *r, const char *name, char *unique, size_t cap) {
    char base[161];
    snprintf(base, sizeof base, "%.160s", name);   // cmd_run allows 40 characters, ≤ 160 bytes
    valid_utf8(base);
    snprintf(unique, cap, "%s", base);
    if (!runlog_find(r, unique)) return 0;
    int k = free_suffix(r, base);
    if (k < 0) return -1;
    snprintf(unique, cap, "%s-%d", base, k);
    return 0;
}

// A run that has taken no step yet: nothing, or only a measurement of its model's start (`model
// new; eval; run muon; train` — that eval is the muon run's step-0 point, not a run of its own).
static int no_step_yet(const RunSeries *c) { return c->n_steps == 0 && !c->diverged_at && !c->optim[0]; }

const char *runlog_start(RunLog *r, const char *name) {
    RunSeries *cur = r->current >= 0 ? &r->runs[r->current] : NULL;
    char unique[176];
    if (cur && no_step_yet(cur)) cur->name[0] = '\0';  // renamed below (plot from= follows it by run_id)
    else cur = NULL;
    if (unique_name(r, name, unique, sizeof unique) != 0) return NULL;
    if (cur && !cur->name[0]) {
        snprintf(cur->name, sizeof cur->name, "%s", unique);
        return cur->name;
    }
    if (grow((void **)&r->runs, &r->cap_runs, r->n_runs, sizeof *r->runs) != 0) return NULL;
    RunSeries *s = &r->runs[r->n_runs];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", unique);
    s->id = new_run_id();
    s->max_dw_over_eta = NAN;
    s->unigram = NAN;
    r->current = r->n_runs++;
    return s->name;
}

void runlog_end(RunLog *r) {
    r->next_name[0] = '\0';
    r->next_id = 0;
    if (r->current >= 0 && untouched(&r->runs[r->current])) return;  // a `run NAME` waits for its first step
    r->current = -1;
}

void runlog_name_next(RunLog *r, const char *name) {
    if (r->current < 0) {
        snprintf(r->next_name, sizeof r->next_name, "%s", name);
        valid_utf8(r->next_name);
    }
}

int runlog_resume(RunLog *r, const char *name, uint64_t id, int step) {
    if (r->current >= 0) return 0;   // `run NAME` before the load
    for (int i = 0; i < r->n_runs && id; i++) {
        const RunSeries *x = &r->runs[i];
        if (x->id == id && x->n_steps > 0 && x->steps[x->n_steps - 1].step == step) {
            r->current = i;
            return 1;
        }
    }
    char unique[176];   // the name it will have: said now, at the load
    if (unique_name(r, name, unique, sizeof unique) != 0) snprintf(unique, sizeof unique, "%s", name);
    runlog_name_next(r, unique);
    for (int i = 0; i < r->n_runs; i++)   // a branch: the file's run is this session's at another step
        if (r->runs[i].id == id) id = 0;
    r->next_id = id;
    return 0;
}

const char *runlog_current_name(const RunLog *r, uint64_t *id) {
    *id = r->current >= 0 ? r->runs[r->current].id : r->next_id;
    if (r->current >= 0) return r->runs[r->current].name;
    return r->next_name[0] ? r->next_name : NULL;
}


static RunSeries *current(RunLog *r, const char *default_name, Err *err) {
    if (r->current < 0) {
        if (!runlog_start(r, r->next_name[0] ? r->next_name : default_name)) {
            err_set(err, "out of memory for the run history");
            return NULL;
        }
        if (r->next_id) r->runs[r->current].id = r->next_id;   // a file's run going on
    }
    r->next_name[0] = '\0';
    r->next_id = 0;
    return &r->runs[r->current];
}

// A log line's run: its name and its id (a decimal string, as a checkpoint's run_id), which
// `plot from=` follows through a rename and across the sessions a resumed run goes on in.
static void add_run(cJSON *o, const RunSeries *s) {
    char id[24];
    snprintf(id, sizeof id, "%llu", (unsigned long long)s->id);
    cJSON_AddStringToObject(o, "run", s->name);
    cJSON_AddStringToObject(o, "run_id", id);
}

static int write_line(RunLog *r, cJSON *o, Err *err) {
    cJSON_AddStringToObject(o, "session", r->session);
    json_valid_utf8(o);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!text) return err_set(err, "out of memory writing the log");
    int bad = fprintf(r->log, "%s\n", text) < 0 || fflush(r->log) != 0;
    free(text);
    if (bad) {
        err_set(err, "log %s: %s; logging is off", r->log_path, strerror(errno));
        runlog_close(r);
        return -1;
    }
    r->log_lines++;
    return 0;
}

// Is the newest step of s a loss spike against the SPIKE_WINDOW steps before it?
static int is_spike(const RunSeries *s) {
    int k = s->n_steps - 1, from = k - SPIKE_WINDOW < 0 ? 0 : k - SPIKE_WINDOW;
    if (k - from < SPIKE_MIN_HISTORY || !isfinite(s->steps[k].loss)) return 0;
    double sum = 0;
    for (int i = from; i < k; i++) sum += s->steps[i].loss;
    return s->steps[k].loss > SPIKE_FACTOR * sum / (k - from);
}

int runlog_watch_pending(RunLog *r, const char *key, float value, Err *err) {
    if (r->n_pending >= r->cap_pending) {
        int c = r->cap_pending ? 2 * r->cap_pending : 16;
        void *k = realloc(r->pending_key, (size_t)c * sizeof *r->pending_key);
        if (k) r->pending_key = k;
        void *v = realloc(r->pending_value, (size_t)c * sizeof *r->pending_value);
        if (v) r->pending_value = v;
        if (!k || !v) return err_set(err, "out of memory for the watched values");
        r->cap_pending = c;
    }
    snprintf(r->pending_key[r->n_pending], sizeof r->pending_key[0], "%s", key);
    r->pending_value[r->n_pending++] = value;
    return 0;
}

const WatchSeries *runlog_watch_series(const RunSeries *x, const char *key) {
    for (int i = 0; i < x->n_watch; i++)
        if (strcmp(x->watch[i].key, key) == 0) return &x->watch[i];
    return NULL;
}

// Store the pending watched values of `step` in run s (into o's "watch" object when o != NULL).
// A value the step could not measure (NaN: σ under an optimizer that keeps none) adds no point,
// but its series exists and the log says null, so that `plot` of it says so rather than not
// knowing the field.
static int take_pending(RunLog *r, RunSeries *s, int step, cJSON *o) {
    int rc = 0;
    cJSON *w = NULL;
    for (int i = 0; i < r->n_pending && rc == 0; i++) {
        float v = r->pending_value[i];
        WatchSeries *x = (WatchSeries *)runlog_watch_series(s, r->pending_key[i]);
        if (!x) {
            if (grow((void **)&s->watch, &s->cap_watch, s->n_watch, sizeof *s->watch) != 0) { rc = -1; break; }
            x = &s->watch[s->n_watch++];
            memset(x, 0, sizeof *x);
            snprintf(x->key, sizeof x->key, "%s", r->pending_key[i]);
        }
        if (o && !w) w = cJSON_AddObjectToObject(o, "watch");
        if (!isfinite(v)) {
            if (w) cJSON_AddNullToObject(w, r->pending_key[i]);
            continue;
        }
        int cap = x->cap;
        if (grow((void **)&x->step, &cap, x->n, sizeof *x->step) != 0 ||
            grow((void **)&x->value, &x->cap, x->n, sizeof *x->value) != 0) { rc = -1; break; }
        x->step[x->n] = step;
        x->value[x->n++] = v;
        if (w) json_add_real(w, r->pending_key[i], v);
    }
    r->n_pending = 0;
    return rc;
}

static void add_diag(cJSON *o, const char *key, float v) {
    if (isfinite(v)) json_add_real(o, key, v);
}

// A run's first line in a log file also says what trained it (from its first step: a log
// opened mid-run gets it too).
static void add_config(cJSON *o, const RunSeries *s, const char *optim) {
    cJSON_AddStringToObject(o, "optim", optim);
    cJSON_AddStringToObject(o, "model", s->model);
    cJSON_AddNumberToObject(o, "params", (double)s->params);
    cJSON_AddNumberToObject(o, "batch", s->batch);
    cJSON_AddNumberToObject(o, "seq", s->seq);
    cJSON_AddNumberToObject(o, "accum", s->accum);
    runlog_add_rerun(o, s);
}

void runlog_add_rerun(cJSON *o, const RunSeries *s) {
    if (!s->optim_settings[0]) return;
    char hex[24];
    json_add_u64(o, "init_seed", s->init_seed);   // an ensemble's: member 0's (ensemble_k says it is one)
    if (s->ensemble_k) cJSON_AddNumberToObject(o, "ensemble_k", s->ensemble_k);
    if (s->checkpoint[0]) cJSON_AddStringToObject(o, "checkpoint", s->checkpoint);   // a resumed run's start
    else cJSON_AddNullToObject(o, "checkpoint");
    cJSON_AddNumberToObject(o, "train_tokens", (double)s->train_tokens);
    json_add_u64(o, "session_seed", s->session_seed);
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)s->data_rng);
    cJSON_AddStringToObject(o, "data_rng", hex);
    if (s->data_hash) {
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)s->data_hash);
        cJSON_AddStringToObject(o, "data", hex);
    } else {
        cJSON_AddNullToObject(o, "data");
    }
    cJSON_AddStringToObject(o, "optim_settings", s->optim_settings);
}

int runlog_step(RunLog *r, const char *default_name, const StepStats *st, double tok_per_s, const StepDiag *diag,
                const RunConfig *cfg, Err *err) {
    RunSeries *s = current(r, default_name, err);
    if (!s) return -1;
    if (s->n_steps == 0 && cfg) {   // which model a run trained: a sweep's runs told apart by more than names
        snprintf(s->model, sizeof s->model, "%s", cfg->model);   // (again when a rollback undid its first step)
        s->params = cfg->params;
        s->batch = cfg->batch, s->seq = cfg->seq, s->accum = cfg->accum;
        s->init_seed = cfg->init_seed, s->session_seed = cfg->session_seed;
        s->data_rng = cfg->data_rng, s->data_hash = cfg->data_hash;
        snprintf(s->optim_settings, sizeof s->optim_settings, "%s", cfg->optim_settings ? cfg->optim_settings : "");
        s->train_tokens = cfg->train_tokens, s->ensemble_k = cfg->ensemble_k;
        snprintf(s->checkpoint, sizeof s->checkpoint, "%s", cfg->checkpoint ? cfg->checkpoint : "");
        s->config_logged = 0;
    }
    if (grow((void **)&s->steps, &s->cap_steps, s->n_steps, sizeof *s->steps) != 0)
        return err_set(err, "out of memory for the run history");
    StepDiag none = {NAN, NAN, NAN, NAN}, d = diag ? *diag : none;
    for (int i = 0; i < r->n_pending && !isfinite(d.dw_over_eta); i++)   // `watch dw_over_eta` measured it
        if (strcmp(r->pending_key[i], "dw_over_eta") == 0) d.dw_over_eta = r->pending_value[i];
    s->steps[s->n_steps++] = (RunPoint){st->step, st->loss, st->lr, st->grad_norm, st->clip_scale, tok_per_s,
                                        st->seconds, d};
    s->spikes += is_spike(s);
    if (isfinite(d.dw_over_eta) && !(d.dw_over_eta <= s->max_dw_over_eta)) s->max_dw_over_eta = d.dw_over_eta;
    if (!r->log) return take_pending(r, s, st->step, NULL) == 0 ? 0 : err_set(err, "out of memory for the run history");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "step", st->step);
    json_add_real(o, "loss", st->loss);
    json_add_real(o, "lr", st->lr);
    json_add_real(o, "grad_norm", st->grad_norm);
    json_add_real(o, "clip_scale", st->clip_scale);
    json_add_real(o, "tok_per_s", tok_per_s);
    json_add_real(o, "seconds", st->seconds);
    add_diag(o, "dw_over_eta", d.dw_over_eta);
    add_diag(o, "rho", d.rho);
    add_diag(o, "sigma_a", d.sigma_a);
    add_diag(o, "sigma_b", d.sigma_b);
    if (!s->config_logged && s->model[0]) add_config(o, s, cfg ? cfg->optim : s->optim);
    s->config_logged = 1;
    if (take_pending(r, s, st->step, o) != 0) {
        cJSON_Delete(o);
        return err_set(err, "out of memory for the run history");
    }
    add_run(o, s);
    return write_line(r, o, err);
}

// Drop run s's points after step `last` (newest first, so each one's spike verdict is undone
// against the points it was judged with).
static void truncate_run(RunSeries *s, int last) {
    while (s->n_steps > 0 && s->steps[s->n_steps - 1].step > last) {
        s->spikes -= is_spike(s);
        s->n_steps--;
    }
    while (s->n_val > 0 && s->val[s->n_val - 1].step > last) s->n_val--;
    for (int i = 0; i < s->n_watch; i++)
        while (s->watch[i].n > 0 && s->watch[i].step[s->watch[i].n - 1] > last) s->watch[i].n--;
    s->max_dw_over_eta = NAN;
    for (int i = 0; i < s->n_steps; i++) {
        float d = s->steps[i].diag.dw_over_eta;
        if (isfinite(d) && !(d <= s->max_dw_over_eta)) s->max_dw_over_eta = d;
    }
}

int runlog_diverged(RunLog *r, const char *default_name, int step, int back_to, Err *err) {
    RunSeries *s = current(r, default_name, err);
    if (!s) return -1;
    s->diverged_at = step;
    if (back_to >= 0) truncate_run(s, back_to);
    if (!r->log) return 0;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "step", step);
    cJSON_AddTrueToObject(o, "diverged");
    if (back_to >= 0) cJSON_AddNumberToObject(o, "rolled_back_to", back_to);
    add_run(o, s);
    return write_line(r, o, err);
}

void runlog_optim(RunLog *r, const char *optim, float lr) {
    if (r->current < 0) return;
    RunSeries *s = &r->runs[r->current];
    s->last_lr = lr;
    if (!s->optim[0]) {
        snprintf(s->optim, sizeof s->optim, "%s", optim);
        s->lr = lr;
        return;
    }
    // a switch of optimizer inside the run: "adamw+spectron"
    size_t n = strlen(optim), len = strlen(s->optim);
    const char *last = strrchr(s->optim, '+');
    last = last ? last + 1 : s->optim;
    if (strcmp(last, optim) != 0 && len + 1 + n < sizeof s->optim) snprintf(s->optim + len, sizeof s->optim - len, "+%s", optim);
}

int runlog_val(RunLog *r, const char *default_name, int step, double loss, Err *err) {
    RunSeries *s = current(r, default_name, err);
    if (!s) return -1;
    if (grow((void **)&s->val, &s->cap_val, s->n_val, sizeof *s->val) != 0)
        return err_set(err, "out of memory for the run history");
    s->val[s->n_val++] = (ValPoint){step, loss};
    if (!r->log) return 0;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "step", step);
    json_add_real(o, "val_loss", loss);
    add_run(o, s);
    return write_line(r, o, err);
}

// What an existing file at path ends with and starts with: a log appended to is one of JSON
// lines ('{' first), so a mistyped name does not spoil a checkpoint or notes; a pipe is refused
// before fopen, which waits forever on one with no reader.
static int log_target_ok(const char *path, int *ends_open, Err *err) {
    struct stat st;
    *ends_open = 0;
    long planted = link_planted(path);
    if (planted)
        return err_set(err, "log: %s: " LINK_PLANTED_WHY, path, planted - 1);
    if (stat(path, &st) != 0) return 0;
    if (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) || S_ISDIR(st.st_mode))
        return err_set(err, "log: %s is a %s, not a file", path, S_ISDIR(st.st_mode) ? "folder" : "pipe or socket");
    if (!S_ISREG(st.st_mode)) return 0;   // a device (/dev/null) takes appends as they come
    const char *read_only = file_read_only(path, &st);
    if (read_only) return err_set(err, "log: %s is read-only: nothing was written (%s)", path, read_only);
    if (st.st_size == 0) return 0;
    FILE *f = fopen(path, "rb");
    if (!f) return err_set(err, "log: cannot read %s: %s", path, strerror(errno));
    char first[4096] = "";   // its first record: an object with a "step", as every line of a log
    if (!fgets(first, sizeof first, f)) first[0] = '\0';
    int last = fseek(f, -1, SEEK_END) == 0 ? fgetc(f) : EOF;
    fclose(f);
    cJSON *o = cJSON_Parse(first);
    int is_log = cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, "step"));
    cJSON_Delete(o);
    if (!is_log)
        return err_set(err, "log: %s exists and is not a log (JSON lines of steps): nothing was written (another "
                            "name)", path);
    *ends_open = last != '\n';   // a line cut short by a full disk: the next record starts a line of its own
    return 0;
}

int runlog_open(RunLog *r, const char *path, Err *err) {
    int ends_open;
    if (log_target_ok(path, &ends_open, err) != 0) return -1;
    FILE *f = fopen(path, "a");
    if (!f) return err_set(err, "log: cannot open %s: %s", path, strerror(errno));
    if (ends_open) fputc('\n', f);
    runlog_close(r);
    r->log = f;
    for (int i = 0; i < r->n_runs; i++) r->runs[i].config_logged = 0;   // each log says what its runs are
    snprintf(r->log_path, sizeof r->log_path, "%s", path);
    r->log_lines = 0;
    return 0;
}

void runlog_close(RunLog *r) {
    if (r->log) fclose(r->log);
    r->log = NULL;
    r->log_path[0] = '\0';
}
