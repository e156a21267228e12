// plot_image.c — `plot … png=FILE svg=FILE`: the chart as an image, drawn by gnuplot (an
// optional package; without it an error line says how to get it, and the terminal chart is
// drawn either way). An image replaces a file only when that file is an image of its kind, and
// only once gnuplot has written it whole: it draws under a temporary name beside the file,
// which is renamed over it after the image's end marker is checked, so a full disk, a signal or
// a gnuplot stopped midway leaves the old file as it was.
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "../engine/tempfile.h"
#include "commands.h"
#include "output.h"
#include "plot_image.h"
#include "textwrap.h"

extern char **environ;

// The gnuplot executable on PATH, into out; 0 when found.
static int find_gnuplot(char *out, size_t size) {
    const char *path = getenv("PATH");
    if (!path) return -1;
    while (*path) {
        size_t n = strcspn(path, ":");
        snprintf(out, size, "%.*s/gnuplot", (int)(n ? n : 1), n ? path : ".");
        if (access(out, X_OK) == 0) return 0;
        path += n + (path[n] == ':');
    }
    return -1;
}

// A gnuplot single-quoted string: '' stands for one quote. A newline would end gnuplot's
// command, so it is dropped: harmless in a title; file names holding one are refused before
// (see check_image_name), or gnuplot would write to another file than the one checked.
static void gp_string(FILE *f, const char *s) {
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'') fputc('\'', f);
        if (*s != '\n') fputc(*s, f);
    }
    fputc('\'', f);
}

static int check_image_name(const char *path, Err *err) {
    for (const unsigned char *p = (const unsigned char *)path; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return err_set(err, "%s holds a control character, which gnuplot cannot take in a file name: no image "
                           "was written (another name)", path);
    return 0;
}

// An image may be written over only when the file there already is one of its kind (a PNG's
// signature, an SVG's tag near the start): `plot png=notes.txt` must not replace the notes.
static int check_image_target(const char *path, int svg, Err *err) {
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) return 0;
    char head[4096] = "";
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(head, 1, sizeof head - 1, f) : 0;
    if (f) fclose(f);
    head[n] = '\0';
    int same = svg ? strstr(head, "<svg") != NULL : n >= 8 && memcmp(head, "\x89PNG\r\n\x1a\n", 8) == 0;
    if (same) return 0;
    return err_set(err, "%s exists and is not %s image: no image was written (another name, or remove it first)",
                   path, svg ? "an SVG" : "a PNG");
}

// Whether gnuplot finished the image at path: a PNG ends with its IEND chunk, an SVG with
// </svg> (then white space). gnuplot can exit 0 on a full disk with the file cut short.
static int image_complete(const char *path, int svg) {
    char tail[64];
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    long k = n < (long)sizeof tail - 1 ? n : (long)sizeof tail - 1;
    int ok = k > 0 && fseek(f, -k, SEEK_END) == 0 && fread(tail, 1, (size_t)k, f) == (size_t)k;
    fclose(f);
    if (!ok) return 0;
    tail[k] = '\0';
    if (!svg) return k >= 12 && memcmp(tail + k - 8, "IEND\xae\x42\x60\x82", 8) == 0;   // IEND and its CRC
    while (k > 0 && strchr(" \t\r\n", tail[k - 1])) tail[--k] = '\0';
    return k >= 6 && strcmp(tail + k - 6, "</svg>") == 0;
}

// A temporary file for gnuplot's data, script or messages, in $TMPDIR; registered, so that a
// signal ending lrsh removes it (temp_remove when done).
static int temp_file(char *path, size_t size, const char *what, FILE **f, Err *err) {
    const char *dir = getenv("TMPDIR");
    snprintf(path, size, "%s/lrsh-%s-XXXXXX", dir && *dir ? dir : "/tmp", what);
    int fd = mkstemp(path);
    if (fd < 0 || !(*f = fdopen(fd, "w"))) {
        if (fd >= 0) close(fd), unlink(path);
        return err_set(err, "cannot create a temporary file in %s: %s", dir && *dir ? dir : "/tmp", strerror(errno));
    }
    tempfile_begin(path);
    return 0;
}

static void temp_remove(const char *path) {
    unlink(path);
    tempfile_done(path);
}

