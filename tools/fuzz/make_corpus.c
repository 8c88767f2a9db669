/* tools/fuzz/make_corpus.c - writes the seed corpora of the fuzz targets:
   tools/fuzz/corpus/safetensors/ and tools/fuzz/corpus/npy/. A handful of
   small valid files (real parameter files and a checkpoint of the model in
   fuzz_model.h, written by attn.h itself, and hand-made ones with F16/BF16,
   metadata, escapes, scalars, every .npy version) and near-valid ones (one
   lie each: reversed or overlapping offsets, a header length past the end,
   a duplicate name, an overflowing shape, '>f4', fortran order, ...).

       cc -std=c99 -I. tools/fuzz/make_corpus.c -o build/make_corpus -lm
       build/make_corpus tools/fuzz/corpus

   The output is deterministic; the corpus is committed, so this only needs
   running again when the formats or fuzz_model.h change. */
#define ATTN_IMPLEMENTATION
#include "attn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_model.h"

static const char *root;
static int failures;

static void put(const char *kind, const char *name, const void *buf, size_t n) {
    char path[1024];
    FILE *f;
    sprintf(path, "%s/%s/%s", root, kind, name);
    f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "make_corpus: cannot write %s\n", path);
        failures++;
        return;
    }
    printf("%6d  %s\n", (int)n, path);
}

