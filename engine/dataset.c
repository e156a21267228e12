// dataset.c — text corpora tokenized once into a cache file, memory-mapped, split train/val.
//
// Cache file (little-endian: the machine's own order, which must be that):
//   [0, 64)   header: "LRSHTOK1", version, token_bytes, vocab, n_tokens, source bytes,
//             source hash, tokenizer hash
//   [64, ..)  n_tokens ids, uint16 when vocab <= 65536 else uint32
// The source hash (FNV-1a 64 over each file's relative name, bytes and size) and the tokenizer
// hash decide whether a cache is up to date: a changed file or another tokenizer rebuilds it.
// The source is streamed in 1 MB reads cut at a newline and encoded in ≤ 32 KB pieces (in
// parallel), so memory does not grow with the file size.
#include "dataset.h"
#include "corpus_files.h"
#include "tempfile.h"
#include "rng.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define CACHE_MAGIC "LRSHTOK1"
#define CACHE_VERSION 2u         // 2: files joined by a newline, byte-order marks dropped
#define READ_BYTES (1u << 20)    // one read of the source
#define PIECE_BYTES (32u << 10)  // one encode call: SentencePiece is fastest and leanest here
#define OUT_IDS 65536            // ids converted per fwrite
#define FORTUNES_DIR "/usr/share/games/fortunes"

typedef struct CacheHeader {
    char magic[8];
    uint32_t version;
    uint32_t token_bytes;     // 2 or 4
    uint32_t vocab_size;
    uint32_t reserved;
    uint64_t n_tokens;
    uint64_t source_bytes;    // total bytes of all source files
    uint64_t source_hash;
    uint64_t tokenizer_hash;
    uint64_t reserved2;
} CacheHeader;                // 64 bytes: the tokens after it stay 4-byte aligned
_Static_assert(sizeof(CacheHeader) == 64, "cache header is 64 bytes");

// ---------------------------------------------------------------- hashing

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * FNV_PRIME;
    return h;
}

// ---------------------------------------------------------------- source files

int dataset_source_files(const char *path, char ***paths, size_t *count, Err *err) {
    FileList fl = {0};
    SourceListing listing;
    if (corpus_files(path, &fl, &listing, err) != 0) { file_list_free(&fl); return -1; }
    *paths = fl.paths, *count = fl.n;
    return 0;
}

void dataset_files_free(char **paths, size_t count) {
    FileList fl = {paths, count, count, 0};
    file_list_free(&fl);
}

// Hashes of the whole source, read in chunks: *hash of its files' names, bytes and sizes (the
// cache's key: a renamed file may move in the order), *content of the bytes alone in that order,
// file by file (what the ids are made of); *bytes gets its total size.
static int hash_source(const char *root, const FileList *fl, uint64_t *hash, uint64_t *content, uint64_t *bytes,
                       Err *err) {
    char *buf = malloc(READ_BYTES);
    if (!buf) return err_set(err, "%s: out of memory", root);
    uint64_t h = FNV_OFFSET, c = FNV_OFFSET, total = 0;
    size_t skip = fl->root_len;   // names relative to the source: a folder's files' (a lone file's is "")
    int rc = 0;
    for (size_t i = 0; i < fl->n && rc == 0; i++) {
        const char *name = fl->paths[i] + skip;
        h = fnv1a(h, name, strlen(name) + 1);
        FILE *f = fopen(fl->paths[i], "rb");
        if (!f) { rc = err_set(err, "%s: cannot open: %s", fl->paths[i], strerror(errno)); break; }
        uint64_t size = 0;
        size_t got;
        while ((got = fread(buf, 1, READ_BYTES, f)) > 0) { h = fnv1a(h, buf, got); c = fnv1a(c, buf, got); size += got; }
        if (ferror(f)) rc = err_set(err, "%s: read error", fl->paths[i]);
        fclose(f);
        h = fnv1a(h, &size, sizeof size);
        c = fnv1a(c, &size, sizeof size);   // where one file ends: "ab"+"c" is not "a"+"bc"
        total += size;
    }
    free(buf);
    *hash = h, *content = c;
    *bytes = total;
    return rc;
}

// ---------------------------------------------------------------- cache location

