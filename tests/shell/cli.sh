# cli.sh — lrsh's command line and modes: -c, script files, piped stdin, --json, --help,
# --version, --device, exit statuses.
. tests/shell/testlib

out=$("$LRSH" --help 2>&1); rc=$?
check_status help_status 0 $rc
check_contains help_usage "$out" "usage: lrsh"

out=$("$LRSH" --version 2>&1); rc=$?
check_status version_status 0 $rc
check_contains version_text "$out" "lrsh "

out=$("$LRSH" --bogus 2>&1); rc=$?
check_status bad_flag_status 2 $rc
check_contains bad_flag_message "$out" "unknown option '--bogus'"

# --device cuda: with a usable GPU `show` names the cuda backend; without one (or without the
# CUDA build) the shell says why in one line and exits non-zero
out=$("$LRSH" --device cuda -c show 2>&1); rc=$?
if [ $rc -eq 0 ]; then
    check_contains device_cuda_show "$out" "cuda"
else
    check_status device_cuda_status 2 $rc
    check_contains device_cuda_message "$out" "--device cuda: "
    out=$("$LRSH" --json --device cuda -c show 2>/dev/null)   # the same refusal as a JSON line on stdout
    check_eq device_cuda_json "False lrsh" "$(printf '%s\n' "$out" | json_eval 'str(o["ok"]) + " " + o["command"]')"
fi
out=$("$LRSH" --json "$TMP/no-such-script.lrsh" 2>/dev/null); rc=$?
check_status missing_script_status 1 $rc
check_contains missing_script_json "$out" '"error":"cannot open'

# -c: several commands, `;` inside quotes is not a separator
out=$("$LRSH" -c 'set batch 3; set seed 7; show' 2>&1); rc=$?
check_status c_several_status 0 $rc
check_contains c_several_batch "$out" "batch=3"
check_contains c_several_seed "$out" "seed=7"
out=$("$LRSH" --json -c 'help "tok"; set accum 2' 2>/dev/null)
check_eq c_two_results 2 "$(printf '%s\n' "$out" | wc -l | tr -d ' ')"
out=$("$LRSH" -c 'help "a;b"' 2>&1)
check_contains c_quoted_semicolon "$out" "no command 'a;b'"

# The GPU's settings (precision, attention, graphs, fused, pdl): kept for the GPU, and said so, on the CPU; an unknown
# value refused. Args: KEY VALUE NOTE BAD CHOICES
gpu_setting() {
    out=$("$LRSH" -c "set $1 $2; show" 2>&1); rc=$?
    check_status "$1_status" 0 $rc
    check_contains "$1_note" "$out" "$3; $2 applies on the GPU"
    check_contains "$1_show" "$out" "$1=$2"
    out=$("$LRSH" -c "set $1 $4" 2>&1); rc=$?
    check_status "$1_bad_status" nonzero $rc
    check_contains "$1_bad" "$out" "set $1 expects $5, got '$4'"
}
gpu_setting precision tf32 "the CPU computes in fp32" fp16 "one of fp32|tf32|bf16"
gpu_setting attention flash "the CPU has one attention" tiles "one of gemm|flash|rows"
gpu_setting graphs on "the CPU runs each call as it comes" maybe "on or off (yes or no)"
gpu_setting fused on "the CPU has its own decoding" fast "on or off (yes or no)"
gpu_setting pdl on "the CPU launches no kernels" maybe "on or off (yes or no)"
# the switches take every spelling errexit does, and keep them as on or off
out=$("$LRSH" -c "set graphs 0; set pdl TRUE; set errexit no; show" 2>&1)
check_contains switch_spellings_show "$out" "errexit=off interrupt=script progress=live json=off quiet=off precision=fp32 attention=gemm graphs=off fused=on pdl=on"
check_contains switch_spelling_said "$out" "errexit off"
out=$(LRSH_CUDA_GRAPHS=0 "$LRSH" -c "show" 2>&1)
check_contains env_switch_spelling "$out" "graphs=off"
check_not_contains env_switch_spelling_quiet "$out" "unknown"
out=$("$LRSH" -c "set graphs off; show" 2>&1)
check_contains graphs_off_show "$out" "graphs=off"
check_not_contains graphs_off_no_note "$out" "applies on the GPU"
# help of a family's unknown sub-command suggests among its sub-commands, not the family itself
out=$("$LRSH" -c "help model nwe" 2>&1)
check_contains help_sub_suggest "$out" "no command 'model nwe': did you mean 'model new'?"
out=$("$LRSH" -c "help model zzzzzz" 2>&1)
check_contains help_sub_unknown "$out" "(\`help model\` lists its sub-commands)"
# a topic after a command without sub-commands: an optimizer's name for optim, nothing else
out=$("$LRSH" -c "help optim bogus" 2>&1); rc=$?
check_status help_optim_unknown_status 1 $rc
check_contains help_optim_unknown "$out" "\`help optim\` takes no 'bogus' (usage: optim [sgd|adamw|muon|spectron|renorm|ortho]"
out=$("$LRSH" -c "help optim spectorn" 2>&1)
check_contains help_optim_suggests "$out" "\`help optim\` takes no 'spectorn': did you mean 'spectron'?"
out=$("$LRSH" -c "help train extra" 2>&1); rc=$?
check_status help_topic_status 1 $rc
check_contains help_topic "$out" "\`help train\` takes no 'extra'"
out=$("$LRSH" -c "help optim muon" 2>&1); rc=$?
check_status help_optim_name_status 0 $rc
check_contains help_optim_name "$out" "options of muon (defaults)"
mkdir -p "$TMP/afolder"
out=$("$LRSH" --no-default "$TMP/afolder" 2>&1); rc=$?
check_status script_folder_status 1 $rc
check_contains script_folder "$out" "afolder is a folder, not a script"
# numbers out of range are refused, not wrapped or overflowed
out=$("$LRSH" --threads 99999999999999999999 -c show 2>&1); rc=$?
check_status threads_overflow_status 2 $rc
check_contains threads_overflow "$out" "--threads expects an integer from 0 to 4096"
out=$("$LRSH" -c "set threads 4096" 2>&1)
check_contains threads_over_cores "$out" "4096 threads on "
out=$("$LRSH" -c "set threads 1" 2>&1)
check_not_contains threads_within_cores "$out" "threads on"
out=$("$LRSH" -c "set seed -5" 2>&1)
check_contains seed_negative "$out" "set seed must be at least 0, got -5"
# their starting values come from the variables the GPU backend reads (an unknown one: the default)
out=$(LRSH_CUDA_GRAPHS=off LRSH_CUDA_PDL=off LRSH_CUDA_FUSED=fast LRSH_CUDA_ATTENTION=flash "$LRSH" -c "show" 2>&1)
check_contains env_settings "$out" "attention=flash graphs=off fused=on pdl=off"
check_contains env_setting_unknown "$out" "lrsh: LRSH_CUDA_FUSED=fast unknown (on or off): using on"

