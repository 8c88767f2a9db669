/* tests/compile/static_main.c - calls the two ATTN_STATIC translation units
   built from static.c (tools/check-all.sh). */
#include <stdio.h>
float static_a(void);
float static_b(void);
int main(void) {
    float x = static_a(), y = static_b();
    int ok = x > 14.99f && x < 15.01f && y > 14.99f && y < 15.01f;
    printf("static_a %g static_b %g: %s\n", x, y, ok ? "ok" : "FAIL");
    return !ok;
}
