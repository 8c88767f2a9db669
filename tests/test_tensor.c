/* tests/test_tensor.c - tensors and views, the RNG and the initialisers,
   status names and error messages.

   Tensors here live in contexts over caller memory pre-filled with garbage,
   so "zero-filled" is really tested and a bad size can never turn into a
   multi-gigabyte malloc. Expected element positions are computed here from
   the shape alone (row-major), never read back from the library's strides. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

#define CTX_SIZE (1024 * 1024)
static unsigned char ctx_mem[CTX_SIZE];

/* A fresh context over ctx_mem, every byte of which is 0xA5 first. */
static attn_context *fresh_ctx(uint64_t seed) {
    attn_context_desc d;
    memset(ctx_mem, 0xA5, sizeof ctx_mem);
    memset(&d, 0, sizeof d);
    d.memory = ctx_mem;
    d.memory_size = sizeof ctx_mem;
    d.seed = seed;
    return attn_context_create(&d);
}

/* the row-major offset of index in shape, computed independently */
static size_t rm_offset(int ndim, const int *shape, const int *index) {
    size_t off = 0;
    int d;
    for (d = 0; d < ndim; d++) off = off * (size_t)shape[d] + (size_t)index[d];
    return off;
}

/* failure with a status among the allowed ones and a message */
static int failed_with(attn_context *ctx, attn_status a, attn_status b) {
    attn_status s = attn_error_status(ctx);
    return (s == a || s == b) && attn_error_message(ctx)[0] != 0;
}

/* ------------------------------------------------------------------------ */
TEST(tensor_new_shapes_strides_zero_fill) {
    attn_context *ctx = fresh_ctx(1);
    attn_tensor *t[5];
    int k, d;
    if (!CHECK(ctx != NULL, "context")) return;
    t[0] = attn_tensor_new(ctx, 0, NULL); /* a scalar */
    t[1] = attn_tensor_1d(ctx, 5);
    t[2] = attn_tensor_2d(ctx, 3, 4);
    t[3] = attn_tensor_3d(ctx, 2, 3, 4);
    t[4] = attn_tensor_4d(ctx, 2, 3, 4, 5);
    for (k = 0; k < 5; k++) {
        static const int shapes[5][4] = { { 0 }, { 5 }, { 3, 4 }, { 2, 3, 4 }, { 2, 3, 4, 5 } };
        const int *shape = shapes[k];
        size_t numel = 1, i;
        int nonzero = 0, expect_stride = 1;
        if (!CHECK(t[k] != NULL, "%dd tensor failed: %s", k, attn_error_message(ctx))) continue;
        CHECK(t[k]->ndim == k && t[k]->dtype == ATTN_F32, "ndim %d, want %d", t[k]->ndim, k);
        for (d = k - 1; d >= 0; d--) {
            CHECK(t[k]->shape[d] == shape[d] && t[k]->stride[d] == expect_stride, "%dd: dim %d shape %d stride %d, want %d %d",
                  k, d, t[k]->shape[d], t[k]->stride[d], shape[d], expect_stride);
            expect_stride *= shape[d];
            numel *= (size_t)shape[d];
        }
        for (d = k; d < ATTN_MAX_DIMS; d++)
            CHECK(t[k]->shape[d] == 1 && t[k]->stride[d] == 0, "%dd: unused dim %d has shape %d stride %d", k, d,
                  t[k]->shape[d], t[k]->stride[d]);
        CHECK(attn_tensor_numel(t[k]) == numel, "%dd: numel %d, want %d", k, (int)attn_tensor_numel(t[k]), (int)numel);
        CHECK(attn_tensor_is_contiguous(t[k]), "%dd: a new tensor is not contiguous", k);
        CHECK(((uintptr_t)t[k]->data & 63) == 0, "%dd: data not 64-byte aligned", k);
        for (i = 0; i < numel; i++) nonzero += t[k]->data[i] != 0.0f;
        CHECK(nonzero == 0, "%dd: %d elements not zero (memory was 0xA5 garbage)", k, nonzero);
    }
    attn_context_destroy(ctx);
}

/* Zero-sized dims are fine, and a new tensor is contiguous whatever its shape
   (the header: "a zero-filled contiguous tensor"; PyTorch agrees:
   torch.empty(7, 0).is_contiguous() is True), so it can be reshaped. */
TEST(tensor_empty_tensors_are_contiguous) {
    attn_context *ctx = fresh_ctx(1);
    static const int empty_shapes[4][3] = { { 0, 7, 1 }, { 7, 0, 1 }, { 2, 0, 3 }, { 2, 3, 0 } };
    int e;
    if (!CHECK(ctx != NULL, "context")) return;
    for (e = 0; e < 4; e++) {
        attn_tensor *z = attn_tensor_new(ctx, 3, empty_shapes[e]);
        int to[2] = { 0, 5 };
        if (!CHECK(z != NULL, "a %dx%dx%d tensor failed", empty_shapes[e][0], empty_shapes[e][1], empty_shapes[e][2]))
            continue;
        CHECK(attn_tensor_numel(z) == 0 && z->shape[0] == empty_shapes[e][0] && z->shape[1] == empty_shapes[e][1] &&
              z->shape[2] == empty_shapes[e][2], "a %dx%dx%d tensor has the wrong shape or numel", empty_shapes[e][0],
              empty_shapes[e][1], empty_shapes[e][2]);
        CHECK(attn_tensor_is_contiguous(z), "a new %dx%dx%d tensor is not contiguous", empty_shapes[e][0],
              empty_shapes[e][1], empty_shapes[e][2]);
        attn_error_clear(ctx);
        CHECK(attn_reshape(ctx, z, 2, to) != NULL, "a new %dx%dx%d tensor cannot be reshaped to 0x5: %s",
              empty_shapes[e][0], empty_shapes[e][1], empty_shapes[e][2], attn_error_message(ctx));
    }
    attn_context_destroy(ctx);
}