// Run gnuplot on script; its first error line goes into err.
static int run_gnuplot(const char *gnuplot, const char *script, Err *err) {
    char log[1100];
    FILE *lf;
    if (temp_file(log, sizeof log, "gnuplot-log", &lf, err) != 0) return -1;
    fclose(lf);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, log, O_WRONLY | O_TRUNC, 0);
    char *argv[] = {(char *)"gnuplot", (char *)script, NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, gnuplot, &fa, NULL, argv, environ), status = 0;
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        temp_remove(log);
        return err_set(err, "cannot run %s: %s", gnuplot, strerror(rc));
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    rc = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char msg[300] = "";
        FILE *f = fopen(log, "r");
        // the last non-empty line says what went wrong
        for (char line[300]; f && fgets(line, sizeof line, f);)
            if (line[strspn(line, " \t\r\n^")]) snprintf(msg, sizeof msg, "%s", line + strspn(line, " \t"));
        if (f) fclose(f);
        msg[strcspn(msg, "\r\n")] = '\0';
        if (msg[0]) rc = err_set(err, "gnuplot failed: %s", msg);
        else if (WIFSIGNALED(status)) rc = err_set(err, "gnuplot was ended by signal %d", WTERMSIG(status));
        else rc = err_set(err, "gnuplot failed: no message");
    }
    temp_remove(log);
    return rc;
}

// gnuplot's color (a linetype number) of series i: a run's validation points ("NAME val") take
// their run's, every other series the next one.
static int image_color(const PlotSeries *series, int i) {
    int color = 0;
    for (int k = 0; k <= i; k++) {
        const char *name = series[k].name;
        size_t len = strlen(name);
        int run = -1;
        if (series[k].points && len > 4 && strcmp(name + len - 4, " val") == 0)
            for (int j = 0; j < k && run < 0; j++)
                if (strlen(series[j].name) == len - 4 && strncmp(series[j].name, name, len - 4) == 0) run = j;
        if (k == i) return run >= 0 ? image_color(series, run) : color + 1;
        if (run < 0) color++;
    }
    return color;
}

// The points gnuplot draws: one block per series (index i), two blank lines apart.
static int write_plot_data(const PlotSeries *series, int n, int log_y, char *path, size_t size, Err *err) {
    FILE *f;
    if (temp_file(path, size, "plot-data", &f, err) != 0) return -1;
    for (int i = 0; i < n; i++) {
        fprintf(f, "# %s\n", series[i].name);
        for (int k = 0; k < series[i].n; k++)
            if (isfinite(series[i].y[k]) && (!log_y || series[i].y[k] > 0))
                fprintf(f, "%.10g %.10g\n", series[i].x[k], series[i].y[k]);
        if (series[i].n == 0) fprintf(f, "nan nan\n");
        fprintf(f, "\n\n");
    }
    if (fclose(f) == 0) return 0;
    temp_remove(path);
    return err_set(err, "cannot write the plot data to %s", path);
}

// One gnuplot script drawing every image asked for: targets[0] a PNG, targets[1] an SVG (each
// NULL when not asked for), written to outputs[t].
static int write_plot_script(const PlotSeries *series, int n, const char *ylabel, const PlotOptions *o,
                             const char *data, const char *const outputs[2], char *path, size_t size, Err *err) {
    FILE *f;
    if (temp_file(path, size, "plot-script", &f, err) != 0) return -1;
    for (int t = 0; t < 2; t++) {
        if (!outputs[t]) continue;
        if (t == 0)
            fprintf(f, "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) { set terminal pngcairo size 960,540 noenhanced } "
                       "else { set terminal png size 960,540 noenhanced }\n");
        else fprintf(f, "set terminal svg size 960,540 noenhanced\n");
        fprintf(f, "set output ");
        gp_string(f, outputs[t]);
        // the legend under the chart: inside, it sat on the curves (AdamW's rise)
        fprintf(f, "\nset grid\nset key below\nset xlabel 'step'\n%sset ylabel ", o->log_y ? "set logscale y\n" : "");
        gp_string(f, ylabel);
        double lo, hi;   // ymin=, ymax=: the chart's range, its other end too (an end past every point
                         // left gnuplot none to draw)
        if ((o->has_y_min || o->has_y_max) && plot_y_limits(series, n, o, &lo, &hi) == 0)
            fprintf(f, "\nset yrange [%.10g:%.10g]", lo, hi);
        fprintf(f, "\nplot ");
        for (int i = 0; i < n; i++) {
            fprintf(f, "%s", i ? ", " : "");
            gp_string(f, data);
            fprintf(f, " index %d using 1:2 with %s lc %d title ", i,
                    series[i].points ? "points pt 7 ps 0.8" : "lines lw 2", image_color(series, i));
            gp_string(f, series[i].name);
        }
        if (o->ref_name) {   // the terminal chart's dotted line (Spectron's bound), here too
            char ref_title[128];
            snprintf(ref_title, sizeof ref_title, "%s = %g", o->ref_name, o->ref);
            fprintf(f, ", %.10g with lines dt 2 lw 1.5 lc rgb 'gray30' title ", o->ref);
            gp_string(f, ref_title);
        }
        fprintf(f, "\nunset output\n");
    }
    if (fclose(f) == 0) return 0;
    temp_remove(path);
    return err_set(err, "cannot write the gnuplot script %s", path);
}

