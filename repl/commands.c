// commands.c — the command table and dispatch. To add a command: write its handler in the
// cmd_*.c file of its family and add one entry here; help, completion and option checking
// follow from the entry.
#include "commands.h"
#include <stdlib.h>
#include <string.h>
#include "output.h"

const char *const preset_names[] = {"tiny", "small", "base", NULL};
// Only what optim_config_default accepts today; muon, spectron, renorm and ortho join as the
// engine gains them.
const char *const optimizer_names[] = {"adamw", NULL};

// Options shared by the commands that draw batches.
#define BATCH_OPTS                                                                              \
    {"batch", OPT_INT, NULL, NULL, 1, 1 << 20, "sequences per micro-batch (default: `set batch`, 8)"}, \
    {"accum", OPT_INT, NULL, NULL, 1, 1 << 20, "micro-batches per step (default: `set accum`, 1)"},   \
    {"seq", OPT_INT, NULL, NULL, 1, 1 << 20, "tokens per sequence (default: the model's seq)"}

const OptSpec settings[] = {
    {"seed", OPT_INT, "1234", NULL, 0, 0, "seed for the next model, trainer and eval batches"},
    {"threads", OPT_INT, NULL, NULL, 0, 4096, "CPU threads (0: all cores)"},
    {"batch", OPT_INT, "8", NULL, 1, 1 << 20, "default sequences per micro-batch"},
    {"accum", OPT_INT, "1", NULL, 1, 1 << 20, "default micro-batches per step"},
    {"errexit", OPT_BOOL, NULL, NULL, 0, 0, "stop a script at the first error (on in scripts, -c, pipes)"},
    {"json", OPT_BOOL, "off", NULL, 0, 0, "print one JSON object per result on stdout"},
    {"quiet", OPT_BOOL, "off", NULL, 0, 0, "drop notes and progress lines"},
    {NULL, 0, NULL, NULL, 0, 0, NULL},
};

