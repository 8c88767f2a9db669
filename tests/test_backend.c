/* tests/test_backend.c - section 5 (backends): model code on a backend context.

   The backend here is attn_backend_cpu() behind a guard: every address the
   guard hands out is "poisoned" (bit 62 flipped, so on 64-bit hosts it points
   nowhere and any dereference faults), and the guard un-poisons addresses only
   on their way into the CPU table. A context on the guarded backend therefore
   crashes if attn.h ever touches backend memory itself, or passes a host
   pointer where the table wants backend memory: exactly the mistakes that
   would crash on a GPU, caught without one. The results are compared with the
   same code on a plain context (no backend) to a stated tolerance; that the two
   agree bit for bit (they run the same functions) is tests/test_same_bits.c's
   claim, checked there without the guard. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

#if UINTPTR_MAX > 0xffffffffu
#  define POISON_BIT ((uintptr_t)1 << 62)
#else
#  define POISON_BIT ((uintptr_t)0) /* 32-bit: no spare bit; the comparisons still run */
#endif
static void *flip(const void *p) { return p ? (void *)((uintptr_t)p ^ POISON_BIT) : NULL; }
#define F(p) ((float *)flip(p))
#define CF(p) ((const float *)flip(p))

typedef struct guard {
    attn_backend table;       /* what contexts see */
    attn_backend cpu;         /* what does the work */
    long calls, live_blocks;
    int fail_alloc;
} guard;
#define G ((guard *)user)
#define CPU G->calls++, &G->cpu

