# interactive.sh — lrsh at a real terminal (a pseudo-terminal this test drives): Tab completes a
# partial command, Ctrl-C stops a long `train` at a step boundary with the step count kept,
# history survives a restart (and Up recalls it), and the bundled default model: loaded with a
# banner at the prompt only, never in scripts, -c or pipes; --no-default, missing or bad files.
. tests/shell/testlib

lrsh() { "$LRSH" --threads 1 "$@"; }

export HOME="$TMP/home" TERM=xterm INPUTRC=/dev/null   # history in here; no user key bindings
mkdir -p "$HOME"

# pty ARG... -- ACTION...: run lrsh ARG... on a terminal and do each action in turn:
#   "send TEXT"    type TEXT (\t Tab, \n Enter, \003 Ctrl-C, \004 Ctrl-D, \033[A Up)
#   "expect TEXT"  wait (up to 120 s) until TEXT shows up after what the last expect matched
#   "sleep S"      wait S seconds
# Keys go out only after the prompt is back ("expect lrsh> "): typed while a command runs, the
# terminal is still in cooked mode and would swallow a Ctrl-D.
# Prints "TIMEOUT TEXT" for an expect that waited in vain, then "EXITED STATUS" or "ALIVE"
# (then killed), then everything the terminal showed, escape sequences removed (PTY_SGR=1: colors
# kept as "{sgr 1;31}"; PTY_RAW=1: every byte as sent). PTY_COLS=N gives the terminal N columns (else it reports none).
pty() {
    python3 - "$LRSH" "$@" <<'PY'
import fcntl, os, pty, re, select, struct, sys, termios, time
lrsh, rest = sys.argv[1], sys.argv[2:]
cut = rest.index("--")
args, actions = rest[:cut], rest[cut + 1:]
pid, fd = pty.fork()
if pid == 0:
    os.execv(lrsh, [lrsh, "--threads", "1"] + args)
if os.environ.get("PTY_COLS"):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", int(os.environ.get("PTY_ROWS", 40)), int(os.environ["PTY_COLS"]), 0, 0))
raw, seen, status = b"", 0, None
def text():
    t = raw.decode("utf-8", "replace")
    if os.environ.get("PTY_RAW"): return t   # every byte, escapes included
    if os.environ.get("PTY_SGR"): t = re.sub(r"\x1b\[([0-9;]*)m", r"{sgr \1}", t)   # colors kept, readable
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>]|\r", "", t)
def read(timeout):  # True: got output; None: none within timeout; False: the terminal closed
    global raw
    r, _, _ = select.select([fd], [], [], timeout)
    if not r: return None
    try: chunk = os.read(fd, 65536)
    except OSError: return False
    if not chunk: return False
    raw += chunk
    return True
for a in actions:
    verb, arg = a.split(" ", 1)
    if verb == "send":
        os.write(fd, arg.encode().decode("unicode_escape").encode("latin-1"))
    elif verb == "sleep":
        time.sleep(float(arg))
    elif verb == "expect":
        end = time.time() + 120
        while arg not in text()[seen:] and time.time() < end:
            if read(0.05) is False: break
        i = text().find(arg, seen)
        if i < 0: print("TIMEOUT " + arg); break
        seen = i + len(arg)
end = time.time() + 30
while time.time() < end:
    done, st = os.waitpid(pid, os.WNOHANG)
    if done: status = os.waitstatus_to_exitcode(st); break
    read(0.05)
while read(0.05) is True: pass
print("ALIVE" if status is None else "EXITED %d" % status)
if status is None: os.kill(pid, 9); os.waitpid(pid, 0)
sys.stdout.write(text())
PY
}

"$LRSH" -q -c "tok train vocab=512 out=$TMP/tok.model; data load" >"$TMP/prep.log" 2>&1 || fail prep "$(cat "$TMP/prep.log")"
prep="tok load $TMP/tok.model; data load; set batch 1; model new tiny seq=32"

# ---- Tab: "mod" → "model ", "ne" → "new "; the completed line runs and goes to the history
out=$(pty --no-default -- "expect lrsh> " "send mod\t" "expect model " "send ne\t" "expect new " \
          "send tiny seq=16 vocab=512\n" "expect lrsh> " "send quit\n")
check_not_contains tab_no_timeout "$out" "TIMEOUT"
check_contains tab_completes_command "$out" "lrsh> model new tiny seq=16 vocab=512"
check_contains tab_line_ran "$out" "dim=128"
check_contains tab_quit_leaves "$out" "EXITED 0"
check_eq tab_line_in_history "model new tiny seq=16 vocab=512" "$(grep -x 'model new tiny seq=16 vocab=512' "$HOME/.lrsh_history")"
out=$(pty --no-default -- "expect lrsh> " "send model info te\t" "expect tensors=" "send on\n" "expect lrsh> " "send quit\n")
check_contains tab_completes_option "$out" "lrsh> model info tensors=on"
# help's topics complete: an optimizer after `help optim`, a one-family sub-command alone
out=$(pty --no-default -- "expect lrsh> " "send help optim spe\t" "expect spectron " "send \n" "expect lrsh> " \
          "send help was\t" "expect wash " "send \n" "expect lrsh> " "send quit\n")
check_not_contains tab_help_no_timeout "$out" "TIMEOUT"
check_contains tab_help_optim "$out" "lrsh> help optim spectron"
check_contains tab_help_wash "$out" "lrsh> help wash"
# spectrum's PARAM completes the factors too: "blocks.0.attn.wq.<Tab>" lists .A and .B, "…wq.A" runs
out=$(pty --no-default -- "expect lrsh> " "send model new tiny seq=16 vocab=512\n" "expect lrsh> " \
          "send spectrum blocks.0.attn.wq.\t\t" "expect blocks.0.attn.wq.B" "send A k=1\n" "expect lrsh> " "send quit\n")
check_not_contains tab_factor_no_timeout "$out" "TIMEOUT"
check_contains tab_factor_runs "$out" "blocks.0.attn.wq.A  128×32"
# plot's runs= completes the session's run names, after a comma too
out=$(pty --no-default -- "expect lrsh> " "send $prep; run alpha; step; run beta; step\n" "expect lrsh> " \
          "send plot loss runs=al\t" "expect runs=alpha" "send ,b\t" "expect ,beta" "send \n" "expect lrsh> " "send quit\n")
check_not_contains tab_run_names_no_timeout "$out" "TIMEOUT"
check_contains tab_run_names "$out" "lrsh> plot loss runs=alpha,beta"
# `log off` completes beside the file names
out=$(pty --no-default -- "expect lrsh> " "send log of\t" "expect off" "send \n" "expect lrsh> " "send quit\n")
check_contains tab_log_off "$out" "lrsh> log off"
# ...but not before the matrix's name and its dot are typed: "blocks.0.attn.w<Tab><Tab>" lists
# the four matrices, not each with its two factors
out=$(pty --no-default -- "expect lrsh> " "send model new tiny seq=16 vocab=512\n" "expect lrsh> " \
          "send spectrum blocks.0.attn.w\t\t" "expect blocks.0.attn.wv" "send q k=1\n" "expect lrsh> " "send quit\n")
check_not_contains tab_matrices_no_timeout "$out" "TIMEOUT"
check_contains tab_matrices_listed "$out" "blocks.0.attn.wo"
check_not_contains tab_matrices_no_factors "$out" "attn.wq.A"

# a command that takes no more arguments completes none (no stray path after model load's), and
# watch offers σ and ρ of factorized matrices only (sigma_a:embed would be refused)
mkdir -p "$TMP/one"   # run there, with one file: a path completion would be inserted whole
abs_lrsh="$(cd "$(dirname "$LRSH")" && pwd)/$(basename "$LRSH")"
out=$(cd "$TMP/one" && LRSH="$abs_lrsh" pty --no-default -- "expect lrsh> " "send model new tiny seq=16 vocab=512\n" \
          "expect lrsh> " "send model save c.safetensors\n" "expect lrsh> " "send model load $TMP/one/c.safetensors \t\n" \
          "expect lrsh> " "send watch sigma_a:e\t\n" "expect lrsh> " "send quit\n")