const CmdSpec commands[] = {
    // ---- shell ----
    {.name = "help", .family = "shell", .args = "[COMMAND [SUB]]",
     .summary = "list the commands, or show one command's usage, options and examples",
     .help = "Examples:\n  help\n  help train\n  help tok train",
     .max_pos = 2, .pos = POS_COMMAND, .run = cmd_help},
    {.name = "show", .family = "shell", .args = "",
     .summary = "the session: tokenizer, data, model, optimizer, step, device, settings",
     .help = "Example:\n  show", .run = cmd_show},
    {.name = "set", .family = "shell", .args = "KEY VALUE",
     .summary = "change a setting: seed, threads, batch, accum, errexit, json, quiet",
     .help = "Settings (`show` prints their values):\n"
             "  seed N         seed for the next model, trainer and eval batches\n"
             "  threads N      CPU threads (0: all cores)\n"
             "  batch N        default sequences per micro-batch for train/step/eval\n"
             "  accum N        default micro-batches per optimizer step\n"
             "  errexit on|off stop a script or -c at the first error (default on there)\n"
             "  json on|off    one JSON object per result on stdout\n"
             "  quiet on|off   drop notes and progress lines\n"
             "Examples:\n  set batch 16\n  set errexit off",
     .min_pos = 2, .max_pos = 2, .pos = POS_SETTING, .run = cmd_set},
    {.name = "quit", .family = "shell", .args = "", .summary = "leave the shell (Ctrl-D does too)",
     .help = "At the prompt, with a model trained since it was last saved, the first quit (or\n"
             "Ctrl-D, or a second Ctrl-C on an empty line) only warns; the next one leaves.\n"
             "`model save PATH` first keeps the model. Scripts, -c and pipes just quit.\n"
             "Example:\n  quit", .run = cmd_quit},
    {.name = "exit", .family = "shell", .args = "", .summary = "same as quit",
     .help = "Example:\n  exit", .run = cmd_quit},

    // ---- tokenizer ----
    {.name = "tok", .sub = "train", .family = "tokenizer",
     .args = "[FILE] [vocab=N] [type=bpe|unigram] [out=PATH]",
     .summary = "train a SentencePiece tokenizer on a text file (default: the fortunes corpus)",
     .help = "Trains on FILE, or with no FILE on the default corpus (Debian's fortunes, written\n"
             "once to $XDG_CACHE_HOME/lrsh/fortunes.txt, else ~/.cache/lrsh/fortunes.txt).\n"
             "The model file goes to out=, by default the same cache folder as\n"
             "<file stem>-<type><vocab>.model; the tokenizer is loaded at once. Loaded data is\n"
             "dropped: it was tokenized with the previous tokenizer.\n"
             "Examples:\n  tok train vocab=512\n  tok train notes.txt vocab=4096 type=unigram out=notes.model",
     .max_pos = 1, .pos = POS_PATH, .run = cmd_tok_train,
     .opts = (const OptSpec[]){
         {"vocab", OPT_INT, "8192", NULL, TOKENIZER_MIN_VOCAB, TOKENIZER_MAX_VOCAB, "vocabulary size"},
         {"type", OPT_ENUM, "bpe", "bpe|unigram", 0, 0, "SentencePiece model type"},
         {"out", OPT_PATH, NULL, NULL, 0, 0, "where to write the model (default: the cache folder)"},
         {NULL, 0, NULL, NULL, 0, 0, NULL}}},
    {.name = "tok", .sub = "load", .family = "tokenizer", .args = "PATH",
     .summary = "load a SentencePiece model file",
     .help = "Example:\n  tok load ~/.cache/lrsh/fortunes-bpe8192.model",
     .min_pos = 1, .max_pos = 1, .pos = POS_PATH, .run = cmd_tok_load},
    {.name = "tok", .sub = "encode", .family = "tokenizer", .args = "TEXT",
     .summary = "print the token ids of TEXT",
     .help = "Words after `encode` are joined by single spaces; quote the text to keep its\n"
             "exact spacing or a `;`, `#` or `=` in it.\n"
             "Examples:\n  tok encode \"Hello, world\"\n  tok encode the quick brown fox",
     .min_pos = 1, .max_pos = -1, .pos = POS_TEXT, .run = cmd_tok_encode},
    {.name = "tok", .sub = "decode", .family = "tokenizer", .args = "IDS",
     .summary = "print the text of token ids (separated by spaces or commas)",
     .help = "Examples:\n  tok decode 72 101 108\n  tok decode 72,101,108\n  tok decode \"[72, 101, 108]\"",
     .min_pos = 1, .max_pos = -1, .pos = POS_TEXT, .run = cmd_tok_decode},

    // ---- data ----
    {.name = "data", .sub = "load", .family = "data", .args = "[FILE|FOLDER] [val=0.05]",
     .summary = "tokenize a corpus once (cached), split it into train and validation",
     .help = "With no FILE, the default corpus (see `help tok train`). A folder means every *.txt\n"
             "under it. The token cache sits next to the corpus and is reused while it is up to\n"
             "date. Needs a tokenizer.\n"
             "Examples:\n  data load\n  data load books/ val=0.02",
     .max_pos = 1, .pos = POS_PATH, .run = cmd_data_load,
     .opts = (const OptSpec[]){
         {"val", OPT_FLOAT, "0.05", NULL, 0, 0.5, "fraction of tokens held out for validation"},
         {NULL, 0, NULL, NULL, 0, 0, NULL}}},

    // ---- model ----
    {.name = "model", .sub = "new", .family = "model",
     .args = "[tiny|small|base] [dim= layers= heads= kv_heads= ffn= rank= seq= vocab=]",
     .summary = "build a fresh model from a preset, with fields overridden",
     .help = "Without a preset, starts from the last model's config (at first: tiny). vocab\n"
             "defaults to the loaded tokenizer's size. rank=0 is dense; rank=R factorizes every\n"
             "non-embedding matrix W = A·Bᵀ at rank R; rank=-1 uses rank_ratio·in (0.25).\n"
             "Replaces the current model and its optimizer state.\n"
             "Examples:\n  model new tiny\n  model new small rank=0\n  model new base layers=4 seq=128",
     .max_pos = 1, .pos = POS_WORD, .words = preset_names, .run = cmd_model_new,
     .opts = (const OptSpec[]){
         {"dim", OPT_INT, NULL, NULL, 1, 1 << 16, "model width"},
         {"layers", OPT_INT, NULL, NULL, 1, 1024, "decoder blocks"},
         {"heads", OPT_INT, NULL, NULL, 1, 1024, "attention heads"},
         {"kv_heads", OPT_INT, NULL, NULL, 1, 1024, "key/value heads (grouped-query attention)"},
         {"ffn", OPT_INT, NULL, NULL, 1, 1 << 18, "MLP hidden width"},
         {"rank", OPT_INT, NULL, NULL, -1, 1 << 16, "0 dense, R factorized at rank R, -1 rank_ratio"},
         {"rank_ratio", OPT_FLOAT, NULL, NULL, 0, 1, "rank as a fraction of in_features (rank=-1)"},
         {"seq", OPT_INT, NULL, NULL, 1, 1 << 20, "context length"},
         {"vocab", OPT_INT, NULL, NULL, 1, 1 << 24, "vocabulary (default: the tokenizer's)"},
         {"seed", OPT_INT, NULL, NULL, 0, 0, "initialization seed (default: `set seed`)"},
         {NULL, 0, NULL, NULL, 0, 0, NULL}}},
    {.name = "model", .sub = "info", .family = "model", .args = "[tensors=on]",
     .summary = "parameters, dense equivalent, FLOPs per token, memory",
     .help = "Examples:\n  model info\n  model info tensors=on",
     .run = cmd_model_info,
     .opts = (const OptSpec[]){
         {"tensors", OPT_BOOL, "off", NULL, 0, 0, "also list every tensor"},
         {NULL, 0, NULL, NULL, 0, 0, NULL}}},

    {.name = "model", .sub = "save", .family = "model", .args = "PATH [dtype=f32|bf16] [optim=yes|no]",
     .summary = "write the model (with optimizer state and tokenizer) to a safetensors file",
     .help = "The file is a standard safetensors file: any safetensors reader opens it. It holds the\n"
             "parameters (f32, or bf16 at half the size), the step count and data position, the\n"
             "optimizer moments (optim=no leaves them out: smaller, but `train` after a load\n"
             "restarts the moments) and the loaded tokenizer, so the file alone is enough to\n"
             "`generate`. Written to a temporary name and renamed: a crash never leaves half a file.\n"
             "Examples:\n  model save run1.safetensors\n  model save small.safetensors dtype=bf16 optim=no",
     .min_pos = 1, .max_pos = 1, .pos = POS_PATH, .run = cmd_model_save,
     .opts = (const OptSpec[]){
         {"dtype", OPT_ENUM, "f32", "f32|bf16", 0, 0, "parameter precision in the file"},
         {"optim", OPT_BOOL, "yes", NULL, 0, 0, "include the optimizer moments (for an exact resume)"},
         {NULL, 0, NULL, NULL, 0, 0, NULL}}},
    {.name = "model", .sub = "load", .family = "model", .args = "PATH",
     .summary = "replace the model (and trainer, tokenizer) with a checkpoint's",
     .help = "Checks the whole file first: on any error the message names the problem and the\n"
             "session keeps its model, trainer and tokenizer. On success the model is replaced;\n"
             "so is the trainer when the file has optimizer state (`train` continues where it\n"
             "stopped), and the tokenizer when one is embedded (loaded data made with another\n"
             "tokenizer is dropped). Prints the step, optimizer and dtype it found.\n"
             "Examples:\n  model load run1.safetensors\n  model load run1.safetensors; generate \"Once\" n=50",
     .min_pos = 1, .max_pos = 1, .pos = POS_PATH, .run = cmd_model_load},
    {.name = "model", .sub = "factorize", .family = "model", .args = "rank=R",
     .summary = "replace every block matrix W by its best rank-R approximation A·Bᵀ (SVD)",
     .help = "Works on a dense or a factorized model (then W = A·Bᵀ is re-truncated). Prints each\n"
             "matrix's relative error ‖W − A·Bᵀ‖_F / ‖W‖_F, the worst and the mean. The embedding,\n"
             "head and norm gains are copied. The optimizer state is reset (the factors are new\n"
             "parameters); the step count is kept. R must fit every matrix: 1 ≤ R ≤ min(out, in).\n"
             "Examples:\n  model factorize rank=32\n  model factorize rank=8; eval",
     .run = cmd_model_factorize,
     .opts = (const OptSpec[]){
         {"rank", OPT_INT, NULL, NULL, 1, 1 << 16, "the new rank of every block matrix (required)"},
         {NULL, 0, NULL, NULL, 0, 0, NULL}}},

    // ---- optimizer ----
    {.name = "optim", .family = "optimizer",
     .args = "[adamw] [lr= wd= beta1= beta2= eps= clip= warmup= horizon= min_lr_ratio=]",
     .summary = "choose the optimizer and its hyper-parameters (no arguments: show them)",
     .help = "Naming an optimizer starts from its defaults; options alone change the current\n"
             "settings. The learning rate warms up linearly for warmup= steps, then decays\n"
             "along a cosine to min_lr_ratio·lr at step horizon= (0: constant). If a trainer\n"
             "exists it is rebuilt: the optimizer state (moments) starts again from zero, the\n"
             "step count is kept.\n"
             "Examples:\n  optim adamw lr=3e-4 wd=0.1 warmup=100 horizon=2000\n  optim lr=1e-3",
     .max_pos = 1, .pos = POS_WORD, .words = optimizer_names, .run = cmd_optim,
     .opts = (const OptSpec[]){
         {"lr", OPT_FLOAT, NULL, NULL, 0, 10, "peak learning rate"},
         {"wd", OPT_FLOAT, NULL, NULL, 0, 10, "decoupled weight decay"},
         {"beta1", OPT_FLOAT, NULL, NULL, 0, 1, "first-moment decay"},
         {"beta2", OPT_FLOAT, NULL, NULL, 0, 1, "second-moment decay"},
         {"eps", OPT_FLOAT, NULL, NULL, 0, 1, "AdamW epsilon"},
         {"clip", OPT_FLOAT, NULL, NULL, 0, 0, "global gradient-norm clip (0: off)"},
         {"warmup", OPT_INT, NULL, NULL, 0, 1 << 30, "linear warm-up steps"},
         {"horizon", OPT_INT, NULL, NULL, 0, 1 << 30, "step where cosine decay ends (0: none)"},
         {"min_lr_ratio", OPT_FLOAT, NULL, NULL, 0, 1, "final lr as a fraction of lr"},
         {NULL, 0, NULL, NULL, 0, 0, NULL}}},

    // ---- training ----
    {.name = "train", .family = "training", .args = "steps=N [eval_every=N eval_batches=N batch= accum= seq=]",
     .summary = "take N optimizer steps on the loaded data (Ctrl-C stops between steps)",
     .help = "Builds the trainer on first use with the current `optim` settings and `set seed`.\n"
             "On a terminal one line shows step, loss, tokens/s and ETA; otherwise a line every\n"
             "~10%. Ctrl-C stops after the step in progress; the model keeps every step taken.\n"
             "Every step is recorded in the current run (see `run`, `plot`) and, after `log FILE`,\n"
             "appended to that file. eval_every=N also measures the validation loss (as `eval`).\n"
             "Examples:\n  train steps=200\n  train steps=1000 batch=16 accum=4\n  train steps=500 eval_every=100",
     .run = cmd_train,
     .opts = (const OptSpec[]){
         {"steps", OPT_INT, NULL, NULL, 1, 1e9, "optimizer steps to take (required)"},
         {"eval_every", OPT_INT, "0", NULL, 0, 1e9, "measure the validation loss every N steps and at the end (0: never)"},
         {"eval_batches", OPT_INT, "10", NULL, 1, 1e6, "validation batches per measurement"},
         BATCH_OPTS,
         {NULL, 0, NULL, NULL, 0, 0, NULL}}},
    {.name = "step", .family = "training", .args = "[batch= accum= seq=]",
     .summary = "take one optimizer step and show its statistics",
     .help = "Example:\n  step\n  step batch=4", .run = cmd_step,
     .opts = (const OptSpec[]){BATCH_OPTS, {NULL, 0, NULL, NULL, 0, 0, NULL}}},
    {.name = "eval", .family = "training", .args = "[batches=N] [batch= seq=]",
     .summary = "validation loss and perplexity (the same batches every time)",
     .help = "The loss is recorded in the current run at the current step (`plot loss` shows it).\n"
             "Examples:\n  eval\n  eval batches=50",
     .run = cmd_eval,
     .opts = (const OptSpec[]){
         {"batches", OPT_INT, "20", NULL, 1, 1e6, "validation batches to average"},
         {"batch", OPT_INT, NULL, NULL, 1, 1 << 20, "sequences per batch (default: `set batch`)"},
         {"seq", OPT_INT, NULL, NULL, 1, 1 << 20, "tokens per sequence (default: the model's seq)"},
         {NULL, 0, NULL, NULL, 0, 0, NULL}}},

    // ---- sampling ----
    {.name = "generate", .family = "sampling", .args = "[PROMPT] [n=128 temp=0.8 top_k=40 top_p=0.95 seed=N]",
     .summary = "continue PROMPT with sampled tokens, printed as they come (Ctrl-C stops)",
     .help = "Encodes the prompt after a BOS token, feeds it in one batched pass through the KV\n"
             "cache, then samples one token at a time until end-of-text, n tokens or Ctrl-C. With\n"
             "no prompt it starts from BOS alone. temp=0 is greedy; top_k=0 and top_p=1 turn the\n"
             "cuts off. The same seed= gives the same text; without seed= each call uses the\n"
             "session seed plus the number of earlier calls (a script is still reproducible). A\n"
             "prompt longer than the context slides the window (a note says so). Needs a model and\n"
             "a tokenizer whose vocabulary fits it (`model load` of a checkpoint brings both).\n"
             "With --json, no text streams to stdout: one object with text, tokens, tok_per_s,\n"
             "prompt_tokens and stopped (eos, n or interrupt).\n"
             "Examples:\n  generate\n  generate \"Once upon a time\" n=200 temp=0.7\n  generate The n=20 temp=0",
     .min_pos = 0, .max_pos = -1, .pos = POS_TEXT, .run = cmd_generate,
     .opts = (const OptSpec[]){
         {"n", OPT_INT, "128", NULL, 1, 1 << 24, "tokens to generate at most"},
         {"temp", OPT_FLOAT, "0.8", NULL, 0, 100, "temperature (0: greedy)"},
         {"top_k", OPT_INT, "40", NULL, 0, 1 << 24, "sample among the k most likely tokens (0: all)"},
         {"top_p", OPT_FLOAT, "0.95", NULL, 0, 1, "nucleus: the smallest set with this much probability"},
         {"seed", OPT_INT, NULL, NULL, 0, 0, "sampling seed (default: the session seed + calls so far)"},
         {NULL, 0, NULL, NULL, 0, 0, NULL}}},

    // ---- output ----
    {.name = "plot", .family = "output",
     .args = "[loss|val|lr|gnorm|clip|tok_per_s|seconds] [from=FILE] [png=FILE] [svg=FILE] [width=72 height=16]",
     .summary = "chart a training metric by step in the terminal (braille), every run overlaid",
     .help = "Draws the field over the steps of every run (see `run`) with Unicode braille\n"
             "characters (2×4 dots per cell): y from its min to its max, x the step range, a\n"
             "legend; with several runs each line ends at its letter (and has its own color on a\n"
             "terminal). `plot loss` adds the validation losses from `eval` / `train eval_every=`\n"
             "as points. from=FILE reads a file written by `log` instead of this session's runs.\n"
             "png= / svg= also hand the same data to gnuplot (when installed) for an image file.\n"
             "Examples:\n  plot\n  plot lr\n  plot gnorm width=100 height=20\n"
             "  plot loss png=loss.png\n  plot loss from=run1.jsonl svg=run1.svg",
     .max_pos = 1, .pos = POS_WORD, .words = plot_fields, .run = cmd_plot,
     .opts = (const OptSpec[]){
         {"from", OPT_PATH, NULL, NULL, 0, 0, "a `log` file (JSON lines) to plot instead of the session's runs"},
         {"png", OPT_PATH, NULL, NULL, 0, 0, "also write a PNG image with gnuplot"},
         {"svg", OPT_PATH, NULL, NULL, 0, 0, "also write an SVG image with gnuplot"},
         {"width", OPT_INT, "72", NULL, 8, 1000, "chart width in terminal cells"},
         {"height", OPT_INT, "16", NULL, 3, 500, "chart height in terminal cells"},
         {NULL, 0, NULL, NULL, 0, 0, NULL}}},
    {.name = "log", .family = "output", .args = "[FILE|off]",
     .summary = "append every training step to FILE as a JSON line (`log off` stops)",
     .help = "Each line: {\"step\", \"loss\", \"lr\", \"grad_norm\", \"clip_scale\", \"tok_per_s\",\n"
             "\"seconds\", \"run\"}; a validation loss adds {\"step\", \"val_loss\", \"run\"}. The file is\n"
             "appended to and flushed after every line, so `tail -f` follows it and a crash keeps it.\n"
             "`plot FIELD from=FILE` draws it later. With no argument: where logging goes.\n"
             "Examples:\n  log run1.jsonl\n  log off",
     .max_pos = 1, .pos = POS_PATH, .run = cmd_log},
    {.name = "run", .family = "output", .args = "[NAME]",
     .summary = "start a new named run: the series the next steps go to (no NAME: list runs)",
     .help = "The session keeps every run's per-step history (loss, lr, gradient norm, clip scale,\n"
             "tokens/s) and validation losses; `plot` overlays the runs. Without `run`, training\n"
             "starts a run named after the optimizer, and `model new` / `model load` start the\n"
             "next one. A name already taken gets -2, -3, …\n"
             "Examples:\n  run baseline; train steps=200\n  run lr-1e-3; optim lr=1e-3; train steps=200; plot",
     .max_pos = 1, .pos = POS_TEXT, .run = cmd_run},

    // ---- measurement ----
    {.name = "bench", .sub = "train", .family = "measurement",
     .args = "[shape=small|base] [model=dense|factorized|both] [steps=N] [batch=N]",
     .summary = "training throughput and MFU against this machine's measured sgemm peak",
     .help = "Measures the sgemm peak once, then trains each model on random tokens.\n"
             "Independent of the session's model and data.\n"
             "Examples:\n  bench train\n  bench train shape=base model=factorized steps=10",
     .run = cmd_bench_train,
     .opts = (const OptSpec[]){
         {"shape", OPT_ENUM, "small", "tiny|small|base", 0, 0, "model preset"},
         {"model", OPT_ENUM, "both", "dense|factorized|both", 0, 0, "which variants to run"},
         {"steps", OPT_INT, "5", NULL, 1, 100000, "timed steps (after one warm-up step)"},
         {"batch", OPT_INT, NULL, NULL, 1, 1 << 20, "sequences per step (default: `set batch`)"},
         {NULL, 0, NULL, NULL, 0, 0, NULL}}},
    {.name = "bench", .sub = "generate", .family = "measurement",
     .args = "[shape=small|base|stories15m] [model=dense|factorized|both] [n=N]",
     .summary = "decode tokens/s (batch 1, KV cache) of the dense and factorized model",
     .help = "Builds each model with random weights, prefills a 16-token prompt, then decodes n\n"
             "tokens one at a time (greedy), repeated for about a second. Factorized: rank dim/4.\n"
             "stories15m is llama2.c's 15M shape (dim 288, 6 layers, vocab 32000). Peak memory is\n"
             "the process's high-water mark after each run. Independent of the session's model.\n"
             "Examples:\n  bench generate\n  bench generate shape=stories15m n=128",
     .run = cmd_bench_generate,
     .opts = (const OptSpec[]){
         {"shape", OPT_ENUM, "small", "tiny|small|base|stories15m", 0, 0, "model shape"},
         {"model", OPT_ENUM, "both", "dense|factorized|both", 0, 0, "which variants to run"},
         {"n", OPT_INT, "128", NULL, 1, 1 << 20, "tokens decoded per round (capped at the context)"},
         {NULL, 0, NULL, NULL, 0, 0, NULL}}},
};

