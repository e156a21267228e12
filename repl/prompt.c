// prompt.c — the interactive read–eval loop: readline with history in ~/.lrsh_history and
// Ctrl-C that abandons the line being typed (a running `train` sees the same Ctrl-C as a
// request to stop at the next step boundary).
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <readline/history.h>
#include <readline/readline.h>
#include "commands.h"
#include "prompt.h"

#define HISTORY_LINES 1000

// readline's own SIGINT handling keeps the half-typed line; the shell wants it dropped, as
// bash does. So readline leaves SIGINT alone, and a read interrupted by our handler ends
// the line here: empty it and accept it.
static int read_key(FILE *in) {
    for (;;) {
        unsigned char c;
        ssize_t n = read(fileno(in), &c, 1);
        if (n == 1) return c;
        if (n == 0) return EOF;
        if (errno != EINTR) return EOF;
        if (lrsh_interrupted) {
            lrsh_interrupted = 0;
            rl_replace_line("", 0);
            fputs("^C", rl_outstream);
            return '\n';
        }
        rl_check_signals();  // SIGWINCH: readline resizes
    }
}

static void history_path(char *out, size_t size) {
    const char *home = getenv("HOME");
    snprintf(out, size, "%s/.lrsh_history", home && *home ? home : ".");
}

static void history_open(const char *path) {
    stifle_history(HISTORY_LINES);
    if (read_history(path) != 0) write_history(path);  // create it, so appends work
}

// Append each line as it is entered: a crash or a kill keeps the history up to it.
static void history_add(const char *path, const char *line) {
    HIST_ENTRY *last = history_length > 0 ? history_get(history_base + history_length - 1) : NULL;
    if (last && strcmp(last->line, line) == 0) return;
    add_history(line);
    append_history(1, path);
    history_truncate_file(path, HISTORY_LINES);
}

int prompt_loop(Session *s) {
    char hist[1024];
    history_path(hist, sizeof hist);
    history_open(hist);
    completion_install();
    rl_catch_signals = 0;
    rl_getc_function = read_key;
    if (s->json) rl_outstream = stderr;  // stdout carries only JSON
    if (!s->quiet)
        fprintf(s->json ? stderr : stdout,
                "lrsh %s: `help` lists the commands, Tab completes, Ctrl-D leaves.\n", LRSH_VERSION);
    int failed = 0;
    char *line;
    for (;;) {
        lrsh_interrupted = 0;  // Ctrl-Cs a command did not poll do not count toward leaving
        if (s->quit || !(line = readline("lrsh> "))) break;
        if (line[strspn(line, " \t")]) {
            history_add(hist, line);
            failed = run_line(s, line) != 0;
        }
        free(line);
    }
    return failed;
}
