/* tests/test_same_bits.c - a plain context and a context on attn_backend_cpu()
   give the same bits.

   attn_backend_cpu() is a table of the very functions a context without a
   backend runs, so nothing but the route differs: the plain context calls
   them through the dispatch block on its threads, the backend context calls
   them through the table on one thread, with its data staged through
   upload/download. Every graph here is built twice from the same inputs and
   the same seed, once on each, and its output, its loss, every parameter and
   every parameter grad must agree under memcmp. Rounding-level agreement (what
   tests/test_backend.c checks) would hide a second code path that happens to
   be close; bit identity leaves no room for one.

   The plain context runs on two threads of the library's pool, and the big
   cases are sized past the thresholds where the library splits work over
   threads (GEMMs of 1e6 flops, row kernels and GELU of 32768 elements), so
   the comparison also covers thread-count independence. The pool sits behind
   tests/test_threads.c's counting hook, so a case meant to be threaded fails
   if it never was (a threshold that moved would otherwise make it vacuous). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

#define SEED 20240611u

/* The two contexts of one comparison: [0] plain on two pool threads, [1] on
   attn_backend_cpu() with no threads. */
typedef struct twin {
    test_pool pool;
    attn_context *c[2];
} twin;

static int twin_open(twin *t) {
    attn_backend cpu = attn_backend_cpu(); /* the context keeps a copy */
    attn_context_desc d;
    memset(t, 0, sizeof *t);
    memset(&d, 0, sizeof d);
    d.seed = SEED;
    d.threads = test_pool_threads(&t->pool, 2);
    t->c[0] = attn_context_create(&d);
    memset(&d, 0, sizeof d);
    d.seed = SEED;
    d.backend = &cpu;
    d.backend_memory = 32 << 20; /* the default 256 MiB is far more than any case needs */
    t->c[1] = attn_context_create(&d);
    CHECK(t->pool.n_threads == 2, "the pool has %d threads, not 2: thread independence goes untested",
          t->pool.n_threads);
    return CHECK(t->c[0] && t->c[1], "contexts: plain %p, backend %p", (void *)t->c[0], (void *)t->c[1]);
}

static void twin_close(twin *t) {
    attn_context_destroy(t->c[0]);
    attn_context_destroy(t->c[1]);
    test_pool_free(&t->pool);
}

/* ---- comparing ---- */
/* The comparisons of one case: one line at the end names the first tensor
   that differs and counts the others, so that a broken kernel shows up as one
   line per case it breaks (the runner prints only the first 20 per test). */
typedef struct verdict {
    const twin *t;
    const char *what;
    int compared, differ;
    char first[320];
} verdict;

static void verdict_begin(verdict *v, const twin *t, const char *what) {
    memset(v, 0, sizeof *v);
    v->t = t;
    v->what = what;
}

static void verdict_differs(verdict *v, const char *fmt, ...) TEST_PRINTF(2, 3);
static void verdict_differs(verdict *v, const char *fmt, ...) {
    va_list ap;
    if (v->differ++) return;
    va_start(ap, fmt);
    vsnprintf(v->first, sizeof v->first, fmt, ap);
    va_end(ap);
}

/* x (plain) and y (backend), n floats each, compared by bits. */
static void same_floats(verdict *v, const char *name, const float *x, const float *y, size_t n) {
    size_t i;
    v->compared++;
    if (!memcmp(x, y, n * sizeof(float))) return;
    for (i = 0; i < n && test_bits(x[i]) == test_bits(y[i]); i++) {}
    verdict_differs(v, "%s differs at element %lu of %lu: plain %.9g (0x%08x), backend %.9g (0x%08x)", name,
                    (unsigned long)i, (unsigned long)n,
                    x[i], (unsigned)test_bits(x[i]), y[i], (unsigned)test_bits(y[i]));
}

static float *fetch(attn_context *ctx, const attn_tensor *t, int grad) {
    size_t n = attn_tensor_numel(t);
    float *h = (float *)calloc(n ? n : 1, sizeof(float));
    if (h && (grad ? attn_tensor_download_grad(ctx, t, h, n) : attn_tensor_download(ctx, t, h, n)) != ATTN_OK) {
        free(h);
        h = NULL;
    }
    return h;
}

/* a (plain) and b (backend): values, or grads when grad != 0. */
static void same(verdict *v, const char *name, const attn_tensor *a, const attn_tensor *b, int grad) {
    char label[160];
    float *x, *y;
    snprintf(label, sizeof label, "%s%s", grad ? "grad of " : "", name);
    if (!a || !b || attn_tensor_numel(a) != attn_tensor_numel(b) || a->ndim != b->ndim) {
        v->compared++;
        verdict_differs(v, "%s: plain %p (%lu elements), backend %p (%lu): %s / %s", label, (const void *)a,
                        (unsigned long)(a ? attn_tensor_numel(a) : 0), (const void *)b,
                        (unsigned long)(b ? attn_tensor_numel(b) : 0),
                        attn_error_message(v->t->c[0]), attn_error_message(v->t->c[1]));
        return;
    }
    x = fetch(v->t->c[0], a, grad);
    y = fetch(v->t->c[1], b, grad);
    if (x && y) same_floats(v, label, x, y, attn_tensor_numel(a));
    else verdict_differs(v, "%s: download failed: %s / %s", label, attn_error_message(v->t->c[0]),
                         attn_error_message(v->t->c[1]));
    free(x);
    free(y);
}

