// test.h — the tiny test harness. A test is a function; RUN(fn) runs it and counts it passed
// when none of its CHECKs failed. Every failing CHECK prints what was expected and what came.
// main() ends with TEST_SUMMARY(), which prints "N passed, N failed" (tests/run.sh sums them).
#pragma once
#include <math.h>
#include <stdio.h>
#include <string.h>

static int test_failed_checks, tests_passed, tests_failed;

#define CHECK(cond, ...) do {                                                      \
    if (!(cond)) {                                                                 \
        test_failed_checks++;                                                      \
        fprintf(stderr, "  FAIL %s:%d: ", __FILE__, __LINE__);                     \
        fprintf(stderr, __VA_ARGS__);                                              \
        fputc('\n', stderr);                                                       \
    }                                                                              \
} while (0)

// |got − want| ≤ tol·max(1, |want|)
#define CHECK_NEAR(got, want, tol, what) do {                                      \
    double g_ = (got), w_ = (want);                                                \
    CHECK(fabs(g_ - w_) <= (tol) * fmax(1.0, fabs(w_)),                            \
          "%s: expected %.8g, got %.8g (tolerance %.2g)", (what), w_, g_, (double)(tol)); \
} while (0)

// An engine call that must succeed: `err` is an Err in scope.
#define CHECK_OK(call) do {                                                        \
    err.msg[0] = 0;                                                                \
    int rc_ = (call);                                                              \
    CHECK(rc_ == 0, "%s: expected success, got error: %s", #call, err.msg);        \
} while (0)

#define RUN(fn) do {                                                               \
    int before_ = test_failed_checks;                                              \
    fn();                                                                          \
    if (test_failed_checks == before_) { tests_passed++; printf("ok   %s\n", #fn); } \
    else { tests_failed++; printf("FAIL %s\n", #fn); }                             \
    fflush(stdout);                                                                \
} while (0)

#define TEST_SUMMARY() (printf("%d passed, %d failed\n", tests_passed, tests_failed), tests_failed != 0)
