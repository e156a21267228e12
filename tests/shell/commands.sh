# commands.sh — the command table: help lists every command, `help CMD` shows options,
# unknown commands and options get "did you mean", bad values name the option.
. tests/shell/testlib

out=$("$LRSH" -c help 2>&1); rc=$?
check_status help_status 0 $rc
for cmd in help show set quit exit "tok train" "tok load" "tok encode" "tok decode" "data load" \
           "model new" "model info" optim train step eval "bench train"; do
    check_contains "help_lists_$(echo "$cmd" | tr ' ' _)" "$out" "  $cmd "
done

# help on a word that is no command: an optimizer's page, the one family's sub-command, the
# families when several have it; and the same words typed as commands
out=$("$LRSH" -c 'help spectron' 2>&1); rc=$?
check_status help_optimizer_status 0 $rc
check_contains help_optimizer_page "$out" "options of spectron (defaults):"
check_contains help_sub_alone "$("$LRSH" -c 'help wash' 2>&1)" "usage: ensemble wash p=P"
check_contains help_sub_families "$("$LRSH" -c 'help load' 2>&1)" "\`help tok load\`, \`help data load\`, \`help model load\`"
check_contains help_optimizer_typo "$("$LRSH" -c 'help spectorn' 2>&1)" "did you mean 'spectron'?"
check_contains optimizer_as_command "$("$LRSH" -c 'spectron' 2>&1)" "did you mean 'optim spectron'?"
check_contains sub_as_command "$("$LRSH" -c 'wash p=0.1' 2>&1)" "did you mean 'ensemble wash'?"

# numbers are decimal: 0x10 is no 16 (strtod read hex), for the shell's options and the engine's
check_contains hex_option "$("$LRSH" -c 'model new tiny; generate hi n=2 temp=0x1' 2>&1)" "option temp= expects a number, got '0x1'"
check_contains hex_optim "$("$LRSH" -c 'optim adamw lr=0x10' 2>&1)" "option lr= expects a number, got '0x10'"
check_contains hex_model "$("$LRSH" -c 'model new tiny rank_ratio=0x1' 2>&1)" "expects a number, got '0x1'"
# a number as another locale writes it gets the reading it meant, in the error (it is still refused)
check_contains comma_decimal "$("$LRSH" -c 'optim adamw lr=0,05' 2>&1)" "got '0,05' (the decimal mark is a point: 0.05)"
check_contains comma_decimal_three "$("$LRSH" -c 'optim adamw lr=0,001' 2>&1)" "got '0,001' (the decimal mark is a point: 0.001)"
check_contains comma_decimal_shell "$("$LRSH" -c 'model new tiny; generate hi temp=0,7' 2>&1)" "(the decimal mark is a point: 0.7)"
check_contains thousands_int "$("$LRSH" -c 'model new tiny; train steps=10,000' 2>&1)" "got '10,000' (without separators: 10000)"
check_contains thousands_command_line "$("$LRSH" --seed 1,000 -c show 2>&1)" "got '1,000' (without separators: 1000)"
out=$("$LRSH" -c 'optim muon ns_steps=1,0' 2>&1)
check_contains no_hint_unless_meant "$out" "got '1,0'"
check_not_contains no_hint_unless_meant_none "$out" "separators"

# model info's counts, by hand for dim 64, 1 layer, ffn 128, rank in/4, vocab 512: attention
# 4·(64·16 + 64·16), w1 and w3 2·(128·16 + 64·16), w2 64·32 + 128·32, head 512·64 — the
# products' parameters, not the norm gains' (3·64) nor the embedding's
out=$("$LRSH" --json -c 'model new tiny dim=64 layers=1 heads=2 kv_heads=2 ffn=128 vocab=512; model info' 2>/dev/null)
check_eq model_info_matmul 53248 "$(printf '%s\n' "$out" | grep '"command":"model info"' | json_field matmul_params)"
# its ranks, each matrix's (w2 has ffn = 128 inputs: 32; the rest 64: 16), in the text grouped by value
check_eq model_info_ranks_json "{'wq': 16, 'wk': 16, 'wv': 16, 'wo': 16, 'w1': 16, 'w2': 32, 'w3': 16}" \
    "$(printf '%s\n' "$out" | grep '"command":"model info"' | python3 -c 'import json, sys; print(json.load(sys.stdin)["ranks"])')"