/* Every parameter of both contexts, pairwise in registration order: values
   (which covers the modules' init) and grads. */
static void same_params(verdict *v, int grads) {
    attn_param *p = attn_params(v->t->c[0]), *q = attn_params(v->t->c[1]);
    for (; p && q; p = p->next, q = q->next) {
        if (strcmp(p->name, q->name)) {
            verdict_differs(v, "parameter %s plain, %s on the backend", p->name, q->name);
            return;
        }
        same(v, p->name, p->tensor, q->tensor, 0);
        if (grads) same(v, p->name, p->tensor, q->tensor, 1);
    }
    if (p || q) verdict_differs(v, "the parameter lists differ in length");
}

/* The one line, when anything differed. */
static int verdict_end(verdict *v) {
    if (v->differ > 1)
        return CHECK(0, "%s: %s (and %d more of %d comparisons differ)", v->what, v->first, v->differ - 1,
                     v->compared);
    return CHECK(!v->differ, "%s: %s", v->what, v->first);
}

/* ---- inputs: the same values on both contexts, whatever order they are made in ---- */
static uint64_t name_seed(const char *name) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *name; name++) h = (h ^ (unsigned char)*name) * 1099511628211ull;
    return h;
}

static attn_tensor *filled(attn_context *c, attn_tensor *t, const char *name, float lo, float hi) {
    size_t n;
    float *v;
    test_rng r;
    if (!t) return NULL;
    n = attn_tensor_numel(t);
    if (!(v = (float *)malloc((n ? n : 1) * sizeof(float)))) return NULL;
    test_rng_seed(&r, name_seed(name));
    test_fill(&r, v, n, lo, hi);
    if (attn_tensor_upload(c, t, v, n) != ATTN_OK) t = NULL;
    free(v);
    return t;
}

/* A parameter (so it gets a grad to compare) with values in [-2, 2). */
static attn_tensor *leaf(attn_context *c, const char *name, int ndim, const int *shape) {
    return filled(c, attn_param_new(c, name, ndim, shape), name, -2.0f, 2.0f);
}

/* A constant (no grad) with values in [lo, hi). */
static attn_tensor *konst(attn_context *c, const char *name, int ndim, const int *shape, float lo, float hi) {
    return filled(c, attn_tensor_new(c, ndim, shape), name, lo, hi);
}

/* ---- the driver ---- */
typedef attn_tensor *(*build_fn)(attn_context *c);

static attn_tensor *weighted_loss(attn_context *c, attn_tensor *out) {
    /* sum(out * w) with w fixed and random: every output element gets its own
       grad, where sum(out) alone would seed them all with 1 */
    attn_tensor *w = out ? konst(c, "loss weights", out->ndim, out->shape, -1.0f, 1.0f) : NULL;
    return w ? attn_sum(c, attn_mul(c, out, w)) : NULL;
}

/* Build the graph on both contexts, first with grad off (the unrecorded paths,
   where e.g. masks stay in caller memory on the plain context), then with grad
   on, through the loss and backward; compare everything. threaded: the plain
   context must have split work over its threads. */
static void run_case(const char *what, build_fn build, int threaded) {
    twin t;
    verdict v;
    attn_tensor *out[2], *loss[2];
    attn_context_pos m[2];
    int k;
    long calls;
    if (!twin_open(&t)) goto done;
    verdict_begin(&v, &t, what);
    for (k = 0; k < 2; k++) {
        m[k] = attn_context_mark(t.c[k]);
        attn_grad_enable(t.c[k], 0);
        out[k] = build(t.c[k]);
        attn_grad_enable(t.c[k], 1);
    }
    same(&v, "output without grad", out[0], out[1], 0);
    for (k = 0; k < 2; k++) attn_context_reset(t.c[k], m[k]);
    calls = t.pool.calls;
    for (k = 0; k < 2; k++) {
        out[k] = build(t.c[k]);
        loss[k] = weighted_loss(t.c[k], out[k]);
        if (!CHECK(loss[k] != NULL, "%s: context %d: %s", what, k, attn_error_message(t.c[k]))) goto done;
        if (loss[k]->requires_grad)
            CHECK(attn_backward(t.c[k], loss[k]) == ATTN_OK, "%s: backward on context %d: %s", what, k,
                  attn_error_message(t.c[k]));
    }
    if (threaded)
        CHECK(t.pool.calls > calls, "%s: the plain context never used its threads (sizes below the thresholds?)",
              what);
    same(&v, "output", out[0], out[1], 0);
    same(&v, "loss", loss[0], loss[1], 0);
    same_params(&v, 1);
    verdict_end(&v);
    CHECK(attn_error_status(t.c[0]) == ATTN_OK && attn_error_status(t.c[1]) == ATTN_OK, "%s: errors: %s / %s", what,
          attn_error_message(t.c[0]), attn_error_message(t.c[1]));
done:
    twin_close(&t);
}

#define S(...) (const int[]){__VA_ARGS__}

