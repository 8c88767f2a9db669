/* tools/fuzz/fuzz_safetensors.c - libFuzzer target for the safetensors parser
   and everything built on it: attn_safetensors_parse / find / read,
   attn_params_load (strict and not) and attn_checkpoint_load.

       clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
           -I. tools/fuzz/fuzz_safetensors.c -o build/fuzz_safetensors -lm
       build/fuzz_safetensors -max_len=32768 -dict=tools/fuzz/safetensors.dict \
           CORPUS_DIR tools/fuzz/corpus/safetensors

   The contexts live in fixed static buffers, so a size read from the input can
   only make an allocation fail, never ask malloc for gigabytes. Besides the
   sanitizers' checks, every input must satisfy (abort() otherwise):
   - a failed call leaves a status and a non-empty message, and never says
     "out of memory" for a parse (a lie must be caught before allocating);
   - a parsed image's entries are sane: known dtype, 0..4 dims, no negative
     dim, nbytes = elements x element size, the bytes inside the buffer, no two
     entries sharing a byte or a name;
   - attn_safetensors_read of each entry into a tensor of its shape succeeds
     and gives what an independent F16/BF16 -> f32 conversion gives;
   - attn_params_load succeeds only with a tensor of the right shape for every
     parameter (and, strict, nothing else), then the parameters hold the file's
     values; when it fails nothing changed; saving and loading back is exact;
   - a checkpoint that loads saves again, and that image loaded into a fresh
     model saves to the same bytes; an optimizer step after it does not trip
     the sanitizers. */
#define ATTN_IMPLEMENTATION
#include "attn.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_model.h"

#define FUZZ_MEM (8u << 20)
static unsigned char mem_a[FUZZ_MEM], mem_b[FUZZ_MEM];

static void fuzz_die(const char *what, attn_context *ctx) {
    fprintf(stderr, "fuzz_safetensors: %s (status %s, message \"%s\")\n", what,
            ctx ? attn_status_name(attn_error_status(ctx)) : "-", ctx ? attn_error_message(ctx) : "");
    abort();
}
#define FUZZ_CHECK(cond, what, ctx) \
    do {                            \
        if (!(cond)) fuzz_die(what, ctx); \
    } while (0)

/* A failed call: a status on the context and a message. */
static void fuzz_failed(attn_context *ctx, attn_status st, const char *what) {
    FUZZ_CHECK(st != ATTN_OK, what, ctx);
    FUZZ_CHECK(attn_error_status(ctx) == st, "returned status differs from the context's", ctx);
    FUZZ_CHECK(attn_error_message(ctx)[0] != 0, "an error without a message", ctx);
    attn_error_clear(ctx);
}

static attn_context *fuzz_ctx(unsigned char *mem, uint64_t seed) {
    attn_context_desc d;
    memset(&d, 0, sizeof d);
    d.memory = mem;
    d.memory_size = FUZZ_MEM;
    d.seed = seed;
    return attn_context_create(&d);
}