TEST(tensor_bad_shapes_fail_cleanly) {
    attn_context *ctx = fresh_ctx(1);
    struct bad {
        const char *what;
        int ndim;
        int shape[5];
        int null_shape;
        attn_status s1, s2; /* accepted statuses */
    } cases[] = {
        { "negative dim", 2, { 3, -1 }, 0, ATTN_ERR_SHAPE, ATTN_ERR_INVALID_ARGUMENT },
        { "negative first dim", 3, { -5, 2, 2 }, 0, ATTN_ERR_SHAPE, ATTN_ERR_INVALID_ARGUMENT },
        { "ndim 5", 5, { 1, 1, 1, 1, 1 }, 0, ATTN_ERR_INVALID_ARGUMENT, ATTN_ERR_SHAPE },
        { "ndim -1", -1, { 1 }, 0, ATTN_ERR_INVALID_ARGUMENT, ATTN_ERR_SHAPE },
        { "NULL shape", 2, { 0 }, 1, ATTN_ERR_INVALID_ARGUMENT, ATTN_ERR_INVALID_ARGUMENT },
        { "2^31 elements", 2, { 65536, 32768 }, 0, ATTN_ERR_SHAPE, ATTN_ERR_INVALID_ARGUMENT },
        { "46341^2 > 2^31-1", 2, { 46341, 46341 }, 0, ATTN_ERR_SHAPE, ATTN_ERR_INVALID_ARGUMENT },
        { "2^31 in 4 dims", 4, { 256, 256, 256, 128 }, 0, ATTN_ERR_SHAPE, ATTN_ERR_INVALID_ARGUMENT },
        { "2^62 in 2 dims", 2, { 0x7fffffff, 0x7fffffff }, 0, ATTN_ERR_SHAPE, ATTN_ERR_INVALID_ARGUMENT },
        /* fits the 2^31-1 limit but not 1 MiB of arena: out of memory (on a
           32-bit target its 8 GiB cannot even be counted: a shape error) */
        { "0x7fffffff elements", 1, { 0x7fffffff }, 0, ATTN_ERR_OUT_OF_MEMORY, ATTN_ERR_SHAPE },
        { "1M floats in 1 MiB", 2, { 1024, 1024 }, 0, ATTN_ERR_OUT_OF_MEMORY, ATTN_ERR_OUT_OF_MEMORY },
    };
    size_t c;
    float data[4];
    if (!CHECK(ctx != NULL, "context")) return;
    for (c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t used = attn_arena_used(attn_context_arena(ctx));
        attn_tensor *t;
        attn_error_clear(ctx);
        t = attn_tensor_new(ctx, cases[c].ndim, cases[c].null_shape ? NULL : cases[c].shape);
        CHECK(t == NULL, "attn_tensor_new with %s returned a tensor", cases[c].what);
        CHECK(failed_with(ctx, cases[c].s1, cases[c].s2), "attn_tensor_new with %s: status '%s', message '%s'",
              cases[c].what, attn_status_name(attn_error_status(ctx)), attn_error_message(ctx));
        CHECK(attn_arena_used(attn_context_arena(ctx)) == used, "attn_tensor_new with %s: arena use %d -> %d",
              cases[c].what, (int)used, (int)attn_arena_used(attn_context_arena(ctx)));
        if (cases[c].s1 == ATTN_ERR_OUT_OF_MEMORY) continue; /* wrap needs no data memory */
        attn_error_clear(ctx);
        t = attn_tensor_wrap(ctx, cases[c].ndim, cases[c].null_shape ? NULL : cases[c].shape, data);
        CHECK(t == NULL && failed_with(ctx, cases[c].s1, cases[c].s2), "attn_tensor_wrap with %s: %s / '%s'",
              cases[c].what, t ? "a tensor" : "NULL", attn_error_message(ctx));
        CHECK(attn_arena_used(attn_context_arena(ctx)) == used, "attn_tensor_wrap with %s changed arena use", cases[c].what);
    }
    /* the shorthands share the checks */
    attn_error_clear(ctx);
    CHECK(attn_tensor_2d(ctx, 4, -2) == NULL && attn_error_status(ctx) != ATTN_OK, "attn_tensor_2d(4, -2)");
    CHECK(attn_tensor_new(NULL, 1, cases[0].shape) == NULL, "a NULL context must give NULL");
    attn_context_destroy(ctx);
}

/* 2^30 + 1 floats are 2^32 + 4 bytes. Below the 2^31-1 element limit, but
   with a 32-bit size_t (armhf) a byte count computed as numel * 4 wraps to 4
   and would "fit" in any arena: a tensor claiming 2^30 elements over 4 bytes.
   In a 1 MiB arena the right answer is NULL, with out of memory (or a shape
   error: "too big for this platform"). */
TEST(tensor_byte_count_does_not_wrap) {
    attn_context *ctx = fresh_ctx(1);
    static const int shapes[3][2] = { { 0x40000001, 1 }, { 3, 357913942 }, { 0x40000000, 1 } };
    int i;
    if (!CHECK(ctx != NULL, "context")) return;
    for (i = 0; i < 3; i++) {
        size_t used = attn_arena_used(attn_context_arena(ctx));
        attn_tensor *t;
        attn_error_clear(ctx);
        t = attn_tensor_new(ctx, 2, shapes[i]);
        CHECK(t == NULL && failed_with(ctx, ATTN_ERR_OUT_OF_MEMORY, ATTN_ERR_SHAPE),
              "a %d x %d tensor in a 1 MiB arena: %s, status '%s' (%d-bit size_t)", shapes[i][0], shapes[i][1],
              t ? "returned a tensor" : "NULL", attn_status_name(attn_error_status(ctx)), (int)(8 * sizeof(size_t)));
        CHECK(attn_arena_used(attn_context_arena(ctx)) == used, "a %d x %d tensor: arena use %d -> %d", shapes[i][0],
              shapes[i][1], (int)used, (int)attn_arena_used(attn_context_arena(ctx)));
    }
    attn_context_destroy(ctx);
}

/* The sizing promise: a buffer of attn_context_overhead() plus the sum of
   attn_tensor_bytes() holds exactly those tensors, whatever the buffer's own
   alignment - and the bound stays close (within 256 bytes of the data). */
