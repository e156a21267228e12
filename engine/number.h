// number.h — a number or a switch as a person types it: decimal, whole word. strtod alone also
// reads hex (0x10 is 16, p-exponents) and stops at the first stray character.
#pragma once
#include <stdlib.h>
#include <string.h>
#include <strings.h>

// 0 and *out (1 or 0) for on/off, yes/no, true/false, 1/0 in any case; -1 for anything else.
// The shell's options and the optimizer's take the same words.
static inline int parse_bool(const char *s, int *out) {
    static const char *const yes[] = {"on", "yes", "true", "1"}, *const no[] = {"off", "no", "false", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) return *out = 1, 0;
        if (strcasecmp(s, no[i]) == 0) return *out = 0, 0;
    }
    return -1;
}

// 0 and *out when s is all one decimal number ("3e-4", "-2", "nan" and "inf" too: callers
// check ranges); -1 otherwise.
static inline int parse_decimal(const char *s, double *out) {
    char *end;
    if (!*s || strpbrk(s, "xXpP")) return -1;
    *out = strtod(s, &end);
    return *end ? -1 : 0;
}
