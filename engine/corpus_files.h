// corpus_files.h — the files a corpus is read from: a text file itself, or every *.txt under a
// folder, walked in name order through symbolic links, each file once, sorted by path.
#pragma once
#include <stddef.h>
#include "err.h"

typedef struct FileList {
    char **paths;
    size_t n, cap;
    size_t root_len;   // every path starts with the source's first root_len bytes (its folder)
} FileList;

// What the walk of a folder read and left, for the user to hear.
typedef struct SourceListing {
    int folder;               // the source is a folder
    long files;               // files read
    int skipped_files;        // regular files not named *.txt (lrsh's own token caches aside)
    int not_followed;         // links not followed, and files reached a second time (see corpus_files)
    int too_long;             // entries whose path passes PATH_MAX
    char first_skipped[256];  // the first file not named *.txt, relative to the folder (its end when long)
} SourceListing;

// path's files into fl (empty on entry), and what was left into listing. A folder gives every
// regular *.txt file under it: hidden entries skipped; symbolic links followed, but not to /, to
// the folder itself or one above it (they would read what lies beside it), nor to a folder
// inside it (read by its own path, wherever the link sorts), nor to a folder read already (a
// loop); a file reached by two names (links, hard links) is read once, by the first in sorted
// order. The result is sorted bytewise, so the same tree gives the same list on any file system.
int corpus_files(const char *path, FileList *fl, SourceListing *listing, Err *err);
int file_list_add(FileList *fl, const char *path, Err *err);
void file_list_sort(FileList *fl);
void file_list_free(FileList *fl);
// Whether a file's name ends in suffix (".txt").
int file_name_ends_with(const char *name, const char *suffix);
