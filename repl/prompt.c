// prompt.c — the interactive read–eval loop: readline with history in ~/.lrsh_history and
// Ctrl-C that abandons the line being typed (a running `train` sees the same Ctrl-C as a
// request to stop at the next step boundary).
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <pwd.h>
#include <unistd.h>
#include <readline/history.h>
#include <readline/readline.h>
#include "../engine/tempfile.h"
#include "commands.h"
#include "output.h"
#include "prompt.h"

#define HISTORY_LINES 1000

// What the last line read was ended by: Enter, or Ctrl-C on an empty or a typed line.
static enum { CTRL_C_NONE, CTRL_C_EMPTY, CTRL_C_TEXT } ctrl_c;

// Lines typed ahead while a command ran were meant to follow it: after its error they would run
// on what it failed to make (a second `model new` refused for unsaved training, then `optim`
// and `train` ran on the old model). A terminal that pastes without bracketed paste sends a
// block the same way. So after an error at the prompt what the terminal holds unread is dropped,
// saying so, as a paste's rest is.
static void drop_typed_ahead(FILE *talk) {
    int pending = 0;
    if (!isatty(STDIN_FILENO) || ioctl(STDIN_FILENO, FIONREAD, &pending) != 0 || pending <= 0) return;
    tcflush(STDIN_FILENO, TCIFLUSH);   // a line still being typed goes too
    fputs("(after the error, what was typed ahead was dropped)\n", talk);
}

// Ctrl-Z at the prompt. readline, which leaves signals to the shell (rl_catch_signals = 0),
// would stop in its raw mode, and after `fg` find the terminal in the parent shell's cooked
// one: no prompt, echo on, Tab a tab. So while the prompt waits SIGTSTP only sets this flag,
// and read_key stops the process itself, between readline's terminal mode and back.
static volatile sig_atomic_t stop_asked;
static void on_sigtstp(int sig) { (void)sig; stop_asked = 1; }

// The terminal's echo of control keys off (see quiet_control_echo); 0, or −1.
static int no_control_echo(void) {
    struct termios t;
    if (tcgetattr(STDIN_FILENO, &t) != 0) return -1;
    t.c_lflag &= ~(tcflag_t)ECHOCTL;
    return tcsetattr(STDIN_FILENO, TCSANOW, &t);
}

// The stop Ctrl-Z asked for, the terminal given back first; after `fg`, readline's mode and
// the prompt and typed text redrawn.
static void stop_at_prompt(void) {
    stop_asked = 0;
    rl_deprep_terminal();
    signal(SIGTSTP, SIG_DFL);
    raise(SIGTSTP);   // stopped here until SIGCONT
    signal(SIGTSTP, on_sigtstp);
    no_control_echo();   // the parent shell's mode is what the terminal has now (see quiet_control_echo)
    rl_prep_terminal(1);
    rl_forced_update_display();
}

// readline's own SIGINT handling keeps the half-typed line; the shell wants it dropped, as
// bash does. So readline leaves SIGINT alone, and a key read interrupted by our handler ends
// the line here: empty it and accept it. SIGINT is blocked except inside ppoll, so a Ctrl-C
// that lands while readline redraws is seen before the next wait, never lost.
static int read_key(FILE *in) {
    static int end_line_next;   // a search or a question was just aborted: the next key ends the line
    sigset_t sigs, old;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTSTP);
    if (end_line_next) {
        end_line_next = 0;
        lrsh_interrupted = 1;
    }
    for (;;) {
        sigprocmask(SIG_BLOCK, &sigs, &old);
        int waited = 0;
        if (!lrsh_interrupted && !stop_asked) {
            struct pollfd p = {.fd = fileno(in), .events = POLLIN};
            waited = ppoll(&p, 1, NULL, &old);
        }
        sigprocmask(SIG_SETMASK, &old, NULL);
        if (stop_asked) {
            int asking = RL_ISSTATE(RL_STATE_COMPLETING);   // "Display all N possibilities?" was showing,
            stop_at_prompt();                              // which the redraw does not show again:
            if (asking) return 'n';                        // answered no, the line kept
            continue;
        }
        if (lrsh_interrupted && RL_ISSTATE(RL_STATE_ISEARCH | RL_STATE_NSEARCH)) {
            // Inside a history search a newline would only end the search, leaving its match
            // as the line, and the next line typed would be taken for the interrupted one:
            // abort the search first (C-g), then end the line as below on the next key read.
            lrsh_interrupted = 0;
            end_line_next = 1;
            return 7;
        }
        if (lrsh_interrupted && RL_ISSTATE(RL_STATE_COMPLETING)) {
            // Completion's "Display all N possibilities? (y or n)" and its --More-- pager take
            // only their own keys (a newline rang the bell and the next line typed was dropped
            // as the interrupted one): answer n, which ends both, then end the line as below.
            lrsh_interrupted = 0;
            end_line_next = 1;
            return 'n';
        }
        if (lrsh_interrupted) {
            lrsh_interrupted = 0;
            ctrl_c = rl_end == 0 ? CTRL_C_EMPTY : CTRL_C_TEXT;
            rl_replace_line("", 0);
            fputs("^C", rl_outstream);
            return '\n';
        }
        if (waited < 0) {
            if (errno != EINTR) return EOF;
            rl_check_signals();  // SIGWINCH: readline resizes
            continue;
        }
        unsigned char c;
        ssize_t n = read(fileno(in), &c, 1);
        if (n == 1) return c;
        if (n == 0) return EOF;
        if (errno != EINTR) return EOF;
    }
}

