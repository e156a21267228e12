# help_examples.sh — every command listed by `help` has a help text with examples, and every
# example line runs: in a prepared session (tokenizer of vocab 512, the default corpus loaded, a
# tiny model that took two steps) and a folder holding the files the examples name. Each
# example must succeed, or fail with the clean error listed for it below; none may crash (exit
# status ≥ 128), hang, or make a sanitizer speak.
#
# Examples run as written except for sizes, scaled down so the whole set stays quick (under the
# sanitizers too): steps= → 2, batches= → 1, eval_every= → 1, batch= → 1, n= → 16, draws= → 2.
. tests/shell/testlib

case "$LRSH" in /*) ;; *) LRSH="$PWD/$LRSH" ;; esac   # the examples run in their own folder
lrsh() { "$LRSH" --threads 1 "$@"; }   # tiny models: one thread is fastest

export HOME="$TMP/home"                # history stays in here
W="$TMP/work"
mkdir -p "$HOME/.cache/lrsh" "$W/books"
cd "$W" || exit 1

# ---- the session and files the examples expect
lrsh -q -c "tok train vocab=512 out=$W/tok.model; data load" >"$TMP/setup.log" 2>&1 || fail setup_tokenizer "$(cat "$TMP/setup.log")"
prep="tok load $W/tok.model; data load; set batch 1; model new tiny seq=32; train steps=2 eval_every=2 eval_batches=1 diag_every=1"
lrsh -q -c "$prep; model save run1.safetensors; log run1.jsonl; train steps=2" >"$TMP/setup.log" 2>&1 || fail setup_files "$(cat "$TMP/setup.log")"
corpus="$XDG_CACHE_HOME/lrsh/fortunes.txt"
head -c 400000 "$corpus" >notes.txt
head -c 100000 "$corpus" >books/a.txt
tail -c 100000 "$corpus" >books/b.txt
cp tok.model notes.model   # `tok load notes.model`

# ---- every command's help, and its example lines: "COMMAND<TAB>EXAMPLE" per line
lrsh --json -c help 2>/dev/null | python3 -c '
import json, subprocess, sys
lrsh = sys.argv[1]
listing = json.loads(sys.stdin.readline())
for c in listing["commands"]:
    name = c["name"]
    out = subprocess.run([lrsh, "--json", "-c", "help " + name], capture_output=True, text=True).stdout
    try:
        text = json.loads(out.strip().splitlines()[-1])["help"]
    except Exception:
        print("%s\t" % name); continue
    examples, inside = [], False
    for line in text.split("\n"):
        if line.startswith("Example"): inside = True; continue
        if inside and line.startswith("  ") and line.strip(): examples.append(line.strip())
        elif inside: inside = False
    if not examples: print("%s\t" % name)
    for e in examples: print("%s\t%s" % (name, e))
' "$LRSH" >"$TMP/examples.tsv"

n_commands=$(cut -f1 "$TMP/examples.tsv" | sort -u | wc -l)
[ "$n_commands" -ge 30 ] && ok "help_lists_commands ($n_commands)" || fail help_lists_commands "only $n_commands commands in \`help\`"
missing=$(awk -F'\t' '$2 == "" { print $1 }' "$TMP/examples.tsv" | tr '\n' ' ')
check_eq every_command_has_examples "" "$missing"

# The clean errors some examples end in, here: "EXAMPLE<TAB>what the message says".
expected_errors() {
    printf '%s\t%s\n' \
        "plot loss png=loss.png" "gnuplot, which is not installed"
}

scale() {
    sed -E 's/(^|[ ;])steps=[0-9]+/\1steps=2/g; s/(^|[ ;])batches=[0-9]+/\1batches=1/g;
            s/(^|[ ;])eval_every=[0-9]+/\1eval_every=1/g; s/(^|[ ;])batch=[0-9]+/\1batch=1/g;
            s/(^|[ ;])n=[0-9]+/\1n=16/g; s/(^|[ ;])draws=[0-9]+/\1draws=2/g'
}

i=0
while IFS="$(printf '\t')" read -r cmd example; do
    [ -n "$example" ] || continue
    i=$((i + 1))
    run=$(printf '%s\n' "$example" | scale)
    extra=""
    case "$cmd" in
        "ensemble new") ;;
        ensemble*) extra="; ensemble new 2" ;;
    esac
    name="example_$i ($example)"
    out=$(timeout 300 "$LRSH" --threads 1 -c "$prep$extra; $run" 2>&1 </dev/null); rc=$?
    if [ $rc -ge 124 ]; then
        fail "$name" "exit status $rc (crash or hang): $(short "$(printf '%s' "$out" | tail -n 5)")"
        continue
    fi
    case "$out" in
        *Sanitizer*|*"runtime error:"*|*"LeakSanitizer"*)
            fail "$name" "sanitizer report: $(short "$(printf '%s' "$out" | grep -m3 -E 'Sanitizer|runtime error')")"
            continue ;;
    esac
    if [ $rc -eq 0 ]; then ok "$name"; continue; fi
    why=$(expected_errors | awk -F'\t' -v e="$example" '$1 == e { print $2 }')
    if [ -n "$why" ]; then
        check_contains "$name (clean error)" "$out" "$why"
    else
        fail "$name" "exit status $rc: $(short "$(printf '%s' "$out" | grep -m2 'error')")"
    fi
done <"$TMP/examples.tsv"
[ $i -ge 60 ] && ok "examples_found ($i)" || fail examples_found "only $i example lines"

finish
