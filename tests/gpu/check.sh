#!/bin/sh
# tests/gpu/check.sh — the CUDA backend's device check, in one go on one H100/H200 (under 5
# minutes): build with CUDA=1, run tests/test_cuda (every kernel against the CPU, the whole
# model, decode, 50 training steps), tests/gpu/shell.sh (the shell's commands on the GPU
# against the CPU), the GPU benchmark (bench_cuda), and test_cuda under
# ASan+UBSan when time is left; print a summary table last. A failed test is rerun alone with
# each fallback variable, a failed benchmark once on the older paths, so that one run on the
# card says what broke and still measures. Logs go to /tmp/lrsh-gpu-check; results-entry.md
# there is the entry for docs/gpu-results.md. With $OUT set (the device tool's folder, which
# brings back at most 8 files) the entry, build.log, test_cuda.log, shell.log and bench_cuda.log are
# copied there and every log goes along as logs.tar.gz.
#
# The whole check keeps inside LRSH_CHECK_SECONDS (default 420): each stage runs under a
# timeout of what is left (less 20 s to write the entry), bench_cuda skips the rows that would
# start too late (LRSH_BENCH_SECONDS) and still prints its summary, the ASan pass and the
# reruns run only when their time is left. Give the device call a timeout_s some 30 s above
# it. The entry is written and copied to $OUT whatever happens — a failed build (its log goes
# along), a stage timed out, a signal — except a SIGKILL.
#
# From the repository root:   sh tests/gpu/check.sh [quick|targets]   (passed to bench_cuda:
# quick, a smoke run; targets, only the rows issue 9's targets read, and the chain rows).
# LRSH_CHECK_SAN=off skips the ASan+UBSan pass (about 20 s) when device time is short.
# If the machine lacks the Debian libraries lrsh links (readline, OpenBLAS, LAPACKE,
# SentencePiece, cJSON), run tests/gpu/fetch-deps.sh here first and carry .gpu-deps.
set -u
start=$(date +%s)
bench_arg=${1:-}
budget=${LRSH_CHECK_SECONDS:-420}
LOG=/tmp/lrsh-gpu-check
rm -rf "$LOG"
mkdir -p "$LOG"
jobs=$(nproc 2>/dev/null || echo 4)
elapsed() { echo $(( $(date +%s) - start )); }
note() { echo "== [$(elapsed) s] $*"; }
# Seconds a stage may take: at most $1, and never past the budget less 20 s for the entry.
within() {
    left=$(( budget - 20 - $(elapsed) ))
    [ "$left" -lt "$1" ] || left=$1
    [ "$left" -gt 1 ] || left=1
    echo "$left"
}
has_time() { [ $(( budget - $(elapsed) )) -gt "$1" ]; }

# What the entry says of a stage that never ran (a failed build, the budget spent).
build_line="not run"; tests_line="not run"; shell_line="not run"; san_line="not run"; bench_line="not run"
test_rc=1; shell_rc=1; bench_rc=1; bench_note=""; isolate_rows=""; card=""

# The commit: as stamped here before the call (the device's copy of the tree may carry an
# older .git than its files), else as git there says.
if [ -s .gpu-deps/commit ]; then commit="$(cat .gpu-deps/commit) (stamped before the call)"
else commit="$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"; fi

