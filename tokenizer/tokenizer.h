// tokenizer.h — a small C API over SentencePiece (the shim in tokenizer.cpp is the only C++).
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "../engine/err.h"
#include "../engine/progress.h"

typedef struct Tokenizer Tokenizer;  // opaque

typedef enum { TOKENIZER_BPE, TOKENIZER_UNIGRAM } TokenizerType;

// Train a model on a UTF-8 text file; byte fallback is always on. Writes the model file to
// out_path (through a temporary name + rename) and returns it loaded, or NULL with err set.
// Training runs in a child process; stop (may be NULL) is asked every 100 ms (done and total 0)
// and a non-zero answer kills it: NULL, "interrupted", nothing written.
Tokenizer *tokenizer_train(const char *text_path, int vocab_size, TokenizerType type,
                           const char *out_path, ProgressFn stop, void *ctx, Err *err);
Tokenizer *tokenizer_load(const char *model_path, Err *err);
Tokenizer *tokenizer_load_bytes(const void *bytes, size_t size, Err *err);
// The serialized model (for embedding in a checkpoint). The pointer stays valid until free.
const void *tokenizer_bytes(const Tokenizer *tok, size_t *size);
void tokenizer_free(Tokenizer *tok);

int tokenizer_vocab_size(const Tokenizer *tok);
int tokenizer_bos_id(const Tokenizer *tok);
int tokenizer_eos_id(const Tokenizer *tok);

// Encode text (len bytes) into ids; returns the number of ids, or -1 with err set.
// *ids is malloc'ed and owned by the caller.
long tokenizer_encode(const Tokenizer *tok, const char *text, size_t len, int32_t **ids, Err *err);
// Decode ids into a malloc'ed NUL-terminated string; NULL with err set on a bad id. A decoded
// NUL byte (the piece <0x00>) comes out as U+FFFD: the string would otherwise end there.
char *tokenizer_decode(const Tokenizer *tok, const int32_t *ids, long n, Err *err);
// The text of one piece as it appears in decoded output; malloc'ed; NUL as U+FFFD too. An
// encoding's pieces join into its text (test_tokenizer holds the tokenizer to that; generate's
// stream decodes the tokens from an anchor on instead: a character split over pieces comes whole).
char *tokenizer_decode_piece(const Tokenizer *tok, int32_t id, Err *err);

// The allowed vocab sizes for tokenizer_train (the 256 byte pieces and the specials come first).
#define TOKENIZER_MIN_VOCAB 261
#define TOKENIZER_MAX_VOCAB (1 << 20)
// Length of the longest prefix of text[0, len) made of whole, valid UTF-8 sequences (strict:
// no overlong forms, no surrogates, nothing above U+10FFFF). Equals len when all is valid.
size_t tokenizer_utf8_valid_prefix(const char *text, size_t len);
// Whether text starts with a bidirectional control (U+202A–U+202E, U+2066–U+2069), which
// reorders a terminal's line: a message quoting read text shows it escaped.
int tokenizer_utf8_bidi_control(const char *text);
