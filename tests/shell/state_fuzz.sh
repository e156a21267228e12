# state_fuzz.sh — fixed seeds of random sequences of real commands (tiny models, tiny data:
# model new/load/save/factorize, train, step, eval, generate, tok train/load, data load, ensemble
# new/wash/train/average/use, spectrum, inspect, plot, runs, files truncated or deleted between
# commands), each run by one `lrsh --json` fed command by command, with `show` and `norms` after
# every command. Per sequence, named checks:
#   exit_normally       lrsh exits by itself (no signal, no timeout)
#   no_sanitizer_report nothing from ASan/UBSan (or an assert) on stderr
#   errors_one_line     every error is one non-empty line
#   state_after_failure a command that fails leaves `show` (model, step, data, tokenizer,
#                       optimizer, settings…) and the weights' norms as they were
#   saves_own_tokenizer a save after `tok load` of another tokenizer and a command that derives a
#                       model from the current one (model factorize, ensemble average, ensemble use)
#                       embeds the model's own tokenizer: loaded back, it encodes as that one did
#   no_temp_files       nothing temporary-looking is left in the work folder (or $TMPDIR)
# Every few sequences carry targeted chunks (the tokenizer one above; an ensemble's
# `train eval_every=N` with an empty validation split must fail before it trains) among random
# ones (a train that should fail and did not is a state_after_failure). A failing sequence prints
# its seed and commands; LRSH_STATE_FUZZ_SEQS=N runs N sequences
# (default 60: about 10 s on 2 cores, 16 s under AddressSanitizer), LRSH_STATE_FUZZ_FIRST=S starts at
# seed S (`LRSH_STATE_FUZZ_SEQS=1 LRSH_STATE_FUZZ_FIRST=S` replays one), LRSH_STATE_FUZZ_VERBOSE=1
# prints each sequence's time.
. tests/shell/testlib

