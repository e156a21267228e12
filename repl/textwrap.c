// textwrap.c — text fitted to a terminal's width (see textwrap.h).
#include "textwrap.h"
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

// The terminal's width, 0 when it says none.
int terminal_columns(FILE *f) {
    struct winsize ws;
    return ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 ? ws.ws_col : 0;
}

int terminal_rows(FILE *f) {
    struct winsize ws;
    return ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 ? ws.ws_row : 0;
}

int terminal_takes_escapes(FILE *f) {
    const char *term = getenv("TERM");
    return isatty(fileno(f)) && term && *term && strcmp(term, "dumb") != 0;
}

int terminal_takes_color(FILE *f) {
    const char *no_color = getenv("NO_COLOR");
    return terminal_takes_escapes(f) && !(no_color && *no_color);
}

// Bytes of an escape sequence that sets a color ("\033[34m") at t, which takes no column; 0
// when t holds none.
static int escape_bytes(const char *t) {
    if (t[0] != '\033' || t[1] != '[') return 0;
    int i = 2;
    while (t[i] && ((unsigned char)t[i] < 0x40 || (unsigned char)t[i] > 0x7e)) i++;
    return t[i] ? i + 1 : i;
}

// The code point at t, UTF-8, and its bytes (a stray or cut byte: itself, one byte).
static unsigned code_point(const unsigned char *t, int *len) {
    int n = t[0] < 0x80 ? 1 : (t[0] & 0xe0) == 0xc0 ? 2 : (t[0] & 0xf0) == 0xe0 ? 3 : (t[0] & 0xf8) == 0xf0 ? 4 : 1;
    unsigned c = n == 1 ? t[0] : t[0] & (0x7f >> n);
    for (int i = 1; i < n; i++) {
        if ((t[i] & 0xc0) != 0x80) { *len = 1; return t[0]; }
        c = c << 6 | (t[i] & 0x3f);
    }
    *len = n;
    return c;
}

// Columns a code point takes on a terminal: none for a combining mark (the bar of W̄), two
// for East Asian wide and fullwidth characters (a run named 中文), one otherwise.
static int code_point_columns(unsigned c) {
    if ((c >= 0x300 && c <= 0x36f) || (c >= 0x1ab0 && c <= 0x1aff) || (c >= 0x1dc0 && c <= 0x1dff) ||
        (c >= 0x20d0 && c <= 0x20ff) || (c >= 0xfe20 && c <= 0xfe2f) || c == 0x200b)
        return 0;
    if ((c >= 0x1100 && c <= 0x115f) || (c >= 0x2e80 && c <= 0xa4cf && c != 0x303f) || (c >= 0xac00 && c <= 0xd7a3) ||
        (c >= 0xf900 && c <= 0xfaff) || (c >= 0xfe30 && c <= 0xfe4f) || (c >= 0xff00 && c <= 0xff60) ||
        (c >= 0xffe0 && c <= 0xffe6) || (c >= 0x1f300 && c <= 0x1faff) || (c >= 0x20000 && c <= 0x3fffd))
        return 2;
    return 1;
}

int text_columns_n(const char *t, int n) {
    int cols = 0;
    for (int i = 0, len; i < n && t[i]; i += len) {
        len = escape_bytes(t + i);
        if (!len) cols += code_point_columns(code_point((const unsigned char *)t + i, &len));
    }
    return cols;
}

// Bytes of line that fit in `columns` columns, cut at a character's start.
size_t fitting_bytes(const char *line, int columns) {
    size_t i = 0;
    for (int cols = 0, len; line[i]; i += (size_t)len) {
        if ((len = escape_bytes(line + i))) continue;
        int w = code_point_columns(code_point((const unsigned char *)line + i, &len));
        if (cols + w > columns) break;   // a combining mark stays with the character before it
        cols += w;
    }
    return i;
}

// Indented less than this, a line is an example or a table's row; more, a description's
// continuation, written under its text by hand.
#define DEEP_INDENT 8

// Where a wrapped line's continuations start, under its text: for a table row ("  lr=0.001
// peak learning rate", "  tok train        train a …") after the first gap of 2+ spaces in
// the row's first half; for "usage: …", "error: …" after that first word — and where `labels`
// (output, not help's prose) after any first ": " in the first half ("model tiny: dim=…"); for an example
// ("  plot loss …") four columns in, so that the rest does not read as another example; else
// under its leading spaces. At most half the width.
static int continuation_indent(const char *line, int len, int cols, int labels) {
    int lead = 0;
    while (lead < len && line[lead] == ' ') lead++;
    for (int i = lead; i + 1 < len && text_columns_n(line, i) <= cols / 2; i++) {
        if (line[i] != ' ' || line[i + 1] != ' ') continue;
        while (i < len && line[i] == ' ') i++;
        int indent = text_columns_n(line, i);
        if (i < len && indent <= cols / 2) return indent;
        break;
    }
    int word = (int)strcspn(line + lead, " \n");
    const char *colon = lead > 0 ? NULL : labels ? strstr(line, ": ") : word > 1 && line[word - 1] == ':' ? line + word - 1 : NULL;
    if (colon && colon - line + 2 < len && text_columns_n(line, (int)(colon - line) + 2) <= cols / 2)
        return text_columns_n(line, (int)(colon - line) + 2);
    int indent = lead > 0 && lead < DEEP_INDENT ? lead + 4 : lead;
    return indent <= cols / 2 ? indent : lead <= cols / 2 ? lead : 0;
}

