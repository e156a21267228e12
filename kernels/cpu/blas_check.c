// blas_check.c — detect a generic OpenBLAS core on a modern CPU and re-exec with the right one.
#include <stdlib.h>
#include <strings.h>
#include <unistd.h>
#include <cblas.h>

#include "blas_check.h"

const char *cpu_blas_core(void) {
    const char *core = openblas_get_corename();
    return core ? core : "unknown";
}

// The cores OpenBLAS falls back to when it does not recognize a CPU: SSE-era kernels.
static int is_generic_core(const char *core) {
    static const char *const generic[] = {"Prescott", "Core2",  "Nehalem",    "Atom",
                                          "Katmai",   "Banias", "Northwood",  "Penryn",
                                          "Dunnington", "unknown"};
    for (size_t i = 0; i < sizeof generic / sizeof generic[0]; i++)
        if (strcasecmp(core, generic[i]) == 0) return 1;
    return 0;
}

// The OpenBLAS core to ask for, or NULL when the detected one is fine (or chosen by the user).
static const char *better_core(void) {
    if (getenv("OPENBLAS_CORETYPE") || !is_generic_core(cpu_blas_core())) return NULL;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
    return NULL;  // an old CPU really: the generic core is the right one
}

int cpu_blas_ensure_core(int argc, char **argv) {
    (void)argc;  // argv is NULL-terminated, as main() receives it
    int changed = 0;
    const char *core = better_core();
    if (core) changed |= setenv("OPENBLAS_CORETYPE", core, 1) == 0;
    // OpenMP threads that spin while waiting steal the core another thread (or another
    // program) needs: on a shared machine a 2-thread decode fell from ~300 to ~50 tokens/s.
    // Sleeping waits cost little on a quiet one (bench_train measures both).
    if (!getenv("OMP_WAIT_POLICY")) changed |= setenv("OMP_WAIT_POLICY", "passive", 1) == 0;
    if (!changed) return 0;
    // Both variables are read only when the libraries load. Setting them before exec is also
    // the loop guard: the new image finds them set and returns at once.
    execv("/proc/self/exe", argv);
    return -1;  // exec failed: keep running as we are
}
