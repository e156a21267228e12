# ensemble.sh — ensembles from the shell: new, wash, train, eval (table and JSON), papa, off,
# average (both modes), use, the hooks in eval/step/model info, ensemble checkpoints (model save
# → model load in another process → train continues bit for bit), and bad input.
. tests/shell/testlib

prep="tok train vocab=512; data load val=0.05; model new tiny dim=32 layers=2 heads=2 kv_heads=2 ffn=64 seq=16 rank=8; optim adamw lr=3e-3"
run() { "$LRSH" --threads 1 "$@"; }

# new / wash / train / eval / average, as JSON
out=$(run --json -c "$prep; ensemble new 3 seeds=1,2,3; model info; ensemble wash p=0.2; train steps=6 batch=2; ensemble eval batches=2 batch=2; ensemble average mode=product; eval batches=2 batch=2; train steps=1 batch=2" 2>"$TMP/err"); rc=$?
check_status round_trip_status 0 $rc
check_eq round_trip_json "valid 12" "$(printf '%s\n' "$out" | json_lines)"
new=$(printf '%s\n' "$out" | grep '"command":"ensemble new"')
check_eq new_k 3 "$(printf '%s\n' "$new" | json_field k)"
check_eq new_seeds "[1, 2, 3]" "$(printf '%s\n' "$new" | json_field seeds)"
check_eq new_same_init_seeds "[4, null, null]" "$(run --json -c "$prep; ensemble new 3 seeds=4,5,6 same_init=on" 2>/dev/null | grep '"command":"ensemble new"' | json_field seeds)"
info=$(printf '%s\n' "$out" | grep '"command":"model info"')
check_eq info_ensemble_memory True "$(printf '%s\n' "$info" | json_eval 'o["ensemble"]["k"] == 3 and o["ensemble"]["bytes"] > 3 * o["param_bytes"]')"
train=$(printf '%s\n' "$out" | grep '"command":"train"' | head -n 1)
check_eq train_members True "$(printf '%s\n' "$train" | json_eval 'o["k"] == 3 and len(o["member_loss"]) == 3 and o["step"] == 6')"
check_eq train_members_lr_grad True "$(printf '%s\n' "$train" | json_eval 'o["lr"] > 0 and len(o["member_grad_norm"]) == 3 and all(g > 0 for g in o["member_grad_norm"])')"
check_eq train_exchanged True "$(printf '%s\n' "$train" | json_eval 'o["method"] == "wash" and o["values_exchanged"] > 0')"
check_eq train_coupling True "$(printf '%s\n' "$train" | json_eval 'o["coupling"]["method"] == "wash" and o["coupling"]["opt_state"] in (True, False) and o["coupling"]["every"] >= 1')"
ev=$(printf '%s\n' "$out" | grep '"command":"ensemble eval"')
for key in members member_mean ensemble_loss avg_factors_loss avg_product_loss truncation_error truncation_error_worst values_exchanged_total coupling; do
    check_not_contains "eval_key_$key" "$(printf '%s\n' "$ev" | json_field $key)" missing
done
check_eq eval_jensen True "$(printf '%s\n' "$ev" | json_eval 'o["ensemble_loss"] <= o["member_mean"] + 1e-5 and 0 <= o["truncation_error"] < 1')"
avg=$(printf '%s\n' "$out" | grep '"command":"ensemble average"')
check_eq average_step True "$(printf '%s\n' "$avg" | json_eval 'o["mode"] == "product" and o["step"] == 6')"
check_eq after_average_single_eval True "$(printf '%s\n' "$out" | grep '"command":"eval"' | json_eval '"val_loss" in o')"
check_eq after_average_continues 7 "$(printf '%s\n' "$out" | grep '"command":"train"' | tail -n 1 | json_field step)"

