// err.h — how every engine call reports failure: a return code plus one line of text.
// The engine never prints; the shell prints err->msg and goes on.
#pragma once
#include <stdarg.h>
#include <stdio.h>

typedef struct Err {
    char msg[512];  // one line, no trailing newline; empty when no error
} Err;

// Fill err (if non-NULL) with a printf-style message and return -1, so callers write
// `return err_set(err, "...")`.
static inline int err_set(Err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline int err_set(Err *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
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
