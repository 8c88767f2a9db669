/* tests/test_attention.c - the fused attention kernel (attn_attention_forward /
   attn_attention_backward) against a plain double-precision attention written
   here: softmax(Q K^T scale + mask) V per (batch, head), and central finite
   differences of that double version for the gradients.

   Every case stores Q, K, V and O inside wider rows (row strides larger than
   heads * dim) and at batch offsets, as a fused QKV projection does, so the
   in-place head addressing is what is tested. Tolerances: the kernel computes
   in float with a vectorised exp (4e-7) and float GEMMs over at most a few
   hundred terms: 2e-5 relative to the size of the tensor's values on the
   forward, 1e-4 on the gradients (their sums are longer and cancel more). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

typedef struct att_case {
    const char *what;
    int B, H, Tq, Tk, dh, dv, causal;
    int lengths;   /* 1: key_lengths per batch */
    int padmask;   /* 1: a key_padding_mask */
    int bias;      /* 1: an additive mask shared by the heads */
    int extra;     /* extra floats of row padding */
} att_case;

typedef struct att_data {
    att_case c;
    attn_attention_desc d;
    float *q, *k, *v, *o, *lse, *w; /* w: the weights of L = sum(w o) */
    int key_len[4];
    unsigned char *pad;
    float *bias;
} att_data;

static size_t q_at(const att_data *a, int b, int t, int h, int i) {
    return b * a->d.q_batch_stride + (size_t)t * a->d.q_row_stride + (size_t)h * a->c.dh + i;
}
static size_t k_at(const att_data *a, int b, int t, int h, int i) {
    return b * a->d.k_batch_stride + (size_t)t * a->d.k_row_stride + (size_t)h * a->c.dh + i;
}
static size_t v_at(const att_data *a, int b, int t, int h, int i) {
    return b * a->d.v_batch_stride + (size_t)t * a->d.v_row_stride + (size_t)h * a->c.dv + i;
}
static size_t o_at(const att_data *a, int b, int t, int h, int i) {
    return b * a->d.o_batch_stride + (size_t)t * a->d.o_row_stride + (size_t)h * a->c.dv + i;
}

static void att_make(att_data *a, const att_case *c, uint64_t seed) {
    test_rng r;
    size_t nq, nk, nv, no;
    int b, j;
    memset(a, 0, sizeof *a);
    a->c = *c;
    test_rng_seed(&r, seed);
    a->d.batch = c->B; a->d.heads = c->H; a->d.q_len = c->Tq; a->d.kv_len = c->Tk;
    a->d.head_dim = c->dh; a->d.v_dim = c->dv; a->d.causal = c->causal;
    a->d.q_row_stride = c->H * c->dh + c->extra;
    a->d.k_row_stride = c->H * c->dh + 2 * c->extra;
    a->d.v_row_stride = c->H * c->dv + c->extra;
    a->d.o_row_stride = c->H * c->dv + 3 * c->extra;
    a->d.q_batch_stride = (size_t)c->Tq * a->d.q_row_stride + c->extra;
    a->d.k_batch_stride = (size_t)c->Tk * a->d.k_row_stride + c->extra;
    a->d.v_batch_stride = (size_t)c->Tk * a->d.v_row_stride + c->extra;
    a->d.o_batch_stride = (size_t)c->Tq * a->d.o_row_stride;
    nq = c->B * a->d.q_batch_stride; nk = c->B * a->d.k_batch_stride;
    nv = c->B * a->d.v_batch_stride; no = c->B * a->d.o_batch_stride;
    a->q = (float *)malloc(nq * sizeof(float)); a->k = (float *)malloc(nk * sizeof(float));
    a->v = (float *)malloc(nv * sizeof(float)); a->o = (float *)calloc(no, sizeof(float));
    a->w = (float *)malloc(no * sizeof(float));
    a->lse = (float *)malloc((size_t)c->B * c->H * c->Tq * sizeof(float));
    test_fill(&r, a->q, nq, -1.5f, 1.5f);
    test_fill(&r, a->k, nk, -1.5f, 1.5f);
    test_fill(&r, a->v, nv, -1.0f, 1.0f);
    test_fill(&r, a->w, no, -1.0f, 1.0f);
    if (c->lengths) {
        for (b = 0; b < c->B; b++) a->key_len[b] = 1 + (int)(test_rng_u32(&r) % (unsigned)c->Tk);
        a->d.key_lengths = a->key_len;
    }
    if (c->padmask) {
        a->pad = (unsigned char *)calloc((size_t)c->B * c->Tk, 1);
        for (j = 0; j < c->B * c->Tk; j++) a->pad[j] = test_rng_u32(&r) % 4 == 0;
        a->pad[0] = 0; /* keep key 0 of batch 0 visible so most rows see something */
        a->d.key_padding_mask = a->pad;
    }
    if (c->bias) {
        a->bias = (float *)malloc((size_t)c->Tq * c->Tk * sizeof(float));
        test_fill(&r, a->bias, (size_t)c->Tq * c->Tk, -2.0f, 2.0f);
        a->d.bias = a->bias; /* batch and head strides 0: broadcast */
    }
}

