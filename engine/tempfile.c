// tempfile.c — writing a file whole or not at all (see tempfile.h): the registry of temporary
// files (a fixed table, no allocation: the handler that empties it runs inside a signal), their
// names, the sweep of those a writer killed outright left behind, and the open/commit pair.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/random.h>
#include "tempfile.h"

enum { TEMPFILE_PATH = 4096 };

static char paths[TEMPFILE_MAX][TEMPFILE_PATH];
static volatile sig_atomic_t used[TEMPFILE_MAX];   // set only once its path is whole

void tempfile_begin(const char *path) {
    if (strlen(path) >= TEMPFILE_PATH) return;
    for (int i = 0; i < TEMPFILE_MAX; i++)
        if (!used[i]) {
            memcpy(paths[i], path, strlen(path) + 1);
            used[i] = 1;
            return;
        }
}

void tempfile_done(const char *path) {
    for (int i = 0; i < TEMPFILE_MAX; i++)
        if (used[i] && strcmp(paths[i], path) == 0) used[i] = 0;
}

void tempfile_remove_all(void) {
    for (int i = 0; i < TEMPFILE_MAX; i++)
        if (used[i]) unlink(paths[i]), used[i] = 0;
}

// Whether a temporary file named `name` is one this process is writing now (its random part
// makes the name alone enough).
static int registered(const char *name) {
    for (int i = 0; i < TEMPFILE_MAX; i++) {
        const char *slash = strrchr(paths[i], '/');
        if (used[i] && strcmp(slash ? slash + 1 : paths[i], name) == 0) return 1;
    }
    return 0;
}

#define SHORT_TMP ".lrsh.tmp."   // the name when NAME.tmp.PID.R would be longer than a name may be
#define TEMPFILE_STALE_S 60      // unchanged this long, a dead PID's temporary file is stale

// The PID in the part of a temporary name after ".tmp." — exactly what lrsh writes: PID.R (R 8
// lowercase hex digits), or from earlier builds PID alone or, in the short form, PID.N — else −1
// (a name another program chose: "x.tmp.+5", "x.tmp.5.bf16" are not ours to remove).
static long temporary_pid(const char *text, int short_form) {
    size_t digits = strspn(text, "0123456789"), rest;
    if (digits == 0 || digits > 9) return -1;
    const char *after = text + digits;
    if (*after == '.') {
        rest = strspn(after + 1, "0123456789abcdef");
        int random_part = rest == 8 && !after[9];
        int counter = short_form && rest > 0 && rest == strspn(after + 1, "0123456789") && !after[1 + rest];
        if (!random_part && !counter) return -1;
    } else if (*after) {
        return -1;
    }
    return strtol(text, NULL, 10);
}

void tempfile_remove_stale(const char *path) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    const char *base = slash ? slash + 1 : path;
    if (slash) *slash = '\0';
    const char *folder = slash ? (dir[0] ? dir : "/") : ".";   // "/x": the root's
    DIR *d = opendir(folder);
    if (!d) return;
    size_t n = strlen(base);
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *pid_text = NULL;   // after NAME.tmp. or .lrsh.tmp.
        int short_form = strncmp(e->d_name, SHORT_TMP, strlen(SHORT_TMP)) == 0;
        if (strncmp(e->d_name, base, n) == 0 && strncmp(e->d_name + n, ".tmp.", 5) == 0) pid_text = e->d_name + n + 5;
        else if (short_form) pid_text = e->d_name + strlen(SHORT_TMP);
        long pid = pid_text ? temporary_pid(pid_text, short_form) : -1;
        if (pid <= 0) continue;
        if (pid == (long)getpid() ? registered(e->d_name) : kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;   // ours in the making, or a live writer's
        char stale[PATH_MAX + 300];
        snprintf(stale, sizeof stale, "%s/%s", strcmp(folder, "/") == 0 ? "" : folder, e->d_name);
        // a PID this process cannot see, or its own PID not its own file, may be a writer in
        // another PID namespace (a container, where each lrsh may be PID 1; another host on a
        // shared folder), still writing: only a file left alone a while goes
        struct stat st;
        if (stat(stale, &st) == 0 && st.st_mtime > time(NULL) - TEMPFILE_STALE_S) continue;
        unlink(stale);
    }
    closedir(d);
}

// A random part besides the PID: writers in other PID namespaces (containers, each lrsh PID 1)
// or on other hosts sharing the folder have the same PIDs, and one's name was another's — the
// second unlinked the first's file and the first renamed the second's half-written one into place.
static unsigned name_random(void) {
    static unsigned drawn;   // two names in one process differ even without getrandom
    unsigned r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
        r = (unsigned)time(NULL) * 2654435761u ^ (unsigned)getpid() << 16;
    return r ^ drawn++;
}

