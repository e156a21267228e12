// cmd_data.c — the tokenizer and data commands: tok train|load|encode|decode, data load.
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>
#include "commands.h"
#include "../engine/tempfile.h"
#include "output.h"

// snprintf that fails on a path too long for its buffer instead of cutting it short.
static int path_printf(Err *err, char *out, size_t size, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int path_printf(Err *err, char *out, size_t size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, size, fmt, ap);
    va_end(ap);
    return n >= 0 && (size_t)n < size ? 0 : err_set(err, "path too long: %.60s…", out);
}

// "~/x" → "$HOME/x": paths typed at the prompt are not seen by a shell that would expand them.
const char *expand_path(const char *in, char *out, size_t size) {
    const char *home = getenv("HOME");
    // one that does not fit stays as typed (it was cut short and saved as another name): the
    // file system then says it finds no "~" folder, rather than lrsh writing somewhere else
    if (in[0] == '~' && (in[1] == '/' || in[1] == '\0') && home && snprintf(out, size, "%s%s", home, in + 1) < (int)size)
        return out;
    return in;
}

const char *file_read_only(const char *path, const struct stat *st) {
    if ((st->st_mode & (S_IWUSR | S_IWGRP | S_IWOTH)) && access(path, W_OK) == 0) return NULL;
    return st->st_uid == geteuid() || geteuid() == 0 ? "another name, or chmod u+w it first"
                                   : "another name: only its owner can make it writable";
}

int check_writable_file(const char *path, Err *err) {
    char folder[1024];
    snprintf(folder, sizeof folder, "%s", path);
    char *slash = strrchr(folder, '/');
    if (slash == folder) folder[1] = '\0';   // a file in /
    else if (slash) *slash = '\0';
    else snprintf(folder, sizeof folder, ".");
    if (access(folder, W_OK) != 0) return err_set(err, "cannot write %s: %s", path, strerror(errno));
    struct stat st;
    if (stat(path, &st) != 0) return 0;   // a new file
    if (S_ISDIR(st.st_mode)) return err_set(err, "cannot write %s: it is a folder", path);
    if (!S_ISREG(st.st_mode))   // writing a file there would replace a device (/dev/null) or hang on a pipe
        return err_set(err, "cannot write %s: it exists and is not a regular file (a device, pipe or socket)", path);
    const char *read_only = file_read_only(path, &st);
    if (read_only) return err_set(err, "cannot write %s: it is read-only (%s)", path, read_only);
    return 0;
}

int file_through_link(const char *path, char out[PATH_MAX], Err *err) {
    struct stat link;
    long planted = link_planted(path);
    if (planted)
        return err_set(err, "%s: " LINK_PLANTED_WHY, path, planted - 1);
    if (lstat(path, &link) == 0 && S_ISLNK(link.st_mode))
        return realpath(path, out) ? 0 : err_set(err, "%s is a symbolic link %s", path,
                                                   errno == ELOOP ? "in a loop" : "to a missing file");
    if (strlen(path) >= PATH_MAX) return err_set(err, "%s: the path is too long", path);
    strcpy(out, path);
    return 0;
}

// The default corpus, written once into the cache folder and reused afterwards.
static int default_corpus(Session *s, char *path, size_t size, Err *err) {
    if (session_cache_dir(path, size, err) != 0) return -1;
    size_t n = strlen(path);
    if (path_printf(err, path + n, size - n, "/fortunes.txt") != 0) return -1;
    struct stat st;
    if (stat(path, &st) == 0 && st.st_size > 0) return 0;
    out_note(s, "writing the default corpus (Debian fortunes) to %s\n", NAME_TEXT(path));
    return dataset_default_corpus(path, err);
}

// The corpus a command names, or the default one.
static int corpus_path(Session *s, const Args *a, char *path, size_t size, Err *err) {
    if (a->n_pos == 0) return default_corpus(s, path, size, err);
    if (!*a->pos[0]) return err_set(err, "\"\" names no file (leave the file out for the default corpus)");
    char buf[PATH_MAX];
    return path_printf(err, path, size, "%s", expand_path(a->pos[0], buf, sizeof buf));
}

