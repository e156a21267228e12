// main.c — lrsh's command line: options, then one of the modes: commands given with -c,
// script files, lines piped on stdin, or the interactive prompt.
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <omp.h>
#include <signal.h>
#include <stdarg.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "commands.h"
#include "../engine/number.h"
#include "../engine/tempfile.h"
#include "output.h"
#include "prompt.h"
#include "../kernels/cpu/blas_check.h"

#define EXIT_USAGE 2
#define EXIT_INTERRUPTED 130
#define MAX_THREADS 4096   // --threads and `set threads` take up to this many

typedef struct Options {
    int json, quiet, threads;
    int cuda;                 // --device cuda
    int no_default;           // --no-default: the prompt starts without the bundled model
    uint64_t seed;
    int seed_given;           // --seed: it wins over the bundled model's
    const char *command;   // -c
    char **files;          // scripts, in order
    int n_files;
} Options;

static void usage(FILE *to) {
    fprintf(to,
            "usage: lrsh [options] [FILE.lrsh ...]\n"
            "       lrsh [options] -c 'command; command ...'\n"
            "\n"
            "With no FILE and no -c, lrsh opens a prompt on a terminal, or reads commands from\n"
            "stdin when it is a pipe. Scripts and -c stop at the first failed command and exit\n"
            "non-zero (`set errexit off` goes on to the end, as make -k does, and the status is\n"
            "still 1 when a command failed).\n"
            "\n"
            "The prompt starts with the bundled model loaded (models/default.safetensors next to\n"
            "the lrsh program, or $LRSH_DEFAULT_MODEL), so `generate` works at once. Scripts, -c\n"
            "and pipes start empty, so that they run the same wherever they run.\n"
            "\n"
            "options:\n"
            "  -c COMMANDS      run COMMANDS (separated by `;` or newlines) and exit\n"
            "  --json           one JSON object per result on stdout; human text on stderr\n"
            "  -q, --quiet      no notes or progress lines\n"
            "  --seed N         seed for models, training batches and sampling (default %s;\n"
            "                   the prompt takes the bundled model's, 1, as `model load`\n"
            "                   takes a file's)\n"
            "  --threads N      CPU threads (default: all cores, or OMP_NUM_THREADS when set)\n"
            "  --device D       cpu (default) or cuda\n"
            "  --no-default     open the prompt without loading the bundled model\n"
            "  -h, --help       this text\n"
            "  -V, --version    version and backends\n"
            "\n"
            "Inside lrsh, `help` lists the commands and `help COMMAND` shows one.\n",
            opt_find(settings, "seed")->def);
}

static int number_arg(const char *opt, const char *v, long long max, long long *out, Err *err) {
    char *end;
    if (!v) return err_set(err, "%s needs a value", opt);
    errno = 0;
    *out = strtoll(v, &end, 10);
    if (!*v || *end || *out < 0 || *out > max || errno == ERANGE) {
        char hint[96];   // "1,000": without separators, as the options inside lrsh say it
        parse_number_hint(v, 1, hint, sizeof hint);
        return err_set(err, "%s expects an integer from 0 to %lld, got '%s'%s", opt, max, v, hint);
    }
    return 0;
}

static int device_arg(const char *v, int *cuda, Err *err) {
    if (!v) return err_set(err, "--device needs a value (cpu or cuda)");
    if (strcmp(v, "cpu") == 0 || strcmp(v, "cuda") == 0) {
        *cuda = strcmp(v, "cuda") == 0;
        return 0;
    }
    return err_set(err, "--device expects cpu or cuda, got '%s'", v);
}

// "--seed=5" and "--seed 5" both work; *i advances past a separate value.
static const char *option_value(int argc, char **argv, int *i, const char *name) {
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) == 0 && argv[*i][n] == '=') return argv[*i] + n + 1;
    return *i + 1 < argc ? argv[++*i] : NULL;
}

static int is_option(const char *arg, const char *name) {
    size_t n = strlen(name);
    return strncmp(arg, name, n) == 0 && (arg[n] == '\0' || arg[n] == '=');
}