static void att_free(att_data *a) {
    free(a->q); free(a->k); free(a->v); free(a->o); free(a->w); free(a->lse); free(a->pad); free(a->bias);
}

/* The double-precision reference: output (B, Tq, H, dv) packed, from inputs
   where element at offset `bump` is moved by `delta` in array `which`
   (0 none, 1 q, 2 k, 3 v), for the finite differences. Returns sum(w o). */
static double att_reference(const att_data *a, double *out, int which, size_t bump, double delta) {
    const att_case *c = &a->c;
    int b, h, i, j, t, shift = c->Tk - c->Tq;
    double L = 0.0, scale = 1.0 / sqrt((double)c->dh);
    double *s = (double *)malloc((size_t)c->Tk * sizeof(double));
    for (b = 0; b < c->B; b++)
        for (h = 0; h < c->H; h++)
            for (i = 0; i < c->Tq; i++) {
                double mx = -INFINITY, sum = 0.0;
                for (j = 0; j < c->Tk; j++) {
                    int masked = (c->causal && j > i + shift) || (c->lengths && j >= a->key_len[b]) ||
                                 (c->padmask && a->pad[b * c->Tk + j]);
                    double dot = 0.0;
                    for (t = 0; t < c->dh; t++) {
                        size_t qi = q_at(a, b, i, h, t), ki = k_at(a, b, j, h, t);
                        double qv = a->q[qi] + (which == 1 && qi == bump ? delta : 0.0);
                        double kv = a->k[ki] + (which == 2 && ki == bump ? delta : 0.0);
                        dot += qv * kv;
                    }
                    s[j] = masked ? -INFINITY : dot * scale + (c->bias ? a->bias[i * c->Tk + j] : 0.0);
                    if (s[j] > mx) mx = s[j];
                }
                for (j = 0; j < c->Tk; j++) {
                    s[j] = mx == -INFINITY ? 0.0 : exp(s[j] - mx);
                    sum += s[j];
                }
                for (t = 0; t < c->dv; t++) {
                    double acc = 0.0;
                    size_t oi = o_at(a, b, i, h, t);
                    for (j = 0; j < c->Tk; j++) {
                        size_t vi = v_at(a, b, j, h, t);
                        acc += s[j] * (a->v[vi] + (which == 3 && vi == bump ? delta : 0.0));
                    }
                    acc = sum > 0.0 ? acc / sum : NAN;
                    if (out) out[((size_t)(b * c->Tq + i) * c->H + h) * c->dv + t] = acc;
                    if (sum > 0.0) L += a->w[oi] * acc;
                }
            }
    free(s);
    return L;
}

static const att_case att_cases[] = {
    { "small cross, odd sizes", 2, 3, 5, 7, 4, 6, 0, 0, 0, 0, 3 },
    { "causal over two tiles", 1, 2, 70, 70, 8, 8, 1, 0, 0, 0, 1 },
    { "causal decode shift (Tq < Tk)", 2, 1, 3, 130, 5, 3, 1, 0, 0, 0, 0 },
    { "key lengths", 3, 2, 9, 67, 4, 4, 0, 1, 0, 0, 2 },
    { "padding mask + bias", 2, 2, 11, 13, 6, 5, 0, 0, 1, 1, 1 },
    { "causal + lengths + bias", 2, 2, 66, 66, 3, 7, 1, 1, 0, 1, 0 },
};

