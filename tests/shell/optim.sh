# optim.sh — the optimizer commands: optim (keys from the engine, per optimizer; switching
# resets state and says what), step's diagnostics table, train's recorded diagnostics (plot,
# log, runs), inspect, bench train optim=, divergence, completion, and a short version of
# demos/spectron_stability.lrsh.
. tests/shell/testlib

lrsh() { "$LRSH" --threads 1 "$@"; }

out=$(lrsh --json -c 'tok train vocab=512' 2>/dev/null)
model=$(printf '%s\n' "$out" | json_field path | tr -d '"')
prep="tok load $model; data load; model new tiny dim=64 seq=32 seed=5"

# ---- optim: every engine optimizer, its own keys, the current settings ----
out=$(lrsh --json -c 'optim' 2>/dev/null)
check_eq optim_show_name '"adamw"' "$(printf '%s\n' "$out" | json_field name)"
check_eq optim_show_all_keys True "$(printf '%s\n' "$out" | json_eval 'all(k in o for k in ["lr", "wd", "beta1", "beta2", "eps", "clip", "warmup", "horizon", "min_lr_ratio"])')"
for name in sgd adamw muon spectron renorm ortho; do
    out=$(lrsh --json -c "optim $name lr=0.01" 2>/dev/null); rc=$?
    check_status "optim_${name}_status" 0 $rc
    check_eq "optim_${name}_lr" "$name 0.01" "$(printf '%s\n' "$out" | json_eval 'o["name"] + " " + str(o["lr"])')"
done
out=$(lrsh -c 'optim spectron power_iters=3 shape_scale=yes; optim' 2>&1)
check_contains optim_show_spectron_keys "$out" "power_iters=3"
check_contains optim_show_spectron_bool "$out" "shape_scale=on"
check_contains optim_show_readable "$out" "lr=0.02 adam_lr=0.003"

# a key the optimizer does not take: named, with the keys it does take
out=$(lrsh -c 'optim adamw momentum=0.9' 2>&1); rc=$?
check_status optim_bad_key_status nonzero $rc
check_contains optim_bad_key_named "$out" "adamw takes no option 'momentum='"
check_contains optim_bad_key_lists "$out" "lr= wd= beta1= beta2= eps= clip= warmup= horizon= min_lr_ratio="
# a value a float holds only as 0 is refused (clip=1e-40 turned clipping off; lr=1e-320 was 0);
# -0 is 0
for v in 1e-40 1e-320 1e-400; do
    out=$(lrsh -c "optim sgd clip=$v" 2>&1)
    check_contains "optim_tiny_refused_$v" "$out" "clip=$v is below the smallest float"