const int n_commands = (int)(sizeof commands / sizeof commands[0]);

const CmdSpec *command_find(const char *name, const char *sub) {
    for (int i = 0; i < n_commands; i++) {
        const CmdSpec *c = &commands[i];
        if (strcmp(c->name, name) != 0) continue;
        if (!c->sub || (sub && strcmp(c->sub, sub) == 0)) return c;
    }
    return NULL;
}

int command_has_subs(const char *name) {
    for (int i = 0; i < n_commands; i++)
        if (commands[i].sub && strcmp(commands[i].name, name) == 0) return 1;
    return 0;
}

const char *command_title(const CmdSpec *c, char *buf, size_t size) {
    snprintf(buf, size, c->sub ? "%s %s" : "%s", c->name, c->sub);
    return buf;
}

// ---- dispatch -----------------------------------------------------------------------------

static int unknown_command(const char *name, Err *err) {
    Suggest sg;
    suggest_init(&sg, name);
    for (int i = 0; i < n_commands; i++) suggest_try(&sg, commands[i].name);
    if (suggest_best(&sg))
        return err_set(err, "unknown command '%s': did you mean '%s'? (`help` lists commands)", name,
                       suggest_best(&sg));
    // "encode" alone: point at the family that has it
    for (int i = 0; i < n_commands; i++)
        if (commands[i].sub && strcmp(commands[i].sub, name) == 0)
            return err_set(err, "unknown command '%s': did you mean '%s %s'?", name, commands[i].name, name);
    return err_set(err, "unknown command '%s' (`help` lists commands)", name);
}