TEST(attention_forward_matches_double_reference) {
    size_t ci;
    for (ci = 0; ci < sizeof att_cases / sizeof att_cases[0]; ci++) {
        const att_case *c = &att_cases[ci];
        att_data a;
        double *ref, worst = 0.0, scale = 0.0;
        int b, h, i, t, nan_ok = 1;
        att_make(&a, c, 100 + ci);
        ref = (double *)malloc((size_t)c->B * c->Tq * c->H * c->dv * sizeof(double));
        att_reference(&a, ref, 0, 0, 0.0);
        if (!CHECK(attn_attention_forward(NULL, &a.d, a.q, a.k, a.v, a.o, a.lse) == ATTN_OK, "%s: forward failed", c->what))
            goto next;
        for (b = 0; b < c->B; b++)
            for (h = 0; h < c->H; h++)
                for (i = 0; i < c->Tq; i++)
                    for (t = 0; t < c->dv; t++) {
                        double want = ref[((size_t)(b * c->Tq + i) * c->H + h) * c->dv + t];
                        if (want == want && fabs(want) > scale) scale = fabs(want);
                    }
        for (b = 0; b < c->B; b++)
            for (h = 0; h < c->H; h++)
                for (i = 0; i < c->Tq; i++)
                    for (t = 0; t < c->dv; t++) {
                        double want = ref[((size_t)(b * c->Tq + i) * c->H + h) * c->dv + t];
                        float got = a.o[o_at(&a, b, i, h, t)];
                        if (want != want) { nan_ok &= test_is_nan(got); continue; } /* a row that sees no key */
                        if (fabs(got - want) / (scale + 1e-30) > worst) worst = fabs(got - want) / (scale + 1e-30);
                    }
        CHECK(worst <= 2e-5, "%s: forward error %.3g of the output's size > 2e-5", c->what, worst);
        CHECK(nan_ok, "%s: a query that sees no key must give NaN, as PyTorch", c->what);
    next:
        free(ref);
        att_free(&a);
    }
}

/* d sum(w o) / d q, k, v by central differences of the double reference. */
TEST(attention_backward_matches_finite_differences) {
    size_t ci;
    for (ci = 0; ci < sizeof att_cases / sizeof att_cases[0]; ci++) {
        const att_case *c = &att_cases[ci];
        att_data a;
        size_t n[3], which, e, step;
        float *g[3];
        double h = 1e-4;
        if (test_quick() && c->Tq * c->Tk > 2000) continue;
        att_make(&a, c, 200 + ci);
        n[0] = c->B * a.d.q_batch_stride; n[1] = c->B * a.d.k_batch_stride; n[2] = c->B * a.d.v_batch_stride;
        for (which = 0; which < 3; which++) g[which] = (float *)calloc(n[which], sizeof(float));
        if (!CHECK(attn_attention_forward(NULL, &a.d, a.q, a.k, a.v, a.o, a.lse) == ATTN_OK &&
                       attn_attention_backward(NULL, &a.d, a.q, a.k, a.v, a.o, a.lse, a.w, g[0], g[1], g[2]) == ATTN_OK,
                   "%s: kernel failed", c->what))
            goto next;
        for (which = 0; which < 3; which++) {
            double worst = 0.0, gscale = 1e-3, fd;
            size_t at = 0;
            /* sample the entries (every one for small cases): cost is a full reference each */
            step = n[which] > 400 ? n[which] / 400 + 1 : 1;
            for (e = 0; e < n[which]; e += step) gscale = fabs(g[which][e]) > gscale ? fabs(g[which][e]) : gscale;
            for (e = 0; e < n[which]; e += step) {
                fd = (att_reference(&a, NULL, (int)which + 1, e, h) - att_reference(&a, NULL, (int)which + 1, e, -h)) / (2 * h);
                if (fabs(fd - g[which][e]) / gscale > worst) worst = fabs(fd - g[which][e]) / gscale, at = e;
            }
            CHECK(worst <= 1e-4, "%s: d/d%c error %.3g (of the grad's size) at %d > 1e-4", c->what, "qkv"[which],
                  worst, (int)at);
        }
    next:
        for (which = 0; which < 3; which++) free(g[which]);
        att_free(&a);
    }
}

/* Dropout: the forward with a seed is a deterministic function, so its
   gradient is checked by finite differences of the float forward itself (a
   loose 2e-2: float differences with h = 1e-2), and about p of the weights go. */
