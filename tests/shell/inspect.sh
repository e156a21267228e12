# inspect.sh — the inspection commands: spectrum (JSON keys, descending values, compare=STEP and
# its "nearest" message), norms (a row per matrix, the update columns after `step`), watch (the
# steps recorded in the log and in plot data), align (microbatch, blockdrop p=0, forward,
# delayed, members) and their errors.
. tests/shell/testlib

lrsh() { "$LRSH" --threads 1 "$@"; }   # tiny models: one thread is fastest

"$LRSH" -q -c "tok train vocab=512 out=$TMP/tok.model; data load" >"$TMP/prep.log" 2>&1 || fail prep "$(cat "$TMP/prep.log")"
prep="tok load $TMP/tok.model; data load; set batch 2; model new tiny seq=32"

# ---- spectrum
out=$(lrsh --json -q -c "$prep; spectrum blocks.0.attn.wq" 2>/dev/null); rc=$?
check_status spectrum_status 0 $rc
check_eq spectrum_keys True "$(printf '%s\n' "$out" | json_eval 'all(k in o for k in ("param", "singular_values", "spectral_norm", "frobenius_norm", "stable_rank", "effective_rank", "condition_number"))')"
check_eq spectrum_param '"blocks.0.attn.wq"' "$(printf '%s\n' "$out" | json_field param)"
check_eq spectrum_descending True "$(printf '%s\n' "$out" | json_eval 'all(a >= b for a, b in zip(o["singular_values"], o["singular_values"][1:])) and len(o["singular_values"]) == 32')"
check_eq spectrum_norm_is_first True "$(printf '%s\n' "$out" | json_eval 'abs(o["spectral_norm"] - o["singular_values"][0]) <= 1e-6 * o["spectral_norm"]')"
check_eq spectrum_frobenius True "$(printf '%s\n' "$out" | json_eval 'abs(o["frobenius_norm"] - math.sqrt(sum(v * v for v in o["singular_values"]))) < 1e-4 * o["frobenius_norm"]')"
check_eq spectrum_stable_rank True "$(printf '%s\n' "$out" | json_eval 'abs(o["stable_rank"] - o["frobenius_norm"] ** 2 / o["spectral_norm"] ** 2) < 1e-3 * o["stable_rank"]')"
out=$(lrsh -c "$prep; spectrum blocks.1.mlp.w2 k=5" 2>&1)
check_eq spectrum_bars 5 "$(printf '%s\n' "$out" | grep -c '^  σ.*█')"
check_contains spectrum_text_rank "$out" "stable rank"
check_contains spectrum_text_more "$out" "91 more"
out=$(lrsh -c "$prep; spectrum blocks.0.attn.wq k=2" 2>&1)
check_contains spectrum_factorized_zeros "$out" "are exactly 0: rank ≤ 32)"
check_contains spectrum_factorized_condition "$out" "(σ₁/σ_r over the nonzero values)"
out=$(lrsh -c "$prep; spectrum blocks.0.attn.wx" 2>&1); rc=$?
check_status spectrum_unknown_status nonzero $rc
check_contains spectrum_unknown_suggests "$out" "blocks.0.attn.wq"
out=$(lrsh -c "$prep; spectrum blocks.0.attn_norm" 2>&1); rc=$?
check_status spectrum_norm_gain_status nonzero $rc

