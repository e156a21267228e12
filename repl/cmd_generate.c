// cmd_generate.c — the sampling command: generate (streamed text from the KV-cache generator).
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "commands.h"
#include "output.h"

// Distinct from the training and eval streams, so the same seed there and here does not
// correlate them.
#define SAMPLE_SEED_SALT 0x9e57a11ull

// A model and a tokenizer that fit each other, and the generator for that model.
static int need_generator(Session *s, Err *err) {
    if (session_need_model(s, err) != 0 || session_need_tokenizer(s, err) != 0) return -1;
    int tv = tokenizer_vocab_size(s->tok);
    if (tv > s->model.cfg.vocab)
        return err_set(err, "the tokenizer's vocabulary (%d) is larger than the model's (%d): load the tokenizer "
                       "the model was trained with (a checkpoint embeds it) or run `model new`", tv, s->model.cfg.vocab);
    if (s->has_gen) return 0;
    if (generator_build(&s->gen, &s->model, err) != 0) return -1;
    s->has_gen = 1;
    return 0;
}

// Incremental decoding: the tokens from an anchor on are decoded each time and the new part
// printed. Decoding from a fixed start only appends (SentencePiece drops a leading space of the
// first piece only), except that a byte-fallback piece that starts a UTF-8 character decodes to
// U+FFFD until the rest of the character arrives: trailing U+FFFD is held back until then (or
// until the end). Once all is on screen and STREAM_WINDOW tokens lie past the anchor, it moves
// to STREAM_OVERLAP tokens from the end — their text already shown, so the first piece's lost
// space does not matter — and a token costs a decode of at most STREAM_WINDOW tokens, not of
// the whole sequence (which made long generations quadratic).
#define STREAM_WINDOW 64
#define STREAM_OVERLAP 4

typedef struct Stream {
    Session *s;
    const int32_t *ids;   // the prompt then the generated tokens (after the unshown lead-in)
    long anchor;          // decoding starts at ids[anchor]
    size_t shown;         // bytes of the decode from the anchor already printed
    const char *stop;     // stop=: the text that ends generation, never shown (NULL: none)
    int stopped;          // it came
    int cut;              // the tokens end inside a character: its U+FFFD stays held back at the end
} Stream;

static size_t hold_back(const char *t, size_t n) {
    while (n >= 3 && memcmp(t + n - 3, "\xEF\xBF\xBD", 3) == 0) n -= 3;
    return n;
}

// How far text[from, n) may be shown under stop=: up to the stop text when it came (and then
// st->stopped), else short of an end that may be its beginning (the next token may complete
// it). Searched only in what is not on screen yet: the prompt, shown first, is never cut, and
// shown text never holds the beginning of a stop text.
static size_t hold_back_stop(Stream *st, const char *text, size_t from, size_t n, int final) {
    size_t len = st->stop ? strlen(st->stop) : 0;
    if (!len) return n;   // (stop= "" is refused before)
    const char *at = from < n ? memmem(text + from, n - from, st->stop, len) : NULL;
    if (at) {
        st->stopped = 1;
        return (size_t)(at - text);
    }
    if (final) return n;
    for (size_t k = len - 1 < n - from ? len - 1 : n - from; k > 0; k--)   // the longest end that begins it
        if (memcmp(text + n - k, st->stop, k) == 0) return n - k;
    return n;
}

static int stream_update(Stream *st, long n_ids, int final, Err *err) {
    char *text = tokenizer_decode(st->s->tok, st->ids + st->anchor, n_ids - st->anchor, err);
    if (!text) return -1;
    size_t n = strlen(text), upto = final && !st->cut ? n : hold_back(text, n);
    if (st->shown <= upto) upto = hold_back_stop(st, text, st->shown, upto, final);
    if (upto > st->shown) {
        out_visible(st->s, text + st->shown, upto - st->shown);
        if (st->s->json) fflush(stderr);
        else out_check_stdout();   // flushes; a reader that left is said here, once
        st->shown = upto;
    }
    free(text);
    if (upto < n || n_ids - st->anchor <= STREAM_WINDOW) return 0;
    long anchor = n_ids - STREAM_OVERLAP;
    char *tail = tokenizer_decode(st->s->tok, st->ids + anchor, STREAM_OVERLAP, err);   // on screen already
    if (!tail) return -1;
    st->anchor = anchor, st->shown = strlen(tail);
    free(tail);
    return 0;
}