out=$("$LRSH" -c 'model new tiny dim=64 layers=1 heads=2 kv_heads=2 ffn=128 vocab=512; model info; model new rank=0; model info' 2>&1)
check_contains model_info_ranks_text "$out" "ranks      16 (wq wk wv wo w1 w3), 32 (w2) in every block"
check_eq model_info_ranks_dense 1 "$(printf '%s\n' "$out" | grep -c '^ranks ')"
# a count is shown in the unit it rounds to: 999 998 parameters are 1.00M, not 1000.00k
check_contains count_unit_rounded "$("$LRSH" -c 'model new dim=62 layers=1 heads=1 ffn=2 vocab=7936 rank=0 seq=16' 2>&1)" "  1.00M parameters"
# model new says the seed it initialized from (without seed=, `set seed`'s: a sweep's later
# `model new rank=8` silently took another init than its first `model new … seed=1`)
check_contains model_new_says_seed "$("$LRSH" -c 'set seed 42; model new tiny seq=16 vocab=512' 2>&1)" "initialized from seed 42"
# and keeps five figures up to where M would round to 1000.00M (995 017 728 FLOPs read 1.00G)
check_contains count_unit_not_early "$("$LRSH" -c 'model new dim=64 layers=20 heads=2 seq=65536 vocab=512; set batch 1; set seq 64543; model info' 2>&1)" "flops      995.02M per token"
# flops_per_token is a count, in the JSON exactly (it went through a float: base's read
# 131530750): 6·matmul_params + 12·layers·seq·dim
check_eq flops_exact True "$("$LRSH" --json -c 'model new base; model info' 2>/dev/null | grep '"command":"model info"' | json_eval 'o["flops_per_token"] == 6 * o["matmul_params"] + 12 * o["config"]["layers"] * o["seq"] * o["config"]["dim"]')"
# the training memory counts the chosen optimizer's vectors and scratch before its first step
# builds it (it left them out until then), the same as once built
out=$("$LRSH" --json -c 'model load models/default.safetensors; data load; model new tiny dim=64 layers=1 seq=32; optim spectron; model info; set batch 2; step; set batch 8; model info' 2>/dev/null | grep '"command":"model info"')
check_eq training_bytes_before_built "$(printf '%s\n' "$out" | tail -n 1 | json_field training_bytes)" "$(printf '%s\n' "$out" | head -n 1 | json_field training_bytes)"
# under an ensemble the counts are a member's, and say so
out=$("$LRSH" -c 'model new tiny dim=64 layers=1 seq=32 vocab=512; ensemble new 2; model info' 2>&1)
check_contains ensemble_info_member "$out" "(the ensemble's line below counts them all)"
# a rank_ratio whose rank rounds below 1 is raised to 1, and the user hears which matrices
out=$("$LRSH" -c 'model new tiny dim=64 layers=1 heads=2 kv_heads=2 ffn=256 vocab=512 rank_ratio=0.01; model info' 2>&1)
check_contains ratio_floored_note "$out" "note: rank_ratio=0.01 asks a rank below 1 of 6 of a block's matrices (wq: 0.01·64): they are factorized at rank 1"
check_contains ratio_floored_ranks "$out" "ranks      1 (wq wk wv wo w1 w3), 2 (w2) in every block"

out=$("$LRSH" -c 'help train' 2>&1)
check_contains help_train_usage "$out" "usage: train steps=N"
check_contains help_train_steps "$out" "steps=N"
check_contains help_train_batch "$out" "batch=N"
check_contains help_train_example "$out" "Examples:"
out=$("$LRSH" -c 'help tok train' 2>&1)
check_contains help_tok_train_default "$out" "default 8192"
check_contains help_tok_train_enum "$out" "type=bpe|unigram"
out=$("$LRSH" -c 'help tok' 2>&1)
check_contains help_family "$out" "tok encode TEXT"
# JSON usage is the command line as typed, the command's name first (show's was "")
check_eq help_json_usage "show|train steps=N" "$("$LRSH" --json -c 'help show; help train' 2>/dev/null | python3 -c '
import json, sys
print("|".join(json.loads(l)["usage"][:13] for l in sys.stdin))')"
out=$("$LRSH" --json -c 'help optim' 2>/dev/null)
check_contains help_json_options "$(printf '%s\n' "$out" | json_field options)" '"name": "lr"'

