#!/bin/sh
# spectron_sweep.sh — the learning-rate sweep behind demos/spectron_stability.lrsh's settings,
# as the table in demos/README.md prints it: factorized AdamW, renorm, ortho and Spectron on
# `tiny` at seq=64 (vocab 512, batch 8, wd 0.01, constant lr after the warm-up), one lrsh
# process per row, one thread, so that a row repeats to the last digit on the same machine.
# A cell is the validation loss over 20 batches after the last step, then the largest
# ‖ΔW‖₂/η measured (every 5th step), then spikes or divergence when there were any.
#
#   sh demos/spectron_sweep.sh            (the table: ~80 runs, 10–45 minutes on 2 cores, idle or busy)
#   sh demos/spectron_sweep.sh adamw      (the AdamW-alone rows: where it does train)
#   LRSH=build-san/lrsh sh demos/spectron_sweep.sh    (another binary)
set -eu
case "${1:-}" in
    ""|adamw) ;;
    *) echo "usage: sh demos/spectron_sweep.sh [adamw]   (the whole table, or AdamW's rows; LRSH=binary)" >&2; exit 2 ;;
esac
LRSH=${LRSH:-./lrsh}
[ -x "$LRSH" ] || { echo "spectron_sweep.sh: $LRSH not found: run make first, from the repository root" >&2; exit 1; }
command -v python3 >/dev/null || { echo "spectron_sweep.sh: needs python3 to read lrsh's JSON" >&2; exit 1; }
export OMP_WAIT_POLICY=passive

# One row: lr, warm-up, steps, the model's extra options, the optimizers' extra options, the
# optimizers, the row's label for the "other" column. Every optimizer trains from the same
# initialization (the model's seed) on the same batches (set seed 1234).
row() {
    lr=$1 warmup=$2 steps=$3 model_opts=$4 optim_opts=$5 optims=$6 label=$7 vocab=${8:-512}
    script="tok train vocab=$vocab; data load; set seed 1234; set batch 8"
    for o in $optims; do
        opts=$optim_opts; [ "$o" = adamw ] && opts=""   # adamw has no adam_lr: lr is every tensor's
        script="$script; model new tiny seq=64 $model_opts; optim $o lr=$lr wd=0.01 warmup=$warmup $opts"
        script="$script; run $o; train steps=$steps diag_every=5; eval batches=20"
    done
    out=$("$LRSH" --threads 1 --json -c "$script; runs" 2>/dev/null) ||
        { echo "spectron_sweep.sh: lrsh failed on the row lr=$lr warm-up=$warmup $label" >&2; exit 1; }
    printf '%s\n' "$out" | python3 -c '
import json, sys
lr, warmup, steps, label, want = sys.argv[1:6]
cells = []
for line in sys.stdin:
    r = json.loads(line)
    if not r.get("ok"):
        sys.exit("spectron_sweep.sh: lrsh failed: " + r.get("error", "?"))
    if r["command"] != "runs":
        continue
    cell = "%.3f (%s)" % (r["val_loss"], ("%.3g" % r["max_dw_over_eta"]).replace("e+0", "e"))
    if r["diverged_at"] is not None:
        cell += ", diverged at %d" % r["diverged_at"]
    elif r["spikes"]:
        cell += ", %d spike%s" % (r["spikes"], "s" if r["spikes"] > 1 else "")
    cells.append(cell)
if len(cells) != int(want):
    sys.exit("spectron_sweep.sh: %d of %s runs came back" % (len(cells), want))
print("| " + " | ".join([lr, warmup, steps, label] + cells) + " |")
' "$lr" "$warmup" "$steps" "$label" "$(echo $optims | wc -w)"
}

all="adamw renorm ortho spectron"
if [ "${1:-}" = adamw ]; then
    echo "| lr | warm-up | steps | other | adamw |"
    echo "|---|---|---|---|---|"
    row 0.003 10 300 seed=7 "" adamw ""
    row 0.006 10 300 seed=7 "" adamw ""
    row 0.01 10 300 seed=7 "" adamw ""
    row 0.008 100 600 seed=7 "" adamw ""
    row 0.02 400 600 seed=7 "" adamw ""
    row 0.01 10 300 seed=7 "" adamw "vocab 2048" 2048
    row 0.02 10 300 seed=7 "" adamw "vocab 2048" 2048
    exit 0
fi
echo "| lr | warm-up | steps | other | adamw | renorm | ortho | spectron |"
echo "|---|---|---|---|---|---|---|---|"
row 0.01 10 300 seed=7 "" "$all" ""
row 0.01 10 300 seed=7 adam_lr=0.01 "$all" adam_lr=lr
row 0.02 10 200 seed=7 "" "$all" ""
row 0.02 10 300 seed=7 "" "$all" ""
row 0.03 10 300 seed=7 "" "$all" ""
row 0.05 10 300 seed=7 "" "$all" ""
row 0.05 10 300 seed=7 adam_lr=0.05 "$all" adam_lr=lr
row 0.1 10 300 seed=7 "" "$all" ""
row 0.1 10 300 seed=7 adam_lr=0.1 "$all" adam_lr=lr
row 0.01 100 300 seed=7 "" "$all" ""
row 0.02 100 300 seed=7 "" "$all" ""
row 0.02 100 300 seed=8 "" "$all" "seed 8"
row 0.02 100 300 seed=9 "" "$all" "seed 9"
row 0.03 100 300 seed=7 "" "$all" ""
row 0.05 100 300 seed=7 "" "$all" ""
row 0.02 100 300 "seed=7 layers=4" "" "$all" layers=4
row 0.02 10 300 "seed=7 layers=4" "" "$all" layers=4
row 0.05 10 600 seed=8 "" "$all" "seed 8"
row 0.05 10 600 seed=9 "" "$all" "seed 9"