TEST(tensor_bytes_sizes_a_fixed_buffer) {
    static const int shapes[5][3] = { { 1, 1, 1 }, { 3, 5, 7 }, { 64, 64, 1 }, { 0, 3, 1 }, { 17, 1, 33 } };
    static unsigned char buf[64 * 1024 + 64];
    int bad[2] = { -1, 2 }, offset, k;
    size_t need = attn_context_overhead();
    for (k = 0; k < 5; k++) {
        size_t b = attn_tensor_bytes(3, shapes[k]);
        size_t data = (size_t)shapes[k][0] * shapes[k][1] * shapes[k][2] * sizeof(float);
        CHECK(b >= data && b <= data + 256, "attn_tensor_bytes(%d) = %d for %d data bytes", k, (int)b, (int)data);
        need += b;
    }
    CHECK(need <= sizeof buf - 64, "test buffer too small for %d bytes", (int)need);
    for (offset = 0; offset < 64; offset += 7) { /* every alignment of the caller's buffer */
        attn_context_desc d;
        attn_context *ctx;
        memset(&d, 0, sizeof d);
        d.memory = buf + offset;
        d.memory_size = need;
        ctx = attn_context_create(&d);
        if (!CHECK(ctx != NULL, "context in %d bytes at offset %d", (int)need, offset)) continue;
        for (k = 0; k < 5; k++)
            CHECK(attn_tensor_new(ctx, 3, shapes[k]) != NULL, "tensor %d did not fit at offset %d: %s", k, offset,
                  attn_error_message(ctx));
    }
    CHECK(attn_tensor_bytes(2, bad) == 0, "a negative dim must give 0 bytes");
    CHECK(attn_tensor_bytes(5, shapes[0]) == 0, "5 dims must give 0 bytes");
}

TEST(tensor_wrap_and_elem) {
    attn_context *ctx = fresh_ctx(1);
    float data[24];
    int shape[3] = { 2, 3, 4 }, i0, i1, i2, bad = 0;
    attn_tensor *w;
    if (!CHECK(ctx != NULL, "context")) return;
    for (i0 = 0; i0 < 24; i0++) data[i0] = (float)i0;
    w = attn_tensor_wrap(ctx, 3, shape, data);
    if (!CHECK(w != NULL, "wrap failed: %s", attn_error_message(ctx))) return;
    CHECK(w->data == data && data[5] == 5.0f, "wrap copied or cleared the caller's data");
    CHECK(attn_tensor_numel(w) == 24 && attn_tensor_is_contiguous(w), "wrap: numel %d", (int)attn_tensor_numel(w));
    for (i0 = 0; i0 < 2; i0++)
        for (i1 = 0; i1 < 3; i1++)
            for (i2 = 0; i2 < 4; i2++) {
                int idx[3];
                idx[0] = i0; idx[1] = i1; idx[2] = i2;
                bad += attn_tensor_elem(w, idx) != data + rm_offset(3, shape, idx);
            }
    CHECK(bad == 0, "%d elements at the wrong address", bad);
    {
        int out[6][3] = { { 2, 0, 0 }, { 0, 3, 0 }, { 0, 0, 4 }, { -1, 0, 0 }, { 0, -1, 0 }, { 0, 0, -1 } };
        for (i0 = 0; i0 < 6; i0++)
            CHECK(attn_tensor_elem(w, out[i0]) == NULL, "elem(%d, %d, %d) of a 2x3x4 tensor is not NULL", out[i0][0],
                  out[i0][1], out[i0][2]);
        CHECK(attn_tensor_elem(w, NULL) == NULL, "elem with a NULL index");
    }
    /* NULL data is an error unless there is nothing to point at */
    attn_error_clear(ctx);
    CHECK(attn_tensor_wrap(ctx, 3, shape, NULL) == NULL && failed_with(ctx, ATTN_ERR_INVALID_ARGUMENT, ATTN_ERR_INVALID_ARGUMENT),
          "wrap of NULL data: status %s", attn_status_name(attn_error_status(ctx)));
    shape[1] = 0;
    CHECK(attn_tensor_wrap(ctx, 3, shape, NULL) != NULL, "wrap of NULL data with 0 elements should work");
    attn_context_destroy(ctx);
}

TEST(tensor_reshape) {
    attn_context *ctx = fresh_ctx(1);
    attn_tensor *t, *r, *tr;
    int s2[2], s4[4], i;
    if (!CHECK(ctx != NULL, "context")) return;
    t = attn_tensor_3d(ctx, 2, 3, 4);
    if (!CHECK(t != NULL, "tensor")) return;
    for (i = 0; i < 24; i++) t->data[i] = (float)i;
    s2[0] = 6; s2[1] = -1;
    r = attn_reshape(ctx, t, 2, s2);
    if (CHECK(r != NULL, "reshape to (6, -1): %s", attn_error_message(ctx))) {
        int idx[2], bad = 0;
        CHECK(r->ndim == 2 && r->shape[0] == 6 && r->shape[1] == 4, "(6, -1) gave %d dims (%d, %d)", r->ndim, r->shape[0],
              r->shape[1]);
        CHECK(r->data == t->data, "reshape copied the data");
        for (idx[0] = 0; idx[0] < 6; idx[0]++)
            for (idx[1] = 0; idx[1] < 4; idx[1]++) bad += *attn_tensor_elem(r, idx) != (float)(idx[0] * 4 + idx[1]);
        CHECK(bad == 0, "%d elements of the reshaped view out of row-major order", bad);
        idx[0] = 5; idx[1] = 3;
        *attn_tensor_elem(r, idx) = -7.0f;
        CHECK(t->data[23] == -7.0f, "a write through the reshaped view is not seen in the base");
        CHECK(t->ndim == 3 && t->shape[0] == 2, "reshape changed the original tensor");
    }
    s4[0] = -1; s4[1] = 1; s4[2] = 2; s4[3] = 1;
    r = attn_reshape(ctx, t, 4, s4);
    CHECK(r && r->shape[0] == 12 && r->shape[2] == 2, "reshape to (-1, 1, 2, 1)");
    /* errors, each with a status and a message */
    {
        struct { const char *what; int ndim; int shape[4]; } bad[] = {
            { "two -1", 2, { -1, -1 } },
            { "24 into (5, -1)", 2, { 5, -1 } },
            { "24 into (4, 7)", 2, { 4, 7 } },
            { "24 into (25)", 1, { 25 } },
            { "a -2 dim", 2, { -2, -12 } },
            { "(0, -1)", 2, { 0, -1 } },
            { "5 dims", 5, { 1, 1, 1, 1 } },
        };
        size_t c;
        for (c = 0; c < sizeof bad / sizeof bad[0]; c++) {
            attn_error_clear(ctx);
            r = attn_reshape(ctx, t, bad[c].ndim, bad[c].shape);
            CHECK(r == NULL && failed_with(ctx, ATTN_ERR_SHAPE, ATTN_ERR_INVALID_ARGUMENT) &&
                      !strncmp(attn_error_message(ctx), "attn_reshape: ", 14), "reshape with %s: %s, '%s'",
                  bad[c].what, r ? "a view" : "NULL", attn_error_message(ctx));
        }
    }
    /* not contiguous: reshaped from a dense copy, in the view's row-major order */
    tr = attn_transpose(ctx, t, 0, 2); /* (4, 3, 2): tr(i, j, k) = t(k, j, i) */
    attn_error_clear(ctx);
    s2[0] = 24; s2[1] = 1;
    r = tr ? attn_reshape(ctx, tr, 2, s2) : NULL;
    if (CHECK(r != NULL, "reshape of a transposed view: %s", attn_error_message(ctx))) {
        int i0, j0, k0, bad = 0;
        CHECK(r->ndim == 2 && r->shape[0] == 24 && r->shape[1] == 1 && attn_tensor_is_contiguous(r) && r->data != t->data,
              "reshape of a transposed view: %d dims (%d, %d), a view of the strided data", r->ndim, r->shape[0],
              r->shape[1]);
        for (i0 = 0; i0 < 4; i0++)
            for (j0 = 0; j0 < 3; j0++)
                for (k0 = 0; k0 < 2; k0++) bad += r->data[i0 * 6 + j0 * 2 + k0] != t->data[k0 * 12 + j0 * 4 + i0];
        CHECK(bad == 0, "%d elements of the reshaped transposed view out of its row-major order", bad);
    }
    attn_context_destroy(ctx);
}