static int mkdir_p(const char *dir) {
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", dir) >= (int)sizeof tmp) return -1;
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
            *p = '/';
        }
    return mkdir(tmp, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

// SOURCE.TOK.tok next to the source when its folder is writable and cache_dir is NULL; else
// CACHEDIR/NAME-HASH.TOK.tok (the hash of the absolute path keeps equal names apart). TOK, the
// tokenizer's hash, gives each tokenizer its own cache: going back and forth between two
// tokenizers (or two users of one cache folder doing so) rebuilt one cache every time.
static int cache_path_for(const char *src, const char *cache_dir, int beside, uint64_t tok_hash, char *out, size_t cap,
                          Err *err) {
    unsigned tag = (unsigned)(tok_hash ^ tok_hash >> 32);
    char clean[PATH_MAX];
    if (snprintf(clean, sizeof clean, "%s", src) >= (int)sizeof clean) return err_set(err, "%s: path too long", src);
    size_t n = strlen(clean);
    while (n > 1 && clean[n - 1] == '/') clean[--n] = 0;  // "data/" → "data"
    const char *slash = strrchr(clean, '/');
    const char *base = slash ? slash + 1 : clean;
    char real[PATH_MAX];   // "." or "..": by its own name, beside it, not "..TAG.tok" inside it
    if ((strcmp(base, ".") == 0 || strcmp(base, "..") == 0) && realpath(clean, real) && strcmp(real, "/") != 0) {
        snprintf(clean, sizeof clean, "%s", real);
        slash = strrchr(clean, '/');
        base = slash + 1;
    }
    if (!cache_dir && beside) {
        char parent[PATH_MAX] = ".";
        if (slash == clean) strcpy(parent, "/");
        else if (slash) snprintf(parent, sizeof parent, "%.*s", (int)(slash - clean), clean);
        // beside the corpus when its folder takes it and CORPUS.TAG.tok is a name the file system allows
        if (access(parent, W_OK) == 0 && strlen(base) + 13 <= NAME_MAX) {
            if (snprintf(out, cap, "%s.%08x.tok", clean, tag) >= (int)cap) return err_set(err, "%s: path too long", src);
            return 0;
        }
    }
    char dir[PATH_MAX];
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (cache_dir) snprintf(dir, sizeof dir, "%s", cache_dir);
    else if (xdg && *xdg) snprintf(dir, sizeof dir, "%s/lrsh", xdg);
    else if (home && *home) snprintf(dir, sizeof dir, "%s/.cache/lrsh", home);
    else return err_set(err, "%s: its folder is not writable and there is no $HOME for a cache", src);
    if (mkdir_p(dir) != 0) return err_set(err, "%s: cannot create the cache folder: %s", dir, strerror(errno));
    char abs[PATH_MAX];
    const char *key = realpath(clean, abs) ? abs : clean;
    uint64_t h = fnv1a(FNV_OFFSET, key, strlen(key));
    // the corpus's name, cut to leave room for "-HASH.TAG.tok" (the hash of its full path keeps
    // cut names apart), at the start of a UTF-8 character
    int keep = (int)strlen(base), most = NAME_MAX - 30;
    if (keep > most) {
        keep = most;
        while (keep > 0 && ((unsigned char)base[keep] & 0xc0) == 0x80) keep--;
    }
    if (snprintf(out, cap, "%s/%.*s-%016llx.%08x.tok", dir, keep, base, (unsigned long long)h, tag) >= (int)cap)
        return err_set(err, "%s: cache path too long", dir);
    return 0;
}

// ---------------------------------------------------------------- reading a cache

static int token_bytes_for(int vocab) { return vocab <= 65536 ? 2 : 4; }

static int read_mapping_guarded(void (*read)(void *), void *ctx);   // (below, with the batches')

void (*dataset_cache_mapped_hook)(const char *path);

typedef struct MaxIdRead {
    const unsigned char *tokens;
    uint64_t n_tokens;
    uint32_t token_bytes, max_id;
} MaxIdRead;

static void max_token_id(void *ctx) {
    MaxIdRead *r = ctx;
    if (r->token_bytes == 2)
        for (uint64_t i = 0; i < r->n_tokens; i++) { uint16_t t = ((const uint16_t *)r->tokens)[i]; if (t > r->max_id) r->max_id = t; }
    else
        for (uint64_t i = 0; i < r->n_tokens; i++) { uint32_t t = ((const uint32_t *)r->tokens)[i]; if (t > r->max_id) r->max_id = t; }
}

// Maps the cache read-only when it is sound and matches `want` (hashes, sizes, vocab) and every
// id is below the vocab; returns 0 when usable, -1 when it must be (re)built.
static int cache_open(Dataset *ds, const char *path, const CacheHeader *want) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    struct stat st;
    CacheHeader h;
    int ok = fstat(fd, &st) == 0 && st.st_size >= (off_t)sizeof h && pread(fd, &h, sizeof h, 0) == (ssize_t)sizeof h;
    if (ok && memcmp(h.magic, CACHE_MAGIC, 8) == 0 && h.version < CACHE_VERSION)
        ds->older_cache = h.version;   // an older lrsh's: rebuilt, and the user hears why
    ok = ok && memcmp(h.magic, CACHE_MAGIC, 8) == 0 && h.version == CACHE_VERSION &&
         h.token_bytes == want->token_bytes && h.vocab_size == want->vocab_size &&
         h.source_bytes == want->source_bytes && h.source_hash == want->source_hash &&
         h.tokenizer_hash == want->tokenizer_hash && h.n_tokens > 0 &&
         h.n_tokens <= ((uint64_t)st.st_size - sizeof h) / h.token_bytes &&
         (uint64_t)st.st_size == sizeof h + h.n_tokens * h.token_bytes;
    void *map = ok ? mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
    close(fd);
    if (map == MAP_FAILED) return -1;
    if (dataset_cache_mapped_hook) dataset_cache_mapped_hook(path);
    const unsigned char *tokens = (const unsigned char *)map + sizeof h;
    // an id past the vocab would index past the embedding: never trust it; a file cut short
    // under the scan (another program rewriting it) is no cache either, not a SIGBUS
    MaxIdRead r = {tokens, h.n_tokens, h.token_bytes, 0};
    if (read_mapping_guarded(max_token_id, &r) != 0 || r.max_id >= h.vocab_size) {
        munmap(map, (size_t)st.st_size);
        return -1;
    }
    ds->map = map;
    ds->map_size = (size_t)st.st_size;
    ds->cache_ino = (unsigned long long)st.st_ino;
    ds->cache_mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
    ds->tokens = tokens;
    ds->n_tokens = (long)h.n_tokens;
    ds->source_bytes = (long long)h.source_bytes;
    return 0;
}

