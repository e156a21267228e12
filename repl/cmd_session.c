// cmd_session.c — the commands about the shell itself: help, show, set, quit. `help` renders
// the command table; nothing here knows any particular command.
#include <omp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "commands.h"
#include "output.h"
#include "../engine/checkpoint.h"
#include "../kernels/cuda/backend_cuda.h"

// ---- help ---------------------------------------------------------------------------------

static void help_list(Session *s) {
    cJSON *list = cJSON_AddArrayToObject(s->result, "commands");
    const char *family = NULL;
    out_text(s, "lrsh commands (`help COMMAND` for options and examples):\n");
    for (int i = 0; i < n_commands; i++) {
        const CmdSpec *c = &commands[i];
        char title[64];
        command_title(c, title, sizeof title);
        if (!family || strcmp(family, c->family) != 0) out_text(s, "\n%s\n", c->family);
        family = c->family;
        out_text(s, "  %-16s  %s\n", title, c->summary);   // two spaces even after "ensemble average"
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", title);
        cJSON_AddStringToObject(o, "family", c->family);
        cJSON_AddStringToObject(o, "summary", c->summary);
        cJSON_AddItemToArray(list, o);
    }
    out_text(s, "\nOptions are key=value; a switch (on|off) also takes yes|no, true|false, 1|0. Quote\n"
                "text with spaces: tok encode \"Hello, world\". Separate commands with `;`. Tab\n"
                "completes commands, options and paths.\n");
}

// "vocab=N" / "type=bpe|unigram" / "tensors=on|off": the option as usage shows it ("seed N"
// for a setting: sep " ")
static void option_form(const OptSpec *o, const char *sep, char *buf, size_t size) {
    static const char *const meta[] = {[OPT_INT] = "N", [OPT_FLOAT] = "X", [OPT_STRING] = "TEXT",
                                       [OPT_BOOL] = "on|off", [OPT_ENUM] = "", [OPT_PATH] = "PATH"};
    snprintf(buf, size, "%s%s%s", o->name, sep, o->type == OPT_ENUM ? o->choices : meta[o->type]);
}

// "integer 1..1048576; default 20", "number 0..0.5; default 0.05": what help says about a value
// A number's bounds as help shows them ("integer 1..1000000000", as `help optim` words its
// own); "" for the other kinds.
static int option_range(const OptSpec *o, char *buf, size_t size) {
    int numeric = o->type == OPT_INT || o->type == OPT_FLOAT;
    const char *type = o->type == OPT_INT ? "integer" : "number";
    buf[0] = '\0';
    if (numeric && o->lo < o->hi)   // the bounds opt_check holds to, integers in full (1048576, not 1.048576e+06)
        return snprintf(buf, size, o->type == OPT_INT ? "%s %.0f..%.0f" : "%s %.10g..%.10g", type, o->lo, o->hi);
    return numeric ? snprintf(buf, size, "%s", type) : 0;
}

static void option_what(const OptSpec *o, char *buf, size_t size) {
    int n = option_range(o, buf, size);
    if (o->def && n >= 0 && (size_t)n < size)
        snprintf(buf + n, size - (size_t)n, "%sdefault %s", n ? "; " : "", o->def);
}

// The rows of a table of options (a command's key=value, or the settings), under heading.
static void help_option_rows(Session *s, const OptSpec *opts, const char *heading, const char *sep, const char *key) {
    cJSON *list = cJSON_AddArrayToObject(s->result, key);
    if (!opts || !opts->name) return;
    out_text(s, "\n%s\n", heading);
    for (const OptSpec *o = opts; o->name; o++) {
        char form[64], what[160] = "";
        option_form(o, sep, form, sizeof form);
        option_what(o, what, sizeof what);
        // a form wider than its column ("against=microbatch|…|forward") gets a line of its own
        const char *gap = text_columns(form) >= 20 ? "\n                       " : " ";
        char padded[96];
        snprintf(padded, sizeof padded, "%-20s", form);
        out_text(s, "  %s%s%s%s%s%s\n", padded, gap, o->doc, what[0] ? "  [" : "", what, what[0] ? "]" : "");
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "name", o->name);
        cJSON_AddStringToObject(j, "type", opt_type_name(o));
        if (o->def) cJSON_AddStringToObject(j, "default", o->def);
        else cJSON_AddNullToObject(j, "default");
        cJSON_AddStringToObject(j, "doc", o->doc);
        char range[96];
        if (option_range(o, range, sizeof range) > 0) cJSON_AddStringToObject(j, "range", range);   // as help optim's
        cJSON_AddItemToArray(list, j);
    }
}