// Returns -1 to exit with success (--help, --version), EXIT_USAGE on a bad option (err says
// which), else 0.
static int parse_options(int argc, char **argv, Options *o, Err *err) {
    long long v;
    int i = 1, dashdash = 0;
    for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) { i++, dashdash = 1; break; }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) { usage(stdout); return -1; }
        if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
#ifdef LRSH_CUDA
            printf("lrsh %s (backends: cpu, cuda)\n", LRSH_VERSION);
#else
            printf("lrsh %s (backends: cpu; built with CUDA=0 or without nvcc)\n", LRSH_VERSION);
#endif
            return -1;
        }
        if (strcmp(a, "--json") == 0) o->json = 1;
        else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) o->quiet = 1;
        else if (strcmp(a, "--no-default") == 0) o->no_default = 1;
        else if (strcmp(a, "-c") == 0) {
            if (i + 1 >= argc) return err_set(err, "-c needs commands"), EXIT_USAGE;
            if (o->command)   // the first would be dropped unseen
                return err_set(err, "-c given twice: one -c takes several commands ('a; b' or a line each)"), EXIT_USAGE;
            o->command = argv[++i];
        } else if (is_option(a, "--seed")) {
            if (number_arg("--seed", option_value(argc, argv, &i, "--seed"), SEED_MAX, &v, err) != 0) return EXIT_USAGE;
            o->seed = (uint64_t)v;
            o->seed_given = 1;
        } else if (is_option(a, "--threads")) {
            if (number_arg("--threads", option_value(argc, argv, &i, "--threads"), MAX_THREADS, &v, err) != 0) return EXIT_USAGE;
            o->threads = (int)v;
        } else if (is_option(a, "--device")) {
            if (device_arg(option_value(argc, argv, &i, "--device"), &o->cuda, err) != 0) return EXIT_USAGE;
        } else {
            return err_set(err, "unknown option '%s' (lrsh --help lists them)", a), EXIT_USAGE;
        }
    }
    // `lrsh sweep.lrsh --json`: refused before any script runs (it ran them all in text mode,
    // then failed on the "file" --json). After `--` every name is a file.
    for (int j = i + 1; j < argc && !dashdash; j++)
        if (argv[j][0] == '-' && argv[j][1] && access(argv[j], F_OK) != 0)
            return err_set(err, "%s after the script %s: options go before the scripts (lrsh [options] [script…])",
                           argv[j], argv[i]), EXIT_USAGE;
    o->files = argv + i;
    o->n_files = argc - i;
    return 0;
}

// ---- modes --------------------------------------------------------------------------------

// Whether bytes of input wait to be read: in in's buffer, or in its file (a pipe's next line).
static int input_pending(FILE *in) {
#ifdef __GLIBC__
    if (in->_IO_read_ptr < in->_IO_read_end) return 1;
#endif
    struct pollfd pfd = {.fd = fileno(in), .events = POLLIN};
    return poll(&pfd, 1, 0) > 0 && (pfd.revents & POLLIN);
}

#define MAX_SCRIPT_LINE (1 << 20)        // 1 MiB: far past any command
#define MAX_SCRIPT_SKIP ((size_t)64 << 20)   // bytes with no line break: not a script (/dev/zero)

