# lrsh — build, test, deps, run, bench.   `make help` lists the targets.
CC      ?= gcc
CXX     ?= g++
NVCC    ?= nvcc
SAN     ?= 0
CUDA    ?= auto

WARN     := -Wall -Wextra -Werror
# -fno-trapping-math: lrsh never reads the floating-point exception flags, and with them kept GCC
# will not turn a loop's float selects into blends (cpu_expf's range checks), so the softmax and
# SwiGLU loops stayed scalar. -fno-math-errno likewise: no libm call sets errno for us.
CFLAGS   := -std=c11 $(WARN) -fopenmp -fno-math-errno -fno-trapping-math -D_GNU_SOURCE -MMD -MP
CXXFLAGS := -std=c++17 $(WARN) -MMD -MP
ifeq ($(SAN),1)
  BUILD    := build-san
  OPT      := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined,float-cast-overflow \
              -fno-sanitize-recover=undefined,float-cast-overflow
else
  BUILD    := build
  OPT      := -O3 -march=native -g
endif
CFLAGS   += $(OPT)
CXXFLAGS += $(OPT)
# OpenBLAS's OpenMP build, so BLAS and our kernels share one thread pool instead of two pools
# spinning against each other. DT_RPATH (not RUNPATH) so liblapacke's own liblapack/libblas
# resolve to the same build.
OPENBLAS_DIR := /usr/lib/x86_64-linux-gnu/openblas-openmp
LDLIBS   := -lreadline -lcjson -llapacke -L$(OPENBLAS_DIR) -Wl,--disable-new-dtags,-rpath,$(OPENBLAS_DIR) -lopenblas \
            -lsentencepiece_train -lsentencepiece -lstdc++ -lm -fopenmp
LDFLAGS  := $(filter -fsanitize% -g,$(OPT))