# text: the eval table, `eval` routed to the members, papa, off, use, step refused, save of an ensemble
out=$(run -c "$prep; ensemble new 2 same_init=yes; ensemble papa alpha=0.5 every=2; train steps=4 batch=2; eval batches=2 batch=2; ensemble off; set errexit off; step; model save $TMP/e.safetensors; ensemble use 1; step batch=2" 2>&1); rc=$?
check_status text_status_reports_the_refusals nonzero $rc
check_contains papa_line "$out" "PAPA: every 2 steps"
check_contains papa_train "$out" "papa: "
check_contains eval_table_ensemble "$out" "ensemble (probs)"
check_contains eval_table_product "$out" "average: product"
check_contains eval_table_member "$out" "member 1"
check_contains off_line "$out" "members train independently"
check_contains step_refused "$out" "an ensemble is training"
check_contains save_ensemble "$out" "ensemble of 2 members (independent coupling) at step 4"
check_contains use_member "$out" "continuing with member 1 of 2 (step 4"
check_contains step_after_use "$out" "step          5"

# ensemble checkpoints: save at step 3 with WASH on, train 2 more; another process loads the file
# and trains 2 steps: the same member losses and values exchanged, bit for bit
ck="$TMP/ens.safetensors"
out=$(run --json -c "$prep; ensemble new 2 seeds=1,2; ensemble wash p=0.2 every=2; train steps=3 batch=2; model save $ck; train steps=2 batch=2" 2>"$TMP/err"); rc=$?
check_status ckpt_save_status 0 $rc
save=$(printf '%s\n' "$out" | grep '"command":"model save"')
check_eq ckpt_save_json True "$(printf '%s\n' "$save" | json_eval 'o["ensemble_k"] == 2 and o["method"] == "wash" and o["step"] == 3 and o["optimizer"] == "adamw" and o["optimizer_state"] and o["tokenizer"]')"
full=$(printf '%s\n' "$out" | grep '"command":"train"' | tail -n 1)
out=$(run --json -c "model load $ck; data load val=0.05; model info; train steps=2 batch=2; ensemble eval batches=2 batch=2" 2>"$TMP/err"); rc=$?
check_status ckpt_load_status 0 $rc
load=$(printf '%s\n' "$out" | grep '"command":"model load"')
check_eq ckpt_load_json True "$(printf '%s\n' "$load" | json_eval 'o["ensemble_k"] == 2 and o["method"] == "wash" and o["step"] == 3 and o["optimizer_state"] and o["tokenizer"]')"
check_eq ckpt_load_info True "$(printf '%s\n' "$out" | grep '"command":"model info"' | json_eval 'o["ensemble"]["k"] == 2 and o["ensemble"]["method"] == "wash" and o["ensemble"]["step"] == 3')"
resumed=$(printf '%s\n' "$out" | grep '"command":"train"')
check_eq ckpt_resume_step 5 "$(printf '%s\n' "$resumed" | json_field step)"
check_eq ckpt_resume_member_losses "$(printf '%s\n' "$full" | json_field member_loss)" "$(printf '%s\n' "$resumed" | json_field member_loss)"
check_eq ckpt_resume_exchanged "$(printf '%s\n' "$full" | json_field values_exchanged_total)" "$(printf '%s\n' "$resumed" | json_field values_exchanged_total)"
check_not_contains ckpt_eval_after_load "$(printf '%s\n' "$out" | grep '"command":"ensemble eval"' | json_field avg_product_loss)" missing
# text, and a damaged ensemble file leaves the session as it was
head -c 5000 "$ck" > "$TMP/cut.safetensors"
out=$(run -c "$prep; set errexit off; model load $TMP/cut.safetensors; model load $ck; ensemble use 1; step batch=2" 2>&1)
check_contains ckpt_cut_refused "$out" "truncated"
check_contains ckpt_load_text "$out" "ensemble of 2 members at step 3"
check_contains ckpt_use_after_load "$out" "continuing with member 1 of 2 (step 3"
out=$(run -c "model load $ck; show" 2>&1)   # the session's model is member 0, at the members' step
check_contains ensemble_load_step "$out" "trainer    2, one per member of the ensemble, step 3"