int dataset_is_token_cache(const char *path) {
    char magic[8];
    FILE *f = fopen(path, "rb");
    int yes = f && fread(magic, 1, sizeof magic, f) == sizeof magic && memcmp(magic, CACHE_MAGIC, 8) == 0;
    if (f) fclose(f);
    return yes;
}

int dataset_check_unchanged(const Dataset *ds, Err *err) {
    struct stat st;
    if (!ds->map || stat(ds->cache_path, &st) != 0 || (unsigned long long)st.st_ino != ds->cache_ino) return 0;
    long long mtime = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
    if ((size_t)st.st_size == ds->map_size && mtime == ds->cache_mtime_ns) return 0;
    return err_set(err, "the token cache %s was rewritten since `data load` (by another program?): its tokens are "
                        "not the ones checked; `data load` again", ds->cache_path);
}

// ---------------------------------------------------------------- building a cache

typedef struct Writer {
    FILE *f;
    const char *path;          // the cache it writes (through a temporary file), for errors
    const Tokenizer *tok;
    int token_bytes;
    uint64_t n_tokens, bytes, hash;  // what was written; what was read and its running hash
    void *out;                       // ids converted to token_bytes wide, one piece at a time
    ProgressFn progress;             // told the bytes read after every chunk; may stop the load
    void *progress_ctx;
    uint64_t total_bytes;            // of the whole source, for progress
} Writer;

// Where to cut text[0, len) so that the next piece is at most max bytes: after the last newline
// (SentencePiece pieces never span "\n", so the ids equal those of the whole text), else before
// the last space, else at a UTF-8 sequence boundary.
static size_t piece_end(const char *text, size_t len, size_t max) {
    if (len <= max) return len;
    for (size_t i = max; i > 0; i--) if (text[i - 1] == '\n') return i;
    for (size_t i = max; i > 1; i--) if (text[i - 1] == ' ' && text[i - 2] != ' ') return i - 1;
    size_t i = max;
    while (i > 1 && ((unsigned char)text[i] & 0xC0) == 0x80) i--;  // not inside a sequence
    return i;
}

// Appends n ids to the cache, token_bytes wide, through the conversion buffer w->out.
static int append_ids(Writer *w, const int32_t *ids, long n, Err *err) {
    for (long done = 0; done < n;) {
        long m = n - done < OUT_IDS ? n - done : OUT_IDS;
        for (long j = 0; j < m; j++) {
            if (w->token_bytes == 2) ((uint16_t *)w->out)[j] = (uint16_t)ids[done + j];  // vocab ≤ 65536
            else ((uint32_t *)w->out)[j] = (uint32_t)ids[done + j];
        }
        if (fwrite(w->out, (size_t)w->token_bytes, (size_t)m, w->f) != (size_t)m)
            return err_set(err, "%s: cannot write the token cache: %s; nothing was written", w->path, strerror(errno));
        done += m;
    }
    w->n_tokens += (uint64_t)n;
    return 0;
}

