// plot.c — a braille canvas (set a pixel, draw a line, render rows) and line charts on it with
// axes and a legend. Pure text in, text out: `plot` and its test feed it series.
#include "plot.h"
#include "output.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int canvas_init(Canvas *c, int cols, int rows) {
    memset(c, 0, sizeof *c);
    if (cols < 1 || rows < 1) return -1;
    size_t n = (size_t)cols * rows;
    c->dots = calloc(n, 1);
    c->color = calloc(n, 1);
    c->mark = calloc(n, 1);
    if (!c->dots || !c->color || !c->mark) {
        canvas_free(c);
        return -1;
    }
    c->cols = cols;
    c->rows = rows;
    return 0;
}

void canvas_free(Canvas *c) {
    free(c->dots);
    free(c->color);
    free(c->mark);
    memset(c, 0, sizeof *c);
}

void canvas_set(Canvas *c, int x, int y, int color) {
    // braille dot numbering: left column 1 2 3 7, right column 4 5 6 8 (bits 0..7)
    static const uint8_t bit[4][2] = {{0x01, 0x08}, {0x02, 0x10}, {0x04, 0x20}, {0x40, 0x80}};
    if (x < 0 || y < 0 || x >= 2 * c->cols || y >= 4 * c->rows) return;
    size_t cell = (size_t)(y / 4) * c->cols + x / 2;
    c->dots[cell] |= bit[y % 4][x % 2];
    if (!c->mark[cell]) c->color[cell] = (uint8_t)color;   // a mark keeps its own color
}

void canvas_line(Canvas *c, int x0, int y0, int x1, int y1, int color) {
    // Bresenham
    int dx = abs(x1 - x0), sx = x0 < x1 ? 1 : -1, dy = -abs(y1 - y0), sy = y0 < y1 ? 1 : -1, e = dx + dy;
    for (;;) {
        canvas_set(c, x0, y0, color);
        if (x0 == x1 && y0 == y1) return;
        int e2 = 2 * e;
        if (e2 >= dy) { e += dy; x0 += sx; }
        if (e2 <= dx) { e += dx; y0 += sy; }
    }
}

void canvas_mark(Canvas *c, int col, int row, char ch, int color) {
    if (col < 0 || row < 0 || col >= c->cols || row >= c->rows) return;
    c->mark[(size_t)row * c->cols + col] = ch;
    c->color[(size_t)row * c->cols + col] = (uint8_t)color;
}

// blue, red, green, magenta, cyan, then yellow: yellow on a light background (a projector's)
// hardly shows, and the fourth run is often the one a demo is about (Spectron)
static const int ansi_codes[] = {34, 31, 32, 35, 36, 33};

static int ansi_of(int color) { return ansi_codes[(color - 1) % 6]; }

size_t canvas_row(const Canvas *c, int row, int ansi, char *buf, size_t size) {
    size_t n = 0;
    int open = 0;
    if (size == 0) return 0;
    for (int col = 0; col < c->cols && row >= 0 && row < c->rows; col++) {
        size_t cell = (size_t)row * c->cols + col;
        char piece[24];
        int len = 0, color = c->dots[cell] || c->mark[cell] ? c->color[cell] : 0;
        if (ansi && color != open) {
            len += color ? snprintf(piece, sizeof piece, "\033[%dm", ansi_of(color)) : snprintf(piece, sizeof piece, "\033[0m");
            open = color;
        }
        if (c->mark[cell]) {
            piece[len++] = c->mark[cell];
        } else if (c->dots[cell]) {  // U+2800 + bits, as UTF-8: E2 A0|hi 80|lo
            piece[len++] = (char)0xE2;
            piece[len++] = (char)(0xA0 | (c->dots[cell] >> 6));
            piece[len++] = (char)(0x80 | (c->dots[cell] & 0x3F));
        } else {
            piece[len++] = ' ';
        }
        if (n + (size_t)len + 5 >= size) break;
        memcpy(buf + n, piece, (size_t)len);
        n += (size_t)len;
    }
    if (ansi && open && n + 5 < size) {
        memcpy(buf + n, "\033[0m", 4);
        n += 4;
    }
    buf[n] = '\0';
    return n;
}

// ---- charts -------------------------------------------------------------------------------

