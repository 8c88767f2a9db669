/* tests/compile/alloc.c - allocator hooks (-DHOOKS) and ATTN_NO_MALLOC
   (-DNOMALLOC), built by tools/check-all.sh's alloc-hooks. */
#include <stdio.h>
#include <string.h>
#ifdef HOOKS
#include <stdlib.h>
static long live, total;
static int tag_ok = 1;
static int tag;
static void *hk_malloc(size_t n, void *u) {
    void *p = malloc(n);
    if (u != &tag) tag_ok = 0;
    if (p) live++, total++;
    return p;
}
static void *hk_realloc(void *p, size_t n, void *u) {
    void *q = realloc(p, n);
    if (u != &tag) tag_ok = 0;
    if (!p && q) live++, total++;
    return q;
}
static void hk_free(void *p, void *u) {
    if (u != &tag) tag_ok = 0;
    if (p) live--;
    free(p);
}
#define ATTN_MALLOC(sz, u) hk_malloc(sz, u)
#define ATTN_REALLOC(p, sz, u) hk_realloc(p, sz, u)
#define ATTN_FREE(p, u) hk_free(p, u)
#else
#define ATTN_NO_MALLOC
#endif
#define ATTN_IMPLEMENTATION
#include "attn.h"

int main(void) {
    attn_context_desc d;
    attn_context *ctx;
    int i;
    memset(&d, 0, sizeof d);
#ifdef HOOKS
    (void)hk_realloc; /* the library may not need realloc */
    d.alloc_user = &tag;
    d.block_size = 4096;
    ctx = attn_context_create(&d);
    if (!ctx) { puts("hooks: no context"); return 1; }
    for (i = 0; i < 200; i++)
        if (!attn_alloc(ctx, 1000)) { printf("hooks: alloc %d failed: %s\n", i, attn_error_message(ctx)); return 1; }
    attn_context_destroy(ctx);
    printf("hooks: %ld allocations, %ld live after destroy, user pointer %s\n", total, live,
           tag_ok ? "passed through" : "WRONG");
    return !(total > 1 && live == 0 && tag_ok);
#else
    {
        static unsigned char mem[64 * 1024];
        if (attn_context_create(NULL) != NULL) { puts("no-malloc: a context without memory"); return 1; }
        d.memory = mem;
        d.memory_size = sizeof mem;
        ctx = attn_context_create(&d);
        if (!ctx) { puts("no-malloc: no context in 64 KiB"); return 1; }
        for (i = 0; i < 10; i++)
            if (!attn_alloc(ctx, 1000)) { puts("no-malloc: alloc failed"); return 1; }
        if (attn_alloc(ctx, 1 << 20) != NULL || attn_error_status(ctx) != ATTN_ERR_OUT_OF_MEMORY) {
            puts("no-malloc: 1 MiB from a 64 KiB arena did not fail with out of memory");
            return 1;
        }
        attn_context_destroy(ctx);
        puts("no-malloc: ok");
        return 0;
    }
#endif
}
