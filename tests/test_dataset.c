// test_dataset.c — token caches (created, reused, rebuilt, distrusted when damaged), folders,
// bad input, the train/val split, batches, uint16 vs uint32 ids, and streaming memory.
#include "test.h"
#include "test_fixtures.h"
#include "../engine/dataset.h"
#include "../engine/rng.h"

#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

// Shared by the tests: a temporary folder, the default corpus in it, a BPE model trained on it.
static char tmp_dir[64], corpus_path[128];
static Tokenizer *bpe;

// The cache dataset_load makes for path with the default test tokenizer (bpe), next to it.
static void expected_cache(const char *path, char *out, size_t cap) {
    Err err = {{0}};
    if (dataset_cache_path(path, bpe, NULL, out, cap, &err) != 0) snprintf(out, cap, "(no cache path: %s)", err.msg);
}

static void write_all(const char *path, const void *data, size_t n, const char *mode) {
    FILE *f = fopen(path, mode);
    fwrite(data, 1, n, f);
    fclose(f);
}

static void tmp_file(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", tmp_dir, name); }

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

static long token_at(const Dataset *ds, long i) {
    return ds->token_bytes == 2 ? ((const uint16_t *)ds->tokens)[i] : (long)((const uint32_t *)ds->tokens)[i];
}

// The cache must hold exactly the ids of encoding the whole text at once.
static void check_tokens_equal_encoding(const Dataset *ds, const Tokenizer *tok, const char *text, size_t n) {
    Err err = {{0}};
    int32_t *ids = NULL;
    long m = tokenizer_encode(tok, text, n, &ids, &err);
    CHECK(m == ds->n_tokens, "cache holds %ld tokens, encoding the text gives %ld (%s)", ds->n_tokens, m, err.msg);
    long bad = -1;
    for (long i = 0; i < m && i < ds->n_tokens && bad < 0; i++)
        if (token_at(ds, i) != ids[i]) bad = i;
    CHECK(bad < 0, "cache token %ld differs from the encoding", bad);
    free(ids);
}

// Peak RSS (VmHWM) and current RSS (VmRSS) in kB, from /proc/self/status.
static long proc_status_kb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kb = -1;
    size_t k = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, k)) kb = atol(line + k + 1);
    fclose(f);
    return kb;
}

// Progress: called with growing byte counts up to the source size; a stop leaves no cache.
typedef struct { int calls; double last, total; int stop_after; } Seen;
static int record_progress(void *ctx, double done, double total) {
    Seen *s = ctx;
    CHECK(done >= s->last && done <= total, "progress goes forward within the total: %g after %g of %g", done, s->last, total);
    s->calls++;
    s->last = done;
    s->total = total;
    return s->stop_after && s->calls >= s->stop_after;
}

static void test_progress_and_stop(void) {
    char path[160], cache[200];
    tmp_file(path, sizeof path, "p.txt");
    expected_cache(path, cache, sizeof cache);
    size_t n;
    char *text = read_all(corpus_path, &n);
    write_all(path, text, n, "wb");          // the corpus (≈ 2.5 MB: several 1 MB reads)
    Err err = {{0}};
    Dataset ds;
    Seen stop = {.stop_after = 1};
    int rc = dataset_load_progress(&ds, path, bpe, 0.1, NULL, record_progress, &stop, &err);
    CHECK(rc != 0 && strstr(err.msg, "interrupted"), "a stop from progress fails the load: rc=%d '%s'", rc, err.msg);
    CHECK(access(cache, F_OK) != 0, "no token cache after a stopped load");
    Seen all = {0};
    CHECK_OK(dataset_load_progress(&ds, path, bpe, 0.1, NULL, record_progress, &all, &err));
    CHECK(all.calls >= 2 && all.last == (double)n && all.total == (double)n,
          "progress reached the whole source: %d calls, %g of %g bytes (file %zu)", all.calls, all.last, all.total, n);
    dataset_free(&ds);
    unlink(cache);   // a stop asked for while the last piece was encoded: too late to save anything, so done
    Seen late = {.stop_after = all.calls};
    CHECK_OK(dataset_load_progress(&ds, path, bpe, 0.1, NULL, record_progress, &late, &err));
    CHECK(access(cache, F_OK) == 0 && ds.n_tokens > 0, "a stop at the end finishes the load, cache written");
    dataset_free(&ds);
    free(text);
}