done
check_contains optim_minus_zero "$(lrsh -c 'optim adamw lr=-0' 2>&1)" "adamw lr=0 "
# the smallest float as a checkpoint writes it (1.17549435e-38, below it as a double) is taken,
# so such a file loads; an exact subnormal spelled out (no ERANGE) is refused
check_contains optim_flt_min_taken "$(lrsh -c 'optim sgd clip=1.17549435e-38' 2>&1)" "clip=1.17549e-38"
check_contains optim_long_subnormal_refused "$(lrsh -c "optim sgd clip=0.$(python3 -c "print('0' * 400 + '1')")" 2>&1)" "is below the smallest float"
out=$(lrsh -c 'optim spectron momentm=0.9' 2>&1)
check_contains optim_bad_key_suggest "$out" "did you mean 'momentum='"
out=$(lrsh -c 'optim renorm ns_steps=3' 2>&1)
check_contains optim_bad_key_renorm "$out" "renorm takes no option 'ns_steps='"
# fresh moments past the warm-up (an optimizer switch at step 2 of warmup=1) start at full lr: said
out=$(lrsh -c "tok train vocab=512 out=$TMP/w.model; data load; model new tiny dim=32 seq=16; optim adamw warmup=1; train steps=2 batch=2; optim muon warmup=1; optim adamw warmup=5" 2>&1)
check_contains warmup_past_note "$out" "note: the warm-up is past (step 2, warmup=1 counts the run's steps)"
check_not_contains warmup_not_past "$out" "warmup=5 counts"
# ...at the rate the schedule gives that step (the next `step` uses it), not the base lr
out=$(lrsh -c "tok load $TMP/w.model; data load; model new tiny dim=32 seq=16; optim adamw warmup=1 horizon=6 min_lr_ratio=0.1 lr=0.01; train steps=2 batch=2; optim muon warmup=1 horizon=6 min_lr_ratio=0.1 lr=0.01; step batch=2" 2>&1)
noted=$(printf '%s\n' "$out" | sed -n "s/.*the schedule's lr=\([0-9.e-]*\).*/\1/p")
stepped=$(printf '%s\n' "$out" | sed -n 's/^lr  *\([0-9.e-]*\)$/\1/p')
check_eq warmup_note_scheduled_lr "$stepped" "${noted:-none}"
check_not_contains warmup_note_not_base "$out" "lr=0.01
"
# a run taken up past its schedule's horizon (a loaded checkpoint, fine-tuned) trains at
# min_lr_ratio·lr: said as a warning, in JSON too, when optim sets a rate and when the trainer starts
out=$(lrsh --json -c "tok load $TMP/w.model; data load; model new tiny dim=32 seq=16; optim adamw warmup=2 horizon=4; train steps=4 batch=2; model save $TMP/h.st; model load $TMP/h.st; data load; model factorize rank=4; optim lr=1e-3; train steps=1 batch=2" 2>/dev/null)
check_eq horizon_warning_json True "$(printf '%s\n' "$out" | python3 -c 'import json, sys
r = [json.loads(l) for l in sys.stdin]
w = [x for o in r if o["command"] in ("optim", "train", "model factorize") for x in o.get("warnings", [])]
print(any("past horizon=4" in x and "min_lr_ratio" in x for x in w))')"
check_eq horizon_warning_at_load True "$(printf '%s\n' "$out" | python3 -c 'import json, sys
r = [json.loads(l) for l in sys.stdin]
print(any("past horizon=4" in x for o in r if o["command"] == "model load" for x in o.get("warnings", [])))')"
# on a model with no factors spectron and ortho are muon, and renorm is AdamW at adam_lr: optim
# says so; on a factorized one ortho is muon on the factors, and says that
out=$(lrsh -c 'model new tiny dim=64 seq=32 rank=0; optim spectron; optim renorm; model new tiny dim=64 seq=32; optim ortho' 2>&1)
check_contains optim_dense_note "$out" "the model has no factorized matrices (rank=0): spectron updates its dense matrices exactly as muon does"
check_contains optim_dense_note_renorm "$out" "the model has no factorized matrices (rank=0): renorm updates its dense matrices with AdamW at adam_lr=0.003, and lr goes unused"
check_not_contains optim_factorized_no_dense_note "$out" "ortho updates its dense"
check_contains optim_ortho_is_muon "$out" "ortho is Spectron without its step size ρ, which is Muon on the factors: its updates are muon's exactly"
same=$(for o in muon ortho; do lrsh --json -c "tok load $TMP/w.model; data load; model new tiny dim=32 seq=16 seed=2; optim $o; train steps=4 batch=2" 2>/dev/null | tail -n 1 | json_eval 'o["loss"]'; done | uniq | wc -l | tr -d ' ')
check_eq optim_ortho_same_losses_as_muon 1 "$same"
same=$(for o in "renorm lr=0.5 adam_lr=0.004" "adamw lr=0.004 wd=0.01"; do lrsh --json -c "tok load $TMP/w.model; data load; model new tiny dim=32 seq=16 seed=2 rank=0; optim $o; train steps=4 batch=2" 2>/dev/null | tail -n 1 | json_eval 'o["loss"]'; done | uniq | wc -l | tr -d ' ')
check_eq optim_dense_renorm_is_adamw_at_adam_lr 1 "$same"
out=$(lrsh -c 'optim spectron lr=abc' 2>&1)
check_contains optim_bad_value "$out" "option lr= expects a number, got 'abc'"
out=$(lrsh -c 'optim spectrn' 2>&1)
check_contains optim_unknown_name "$out" "did you mean 'spectron'"
out=$(lrsh --json -c 'help optim adamw' 2>/dev/null)
check_eq help_optim_keys_adamw "True False" "$(printf '%s\n' "$out" | json_eval '" ".join(str(k in [x["name"] for x in o["options"]]) for k in ["beta1", "momentum"])')"
check_eq help_optim_all_optimizers "['sgd', 'adamw', 'muon', 'spectron', 'renorm', 'ortho']" "$(printf '%s\n' "$out" | json_eval 'list(o["optimizers"])')"