static const char *g_last_error(void *user) { return G->cpu.last_error(G->cpu.user); }
static void *g_alloc(void *user, size_t bytes) {
    void *p;
    if (G->fail_alloc) return NULL;
    p = G->cpu.alloc(G->cpu.user, bytes);
    if (p) G->live_blocks++;
    return flip(p);
}
static void g_free(void *user, void *ptr) {
    if (ptr) G->live_blocks--;
    G->cpu.free(G->cpu.user, flip(ptr));
}
static attn_status g_upload(void *user, void *dst, const void *src, size_t n) { return (CPU)->upload(G->cpu.user, flip(dst), src, n); }
static attn_status g_download(void *user, void *dst, const void *src, size_t n) { return (CPU)->download(G->cpu.user, dst, flip(src), n); }
static attn_status g_sync(void *user) { return (CPU)->sync(G->cpu.user); }
static attn_status g_fill(void *user, size_t n, float v, float *y) { return (CPU)->fill(G->cpu.user, n, v, F(y)); }
static attn_status g_copy4(void *user, const int *sh, const float *x, const int *xs, float *y, const int *ys, int acc) {
    return (CPU)->copy4(G->cpu.user, sh, CF(x), xs, F(y), ys, acc);
}
static attn_status g_binary4(void *user, int op, const int *sh, const float *a, const int *as, const float *b,
                             const int *bs, float *y) {
    return (CPU)->binary4(G->cpu.user, op, sh, CF(a), as, CF(b), bs, F(y));
}
static attn_status g_reduce4(void *user, const int *sh, float *d, const int *ds, const float *g, const float *o,
                             const int *os, float sign) {
    return (CPU)->reduce4(G->cpu.user, sh, F(d), ds, CF(g), CF(o), os, sign);
}
static attn_status g_gemm(void *user, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                          ptrdiff_t sA, const float *B, int ldb, ptrdiff_t sB, float beta, float *C, int ldc,
                          ptrdiff_t sC, int batch) {
    return (CPU)->gemm(G->cpu.user, ta, tb, M, N, K, alpha, CF(A), lda, sA, CF(B), ldb, sB, beta, F(C), ldc, sC, batch);
}
static attn_status g_unary(void *user, int op, size_t n, float s, const float *x, float *y) {
    return (CPU)->unary(G->cpu.user, op, n, s, CF(x), F(y));
}
static attn_status g_unary_backward(void *user, int op, size_t n, float s, const float *x, const float *y,
                                    const float *dy, float *dx) {
    return (CPU)->unary_backward(G->cpu.user, op, n, s, CF(x), CF(y), CF(dy), F(dx));
}
static attn_status g_dropout(void *user, uint64_t seed, float p, size_t n, const float *x, float *y, int acc) {
    return (CPU)->dropout(G->cpu.user, seed, p, n, CF(x), F(y), acc);
}
static attn_status g_softmax(void *user, int log, int rows, int cols, const float *x, float *y) {
    return (CPU)->softmax(G->cpu.user, log, rows, cols, CF(x), F(y));
}
static attn_status g_softmax_backward(void *user, int log, int rows, int cols, const float *y, const float *dy, float *dx) {
    return (CPU)->softmax_backward(G->cpu.user, log, rows, cols, CF(y), CF(dy), F(dx));
}
static attn_status g_norm_forward(void *user, int rms, int rows, int cols, const float *x, const float *gamma,
                                  const float *beta, float eps, float *y, float *mean, float *rstd) {
    return (CPU)->norm_forward(G->cpu.user, rms, rows, cols, CF(x), CF(gamma), CF(beta), eps, F(y), F(mean), F(rstd));
}
static attn_status g_norm_backward(void *user, int rms, int rows, int cols, const float *x, const float *gamma,
                                   const float *mean, const float *rstd, const float *dy, float *dx, float *dg, float *db) {
    return (CPU)->norm_backward(G->cpu.user, rms, rows, cols, CF(x), CF(gamma), CF(mean), CF(rstd), CF(dy), F(dx),
                                F(dg), F(db));
}
static attn_status g_embedding(void *user, size_t n, int dim, const int32_t *idx, const float *w, float *y) {
    return (CPU)->embedding(G->cpu.user, n, dim, (const int32_t *)flip(idx), CF(w), F(y));
}
static attn_status g_embedding_backward(void *user, size_t n, int dim, const int32_t *idx, const float *dy, float *dw) {
    return (CPU)->embedding_backward(G->cpu.user, n, dim, (const int32_t *)flip(idx), CF(dy), F(dw));
}
static attn_status g_cross_entropy(void *user, int rows, int C, const float *logits, const int32_t *t, int ignore,
                                   float ls, float *logp, float *loss) {
    return (CPU)->cross_entropy(G->cpu.user, rows, C, CF(logits), (const int32_t *)flip(t), ignore, ls, F(logp), F(loss));
}
static attn_status g_cross_entropy_backward(void *user, int rows, int C, const float *logp, const int32_t *t, int ignore,
                                            float ls, const float *dloss, float *dlogits) {
    return (CPU)->cross_entropy_backward(G->cpu.user, rows, C, CF(logp), (const int32_t *)flip(t), ignore, ls,
                                         CF(dloss), F(dlogits));
}
static attn_attention_desc unflip_desc(const attn_attention_desc *d) {
    attn_attention_desc c = *d;
    c.key_lengths = (const int *)flip(d->key_lengths);
    c.key_padding_mask = (const unsigned char *)flip(d->key_padding_mask);
    c.bias = CF(d->bias);
    return c;
}
static attn_status g_attention(void *user, const attn_attention_desc *d, const float *q, const float *k, const float *v,
                               float *o, float *lse) {
    attn_attention_desc c = unflip_desc(d);
    return (CPU)->attention(G->cpu.user, &c, CF(q), CF(k), CF(v), F(o), F(lse));
}
static attn_status g_attention_backward(void *user, const attn_attention_desc *d, const float *q, const float *k,
                                        const float *v, const float *o, const float *lse, const float *dout, float *dq,
                                        float *dk, float *dv) {
    attn_attention_desc c = unflip_desc(d);
    return (CPU)->attention_backward(G->cpu.user, &c, CF(q), CF(k), CF(v), CF(o), CF(lse), CF(dout), F(dq), F(dk), F(dv));
}
static attn_status g_sum(void *user, size_t n, const float *x, int sq, double div, float *out) {
    return (CPU)->sum(G->cpu.user, n, CF(x), sq, div, F(out));
}
static attn_status g_add_scalar(void *user, size_t n, const float *s, float c, float *y) {
    return (CPU)->add_scalar(G->cpu.user, n, CF(s), c, F(y));
}
static attn_status g_optim_update(void *user, size_t n, const attn_backend_update *u, float *w, const float *g, float *m,
                                  float *v) {
    return (CPU)->optim_update(G->cpu.user, n, u, F(w), CF(g), F(m), F(v));
}

static void guard_init(guard *g) {
    attn_backend *t = &g->table;
    memset(g, 0, sizeof *g);
    t->name = "guarded-cpu";
    t->user = g;
    t->last_error = g_last_error;
    t->alloc = g_alloc;
    t->free = g_free;
    t->upload = g_upload;
    t->download = g_download;
    t->sync = g_sync;
    t->fill = g_fill;
    t->copy4 = g_copy4;
    t->binary4 = g_binary4;
    t->reduce4 = g_reduce4;
    t->gemm = g_gemm;
    t->unary = g_unary;
    t->unary_backward = g_unary_backward;
    t->dropout = g_dropout;
    t->softmax = g_softmax;
    t->softmax_backward = g_softmax_backward;
    t->norm_forward = g_norm_forward;
    t->norm_backward = g_norm_backward;
    t->embedding = g_embedding;
    t->embedding_backward = g_embedding_backward;
    t->cross_entropy = g_cross_entropy;
    t->cross_entropy_backward = g_cross_entropy_backward;
    t->attention = g_attention;
    t->attention_backward = g_attention_backward;
    t->sum = g_sum;
    t->add_scalar = g_add_scalar;
    t->optim_update = g_optim_update;
    g->cpu = attn_backend_cpu();
}

