/* tools/fuzz/fuzz_npy.c - libFuzzer target for the .npy parser and writer:
   attn_npy_parse, attn_npy_bytes, attn_npy_write.

       clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
           -I. tools/fuzz/fuzz_npy.c -o build/fuzz_npy -lm
       build/fuzz_npy -max_len=32768 -dict=tools/fuzz/npy.dict CORPUS_DIR tools/fuzz/corpus/npy

   The context lives in a fixed static buffer, so a size read from the input can
   only make an allocation fail. Besides the sanitizers' checks, every input
   must satisfy (abort() otherwise):
   - a failure leaves a status and a non-empty message, never "out of memory"
     (the data a valid file holds is at most the input, far below the arena);
   - a parsed tensor is contiguous, 0..4 dims, no negative dim, its data was in
     the input (elements x 4 <= input size) and is a copy (not a pointer into
     the input), equal to the bytes right after the header;
   - attn_npy_bytes is plausible, attn_npy_write into exactly that many bytes
     succeeds (into one byte less fails with a message, writing nothing past
     it: the buffers are malloc'd to the byte, so ASan sees any overrun), and
     parsing what it wrote gives the same shape and the same bits. */
#define ATTN_IMPLEMENTATION
#include "attn.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_MEM (8u << 20)
static unsigned char mem[FUZZ_MEM];

static void fuzz_die(const char *what, attn_context *ctx) {
    fprintf(stderr, "fuzz_npy: %s (status %s, message \"%s\")\n", what,
            ctx ? attn_status_name(attn_error_status(ctx)) : "-", ctx ? attn_error_message(ctx) : "");
    abort();
}
#define FUZZ_CHECK(cond, what, ctx) \
    do {                            \
        if (!(cond)) fuzz_die(what, ctx); \
    } while (0)

static void fuzz_failed(attn_context *ctx, attn_status st, const char *what) {
    FUZZ_CHECK(st != ATTN_OK, what, ctx);
    FUZZ_CHECK(attn_error_status(ctx) == st, "returned status differs from the context's", ctx);
    FUZZ_CHECK(attn_error_message(ctx)[0] != 0, "an error without a message", ctx);
    attn_error_clear(ctx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    attn_context_desc d;
    attn_context *ctx;
    attn_tensor *t, *u;
    size_t numel, n, hdr_end = 0;
    unsigned char *out, *out1;
    int k;
    memset(&d, 0, sizeof d);
    d.memory = mem;
    d.memory_size = FUZZ_MEM;
    ctx = attn_context_create(&d);
    if (!ctx) fuzz_die("no context", NULL);

    t = attn_npy_parse(ctx, data, size);
    if (!t) {
        FUZZ_CHECK(attn_error_status(ctx) != ATTN_ERR_OUT_OF_MEMORY,
                   "the parser ran out of memory (allocated by a size it had not checked?)", ctx);
        fuzz_failed(ctx, attn_error_status(ctx), "parse returned NULL");
        attn_context_destroy(ctx);
        return 0;
    }
    FUZZ_CHECK(t->ndim >= 0 && t->ndim <= ATTN_MAX_DIMS, "ndim out of range", ctx);
    numel = 1;
    for (k = 0; k < t->ndim; k++) {
        FUZZ_CHECK(t->shape[k] >= 0, "a negative dim", ctx);
        if (t->shape[k] == 0) numel = 0;
    }
    for (k = 0; numel && k < t->ndim; k++) {
        FUZZ_CHECK(numel <= size / (size_t)t->shape[k], "more elements than the input holds", ctx);
        numel *= (size_t)t->shape[k];
    }
    FUZZ_CHECK(numel == attn_tensor_numel(t) && numel * 4 <= size, "more elements than the input holds", ctx);
    FUZZ_CHECK(attn_tensor_is_contiguous(t), "a parsed tensor is not contiguous", ctx);
    FUZZ_CHECK(numel == 0 || (const uint8_t *)t->data + numel * 4 <= data || (const uint8_t *)t->data >= data + size,
               "the tensor points into the input (the header says it is copied)", ctx);
    /* the data is the bytes right after the header */
    if (size >= 10 && data[6] == 1) hdr_end = 10 + ((size_t)data[8] | (size_t)data[9] << 8);
    else if (size >= 12) hdr_end = 12 + ((size_t)data[8] | (size_t)data[9] << 8 | (size_t)data[10] << 16 | (size_t)data[11] << 24);
    FUZZ_CHECK(hdr_end <= size && numel * 4 <= size - hdr_end, "the data is not inside the input", ctx);
    FUZZ_CHECK(numel == 0 || memcmp(t->data, data + hdr_end, numel * 4) == 0, "the data is not the bytes after the header",
               ctx);

    /* write, and parse back */
    n = attn_npy_bytes(t);
    FUZZ_CHECK(n >= 10 + numel * 4 && n <= numel * 4 + 4096, "implausible attn_npy_bytes", ctx);
    out = (unsigned char *)malloc(n);
    out1 = (unsigned char *)malloc(n - 1);
    if (!out || !out1) abort();
    if (attn_npy_write(ctx, t, out, n) != ATTN_OK) fuzz_die("write failed", ctx);
    fuzz_failed(ctx, attn_npy_write(ctx, t, out1, n - 1), "a write into one byte less succeeded");
    u = attn_npy_parse(ctx, out, n);
    if (!u) fuzz_die("what attn_npy_write wrote does not parse", ctx);
    FUZZ_CHECK(u->ndim == t->ndim, "the rank did not come back", ctx);
    for (k = 0; k < t->ndim; k++) FUZZ_CHECK(u->shape[k] == t->shape[k], "the shape did not come back", ctx);
    FUZZ_CHECK(numel == 0 || memcmp(u->data, t->data, numel * 4) == 0, "the data did not come back", ctx);
    free(out);
    free(out1);
    attn_context_destroy(ctx);
    return 0;
}
