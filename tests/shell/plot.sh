# plot.sh — braille charts (a known series from a log file, and this session's runs), png=/svg=
# through gnuplot (and the message without it), `log FILE` JSON lines, `run NAME`, and leaving
# the interactive prompt with an unsaved model.
. tests/shell/testlib

lrsh() { "$LRSH" --threads 1 "$@"; }   # tiny models: one thread is fastest (see checkpoint.sh)

# Does stdin contain a braille character with dots (U+2801–U+28FF)? yes/no
has_braille() {
    python3 -c 'import sys; t = sys.stdin.buffer.read().decode("utf-8", "replace"); print("yes" if any(0x2801 <= ord(c) <= 0x28FF for c in t) else "no")'
}

# ---- a known series: two runs and validation points, written as `log` would
python3 -c '
import json, math
with open("'"$TMP"'/known.jsonl", "w") as f:
    for run, scale in (("alpha", 1.0), ("beta", 0.8)):
        for s in range(1, 51):
            f.write(json.dumps({"step": s, "loss": 2 + 6 * scale * math.exp(-s / 10), "lr": 1e-3 * min(1, s / 10),
                                "grad_norm": 1 / s, "clip_scale": 1, "tok_per_s": 1000, "seconds": 0.1, "run": run}) + "\n")
            if run == "alpha" and s % 10 == 0:
                f.write(json.dumps({"step": s, "val_loss": 2.5 + 5 * math.exp(-s / 10), "run": run}) + "\n")
'
# ---- table=on: the values as text (a screen reader reads braille as "dots-1-2-3"): rows spread
# over the steps and every validation step, each cell the last value since the row above's
out=$(lrsh -c "plot loss from=$TMP/known.jsonl table=on height=6" 2>&1)
check_eq table_header "      step       alpha   alpha val        beta" "$(printf '%s\n' "$out" | sed -n 2p)"
check_eq table_steps "1 10 11 20 21 30 40 50" "$(printf '%s\n' "$out" | tail -n +3 | awk '{printf "%s%s", (NR > 1 ? " " : ""), $1}')"
check_eq table_row_10 "10 4.2073 4.3394 3.7658" "$(printf '%s\n' "$out" | awk '$1 == 10 {print $1, $2, $3, $4}')"
check_eq table_val_gap "11 3.9972 – 3.5978" "$(printf '%s\n' "$out" | awk '$1 == 11 {print $1, $2, $3, $4}')"
check_not_contains table_no_braille "$out" "⠒"
# ---- the y scale: auto takes a log scale when the values span 100× (AdamW's ‖ΔW‖₂/η beside
# Spectron's), linear otherwise; scale= chooses; a log scale leaves out values ≤ 0, saying so
python3 -c '
import json
with open("'"$TMP"'/spread.jsonl", "w") as f:
    for run, dw in (("adamw", lambda s: 100.0 * s), ("spectron", lambda s: 0.5)):
        for s in range(1, 21):
            f.write(json.dumps({"step": s, "loss": 0.0 if s == 3 and run == "adamw" else 5.0 - s / 10, "dw_over_eta": dw(s), "run": run}) + "\n")
'
out=$(lrsh --json -c "plot dw_over_eta from=$TMP/spread.jsonl; plot dw_over_eta from=$TMP/spread.jsonl scale=linear; plot loss from=$TMP/spread.jsonl" 2>/dev/null)
check_eq plot_scale_auto '"log" "linear" "linear"' "$(printf '%s\n' "$out" | python3 -c 'import json, sys; print(" ".join(json.dumps(json.loads(l)["scale"]) for l in sys.stdin if "\"plot\"" in l))')"
out=$(lrsh -c "plot dw_over_eta from=$TMP/spread.jsonl" 2>&1)
check_contains plot_scale_log_title "$out" "(Spectron's bound: 1) — log scale"
check_contains plot_scale_log_top "$out" "2000 ┤"
check_contains plot_scale_log_bottom "$out" "0.5 ┤"
check_contains plot_bound_line "$out" " Spectron's bound ‖ΔW‖₂/η = 1"
check_eq plot_bound_dotted True "$(printf '%s\n' "$out" | python3 -c 'import re, sys; print(bool(re.search("│([⠁⠂⠄⡀])\\1{20}", sys.stdin.read())))')"
# the legend shows the glyph the line is drawn with (it showed ⠂ for a line of ⠁: by ear, another)
check_eq plot_bound_legend_glyph True "$(printf '%s\n' "$out" | python3 -c 'import re, sys
t = sys.stdin.read(); g = re.search("│([⠁⠂⠄⡀])\\1{20}", t).group(1); print(g + g + " Spectron" in t)')"

# ---- the part asked for: smooth=N is each line's trailing mean (validation marks as they
# were), steps=A..B those steps only (smoothed first: the mean at 30 takes 26..30), ymin=/ymax=
# fix the axis with values past it drawn on its edge and counted in a note
out=$(lrsh --json -c "plot loss from=$TMP/known.jsonl; plot loss from=$TMP/known.jsonl smooth=5 steps=30..45" 2>/dev/null | grep '"command":"plot"')
check_eq plot_smooth_steps True "$(printf '%s\n' "$out" | python3 -c '
import json, sys
raw, view = [json.loads(l) for l in sys.stdin]
a = {s["name"]: s for s in raw["series"]}; b = {s["name"]: s for s in view["series"]}
ok = view["smooth"] == 5
for name in ("alpha", "beta"):
    ys = dict(zip(a[name]["steps"], a[name]["values"]))
    want = [sum(ys[k] for k in range(s - 4, s + 1)) / 5 for s in range(30, 46)]
    ok &= b[name]["steps"] == list(range(30, 46)) and all(abs(x - y) < 1e-5 for x, y in zip(b[name]["values"], want))   # JSON has 8 digits
