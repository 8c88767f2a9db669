# attn.h - see README.md. Every target builds into build/.
CC      ?= cc
CFLAGS  ?= -O2
WARN    := -std=c99 -Wall -Wextra -pedantic -Werror
BUILD   := build

TEST_SRC := $(sort $(wildcard tests/*.c))
TEST_DEP := attn.h $(TEST_SRC) $(wildcard tests/*.h)

EXAMPLES := $(basename $(notdir $(wildcard examples/*.c)))
EXAMPLE_BINS := $(addprefix $(BUILD)/,$(EXAMPLES))

.PHONY: test bench check-all check-sections demo examples clean attn-infer cuda-test cuda-emu-test cuda-check bench-cuda

# nvcc for attn_cuda.cuh (the CUDA toolkit is not a Debian package: without
# it the CUDA targets say so and skip). SASS for sm_80 and sm_90, PTX for newer.
NVCC    ?= $(firstword $(shell command -v nvcc 2>/dev/null) $(wildcard /usr/local/cuda/bin/nvcc))
NVFLAGS ?= -std=c++14 -O2 -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=[sm_90,compute_90]
CUDA_DEP := attn.h attn_cuda.cuh tests/test_cuda.cu $(wildcard tests/cuda/*.inc)

# The test runner: one binary, every test, last line 'N passed, N failed'
# (build/tests --list names them, build/tests WORD... runs some; --help).
# First every example runs with tiny settings, so none can rot.
test: $(BUILD)/tests examples cuda-test cuda-emu-test
	bash tests/run_examples.sh $(EXAMPLES)
	$(BUILD)/tests

# The GPU tests: built when nvcc exists, and without a GPU they print a skip line.
cuda-test:
ifneq ($(NVCC),)
	@$(MAKE) --no-print-directory $(BUILD)/test_cuda
	$(BUILD)/test_cuda
else
	@echo "cuda: skipped (no nvcc, so attn_cuda.cuh was not compiled)"
endif

$(BUILD)/test_cuda: $(CUDA_DEP)
	@mkdir -p $(BUILD)
	$(NVCC) $(NVFLAGS) -I. -Itests tests/test_cuda.cu -o $@

# The same tests with attn_cuda.cuh's real kernels run on the CPU by the
# emulator in tools/cuda_emu (g++ only: no nvcc, no GPU), so CI covers them.
# cuda_pp rewrites the <<<>>> launches into build/cuda_emu/ copies. CUDA_EMU_FMA:
# fmaf as an instruction where the CPU has one (3x faster overall, same results).
EMU       := $(BUILD)/cuda_emu
EMU_CXX   ?= g++
EMU_FLAGS ?= -std=c++14 -O2 -Wall -Wno-unknown-pragmas
EMU_FMA   := $(shell grep -qw fma /proc/cpuinfo 2>/dev/null && echo -DCUDA_EMU_FMA)

# Without that C++ compiler (no g++ installed) make test says so and goes on.
EMU_CXX_PATH := $(shell command -v $(firstword $(EMU_CXX)) 2>/dev/null)

ifneq ($(EMU_CXX_PATH),)
cuda-emu-test: $(EMU)/test_cuda
	$(EMU)/test_cuda
else
cuda-emu-test:
	@echo "cuda-emu: skipped (no $(firstword $(EMU_CXX)): the CUDA emulator needs a C++ compiler; EMU_CXX=... names one)"
endif

$(EMU)/cuda_pp: tools/cuda_emu/cuda_pp.cpp
	@mkdir -p $(EMU)
	$(EMU_CXX) -std=c++14 -O2 $< -o $@

$(EMU)/attn_cuda.cuh: attn_cuda.cuh $(EMU)/cuda_pp
	$(EMU)/cuda_pp $< $@

$(EMU)/test_cuda.cu: tests/test_cuda.cu $(EMU)/cuda_pp
	$(EMU)/cuda_pp $< $@

$(EMU)/test_cuda: $(EMU)/test_cuda.cu $(EMU)/attn_cuda.cuh $(CUDA_DEP) $(wildcard tools/cuda_emu/*.h tools/cuda_emu/*.cpp)
	$(EMU_CXX) $(EMU_FLAGS) -ffp-contract=off -DATTN_CUDA_EMU $(EMU_FMA) -iquote $(EMU) -I. -Itests -Itools/cuda_emu \
		-x c++ $(EMU)/test_cuda.cu -x none tools/cuda_emu/emu.cpp -o $@ -lm

# attn_cuda.cuh on a GPU against cuBLAS (and PyTorch's SDPA when a CUDA PyTorch is there).
bench-cuda:
ifneq ($(NVCC),)
	@mkdir -p $(BUILD)
	$(NVCC) $(NVFLAGS) -I. -Ibench bench/bench_cuda.cu -o $(BUILD)/bench_cuda -lcublas
	$(BUILD)/bench_cuda
	-$${BENCH_PYTHON:-python3} bench/sdpa_torch.py
else
	@echo "bench-cuda: skipped (no nvcc)"
endif

# Compile-only check of attn_cuda.cuh for sm_80 and sm_90: registers and spills per kernel.
cuda-check:
	bash tools/cuda_check.sh

$(BUILD)/tests: $(TEST_DEP)
	@mkdir -p $(BUILD)
	$(CC) $(WARN) $(CFLAGS) -I. $(TEST_SRC) -o $@ -lm -lpthread

# The command-line inference tool (see tools/attn_infer.c and README.md).
attn-infer: $(BUILD)/attn-infer

$(BUILD)/attn-infer: tools/attn_infer.c attn.h
	@mkdir -p $(BUILD)
	$(CC) $(WARN) $(CFLAGS) -I. tools/attn_infer.c -o $@ -lm

# Benchmarks against OpenBLAS and PyTorch in the same run (see bench/README.md).
bench:
	bash bench/run.sh

# The portability matrix: compilers, C++, sanitizers, no-SIMD, aarch64/armhf under qemu.
check-all:
	bash tools/check-all.sh

# attn.h's "each section uses only the ones above it", checked (bash + awk, a second).
check-sections:
	bash tools/check_sections.sh

# The examples: each is one .c file that compiles on its own.
examples: $(EXAMPLE_BINS)

$(EXAMPLE_BINS): $(BUILD)/%: examples/%.c attn.h
	@mkdir -p $(BUILD)
	$(CC) $(WARN) $(CFLAGS) -I. $< -o $@ -lm -lpthread

# The main job: train a character-level Transformer on the King James Bible, then sample.
demo: $(BUILD)/demo
	$(BUILD)/demo

clean:
	rm -rf $(BUILD)
