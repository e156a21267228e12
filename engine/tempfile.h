// tempfile.h — the files being written under a temporary name (a checkpoint's, a token
// cache's, a tokenizer's) before their rename, registered while they exist so that a signal
// that ends the process (SIGTERM, SIGHUP) can remove them instead of leaving "x.tmp.123" behind.
#pragma once
#include <stddef.h>

// Register path (copied) as a temporary file in the making; tempfile_done when it was renamed
// or removed. At most TEMPFILE_MAX at once (more go unregistered: only the cleanup misses them).
#define TEMPFILE_MAX 8
void tempfile_begin(const char *path);
void tempfile_done(const char *path);
// Unlink every registered file: async-signal-safe, for a signal handler.
void tempfile_remove_all(void);
// The name a writer of path uses: path.tmp.PID (this process's), or FOLDER/.lrsh.tmp.PID when
// that name would be too long for the file system; at most cap bytes.
int tempfile_name(char *out, size_t cap, const char *path);
// A writer killed outright (SIGKILL, out of memory) leaves path.tmp.PID (or .lrsh.tmp.PID)
// behind: removed when no process PID runs any more (a live one is another writer, working).
// Call before writing path.
void tempfile_remove_stale(const char *path);
