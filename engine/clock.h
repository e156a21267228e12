// clock.h — wall time for step timing and benchmarks (monotonic: immune to clock changes).
#pragma once
#include <time.h>

static inline double clock_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}
