/* tests/test_memory.c - arenas (fixed and growing), contexts in caller memory,
   and the no-malloc promise: with the allocator hooks switched to failing
   mode, a context over a caller buffer must run tensors, views, init and the
   kernels without a single allocator call. tests/main.c routes ATTN_MALLOC /
   ATTN_REALLOC / ATTN_FREE to test_alloc_*, which count calls. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

static int aligned_to(const void *p, size_t align) { return ((uintptr_t)p & (align - 1)) == 0; }

/* ------------------------------------------------------------------------
   Fixed arenas */

TEST(arena_fixed_alignment_1_to_4096) {
    /* Over a buffer that starts one byte past malloc's alignment ("any
       alignment" per the header). Each allocation must be aligned, inside the
       buffer, after the previous one, and keep its bytes (no overlap). */
    enum { SIZE = 64 * 1024 };
    unsigned char *mem = (unsigned char *)malloc(SIZE + 1), *buf = mem + 1;
    unsigned char *ptrs[13];
    size_t align, bytes = 13;
    attn_arena arena;
    int i, n = 0, bad = 0;
    if (!CHECK(mem != NULL, "out of memory")) return;
    attn_arena_init_buffer(&arena, buf, SIZE);
    CHECK(attn_arena_used(&arena) == 0 && attn_arena_peak(&arena) == 0, "a new arena is not empty");
    for (align = 1; align <= 4096; align *= 2, n++) {
        unsigned char *p = (unsigned char *)attn_arena_alloc(&arena, bytes, align);
        ptrs[n] = p;
        if (!CHECK(p != NULL, "align %d: NULL with room left", (int)align)) break;
        CHECK(aligned_to(p, align), "align %d: pointer %p misaligned", (int)align, (void *)p);
        CHECK(p >= buf && p + bytes <= buf + SIZE, "align %d: pointer outside the buffer", (int)align);
        CHECK(n == 0 || ptrs[n - 1] == NULL || p >= ptrs[n - 1] + bytes, "align %d: overlaps the previous allocation",
              (int)align);
        CHECK(attn_arena_used(&arena) == (size_t)(p + bytes - buf), "align %d: used %d, want %d (padding included)",
              (int)align, (int)attn_arena_used(&arena), (int)(p + bytes - buf));
        memset(p, n + 1, bytes);
    }
    for (i = 0; i < n; i++)
        if (ptrs[i]) {
            size_t j;
            for (j = 0; j < bytes; j++) bad += ptrs[i][j] != (unsigned char)(i + 1);
        }
    CHECK(bad == 0, "%d bytes of earlier allocations were overwritten by later ones", bad);
    /* align 0 means 64; a non-power of two is refused and changes nothing */
    {
        size_t before = attn_arena_used(&arena);
        void *p = attn_arena_alloc(&arena, 8, 0);
        CHECK(p != NULL && aligned_to(p, 64), "align 0 must mean 64");
        before = attn_arena_used(&arena);
        CHECK(attn_arena_alloc(&arena, 8, 3) == NULL && attn_arena_alloc(&arena, 8, 48) == NULL,
              "a non-power-of-two alignment must give NULL");
        CHECK(attn_arena_used(&arena) == before, "a refused alignment changed used()");
    }
    free(mem);
}