static void test_cache_created_reused_and_rebuilt(void) {
    char path[160];
    tmp_file(path, sizeof path, "c.txt");
    size_t n;
    char *text = read_all(corpus_path, &n);
    write_all(path, text, n, "wb");
    Err err = {{0}};
    Dataset ds;
    CHECK_OK(dataset_load(&ds, path, bpe, 0.1, NULL, &err));
    char want_cache[200];
    expected_cache(path, want_cache, sizeof want_cache);
    CHECK(strcmp(ds.cache_path, want_cache) == 0, "cache path: expected %s, got %s", want_cache, ds.cache_path);
    CHECK(ds.reused_cache == 0 && access(want_cache, R_OK) == 0, "first load should build %s", want_cache);
    CHECK(ds.token_bytes == 2 && ds.vocab_size == 2048, "vocab 2048: expected uint16 ids, got %d bytes", ds.token_bytes);
    struct stat st;
    stat(want_cache, &st);
    CHECK(st.st_size == 64 + 2 * ds.n_tokens, "cache size %ld for %ld uint16 tokens", (long)st.st_size, ds.n_tokens);
    check_tokens_equal_encoding(&ds, bpe, text, n);
    long n_tokens = ds.n_tokens;
    dataset_free(&ds);

    CHECK_OK(dataset_load(&ds, path, bpe, 0.1, NULL, &err));
    CHECK(ds.reused_cache == 1 && ds.n_tokens == n_tokens, "second load should reuse the cache (reused=%d)", ds.reused_cache);
    dataset_free(&ds);

    const char *more = "One more fortune, appended.\n";
    write_all(path, more, strlen(more), "ab");
    CHECK_OK(dataset_load(&ds, path, bpe, 0.1, NULL, &err));
    CHECK(ds.reused_cache == 0 && ds.n_tokens > n_tokens, "a changed source should rebuild (reused=%d, %ld tokens)",
          ds.reused_cache, ds.n_tokens);
    dataset_free(&ds);

    // the same size and a one-byte change: only the content hash notices
    text[100] = text[100] == 'e' ? 'a' : 'e';
    write_all(path, text, n, "wb");
    write_all(path, more, strlen(more), "ab");
    CHECK_OK(dataset_load(&ds, path, bpe, 0.1, NULL, &err));
    CHECK(ds.reused_cache == 0, "a one-byte change should rebuild the cache");
    dataset_free(&ds);
    free(text);
}

static void test_other_tokenizer_rebuilds(void) {
    char path[160], model[160];
    tmp_file(path, sizeof path, "t.txt");
    tmp_file(model, sizeof model, "small.model");
    size_t n;
    char *text = read_all(corpus_path, &n);
    write_all(path, text, n < 300000 ? n : 300000, "wb");
    Err err = {{0}};
    Tokenizer *other = tokenizer_train(path, 400, TOKENIZER_BPE, model, NULL, NULL, &err);
    CHECK(other != NULL, "training: %s", err.msg);
    Dataset ds;
    CHECK_OK(dataset_load(&ds, path, bpe, 0.0, NULL, &err));
    dataset_free(&ds);
    if (other) {
        CHECK_OK(dataset_load(&ds, path, other, 0.0, NULL, &err));
        CHECK(ds.reused_cache == 0 && ds.vocab_size == 400, "another tokenizer should rebuild (reused=%d)", ds.reused_cache);
        char other_cache[1024], first_cache[1024];
        snprintf(other_cache, sizeof other_cache, "%s", ds.cache_path);
        expected_cache(path, first_cache, sizeof first_cache);
        dataset_free(&ds);
        // each tokenizer its own cache: going back to the first reuses its cache, and the
        // second's is still there (one cache a corpus was rebuilt at every switch)
        CHECK(strcmp(other_cache, first_cache) != 0, "two tokenizers, one cache file: %s", other_cache);
        CHECK_OK(dataset_load(&ds, path, bpe, 0.0, NULL, &err));
        CHECK(ds.reused_cache == 1 && ds.vocab_size == 2048, "back to the first tokenizer: its cache reused (reused=%d)",
              ds.reused_cache);
        dataset_free(&ds);
        CHECK_OK(dataset_load(&ds, path, other, 0.0, NULL, &err));
        CHECK(ds.reused_cache == 1, "and the second's too (reused=%d)", ds.reused_cache);
        dataset_free(&ds);
        unlink(other_cache);
    }
    tokenizer_free(other);
    free(text);
}

// Damage the cache with `damage`, then load: it must be rebuilt, never trusted.
static void check_damaged_cache_rebuilt(const char *what, void (*damage)(const char *cache)) {
    char path[160];
    tmp_file(path, sizeof path, "d.txt");
    size_t n;
    char *text = read_all(corpus_path, &n);
    write_all(path, text, n / 4, "wb");
    Err err = {{0}};
    Dataset ds;
    CHECK_OK(dataset_load(&ds, path, bpe, 0.05, NULL, &err));
    long n_tokens = ds.n_tokens;
    char cache[1024];
    snprintf(cache, sizeof cache, "%s", ds.cache_path);
    dataset_free(&ds);
    damage(cache);
    CHECK_OK(dataset_load(&ds, path, bpe, 0.05, NULL, &err));
    CHECK(ds.reused_cache == 0 && ds.n_tokens == n_tokens, "%s: should rebuild (reused=%d, %ld tokens, want %ld)", what,
          ds.reused_cache, ds.n_tokens, n_tokens);
    dataset_free(&ds);
    CHECK_OK(dataset_load(&ds, path, bpe, 0.05, NULL, &err));
    CHECK(ds.reused_cache == 1, "%s: the rebuilt cache should be reused", what);
    dataset_free(&ds);
    free(text);
}