# switching at any step: the step count and data stream go on, the note says what was reset
out=$(lrsh -c "$prep; train steps=3; optim spectron; step" 2>&1)
check_contains optim_switch_note "$out" "optimizer state reset at step 3 (adamw → spectron): adamw's AdamW moments"
check_contains optim_switch_keeps_step "$out" "step          4 (spectron)"
out=$(lrsh --json -c "$prep; optim muon; train steps=2; optim sgd" 2>/dev/null)
check_contains optim_reset_json "$(printf '%s\n' "$out" | tail -n 1 | json_field reset)" "momentum"
# a horizon at or before the end of the warm-up would leave lr constant: refused
out=$(lrsh -c "optim adamw warmup=10 horizon=5" 2>&1); rc=$?
check_status horizon_before_warmup_status 1 $rc
check_contains horizon_before_warmup "$out" "horizon=5 must be above warmup=10 (or 0: constant after the warm-up)"
# new options for the same optimizer: its moments stay, so a lower lr continues the same run —
# the step after `optim lr=` equals, to the bit, a run whose moments were never touched
out=$(lrsh --json -c "$prep; optim muon; train steps=2; optim lr=0.01" 2>/dev/null)
check_eq optim_retune_json false "$(printf '%s\n' "$out" | tail -n 1 | json_field state_reset)"
a=$(lrsh --json -c "$prep; optim muon lr=0.01 warmup=0; train steps=3; step" 2>/dev/null | tail -n 1 | json_field loss)
b=$(lrsh --json -c "$prep; optim muon lr=0.01 warmup=0; train steps=3; optim lr=0.01; step" 2>/dev/null | tail -n 1 | json_field loss)
check_eq optim_retune_same_step "$a" "$b"
# the same data stream: switching at step 3 leaves step 4's batch as it was
a=$(lrsh --json -c "$prep; optim spectron; train steps=3; step" 2>/dev/null | tail -n 1 | json_field loss)
b=$(lrsh --json -c "$prep; optim spectron; train steps=3; optim spectron; step" 2>/dev/null | tail -n 1 | json_field loss)
check_eq optim_switch_same_batch "$a" "$b"

# help gives each key's range, as the error does (lr=1e4: "between 0 and 10", help said nothing)
check_contains optim_help_ranges "$(lrsh -c 'help optim' 2>&1)" "[number 0..10]"
check_eq optim_help_range_json '"integer 1..50"' "$(lrsh --json -c 'help optim spectron' 2>/dev/null | json_eval '[o for o in o["options"] if o["name"] == "ns_steps"][0]["range"]' | sed 's/.*/"&"/')"
# on|off in any case, as the shell's own options (the optimizer's took only lower case)
check_contains optim_bool_any_case "$(lrsh -c 'optim sgd nesterov=ON; optim' 2>&1)" "nesterov=on"

# ---- step: the global table and one row per factorized matrix ----
out=$(lrsh --json -c "$prep; optim spectron; step; step" 2>/dev/null | tail -n 1)
check_eq step_matrices 14 "$(printf '%s\n' "$out" | json_eval 'len(o["matrices"])')"
check_eq step_globals True "$(printf '%s\n' "$out" | json_eval 'all(k in o for k in ["loss", "lr", "grad_norm", "grad_norm_clipped", "clip_scale", "optim_fraction"])')"
check_eq step_matrix_keys True "$(printf '%s\n' "$out" | json_eval 'all(all(k in m for k in ["param", "sigma_a", "sigma_b", "rho", "dw_spectral", "dw_over_eta", "spectral"]) for m in o["matrices"])')"
check_eq step_spectron_bound True "$(printf '%s\n' "$out" | json_eval 'all(0 < m["dw_over_eta"] <= 1.3 and 0 < m["rho"] < o["lr"] for m in o["matrices"])')"
out=$(lrsh -c "$prep; optim spectron; step" 2>&1)
check_contains step_table_header "$out" "‖ΔW‖₂/η"
check_contains step_table_row "$out" "blocks.1.mlp.w3"
check_contains step_grad_norms "$out" "before clipping"
out=$(lrsh --json -c "$prep; step" 2>/dev/null | tail -n 1)
check_eq step_adamw_unbounded True "$(printf '%s\n' "$out" | json_eval 'max(m["dw_over_eta"] for m in o["matrices"]) > 1.3')"