# compare=STEP: train keeps every matrix at its start and end; a step not kept names the nearest
out=$(lrsh --json -q -c "$prep; train steps=4; spectrum blocks.0.attn.wq compare=0" 2>/dev/null); rc=$?
check_status compare_status 0 $rc
check_eq compare_step 0 "$(printf '%s\n' "$out" | json_eval 'o["compare"]["step"]')"
check_eq compare_values True "$(printf '%s\n' "$out" | json_eval 'len(o["compare"]["singular_values"]) == len(o["singular_values"]) and o["compare"]["singular_values"] != o["singular_values"] and o["step"] == 4')"
# `step` keeps a new model's at step 0 too, so a lab's `step; train …; spectrum … compare=0` works
out=$(lrsh --json -q -c "$prep; step; train steps=2; spectrum blocks.0.attn.wq compare=0" 2>/dev/null); rc=$?
check_status compare_after_step_status 0 $rc
check_eq compare_after_step "0 3" "$(printf '%s\n' "$out" | tail -1 | json_eval '"%d %d" % (o["compare"]["step"], o["step"])')"
out=$(lrsh -c "$prep; train steps=4; spectrum blocks.0.attn.wq compare=3" 2>&1); rc=$?
check_status compare_missing_status nonzero $rc
check_contains compare_missing_nearest "$out" "the nearest other than this one is step 0 (compare=0); recorded: 0, 4 (this one)"   # not step 4, the one shown
out=$(lrsh -c "$prep; spectrum blocks.0.attn.wq compare=7" 2>&1); rc=$?
check_status compare_none_status nonzero $rc
check_contains compare_none_nearest "$out" "nor at another step to compare with"
out=$(lrsh -c "$prep; train steps=4; spectrum blocks.0.attn.wq compare=4" 2>&1); rc=$?   # itself: refused
check_status compare_self_status nonzero $rc
check_contains compare_self "$out" "compare=4 is this step: nothing to compare"
out=$(lrsh -c "$prep; train steps=2; spectrum blocks.0.attn.wq compare=0 k=3" 2>&1)
check_eq compare_overlay_bars 3 "$(printf '%s\n' "$out" | grep -c '░░')"

# ---- norms
out=$(lrsh --json -q -c "$prep; norms" 2>/dev/null); rc=$?
check_status norms_status 0 $rc
check_eq norms_rows 14 "$(printf '%s\n' "$out" | grep -c '"command":"norms"')"
check_eq norms_no_update True "$(printf '%s\n' "$out" | grep '"command":"norms"' | json_eval 'o["dw_spectral"] is None and o["spectral"] > 0 and o["param"] == "blocks.1.mlp.w3"')"
out=$(lrsh --json -q -c "$prep; step; norms" 2>/dev/null)
rows=$(printf '%s\n' "$out" | python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin if "\"command\":\"norms\"" in l]
lr = 1e-4   # adamw lr=1e-3 warms up over 10 steps: step 1 has lr/10
ok = all(r["dw_spectral"] > 0 and abs(r["dw_over_eta"] - r["dw_spectral"] / lr) < 1e-3 * r["dw_over_eta"]
         and abs(r["dw_over_w"] - r["dw_spectral"] / r["spectral"]) < 1e-3 * r["dw_over_w"]
         and abs(r["stable_rank"] - r["frobenius"] ** 2 / r["spectral"] ** 2) < 1e-3 * r["stable_rank"] for r in rows)