/* ---- 6. every op of the autodiff section ---- */
static attn_tensor *b_add(attn_context *c) { /* (8, 1, 40) + (24, 1) -> (8, 24, 40) */
    return attn_add(c, leaf(c, "a", 3, S(8, 1, 40)), leaf(c, "b", 2, S(24, 1)));
}
static attn_tensor *b_sub(attn_context *c) { /* a strided view minus a broadcast row */
    return attn_sub(c, attn_transpose(c, leaf(c, "a", 2, S(40, 24)), 0, 1), leaf(c, "b", 1, S(40)));
}
static attn_tensor *b_mul(attn_context *c) { /* both sides broadcast */
    return attn_mul(c, leaf(c, "a", 4, S(3, 1, 5, 1)), leaf(c, "b", 4, S(1, 4, 1, 7)));
}
static attn_tensor *b_mul_scalar(attn_context *c) {
    return attn_mul(c, leaf(c, "a", 2, S(6, 9)), leaf(c, "s", 0, S(0)));
}
static attn_tensor *b_scale(attn_context *c) { return attn_scale(c, leaf(c, "x", 2, S(13, 17)), -0.37f); }
static attn_tensor *b_relu(attn_context *c) { return attn_relu(c, leaf(c, "x", 2, S(200, 201))); }
static attn_tensor *b_tanh(attn_context *c) { return attn_tanh(c, leaf(c, "x", 2, S(200, 201))); }
static attn_tensor *b_gelu(attn_context *c) { return attn_gelu(c, leaf(c, "x", 2, S(40, 1000))); }
static attn_tensor *b_gelu_view(attn_context *c) { /* a strided input is made dense first */
    return attn_gelu(c, attn_transpose(c, leaf(c, "x", 2, S(250, 160)), 0, 1));
}
static attn_tensor *b_dropout(attn_context *c) {
    return attn_dropout(c, attn_slice(c, leaf(c, "x", 2, S(45, 1000)), 0, 3, 43), 0.3f, 1);
}
static attn_tensor *b_sum_1000(attn_context *c) { return attn_sum(c, leaf(c, "x", 1, S(1000))); }
static attn_tensor *b_sum_7(attn_context *c) { return attn_sum(c, leaf(c, "x", 1, S(7))); }
/* the mean divides once, in double: a float sum then a float divide rounds twice */
static attn_tensor *b_mean_1000(attn_context *c) { return attn_mean(c, leaf(c, "x", 1, S(1000))); }
static attn_tensor *b_mean_7(attn_context *c) { return attn_mean(c, leaf(c, "x", 1, S(7))); }
static attn_tensor *b_mean_big(attn_context *c) { return attn_mean(c, attn_tanh(c, leaf(c, "x", 3, S(7, 99, 101)))); }
static attn_tensor *b_matmul(attn_context *c) {
    return attn_matmul(c, leaf(c, "a", 2, S(128, 128)), leaf(c, "b", 2, S(128, 128)));
}
static attn_tensor *b_matmul_odd(attn_context *c) {
    return attn_matmul(c, leaf(c, "a", 2, S(13, 31)), leaf(c, "b", 2, S(31, 7)));
}
static attn_tensor *b_matmul_batched(attn_context *c) {
    return attn_matmul(c, leaf(c, "a", 3, S(2, 128, 96)), leaf(c, "b", 3, S(2, 96, 128)));
}
static attn_tensor *b_matmul_shared_b(attn_context *c) { /* 2-D b shared by every batch */
    return attn_matmul(c, leaf(c, "a", 4, S(2, 3, 64, 96)), leaf(c, "b", 2, S(96, 128)));
}
static attn_tensor *b_matmul_views(attn_context *c) { /* transposed operands */
    return attn_matmul(c, attn_transpose(c, leaf(c, "a", 3, S(2, 96, 128)), 1, 2),
                       attn_transpose(c, leaf(c, "b", 2, S(128, 96)), 0, 1));
}
static attn_tensor *b_linear_bias(attn_context *c) {
    return attn_linear(c, leaf(c, "x", 3, S(2, 64, 128)), leaf(c, "w", 2, S(128, 128)), leaf(c, "bias", 1, S(128)));
}
static attn_tensor *b_linear_nobias(attn_context *c) {
    return attn_linear(c, leaf(c, "x", 2, S(5, 33)), leaf(c, "w", 2, S(17, 33)), NULL);
}
static attn_tensor *b_views(attn_context *c) {
    attn_tensor *x = attn_reshape(c, leaf(c, "x", 2, S(6, 40)), 3, S(6, 5, -1));
    x = attn_slice(c, attn_transpose(c, x, 0, 2), 1, 1, 4); /* (8, 3, 6), strided */
    return attn_scale(c, attn_reshape(c, attn_contiguous(c, x), 2, S(24, 6)), 2.0f);
}
static attn_tensor *b_concat(attn_context *c) {
    attn_tensor *xs[3];
    xs[0] = leaf(c, "a", 3, S(2, 3, 5));
    xs[1] = attn_transpose(c, leaf(c, "b", 3, S(2, 5, 4)), 1, 2);
    xs[2] = attn_slice(c, leaf(c, "c", 3, S(2, 9, 5)), 1, 2, 8);
    return attn_tanh(c, attn_concat(c, xs, 3, 1));
}
static attn_tensor *b_concat_last(attn_context *c) {
    attn_tensor *xs[2];
    xs[0] = leaf(c, "a", 2, S(4, 3));
    xs[1] = leaf(c, "b", 2, S(4, 6));
    return attn_concat(c, xs, 2, 1);
}
static attn_tensor *b_embedding(attn_context *c) { /* repeated indices: the backward accumulates */
    static int32_t idx[2 * 37];
    int i;
    for (i = 0; i < 2 * 37; i++) idx[i] = (int32_t)((i * 7 + 3) % 19);
    return attn_embedding(c, leaf(c, "w", 2, S(19, 24)), idx, 2, S(2, 37));
}
static attn_tensor *b_softmax(attn_context *c) { return attn_softmax(c, leaf(c, "x", 2, S(64, 1024))); }
static attn_tensor *b_softmax_small(attn_context *c) { return attn_softmax(c, leaf(c, "x", 3, S(2, 3, 5))); }
static attn_tensor *b_log_softmax(attn_context *c) {
    return attn_log_softmax(c, attn_transpose(c, leaf(c, "x", 2, S(1024, 64)), 0, 1));
}
static attn_tensor *b_layernorm(attn_context *c) {
    return attn_layernorm(c, leaf(c, "x", 3, S(4, 16, 1024)), leaf(c, "g", 1, S(1024)), leaf(c, "b", 1, S(1024)),
                          1e-5f);
}
static attn_tensor *b_layernorm_bare(attn_context *c) {
    return attn_layernorm(c, leaf(c, "x", 2, S(9, 31)), NULL, NULL, 1e-3f);
}
static attn_tensor *b_rmsnorm(attn_context *c) {
    return attn_rmsnorm(c, leaf(c, "x", 2, S(64, 1024)), leaf(c, "g", 1, S(1024)), 1e-6f);
}
static attn_tensor *b_rmsnorm_bare(attn_context *c) { return attn_rmsnorm(c, leaf(c, "x", 2, S(9, 31)), NULL, 1e-6f); }
static attn_tensor *b_cross_entropy(attn_context *c) { /* ignore_index and label smoothing; rows past 32768 floats */
    static int32_t tgt[96];
    int i;
    for (i = 0; i < 96; i++) tgt[i] = i % 5 == 2 ? -100 : (int32_t)((i * 131 + 17) % 1000);
    return attn_cross_entropy(c, leaf(c, "logits", 2, S(96, 1000)), tgt, -100, 0.1f);
}
static attn_tensor *b_cross_entropy_plain(attn_context *c) {
    static const int32_t tgt[7] = {3, 0, 10, 10, 5, 1, 7};
    return attn_cross_entropy(c, leaf(c, "logits", 2, S(7, 11)), tgt, 5, 0.0f);
}

