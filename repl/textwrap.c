// textwrap.c — text fitted to a terminal's width (see textwrap.h).
#include "textwrap.h"
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

// The terminal's width, 0 when it says none.
int terminal_columns(FILE *f) {
    struct winsize ws;
    return ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 ? ws.ws_col : 0;
}

int text_columns_n(const char *t, int n) {
    int cols = 0;
    for (int i = 0; i < n && t[i]; i++) cols += ((unsigned char)t[i] & 0xc0) != 0x80;
    return cols;
}

// Bytes of line that fit in `columns` columns, cut at a character's start.
size_t fitting_bytes(const char *line, int columns) {
    size_t i = 0;
    for (int cols = 0; line[i]; i++) {
        if (((unsigned char)line[i] & 0xc0) != 0x80 && cols++ == columns) break;
    }
    return i;
}

// Where a wrapped line's continuations start: under its text — after its leading spaces, or,
// for a table row ("  lr=0.001      peak learning rate"), after the gap of 2+ spaces that
// follows its first word — at most half the width.
static int continuation_indent(const char *line, int len, int cols) {
    int i = 0;
    while (i < len && line[i] == ' ') i++;
    int lead = i;
    while (i < len && line[i] != ' ') i++;
    int gap = i;
    while (i < len && line[i] == ' ') i++;
    int indent = i - gap >= 2 && i < len ? text_columns_n(line, i) : lead;
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

// Whether the line at p is a heading: it ends with ':' ("Examples:").
static int heading(const char *p) {
    size_t len = strcspn(p, "\n");
    return len > 0 && p[len - 1] == ':';
}

// text with its paragraphs joined: a line that starts at the margin continues the one before
// it when that one also did and neither is a heading ("Examples:"); indented lines (tables,
// examples) stay. Help is wrapped by hand for a wide terminal; a narrow one gets it refilled.
static char *reflowed(const char *text) {
    char *out = strdup(text);
    for (char *p = out; p && *p; p++) {
        if (*p != '\n' || p == out || p[-1] == '\n' || p[-1] == ':' || p[1] == ' ' || p[1] == '\n' || !p[1] ||
            heading(p + 1))
            continue;
        const char *start = p;   // the line this newline ends: did it start at the margin?
        while (start > out && start[-1] != '\n') start--;
        if (*start != ' ') *p = ' ';
    }
    return out;
}

// text to f with each line wider than cols broken at its last space that fits (or at cols
// when it has none), the continuations indented under the line's text.
static void write_lines(FILE *f, const char *text, int cols) {
    while (*text) {
        int len = (int)strcspn(text, "\n"), indent = 0, first = 1;
        const char *line = text, *p = text;
        while (text_columns_n(p, (int)(line + len - p)) + (first ? 0 : indent) > cols) {
            int room = cols - (first ? 0 : indent), cut = (int)fitting_bytes(p, room), at = cut;
            while (at > 0 && p[at] != ' ') at--;
            if (at == 0) at = cut;   // one word wider than the room: break it
            if (first) indent = continuation_indent(line, len, cols);
            fprintf(f, "%*s%.*s\n", first ? 0 : indent, "", at, p);
            p += at;
            while (*p == ' ') p++;
            first = 0;
        }
        fprintf(f, "%*s%.*s", first ? 0 : indent, "", (int)(line + len - p), p);
        text = line + len;
        if (*text == '\n') fputc('\n', f), text++;
    }
}

void write_wrapped(FILE *f, const char *text, int cols, int refill) {
    char *flowed = refill && any_wider(text, cols) ? reflowed(text) : NULL;
    write_lines(f, flowed ? flowed : text, cols);
    free(flowed);
}