/* base(i0, i1, i2, i3) = i0*1000 + i1*100 + i2*10 + i3: every value names its index */
static void fill_index_code(attn_tensor *t) {
    int idx[4] = { 0, 0, 0, 0 };
    for (idx[0] = 0; idx[0] < t->shape[0]; idx[0]++)
        for (idx[1] = 0; idx[1] < t->shape[1]; idx[1]++)
            for (idx[2] = 0; idx[2] < t->shape[2]; idx[2]++)
                for (idx[3] = 0; idx[3] < t->shape[3]; idx[3]++)
                    t->data[rm_offset(t->ndim, t->shape, idx)] = (float)(idx[0] * 1000 + idx[1] * 100 + idx[2] * 10 + idx[3]);
}

TEST(tensor_transpose_views_share_data) {
    attn_context *ctx = fresh_ctx(1);
    attn_tensor *t, *v, *c;
    int i, j, bad = 0;
    if (!CHECK(ctx != NULL, "context")) return;
    t = attn_tensor_2d(ctx, 3, 5);
    v = t ? attn_transpose(ctx, t, 0, 1) : NULL;
    if (!CHECK(t && v, "transpose failed: %s", attn_error_message(ctx))) return;
    CHECK(v->shape[0] == 5 && v->shape[1] == 3 && v->data == t->data, "transpose: shape (%d, %d)", v->shape[0], v->shape[1]);
    CHECK(!attn_tensor_is_contiguous(v), "a transposed 3x5 view claims to be contiguous");
    for (i = 0; i < 3; i++)
        for (j = 0; j < 5; j++) {
            int ti[2], vi[2];
            ti[0] = i; ti[1] = j; vi[0] = j; vi[1] = i;
            *attn_tensor_elem(v, vi) = (float)(i * 10 + j); /* write through the view */
            bad += t->data[i * 5 + j] != (float)(i * 10 + j);  /* read through the base */
            bad += attn_tensor_elem(t, ti) != attn_tensor_elem(v, vi);
        }
    CHECK(bad == 0, "%d writes through the transposed view not seen at the transposed place in the base", bad);
    /* contiguous copy of a transposed 4-d view against an index computation */
    t = attn_tensor_4d(ctx, 2, 3, 4, 5);
    v = t ? attn_transpose(ctx, t, 1, 3) : NULL; /* shape (2, 5, 4, 3) */
    c = v ? attn_tensor_contiguous(ctx, v) : NULL;
    if (CHECK(t && v && c, "4-d transpose/contiguous failed: %s", attn_error_message(ctx))) {
        int idx[4];
        fill_index_code(t);
        c = attn_tensor_contiguous(ctx, v); /* after the fill */
        CHECK(c && c != v && c->data != t->data && attn_tensor_is_contiguous(c), "contiguous did not copy");
        CHECK(c && c->shape[0] == 2 && c->shape[1] == 5 && c->shape[2] == 4 && c->shape[3] == 3, "copy has the wrong shape");
        bad = 0;
        if (c)
            for (idx[0] = 0; idx[0] < 2; idx[0]++)
                for (idx[1] = 0; idx[1] < 5; idx[1]++)
                    for (idx[2] = 0; idx[2] < 4; idx[2]++)
                        for (idx[3] = 0; idx[3] < 3; idx[3]++) {
                            /* c(i0, i1, i2, i3) = base(i0, i3, i2, i1) */
                            float want = (float)(idx[0] * 1000 + idx[3] * 100 + idx[2] * 10 + idx[1]);
                            bad += c->data[rm_offset(4, c->shape, idx)] != want;
                        }
        CHECK(bad == 0, "%d elements of the contiguous copy of a (1,3)-transposed view are wrong", bad);
        CHECK(attn_tensor_contiguous(ctx, t) == t, "contiguous of a contiguous tensor must return it");
    }
    /* bad dims */
    attn_error_clear(ctx);
    CHECK(attn_transpose(ctx, t, 0, 4) == NULL && failed_with(ctx, ATTN_ERR_INVALID_ARGUMENT, ATTN_ERR_SHAPE) &&
              !strncmp(attn_error_message(ctx), "attn_transpose: ", 16),
          "transpose of dim 4 of a 4-d tensor: '%s'", attn_error_message(ctx));
    attn_error_clear(ctx);
    CHECK(attn_transpose(ctx, t, -1, 0) == NULL && failed_with(ctx, ATTN_ERR_INVALID_ARGUMENT, ATTN_ERR_SHAPE),
          "transpose of dim -1");
    attn_error_clear(ctx);
    CHECK(attn_transpose(ctx, NULL, 0, 1) == NULL && attn_error_status(ctx) != ATTN_OK, "transpose of NULL");
    attn_context_destroy(ctx);
}