# a new model drops the ensemble; bad input is refused with a message
# optim after ensemble new reaches the members: the same optimizer keeps their state, another starts fresh
out=$(run --json -c "$prep; ensemble new 2 seeds=1,2; train steps=2 batch=2; optim lr=1e-3; optim sgd lr=0.5" 2>/dev/null)
check_eq ensemble_optim_retune false "$(printf '%s\n' "$out" | tail -n 2 | head -n 1 | json_field ensemble_state_reset)"
check_eq ensemble_optim_switch true "$(printf '%s\n' "$out" | tail -n 1 | json_field ensemble_state_reset)"
a=$(run --json -c "$prep; ensemble new 2 seeds=1,2; optim sgd lr=0.5; train steps=2 batch=2" 2>/dev/null | tail -n 1 | json_field loss)
b=$(run --json -c "$prep; ensemble new 2 seeds=1,2; train steps=2 batch=2" 2>/dev/null | tail -n 1 | json_field loss)
check_eq ensemble_optim_applies different "$([ -n "$a" ] && [ "$a" != "$b" ] && echo different || echo "same: $a $b")"
# ensemble eval says, as eval does, when its batches read the validation split over and over
out=$(run -c "$prep; data load val=0.001; ensemble new 2; ensemble eval batches=200 batch=2" 2>&1)
check_contains ensemble_eval_rereads "$out" "times over (\`data load val=\` holds out more)"
out=$(run -c "$prep; set errexit off; ensemble eval; ensemble new 1; ensemble new 2 seeds=1; ensemble new 2; ensemble wash; ensemble wash p=2; ensemble use 5; model new tiny dim=32 layers=1 heads=2 kv_heads=2 ffn=64 seq=16; ensemble off" 2>&1)
check_contains no_ensemble "$out" "no ensemble: run \`ensemble new K\` first"
check_contains bad_k "$out" "an ensemble has 2 to"
check_contains bad_seeds "$out" "1 seed for 2 members"
check_contains wash_needs_p "$out" "ensemble wash needs p="
check_contains wash_bad_p "$out" "p="
check_contains use_range "$out" "the ensemble has members 0 to 1"
check_contains dropped "$out" "ensemble dropped"

# model factorize would drop trained members: refused; the commands that read the session's own
# model say so; show lists the ensemble; a second ensemble new says what training goes
out=$(run -c "$prep; set errexit off; ensemble new 2; train steps=2 batch=2; model factorize rank=4; generate hi n=2; norms; show; ensemble new 3; train steps=1 batch=2; model new tiny dim=32 layers=1 heads=2 kv_heads=2 ffn=64 seq=16" 2>&1)
check_contains factorize_refused "$out" "an ensemble of 2 is training: \`ensemble use I\` or \`ensemble average\` makes one model to factorize"
check_contains single_model_note "$out" "the model the ensemble was made from (after \`model load\` of an ensemble file, member 0 as saved), at step 0"
# align on the session's model says it once (it said it twice, twice in --json's warnings too)
out_align=$(run --json -c "$prep; ensemble new 2; align batches=1 batch=2" 2>/dev/null | tail -n 1)
check_eq align_single_model_note_once 1 "$(printf '%s\n' "$out_align" | json_eval 'sum("the model the ensemble was made from" in w for w in o.get("warnings", []))')"
check_contains generate_refused "$out" "an ensemble of 2 is training: \`ensemble average\` or \`ensemble use I\` makes one model to generate from (the session's own model is the one the ensemble was made from, or member 0 as a file saved it, at step 0"
check_contains inspect_refused "$(run -c "$prep; ensemble new 2; train steps=1 batch=2; inspect" 2>&1)" "makes one model to inspect (the session"
check_contains watch_ensemble_note "$(run -c "$prep; watch spectral every=1; ensemble new 2; train steps=1 batch=2" 2>&1)" "note: \`watch\` records nothing while an ensemble trains"
check_contains show_ensemble "$out" "ensemble   2 members"
check_contains new_says_what_goes "$out" "ensemble dropped (replaced by a new one): its 2 members and their 2 steps of training are gone"
check_contains model_new_says_what_goes "$out" "ensemble dropped (the model it grew from was replaced): its 3 members and their 1 step of training are gone"
check_contains new_after_trained "$out" "ensemble: 3 members"