TEST(arena_fixed_exhaustion_and_accounting) {
    static unsigned char buf[1000];
    attn_arena arena;
    int n = 0;
    size_t used;
    attn_arena_init_buffer(&arena, buf, sizeof buf);
    while (attn_arena_alloc(&arena, 100, 1) != NULL && n < 100) n++;
    CHECK(n == 10, "1000 bytes gave %d allocations of 100 (align 1), want 10", n);
    CHECK(attn_arena_used(&arena) == 1000 && attn_arena_peak(&arena) == 1000, "used %d peak %d, want 1000",
          (int)attn_arena_used(&arena), (int)attn_arena_peak(&arena));
    used = attn_arena_used(&arena);
    CHECK(attn_arena_alloc(&arena, 1, 1) == NULL, "a full arena gave one more byte");
    CHECK(attn_arena_alloc(&arena, (size_t)-1, 1) == NULL && attn_arena_alloc(&arena, (size_t)-1 / 2, 4096) == NULL,
          "a huge request did not return NULL");
    CHECK(attn_arena_used(&arena) == used, "failed allocations changed used()");
    /* release of a fixed arena empties it */
    attn_arena_release(&arena);
    CHECK(attn_arena_used(&arena) == 0, "release did not empty the fixed arena");
    CHECK(attn_arena_alloc(&arena, 1000, 1) == buf, "after release the whole buffer is not available again");
    /* NULL buffer: an arena with no room */
    attn_arena_init_buffer(&arena, NULL, 123);
    CHECK(attn_arena_alloc(&arena, 1, 1) == NULL, "an arena over NULL gave memory");
}

TEST(arena_fixed_mark_reset_reuse) {
    static unsigned char buf[4096];
    attn_arena arena;
    attn_arena_pos m0, m1;
    unsigned char *a, *b, *c, *again;
    attn_arena_init_buffer(&arena, buf, sizeof buf);
    m0 = attn_arena_mark(&arena);
    a = (unsigned char *)attn_arena_alloc(&arena, 300, 1);
    m1 = attn_arena_mark(&arena);
    b = (unsigned char *)attn_arena_alloc(&arena, 1000, 1);
    c = (unsigned char *)attn_arena_alloc(&arena, 500, 16);
    if (!CHECK(a && b && c, "allocations failed")) return;
    CHECK(attn_arena_used(&arena) >= 1800 && attn_arena_used(&arena) <= 1815, "used %d, want 1800 + padding",
          (int)attn_arena_used(&arena));
    attn_arena_reset(&arena, m1);
    CHECK(attn_arena_used(&arena) == 300, "reset to a mark after 300 bytes: used %d", (int)attn_arena_used(&arena));
    CHECK(attn_arena_peak(&arena) >= 1800, "reset lowered the peak to %d", (int)attn_arena_peak(&arena));
    again = (unsigned char *)attn_arena_alloc(&arena, 1000, 1);
    CHECK(again == b, "after reset the same request did not reuse the same bytes");
    attn_arena_reset(&arena, m0);
    CHECK(attn_arena_used(&arena) == 0, "reset to the first mark: used %d", (int)attn_arena_used(&arena));
    CHECK(attn_arena_alloc(&arena, 4096, 1) == buf, "after reset to the start the whole buffer is free again");
    CHECK(attn_arena_peak(&arena) == 4096, "peak %d, want 4096", (int)attn_arena_peak(&arena));
}

/* ------------------------------------------------------------------------
   Growing arenas, on a counting allocator of their own (alloc_user) */