static void truncate_cache(const char *cache) {
    struct stat st;
    stat(cache, &st);
    CHECK(truncate(cache, st.st_size - 7) == 0, "truncate %s", cache);
}
static void truncate_to_header(const char *cache) { CHECK(truncate(cache, 30) == 0, "truncate %s", cache); }
static void foreign_cache(const char *cache) {
    char junk[4096];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (char)(i * 131 + 7);
    write_all(cache, junk, sizeof junk, "wb");
}
static void patch_cache(const char *cache, long offset, const void *bytes, size_t n) {
    FILE *f = fopen(cache, "r+b");
    fseek(f, offset, SEEK_SET);
    fwrite(bytes, 1, n, f);
    fclose(f);
}
static void bad_magic(const char *cache) { patch_cache(cache, 0, "LRSHTOK9", 8); }
static void bad_version(const char *cache) { uint32_t v = 99; patch_cache(cache, 8, &v, 4); }
static void id_past_vocab(const char *cache) { uint16_t id = 60000; patch_cache(cache, 64 + 2 * 10, &id, 2); }
static void more_tokens_claimed(const char *cache) { uint64_t n = 1ull << 40; patch_cache(cache, 24, &n, 8); }

static void test_damaged_caches_are_rebuilt(void) {
    check_damaged_cache_rebuilt("truncated cache", truncate_cache);
    check_damaged_cache_rebuilt("cache cut inside the header", truncate_to_header);
    check_damaged_cache_rebuilt("foreign file", foreign_cache);
    check_damaged_cache_rebuilt("bad magic", bad_magic);
    check_damaged_cache_rebuilt("wrong version", bad_version);
    check_damaged_cache_rebuilt("id past the vocab", id_past_vocab);
    check_damaged_cache_rebuilt("token count past the file", more_tokens_claimed);
}

static void test_folder_source(void) {
    char dir[160], sub[200], a[200], b[200], c[200], md[200];
    tmp_file(dir, sizeof dir, "folder");
    snprintf(sub, sizeof sub, "%s/sub", dir);
    snprintf(a, sizeof a, "%s/a.txt", dir);
    snprintf(b, sizeof b, "%s/sub/b.txt", dir);
    snprintf(c, sizeof c, "%s/c.txt", dir);
    snprintf(md, sizeof md, "%s/notes.md", dir);
    mkdir(dir, 0755);
    mkdir(sub, 0755);
    const char *ta = "First file, about cats.\n", *tb = "Second file, about dogs.\n", *tc = "Third file.\n";
    write_all(c, tc, strlen(tc), "wb");
    write_all(a, ta, strlen(ta), "wb");
    write_all(b, tb, strlen(tb), "wb");
    write_all(md, "ignored\n", 8, "wb");
    Err err = {{0}};
    Dataset ds;
    char with_slash[200];
    snprintf(with_slash, sizeof with_slash, "%s/", dir);
    CHECK_OK(dataset_load(&ds, with_slash, bpe, 0.0, NULL, &err));
    char want_cache[200];
    expected_cache(dir, want_cache, sizeof want_cache);
    CHECK(strcmp(ds.cache_path, want_cache) == 0, "folder cache: expected %s, got %s", want_cache, ds.cache_path);
    // sorted by path: a.txt, c.txt, sub/b.txt — each file encoded on its own
    char all[256];
    snprintf(all, sizeof all, "%s%s%s", ta, tc, tb);
    check_tokens_equal_encoding(&ds, bpe, all, strlen(all));
    dataset_free(&ds);
    CHECK_OK(dataset_load(&ds, dir, bpe, 0.0, NULL, &err));
    CHECK(ds.reused_cache == 1 && ds.older_cache == 0, "folder cache should be reused");
    dataset_free(&ds);
    // an older lrsh's cache (version 1: files run together, marks kept) is rebuilt, and says so
    FILE *f = fopen(want_cache, "r+b");
    uint32_t v1 = 1;
    CHECK(f && fseek(f, 8, SEEK_SET) == 0 && fwrite(&v1, 4, 1, f) == 1, "patch the cache's version");
    if (f) fclose(f);
    CHECK_OK(dataset_load(&ds, dir, bpe, 0.0, NULL, &err));
    CHECK(ds.reused_cache == 0 && ds.older_cache == 1, "version 1 cache: reused %d, older %u", ds.reused_cache,
          ds.older_cache);
    dataset_free(&ds);
    write_all(b, "changed\n", 8, "wb");
    CHECK_OK(dataset_load(&ds, dir, bpe, 0.0, NULL, &err));
    CHECK(ds.reused_cache == 0, "a changed file in the folder should rebuild");
    dataset_free(&ds);
    char empty_dir[200];
    snprintf(empty_dir, sizeof empty_dir, "%s/nothing", dir);
    mkdir(empty_dir, 0755);
    int rc = dataset_load(&ds, empty_dir, bpe, 0.0, NULL, &err);
    CHECK(rc == -1 && strstr(err.msg, empty_dir) && strstr(err.msg, "no *.txt"), "empty folder: got \"%s\"", err.msg);
}