static attn_context *backend_ctx(guard *g, size_t memory, uint64_t seed) {
    attn_context_desc d;
    memset(&d, 0, sizeof d);
    d.backend = &g->table;
    d.backend_memory = memory;
    d.seed = seed;
    return attn_context_create(&d);
}

static attn_context *host_ctx(uint64_t seed) {
    attn_context_desc d;
    memset(&d, 0, sizeof d);
    d.seed = seed;
    d.block_size = 64 << 10; /* small blocks: 32-bit ASan under qemu runs out of address space with many 1 MiB ones */
    return attn_context_create(&d);
}

/* Largest |a - b| over the largest |a| (1 when all are 0); NaNs must match. */
static double rel_diff(const float *a, const float *b, size_t n) {
    double worst = 0.0, scale = 0.0;
    size_t i;
    for (i = 0; i < n; i++) {
        if (isnan(a[i]) != isnan(b[i])) return INFINITY;
        if (isnan(a[i])) continue;
        if (fabs(a[i]) > scale) scale = fabs(a[i]);
        if (fabs((double)a[i] - b[i]) > worst) worst = fabs((double)a[i] - b[i]);
    }
    return worst / (scale > 0.0 ? scale : 1.0);
}

/* t of ctx as host floats (malloc'ed), data or grad. */
static float *fetch(attn_context *ctx, const attn_tensor *t, int grad) {
    size_t n = attn_tensor_numel(t);
    float *h = (float *)malloc((n ? n : 1) * sizeof(float));
    attn_status s = grad ? attn_tensor_download_grad(ctx, t, h, n) : attn_tensor_download(ctx, t, h, n);
    CHECK(s == ATTN_OK, "download: %s", attn_error_message(ctx));
    return h;
}

/* Compare a tensor (or its grad) between the host and the backend context. */
static double compare(attn_context *hc, const attn_tensor *ht, attn_context *bc, const attn_tensor *bt, int grad) {
    float *a, *b;
    double d;
    if (!ht || !bt) return INFINITY;
    if (attn_tensor_numel(ht) != attn_tensor_numel(bt)) return INFINITY;
    a = fetch(hc, ht, grad);
    b = fetch(bc, bt, grad);
    d = rel_diff(a, b, attn_tensor_numel(ht));
    free(a);
    free(b);
    return d;
}

/* A leaf with these values that requires grad (a parameter named name). */
static attn_tensor *leaf(attn_context *ctx, const char *name, int ndim, const int *shape, const float *values) {
    attn_tensor *t = attn_param_new(ctx, name, ndim, shape);
    if (t) attn_tensor_upload(ctx, t, values, attn_tensor_numel(t));
    return t;
}

/* ---- every op: forward value and input grads, host vs backend ---- */
enum { N_INPUTS = 3 };
typedef attn_tensor *(*op_graph)(attn_context *ctx, attn_tensor **in);

static const int32_t tokens[12] = {3, 0, 6, 2, 2, 5, 1, 6, 0, 4, 3, 1};
static const int32_t targets[6] = {1, 0, -100, 1, 0, 1}, targets8[2] = {4, 7};
static const int key_lengths[2] = {5, 3};
static const unsigned char padding[2 * 6] = {0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0};