# ---- train: diagnostics every diag_every steps, plottable; spikes and divergence ----
out=$(lrsh --json -c "$prep; optim spectron; log $TMP/d.jsonl; train steps=6 diag_every=2; plot dw_over_eta; plot rho; plot sigma_a; runs" 2>/dev/null); rc=$?
check_status train_diag_status 0 $rc
check_eq plot_dw_points 3 "$(printf '%s\n' "$out" | grep '"plot"' | head -n 1 | json_eval 'o["series"][0]["points"]')"
check_eq plot_rho_points 6 "$(printf '%s\n' "$out" | grep '"plot"' | sed -n 2p | json_eval 'o["series"][0]["points"]')"
check_eq runs_max_dw True "$(printf '%s\n' "$out" | tail -n 1 | json_eval '0 < o["max_dw_over_eta"] <= 1.3')"
logged=$(python3 -c 'import json, sys; print([r["step"] for r in map(json.loads, open(sys.argv[1])) if "dw_over_eta" in r])' "$TMP/d.jsonl")
check_eq log_dw_steps "[2, 4, 6]" "$logged"
out=$(lrsh --json -c "plot dw_over_eta from=$TMP/d.jsonl" 2>/dev/null)
check_eq plot_dw_from_log 3 "$(printf '%s\n' "$out" | json_eval 'o["series"][0]["points"]')"
check_eq plot_dw_steps "[2, 4, 6]" "$(printf '%s\n' "$out" | json_eval 'o["series"][0]["steps"]')"
out=$(lrsh -c "$prep; train steps=2 diag_every=0; plot dw_over_eta" 2>&1)
check_contains plot_dw_none "$out" "no step measured it yet"
# a blow-up in a run's first steps counts as spikes (they waited for 10 steps of history: a lab's
# AdamW at lr=1 read "spikes 0" beside its loss going from 6 to 20)
out=$(lrsh --json -c "$prep; optim adamw lr=1 warmup=3; train steps=9; runs" 2>/dev/null)
check_eq early_blowup_spikes True "$(printf '%s\n' "$out" | tail -n 1 | json_eval 'o["spikes"] >= 1' 2>&1)"
# eps=0 makes AdamW divide 0 by 0 on embedding rows no batch touched: the next loss is NaN
out=$(lrsh --json -c "$prep; optim adamw eps=0; train steps=5; show" 2>/dev/null); rc=$?
check_status diverged_goes_on 0 $rc
check_eq diverged_json "True 2" "$(printf '%s\n' "$out" | grep '"command":"train"' | json_eval 'str(o["diverged"]) + " " + str(o["diverged_at"])')"
out=$(lrsh -c "$prep; optim adamw eps=0; train steps=5; runs" 2>&1)
check_contains diverged_says "$out" "diverged: step 2: the loss is not finite"
check_contains diverged_runs "$out" "at 2"
# `step` too reports a divergence as a result (the script goes on): the update that broke the
# model is undone, the run and the log go back with it, and the same settings repeat it exactly
out=$(lrsh --json -c "$prep; optim adamw eps=0; log $TMP/rb.jsonl; step; step; step; step; runs" 2>/dev/null); rc=$?
check_status step_diverged_goes_on 0 $rc
check_eq step_diverged_json "1 0/2 1 0/2" "$(printf '%s\n' "$out" | grep '"command":"step"' | python3 -c 'import json, sys
print(" ".join(str(o["step"]) + ("/" + str(o["diverged_at"]) if o["diverged"] else "") for o in map(json.loads, sys.stdin) if o["ok"]))')"
check_eq step_diverged_log "[[1, None], [2, 0], [1, None], [2, 0]]" "$(python3 -c 'import json, sys
print([[r["step"], r.get("rolled_back_to")] for r in map(json.loads, open(sys.argv[1]))])' "$TMP/rb.jsonl")"
check_eq step_diverged_replay True "$(python3 -c 'import json, sys
r = [x for x in map(json.loads, open(sys.argv[1])) if "loss" in x]; print(r[0]["loss"] == r[1]["loss"])' "$TMP/rb.jsonl")"
check_eq step_diverged_runs "0 2" "$(printf '%s\n' "$out" | grep '"command":"runs"' | json_eval 'str(o["steps"]) + " " + str(o["diverged_at"])')"
# after a rollback inspect reports no diagnostics (a result: a script goes on); a run that then
# trains past the step it diverged at says so
out=$(lrsh --json -c "$prep; optim adamw eps=0; step; step; inspect; optim adamw eps=1e-8; train steps=3; runs" 2>/dev/null); rc=$?
check_status inspect_after_rollback_status 0 $rc
check_eq inspect_after_rollback "True False" "$(printf '%s\n' "$out" | grep '"command":"inspect"' | json_eval 'str(o["rolled_back"]) + " " + str(o["measured"])')"
check_eq runs_recovered "2 True 3" "$(printf '%s\n' "$out" | grep '"command":"runs"' | json_eval 'str(o["diverged_at"]) + " " + str(o["recovered"]) + " " + str(o["steps"])')"
# ... across an optimizer switch too: the new optimizer starts over from the rolled-back point
out=$(lrsh --json -c "$prep; optim adamw eps=0; step; optim muon; step" 2>/dev/null)
check_eq switch_diverged_rolls_back "2 0" "$(printf '%s\n' "$out" | grep '"command":"step"' | tail -n 1 | json_eval 'str(o["diverged_at"]) + " " + str(o["step"])')"