// dir/name holding text; a symbolic link dir/name → target.
static void put_file(const char *dir, const char *name, const char *text) {
    char path[300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    write_all(path, text, strlen(text), "wb");
}

static void put_link(const char *target, const char *dir, const char *name) {
    char path[300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    CHECK(symlink(target, path) == 0, "symlink %s", path);
}

// Files that do not end in a newline are joined by one (not run together), a byte-order mark is
// dropped, links to folders are followed but not back to a folder read (a loop), to the source's
// parent or to /; the
// listing counts what was read and left, lrsh's own caches not among the left.
static void test_folder_joins_and_links(void) {
    char dir[160], real[160], path[256], through_file[300];
    tmp_file(dir, sizeof dir, "joined");
    tmp_file(real, sizeof real, "shards");
    mkdir(dir, 0755);
    mkdir(real, 0755);
    put_file(dir, "a.txt", "The end of the first story.");
    put_file(dir, "b.txt", "\xEF\xBB\xBFOnce upon a time.");
    put_file(real, "s.txt", "A shard.\n");
    put_file(dir, "notes.md", "left out\n");
    put_link(real, dir, "c-shard");
    put_link(dir, real, "loop");        // shards/loop → joined: back to the start
    put_link(tmp_dir, dir, "up");       // joined/up → its parent: every test's files
    put_link("/", real, "root");        // the whole file system
    snprintf(through_file, sizeof through_file, "%s/a.txt/x", dir);
    put_link(through_file, real, "dangling.txt");   // dangling through a file (ENOTDIR): skipped as any dangling link
    Err err = {{0}};
    Dataset ds;
    CHECK_OK(dataset_load(&ds, dir, bpe, 0.0, NULL, &err));
    const char *all = "The end of the first story.\nOnce upon a time.\nA shard.\n";
    check_tokens_equal_encoding(&ds, bpe, all, strlen(all));
    CHECK(ds.listing.folder == 1 && ds.listing.files == 3, "listing: folder %d, %ld files", ds.listing.folder,
          ds.listing.files);
    CHECK(ds.listing.skipped_files == 1 && strcmp(ds.listing.first_skipped, "notes.md") == 0, "skipped %d (%s)",
          ds.listing.skipped_files, ds.listing.first_skipped);
    CHECK(ds.listing.not_followed == 3, "links not followed: %d", ds.listing.not_followed);
    dataset_free(&ds);
    // a cache made for the shard folder (beside it: inside `joined` through its link) is not a
    // file the corpus left out
    snprintf(path, sizeof path, "%s/c-shard", dir);
    CHECK_OK(dataset_load(&ds, path, bpe, 0.0, NULL, &err));
    dataset_free(&ds);
    CHECK_OK(dataset_load(&ds, dir, bpe, 0.0, NULL, &err));
    CHECK(ds.listing.skipped_files == 1, "an own cache counted as left out: %d (%s)", ds.listing.skipped_files,
          ds.listing.first_skipped);
    dataset_free(&ds);
    // "." is cached by its own name beside it, not as "..TAG.tok" inside it
    char cwd[PATH_MAX], want[300], got[300];
    CHECK(getcwd(cwd, sizeof cwd) != NULL, "getcwd");
    CHECK(chdir(dir) == 0, "chdir %s", dir);
    Err e2 = {{0}};
    int rc = dataset_cache_path(".", bpe, NULL, got, sizeof got, &e2);
    CHECK(chdir(cwd) == 0, "chdir back");
    expected_cache(dir, want, sizeof want);
    char real_want[PATH_MAX];
    CHECK(realpath(dir, real_want) != NULL, "realpath");
    CHECK(rc == 0 && strncmp(got, real_want, strlen(real_want)) == 0 && strcmp(got + strlen(real_want), want + strlen(dir)) == 0,
          "cache of \".\": %s (want %s)", got, want);
}

// A link inside the corpus to its own subfolder is not followed (the folder is read by its own
// path, whichever name the file system lists first), a file reached by two names is read once
// under the first in sorted order, and the walk's order is the names' (so the list and the
// cache's hash do not depend on the file system's directory order).
static void test_folder_second_names(void) {
    char dir[160], sib[160], path[256], target[256];
    tmp_file(dir, sizeof dir, "named");
    tmp_file(sib, sizeof sib, "sibling");
    mkdir(dir, 0755);
    mkdir(sib, 0755);
    snprintf(path, sizeof path, "%s/m_sub", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/.shards", dir);   // a hidden folder, linked in under a visible name
    mkdir(path, 0755);
    put_file(dir, "m_sub/f.txt", "In the subfolder.\n");
    put_file(sib, "x.txt", "Outside, linked twice.\n");
    put_file(dir, ".shards/s1.txt", "A hidden shard.\n");
    snprintf(target, sizeof target, "%s/x.txt", sib);
    put_link("m_sub", dir, "a_alias");
    put_link(target, dir, "filelink.txt");
    put_link(sib, dir, "tosib");
    put_link(".shards", dir, "shards");
    Err err = {{0}};
    Dataset ds;
    CHECK_OK(dataset_load(&ds, dir, bpe, 0.0, NULL, &err));
    // filelink.txt (x.txt's first name in sorted order), m_sub/f.txt, shards/s1.txt (the walk skips
    // .shards itself); not a_alias/f.txt, not tosib/x.txt
    const char *all = "Outside, linked twice.\nIn the subfolder.\nA hidden shard.\n";
    check_tokens_equal_encoding(&ds, bpe, all, strlen(all));
    CHECK(ds.listing.files == 3 && ds.listing.not_followed == 2, "files %ld, not followed %d", ds.listing.files,
          ds.listing.not_followed);
    dataset_free(&ds);
    char **paths;
    size_t count;
    CHECK_OK(dataset_source_files(dir, &paths, &count, &err));
    CHECK(count == 3 && strstr(paths[0], "/named/filelink.txt") && strstr(paths[1], "/named/m_sub/f.txt") &&
          strstr(paths[2], "/named/shards/s1.txt"), "files: %zu, %s", count, count ? paths[0] : "");
    dataset_files_free(paths, count);
}

static void test_bad_sources(void) {
    Err err = {{0}};
    Dataset ds;
    char missing[160], empty[160], bad[160];
    tmp_file(missing, sizeof missing, "none.txt");
    tmp_file(empty, sizeof empty, "empty.txt");
    tmp_file(bad, sizeof bad, "bad.txt");
    write_all(empty, "", 0, "wb");
    int rc = dataset_load(&ds, missing, bpe, 0.1, NULL, &err);
    CHECK(rc == -1 && strstr(err.msg, missing) && strstr(err.msg, "cannot open"), "missing file: got \"%s\"", err.msg);
    rc = dataset_load(&ds, empty, bpe, 0.1, NULL, &err);
    CHECK(rc == -1 && strstr(err.msg, empty) && strstr(err.msg, "empty corpus"), "empty file: got \"%s\"", err.msg);
    rc = dataset_load(&ds, corpus_path, NULL, 0.1, NULL, &err);
    CHECK(rc == -1 && strstr(err.msg, "no tokenizer"), "no tokenizer: got \"%s\"", err.msg);

    // an invalid byte past the first 1 MB read: the offset is the file's, not the chunk's
    size_t n;
    char *text = read_all(corpus_path, &n);
    size_t at = 1500000 < n ? 1500000 : n / 2;
    text[at] = (char)0xff;
    write_all(bad, text, n, "wb");
    rc = dataset_load(&ds, bad, bpe, 0.1, NULL, &err);
    char want[64];
    snprintf(want, sizeof want, "invalid UTF-8 at byte offset %zu", at);
    CHECK(rc == -1 && strstr(err.msg, bad) && strstr(err.msg, want), "bad UTF-8: expected \"%s\", got \"%s\"", want, err.msg);
    char tok_path[200];
    expected_cache(bad, tok_path, sizeof tok_path);
    CHECK(access(tok_path, F_OK) != 0, "a failed load left %s behind", tok_path);
    free(text);
    CHECK(ds.tokens == NULL && ds.map == NULL, "a failed load should leave the dataset empty");
}

static void test_val_split(void) {
    Err err = {{0}};
    Dataset ds;
    double fractions[] = {0.0, 0.05, 0.5};
    for (int i = 0; i < 3; i++) {
        CHECK_OK(dataset_load(&ds, corpus_path, bpe, fractions[i], NULL, &err));
        long want = (long)((1.0 - fractions[i]) * (double)ds.n_tokens);
        CHECK(ds.n_train == want, "val=%g: n_train %ld, expected %ld of %ld", fractions[i], ds.n_train, want, ds.n_tokens);
        dataset_free(&ds);
    }
    double bad[] = {-0.1, 0.51, 1.0, NAN};
    for (int i = 0; i < 4; i++) {
        int rc = dataset_load(&ds, corpus_path, bpe, bad[i], NULL, &err);
        CHECK(rc == -1 && strstr(err.msg, "0..0.5"), "val=%g should fail naming the range, got \"%s\"", bad[i], err.msg);
    }
}

// Every row must be T+1 consecutive cache tokens from the right part: row[1..T] are the
// targets (the next tokens) of row[0..T-1].
static int row_is_slice(const Dataset *ds, const int32_t *row, int T, long lo, long hi) {
    for (long p = lo; p + T < hi; p++) {
        int t = 0;
        while (t <= T && token_at(ds, p + t) == row[t]) t++;
        if (t > T) return 1;
    }
    return 0;
}

// The mapped cache cut short under a batch: rewritten at its path, said at the next batch;
// cut short while its path names another file (only the race would see it), the read's fault
// (SIGBUS) comes back as an error and the session goes on.
// A copy of the test corpus at a file of its own, loaded (its token cache built beside it).
static void load_copy(const char *name, char *path, size_t cap, Dataset *ds, Err *err) {
    tmp_file(path, cap, name);
    size_t n;
    char *text = read_all(corpus_path, &n);
    write_all(path, text, n, "wb");
    free(text);
    int rc = dataset_load(ds, path, bpe, 0.1, NULL, err);
    CHECK(rc == 0, "load %s: %s", path, err->msg);
}

static void test_cache_cut_short_under_a_batch(void) {
    char path[160], other[sizeof ((Dataset *)0)->cache_path + 8];
    Err err = {{0}};
    Dataset ds;
    load_copy("cut.txt", path, sizeof path, &ds, &err);
    enum { B = 4, T = 64 };
    int32_t x[B * (T + 1)];
    uint64_t rng = 7;
    CHECK(truncate(ds.cache_path, 80) == 0, "truncate %s", ds.cache_path);
    CHECK(dataset_batch(&ds, 0, B, T, &rng, x, &err) != 0 && strstr(err.msg, "was rewritten since"),
          "a cache cut short at its path: '%s'", err.msg);
    snprintf(other, sizeof other, "%s.other", ds.cache_path);
    write_all(other, "x", 1, "wb");
    CHECK(rename(other, ds.cache_path) == 0, "rename over %s", ds.cache_path);
    err.msg[0] = '\0';
    int faults = 0;
    for (int i = 0; i < 20; i++)   // every window past the first 80 bytes faults
        faults += dataset_batch(&ds, 0, B, T, &rng, x, &err) != 0 && strstr(err.msg, "was cut short while it was read");
    CHECK(faults == 20, "reads of the cut mapping: %d of 20 errors ('%s')", faults, err.msg);
    // the unigram entropy `runs` judges plateaus by reads the whole validation split (after every
    // eval_every evaluation): no answer, not a fault that ends the session
    CHECK(isnan(dataset_unigram_entropy(&ds)), "the entropy of a cut mapping is NaN");
    dataset_free(&ds);
}

static void cut_to_header(const char *path) {
    dataset_cache_mapped_hook = NULL;   // once
    CHECK(truncate(path, 64) == 0, "truncate %s", path);
}

// The cache cut short between its mapping and the scan of its ids (another program rewriting
// it): no cache, built again — the scan's fault (SIGBUS) ended the whole session.
static void test_cache_cut_short_under_its_check(void) {
    char path[160];
    Err err = {{0}};
    Dataset ds;
    load_copy("cutscan.txt", path, sizeof path, &ds, &err);
    long tokens = ds.n_tokens;
    dataset_free(&ds);
    dataset_cache_mapped_hook = cut_to_header;
    CHECK_OK(dataset_load(&ds, path, bpe, 0.1, NULL, &err));
    CHECK(dataset_cache_mapped_hook == NULL, "the cache was mapped and checked");
    CHECK(ds.n_tokens == tokens, "rebuilt: %ld tokens, %ld before", ds.n_tokens, tokens);
    dataset_cache_mapped_hook = NULL;
    dataset_free(&ds);
}

static void test_batches(void) {
    Err err = {{0}};
    Dataset ds;
    CHECK_OK(dataset_load(&ds, corpus_path, bpe, 0.1, NULL, &err));
    enum { B = 4, T = 64 };
    int32_t x[B * (T + 1)], y[B * (T + 1)], z[B * (T + 1)];
    uint64_t s1 = 42, s2 = 42, s3 = 43;
    CHECK_OK(dataset_batch(&ds, 0, B, T, &s1, x, &err));
    CHECK_OK(dataset_batch(&ds, 0, B, T, &s2, y, &err));
    CHECK_OK(dataset_batch(&ds, 0, B, T, &s3, z, &err));
    CHECK(memcmp(x, y, sizeof x) == 0, "the same seed should give the same batch");
    CHECK(memcmp(x, z, sizeof x) != 0, "another seed should give another batch");
    CHECK(s1 == s2 && s1 != 42, "the rng state should advance");
    for (int b = 0; b < B; b++)
        CHECK(row_is_slice(&ds, x + b * (T + 1), T, 0, ds.n_train), "train row %d is not a slice of the train part", b);
    CHECK_OK(dataset_batch(&ds, 1, B, T, &s1, x, &err));
    for (int b = 0; b < B; b++)
        CHECK(row_is_slice(&ds, x + b * (T + 1), T, ds.n_train, ds.n_tokens), "val row %d is not a slice of the val part", b);
    int rc = dataset_batch(&ds, 0, 0, T, &s1, x, &err);
    CHECK(rc == -1 && err.msg[0], "batch=0 should fail");
    rc = dataset_batch(&ds, 2, B, T, &s1, x, &err);
    CHECK(rc == -1 && err.msg[0], "split 2 should fail");
    dataset_free(&ds);
    rc = dataset_batch(&ds, 0, B, T, &s1, x, &err);
    CHECK(rc == -1 && strstr(err.msg, "no data"), "batch without data: got \"%s\"", err.msg);

    // a tiny corpus: the val part is too short for a window, and the message says by how much
    char small[160];
    tmp_file(small, sizeof small, "tiny.txt");
    const char *s = "A short text of a few dozen tokens, split into train and validation parts.\n";
    write_all(small, s, strlen(s), "wb");
    CHECK_OK(dataset_load(&ds, small, bpe, 0.2, NULL, &err));
    long n_val = ds.n_tokens - ds.n_train;
    rc = dataset_batch(&ds, 1, 1, 16, &s1, x, &err);
    char want[64];
    snprintf(want, sizeof want, "has %ld tokens", n_val);
    CHECK(rc == -1 && strstr(err.msg, want) && strstr(err.msg, "17"), "short val split: got \"%s\"", err.msg);
    int32_t w[512];
    CHECK(ds.n_train < 512, "tiny corpus has %ld train tokens", ds.n_train);
    if (ds.n_train < 512) CHECK_OK(dataset_batch(&ds, 0, 1, (int)ds.n_train - 1, &s1, w, &err));  // exactly one window fits
    CHECK(w[0] == token_at(&ds, 0), "the only window starts at token 0");
    dataset_free(&ds);
}

// A SentencePiece model with a vocab above 65536 without a long training run: extra pieces
// appended to a trained model's ModelProto (a repeated field, so appending adds entries).
static Tokenizer *big_vocab_tokenizer(int extra, Err *err) {
    size_t size;
    const unsigned char *base = tokenizer_bytes(bpe, &size);
    unsigned char *buf = malloc(size + (size_t)extra * 24);
    memcpy(buf, base, size);
    size_t n = size;
    for (int i = 0; i < extra; i++) {
        char piece[16];
        int len = snprintf(piece, sizeof piece, "\xe2\x9f\xa6%d", i);  // "⟦N": never in the corpus
        float score = -1e6f - (float)i;
        buf[n++] = 0x0a;                      // ModelProto.pieces, length-delimited
        buf[n++] = (unsigned char)(2 + len + 5);
        buf[n++] = 0x0a;                      // SentencePiece.piece
        buf[n++] = (unsigned char)len;
        memcpy(buf + n, piece, (size_t)len);
        n += (size_t)len;
        buf[n++] = 0x15;                      // SentencePiece.score, fixed32
        memcpy(buf + n, &score, 4);
        n += 4;
    }
    Tokenizer *tok = tokenizer_load_bytes(buf, n, err);
    free(buf);
    return tok;
}

static void test_uint32_ids_for_big_vocab(void) {
    Err err = {{0}};
    Tokenizer *big = big_vocab_tokenizer(70000, &err);
    CHECK(big && tokenizer_vocab_size(big) == 2048 + 70000, "big vocab model: %s", err.msg);
    if (!big) return;
    char path[160];
    tmp_file(path, sizeof path, "u32.txt");
    size_t n;
    char *text = read_all(corpus_path, &n);
    write_all(path, text, 200000, "wb");
    Dataset ds;
    CHECK_OK(dataset_load(&ds, path, big, 0.1, NULL, &err));
    CHECK(ds.token_bytes == 4, "vocab %d: expected uint32 ids, got %d bytes", tokenizer_vocab_size(big), ds.token_bytes);
    struct stat st;
    stat(ds.cache_path, &st);
    CHECK(st.st_size == 64 + 4 * ds.n_tokens, "cache size %ld for %ld uint32 tokens", (long)st.st_size, ds.n_tokens);
    check_tokens_equal_encoding(&ds, big, text, 200000);
    int32_t x[2 * 9];
    uint64_t seed = 7;
    CHECK_OK(dataset_batch(&ds, 0, 2, 8, &seed, x, &err));
    CHECK(row_is_slice(&ds, x, 8, 0, ds.n_train), "uint32 batch row is not a slice");
    dataset_free(&ds);
    // the same file with the small tokenizer: uint16 again, and a rebuild
    CHECK_OK(dataset_load(&ds, path, bpe, 0.1, NULL, &err));
    CHECK(ds.token_bytes == 2 && ds.reused_cache == 0, "back to vocab 2048: uint16 and rebuilt");
    dataset_free(&ds);
    tokenizer_free(big);
    free(text);
}

static void test_cache_dir(void) {
    Err err = {{0}};
    Dataset ds;
    char dir[160];
    tmp_file(dir, sizeof dir, "cache/deeper");
    CHECK_OK(dataset_load(&ds, corpus_path, bpe, 0.1, dir, &err));
    CHECK(strncmp(ds.cache_path, dir, strlen(dir)) == 0 && access(ds.cache_path, R_OK) == 0,
          "cache should be under %s, is %s", dir, ds.cache_path);
    dataset_free(&ds);
    CHECK_OK(dataset_load(&ds, corpus_path, bpe, 0.1, dir, &err));
    CHECK(ds.reused_cache == 1, "the cache under cache_dir should be reused");
    dataset_free(&ds);
}

static void test_default_corpus(void) {
    size_t n;
    char *text = read_all(corpus_path, &n);
    CHECK(text && n > 1000000, "default corpus too small: %zu bytes", text ? n : 0);
    if (!text) return;
    CHECK(tokenizer_utf8_valid_prefix(text, n) == n, "default corpus is not valid UTF-8");
    CHECK(!strstr(text, "\n%\n") && !memchr(text, '\b', n) && !memchr(text, '\a', n),
          "default corpus still holds %% separators or control characters");
    char again[160];
    tmp_file(again, sizeof again, "corpus2.txt");
    Err err = {{0}};
    CHECK_OK(dataset_default_corpus(again, &err));
    size_t m;
    char *text2 = read_all(again, &m);
    CHECK(text2 && m == n && memcmp(text, text2, n) == 0, "the default corpus should be the same on every build");
    int rc = dataset_default_corpus("/nonexistent-dir/corpus.txt", &err);
    CHECK(rc == -1 && strstr(err.msg, "/nonexistent-dir/corpus.txt"), "unwritable corpus path: got \"%s\"", err.msg);
    free(text);
    free(text2);
}

// ~20 MB through dataset_load: peak memory must stay far below the file size (the 100 MB
// measurement is bench/bench_data.c).
static void test_streaming_memory(void) {
    char path[160];
    tmp_file(path, sizeof path, "big.txt");
    size_t n;
    char *text = read_all(corpus_path, &n);
    FILE *f = fopen(path, "wb");
    size_t total = 0;
    while (total < 20u << 20) { fwrite(text, 1, n, f); total += n; }
    fclose(f);
    free(text);
    // reset the peak (VmHWM) to the current RSS, so that only this load counts
    FILE *c = fopen("/proc/self/clear_refs", "w");
    int reset = c && fputs("5", c) >= 0;
    if (c) fclose(c);
    long before = proc_status_kb("VmRSS:");
    Err err = {{0}};
    Dataset ds;
    CHECK_OK(dataset_load(&ds, path, bpe, 0.05, NULL, &err));
    long peak = proc_status_kb("VmHWM:");
    // the mapping counts toward RSS only through pages touched (the id check reads them all)
    long map_kb = (long)(ds.map_size >> 10);
    long growth = peak - before - map_kb;
#ifdef __SANITIZE_ADDRESS__
    reset = 0;  // ASan's quarantine keeps freed memory resident: the peak says nothing here
#endif
    CHECK(!reset || growth < 30 * 1024, "streaming %zu MB grew peak RSS by %ld kB beyond the %ld kB mapping",
          total >> 20, growth, map_kb);
    printf("     streaming %zu MB: peak RSS growth %ld kB (excluding the %ld kB token mapping)%s\n", total >> 20,
           growth, map_kb, reset ? "" : " [not checked: no peak reset, or under ASan]");
    dataset_free(&ds);
    remove(path);
    char cache[200];
    expected_cache(path, cache, sizeof cache);
    remove(cache);
}

int main(void) {
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/lrsh_test_data_XXXXXX");
    if (!mkdtemp(tmp_dir)) { perror("mkdtemp"); return 1; }
    tmp_file(corpus_path, sizeof corpus_path, "corpus.txt");
    char model[160];
    tmp_file(model, sizeof model, "bpe.model");
    Err err = {{0}};
    if (dataset_default_corpus(corpus_path, &err) != 0 ||
        !(bpe = tokenizer_train(corpus_path, 2048, TOKENIZER_BPE, model, NULL, NULL, &err))) {
        printf("FAIL setup: %s\n0 passed, 1 failed\n", err.msg);
        return 1;
    }
    RUN(test_streaming_memory);
    RUN(test_default_corpus);
    RUN(test_cache_created_reused_and_rebuilt);
    RUN(test_progress_and_stop);
    RUN(test_other_tokenizer_rebuilds);
    RUN(test_damaged_caches_are_rebuilt);
    RUN(test_folder_source);
    RUN(test_folder_joins_and_links);
    RUN(test_folder_second_names);
    RUN(test_bad_sources);
    RUN(test_val_split);
    RUN(test_batches);
    RUN(test_cache_cut_short_under_a_batch);
    RUN(test_cache_cut_short_under_its_check);
    RUN(test_uint32_ids_for_big_vocab);
    RUN(test_cache_dir);
    tokenizer_free(bpe);
    nftw(tmp_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return TEST_SUMMARY();
}
