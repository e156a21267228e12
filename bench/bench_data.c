// bench_data.c — `data load` on a ~100 MB text file (the default corpus repeated): tokenizing
// throughput (MB/s), the cached reload time, and the peak RSS growth, which must stay far below
// the file size because the source is streamed. Usage: bench_data [MB] (default 100).
#include "../engine/dataset.h"
#include "../engine/clock.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static long proc_status_kb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, strlen(key))) kb = atol(line + strlen(key) + 1);
    fclose(f);
    return kb;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

// Writes the corpus repeated until the file reaches mb megabytes; returns its size.
static size_t write_big_file(const char *corpus, const char *path, size_t mb) {
    FILE *in = fopen(corpus, "rb"), *out = fopen(path, "wb");
    if (!in || !out) return 0;
    fseek(in, 0, SEEK_END);
    size_t n = (size_t)ftell(in);
    rewind(in);
    char *text = malloc(n);
    size_t got = fread(text, 1, n, in), total = 0;
    while (total < mb << 20) total += fwrite(text, 1, got, out);
    free(text);
    fclose(in);
    fclose(out);
    return total;
}

int main(int argc, char **argv) {
    size_t mb = argc > 1 ? (size_t)atol(argv[1]) : 100;
    char dir[] = "/tmp/lrsh_bench_data_XXXXXX";
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    char corpus[128], model[128], big[128];
    snprintf(corpus, sizeof corpus, "%s/corpus.txt", dir);
    snprintf(model, sizeof model, "%s/bpe.model", dir);
    snprintf(big, sizeof big, "%s/big.txt", dir);
    Err err = {{0}};
    Tokenizer *tok = NULL;
    int rc = 1;
    double t0 = clock_seconds();
    if (dataset_default_corpus(corpus, &err) != 0 || !(tok = tokenizer_train(corpus, 2048, TOKENIZER_BPE, model, NULL, NULL, &err))) {
        fprintf(stderr, "bench_data: %s\n", err.msg);
        goto done;
    }
    printf("bench_data: BPE vocab 2048 trained on the default corpus in %.2f s\n", clock_seconds() - t0);
    size_t bytes = write_big_file(corpus, big, mb);
    FILE *c = fopen("/proc/self/clear_refs", "w");  // reset the peak RSS: count only the load
    if (c) { fputs("5", c); fclose(c); }
    long rss0 = proc_status_kb("VmRSS:");
    Dataset ds;
    t0 = clock_seconds();
    if (dataset_load(&ds, big, tok, 0.05, NULL, &err) != 0) { fprintf(stderr, "bench_data: %s\n", err.msg); goto done; }
    double t_build = clock_seconds() - t0;
    long peak = proc_status_kb("VmHWM:"), map_kb = (long)(ds.map_size >> 10);
    printf("bench_data: tokenized %.1f MB into %ld tokens in %.2f s: %.2f MB/s\n", (double)bytes / 1048576.0,
           ds.n_tokens, t_build, (double)bytes / 1048576.0 / t_build);
    printf("bench_data: peak RSS growth %.1f MB (%.1f MB more for the token mapping), file %.1f MB\n",
           (double)(peak - rss0 - map_kb) / 1024.0, (double)map_kb / 1024.0, (double)bytes / 1048576.0);
    dataset_free(&ds);
    t0 = clock_seconds();
    if (dataset_load(&ds, big, tok, 0.05, NULL, &err) != 0) { fprintf(stderr, "bench_data: %s\n", err.msg); goto done; }
    printf("bench_data: cached reload (hash + validate + mmap) in %.2f s, reused=%d\n", clock_seconds() - t0, ds.reused_cache);
    dataset_free(&ds);
    rc = 0;
done:
    tokenizer_free(tok);
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}
