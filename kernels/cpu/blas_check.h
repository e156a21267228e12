// blas_check.h — make sure OpenBLAS runs a kernel made for this CPU.
#pragma once

// Debian's DYNAMIC_ARCH OpenBLAS can take a recent CPU for an old core ("Prescott") and run
// GEMM several times below peak. When it did and OPENBLAS_CORETYPE is unset, set it (SkylakeX
// with AVX-512, Haswell with AVX2+FMA) and re-exec /proc/self/exe with argv: OpenBLAS reads
// the variable only when it loads. Call first thing in main(). Returns 0 when nothing needed
// doing, −1 when the re-exec failed (the process goes on with the slow core).
int cpu_blas_ensure_core(int argc, char **argv);

// The OpenBLAS kernel in use, e.g. "Cooperlake", "SkylakeX", "Haswell".
const char *cpu_blas_core(void);