/* q (B, Tq, H dh), k and v (B, Tk, H dh) as column ranges of one projection,
   the layout the MHA module hands the kernel. */
enum { AB = 2, AH = 4, AQ = 33, AK = 40, AD = 16 };
static void qkv(attn_context *c, attn_tensor **q, attn_tensor **k, attn_tensor **v) {
    attn_tensor *kv = leaf(c, "kv", 3, S(AB, AK, 2 * AH * AD));
    *q = leaf(c, "q", 3, S(AB, AQ, AH * AD));
    *k = attn_slice(c, kv, 2, 0, AH * AD);
    *v = attn_slice(c, kv, 2, AH * AD, 2 * AH * AD);
}
static const int att_lengths[AB] = {AK, 23};
static const unsigned char *att_padding(void) {
    static unsigned char pad[AB * AK];
    int i;
    for (i = 0; i < AB * AK; i++) pad[i] = i % AK != 0 && (i * 5) % 7 == 3; /* key 0 stays: no empty rows */
    return pad;
}
static attn_tensor *b_attention_causal(attn_context *c) { /* causal with Tq < Tk, key lengths, dropout */
    attn_attention_opts o;
    attn_tensor *q, *k, *v;
    qkv(c, &q, &k, &v);
    memset(&o, 0, sizeof o);
    o.causal = 1;
    o.key_lengths = att_lengths;
    o.dropout = 0.2f;
    o.training = 1;
    return attn_attention(c, q, k, v, AH, &o);
}
static attn_tensor *b_attention_masks(attn_context *c) { /* padding and a (B, H, Tq, Tk) additive mask */
    attn_attention_opts o;
    attn_tensor *q, *k, *v;
    qkv(c, &q, &k, &v);
    memset(&o, 0, sizeof o);
    o.key_padding_mask = att_padding();
    o.mask = konst(c, "mask", 4, S(AB, AH, AQ, AK), -3.0f, 0.5f);
    o.scale = 0.3f;
    return attn_attention(c, q, k, v, AH, &o);
}
static attn_tensor *b_attention_all(attn_context *c) { /* every mask at once, a broadcast (Tq, Tk) mask */
    attn_attention_opts o;
    attn_tensor *q, *k, *v;
    qkv(c, &q, &k, &v);
    memset(&o, 0, sizeof o);
    o.causal = 1;
    o.key_lengths = att_lengths;
    o.key_padding_mask = att_padding();
    o.mask = konst(c, "mask", 2, S(AQ, AK), -2.0f, 1.0f);
    o.dropout = 0.1f;
    o.training = 1;
    return attn_attention(c, q, k, v, AH, &o);
}