print(len(rows), ok, rows[0]["param"])')
check_eq norms_after_step "14 True blocks.0.attn.wq" "$rows"
check_eq norms_io 16 "$(lrsh --json -q -c "$prep; norms io=on" 2>/dev/null | grep -c '"command":"norms"')"
# under spectron embed and head move at adam_lr (3e-3), the matrices at lr (0.02): η by group
out=$(lrsh --json -q -c "$prep; optim spectron warmup=0; step; norms io=on" 2>/dev/null)
etas=$(printf '%s\n' "$out" | python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin if "\"command\":\"norms\"" in l]
eta = {r["param"]: r["dw_spectral"] / r["dw_over_eta"] for r in rows}
print("%.4g %.4g %.4g" % (eta["blocks.0.attn.wq"], eta["embed"], eta["head"]))')
check_eq norms_io_eta "0.02 0.003 0.003" "$etas"
# … and each row says which η it divided by (a program had only the text header)
check_eq norms_eta_field "0.02 0.003" "$(printf '%s\n' "$out" | grep '"command":"norms"' | python3 -c '
import json, sys
rows = {r["param"]: r for r in map(json.loads, sys.stdin)}
print("%.4g %.4g" % (rows["blocks.0.attn.wq"]["eta"], rows["embed"]["eta"]))')"
check_eq norms_eta_null_before_update None "$(lrsh --json -q -c "$prep; norms" 2>/dev/null | grep '"command":"norms"' | head -n 1 | json_eval 'o["eta"]')"
# lr=0 holds the matrices still; the AdamW group still moves at adam_lr (it was scaled by lr/lr: 0)
out=$(lrsh --json -q -c "$prep; optim muon lr=0 adam_lr=0.01 warmup=0; step; norms io=on" 2>/dev/null)
moved=$(printf '%s\n' "$out" | python3 -c '
import json, sys
rows = {r["param"]: r for r in (json.loads(l) for l in sys.stdin if "\"command\":\"norms\"" in l)}
print(rows["blocks.0.attn.wq"]["dw_spectral"] == 0, rows["embed"]["dw_spectral"] > 0, rows["head"]["dw_spectral"] > 0)')
check_eq norms_io_moves_at_lr_0 "True True True" "$moved"
# after a switch of optimizer, the last update is still the one shown, at the rates it was made with
out=$(lrsh --json -q -c "$prep; optim spectron warmup=0; step; optim adamw; norms io=on" 2>/dev/null)
etas=$(printf '%s\n' "$out" | python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin if "\"command\":\"norms\"" in l]
eta = {r["param"]: r["dw_spectral"] / r["dw_over_eta"] for r in rows}
print("%.4g %.4g %.4g" % (eta["blocks.0.attn.wq"], eta["embed"], eta["head"]))')
check_eq norms_io_eta_after_switch "0.02 0.003 0.003" "$etas"
check_contains norms_io_eta_header "$(lrsh -c "$prep; optim spectron warmup=0; step; norms io=on" 2>&1)" "(η 0.02; embed and head: 0.003)"
# renorm moves a dense model's matrices by AdamW at adam_lr, not lr: η is adam_lr's (it was lr,
# so ‖ΔW‖₂/η moved with an lr the update never used), in the rows, in watch and in the header
etas=$(lrsh --json -q -c "$prep; model new tiny rank=0 seq=32; optim renorm lr=0.04 adam_lr=0.005 warmup=0; log $TMP/renorm.jsonl; watch dw_over_eta:blocks.0.attn.wq every=1; step; norms io=on" 2>/dev/null | python3 -c '
import json, sys
rows = {r["param"]: r for r in (json.loads(l) for l in sys.stdin) if r.get("command") == "norms"}
watched = [json.loads(l).get("watch", {}).get("dw_over_eta:blocks.0.attn.wq") for l in open(sys.argv[1])]
wq = rows["blocks.0.attn.wq"]
print("%.4g %.4g %s" % (wq["dw_spectral"] / wq["dw_over_eta"], rows["embed"]["dw_spectral"] / rows["embed"]["dw_over_eta"],
                        [abs(v - wq["dw_over_eta"]) < 1e-4 * v for v in watched if v is not None]))' "$TMP/renorm.jsonl")
check_eq norms_renorm_dense_eta "0.005 0.005 [True]" "$etas"
check_contains norms_renorm_dense_header "$(lrsh -c "$prep; model new tiny rank=0 seq=32; optim renorm warmup=0; step; norms" 2>&1)" "(η 0.003, adam_lr's: AdamW moved these matrices)"
# a dense model's run gets its ‖ΔW‖₂/η on diagnostics steps from the block matrices' norms (it
# was null in train's JSON and "–" in `runs` unless watched); none with diag_every=0
out=$(lrsh --json -q -c "$prep; model new tiny rank=0 seq=32; train steps=3 diag_every=1; norms; runs" 2>/dev/null)
check_eq dense_run_dw_over_eta True "$(printf '%s\n' "$out" | python3 -c '
import json, sys
lines = [json.loads(l) for l in sys.stdin]
train = [o for o in lines if o.get("command") == "train"][0]
last = max(o["dw_over_eta"] for o in lines if o.get("command") == "norms" and o.get("dw_over_eta") is not None)
runs = [o for o in lines if o.get("command") == "runs"][-1]
run = runs["runs"][-1] if "runs" in runs else runs
print(train["max_dw_over_eta"] is not None and train["max_dw_over_eta"] >= last * (1 - 1e-5) and
      abs(run["max_dw_over_eta"] - train["max_dw_over_eta"]) <= 1e-6 * train["max_dw_over_eta"])')"
out=$(lrsh --json -q -c "$prep; model new tiny rank=0 seq=32; train steps=3 diag_every=0" 2>/dev/null | tail -n 1)
check_eq dense_run_dw_over_eta_off None "$(printf '%s\n' "$out" | json_eval 'o["max_dw_over_eta"]')"

# the table fits 80 columns (text not to a terminal is laid out for 80) with GPT-2's longest
# names and shapes ("blocks.11.mlp.w2  768×3072 r768"), before and after an update
out=$(lrsh -q -c "$prep; model new tiny dim=768 layers=12 heads=12 kv_heads=12 ffn=3072 seq=8; norms; step; norms io=on" 2>/dev/null | grep -E '^(matrix |blocks\.|embed |head )')
check_contains norms_wide_shape "$out" "blocks.11.mlp.w2  768×3072 r768"
check_eq norms_fit_80 True "$([ "$(printf '%s\n' "$out" | widest)" -le 80 ] && echo True || echo "$out")"

# inspect after an update that measured no ‖ΔW‖₂: it says so, and sorts and marks nothing
check_contains inspect_unmeasured_order "$(lrsh -c "$prep; train steps=3 diag_every=0; inspect" 2>&1)" "in model order (not measured: dw_over_eta)"

# `watch FIELD:` names nothing after its colon: an error, not the field alone
out=$(lrsh -c "$prep; watch spectral:" 2>&1); rc=$?
check_status watch_empty_param_status 1 $rc
check_contains watch_empty_param_says "$out" "watch: 'spectral:' names nothing after its ':'"
# a watched σ_A under adamw (measured only on steps with diagnostics) is measured on every watch
# step, not only train's diag_every-th (it was null at steps 2, 6, … with every=2)
out=$(lrsh -q -c "$prep; optim adamw; log $TMP/unmeasured.jsonl; watch sigma_a:blocks.0.attn.wq every=2; train steps=6" 2>&1); rc=$?
check_status watch_sigma_status 0 $rc
check_eq watch_sigma_every_step "2 4 6" "$(python3 -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(" ".join(str(r["step"]) for r in rows if isinstance(r.get("watch", {}).get("sigma_a:blocks.0.attn.wq"), float)))' "$TMP/unmeasured.jsonl")"
# a watched value a step did not measure is null in the log; plotting it from there finds the
# field (with no points) instead of not knowing it
sed 's/"sigma_a:blocks.0.attn.wq":[0-9.e+-]*/"sigma_a:blocks.0.attn.wq":null/' "$TMP/unmeasured.jsonl" >"$TMP/nulls.jsonl"
out=$(lrsh -q -c "plot sigma_a:blocks.0.attn.wq from=$TMP/nulls.jsonl" 2>&1)
check_contains watch_unmeasured_null "$(tail -n 1 "$TMP/nulls.jsonl")" '"watch":{"sigma_a:blocks.0.attn.wq":null}'
check_contains watch_unmeasured_plot "$out" "no finite points"

# `watch dw_over_eta` measures the run's own dw_over_eta at the steps the optimizer does not:
# `plot dw_over_eta` draws them and `runs` takes them into its maximum
out=$(lrsh --json -c "$prep; optim spectron; watch dw_over_eta every=2; train steps=4 diag_every=0; plot dw_over_eta; runs" 2>/dev/null); rc=$?
check_status plot_watched_dw_status 0 $rc
check_eq plot_watched_dw_points 2 "$(printf '%s\n' "$out" | grep '"command":"plot"' | json_eval 'o["series"][0]["points"]')"
check_eq runs_watched_dw_max True "$(printf '%s\n' "$out" | grep '"command":"runs"' | json_eval 'o["max_dw_over_eta"] is not None and o["max_dw_over_eta"] > 0')"

# the progress lines between watch steps repeat the last values under the step that measured them
out=$(lrsh -c "$prep; watch spectral every=3; train steps=4" 2>&1)
check_contains watch_live_step "$out" "[step 3] spectral "
check_not_contains watch_live_step_4 "$out" "[step 4]"
# `step` on a watch step shows what it measured; on another step, nothing
out=$(lrsh -c "$prep; watch spectral every=2; step; step" 2>&1)
check_contains watch_step_shown "$out" "watched       [step 2] spectral "
check_not_contains watch_step_not_at_1 "$out" "[step 1]"

# ---- watch: every=5 over 20 steps records steps 5, 10, 15, 20 (log lines and plot data)
out=$(lrsh --json -q -c "$prep; log $TMP/watch.jsonl; watch spectral stable_rank:blocks.1.mlp.w2 blocks.0.attn.wq:dw_over_w every=5; train steps=20; plot spectral; plot stable_rank:blocks.1.mlp.w2; watch" 2>/dev/null); rc=$?
check_status watch_status 0 $rc
logged=$(python3 -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
w = [r for r in rows if "watch" in r]
print([r["step"] for r in w], sorted(w[0]["watch"]), all(len(r["watch"]) == 3 for r in w), len(rows))' "$TMP/watch.jsonl")
check_eq watch_log_steps "[5, 10, 15, 20] ['dw_over_w:blocks.0.attn.wq', 'spectral', 'stable_rank:blocks.1.mlp.w2'] True 20" "$logged"
check_eq watch_plot_steps "[5, 10, 15, 20]" "$(printf '%s\n' "$out" | grep '"field":"spectral"' | json_eval 'o["series"][0]["steps"]')"
check_eq watch_plot_param_steps "[5, 10, 15, 20]" "$(printf '%s\n' "$out" | grep '"field":"stable_rank:blocks.1.mlp.w2"' | json_eval 'o["series"][0]["steps"]')"
check_eq watch_list "['spectral', 'stable_rank:blocks.1.mlp.w2', 'dw_over_w:blocks.0.attn.wq', 5]" "$(printf '%s\n' "$out" | json_eval 'o["fields"] + [o["every"]]')"
# a new field list keeps the interval, as help watch says (it said "default 10")
check_eq watch_fields_keep_every 5 "$(lrsh --json -q -c "$prep; watch spectral every=5; watch rho; watch" 2>/dev/null | tail -n 1 | json_field every)"
out=$(lrsh -c "plot spectral from=$TMP/watch.jsonl" 2>&1); rc=$?
check_contains watch_plot_title "$out" "max ‖W‖₂ over the block matrices (watch)"   # it read "watch: spectral"
check_status watch_plot_from_log 0 $rc
check_contains watch_plot_from_log_points "$out" "4 points"
# the field as `watch` took it: spectral:max is spectral's own aggregate, recorded as spectral
out=$(lrsh -c "plot spectral:max from=$TMP/watch.jsonl" 2>&1); rc=$?
check_status watch_plot_aggregate_spelled 0 $rc
check_contains watch_plot_aggregate_points "$out" "4 points"
out=$(lrsh -c "$prep; watch spectral every=3; watch off; train steps=3; plot spectral" 2>&1); rc=$?
check_status watch_off_nothing nonzero $rc
out=$(lrsh -c "$prep; watch spectrl" 2>&1); rc=$?
check_status watch_bad_field_status nonzero $rc
check_contains watch_bad_field "$out" "did you mean 'spectral'"
out=$(lrsh -c "$prep; watch spectral:blocks.0.attn.wz" 2>&1); rc=$?
check_status watch_bad_param_status nonzero $rc
check_contains watch_bad_param "$out" "blocks.0.attn.wq"
out=$(lrsh -c "$prep; watch spectral:blocks.0.attn.wq.A" 2>&1); rc=$?
check_status watch_factor_status nonzero $rc
check_contains watch_factor "$out" "whole matrices"

# ---- align
out=$(lrsh --json -q -c "$prep; align; align against=blockdrop p=0 draws=2; align against=forward" 2>/dev/null); rc=$?
check_status align_status 0 $rc
check_eq align_json "valid 3" "$(printf '%s\n' "$out" | grep '"command":"align"' | json_lines)"
check_eq align_microbatch True "$(printf '%s\n' "$out" | grep '"against":"microbatch"' | json_eval '-1 <= o["overall"] <= 1 and len(o["per_param"]) == 21 and all(k in o["per_param"][0] for k in ("param", "cosine")) and o["norm_ratio"] > 0')"
check_eq align_blockdrop_p0 True "$(printf '%s\n' "$out" | grep '"against":"blockdrop' | json_eval 'abs(o["overall"] - 1) < 1e-5 and abs(o["norm_ratio"] - 1) < 1e-5 and len(o["layers"]) == 2')"
check_eq align_forward True "$(printf '%s\n' "$out" | grep '"against":"forward' | json_eval '0 <= o["overall"] <= 1')"
out=$(lrsh -c "$prep; align against=blockdrop p=0" 2>&1)
check_contains align_strip "$out" "per layer  [██]"
out=$(lrsh -c "$prep; align against=delayed" 2>&1); rc=$?
check_status align_delayed_none_status nonzero $rc
check_contains align_delayed_hint "$out" "run \`step\`"
out=$(lrsh --json -q -c "$prep; step; align; align against=delayed" 2>/dev/null); rc=$?
check_status align_delayed_status 0 $rc
# the batches' seed, the session's plus the step (1234 + 1): seed= draws them again
check_eq align_json_seed_default 1235 "$(printf '%s\n' "$out" | grep '"command":"align"' | head -n 1 | json_field seed)"
check_eq align_delayed True "$(printf '%s\n' "$out" | json_eval 'o["against"] == "delayed" and -1 <= o["overall"] <= 1 and o["step"] == 1')"
out=$(lrsh --json -c "$prep; align against=blockdrop p=0.5 draws=2" 2>/dev/null)
check_eq align_against_value "blockdrop|blockdrop p=0.5 draws=2" "$(printf '%s\n' "$out" | tail -n 1 | json_eval 'o["against"] + "|" + o["setup"]')"
out=$(lrsh -c "$prep; align against=microbatch p=0.5" 2>&1); rc=$?
check_status align_bad_key_status nonzero $rc
check_contains align_bad_key "$out" "takes no option 'p'"
out=$(lrsh -c "$prep; align against=members" 2>&1); rc=$?
check_status align_members_none_status nonzero $rc
check_contains align_members_none "$out" "ensemble new"
# same initial weights, same batch: every member's gradient is the same
out=$(lrsh --json -q -c "$prep; ensemble new 2 same_init=yes; align against=members" 2>/dev/null); rc=$?
check_status align_members_status 0 $rc
check_eq align_members_same True "$(printf '%s\n' "$out" | json_eval 'abs(o["overall"] - 1) < 1e-5 and len(o["pairwise"]) == 2 and o["members"] == 2')"

# ---- help
# a new model keeps the watched fields it has and drops, with a note, those it lacks (they would
# record nothing); σ and ρ are refused on a dense model
out=$(lrsh --json -c "$prep; watch stable_rank:blocks.1.mlp.w2 sigma_a spectral; model new tiny seq=32 layers=1; watch; model new tiny seq=32 rank=0; watch" 2>"$TMP/err")
check_eq watch_recheck '["sigma_a", "spectral"] ["spectral"]' "$(printf '%s\n' "$out" | grep '"command":"watch"' | tail -n 2 | python3 -c 'import json, sys
print(" ".join(json.dumps([f["key"] if isinstance(f, dict) else f for f in json.loads(l)["fields"]]) for l in sys.stdin))')"
check_contains watch_recheck_note "$(cat "$TMP/err")" "watch: dropped for the new model: watch stable_rank:blocks.1.mlp.w2: unknown matrix"
out=$(lrsh -c "$prep; model new tiny seq=32 rank=0; watch rho" 2>&1)
check_contains watch_dense_rho "$out" "watch rho: the model is dense"
for c in spectrum norms watch align; do
    check_contains "help_$c" "$(lrsh -c "help $c" 2>&1)" "Examples:"
done

# Ctrl-C stops align between its batches (batches=3000 ran to its end)
interrupt_after "$TMP/align-int.log" "token cache" 1 --threads 1 -c "$prep; align batches=10000; show"
check_status align_interrupt_status 130 $rc
check_contains align_interrupt_says "$out" "align interrupted"
check_eq align_interrupt_prompt True "$(python3 -c "print($stop_seconds < 20)")"

finish
