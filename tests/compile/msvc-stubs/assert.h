/* tests/compile/msvc-stubs/assert.h - a stand-in for the MSVC C library header
   in tools/check-all.sh's freestanding msvc-target syntax check: only what
   attn.h's implementation calls, so a new dependency shows up as an error. */
#pragma once
void _wassert(const unsigned short *, const unsigned short *, unsigned);
#define assert(x) ((void)0)