static const struct {
    const char *name;
    build_fn build;
    int threaded;
} op_cases[] = {
    {"add (broadcast)", b_add, 0},
    {"sub (broadcast, strided)", b_sub, 0},
    {"mul (broadcast both)", b_mul, 0},
    {"mul (by a scalar tensor)", b_mul_scalar, 0},
    {"scale", b_scale, 0},
    {"relu", b_relu, 0},
    {"tanh", b_tanh, 0},
    {"gelu 40000", b_gelu, 1},
    {"gelu of a view", b_gelu_view, 1},
    {"dropout (training)", b_dropout, 0},
    {"sum of 1000", b_sum_1000, 0},
    {"sum of 7", b_sum_7, 0},
    {"mean of 1000", b_mean_1000, 0},
    {"mean of 7", b_mean_7, 0},
    {"mean of 69993", b_mean_big, 0},
    {"matmul 128x128x128", b_matmul, 1},
    {"matmul 13x31x7", b_matmul_odd, 0},
    {"matmul batched", b_matmul_batched, 1},
    {"matmul batched, shared 2-D b", b_matmul_shared_b, 1},
    {"matmul of transposed views", b_matmul_views, 1},
    {"linear with bias", b_linear_bias, 1},
    {"linear without bias", b_linear_nobias, 0},
    {"reshape/transpose/slice/contiguous", b_views, 0},
    {"concat (dim 1, views)", b_concat, 0},
    {"concat (last dim)", b_concat_last, 0},
    {"embedding (repeated indices)", b_embedding, 0},
    {"softmax 64x1024", b_softmax, 1},
    {"softmax 2x3x5", b_softmax_small, 0},
    {"log_softmax 64x1024 (strided)", b_log_softmax, 1},
    {"layernorm 64x1024", b_layernorm, 1},
    {"layernorm without weight, bias", b_layernorm_bare, 0},
    {"rmsnorm 64x1024", b_rmsnorm, 0},
    {"rmsnorm without weight", b_rmsnorm_bare, 0},
    {"cross_entropy (ignore_index, smoothing)", b_cross_entropy, 1},
    {"cross_entropy (ignore_index 5)", b_cross_entropy_plain, 0},
    {"attention (causal, key_lengths, dropout)", b_attention_causal, 1},
    {"attention (padding, 4-D mask, scale)", b_attention_masks, 1},
    {"attention (every mask, 2-D mask, dropout)", b_attention_all, 1},
};

TEST(same_bits_ops) {
    size_t i;
    for (i = 0; i < sizeof op_cases / sizeof op_cases[0]; i++)
        run_case(op_cases[i].name, op_cases[i].build, op_cases[i].threaded);
}

/* ---- 7. every module of the layers section ---- */
enum { MB = 2, MS = 9, MT = 7, ME = 32 };
static const unsigned char src_pad[MB * MS] = {0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0};

static attn_tensor *b_mha_self(attn_context *c) {
    attn_mha m;
    attn_mha_desc d;
    attn_attention_opts o;
    attn_tensor *x;
    memset(&d, 0, sizeof d);
    d.embed_dim = ME;
    d.heads = 4;
    d.dropout = 0.1f;
    if (attn_mha_init(c, &m, "mha.", &d) != ATTN_OK) return NULL;
    x = leaf(c, "x", 3, S(MB, MS, ME));
    memset(&o, 0, sizeof o);
    o.key_padding_mask = src_pad;
    o.training = 1;
    return attn_mha_forward(c, &m, x, x, x, &o);
}
static attn_tensor *b_mha_cross(attn_context *c) { /* kdim, vdim != E: separate projections, no bias */
    attn_mha m;
    attn_mha_desc d;
    attn_attention_opts o;
    memset(&d, 0, sizeof d);
    d.embed_dim = ME;
    d.heads = 2;
    d.kdim = 24;
    d.vdim = 20;
    d.no_bias = 1;
    if (attn_mha_init(c, &m, "cross.", &d) != ATTN_OK) return NULL;
    memset(&o, 0, sizeof o);
    o.causal = 1;
    o.mask = konst(c, "mask", 2, S(MT, MS), -1.0f, 0.0f);
    return attn_mha_forward(c, &m, leaf(c, "q", 3, S(MB, MT, ME)), leaf(c, "k", 3, S(MB, MS, 24)),
                            leaf(c, "v", 3, S(MB, MS, 20)), &o);
}

static attn_layer_desc layer_desc(int norm_first, attn_activation act) {
    attn_layer_desc d;
    memset(&d, 0, sizeof d);
    d.d_model = ME;
    d.heads = 4;
    d.dim_feedforward = 48;
    d.dropout = 0.1f;
    d.activation = act;
    d.norm_first = norm_first;
    d.num_layers = 2;
    d.num_decoder_layers = 2;
    d.final_norm = 1;
    return d;
}
static attn_attention_opts pad_opts(void) {
    attn_attention_opts o;
    memset(&o, 0, sizeof o);
    o.key_padding_mask = src_pad;
    return o;
}
static attn_attention_opts causal_opts(void) {
    attn_attention_opts o;
    memset(&o, 0, sizeof o);
    o.causal = 1;
    return o;
}

static attn_tensor *encoder_layer(attn_context *c, int norm_first, attn_activation act) {
    attn_encoder_layer l;
    attn_layer_desc d = layer_desc(norm_first, act);
    attn_attention_opts so = pad_opts();
    attn_layer_masks mk;
    mk.self_attn = &so;
    mk.cross_attn = NULL;
    if (attn_encoder_layer_init(c, &l, "enc.", &d) != ATTN_OK) return NULL;
    return attn_encoder_layer_forward(c, &l, leaf(c, "src", 3, S(MB, MS, ME)), &mk, 1);
}
static attn_tensor *b_encoder_layer_post(attn_context *c) { return encoder_layer(c, 0, ATTN_ACT_RELU); }
static attn_tensor *b_encoder_layer_pre(attn_context *c) { return encoder_layer(c, 1, ATTN_ACT_GELU); }