TEST(attention_dropout_is_consistent) {
    att_case c = { "dropout", 1, 2, 20, 24, 4, 4, 1, 0, 0, 0, 0 };
    att_data a;
    float *gq, *o2, base;
    size_t nq, e;
    int i, ok = 1;
    double worst = 0.0, gscale = 1e-3;
    att_make(&a, &c, 7);
    a.d.dropout = 0.3f;
    a.d.dropout_seed = 12345;
    nq = a.d.q_batch_stride;
    gq = (float *)calloc(nq, sizeof(float));
    o2 = (float *)calloc(a.d.o_batch_stride, sizeof(float));
    attn_attention_forward(NULL, &a.d, a.q, a.k, a.v, a.o, a.lse);
    attn_attention_forward(NULL, &a.d, a.q, a.k, a.v, o2, NULL);
    CHECK(memcmp(a.o, o2, a.d.o_batch_stride * sizeof(float)) == 0, "the same seed must give the same output");
    attn_attention_backward(NULL, &a.d, a.q, a.k, a.v, a.o, a.lse, a.w, gq, NULL, NULL);
    for (e = 0; e < nq; e++) gscale = fabs(gq[e]) > gscale ? fabs(gq[e]) : gscale;
    for (e = 0; e < nq; e += 3) {
        double lp = 0.0, lm = 0.0;
        base = a.q[e];
        a.q[e] = base + 1e-2f;
        attn_attention_forward(NULL, &a.d, a.q, a.k, a.v, o2, NULL);
        for (i = 0; i < (int)a.d.o_batch_stride; i++) lp += (double)a.w[i] * o2[i];
        a.q[e] = base - 1e-2f;
        attn_attention_forward(NULL, &a.d, a.q, a.k, a.v, o2, NULL);
        for (i = 0; i < (int)a.d.o_batch_stride; i++) lm += (double)a.w[i] * o2[i];
        a.q[e] = base;
        if (fabs((lp - lm) / 2e-2 - gq[e]) / gscale > worst) worst = fabs((lp - lm) / 2e-2 - gq[e]) / gscale;
    }
    CHECK(worst <= 2e-2, "dropout: d/dq error %.3g of the grad's size > 2e-2", worst);
    a.d.dropout_seed = 999;
    attn_attention_forward(NULL, &a.d, a.q, a.k, a.v, o2, NULL);
    for (i = 0; i < (int)a.d.o_batch_stride; i++) ok &= o2[i] == a.o[i];
    CHECK(!ok, "another seed must give another output");
    free(gq);
    free(o2);
    att_free(&a);
}

TEST(attention_bad_descriptors) {
    attn_attention_desc d;
    float x[64] = { 0 }, o[64];
    memset(&d, 0, sizeof d);
    d.batch = 1; d.heads = 1; d.q_len = 2; d.kv_len = 2; d.head_dim = 4;
    CHECK(attn_attention_forward(NULL, &d, x, x, x, o, NULL) == ATTN_OK, "a valid descriptor failed");
    d.head_dim = 0;
    CHECK(attn_attention_forward(NULL, &d, x, x, x, o, NULL) == ATTN_ERR_INVALID_ARGUMENT, "head_dim 0");
    d.head_dim = ATTN_ATTENTION_MAX_DIM + 1;
    CHECK(attn_attention_forward(NULL, &d, x, x, x, o, NULL) == ATTN_ERR_INVALID_ARGUMENT, "head_dim too big");
    d.head_dim = 4; d.q_row_stride = 3;
    CHECK(attn_attention_forward(NULL, &d, x, x, x, o, NULL) == ATTN_ERR_INVALID_ARGUMENT, "row stride < width");
    d.q_row_stride = 0; d.dropout = 1.0f;
    CHECK(attn_attention_forward(NULL, &d, x, x, x, o, NULL) == ATTN_ERR_INVALID_ARGUMENT, "dropout 1");
    d.dropout = 0.0f;
    CHECK(attn_attention_forward(NULL, &d, NULL, x, x, o, NULL) == ATTN_ERR_INVALID_ARGUMENT, "NULL q");
    CHECK(attn_attention_backward(NULL, &d, x, x, x, o, NULL, x, x, x, x) == ATTN_ERR_INVALID_ARGUMENT, "NULL lse");
    CHECK(attn_attention_forward(NULL, NULL, x, x, x, o, NULL) == ATTN_ERR_INVALID_ARGUMENT, "NULL desc");
}

/* The op: q, k, v as (B, T, H*d) parameters, masks through attn_attention_opts,
   output and grads (attn_backward_ex seeded with w) against the double
   reference and its finite differences; the weights path against the
   reference's softmax; grad off leaves only the result. */