TEST(tensor_slice_views_and_fill) {
    attn_context *ctx = fresh_ctx(1);
    attn_tensor *t, *s, *ss, *e, *st;
    int i, j, bad = 0;
    if (!CHECK(ctx != NULL, "context")) return;
    t = attn_tensor_2d(ctx, 4, 6);
    if (!CHECK(t != NULL, "tensor")) return;
    for (i = 0; i < 24; i++) t->data[i] = (float)i;
    s = attn_slice(ctx, t, 1, 1, 5); /* columns 1..4 */
    if (!CHECK(s != NULL, "slice failed: %s", attn_error_message(ctx))) return;
    CHECK(s->shape[0] == 4 && s->shape[1] == 4 && attn_tensor_numel(s) == 16, "slice shape (%d, %d)", s->shape[0], s->shape[1]);
    CHECK(!attn_tensor_is_contiguous(s), "a column slice claims to be contiguous");
    for (i = 0; i < 4; i++)
        for (j = 0; j < 4; j++) {
            int si[2];
            si[0] = i; si[1] = j;
            bad += *attn_tensor_elem(s, si) != (float)(i * 6 + j + 1);
        }
    CHECK(bad == 0, "%d slice elements read the wrong base element", bad);
    /* a row slice of the column slice, then fill: exactly those 2x4 change */
    ss = attn_slice(ctx, s, 0, 2, 4);
    if (CHECK(ss != NULL, "slice of a slice")) {
        attn_tensor_fill(ss, -1.0f);
        for (bad = 0, i = 0; i < 4; i++)
            for (j = 0; j < 6; j++) {
                float want = (i >= 2 && j >= 1 && j < 5) ? -1.0f : (float)(i * 6 + j);
                bad += t->data[i * 6 + j] != want;
            }
        CHECK(bad == 0, "fill of a 2x4 strided view: %d base elements wrong", bad);
    }
    /* fill through a transposed slice (strides in both dims) */
    st = attn_transpose(ctx, s, 0, 1);
    if (CHECK(st != NULL, "transpose of a slice")) {
        attn_tensor *col = attn_slice(ctx, st, 0, 3, 4); /* base column 4 */
        if (CHECK(col != NULL, "slice of a transposed slice")) {
            attn_tensor_fill(col, 9.0f);
            for (bad = 0, i = 0; i < 4; i++)
                for (j = 0; j < 6; j++) {
                    float want = j == 4 ? 9.0f : (i >= 2 && j >= 1 && j < 5) ? -1.0f : (float)(i * 6 + j);
                    bad += t->data[i * 6 + j] != want;
                }
            CHECK(bad == 0, "fill of a column through a transposed slice: %d base elements wrong", bad);
        }
    }
    /* empty slices are fine; bad ranges are errors */
    e = attn_slice(ctx, t, 0, 2, 2);
    CHECK(e && attn_tensor_numel(e) == 0, "an empty slice [2, 2)");
    if (e) {
        float before[24];
        memcpy(before, t->data, sizeof before);
        attn_tensor_fill(e, 5.0f); /* must do nothing */
        CHECK(memcmp(before, t->data, sizeof before) == 0, "fill of an empty slice wrote");
    }
    {
        int bad_args[5][3] = { { 1, 2, 7 }, { 1, 4, 3 }, { 2, 0, 1 }, { -1, 0, 1 }, { 0, -1, 2 } };
        for (i = 0; i < 5; i++) {
            attn_error_clear(ctx);
            CHECK(attn_slice(ctx, t, bad_args[i][0], bad_args[i][1], bad_args[i][2]) == NULL &&
                  failed_with(ctx, ATTN_ERR_INVALID_ARGUMENT, ATTN_ERR_SHAPE) &&
                  !strncmp(attn_error_message(ctx), "attn_slice: ", 12),
                  "slice dim %d [%d, %d) of a 4x6 tensor was not refused as attn_slice: '%s'", bad_args[i][0],
                  bad_args[i][1], bad_args[i][2], attn_error_message(ctx));
        }
    }
    attn_context_destroy(ctx);
}

TEST(tensor_copy) {
    attn_context *ctx = fresh_ctx(1);
    attn_tensor *a, *b, *bt, *wrong, *wrong_nd;
    int i, j, bad = 0;
    attn_status st;
    if (!CHECK(ctx != NULL, "context")) return;
    a = attn_tensor_2d(ctx, 3, 4);
    b = attn_tensor_2d(ctx, 4, 3);
    wrong = attn_tensor_2d(ctx, 3, 5);
    wrong_nd = attn_tensor_3d(ctx, 3, 4, 1);
    if (!CHECK(a && b && wrong && wrong_nd, "tensors")) return;
    for (i = 0; i < 12; i++) a->data[i] = (float)(i + 1);
    /* into a transposed (strided) destination: b^T = a, so b = a^T */
    bt = attn_transpose(ctx, b, 0, 1);
    st = attn_tensor_copy(ctx, bt, a);
    CHECK(st == ATTN_OK, "copy into a transposed view: %s", attn_status_name(st));
    for (i = 0; i < 3; i++)
        for (j = 0; j < 4; j++) bad += b->data[j * 3 + i] != a->data[i * 4 + j];
    CHECK(bad == 0, "copy into a transposed view: %d elements wrong", bad);
    /* mismatches: ATTN_ERR_SHAPE with a message, destination untouched */
    attn_tensor_fill(wrong, 5.0f);
    attn_error_clear(ctx);
    st = attn_tensor_copy(ctx, wrong, a);
    CHECK(st == ATTN_ERR_SHAPE && attn_error_status(ctx) == ATTN_ERR_SHAPE && attn_error_message(ctx)[0] != 0,
          "copy 3x4 into 3x5: %s", attn_status_name(st));
    for (bad = 0, i = 0; i < 15; i++) bad += wrong->data[i] != 5.0f;
    CHECK(bad == 0, "a refused copy wrote %d elements", bad);
    attn_error_clear(ctx);
    st = attn_tensor_copy(ctx, wrong_nd, a);
    CHECK(st == ATTN_ERR_SHAPE && attn_error_message(ctx)[0] != 0, "copy 3x4 into 3x4x1: %s", attn_status_name(st));
    attn_error_clear(ctx);
    CHECK(attn_tensor_copy(ctx, NULL, a) == ATTN_ERR_INVALID_ARGUMENT, "copy into NULL");
    attn_context_destroy(ctx);
}