static attn_tensor *op_add(attn_context *c, attn_tensor **x) { return attn_add(c, x[0], attn_reshape(c, x[1], 2, (int[]){3, 1})); }
static attn_tensor *op_sub(attn_context *c, attn_tensor **x) { return attn_sub(c, attn_transpose(c, x[0], 0, 1), x[1]); }
static attn_tensor *op_mul(attn_context *c, attn_tensor **x) { return attn_mul(c, x[0], attn_slice(c, x[2], 0, 0, 1)); }
static attn_tensor *op_scale_mean(attn_context *c, attn_tensor **x) { return attn_mean(c, attn_scale(c, x[0], -1.5f)); }
static attn_tensor *op_sum_tanh(attn_context *c, attn_tensor **x) { return attn_sum(c, attn_tanh(c, x[0])); }
static attn_tensor *op_matmul(attn_context *c, attn_tensor **x) { return attn_matmul(c, x[0], x[2]); }
static attn_tensor *op_matmul_batched(attn_context *c, attn_tensor **x) {
    attn_tensor *a = attn_reshape(c, x[0], 3, (int[]){3, 2, 2}), *b = attn_reshape(c, attn_slice(c, x[2], 0, 0, 3), 3, (int[]){3, 2, 2});
    return attn_matmul(c, a, b);
}
static attn_tensor *op_linear(attn_context *c, attn_tensor **x) { return attn_linear(c, x[2], x[0], x[1]); }
static attn_tensor *op_transpose(attn_context *c, attn_tensor **x) {
    return attn_gelu(c, attn_contiguous(c, attn_transpose(c, attn_reshape(c, x[2], 3, (int[]){2, 2, 4}), 0, 2)));
}
static attn_tensor *op_concat(attn_context *c, attn_tensor **x) {
    attn_tensor *xs[2];
    xs[0] = x[0];
    xs[1] = attn_slice(c, x[2], 0, 1, 4);
    return attn_relu(c, attn_concat(c, xs, 2, 0));
}
static attn_tensor *op_embedding(attn_context *c, attn_tensor **x) {
    return attn_embedding(c, attn_reshape(c, x[2], 2, (int[]){8, 2}), tokens, 2, (int[]){2, 6});
}
static attn_tensor *op_softmax(attn_context *c, attn_tensor **x) { return attn_softmax(c, x[2]); }
static attn_tensor *op_log_softmax(attn_context *c, attn_tensor **x) { return attn_log_softmax(c, attn_transpose(c, x[2], 0, 1)); }
static attn_tensor *op_layernorm(attn_context *c, attn_tensor **x) {
    return attn_layernorm(c, attn_transpose(c, x[0], 0, 1), x[1], attn_scale(c, x[1], 0.5f), 1e-5f);
}
static attn_tensor *op_rmsnorm(attn_context *c, attn_tensor **x) {
    return attn_rmsnorm(c, x[2], attn_reshape(c, attn_slice(c, x[0], 0, 0, 1), 1, (int[]){4}), 1e-6f);
}
static attn_tensor *op_dropout(attn_context *c, attn_tensor **x) { return attn_dropout(c, x[2], 0.3f, 1); }
static attn_tensor *op_cross_entropy(attn_context *c, attn_tensor **x) {
    return attn_cross_entropy(c, attn_reshape(c, attn_slice(c, x[2], 0, 0, 3), 2, (int[]){6, 2}), targets, -100, 0.1f);
}
static attn_tensor *op_cross_entropy_wide(attn_context *c, attn_tensor **x) {
    return attn_cross_entropy(c, attn_reshape(c, x[2], 2, (int[]){2, 8}), targets8, -100, 0.0f);
}
static attn_tensor *op_attention(attn_context *c, attn_tensor **x) {
    attn_attention_opts o;
    attn_tensor *q = attn_reshape(c, x[2], 3, (int[]){2, 2, 4});
    attn_tensor *kv = attn_reshape(c, attn_concat(c, (attn_tensor *[]){x[2], x[2], x[2]}, 3, 0), 3, (int[]){2, 6, 4});
    memset(&o, 0, sizeof o);
    o.causal = 1;
    o.key_lengths = key_lengths;
    o.key_padding_mask = padding;
    return attn_attention(c, q, kv, attn_scale(c, kv, 0.5f), 2, &o);
}

static const struct { const char *name; op_graph fn; } op_cases[] = {
    {"add (broadcast)", op_add}, {"sub", op_sub}, {"mul (broadcast)", op_mul}, {"scale+mean", op_scale_mean},
    {"tanh+sum", op_sum_tanh}, {"matmul", op_matmul}, {"matmul batched", op_matmul_batched}, {"linear", op_linear},
    {"transpose+gelu", op_transpose}, {"concat+relu", op_concat}, {"embedding", op_embedding}, {"softmax", op_softmax},
    {"log_softmax", op_log_softmax}, {"layernorm", op_layernorm}, {"rmsnorm", op_rmsnorm}, {"dropout", op_dropout},
    {"cross_entropy", op_cross_entropy}, {"cross_entropy (C=8)", op_cross_entropy_wide}, {"attention", op_attention},
};

/* inputs: a (3, 4), b (3), c (4, 4) */
static const int input_shapes[N_INPUTS][2] = {{3, 4}, {3, 1}, {4, 4}};