# ... and after a save, where they are instead
out=$(run -c "$prep; ensemble new 2 seeds=1,2; train steps=1 batch=2; model save $TMP/saved-ens.st; model new tiny" 2>&1)
check_contains dropped_after_save "$out" "its 2 members at step 1 are in $TMP/saved-ens.st (\`model load\` brings them back)"
# an ensemble grown from a trained model: the step its members stand at, not its own step count
out=$(run -c "$prep; train steps=3 batch=2; ensemble new 2; train steps=2 batch=2; model save $TMP/grown-ens.st; model new tiny" 2>&1)
check_contains dropped_at_members_step "$out" "its 2 members at step 5 are in $TMP/grown-ens.st"
out=$(run --json -c "model load $TMP/saved-ens.st; data load; run pair; train steps=1 batch=2; ensemble eval batches=1 batch=2" 2>/dev/null)
check_eq ensemble_eval_run '"pair"' "$(printf '%s\n' "$out" | grep '"command":"ensemble eval"' | json_field run)"
out=$(run -c "model load $TMP/saved-ens.st; model save $TMP/no-state-ens.st optim=off; model load $TMP/no-state-ens.st" 2>&1)
check_contains ensemble_load_stopped "$out" "\`train\` continues every member where it stopped"
check_contains ensemble_load_no_state "$out" "continues every member from its step with fresh moments (no optimizer state in the file)"

# a model that came from somewhere records its run under that name: the averaged ensemble, a
# member taken out; a loaded file goes on in the run it was saved in (the ensemble's, steps 1..2
# here), one saved before any step under its stem; a run name may not hold the comma plot
# runs= splits at
out=$(run --json -c "$prep; ensemble new 2 seeds=1,2; train steps=1 batch=2; model save $TMP/from-file.st; ensemble average; eval batches=1; model load $TMP/from-file.st; ensemble use 1; eval batches=1; model load $TMP/from-file.st; train steps=1 batch=2; model new tiny seq=32; model save $TMP/fresh.st; model load $TMP/fresh.st; train steps=1 batch=2; runs" 2>/dev/null)
check_eq runs_named_by_origin '[2, "average-product", "member-1", "fresh"]' "$(printf '%s\n' "$out" | grep '"command":"runs"' | python3 -c 'import json, sys
rows = [json.loads(l) for l in sys.stdin]; print(json.dumps([rows[0]["last_step"]] + [r["run"] for r in rows[1:]]))')"
out=$(run -c "run a,b" 2>&1)
check_contains run_name_no_comma "$out" "a run name has no quotes, commas"