# The entry for docs/gpu-results.md, from whatever ran, into $LOG and $OUT; then the summary.
write_entry() {
    {
        echo "## $(date -u +%Y-%m-%d) — ${card:-unknown card}"
        echo
        echo "- commit: $commit"
        [ -z "$stopped" ] || echo "- check.sh $stopped"
        echo "- build (make CUDA=1): $build_line"
        echo "- tests/test_cuda: $tests_line"
        echo "- tests/test_cuda under ASan+UBSan: $san_line"
        echo "- tests/gpu/shell.sh: $shell_line"
        [ ! -f "$LOG/isolation.txt" ] || { echo; echo '```'; cat "$LOG/isolation.txt"; echo '```'; }
        [ -z "$bench_note" ] || echo "- bench/bench_cuda$bench_note"
        echo
        echo '```'
        if grep -q '^summary' "$LOG/bench_cuda.log" 2>/dev/null; then sed -n '/^summary/,$p' "$LOG/bench_cuda.log"
        else   # cut short: the rows it printed as it went
            echo "(no summary table: bench_cuda did not finish; its rows as printed)"
            grep -E '^(sgemm|train|decode|chain|bench_cuda)' "$LOG/bench_cuda.log" 2>/dev/null
        fi
        echo '```'
        echo
        echo 'Profiles (one step each, every Backend call timed to completion):'
        echo
        echo '```'
        grep -A 16 '^profile' "$LOG/bench_cuda.log" 2>/dev/null
        echo '```'
    } >"$LOG/results-entry.md"
    if [ -n "${OUT:-}" ]; then
        for f in results-entry.md build.log test_cuda.log shell.log bench_cuda.log; do
            [ ! -f "$LOG/$f" ] || cp "$LOG/$f" "$OUT/"
        done
        tar -czf "$OUT/logs.tar.gz" -C "$(dirname "$LOG")" "$(basename "$LOG")"
    fi
}

print_summary() {
    echo
    echo "SUMMARY — ${card:-unknown card}, $(elapsed) s of $budget"
    printf '%-34s %s\n' "build (make CUDA=1)" "$build_line"
    printf '%-34s %s\n' "tests/test_cuda" "$tests_line"
    printf '%-34s %s\n' "tests/test_cuda (ASan+UBSan)" "$san_line"
    printf '%-34s %s\n' "tests/gpu/shell.sh" "$shell_line"
    printf '%-34s %s\n' "bench/bench_cuda" "$bench_line$bench_note"
    [ ! -f "$LOG/isolation.txt" ] || cat "$LOG/isolation.txt"
    sed -n '/^summary/,$p' "$LOG/bench_cuda.log" 2>/dev/null
}

finished=0
finish() {
    [ "$finished" -eq 0 ] || return
    finished=1
    exec 1>&3 2>&3   # out of any stage's redirection
    note "writing the entry"
    write_entry
    print_summary
}
# A stage runs in the background and is waited for, under `timeout` (KILL 10 s after its TERM):
# dash runs a trap only once the foreground command ends, so a TERM to this script is handled at
# once this way, the stage stopped with it, and the entry still written.
stage_pid=""
stage() {   # SECONDS COMMAND…: the command's exit status (124: timed out)
    t=$1
    shift
    timeout -k 10 "$t" "$@" &
    stage_pid=$!
    wait "$stage_pid"
    st=$?
    stage_pid=""
    return $st
}
trap finish EXIT
exec 3>&1   # the trap speaks here: it may run inside a stage's redirection
stopped=""
trap 'stopped="stopped by a signal at $(elapsed) s"; echo "== check.sh $stopped" >&3
      [ -z "$stage_pid" ] || kill "$stage_pid" 2>/dev/null; exit 143' TERM INT HUP

note "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>"$LOG/gpu.err" | tee "$LOG/gpu.txt"
cat "$LOG/gpu.err"
card=$(head -n 1 "$LOG/gpu.txt")
for tool in make gcc g++ nvcc; do command -v $tool >/dev/null || echo "missing tool: $tool"; done
command -v nvcc >/dev/null || export PATH="$PATH:/usr/local/cuda/bin"

