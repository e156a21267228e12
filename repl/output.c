// output.c — human text versus JSON lines, number formatting and the live progress line.
#include "output.h"
#include "../tokenizer/tokenizer.h"
#include "textwrap.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <math.h>
#include <stdarg.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static FILE *text_stream(const Session *s) { return s->json ? stderr : stdout; }

void fputs_wrapped(const char *text, FILE *f) {
    int cols = isatty(fileno(f)) ? terminal_columns(f) : 0;
    if (cols >= 16) write_wrapped(f, text, cols, 0);   // each line its own: no refilling
    else fputs(text, f);
}

// A line wider than the terminal breaks at its last space that fits, its continuation under
// its text, instead of wherever the terminal's edge falls (mid-number); help's paragraphs,
// written for 80 columns, are refilled as well (s->wrap), and in a pipe too (`help > notes`).
void out_text(const Session *s, const char *fmt, ...) {
    if (s->json && s->quiet) return;
    FILE *f = text_stream(s);
    int cols = isatty(fileno(f)) ? terminal_columns(f) : s->wrap ? 80 : 0;
    if (s->wrap && cols > 80) cols = 80;   // help's paragraphs read best at most 80 wide
    va_list ap, copy;
    va_start(ap, fmt);
    va_copy(copy, ap);
    char *text = NULL;
    if (cols >= 16 && vasprintf(&text, fmt, copy) >= 0) write_wrapped(f, text, cols, s->wrap);
    else vfprintf(f, fmt, ap);   // not wrapping, or out of memory: as it comes
    va_end(copy);
    va_end(ap);
    free(text);
}

// Text as it is (a generated stream: its pieces arrive mid-line, and breaking one would change
// the text), unless JSON mode is quiet.
static void out_raw(const Session *s, const char *text, size_t n) {
    if (s->json && s->quiet) return;
    fwrite(text, 1, n, text_stream(s));
}

// A carriage return shows only as part of CRLF (a CRLF corpus's line ends): alone it moves the
// cursor back and the text after it overwrites the line. One that ends a piece waits for the
// next piece's first byte (or out_visible_end).
static int cr_pending;

// out_text of text[0, n), every control character but newline, tab and CRLF's carriage return
// shown as U+FFFD.
void out_visible(const Session *s, const char *text, size_t n) {
    if (cr_pending && n) {
        cr_pending = 0;
        out_raw(s, text[0] == '\n' ? "\r" : "\xEF\xBF\xBD", text[0] == '\n' ? 1 : 3);
    }
    size_t run = 0;   // bytes since the last one replaced, printed as they are
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)text[i];
        int c1 = c == 0xC2 && i + 1 < n && (unsigned char)text[i + 1] >= 0x80 && (unsigned char)text[i + 1] <= 0x9F;
        if (c == '\r' && i + 1 == n) {   // CRLF or not: the next piece says
            out_raw(s, text + run, i - run);
            cr_pending = 1;
            return;
        }
        int crlf = c == '\r' && text[i + 1] == '\n';
        if (!(c < 0x20 && c != '\n' && c != '\t' && !crlf) && c != 0x7F && !c1) continue;
        out_raw(s, text + run, i - run);
        out_raw(s, "\xEF\xBF\xBD", 3);
        i += c1;
        run = i + 1;
    }
    out_raw(s, text + run, n - run);
}

void out_visible_end(const Session *s) {
    if (cr_pending) out_raw(s, "\xEF\xBF\xBD", 3);
    cr_pending = 0;
}

// A note is a sentence or two on a line: on a terminal narrower than it, broken at spaces.
void out_note(const Session *s, const char *fmt, ...) {
    if (s->quiet) return;
    va_list ap;
    va_start(ap, fmt);
    char *text = NULL;
    if (vasprintf(&text, fmt, ap) >= 0) fputs_wrapped(text, text_stream(s));
    va_end(ap);
    free(text);
}