static void run_op_case(size_t c, float values[N_INPUTS][16], const float *weights) {
    guard g;
    attn_context *hc = host_ctx(5), *bc;
    attn_tensor *hin[N_INPUTS], *bin[N_INPUTS], *ho, *bo, *hl, *bl, *w;
    double worst = 0.0;
    int i;
    guard_init(&g);
    bc = backend_ctx(&g, 128 << 10, 5);
    if (!CHECK(hc && bc, "contexts")) return;
    for (i = 0; i < N_INPUTS; i++) {
        char name[8] = {'i', 'n', (char)('0' + i), 0};
        int shape[2];
        shape[0] = input_shapes[i][0];
        shape[1] = input_shapes[i][1];
        hin[i] = leaf(hc, name, i == 1 ? 1 : 2, shape, values[i]);
        bin[i] = leaf(bc, name, i == 1 ? 1 : 2, shape, values[i]);
    }
    ho = op_cases[c].fn(hc, hin);
    bo = op_cases[c].fn(bc, bin);
    if (!CHECK(ho && bo, "%s: host %s / backend %s", op_cases[c].name, attn_error_message(hc), attn_error_message(bc)))
        goto next;
    worst = compare(hc, ho, bc, bo, 0);
    /* loss = sum(out * w): every output element gets its own grad */
    w = attn_tensor_new(hc, ho->ndim, ho->shape);
    attn_tensor_upload(hc, w, weights, attn_tensor_numel(w));
    hl = attn_sum(hc, attn_mul(hc, ho, w));
    w = attn_tensor_new(bc, bo->ndim, bo->shape);
    attn_tensor_upload(bc, w, weights, attn_tensor_numel(w));
    bl = attn_sum(bc, attn_mul(bc, bo, w));
    if (!CHECK(hl && bl && attn_backward(hc, hl) == ATTN_OK && attn_backward(bc, bl) == ATTN_OK,
               "%s backward: %s / %s", op_cases[c].name, attn_error_message(hc), attn_error_message(bc)))
        goto next;
    for (i = 0; i < N_INPUTS; i++) {
        double d = compare(hc, hin[i], bc, bin[i], 1);
        if (d > worst) worst = d;
    }
    /* the table's kernels are the host's: equal but for summation order */
    CHECK(worst <= 1e-6, "%s: backend differs from host by %g of the largest value", op_cases[c].name, worst);
    CHECK(g.calls > 0, "%s: the backend was never called", op_cases[c].name);
next:
    attn_context_destroy(hc);
    attn_context_destroy(bc);
    CHECK(g.live_blocks == 0, "%s: backend memory not given back", op_cases[c].name);
}

TEST(backend_ops_match_host) {
    float values[N_INPUTS][16], weights[64];
    test_rng r;
    size_t c;
    test_rng_seed(&r, 11);
    for (c = 0; c < N_INPUTS; c++) test_fill(&r, values[c], 16, -2.0f, 2.0f);
    test_fill(&r, weights, 64, -1.0f, 1.0f);
    for (c = 0; c < sizeof op_cases / sizeof op_cases[0]; c++) run_op_case(c, values, weights);
}

/* The GPT-style LM trains on the backend exactly as on the host: losses per
   step and the final weights (dropout on, AdamW, clipping). */