# a run whose loss ends far above a uniform guess's blew up, though never non-finite
out=$(lrsh --json -c "$prep; optim sgd lr=10 warmup=0 clip=0; train steps=6; runs" 2>/dev/null)
check_eq runs_blew_up "True True" "$(printf '%s\n' "$out" | grep '"command":"runs"' | tail -n 1 | json_eval 'str(o["blew_up"]) + " " + str(o["diverged"])')"
# a run is judged by the data its validation loss was on, not by whatever data is loaded now
out=$(lrsh --json -c "$prep; train steps=2; eval batches=1; tok train vocab=600 out=$TMP/t600.model; data load; model new tiny dim=64 seq=32; train steps=2; eval batches=1; runs" 2>/dev/null)
check_eq runs_own_plateau True "$(printf '%s\n' "$out" | grep '"command":"runs"' | python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin]
print(len(rows) == 2 and abs(rows[0]["unigram_loss"] - rows[1]["unigram_loss"]) > 0.05)')"

# σ_A, σ_B of an optimizer that takes none itself are exact on a diagnostics step (the spectrum
# of each factor before the update), not a power iteration warm-started ten steps back (28 % low)
out=$(lrsh --json -c "$prep; optim adamw lr=0.01 warmup=3; train steps=9; spectrum blocks.0.mlp.w1.A k=1; spectrum blocks.1.mlp.w3.B k=1; step" 2>/dev/null)
gap=$(printf '%s\n' "$out" | python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin]
ex = {o["param"]: o["spectral_norm"] for o in rows if o.get("command") == "spectrum"}
m = {d["param"]: d for d in [o for o in rows if o.get("command") == "step"][0]["matrices"]}
print(max(abs(m["blocks.0.mlp.w1"]["sigma_a"] / ex["blocks.0.mlp.w1.A"] - 1), abs(m["blocks.1.mlp.w3"]["sigma_b"] / ex["blocks.1.mlp.w3.B"] - 1)) < 1e-4)')
check_eq sigmas_exact_adamw True "$gap"
# a run rolled back at a divergence that then blew up did both
out=$(lrsh --json -c "$prep; model new tiny dim=64 layers=1 heads=2 kv_heads=2 ffn=128 seq=32; optim sgd lr=10 warmup=0 clip=0 momentum=0.99; train steps=40; runs" 2>/dev/null)
check_eq runs_diverged_then_blew_up "True True" "$(printf '%s\n' "$out" | grep '"command":"runs"' | tail -n 1 | json_eval 'str(o["blew_up"]) + " " + str(o["diverged_at"] is not None)')"
out=$(lrsh --json -c "$prep; train steps=3; runs" 2>/dev/null)
check_eq runs_not_blew_up False "$(printf '%s\n' "$out" | grep '"command":"runs"' | tail -n 1 | json_eval 'o["blew_up"]')"
# a non-finite validation loss during train eval_every= is a divergence like a training one: the
# update before it undone, a result (the model here blows up by step 8 and is NaN at step 9)
out=$(lrsh --json -c "$prep; optim sgd lr=10 clip=0 warmup=0; train steps=40 eval_every=8 eval_batches=2; show" 2>/dev/null); rc=$?
check_status eval_diverged_goes_on 0 $rc
check_eq eval_diverged "9 7 True" "$(printf '%s\n' "$out" | grep '"command":"train"' | json_eval 'str(o["diverged_at"]) + " " + str(o["step"]) + " " + str("validation loss" in o["reason"])')"
# a validation loss from before the run's last steps is said to be old, and its step is in JSON
out=$(lrsh -c "$prep; train steps=3; eval batches=1; train steps=2; runs" 2>&1)
check_contains runs_stale_val "$out" "(1 run's val is from before its last steps: \`eval\` measures it now"
out=$(lrsh --json -c "$prep; train steps=3; eval batches=1; train steps=2; runs" 2>/dev/null)
check_eq runs_val_step 3 "$(printf '%s\n' "$out" | grep '"command":"runs"' | json_field val_step)"
# the table fits 80 columns with a warm-up's lr "first→last" and a diverged-and-continued run;
# a long name is whole in a pipe (cut, two runs of a sweep read alike), its steps first..last
out=$(lrsh -c "$prep; optim adamw eps=0; step; step; optim adamw eps=1e-8 lr=3e-3; train steps=3; run b; optim muon; train steps=2; runs" 2>&1)
table=$(printf '%s\n' "$out" | grep -E '^(run |adamw|b )')
check_contains runs_table_lr "$table" "→"
check_eq runs_table_fits_80 True "$([ "$(printf '%s\n' "$table" | widest)" -le 80 ] && echo True || echo "$table")"
out=$(lrsh -c "$prep; train steps=3; run spectron-r16-lr0.05-wd0.01-seed7-long; optim muon; train steps=2; runs" 2>&1)
check_contains runs_name_whole_in_pipe "$out" "spectron-r16-lr0.05-wd0.01-seed7-long muon"
check_contains runs_steps_range "$out" " 4..5 "
# a sweep over ranks gets a rank column (runs of one rank none); a run's first log line says
# what trained it, in runs --json too
out=$(lrsh -c "$prep; log $TMP/cfg.jsonl; model new rank=16; run r16; train steps=2 batch=2; model new rank=0; run dense; train steps=1 batch=2 seq=8; runs" 2>&1)
check_contains runs_rank_column "$out" "rank steps"
check_eq runs_rank_cells "16 dense" "$(printf '%s\n' "$out" | awk '$1 == "r16" || $1 == "dense" {print $4}' | tr '\n' ' ' | sed 's/ $//')"
check_eq runs_no_rank_column 0 "$(printf '%s\n' "$table" | grep -c 'rank')"
check_eq log_first_line_config "['adamw', 2, 32, 1, True, None, 'dense', 8, None]" "$(python3 -c '
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
a, b, c = lines[0], lines[1], lines[2]
print([a["optim"], a["batch"], a["seq"], a["accum"], "rank=16" in a["model"], b.get("model"), c["run"], c["seq"], c.get("params") and None])' "$TMP/cfg.jsonl")"
# a log opened mid-run says what the run is too, with the run's first line there
lrsh -c "$prep; train steps=2 batch=2; log $TMP/mid.jsonl; train steps=1 batch=2" >/dev/null 2>&1
check_eq log_mid_run_config "[3, 2, True]" "$(python3 -c '
import json, sys
o = json.loads(open(sys.argv[1]).readline())
print([o["step"], o["batch"], "rank=" in o["model"]])' "$TMP/mid.jsonl")"
out=$(lrsh --json -c "$prep; train steps=2 batch=2; run second; train steps=1 batch=4; runs" 2>/dev/null | grep '"command":"runs"')
check_eq runs_json_range_shape "[[1, 2, 2], [3, 3, 4]]" "$(printf '%s\n' "$out" | python3 -c 'import json, sys; print([[o["first_step"], o["last_step"], o["batch"]] for o in map(json.loads, sys.stdin)])')"