# a member that diverges stops the step for all, as a single model's divergence does: a result
# (ok, diverged, the script goes on), every member back before the update that broke it, at one
# step count, the run marked diverged and without the undone step
ck="$TMP/ensdiv.safetensors"
out=$(run --json -c "$prep; optim sgd lr=10 clip=0 warmup=0 momentum=0.99; ensemble new 2 seeds=1,2; train steps=40 batch=2; runs; model save $ck" 2>"$TMP/err"); rc=$?
check_status diverged_goes_on 0 $rc
train=$(printf '%s\n' "$out" | grep '"command":"train"')
check_eq diverged_json True "$(printf '%s\n' "$train" | json_eval 'o["ok"] and o["diverged"] and o["diverged_at"] == o["step"] + 2 and "not finite" in o["reason"] and "rolled back" in o["reason"] and o["run"] == "ensemble-2" and "spikes" in o')"
check_eq diverged_runs True "$(printf '%s\n' "$out" | grep '"command":"runs"' | json_eval 'o["diverged"] and o["steps"] == o["diverged_at"] - 2')"
steps=$(python3 -c 'import json, struct, sys
b = open(sys.argv[1], "rb").read(); md = json.loads(b[8:8 + struct.unpack("<Q", b[:8])[0]])["__metadata__"]
print(md["member.0.step"] == md["member.1.step"] == md["ensemble_step"])' "$ck")
check_eq diverged_members_in_step True "$steps"
# rolled back under WASH, the file says what a run stopped at that step says: the values the
# last step exchanged too (they were 0)
md_key() { python3 -c 'import json, struct, sys
b = open(sys.argv[1], "rb").read(); print(json.loads(b[8:8 + struct.unpack("<Q", b[:8])[0]])["__metadata__"][sys.argv[2]])' "$1" "$2"; }
out=$(run --json -c "$prep; optim sgd lr=10 clip=0 warmup=0 momentum=0.99; ensemble new 2 seeds=1,2; ensemble wash p=0.1; train steps=40 batch=2; model save $TMP/wdiv.st" 2>/dev/null)
back=$(printf '%s\n' "$out" | grep '"command":"train"' | json_field step)
run -q -c "$prep; optim sgd lr=10 clip=0 warmup=0 momentum=0.99; ensemble new 2 seeds=1,2; ensemble wash p=0.1; train steps=$back batch=2; model save $TMP/wstop.st" >/dev/null 2>&1
check_eq diverged_wash_last_exchanged "$(md_key "$TMP/wstop.st" ensemble_last_exchanged)" "$(md_key "$TMP/wdiv.st" ensemble_last_exchanged)"
# an ensemble file whose metadata is damaged says what is wrong with it
python3 -c 'import json, struct, sys
b = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
del h["__metadata__"]["member.1.step"]
j = json.dumps(h).encode(); j += b" " * (-len(j) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(j)) + j + b[8 + n:])' "$ck" "$TMP/ensbad.safetensors"
out=$(run -c "model load $TMP/ensbad.safetensors" 2>&1)
check_contains ensemble_damaged_metadata "$out" "member.1.step '(none)' is not a step number"
# an ensemble grown from a trained model (its members at the model's step + the ensemble's) saves
# a file that loads and goes on
ck="$TMP/ens_late.safetensors"
out=$(run -c "$prep; train steps=2 batch=2; ensemble new 2; train steps=3 batch=2; model save $ck" 2>&1); rc=$?
check_status ensemble_late_saved 0 $rc
out=$(run --json -c "model load $ck; data load val=0.05; show; train steps=1 batch=2" 2>&1); rc=$?
check_status ensemble_late_loads 0 $rc
check_eq ensemble_late_steps "5 6" "$(printf '%s\n' "$out" | grep -E '"command":"(show|train)"' | python3 -c 'import json, sys
print(" ".join(str(json.loads(l)["step"]) for l in sys.stdin))')"
# members grown from a trained model start past its warm-up: said; their run is the ensemble's
out=$(run --json -c "$prep; optim adamw warmup=3; train steps=4 batch=2; ensemble new 2; train steps=1 batch=2; runs" 2>"$TMP/err")
check_contains ensemble_past_warmup "$(cat "$TMP/err")" "the members start at step 4, past adamw's warm-up"
check_eq ensemble_own_run '["adamw", "ensemble-2"]' "$(printf '%s\n' "$out" | grep '"command":"runs"' | python3 -c 'import json, sys
print(json.dumps([json.loads(l)["run"] for l in sys.stdin]))')"

# an ensemble that cannot fit is refused before any member is built, with the total it needs:
# a model sized from this machine's free memory so that 16 members' 7 copies exceed it
avail_kb=$(awk '/MemAvailable/ {print $2}' /proc/meminfo)
out=$(run -c "model new tiny dim=128 vocab=$((avail_kb * 1024 / 300 / 256)) rank=0; ensemble new 16" 2>&1); rc=$?
check_status ensemble_too_big_status 1 $rc
check_contains ensemble_too_big "$out" "an ensemble of 16 needs at least"

# train eval_every= with an ensemble: the validation keys `ensemble eval` gives
out=$(run --json -c "$prep; ensemble new 2 seeds=1,2; train steps=2 batch=2 eval_every=2 eval_batches=1" 2>/dev/null)
check_eq ensemble_train_val_keys True "$(printf '%s\n' "$out" | grep '"command":"train"' | json_eval 'all(k in o["val"][0] for k in ("step", "member_mean", "ensemble_loss", "avg_factors_loss", "avg_product_loss"))')"
# ...and, as a single model's, eval_seconds apart from the training's seconds (help train's keys)
check_eq ensemble_train_eval_seconds True "$(printf '%s\n' "$out" | grep '"command":"train"' | json_eval 'o["eval_seconds"] > 0 and o["seconds"] > 0')"

# seeds= refuses what it would silently change: an overflow, a trailing comma, a seed twice
out=$(run -c "set errexit off; model new tiny dim=32 layers=1; ensemble new 2 seeds=99999999999999999999999,1; ensemble new 2 seeds=1,2,; ensemble new 2 seeds=5,5; ensemble new 2 seeds=9000000000000000001,1" 2>&1)
check_contains seeds_overflow "$out" "seeds=99999999999999999999999,1: 99999999999999999999999 is larger than 9000000000000000000"
check_contains seeds_past_seed_bound "$out" "seeds=9000000000000000001,1: 9000000000000000001 is larger than 9000000000000000000"
check_contains seeds_trailing_comma "$out" "seeds=1,2,: more than 2 seeds"
check_contains seeds_twice "$out" "seed 5 twice"

# an ensemble's log line: the members' mean gradient norm beside their mean loss (it was member 0's)
out=$(run --json -c "$prep; ensemble new 2; log $TMP/ens.jsonl; train steps=2 batch=2" 2>/dev/null)
check_eq ensemble_log_mean_grad_norm True "$(printf '%s\n' "$out" | tail -n 1 | python3 -c '
import json, sys
o = json.loads(sys.stdin.read()); last = [json.loads(l) for l in open(sys.argv[1])][-1]
mean = sum(o["member_grad_norm"]) / len(o["member_grad_norm"])
print(abs(last["grad_norm"] - mean) <= 1e-5 * mean and abs(last["loss"] - o["loss"]) <= 1e-6 * o["loss"])' "$TMP/ens.jsonl")"

# spectrum, norms and align read the session's own model while an ensemble trains: a warning in
# their JSON too (a program read its step-0 numbers as the members')
out=$(run --json -c "$prep; ensemble new 2; train steps=1 batch=2; spectrum blocks.0.attn.wq; norms; align batch=2" 2>/dev/null)
check_eq ensemble_stale_warned "spectrum norms align" "$(printf '%s\n' "$out" | python3 -c '
import json, sys
print(" ".join(dict.fromkeys(o["command"] for o in map(json.loads, sys.stdin) if any("trains beside" in w for w in o.get("warnings", [])))))')"

# an ensemble file without its ensemble_k says so (it read as a single model missing "step")
run -c "$prep; ensemble new 2; model save $TMP/nok.st" >/dev/null 2>&1
python3 - "$TMP/nok.st" <<'PY'
import json, struct, sys
b = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
del h["__metadata__"]["ensemble_k"]
hb = json.dumps(h).encode(); hb += b" " * (-len(hb) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(hb)) + hb + b[8 + n:])
PY
check_contains ensemble_k_missing "$(run -c "model load $TMP/nok.st" 2>&1)" "member.0.* entries but no ensemble_k"