TEST(backend_lm_trains_like_host) {
    enum { V = 11, B = 2, T = 8, STEPS = 6 };
    attn_context *ctx[2];
    attn_lm lm[2];
    attn_encoder_layer layers[2][2];
    attn_optim *opt[2];
    float losses[2][STEPS];
    int32_t tok[B * T], tgt[B * T];
    guard g;
    int k, s, i;
    double worst = 0.0;
    guard_init(&g);
    for (i = 0; i < B * T; i++) tok[i] = (int32_t)((i * 7 + 3) % V), tgt[i] = (int32_t)((i * 7 + 10) % V);
    ctx[0] = host_ctx(42);
    ctx[1] = backend_ctx(&g, 8 << 20, 42);
    if (!CHECK(ctx[0] && ctx[1], "contexts")) return;
    for (k = 0; k < 2; k++) {
        attn_lm_desc d;
        attn_optim_desc od;
        memset(&d, 0, sizeof d);
        d.vocab = V;
        d.max_len = T;
        d.layer.d_model = 16;
        d.layer.heads = 2;
        d.layer.dim_feedforward = 32;
        d.layer.num_layers = 2;
        d.layer.dropout = 0.1f;
        d.layer.activation = ATTN_ACT_GELU;
        memset(&od, 0, sizeof od);
        od.kind = ATTN_OPTIM_ADAMW;
        od.lr = 1e-2;
        od.weight_decay = 0.01;
        if (!CHECK(attn_lm_init(ctx[k], &lm[k], layers[k], "", &d) == ATTN_OK, "init %d: %s", k, attn_error_message(ctx[k])))
            goto done;
        if (!CHECK((opt[k] = attn_optim_create(ctx[k], &od)) != NULL, "optim: %s", attn_error_message(ctx[k]))) goto done;
        for (s = 0; s < STEPS; s++) {
            attn_context_pos m = attn_context_mark(ctx[k]);
            attn_tensor *logits = attn_lm_forward(ctx[k], &lm[k], tok, B, T, 1);
            attn_tensor *loss = logits ? attn_cross_entropy(ctx[k], attn_reshape(ctx[k], logits, 2, (int[]){B * T, V}), tgt,
                                                            -100, 0.0f) : NULL;
            attn_params_zero_grad(ctx[k]);
            if (!CHECK(loss && attn_backward(ctx[k], loss) == ATTN_OK, "step %d ctx %d: %s", s, k, attn_error_message(ctx[k])))
                goto done;
            attn_clip_grad_norm(ctx[k], 0.5f);
            attn_tensor_download(ctx[k], loss, &losses[k][s], 1);
            CHECK(attn_optim_step(opt[k]) == ATTN_OK, "optim step: %s", attn_error_message(ctx[k]));
            attn_context_reset(ctx[k], m);
        }
    }
    for (s = 0; s < STEPS; s++) {
        double d = fabs((double)losses[0][s] - losses[1][s]) / fabs((double)losses[0][s]);
        CHECK(d <= 1e-6, "step %d: loss %.9g on the host, %.9g on the backend", s, losses[0][s], losses[1][s]);
    }
    CHECK(losses[0][STEPS - 1] < losses[0][0], "the LM did not learn: %g -> %g", losses[0][0], losses[0][STEPS - 1]);
    {
        attn_param *p, *q;
        for (p = attn_params(ctx[0]), q = attn_params(ctx[1]); p && q; p = p->next, q = q->next) {
            double d = compare(ctx[0], p->tensor, ctx[1], q->tensor, 0);
            if (d > worst) worst = d;
        }
        CHECK(!p && !q, "parameter lists differ");
        /* Adam divides by sqrt(v): a grad that is rounding noise on both sides
           still moves its weight by up to lr, so weights agree to lr, not to
           rounding (bit for bit on x86-64; 4e-3 of the largest on 32-bit ARM,
           whose host and table paths round one reduction differently). */
        CHECK(worst <= 1e-2, "weights after %d steps differ by %g of their largest", STEPS, worst);
    }
    /* files from the backend: save there, load on the host, compare */
    {
        size_t n = attn_params_save_bytes(ctx[1]);
        unsigned char *buf = (unsigned char *)malloc(n);
        attn_context *h2 = host_ctx(42);
        attn_lm lm2;
        attn_encoder_layer layers2[2];
        attn_param *p, *q;
        double d = 0.0;
        CHECK(attn_params_save(ctx[1], buf, n) == ATTN_OK, "save: %s", attn_error_message(ctx[1]));
        CHECK(attn_lm_init(h2, &lm2, layers2, "", &lm[0].desc) == ATTN_OK, "init: %s", attn_error_message(h2));
        CHECK(attn_params_load(h2, buf, n, 1) == ATTN_OK, "load: %s", attn_error_message(h2));
        for (p = attn_params(ctx[1]), q = attn_params(h2); p && q; p = p->next, q = q->next) {
            double e = compare(h2, q->tensor, ctx[1], p->tensor, 0);
            if (e > d) d = e;
        }
        CHECK(d == 0.0, "saved from the backend and loaded on the host: %g", d);
        /* and back onto the backend, into fresh parameters */
        for (p = attn_params(ctx[1]); p; p = p->next) attn_tensor_fill(p->tensor, 0.0f);
        CHECK(attn_params_load(ctx[1], buf, n, 1) == ATTN_OK, "load on the backend: %s", attn_error_message(ctx[1]));
        d = 0.0;
        for (p = attn_params(ctx[1]), q = attn_params(h2); p && q; p = p->next, q = q->next) {
            double e = compare(h2, q->tensor, ctx[1], p->tensor, 0);
            if (e > d) d = e;
        }
        CHECK(d == 0.0, "loaded on the backend: %g", d);
        attn_context_destroy(h2);
        free(buf);
    }
    /* a checkpoint (weights, AdamW's moments, step, RNG) through backend memory: save, spoil, load, save again */
    {
        size_t n = attn_checkpoint_bytes(ctx[1], opt[1]);
        unsigned char *a = (unsigned char *)malloc(n), *b = (unsigned char *)malloc(n);
        attn_param *p;
        CHECK(attn_checkpoint_save(ctx[1], opt[1], a, n) == ATTN_OK, "checkpoint save: %s", attn_error_message(ctx[1]));
        for (p = attn_params(ctx[1]); p; p = p->next) attn_tensor_fill(p->tensor, 7.0f);
        CHECK(attn_optim_step(opt[1]) == ATTN_OK, "a step to spoil the moments");
        CHECK(attn_checkpoint_load(ctx[1], opt[1], a, n) == ATTN_OK, "checkpoint load: %s", attn_error_message(ctx[1]));
        CHECK(attn_checkpoint_save(ctx[1], opt[1], b, n) == ATTN_OK && !memcmp(a, b, n),
              "a checkpoint loaded on the backend saves differently");
        free(a);
        free(b);
    }
done:
    attn_context_destroy(ctx[0]);
    attn_context_destroy(ctx[1]);
    CHECK(g.live_blocks == 0, "backend memory not given back");
}

