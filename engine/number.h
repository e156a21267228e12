// number.h — a number or a switch as a person types it: decimal, whole word. strtod alone also
// reads hex (0x10 is 16, p-exponents) and stops at the first stray character.
#pragma once
#include <stdio.h>
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

// What a number typed as another locale or language writes it meant, as a hint for the error
// (" (the decimal mark is a point: 0.05)" for "0,05"; " (without separators: 1000)" for "1,000"
// or "1_000" where an integer is asked); "" when v is just not a number.
static inline void parse_number_hint(const char *v, int integer, char *hint, size_t cap) {
    char fixed[64], *end;
    size_t n = 0;
    int commas = 0, groups = 0, thousands = 0;
    hint[0] = '\0';
    if (strlen(v) >= sizeof fixed) return;
    for (const char *c = v; *c; c++) {
        int digit_before = c > v && c[-1] >= '0' && c[-1] <= '9', digit_after = c[1] >= '0' && c[1] <= '9';
        int three = digit_after && c[2] >= '0' && c[2] <= '9' && c[3] >= '0' && c[3] <= '9' &&
                    !(c[4] >= '0' && c[4] <= '9');   // "1,000", not "1,0"
        int zero_before = (c - v == 1 && v[0] == '0') || (c - v == 2 && v[0] == '-' && v[1] == '0');
        thousands |= *c == ',' && three && !zero_before;   // 0,001 is a decimal comma, not a thousand
        if (*c == '_' && digit_before && digit_after) groups++;   // 1_000: a digit group's separator, dropped
        else if (*c == ',' && integer && three) groups++;
        else fixed[n++] = *c == ',' ? (commas++, '.') : *c;
    }
    fixed[n] = '\0';
    double x;
    int ok = integer ? (strtoll(fixed, &end, 10), n && !*end) : parse_decimal(fixed, &x) == 0;
    if (!(commas || groups) || !ok) return;
    if (commas && thousands)   // 1,000 where a number is asked: a thousand, or one with a decimal comma?
        snprintf(hint, cap, " (the decimal mark is a point, and numbers take no separators)");
    else snprintf(hint, cap, commas ? " (the decimal mark is a point: %s)" : " (without separators: %s)", fixed);
}