// A run's letter at its last point — or, where a validation mark or another run's letter is
// already there (a run evaluated at its last step; runs ending together), in the nearest cell
// beside it that holds no mark, one with no dots first: neither hides the other.
static void place_letter(Canvas *c, int col, int row, char ch, int color) {
    static const int beside[9][2] = {{0, 0}, {1, 0}, {0, -1}, {0, 1}, {-1, 0}, {1, -1}, {1, 1}, {-1, -1}, {-1, 1}};
    for (int pass = 0; pass < 2; pass++)   // pass 0: a cell with no dots either
        for (int k = 0; k < 9; k++) {
            int x = col + beside[k][0], y = row + beside[k][1];
            if (x < 0 || y < 0 || x >= c->cols || y >= c->rows) continue;
            size_t cell = (size_t)y * c->cols + x;
            if (c->mark[cell] || (pass == 0 && k > 0 && c->dots[cell])) continue;
            canvas_mark(c, x, y, ch, color);
            return;
        }
    canvas_mark(c, col, row, ch, color);   // crowded all round: on its point after all
}

void text_add(Text *t, const char *fmt, ...) {
    if (t->oom) return;
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (need < 0) return;
    if (t->n + (size_t)need + 1 > t->cap) {
        size_t cap = (t->cap + (size_t)need + 1) * 2;
        char *p = realloc(t->s, cap);
        if (!p) { t->oom = 1; return; }
        t->s = p;
        t->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(t->s + t->n, t->cap - t->n, fmt, ap);
    va_end(ap);
    t->n += (size_t)need;
}

static void extend(double *lo, double *hi) {  // a flat range gets some height
    if (*lo < *hi) return;
    double d = fabs(*lo) > 0 ? fabs(*lo) * 0.05 : 1;
    *lo -= d;
    *hi += d;
}

// A value on the y axis or in a legend: %.4g, but from ten thousand up as 86.55k, 1.2M, 3.4G
// rather than 8.655e+04 (tokens per second); exponents only past the G's.
static void axis_number(char *buf, size_t cap, double v) {
    double a = fabs(v);
    if (!(a >= 1e4 && a < 1e12)) {
        snprintf(buf, cap, "%.4g", v);
        return;
    }
    double scale = a >= 1e9 ? 1e9 : a >= 1e6 ? 1e6 : 1e3;
    snprintf(buf, cap, "%.4g%s", v / scale, a >= 1e9 ? "G" : a >= 1e6 ? "M" : "k");
}

// Where y goes on the axis: itself, or log10 y on a log scale (NaN — not drawn — for y ≤ 0).
static double axis_y(const PlotOptions *o, double y) { return !o->log_y ? y : y > 0 ? log10(y) : NAN; }

// The y range on the axis: the data's [lo, hi], with the ends o fixes put in its place. One end
// fixed past all the data (ymax= under every value) leaves the other a tenth of it away.
static void y_range(const PlotOptions *o, double *lo, double *hi) {
    double fixed_lo = o->has_y_min ? axis_y(o, o->y_min) : NAN, fixed_hi = o->has_y_max ? axis_y(o, o->y_max) : NAN;
    if (isfinite(fixed_lo)) *lo = fixed_lo;
    if (isfinite(fixed_hi)) *hi = fixed_hi;
    if (*lo < *hi || (isfinite(fixed_lo) && isfinite(fixed_hi))) return;   // the caller keeps ymin < ymax
    double d = isfinite(fixed_lo) ? fixed_lo : fixed_hi;
    d = fabs(d) > 0 ? fabs(d) * 0.1 : 1;
    if (isfinite(fixed_lo)) *hi = *lo + d;
    else if (isfinite(fixed_hi)) *lo = *hi - d;
    else extend(lo, hi);
}

static int clamp_int(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

// The value at axis position v (axis_y's inverse), as axis_number writes it.
static void axis_label(const PlotOptions *o, char *buf, size_t cap, double v) {
    axis_number(buf, cap, o->log_y ? pow(10.0, v) : v);
}

// The y axis's labels, one per chart row or "": the extent's two ends at the top and bottom
// rows; between them, on a log scale the powers of ten the rows hold (1000, 1, 0.01: a label
// row apart; the bound's 1 among them), else — or when none falls between — the middle value.
static void y_labels(const PlotOptions *o, double ylo, double yhi, int H, int PH, char (*labels)[32]) {
    axis_label(o, labels[0], sizeof labels[0], yhi);
    axis_label(o, labels[H - 1], sizeof labels[H - 1], ylo);
    int decades = 0;
    // 1 first (the bound's row: 0.1 and 1 in one row labelled it 0.1), then the others outward
    for (int i = 0; o->log_y && i <= 2 * (int)fmax(fabs(ylo), fabs(yhi)) + 1; i++) {
        double k = i % 2 ? (i + 1) / 2 : -(i / 2);   // 0, 1, -1, 2, -2, …
        if (k < ylo || k > yhi) continue;
        int r = (int)lround((yhi - k) / (yhi - ylo) * (PH - 1)) / 4;   // the row a point at 10^k lands in
        if (r < 2 || r > H - 3 || labels[r - 1][0] || labels[r][0] || labels[r + 1][0]) continue;   // a row apart
        axis_label(o, labels[r], sizeof labels[r], k);
        decades++;
    }
    if (!decades && H >= 5) axis_label(o, labels[H / 2], sizeof labels[H / 2], (ylo + yhi) / 2);
}

// The finite points' extent on the axes (x: steps; y: axis_y's); *xlo > *xhi when there is none.
static void data_extent(const PlotSeries *series, int n, const PlotOptions *o, double *xlo, double *xhi, double *ylo,
                        double *yhi) {
    *xlo = *ylo = INFINITY, *xhi = *yhi = -INFINITY;
    for (int s = 0; s < n; s++)
        for (int i = 0; i < series[s].n; i++) {
            double x = series[s].x[i], y = axis_y(o, series[s].y[i]);
            if (!isfinite(x) || !isfinite(y)) continue;
            *xlo = fmin(*xlo, x), *xhi = fmax(*xhi, x);
            *ylo = fmin(*ylo, y), *yhi = fmax(*yhi, y);
        }
}

int plot_y_limits(const PlotSeries *series, int n, const PlotOptions *o, double *lo, double *hi) {
    double xlo, xhi;
    data_extent(series, n, o, &xlo, &xhi, lo, hi);
    if (xlo > xhi) return -1;
    y_range(o, lo, hi);
    if (o->log_y) *lo = pow(10.0, *lo), *hi = pow(10.0, *hi);
    return 0;
}

char *plot_render(const PlotSeries *series, int n, const PlotOptions *o) {
    int W = o->width > 4 ? o->width : 4, H = o->height > 2 ? o->height : 2;
    double xlo, xhi, ylo, yhi;
    data_extent(series, n, o, &xlo, &xhi, &ylo, &yhi);
    Text t = {0};
    text_add(&t, "%s\n", o->title ? o->title : "");
    if (xlo > xhi) {
        text_add(&t, "  (no finite points to draw)\n");
        return t.oom ? (free(t.s), NULL) : t.s;
    }
    if (xlo == xhi) xlo -= 1, xhi += 1;   // one step: whole steps either side, not 5 % (1425.95)
    y_range(o, &ylo, &yhi);
    Canvas c;
    if (canvas_init(&c, W, H) != 0) return NULL;
    int PW = 2 * W, PH = 4 * H;
    double ref = o->ref_name ? axis_y(o, o->ref) : NAN;
    int ref_shown = isfinite(ref) && ref >= ylo && ref <= yhi, ref_py = ref_shown ? (int)lround((yhi - ref) / (yhi - ylo) * (PH - 1)) : 0;
    for (int x = 0; ref_shown && x < PW; x += 2)   // under the series: drawn first, a dot a cell
        canvas_set(&c, x, ref_py, 0);
    int *end_x = calloc((size_t)n + 1, sizeof *end_x), *end_y = calloc((size_t)n + 1, sizeof *end_y);
    if (!end_x || !end_y) { free(end_x); free(end_y); canvas_free(&c); free(t.s); return NULL; }
    for (int s = 0; s < n; s++) {
        const PlotSeries *p = &series[s];
        int have = 0, px0 = 0, py0 = 0, color = p->color ? p->color : s + 1;
        end_x[s] = -1;
        for (int i = 0; i < p->n; i++) {
            double y = axis_y(o, p->y[i]);
            if (!isfinite(p->x[i]) || !isfinite(y)) { have = 0; continue; }
            int px = (int)lround((p->x[i] - xlo) / (xhi - xlo) * (PW - 1));
            int py = clamp_int((int)lround(fmax(-1.0, fmin(PH, (yhi - y) / (yhi - ylo) * (PH - 1)))), 0, PH - 1);
            if (p->points) {   // a mark, over any line's dots in its cell: the lines are drawn in dots
                canvas_mark(&c, px / 2, py / 4, p->letter ? (char)p->letter : '*', color);
            } else if (have) {
                canvas_line(&c, px0, py0, px, py, color);
            } else {
                canvas_set(&c, px, py, color);
            }
            have = 1, px0 = px, py0 = py;
        }
        if (p->letter && have && !p->points) end_x[s] = px0, end_y[s] = py0;   // (points are their letter)
    }
    // the runs' letters last: they tell the runs apart where there is no color
    for (int s = 0; s < n; s++)
        if (end_x[s] >= 0)
            place_letter(&c, end_x[s] / 2, end_y[s] / 4, (char)series[s].letter, series[s].color ? series[s].color : s + 1);
    free(end_x);
    free(end_y);
    char (*labels)[32] = calloc((size_t)H, sizeof *labels), xl[32], xr[32];
    size_t rowsize = 16 * (size_t)W + 8;
    char *row = labels ? malloc(rowsize) : NULL;
    if (!row) { free(labels); canvas_free(&c); free(t.s); return NULL; }
    y_labels(o, ylo, yhi, H, PH, labels);
    int lw = 0;
    for (int r = 0; r < H; r++)
        if ((int)strlen(labels[r]) > lw) lw = (int)strlen(labels[r]);
    for (int r = 0; r < H; r++) {
        const char *label = labels[r];
        size_t len = canvas_row(&c, r, o->ansi, row, rowsize);
        while (len > 0 && row[len - 1] == ' ') row[--len] = '\0';
        text_add(&t, "%*s %s%s\n", lw, label, *label ? "┤" : "│", row);
    }
    free(row);
    free(labels);
    text_add(&t, "%*s └", lw, "");
    for (int i = 0; i < W; i++) text_add(&t, "─");
    snprintf(xl, sizeof xl, "%.6g", xlo);
    snprintf(xr, sizeof xr, "%.6g", xhi);
    int gap = W - (int)strlen(xl) - (int)strlen(xr);
    text_add(&t, "\n%*s  %s%*s%s  %s\n", lw, "", xl, gap > 1 ? gap : 1, "", xr, o->xlabel ? o->xlabel : "");
    for (int s = 0; s < n; s++) {
        const PlotSeries *p = &series[s];
        double last = NAN;
        int finite = 0;
        for (int i = 0; i < p->n; i++)
            if (isfinite(p->y[i])) { last = p->y[i]; finite++; }
        // a line: its letter, then ⠒⠒; points: their mark (a letter when several runs have them)
        char symbol[8];
        snprintf(symbol, sizeof symbol, "%s", !p->points ? "⠒⠒" : p->letter ? (char[]){(char)p->letter, ' ', 0} : "* ");
        int letter = p->letter && !p->points ? p->letter : ' ';
        if (o->ansi) text_add(&t, "  \033[%dm%c %s\033[0m %s", ansi_of(p->color ? p->color : s + 1), letter, symbol,
                              NAME_TEXT(p->name));   // a run's name, read from a log too
        else text_add(&t, "  %c %s %s", letter, symbol, NAME_TEXT(p->name));
        char last_text[32];
        axis_number(last_text, sizeof last_text, last);
        if (finite)
            text_add(&t, "  (%d point%s, %s %s)\n", finite, finite == 1 ? "" : "s",
                     o->last_label && !p->points ? o->last_label : "last", last_text);
        else text_add(&t, "  (no points)\n");
    }
    if (ref_shown) {
        char v[32];
        axis_number(v, sizeof v, o->ref);
        // the legend shows the line's own glyph: the left-column dot of its pixel row in a cell
        static const unsigned char left_dot[4] = {0x01, 0x02, 0x04, 0x40};
        unsigned bit = left_dot[ref_py % 4];
        char glyph[4] = {(char)0xE2, (char)(0xA0 | bit >> 6), (char)(0x80 | (bit & 0x3F)), 0};   // U+2800 + bit
        text_add(&t, "    %s%s %s = %s\n", glyph, glyph, o->ref_name, v);
    }
    canvas_free(&c);
    if (t.oom) { free(t.s); return NULL; }
    return t.s;
}