int tempfile_name(char *out, size_t cap, const char *path) {
    const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
    unsigned r = name_random();
    int n = strlen(base) + 5 + 20 + 9 > NAME_MAX   // ".tmp.", the PID, ".R": a 250-byte name could not be saved
                ? snprintf(out, cap, "%.*s%s%ld.%08x", (int)(base - path), path, SHORT_TMP, (long)getpid(), r)
                : snprintf(out, cap, "%s.tmp.%ld.%08x", path, (long)getpid(), r);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

#define STR_(x) #x
#define STR(x) STR_(x)

int atomic_file_open(AtomicFile *af, const char *path, mode_t new_mode, const char **what) {
    const char *ignored;
    if (!what) what = &ignored;
    af->f = NULL;
    *what = "the path is too long";
    if (strlen(path) >= sizeof af->path || tempfile_name(af->tmp, sizeof af->tmp, path) != 0) return ENAMETOOLONG;
    const char *slash = strrchr(path, '/');
    *what = "the file name is longer than " STR(NAME_MAX) " bytes, the most a file system takes";
    if (strlen(slash ? slash + 1 : path) > NAME_MAX) return ENAMETOOLONG;   // else found only at the rename, all written
    memcpy(af->path, path, strlen(path) + 1);
    tempfile_remove_stale(path);   // a writer killed outright (SIGKILL) left PATH.tmp.PID.R: its PID is gone
    // A file at path keeps its permissions, less setuid, setgid and sticky (as cp and install:
    // the owner may change), and no read or write bit new_mode lacks (a token cache rebuilt after
    // its corpus became private); a new one gets new_mode less the umask, as any program's file does.
    struct stat st;
    int keep = stat(path, &st) == 0 && S_ISREG(st.st_mode);
    *what = "cannot create a temporary file in its folder";
    // Registered before it is created: a signal that ends the process in between left it behind
    // (an empty NAME.tmp.PID.R beside a saved file). A name taken is another writer's: never
    // opened, unregistered, drawn again.
    int fd = -1;
    for (int tries = 0; tries < 8; tries++) {
        tempfile_begin(af->tmp);
        fd = open(af->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, keep ? 0600 : new_mode & 0666);
        if (fd >= 0) break;
        int open_errno = errno;
        tempfile_done(af->tmp);
        if (open_errno != EEXIST || tempfile_name(af->tmp, sizeof af->tmp, path) != 0) return open_errno;
    }
    if (fd < 0) return EEXIST;
    *what = "cannot set the file's permissions";
    int e = keep && fchmod(fd, st.st_mode & 0777 & (new_mode | 0111)) != 0 ? errno : 0;
    // and its group where this user may give it: a teammate's file in a group folder without
    // the setgid bit stays the team's (it became the writer's own group, and the team lost write)
    if (e == 0 && keep && st.st_gid != getegid() && fchown(fd, (uid_t)-1, st.st_gid) != 0) {
        // not a group of this user's: the file takes the writer's, as a file cp writes does
    }
    if (e == 0 && !(af->f = fdopen(fd, "wb"))) e = errno, *what = "cannot open the temporary file";
    if (e != 0) {
        close(fd);
        unlink(af->tmp);
        tempfile_done(af->tmp);
    }
    return e;
}

// The rename is only durable once the folder's entry is on disk too. A failure here is not
// reported: the data is complete under its final name already.
void path_folder(const char *path, char *dir, size_t cap) {
    snprintf(dir, cap, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, cap, ".");
    else slash[slash == dir] = '\0';   // "/x": the root
}

// The last component of path alone: a link another user owns, in a sticky folder writable by all.
static long link_planted_here(const char *path) {
    struct stat link, dir;
    char folder[PATH_MAX];
    if (lstat(path, &link) != 0 || !S_ISLNK(link.st_mode)) return 0;
    path_folder(path, folder, sizeof folder);
    if (stat(folder, &dir) != 0 || !(dir.st_mode & S_ISVTX) || !(dir.st_mode & S_IWOTH)) return 0;
    return link.st_uid != geteuid() && link.st_uid != dir.st_uid ? (long)link.st_uid + 1 : 0;
}

// Every component, as the kernel's rule: /tmp/course/sub/x.st through a planted "sub" too, and
// through one's own link the path it leads to (~/mine.st → /tmp/course/ck.st, planted), as far
// as 40 links, the kernel's own limit.
static long link_planted_from(const char *path, int links) {
    char prefix[PATH_MAX], target[PATH_MAX], next[PATH_MAX];
    if (!*path || strlen(path) >= sizeof prefix || links > 40) return 0;
    for (const char *slash = strchr(path + 1, '/');; slash = strchr(slash + 1, '/')) {
        size_t n = slash ? (size_t)(slash - path) : strlen(path);
        memcpy(prefix, path, n);
        prefix[n] = '\0';
        long planted = link_planted_here(prefix);
        if (planted) return planted;
        ssize_t len = readlink(prefix, target, sizeof target - 1);
        if (len > 0) {   // a link of one's own: where it leads, then the rest of the path from there
            target[len] = '\0';
            char folder[PATH_MAX];
            path_folder(prefix, folder, sizeof folder);
            int w = target[0] == '/' ? snprintf(next, sizeof next, "%s%s", target, path + n)
                                     : snprintf(next, sizeof next, "%s/%s%s", folder, target, path + n);
            return w > 0 && (size_t)w < sizeof next ? link_planted_from(next, links + 1) : 0;
        }
        if (!slash) return 0;
    }
}

long link_planted(const char *path) { return link_planted_from(path, 0); }

static void fsync_folder(const char *path) {
    char dir[PATH_MAX];
    path_folder(path, dir, sizeof dir);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

int atomic_file_commit(AtomicFile *af, const char **what) {
    const char *ignored;
    if (!what) what = &ignored;
    int e = 0;
    *what = "writing failed";
    if (fflush(af->f) != 0) e = errno;
    if (e == 0 && fsync(fileno(af->f)) != 0) e = errno, *what = "flushing to disk failed";
    if (fclose(af->f) != 0 && e == 0) e = errno;
    af->f = NULL;
    if (e == 0 && rename(af->tmp, af->path) != 0) e = errno, *what = "renaming the temporary file failed";
    if (e != 0) unlink(af->tmp);
    tempfile_done(af->tmp);
    if (e == 0) fsync_folder(af->path);
    return e;
}

void atomic_file_abandon(AtomicFile *af) {
    if (af->f) fclose(af->f);
    af->f = NULL;
    unlink(af->tmp);
    tempfile_done(af->tmp);
}