// Encodes text[0, len) (valid UTF-8) in pieces, in parallel, and appends the ids in order.
static int encode_append(Writer *w, const char *text, size_t len, const char *file, Err *err) {
    // Two pieces in a row span more than PIECE_BYTES, so a read holds at most ~2·READ/PIECE;
    // past that (never, in practice) the rest goes into one last, larger piece.
    enum { MAX_PIECES = 2 * READ_BYTES / PIECE_BYTES + 8 };
    size_t starts[MAX_PIECES + 1];
    int n = 0;
    size_t pos = 0;
    while (pos < len) {
        starts[n++] = pos;
        pos = n == MAX_PIECES ? len : pos + piece_end(text + pos, len - pos, PIECE_BYTES);
    }
    starts[n] = len;
    int32_t *ids[MAX_PIECES];
    long counts[MAX_PIECES];
    int failed = -1;
    Err piece_err = {{0}};
    #pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < n; i++) {
        Err e;
        counts[i] = tokenizer_encode(w->tok, text + starts[i], starts[i + 1] - starts[i], &ids[i], &e);
        if (counts[i] < 0) {
            #pragma omp critical(dataset_encode_error)
            if (failed < 0 || i < failed) { failed = i; piece_err = e; }
        }
    }
    int rc = failed >= 0 ? err_set(err, "%s: %s", file, piece_err.msg) : 0;
    for (int i = 0; i < n; i++) {
        if (rc == 0) rc = append_ids(w, ids[i], counts[i], err);
        free(ids[i]);
    }
    return rc;
}

// Streams one source file: 1 MB reads, cut after the last newline, checked, encoded, appended.
// A byte-order mark at its start is not text: dropped. When newline_after, a file that does not
// end in a newline gets one, so that the next file's text does not run into its last line.
static int tokenize_file(Writer *w, const char *path, const char *hash_name, int newline_after, char *buf, Err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return err_set(err, "%s: cannot open: %s", path, strerror(errno));
    w->hash = fnv1a(w->hash, hash_name, strlen(hash_name) + 1);
    size_t carry = 0;
    uint64_t offset = 0, size = 0;  // file offset of buf[0]; bytes read
    char last = '\n';               // the last byte encoded (none yet: no newline to add)
    int rc = 0;
    for (;;) {
        size_t got = fread(buf + carry, 1, READ_BYTES - carry, f);
        if (ferror(f)) { rc = err_set(err, "%s: read error: %s", path, strerror(errno)); break; }
        w->hash = fnv1a(w->hash, buf + carry, got);
        size += got;
        size_t len = carry + got;
        int eof = got < READ_BYTES - carry;   // so buf has room for one more byte
        size_t cut = len, start = offset == 0 && len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
        if (!eof) {
            while (cut > 0 && buf[cut - 1] != '\n') cut--;
            if (cut == 0) cut = piece_end(buf, len, len - 4);  // one huge line: cut at a boundary
        }
        size_t ok = start + tokenizer_utf8_valid_prefix(buf + start, cut - start);
        if (ok < cut) {
            rc = err_set(err, "%s: invalid UTF-8 at byte offset %llu (a text file in another encoding? convert it, "
                              "e.g. `iconv -f latin1 -t utf-8`)", path, (unsigned long long)(offset + ok));
            break;
        }
        if (cut > start) last = buf[cut - 1];
        if (eof && newline_after && last != '\n') buf[cut++] = '\n', last = '\n';
        if ((rc = encode_append(w, buf + start, cut - start, path, err)) != 0) break;
        // a stop asked for while the last piece was encoded comes too late to save anything: finish
        int stop = w->progress && w->progress(w->progress_ctx, (double)(w->bytes + size), (double)w->total_bytes);
        if (stop && !(eof && w->bytes + size >= w->total_bytes)) {
            rc = err_set(err, "%s: interrupted after %.1f of %.1f MiB; no token cache was written", path,
                         (double)(w->bytes + size) / (1 << 20), (double)w->total_bytes / (1 << 20));
            break;
        }
        if (eof) break;
        carry = len - cut;
        memmove(buf, buf + cut, carry);
        offset += cut;
    }
    fclose(f);
    w->hash = fnv1a(w->hash, &size, sizeof size);
    w->bytes += size;
    return rc;
}

