// complete.c — readline tab completion, read off the command table: command names,
// sub-commands, key= option names, option values (choices, on/off, paths, run names), presets,
// optimizer names, settings, and file paths as the fallback.
#include <readline/readline.h>
#include <stdlib.h>
#include <string.h>
#include "commands.h"

// Readline's completion callback takes no argument: the session whose state some completions
// depend on (optim's keys follow the current optimizer) is kept here by completion_install.
static const Session *session;

// The array readline wants: [0] the common prefix of all matches, then the matches, NULL.
typedef struct Matches {
    char **v;          // v[0] reserved for the common prefix
    int n, cap;        // n counts v[0]
    const char *text;  // what is being completed
    size_t len;
} Matches;

static void push(Matches *m, char *owned) {
    if (m->n + 2 > m->cap) {
        int cap = m->cap ? 2 * m->cap : 16;
        char **v = realloc(m->v, (size_t)cap * sizeof *v);
        if (!v) { free(owned); return; }
        m->v = v;
        m->cap = cap;
    }
    m->v[m->n++] = owned;
}

static void add(Matches *m, const char *candidate) {
    if (!*candidate || strncmp(candidate, m->text, m->len) != 0) return;   // "": a skipped candidate
    for (int i = 1; i < m->n; i++)
        if (strcmp(m->v[i], candidate) == 0) return;
    char *copy = strdup(candidate);
    if (copy) push(m, copy);
}

static void add_list(Matches *m, const char *const *list) {
    for (; list && *list; list++) add(m, *list);
}

// "bpe|unigram" → bpe, unigram
static void add_choices(Matches *m, const char *choices) {
    char buf[128];
    snprintf(buf, sizeof buf, "%s", choices);
    for (char *save = NULL, *c = strtok_r(buf, "|", &save); c; c = strtok_r(NULL, "|", &save)) add(m, c);
}

// Paths: readline treats the matches as file names (a '/' after a folder; a name with a space
// or a quote gets quoted, so that it stays one argument).
static void add_files(Matches *m) {
    char *f;
    rl_filename_completion_desired = rl_filename_quoting_desired = 1;
    for (int state = 0; (f = rl_filename_completion_function(m->text, state)); state++) push(m, f);
}

static char **finish(Matches *m) {
    if (m->n <= 1) { free(m->v); return NULL; }
    m->v[m->n] = NULL;
    if (m->n == 2) {  // one match: it replaces the word
        m->v[0] = m->v[1];
        m->v[1] = NULL;
        if (m->v[0][strlen(m->v[0]) - 1] == '=') rl_completion_append_character = '\0';
        return m->v;
    }
    size_t lcd = strlen(m->v[1]);
    for (int i = 2; i < m->n; i++)
        for (size_t j = 0; j < lcd; j++)
            if (m->v[i][j] != m->v[1][j]) { lcd = j; break; }
    m->v[0] = strndup(m->v[1], lcd);
    return m->v;
}

// ---- what is being typed -------------------------------------------------------------------

// The words of the current command before the word being completed (the line from the last
// `;` outside quotes up to `start`).
static int words_before(int start, Words **cmd) {
    const char *line = rl_line_buffer;
    int seg = 0;
    char quote = 0;
    for (int i = 0; i < start; i++) {
        if (quote) { if (line[i] == quote) quote = 0; }
        else if (line[i] == '"' || line[i] == '\'') quote = line[i];
        else if (line[i] == ';') seg = i + 1;
    }
    int end = start;
    if (end > seg && (line[end - 1] == '"' || line[end - 1] == '\'')) end--;  // "my fi<Tab>
    char *prefix = strndup(line + seg, (size_t)(end - seg));
    Err err;
    int n = prefix ? parse_line(prefix, cmd, &err) : -1;
    free(prefix);
    if (n == 1) return (*cmd)->n;
    if (n > 0) words_free(*cmd, n);
    *cmd = NULL;
    return 0;
}

static void add_command_names(Matches *m) {
    for (int i = 0; i < n_commands; i++) add(m, commands[i].name);
}

// `help`'s topics besides the commands: the optimizers (`help spectron`) and the sub-commands
// only one family has (`help wash`), as help_topic takes them.
static void add_help_topics(Matches *m) {
    for (int i = 0; optim_names[i]; i++) add(m, optim_names[i]);
    for (int i = 0; i < n_commands; i++) {
        const char *sub = commands[i].sub;
        const CmdSpec *with[2];
        if (sub && !command_find(sub, NULL) && commands_with_sub(sub, with, 2) == 1) add(m, sub);
    }
}