// getline with a limit: the line's length; -1 at the end of in; -2 for a line longer than
// MAX_SCRIPT_LINE, read through to its end and dropped; -3 when MAX_SCRIPT_SKIP bytes pass
// with no line break (`lrsh /dev/zero` grew without bound); -4 when Ctrl-C came while waiting
// (-5: when it came as the input ended, nothing of a line read). With keep_reading (`set
// interrupt command`) a Ctrl-C while nothing was sent stops nothing (no command runs), and one
// that came after a line was sent is left for that line's command.
static ssize_t read_script_line(FILE *in, char **line, size_t *cap, int keep_reading) {
    size_t n = 0;
    int c;
    if (keep_reading && !input_pending(in)) interrupts_drop();   // came while nothing was sent
    for (;;) {
        errno = 0;
        if ((c = getc(in)) == EOF) {
            if (keep_reading) {   // a Ctrl-C while waiting: the line being sent keeps it, else none
                if (n == 0 && !input_pending(in)) interrupts_drop();
                if (ferror(in) && errno == EINTR) { clearerr(in); continue; }
                break;
            }
            // Ctrl-C ends a pipeline's writer too: its EOF may come first (the read restarted)
            if (lrsh_interrupted) return n ? -4 : -5;
            if (!ferror(in) || errno != EINTR) break;
            clearerr(in);   // a signal while waiting for bytes: Ctrl-C stops the script here, as in sh
            if (lrsh_interrupted) return -4;   // (a line cut short must not run as if it were whole)
            continue;
        }
        if (n + 2 > *cap && n + 2 <= MAX_SCRIPT_LINE) {
            size_t grown = *cap ? 2 * *cap : 256;
            char *p = realloc(*line, grown);
            if (!p) return -2;
            *line = p, *cap = grown;
        }
        if (n + 2 <= MAX_SCRIPT_LINE) (*line)[n] = (char)c;
        n++;
        if (c == '\n') break;
        if (n >= MAX_SCRIPT_SKIP) return -3;
    }
    if (n == 0) return -1;
    if (n + 1 > MAX_SCRIPT_LINE) return -2;
    (*line)[n] = '\0';
    return (ssize_t)n;
}

// Whether a Ctrl-C ends the script: under `set interrupt command` it stopped only the command
// (run_command takes the ones that came while it ran), and the script reads on.
static int interrupt_ends_script(void) { return lrsh_interrupted && !lrsh_interrupt_command; }

// The first carriage return alone in line outside quotes (" with its \ escapes, and '), or NULL.
// A CR before the \n (Windows) or at the input's end is the line's end, as the parser takes it;
// one inside quotes is text (tok encode "a\rb").
static char *lone_cr(char *line) {
    char quote = 0;
    for (char *p = line; *p; p++) {
        if (quote == '"' && *p == '\\' && p[1]) p++;
        else if (quote && *p == quote) quote = 0;
        else if (!quote && (*p == '"' || *p == '\'')) quote = *p;
        else if (!quote && *p == '\r' && p[1] && p[1] != '\n') return p;
    }
    return NULL;
}

// A line read up to its \n that holds carriage returns alone (a classic Mac file is all one such
// "line"): each CR outside quotes ends a line of its own, numbered as such.
static int run_cr_lines(Session *s, char *line) {
    int failed = 0;
    for (char *cr; (cr = lone_cr(line)); line = cr + 1, s->src_line++) {
        *cr = '\0';
        if (run_line(s, line) != 0) {
            failed = 1;
            if (s->errexit) return -1;
        }
        if (interrupt_ends_script() || s->quit) return failed ? -1 : 0;
    }
    return run_line(s, line) != 0 || failed ? -1 : 0;
}

