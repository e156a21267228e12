// parse.c — the line scanner (commands, words, quotes, comments), key=value option checking
// and the edit distance behind "did you mean".
#include "parse.h"
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include "../engine/number.h"

// Allocation failure on a few bytes of command text leaves nothing sensible to do.
static void *xrealloc(void *p, size_t size) {
    void *q = realloc(p, size ? size : 1);
    if (!q) { fputs("lrsh: out of memory\n", stderr); exit(70); }
    return q;
}

static char *xstrndup(const char *s, size_t n) {
    char *d = xrealloc(NULL, n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

// ---- scanning -----------------------------------------------------------------------------

typedef struct Buf { char *p; size_t n, cap; } Buf;

static void buf_push(Buf *b, char c) {
    if (b->n + 1 >= b->cap) {
        b->cap = b->cap ? 2 * b->cap : 64;
        b->p = xrealloc(b->p, b->cap);
    }
    b->p[b->n++] = c;
    b->p[b->n] = '\0';
}

static void words_clear(Words *w) {
    for (int j = 0; j < w->n; j++) free(w->w[j]);
    free(w->w);
    free(w->quoted);
    free(w->text);
    memset(w, 0, sizeof *w);
}

static void words_add(Words *w, const Buf *b, int quoted) {
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 8;
        w->w = xrealloc(w->w, w->cap * sizeof *w->w);
        w->quoted = xrealloc(w->quoted, w->cap);
    }
    w->w[w->n] = xstrndup(b->p ? b->p : "", b->n);
    w->quoted[w->n++] = (unsigned char)quoted;
}

// Keep a command that has words, with its trimmed source text; drop an empty one.
static void commands_add(Words **cmds, int *n, Words *cur, const char *from, const char *to) {
    if (cur->n == 0) { words_clear(cur); return; }
    while (from < to && isspace((unsigned char)*from)) from++;
    while (to > from && isspace((unsigned char)to[-1])) to--;
    cur->text = xstrndup(from, (size_t)(to - from));
    if ((*n & (*n - 1)) == 0)  // n is 0 or a power of two: double, so `a;a;a;…` stays linear
        *cmds = xrealloc(*cmds, (size_t)(*n ? 2 * *n : 1) * sizeof **cmds);
    (*cmds)[(*n)++] = *cur;
    memset(cur, 0, sizeof *cur);
}

// Text pasted from slides, a PDF or a word processor carries characters that look like a space
// or like nothing. Outside quotes the first separate words as a space does: U+00A0 no-break
// space, U+2007 figure space, U+2009 thin space, U+202F narrow no-break space, U+3000
// ideographic space. The others are dropped: U+200B zero-width space, U+2060 word joiner,
// U+FEFF (a byte-order mark where a second script was appended). Their bytes at p, or 0.
static int unicode_space(const char *p) {
    static const char *const space[] = {"\xC2\xA0", "\xE2\x80\x87", "\xE2\x80\x89", "\xE2\x80\xAF",
                                        "\xE3\x80\x80"};
    for (size_t i = 0; i < sizeof space / sizeof *space; i++)
        if (strncmp(p, space[i], strlen(space[i])) == 0) return (int)strlen(space[i]);
    return 0;
}

static int unicode_nothing(const char *p) {
    static const char *const none[] = {"\xE2\x80\x8B", "\xE2\x81\xA0", "\xEF\xBB\xBF"};
    for (size_t i = 0; i < sizeof none / sizeof *none; i++)
        if (strncmp(p, none[i], 3) == 0) return 3;
    return 0;
}

// “ opening a word, closed by ” (CURLY_OPEN, CURLY_CLOSE): a word processor's double quotes quote
// as " does (inside a word they are text: German „…“ closes with “)

// Scan a quoted run starting at the opening quote (", ' or “) into b; returns the char after
// the closing quote (", ' or ”), or NULL when the line ends first.
static const char *scan_quoted(const char *p, Buf *b) {
    int curly = strncmp(p, CURLY_OPEN, 3) == 0;
    char q = curly ? '"' : *p;
    p += curly ? 3 : 1;
    for (; *p && (curly ? strncmp(p, CURLY_CLOSE, 3) != 0 : *p != q); p++) {
        if (q == '"' && *p == '\\' && p[1]) {
            p++;
            switch (*p) {
            case 'n': buf_push(b, '\n'); break;
            case 't': buf_push(b, '\t'); break;
            case '"': case '\\': buf_push(b, *p); break;
            default: buf_push(b, '\\'); buf_push(b, *p); break;
            }
        } else {
            buf_push(b, *p);
        }
    }
    return *p ? p + (curly ? 3 : 1) : NULL;
}

int parse_line(const char *line, Words **out, Err *err) {
    Words *cmds = NULL, cur = {0};
    Buf word = {0};
    int n = 0, in_word = 0, quoted = 0;
    const char *seg = line, *p = line;
    for (;;) {
        char c = *p;
        if (c == '\0' || c == ';' || (c == '#' && !in_word)) {
            if (in_word) { words_add(&cur, &word, quoted); word.n = 0; in_word = 0; }
            commands_add(&cmds, &n, &cur, seg, p);
            if (c != ';') break;
            seg = ++p;
        } else if (isspace((unsigned char)c) || unicode_space(p)) {
            if (in_word) { words_add(&cur, &word, quoted); word.n = 0; in_word = 0; }
            p += isspace((unsigned char)c) ? 1 : unicode_space(p);
        } else if (unicode_nothing(p)) {
            p += 3;
        } else if (c == '"' || c == '\'' || (!in_word && strncmp(p, CURLY_OPEN, 3) == 0)) {
            if (!in_word) quoted = 1;
            in_word = 1;
            if (!(p = scan_quoted(p, &word))) {
                free(word.p);
                words_clear(&cur);
                words_free(cmds, n);
                if (c == '"')   // a prompt pasted over two lines came as two
                    return err_set(err, "unterminated \" quote (a line break inside quotes is written \\n: "
                                        "generate \"one\\ntwo\")");
                if (c != '\'') return err_set(err, "unterminated “ quote (it ends at ”)");
                return err_set(err, "unterminated ' quote (text with an apostrophe goes in double quotes: "
                                    "generate \"It's\")");
            }
        } else {
            if (!in_word) quoted = 0;
            in_word = 1;
            if (c == '\\' && p[1] && p[1] != '\n' && p[1] != '\r') p++;   // at a line's end: itself
            buf_push(&word, *p++);
        }
    }
    free(word.p);
    *out = cmds;
    return n;
}

int parse_word_needs_quotes(const char *word) {
    if (strncmp(word, CURLY_OPEN, 3) == 0) return 1;
    for (const char *p = word; *p; p++)
        if (strchr(" \t;#=\"'\\", *p) || unicode_space(p) || unicode_nothing(p)) return 1;
    return 0;
}

void words_free(Words *cmds, int n) {
    for (int i = 0; cmds && i < n; i++) words_clear(&cmds[i]);
    free(cmds);
}

// ---- options ------------------------------------------------------------------------------

const OptSpec *opt_find(const OptSpec *spec, const char *name) {
    for (const OptSpec *o = spec; o && o->name; o++)
        if (strcmp(o->name, name) == 0) return o;
    return NULL;
}

const char *opt_type_name(const OptSpec *o) {
    switch (o->type) {
    case OPT_INT: return "an integer";
    case OPT_FLOAT: return "a number";
    case OPT_BOOL: return "on or off";
    case OPT_ENUM: return o->choices;
    case OPT_PATH: return "a path";
    default: return "text";
    }
}

const char *bool_word(const char *s) {
    int b;
    return parse_bool(s, &b) != 0 ? s : b ? "on" : "off";
}

// Is word one of the '|'-separated choices?
static int choice_ok(const char *choices, const char *word) {
    size_t len = strlen(word);
    for (const char *c = choices; c && *c;) {
        const char *bar = strchr(c, '|');
        size_t n = bar ? (size_t)(bar - c) : strlen(c);
        if (n == len && strncmp(c, word, n) == 0) return 1;
        c = bar ? bar + 1 : c + n;
    }
    return 0;
}

// v as o's number into *x; an integer also whole into *n (9000000000000000512 is 9e18 as a
// double, so an integer's bounds are checked on *n).
static int number_check(const OptSpec *o, const char *v, double *x, long long *n) {
    char *end;
    if (o->type == OPT_INT) {
        *n = strtoll(v, &end, 10);
        *x = (double)*n;
    } else {
        return parse_decimal(v, x) == 0 && isfinite(*x) ? 0 : -1;
    }
    return *v && *end == '\0' && isfinite(*x) ? 0 : -1;
}

int opt_check(const OptSpec *o, const char *v, Err *err) {
    double x;
    long long n = 0;
    int b;
    switch (o->type) {
    case OPT_INT:
    case OPT_FLOAT:
        if (number_check(o, v, &x, &n) != 0) {
            char hint[96];
            parse_number_hint(v, o->type == OPT_INT, hint, sizeof hint);
            return err_set(err, "option %s= expects %s, got '%s'%s", o->name, opt_type_name(o), v, hint);
        }
        if (o->lo < o->hi && x < o->lo && o->hi >= (1 << 20))  // a nominal upper bound: say "at least"
            return err_set(err, "option %s= must be at least %.10g, got %s", o->name, o->lo, v);
        if (o->lo < o->hi && (o->type == OPT_INT ? n < (long long)o->lo || n > (long long)o->hi   // whole
                                                 : x < o->lo || x > o->hi))   // integers in full: 9000000000000000000, not 9e+18
            return err_set(err, o->type == OPT_INT ? "option %s= must be between %.0f and %.0f, got %s"
                                                   : "option %s= must be between %.10g and %.10g, got %s",
                           o->name, o->lo, o->hi, v);
        return 0;
    case OPT_BOOL:
        if (parse_bool(v, &b) != 0)
            return err_set(err, "option %s= expects on or off (yes or no), got '%s'", o->name, v);
        return 0;
    case OPT_ENUM:
        if (!choice_ok(o->choices, v))
            return err_set(err, "option %s= expects one of %s, got '%s'", o->name, o->choices, v);
        return 0;
    default:
        if (!*v) return err_set(err, "option %s= expects %s, got nothing", o->name, opt_type_name(o));
        if (o->type == OPT_PATH && strlen(v) >= PATH_MAX)   // every later message would be the path, cut
            return err_set(err, "option %s=: a path of %zu bytes is too long (at most %d)", o->name, strlen(v),
                           PATH_MAX - 1);
        return 0;
    }
}

// key=value with key an identifier; anything else (including "a b=c" in quotes) is positional.
static int split_option(const char *word, size_t *key_len) {
    const char *p = word;
    if (!isalpha((unsigned char)*p) && *p != '_') return 0;
    while (isalnum((unsigned char)*p) || *p == '_') p++;
    if (*p != '=') return 0;
    *key_len = (size_t)(p - word);
    return 1;
}

static int unknown_option(const OptSpec *spec, const char *key, const char *cmd, Err *err) {
    if (!spec || !spec->name)
        return err_set(err, "%s takes no key=value options (got %s=); quote text that contains '='", cmd, key);
    Suggest sg;
    suggest_init(&sg, key);
    char list[256] = "";
    for (const OptSpec *o = spec; o->name; o++) {
        suggest_try(&sg, o->name);
        size_t n = strlen(list);
        snprintf(list + n, sizeof list - n, "%s%s=", n ? " " : "", o->name);
    }
    if (suggest_best(&sg))
        return err_set(err, "unknown option '%s=' for %s: did you mean '%s='?", key, cmd, suggest_best(&sg));
    return err_set(err, "unknown option '%s=' for %s (it takes: %s)", key, cmd, list);
}

static int add_option(Args *a, const char *word, size_t key_len, const char *cmd, Err *err) {
    char key[64];
    if (key_len >= sizeof key) return err_set(err, "option name too long: %.40s…", word);
    memcpy(key, word, key_len);
    key[key_len] = '\0';
    const OptSpec *o = opt_find(a->spec, key);
    if (!o) return unknown_option(a->spec, key, cmd, err);
    if (args_has(a, key)) return err_set(err, "option %s= given twice", key);
    if (a->n_opt == ARGS_MAX_OPTS) return err_set(err, "too many options");
    if (opt_check(o, word + key_len + 1, err) != 0) return -1;
    a->key[a->n_opt] = o->name;  // the spec's string outlives the words
    a->val[a->n_opt++] = word + key_len + 1;
    return 0;
}

int args_parse(Args *a, const Words *w, int first, const OptSpec *spec, const char *cmd, Err *err) {
    memset(a, 0, sizeof *a);
    a->spec = spec;
    a->pos = xrealloc(NULL, (size_t)(w->n + 1) * sizeof *a->pos);
    for (int i = first; i < w->n; i++) {
        size_t key_len;
        if (!w->quoted[i] && split_option(w->w[i], &key_len)) {
            if (add_option(a, w->w[i], key_len, cmd, err) != 0) { args_free(a); return -1; }
        } else {
            a->pos[a->n_pos++] = w->w[i];
        }
    }
    return 0;
}

int args_parse_open(Args *a, const Words *w, int first, Err *err) {
    memset(a, 0, sizeof *a);
    a->pos = xrealloc(NULL, (size_t)(w->n + 1) * sizeof *a->pos);
    for (int i = first; i < w->n; i++) {
        size_t key_len;
        if (w->quoted[i] || !split_option(w->w[i], &key_len)) {
            a->pos[a->n_pos++] = w->w[i];
            continue;
        }
        int bad = 0;
        if (key_len >= sizeof a->own_key[0]) bad = err_set(err, "option name too long: %.40s…", w->w[i]);
        else if (a->n_opt == ARGS_MAX_OPTS) bad = err_set(err, "too many options");
        if (!bad) {
            memcpy(a->own_key[a->n_opt], w->w[i], key_len);
            a->own_key[a->n_opt][key_len] = '\0';
            if (args_has(a, a->own_key[a->n_opt])) bad = err_set(err, "option %s= given twice", a->own_key[a->n_opt]);
        }
        if (bad) { args_free(a); return -1; }
        a->key[a->n_opt] = a->own_key[a->n_opt];
        a->val[a->n_opt++] = w->w[i] + key_len + 1;
    }
    return 0;
}

void args_free(Args *a) {
    free(a->pos);
    memset(a, 0, sizeof *a);
}

static const char *args_value(const Args *a, const char *key) {
    for (int i = 0; i < a->n_opt; i++)
        if (strcmp(a->key[i], key) == 0) return a->val[i];
    const OptSpec *o = opt_find(a->spec, key);
    return o ? o->def : NULL;
}

int args_has(const Args *a, const char *key) {
    for (int i = 0; i < a->n_opt; i++)
        if (strcmp(a->key[i], key) == 0) return 1;
    return 0;
}

const char *args_str(const Args *a, const char *key, const char *fallback) {
    const char *v = args_value(a, key);
    return v ? v : fallback;
}

long args_int(const Args *a, const char *key, long fallback) {
    const char *v = args_value(a, key);
    return v ? strtol(v, NULL, 10) : fallback;
}

double args_float(const Args *a, const char *key, double fallback) {
    const char *v = args_value(a, key);
    return v ? strtod(v, NULL) : fallback;
}

int args_bool(const Args *a, const char *key, int fallback) {
    const char *v = args_value(a, key);
    int b;
    return v && parse_bool(v, &b) == 0 ? b : fallback;
}

// ---- did you mean -------------------------------------------------------------------------

// Optimal string alignment distance: edits plus adjacent swaps ("trian" → "train" is 1).
static int edit_distance(const char *a, const char *b) {
    enum { MAX = 48 };
    int n = (int)strlen(a), m = (int)strlen(b);
    if (n >= MAX || m >= MAX) return MAX;
    int d[MAX][MAX];
    for (int i = 0; i <= n; i++) d[i][0] = i;
    for (int j = 0; j <= m; j++) d[0][j] = j;
    for (int i = 1; i <= n; i++) {
        for (int j = 1; j <= m; j++) {
            int cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            int best = d[i - 1][j - 1] + cost;
            if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[n][m];
}

void suggest_init(Suggest *sg, const char *word) {
    sg->word = word;
    sg->best = NULL;
    sg->dist = 1 << 20;
}

void suggest_try(Suggest *sg, const char *candidate) {
    int d = edit_distance(sg->word, candidate);
    size_t len = strlen(sg->word);
    if (len >= 2 && strncmp(candidate, sg->word, len) == 0 && d > 1) d = 1;  // a prefix: "tra"
    if (d < sg->dist) { sg->dist = d; sg->best = candidate; }
}

const char *suggest_best(const Suggest *sg) {
    int len = (int)strlen(sg->word);
    int limit = len <= 3 ? 1 : len <= 6 ? 2 : 3;
    return sg->best && sg->dist <= limit ? sg->best : NULL;
}
