// output.h — the two faces of every command: text for people, one JSON object per result line
// for programs. In JSON mode stdout carries only JSON; all human text moves to stderr.
#pragma once
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <cjson/cJSON.h>
#include "session.h"

// A command's human-readable result (tables, ids, losses). stdout normally; stderr in JSON
// mode, where --quiet drops it.
void out_text(const Session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// out_text of text[0, n) as it may reach a terminal: every control character but newline, tab
// and CRLF's carriage return (ESC, CSI, a lone CR — also C1's U+0080..U+009F) shown as U+FFFD, so that decoded model output never
// acts as an escape sequence. JSON results keep the text as decoded.
void out_visible(const Session *s, const char *text, size_t n);
// The end of text given to out_visible in pieces: a carriage return it held back is shown.
void out_visible_end(const Session *s);
// Commentary (what was built, where a file went, hints); --quiet drops it.
void out_note(const Session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// name (a file, a run: what was typed, or read from the environment) with its control bytes and
// bidirectional controls as '?', as error lines show them, in buf: an ESC in a file name shown
// in a result line ("saved …") recolored the terminal. For human text only: JSON keeps the name
// exact, and generated text streams as decoded (out_visible).
const char *shown_name(char *buf, size_t size, const char *name);
// shown_name into a buffer that lives to the end of the enclosing block: for a printf argument.
#define NAME_TEXT(name) shown_name((char[PATH_MAX + 64]){0}, PATH_MAX + 64, (name))
// text to f, each line wider than f's terminal (if f is one) broken at spaces: the banner.
void fputs_wrapped(const char *text, FILE *f);
// "warning: …" as a note, and the message in the command's JSON result under "warnings" (once
// each), so that a script reading JSON learns of it too.
void out_warning(const Session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// A failed command: `error: msg` on stderr (with file:line in scripts), or in JSON mode
// {"ok":false,"error":…,"command":…,"line":…} on stdout: command as a success names it
// ("model save"; NULL: the line's first word), line as typed.
void out_error(const Session *s, const char *command, const char *line, const char *msg);
// out_error for a command that failed after it began to report: in JSON mode its result so far
// comes too, warnings as "warnings" and the other fields in "partial" (NULL or none: out_error);
// interrupted (a Ctrl-C or SIGINT stopped it, or an ending signal a training's save= waited
// for) adds "interrupted":true, so that a driver tells a
// command it stopped from one that failed without reading the message.
void out_failure(const Session *s, const char *command, const char *line, const char *msg, const cJSON *partial,
                 int interrupted);
// One row of a command that gives several result objects (norms: one per matrix): kept, and the
// command marked as having given its own results; takes ownership of obj. out_emit_rows prints
// them when the command ends (JSON mode only), each with row_index (from 0) and row_count.
void out_emit(Session *s, cJSON *obj);
void out_emit_rows(Session *s);
// Flush stdout; if a write to it failed (EPIPE, ENOSPC), say so once on stderr and send later
// output to /dev/null, so that the session goes on. Called after every command.
void out_check_stdout(void);
// Whether stdout failed so: the exit status is then non-zero.
int out_stdout_lost(void);
// Print the command's result object (JSON mode only).
void out_result(const Session *s, cJSON *obj);   // its strings made valid UTF-8 first

// A measured or float-typed value, to 7 significant digits: a float's 0.1 prints as 0.1, not
// 0.10000000149011612.
void json_add_real(cJSON *obj, const char *key, double v);
cJSON *json_real(double v);   // the same number, for an array
// A 64-bit integer (a seed): a number up to 15 digits; from 10^15 on the decimal as a string.
// cJSON prints a number with 15 significant digits when that reads back within its tolerance
// (8000000000000001 came out 8e+15), and past 2^53 a reader's double would round it anyway.
cJSON *json_u64(uint64_t v);
void json_add_u64(cJSON *obj, const char *key, uint64_t v);
// Every string and key in o made valid UTF-8 (JSON requires it): each byte that starts no
// well-formed character becomes U+FFFD. A typed path or command may hold any bytes.
void json_valid_utf8(cJSON *o);

// Numbers for people: 1234567 → "1.23M", bytes → "4.5 MiB", seconds → "1:02:03".
const char *fmt_count(char *buf, size_t size, double n);
const char *fmt_bytes(char *buf, size_t size, double bytes);
const char *fmt_duration(char *buf, size_t size, double seconds);
const char *fmt_elapsed(char *buf, size_t size, double seconds);
// A loss: 4 decimals ("3.2145"), or 4 significant digits once it is 1e5 or more ("1.668e+16",
// a run blowing up), so it keeps to its column.
const char *fmt_loss(char *buf, size_t size, double loss);
// fmt_loss into a buffer that lives to the end of the enclosing block: for a printf argument.
#define LOSS_TEXT(x) fmt_loss((char[32]){0}, 32, (x))
// Display columns of UTF-8 text (textwrap.h's text_columns_n: wide characters two, marks none).
int text_columns(const char *text);
// Append text to buf padded to width columns (right-aligned when right), then a space: table
// cells that line up with multi-byte symbols in them.
void table_cell(char *buf, size_t cap, const char *text, int width, int right);
// A line built in pieces and printed whole, so that a narrow terminal breaks it at a space
// (out_text breaks a line it is given whole; pieces it cannot): line_add(&l, …) as often as
// needed, then line_out(s, &l), which prints it with a newline and frees it.
typedef struct OutLine {
    char *text;
    size_t len, cap;
} OutLine;
void line_add(OutLine *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void line_out(const Session *s, OutLine *l);
// A table row without the space its last cell left: line, shortened in place.
char *trim_cell_space(char *line);
// Whether result text goes to a terminal (not a pipe or a file).
int text_is_terminal(const Session *s);
// The columns a table may take: the terminal's where the text goes to one, else 80.
int table_columns(const Session *s);
// A table row (or its header) of n cells built by table_cell with these widths, printed after
// lead (which may hold a color's escape) and followed by tail. On a terminal narrower than the
// row it folds into bands — the cells that fit, then the rest on lines under the second cell —
// at the same cells in every row, so that each cell stays under its header (out_text would
// break every row at its own last space). Elsewhere, and when it fits, one line as it is.
void table_out(const Session *s, const char *lead, char *line, const int *width, int n, const char *tail);

// The training progress display: one line rewritten in place on a terminal, plain lines
// every ~10% otherwise, and at least once a minute (a 100 000-step run in a pipe was silent for
// ten); nothing in JSON mode unless stderr is a terminal.
#define PROGRESS_PLAIN_SECONDS 60.0
typedef struct Progress {
    int total;          // steps in this run
    int live;           // rewrite one line with \r
    int every;          // print every this many steps when not live
    double printed_at;  // when the last plain line was (now_seconds)
    int shown;          // a live line is on screen and needs a newline
    FILE *to;           // stdout, or stderr in JSON mode; NULL: silent
    const char *extra;  // appended to each line when non-empty (the `watch` values); NULL: none
} Progress;

void progress_begin(Progress *p, const Session *s, int total);
void progress_update(Progress *p, int done, int step, float loss, double tok_per_s, double eta_s);
// An engine ProgressFn that draws nothing and stops at Ctrl-C: for the evaluations inside
// training (eval_every=), whose own line would break the training's.
int progress_stop_on_interrupt(void *ctx, double done, double total);
// Any one-line text as the progress line (live on a terminal, every p->every otherwise).
void progress_text(Progress *p, int done, const char *text);

// A percentage progress line for engine calls that take a ProgressFn (data load, eval).
typedef struct ProgressLine {
    Progress p;
    const char *label;      // "data load"
    const char *unit_name;  // "MB"
    double unit;            // 1e6: done and total are divided by it for display
    double t0;
    int last_pct;
} ProgressLine;
void progress_line_begin(ProgressLine *pl, const Session *s, const char *label, const char *unit_name, double unit);
int progress_engine(void *ctx, double done, double total);   // a ProgressFn; ctx is a ProgressLine
void progress_end(Progress *p);

double now_seconds(void);  // monotonic clock