static int write_all_tokens(Writer *w, const char *root, const FileList *fl, Err *err) {
    char *buf = malloc(READ_BYTES);
    if (!buf) return err_set(err, "%s: out of memory", root);
    size_t skip = fl->root_len;
    int rc = 0;
    for (size_t i = 0; i < fl->n && rc == 0; i++)
        rc = tokenize_file(w, fl->paths[i], fl->paths[i] + skip, i + 1 < fl->n, buf, err);
    free(buf);
    return rc;
}


// The most a new token cache may allow: what every one of its sources allows (read and write
// bits; the cache is their text, decodable with the tokenizer a checkpoint carries).
static mode_t sources_mode(const char *root, const FileList *fl) {
    struct stat st;
    mode_t mode = stat(root, &st) == 0 ? st.st_mode & 0666 : 0600;
    for (size_t i = 0; i < fl->n; i++) mode &= stat(fl->paths[i], &st) == 0 ? st.st_mode & 0666 : 0600;
    return mode | 0600;   // the owner's own, whatever the sources
}

// Tokenizes the source into cache_path through a temporary file, fsync, rename.
static int cache_build(const char *root, const FileList *fl, const Tokenizer *tok, const CacheHeader *want,
                       const char *cache_path, ProgressFn progress, void *ctx, Err *err) {
    AtomicFile af;
    const char *what;
    int e = atomic_file_open(&af, cache_path, sources_mode(root, fl), &what);   // rebuilt: no more than the corpus allows now
    if (e != 0) return err_set(err, "%s: cannot write the token cache: %s (%s)", cache_path, what, strerror(e));
    Writer w = {.f = af.f, .path = cache_path, .tok = tok, .token_bytes = (int)want->token_bytes,
                .hash = FNV_OFFSET, .progress = progress, .progress_ctx = ctx, .total_bytes = want->source_bytes};
    w.out = malloc((size_t)OUT_IDS * 4);
    CacheHeader h = *want;
    int rc = !w.out ? err_set(err, "%s: out of memory for the token cache's writer", cache_path)
             : fwrite(&h, sizeof h, 1, w.f) == 1 ? 0
                                                 : err_set(err, "%s: cannot write the token cache: %s; nothing was "
                                                           "written", cache_path, strerror(errno));
    if (rc == 0) rc = write_all_tokens(&w, root, fl, err);
    if (rc == 0 && w.n_tokens == 0) rc = err_set(err, "%s: empty corpus (no tokens)", root);
    if (rc == 0 && (w.hash != want->source_hash || w.bytes != want->source_bytes))
        rc = err_set(err, "%s: the source changed while it was being tokenized; load it again", root);
    h.n_tokens = w.n_tokens;   // known only now: the header again, over the first one
    if (rc == 0 && (fseek(w.f, 0, SEEK_SET) != 0 || fwrite(&h, sizeof h, 1, w.f) != 1))
        rc = err_set(err, "%s: cannot write the token cache: %s; nothing was written", cache_path, strerror(errno));
    free(w.out);
    if (rc != 0) {
        atomic_file_abandon(&af);
        return rc;
    }
    e = atomic_file_commit(&af, &what);
    return e == 0 ? 0 : err_set(err, "%s: cannot write the token cache: %s (%s)", cache_path, what, strerror(e));
}

// ---------------------------------------------------------------- public

static uint64_t tokenizer_hash(const Tokenizer *tok) {
    size_t tok_size;
    const void *tok_bytes = tokenizer_bytes(tok, &tok_size);
    return fnv1a(FNV_OFFSET, tok_bytes, tok_size);
}

int dataset_cache_path(const char *path, const Tokenizer *tok, const char *cache_dir, char *out, size_t cap, Err *err) {
    return cache_path_for(path, cache_dir, 1, tokenizer_hash(tok), out, cap, err);
}

// The ids' identity: the same bytes in the same order, read by the same tokenizer into the same
// layout, give the same ids, whatever the files are named (never 0, which means "not recorded").
static uint64_t token_identity(const CacheHeader *h, uint64_t content) {
    uint64_t parts[3] = {h->version, content, h->tokenizer_hash};
    uint64_t id = fnv1a(FNV_OFFSET, parts, sizeof parts);
    return id ? id : 1;
}

// Whose the cache at cache is: 0 this user's (or none there), 1 the corpus owner's (a TA's cache
// beside the course's corpus: read, not replaced), 2 another user's — not read: its tokens may
// be anything its writer chose, and checking them against the corpus costs a rebuild.
static int cache_owner(const char *cache, const char *corpus) {
    struct stat c, src;   // lstat: a link planted in its place is its planter's, whatever it names
    if (lstat(cache, &c) != 0 || c.st_uid == geteuid()) return 0;
    return stat(corpus, &src) == 0 && c.st_uid == src.st_uid ? 1 : 2;
}

