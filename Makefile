# attn.h - see README.md. Every target builds into build/.
CC      ?= cc
CFLAGS  ?= -O2
WARN    := -std=c99 -Wall -Wextra -pedantic -Werror
BUILD   := build

TEST_SRC := $(sort $(wildcard tests/*.c))
TEST_DEP := attn.h $(TEST_SRC) $(wildcard tests/*.h)

EXAMPLES := $(basename $(notdir $(wildcard examples/*.c)))
EXAMPLE_BINS := $(addprefix $(BUILD)/,$(EXAMPLES))

.PHONY: test bench check-all demo examples clean attn-infer

# The test runner: one binary, every test, last line 'N passed, N failed'.
# First every example runs with tiny settings, so none can rot.
test: $(BUILD)/tests examples
	bash tests/run_examples.sh $(EXAMPLES)
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
