// number.h — a number as a person types it: decimal, whole word. strtod alone also reads hex
// (0x10 is 16, p-exponents) and stops at the first stray character.
#pragma once
#include <stdlib.h>
#include <string.h>

// 0 and *out when s is all one decimal number ("3e-4", "-2", "nan" and "inf" too: callers
// check ranges); -1 otherwise.
static inline int parse_decimal(const char *s, double *out) {
    char *end;
    if (!*s || strpbrk(s, "xXpP")) return -1;
    *out = strtod(s, &end);
    return *end ? -1 : 0;
}