static int load_or_build(Dataset *ds, const char *path, const Tokenizer *tok, const char *cache_dir,
                         const FileList *fl, ProgressFn progress, void *ctx, Err *err) {
    CacheHeader want = {.version = CACHE_VERSION};
    memcpy(want.magic, CACHE_MAGIC, 8);
    want.vocab_size = (uint32_t)tokenizer_vocab_size(tok);
    want.token_bytes = (uint32_t)token_bytes_for((int)want.vocab_size);
    want.tokenizer_hash = tokenizer_hash(tok);
    uint64_t content = 0;
    if (hash_source(path, fl, &want.source_hash, &content, &want.source_bytes, err) != 0) return -1;
    ds->token_hash = token_identity(&want, content);
    if (want.source_bytes == 0) return err_set(err, "%s: empty corpus (0 bytes)", path);
    if (cache_path_for(path, cache_dir, 1, want.tokenizer_hash, ds->cache_path, sizeof ds->cache_path, err) != 0) return -1;
    int owner = cache_owner(ds->cache_path, path);
    if (owner < 2 && cache_open(ds, ds->cache_path, &want) == 0) {
        tempfile_remove_stale(ds->cache_path);   // a build killed outright and at once redone left its part
        ds->reused_cache = 1;
        return 0;
    }
    // another user's cache beside a shared corpus is neither trusted nor replaced (a sticky
    // folder refuses the rename after the whole tokenizing): this user's own cache folder instead
    if (owner && !cache_dir) {
        if (cache_path_for(path, NULL, 0, want.tokenizer_hash, ds->cache_path, sizeof ds->cache_path, err) != 0) return -1;
        if (cache_open(ds, ds->cache_path, &want) == 0) return ds->reused_cache = 1, 0;
    }
    if (cache_build(path, fl, tok, &want, ds->cache_path, progress, ctx, err) != 0) return -1;
    if (cache_open(ds, ds->cache_path, &want) != 0)
        return err_set(err, "%s: the token cache just written does not read back", ds->cache_path);
    return 0;
}

int dataset_load(Dataset *ds, const char *path, const Tokenizer *tok, double val_fraction,
                 const char *cache_dir, Err *err) {
    return dataset_load_progress(ds, path, tok, val_fraction, cache_dir, NULL, NULL, err);
}

int dataset_load_progress(Dataset *ds, const char *path, const Tokenizer *tok, double val_fraction,
                          const char *cache_dir, ProgressFn progress, void *ctx, Err *err) {
    memset(ds, 0, sizeof *ds);
    if (!path) return err_set(err, "data load: no file given");
    if (!tok) return err_set(err, "%s: no tokenizer: train or load one first", path);
    if (!(val_fraction >= 0.0 && val_fraction <= 0.5))  // also rejects NaN
        return err_set(err, "%s: val=%g out of range: allowed 0..0.5", path, val_fraction);
    if (strlen(path) >= sizeof ds->source) return err_set(err, "%s: path too long", path);
    FileList fl = {0};
    int rc = corpus_files(path, &fl, &ds->listing, err);
    if (rc == 0) rc = load_or_build(ds, path, tok, cache_dir, &fl, progress, ctx, err);
    file_list_free(&fl);
    if (rc != 0) { dataset_free(ds); return -1; }
    snprintf(ds->source, sizeof ds->source, "%s", path);
    ds->vocab_size = tokenizer_vocab_size(tok);
    ds->token_bytes = token_bytes_for(ds->vocab_size);
    ds->n_train = (long)((1.0 - val_fraction) * (double)ds->n_tokens);
    return 0;
}

DataIdentity dataset_identity(const Dataset *ds) {
    if (!ds || !ds->tokens) return (DataIdentity){0};
    return (DataIdentity){.tokens = ds->n_tokens, .train = ds->n_train, .hash = ds->token_hash};
}

void dataset_free(Dataset *ds) {
    if (!ds) return;
    if (ds->map) munmap(ds->map, ds->map_size);
    memset(ds, 0, sizeof *ds);
}

int dataset_window_fits(const Dataset *ds, int split, int T, Err *err) {
    if (!ds || !ds->tokens) return err_set(err, "no data: load a corpus first (data load FILE)");
    if (split != 0 && split != 1) return err_set(err, "split %d: must be 0 (train) or 1 (val)", split);
    long len = split ? ds->n_tokens - ds->n_train : ds->n_train;
    if (len < (long)T + 1)
        return err_set(err, "%s: the %s split has %ld token%s; a window of seq+1 = %ld needs more (use more text%s)",
                       ds->source, split ? "validation" : "training", len, len == 1 ? "" : "s", (long)T + 1,
                       split ? " or a larger val=" : " or a smaller seq");
    return 0;
}