// Lines from a script or a pipe; stops at the first failure under errexit. Returns the exit
// status.
static int run_stream(Session *s, FILE *in, const char *name) {
    char *line = NULL;
    size_t cap = 0;
    int failed = 0;
    s->src_name = name;
    s->src_line = 0;
    ssize_t n;
    while (!s->quit && (n = read_script_line(in, &line, &cap, lrsh_interrupt_command)) != -1) {
        s->src_line++;
        if (n == -4 || n == -5) {   // Ctrl-C while the next line was coming: none of it runs
            if (n == -4) fprintf(stderr, "%s:%d: interrupted (before this line ran)\n", name, s->src_line);
            else fprintf(stderr, "%s: interrupted (waiting for line %d)\n", name, s->src_line);
            free(line);
            return EXIT_INTERRUPTED;
        }
        if (n == -3) {   // not a script: nothing after it can be read as lines either
            out_error(s, NULL, "", "64 MiB without a line break: not a script; the rest was not read");
            failed = 1;
            break;
        }
        if (n == -2) {
            out_error(s, NULL, "", "a line longer than 1 MiB: it was not run");
            failed = 1;
            if (s->errexit) break;
            continue;
        }
        if (n >= 2 && (memcmp(line, "\xFF\xFE", 2) == 0 || memcmp(line, "\xFE\xFF", 2) == 0)) {
            // every line of it would hold NUL bytes: say why once (also for a second file in a pipe)
            out_error(s, NULL, "", "the script is UTF-16 (Notepad's \"Unicode\"): save it as UTF-8; nothing was run");
            failed = 1;
            break;
        }
        // a UTF-8 byte-order mark (some editors write one) is not part of the first command
        int bom = s->src_line == 1 && strncmp(line, "\xEF\xBB\xBF", 3) == 0;
        if ((size_t)n != strlen(line)) {   // a NUL byte would cut the line short unseen: none of it runs
            out_error(s, NULL, line + 3 * bom, "the line holds a NUL byte: it was not run");
            failed = 1;
            if (s->errexit) break;
            continue;
        }
        if (run_cr_lines(s, line + 3 * bom) != 0) {
            failed = 1;
            if (s->errexit && !interrupt_ends_script()) break;   // a command an interrupt stopped: said below
        }
        if (interrupt_ends_script()) {
            fprintf(stderr, "%s:%d: interrupted\n", name, s->src_line);
            free(line);
            return EXIT_INTERRUPTED;
        }
    }
    free(line);
    s->src_name = NULL;
    return failed;
}

// A failure before any command runs: the "lrsh: " line on stderr, and with --json also the
// error object on stdout, where a program reading the results looks.
static void startup_error(const Session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void startup_error(const Session *s, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "lrsh: %s\n", msg);
    if (s->json) out_error(s, "lrsh", "", msg);
}

// A bad option, as startup_error says it: the JSON object too when --json is among the
// options (before or after the bad one), where a program reading results looks.
static void usage_error(int argc, char **argv, const char *msg) {
    static const char *const with_value[] = {"-c", "--seed", "--threads", "--device"};   // "--seed 5"
    Session none;   // no session yet: only the flag startup_error reads
    memset(&none, 0, sizeof none);
    for (int i = 1; i < argc && argv[i][0] == '-' && strcmp(argv[i], "--") != 0; i++) {
        int takes = 0;
        none.json |= strcmp(argv[i], "--json") == 0;
        for (size_t k = 0; k < sizeof with_value / sizeof *with_value; k++) takes |= strcmp(argv[i], with_value[k]) == 0;
        i += takes;
    }
    startup_error(&none, "%s", msg);
}

// A regular file with a NUL byte in its first 4 KiB (a text script holds none; a checkpoint's or
// a tokenizer's binary numbers do at once). Reads them and goes back to the start; anything
// else (a pipe, a FIFO, <(…): its bytes read could not be read again) is taken for a script.
static int binary_file(FILE *f) {
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) return 0;
    char head[4096];
    size_t n = fread(head, 1, sizeof head, f);
    rewind(f);
    return memchr(head, '\0', n) != NULL;
}

static int run_file(Session *s, const char *path) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!f) {
        startup_error(s, "cannot open %s: %s", path, strerror(errno));
        return 1;
    }
    struct stat st;
    if (f != stdin && fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {   // fopen opens folders for reading
        startup_error(s, "%s is a folder, not a script", path);
        fclose(f);
        return 1;
    }
    const char *reader, *kind = f != stdin && binary_file(f) ? file_kind_lrsh_writes(path, &reader) : NULL;
    if (kind) {   // `lrsh run.safetensors`, as a program opens its files: said, not run line by line
        const char *q = strpbrk(path, " \t\\;#") ? "\"" : "";   // a name that needs quoting in the command
        if (reader && !strpbrk(path, "'\""))
            startup_error(s, "%s is %s, not a script: open it with lrsh -c '%s %s%s%s'", path, kind, reader, q, path, q);
        else if (reader) startup_error(s, "%s is %s, not a script: `%s` opens it", path, kind, reader);
        else startup_error(s, "%s is %s, not a script", path, kind);
        fclose(f);
        return 1;
    }
    int rc = run_stream(s, f, path);
    if (f != stdin) fclose(f);
    return rc;
}