// Windows line endings in the first MB of a corpus file: the tokenizer keeps every byte (for
// exact round trips), so '\r' becomes a piece the model learns and generates. Said, not changed.
static int file_has_crlf(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    static char buf[1 << 16];   // (the shell's one thread)
    long crlf = 0, lines = 0;
    size_t n;
    char last = 0;
    for (int chunk = 0; chunk < 16 && (n = fread(buf, 1, sizeof buf, f)) > 0; chunk++)
        for (size_t i = 0; i < n; last = buf[i++])
            if (buf[i] == '\n') lines++, crlf += last == '\r';
    fclose(f);
    return crlf > 0 && crlf * 2 >= lines;
}

static void note_crlf(Session *s, const char *path) {
    static const char why[] = "'\\r' is text to the tokenizer and the model, which will generate it (convert with "
                              "`sed -i 's/\\r$//' FILE` for plain line ends)";
    struct stat st;
    if (stat(path, &st) != 0) return;
    if (S_ISREG(st.st_mode) && file_has_crlf(path))
        out_note(s, "note: %s has Windows (CRLF) line endings: %s\n", NAME_TEXT(path), why);
    char **files;
    size_t count, n = 0, first = 0;
    Err ignored;   // a folder data load cannot list: its own error says why
    if (!S_ISDIR(st.st_mode) || dataset_source_files(path, &files, &count, &ignored) != 0) return;
    for (size_t i = 0; i < count && i < 1000; i++)   // the first thousand files: a note, not an audit
        if (file_has_crlf(files[i]) && n++ == 0) first = i;
    if (n > 0)
        out_note(s, "note: %zu of the folder's .txt files ha%s Windows (CRLF) line endings (%s%s): %s\n", n,
                 n == 1 ? "s" : "ve", n == 1 ? "" : "one: ", NAME_TEXT(files[first]), why);
    dataset_files_free(files, count);
}

// A corpus right in the cache folder (the default corpus), not in a folder beneath it nor in
// one whose name only starts the same (…/lrsh2/).
static int in_cache_dir(const char *real_corpus, const char *dir) {
    char real_dir[PATH_MAX];
    if (!realpath(dir, real_dir)) return 0;
    size_t n = strlen(real_dir);
    return strncmp(real_corpus, real_dir, n) == 0 && real_corpus[n] == '/' && !strchr(real_corpus + n + 1, '/');
}

// <cache>/<stem of corpus>-<hash of its path>-<type><vocab>.model (no hash in the cache folder)
static int default_model_path(const char *corpus, const char *type, int vocab, char *out, size_t size, Err *err) {
    char dir[1024], stem[256], where[PATH_MAX], tag[16] = "";
    if (session_cache_dir(dir, sizeof dir, err) != 0) return -1;
    const char *base = strrchr(corpus, '/');
    snprintf(stem, sizeof stem, "%.200s", base ? base + 1 : corpus);  // a long name: its start will do
    char *dot = strrchr(stem, '.');
    if (dot && dot != stem) *dot = '\0';
    if (!stem[0]) snprintf(stem, sizeof stem, "corpus");
    // two corpora of one name in two folders get two tokenizers: the path's hash in the name
    // (not for the default corpus, which lives in the cache folder itself)
    if (realpath(corpus, where) && !in_cache_dir(where, dir)) {
        uint32_t h = 2166136261u;   // FNV-1a of the corpus's full path
        for (const char *p = where; *p; p++) h = (h ^ (unsigned char)*p) * 16777619u;
        snprintf(tag, sizeof tag, "-%08x", h);
    }
    return path_printf(err, out, size, "%s/%s%s-%s%d.model", dir, stem, tag, type, vocab);
}