// Whether n tokens end inside a UTF-8 character: byte pieces (byte fallback spells a character
// the vocabulary lacks one byte a token) holding its first bytes, the rest never drawn because
// n= ran out. Decoded, those bytes are U+FFFD; the next tokens would have made the character.
static int ends_mid_character(const Tokenizer *tok, const int32_t *ids, long n) {
    unsigned char tail[3];
    int k = 0;   // the last bytes, last first: a byte piece's text is its one raw byte
    for (long i = n - 1; i >= 0 && k < 3; i--) {
        Err ignored;
        char *piece = tokenizer_decode_piece(tok, ids[i], &ignored);
        if (!piece) return 0;
        for (size_t j = strlen(piece); j > 0 && k < 3; j--) tail[k++] = (unsigned char)piece[j - 1];
        free(piece);
    }
    for (int j = 0; j < k; j++) {
        if ((tail[j] & 0xC0) == 0x80) continue;   // a continuation byte: its lead is further back
        int need = tail[j] >= 0xF0 ? 4 : tail[j] >= 0xE0 ? 3 : tail[j] >= 0xC0 ? 2 : 1;
        return need > j + 1;
    }
    return 0;
}

// What an empty prompt starts from: a blank line, where a paragraph (a fortune) starts in the
// text the model was trained on. Never BOS: `data load` puts none in the data, so a model lrsh
// trains never saw it. Measured on the bundled model's validation split: a fortune's first token
// costs 9.5 nats after BOS (worse than uniform, 8.3) and 5.5 after a blank line; before a prompt,
// BOS cost its first 7 tokens 0.08 nats each. BOS only for a tokenizer that cannot spell "\n\n".
static int lead_in(const Tokenizer *tok, int32_t *ids, int cap) {
    Err ignored;
    int32_t *nl = NULL;
    long n = tokenizer_encode(tok, "\n\n", 2, &nl, &ignored);
    char *back = n >= 1 && n <= cap ? tokenizer_decode(tok, nl, n, &ignored) : NULL;
    int ok = back && strcmp(back, "\n\n") == 0;   // spelled, not an unknown-piece stand-in
    if (ok) memcpy(ids, nl, sizeof(int32_t) * (size_t)n);
    free(back);
    free(nl);
    if (ok) return (int)n;
    int bos = tokenizer_bos_id(tok);
    ids[0] = bos >= 0 ? bos : 0;
    return 1;
}

// What one generate did, for its report.
typedef struct GenerateRun {
    long np;               // prompt tokens
    int encoded;           // of them, the context window's part
    int made;              // tokens generated
    double prefill, seconds;
    const char *stopped;   // "n", "eos", "stop" or "interrupt"
    const char *stop;      // stop=: the text that ended it is cut from the result (NULL: none)
    int cut;               // the last tokens began a character they did not finish: left out
    SamplerConfig sc;
} GenerateRun;

// The generated part of the whole decoded text: after the prompt's bytes, cut before the stop
// text when that ended it (as the stream was).
static char *generated_part(char *text, size_t prompt_bytes, const GenerateRun *g) {
    char *gen = text + (prompt_bytes <= strlen(text) ? prompt_bytes : strlen(text));
    char *stop = strcmp(g->stopped, "stop") == 0 ? strstr(gen, g->stop) : NULL;
    if (stop) *stop = '\0';
    if (g->cut) gen[hold_back(gen, strlen(gen))] = '\0';   // as the stream left it out
    return gen;
}

