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

int cpu_blas_ensure_core(int argc, char **argv) {
    (void)argc;  // argv is NULL-terminated, as main() receives it
    if (getenv("OPENBLAS_CORETYPE")) return 0;  // chosen by the user, or by our own re-exec
    if (!is_generic_core(cpu_blas_core())) return 0;
    __builtin_cpu_init();
    const char *want = NULL;
    if (__builtin_cpu_supports("avx512f")) want = "SkylakeX";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) want = "Haswell";
    if (!want) return 0;  // an old CPU really: the generic core is the right one
    // Setting the variable before exec is also the loop guard: the new image returns at once.
    if (setenv("OPENBLAS_CORETYPE", want, 1) != 0) return -1;
    execv("/proc/self/exe", argv);
    return -1;  // exec failed: keep running on the generic core
}