// Make tok the session's tokenizer; the loaded data was tokenized with the old one, unless the
// two are the same model (`tok load` of the file already loaded).
static void use_tokenizer(Session *s, Tokenizer *tok, const char *path) {
    int same = s->tok && session_same_tokenizer(s->tok, tok);
    int trained = s->has_trainer ? s->trainer.step > 0 : s->resume.step > 0;
    Tokenizer *old = s->tok;
    s->tok = tok;
    // the model's own tokenizer stays with it (for `model save`) while another one is the session's
    if (!same && !s->model_tok && s->has_model && (s->model_tok_embedded || trained)) s->model_tok = old, old = NULL;
    tokenizer_free(old);
    int back = s->model_tok && session_same_tokenizer(s->model_tok, tok);
    if (back) tokenizer_free(s->model_tok), s->model_tok = NULL;
    snprintf(s->tok_path, sizeof s->tok_path, "%s", path);
    s->tok_embedded = 0;
    if (!same) session_drop_data(s, "it was tokenized with the previous tokenizer");
    int vocab = tokenizer_vocab_size(tok);
    out_text(s, "tokenizer %s (vocab %d)\n", NAME_TEXT(path), vocab);
    if (back) out_note(s, "the model's own tokenizer again\n");
    else if (!same && s->model_tok)
        out_note(s, "note: the model was %s another tokenizer: it reads these ids as other pieces of text. `model "
                    "save` still embeds its own; `tok load` of that one gives it back; `model new` builds a model for "
                    "this one\n", s->model_tok_embedded ? "loaded with" : "trained with");
    cJSON_AddStringToObject(s->result, "path", path);
    cJSON_AddNumberToObject(s->result, "vocab", vocab);
}

// Whether path is an lrsh checkpoint, by its header (what `model load` reads first).
static int is_checkpoint(const char *path) {
    CheckpointInfo info;
    return checkpoint_probe(path, &info, NULL) == 0;
}

// Training takes a while: fail first if the corpus cannot be read or the model not written.
// out= is written over only when it is a tokenizer: a typo must not turn the corpus, a
// checkpoint or any other file into a SentencePiece model.
static int tok_train_can_run(const char *corpus, const char *out, Err *err) {
    struct stat c;
    if (stat(corpus, &c) != 0) return err_set(err, "tok train: cannot read %s: %s", corpus, strerror(errno));
    if (S_ISDIR(c.st_mode))
        return err_set(err, "tok train: %s is a folder; tok train reads one text file (`data load` reads a folder: "
                            "train on one of its files, or on them joined with cat)", corpus);
    if (!S_ISREG(c.st_mode))   // a pipe would be waited on for ever, a device read without end
        return err_set(err, "tok train: %s is not a regular file (a pipe or a device)", corpus);
    FILE *f = fopen(corpus, "r");
    if (!f) return err_set(err, "tok train: cannot read %s: %s", corpus, strerror(errno));
    fclose(f);
    struct stat so, sc;
    if (stat(out, &so) == 0 && S_ISREG(so.st_mode)) {
        if (stat(corpus, &sc) == 0 && so.st_dev == sc.st_dev && so.st_ino == sc.st_ino)
            return err_set(err, "tok train: out=%s is the corpus itself; nothing was trained (choose another out=)", out);
        Err ignored;
        Tokenizer *old = so.st_size > 0 ? tokenizer_load(out, &ignored) : NULL;
        if (!old && so.st_size > 0)
            return err_set(err, "tok train: out=%s exists and is not a tokenizer%s; nothing was trained (only a "
                           "tokenizer is written over: choose another out= or remove the file)", out,
                           is_checkpoint(out) ? " (a checkpoint)" : "");
        tokenizer_free(old);
    }
    if (check_writable_file(out, err) != 0) return err_wrap(err, "tok train: ", " (nothing was trained)");
    return 0;
}

int cmd_tok_train(Session *s, const Args *a, Err *err) {
    char corpus[PATH_MAX], out[PATH_MAX], buf[PATH_MAX];
    if (corpus_path(s, a, corpus, sizeof corpus, err) != 0) return -1;
    int vocab = (int)args_int(a, "vocab", 8192);
    const char *type = args_str(a, "type", "bpe");
    if (args_has(a, "out")) {
        if (path_printf(err, out, sizeof out, "%s", expand_path(args_str(a, "out", ""), buf, sizeof buf)) != 0)
            return -1;
    } else if (default_model_path(corpus, type, vocab, out, sizeof out, err) != 0) {
        return -1;
    }
    char target[PATH_MAX];   // out= a link to a file: write that file (the rename would replace the link)
    if (file_through_link(out, target, err) != 0) return err_wrap(err, "tok train: out=", ": nothing was trained");
    if (path_printf(err, out, sizeof out, "%s", target) != 0) return -1;
    if (tok_train_can_run(corpus, out, err) != 0) return -1;
    out_note(s, "training a %s tokenizer (vocab %d) on %s\n", type, vocab, NAME_TEXT(corpus));
    note_crlf(s, corpus);
    TokenizerType t = strcmp(type, "unigram") == 0 ? TOKENIZER_UNIGRAM : TOKENIZER_BPE;
    Tokenizer *tok = tokenizer_train(corpus, vocab, t, out, progress_stop_on_interrupt, NULL, err);
    if (!tok && lrsh_interrupted)   // the training was stopped: nothing written, nothing changed
        return err_set(err, "tok train interrupted: nothing was written; the session keeps its tokenizer and data");
    if (!tok) return -1;
    use_tokenizer(s, tok, out);
    cJSON_AddStringToObject(s->result, "type", type);
    cJSON_AddStringToObject(s->result, "corpus", corpus);
    return 0;
}

int cmd_tok_load(Session *s, const Args *a, Err *err) {
    if (!*a->pos[0]) return err_set(err, "tok load needs a file name (tok load PATH): \"\" names none");
    char buf[PATH_MAX];
    const char *path = expand_path(a->pos[0], buf, sizeof buf);
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))   // a pipe would be waited on for ever
        return err_set(err, "%s is not a file: `tok load` reads a SentencePiece model file", path);
    Tokenizer *tok = tokenizer_load(path, err);
    if (!tok && is_checkpoint(path))
        return err_wrap(err, "", " — it is a checkpoint: `model load` brings the tokenizer embedded in it");
    if (!tok) return -1;
    use_tokenizer(s, tok, path);
    return 0;
}

// The positionals joined by single spaces: `tok encode Hello, world` means "Hello, world".
char *join_words(const Args *a) {
    size_t len = 1;
    for (int i = 0; i < a->n_pos; i++) len += strlen(a->pos[i]) + 1;
    char *text = malloc(len), *p = text;
    if (!text) return NULL;
    for (int i = 0; i < a->n_pos; i++) p += sprintf(p, "%s%s", i ? " " : "", a->pos[i]);
    *p = '\0';
    return text;
}

int cmd_tok_encode(Session *s, const Args *a, Err *err) {
    if (session_need_tokenizer(s, err) != 0) return -1;
    char *text = join_words(a);
    if (!text) return err_set(err, "out of memory");
    int32_t *ids = NULL;
    long n = tokenizer_encode(s->tok, text, strlen(text), &ids, err);
    free(text);
    if (n < 0) return -1;
    cJSON *list = cJSON_AddArrayToObject(s->result, "ids");
    OutLine line = {0};
    for (long i = 0; i < n; i++) {
        line_add(&line, "%s%d", i ? " " : "", ids[i]);
        cJSON_AddItemToArray(list, cJSON_CreateNumber(ids[i]));
    }
    line_out(s, &line);
    out_note(s, "(%ld token%s)\n", n, n == 1 ? "" : "s");
    cJSON_AddNumberToObject(s->result, "n", (double)n);
    free(ids);
    return 0;
}

// Ids separated by spaces, commas or brackets ("[1, 2]" as a JSON list prints them).
static long parse_ids(const Args *a, int vocab, int32_t **out, Err *err) {
    long n = 0, cap = 16;
    int32_t *ids = malloc(cap * sizeof *ids);
    for (int i = 0; ids && i < a->n_pos; i++) {
        for (const char *p = a->pos[i]; *p;) {
            if (isspace((unsigned char)*p) || strchr(",[]", *p)) { p++; continue; }
            char *end;
            long id = strtol(p, &end, 10);
            if (end == p || (*end && !isspace((unsigned char)*end) && !strchr(",[]", *end))) {
                free(ids);
                return err_set(err, "tok decode: '%s' is not a list of token ids", a->pos[i]);
            }
            if (id < 0 || id >= vocab) {   // as typed: strtol clamps what overflows
                free(ids);
                return err_set(err, "tok decode: id %.*s is outside the vocabulary [0, %d)", (int)(end - p), p, vocab);
            }
            if (n == cap) {
                int32_t *more = realloc(ids, (cap *= 2) * sizeof *ids);
                if (!more) { free(ids); return err_set(err, "out of memory"); }
                ids = more;
            }
            ids[n++] = (int32_t)id;
            p = end;
        }
    }
    if (!ids) return err_set(err, "out of memory");
    if (n == 0) {   // `tok decode ,,,` or `[]`: nothing to decode is a mistake, not an empty line
        free(ids);
        return err_set(err, "tok decode: no token ids given (ids separated by spaces or commas)");
    }
    *out = ids;
    return n;
}

int cmd_tok_decode(Session *s, const Args *a, Err *err) {
    if (session_need_tokenizer(s, err) != 0) return -1;
    int32_t *ids = NULL;
    long n = parse_ids(a, tokenizer_vocab_size(s->tok), &ids, err);
    if (n < 0) return -1;
    char *text = tokenizer_decode(s->tok, ids, n, err);
    free(ids);
    if (!text) return -1;
    out_visible(s, text, strlen(text));
    out_visible_end(s);
    out_text(s, "\n");
    cJSON_AddStringToObject(s->result, "text", text);
    free(text);
    return 0;
}

// A folder's load says how many files it read and what it left: files not named *.txt (a
// corpus of .md or .TXT files would otherwise train on a part of itself unseen), links not
// followed and second names of a file read once, paths too long to open.
static void folder_note(Session *s, const SourceListing *l) {
    if (!l->folder) return;
    char skipped[400] = "", links[160] = "", too_long[96] = "";
    if (l->skipped_files)
        snprintf(skipped, sizeof skipped, "; left out %d file%s not named *.txt (%s%s)", l->skipped_files,
                 l->skipped_files == 1 ? "" : "s", l->skipped_files == 1 ? "" : "such as ", NAME_TEXT(l->first_skipped));
    if (l->not_followed)
        snprintf(links, sizeof links, "; %d link%s not followed (to a file or folder read by another name, or to the "
                 "folder or above it)", l->not_followed, l->not_followed == 1 ? "" : "s");
    if (l->too_long)
        snprintf(too_long, sizeof too_long, "; %d entr%s left out: path%s longer than the system allows", l->too_long,
                 l->too_long == 1 ? "y" : "ies", l->too_long == 1 ? "" : "s");
    out_note(s, "read %ld .txt file%s%s%s%s\n", l->files,
             l->files == 1 ? "" : "s in sorted path order, a newline between files", skipped, links, too_long);
}