/* nn.Transformer with padding and causal masks: outputs and every grad. */
TEST(backend_transformer_grads_match_host) {
    enum { B = 2, S = 5, T = 4, D = 8 };
    attn_context *ctx[2];
    attn_transformer tr[2];
    attn_encoder_layer enc[2][2];
    attn_decoder_layer dec[2][1];
    attn_tensor *out[2], *eval[2];
    float src[B * S * D], tgt[B * T * D], w[B * T * D];
    static const unsigned char src_pad[B * S] = {0, 0, 0, 1, 1, 0, 0, 0, 0, 0};
    attn_attention_opts so, to, co;
    attn_layer_masks em, dm;
    guard g;
    test_rng r;
    int k;
    double worst;
    guard_init(&g);
    test_rng_seed(&r, 3);
    test_fill(&r, src, B * S * D, -1.0f, 1.0f);
    test_fill(&r, tgt, B * T * D, -1.0f, 1.0f);
    test_fill(&r, w, B * T * D, -1.0f, 1.0f);
    memset(&so, 0, sizeof so);
    so.key_padding_mask = src_pad;
    memset(&to, 0, sizeof to);
    to.causal = 1;
    co = so;
    em.self_attn = &so;
    em.cross_attn = NULL;
    dm.self_attn = &to;
    dm.cross_attn = &co;
    ctx[0] = host_ctx(9);
    ctx[1] = backend_ctx(&g, 4 << 20, 9);
    if (!CHECK(ctx[0] && ctx[1], "contexts")) return;
    for (k = 0; k < 2; k++) {
        attn_layer_desc d;
        attn_tensor *xs, *xt, *wt, *loss;
        memset(&d, 0, sizeof d);
        d.d_model = D;
        d.heads = 2;
        d.dim_feedforward = 16;
        d.num_layers = 2;
        d.num_decoder_layers = 1;
        d.activation = ATTN_ACT_RELU;
        out[k] = NULL;
        if (!CHECK(attn_transformer_init(ctx[k], &tr[k], enc[k], dec[k], "", &d) == ATTN_OK, "init: %s",
                   attn_error_message(ctx[k])))
            goto done;
        xs = attn_tensor_3d(ctx[k], B, S, D);
        xt = attn_tensor_3d(ctx[k], B, T, D);
        wt = attn_tensor_3d(ctx[k], B, T, D);
        attn_tensor_upload(ctx[k], xs, src, B * S * D);
        attn_tensor_upload(ctx[k], xt, tgt, B * T * D);
        attn_tensor_upload(ctx[k], wt, w, B * T * D);
        out[k] = attn_transformer_forward(ctx[k], &tr[k], xs, xt, &em, &dm, 0);
        loss = attn_sum(ctx[k], attn_mul(ctx[k], out[k], wt));
        if (!CHECK(loss && attn_backward(ctx[k], loss) == ATTN_OK, "ctx %d: %s", k, attn_error_message(ctx[k]))) goto done;
        attn_grad_enable(ctx[k], 0); /* unrecorded: the masks take another path into backend memory */
        eval[k] = attn_transformer_forward(ctx[k], &tr[k], xs, xt, &em, &dm, 0);
        attn_grad_enable(ctx[k], 1);
    }
    worst = compare(ctx[0], out[0], ctx[1], out[1], 0);
    CHECK(worst <= 1e-6, "outputs differ by %g", worst);
    worst = compare(ctx[0], eval[0], ctx[1], eval[1], 0);
    CHECK(worst <= 1e-6, "outputs without grad differ by %g", worst);
    {
        attn_param *p, *q;
        worst = 0.0;
        for (p = attn_params(ctx[0]), q = attn_params(ctx[1]); p && q; p = p->next, q = q->next) {
            double e = compare(ctx[0], p->tensor, ctx[1], q->tensor, 1);
            if (e > worst) worst = e;
            CHECK(!strcmp(p->name, q->name), "names %s / %s", p->name, q->name);
        }
        CHECK(worst <= 1e-5, "parameter grads differ by %g of their largest", worst);
    }
done:
    attn_context_destroy(ctx[0]);
    attn_context_destroy(ctx[1]);
}