// The closing notes and the JSON result; ids: the prompt's tokens, then those generated.
static int generate_report(Session *s, const GenerateRun *g, const int32_t *ids, Err *err) {
    // the whole text once, for JSON: the prompt's part as the tokenizer reads it back
    char *text = tokenizer_decode(s->tok, ids, g->np + g->made, err);
    char *prompt_text = text ? tokenizer_decode(s->tok, ids, g->np, err) : NULL;
    out_text(s, "\n");
    if (!prompt_text) {
        free(text);
        return -1;
    }
    int interrupted = strcmp(g->stopped, "interrupt") == 0;
    // tokens decoded a second: the first drawn came from the prompt's pass, so `seconds` holds
    // made − 1 forward passes (and made draws); one token alone has no rate
    double rate = g->seconds > 0 && g->made > 1 ? (g->made - 1) / g->seconds : NAN;
    if (interrupted) out_note(s, "(stopped by Ctrl-C after %d token%s)\n", g->made, g->made == 1 ? "" : "s");
    if (g->cut) out_note(s, "(the text ended inside a character: its first bytes are not shown)\n");
    char seed_note[48] = "", pre[32], window[48] = "", r[32];   // greedy decoding (temp=0) draws nothing: no seed
    if (g->sc.temperature > 0)
        snprintf(seed_note, sizeof seed_note, "; seed=%llu repeats %s", (unsigned long long)g->sc.seed,
                 interrupted ? "this much" : "it");
    if (g->prefill < 1.0) snprintf(pre, sizeof pre, "%.0f ms", 1e3 * g->prefill);
    else snprintf(pre, sizeof pre, "%.1f s", g->prefill);
    if (g->encoded < g->np) snprintf(window, sizeof window, " (its last %d encoded)", g->encoded);
    if (isnan(rate)) snprintf(r, sizeof r, "–");
    else fmt_count(r, sizeof r, rate);
    out_note(s, "(%d token%s, %s tok/s%s; prompt %ld token%s%s in %s%s)\n", g->made, g->made == 1 ? "" : "s",
             r, strcmp(g->stopped, "eos") == 0 ? ", end of text" : strcmp(g->stopped, "stop") == 0 ? ", stopped at stop=" : "",
             g->np,
             g->np == 1 ? "" : "s", window, pre, seed_note);
    cJSON_AddStringToObject(s->result, "text", generated_part(text, strlen(prompt_text), g));
    cJSON_AddStringToObject(s->result, "prompt", prompt_text);
    cJSON_AddNumberToObject(s->result, "tokens", g->made);
    cJSON_AddNumberToObject(s->result, "prompt_tokens", g->np);
    cJSON_AddNumberToObject(s->result, "prompt_encoded", g->encoded);
    if (isnan(rate)) cJSON_AddNullToObject(s->result, "tok_per_s");
    else json_add_real(s->result, "tok_per_s", rate);
    json_add_real(s->result, "prefill_seconds", g->prefill);
    json_add_u64(s->result, "seed", g->sc.seed);
    cJSON_AddStringToObject(s->result, "stopped", g->stopped);
    free(text);
    free(prompt_text);
    return 0;
}

// Draws up to n tokens after what the generator was fed, each streamed as it comes into
// ids[np…]; stops at the end-of-text id, stop= or a Ctrl-C (g->stopped says which).
static int generate_tokens(Session *s, GenerateRun *g, int n, int32_t *ids, Stream *st, Err *err) {
    int eos = tokenizer_eos_id(s->tok), tv = tokenizer_vocab_size(s->tok), rc = 0;
    uint64_t rng = g->sc.seed ^ SAMPLE_SEED_SALT;
    double t0 = now_seconds();
    while (rc == 0 && g->made < n) {
        if (lrsh_interrupted) { g->stopped = "interrupt"; break; }
        // ids the tokenizer cannot spell are never drawn (a model with a larger vocabulary)
        for (int i = tv; i < s->model.cfg.vocab; i++) s->gen.logits[i] = -INFINITY;
        int32_t id = sampler_sample(&g->sc, &s->gen, &rng);
        if (id == eos) { g->stopped = "eos"; break; }
        ids[g->np + g->made++] = id;
        rc = stream_update(st, g->np + g->made, 0, err);
        if (st->stopped) { g->stopped = "stop"; break; }
        if (rc == 0 && g->made < n) rc = generator_feed(&s->gen, &id, 1, err);
    }
    g->seconds = now_seconds() - t0;
    return rc;
}