# runs --json names the model each run trained, and its parameters: two runs of a sweep at two
# ranks differ there (nothing but their names told them apart)
out=$(lrsh --json -c "$prep; model new rank=16; run r16; train steps=1 batch=2; model new rank=8; run r8; train steps=1 batch=2; runs" 2>/dev/null)
check_eq runs_model_recorded "['rank=16', 'rank=8']" "$(printf '%s\n' "$out" | grep '"command":"runs"' | python3 -c 'import json, sys; print([json.loads(l)["model"].split()[5] for l in sys.stdin])')"
check_eq runs_params_recorded True "$(printf '%s\n' "$out" | python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin]
new = [r["params"] for r in rows if r.get("command") == "model new"]
runs = [r["params"] for r in rows if r.get("command") == "runs"]
print(runs == new[1:] and len(runs) == 2)')"
# … and what else a rerun needs: the init seed, `set seed`, the sampler's state, every optimizer
# setting and the data's identity (two runs that differed only in warmup= or set seed had the
# same log line); a run of evaluations only (factorize, eval) names its model too
out=$(lrsh --json -c "$prep; set seed 99; log $TMP/rerun.jsonl; model new rank=8 seed=3; optim adamw warmup=7; run a; train steps=1 batch=2; model factorize rank=4; eval batches=1 batch=2; runs" 2>/dev/null)
check_eq runs_rerun_fields "3 99 True warmup=7 True | dim=64 True" "$(printf '%s\n' "$out" | grep '"command":"runs"' | python3 -c '
import json, sys
a, b = [json.loads(l) for l in sys.stdin]
print(a["init_seed"], a["session_seed"], len(a["data"]) == 16, [w for w in a["optim_settings"].split() if w.startswith("warmup")][0],
      a["data_rng"] == "%016x" % 99, "|", b["model"].split()[0], "rank=4" in b["model"] and b["params"] > 0)')"
