// textwrap.h — text fitted to a terminal's width: help, the banner, notes and errors broken at
// spaces (help's paragraphs refilled first), the live progress line cut, plots sized.
#pragma once
#include <stddef.h>
#include <stdio.h>

// The width of the terminal f is, 0 when it says none (not a terminal).
int terminal_columns(FILE *f);
// Its height in rows, 0 when it says none.
int terminal_rows(FILE *f);
// Whether f is a terminal that takes escape sequences (erase-line, colors) and a line redrawn
// in place: a tty whose $TERM is set and not "dumb" (as Emacs' shell buffer sets it).
int terminal_takes_escapes(FILE *f);
// Whether f takes colors too: escapes, and no $NO_COLOR (no-color.org).
int terminal_takes_color(FILE *f);
// Columns of the first n bytes of t on a terminal: a character one, an East Asian wide one
// two, a combining mark and a color escape none.
int text_columns_n(const char *t, int n);
// Bytes of line that fit in `columns` columns, cut at a character's start.
size_t fitting_bytes(const char *line, int columns);
// The start of the last gap of two or more spaces — between fields: "loss 3.2145  11.1k tok/s" —
// after byte `from` and at or before byte `cut` of p; cut when there is none.
size_t field_gap(const char *p, size_t cut, size_t from);
// text to f with each line wider than cols (≥ 16) broken at its last space that fits (or at
// cols when it has none), continuations indented under the line's text. refill: when a line
// is too wide, first join the paragraphs (runs of lines at the margin, headings like
// "Examples:" apart) so that they break evenly.
void write_wrapped(FILE *f, const char *text, int cols, int refill);