/* ------------------------------------------------------------------------
   RNG: PCG32. The reference here is O'Neill's pcg32_random_r written out
   independently, seeded the way the header describes (pcg32_srandom_r with a
   fixed odd increment), so the stream is checked bit for bit, on every
   platform, not just against itself. */
typedef struct pcg_ref {
    uint64_t state, inc;
} pcg_ref;
static uint32_t pcg_ref_next(pcg_ref *r) {
    uint64_t old = r->state;
    uint32_t xs, rot;
    r->state = old * 6364136223846793005ull + r->inc;
    xs = (uint32_t)(((old >> 18u) ^ old) >> 27u);
    rot = (uint32_t)(old >> 59u);
    return (xs >> rot) | (xs << ((0u - rot) & 31u));
}
static void pcg_ref_seed(pcg_ref *r, uint64_t seed, uint64_t inc) {
    r->state = 0u;
    r->inc = inc;
    pcg_ref_next(r);
    r->state += seed;
    pcg_ref_next(r);
}

TEST(rng_streams) {
    attn_rng a, b;
    pcg_ref ref;
    int i, same = 0, diff_ref = 0;
    uint64_t seeds[4] = { 0, 1, 42, 0xFFFFFFFFFFFFFFFFull };
    int si;
    for (si = 0; si < 4; si++) {
        attn_rng_seed(&a, seeds[si]);
        attn_rng_seed(&b, seeds[si]);
        pcg_ref_seed(&ref, seeds[si], a.inc);
        for (same = 0, diff_ref = 0, i = 0; i < 1000; i++) {
            uint32_t x = attn_rng_u32(&a);
            same += x == attn_rng_u32(&b);
            diff_ref += x != pcg_ref_next(&ref);
        }
        CHECK(same == 1000, "seed %d: two generators with the same seed differ in %d of 1000", si, 1000 - same);
        CHECK(diff_ref == 0 && (a.inc & 1u), "seed %d: %d of 1000 outputs differ from PCG32 (inc odd: %d)", si, diff_ref,
              (int)(a.inc & 1u));
    }
    attn_rng_seed(&a, 1);
    attn_rng_seed(&b, 2);
    for (same = 0, i = 0; i < 1000; i++) same += attn_rng_u32(&a) == attn_rng_u32(&b);
    CHECK(same <= 2, "seeds 1 and 2 agree on %d of 1000 outputs", same);
    /* a context's RNG is seeded from desc.seed */
    {
        attn_context *ctx = fresh_ctx(1234);
        if (CHECK(ctx != NULL, "context")) {
            attn_rng_seed(&a, 1234);
            for (diff_ref = 0, i = 0; i < 100; i++) diff_ref += attn_rng_u32(&a) != attn_rng_u32(attn_context_rng(ctx));
            CHECK(diff_ref == 0, "the context's RNG is not attn_rng_seed(desc.seed)");
            attn_context_destroy(ctx);
        }
    }
}

/* Statistics over n = 100000 draws. Bounds are 5 standard errors (a false
   alarm about once in 3 million runs; the seed is fixed, so in practice
   never), and still catch a wrong scale, a shift, or a broken transform. */
TEST(rng_uniform_and_normal_statistics) {
    enum { N = 100000 };
    attn_rng r;
    int i, bins[10] = { 0 }, out_of_range = 0, not_finite = 0, within1 = 0;
    double sum = 0, sum2 = 0, se;
    attn_rng_seed(&r, 7);
    for (i = 0; i < N; i++) {
        float u = attn_rng_uniform(&r);
        if (!(u >= 0.0f && u < 1.0f)) { out_of_range++; continue; }
        sum += u; sum2 += (double)u * u;
        bins[(int)(u * 10.0f)]++;
    }
    CHECK(out_of_range == 0, "%d uniform draws outside [0, 1)", out_of_range);
    se = sqrt(1.0 / 12.0 / N);
    CHECK(fabs(sum / N - 0.5) < 5 * se, "uniform mean %.5f, want 0.5 +- %.5f", sum / N, 5 * se);
    CHECK(fabs(sum2 / N - sum * sum / ((double)N * N) - 1.0 / 12.0) < 5 * sqrt(1.0 / 180.0 / N),
          "uniform variance %.5f, want 1/12", sum2 / N - sum * sum / ((double)N * N));
    for (i = 0; i < 10; i++)
        CHECK(fabs(bins[i] - N / 10.0) < 5 * sqrt(N * 0.1 * 0.9), "uniform bin %d holds %d of %d", i, bins[i], N);
    sum = sum2 = 0;
    attn_rng_seed(&r, 8);
    for (i = 0; i < N; i++) {
        float z = attn_rng_normal(&r);
        if (!isfinite(z)) { not_finite++; continue; }
        sum += z; sum2 += (double)z * z;
        within1 += fabs(z) < 1.0;
    }
    CHECK(not_finite == 0, "%d normal draws not finite", not_finite);
    CHECK(fabs(sum / N) < 5 / sqrt((double)N), "normal mean %.5f, want 0 +- %.5f", sum / N, 5 / sqrt((double)N));
    CHECK(fabs(sum2 / N - 1.0) < 5 * sqrt(2.0 / N), "normal variance %.5f, want 1 +- %.5f", sum2 / N, 5 * sqrt(2.0 / N));
    CHECK(fabs(within1 / (double)N - 0.682689) < 5 * sqrt(0.6827 * 0.3173 / N), "P(|z| < 1) = %.5f, want 0.6827",
          within1 / (double)N);
}