TEST(arena_growing_blocks_marks_release) {
    test_allocator al;
    attn_arena arena;
    attn_arena_pos start, mid;
    unsigned char *ptrs[40];
    size_t sizes[40], total = 0;
    long mallocs_before_reuse;
    int i, bad = 0;
    memset(&al, 0, sizeof al);
    attn_arena_init_growing(&arena, 1024, &al);
    start = attn_arena_mark(&arena);
    CHECK(al.mallocs == 0, "init_growing allocated eagerly");
    for (i = 0; i < 40; i++) {
        sizes[i] = (size_t)(i % 5 == 4 ? 5000 : 100 + 37 * i); /* some larger than the block size */
        if (i == 20) mid = attn_arena_mark(&arena);
        ptrs[i] = (unsigned char *)attn_arena_alloc(&arena, sizes[i], i % 3 == 0 ? 4096 : 16);
        if (!CHECK(ptrs[i] != NULL, "growing alloc %d of %d bytes failed", i, (int)sizes[i])) return;
        CHECK(aligned_to(ptrs[i], i % 3 == 0 ? 4096 : 16), "growing alloc %d misaligned", i);
        memset(ptrs[i], i + 1, sizes[i]);
        total += sizes[i];
    }
    for (i = 0; i < 40; i++) {
        size_t j;
        for (j = 0; j < sizes[i]; j++) bad += ptrs[i][j] != (unsigned char)(i + 1);
    }
    CHECK(bad == 0, "%d bytes overwritten across blocks", bad);
    CHECK(al.mallocs >= 8, "40 allocations of ~1-5 KiB from 1 KiB blocks made only %ld blocks", al.mallocs);
    CHECK(al.live == al.mallocs && al.frees == 0, "blocks freed while in use (%ld live of %ld)", al.live, al.mallocs);
    CHECK(attn_arena_used(&arena) >= total, "used %d < %d bytes handed out", (int)attn_arena_used(&arena), (int)total);
    CHECK(attn_arena_peak(&arena) >= attn_arena_used(&arena), "peak below used");
    /* back to the middle: used returns to what it was there, and the same
       requests again are served from the blocks already held */
    {
        size_t used_at_mid;
        attn_arena_reset(&arena, mid);
        used_at_mid = attn_arena_used(&arena);
        attn_arena_reset(&arena, start);
        CHECK(attn_arena_used(&arena) == 0, "reset to the start: used %d", (int)attn_arena_used(&arena));
        mallocs_before_reuse = al.mallocs;
        for (i = 0; i < 20; i++) attn_arena_alloc(&arena, sizes[i], i % 3 == 0 ? 4096 : 16);
        CHECK(attn_arena_used(&arena) == used_at_mid, "replaying the first 20 allocations: used %d, was %d",
              (int)attn_arena_used(&arena), (int)used_at_mid);
        for (; i < 40; i++) {
            unsigned char *p = (unsigned char *)attn_arena_alloc(&arena, sizes[i], i % 3 == 0 ? 4096 : 16);
            CHECK(p != NULL, "replay alloc %d failed", i);
        }
        CHECK(al.mallocs == mallocs_before_reuse, "replaying the same allocations after reset made %ld new blocks",
              al.mallocs - mallocs_before_reuse);
    }
    attn_arena_release(&arena);
    CHECK(al.live == 0, "release left %ld blocks unfreed", al.live);
    CHECK(attn_arena_used(&arena) == 0, "release: used %d", (int)attn_arena_used(&arena));
    /* usable again after release */
    CHECK(attn_arena_alloc(&arena, 3000, 64) != NULL, "alloc after release failed");
    attn_arena_release(&arena);
    CHECK(al.live == 0, "second release left %ld blocks", al.live);
}

TEST(arena_growing_allocator_failure) {
    test_allocator al;
    attn_arena arena;
    memset(&al, 0, sizeof al);
    al.fail = 1;
    attn_arena_init_growing(&arena, 0, &al); /* 0: the 1 MiB default */
    CHECK(attn_arena_alloc(&arena, 10, 8) == NULL, "alloc with a failing allocator did not return NULL");
    CHECK(attn_arena_used(&arena) == 0, "a failed alloc changed used()");
    CHECK(al.mallocs >= 1, "the arena did not use the allocator passed as alloc_user");
    al.fail = 0;
    CHECK(attn_arena_alloc(&arena, 10, 8) != NULL, "alloc after the allocator recovered failed");
    al.fail = 1; /* the first block has room: no allocator call needed */
    CHECK(attn_arena_alloc(&arena, 1000, 8) != NULL, "alloc inside the current block needed the allocator");
    CHECK(attn_arena_alloc(&arena, (size_t)2 << 20, 8) == NULL, "a new block from a failing allocator");
    al.fail = 0;
    /* sizes near SIZE_MAX must not wrap into a small block */
    {
        size_t used = attn_arena_used(&arena);
        CHECK(attn_arena_alloc(&arena, (size_t)-1, 64) == NULL && attn_arena_alloc(&arena, (size_t)-1 - 70, 64) == NULL &&
              attn_arena_alloc(&arena, (size_t)-1 - 200, 4096) == NULL && attn_arena_alloc(&arena, (size_t)-1 / 2, 8) == NULL,
              "a request near SIZE_MAX did not return NULL");
        CHECK(attn_arena_used(&arena) == used, "refused huge requests changed used()");
    }
    attn_arena_release(&arena);
    CHECK(al.live == 0, "release left %ld blocks", al.live);
}

