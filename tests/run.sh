#!/bin/sh
# Run every test program (BUILD/tests/test_*) and every shell test (tests/shell/*.sh) from the
# repository root; sum their "N passed, N failed[, N skipped]" lines. The last line is the total.
BUILD=${1:-build}
export LRSH_BIN=${LRSH_BIN:-$BUILD/lrsh}
[ -x "$LRSH_BIN" ] || LRSH_BIN=./lrsh
passed=0; failed=0; skipped=0
# A hung test would hang `make test` and CI: each gets LRSH_TEST_TIMEOUT seconds (30 minutes by
# default; the slowest, a shell test under the sanitizers, takes a few), then TERM, then KILL.
limit=${LRSH_TEST_TIMEOUT:-1800}
for t in "$BUILD"/tests/test_* tests/shell/*.sh; do
    [ -f "$t" ] || continue
    case "$t" in *.d) continue;; esac
    echo "== $t"
    case "$t" in *.sh) out=$(timeout -k 30 "$limit" sh "$t" 2>&1);; *) out=$(timeout -k 30 "$limit" "$t" 2>&1);; esac
    rc=$?
    echo "$out"
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        echo "FAIL $t: still running after $limit s (LRSH_TEST_TIMEOUT), stopped"; failed=$((failed + 1)); continue
    fi
    line=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
    if [ -z "$line" ]; then
        echo "FAIL $t: exited $rc without a summary line"; failed=$((failed + 1)); continue
    fi
    p=$(echo "$line" | cut -d' ' -f1); f=$(echo "$line" | cut -d' ' -f3)
    k=$(echo "$line" | sed -n 's/.*, \([0-9]*\) skipped.*/\1/p')
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + ${k:-0}))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then echo "FAIL $t: exited $rc"; failed=$((failed + 1)); fi
done
# skipped tests (the GPU ones without a GPU) are counted apart, never as passed
if [ "$skipped" -gt 0 ]; then echo "$passed passed, $failed failed, $skipped skipped"
else echo "$passed passed, $failed failed"; fi
[ "$failed" -eq 0 ]