# --- CUDA: built whenever nvcc is found (CUDA=0 turns it off, CUDA=1 insists) ---
NVCC_PATH := $(shell command -v $(NVCC) 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA_SRC  := $(wildcard kernels/cuda/*.cu)
ifneq ($(filter 0 off no false,$(CUDA)),)
  USE_CUDA := 0
else ifneq ($(NVCC_PATH),)
  USE_CUDA := 1
else ifeq ($(CUDA),1)
  $(error CUDA=1 but nvcc was not found on PATH or in /usr/local/cuda/bin)
else
  USE_CUDA := 0
endif
# Without CUDA, backend_cuda_absent.c stands in: backend_cuda() exists in every build and says why
# it returns NULL. The rpath lets ./lrsh find libcudart/libcublas without LD_LIBRARY_PATH.
# --fmad=false: no fused multiply-adds, like the C11 CPU code (-ffp-contract=off), so elementwise
# kernels match the CPU to the bit where their formulas match.
NVCCFLAGS := -O3 -std=c++17 -lineinfo --fmad=false -Xcompiler -Wall,-Wextra -Werror all-warnings -MMD -MP \
             -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90
ifeq ($(USE_CUDA)$(if $(CUDA_SRC),1,0),11)
  CUDA_HOME := $(patsubst %/bin/nvcc,%,$(NVCC_PATH))
  CFLAGS    += -DLRSH_CUDA
  LDLIBS    += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart
  CUDA_OBJ  := $(CUDA_SRC:%.cu=$(BUILD)/%.o)
else
  CUDA_OBJ  := $(BUILD)/kernels/cuda/backend_cuda_absent.o
endif
# Turning CUDA on or off changes CFLAGS and the archive's members, and a changed compiler or flag
# (SAN, a new -f option) changes the code: a stamp holding them all, rewritten only when it
# changes, makes every object (and so the archive and the programs) rebuild.
# (.DEFAULT_GOAL: this is the first rule in the file, and `make` alone must still build `all`.)
.DEFAULT_GOAL := all
CONFIG_STAMP := $(BUILD)/build-config
CONFIG       := $(CUDA_OBJ) | $(CC) $(CFLAGS) | $(CXX) $(CXXFLAGS) | $(NVCC_PATH) $(NVCCFLAGS)
# not on a dry run (make -n), nor for goals that compile nothing (make deps, help, clean): either
# would leave the next real build (`make CUDA=0`) rebuilding everything for nothing
ifeq ($(findstring n,$(firstword -$(MAKEFLAGS))),)
ifneq ($(filter-out deps help clean,$(or $(MAKECMDGOALS),all)),)
$(shell mkdir -p $(BUILD) && (echo '$(CONFIG)' | cmp -s - $(CONFIG_STAMP) || echo '$(CONFIG)' > $(CONFIG_STAMP)))
endif
endif
$(CUDA_OBJ) $(BUILD)/tokenizer/tokenizer.o \
$(patsubst %.c,$(BUILD)/%.o,$(wildcard engine/*.c kernels/*.c kernels/cpu/*.c repl/*.c)): $(CONFIG_STAMP)

ENGINE_SRC := $(wildcard engine/*.c) $(wildcard kernels/*.c) $(wildcard kernels/cpu/*.c)
ENGINE_OBJ := $(ENGINE_SRC:%.c=$(BUILD)/%.o) $(BUILD)/tokenizer/tokenizer.o $(CUDA_OBJ)
REPL_OBJ   := $(patsubst %.c,$(BUILD)/%.o,$(wildcard repl/*.c))
TESTS      := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/test_*.c)) \
              $(patsubst tests/%.cpp,$(BUILD)/tests/%,$(wildcard tests/test_*.cpp))
BENCHES    := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/bench_*.c))
LIB        := $(BUILD)/liblrsh.a
LRSH       := $(if $(filter 1,$(SAN)),$(BUILD)/lrsh,lrsh)

.PHONY: all deps run test test-bin bench clean help buildinfo depcheck
all: buildinfo $(LRSH)

# A fresh machine without the packages: one line that says what to do, before any compiler error.
# Looked for when the recipe runs, not when make reads this file: `make test` installs them
# (deps) in the same invocation, after the file was read.
DEP_HEADERS := /usr/include/cjson/cJSON.h /usr/include/readline/readline.h /usr/include/lapacke.h \
               /usr/include/sentencepiece_processor.h
depcheck:
	@missing=""; for h in $(DEP_HEADERS); do [ -e "$$h" ] || missing="$$missing $$h"; done; \
	if [ -n "$$missing" ]; then \
	    echo "lrsh build:$$missing missing: run \`make deps\` first (it installs the Debian packages)"; exit 1; fi

buildinfo:
	@echo "lrsh build: CUDA $(if $(filter 1,$(USE_CUDA)),$(if $(CUDA_SRC),on ($(NVCC_PATH)),nvcc found ($(NVCC_PATH)) but kernels/cuda/ has no sources yet),off$(if $(filter 0 off no false,$(CUDA)), (CUDA=$(CUDA)), (no nvcc))); OpenMP $(shell echo | $(CC) -fopenmp -dM -E - | grep -q _OPENMP && echo on || echo off); BLAS OpenBLAS $(shell dpkg-query -W -f='$${Version}' libopenblas-openmp-dev 2>/dev/null) (OpenMP build); $(if $(filter 1,$(SAN)),sanitizers on,-O3 -march=native)"

$(LRSH): $(REPL_OBJ) $(LIB)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(REPL_OBJ) $(LIB) $(LDLIBS)

$(LIB): $(ENGINE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/%.o: %.c | depcheck
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/tokenizer/tokenizer.o: tokenizer/tokenizer.cpp | depcheck
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c $< -o $@

$(BUILD)/kernels/cuda/%.o: kernels/cuda/%.cu
	@mkdir -p $(dir $@)
	$(NVCC_PATH) $(NVCCFLAGS) -c $< -o $@

$(BUILD)/tests/%: tests/%.c tests/test.h $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

# C++ tests: those that run CUDA kernel source on the CPU (tests/emu/cuda_emu.h: a thread per
# GPU thread; the kernels' `#pragma unroll` means nothing to g++).
$(BUILD)/tests/%: tests/%.cpp tests/test.h tests/emu/cuda_emu.h $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -Wno-unknown-pragmas -pthread $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

$(BUILD)/bench/%: bench/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

# The Debian packages lrsh needs; installs only what is missing (as root, or through sudo).
PACKAGES := build-essential python3 libreadline-dev libsentencepiece-dev libopenblas-openmp-dev liblapacke-dev \
            libcjson-dev gnuplot-nox fortunes fortunes-min
deps:
	@missing=$$(for p in $(PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -z "$$missing" ]; then echo "deps: all packages present"; exit 0; fi; \
	echo "deps: installing$$(echo ' '$$missing)"; \
	sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing >/dev/null && echo "deps: done"

# deps first, then a make of its own: under -j the build would start beside deps, and this
# make read the Makefile before deps installed anything (command-line variables pass on).
run: deps
	@$(MAKE) --no-print-directory all
	./$(LRSH)

test-bin: all $(TESTS)

test: deps
	@$(MAKE) --no-print-directory test-bin
	@LRSH_BIN=./$(LRSH) sh tests/run.sh $(BUILD)

bench: deps
	@$(MAKE) --no-print-directory all $(BENCHES)
	@for b in $(BENCHES); do $$b || exit 1; done

clean:
	rm -rf build build-san lrsh

help:
	@echo "make          build ./lrsh (CUDA backend too when nvcc is found; CUDA=0 off, CUDA=1 insist)"
	@echo "make deps     install the Debian packages lrsh needs"
	@echo "make run      deps + build + open the shell"
	@echo "make test     deps + build + every test (SAN=1: under AddressSanitizer + UBSan)"
	@echo "make bench    the benchmarks (about 3½ minutes on 2 cores once built)"
	@echo "make clean    remove build outputs"

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