static void add_subs(Matches *m, const char *name) {
    for (int i = 0; i < n_commands; i++)
        if (commands[i].sub && strcmp(commands[i].name, name) == 0) add(m, commands[i].sub);
}

// After `key=`: the values the option takes.
static void add_values(Matches *m, const OptSpec *o) {
    if (!o) return;
    if (o->type == OPT_ENUM) add_choices(m, o->choices);
    else if (o->type == OPT_BOOL) add_choices(m, "on|off");
    else if (o->type == OPT_PATH) add_files(m);
}

// A factor NAME.A or NAME.B before NAME. is typed: `spectrum blocks.0.<Tab>` lists the
// matrices, not each twice more; `spectrum blocks.0.attn.wq.<Tab>` offers its factors.
static int factor_not_asked(const Matches *m, const char *cand) {
    size_t n = strlen(cand);
    return n > 2 && cand[n - 2] == '.' && (cand[n - 1] == 'A' || cand[n - 1] == 'B') && m->len < n - 1;
}

// The series `watch` recorded in this session's runs: `plot` draws them by their keys.
static void add_watched(Matches *m) {
    for (int i = 0; session && i < session->runs.n_runs; i++)
        for (int j = 0; j < session->runs.runs[i].n_watch; j++) add(m, session->runs.runs[i].watch[j].key);
}

// After `runs=` (plot): the session's run names, each after the names the list holds already
// ("adamw,sp" offers "adamw,spectron"): a comma is no word break, for paths elsewhere.
static void add_run_names(Matches *m) {
    rl_completion_suppress_append = 1;   // no space after a name: a comma and another may follow
    const char *comma = strrchr(m->text, ',');
    int listed = comma ? (int)(comma - m->text) + 1 : 0;
    for (int i = 0; session && i < session->runs.n_runs; i++) {
        char cand[1024];
        if (parse_word_needs_quotes(session->runs.runs[i].name))
            continue;   // inserted bare it would split the line
        if (snprintf(cand, sizeof cand, "%.*s%s", listed, m->text, session->runs.runs[i].name) < (int)sizeof cand)
            add(m, cand);
    }
}

// Positional argument number `index` of command c (earlier positionals in w from `first`).
static void add_positional(Matches *m, const CmdSpec *c, const Words *w, int first, int index) {
    if (c->max_pos >= 0 && index >= c->max_pos) return;
    switch (c->pos) {
    case POS_WORD:
        if (index == 0) add_list(m, c->words);
        if (index == 0 && strcmp(c->name, "plot") == 0) add_watched(m);   // `plot spectral`
        break;
    case POS_PATH:
        if (index == 0 && strcmp(c->name, "log") == 0) add(m, "off");   // `log off`, beside the files
        add_files(m);
        break;
    case POS_COMMAND:
        if (index == 0) add_command_names(m), add_help_topics(m);
        else if (strcmp(w->w[first], "optim") == 0) add_list(m, optim_names);   // `help optim spectron`
        else add_subs(m, w->w[first]);
        break;
    case POS_SETTING:
        if (index == 0) for (const OptSpec *o = settings; o->name; o++) add(m, o->name);
        else add_values(m, opt_find(settings, w->w[first]));
        break;
    case POS_PARAM:   // matrix names of the session's model (cmd_inspect.c)
    case POS_WATCH: {
        if (c->pos == POS_PARAM && index > 0) break;
        const char *cand;
        for (int i = 0; (cand = inspect_complete(session, c->pos, i)); i++)
            if (!factor_not_asked(m, cand)) add(m, cand);
        break;
    }
    default: break;
    }
}

static void add_key(Matches *m, const Words *w, int first, const char *name) {
    char key[72];
    snprintf(key, sizeof key, "%s=", name);
    int given = 0;
    for (int i = first; i < w->n; i++) given |= strncmp(w->w[i], key, strlen(key)) == 0;
    if (!given) add(m, key);
}

static void add_option_names(Matches *m, const CmdSpec *c, const Words *w, int first) {
    if (c->dyn_key) {  // the keys of the word typed (`optim spectron mo<Tab>`), else the current one's
        const char *word = NULL;
        for (int i = first; i < w->n && !word; i++)
            if (w->quoted[i] || !strchr(w->w[i], '=')) word = w->w[i];
        const char *k;
        for (int i = 0; (k = c->dyn_key(session, word, i)); i++) add_key(m, w, first, k);
        return;
    }
    for (const OptSpec *o = c->opts; o && o->name; o++) add_key(m, w, first, o->name);
}