ok &= b["alpha val"]["steps"] == [30, 40] and b["alpha val"]["values"] == [v for s, v in zip(a["alpha val"]["steps"], a["alpha val"]["values"]) if 30 <= s <= 45]
print(ok)')"
out=$(lrsh -c "plot loss from=$TMP/known.jsonl smooth=5 height=8" 2>&1)
check_contains plot_smooth_title "$out" "— mean of the last 5 points"
out=$(lrsh -c "plot loss from=$TMP/known.jsonl ymin=2.5 ymax=4 height=8" 2>&1)
check_contains plot_ymax_top "$out" "   4 ┤"
check_contains plot_ymin_bottom "$out" " 2.5 ┤"
above=$(python3 -c 'import math; print(sum(2 + 6 * k * math.exp(-s / 10) > 4 for k in (1.0, 0.8) for s in range(1, 51)) + sum(2.5 + 5 * math.exp(-s / 10) > 4 for s in range(10, 51, 10)))')
below=$(python3 -c 'import math; print(sum(2 + 6 * k * math.exp(-s / 10) < 2.5 for k in (1.0, 0.8) for s in range(1, 51)))')
check_contains plot_ymax_note "$out" "note: $above values above ymax=4 drawn on the chart's top edge"
check_contains plot_ymin_note "$out" "note: $below values below ymin=2.5 drawn on the chart's bottom edge"
out=$(lrsh -c "set errexit off; plot loss from=$TMP/known.jsonl steps=60..; plot loss from=$TMP/known.jsonl steps=9-20; plot loss from=$TMP/known.jsonl ymin=3 ymax=3; plot dw_over_eta from=$TMP/spread.jsonl ymin=0 scale=log" 2>&1)
check_contains plot_steps_none "$out" "error: plot: no points in steps=60.. (the runs have steps 1..50)"
check_contains plot_steps_bad "$out" "error: plot: steps=9-20 is not a range of steps A..B"
check_contains plot_ylimits_order "$out" "error: plot: ymin=3 is not below ymax=3"
check_contains plot_ylimits_log "$out" "error: plot: ymin=0 on a log scale"
# a y range leaves a spike out of the scale's choice: 0.5 to 1 is linear under ymax=1; an end
# at 0 or below makes auto linear (ymin=0 was refused: "on a log scale" nobody asked for)
check_eq plot_ylimits_scale '"linear" "linear"' "$(lrsh --json -c "plot dw_over_eta from=$TMP/spread.jsonl ymax=1; plot dw_over_eta from=$TMP/spread.jsonl ymin=0" 2>/dev/null | python3 -c 'import json, sys; print(" ".join(json.dumps(json.loads(l)["scale"]) for l in sys.stdin))')"
# on a log scale a value ≤ 0 is left out (said so), not drawn on ymin='s edge
out=$(lrsh -c "plot loss from=$TMP/spread.jsonl scale=log ymin=2 height=4" 2>&1)
check_contains plot_log_ymin_nonpositive "$out" "note: 1 value ≤ 0 left out of the chart above"
check_not_contains plot_log_ymin_not_on_edge "$out" "below ymin"
check_not_contains plot_bound_only_dw "$(lrsh -c "plot loss from=$TMP/spread.jsonl" 2>&1)" "Spectron's bound ‖ΔW‖₂/η ="
# a run keeps its letter (and color) in every chart: the third run is c even where the second has no points
python3 -c '
import json
with open("'"$TMP"'/three.jsonl", "w") as f:
    for run in ("r1", "r2", "r3"):
        for s in range(1, 6):
            row = {"step": s, "loss": 4.0 - s / 10, "run": run}
            if run != "r2": row["dw_over_eta"] = 2.0 + s
            f.write(json.dumps(row) + "\n")
'
out=$(lrsh -c "plot dw_over_eta from=$TMP/three.jsonl" 2>&1)
check_contains plot_letter_kept_a "$out" "a ⠒⠒ r1"
check_contains plot_letter_kept_c "$out" "c ⠒⠒ r3"
out=$(lrsh -c "plot loss from=$TMP/spread.jsonl scale=log" 2>&1); rc=$?
check_status plot_scale_log_status 0 $rc
check_contains plot_scale_log_nonpositive "$out" "note: 1 value ≤ 0 left out of the chart above (log scale; scale=linear draws them)"
out=$(lrsh -c "plot loss from=$TMP/spread.jsonl scale=ln" 2>&1); rc=$?
check_status plot_scale_bad nonzero $rc
check_contains plot_scale_bad_msg "$out" "auto|linear|log"

# runs=: only the runs named; an unknown one is an error naming those there are
out=$(lrsh --json -c "plot loss from=$TMP/known.jsonl runs=beta" 2>/dev/null); rc=$?
check_status plot_runs_status 0 $rc
check_eq plot_runs_only '["beta"]' "$(printf '%s\n' "$out" | json_eval 'json.dumps([x["name"] for x in o["series"]])')"
# --json carries the points drawn: beta's 50 losses as the file has them (at float precision)
check_eq plot_json_values "50 True" "$(printf '%s\n' "$out" | json_eval '" ".join(str(v) for v in (
    len(o["series"][0]["values"]), o["series"][0]["steps"] == list(range(1, 51)) and all(
    abs(v - (2 + 6 * 0.8 * math.exp(-s / 10))) <= 1e-6 * v for s, v in zip(o["series"][0]["steps"], o["series"][0]["values"]))))')"
# a pattern names runs too (a sweep's, without typing each); one naming none is the same error
out=$(lrsh --json -c "plot loss from=$TMP/known.jsonl runs=b*" 2>/dev/null)
check_eq plot_runs_pattern '["beta"]' "$(printf '%s\n' "$out" | json_eval 'json.dumps([x["name"] for x in o["series"]])')"
out=$(lrsh --json -c "plot loss from=$TMP/known.jsonl runs=?l*,beta" 2>/dev/null)
check_eq plot_runs_patterns '["alpha", "alpha val", "beta"]' "$(printf '%s\n' "$out" | json_eval 'json.dumps([x["name"] for x in o["series"]])')"
check_contains plot_runs_pattern_none "$(lrsh -c "plot loss from=$TMP/known.jsonl runs=z*" 2>&1)" "plot runs=: no run 'z*' (runs: alpha, beta)"
out=$(lrsh -c "plot loss from=$TMP/known.jsonl runs=gamma" 2>&1); rc=$?
check_status plot_runs_unknown_status nonzero $rc
check_contains plot_runs_unknown "$out" "plot runs=: no run 'gamma' (runs: alpha, beta)"

