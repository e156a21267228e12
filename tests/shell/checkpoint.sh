# checkpoint.sh — model save/load (one session and across processes), a corrupted file that
# must leave the session's model in place, model factorize, and generate (streaming, --json,
# seeds, guards, Ctrl-C). Tiny models, vocab 512, few steps.
. tests/shell/testlib

# One thread: these models are tiny, and on a loaded 2-core machine a second OpenMP thread
# makes them tens of times slower, not faster.
lrsh() { "$LRSH" --threads 1 "$@"; }

# one tokenizer and one token cache for the whole script
lrsh -q -c "tok train vocab=512 out=$TMP/tok.model; data load" >"$TMP/prep.log" 2>&1 \
    || { fail prep "$(short "$(cat "$TMP/prep.log")")"; finish; exit 1; }
prep="tok load $TMP/tok.model; data load; set batch 2; model new tiny seq=64"
ck="$TMP/x.safetensors"

# ---- save writes over a checkpoint, never over another file or a read-only one
printf 'my notes\n' > "$TMP/notes.txt"
out=$(lrsh -c "$prep; model save $TMP/notes.txt" 2>&1); rc=$?
check_status save_over_text_status nonzero $rc
check_contains save_over_text_refused "$out" "notes.txt exists and is not a safetensors file: nothing was saved"
check_eq save_over_text_kept "my notes" "$(cat "$TMP/notes.txt")"
lrsh -q -c "$prep; model save $TMP/ro.st" >/dev/null 2>&1 && chmod 444 "$TMP/ro.st"
before=$(cksum < "$TMP/ro.st")
out=$(lrsh -c "$prep; train steps=1; model save $TMP/ro.st" 2>&1); rc=$?
check_status save_read_only_status nonzero $rc
check_contains save_read_only_refused "$out" "ro.st is read-only: nothing was saved"
check_eq save_read_only_kept "$before" "$(cksum < "$TMP/ro.st")"
chmod 644 "$TMP/ro.st"
out=$(lrsh -c "$prep; train steps=1; model save $TMP/ro.st" 2>&1); rc=$?
check_status save_over_checkpoint 0 $rc
: > "$TMP/empty.st"   # an empty file (touch, mktemp) holds nothing: it may be written
out=$(lrsh -c "$prep; model save $TMP/empty.st" 2>&1); rc=$?
check_status save_over_empty_file 0 $rc

# a file without optimizer state saves again to the same bytes (its optim_t is 0, as a resume's)
lrsh -q -c "$prep; train steps=3; model save $TMP/nostate.st optim=off; model load $TMP/nostate.st; model save $TMP/nostate2.st optim=off" >/dev/null 2>&1
check_eq save_without_state_round_trip same "$(cmp -s "$TMP/nostate.st" "$TMP/nostate2.st" && echo same || echo differ)"