TEST(attention_op_matches_reference) {
    static const att_case cases[] = {
        { "op: causal + lengths + bias", 2, 2, 9, 9, 4, 3, 1, 1, 0, 1, 0 },
        { "op: cross + padding mask", 2, 3, 5, 8, 2, 4, 0, 0, 1, 0, 0 },
    };
    size_t ci;
    for (ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const att_case *c = &cases[ci];
        att_data a;
        attn_context *ctx = attn_context_create(NULL);
        attn_attention_opts opts;
        attn_tensor *tq, *tk, *tv, *out, *w, *mask = NULL;
        int sq[3], sk[3], sv[3], ms[2], b, h, i, j;
        double *ref, worst = 0.0, scale = 1e-30;
        size_t e, n;
        att_make(&a, c, 300 + ci);
        sq[0] = c->B; sq[1] = c->Tq; sq[2] = c->H * c->dh;
        sk[0] = c->B; sk[1] = c->Tk; sk[2] = c->H * c->dh;
        sv[0] = c->B; sv[1] = c->Tk; sv[2] = c->H * c->dv;
        tq = attn_param_new(ctx, "q", 3, sq); tk = attn_param_new(ctx, "k", 3, sk); tv = attn_param_new(ctx, "v", 3, sv);
        if (!CHECK(tq && tk && tv, "params: %s", attn_error_message(ctx))) goto next;
        memcpy(tq->data, a.q, attn_tensor_numel(tq) * sizeof(float));
        memcpy(tk->data, a.k, attn_tensor_numel(tk) * sizeof(float));
        memcpy(tv->data, a.v, attn_tensor_numel(tv) * sizeof(float));
        memset(&opts, 0, sizeof opts);
        opts.causal = c->causal;
        opts.key_lengths = c->lengths ? a.key_len : NULL;
        opts.key_padding_mask = a.pad;
        if (c->bias) {
            ms[0] = c->Tq; ms[1] = c->Tk;
            mask = attn_tensor_wrap(ctx, 2, ms, a.bias);
            opts.mask = mask;
        }
        out = attn_attention(ctx, tq, tk, tv, c->H, &opts);
        if (!CHECK(out != NULL, "%s: %s", c->what, attn_error_message(ctx))) goto next;
        ref = (double *)malloc((size_t)c->B * c->Tq * c->H * c->dv * sizeof(double));
        att_reference(&a, ref, 0, 0, 0.0);
        for (e = 0, n = attn_tensor_numel(out); e < n; e++) scale = fabs(ref[e]) > scale ? fabs(ref[e]) : scale;
        for (e = 0; e < n; e++) worst = fabs(out->data[e] - ref[e]) / scale > worst ? fabs(out->data[e] - ref[e]) / scale : worst;
        CHECK(worst <= 2e-5, "%s: output error %.3g > 2e-5", c->what, worst);
        free(ref);
        CHECK(attn_backward_ex(ctx, out, a.w, 0) == ATTN_OK, "%s: backward: %s", c->what, attn_error_message(ctx));
        {   /* grads vs finite differences of the double reference (packed layout: extra = 0) */
            attn_tensor *t[3];
            int which;
            t[0] = tq; t[1] = tk; t[2] = tv;
            for (which = 0; which < 3; which++) {
                double gscale = 1e-3, wgrad = 0.0, hh = 1e-4;
                size_t cnt = attn_tensor_numel(t[which]);
                for (e = 0; e < cnt; e++) gscale = fabs(t[which]->grad[e]) > gscale ? fabs(t[which]->grad[e]) : gscale;
                for (e = 0; e < cnt; e++) {
                    double fd = (att_reference(&a, NULL, which + 1, e, hh) - att_reference(&a, NULL, which + 1, e, -hh)) / (2 * hh);
                    if (fabs(fd - t[which]->grad[e]) / gscale > wgrad) wgrad = fabs(fd - t[which]->grad[e]) / gscale;
                }
                CHECK(wgrad <= 1e-4, "%s: d/d%c through the op: error %.3g > 1e-4", c->what, "qkv"[which], wgrad);
            }
        }
        /* weights: rows of softmax(q k^T / sqrt(d) + mask) from the reference's definition */
        w = attn_attention_weights(ctx, tq, tk, c->H, &opts);
        if (!CHECK(w && w->ndim == 4 && w->shape[1] == c->H && w->shape[3] == c->Tk, "%s: weights: %s", c->what,
                   attn_error_message(ctx)))
            goto next;
        worst = 0.0;
        for (b = 0; b < c->B; b++)
            for (h = 0; h < c->H; h++)
                for (i = 0; i < c->Tq; i++) {
                    double sc[64], mx = -INFINITY, sum = 0.0;
                    for (j = 0; j < c->Tk; j++) {
                        int t2, masked = (c->causal && j > i + c->Tk - c->Tq) || (c->lengths && j >= a.key_len[b]) ||
                                         (c->padmask && a.pad[b * c->Tk + j]);
                        double dot = 0.0;
                        for (t2 = 0; t2 < c->dh; t2++) dot += (double)a.q[q_at(&a, b, i, h, t2)] * a.k[k_at(&a, b, j, h, t2)];
                        sc[j] = masked ? -INFINITY : dot / sqrt((double)c->dh) + (c->bias ? a.bias[i * c->Tk + j] : 0.0);
                        mx = sc[j] > mx ? sc[j] : mx;
                    }
                    if (mx == -INFINITY) continue;
                    for (j = 0; j < c->Tk; j++) sum += sc[j] = exp(sc[j] - mx);
                    for (j = 0; j < c->Tk; j++) {
                        double got = w->data[(((size_t)b * c->H + h) * c->Tq + i) * c->Tk + j];
                        worst = fabs(got - sc[j] / sum) > worst ? fabs(got - sc[j] / sum) : worst;
                    }
                }
        CHECK(worst <= 1e-6, "%s: weights error %.3g > 1e-6", c->what, worst);
        {   /* grad off: only the result stays in the arena */
            size_t before, took;
            int was = attn_grad_enable(ctx, 0);
            before = attn_arena_used(attn_context_arena(ctx));
            out = attn_attention(ctx, tq, tk, tv, c->H, &opts);
            took = attn_arena_used(attn_context_arena(ctx)) - before;
            CHECK(out && !out->node && took <= attn_tensor_bytes(3, out->shape), "%s: grad off took %d bytes",
                  c->what, (int)took);
            attn_grad_enable(ctx, was);
        }
    next:
        att_free(&a);
        attn_context_destroy(ctx);
    }
}