// The cache is mapped: another program cutting it short while a batch is copied makes the read
// fault (SIGBUS), which would end the session and its unsaved training. The copy runs under a
// guard that turns that fault into an error; a fault anywhere else goes on to the handler there
// was before (restored, the faulting read runs again and reaches it; the guard is installed
// again at the next batch, should the process live on).
static _Thread_local sigjmp_buf *volatile bus_jump;   // set while this thread reads a mapping (volatile:
                                                     // its stores around a read may not be dropped)
static struct sigaction bus_before;
static volatile sig_atomic_t bus_installed;  // the batches come from the shell's thread

static void on_sigbus(int sig, siginfo_t *info, void *ctx) {
    (void)sig, (void)info, (void)ctx;
    if (bus_jump) siglongjmp(*bus_jump, 1);
    sigaction(SIGBUS, &bus_before, NULL);
    bus_installed = 0;
}

static void bus_guard_install(void) {
    if (bus_installed) return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    bus_installed = sigaction(SIGBUS, &sa, &bus_before) == 0;
}

// read(ctx) under the guard: 0, or −1 when the mapping it reads was cut short under it.
static int read_mapping_guarded(void (*read)(void *), void *ctx) {
    bus_guard_install();
    sigjmp_buf jump;
    if (sigsetjmp(jump, 1)) {
        bus_jump = NULL;
        return -1;
    }
    bus_jump = &jump;
    read(ctx);
    bus_jump = NULL;
    return 0;
}

// B windows of T+1 tokens drawn from [start, start+len) into tokens[B][T+1].
static void copy_windows(const Dataset *ds, long start, long len, int B, int T, uint64_t *rng_state,
                         int32_t *tokens) {
    uint64_t windows = (uint64_t)(len - T);  // start offsets with T+1 tokens after them
    for (int b = 0; b < B; b++) {
        long at = start + (long)(rng_next(rng_state) % windows);
        int32_t *row = tokens + (size_t)b * (size_t)(T + 1);  // row b of tokens[B][T+1]
        if (ds->token_bytes == 2)
            for (int t = 0; t <= T; t++) row[t] = ((const uint16_t *)ds->tokens)[at + t];
        else
            for (int t = 0; t <= T; t++) row[t] = (int32_t)((const uint32_t *)ds->tokens)[at + t];
    }
}

typedef struct WindowsRead {
    const Dataset *ds;
    long start, len;
    int B, T;
    uint64_t *rng_state;
    int32_t *tokens;
} WindowsRead;

static void read_windows(void *ctx) {
    WindowsRead *w = ctx;
    copy_windows(w->ds, w->start, w->len, w->B, w->T, w->rng_state, w->tokens);
}

int dataset_batch(const Dataset *ds, int split, int B, int T, uint64_t *rng_state, int32_t *tokens, Err *err) {
    if (dataset_window_fits(ds, split, T, err) != 0) return -1;
    if (B <= 0 || T <= 0) return err_set(err, "batch=%d seq=%d: both must be positive", B, T);
    if (dataset_check_unchanged(ds, err) != 0) return -1;   // rewritten meanwhile: not the ids checked
    WindowsRead w = {ds, split ? ds->n_train : 0, split ? ds->n_tokens - ds->n_train : ds->n_train, B, T, rng_state,
                     tokens};
    if (read_mapping_guarded(read_windows, &w) != 0)
        return err_set(err, "the token cache %s was cut short while it was read (by another program?): `data load` "
                       "again", ds->cache_path);
    return 0;
}

// ---------------------------------------------------------------- default corpus


static int is_fortune_file(const char *dir, const char *name) {
    if (name[0] == '.' || file_name_ends_with(name, ".dat") || file_name_ends_with(name, ".u8")) return 0;
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return lstat(path, &st) == 0 && S_ISREG(st.st_mode);  // the *.u8 names are symlinks: skip
}

// One fortune line, cleaned for a training corpus: Latin-1 lines become UTF-8, the "%"
// separators become blank lines, BEL goes, and "x\bY" overstrikes (bold/underline) keep Y.
static void clean_line(const char *in, size_t n, char *out, size_t *out_n) {
    if (n == 1 && in[0] == '%') { *out_n = 0; return; }
    int latin1 = tokenizer_utf8_valid_prefix(in, n) < n;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '\a') continue;
        if (c == '\b') { if (o > 0) { o--; while (o > 0 && ((unsigned char)out[o] & 0xC0) == 0x80) o--; } continue; }
        if (latin1 && c >= 0x80) { out[o++] = (char)(0xC0 | (c >> 6)); out[o++] = (char)(0x80 | (c & 0x3F)); continue; }
        out[o++] = (char)c;
    }
    *out_n = o;
}