// Since this command's first Ctrl-C: the notice below asked for, and shown.
static volatile sig_atomic_t stop_notice_armed, stop_notice_shown;

// A second after a Ctrl-C at a command that stops at a boundary (lrsh_stop_notice), if it still
// runs: say it was seen.
static void on_sigalrm(int sig) {
    (void)sig;
    static const char msg[] = "\n(Ctrl-C seen: stopping after the step, batch or round in progress; a third Ctrl-C leaves lrsh)\n";
    int saved = errno;
    if (lrsh_interrupted && lrsh_stop_notice) {
        ssize_t ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
        (void)ignored;
        stop_notice_shown = 1;
    }
    errno = saved;
}

static void on_sigint(int sig) {
    (void)sig;
    if (lrsh_interrupted == 0) stop_notice_armed = stop_notice_shown = 0;
    // Where a notice is due, presses before it count as one: three quick ones at a slow step left
    // lrsh, its unsaved training lost, before anything said a third would. (A first press before
    // the command armed its notice counted; the notice is asked for at the next.)
    if (lrsh_stop_notice && !stop_notice_shown) {
        if (!stop_notice_armed) stop_notice_armed = 1, alarm(1);
        if (lrsh_interrupted) return;
    }
    // A command that never reaches a step boundary: the third Ctrl-C leaves anyway.
    lrsh_sigints++;
    if (++lrsh_interrupted >= 3 && !lrsh_interrupt_command) {
        static const char msg[] = "\nlrsh: interrupted three times; leaving\n";
        ssize_t ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
        (void)ignored;
        tempfile_remove_all();   // a save cut short leaves no half-written temporary beside its file
        _exit(EXIT_INTERRUPTED);
    }
}

// One line on stderr as the signal ends lrsh at once: a batch job's output said nothing, and
// whether the model had been saved was left to guess. write(2) only: this runs in the handler.
static void say_ended(int sig) {
    const char *name = sigabbrev_np(sig);   // a static table's entry: no allocation
    static const char head[] = "\nlrsh: ended by SIG", tail[] = "; what was not saved is gone\n";
    ssize_t ignored = write(STDERR_FILENO, head, sizeof head - 1);
    if (name) ignored = write(STDERR_FILENO, name, strlen(name));
    ignored = write(STDERR_FILENO, tail, sizeof tail - 1);
    (void)ignored;
}

// An ending signal kept for after the work in progress (session_end_if_terminated), saying so.
static void defer_end(int sig, const char *msg) {
    int saved_errno = errno;   // the write may set it under the code the signal interrupted
    lrsh_term_signal = sig;
    ssize_t ignored = write(STDERR_FILENO, msg, strlen(msg));
    (void)ignored;
    errno = saved_errno;
}

// SIGTERM, SIGHUP (and SIGUSR1, SIGUSR2, SIGXCPU): the process ends as the signal asks, without
// the temporary file of a save or a token cache in the making beside it — or, during a training
// with save=, after that training stops at its step's end and saves (lrsh_term_saves); a second
// signal ends it at once.
static void on_fatal_signal(int sig) {
    // SIGXCPU comes again every CPU second past the soft limit: not a second request
    if (sig == SIGXCPU && lrsh_term_signal) return;
    if (lrsh_term_saves && !lrsh_term_signal) {
        lrsh_interrupted = 1;   // the loops' stop, as Ctrl-C's
        defer_end(sig, "\nlrsh: asked to end: the training stops at this step's end, saves to its save= file, then "
                       "lrsh ends (the same signal again ends it now, unsaved)\n");
        return;
    }
    if (lrsh_saving && !lrsh_term_signal) {   // `model save` writing: its file whole first
        defer_end(sig, "\nlrsh: asked to end: the save in progress finishes first, then lrsh ends (the same signal "
                       "again ends it now, unsaved)\n");
        return;
    }
    if (lrsh_writing_result && !lrsh_term_signal) {   // the result line's end first (print_json_line);
        lrsh_term_signal = sig;                       // a reader that stalls it: a second signal ends now
        return;
    }
    tempfile_remove_all();
    say_ended(sig);
    signal(sig, SIG_DFL);
    raise(sig);
}