static attn_tensor *decoder_layer(attn_context *c, int norm_first, attn_activation act) {
    attn_decoder_layer l;
    attn_layer_desc d = layer_desc(norm_first, act);
    attn_attention_opts so = causal_opts(), co = pad_opts();
    attn_layer_masks mk;
    mk.self_attn = &so;
    mk.cross_attn = &co;
    if (attn_decoder_layer_init(c, &l, "dec.", &d) != ATTN_OK) return NULL;
    return attn_decoder_layer_forward(c, &l, leaf(c, "tgt", 3, S(MB, MT, ME)), leaf(c, "memory", 3, S(MB, MS, ME)), &mk,
                                      1);
}
static attn_tensor *b_decoder_layer_post(attn_context *c) { return decoder_layer(c, 0, ATTN_ACT_GELU); }
static attn_tensor *b_decoder_layer_pre(attn_context *c) { return decoder_layer(c, 1, ATTN_ACT_RELU); }

static attn_tensor *b_encoder(attn_context *c) {
    attn_encoder e;
    attn_encoder_layer layers[2];
    attn_layer_desc d = layer_desc(0, ATTN_ACT_GELU);
    attn_attention_opts so = pad_opts();
    attn_layer_masks mk;
    mk.self_attn = &so;
    mk.cross_attn = NULL;
    if (attn_encoder_init(c, &e, layers, "encoder.", &d) != ATTN_OK) return NULL;
    return attn_encoder_forward(c, &e, leaf(c, "src", 3, S(MB, MS, ME)), &mk, 1);
}
static attn_tensor *b_decoder(attn_context *c) {
    attn_decoder e;
    attn_decoder_layer layers[2];
    attn_layer_desc d = layer_desc(1, ATTN_ACT_RELU);
    attn_attention_opts so = causal_opts(), co = pad_opts();
    attn_layer_masks mk;
    mk.self_attn = &so;
    mk.cross_attn = &co;
    if (attn_decoder_init(c, &e, layers, "decoder.", &d) != ATTN_OK) return NULL;
    return attn_decoder_forward(c, &e, leaf(c, "tgt", 3, S(MB, MT, ME)), leaf(c, "memory", 3, S(MB, MS, ME)), &mk, 1);
}
static attn_tensor *b_transformer(attn_context *c) {
    attn_transformer tr;
    attn_encoder_layer enc[2];
    attn_decoder_layer dec[2];
    attn_layer_desc d = layer_desc(0, ATTN_ACT_RELU);
    attn_attention_opts src = pad_opts(), tgt = causal_opts(), mem = pad_opts();
    attn_layer_masks em, dm;
    em.self_attn = &src;
    em.cross_attn = NULL;
    dm.self_attn = &tgt;
    dm.cross_attn = &mem;
    if (attn_transformer_init(c, &tr, enc, dec, "", &d) != ATTN_OK) return NULL;
    return attn_transformer_forward(c, &tr, leaf(c, "src", 3, S(MB, MS, ME)), leaf(c, "tgt", 3, S(MB, MT, ME)), &em,
                                    &dm, 1);
}

enum { LV = 37, LT = 12 };
static const int32_t *lm_tokens(void) {
    static int32_t tok[MB * LT];
    int i;
    for (i = 0; i < MB * LT; i++) tok[i] = (int32_t)((i * 11 + 5) % LV);
    return tok;
}
static attn_tensor *lm(attn_context *c, int untied) {
    attn_lm m;
    attn_encoder_layer layers[2];
    attn_lm_desc d;
    memset(&d, 0, sizeof d);
    d.vocab = LV;
    d.max_len = 16;
    d.layer = layer_desc(1, ATTN_ACT_GELU);
    d.untied = untied;
    if (attn_lm_init(c, &m, layers, "", &d) != ATTN_OK) return NULL;
    return attn_lm_forward(c, &m, lm_tokens(), MB, LT, 1);
}
static attn_tensor *b_lm_tied(attn_context *c) { return lm(c, 0); }
static attn_tensor *b_lm_untied(attn_context *c) { return lm(c, 1); }

static attn_tensor *b_positions(attn_context *c) {
    attn_tensor *pe = attn_sinusoidal_table(c, 50, ME);
    return attn_add_positions(c, leaf(c, "x", 3, S(MB, MT, ME)), pe, 3);
}
static attn_tensor *b_sinusoidal(attn_context *c) { return attn_sinusoidal_table(c, 64, 48); }

static const struct {
    const char *name;
    build_fn build;
} module_cases[] = {
    {"multi-head self-attention (padding, dropout)", b_mha_self},
    {"multi-head cross-attention (kdim, vdim, no bias, mask)", b_mha_cross},
    {"encoder layer (post-norm, relu)", b_encoder_layer_post},
    {"encoder layer (pre-norm, gelu)", b_encoder_layer_pre},
    {"decoder layer (post-norm, gelu)", b_decoder_layer_post},
    {"decoder layer (pre-norm, relu)", b_decoder_layer_pre},
    {"encoder (2 layers, final norm)", b_encoder},
    {"decoder (2 layers, final norm)", b_decoder},
    {"transformer", b_transformer},
    {"decoder-only LM (tied)", b_lm_tied},
    {"decoder-only LM (untied)", b_lm_untied},
    {"sinusoidal table", b_sinusoidal},
    {"add positions", b_positions},
};

TEST(same_bits_modules) {
    size_t i;
    for (i = 0; i < sizeof module_cases / sizeof module_cases[0]; i++)
        run_case(module_cases[i].name, module_cases[i].build, 0);
}

