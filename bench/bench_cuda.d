bench/bench_cuda: bench/bench_cuda.c bench/../engine/bench.h \
 bench/../engine/err.h bench/../engine/progress.h \
 bench/../engine/../kernels/kernels.h \
 bench/../engine/../kernels/profile.h bench/../engine/model.h \
 bench/../engine/optim.h bench/../engine/rng.h bench/../engine/train.h \
 bench/../engine/dataset.h bench/../engine/../tokenizer/tokenizer.h \
 bench/../kernels/cpu/blas_check.h bench/../kernels/cuda/backend_cuda.h
bench/../engine/bench.h:
bench/../engine/err.h:
bench/../engine/progress.h:
bench/../engine/../kernels/kernels.h:
bench/../engine/../kernels/profile.h:
bench/../engine/model.h:
bench/../engine/optim.h:
bench/../engine/rng.h:
bench/../engine/train.h:
bench/../engine/dataset.h:
bench/../engine/../tokenizer/tokenizer.h:
bench/../kernels/cpu/blas_check.h:
bench/../kernels/cuda/backend_cuda.h:
