// tokenizer.cpp — the extern "C" shim over SentencePiece: the only C++ in the tree.
// Every entry point catches every exception: a C caller must never see one unwind through it.
// The model is trained for exact round trips: identity normalization, no dummy prefix, no
// whitespace folding, "\n" as an atomic piece, byte fallback for whatever else is unseen, so
// decode(encode(text)) == text for any valid UTF-8 text that does not contain U+2581 ("▁").
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include <fcntl.h>
#include <omp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern "C" {
#include "tokenizer.h"
#include "../engine/tempfile.h"
}

// Declared in the library but not in its public header; it silences the training log
// (the engine never prints).
namespace sentencepiece { namespace logging { void SetMinLogLevel(int v); } }

struct Tokenizer {
    sentencepiece::SentencePieceProcessor sp;
    std::string bytes;  // the serialized ModelProto, what tokenizer_bytes hands out
};

// ---------------------------------------------------------------- UTF-8

// Length of the valid sequence starting at s[0] (1..4), or 0 when it is invalid or cut short.
static size_t utf8_sequence_length(const unsigned char *s, size_t avail) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t n;
    unsigned lo = 0x80, hi = 0xBF;  // allowed range of the second byte (rules out overlongs etc.)
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c == 0xE0) { n = 3; lo = 0xA0; }
    else if (c == 0xED) { n = 3; hi = 0x9F; }  // no UTF-16 surrogates
    else if (c >= 0xE1 && c <= 0xEF) n = 3;
    else if (c == 0xF0) { n = 4; lo = 0x90; }
    else if (c >= 0xF1 && c <= 0xF3) n = 4;
    else if (c == 0xF4) { n = 4; hi = 0x8F; }  // nothing above U+10FFFF
    else return 0;
    if (avail < n) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return n;
}

extern "C" int tokenizer_utf8_bidi_control(const char *text) {
    const unsigned char *p = (const unsigned char *)text;
    return p[0] == 0xe2 && ((p[1] == 0x80 && p[2] >= 0xaa && p[2] <= 0xae) || (p[1] == 0x81 && p[2] >= 0xa6 && p[2] <= 0xa9));
}

extern "C" size_t tokenizer_utf8_valid_prefix(const char *text, size_t len) {
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        if (s[i] < 0x80) { i++; continue; }  // fast path: ASCII
        size_t n = utf8_sequence_length(s + i, len - i);
        if (n == 0) break;
        i += n;
    }
    return i;
}

// ---------------------------------------------------------------- the training file

// Checks that path is a readable, non-empty, valid UTF-8 text file; streams it in 1 MB reads.
// A sequence cut by a read boundary is carried to the next read (at most 3 bytes).
static int check_text_file(const char *path, Err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return err_set(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    bool known = fstat(fileno(f), &st) == 0;
    if (!known || !S_ISREG(st.st_mode)) {
        fclose(f);
        if (known && S_ISDIR(st.st_mode))
            return err_set(err, "%s: a folder; tok train reads one text file (e.g. cat %s/*.txt > corpus.txt; "
                                "`data load` takes folders)", path, path);
        return err_set(err, "%s: not a regular file", path);
    }
    std::vector<char> buf(1 << 20);
    size_t carry = 0, base = 0;  // base: file offset of buf[0]
    bool has_text = false;       // a character other than whitespace was seen
    int rc = 0;
    for (;;) {
        size_t got = fread(buf.data() + carry, 1, buf.size() - carry, f);
        if (got == 0 && ferror(f)) { rc = err_set(err, "%s: read error: %s", path, strerror(errno)); break; }
        size_t len = carry + got;
        bool eof = got == 0 || feof(f);
        size_t ok = tokenizer_utf8_valid_prefix(buf.data(), len);
        for (size_t i = 0; i < ok && !has_text; i++)
            has_text = !strchr(" \t\r\n\v\f", buf[i]) || buf[i] == 0;
        if (ok < len && (eof || len - ok >= 4)) {
            rc = err_set(err, "%s: invalid UTF-8 at byte offset %zu", path, base + ok);
            break;
        }
        if (eof) break;
        carry = len - ok;  // an unfinished sequence at the end of this read
        memmove(buf.data(), buf.data() + ok, carry);
        base += ok;
    }
    fclose(f);
    if (rc == 0 && !has_text) rc = err_set(err, "%s: empty corpus (no text to train on)", path);
    return rc;
}

// ---------------------------------------------------------------- files

// Writes bytes to path through a temporary file, fsync, rename: never a half-written model.
static int write_file_atomic(const char *path, const std::string &bytes, Err *err) {
    AtomicFile af;
    const char *what;
    int e = atomic_file_open(&af, path, 0666, &what);   // one written over keeps its permissions
    if (e == 0 && fwrite(bytes.data(), 1, bytes.size(), af.f) != bytes.size()) {
        e = errno ? errno : EIO, what = "writing failed";
        atomic_file_abandon(&af);
    } else if (e == 0) {
        e = atomic_file_commit(&af, &what);
    }
    return e == 0 ? 0 : err_set(err, "%s: cannot write: %s (%s)", path, what, strerror(e));
}

static int read_file(const char *path, std::string *out, Err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return err_set(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return err_set(err, "%s: not a regular file", path);
    }
    out->resize((size_t)st.st_size);
    size_t got = out->empty() ? 0 : fread(&(*out)[0], 1, out->size(), f);
    int bad = ferror(f);
    fclose(f);
    if (bad || got != out->size()) return err_set(err, "%s: read error", path);
    return 0;
}

// ---------------------------------------------------------------- load

// One line from a SentencePiece status message (they can hold newlines).
static std::string one_line(const char *msg) {
    std::string s = msg ? msg : "unknown error";
    std::replace(s.begin(), s.end(), '\n', ' ');
    return s;
}

static Tokenizer *load_serialized(const std::string &bytes, const char *what, Err *err) {
    if (bytes.empty()) { err_set(err, "%s: empty tokenizer model", what); return nullptr; }
    Tokenizer *tok = new (std::nothrow) Tokenizer;
    if (!tok) { err_set(err, "%s: out of memory", what); return nullptr; }
    auto st = tok->sp.LoadFromSerializedProto(bytes);
    if (!st.ok()) {
        // its message names SentencePiece's own source lines: of no use at the prompt
        err_set(err, "%s: not a SentencePiece model (its bytes do not parse as one)", what);
        delete tok;
        return nullptr;
    }
    if (tok->sp.GetPieceSize() <= 0) {
        err_set(err, "%s: the model has no pieces", what);
        delete tok;
        return nullptr;
    }
    tok->bytes = bytes;
    return tok;
}

extern "C" Tokenizer *tokenizer_load(const char *model_path, Err *err) {
    try {
        std::string bytes;
        if (read_file(model_path, &bytes, err) != 0) return nullptr;
        return load_serialized(bytes, model_path, err);
    } catch (const std::exception &e) {
        err_set(err, "%s: %s", model_path, e.what());
    } catch (...) {
        err_set(err, "%s: unexpected error while loading the tokenizer", model_path);
    }
    return nullptr;
}

extern "C" Tokenizer *tokenizer_load_bytes(const void *bytes, size_t size, Err *err) {
    try {
        if (!bytes) size = 0;
        return load_serialized(std::string((const char *)bytes, size), "tokenizer bytes", err);
    } catch (const std::exception &e) {
        err_set(err, "tokenizer bytes: %s", e.what());
    } catch (...) {
        err_set(err, "tokenizer bytes: unexpected error while loading the tokenizer");
    }
    return nullptr;
}

// ---------------------------------------------------------------- train

// Training reads the corpus line by line and skips longer lines (SentencePiece's default: 4192).
#define MAX_TRAIN_LINE 16384

// The number after `key` in a SentencePiece message, or -1.
static long number_after(const std::string &msg, const char *key) {
    size_t at = msg.find(key);
    return at == std::string::npos ? -1 : strtol(msg.c_str() + at + strlen(key), nullptr, 10);
}

// SentencePiece's wording for the usual failures, turned into what a user can act on.
static void train_error(const char *path, int vocab, const std::string &msg, Err *err) {
    if (msg.find("Vocabulary size too high") != std::string::npos) {
        long most = number_after(msg, "value <= ");
        if (most < TOKENIZER_MIN_VOCAB)   // the 256 byte pieces and the specials take more than it offers
            err_set(err, "%s: corpus too small for any tokenizer (it supports at most %ld pieces, and the smallest "
                    "vocab is %d): use more varied text", path, most, TOKENIZER_MIN_VOCAB);
        else
            err_set(err, "%s: corpus too small for vocab=%d (it supports at most %ld): use a smaller vocab, or more "
                    "varied text (more of the same adds no pieces)", path, vocab, most);
    } else if (msg.find("smaller than required_chars") != std::string::npos) {
        long need = number_after(msg, " vs ");
        err_set(err, "%s: vocab=%d is too small for the characters in this corpus: use vocab >= %ld", path, vocab, need);
    } else if (msg.find("sentences_.empty()") != std::string::npos) {
        err_set(err, "%s: no line to train on: lines longer than %d bytes are skipped, so add line breaks",
                path, MAX_TRAIN_LINE);
    } else if (msg.find("null character") != std::string::npos) {
        err_set(err, "%s: the corpus contains NUL bytes", path);
    } else {
        err_set(err, "%s: tokenizer training failed: %s", path, msg.c_str());
    }
}

// threads: the shell's (--threads, set threads), which unigram training spreads over.
static std::unordered_map<std::string, std::string> train_args(const char *path, int vocab, TokenizerType type,
                                                               int threads) {
    return {
        {"input", path},
        {"model_type", type == TOKENIZER_UNIGRAM ? "unigram" : "bpe"},
        {"vocab_size", std::to_string(vocab)},
        {"byte_fallback", "true"},
        // rare characters go to byte pieces instead of taking vocab slots
        {"character_coverage", "0.9995"},
        // a sample of lines bounds training time and memory on a big corpus
        {"input_sentence_size", "200000"},
        {"shuffle_input_sentence", "true"},
        {"max_sentence_length", std::to_string(MAX_TRAIN_LINE)},
        {"num_threads", std::to_string(std::max(1, std::min(threads, 16)))},
        // exact round trips: keep the text as it is
        {"normalization_rule_name", "identity"},
        {"remove_extra_whitespaces", "false"},
        {"add_dummy_prefix", "false"},
        {"allow_whitespace_only_pieces", "true"},
        // training reads line by line, so "\n" is never seen: make it one piece of its own
        {"user_defined_symbols", "\n"},
        {"unk_id", "0"}, {"bos_id", "1"}, {"eos_id", "2"}, {"pad_id", "-1"},
        {"hard_vocab_limit", "true"},
    };
}

// The child's pipe, for child_terminate.
static const char out_of_memory[] = ": out of memory (a smaller vocab=, a smaller corpus, or more memory)";
static int child_fd = -1;
static const char *child_path;

static void write_all(int fd, const std::string &out) {
    for (size_t at = 0; at < out.size();) {
        ssize_t n = write(fd, out.data() + at, out.size() - at);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) _exit(1);
        at += (size_t)n;
    }
}