out=$(lrsh -c "plot loss from=$TMP/known.jsonl" 2>&1); rc=$?
check_status plot_known_status 0 $rc
check_eq plot_known_braille yes "$(printf '%s' "$out" | has_braille)"
check_contains plot_legend_alpha "$out" "a ⠒⠒ alpha"
check_contains plot_legend_beta "$out" "b ⠒⠒ beta"
# a run's validation marks are its letter in capitals when several runs are drawn (two runs' *
# marks told apart only by color: a screen reader, NO_COLOR and a pipe had none)
check_contains plot_legend_val "$out" "    A  alpha val"
# the validation points are marks over the lines' dots, one a point (steps 10 … 50: 5 cells)
check_eq plot_val_marks 5 "$(printf '%s\n' "$out" | grep -E '[│┤]' | tr -cd 'A' | wc -c | tr -d ' ')"
check_contains plot_val_alone_star "$(lrsh -c "plot loss from=$TMP/known.jsonl runs=alpha" 2>&1)" "    *  alpha val"
# a run's letter stays over a validation mark in its cell (eval_every's last evaluation is at
# the last step: it covered both letters, and without color the runs looked alike)
python3 -c '
import json
with open("'"$TMP"'/lastval.jsonl", "w") as f:
    for run, y in (("one", 3.0), ("two", 5.0)):
        for s in range(1, 21):
            f.write(json.dumps({"step": s, "loss": y, "run": run}) + "\n")
        f.write(json.dumps({"step": 20, "val_loss": y, "run": run}) + "\n")
'
# an image of a field with no points: one clear line, no file (gnuplot said "x range is invalid")
none=$(lrsh -c "plot grad_norm from=$TMP/lastval.jsonl png=$TMP/none.png" 2>&1); rc=$?
check_status plot_image_no_points_status 1 $rc
check_contains plot_image_no_points "$none" "png=/svg=: gnorm has no points to draw: no image was written"
check_eq plot_image_no_points_no_file no "$([ -e "$TMP/none.png" ] && echo yes || echo no)"
lastval=$(lrsh -c "plot loss from=$TMP/lastval.jsonl" 2>&1)
check_eq plot_letters_over_val "a b" "$(printf '%s\n' "$lastval" | grep -E '[│┤]' | grep -oE '[ab]$' | sort | tr '\n' ' ' | sed 's/ $//')"
# ... beside its validation mark, not over it (the letter hid the mark: the legend listed points
# the chart did not show); and runs ending in one cell each keep their letter
check_eq plot_val_marks_beside_letters 2 "$(printf '%s\n' "$lastval" | grep -E '[│┤]' | tr -cd 'AB' | wc -c | tr -d ' ')"
sed 's/5\.0/3.0/' "$TMP/lastval.jsonl" > "$TMP/sameend.jsonl"
sameend=$(lrsh -c "plot loss from=$TMP/sameend.jsonl" 2>&1)
check_eq plot_same_end_letters "1 1 1" "$(printf '%s\n' "$sameend" | grep -E '[│┤]' | python3 -c 'import sys; t = sys.stdin.read(); print(t.count("a"), t.count("b"), t.count("A") + t.count("B"))')"
check_contains plot_y_max "$out" "7.429"        # 2 + 6·e^(−1/10), the first alpha loss
check_contains plot_x_range "$out" "50  step"
check_contains plot_axis "$out" "└──"
check_eq plot_no_ansi_in_pipe no "$(printf '%s' "$out" | grep -q "$(printf '\033')" && echo yes || echo no)"
# a log with a run appended twice (the same name from step 1 again: `log` appends) plots two
# series, the second as alpha#2; a resumed run (later steps) stays one
cat "$TMP/known.jsonl" "$TMP/known.jsonl" >"$TMP/twice.jsonl"
out=$(lrsh --json -c "plot loss from=$TMP/twice.jsonl" 2>/dev/null)
check_eq plot_rerun_split '["alpha", "alpha val", "beta", "alpha#2", "alpha#2 val", "beta#2"]' "$(printf '%s\n' "$out" | json_eval 'json.dumps([x["name"] for x in o["series"]])')"
check_eq plot_rerun_points "$(lrsh --json -c "plot loss from=$TMP/known.jsonl" 2>/dev/null | json_eval 'json.dumps([x["points"] for x in o["series"]])' | sed 's/]$//; s/^\[//')" \
    "$(printf '%s\n' "$out" | json_eval 'json.dumps([x["points"] for x in o["series"]][:3])' | sed 's/]$//; s/^\[//')"
# lines that are not log records are skipped, and counted
{ cat "$TMP/known.jsonl"; echo 'not json'; echo '{"note": 1}'; } >"$TMP/mixed.jsonl"
out=$(lrsh -c "plot loss from=$TMP/mixed.jsonl" 2>&1)
check_contains plot_skipped_lines "$out" "note: from=$TMP/mixed.jsonl: 2 lines skipped (not a \`log\` record"
out=$(lrsh -c "plot lr from=$TMP/known.jsonl width=30 height=5" 2>&1)
check_contains plot_lr_title "$out" "learning rate"
check_eq plot_lr_height 5 "$(printf '%s\n' "$out" | grep -c '[┤│]')"
out=$(lrsh --json -c "plot gnorm from=$TMP/known.jsonl" 2>/dev/null)
check_eq plot_json "valid 1" "$(printf '%s\n' "$out" | json_lines)"
check_eq plot_json_series "['alpha', 'beta']" "$(printf '%s\n' "$out" | json_eval '[x["name"] for x in o["series"]]')"
# large values read as 91.45k, not 9.145e+04
python3 -c '
import json
with open("'"$TMP"'/fast.jsonl", "w") as f:
    for s in range(1, 51):
        f.write(json.dumps({"step": s, "loss": 3.0, "tok_per_s": 86550 + 100 * (s - 1), "run": "fast"}) + "\n")
