// parse.h — from a typed line to checked arguments: splitting at `;`, words with quotes,
// key=value options validated against a command's option specs, and "did you mean".
#pragma once
#include <stddef.h>
#include "../engine/number.h"   // parse_bool: the same words as the optimizer's options
#include "../engine/err.h"

// One command as typed: its words with quotes removed, and its text for error messages.
typedef struct Words {
    int n, cap;
    char **w;
    unsigned char *quoted;  // the word had quotes: it is positional even if it contains '='
    char *text;             // the command's source text, trimmed
} Words;

// Split a line into commands at `;` outside quotes, and each command into words. Quotes: "…"
// (with \" \\ \n \t escapes) and '…' (literal); a `#` that starts a word outside quotes begins
// a comment. Returns the number of non-empty commands and sets *cmds (free with words_free),
// or -1 with err set (an unterminated quote).
#define CURLY_OPEN "\xE2\x80\x9C"    // “
#define CURLY_CLOSE "\xE2\x80\x9D"   // ”
int parse_line(const char *line, Words **cmds, Err *err);
// Whether a word must be quoted to be read back as itself: it holds a space (also one pasted
// from a word processor), a character that reads as nothing, `;`, `#`, `=`, a quote, or starts
// with “ (what Tab completes is inserted as typed text).
int parse_word_needs_quotes(const char *word);
void words_free(Words *cmds, int n);

typedef enum { OPT_INT, OPT_FLOAT, OPT_STRING, OPT_BOOL, OPT_ENUM, OPT_PATH } OptType;

// One key=value option of a command. The same spec drives validation, `help` and completion.
typedef struct OptSpec {
    const char *name;
    OptType type;
    const char *def;       // default as typed, or NULL (then `doc` says what applies)
    const char *choices;   // OPT_ENUM: "bpe|unigram"
    double lo, hi;         // accepted range when lo < hi
    const char *doc;       // one line
} OptSpec;                 // arrays of OptSpec end with an entry whose name is NULL

#define ARGS_MAX_OPTS 32

typedef struct Args {
    int n_pos;
    const char **pos;      // positional words (point into the Words they came from)
    int n_opt;
    const char *key[ARGS_MAX_OPTS], *val[ARGS_MAX_OPTS];
    const OptSpec *spec;   // for defaults
    char own_key[ARGS_MAX_OPTS][64];  // args_parse_open: the keys (no spec to point into)
} Args;

// Sort w->w[first..] into positionals and key=value options; every option must be in spec
// (else an error with a suggestion) and its value must parse as its type. cmd names the
// command in messages ("tok train").
int args_parse(Args *a, const Words *w, int first, const OptSpec *spec, const char *cmd, Err *err);
void args_free(Args *a);
// The same split for a command whose keys are checked by its handler (they depend on a word
// typed, as optim's depend on the optimizer): any identifier key is accepted, values unchecked;
// a key given twice is still an error.
int args_parse_open(Args *a, const Words *w, int first, Err *err);

// Typed access to a checked option: the value given, else the spec's default, else fallback.
int args_has(const Args *a, const char *key);
const char *args_str(const Args *a, const char *key, const char *fallback);
long args_int(const Args *a, const char *key, long fallback);
double args_float(const Args *a, const char *key, double fallback);
int args_bool(const Args *a, const char *key, int fallback);

const OptSpec *opt_find(const OptSpec *spec, const char *name);
// Check one value against its spec; the message names the option and what it expects.
int opt_check(const OptSpec *o, const char *value, Err *err);
// What a value of this option looks like, for messages and help: "integer", "bpe|unigram", ...
const char *opt_type_name(const OptSpec *o);
const char *bool_word(const char *s);      // "on" or "off" for any spelling parse_bool takes; s if none

// "Did you mean": feed candidates, get the closest one within a small edit distance (or NULL).
typedef struct Suggest {
    const char *word, *best;
    int dist;
} Suggest;
void suggest_init(Suggest *sg, const char *word);
void suggest_try(Suggest *sg, const char *candidate);
const char *suggest_best(const Suggest *sg);