/* ------------------------------------------------------------------------
   Initialisers (torch.nn.init semantics) */

/* max |x|, mean and std of t's elements (t contiguous) */
static void stats(const attn_tensor *t, double *maxabs, double *mean, double *std) {
    size_t n = attn_tensor_numel(t), i;
    double s = 0, s2 = 0, m = 0;
    for (i = 0; i < n; i++) {
        s += t->data[i];
        s2 += (double)t->data[i] * t->data[i];
        if (fabs(t->data[i]) > m || t->data[i] != t->data[i]) m = t->data[i] != t->data[i] ? INFINITY : fabs(t->data[i]);
    }
    *maxabs = m;
    *mean = s / n;
    *std = sqrt(s2 / n - *mean * *mean);
}

TEST(init_uniform_bounds) {
    attn_context *ctx = fresh_ctx(3);
    attn_tensor *t;
    size_t i;
    int out = 0;
    double lo_seen = 1e9, hi_seen = -1e9;
    if (!CHECK(ctx != NULL, "context")) return;
    t = attn_tensor_1d(ctx, 20000);
    if (!CHECK(t != NULL, "tensor")) return;
    CHECK(attn_init_uniform(ctx, t, -0.25f, 0.75f) == ATTN_OK, "init_uniform status");
    for (i = 0; i < 20000; i++) {
        out += !(t->data[i] >= -0.25f && t->data[i] < 0.75f);
        if (t->data[i] < lo_seen) lo_seen = t->data[i];
        if (t->data[i] > hi_seen) hi_seen = t->data[i];
    }
    CHECK(out == 0, "%d values outside [-0.25, 0.75)", out);
    /* 20000 draws: the extremes come within 1e-3 of the ends (P(miss) ~ e^-20) */
    CHECK(lo_seen < -0.249 && hi_seen > 0.749, "range seen [%g, %g] does not fill [-0.25, 0.75)", lo_seen, hi_seen);
    CHECK(attn_init_uniform(ctx, NULL, 0.0f, 1.0f) == ATTN_ERR_INVALID_ARGUMENT, "init of a NULL tensor");
    attn_context_destroy(ctx);
}

TEST(init_xavier_and_kaiming) {
    attn_context *ctx = fresh_ctx(5);
    attn_tensor *w, *conv, *v1;
    double maxabs, mean, std, bound, want_std;
    attn_status st;
    if (!CHECK(ctx != NULL, "context")) return;
    w = attn_tensor_2d(ctx, 64, 128);        /* nn.Linear(128, 64).weight: fan_in 128, fan_out 64 */
    conv = attn_tensor_4d(ctx, 64, 32, 3, 3); /* Conv2d(32, 64, 3): fan_in 288, fan_out 576 */
    v1 = attn_tensor_1d(ctx, 10);
    if (!CHECK(w && conv && v1, "tensors")) return;

    /* xavier_uniform: bound = gain sqrt(6 / (fan_in + fan_out)). 8192 draws:
       every |value| <= bound (1e-6 relative slack for float rounding) and the
       largest within 1% of it (P(all below) = 0.99^8192 ~ 1e-36). */
    st = attn_init_xavier_uniform(ctx, w, 2.0f);
    bound = 2.0 * sqrt(6.0 / (128 + 64));
    stats(w, &maxabs, &mean, &std);
    CHECK(st == ATTN_OK && maxabs <= bound * (1 + 1e-6) && maxabs > 0.99 * bound,
          "xavier_uniform(gain 2) on 64x128: max |w| %.6f, bound %.6f", maxabs, bound);

    /* kaiming_uniform with a = sqrt(5) (nn.Linear's default): bound
       sqrt(6 / ((1 + a^2) fan_in)) = 1 / sqrt(128) */
    st = attn_init_kaiming_uniform(ctx, w, (float)sqrt(5.0));
    bound = 1.0 / sqrt(128.0);
    stats(w, &maxabs, &mean, &std);
    CHECK(st == ATTN_OK && maxabs <= bound * (1 + 1e-6) && maxabs > 0.99 * bound,
          "kaiming_uniform(sqrt 5) on 64x128: max |w| %.6f, bound 1/sqrt(128) = %.6f", maxabs, bound);

    /* normals: the sample std of n draws has a relative standard error of
       1/sqrt(2n) (0.78% for 8192, 0.52% for 18432); allow 5 of them. The
       mean: 5 std/sqrt(n). */
    st = attn_init_kaiming_normal(ctx, w, 0.0f);
    want_std = sqrt(2.0 / 128.0);
    stats(w, &maxabs, &mean, &std);
    CHECK(st == ATTN_OK && fabs(std / want_std - 1) < 5 / sqrt(2.0 * 8192) && fabs(mean) < 5 * want_std / sqrt(8192.0),
          "kaiming_normal(a 0) on 64x128: std %.5f mean %.5f, want std %.5f", std, mean, want_std);
    st = attn_init_xavier_normal(ctx, conv, 1.0f);
    want_std = sqrt(2.0 / (288 + 576));
    stats(conv, &maxabs, &mean, &std);
    CHECK(st == ATTN_OK && fabs(std / want_std - 1) < 5 / sqrt(2.0 * 18432) && fabs(mean) < 5 * want_std / sqrt(18432.0),
          "xavier_normal on a 64x32x3x3 conv weight: std %.5f mean %.5f, want std %.5f (fans 288/576)", std, mean,
          want_std);
    /* the receptive field counts in the fans for the uniform ones too */
    st = attn_init_kaiming_uniform(ctx, conv, 0.0f);
    bound = sqrt(6.0 / 288.0);
    stats(conv, &maxabs, &mean, &std);
    CHECK(st == ATTN_OK && maxabs <= bound * (1 + 1e-6) && maxabs > 0.99 * bound,
          "kaiming_uniform(a 0) on a conv weight: max %.6f, bound %.6f", maxabs, bound);

    /* fans need 2 dims: a 1-d tensor is ATTN_ERR_SHAPE, and left untouched */
    attn_tensor_fill(v1, 3.0f);
    CHECK(attn_init_xavier_uniform(ctx, v1, 1.0f) == ATTN_ERR_SHAPE, "xavier_uniform on 1-d");
    CHECK(attn_init_xavier_normal(ctx, v1, 1.0f) == ATTN_ERR_SHAPE, "xavier_normal on 1-d");
    CHECK(attn_init_kaiming_uniform(ctx, v1, 0.0f) == ATTN_ERR_SHAPE, "kaiming_uniform on 1-d");
    CHECK(attn_init_kaiming_normal(ctx, v1, 0.0f) == ATTN_ERR_SHAPE && attn_error_message(ctx)[0] != 0,
          "kaiming_normal on 1-d");
    CHECK(v1->data[0] == 3.0f && v1->data[9] == 3.0f, "a refused init wrote the tensor");
    attn_context_destroy(ctx);
}

