// corpus_files.c — the files of a corpus (see corpus_files.h): a folder walked in name order,
// through links that lead somewhere new, each file once, the list sorted bytewise.
#include "corpus_files.h"
#include "dataset.h"   // dataset_is_token_cache: lrsh's own caches are no file left out

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int file_list_add(FileList *fl, const char *path, Err *err) {
    if (fl->n == fl->cap) {
        size_t cap = fl->cap ? 2 * fl->cap : 64;
        char **p = realloc(fl->paths, cap * sizeof *p);
        if (!p) return err_set(err, "%s: out of memory listing files", path);
        fl->paths = p;
        fl->cap = cap;
    }
    if (!(fl->paths[fl->n] = strdup(path))) return err_set(err, "%s: out of memory listing files", path);
    fl->n++;
    return 0;
}

void file_list_free(FileList *fl) {
    for (size_t i = 0; i < fl->n; i++) free(fl->paths[i]);
    free(fl->paths);
    memset(fl, 0, sizeof *fl);
}

static int cmp_path(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

void file_list_sort(FileList *fl) { qsort(fl->paths, fl->n, sizeof *fl->paths, cmp_path); }

int file_name_ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

// A file or folder, whatever name reached it.
typedef struct NodeId {
    dev_t dev;
    ino_t ino;
} NodeId;

typedef struct Walk {
    FileList *fl;
    NodeId *file_ids;      // file_ids[i]: fl->paths[i]'s
    size_t file_ids_cap;
    NodeId *folders;       // the folders read so far
    size_t n_folders, folders_cap;
    SourceListing *listing;
    char root[PATH_MAX];   // the source folder, resolved
} Walk;

static int push_id(NodeId **ids, size_t *cap, size_t n, NodeId id, Err *err) {
    if (n == *cap) {
        size_t grown = *cap ? 2 * *cap : 64;
        NodeId *p = realloc(*ids, grown * sizeof *p);
        if (!p) return err_set(err, "out of memory listing a folder's files");
        *ids = p, *cap = grown;
    }
    (*ids)[n] = id;
    return 0;
}

// 1 when the folder was read already (a second link to it, or a loop), else remembers it.
static int folder_read_before(Walk *w, const struct stat *st, Err *err) {
    NodeId id = {st->st_dev, st->st_ino};
    for (size_t i = 0; i < w->n_folders; i++)
        if (w->folders[i].dev == id.dev && w->folders[i].ino == id.ino) return 1;
    if (push_id(&w->folders, &w->folders_cap, w->n_folders, id, err) != 0) return -1;
    w->n_folders++;
    return 0;
}

// A link to a folder that is not followed: to /, to the source or above it (that would read
// what lies beside the source), or to a folder inside the source (read by its own path; which
// of two names reached it first would otherwise decide the files' order).
static int link_not_followed(const Walk *w, const char *path) {
    char target[PATH_MAX];
    if (!realpath(path, target)) return 0;
    size_t n = strlen(target), r = strlen(w->root);
    int at_or_above = strncmp(w->root, target, n) == 0 && (w->root[n] == '/' || !w->root[n]);
    int inside = strncmp(target, w->root, r) == 0 && target[r] == '/' && !strstr(target + r, "/.");
    return strcmp(target, "/") == 0 || at_or_above || inside;   // (inside a hidden folder: read only through the link)
}

// The first file left out, by its name under the source (its end, when that is long).
static void note_skipped(Walk *w, const char *path) {
    if (w->listing->skipped_files++) return;
    const char *rel = path + w->fl->root_len;
    rel += *rel == '/';
    size_t len = strlen(rel), room = sizeof w->listing->first_skipped - 4;
    if (len <= room) { snprintf(w->listing->first_skipped, sizeof w->listing->first_skipped, "%s", rel); return; }
    rel += len - room;
    while ((*rel & 0xC0) == 0x80) rel++;   // at the start of a UTF-8 character
    snprintf(w->listing->first_skipped, sizeof w->listing->first_skipped, "…%s", rel);
}

static int by_name(const struct dirent **a, const struct dirent **b) { return strcmp((*a)->d_name, (*b)->d_name); }

static int walk(Walk *w, const char *dir, int depth, Err *err);

// One entry of a folder: a folder walked into, a *.txt file listed, another file counted.
static int walk_entry(Walk *w, const char *dir, const char *name, int depth, Err *err) {
    char path[PATH_MAX];
    size_t n = strlen(dir);
    if (snprintf(path, sizeof path, "%s%s%s", dir, n && dir[n - 1] == '/' ? "" : "/", name) >= (int)sizeof path) {
        w->listing->too_long++;
        return 0;
    }
    struct stat lst, st;
    if (lstat(path, &lst) != 0 || stat(path, &st) != 0) {   // a dangling link or a loop: nothing there
        if (errno == ENOENT || errno == ELOOP || errno == ENOTDIR || errno == ENAMETOOLONG) return 0;
        return err_set(err, "%s: cannot open: %s", path, strerror(errno));   // (a folder that cannot be entered)
    }
    if (S_ISDIR(st.st_mode)) {
        if (S_ISLNK(lst.st_mode) && link_not_followed(w, path)) return w->listing->not_followed++, 0;
        return walk(w, path, depth + 1, err);
    }
    if (!S_ISREG(st.st_mode)) return 0;
    if (file_name_ends_with(name, ".txt")) {
        if (push_id(&w->file_ids, &w->file_ids_cap, w->fl->n, (NodeId){st.st_dev, st.st_ino}, err) != 0) return -1;
        return file_list_add(w->fl, path, err);
    }
    if (!(file_name_ends_with(name, ".tok") && dataset_is_token_cache(path))) note_skipped(w, path);
    return 0;
}

// Every entry of dir in name order (readdir's order is the file system's: a copied corpus
// would be walked otherwise), hidden ones (.git, .ipynb_checkpoints, .notes.txt: a tool's or an
// editor's, not the corpus) skipped.
static int walk(Walk *w, const char *dir, int depth, Err *err) {
    if (depth > 64) return err_set(err, "%s: folders nested too deep", dir);
    struct stat self;
    if (stat(dir, &self) != 0) return err_set(err, "%s: cannot open folder: %s", dir, strerror(errno));
    int seen = folder_read_before(w, &self, err);
    if (seen) return seen < 0 ? -1 : (w->listing->not_followed++, 0);
    struct dirent **list;
    int count = scandir(dir, &list, NULL, by_name);
    if (count < 0) return err_set(err, "%s: cannot open folder: %s", dir, strerror(errno));
    int rc = 0;
    for (int i = 0; i < count; i++) {
        if (rc == 0 && list[i]->d_name[0] != '.') rc = walk_entry(w, dir, list[i]->d_name, depth, err);
        free(list[i]);
    }
    free(list);
    return rc;
}

typedef struct NamedNode {
    NodeId id;
    size_t index;          // into the file list
    const char *path;
} NamedNode;

static int by_node_then_path(const void *pa, const void *pb) {
    const NamedNode *a = pa, *b = pb;
    if (a->id.dev != b->id.dev) return a->id.dev < b->id.dev ? -1 : 1;
    if (a->id.ino != b->id.ino) return a->id.ino < b->id.ino ? -1 : 1;
    return strcmp(a->path, b->path);
}

// A file listed under two names (a link to a file, a hard link, a folder reached by a link from
// outside) keeps the first name in sorted order: its text is read once.
static int drop_second_names(Walk *w, Err *err) {
    FileList *fl = w->fl;
    NamedNode *nodes = malloc((fl->n ? fl->n : 1) * sizeof *nodes);
    if (!nodes) return err_set(err, "out of memory listing a folder's files");
    for (size_t i = 0; i < fl->n; i++) nodes[i] = (NamedNode){w->file_ids[i], i, fl->paths[i]};
    qsort(nodes, fl->n, sizeof *nodes, by_node_then_path);
    for (size_t i = 1; i < fl->n; i++)
        if (nodes[i].id.dev == nodes[i - 1].id.dev && nodes[i].id.ino == nodes[i - 1].id.ino) {
            free(fl->paths[nodes[i].index]);
            fl->paths[nodes[i].index] = NULL;
            w->listing->not_followed++;
        }
    free(nodes);
    size_t kept = 0;
    for (size_t i = 0; i < fl->n; i++)
        if (fl->paths[i]) fl->paths[kept++] = fl->paths[i];
    fl->n = kept;
    return 0;
}

int corpus_files(const char *path, FileList *fl, SourceListing *listing, Err *err) {
    memset(listing, 0, sizeof *listing);
    struct stat st;
    if (stat(path, &st) != 0) return err_set(err, "%s: cannot open: %s", path, strerror(errno));
    if (S_ISREG(st.st_mode)) {
        fl->root_len = strlen(path);
        listing->files = 1;
        return file_list_add(fl, path, err);
    }
    if (!S_ISDIR(st.st_mode)) return err_set(err, "%s: not a file or a folder", path);
    listing->folder = 1;
    char clean[PATH_MAX];
    if (snprintf(clean, sizeof clean, "%s", path) >= (int)sizeof clean) return err_set(err, "%s: path too long", path);
    size_t n = strlen(clean);
    while (n > 1 && clean[n - 1] == '/') clean[--n] = '\0';   // "data/": its files are "data/a.txt"
    fl->root_len = n;
    Walk w = {.fl = fl, .listing = listing};
    int rc = realpath(clean, w.root) ? walk(&w, clean, 0, err)
                                     : err_set(err, "%s: cannot open folder: %s", path, strerror(errno));
    if (rc == 0) rc = drop_second_names(&w, err);
    free(w.file_ids);
    free(w.folders);
    if (rc != 0) return -1;
    if (fl->n == 0)
        return listing->skipped_files
                   ? err_set(err, "%s: no *.txt files in this folder (%d other file%s, such as %s)", path,
                             listing->skipped_files, listing->skipped_files == 1 ? "" : "s", listing->first_skipped)
                   : err_set(err, "%s: no *.txt files in this folder", path);
    file_list_sort(fl);
    listing->files = (long)fl->n;
    return 0;
}