// ~/.lrsh_history; with HOME unset or empty, the home folder the password database names (as
// bash does: "." left a history file in whatever folder lrsh started in); "" when there is none.
static void history_path(char *out, size_t size) {
    const char *home = getenv("HOME");
    if (!home || !*home) {
        struct passwd *pw = getpwuid(getuid());
        home = pw && pw->pw_dir && *pw->pw_dir ? pw->pw_dir : NULL;
    }
    if (!home || snprintf(out, size, "%s/.lrsh_history", home) >= (int)size) out[0] = '\0';
}

// Why a history file cannot be used, for the warning ("PATH WHY: no history…"); NULL for a
// regular or a missing one, and for /dev/null (a link to it is how one keeps no history: no
// warning).
static const char *history_unusable(const char *path) {
    struct stat st, null;
    static char why[160];
    if (stat(path, &st) != 0) {   // a link loop, a file where a folder should be…
        if (errno == ENOENT) return NULL;
        snprintf(why, sizeof why, "cannot be reached (%s)", strerror(errno));
        return why;
    }
    if (S_ISREG(st.st_mode)) return NULL;
    if (S_ISCHR(st.st_mode) && stat("/dev/null", &null) == 0 && st.st_rdev == null.st_rdev) return "/dev/null";
    return S_ISFIFO(st.st_mode) ? "is a FIFO, not a file" : S_ISDIR(st.st_mode) ? "is a folder, not a file"
           : S_ISSOCK(st.st_mode) ? "is a socket, not a file" : "is a device, not a file";
}

// Reading a FIFO at that path waited for a writer before the banner: the prompt hung. Only a
// regular file (or none yet) is read and written; anything else costs one warning and the
// session keeps no history (path emptied). Lines still go to readline's list, for Up.
static void history_open(const Session *s, char *path) {
    stifle_history(HISTORY_LINES);
    if (!path[0]) return;   // no home folder: no history file
    const char *why = history_unusable(path);
    if (why) {
        if (strcmp(why, "/dev/null") != 0) out_warning(s, "%s %s: no history is kept this session", path, why);
        path[0] = '\0';
        return;
    }
    if (read_history(path) != 0) write_history(path);  // create it, so appends work
}

// Readline cuts the file to HISTORY_LINES by writing a shortened copy and renaming it into
// place: a line another lrsh appended in between was lost (two sessions entering lines at once,
// as tmux's synchronized panes do). The lock is on the file's folder, which the rename leaves in
// place; held for an append and its cut; given up after a second of waiting (history is not
// worth a hang). Returns the descriptor to close, or −1.
static int history_lock(const char *path) {
    char dir[PATH_MAX];
    path_folder(path, dir, sizeof dir);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    for (int waited = 0; fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) != 0; waited++) {
        if ((errno != EWOULDBLOCK && errno != EINTR) || waited == 1000) break;
        nanosleep(&(struct timespec){0, 1000000}, NULL);   // 1 ms
    }
    return fd;
}