// A malloc'ed (cJSON_malloc) copy of s with U+FFFD for each byte that starts no well-formed
// character (tokenizer_utf8_valid_prefix's rule); NULL when s is valid already (or out of
// memory: then s stays as it is).
static char *utf8_repaired(const char *s) {
    size_t n = strlen(s), valid = tokenizer_utf8_valid_prefix(s, n);
    if (valid == n) return NULL;
    char *out = cJSON_malloc(valid + 3 * (n - valid) + 1);   // at worst every later byte a U+FFFD
    size_t o = 0;
    for (size_t i = 0; out && i < n;) {
        size_t run = tokenizer_utf8_valid_prefix(s + i, n - i);
        memcpy(out + o, s + i, run), o += run, i += run;
        if (i < n) memcpy(out + o, "\xEF\xBF\xBD", 3), o += 3, i++;
    }
    if (out) out[o] = '\0';
    return out;
}

void json_valid_utf8(cJSON *o) {
    for (; o; o = o->next) {
        char *fixed;
        if (o->string && !(o->type & cJSON_StringIsConst) && (fixed = utf8_repaired(o->string))) {
            cJSON_free(o->string);
            o->string = fixed;
        }
        if (cJSON_IsString(o) && o->valuestring && (fixed = utf8_repaired(o->valuestring))) {
            cJSON_free(o->valuestring);
            o->valuestring = fixed;
        }
        json_valid_utf8(o->child);
    }
}

// The bytes of a whole UTF-8 character at p (2 to 4), or 0 when p starts none: a stray
// continuation byte, a cut sequence, a byte no UTF-8 has, an overlong form, a UTF-16 surrogate,
// a code point past U+10FFFF (RFC 3629's table of well-formed sequences).
static int utf8_length(const unsigned char *p) {
    int n = *p >= 0xC2 && *p <= 0xDF ? 2 : *p >= 0xE0 && *p <= 0xEF ? 3 : *p >= 0xF0 && *p <= 0xF4 ? 4 : 0;
    unsigned char lo = *p == 0xE0 ? 0xA0 : *p == 0xF0 ? 0x90 : 0x80, hi = *p == 0xED ? 0x9F : *p == 0xF4 ? 0x8F : 0xBF;
    if (n && (p[1] < lo || p[1] > hi)) return 0;   // the second byte's range depends on the first
    for (int i = 2; i < n; i++)
        if ((p[i] & 0xC0) != 0x80) return 0;
    return n;
}

// text's control bytes (an ESC that would recolor the terminal, a newline that would split the
// line), bytes that are not UTF-8 (a file's tensor name of raw 0xFF) and bidirectional controls
// (U+202A–U+202E, U+2066–U+2069: they reorder what follows) as '?', one a byte, in place: an
// error or warning quotes what was typed or read, which may hold them.
static void printable(char *text) {
    for (unsigned char *p = (unsigned char *)text; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) *p = '?';
        else if (tokenizer_utf8_bidi_control((const char *)p)) memcpy(p, "???", 3), p += 2;
        else if (*p >= 0x80 && !utf8_length(p)) *p = '?';
        else if (*p >= 0x80) p += utf8_length(p) - 1;
    }
}

const char *shown_name(char *buf, size_t size, const char *name) {
    snprintf(buf, size, "%s", name);
    printable(buf);
    return buf;
}

void out_warning(const Session *s, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    FILE *f = text_stream(s);   // a live progress line there would run into the warning: clear it
    if (!s->quiet && terminal_takes_escapes(f)) fputs("\r\033[K", f);
    char shown[sizeof msg];
    snprintf(shown, sizeof shown, "%s", msg);
    printable(shown);
    out_note(s, "warning: %s\n", shown);
    if (!s->result) return;
    cJSON *list = cJSON_GetObjectItemCaseSensitive(s->result, "warnings");
    if (!list) list = cJSON_AddArrayToObject(s->result, "warnings");
    const cJSON *w;
    cJSON_ArrayForEach(w, list)
        if (cJSON_IsString(w) && strcmp(w->valuestring, msg) == 0) return;
    cJSON_AddItemToArray(list, cJSON_CreateString(msg));
}