// A reader that leaves (`lrsh … | head -1`) made the next write to stdout raise SIGPIPE, which
// ended the session silently with its unsaved training and a token cache half written. Caught,
// the write fails with EPIPE instead, which out_check_stdout reports once. A handler rather
// than SIG_IGN: programs lrsh starts (gnuplot) get the default back, as an ignored signal
// would not.
static void on_sigpipe(int sig) { (void)sig; }

// SIGHUP or SIGTERM ignored when lrsh started stays ignored: `nohup lrsh -c "…" &` ignores
// SIGHUP so that closing the terminal does not end a night's training (lrsh caught it again, and
// the run died with the terminal). Not SIGINT: sh starts a script's background jobs with it
// ignored, and `kill -INT` is how a script stops such an lrsh's command (as Ctrl-C would).
static void catch_unless_ignored(int sig, const struct sigaction *sa) {
    struct sigaction was;
    if (sigaction(sig, NULL, &was) == 0 && was.sa_handler == SIG_IGN) return;
    sigaction(sig, sa, NULL);
}

static void install_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;  // no SA_RESTART: a blocking read returns EINTR
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_sigalrm;
    sa.sa_flags = SA_RESTART;   // what the command was reading or writing goes on
    sigaction(SIGALRM, &sa, NULL);
    // SA_RESTART: a signal the handler defers (a training's save, a result line's end) leaves
    // the write it interrupted to finish; the others end lrsh in the handler itself
    sa.sa_flags = SA_RESTART;
    sa.sa_handler = on_fatal_signal;
    // each saves a training with save= before lrsh goes
    for (size_t i = 0; i < sizeof lrsh_ending_signals / sizeof *lrsh_ending_signals; i++)
        catch_unless_ignored(lrsh_ending_signals[i], &sa);
    sa.sa_handler = on_sigpipe;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGPIPE, &sa, NULL);
    // past a file-size limit (ulimit -f) a write fails with EFBIG, which the save and log paths
    // report, instead of the signal ending the process with no word
    signal(SIGXFSZ, SIG_IGN);
}

// ---- the bundled model --------------------------------------------------------------------

static int is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

// $LRSH_DEFAULT_MODEL, else models/default.safetensors in the program's folder, or in the folder
// above it (`make SAN=1` puts the program in build-san/). Returns 0 when the file exists; else
// out holds the first place looked at, for the message.
static int default_model_path(char *out, size_t size) {
    const char *env = getenv("LRSH_DEFAULT_MODEL");
    if (env && *env) {
        snprintf(out, size, "%s", env);
        return is_file(out) ? 0 : -1;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        snprintf(out, size, "models/default.safetensors");
        return is_file(out) ? 0 : -1;
    }
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) *slash = '\0';
    static const char *const places[] = {"%s/models/default.safetensors", "%s/../models/default.safetensors"};
    char found[PATH_MAX];
    for (int i = 0; i < 2; i++) {
        snprintf(out, size, places[i], exe);
        if (is_file(out) && realpath(out, found)) {  // `show` names the file without the ../
            snprintf(out, size, "%s", found);
            return 0;
        }
    }
    snprintf(out, size, places[0], exe);  // the message names the first place
    return -1;
}