/* Incremental decoding: a prompt, then one position at a time, each step's
   output and the cache itself. */
TEST(same_bits_kv_cache) {
    enum { P = 5, STEPS = 4, CAP = P + STEPS };
    twin t;
    attn_mha m[2];
    attn_kv_cache cache[2];
    attn_tensor *x[2], *out[2];
    attn_mha_desc d;
    verdict v;
    char name[64];
    int k, s;
    if (!twin_open(&t)) goto done;
    verdict_begin(&v, &t, "kv cache");
    memset(&d, 0, sizeof d);
    d.embed_dim = ME;
    d.heads = 4;
    for (k = 0; k < 2; k++) {
        CHECK(attn_mha_init(t.c[k], &m[k], "", &d) == ATTN_OK, "init: %s", attn_error_message(t.c[k]));
        CHECK(attn_kv_cache_init(t.c[k], &cache[k], &m[k], MB, CAP) == ATTN_OK, "cache: %s",
              attn_error_message(t.c[k]));
        x[k] = konst(t.c[k], "prompt", 3, S(MB, CAP, ME), -1.0f, 1.0f);
    }
    for (s = 0; s <= STEPS; s++) {
        int start = s ? P + s - 1 : 0, len = s ? 1 : P;
        for (k = 0; k < 2; k++)
            out[k] = attn_mha_forward_cached(t.c[k], &m[k], attn_slice(t.c[k], x[k], 1, start, start + len),
                                             &cache[k]);
        snprintf(name, sizeof name, "output of step %d", s);
        same(&v, name, out[0], out[1], 0);
        if (cache[0].length != cache[1].length)
            verdict_differs(&v, "step %d: cache lengths %d / %d", s, cache[0].length, cache[1].length);
    }
    same(&v, "cached keys", cache[0].k, cache[1].k, 0);
    same(&v, "cached values", cache[0].v, cache[1].v, 0);
    same_params(&v, 0);
    verdict_end(&v);
done:
    twin_close(&t);
}

/* ---- 5. init: the backend context makes the numbers on the host and uploads
   them, the plain one writes them in place; same RNG stream, same order ---- */
TEST(same_bits_init) {
    twin t;
    attn_tensor *a[2][8], *parent[2];
    verdict v;
    int k, i;
    static const char *names[8] = {"uniform", "normal", "xavier_uniform", "xavier_normal", "kaiming_uniform",
                                   "kaiming_normal", "normal of a transposed view", "uniform of a 4-D slice"};
    if (!twin_open(&t)) goto done;
    for (k = 0; k < 2; k++) {
        attn_context *c = t.c[k];
        int st = ATTN_OK;
        for (i = 0; i < 6; i++) a[k][i] = attn_tensor_2d(c, 48, 33);
        a[k][6] = attn_transpose(c, attn_tensor_2d(c, 20, 30), 0, 1);
        parent[k] = konst(c, "parent", 4, S(3, 4, 5, 6), 5.0f, 6.0f);
        a[k][7] = attn_slice(c, parent[k], 2, 1, 4);
        st |= attn_init_uniform(c, a[k][0], -0.5f, 1.5f);
        st |= attn_init_normal(c, a[k][1], 0.25f, 2.0f);
        st |= attn_init_xavier_uniform(c, a[k][2], 1.3f);
        st |= attn_init_xavier_normal(c, a[k][3], 0.7f);
        st |= attn_init_kaiming_uniform(c, a[k][4], 2.2360679775f);
        st |= attn_init_kaiming_normal(c, a[k][5], 0.0f);
        st |= attn_init_normal(c, a[k][6], 0.0f, 1.0f);
        st |= attn_init_uniform(c, a[k][7], -1.0f, 1.0f);
        CHECK(st == ATTN_OK, "init on context %d: %s", k, attn_error_message(c));
    }
    verdict_begin(&v, &t, "init");
    for (i = 0; i < 8; i++) same(&v, names[i], a[0][i], a[1][i], 0);
    /* the whole view's parent too: a strided init must not touch what it skips */
    same(&v, "the tensor under the 4-D slice", parent[0], parent[1], 0);
    verdict_end(&v);
    {
        attn_rng *r0 = attn_context_rng(t.c[0]), *r1 = attn_context_rng(t.c[1]);
        CHECK(r0->state == r1->state && r0->inc == r1->inc, "the RNGs drew different amounts");
    }
done:
    twin_close(&t);
}

/* ---- 8. training: optimizer steps and clipping ---- */
typedef struct optim_case {
    const char *name;
    attn_optim_desc d;
} optim_case;

