/* tests/compile/msvc-stubs/stdlib.h - a stand-in for the MSVC C library header
   in tools/check-all.sh's freestanding msvc-target syntax check: only what
   attn.h's implementation calls, so a new dependency shows up as an error. */
#pragma once
#include <stddef.h>
void *malloc(size_t);
void *realloc(void *, size_t);
void free(void *);
void abort(void);
char *getenv(const char *);