# a dense ensemble's eval has one average row (its factors' and product's averages are one)
out=$(run -c "$prep; model new rank=0; ensemble new 2; train steps=1 batch=2; ensemble eval batches=1 batch=2" 2>&1)
check_contains dense_eval_one_average "$out" "average (weights)"
check_not_contains dense_eval_no_factors_row "$out" "average: factors"

# member 0 of `ensemble new` without seeds= is the model going on: its optimizer state (moments,
# t), step and data position, so its losses are the single model's (it restarted with zero
# moments); from a loaded checkpoint too, and through a save and load of the ensemble
warm="$prep warmup=2; set batch 2; train steps=3"
single=$(run --json -c "$warm; train steps=1; train steps=1" 2>/dev/null | tail -n 1 | json_field loss)
out=$(run --json -c "$warm; model save $TMP/s3.st; ensemble new 2; model save $TMP/s3e.st; train steps=1; train steps=1" 2>/dev/null)
check_eq member0_continues_model "$single" "$(printf '%s\n' "$out" | tail -n 1 | json_eval 'o["member_loss"][0]')"
out=$(run --json -c "model load $TMP/s3.st; data load val=0.05; ensemble new 2; train steps=1; train steps=1" 2>/dev/null)
check_eq member0_continues_loaded "$single" "$(printf '%s\n' "$out" | tail -n 1 | json_eval 'o["member_loss"][0]')"
out=$(run --json -c "model load $TMP/s3e.st; data load val=0.05; train steps=1; train steps=1" 2>/dev/null)
check_eq member0_continues_saved_ensemble "$single" "$(printf '%s\n' "$out" | tail -n 1 | json_eval 'o["member_loss"][0]')"
out=$(run -c "$prep warmup=2; set batch 2; train steps=3; ensemble new 3" 2>&1)
check_contains member0_warmup_note "$out" "past adamw's warm-up: members 1–2 have fresh moments"
out=$(run -c "model load $TMP/s3.st; model save $TMP/s3n.st optim=off; model load $TMP/s3n.st; ensemble new 2" 2>&1)
check_contains member0_no_state_note "$out" "every member has fresh moments (the model had no optimizer state)"