check_not_contains tab_no_stray_path "$out" "too many"
check_contains tab_load_ran "$out" "loaded $TMP/one/c.safetensors"
check_not_contains tab_watch_factorized_only "$out" "is dense"

# a path with a space completes quoted: one argument
mkdir -p "$TMP/sp"
cp "$TMP/one/c.safetensors" "$TMP/sp/with space.safetensors"
out=$(pty --no-default -- "expect lrsh> " "send model load $TMP/sp/w\t\n" "expect lrsh> " "send quit\n")
check_not_contains tab_space_one_argument "$out" "too many arguments"
check_contains tab_space_loaded "$out" "loaded $TMP/sp/with space.safetensors"
# … and one with a no-break space (macOS writes U+202F before "AM" in screenshot names), which
# the parser reads as a space outside quotes: Tab quotes it too
nbsp=$(printf '\302\240')
cp "$TMP/one/c.safetensors" "$TMP/sp/nb${nbsp}x.safetensors"
out=$(pty --no-default -- "expect lrsh> " "send model load $TMP/sp/nb\t\n" "expect lrsh> " "send quit\n")
check_contains tab_nbsp_loaded "$out" "loaded $TMP/sp/nb${nbsp}x.safetensors"

# help on a terminal narrower than its text: paragraphs refilled, no line wider than the terminal,
# no word cut
# runs at 60 columns (a split pane): each run one line, the columns given up said
out=$(PTY_COLS=60 pty --no-default -- "expect lrsh> " "send $prep; run adamw-lr3e-3; step; optim spectron; run spectron-lr0.02; step; runs\n" \
          "expect left out" "expect lrsh> " "send quit\n" "expect lrsh> " "send quit\n")
check_contains runs_narrow_note "$out" "(a narrow terminal: spikes"
check_eq runs_narrow_fits "3 rows, 0 over 60" "$(printf '%s\n' "$out" | sed -n '/^run  /,/^(a narrow/p' | grep -v '^(' | python3 -c 'import sys
rows = [l.rstrip("\n") for l in sys.stdin]
print("%d rows, %d over 60" % (len(rows), sum(len(l) > 60 for l in rows)))')"
check_contains runs_narrow_names_whole "$out" "spectron-lr0.02 spectron"
out=$(PTY_COLS=60 pty --no-default -- "expect lrsh> " "send help watch\n" "expect watch off" "expect lrsh> " "send quit\n")
check_not_contains help_narrow_no_timeout "$out" "TIMEOUT"
check_eq help_narrow_fits 0 "$(printf '%s\n' "$out" | python3 -c 'import sys; print(sum(len(l) > 60 for l in sys.stdin.buffer.read().decode("utf-8").split("\n")))')"
check_contains help_narrow_refilled "$out" "optimizer's own measurements"

# help at 60 columns: a two-word command's summary continues under its text, a line ending in ':'
# that a sentence continues is refilled with it, a wide option form gets its own line
out=$(PTY_COLS=60 pty --no-default -- "expect lrsh> " "send help; help generate; help align\n" "expect batches=4 batch=16" "expect lrsh> " "send quit\n")
check_not_contains help_pages_no_timeout "$out" "TIMEOUT"
check_contains help_generate_shown "$(printf '%s' "$out" | tr -d '\r' | tr '\n' ' ' | tr -s ' ')" "no text streams to stdout"
check_eq help_two_word_indent True "$(printf '%s\n' "$out" | python3 -c 'import sys; t = sys.stdin.read().split("\n"); i = [n for n, l in enumerate(t) if l.startswith("  tok train ")][0]; print(t[i + 1].startswith(" " * 20) and not t[i + 1].startswith(" " * 21))')"
check_not_contains help_colon_refilled "$out" "
stdout:
"
check_contains help_wide_option_own_line "$out" "  against=microbatch|blockdrop|width|delayed|members|forward
"
# a table entry's description, wrapped by hand for 80 columns, is refilled (no short line left
# behind), and an example's continuation is indented past the examples
out=$(PTY_COLS=60 pty --no-default -- "expect lrsh> " "send help set; help plot\n" "expect svg=run1.svg" "expect lrsh> " "send quit\n")
check_contains help_entry_refilled "$out" "                       attention one kernel instead of three"
check_contains help_example_hanging "$out" "  run a; train steps=5; run b; train steps=5; plot loss
      runs=b"

# at 80 columns the model's description goes on under its text (it went on at the margin), and
# a list of settings breaks between settings, not before a number's key ("beta1=0.9" went to
# the next line though "beta2=0.95" fit)
out=$(PTY_COLS=80 pty --no-default -- "expect lrsh> " "send model new tiny seq=64 seed=7 vocab=512; optim spectron lr=0.05 wd=0.01\n" "expect lrsh> " "send quit\n")
check_contains wrap_model_under_text "$out" "
                          rank=0.25·in seq=64 vocab=512"
check_contains wrap_settings_whole "$out" "shape_scale=off beta1=0.9 beta2=0.95"

# results on a 60-column terminal: tables and plots laid out for it, longer lines broken at
# spaces (the model's description, show's settings), never a number cut by the terminal's edge
out=$(PTY_COLS=60 pty --no-default -- "expect lrsh> " "send $prep\n" "expect lrsh> " "send train steps=3\n" \
          "expect lrsh> " "send norms\n" "expect lrsh> " "send runs\n" "expect lrsh> " "send plot loss width=100\n" \
          "expect lrsh> " "send show\n" "expect lrsh> " "send quit\n" "expect lrsh> " "send quit\n")
check_not_contains narrow_results_no_timeout "$out" "TIMEOUT"
check_eq narrow_results_fit 0 "$(printf '%s\n' "$out" | python3 -c 'import sys; print(sum(len(l) > 60 and not l.startswith("lrsh> ") and "ETA" not in l for l in sys.stdin.buffer.read().decode("utf-8").split("\n")))')"
check_contains narrow_results_broken_at_space "$out" "rank=0.25·in"
# the norms table folds at the same cells in every row: each row's second line ends where the
# header's does (its right-aligned numbers under their headers)
check_eq narrow_norms_folded True "$(printf '%s\n' "$out" | tr -d '\r' | python3 -c '
import sys
t = sys.stdin.read().split("\n")
h = [i for i, l in enumerate(t) if l.startswith("matrix ")][0]
edge = len(t[h + 1].rstrip())
rows = [i for i, l in enumerate(t) if l.startswith("blocks.") and "×" in l]
print(len(rows) > 0 and edge > 20 and all(len(t[i + 1].rstrip()) == edge and t[i + 1].startswith(" " * 17) for i in rows))')"
check_contains narrow_results_plot_axis "$out" "step"
check_contains narrow_results_plot_clamped "$out" "(width=100 does not fit this terminal's 60 columns: drawn"
check_contains narrow_results_plot_clamped_width "$out" "42 wide)"

# on a terminal of 20 rows a plot without height= is drawn short enough that its title, chart,
# legend and the prompt after it fit (on a projector's 24 rows the title scrolled away)
plot_fits_rows() {  # ROWS: True when the pty text on stdin shows "training loss" to the prompt in ROWS lines
    tr -d '\r' | python3 -c '
import sys
lines = sys.stdin.read().split("\n")
top = [i for i, l in enumerate(lines) if l.startswith("training loss")][0]
end = [i for i, l in enumerate(lines) if i > top and l.startswith("lrsh> ")][0]
print(end - top + 1 <= int(sys.argv[1]) and any("┤" in l for l in lines[top:end]))' "$1"
}
out=$(PTY_ROWS=20 PTY_COLS=80 pty --no-default -- "expect lrsh> " "send $prep; run a; train steps=3; run b; train steps=3; plot loss\n" \
          "expect lrsh> " "send quit\n" "expect lrsh> " "send quit\n")