# unknown commands, sub-commands, options: did you mean
out=$("$LRSH" -c trian 2>&1)
check_contains unknown_command "$out" "did you mean 'train'"
out=$("$LRSH" -c 'tok encdoe hi' 2>&1)
check_contains unknown_sub "$out" "did you mean 'tok encode'"
out=$("$LRSH" -c 'encode hi' 2>&1)
check_contains sub_without_family "$out" "did you mean 'tok encode'"
out=$("$LRSH" -c 'train stesp=5' 2>&1)
check_contains unknown_option "$out" "did you mean 'steps='"
out=$("$LRSH" -c 'set btach 4' 2>&1)
check_contains unknown_setting "$out" "did you mean 'batch'"
out=$("$LRSH" -c 'set batch=16' 2>&1)   # the form other commands take: said how set takes it
check_contains setting_key_value_form "$out" "set takes KEY VALUE, not KEY=VALUE: \`set batch 16\`"
out=$("$LRSH" -c 'tok' 2>&1)
check_contains missing_sub "$out" "tok needs a sub-command"

# values: the option is named with what it expects
out=$("$LRSH" -c 'train steps=abc' 2>&1); rc=$?
check_status bad_int_status nonzero $rc
check_contains bad_int "$out" "steps= expects an integer, got 'abc'"
out=$("$LRSH" -c 'data load val=lots' 2>&1)
check_contains bad_float "$out" "val= expects a number"
out=$("$LRSH" -c 'tok train type=wordpiece' 2>&1)
check_contains bad_enum "$out" "type= expects one of bpe|unigram"
out=$("$LRSH" -c 'data load val=0.9' 2>&1)
check_contains bad_range "$out" "val= must be between 0 and 0.5"
out=$("$LRSH" -c 'set json maybe' 2>&1)
check_contains bad_bool "$out" "set json expects on or off"
out=$("$LRSH" -c 'train steps=1 steps=2' 2>&1)
check_contains twice "$out" "given twice"
out=$("$LRSH" -c 'show extra' 2>&1)
check_contains extra_arg "$out" "show takes no arguments"
out=$("$LRSH" -c 'tok load "unterminated' 2>&1)
check_contains unterminated_quote "$out" "unterminated"
check_contains unterminated_quote_newline_hint "$out" 'a line break inside quotes is written \n: generate "one\ntwo"'
out=$("$LRSH" -c "generate What's up" 2>&1)
check_contains unterminated_apostrophe_hint "$out" "text with an apostrophe goes in double quotes"

# guards: say what to run first
out=$("$LRSH" -c 'data load' 2>&1)
check_contains data_needs_tok "$out" "no tokenizer: run \`tok train\` or \`tok load\` first"
out=$("$LRSH" -c 'train steps=1' 2>&1)
check_contains train_needs_model "$out" "no model"
out=$("$LRSH" -c 'model info' 2>&1)
check_contains info_needs_model "$out" "no model"
out=$("$LRSH" -c 'tok encode hi' 2>&1)
check_contains encode_needs_tok "$out" "no tokenizer"

# engine errors come back as one line and the session goes on
out=$("$LRSH" -c 'set errexit off; model new huge; tok load /nonexistent.model; set batch 3; show' 2>&1)
check_contains engine_error_preset "$out" "error: unknown preset"
check_contains engine_error_goes_on "$out" "batch=3"

# optim: settings change, show reflects them
out=$("$LRSH" --json -c 'optim adamw lr=0.002 warmup=5' 2>/dev/null)
check_eq optim_lr "0.002" "$(printf '%s\n' "$out" | json_field lr)"
check_eq optim_warmup "5" "$(printf '%s\n' "$out" | json_field warmup)"

