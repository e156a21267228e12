// tempfile.h — writing a file whole or not at all (a checkpoint, a token cache, a tokenizer,
// the default corpus): under a temporary name, synced, then renamed into place. The temporary
// files are registered while they exist so that a signal that ends the process (SIGTERM,
// SIGHUP) can remove them instead of leaving "x.tmp.123" behind.
#pragma once
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

// One file in the making. atomic_file_open sweeps the temporaries dead writers left, creates
// ours and registers it — with the permissions of the file at path, less setuid, setgid, sticky
// and any read or write bit new_mode lacks, or for a new file new_mode less the umask (0666 for
// most files; a token cache no more than its corpus allows) —; the caller writes to f; atomic_file_commit flushes,
// syncs and closes it, renames it over path and syncs the folder, or atomic_file_abandon
// removes it. Each returns 0 or an errno value (*what, when given: the step that failed); on
// any failure the temporary file is gone and path untouched.
typedef struct AtomicFile {
    FILE *f;
    char path[PATH_MAX], tmp[PATH_MAX + 32];
} AtomicFile;
int atomic_file_open(AtomicFile *af, const char *path, mode_t new_mode, const char **what);
int atomic_file_commit(AtomicFile *af, const char **what);
void atomic_file_abandon(AtomicFile *af);

// Register path (copied) as a temporary file in the making; tempfile_done when it was renamed
// or removed. At most TEMPFILE_MAX at once (more go unregistered: only the cleanup misses them).
#define TEMPFILE_MAX 8
void tempfile_begin(const char *path);
void tempfile_done(const char *path);
// Unlink every registered file: async-signal-safe, for a signal handler.
void tempfile_remove_all(void);
// The name a writer of path uses: path.tmp.PID.R (this process's PID, R 8 random hex digits),
// or FOLDER/.lrsh.tmp.PID.R when that name would be too long for the file system; at most cap bytes.
int tempfile_name(char *out, size_t cap, const char *path);
// The folder path's file is in ("." for a bare name, "/" for "/x"), in dir (cap bytes).
void path_folder(const char *path, char *dir, size_t cap);
// 0, or the owner's uid + 1 when path (or a folder on the way to it) is a symbolic link another
// user put in a folder everyone may write in and only owners delete from (sticky and writable
// by all: /tmp, a course folder):
// the kernel's protected_symlinks rule, which a machine may have off. Following such a link
// writes where that user chose, over the writer's own files. Writers of a path refuse it.
long link_planted(const char *path);
// What writers say of such a link (a printf format of the owner's uid, a long).
#define LINK_PLANTED_WHY \
    "a symbolic link on the way to it is user %ld's, in a shared folder: not followed (it could point at any of " \
    "your files)"
// A writer killed outright (SIGKILL, out of memory) leaves path.tmp.PID.R (or .lrsh.tmp.PID.R;
// earlier builds' path.tmp.PID, .lrsh.tmp.PID.N) behind: removed when no process PID runs any
// more (a live one is another writer, working) and it has not changed for a minute (a PID
// another namespace holds looks dead from here, or like this process). Call before writing path.
void tempfile_remove_stale(const char *path);
