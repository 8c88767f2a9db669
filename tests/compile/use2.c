/* tests/compile/use2.c - a second includer of attn.h, declarations only,
   linked with impl.c and use.c by tools/check-all.sh. */
#include "attn.h"
#ifdef __cplusplus
extern "C"
#endif
int smoke_other_tu(void);
int smoke_other_tu(void) { return (int)attn_simd_active(); }