# a help page's summary wraps under its own text (it went on 6 columns in, as an example does)
check_eq help_summary_hanging "  seed)" "$("$LRSH" -c 'help eval' | sed -n 3p)"
# JSON's config carries rank_ratio only where it decides the rank (rank -1)
out=$("$LRSH" --json -c 'model new dim=32 layers=1 rank=5 vocab=300; model new dim=32 layers=1 rank=-1 rank_ratio=0.5 vocab=300' 2>/dev/null)
check_eq config_rank_ratio_when_used "[None, 0.5]" "$(printf '%s\n' "$out" | python3 -c 'import json, sys
print([json.loads(l)["config"]["rank_ratio"] for l in sys.stdin])')"
# an explicit rank= wins over rank_ratio= in whatever order they are typed
out=$("$LRSH" -c 'model new dim=32 layers=1 rank=0 rank_ratio=0.5 vocab=300; model new dim=32 layers=1 rank_ratio=0.5 rank=5 vocab=300; model new dim=32 layers=1 rank_ratio=0.5 vocab=300' 2>&1)
check_contains rank_overrides_ratio_note "$out" "note: rank=5 decides the rank: rank_ratio=0.5 is not used"
check_contains rank_before_ratio "$out" "rank=0 (dense)"
check_contains rank_after_ratio "$out" "rank=5 seq"
check_contains ratio_alone "$out" "rank=0.5·in"
# show --json carries every setting the text shows
out=$("$LRSH" --json -c 'set errexit off; show' 2>/dev/null | tail -n 1)
check_eq show_json_settings "False False" "$(printf '%s\n' "$out" | json_eval 'str(o["errexit"]) + " " + str(o["quiet"])')"
# the model's label: its preset, or "custom (from PRESET)" once options or factorize changed its shape
out=$("$LRSH" -c 'model new small; model new dim=64; show; model new tiny dim=128; model new tiny rank=0; model factorize rank=8; model info' 2>&1)
check_contains label_preset "$out" "model small: dim=256"
check_contains label_custom "$out" "model custom (from small): dim=64"
check_contains label_custom_show "$out" "model      custom (from small): dim=64"
check_contains label_same_as_preset "$out" "model tiny: dim=128"
check_contains label_factorized "$out" "model      custom (from tiny): dim=128 layers=2 heads=4 kv_heads=4 ffn=384 rank=8"
out=$("$LRSH" -c 'model load models/default.safetensors; model new seed=3; model new dim=128' 2>&1)
check_contains label_new_as_loaded "$out" "model new, shaped as the loaded model: dim=256"
check_contains label_custom_from_loaded "$out" "model custom (from the loaded model's shape): dim=128"
# dim= without rank= keeps the rank's share of dim, not the rank: the bundled model's 64 of 256
# became 64 of a 64-wide model's matrices (more parameters than dense); now 16, every matrix
out=$("$LRSH" --json -c 'model load models/default.safetensors; model new dim=64 layers=1 heads=2; model new dim=32 rank=4' 2>/dev/null | grep '"command":"model new"')
check_eq rank_follows_dim "16 None 4" "$(printf '%s\n' "$out" | python3 -c 'import json, sys
a, b = [json.loads(l)["config"] for l in sys.stdin]
print(a["rank"], a["rank_ratio"], b["rank"])')"
check_contains label_loaded_factorized "$("$LRSH" -c 'model load models/default.safetensors; model factorize rank=16; model info' 2>&1)" "model      loaded, then factorized: dim=256"
# factorizing to more rank than the factors have says W keeps its rank; to less, nothing
out=$("$LRSH" -c 'model new tiny dim=64 seq=16 rank=4; model factorize rank=8; model factorize rank=2' 2>&1)
check_contains factorize_grown_note "$out" "note: 14 matrices had rank 4: W keeps that rank"
check_eq factorize_grown_once 1 "$(printf '%s\n' "$out" | grep -c 'W keeps that rank')"
out=$("$LRSH" --json -c 'model new tiny dim=64 rank=0; model info' 2>/dev/null | grep '"command":"model info"')
check_eq info_training_bytes True "$(printf '%s\n' "$out" | json_eval 'o["training_bytes"] >= 7 * o["param_bytes"] + o["activation_bytes"]')"
# a refusal that may rest on a value not typed (kept from the last model) says where it came from
out=$("$LRSH" -c 'model new dim=8 heads=4 kv_heads=2 layers=1 ffn=4 seq=4 rank=1; model new dim=6 heads=3' 2>&1)
check_contains new_kept_value_said "$out" "kv_heads=2 does not divide heads=3 (without a preset, \`model new\` keeps the last model's other values"
check_not_contains new_typed_values_plain "$("$LRSH" -c 'model new dim=30 heads=4' 2>&1)" "without a preset"
# … and the activations count attention's B·H·T² floats (left out: 19 MiB said at seq 8192 where
# training needed 4.3 GB)
out=$("$LRSH" --json -c 'set batch 1; model new dim=16 heads=8 layers=1 ffn=8 rank=1 seq=2048 vocab=512; model info' 2>/dev/null | grep '"command":"model info"')
check_eq info_activations_attention True "$(printf '%s\n' "$out" | json_eval 'o["activation_bytes"] >= 8 * 2048 * 2048 * 4')"
# … at the shape `train` takes: `set seq` when set (it said the context's, twice the activations)
out=$("$LRSH" --json -c 'model new tiny dim=64 seq=64; set batch 4; set seq 32; model info' 2>/dev/null | grep '"command":"model info"')
out0=$("$LRSH" --json -c 'model new tiny dim=64 seq=64; set batch 4; model info' 2>/dev/null | grep '"command":"model info"')
check_eq info_set_seq "4 32" "$(printf '%s\n' "$out" | json_eval 'str(o["batch"]) + " " + str(o["seq"])')"
check_eq info_set_seq_context "4 64" "$(printf '%s\n' "$out0" | json_eval 'str(o["batch"]) + " " + str(o["seq"])')"
check_eq info_set_seq_activations True "$(printf '%s\n%s\n' "$out" "$out0" | python3 -c '
import json, sys
a, b = [json.loads(l)["activation_bytes"] for l in sys.stdin]
print(a < 0.6 * b)')"
check_contains info_set_seq_too_long "$("$LRSH" -c 'set seq 128; model new tiny dim=64 seq=64; model info' 2>&1)" "note: \`set seq 128\` is longer than this model's context (64): \`train\` refuses it"
out=$("$LRSH" --json -c 'model new tiny dim=64' 2>/dev/null)
check_eq label_json "tiny True" "$(printf '%s\n' "$out" | json_eval 'str(o["preset"]) + " " + str(o["custom"])')"