// Whether a line of text is wider than cols.
static int any_wider(const char *text, int cols) {
    for (const char *p = text; *p;) {
        int len = (int)strcspn(p, "\n");
        if (text_columns_n(p, len) > cols) return 1;
        p += len + (p[len] == '\n');
    }
    return 0;
}

// Whether the line at p is a heading: it ends with ':' and what it introduces is indented
// ("Examples:" and its examples), not a sentence that goes on at the margin.
static int heading(const char *p) {
    size_t len = strcspn(p, "\n");
    return len > 0 && p[len - 1] == ':' && (p[len] == '\0' || p[len + 1] == ' ' || p[len + 1] == '\n' || !p[len + 1]);
}

// Whether the line at next continues the line at line (which ends just before next): a line at
// the margin continues one at the margin, neither a heading ("Examples:"); a line indented
// DEEP_INDENT or more continues one whose text starts at that column (a table entry's
// description, wrapped by hand). Examples and table rows stay lines of their own.
static int continues(const char *line, const char *next, int cols) {
    int len = (int)(next - 1 - line), k = (int)strspn(next, " ");
    if (len == 0 || next[k] == '\n' || !next[k]) return 0;
    if (k == 0) return line[0] != ' ' && !heading(line) && !heading(next);
    return k >= DEEP_INDENT && continuation_indent(line, len, cols * 4, 0) == k;
}

// text with its paragraphs joined (continues): help is wrapped by hand for 80 columns; a
// narrower terminal gets it refilled.
static char *reflowed(const char *text, int cols) {
    char *out = malloc(strlen(text) + 1);
    if (!out) return NULL;
    size_t n = 0;
    const char *line = text;
    for (const char *p = text; *p; p++) {
        if (*p != '\n' || !p[1] || !continues(line, p + 1, cols)) {
            out[n++] = *p;
            if (*p == '\n') line = p + 1;
            continue;
        }
        out[n++] = ' ';   // the newline and the next line's indent become one space
        line = p + 1;     // whose own indent the line after it is measured by
        p += strspn(p + 1, " ");
    }
    out[n] = '\0';
    return out;
}

size_t field_gap(const char *p, size_t cut, size_t from) {
    for (size_t at = cut; at > from && at > 0; at--) {
        if (p[at] != ' ' || p[at - 1] != ' ') continue;
        while (at > 1 && p[at - 2] == ' ') at--;
        return at - 1;   // the gap's first space
    }
    return cut;
}

// Where to break p, of which cut bytes fit: at the last gap between fields in the second half
// ("rho 0.003  max_dw 0.5", a table's cells), so that a field's name and value stay together,
// else at cut (then its last space). The half in columns: ‖, ₂ and σ are several bytes each.
static int field_break(const char *p, int cut) {
    return (int)field_gap(p, (size_t)cut, fitting_bytes(p, text_columns_n(p, cut) / 2));
}

// A break at the single space at `at` that follows a number moves back to the space before the
// number ("2.4 MiB", "20 batches" stay together) when that one is in the line's second half.
static int number_with_its_word(const char *p, int at, int half) {
    if (at <= 0 || p[at] != ' ' || p[at + 1] == ' ' || !isdigit((unsigned char)p[at - 1])) return at;
    int back = at - 1;
    while (back > half && p[back] != ' ') back--;
    if (memchr(p + back, '=', (size_t)(at - back))) return at;   // "beta1=0.9 beta2=…": a setting, whole already
    return back > half ? back : at;
}

// text to f with each line wider than cols broken at its last gap between fields or its last
// space that fits (or at cols when it has none), the continuations indented under the line's text.
static void write_lines(FILE *f, const char *text, int cols, int labels) {
    int after_usage = 0;   // the line under "usage: …" is the command's summary: prose, not an example
    while (*text) {
        int len = (int)strcspn(text, "\n"), indent = 0, first = 1;
        const char *line = text, *p = text;
        while (text_columns_n(p, (int)(line + len - p)) + (first ? 0 : indent) > cols) {
            int room = cols - (first ? 0 : indent), cut = (int)fitting_bytes(p, room), at = field_break(p, cut);
            while (at > 0 && p[at] != ' ') at--;
            at = number_with_its_word(p, at, (int)fitting_bytes(p, room / 2));
            if (at == 0)   // one word wider than the room: after its last '|' or ',' that fits, else anywhere
                for (at = cut; at > 0 && p[at - 1] != '|' && p[at - 1] != ','; at--) {}
            if (at == 0) at = cut;
            if (first) indent = after_usage ? (int)strspn(line, " ") : continuation_indent(line, len, cols, labels);
            fprintf(f, "%*s%.*s\n", first ? 0 : indent, "", at, p);
            p += at;
            while (*p == ' ') p++;
            first = 0;
        }
        fprintf(f, "%*s%.*s", first ? 0 : indent, "", (int)(line + len - p), p);
        after_usage = strncmp(line, "usage: ", 7) == 0;
        text = line + len;
        if (*text == '\n') fputc('\n', f), text++;
    }
}

void write_wrapped(FILE *f, const char *text, int cols, int refill) {
    char *flowed = refill && any_wider(text, cols) ? reflowed(text, cols) : NULL;
    write_lines(f, flowed ? flowed : text, cols, !refill);   // help's prose has colons mid-sentence
    free(flowed);
}