static int unknown_sub(const char *name, const char *sub, Err *err) {
    Suggest sg;
    suggest_init(&sg, sub ? sub : "");
    char list[256] = "";
    for (int i = 0; i < n_commands; i++) {
        if (!commands[i].sub || strcmp(commands[i].name, name) != 0) continue;
        suggest_try(&sg, commands[i].sub);
        size_t n = strlen(list);
        snprintf(list + n, sizeof list - n, "%s%s", n ? ", " : "", commands[i].sub);
    }
    if (!sub) return err_set(err, "%s needs a sub-command: %s", name, list);
    if (suggest_best(&sg))
        return err_set(err, "unknown sub-command '%s %s': did you mean '%s %s'?", name, sub, name,
                       suggest_best(&sg));
    return err_set(err, "unknown sub-command '%s %s' (%s has: %s)", name, sub, name, list);
}

// The entry for the words typed; *first is where its arguments start.
static const CmdSpec *resolve(const Words *w, int *first, Err *err) {
    const char *name = w->w[0];
    if (!command_has_subs(name)) {
        const CmdSpec *c = command_find(name, NULL);
        if (!c) unknown_command(name, err);
        *first = 1;
        return c;
    }
    const char *sub = w->n > 1 ? w->w[1] : NULL;
    const CmdSpec *c = sub ? command_find(name, sub) : NULL;
    if (!c) unknown_sub(name, sub, err);
    *first = 2;
    return c;
}