// Append each line as it is entered: a crash or a kill keeps the history up to it.
static void history_add(const char *path, const char *line) {
    HIST_ENTRY *last = history_length > 0 ? history_get(history_base + history_length - 1) : NULL;
    if (last && strcmp(last->line, line) == 0) return;
    add_history(line);
    if (!path[0]) return;   // no history file (history_open)
    int lock = history_lock(path);
    append_history(1, path);
    history_truncate_file(path, HISTORY_LINES);
    if (lock >= 0) close(lock);   // and with it the lock
}

// Whether readline itself ended the prompt's line at Ctrl-D: from 8.1 on it does when bracketed
// paste is on (leaving bracketed paste mode), so another newline would leave a blank line.
static int eof_ends_line(void) {
    const char *paste = rl_variable_value("enable-bracketed-paste");
    return RL_READLINE_VERSION >= 0x0801 && paste && strcmp(paste, "on") == 0;
}

// What the session starts with and three commands to try: a newcomer's first screen, wrapped
// to the terminal.
static void banner(const Session *s, FILE *talk) {
    char text[2048];
    int n = snprintf(text, sizeof text, "lrsh %s — a shell over a low-rank LLM engine. `help` lists the commands, Tab "
                     "completes, Ctrl-D leaves.\n", LRSH_VERSION);
    if (!s->has_model) {
        snprintf(text + n, sizeof text - n, "no model loaded: make one with `tok train vocab=512; data load; model new "
                 "tiny`, or `model load PATH`\ntry:  tok train vocab=512    model new tiny    help\n");
        fputs_wrapped(text, talk);
        return;
    }
    const ModelConfig *c = &s->model.cfg;
    const char *name = strrchr(s->model_file, '/');
    name = name ? name + 1 : s->model_file[0] ? s->model_file : "(new model)";
    char rank[64], params[32];
    if (c->rank > 0) snprintf(rank, sizeof rank, "factorized rank %d", c->rank);
    else if (c->rank < 0) snprintf(rank, sizeof rank, "factorized rank %g·in", c->rank_ratio);
    else snprintf(rank, sizeof rank, "dense");
    fmt_count(params, sizeof params, (double)model_counts(&s->model, 1, c->seq).params);
    int step = s->has_trainer ? s->trainer.step : s->resume.step;
    // the seed too: a loaded model brings its own, which decides the batches (--seed wins)
    n += snprintf(text + n, sizeof text - n, "model: %s — %s, dim=%d layers=%d heads=%d seq=%d vocab=%d, %s parameters, "
                  "step %d, on %s; seed %llu\n", NAME_TEXT(name), rank, c->dim, c->layers, c->heads, c->seq, c->vocab, params, step,
                  s->be->name, (unsigned long long)s->seed);
    if (s->tok)
        n += snprintf(text + n, sizeof text - n, "tokenizer: %s, vocab %d\n",
                      s->tok_embedded ? "embedded" : NAME_TEXT(s->tok_path), tokenizer_vocab_size(s->tok));
    else n += snprintf(text + n, sizeof text - n, "tokenizer: none (`tok load PATH` before `generate`)\n");
    // spectrum comes with the inspection commands; without it, model info shows the tensors
    int spectrum = command_find("spectrum", NULL) && (model_find_tensor(&s->model, "blocks.0.attn.wq.A") >= 0 ||
                                                     model_find_tensor(&s->model, "blocks.0.attn.wq") >= 0);
    snprintf(text + n, sizeof text - n, "try:  generate \"Q: Why\"    %s    help\n",
             spectrum ? "spectrum blocks.0.attn.wq" : "model info");
    fputs_wrapped(text, talk);
}

// Ctrl-C at the prompt never leaves, as in bash: it is the key that stops training and
// generation, pressed again and again while text streams by (three presses left the shell,
// and its data, tokenizer and runs with it). Ctrl-D or quit leave, warning first about unsaved
// training; the first Ctrl-C at an empty prompt says so.
static const char leave_hint[] = "(Ctrl-C stops a command; Ctrl-D or quit leaves lrsh)\n";

// While a command runs the terminal is in its own mode, which echoes Ctrl-C as "^C" into the
// live progress line (left on screen, wrapping it at 60 columns): off for the session, the
// terminal's setting given back at the end. Returns whether there is one to give back.
static int quiet_control_echo(struct termios *saved) {
    if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, saved) != 0) return 0;
    return no_control_echo() == 0;
}