# SIGTERM while saving (most of this loop's time is spent writing): the process ends as asked,
# and no temporary file stays beside the checkpoint
mkdir -p "$TMP/term"
saves=$(python3 -c 'print("model new small vocab=512; " + "; ".join(["model save '"$TMP"'/term/a.st"] * 1000))')
"$LRSH" --threads 1 -q -c "$saves" >/dev/null 2>&1 &   # not the function: $! must be lrsh itself
pid=$!
sleep 1.5
kill -TERM $pid
wait $pid; rc=$?
check_eq sigterm_status 143 $rc
check_eq sigterm_no_temporary_file "" "$(ls "$TMP/term" | grep tmp)"
# train save=PATH save_every=N: saved at every N-th step number and at the end, the file a
# checkpoint of the last; a target that cannot be written over is refused before any step
out=$(lrsh --json -c "$prep; train steps=25 save=$TMP/every.st save_every=10; model load $TMP/every.st" 2>/dev/null)
check_eq train_save_every "[10, 20, 25]" "$(printf '%s\n' "$out" | grep '"command":"train"' | json_eval '[x["step"] for x in o["saved"]]')"
check_eq train_save_loads 25 "$(printf '%s\n' "$out" | grep '"command":"model load"' | json_field step)"
out=$(lrsh -c "$prep; set errexit off; train steps=2 save=$TMP/notes.txt; train steps=2 save_every=5" 2>&1)
check_contains train_save_refused_first "$out" "save= refused: $TMP/notes.txt exists and is not a safetensors file: nothing was saved"
check_contains train_save_refused_untrained "$out" "; nothing was trained"
check_not_contains train_save_refused_no_step "$out" "step 1"
check_contains train_save_every_needs_save "$out" "save_every=5 needs save=PATH"
# SIGTERM during `model save`: the file is finished and in place, then lrsh ends by the signal
# (the temporary file was removed and lrsh ended silently, the trained model with it); one at
# another time says it ended
out=$(python3 - "$LRSH" "$TMP" "$prep" <<'PY'
import glob, os, signal, subprocess, sys, time
lrsh, tmp, prep = sys.argv[1:4]
target = tmp + "/termsave.st"
p = subprocess.Popen([lrsh, "--threads", "1", "-c", "model new dim=768 layers=12 heads=12 seq=64 vocab=512; model save %s; show" % target],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
deadline = time.time() + 60
while not glob.glob(target + ".tmp.*") and time.time() < deadline and p.poll() is None: time.sleep(0.001)
p.send_signal(signal.SIGTERM)
out, err = p.communicate()
print(p.returncode, os.path.exists(target), "the save in progress finishes first" in err.decode(), b"settings" in out,
      glob.glob(target + ".tmp.*") == [])
q = subprocess.Popen([lrsh, "--threads", "1", "-c", prep + "; train steps=100000"], stdout=subprocess.DEVNULL,
                     stderr=subprocess.PIPE)
time.sleep(2); q.send_signal(signal.SIGTERM)
print(q.wait(), "lrsh: ended by SIGTERM; what was not saved is gone" in q.stderr.read().decode())
PY
)
check_eq term_during_model_save "-15 True True False True
-15 True" "$out"
"$LRSH" -q -c "model load $TMP/termsave.st" >/dev/null 2>&1
check_status term_during_model_save_loads 0 $?
# a file another program put at save= since the last save (a second job with the same save=, a
# teammate's checkpoint) is not renamed over: the training stops there, saying so (both jobs
# said "saved" and one model survived)
lrsh -q -c "$prep; model save $TMP/other.st" >/dev/null 2>&1
out=$(python3 - "$LRSH" "$TMP" "$prep" <<'PY'
import os, subprocess, sys, time
lrsh, tmp, prep = sys.argv[1:4]
target = tmp + "/shared.st"
p = subprocess.Popen([lrsh, "--threads", "1", "-c", prep + "; train steps=3 batch=2000 save=%s save_every=1" % target],
                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
deadline = time.time() + 60
while not os.path.exists(target) and time.time() < deadline and p.poll() is None: time.sleep(0.005)
os.system("cp %s/other.st %s/other-copy.st && mv %s/other-copy.st %s" % (tmp, tmp, tmp, target))
err = p.stderr.read().decode()
print(p.wait(), "was written by another program (or user) since this training last saved it" in err)
PY
)
check_eq train_save_other_writer "1 True" "$out"
# … and a SIGTERM whose save then fails that way says the work is gone (it said "ended, after
# what it waited for", as if saved)
out=$(python3 - "$LRSH" "$TMP" "$prep" <<'PY'
import os, shutil, signal, subprocess, sys, time
lrsh, tmp, prep = sys.argv[1:4]
p = subprocess.Popen([lrsh, "--threads", "1", "-c", prep + "; train steps=100000 save=%s/late.st" % tmp],
                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
time.sleep(2)
shutil.copy(tmp + "/other.st", tmp + "/late.st")
p.send_signal(signal.SIGTERM)
err = p.stderr.read().decode()
print(p.wait(), "lrsh: ended by SIGTERM; the model's unsaved work (at step" in err)
PY
)
check_eq term_failed_save_says_gone "-15 True" "$out"
# a symbolic link another user put in a shared folder (sticky, writable by all: /tmp) is not
# followed by a save, a log or a tokenizer's out= (the kernel's protected_symlinks, which a machine
# may have off: a student's link in the course folder had a classmate's save replace her thesis)
mkdir -p "$TMP/course" && chmod 1777 "$TMP/course"
lrsh -q -c "model new tiny seq=16 vocab=512 seed=9; model save $TMP/thesis.st; model save $TMP/mine.st" >/dev/null 2>&1
thesis=$(cksum < "$TMP/thesis.st")
if ln -s "$TMP/thesis.st" "$TMP/course/ckpt.st" && chown -h 12345 "$TMP/course/ckpt.st" 2>/dev/null &&
   [ "$(stat -c %u "$TMP/course")" != 12345 ] && [ "$(id -u)" != 12345 ]; then
    ln -s "$TMP/thesis.st" "$TMP/course/run.log" && chown -h 12345 "$TMP/course/run.log"
    out=$(lrsh -c "set errexit off; model new tiny seq=16 vocab=512; model save $TMP/course/ckpt.st; log $TMP/course/run.log" 2>&1)
    check_contains planted_link_save "$out" "$TMP/course/ckpt.st: cannot save: a symbolic link on the way to it is user 12345's, in a shared folder: not followed"
    check_contains planted_link_log "$out" "log: $TMP/course/run.log: a symbolic link on the way to it is user 12345's"
    # … nor one standing for a folder on the way (course/sub → the victim's folder), nor by a
    # train save=, which says so before it trains (it trained, then refused to save)
    ln -s "$TMP" "$TMP/course/sub" && chown -h 12345 "$TMP/course/sub"
    out=$(lrsh -c "$prep; set errexit off; model save $TMP/course/sub/thesis.st; train steps=2 save=$TMP/course/ckpt.st" 2>&1)
    check_contains planted_link_in_path "$out" "$TMP/course/sub/thesis.st: cannot save: a symbolic link on the way to it is user 12345's"
    check_contains planted_link_train_save "$out" "save=$TMP/course/ckpt.st: a symbolic link on the way to it is user 12345's, in a shared folder: not followed (it could point at any of your files); nothing was trained"
    check_not_contains planted_link_train_save_no_step "$out" "step 1"
    # … nor one reached through a link of one's own (~/mine → the planted one), as the kernel
    ln -s "$TMP/course/ckpt.st" "$TMP/via.st"
    out=$(lrsh -c "model new tiny seq=16 vocab=512; model save $TMP/via.st" 2>&1)
    check_contains planted_link_via_own "$out" "$TMP/via.st: cannot save: a symbolic link on the way to it is user 12345's"
    check_eq planted_link_target_kept "$thesis" "$(cksum < "$TMP/thesis.st")"
    # one's own link there is followed, as before
    ln -s "$TMP/mine.st" "$TMP/course/mine.st"
    out=$(lrsh -c "model new tiny seq=16 vocab=512; model save $TMP/course/mine.st" 2>&1)
    check_contains own_link_followed "$out" "saved $TMP/course/mine.st"
    # a token cache beside a shared corpus that another user wrote is not read (its tokens may
    # be anything) nor replaced (a sticky folder refused the rename after all the tokenizing):
    # this user's own cache folder holds one instead
    cp README.md "$TMP/course/corpus.txt"
    beside=$(lrsh --json -c "tok load $TMP/tok.model; data load $TMP/course/corpus.txt" 2>/dev/null | tail -n 1 | json_field cache | tr -d '"')
    chown 12345 "$beside"
    out=$(lrsh --json -c "tok load $TMP/tok.model; data load $TMP/course/corpus.txt" 2>/dev/null | tail -n 1)
    check_eq foreign_cache_not_used "True False" "$(printf '%s\n' "$out" | json_eval '"%s %s" % (o["cache"].startswith("'"$XDG_CACHE_HOME"'/") and o["cache"] != "'"$beside"'", o["reused"])')"
    check_eq foreign_cache_kept 12345 "$(stat -c %u "$beside")"
    # … also a link another user put in its place, whoever owns what it names (stat looked
    # through it: the link was taken for this user's cache)
    private=$(printf '%s\n' "$out" | json_field cache | tr -d '"')
    rm -f "$beside" && ln -s "$private" "$beside" && chown -h 12345 "$beside"
    out=$(lrsh --json -c "tok load $TMP/tok.model; data load $TMP/course/corpus.txt" 2>/dev/null | tail -n 1)
    check_eq foreign_cache_link_not_used "$private" "$(printf '%s\n' "$out" | json_field cache | tr -d '"')"
    # a file saved over keeps its group (a teammate's in a folder without setgid became the
    # writer's group, and the team could no longer write it)
    chgrp 3456 "$TMP/mine.st"
    lrsh -q -c "model new tiny seq=16 vocab=512; model save $TMP/mine.st" >/dev/null 2>&1
    check_eq saved_over_keeps_group 3456 "$(stat -c %g "$TMP/mine.st")"
else
    skip planted_link_save "cannot give a link another owner here (not root)"
fi
mkdir -p "$TMP/a-folder"   # a folder, or a missing one, found before the first step too
out=$(lrsh -c "$prep; set errexit off; train steps=2 save=$TMP/a-folder; train steps=2 save=$TMP/no-such/x.st" 2>&1)
check_contains train_save_folder_refused "$out" "save=$TMP/a-folder is not a regular file (a folder: name a file in it)"
check_contains train_save_missing_folder_refused "$out" "cannot write in its folder $TMP/no-such (No such file or directory): nothing was trained"
check_not_contains train_save_refused_no_step2 "$out" "step 1"
out=$(lrsh --json -c "$prep; ensemble new 2; train steps=3 save=$TMP/ens-every.st save_every=2; model load $TMP/ens-every.st" 2>/dev/null)
check_eq train_save_ensemble "[2, 3] 2" "$(printf '%s\n' "$out" | python3 -c 'import json, sys
rows = [json.loads(l) for l in sys.stdin]
t = [r for r in rows if r.get("command") == "train"][0]; l = [r for r in rows if r.get("command") == "model load"][0]
print([x["step"] for x in t["saved"]], l["ensemble_k"])')"

# a loaded model's training goes on in the run it was in: in another session a run of that
# name from the file's step; in the same session that very run
out=$(lrsh --json -c "$prep; run fortunes; train steps=3; model save $TMP/run.st; model load $TMP/run.st; train steps=2; runs" 2>/dev/null)
check_contains run_resumed_says "$(lrsh -c "tok load $TMP/tok.model; model load $TMP/run.st; runs" 2>&1)" "run fortunes goes on from step 3; its steps before are not in the file"
check_eq run_resumed_same_session "fortunes 1 5" "$(printf '%s\n' "$out" | python3 -c 'import json, sys
print(" ".join(str(o[k]) for o in map(json.loads, sys.stdin) if o.get("command") == "runs" for k in ("run", "first_step", "last_step")))')"
out=$(lrsh --json -c "tok load $TMP/tok.model; data load; set batch 2; model load $TMP/run.st; train steps=2; runs" 2>/dev/null)
check_eq run_resumed_new_session "fortunes 4 5" "$(printf '%s\n' "$out" | python3 -c 'import json, sys
print(" ".join(str(o[k]) for o in map(json.loads, sys.stdin) if o.get("command") == "runs" for k in ("run", "first_step", "last_step")))')"

# ... found by its id, not its name and step: another session's run of the same name and step is
# another run (sgd-2), not steps stitched onto this one's
lrsh -q -c "$prep; optim sgd lr=0.5; train steps=3; model save $TMP/other-sgd.st" >/dev/null 2>&1
out=$(lrsh --json -c "$prep; optim sgd lr=0.01; train steps=3; model load $TMP/other-sgd.st; train steps=2; runs" 2>/dev/null)
check_eq run_other_session_same_name "sgd 1 3 sgd-2 4 5" "$(printf '%s\n' "$out" | python3 -c 'import json, sys
print(" ".join(str(o[k]) for o in map(json.loads, sys.stdin) if o.get("command") == "runs" for k in ("run", "first_step", "last_step")))')"
# a branch from an earlier checkpoint of this session's run is a run of its own (A-2, said at the
# load), and its own checkpoint goes on in it, not in A (both held A's id)
out=$(lrsh -c "$prep; run A; train steps=5 save=$TMP/f5.st; train steps=2; model load $TMP/f5.st; train steps=2 save=$TMP/b7.st; model load $TMP/b7.st; train steps=1; run" 2>&1)
check_contains run_branch_said "$out" "the file's run A goes on as A-2 from step 5 (this session has a run A)"
check_contains run_branch_goes_on "$out" "A-2              3 steps (6..8)"
# a run name is valid UTF-8 in the file's header: a stem cut to its field drops a character cut short
stem="a$(python3 -c 'print("東" * 25)')"
lrsh -q -c "$prep; model save $TMP/$stem.st; model load $TMP/$stem.st; train steps=1 save=$TMP/stem.st" >/dev/null 2>&1
check_eq run_name_utf8 "a東東東東東東東東東東東東東東東東東東東東" "$(python3 -c 'import json, struct, sys
b = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", b[:8])[0]
print(json.loads(b[8:8 + n].decode("utf-8"))["__metadata__"]["run"])' "$TMP/stem.st" 2>&1)"
# a resumed early run stays in show's window of the last 8 runs
out=$(lrsh -c "$prep; run early; step; model save $TMP/early.st; $(for i in $(seq 1 9); do printf 'run s%d; step; ' "$i"; done) model load $TMP/early.st; step; show" 2>&1)
check_contains show_current_early_run "$out" "  early            2 steps (1..2), loss"

# until=STEP: a resumed run trained up to a step number (the file is at 3 here), an ensemble
# by its members' step; not both steps= and until=, not a step reached already
out=$(lrsh --json -c "tok load $TMP/tok.model; data load; set batch 2; model load $TMP/run.st; train until=7; ensemble new 2; train until=9" 2>/dev/null | grep '"command":"train"')
check_eq train_until "4 7 2 9" "$(printf '%s\n' "$out" | python3 -c 'import json, sys
print(" ".join("%d %d" % (o["steps"], o["step"]) for o in map(json.loads, sys.stdin)))')"
out=$(lrsh -c "tok load $TMP/tok.model; data load; set batch 2; model load $TMP/run.st; set errexit off; train until=3; train steps=1 until=9; train" 2>&1)
check_contains train_until_reached "$out" "the model is at step 3, at or past until=3: nothing to train"
check_contains train_until_and_steps "$out" "steps= and until= both say how far to train: give one"
check_contains train_needs_steps "$out" "train needs steps=N or until=STEP"

# SIGHUP ignored when lrsh starts stays ignored: under nohup (SIGHUP ignored) closing the
# terminal does not end a run, which then saves its model (the HUP comes while lrsh waits for
# its next command, read from a pipe)
mkfifo "$TMP/hup.fifo"
sh -c 'trap "" HUP; exec "$0" --threads 1 -q <"$1"' "$LRSH" "$TMP/hup.fifo" >/dev/null 2>&1 &
pid=$!
exec 3>"$TMP/hup.fifo"
printf '%s; train steps=2\n' "$prep" >&3
sleep 1; kill -HUP $pid; sleep 0.2
(printf 'model save %s\n' "$TMP/hup.st" >&3) 2>/dev/null   # a subshell: a dead reader's SIGPIPE ends it only
exec 3>&-
wait $pid; rc=$?
check_eq nohup_run_goes_on 0 $rc
check_eq nohup_run_saved yes "$([ -s "$TMP/hup.st" ] && echo yes || echo no)"
# signal_after SIGNAL PATTERN WAIT OUT ARGS…: lrsh ARGS… (stdout to OUT, stderr to OUT.err) gets
# SIGNAL WAIT seconds after PATTERN shows in OUT; rc is its exit status
signal_after() {
    sig=$1 pattern=$2 pause=$3 out=$4
    shift 4
    "$LRSH" --threads 1 "$@" >"$out" 2>"$out.err" &
    pid=$!
    for i in $(seq 1 3000); do grep -q "$pattern" "$out" "$out.err" && break; sleep 0.01; done
    sleep "$pause"; kill -"$sig" $pid
    wait $pid; rc=$?
}
step_of() { lrsh --json -c "model load $1" 2>/dev/null | json_eval '"step %d" % o["step"]' 2>&1 | tail -1; }
# SIGTERM (a scheduler's, before its SIGKILL) during a training with save=: it stops at the
# step's end, saves there, and lrsh ends by the signal; the file holds the last step taken
mkdir -p "$TMP/stop"
signal_after TERM "trainer built" 1 "$TMP/stop/out" -c "$prep; train steps=100000 save=$TMP/stop/t.st save_every=1000"
check_eq sigterm_train_status 143 $rc
check_contains sigterm_train_says "$(cat "$TMP/stop/out.err")" "asked to end: the training stops at this step's end, saves to its save= file"
stopped=$(sed -n 's/^interrupted by SIGTERM at step \([0-9]*\) .*/\1/p' "$TMP/stop/out")
check_eq sigterm_train_saved_last_step "step $stopped" "$(step_of "$TMP/stop/t.st")"
check_eq sigterm_train_no_temporary_file "" "$(ls "$TMP/stop" | grep tmp)"
# ... and before the command's first step is done (a long step of many micro-batches) it still
# saves the session's training so far (it said it would save, then saved nothing)
signal_after TERM "^step 3:" 0.3 "$TMP/stop/out1" -c "$prep; train steps=3; train steps=10 accum=4000 save=$TMP/stop/first.st"
check_eq sigterm_first_step_status 143 $rc
check_eq sigterm_first_step_saved "step 3" "$(step_of "$TMP/stop/first.st")"
# ... a stop cut short the evaluation eval_every= asked at a step: said, and named in the JSON
# (a resumed run starts after that step: nothing measures it later)
signal_after TERM "trainer built" 2 "$TMP/stop/ev.out" --json -c "$prep; train steps=5 eval_every=1 eval_batches=1000000 save=$TMP/stop/ev.st"
check_eq sigterm_eval_status 143 $rc
check_contains sigterm_eval_said "$(cat "$TMP/stop/ev.out.err")" "note: step 1's evaluation was cut short by the stop: no val loss there"
check_eq sigterm_eval_json "1 SIGTERM" "$(grep '"command":"train"' "$TMP/stop/ev.out" | json_eval '"%d %s" % (o["val_missed_step"], o["signal"])')"
# SIGUSR1 (Slurm's --signal=USR1@90, ahead of the time limit) saves as SIGTERM does
signal_after USR1 "trainer built" 1 "$TMP/stop/u.out" -c "$prep; train steps=100000 save=$TMP/stop/u.st"
check_eq sigusr1_train_status 138 $rc
check_contains sigusr1_train_saved "$(cat "$TMP/stop/u.out")" "interrupted by SIGUSR1 at step"
check_eq sigusr1_train_file yes "$([ -s "$TMP/stop/u.st" ] && echo yes || echo no)"
# past a CPU-time soft limit SIGXCPU comes every CPU second: the repeats are no second request,
# so a step longer than a second still ends in a save (it ended unsaved at the second one)
prlimit --cpu=4:120 "$LRSH" --threads 1 -c "$prep; train steps=1000 batch=2048 save=$TMP/stop/x.st" >"$TMP/stop/x.out" 2>&1; rc=$?
check_eq sigxcpu_train_status 152 $rc
check_eq sigxcpu_train_saved yes "$([ -s "$TMP/stop/x.st" ] && echo yes || echo no)"
# Ctrl-C three times during one save (a save does not stop at the first; the third leaves at
# once): no temporary file stays either. The signals go apart (pending ones merge), once the
# temporary file is there.
mkdir -p "$TMP/int"
"$LRSH" --threads 1 -q -c "model new base vocab=512; model save $TMP/int/b.st" >/dev/null 2>&1 &
pid=$!
for i in $(seq 1 3000); do ls "$TMP/int" | grep -q tmp && break; sleep 0.005; done
kill -INT $pid; sleep 0.005; kill -INT $pid; sleep 0.005; kill -INT $pid
wait $pid; rc=$?
check_eq triple_sigint_status 130 $rc
check_eq triple_sigint_no_temporary_file "" "$(ls "$TMP/int" | grep tmp)"
# past a file-size limit a save is an error line and the previous file stays, not a silent death
lrsh -q -c "$prep; model save $TMP/limit.st" >/dev/null 2>&1
before=$(cksum < "$TMP/limit.st")
out=$( (ulimit -f 200; lrsh -c "$prep; train steps=1; model save $TMP/limit.st") 2>&1); rc=$?
check_status file_limit_status 1 $rc
check_contains file_limit_says "$out" "cannot save"
check_eq file_limit_kept "$before" "$(cksum < "$TMP/limit.st")"
check_eq file_limit_no_temporary_file "" "$(ls "$TMP" | grep 'limit.st.tmp')"
# a training whose save= fails at its end still tells a --json script what it did: the steps
# taken, the loss and the step it reached come with the error under "partial"
out=$( (ulimit -f 200; lrsh --json -c "$prep; train steps=2 save=$TMP/limit.st") 2>/dev/null | tail -n 1)
check_eq file_limit_json_failed "false" "$(printf '%s\n' "$out" | json_field ok)"
check_eq file_limit_json_partial "2 2 yes" "$(printf '%s\n' "$out" | json_eval '"%d %d %s" % (o["partial"]["steps"], o["partial"]["step"], "yes" if o["partial"]["loss"] > 0 else "no")' 2>&1)"
# … also when a save_every= save fails mid-run (partial held only the save list), and an error
# before any step gives no partial (it held empty lists)
out=$( (ulimit -f 200; lrsh --json -c "$prep; train steps=3 save=$TMP/limit.st save_every=2") 2>/dev/null | tail -n 1)
check_eq file_limit_every_partial "2 []" "$(printf '%s\n' "$out" | json_eval '"%d %s" % (o["partial"]["steps"], o["partial"]["saved"])' 2>&1)"
out=$(lrsh --json -c "$prep; train steps=2 batch=1000000 save=$TMP/limit.st eval_every=1" 2>/dev/null | tail -n 1)
check_eq no_step_no_partial "False" "$(printf '%s\n' "$out" | json_eval '"partial" in o' 2>&1)"
# step numbers are ints: a file past the last step lrsh counts to is refused (2147483647 loaded,
# and the next update overflowed: step -2147483647, then NaN), and at that last step training
# stops with an error, not a wrap
lrsh -q -c "$prep; train steps=1; model save $TMP/steps.st" >/dev/null 2>&1
set_meta() { python3 -c 'import json, struct, sys
b = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
h["__metadata__"][sys.argv[3]] = sys.argv[4]; t = json.dumps(h).encode()
open(sys.argv[2], "wb").write(struct.pack("<Q", len(t)) + t + b[8 + n:])' "$@"; }
set_meta "$TMP/steps.st" "$TMP/step-max.st" step 2147483647
set_meta "$TMP/steps.st" "$TMP/optim-t-max.st" optim_t 2147483647
set_meta "$TMP/steps.st" "$TMP/step-last.st" step 2000000000
out=$(lrsh -c "set errexit off; model load $TMP/step-max.st; model load $TMP/optim-t-max.st" 2>&1)
check_contains step_past_last_refused "$out" "__metadata__ step '2147483647' is not a step number (0 to 2000000000)"
check_contains optim_t_past_last_refused "$out" "__metadata__ optim_t '2147483647' is not a step number (0 to 2000000000)"
out=$(lrsh -c "model load $TMP/step-last.st; data load; train steps=2" 2>&1); rc=$?
check_status last_step_train_status 1 $rc
check_contains last_step_train_says "$out" "step 2000000000 is the last one lrsh counts to"
check_not_contains last_step_no_wrap "$out" "step -"
# … and a token cache or the default corpus past it name the file they could not write, not a
# temporary name gone by then ("corpus.txt.….tok.tmp.30865: write failed"), or none at all
mkdir -p "$TMP/limit-corpus" "$TMP/limit-cache"
head -c 400000 "$XDG_CACHE_HOME/lrsh/fortunes.txt" > "$TMP/limit-corpus/c.txt"
out=$( (ulimit -f 100; lrsh -c "tok load $TMP/tok.model; data load $TMP/limit-corpus/c.txt") 2>&1)
check_contains file_limit_cache_named "$out" "error: $TMP/limit-corpus/c.txt."
check_contains file_limit_cache_says "$out" ": cannot write the token cache: File too large; nothing was written"
out=$( (ulimit -f 100; XDG_CACHE_HOME="$TMP/limit-cache" lrsh -c "tok train vocab=400") 2>&1)
check_contains file_limit_corpus_named "$out" "error: $TMP/limit-cache/lrsh/fortunes.txt: cannot write the default corpus: File too large; nothing was written"

# ---- save, then load and generate in another process
out=$(lrsh -c "$prep; train steps=30; model save $ck" 2>&1); rc=$?
check_status save_status 0 $rc
check_contains save_reports_path "$out" "saved $ck"
check_contains save_reports_parts "$out" "step 30, f32 parameters, optimizer state included, tokenizer embedded"
check_eq save_file yes "$([ -s "$ck" ] && echo yes || echo no)"

out=$(lrsh -c "model load $ck; generate \"The\" n=20 temp=0 seed=1" 2>"$TMP/err"); rc=$?
err=$(cat "$TMP/err")
check_status load_generate_status 0 $rc
check_contains load_says_step "$out" "step 30"
check_contains load_says_optimizer "$out" "optimizer adamw"
check_not_contains greedy_has_no_seed "$out" "repeats it"   # temp=0 draws nothing
check_contains load_says_tokenizer "$out" "tokenizer embedded"
text=$(printf '%s\n' "$out" | sed -n '/^model:/,$p' | tail -n +2)
check_contains generate_starts_with_prompt "$text" "The"
check_eq generate_has_text yes "$([ "$(printf '%s' "$text" | wc -c)" -gt 3 ] && echo yes || echo no)"
check_contains generate_reports_rate "$out" "tok/s"

# --json: one object per command, nothing streamed on stdout; same seed, same text
out=$(lrsh --json -c "model load $ck; generate The n=20 seed=7; generate The n=20 seed=7; generate n=20 seed=8" 2>/dev/null); rc=$?
check_status json_generate_status 0 $rc
check_eq json_generate_lines "valid 4" "$(printf '%s\n' "$out" | json_lines)"
g=$(printf '%s\n' "$out" | grep '"command":"generate"')
t1=$(printf '%s\n' "$g" | sed -n 1p | json_field text)
t2=$(printf '%s\n' "$g" | sed -n 2p | json_field text)
check_eq same_seed_same_text "$t1" "$t2"
check_eq json_tokens 20 "$(printf '%s\n' "$g" | sed -n 1p | json_field tokens)"
for key in text tok_per_s prompt_tokens stopped; do
    check_not_contains "json_generate_$key" "$(printf '%s\n' "$g" | sed -n 1p | json_field $key)" missing
done
check_eq json_stopped_n '"n"' "$(printf '%s\n' "$g" | sed -n 1p | json_field stopped)"
check_eq json_empty_prompt_no_tokens 0 "$(printf '%s\n' "$g" | sed -n 3p | json_field prompt_tokens)"
# no BOS (the training data has none): an empty prompt continues a blank line, exactly as the
# prompt "\n\n" does
out=$(lrsh --json -c "model load models/default.safetensors; generate n=12 temp=0; generate \"\\n\\n\" n=12 temp=0" 2>/dev/null | grep '"command":"generate"')
check_eq empty_prompt_is_blank_line True "$(printf '%s\n' "$out" | python3 -c 'import json, sys
a, b = [json.loads(l) for l in sys.stdin]; print(a["text"] == b["text"] and b["prompt"] == "\n\n" and a["prompt_tokens"] == 0)')"
# a long generation streams (decoding from an anchor that moves every 64 tokens) exactly the
# text it returns whole, control characters shown as U+FFFD
lrsh -q -c "model load $ck; generate The quick n=500 seed=5" 2>/dev/null | tail -n +3 > "$TMP/streamed.txt"
lrsh --json -c "model load $ck; generate The quick n=500 seed=5" 2>/dev/null | grep '"command":"generate"' > "$TMP/whole.json"
check_eq stream_equals_whole True "$(python3 -c 'import json, re, sys
o = json.load(open(sys.argv[2])); whole = re.sub("\r(?!\n)", "\ufffd", o["prompt"] + o["text"])   # CRLF kept
shown = "".join(c if c in "\n\t\r" or (ord(c) >= 32 and ord(c) != 127) else "\ufffd" for c in whole)
print(open(sys.argv[1], encoding="utf-8").read()[:-1] == shown and o["tokens"] == 500)' "$TMP/streamed.txt" "$TMP/whole.json")"
# stop=: the same draws, cut where the stop text first comes after the prompt (the prompt's own
# letters do not count), streamed as returned — past the stream's first decode window (64
# tokens), the first letter pair first seen after character 400; a prompt holding it is shown whole
stop=$(python3 -c 'import json, sys; t = json.load(open(sys.argv[1]))["text"]
print(next(t[i:i + 2] for i in range(400, len(t) - 1) if t[i:i + 2].isalpha() and t[i:i + 2] not in t[:i + 1]))' "$TMP/whole.json")
lrsh -q -c "model load $ck; generate The quick n=500 seed=5 stop=$stop" 2>/dev/null | tail -n +3 > "$TMP/stop-streamed.txt"
out=$(lrsh --json -c "model load $ck; generate The quick n=500 seed=5 stop=$stop" 2>/dev/null | grep '"command":"generate"')
check_eq generate_stop_cut True "$(printf '%s\n' "$out" | python3 -c 'import json, sys
o = json.loads(sys.stdin.read()); whole = json.load(open(sys.argv[1])); stop = sys.argv[3]
want = whole["text"].split(stop)[0]
print(o["text"] == want and o["stopped"] == "stop" and o["tokens"] < 500 and open(sys.argv[2], encoding="utf-8").read()[:-1] == o["prompt"] + want)' "$TMP/whole.json" "$TMP/stop-streamed.txt" "$stop")"
check_contains generate_stop_prompt_kept "$(lrsh -q -c "model load $ck; generate \"a$stop\" n=5 seed=5 stop=$stop" 2>/dev/null)" "a$stop"
check_contains generate_stop_backslash "$(lrsh -c "model load $ck; generate The n=3 stop='\\n'" 2>&1)" "note: stop= holds a backslash: only inside double quotes is \\n a newline"
check_contains generate_stop_empty "$(lrsh -c "model load $ck; generate stop=\"\"" 2>&1)" "option stop= expects text, got nothing"
# a carriage return shows as part of CRLF only: alone it would send the cursor back over the line
# (ids 17 and 14 are the bytes 0x0D and 0x0A of lrsh's tokenizers: byte pieces follow 4 specials)
out=$(lrsh -q -c "tok load $TMP/tok.model; tok decode ,,," 2>&1); rc=$?
check_status decode_no_ids_status 1 $rc
check_contains decode_no_ids "$out" "tok decode: no token ids given"
check_eq decode_byte_ids "0d0a" "$(lrsh -q -c "tok load $TMP/tok.model; tok decode 17 14" 2>/dev/null | tail -c 3 | od -An -tx1 | tr -d ' \n' | cut -c1-4)"
check_eq decode_lone_cr "efbfbd0a" "$(lrsh -q -c "tok load $TMP/tok.model; tok decode 17" 2>/dev/null | tail -c 4 | od -An -tx1 | tr -d ' \n')"
check_eq decode_cr_then_text "efbfbd" "$(lrsh -q -c "tok load $TMP/tok.model; tok decode 17 90" 2>/dev/null | tail -n 1 | head -c 3 | od -An -tx1 | tr -d ' \n')"
# one token has no decode rate (its pass was the prompt's: n/0 read as 10⁵ tok/s); a seed of
# 16 digits or more comes back exact, as a string; a context shorter than an empty prompt's lead-in encodes 0
out=$(lrsh --json -c "model load $ck; generate The n=1 seed=1234567890123456789; generate The n=3" 2>/dev/null | grep '"command":"generate"')
check_eq generate_one_token_no_rate null "$(printf '%s\n' "$out" | sed -n 1p | json_field tok_per_s)"
check_eq generate_seed_exact '"1234567890123456789"' "$(printf '%s\n' "$out" | sed -n 1p | json_field seed)"
check_eq generate_three_tokens_rate yes "$(printf '%s\n' "$out" | sed -n 2p | json_eval 'o["tok_per_s"] > 0 and "yes"')"
# from 16 digits on a seed is a string too: cJSON printed 8000000000000001 as the number 8e+15
out=$(lrsh --json -c "set seed 8000000000000001; show; set seed 999999999999999; show" 2>/dev/null | grep '"command":"show"')
check_eq seed_16_digits_string '"8000000000000001" 999999999999999' "$(printf '%s\n' "$out" | sed -n 1p | json_field seed) $(printf '%s\n' "$out" | sed -n 2p | json_field seed)"
out=$(lrsh -c "set seed 9000000000000000512" 2>&1); rc=$?   # 9e18 as a double: the bound is checked whole
check_status seed_past_bound_refused 1 $rc
check_contains seed_past_bound_message "$out" "must be between 0 and 9000000000000000000, got 9000000000000000512"
# a seed derived from the largest (the session seed + calls so far) wraps to 0: one past the
# largest was reported, and seed= refused it; the reported seed gives the same text back
out=$(lrsh --json -c "model load $ck; set seed 9000000000000000000; generate The n=4; generate The n=4; generate The n=4 seed=0" 2>/dev/null | grep '"command":"generate"')
check_eq derived_seed_wraps '0 True' "$(printf '%s\n' "$out" | sed -n 2p | json_field seed) $(printf '%s\n' "$out" | python3 -c 'import json, sys; r = [json.loads(l) for l in sys.stdin]; print(r[1]["text"] == r[2]["text"])')"
out=$(lrsh --json -c "tok load $TMP/tok.model; model new dim=32 layers=1 heads=2 seq=1 vocab=512; generate n=3" 2>/dev/null | grep '"command":"generate"')
check_eq generate_short_context_encoded 0 "$(printf '%s\n' "$out" | json_field prompt_encoded)"

# ---- round trip in one session: a load restores the saved parameters and step
a="$TMP/a.safetensors"
out=$(lrsh --json -c "$prep; train steps=4; model save $a; eval batches=2; train steps=3; model load $a; eval batches=2; show" 2>/dev/null); rc=$?
check_status roundtrip_status 0 $rc
ev=$(printf '%s\n' "$out" | grep '"command":"eval"')
check_eq roundtrip_same_val_loss "$(printf '%s\n' "$ev" | sed -n 1p | json_field val_loss)" \
    "$(printf '%s\n' "$ev" | sed -n 2p | json_field val_loss)"
check_eq roundtrip_step 4 "$(printf '%s\n' "$out" | grep '"command":"show"' | json_field step)"
check_eq roundtrip_saved_clean false "$(printf '%s\n' "$out" | grep '"command":"show"' | json_field unsaved)"
# the tokenizer that came in the checkpoint: path null (a checkpoint is no file `tok load`
# reads; it said "(embedded in FILE)" there), embedded_in the file
check_eq show_tokenizer_embedded "None $a" "$(printf '%s\n' "$out" | grep '"command":"show"' | json_eval 'str(o["tokenizer"]["path"]) + " " + o["tokenizer"]["embedded_in"]')"

# an exact resume: train 4 + save + 3 more equals load + 3 more in a new process — the file's
# batches (prep's `set batch 2`) become the session's: no `set` needed
l1=$(printf '%s\n' "$out" | grep '"command":"train"' | sed -n 2p | json_field loss)
out=$(lrsh --json -c "model load $a; data load; train steps=3" 2>/dev/null)
check_eq resume_exact "$l1" "$(printf '%s\n' "$out" | grep '"command":"train"' | json_field loss)"
check_eq resume_step 7 "$(printf '%s\n' "$out" | grep '"command":"train"' | json_field step)"
check_eq resume_batches '{"batch": 2, "seq": 64, "accum": 1}' "$(printf '%s\n' "$out" | grep '"command":"model load"' | json_field batches)"
out=$(lrsh -c "set accum 3; model load $a" 2>&1)
check_contains resume_batches_note "$out" "batch 2, seq 64, accum 1: the saving session's settings (the session had 8, its model's context, 3"
# a run on shorter sequences than the context resumes on them too (`set seq` from the file)
sq="$TMP/seq32.safetensors"
out=$(lrsh --json -c "$prep; set seq 32; train steps=2; model save $sq; train steps=2" 2>/dev/null)
l_seq=$(printf '%s\n' "$out" | grep '"command":"train"' | tail -n 1 | json_field loss)
out=$(lrsh --json -c "model load $sq; data load; train steps=2; show" 2>/dev/null)
check_eq resume_seq_exact "$l_seq" "$(printf '%s\n' "$out" | grep '"command":"train"' | json_field loss)"
check_eq resume_seq_setting 32 "$(printf '%s\n' "$out" | grep '"command":"show"' | json_field seq)"
# `set seq N` with N the context comes back as typed, not as 0 (which follows the model's context)
out=$(lrsh --json -c "$prep; set seq 64; model save $sq; model load $sq; show" 2>/dev/null)
check_eq resume_seq_as_typed 64 "$(printf '%s\n' "$out" | grep '"command":"show"' | json_field seq)"
# ... and one-off batch= seq= accum= of the last update do not stick: the resumed session takes
# the saving one's settings, as it would have gone on
oo="$TMP/oneoff.safetensors"
out=$(lrsh --json -c "$prep; train steps=2 batch=4 seq=32 accum=2; model save $oo; train steps=2" 2>/dev/null)
l_oo=$(printf '%s\n' "$out" | grep '"command":"train"' | tail -n 1 | json_field loss)
out=$(lrsh --json -c "model load $oo; data load; train steps=2" 2>/dev/null)
check_eq resume_one_off_exact "$l_oo" "$(printf '%s\n' "$out" | grep '"command":"train"' | json_field loss)"
# a save or tok train killed outright (SIGKILL) left PATH.tmp.PID: the next write of PATH removes it
dead=$(sh -c 'echo $$')   # a process that has ended
echo partial >"$TMP/swept.st.tmp.$dead"; echo partial >"$TMP/swept.model.tmp.$dead"; echo partial >"$TMP/.lrsh.tmp.$dead.3"
# (left alone two minutes: a fresh one may be a live writer's in another PID namespace)
touch -d '2 minutes ago' "$TMP/swept.st.tmp.$dead" "$TMP/swept.model.tmp.$dead" "$TMP/.lrsh.tmp.$dead.3"
echo partial >"$TMP/fresh.st.tmp.$dead"
lrsh -c "model new tiny seq=16 vocab=512; model save $TMP/fresh.st" >/dev/null 2>&1
check_eq stale_fresh_kept yes "$([ -e "$TMP/fresh.st.tmp.$dead" ] && echo yes || echo no)"
lrsh -c "model new tiny seq=16 vocab=512; model save $TMP/swept.st; tok train vocab=512 out=$TMP/swept.model" >/dev/null 2>&1
check_eq stale_save_removed "no no" "$([ -e "$TMP/swept.st.tmp.$dead" ] && echo yes || echo no) $([ -e "$TMP/swept.model.tmp.$dead" ] && echo yes || echo no)"
check_eq stale_short_name_removed no "$([ -e "$TMP/.lrsh.tmp.$dead.3" ] && echo yes || echo no)"
check_eq stale_save_saved yes "$([ -s "$TMP/swept.st" ] && [ -s "$TMP/swept.model" ] && echo yes || echo no)"
echo partial >"$TMP/swept.st.tmp.$dead.0a1b2c3d"   # today's names: PATH.tmp.PID.R
echo other >"$TMP/swept.st.tmp.+$dead"; echo other >"$TMP/swept.st.tmp.$dead.bf16"   # no name lrsh writes
touch -d '2 minutes ago' "$TMP/swept.st.tmp.$dead.0a1b2c3d" "$TMP/swept.st.tmp.+$dead" "$TMP/swept.st.tmp.$dead.bf16"
lrsh -c "model new tiny seq=16 vocab=512; model save $TMP/swept.st" >/dev/null 2>&1
check_eq stale_random_name_removed no "$([ -e "$TMP/swept.st.tmp.$dead.0a1b2c3d" ] && echo yes || echo no)"
echo partial >"$TMP/swept.st.tmp.$dead.0a1b2c3e"; touch -d '2 minutes ago' "$TMP/swept.st.tmp.$dead.0a1b2c3e"
lrsh -c "model load $TMP/swept.st" >/dev/null 2>&1   # a job that only loads the file sweeps it too
check_eq stale_swept_at_load no "$([ -e "$TMP/swept.st.tmp.$dead.0a1b2c3e" ] && echo yes || echo no)"
check_eq stale_other_names_kept "yes yes" "$([ -e "$TMP/swept.st.tmp.+$dead" ] && echo yes || echo no) $([ -e "$TMP/swept.st.tmp.$dead.bf16" ] && echo yes || echo no)"
# a writer of the same PID in another PID namespace (a container: each lrsh PID 1) — here a file
# named with lrsh's own PID, written just before it starts — is neither removed nor written
# over: the name had no other part, and the save unlinked that writer's file, then renamed its
# own, or the other's half-written one, into place
sh -c 'echo partial >"$1.tmp.$$"; exec "$2" --threads 1 -c "model new tiny seq=16 vocab=512; model save $1"' \
    sh "$TMP/ns.st" "$LRSH" >/dev/null 2>&1
check_eq same_pid_writer_kept partial "$(cat "$TMP"/ns.st.tmp.* 2>/dev/null)"
check_eq same_pid_save_saved yes "$(lrsh -c "model load $TMP/ns.st" >/dev/null 2>&1 && echo yes || echo no)"
# tok train over a tokenizer keeps its permissions; out= a link to a missing file is refused (the
# link was replaced by a file)
chmod 600 "$TMP/swept.model"
lrsh -c "tok train vocab=512 out=$TMP/swept.model" >/dev/null 2>&1
check_eq tok_train_keeps_mode 600 "$(stat -c %a "$TMP/swept.model")"
# a new file's permissions follow the umask (they were 0644 whatever it was); one written over
# keeps its own, less setuid and setgid; a token cache allows no more than its corpus
(umask 077; lrsh -c "tok train vocab=512 out=$TMP/private.model; model new tiny seq=16 vocab=512; model save $TMP/private.st") >/dev/null 2>&1
check_eq new_files_follow_umask "600 600" "$(stat -c %a "$TMP/private.model") $(stat -c %a "$TMP/private.st")"
chmod 6755 "$TMP/private.st"
lrsh -c "model new tiny seq=16 vocab=512; model save $TMP/private.st" >/dev/null 2>&1
check_eq overwrite_drops_setuid 755 "$(stat -c %a "$TMP/private.st")"
mkdir -p "$TMP/secret"; head -c 20000 "$XDG_CACHE_HOME/lrsh/fortunes.txt" > "$TMP/secret/notes.txt"; chmod 600 "$TMP/secret/notes.txt"
(umask 022; lrsh -c "tok load $TMP/private.model; data load $TMP/secret/notes.txt") >/dev/null 2>&1
check_eq token_cache_as_private_as_corpus 600 "$(stat -c %a "$TMP"/secret/notes.txt.*.tok)"
# a cache rebuilt (the corpus changed) after its corpus became private follows it (it kept 0644)
chmod 644 "$TMP"/secret/notes.txt.*.tok; echo "one more line" >> "$TMP/secret/notes.txt"
(umask 022; lrsh -c "tok load $TMP/private.model; data load $TMP/secret/notes.txt") >/dev/null 2>&1
check_eq token_cache_rebuilt_as_private_as_corpus 600 "$(stat -c %a "$TMP"/secret/notes.txt.*.tok)"
ln -s "$TMP/nothere.model" "$TMP/dangling.model"
out=$(lrsh -c "tok train vocab=512 out=$TMP/dangling.model" 2>&1); rc=$?
check_status tok_train_dangling_status 1 $rc
check_contains tok_train_dangling "$out" "is a symbolic link to a missing file: nothing was trained"
check_eq tok_train_dangling_kept yes "$([ -L "$TMP/dangling.model" ] && echo yes || echo no)"
# saved before any step, after `optim`: loaded and trained, the same bytes as trained at once
lrsh -q -c "tok load $TMP/tok.model; data load; model new tiny dim=32 seq=16; optim spectron lr=0.01 warmup=2; model save $TMP/step0.st" >/dev/null 2>&1
lrsh -q -c "model load $TMP/step0.st; data load; train steps=3 batch=2; model save $TMP/step0-3.st" >/dev/null 2>&1
lrsh -q -c "tok load $TMP/tok.model; data load; model new tiny dim=32 seq=16; optim spectron lr=0.01 warmup=2; train steps=3 batch=2; model save $TMP/direct-3.st" >/dev/null 2>&1
# … and one saved with no optimizer chosen holds none: loading it keeps the session's own
lrsh -q -c "model new tiny dim=32 seq=16 vocab=512; model save $TMP/init.st" >/dev/null 2>&1
# … also after model new put a loaded file's settings back to the default (they were written as chosen)
lrsh -q -c "tok load $TMP/tok.model; model new tiny dim=32 seq=16; optim spectron lr=0.01; model save $TMP/chosen.st; model load $TMP/chosen.st; model new tiny dim=32 seq=16; model save $TMP/unchosen.st" >/dev/null 2>&1
check_contains step0_default_again_not_written "$(lrsh -c "optim muon lr=0.02; model load $TMP/unchosen.st; optim" 2>&1 | tail -n 1)" "optimizer  muon lr=0.02"
check_contains step0_unchosen_keeps_session "$(lrsh -c "optim muon lr=0.02; model load $TMP/init.st; optim" 2>&1 | tail -n 1)" "optimizer  muon lr=0.02"
# (the same tensors and metadata but the run each went on in: the stem of the file, a new run)
check_eq step0_save_resumes_exactly same "$(python3 -c 'import json, struct, sys
def parts(path):
    b = open(path, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
    for k in ("run", "run_id"): h["__metadata__"].pop(k, None)
    return h, b[8 + n:]
print("same" if parts(sys.argv[1]) == parts(sys.argv[2]) else "differ")' "$TMP/step0-3.st" "$TMP/direct-3.st")"
# a name of 250 bytes saves (NAME.tmp.PID would pass the file system's 255), and a save with no
# trainer yet keeps the optimizer chosen (it held none, and the file resumed as adamw), as model
# load of it says
long_name="$TMP/$(python3 -c "print('n' * 250)")"
out=$(lrsh --json -c "model new tiny seq=16 vocab=512; optim spectron; model save $long_name; model load $long_name" 2>/dev/null)
check_eq long_name_saved '"spectron" "spectron"' "$(printf '%s\n' "$out" | grep '"command":"model save"' | json_field optimizer) $(printf '%s\n' "$out" | grep '"command":"model load"' | json_field optimizer)"
# a name of 256 bytes: refused before anything is written (the rename found it, the file written)
check_contains name_too_long_refused "$(lrsh -c "model new tiny seq=16 vocab=512; model save ${long_name}nnnnnn" 2>&1)" "the file name is longer than 255 bytes"
check_eq name_too_long_nothing_left "" "$(ls "$TMP" | grep -E 'nnnnnn\.tmp|lrsh\.tmp')"
# model load and plot from= of a pipe: refused at once (open waited for a writer for ever)
mkfifo "$TMP/ckpt.fifo"
out=$(timeout 30 "$LRSH" -c "model load $TMP/ckpt.fifo" 2>&1); rc=$?
check_status fifo_load_status 1 $rc
check_contains fifo_load_refused "$out" "not a regular file (a device, pipe or socket)"
out=$(timeout 30 "$LRSH" -c "plot loss from=$TMP/ckpt.fifo" 2>&1); rc=$?
check_status fifo_plot_status 1 $rc
check_contains fifo_plot_refused "$out" "a device, pipe or socket, not a \`log\` file"
# a path longer than the system takes: one line saying so, as an argument or an option
long=$(python3 -c "print('$TMP/' + 'd/' * 2500 + 'x.st')")
check_contains long_path_arg "$(lrsh -c "model save $long" 2>&1)" "model save: a path of 5"
check_contains long_path_option "$(lrsh -c "plot loss from=$long" 2>&1)" "option from=: a path of 5"
# model load of the other files lrsh writes says which command reads them
check_contains model_load_tokenizer "$(lrsh -c "model load $TMP/tok.model" 2>&1)" "is a SentencePiece tokenizer, not a checkpoint: \`tok load\` reads it"
# a script that stops at an error with training not saved says it is gone; saved, nothing
out=$(lrsh -c "$prep; train steps=2; nosuch" 2>&1)
check_contains script_stop_unsaved "$out" "lrsh: the model's unsaved work (training or changes, at step 2) is gone with the session: the script stopped at its error"
out=$(lrsh -c "$prep; set errexit off; train steps=1; nosuch; show" 2>&1)
check_not_contains script_goes_on_no_stop_note "$out" "unsaved work"
out=$(lrsh -c "$prep; train steps=2; model save $TMP/kept.st; nosuch" 2>&1)
check_not_contains script_stop_saved "$out" "training not saved"
# ... and evaluates on the same batches: they come from the session seed, which the file keeps
ev="$TMP/evalseed.safetensors"
out=$(lrsh --json -c "set seed 42; $prep; train steps=2; model save $ev; train steps=2 eval_every=2" 2>/dev/null)
v_full=$(printf '%s\n' "$out" | grep '"command":"train"' | tail -n 1 | json_field val_loss)
out=$(lrsh --json -c "model load $ev; data load; train steps=2 eval_every=2; show" 2>/dev/null)
check_eq resume_same_val_loss "$v_full" "$(printf '%s\n' "$out" | grep '"command":"train"' | json_field val_loss)"
check_eq resume_seed 42 "$(printf '%s\n' "$out" | grep '"command":"show"' | json_field seed)"
check_contains resume_seed_note "$(lrsh -c "model load $ev" 2>&1)" "seed 42: the saving session's (the session had 1234"
# ... and says so when the data it goes on with is not the run's (another split here)
out=$(lrsh -c "model load $ev; data load val=0.2; train steps=1; train steps=1" 2>&1)
check_contains resume_other_data_note "$out" "note: the loaded model was training on data of"
check_eq resume_other_data_once 1 "$(printf '%s\n' "$out" | grep -c 'was training on data of')"
check_not_contains resume_same_data_no_note "$(lrsh -c "model load $ev; data load; train steps=1" 2>&1)" "was training on data of"
# a file loaded and saved again with no data loaded keeps the data size it had
lrsh -q -c "model load $ev; model save $TMP/resaved.st" >/dev/null 2>&1
out=$(lrsh -c "model load $TMP/resaved.st; data load val=0.2; train steps=1" 2>&1)
check_contains resaved_keeps_data_size "$out" "note: the loaded model was training on data of"
# ... and other tokens of the same size: a folder's two files swapped by name (each is
# tokenized on its own, so the count stays; the order, and so every batch, does not)
mkdir -p "$TMP/swap"
head -n 60 "$XDG_CACHE_HOME/lrsh/fortunes.txt" >"$TMP/swap/a.txt"   # whole lines: no newline added
tail -n 90 "$XDG_CACHE_HOME/lrsh/fortunes.txt" >"$TMP/swap/b.txt"
lrsh -q -c "tok load $TMP/tok.model; data load $TMP/swap; model new tiny dim=32 seq=16; train steps=1 batch=2; model save $TMP/swap.st" >/dev/null 2>&1
mv "$TMP/swap/a.txt" "$TMP/swap/c.txt"; mv "$TMP/swap/b.txt" "$TMP/swap/a.txt"; mv "$TMP/swap/c.txt" "$TMP/swap/b.txt"
out=$(lrsh -c "tok load $TMP/tok.model; model load $TMP/swap.st; data load $TMP/swap; train steps=1 batch=2" 2>&1)
check_contains resume_same_size_other_tokens "$out" "note: the loaded model was training on other tokens of the same size"
out=$(lrsh -c "tok load $TMP/tok.model; model load $TMP/swap.st; data load $TMP/swap; model save $TMP/swap2.st; model load $TMP/swap2.st; step" 2>&1)
check_not_contains resaved_same_tokens_no_note "$out" "training on other tokens"
# a file renamed in the same order is the same text: no note (the names are not hashed)
lrsh -q -c "tok load $TMP/tok.model; data load $TMP/swap; model new tiny dim=32 seq=16; ensemble new 2; train steps=1 batch=2; model save $TMP/swap-ens.st" >/dev/null 2>&1
mv "$TMP/swap/b.txt" "$TMP/swap/c.txt"
out=$(lrsh -c "tok load $TMP/tok.model; model load $TMP/swap2.st; data load $TMP/swap; step" 2>&1)
check_not_contains renamed_same_order_no_note "$out" "training on other"
# an ensemble's file is checked as a model's is
mv "$TMP/swap/a.txt" "$TMP/swap/d.txt"   # c.txt, d.txt: the other order
out=$(lrsh -c "tok load $TMP/tok.model; model load $TMP/swap-ens.st; data load $TMP/swap; train steps=1 batch=2" 2>&1)
check_contains ensemble_resume_other_tokens "$out" "note: the loaded model was training on other tokens of the same size"
out=$(lrsh -c "$prep; set errexit off; set seq 100; show" 2>&1)
check_contains set_seq_refused_at_set "$out" "seq=0 errexit"
check_contains set_seq_too_long "$out" "\`set seq 100\` is longer than this model's context (64): \`set seq 0\` uses the context"

# bf16 without optimizer state: smaller, and says so when loaded
out=$(lrsh --json -c "model load $a; model save $TMP/b.safetensors dtype=bf16 optim=no; model load $TMP/b.safetensors" 2>/dev/null)
fb=$(printf '%s\n' "$out" | grep '"model save"' | json_field bytes)
check_eq bf16_smaller yes "$([ "$fb" -lt "$(wc -c <"$a")" ] && echo yes || echo no)"
check_eq bf16_dtype '"bf16"' "$(printf '%s\n' "$out" | grep '"model load"' | tail -n 1 | json_field dtype)"
check_eq bf16_no_optim false "$(printf '%s\n' "$out" | grep '"model load"' | tail -n 1 | json_field optimizer_state)"

# ---- a name without its .safetensors, when that file is there: the error names it
out=$(lrsh -c "model load ${ck%.safetensors}" 2>&1)
check_contains load_suggests_extension "$out" "${ck%.safetensors}: no such file; did you mean $ck?"

# ---- a corrupted file: one error line, the earlier model still there
python3 -c '
import sys
b = bytearray(open(sys.argv[1], "rb").read())
b[12:40] = b"}{ not json at all, garbage"[:28].ljust(28)
open(sys.argv[2], "wb").write(b)' "$ck" "$TMP/bad.safetensors"
head -c 3000 "$ck" >"$TMP/short.safetensors"
for bad in bad short; do
    out=$(lrsh -c "$prep; set errexit off; model load $TMP/$bad.safetensors; model info" 2>"$TMP/err"); rc=$?
    err=$(cat "$TMP/err")
    check_status "corrupt_${bad}_status" 1 $rc
    check_eq "corrupt_${bad}_one_error" 1 "$(grep -c 'error:' "$TMP/err")"
    check_contains "corrupt_${bad}_names_file" "$err" "$bad.safetensors"
    check_contains "corrupt_${bad}_model_kept" "$out" "custom (from tiny): dim=128 layers=2 heads=4 kv_heads=4 ffn=384 rank=0.25·in seq=64"
done
out=$(lrsh -c "model load $TMP/nonexistent.safetensors" 2>&1); rc=$?
check_status missing_file_status 1 $rc
check_eq missing_file_one_line 1 "$(printf '%s\n' "$out" | grep -c .)"

# an update that leaves NaN in the parameters (AdamW with eps=0) is said by step and by a save
out=$(lrsh -c "tok load $TMP/tok.model; data load; model new tiny dim=32 seq=16; optim adamw eps=0 lr=0.01; step batch=2; model save $TMP/nan.st" 2>&1)
check_contains nan_step_warns "$out" "this update left NaN or infinite values in the parameters"
check_contains nan_save_warns "$out" "the model holds NaN or infinite values"
# … and by train (it said nothing: only the next step found it), an ensemble's train and save;
# factorize and ensemble new refuse such a model (they kept the NaN and lost the step's rollback)
out=$(lrsh -c "tok load $TMP/tok.model; data load; model new tiny dim=32 seq=16; optim adamw eps=0 lr=0.01; set errexit off; train steps=1 batch=2; eval batches=1; model factorize rank=2; ensemble new 2" 2>&1)
check_contains nan_train_warns "$out" "this update left NaN or infinite values in the parameters"
check_contains nan_eval_says_diverged "$out" "the loss is not finite (NaN): the model diverged (\`norms\` shows its matrices' sizes); the next training step rolls its last update back"
check_contains nan_factorize_refused "$out" "the model holds NaN or infinite values: nothing to factorize"
check_contains nan_ensemble_new_refused "$out" "member 0 would start from them"
out=$(lrsh -c "tok load $TMP/tok.model; data load; model new tiny dim=32 seq=16; optim adamw eps=0 lr=0.01; ensemble new 2; train steps=1 batch=2; model save $TMP/nan-ens.st; set errexit off; eval batches=1" 2>&1)
check_contains nan_ensemble_train_warns "$out" "the last update left NaN or infinite values in member"
check_contains nan_ensemble_save_warns "$out" "holds NaN or infinite values (from the last update"
# … and its eval says the ensemble diverged, as a single model's does (it gave the bare loss)
check_contains nan_ensemble_eval_says_diverged "$(printf '%s\n' "$out" | tail -1)" "the loss is not finite (NaN): the ensemble diverged (\`norms\` shows a member's matrices' sizes); the next training step rolls every member's last update back"
# an ensemble train that kept no step has no rate (tok_per_s null), as a single model's
out=$(lrsh --json -c "tok load $TMP/tok.model; data load; model new tiny dim=32 seq=16; optim adamw eps=0 lr=0.01; ensemble new 2; set errexit off; train steps=3 batch=2" 2>/dev/null)
check_eq nan_ensemble_train_no_rate "0 None" "$(printf '%s\n' "$out" | grep '"command":"train"' | json_eval 'str(o["steps"]) + " " + str(o["tok_per_s"])')"

# ---- factorize: a table of relative errors, optimizer state reset
out=$(lrsh --json -c "model load $ck; model factorize rank=8; model info" 2>"$TMP/err"); rc=$?
check_status factorize_status 0 $rc
f=$(printf '%s\n' "$out" | grep '"model factorize"')
check_eq factorize_matrices 14 "$(printf '%s\n' "$f" | json_eval 'len(o["matrices"])')"
check_eq factorize_errors_sane True "$(printf '%s\n' "$f" | json_eval 'all(0 <= m["rel_error"] <= 1 and m["param"] for m in o["matrices"])')"
check_eq factorize_state_reset true "$(printf '%s\n' "$f" | json_field state_reset)"
check_eq factorize_rank_in_config 8 "$(printf '%s\n' "$out" | grep '"model info"' | json_eval 'o["config"]["rank"]')"
check_contains factorize_says_reset "$(cat "$TMP/err")" "optimizer state reset"
out=$(lrsh -c "model load $ck; model factorize rank=8" 2>&1)
check_contains factorize_table "$out" "blocks.1.mlp.w2"
check_contains factorize_summary "$out" "worst"
out=$(lrsh -c "model load $ck; model factorize rank=100000" 2>&1); rc=$?
check_status factorize_bad_rank nonzero $rc
# rank=0: the factorized model made dense, its loss the same; a dense one refused
out=$(lrsh -c "model load $ck; data load; eval batches=2 batch=2; model factorize rank=0; model info; eval batches=2 batch=2; model factorize rank=0" 2>&1); rc=$?
check_status factorize_dense_stops_at_the_second 1 $rc
check_contains factorize_dense_said "$out" "dense: every W = A·Bᵀ formed, exactly"
check_contains factorize_dense_info "$out" "loaded, then made dense"
check_eq factorize_dense_same_loss 1 "$(printf '%s\n' "$out" | grep '^val loss' | sed 's/(step.*//' | uniq | wc -l | tr -d ' ')"
check_contains factorize_dense_twice "$out" "this model is dense already"
# the factorized model's evals go to a run of its own, named after the run it came from: the
# source's validation loss stays in its row (it was overwritten by the factorized model's)
out=$(lrsh --json -c "model load $ck; data load; run base; eval batches=2 batch=2; model factorize rank=4; eval batches=2 batch=2; runs" 2>/dev/null)
check_eq factorize_own_run '["base", "base-r4"]' "$(printf '%s\n' "$out" | grep '"command":"runs"' | python3 -c 'import json, sys
print(json.dumps([json.loads(l)["run"] for l in sys.stdin]))')"
check_eq factorize_own_run_vals 2 "$(printf '%s\n' "$out" | grep '"command":"runs"' | python3 -c 'import json, sys
print(len({json.loads(l)["val_loss"] for l in sys.stdin}))')"
# before any step or eval: named after the run the loaded file was training in ($prep's adamw)
out=$(lrsh --json -c "model load $ck; data load; model factorize rank=4; eval batches=2 batch=2; runs" 2>/dev/null)
check_eq factorize_run_before_any_step '["adamw-r4"]' "$(printf '%s\n' "$out" | grep '"command":"runs"' | python3 -c 'import json, sys
print(json.dumps([json.loads(l)["run"] for l in sys.stdin]))')"
# a rank that saves nothing says so (the parameters grow); a rank that saves says nothing; a
# save right after says its optimizer state is the fresh one the reset made
out=$(lrsh -c "model new tiny rank=0; model factorize rank=128" 2>&1)
check_contains factorize_no_saving_note "$out" "at rank 128 the factors hold more numbers than the dense matrices"
# raising a factorized model's rank may still save against the dense model: no note then
check_not_contains factorize_raise_rank_saves "$(lrsh -c "model new tiny rank=8 vocab=512; model factorize rank=32" 2>&1)" "nothing is saved"
check_not_contains factorize_saving_no_note "$(lrsh -c "model new tiny rank=0; model factorize rank=16" 2>&1)" "nothing is saved"
out=$(lrsh -c "model load $ck; data load; model factorize rank=8; model save $TMP/fz.st; train steps=1 batch=2; model save $TMP/fz.st" 2>&1)
check_contains factorize_save_fresh "$out" "optimizer state included (fresh: no update since it was built or reset)"
check_eq factorize_save_then_trained 1 "$(printf '%s\n' "$out" | grep -c "optimizer state included,")"

# ---- generate guards
out=$(lrsh -c "model new tiny; generate" 2>&1); rc=$?
check_status generate_no_tok_status nonzero $rc
check_contains generate_no_tok "$out" "no tokenizer"
out=$(lrsh -c "tok load $TMP/tok.model; model new tiny vocab=300; generate" 2>&1)
check_contains generate_vocab_mismatch "$out" "larger than the model's"
out=$(lrsh -c "tok load $TMP/tok.model; model new tiny seq=16; generate the quick brown fox jumps over the lazy dog and then the dog sleeps all day long n=4" 2>&1); rc=$?
check_status generate_long_prompt_status 0 $rc
check_contains generate_long_prompt_note "$out" "longer than the context"
# its report counts the tokens encoded (the window's part) besides the prompt's
out=$(lrsh --json -c "tok load $TMP/tok.model; model new tiny seq=16; generate the quick brown fox jumps over the lazy dog and then the dog sleeps all day long n=4" 2>/dev/null)
check_eq generate_long_prompt_encoded True "$(printf '%s\n' "$out" | tail -n 1 | json_eval '0 < o["prompt_encoded"] <= 16 < o["prompt_tokens"]')"
out=$(lrsh --json -c "tok load $TMP/tok.model; model new tiny seq=16; generate the quick n=4" 2>/dev/null)
check_eq generate_short_prompt_encoded True "$(printf '%s\n' "$out" | tail -n 1 | json_eval 'o["prompt_encoded"] == o["prompt_tokens"] > 0')"

# ---- Ctrl-C stops generate at a token boundary
interrupt_after "$TMP/int.log" "parameters" 1 --threads 1 -c "tok load $TMP/tok.model; model new tiny seq=32; generate n=10000000 temp=0; show"
check_status generate_interrupt_status 130 $rc
check_contains generate_interrupt_says "$out" "stopped by Ctrl-C"
check_not_contains generate_interrupt_skips_rest "$out" "settings"

# ---- bench generate: one JSON object per model
out=$(lrsh --json -c 'bench generate shape=tiny n=8' 2>/dev/null); rc=$?
check_status bench_generate_status 0 $rc
check_eq bench_generate_json "valid 2" "$(printf '%s\n' "$out" | json_lines)"
check_eq bench_generate_models "['dense', 'factorized']" "$(printf '%s\n' "$out" | python3 -c '
import json, sys
print([json.loads(l)["model"] for l in sys.stdin if json.loads(l).get("tok_per_s", 0) > 0])')"
check_eq bench_generate_decode_path "['direct', 'direct']" "$(printf '%s\n' "$out" | python3 -c '
import json, sys
print([json.loads(l)["decode"] for l in sys.stdin])')"   # the CPU records nothing

# under OMP_WAIT_POLICY=passive a decoded token runs on one thread, and the result says so
out=$(OMP_WAIT_POLICY=passive "$LRSH" --threads 2 -c 'bench generate shape=tiny model=dense n=8 rounds=1' 2>&1)
check_contains bench_generate_passive_threads "$out" "a decoded token ran on 1 thread, the prompt on 2"
out=$(OMP_WAIT_POLICY=passive "$LRSH" --threads 2 --json -c 'bench generate shape=tiny model=dense n=8 rounds=1' 2>/dev/null)
check_eq bench_generate_passive_threads_json 1 "$(printf '%s\n' "$out" | json_field threads)"
# bench generate profile=on: prefill and decode apart; a decoded token's kernels counted per token
out=$(lrsh -c 'bench generate shape=tiny model=factorized n=8 rounds=1 profile=on' 2>/dev/null); rc=$?
check_eq bench_generate_header_after_progress True "$(printf '%s\n' "$out" | python3 -c 'import sys; t = [l[:14] for l in sys.stdin]; h = t.index("shape      mod"); print(all(i < h for i, l in enumerate(t) if l == "bench generate"))')"
check_status bench_generate_profile_status 0 $rc
check_contains bench_generate_profile_title "$out" "profile: prefill of"
check_contains bench_generate_profile_decode "$out" "decode            "
out=$(lrsh --json -c 'bench generate shape=tiny model=dense n=8 rounds=1 profile=on' 2>/dev/null)
check_eq bench_generate_profile_attention '8' "$(printf '%s\n' "$out" | python3 -c '
import json, sys
for line in sys.stdin:
    o = json.loads(line)
    if o.get("command") == "bench generate profile":
        print(sum(r["calls"] for r in o["rows"] if r["phase"] == "decode" and r["kernel"] == "decode_attention") // 2)')"

# a save writes through a symbolic link to its file and keeps that file's permissions; it
# refuses to replace a folder, a pipe or a dangling link
small="model new tiny dim=32 layers=1 heads=2 kv_heads=2 ffn=64 seq=16"
mkdir -p "$TMP/targets/dir" && mkfifo "$TMP/targets/pipe" && ln -s missing "$TMP/targets/dangling"
lrsh -q -c "$small; model save $TMP/targets/real.st" >/dev/null 2>&1
chmod 600 "$TMP/targets/real.st" && ln -s real.st "$TMP/targets/link.st"
before=$(cksum < "$TMP/targets/real.st")
out=$(lrsh -c "$small seed=5; set errexit off; model save $TMP/targets/link.st; model save $TMP/targets/dir; model save $TMP/targets/pipe; model save $TMP/targets/dangling" 2>&1)
check_eq save_link_kept link "$([ -L "$TMP/targets/link.st" ] && echo link || echo replaced)"
check_eq save_through_link 600 "$(stat -c %a "$TMP/targets/real.st")"
check_eq save_through_link_wrote changed "$([ "$(cksum < "$TMP/targets/real.st")" != "$before" ] && echo changed || echo same)"
check_contains save_refuses_folder "$out" "dir: cannot save: it exists and is not a regular file (a folder)"
check_contains save_refuses_pipe "$out" "pipe: cannot save: it exists and is not a regular file (a device, pipe or socket)"
check_eq save_pipe_kept pipe "$([ -p "$TMP/targets/pipe" ] && echo pipe || echo replaced)"
check_contains save_refuses_dangling "$out" "dangling: cannot save: it is a symbolic link to a missing file"
# a link in a loop is said to be one (it was called a link to a missing file), by save and plot
ln -s "$TMP/targets/loop2" "$TMP/targets/loop1"; ln -s "$TMP/targets/loop1" "$TMP/targets/loop2"
out=$(lrsh -c "tok load $TMP/tok.model; data load; $small; set errexit off; model save $TMP/targets/loop1; log $TMP/targets/l.jsonl; train steps=1; plot loss png=$TMP/targets/loop1" 2>&1)
check_contains save_refuses_loop "$out" "loop1: cannot save: it is a symbolic link in a loop (Too many levels of symbolic links)"
check_contains plot_refuses_loop "$out" "loop1 is a symbolic link in a loop"

# NaN in a parameter tensor: the file loads as it is, and says so
lrsh -q -c "$small; model save $TMP/nan.st" >/dev/null 2>&1
# FILE TENSOR INDEX: a NaN over one float of a safetensors file's tensor
poke_nan() {
    python3 - "$1" "$2" "$3" <<'PY'
import json, struct, sys
path, name, index = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(path, 'r+b') as f:
    n = struct.unpack('<Q', f.read(8))[0]
    begin = json.loads(f.read(n))[name]['data_offsets'][0]
    f.seek(8 + n + begin + 4 * index)
    f.write(struct.pack('<f', float('nan')))
PY
}
poke_nan "$TMP/nan.st" embed 5
# a finite dense model whose entries are near float's limit: factorizing it overflowed to ∞ and
# reported a relative error of 0; it is refused, the model kept
lrsh -q -c "model new tiny dim=32 rank=0 seq=16 vocab=512; model save $TMP/huge.st" >/dev/null 2>&1
python3 - "$TMP/huge.st" <<'PY'
import json, struct, sys
with open(sys.argv[1], 'r+b') as f:
    n = struct.unpack('<Q', f.read(8))[0]
    begin = json.loads(f.read(n))['blocks.0.attn.wq']['data_offsets'][0]
    f.seek(8 + n + begin)
    f.write(struct.pack('<4f', 3e38, 3e38, 3e38, 3e38))
PY
out=$(lrsh -c "model load $TMP/huge.st; set errexit off; model factorize rank=2; model info" 2>&1)
check_contains factorize_overflow_refused "$out" "factorizing at rank 2 overflows float"
check_contains factorize_overflow_model_kept "$out" "rank=0"
out=$(lrsh -c "model load $TMP/nan.st" 2>&1); rc=$?
check_status nan_load_status 0 $rc
check_contains nan_load_warns "$out" "warning: 1 parameter value is NaN or infinite (the first in embed)"
out=$(lrsh -c "model load $TMP/real.st" 2>&1)
check_not_contains finite_load_quiet "$out" "NaN or infinite"
# ... and generating from it stops with one error line instead of sampling noise (NaN in the head)
poke_nan "$TMP/nan.st" head 0
out=$(lrsh -c "tok load $TMP/tok.model; model load $TMP/nan.st; generate hello n=3" 2>&1); rc=$?
check_status nan_generate_status 1 $rc
check_contains nan_generate_error "$out" "the next-token logits are not finite (NaN at id 0)"
# ... and training it diverges at its first step: a result whose last-step values are null, not 0
out=$(lrsh --json -c "tok load $TMP/tok.model; model load $TMP/nan.st; data load; train steps=2" 2>/dev/null); rc=$?
check_status nan_train_status 0 $rc
check_eq nan_train_nulls "True 0 None None None None" "$(printf '%s\n' "$out" | grep '"command":"train"' | json_eval '" ".join(str(x) for x in [o["diverged"], o["steps"], o["loss"], o["lr"], o["grad_norm"], o["tok_per_s"]])')"
# a step refused the same way has step's every key, null where no update was taken (it had
# only diverged, diverged_at, step and the reason)
out=$(lrsh --json -c "tok load $TMP/tok.model; model load $TMP/nan.st; data load; step" 2>/dev/null)
check_eq nan_step_keys "True None None adamw []" "$(printf '%s\n' "$out" | grep '"command":"step"' | json_eval '" ".join(str(x) for x in [o["diverged"], o["loss"], o["tok_per_s"], o["optim"], o["matrices"]])')"

# a header other readers read otherwise: a key twice in one object (cJSON kept the first,
# Python's json the last) or a NUL in a name (head\u0000junk loaded as head) — refused; a
# backslash before u0000 (text, not a NUL) is not
lrsh -q -c "$small; model save $TMP/plain.st" >/dev/null 2>&1
python3 - "$TMP/plain.st" "$TMP" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
header, data = raw[8:8 + n].rstrip(b' '), raw[8 + n:]
def write(name, h):
    h += b' ' * (-len(h) % 8)
    open(sys.argv[2] + '/' + name, 'wb').write(struct.pack('<Q', len(h)) + h + data)
write('dupmeta.st', header.replace(b'"__metadata__":{', b'"__metadata__":{"format":"x",', 1))
write('dupdtype.st', header.replace(b'"dtype":"F32"', b'"dtype":"F32","dtype":"I64"', 1))
write('nulname.st', header.replace(b'"head":', b'"head\\u0000junk":', 1))
write('backslash.st', header.replace(b'"__metadata__":{', b'"__metadata__":{"note":"a\\\\u0000b",', 1))
PY
for f in dupmeta dupdtype; do
    out=$(lrsh -c "model load $TMP/$f.st" 2>&1); rc=$?
    check_status "${f}_refused_status" 1 $rc
    check_contains "${f}_refused" "$out" "appears twice in one object"
done
out=$(lrsh -c "model load $TMP/nulname.st" 2>&1); rc=$?
check_status nul_name_refused_status 1 $rc
check_contains nul_name_refused "$out" "malformed JSON header: a NUL character at byte"
out=$(lrsh -c "model load $TMP/backslash.st" 2>&1); rc=$?
check_status backslash_text_loads 0 $rc

# optimizer state no optimizer writes (a negative second moment, NaN in a first moment): left
# out with one warning naming it, and training goes on from fresh moments — it loaded silently,
# and every later `train` diverged and rolled back to it
lrsh -q -c "tok load $TMP/tok.model; data load; $small; train steps=3 batch=2; model save $TMP/state.st" >/dev/null 2>&1
python3 - "$TMP/state.st" <<'PY'
import json, struct, sys
with open(sys.argv[1], 'r+b') as f:
    n = struct.unpack('<Q', f.read(8))[0]
    header = json.loads(f.read(n))
    for name, value in (('optim.v.head', -1.0), ('optim.m.embed', float('nan'))):
        f.seek(8 + n + header[name]['data_offsets'][0] + 4 * 5)
        f.write(struct.pack('<f', value))
PY
out=$(lrsh --json -c "tok load $TMP/tok.model; model load $TMP/state.st; data load; train steps=2 batch=2" 2>"$TMP/state.err"); rc=$?
check_status state_damaged_status 0 $rc
check_contains state_damaged_warns "$(cat "$TMP/state.err")" "the optimizer state holds 2 values no optimizer writes (NaN, infinite or a negative second moment; the first in optim.m.embed): it was left out"
check_eq state_damaged_trains "2 False 5" "$(printf '%s\n' "$out" | grep '"command":"model load"' | json_field state_damaged) $(printf '%s\n' "$out" | grep '"command":"train"' | json_eval '" ".join(str(x) for x in [o["diverged"], o["step"]])')"
check_contains state_damaged_says_rebuilt "$(cat "$TMP/state.err")" "trainer rebuilt: adamw lr=0.001 at step 3 with fresh moments"
check_eq state_damaged_json_no_state false "$(printf '%s\n' "$out" | grep '"command":"model load"' | json_field optimizer_state)"

# A file saved without optimizer state still names its optimizer: loading takes its settings, and
# saving again before any training keeps the step and the settings (the bundled model: spectron,
# step 2500)
out=$(lrsh -c "model load models/default.safetensors; optim; model save $TMP/again.st; model load $TMP/again.st; show" 2>&1)
check_contains progress_optim_taken "$out" "optimizer  spectron lr=0.02"
check_contains progress_load_note "$out" "continues from step 2500 with spectron lr=0.02 and fresh moments"
check_contains progress_saved_step "$out" "saved $TMP/again.st"
check_contains progress_saved_step2 "$out" "step 2500, f32 parameters"
check_not_contains progress_not_zero "$out" "step 0,"
check_contains progress_reloaded "$out" "trainer    not built yet, step 2500"
# without a model, show's next model has the tokenizer's vocabulary, as `model new` builds it
out=$(lrsh -c "tok load $TMP/tok.model; show" 2>&1)
check_contains show_next_vocab "$out" "vocab=512"
# another tokenizer for a model loaded with its own is accepted, with a warning
out=$(lrsh -c "model load models/default.safetensors; tok load $TMP/tok.model" 2>&1)
check_contains tokenizer_mismatch "$out" "note: the model was loaded with another tokenizer"
# ... and `model save` then still embeds the model's own: the file generates what the original does
out=$(lrsh -c "model load models/default.safetensors; tok load $TMP/tok.model; model save $TMP/own-tok.st; tok load $TMP/tok.model" 2>&1)
check_contains tokenizer_own_saved "$out" "tokenizer embedded (the model's own, not the session's)"
a=$(lrsh --json -c "model load models/default.safetensors; generate Why n=12 temp=0" 2>/dev/null | json_field text)
b=$(lrsh --json -c "model load $TMP/own-tok.st; generate Why n=12 temp=0" 2>/dev/null | json_field text)
check_eq tokenizer_own_generates_same "$a" "$b"
out=$(lrsh -c "model load models/default.safetensors; tok load $TMP/tok.model; model load $TMP/own-tok.st; model save $TMP/own-tok2.st" 2>&1)
check_not_contains tokenizer_own_after_reload "$out" "the model's own, not the session's"
# a model made from that one — factorized, averaged, a member taken — reads the same ids: it keeps
# the model's own tokenizer too (a fuzzer found each of them saving the session's instead)
want=$(lrsh --json -c "model load models/default.safetensors; tok encode \"Hello, world\"" 2>/dev/null | json_field ids)
for derive in "model factorize rank=16" "ensemble new 2; ensemble average" "ensemble new 2; ensemble use 1"; do
    name=$(printf '%s' "$derive" | tr -c 'a-z0-9' '_')
    out=$(lrsh -c "model load models/default.safetensors; tok load $TMP/tok.model; $derive; model save $TMP/derived.st" 2>&1)
    check_contains "tokenizer_own_$name" "$out" "tokenizer embedded (the model's own, not the session's)"
    got=$(lrsh --json -c "model load $TMP/derived.st; tok encode \"Hello, world\"" 2>/dev/null | json_field ids)
    check_eq "tokenizer_own_ids_$name" "$want" "$got"
done
# members from seeds= are not that model: they read the session tokenizer's ids, and a member
# taken from them saves the session's tokenizer
out=$(lrsh -c "model load models/default.safetensors; tok load $TMP/tok.model; ensemble new 2 seeds=1,2; ensemble use 1; model save $TMP/seeded.st" 2>&1)
check_contains tokenizer_seeded_member_saved "$out" "tokenizer embedded"
check_not_contains tokenizer_seeded_member_not_own "$out" "the model's own, not the session's"
out=$(lrsh -c "model new tiny; tok load $TMP/tok.model" 2>&1)
check_not_contains tokenizer_fresh_model "$out" "warning: the model was loaded"
out=$(lrsh -c "model load $ck; generate \"The\" n=4 seed=3" 2>&1)
check_contains generate_says_seed "$out" "seed=3 repeats it)"
# decoded text reaches the terminal without its control characters (an escape sequence shows as
# U+FFFD); JSON keeps the text as decoded
esc=$(printf '\033')
ids=$(lrsh --json -c "model load models/default.safetensors; tok encode \"a${esc}[31mb\"" 2>/dev/null | json_field ids | tr -d '[],')
out=$(lrsh -c "model load models/default.safetensors; tok decode $ids; generate \"${esc}x\" n=2 temp=0" 2>&1)
check_not_contains decode_no_escape "$out" "$esc"
check_contains decode_shows_replacement "$out" "a�[31mb"
json=$(lrsh --json -c "model load models/default.safetensors; tok decode $ids" 2>/dev/null | json_field text)
check_eq decode_json_raw '"a\u001b[31mb"' "$json"
# tok decode echoes an out-of-range id as typed; tok train refuses before training what it could not write
out=$(lrsh -c "tok load $TMP/tok.model; tok decode 99999999999999999999" 2>&1)
check_contains decode_huge_id "$out" "id 99999999999999999999 is outside the vocabulary"
out=$(lrsh -c "tok train vocab=512 out=$TMP" 2>&1); rc=$?
check_status tok_train_folder_status 1 $rc
check_contains tok_train_folder "$out" "tok train: cannot write $TMP: it is a folder (nothing was trained)"
out=$(lrsh -c "tok train vocab=512 out=/nonexistent/x.model" 2>&1); rc=$?
check_status tok_train_unwritable_status 1 $rc
check_contains tok_train_unwritable "$out" "cannot write /nonexistent/x.model: No such file or directory (nothing was trained)"
check_not_contains tok_train_unwritable_quick "$out" "training a bpe tokenizer"
# a new model starts from the default optimizer, not the one a loaded checkpoint came with
# (the prompt's bundled model would pick it); one typed with `optim` after the load stays
sp="$TMP/spectron.safetensors"
lrsh -q -c "$prep; optim spectron lr=0.01; train steps=1; model save $sp" >/dev/null 2>&1
out=$(lrsh --json -c "model load $sp; model new tiny seq=64; optim" 2>"$TMP/err")
check_eq new_model_default_optim '"adamw"' "$(printf '%s\n' "$out" | grep '"command":"optim"' | json_field name)"
check_contains new_model_default_optim_note "$(cat "$TMP/err")" "optimizer back to the default adamw lr=0.001: spectron lr=0.01 came with $sp"
out=$(lrsh --json -c "model load $sp; optim muon; model new tiny seq=64; optim" 2>/dev/null)
check_eq new_model_typed_optim '"muon"' "$(printf '%s\n' "$out" | grep '"command":"optim"' | tail -n 1 | json_field name)"
# factorizing makes the model unsaved (`quit` and `model new` at the prompt ask)
out=$(lrsh --json -c "model load $ck; model factorize rank=8; show" 2>/dev/null)
check_eq factorize_unsaved true "$(printf '%s\n' "$out" | grep '"command":"show"' | json_field unsaved)"
# a corpus with Windows line ends: tok train and data load say what '\r' becomes; decoded text
# shows the \r\n line ends as line ends, not U+FFFD
python3 -c 'import sys; open(sys.argv[1], "w", newline="").write("".join("line %d of a windows file\r\n" % i for i in range(3000)))' "$TMP/crlf.txt"
cr=$(printf '\r')
out=$(lrsh -c "tok train $TMP/crlf.txt vocab=300 out=$TMP/crlf.model; data load $TMP/crlf.txt; tok encode \"a${cr}\\nb\"" 2>&1)
check_eq crlf_noted 2 "$(printf '%s\n' "$out" | grep -c "crlf.txt has Windows (CRLF) line endings")"
ids=$(printf '%s\n' "$out" | grep -E '^[0-9 ]+$' | tail -n 1)
out=$(lrsh -c "tok load $TMP/crlf.model; tok decode $ids" 2>&1)
check_eq crlf_decoded_shown "$(printf 'a\r\nb')" "$(printf '%s\n' "$out" | tail -n 2)"
# n= that ends inside a character (byte fallback spells 月 in 3 tokens: a tokenizer trained on
# ASCII) leaves its first bytes out of the text, streamed and in JSON, with a note (it ended in
# U+FFFD); the next token finishes it
python3 -c 'import sys; open(sys.argv[1], "w").write("月が静か。\n" * 3000)' "$TMP/cjk.txt"
cjk="tok load $TMP/crlf.model; data load $TMP/cjk.txt; model new dim=32 layers=1 heads=2 seq=32; optim adamw lr=3e-3; train steps=60"
out=$(lrsh -c "$cjk; generate 月 n=2 temp=0; generate 月 n=3 temp=0" 2>&1)
check_not_contains cut_character_not_shown "$out" "�"
check_contains cut_character_note "$out" "(the text ended inside a character: its first bytes are not shown)"
check_eq cut_character_finished 1 "$(printf '%s\n' "$out" | grep -c '^月が$')"
out=$(lrsh --json -c "$cjk; generate 月 n=2 temp=0" 2>/dev/null | tail -n 1)
check_eq cut_character_json '""' "$(printf '%s\n' "$out" | json_field text)"
# a folder of .txt files says it too (only a file did), counting them, dot files left out, and
# a linked folder's too (data load follows the link)
mkdir -p "$TMP/crlfdir/sub" "$TMP/crlfdir/.hidden" "$TMP/crlflinked"; cp "$TMP/crlf.txt" "$TMP/crlfdir/sub/a.txt"; cp "$TMP/crlf.txt" "$TMP/crlfdir/.hidden/b.txt"
cp "$TMP/crlf.txt" "$TMP/crlflinked/d.txt"; ln -s "$TMP/crlflinked" "$TMP/crlfdir/linked"
printf 'plain\n' > "$TMP/crlfdir/c.txt"
out=$(lrsh -c "tok load $TMP/crlf.model; data load $TMP/crlfdir" 2>&1)
check_contains crlf_folder_noted "$out" "2 of the folder's .txt files have Windows (CRLF) line endings (one: $TMP/crlfdir/linked/d.txt)"
# what a folder's load read and left: files not named *.txt, a folder reached again (a link
# back up), lrsh's own caches not counted; the JSON's files and skipped_files; a token cache
# given as the corpus is named as one
printf 'left out\n' > "$TMP/crlfdir/notes.md"; ln -s .. "$TMP/crlflinked/up"
out=$(lrsh -c "tok load $TMP/crlf.model; data load $TMP/crlfdir/linked; data load $TMP/crlfdir" 2>&1)
check_contains folder_read_note "$out" "read 3 .txt files in sorted path order, a newline between files; left out 1 file not named *.txt (notes.md); 1 link not followed (to a file or folder read by another name, or to the folder or above it)"
check_eq folder_one_file_note 1 "$(printf '%s\n' "$out" | grep -c '^read 1 .txt file; 1 link not followed')"
out=$(lrsh --json -c "tok load $TMP/crlf.model; data load $TMP/crlfdir" 2>/dev/null | grep '"command":"data load"')
check_eq folder_json_files "3 1" "$(printf '%s\n' "$out" | json_field files) $(printf '%s\n' "$out" | json_field skipped_files)"
cache=$(printf '%s\n' "$out" | json_field cache)
out=$(lrsh -c "tok load $TMP/crlf.model; data load $cache" 2>&1)
check_contains data_load_token_cache "$out" "is a token cache (a corpus's tokens, made by \`data load\`): load the corpus it was made from"
out=$(lrsh -c "tok train vocab=512 out=$TMP/lf.model" 2>&1)
check_not_contains lf_not_noted "$out" "CRLF"
# out= writes over a tokenizer only: never the corpus itself, a checkpoint or another file
printf 'some text to keep\nand more\n' > "$TMP/corpus.txt"
cp "$TMP/corpus.txt" "$TMP/keep.txt"
out=$(lrsh -c "tok train $TMP/corpus.txt vocab=300 out=$TMP/corpus.txt" 2>&1); rc=$?
check_status tok_train_over_corpus_status 1 $rc
check_contains tok_train_over_corpus "$out" "is the corpus itself; nothing was trained"
out=$(lrsh -c "tok train vocab=512 out=$TMP/keep.txt; tok train vocab=512 out=$ck" 2>&1)
check_contains tok_train_over_text "$out" "keep.txt exists and is not a tokenizer; nothing was trained"
check_eq tok_train_files_intact yes "$(cmp -s "$TMP/corpus.txt" "$TMP/keep.txt" && echo yes || echo no)"
out=$(lrsh -c "tok train vocab=512 out=$ck" 2>&1)
check_contains tok_train_over_checkpoint "$out" "is not a tokenizer (a checkpoint)"
out=$(lrsh -c "tok load $ck" 2>&1)
check_contains tok_load_checkpoint_hint "$out" "it is a checkpoint: \`model load\` brings the tokenizer embedded in it"

finish