REPO=$(pwd)
case "$LRSH" in /*) ;; *) LRSH="$REPO/$LRSH" ;; esac
SEQS=${LRSH_STATE_FUZZ_SEQS:-60}
FIRST=${LRSH_STATE_FUZZ_FIRST:-1}
export OMP_WAIT_POLICY=passive TMPDIR="$TMP/tmpdir"
mkdir -p "$TMP/fix" "$TMPDIR"
cd "$TMP/fix" || exit 1

# fixtures: two corpora cut from README.md, two tokenizers (BPE and unigram: they encode the same
# text differently), a saved checkpoint
cp "$REPO/README.md" c1.txt
head -n 80 "$REPO/README.md" >c2.txt
printf 'x\n' >one.txt
: >empty.txt
"$LRSH" --threads 1 -q -c "tok train c1.txt vocab=400 out=t1.model; tok train c1.txt vocab=500 type=unigram out=t2.model; tok load t1.model; data load c1.txt; model new dim=16 layers=1 heads=2 ffn=32 seq=16 rank=4; train steps=2 batch=2; model save ck_a.safetensors" >"$TMP/prep.log" 2>&1
check_status fixtures 0 $?
rm -f ./*.tok   # token caches: each sequence builds its own

cat >"$TMP/sf.py" <<'PY'
import json, os, random, re, select, shutil, subprocess, sys, time
lrsh, fix, work, first, count, tmpdir = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
CMD_TIMEOUT = 120 if os.environ.get("SF_ASAN") else 60

def opt(rng, p, key, vals): return " %s=%s" % (key, rng.choice(vals)) if rng.random() < p else ""
OUTS = ["s1", "s2", "s3"]
PROBE = '"the model trains"'

def g_model_new(rng):
    if rng.random() < 0.7:
        s = "model new dim=16 heads=2 layers=%d ffn=32 seq=%d" % (rng.choice([1, 2]), rng.choice([8, 16]))
        return s + opt(rng, 0.6, "rank", [-1, 0, 2, 4]) + opt(rng, 0.2, "kv_heads", [1, 2])
    s = "model new dim=%d heads=%d layers=%d ffn=%d seq=%d" % (rng.choice([8, 6, 2]), rng.choice([1, 2, 3]),
        rng.choice([1, 2]), rng.choice([8, 1]), rng.choice([4, 1]))
    return s + opt(rng, 0.4, "rank", [-1, 3, 100]) + opt(rng, 0.3, "vocab", [64, 2, 399, 400])

def g_optim(rng):
    return ("optim" + (" " + rng.choice(["adamw", "muon", "spectron", "sgd", "renorm", "nosuch"]) if rng.random() < 0.8 else "")
            + opt(rng, 0.4, "lr", ["1e-3", "0.02", "0", "-1", "1e9"]) + opt(rng, 0.2, "warmup", [0, 1]) + opt(rng, 0.2, "wd", [0, 5]))

def g_train(rng):
    return ("train steps=%d" % rng.choice([1, 2, 3]) + opt(rng, 0.8, "batch", [1, 2]) + opt(rng, 0.2, "accum", [1, 2])
            + opt(rng, 0.2, "seq", [4, 100]) + opt(rng, 0.2, "eval_every", [0, 1, 2]) + opt(rng, 0.15, "eval_batches", [1, 2]))

def g_cmd(rng):
    table = [
        (6, lambda: g_model_new(rng)), (2, lambda: "model info"),
        (4, lambda: "model save %s.safetensors" % rng.choice(OUTS) + opt(rng, 0.3, "dtype", ["f32", "bf16", "f8"]) + opt(rng, 0.2, "optim", ["on", "off"])),
        (5, lambda: "model load %s.safetensors" % rng.choice(OUTS + ["ck_a", "nope", "c1"])),
        (3, lambda: "model factorize rank=%d" % rng.choice([0, 1, 2, 4, 1000])),
        (3, lambda: g_optim(rng)), (7, lambda: g_train(rng)),
        (3, lambda: "step" + opt(rng, 0.8, "batch", [1, 2]) + opt(rng, 0.2, "seq", [2, 4])),
        (3, lambda: "eval batches=1" + opt(rng, 0.5, "batch", [1, 2]) + opt(rng, 0.2, "seq", [3, 50])),
        (3, lambda: "generate" + rng.choice([' "the cat"', ' ""', "", " the"]) + " n=%d" % rng.choice([1, 4])
            + opt(rng, 0.4, "temp", [0, 0.8]) + opt(rng, 0.3, "top_k", [0, 5]) + opt(rng, 0.2, "top_p", [0.5, 2])),
        (2, lambda: "tok train %s" % rng.choice(["c2.txt vocab=400", "c1.txt vocab=300", "empty.txt vocab=400", "one.txt vocab=300"])
            + opt(rng, 0.3, "type", ["bpe", "unigram"]) + opt(rng, 0.8, "out", ["new.model", "t1.model", "ck_a.safetensors"])),
        (4, lambda: "tok load " + rng.choice(["t1.model", "t2.model", "new.model", "c1.txt", "nope.model"])),
        (2, lambda: "tok encode " + rng.choice(['"the cat"', "x", '""'])),
        (1, lambda: "tok decode " + rng.choice(["1 2 3", "-1", "99999", "abc"])),
        (4, lambda: "data load " + rng.choice(["c1.txt", "c2.txt", "one.txt", "empty.txt", "nope.txt"]) + opt(rng, 0.4, "val", [0, 0.1, 0.5, 2])),
        (2, lambda: "inspect" + opt(rng, 0.3, "sort", ["rho", "name", "nosuch"])),
        (2, lambda: "spectrum " + rng.choice(["blocks.0.attn.wq", "blocks.0.mlp.w2", "embed", "nosuch"]) + opt(rng, 0.4, "compare", [0, 1, 2])),
        (1, lambda: "norms"),
        (2, lambda: "align against=" + rng.choice(["microbatch", "delayed", "members", "nosuch"]) + " batch=1"),
        (4, lambda: "ensemble new %d" % rng.choice([2, 2, 3, 0]) + opt(rng, 0.2, "seeds", ["1,2", "5"])),
        (2, lambda: rng.choice(["ensemble wash p=0.1", "ensemble wash p=2", "ensemble papa alpha=0.5", "ensemble off"])),
        (2, lambda: "ensemble eval batches=1 batch=1"),
        (2, lambda: "ensemble average" + opt(rng, 0.5, "mode", ["product", "factors", "x"])),
        (2, lambda: "ensemble use %d" % rng.choice([0, 1, 5])),
        (2, lambda: "plot " + rng.choice(["loss", "lr", "val", "nosuch"]) + opt(rng, 0.2, "png", ["p.png"])),
        (1, lambda: "run " + rng.choice(["a", "b", '"x y"'])), (1, lambda: "runs"),
        (1, lambda: "log " + rng.choice(["l.jsonl", "off", "ck_a.safetensors"])),
        (3, lambda: "set " + rng.choice(["seed 5", "batch 2", "batch 0", "accum 2", "seq 4", "seq 0", "seq 100000",
                                         "precision bf16", "precision fp32", "precision x", "quiet on", "quiet off"])),
        (1, lambda: "show"),
    ]
    x = rng.uniform(0, sum(w for w, _ in table))
    for w, f in table:
        x -= w
        if x <= 0: return f()
    return "show"

def own_tok_chunk(rng, derive=None):
    """The model trained with tokenizer A; `tok load B`; a derived model; save; load: it encodes as A."""
    a, b = rng.choice([("t1.model", "t2.model"), ("t2.model", "t1.model")])
    derive = derive or rng.choice(["factorize", "average", "average_factors", "use"])
    out = "own.safetensors"   # no other command writes it
    r = [("cmd", "tok load " + a), ("cmd", "data load c1.txt"), ("cmd", "model new dim=16 layers=1 heads=2 ffn=32 seq=8 rank=4"),
         ("cmd", "train steps=1 batch=1"), ("own", PROBE)]
    if derive != "factorize":
        r += [("cmd", "ensemble new 2"), ("cmd", "train steps=1 batch=1")]
    r += [("cmd", "tok load " + b), ("other", PROBE)]
    r.append(("cmd", {"factorize": "model factorize rank=2", "average": "ensemble average",
                      "average_factors": "ensemble average mode=factors", "use": "ensemble use 1"}[derive]))
    r += [("cmd", "model save " + out), ("check_own", out)]
    return r

def eval_every_chunk(rng):
    """An ensemble's train eval_every=N with an empty validation split fails before any step."""
    return [("cmd", "tok load t1.model"), ("cmd", "data load c1.txt val=0"), ("cmd", "model new dim=16 layers=1 heads=2 ffn=32 seq=8 rank=2"),
            ("cmd", "ensemble new %d" % rng.choice([2, 3]))] + ([("cmd", "ensemble wash p=0.1")] if rng.random() < 0.5 else []) + \
           [("cmd", "train steps=%d batch=1 eval_every=%d" % rng.choice([(2, 1), (3, 2), (1, 1)])), ("expect_fail", "train"),
            ("cmd", rng.choice(["show", "ensemble eval batches=1 batch=1", "ensemble average"]))]

def chunk(rng):
    k = rng.randrange(6)
    out = rng.choice(OUTS) + ".safetensors"
    if k == 0: return own_tok_chunk(rng)
    if k == 1: return eval_every_chunk(rng)
    if k == 2:   # ensemble life cycle
        r = [("cmd", "ensemble new %d" % rng.choice([2, 3]))]
        if rng.random() < 0.5: r.append(("cmd", rng.choice(["ensemble wash p=0.1", "ensemble papa alpha=0.5"])))
        r += [("cmd", g_train(rng)), ("cmd", "model save " + out), ("cmd", "model load " + out),
              ("cmd", rng.choice(["ensemble average", "ensemble use 1", "ensemble use 0", "model factorize rank=1"])), ("cmd", g_train(rng))]
        return r
    if k == 3:   # save, damage, load
        return [("cmd", "model save " + out), ("fs", rng.choice(["truncate", "delete", "overwrite", "zero"]), out, rng.randrange(1 << 30)),
                ("cmd", "model load " + out), ("cmd", g_train(rng))]
    if k == 4:   # factorize chains
        return [("cmd", "model factorize rank=%d" % rng.choice([1, 2, 0])), ("cmd", rng.choice(["step batch=1", g_train(rng), "spectrum blocks.0.attn.wq compare=0"])),
                ("cmd", "model factorize rank=%d" % rng.choice([0, 1, 3]))]
    return [("cmd", rng.choice(["optim adamw lr=10 warmup=0 clip=0", "optim sgd lr=10 warmup=0 clip=0"])),   # divergence
            ("cmd", "train steps=4 batch=2"), ("cmd", rng.choice(["step batch=1", "eval batches=1", "generate n=3 temp=0", "model save " + out]))]

def gen_sequence(seed):
    rng = random.Random(seed)
    seq = []
    if seed % 4 == 1: seq += own_tok_chunk(rng, ["factorize", "average", "use", "average_factors"][(seed // 4) % 4])
    if seed % 4 == 3: seq += eval_every_chunk(rng)
    if rng.random() < 0.85:
        seq += [("cmd", "tok load " + rng.choice(["t1.model", "t2.model"])), ("cmd", "data load " + rng.choice(["c1.txt", "c2.txt"])),
                ("cmd", g_model_new(rng))]
        if rng.random() < 0.5: seq.append(("cmd", "train steps=2 batch=2"))
    n = len(seq) + rng.randint(20, 45)
    while len(seq) < n:
        x = rng.random()
        if x < 0.05: seq.append(("fs", rng.choice(["truncate", "delete", "overwrite", "zero"]), rng.choice(OUTS) + ".safetensors", rng.randrange(1 << 30)))
        elif x < 0.2: seq += chunk(rng)
        else: seq.append(("cmd", g_cmd(rng)))
    return seq

def fs_op(d, op, name, seed):
    rng = random.Random(seed); p = os.path.join(d, name)
    if op == "truncate" and os.path.isfile(p): os.truncate(p, rng.randrange(max(1, os.path.getsize(p))))
    elif op == "delete" and os.path.lexists(p): os.unlink(p)
    elif op == "overwrite": open(p, "wb").write(bytes(rng.randrange(256) for _ in range(rng.randrange(4000))))
    elif op == "zero": open(p, "wb").close()

SAN = re.compile(r"AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:|SUMMARY: |Assertion .* failed|internal error|double free|Segmentation")

class Driver:
    def __init__(self, d):
        self.errf = open(os.path.join(work, "stderr.txt"), "wb")
        self.p = subprocess.Popen([lrsh, "--threads", "1", "--json"], cwd=d, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errf)
        self.buf, self.k = b"", 0

    def send(self, line):
        """Runs one command; returns (its JSON objects, the show after it with the norms as "_norms")."""
        self.k += 1; mark = "__sync_%d" % self.k
        try:
            self.p.stdin.write((line + "\nshow\nnorms io=on\n" + mark + "\n").encode()); self.p.stdin.flush()
        except BrokenPipeError:
            raise EOFError
        objs, deadline = [], time.time() + CMD_TIMEOUT
        while True:
            while b"\n" not in self.buf:
                left = deadline - time.time()
                if left <= 0: raise TimeoutError
                if not select.select([self.p.stdout], [], [], left)[0]: continue
                data = os.read(self.p.stdout.fileno(), 65536)
                if not data: raise EOFError
                self.buf += data
            l, self.buf = self.buf.split(b"\n", 1)
            try: o = json.loads(l)
            except Exception: o = {"_raw": l.decode("utf-8", "replace")}
            if o.get("command") == mark: break   # the unknown command's error names it
            objs.append(o)
        shows = [i for i, o in enumerate(objs) if o.get("command") == "show"]
        if not shows: return objs, None
        show = {k: v for k, v in objs[shows[-1]].items() if k not in ("ok", "command", "backend")}
        norms = objs[shows[-1] + 1:]
        show["_norms"] = [(o.get("matrices") if o.get("ok") else o.get("error")) for o in norms] if not any(
            "ensemble" in w for o in norms for w in (o.get("warnings") or [])) else "ensemble"
        return objs[:shows[-1]], show

    def close(self):
        try: self.p.stdin.close()
        except Exception: pass
        try: rc = self.p.wait(CMD_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.p.kill(); self.p.wait(); rc = "timeout"
        self.errf.close()
        return rc

def run(seed):
    seq = gen_sequence(seed)
    d = os.path.join(work, "seq%d" % seed)
    shutil.copytree(fix, d)
    probs = {k: [] for k in ("exit_normally", "no_sanitizer_report", "errors_one_line", "state_after_failure", "saves_own_tokenizer", "no_temp_files")}
    drv = Driver(d)
    own = other = last_ok = last_err = None
    try:
        _, show = drv.send("set errexit off")
        for s in seq:
            if s[0] == "fs": fs_op(d, *s[1:]); continue
            if s[0] in ("own", "other"):
                objs, show = drv.send("tok encode " + s[1])
                ids = objs[-1].get("ids") if objs else None
                if s[0] == "own": own = ids
                else: other = ids
                continue
            if s[0] == "check_own":
                if last_ok is not True:
                    probs["saves_own_tokenizer"].append("model save %s failed: %s" % (s[1], last_err)); continue
                objs, show = drv.send("model load " + s[1])
                ok = bool(objs) and objs[-1].get("ok") is True
                objs2, show = drv.send("tok encode " + PROBE)
                ids = objs2[-1].get("ids") if objs2 else None
                if not (ok and own and own != other and ids == own):
                    probs["saves_own_tokenizer"].append("load %s: %s; the model's own tokenizer encodes %s, the other %s, the file's %s"
                                                        % (s[1], "ok" if ok else objs and objs[-1].get("error"), own, other, ids))
                continue
            if s[0] == "expect_fail":
                if last_ok is not False: probs["state_after_failure"].append("%r: expected to fail, got ok" % s[1])
                continue
            line = s[1]
            before = show
            objs, show = drv.send(line)
            if show is None:
                probs["exit_normally"].append("no `show` answered after %r: %s" % (line, str(objs)[:300])); break
            for o in objs:
                if "_raw" in o and o["_raw"].strip(): probs["errors_one_line"].append("%r wrote a non-JSON line: %r" % (line, o["_raw"][:200]))
                if o.get("ok") is False:
                    e = str(o.get("error") or "")
                    if not e.strip() or "\n" in e: probs["errors_one_line"].append("%r: error %r" % (line, e[:300]))
            last_ok, last_err = (objs[-1].get("ok"), objs[-1].get("error")) if objs else (None, None)
            if objs and all(o.get("ok") is False for o in objs):
                diff = {k: (before.get(k), show.get(k)) for k in set(before) | set(show) if before.get(k) != show.get(k)}
                if diff:
                    probs["state_after_failure"].append("%r failed (%s) but changed %s" % (line, objs[-1].get("error"), json.dumps(diff)[:600]))
    except TimeoutError:
        probs["exit_normally"].append("a command took over %d s" % CMD_TIMEOUT)
        drv.p.kill()
    except EOFError:
        pass
    rc = drv.close()
    if rc == "timeout" or rc != 0 and rc != 1: probs["exit_normally"].append("exit status %s" % rc)   # 1: errexit off still reports
    err = open(os.path.join(work, "stderr.txt"), "rb").read().decode("utf-8", "replace")
    san = [l for l in err.splitlines() if SAN.search(l)]
    if san: probs["no_sanitizer_report"].append(" | ".join(san[:4])[:600])
    for top in (d, tmpdir):
        for root, dirs, files in os.walk(top):
            for f in files + dirs:
                if re.search(r"\.tmp|^tmp|~$|\.part$|XXXXXX|^lrsh-", f) or f.startswith("."):
                    probs["no_temp_files"].append("left behind " + os.path.join(root, f))
    shutil.rmtree(d, ignore_errors=True)
    return seq, probs

def show_step(s):
    if s[0] == "cmd": return s[1]
    if s[0] == "fs": return "# (file: %s %s, seed %d)" % s[1:]
    if s[0] == "own": return "tok encode %s   # (the model's own tokenizer)" % s[1]
    if s[0] == "other": return "tok encode %s   # (the other one)" % s[1]
    if s[0] == "check_own": return "model load %s; tok encode %s   # (must encode as the model's own)" % (s[1], PROBE)
    return "# (%s must fail)" % s[1]

for seed in range(first, first + count):
    t0 = time.time()
    seq, probs = run(seed)
    bad = False
    for name, msgs in probs.items():
        if name == "saves_own_tokenizer" and not any(s[0] == "check_own" for s in seq): continue
        print("%s\tseq%d_%s\t%s" % ("FAIL" if msgs else "ok", seed, name, " / ".join(msgs)[:1500]), flush=True)
        bad = bad or bool(msgs)
    if bad:
        print("REPLAY\t# seed %d (LRSH_STATE_FUZZ_SEQS=1 LRSH_STATE_FUZZ_FIRST=%d), in a folder with the fixtures, `lrsh --json` reading:" % (seed, seed))
        print("REPLAY\tset errexit off")
        for s in seq: print("REPLAY\t" + show_step(s))
    print("TIME\t# seed %d: %d commands, %.1f s" % (seed, sum(1 for s in seq if s[0] == "cmd"), time.time() - t0), flush=True)
PY

start=$(date +%s)
if lrsh_has_asan; then export SF_ASAN=1; fi
mkdir -p "$TMP/work"
python3 "$TMP/sf.py" "$LRSH" "$TMP/fix" "$TMP/work" "$FIRST" "$SEQS" "$TMPDIR" >"$TMP/results" 2>&1
check_status driver_ran 0 $?
while IFS="$(printf '\t')" read -r what name msg; do
    case "$what" in
        ok) ok "$name" ;;
        FAIL) fail "$name" "$msg" ;;
        REPLAY) printf '%s\n' "$name" ;;
        TIME) [ -n "$LRSH_STATE_FUZZ_VERBOSE" ] && printf '%s\n' "$name" ;;
        *) printf '%s %s %s\n' "$what" "$name" "$msg" ;;   # a Python traceback
    esac
done <"$TMP/results"
echo "# $SEQS sequences (seeds $FIRST..$((FIRST + SEQS - 1))) in $(($(date +%s) - start)) s"
finish