check_eq short_terminal_plot_fits True "$(printf '%s\n' "$out" | plot_fits_rows 20)"
# ... counting the lines a narrow terminal wraps (long run names in the legend)
out=$(PTY_ROWS=20 PTY_COLS=40 pty --no-default -- "expect lrsh> " "send $prep; run a-long-name-of-a-sweep-run-1; train steps=3; run a-long-name-of-a-sweep-run-2; train steps=3; plot loss\n" \
          "expect lrsh> " "send quit\n" "expect lrsh> " "send quit\n")
check_eq short_narrow_terminal_plot_fits True "$(printf '%s\n' "$out" | plot_fits_rows 20)"

# a plot on a terminal under 40 columns is drawn to its width too (it was drawn 62 wide and wrapped)
out=$(PTY_COLS=32 pty --no-default -- "expect lrsh> " "send $prep; train steps=3; plot loss height=4\n" "expect lrsh> " \
          "send quit\n" "expect lrsh> " "send quit\n")
check_eq narrow_plot_axis_fits True "$(printf '%s\n' "$out" | tr -d '\r' | python3 -c '
import sys
lines = sys.stdin.read().split("\n")
axis = [l for l in lines if "└" in l]
wrapped = [l for l in lines if l.strip() and set(l.strip()) <= set("─")]   # the x axis broken over lines
print(len(axis) == 1 and len(axis[0].rstrip()) <= 32 and not wrapped)')"
# ... while on a wide one width= still goes past the default 72 (a clamp to it came in with the above)
out=$(PTY_COLS=150 pty --no-default -- "expect lrsh> " "send $prep; train steps=3; plot loss height=4 width=100\n" "expect lrsh> " \
          "send quit\n" "expect lrsh> " "send quit\n")
check_not_contains wide_plot_not_clamped "$out" "does not fit this terminal"
check_eq wide_plot_width_kept True "$(printf '%s\n' "$out" | tr -d '\r' | python3 -c '
import sys
axis = [l for l in sys.stdin.read().split("\n") if "└" in l]
print(len(axis) == 1 and axis[0].count("─") >= 100)')"

# a wrapped line breaks at a gap between fields counted in columns, not bytes (‖, ₂ are several)
out=$(PTY_COLS=40 pty --no-default -- "expect lrsh> " "send $prep; step; align\n" "expect per layer" "expect lrsh> " \
          "send quit\n" "expect lrsh> " "send quit\n")
check_contains narrow_align_ratio_whole "$out" "norm ratio ‖g₂‖/‖g₁‖ "

# spectrum's bars on a 40-column terminal: shortened to fit, not wrapped
out=$(PTY_COLS=40 pty --no-default -- "expect lrsh> " "send model new tiny seq=16 vocab=512; spectrum blocks.0.attn.wq k=3\n" \
          "expect (29 more" "expect lrsh> " "send quit\n")
check_eq narrow_spectrum_bars 3 "$(printf '%s\n' "$out" | tr -d '\r' | python3 -c 'import sys; print(sum(l.startswith("  σ") and len(l) <= 40 and "█" in l for l in sys.stdin.read().split("\n")))')"

# the live line with watched values: on a terminal too narrow for all, the rate gives way first,
# and what is cut goes by whole fields
out=$(PTY_COLS=100 pty --no-default -- "expect lrsh> " "send $prep; optim spectron; watch spectral dw_over_eta rho every=1\n" \
          "expect lrsh> " "send train steps=5\n" "expect lrsh> " "send quit\n" "expect lrsh> " "send quit\n")
check_not_contains live_watch_no_timeout "$out" "TIMEOUT"
out60=$(PTY_COLS=60 pty --no-default -- "expect lrsh> " "send $prep; optim spectron; watch spectral dw_over_eta rho every=1\n" \
          "expect lrsh> " "send train steps=5\n" "expect lrsh> " "send quit\n" "expect lrsh> " "send quit\n")
check_contains live_watch_summary_narrow "$out60" "watched: [step 5] spectral"
check_contains live_watch_cut_marked "$out60" "  …"
# where even the values do not fit, the ETA has given way before any value is cut (a student's
# 80-column projector showed "ETA 0:00" and lost rho and sigma_a)
check_eq live_watch_narrow_no_eta "yes no" "$(live=$(printf '%s\n' "$out60" | grep '^step 1 (1/5)'); printf '%s\n' "$live" | grep -q '\[step 1\] spectral' && printf 'yes ' || printf 'no '; printf '%s\n' "$live" | grep -q 'ETA' && echo yes || echo no)"
check_eq live_watch_summary_rho True "$(printf '%s' "$out60" | python3 -c 'import re, sys; t = sys.stdin.read(); print(bool(re.search(r"watched: \[step 5\][^>]*rho\s+0\.00\d{4}", t)))')"
check_eq live_watch_summary_fields_whole True "$(printf '%s' "$out60" | tr -d '\r' | python3 -c 'import re, sys; t = sys.stdin.read(); w = t[t.index("watched:"):].split("\n")[:3]; print(not any(re.search(r"(spectral|dw_over_eta|rho)$", l) for l in w))')"
# at 80 columns the ETA gives way too, so that both watched values show (a lecturer's
# `watch spectral dw_over_eta` never showed ‖ΔW‖₂/η while training)
out80=$(PTY_COLS=80 pty --no-default -- "expect lrsh> " "send $prep; optim spectron; watch spectral dw_over_eta every=1\n" \
          "expect lrsh> " "send train steps=5\n" "expect lrsh> " "send quit\n" "expect lrsh> " "send quit\n")
check_eq live_watch_80_both_values yes "$(printf '%s\n' "$out80" | grep -Eq 'loss [0-9.]+  \[step [0-9]+\] spectral [0-9.]+  dw_over_eta [0-9.]+' && echo yes || echo no)"
check_eq live_watch_values_shown yes "$(printf '%s\n' "$out" | grep -Eq 'ETA [0-9:]+  \[step [0-9]+\] spectral [0-9.]+  dw_over_eta [0-9.]+  rho 0\.00[0-9]{4}' && echo yes || echo no)"

# Ctrl-C during tok train: SentencePiece trains in a child process, which the Ctrl-C ends; the
# session keeps its tokenizer and nothing is written
python3 -c '
import random
random.seed(1)
words = ["".join(random.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(random.randint(2, 9))) for _ in range(50000)]
with open("'"$TMP"'/words.txt", "w") as f:
    for i in range(100000): f.write(" ".join(random.choice(words) for _ in range(12)) + "\n")'
t0=$(date +%s)
out=$(pty --no-default -- "expect lrsh> " "send tok load $TMP/tok.model\n" "expect lrsh> " \
          "send tok train $TMP/words.txt vocab=30000 out=$TMP/interrupted.model\n" "expect training a bpe" "send \003" "expect lrsh> " \
          "send show\n" "expect settings" "expect lrsh> " "send quit\n")
check_not_contains tok_train_ctrl_c_no_timeout "$out" "TIMEOUT"
check_contains tok_train_ctrl_c_says "$out" "tok train interrupted: nothing was written; the session keeps its tokenizer and data"
check_contains tok_train_ctrl_c_kept "$out" "tokenizer  $TMP/tok.model"
check_eq tok_train_ctrl_c_nothing_written "" "$(ls "$TMP" | grep interrupted)"
# (to the end this training takes 25 s on 2 cores; the stop comes within a poll)
check_eq tok_train_ctrl_c_prompt_soon yes "$([ $(($(date +%s) - t0)) -lt 10 ] && echo yes || echo no)"
# SIGTERM to the shell ends the training child too (it ran on alone, an orphan, to the end)
"$LRSH" --threads 1 -c "tok train $TMP/words.txt vocab=30000 out=$TMP/orphan-check.model" >"$TMP/term.log" 2>&1 &
pid=$!
i=0; while ! grep -q "training a bpe" "$TMP/term.log" && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
sleep 0.5; kill -TERM $pid; wait $pid; sleep 1
check_eq tok_train_sigterm_no_orphan 0 "$(pgrep -f "out=$TMP/orphan-check.model" | wc -l | tr -d ' ')"