/* The reference conversions. */
static float ref_f16(unsigned h) {
    unsigned e = (h >> 10) & 0x1F, m = h & 0x3FF;
    float v;
    if (e == 0) v = ldexpf((float)m, -24);
    else if (e == 31) v = m ? NAN : INFINITY;
    else v = ldexpf((float)(m | 0x400), (int)e - 25);
    return (h & 0x8000) ? -v : v;
}
static float ref_bf16(unsigned b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static float ref_elem(const attn_st_entry *e, size_t i) {
    const unsigned char *p;
    if (e->dtype == ATTN_ST_F32) {
        uint32_t u;
        float f;
        p = e->data + 4 * i;
        u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        memcpy(&f, &u, 4);
        return f;
    }
    p = e->data + 2 * i;
    return e->dtype == ATTN_ST_F16 ? ref_f16((unsigned)p[0] | (unsigned)p[1] << 8)
                                   : ref_bf16((unsigned)p[0] | (unsigned)p[1] << 8);
}
static int same_float(float a, float b) {
    uint32_t x, y;
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    memcpy(&x, &a, 4);
    memcpy(&y, &b, 4);
    return x == y;
}

/* Check the entries of a parsed image; read each into a tensor. */
static void check_entries(attn_context *ctx, const attn_safetensors *st, const uint8_t *buf, size_t size) {
    int i, j, d;
    FUZZ_CHECK(st->count >= 0 && (st->count == 0 || st->entries != NULL), "bad count", ctx);
    FUZZ_CHECK((size_t)st->count <= size, "more entries than bytes", ctx);
    for (i = 0; i < st->count; i++) {
        const attn_st_entry *e = &st->entries[i];
        size_t esz, numel = 1, off;
        volatile unsigned sum = 0;
        FUZZ_CHECK(e->name != NULL, "an entry without a name", ctx);
        FUZZ_CHECK(e->dtype == ATTN_ST_F32 || e->dtype == ATTN_ST_F16 || e->dtype == ATTN_ST_BF16, "unknown dtype", ctx);
        FUZZ_CHECK(e->ndim >= 0 && e->ndim <= ATTN_MAX_DIMS, "ndim out of range", ctx);
        esz = e->dtype == ATTN_ST_F32 ? 4 : 2;
        for (d = 0; d < e->ndim; d++) {
            FUZZ_CHECK(e->shape[d] >= 0, "a negative dim", ctx);
            if (e->shape[d] == 0) numel = 0;
        }
        for (d = 0; numel && d < e->ndim; d++) { /* the product cannot be more than the buffer holds */
            FUZZ_CHECK(numel <= size / (size_t)e->shape[d], "shape product past the buffer", ctx);
            numel *= (size_t)e->shape[d];
        }
        FUZZ_CHECK(numel <= size / esz && e->nbytes == numel * esz, "nbytes != elements x element size", ctx);
        FUZZ_CHECK(e->data >= buf && e->data <= buf + size, "data outside the buffer", ctx);
        off = (size_t)(e->data - buf);
        FUZZ_CHECK(e->nbytes <= size - off, "data runs past the buffer", ctx);
        for (off = 0; off < e->nbytes; off++) sum += e->data[off]; /* ASan checks every byte */
        (void)sum;
        FUZZ_CHECK(attn_safetensors_find(st, e->name) == e, "find(name) is not the entry (duplicate name?)", ctx);
        for (j = 0; j < i; j++) {
            const attn_st_entry *o = &st->entries[j];
            if (e->nbytes && o->nbytes)
                FUZZ_CHECK(e->data + e->nbytes <= o->data || o->data + o->nbytes <= e->data, "overlapping entries", ctx);
        }
        /* read into a tensor of its shape */
        if (numel <= (1u << 18)) {
            attn_context_pos m = attn_context_mark(ctx);
            attn_tensor *t = attn_tensor_new(ctx, e->ndim, e->shape);
            size_t k;
            FUZZ_CHECK(t != NULL, "no tensor for a parsed shape", ctx);
            if (attn_safetensors_read(ctx, e, t) != ATTN_OK) fuzz_die("read of a parsed entry failed", ctx);
            for (k = 0; k < numel; k++)
                if (!same_float(t->data[k], ref_elem(e, k))) fuzz_die("read gives another value than the reference", ctx);
            /* a 1-element-larger tensor is refused */
            {
                int shape1[1];
                attn_tensor *u;
                shape1[0] = (int)numel + 1;
                u = attn_tensor_new(ctx, 1, shape1);
                if (u) {
                    attn_status s = attn_safetensors_read(ctx, e, u);
                    fuzz_failed(ctx, s, "read into a tensor with one more element succeeded");
                }
            }
            attn_context_reset(ctx, m);
        }
    }
}

/* Copy every parameter's bytes. */
static size_t snapshot(attn_context *ctx, float *out, size_t cap) {
    attn_param *p;
    size_t n = 0;
    for (p = attn_params(ctx); p; p = p->next) {
        size_t c = attn_tensor_numel(p->tensor);
        if (n + c > cap) abort();
        memcpy(out + n, p->tensor->data, c * sizeof(float));
        n += c;
    }
    return n;
}

static void check_params_load(attn_context *ctx, const uint8_t *data, size_t size, int strict, int parsed,
                              const attn_safetensors *st) {
    float before[256], after[256];
    size_t n0 = snapshot(ctx, before, 256), n1;
    attn_status s = attn_params_load(ctx, data, size, strict);
    attn_param *p;
    if (s != ATTN_OK) {
        fuzz_failed(ctx, s, "params_load failed");
        n1 = snapshot(ctx, after, 256);
        FUZZ_CHECK(n0 == n1 && memcmp(before, after, n0 * sizeof(float)) == 0, "a failed params_load changed parameters",
                   ctx);
        return;
    }
    FUZZ_CHECK(parsed, "params_load accepted an image the parser refuses", ctx);
    if (strict) FUZZ_CHECK(st->count == FUZZ_N_PARAMS, "a strict load accepted extra tensors", ctx);
    for (p = attn_params(ctx); p; p = p->next) {
        const attn_st_entry *e = attn_safetensors_find(st, p->name);
        size_t k, numel = attn_tensor_numel(p->tensor);
        int d;
        FUZZ_CHECK(e != NULL, "params_load accepted an image without a parameter", ctx);
        FUZZ_CHECK(e->ndim == p->tensor->ndim, "params_load accepted a tensor of another rank", ctx);
        for (d = 0; d < e->ndim; d++)
            FUZZ_CHECK(e->shape[d] == p->tensor->shape[d], "params_load accepted a tensor of another shape", ctx);
        for (k = 0; k < numel; k++)
            if (!same_float(p->tensor->data[k], ref_elem(e, k))) fuzz_die("params_load stored another value", ctx);
    }
    /* save -> load is exact */
    {
        size_t n = attn_params_save_bytes(ctx);
        unsigned char *buf;
        FUZZ_CHECK(n > 8 && n < (1u << 20), "implausible params_save_bytes", ctx);
        buf = (unsigned char *)malloc(n);
        if (!buf) abort();
        if (attn_params_save(ctx, buf, n) != ATTN_OK) fuzz_die("params_save failed", ctx);
        n0 = snapshot(ctx, before, 256);
        if (attn_params_load(ctx, buf, n, 1) != ATTN_OK) fuzz_die("params_save's image does not load", ctx);
        n1 = snapshot(ctx, after, 256);
        FUZZ_CHECK(n0 == n1 && memcmp(before, after, n0 * sizeof(float)) == 0, "params save -> load is not exact", ctx);
        free(buf);
    }
}

static unsigned char *checkpoint_image(attn_context *ctx, attn_optim *opt, size_t *size) {
    size_t n = attn_checkpoint_bytes(ctx, opt);
    unsigned char *buf;
    FUZZ_CHECK(n > 8 && n < (1u << 20), "implausible checkpoint_bytes", ctx);
    buf = (unsigned char *)malloc(n);
    if (!buf) abort();
    if (attn_checkpoint_save(ctx, opt, buf, n) != ATTN_OK) fuzz_die("checkpoint_save failed", ctx);
    *size = n;
    return buf;
}

static void check_checkpoint_load(attn_context *ctx, attn_optim *opt, const uint8_t *data, size_t size, int parsed) {
    attn_status s = attn_checkpoint_load(ctx, opt, data, size);
    size_t n1, n2;
    unsigned char *img1, *img2;
    attn_context *ctx2;
    attn_optim *opt2 = NULL;
    if (s != ATTN_OK) {
        fuzz_failed(ctx, s, "checkpoint_load failed");
        return;
    }
    FUZZ_CHECK(parsed, "checkpoint_load accepted an image the parser refuses", ctx);
    img1 = checkpoint_image(ctx, opt, &n1);
    ctx2 = fuzz_ctx(mem_b, 99);
    if (!ctx2 || !fuzz_model_init(ctx2) || !(opt2 = fuzz_model_optim(ctx2))) fuzz_die("second model", ctx2);
    if (attn_checkpoint_load(ctx2, opt2, img1, n1) != ATTN_OK) fuzz_die("a saved checkpoint does not load", ctx2);
    FUZZ_CHECK(attn_optim_steps(opt2) == attn_optim_steps(opt), "the step count did not come back", ctx2);
    img2 = checkpoint_image(ctx2, opt2, &n2);
    FUZZ_CHECK(n1 == n2 && memcmp(img1, img2, n1) == 0, "checkpoint save -> load -> save changed the image", ctx2);
    /* the loaded state can be stepped on */
    attn_params_zero_grad(ctx2);
    s = attn_optim_step(opt2);
    if (s != ATTN_OK) fuzz_failed(ctx2, s, "optim_step after a checkpoint");
    attn_context_destroy(ctx2);
    free(img1);
    free(img2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    attn_context *ctx = fuzz_ctx(mem_a, 1);
    attn_optim *opt = NULL;
    attn_safetensors st;
    attn_status s;
    int parsed;
    if (!ctx || !fuzz_model_init(ctx) || !(opt = fuzz_model_optim(ctx))) fuzz_die("model", ctx);

    memset(&st, 0, sizeof st);
    s = attn_safetensors_parse(ctx, data, size, &st);
    parsed = s == ATTN_OK;
    if (parsed) {
        check_entries(ctx, &st, data, size);
    } else {
        FUZZ_CHECK(s != ATTN_ERR_OUT_OF_MEMORY, "the parser ran out of memory (allocated by a size it had not checked?)",
                   ctx);
        fuzz_failed(ctx, s, "parse failed");
    }
    check_params_load(ctx, data, size, 0, parsed, &st);
    check_params_load(ctx, data, size, 1, parsed, &st);
    check_checkpoint_load(ctx, opt, data, size, parsed);
    attn_context_destroy(ctx);
    return 0;
}
