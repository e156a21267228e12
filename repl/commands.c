// commands.c — the command table and dispatch. To add a command: write its handler in the
// cmd_*.c file of its family and add one entry here; help, completion and option checking
// follow from the entry.
#include "commands.h"
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include "output.h"

// Options shared by the commands that draw batches.
#define BATCH_OPTS                                                                              \
    {"batch", OPT_INT, NULL, NULL, 1, 1 << 20, "sequences per micro-batch (default: `set batch`, 8)"}, \
    {"accum", OPT_INT, NULL, NULL, 1, 1 << 20, "micro-batches per step (default: `set accum`, 1)"},   \
    {"seq", OPT_INT, NULL, NULL, 1, 1 << 20, "tokens per sequence (default: `set seq`, else the model's seq)"}

// The settings `set` changes, `show` prints, `help set` lists and completion offers.
const OptSpec settings[] = {
    {"seed", OPT_INT, "1234", NULL, 0, SEED_MAX,
     "seed for the next model, trainer, align batches and samples (`model load` sets the file's: at the prompt "
     "the bundled model's, 1)"},
    {"threads", OPT_INT, NULL, NULL, 0, 4096, "CPU threads (0: all cores, or OMP_NUM_THREADS when set)"},
    {"batch", OPT_INT, "8", NULL, 1, 1 << 20, "default sequences per micro-batch for train/step/eval"},
    {"accum", OPT_INT, "1", NULL, 1, 1 << 20, "default micro-batches per optimizer step"},
    {"seq", OPT_INT, "0", NULL, 0, 1 << 20,
     "default tokens per sequence (0: the model's context); `model load` sets batch, accum and seq to the saving "
     "session's"},
    {"errexit", OPT_BOOL, NULL, NULL, 0, 0,
     "stop a script, -c or piped commands at the first error (default on there; off at the interactive prompt)"},
    {"interrupt", OPT_ENUM, "script", "script|command", 0, 0,
     "what Ctrl-C (SIGINT) stops in a script, -c or piped commands: the script (as in sh, status 130), or only the "
     "command running — or the line sent before it, not started yet — the next line then read (a program driving "
     "lrsh through a pipe); under command, presses never add up to leaving lrsh. A command stopped that keeps its "
     "work (train, eval, generate) succeeds with interrupted: true; one that keeps nothing (align, bench, tok train) "
     "fails, its JSON error with interrupted: true"},
    {"progress", OPT_ENUM, "live", "live|lines", 0, 0,
     "on a terminal, a long command's progress as one line redrawn in place (live), or as the plain lines a pipe "
     "gets, one every ~10% and at least once a minute (lines: for a screen reader, which speaks every redraw)"},
    {"json", OPT_BOOL, "off", NULL, 0, 0, "one JSON object per result on stdout"},
    {"quiet", OPT_BOOL, "off", NULL, 0, 0, "drop notes and progress lines"},
    {"device", OPT_ENUM, "cpu", "cpu|cuda", 0, 0,
     "where models compute; the model (with its optimizer state) moves along; without a GPU it says why and stays "
     "(ensembles: save, set device, load)"},
    {"precision", OPT_ENUM, "fp32", "fp32|tf32|bf16", 0, 0,
     "the GPU's matrix products: exact float32, or tensor cores on tf32 (~1e-3) or bf16 (~1e-2) inputs with float32 "
     "sums; a generated token's one-row products stay fp32; the CPU computes in fp32 and keeps the choice"},
    {"attention", OPT_ENUM, "gemm", "gemm|flash|rows", 0, 0,
     "the GPU's attention: cuBLAS products over the heads keeping the T×T probabilities, flash-style kernels keeping "
     "one number per query row (less memory at long contexts; at precision bf16 on the tensor cores, for head sizes "
     "that are multiples of 16 up to 128 — checked by an emulator, not yet run on a GPU), or the first simple kernels; the CPU keeps the "
     "choice for the GPU"},
    {"graphs", OPT_BOOL, "on", NULL, 0, 0,
     "on the GPU, a generated token's hundred-odd kernels are recorded once as a CUDA graph and replayed with one "
     "launch (on), or launched one by one (off)"},
    {"fused", OPT_BOOL, "on", NULL, 0, 0,
     "on the GPU, a generated token through lrsh's fused kernels: its one-row products by lrsh's GEMV kernel (fp32) "
     "instead of cuBLAS, with the RMSNorm or SwiGLU before each folded in, and RoPE, the KV-cache append and "
     "attention one kernel instead of three (faster on an H200: docs/gpu-results.md); off: cuBLAS and the separate "
     "kernels, equal to rounding (`bench generate` compares the two)"},
    {"pdl", OPT_BOOL, "on", NULL, 0, 0,
     "on the GPU (Hopper), each of a generated token's kernels may start before the one ahead of it ends, fetching "
     "its weights meanwhile, and waits on the GPU for that one's results (faster on an H200, fused or not)"},
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
     .help = "Lists the last 8 runs, the current one among them (a line counts the others: `run` lists\n"
             "them all).\n"
             "--json: seed, threads, batch, accum, seq, errexit, interrupt, progress, quiet, device,\n"
             "backend, precision, attention, graphs, fused, pdl; tokenizer {path, vocab} ({path:\n"
             "null, embedded_in, vocab} for one that came in a checkpoint) and data {source, cache, tokens,\n"
             "train, val} (null when none), model {dim, layers, heads, …, the config's fields, built,\n"
             "params}, optimizer {name, lr, wd, …, its settings}, step, checkpoint, unsaved, log,\n"
             "runs:[{name, steps, evals, current}] (every run).\n"
             "Example:\n  show", .run = cmd_show},
    {.name = "set", .family = "shell", .args = "KEY VALUE",
     .summary = "change a setting: seed, threads, batch, accum, seq, errexit, interrupt, progress, json, quiet, device, "
                "precision, "
                "attention, graphs, fused, pdl",
     .help = "The variables LRSH_CUDA_ATTENTION, LRSH_CUDA_GRAPHS, LRSH_CUDA_FUSED and\n"
             "LRSH_CUDA_PDL give the starting values of attention, graphs, fused and pdl.\n"
             "--json: key, value (as the session reads it: a number for the integer keys — a string\n"
             "from 16 digits on, as seeds are —, on or off for the switches, else the word).\n"
             "Examples:\n  set batch 16\n  set errexit off\n  set device cpu\n  set precision tf32\n"
             "  set attention flash\n  set fused off; set pdl off; bench generate",
     .min_pos = 2, .max_pos = 2, .pos = POS_SETTING, .run = cmd_set, .dyn_help = set_dyn_help},
    {.name = "quit", .family = "shell", .args = "", .summary = "leave the shell (Ctrl-D does too)",
     .help = "At the prompt, with a model (or an ensemble) changed (trained, averaged) since it was\n"
             "last saved, the first quit (or Ctrl-D) only warns, naming which; the next one leaves, whatever ran between —\n"
             "until more training. Ctrl-C, the key that stops training and generation, never leaves\n"
             "the shell. `model new`, `model load`, `model factorize`, `ensemble new`, `ensemble\n"
             "use` and `ensemble average` warn the same way, each once for itself.\n"
             "`model save PATH` first keeps the model (the ensemble while one exists). Scripts, -c\n"
             "and pipes just quit.\n"
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
             "<file stem>-<path hash>-<type><vocab>.model (a file in that folder, as the default\n"
             "corpus: fortunes-<type><vocab>.model); the tokenizer is loaded at once. Loaded data is\n"
             "dropped: it was tokenized with the previous tokenizer (kept when the new one is the\n"
             "same model, byte for byte). SentencePiece learns from a sample of up to 200 000\n"
             "lines and skips lines longer than 16 384 bytes (they are still encoded by `data\n"
             "load`). Its U+2581 (▁) stands for a space: one in the text comes back as a space.\n"
             "Unigram training runs on the session's threads (--threads, `set threads`), BPE on one;\n"
             "the file does not depend on the folder FILE lies in (only its name is recorded).\n"
             "Ctrl-C stops the training at once: nothing is written, the session keeps its tokenizer.\n"
             "Examples:\n  tok train vocab=512\n  tok train notes.txt vocab=4096 type=unigram out=notes.model",
     .max_pos = 1, .pos = POS_PATH, .run = cmd_tok_train,
     .opts = (const OptSpec[]){
         {"vocab", OPT_INT, "8192", NULL, TOKENIZER_MIN_VOCAB, TOKENIZER_MAX_VOCAB, "vocabulary size"},
         {"type", OPT_ENUM, "bpe", "bpe|unigram", 0, 0, "SentencePiece model type"},
         {"out", OPT_PATH, NULL, NULL, 0, 0, "where to write the model (default: the cache folder, named after the corpus and its folder); an existing file only if a tokenizer"},
         {NULL, 0, NULL, NULL, 0, 0, NULL}}},
    {.name = "tok", .sub = "load", .family = "tokenizer", .args = "PATH",
     .summary = "load a SentencePiece model file",
     .help = "`tok train` names the file it writes (in the cache folder unless out= says where):\n"
             "`tok train notes.txt out=notes.model` today, `tok load notes.model` tomorrow.\n"
             "--json: path, vocab.\n"
             "Example:\n  tok load notes.model",
     .min_pos = 1, .max_pos = 1, .pos = POS_PATH, .run = cmd_tok_load},
    {.name = "tok", .sub = "encode", .family = "tokenizer", .args = "TEXT",
     .summary = "print the token ids of TEXT",
     .help = "Words after `encode` are joined by single spaces; quote the text to keep its\n"
             "exact spacing or a `;`, `#` or `=` in it.\n"
             "--json: ids, n.\n"
             "Examples:\n  tok encode \"Hello, world\"\n  tok encode the quick brown fox",
     .min_pos = 1, .max_pos = -1, .pos = POS_TEXT, .run = cmd_tok_encode},
    {.name = "tok", .sub = "decode", .family = "tokenizer", .args = "IDS",
     .summary = "print the text of token ids (separated by spaces or commas)",
     .help = "The ids are the tokenizer's (what `tok encode` prints), not characters' codes.\n"
             "Bytes that are not UTF-8 (a lone byte piece such as <0xE2>) and the NUL byte\n"
             "(<0x00>) come out as U+FFFD, in text and JSON alike.\n"
             "--json: text.\n"
             "Examples:\n  tok decode 310 45 127\n  tok decode 310,45,127\n  tok decode \"[310, 45, 127]\"",
     .min_pos = 1, .max_pos = -1, .pos = POS_TEXT, .run = cmd_tok_decode},

    // ---- data ----
    {.name = "data", .sub = "load", .family = "data", .args = "[FILE|FOLDER] [val=0.05]",
     .summary = "tokenize a corpus once (cached), split it into train and validation",
     .help = "With no FILE, the default corpus (see `help tok train`). A folder means every *.txt\n"
             "under it (hidden files and folders aside), in sorted path order (bytewise: 10.txt\n"
             "before 2.txt), a newline between files that lack one. Symbolic links are followed,\n"
             "but not to / or to the folder or above it, nor to a folder inside it (read by its own\n"
             "name; a hidden one through the link) or one read already; a file with two names (a\n"
             "link, a hard link) is read once, by the first in that order. A note says how many\n"
             "files were read and what was left out (files not named *.txt, links and second names\n"
             "not followed). A UTF-8 byte-order mark is dropped; other bytes are text\n"
             "(no BOS or EOS is added). The validation split is the last val= fraction of the\n"
             "tokens: of a folder, its last file(s) in that order. The token cache sits next to\n"
             "the corpus, one for each tokenizer (CORPUS.HASH.tok), and is reused while it is up to\n"
             "date. Needs a tokenizer (`tok train`, `tok load`, or a `model load` that has one).\n"
             "--json: source, source_bytes, tokens, train, val, files (read), skipped_files (not\n"
             "*.txt), not_followed, cache (its path), reused.\n"
             "Examples:\n  data load\n  data load books/ val=0.02",
     .max_pos = 1, .pos = POS_PATH, .run = cmd_data_load,
     .opts = (const OptSpec[]){
         {"val", OPT_FLOAT, "0.05", NULL, 0, 0.5, "fraction of tokens held out for validation"},
         {NULL, 0, NULL, NULL, 0, 0, NULL}}},

    // ---- model ----
    {.name = "model", .sub = "new", .family = "model",
     .args = "[tiny|small|base] [dim= layers= heads= kv_heads= ffn= rank= rank_ratio= seq= vocab= seed=]",
     .summary = "build a fresh model from a preset, with fields overridden",
     .help = "Without a preset, starts from the last model's config (at first: tiny); dim= then\n"
             "resets ffn (8·dim/3, rounded up to 64) and, unless rank= or rank_ratio= is given, scales\n"
             "the last model's rank R of its dim D to R·dim/D (a note says so). vocab\n"
             "defaults to the loaded tokenizer's size. rank=0 is dense; rank=R factorizes every\n"
             "block's matrix W = A·Bᵀ at rank R (the embedding and the head stay dense); rank=-1 uses rank_ratio·in (0.25), at most\n"
             "min(out, in). A note counts a block's matrices that store more parameters factorized\n"
             "than dense (rank·(out + in) > out·in) and those rank_ratio asked too much of, naming\n"
             "the first of each.\n"
             "Replaces the current model and its optimizer state. Optimizer settings that came with\n"
             "a loaded checkpoint go back to the default (adamw, with a note); ones set with `optim`\n"
             "stay. At the prompt, a model with training not saved is not replaced at the first try\n"
             "(an error says so; `model new` again replaces it): the rest of a paste and lines typed\n"
             "ahead are then not run. Scripts, -c and pipes replace it at once.\n"
             "--json: preset, custom, config {dim, layers, heads, kv_heads, ffn, rank, rank_ratio\n"
             "(null unless rank is -1), seq, vocab}, params, dense_params.\n"
             "Examples:\n  model new tiny\n  model new small rank=0\n  model new base layers=4 seq=128",
     .max_pos = 1, .pos = POS_WORD, .words = model_preset_names, .run = cmd_model_new,
     .opts = (const OptSpec[]){
         {"dim", OPT_INT, NULL, NULL, 1, 1 << 16, "model width"},
         {"layers", OPT_INT, NULL, NULL, 1, 1024, "decoder blocks"},
         {"heads", OPT_INT, NULL, NULL, 1, 1024, "attention heads"},
         {"kv_heads", OPT_INT, NULL, NULL, 1, 1024, "key/value heads (grouped-query attention; default: heads)"},
         {"ffn", OPT_INT, NULL, NULL, 1, 1 << 18, "MLP hidden width"},
         {"rank", OPT_INT, NULL, NULL, -1, 1 << 16, "0 dense, R factorized at rank R, -1 rank_ratio"},
         {"rank_ratio", OPT_FLOAT, NULL, NULL, 0, 1, "rank as a fraction of in_features, above 0 (rank=-1)"},
         {"seq", OPT_INT, NULL, NULL, 1, 1 << 16, "context length"},
         {"vocab", OPT_INT, NULL, NULL, 2, 1 << 24, "vocabulary (default: the tokenizer's)"},
         {"seed", OPT_INT, NULL, NULL, 0, SEED_MAX, "initialization seed (default: `set seed`)"},
         {NULL, 0, NULL, NULL, 0, 0, NULL}}},
    {.name = "model", .sub = "info", .family = "model", .args = "[tensors=on|off]",
     .summary = "parameters, dense equivalent, ranks, FLOPs per token, memory",
     .help = "FLOPs and activations are for the shape `train` takes: `set batch` sequences of\n"
             "`set seq` tokens (the model's context when seq is 0): 6 a token for each parameter in a\n"
             "matrix product (the head's included, the embedding's not: a lookup) plus\n"
             "12·layers·seq·dim for attention's QKᵀ and P·V, over the whole square (PaLM's accounting). The\n"
             "training memory counts the optimizer `optim` chose (built at the first step) and lrsh's\n"
             "own buffers, not the libraries' working memory nor temporaries: measured against peak\n"
             "RSS on a CPU, 5–30 MiB more whatever the batch (a small model at batch 8 took up to a\n"
             "third more than the estimate). Under an\n"
             "ensemble the counts are a member's; its own line totals them. `ranks` gives each factorized\n"
             "matrix's rank, the same in every block (rank_ratio·in rounded down, at least 1, at\n"
             "most min(out, in)).\n"
             "--json: config, params, dense_params, matmul_params, ranks (by matrix: wq … w3;\n"
             "{} when dense), flops_per_token, batch, seq, param_bytes, activation_bytes,\n"
             "training_bytes.\n"
             "Examples:\n  model info\n  model info tensors=on\n  set seq 16; model info",
     .run = cmd_model_info,
     .opts = (const OptSpec[]){
         {"tensors", OPT_BOOL, "off", NULL, 0, 0, "also list every tensor"},
         {NULL, 0, NULL, NULL, 0, 0, NULL}}},

    {.name = "model", .sub = "save", .family = "model", .args = "PATH [dtype=f32|bf16] [optim=on|off]",
     .summary = "write the model (with optimizer state and tokenizer) to a safetensors file",
     .help = "The file is a standard safetensors file: any safetensors reader opens it. It holds the\n"
             "parameters (f32, or bf16 at half the size: rounded to 8 bits of mantissa, so the\n"
             "loaded model's text for a seed and its resumed training differ from the f32 one's),\n"
             "the step count and data position, the\n"
             "optimizer moments (optim=off leaves them out: smaller, but `train` after a load\n"
             "restarts the moments) and the loaded tokenizer, so the file alone is enough to\n"
             "`generate`. Written to a temporary name and renamed: a crash never leaves half a file.\n"
             "A file already there is written over only when it is a safetensors file and not\n"
             "read-only. The tokenizer embedded is the model's own: after `tok train` or `tok load`\n"
             "changed the session's under a trained or loaded model, still the one it learned with.\n"
             "While an ensemble exists it saves the whole ensemble: every member (tensors named\n"
             "member.I.NAME) with its optimizer state, and the WASH/PAPA settings and shuffle state.\n"
             "--json: path, bytes, step, dtype, optimizer (its name), optimizer_state (saved or\n"
             "not), tokenizer (embedded or not); an ensemble adds ensemble_k, method.\n"
             "Examples:\n  model save run1.safetensors\n  model save small.safetensors dtype=bf16 optim=off",
     .min_pos = 1, .max_pos = 1, .pos = POS_PATH, .run = cmd_model_save,
     .opts = (const OptSpec[]){
         {"dtype", OPT_ENUM, "f32", "f32|bf16", 0, 0, "parameter precision in the file"},
         {"optim", OPT_BOOL, "on", NULL, 0, 0, "include the optimizer moments (for an exact resume)"},
         {NULL, 0, NULL, NULL, 0, 0, NULL}}},
    {.name = "model", .sub = "load", .family = "model", .args = "PATH",
     .summary = "replace the model (and trainer, tokenizer) with a checkpoint's",
     .help = "Checks the whole file first: on any error the message names the problem and the\n"
             "session keeps its model, trainer and tokenizer. On success the model is replaced;\n"
             "so is the trainer when the file has optimizer state (`train` continues where it\n"
             "stopped), and the tokenizer when one is embedded (loaded data made with another\n"
             "tokenizer is dropped). Prints the step, optimizer and dtype it found. The saving\n"
             "session's batch, seq and accum (its `set` values, not a one-off train batch=) become\n"
             "this session's, a note says when they change (a file from before they were kept:\n"
             "the last update's), so that `train` goes on exactly as the run would have; the next\n"
             "train, step or eval notes data other than the file's (its size and split, or a hash\n"
             "of the text in order and the tokenizer its ids came from, recorded when data was\n"
             "loaded). An ensemble's file restores the\n"
             "ensemble (its members, coupling and step): `train` goes on. NaN or infinite\n"
             "parameters load as they are, with a warning; optimizer state no optimizer writes\n"
             "(NaN, infinite, a negative second moment) is left out, with a warning: training goes\n"
             "on from fresh moments.\n"
             "--json: path, bytes, step, dtype, config, optimizer (its name, or null),\n"
             "optimizer_state, tokenizer, seed, batches (when the file records them: not the bundled\n"
             "model, saved before they were), nonfinite (NaN/inf values found),\n"
             "state_damaged (state values left out); an ensemble adds ensemble_k and method (its\n"
             "coupling).\n"
             "Examples:\n  model load run1.safetensors\n  model load run1.safetensors; generate \"Once\" n=50",
     .min_pos = 1, .max_pos = 1, .pos = POS_PATH, .run = cmd_model_load},
    {.name = "model", .sub = "factorize", .family = "model", .args = "rank=R",
     .summary = "replace every block matrix W by its best rank-R approximation A·Bᵀ (SVD)",
     .help = "Works on a dense or a factorized model (then W = A·Bᵀ is re-truncated). Prints each\n"
             "matrix's relative error ‖W − A·Bᵀ‖_F / ‖W‖_F, the worst and the mean. The embedding,\n"
             "head and norm gains are copied. The optimizer state is reset (the factors are new\n"
             "parameters); the step count is kept. R must fit every matrix: 1 ≤ R ≤ min(out, in).\n"
             "rank=0 goes the other way: a factorized model's every W = A·Bᵀ formed, the dense model\n"
             "it computes, exactly (compare how each trains on: `optim`, `train`). The new model's\n"
             "steps and evals go to a run of their own, named after the current one (base-r8,\n"
             "base-dense), so that `runs` and `plot` show the two side by side.\n"
             "--json: rank, worst, mean, params_before, params, state_reset, matrices:[{param, rows,\n"
             "cols, source_rank, rel_error}].\n"
             "Examples:\n  model factorize rank=32\n  model factorize rank=8; eval\n  model factorize rank=0",
     .run = cmd_model_factorize,
     .opts = (const OptSpec[]){
         {"rank", OPT_INT, NULL, NULL, 0, 1 << 16, "the new rank of every block matrix (required; 0: dense)"},
         {NULL, 0, NULL, NULL, 0, 0, NULL}}},

    // ---- optimizer ----
    {.name = "optim", .family = "optimizer",
     .args = "[sgd|adamw|muon|spectron|renorm|ortho] [KEY=VALUE…]",
     .summary = "choose the optimizer and its options (no arguments: show them all)",
     .help = "Naming an optimizer starts from its defaults; options alone change the current one.\n"
             "Each optimizer takes its own keys (listed above; `help optim NAME` shows one with\n"
             "its defaults); a key it does not take is an error that lists the ones it does.\n"
             "  sgd       SGD with momentum on every tensor\n"
             "  adamw     AdamW on every tensor (factorized: the unstable baseline)\n"
             "  muon      Newton–Schulz orthogonalized momentum on matrices and factors, AdamW\n"
             "            (adam_lr) on embeddings, head and norm gains\n"
             "  spectron  Muon's direction on each factor, step ρ = lr/(σ_A+σ_B+1), so that\n"
             "            ‖ΔW‖₂ ≤ lr for every W = A·Bᵀ while ρ ≤ 1 (up to Newton–Schulz's slack and\n"
             "            σ's estimates; weight decay adds 2·lr·wd·‖W‖₂); dense matrices as muon\n"
             "  renorm    ablation: AdamW direction with Spectron's ρ on the factors (no\n"
             "            orthogonalization); dense matrices get AdamW at adam_lr, as embeddings do\n"
             "  ortho     ablation: Spectron's direction without its ρ — Muon on the factors, so\n"
             "            its updates are muon's exactly (named apart to read as the paper's table)\n"
             "Newton–Schulz's slack: ns_steps=5 of the quintic (3.4445, −4.7750, 2.0315) leave the\n"
             "direction's singular values between about 0.68 and 1.20 (the quintic's peak, 1.2023),\n"
             "not exactly 1, and those of directions the gradient barely has small (several when\n"
             "its rank is low) — measured on a dense model's first steps.\n"
             "lr is the matrices' rate (every tensor's under sgd and adamw); it warms up over\n"
             "warmup= steps, then follows a cosine to min_lr_ratio·lr at step horizon= (0: constant).\n"
             "Both count the run's steps, which `model load` and `model factorize` keep: taken up past\n"
             "its horizon a run trains at min_lr_ratio·lr (a warning says so; horizon= moves the end).\n"
             "New options for the running optimizer keep its state (moments, power-iteration\n"
             "vectors): `optim lr=1e-3` lowers the rate mid-run. Switching to another optimizer at\n"
             "any step keeps the step count and the data stream and resets the state; the note says\n"
             "what was reset. An ensemble's members follow the same rules.\n"
             "Each optimizer starts from its own lr (adamw 1e-3, spectron 0.02): to compare them as\n"
             "the paper does, give every one the same rate, e.g. lr=0.05 — there AdamW on factors\n"
             "stalls at the unigram plateau while Spectron trains (demos/README.md); at a small rate\n"
             "such as 3e-3 AdamW trains well too and may finish ahead.\n"
             "--json: name and every setting of the optimizer (its keys listed above: lr, wd, beta1,\n"
             "beta2, eps, clip, warmup, …, momentum, nesterov, ns_steps, shape_scale, adam_lr,\n"
             "power_iters); a switch adds state_reset, reset (what was reset), from (the optimizer\n"
             "before) and step.\n"
             "Examples:\n  optim\n  optim spectron lr=0.02 warmup=20\n  optim adamw lr=3e-4 wd=0.1 horizon=2000\n"
             "  optim lr=1e-3\n  help optim muon",
     .max_pos = 1, .pos = POS_WORD, .words = optim_names, .run = cmd_optim,
     .dyn_key = optim_dyn_key, .dyn_help = optim_dyn_help},

    // ---- training ----
    {.name = "train", .family = "training",
     .args = "steps=N|until=STEP [eval_every=N eval_batches=N diag_every=N save=PATH save_every=N batch= accum= seq=]",
     .summary = "take N optimizer steps on the loaded data (Ctrl-C stops between steps)",
     .help = "Builds the trainer on first use with the current `optim` settings and `set seed`.\n"
             "On a terminal one line shows step, loss, tokens/s and ETA; otherwise (and after `set\n"
             "progress lines`) a line every ~10% and at least once a minute. Ctrl-C stops after the\n"
             "step in progress; the model keeps every step taken.\n"
             "Every step is recorded in the current run (see `run`, `plot`) and, after `log FILE`,\n"
             "appended to that file. eval_every=N also measures the validation loss (as `eval`).\n"
             "Every diag_every-th step, and the last, the optimizer also measures ‖ΔW‖₂ and ‖W‖₂\n"
             "of each factorized W = A·Bᵀ, exactly (from the factors' r×r Grams, W never formed;\n"
             "a dense model's ‖ΔW‖₂ on those steps from its block matrices' norms, as `norms`);\n"
             "the run keeps, per step, the largest ‖ΔW‖₂/η and ρ over the matrices and the mean\n"
             "σ_A, σ_B (`plot dw_over_eta`, `plot rho`, `plot sigma_a`); `inspect` shows the last.\n"
             "σ and ρ come with every step under spectron and renorm (under other optimizers ρ is\n"
             "the step's lr). An ensemble's members record no diagnostics; what its run records\n"
             "(loss, val in `runs`, the log and `plot`) is the members' mean, and its tokens/s\n"
             "counts every member's tokens (`ensemble eval` gives the ensemble's own loss and the\n"
             "averaged models'). A step whose loss is above\n"
             "1.5× the mean of the 50 before it (once 3 are there) counts as a loss spike. A\n"
             "non-finite loss or gradient at step N stops training: the run is marked diverged at\n"
             "N, the update of step N−1 (the one that broke the model) is undone — parameters,\n"
             "optimizer state, step count and data position all go back to step N−2, and the run\n"
             "drops that step — and the command still succeeds (a script goes on). With the same\n"
             "settings the next step repeats the broken update exactly: lower lr (or switch\n"
             "optimizer) to try another way. One update back is all a rollback holds: a model\n"
             "already ruined before that stays so (`model load` an earlier checkpoint).\n"
             "until=STEP trains up to that step number instead of steps= more (a run resumed at\n"
             "step 2092 finishes its 6000-step horizon with until=6000).\n"
             "save=PATH saves the model as `model save PATH` does when the command ends (Ctrl-C\n"
             "and a divergence too), and with save_every=N also at every N-th step: a long run\n"
             "killed or closed loses at most N steps (the file is replaced whole, never half\n"
             "written). SIGTERM or SIGHUP (a scheduler's, a closed terminal), and SIGUSR1, SIGUSR2,\n"
             "SIGXCPU (schedulers' warnings ahead of a kill) stop it at the step's end; it saves there\n"
             "and lrsh then ends by that signal (a second one ends it at once, unsaved; SIGXCPU's\n"
             "repeats past a CPU-time soft limit are not a second one); SIGKILL\n"
             "cannot be caught. An eval_every= evaluation a stop cuts short is said (val_missed_step\n"
             "in --json): a resumed run starts after that step. For a run left alone,\n"
             "`nohup ./lrsh -c \"…; train steps=20000 save=run.st\n"
             "save_every=500\" > run.out &` also keeps it going when the terminal closes.\n"
             "diag_every, eval_every and save_every count step numbers (step 20, 30, … for 10). `runs`\n"
             "compares the runs. --json: steps, step, loss, lr (the last step's, as scheduled), grad_norm,\n"
             "tok_per_s, seconds (training's, without the evaluations and saves), eval_seconds (eval_every='s part), interrupted (and signal, e.g. SIGTERM, when one stopped it), diverged\n"
             "(true only when a non-finite loss or gradient stopped this run; then diverged_at, reason;\n"
             "`runs` also calls plateaus and blow-ups diverged), run (its name) and the run's totals\n"
             "over all its commands so far, as `runs` shows them: spikes, max_dw_over_eta; and val:[{step,\n"
             "val_loss}], saved:[…] (with save=: each save's `model save` JSON) (an ensemble: k,\n"
             "loss (the members' mean), lr, member_loss, member_grad_norm,\n"
             "method, coupling, values_exchanged, mixes (WASH shuffles or PAPA pulls in this run),\n"
             "values_exchanged_total, and in val\n"
             "member_mean, ensemble_loss, avg_factors_loss, avg_product_loss). An error after some\n"
             "steps (a save= that fails: a full disk) reports them first: --json's error line carries\n"
             "these fields under partial (steps, step, loss, …).\n"
             "Examples:\n  train steps=200\n  train steps=1000 batch=16 accum=4\n  train steps=500 eval_every=100\n"
             "  train steps=300 diag_every=1; plot dw_over_eta\n  train steps=5000 save=run.safetensors save_every=500",
     .run = cmd_train,
     .opts = (const OptSpec[]){
         {"steps", OPT_INT, NULL, NULL, 1, 1e9, "optimizer steps to take (this or until=)"},
         {"until", OPT_INT, NULL, NULL, 1, 1e9, "train up to this step number (a resumed run to its horizon)"},
         {"eval_every", OPT_INT, "0", NULL, 0, 1e9, "measure the validation loss every N steps and at the end (0: never)"},
         {"eval_batches", OPT_INT, "20", NULL, 1, 1e6, "validation batches per measurement (as `eval`'s batches=)"},
         {"diag_every", OPT_INT, "10", NULL, 0, 1e9, "measure ‖ΔW‖₂, ‖W‖₂ every N steps and at the last (0: never)"},
         {"save", OPT_PATH, NULL, NULL, 0, 0, "save the model to this file when the command ends (and every save_every steps)"},
         {"save_every", OPT_INT, "0", NULL, 0, 1e9, "with save=: also save every N steps (0: only at the end)"},
         BATCH_OPTS,
         {NULL, 0, NULL, NULL, 0, 0, NULL}}},
    {.name = "step", .family = "training", .args = "[batch= accum= seq=]",
     .summary = "take one optimizer step and show its statistics and spectral diagnostics",
     .help = "Prints the step's loss, learning rate, gradient norm before and after clipping, the\n"
             "clip scale and the optimizer's share of the step time; then, for a factorized model,\n"
             "one row per matrix W = A·Bᵀ: σ_A ≈ ‖A‖₂, σ_B ≈ ‖B‖₂ before the update — under\n"
             "spectron and renorm the optimizer's own estimates, the ones its ρ used (so are train's\n"
             "sigma_a, sigma_b and `plot sigma_a`: power_iters warm-started power-iteration steps,\n"
             "1 by default as in the paper: under the exact norms in the first steps, under\n"
             "spectron a few percent at lr 0.05 (~4 % seen), under renorm, whose Adam direction\n"
             "moves the factors faster, up to ~30 % there; 10–50 % at lr ≥ 0.2; the gap closes\n"
             "within ~20 steps; ρ is then\n"
             "larger than exact σ's would make it and ‖ΔW‖₂/η may pass 1 a little; power_iters=3\n"
             "more than halves the gap), under the others exact, from the factors' Grams\n"
             "(`spectrum NAME.A` run before the step shows the same) — the factor step ρ, ‖ΔW‖₂ of\n"
             "the update, ‖ΔW‖₂/η (η: the step's lr; Spectron keeps it ≤ 1, up to Newton–Schulz's\n"
             "slack, plus weight decay's 2·wd·‖W‖₂, which the bound does not cover) and ‖W‖₂ after\n"
             "it, these two exact, from the factors' Grams. A divergence is a result, as in `train`.\n"
             "\"–\" marks a value not computed.\n"
             "`inspect` shows the same rows sorted, worst first. --json: one object with the global\n"
             "fields (step, optim, loss, lr, grad_norm, grad_norm_clipped, clip_scale, tokens, tok_per_s,\n"
             "seconds, optim_seconds, optim_fraction, diverged) and \"matrices\":[{param, sigma_a, sigma_b, rho, dw_spectral, dw_over_eta, spectral,\n"
             "…}] (the names `norms` uses).\n"
             "Examples:\n  step\n  step batch=4\n  optim spectron; step; inspect",
     .run = cmd_step,
     .opts = (const OptSpec[]){BATCH_OPTS, {NULL, 0, NULL, NULL, 0, 0, NULL}}},
    {.name = "eval", .family = "training", .args = "[batches=N] [batch= seq=]",
     .summary = "validation loss and perplexity (the same batches every time, whatever the seed)",
     .help = "The loss is recorded in the current run at the current step (`plot loss` shows it;\n"
             "`runs` the latest). The batches are one fixed sample of the validation split,\n"
             "whatever `set seed` (two checkpoints, or runs of two seeds, are measured alike);\n"
             "`train eval_every=` averages the same 20 batches by default (eval_batches=), at\n"
             "`set batch` and `set seq` as `eval` does whatever the train command's batch= or\n"
             "seq=, so the two give one number for one step.\n"
             "Ctrl-C stops it after the batch in progress: the mean over the batches done is shown\n"
             "but not recorded, being another estimate. When the batches read more than twice\n"
             "the validation split's tokens, a note says so: their windows overlap, and more\n"
             "batches only repeat the same tokens. --json: val_loss, ppl (null when it\n"
             "overflows), step, batches (those averaged), tokens (those read, repeats counted),\n"
             "val_tokens (the split's), interrupted.\n"
             "Examples:\n  eval\n  eval batches=50",
     .run = cmd_eval,
     .opts = (const OptSpec[]){
         {"batches", OPT_INT, "20", NULL, 1, 1e6, "validation batches to average"},
         {"batch", OPT_INT, NULL, NULL, 1, 1 << 20, "sequences per batch (default: `set batch`)"},
         {"seq", OPT_INT, NULL, NULL, 1, 1 << 20, "tokens per sequence (default: `set seq`, else the model's seq)"},
         {NULL, 0, NULL, NULL, 0, 0, NULL}}},

    // ---- sampling ----
    {.name = "generate", .family = "sampling", .args = "[PROMPT] [n=128 temp=0.8 top_k=40 top_p=0.95 seed=N stop=TEXT]",
     .summary = "continue PROMPT with sampled tokens, printed as they come (Ctrl-C stops)",
     .help = "Encodes the prompt, feeds it in batched passes (512 tokens each) through the KV\n"
             "cache, then samples\n"
             "one token at a time until n tokens, Ctrl-C or the tokenizer's end-of-text token\n"
             "(models lrsh trains never see it — `data load` marks no document boundaries — so it\n"
             "comes only by chance: count on n, or on stop=). stop=TEXT ends generation where TEXT\n"
             "first comes in the\n"
             "generated text (not the prompt's), and TEXT is not shown: stop=\"\\n\\n\" gives one\n"
             "fortune of the default corpus (a blank line ends each), or one paragraph — in double\n"
             "quotes: unquoted, \\n is the letter n (as in sh), and in single quotes two characters.\n"
             "No BOS goes first (the training data has none); with no prompt the\n"
             "model starts after a blank line, unseen, as a new paragraph of its corpus would.\n"
             "temp=0 is greedy; top_k=0 and top_p=1 turn the cuts off. The same seed= gives the\n"
             "same text; without seed= each call uses the session seed plus the number of earlier\n"
             "calls (a script is still reproducible). When the text fills the context the window\n"
             "slides: its last half is kept and encoded afresh, and generation goes on; of a prompt\n"
             "longer than the context only what the window would keep is encoded (a note says so).\n"
             "Needs a model and a tokenizer whose vocabulary fits it (`model load` of a checkpoint\n"
             "brings both). With --json, no text streams to stdout: one object with text, tokens,\n"
             "tok_per_s (null for one token: its pass was the prompt's), prompt, prompt_tokens,\n"
             "prompt_encoded (of a prompt longer than the context, the tokens encoded), prefill_seconds,\n"
             "seed (a string from 16 digits on) and stopped (eos, n, stop or interrupt). Quote a prompt\n"
             "with \" or ' (one with an apostrophe in double quotes:\n"
             "generate \"It's\"); inside double quotes \\n, \\t, \\\" and \\\\ are escapes. Control\n"
             "characters other than tab and newline, a carriage return outside CRLF among them, show as\n"
             "U+FFFD (JSON keeps them). When n= runs out inside a character (byte fallback spells one\n"
             "the vocabulary lacks a byte a token), its first bytes are left out, with a note.\n"
             "Examples:\n  generate\n  generate \"Once upon a time\" n=200 temp=0.7\n  generate The n=20 temp=0\n"
             "  generate stop=\"\\n\\n\" n=300",
     .min_pos = 0, .max_pos = -1, .pos = POS_TEXT, .run = cmd_generate,
     .opts = (const OptSpec[]){
         {"n", OPT_INT, "128", NULL, 1, 1 << 24, "tokens to generate at most"},
         {"temp", OPT_FLOAT, "0.8", NULL, 0, 100, "temperature (0: greedy)"},
         {"top_k", OPT_INT, "40", NULL, 0, 1 << 24, "sample among the k most likely tokens (0: all)"},
         {"top_p", OPT_FLOAT, "0.95", NULL, 0, 1, "nucleus: the smallest set with this much probability (of the top k, renormalized, when top_k > 0)"},
         {"seed", OPT_INT, NULL, NULL, 0, SEED_MAX, "sampling seed (default: the session seed + calls so far)"},
         {"stop", OPT_STRING, NULL, NULL, 0, 0, "end where this text comes (not shown): stop=\"\\n\\n\" one fortune"},
         {NULL, 0, NULL, NULL, 0, 0, NULL}}},

    // ---- inspection ----
    {.name = "inspect", .family = "inspection", .args = "[sort=dw_over_eta|rho|sigma|name] [top=3]",
     .summary = "the last step's spectral diagnostics per matrix, worst first (the Spectron view)",
     .help = "Reads the optimizer's diagnostics of the last update: for each factorized W = A·Bᵀ,\n"
             "σ_A, σ_B, the factor step ρ, ‖ΔW‖₂/η and ‖W‖₂, sorted (by ‖ΔW‖₂/η unless sort=) with\n"
             "the top= worst marked with * (bold on a terminal, red past the bound). σ_A, σ_B and ρ\n"
             "are the factors' before the update (what sized its step), ‖W‖₂ after it: ‖W‖₂ may\n"
             "exceed σ_A·σ_B of its row. Spectron bounds ‖ΔW‖₂/η by 1 (up to Newton–Schulz's slack,\n"
             "singular values to ~1.2, and σ estimates under the norms: the verdict reads ≤ 1.3 as\n"
             "those) plus weight decay's share, 2·wd·‖W‖₂ (small unless ‖W‖ is huge); factorized\n"
             "AdamW does not. ‖ΔW‖₂ is measured on steps with diagnostics: every `step`, every\n"
             "diag_every-th step of `train` and its last; after a step without them the rows show\n"
             "σ and ρ only. η is the rate that update took (an `optim lr=` since changes lr, not the\n"
             "η the rows were measured against). Needs a factorized model and a step.\n"
             "--json: step, optim, lr, eta, sort, measured, worst (the worst matrix's name),\n"
             "max_dw_over_eta,\n"
             "matrices:[{param, rows, cols, rank, sigma_a, sigma_b, rho, dw_spectral, dw_over_eta,\n"
             "spectral, worst (this row is marked)}].\n"
             "Examples:\n  step; inspect\n  inspect sort=rho top=5",
     .run = cmd_inspect,
     .opts = (const OptSpec[]){
         {"sort", OPT_ENUM, "dw_over_eta", "dw_over_eta|rho|sigma|name", 0, 0, "the column to sort by, descending (sigma: σ_A+σ_B; name: model order)"},
         {"top", OPT_INT, "3", NULL, 0, 1 << 20, "how many of the worst rows to mark"},
         {NULL, 0, NULL, NULL, 0, 0, NULL}}},
    {.name = "spectrum", .family = "inspection", .args = "PARAM [k=10] [compare=STEP]",
     .summary = "the singular values of one matrix as a bar chart, with norms, stable and effective rank",
     .help = "Exact singular values of W. A factorized W = A·Bᵀ is never formed: QR of A and of B, then\n"
             "the SVD of the small r×r core R_A·R_Bᵀ. Shows the top k as bars (█) and the spectral norm\n"
             "σ₁, the Frobenius norm, the stable rank ‖W‖_F²/‖W‖₂², the effective rank (the exponential\n"
             "of the entropy of σᵢ/Σσⱼ) and the condition number σ₁/σₙ (∞ when rank-deficient). A\n"
             "factorized W at rank r below its size has r nonzero values, the rest exactly 0: its\n"
             "summaries are over those r, and its condition number is σ₁/σ_r (W's own: it can be up\n"
             "to the product of the factors' κ(A)·κ(B), which `spectrum NAME.A`, `NAME.B` show).\n"
             "PARAM: blocks.I.attn.{wq,wk,wv,wo}, blocks.I.mlp.{w1,w2,w3}, embed, head, or one factor\n"
             "NAME.A / NAME.B (Tab completes them). compare=STEP overlays (░) the spectrum kept at an\n"
             "earlier step: `train` keeps every block matrix W's at its start and end (not embed,\n"
             "head or a single factor), `step` a new model's at step 0, and every `spectrum`\n"
             "keeps the one it shows; a step with none kept is an error that names the nearest one\n"
             "kept (use it: compare=THAT) and lists the steps there are. The kept spectra\n"
             "belong to the model: `model new`/`load`/`factorize` start afresh. --json: param, rows, cols,\n"
             "rank (r for W = A·Bᵀ; 0 for a matrix stored whole: dense, embed, head or one factor),\n"
             "step, k, singular_values (all; a factorized W's r nonzero ones), spectral_norm,\n"
             "frobenius_norm, stable_rank, effective_rank, condition_number (null: ∞),\n"
             "numerical_rank (values above σ₁·max(rows, cols)·ε of float32, numpy's matrix_rank\n"
             "tolerance), and compare:{step, singular_values, …}.\n"
             "Examples:\n  spectrum blocks.0.attn.wq\n  spectrum blocks.1.mlp.w2 k=32\n"
             "  train steps=50; spectrum blocks.0.attn.wq compare=0\n  spectrum blocks.0.attn.wq.A",
     .min_pos = 1, .max_pos = 1, .pos = POS_PARAM, .run = cmd_spectrum,
     .opts = (const OptSpec[]){
         {"k", OPT_INT, "10", NULL, 1, 1 << 20, "how many of the largest values to draw"},
         {"compare", OPT_INT, NULL, NULL, 0, 1e9, "overlay the spectrum kept at this step"},
         {NULL, 0, NULL, NULL, 0, 0, NULL}}},
    {.name = "norms", .family = "inspection", .args = "[io=on|off]",
     .summary = "per matrix: ‖W‖₂, ‖W‖_F, stable rank, and the last update's ‖ΔW‖₂, ‖ΔW‖₂/η, ‖ΔW‖₂/‖W‖₂",
     .help = "One row per block matrix (io=on adds embed and head). ‖·‖₂ of a factorized W = A·Bᵀ\n"
             "and of its update is exact, from the factors' r×r Grams (W never formed); of a dense\n"
             "matrix (embed, head, rank=0) and its update exact too, from its Gram (min(rows, cols)\n"
             "square), as `spectrum`'s σ₁; ‖A·Bᵀ‖_F² = tr((AᵀA)(BᵀB)). Repeated calls agree exactly.\n"
             "After `step` or `train`, ΔW is the last update (its parameters before it are the\n"
             "trainer's rollback snapshot, kept anyway: no extra cost) and η the rate it moved at:\n"
             "that step's lr (adam_lr's for embed and head, and under renorm for dense matrices,\n"
             "which AdamW moves);\n"
             "\"–\" until there is one (after `optim` switched optimizers, still the last update,\n"
             "made by the one before; `inspect` then waits for the new one's). Spectron keeps\n"
             "‖ΔW‖₂/η ≤ 1 for factorized matrices, plus weight decay's 2·wd·‖W‖₂. ‖ΔW‖₂/‖W‖₂ divides\n"
             "by the row's ‖W‖₂, W after the update (0.29 where W before would give 0.38, seen on\n"
             "a fast early step). --json: one object\n"
             "per matrix with param, rows,\n"
             "cols, rank, layer, step, spectral, frobenius, stable_rank, dw_spectral, dw_over_eta,\n"
             "dw_over_w (null when not measured), eta (the rate dw_over_eta divides by; null before an\n"
             "update), row_index (from 0) and row_count.\n"
             "Examples:\n  norms\n  step; norms\n  norms io=on",
     .run = cmd_norms,
     .opts = (const OptSpec[]){
         {"io", OPT_BOOL, "off", NULL, 0, 0, "also rows for embed and head"},
         {NULL, 0, NULL, NULL, 0, 0, NULL}}},
    {.name = "watch", .family = "inspection", .args = "[FIELD[:PARAM]…|off] [every=N]",
     .summary = "record chosen diagnostics every N training steps: live line, `plot FIELD`, `log`",
     .help = "Each word is FIELD (aggregated over the block matrices) or FIELD:PARAM (one matrix):\n"
             "  spectral           ‖W‖₂ (max)\n"
             "  frobenius          ‖W‖_F (max)\n"
             "  stable_rank        ‖W‖_F²/‖W‖₂² (mean)\n"
             "  dw_spectral        ‖ΔW‖₂ of the step (max)\n"
             "  dw_over_eta        ‖ΔW‖₂/η (max; or dw_over_lr)\n"
             "  dw_over_w          ‖ΔW‖₂/‖W‖₂, W after the update (max)\n"
             "  sigma_a, sigma_b   ‖A‖₂, ‖B‖₂ (mean)\n"
             "  rho                the factor step ρ (max)\n"
             "FIELD:max or FIELD:mean picks the other aggregate. σ and ρ are the optimizer's own\n"
             "measurements of factorized matrices (every step under spectron and renorm). Every\n"
             "every-th step (by step number) of `train` and `step` measures them: the live line shows\n"
             "them after [step N], the step that measured them, until the next one (on a narrow\n"
             "terminal the tokens/s, then the ETA, give way to them, and values that still do not fit\n"
             "are left out at the end, shown as …); the run keeps\n"
             "them for `plot FIELD` (e.g. plot stable_rank:blocks.1.mlp.w2), and\n"
             "that step's `log` line gets \"watch\":{FIELD: value, …}. A new list replaces the old;\n"
             "`watch every=N` alone changes the interval; `watch off` stops; `watch` lists. The norms\n"
             "are `norms`' (exact from the factors' Grams, no W formed): at every=10 they add a few\n"
             "percent to the step time of the presets. --json: fields, every.\n"
             "Examples:\n  watch spectral dw_over_eta\n  watch stable_rank:blocks.1.mlp.w2 spectral:blocks.0.attn.wq every=5\n"
             "  watch dw_over_w rho every=1; train steps=50; plot dw_over_w\n  watch off",
     .max_pos = -1, .pos = POS_WATCH, .run = cmd_watch,
     .opts = (const OptSpec[]){
         {"every", OPT_INT, NULL, NULL, 1, 1e9, "record at multiples of N (at first 10; fields alone keep it)"},
         {NULL, 0, NULL, NULL, 0, 0, NULL}}},
    {.name = "align", .family = "inspection",
     .args = "[against=microbatch|blockdrop|width|delayed|members|forward] [p= draws= batches= guess= seed= batch= seq=]",
     .summary = "cosine between the full gradient and another (per matrix, overall, per-layer strip)",
     .help = "g₁ is the gradient of the current model on batches= batches of the training split; g₂:\n"
             "  microbatch  the gradient of other batches (gradient noise; near 0 for an\n"
             "              untrained model on random tokens)\n"
             "  blockdrop   subnetworks that skip each block with probability p= (residual\n"
             "              kept), averaged over draws= (the subnetwork data-parallel\n"
             "              paper); p=0 gives 1\n"
             "  width       subnetworks keeping a 1−p fraction of heads and MLP units\n"
             "              (draws=)\n"
             "  delayed     the gradient of the previous step, before its clipping (needs a\n"
             "              `step` or `train`)\n"
             "  members     ensemble member 0 against each other member, one batch, plus\n"
             "              the k×k pairwise table (needs `ensemble new K`)\n"
             "  forward     a forward-gradient estimate: g₁ projected on a guess direction\n"
             "              per matrix, guess=random (draws=) or guess=local (local\n"
             "              early-exit losses)\n"
             "Prints a row per parameter group (a matrix W = its A and B together), the overall\n"
             "cosine, the norm ratio ‖g₂‖/‖g₁‖, and one cell per block shaded by its cosine\n"
             "(█ ≥ 0.75, ▓ ≥ 0.5, ▒ ≥ 0.25, ░ > 0, · ≤ 0, ? none: a zero gradient, e.g. a block every\n"
             "draw skipped). The overall cosine is that of the whole gradients as one vector (so a\n"
             "matrix weighs by its gradient's norm; not the mean of the rows), a block's cell the\n"
             "same over that block's tensors, norm gains included. The model's gradient buffer is left as\n"
             "it was. Batches: batch= (`set batch`) × seq= (`set seq`, else the model's) tokens,\n"
             "drawn with seed= (default: the session seed + the step). --json: against (the option's\n"
             "value), setup (it with its settings: \"blockdrop p=0.5 draws=2\"), overall, norm_ratio,\n"
             "norm1, norm2, per_param:[{param, layer, cosine, norm1, norm2}], layers:[{layer,\n"
             "cosine}] (members: pairwise too), seed (the batches' seed: seed= draws them again).\n"
             "Examples:\n  align\n  align against=blockdrop p=0.5 draws=8\n  align against=width p=0.25\n"
             "  step; align against=delayed\n  align against=forward guess=local\n"
             "  ensemble new 3; align against=members\n  align against=microbatch batches=4 batch=16",
     .run = cmd_align,
     .opts = (const OptSpec[]){
         {"against", OPT_ENUM, "microbatch", "microbatch|blockdrop|width|delayed|members|forward", 0, 0, "the second gradient"},
         {"p", OPT_FLOAT, "0.5", NULL, 0, 1,
          "blockdrop: P(skip a block); width: fraction of heads/units dropped, at most 0.999"},
         {"draws", OPT_INT, "4", NULL, 1, 1000, "subnetworks or random guesses averaged (not guess=local)"},
         {"batches", OPT_INT, "1", NULL, 1, 10000, "batches averaged into each gradient"},
         {"guess", OPT_ENUM, "random", "random|local", 0, 0, "forward: the guess direction"},
         {"seed", OPT_INT, NULL, NULL, 0, SEED_MAX, "batches and draws (default: session seed + step)"},
         {"batch", OPT_INT, NULL, NULL, 1, 1 << 16, "sequences per batch (default: `set batch`)"},
         {"seq", OPT_INT, NULL, NULL, 1, 1 << 20, "tokens per sequence (default: `set seq`, else the model's seq)"},
         {NULL, 0, NULL, NULL, 0, 0, NULL}}},

    // ---- ensembles ----
    {.name = "ensemble", .sub = "new", .family = "ensembles", .args = "K [seeds=S0,S1,…] [same_init=on|off]",
     .summary = "K members of the current model config, trained together by `train` (WASH, PAPA)",
     .help = "K is 2 to 16. Each member has its own Model, optimizer state (of the optimizer set\n"
             "now), seed and data order. Without seeds=, member 0 is the current model going on: its weights and its\n"
             "trainer's optimizer state, step and data stream (a model with no trainer yet: its\n"
             "step and data stream, fresh moments); the others start at that step with fresh\n"
             "moments; member i's initialization seed is the model's seed + i and its data\n"
             "seed the session seed + i. seeds= gives every member its own initialization and data\n"
             "seed; no member then continues the model, and its training not saved can no longer be\n"
             "saved (`model save` saves the ensemble while one exists): at the prompt the first try\n"
             "is refused, saying so. same_init=on starts every member from member 0's weights. Memory grows by K\n"
             "models with their gradients and optimizer state (`model info` shows it). Until\n"
             "`ensemble average` or `ensemble use`, `train` and `eval` work on the members; generate\n"
             "and inspect are refused (the session's own model is not the members'), spectrum,\n"
             "norms and align read the session's own model and say so. A second\n"
             "`ensemble new` replaces the members (the note says how many steps go with them;\n"
             "`model save` first keeps them); `model factorize` is refused until `ensemble average`\n"
             "or `ensemble use` makes one model.\n"
             "--json: k, seeds (initialization; null for member 0 when it is the current model, and\n"
             "for members 1.. under same_init=on: their weights are member 0's),\n"
             "data_seeds (the batch samplers'; null for member 0 when it continues the model's data\n"
             "stream past step 0), same_init, optim, bytes.\n"
             "Examples:\n  ensemble new 4\n  ensemble new 3 seeds=1,2,3\n  ensemble new 4 same_init=on",
     .min_pos = 1, .max_pos = 1, .pos = POS_TEXT, .run = cmd_ensemble_new,
     .opts = (const OptSpec[]){
         {"seeds", OPT_STRING, NULL, NULL, 0, 0, "K comma-separated seeds (initialization and data order)"},
         {"same_init", OPT_BOOL, "off", NULL, 0, 0, "every member starts from member 0's weights"},
         {NULL, 0, NULL, NULL, 0, 0, NULL}}},
    {.name = "ensemble", .sub = "wash", .family = "ensembles",
     .args = "p=P [every=1] [schedule=linear|flat] [opt_state=on|off]",
     .summary = "WASH: after each step shuffle a few coordinates across the members",
     .help = "WASH (Fournier et al. 2024): after every every-th step, each parameter coordinate is\n"
             "picked with probability p_l and its K values are randomly permuted across the members.\n"
             "schedule=linear: p_l falls with depth from p at the embedding (the first layer) through\n"
             "the blocks to 0 at the final norm and head (the last); flat: p everywhere.\n"
             "opt_state=on moves the optimizer moments (optim.m/optim.v) with their values. `train`\n"
             "reports the values exchanged, per shuffle: what a distributed run would communicate — the\n"
             "values that move, not those a permutation leaves in place: about K−1 of a picked\n"
             "coordinate's K values (1 of 2 at K=2), and each moment moved with one.\n"
             "It replaces PAPA when that was on (one coupling at a time); p=0 shuffles nothing and\n"
             "turns coupling off, as `ensemble off` does. every= counts the ensemble's own steps,\n"
             "from `ensemble new` (the step numbers `train` shows when it began at step 0, as with\n"
             "seeds=; from a model trained S steps, a shuffle follows shown step S + N, S + 2N, …).\n"
             "--json: method, p, schedule, opt_state, every, expected_values_per_shuffle (counted as\n"
             "`train` counts them: a value and each moment moved with it).\n"
             "Examples:\n  ensemble wash p=0.05\n  ensemble wash p=0.1 every=2 schedule=flat opt_state=off",
     .run = cmd_ensemble_wash,
     .opts = (const OptSpec[]){
         {"p", OPT_FLOAT, NULL, NULL, 0, 1, "shuffle probability at the first layer (required)"},
         {"every", OPT_INT, "1", NULL, 1, 1e9, "shuffle after every N-th step"},
         {"schedule", OPT_ENUM, "linear", "linear|flat", 0, 0, "p over depth: falling to 0 at the head, or flat"},
         {"opt_state", OPT_BOOL, "on", NULL, 0, 0, "permute the optimizer moments too"},
         {NULL, 0, NULL, NULL, 0, 0, NULL}}},
    {.name = "ensemble", .sub = "papa", .family = "ensembles", .args = "[alpha=0.1] [every=1]",
     .summary = "PAPA: pull every member toward the members' mean (the costlier baseline)",
     .help = "After every every-th step, θ_i ← (1−α)·θ_i + α·mean(θ). Each pull communicates every\n"
             "member's whole parameter vector (K·N values), which `train` reports per pull. alpha=1\n"
             "makes the members equal; alpha=0 moves nothing and turns coupling off, as `ensemble off`\n"
             "does. It replaces WASH when that was on (one coupling at a time). every= counts from\n"
             "`ensemble new`, as `ensemble wash`'s does.\n"
             "--json: method, alpha, every.\n"
             "Examples:\n  ensemble papa alpha=0.1\n  ensemble papa alpha=0.5 every=10",
     .run = cmd_ensemble_papa,
     .opts = (const OptSpec[]){
         {"alpha", OPT_FLOAT, "0.1", NULL, 0, 1, "how far toward the mean each pull goes"},
         {"every", OPT_INT, "1", NULL, 1, 1e9, "pull after every N-th step"},
         {NULL, 0, NULL, NULL, 0, 0, NULL}}},
    {.name = "ensemble", .sub = "off", .family = "ensembles", .args = "",
     .summary = "members train independently (no WASH, no PAPA)",
     .help = "--json: method, every.\n"
             "Example:\n  ensemble off", .run = cmd_ensemble_off},
    {.name = "ensemble", .sub = "eval", .family = "ensembles", .args = "[batches=N] [batch= seq=]",
     .summary = "val loss of each member, the ensemble, and the averaged model (factors and product)",
     .help = "On the same validation batches as `eval`: each member's loss; the ensemble's (the\n"
             "members' probabilities averaged per token, then the NLL); the weight-averaged model with\n"
             "mode=factors (mean A, mean B) and mode=product (mean A_i·B_iᵀ, truncated back to rank r by\n"
             "SVD, with its truncation error ‖W̄−A′B′ᵀ‖_F/‖W̄‖_F). Embedding, head and norms are averaged\n"
             "directly in both. A·Bᵀ = (AQ)(BQ)ᵀ for any orthogonal Q, so the factor average is not the\n"
             "product average. --json: members, member_mean, ensemble_loss, avg_factors_loss,\n"
             "avg_product_loss, truncation_error (mean) and truncation_error_worst, step, method,\n"
             "coupling:{method, p, schedule, opt_state | alpha, every}, values_exchanged_total, run,\n"
             "batches. `eval` shows the same while an ensemble exists. A progress line shows the\n"
             "three passes (members, each average); Ctrl-C stops it with nothing measured.\n"
             "Examples:\n  ensemble eval\n  ensemble eval batches=50",
     .run = cmd_ensemble_eval,
     .opts = (const OptSpec[]){
         {"batches", OPT_INT, "20", NULL, 1, 1e6, "validation batches to average"},
         {"batch", OPT_INT, NULL, NULL, 1, 1 << 20, "sequences per batch (default: `set batch`)"},
         {"seq", OPT_INT, NULL, NULL, 1, 1 << 20, "tokens per sequence (default: `set seq`, else the model's seq)"},
         {NULL, 0, NULL, NULL, 0, 0, NULL}}},
    {.name = "ensemble", .sub = "average", .family = "ensembles", .args = "[mode=product|factors]",
     .summary = "replace the ensemble by its weight-averaged model",
     .help = "mode=product averages each W = A·Bᵀ and truncates back to rank r (reporting the error);\n"
             "mode=factors averages A and B, which is not averaging the products: A·Bᵀ = (AQ)(BQ)ᵀ\n"
             "for any orthogonal Q, so members whose factors drifted apart average to a different W\n"
             "(`ensemble eval` shows both). The averaged model continues at the members' step with\n"
             "fresh optimizer state.\n"
             "--json: k, mode, step, truncation_error, truncation_error_worst (mode=product).\n"
             "Examples:\n  ensemble average\n  ensemble average mode=factors",
     .run = cmd_ensemble_average,
     .opts = (const OptSpec[]){
         {"mode", OPT_ENUM, "product", "product|factors", 0, 0, "average the products W or the factors A, B"},
         {NULL, 0, NULL, NULL, 0, 0, NULL}}},
    {.name = "ensemble", .sub = "use", .family = "ensembles", .args = "I",
     .summary = "continue with member I (and its optimizer state); the others are freed",
     .help = "The member is unsaved only when the ensemble had training not saved: after `model\n"
             "save`, it is in that file as member I (`model load FILE; ensemble use I` brings it back).\n"
             "--json: member, step.\n"
             "Example:\n  ensemble use 0", .min_pos = 1, .max_pos = 1, .pos = POS_TEXT, .run = cmd_ensemble_use},

    // ---- output ----
    {.name = "plot", .family = "output",
     .args = "[loss|val|lr|gnorm|clip|tok_per_s|seconds|dw_over_eta|rho|sigma_a|sigma_b] [from=FILE] [png=FILE] "
             "[svg=FILE] [runs=A,B] [steps=A..B] [smooth=N] [ymin= ymax=] [scale=auto|linear|log] "
             "[width=72 height=16]",
     .summary = "chart a training metric by step in the terminal (braille), the runs overlaid",
     .help = "Draws the field over the steps of every run (see `run`; of more than 26, the last 26,\n"
             "the current one among them, with a note: runs= draws others, runs=* every one) with\n"
             "Unicode braille characters (2×4 dots per cell): y from its min to its max, x the step\n"
             "range, a legend; with several runs each line ends at its letter (and has its own color\n"
             "on a terminal), a run's letter and color by its place among the runs drawn (the third\n"
             "is c even where the second has no points; runs= and the 26-run window count afresh). `plot dw_over_eta` draws Spectron's bound, 1, as a\n"
             "dotted line when the chart reaches it.\n"
             "`plot loss` adds the validation losses from `eval` / `train eval_every=`\n"
             "as * marks in the run's color (with several runs, the run's letter in capitals).\n"
             "from=FILE reads a file written by `log` instead of this session's runs\n"
             "(a run name that comes back from an earlier step — the same experiment appended\n"
             "again — is another run: NAME#2, NAME#3, …); runs=A,B draws only those (a run of\n"
             "another model far along the steps squeezes the others to one side).\n"
             "png= / svg= also hand the same data to gnuplot (when installed) for an image file\n"
             "(a file already there is written over only when it is a PNG / an SVG).\n"
             "The spectral fields come from the steps that measured them (see `help train`,\n"
             "diag_every=): dw_over_eta and rho are the largest over the factorized matrices (a\n"
             "dense model's dw_over_eta over its block matrices),\n"
             "sigma_a and sigma_b the mean ‖A‖₂, ‖B‖₂. Any series `watch` recorded plots by its name\n"
             "(`plot spectral`, `plot stable_rank:blocks.1.mlp.w2`), from the session or a log file.\n"
             "The JSON names of the fields are taken too: grad_norm, clip_scale, val_loss, and\n"
             "tokps, time for tok_per_s, seconds. table=on prints the values as text instead of the\n"
             "braille chart — a row per step, height= of them spread over the range and every\n"
             "validation step, a column per series — for a screen reader, or to paste into a report.\n"
             "scale=auto (the default) draws y on a log scale when every value is positive and they\n"
             "span a factor of 100 or more (AdamW's ‖ΔW‖₂/η in the thousands beside Spectron's\n"
             "below 1), and says so in the title; scale=log or scale=linear chooses (a log scale\n"
             "leaves out values ≤ 0, with a note). The images use the same scale. --json: field,\n"
             "scale, series:[{name, points, first_step, last_step, last, steps:[…], values:[…]}]: the\n"
             "points drawn (a value that is not finite is null and breaks the line), smooth.\n"
             "steps=A..B draws those steps only (steps=1000.. the end of a long run); smooth=N draws\n"
             "each line as the mean of its last N points, the title says so (`plot loss`'s validation\n"
             "marks stay as measured; `plot val`'s lines are smoothed); ymin= and ymax= fix the y\n"
             "axis, values past them drawn on its edge with a\n"
             "note under the chart (one AdamW spike no longer flattens eight Spectron curves; the\n"
             "images leave such values out).\n"
             "Examples:\n  plot\n  plot lr\n  plot gnorm width=100 height=20\n  plot dw_over_eta\n"
             "  plot loss scale=log\n  run a; train steps=5; run b; train steps=5; plot loss runs=b\n"
             "  plot loss smooth=20 steps=100..\n  plot dw_over_eta ymax=2\n"
             "  plot loss png=loss.png\n  plot loss from=run1.jsonl svg=run1.svg",
     .max_pos = 1, .pos = POS_WORD, .words = plot_fields, .run = cmd_plot,
     .opts = (const OptSpec[]){
         {"from", OPT_PATH, NULL, NULL, 0, 0, "a `log` file (JSON lines) to plot instead of the session's runs"},
         {"png", OPT_PATH, NULL, NULL, 0, 0, "also write a PNG image with gnuplot"},
         {"svg", OPT_PATH, NULL, NULL, 0, 0, "also write an SVG image with gnuplot"},
         {"scale", OPT_ENUM, "auto", "auto|linear|log", 0, 0, "the y axis: log when values span 100× (auto), or as chosen"},
         {"runs", OPT_STRING, NULL, NULL, 0, 0, "only these runs (names, or patterns such as *-lr0.05 where no run has that name; comma-separated, so none inside [...]; Tab completes the names)"},
         {"steps", OPT_STRING, NULL, NULL, 0, 0, "only the steps A..B (an end left out: 100.., ..500)"},
         {"smooth", OPT_INT, "1", NULL, 1, 100000, "each line the mean of its last N points (loss's validation marks as measured)"},
         {"ymin", OPT_FLOAT, NULL, NULL, 0, 0, "the y axis from this value (values below drawn on its edge)"},
         {"ymax", OPT_FLOAT, NULL, NULL, 0, 0, "the y axis up to this value (a spike above drawn on its edge)"},
         {"width", OPT_INT, NULL, NULL, 8, 1000, "chart width in cells (default: 72, less on a narrower terminal; 62 in a pipe)"},
         {"height", OPT_INT, NULL, NULL, 3, 500, "chart height in terminal cells (default: 16, less on a shorter terminal)"},
         {"table", OPT_BOOL, "off", NULL, 0, 0,
          "the values as a table of text instead of the chart: height= steps spread over the range, and every "
          "validation step (for a screen reader, or a report)"},
         {NULL, 0, NULL, NULL, 0, 0, NULL}}},
    {.name = "log", .family = "output", .args = "[FILE|off]",
     .summary = "append every training step to FILE as a JSON line (`log off` stops)",
     .help = "Each line: {\"step\", \"loss\", \"lr\", \"grad_norm\", \"clip_scale\", \"tok_per_s\",\n"
             "\"seconds\" (this step's), \"run\", \"run_id\" (the run's id, as a checkpoint keeps it),\n"
             "\"session\" (the writing lrsh's random id)}, plus on a factorized model \"rho\" (Spectron's and\n"
             "renorm's step size; the step's lr under the others) and \"dw_over_eta\", \"sigma_a\",\n"
             "\"sigma_b\" on steps that measured them (over the matrices: rho and dw_over_eta the\n"
             "max, sigma_a and sigma_b the mean, as `watch` takes them), and \"watch\":{FIELD: value} on the steps `watch`\n"
             "recorded; a run's first line after each `log FILE` adds what trained it (its first step):\n"
             "\"optim\", \"model\" (as `model new` prints it), \"params\", \"batch\", \"seq\", \"accum\",\n"
             "and what a rerun needs: \"init_seed\", \"session_seed\", \"data_rng\", \"data\",\n"
             "\"optim_settings\" (see `help runs`) (again when a rollback undid that step); a validation loss adds {\"step\",\n"
             "\"val_loss\", \"run\", \"run_id\", \"session\"}; a divergence adds {\"step\": N,\n"
             "\"diverged\": true, \"rolled_back_to\": M, \"run\", \"run_id\", \"session\"}: the lines of steps after M before it were\n"
             "undone (the model went back to step M), and the steps after it are taken again. An\n"
             "ensemble's lines hold the members' mean loss, gradient norm and clip scale. The file is appended to and\n"
             "flushed after every line, so `tail -f` follows it and a crash keeps it.\n"
             "`plot FIELD from=FILE` draws it later: each run by its run_id (a run resumed in\n"
             "another session goes on; one renamed by `run NAME` keeps its line), each lrsh\n"
             "appending at once apart, and steps taken again from an earlier step (the name run\n"
             "again, a job killed outright and resumed from its last save, a second branch from one\n"
             "checkpoint) as NAME#2.\n"
             "With no argument: where logging goes. --json: path (null: off).\n"
             "Examples:\n  log run1.jsonl\n  log off",
     .max_pos = 1, .pos = POS_PATH, .run = cmd_log},
    {.name = "run", .family = "output", .args = "[NAME]",
     .summary = "start a new named run: the series the next steps go to (no NAME: list runs)",
     .help = "The session keeps every run's per-step history (loss, lr, gradient norm, clip scale,\n"
             "tokens/s) and validation losses; `plot` overlays the runs. Without `run`, training\n"
             "starts a run named after the optimizer, and `model new` / `model load` start the\n"
             "next one: after `model load` the run the file's model was training in goes on (the\n"
             "file keeps its name: in this session, the same run when it ended at the file's step;\n"
             "a file saved before any step, or by an older lrsh, gives the file's stem), after\n"
             "`ensemble use I` member-I, after `ensemble average` average-MODE. A name already\n"
             "taken gets -2, -3, …; a run that has taken no step yet is renamed instead (an `eval`\n"
             "of a new model before `run NAME` is that run's step-0 point);\n"
             "a name has no commas (`plot runs=A,B` lists names).\n"
             "Examples:\n  run baseline; train steps=200\n  run lr-1e-3; optim lr=1e-3; train steps=200; plot",
     .max_pos = 1, .pos = POS_TEXT, .run = cmd_run},
    {.name = "runs", .family = "output", .args = "[from=FILE]",
     .summary = "compare the runs: optimizer, lr, final and validation loss, spikes, divergence, max ‖ΔW‖₂/η",
     .help = "One row per run: the optimizer and lr it trained with, its model's rank (of its first\n"
             "step; the column is there when the runs' ranks differ), its steps (first..last: a run\n"
             "that went on from another's model starts past 1), its last training\n"
             "loss, its last validation loss (`eval` or `train eval_every=`; \"–\" when none), the\n"
             "number of loss spikes (steps whose loss exceeds 1.5× the mean of the 50 before),\n"
             "whether it diverged — \"at N\": a non-finite loss or gradient stopped it at step N (\"at\n"
             "N, on\": it trained past N since, after the rollback);\n"
             "\"plateau\": after 100 steps or more its validation loss at its last step is no better\n"
             "than the unigram entropy of the validation split (the one its last val was on), the\n"
             "loss of a model that knows only\n"
             "token frequencies (where the Spectron paper's diverged AdamW control ends) and its\n"
             "training loss has stopped falling (\"no, slow\": it is above that loss, but the mean of\n"
             "its last quarter of steps is 1% or more under the quarter's before); a val from\n"
             "before the last step judges nothing (a note says so; `eval` measures it); \"blew up\":\n"
             "its last training loss is above 1.5 ln V, far worse than a uniform guess (\"at N, blew\n"
             "up\": it also diverged at N, the last loss kept being that high) — and the\n"
             "largest ‖ΔW‖₂/η measured (see `help train`, diag_every=). --json: one object per run\n"
             "with run, optim, lr (the peak lr, `optim lr=`, set for its first step; last_lr: the one\n"
             "set for its last — not the schedule's value there, which `plot lr` shows), steps,\n"
             "first_step, last_step, batch, seq, accum (its first step's), loss, val_loss, val_step,\n"
             "spikes, diverged, plateau, slow, blew_up, diverged_at, recovered, max_dw_over_eta,\n"
             "unigram_loss, model (the config its first step trained, as `model new` prints it; a run\n"
             "of evaluations only, the model they measured), params, and what a rerun needs (as the\n"
             "log's first line of the run): init_seed (`model new seed=`), session_seed (`set seed`),\n"
             "data_rng (the batch sampler's state before its first step, hex), data (the tokens'\n"
             "identity: corpus and tokenizer, hex), train_tokens (the split `data load val=` made),\n"
             "optim_settings (\"adamw lr=0.003 wd=0.1 …\"), checkpoint (the file the model last came\n"
             "from or went to, or null), ensemble_k (an ensemble's: init_seed is then member 0's),\n"
             "row_index (from 0) and row_count (no runs yet: one object with an empty runs\n"
             "list). On a terminal a long name\n"
             "is cut in its middle to fit (a sweep's names differ at their ends); in a pipe or a\n"
             "file it is whole.\n"
             "from=FILE compares the runs of a `log` file instead (an earlier session's sweep; the\n"
             "plateau verdict needs this session's data loaded, the one they trained on).\n"
             "Examples:\n  runs\n  run a; train steps=100; run b; optim spectron; train steps=100; runs\n"
             "  runs from=run1.jsonl",
     .run = cmd_runs,
     .opts = (const OptSpec[]){
         {"from", OPT_PATH, NULL, NULL, 0, 0, "a `log` file (JSON lines) whose runs to compare"},
         {NULL, 0, NULL, NULL, 0, 0, NULL}}},

    // ---- measurement ----
    {.name = "bench", .sub = "train", .family = "measurement",
     .args = "[shape=tiny|small|base] [model=dense|factorized|both] [optim=NAME] [steps=N] [rounds=N] [batch=N]"
             " [profile=on|off]",
     .summary = "training throughput, MFU and the optimizer's share of the step time",
     .help = "Measures the sgemm peak once, then trains each model on random tokens with optim=\n"
             "at its default settings (no diagnostics): rounds of steps= steps, the dense and the\n"
             "factorized model in alternation, each reported by its median round (a shared\n"
             "machine's busy moments then hit neither model alone). The optim% column (JSON\n"
             "optim_fraction) is the mean share of the step's wall time spent in the optimizer\n"
             "update; RSS is the resident memory the model's build and first step added (JSON\n"
             "model_rss; \"–\" and 0 when the build reused memory an earlier bench freed; peak_rss is\n"
             "the whole process's high-water mark). Independent of the session's model and data.\n"
             "profile=on then takes one more step per model with every kernel call timed to its\n"
             "end, and prints the costliest (phase, kernel) rows: calls, milliseconds, share.\n"
             "On a GPU each call then waits for the device, so the total exceeds a normal step,\n"
             "but many cheap calls show up as what they cost in launches.\n"
             "--json: one object per model: shape, model, optim, batch, seq, steps, threads,\n"
             "tok_per_s, gflops, peak_gflops, mfu, optim_fraction, kernel, peak_rss, model_rss,\n"
             "row_index (from 0) and row_count (profile=on's tables are rows too).\n"
             "Examples:\n  bench train\n  bench train optim=spectron model=factorized\n"
             "  bench train shape=base model=factorized steps=10\n  bench train optim=spectron profile=on",
     .run = cmd_bench_train,
     .opts = (const OptSpec[]){
         {"shape", OPT_ENUM, "small", "tiny|small|base", 0, 0, "model preset"},
         {"model", OPT_ENUM, "both", "dense|factorized|both", 0, 0, "which variants to run"},
         {"optim", OPT_ENUM, "adamw", "sgd|adamw|muon|spectron|renorm|ortho", 0, 0, "the optimizer to time"},
         {"steps", OPT_INT, "5", NULL, 1, 100000, "timed steps per round (after one warm-up step)"},
         {"rounds", OPT_INT, "3", NULL, 1, 64, "rounds, the models in alternation; each reports its median"},
         {"batch", OPT_INT, NULL, NULL, 1, 1 << 20, "sequences per step (default: `set batch`)"},
         {"profile", OPT_BOOL, "off", NULL, 0, 0,
          "then one more step per model with every kernel call timed: where the time goes"},
         {NULL, 0, NULL, NULL, 0, 0, NULL}}},
    {.name = "bench", .sub = "generate", .family = "measurement",
     .args = "[shape=tiny|small|base|stories15m] [model=dense|factorized|both] [n=N] [rounds=N] [profile=on|off]",
     .summary = "decode tokens/s (batch 1, KV cache) of the dense and factorized model",
     .help = "Builds each model with random weights, then in each round prefills a 16-token prompt\n"
             "and decodes n tokens one at a time (greedy): a warm-up round, then rounds= rounds with\n"
             "the models in alternation, each reported by its median round. Factorized: rank dim/4.\n"
             "stories15m is llama2.c's 15M shape (dim 288, 6 layers, vocab 32000); the script\n"
             "bench/llama2c/compare.sh times llama2.c itself next to it. RSS is the resident\n"
             "memory the model (with its gradient buffer, which every model holds: about twice\n"
             "the weights), its KV cache and its packed factors added (JSON model_rss; \"–\"\n"
             "and 0 when they reused memory an earlier bench freed; peak_rss is the process's\n"
             "high-water mark). Independent of the session's model.\n"
             "profile=on then runs one more round per model with every kernel call timed to its\n"
             "end, and prints the costliest (phase, kernel) rows, prefill and decode apart.\n"
             "On the GPU a note says whether the tokens were replayed from a recorded CUDA graph\n"
             "(JSON decode: graph, direct, or direct: recording failed) and with which of `set fused`\n"
             "and `set pdl`; run it again with a setting changed to compare.\n"
             "--json: one object per model: shape, model, rank, prompt, n, threads, tok_per_s,\n"
             "prefill_tok_per_s, decode, kernel, peak_rss, model_rss, row_index (from 0) and row_count.\n"
             "Examples:\n  bench generate\n  bench generate shape=stories15m n=128\n"
             "  bench generate shape=base profile=on",
     .run = cmd_bench_generate,
     .opts = (const OptSpec[]){
         {"shape", OPT_ENUM, "small", "tiny|small|base|stories15m", 0, 0, "model shape"},
         {"model", OPT_ENUM, "both", "dense|factorized|both", 0, 0, "which variants to run"},
         {"n", OPT_INT, "128", NULL, 1, 1 << 20, "tokens decoded per round (capped at the context)"},
         {"rounds", OPT_INT, "3", NULL, 1, 64, "timed rounds, the models in alternation"},
         {"profile", OPT_BOOL, "off", NULL, 0, 0,
          "then one more round per model with every kernel call timed: where the time goes"},
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

int commands_with_sub(const char *sub, const CmdSpec **out, int cap) {
    int n = 0;
    for (int i = 0; i < n_commands; i++)
        if (commands[i].sub && strcmp(commands[i].sub, sub) == 0) {
            if (n < cap) out[n] = &commands[i];
            n++;
        }
    return n;
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
    // "encode", "wash" alone: the family (or families) that has it; "spectron": the command that takes it
    const CmdSpec *with[8];
    int found = commands_with_sub(name, with, 8);
    char families[256] = "";
    for (int i = 0; i < found && i < 8; i++)
        snprintf(families + strlen(families), sizeof families - strlen(families), "%s'%s %s'", i ? ", " : "",
                 with[i]->name, name);
    if (found) return err_set(err, "unknown command '%s': did you mean %s?", name, families);
    if (optim_kind_of(name) >= 0) return err_set(err, "unknown command '%s': did you mean 'optim %s'?", name, name);
    Suggest sg;
    suggest_init(&sg, name);
    for (int i = 0; i < n_commands; i++) suggest_try(&sg, commands[i].name);
    if (suggest_best(&sg))
        return err_set(err, "unknown command '%s': did you mean '%s'? (`help` lists commands)", name,
                       suggest_best(&sg));
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
        if (c->max_pos == 0 && !c->opts && !c->dyn_key)
            return err_set(err, "%s takes no arguments (got '%s')", title, a->pos[0]);
        if (c->max_pos == 0)
            return err_set(err, "%s takes no arguments besides key=value options (got '%s')", title, a->pos[0]);
        return err_set(err, "%s: too many arguments ('%s'); usage: %s %s", title, a->pos[c->max_pos], title,
                       c->args);
    }
    for (int i = 0; c->pos == POS_PATH && i < a->n_pos; i++)   // every later message would be the path, cut
        if (strlen(a->pos[i]) >= PATH_MAX)
            return err_set(err, "%s: a path of %zu bytes is too long (at most %d)", title, strlen(a->pos[i]), PATH_MAX - 1);
    return 0;
}

// `set batch=16`: a setting takes KEY VALUE, as `show` lists them; the parser's own hint for a
// word with '=' (quote it) would send the user the wrong way.
static void setting_form_hint(const CmdSpec *c, const Words *w, int first, Err *err) {
    for (int i = first; c && c->pos == POS_SETTING && i < w->n; i++) {
        const char *eq = strchr(w->w[i], '=');
        char key[64];
        if (w->quoted[i] || !eq) continue;
        snprintf(key, sizeof key, "%.*s", (int)(eq - w->w[i]), w->w[i]);
        if (opt_find(settings, key))
            err_set(err, "%s takes KEY VALUE, not KEY=VALUE: `%s %s %s`", c->name, c->name, key, eq[1] ? eq + 1 : "VALUE");
        return;
    }
}

static int run_command(Session *s, const Words *w) {
    Err err = {{0}};
    int first;
    char title[64] = "";
    const CmdSpec *c = resolve(w, &first, &err);
    Args a;
    if (c) command_title(c, title, sizeof title);
    int parsed = !c ? -1
                 : c->dyn_key ? args_parse_open(&a, w, first, &err)  // the handler checks the keys
                              : args_parse(&a, w, first, c->opts, title, &err);
    if (parsed != 0) {
        setting_form_hint(c, w, first, &err);
        out_error(s, c ? title : NULL, w->text, err.msg);
        return -1;
    }
    int rc = check_positionals(c, &a, &err), stopped = 0;
    if (rc == 0) {
        s->result = cJSON_CreateObject();
        cJSON_AddTrueToObject(s->result, "ok");
        cJSON_AddStringToObject(s->result, "command", title);
        s->emitted = s->reported = 0;
        // at the prompt a Ctrl-C typed before this command is not meant for it; in a script it
        // stopped the script (run_line runs no command after it); under `set interrupt command`
        // one that came after the line was sent is this command's (see interrupts_drop)
        if (s->interactive) lrsh_interrupted = 0;
        else if (lrsh_interrupt_command) interrupts_for_command();
        rc = c->run(s, &a, &err);
        stopped = lrsh_interrupted != 0;
        // what came while it ran was its own; one after (before its result, which a driver waits
        // for before it sends the next line) is nobody's or the next line's
        if (lrsh_interrupt_command && !s->interactive) interrupts_drop();
        lrsh_term_saves = 0;
        // a GPU failure the command could not see is its error (it may be the cause of another)
        if (backend_failed(s->be, &err)) rc = -1;
    }
    out_emit_rows(s);   // the rows it gave, before its error if it then failed
    if (rc != 0) out_failure(s, title, w->text, err.msg[0] ? err.msg : "failed", s->reported ? s->result : NULL,
                             stopped);
    else if (!s->emitted) out_result(s, s->result);
    cJSON_Delete(s->result);
    s->result = NULL;
    args_free(&a);
    session_end_if_terminated(s);   // a SIGTERM that waited for train save='s last save
    return rc;
}

// A line the parser refused names its command as a parsed one would ("tok encode", not "tok"),
// as far as its first two words tell.
static const char *command_of_unparsed(const char *line, char *buf, size_t cap) {
    line += strspn(line, " \t");
    int first = (int)strcspn(line, " \t\r\n;");
    const char *rest = line + first + strspn(line + first, " \t");
    int second = (int)strspn(rest, "abcdefghijklmnopqrstuvwxyz");
    char name[64];
    snprintf(name, sizeof name, "%.*s", first, line);
    // one space between, however many were typed; a name too long is cut (the test of the
    // result only quiets -Wformat-truncation)
    int sub = second && command_has_subs(name) && strchr(" \t\r\n;#", rest[second]);
    if ((sub ? snprintf(buf, cap, "%s %.*s", name, second, rest) : snprintf(buf, cap, "%.*s", first, line)) < 0)
        buf[0] = '\0';
    return buf;
}

int run_line(Session *s, const char *line) {
    Err err = {{0}};
    Words *cmds;
    int n = parse_line(line, &cmds, &err);
    if (n < 0) {
        char name[64];
        out_error(s, command_of_unparsed(line, name, sizeof name), line, err.msg);
        out_check_stdout();
        return -1;
    }
    int failed = 0;
    s->src_commands = n;
    for (int i = 0; i < n && !s->quit; i++) {
        if (lrsh_interrupted && !s->interactive && !lrsh_interrupt_command) break;   // Ctrl-C between a script's commands
        s->src_command = i + 1;
        int rc = run_command(s, &cmds[i]);
        out_check_stdout();   // a reader that left is said once, at the command that met it
        if (rc != 0) {
            failed = 1;
            if (s->errexit) break;
        }
        if (lrsh_interrupted) break;  // Ctrl-C abandons the rest of the line, as in sh
    }
    words_free(cmds, n);
    s->src_command = s->src_commands = 0;
    return failed ? -1 : 0;
}
