# attn.h - see README.md. Every target builds into build/.
CC      ?= cc
CFLAGS  ?= -O2
WARN    := -std=c99 -Wall -Wextra -pedantic -Werror
BUILD   := build

TEST_SRC := $(sort $(wildcard tests/*.c))
TEST_DEP := attn.h $(TEST_SRC) $(wildcard tests/*.h)

.PHONY: test bench check-all demo clean attn-infer

# The test runner: one binary, every test, last line 'N passed, N failed'.
test: $(BUILD)/tests
	$(BUILD)/tests

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

demo:
	@echo "make demo arrives with the examples issue (a character-level Transformer); until then see README.md"

clean:
	rm -rf $(BUILD)