static void put_le(unsigned char *p, uint64_t v, int bytes) {
    int i;
    for (i = 0; i < bytes; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* A safetensors image: header length (or hlen when nonzero), the JSON with '
   turned into ", then data (or data_len bytes of a float ramp when NULL). */
static unsigned char img[1 << 16];
static size_t st(const char *json, const void *data, size_t data_len, uint64_t hlen) {
    size_t n = strlen(json), i;
    if (8 + n + data_len > sizeof img) abort();
    put_le(img, hlen ? hlen : n, 8);
    for (i = 0; i < n; i++) img[8 + i] = (unsigned char)(json[i] == '\'' ? '"' : json[i]);
    if (data) memcpy(img + 8 + n, data, data_len);
    else
        for (i = 0; i + 4 <= data_len; i += 4) {
            float f = 0.25f * (float)(i / 4) - 1.0f;
            uint32_t u;
            memcpy(&u, &f, 4);
            put_le(img + 8 + n + i, u, 4);
        }
    return 8 + n + data_len;
}
static void put_st(const char *name, const char *json, size_t data_len) {
    put("safetensors", name, img, st(json, NULL, data_len, 0));
}

/* A .npy image, the header padded to 64 with spaces and '\n'. */
static size_t npy(int major, const char *dict, size_t data_len) {
    size_t pre = major >= 2 ? 12 : 10, n = strlen(dict), hdr = (pre + n + 1 + 63) / 64 * 64, i;
    if (hdr + data_len > sizeof img) abort();
    memcpy(img, "\x93NUMPY", 6);
    img[6] = (unsigned char)major;
    img[7] = 0;
    put_le(img + 8, hdr - pre, major >= 2 ? 4 : 2);
    memcpy(img + pre, dict, n);
    for (i = pre + n; i < hdr - 1; i++) img[i] = ' ';
    img[hdr - 1] = '\n';
    for (i = 0; i + 4 <= data_len; i += 4) {
        float f = 0.5f * (float)(i / 4) - 2.0f;
        uint32_t u;
        memcpy(&u, &f, 4);
        put_le(img + hdr + i, u, 4);
    }
    for (; i < data_len; i++) img[hdr + i] = 0;
    return hdr + data_len;
}
static void put_npy(const char *name, int major, const char *dict, size_t data_len) {
    put("npy", name, img, npy(major, dict, data_len));
}

static attn_context *model(uint64_t seed, attn_optim **opt) {
    attn_context_desc d;
    attn_context *ctx;
    memset(&d, 0, sizeof d);
    d.seed = seed;
    ctx = attn_context_create(&d);
    if (!ctx || !fuzz_model_init(ctx)) {
        fprintf(stderr, "make_corpus: model: %s\n", ctx ? attn_error_message(ctx) : "no context");
        exit(1);
    }
    if (opt && !(*opt = fuzz_model_optim(ctx))) {
        fprintf(stderr, "make_corpus: optimizer: %s\n", attn_error_message(ctx));
        exit(1);
    }
    return ctx;
}

static void safetensors_corpus(void) {
    attn_context *ctx;
    attn_optim *opt = NULL;
    unsigned char *buf;
    size_t n;
    char json[8192];
    int i;

    /* what attn.h writes: parameters, and a checkpoint after two steps */
    ctx = model(5, NULL);
    n = attn_params_save_bytes(ctx);
    buf = (unsigned char *)malloc(n);
    if (!buf || attn_params_save(ctx, buf, n) != ATTN_OK) {
        fprintf(stderr, "make_corpus: params_save: %s\n", attn_error_message(ctx));
        exit(1);
    }
    put("safetensors", "params.safetensors", buf, n);
    put("safetensors", "params_truncated.safetensors", buf, n - 5);
    free(buf);
    attn_context_destroy(ctx);

    ctx = model(6, &opt);
    for (i = 0; i < 2; i++) {
        attn_param *p;
        for (p = attn_params(ctx); p; p = p->next) {
            size_t k, c = attn_tensor_numel(p->tensor);
            for (k = 0; k < c; k++) p->tensor->grad[k] = 0.125f * (float)(k + 1) - 0.3f;
        }
        attn_rng_u32(attn_context_rng(ctx)); /* move the RNG: a checkpoint holds its state */
        if (attn_optim_step(opt) != ATTN_OK) {
            fprintf(stderr, "make_corpus: step: %s\n", attn_error_message(ctx));
            exit(1);
        }
    }
    n = attn_checkpoint_bytes(ctx, opt);
    buf = (unsigned char *)malloc(n);
    if (!buf || attn_checkpoint_save(ctx, opt, buf, n) != ATTN_OK) {
        fprintf(stderr, "make_corpus: checkpoint_save: %s\n", attn_error_message(ctx));
        exit(1);
    }
    put("safetensors", "checkpoint.safetensors", buf, n);
    {
        /* the same at the largest step an int holds: "attn.step":"2" -> "2147483647" */
        static const char key[] = "\"attn.step\":\"";
        size_t hl = (size_t)(buf[0] | buf[1] << 8 | buf[2] << 16), at = 0, k, digits = 0;
        unsigned char *big = (unsigned char *)malloc(n + 16);
        for (k = 8; k + sizeof key < 8 + hl; k++)
            if (!memcmp(buf + k, key, sizeof key - 1)) { at = k + sizeof key - 1; break; }
        while (at && buf[at + digits] >= '0' && buf[at + digits] <= '9') digits++;
        if (big && at && digits) {
            memcpy(big, buf, at);
            memcpy(big + at, "2147483647", 10);
            memcpy(big + at + 10, buf + at + digits, n - at - digits);
            put_le(big, (uint64_t)(hl + 10 - digits), 8);
            put("safetensors", "checkpoint_step_int_max.safetensors", big, n + 10 - digits);
        } else {
            fprintf(stderr, "make_corpus: no attn.step in the checkpoint header\n");
            failures++;
        }
        free(big);
    }
    free(buf);
    attn_context_destroy(ctx);

    /* hand-made, valid: half types for the model's names, metadata first */
    {
        static const uint16_t half[] = {
            0x3C00, 0xC100, 0x7BFF, 0x0001, 0x8000, 0x7C00,          /* w F16 (2,3) */
            0x3F80, 0xC020, 0x4049,                                  /* b BF16 (3) */
            0x3555, 0x03FF, 0x0400, 0xFC00, 0x7E00, 0x3800, 0x1234, 0xBC00 /* x.y.z F16 (2,1,2,2) */
        };
        unsigned char data[64];
        size_t k;
        for (k = 0; k < sizeof half / sizeof half[0]; k++) put_le(data + 2 * k, half[k], 2);
        /* layers.0.norm.weight F32 (4) */
        for (k = 0; k < 4; k++) {
            float f = 1.0f + 0.5f * (float)k;
            uint32_t u;
            memcpy(&u, &f, 4);
            put_le(data + 34 + 4 * k, u, 4);
        }
        n = st("{'__metadata__':{'format':'pt','note':'h\\u00e9\\n\\\"'},"
               "'w':{'dtype':'F16','shape':[2,3],'data_offsets':[0,12]},"
               "'b':{'dtype':'BF16','shape':[3],'data_offsets':[12,18]},"
               "'x.y.z':{'dtype':'F16','shape':[2,1,2,2],'data_offsets':[18,34]},"
               "'layers.0.norm.weight':{'dtype':'F32','shape':[4],'data_offsets':[34,50]}}",
               data, 50, 0);
        put("safetensors", "half_types.safetensors", img, n);
    }
    /* valid: the model plus an extra tensor, data out of header order, padded header */
    put_st("extra_tensor.safetensors",
           "{'x.y.z':{'dtype':'F32','shape':[2,1,2,2],'data_offsets':[52,84]},"
           "'w':{'dtype':'F32','shape':[2,3],'data_offsets':[0,24]},"
           "'b':{'dtype':'F32','shape':[3],'data_offsets':[24,36]},"
           "'layers.0.norm.weight':{'dtype':'F32','shape':[4],'data_offsets':[36,52]},"
           "'extra':{'dtype':'F32','shape':[2],'data_offsets':[84,92]}}        ",
           92);
    /* valid: scalars, empty tensors, escaped names, whitespace */
    put_st("shapes_and_names.safetensors",
           "{ \n\t'scalar' : { 'dtype' : 'F32' , 'shape' : [ ] , 'data_offsets' : [ 0 , 4 ] } ,\r\n"
           "'empty':{'dtype':'F32','shape':[0,3],'data_offsets':[4,4]},"
           "'q\\\"uote\\\\s\\/':{'dtype':'BF16','shape':[1,1,1,1],'data_offsets':[4,6]},"
           "'caf\\u00e9':{'data_offsets':[6,10],'shape':[1],'dtype':'F32'}}",
           10);
    put_st("empty_object.safetensors", "{}", 0);
    /* valid and empty, but the other dims multiply past 2^32 */
    put_st("empty_huge_dims.safetensors", "{'e':{'dtype':'F32','shape':[0,65536,65536],'data_offsets':[0,0]}}", 0);
    put("safetensors", "empty_file.safetensors", img, 0);

    /* near-valid: one lie each */
    put_st("wrong_shape.safetensors",
           "{'w':{'dtype':'F32','shape':[3,2],'data_offsets':[0,24]},'b':{'dtype':'F32','shape':[3],"
           "'data_offsets':[24,36]},'layers.0.norm.weight':{'dtype':'F32','shape':[4],'data_offsets':[36,52]},"
           "'x.y.z':{'dtype':'F32','shape':[2,1,2,2],'data_offsets':[52,84]}}",
           84);
    put_st("reversed_offsets.safetensors", "{'w':{'dtype':'F32','shape':[2,3],'data_offsets':[24,0]}}", 24);
    put_st("overlapping.safetensors",
           "{'w':{'dtype':'F32','shape':[2,3],'data_offsets':[0,24]},'b':{'dtype':'F32','shape':[3],"
           "'data_offsets':[16,28]}}",
           28);
    put_st("offsets_past_end.safetensors", "{'w':{'dtype':'F32','shape':[2,3],'data_offsets':[4294967296,4294967320]}}",
           24);
    put_st("duplicate_name.safetensors",
           "{'b':{'dtype':'F32','shape':[3],'data_offsets':[0,12]},'b':{'dtype':'F32','shape':[3],"
           "'data_offsets':[12,24]}}",
           24);
    put_st("dtype_i64.safetensors", "{'b':{'dtype':'I64','shape':[3],'data_offsets':[0,24]}}", 24);
    put_st("shape_overflow.safetensors", "{'w':{'dtype':'F32','shape':[65536,65536,65536,65536],'data_offsets':[0,0]}}",
           0);
    put_st("shape_wraps_to_2.safetensors",
           "{'w':{'dtype':'F32','shape':[3074457345618258603,6],'data_offsets':[0,8]}}", 8);
    put_st("negative_dims.safetensors", "{'w':{'dtype':'F32','shape':[-2,-3],'data_offsets':[0,24]}}", 24);
    put_st("five_dims.safetensors", "{'w':{'dtype':'F32','shape':[1,1,1,2,3],'data_offsets':[0,24]}}", 24);
    put_st("data_truncated.safetensors", "{'w':{'dtype':'F32','shape':[2,3],'data_offsets':[0,24]}}", 20);
    put("safetensors", "header_past_end.safetensors", img,
        st("{'w':{'dtype':'F32','shape':[2,3],'data_offsets':[0,24]}}", NULL, 24, 1000));
    put("safetensors", "header_2pow64-1.safetensors", img,
        st("{'w':{'dtype':'F32','shape':[2,3],'data_offsets':[0,24]}}", NULL, 24, 0xFFFFFFFFFFFFFFFFull));
    put_st("trailing_comma.safetensors", "{'w':{'dtype':'F32','shape':[2,3],'data_offsets':[0,24]},}", 24);
    put_st("bad_escape.safetensors", "{'w\\q':{'dtype':'F32','shape':[2,3],'data_offsets':[0,24]}}", 24);
    {
        size_t k, m = 0;
        m += (size_t)sprintf(json + m, "{'__metadata__':");
        for (k = 0; k < 2000; k++) json[m++] = '[';
        for (k = 0; k < 2000; k++) json[m++] = ']';
        strcpy(json + m, ",'b':{'dtype':'F32','shape':[3],'data_offsets':[0,12]}}");
        put_st("nested_metadata.safetensors", json, 12);
    }
}

static void npy_corpus(void) {
    attn_context *ctx = attn_context_create(NULL);
    static const int shapes[][4] = {{2, 3}, {2, 1, 2, 2}, {7}};
    static const int ndims[] = {2, 4, 1};
    static const char *names[] = {"written_2x3.npy", "written_4d.npy", "written_7.npy"};
    int c;
    if (!ctx) exit(1);
    for (c = 0; c < 3; c++) {
        attn_tensor *t = attn_tensor_new(ctx, ndims[c], shapes[c]);
        size_t n, k;
        unsigned char *buf;
        if (!t) exit(1);
        for (k = 0; k < attn_tensor_numel(t); k++) t->data[k] = 0.5f * (float)k - 1.0f;
        n = attn_npy_bytes(t);
        buf = (unsigned char *)malloc(n);
        if (!buf || attn_npy_write(ctx, t, buf, n) != ATTN_OK) {
            fprintf(stderr, "make_corpus: npy_write: %s\n", attn_error_message(ctx));
            exit(1);
        }
        put("npy", names[c], buf, n);
        free(buf);
    }
    attn_context_destroy(ctx);

    put_npy("v1_2x3.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 24);
    put_npy("v2_5.npy", 2, "{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }", 20);
    put_npy("v3_scalar.npy", 3, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", 4);
    put_npy("v1_empty.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }", 0);
    put_npy("empty_huge_dims.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 65536, 65536), }", 0);
    put_npy("v1_reordered.npy", 1, "{\"shape\":(1,2,3,),\"fortran_order\":False,\"descr\":\"<f4\"}", 24);
    put_npy("big_endian.npy", 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", 24);
    put_npy("float64.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", 24);
    put_npy("bool.npy", 1, "{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }", 3);
    put_npy("fortran.npy", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24);
    put_npy("truncated.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 23);
    put_npy("negative_dim.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-2, -3), }", 24);
    put_npy("overflow.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (65536, 65536, 65536, 65536), }", 0);
    put_npy("five_dims.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 2, 3), }", 24);
    put_npy("no_descr.npy", 1, "{'fortran_order': False, 'shape': (2, 3), }", 24);
    {
        size_t n = npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 24);
        put_le(img + 8, 0xFFFF, 2);
        put("npy", "header_len_past_end.npy", img, n);
        n = npy(2, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 24);
        put_le(img + 8, 0xFFFFFFFFu, 4);
        put("npy", "v2_header_len_max.npy", img, n);
        n = npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 24);
        img[6] = 4;
        put("npy", "version_4.npy", img, n);
    }
    {
        char dict[4096];
        size_t k, m = 0;
        m += (size_t)sprintf(dict, "{'descr': '<f4', 'fortran_order': False, 'shape': ");
        for (k = 0; k < 1000; k++) dict[m++] = '(';
        for (k = 0; k < 1000; k++) dict[m++] = ')';
        strcpy(dict + m, ", }");
        put_npy("nested_shape.npy", 2, dict, 0);
    }
}

int main(int argc, char **argv) {
    root = argc > 1 ? argv[1] : "tools/fuzz/corpus";
    safetensors_corpus();
    npy_corpus();
    return failures ? 1 : 0;
}