# ---- Tab after `plot` offers what `watch` recorded too (plot spectral works; Tab did not offer it)
out=$(pty --no-default -- "expect lrsh> " "send $prep; optim spectron; watch spectral every=1; train steps=2\n" \
          "expect lrsh> " "send plot spe\t" "expect spectral" "send \003" "expect lrsh> " "send quit\n" "expect lrsh> " \
          "send quit\n")
check_not_contains complete_plot_watched_no_timeout "$out" "TIMEOUT"
check_contains complete_plot_watched "$out" "plot spectral"

# ---- the live line keeps the loss at narrow widths with watched values after it (at 22 and
# 31 columns the cut for "  …" took it: "step 10 (10/30)  …")
for cols in 22 31; do
    out=$(PTY_RAW=1 PTY_COLS=$cols pty --no-default -- "expect lrsh> " "send $prep; watch spectral every=1; train steps=12\n" \
              "expect lrsh> " "send quit\n" "expect lrsh> " "send quit\n")
    check_eq "live_line_keeps_loss_$cols" True "$(printf '%s' "$out" | python3 -c '
import re, sys
live = [l for l in re.findall(r"\r([^\r\n]*?)\x1b\[K", sys.stdin.read()) if l.startswith(("step ", "1", "2", "3", "4", "5", "6"))]
print(len(live) >= 3 and all("loss" in l for l in live))')"
done

# ---- inspect marks its top rows in bold, and in red only past Spectron's bound
out=$(PTY_SGR=1 PTY_COLS=100 pty --no-default -- "expect lrsh> " "send $prep; optim spectron; step\n" "expect lrsh> " \
          "send inspect\n" "expect max ‖ΔW‖₂/η" "expect lrsh> " "send optim adamw lr=0.5; step; inspect\n" \
          "expect does not bound" "expect lrsh> " "send quit\n" "expect lrsh> " "send quit\n")
check_eq inspect_colors "bold True red True" "$(printf '%s' "$out" | python3 -c 'import sys; t = sys.stdin.read(); i = t.index("optim adamw lr=0.5")
print("bold", "{sgr 1}* blocks." in t[:i] and "{sgr 1;31}" not in t[:i], "red", "{sgr 1;31}* blocks." in t[i:])')"

# ---- a line wrapped at 80 columns keeps a number with the word after it ("2.4 MiB of text")
out=$(PTY_COLS=80 pty --no-default -- "expect lrsh> " "send tok load $TMP/tok.model\n" "expect lrsh> " \
          "send data load\n" "expect bytes a token" "expect lrsh> " "send quit\n")
check_eq wrap_number_with_unit True "$(printf '%s' "$out" | tr -d '\r' | python3 -c 'import re, sys; t = sys.stdin.read(); print(bool(re.search(r"[0-9] MiB of text", t)) and not re.search(r"[0-9]\n *(MiB|bytes|tokens)", t))')"

# ---- the terminal does not echo Ctrl-C as ^C into the live line (left on screen, wrapping it)
out=$(PTY_COLS=80 pty --no-default -- "expect lrsh> " "send $prep\n" "expect lrsh> " "send train steps=100000\n" \
          "expect /100000)" "send \003" "expect lrsh> " "send quit\n" "expect lrsh> " "send quit\n")
check_not_contains ctrl_c_not_echoed "$out" "^C"

# ---- Ctrl-C during a long train: back at the prompt, every step taken kept
out=$(pty --no-default -- "expect lrsh> " "send $prep\n" "expect lrsh> " "send train steps=100000\n" \
          "expect /100000)" "send \003" "expect lrsh> " "send show\n" "expect lrsh> " "send quit\n" "expect lrsh> " "send quit\n")
check_not_contains ctrl_c_no_timeout "$out" "TIMEOUT"
stopped=$(printf '%s\n' "$out" | sed -n 's/.*interrupted at step \([0-9]*\).*/\1/p' | head -n 1)
shown=$(printf '%s\n' "$out" | sed -n 's/^trainer *built, step \([0-9]*\).*/\1/p' | tail -n 1)
check_eq ctrl_c_stopped_early yes "$([ -n "$stopped" ] && [ "$stopped" -ge 1 ] && [ "$stopped" -lt 100000 ] && echo yes || echo "no ($stopped)")"
check_eq ctrl_c_step_kept "$stopped" "$shown"
check_contains ctrl_c_keeps_session "$out" "EXITED 0"
# Ctrl-C during a long eval: the mean over the batches done, said to be partial, not recorded
out=$(pty --no-default -- "expect lrsh> " "send $prep\n" "expect lrsh> " "send eval batches=100000\n" \
          "expect /100000" "send \003" "expect lrsh> " "send runs\n" "expect lrsh> " "send quit\n")
check_not_contains ctrl_c_eval_no_timeout "$out" "TIMEOUT"
check_eq ctrl_c_eval_partial yes "$(printf '%s\n' "$out" | grep -Eq 'interrupted after [0-9]+ of 100000 batches: val loss [0-9.]+ ' && echo yes || echo no)"
check_contains ctrl_c_eval_not_recorded "$out" "no runs yet"
# ... and an ensemble's: its progress line, then Ctrl-C stops it with nothing measured
out=$(pty --no-default -- "expect lrsh> " "send $prep; ensemble new 2\n" "expect lrsh> " "send ensemble eval batches=100000\n" \
          "expect ensemble eval 0%" "send \003" "expect lrsh> " "send show\n" "expect settings" "expect lrsh> " "send quit\n")
check_not_contains ctrl_c_ensemble_eval_no_timeout "$out" "TIMEOUT"
check_contains ctrl_c_ensemble_eval_stopped "$out" "error: ensemble eval interrupted after"
check_contains ctrl_c_ensemble_eval_goes_on "$out" "ensemble   2 members"
# Ctrl-C during train's eval_every= evaluation: back at the prompt, the steps kept, no val taken
out=$(pty --no-default -- "expect lrsh> " "send $prep\n" "expect lrsh> " "send train steps=3 eval_every=1 eval_batches=100000\n" \
          "expect (1/3)" "send \003" "expect lrsh> " "send runs\n" "expect lrsh> " "send quit\n" "expect lrsh> " "send quit\n")
check_not_contains ctrl_c_train_eval_no_timeout "$out" "TIMEOUT"
check_not_contains ctrl_c_quick_stop_no_notice "$out" "Ctrl-C seen"   # stopped within the second
check_contains ctrl_c_train_eval_stopped "$out" "interrupted at step 1 (1 of 3 steps)"
# Ctrl-C inside a history search (Ctrl-R) ends the search and the line: the next line runs
out=$(pty -- "expect lrsh> " "send show\n" "expect settings" "expect lrsh> " "send \022sho" "expect show" "send \003" \
          "expect lrsh> " "send help quit\n" "expect leave the shell" "expect lrsh> " "send quit\n")
check_not_contains ctrl_c_search_no_timeout "$out" "TIMEOUT"
check_contains ctrl_c_search_next_line_runs "$out" "leave the shell (Ctrl-D does too)"

# ---- model new after training not saved: refused once with how to keep it (a command in between
# does not re-arm it), then done
out=$(pty --no-default -- "expect lrsh> " "send $prep; train steps=2\n" "expect lrsh> " "send model new tiny seq=16\n" \
          "expect lrsh> " "send help quit\n" "expect lrsh> " "send model new tiny seq=16\n" "expect lrsh> " \
          "send show\n" "expect settings" "expect lrsh> " "send quit\n")