/* ------------------------------------------------------------------------
   Contexts */

TEST(context_caller_memory_runs_out_cleanly) {
    enum { SIZE = 64 * 1024 };
    static unsigned char mem[SIZE];
    attn_context_desc d;
    attn_context *ctx;
    attn_arena_pos mark;
    int n = 0;
    memset(&d, 0, sizeof d);
    d.memory = mem;
    d.memory_size = SIZE;
    ctx = attn_context_create(&d);
    if (!CHECK(ctx != NULL, "context over 64 KiB failed")) return;
    CHECK((unsigned char *)ctx >= mem && (unsigned char *)ctx < mem + SIZE, "the context is not in the caller's memory");
    mark = attn_arena_mark(attn_context_arena(ctx));
    for (;;) {
        attn_tensor *t = attn_tensor_2d(ctx, 16, 16);
        if (!t) break;
        CHECK((unsigned char *)t->data >= mem && (unsigned char *)(t->data + 256) <= mem + SIZE,
              "tensor %d's data lies outside the caller's memory", n);
        if (++n > 1000) break;
    }
    CHECK(n >= 50 && n < 64, "64 KiB held %d tensors of 1 KiB", n);
    CHECK(attn_error_status(ctx) == ATTN_ERR_OUT_OF_MEMORY, "status after running out: %s",
          attn_status_name(attn_error_status(ctx)));
    CHECK(attn_error_message(ctx)[0] != 0, "no message after running out");
    CHECK(attn_alloc(ctx, SIZE) == NULL && attn_error_status(ctx) == ATTN_ERR_OUT_OF_MEMORY, "attn_alloc of too much");
    /* the context stays usable after an arena reset */
    attn_arena_reset(attn_context_arena(ctx), mark);
    attn_error_clear(ctx);
    CHECK(attn_error_status(ctx) == ATTN_OK && attn_error_message(ctx)[0] == 0, "attn_error_clear left %s: '%s'",
          attn_status_name(attn_error_status(ctx)), attn_error_message(ctx));
    {
        attn_tensor *t = attn_tensor_2d(ctx, 16, 16);
        CHECK(t != NULL && attn_error_status(ctx) == ATTN_OK, "after reset a tensor could not be made");
        if (t) CHECK(t->data[0] == 0.0f && t->data[255] == 0.0f, "a reused tensor is not zero-filled");
    }
    attn_context_destroy(ctx); /* caller memory: nothing to free, must not crash */
}

TEST(context_caller_memory_too_small) {
    static unsigned char mem[4096 + 64];
    unsigned char *aligned = mem + ((64 - ((uintptr_t)mem & 63)) & 63); /* 64-aligned: no padding needed */
    size_t need = attn_context_overhead(), sizes[4], off;
    attn_context_desc d;
    int i;
    if (!CHECK(need >= 64 && need + 64 <= 4096, "attn_context_overhead() = %d is implausible", (int)need)) return;
    sizes[0] = 0; sizes[1] = 16; sizes[2] = need - 64; /* sizeof(attn_context) - 1 */
    sizes[3] = 1;
    memset(&d, 0, sizeof d);
    for (i = 0; i < 4; i++) {
        d.memory = aligned;
        d.memory_size = sizes[i];
        CHECK(attn_context_create(&d) == NULL, "a context fit in %d bytes (overhead says %d)", (int)sizes[i], (int)need);
    }
    /* overhead() bytes are enough at any alignment of the buffer */
    for (off = 0; off < 64; off++) {
        attn_context *ctx;
        d.memory = mem + off;
        d.memory_size = need;
        ctx = attn_context_create(&d);
        if (!CHECK(ctx != NULL, "attn_context_overhead() bytes at offset %d are not enough", (int)off)) break;
        CHECK(attn_tensor_1d(ctx, 1) == NULL && attn_error_status(ctx) == ATTN_ERR_OUT_OF_MEMORY,
              "a context with no arena room made a tensor (offset %d)", (int)off);
        attn_context_destroy(ctx);
    }
}

