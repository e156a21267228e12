// err.h — how every engine call reports failure: a return code plus one line of text.
// The engine never prints; the shell prints err->msg and goes on.
#pragma once
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Err {
    char msg[512];  // one line, no trailing newline; empty when no error
} Err;

// A message longer than msg keeps its start and its end around "…": the end says why (a long
// path's "…: No such file or directory"), which cutting at 511 bytes lost.
static inline void err_fit(Err *err, const char *text, size_t n) {
    size_t cap = sizeof err->msg;
    if (n < cap) {
        memcpy(err->msg, text, n + 1);
        return;
    }
    size_t head = cap / 3, tail = cap - head - 4;   // "…" is 3 bytes, then the NUL
    while (head > 0 && ((unsigned char)text[head] & 0xC0) == 0x80) head--;   // whole UTF-8 characters
    const char *end = text + n - tail;
    while (((unsigned char)*end & 0xC0) == 0x80) end++;
    snprintf(err->msg, cap, "%.*s…%s", (int)head, text, end);
}

// Fill err (if non-NULL) with a printf-style message and return -1, so callers write
// `return err_set(err, "...")`.
static inline int err_set(Err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline int err_set(Err *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        char *whole = NULL;
        int n = vasprintf(&whole, fmt, ap);
        va_end(ap);
        if (n < 0) {   // out of memory: whole is undefined
            snprintf(err->msg, sizeof err->msg, "out of memory for an error message");
            return -1;
        }
        err_fit(err, whole, (size_t)n);
        free(whole);
    }
    return -1;
}

static inline void err_clear(Err *err) { if (err) err->msg[0] = '\0'; }

// Context around the message err holds — "<before><message><after>" — and return -1:
// `return err_wrap(err, "tok train: ", " (nothing was trained)")`.
static inline int err_wrap(Err *err, const char *before, const char *after) {
    if (err) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        // a message too long is cut (testing the result only quiets -Wformat-truncation)
        if (snprintf(err->msg, sizeof err->msg, "%s%s%s", before, msg, after) < 0) err->msg[0] = '\0';
    }
    return -1;
}

// A non-finite value as an error names it: "NaN", "inf" or "-inf" (printf's %g gives "-nan").
static inline const char *nonfinite_text(double v) { return v != v ? "NaN" : v > 0 ? "inf" : "-inf"; }
