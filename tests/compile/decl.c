/* tests/compile/decl.c - a compile-only translation unit for targets without a
   C library (tools/check-all.sh's msvc-target). */
#include "attn.h"
int decl_only(void);
int decl_only(void) { return ATTN_VERSION_MAJOR + (int)sizeof(attn_kernels); }