// The temporary file gnuplot draws target's image into, beside it, with the permissions the
// target has (a new one: as the umask allows).
static int open_image(AtomicFile *af, const char *target, Err *err) {
    const char *what;
    int e = atomic_file_open(af, target, 0666, &what);
    return e ? err_set(err, "cannot write %s: %s (%s)", target, what, strerror(e)) : 0;
}

// Rename a complete image over its target and say so; an incomplete one is removed.
static int commit_image(Session *s, AtomicFile *af, int svg, Err *err) {
    const char *kind = svg ? "SVG" : "PNG";
    struct stat st;
    const char *kept = stat(af->path, &st) == 0 ? "is as it was" : "was not written";
    if (!image_complete(af->tmp, svg)) {
        atomic_file_abandon(af);
        return err_set(err, "gnuplot wrote an incomplete %s (a full disk?): %s %s", kind, af->path, kept);
    }
    const char *what;
    int e = atomic_file_commit(af, &what);
    if (e) return err_set(err, "cannot write %s: %s (%s); it %s", af->path, what, strerror(e), kept);
    char size[32];
    out_text(s, "wrote %s (%s, %s)\n", NAME_TEXT(af->path), kind, fmt_bytes(size, sizeof size,
                                                                 stat(af->path, &st) == 0 ? (double)st.st_size : 0));
    const char *dot = strrchr(af->path, '.');
    if (!dot || strcasecmp(dot, svg ? ".svg" : ".png") != 0)   // png=loss.jpg: a viewer may go by the name
        out_note(s, "note: %s holds %s data whatever its name says (png= writes PNG, svg= SVG)\n", NAME_TEXT(af->path),
                 kind);
    cJSON_AddStringToObject(s->result, svg ? "svg" : "png", af->path);
    return 0;
}

// Whether any series has a point an image can draw (finite, and above 0 on a log scale).
static int drawable(const PlotSeries *series, int n, int log_y) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < series[i].n; j++)
            if (isfinite(series[i].x[j]) && isfinite(series[i].y[j]) && (!log_y || series[i].y[j] > 0)) return 1;
    return 0;
}

int plot_images(Session *s, const PlotSeries *series, int n, const char *ylabel, const PlotOptions *o,
                const char *png, const char *svg, Err *err) {
    int log_y = o->log_y;
    if (!drawable(series, n, log_y))   // gnuplot's own words would be "x range is invalid"
        return err_set(err, "png=/svg=: %s has no points to draw: no image was written", ylabel);
    char gnuplot[1100];
    if (find_gnuplot(gnuplot, sizeof gnuplot) != 0)
        return err_set(err, "png=/svg= need gnuplot, which is not installed (not found on PATH): `make deps` "
                       "installs it (Debian: apt-get install gnuplot-nox); the chart above is the terminal version");
    const char *targets[2] = {png, svg};
    char resolved[2][PATH_MAX];
    for (int t = 0; t < 2; t++) {
        if (!targets[t]) continue;
        if (file_through_link(targets[t], resolved[t], err) != 0) return err_wrap(err, "", ": no image was written");
        targets[t] = resolved[t];
        if (check_image_name(targets[t], err) != 0 || check_writable_file(targets[t], err) != 0 ||
            check_image_target(targets[t], t, err) != 0)
            return -1;
    }
    if (png && svg && strcmp(targets[0], targets[1]) == 0)
        return err_set(err, "png= and svg= name the same file (%s): no image was written (one name each)", png);
    AtomicFile af[2];
    const char *outputs[2] = {NULL, NULL};
    int rc = 0;
    for (int t = 0; t < 2 && rc == 0; t++)
        if (targets[t] && (rc = open_image(&af[t], targets[t], err)) == 0)
            outputs[t] = af[t].tmp;   // gnuplot writes it; our stream stays empty, for commit's sync
    char data[1100], script[1100];
    if (rc == 0 && (rc = write_plot_data(series, n, log_y, data, sizeof data, err)) == 0) {
        rc = write_plot_script(series, n, ylabel, o, data, outputs, script, sizeof script, err);
        if (rc == 0) rc = run_gnuplot(gnuplot, script, err), temp_remove(script);
        temp_remove(data);
    }
    if (rc == 0 && lrsh_interrupted) rc = err_set(err, "interrupted: no image was written");
    for (int t = 0; t < 2; t++) {
        if (!outputs[t]) continue;
        if (rc == 0) rc = commit_image(s, &af[t], t, err);
        else atomic_file_abandon(&af[t]);
    }
    return rc;
}