/* ------------------------------------------------------------------------
   No malloc, ever, with caller memory */

TEST(nomalloc_caller_memory_never_calls_the_allocator) {
    enum { SIZE = 512 * 1024, N = 96 };
    static unsigned char mem[SIZE];
    static float x[N * N], y[N * N], z[N * N], stats[2 * N];
    test_allocator *g = test_allocator_global();
    long calls_before = test_alloc_calls();
    attn_context_desc d;
    attn_context *ctx;
    int shape[3] = { 4, 6, 8 }, reshape[2] = { -1, 8 }, idx[2] = { 1, 2 }, i;
    g->fail = 1; /* any allocator call now also fails, so it cannot go unnoticed */
    memset(&d, 0, sizeof d);
    d.memory = mem;
    d.memory_size = SIZE;
    d.seed = 42;
    ctx = attn_context_create(&d);
    if (CHECK(ctx != NULL, "context over caller memory failed")) {
        attn_tensor *a = attn_tensor_new(ctx, 3, shape), *b = attn_tensor_1d(ctx, 10), *c = attn_tensor_2d(ctx, N, N);
        attn_tensor *d4 = attn_tensor_4d(ctx, 2, 3, 4, 5), *w = attn_tensor_wrap(ctx, 2, shape, x);
        attn_tensor *e = attn_tensor_3d(ctx, 2, 3, 4), *r, *t, *s, *cc;
        attn_arena_pos mark = attn_arena_mark(attn_context_arena(ctx));
        CHECK(a && b && c && d4 && w && e, "tensor creation failed: %s", attn_error_message(ctx));
        r = attn_reshape(ctx, a, 2, reshape);
        t = attn_transpose(ctx, c, 0, 1);
        s = attn_slice(ctx, c, 1, 3, 50);
        cc = attn_tensor_contiguous(ctx, t);
        CHECK(r && t && s && cc, "views failed: %s", attn_error_message(ctx));
        if (a && b && c && t && s && cc && w) {
            attn_tensor_fill(s, 2.0f);
            attn_tensor_copy(ctx, cc, t);
            attn_tensor_elem(c, idx);
            attn_init_uniform(ctx, b, -1.0f, 1.0f);
            attn_init_normal(ctx, c, 0.0f, 1.0f);
            attn_init_xavier_uniform(ctx, c, 1.0f);
            attn_init_xavier_normal(ctx, a, 1.0f);
            attn_init_kaiming_uniform(ctx, c, 2.2360679f);
            attn_init_kaiming_normal(ctx, w, 0.0f);
            attn_rng_normal(attn_context_rng(ctx));
            /* kernels, public and per set */
            for (i = 0; i < N * N; i++) { x[i] = (float)(i % 17) * 0.1f - 0.8f; y[i] = (float)(i % 13) * 0.1f; }
            attn_sgemm(0, 1, N, N, N, 1.0f, x, N, y, N, 0.0f, z, N);
            attn_sgemm_mt(attn_context_threads(ctx), 1, 0, N, N, N, 1.0f, x, N, y, N, 0.5f, z, N);
            attn_kernels_get(ATTN_SIMD_NONE)->sgemm(0, 0, N, N, N, 1.0f, x, N, y, N, 0.0f, z, N);
            attn_softmax_rows(attn_context_threads(ctx), N, N, x, N, z, N);
            attn_log_softmax_rows(NULL, N, N, x, N, z, N);
            attn_layernorm_rows(NULL, N, N, x, N, y, y, 1e-5f, z, N, stats, stats + N);
            attn_vec_gelu(N * N, x, z);
            attn_vec_exp(N * N, x, z);
            attn_vec_add(N, x, y, z);
            attn_vec_axpy(N, 0.5f, x, z);
            (void)attn_vec_dot(N, x, y);
            (void)attn_alloc(ctx, 1000);
        }
        attn_arena_reset(attn_context_arena(ctx), mark);
        attn_context_destroy(ctx);
    }
    g->fail = 0;
    CHECK(test_alloc_calls() == calls_before, "%ld allocator calls with caller memory (want 0)",
          test_alloc_calls() - calls_before);
}