TEST(attention_op_bad_shapes) {
    attn_context *ctx = attn_context_create(NULL);
    int s1[3] = { 2, 5, 8 }, s2[3] = { 2, 7, 8 }, s3[3] = { 3, 7, 8 }, s4[3] = { 2, 6, 8 }, ms[2] = { 4, 7 };
    attn_tensor *q = attn_tensor_new(ctx, 3, s1), *k = attn_tensor_new(ctx, 3, s2), *kb = attn_tensor_new(ctx, 3, s3);
    attn_tensor *v6 = attn_tensor_new(ctx, 3, s4), *m = attn_tensor_new(ctx, 2, ms);
    attn_attention_opts o;
    memset(&o, 0, sizeof o);
    CHECK(attn_attention(ctx, q, k, k, 2, NULL) != NULL, "valid call failed: %s", attn_error_message(ctx));
    attn_error_clear(ctx);
    CHECK(!attn_attention(ctx, q, k, k, 3, NULL) && attn_error_status(ctx) == ATTN_ERR_SHAPE, "8 dims in 3 heads");
    attn_error_clear(ctx);
    CHECK(!attn_attention(ctx, q, kb, kb, 2, NULL) && attn_error_message(ctx)[0], "batch 2 vs 3");
    attn_error_clear(ctx);
    CHECK(!attn_attention(ctx, q, k, v6, 2, NULL) && attn_error_message(ctx)[0], "v length 6 vs k 7");
    attn_error_clear(ctx);
    o.mask = m;
    CHECK(!attn_attention(ctx, q, k, k, 2, &o) && attn_error_status(ctx) == ATTN_ERR_SHAPE, "mask (4, 7) for Tq 5");
    attn_error_clear(ctx);
    o.mask = attn_tensor_new(ctx, 0, NULL); /* a scalar mask: refused before its shape is read (UBSan) */
    CHECK(!attn_attention(ctx, q, k, k, 2, &o) && attn_error_status(ctx) == ATTN_ERR_SHAPE, "0-D mask");
    attn_error_clear(ctx);
    o.mask = attn_tensor_1d(ctx, 7);
    CHECK(!attn_attention(ctx, q, k, k, 2, &o) && attn_error_status(ctx) == ATTN_ERR_SHAPE, "1-D mask");
    attn_error_clear(ctx);
    o.mask = NULL;
    o.dropout = 1.0f;
    o.training = 1;
    CHECK(!attn_attention(ctx, q, k, k, 2, &o) && attn_error_message(ctx)[0], "dropout 1");
    attn_error_clear(ctx);
    CHECK(!attn_attention(ctx, q, NULL, k, 2, NULL) && attn_error_message(ctx)[0], "NULL k");
    attn_context_destroy(ctx);
}

