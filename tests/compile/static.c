/* tests/compile/static.c - ATTN_STATIC: a translation unit with its own private
   implementation. tools/check-all.sh compiles it twice, -DSTATIC_FN=static_a and
   -DSTATIC_FN=static_b, and links both with static_main.c. */
#ifndef STATIC_FN
#error "compile with -DSTATIC_FN=static_a or -DSTATIC_FN=static_b"
#endif
#define ATTN_STATIC
#define ATTN_IMPLEMENTATION
#include "attn.h"
float STATIC_FN(void);
float STATIC_FN(void) {
    float v[3] = {1.0f, 2.0f, 3.0f}, y[3];
    attn_softmax_rows(0, 1, 3, v, 3, y, 3);
    return attn_vec_dot(3, v, v) + attn_vec_sum(3, y); /* 14 + 1 */
}