// An exception thrown in one of SentencePiece's worker threads is not ours to catch: it ends in
// std::terminate, which printed "terminate called after throwing …" and ended the child by
// SIGABRT. Send what it was as the error line instead (std::bad_alloc: out of memory), without
// allocating: memory may be what ran out.
[[noreturn]] static void child_terminate() {
    static std::atomic_flag once = ATOMIC_FLAG_INIT;
    if (once.test_and_set()) for (;;) pause();   // another thread is reporting: it ends the process
    const char *why = "";
    try {
        if (std::exception_ptr e = std::current_exception()) std::rethrow_exception(e);
    } catch (const std::bad_alloc &) {
        why = out_of_memory;
    } catch (...) {
    }
    static char msg[1200];
    int n = snprintf(msg, sizeof msg, "%c%s: tokenizer training failed%s", 1, child_path, why);
    for (int at = 0; n > 0 && at < n && at < (int)sizeof msg - 1;) {
        ssize_t k = write(child_fd, msg + at, (size_t)(n - at));
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        at += (int)k;
    }
    _exit(1);
}

// The child's side: train, then write one status byte and the model (0) or the error line (1)
// to fd. It never returns: _exit, so that none of the parent's buffers or exit handlers run twice.
[[noreturn]] static void train_child(int fd, pid_t parent, const char *path, int vocab, TokenizerType type,
                                     int threads) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);   // the shell ended by a signal (SIGTERM, SIGKILL): so does this
    if (getppid() != parent) _exit(1);   // it ended before that took effect
    signal(SIGINT, SIG_IGN);   // Ctrl-C is the parent's to act on: it kills this process
    signal(SIGTERM, SIG_DFL);  // not the parent's handler, which would remove the parent's temporary files
    signal(SIGHUP, SIG_DFL);
    child_fd = fd, child_path = path;
    std::set_terminate(child_terminate);
    std::string out(1, '\0');
    try {
        sentencepiece::logging::SetMinLogLevel(3);  // silence INFO/WARNING/ERROR: errors come back as status
        sentencepiece::SetRandomGeneratorSeed(1234);  // the sample of lines is the same on every run
        std::string model;
        // The model records the corpus's name as given (trainer_spec.input): from its folder, the
        // name alone, so the same corpus elsewhere gives the same tokenizer bytes (the child's
        // working folder is its own)
        const char *slash = strrchr(path, '/'), *input = path;
        if (slash && slash[1]) {
            std::string dir(path, slash == path ? 1 : (size_t)(slash - path));
            if (chdir(dir.c_str()) == 0) input = slash + 1;
        }
        auto st = sentencepiece::SentencePieceTrainer::Train(train_args(input, vocab, type, threads), nullptr, &model);
        if (st.ok()) {
            out += model;
        } else {
            Err e = {};
            train_error(path, vocab, one_line(st.message()), &e);
            out = std::string(1, '\1') + e.msg;
        }
    } catch (const std::bad_alloc &) {
        out = std::string(1, '\1') + path + ": tokenizer training failed" + out_of_memory;
    } catch (const std::exception &e) {
        out = std::string(1, '\1') + path + ": tokenizer training failed: " + e.what();
    } catch (...) {
        out = std::string(1, '\1') + path + ": tokenizer training failed";
    }
    write_all(fd, out);
    _exit(0);
}

