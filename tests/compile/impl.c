/* tests/compile/impl.c - the implementation, alone in its translation unit
   (tools/check-all.sh). Included twice: the second inclusion (even with
   ATTN_IMPLEMENTATION still defined) must be a no-op. */
#define ATTN_IMPLEMENTATION
#include "attn.h"
#include "attn.h"