static int stdout_lost;   // a write to stdout failed: said once; stdout is /dev/null since

// A write to stdout that failed (a reader that left: EPIPE, SIGPIPE being caught; a full disk:
// ENOSPC) killed the session with its unsaved training, or went unsaid. Now it is one line on
// stderr the first time, and stdout becomes /dev/null: the rest of a script runs, its saves
// happen, and later output costs nothing. main's exit status says it at the end, as coreutils'
// "write error" does.
// Whether fd still takes writes after a write to it failed some time ago (stdio keeps the
// error, not its errno): a terminal or pipe that reports no error or hang-up does — the failed
// write was cut by a signal (Ctrl-C while the terminal was paused by Ctrl-S or the reader was
// slow) —; a regular file's writes are never cut that way, so its error was real.
static int still_writable(int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0 || S_ISREG(st.st_mode)) return 0;
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    return poll(&p, 1, 0) >= 0 && !(p.revents & (POLLERR | POLLHUP | POLLNVAL));
}

void out_check_stdout(void) {
    if (stdout_lost) return;
    errno = 0;
    if (fflush(stdout) == 0 && !ferror(stdout)) return;
    int e = errno;
    clearerr(stdout);
    if (e == EINTR) return;   // a Ctrl-C cut a write short: the pipe is still there
    if (e == 0 && still_writable(STDOUT_FILENO)) return;   // an earlier write was cut short, as above
    stdout_lost = 1;
    __fpurge(stdout);   // what could not be written is dropped, not written to /dev/null later
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0 && null != STDOUT_FILENO) {
        dup2(null, STDOUT_FILENO);
        close(null);
    }
    fprintf(stderr, "lrsh: cannot write to standard output%s%s%s: results are not shown from here; the session "
                    "goes on\n", e ? " (" : "", e ? strerror(e) : "", e ? ")" : "");
}

int out_stdout_lost(void) { return stdout_lost; }

// A signal that ends lrsh (SIGTERM from a scheduler) while a long result is written cut its line
// in half, for the program reading it: it waits for the line's end (lrsh_writing_result),
// whichever thread it reached, then ends lrsh; a second one ends it at once (a stalled reader).
static void print_json_line(const Session *s, cJSON *obj) {
    json_valid_utf8(obj);
    char *text = cJSON_PrintUnformatted(obj);
    lrsh_writing_result = 1;
    if (text) {
        fputs(text, stdout);
        fputc('\n', stdout);
        free(text);
    }
    out_check_stdout();  // flushes: a program on the other end of a pipe reads one line per command
    lrsh_writing_result = 0;
    if (!lrsh_term_saves) session_end_if_terminated(s);   // a training with save= ends after its save
}

// "file:line" of a script or "-c:line"; ", command K" when the line holds several commands
// (-c 'a; b; c' is one line), so that an error names which.
static void source_where(const Session *s, char *where, size_t size) {
    int n = snprintf(where, size, "%s:%d", s->src_name, s->src_line);
    if (s->src_commands > 1 && n > 0 && (size_t)n < size)
        snprintf(where + n, size - (size_t)n, ", command %d", s->src_command);
}

// The failed command's result object, as far as it got: its warnings, and what it had reported
// (train's steps and loss before a save failed) under "partial" — not ok and command, said anew.
static void add_partial_result(cJSON *o, const cJSON *partial) {
    cJSON *done = NULL;
    for (const cJSON *f = partial ? partial->child : NULL; f; f = f->next) {
        if (strcmp(f->string, "ok") == 0 || strcmp(f->string, "command") == 0) continue;
        if (strcmp(f->string, "warnings") == 0) {
            cJSON_AddItemToObject(o, "warnings", cJSON_Duplicate(f, 1));
            continue;
        }
        if (!done) done = cJSON_AddObjectToObject(o, "partial");
        if (done) cJSON_AddItemToObject(done, f->string, cJSON_Duplicate(f, 1));
    }
}