# runs from= a log compares an earlier session's runs as that session's runs did (a sweep's table
# could not be had again without writing Python against the JSON)
table=$(lrsh -c "$prep; log $TMP/sweep.jsonl; model new rank=8 seed=3; run r8; optim adamw lr=0.004; train steps=2 batch=2; model new rank=4 seed=3; run r4; train steps=2 batch=2; runs" 2>&1 | sed -n '/^run  *optim/,/^r4 /p')
check_eq runs_from_log "$table" "$(lrsh -c "runs from=$TMP/sweep.jsonl" 2>&1 | sed -n '/^run  *optim/,/^r4 /p')"
check_eq runs_from_log_json "r8 3 0.004" "$(lrsh --json -c "runs from=$TMP/sweep.jsonl" 2>/dev/null | head -n 1 | json_eval '"%s %s %s" % (o["run"], o["init_seed"], o["lr"])')"
# the training split too (val= moves it: the same seeds, other losses), and an ensemble says so
check_eq runs_rerun_split "True 2" "$(lrsh --json -c "$prep; data load val=0.3; run a; train steps=1 batch=2; data load val=0.05; run b; train steps=1 batch=2; ensemble new 2; run c; train steps=1 batch=2; runs" 2>/dev/null | grep '"command":"runs"' | python3 -c '
import json, sys
a, b, c = [json.loads(l) for l in sys.stdin]
print(a["train_tokens"] < b["train_tokens"], c["ensemble_k"])')"
check_eq log_rerun_fields "3 99 adamw" "$(python3 -c '
import json, sys
o = json.loads(open(sys.argv[1]).readline())
print(o["init_seed"], o["session_seed"], o["optim_settings"].split()[0])' "$TMP/rerun.jsonl")"

# ---- inspect: sorted by ‖ΔW‖₂/η, the worst three marked ----
out=$(lrsh -c "$prep; inspect" 2>&1); rc=$?
check_status inspect_needs_step nonzero $rc
check_contains inspect_needs_step_msg "$out" "run \`step\`"
for o in sgd adamw spectron; do   # after one step every optimizer has something to show
    out=$(lrsh -c "$prep; optim $o; step; inspect" 2>&1); rc=$?
    check_status "inspect_after_${o}_step" 0 $rc
done
out=$(lrsh -c "$prep; optim spectron; step; model save $TMP/insp.st; model load $TMP/insp.st; inspect" 2>&1); rc=$?
check_status inspect_after_load_status 1 $rc
check_contains inspect_after_load "$out" "no update in this session yet (the loaded optimizer state carries no diagnostics)"
out=$(lrsh -c "$prep; optim spectron; step; inspect" 2>&1)
check_contains inspect_marks "$out" "* blocks."
check_contains inspect_verdict "$out" "within Spectron's bound"
out=$(lrsh -c "$prep; optim adamw; step; inspect" 2>&1)
check_contains inspect_verdict_adamw "$out" "Spectron's bound; adamw does not bound ‖ΔW‖₂"
# shape_scale=on scales the factors' steps past ρ on purpose: the verdict says it loosens the bound
out=$(lrsh -c "$prep; optim spectron shape_scale=on warmup=0 lr=0.05; step; inspect" 2>&1)
check_contains inspect_verdict_shape_scale "$out" "which shape_scale=on loosens"
out=$(lrsh --json -c "$prep; optim spectron; step; inspect" 2>/dev/null | tail -n 1)
check_eq inspect_sorted True "$(printf '%s\n' "$out" | json_eval '[m["dw_over_eta"] for m in o["matrices"]] == sorted([m["dw_over_eta"] for m in o["matrices"]], reverse=True)')"
check_eq inspect_worst3 "[True, True, True, False]" "$(printf '%s\n' "$out" | json_eval '[m["worst"] for m in o["matrices"]][:4]')"
# η is the rate the rows were measured against, that update's: a new lr after it changes lr only
out=$(lrsh -c "$prep; optim spectron lr=0.05 warmup=0; step; optim lr=0.01; inspect" 2>&1)
check_contains inspect_eta_of_the_update "$out" "spectron lr=0.01 (η this step 0.05)"
out=$(lrsh --json -c "$prep; optim spectron lr=0.05 warmup=0; step; optim lr=0.01; inspect" 2>/dev/null | tail -n 1)
check_eq inspect_eta_json "0.01 0.05" "$(printf '%s\n' "$out" | json_eval '"%g %g" % (o["lr"], o["eta"])')"
out=$(lrsh -c "$prep; optim spectron; train steps=3 diag_every=0; inspect sort=rho" 2>&1)
check_contains inspect_unmeasured "$out" "were not measured at the last update"
# train's last step is measured whatever diag_every falls on: inspect reads it (steps 1..13 here)
out=$(lrsh --json -c "$prep; optim muon; train steps=13 diag_every=10; inspect" 2>/dev/null | tail -n 1)
check_eq inspect_after_train_measured True "$(printf '%s\n' "$out" | json_eval 'o["step"] == 13 and all(m["dw_over_eta"] is not None and m["dw_over_eta"] > 0 for m in o["matrices"])')"

