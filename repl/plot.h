// plot.h — charts drawn in the terminal with Unicode braille (U+2800–U+28FF): each character
// cell is a 2×4 grid of dots, so a 72×16-cell chart has 144×64 pixels.
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct Canvas {
    int cols, rows;        // in character cells; pixels are 2·cols × 4·rows
    uint8_t *dots;         // per cell: the braille dot bits
    uint8_t *color;        // per cell: the series that drew last (1-based; 0 none)
    char *mark;            // per cell: a letter shown instead of the dots (0 none)
} Canvas;

int canvas_init(Canvas *c, int cols, int rows);   // 0, or −1 when out of memory
void canvas_free(Canvas *c);
// Light the pixel (x, y); y = 0 is the top row. Pixels off the canvas are ignored.
void canvas_set(Canvas *c, int x, int y, int color);
void canvas_line(Canvas *c, int x0, int y0, int x1, int y1, int color);
// Show letter ch in cell (col, row) instead of its dots.
void canvas_mark(Canvas *c, int col, int row, char ch, int color);
// Row `row` as UTF-8 (ANSI colors when ansi), NUL-terminated; returns the bytes written.
// size ≥ 16·cols + 8 always suffices.
size_t canvas_row(const Canvas *c, int row, int ansi, char *buf, size_t size);

// Text grown by printf-style pieces (the chart and the table are built in one); oom set, and
// the rest dropped, when out of memory.
typedef struct Text { char *s; size_t n, cap; int oom; } Text;
void text_add(Text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

typedef struct PlotSeries {
    const char *name;      // for the legend
    const double *x, *y;   // n points; non-finite y values are skipped (the line breaks)
    int n;
    int points;            // 1: isolated points (2×2 dots), 0: a joined line
    int letter;            // the letter that marks the series' last point and its legend entry (0: none)
    int color;             // 1.. (a run's, the same in every chart); 0: by its place in the list
} PlotSeries;

typedef struct PlotOptions {
    int width, height;     // of the plotting area, in cells
    int ansi;              // color each series
    const char *title;     // first line ("loss")
    const char *xlabel;    // "step"
    int log_y;             // y on a log scale: positions by log10 y, labels the values; y ≤ 0 skipped
    const char *ref_name;  // a dotted line across at y = ref (Spectron's bound of 1), when in range
    double ref;
    // A y range chosen (ymin=, ymax=) instead of the data's: values past it are drawn on its
    // edge (a spike does not squeeze the other curves into a row). y_min > 0 on a log scale.
    int has_y_min, has_y_max;
    double y_min, y_max;
    const char *last_label;  // the legend's word for a series' last value (NULL: "last"; smoothed: "last mean")
} PlotOptions;

// The whole chart — title, y-axis labels (max at the top, min at the bottom), the braille
// area, the x axis with its range, a legend — as malloc'ed text ending in '\n'; NULL when out
// of memory. A series without finite points still gets its legend entry.
char *plot_render(const PlotSeries *series, int n, const PlotOptions *o);
// The y range plot_render draws, in the values' units (for an image drawn alike); −1 when no
// point is finite.
int plot_y_limits(const PlotSeries *series, int n, const PlotOptions *o, double *lo, double *hi);

// The series as a table of text (plot_table.c): a row per step — `rows` steps spread over the
// range, and every step of a series of isolated points — a column per series; each cell the
// series' last value at or before its row's step and after the row above's ("–": none). Title
// first. malloc'ed; NULL when out of memory.
char *plot_table(const PlotSeries *series, int n, const char *title, int rows);