void out_error(const Session *s, const char *command, const char *line, const char *msg) {
    out_failure(s, command, line, msg, NULL, 0);
}

void out_failure(const Session *s, const char *command, const char *line, const char *msg, const cJSON *partial,
                 int interrupted) {
    char where[1100] = "", first[64];
    if (s->src_name) source_where(s, where, sizeof where);
    if (s->json) {
        line += strspn(line, " \t");
        snprintf(first, sizeof first, "%.*s", (int)strcspn(line, " \t\r\n"), line);
        size_t len = strlen(line);   // the line, not its newline ("\n" or "\r\n"); a lone \r is the line's
        if (len && line[len - 1] == '\n') len--;
        if (len && line[len - 1] == '\r') len--;
        char *whole = strndup(line, len);
        if (whole) line = whole;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddFalseToObject(o, "ok");
        cJSON_AddStringToObject(o, "error", msg);
        cJSON_AddStringToObject(o, "command", command ? command : first);
        cJSON_AddStringToObject(o, "line", line);
        if (where[0]) cJSON_AddStringToObject(o, "where", where);
        if (interrupted) cJSON_AddTrueToObject(o, "interrupted");
        add_partial_result(o, partial);
        print_json_line(s, o);
        cJSON_Delete(o);
        free(whole);
        return;
    }
    out_check_stdout();  // flushes: the error stays after the output that preceded it
    char *text = NULL;   // broken at spaces on a terminal narrower than it
    if (asprintf(&text, "%s%serror: %s", where, where[0] ? ": " : "", msg) >= 0) {
        printable(text);   // one line, whatever the message quotes
        fputs_wrapped(text, stderr);
        fputc('\n', stderr);
    }
    free(text);
}

void out_emit(Session *s, cJSON *obj) {
    if (!s->rows) s->rows = cJSON_CreateArray();
    if (s->rows) cJSON_AddItemToArray(s->rows, obj);
    else cJSON_Delete(obj);
    s->emitted = 1;
}

void out_emit_rows(Session *s) {
    int n = s->rows ? cJSON_GetArraySize(s->rows) : 0;
    // each row gets the command's warnings, and its place: a reader knows the last it waits for
    const cJSON *w = s->result ? cJSON_GetObjectItemCaseSensitive(s->result, "warnings") : NULL;
    for (int i = 0; i < n; i++) {
        cJSON *row = cJSON_GetArrayItem(s->rows, i);
        if (w && !cJSON_GetObjectItemCaseSensitive(row, "warnings"))
            cJSON_AddItemToObject(row, "warnings", cJSON_Duplicate(w, 1));
        cJSON_AddNumberToObject(row, "row_index", i);
        cJSON_AddNumberToObject(row, "row_count", n);
        if (s->json) print_json_line(s, row);
    }
    cJSON_Delete(s->rows);
    s->rows = NULL;
}

void out_result(const Session *s, cJSON *obj) {
    if (s->json) print_json_line(s, obj);
    else out_check_stdout();
}

// The shortest decimal (7 to 9 significant digits) that reads back as the same float: the
// engine's values are floats, and 7 digits alone did not round-trip them ("lr":0.007999999
// for 0.00799999945f), so two runs could differ in a bit a log could not show.
cJSON *json_real(double v) {
    char buf[32];
    float f = (float)v;   // at float precision whatever the value was computed in: one quantity, one text
    for (int digits = 7; digits <= 9; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, (double)f);
        if ((float)strtod(buf, NULL) == f) break;
    }
    return cJSON_CreateNumber(strtod(buf, NULL));
}

void json_add_real(cJSON *obj, const char *key, double v) { cJSON_AddItemToObject(obj, key, json_real(v)); }

cJSON *json_u64(uint64_t v) {
    if (v < 1000000000000000ull) return cJSON_CreateNumber((double)v);   // 15 digits: cJSON prints them exactly
    char text[24];
    snprintf(text, sizeof text, "%llu", (unsigned long long)v);
    return cJSON_CreateString(text);
}

