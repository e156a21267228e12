// plot_image.h — a chart as a PNG or SVG file, drawn by gnuplot.
#pragma once
#include "plot.h"
#include "session.h"

// Draw the n series into png and/or svg (either may be NULL) with ylabel on the y axis, on o's
// y scale and range (ymin=, ymax=: gnuplot leaves out what is past it); a "wrote FILE" line
// each, and their names in s->result. A file there is replaced only by an image of its kind,
// and only by a complete one; otherwise it stays as it was.
int plot_images(Session *s, const PlotSeries *series, int n, const char *ylabel, const PlotOptions *o,
                const char *png, const char *svg, Err *err);