int cmd_generate(Session *s, const Args *a, Err *err) {
    if (ensemble_refuse_single_model(s, "generate from", err) != 0 || need_generator(s, err) != 0) return -1;
    int n = (int)args_int(a, "n", 128);
    GenerateRun g = {.stopped = "n", .stop = args_has(a, "stop") ? args_str(a, "stop", "") : NULL, .sc = {
        .temperature = (float)args_float(a, "temp", 0.8),
        .top_k = (int)args_int(a, "top_k", 40),
        .top_p = (float)args_float(a, "top_p", 0.95),
        .seed = args_has(a, "seed") ? (uint64_t)args_int(a, "seed", 0) : seed_offset(s->seed, s->generations),
    }};
    if (g.stop && strchr(g.stop, '\\'))   // typed in single quotes: \n stayed two characters
        out_note(s, "note: stop= holds a backslash: only inside double quotes is \\n a newline (stop=\"\\n\\n\")\n");
    s->generations++;
    char *prompt = join_words(a);
    if (!prompt) return err_set(err, "out of memory");
    int32_t *pids = NULL;
    g.np = tokenizer_encode(s->tok, prompt, strlen(prompt), &pids, err);
    free(prompt);
    if (g.np < 0) return -1;
    int32_t lead[8];
    int n_lead = g.np > 0 ? 0 : lead_in(s->tok, lead, 8);
    int32_t *ids = malloc(sizeof(int32_t) * ((size_t)n_lead + (size_t)g.np + (size_t)n + 1));
    if (!ids) {
        free(pids);
        return err_set(err, "out of memory for %ld + %d tokens", g.np, n);
    }
    // ids: the lead-in (fed, never decoded), the prompt, then the generated tokens
    memcpy(ids, lead, sizeof(int32_t) * (size_t)n_lead);
    if (g.np) memcpy(ids + n_lead, pids, sizeof(int32_t) * (size_t)g.np);
    free(pids);
    if (g.np > s->model.cfg.seq)
        out_note(s, "note: the prompt is %ld tokens, longer than the context (%d): the window slides and the model "
                    "sees only its last part\n", g.np, s->model.cfg.seq);
    generator_reset(&s->gen);
    double t0 = now_seconds();
    if (generator_feed(&s->gen, ids, n_lead + (int)g.np, err) != 0) {
        free(ids);
        return -1;
    }
    g.prefill = now_seconds() - t0;
    // of a prompt longer than the context, the window's part (0 when the lead-in alone fills it)
    g.encoded = s->gen.len > n_lead ? s->gen.len - n_lead : 0;
    Stream st = {.s = s, .ids = ids + n_lead};
    int rc = stream_update(&st, g.np, 1, err);  // the prompt as the tokenizer reads it back
    st.stop = g.stop;                           // looked for in what comes after it only
    if (rc == 0) rc = generate_tokens(s, &g, n, ids + n_lead, &st, err);
    st.cut = g.cut = rc == 0 && !st.stopped && g.made > 0 && ends_mid_character(s->tok, ids + n_lead + g.np, g.made);
    if (rc == 0 && !st.stopped) rc = stream_update(&st, g.np + g.made, 1, err);
    out_visible_end(s);
    if (rc == 0) rc = generate_report(s, &g, ids + n_lead, err);   // it ends the streamed line
    else out_text(s, "\n");
    free(ids);
    return rc;
}