void json_add_u64(cJSON *obj, const char *key, uint64_t v) { cJSON_AddItemToObject(obj, key, json_u64(v)); }

const char *fmt_count(char *buf, size_t size, double n) {
    const char *unit = "";   // the unit of the value as rounded: 999 998 is 1.00M, not 1000.00k
    if (n >= 1e9 - 5e3) { n /= 1e9; unit = "G"; }
    else if (n >= 1e6 - 5) { n /= 1e6; unit = "M"; }
    else if (n >= 1e4 - 0.5) { n /= 1e3; unit = "k"; }
    if (*unit) snprintf(buf, size, "%.2f%s", n, unit);
    else snprintf(buf, size, "%.0f", n);
    return buf;
}

const char *fmt_loss(char *buf, size_t size, double loss) {
    snprintf(buf, size, fabs(loss) < 1e5 ? "%.4f" : "%.4g", loss);
    return buf;
}

const char *fmt_bytes(char *buf, size_t size, double bytes) {
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (u < 4 && bytes >= (u ? 1023.95 : 1024)) { bytes /= 1024; u++; }   // as rounded: never "1024.0 KiB"
    snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", bytes, units[u]);
    return buf;
}

const char *fmt_duration(char *buf, size_t size, double seconds) {
    if (!(seconds >= 0) || seconds > 1e8) { snprintf(buf, size, "?"); return buf; }
    long t = (long)(seconds + 0.5);
    if (t >= 3600) snprintf(buf, size, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, size, "%ld:%02ld", t / 60, t % 60);
    return buf;
}

// A time taken, for a report: hundredths of a second under one (a short run is not "0.0 s"),
// tenths under a minute (nor "0:01").
const char *fmt_elapsed(char *buf, size_t size, double seconds) {
    if (seconds >= 0 && seconds < 59.95) {
        snprintf(buf, size, seconds < 0.995 ? "%.2f s" : "%.1f s", seconds);
        return buf;
    }
    return fmt_duration(buf, size, seconds);
}

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void progress_begin(Progress *p, const Session *s, int total) {
    memset(p, 0, sizeof *p);
    // a command with a progress line stops at its steps' boundaries on Ctrl-C: at the prompt, a
    // Ctrl-C not acted on within a second is acknowledged (repl/main.c; cleared after the command)
    if (s->interactive) lrsh_stop_notice = isatty(STDERR_FILENO);
    p->total = total;
    if (s->quiet) return;
    p->to = text_stream(s);
    p->live = !s->progress_lines && terminal_takes_escapes(p->to);   // a dumb one gets a pipe's plain lines
    p->every = total >= 10 ? total / 10 : 1;
    p->printed_at = now_seconds();
}

// Bytes of a live line that fit in cols columns, ending at a whole field (fields are separated
// by two spaces: "loss 3.2145  11.1k tok/s"), so that no number shows cut in half.
static size_t whole_fields(const char *line, int cols) {
    size_t fit = fitting_bytes(line, cols);
    return line[fit] ? field_gap(line, fit, 0) : fit;
}

// Whether a live line of text, and with_extra the watched values after it, is wider than the
// terminal p draws on — without them, text and the "  …" that stands for them when there are
// some. Text alone too wide calls for a narrower form, not a cut one (at 30 columns
// "step 2513 (13/15)  …" lost the loss; with watched values, the cut for "  …" took it).
static int too_wide(const Progress *p, const char *text, int with_extra) {
    int cols = p->live ? terminal_columns(p->to) : 0;   // not live: p->to may be NULL (quiet)
    const char *extra = p->extra ? p->extra : "";
    int need = text_columns(text) + (!extra[0] ? 0 : with_extra ? 2 + text_columns(extra) : 3);
    return cols > 1 && need > cols - 1;
}