static int check_positionals(const CmdSpec *c, const Args *a, Err *err) {
    char title[64];
    command_title(c, title, sizeof title);
    if (a->n_pos < c->min_pos)
        return err_set(err, "%s needs more arguments; usage: %s %s", title, title, c->args);
    if (c->max_pos >= 0 && a->n_pos > c->max_pos) {
        if (c->max_pos == 0)
            return err_set(err, "%s takes no arguments besides key=value options (got '%s')", title, a->pos[0]);
        return err_set(err, "%s: too many arguments ('%s'); usage: %s %s", title, a->pos[c->max_pos], title,
                       c->args);
    }
    return 0;
}

static int run_command(Session *s, const Words *w) {
    Err err = {{0}};
    int first;
    char title[64];
    const CmdSpec *c = resolve(w, &first, &err);
    Args a;
    if (!c || args_parse(&a, w, first, c->opts, command_title(c, title, sizeof title), &err) != 0) {
        out_error(s, w->text, err.msg);
        return -1;
    }
    int rc = check_positionals(c, &a, &err);
    if (rc == 0) {
        s->result = cJSON_CreateObject();
        cJSON_AddTrueToObject(s->result, "ok");
        cJSON_AddStringToObject(s->result, "command", title);
        s->emitted = 0;
        lrsh_interrupted = 0;  // a Ctrl-C typed before this command is not meant for it
        rc = c->run(s, &a, &err);
    }
    if (rc != 0) out_error(s, w->text, err.msg[0] ? err.msg : "failed");
    else if (!s->emitted) out_result(s, s->result);
    cJSON_Delete(s->result);
    s->result = NULL;
    args_free(&a);
    return rc;
}

int run_line(Session *s, const char *line) {
    Err err = {{0}};
    Words *cmds;
    int n = parse_line(line, &cmds, &err);
    if (n < 0) {
        out_error(s, line, err.msg);
        return -1;
    }
    int failed = 0;
    for (int i = 0; i < n && !s->quit; i++) {
        if (run_command(s, &cmds[i]) != 0) {
            failed = 1;
            if (s->errexit) break;
        }
        if (lrsh_interrupted) break;  // Ctrl-C abandons the rest of the line, as in sh
    }
    words_free(cmds, n);
    return failed ? -1 : 0;
}