# The libraries: the system's, or the carried .deb files unpacked into a private prefix.
MAKEVARS=""
if ! echo '#include <cblas.h>
#include <lapacke.h>
#include <readline/readline.h>
#include <cjson/cJSON.h>' | gcc -E -x c - >/dev/null 2>&1; then
    if ls .gpu-deps/*.deb >/dev/null 2>&1; then
        P=$(pwd)/.gpu-deps/root
        note "unpacking the carried libraries into $P"
        for f in .gpu-deps/*.deb; do dpkg -x "$f" "$P"; done
        A=x86_64-linux-gnu
        export CPATH="$P/usr/include:$P/usr/include/$A:$P/usr/include/$A/openblas-openmp"
        export LIBRARY_PATH="$P/usr/lib/$A:$P/lib/$A"
        export LD_LIBRARY_PATH="$P/usr/lib/$A:$P/lib/$A:$P/usr/lib/$A/openblas-openmp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        # -L first: a newer system liblapacke (LAPACK 3.12 symbols) must not shadow the carried one
        # DEP_HEADERS= : the Makefile's check for the system's headers (make deps) does not apply
        MAKEVARS="OPENBLAS_DIR=$P/usr/lib/$A/openblas-openmp LDFLAGS=-L$P/usr/lib/$A DEP_HEADERS="
    else
        echo "the system lacks lrsh's libraries and no .gpu-deps/*.deb were carried: run tests/gpu/fetch-deps.sh first"
        exit 1
    fi
fi

note "build (make CUDA=1)"
# shellcheck disable=SC2086
if ! stage "$(within 300)" make CUDA=1 $MAKEVARS -j"$jobs" all build/tests/test_cuda build/bench/bench_cuda \
        >"$LOG/build.log" 2>&1; then
    tail -n 40 "$LOG/build.log"
    build_line="FAILED (build.log)"
    echo "BUILD FAILED (log: $LOG/build.log)"
    exit 1
fi
build_line=ok
ldd build/tests/test_cuda | grep -E 'not found|cudart|cublas' | tee "$LOG/ldd.txt"

note "tests/test_cuda"
stage "$(within 180)" env LRSH_CUDA_SYNC=0 build/tests/test_cuda >"$LOG/test_cuda.log" 2>&1
test_rc=$?
[ "$test_rc" -ne 124 ] || echo "test_cuda timed out"
grep -vE '^ok ' "$LOG/test_cuda.log" | head -n 60
tests_line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$LOG/test_cuda.log" | tail -n 1)
[ -n "$tests_line" ] || tests_line="no summary line (exit $test_rc$([ "$test_rc" -ne 124 ] || echo ', timed out')): crashed?"
# On the device machine a skipped test means no GPU was seen (a driver or device-access fault):
# test_cuda exits 0 then, and the run would read as passed
if echo "$tests_line" | grep -qE ' [1-9][0-9]* skipped'; then
    tests_line="$tests_line — FAILED: tests skipped, no GPU seen"
    test_rc=1
fi
# A fault can break the CUDA context for every later test of the same process. So each test
# that failed, or never reported (a crash), runs again alone in a fresh process: as it was, with
# a wait after every launch (names a faulting kernel), and with each newer path turned back to
# the older one. The table says which variable, if any, makes it pass.
isolate() {
    name=$1
    row=$(printf '%-30s' "$name")
    for vars in "" "LRSH_CUDA_SYNC=1" "LRSH_CUDA_GRAPHS=off" "LRSH_CUDA_ATTENTION=rows" "LRSH_CUDA_FUSED=off LRSH_CUDA_PDL=off"; do
        log="$LOG/alone_${name}${vars:+_$(echo "$vars" | tr '= ' '__')}.log"
        # shellcheck disable=SC2086
        # 60 s for this run, and the 150 s that shell.sh and the benchmark keep
        has_time 210 || { row="$row $(printf '%-10s' "no time")"; continue; }
        stage "$(within 60)" env $vars build/tests/test_cuda "$name" >"$log" 2>&1
        case $? in 0) r=pass ;; 1) r=FAIL ;; 124) r=timeout ;; *) r=crash ;; esac
        row="$row $(printf '%-10s' "$r")"
    done
    isolate_rows="$isolate_rows$row
"
}
if [ "$test_rc" -ne 0 ]; then
    note "rerunning each failed or unreported test alone, as it was and with each fallback"
    reported=$(grep -E '^(ok|FAIL) ' "$LOG/test_cuda.log" | awk '{print $2}')
    for name in $(build/tests/test_cuda --list); do
        if echo "$reported" | grep -qx "$name" && ! grep -qx "FAIL $name" "$LOG/test_cuda.log"; then continue; fi
        has_time 150 || { isolate_rows="$isolate_rows(no time left for $name and later tests)
"; break; }
        isolate "$name"
    done
    { printf '%-30s %-10s %-10s %-10s %-10s %-10s\n' "alone, with:" "as is" "SYNC=1" "GRAPHS=off" "ATT=rows" "FUSED,PDL=off"
      printf '%s' "$isolate_rows"; } | tee "$LOG/isolation.txt"
    grep -hE 'FAIL|CUDA error' "$LOG"/alone_*_LRSH_CUDA_SYNC_1.log 2>/dev/null | head -n 20
fi

note "tests/gpu/shell.sh (the shell on the GPU against the CPU)"
stage "$(within 120)" sh tests/gpu/shell.sh >"$LOG/shell.log" 2>&1
shell_rc=$?
grep -vE '^ok ' "$LOG/shell.log" | head -n 20
shell_line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$LOG/shell.log" | tail -n 1)
[ -n "$shell_line" ] || shell_line="no summary line (exit $shell_rc): $(tail -n 1 "$LOG/shell.log")"
if grep -q '^skip tests/gpu/shell.sh' "$LOG/shell.log"; then   # no GPU seen: not a pass here
    shell_line="FAILED: $(grep '^skip' "$LOG/shell.log" | head -n 1)"
    shell_rc=1
fi

# bench_cuda stops starting rows 40 s before its timeout: a row (a model built, timed, freed)
# takes seconds, so it ends with its summary
bench() {
    t=$(within 100000)
    # shellcheck disable=SC2086
    stage "$t" env "$@" LRSH_BENCH_SECONDS=$(( t > 60 ? t - 40 : t > 2 ? t / 2 : 1 )) build/bench/bench_cuda \
        ${bench_arg:+"$bench_arg"} >"$LOG/bench_cuda.log" 2>&1
}
note "bench/bench_cuda"
bench
bench_rc=$?
if [ "$bench_rc" -ne 0 ] && has_time 120; then
    # the summary of a run on the older paths beats no summary: say which ran
    safe="LRSH_BENCH_SAFE=1 LRSH_CUDA_GRAPHS=off LRSH_CUDA_FUSED=off LRSH_CUDA_PDL=off LRSH_CUDA_ATTENTION=rows"
    note "bench_cuda failed (exit $bench_rc): once more with $safe"
    tail -n 20 "$LOG/bench_cuda.log"
    mv "$LOG/bench_cuda.log" "$LOG/bench_cuda_failed.log"
    # shellcheck disable=SC2086
    bench $safe
    bench_rc=$?
    bench_note=" (rerun with $safe after a failure: direct decoding only; bench_cuda_failed.log)"
fi
case $bench_rc in 0) bench_line=ok ;; 124) bench_line="timed out (exit 124)" ;; *) bench_line="exit $bench_rc" ;; esac
grep -vE '^(summary|sgemm peak|train |decode |chain |profile|  )' "$LOG/bench_cuda.log" | head -n 40
note "where a GPT-2 step's time goes (bench_cuda's profiles)"
grep -A 16 '^profile' "$LOG/bench_cuda.log" | head -n 60

san_line="not run (time)"
[ "${LRSH_CHECK_SAN:-on}" = off ] && san_line="not run (LRSH_CHECK_SAN=off)"
# its build takes a minute or two, its run up to 150 s
if has_time 240 && [ "${LRSH_CHECK_SAN:-on}" != off ]; then
    note "make SAN=1 build-san/tests/test_cuda (ASan + UBSan)"
    # shellcheck disable=SC2086
    if stage "$(within 150)" make CUDA=1 SAN=1 $MAKEVARS -j"$jobs" build-san/tests/test_cuda >"$LOG/build_san.log" 2>&1; then
        stage "$(within 150)" build-san/tests/test_cuda >"$LOG/test_cuda_san.log" 2>&1
        san_rc=$?
        san_line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$LOG/test_cuda_san.log" | tail -n 1)
        [ "$san_rc" -eq 0 ] || { san_line="exit $san_rc: ${san_line:-no summary}"; tail -n 30 "$LOG/test_cuda_san.log"; }
    else
        san_line="SAN build failed (log: build_san.log)"
    fi
fi

note "done"
[ "$test_rc" -eq 0 ] && [ "$shell_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ]
status=$?
exit $status
