// profile.h — where a step's time goes: a Backend that forwards every call to another and times
// it, waiting for the work to finish (Backend.synchronize) before it stops the clock. On the CPU
// that is each kernel's own time; on a GPU it is launch plus execution, one call at a time, so
// the sum exceeds an unprofiled step (the GPU no longer runs ahead of the host) but the shares
// say which kernels and which launch counts cost. Rows are (phase, operation): the caller names
// the phase ("forward+backward", "optimizer"). One profile runs at a time.
#pragma once
#include "kernels.h"

enum { PROFILE_MAX_ROWS = 96 };

typedef struct ProfileRow {
    const char *phase;   // as given to profile_phase
    const char *op;      // the Backend entry: "gemm", "attention_forward", ...
    long calls;
    double seconds;
} ProfileRow;

typedef struct Profile {
    ProfileRow rows[PROFILE_MAX_ROWS];
    int n;
    double seconds;      // the sum over rows
} Profile;

// Start a profile into p (zeroed here) of every call made through the returned table, which
// shares inner's memory (pointers from either work with both). Phase "" until profile_phase.
const Backend *profile_begin(Profile *p, const Backend *inner);
// Name the phase of the calls that follow (a string that outlives the profile).
void profile_phase(const char *phase);
// Stop recording; sort p's rows by time, largest first.
void profile_end(void);