static void help_options(Session *s, const CmdSpec *c) { help_option_rows(s, c->opts, "options:", "=", "options"); }

// `help set`: the settings table itself (from which `set` checks values and `show` prints them).
void set_dyn_help(Session *s, const char *word) {
    (void)word;
    help_option_rows(s, settings, "settings (`show` prints their values):", " ", "settings");
}

// word: what followed the command in `help optim spectron` (NULL: nothing)
static void help_command(Session *s, const CmdSpec *c, const char *word) {
    char title[64];
    command_title(c, title, sizeof title);
    char usage[512];   // the command line as typed: "show", "train steps=N […]"
    snprintf(usage, sizeof usage, "%s%s%s", title, *c->args ? " " : "", c->args);
    out_text(s, "usage: %s\n  %s\n", usage, c->summary);
    cJSON_AddStringToObject(s->result, "name", title);
    cJSON_AddStringToObject(s->result, "usage", usage);
    cJSON_AddStringToObject(s->result, "summary", c->summary);
    if (c->dyn_help) c->dyn_help(s, word);
    else help_options(s, c);
    out_text(s, "\n%s\n", c->help);
    cJSON_AddStringToObject(s->result, "help", c->help);
}

// `help tok`: the family's sub-commands with their usage
static void help_family(Session *s, const char *name) {
    cJSON *list = cJSON_AddArrayToObject(s->result, "commands");
    out_text(s, "%s sub-commands (`help %s SUB` for details):\n", name, name);
    for (int i = 0; i < n_commands; i++) {
        const CmdSpec *c = &commands[i];
        if (strcmp(c->name, name) != 0) continue;
        out_text(s, "  %s %s%s%s\n      %s\n", c->name, c->sub, c->args[0] ? " " : "", c->args, c->summary);
        cJSON_AddItemToArray(list, cJSON_CreateString(c->sub));
    }
}

// `help WORD` for a word that is no command: an optimizer's page (`help spectron` is `help optim
// spectron`), a sub-command's when one family has it (`help wash`), the families' list when
// several do (`help load`), else the nearest command or optimizer.
static int help_topic(Session *s, const char *word, Err *err) {
    if (optim_kind_of(word) >= 0) {
        help_command(s, command_find("optim", NULL), word);
        return 0;
    }
    const CmdSpec *with[8];
    int found = commands_with_sub(word, with, 8);
    if (found == 1) {
        help_command(s, with[0], NULL);
        return 0;
    }
    char families[256] = "";
    for (int i = 0; i < found && i < 8; i++)
        snprintf(families + strlen(families), sizeof families - strlen(families), "%s`help %s %s`", i ? ", " : "",
                 with[i]->name, word);
    if (found > 1) return err_set(err, "no command '%s' alone: %s", word, families);
    Suggest sg;
    suggest_init(&sg, word);
    for (int i = 0; i < n_commands; i++) suggest_try(&sg, commands[i].name);
    for (int i = 0; optim_names[i]; i++) suggest_try(&sg, optim_names[i]);
    if (suggest_best(&sg)) return err_set(err, "no command '%s': did you mean '%s'?", word, suggest_best(&sg));
    return err_set(err, "no command '%s' (`help` lists commands)", word);
}