int cmd_data_load(Session *s, const Args *a, Err *err) {
    if (session_need_tokenizer(s, err) != 0) return -1;
    char path[1024];
    if (corpus_path(s, a, path, sizeof path, err) != 0) return -1;
    if (dataset_is_token_cache(path))
        return err_set(err, "%s is a token cache (a corpus's tokens, made by `data load`): load the corpus it was "
                            "made from", path);
    note_crlf(s, path);
    Dataset ds;
    memset(&ds, 0, sizeof ds);
    ProgressLine pl;
    progress_line_begin(&pl, s, "tokenizing", "MiB", 1 << 20);
    int rc = dataset_load_progress(&ds, path, s->tok, args_float(a, "val", 0.05), NULL, progress_engine, &pl, err);
    progress_end(&pl.p);
    if (rc != 0) return -1;   // Ctrl-C included: the engine names it, and the old data stays
    if (s->has_data) dataset_free(&s->data);  // only now: a failed load keeps the old data
    s->data = ds;
    s->has_data = 1;
    char n1[32], n2[32], n3[32], b[32];
    long val = ds.n_tokens - ds.n_train;
    out_text(s, "data %s: %s token%s (train %s, val %s); %s of text, %.2f bytes a token\n", NAME_TEXT(ds.source),
             fmt_count(n1, sizeof n1, ds.n_tokens), ds.n_tokens == 1 ? "" : "s", fmt_count(n2, sizeof n2, ds.n_train),
             fmt_count(n3, sizeof n3, val), fmt_bytes(b, sizeof b, (double)ds.source_bytes),
             (double)ds.source_bytes / (double)ds.n_tokens);
    folder_note(s, &ds.listing);
    // said now, not first at `train` or `eval`: a window is seq + 1 tokens (`set seq`, else the
    // model's context; with no model yet, the least any would take)
    long window = (s->seq ? s->seq : s->has_model ? s->model.cfg.seq : 1) + 1;
    int few_train = ds.n_train < window, few_val = val < window && args_float(a, "val", 0.05) > 0;   // (val=0 asks for none)
    if (few_train && few_val)
        out_warning(s, "the training split has %ld token%s and the validation split %ld: training and eval need a "
                       "window of seq+1 = %ld (a longer corpus, or a smaller seq)", ds.n_train,
                    ds.n_train == 1 ? "" : "s", val, window);
    else if (few_train || few_val)
        out_warning(s, "the %s split has %ld token%s: %s needs a window of seq+1 = %ld (a longer corpus, another "
                       "val=, or a smaller seq)", few_train ? "training" : "validation", few_train ? ds.n_train : val,
                    (few_train ? ds.n_train : val) == 1 ? "" : "s", few_train ? "training" : "eval", window);
    out_note(s, "token cache %s (%s)\n", NAME_TEXT(ds.cache_path),
             ds.reused_cache ? "reused"
             : ds.older_cache ? "built again over an older lrsh's cache, whose tokens differ for folders and "
                                "byte-order marks"
                              : "built");
    if (s->has_model && s->model.cfg.vocab > ds.vocab_size)   // `model new` before `tok train`: it works, but
        out_note(s, "note: the model's vocabulary (%d) is larger than the data's (%d): %d of its outputs are never a "
                    "target yet share the probability, so losses and perplexities start higher than the data's "
                    "%d tokens allow (`model new` now takes the tokenizer's vocabulary)\n",
                 s->model.cfg.vocab, ds.vocab_size, s->model.cfg.vocab - ds.vocab_size, ds.vocab_size);
    cJSON_AddStringToObject(s->result, "source", ds.source);
    cJSON_AddNumberToObject(s->result, "tokens", ds.n_tokens);
    cJSON_AddNumberToObject(s->result, "train", ds.n_train);
    cJSON_AddNumberToObject(s->result, "val", val);
    cJSON_AddNumberToObject(s->result, "source_bytes", (double)ds.source_bytes);
    cJSON_AddNumberToObject(s->result, "files", (double)ds.listing.files);
    cJSON_AddNumberToObject(s->result, "skipped_files", ds.listing.skipped_files);
    cJSON_AddNumberToObject(s->result, "not_followed", ds.listing.not_followed);
    cJSON_AddStringToObject(s->result, "cache", ds.cache_path);
    cJSON_AddBoolToObject(s->result, "reused", ds.reused_cache);
    return 0;
}
