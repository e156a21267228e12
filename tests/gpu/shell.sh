#!/bin/sh
# tests/gpu/shell.sh — the shell itself on a GPU: the bundled model loaded, a corpus tokenized,
# eval, one step, a few training steps, greedy generation and a spectrum, once with --device cpu
# and once with --device cuda, each command's JSON result compared. Run by check.sh on the device
# machine (from the repository root, after make); without a usable GPU it says so and skips.
. tests/shell/testlib

out=$("$LRSH" --device cuda -c show 2>&1) || { echo "skip tests/gpu/shell.sh: no GPU: $(short "$out")"; exit 0; }

cp README.md "$TMP/corpus.txt"   # data load writes its token cache next to the corpus
script="model load models/default.safetensors; data load $TMP/corpus.txt; eval; step;
generate \"The\" n=24 temp=0; spectrum blocks.0.attn.wq; train steps=10; eval"
cpu=$(OMP_WAIT_POLICY=passive "$LRSH" --json --device cpu -c "$script" 2>"$TMP/cpu.err"); cpu_rc=$?
gpu=$("$LRSH" --json --device cuda -c "$script; show; generate \"The\" n=24 temp=0; set fused off;
generate \"The\" n=24 temp=0; set pdl off; set graphs off; generate \"The\" n=24 temp=0" 2>"$TMP/gpu.err"); gpu_rc=$?
# flash attention on the tensor cores (kernels/cuda/flash_tc.cuh: bf16 products), GEMMs in bf16
flash=$("$LRSH" --json --device cuda -c "set precision bf16; set attention flash; $script" 2>"$TMP/flash.err"); flash_rc=$?
check_status cpu_script 0 $cpu_rc
check_status gpu_script 0 $gpu_rc
[ $gpu_rc -eq 0 ] || echo "  stderr: $(short "$(cat "$TMP/gpu.err")")"
check_status flash_bf16_script 0 $flash_rc
[ $flash_rc -eq 0 ] || echo "  stderr: $(short "$(cat "$TMP/flash.err")")"

# The n-th result of COMMAND (1-based) in the JSON lines on stdin, as EXPR over it (`o`).
nth() {  # COMMAND N EXPR
    python3 -c '
import json, sys
cmd, n, expr = sys.argv[1], int(sys.argv[2]), sys.argv[3]
seen = [o for o in map(json.loads, sys.stdin) if o.get("command") == cmd]
print(eval(expr, {"o": seen[n - 1]}) if len(seen) >= n else "missing")' "$1" "$2" "$3"
}

# |gpu − cpu| / |cpu| ≤ TOL for the value EXPR of COMMAND's N-th result
close() {  # NAME COMMAND N EXPR TOL
    c=$(printf '%s\n' "$cpu" | nth "$2" "$3" "$4")
    g=$(printf '%s\n' "$gpu" | nth "$2" "$3" "$4")
    verdict=$(python3 -c 'import sys
c, g, tol = sys.argv[1], sys.argv[2], float(sys.argv[3])
try: print("ok" if abs(float(g) - float(c)) <= tol * abs(float(c)) else "off")
except ValueError: print("missing")' "$c" "$g" "$5")
    if [ "$verdict" = ok ]; then ok "$1"; else fail "$1" "cpu $c, gpu $g (tolerance $5 relative)"; fi
}

check_eq gpu_device "\"cuda\"" "$(printf '%s\n' "$gpu" | json_field device)"
close eval_before eval 1 'o["val_loss"]' 1e-5
close step_loss step 1 'o["loss"]' 1e-5
close spectrum_sigma1 spectrum 1 'o["singular_values"][0]' 1e-4
close train_loss train 1 'o["loss"]' 1e-3
close eval_after eval 2 'o["val_loss"]' 1e-3
# bf16 with flash attention: the losses at bf16's bound (the settings were read back)
check_eq flash_bf16_settings "bf16 flash" "$(printf '%s\n' "$flash" | nth set 1 'o["value"]') $(printf '%s\n' "$flash" | nth set 2 'o["value"]')"
all_gpu=$gpu; gpu=$flash
close flash_bf16_eval_before eval 1 'o["val_loss"]' 1e-2
close flash_bf16_step_loss step 1 'o["loss"]' 1e-2
close flash_bf16_train_loss train 1 'o["loss"]' 2e-2
close flash_bf16_eval_after eval 2 'o["val_loss"]' 2e-2
gpu=$all_gpu
# greedy text after training: the fused kernels, PDL and graphs give the same bits, so the
# same tokens
fused=$(printf '%s\n' "$gpu" | nth generate 2 'o["text"]')
check_eq generate_fused_off "$fused" "$(printf '%s\n' "$gpu" | nth generate 3 'o["text"]')"
check_eq generate_plain "$fused" "$(printf '%s\n' "$gpu" | nth generate 4 'o["text"]')"
# the CPU sums in another order: equal greedy text (before training) is likely, not owed
if [ "$(printf '%s\n' "$gpu" | nth generate 1 'o["text"]')" = "$(printf '%s\n' "$cpu" | nth generate 1 'o["text"]')" ]; then
    echo "     greedy text on the GPU equals the CPU's"
else
    echo "     greedy text on the GPU differs from the CPU's (sums in another order): $(short "$fused")"
fi
finish
