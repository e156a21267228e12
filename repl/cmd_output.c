// cmd_output.c — the output commands: plot (braille in the terminal; PNG/SVG in plot_image.c),
// log (training steps as JSON lines), run (name the series that plot overlays).
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "commands.h"
#include "output.h"
#include "plot.h"
#include "plot_image.h"
#include "textwrap.h"

const char *const plot_fields[] = {"loss", "val", "lr", "gnorm", "clip", "tok_per_s", "seconds",
                                   "dw_over_eta", "rho", "sigma_a", "sigma_b", NULL};

// ---- run ----------------------------------------------------------------------------------

static void runs_json(const RunLog *r, cJSON *into) {
    cJSON *list = cJSON_AddArrayToObject(into, "runs");
    for (int i = 0; i < r->n_runs; i++) {
        const RunSeries *s = &r->runs[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", s->name);
        cJSON_AddNumberToObject(o, "steps", s->n_steps);
        cJSON_AddNumberToObject(o, "evals", s->n_val);
        if (s->n_steps) {
            cJSON_AddNumberToObject(o, "first_step", s->steps[0].step);
            cJSON_AddNumberToObject(o, "last_step", s->steps[s->n_steps - 1].step);
            json_add_real(o, "last_loss", s->steps[s->n_steps - 1].loss);
        }
        cJSON_AddBoolToObject(o, "current", i == r->current);
        cJSON_AddItemToArray(list, o);
    }
}

// One line per run, the last `most` of them (0: all): "adamw  30 steps (1..30), loss 5.123, 2
// evals  (current)"
static void describe_run(const Session *s, const char *indent, int i) {
    const RunLog *r = &s->runs;
    const RunSeries *x = &r->runs[i];
    OutLine line = {0};
    const char *name = NAME_TEXT(x->name);
    int pad = 16 - text_columns(name);   // columns, not bytes: 東京 is 6 bytes, 4 columns
    line_add(&line, "%s%s%*s %d step%s", indent, name, pad > 0 ? pad : 0, "", x->n_steps, x->n_steps == 1 ? "" : "s");
    if (x->n_steps)
        line_add(&line, " (%d..%d), loss %s", x->steps[0].step, x->steps[x->n_steps - 1].step,
                 LOSS_TEXT(x->steps[x->n_steps - 1].loss));
    if (x->n_val) line_add(&line, ", %d eval%s (val %s)", x->n_val, x->n_val == 1 ? "" : "s", LOSS_TEXT(x->val[x->n_val - 1].loss));
    if (x->diverged_at) line_add(&line, ", diverged at step %d", x->diverged_at);
    line_add(&line, "%s", i == r->current ? "  (current)" : "");
    line_out(s, &line);
}

// The runs a window of the last `most` shows: the latest ones, and the current run (a resumed
// early run) in place of the oldest of them; *first is where the latest begin, *extra the
// current run shown before them (−1: none).
static void latest_runs(const RunLog *r, int most, int *first, int *extra) {
    *first = most > 0 && r->n_runs > most ? r->n_runs - most : 0;
    *extra = r->current >= 0 && r->current < *first ? r->current : -1;
    if (*extra >= 0) ++*first;
}

void runs_describe(const Session *s, const char *indent, int most) {
    const RunLog *r = &s->runs;
    int first, extra;
    latest_runs(r, most, &first, &extra);
    int others = first - (extra >= 0);
    if (others)
        out_text(s, "%s(%d earlier run%s: `run` lists them all, `runs` compares them)\n", indent, others,
                 others == 1 ? "" : "s");
    if (extra >= 0) describe_run(s, indent, extra);
    for (int i = first; i < r->n_runs; i++) describe_run(s, indent, i);
}

// What `run` and `runs` say before any run: under which name the next steps will go.
static void no_runs_yet(Session *s) {
    if (s->runs.next_name[0])
        out_text(s, "no runs yet: `train` records run %s, or `run NAME` another\n",
                 NAME_TEXT(s->runs.next_name));
    else out_text(s, "no runs yet: `train` records one (named after the optimizer), or `run NAME`\n");
}

int cmd_run(Session *s, const Args *a, Err *err) {
    if (a->n_pos == 0) {
        if (!s->runs.n_runs) no_runs_yet(s);
        runs_describe(s, "", 0);
        runs_json(&s->runs, s->result);
        return 0;
    }
    const char *name = a->pos[0];
    int chars = 0;   // characters of UTF-8, not bytes (nor columns: 中 is one character)
    for (const char *p = name; *p; p++) chars += ((unsigned char)*p & 0xc0) != 0x80;
    if (chars == 0 || chars > 40 || strlen(name) > 160)
        return err_set(err, "a run name has 1 to 40 characters (got %d)", chars);
    for (const char *p = name; *p; p++)   // (“ and ” quote too: a name is typed unquoted)
        if ((unsigned char)*p < 0x20 || *p == '"' || *p == '\'' || *p == '\\' || *p == ',' ||
            strncmp(p, CURLY_OPEN, 3) == 0 || strncmp(p, CURLY_CLOSE, 3) == 0)
            return err_set(err, "a run name has no quotes, commas (plot runs=A,B lists names), backslashes or "
                           "control characters");
    if (name[0] == ' ' || name[strlen(name) - 1] == ' ')   // a blank cell in `runs`, a name no runs= can give
        return err_set(err, "a run name does not begin or end with a space");
    if (tokenizer_utf8_valid_prefix(name, strlen(name)) != strlen(name))   // a script saved as Latin-1
        return err_set(err, "the run name %s is not UTF-8 text (a script saved in another encoding? save it as UTF-8)",
                       NAME_TEXT(name));
    const char *got = runlog_start(&s->runs, name);
    if (!got) return err_set(err, "out of memory");
    out_text(s, "run %s: the next training steps are recorded under this name\n", NAME_TEXT(got));
    if (strcmp(got, name) != 0) out_note(s, "(%s was taken)\n", NAME_TEXT(name));
    cJSON_AddStringToObject(s->result, "run", got);
    return 0;
}

// A training loss this many times a uniform guess's (ln V) is no model: the run blew up.
#define BLOWN_UP 1.5

// ---- runs ---------------------------------------------------------------------------------

static void real_or_null(cJSON *o, const char *key, double v) {
    if (isfinite(v)) json_add_real(o, key, v);
    else cJSON_AddNullToObject(o, key);
}

// runs' table, each column as wide as its widest cell (names and learning rates vary most), so
// that the usual runs fit 80 columns.
enum { RUN_COLUMNS = 10 };
typedef struct RunRow {
    char cell[RUN_COLUMNS][168];   // a run name: up to 40 characters of UTF-8
} RunRow;

// Whether text starts with a character of no width (a combining mark): a cut there would set
// it on the "…".
static int zero_width_start(const char *t) {
    int len = 1;
    while (len < 4 && ((unsigned char)t[len] & 0xC0) == 0x80) len++;
    return text_columns_n(t, len) == 0;
}

// A name cut to `columns` in its middle, "sweep-ada…seed1235": a sweep's names differ at their
// ends, so a cut end made its runs read alike.
static const char *cut_middle(const char *name, int columns, char *buf, size_t cap) {
    int head = columns / 2, tail = columns - 1 - head;   // the "…" takes one column
    size_t head_bytes = fitting_bytes(name, head);
    const char *end = name + head_bytes;   // the tail: the longest end that fits, from a character's start
    while (*end && (((unsigned char)*end & 0xC0) == 0x80 || text_columns(end) > tail || zero_width_start(end))) end++;
    snprintf(buf, cap, "%.*s…%s", (int)head_bytes, name, end);
    return buf;
}

// The rank column only when the runs' ranks differ (a sweep over ranks reads it there).
enum { RANK_COLUMN = 3 };

static const char *const run_head[RUN_COLUMNS] = {"run", "optim", "lr", "rank", "steps", "loss", "val", "spikes",
                                                  "diverged", "max ΔW/η"};

// On a terminal too narrow (a split pane of 60 columns), so that each run stays one line:
// columns `runs --json` keeps anyway give way, least telling first, while names would have to be
// cut below 16 columns (then runs_table cuts them, down to 8). A pipe or a file keeps every
// column and names whole (cut, two runs of a sweep read alike and a grep for a name finds
// nothing). Returns the columns still over; *dropped names those left out.
static int give_way_columns(int *shown, int *width, int *k, int over, char *dropped, size_t cap) {
    static const int order[] = {7, 4, 1};   // spikes, steps, optim
    int keep_name = width[0] < 16 ? width[0] : 16;
    for (size_t g = 0; g < sizeof order / sizeof *order && width[0] - over < keep_name; g++)
        for (int j = 1; j < *k; j++) {
            if (shown[j] != order[g]) continue;
            over -= width[j] + 1;
            size_t used = strlen(dropped);
            snprintf(dropped + used, cap - used, "%s%s", used ? ", " : "", run_head[shown[j]]);
            memmove(&shown[j], &shown[j + 1], (size_t)(*k - j - 1) * sizeof *shown);
            memmove(&width[j], &width[j + 1], (size_t)(*k - j - 1) * sizeof *width);
            --*k;
            break;
        }
    return over;
}

static void runs_table(Session *s, const RunRow *rows, int n) {
    static const int right[RUN_COLUMNS] = {0, 0, 1, 1, 1, 1, 1, 1, 0, 1};
    int shown[RUN_COLUMNS], width[RUN_COLUMNS], k = 0, ranks_differ = 0;   // the columns shown, and their widths
    for (int i = 0; i < n; i++)   // among the runs that trained ("–": none yet)
        for (int j = 0; j < i; j++)
            ranks_differ |= strcmp(rows[i].cell[RANK_COLUMN], "–") && strcmp(rows[j].cell[RANK_COLUMN], "–") &&
                            strcmp(rows[i].cell[RANK_COLUMN], rows[j].cell[RANK_COLUMN]);
    for (int c = 0; c < RUN_COLUMNS; c++) {
        if (c == RANK_COLUMN && !ranks_differ) continue;
        shown[k] = c, width[k] = text_columns(run_head[c]);
        for (int i = 0; i < n; i++)
            if (text_columns(rows[i].cell[c]) > width[k]) width[k] = text_columns(rows[i].cell[c]);
        k++;
    }
    int total = k - 1;
    for (int j = 0; j < k; j++) total += width[j];
    int over = total - table_columns(s);
    char dropped[64] = "";
    if (text_is_terminal(s)) over = give_way_columns(shown, width, &k, over, dropped, sizeof dropped);
    if (over > 0 && text_is_terminal(s) && width[0] > 8) width[0] = width[0] - over > 8 ? width[0] - over : 8;
    char line[1024], name[sizeof rows->cell[0] + 4];
    for (int i = -1; i < n; i++) {
        line[0] = '\0';
        for (int j = 0; j < k; j++) {
            const char *cell = i < 0 ? run_head[shown[j]] : rows[i].cell[shown[j]];
            if (j == 0 && text_columns(cell) > width[0]) cell = cut_middle(cell, width[0], name, sizeof name);
            table_cell(line, sizeof line, cell, width[j], right[shown[j]]);
        }
        table_out(s, "", line, width, k, "");
    }
    if (dropped[0]) out_note(s, "(a narrow terminal: %s left out; a wider one or `runs --json` has them)\n", dropped);
}

// The rank a run's model had, from its description ("… rank=4 seq=…"): "4", "0.25·in" or
// "dense"; "–" when unknown.
static const char *run_rank(const char *model, char *buf, size_t cap) {
    const char *at = strstr(model, " rank=");
    if (!at) return "–";
    at += strlen(" rank=");
    if (strncmp(at, "0 (dense)", 9) == 0) return "dense";
    snprintf(buf, cap, "%.*s", (int)strcspn(at, " "), at);
    return buf;
}

// Whether a run's training loss is still falling: the mean of its last quarter of steps (10 at
// least) 1% or more under the quarter's before. A run above the unigram plateau that still
// falls is slow, not stuck there.
static int still_falling(const RunSeries *x) {
    int q = x->n_steps / 4, na = 0, nb = 0;
    if (q < 10) return 0;
    double a = 0, b = 0;
    for (int k = x->n_steps - 2 * q; k < x->n_steps; k++) {
        double l = x->steps[k].loss;
        if (!isfinite(l)) continue;
        if (k >= x->n_steps - q) a += l, na++;
        else b += l, nb++;
    }
    return na && nb && a / na <= 0.99 * (b / nb);
}

// The runs table of r: the session's runs, or a log's (`runs from=`).
static int runs_report(Session *s, const RunLog *r, Err *err) {
    if (!r->n_runs) {
        if (r == &s->runs) no_runs_yet(s);
        else out_text(s, "no runs in that log\n");
        cJSON_AddArrayToObject(s->result, "runs");
        return 0;
    }
    // A run diverged when its loss went non-finite, or when after 100 steps or more it ends no
    // better than a model that knows only token frequencies (the paper's "diverged" control
    // sits on that plateau; any working run passes it within a few dozen steps).
    double h = s->has_data ? dataset_unigram_entropy(&s->data) : NAN;
    // ... or when its training loss ends far above a uniform guess's, ln V: blown up, not learning
    // (V: the model's outputs when it has more than the data's tokens, as a fresh one starts there)
    int V = s->has_data ? s->data.vocab_size : 0;
    if (V && s->has_model && s->model.cfg.vocab > V) V = s->model.cfg.vocab;
    double uniform = V ? log((double)V) : NAN;
    RunRow *table = calloc((size_t)r->n_runs, sizeof *table);
    if (!table) return err_set(err, "out of memory");
    int stale = 0;   // runs whose last validation loss is older than their last step
    for (int i = 0; i < r->n_runs; i++) {
        const RunSeries *x = &r->runs[i];
        double loss = x->n_steps ? x->steps[x->n_steps - 1].loss : NAN, val = x->n_val ? x->val[x->n_val - 1].loss : NAN;
        int last_step = x->n_steps ? x->steps[x->n_steps - 1].step : 0, val_step = x->n_val ? x->val[x->n_val - 1].step : 0;
        int current_val = isfinite(val) && val_step >= last_step;   // a verdict on the model as it is now
        char lr[40] = "–", l[16] = "–", v[16] = "–", dv[24] = "no", dw[16] = "–";
        if (x->optim[0]) snprintf(lr, sizeof lr, x->last_lr != x->lr ? "%.3g→%.3g" : "%.3g", x->lr, x->last_lr);
        if (isfinite(loss)) fmt_loss(l, sizeof l, loss);
        if (isfinite(val)) fmt_loss(v, sizeof v, val);
        // (after a rollback too: a run that went on from its divergence and blew up later did both)
        int blown = isfinite(loss) && isfinite(uniform) && loss > BLOWN_UP * uniform;
        double plateau = isfinite(x->unigram) ? x->unigram : h;   // its own data's, when it measured a val
        int above = !x->diverged_at && !blown && x->n_steps >= 100 && current_val && isfinite(plateau) &&
                    val >= plateau;
        int slow = above && still_falling(x), collapsed = above && !slow;
        if (isfinite(val) && !current_val) stale++;
        int recovered = x->diverged_at && last_step >= x->diverged_at;   // trained past it since
        if (x->diverged_at) snprintf(dv, sizeof dv, recovered ? "at %d, on" : "at %d", x->diverged_at);
        if (collapsed) snprintf(dv, sizeof dv, "plateau");
        if (slow) snprintf(dv, sizeof dv, "no, slow");
        if (blown) snprintf(dv, sizeof dv, x->diverged_at ? "at %d, blew up" : "blew up", x->diverged_at);
        if (isfinite(x->max_dw_over_eta)) snprintf(dw, sizeof dw, "%.3g", x->max_dw_over_eta);
        RunRow *row = &table[i];
        char rank[32], steps[32] = "–";
        if (x->n_steps) snprintf(steps, sizeof steps, "%d..%d", x->steps[0].step, last_step);
        const char *cells[RUN_COLUMNS] = {NAME_TEXT(x->name), x->optim[0] ? x->optim : "–", lr,
                                          run_rank(x->model, rank, sizeof rank), steps, l, v, "", dv, dw};
        for (int c = 0; c < RUN_COLUMNS; c++) snprintf(row->cell[c], sizeof row->cell[c], "%s", cells[c]);
        snprintf(row->cell[7], sizeof row->cell[7], "%d", x->spikes);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddTrueToObject(o, "ok");
        cJSON_AddStringToObject(o, "command", "runs");
        cJSON_AddStringToObject(o, "run", x->name);
        if (x->optim[0]) cJSON_AddStringToObject(o, "optim", x->optim);
        else cJSON_AddNullToObject(o, "optim");
        real_or_null(o, "lr", x->optim[0] ? x->lr : NAN);
        real_or_null(o, "last_lr", x->optim[0] ? x->last_lr : NAN);
        cJSON_AddNumberToObject(o, "steps", x->n_steps);
        if (x->n_steps) {
            cJSON_AddNumberToObject(o, "first_step", x->steps[0].step);
            cJSON_AddNumberToObject(o, "last_step", last_step);
        } else {
            cJSON_AddNullToObject(o, "first_step");
            cJSON_AddNullToObject(o, "last_step");
        }
        const char *shape_keys[] = {"batch", "seq", "accum"};   // its first step's batches (null: no step)
        int shape[] = {x->batch, x->seq, x->accum};
        for (int k = 0; k < 3; k++)
            if (x->n_steps && shape[k]) cJSON_AddNumberToObject(o, shape_keys[k], shape[k]);
            else cJSON_AddNullToObject(o, shape_keys[k]);
        if (x->model[0]) cJSON_AddStringToObject(o, "model", x->model), cJSON_AddNumberToObject(o, "params", (double)x->params);
        else cJSON_AddNullToObject(o, "model"), cJSON_AddNullToObject(o, "params");
        runlog_add_rerun(o, x);
        real_or_null(o, "loss", loss);
        real_or_null(o, "val_loss", val);
        if (isfinite(val)) cJSON_AddNumberToObject(o, "val_step", val_step);
        else cJSON_AddNullToObject(o, "val_step");
        cJSON_AddNumberToObject(o, "spikes", x->spikes);
        cJSON_AddBoolToObject(o, "diverged", x->diverged_at != 0 || collapsed || blown);
        cJSON_AddBoolToObject(o, "plateau", collapsed);
        cJSON_AddBoolToObject(o, "slow", slow);
        cJSON_AddBoolToObject(o, "blew_up", blown);
        if (x->diverged_at) cJSON_AddNumberToObject(o, "diverged_at", x->diverged_at);
        else cJSON_AddNullToObject(o, "diverged_at");
        cJSON_AddBoolToObject(o, "recovered", recovered);
        real_or_null(o, "max_dw_over_eta", x->max_dw_over_eta);
        real_or_null(o, "unigram_loss", plateau);   // the plateau the verdict compares val_loss with
        out_emit(s, o);
    }
    runs_table(s, table, r->n_runs);
    free(table);
    if (isfinite(h))
        out_text(s, "(a model that knows only token frequencies scores %.4f on this validation split. diverged: "
                    "\"plateau\" — a run of 100 steps or more whose val ends there or above; \"no, slow\" — the "
                    "same, but its loss still falls; \"blew up\" — its loss ends above %.3g, %.1f× a uniform "
                    "guess's. max ΔW/η: the largest ‖ΔW‖₂/η of the steps that measured it, every "
                    "diag_every-th and the last; diag_every=1 measures them all)\n", h, BLOWN_UP * uniform, BLOWN_UP);
    if (stale)   // a validation loss from before the last steps judges nothing: say so
        out_text(s, "(%d %s val is from before %s last steps: `eval` measures it now; \"plateau\" waits for it)\n",
                 stale, stale == 1 ? "run's" : "runs'", stale == 1 ? "its" : "their");
    return 0;
}

// ---- log ----------------------------------------------------------------------------------

int cmd_log(Session *s, const Args *a, Err *err) {
    RunLog *r = &s->runs;
    if (a->n_pos == 0) {
        if (r->log) out_text(s, "logging to %s (%ld lines this session)\n", NAME_TEXT(r->log_path), r->log_lines);
        else out_text(s, "logging is off (`log FILE` starts it)\n");
        if (r->log) cJSON_AddStringToObject(s->result, "path", r->log_path);
        else cJSON_AddNullToObject(s->result, "path");
        return 0;
    }
    if (strcmp(a->pos[0], "off") == 0) {
        if (r->log) out_text(s, "logging to %s stopped (%ld line%s written)\n", NAME_TEXT(r->log_path), r->log_lines,
                            r->log_lines == 1 ? "" : "s");
        else out_text(s, "logging was off\n");
        runlog_close(r);
        cJSON_AddNullToObject(s->result, "path");
        return 0;
    }
    if (!a->pos[0][0]) return err_set(err, "log: no file name given (`log FILE` starts logging, `log off` stops it)");
    char buf[PATH_MAX], was[sizeof r->log_path] = "";
    const char *path = expand_path(a->pos[0], buf, sizeof buf);
    long was_lines = r->log_lines;
    if (r->log) snprintf(was, sizeof was, "%s", r->log_path);
    if (runlog_open(r, path, err) != 0) return -1;
    if (was[0] && strcmp(was, path) != 0)   // the old file is closed: say so, as `log off` would
        out_text(s, "logging to %s stopped (%ld line%s written)\n", NAME_TEXT(was), was_lines, was_lines == 1 ? "" : "s");
    out_text(s, "logging every training step to %s (one JSON object per line; `log off` stops)\n", NAME_TEXT(path));
    cJSON_AddStringToObject(s->result, "path", path);
    return 0;
}

// ---- plot: the data -----------------------------------------------------------------------

// `log` appends, so one file may hold several runs of one name: two lrsh at once (each line
// names its writer, "session"), a run resumed in a later session, a name run again. A line's
// run is its "run_id" (in older logs, none: its name), and a writer's lines go on in one series:
// its run's, or "NAME#2" (then #3, …) from where they cannot — its steps went back (the same
// experiment run again, a job killed outright and requeued from its last save, a second branch
// from one checkpoint). A writer first seen continues the series of its run that its first
// line follows on from, the latest such (a run resumed in a later session); a run renamed
// (`run NAME` after an eval of its start) renames its series; a rollback's record truncates the
// series first.
typedef struct LogWriter {
    char run_id[24];                              // "": an older log's line, its name stands for the run
    char session[17];                             // the writer ("": a log from before sessions)
    char logged[sizeof ((RunSeries *)0)->name];   // the name its last line gave
    char as[sizeof ((RunSeries *)0)->name];       // the series its lines go to now
} LogWriter;
typedef struct LogWriters {
    LogWriter *w;
    int n, cap;
} LogWriters;

// One line of a log, as log_series reads it.
typedef struct LogLine {
    const char *name, *run_id, *session;
    int step, step_record;   // step_record: a training step's line (val and divergence follow their run)
} LogLine;

static LogWriter *add_writer(LogWriters *ws, const LogLine *l) {
    if (ws->n == ws->cap) {
        int cap = ws->cap ? 2 * ws->cap : 16;
        LogWriter *w = realloc(ws->w, (size_t)cap * sizeof *w);
        if (!w) return NULL;
        ws->w = w, ws->cap = cap;
    }
    LogWriter *w = &ws->w[ws->n++];
    memset(w, 0, sizeof *w);
    snprintf(w->run_id, sizeof w->run_id, "%s", l->run_id);
    snprintf(w->session, sizeof w->session, "%s", l->session);
    snprintf(w->logged, sizeof w->logged, "%s", l->name);
    return w;
}

static int same_run(const LogWriter *w, const LogLine *l) {
    return l->run_id[0] ? strcmp(w->run_id, l->run_id) == 0 : !w->run_id[0] && strcmp(w->logged, l->name) == 0;
}

// The last step of a series; −1 when it has none (or none yet).
static int last_step(RunLog *r, const char *series) {
    const RunSeries *x = runlog_find(r, series);
    return x && x->n_steps ? x->steps[x->n_steps - 1].step : -1;
}

// Whether line l goes on from a series ending at step `last`: a step after it, or a val of it.
static int follows_on(const LogLine *l, int last) {
    return l->step_record ? l->step > last : l->step >= last;
}

// Series `from` becomes `to` (a free name), for every writer of it.
static void rename_series(RunLog *r, LogWriters *ws, const char *from, const char *to) {
    RunSeries *x = runlog_find(r, from);
    char was[sizeof ws->w[0].as];
    snprintf(was, sizeof was, "%s", from);
    if (x) snprintf(x->name, sizeof x->name, "%s", to);
    for (int j = 0; j < ws->n; j++)
        if (strcmp(ws->w[j].as, was) == 0) snprintf(ws->w[j].as, sizeof ws->w[j].as, "%s", to);
}

// A writer first seen: the series of its run that l follows on from, the one that got furthest
// ("" when none does: a series of its own, named by log_series).
static void first_series(RunLog *r, const LogWriters *ws, const LogLine *l, char *as, size_t cap) {
    int best = -1, best_last = -2;
    for (int j = 0; j < ws->n; j++) {
        int last = last_step(r, ws->w[j].as);
        if (same_run(&ws->w[j], l) && follows_on(l, last) && last > best_last) best = j, best_last = last;
    }
    snprintf(as, cap, "%s", best >= 0 ? ws->w[best].as : runlog_find(r, l->name) ? "" : l->name);
}

// The series line l goes to; NULL when out of memory.
static const char *log_series(RunLog *r, LogWriters *ws, const LogLine *l) {
    int i = 0;
    while (i < ws->n && !(same_run(&ws->w[i], l) && strcmp(ws->w[i].session, l->session) == 0)) i++;
    if (i == ws->n) {
        char as[sizeof ws->w[0].as];
        first_series(r, ws, l, as, sizeof as);
        LogWriter *w = add_writer(ws, l);
        if (!w) return NULL;
        snprintf(w->as, sizeof w->as, "%s", as);
    }
    LogWriter *w = &ws->w[i];
    if (strcmp(w->logged, l->name) != 0) {   // the run was renamed: its series too, when the name is free
        snprintf(w->logged, sizeof w->logged, "%s", l->name);
        if (!runlog_find(r, l->name)) rename_series(r, ws, w->as, l->name);
    }
    if (w->as[0] && (!l->step_record || l->step > last_step(r, w->as))) return w->as;
    for (int k = 2;; k++) {
        snprintf(w->as, sizeof w->as, "%.160s#%d", l->name, k);
        if (!runlog_find(r, w->as)) return w->as;
    }
}

// The fields a log line names its run and writer by ("" where it has none).
static LogLine log_line(const cJSON *o) {
    const cJSON *run = cJSON_GetObjectItem(o, "run"), *id = cJSON_GetObjectItem(o, "run_id"),
                *session = cJSON_GetObjectItem(o, "session"), *step = cJSON_GetObjectItem(o, "step");
    return (LogLine){cJSON_IsString(run) ? run->valuestring : "run", cJSON_IsString(id) ? id->valuestring : "",
                     cJSON_IsString(session) ? session->valuestring : "", cJSON_IsNumber(step) ? step->valueint : 0,
                     cJSON_IsNumber(cJSON_GetObjectItem(o, "loss"))};
}

// A run's first line in a log says what trained it (runs.c's add_config): read back, `runs
// from=` names each run's optimizer, model and settings as the session that wrote it did.
static uint64_t log_u64(const cJSON *o, const char *key, int base) {   // a number, or a string of digits
    const cJSON *v = cJSON_GetObjectItem(o, key);
    return cJSON_IsString(v) ? strtoull(v->valuestring, NULL, base) : cJSON_IsNumber(v) ? (uint64_t)v->valuedouble : 0;
}

static int log_config(const cJSON *o, RunConfig *cfg) {
    const cJSON *optim = cJSON_GetObjectItem(o, "optim"), *model = cJSON_GetObjectItem(o, "model"),
                *settings = cJSON_GetObjectItem(o, "optim_settings"), *from = cJSON_GetObjectItem(o, "checkpoint");
    if (!cJSON_IsString(optim) || !cJSON_IsString(model)) return 0;
    *cfg = (RunConfig){.optim = optim->valuestring, .model = model->valuestring, .params = (long)log_u64(o, "params", 10),
                       .batch = (int)log_u64(o, "batch", 10), .seq = (int)log_u64(o, "seq", 10),
                       .accum = (int)log_u64(o, "accum", 10), .init_seed = log_u64(o, "init_seed", 10),
                       .session_seed = log_u64(o, "session_seed", 10), .data_rng = log_u64(o, "data_rng", 16),
                       .data_hash = log_u64(o, "data", 16),
                       .optim_settings = cJSON_IsString(settings) ? settings->valuestring : NULL,
                       .train_tokens = (long)log_u64(o, "train_tokens", 10),
                       .ensemble_k = (int)log_u64(o, "ensemble_k", 10),
                       .checkpoint = cJSON_IsString(from) ? from->valuestring : NULL};
    return 1;
}

// The peak lr a logged run was set to: "lr=" in its optim_settings (logs from before them: the
// first step's scheduled lr).
static float log_peak_lr(const RunConfig *cfg, float first_lr) {
    const char *at = cfg->optim_settings ? strstr(cfg->optim_settings, " lr=") : NULL;
    return at ? strtof(at + 4, NULL) : first_lr;
}

// A log written by `log FILE` read back into a RunLog (its own, not the session's).
// *skipped: the lines that are not a `log` record (not JSON, or no step and loss).
static int read_log(const char *path, RunLog *r, long *skipped, Err *err) {
    struct stat st;   // before opening: a pipe's open waits for a writer, a device never ends
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return err_set(err, "from=%s: %s, not a `log` file", path,
                       S_ISDIR(st.st_mode) ? "a folder" : "a device, pipe or socket");
    FILE *f = fopen(path, "r");
    if (!f) return err_set(err, "from=%s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0, bad = 0;
    LogWriters writers = {0};
    int rc = 0;
    while (rc == 0 && getline(&line, &cap, f) >= 0) {
        lineno++;
        if (!line[strspn(line, " \t\r\n")]) continue;
        cJSON *o = cJSON_Parse(line);
        const cJSON *step = o ? cJSON_GetObjectItem(o, "step") : NULL;
        if (!cJSON_IsNumber(step)) { bad++; cJSON_Delete(o); continue; }
        LogLine l = log_line(o);
        const char *name = log_series(r, &writers, &l);
        if (!name) { cJSON_Delete(o); rc = err_set(err, "from=%s: out of memory", path); break; }
        RunSeries *x = runlog_find(r, name);
        if (x) r->current = (int)(x - r->runs);
        else r->current = -1;
        const cJSON *loss = cJSON_GetObjectItem(o, "loss"), *val = cJSON_GetObjectItem(o, "val_loss");
        if (cJSON_IsNumber(loss)) {
#define FIELD(k) (cJSON_IsNumber(cJSON_GetObjectItem(o, k)) ? cJSON_GetObjectItem(o, k)->valuedouble : NAN)
            StepStats st = {.step = step->valueint, .loss = (float)loss->valuedouble, .lr = (float)FIELD("lr"),
                            .grad_norm = (float)FIELD("grad_norm"), .clip_scale = (float)FIELD("clip_scale"),
                            .seconds = FIELD("seconds")};
            StepDiag d = {(float)FIELD("dw_over_eta"), (float)FIELD("rho"), (float)FIELD("sigma_a"),
                          (float)FIELD("sigma_b")};
            const cJSON *w = cJSON_GetObjectItem(o, "watch"), *x;   // `watch` values of this step
            if (!cJSON_IsObject(w)) w = NULL;
            cJSON_ArrayForEach(x, w)
                if (rc == 0 && (cJSON_IsNumber(x) || cJSON_IsNull(x)) && x->string)   // null: not measured
                    rc = runlog_watch_pending(r, x->string, cJSON_IsNumber(x) ? (float)x->valuedouble : NAN, err);
            RunConfig cfg;
            int configured = log_config(o, &cfg);
            if (rc == 0) rc = runlog_step(r, name, &st, FIELD("tok_per_s"), &d, configured ? &cfg : NULL, err);
            if (rc == 0 && configured) runlog_optim(r, cfg.optim, log_peak_lr(&cfg, st.lr));
#undef FIELD
        } else if (cJSON_IsNumber(val)) {
            rc = runlog_val(r, name, step->valueint, val->valuedouble, err);
        } else if (cJSON_IsTrue(cJSON_GetObjectItem(o, "diverged"))) {
            const cJSON *back = cJSON_GetObjectItem(o, "rolled_back_to");   // older logs: none
            rc = runlog_diverged(r, name, step->valueint, cJSON_IsNumber(back) ? back->valueint : -1, err);
        } else {
            bad++;
        }
        cJSON_Delete(o);
    }
    free(line);
    free(writers.w);
    fclose(f);
    *skipped = bad;
    if (rc != 0) return -1;
    if (lineno == 0) return err_set(err, "plot from=%s: the file is empty", path);
    if (bad == lineno) return err_set(err, "plot from=%s: no line is a `log` record (JSON with step and loss)", path);
    return 0;
}

static double step_field(const RunPoint *p, const char *field) {
    if (strcmp(field, "loss") == 0) return p->loss;
    if (strcmp(field, "lr") == 0) return p->lr;
    if (strcmp(field, "gnorm") == 0) return p->grad_norm;
    if (strcmp(field, "clip") == 0) return p->clip_scale;
    if (strcmp(field, "tok_per_s") == 0) return p->tok_per_s;
    if (strcmp(field, "dw_over_eta") == 0) return p->diag.dw_over_eta;
    if (strcmp(field, "rho") == 0) return p->diag.rho;
    if (strcmp(field, "sigma_a") == 0) return p->diag.sigma_a;
    if (strcmp(field, "sigma_b") == 0) return p->diag.sigma_b;
    return p->seconds;
}

// The spectral fields are measured every diag_every-th step only: their series join the
// measured steps instead of breaking at every step without a value.
static int sparse_field(const char *field) {
    return strcmp(field, "dw_over_eta") == 0 || strcmp(field, "rho") == 0 || strcmp(field, "sigma_a") == 0 ||
           strcmp(field, "sigma_b") == 0;
}

// The points of run x that the chart of field draws.
static int measured(const RunSeries *x, const char *field) {
    if (!sparse_field(field)) return x->n_steps;
    int n = 0;
    for (int k = 0; k < x->n_steps; k++) n += isfinite(step_field(&x->steps[k], field)) != 0;
    return n;
}

// The series of one field over all runs: x and y arrays in one allocation per series.
typedef struct Chart {
    PlotSeries *series;
    double **bufs;
    char (*names)[sizeof(((RunSeries *)0)->name) + 8];   // a run's name and " val"
    int n;
} Chart;

static void chart_free(Chart *c) {
    for (int i = 0; i < c->n; i++) free(c->bufs[i]);
    free(c->series);
    free(c->bufs);
    free(c->names);
    memset(c, 0, sizeof *c);
}

// A series of run `run` (its index in the session): the run's color and letter in every chart,
// so that "the blue line, b" is the same run on each screen; no letter when it is alone. Its
// validation marks (points) are the letter in capitals: without color, * marks of two runs were
// one.
static int chart_add(Chart *c, const char *name, int n, int points, int run, int lettered) {
    PlotSeries *s = &c->series[c->n];
    c->bufs[c->n] = malloc(sizeof(double) * 2 * (size_t)(n ? n : 1));
    if (!c->bufs[c->n]) return -1;
    snprintf(c->names[c->n], sizeof c->names[0], "%s", name);
    *s = (PlotSeries){.name = c->names[c->n], .x = c->bufs[c->n], .y = c->bufs[c->n] + n, .n = n,
                      .points = points, .letter = lettered ? (points ? 'A' : 'a') + run % 26 : 0, .color = 1 + run % 6};
    c->n++;
    return 0;
}

static int chart_build(const RunLog *r, const char *field, Chart *c, Err *err) {
    int most = 2 * r->n_runs + 1;
    c->series = calloc((size_t)most, sizeof *c->series);
    c->bufs = calloc((size_t)most, sizeof *c->bufs);
    c->names = calloc((size_t)most, sizeof *c->names);
    if (!c->series || !c->bufs || !c->names) return err_set(err, "out of memory");
    int val_only = strcmp(field, "val") == 0, with_val = val_only || strcmp(field, "loss") == 0;
    int shown = 0;
    for (int i = 0; i < r->n_runs; i++)
        shown += (!val_only && measured(&r->runs[i], field)) || (with_val && r->runs[i].n_val);
    for (int i = 0; i < r->n_runs; i++) {
        const RunSeries *x = &r->runs[i];
        int n = val_only ? 0 : measured(x, field), has_steps = n > 0, has_val = with_val && x->n_val;
        if (!has_steps && !has_val) continue;
        if (has_steps) {
            if (chart_add(c, x->name, n, 0, i, shown > 1) != 0) return err_set(err, "out of memory");
            double *xs = c->bufs[c->n - 1], *ys = xs + n;
            int j = 0;
            for (int k = 0; k < x->n_steps; k++) {
                double y = step_field(&x->steps[k], field);
                if (sparse_field(field) && !isfinite(y)) continue;
                xs[j] = x->steps[k].step;
                ys[j++] = y;
            }
        }
        if (has_val) {
            char name[sizeof x->name + 8];
            snprintf(name, sizeof name, "%s val", x->name);
            // validation alone: joined, so a few points still read as a curve
            if (chart_add(c, name, x->n_val, !val_only, i, shown > 1) != 0)
                return err_set(err, "out of memory");
            for (int k = 0; k < x->n_val; k++) {
                c->bufs[c->n - 1][k] = x->val[k].step;
                c->bufs[c->n - 1][x->n_val + k] = x->val[k].loss;
            }
        }
    }
    return 0;
}

// A `watch` series (key "spectral", "stable_rank:blocks.1.mlp.w2") over the runs that have it.
static int watched_anywhere(const RunLog *r, const char *key) {
    for (int i = 0; i < r->n_runs; i++)
        if (runlog_watch_series(&r->runs[i], key)) return 1;
    return 0;
}

static int chart_build_watch(const RunLog *r, const char *key, Chart *c, Err *err) {
    c->series = calloc((size_t)r->n_runs + 1, sizeof *c->series);
    c->bufs = calloc((size_t)r->n_runs + 1, sizeof *c->bufs);
    c->names = calloc((size_t)r->n_runs + 1, sizeof *c->names);
    if (!c->series || !c->bufs || !c->names) return err_set(err, "out of memory");
    int shown = 0;
    for (int i = 0; i < r->n_runs; i++) shown += runlog_watch_series(&r->runs[i], key) != NULL;
    for (int i = 0; i < r->n_runs; i++) {
        const WatchSeries *w = runlog_watch_series(&r->runs[i], key);
        if (!w) continue;
        if (chart_add(c, r->runs[i].name, w->n, 0, i, shown > 1) != 0) return err_set(err, "out of memory");
        for (int k = 0; k < w->n; k++) {
            c->bufs[c->n - 1][k] = w->step[k];
            c->bufs[c->n - 1][w->n + k] = w->value[k];
        }
    }
    return 0;
}

// ---- plot ---------------------------------------------------------------------------------

static const char *field_name(const char *typed) {
    static const char *const alias[][2] = {{"grad_norm", "gnorm"}, {"clip_scale", "clip"}, {"val_loss", "val"},
                                           {"tokps", "tok_per_s"}, {"time", "seconds"}};
    for (size_t i = 0; i < sizeof alias / sizeof alias[0]; i++)
        if (strcmp(typed, alias[i][0]) == 0) return alias[i][1];
    for (int i = 0; plot_fields[i]; i++)
        if (strcmp(typed, plot_fields[i]) == 0) return plot_fields[i];
    return NULL;
}

static const char *field_title(const char *f) {
    if (strcmp(f, "loss") == 0) return "training loss (marks: validation)";
    if (strcmp(f, "val") == 0) return "validation loss";
    if (strcmp(f, "lr") == 0) return "learning rate";
    if (strcmp(f, "gnorm") == 0) return "gradient norm (before clipping)";
    if (strcmp(f, "clip") == 0) return "clip scale";
    if (strcmp(f, "tok_per_s") == 0) return "training tokens/s";
    if (strcmp(f, "dw_over_eta") == 0) return "max ‖ΔW‖₂/η over the matrices measured (Spectron's bound: 1)";
    if (strcmp(f, "rho") == 0) return "max factor step ρ over the factorized matrices";
    if (strcmp(f, "sigma_a") == 0) return "mean ‖A‖₂ of the factorized matrices";
    if (strcmp(f, "sigma_b") == 0) return "mean ‖B‖₂ of the factorized matrices";
    return "seconds per step";
}

// Whether run `name` is what a piece of runs= (len bytes at piece) names: the name itself, or,
// when no run has that name, a shell pattern matching it (`runs=*-lr0.05`: a sweep's runs
// without typing each; a run named "lr[0.1]" is taken literally).
static int run_matches(const RunLog *r, const char *piece, int len, const char *name) {
    char pattern[256];
    if ((int)strlen(name) == len && strncmp(piece, name, (size_t)len) == 0) return 1;
    for (int i = 0; i < r->n_runs; i++)
        if ((int)strlen(r->runs[i].name) == len && strncmp(piece, r->runs[i].name, (size_t)len) == 0) return 0;
    snprintf(pattern, sizeof pattern, "%.*s", len, piece);   // (select_runs refuses a longer one)
    return strpbrk(pattern, "*?[") && fnmatch(pattern, name, 0) == 0;
}

// Whether run `name` is named by any of list's comma-separated pieces.
static int listed(const RunLog *r, const char *list, const char *name) {
    for (const char *p = list; *p; p += strcspn(p, ",") + (p[strcspn(p, ",")] == ','))
        if (run_matches(r, p, (int)strcspn(p, ","), name)) return 1;
    return 0;
}

// runs=A,B: a view of r holding only those runs, in r's order (RunSeries copied shallowly into
// *keep, which the caller frees; nothing of r's is freed). A name or pattern that names no run
// is an error naming the runs there are.
static int select_runs(const RunLog *r, const char *list, RunLog *view, RunSeries **keep, Err *err) {
    for (const char *p = list; *p; p += strcspn(p, ",") + (p[strcspn(p, ",")] == ',')) {
        int len = (int)strcspn(p, ","), known = 0;
        if (len > 255) return err_set(err, "plot runs=: a name or pattern has at most 255 bytes");
        for (int i = 0; i < r->n_runs && !known; i++) known = run_matches(r, p, len, r->runs[i].name);
        if (known) continue;
        char names[512] = "";
        for (int i = 0; i < r->n_runs && strlen(names) + 48 < sizeof names; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "", r->runs[i].name);
        return err_set(err, "plot runs=: no run '%.*s' (runs: %s)", len, p, r->n_runs ? names : "none yet");
    }
    *view = *r;
    *keep = calloc((size_t)(r->n_runs ? r->n_runs : 1), sizeof **keep);
    if (!*keep) return err_set(err, "out of memory");
    view->n_runs = 0;
    for (int i = 0; i < r->n_runs; i++)
        if (listed(r, list, r->runs[i].name)) (*keep)[view->n_runs++] = r->runs[i];
    view->runs = *keep;
    return 0;
}

// scale=auto's choice: a log scale when every value is positive and they span two orders of
// magnitude or more (‖ΔW‖₂/η of AdamW against Spectron's), else linear. *nonpositive: the
// values a log scale leaves out.
static int log_scale(const Chart *c, const char *scale, const PlotOptions *range, long *nonpositive) {
    double lo = INFINITY, hi = -INFINITY;
    *nonpositive = 0;
    for (int i = 0; i < c->n; i++)
        for (int k = 0; k < c->series[i].n; k++) {
            double y = c->series[i].y[k];
            if (!isfinite(y)) continue;
            if (y <= 0) ++*nonpositive;   // never on a log scale, whatever ymin= says
            else if (!(range->has_y_min && y < range->y_min) && !(range->has_y_max && y > range->y_max))
                lo = fmin(lo, y), hi = fmax(hi, y);   // past ymin=/ymax= (drawn on the edge): not what the scale is for
        }
    if (strcmp(scale, "auto") != 0) return strcmp(scale, "log") == 0;
    int end_not_positive = (range->has_y_min && range->y_min <= 0) || (range->has_y_max && range->y_max <= 0);
    return *nonpositive == 0 && !end_not_positive && hi >= 100 * lo;
}

// ---- the part of the chart asked for: steps=A..B, smooth=N, ymin=, ymax=

// steps=A..B as [*from, *to]; either end may be left out (100.., ..500).
static int parse_steps(const char *text, double *from, double *to, Err *err) {
    const char *dots = strstr(text, "..");
    char *end = NULL;
    *from = -INFINITY, *to = INFINITY;
    int ok = dots != NULL;
    if (ok && dots > text) ok = (*from = (double)strtol(text, &end, 10)) >= 0 && end == dots;
    if (ok && dots[2]) ok = (*to = (double)strtol(dots + 2, &end, 10)) >= 0 && *end == '\0';
    if (!ok)
        return err_set(err, "plot: steps=%s is not a range of steps A..B (steps=100.. to the end, steps=..500 "
                       "from the start)", text);
    if (*from > *to) return err_set(err, "plot: steps=%s ends before it starts", text);
    return 0;
}

// Only the points of steps [from, to], in place (each series' ys stay where chart_add put them).
static void chart_keep_steps(Chart *c, double from, double to) {
    for (int i = 0; i < c->n; i++) {
        PlotSeries *s = &c->series[i];
        double *x = c->bufs[i], *y = (double *)s->y;   // s->y is c->bufs[i] + the points it had
        int kept = 0;
        for (int k = 0; k < s->n; k++)
            if (x[k] >= from && x[k] <= to) x[kept] = x[k], y[kept++] = y[k];
        s->n = kept;
    }
}

// Each line a trailing mean of its last `window` points, restarting after a value that is not
// finite (the line breaks there); validation marks stay as they were measured.
static int chart_smooth(Chart *c, int window) {
    for (int i = 0; i < c->n; i++) {
        PlotSeries *s = &c->series[i];
        if (s->points || s->n < 2 || window < 2) continue;
        double *y = (double *)s->y, *raw = malloc(sizeof *raw * (size_t)s->n);
        if (!raw) return -1;
        memcpy(raw, y, sizeof *raw * (size_t)s->n);
        double sum = 0;
        for (int k = 0, start = 0; k < s->n; k++) {
            if (!isfinite(raw[k])) { start = k + 1, sum = 0; continue; }
            sum += raw[k];
            if (k - start >= window) sum -= raw[k - window];
            y[k] = sum / (k - start + 1 < window ? k - start + 1 : window);
        }
        free(raw);
    }
    return 0;
}

// steps= and smooth= applied to c (smoothed first: the mean at the range's start takes the
// points before it); nothing left in the range is an error naming the steps there are.
static int chart_view(Chart *c, const Args *a, Err *err) {
    double from, to, first = INFINITY, last = -INFINITY;
    if (args_has(a, "smooth") && chart_smooth(c, (int)args_int(a, "smooth", 1)) != 0)
        return err_set(err, "out of memory smoothing the chart");
    if (!args_has(a, "steps")) return 0;
    if (parse_steps(args_str(a, "steps", ""), &from, &to, err) != 0) return -1;
    for (int i = 0; i < c->n; i++)
        if (c->series[i].n) first = fmin(first, c->series[i].x[0]), last = fmax(last, c->series[i].x[c->series[i].n - 1]);
    chart_keep_steps(c, from, to);
    for (int i = 0; i < c->n; i++)
        if (c->series[i].n) return 0;
    return err_set(err, "plot: no points in steps=%s (the runs have steps %.0f..%.0f)", args_str(a, "steps", ""),
                   first, last);
}

// ymin= and ymax= into o, the one below the other.
static int y_limits(const Args *a, PlotOptions *o, Err *err) {
    o->has_y_min = args_has(a, "ymin"), o->has_y_max = args_has(a, "ymax");
    o->y_min = args_float(a, "ymin", 0), o->y_max = args_float(a, "ymax", 0);
    if (o->has_y_min && o->has_y_max && !(o->y_min < o->y_max))
        return err_set(err, "plot: ymin=%g is not below ymax=%g", o->y_min, o->y_max);
    if (o->has_y_min && o->has_y_max && !isfinite(o->y_max - o->y_min))   // 1e308 apart: no scale spans it
        return err_set(err, "plot: ymin=%g to ymax=%g is wider than a double spans", o->y_min, o->y_max);
    return 0;
}

// ... and above 0 on a log scale.
static int y_limits_on_log(const PlotOptions *o, Err *err) {
    if (o->log_y && ((o->has_y_min && o->y_min <= 0) || (o->has_y_max && o->y_max <= 0)))
        return err_set(err, "plot: y%s=%g on a log scale, which has no values ≤ 0 (scale=linear draws them)",
                       o->has_y_min && o->y_min <= 0 ? "min" : "max", o->has_y_min && o->y_min <= 0 ? o->y_min : o->y_max);
    return 0;
}

// The values drawn on the edge of the y range ymin=/ymax= chose, said under the chart.
static void note_clipped(Session *s, const Chart *c, const PlotOptions *o) {
    long above = 0, below = 0;
    for (int i = 0; i < c->n; i++)
        for (int k = 0; k < c->series[i].n; k++) {
            double y = c->series[i].y[k];
            if (o->log_y && y <= 0) continue;   // left out, and said so, not drawn on an edge
            above += o->has_y_max && y > o->y_max;   // NaN compares false: not counted
            below += o->has_y_min && y < o->y_min;
        }
    if (above) out_note(s, "note: %ld value%s above ymax=%g drawn on the chart's top edge\n", above,
                        above == 1 ? "" : "s", o->y_max);
    if (below) out_note(s, "note: %ld value%s below ymin=%g drawn on the chart's bottom edge\n", below,
                        below == 1 ? "" : "s", o->y_min);
}

// Rows text takes on a terminal of cols columns, its long lines wrapped.
static int shown_rows(const char *text, int cols) {
    int rows = 0;
    for (const char *p = text; *p;) {
        size_t n = strcspn(p, "\n");
        int w = text_columns_n(p, (int)n);
        rows += w > cols ? (w + cols - 1) / cols : 1;
        p += n + (p[n] == '\n');
    }
    return rows;
}

// Without height=, a chart drawn again shorter when it, as the terminal shows it (a long title
// or legend wrapped), and the prompt after it take more than the terminal's rows: on a
// projector's 24 rows the title and the top of the curves scrolled away. Not under 6 rows.
static char *fit_rows(const Session *s, const Args *a, const PlotSeries *series, int n, PlotOptions *o, char *text) {
    int rows = !s->json && isatty(STDOUT_FILENO) ? terminal_rows(stdout) : 0;
    int cols = rows > 0 ? terminal_columns(stdout) : 0;
    if (!text || args_has(a, "height") || rows <= 0 || cols <= 0) return text;
    int over = shown_rows(text, cols) + 1 - rows;
    if (over <= 0 || o->height <= 6) return text;
    o->height = o->height - over > 6 ? o->height - over : 6;
    free(text);
    return plot_render(series, n, o);
}

// What the title adds: the scale and the smoothing, which change what a reader sees.
static void chart_title(const Args *a, const PlotOptions *o, char *title, size_t cap) {
    size_t n = strlen(title);
    if (o->log_y && n < cap) n += (size_t)snprintf(title + n, cap - n, " — log scale");
    if (args_int(a, "smooth", 1) > 1 && n < cap)
        snprintf(title + n, cap - n, " — mean of the last %ld points", args_int(a, "smooth", 1));
}

// The legend's word for a line's last value: what smooth= made of it.
static const char *last_label(const Args *a) { return args_int(a, "smooth", 1) > 1 ? "last mean" : NULL; }

// width=, or what fits the terminal (80 columns in a pipe or a file, as the tables); a width
// past the terminal's is drawn at the terminal's, with a note: every row would wrap.
static int chart_width(Session *s, const Args *a) {
    int cols = !s->json && isatty(STDOUT_FILENO) ? terminal_columns(stdout) : 0;
    int page = cols > 0 ? cols : 80;
    int fit = page - 18 < 72 ? page - 18 : 72;   // y labels, axis and "  step": up to 18 columns
    if (fit < 8) fit = 8;                          // width='s least: a terminal under 26 columns wraps
    int width = (int)args_int(a, "width", fit);
    int most = cols - 18 > 8 ? cols - 18 : 8;   // a terminal's: width= may go past the default 72
    if (cols > 0 && width > most) {
        out_note(s, "(width=%d does not fit this terminal's %d columns: drawn %d wide)\n", width, cols, most);
        width = most;
    }
    return width;
}

// The chart in the terminal, and the notes that belong under it.
static int plot_draw(Session *s, const Args *a, const Chart *c, PlotOptions *o, long nonpositive, Err *err) {
    o->width = chart_width(s, a);
    o->height = (int)args_int(a, "height", 16);
    char title[160];   // a table has no marks: "training loss (marks: validation)" loses its "(…)"
    size_t len = strcspn(o->title, "(");
    while (len > 0 && o->title[len - 1] == ' ') len--;
    snprintf(title, sizeof title, "%.*s", (int)len, o->title);
    char *text = args_bool(a, "table", 0) ? plot_table(c->series, c->n, title, o->height)
                                          : fit_rows(s, a, c->series, c->n, o, plot_render(c->series, c->n, o));
    if (!text) return err_set(err, "out of memory drawing the chart");
    out_text(s, "%s", text);
    free(text);
    out_check_stdout();   // flushes: the notes below belong under this chart, not above it
    if (o->log_y && nonpositive)
        out_note(s, "note: %ld value%s ≤ 0 left out of the chart above (log scale; scale=linear draws them)\n",
                 nonpositive, nonpositive == 1 ? "" : "s");
    note_clipped(s, c, o);
    return 0;
}

// --json: the points drawn (smoothed, in steps=), so a script need not read the log.
static void plot_json(Session *s, const Args *a, const Chart *c, const PlotOptions *o, const char *field) {
    s->reported = 1;   // the chart is drawn: an image that then fails keeps it under "partial"
    cJSON_AddStringToObject(s->result, "field", field);
    cJSON_AddStringToObject(s->result, "scale", o->log_y ? "log" : "linear");
    cJSON_AddNumberToObject(s->result, "smooth", (double)args_int(a, "smooth", 1));
    cJSON *list = cJSON_AddArrayToObject(s->result, "series");
    for (int i = 0; i < c->n; i++) {
        const PlotSeries *p = &c->series[i];
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "name", p->name);
        cJSON_AddNumberToObject(j, "points", p->n);
        if (p->n) {
            cJSON_AddNumberToObject(j, "first_step", p->x[0]);
            cJSON_AddNumberToObject(j, "last_step", p->x[p->n - 1]);
            json_add_real(j, "last", p->y[p->n - 1]);
        }
        cJSON *steps = cJSON_AddArrayToObject(j, "steps"), *values = cJSON_AddArrayToObject(j, "values");
        for (int k = 0; k < p->n; k++) {
            cJSON_AddItemToArray(steps, cJSON_CreateNumber(p->x[k]));
            cJSON_AddItemToArray(values, json_real(p->y[k]));
        }
        cJSON_AddItemToArray(list, j);
    }
}

// The chart of the field typed over the runs of r (this session's, a log file's with from_log,
// perhaps only some: runs=), in the terminal and the images asked for.
static int plot_runs(Session *s, const Args *a, const RunLog *r, int from_log, Err *err) {
    const char *typed = a->n_pos ? a->pos[0] : "loss", *field = field_name(typed);
    char key[128];   // a `watch` series, under the key watch recorded the word as
    const char *wk = field ? NULL : watch_key(typed, key, sizeof key);
    int watched = 0;
    if (wk && watched_anywhere(r, wk)) typed = wk, watched = 1;
    else if (!field && watched_anywhere(r, typed)) watched = 1;
    if (watched) field = typed;
    if (!field) {
        Suggest sg;
        suggest_init(&sg, typed);
        for (int i = 0; plot_fields[i]; i++) suggest_try(&sg, plot_fields[i]);
        if (suggest_best(&sg)) return err_set(err, "plot: no field '%s': did you mean '%s'?", typed, suggest_best(&sg));
        return err_set(err, "plot: no field '%s' (fields: loss val lr gnorm clip tok_per_s seconds dw_over_eta rho "
                       "sigma_a sigma_b, and what `watch` records)", typed);
    }
    char pb[PATH_MAX], sb[PATH_MAX], title[160];
    const char *png = args_has(a, "png") ? expand_path(args_str(a, "png", ""), pb, sizeof pb) : NULL;
    const char *svg = args_has(a, "svg") ? expand_path(args_str(a, "svg", ""), sb, sizeof sb) : NULL;
    Chart c = {0};
    // (a step's dw_over_eta is the optimizer's or, when it measured none, `watch dw_over_eta`'s)
    int rc = watched ? chart_build_watch(r, field, &c, err) : chart_build(r, field, &c, err);
    if (watched) watch_title(field, title, sizeof title);
    else snprintf(title, sizeof title, "%s", field_title(field));
    if (rc == 0 && c.n == 0)
        rc = err_set(err, "nothing to plot for %s: %s", typed,
                     from_log ? "the log has no such records"
                     : strcmp(field, "val") == 0 ? "no validation losses yet (`eval`, or `train eval_every=N`)"
                     : sparse_field(field) ? "no step measured it yet (`step`, or `train` with diag_every=N > 0 on a "
                                             "factorized model; an ensemble's members measure none)"
                     : "no training steps yet (`train steps=N`), or plot a log file with from=FILE");
    PlotOptions o = {.title = title, .xlabel = "step", .ansi = !s->json && terminal_takes_color(stdout),
                     // where Spectron's bound lies, when the chart reaches it
                     .ref_name = strcmp(field, "dw_over_eta") == 0 ? "Spectron's bound ‖ΔW‖₂/η" : NULL, .ref = 1};
    long nonpositive = 0;
    if (rc == 0) rc = chart_view(&c, a, err);
    if (rc == 0) rc = y_limits(a, &o, err);
    if (rc == 0) o.log_y = log_scale(&c, args_str(a, "scale", "auto"), &o, &nonpositive);
    if (rc == 0) rc = y_limits_on_log(&o, err);
    if (rc == 0) chart_title(a, &o, title, sizeof title);
    o.last_label = last_label(a);
    if (rc == 0) rc = plot_draw(s, a, &c, &o, nonpositive, err);
    if (rc == 0) plot_json(s, a, &c, &o, field);
    if (rc == 0 && (png || svg)) rc = plot_images(s, c.series, c.n, field, &o, png, svg, err);
    chart_free(&c);
    return rc;
}

// Without runs=, the last PLOT_RUNS runs (the current one among them, however early it started):
// one letter each (a–z), where a long session's hundreds reused them and drew letter soup over a
// legend of a thousand lines.
#define PLOT_RUNS 26

static int last_runs_view(const RunLog *r, RunLog *view, RunSeries **keep, Err *err) {
    int first, extra;
    latest_runs(r, PLOT_RUNS, &first, &extra);
    *keep = calloc(PLOT_RUNS, sizeof **keep);
    if (!*keep) return err_set(err, "out of memory");
    *view = *r;
    view->n_runs = 0;
    if (extra >= 0) (*keep)[view->n_runs++] = r->runs[extra];
    for (int i = first; i < r->n_runs; i++) (*keep)[view->n_runs++] = r->runs[i];
    view->runs = *keep;
    view->current = -1;
    return 0;
}

// from=FILE's log read into *from (plot's and runs's), saying how many lines were not records.
static int read_log_from(Session *s, const Args *a, RunLog *from, Err *err) {
    char fb[PATH_MAX];
    long skipped = 0;
    int rc = read_log(expand_path(args_str(a, "from", ""), fb, sizeof fb), from, &skipped, err);
    if (rc == 0 && skipped)
        out_note(s, "note: from=%s: %ld line%s skipped (not a `log` record: JSON with step and loss)\n",
                 NAME_TEXT(args_str(a, "from", "")), skipped, skipped == 1 ? "" : "s");
    return rc;
}

int cmd_runs(Session *s, const Args *a, Err *err) {
    if (!args_has(a, "from")) return runs_report(s, &s->runs, err);
    RunLog from;   // a log of an earlier session: its runs compared as that session's `runs` did
    runlog_init(&from);
    int rc = read_log_from(s, a, &from, err);
    if (rc == 0) rc = runs_report(s, &from, err);
    runlog_free(&from);
    return rc;
}

int cmd_plot(Session *s, const Args *a, Err *err) {
    RunLog from, view;
    const RunLog *r = &s->runs;
    RunSeries *kept = NULL;
    runlog_init(&from);
    int rc = 0, from_log = args_has(a, "from");
    if (from_log) {
        rc = read_log_from(s, a, &from, err);
        r = &from;
    }
    if (rc == 0 && args_has(a, "runs") && (rc = select_runs(r, args_str(a, "runs", ""), &view, &kept, err)) == 0)
        r = &view;
    int all = r->n_runs, limited = rc == 0 && !args_has(a, "runs") && all > PLOT_RUNS;
    if (limited) rc = last_runs_view(r, &view, &kept, err), r = &view;
    if (rc == 0) rc = plot_runs(s, a, r, from_log, err);
    if (rc == 0 && limited)
        out_note(s, "(the last %d of %d runs: runs=NAME,… or a pattern draws others, runs=* every one)\n", PLOT_RUNS,
                 all);
    free(kept);
    runlog_free(&from);
    return rc;
}