// Load the bundled model through `model load` itself, silently: the banner says what came in.
// A missing or bad file costs one line, never the session.
static void load_default_model(Session *s, const Options *o) {
    char path[PATH_MAX + 32];
    if (default_model_path(path, sizeof path) != 0) {
        struct stat st;   // LRSH_DEFAULT_MODEL=/tmp: "no default model at /tmp" did not say what was wrong
        const char *env = getenv("LRSH_DEFAULT_MODEL");
        if (s->quiet) return;
        int there = stat(path, &st) == 0, loop = !there && errno == ELOOP;   // a FIFO, /dev/zero: "at" read as missing
        if ((there && !S_ISREG(st.st_mode)) || loop)
            fprintf(stderr, "lrsh: no default model: %s%s is %s, not a model file; starting empty\n",
                    env && *env ? "LRSH_DEFAULT_MODEL=" : "", NAME_TEXT(path),
                    loop ? "a symbolic link in a loop" : S_ISDIR(st.st_mode) ? "a folder"
                    : "a device, pipe or socket");
        else
            fprintf(stderr, "lrsh: no default model at %s; starting empty (`model load PATH` or `model new` make "
                            "one)\n", NAME_TEXT(path));
        return;
    }
    const char *pos[1] = {path};
    Args a;
    memset(&a, 0, sizeof a);
    a.n_pos = 1;
    a.pos = pos;
    Err err = {{0}};
    int json = s->json, quiet = s->quiet;
    s->json = s->quiet = 1;  // drops out_text and out_note: the load's report becomes the banner
    s->result = cJSON_CreateObject();
    int rc = cmd_model_load(s, &a, &err);
    cJSON_Delete(s->result);
    s->result = NULL;
    s->json = json;
    s->quiet = quiet;
    if (rc != 0) fprintf(stderr, "lrsh: default model not loaded (%s); starting empty\n", NAME_TEXT(err.msg));
    if (o->seed_given) s->seed = o->seed;   // asked for on the command line: not the model's
}

// -c's text: its lines one after another, as a script's (a newline separates commands as ';'
// does, and a '#' comment ends at the line's end).
static int run_command_text(Session *s, const char *text) {
    int failed = 0;
    s->src_name = "-c";   // errors say where: "-c:2"
    s->src_line = 0;
    for (const char *line = text; line && !s->quit && !interrupt_ends_script();) {
        const char *end = strchr(line, '\n');
        char *one = strndup(line, end ? (size_t)(end - line) : strlen(line));
        if (!one) return 1;
        s->src_line++;
        if (run_cr_lines(s, one) != 0) failed = 1;
        free(one);
        if (failed && s->errexit) break;
        line = end ? end + 1 : NULL;
    }
    if (lrsh_interrupted) fprintf(stderr, "-c:%d: interrupted\n", s->src_line);
    s->src_name = NULL;
    return failed;
}

static int run(Session *s, const Options *o) {
    if (o->command) {
        int rc = run_command_text(s, o->command);
        if (lrsh_interrupted) return EXIT_INTERRUPTED;
        if (rc || s->quit) return rc;
    }
    int failed = 0;
    for (int i = 0; i < o->n_files && !s->quit; i++) {
        int rc = run_file(s, o->files[i]);
        if (rc && (s->errexit || rc == EXIT_INTERRUPTED)) return rc;   // a script that set errexit off goes on
        failed |= rc != 0;
    }
    if (o->command || o->n_files) return failed;
    if (isatty(STDIN_FILENO)) {
        s->errexit = 0;
        if (!o->no_default) load_default_model(s, o);
        return prompt_loop(s);
    }
    return run_stream(s, stdin, "<stdin>");
}

// Started with stdin, stdout or stderr closed (`lrsh >&-`), the first file lrsh opened (a log,
// a token cache being written) took that number, and text meant for the terminal went into it.
// /dev/null holds each closed one, opened read-only: a write to stdout fails as it would have
// (said once, as for a full disk), and no file of lrsh's can take the place.
static void open_standard_fds(void) {
    for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; fd++) {
        if (fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
        int got = open("/dev/null", O_RDONLY);   // the lowest free number: fd itself
        if (got > fd) {
            dup2(got, fd);
            close(got);
        }
    }
}