'
out=$(lrsh -c "plot tok_per_s from=$TMP/fast.jsonl" 2>&1)
check_contains plot_large_legend "$out" "(50 points, last 91.45k)"
check_contains plot_large_axis "$out" "k ┤"
check_not_contains plot_large_no_exponent "$out" "e+0"
# one point: the step axis is whole steps either side of it, not 5 % of the step (1425.95)
printf '{"step": 1500, "loss": 3.5, "run": "one"}\n' > "$TMP/one.jsonl"
out=$(lrsh -c "plot loss from=$TMP/one.jsonl" 2>&1)
check_eq plot_one_point_axis True "$(printf '%s\n' "$out" | python3 -c 'import sys; print(any(l.split()[:2] == ["1499", "1501"] for l in sys.stdin))')"
# run names count characters, not bytes; runs --json carries the plateau its verdict compares with
out=$(lrsh -c "run $(python3 -c 'print("é" * 40)')" 2>&1); rc=$?
check_status run_name_40_chars 0 $rc
out=$(lrsh -c "run $(python3 -c 'print("é" * 41)')" 2>&1); rc=$?
check_contains run_name_41_chars "$out" "a run name has 1 to 40 characters (got 41)"
out=$(lrsh -c "plot los from=$TMP/known.jsonl" 2>&1); rc=$?
check_status plot_bad_field_status nonzero $rc
check_contains plot_bad_field "$out" "did you mean 'loss'"
out=$(lrsh -c "plot" 2>&1); rc=$?
check_status plot_nothing_status nonzero $rc
check_contains plot_nothing "$out" "nothing to plot"

# a run's name with an escape byte (from a log, or typed at `run`): the legend shows it as '?'
printf '{"step":1,"loss":5.9,"run":"x\\u001b[31mRED"}\n{"step":2,"loss":5.8,"run":"x\\u001b[31mRED"}\n' > "$TMP/esc.jsonl"
out=$(lrsh -c "plot loss from=$TMP/esc.jsonl" 2>&1)
check_contains plot_legend_escaped "$out" "x?[31mRED"
check_eq plot_legend_no_escape_byte 0 "$(printf '%s' "$out" | tr -cd '\033' | wc -c | tr -d ' ')"

