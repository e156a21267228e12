// tempfile.c — the registry of temporary files (see tempfile.h). A fixed table, no allocation:
// the handler that empties it runs inside a signal.
#include <signal.h>
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