// OMP_NUM_THREADS past MAX_THREADS: libgomp started that many threads at the first parallel
// region (100000 died of a segfault inside it, 50000 of "Thread creation failed"), a count
// --threads refuses. Bounded the same way before that region: one line, and one thread per
// core instead. Each value of a nested list ("2,100000") counts; libgomp itself reports a
// value that is no number.
static void bound_omp_threads(int argc, char **argv) {
    int threads_given = 0;   // --threads decides the count: the line says only what is ignored
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) threads_given |= is_option(argv[i], "--threads");
    const char *p = getenv("OMP_NUM_THREADS");
    while (p && *(p += strspn(p, " \t,"))) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(p, &end, 10);
        if (end == p || *p == '-' || errno == ERANGE) return;
        if (n > MAX_THREADS) {
            if (threads_given)
                fprintf(stderr, "lrsh: OMP_NUM_THREADS=%llu is past %d threads (what --threads takes): ignored\n", n,
                        MAX_THREADS);
            else
                fprintf(stderr, "lrsh: OMP_NUM_THREADS=%llu is past %d threads (what --threads takes): ignored; one "
                                "thread per core (%d) instead\n", n, MAX_THREADS, omp_get_num_procs());
            omp_set_num_threads(omp_get_num_procs());
            omp_set_max_active_levels(1);   // a nested level's count is not used either
            return;
        }
        p = end;
    }
}

// --help or --version into a full disk or a closed pipe: a line and a failure, not success.
static int options_exit(void) {
    if (fflush(stdout) == 0 && !ferror(stdout)) return 0;
    fprintf(stderr, "lrsh: cannot write to standard output (%s)\n", strerror(errno));
    return 1;
}

int main(int argc, char **argv) {
    open_standard_fds();   // before anything opens a file
    cpu_blas_ensure_core(argc, argv);  // may re-exec with OPENBLAS_CORETYPE set: before anything else
    bound_omp_threads(argc, argv);   // after the re-exec (said once), before the first parallel region
    Options o = {.seed = strtoull(opt_find(settings, "seed")->def, NULL, 10)};   // the settings table's default
    Err bad = {{0}};
    install_signals();   // SIGPIPE too: --help into `| head -1` is an error line, not a silent death
    int rc = parse_options(argc, argv, &o, &bad);
    if (rc > 0) usage_error(argc, argv, bad.msg);
    if (rc) return rc < 0 ? options_exit() : rc;
    Session s;
    Err err = {{0}};
    if (session_init(&s, o.threads, o.seed, &err) != 0) {
        fprintf(stderr, "lrsh: %s\n", err.msg);
        return 1;
    }
    s.json = o.json;
    s.quiet = o.quiet;
    if (o.cuda) {   // the engine computes on whatever Backend the session holds
        char why[256];
        const Backend *gpu = backend_cuda(why, sizeof why);
        if (!gpu) {
            startup_error(&s, "--device cuda: %s", why);
            session_free(&s);
            return EXIT_USAGE;
        }
        if (why[0]) out_warning(&s, "%s", why);
        if (session_apply_gpu_settings(&s, &err) != 0) {
            startup_error(&s, "--device cuda: %s", err.msg);
            session_free(&s);
            return 1;
        }
        s.be = gpu;
    }
    rc = run(&s, &o);
    int stopped = rc == EXIT_INTERRUPTED || (rc != 0 && s.errexit);
    if (stopped && !s.interactive && s.dirty) {
        // a script stopped (an error, Ctrl-C) before its `model save`: what it trained or changed goes, say so
        int step = session_step(&s);
        char gone[256];   // broken at spaces on a terminal, as every message is
        snprintf(gone, sizeof gone, "lrsh: the %s's unsaved work (training or changes, at step %d) is gone with the "
                 "session: the script stopped at %s\n", s.has_ensemble ? "ensemble" : "model", step,
                 rc == EXIT_INTERRUPTED ? "the interrupt" : "its error");
        fputs_wrapped(gone, stderr);
    }
    session_free(&s);
    out_check_stdout();
    return rc == 0 && out_stdout_lost() ? 1 : rc;   // the results did not all reach stdout
}