# ---- png= / svg= with gnuplot, and a clear message without it
mkfifo "$TMP/pipe"   # a pipe to write to: refused (no writer waits on a reader that never comes)
if command -v gnuplot >/dev/null 2>&1; then
    out=$(lrsh -c "plot loss from=$TMP/known.jsonl png=$TMP/loss.png svg=$TMP/loss.svg" 2>&1); rc=$?
    check_status png_status 0 $rc
    check_contains png_reported "$out" "wrote $TMP/loss.png"
    check_eq png_magic 89504e470d0a1a0a "$(head -c 8 "$TMP/loss.png" | od -An -tx1 | tr -d ' \n')"
    check_eq svg_file yes "$(grep -q '<svg' "$TMP/loss.svg" && echo yes || echo no)"
    # a run's validation points in its line's color, the next run in another
    colors=$(python3 -c 'import re, sys
color = {}   # each plot group: its legend text, and the color of its data (the last rgb in it)
for chunk in open(sys.argv[1]).read().split("<g id=\"gnuplot_plot_")[1:]:
    name, rgb = re.search(r"<text>([^<]*)</text>", chunk), re.findall(r"rgb\([^)]*\)", chunk)
    if name and rgb: color[name.group(1)] = rgb[-1]
print(color.get("alpha") == color.get("alpha val") is not None, color.get("alpha") != color.get("beta"))' "$TMP/loss.svg")
    check_eq svg_val_points_in_run_color "True True" "$colors"
    # dw_over_eta's image draws Spectron's bound as the terminal chart does (it had none), with the
    # legend under the chart (inside, it sat on the curves)
    lrsh -c "plot dw_over_eta from=$TMP/spread.jsonl svg=$TMP/bound.svg" >/dev/null 2>&1
    check_eq svg_bound_line yes "$(grep -q "Spectron's bound ‖ΔW‖₂/η = 1" "$TMP/bound.svg" && echo yes || echo no)"
    # ymin= above every point: the image has the chart's range too (gnuplot had none to draw)
    out=$(lrsh -c "plot loss from=$TMP/known.jsonl ymin=10 svg=$TMP/above.svg height=4" 2>&1); rc=$?
    check_status svg_ymin_above_all 0 $rc
    check_contains svg_ymin_above_all_written "$out" "wrote $TMP/above.svg"
    # written over again: an image of its kind yes, another file no; a name that says otherwise: a note
    out=$(lrsh -c "plot loss from=$TMP/known.jsonl png=$TMP/loss.png" 2>&1); rc=$?
    check_status png_over_png 0 $rc
    # gnuplot stopped midway (here by a file-size limit, as by a full disk): the old image stays
    # whole, no temporary file stays beside it, and the error says so
    before=$(cksum < "$TMP/loss.png")
    out=$( (ulimit -f 8; lrsh -c "plot loss from=$TMP/known.jsonl png=$TMP/loss.png svg=$TMP/loss.svg") 2>&1); rc=$?
    check_status png_cut_short_status nonzero $rc
    check_contains png_cut_short_says "$out" "gnuplot"
    check_eq png_cut_short_kept "$before" "$(cksum < "$TMP/loss.png")"
    check_eq png_cut_short_no_temporary "" "$(ls "$TMP" | grep '\.tmp\.')"
    # ... and of a file that was not there: "was not written", not "is as it was"
    out=$( (ulimit -f 8; lrsh -c "plot loss from=$TMP/known.jsonl png=$TMP/fresh-cut.png") 2>&1)
    check_contains png_cut_short_new_file "$out" "fresh-cut.png was not written"
    # through a symbolic link: the file it names is written, the link stays a link
    ln -s loss.png "$TMP/link.png"
    before=$(cksum < "$TMP/loss.png")
    out=$(lrsh -c "plot loss from=$TMP/known.jsonl runs=alpha png=$TMP/link.png" 2>&1); rc=$?
    check_status png_link_status 0 $rc
    check_eq png_link_kept yes "$([ -L "$TMP/link.png" ] && echo yes || echo no)"
    check_eq png_link_target_written yes "$([ "$(cksum < "$TMP/loss.png")" != "$before" ] && echo yes || echo no)"
    # png= and svg= of one file: refused (the second temporary took the first's name)
    out=$(lrsh -c "plot loss from=$TMP/known.jsonl png=$TMP/both.img svg=$TMP/both.img" 2>&1); rc=$?
    check_status png_svg_same_file_status nonzero $rc
    check_contains png_svg_same_file "$out" "png= and svg= name the same file"
    # two names too long for NAME.tmp.PID in one folder: two temporary files (they shared
    # .lrsh.tmp.PID, and both images failed as "incomplete")
    la="$TMP/$(python3 -c "print('a' * 236)").png"; lb="$TMP/$(python3 -c "print('b' * 236)").svg"
    out=$(lrsh -c "plot loss from=$TMP/known.jsonl png=$la svg=$lb" 2>&1); rc=$?
    check_status png_svg_long_names_status 0 $rc
    check_eq png_svg_long_names_written "yes yes" "$([ -s "$la" ] && echo yes || echo no) $(grep -q '<svg' "$lb" && echo yes || echo no)"
    rm -f "$la" "$lb"
    printf 'my notes\n' > "$TMP/notes.txt"
    out=$(lrsh -c "plot loss from=$TMP/known.jsonl png=$TMP/notes.txt" 2>&1); rc=$?
    check_status png_over_text_status nonzero $rc
    check_contains png_over_text_refused "$out" "notes.txt exists and is not a PNG image: no image was written"
    check_eq png_over_text_kept "my notes" "$(cat "$TMP/notes.txt")"
    # a newline in the name: gnuplot would drop it and write to notes.txt, which was never checked
    out=$(lrsh -c "plot loss from=$TMP/known.jsonl png=\"$TMP/note\\ns.txt\"" 2>&1); rc=$?
    check_status png_newline_name_status nonzero $rc
    check_contains png_newline_name_refused "$out" "holds a control character"
    check_eq png_newline_name_notes_kept "my notes" "$(cat "$TMP/notes.txt")"
    chmod 444 "$TMP/loss.png"
    out=$(lrsh -c "plot loss from=$TMP/known.jsonl png=$TMP/loss.png" 2>&1); rc=$?
    check_status png_read_only_status nonzero $rc
    check_contains png_read_only_refused "$out" "loss.png: it is read-only"
    chmod 644 "$TMP/loss.png"
    out=$(timeout 30 "$LRSH" --threads 1 -c "plot loss from=$TMP/known.jsonl png=$TMP/pipe" 2>&1); rc=$?
    check_status png_pipe_status 1 $rc
    out=$(lrsh -c "plot loss from=$TMP/known.jsonl png=$TMP/loss.jpg" 2>&1)
    check_contains png_named_jpg_note "$out" "loss.jpg holds PNG data whatever its name says"
    out=$(lrsh -c "plot loss from=$TMP/known.jsonl png=$TMP/absent/loss.png" 2>&1); rc=$?
    check_status png_unwritable_status nonzero $rc
    check_contains png_unwritable_says "$out" "cannot write $TMP/absent/loss.png: No such file or directory"
else
    echo "# gnuplot is not installed: png=/svg= checked only for their message"
fi
out=$(PATH=/nonexistent "$LRSH" --threads 1 -c "plot loss from=$TMP/known.jsonl png=$TMP/none.png" 2>&1); rc=$?
check_status png_no_gnuplot_status nonzero $rc
check_contains png_no_gnuplot_says "$out" "gnuplot, which is not installed"
check_eq png_no_gnuplot_still_draws yes "$(printf '%s' "$out" | has_braille)"

# ---- log FILE, run NAME, plot from this session
"$LRSH" -q -c "tok train vocab=512 out=$TMP/tok.model; data load" >"$TMP/prep.log" 2>&1 || fail prep "$(cat "$TMP/prep.log")"
prep="tok load $TMP/tok.model; data load; set batch 2; model new tiny seq=32"
# a run whose name looks like a pattern is taken by its name (lr[0.1] matched lr1 too)
out=$(lrsh --json -c "$prep; run lr[0.1]; step; run lr1; step; plot loss runs=lr[0.1]" 2>/dev/null | grep '"command":"plot"')
check_eq plot_runs_literal '["lr[0.1]"]' "$(printf '%s\n' "$out" | json_eval 'json.dumps([x["name"] for x in o["series"]])')"
# a long session's runs: `plot` draws the last 26 (one letter each; runs=* all of them), `show`
# lists the last 8 after a line counting the others (800 runs made them a thousand lines)
python3 -c '
import json
with open("'"$TMP"'/many.jsonl", "w") as f:
    for r in range(30):
        for s in range(1, 6): f.write(json.dumps({"step": s, "loss": 5 - s / 10 + r / 100, "run": "r%d" % r}) + "\n")'
out=$(lrsh --json -c "plot loss from=$TMP/many.jsonl; plot loss from=$TMP/many.jsonl runs=*" 2>/dev/null)
check_eq plot_last_runs "26 r4 30" "$(printf '%s\n' "$out" | python3 -c 'import json, sys
a, b = [json.loads(l)["series"] for l in sys.stdin]; print(len(a), a[0]["name"], len(b))')"
check_contains plot_last_runs_note "$(lrsh -c "plot loss from=$TMP/many.jsonl height=4" 2>&1)" "(the last 26 of 30 runs: runs=NAME,… or a pattern draws others"
out=$(lrsh -c "tok load $TMP/tok.model; data load; set batch 1; model new dim=16 layers=1 heads=1 seq=8; $(for i in $(seq 1 10); do printf 'run s%d; step; ' "$i"; done) show" 2>&1)
check_contains show_earlier_runs "$out" "(2 earlier runs: \`run\` lists them all"
check_eq show_last_runs "s3 s10" "$(printf '%s\n' "$out" | sed -n 's/^  \(s[0-9]*\) .*step.*/\1/p' | sed -n '1p;$p' | tr '\n' ' ' | sed 's/ $//')"
# log appends to a log only: not to a checkpoint (one typo spoiled it), not to a pipe (it waited
# forever for a reader); a log whose last line a full disk cut short gets the next on a line of its own
printf 'not a log\n' > "$TMP/notes.txt"
out=$(lrsh -c "$prep; log $TMP/notes.txt" 2>&1); rc=$?
check_status log_not_a_log_status nonzero $rc
check_contains log_not_a_log "$out" "notes.txt exists and is not a log (JSON lines of steps): nothing was written"
printf '{\n  "name": "x"\n}\n' > "$TMP/config.json"
check_contains log_not_a_config "$(lrsh -c "log $TMP/config.json" 2>&1)" "config.json exists and is not a log"
printf '{"step": 1, "loss": 3.0, "run": "ro"}\n' > "$TMP/ro.jsonl"; chmod 444 "$TMP/ro.jsonl"
check_contains log_read_only "$(lrsh -c "log $TMP/ro.jsonl" 2>&1)" "ro.jsonl is read-only: nothing was written"
chmod 644 "$TMP/ro.jsonl"
check_eq log_not_a_log_kept "not a log" "$(cat "$TMP/notes.txt")"
out=$(timeout 30 "$LRSH" --threads 1 -c "log $TMP/pipe" 2>&1); rc=$?
check_status log_pipe_status 1 $rc
check_contains log_pipe_refused "$out" "pipe is a pipe or socket, not a file"
printf '{"step": 1, "loss": 3.0, "run": "cut"}\n{"step": 2, "lo' > "$TMP/cut.jsonl"
lrsh -q -c "$prep; log $TMP/cut.jsonl; train steps=1" >/dev/null 2>&1
check_eq log_cut_line_closed 3 "$(wc -l < "$TMP/cut.jsonl" | tr -d ' ')"
check_eq log_next_record_whole True "$(tail -n 1 "$TMP/cut.jsonl" | python3 -c 'import json, sys; print(json.loads(sys.stdin.read())["step"] == 1)')"
# Do the rows of stdin that start with 中文实验 or abc have WORD at the same display column?
# True/False (中文: two columns a character)
wide_rows_aligned() {
    grep -E '^(中文实验|abc) ' | python3 -c '
import sys, unicodedata
def col(l, word):
    i = l.index(word)
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in l[:i])
rows = [l for l in sys.stdin.read().split("\n") if l]
print(len(rows) == 2 and col(rows[0], sys.argv[1]) == col(rows[1], sys.argv[1]))' "$1"
}
# a name taken gets the least free -k (k ≥ 2; "r-02" is no k), found in one pass over the runs
names=$(lrsh --json -c "$prep; run r; step; run r-5; step; run r; step; run r; step; run r; step; run r; step; run r-02; step; run r; step; runs" 2>/dev/null | grep '"command":"runs"' | python3 -c '
import json, sys
print(" ".join(json.loads(l)["run"] for l in sys.stdin))')
check_eq run_names_least_free_suffix "r r-5 r-2 r-3 r-4 r-6 r-02 r-7" "$names"
# an eval of a new model before `run NAME` is that run's step-0 point, not a run of its own
# (it was "adamw-2", holding one val)
names=$(lrsh --json -c "$prep; run first; step; model new tiny seq=32; eval batches=1; run muon; step; runs" 2>/dev/null | grep '"command":"runs"' | python3 -c '
import json, sys
print(" ".join("%s:%s" % (o["run"], o["first_step"]) for o in map(json.loads, sys.stdin)))')
check_eq run_takes_start_eval "first:1 muon:1" "$names"
# two lrsh appending to one log at once (a sweep whose runs share the optimizer's name): each
# writer's lines, told by their "session", stay one series (interleaved, they were cut into a
# new NAME#k at every step that went back: 26 fragments of two runs)
python3 -c 'import json
for s in range(1, 6):
    for w, base in (("aaaa", 5.0), ("bbbb", 7.0)):
        print(json.dumps({"step": s, "loss": base - 0.1 * s, "run": "adamw", "session": w}))' >"$TMP/two-writers.jsonl"
out=$(lrsh --json -c "plot loss from=$TMP/two-writers.jsonl" 2>/dev/null)
check_eq log_two_writers_apart "adamw:5:4.5 adamw#2:5:6.5" "$(printf '%s\n' "$out" | json_eval '" ".join("%s:%d:%g" % (x["name"], x["points"], x["last"]) for x in o["series"])')"
# each line's run_id keeps runs apart and together: a fresh run beside a resumed one at step 1001
# (c1; the fresh one was cut in two), a resume in a third session after another session's rerun
# (c2; glued onto the rerun), a run renamed after its start's eval (one series, its new name),
# two sessions each starting with an eval (each val its run's), a rerun after 260 runs (no cap)
python3 -c 'import json, sys
def line(f, step, run, rid, ses, **kv):
    kv.update(step=step, run=run, run_id=str(rid), session=ses); f.write(json.dumps(kv) + "\n")
d = sys.argv[1]
with open(d + "/c1.jsonl", "w") as f:
    for s in range(1, 11):
        line(f, s, "adamw", 1, "a", loss=5.0)
        if s <= 5: line(f, 1000 + s, "adamw", 2, "b", loss=4.0)
with open(d + "/c2.jsonl", "w") as f:
    for s in range(1, 11): line(f, s, "adamw", 1, "a", loss=5.0)
    for s in range(1, 6): line(f, s, "adamw", 2, "b", loss=6.0)
    for s in range(11, 21): line(f, s, "adamw", 1, "c", loss=4.0)
with open(d + "/renamed.jsonl", "w") as f:
    line(f, 0, "adamw", 3, "a", val_loss=6.2)
    for s in range(1, 4): line(f, s, "muon", 3, "a", loss=6.0)
with open(d + "/evals.jsonl", "w") as f:
    for rid, ses in ((1, "a"), (2, "b")):
        line(f, 0, "adamw", rid, ses, val_loss=6.2)
        for s in range(1, 4): line(f, s, "adamw", rid, ses, loss=6.0)
with open(d + "/requeued.jsonl", "w") as f:   # killed at 50 (saved at 25), requeued: 26.. again
    # (the file cannot tell it from a second branch of the checkpoint at 25: both are drawn)
    for s in range(1, 51): line(f, s, "exp1", 7, "a", loss=5.0)
    for s in range(26, 61): line(f, s, "exp1", 7, "b", loss=4.0)
with open(d + "/fork.jsonl", "w") as f:   # a fork from step 30 writes 31..60 while the run goes on; a resume at 201
    for s in range(1, 201):
        line(f, s, "exp1", 7, "a", loss=5.0)
        if 40 <= s < 70: line(f, s - 9, "exp1", 7, "b", loss=3.0)
    for s in range(201, 211): line(f, s, "exp1", 7, "c", loss=4.0)
with open(d + "/evalfirst.jsonl", "w") as f:   # a resume that measures first: its val at 200 continues
    for s in range(1, 201): line(f, s, "exp1", 7, "a", loss=5.0)
    line(f, 200, "exp1", 7, "b", val_loss=4.5)
    for s in range(201, 211): line(f, s, "exp1", 7, "b", loss=4.0)
with open(d + "/branches.jsonl", "w") as f:   # two sessions resume one checkpoint at 25, at once
    for s in range(1, 26): line(f, s, "exp1", 7, "z", loss=5.0)
    for s in range(26, 31):
        line(f, s, "exp1", 7, "a", loss=4.0)
        line(f, s, "exp1", 7, "b", loss=3.0)
with open(d + "/many.jsonl", "w") as f:
    for k in range(260):
        for s in range(1, 4): line(f, s, "lr-%d" % k, k + 1, "a", loss=5.0)
    for s in range(1, 4): line(f, s, "lr-0", 999, "b", loss=4.0)' "$TMP"
series() {   # FIELD FILE [runs=…]: "name:points:first..last" of each series
    lrsh --json -c "plot $1 from=$TMP/$2 $3" 2>/dev/null | json_eval '" ".join("%s:%d:%d..%d" % (x["name"], x["points"], x["first_step"], x["last_step"]) for x in o["series"])'
}
check_eq log_fresh_beside_resumed "adamw:10:1..10 adamw#2:5:1001..1005" "$(series loss c1.jsonl)"
check_eq log_resume_after_rerun "adamw:20:1..20 adamw#2:5:1..5" "$(series loss c2.jsonl)"
check_eq log_renamed_run "muon:3:1..3 muon val:1:0..0" "$(series loss renamed.jsonl)"
check_eq log_each_eval_its_run "adamw val:1:0..0 adamw#2 val:1:0..0" "$(series val evals.jsonl)"
check_eq log_requeued_apart "exp1:50:1..50 exp1#2:35:26..60" "$(series loss requeued.jsonl)"
check_eq log_resume_after_fork "exp1:210:1..210 exp1#2:30:31..60" "$(series loss fork.jsonl)"
check_eq log_resume_eval_first "exp1:210:1..210 exp1 val:1:200..200" "$(series loss evalfirst.jsonl)"
check_eq log_branches_apart "exp1:30:1..30 exp1#2:5:26..30" "$(series loss branches.jsonl)"
check_eq log_rerun_after_many "lr-0:3:1..3 lr-0#2:3:1..3" "$(series loss many.jsonl 'runs=lr-0,lr-0#2')"
# ... and each line of this session's log names its writer
lrsh -q -c "$prep; log $TMP/session.jsonl; step; step" >/dev/null 2>&1
check_eq log_lines_name_session 1 "$(python3 -c 'import json, sys
print(len({json.loads(l)["session"] for l in open(sys.argv[1])}))' "$TMP/session.jsonl" 2>&1)"
# a wide name keeps the runs table's columns in line
out=$(lrsh -c "$prep; run 中文实验; train steps=1; run abc; train steps=1; runs" 2>&1)
check_eq runs_wide_name_aligned True "$(printf '%s\n' "$out" | wide_rows_aligned " adamw")"
# and so does `run`'s list of runs (padded by bytes, 中文实验's counts stood 4 columns right)
out=$(lrsh -c "$prep; run 中文实验; train steps=1; run abc; train steps=1; run" 2>&1)
check_eq run_list_wide_name_aligned True "$(printf '%s\n' "$out" | wide_rows_aligned " 1 step")"
out=$(lrsh -c "$prep; log $TMP/train.jsonl; run first; train steps=5; eval batches=1; run second; step; step; log off; train steps=2; plot; show" 2>&1); rc=$?
check_status log_status 0 $rc
check_eq log_lines 8 "$(wc -l <"$TMP/train.jsonl" | tr -d ' ')"
check_eq log_valid "valid 8" "$(json_lines <"$TMP/train.jsonl")"
keys=$(python3 -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
steps = [r for r in rows if "loss" in r]
need = {"step", "loss", "lr", "grad_norm", "clip_scale", "tok_per_s", "seconds", "run"}
print(all(need <= set(r) for r in steps), [r["step"] for r in steps], sorted({r["run"] for r in rows}),
      [r["step"] for r in rows if "val_loss" in r])' "$TMP/train.jsonl")
check_eq log_keys_steps_runs "True [1, 2, 3, 4, 5, 6, 7] ['first', 'second'] [5]" "$keys"
check_eq session_plot_braille yes "$(printf '%s' "$out" | has_braille)"
check_contains session_plot_first "$out" "a ⠒⠒ first"
check_contains session_plot_second "$out" "b ⠒⠒ second"
check_contains session_plot_val "$out" "first val"
check_contains show_log_off "$out" "log        off"
check_contains show_runs "$out" "second           4 steps (6..9)"
# a log that fails (a full disk) turns itself off; the step's JSON result carries the warning
out=$(lrsh --json -c "$prep; log /dev/full; train steps=2" 2>/dev/null); rc=$?
check_status log_full_status 0 $rc
check_contains log_full_warning "$(printf '%s\n' "$out" | grep '"command":"train"' | json_field warnings)" "No space left on device; logging is off"
out=$(lrsh -c "$prep; log $TMP/t2.jsonl; show; run; log $TMP/t3.jsonl" 2>&1)
check_contains show_log_file "$out" "log        $TMP/t2.jsonl"
check_contains log_switch_says "$out" "logging to $TMP/t2.jsonl stopped (0 lines written)"
check_contains run_list_empty "$out" "no runs yet"
out=$(lrsh -c "$prep; train steps=2 eval_every=1 eval_batches=1; plot val" 2>&1); rc=$?
check_status train_eval_every_status 0 $rc
check_contains train_eval_every "$out" "step 2: val loss"
check_contains plot_val_run_named_after_optimizer "$out" "adamw val"

# ---- leaving the prompt with an unsaved model asks first (interactive only; pipes just quit)
out=$(printf '%s\n' "$prep" "train steps=1" "quit" "show" | lrsh 2>&1); rc=$?
check_status pipe_quit_status 0 $rc
check_not_contains pipe_quit_no_question "$out" "unsaved model"
check_not_contains pipe_quit_leaves "$out" "settings"
pty_session() {  # KEYS...: type each (\n, \003 Ctrl-C, \004 Ctrl-D) into lrsh on a terminal
    python3 - "$LRSH" "$@" <<'PY'
import os, pty, select, sys, time
lrsh, keys = sys.argv[1], sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    os.environ["HOME"] = os.environ.get("TMP_HOME", "/tmp")
    os.execv(lrsh, [lrsh, "--threads", "1", "-q"])
out = b""
eof = False
def drain():  # until the next prompt, or the end
    global out, eof
    seen = out.count(b"lrsh> ")
    end = time.time() + 20
    while time.time() < end and out.count(b"lrsh> ") == seen:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try: chunk = os.read(fd, 65536)
            except OSError: eof = True; return
            if not chunk: eof = True; return
            out += chunk
drain()
for k in keys:
    os.write(fd, k.encode().decode("unicode_escape").encode())
    drain()
# the terminal closed: the shell is leaving; give a loaded machine time to reap it
end = time.time() + (20 if eof else 0.2)
while True:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done or time.time() > end: break
    time.sleep(0.05)
print("ALIVE" if done == 0 else "EXITED")
if done == 0: os.kill(pid, 9); os.waitpid(pid, 0)
sys.stdout.write(out.decode("utf-8", "replace"))
PY
}
export TMP_HOME="$TMP"
out=$(pty_session "$prep; train steps=1\n" "quit\n")
check_contains tty_quit_asks "$out" "unsaved model"
check_contains tty_quit_stays "$out" "ALIVE"
out=$(pty_session "$prep; train steps=1\n" "quit\n" "quit\n")
check_contains tty_quit_twice_leaves "$out" "EXITED"
# warned once for this training, as model new and model load are: a command between does not
# bring the question back, more training does
out=$(pty_session "$prep; train steps=1\n" "quit\n" "show\n" "quit\n")
check_contains tty_quit_warned_once "$out" "EXITED"
out=$(pty_session "$prep; train steps=1\n" "quit\n" "train steps=1\n" "quit\n")
check_contains tty_quit_rearmed_by_training "$out" "ALIVE"
out=$(pty_session "$prep; train steps=1\n" "\004")
check_contains tty_ctrl_d_asks "$out" "unsaved model: \`model save PATH\` keeps it; quit again or Ctrl-D leaves"
check_eq tty_ctrl_d_no_blank_line True "$(printf '%s' "$out" | tr -d '\r' | python3 -c 'import re, sys; t = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", sys.stdin.read()); print("lrsh> \nunsaved model" in t)')"
out=$(pty_session "$prep; train steps=1\n" "\004" "\004")
check_contains tty_ctrl_d_twice_leaves "$out" "EXITED"
out=$(pty_session "$prep; train steps=1\n" "\003" "\003")
check_contains tty_ctrl_c_says "$out" "(Ctrl-C stops a command; Ctrl-D or quit leaves lrsh)"
check_eq tty_ctrl_c_says_once 1 "$(printf '%s\n' "$out" | grep -c 'Ctrl-D or quit leaves lrsh')"
check_contains tty_ctrl_c_stays "$out" "ALIVE"
# Ctrl-C stops training and is pressed again and again: with unsaved work it never leaves
out=$(pty_session "$prep; train steps=1\n" "\003" "\003" "\003" "\003" "\003")
check_contains tty_ctrl_c_never_leaves_unsaved "$out" "ALIVE"
out=$(pty_session "$prep; train steps=1\n" "\003" "\004" "\004")
check_contains tty_ctrl_c_then_ctrl_d_leaves "$out" "EXITED"
out=$(pty_session "$prep; train steps=1; model save $TMP/s.safetensors\n" "quit\n")
check_contains tty_saved_quit_leaves "$out" "EXITED"
# nor without: Ctrl-C at the prompt never leaves (three presses to stop a stream left the shell)
out=$(pty_session "show\n" "\003" "\003" "\003")
check_contains tty_clean_ctrl_c_stays "$out" "ALIVE"

finish