check_not_contains replace_no_timeout "$out" "TIMEOUT"
check_contains replace_refused_once "$out" "error: the model has training not saved: \`model save PATH\` keeps it; \`model new\` again replaces it"
check_contains replace_second_try "$out" "rank=0.25·in seq=16 vocab"
check_contains replace_then_quit "$out" "EXITED 0"
check_eq replace_refused_only_once 1 "$(printf '%s\n' "$out" | grep -c 'training not saved')"

# each action that would drop the training asks once for itself: a bad file is refused for what it
# is (not with the question, which it would use up), quit's warning does not let `model new` through,
# nor `model new`'s `model factorize`
out=$(pty --no-default -- "expect lrsh> " "send $prep; train steps=2\n" "expect lrsh> " \
          "send model load $TMP/nosuch.safetensors\n" "expect lrsh> " "send quit\n" "expect lrsh> " \
          "send model new tiny seq=16\n" "expect lrsh> " "send model factorize rank=4\n" "expect lrsh> " \
          "send show\n" "expect settings" "expect lrsh> " "send quit\n")
check_not_contains drop_each_no_timeout "$out" "TIMEOUT"
check_contains drop_each_bad_file "$out" "nosuch.safetensors: cannot open"
check_contains drop_each_quit_warns "$out" "unsaved model: \`model save PATH\` keeps it; quit again or Ctrl-D leaves"
check_contains drop_each_model_new "$out" "\`model new\` again replaces it"
check_contains drop_each_factorize "$out" "\`model factorize\` again truncates it"
check_contains drop_each_model_kept "$out" "rank=0.25·in seq=32 vocab"
check_contains drop_each_then_quit "$out" "EXITED 0"

out=$(pty --no-default -- "expect lrsh> " "send $prep; ensemble new 2; train steps=1\n" "expect lrsh> " \
          "send ensemble new 2\n" "expect lrsh> " "send ensemble new 2\n" "expect lrsh> " "send \004" "expect lrsh> " "send \004")
check_contains drop_ensemble_asks "$out" "error: the ensemble has training not saved: \`model save PATH\` keeps it; \`ensemble new\` again replaces the ensemble"
check_contains drop_ensemble_second_try "$out" "ensemble dropped (replaced by a new one)"
out=$(pty --no-default -- "expect lrsh> " "send $prep; ensemble new 2; train steps=1\n" "expect lrsh> " \
          "send ensemble use 1\n" "expect lrsh> " "send ensemble average\n" "expect lrsh> " "send ensemble use 1\n" \
          "expect lrsh> " "send \004" "expect lrsh> " "send \004")
check_contains drop_ensemble_use_asks "$out" "\`model save PATH\` keeps it; \`ensemble use\` again keeps that member alone"
check_contains drop_ensemble_average_asks "$out" "\`model save PATH\` keeps it; \`ensemble average\` again makes one model of it"
check_contains drop_ensemble_use_second_try "$out" "continuing with member 1 of 2"
# quit names the ensemble it would leave; a member taken out of a saved ensemble is in that file:
# no question on leaving
out=$(pty --no-default -- "expect lrsh> " "send $prep; ensemble new 2; train steps=1\n" "expect lrsh> " \
          "send quit\n" "expect lrsh> " "send model save $TMP/e2.safetensors; ensemble use 0\n" "expect lrsh> " \
          "send quit\n")
check_contains quit_names_ensemble "$out" "unsaved ensemble: \`model save PATH\` keeps it; quit again or Ctrl-D leaves"
check_contains saved_member_use "$out" "continuing with member 0 of 2"
check_contains saved_member_quits_at_once "$out" "EXITED 0"
check_eq saved_member_not_unsaved 1 "$(printf '%s\n' "$out" | grep -c 'unsaved')"
# `ensemble new seeds=` leaves the model's unsaved training behind (no member continues it, and
# `model save` then saves the ensemble): asked there, once, while it can be saved; the ensemble
# at step 0 then holds nothing unsaved, so `ensemble use` goes ahead
out=$(pty --no-default -- "expect lrsh> " "send $prep; train steps=2\n" "expect lrsh> " \
          "send ensemble new 2 seeds=5,6\n" "expect lrsh> " "send ensemble new 2 seeds=5,6\n" "expect lrsh> " \
          "send ensemble use 1\n" "expect lrsh> " "send quit\n")
check_contains seeds_new_asks "$out" "error: the model has training not saved, which an ensemble from seeds= leaves behind"
check_contains seeds_new_second_try "$out" "note: the model's training not saved is not in the ensemble"
check_contains seeds_use_goes_ahead "$out" "continuing with member 1 of 2 (step 0"
check_not_contains seeds_use_not_refused "$out" "the ensemble has training not saved"
check_contains seeds_quits_at_once "$out" "EXITED 0"
# without seeds= member 0 carries the model's unsaved training: said so, and `model save` keeps it
out=$(pty --no-default -- "expect lrsh> " "send $prep; train steps=2; ensemble new 2\n" "expect lrsh> " \
          "send ensemble use 1\n" "expect lrsh> " "send \004" "expect lrsh> " "send \004")
check_contains carried_use_asks "$out" "error: the ensemble's member 0 carries the model's training not saved: \`model save PATH\` keeps it (with the ensemble)"
# ... and a new ensemble without seeds= carries it again: nothing is lost, nothing asked
out=$(pty --no-default -- "expect lrsh> " "send $prep; train steps=2; ensemble new 2\n" "expect lrsh> " \
          "send ensemble new 3\n" "expect lrsh> " "send show\n" "expect lrsh> " "send \004" "expect lrsh> " "send \004")
check_not_contains carried_new_not_asked "$out" "\`ensemble new\` again replaces the ensemble"
check_contains carried_new_goes_ahead "$out" "ensemble   3 members"
# a paste of several lines (bracketed paste: one line with newlines in it) runs line by line
out=$(pty --no-default -- "expect lrsh> " "send \033[200~set seed 77\nshow\n\033[201~\n" "expect settings" "expect lrsh> " "send quit\n")
check_not_contains paste_no_timeout "$out" "TIMEOUT"
check_contains paste_lines_each_run "$out" "seed=77"
# ... and stops at its first error: a question a paste meets is answered by a person, not by a
# repeat further down the paste
out=$(pty --no-default -- "expect lrsh> " "send $prep; train steps=1\n" "expect lrsh> " \
          "send \033[200~model new tiny seq=16\nshow\nmodel new tiny seq=16\n\033[201~\n" "expect lrsh> " \
          "send show\n" "expect settings" "expect lrsh> " "send \004" "expect lrsh> " "send \004")
check_contains paste_stops_at_error "$out" "(the rest of the paste was not run)"
check_contains paste_model_kept "$out" "rank=0.25·in seq=32 vocab"
# lines typed ahead (or pasted by a terminal without bracketed paste) are dropped after an error,
# saying so: they were meant for the model the refused `model new` would have made
out=$(pty --no-default -- "expect lrsh> " "send $prep; train steps=1\n" "expect lrsh> " \
          "send model new tiny seq=16\nset seed 55\n" "expect typed ahead" "expect lrsh> " \
          "send show\n" "expect settings" "expect lrsh> " "send \004" "expect lrsh> " "send \004")
check_contains typed_ahead_dropped "$out" "(after the error, what was typed ahead was dropped)"
check_not_contains typed_ahead_not_run "$out" "seed=55"
# ... and at Ctrl-C, saying so too (it stopped in silence: `set seed 99` after it had not run)
out=$(pty --no-default -- "expect lrsh> " "send $prep\n" "expect lrsh> " \
          "send \033[200~train steps=3 batch=4096\nset seed 99\n\033[201~\n" "expect batch=4096" "sleep 0.3" "send \003" \
          "expect lrsh> " "send show\n" "expect settings" "expect lrsh> " "send quit\n" "expect lrsh> " "send quit\n")
check_contains paste_stops_at_ctrl_c "$out" "(Ctrl-C: the rest of the paste was not run)"
check_not_contains paste_ctrl_c_rest_not_run "$out" "seed=99"