# a coupling replaces the other and says so; p=0 and alpha=0 move nothing: coupling off, said;
# train reports what was exchanged per pull or per shuffle as it happened (every=2: not every
# step); after `ensemble off` eval says the members were coupled before
out=$(run -c "$prep; set batch 2; ensemble new 2 seeds=1,2; ensemble wash p=0.3 every=2; train steps=4; ensemble papa alpha=0.3 every=2; train steps=1; train steps=1; ensemble wash p=0.1; ensemble off; train steps=1; ensemble eval batches=1" 2>&1)
check_contains wash_then_papa_says_wash_off "$out" "note: WASH is off now (one coupling at a time)"
check_contains papa_then_wash_says_papa_off "$out" "note: PAPA is off now (one coupling at a time)"
check_contains wash_per_shuffle "$out" "in 2 shuffles ("
check_contains papa_no_pull "$out" "papa: no pull in this step (every 2 steps)"
check_contains papa_per_pull "$out" "in 1 pull ("
check_not_contains papa_not_per_step "$out" "per step)"
check_contains eval_independent_now "$out" "independent now; "
check_contains eval_exchanged_earlier "$out" "values exchanged earlier"
out=$(run --json -c "$prep; ensemble new 2 seeds=1,2; ensemble wash p=0; ensemble papa alpha=0.2; ensemble papa alpha=0" 2>&1)
check_eq wash_p0_is_off '"independent"' "$(printf '%s\n' "$out" | grep '"command":"ensemble wash"' | json_field method)"
check_eq papa_alpha0_is_off '"independent"' "$(printf '%s\n' "$out" | grep '"command":"ensemble papa"' | tail -n 1 | json_eval 'json.dumps(o["method"])')"
check_eq wash_p0_json_p 0 "$(printf '%s\n' "$out" | grep '"command":"ensemble wash"' | json_field p)"
check_eq papa_alpha0_json_alpha 0 "$(printf '%s\n' "$out" | grep '"command":"ensemble papa"' | tail -n 1 | json_field alpha)"
check_contains wash_p0_says_off "$out" "WASH p=0 moves nothing: coupling off"
check_contains papa_alpha0_says_off "$out" "PAPA alpha=0 moves nothing: coupling off"

# ensemble new's JSON gives the data seeds too; member 0 taken from the current model is labeled
# as that model, not with a seed that did not make it (after `ensemble average`: the old member 0's)
out=$(run --json -c "$prep; ensemble new 3 seeds=4,5,6" 2>/dev/null)
check_eq new_data_seeds "[4, 5, 6]" "$(printf '%s\n' "$out" | tail -n 1 | json_field data_seeds)"
out=$(run --json -c "$prep; set batch 2; set seed 40; ensemble new 2 seeds=7,8; train steps=1; ensemble average; ensemble new 2" 2>"$TMP/err")
check_eq new_after_average_seeds "[None, 8] [None, 41]" "$(printf '%s\n' "$out" | tail -n 1 | json_eval 'str(o["seeds"]) + " " + str(o["data_seeds"])')"
label=$(grep 'seeds (init, data)' "$TMP/err" | tail -n 1)
check_contains new_after_average_label "$label" "0:(the current model, its data stream at step 1)"
check_not_contains new_after_average_no_seed7 "$label" "0:(7,"
out=$(run -c "$prep; ensemble new 2; show" 2>&1)
check_contains show_trainer_line "$out" "trainer    2, one per member of the ensemble, step 0"
check_contains new_model_label "$out" "0:(the current model, "

finish