static void train_case(const optim_case *oc) {
    enum { STEPS = 2, B = 2, T = 8, V = 23 };
    twin t;
    attn_lm m[2];
    attn_encoder_layer layers[2][1];
    attn_optim *opt[2];
    int32_t tok[B * T], tgt[B * T];
    float norm[2], lossv[2];
    verdict v;
    char what[96];
    int k, s, i;
    for (i = 0; i < B * T; i++) {
        tok[i] = (int32_t)((i * 5 + 1) % V);
        tgt[i] = i % 6 == 5 ? -100 : (int32_t)((i * 5 + 6) % V);
    }
    if (!twin_open(&t)) goto done;
    for (k = 0; k < 2; k++) {
        attn_lm_desc d;
        memset(&d, 0, sizeof d);
        d.vocab = V;
        d.max_len = T;
        d.layer = layer_desc(1, ATTN_ACT_GELU);
        d.layer.num_layers = 1;
        d.untied = 1;
        if (!CHECK(attn_lm_init(t.c[k], &m[k], layers[k], "", &d) == ATTN_OK, "%s: init: %s", oc->name,
                   attn_error_message(t.c[k])) ||
            !CHECK((opt[k] = attn_optim_create(t.c[k], &oc->d)) != NULL, "%s: optim: %s", oc->name,
                   attn_error_message(t.c[k])))
            goto done;
    }
    for (s = 0; s < STEPS; s++) {
        for (k = 0; k < 2; k++) {
            attn_context *c = t.c[k];
            attn_context_pos mk = attn_context_mark(c);
            attn_tensor *logits = attn_lm_forward(c, &m[k], tok, B, T, 1);
            attn_tensor *loss = attn_cross_entropy(c, attn_reshape(c, logits, 2, S(B * T, V)), tgt, -100, 0.05f);
            attn_params_zero_grad(c);
            if (!CHECK(loss && attn_backward(c, loss) == ATTN_OK, "%s step %d: %s", oc->name, s, attn_error_message(c)))
                goto done;
            attn_tensor_download(c, loss, &lossv[k], 1);
            /* 0.5 is below the norm here, so the grads really are scaled */
            norm[k] = attn_clip_grad_norm(c, 0.5f);
            CHECK(attn_optim_step(opt[k]) == ATTN_OK, "%s: step: %s", oc->name, attn_error_message(c));
            attn_context_reset(c, mk);
        }
        snprintf(what, sizeof what, "%s, step %d", oc->name, s + 1);
        verdict_begin(&v, &t, what);
        same_floats(&v, "loss", &lossv[0], &lossv[1], 1);
        same_floats(&v, "grad norm", &norm[0], &norm[1], 1);
        same_params(&v, 1); /* grads: the clipped ones the step used */
        verdict_end(&v);
        CHECK(norm[0] > 0.5f, "%s: grad norm %g: clipping to 0.5 scaled nothing", what, norm[0]);
    }
    /* the optimizer's moments too, which no parameter shows: a checkpoint holds them */
    {
        size_t n0 = attn_checkpoint_bytes(t.c[0], opt[0]), n1 = attn_checkpoint_bytes(t.c[1], opt[1]);
        unsigned char *a = (unsigned char *)malloc(n0 ? n0 : 1), *b = (unsigned char *)malloc(n1 ? n1 : 1);
        if (CHECK(a && b && n0 == n1 && attn_checkpoint_save(t.c[0], opt[0], a, n0) == ATTN_OK &&
                      attn_checkpoint_save(t.c[1], opt[1], b, n1) == ATTN_OK,
                  "%s: checkpoints (%lu / %lu bytes): %s / %s", oc->name, (unsigned long)n0, (unsigned long)n1, attn_error_message(t.c[0]),
                  attn_error_message(t.c[1]))) {
            size_t j;
            for (j = 0; j < n0 && a[j] == b[j]; j++) {}
            CHECK(j == n0, "%s: the checkpoints (weights, moments, step, RNG) differ from byte %lu of %lu", oc->name,
                  (unsigned long)j, (unsigned long)n0);
        }
        free(a);
        free(b);
    }
done:
    twin_close(&t);
}

TEST(same_bits_training) {
    optim_case cases[7];
    size_t i;
    memset(cases, 0, sizeof cases);
    cases[0].name = "SGD";
    cases[0].d.kind = ATTN_OPTIM_SGD;
    cases[0].d.lr = 0.1;
    cases[1].name = "SGD momentum, dampening, weight decay";
    cases[1].d.kind = ATTN_OPTIM_SGD;
    cases[1].d.lr = 0.05;
    cases[1].d.momentum = 0.9;
    cases[1].d.dampening = 0.1;
    cases[1].d.weight_decay = 0.01;
    cases[2].name = "SGD nesterov";
    cases[2].d.kind = ATTN_OPTIM_SGD;
    cases[2].d.lr = 0.05;
    cases[2].d.momentum = 0.9;
    cases[2].d.nesterov = 1;
    cases[3].name = "Adam";
    cases[3].d.kind = ATTN_OPTIM_ADAM;
    cases[3].d.lr = 1e-2;
    cases[3].d.weight_decay = 0.01;
    cases[4].name = "AdamW";
    cases[4].d.kind = ATTN_OPTIM_ADAMW;
    cases[4].d.lr = 1e-2;
    cases[4].d.weight_decay = 0.1;
    cases[4].d.beta1 = 0.8;
    cases[4].d.beta2 = 0.99;
    cases[5].name = "Adagrad";
    cases[5].d.kind = ATTN_OPTIM_ADAGRAD;
    cases[5].d.lr = 0.05;
    cases[5].d.lr_decay = 0.01;
    cases[5].d.initial_accumulator_value = 0.1;
    cases[5].d.weight_decay = 0.01;
    cases[6].name = "Adagrad defaults";
    cases[6].d.kind = ATTN_OPTIM_ADAGRAD;
    cases[6].d.lr = 0.01;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) train_case(&cases[i]);
}

TEST_GROUP(same_bits) = {
    TEST_ENTRY(same_bits_ops),
    TEST_ENTRY(same_bits_modules),
    TEST_ENTRY(same_bits_kv_cache),
    TEST_ENTRY(same_bits_init),
    TEST_ENTRY(same_bits_training),
    TEST_END
};
