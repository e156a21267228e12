# train.sh — the whole path through the engine: tok train, encode/decode round trip,
# data load, model new, train, step, eval, with --json results.
. tests/shell/testlib

# tok train on the default corpus (small vocab: quick); encode and decode round-trip
out=$("$LRSH" --json -c 'tok train vocab=512; tok encode "Hello, world"' 2>"$TMP/err"); rc=$?
check_status tok_train_status 0 $rc
check_eq tok_train_json "valid 2" "$(printf '%s\n' "$out" | json_lines)"
model=$(printf '%s\n' "$out" | json_field path | tr -d '"')
check_eq tok_model_file yes "$([ -f "$model" ] && echo yes || echo no)"
ids=$(printf '%s\n' "$out" | json_field ids | tr -d '[],')
n=$(printf '%s\n' "$out" | json_field n)
check_eq tok_encode_n "$n" "$(echo $ids | wc -w | tr -d ' ')"
out=$("$LRSH" --json -c "tok load $model; tok decode $ids" 2>/dev/null)
check_eq tok_roundtrip '"Hello, world"' "$(printf '%s\n' "$out" | json_field text)"
out=$("$LRSH" -c "tok load $model; tok decode $(echo $ids | tr ' ' ',')" 2>&1)
check_contains tok_decode_commas "$out" "Hello, world"
out=$("$LRSH" -c "tok load $model; tok decode 1 99999" 2>&1)
check_contains tok_decode_range "$out" "outside the vocabulary"
# eval_every: the report's tok/s and time are training's, the evaluations' time apart
out=$("$LRSH" --json -c "tok load $model; data load; model new tiny dim=32 seq=16; train steps=4 batch=2 eval_every=2 eval_batches=3" 2>/dev/null)
check_eq eval_time_apart True "$(printf '%s\n' "$out" | grep '"command":"train"' | json_eval 'o["eval_seconds"] > 0 and o["seconds"] > 0 and abs(o["tok_per_s"] * o["seconds"] - 4 * 2 * 16) < 1')"
out=$("$LRSH" -c "tok load $model; data load; model new tiny dim=32 seq=16; train steps=4 batch=2 eval_every=2 eval_batches=3" 2>&1)
check_contains eval_time_reported "$out" "for 4 steps (+ "
check_contains eval_time_count "$out" "for 2 evaluations)"
# train's evaluation and eval's, at one step and by default: one number (10 and 20 batches were two;
# eval_every took the train command's batch=2, eval `set batch`)
out=$("$LRSH" --json -c "tok load $model; data load; model new tiny dim=32 seq=16; train steps=2 batch=2 eval_every=2; eval" 2>/dev/null)
check_eq eval_every_equals_eval 1 "$(printf '%s\n' "$out" | python3 -c 'import json, sys
r = [json.loads(l) for l in sys.stdin]
print(len({[x for x in r if x["command"] == "train"][0]["val"][0]["val_loss"], [x for x in r if x["command"] == "eval"][0]["val_loss"]}))')"
# a batch shape the model cannot take is refused before the trainer is built (no "trainer built")
# a corpus too short to train on is said at data load, not first at train ("1 tokens" and no word)
printf 'ab\n' > "$TMP/two.txt"
out=$("$LRSH" -c "tok load $model; data load $TMP/two.txt" 2>&1)
check_contains data_load_too_short "$out" "warning: the training split has 1 token and the validation split 1: training and eval need a window of seq+1 = 2"
printf 'hello world, the cat sat on the mat\n' > "$TMP/short.txt"   # longer than 2 tokens, shorter than 17
out=$("$LRSH" -c "tok load $model; model new tiny dim=32 seq=16; data load $TMP/short.txt val=0.5" 2>&1)
check_contains data_load_shorter_than_window "$out" "need a window of seq+1 = 17"
out=$("$LRSH" -c "tok load $model; data load $TMP/two.txt val=0" 2>&1)
check_not_contains data_load_val0_no_warning "$out" "warning"
out=$("$LRSH" -c "tok load $model; data load; model new tiny dim=32 seq=16; train steps=2 batch=2 seq=64" 2>&1)
check_contains train_seq_refused "$out" "seq=64 is longer than the model's context (16)"
check_not_contains train_seq_refused_no_trainer "$out" "trainer built"
# a run above the unigram plateau whose loss still falls is slow, not diverged
out=$("$LRSH" --json -c "tok load $model; data load; model new tiny dim=32 seq=16; optim adamw lr=3e-4 warmup=0; train steps=120 batch=2; eval batches=4; runs" 2>/dev/null | tail -n 1)
check_eq runs_slow_not_plateau "True False False" "$(printf '%s\n' "$out" | json_eval '" ".join(str(o[k]) for k in ("slow", "plateau", "diverged"))')"
# eval_every with a validation split too short for a window: refused before any step
printf 'hello there general kenobi.\n' >"$TMP/tiny.txt"
out=$("$LRSH" -c "tok load $model; data load $TMP/tiny.txt; model new tiny seq=4 dim=64 heads=2 ffn=64;
train steps=5 eval_every=2" 2>&1); rc=$?
check_status eval_every_short_val_status 1 $rc
check_contains eval_every_short_val "$out" "validation split has 1 token; a window of seq+1 = 5 needs more"
check_contains eval_every_nothing_trained "$out" "(eval_every: nothing was trained)"
# an ensemble too: refused before its first step (it took one, then failed: a fuzzer's find)
out=$("$LRSH" --json -c "tok load $model; data load $TMP/tiny.txt; model new tiny seq=4 dim=64 heads=2 ffn=64;
ensemble new 2; set errexit off; train steps=5 eval_every=2; show" 2>&1)
check_contains ensemble_eval_every_nothing_trained "$out" "(eval_every: nothing was trained)"
check_eq ensemble_eval_every_step0 0 "$(printf '%s\n' "$out" | grep '"command":"show"' | json_eval 'o["ensemble"]["step"]')"
# eval_every past steps still evaluates after the last step: refused first too
out=$("$LRSH" -c "tok load $model; data load $TMP/tiny.txt; model new tiny seq=4 dim=64 heads=2 ffn=64;
train steps=2 eval_every=5" 2>&1)
check_contains eval_every_past_steps_nothing_trained "$out" "(eval_every: nothing was trained)"

# a token cache rewritten in place by another program while loaded: refused by the next command
# that reads the data (a truncated one crashed the session with SIGBUS), the model kept
cp README.md "$TMP/own.txt"
own_cache=$("$LRSH" --json -c "tok load $model; data load $TMP/own.txt" 2>/dev/null | tail -n 1 | json_eval 'o["cache"]')
out=$( (echo "tok load $model; data load $TMP/own.txt; model new tiny dim=32 seq=16; train steps=1 batch=2"; sleep 1;
        truncate -s 64 "$own_cache"; echo "set errexit off; train steps=1 batch=2; show") | "$LRSH" 2>&1); rc=$?
check_contains cache_rewritten_refused "$out" "$own_cache was rewritten since \`data load\`"
check_eq cache_rewritten_model_kept yes "$(printf '%s\n' "$out" | grep -q "^trainer .*step 1" && echo yes || echo no)"
# ... and while a train with eval_every= runs (mostly in its evaluations): the error says how
# many steps were taken and kept
cp README.md "$TMP/own2.txt"
own_cache=$("$LRSH" --json -c "tok load $model; data load $TMP/own2.txt" 2>/dev/null | tail -n 1 | json_eval 'o["cache"]')
echo "tok load $model; data load $TMP/own2.txt; model new tiny dim=32 seq=16; train steps=100000 batch=2 eval_every=1 eval_batches=50" |
    "$LRSH" >"$TMP/own2.log" 2>&1 &
pid=$!
i=0   # cut once training is under way (its evaluations are most of its time)
while ! grep -q 'val loss' "$TMP/own2.log" 2>/dev/null && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
truncate -s 64 "$own_cache"
wait $pid
check_contains cache_rewritten_in_train_eval "$(cat "$TMP/own2.log")" "of 100000 steps)"
# tok train short of memory (an exception in one of SentencePiece's threads): one error line
# saying so, not "terminate called …" and a signal
if lrsh_has_asan; then
    skip tok_train_out_of_memory "ulimit -v under AddressSanitizer"
else
    limit=$(($(lrsh_base_vm) + 100000))   # 100 MB past what lrsh holds at its start
    out=$( (ulimit -v $limit; timeout 120 "$LRSH" --threads 1 -c "tok train vocab=8000 out=$TMP/oom.model") 2>&1); rc=$?
    if [ $rc -eq 0 ]; then skip tok_train_out_of_memory "it fit in 100 MB more than the start's address space here"
    else
        check_contains tok_train_out_of_memory "$out" "tokenizer training failed: out of memory"
        check_not_contains tok_train_out_of_memory_no_terminate "$out" "terminate called"
    fi
fi
# a model larger than an address-space limit (ulimit -v): refused before allocating, and the
# memory it says is available is what the limit leaves, not the machine's
if lrsh_has_asan; then
    skip model_too_large_for_limit "ulimit -v under AddressSanitizer"
else
    limit=$(($(lrsh_base_vm) + 300000))   # 300 MB past what lrsh holds at its start; the model needs 881 MB
    out=$( (ulimit -v $limit; timeout 120 "$LRSH" --threads 1 -c "model new base vocab=32000 layers=24") 2>&1); rc=$?
    check_status model_too_large_for_limit_status 1 $rc
    avail=$(printf '%s\n' "$out" | sed -n 's/.*but only \([0-9.]*\) MB are available.*/\1/p')
    # at most the 300 000 kB allowed (307.2 MB): the machine's memory is gigabytes
    check_eq model_too_large_for_limit "within the limit" "$(python3 -c 'import sys; print("within the limit" if sys.argv[1] and float(sys.argv[1]) <= 307.2 else "got: " + sys.argv[2])' "$avail" "$out")"
fi
# bench train of a batch too big: refused by its activations before its tokens are drawn
# (under the limit, the tokens' unchecked allocation was a segfault)
if lrsh_has_asan; then
    skip bench_batch_too_large_for_limit "ulimit -v under AddressSanitizer"
else
    limit=$(($(lrsh_base_vm) + 1000000))   # 1 GB more: the model and the sgemm peak's matrices fit, 4 GB of tokens not
    out=$( (ulimit -v $limit; timeout 120 "$LRSH" --threads 1 -q -c "bench train shape=tiny batch=1048576 model=dense steps=1 rounds=1") 2>&1); rc=$?
    check_status bench_batch_too_large_status 1 $rc
    check_contains bench_batch_too_large "$out" "out of memory: activations for batch=1048576"
fi
# tok load and tok train of a pipe: one error line, no wait for a writer; of a folder: no announcement first
mkfifo "$TMP/fifo.txt"
out=$(timeout 20 "$LRSH" -c "tok load $TMP/fifo.txt" 2>&1); rc=$?
check_status tok_load_fifo_status 1 $rc
check_contains tok_load_fifo "$out" "fifo.txt is not a file"
out=$(timeout 20 "$LRSH" -c "tok train $TMP/fifo.txt" 2>&1); rc=$?
check_status tok_train_fifo_status 1 $rc
check_contains tok_train_fifo "$out" "fifo.txt is not a regular file"
out=$("$LRSH" -c "tok train $TMP" 2>&1)
check_contains tok_train_folder "$out" "is a folder; tok train reads one text file"
check_not_contains tok_train_folder_no_announcement "$out" "training a bpe"
# a folder's hidden files and folders are not corpus (.git, editors' backups)
mkdir -p "$TMP/corp/.git" "$TMP/corp2"
cp README.md "$TMP/corp/a.txt"; cp README.md "$TMP/corp2/a.txt"
echo "secret git text" > "$TMP/corp/.git/x.txt"; echo "hidden" > "$TMP/corp/.h.txt"
n1=$("$LRSH" --json -c "tok load $model; data load $TMP/corp" 2>/dev/null | tail -n 1 | json_field tokens)
n2=$("$LRSH" --json -c "tok load $model; data load $TMP/corp2" 2>/dev/null | tail -n 1 | json_field tokens)
check_eq folder_hidden_skipped "$n2" "$n1"
# a build killed outright left its temporary file: the next build of that cache removes it
cp README.md "$TMP/killed.txt"
killed_cache=$("$LRSH" --json -c "tok load $model; data load $TMP/killed.txt" 2>/dev/null | tail -n 1 | json_eval 'o["cache"]')
rm -f "$killed_cache"
dead=$(sh -c 'echo $$')   # a process that has ended
echo partial > "$killed_cache.tmp.$dead"
touch -d '2 minutes ago' "$killed_cache.tmp.$dead"   # a fresh one may be a live writer's elsewhere
"$LRSH" -c "tok load $model; data load $TMP/killed.txt" >/dev/null 2>&1
check_eq stale_build_removed no "$([ -e "$killed_cache.tmp.$dead" ] && echo yes || echo no)"
check_eq stale_build_rebuilt yes "$([ -s "$killed_cache" ] && echo yes || echo no)"
# ... and so does a load that reuses the cache (a build killed, then redone at once, sweeps none:
# its part would stay beside the corpus for good)
echo partial > "$killed_cache.tmp.$dead.0badf00d"
touch -d '2 minutes ago' "$killed_cache.tmp.$dead.0badf00d"
"$LRSH" -c "tok load $model; data load $TMP/killed.txt" >/dev/null 2>&1
check_eq stale_build_removed_at_reuse no "$([ -e "$killed_cache.tmp.$dead.0badf00d" ] && echo yes || echo no)"
# a corpus with a long name (its cache's NAME.tmp.PID would pass the file system's 255 bytes) loads
long="$TMP/$(printf 'c%.0s' $(seq 1 231)).txt"
cp README.md "$long"
out=$("$LRSH" --json -c "tok load $model; data load $long" 2>&1); rc=$?
check_status long_name_cache 0 $rc
check_eq long_name_cache_tokens True "$(printf '%s\n' "$out" | tail -n 1 | json_eval 'o["tokens"] > 1000 and len(o["cache"].split("/")[-1]) > 240')"
# one whose CORPUS.TAG.tok would pass 255 bytes: its cache goes to the cache folder, its name cut
longer="$TMP/$(printf 'd%.0s' $(seq 1 246)).txt"
cp README.md "$longer"
out=$("$LRSH" --json -c "tok load $model; data load $longer" 2>&1); rc=$?
check_status longer_name_cache 0 $rc
check_eq longer_name_cache_tokens True "$(printf '%s\n' "$out" | tail -n 1 | json_eval 'o["tokens"] > 1000 and len(o["cache"].split("/")[-1]) <= 255 and "/lrsh/" in o["cache"]')"
# an eval that reads the validation split many times over says so; one that does not, nothing
out=$("$LRSH" -c "tok load $model; data load $TMP/corp; model new tiny dim=32 seq=16; eval batches=200 batch=8; eval batches=1 batch=1" 2>&1)
check_contains eval_overlap_note "$out" "these 200 batches read 25600: each about"
check_eq eval_overlap_note_once 1 "$(printf '%s\n' "$out" | grep -c 'times over')"
out=$("$LRSH" --json -c "tok load $model; data load $TMP/corp; model new tiny dim=32 seq=16; eval batches=200 batch=8" 2>/dev/null | tail -n 1)
check_eq eval_json_val_tokens True "$(printf '%s\n' "$out" | json_eval 'o["tokens"] == 25600 and 0 < o["val_tokens"] < 25600 / 2')"
# one cache per corpus and tokenizer: another tokenizer's load leaves this one's cache in place
"$LRSH" -c "tok train $TMP/killed.txt vocab=400 out=$TMP/killed.model; data load $TMP/killed.txt" >/dev/null 2>&1
check_eq cache_per_tokenizer "2 reused" "$(ls "$TMP"/killed.txt.*.tok | wc -l) $("$LRSH" --json -c "tok load $model; data load $TMP/killed.txt" 2>/dev/null | tail -n 1 | json_eval '"reused" if o["reused"] else "built"')"
# in a pipe, a short eval prints no progress lines (ten of them for a second's work were noise)
out=$("$LRSH" -c "tok load $model; data load $TMP/killed.txt; model new tiny dim=32 seq=16; eval batches=20" 2>&1)
check_contains eval_short_result "$out" "val loss"
check_not_contains eval_short_no_progress "$out" "batches)  ETA"
# data load: JSON keys; the second load reuses the cache
out=$("$LRSH" --json -c "tok load $model; data load val=0.1; data load val=0.1" 2>/dev/null); rc=$?
check_status data_status 0 $rc
check_eq data_reused true "$(printf '%s\n' "$out" | json_field reused)"
check_eq data_source_bytes "$(wc -c < "$(printf '%s\n' "$out" | head -n 2 | tail -n 1 | json_field source | tr -d '"')" | tr -d ' ')" "$(printf '%s\n' "$out" | tail -n 1 | json_field source_bytes)"
for key in tokens train val cache; do
    check_not_contains "data_key_$key" "$(printf '%s\n' "$out" | json_field $key)" missing
done

prep="tok load $model; data load; model new tiny"
# evaluations are measured alike whatever the seed and the train command's one-off batches:
# `eval` under two seeds, and eval_every= of `train batch=2 seq=32`, all equal `eval` (eval_every
# took the train command's batch=/seq=, `eval` the session seed's batches)
out=$("$LRSH" --json -c "$prep seq=64; train steps=2 batch=2 seq=32 eval_every=2 eval_batches=3; eval batches=3; set seed 99; eval batches=3" 2>/dev/null)
vals=$(printf '%s\n' "$out" | python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin]
every = [r["val"][-1]["val_loss"] for r in rows if r.get("command") == "train"]
evals = [r["val_loss"] for r in rows if r.get("command") == "eval"]
print(len(set(every + evals)), len(every + evals))')
check_eq eval_same_batches_everywhere "1 3" "$vals"
# ... and without eval_every= the settings are not asked for: a one-off seq= trains though
# `set seq` is longer than this model's context (refused there since eval_every took them)
out=$("$LRSH" -c "set seq 128; $prep seq=64; train steps=1 seq=32 batch=2" 2>&1); rc=$?
check_status one_off_seq_without_eval_every 0 $rc
# a rank past out·in/(out + in) stores more than dense: a note names it (rank_ratio was capped
# at min(out, in) without a word, making w2 larger than dense); the presets' own ranks: none
out=$("$LRSH" -c "model new tiny rank_ratio=0.5" 2>&1)
check_contains rank_past_dense_note "$out" "note: 1 of a block's factorized matrices stores more parameters than dense (blocks.0.mlp.w2: rank 128 of 128×384 stores 65536, dense 49152; rank_ratio·in was capped at min(out, in) for 1 (blocks.0.mlp.w2: asked 192, got 128))"
# ... a capped matrix that is not the first past dense is still said (only the first was looked at)
check_contains rank_capped_not_first "$("$LRSH" -c "model new tiny rank=-1 rank_ratio=0.6" 2>&1)" "(blocks.0.attn.wq: rank 76 of 128×128 stores 19456, dense 16384; rank_ratio·in was capped at min(out, in) for 1 (blocks.0.mlp.w2: asked 230, got 128))"
check_not_contains rank_preset_no_note "$("$LRSH" -c "model new tiny" 2>&1)" "more parameters than dense"
# model new tiny, train 20 steps, step, eval — all as JSON
out=$("$LRSH" --json --seed 3 -c "$prep; model info; train steps=20; step; eval batches=4" 2>"$TMP/err"); rc=$?
check_status train_status 0 $rc
check_eq train_json "valid 7" "$(printf '%s\n' "$out" | json_lines)"
vocab=$(printf '%s\n' "$out" | grep '"model new"' | json_eval 'o["config"]["vocab"]')
check_eq model_vocab_from_tokenizer 512 "$vocab"
train=$(printf '%s\n' "$out" | grep '"command":"train"')
check_eq train_steps 20 "$(printf '%s\n' "$train" | json_field steps)"
check_eq train_step 20 "$(printf '%s\n' "$train" | json_field step)"
check_not_contains train_loss "$(printf '%s\n' "$train" | json_field loss)" missing
check_not_contains train_tok_per_s "$(printf '%s\n' "$train" | json_field tok_per_s)" missing
check_eq step_is_21 21 "$(printf '%s\n' "$out" | grep '"command":"step"' | json_field step)"
evalj=$(printf '%s\n' "$out" | grep '"command":"eval"')
check_not_contains eval_val_loss "$(printf '%s\n' "$evalj" | json_field val_loss)" missing
check_not_contains eval_ppl "$(printf '%s\n' "$evalj" | json_field ppl)" missing
sane='0 < o["val_loss"] < math.log(512) + 1 and abs(math.exp(o["val_loss"]) - o["ppl"]) < 1e-3 * o["ppl"]'
loss_ok=$(printf '%s\n' "$evalj" | json_eval "$sane")
check_eq eval_sane True "$loss_ok"

# human output: plain progress lines when not a terminal
out=$("$LRSH" -c "$prep; train steps=4" 2>&1)
check_contains train_progress_plain "$out" "step 4 (4/4)"
check_not_contains train_progress_no_cr "$out" "$(printf '\r')"

# new options for the live trainer's optimizer keep its state; another optimizer resets it; both keep the step
out=$("$LRSH" -c "$prep; train steps=2; optim lr=1e-4; show" 2>&1)
check_contains optim_options_keep_state "$out" "new adamw options from step 2 on; its state (AdamW moments"
check_not_contains optim_options_no_reset "$out" "optimizer state reset"
check_contains optim_keeps_step "$out" "step 2"
out=$("$LRSH" -c "$prep; train steps=2; optim sgd; show" 2>&1)
check_contains optim_reset "$out" "optimizer state reset at step 2 (adamw → sgd)"

# too little text for one window: one error line, no "stopped after 0 steps" before it
printf 'hello world\n' >"$TMP/tiny.txt"
out=$("$LRSH" -c "tok load $model; data load $TMP/tiny.txt; model new tiny seq=64; train steps=3" 2>&1); rc=$?
check_status tiny_data_status 1 $rc
check_contains tiny_data_error "$out" "a window of seq+1 = 65 needs more"
check_not_contains tiny_data_one_line "$out" "training stopped after"
# a model whose vocabulary is smaller than the data's cannot train on it
out=$("$LRSH" -c "tok load $model; data load; model new tiny vocab=100; train steps=1" 2>&1); rc=$?
check_status vocab_mismatch_status nonzero $rc
check_contains vocab_mismatch "$out" "larger than the model's"

# tok train out= writes a file only: a pipe or device is refused (it replaced /dev/null, run as
# root); a link to a tokenizer stays a link, its file rewritten
mkfifo "$TMP/tok-pipe"
out=$(timeout 60 "$LRSH" -c "tok train vocab=300 out=$TMP/tok-pipe" 2>&1); rc=$?
check_status tok_out_pipe_status 1 $rc
check_contains tok_out_pipe_refused "$out" "it exists and is not a regular file (a device, pipe or socket)"
check_eq tok_out_pipe_kept yes "$([ -p "$TMP/tok-pipe" ] && echo yes || echo no)"
"$LRSH" -q -c "tok train vocab=400 out=$TMP/real.model" >/dev/null 2>&1
ln -s "$TMP/real.model" "$TMP/link.model"
"$LRSH" -q -c "tok train vocab=420 out=$TMP/link.model" >/dev/null 2>&1
check_eq tok_out_link_kept yes "$([ -L "$TMP/link.model" ] && echo yes || echo no)"
check_contains tok_out_link_target_rewritten "$("$LRSH" -c "tok load $TMP/real.model" 2>&1)" "(vocab 420)"

# two corpora of one name in two folders: two tokenizers in the cache, not one written over
mkdir -p "$TMP/c1" "$TMP/c2"
head -c 200000 "$XDG_CACHE_HOME/lrsh/fortunes.txt" > "$TMP/c1/notes.txt"
tail -c 200000 "$XDG_CACHE_HOME/lrsh/fortunes.txt" > "$TMP/c2/notes.txt"
paths=$("$LRSH" --json -c "tok train $TMP/c1/notes.txt vocab=400; tok train $TMP/c2/notes.txt vocab=400" 2>/dev/null | python3 -c 'import json, sys; print(len({json.loads(l)["path"] for l in sys.stdin}))')
check_eq tok_cache_names_apart 2 "$paths"
# ... also in folders beneath the cache folder, or named as it is and more (…/lrsh2/): only a
# file right in it (the default corpus) goes without the path's hash
mkdir -p "$XDG_CACHE_HOME/lrsh2" "$XDG_CACHE_HOME/lrsh/sub"
cp "$TMP/c1/notes.txt" "$XDG_CACHE_HOME/lrsh2/notes.txt"; cp "$TMP/c2/notes.txt" "$XDG_CACHE_HOME/lrsh/sub/notes.txt"
paths=$("$LRSH" --json -c "tok train $XDG_CACHE_HOME/lrsh2/notes.txt vocab=400; tok train $XDG_CACHE_HOME/lrsh/sub/notes.txt vocab=400" 2>/dev/null | python3 -c 'import json, sys; print(len({json.loads(l)["path"] for l in sys.stdin}))')
check_eq tok_cache_names_apart_near_cache 2 "$paths"
rm -r "$XDG_CACHE_HOME/lrsh2" "$XDG_CACHE_HOME/lrsh/sub"

# with neither $XDG_CACHE_HOME nor $HOME there is no cache folder: one line (it was /tmp/lrsh,
# shared with every user); out= needs none
out=$(env -u HOME -u XDG_CACHE_HOME "$LRSH" -c "tok train $TMP/c1/notes.txt vocab=400" 2>&1); rc=$?
check_status no_cache_folder_status 1 $rc
check_contains no_cache_folder "$out" "no cache folder: neither \$XDG_CACHE_HOME nor \$HOME is set"
out=$(env -u HOME -u XDG_CACHE_HOME "$LRSH" -c "tok train $TMP/c1/notes.txt vocab=400 out=$TMP/nocache.model" 2>&1); rc=$?
check_status no_cache_folder_out_given 0 $rc

# a corpus too small for the smallest vocabulary: no advice to go below it ("use a smaller vocab"
# of a corpus supporting 260 pieces, where 261 is the least)
for i in $(seq 1 50); do printf '\0\0\0\n'; done > "$TMP/nul.txt"
out=$("$LRSH" -c "tok train $TMP/nul.txt vocab=300 out=$TMP/nul.model" 2>&1); rc=$?
check_status corpus_below_min_vocab_status 1 $rc
check_contains corpus_below_min_vocab "$out" "corpus too small for any tokenizer (it supports at most 260 pieces, and the smallest vocab is 261)"

# another tokenizer after training: a note that the model reads its ids as other text
out=$("$LRSH" -c "$prep; train steps=1; tok train vocab=400 out=$TMP/other.model" 2>&1)
check_contains tok_after_training "$out" "note: the model was trained with another tokenizer: it reads these ids as other pieces of text"
# ... and training or evaluating it on data in that tokenizer says so each time
out=$("$LRSH" -c "$prep; train steps=1; tok train vocab=400 out=$TMP/other2.model; data load; eval batches=1" 2>&1)
check_contains tok_after_training_eval "$out" "note: this data is in the session's tokenizer, not the one the model learned"
# one larger than the data's trains, with a note when the data arrives (`model new` before `tok`)
out=$("$LRSH" -c "model new tiny vocab=1000; tok load $model; data load" 2>&1); rc=$?
check_status vocab_larger_status 0 $rc
check_contains vocab_larger_note "$out" "note: the model's vocabulary (1000) is larger than the data's"

# Ctrl-C (SIGINT) stops train at a step boundary; the rest of -c is skipped; status 130; the
# training not saved is said to be gone (as at an error)
interrupt_after "$TMP/int.log" "trainer built" 0.5 -c "$prep; train steps=1; train steps=100000; show"
check_status interrupt_status 130 $rc
check_contains interrupt_message "$out" "interrupted at step"
check_not_contains interrupt_skips_rest "$out" "settings"
check_contains interrupt_unsaved_said "$out" "is gone with the session: the script stopped at the interrupt"

# ... and within a step of many micro-batches (accum=100000 ran on for hours): no update taken
interrupt_after "$TMP/accum-int.log" "trainer built" 1 --threads 1 -c "$prep; step accum=100000; show"
check_status accum_interrupt_status 130 $rc
check_contains accum_interrupt_says "$out" "interrupted after"
check_eq accum_interrupt_soon yes "$([ "$stop_seconds" -le 3 ] && echo yes || echo no)"
interrupt_after "$TMP/accum-int2.log" "trainer built" 1 --threads 1 -c "$prep; train steps=2 accum=100000; show"
check_status accum_train_interrupt_status 130 $rc
check_eq accum_train_interrupt_soon yes "$([ "$stop_seconds" -le 3 ] && echo yes || echo no)"
# Ctrl-C stops bench train between steps, not only between its rounds (a round of 2000 small steps)
interrupt_after "$TMP/bench-int.log" "sgemm peak" 3 --threads 1 -c "bench train shape=small steps=2000 rounds=1; show"
check_status bench_interrupt_status 130 $rc
check_contains bench_interrupt_says "$out" "bench train interrupted"
check_eq bench_interrupt_prompt True "$(python3 -c "print($stop_seconds < 60)")"

# bench train: one JSON object per run with the documented keys
out=$("$LRSH" --json -c 'bench train shape=tiny model=factorized steps=1' 2>/dev/null); rc=$?
check_status bench_status 0 $rc
check_eq bench_json "valid 1" "$(printf '%s\n' "$out" | json_lines)"
for key in shape model tok_per_s gflops peak_gflops mfu kernel peak_rss; do
    check_not_contains "bench_key_$key" "$(printf '%s\n' "$out" | json_field $key)" missing
done

# bench train profile=on: a table after the summary, and in JSON the rows of each phase
out=$("$LRSH" -c 'bench train shape=tiny model=dense steps=1 rounds=1 profile=on' 2>/dev/null); rc=$?
check_status bench_profile_status 0 $rc
check_contains bench_profile_title "$out" "profile: one step of tiny dense (adamw)"
check_contains bench_profile_gemm "$out" "forward+backward  gemm"   # the costliest; the table shows the top 12
check_contains bench_shared_line "$out" "tiny, batch 8 × seq 128, median of 1 round of 1 step; sgemm peak "
table=$(printf '%s\n' "$out" | grep -E '^(tiny, |model |dense |factorized )')
check_eq bench_fits_80 True "$([ "$(printf '%s\n' "$table" | widest)" -le 80 ] && echo True || echo "$table")"

out=$("$LRSH" --json -c 'bench train shape=tiny model=factorized steps=1 rounds=1 profile=on' 2>/dev/null)
check_eq bench_profile_json "valid 2" "$(printf '%s\n' "$out" | json_lines)"
check_eq bench_profile_phases '["forward+backward", "optimizer"]' "$(printf '%s\n' "$out" | python3 -c '
import json, sys
for line in sys.stdin:
    o = json.loads(line)
    if o.get("command") == "bench train profile":
        print(json.dumps(sorted({r["phase"] for r in o["rows"]})))')"
# every row is in the JSON, whatever the timings put in the table's top 12
check_eq bench_profile_kernels "True True" "$(printf '%s\n' "$out" | python3 -c '
import json, sys
for line in sys.stdin:
    o = json.loads(line)
    if o.get("command") == "bench train profile":
        k = {(r["phase"], r["kernel"]) for r in o["rows"]}
        print(("forward+backward", "attention_forward") in k, ("optimizer", "adamw_update") in k)')"

# a replaced model's memory goes back to the system: cycles of `small` then `tiny` leave the
# session's anonymous memory where `tiny` had it (glibc kept the freed heap resident: +74 MiB
# after three cycles); each reading after the commands before `show` are done
if lrsh_has_asan; then
    skip model_replaced_memory_returned "AddressSanitizer keeps freed memory in quarantine"
else
    grew=$(python3 - "$LRSH" "$model" <<'PY'
import subprocess, sys
lrsh, tok = sys.argv[1], sys.argv[2]
p = subprocess.Popen([lrsh, "--threads", "1", "-q"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                     stderr=subprocess.DEVNULL, text=True)
def anon_mib(cmds):
    p.stdin.write(cmds + "; show\n"); p.stdin.flush()
    for line in p.stdout:
        if line.startswith("settings"): break
    return next(int(l.split()[1]) for l in open("/proc/%d/status" % p.pid) if l.startswith("RssAnon")) // 1024
first = anon_mib("tok load %s; data load; set batch 2; model new tiny seq=32" % tok)
for i in range(3): last = anon_mib("model new small seq=64 vocab=512; train steps=1; model new tiny seq=32")
p.stdin.close(); p.wait()
print(last - first)
PY
)
    check_eq model_replaced_memory_returned yes "$([ "${grew:-999}" -lt 15 ] && echo yes || echo "no: +$grew MiB")"
fi

finish