void progress_text(Progress *p, int done, const char *text) {
    if (!p->to) return;
    const char *extra = p->extra ? p->extra : "";
    if (p->live) {
        // one line redrawn in place: cut to the terminal's width (a longer one wraps, and each
        // redraw then leaves a line behind); \033[K clears what a longer previous one left
        char line[512];
        snprintf(line, sizeof line, "%s%s%s", text, extra[0] ? "  " : "", extra);
        int cols = terminal_columns(p->to);
        size_t fit = cols > 1 ? whole_fields(line, cols - 1) : strlen(line);
        if (line[fit] && cols > 4) fit = whole_fields(line, cols - 4);   // room for "  …": fields were left out
        fprintf(p->to, "\r%.*s%s\033[K", (int)fit, line, line[fit] ? "  …" : "");
        p->shown = 1;
    } else if (done % p->every == 0 || done == p->total || now_seconds() - p->printed_at >= PROGRESS_PLAIN_SECONDS) {
        fprintf(p->to, "%s%s%s\n", text, extra[0] ? "  " : "", extra);
        p->printed_at = now_seconds();
    }
    if (p->to == stdout) out_check_stdout();   // flushes (the errno of a failed write is read there)
    else fflush(p->to);
}

void progress_update(Progress *p, int done, int step, float loss, double tok_per_s, double eta_s) {
    if (!p->to) return;
    char rate[32], eta[32], text[256];
    fmt_count(rate, sizeof rate, tok_per_s);
    fmt_duration(eta, sizeof eta, eta_s);
    snprintf(text, sizeof text, "step %d (%d/%d)  loss %s  %s tok/s  ETA %s", step, done, p->total,
             LOSS_TEXT(loss), rate, eta);
    // room for the watched values, which the user asked to see: the rate goes first (the summary
    // after has it), then the ETA; if they still do not fit, the values are cut instead
    if (too_wide(p, text, 1))
        snprintf(text, sizeof text, "step %d (%d/%d)  loss %s  ETA %s", step, done, p->total, LOSS_TEXT(loss), eta);
    if (too_wide(p, text, 1)) snprintf(text, sizeof text, "step %d (%d/%d)  loss %s", step, done, p->total, LOSS_TEXT(loss));
    if (too_wide(p, text, 0)) snprintf(text, sizeof text, "step %d  loss %s", step, LOSS_TEXT(loss));
    if (too_wide(p, text, 0)) snprintf(text, sizeof text, "%d  loss %s", step, LOSS_TEXT(loss));
    progress_text(p, done, text);
}

int progress_stop_on_interrupt(void *ctx, double done, double total) {
    (void)ctx, (void)done, (void)total;
    return lrsh_interrupted != 0;
}

void progress_line_begin(ProgressLine *pl, const Session *s, const char *label, const char *unit_name, double unit) {
    memset(pl, 0, sizeof *pl);
    progress_begin(&pl->p, s, 100);
    pl->label = label;
    pl->unit_name = unit_name;
    pl->unit = unit;
    pl->t0 = now_seconds();
    pl->last_pct = -1;
}

#define PLAIN_PROGRESS_AFTER_S 2.0

// The engine's ProgressFn for work that is not training steps (data load, eval): draws
// "LABEL 42% (done/total UNIT)  ETA" and stops the engine call when Ctrl-C was pressed.
int progress_engine(void *ctx, double done, double total) {
    ProgressLine *pl = ctx;
    Progress *p = &pl->p;
    int pct = total > 0 ? (int)(100.0 * done / total) : 100;
    double elapsed = now_seconds() - pl->t0, eta = done > 0 ? elapsed * (total - done) / done : 0;
    char eta_s[32], text[256];
    fmt_duration(eta_s, sizeof eta_s, eta);
    int decimals = pl->unit == 1 ? 0 : 1;   // whole batches or rounds (those finished: 1.7 is 1), tenths of MB
    double shown = decimals ? done / pl->unit : floor(done / pl->unit);
    snprintf(text, sizeof text, "%s %d%% (%.*f/%.*f %s)  ETA %s", pl->label, pct, decimals, shown, decimals,
             total / pl->unit, pl->unit_name, eta_s);
    if (too_wide(p, text, 0)) snprintf(text, sizeof text, "%s %d%%  ETA %s", pl->label, pct, eta_s);
    if (too_wide(p, text, 0)) snprintf(text, sizeof text, "%s %d%%", pl->label, pct);
    // live: every new percent; plain lines (a pipe, a log): once per decile crossed (chunks may
    // skip a decile), from 2 s on — a one-second eval's ten lines were only noise in a transcript
    int plain_due = pct / 10 != pl->last_pct / 10 && elapsed >= PLAIN_PROGRESS_AFTER_S;
    if (p->live ? pct != pl->last_pct : plain_due) progress_text(p, p->live ? pct : pct / 10 * 10, text);
    pl->last_pct = pct;
    return lrsh_interrupted != 0;
}
void progress_end(Progress *p) {
    if (p->to && p->shown) fputc('\n', p->to);
    p->shown = 0;
}