static int help_run(Session *s, const Args *a, Err *err) {
    if (a->n_pos == 0) { help_list(s); return 0; }
    const char *name = a->pos[0], *sub = a->n_pos > 1 ? a->pos[1] : NULL;
    if (command_has_subs(name) && !sub) { help_family(s, name); return 0; }
    const CmdSpec *c = command_find(name, sub);
    if (!c && command_has_subs(name)) {   // `help model nwe`: the family's sub-commands
        Suggest sg;
        suggest_init(&sg, sub);
        for (int i = 0; i < n_commands; i++)
            if (strcmp(commands[i].name, name) == 0) suggest_try(&sg, commands[i].sub);
        if (suggest_best(&sg))
            return err_set(err, "no command '%s %s': did you mean '%s %s'?", name, sub, name, suggest_best(&sg));
        return err_set(err, "no command '%s %s' (`help %s` lists its sub-commands)", name, sub, name);
    }
    if (!c && !sub) return help_topic(s, name, err);
    if (!c) {
        Suggest sg;
        suggest_init(&sg, name);
        for (int i = 0; i < n_commands; i++) suggest_try(&sg, commands[i].name);
        if (suggest_best(&sg)) return err_set(err, "no command '%s': did you mean '%s'?", name, suggest_best(&sg));
        return err_set(err, "no command '%s%s%s' (`help` lists commands)", name, sub ? " " : "", sub ? sub : "");
    }
    if (sub && !c->sub && !(c->dyn_key && c->dyn_key(s, sub, 0))) {   // only optim's help takes a topic, a name
        Suggest sg;
        suggest_init(&sg, sub);
        for (int i = 0; c->dyn_key && optim_names[i]; i++) suggest_try(&sg, optim_names[i]);
        if (suggest_best(&sg))
            return err_set(err, "`help %s` takes no '%s': did you mean '%s'?", name, sub, suggest_best(&sg));
        return err_set(err, "`help %s` takes no '%s' (usage: %s %s)", name, sub, name, c->args);
    }
    help_command(s, c, c->sub ? NULL : sub);
    return 0;
}

// Help's text is wrapped at word boundaries on a terminal narrower than it (80 columns).
int cmd_help(Session *s, const Args *a, Err *err) {
    s->wrap = 1;
    int rc = help_run(s, a, err);
    s->wrap = 0;
    return rc;
}

int cmd_quit(Session *s, const Args *a, Err *err) {
    (void)a, (void)err;
    if (s->interactive && s->dirty && !(s->unsaved_warned & DROP_LEAVE)) {
        out_text(s, "%s", session_unsaved_leave_warning(s));
        s->unsaved_warned |= DROP_LEAVE;   // once for this training: a command between does not re-arm it
        cJSON_AddBoolToObject(s->result, "left", 0);
        return 0;
    }
    s->quit = 1;
    return 0;
}

// ---- show ---------------------------------------------------------------------------------

static void show_tokenizer(Session *s) {
    if (!s->tok) { out_text(s, "tokenizer  none\n"); cJSON_AddNullToObject(s->result, "tokenizer"); return; }
    int vocab = tokenizer_vocab_size(s->tok);
    out_text(s, "tokenizer  %s%s%s, vocab %d\n", s->tok_embedded ? "(embedded in " : "", NAME_TEXT(s->tok_path),
             s->tok_embedded ? ")" : "", vocab);
    cJSON *o = cJSON_AddObjectToObject(s->result, "tokenizer");
    if (s->tok_embedded) {   // path is a file `tok load` reads; a checkpoint is not one
        cJSON_AddNullToObject(o, "path");
        cJSON_AddStringToObject(o, "embedded_in", s->tok_path);
    } else {
        cJSON_AddStringToObject(o, "path", s->tok_path);
    }
    cJSON_AddNumberToObject(o, "vocab", vocab);
}