# an error quotes what was typed with its control bytes as '?' (an ESC recolored the terminal),
# and a line ending in a backslash keeps it (it swallowed the newline: an error over two lines)
out=$(printf 'bogus\033[31m\n' | "$LRSH" 2>&1)
check_contains error_control_bytes "$out" "unknown command 'bogus?[31m'"
check_eq error_control_bytes_no_esc 0 "$(printf '%s' "$out" | tr -cd '\033' | wc -c | tr -d ' ')"
out=$(printf 'help \\\n' | "$LRSH" 2>&1)
check_contains trailing_backslash "$out" "no command '\\'"
check_eq trailing_backslash_one_line 1 "$(printf '%s\n' "$out" | wc -l | tr -d ' ')"

# a second -c is refused (the first was dropped unseen)
out=$("$LRSH" -c 'bogus' -c 'show' 2>&1); rc=$?
check_status c_twice_status 2 $rc
check_contains c_twice "$out" "-c given twice"

# an option after a script is refused before any script runs, saying where options go (the
# scripts ran first, in text mode for a --json meant for them, then "cannot open --json")
printf 'show\n' >"$TMP/one.lrsh"
out=$("$LRSH" "$TMP/one.lrsh" -c show 2>&1); rc=$?
check_status option_after_script_status 2 $rc
check_contains option_after_script "$out" "-c after the script $TMP/one.lrsh: options go before the scripts"
out=$("$LRSH" "$TMP/one.lrsh" --json 2>&1)
check_not_contains option_after_script_nothing_ran "$out" "settings"
# a script that begins with a UTF-8 byte-order mark runs its first command
printf '\357\273\277show\n' >"$TMP/bom.lrsh"
out=$("$LRSH" "$TMP/bom.lrsh" 2>&1); rc=$?
check_status bom_script_status 0 $rc
check_contains bom_script_runs "$out" "settings   seed="

