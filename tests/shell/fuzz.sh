# fuzz.sh — the parser and dispatch against at least 100 000 random and mutated command lines:
# very long lines, binary bytes, unbalanced quotes, huge numbers, many `;`, `key=` with odd
# values, and valid commands (built from every command's options as `help --json` lists them)
# mutated. Each of a few lrsh processes reads its share from a pipe with `set errexit off`;
# each must read every line (a last `help exit` shows it got there), exit normally (status
# < 128, no timeout) and print no sanitizer report.
#
# Commands that would do real work (build or load a model, train, generate, bench, write files)
# or change how the stream runs (quit, errexit, threads, device) are dropped from the lines
# after a Python copy of the scanner in repl/parse.c splits them. Half the processes start
# with no model, so the model commands fail fast after their arguments are checked; the other
# half start with a tiny model, so inspection commands run on it.
# LRSH_FUZZ_LINES sets the total (default 100 000).
. tests/shell/testlib

LINES_TOTAL=${LRSH_FUZZ_LINES:-100000}
PROCS=4
cd "$TMP" || exit 1
case "$LRSH" in /*) ;; *) LRSH="$OLDPWD/$LRSH" ;; esac

# What the command table offers: [[name, [option name, type]...]...]
"$LRSH" --json -c help 2>/dev/null | python3 -c '
import json, subprocess, sys
lrsh, table = sys.argv[1], []
for c in json.loads(sys.stdin.readline())["commands"]:
    out = subprocess.run([lrsh, "--json", "-c", "help " + c["name"]], capture_output=True, text=True).stdout
    try: o = json.loads(out.strip().splitlines()[-1])
    except Exception: o = {}
    table.append([c["name"], [[x.get("name", "x"), x.get("type", "")] for x in o.get("options", []) if isinstance(x, dict)]])
json.dump(table, open("table.json", "w"))' "$LRSH"
check_eq command_table yes "$(python3 -c 'import json; print("yes" if len(json.load(open("table.json"))) >= 30 else "no")')"

cat >gen.py <<'PY'
import json, random, sys
seed, count, with_model = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "model"
rng = random.Random(seed)
table = json.load(open("table.json"))

def words_of(line):
    """repl/parse.c's scanner: the commands of a line as lists of words (None: a quote left open)."""
    cmds, cur, word, in_word, i = [], [], [], False, 0
    while True:
        c = line[i] if i < len(line) else ""
        if c in ("", ";") or (c == "#" and not in_word):
            if in_word: cur.append("".join(word)); word, in_word = [], False
            if cur: cmds.append(cur)
            cur = []
            if c != ";": return cmds
            i += 1
        elif c.isspace() and c in " \t\n\v\f\r":
            if in_word: cur.append("".join(word)); word, in_word = [], False
            i += 1
        elif c in "\"'":
            in_word, i = True, i + 1
            while i < len(line) and line[i] != c:
                if c == '"' and line[i] == "\\" and i + 1 < len(line):
                    i += 1
                    word.append({"n": "\n", "t": "\t", '"': '"', "\\": "\\"}.get(line[i], "\\" + line[i]))
                else:
                    word.append(line[i])
                i += 1
            if i >= len(line): return None
            i += 1
        else:
            in_word = True
            if c == "\\" and i + 1 < len(line): i += 1
            word.append(line[i]); i += 1

HEAVY = {"bench", "quit", "exit", "log"}                     # real work, leaving, writing files
HEAVY_SUB = {("model", "new"), ("model", "load"), ("tok", "train"), ("set", "errexit"), ("set", "threads"),
             ("set", "device")}
if with_model:  # with a model these would train, generate or save for real
    HEAVY |= {"train", "step", "eval", "generate", "align", "ensemble"}
    HEAVY_SUB |= {("model", "save"), ("model", "factorize"), ("data", "load"), ("tok", "load")}

def allowed(line):
    cmds = words_of(line)
    if cmds is None: return True                      # an open quote: the whole line is refused
    for w in cmds:
        if w[0] in HEAVY or (len(w) > 1 and (w[0], w[1]) in HEAVY_SUB): return False
        if any("errexit" in x for x in w): return False
    return True

NUMBERS = ["0", "-0", "1", "-1", "2147483647", "2147483648", "-2147483649", "9223372036854775807",
           "18446744073709551616", "9" * 400, "1e308", "1e309", "-1e309", "1e-400", "nan", "NaN", "inf", "-inf",
           "0x10", "1.5", "1,5", "1e", "e5", ".", "-", "+", "3.4e38", "0.0000001", "1" + "0" * 40]
ODD = ["", "=", "==", "'", '"', "\\", "\\\\", ";", "#", "a b", "on", "off", "yes", "maybe", "☃", "\x01\x02",
       "../../etc/passwd", "~", "~/", "/nonexistent/x", "%s%n%x", "a" * 300, "\t", "é" * 50]
WORDS = ["tiny", "small", "base", "adamw", "muon", "spectron", "sgd", "renorm", "ortho", "loss", "lr", "gnorm",
         "blocks.0.attn.wq", "blocks.0.attn.wq.A", "blocks.1.mlp.w2", "embed", "head", "seed", "batch", "json",
         "quiet", "off", "on", "x", "0", "1"]

def value(kind):
    r = rng.random()
    if r < 0.45: return rng.choice(NUMBERS)
    if r < 0.8: return rng.choice(ODD + WORDS)
    return "".join(chr(rng.randrange(1, 0x300)) for _ in range(rng.randrange(0, 12)))

def valid():
    name, opts = rng.choice(table)
    words = name.split()
    for _ in range(rng.randrange(0, 3)): words.append(rng.choice(WORDS + NUMBERS))
    for o, kind in rng.sample(opts, min(len(opts), rng.randrange(0, 4))):
        words.append("%s=%s" % (o, value(kind)))
    return " ".join(words)

def mutate(s):
    s = list(s)
    for _ in range(rng.randrange(1, 6)):
        op, at = rng.randrange(7), rng.randrange(len(s) + 1)
        if op == 0 and s: del s[min(at, len(s) - 1)]
        elif op == 1: s.insert(at, chr(rng.randrange(1, 256)))
        elif op == 2: s.insert(at, rng.choice(['"', "'", ";", "=", "#", "\\", " ", "\t"]))
        elif op == 3: s[at:at] = list(rng.choice(NUMBERS))
        elif op == 4 and s: s[at:at] = s[rng.randrange(len(s)):][:rng.randrange(1, 30)]
        elif op == 5: s[at:at] = list(" %s=%s" % (rng.choice(["steps", "n", "k", "rank", "p", "x", ""]), rng.choice(ODD)))
        elif op == 6 and s: s[min(at, len(s) - 1)] = chr(rng.randrange(0x80, 0x800))
    return "".join(s)

def random_line():
    r = rng.random()
    if r < 0.3: return "".join(chr(rng.randrange(1, 256)) for _ in range(rng.randrange(0, 200)))
    if r < 0.5: return "".join(rng.choice(' ";\'=#\\abc0123456789.-e') for _ in range(rng.randrange(0, 80)))
    if r < 0.7: return ";" * rng.randrange(1, 2000)
    if r < 0.85: return rng.choice(["\"", "'", "show \"", "help '", "set seed \"1", "tok encode \"abc\\\"", "\"\"\"", "'\"'\""])
    return "; ".join(valid() for _ in range(rng.randrange(2, 40)))

def long_line():
    n = rng.choice([4096, 65536, 1 << 20])
    kind = rng.randrange(5)
    if kind == 0: return "x" * n
    if kind == 1: return "set seed " + "9" * n
    if kind == 2: return "help " + "a " * (n // 2)
    if kind == 3: return "run \"" + "q" * n          # unterminated
    return "show" + "; set batch 2" * (n // 13)

out = sys.stdout.buffer
made = 0
while made < count:
    r = rng.random()
    if r < 0.001: line = long_line()  # safe as built, and too long to scan here quickly
    else:
        line = valid() if r < 0.35 else mutate(valid()) if r < 0.75 else random_line()
        line = line.replace("\n", " ").replace("\r", " ")
        if not allowed(line): continue
    # characters below 256 go out as single bytes (binary, invalid UTF-8), the rest as UTF-8
    try: data = line.encode("latin-1")
    except UnicodeEncodeError:
        data = b"".join(bytes((ord(ch),)) if ord(ch) < 256 else ch.encode("utf-8") for ch in line)
    out.write(data + b"\n")
    made += 1
out.write(b"set json off\nset quiet off\nhelp exit\n")
PY

"$LRSH" -q -c "tok train vocab=512 out=$TMP/tok.model" >prep.log 2>&1 || fail prep "$(cat prep.log)"
per=$(( (LINES_TOTAL + PROCS - 1) / PROCS ))
i=0
while [ $i -lt $PROCS ]; do
    if [ $((i % 2)) -eq 0 ]; then kind=none; first="set errexit off"
    else kind=model; first="set errexit off; tok load $TMP/tok.model; model new tiny dim=32 layers=1 heads=2 kv_heads=2 ffn=64 seq=16 rank=8"; fi
    {
        { echo "$first"; python3 gen.py $((1000 + i)) $per $kind; } |
            timeout 600 "$LRSH" --threads 1 -q >out.$i 2>&1
        echo $? >status.$i
    } &
    i=$((i + 1))
    # two at a time: the machine may have two cores
    [ $((i % 2)) -eq 0 ] && wait
done
wait

i=0
while [ $i -lt $PROCS ]; do
    st=$(cat status.$i)
    kind=$([ $((i % 2)) -eq 0 ] && echo no_model || echo tiny_model)
    check_eq "fuzz_${i}_${kind}_exit_normally" yes "$([ "$st" -lt 124 ] && echo yes || echo "no (status $st)")"
    report=$(grep -a -m 3 -E 'Sanitizer|runtime error:|out of memory' out.$i | cut -c1-200)
    check_eq "fuzz_${i}_${kind}_no_sanitizer_report" "" "$report"
    check_eq "fuzz_${i}_${kind}_read_every_line" yes "$(grep -a -q 'usage: exit' out.$i && echo yes || echo no)"
    i=$((i + 1))
done
echo "# $((per * PROCS)) generated lines in $PROCS processes"

finish