static void show_data(Session *s) {
    if (!s->has_data) { out_text(s, "data       none\n"); cJSON_AddNullToObject(s->result, "data"); return; }
    const Dataset *d = &s->data;
    char a[32], b[32], c[32];
    out_text(s, "data       %s: %s tokens (train %s, val %s)\n", NAME_TEXT(d->source), fmt_count(a, sizeof a, d->n_tokens),
             fmt_count(b, sizeof b, d->n_train), fmt_count(c, sizeof c, d->n_tokens - d->n_train));
    cJSON *o = cJSON_AddObjectToObject(s->result, "data");
    cJSON_AddStringToObject(o, "source", d->source);
    cJSON_AddStringToObject(o, "cache", d->cache_path);
    cJSON_AddNumberToObject(o, "tokens", d->n_tokens);
    cJSON_AddNumberToObject(o, "train", d->n_train);
    cJSON_AddNumberToObject(o, "val", d->n_tokens - d->n_train);
}

static void show_model(Session *s) {
    ModelConfig next = s->model_cfg;   // without a model: what `model new` would build now
    if (s->tok) next.vocab = tokenizer_vocab_size(s->tok);
    const ModelConfig *c = s->has_model ? &s->model.cfg : &next;
    char shape[256], label[48];
    model_config_describe(c, shape, sizeof shape);
    out_text(s, "model      %s%s: %s\n", s->has_model ? "" : "none; next `model new` starts from ",
             model_label(s, label, sizeof label), shape);
    cJSON *o = model_config_json(c);
    cJSON_AddBoolToObject(o, "built", s->has_model);
    if (s->has_model) cJSON_AddNumberToObject(o, "params", (double)model_counts(&s->model, 1, c->seq).params);
    cJSON_AddItemToObject(s->result, "model", o);
}

// The GPU backend's settings: applied at once on CUDA; on the CPU kept for `set device cuda`, with
// a note unless the value names what the CPU does anyway (cpu_value). The session's copy of each
// is a string field of Session (slot, cap).
typedef struct GpuSetting {
    const char *key;
    int (*apply)(const char *name, char *why, size_t cap);
    const char *cpu_value, *cpu_says;
    size_t slot, cap;
} GpuSetting;

#define SESSION_FIELD(f) offsetof(Session, f), sizeof(((Session *)0)->f)

static const GpuSetting gpu_settings[] = {
    {"precision", backend_cuda_set_precision, "fp32", "the CPU computes in fp32", SESSION_FIELD(precision)},
    {"attention", backend_cuda_set_attention, "gemm", "the CPU has one attention", SESSION_FIELD(attention)},
    {"graphs", backend_cuda_set_graphs, "off", "the CPU runs each call as it comes", SESSION_FIELD(graphs)},
    {"fused", backend_cuda_set_fused, "off", "the CPU has its own decoding", SESSION_FIELD(fused)},
    {"pdl", backend_cuda_set_pdl, "off", "the CPU launches no kernels", SESSION_FIELD(pdl)},
};
#define N_GPU_SETTINGS (int)(sizeof gpu_settings / sizeof gpu_settings[0])

static char *gpu_value(Session *s, const GpuSetting *g) { return (char *)s + g->slot; }

static const GpuSetting *gpu_setting(const char *key) {
    for (int i = 0; i < N_GPU_SETTINGS; i++)
        if (strcmp(key, gpu_settings[i].key) == 0) return &gpu_settings[i];
    return NULL;
}

// At the prompt Ctrl-C always stops only the command.
static const char *interrupt_word(const Session *s) {
    return s->interactive || lrsh_interrupt_command ? "command" : "script";
}

