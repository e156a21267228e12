#!/usr/bin/env bash
# compare.sh — batch-1 decode of llama2.c's OpenMP build next to lrsh's, on this machine, on the
# stories15M shape with random weights (write_model.c), in alternating rounds so that a busy
# moment on a shared machine hits both alike.
#
# Usage: bench/llama2c/compare.sh LLAMA2C_DIR [rounds]
#   LLAMA2C_DIR: a checkout of github.com/karpathy/llama2.c (only its run.c is used; lrsh does
#   not ship or download it). llama2.c is built as its Makefile's `runomp` target builds it.
# Prints per round llama2.c's "achieved tok/s" (one run: 5 prompt tokens then 250 sampled, each a
# forward pass) and lrsh's dense stories15M decode tok/s (one round of build/bench/bench_generate:
# a 16-token prefill, then 240 tokens one at a time), then the medians and the median of the
# per-round ratios.
set -euo pipefail
src=${1:?usage: $0 LLAMA2C_DIR [rounds]}
rounds=${2:-5}
root=$(cd "$(dirname "$0")/../.." && pwd)
[ -f "$src/run.c" ] || { echo "compare.sh: no run.c in $src" >&2; exit 2; }
[ -x "$root/build/bench/bench_generate" ] || make -C "$root" build/bench/bench_generate >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gcc -Ofast -fopenmp -march=native "$src/run.c" -lm -o "$work/run"
gcc -O2 "$root/bench/llama2c/write_model.c" -lm -o "$work/write_model"
"$work/write_model" "$work/s15.bin" "$work/tokenizer.bin"
threads=${OMP_NUM_THREADS:-$(nproc)}
printf '%-6s %14s %14s %7s\n' round llama2.c lrsh ratio
for r in $(seq 1 "$rounds"); do
    # run.c prints "achieved tok/s: N" on stderr after 256 positions (greedy: -t 0)
    l2c=$(OMP_NUM_THREADS=$threads "$work/run" "$work/s15.bin" -z "$work/tokenizer.bin" -n 256 -t 0 -i "hello" \
          2>&1 >/dev/null | sed -n 's/.*achieved tok\/s: *\([0-9.]*\).*/\1/p')
    lrsh=$(OMP_NUM_THREADS=$threads "$root/build/bench/bench_generate" 240 stories15M 1 | awk '$1 == "stories15M" {print $6}')
    [ -n "$l2c" ] && [ -n "$lrsh" ] || { echo "compare.sh: round $r gave no number (llama2.c '$l2c', lrsh '$lrsh')" >&2; exit 1; }
    echo "$r $l2c $lrsh"
done | awk '{ printf "%-6s %14.0f %14.0f %6.2f×\n", $1, $2, $3, $3 / $2; l[NR] = $2; s[NR] = $3; q[NR] = $3 / $2 }
    function median(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
                                     return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
    END { n = NR; printf "%-6s %14.0f %14.0f %6.2f×  (lrsh/llama2.c: median of the per-round ratios)\n", "median", median(l, n), median(s, n), median(q, n) }'
