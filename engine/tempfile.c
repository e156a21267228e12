// tempfile.c — the registry of temporary files (see tempfile.h). A fixed table, no allocation:
// the handler that empties it runs inside a signal. Also the writers' temporary names and the
// sweep of those a writer killed outright left behind.
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
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

#define SHORT_TMP ".lrsh.tmp."   // the name when NAME.tmp.PID would be longer than a name may be

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
        if (strncmp(e->d_name, base, n) == 0 && strncmp(e->d_name + n, ".tmp.", 5) == 0) pid_text = e->d_name + n + 5;
        else if (strncmp(e->d_name, SHORT_TMP, strlen(SHORT_TMP)) == 0) pid_text = e->d_name + strlen(SHORT_TMP);
        if (!pid_text) continue;
        char *end;
        long pid = strtol(pid_text, &end, 10);
        if (*end || pid <= 0 || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        char stale[PATH_MAX + 300];
        snprintf(stale, sizeof stale, "%s/%s", strcmp(folder, "/") == 0 ? "" : folder, e->d_name);
        unlink(stale);
    }
    closedir(d);
}

int tempfile_name(char *out, size_t cap, const char *path) {
    const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
    int n = strlen(base) + 5 + 20 > NAME_MAX   // ".tmp." and the PID: a 250-byte name could not be saved
                ? snprintf(out, cap, "%.*s%s%ld", (int)(base - path), path, SHORT_TMP, (long)getpid())
                : snprintf(out, cap, "%s.tmp.%ld", path, (long)getpid());
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}