/* What a backend cannot do is an error that says so, never a crash. */
TEST(backend_refuses_host_only_ops) {
    guard g;
    attn_context *ctx;
    attn_tensor *a, *b;
    guard_init(&g);
    ctx = backend_ctx(&g, 1 << 20, 1);
    if (!CHECK(ctx != NULL, "context")) return;
    a = attn_tensor_3d(ctx, 1, 2, 4);
    b = attn_tensor_3d(ctx, 1, 2, 4);
    CHECK(attn_mse(ctx, a, b) == NULL && attn_error_status(ctx) == ATTN_ERR_UNSUPPORTED &&
          strstr(attn_error_message(ctx), "guarded-cpu"), "mse: %s", attn_error_message(ctx));
    attn_error_clear(ctx);
    CHECK(attn_rope(ctx, a, 1, 0, 0.0f) == NULL && attn_error_status(ctx) == ATTN_ERR_UNSUPPORTED, "rope: %s",
          attn_error_message(ctx));
    attn_error_clear(ctx);
    CHECK(attn_attention_weights(ctx, a, b, 1, NULL) == NULL && attn_error_status(ctx) == ATTN_ERR_UNSUPPORTED,
          "attention weights: %s", attn_error_message(ctx));
    attn_context_destroy(ctx);
}

/* Backend memory: its size, running out, marks, a failing allocation, transfers. */
TEST(backend_memory) {
    guard g;
    attn_context *ctx;
    attn_tensor *t, *v;
    attn_context_pos m;
    float host[12], back[12];
    int i;
    guard_init(&g);
    g.fail_alloc = 1;
    CHECK(backend_ctx(&g, 1 << 20, 1) == NULL, "a context whose backend memory cannot be had must be NULL");
    CHECK(g.live_blocks == 0, "leak after a failed create");
    g.fail_alloc = 0;
    ctx = backend_ctx(&g, 4096, 1);
    if (!CHECK(ctx != NULL, "context")) return;
    m = attn_context_mark(ctx);
    CHECK(attn_tensor_2d(ctx, 64, 64) == NULL && attn_error_status(ctx) == ATTN_ERR_OUT_OF_MEMORY &&
          strstr(attn_error_message(ctx), "backend_memory"), "too big: %s", attn_error_message(ctx));
    attn_error_clear(ctx);
    for (i = 0; i < 100; i++) { /* marks give backend memory back: this loop would run out otherwise */
        attn_context_pos m2 = attn_context_mark(ctx);
        if (!attn_tensor_2d(ctx, 16, 16)) break;
        attn_context_reset(ctx, m2);
    }
    CHECK(i == 100, "reset did not return backend memory (stopped at %d): %s", i, attn_error_message(ctx));
    t = attn_tensor_2d(ctx, 3, 4);
    for (i = 0; i < 12; i++) host[i] = (float)i;
    CHECK(attn_tensor_upload(ctx, t, host, 12) == ATTN_OK, "upload");
    CHECK(attn_tensor_upload(ctx, t, host, 11) == ATTN_ERR_SHAPE, "upload with the wrong count must fail");
    v = attn_transpose(ctx, t, 0, 1); /* (4, 3), strided */
    CHECK(attn_tensor_download(ctx, v, back, 12) == ATTN_OK && back[1] == 4.0f && back[3] == 1.0f,
          "strided download: %g %g", back[1], back[3]);
    attn_tensor_fill(attn_slice(ctx, v, 1, 1, 2), -1.0f); /* column 1 of v = row 1 of t */
    attn_tensor_download(ctx, t, back, 12);
    CHECK(back[4] == -1.0f && back[7] == -1.0f && back[3] == 3.0f && back[8] == 8.0f, "fill of a strided view");
    CHECK(attn_tensor_download_grad(ctx, t, back, 12) == ATTN_OK && back[0] == 0.0f, "no grad reads as zeros");
    attn_context_reset(ctx, m);
    CHECK(attn_context_backend(ctx) && attn_context_backend(ctx)->user == &g &&
          attn_context_backend(ctx)->gemm == g.table.gemm && !strcmp(attn_context_backend(ctx)->name, "guarded-cpu"),
          "attn_context_backend is the context's copy of the table");
    attn_context_destroy(ctx);
    CHECK(g.live_blocks == 0, "backend memory not given back");
    CHECK(flip(&g) != (void *)&g || POISON_BIT == 0, "the guard does not poison");
}

TEST_GROUP(backend) = {
    TEST_ENTRY(backend_ops_match_host),
    TEST_ENTRY(backend_lm_trains_like_host),
    TEST_ENTRY(backend_transformer_grads_match_host),
    TEST_ENTRY(backend_refuses_host_only_ops),
    TEST_ENTRY(backend_memory),
    TEST_END
};