int cmd_show(Session *s, const Args *a, Err *err) {
    (void)a, (void)err;
    out_text(s, "device     %s\n", s->be->describe());
    cJSON_AddStringToObject(s->result, "device", s->be->name);
    cJSON_AddStringToObject(s->result, "backend", s->be->describe());
    cJSON_AddNumberToObject(s->result, "threads", s->threads > 0 ? s->threads : omp_get_max_threads());   // in use
    show_tokenizer(s);
    show_data(s);
    show_model(s);
    optim_describe(s, &s->optim, cJSON_AddObjectToObject(s->result, "optimizer"));
    int step = s->has_trainer ? s->trainer.step : s->resume.step;
    if (s->has_ensemble) {   // `train` steps the members, not the model they grew from
        step = s->ens.trainers[0].step;
        out_text(s, "trainer    %d, one per member of the ensemble, step %d\n", s->ens.k, step);
    } else {
        out_text(s, "trainer    %s step %d\n", s->has_trainer ? "built," : "not built yet,", step);
    }
    cJSON_AddNumberToObject(s->result, "step", step);
    ensemble_info(s);   // members train beside the model: say so
    if (s->model_file[0])
        out_text(s, "checkpoint %s%s\n", NAME_TEXT(s->model_file), s->dirty ? " (changed since: unsaved)" : "");
    else if (s->has_model)
        out_text(s, "checkpoint none%s\n", s->dirty ? " (unsaved; `model save PATH`)" : "");
    if (s->model_file[0]) cJSON_AddStringToObject(s->result, "checkpoint", s->model_file);
    else cJSON_AddNullToObject(s->result, "checkpoint");
    cJSON_AddBoolToObject(s->result, "unsaved", s->dirty);
    if (s->runs.log) out_text(s, "log        %s (%ld lines this session)\n", NAME_TEXT(s->runs.log_path), s->runs.log_lines);
    else out_text(s, "log        off\n");
    if (s->runs.log) cJSON_AddStringToObject(s->result, "log", s->runs.log_path);
    else cJSON_AddNullToObject(s->result, "log");
    if (s->runs.n_runs) out_text(s, "runs       %d (`plot` draws %s)\n", s->runs.n_runs, s->runs.n_runs > 26 ? "the last 26" : "them");
    else out_text(s, "runs       none yet\n");
    runs_describe(s, "  ", SHOW_RUNS);   // a long session's hundreds would bury the rest
    cJSON *runs = cJSON_AddArrayToObject(s->result, "runs");
    for (int i = 0; i < s->runs.n_runs; i++) {
        const RunSeries *r = &s->runs.runs[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", r->name);
        cJSON_AddNumberToObject(o, "steps", r->n_steps);
        cJSON_AddNumberToObject(o, "evals", r->n_val);
        cJSON_AddBoolToObject(o, "current", i == s->runs.current);
        cJSON_AddItemToArray(runs, o);
    }
    char line[512];   // one line, so that a narrow terminal breaks it between settings
    size_t n = (size_t)snprintf(line, sizeof line, "settings   seed=%llu threads=%d batch=%d accum=%d seq=%d errexit=%s "
                                "interrupt=%s progress=%s json=%s quiet=%s", (unsigned long long)s->seed, s->threads,
                                s->batch, s->accum, s->seq, s->errexit ? "on" : "off", interrupt_word(s),
                                s->progress_lines ? "lines" : "live", s->json ? "on" : "off", s->quiet ? "on" : "off");
    for (int i = 0; i < N_GPU_SETTINGS && n < sizeof line; i++) {
        const GpuSetting *g = &gpu_settings[i];
        n += (size_t)snprintf(line + n, sizeof line - n, " %s=%s", g->key, gpu_value(s, g));
        cJSON_AddStringToObject(s->result, g->key, gpu_value(s, g));
    }
    out_text(s, "%s\n", line);
    json_add_u64(s->result, "seed", s->seed);
    cJSON_AddNumberToObject(s->result, "batch", s->batch);
    cJSON_AddNumberToObject(s->result, "accum", s->accum);
    cJSON_AddNumberToObject(s->result, "seq", s->seq);
    cJSON_AddBoolToObject(s->result, "errexit", s->errexit);
    cJSON_AddStringToObject(s->result, "interrupt", interrupt_word(s));
    cJSON_AddStringToObject(s->result, "progress", s->progress_lines ? "lines" : "live");
    cJSON_AddBoolToObject(s->result, "quiet", s->quiet);
    return 0;
}

// ---- set ----------------------------------------------------------------------------------

// The backend called name ("cpu" or "cuda"), or NULL with the reason it cannot be had.
static const Backend *backend_named(Session *s, const char *name, Err *err) {
    if (strcmp(name, "cuda") != 0) {
        const Backend *be = backend_cpu(s->threads);
        if (!be) err_set(err, "the CPU backend could not start");
        return be;
    }
    char why[256];
    const Backend *be = backend_cuda(why, sizeof why);
    if (!be) err_set(err, "CUDA is not available: %s — still computing on %s", why, s->be->name);
    else if (why[0]) out_warning(s, "%s", why);
    return be;
}

// Move the model, with its trainer and optimizer state, onto `to` through a temporary checkpoint:
// the tested path of `model save` + `model load`, so no device buffer is left behind or missed.
static int move_model(Session *s, const Backend *to, Err *err) {
    if (s->has_ensemble)
        return err_set(err, "an ensemble cannot move between devices: `model save PATH`, `set device %s`, then "
                            "`model load PATH`", to->name);
    char dir[1024], path[1200];
    if (session_cache_dir(dir, sizeof dir, err) != 0) return -1;
    snprintf(path, sizeof path, "%s/device-move-%ld.safetensors", dir, (long)getpid());
    CheckpointOptions opt = checkpoint_default_options();  // f32 and the optimizer state: exact
    if (checkpoint_save(path, &s->model, s->has_trainer ? &s->trainer : NULL, NULL, &opt, err) != 0) return -1;
    Model m;
    Trainer tr;
    CheckpointInfo info;
    memset(&m, 0, sizeof m);
    memset(&tr, 0, sizeof tr);
    memset(&info, 0, sizeof info);
    int rc = checkpoint_load(path, to, &m, &tr, NULL, &info, err);
    unlink(path);
    if (rc != 0) return -1;  // the session keeps its model where it was
    int run = s->runs.current;
    Resume resume = s->resume;
    session_replace_model(s, &m, MODEL_DERIVED);
    s->runs.current = run;  // the same run goes on, on the other device
    if (info.has_optim) {
        s->trainer = tr;
        s->trainer.model = &s->model;  // the loader pointed it at its own Model, now moved here
        s->has_trainer = 1;
    } else {
        s->resume = resume;
    }
    return 0;
}

static int set_gpu(Session *s, const GpuSetting *g, const char *name, Err *err) {
    if (strcmp(s->be->name, "cuda") == 0) {
        char why[256];
        if (g->apply(name, why, sizeof why) != 0) return err_set(err, "%s", why);
        // what attention keeps for backward changes size with its kernels: the model's
        // activations are carved again at their next use, the generator is built again
        session_drop_generator(s);
    } else if (strcmp(name, g->cpu_value) != 0) {
        out_note(s, "%s; %s applies on the GPU (`set device cuda`)\n", g->cpu_says, name);
    }
    snprintf(gpu_value(s, g), g->cap, "%s", name);
    return 0;
}

int session_apply_gpu_settings(Session *s, Err *err) {
    char why[256];
    for (int i = 0; i < N_GPU_SETTINGS; i++)
        if (gpu_settings[i].apply(gpu_value(s, &gpu_settings[i]), why, sizeof why) != 0)
            return err_set(err, "%s", why);
    return 0;
}

static int set_device(Session *s, const char *name, Err *err) {
    const Backend *to = backend_named(s, name, err);
    if (!to) return -1;
    if (to == s->be) return 0;
    if (strcmp(to->name, "cuda") == 0 && session_apply_gpu_settings(s, err) != 0) return -1;
    if (s->has_model) {
        if (move_model(s, to, err) != 0) return -1;
        out_note(s, "model moved to %s (with its optimizer state)\n", to->name);
    }
    s->be = to;
    return 0;
}

static int set_apply(Session *s, const char *key, const char *v, Err *err) {
    int b = 0;
    parse_bool(v, &b);
    if (strcmp(key, "seed") == 0) s->seed = strtoull(v, NULL, 10);
    else if (strcmp(key, "batch") == 0) s->batch = atoi(v);
    else if (strcmp(key, "accum") == 0) s->accum = atoi(v);
    else if (strcmp(key, "seq") == 0) {
        int seq = atoi(v);
        if (s->has_model && seq > s->model.cfg.seq)   // said now, not at the next step
            return err_set(err, "`set seq %d` is longer than this model's context (%d): `set seq 0` uses the context",
                           seq, s->model.cfg.seq);
        s->seq = seq;
    } else if (strcmp(key, "errexit") == 0) s->errexit = b;
    else if (strcmp(key, "interrupt") == 0) lrsh_interrupt_command = strcmp(v, "command") == 0;
    else if (strcmp(key, "progress") == 0) s->progress_lines = strcmp(v, "lines") == 0;
    else if (strcmp(key, "json") == 0) s->json = b;
    else if (strcmp(key, "quiet") == 0) s->quiet = b;
    else if (strcmp(key, "device") == 0) return set_device(s, v, err);
    else if (gpu_setting(key)) return set_gpu(s, gpu_setting(key), v, err);
    else if (strcmp(key, "threads") == 0) {
        int n = atoi(v);
        const Backend *be = backend_cpu(n > 0 ? n : s->default_threads);  // 0: the default at start again
        if (!be) return err_set(err, "the CPU backend refused %s threads", v);
        if (strcmp(s->be->name, "cpu") == 0) s->be = be;  // on CUDA the threads serve the host side
        s->threads = n;
        if (n > omp_get_max_threads()) s->threads = omp_get_max_threads();   // what the backend runs
        if (n > omp_get_num_procs())   // each parallel loop then waits for threads sharing a core
            out_note(s, "%d threads on %d cores (the CPU backend runs %d): more threads than cores slow every "
                        "parallel loop; `set threads 0` uses one per core\n", n, omp_get_num_procs(),
                     omp_get_max_threads());
    }
    return 0;
}

int cmd_set(Session *s, const Args *a, Err *err) {
    const char *key = a->pos[0], *value = a->pos[1];
    const OptSpec *o = opt_find(settings, key);
    if (!o) {
        Suggest sg;
        suggest_init(&sg, key);
        for (const OptSpec *k = settings; k->name; k++) suggest_try(&sg, k->name);
        if (suggest_best(&sg)) return err_set(err, "no setting '%s': did you mean '%s'?", key, suggest_best(&sg));
        char names[256] = "";   // from the table, as help and completion are
        for (const OptSpec *k = settings; k->name; k++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", k == settings ? "" : " ", k->name);
        return err_set(err, "no setting '%s' (settings: %s)", key, names);
    }
    if (opt_check(o, value, err) != 0) {  // "option batch= expects …" → "set batch expects …"
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        const char *rest = strstr(why, "= ");
        return err_set(err, "set %s%s", key, rest ? rest + 1 : why);
    }
    if (o->type == OPT_BOOL) value = bool_word(value);   // 0, no, false: kept and said as "off"
    if (set_apply(s, key, value, err) != 0) return -1;
    if (strcmp(key, "threads") == 0) out_note(s, "threads %d (%d in use)\n", s->threads, omp_get_max_threads());
    else if (o->type == OPT_INT) out_note(s, "%s %lld\n", key, strtoll(value, NULL, 10));   // 010 is 10
    else out_note(s, "%s %s\n", key, value);   // said, as `show` would (`set quiet on` says nothing: it is quiet)
    if (strcmp(key, "errexit") == 0 && s->interactive)
        out_note(s, "(at the prompt an error never stops the session: errexit is for scripts, -c and pipes)\n");
    if (strcmp(key, "interrupt") == 0 && s->interactive)
        out_note(s, "(at the prompt Ctrl-C always stops only the command: interrupt is for scripts, -c and pipes)\n");
    cJSON_AddStringToObject(s->result, "key", key);
    if (o->type == OPT_INT)   // a number, as `show` has it ("008" came back as typed)
        cJSON_AddItemToObject(s->result, "value", json_u64((uint64_t)strtoull(value, NULL, 10)));
    else cJSON_AddStringToObject(s->result, "value", value);
    return 0;
}
