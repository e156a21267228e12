// progress.h — how a long engine call reports progress to its caller (which may draw it and
// may ask it to stop: the shell's Ctrl-C). The engine itself never prints.
#pragma once

// done of total units so far; a non-zero return stops the call at its next boundary, and the
// call then fails with an error saying it was interrupted.
typedef int (*ProgressFn)(void *ctx, double done, double total);