TEST(nomalloc_growing_context_with_failing_allocator) {
    test_allocator al;
    attn_context_desc d;
    attn_context *ctx;
    long global_before = test_alloc_calls();
    memset(&al, 0, sizeof al);
    memset(&d, 0, sizeof d);
    d.alloc_user = &al;
    d.block_size = 4096;
    /* no memory for the context itself: NULL, cleanly */
    al.fail = 1;
    ctx = attn_context_create(&d);
    CHECK(ctx == NULL, "attn_context_create with a failing allocator returned a context");
    CHECK(al.mallocs >= 1, "the context did not ask the allocator given as alloc_user");
    CHECK(test_alloc_calls() == global_before, "the global allocator was used instead of alloc_user");
    /* the context gets its memory, its first arena block does not */
    memset(&al, 0, sizeof al);
    al.fail_after = 1;
    ctx = attn_context_create(&d);
    if (CHECK(ctx != NULL, "attn_context_create failed with one allocation available")) {
        attn_tensor *t = attn_tensor_2d(ctx, 8, 8);
        CHECK(t == NULL, "a tensor without memory");
        CHECK(attn_error_status(ctx) == ATTN_ERR_OUT_OF_MEMORY && attn_error_message(ctx)[0] != 0,
              "status %s, message '%s' after the allocator failed", attn_status_name(attn_error_status(ctx)),
              attn_error_message(ctx));
        al.fail = 0; /* the allocator recovers: the context works */
        attn_error_clear(ctx);
        t = attn_tensor_2d(ctx, 8, 8);
        CHECK(t != NULL && attn_error_status(ctx) == ATTN_OK, "after the allocator recovered: %s", attn_error_message(ctx));
        t = attn_tensor_2d(ctx, 100, 100); /* bigger than a block */
        CHECK(t != NULL, "a tensor larger than the block size failed: %s", attn_error_message(ctx));
        attn_context_destroy(ctx);
    }
    CHECK(al.live == 0, "attn_context_destroy left %ld allocations", al.live);
    /* and the default path (alloc_user NULL) goes through the global hooks */
    {
        long before = test_allocator_global()->mallocs;
        ctx = attn_context_create(NULL);
        CHECK(ctx != NULL && test_allocator_global()->mallocs > before, "attn_context_create(NULL) did not use ATTN_MALLOC");
        attn_context_destroy(ctx);
        attn_context_destroy(NULL); /* allowed */
    }
}

TEST_GROUP(memory) = {
    TEST_ENTRY(arena_fixed_alignment_1_to_4096),
    TEST_ENTRY(arena_fixed_exhaustion_and_accounting),
    TEST_ENTRY(arena_fixed_mark_reset_reuse),
    TEST_ENTRY(arena_growing_blocks_marks_release),
    TEST_ENTRY(arena_growing_allocator_failure),
    TEST_ENTRY(context_caller_memory_runs_out_cleanly),
    TEST_ENTRY(context_caller_memory_too_small),
    TEST_ENTRY(nomalloc_caller_memory_never_calls_the_allocator),
    TEST_ENTRY(nomalloc_growing_context_with_failing_allocator),
    TEST_END
};
