/* tests/test_files.c - section 10 (files): safetensors, .npy, parameter
   load/save, checkpoints.

   1. Bad input. Every kind of lie the issue lists, as a crafted buffer parsed
      in a context over a fixed 1 MiB buffer (so a bogus size can only turn
      into a failed allocation, never a huge malloc): empty and truncated
      images, a header length past the end (and 2^64-1, 2^63, 2^32 + n, which
      a 32-bit size_t would truncate to something plausible), offsets out of
      range, reversed, overlapping or not matching the shape, shape products
      that overflow 64 or 32 bits (some of them wrap to exactly the bytes
      given), negative dims, unknown dtypes, malformed and deeply nested JSON,
      duplicate names. Each must fail with the right status and a message,
      and leave the arena usable. Every truncation of valid images fails too.
   2. Round trips: parameters save -> load into a fresh context (bit-exact),
      F16 / BF16 conversion of hand-made bytes (normals, the F16 maximum,
      denormals, signed zero, infinities, NaN), .npy versions 1, 2 and 3
      ('<f4', C order) and what is rejected ('>f4', '<f8', '|b1',
      fortran_order True), .npy write -> parse of every rank.
   3. attn_params_load: strict vs non-strict (extra tensors), a missing
      parameter or a wrong shape named in the message, nothing changed then.
   4. Checkpoints: an encoder layer with dropout trained by AdamW for N steps,
      against N/2 steps, a checkpoint, a fresh context, N/2 more steps: the
      losses must be bit-identical (memcmp), so parameters, optimizer state,
      step count and the RNG must all come back. Also SGD with momentum.

   Error statuses: a file that lies is ATTN_ERR_FORMAT; where a valid file
   describes something this build cannot hold (a dtype or rank it does not
   support, a dim too big for an int) ATTN_ERR_UNSUPPORTED or ATTN_ERR_SHAPE
   are accepted too. ATTN_ERR_OUT_OF_MEMORY is never right for a lie: the size
   must be checked against the buffer before anything is allocated. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

#define A_FMT (1u << ATTN_ERR_FORMAT)
#define A_SHP (1u << ATTN_ERR_SHAPE)
#define A_UNS (1u << ATTN_ERR_UNSUPPORTED)
#define A_INV (1u << ATTN_ERR_INVALID_ARGUMENT)

/* ------------------------------------------------------------------------
   Helpers */

/* A context over a fixed buffer: the allocator is never called, and an
   allocation that believes a lying size fails instead of taking gigabytes. */
static unsigned char fixed_mem[1 << 20];

static attn_context *fixed_ctx(void) {
    attn_context_desc d;
    memset(&d, 0, sizeof d);
    d.memory = fixed_mem;
    d.memory_size = sizeof fixed_mem;
    d.seed = 7;
    return attn_context_create(&d);
}

static const char *allow_names(unsigned allow) {
    static char buf[128];
    int s;
    buf[0] = 0;
    for (s = 1; s <= ATTN_ERR_IO; s++)
        if (allow & (1u << s)) {
            if (buf[0]) strcat(buf, " or ");
            strcat(buf, attn_status_name((attn_status)s));
        }
    return buf;
}

/* A call that must have failed with a status in allow: the context holds it
   with a message (that contains needle when given), and the arena still
   works. Clears the error. */
static int failed_as(attn_context *ctx, attn_status st, unsigned allow, const char *needle, const char *what) {
    const char *msg = attn_error_message(ctx);
    int ok = 1;
    if (st == ATTN_OK) {
        CHECK(0, "%s: accepted (status ok), want %s", what, allow_names(allow));
        attn_error_clear(ctx);
        return 0;
    }
    ok &= CHECK(st != ATTN_OK && (allow & (1u << st)) != 0, "%s: status %d (%s), want %s; message \"%s\"", what,
                (int)st, attn_status_name(st), allow_names(allow), msg);
    ok &= CHECK(attn_error_status(ctx) == st, "%s: returned %s but the context holds %s", what, attn_status_name(st),
                attn_status_name(attn_error_status(ctx)));
    ok &= CHECK(msg != NULL && msg[0] != 0, "%s: failed (%s) without a message", what, attn_status_name(st));
    if (needle && msg)
        ok &= CHECK(strstr(msg, needle) != NULL, "%s: the message \"%s\" does not name \"%s\"", what, msg, needle);
    attn_error_clear(ctx);
    {
        attn_context_pos m = attn_context_mark(ctx);
        attn_tensor *t = attn_tensor_2d(ctx, 16, 16);
        ok &= CHECK(t != NULL && attn_alloc(ctx, 4096) != NULL, "%s: the arena is unusable after the error: %s", what,
                    attn_error_message(ctx));
        attn_context_reset(ctx, m);
    }
    attn_error_clear(ctx);
    return ok;
}