// SentencePiece's training cannot be stopped once begun, so it runs in a child process: the
// parent reads the model from a pipe and asks stop (when given) every 100 ms; a stop kills the
// child. *model is the serialized ModelProto; -1 with err set on failure or stop.
static int train_in_child(const char *path, int vocab, TokenizerType type, ProgressFn stop, void *ctx,
                          std::string *model, Err *err) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return err_set(err, "tokenizer training: pipe: %s", strerror(errno));
    int threads = omp_get_max_threads();   // --threads and `set threads` set it; the child inherits no pool
    pid_t parent = getpid(), pid = fork();
    if (pid < 0) {
        close(fds[0]), close(fds[1]);
        return err_set(err, "tokenizer training: fork: %s", strerror(errno));
    }
    if (pid == 0) close(fds[0]), train_child(fds[1], parent, path, vocab, type, threads);
    close(fds[1]);
    std::string got;
    int stopped = 0;
    for (;;) {
        struct pollfd p = {fds[0], POLLIN, 0};
        int ready = poll(&p, 1, 100);
        if (stop && stop(ctx, 0, 0)) { stopped = 1; break; }
        if (ready < 0 && errno != EINTR) break;
        if (ready <= 0) continue;
        char buf[65536];
        ssize_t n = read(fds[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;   // end of the pipe: the child is done
        got.append(buf, (size_t)n);
    }
    close(fds[0]);
    if (stopped) kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (stopped) return err_set(err, "%s: tokenizer training interrupted", path);
    if (WIFSIGNALED(status))
        return err_set(err, "%s: tokenizer training ended by signal %d%s", path, WTERMSIG(status),
                       WTERMSIG(status) == SIGKILL ? " (out of memory?)" : "");
    if (got.empty()) return err_set(err, "%s: tokenizer training ended without a result", path);
    if (got[0] != 0) return err_set(err, "%s", got.c_str() + 1);
    *model = got.substr(1);
    return 0;
}

static Tokenizer *train(const char *text_path, int vocab_size, TokenizerType type,
                        const char *out_path, ProgressFn stop, void *ctx, Err *err) {
    if (!text_path || !out_path) { err_set(err, "tokenizer train: missing file name"); return nullptr; }
    if (vocab_size < TOKENIZER_MIN_VOCAB || vocab_size > TOKENIZER_MAX_VOCAB) {
        err_set(err, "%s: vocab=%d out of range: allowed %d..%d (256 byte pieces and 4 specials come first)",
                text_path, vocab_size, TOKENIZER_MIN_VOCAB, TOKENIZER_MAX_VOCAB);
        return nullptr;
    }
    if (type != TOKENIZER_BPE && type != TOKENIZER_UNIGRAM) {
        err_set(err, "%s: unknown tokenizer type %d", text_path, (int)type);
        return nullptr;
    }
    if (check_text_file(text_path, err) != 0) return nullptr;
    std::string model;
    if (train_in_child(text_path, vocab_size, type, stop, ctx, &model, err) != 0) return nullptr;
    Tokenizer *tok = load_serialized(model, text_path, err);
    if (!tok) return nullptr;
    if (write_file_atomic(out_path, tok->bytes, err) != 0) { delete tok; return nullptr; }
    return tok;
}

extern "C" Tokenizer *tokenizer_train(const char *text_path, int vocab_size, TokenizerType type,
                                      const char *out_path, ProgressFn stop, void *ctx, Err *err) {
    try {
        return train(text_path, vocab_size, type, out_path, stop, ctx, err);
    } catch (const std::exception &e) {
        err_set(err, "%s: tokenizer training failed: %s", text_path ? text_path : "(null)", e.what());
    } catch (...) {
        err_set(err, "%s: tokenizer training failed", text_path ? text_path : "(null)");
    }
    return nullptr;
}

// ---------------------------------------------------------------- accessors

extern "C" const void *tokenizer_bytes(const Tokenizer *tok, size_t *size) {
    if (size) *size = tok ? tok->bytes.size() : 0;
    return tok ? tok->bytes.data() : nullptr;
}

extern "C" void tokenizer_free(Tokenizer *tok) { delete tok; }

extern "C" int tokenizer_vocab_size(const Tokenizer *tok) { return tok ? tok->sp.GetPieceSize() : 0; }
extern "C" int tokenizer_bos_id(const Tokenizer *tok) { return tok ? tok->sp.bos_id() : -1; }
extern "C" int tokenizer_eos_id(const Tokenizer *tok) { return tok ? tok->sp.eos_id() : -1; }

// ---------------------------------------------------------------- encode / decode

extern "C" long tokenizer_encode(const Tokenizer *tok, const char *text, size_t len, int32_t **ids,
                                 Err *err) {
    if (ids) *ids = nullptr;
    if (!tok || !ids || (!text && len)) return err_set(err, "tokenizer encode: no tokenizer or no output");
    size_t ok = tokenizer_utf8_valid_prefix(text, len);
    if (ok < len) return err_set(err, "tokenizer encode: invalid UTF-8 at byte offset %zu", ok);
    try {
        std::vector<int> v;
        auto st = tok->sp.Encode(absl::string_view(text ? text : "", len), &v);
        if (!st.ok()) return err_set(err, "tokenizer encode: %s", one_line(st.message()).c_str());
        int32_t *out = (int32_t *)malloc((v.size() ? v.size() : 1) * sizeof(int32_t));
        if (!out) return err_set(err, "tokenizer encode: out of memory for %zu ids", v.size());
        for (size_t i = 0; i < v.size(); i++) out[i] = v[i];
        *ids = out;
        return (long)v.size();
    } catch (const std::exception &e) {
        return err_set(err, "tokenizer encode: %s", e.what());
    } catch (...) {
        return err_set(err, "tokenizer encode: unexpected error");
    }
}

// s as a malloc'ed C string; a NUL byte in it (the piece <0x00>) becomes U+FFFD, since the C
// string would end there and drop the rest.
static char *malloc_string(const std::string &s, Err *err) {
    size_t nuls = (size_t)std::count(s.begin(), s.end(), '\0');
    char *out = (char *)malloc(s.size() + 2 * nuls + 1);
    if (!out) { err_set(err, "tokenizer decode: out of memory"); return nullptr; }
    size_t o = 0;
    for (char c : s) {
        if (c) out[o++] = c;
        else memcpy(out + o, "\xEF\xBF\xBD", 3), o += 3;
    }
    out[o] = '\0';
    return out;
}

extern "C" char *tokenizer_decode(const Tokenizer *tok, const int32_t *ids, long n, Err *err) {
    if (!tok || n < 0 || (!ids && n > 0)) { err_set(err, "tokenizer decode: no tokenizer or no ids"); return nullptr; }
    int vocab = tok->sp.GetPieceSize();
    for (long i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= vocab) {
            err_set(err, "tokenizer decode: id %d (at position %ld) out of range 0..%d", (int)ids[i], i, vocab - 1);
            return nullptr;
        }
    try {
        std::vector<int> v(ids, ids + n);
        std::string text;
        auto st = tok->sp.Decode(v, &text);
        if (!st.ok()) { err_set(err, "tokenizer decode: %s", one_line(st.message()).c_str()); return nullptr; }
        return malloc_string(text, err);
    } catch (const std::exception &e) {
        err_set(err, "tokenizer decode: %s", e.what());
    } catch (...) {
        err_set(err, "tokenizer decode: unexpected error");
    }
    return nullptr;
}

// A byte piece is spelled "<0xAB>"; its text is that one raw byte (possibly part of a UTF-8
// sequence that the next pieces complete), which Decode of it alone would turn into U+FFFD.
static std::string piece_text(const Tokenizer *tok, int id) {
    if (tok->sp.IsByte(id)) {
        const std::string &p = tok->sp.IdToPiece(id);
        return std::string(1, (char)strtol(p.c_str() + 3, nullptr, 16));
    }
    if (tok->sp.IsControl(id)) return std::string();
    std::string text;
    auto st = tok->sp.Decode(std::vector<int>{id}, &text);
    if (!st.ok()) throw std::runtime_error(one_line(st.message()));
    return text;
}

extern "C" char *tokenizer_decode_piece(const Tokenizer *tok, int32_t id, Err *err) {
    if (!tok) { err_set(err, "tokenizer decode: no tokenizer"); return nullptr; }
    int vocab = tok->sp.GetPieceSize();
    if (id < 0 || id >= vocab) {
        err_set(err, "tokenizer decode: id %d out of range 0..%d", (int)id, vocab - 1);
        return nullptr;
    }
    try {
        return malloc_string(piece_text(tok, id), err);
    } catch (const std::exception &e) {
        err_set(err, "tokenizer decode: %s", e.what());
    } catch (...) {
        err_set(err, "tokenizer decode: unexpected error");
    }
    return nullptr;
}
