// backend_cuda_absent.c — stands in for backend_cuda.cu in a build without CUDA (make CUDA=0,
// or no nvcc): the same functions, each saying plainly that this build has no CUDA backend, so
// callers (the shell's --device cuda, tests/test_cuda.c) need no #ifdef.
#include <stdio.h>

#include "../kernels.h"
#include "backend_cuda.h"

static const char absent[] = "this build has no CUDA backend (built with CUDA=0 or without nvcc; "
                             "rebuild with make CUDA=1 on a machine with the CUDA toolkit)";

const Backend *backend_cuda(char *why, size_t cap) {
    if (why && cap) snprintf(why, cap, "%s", absent);
    return NULL;
}

const char *backend_cuda_last_error(void) { return NULL; }
void backend_cuda_clear_error(void) {}
void backend_cuda_synchronize(void) {}

// Every setter: refused, with the reason.
static int refuse(char *why, size_t cap) {
    if (why && cap) snprintf(why, cap, "%s", absent);
    return -1;
}

int backend_cuda_set_precision(const char *name, char *why, size_t cap) { (void)name; return refuse(why, cap); }
const char *backend_cuda_precision(void) { return "fp32"; }
int backend_cuda_set_attention(const char *name, char *why, size_t cap) { (void)name; return refuse(why, cap); }
const char *backend_cuda_attention(void) { return "gemm"; }
int backend_cuda_set_graphs(const char *name, char *why, size_t cap) { (void)name; return refuse(why, cap); }
const char *backend_cuda_graphs(void) { return "on"; }
int backend_cuda_set_fused(const char *name, char *why, size_t cap) { (void)name; return refuse(why, cap); }
const char *backend_cuda_fused(void) { return "off"; }
int backend_cuda_set_pdl(const char *name, char *why, size_t cap) { (void)name; return refuse(why, cap); }
const char *backend_cuda_pdl(void) { return "off"; }
int backend_cuda_tune(const char *knob, int value) { (void)knob, (void)value; return -1; }
long backend_cuda_flash_tc_calls(void) { return 0; }