# ---- bench train optim=: the optimizer's share of the step ----
out=$(lrsh --json -c 'bench train shape=tiny model=factorized optim=spectron steps=1 batch=2' 2>/dev/null); rc=$?
check_status bench_optim_status 0 $rc
check_eq bench_optim_fraction True "$(printf '%s\n' "$out" | json_eval 'o["optim"] == "spectron" and 0 < o["optim_fraction"] < 1')"

# ---- completion: optimizer names, then the keys of the optimizer on the line ----
complete() {  # TEXT: type it, press Tab twice, print what the terminal shows
    python3 - "$LRSH" "$1" <<'PY'
import os, pty, select, sys, time
lrsh, text = sys.argv[1], sys.argv[2]
pid, fd = pty.fork()
if pid == 0:
    os.environ["HOME"] = os.environ.get("TMP_HOME", "/tmp")
    os.execv(lrsh, [lrsh, "--threads", "1", "-q"])
out = b""
def read(t):
    global out
    end = time.time() + t
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try: out += os.read(fd, 65536)
            except OSError: return
read(1.0)
os.write(fd, text.encode() + b"\t\t")
read(1.0)
os.kill(pid, 9); os.waitpid(pid, 0)
sys.stdout.write(out.decode("utf-8", "replace"))
PY
}
export TMP_HOME="$TMP"
check_contains complete_optim_name "$(complete 'optim spec')" "optim spectron"
check_contains complete_spectron_key "$(complete 'optim spectron power')" "power_iters="
check_not_contains complete_adamw_no_momentum "$(complete 'optim adamw mom')" "momentum="

# ---- the stability demo, short: four optimizers, one JSON object each at the end ----
short="$prep; set batch 4"
for o in adamw renorm ortho spectron; do
    short="$short; model new seed=5; optim $o lr=0.02 wd=0.01; run $o; train steps=4 diag_every=2; eval batches=2"
done
out=$(lrsh --json -c "$short; runs" 2>/dev/null); rc=$?
check_status demo_short_status 0 $rc
runs=$(printf '%s\n' "$out" | grep '"command":"runs"')
check_eq demo_short_optims "adamw renorm ortho spectron" "$(printf '%s\n' "$runs" | python3 -c 'import json, sys; print(" ".join(json.loads(l)["optim"] for l in sys.stdin))')"
check_eq demo_short_keys True "$(printf '%s\n' "$runs" | python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin]
print(len(rows) == 4 and all(all(k in r for k in ["optim", "val_loss", "spikes", "diverged", "max_dw_over_eta"]) for r in rows)
      and all(r["unigram_loss"] > 0 for r in rows))')"
check_eq demo_short_bound True "$(printf '%s\n' "$runs" | tail -n 1 | json_eval 'o["max_dw_over_eta"] <= 1.3 and o["diverged"] is False')"
out=$(lrsh -c "$short; runs; plot loss" 2>&1)
check_contains demo_short_table "$out" "max ΔW/η"
check_contains demo_short_plot "$out" "spectron"

# ---- demos/spectron_quick.lrsh as it is, holding it to what demos/README.md says of it: AdamW
# blows up, the ablations move W by far more than η and end above the unigram loss, Spectron
# stays under its bound and ends below it ----
out=$(lrsh --json demos/spectron_quick.lrsh 2>/dev/null); rc=$?
check_status demo_quick_status 0 $rc
check_eq demo_quick_story "adamw:blew-up renorm:above ortho:above spectron:below-bounded" "$(printf '%s\n' "$out" | grep '"command":"runs"' | python3 -c '
import json, sys
def verdict(r):
    if r["blew_up"]: return "blew-up"
    side = "below" if r["val_loss"] < r["unigram_loss"] else "above"
    if r["max_dw_over_eta"] <= 1: return side + "-bounded"
    return side if r["max_dw_over_eta"] > 10 else side + "-near"
print(" ".join("%s:%s" % (r["run"], verdict(r)) for r in map(json.loads, sys.stdin)))')"

# inspect after `optim` switched the optimizer: says why there is nothing to show
out=$(lrsh -c "$prep; optim spectron; step; optim adamw; inspect" 2>&1); rc=$?
check_status inspect_after_switch_status 1 $rc
check_contains inspect_after_switch "$out" "no update since adamw was set up at step 1 (by \`optim\` or \`model factorize\`): run \`step\`"

finish
