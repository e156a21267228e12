// test_tokenizer.c — the SentencePiece shim: training (BPE, unigram), exact round trips of the
// whole default corpus, load from path == load from bytes, and every bad input as an error.
#include "test.h"
#include "test_fixtures.h"
#include "../tokenizer/tokenizer.h"
#include "../engine/dataset.h"

#include <ftw.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

// Shared by the tests: a temporary folder, the default corpus in it, a BPE model trained on it.
static char tmp_dir[64], corpus_path[128], model_path[128];
static Tokenizer *bpe;

static void write_all(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
}

static void tmp_file(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", tmp_dir, name); }

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

// encode → decode must give back exactly the bytes; so must the concatenated pieces.
static void check_round_trip(const Tokenizer *tok, const char *text, size_t n, const char *what) {
    Err err = {{0}};
    int32_t *ids = NULL;
    long m = tokenizer_encode(tok, text, n, &ids, &err);
    CHECK(m >= 0, "%s: encode failed: %s", what, err.msg);
    if (m < 0) return;
    char *back = tokenizer_decode(tok, ids, m, &err);
    CHECK(back && strlen(back) == n && memcmp(back, text, n) == 0, "%s: decode(encode(text)) differs (%zu bytes in, %zu out)",
          what, n, back ? strlen(back) : 0);
    char *joined = malloc(n + 1);
    size_t at = 0;
    int fits = 1;
    for (long i = 0; i < m && fits; i++) {
        char *p = tokenizer_decode_piece(tok, ids[i], &err);
        size_t k = p ? strlen(p) : 0;
        fits = p && at + k <= n;
        if (fits) { memcpy(joined + at, p, k); at += k; }
        free(p);
    }
    CHECK(fits && at == n && memcmp(joined, text, n) == 0, "%s: the decoded pieces do not join into the text", what);
    free(joined);
    free(back);
    free(ids);
}

static void test_bpe_round_trips_whole_default_corpus(void) {
    CHECK(bpe != NULL, "BPE training on the default corpus failed");
    if (!bpe) return;
    CHECK(tokenizer_vocab_size(bpe) == 2048, "vocab: expected 2048, got %d", tokenizer_vocab_size(bpe));
    CHECK(tokenizer_bos_id(bpe) == 1 && tokenizer_eos_id(bpe) == 2, "bos/eos: expected 1/2, got %d/%d",
          tokenizer_bos_id(bpe), tokenizer_eos_id(bpe));
    CHECK(access(model_path, R_OK) == 0, "model file %s was not written", model_path);
    size_t n;
    char *text = read_all(corpus_path, &n);
    CHECK(text && n > 1000000, "default corpus: expected > 1 MB, got %zu bytes", text ? n : 0);
    if (!text) return;
    check_round_trip(bpe, text, n, "whole default corpus");
    Err err = {{0}};
    int32_t *ids = NULL;
    long m = tokenizer_encode(bpe, text, n, &ids, &err);
    CHECK(m > 0 && m < (long)n / 2, "BPE should compress: %ld ids for %zu bytes", m, n);
    free(ids);
    free(text);
}

static void test_byte_fallback_and_specials(void) {
    if (!bpe) return;
    const char *s = "emoji 😀, 中文字符, ü, tabs\t\tand  double  spaces\n\n  indented\r\nend";
    check_round_trip(bpe, s, strlen(s), "unseen characters");
    check_round_trip(bpe, "", 0, "empty text");
    Err err = {{0}};
    int32_t ids[2] = {tokenizer_bos_id(bpe), tokenizer_eos_id(bpe)};
    char *d = tokenizer_decode(bpe, ids, 2, &err);
    CHECK(d && d[0] == 0, "bos/eos should decode to nothing, got \"%s\" (%s)", d ? d : "", err.msg);
    free(d);
    int32_t *nul_ids = NULL;   // a NUL byte (piece <0x00>) would end the C string: U+FFFD, and the rest stays
    long n = tokenizer_encode(bpe, "a\0b", 3, &nul_ids, &err);
    d = n > 0 ? tokenizer_decode(bpe, nul_ids, n, &err) : NULL;
    CHECK(d && strcmp(d, "a\xEF\xBF\xBD" "b") == 0, "a NUL decodes as U+FFFD with the text after it: got \"%s\" (%s)",
          d ? d : "", err.msg);
    free(d);
    free(nul_ids);
}

// The corpus, and in *cut the length of its first whole lines up to max bytes (NULL: none).
static char *corpus_head(size_t max, size_t *cut) {
    size_t n;
    char *text = read_all(corpus_path, &n);
    if (!text) { CHECK(0, "no corpus"); return NULL; }
    *cut = n < max ? n : max;
    while (*cut > 0 && text[*cut - 1] != '\n') --*cut;
    return text;
}

static void test_unigram_trains(void) {
    size_t cut;
    char *text = corpus_head(600000, &cut);   // a 600 KB slice keeps unigram training to a couple of seconds
    if (!text) return;
    char slice[160], out[160];
    tmp_file(slice, sizeof slice, "slice.txt");
    tmp_file(out, sizeof out, "uni.model");
    write_all(slice, text, cut);
    Err err = {{0}};
    Tokenizer *uni = tokenizer_train(slice, 1000, TOKENIZER_UNIGRAM, out, NULL, NULL, &err);
    CHECK(uni != NULL, "unigram training failed: %s", err.msg);
    if (uni) {
        CHECK(tokenizer_vocab_size(uni) == 1000, "unigram vocab: expected 1000, got %d", tokenizer_vocab_size(uni));
        check_round_trip(uni, text, cut < 100000 ? cut : 100000, "unigram, corpus head");
        const char *s = "Unseen: Ωμέγα 😀\n";
        check_round_trip(uni, s, strlen(s), "unigram, unseen characters");
    }
    tokenizer_free(uni);
    free(text);
}

// The same corpus in two folders trains the same bytes: SentencePiece records the corpus's name
// as given, and the absolute path made a checkpoint's bytes depend on where the corpus lay.
static void test_train_bytes_independent_of_folder(void) {
    size_t cut;
    char *text = corpus_head(200000, &cut);
    if (!text) return;
    char dir[2][160], path[2][400], out[2][400];
    Tokenizer *t[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) {
        snprintf(dir[i], sizeof dir[i], "%s/%s", tmp_dir, i ? "a/much/longer/folder" : "c1");
        char mk[400];
        snprintf(mk, sizeof mk, "%s/%s", tmp_dir, i ? "a" : "c1");
        mkdir(mk, 0700);
        if (i) { strcat(mk, "/much"); mkdir(mk, 0700); strcat(mk, "/longer"); mkdir(mk, 0700); mkdir(dir[i], 0700); }
        snprintf(path[i], sizeof path[i], "%s/x.txt", dir[i]);
        snprintf(out[i], sizeof out[i], "%s/x.model", dir[i]);
        write_all(path[i], text, cut);
        Err err = {{0}};
        t[i] = tokenizer_train(path[i], 400, TOKENIZER_BPE, out[i], NULL, NULL, &err);
        CHECK(t[i] != NULL, "training on %s: %s", path[i], err.msg);
    }
    if (t[0] && t[1]) {
        size_t s0, s1;
        const void *b0 = tokenizer_bytes(t[0], &s0), *b1 = tokenizer_bytes(t[1], &s1);
        CHECK(s0 == s1 && memcmp(b0, b1, s0) == 0, "tokenizer bytes differ by folder (%zu vs %zu bytes)", s0, s1);
    }
    tokenizer_free(t[0]);
    tokenizer_free(t[1]);
    free(text);
}

static void test_load_from_bytes_equals_load_from_path(void) {
    if (!bpe) return;
    Err err = {{0}};
    Tokenizer *a = tokenizer_load(model_path, &err);
    CHECK(a != NULL, "load %s: %s", model_path, err.msg);
    if (!a) return;
    size_t size, file_size;
    const void *bytes = tokenizer_bytes(a, &size);
    char *file = read_all(model_path, &file_size);
    CHECK(file && size == file_size && memcmp(bytes, file, size) == 0, "tokenizer_bytes differs from the model file");
    Tokenizer *b = tokenizer_load_bytes(bytes, size, &err);
    CHECK(b != NULL, "load from bytes: %s", err.msg);
    const char *s = "The quick brown fox jumps over the lazy dog.\nA fortune a day.\n";
    int32_t *ia = NULL, *ib = NULL, *ic = NULL;
    long na = tokenizer_encode(a, s, strlen(s), &ia, &err);
    long nb = b ? tokenizer_encode(b, s, strlen(s), &ib, &err) : -1;
    long nc = tokenizer_encode(bpe, s, strlen(s), &ic, &err);
    CHECK(na > 0 && na == nb && na == nc && !memcmp(ia, ib, (size_t)na * 4) && !memcmp(ia, ic, (size_t)na * 4),
          "ids differ between loads: %ld / %ld / %ld", na, nb, nc);
    CHECK(b && tokenizer_vocab_size(b) == tokenizer_vocab_size(a), "vocab differs between loads");
    free(ia); free(ib); free(ic); free(file);
    tokenizer_free(a);
    tokenizer_free(b);
}

// A training call that must fail with a message holding both `a` and `b`, and leave no model.
static void expect_train_error(const char *text_path, int vocab, const char *a, const char *b) {
    char out[160];
    tmp_file(out, sizeof out, "bad.model");
    unlink(out);
    Err err = {{0}};
    Tokenizer *t = tokenizer_train(text_path, vocab, TOKENIZER_BPE, out, NULL, NULL, &err);
    CHECK(t == NULL, "training on %s with vocab %d should fail", text_path, vocab);
    CHECK(strstr(err.msg, a) && strstr(err.msg, b), "error for %s: expected \"%s\" and \"%s\", got \"%s\"", text_path, a, b, err.msg);
    CHECK(!strchr(err.msg, '\n'), "error is not one line: %s", err.msg);
    CHECK(access(out, F_OK) != 0, "a failed training left %s behind", out);
    tokenizer_free(t);
}

static void test_train_errors(void) {
    char missing[160], empty[160], blank[160], bad[160], cut[160], small[160];
    tmp_file(missing, sizeof missing, "no-such-file.txt");
    tmp_file(empty, sizeof empty, "empty.txt");
    tmp_file(blank, sizeof blank, "blank.txt");
    tmp_file(bad, sizeof bad, "latin1.txt");
    tmp_file(cut, sizeof cut, "cut.txt");
    tmp_file(small, sizeof small, "small.txt");
    write_all(empty, "", 0);
    write_all(blank, "\n  \n\t\n", 6);
    write_all(bad, "hello\nwor\xe9ld\n", 13);       // Latin-1 é at byte 9
    write_all(cut, "fine text \xe2\x82", 12);        // a 3-byte sequence cut short at byte 10
    const char *few = "a tiny corpus with a few words\nnot enough for a big vocab\n";
    write_all(small, few, strlen(few));
    expect_train_error(missing, 2048, missing, "cannot open");
    expect_train_error(tmp_dir, 2048, tmp_dir, "a folder; tok train reads one text file");
    expect_train_error(empty, 2048, empty, "empty corpus");
    expect_train_error(blank, 2048, blank, "empty corpus");
    expect_train_error(bad, 2048, bad, "invalid UTF-8 at byte offset 9");
    expect_train_error(cut, 2048, cut, "invalid UTF-8 at byte offset 10");
    expect_train_error(corpus_path, 100, "vocab=100", "261..1048576");
    expect_train_error(corpus_path, 1 << 21, "out of range", "261..1048576");
    expect_train_error(small, 5000, small, "vocab=5000");
    char one_line[160];
    tmp_file(one_line, sizeof one_line, "one-line.txt");
    FILE *f = fopen(one_line, "wb");
    for (int i = 0; i < 3000; i++) fputs("no line breaks here ", f);  // 60 KB, one line
    fclose(f);
    expect_train_error(one_line, 400, one_line, "no line to train on");
    // the model cannot be written: an error, no crash
    Err err = {{0}};
    Tokenizer *t = tokenizer_train(small, 300, TOKENIZER_BPE, "/nonexistent-dir/m.model", NULL, NULL, &err);
    CHECK(t == NULL && strstr(err.msg, "/nonexistent-dir/m.model"), "unwritable output: got \"%s\"", err.msg);
    tokenizer_free(t);
}

// A stop callback that answers "stop" at its asks-th call.
static int stop_at(void *ctx, double done, double total) {
    (void)done, (void)total;
    int *asks = ctx;
    return --*asks <= 0;
}

// Training runs in a child process that a stop kills: NULL, "interrupted", no file; a stop
// never asked for (the answer 0 until the end) changes nothing.
static void test_train_stops(void) {
    char out[160];
    tmp_file(out, sizeof out, "stopped.model");
    Err err = {{0}};
    int asks = 1;   // at the first poll, 100 ms in: long before a vocab of 2048 is learned
    Tokenizer *t = tokenizer_train(corpus_path, 2048, TOKENIZER_BPE, out, stop_at, &asks, &err);
    CHECK(t == NULL && strstr(err.msg, "tokenizer training interrupted"), "stopped training: got \"%s\"", err.msg);
    CHECK(access(out, F_OK) != 0, "a stopped training wrote %s", out);
    tokenizer_free(t);
    asks = 1 << 30;
    t = tokenizer_train(corpus_path, 400, TOKENIZER_BPE, out, stop_at, &asks, &err);
    CHECK(t && tokenizer_vocab_size(t) == 400 && access(out, F_OK) == 0, "a training never stopped: %s", err.msg);
    CHECK(asks < 1 << 30, "stop was never asked");
    tokenizer_free(t);
}

static void test_load_errors(void) {
    Err err = {{0}};
    char missing[160], junk[160];
    tmp_file(missing, sizeof missing, "missing.model");
    tmp_file(junk, sizeof junk, "junk.model");
    write_all(junk, "this is not a protobuf \xff\xff\xff\xff", 27);
    Tokenizer *t = tokenizer_load(missing, &err);
    CHECK(!t && strstr(err.msg, missing) && strstr(err.msg, "cannot open"), "missing model: got \"%s\"", err.msg);
    t = tokenizer_load(junk, &err);
    CHECK(!t && strstr(err.msg, junk) && strstr(err.msg, "not a SentencePiece model"), "junk model: got \"%s\"", err.msg);
    t = tokenizer_load(tmp_dir, &err);
    CHECK(!t && strstr(err.msg, "not a regular file"), "folder as model: got \"%s\"", err.msg);
    t = tokenizer_load_bytes("", 0, &err);
    CHECK(!t && strstr(err.msg, "empty"), "empty bytes: got \"%s\"", err.msg);
    t = tokenizer_load_bytes("\x0a\x05garbage", 9, &err);
    CHECK(!t && err.msg[0], "garbage bytes: expected an error");
    tokenizer_free(t);
}

static void test_encode_decode_errors(void) {
    if (!bpe) return;
    Err err = {{0}};
    int32_t *ids = (int32_t *)1;
    long n = tokenizer_encode(bpe, "ok \xc3\x28 bad", 8, &ids, &err);  // 0xC3 needs a continuation byte
    CHECK(n == -1 && ids == NULL && strstr(err.msg, "invalid UTF-8 at byte offset 3"), "bad UTF-8: got %ld, \"%s\"", n, err.msg);
    n = tokenizer_encode(bpe, "\xed\xa0\x80", 3, &ids, &err);  // a UTF-16 surrogate
    CHECK(n == -1 && strstr(err.msg, "offset 0"), "surrogate: got %ld, \"%s\"", n, err.msg);
    n = tokenizer_encode(bpe, "\xc0\xaf", 2, &ids, &err);  // an overlong "/"
    CHECK(n == -1, "overlong: expected an error");
    int vocab = tokenizer_vocab_size(bpe);
    int32_t bad[3][2] = {{5, -1}, {5, 2048}, {INT32_MAX, 5}};
    for (int i = 0; i < 3; i++) {
        err.msg[0] = 0;
        char *s = tokenizer_decode(bpe, bad[i], 2, &err);
        CHECK(s == NULL && strstr(err.msg, "out of range"), "decode of a bad id: got \"%s\"", err.msg);
        free(s);
    }
    char *p = tokenizer_decode_piece(bpe, vocab, &err);
    CHECK(p == NULL && strstr(err.msg, "out of range"), "decode_piece(vocab): got \"%s\"", err.msg);
    p = tokenizer_decode_piece(bpe, -7, &err);
    CHECK(p == NULL && strstr(err.msg, "out of range"), "decode_piece(-7): got \"%s\"", err.msg);
    char *s = tokenizer_decode(bpe, NULL, 0, &err);
    CHECK(s && s[0] == 0, "decode of no ids should be \"\"");
    free(s);
}

static void test_utf8_prefix(void) {
    CHECK(tokenizer_utf8_valid_prefix("abc", 3) == 3, "ascii");
    CHECK(tokenizer_utf8_valid_prefix("a\xf0\x9f\x98\x80", 5) == 5, "4-byte emoji");
    CHECK(tokenizer_utf8_valid_prefix("a\xf0\x9f\x98", 4) == 1, "cut emoji");
    CHECK(tokenizer_utf8_valid_prefix("ab\xf4\x90\x80\x80", 6) == 2, "above U+10FFFF");
    CHECK(tokenizer_utf8_valid_prefix("\xe0\x80\xaf", 3) == 0, "overlong 3-byte");
    CHECK(tokenizer_utf8_valid_prefix("x\x80", 2) == 1, "stray continuation byte");
}

int main(void) {
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/lrsh_test_tok_XXXXXX");
    if (!mkdtemp(tmp_dir)) { perror("mkdtemp"); return 1; }
    tmp_file(corpus_path, sizeof corpus_path, "corpus.txt");
    tmp_file(model_path, sizeof model_path, "bpe.model");
    Err err = {{0}};
    if (dataset_default_corpus(corpus_path, &err) != 0) {
        printf("FAIL setup: %s\n0 passed, 1 failed\n", err.msg);
        return 1;
    }
    bpe = tokenizer_train(corpus_path, 2048, TOKENIZER_BPE, model_path, NULL, NULL, &err);
    if (!bpe) fprintf(stderr, "  BPE training: %s\n", err.msg);
    RUN(test_bpe_round_trips_whole_default_corpus);
    RUN(test_byte_fallback_and_specials);
    RUN(test_unigram_trains);
    RUN(test_load_from_bytes_equals_load_from_path);
    RUN(test_train_bytes_independent_of_folder);
    RUN(test_train_errors);
    RUN(test_train_stops);
    RUN(test_load_errors);
    RUN(test_encode_decode_errors);
    RUN(test_utf8_prefix);
    tokenizer_free(bpe);
    nftw(tmp_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return TEST_SUMMARY();
}