int text_columns(const char *t) { return text_columns_n(t, (int)strlen(t)); }

void line_add(OutLine *l, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *piece = NULL;
    int n = vasprintf(&piece, fmt, ap);
    va_end(ap);
    if (n < 0) return;   // out of memory: the piece is left out
    if (l->len + (size_t)n + 1 > l->cap) {
        size_t cap = (l->len + (size_t)n + 1) * 2;
        char *grown = realloc(l->text, cap);
        if (!grown) { free(piece); return; }
        l->text = grown, l->cap = cap;
    }
    memcpy(l->text + l->len, piece, (size_t)n + 1);
    l->len += (size_t)n;
    free(piece);
}

void line_out(const Session *s, OutLine *l) {
    out_text(s, "%s\n", l->text ? l->text : "");
    free(l->text);
    *l = (OutLine){0};
}

char *trim_cell_space(char *line) {
    size_t n = strlen(line);
    while (n > 0 && line[n - 1] == ' ') line[--n] = '\0';
    return line;
}

int text_is_terminal(const Session *s) { return isatty(fileno(text_stream(s))); }

int table_columns(const Session *s) {
    FILE *f = text_stream(s);
    int cols = isatty(fileno(f)) ? terminal_columns(f) : 0;
    return cols >= 16 ? cols : 80;
}

// Cells [c, k) that fit in room columns from cell c (at least one); their columns in *used.
static int band_end(const int *width, int n, int c, int room, int *used) {
    int k = c, cols = width[k++];
    while (k < n && cols + 1 + width[k] <= room) cols += 1 + width[k++];
    *used = cols;
    return k;
}

void table_out(const Session *s, const char *lead, char *line, const int *width, int n, const char *tail) {
    trim_cell_space(line);
    FILE *f = text_stream(s);
    int cols = isatty(fileno(f)) ? terminal_columns(f) : 0, lead_cols = text_columns(lead), total = lead_cols + n - 1;
    for (int c = 0; c < n; c++) total += width[c];
    if (cols < 16 || total <= cols || n < 2) {
        out_text(s, "%s%s%s\n", lead, line, tail);
        return;
    }
    int indent = lead_cols + width[0] + 1;   // under the second cell
    if (indent > cols / 2) indent = cols / 4;
    const char *p = line;
    for (int c = 0; c < n && *p;) {
        int used, k = band_end(width, n, c, cols - (c ? indent : lead_cols), &used);
        size_t bytes = k < n ? fitting_bytes(p, used) : strlen(p);
        out_text(s, "%*s%s%.*s%s\n", c ? indent : 0, "", c ? "" : lead, (int)bytes, p, k < n ? "" : tail);
        p += bytes;
        if (*p == ' ') p++;   // the separator; the next cell's own padding stays (right-aligned cells)
        c = k;
    }
}

void table_cell(char *buf, size_t cap, const char *text, int width, int right) {
    size_t used = strlen(buf);
    int pad = width - text_columns(text);
    if (pad < 0) pad = 0;
    if (right) snprintf(buf + used, cap - used, "%*s%s ", pad, "", text);
    else snprintf(buf + used, cap - used, "%s%*s ", text, pad, "");
}
