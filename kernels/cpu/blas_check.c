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
    const char *core = better_core();
    if (!core || setenv("OPENBLAS_CORETYPE", core, 1) != 0) return 0;
    // OpenBLAS reads the variable only when it loads. Setting it before exec is also the loop
    // guard: the new image finds it set and returns at once. (OpenMP's wait policy is left to
    // the user: sleeping waits made batch-1 decode 2.7× slower on a quiet machine, spinning
    // ones hurt on a machine shared with other busy programs — OMP_WAIT_POLICY=passive there.)
    execv("/proc/self/exe", argv);
    return -1;  // exec failed: keep running on the generic core
}