static void put_u16(unsigned char *p, unsigned v) {
    p[0] = (unsigned char)(v & 0xFF);
    p[1] = (unsigned char)(v >> 8);
}
static void put_u32(unsigned char *p, uint32_t v) {
    int i;
    for (i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *p, uint64_t v) {
    int i;
    for (i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint64_t get_u64(const unsigned char *p) {
    uint64_t v = 0;
    int i;
    for (i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static float ramp(size_t i) { return 0.5f * (float)i - 3.0f; }

/* Fill n bytes with the little-endian float ramp (whole floats only; the rest zero). */
static void fill_ramp(unsigned char *p, size_t n) {
    size_t i;
    memset(p, 0, n);
    for (i = 0; i + 4 <= n; i += 4) {
        uint32_t b = test_bits(ramp(i / 4));
        put_u32(p + i, b);
    }
}

/* A safetensors image into out: the 8-byte little-endian header length (hlen,
   or the JSON's length when hlen is NULL), the JSON with every ' turned into ",
   then data_len bytes of the float ramp. Returns the size, 0 if cap is short. */
static size_t st_image_h(unsigned char *out, size_t cap, const uint64_t *hlen, const char *json, size_t data_len) {
    size_t n = strlen(json), i;
    if (8 + n + data_len > cap) return 0;
    put_u64(out, hlen ? *hlen : (uint64_t)n);
    for (i = 0; i < n; i++) out[8 + i] = (unsigned char)(json[i] == '\'' ? '"' : json[i]);
    fill_ramp(out + 8 + n, data_len);
    return 8 + n + data_len;
}
static size_t st_image(unsigned char *out, size_t cap, const char *json, size_t data_len) {
    return st_image_h(out, cap, NULL, json, data_len);
}

/* A .npy image: magic, version major.minor, header length (2 bytes for 1.x,
   4 for 2.x/3.x), the dict padded with spaces and ended with '\n' so that the
   data starts at a multiple of 64, then data_len bytes of the float ramp.
   hlen_lie (when not NULL) replaces the header length written. */
static size_t npy_image_h(unsigned char *out, size_t cap, int major, int minor, const uint32_t *hlen_lie,
                          const char *dict, size_t data_len) {
    size_t pre = major >= 2 ? 12 : 10, n = strlen(dict), total_hdr, i;
    total_hdr = pre + n + 1;
    total_hdr = (total_hdr + 63) / 64 * 64;
    if (total_hdr + data_len > cap) return 0;
    memcpy(out, "\x93NUMPY", 6);
    out[6] = (unsigned char)major;
    out[7] = (unsigned char)minor;
    if (major >= 2) put_u32(out + 8, hlen_lie ? *hlen_lie : (uint32_t)(total_hdr - pre));
    else put_u16(out + 8, hlen_lie ? (unsigned)*hlen_lie : (unsigned)(total_hdr - pre));
    memcpy(out + pre, dict, n);
    for (i = pre + n; i < total_hdr - 1; i++) out[i] = ' ';
    out[total_hdr - 1] = '\n';
    fill_ramp(out + total_hdr, data_len);
    return total_hdr + data_len;
}
static size_t npy_image(unsigned char *out, size_t cap, int major, const char *dict, size_t data_len) {
    return npy_image_h(out, cap, major, 0, NULL, dict, data_len);
}

static int bits_equal(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof(float)) == 0; }

/* ------------------------------------------------------------------------
   1. safetensors: valid images */

#define BASE_JSON "{'t.a':{'dtype':'F32','shape':[2,3],'data_offsets':[0,24]}}"

TEST(safetensors_parse_valid_image) {
    attn_context *ctx = fixed_ctx();
    unsigned char img[512];
    size_t n = st_image(img, sizeof img, BASE_JSON, 24), hl = strlen(BASE_JSON), i;
    attn_safetensors st;
    attn_status s;
    attn_tensor *t;
    const attn_st_entry *e;
    if (!CHECK(ctx != NULL, "no context")) return;
    memset(&st, 0, sizeof st);
    s = attn_safetensors_parse(ctx, img, n, &st);
    if (!CHECK(s == ATTN_OK, "parse: %s", attn_error_message(ctx))) goto done;
    if (!CHECK(st.count == 1 && st.entries != NULL, "count %d, want 1", st.count)) goto done;
    e = &st.entries[0];
    CHECK(e->name && strcmp(e->name, "t.a") == 0, "name \"%s\"", e->name ? e->name : "(null)");
    CHECK(e->dtype == ATTN_ST_F32, "dtype %d", e->dtype);
    CHECK(e->ndim == 2 && e->shape[0] == 2 && e->shape[1] == 3, "shape ndim %d [%d %d]", e->ndim, e->shape[0],
          e->shape[1]);
    CHECK(e->data == img + 8 + hl && e->nbytes == 24, "data at +%d, %d bytes; want +%d, 24", (int)(e->data - img),
          (int)e->nbytes, (int)(8 + hl));
    CHECK(attn_safetensors_find(&st, "t.a") == e, "find t.a");
    CHECK(attn_safetensors_find(&st, "t.b") == NULL && attn_safetensors_find(&st, "t") == NULL &&
              attn_safetensors_find(&st, "t.a.") == NULL,
          "find of a name not in the file");
    t = attn_tensor_2d(ctx, 2, 3);
    if (CHECK(t != NULL, "tensor")) {
        s = attn_safetensors_read(ctx, e, t);
        CHECK(s == ATTN_OK, "read: %s", attn_error_message(ctx));
        for (i = 0; i < 6; i++) CHECK(t->data[i] == ramp(i), "t[%d] = %g, want %g", (int)i, t->data[i], ramp(i));
    }
    /* a tensor of another shape */
    t = attn_tensor_2d(ctx, 3, 2);
    if (t) failed_as(ctx, attn_safetensors_read(ctx, e, t), A_SHP | A_FMT | A_INV, NULL, "read into a (3, 2) tensor");
    t = attn_tensor_1d(ctx, 6);
    if (t) failed_as(ctx, attn_safetensors_read(ctx, e, t), A_SHP | A_FMT | A_INV, NULL, "read into a (6) tensor");
done:
    attn_context_destroy(ctx);
}

/* What real writers produce and JSON allows: other key orders, whitespace,
   the padding spaces safetensors writers append, __metadata__ anywhere, escapes
   in names, scalars, empty tensors, data not in header order, an empty file. */
TEST(safetensors_parse_accepts_valid_variants) {
    static const struct {
        const char *json;
        size_t data;
        int count;
        const char *name; /* an entry that must be found */
        int ndim, s0, s1;
    } cases[] = {
        {"{'t.a':{'data_offsets':[0,24],'shape':[2,3],'dtype':'F32'}}", 24, 1, "t.a", 2, 2, 3},
        {" \n\t{ 't.a' :\r\n { 'dtype' : 'F32' , 'shape' : [ 2 , 3 ] , 'data_offsets' : [ 0 , 24 ] } }  ", 24, 1,
         "t.a", 2, 2, 3},
        {"{'t.a':{'dtype':'F32','shape':[2,3],'data_offsets':[0,24]}}                  ", 24, 1, "t.a", 2, 2, 3},
        {"{'__metadata__':{'format':'pt','x':'{\\\"y\\\": [1]}'},'t.a':{'dtype':'F32','shape':[2,3],"
         "'data_offsets':[0,24]}}",
         24, 1, "t.a", 2, 2, 3},
        {"{'t.a':{'dtype':'F32','shape':[2,3],'data_offsets':[0,24]},'__metadata__':{}}", 24, 1, "t.a", 2, 2, 3},
        {"{'q\\\"uote\\\\back\\/slash':{'dtype':'F32','shape':[1],'data_offsets':[0,4]}}", 4, 1, "q\"uote\\back/slash",
         1, 1, 1},
        {"{'caf\\u00e9':{'dtype':'F32','shape':[1],'data_offsets':[0,4]}}", 4, 1, "caf\xc3\xa9", 1, 1, 1},
        {"{'s':{'dtype':'F32','shape':[],'data_offsets':[0,4]}}", 4, 1, "s", 0, 1, 1},
        {"{'z':{'dtype':'F32','shape':[0,3],'data_offsets':[0,0]},'y':{'dtype':'F32','shape':[1],"
         "'data_offsets':[0,4]}}",
         4, 2, "z", 2, 0, 3},
        {"{'b':{'dtype':'F32','shape':[3],'data_offsets':[12,24]},'a':{'dtype':'F32','shape':[3],"
         "'data_offsets':[0,12]}}",
         24, 2, "b", 1, 3, 1},
        {"{'h':{'dtype':'F16','shape':[2,3],'data_offsets':[0,12]},'g':{'dtype':'BF16','shape':[3],"
         "'data_offsets':[12,18]}}",
         18, 2, "g", 1, 3, 1},
        {"{}", 0, 0, NULL, 0, 0, 0},
        {"{'__metadata__':{'format':'pt'}}", 0, 0, NULL, 0, 0, 0},
    };
    attn_context *ctx = fixed_ctx();
    unsigned char img[1024];
    size_t c;
    if (!CHECK(ctx != NULL, "no context")) return;
    for (c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        attn_safetensors st;
        attn_context_pos m = attn_context_mark(ctx);
        size_t n = st_image(img, sizeof img, cases[c].json, cases[c].data);
        attn_status s;
        memset(&st, 0, sizeof st);
        s = attn_safetensors_parse(ctx, img, n, &st);
        if (!CHECK(s == ATTN_OK, "valid case %d (%s): %s", (int)c, cases[c].json, attn_error_message(ctx))) {
            attn_error_clear(ctx);
            continue;
        }
        CHECK(st.count == cases[c].count, "case %d: count %d, want %d", (int)c, st.count, cases[c].count);
        if (cases[c].name) {
            const attn_st_entry *e = attn_safetensors_find(&st, cases[c].name);
            if (CHECK(e != NULL, "case %d: %s not found", (int)c, cases[c].name)) {
                CHECK(e->ndim == cases[c].ndim && (e->ndim < 1 || e->shape[0] == cases[c].s0) &&
                          (e->ndim < 2 || e->shape[1] == cases[c].s1),
                      "case %d: %s has ndim %d shape [%d %d]", (int)c, cases[c].name, e->ndim, e->shape[0],
                      e->shape[1]);
                CHECK(e->data >= img && e->data + e->nbytes <= img + n, "case %d: data outside the buffer", (int)c);
            }
        }
        attn_context_reset(ctx, m);
    }
    attn_context_destroy(ctx);
}

/* ------------------------------------------------------------------------
   2. safetensors: bad input */

TEST(safetensors_rejects_bad_header_lengths) {
    attn_context *ctx = fixed_ctx();
    unsigned char img[512];
    const char *json = BASE_JSON;
    size_t jl = strlen(json), n;
    attn_safetensors st;
    uint64_t h;
    char what[96];
    if (!CHECK(ctx != NULL, "no context")) return;
    n = st_image(img, sizeof img, json, 24);
    /* empty, and every size shorter than the 8-byte length */
    for (h = 0; h < 8; h++) {
        sprintf(what, "a %d-byte image", (int)h);
        failed_as(ctx, attn_safetensors_parse(ctx, img, (size_t)h, &st), A_FMT, NULL, what);
    }
    failed_as(ctx, attn_safetensors_parse(ctx, NULL, 0, &st), A_FMT | A_INV, NULL, "NULL buffer, size 0");
    {
        /* header length 0: no JSON at all */
        unsigned char z[8] = {0};
        failed_as(ctx, attn_safetensors_parse(ctx, z, 8, &st), A_FMT, NULL, "header length 0");
    }
    {
        static const uint64_t lies[] = {0, 0, 0, 0xFFFFFFFFFFFFFFFFull, 0x8000000000000000ull, 0xFFFFFFFFFFFFFFF8ull,
                                        0, 0, 0};
        int i;
        uint64_t v[9];
        memcpy(v, lies, sizeof v);
        v[0] = (uint64_t)jl + 24 + 1;              /* one byte past the end */
        v[1] = (uint64_t)jl + 25 + 1000000;        /* far past */
        v[2] = (uint64_t)jl + 1;                   /* inside the file, but cuts into the data */
        v[6] = ((uint64_t)1 << 32) + jl;           /* a 32-bit size_t would read jl */
        v[7] = ((uint64_t)1 << 32) + jl - 8;       /* and + 8 wrapping */
        v[8] = (uint64_t)jl - 1;                   /* one short: the JSON is cut */
        for (i = 0; i < 9; i++) {
            st_image_h(img, sizeof img, &v[i], json, 24);
            sprintf(what, "header length 0x%08lX%08lX in a %d-byte image", (unsigned long)(v[i] >> 32),
                    (unsigned long)(v[i] & 0xFFFFFFFFu), (int)n);
            /* v[2] puts 1 byte of data into the JSON: trailing garbage after the object */
            failed_as(ctx, attn_safetensors_parse(ctx, img, n, &st), A_FMT, NULL, what);
        }
    }
    /* truncated: every prefix of a valid image */
    {
        size_t k;
        int bad = 0;
        st_image(img, sizeof img, json, 24);
        for (k = 0; k < n; k++) {
            attn_status s = attn_safetensors_parse(ctx, img, k, &st);
            if (s == ATTN_OK || !attn_error_message(ctx)[0]) {
                if (!bad) CHECK(0, "the first %d of %d bytes parsed: status %d, message \"%s\"", (int)k, (int)n, (int)s,
                                attn_error_message(ctx));
                bad++;
            }
            attn_error_clear(ctx);
        }
        CHECK(bad == 0, "%d truncations of a %d-byte image were not errors", bad, (int)n);
    }
    /* the image itself still parses */
    CHECK(attn_safetensors_parse(ctx, img, n, &st) == ATTN_OK, "the untouched image: %s", attn_error_message(ctx));
    attn_context_destroy(ctx);
}

typedef struct bad_st {
    const char *what, *json;
    size_t data;
    unsigned allow;
    const char *needle;
} bad_st;

#define E1(s) "{'t.a':{" s "}}"
static const bad_st bad_st_cases[] = {
    /* offsets */
    {"data truncated", BASE_JSON, 20, A_FMT, NULL},
    {"no data at all", BASE_JSON, 0, A_FMT, NULL},
    {"reversed offsets", E1("'dtype':'F32','shape':[2,3],'data_offsets':[24,0]"), 24, A_FMT, NULL},
    {"offsets past the end", E1("'dtype':'F32','shape':[2,3],'data_offsets':[24,48]"), 24, A_FMT, NULL},
    {"offsets 2^32 past (0 in 32 bits)", E1("'dtype':'F32','shape':[2,3],'data_offsets':[4294967296,4294967320]"), 24,
     A_FMT, NULL},
    {"end 2^64-1", E1("'dtype':'F32','shape':[2,3],'data_offsets':[0,18446744073709551615]"), 24, A_FMT, NULL},
    {"end 2^64 (overflows a u64)", E1("'dtype':'F32','shape':[2,3],'data_offsets':[0,18446744073709551616]"), 24,
     A_FMT, NULL},
    {"begin 2^64-24, end 0 (wraps)", E1("'dtype':'F32','shape':[2,3],'data_offsets':[18446744073709551592,0]"), 24,
     A_FMT, NULL},
    {"negative begin", E1("'dtype':'F32','shape':[2,3],'data_offsets':[-24,0]"), 24, A_FMT, NULL},
    {"fractional offset", E1("'dtype':'F32','shape':[2,3],'data_offsets':[0.5,24]"), 24, A_FMT, NULL},
    {"offset with a plus sign", E1("'dtype':'F32','shape':[2,3],'data_offsets':[+0,24]"), 24, A_FMT, NULL},
    {"hex offset", E1("'dtype':'F32','shape':[2,3],'data_offsets':[0x0,24]"), 24, A_FMT, NULL},
    {"offsets shorter than the shape", E1("'dtype':'F32','shape':[2,3],'data_offsets':[0,20]"), 24, A_FMT, NULL},
    {"offsets longer than the shape", E1("'dtype':'F32','shape':[2,3],'data_offsets':[0,28]"), 28, A_FMT, NULL},
    {"one offset", E1("'dtype':'F32','shape':[2,3],'data_offsets':[24]"), 24, A_FMT, NULL},
    {"three offsets", E1("'dtype':'F32','shape':[2,3],'data_offsets':[0,24,48]"), 48, A_FMT, NULL},
    {"offsets not an array", E1("'dtype':'F32','shape':[2,3],'data_offsets':'0,24'"), 24, A_FMT, NULL},
    {"overlapping tensors",
     "{'t.a':{'dtype':'F32','shape':[2,3],'data_offsets':[0,24]},'t.b':{'dtype':'F32','shape':[2,3],"
     "'data_offsets':[16,40]}}",
     40, A_FMT, NULL},
    {"two tensors on the same bytes",
     "{'t.a':{'dtype':'F32','shape':[2,3],'data_offsets':[0,24]},'t.b':{'dtype':'F32','shape':[6],"
     "'data_offsets':[0,24]}}",
     24, A_FMT, NULL},
    {"one tensor inside another",
     "{'t.a':{'dtype':'F32','shape':[2,3],'data_offsets':[0,24]},'t.b':{'dtype':'F32','shape':[1],"
     "'data_offsets':[8,12]}}",
     24, A_FMT, NULL},
    /* shapes */
    {"dim 2^32", E1("'dtype':'F32','shape':[4294967296],'data_offsets':[0,24]"), 24, A_FMT | A_SHP | A_UNS, NULL},
    {"dim 2^32+1 (1 in 32 bits)", E1("'dtype':'F32','shape':[4294967297],'data_offsets':[0,4]"), 4,
     A_FMT | A_SHP | A_UNS, NULL},
    {"dims whose product is 2^64 (0 mod 2^64)", E1("'dtype':'F32','shape':[65536,65536,65536,65536],'data_offsets':[0,0]"),
     0, A_FMT | A_SHP | A_UNS, NULL},
    {"dims whose product is 2^64+2 (2 mod 2^64, 8 bytes)",
     E1("'dtype':'F32','shape':[3074457345618258603,6],'data_offsets':[0,8]"), 8, A_FMT | A_SHP | A_UNS, NULL},
    {"dims whose product is 2^32 (0 in 32 bits)", E1("'dtype':'F32','shape':[65536,65536],'data_offsets':[0,0]"), 0,
     A_FMT | A_SHP | A_UNS, NULL},
    {"2^30 floats, 2^32 bytes (0 in 32 bits)", E1("'dtype':'F32','shape':[1073741824],'data_offsets':[0,0]"), 0,
     A_FMT | A_SHP | A_UNS, NULL},
    {"int-max F16 dims", E1("'dtype':'F16','shape':[2147483647,2147483647,2147483647,2],'data_offsets':[0,0]"),
     0, A_FMT | A_SHP | A_UNS, NULL},
    {"int-max dims", E1("'dtype':'F32','shape':[2147483647,2147483647,2147483647,2147483647],'data_offsets':[0,24]"), 24,
     A_FMT | A_SHP | A_UNS, NULL},
    {"negative dims (product +6)", E1("'dtype':'F32','shape':[-2,-3],'data_offsets':[0,24]"), 24, A_FMT | A_SHP, NULL},
    {"a negative dim", E1("'dtype':'F32','shape':[2,-3],'data_offsets':[0,24]"), 24, A_FMT | A_SHP, NULL},
    {"dim -1", E1("'dtype':'F32','shape':[-1],'data_offsets':[0,24]"), 24, A_FMT | A_SHP, NULL},
    {"five dims", E1("'dtype':'F32','shape':[1,1,1,2,3],'data_offsets':[0,24]"), 24, A_FMT | A_SHP | A_UNS, NULL},
    {"a fractional dim", E1("'dtype':'F32','shape':[2.5,3],'data_offsets':[0,24]"), 24, A_FMT, NULL},
    {"an exponent dim", E1("'dtype':'F32','shape':[2e0,3],'data_offsets':[0,24]"), 24, A_FMT, NULL},
    {"a string dim", E1("'dtype':'F32','shape':['2',3],'data_offsets':[0,24]"), 24, A_FMT, NULL},
    {"shape not an array", E1("'dtype':'F32','shape':6,'data_offsets':[0,24]"), 24, A_FMT, NULL},
    {"shape null", E1("'dtype':'F32','shape':null,'data_offsets':[0,24]"), 24, A_FMT, NULL},
    /* dtypes */
    {"unknown dtype", E1("'dtype':'X99','shape':[2,3],'data_offsets':[0,24]"), 24, A_FMT | A_UNS, "t.a"},
    {"dtype I64", E1("'dtype':'I64','shape':[3],'data_offsets':[0,24]"), 24, A_FMT | A_UNS, "t.a"},
    {"dtype F64", E1("'dtype':'F64','shape':[3],'data_offsets':[0,24]"), 24, A_FMT | A_UNS, "t.a"},
    {"dtype BOOL", E1("'dtype':'BOOL','shape':[24],'data_offsets':[0,24]"), 24, A_FMT | A_UNS, "t.a"},
    {"lower-case dtype", E1("'dtype':'f32','shape':[2,3],'data_offsets':[0,24]"), 24, A_FMT | A_UNS, "t.a"},
    {"dtype F32 with a suffix", E1("'dtype':'F32x','shape':[2,3],'data_offsets':[0,24]"), 24, A_FMT | A_UNS, "t.a"},
    {"empty dtype", E1("'dtype':'','shape':[2,3],'data_offsets':[0,24]"), 24, A_FMT | A_UNS, NULL},
    {"dtype a number", E1("'dtype':5,'shape':[2,3],'data_offsets':[0,24]"), 24, A_FMT, NULL},
    /* fields */
    {"no dtype", E1("'shape':[2,3],'data_offsets':[0,24]"), 24, A_FMT, NULL},
    {"no shape", E1("'dtype':'F32','data_offsets':[0,24]"), 24, A_FMT, NULL},
    {"no data_offsets", E1("'dtype':'F32','shape':[2,3]"), 24, A_FMT, NULL},
    {"entry a number", "{'t.a':5}", 24, A_FMT, NULL},
    {"entry an array", "{'t.a':[0,24]}", 24, A_FMT, NULL},
    {"entry null", "{'t.a':null}", 24, A_FMT, NULL},
    {"entry a string", "{'t.a':'F32'}", 24, A_FMT, NULL},
    /* names */
    {"duplicate names",
     "{'t.a':{'dtype':'F32','shape':[3],'data_offsets':[0,12]},'t.a':{'dtype':'F32','shape':[3],"
     "'data_offsets':[12,24]}}",
     24, A_FMT, "t.a"},
    {"duplicate names, one spelled with an escape",
     "{'t.a':{'dtype':'F32','shape':[3],'data_offsets':[0,12]},'t\\u002ea':{'dtype':'F32','shape':[3],"
     "'data_offsets':[12,24]}}",
     24, A_FMT, "t.a"},
    /* JSON */
    {"top level an array", "[1,2]", 24, A_FMT, NULL},
    {"top level null", "null", 24, A_FMT, NULL},
    {"top level a string", "'t.a'", 24, A_FMT, NULL},
    {"only spaces", "        ", 24, A_FMT, NULL},
    {"open brace", "{", 24, A_FMT, NULL},
    {"close brace", "}", 24, A_FMT, NULL},
    {"key without value", "{'t.a'}", 24, A_FMT, NULL},
    {"key with colon only", "{'t.a':}", 24, A_FMT, NULL},
    {"unclosed object", "{'t.a':{'dtype':'F32','shape':[2,3],'data_offsets':[0,24]}", 24, A_FMT, NULL},
    {"unclosed array", E1("'dtype':'F32','shape':[2,3,'data_offsets':[0,24]"), 24, A_FMT, NULL},
    {"an extra close", BASE_JSON "}", 24, A_FMT, NULL},
    {"trailing garbage", BASE_JSON " x", 24, A_FMT, NULL},
    {"two objects", BASE_JSON "{}", 24, A_FMT, NULL},
    {"missing comma", E1("'dtype':'F32' 'shape':[2,3],'data_offsets':[0,24]"), 24, A_FMT, NULL},
    {"missing colon", E1("'dtype' 'F32','shape':[2,3],'data_offsets':[0,24]"), 24, A_FMT, NULL},
    {"trailing comma in an object", "{'t.a':{'dtype':'F32','shape':[2,3],'data_offsets':[0,24]},}", 24, A_FMT, NULL},
    {"trailing comma in an array", E1("'dtype':'F32','shape':[2,3,],'data_offsets':[0,24]"), 24, A_FMT, NULL},
    {"leading comma", "{,'t.a':{'dtype':'F32','shape':[2,3],'data_offsets':[0,24]}}", 24, A_FMT, NULL},
    {"unquoted key", "{t.a:{'dtype':'F32','shape':[2,3],'data_offsets':[0,24]}}", 24, A_FMT, NULL},
    {"a backslash outside a string", "{\\'t.a\\':{'dtype':'F32','shape':[2,3],'data_offsets':[0,24]}}", 24, A_FMT, NULL},
    {"unterminated string", "{'t.a", 24, A_FMT, NULL},
    {"string ending in a backslash", "{'t.a\\", 24, A_FMT, NULL},
    {"bad escape", "{'t\\qa':{'dtype':'F32','shape':[2,3],'data_offsets':[0,24]}}", 24, A_FMT, NULL},
    {"short \\u escape", "{'t\\u00':{'dtype':'F32','shape':[2,3],'data_offsets':[0,24]}}", 24, A_FMT, NULL},
    {"\\u escape with a non-hex digit", "{'t\\u00g1':{'dtype':'F32','shape':[2,3],'data_offsets':[0,24]}}", 24, A_FMT,
     NULL},
    {"bad literal", "{'__metadata__':nul,'t.a':{'dtype':'F32','shape':[2,3],'data_offsets':[0,24]}}", 24, A_FMT, NULL},
    {"bad number", E1("'dtype':'F32','shape':[2,3],'data_offsets':[0,24-]"), 24, A_FMT, NULL},
    {"bad literal in an unknown field", E1("'dtype':'F32','shape':[2,3],'data_offsets':[0,24],'x':nul"), 24, A_FMT,
     NULL},
    {"bad number in an unknown field", E1("'dtype':'F32','shape':[2,3],'data_offsets':[0,24],'x':1-2e"), 24, A_FMT,
     NULL},
    {"letters in an unknown field", E1("'dtype':'F32','shape':[2,3],'data_offsets':[0,24],'x':fun"), 24, A_FMT, NULL},
    {"a lone minus", E1("'dtype':'F32','shape':[2,3],'data_offsets':[-,24]"), 24, A_FMT, NULL},
    {"a raw newline in a string", "{'t\na':{'dtype':'F32','shape':[2,3],'data_offsets':[0,24]}}", 24, A_FMT, NULL},
};
#undef E1

TEST(safetensors_rejects_bad_headers) {
    attn_context *ctx = fixed_ctx();
    size_t c, cap = 4096;
    unsigned char *img = (unsigned char *)malloc(cap);
    if (!CHECK(ctx != NULL && img != NULL, "no context")) goto done;
    for (c = 0; c < sizeof bad_st_cases / sizeof bad_st_cases[0]; c++) {
        const bad_st *b = &bad_st_cases[c];
        attn_safetensors st;
        size_t used = attn_arena_used(attn_context_arena(ctx));
        size_t n = st_image(img, cap, b->json, b->data);
        char what[160];
        attn_context_pos m = attn_context_mark(ctx);
        if (!CHECK(n > 0, "case %d does not fit", (int)c)) continue;
        sprintf(what, "%.60s (%.80s)", b->what, b->json);
        failed_as(ctx, attn_safetensors_parse(ctx, img, n, &st), b->allow, b->needle, what);
        attn_context_reset(ctx, m);
        CHECK(attn_arena_used(attn_context_arena(ctx)) == used, "arena not back after reset");
    }
done:
    free(img);
    attn_context_destroy(ctx);
}

/* A raw NUL inside the JSON (C-string functions would stop there), and the
   same header with the NUL in a name. */
TEST(safetensors_rejects_nul_bytes_in_the_header) {
    attn_context *ctx = fixed_ctx();
    unsigned char img[512];
    attn_safetensors st;
    size_t n, jl = strlen(BASE_JSON);
    if (!CHECK(ctx != NULL, "no context")) return;
    n = st_image(img, sizeof img, BASE_JSON, 24);
    img[8 + 3] = 0; /* {"t\0a": */
    failed_as(ctx, attn_safetensors_parse(ctx, img, n, &st), A_FMT, NULL, "NUL in a name");
    n = st_image(img, sizeof img, BASE_JSON, 24);
    img[8 + jl - 1] = 0; /* the last '}' */
    failed_as(ctx, attn_safetensors_parse(ctx, img, n, &st), A_FMT, NULL, "NUL for the last brace");
    n = st_image(img, sizeof img, BASE_JSON, 24);
    img[8] = 0;
    failed_as(ctx, attn_safetensors_parse(ctx, img, n, &st), A_FMT, NULL, "NUL as the first byte");
    attn_context_destroy(ctx);
}

/* Deep nesting, in __metadata__ and in a tensor's entry: an error, and no
   stack overflow (100000 levels). */
TEST(safetensors_rejects_deeply_nested_json) {
    attn_context *ctx = fixed_ctx();
    size_t depth = test_quick() ? 20000 : 100000, cap = 2 * depth + 256, n, i, k;
    char *json = (char *)malloc(cap);
    unsigned char *img = (unsigned char *)malloc(cap + 64);
    attn_safetensors st;
    if (!CHECK(ctx && json && img, "no memory")) goto done;
    for (k = 0; k < 4; k++) {
        n = 0;
        n += (size_t)sprintf(json + n, k == 1 ? "{'t.a':{'dtype':'F32','shape':[2,3],'data_offsets':[0,24],'x':"
                                                : "{'__metadata__':");
        for (i = 0; i < depth; i++) json[n++] = k == 2 ? '{' : '[';
        if (k == 2) { /* {"a":{"a":...: objects, unclosed */
            n = 0;
            n += (size_t)sprintf(json + n, "{'__metadata__':");
            for (i = 0; i < depth / 6; i++) n += (size_t)sprintf(json + n, "{'a':");
            json[n++] = '1';
            for (i = 0; i < depth / 6; i++) json[n++] = '}';
        } else if (k != 3) { /* closed: valid JSON, just deep */
            for (i = 0; i < depth; i++) json[n++] = ']';
        } /* k == 3: never closed */
        json[n] = 0;
        strcat(json, k == 1 ? "}}" : "}");
        n = st_image(img, cap + 64, json, 24);
        if (!CHECK(n > 0, "nesting case %d does not fit", (int)k)) break;
        {
            char what[64];
            sprintf(what, "nesting %d levels (case %d)", (int)depth, (int)k);
            failed_as(ctx, attn_safetensors_parse(ctx, img, n, &st), A_FMT, NULL, what);
        }
    }
done:
    free(json);
    free(img);
    attn_context_destroy(ctx);
}

/* ------------------------------------------------------------------------
   3. F16 and BF16 */

TEST(safetensors_converts_f16_and_bf16) {
    /* F16 bits -> the exact float32 bits; NaNs checked as NaN of the same sign */
    static const uint16_t h[] = {0x3C00, 0xC100, 0x7BFF, 0xFBFF, 0x0001, 0x8001, 0x03FF, 0x0400, 0x7C00, 0xFC00,
                                 0x8000, 0x0000, 0x3555, 0x3800, 0x7E00, 0xFE01, 0x7C01, 0x1234};
    static const uint32_t hf[] = {0x3F800000, 0xC0200000, 0x477FE000, 0xC77FE000, 0x33800000, 0xB3800000,
                                  0x387FC000, 0x38800000, 0x7F800000, 0xFF800000, 0x80000000, 0x00000000,
                                  0x3EAAA000, 0x3F000000, 0x7FC00000, 0xFFC02000, 0x7F802000, 0x3A468000};
    /* BF16 bits -> bits << 16 */
    static const uint16_t b[] = {0x3F80, 0xC020, 0x4049, 0x7F7F, 0x0001, 0x8000, 0x7F80, 0xFF80, 0x7FC0, 0x0080};
    enum { NH = sizeof h / sizeof h[0], NB = sizeof b / sizeof b[0] };
    attn_context *ctx = fixed_ctx();
    unsigned char img[1024];
    char json[256];
    size_t n, i, off;
    attn_safetensors st;
    int pad;
    if (!CHECK(ctx != NULL, "no context")) return;
    /* pad 0 and 1: the data starts at an even and at an odd address */
    for (pad = 0; pad < 2; pad++) {
        attn_context_pos m = attn_context_mark(ctx);
        const attn_st_entry *eh, *eb;
        attn_tensor *th, *tb;
        sprintf(json, "{'h':{'dtype':'F16','shape':[%d],'data_offsets':[0,%d]},'b':{'dtype':'BF16','shape':[2,%d],"
                      "'data_offsets':[%d,%d]}}%s",
                (int)NH, (int)(2 * NH), (int)NB / 2, (int)(2 * NH), (int)(2 * NH + 2 * NB), pad ? " " : "");
        n = st_image(img, sizeof img, json, 0);
        off = n;
        for (i = 0; i < NH; i++) put_u16(img + off + 2 * i, h[i]);
        for (i = 0; i < NB; i++) put_u16(img + off + 2 * NH + 2 * i, b[i]);
        n = off + 2 * (NH + NB);
        if (!CHECK(attn_safetensors_parse(ctx, img, n, &st) == ATTN_OK, "parse: %s", attn_error_message(ctx))) break;
        eh = attn_safetensors_find(&st, "h");
        eb = attn_safetensors_find(&st, "b");
        if (!CHECK(eh && eb, "entries")) break;
        CHECK(eh->dtype == ATTN_ST_F16 && eh->nbytes == 2 * NH, "h: dtype %d, %d bytes", eh->dtype, (int)eh->nbytes);
        CHECK(eb->dtype == ATTN_ST_BF16 && eb->nbytes == 2 * NB, "b: dtype %d, %d bytes", eb->dtype, (int)eb->nbytes);
        th = attn_tensor_1d(ctx, NH);
        tb = attn_tensor_2d(ctx, 2, NB / 2);
        if (!CHECK(th && tb, "tensors")) break;
        if (CHECK(attn_safetensors_read(ctx, eh, th) == ATTN_OK, "read F16: %s", attn_error_message(ctx)))
            for (i = 0; i < NH; i++) {
                uint32_t got = test_bits(th->data[i]);
                int want_nan = (hf[i] & 0x7F800000u) == 0x7F800000u && (hf[i] & 0x7FFFFFu);
                if (want_nan)
                    CHECK(test_is_nan(th->data[i]) && (got >> 31) == (hf[i] >> 31),
                          "F16 0x%04X (NaN) -> bits 0x%08lX, want a NaN of the same sign (pad %d)", h[i],
                          (unsigned long)got, pad);
                else
                    CHECK(got == hf[i], "F16 0x%04X -> %.9g (0x%08lX), want 0x%08lX (pad %d)", h[i], th->data[i],
                          (unsigned long)got, (unsigned long)hf[i], pad);
            }
        if (CHECK(attn_safetensors_read(ctx, eb, tb) == ATTN_OK, "read BF16: %s", attn_error_message(ctx)))
            for (i = 0; i < NB; i++) {
                uint32_t got = test_bits(tb->data[i]), want = (uint32_t)b[i] << 16;
                if ((b[i] & 0x7F80) == 0x7F80 && (b[i] & 0x7F))
                    CHECK(test_is_nan(tb->data[i]), "BF16 0x%04X -> 0x%08lX, want NaN", b[i], (unsigned long)got);
                else
                    CHECK(got == want, "BF16 0x%04X -> %.9g (0x%08lX), want 0x%08lX (pad %d)", b[i], tb->data[i],
                          (unsigned long)got, (unsigned long)want, pad);
            }
        CHECK(tb->data[2] == 3.140625f, "BF16 pi (0x4049) -> %.9g, want 3.140625", tb->data[2]);
        attn_context_reset(ctx, m);
    }
    /* F16 / BF16 sizes are checked at 2 bytes per element */
    {
        static const char *bad[] = {
            "{'h':{'dtype':'F16','shape':[3],'data_offsets':[0,12]}}",
            "{'h':{'dtype':'BF16','shape':[3],'data_offsets':[0,3]}}",
            "{'h':{'dtype':'F16','shape':[3],'data_offsets':[0,4]}}",
        };
        for (i = 0; i < 3; i++) {
            n = st_image(img, sizeof img, bad[i], 12);
            failed_as(ctx, attn_safetensors_parse(ctx, img, n, &st), A_FMT, NULL, bad[i]);
        }
    }
    attn_context_destroy(ctx);
}

/* Unaligned F32 data (an odd header length) reads correctly (and with no
   misaligned loads under UBSan). */
TEST(safetensors_reads_unaligned_f32) {
    attn_context *ctx = fixed_ctx();
    unsigned char img[512];
    int pad;
    if (!CHECK(ctx != NULL, "no context")) return;
    for (pad = 0; pad < 4; pad++) {
        char json[160];
        attn_safetensors st;
        attn_tensor *t;
        size_t n, i;
        attn_context_pos m = attn_context_mark(ctx);
        sprintf(json, "{'t.a':{'dtype':'F32','shape':[2,3],'data_offsets':[0,24]}}%.*s", pad, "   ");
        n = st_image(img, sizeof img, json, 24);
        if (!CHECK(attn_safetensors_parse(ctx, img + 0, n, &st) == ATTN_OK, "pad %d: %s", pad, attn_error_message(ctx)))
            continue;
        t = attn_tensor_2d(ctx, 2, 3);
        if (t && CHECK(attn_safetensors_read(ctx, &st.entries[0], t) == ATTN_OK, "read: %s", attn_error_message(ctx)))
            for (i = 0; i < 6; i++) CHECK(t->data[i] == ramp(i), "pad %d: [%d] = %g", pad, (int)i, t->data[i]);
        attn_context_reset(ctx, m);
    }
    attn_context_destroy(ctx);
}

/* ------------------------------------------------------------------------
   4. Parameters: save / load */

typedef struct pmodel {
    attn_context *ctx;
    attn_encoder_layer el;
} pmodel;

/* An encoder layer under "enc." and, when extra > 0, a parameter "head.bias"
   of extra floats (extra2 > 0: shape (extra, extra2)). */
static int pm_make(pmodel *m, uint64_t seed, int extra, int extra2) {
    attn_context_desc d;
    attn_layer_desc ld;
    memset(&d, 0, sizeof d);
    d.seed = seed;
    m->ctx = attn_context_create(&d);
    if (!CHECK(m->ctx != NULL, "no context")) return 0;
    memset(&ld, 0, sizeof ld);
    ld.d_model = 8;
    ld.heads = 2;
    ld.dim_feedforward = 12;
    if (!CHECK(attn_encoder_layer_init(m->ctx, &m->el, "enc.", &ld) == ATTN_OK, "encoder layer: %s",
               attn_error_message(m->ctx)))
        return 0;
    if (extra > 0) {
        int shape[2];
        attn_tensor *t;
        shape[0] = extra;
        shape[1] = extra2;
        t = attn_param_new(m->ctx, "head.bias", extra2 > 0 ? 2 : 1, shape);
        if (!CHECK(t != NULL, "head.bias: %s", attn_error_message(m->ctx))) return 0;
        attn_init_uniform(m->ctx, t, -1.0f, 1.0f);
    }
    /* norms start at 1 and 0 in PyTorch: give them values so a missed copy shows */
    {
        attn_param *p;
        for (p = attn_params(m->ctx); p; p = p->next)
            if (strstr(p->name, "norm")) attn_init_uniform(m->ctx, p->tensor, -1.0f, 1.0f);
    }
    return 1;
}

/* All parameter values, in registration order, into one malloc'd array. */
static float *pm_snapshot(attn_context *ctx, size_t *count) {
    attn_param *p;
    size_t n = 0, k = 0;
    float *v;
    for (p = attn_params(ctx); p; p = p->next) n += attn_tensor_numel(p->tensor);
    v = (float *)malloc((n ? n : 1) * sizeof(float));
    if (!v) return NULL;
    for (p = attn_params(ctx); p; p = p->next) {
        size_t c = attn_tensor_numel(p->tensor);
        memcpy(v + k, p->tensor->data, c * sizeof(float));
        k += c;
    }
    *count = n;
    return v;
}

static unsigned char *pm_save(attn_context *ctx, size_t *size) {
    size_t n = attn_params_save_bytes(ctx);
    unsigned char *buf;
    *size = 0;
    if (!CHECK(n > 8, "attn_params_save_bytes = %d: %s", (int)n, attn_error_message(ctx))) return NULL;
    buf = (unsigned char *)malloc(n);
    if (!buf) return NULL;
    if (!CHECK(attn_params_save(ctx, buf, n) == ATTN_OK, "attn_params_save: %s", attn_error_message(ctx))) {
        free(buf);
        return NULL;
    }
    *size = n;
    return buf;
}

TEST(params_save_load_round_trip) {
    pmodel a, b;
    unsigned char *buf = NULL;
    size_t size = 0, na = 0, nb = 0;
    float *va = NULL, *vb = NULL;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    if (!pm_make(&a, 1, 5, 0) || !pm_make(&b, 2, 5, 0)) goto done;
    buf = pm_save(a.ctx, &size);
    if (!buf) goto done;
    /* the image is a safetensors file with every parameter as F32, its data
       section exactly the tensors (no holes: the reference reader insists) */
    {
        attn_safetensors st;
        attn_param *p;
        int count = 0, i;
        size_t sum = 0, hlen = (size_t)get_u64(buf);
        if (CHECK(attn_safetensors_parse(a.ctx, buf, size, &st) == ATTN_OK, "parse the saved image: %s",
                  attn_error_message(a.ctx))) {
            for (p = attn_params(a.ctx); p; p = p->next) {
                const attn_st_entry *e = attn_safetensors_find(&st, p->name);
                count++;
                if (!CHECK(e != NULL, "%s is not in the saved image", p->name)) continue;
                CHECK(e->dtype == ATTN_ST_F32 && e->ndim == p->tensor->ndim, "%s: dtype %d ndim %d", p->name, e->dtype,
                      e->ndim);
                for (i = 0; i < e->ndim && i < ATTN_MAX_DIMS; i++)
                    CHECK(e->shape[i] == p->tensor->shape[i], "%s: dim %d is %d, want %d", p->name, i, e->shape[i],
                          p->tensor->shape[i]);
                CHECK(e->nbytes == attn_tensor_numel(p->tensor) * 4 &&
                          memcmp(e->data, p->tensor->data, e->nbytes) == 0,
                      "%s: the saved bytes differ", p->name);
            }
            CHECK(st.count == count, "the image has %d tensors for %d parameters", st.count, count);
            for (i = 0; i < st.count; i++) sum += st.entries[i].nbytes;
            CHECK(8 + hlen + sum == size, "8 + header %d + tensors %d = %d bytes, the image has %d (holes?)", (int)hlen,
                  (int)sum, (int)(8 + hlen + sum), (int)size);
            CHECK(buf[8] == '{', "the header starts with 0x%02X, not '{'", buf[8]);
            CHECK(attn_safetensors_find(&st, "enc.self_attn.in_proj_weight") &&
                      attn_safetensors_find(&st, "enc.self_attn.out_proj.weight") &&
                      attn_safetensors_find(&st, "enc.linear1.weight") &&
                      attn_safetensors_find(&st, "enc.norm2.bias"),
                  "PyTorch's state_dict names are not in the image");
        }
    }
    /* a buffer one byte short is an error, and writes nothing past it */
    {
        unsigned char *small = (unsigned char *)malloc(size - 1);
        if (small) {
            failed_as(a.ctx, attn_params_save(a.ctx, small, size - 1), A_INV | A_FMT | A_SHP | (1u << ATTN_ERR_OUT_OF_MEMORY),
                      NULL, "attn_params_save into size - 1 bytes");
            free(small);
        }
        failed_as(a.ctx, attn_params_save(a.ctx, NULL, size), A_INV, NULL, "attn_params_save into NULL");
    }
    /* load into a fresh model with other values: every bit comes back */
    va = pm_snapshot(a.ctx, &na);
    vb = pm_snapshot(b.ctx, &nb);
    if (!va || !vb || !CHECK(na == nb, "models differ")) goto done;
    CHECK(!bits_equal(va, vb, na), "the two models start out equal; the test proves nothing");
    free(vb);
    if (CHECK(attn_params_load(b.ctx, buf, size, 1) == ATTN_OK, "load: %s", attn_error_message(b.ctx))) {
        vb = pm_snapshot(b.ctx, &nb);
        CHECK(vb && bits_equal(va, vb, na), "the loaded parameters are not bit-identical to the saved ones");
    } else
        vb = NULL;
    /* saving again gives the same bytes */
    {
        size_t size2 = 0;
        unsigned char *buf2 = pm_save(b.ctx, &size2);
        CHECK(buf2 && size2 == size && memcmp(buf, buf2, size) == 0, "save -> load -> save changed the image");
        free(buf2);
    }
done:
    free(buf);
    free(va);
    free(vb);
    attn_context_destroy(a.ctx);
    attn_context_destroy(b.ctx);
}

/* Special values survive save -> load bit for bit (NaN payloads included). */
TEST(params_round_trip_special_values) {
    static const uint32_t special[] = {0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0x7FC0DEAD,
                                       0x00000001, 0x807FFFFF, 0x7F7FFFFF, 0x3F800000};
    enum { NS = sizeof special / sizeof special[0] };
    attn_context *a = attn_context_create(NULL), *b = attn_context_create(NULL);
    attn_tensor *ta, *tb;
    unsigned char *buf = NULL;
    size_t size = 0, i;
    if (!CHECK(a && b, "contexts")) goto done;
    ta = attn_param_new(a, "special", 1, (const int[]){NS});
    tb = attn_param_new(b, "special", 1, (const int[]){NS});
    if (!CHECK(ta && tb, "params")) goto done;
    for (i = 0; i < NS; i++) memcpy(&ta->data[i], &special[i], 4);
    buf = pm_save(a, &size);
    if (!buf) goto done;
    if (CHECK(attn_params_load(b, buf, size, 1) == ATTN_OK, "load: %s", attn_error_message(b)))
        for (i = 0; i < NS; i++)
            CHECK(test_bits(tb->data[i]) == special[i], "0x%08lX came back as 0x%08lX", (unsigned long)special[i],
                  (unsigned long)test_bits(tb->data[i]));
done:
    free(buf);
    attn_context_destroy(a);
    attn_context_destroy(b);
}

TEST(params_load_strict_missing_and_wrong_shape) {
    pmodel a, c, d, e;
    unsigned char *buf_a = NULL, *buf_c = NULL;
    size_t sa = 0, sc = 0, n0 = 0, n1 = 0;
    float *before = NULL, *after = NULL;
    attn_status s;
    memset(&a, 0, sizeof a);
    memset(&c, 0, sizeof c);
    memset(&d, 0, sizeof d);
    memset(&e, 0, sizeof e);
    /* a: the layer; c: the layer + head.bias (5); d: the layer + head.bias (6);
       e: the layer + head.bias (5, 1): same numel as c's, another shape */
    if (!pm_make(&a, 1, 0, 0) || !pm_make(&c, 3, 5, 0) || !pm_make(&d, 4, 6, 0) || !pm_make(&e, 5, 5, 1)) goto done;
    buf_a = pm_save(a.ctx, &sa);
    buf_c = pm_save(c.ctx, &sc);
    if (!buf_a || !buf_c) goto done;

    /* c's file into a: head.bias is extra. Strict: an error naming it, a unchanged. */
    before = pm_snapshot(a.ctx, &n0);
    s = attn_params_load(a.ctx, buf_c, sc, 1);
    failed_as(a.ctx, s, A_FMT | A_INV | A_SHP, "head.bias", "strict load with an extra tensor");
    after = pm_snapshot(a.ctx, &n1);
    CHECK(before && after && n0 == n1 && bits_equal(before, after, n0), "a failed strict load changed parameters");
    free(after);
    after = NULL;
    /* non-strict: loads, and a's layer now has c's values */
    s = attn_params_load(a.ctx, buf_c, sc, 0);
    if (CHECK(s == ATTN_OK, "non-strict load with an extra tensor: %s", attn_error_message(a.ctx))) {
        attn_param *p;
        int same = 1;
        for (p = attn_params(a.ctx); p; p = p->next) {
            attn_param *q = attn_param_find(c.ctx, p->name);
            if (!q || memcmp(p->tensor->data, q->tensor->data, attn_tensor_numel(p->tensor) * 4) != 0) same = 0;
        }
        CHECK(same, "non-strict load: the layer's values are not c's");
    }
    free(before);
    before = NULL;

    /* a's file into c: head.bias is missing, strict or not. Nothing changes. */
    before = pm_snapshot(c.ctx, &n0);
    failed_as(c.ctx, attn_params_load(c.ctx, buf_a, sa, 1), A_FMT | A_INV | A_SHP, "head.bias",
              "strict load with a missing parameter");
    failed_as(c.ctx, attn_params_load(c.ctx, buf_a, sa, 0), A_FMT | A_INV | A_SHP, "head.bias",
              "non-strict load with a missing parameter");
    after = pm_snapshot(c.ctx, &n1);
    CHECK(before && after && n0 == n1 && bits_equal(before, after, n0),
          "a load that failed on a missing parameter changed parameters");
    free(before);
    free(after);
    before = after = NULL;

    /* c's file into d (head.bias 6 vs 5) and e ((5, 1) vs (5)): a wrong shape,
       named; nothing changes (the layer, listed before head.bias, included). */
    before = pm_snapshot(d.ctx, &n0);
    failed_as(d.ctx, attn_params_load(d.ctx, buf_c, sc, 1), A_SHP | A_FMT, "head.bias", "load with a wrong shape (6 vs 5)");
    failed_as(d.ctx, attn_params_load(d.ctx, buf_c, sc, 0), A_SHP | A_FMT, "head.bias",
              "non-strict load with a wrong shape");
    after = pm_snapshot(d.ctx, &n1);
    CHECK(before && after && n0 == n1 && bits_equal(before, after, n0), "a load that failed on a shape changed parameters");
    free(before);
    free(after);
    before = after = NULL;
    before = pm_snapshot(e.ctx, &n0);
    failed_as(e.ctx, attn_params_load(e.ctx, buf_c, sc, 0), A_SHP | A_FMT, "head.bias",
              "load of a (5) tensor into a (5, 1) parameter");
    after = pm_snapshot(e.ctx, &n1);
    CHECK(before && after && n0 == n1 && bits_equal(before, after, n0), "a load that failed on a rank changed parameters");

    /* every truncation of a valid image fails, and changes nothing */
    {
        size_t k, step = test_quick() ? 7 : 1;
        int bad = 0;
        free(before);
        free(after);
        before = pm_snapshot(c.ctx, &n0);
        for (k = 0; k < sc; k += step) {
            s = attn_params_load(c.ctx, buf_c, k, 0);
            if (s == ATTN_OK || !attn_error_message(c.ctx)[0]) {
                if (!bad) CHECK(0, "attn_params_load of the first %d of %d bytes: status %d", (int)k, (int)sc, (int)s);
                bad++;
            }
            attn_error_clear(c.ctx);
        }
        after = pm_snapshot(c.ctx, &n1);
        CHECK(bad == 0, "%d truncations loaded", bad);
        CHECK(before && after && bits_equal(before, after, n0), "failed loads of truncations changed parameters");
    }
    /* garbage is not a parameter file */
    failed_as(c.ctx, attn_params_load(c.ctx, "\x01\0\0\0\0\0\0\0{", 9, 0), A_FMT, NULL, "a 9-byte image");
    failed_as(c.ctx, attn_params_load(c.ctx, NULL, 0, 0), A_FMT | A_INV, NULL, "NULL, 0");
done:
    free(before);
    free(after);
    free(buf_a);
    free(buf_c);
    attn_context_destroy(a.ctx);
    attn_context_destroy(c.ctx);
    attn_context_destroy(d.ctx);
    attn_context_destroy(e.ctx);
}

/* attn_params_load converts F16 and BF16 tensors. */
TEST(params_load_converts_half_types) {
    attn_context *ctx = attn_context_create(NULL);
    attn_tensor *w, *v;
    unsigned char img[512];
    size_t n, off;
    static const uint16_t hv[] = {0x3C00, 0xC100, 0x7BFF, 0x0001};
    static const uint16_t bv[] = {0x3F80, 0xC020, 0x4049};
    if (!CHECK(ctx != NULL, "context")) return;
    w = attn_param_new(ctx, "w", 2, (const int[]){2, 2});
    v = attn_param_new(ctx, "v", 1, (const int[]){3});
    if (!CHECK(w && v, "params")) goto done;
    n = st_image(img, sizeof img,
                 "{'w':{'dtype':'F16','shape':[2,2],'data_offsets':[0,8]},'v':{'dtype':'BF16','shape':[3],"
                 "'data_offsets':[8,14]}}",
                 0);
    off = n;
    put_u16(img + off, hv[0]);
    put_u16(img + off + 2, hv[1]);
    put_u16(img + off + 4, hv[2]);
    put_u16(img + off + 6, hv[3]);
    put_u16(img + off + 8, bv[0]);
    put_u16(img + off + 10, bv[1]);
    put_u16(img + off + 12, bv[2]);
    n = off + 14;
    if (CHECK(attn_params_load(ctx, img, n, 1) == ATTN_OK, "load: %s", attn_error_message(ctx))) {
        CHECK(w->data[0] == 1.0f && w->data[1] == -2.5f && w->data[2] == 65504.0f &&
                  w->data[3] == 5.9604644775390625e-08f,
              "F16 -> %g %g %g %g", w->data[0], w->data[1], w->data[2], w->data[3]);
        CHECK(v->data[0] == 1.0f && v->data[1] == -2.5f && v->data[2] == 3.140625f, "BF16 -> %g %g %g", v->data[0],
              v->data[1], v->data[2]);
    }
done:
    attn_context_destroy(ctx);
}

/* ------------------------------------------------------------------------
   5. .npy */

TEST(npy_parse_versions_1_2_3) {
    attn_context *ctx = fixed_ctx();
    unsigned char img[1024];
    static const char *dicts[] = {
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
        "{'shape': (2, 3), 'fortran_order': False, 'descr': '<f4'}",
        "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2,3)}",
        "{'descr':'<f4','fortran_order':False,'shape':(2,3,)}",
    };
    int major, d;
    if (!CHECK(ctx != NULL, "no context")) return;
    for (major = 1; major <= 3; major++)
        for (d = 0; d < 4; d++) {
            attn_context_pos m = attn_context_mark(ctx);
            size_t n = npy_image(img, sizeof img, major, dicts[d], 24), i;
            attn_tensor *t = attn_npy_parse(ctx, img, n);
            if (!CHECK(t != NULL, "version %d.0, %s: %s", major, dicts[d], attn_error_message(ctx))) {
                attn_error_clear(ctx);
                continue;
            }
            CHECK(t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 && attn_tensor_is_contiguous(t),
                  "v%d: ndim %d shape %d %d", major, t->ndim, t->shape[0], t->shape[1]);
            for (i = 0; i < 6; i++) CHECK(t->data[i] == ramp(i), "v%d: [%d] = %g", major, (int)i, t->data[i]);
            CHECK((const unsigned char *)t->data < img || (const unsigned char *)t->data >= img + n,
                  "the tensor points into the buffer; the header says it is copied");
            attn_context_reset(ctx, m);
        }
    /* ranks 0..4, and an empty tensor */
    {
        static const char *shapes[] = {"()", "(5,)", "(1, 5)", "(1, 2, 3)", "(2, 1, 2, 2)", "(0, 3)"};
        static const int ndims[] = {0, 1, 2, 3, 4, 2};
        static const int numels[] = {1, 5, 5, 6, 8, 0};
        for (d = 0; d < 6; d++) {
            char dict[128];
            attn_context_pos m = attn_context_mark(ctx);
            attn_tensor *t;
            size_t n, i;
            sprintf(dict, "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }", shapes[d]);
            n = npy_image(img, sizeof img, 1, dict, (size_t)numels[d] * 4);
            t = attn_npy_parse(ctx, img, n);
            if (!CHECK(t != NULL, "shape %s: %s", shapes[d], attn_error_message(ctx))) {
                attn_error_clear(ctx);
                continue;
            }
            CHECK(t->ndim == ndims[d] && (int)attn_tensor_numel(t) == numels[d], "shape %s: ndim %d numel %d", shapes[d],
                  t->ndim, (int)attn_tensor_numel(t));
            for (i = 0; i < (size_t)numels[d]; i++) CHECK(t->data[i] == ramp(i), "%s: [%d] = %g", shapes[d], (int)i, t->data[i]);
            attn_context_reset(ctx, m);
        }
    }
    /* unaligned buffers */
    {
        unsigned char *big = (unsigned char *)malloc(sizeof img + 8);
        int off;
        for (off = 1; big && off < 4; off++) {
            size_t n = npy_image(big + off, sizeof img, 1, dicts[0], 24), i;
            attn_tensor *t = attn_npy_parse(ctx, big + off, n);
            if (CHECK(t != NULL, "at offset %d: %s", off, attn_error_message(ctx)))
                for (i = 0; i < 6; i++) CHECK(t->data[i] == ramp(i), "offset %d: [%d] = %g", off, (int)i, t->data[i]);
            attn_error_clear(ctx);
        }
        free(big);
    }
    attn_context_destroy(ctx);
}

/* Empty tensors whose other dims multiply past 2^31 (and 2^32): zero
   elements, so no element count overflows, but a row-major stride would. An
   empty tensor of that shape, or an error with a message; never an overflow
   (UBSan) on the way. */
TEST(empty_tensors_with_huge_dims) {
    static const char *shapes[] = {"(0, 65536, 65536)", "(65536, 65536, 0)", "(2, 0, 2147483647, 2147483647)"};
    static const char *st_shapes[] = {"[0,65536,65536]", "[65536,65536,0]", "[2,0,2147483647,2147483647]"};
    attn_context *ctx = fixed_ctx();
    unsigned char img[512];
    int c;
    if (!CHECK(ctx != NULL, "no context")) return;
    for (c = 0; c < 3; c++) {
        char text[160];
        attn_tensor *t;
        attn_safetensors st;
        attn_status s;
        attn_context_pos m = attn_context_mark(ctx);
        size_t n;
        sprintf(text, "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }", shapes[c]);
        n = npy_image(img, sizeof img, 1, text, 0);
        t = attn_npy_parse(ctx, img, n);
        if (t)
            CHECK(attn_tensor_numel(t) == 0 && t->ndim == (c == 2 ? 4 : 3), ".npy %s: numel %d ndim %d", shapes[c],
                  (int)attn_tensor_numel(t), t->ndim);
        else
            failed_as(ctx, attn_error_status(ctx), A_FMT | A_SHP | A_UNS, NULL, text);
        sprintf(text, "{'e':{'dtype':'F32','shape':%s,'data_offsets':[0,0]}}", st_shapes[c]);
        n = st_image(img, sizeof img, text, 0);
        s = attn_safetensors_parse(ctx, img, n, &st);
        if (s == ATTN_OK) {
            attn_tensor *u = attn_tensor_new(ctx, st.entries[0].ndim, st.entries[0].shape);
            if (u)
                CHECK(attn_safetensors_read(ctx, &st.entries[0], u) == ATTN_OK, "read %s: %s", text,
                      attn_error_message(ctx));
            attn_error_clear(ctx);
        } else {
            failed_as(ctx, s, A_FMT | A_SHP | A_UNS, NULL, text);
        }
        attn_context_reset(ctx, m);
    }
    attn_context_destroy(ctx);
}

typedef struct bad_npy {
    const char *what, *dict;
    int major;
    size_t data;
    unsigned allow;
} bad_npy;

#define NPY_DICT(descr, fo, shape) "{'descr': '" descr "', 'fortran_order': " fo ", 'shape': " shape ", }"
static const bad_npy bad_npy_cases[] = {
    {"big-endian >f4", NPY_DICT(">f4", "False", "(2, 3)"), 1, 24, A_UNS | A_FMT},
    {"float64 <f8", NPY_DICT("<f8", "False", "(2, 3)"), 1, 48, A_UNS | A_FMT},
    {"bool |b1", NPY_DICT("|b1", "False", "(2, 3)"), 1, 6, A_UNS | A_FMT},
    {"int32 <i4", NPY_DICT("<i4", "False", "(2, 3)"), 1, 24, A_UNS | A_FMT},
    {"float16 <f2", NPY_DICT("<f2", "False", "(2, 3)"), 1, 12, A_UNS | A_FMT},
    {"native =f4", NPY_DICT("=f4", "False", "(2, 3)"), 1, 24, A_UNS | A_FMT},
    {"a structured dtype", "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2, 3), }", 1, 24, A_UNS | A_FMT},
    {"an empty descr", NPY_DICT("", "False", "(2, 3)"), 1, 24, A_UNS | A_FMT},
    {"<f4 with a suffix", NPY_DICT("<f4x", "False", "(2, 3)"), 1, 24, A_UNS | A_FMT},
    {"fortran_order True", NPY_DICT("<f4", "True", "(2, 3)"), 1, 24, A_UNS | A_FMT},
    {"fortran_order 1", NPY_DICT("<f4", "1", "(2, 3)"), 1, 24, A_UNS | A_FMT},
    {"no descr", "{'fortran_order': False, 'shape': (2, 3), }", 1, 24, A_FMT},
    {"no shape", "{'descr': '<f4', 'fortran_order': False, }", 1, 24, A_FMT},
    {"no fortran_order", "{'descr': '<f4', 'shape': (2, 3), }", 1, 24, A_FMT},
    {"data truncated", NPY_DICT("<f4", "False", "(2, 3)"), 1, 23, A_FMT},
    {"no data", NPY_DICT("<f4", "False", "(2, 3)"), 1, 0, A_FMT},
    {"negative dim", NPY_DICT("<f4", "False", "(-2, -3)"), 1, 24, A_FMT | A_SHP},
    {"dim -1", NPY_DICT("<f4", "False", "(-1,)"), 1, 24, A_FMT | A_SHP},
    {"dim 2^32+1", NPY_DICT("<f4", "False", "(4294967297,)"), 1, 4, A_FMT | A_SHP | A_UNS},
    {"product 2^64 (0 mod 2^64)", NPY_DICT("<f4", "False", "(65536, 65536, 65536, 65536)"), 1, 0, A_FMT | A_SHP | A_UNS},
    {"product 2^32 (0 in 32 bits)", NPY_DICT("<f4", "False", "(65536, 65536)"), 1, 0, A_FMT | A_SHP | A_UNS},
    {"2^30 floats (2^32 bytes)", NPY_DICT("<f4", "False", "(1073741824,)"), 1, 0, A_FMT | A_SHP | A_UNS},
    {"product 2^64+2", NPY_DICT("<f4", "False", "(3074457345618258603, 6)"), 1, 8, A_FMT | A_SHP | A_UNS},
    {"a dim past 2^64", NPY_DICT("<f4", "False", "(18446744073709551617,)"), 1, 4, A_FMT | A_SHP | A_UNS},
    {"five dims", NPY_DICT("<f4", "False", "(1, 1, 1, 2, 3)"), 1, 24, A_FMT | A_SHP | A_UNS},
    {"a fractional dim", NPY_DICT("<f4", "False", "(2.5, 3)"), 1, 24, A_FMT},
    {"a string dim", NPY_DICT("<f4", "False", "('2', 3)"), 1, 24, A_FMT},
    {"shape a list", NPY_DICT("<f4", "False", "[2, 3]"), 1, 24, A_FMT},
    {"shape an int", NPY_DICT("<f4", "False", "6"), 1, 24, A_FMT},
    {"shape unclosed", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, }", 1, 24, A_FMT},
    {"dims without a comma", NPY_DICT("<f4", "False", "(2 3)"), 1, 24, A_FMT},
    {"two commas", NPY_DICT("<f4", "False", "(2,, 3)"), 1, 24, A_FMT},
    {"a lone comma", NPY_DICT("<f4", "False", "(,)"), 1, 0, A_FMT},
    {"dict unclosed", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), ", 1, 24, A_FMT},
    {"not a dict", "('<f4', False, (2, 3))", 1, 24, A_FMT},
    {"empty header", "", 1, 24, A_FMT},
    {"unterminated string", "{'descr': '<f4, 'fortran_order': False, 'shape': (2, 3), }", 1, 24, A_FMT | A_UNS},
    {"garbage after the dict", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } x", 1, 24, A_FMT},
    {"version 2 big-endian", NPY_DICT(">f4", "False", "(2, 3)"), 2, 24, A_UNS | A_FMT},
    /* numpy's header has exactly these three keys; a fourth is refused, and its
       value must never be taken for one of them (a silently wrong tensor) */
    {"an extra key", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x': 1, }", 1, 24, A_FMT | A_UNS},
    {"'shape' spoofed in another key's string",
     "{'x': \"'shape': (1,)\", 'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 1, 24, A_FMT | A_UNS},
    {"'descr' spoofed in another key's string",
     "{'x': \"'descr': '<f4'\", 'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", 1, 24, A_FMT | A_UNS},
    {"'fortran_order' spoofed in another key's string",
     "{'x': \"'fortran_order': False\", 'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 1, 24,
     A_FMT | A_UNS},
    {"'shape' as a value", "{'descr': 'shape', 'fortran_order': False, 'shape': (2, 3), }", 1, 24, A_FMT | A_UNS},
    {"version 3 fortran", NPY_DICT("<f4", "True", "(2, 3)"), 3, 24, A_UNS | A_FMT},
};
#undef NPY_DICT

TEST(npy_rejects_bad_input) {
    attn_context *ctx = fixed_ctx();
    unsigned char img[1024];
    size_t c, n, k;
    char what[200];
    const char *good = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    if (!CHECK(ctx != NULL, "no context")) return;
    for (c = 0; c < sizeof bad_npy_cases / sizeof bad_npy_cases[0]; c++) {
        const bad_npy *b = &bad_npy_cases[c];
        attn_tensor *t;
        n = npy_image(img, sizeof img, b->major, b->dict, b->data);
        if (!CHECK(n > 0, "case %d does not fit", (int)c)) continue;
        t = attn_npy_parse(ctx, img, n);
        sprintf(what, "npy %.40s (%.120s)", b->what, b->dict);
        if (!CHECK(t == NULL, "%s: parsed, ndim %d", what, t ? t->ndim : -1)) continue;
        failed_as(ctx, attn_error_status(ctx), b->allow, NULL, what);
    }
    /* the envelope */
    n = npy_image(img, sizeof img, 1, good, 24);
    for (k = 0; k < n; k++) { /* every truncation */
        attn_tensor *t = attn_npy_parse(ctx, img, k);
        sprintf(what, "the first %d of %d bytes of a valid .npy", (int)k, (int)n);
        if (!CHECK(t == NULL, "%s parsed", what)) break;
        if (!failed_as(ctx, attn_error_status(ctx), A_FMT | (k == 0 ? A_INV : 0), NULL, what)) break;
    }
    CHECK(attn_npy_parse(ctx, NULL, 0) == NULL, "NULL, 0 parsed");
    attn_error_clear(ctx);
    {
        static const struct { int off; unsigned char v; unsigned allow; const char *what; } pokes[] = {
            {0, 0x92, A_FMT, "bad magic byte"}, {1, 'n', A_FMT, "lower-case magic"}, {6, 0, A_FMT | A_UNS, "version 0"},
            {6, 4, A_FMT | A_UNS, "version 4"}, {6, 255, A_FMT | A_UNS, "version 255"},
        };
        for (c = 0; c < sizeof pokes / sizeof pokes[0]; c++) {
            n = npy_image(img, sizeof img, 1, good, 24);
            img[pokes[c].off] = pokes[c].v;
            if (CHECK(attn_npy_parse(ctx, img, n) == NULL, "%s parsed", pokes[c].what))
                failed_as(ctx, attn_error_status(ctx), pokes[c].allow, NULL, pokes[c].what);
        }
    }
    {
        /* header lengths that lie: past the end, 0xFFFF / 0xFFFFFFFF, short of the dict */
        static const uint32_t lies1[] = {0, 1, 10, 0xFFFF, 200};
        static const uint32_t lies2[] = {0xFFFFFFFFu, 0x80000000u, 0x10000040u, 1000};
        for (c = 0; c < sizeof lies1 / sizeof lies1[0]; c++) {
            n = npy_image_h(img, sizeof img, 1, 0, &lies1[c], good, 24);
            sprintf(what, "v1 header length %lu", (unsigned long)lies1[c]);
            if (CHECK(attn_npy_parse(ctx, img, n) == NULL, "%s parsed", what))
                failed_as(ctx, attn_error_status(ctx), A_FMT, NULL, what);
        }
        for (c = 0; c < sizeof lies2 / sizeof lies2[0]; c++) {
            n = npy_image_h(img, sizeof img, 2, 0, &lies2[c], good, 24);
            sprintf(what, "v2 header length %lu", (unsigned long)lies2[c]);
            if (CHECK(attn_npy_parse(ctx, img, n) == NULL, "%s parsed", what))
                failed_as(ctx, attn_error_status(ctx), A_FMT, NULL, what);
        }
    }
    {
        /* NUL inside the header */
        n = npy_image(img, sizeof img, 1, good, 24);
        img[10 + 3] = 0;
        if (CHECK(attn_npy_parse(ctx, img, n) == NULL, "NUL in the dict parsed"))
            failed_as(ctx, attn_error_status(ctx), A_FMT, NULL, "NUL in the dict");
    }
    {
        /* deep nesting of the shape tuple */
        size_t depth = 50000, i, m = 0;
        char *dict = (char *)malloc(2 * depth + 128);
        unsigned char *big = (unsigned char *)malloc(2 * depth + 512);
        if (dict && big) {
            m += (size_t)sprintf(dict, "{'descr': '<f4', 'fortran_order': False, 'shape': ");
            for (i = 0; i < depth; i++) dict[m++] = '(';
            for (i = 0; i < depth; i++) dict[m++] = ')';
            strcpy(dict + m, ", }");
            n = npy_image(big, 2 * depth + 512, 2, dict, 24);
            if (CHECK(n > 0 && attn_npy_parse(ctx, big, n) == NULL, "a deeply nested shape parsed"))
                failed_as(ctx, attn_error_status(ctx), A_FMT, NULL, "deeply nested shape");
        }
        free(dict);
        free(big);
    }
    attn_context_destroy(ctx);
}

TEST(npy_write_and_parse_round_trip) {
    attn_context *ctx = attn_context_create(NULL);
    static const int shapes[][4] = {{0, 0, 0, 0}, {7, 0, 0, 0}, {2, 3, 0, 0}, {2, 3, 4, 0}, {2, 1, 3, 2}, {0, 4, 0, 0}};
    static const int ndims[] = {0, 1, 2, 3, 4, 2};
    static const char *shape_text[] = {"'shape': ()", "'shape': (7,)", "'shape': (2, 3)", "'shape': (2, 3, 4)",
                                       "'shape': (2, 1, 3, 2)", "'shape': (0, 4)"};
    int c;
    test_rng r;
    if (!CHECK(ctx != NULL, "context")) return;
    test_rng_seed(&r, 11);
    for (c = 0; c < 6; c++) {
        attn_tensor *t = attn_tensor_new(ctx, ndims[c], shapes[c]), *u;
        size_t n, numel, hl;
        unsigned char *buf;
        if (!CHECK(t != NULL, "tensor %d: %s", c, attn_error_message(ctx))) continue;
        numel = attn_tensor_numel(t);
        test_fill(&r, t->data, numel, -10.0f, 10.0f);
        if (numel > 1) memcpy(&t->data[1], &(uint32_t){0x7FC0DEADu}, 4); /* a NaN payload */
        n = attn_npy_bytes(t);
        if (!CHECK(n >= 64 + numel * 4, "attn_npy_bytes %d for %d floats", (int)n, (int)numel)) continue;
        buf = (unsigned char *)malloc(n);
        if (!buf) continue;
        if (CHECK(attn_npy_write(ctx, t, buf, n) == ATTN_OK, "write %d: %s", c, attn_error_message(ctx))) {
            char header[256];
            /* what numpy.load needs: magic, version 1.0, the header to a multiple
               of 64 ending in '\n', a Python dict literal with numpy's spelling */
            hl = (size_t)buf[8] | (size_t)buf[9] << 8;
            CHECK(memcmp(buf, "\x93NUMPY\x01\x00", 8) == 0, "rank %d: magic/version", ndims[c]);
            CHECK(10 + hl + numel * 4 == n && (10 + hl) % 64 == 0 && buf[10 + hl - 1] == '\n',
                  "rank %d: header length %d, size %d", ndims[c], (int)hl, (int)n);
            if (hl < sizeof header) {
                memcpy(header, buf + 10, hl);
                header[hl] = 0;
                CHECK(strstr(header, "'descr': '<f4'") && strstr(header, "'fortran_order': False") &&
                          strstr(header, shape_text[c]) && header[0] == '{',
                      "rank %d: header \"%s\" (want %s)", ndims[c], header, shape_text[c]);
            }
            CHECK(memcmp(buf + 10 + hl, t->data, numel * 4) == 0 || numel == 0, "rank %d: data bytes", ndims[c]);
            u = attn_npy_parse(ctx, buf, n);
            if (CHECK(u != NULL, "re-parse %d: %s", c, attn_error_message(ctx))) {
                int d, same = u->ndim == t->ndim;
                for (d = 0; same && d < t->ndim; d++) same = u->shape[d] == t->shape[d];
                CHECK(same, "rank %d: the shape did not come back", ndims[c]);
                CHECK(same && (numel == 0 || bits_equal(u->data, t->data, numel)), "rank %d: the data did not come back",
                      ndims[c]);
            }
            failed_as(ctx, attn_npy_write(ctx, t, buf, n - 1), A_INV | A_FMT | A_SHP | (1u << ATTN_ERR_OUT_OF_MEMORY),
                      NULL, "npy write into size - 1 bytes");
        }
        free(buf);
    }
    /* a strided view (a transpose) is written in its logical row-major order,
       or refused with a message */
    {
        attn_tensor *t = attn_tensor_2d(ctx, 2, 3), *v, *u;
        unsigned char *buf;
        size_t n, i;
        for (i = 0; t && i < 6; i++) t->data[i] = (float)i;
        v = t ? attn_transpose(ctx, t, 0, 1) : NULL;
        n = v ? attn_npy_bytes(v) : 0;
        buf = n ? (unsigned char *)malloc(n) : NULL;
        if (CHECK(buf != NULL, "transpose: size %d: %s", (int)n, attn_error_message(ctx))) {
            attn_status s = attn_npy_write(ctx, v, buf, n);
            if (s != ATTN_OK)
                failed_as(ctx, s, A_INV | A_SHP | A_UNS, NULL, "write of a strided view");
            else if (CHECK((u = attn_npy_parse(ctx, buf, n)) != NULL, "re-parse transpose: %s", attn_error_message(ctx))) {
                static const float want[6] = {0, 3, 1, 4, 2, 5};
                CHECK(u->ndim == 2 && u->shape[0] == 3 && u->shape[1] == 2 && memcmp(u->data, want, sizeof want) == 0,
                      "transpose: got shape (%d, %d) data %g %g %g %g %g %g", u->shape[0], u->shape[1], u->data[0],
                      u->data[1], u->data[2], u->data[3], u->data[4], u->data[5]);
            }
        }
        free(buf);
    }
    failed_as(ctx, attn_npy_write(ctx, NULL, NULL, 0), A_INV, NULL, "npy write of NULL");
    attn_context_destroy(ctx);
}

/* ------------------------------------------------------------------------
   6. Checkpoints */

typedef struct ck_model {
    attn_context *ctx;
    attn_encoder_layer el;
    attn_tensor *x, *y;
    attn_optim *opt;
} ck_model;

static int ck_make(ck_model *m, uint64_t seed, attn_optim_kind kind, float dropout, int d_model) {
    attn_context_desc d;
    attn_layer_desc ld;
    attn_optim_desc od;
    test_rng r;
    memset(m, 0, sizeof *m);
    memset(&d, 0, sizeof d);
    d.seed = seed;
    m->ctx = attn_context_create(&d);
    if (!CHECK(m->ctx != NULL, "no context")) return 0;
    memset(&ld, 0, sizeof ld);
    ld.d_model = d_model;
    ld.heads = 2;
    ld.dim_feedforward = 16;
    ld.dropout = dropout;
    ld.activation = ATTN_ACT_GELU;
    if (!CHECK(attn_encoder_layer_init(m->ctx, &m->el, "", &ld) == ATTN_OK, "layer: %s", attn_error_message(m->ctx)))
        return 0;
    m->x = attn_tensor_3d(m->ctx, 2, 5, d_model);
    m->y = attn_tensor_3d(m->ctx, 2, 5, d_model);
    if (!CHECK(m->x && m->y, "data: %s", attn_error_message(m->ctx))) return 0;
    test_rng_seed(&r, 1234); /* the data never depends on the context's seed */
    test_fill(&r, m->x->data, attn_tensor_numel(m->x), -1.0f, 1.0f);
    test_fill(&r, m->y->data, attn_tensor_numel(m->y), -1.0f, 1.0f);
    memset(&od, 0, sizeof od);
    od.kind = kind;
    od.lr = 1e-2;
    if (kind == ATTN_OPTIM_ADAMW) od.weight_decay = 0.01;
    if (kind == ATTN_OPTIM_SGD) od.momentum = 0.9;
    m->opt = attn_optim_create(m->ctx, &od);
    return CHECK(m->opt != NULL, "optimizer: %s", attn_error_message(m->ctx));
}

static int ck_steps(ck_model *m, int n, float *losses) {
    int i;
    for (i = 0; i < n; i++) {
        attn_context_pos mk = attn_context_mark(m->ctx);
        attn_tensor *out = attn_encoder_layer_forward(m->ctx, &m->el, m->x, NULL, 1);
        attn_tensor *loss = attn_mse(m->ctx, out, m->y);
        attn_status s;
        if (!CHECK(loss != NULL, "step %d: %s", i, attn_error_message(m->ctx))) return 0;
        losses[i] = loss->data[0];
        attn_params_zero_grad(m->ctx);
        s = attn_backward(m->ctx, loss);
        if (s == ATTN_OK) s = attn_optim_step(m->opt);
        attn_context_reset(m->ctx, mk);
        if (!CHECK(s == ATTN_OK, "step %d: %s", i, attn_error_message(m->ctx))) return 0;
    }
    return 1;
}

static unsigned char *ck_save(ck_model *m, size_t *size) {
    size_t n = attn_checkpoint_bytes(m->ctx, m->opt);
    unsigned char *buf;
    *size = 0;
    if (!CHECK(n > 8, "attn_checkpoint_bytes = %d: %s", (int)n, attn_error_message(m->ctx))) return NULL;
    buf = (unsigned char *)malloc(n);
    if (!buf) return NULL;
    if (!CHECK(attn_checkpoint_save(m->ctx, m->opt, buf, n) == ATTN_OK, "attn_checkpoint_save: %s",
               attn_error_message(m->ctx))) {
        free(buf);
        return NULL;
    }
    *size = n;
    return buf;
}

/* N steps straight, vs N/2, checkpoint, a fresh context (seed: the same, or
   another one, which must not matter), load, N/2 more. */
static void ck_resume(attn_optim_kind kind, float dropout, const char *what) {
    enum { N = 8, H = N / 2 };
    float full[N], first[H], second[H];
    ck_model a, b;
    unsigned char *buf = NULL;
    size_t size = 0;
    int fresh_seed;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    if (!ck_make(&a, 42, kind, dropout, 8) || !ck_steps(&a, N, full)) goto done;
    attn_context_destroy(a.ctx);
    a.ctx = NULL;
    {
        int i, distinct = 0;
        for (i = 1; i < N; i++) distinct += full[i] != full[i - 1];
        CHECK(distinct == N - 1 && full[N - 1] < full[0], "%s: the losses do not move (%g .. %g)", what, full[0],
              full[N - 1]);
    }
    for (fresh_seed = 0; fresh_seed < 2; fresh_seed++) {
        if (!ck_make(&a, 42, kind, dropout, 8) || !ck_steps(&a, H, first)) goto done;
        CHECK(memcmp(first, full, sizeof first) == 0, "%s: the same seed gave other losses (%.9g vs %.9g)", what,
              first[0], full[0]);
        buf = ck_save(&a, &size);
        if (!buf) goto done;
        /* the checkpoint is a safetensors image with the optimizer's state */
        {
            attn_safetensors st;
            attn_context_pos mk = attn_context_mark(a.ctx);
            if (CHECK(attn_safetensors_parse(a.ctx, buf, size, &st) == ATTN_OK, "%s: the checkpoint does not parse: %s",
                      what, attn_error_message(a.ctx))) {
                CHECK(attn_safetensors_find(&st, "linear1.weight") != NULL, "%s: no linear1.weight in the checkpoint",
                      what);
                CHECK(attn_safetensors_find(&st, "optim.m.linear1.weight") != NULL,
                      "%s: no optim.m.linear1.weight in the checkpoint", what);
                if (kind == ATTN_OPTIM_ADAMW)
                    CHECK(attn_safetensors_find(&st, "optim.v.linear1.weight") != NULL,
                          "%s: no optim.v.linear1.weight in the checkpoint", what);
            }
            attn_context_reset(a.ctx, mk);
        }
        attn_context_destroy(a.ctx);
        a.ctx = NULL;
        if (!ck_make(&b, fresh_seed ? 777 : 42, kind, dropout, 8)) goto done;
        if (!CHECK(attn_checkpoint_load(b.ctx, b.opt, buf, size) == ATTN_OK, "%s: load: %s", what,
                   attn_error_message(b.ctx)))
            goto done;
        CHECK(attn_optim_steps(b.opt) == H, "%s: %d steps after loading, want %d", what, attn_optim_steps(b.opt), H);
        if (!ck_steps(&b, H, second)) goto done;
        if (memcmp(second, full + H, sizeof second) != 0) {
            int i;
            for (i = 0; i < H; i++)
                CHECK(test_bits(second[i]) == test_bits(full[H + i]),
                      "%s (fresh context seed %s): resumed step %d loss %.9g, uninterrupted %.9g", what,
                      fresh_seed ? "777" : "42", H + i, second[i], full[H + i]);
        }
        attn_context_destroy(b.ctx);
        b.ctx = NULL;
        free(buf);
        buf = NULL;
    }
done:
    free(buf);
    attn_context_destroy(a.ctx);
    attn_context_destroy(b.ctx);
}

TEST(checkpoint_resume_adamw_dropout_bit_identical) { ck_resume(ATTN_OPTIM_ADAMW, 0.25f, "AdamW, dropout 0.25"); }
TEST(checkpoint_resume_sgd_momentum_bit_identical) { ck_resume(ATTN_OPTIM_SGD, 0.1f, "SGD momentum, dropout 0.1"); }
TEST(checkpoint_resume_adagrad_bit_identical) { ck_resume(ATTN_OPTIM_ADAGRAD, 0.0f, "Adagrad"); }

TEST(checkpoint_rejects_bad_input) {
    ck_model a, b, small;
    unsigned char *buf = NULL, *params = NULL;
    size_t size = 0, psize = 0, n0 = 0, n1 = 0, k;
    float *before = NULL, *after = NULL, losses[2];
    int bad = 0, step;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    memset(&small, 0, sizeof small);
    if (!ck_make(&a, 42, ATTN_OPTIM_ADAMW, 0.1f, 8) || !ck_steps(&a, 2, losses)) goto done;
    buf = ck_save(&a, &size);
    params = pm_save(a.ctx, &psize);
    if (!buf || !params) goto done;
    {
        unsigned char *s1 = (unsigned char *)malloc(size - 1);
        if (s1)
            failed_as(a.ctx, attn_checkpoint_save(a.ctx, a.opt, s1, size - 1),
                      A_INV | A_FMT | A_SHP | (1u << ATTN_ERR_OUT_OF_MEMORY), NULL, "checkpoint into size - 1 bytes");
        free(s1);
    }
    if (!ck_make(&b, 43, ATTN_OPTIM_ADAMW, 0.1f, 8) || !ck_make(&small, 42, ATTN_OPTIM_ADAMW, 0.1f, 4)) goto done;
    before = pm_snapshot(b.ctx, &n0);
    /* a parameter file is not a checkpoint (no optimizer state, no step, no RNG) */
    failed_as(b.ctx, attn_checkpoint_load(b.ctx, b.opt, params, psize), A_FMT | A_INV | A_SHP, NULL,
              "a parameter file as a checkpoint");
    /* every truncation */
    step = test_quick() ? 13 : 1;
    for (k = 0; k < size; k += (size_t)step) {
        attn_status s = attn_checkpoint_load(b.ctx, b.opt, buf, k);
        if (s == ATTN_OK || !attn_error_message(b.ctx)[0]) {
            if (!bad) CHECK(0, "the first %d of %d checkpoint bytes loaded: status %d", (int)k, (int)size, (int)s);
            bad++;
        }
        attn_error_clear(b.ctx);
    }
    CHECK(bad == 0, "%d truncated checkpoints loaded", bad);
    after = pm_snapshot(b.ctx, &n1);
    CHECK(before && after && n0 == n1 && bits_equal(before, after, n0), "failed checkpoint loads changed parameters");
    CHECK(attn_optim_steps(b.opt) == 0, "failed checkpoint loads changed the step count to %d", attn_optim_steps(b.opt));
    /* a model that does not fit: d_model 4 instead of 8 */
    {
        attn_status s = attn_checkpoint_load(small.ctx, small.opt, buf, size);
        char msg[300];
        attn_param *p;
        int named = 0;
        strncpy(msg, attn_error_message(small.ctx), sizeof msg - 1);
        msg[sizeof msg - 1] = 0;
        for (p = attn_params(small.ctx); p; p = p->next)
            if (strstr(msg, p->name)) named = 1;
        if (failed_as(small.ctx, s, A_SHP | A_FMT, NULL, "a checkpoint of another model size"))
            CHECK(named, "a checkpoint of another model size: the message \"%s\" names no parameter", msg);
    }
    /* and the real thing still loads */
    CHECK(attn_checkpoint_load(b.ctx, b.opt, buf, size) == ATTN_OK, "the checkpoint: %s", attn_error_message(b.ctx));
done:
    free(before);
    free(after);
    free(buf);
    free(params);
    attn_context_destroy(a.ctx);
    attn_context_destroy(b.ctx);
    attn_context_destroy(small.ctx);
}

/* A checkpoint that claims the largest step an int holds: refused, or loaded
   and then the next step refused or taken without the count wrapping (no
   signed overflow under UBSan, no negative step in the bias correction). */
TEST(checkpoint_step_at_int_max) {
    ck_model a;
    unsigned char *buf = NULL, *big = NULL;
    size_t size = 0, hlen, n;
    float losses[1];
    const char *key = "\"attn.step\":\"";
    memset(&a, 0, sizeof a);
    if (!ck_make(&a, 42, ATTN_OPTIM_ADAMW, 0.0f, 8) || !ck_steps(&a, 1, losses)) goto done;
    buf = ck_save(&a, &size);
    if (!buf) goto done;
    hlen = (size_t)get_u64(buf);
    big = (unsigned char *)malloc(size + 64);
    if (!big) goto done;
    {
        /* find "attn.step":"1" in the header and make it "attn.step":"2147483647" */
        size_t i, kl = strlen(key), at = 0;
        for (i = 8; i + kl + 2 <= 8 + hlen; i++)
            if (!memcmp(buf + i, key, kl)) { at = i + kl; break; }
        if (!CHECK(at && buf[at] == '1' && buf[at + 1] == '"', "no \"attn.step\":\"1\" in the checkpoint header "
                   "(the test needs updating if the metadata changed)"))
            goto done;
        memcpy(big, buf, at);
        memcpy(big + at, "2147483647", 10);
        memcpy(big + at + 10, buf + at + 1, size - at - 1);
        n = size + 9;
        put_u64(big, (uint64_t)hlen + 9);
    }
    {
        attn_status s = attn_checkpoint_load(a.ctx, a.opt, big, n);
        if (s != ATTN_OK) {
            failed_as(a.ctx, s, A_FMT | A_INV | A_UNS, NULL, "a checkpoint at step 2^31-1");
        } else {
            attn_params_zero_grad(a.ctx);
            s = attn_optim_step(a.opt);
            if (s != ATTN_OK) failed_as(a.ctx, s, A_INV | A_UNS | A_FMT, NULL, "a step after step 2^31-1");
            else CHECK(attn_optim_steps(a.opt) > 0, "the step count wrapped to %d", attn_optim_steps(a.opt));
        }
    }
done:
    free(buf);
    free(big);
    attn_context_destroy(a.ctx);
}

/* ------------------------------------------------------------------------
   7. The file helpers */

TEST(file_helpers_round_trip_and_report_io_errors) {
    const char *p_st = "attn_test_files_tmp.safetensors", *p_npy = "attn_test_files_tmp.npy";
    const char *missing = "attn_test_files_no_such_dir/none.npy";
    pmodel a, b;
    size_t n0 = 0, n1 = 0;
    float *va = NULL, *vb = NULL;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    if (!pm_make(&a, 1, 3, 0) || !pm_make(&b, 2, 3, 0)) goto done;
    if (CHECK(attn_params_save_file(a.ctx, p_st) == ATTN_OK, "save_file: %s", attn_error_message(a.ctx)) &&
        CHECK(attn_params_load_file(b.ctx, p_st, 1) == ATTN_OK, "load_file: %s", attn_error_message(b.ctx))) {
        va = pm_snapshot(a.ctx, &n0);
        vb = pm_snapshot(b.ctx, &n1);
        CHECK(va && vb && n0 == n1 && bits_equal(va, vb, n0), "file round trip changed the parameters");
    }
    {
        attn_tensor *t = attn_param_find(a.ctx, "head.bias") ? attn_param_find(a.ctx, "head.bias")->tensor : NULL, *u;
        if (t && CHECK(attn_npy_save_file(a.ctx, t, p_npy) == ATTN_OK, "npy save_file: %s", attn_error_message(a.ctx))) {
            u = attn_npy_load_file(b.ctx, p_npy);
            CHECK(u && u->ndim == 1 && u->shape[0] == 3 && bits_equal(u->data, t->data, 3), "npy file round trip: %s",
                  attn_error_message(b.ctx));
        }
    }
    failed_as(b.ctx, attn_params_load_file(b.ctx, missing, 1), 1u << ATTN_ERR_IO, "none.npy", "load of a missing file");
    CHECK(attn_npy_load_file(b.ctx, missing) == NULL, "npy load of a missing file");
    failed_as(b.ctx, attn_error_status(b.ctx), 1u << ATTN_ERR_IO, "none.npy", "npy load of a missing file");
    failed_as(b.ctx, attn_params_save_file(b.ctx, missing), 1u << ATTN_ERR_IO, "none.npy", "save into a missing dir");
    /* a file of the wrong kind */
    failed_as(b.ctx, attn_params_load_file(b.ctx, p_npy, 1), A_FMT, NULL, "a .npy file as parameters");
    CHECK(attn_npy_load_file(b.ctx, p_st) == NULL, "a safetensors file as .npy");
    failed_as(b.ctx, attn_error_status(b.ctx), A_FMT, NULL, "a safetensors file as .npy");
done:
    remove(p_st);
    remove(p_npy);
    free(va);
    free(vb);
    attn_context_destroy(a.ctx);
    attn_context_destroy(b.ctx);
}

TEST_GROUP(files) = {
    TEST_ENTRY(safetensors_parse_valid_image),
    TEST_ENTRY(safetensors_parse_accepts_valid_variants),
    TEST_ENTRY(safetensors_rejects_bad_header_lengths),
    TEST_ENTRY(safetensors_rejects_bad_headers),
    TEST_ENTRY(safetensors_rejects_nul_bytes_in_the_header),
    TEST_ENTRY(safetensors_rejects_deeply_nested_json),
    TEST_ENTRY(safetensors_converts_f16_and_bf16),
    TEST_ENTRY(safetensors_reads_unaligned_f32),
    TEST_ENTRY(params_save_load_round_trip),
    TEST_ENTRY(params_round_trip_special_values),
    TEST_ENTRY(params_load_strict_missing_and_wrong_shape),
    TEST_ENTRY(params_load_converts_half_types),
    TEST_ENTRY(npy_parse_versions_1_2_3),
    TEST_ENTRY(npy_rejects_bad_input),
    TEST_ENTRY(npy_write_and_parse_round_trip),
    TEST_ENTRY(checkpoint_resume_adamw_dropout_bit_identical),
    TEST_ENTRY(checkpoint_resume_sgd_momentum_bit_identical),
    TEST_ENTRY(checkpoint_resume_adagrad_bit_identical),
    TEST_ENTRY(checkpoint_rejects_bad_input),
    TEST_ENTRY(file_helpers_round_trip_and_report_io_errors),
    TEST_ENTRY(checkpoint_step_at_int_max),     /* these two last: under UBSan an overflow */
    TEST_ENTRY(empty_tensors_with_huge_dims),   /* in either ends the run */
    TEST_END
};