// The arguments of a known command; 0 when the command is unknown (then paths are a guess).
static int complete_arguments(Matches *m, const Words *w, int value_of_last) {
    const char *name = w->w[0];
    int subs = command_has_subs(name);
    if (subs && w->n == 1 && !value_of_last) { add_subs(m, name); return 1; }
    const CmdSpec *c = command_find(name, subs ? w->w[1] : NULL);
    int first = subs ? 2 : 1;
    if (!c) return 0;
    if (value_of_last) {  // the last word is "key=": complete its value
        char key[64];
        snprintf(key, sizeof key, "%s", w->w[w->n - 1]);
        key[strcspn(key, "=")] = '\0';
        if (strcmp(key, "runs") == 0) add_run_names(m);
        else add_values(m, opt_find(c->opts, key));
        return 1;
    }
    int positionals = 0;
    for (int i = first; i < w->n; i++) positionals += w->quoted[i] || !strchr(w->w[i], '=');
    add_option_names(m, c, w, first);
    add_positional(m, c, w, first, positionals);
    return 1;
}

static char **complete(const char *text, int start, int end) {
    (void)end;
    rl_attempted_completion_over = 1;  // our matches or none; readline adds no filenames
    Matches m = {.text = text, .len = strlen(text), .n = 1};
    Words *w;
    int n = words_before(start, &w);
    int value_of_last = start > 0 && rl_line_buffer[start - 1] == '=' && n > 0;
    int known = n == 0 || complete_arguments(&m, w, value_of_last);
    if (n == 0) add_command_names(&m);
    if (!known && m.n == 1 && !value_of_last) add_files(&m);  // an unknown command: paths are a guess
    if (w) words_free(w, 1);
    return finish(&m);
}

// A backslash outside quotes escapes the next character, as the parser reads it ("my\ models"):
// such a space is no word break (Tab beeped on `model load my\ models/`), and the file name is
// looked up without the backslash. In double quotes the parser keeps a backslash before
// anything but " and \; in single quotes it keeps every one.
static int escaped_char(char *text, int index) {
    int n = 0;
    while (index - 1 - n >= 0 && text[index - 1 - n] == '\\') n++;
    return n % 2;
}

static char *unescape_file_name(char *text, int quote) {
    char *out = malloc(strlen(text) + 1), *o = out;
    if (!out) return NULL;
    for (const char *p = text; *p; p++) {
        int drop = *p == '\\' && p[1] && (quote == 0 || (quote == '"' && (p[1] == '"' || p[1] == '\\')));
        *o++ = *(p += drop);
    }
    *o = '\0';
    return out;
}

// A completed file name in the spelling the parser reads back as that name (readline's own
// quoting put a bare " inside "…"): in double quotes, with " and \ escaped — after a ' the user
// typed too (readline puts " in its place), since a ' inside single quotes cannot be spelled
// in a way readline's next Tab reads back. The closing quote is readline's to add (*quote_char),
// after the name of a file, not a folder.
static char *quote_file_name(char *name, int match_type, char *quote_char) {
    (void)match_type;
    char *out = malloc(2 * strlen(name) + 2), *o = out;   // worst: every char escaped
    if (!out) return NULL;
    *o++ = '"';
    for (const char *p = name; *p; p++) {
        if (*p == '"' || *p == '\\') *o++ = '\\';
        *o++ = *p;
    }
    *o = '\0';
    if (quote_char) *quote_char = '"';
    return out;
}

void completion_install(const Session *s) {
    session = s;
    rl_readline_name = "lrsh";  // for `$if lrsh` in ~/.inputrc
    // a model's ~100 parameter names went straight into the --More-- pager, which then ate the
    // keys typed next: ask first past a screenful (~/.inputrc's completion-query-items may change it)
    rl_completion_query_items = 40;
    rl_attempted_completion_function = complete;
    rl_completer_word_break_characters = " \t\n\"'=;";
    rl_completer_quote_characters = "\"'";
    // in a path, these need the quotes — and the lead bytes of pasted spaces and of “ (U+00A0,
    // U+2000…, U+3000, U+FEFF: the parser reads those outside quotes; a few other names get quotes)
    rl_filename_quote_characters = " \t\"';=#\\\xC2\xE2\xE3\xEF";
    rl_filename_quoting_function = quote_file_name;
    rl_char_is_quoted_p = escaped_char;
    rl_filename_dequoting_function = unescape_file_name;
}
