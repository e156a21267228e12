// blas_check.h — make sure OpenBLAS runs a kernel made for this CPU.
#pragma once

// Debian's DYNAMIC_ARCH OpenBLAS can take a recent CPU for an old core ("Prescott") and run
// GEMM several times below peak. When it did and OPENBLAS_CORETYPE is unset, set it (SkylakeX
// with AVX-512, Haswell with AVX2+FMA). OpenBLAS reads it only when it loads, so this re-execs
// /proc/self/exe with argv. Call first thing in main(), before any output.
// Returns 0 when nothing needed doing, −1 when the re-exec failed (the process goes on).
int cpu_blas_ensure_core(int argc, char **argv);

// The OpenBLAS kernel in use, e.g. "Cooperlake", "SkylakeX", "Haswell".
const char *cpu_blas_core(void);
