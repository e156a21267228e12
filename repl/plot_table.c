// plot_table.c — a chart's series as a table of text, a row per sampled step: what a screen
// reader can read aloud, and what pastes into a report (`plot … table=on`).
#include "plot.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CELL_MIN 10   // a column's width: its series' name, within these
#define CELL_MAX 24

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// Sorted distinct steps of the finite points of series (all of them, or only the sparse ones).
static int distinct_steps(const PlotSeries *series, int n, int sparse_only, double **out) {
    size_t total = 0;
    for (int s = 0; s < n; s++) total += (size_t)series[s].n;
    double *x = malloc((total ? total : 1) * sizeof *x);
    if (!x) return -1;
    int m = 0;
    for (int s = 0; s < n; s++)
        for (int i = 0; i < series[s].n && (!sparse_only || series[s].points); i++)
            if (isfinite(series[s].x[i]) && isfinite(series[s].y[i])) x[m++] = series[s].x[i];
    qsort(x, (size_t)m, sizeof *x, by_value);
    int k = 0;
    for (int i = 0; i < m; i++)
        if (k == 0 || x[i] != x[k - 1]) x[k++] = x[i];
    *out = x;
    return k;
}

// The rows' steps: `rows` of the steps spread evenly (the first and the last among them), and
// every step of the sparse series (validation marks), which a spread would mostly miss.
static int row_steps(const PlotSeries *series, int n, int rows, double **out) {
    double *all, *sparse;
    int m = distinct_steps(series, n, 0, &all), k = m < 0 ? -1 : distinct_steps(series, n, 1, &sparse);
    if (k < 0) {
        if (m >= 0) free(all);
        return -1;
    }
    double *x = malloc((size_t)(rows + k + 1) * sizeof *x);
    int r = 0;
    if (x) {
        for (int i = 0; i < rows && m > 0; i++) x[r++] = all[m <= rows ? (i < m ? i : m - 1) : (int)lround((double)i * (m - 1) / (rows - 1))];
        for (int i = 0; i < k; i++) x[r++] = sparse[i];
        qsort(x, (size_t)r, sizeof *x, by_value);
        int u = 0;
        for (int i = 0; i < r; i++)
            if (u == 0 || x[i] != x[u - 1]) x[u++] = x[i];
        r = u;
    }
    free(all);
    free(sparse);
    *out = x;
    return x ? r : -1;
}

// A series' cell in the row at `step`: its last value at or before it and after the row above.
static void cell(const PlotSeries *p, double above, double step, char *buf, size_t cap) {
    int last = -1;
    for (int i = 0; i < p->n; i++)
        if (p->x[i] > above && p->x[i] <= step && isfinite(p->y[i])) last = i;
    if (last < 0) snprintf(buf, cap, "–");
    else snprintf(buf, cap, "%.5g", p->y[last]);
}

static int chars(const char *s) {   // UTF-8 characters: columns, for the names lrsh allows
    int n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

// A column of width w (two spaces before it): s right-aligned, or its first w − 1 characters and
// "…" when longer.
static void add_cell(Text *t, const char *s, int w) {
    int c = chars(s);
    if (c <= w) {
        text_add(t, "  %*s%s", w - c, "", s);
        return;
    }
    const char *end = s;
    for (int k = 0; k < w - 1; k++)
        do end++; while (((unsigned char)*end & 0xC0) == 0x80);
    text_add(t, "  %.*s…", (int)(end - s), s);
}

static int column_width(const PlotSeries *p) {
    int w = chars(p->name);
    return w < CELL_MIN ? CELL_MIN : w > CELL_MAX ? CELL_MAX : w;
}

char *plot_table(const PlotSeries *series, int n, const char *title, int rows) {
    double *steps;
    int r = row_steps(series, n, rows < 2 ? 2 : rows, &steps);
    if (r < 0) return NULL;
    Text t = {0};
    text_add(&t, "%s (each cell: the last value at or before its step, after the row above's)\n%10s", title, "step");
    for (int s = 0; s < n; s++) add_cell(&t, series[s].name, column_width(&series[s]));
    text_add(&t, "\n");
    for (int i = 0; i < r; i++) {
        text_add(&t, "%10.0f", steps[i]);
        for (int s = 0; s < n; s++) {
            char value[32];
            cell(&series[s], i ? steps[i - 1] : -INFINITY, steps[i], value, sizeof value);
            add_cell(&t, value, column_width(&series[s]));
        }
        text_add(&t, "\n");
    }
    free(steps);
    if (t.oom) { free(t.s); return NULL; }
    return t.s;
}
