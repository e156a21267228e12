// tempfile.h — the files being written under a temporary name (a checkpoint's, a token
// cache's, a tokenizer's) before their rename, registered while they exist so that a signal
// that ends the process (SIGTERM, SIGHUP) can remove them instead of leaving "x.tmp.123" behind.
#pragma once

// Register path (copied) as a temporary file in the making; tempfile_done when it was renamed
// or removed. At most TEMPFILE_MAX at once (more go unregistered: only the cleanup misses them).
#define TEMPFILE_MAX 8
void tempfile_begin(const char *path);
void tempfile_done(const char *path);
// Unlink every registered file: async-signal-safe, for a signal handler.
void tempfile_remove_all(void);