int prompt_loop(Session *s) {
    struct termios saved_tty;
    int restore_tty = quiet_control_echo(&saved_tty);
    char hist[1024];
    history_path(hist, sizeof hist);
    history_open(s, hist);
    completion_install(s);
    rl_catch_signals = 0;
    rl_getc_function = read_key;
    // SA_RESTART: readline's redisplay writes go on; ppoll returns EINTR whatever the flag says
    struct sigaction tstp = {.sa_handler = on_sigtstp, .sa_flags = SA_RESTART}, tstp_default;
    sigemptyset(&tstp.sa_mask);
    // stdout carries only JSON, or goes to a file: the prompt, the echo and the banner go where
    // the user sees them, as bash's do (they filled the file, the terminal left blank). Not for
    // a pipe (`lrsh | tee log`): through another stream a result could land after the prompt.
    struct stat out;
    int to_file = !isatty(STDOUT_FILENO) && fstat(STDOUT_FILENO, &out) == 0 && !S_ISFIFO(out.st_mode) &&
                  !S_ISSOCK(out.st_mode) && isatty(STDERR_FILENO);
    if (s->json || to_file) rl_outstream = stderr;
    FILE *talk = rl_outstream == stderr ? stderr : stdout;
    if (!s->quiet) banner(s, talk);
    s->interactive = 1;
    int failed = 0, hinted = 0;
    char *line;
    for (;;) {
        lrsh_interrupted = 0;  // Ctrl-Cs a command did not poll do not count toward leaving
        if (s->quit) break;
        ctrl_c = CTRL_C_NONE;
        out_check_stdout();   // the banner or a command met a stdout that failed (`lrsh | head -1`):
        if (out_stdout_lost() && rl_outstream != stderr)   // it is /dev/null now; the prompt and the
            rl_outstream = stderr, talk = stderr;           // echo go where the user still sees them
        if (rl_instream) rl_reset_screen_size();   // a resize while a command ran reached no one: read it now
        // SIGTSTP is ours only while the prompt waits: a command stops as any program does
        sigaction(SIGTSTP, NULL, &tstp_default);
        int own_stop = tstp_default.sa_handler != SIG_IGN;   // ignored (no job control): left so
        if (own_stop) sigaction(SIGTSTP, &tstp, NULL);
        // Ctrl-\ at the prompt is ignored, as bash does: it ended the session with a core dump,
        // unsaved training and all, past the refusal `quit` and Ctrl-D give first
        void (*quit_default)(int) = signal(SIGQUIT, SIG_IGN);
        line = readline("lrsh> ");
        signal(SIGQUIT, quit_default);
        if (own_stop) sigaction(SIGTSTP, &tstp_default, NULL);
        stop_asked = 0;   // a Ctrl-Z between the last key and Enter: the command runs instead
        if (!line) {  // Ctrl-D
            if (!s->dirty || (s->unsaved_warned & DROP_LEAVE)) break;
            if (!eof_ends_line()) fputc('\n', talk);
            fputs_wrapped(session_unsaved_leave_warning(s), talk);
            s->unsaved_warned |= DROP_LEAVE;   // warned once for this training, as quit is
            continue;
        }
        if (ctrl_c != CTRL_C_NONE) {
            free(line);
            fputc('\n', rl_outstream);
            if (ctrl_c == CTRL_C_EMPTY && !hinted++) fputs_wrapped(leave_hint, talk);
            continue;
        }
        // a paste of several lines arrives as one (bracketed paste): each runs as typed, in turn
        int line_failed = 0;
        for (char *one = line, *next; one && !s->quit && !lrsh_interrupted; one = next) {
            next = strchr(one, '\n');
            if (next) *next++ = '\0';
            if (!one[strspn(one, " \t\r")]) continue;
            history_add(hist, one);
            failed = line_failed = run_line(s, one) != 0;
            lrsh_stop_notice = 0;   // armed by progress_begin: only commands that stop at a boundary
            alarm(0);
            // a paste stops at its first error or Ctrl-C, saying so: a question is answered by a person
            if ((failed || lrsh_interrupted) && next && next[strspn(next, " \t\r\n")]) {
                fputs_wrapped(lrsh_interrupted ? "(Ctrl-C: the rest of the paste was not run)\n"
                                               : "(the rest of the paste was not run)\n", talk);
                break;
            }
        }
        free(line);
        if (line_failed) drop_typed_ahead(talk);
    }
    if (restore_tty) tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
    s->interactive = 0;
    return failed;
}