/* The decoder-only LM: PyTorch-style names, the head tied to the token
   embedding (or its own parameter), logits (B, T, V), and training on a fixed
   next-token task (each token predicts token + 7 mod V) cuts the loss by 4x
   within 80 AdamW steps - a broken gradient anywhere in the stack stalls it. */
TEST(lm_names_tying_and_learning) {
    int untied;
    for (untied = 0; untied < 2; untied++) {
        attn_context *ctx = attn_context_create(NULL);
        attn_encoder_layer layers[2];
        attn_lm lm;
        attn_lm_desc d;
        attn_optim_desc od;
        attn_optim *opt;
        int32_t tok[32], tgt[32];
        int i, step, s2[2] = { 32, 16 };
        float first = 0.0f, last = 0.0f;
        memset(&d, 0, sizeof d);
        d.vocab = 16; d.max_len = 16; d.untied = untied;
        d.layer.d_model = 16; d.layer.heads = 2; d.layer.dim_feedforward = 32; d.layer.num_layers = 2;
        d.layer.activation = ATTN_ACT_GELU;
        if (!CHECK(attn_lm_init(ctx, &lm, layers, "", &d) == ATTN_OK, "init: %s", attn_error_message(ctx))) goto next;
        CHECK(attn_param_find(ctx, "tok_emb.weight") && attn_param_find(ctx, "pos_emb.weight") &&
                  attn_param_find(ctx, "layers.1.self_attn.in_proj_weight") && attn_param_find(ctx, "layers.0.norm2.bias") &&
                  attn_param_find(ctx, "norm.weight"),
              "missing parameter names");
        CHECK(untied ? attn_param_find(ctx, "head.weight") != NULL && lm.head != lm.tok_emb
                     : !attn_param_find(ctx, "head.weight") && lm.head == lm.tok_emb,
              "untied=%d: head parameter wrong", untied);
        for (i = 0; i < 32; i++) { tok[i] = (i * 5) % 16; tgt[i] = (tok[i] + 7) % 16; }
        memset(&od, 0, sizeof od);
        od.kind = ATTN_OPTIM_ADAMW; od.lr = 3e-3;
        if (!CHECK((opt = attn_optim_create(ctx, &od)) != NULL, "optim")) goto next;
        for (step = 0; step < 80; step++) {
            attn_context_pos m = attn_context_mark(ctx);
            attn_tensor *logits = attn_lm_forward(ctx, &lm, tok, 2, 16, 1), *loss;
            if (!CHECK(logits && logits->ndim == 3 && logits->shape[2] == 16, "forward: %s", attn_error_message(ctx)))
                goto next;
            loss = attn_cross_entropy(ctx, attn_reshape(ctx, logits, 2, s2), tgt, -100, 0.0f);
            attn_params_zero_grad(ctx);
            if (!CHECK(loss && attn_backward(ctx, loss) == ATTN_OK, "backward: %s", attn_error_message(ctx))) goto next;
            attn_optim_step(opt);
            if (step == 0) first = loss->data[0];
            last = loss->data[0];
            attn_context_reset(ctx, m);
        }
        CHECK(last < 0.25f * first, "untied=%d: loss %.4f -> %.4f did not fall 4x", untied, first, last);
        CHECK(!attn_lm_forward(ctx, &lm, tok, 1, 17, 0) && attn_error_message(ctx)[0], "T > max_len must fail");
    next:
        attn_context_destroy(ctx);
    }
}

TEST_GROUP(attention) = {
    TEST_ENTRY(lm_names_tying_and_learning),
    TEST_ENTRY(attention_op_matches_reference),
    TEST_ENTRY(attention_op_bad_shapes),
    TEST_ENTRY(attention_forward_matches_double_reference),
    TEST_ENTRY(attention_backward_matches_finite_differences),
    TEST_ENTRY(attention_dropout_is_consistent),
    TEST_ENTRY(attention_bad_descriptors),
    TEST_END
};
