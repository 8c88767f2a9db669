/* tests/compile/msvc-stubs/string.h - a stand-in for the MSVC C library header
   in tools/check-all.sh's freestanding msvc-target syntax check: only what
   attn.h's implementation calls, so a new dependency shows up as an error. */
#pragma once
#include <stddef.h>
void *memset(void *, int, size_t);
void *memcpy(void *, const void *, size_t);
void *memmove(void *, const void *, size_t);
int memcmp(const void *, const void *, size_t);
int strcmp(const char *, const char *);
int strncmp(const char *, const char *, size_t);
char *strchr(const char *, int);
size_t strlen(const char *);
