/* tests/compile/msvc-stubs/stdio.h - a stand-in for the MSVC C library header
   in tools/check-all.sh's freestanding msvc-target syntax check: only what
   attn.h's implementation calls, so a new dependency shows up as an error. */
#pragma once
#include <stddef.h>
typedef struct FILE FILE;
#define SEEK_SET 0
#define SEEK_END 2
FILE *fopen(const char *, const char *);
int fclose(FILE *);
int fseek(FILE *, long, int);
long ftell(FILE *);
size_t fread(void *, size_t, size_t, FILE *);
size_t fwrite(const void *, size_t, size_t, FILE *);