# a warning during training (the log past a file-size limit, mid-run) clears the live line first
# instead of running on from "ETA 0:00" (raw terminal bytes: the pty helper drops \r and escapes)
check_eq warning_own_line True "$(python3 - "$LRSH" "$prep" "$TMP/limited.jsonl" <<'PY'
import os, pty, select, sys
lrsh, prep, log = sys.argv[1:4]
pid, fd = pty.fork()
if pid == 0:
    os.execv("/bin/sh", ["sh", "-c", 'ulimit -f 2; exec "$0" --threads 1 --no-default -c "$1"', lrsh,
                         prep + "; log " + log + "; train steps=40"])
raw = b""
while True:
    r, _, _ = select.select([fd], [], [], 60)
    if not r: break
    try: chunk = os.read(fd, 65536)
    except OSError: break
    if not chunk: break
    raw += chunk
os.waitpid(pid, 0)
i = raw.find(b"warning: log")
print(i > 0 and b"/40)" in raw[:i] and (raw[:i].endswith(b"\r\x1b[K") or raw[:i].endswith(b"\n")))
PY
)"

# set errexit at the prompt says what it is for (it stops scripts, never the prompt)
out=$(pty --no-default -- "expect lrsh> " "send set errexit on\n" "expect lrsh> " "send quit\n")
check_contains errexit_prompt_note "$out" "at the prompt an error never stops the session"

# ---- history: a line typed in one session is in ~/.lrsh_history and Up recalls it in the next
rm -f "$HOME/.lrsh_history"
out=$(pty --no-default -- "expect lrsh> " "send set seed 4242\n" "expect lrsh> " "send \004")
check_contains history_first_session "$out" "EXITED 0"
check_eq history_file "set seed 4242" "$(grep -x 'set seed 4242' "$HOME/.lrsh_history")"
out=$(pty --no-default -- "expect lrsh> " "send \033[A" "expect set seed 4242" "send \n" "expect lrsh> " \
          "send show\n" "expect settings" "expect lrsh> " "send \004")
check_not_contains history_no_timeout "$out" "TIMEOUT"
check_contains history_up_recalls "$out" "seed=4242"
check_eq history_no_duplicates 1 "$(grep -cx 'set seed 4242' "$HOME/.lrsh_history")"
# two sessions entering lines at once with a full history (1000 lines) keep every line: readline
# cuts the file by a copy renamed into place, and a line the other appended in between was lost
mkdir -p "$TMP/hist2"
seq 1 1000 | sed 's/^/# old /' >"$TMP/hist2/.lrsh_history"
lines() { i=1; while [ $i -le 150 ]; do printf '# %s%d\\n' "$1" $i; i=$((i + 1)); done; }
HOME="$TMP/hist2" pty --no-default -- "expect lrsh> " "send $(lines a)" "sleep 3" "send quit\n" >/dev/null &
HOME="$TMP/hist2" pty --no-default -- "expect lrsh> " "send $(lines b)" "sleep 3" "send quit\n" >/dev/null &
wait
check_eq history_concurrent_kept "150 150" "$(grep -c '^# a' "$TMP/hist2/.lrsh_history") $(grep -c '^# b' "$TMP/hist2/.lrsh_history")"
# a history that is no file: a FIFO hung the prompt before its banner (reading it waited for a
# writer); now one warning and no history. A link to /dev/null keeps none, silently.
mkdir -p "$TMP/fifo-home" "$TMP/null-home"
mkfifo "$TMP/fifo-home/.lrsh_history"
out=$(HOME="$TMP/fifo-home" pty --no-default -- "expect lrsh> " "send set seed 7\n" "expect lrsh> " "send \004")
check_not_contains history_fifo_no_hang "$out" "TIMEOUT"
check_contains history_fifo_warns "$out" "warning: $TMP/fifo-home/.lrsh_history is a FIFO, not a file: no history is kept this session"
check_contains history_fifo_goes_on "$out" "EXITED 0"
# a history path out of reach (a link to itself) says why in words that read ("is Too many
# levels of symbolic links, not a file" was strerror put where a noun goes)
mkdir -p "$TMP/loop-home"; ln -s .lrsh_history "$TMP/loop-home/.lrsh_history"
out=$(HOME="$TMP/loop-home" pty --no-default -- "expect lrsh> " "send set seed 7\n" "expect lrsh> " "send \004")
check_contains history_loop_warns "$out" "warning: $TMP/loop-home/.lrsh_history cannot be reached (Too many levels of symbolic links): no history is kept this session"
# stdout to a file, the keyboard and stderr a terminal: the prompt, the echo and the banner show
# on the terminal, as bash's do; the file gets the results only (it got readline's escapes)
printf '#!/bin/sh\nexec "%s" "$@" > "%s"\n' "$LRSH" "$TMP/stdout-file.txt" > "$TMP/to-file.sh"; chmod +x "$TMP/to-file.sh"
out=$(LRSH="$TMP/to-file.sh" pty --no-default -- "expect lrsh> " "send set seed 7\n" "expect lrsh> " "send \004")
check_contains stdout_file_prompt_on_terminal "$out" "lrsh> set seed 7"
check_eq stdout_file_results_only "seed 7" "$(cat "$TMP/stdout-file.txt")"
# ... but into a pipe (`lrsh | tee log`) they stay with the results, in their order (a result
# through the pipe could land after a prompt drawn on stderr)
printf '#!/bin/sh\n"%s" "$@" | tee "%s"\n' "$LRSH" "$TMP/stdout-pipe.txt" > "$TMP/to-pipe.sh"; chmod +x "$TMP/to-pipe.sh"
out=$(LRSH="$TMP/to-pipe.sh" pty --no-default -- "expect lrsh> " "send set seed 7\n" "expect lrsh> " "send \004")
check_contains stdout_pipe_prompt_kept "$(cat "$TMP/stdout-pipe.txt")" "lrsh> set seed 7"
ln -s /dev/null "$TMP/null-home/.lrsh_history"
out=$(HOME="$TMP/null-home" pty --no-default -- "expect lrsh> " "send set seed 7\n" "expect lrsh> " "send \004")
check_not_contains history_devnull_silent "$out" "warning"
check_contains history_devnull_goes_on "$out" "EXITED 0"

# ---- stdout a pipe whose reader left, at the prompt: one line, then the prompt and its echo on
# stderr (the terminal here), where the user still sees them; quit leaves with status 1
out=$(python3 - "$LRSH" <<'PY'
import os, pty, select, sys, time
m, s = pty.openpty()
r, w = os.pipe()
os.close(r)
pid = os.fork()
if pid == 0:
    os.setsid(); os.dup2(s, 0); os.dup2(w, 1); os.dup2(s, 2)
    os.execv(sys.argv[1], [sys.argv[1], "--threads", "1", "--no-default"])
os.close(s); os.close(w)
seen = b""
def pump(t):
    global seen
    end = time.time() + t
    while time.time() < end:
        if select.select([m], [], [], 0.1)[0]:
            try: seen += os.read(m, 65536)
            except OSError: return
for line in [b"set seed 5\n", b"quit\n"]:
    pump(2); os.write(m, line)
pump(2)
_, st = os.waitpid(pid, 0)
print("EXITED %d" % os.waitstatus_to_exitcode(st))
print(seen.decode("utf-8", "replace").replace("\r", ""))
PY
)
check_contains prompt_stdout_gone_says "$out" "cannot write to standard output (Broken pipe)"
check_contains prompt_stdout_gone_prompt "$out" "lrsh> set seed 5"
check_contains prompt_stdout_gone_status "$out" "EXITED 1"