TEST(init_is_seeded_and_covers_strided_views) {
    attn_context *c1 = fresh_ctx(99);
    attn_tensor *a, *b, *s;
    float first[64];
    int i, bad = 0;
    if (!CHECK(c1 != NULL, "context")) return;
    a = attn_tensor_2d(c1, 8, 8);
    if (!CHECK(a != NULL, "tensor")) return;
    attn_init_normal(c1, a, 1.0f, 2.0f);
    memcpy(first, a->data, sizeof first);
    attn_context_destroy(c1);
    c1 = fresh_ctx(99); /* same seed, same memory: same values */
    b = c1 ? attn_tensor_2d(c1, 8, 8) : NULL;
    if (!CHECK(b != NULL, "tensor")) return;
    attn_init_normal(c1, b, 1.0f, 2.0f);
    CHECK(memcmp(first, b->data, sizeof first) == 0, "two contexts with seed 99 initialised differently");
    /* init through a strided view touches exactly the view's elements */
    attn_tensor_fill(b, 100.0f);
    s = attn_slice(c1, attn_transpose(c1, b, 0, 1), 0, 2, 5); /* base columns 2..4 */
    if (CHECK(s != NULL, "view")) {
        attn_init_uniform(c1, s, -1.0f, 1.0f);
        for (i = 0; i < 64; i++) {
            int col = i % 8;
            int in_view = col >= 2 && col < 5;
            bad += in_view ? !(b->data[i] >= -1.0f && b->data[i] < 1.0f) : b->data[i] != 100.0f;
        }
        CHECK(bad == 0, "init_uniform through a strided view: %d base elements wrong", bad);
    }
    attn_context_destroy(c1);
}

/* ------------------------------------------------------------------------
   Errors */

TEST(errors_status_names_and_clear) {
    static const attn_status all[] = { ATTN_OK, ATTN_ERR_INVALID_ARGUMENT, ATTN_ERR_SHAPE, ATTN_ERR_OUT_OF_MEMORY,
                                       ATTN_ERR_UNSUPPORTED };
    const int n = (int)(sizeof all / sizeof all[0]);
    attn_context *ctx;
    int i, j;
    CHECK(strcmp(attn_status_name(ATTN_OK), "ok") == 0, "name of ATTN_OK: '%s'", attn_status_name(ATTN_OK));
    CHECK(strcmp(attn_status_name(ATTN_ERR_INVALID_ARGUMENT), "invalid argument") == 0, "name of invalid argument: '%s'",
          attn_status_name(ATTN_ERR_INVALID_ARGUMENT));
    for (i = 0; i < n; i++) {
        const char *a = attn_status_name(all[i]);
        CHECK(a != NULL && a[0] != 0, "status %d has no name", (int)all[i]);
        for (j = 0; j < i; j++)
            CHECK(a && attn_status_name(all[j]) && strcmp(a, attn_status_name(all[j])) != 0, "statuses %d and %d share the name '%s'",
                  (int)all[i], (int)all[j], a ? a : "");
    }
    CHECK(attn_status_name((attn_status)99) != NULL && attn_status_name((attn_status)99)[0] != 0,
          "an unknown status has no name");
    ctx = fresh_ctx(1);
    if (!CHECK(ctx != NULL, "context")) return;
    CHECK(attn_error_status(ctx) == ATTN_OK && attn_error_message(ctx)[0] == 0, "a new context has an error");
    CHECK(attn_tensor_1d(ctx, -3) == NULL && attn_error_status(ctx) != ATTN_OK && attn_error_message(ctx)[0] != 0,
          "no error recorded for a negative size");
    /* a later success does not erase the last failure (errors are sticky until cleared) */
    CHECK(attn_tensor_1d(ctx, 3) != NULL && attn_error_status(ctx) != ATTN_OK, "a success cleared the previous error");
    attn_error_clear(ctx);
    CHECK(attn_error_status(ctx) == ATTN_OK && strcmp(attn_error_message(ctx), "") == 0,
          "after attn_error_clear: %s, '%s'", attn_status_name(attn_error_status(ctx)), attn_error_message(ctx));
    attn_context_destroy(ctx);
}

TEST_GROUP(tensor) = {
    TEST_ENTRY(tensor_new_shapes_strides_zero_fill),
    TEST_ENTRY(tensor_empty_tensors_are_contiguous),
    TEST_ENTRY(tensor_bad_shapes_fail_cleanly),
    TEST_ENTRY(tensor_byte_count_does_not_wrap),
    TEST_ENTRY(tensor_bytes_sizes_a_fixed_buffer),
    TEST_ENTRY(tensor_wrap_and_elem),
    TEST_ENTRY(tensor_reshape),
    TEST_ENTRY(tensor_transpose_views_share_data),
    TEST_ENTRY(tensor_slice_views_and_fill),
    TEST_ENTRY(tensor_copy),
    TEST_ENTRY(rng_streams),
    TEST_ENTRY(rng_uniform_and_normal_statistics),
    TEST_ENTRY(init_uniform_bounds),
    TEST_ENTRY(init_xavier_and_kaiming),
    TEST_ENTRY(init_is_seeded_and_covers_strided_views),
    TEST_ENTRY(errors_status_names_and_clear),
    TEST_END
};