# a NUL byte in a line: the line is refused whole (it ran cut short at the NUL)
printf 'set errexit off\nset seed 4\000garbage\nshow\n' >"$TMP/nul.lrsh"
out=$("$LRSH" --json "$TMP/nul.lrsh" 2>/dev/null); rc=$?
check_status nul_script_status 1 $rc
check_eq nul_script_refused True "$(printf '%s\n' "$out" | grep '"ok":false' | json_eval '"NUL byte" in o["error"] and o["where"].endswith("nul.lrsh:2")')"
check_eq nul_script_seed_kept 1234 "$(printf '%s\n' "$out" | grep '"command":"show"' | json_field seed)"
# a script read from a FIFO runs whole (the binary-file probe read its first 4 KiB, which a
# FIFO cannot give again: nothing ran, status 0)
mkfifo "$TMP/fifo.lrsh"
printf 'set seed 77\nshow\n' > "$TMP/fifo.lrsh" &
check_contains fifo_script_runs "$("$LRSH" "$TMP/fifo.lrsh" 2>&1)" "seed=77"
wait
# a checkpoint or a tokenizer given as a script is said for what it is, with the command that
# opens it (its bytes ran as lines: "the line holds a NUL byte", "unknown command '?'")
"$LRSH" -q -c "model new dim=32 layers=1 heads=2 seq=16 vocab=512; model save $TMP/opened.safetensors" >/dev/null 2>&1
out=$("$LRSH" "$TMP/opened.safetensors" 2>&1); rc=$?
check_status checkpoint_as_script_status 1 $rc
check_eq checkpoint_as_script "lrsh: $TMP/opened.safetensors is a checkpoint, not a script: open it with lrsh -c 'model load $TMP/opened.safetensors'" "$out"
cp README.md "$TMP/opened.txt"
"$LRSH" -q -c "tok train $TMP/opened.txt vocab=500 out=$TMP/opened.model" >/dev/null 2>&1
check_contains tokenizer_as_script "$("$LRSH" "$TMP/opened.model" 2>&1)" "is a SentencePiece tokenizer, not a script: open it with lrsh -c 'tok load"
# several scripts: one that sets errexit off and fails goes on to the next; -c's errors say where
printf 'set errexit off\nnosuch\n' >"$TMP/goes-on.lrsh"
printf 'set seed 77\nshow\n' >"$TMP/next.lrsh"
out=$("$LRSH" "$TMP/goes-on.lrsh" "$TMP/next.lrsh" 2>&1); rc=$?
check_status scripts_go_on_status 1 $rc
check_contains scripts_go_on_next_ran "$out" "seed=77"
out=$("$LRSH" --json -c 'show
nosuch' 2>/dev/null)
check_eq c_error_where '"-c:2"' "$(printf '%s\n' "$out" | tail -n 1 | json_field where)"
# a line of several commands says which of them failed (-c 'a; b' is one line)
out=$("$LRSH" -c 'set seed 3; nosuch; show' 2>&1)
check_contains c_error_which_command "$out" "-c:1, command 2: error:"
check_eq c_error_one_command_plain '"-c:1"' "$("$LRSH" --json -c 'nosuch' 2>/dev/null | json_field where)"
check_eq error_line_without_newline '"tok encode \"open"' "$(printf 'tok encode "open\n' | "$LRSH" --json 2>/dev/null | json_field line)"

# set says the value it set, as the session reads it (010 is 10)
check_contains set_says_value "$("$LRSH" -c 'set seed 010' 2>&1)" "seed 10"
# a "script" with no line breaks (/dev/zero) is refused after 64 MiB instead of read into memory
out=$(timeout 60 "$LRSH" /dev/zero 2>&1); rc=$?
check_status zero_script_status 1 $rc
check_contains zero_script_refused "$out" "64 MiB without a line break"
# a line past 1 MiB is not run, and the lines after it are (errexit off)
out=$( (printf 'set errexit off\n'; head -c 1100000 /dev/zero | tr '\0' 'a'; printf '\nset seed 5\n') | "$LRSH" 2>&1)
check_contains long_line_refused "$out" "<stdin>:2: error: a line longer than 1 MiB: it was not run"
check_contains long_line_then_goes_on "$out" "seed 5"
# JSON numbers read back as the same float: lr=0.10000001 is not the float of 0.1 (7 digits said 0.1)
check_eq json_float_round_trip 0.10000001 "$("$LRSH" --json -c 'optim adamw lr=0.10000001; optim' 2>/dev/null | tail -n 1 | json_field lr)"
# set quiet off says so (on, being quiet, says nothing)
check_eq set_quiet_says "quiet off" "$("$LRSH" -c 'set quiet on; set quiet off' 2>&1)"

# -c stops at the first failure and exits non-zero
out=$("$LRSH" -c 'set batch 2; nosuch; set batch 5; show' 2>&1); rc=$?
check_status c_error_status nonzero $rc
check_not_contains c_error_stops "$out" "batch=5"

# scripts: comments, blank lines, stop at the first error naming file:line
cat > "$TMP/ok.lrsh" <<'EOF'
# a comment

set batch 4   # a trailing comment
show
EOF
out=$("$LRSH" "$TMP/ok.lrsh" 2>&1); rc=$?
check_status script_ok_status 0 $rc
check_contains script_ok_output "$out" "batch=4"

cat > "$TMP/bad.lrsh" <<'EOF'
# line 1
set batch 4
train stesp=3
set batch 9
show
EOF
out=$("$LRSH" "$TMP/bad.lrsh" 2>&1); rc=$?
check_status script_error_status nonzero $rc
check_contains script_error_where "$out" "$TMP/bad.lrsh:3:"
check_not_contains script_error_stops "$out" "batch=9"

out=$("$LRSH" "$TMP/missing.lrsh" 2>&1); rc=$?
check_status script_missing_status nonzero $rc
check_contains script_missing_message "$out" "cannot open"

# `set errexit off` lets a script go on; the status still says something failed
printf 'set errexit off\nnosuch\nset batch 6\nshow\n' > "$TMP/goon.lrsh"
out=$("$LRSH" "$TMP/goon.lrsh" 2>&1); rc=$?
check_status errexit_off_status nonzero $rc
check_contains errexit_off_goes_on "$out" "batch=6"

# piped stdin: no prompt, commands run
out=$(printf 'set batch 5\nshow\n' | "$LRSH" 2>&1); rc=$?
check_status pipe_status 0 $rc
check_contains pipe_runs "$out" "batch=5"
check_not_contains pipe_no_prompt "$out" "lrsh>"
out=$(printf 'show\nnosuch\n' | "$LRSH" 2>&1); rc=$?
check_status pipe_error_status nonzero $rc
check_contains pipe_error_where "$out" "<stdin>:2:"

# quit stops the rest
out=$("$LRSH" -c 'quit; set batch 7; show' 2>&1); rc=$?
check_status quit_status 0 $rc
check_not_contains quit_stops "$out" "batch=7"

# --json: stdout is only JSON objects, one per line, errors included
out=$("$LRSH" --json -c 'set errexit off; show; help; help train; nosuch; set batch 2' 2>/dev/null)
check_eq json_lines_valid "valid 6" "$(printf '%s\n' "$out" | json_lines)"
check_eq json_error_ok_false "false" "$(printf '%s\n' "$out" | grep nosuch | json_field ok)"
check_eq json_error_command '"nosuch"' "$(printf '%s\n' "$out" | grep nosuch | json_field command)"
out=$("$LRSH" --json -c 'train steps=5' 2>/dev/null)
check_eq json_error_names_command '"train"' "$(printf '%s\n' "$out" | json_field command)"
check_eq json_error_line '"train steps=5"' "$(printf '%s\n' "$out" | json_field line)"
# help's options in one layout: a command's have the range help optim's have, and help optim's
# the type a command's have
out=$("$LRSH" --json -c 'help train; help optim adamw' 2>/dev/null)
check_eq help_json_layouts "integer 1..1000000000 a number" "$(printf '%s\n' "$out" | sed -n 1p | json_eval 'o["options"][0]["range"]') $(printf '%s\n' "$out" | sed -n 2p | json_eval 'o["options"][0]["type"]')"
# set's value as the session reads it: a number for an integer key ("008" came back as typed)
out=$("$LRSH" --json -c 'set batch 008; set quiet 1' 2>/dev/null)
check_eq set_value_typed "8 on" "$(printf '%s\n' "$out" | sed -n 1p | json_field value) $(printf '%s\n' "$out" | sed -n 2p | json_eval 'o["value"]')"
# an empty file name is one clear error ("error: : cannot open", "cannot read :")
check_contains empty_name_tok_load "$("$LRSH" -c 'tok load ""' 2>&1)" 'tok load needs a file name (tok load PATH): "" names none'
check_contains empty_name_tok_train "$("$LRSH" -c 'tok train ""' 2>&1)" '"" names no file (leave the file out for the default corpus)'
check_contains empty_name_model_save "$("$LRSH" -c 'model new tiny seq=16 vocab=512; model save ""' 2>&1)" 'model save needs a file name'
# a line the parser refuses names its command as any other failure of it does ("tok", not
# "tok encode", split a program's failures by command); its line is cut only at its end (a
# lone \r, which the parser reads as a space, cut the line there)
out=$("$LRSH" --json -c 'tok  encode "abc' 2>/dev/null)
check_eq json_parse_error_command '"tok encode"' "$(printf '%s\n' "$out" | json_field command)"
# a long second word, or many spaces before it, is cut to the name's room (it was copied past
# a 64-byte buffer: a crash in a release build)
long=$(python3 -c 'print("a" * 5000)')
out=$("$LRSH" -c "tok  $long \"" 2>&1); rc=$?
check_status parse_error_long_word_status 1 $rc
out=$("$LRSH" --json -c "tok$(printf '%60s')encode \"" 2>/dev/null); rc=$?
check_eq parse_error_many_spaces '"tok encode"' "$(printf '%s\n' "$out" | json_field command)"
# a carriage return alone ends a line (a classic Mac file is one "line" of them), in a pipe and
# in -c; a CR before the newline too (Windows); lines are numbered as such
out=$(printf 'set seed 5\rset batch 4\r\nset errexit off\rset accum x\r' | "$LRSH" --json 2>/dev/null)
check_eq lone_cr_lines 'ok ok ok <stdin>:4' "$(printf '%s\n' "$out" | json_eval 'o["where"]' 2>&1 | sed 's/^/ok ok ok /')"
# … but one inside quotes is text (tok encode "a<CR>\nb" split into two unterminated quotes)
check_contains quoted_cr_text "$("$LRSH" -c "$(printf 'run "a\rb"')" 2>&1)" "a run name has no quotes, commas"
check_eq lone_cr_ran "5 4" "$("$LRSH" --json -c "$(printf 'set seed 5\rset batch 4\rshow')" 2>/dev/null | grep '"command":"show"' | json_eval '"%d %d" % (o["seed"], o["batch"])' 2>&1)"
# a UTF-16 script (every line holding NUL bytes) is said once for what it is
printf 's\000h\000o\000w\000\n\000' | { printf '\377\376'; cat; } > "$TMP/utf16.lrsh"
out=$("$LRSH" "$TMP/utf16.lrsh" 2>&1); rc=$?
check_status utf16_script_status 1 $rc
check_eq utf16_script_said "$TMP/utf16.lrsh:1: error: the script is UTF-16 (Notepad's \"Unicode\"): save it as UTF-8; nothing was run" "$out"
out=$({ printf 'set errexit off\n'; cat "$TMP/utf16.lrsh"; } | "$LRSH" 2>&1)
check_eq utf16_second_part_said "<stdin>:2: error: the script is UTF-16 (Notepad's \"Unicode\"): save it as UTF-8; nothing was run" "$(printf '%s\n' "$out" | grep error)"
# text pasted from slides or a word processor: a no-break, zero-width or thin space and a second
# script's byte-order mark separate words as a space does; “curly quotes” quote as " does
out=$(printf 'set\302\240seed 6\342\200\213;\357\273\277set batch\342\200\2573\nrun \342\200\234my run\342\200\235\nshow\n' | "$LRSH" --json 2>/dev/null)
check_eq unicode_spaces_separate "6 3" "$(printf '%s\n' "$out" | grep '"command":"show"' | json_eval '"%d %d" % (o["seed"], o["batch"])' 2>&1)"
check_eq curly_quotes_quote '"my run"' "$(printf '%s\n' "$out" | grep '"command":"run"' | json_field run)"
out=$("$LRSH" -c "$(printf 'run \342\200\234mine')" 2>&1)
check_contains curly_quote_unterminated "$out" "error: unterminated “ quote (it ends at ”)"
# a zero-width space or word joiner reads as nothing (it split the word); inside a word “ is text
# (German „…“ closes with it: an unterminated quote before)
out=$("$LRSH" --json -c "$(printf 'set seed 1\342\200\2132; set errexit off; run \342\200\236Hallo\342\200\234')" 2>/dev/null)
check_eq zero_width_nothing '"12"' "$(printf '%s\n' "$out" | grep '"command":"set"' | head -n 1 | json_field value | tr -d '"' | sed 's/.*/"&"/')"
check_contains german_quotes_text "$(printf '%s\n' "$out" | grep '"command":"run"')" "a run name has no quotes"
# a run name from a script saved as Latin-1 is refused, not renamed "caf?" "(… was taken)"
out=$("$LRSH" -c "$(printf 'run caf\351')" 2>&1)
check_contains run_name_not_utf8 "$out" "is not UTF-8 text (a script saved in another encoding? save it as UTF-8)"
out=$("$LRSH" -c 'set errexit off; run " "; run "a "; run' 2>&1)
check_eq run_name_blank_refused 2 "$(printf '%s\n' "$out" | grep -c "error: a run name does not begin or end with a space")"
out=$(printf 'show\n' | "$LRSH" --json 2>/dev/null)
check_eq json_pipe "valid 1" "$(printf '%s\n' "$out" | json_lines)"
# a bad option with --json anywhere among the options: the error object on stdout too
out=$("$LRSH" --threads abc --json -c show 2>/dev/null); rc=$?
check_status json_bad_option_status 2 $rc
check_eq json_bad_option '"--threads expects an integer from 0 to 4096, got '"'"'abc'"'"'"' "$(printf '%s\n' "$out" | json_field error)"
out=$("$LRSH" --json --seed 2>/dev/null)
check_eq json_bad_option_last '"--seed needs a value"' "$(printf '%s\n' "$out" | json_field error)"
# one bound for every seed: --seed took up to 2^63 − 1, which `set seed` then refused
out=$("$LRSH" --seed 9000000000000000001 -c show 2>&1); rc=$?
check_status seed_bound_status 2 $rc
check_contains seed_bound_same "$out" "--seed expects an integer from 0 to 9000000000000000000"
check_contains seed_bound_set_takes_it "$("$LRSH" --seed 9000000000000000000 -c 'set seed 9000000000000000000; show' 2>&1)" "seed=9000000000000000000"
# help gives the bound an option is held to (it said "≥ 1" of batch, which refuses 2000000)
check_contains help_upper_bound "$("$LRSH" -c 'help set' 2>&1)" "[integer 1..1048576; default 8]"
# ... and the text error line shows such a byte as '?' (it went to the terminal raw), UTF-8 as it is
out=$("$LRSH" -c "$(printf 'model load %s/nofile\377\303\251.st' "$TMP")" 2>&1)
check_eq error_line_bytes_printable "no yes" "$(printf '%s' "$out" | grep -q "$(printf '\377')" && echo yes || echo no) $(printf '%s' "$out" | grep -q "nofile?$(printf '\303\251').st" && echo yes || echo no)"
check_contains log_empty_name "$("$LRSH" -c "log ''" 2>&1)" "log: no file name given"
# ... also an overlong form, a UTF-16 surrogate and a code point past U+10FFFF; an emoji stays
out=$("$LRSH" -c "$(printf 'model load %s/a\355\240\200b\340\200\200c\364\220\200\200d\360\237\230\200.st' "$TMP")" 2>&1)
check_contains error_line_strict_utf8 "$out" "$(printf 'a???b???c????d\360\237\230\200.st')"
# bytes that are not UTF-8 in a command, a path, a log file name: JSON stays UTF-8 (U+FFFD)
"$LRSH" --json -c "$(printf 'set errexit off; bogus\377; model load nofile\377.st; log %s/bad\377.jsonl; show')" \
    >"$TMP/bad-utf8.out" 2>/dev/null
check_eq json_utf8 "5 ok" "$(python3 -c '
import json, sys
lines = open(sys.argv[1], "rb").read().splitlines()
objs = [json.loads(l.decode("utf-8")) for l in lines]   # strict: a stray byte raises
print(len(objs), "ok" if "\ufffd" in objs[1]["command"] else "no U+FFFD")' "$TMP/bad-utf8.out" 2>&1)"

# -c with newlines runs its lines as a script's: a newline separates commands, a comment ends at
# the line's end, and the first failure stops it (exit 1)
out=$("$LRSH" --json -c 'set batch 3 # a comment
set accum 2

show' 2>/dev/null); rc=$?
check_status c_newlines_status 0 $rc
check_eq c_newlines "3 2" "$(printf '%s\n' "$out" | grep '"command":"show"' | json_eval 'str(o["batch"]) + " " + str(o["accum"])')"
out=$("$LRSH" -c 'set batch 3
set nope 1
show' 2>&1); rc=$?
check_status c_newlines_stops 1 $rc
check_not_contains c_newlines_stopped "$out" "settings "

# ---- a hostile environment: one line, and the session goes on
# A reader that leaves (head): the writes after it fail with EPIPE instead of SIGPIPE ending the
# session (exit 141, nothing said, the save never made). Past the pipe's buffer (60 helps) a
# write fails whenever head leaves. Said once on stderr; the script runs to its end; exit 1.
helps=$(for i in $(seq 60); do printf 'help; '; done)
{ "$LRSH" -c "model new tiny seq=16 vocab=512; $helps model save $TMP/piped.safetensors" 2>"$TMP/pipe.err"
  echo $? >"$TMP/pipe.rc"; } | head -n 1 >/dev/null
check_eq stdout_gone_status 1 "$(cat "$TMP/pipe.rc")"
check_contains stdout_gone_says "$(cat "$TMP/pipe.err")" "lrsh: cannot write to standard output (Broken pipe): results are not shown from here; the session goes on"
check_eq stdout_gone_said_once 1 "$(grep -c 'cannot write' "$TMP/pipe.err")"
check_eq stdout_gone_saved yes "$([ -s "$TMP/piped.safetensors" ] && echo yes || echo no)"
if [ -w /dev/full ]; then   # a full disk (ENOSPC): the same, in text and in JSON mode
    out=$("$LRSH" -c "model new tiny seq=16 vocab=512; show; model save $TMP/full.safetensors" 2>&1 >/dev/full); rc=$?
    check_status stdout_full_status 1 $rc
    check_contains stdout_full_says "$out" "cannot write to standard output (No space left on device)"
    check_eq stdout_full_saved yes "$([ -s "$TMP/full.safetensors" ] && echo yes || echo no)"
    out=$("$LRSH" --json -c 'show' 2>&1 >/dev/full); rc=$?
    check_status json_full_status 1 $rc
    check_contains json_full_says "$out" "cannot write to standard output (No space left on device)"
fi
out=$("$LRSH" --help 2>&1 >/dev/full); rc=$?
[ -w /dev/full ] && check_status help_full_status 1 $rc
# stdout or stderr closed at the start: a file lrsh opens (the log) took fd 1 or 2 and the text
# went into it. Now /dev/null holds the place; a closed stdout is said as a write error.
out=$("$LRSH" -c "log $TMP/closed1.log; show" 2>&1 >&-); rc=$?
check_status closed_stdout_status 1 $rc
check_contains closed_stdout_says "$out" "cannot write to standard output (Bad file descriptor)"
check_eq closed_stdout_log_clean 0 "$(wc -c <"$TMP/closed1.log" | tr -d ' ')"
out=$("$LRSH" --json -c "log $TMP/closed2.log; show" 2>&-); rc=$?
check_status closed_stderr_status 0 $rc
check_contains closed_stderr_json "$out" '"command":"show"'
check_eq closed_stderr_log_clean 0 "$(wc -c <"$TMP/closed2.log" | tr -d ' ')"

# OMP_NUM_THREADS past what --threads takes: libgomp died starting them (a segfault at 100000);
# now one line and one thread per core
out=$(OMP_NUM_THREADS=100000 "$LRSH" -c show 2>&1); rc=$?
check_status omp_threads_bound_status 0 $rc
check_contains omp_threads_bound_says "$out" "OMP_NUM_THREADS=100000 is past 4096 threads"
check_contains omp_threads_bound_runs "$out" "settings   seed="
out=$(OMP_NUM_THREADS=5000 "$LRSH" --threads 1 -c 'show' 2>&1)
check_not_contains omp_threads_bound_with_threads "$out" "one thread per core"
check_contains omp_threads_bound_with_threads_count "$out" ", 1 thread"
out=$(OMP_NUM_THREADS=3 "$LRSH" -c show 2>&1)
check_not_contains omp_threads_within "$out" "OMP_NUM_THREADS"

# File names in result lines show control bytes as '?' as error lines do (an ESC recolored the
# terminal); JSON keeps them exact
esc=$(printf '\033')
"$LRSH" -q -c "tok train vocab=512 out=$TMP/plain.model" >/dev/null 2>&1
cp "$XDG_CACHE_HOME/lrsh/fortunes.txt" "$TMP/${esc}[31mc.txt"
out=$("$LRSH" -c "tok train $TMP/${esc}[31mc.txt vocab=512 out=$TMP/${esc}[32mt.model; tok load $TMP/${esc}[32mt.model
data load $TMP/${esc}[31mc.txt; model new tiny seq=16; model save $TMP/${esc}[33mm.safetensors
model load $TMP/${esc}[33mm.safetensors; log $TMP/${esc}[34mg.log; log; show; log off" 2>&1); rc=$?
check_status names_status 0 $rc
check_not_contains names_no_escape "$out" "$esc"
check_contains names_tok_train "$out" "on $TMP/?[31mc.txt"
check_contains names_tok_load "$out" "tokenizer $TMP/?[32mt.model"
check_contains names_data_load "$out" "data $TMP/?[31mc.txt:"
check_contains names_saved "$out" "saved $TMP/?[33mm.safetensors"
check_contains names_loaded "$out" "loaded $TMP/?[33mm.safetensors"
check_contains names_show "$out" "checkpoint $TMP/?[33mm.safetensors"
check_contains names_log "$out" "logging to $TMP/?[34mg.log"
out=$("$LRSH" --json -c "model new tiny seq=16 vocab=512; model save $TMP/${esc}[35mj.safetensors" 2>/dev/null)
check_eq names_json_exact '"'"$TMP"'/\u001b[35mj.safetensors"' "$(printf '%s\n' "$out" | json_field path)"

# Ctrl-C while a piped session waits for its next line: the script stops there (status 130, a
# line saying so) and that line never runs, also when part of it had come (the part ran as a
# command of its own, or the session ended with status 0 and said nothing)
mkfifo "$TMP/pipe"
"$LRSH" --threads 1 <"$TMP/pipe" >"$TMP/pipe.log" 2>&1 &
pid=$!
{ printf 'set seed 5\nset seed 7'; sleep 3; printf '7\nshow\n'; } >"$TMP/pipe" 2>/dev/null &
writer=$!
i=0
while ! grep -q 'seed 5' "$TMP/pipe.log" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
sleep 0.5
kill -INT $pid
wait $pid; rc=$?
wait $writer 2>/dev/null
out=$(cat "$TMP/pipe.log")
check_status pipe_wait_interrupt_status 130 $rc
check_contains pipe_wait_interrupt_said "$out" "<stdin>:2: interrupted (before this line ran)"
check_not_contains pipe_wait_partial_not_run "$out" "seed 7"
check_not_contains pipe_wait_rest_not_run "$out" "settings"
# and when the input ends as the signal comes (Ctrl-C at a terminal ends the pipeline's writer
# too): the end of input is no clean end then (status 0 and nothing said, 20 times in 20)
out=$(python3 - "$LRSH" <<'PY'
import signal, subprocess, sys, time
codes = []
for _ in range(5):
    p = subprocess.Popen([sys.argv[1], "--threads", "1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdin.write(b"set seed 5\n"); p.stdin.flush()
    p.stdout.readline()   # the line ran: lrsh's handlers are in (a loaded machine took 0.3 s to start)
    p.send_signal(signal.SIGINT); p.stdin.close()
    err = p.stderr.read().decode()
    codes.append("%d %s" % (p.wait(), "interrupted" in err))
print(" ".join(sorted(set(codes))))
PY
)
check_eq pipe_eof_interrupt_status "130 True" "$out"
# `set interrupt command`, as a program driving lrsh through a pipe sends: a SIGINT stops the
# training (its result says interrupted) and one while lrsh waits for a line stops nothing; the
# session goes on with the next line (it ended with status 130, the model gone)
cp README.md "$TMP/drive.txt"
"$LRSH" -q --threads 1 -c "tok train $TMP/drive.txt vocab=512 out=$TMP/drive.model" >/dev/null 2>&1
out=$(python3 - "$LRSH" "$TMP" <<'PY'
import json, signal, subprocess, sys, time
signal.alarm(120)   # a lost SIGINT trains on and on: this check fails then, it does not hang
lrsh, tmp = sys.argv[1], sys.argv[2]
p = subprocess.Popen([lrsh, "--json", "--quiet", "--threads", "1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                     stderr=subprocess.DEVNULL)
signal.signal(signal.SIGALRM, lambda *_: (p.kill(), sys.exit(1)))   # and lrsh with it
def send(line): p.stdin.write((line + "\n").encode()); p.stdin.flush()
def ask(line):
    send(line)
    return json.loads(p.stdout.readline() or "{}")
for line in ["set errexit off", "set interrupt command", "tok load %s/drive.model" % tmp, "data load %s/drive.txt" % tmp,
             "model new dim=32 layers=1 heads=2 seq=16 vocab=512", "step batch=2"]:
    ask(line)
send("train steps=100000000 batch=2")
time.sleep(2); p.send_signal(signal.SIGINT)
train = json.loads(p.stdout.readline() or "{}")
time.sleep(0.5); p.send_signal(signal.SIGINT); time.sleep(0.5)   # waiting for the next line
show = ask("show")
# a SIGINT sent as soon as the line is written is that command's (it was dropped as one typed
# before it, and the training ran on), also three of them during one slow step (the third left
# lrsh with no result line: at a prompt it would)
race = []
for _ in range(5):
    send("train steps=100000000 batch=2"); p.send_signal(signal.SIGINT)
    race.append(json.loads(p.stdout.readline() or "{}").get("interrupted"))
send("train steps=3 batch=20000")
for _ in range(3):
    time.sleep(0.1); p.send_signal(signal.SIGINT)
slow = json.loads(p.stdout.readline() or "{}")
alive = ask("show").get("ok")
# a command stopped that keeps nothing fails, and its error says it was stopped; a failure is not
send("align batches=10000 batch=2"); time.sleep(1); p.send_signal(signal.SIGINT)
align = json.loads(p.stdout.readline() or "{}")
missing = ask("model load %s/none.safetensors" % tmp)
p.stdin.close()
print(train.get("interrupted"), train.get("step", 0) > 1, show.get("step") == train.get("step"), show.get("interrupt"),
      race.count(True), slow.get("interrupted"), alive, align.get("ok"), align.get("interrupted"),
      missing.get("ok"), "interrupted" in missing, p.wait())
PY
)
# (status 1: a command failed, though errexit off went on)
check_eq interrupt_command_goes_on "True True True command 5 True True False True False False 1" "$out"
# a script whose command an interrupt made fail (align, tok train) stops as interrupted, status
# 130 (errexit ended it first: status 1, no "interrupted" line)
printf 'tok load %s\ndata load %s\nmodel new dim=32 layers=1 heads=2 seq=16 vocab=512\nalign batches=10000 batch=8\n' \
    "$TMP/drive.model" "$TMP/drive.txt" > "$TMP/stopped.lrsh"
out=$(python3 - "$LRSH" "$TMP/stopped.lrsh" <<'PY'
import signal, subprocess, sys, time
lrsh, script = sys.argv[1], sys.argv[2]
p = subprocess.Popen([lrsh, "--threads", "1", script], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
signal.signal(signal.SIGALRM, lambda *_: (p.kill(), sys.exit(1)))
signal.alarm(60)
time.sleep(1.5); p.send_signal(signal.SIGINT)
err = p.stderr.read().decode()
print(p.wait(), "stopped.lrsh:4: interrupted" in err)
PY
)
check_eq script_stopped_in_failing_command "130 True" "$out"
# a command that gives a row per item numbers its rows: a driver knows the last one it waits for
out=$("$LRSH" --json --threads 1 -c "model new dim=32 layers=1 heads=2 seq=16 vocab=512; norms" 2>/dev/null | grep '"command":"norms"')
check_eq rows_numbered "0..6 of 7" "$(printf '%s\n' "$out" | python3 -c 'import json, sys
rows = [json.loads(l) for l in sys.stdin]
print("%d..%d of %s" % (rows[0]["row_index"], rows[-1]["row_index"], " ".join(sorted({str(r["row_count"]) for r in rows}))))' 2>&1)"

finish