# ---- the bundled default model: at the prompt only
default="$PWD/models/default.safetensors"
if [ -f "$default" ]; then
    # Found next to the program (or one folder up: build-san/lrsh); otherwise named explicitly.
    bin_dir=$(dirname "$LRSH")
    if [ -f "$bin_dir/models/default.safetensors" ] || [ -f "$bin_dir/../models/default.safetensors" ]; then
        env_model=""
    else
        env_model="$default"
    fi
    out=$(LRSH_DEFAULT_MODEL=$env_model pty -- "expect lrsh> " "send generate \"Q: Why\" n=12 seed=1\n" "expect tok/s" \
              "expect lrsh> " "send show\n" "expect settings" "expect lrsh> " "send \004")
    check_not_contains default_no_timeout "$out" "TIMEOUT"
    check_contains default_banner_model "$out" "model: default.safetensors"
    check_contains default_banner_tokenizer "$out" "tokenizer: embedded"
    check_contains default_banner_try "$out" "try:  generate \"Q: Why\""
    check_contains default_generates "$out" "tokens,"
    check_contains default_show_checkpoint "$out" "default.safetensors"
    check_contains default_left "$out" "EXITED 0"
    suggestion=$(printf '%s\n' "$out" | sed -n 's/^try:  generate "Q: Why"    \(.*\)    help$/\1/p' | head -n 1)
    out=$(LRSH_DEFAULT_MODEL=$env_model pty -q -- "expect lrsh> " "send show\n" "expect settings" "expect lrsh> " "send \004")
    check_not_contains default_quiet_no_banner "$out" "try:"
    check_contains default_quiet_still_loaded "$out" "model      loaded"
    # the banner names the seed the bundled model brings; --seed wins over it
    out=$(LRSH_DEFAULT_MODEL=$env_model pty -- "expect lrsh> " "send show\n" "expect settings" "expect lrsh> " "send \004")
    check_contains default_banner_seed "$out" "; seed 1"
    out=$(LRSH_DEFAULT_MODEL=$env_model pty --seed 42 -- "expect lrsh> " "send show\n" "expect settings" "expect lrsh> " "send \004")
    check_contains default_seed_given_banner "$out" "; seed 42"
    check_contains default_seed_given_show "$out" "settings   seed=42 "
    check_eq default_banner_suggestion yes "$([ -n "$suggestion" ] && echo yes || echo no)"
    out=$(lrsh -c "model load $default; $suggestion" 2>&1); rc=$?
    check_status "default_banner_suggestion_runs ($suggestion)" 0 $rc
    # scripts, -c and pipes start empty, whatever is bundled
    check_contains default_not_in_c "$(LRSH_DEFAULT_MODEL=$default lrsh -c show 2>&1)" "model      none"
    check_contains default_not_in_pipe "$(echo show | LRSH_DEFAULT_MODEL=$default lrsh 2>&1)" "model      none"
    echo show >"$TMP/show.lrsh"
    check_contains default_not_in_script "$(LRSH_DEFAULT_MODEL=$default lrsh "$TMP/show.lrsh" 2>&1)" "model      none"
else
    echo "# models/default.safetensors is missing: the default-model load is checked only for its messages"
fi
out=$(LRSH_DEFAULT_MODEL=$default pty --no-default -- "expect lrsh> " "send show\n" "expect settings" "expect lrsh> " "send \004")
check_contains no_default_banner "$out" "no model loaded"
check_contains no_default_show "$out" "model      none"
out=$(LRSH_DEFAULT_MODEL=$TMP/absent.safetensors pty -- "expect lrsh> " "send show\n" "expect settings" "expect lrsh> " "send \004")
check_contains default_missing_says "$out" "no default model at $TMP/absent.safetensors"
check_contains default_missing_goes_on "$out" "EXITED 0"
out=$(LRSH_DEFAULT_MODEL=$TMP pty -- "expect lrsh> " "send \004")   # a folder: said so, not "no model at"
check_contains default_folder_says "$out" "no default model: LRSH_DEFAULT_MODEL=$TMP is a folder, not a model file"
mkfifo "$TMP/default-fifo"   # a FIFO (and /dev/zero, a link loop) got "no default model at", read as missing
out=$(LRSH_DEFAULT_MODEL=$TMP/default-fifo pty -- "expect lrsh> " "send \004")
check_contains default_fifo_says "$out" "no default model: LRSH_DEFAULT_MODEL=$TMP/default-fifo is a device, pipe or socket, not a model file"
check_contains default_folder_goes_on "$out" "EXITED 0"
printf 'not a checkpoint at all' >"$TMP/bad.safetensors"
out=$(LRSH_DEFAULT_MODEL=$TMP/bad.safetensors pty -- "expect lrsh> " "send show\n" "expect settings" "expect lrsh> " "send \004")
check_contains default_bad_says "$out" "default model not loaded ($TMP/bad.safetensors"
check_contains default_bad_goes_on "$out" "model      none"
check_contains help_mentions_no_default "$(lrsh --help)" "--no-default"

# ---- set device: CUDA unavailable is said plainly; cpu is a no-op that succeeds
out=$(lrsh -c "$prep; set device cpu; show" 2>&1); rc=$?
check_status set_device_cpu_status 0 $rc
check_contains set_device_cpu_show "$out" "device     cpu"
# ---- a Ctrl-C a slow step has not acted on within a second is acknowledged (a student saw
# nothing for 13 s on a big model, and a third Ctrl-C leaves lrsh); the step still ends whole ----
out=$(pty --no-default -- "expect lrsh> " "send $prep\n" "expect lrsh> " "send train steps=3 batch=4096\n" "expect batch=4096" \
          "sleep 0.3" "send \003" "expect Ctrl-C seen" "expect lrsh> " "send quit\n" "expect lrsh> " "send quit\n")
check_not_contains slow_stop_notice_no_timeout "$out" "TIMEOUT"
check_contains slow_stop_notice_shown "$out" "(Ctrl-C seen: stopping after the step, batch or round in progress; a third Ctrl-C leaves lrsh)"
check_contains slow_stop_notice_step_kept "$out" "interrupted at step 1 (1 of 3 steps)"
# three quick Ctrl-Cs at a slow step count as one until the notice is out: they left lrsh at
# once, its unsaved training lost, before anything said a third would
out=$(pty --no-default -- "expect lrsh> " "send $prep\n" "expect lrsh> " "send train steps=3 batch=4096\n" "expect batch=4096" \
          "sleep 0.3" "send \003" "sleep 0.05" "send \003" "sleep 0.05" "send \003" "expect Ctrl-C seen" "expect lrsh> " \
          "send quit\n" "expect lrsh> " "send quit\n")
check_not_contains quick_ctrl_c_not_left "$out" "interrupted three times"
check_contains quick_ctrl_c_step_kept "$out" "interrupted at step 1 (1 of 3 steps)"
check_contains quick_ctrl_c_session_ends_by_quit "$out" "EXITED 0"

# ---- Ctrl-Z at the prompt, then fg (a student's "undo"): readline's mode comes back ----
# Under a job-control shell on a terminal: after fg the prompt and the typed text are redrawn
# and the terminal is in readline's raw mode again (it was left in the shell's cooked one:
# no prompt, echo on, Tab a literal tab). The master side reads the terminal's modes.
out=$(python3 - "$LRSH" <<'PY'
import os, pty, select, sys, termios, time
lrsh = sys.argv[1]
pid, fd = pty.fork()
if pid == 0:
    os.execvpe("bash", ["bash", "--norc", "--noprofile", "-i"], dict(os.environ, PS1="BASH$ "))
raw = b""
def until(text, t=30):
    global raw
    end = time.time() + t
    while text.encode() not in raw and time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try: raw += os.read(fd, 65536)
            except OSError: return False
    return text.encode() in raw
until("BASH$ ")
os.write(fd, (lrsh + " --threads 1 --no-default\r").encode()); until("lrsh> ")
os.write(fd, b"sho"); time.sleep(0.3)
raw = b""; os.write(fd, b"\x1a"); stopped = until("BASH$ ")
raw = b""; os.write(fd, b"fg\r"); redrawn = until("lrsh> sho", 10)
time.sleep(0.5)
icanon = bool(termios.tcgetattr(fd)[3] & termios.ICANON)
raw = b""; os.write(fd, b"w\r"); ran = until("settings", 10) and until("lrsh> ")
os.write(fd, b"quit\r"); until("BASH$ "); os.write(fd, b"exit\r"); time.sleep(0.5)
print("stopped=%s redrawn=%s icanon=%s show_ran=%s" % (stopped, redrawn, icanon, ran))
PY
)
check_eq ctrl_z_fg_prompt_back "stopped=True redrawn=True icanon=False show_ran=True" "$out"