# every key a command's --json result carries is named in its help (a program reads help to
# know them; 23 pages named none)
"$LRSH" -q -c "tok train vocab=512 out=$TMP/keys.model" >/dev/null 2>&1
out=$("$LRSH" --json -c "set errexit off; show; set seed 3; tok load $TMP/keys.model; tok encode hello; tok decode 5 6; data load; model new tiny seq=32; model info tensors=on; optim adamw; optim; step batch=2; train steps=2 batch=2; optim muon; eval batches=2 batch=2; model save $TMP/keys.st; model load $TMP/keys.st; data load; inspect; spectrum blocks.0.attn.wq; norms; watch spectral; log $TMP/keys.jsonl; log off; run r2; runs; plot loss; align batch=2; generate hi n=3; model factorize rank=4; ensemble new 2; ensemble wash p=0.1; ensemble papa; ensemble off; train steps=1 batch=2; ensemble eval batches=1 batch=2; ensemble average; ensemble new 2; train steps=1 batch=2; model save $TMP/keys-ens.st; model load $TMP/keys-ens.st; data load; align against=members batch=2; ensemble use 0; bench train shape=tiny steps=1 rounds=1; bench generate shape=tiny n=4 rounds=1" 2>/dev/null)
check_eq json_keys_in_help "" "$(printf '%s\n' "$out" | python3 -c '
import json, re, subprocess, sys
keys = {}
for line in sys.stdin:
    o = json.loads(line)
    if o.get("ok"): keys.setdefault(o["command"], set()).update(o)
for c, k in sorted(keys.items()):
    h = json.loads(subprocess.run([sys.argv[1], "--json", "-c", "help " + c], capture_output=True, text=True).stdout)["help"]
    missing = sorted(x for x in k - {"ok", "command", "warnings"} if not re.search(r"\b" + re.escape(x) + r"\b", h))
    if missing: print(c + ": " + " ".join(missing))' "$LRSH")"

# README's command table is the one hand copy of the command table: it names every command
check_eq readme_table_has_every_command "" "$("$LRSH" --json -c help 2>/dev/null | python3 -c '
import json, re, sys
table = open("README.md").read().split("| family | commands |")[1].split("\n\n")[0]
print(" ".join(c["name"] for c in json.loads(sys.stdin.readline())["commands"]
               if not re.search("`" + re.escape(c["name"]) + "[ `\\\\]", table)))' 2>&1)"

finish