static int append_fortune_file(FILE *out, const char *out_path, const char *path, Err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return err_set(err, "%s: cannot open: %s", path, strerror(errno));
    char *line = NULL, *clean = NULL;
    size_t cap = 0, clean_cap = 0;
    ssize_t n;
    int rc = 0;
    while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
        size_t len = (size_t)n - (n > 0 && line[n - 1] == '\n');
        if (clean_cap < 2 * len + 2) {  // Latin-1 → UTF-8 at most doubles a line
            free(clean);
            clean_cap = 2 * len + 2;
            if (!(clean = malloc(clean_cap))) { rc = err_set(err, "%s: out of memory", path); break; }
        }
        size_t m;
        clean_line(line, len, clean, &m);
        clean[m++] = '\n';
        if (fwrite(clean, 1, m, out) != m)
            rc = err_set(err, "%s: cannot write the default corpus: %s; nothing was written", out_path, strerror(errno));
    }
    if (rc == 0 && ferror(f)) rc = err_set(err, "%s: read error", path);
    free(line);
    free(clean);
    fclose(f);
    return rc;
}

static int list_fortunes(FileList *fl, Err *err) {
    DIR *d = opendir(FORTUNES_DIR);
    if (!d) return err_set(err, "%s: not found: the default corpus needs the fortunes package (run make deps)", FORTUNES_DIR);
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d)))
        if (is_fortune_file(FORTUNES_DIR, e->d_name)) {
            char path[PATH_MAX];
            snprintf(path, sizeof path, "%s/%s", FORTUNES_DIR, e->d_name);
            rc = file_list_add(fl, path, err);
        }
    closedir(d);
    if (rc == 0 && fl->n == 0)
        rc = err_set(err, "%s: no fortune files: the default corpus needs the fortunes package (run make deps)", FORTUNES_DIR);
    if (rc == 0) file_list_sort(fl);
    return rc;
}

int dataset_default_corpus(const char *out_path, Err *err) {
    if (!out_path) return err_set(err, "default corpus: no output path");
    FileList fl = {0};
    if (list_fortunes(&fl, err) != 0) { file_list_free(&fl); return -1; }
    AtomicFile af;
    const char *what;
    int e = atomic_file_open(&af, out_path, 0666, &what), rc = 0;
    if (e != 0) rc = err_set(err, "%s: cannot write: %s (%s)", out_path, what, strerror(e));
    for (size_t i = 0; i < fl.n && rc == 0; i++) rc = append_fortune_file(af.f, out_path, fl.paths[i], err);
    if (rc != 0 && e == 0) atomic_file_abandon(&af);
    if (rc == 0 && (e = atomic_file_commit(&af, &what)) != 0)
        rc = err_set(err, "%s: cannot write: %s (%s)", out_path, what, strerror(e));
    file_list_free(&fl);
    return rc;
}

typedef struct CountRead {
    const Dataset *d;
    long *count;   // (vocab_size)
} CountRead;

static void count_val_tokens(void *ctx) {
    CountRead *r = ctx;
    const Dataset *d = r->d;
    for (long i = d->n_train; i < d->n_tokens; i++) {
        long id = d->token_bytes == 2 ? ((const uint16_t *)d->tokens)[i] : ((const uint32_t *)d->tokens)[i];
        if (id >= 0 && id < d->vocab_size) r->count[id]++;
    }
}

double dataset_unigram_entropy(const Dataset *d) {
    long n = d->n_tokens - d->n_train;
    Err err;
    if (n <= 0 || d->vocab_size <= 0 || dataset_check_unchanged(d, &err) != 0) return NAN;
    long *count = calloc((size_t)d->vocab_size, sizeof *count);
    if (!count) return NAN;
    // the whole validation split, read from the mapping under the batches' guard: a cache cut
    // short meanwhile (after each eval_every evaluation, this runs) is no answer, not a SIGBUS
    CountRead r = {d, count};
    if (read_mapping_guarded(count_val_tokens, &r) != 0) {
        free(count);
        return NAN;
    }
    double h = 0;
    for (int v = 0; v < d->vocab_size; v++)
        if (count[v]) h -= (double)count[v] / n * log((double)count[v] / n);
    free(count);
    return h;
}