# ---- Tab after a space escaped with a backslash, which the parser reads as part of the name
# (Tab only beeped): the name completes, in the quoted spelling Tab gives any name with a space ----
mkdir -p "$TMP/my models"; : > "$TMP/my models/run one.safetensors"
out=$(pty --no-default -- "expect lrsh> " "send model load $TMP/my\\\\ models/r\t" "expect run one.safetensors\"" "send \003" \
          "expect lrsh> " "send quit\n")
check_not_contains tab_after_escaped_space "$out" "TIMEOUT"

# ---- Tab on a file name the parser would read otherwise: a leading # (a comment: `data load`
# went on to the default corpus), a " inside (readline's "q"uote.txt is unterminated), a
# backslash (dropped as an escape), a ' after a typed ' — each completes to a spelling that names
# the file (tok load of a text file says "not a SentencePiece model", naming what it opened) ----
mkdir -p "$TMP/odd"
for f in '#start.txt' 'q"uote.txt' 'back\slash.txt' "it's.txt"; do echo hi > "$TMP/odd/$f"; done
lrsh_abs=$(cd "$(dirname "$LRSH")" && pwd)/$(basename "$LRSH")
for typed in "#" "q" "ba" "'i"; do
    name=$(cd "$TMP/odd" && ls -d "$(printf '%s' "$typed" | tr -d "'")"*)
    out=$(cd "$TMP/odd" && LRSH=$lrsh_abs && pty --no-default -- "expect lrsh> " "send tok load $typed\t" "sleep 0.5" "send \n" \
              "expect lrsh> " "send quit\n")
    check_contains "tab_quotes_$(printf '%s' "$name" | tr -c 'a-z' '_')" "$out" "error: $name: not a SentencePiece model"
done
# two names with a ' after a typed ': the common part, then a second Tab completes the one
# (a ' spelled inside single quotes left the second Tab lost: unterminated ' quote)
mkdir -p "$TMP/odd2"; echo hi > "$TMP/odd2/it's_a.txt"; echo hi > "$TMP/odd2/it's_b.txt"
out=$(cd "$TMP/odd2" && LRSH=$lrsh_abs && pty --no-default -- "expect lrsh> " "send tok load 'it\t" "sleep 0.5" "send a\t" \
          "sleep 0.5" "send \n" "expect lrsh> " "send quit\n")
check_contains tab_quotes_apostrophe_second_tab "$out" "error: it's_a.txt: not a SentencePiece model"

# ---- Ctrl-C while output is paused (Ctrl-S) cuts a write short: stdout is not lost for it (it
# was taken for a closed reader, and every later result went to /dev/null) ----
out=$(pty --no-default -- "expect lrsh> " "send \023" "send help\n" "sleep 1" "send \003" "sleep 1" "send \021" \
          "expect lrsh> " "send show\n" "expect settings" "expect lrsh> " "send quit\n")
check_not_contains paused_output_ctrl_c_no_timeout "$out" "TIMEOUT"
check_not_contains paused_output_ctrl_c_stdout_kept "$out" "cannot write to standard output"

# ---- Ctrl-\ at the prompt is ignored, as bash does (it ended the session with a core dump,
# unsaved training and all) ----
out=$(pty --no-default -- "expect lrsh> " "send \034" "sleep 0.5" "send show\n" "expect settings" "expect lrsh> " "send quit\n")
check_not_contains ctrl_backslash_prompt_no_timeout "$out" "TIMEOUT"
check_contains ctrl_backslash_prompt_session_goes_on "$out" "EXITED 0"

# ---- Ctrl-C at completion's "Display all N possibilities? (y or n)": it answers no and drops
# the line; the next command runs (the bell rang, and the next line was dropped in silence) ----
mkdir -p "$TMP/many"; for i in $(seq 100 250); do : > "$TMP/many/$i.safetensors"; done
out=$(pty --no-default -- "expect lrsh> " "send model load $TMP/many/\t\t" "expect (y or n)" "send \003" "expect lrsh> " \
          "send tok encode hi\n" "expect lrsh> " "send quit\n")
check_not_contains ctrl_c_completion_question_no_timeout "$out" "TIMEOUT"
check_contains ctrl_c_completion_question_next_runs "$out" "error: no tokenizer"

# ---- a narrow terminal: the live line keeps the loss, shorter forms first (at 30 columns a
# student's showed "step 2513 (13/15)  …"; at 20 a field cut in half). Here steps 1–3: at 22
# columns "step 1 (1/3)  loss 9.0123" is too wide, at 16 "step 1  loss 9.0123" too ----
for cols in 22 16; do
    out=$(PTY_COLS=$cols pty --no-default -- "expect lrsh> " "send $prep\n" "expect lrsh> " "send train steps=3\n" "expect lrsh> " "send quit\n" "expect lrsh> " "send quit\n")
    check_eq narrow_live_line_keeps_loss_$cols yes "$(printf '%s\n' "$out" | grep -Eq '^(step )?[0-9]+  loss [0-9.]+' && echo yes || echo no)"
done

# ---- TERM=dumb (Emacs' shell): no escape sequences, plain progress lines as in a pipe ----
out=$(TERM=dumb PTY_RAW=1 pty --no-default -- "expect lrsh> " "send $prep; train steps=3; step\n" "expect lrsh> " "send quit\n" "expect lrsh> " "send quit\n")
esc=$(printf '\033')
check_eq term_dumb_no_color_or_erase "" "$(printf '%s' "$out" | grep -o "$esc\[[0-9;]*[mK]" | sort -u | tr '\n' ' ')"
# … and `set progress lines` on any terminal (a screen reader speaks every redraw): the plain
# lines, none redrawn in place
out=$(PTY_RAW=1 pty --no-default -- "expect lrsh> " "send $prep; set progress lines; train steps=20\n" "expect lrsh> " "send quit\n" "expect lrsh> " "send quit\n")
check_eq progress_lines_no_redraw "0 yes" "$(printf '%s' "$out" | python3 -c 'import re, sys
t = sys.stdin.read(); print(len(re.findall(r"\r[^\r\n]*\x1b\[K", t)), "yes" if re.search(r"step 20 \(20/20\)  loss [0-9.]+", t) else "no")')"

if lrsh -c "set device cuda" >"$TMP/cuda.log" 2>&1; then
    echo "# a CUDA device is present: set device cuda/cpu round trip"
    out=$(lrsh -c "$prep; train steps=2; set device cuda; train steps=1; set device cpu; show" 2>&1); rc=$?
    check_status set_device_round_trip 0 $rc
    check_contains set_device_moved "$out" "model moved to cuda"
    check_contains set_device_step_kept "$out" "step 3"
    out=$(lrsh -c "set precision bf16; set device cuda; show" 2>&1); rc=$?
    check_status set_precision_on_gpu 0 $rc
    check_contains set_precision_applied "$out" ", bf16"   # the device line ends with the GEMM precision
    # switching the attention kernels with a model on the GPU: activations and generator follow
    out=$(lrsh -c "$prep; set device cuda; train steps=1; set attention flash; train steps=1; generate n=4; set attention gemm; train steps=1; generate n=4" 2>&1); rc=$?
    check_status set_attention_on_gpu 0 $rc
else
    check_contains set_device_cuda_unavailable "$(cat "$TMP/cuda.log")" "CUDA is not available:"
    out=$(lrsh --json -c "$prep; set errexit off; set device cuda; show" 2>/dev/null)
    check_eq set_device_cuda_keeps_cpu '"cpu"' "$(printf '%s\n' "$out" | json_field device)"
fi

finish
