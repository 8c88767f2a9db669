/* tests/test_autodiff.c - gradient checks of every differentiable op, and how
   the tape behaves (grad off, mark/reset, retain, seeds, accumulation, detach,
   when views record, parameters, bad shapes, strided inputs, thread count).

   The gradient check. For each case the inputs are parameters filled from our
   own generator; out = op(inputs) comes from attn, and the scalar L = sum_i
   w_i out_i (w fixed and random) is backpropagated twice, in two fresh
   contexts: once with attn_backward_ex(out, seed = w) and once with
   attn_backward(attn_sum(attn_mul(out, W))). The reference is a plain C
   forward of the op written here in DOUBLE precision (never the library's
   code); the numerical gradient is the central difference of that forward's
   L with h = 1e-6 (1 + |x|), so its truncation and rounding errors are near
   1e-10, far below the float32 errors being measured. The library's forward
   output is checked against the double forward too, so a wrong forward with a
   consistent backward is caught.

   Error measure (forward and gradients alike): for every element
       |got - want| / (|want| + S),   S = max(rms(want over the tensor), 1e-3)
   and the worst element must be within the case's tolerance. S stops an
   element whose true value is near zero by cancellation from demanding
   relative accuracy that float32 cannot give; the floor 1e-3 covers tensors
   whose true gradient is all zero (softmax of one column, LayerNorm of one
   element). The tolerances per op, and why, are written next to the cases. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

/* ======================================================================== */
/* Helpers                                                                  */
/* ======================================================================== */

static attn_context *new_ctx(uint64_t seed) {
    attn_context_desc d;
    memset(&d, 0, sizeof d);
    d.seed = seed;
    d.block_size = 64 * 1024;
    return attn_context_create(&d);
}

static size_t shape_numel(int ndim, const int *shape) {
    size_t n = 1;
    int d;
    for (d = 0; d < ndim; d++) n *= (size_t)shape[d];
    return n;
}

/* t's elements in logical row-major order (through its strides) */
static void read_tensor(const attn_tensor *t, double *dst) {
    int idx[ATTN_MAX_DIMS] = { 0, 0, 0, 0 }, d;
    size_t i, n = attn_tensor_numel(t);
    for (i = 0; i < n; i++) {
        ptrdiff_t off = 0;
        for (d = 0; d < t->ndim; d++) off += (ptrdiff_t)idx[d] * t->stride[d];
        dst[i] = t->data[off];
        for (d = t->ndim - 1; d >= 0; d--) {
            if (++idx[d] < t->shape[d]) break;
            idx[d] = 0;
        }
    }
}

static int same_shape(const attn_tensor *t, int ndim, const int *shape) {
    int d;
    if (t->ndim != ndim) return 0;
    for (d = 0; d < ndim; d++)
        if (t->shape[d] != shape[d]) return 0;
    return 1;
}

/* worst |got - want| / (|want| + S), S = max(rms(want), 1e-3); *at = its index */
static double worst_err(size_t n, const double *got, const double *want, size_t *at) {
    double s = 0, worst = 0;
    size_t i;
    for (i = 0; i < n; i++) s += want[i] * want[i];
    s = n ? sqrt(s / (double)n) : 0;
    if (s < 1e-3) s = 1e-3;
    *at = 0;
    for (i = 0; i < n; i++) {
        double e = fabs(got[i] - want[i]) / (fabs(want[i]) + s);
        if (!(e <= worst)) { /* NaN counts as the worst */
            worst = e;
            *at = i;
            if (e != e) break;
        }
    }
    return worst;
}

/* a failure with a status among the allowed ones and a message, then cleared */
static int failed_with(attn_context *ctx, attn_status a, attn_status b) {
    attn_status s = attn_error_status(ctx);
    int ok = (s == a || s == b) && attn_error_message(ctx)[0] != 0;
    attn_error_clear(ctx);
    return ok;
}

static attn_tensor *param(attn_context *ctx, const char *name, int ndim, const int *shape, test_rng *r, float lo,
                          float hi) {
    attn_tensor *t = attn_param_new(ctx, name, ndim, shape);
    if (t) test_fill(r, t->data, attn_tensor_numel(t), lo, hi);
    return t;
}

static attn_tensor *constant(attn_context *ctx, int ndim, const int *shape, test_rng *r, float lo, float hi) {
    attn_tensor *t = attn_tensor_new(ctx, ndim, shape);
    if (t) test_fill(r, t->data, attn_tensor_numel(t), lo, hi);
    return t;
}

/* ======================================================================== */
/* Double-precision reference forwards (our own code)                       */
/* ======================================================================== */

/* out shape of a broadcast; 0 if the shapes do not broadcast */
static int ref_broadcast_shape(int na, const int *sa, int nb, const int *sb, int *nout, int *sout) {
    int n = na > nb ? na : nb, d;
    for (d = 0; d < n; d++) {
        int da = d < n - na ? 1 : sa[d - (n - na)];
        int db = d < n - nb ? 1 : sb[d - (n - nb)];
        if (da != db && da != 1 && db != 1) return 0;
        sout[d] = da > db ? da : db;
        if (da == 0 || db == 0) sout[d] = 0;
    }
    *nout = n;
    return 1;
}

/* row-major offset in (n, s) of the out index idx (nout dims), broadcasting */
static size_t ref_bcast_offset(int n, const int *s, int nout, const int *idx) {
    size_t off = 0;
    int d;
    for (d = 0; d < n; d++) {
        int i = idx[d + (nout - n)];
        off = off * (size_t)s[d] + (size_t)(s[d] == 1 ? 0 : i);
    }
    return off;
}

static void unravel(size_t flat, int ndim, const int *shape, int *idx) {
    int d;
    for (d = ndim - 1; d >= 0; d--) {
        idx[d] = shape[d] ? (int)(flat % (size_t)shape[d]) : 0;
        flat = shape[d] ? flat / (size_t)shape[d] : 0;
    }
}

static double ref_gelu1(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }

static void ref_linear(size_t rows, int in, int out, const double *x, const double *w, const double *b, double *y) {
    size_t r;
    int o, k;
    for (r = 0; r < rows; r++)
        for (o = 0; o < out; o++) {
            double acc = b ? b[o] : 0.0;
            for (k = 0; k < in; k++) acc += x[r * in + k] * w[(size_t)o * in + k];
            y[r * out + o] = acc;
        }
}

static void ref_layernorm(size_t rows, int D, const double *x, const double *w, const double *b, double eps,
                          double *y) {
    size_t r;
    int i;
    for (r = 0; r < rows; r++) {
        const double *xr = x + r * D;
        double mean = 0, var = 0, rstd;
        for (i = 0; i < D; i++) mean += xr[i];
        mean /= D;
        for (i = 0; i < D; i++) var += (xr[i] - mean) * (xr[i] - mean);
        var /= D; /* biased, as PyTorch */
        rstd = 1.0 / sqrt(var + eps);
        for (i = 0; i < D; i++) y[r * D + i] = (xr[i] - mean) * rstd * (w ? w[i] : 1.0) + (b ? b[i] : 0.0);
    }
}

static void ref_rmsnorm(size_t rows, int D, const double *x, const double *w, double eps, double *y) {
    size_t r;
    int i;
    for (r = 0; r < rows; r++) {
        const double *xr = x + r * D;
        double ms = 0, rr;
        for (i = 0; i < D; i++) ms += xr[i] * xr[i];
        rr = 1.0 / sqrt(ms / D + eps);
        for (i = 0; i < D; i++) y[r * D + i] = xr[i] * rr * (w ? w[i] : 1.0);
    }
}

static void ref_softmax(size_t rows, int C, const double *x, double *y, int log_out) {
    size_t r;
    int i;
    for (r = 0; r < rows; r++) {
        const double *xr = x + r * C;
        double m = xr[0], s = 0;
        for (i = 1; i < C; i++) m = xr[i] > m ? xr[i] : m;
        for (i = 0; i < C; i++) s += exp(xr[i] - m);
        for (i = 0; i < C; i++) y[r * C + i] = log_out ? xr[i] - m - log(s) : exp(xr[i] - m) / s;
    }
}

/* torch.nn.functional.cross_entropy, reduction mean, ignore_index, label_smoothing */
static double ref_cross_entropy(int N, int C, const double *x, const int32_t *t, int ignore, double eps) {
    double total = 0;
    int n, c, count = 0;
    for (n = 0; n < N; n++) {
        const double *xr = x + (size_t)n * C;
        double m = xr[0], s = 0, lse, smooth = 0;
        if (t[n] == ignore) continue;
        count++;
        for (c = 1; c < C; c++) m = xr[c] > m ? xr[c] : m;
        for (c = 0; c < C; c++) s += exp(xr[c] - m);
        lse = m + log(s);
        for (c = 0; c < C; c++) smooth += lse - xr[c];
        total += (1.0 - eps) * (lse - xr[t[n]]) + eps * smooth / C;
    }
    return total / count; /* 0/0 = NaN when every row is ignored, as PyTorch */
}

/* ======================================================================== */
/* The gradient-check cases                                                 */
/* ======================================================================== */

enum {
    OP_ADD, OP_SUB, OP_MUL, OP_SQUARE, OP_SCALE, OP_SUM, OP_MEAN, OP_MATMUL, OP_LINEAR,
    OP_RESHAPE, OP_TRANSPOSE, OP_SLICE, OP_CONTIG_T, OP_CONCAT, OP_EMBEDDING,
    OP_SOFTMAX, OP_LOG_SOFTMAX, OP_LAYERNORM, OP_RMSNORM, OP_GELU, OP_RELU, OP_TANH,
    OP_CE, OP_MSE, OP_BLOCK
};

#define GC_MAX_IN 5
#define GC_MAX_EL 4096
#define LN_W 1 /* layernorm / rmsnorm: a weight input follows x */
#define LN_B 2 /* layernorm: a bias input follows */

typedef struct gc_case {
    const char *name;
    int op, n_in;
    int ndim[GC_MAX_IN];
    int shape[GC_MAX_IN][4];
    float lo, hi;       /* inputs are drawn from [lo, hi) */
    float min_abs;      /* ... and redrawn while |x| < min_abs (relu's kink) */
    double fwd_tol, grad_tol;
    int i0, i1, i2;     /* dims / slice bounds / concat dim / ignore_index / flags */
    int new_ndim, new_shape[4];
    float f0;           /* scale, eps, label smoothing */
    const int32_t *idx; /* embedding indices, cross-entropy targets */
    int idx_ndim, idx_shape[4];
} gc_case;

/* Tolerances (the error measure is at the top of the file). Measured worst
   errors on x86-64 AVX2 are 20-70x below these; a real bug is O(1).
   T_EXACT 1e-6 forward, 2e-6 grad: ops whose output is one float rounding of
     the exact result (add, mul, views, copies, relu) and whose grads are w
     times a float, or sums of at most a few dozen such terms (broadcast
     reductions, repeated embedding rows): a few ulps (6e-8 each).
   T_SUM 1e-4 forward, 2e-6 grad: float sums of up to 24 terms of either sign,
     an error of ~n eps max|x| against a result that cancellation can shrink;
     the grads are w[0] or w[0] / n.
   T_DOT 1e-5 forward and grad: matmul/linear, float dot products of up to 17
     terms (summation order and FMA differ by platform and kernel); the grads
     are dot products again.
   T_NONLIN 1e-5 forward, 2e-5 grad: exp/log/erf/tanh/rsqrt inside (the SIMD
     exp and GELU are good to 5e-7), then float row reductions in the backward
     (softmax's dot(g, y), LayerNorm's two row means), and for the composed
     block five ops of such errors in a row. */
#define T_EXACT 1e-6, 2e-6
#define T_SUM 1e-4, 2e-6
#define T_DOT 1e-5, 1e-5
#define T_NONLIN 1e-5, 2e-5

static const int32_t emb_idx_a[6] = { 2, 0, 2, 4, 2, 0 };     /* row 2 three times, row 0 twice, 1 and 3 never */
static const int32_t emb_idx_b[5] = { 0, 0, 0, 0, 0 };        /* one row, five times */
static const int32_t ce_t_a[7] = { 3, -100, 0, 16, -100, 5, 3 };
static const int32_t ce_t_b[5] = { 0, 1, 2, 0, 1 };           /* ignore_index 0: a real class index */
static const int32_t ce_t_c[3] = { 1, 0, 2 };
static const int32_t block_t[4] = { 2, 0, -1, 1 };            /* ignore_index -1 */

static const gc_case gc_cases[] = {
    /* ---- elementwise, same shape and broadcasting ---- */
    { "add (3,17)+(3,17)", OP_ADD, 2, { 2, 2 }, { { 3, 17 }, { 3, 17 } }, -1, 1, 0, T_EXACT, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "add (2,3,4)+(4)", OP_ADD, 2, { 3, 1 }, { { 2, 3, 4 }, { 4 } }, -1, 1, 0, T_EXACT, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "add (4)+(2,3,4)", OP_ADD, 2, { 1, 3 }, { { 4 }, { 2, 3, 4 } }, -1, 1, 0, T_EXACT, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "add (2,1,4)+(3,1)", OP_ADD, 2, { 3, 2 }, { { 2, 1, 4 }, { 3, 1 } }, -1, 1, 0, T_EXACT, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "add (2,3)+scalar", OP_ADD, 2, { 2, 0 }, { { 2, 3 }, { 0 } }, -1, 1, 0, T_EXACT, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "sub (1)-(1)", OP_SUB, 2, { 1, 1 }, { { 1 }, { 1 } }, -1, 1, 0, T_EXACT, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "sub (5,17)-(5,17)", OP_SUB, 2, { 2, 2 }, { { 5, 17 }, { 5, 17 } }, -1, 1, 0, T_EXACT, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "sub (1,4)-(3,1)", OP_SUB, 2, { 2, 2 }, { { 1, 4 }, { 3, 1 } }, -1, 1, 0, T_EXACT, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "sub (2,3,4)-(2,1,4)", OP_SUB, 2, { 3, 3 }, { { 2, 3, 4 }, { 2, 1, 4 } }, -1, 1, 0, T_EXACT, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "mul (3,17)*(3,17)", OP_MUL, 2, { 2, 2 }, { { 3, 17 }, { 3, 17 } }, -1, 1, 0, T_EXACT, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "mul (2,3,4)*(3,1)", OP_MUL, 2, { 3, 2 }, { { 2, 3, 4 }, { 3, 1 } }, -1, 1, 0, T_EXACT, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "mul (3,1)*(1,5) outer", OP_MUL, 2, { 2, 2 }, { { 3, 1 }, { 1, 5 } }, -1, 1, 0, T_EXACT, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "mul (2,3,4,5)*(3,1,5)", OP_MUL, 2, { 4, 3 }, { { 2, 3, 4, 5 }, { 3, 1, 5 } }, -1, 1, 0, T_EXACT, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "mul scalar*(1,3)", OP_MUL, 2, { 0, 2 }, { { 0 }, { 1, 3 } }, -1, 1, 0, T_EXACT, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "mul x*x (one tensor, two uses)", OP_SQUARE, 1, { 2 }, { { 3, 5 } }, -1, 1, 0, T_EXACT, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "scale (2,3,4) by -1.7", OP_SCALE, 1, { 3 }, { { 2, 3, 4 } }, -1, 1, 0, T_EXACT, 0, 0, 0, 0, { 0 }, -1.7f, NULL, 0, { 0 } },
    { "scale (1) by 0.25", OP_SCALE, 1, { 1 }, { { 1 } }, -1, 1, 0, T_EXACT, 0, 0, 0, 0, { 0 }, 0.25f, NULL, 0, { 0 } },
    /* ---- reductions ---- */
    { "sum (2,3,4)", OP_SUM, 1, { 3 }, { { 2, 3, 4 } }, -1, 1, 0, T_SUM, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "sum (1)", OP_SUM, 1, { 1 }, { { 1 } }, -1, 1, 0, T_SUM, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "sum scalar", OP_SUM, 1, { 0 }, { { 0 } }, -1, 1, 0, T_SUM, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "mean (17)", OP_MEAN, 1, { 1 }, { { 17 } }, -1, 1, 0, T_SUM, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "mean (3,1,5)", OP_MEAN, 1, { 3 }, { { 3, 1, 5 } }, -1, 1, 0, T_SUM, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    /* ---- matmul and linear ---- */
    { "matmul (3,17)@(17,5)", OP_MATMUL, 2, { 2, 2 }, { { 3, 17 }, { 17, 5 } }, -1, 1, 0, T_DOT, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "matmul (1,1)@(1,1)", OP_MATMUL, 2, { 2, 2 }, { { 1, 1 }, { 1, 1 } }, -1, 1, 0, T_DOT, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "matmul (17,1)@(1,3)", OP_MATMUL, 2, { 2, 2 }, { { 17, 1 }, { 1, 3 } }, -1, 1, 0, T_DOT, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "matmul (2,3,4)@(2,4,5) batched", OP_MATMUL, 2, { 3, 3 }, { { 2, 3, 4 }, { 2, 4, 5 } }, -1, 1, 0, T_DOT, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "matmul (3,5,4)@(4,7) shared", OP_MATMUL, 2, { 3, 2 }, { { 3, 5, 4 }, { 4, 7 } }, -1, 1, 0, T_DOT, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "matmul (2,2,3,4)@(2,2,4,3) 4-D", OP_MATMUL, 2, { 4, 4 }, { { 2, 2, 3, 4 }, { 2, 2, 4, 3 } }, -1, 1, 0, T_DOT, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "linear (3,4) w(5,4) b(5)", OP_LINEAR, 3, { 2, 2, 1 }, { { 3, 4 }, { 5, 4 }, { 5 } }, -1, 1, 0, T_DOT, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "linear (3,4) w(5,4) no bias", OP_LINEAR, 2, { 2, 2 }, { { 3, 4 }, { 5, 4 } }, -1, 1, 0, T_DOT, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "linear (2,3,17) w(1,17) b(1)", OP_LINEAR, 3, { 3, 2, 1 }, { { 2, 3, 17 }, { 1, 17 }, { 1 } }, -1, 1, 0, T_DOT, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "linear (2,3,4) w(6,4) no bias", OP_LINEAR, 2, { 3, 2 }, { { 2, 3, 4 }, { 6, 4 } }, -1, 1, 0, T_DOT, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "linear (1) w(3,1) b(3)", OP_LINEAR, 3, { 1, 2, 1 }, { { 1 }, { 3, 1 }, { 3 } }, -1, 1, 0, T_DOT, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    /* ---- views and copies ---- */
    { "reshape (2,3,4)->(6,4)", OP_RESHAPE, 1, { 3 }, { { 2, 3, 4 } }, -1, 1, 0, T_EXACT, 0, 0, 0, 2, { 6, 4 }, 0, NULL, 0, { 0 } },
    { "reshape (2,3,4)->(4,-1,2)", OP_RESHAPE, 1, { 3 }, { { 2, 3, 4 } }, -1, 1, 0, T_EXACT, 0, 0, 0, 3, { 4, -1, 2 }, 0, NULL, 0, { 0 } },
    { "reshape (17)->(1,17,1)", OP_RESHAPE, 1, { 1 }, { { 17 } }, -1, 1, 0, T_EXACT, 0, 0, 0, 3, { 1, 17, 1 }, 0, NULL, 0, { 0 } },
    { "transpose (3,5) 0<->1", OP_TRANSPOSE, 1, { 2 }, { { 3, 5 } }, -1, 1, 0, T_EXACT, 0, 1, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "transpose (2,3,4) 0<->2", OP_TRANSPOSE, 1, { 3 }, { { 2, 3, 4 } }, -1, 1, 0, T_EXACT, 0, 2, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "transpose (2,3,4,5) 1<->3", OP_TRANSPOSE, 1, { 4 }, { { 2, 3, 4, 5 } }, -1, 1, 0, T_EXACT, 1, 3, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "slice (5,4) dim 0 [1,4)", OP_SLICE, 1, { 2 }, { { 5, 4 } }, -1, 1, 0, T_EXACT, 0, 1, 4, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "slice (2,7,3) dim 1 [2,7)", OP_SLICE, 1, { 3 }, { { 2, 7, 3 } }, -1, 1, 0, T_EXACT, 1, 2, 7, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "slice (3,17) dim 1 [16,17)", OP_SLICE, 1, { 2 }, { { 3, 17 } }, -1, 1, 0, T_EXACT, 1, 16, 17, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "contiguous of transpose (3,5)", OP_CONTIG_T, 1, { 2 }, { { 3, 5 } }, -1, 1, 0, T_EXACT, 0, 1, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "contiguous of transpose (2,3,4) 0<->1", OP_CONTIG_T, 1, { 3 }, { { 2, 3, 4 } }, -1, 1, 0, T_EXACT, 0, 1, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "concat dim 0 (2,3)(4,3)", OP_CONCAT, 2, { 2, 2 }, { { 2, 3 }, { 4, 3 } }, -1, 1, 0, T_EXACT, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "concat dim 0 (1,3)(2,3)(1,3)", OP_CONCAT, 3, { 2, 2, 2 }, { { 1, 3 }, { 2, 3 }, { 1, 3 } }, -1, 1, 0, T_EXACT, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "concat dim 2 (2,3,1)(2,3,4)(2,3,2)", OP_CONCAT, 3, { 3, 3, 3 }, { { 2, 3, 1 }, { 2, 3, 4 }, { 2, 3, 2 } }, -1, 1, 0, T_EXACT, 2, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "concat dim 1 (2,3)(2,17)", OP_CONCAT, 2, { 2, 2 }, { { 2, 3 }, { 2, 17 } }, -1, 1, 0, T_EXACT, 1, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "concat dim 1 (2,1,4)(2,3,4)", OP_CONCAT, 2, { 3, 3 }, { { 2, 1, 4 }, { 2, 3, 4 } }, -1, 1, 0, T_EXACT, 1, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "embedding V5 D3 idx(2,3) repeats", OP_EMBEDDING, 1, { 2 }, { { 5, 3 } }, -1, 1, 0, T_EXACT, 0, 0, 0, 0, { 0 }, 0, emb_idx_a, 2, { 2, 3 } },
    { "embedding V1 D17 idx(5) one row", OP_EMBEDDING, 1, { 2 }, { { 1, 17 } }, -1, 1, 0, T_EXACT, 0, 0, 0, 0, { 0 }, 0, emb_idx_b, 1, { 5 } },
    /* ---- softmax, norms, activations ---- */
    { "softmax (3,17)", OP_SOFTMAX, 1, { 2 }, { { 3, 17 } }, -3, 3, 0, T_NONLIN, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "softmax (2,3,5)", OP_SOFTMAX, 1, { 3 }, { { 2, 3, 5 } }, -3, 3, 0, T_NONLIN, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "softmax (4,1)", OP_SOFTMAX, 1, { 2 }, { { 4, 1 } }, -3, 3, 0, T_NONLIN, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "softmax (33) large logits", OP_SOFTMAX, 1, { 1 }, { { 33 } }, 40, 50, 0, T_NONLIN, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "log_softmax (3,17)", OP_LOG_SOFTMAX, 1, { 2 }, { { 3, 17 } }, -3, 3, 0, T_NONLIN, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "log_softmax (2,1,3)", OP_LOG_SOFTMAX, 1, { 3 }, { { 2, 1, 3 } }, -3, 3, 0, T_NONLIN, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "log_softmax (1) ", OP_LOG_SOFTMAX, 1, { 1 }, { { 1 } }, -3, 3, 0, T_NONLIN, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "layernorm (3,17) w b", OP_LAYERNORM, 3, { 2, 1, 1 }, { { 3, 17 }, { 17 }, { 17 } }, -2, 2, 0, T_NONLIN, LN_W | LN_B, 0, 0, 0, { 0 }, 1e-5f, NULL, 0, { 0 } },
    { "layernorm (2,3,5) no w b", OP_LAYERNORM, 1, { 3 }, { { 2, 3, 5 } }, -2, 2, 0, T_NONLIN, 0, 0, 0, 0, { 0 }, 1e-5f, NULL, 0, { 0 } },
    { "layernorm (4,3) w only", OP_LAYERNORM, 2, { 2, 1 }, { { 4, 3 }, { 3 } }, -2, 2, 0, T_NONLIN, LN_W, 0, 0, 0, { 0 }, 1e-5f, NULL, 0, { 0 } },
    { "layernorm (4,3) b only", OP_LAYERNORM, 2, { 2, 1 }, { { 4, 3 }, { 3 } }, -2, 2, 0, T_NONLIN, LN_B, 0, 0, 0, { 0 }, 1e-5f, NULL, 0, { 0 } },
    { "layernorm (2,1) w b eps 0.1", OP_LAYERNORM, 3, { 2, 1, 1 }, { { 2, 1 }, { 1 }, { 1 } }, -2, 2, 0, T_NONLIN, LN_W | LN_B, 0, 0, 0, { 0 }, 0.1f, NULL, 0, { 0 } },
    { "layernorm (2,2,33) w b eps 0.5", OP_LAYERNORM, 3, { 3, 1, 1 }, { { 2, 2, 33 }, { 33 }, { 33 } }, -2, 2, 0, T_NONLIN, LN_W | LN_B, 0, 0, 0, { 0 }, 0.5f, NULL, 0, { 0 } },
    { "rmsnorm (3,17) w", OP_RMSNORM, 2, { 2, 1 }, { { 3, 17 }, { 17 } }, -2, 2, 0, T_NONLIN, LN_W, 0, 0, 0, { 0 }, 1e-6f, NULL, 0, { 0 } },
    { "rmsnorm (2,3,4) no w", OP_RMSNORM, 1, { 3 }, { { 2, 3, 4 } }, -2, 2, 0, T_NONLIN, 0, 0, 0, 0, { 0 }, 1e-6f, NULL, 0, { 0 } },
    { "rmsnorm (5,1) w eps 0.1", OP_RMSNORM, 2, { 2, 1 }, { { 5, 1 }, { 1 } }, -2, 2, 0, T_NONLIN, LN_W, 0, 0, 0, { 0 }, 0.1f, NULL, 0, { 0 } },
    { "gelu (3,17)", OP_GELU, 1, { 2 }, { { 3, 17 } }, -4, 4, 0, T_NONLIN, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "gelu (1)", OP_GELU, 1, { 1 }, { { 1 } }, -4, 4, 0, T_NONLIN, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "relu (3,17) away from 0", OP_RELU, 1, { 2 }, { { 3, 17 } }, -2, 2, 0.01f, T_EXACT, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "relu (2,3,4) away from 0", OP_RELU, 1, { 3 }, { { 2, 3, 4 } }, -2, 2, 0.01f, T_EXACT, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "tanh (3,17)", OP_TANH, 1, { 2 }, { { 3, 17 } }, -3, 3, 0, T_NONLIN, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "tanh (1,1,1)", OP_TANH, 1, { 3 }, { { 1, 1, 1 } }, -3, 3, 0, T_NONLIN, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    /* ---- losses ---- */
    { "cross_entropy (7,17) ignore -100, smoothing 0", OP_CE, 1, { 2 }, { { 7, 17 } }, -3, 3, 0, T_NONLIN, -100, 0, 0, 0, { 0 }, 0.0f, ce_t_a, 1, { 7 } },
    { "cross_entropy (7,17) ignore -100, smoothing 0.1", OP_CE, 1, { 2 }, { { 7, 17 } }, -3, 3, 0, T_NONLIN, -100, 0, 0, 0, { 0 }, 0.1f, ce_t_a, 1, { 7 } },
    { "cross_entropy (5,3) ignore_index 0, smoothing 0.3", OP_CE, 1, { 2 }, { { 5, 3 } }, -3, 3, 0, T_NONLIN, 0, 0, 0, 0, { 0 }, 0.3f, ce_t_b, 1, { 5 } },
    { "cross_entropy (3,3) smoothing 1", OP_CE, 1, { 2 }, { { 3, 3 } }, -3, 3, 0, T_NONLIN, -100, 0, 0, 0, { 0 }, 1.0f, ce_t_c, 1, { 3 } },
    { "mse (3,17)", OP_MSE, 2, { 2, 2 }, { { 3, 17 }, { 3, 17 } }, -1, 1, 0, T_NONLIN, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "mse (1)", OP_MSE, 2, { 1, 1 }, { { 1 }, { 1 } }, -1, 1, 0, T_NONLIN, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    { "mse (2,3,4)", OP_MSE, 2, { 3, 3 }, { { 2, 3, 4 }, { 2, 3, 4 } }, -1, 1, 0, T_NONLIN, 0, 0, 0, 0, { 0 }, 0, NULL, 0, { 0 } },
    /* ---- a composed block: h = gelu(x W1^T + b1); y = layernorm(h + h W3^T);
       cross_entropy(y W2^T). h has two consumers, so the tape must add both
       grads before going on; every op above feeds the next. ---- */
    { "block: linear-gelu-residual-layernorm-linear-cross_entropy", OP_BLOCK, 5, { 2, 2, 1, 2, 2 },
      { { 4, 5 }, { 6, 5 }, { 6 }, { 6, 6 }, { 3, 6 } }, -1, 1, 0, T_NONLIN, -1, 0, 0, 0, { 0 }, 1e-5f, block_t, 1, { 4 } },
};

/* The double forward of case c on inputs x[k] (row-major, c's shapes). Writes
   the output's shape and values; 0 when the case is malformed. */
static int ref_forward(const gc_case *c, double *const *x, double *out, int *ond, int *os) {
    const int *s0 = c->shape[0];
    int nd0 = c->ndim[0], d;
    size_t n0 = shape_numel(nd0, s0), i;
    switch (c->op) {
    case OP_ADD:
    case OP_SUB:
    case OP_MUL: {
        int idx[4];
        if (!ref_broadcast_shape(c->ndim[0], c->shape[0], c->ndim[1], c->shape[1], ond, os)) return 0;
        for (i = 0; i < shape_numel(*ond, os); i++) {
            double a, b;
            unravel(i, *ond, os, idx);
            a = x[0][ref_bcast_offset(c->ndim[0], c->shape[0], *ond, idx)];
            b = x[1][ref_bcast_offset(c->ndim[1], c->shape[1], *ond, idx)];
            out[i] = c->op == OP_ADD ? a + b : c->op == OP_SUB ? a - b : a * b;
        }
        return 1;
    }
    case OP_SQUARE:
    case OP_SCALE:
    case OP_GELU:
    case OP_RELU:
    case OP_TANH:
        *ond = nd0;
        for (d = 0; d < nd0; d++) os[d] = s0[d];
        for (i = 0; i < n0; i++) {
            double v = x[0][i];
            out[i] = c->op == OP_SQUARE ? v * v
                   : c->op == OP_SCALE  ? (double)c->f0 * v
                   : c->op == OP_GELU   ? ref_gelu1(v)
                   : c->op == OP_RELU   ? (v > 0 ? v : 0.0)
                                        : tanh(v);
        }
        return 1;
    case OP_SUM:
    case OP_MEAN: {
        double s = 0;
        for (i = 0; i < n0; i++) s += x[0][i];
        *ond = 0;
        out[0] = c->op == OP_SUM ? s : s / (double)n0;
        return 1;
    }
    case OP_MATMUL: {
        int M = s0[nd0 - 2], K = s0[nd0 - 1], N, b, batch = 1, m, n, k;
        const int *s1 = c->shape[1];
        int nd1 = c->ndim[1], shared = nd1 == 2;
        N = s1[nd1 - 1];
        if (s1[nd1 - 2] != K) return 0;
        for (d = 0; d < nd0 - 2; d++) batch *= s0[d];
        *ond = nd0;
        for (d = 0; d < nd0; d++) os[d] = s0[d];
        os[nd0 - 1] = N;
        for (b = 0; b < batch; b++)
            for (m = 0; m < M; m++)
                for (n = 0; n < N; n++) {
                    double acc = 0;
                    const double *A = x[0] + (size_t)b * M * K, *B = x[1] + (shared ? 0 : (size_t)b * K * N);
                    for (k = 0; k < K; k++) acc += A[m * K + k] * B[k * N + n];
                    out[((size_t)b * M + m) * N + n] = acc;
                }
        return 1;
    }
    case OP_LINEAR: {
        int in = s0[nd0 - 1], o = c->shape[1][0];
        *ond = nd0;
        for (d = 0; d < nd0; d++) os[d] = s0[d];
        os[nd0 - 1] = o;
        ref_linear(n0 / in, in, o, x[0], x[1], c->n_in > 2 ? x[2] : NULL, out);
        return 1;
    }
    case OP_RESHAPE: {
        size_t known = 1;
        int infer = -1;
        *ond = c->new_ndim;
        for (d = 0; d < c->new_ndim; d++) {
            os[d] = c->new_shape[d];
            if (os[d] == -1) infer = d; else known *= (size_t)os[d];
        }
        if (infer >= 0) os[infer] = (int)(n0 / known);
        for (i = 0; i < n0; i++) out[i] = x[0][i];
        return 1;
    }
    case OP_TRANSPOSE:
    case OP_CONTIG_T: {
        int idx[4], tmp;
        *ond = nd0;
        for (d = 0; d < nd0; d++) os[d] = s0[d];
        os[c->i0] = s0[c->i1];
        os[c->i1] = s0[c->i0];
        for (i = 0; i < n0; i++) {
            size_t off = 0;
            unravel(i, nd0, os, idx);
            tmp = idx[c->i0]; idx[c->i0] = idx[c->i1]; idx[c->i1] = tmp;
            for (d = 0; d < nd0; d++) off = off * (size_t)s0[d] + (size_t)idx[d];
            out[i] = x[0][off];
        }
        return 1;
    }
    case OP_SLICE: {
        int idx[4];
        size_t j = 0;
        *ond = nd0;
        for (d = 0; d < nd0; d++) os[d] = s0[d];
        os[c->i0] = c->i2 - c->i1;
        for (i = 0; i < n0; i++) {
            unravel(i, nd0, s0, idx);
            if (idx[c->i0] >= c->i1 && idx[c->i0] < c->i2) out[j++] = x[0][i];
        }
        return 1;
    }
    case OP_CONCAT: {
        int dim = c->i0, k;
        size_t outer = 1, inner = 1, o, pos = 0;
        *ond = nd0;
        for (d = 0; d < nd0; d++) os[d] = s0[d];
        os[dim] = 0;
        for (k = 0; k < c->n_in; k++) os[dim] += c->shape[k][dim];
        for (d = 0; d < dim; d++) outer *= (size_t)s0[d];
        for (d = dim + 1; d < nd0; d++) inner *= (size_t)s0[d];
        for (o = 0; o < outer; o++)
            for (k = 0; k < c->n_in; k++) {
                size_t chunk = (size_t)c->shape[k][dim] * inner;
                for (i = 0; i < chunk; i++) out[pos++] = x[k][o * chunk + i];
            }
        return 1;
    }
    case OP_EMBEDDING: {
        int D = s0[1];
        size_t n = shape_numel(c->idx_ndim, c->idx_shape);
        *ond = c->idx_ndim + 1;
        for (d = 0; d < c->idx_ndim; d++) os[d] = c->idx_shape[d];
        os[c->idx_ndim] = D;
        for (i = 0; i < n; i++)
            for (d = 0; d < D; d++) out[i * D + d] = x[0][(size_t)c->idx[i] * D + d];
        return 1;
    }
    case OP_SOFTMAX:
    case OP_LOG_SOFTMAX:
        *ond = nd0;
        for (d = 0; d < nd0; d++) os[d] = s0[d];
        ref_softmax(n0 / s0[nd0 - 1], s0[nd0 - 1], x[0], out, c->op == OP_LOG_SOFTMAX);
        return 1;
    case OP_LAYERNORM:
    case OP_RMSNORM: {
        int k = 1, D = s0[nd0 - 1];
        const double *w = NULL, *b = NULL;
        if (c->i0 & LN_W) w = x[k++];
        if (c->i0 & LN_B) b = x[k++];
        *ond = nd0;
        for (d = 0; d < nd0; d++) os[d] = s0[d];
        if (c->op == OP_LAYERNORM) ref_layernorm(n0 / D, D, x[0], w, b, (double)c->f0, out);
        else ref_rmsnorm(n0 / D, D, x[0], w, (double)c->f0, out);
        return 1;
    }
    case OP_CE:
        *ond = 0;
        out[0] = ref_cross_entropy(s0[0], s0[1], x[0], c->idx, c->i0, (double)c->f0);
        return 1;
    case OP_MSE: {
        double s = 0;
        for (i = 0; i < n0; i++) s += (x[0][i] - x[1][i]) * (x[0][i] - x[1][i]);
        *ond = 0;
        out[0] = s / (double)n0;
        return 1;
    }
    case OP_BLOCK: {
        /* x (4,5); w1 (6,5); b1 (6); w3 (6,6); w2 (3,6) */
        double h[24], r[24], y[24], logits[12];
        ref_linear(4, 5, 6, x[0], x[1], x[2], h);
        for (i = 0; i < 24; i++) h[i] = ref_gelu1(h[i]);
        ref_linear(4, 6, 6, h, x[3], NULL, r);
        for (i = 0; i < 24; i++) r[i] += h[i];
        ref_layernorm(4, 6, r, NULL, NULL, (double)c->f0, y);
        ref_linear(4, 6, 3, y, x[4], NULL, logits);
        *ond = 0;
        out[0] = ref_cross_entropy(4, 3, logits, c->idx, c->i0, 0.0);
        return 1;
    }
    default:
        return 0;
    }
}

/* The same op through attn, on the parameters in[] */
static attn_tensor *gc_build(attn_context *ctx, const gc_case *c, attn_tensor **in) {
    switch (c->op) {
    case OP_ADD: return attn_add(ctx, in[0], in[1]);
    case OP_SUB: return attn_sub(ctx, in[0], in[1]);
    case OP_MUL: return attn_mul(ctx, in[0], in[1]);
    case OP_SQUARE: return attn_mul(ctx, in[0], in[0]);
    case OP_SCALE: return attn_scale(ctx, in[0], c->f0);
    case OP_SUM: return attn_sum(ctx, in[0]);
    case OP_MEAN: return attn_mean(ctx, in[0]);
    case OP_MATMUL: return attn_matmul(ctx, in[0], in[1]);
    case OP_LINEAR: return attn_linear(ctx, in[0], in[1], c->n_in > 2 ? in[2] : NULL);
    case OP_RESHAPE: return attn_reshape(ctx, in[0], c->new_ndim, c->new_shape);
    case OP_TRANSPOSE: return attn_transpose(ctx, in[0], c->i0, c->i1);
    case OP_SLICE: return attn_slice(ctx, in[0], c->i0, c->i1, c->i2);
    case OP_CONTIG_T: {
        attn_tensor *t = attn_transpose(ctx, in[0], c->i0, c->i1);
        return t ? attn_contiguous(ctx, t) : NULL;
    }
    case OP_CONCAT: return attn_concat(ctx, in, c->n_in, c->i0);
    case OP_EMBEDDING: return attn_embedding(ctx, in[0], c->idx, c->idx_ndim, c->idx_shape);
    case OP_SOFTMAX: return attn_softmax(ctx, in[0]);
    case OP_LOG_SOFTMAX: return attn_log_softmax(ctx, in[0]);
    case OP_LAYERNORM:
    case OP_RMSNORM: {
        int k = 1;
        attn_tensor *w = NULL, *b = NULL;
        if (c->i0 & LN_W) w = in[k++];
        if (c->i0 & LN_B) b = in[k++];
        return c->op == OP_LAYERNORM ? attn_layernorm(ctx, in[0], w, b, c->f0) : attn_rmsnorm(ctx, in[0], w, c->f0);
    }
    case OP_GELU: return attn_gelu(ctx, in[0]);
    case OP_RELU: return attn_relu(ctx, in[0]);
    case OP_TANH: return attn_tanh(ctx, in[0]);
    case OP_CE: return attn_cross_entropy(ctx, in[0], c->idx, c->i0, c->f0);
    case OP_MSE: return attn_mse(ctx, in[0], in[1]);
    case OP_BLOCK: {
        attn_tensor *h = attn_gelu(ctx, attn_linear(ctx, in[0], in[1], in[2]));
        attn_tensor *r = attn_add(ctx, h, attn_linear(ctx, h, in[3], NULL));
        attn_tensor *y = attn_layernorm(ctx, r, NULL, NULL, c->f0);
        return attn_cross_entropy(ctx, attn_linear(ctx, y, in[4], NULL), c->idx, c->i0, 0.0f);
    }
    default: return NULL;
    }
}

static int gc_is_view(int op) { return op == OP_RESHAPE || op == OP_TRANSPOSE || op == OP_SLICE; }

/* scratch for the gradient check (the runner is single-threaded) */
static float gc_xf[GC_MAX_IN][GC_MAX_EL];
static double gc_xd_store[GC_MAX_IN][GC_MAX_EL];
static double gc_gfd[GC_MAX_IN][GC_MAX_EL];
static double gc_got[GC_MAX_EL];
static double gc_ref[GC_MAX_EL], gc_tmp[GC_MAX_EL], gc_w[GC_MAX_EL];
static float gc_wf[GC_MAX_EL];

static double gc_loss(const gc_case *c, double *const *x, size_t nout) {
    int ond, os[4];
    double L = 0;
    size_t i;
    ref_forward(c, x, gc_tmp, &ond, os);
    for (i = 0; i < nout; i++) L += gc_w[i] * gc_tmp[i];
    return L;
}

/* One case: reference, numerical grads, then attn in both backward modes. */
static void gc_run(const gc_case *c, uint64_t seed) {
    double *xd[GC_MAX_IN];
    size_t nin[GC_MAX_IN], nout, i;
    int k, ond, os[4], mode;
    test_rng r;
    test_rng_seed(&r, seed);
    for (k = 0; k < c->n_in; k++) {
        nin[k] = shape_numel(c->ndim[k], c->shape[k]);
        xd[k] = gc_xd_store[k];
        if (!CHECK(nin[k] <= GC_MAX_EL, "%s: input too big for the test", c->name)) return;
        for (i = 0; i < nin[k]; i++) {
            float v;
            do v = test_rng_range(&r, c->lo, c->hi);
            while (fabsf(v) < c->min_abs);
            gc_xf[k][i] = v;
            xd[k][i] = v;
        }
    }
    if (!CHECK(ref_forward(c, xd, gc_ref, &ond, os), "%s: malformed case", c->name)) return;
    nout = shape_numel(ond, os);
    if (!CHECK(nout <= GC_MAX_EL, "%s: output too big for the test", c->name)) return;
    for (i = 0; i < nout; i++) {
        gc_wf[i] = test_rng_range(&r, -1.0f, 1.0f);
        gc_w[i] = gc_wf[i];
    }
    /* central differences of the double forward */
    for (k = 0; k < c->n_in; k++)
        for (i = 0; i < nin[k]; i++) {
            double x0 = xd[k][i], h = 1e-6 * (1.0 + fabs(x0)), lp, lm;
            xd[k][i] = x0 + h;
            lp = gc_loss(c, xd, nout);
            xd[k][i] = x0 - h;
            lm = gc_loss(c, xd, nout);
            xd[k][i] = x0;
            gc_gfd[k][i] = (lp - lm) / (2 * h);
        }
    /* mode 0: attn_backward_ex(out, seed = w); mode 1: attn_backward(sum(out * W)) */
    for (mode = 0; mode < 2; mode++) {
        attn_context *ctx = new_ctx(seed);
        attn_tensor *in[GC_MAX_IN], *out;
        attn_status st;
        size_t at;
        double e;
        const char *how = mode ? "backward(sum(out*W))" : "backward_ex(seed)";
        if (!CHECK(ctx != NULL, "context")) return;
        for (k = 0; k < c->n_in; k++) {
            char name[8];
            name[0] = 'i'; name[1] = 'n'; name[2] = (char)('0' + k); name[3] = 0;
            in[k] = attn_param_new(ctx, name, c->ndim[k], c->shape[k]);
            if (!CHECK(in[k] != NULL, "%s: param: %s", c->name, attn_error_message(ctx))) goto next;
            memcpy(in[k]->data, gc_xf[k], nin[k] * sizeof(float));
        }
        out = gc_build(ctx, c, in);
        if (!CHECK(out != NULL, "%s: op failed: %s", c->name, attn_error_message(ctx))) goto next;
        if (!CHECK(same_shape(out, ond, os), "%s: output has %d dims (%d,%d,%d,%d), want %d (%d,%d,%d,%d)", c->name,
                   out->ndim, out->shape[0], out->shape[1], out->shape[2], out->shape[3], ond, os[0], os[1], os[2],
                   os[3]))
            goto next;
        CHECK(out->requires_grad && out->node != NULL, "%s: output of an op on parameters has requires_grad %d node %p",
              c->name, out->requires_grad, (void *)out->node);
        if (!gc_is_view(c->op))
            CHECK(attn_tensor_is_contiguous(out), "%s: an op's output is not contiguous", c->name);
        if (mode == 0) {
            read_tensor(out, gc_got);
            e = worst_err(nout, gc_got, gc_ref, &at);
            CHECK(e <= c->fwd_tol, "%s: forward error %.3g > %.0e at %d: got %.9g, want %.9g", c->name, e, c->fwd_tol,
                  (int)at, gc_got[at], gc_ref[at]);
            st = attn_backward_ex(ctx, out, gc_wf, 0);
        } else {
            attn_tensor *W = attn_tensor_new(ctx, out->ndim, out->shape), *L;
            if (!CHECK(W != NULL, "W")) goto next;
            memcpy(W->data, gc_wf, nout * sizeof(float));
            L = attn_sum(ctx, attn_mul(ctx, out, W));
            if (!CHECK(L != NULL && L->ndim == 0, "%s: sum(out*W) failed: %s", c->name, attn_error_message(ctx)))
                goto next;
            st = attn_backward(ctx, L);
        }
        if (!CHECK(st == ATTN_OK, "%s: %s failed: %s", c->name, how, attn_error_message(ctx))) goto next;
        for (k = 0; k < c->n_in; k++) {
            if (!CHECK(in[k]->grad != NULL, "%s: input %d has no grad", c->name, k)) continue;
            for (i = 0; i < nin[k]; i++) gc_got[i] = in[k]->grad[i];
            e = worst_err(nin[k], gc_got, gc_gfd[k], &at);
            CHECK(e <= c->grad_tol, "%s, %s: input %d grad error %.3g > %.0e at %d: got %.9g, want %.9g", c->name, how,
                  k, e, c->grad_tol, (int)at, gc_got[at], gc_gfd[k][at]);
        }
    next:
        attn_context_destroy(ctx);
    }
}

TEST(gradcheck_all_ops) {
    size_t i;
    for (i = 0; i < sizeof gc_cases / sizeof gc_cases[0]; i++) gc_run(&gc_cases[i], 1000 + i);
}

/* Every row ignored: the mean over no rows is NaN, as in PyTorch. */
TEST(cross_entropy_all_ignored_is_nan) {
    static const int32_t t[3] = { -100, -100, -100 };
    attn_context *ctx = new_ctx(1);
    int s[2] = { 3, 4 };
    test_rng r;
    attn_tensor *x, *l;
    test_rng_seed(&r, 7);
    x = param(ctx, "x", 2, s, &r, -1, 1);
    l = attn_cross_entropy(ctx, x, t, -100, 0.0f);
    if (CHECK(l != NULL, "cross_entropy failed: %s", attn_error_message(ctx)))
        CHECK(l->ndim == 0 && test_is_nan(l->data[0]), "all rows ignored: got %g, want NaN", (double)l->data[0]);
    attn_context_destroy(ctx);
}

/* ======================================================================== */
/* Dropout                                                                  */
/* ======================================================================== */

TEST(dropout_mask_scale_and_grad) {
    enum { R = 37, C = 53, N = R * C };
    int s[2] = { R, C }, i, dropped = 0, bad_val = 0, bad_grad = 0;
    float p = 0.3f;
    double scale = 1.0 / (1.0 - (double)p), worst_val = 0, worst_grad = 0;
    static float w[N], mask1[N];
    attn_context *ctx = new_ctx(42);
    attn_tensor *x, *y;
    test_rng r;
    test_rng_seed(&r, 99);
    for (i = 0; i < N; i++) w[i] = test_rng_range(&r, -1, 1);
    x = attn_param_new(ctx, "x", 2, s);
    if (!CHECK(x != NULL, "param")) goto out;
    for (i = 0; i < N; i++) { /* nonzero, so y / x is the mask times the scale */
        float v = test_rng_range(&r, 0.5f, 1.5f);
        x->data[i] = (test_rng_u32(&r) & 1) ? v : -v;
    }
    y = attn_dropout(ctx, x, p, 1);
    if (!CHECK(y != NULL, "dropout failed: %s", attn_error_message(ctx))) goto out;
    CHECK(same_shape(y, 2, s) && y->requires_grad && y->node, "dropout output: shape, requires_grad or node wrong");
    for (i = 0; i < N; i++) {
        double v = y->data[i], e;
        if (v == 0) { dropped++; mask1[i] = 0; continue; }
        mask1[i] = 1;
        e = fabs(v - x->data[i] * scale) / fabs(x->data[i] * scale);
        if (e > worst_val) worst_val = e;
        bad_val += e > 1e-6;
    }
    /* 1961 draws at p = 0.3: sd 0.0103, so [0.25, 0.35] is about 5 sd */
    CHECK(dropped > 0.25 * N && dropped < 0.35 * N, "dropped %d of %d at p = 0.3", dropped, N);
    CHECK(bad_val == 0, "%d kept elements are not x / (1 - p) (worst rel error %.3g)", bad_val, worst_val);
    if (!CHECK(attn_backward_ex(ctx, y, w, 0) == ATTN_OK, "backward: %s", attn_error_message(ctx))) goto out;
    /* grad = w * mask * scale = w * y / x: the same mask as the forward */
    for (i = 0; i < N; i++) {
        double want = (double)w[i] * y->data[i] / x->data[i];
        double e = fabs(x->grad[i] - want) / (fabs(want) + 1e-3);
        if (e > worst_grad) worst_grad = e;
        bad_grad += e > 1e-5;
    }
    CHECK(bad_grad == 0, "%d grads differ from w * y / x (worst %.3g): the backward mask is not the forward's", bad_grad,
          worst_grad);
    /* a second call draws a new mask; a context with the same seed repeats the first */
    {
        attn_tensor *y2 = attn_dropout(ctx, x, p, 1);
        attn_context *ctx2 = new_ctx(42);
        attn_tensor *x2 = attn_param_new(ctx2, "x", 2, s), *y3;
        int differ = 0, same = 1;
        if (CHECK(y2 != NULL, "second dropout"))
            for (i = 0; i < N; i++) differ += (y2->data[i] == 0) != (mask1[i] == 0);
        CHECK(differ > 0, "two dropout calls gave the same mask");
        if (x2) {
            memcpy(x2->data, x->data, sizeof(float) * N);
            y3 = attn_dropout(ctx2, x2, p, 1);
            if (CHECK(y3 != NULL, "dropout in a second context"))
                for (i = 0; i < N; i++) same &= (y3->data[i] == 0) == (mask1[i] == 0);
            CHECK(same, "the same seed gave a different mask");
        }
        attn_context_destroy(ctx2);
    }
out:
    attn_context_destroy(ctx);
}

/* p = 0 (training) and training = 0 are the identity, values and grads. */
TEST(dropout_identity_cases) {
    int s[2] = { 3, 17 }, mode, i;
    for (mode = 0; mode < 2; mode++) {
        attn_context *ctx = new_ctx(5);
        test_rng r;
        attn_tensor *x, *y, *W, *L;
        int bad = 0;
        test_rng_seed(&r, 11);
        x = param(ctx, "x", 2, s, &r, -1, 1);
        W = constant(ctx, 2, s, &r, -1, 1);
        y = mode == 0 ? attn_dropout(ctx, x, 0.0f, 1) : attn_dropout(ctx, x, 0.5f, 0);
        if (!CHECK(y != NULL, "dropout mode %d: %s", mode, attn_error_message(ctx))) goto next;
        if (mode == 1) CHECK(y == x, "dropout with training = 0 must return x itself");
        for (i = 0; i < 3 * 17; i++) bad += y->data[i] != x->data[i];
        CHECK(bad == 0, "%s changed %d values", mode ? "training = 0" : "p = 0", bad);
        L = attn_sum(ctx, attn_mul(ctx, y, W));
        if (!CHECK(L && attn_backward(ctx, L) == ATTN_OK, "backward: %s", attn_error_message(ctx))) goto next;
        bad = 0;
        for (i = 0; i < 3 * 17; i++) bad += x->grad[i] != W->data[i];
        CHECK(bad == 0, "%s: %d grads differ from w", mode ? "training = 0" : "p = 0", bad);
    next:
        attn_context_destroy(ctx);
    }
}

/* p = 1 drops everything (PyTorch gives zeros, not 0 * inf = NaN); p outside [0, 1] is an error. */
TEST(dropout_p_one_and_bad_p) {
    int s[1] = { 17 }, i, bad = 0;
    attn_context *ctx = new_ctx(3);
    test_rng r;
    attn_tensor *x, *y;
    static const float w[17] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17 };
    test_rng_seed(&r, 1);
    x = param(ctx, "x", 1, s, &r, 0.5f, 1.5f);
    y = attn_dropout(ctx, x, 1.0f, 1);
    if (CHECK(y != NULL, "dropout p = 1: %s", attn_error_message(ctx))) {
        for (i = 0; i < 17; i++) bad += y->data[i] != 0.0f;
        CHECK(bad == 0, "p = 1: %d elements are not 0 (e.g. %g)", bad, (double)y->data[0]);
        if (CHECK(attn_backward_ex(ctx, y, w, 0) == ATTN_OK, "backward: %s", attn_error_message(ctx))) {
            bad = 0;
            for (i = 0; i < 17; i++) bad += x->grad[i] != 0.0f;
            CHECK(bad == 0, "p = 1: %d grads are not 0 (e.g. %g)", bad, (double)x->grad[0]);
        }
    }
    attn_error_clear(ctx);
    CHECK(attn_dropout(ctx, x, 1.5f, 1) == NULL && failed_with(ctx, ATTN_ERR_INVALID_ARGUMENT, ATTN_ERR_INVALID_ARGUMENT),
          "p = 1.5 must fail with invalid argument");
    CHECK(attn_dropout(ctx, x, -0.1f, 1) == NULL && failed_with(ctx, ATTN_ERR_INVALID_ARGUMENT, ATTN_ERR_INVALID_ARGUMENT),
          "p = -0.1 must fail with invalid argument");
    attn_context_destroy(ctx);
}

/* ======================================================================== */
/* Tape behaviour                                                           */
/* ======================================================================== */

/* Grad off: nothing recorded, and the arena grows only by the results. */
TEST(grad_off_records_nothing_and_allocates_only_results) {
    static const int32_t idx[4] = { 0, 2, 1, 2 }, tgt[3] = { 1, 0, 3 };
    attn_context *ctx = new_ctx(1);
    attn_arena *arena;
    test_rng r;
    int sx[2] = { 3, 4 }, sw[2] = { 5, 4 }, sb[1] = { 5 }, sv[1] = { 4 }, s34[2] = { 4, 3 }, sn[2] = { 3, 6 };
    attn_tensor *x, *w, *b, *v, *m, *t;
    int k;
    if (!CHECK(ctx != NULL, "context")) return;
    arena = attn_context_arena(ctx);
    test_rng_seed(&r, 3);
    x = param(ctx, "x", 2, sx, &r, -1, 1);
    w = param(ctx, "w", 2, sw, &r, -1, 1);
    b = param(ctx, "b", 1, sb, &r, -1, 1);
    v = param(ctx, "v", 1, sv, &r, -1, 1);
    m = param(ctx, "m", 2, s34, &r, -1, 1);
    t = param(ctx, "t", 2, sn, &r, -1, 1);
    if (!CHECK(x && w && b && v && m && t, "params")) goto out;
    CHECK(attn_grad_enable(ctx, 0) == 1, "grad is on by default: attn_grad_enable must return 1");
    for (k = 0; k < 22; k++) {
        size_t before = attn_arena_used(arena), grew;
        attn_tensor *y = NULL;
        int shp[2] = { 12, 1 };
        const char *what = "";
        switch (k) {
        case 0: y = attn_add(ctx, x, v); what = "add"; break;
        case 1: y = attn_sub(ctx, x, v); what = "sub"; break;
        case 2: y = attn_mul(ctx, x, x); what = "mul"; break;
        case 3: y = attn_scale(ctx, x, 2.0f); what = "scale"; break;
        case 4: y = attn_sum(ctx, x); what = "sum"; break;
        case 5: y = attn_mean(ctx, x); what = "mean"; break;
        case 6: y = attn_matmul(ctx, x, m); what = "matmul"; break;
        case 7: y = attn_linear(ctx, x, w, b); what = "linear"; break;
        case 8: y = attn_reshape(ctx, x, 2, shp); what = "reshape"; break;
        case 9: y = attn_transpose(ctx, x, 0, 1); what = "transpose"; break;
        case 10: y = attn_slice(ctx, x, 1, 1, 3); what = "slice"; break;
        case 11: { attn_tensor *xs[2]; xs[0] = x; xs[1] = x; y = attn_concat(ctx, xs, 2, 0); what = "concat"; break; }
        case 12: y = attn_embedding(ctx, x, idx, 1, sv); what = "embedding"; break;
        case 13: y = attn_softmax(ctx, x); what = "softmax"; break;
        case 14: y = attn_log_softmax(ctx, x); what = "log_softmax"; break;
        case 15: y = attn_layernorm(ctx, x, v, v, 1e-5f); what = "layernorm"; break;
        case 16: y = attn_rmsnorm(ctx, x, v, 1e-5f); what = "rmsnorm"; break;
        case 17: y = attn_gelu(ctx, x); what = "gelu"; break;
        case 18: y = attn_relu(ctx, x); what = "relu"; break;
        case 19: y = attn_tanh(ctx, x); what = "tanh"; break;
        case 20: y = attn_dropout(ctx, t, 0.5f, 1); what = "dropout"; break;
        default: y = attn_cross_entropy(ctx, x, tgt, -100, 0.1f); what = "cross_entropy"; break;
        }
        if (!CHECK(y != NULL, "grad off: %s failed: %s", what, attn_error_message(ctx))) continue;
        grew = attn_arena_used(arena) - before;
        CHECK(y->node == NULL && y->requires_grad == 0, "grad off: %s recorded a node (%p) or requires_grad %d", what,
              (void *)y->node, y->requires_grad);
        CHECK(grew <= attn_tensor_bytes(y->ndim, y->shape), "grad off: %s took %d arena bytes, its result needs %d", what,
              (int)grew, (int)attn_tensor_bytes(y->ndim, y->shape));
    }
    {
        size_t before = attn_arena_used(arena);
        attn_tensor *y = attn_mse(ctx, x, x);
        if (CHECK(y != NULL, "grad off: mse failed")) {
            CHECK(y->node == NULL && y->requires_grad == 0, "grad off: mse recorded a node");
            CHECK(attn_arena_used(arena) - before <= attn_tensor_bytes(0, NULL), "grad off: mse took %d bytes",
                  (int)(attn_arena_used(arena) - before));
        }
    }
    CHECK(attn_grad_enable(ctx, 1) == 0, "attn_grad_enable must return the previous setting (0)");
    {
        /* back on: recorded again */
        attn_tensor *y = attn_mul(ctx, x, x);
        CHECK(y && y->node && y->requires_grad, "grad back on: mul did not record");
    }
out:
    attn_context_destroy(ctx);
}

/* The same with strided inputs ("inputs may be strided views"): a contiguous
   copy made on the way is scratch, not a result, so it must not stay behind. */
TEST(grad_off_strided_inputs_allocate_only_results) {
    static const int32_t tgt[3] = { 1, 0, 3 };
    attn_context *ctx = new_ctx(1);
    attn_arena *arena;
    test_rng r;
    int s43[2] = { 4, 3 }, s4[1] = { 4 }, k;
    attn_tensor *m, *v;
    if (!CHECK(ctx != NULL, "context")) return;
    arena = attn_context_arena(ctx);
    test_rng_seed(&r, 3);
    m = param(ctx, "m", 2, s43, &r, -1, 1);
    v = param(ctx, "v", 1, s4, &r, -1, 1);
    if (!CHECK(m && v, "params")) goto out;
    attn_grad_enable(ctx, 0);
    for (k = 0; k < 4; k++) {
        attn_tensor *xt = attn_transpose(ctx, m, 0, 1), *y = NULL; /* (3,4) view of m (4,3) */
        size_t before = attn_arena_used(arena);
        const char *what = "";
        if (!CHECK(xt != NULL, "transpose")) break;
        switch (k) {
        case 0: y = attn_softmax(ctx, xt); what = "softmax of a transposed view"; break;
        case 1: y = attn_matmul(ctx, xt, m); what = "matmul of a transposed view"; break;
        case 2: y = attn_layernorm(ctx, xt, v, v, 1e-5f); what = "layernorm of a transposed view"; break;
        default: y = attn_cross_entropy(ctx, xt, tgt, -100, 0.0f); what = "cross_entropy of a transposed view"; break;
        }
        if (!CHECK(y != NULL, "grad off: %s failed: %s", what, attn_error_message(ctx))) continue;
        CHECK(attn_arena_used(arena) - before <= attn_tensor_bytes(y->ndim, y->shape),
              "grad off: %s took %d arena bytes, its result needs %d", what, (int)(attn_arena_used(arena) - before),
              (int)attn_tensor_bytes(y->ndim, y->shape));
    }
out:
    attn_context_destroy(ctx);
}

/* Grad on, but no input requires grad: nothing to record. */
TEST(ops_on_constants_record_nothing) {
    attn_context *ctx = new_ctx(1);
    test_rng r;
    int s[2] = { 3, 4 };
    attn_tensor *a, *b, *y;
    test_rng_seed(&r, 1);
    a = constant(ctx, 2, s, &r, -1, 1);
    b = constant(ctx, 2, s, &r, -1, 1);
    y = attn_tanh(ctx, attn_add(ctx, a, b));
    if (CHECK(y != NULL, "ops on constants failed: %s", attn_error_message(ctx)))
        CHECK(y->node == NULL && y->requires_grad == 0, "an op on constants recorded a node or requires grad");
    attn_context_destroy(ctx);
}

/* A small MLP step, forward + backward, between a mark and a reset. */
static attn_status mlp_step(attn_context *ctx, attn_tensor *w1, attn_tensor *b1, attn_tensor *w2, int step) {
    static const int32_t tgt[6] = { 0, 2, 1, 2, -100, 0 };
    int sx[2] = { 6, 8 };
    test_rng r;
    attn_tensor *x = attn_tensor_new(ctx, 2, sx), *h, *logits, *loss;
    if (!x) return attn_error_status(ctx);
    test_rng_seed(&r, 500 + (uint64_t)step % 2); /* two input batches, alternating */
    test_fill(&r, x->data, 48, -1, 1);
    h = attn_gelu(ctx, attn_layernorm(ctx, attn_linear(ctx, x, w1, b1), NULL, NULL, 1e-5f));
    logits = attn_linear(ctx, h, w2, NULL);
    loss = attn_cross_entropy(ctx, logits, tgt, -100, 0.1f);
    if (!loss) return attn_error_status(ctx) ? attn_error_status(ctx) : ATTN_ERR_INVALID_ARGUMENT;
    return attn_backward(ctx, loss);
}

TEST(training_step_lives_between_mark_and_reset) {
    enum { STEPS = 6, NG = 16 * 8 + 16 + 3 * 16 };
    static unsigned char mem[1 << 20];
    int mode;
    for (mode = 0; mode < 2; mode++) { /* growing arena with small blocks; a fixed caller buffer */
        attn_context_desc d;
        attn_context *ctx;
        attn_arena *arena;
        attn_tensor *w1, *b1, *w2, *ps[3];
        int sw1[2] = { 16, 8 }, sb1[1] = { 16 }, sw2[2] = { 3, 16 }, step, k, i;
        static float g_first[2][NG], g_now[NG];
        float *grad_ptr[3];
        size_t used0 = 0, peak1 = 0, step_bytes = 0;
        long calls1 = 0;
        test_rng r;
        const char *mname = mode ? "fixed" : "growing";
        memset(&d, 0, sizeof d);
        d.seed = 9;
        if (mode) { d.memory = mem; d.memory_size = sizeof mem; }
        else d.block_size = 4096;
        ctx = attn_context_create(&d);
        if (!CHECK(ctx != NULL, "%s context", mname)) continue;
        arena = attn_context_arena(ctx);
        test_rng_seed(&r, 77);
        ps[0] = w1 = param(ctx, "w1", 2, sw1, &r, -0.5f, 0.5f);
        ps[1] = b1 = param(ctx, "b1", 1, sb1, &r, -0.5f, 0.5f);
        ps[2] = w2 = param(ctx, "w2", 2, sw2, &r, -0.5f, 0.5f);
        if (!CHECK(w1 && b1 && w2, "params")) goto next;
        for (k = 0; k < 3; k++) grad_ptr[k] = ps[k]->grad;
        for (step = 0; step < STEPS; step++) {
            attn_context_pos mark;
            size_t at_mark;
            attn_params_zero_grad(ctx);
            mark = attn_context_mark(ctx);
            at_mark = attn_arena_used(arena);
            if (step == 0) used0 = at_mark;
            CHECK(at_mark == used0, "%s, step %d: arena used %d at the mark, %d at step 0", mname, step, (int)at_mark,
                  (int)used0);
            if (step % 2) { /* a forward with grad on and no backward first: its nodes just go with the reset */
                int sx[2] = { 2, 8 };
                attn_tensor *xe = attn_tensor_new(ctx, 2, sx);
                CHECK(xe && attn_linear(ctx, attn_gelu(ctx, attn_linear(ctx, xe, w1, b1)), w2, NULL),
                      "%s, step %d: eval forward: %s", mname, step, attn_error_message(ctx));
            }
            if (!CHECK(mlp_step(ctx, w1, b1, w2, step) == ATTN_OK, "%s, step %d: %s", mname, step,
                       attn_error_message(ctx)))
                break;
            CHECK(attn_arena_used(arena) > at_mark, "%s: the step allocated nothing in the arena?", mname);
            if (step == 0) step_bytes = attn_arena_used(arena) - at_mark;
            attn_context_reset(ctx, mark);
            CHECK(attn_arena_used(arena) == at_mark, "%s, step %d: used %d after the reset, %d at the mark", mname, step,
                  (int)attn_arena_used(arena), (int)at_mark);
            /* the grads survive the reset, even once the freed memory is
               scribbled over (in the fixed buffer, where the next tensor takes
               the same bytes; a growing arena's block chain is left alone so
               the allocator counts below measure the steps only) */
            if (mode == 1) {
                int sbig[1];
                attn_tensor *junk;
                sbig[0] = (int)(step_bytes / sizeof(float));
                junk = attn_tensor_new(ctx, 1, sbig);
                if (CHECK(junk != NULL, "junk tensor")) attn_tensor_fill(junk, 1e30f);
            }
            i = 0;
            for (k = 0; k < 3; k++) {
                size_t j, n = attn_tensor_numel(ps[k]);
                CHECK(ps[k]->grad == grad_ptr[k], "%s: param %d's grad moved", mname, k);
                for (j = 0; j < n; j++) g_now[i++] = ps[k]->grad[j];
            }
            attn_context_reset(ctx, mark);
            {
                int nz = 0, differ = 0;
                for (i = 0; i < NG; i++) nz += g_now[i] != 0;
                CHECK(nz > NG / 2, "%s, step %d: only %d of %d grads nonzero after the reset", mname, step, nz, NG);
                if (step < 2) memcpy(g_first[step], g_now, sizeof g_now);
                else {
                    for (i = 0; i < NG; i++) differ += g_now[i] != g_first[step % 2][i];
                    CHECK(differ == 0, "%s, step %d: %d grads differ from the same batch's first step", mname, step,
                          differ);
                }
            }
            if (step == 1) {
                peak1 = attn_arena_peak(arena);
                calls1 = test_alloc_calls();
            }
            if (step > 1) {
                CHECK(attn_arena_peak(arena) == peak1, "%s, step %d: peak %d, %d after step 1", mname, step,
                      (int)attn_arena_peak(arena), (int)peak1);
                CHECK(test_alloc_calls() == calls1, "%s, step %d: %ld allocator calls since step 1 (blocks not reused)",
                      mname, step, test_alloc_calls() - calls1);
            }
        }
    next:
        attn_context_destroy(ctx);
    }
}

/* A second backward through a freed graph is an error; retain keeps it. */
TEST(backward_twice_needs_retain) {
    int s[2] = { 3, 5 }, i, bad;
    attn_context *ctx = new_ctx(1);
    test_rng r;
    attn_tensor *x, *loss;
    static float g1[15];
    test_rng_seed(&r, 21);
    x = param(ctx, "x", 2, s, &r, -1, 1);
    if (!CHECK(x != NULL, "param")) goto out;
    /* L = sum(tanh(x * x) * x): intermediates with grads of their own, and x used twice */
    loss = attn_sum(ctx, attn_mul(ctx, attn_tanh(ctx, attn_mul(ctx, x, x)), x));
    if (!CHECK(loss != NULL, "forward: %s", attn_error_message(ctx))) goto out;
    if (!CHECK(attn_backward(ctx, loss) == ATTN_OK, "first backward: %s", attn_error_message(ctx))) goto out;
    memcpy(g1, x->grad, sizeof g1);
    attn_error_clear(ctx);
    CHECK(attn_backward(ctx, loss) != ATTN_OK, "a second backward without retain must fail");
    CHECK(attn_error_status(ctx) != ATTN_OK && attn_error_message(ctx)[0], "no status or message for the second backward");
    CHECK(memcmp(g1, x->grad, sizeof g1) == 0, "the failed second backward changed the grads");
    attn_error_clear(ctx);
    /* retain: a fresh graph, backward twice with retain, then once more without */
    attn_params_zero_grad(ctx);
    loss = attn_sum(ctx, attn_mul(ctx, attn_tanh(ctx, attn_mul(ctx, x, x)), x));
    if (!CHECK(loss != NULL, "forward 2")) goto out;
    CHECK(attn_backward_ex(ctx, loss, NULL, 1) == ATTN_OK, "retain backward 1: %s", attn_error_message(ctx));
    bad = 0;
    for (i = 0; i < 15; i++) bad += x->grad[i] != g1[i];
    CHECK(bad == 0, "retain backward 1: %d grads differ from a plain backward", bad);
    CHECK(attn_backward_ex(ctx, loss, NULL, 1) == ATTN_OK, "retain backward 2: %s", attn_error_message(ctx));
    /* 2x and 3x up to the rounding of accumulating (1e-5 in the error measure);
       3x would show for 2 if the intermediates' grads carried over */
    {
        double got[15], want[15], e;
        size_t at;
        for (i = 0; i < 15; i++) { got[i] = x->grad[i]; want[i] = 2.0 * g1[i]; }
        e = worst_err(15, got, want, &at);
        CHECK(e <= 1e-5, "after two retained backwards grads are not 2x: [%d] %.9g vs %.9g (intermediate grads carried over?)",
              (int)at, got[at], want[at]);
        CHECK(attn_backward_ex(ctx, loss, NULL, 0) == ATTN_OK, "backward 3 (no retain) after retained ones: %s",
              attn_error_message(ctx));
        for (i = 0; i < 15; i++) { got[i] = x->grad[i]; want[i] = 3.0 * g1[i]; }
        e = worst_err(15, got, want, &at);
        CHECK(e <= 1e-5, "after three backwards grads are not 3x: [%d] %.9g vs %.9g", (int)at, got[at], want[at]);
    }
    attn_error_clear(ctx);
    CHECK(attn_backward_ex(ctx, loss, NULL, 0) != ATTN_OK && attn_error_message(ctx)[0],
          "backward after the graph was freed (retain 0) must fail with a message");
out:
    attn_context_destroy(ctx);
}

/* A non-scalar needs a seed; with one, d(seed . out)/dx comes back. */
/* A backward frees only the graph it went through: an independent loss built
   before it still backpropagates (as in PyTorch), and the freed one refuses. */
TEST(backward_frees_only_its_graph) {
    int s[1] = { 3 }, i, bad = 0;
    attn_context *ctx = new_ctx(1);
    test_rng r;
    attn_tensor *x, *y, *l1, *l2;
    test_rng_seed(&r, 21);
    x = param(ctx, "x", 1, s, &r, -1, 1);
    y = param(ctx, "y", 1, s, &r, -1, 1);
    l1 = attn_sum(ctx, attn_mul(ctx, x, x));
    l2 = attn_sum(ctx, attn_mul(ctx, y, y));
    if (!CHECK(l1 && l2, "forward: %s", attn_error_message(ctx))) goto out;
    CHECK(attn_backward(ctx, l1) == ATTN_OK, "backward l1: %s", attn_error_message(ctx));
    CHECK(attn_backward(ctx, l2) == ATTN_OK, "backward l2 after l1's: %s", attn_error_message(ctx));
    for (i = 0; i < 3; i++) {
        bad += fabs(x->grad[i] - 2.0 * x->data[i]) > 1e-6;
        bad += fabs(y->grad[i] - 2.0 * y->data[i]) > 1e-6;
    }
    CHECK(bad == 0, "%d grads are not 2x", bad);
    attn_error_clear(ctx);
    CHECK(attn_backward(ctx, l1) != ATTN_OK && attn_error_message(ctx)[0], "l1's graph was freed: must fail");
out:
    attn_context_destroy(ctx);
}

TEST(backward_non_scalar_needs_seed) {
    int s[2] = { 3, 4 }, i, bad = 0;
    attn_context *ctx = new_ctx(1);
    test_rng r;
    attn_tensor *x, *c, *y;
    float seed[12];
    test_rng_seed(&r, 5);
    x = param(ctx, "x", 2, s, &r, -1, 1);
    c = constant(ctx, 2, s, &r, -1, 1);
    test_fill(&r, seed, 12, -1, 1);
    y = attn_mul(ctx, x, c);
    if (!CHECK(y != NULL, "mul")) goto out;
    attn_error_clear(ctx);
    CHECK(attn_backward(ctx, y) != ATTN_OK, "attn_backward on a (3,4) tensor must fail");
    CHECK(attn_error_status(ctx) != ATTN_OK && attn_error_message(ctx)[0], "no status or message");
    attn_error_clear(ctx);
    CHECK(attn_backward_ex(ctx, y, NULL, 0) != ATTN_OK && attn_error_status(ctx) != ATTN_OK &&
              attn_error_message(ctx)[0],
          "attn_backward_ex without a seed on a (3,4) tensor must fail with a message");
    attn_error_clear(ctx);
    if (!CHECK(attn_backward_ex(ctx, y, seed, 0) == ATTN_OK, "with a seed: %s", attn_error_message(ctx))) goto out;
    for (i = 0; i < 12; i++) bad += fabs(x->grad[i] - (double)seed[i] * c->data[i]) > 1e-6;
    CHECK(bad == 0, "%d grads are not seed * c", bad);
    /* a NULL loss is an error, not a crash */
    attn_error_clear(ctx);
    CHECK(attn_backward(ctx, NULL) != ATTN_OK && attn_error_message(ctx)[0], "attn_backward(NULL) must fail");
out:
    attn_context_destroy(ctx);
}

/* Two backward passes add into the parameter grads; zero_grad clears them all. */
TEST(grads_accumulate_and_zero_grad_clears) {
    int sw[2] = { 4, 3 }, sx[2] = { 5, 3 }, sb[1] = { 4 }, i, bad;
    attn_context *ctx = new_ctx(1);
    test_rng r;
    attn_tensor *w, *b, *x, *loss;
    static float gw[12], gb[4];
    test_rng_seed(&r, 8);
    w = param(ctx, "w", 2, sw, &r, -1, 1);
    b = param(ctx, "b", 1, sb, &r, -1, 1);
    x = constant(ctx, 2, sx, &r, -1, 1);
    loss = attn_mean(ctx, attn_tanh(ctx, attn_linear(ctx, x, w, b)));
    if (!CHECK(loss && attn_backward(ctx, loss) == ATTN_OK, "pass 1: %s", attn_error_message(ctx))) goto out;
    memcpy(gw, w->grad, sizeof gw);
    memcpy(gb, b->grad, sizeof gb);
    loss = attn_mean(ctx, attn_tanh(ctx, attn_linear(ctx, x, w, b)));
    if (!CHECK(loss && attn_backward(ctx, loss) == ATTN_OK, "pass 2: %s", attn_error_message(ctx))) goto out;
    /* twice one pass's, up to rounding: the second pass adds into the grads
       inside the GEMM (beta = 1) and row by row, not as one final g + g */
    {
        double got[16], want[16], e;
        size_t at;
        for (i = 0; i < 12; i++) { got[i] = w->grad[i]; want[i] = 2.0 * gw[i]; }
        for (i = 0; i < 4; i++) { got[12 + i] = b->grad[i]; want[12 + i] = 2.0 * gb[i]; }
        e = worst_err(16, got, want, &at);
        CHECK(e <= 1e-5, "grads after two passes are not twice one pass's: [%d] %.9g vs %.9g (error %.3g)", (int)at,
              got[at], want[at], e);
    }
    attn_params_zero_grad(ctx);
    bad = 0;
    for (i = 0; i < 12; i++) bad += w->grad[i] != 0;
    for (i = 0; i < 4; i++) bad += b->grad[i] != 0;
    CHECK(bad == 0, "%d grads not zero after attn_params_zero_grad", bad);
    /* and the next pass starts from zero */
    loss = attn_mean(ctx, attn_tanh(ctx, attn_linear(ctx, x, w, b)));
    if (!CHECK(loss && attn_backward(ctx, loss) == ATTN_OK, "pass 3: %s", attn_error_message(ctx))) goto out;
    CHECK(memcmp(gw, w->grad, sizeof gw) == 0 && memcmp(gb, b->grad, sizeof gb) == 0,
          "after zero_grad a pass does not give one pass's grads");
out:
    attn_context_destroy(ctx);
}

/* detach: same data, no node, and no grad flows through it. */
TEST(detach_cuts_the_graph) {
    int s[2] = { 3, 4 }, i, bad = 0;
    attn_context *ctx = new_ctx(1);
    test_rng r;
    attn_tensor *x, *d, *h, *hd, *loss;
    test_rng_seed(&r, 4);
    x = param(ctx, "x", 2, s, &r, -1, 1);
    d = attn_detach(ctx, x);
    if (!CHECK(x && d, "detach: %s", attn_error_message(ctx))) goto out;
    CHECK(d->data == x->data && d->node == NULL && d->requires_grad == 0, "detach: data %p vs %p, node %p, rg %d",
          (void *)d->data, (void *)x->data, (void *)d->node, d->requires_grad);
    CHECK(same_shape(d, 2, s), "detach changed the shape");
    /* L = sum(detach(x) * x): dL/dx = x, not 2x */
    loss = attn_sum(ctx, attn_mul(ctx, d, x));
    if (!CHECK(loss && attn_backward(ctx, loss) == ATTN_OK, "backward: %s", attn_error_message(ctx))) goto out;
    for (i = 0; i < 12; i++) bad += x->grad[i] != x->data[i];
    CHECK(bad == 0, "%d grads went through detach (grad should be x, e.g. %g vs %g)", bad, (double)x->grad[0],
          (double)x->data[0]);
    /* detach of an intermediate: L = sum(detach(tanh(x)) * x) gives tanh(x) */
    attn_params_zero_grad(ctx);
    h = attn_tanh(ctx, x);
    hd = attn_detach(ctx, h);
    if (!CHECK(h && hd, "detach of an op's result")) goto out;
    CHECK(hd->data == h->data && hd->node == NULL && hd->requires_grad == 0, "detach of a result kept its node");
    CHECK(h->node != NULL, "detach changed the tensor it came from");
    loss = attn_sum(ctx, attn_mul(ctx, hd, x));
    if (!CHECK(loss && attn_backward(ctx, loss) == ATTN_OK, "backward 2: %s", attn_error_message(ctx))) goto out;
    bad = 0;
    for (i = 0; i < 12; i++) bad += x->grad[i] != h->data[i];
    CHECK(bad == 0, "%d grads differ from tanh(x)", bad);
    /* shares data: a write to x shows in the detached view */
    x->data[5] = 123.0f;
    CHECK(d->data[5] == 123.0f, "detach copied the data");
    attn_error_clear(ctx);
    CHECK(attn_detach(ctx, NULL) == NULL && failed_with(ctx, ATTN_ERR_INVALID_ARGUMENT, ATTN_ERR_INVALID_ARGUMENT),
          "attn_detach(NULL) must fail with invalid argument");
out:
    attn_context_destroy(ctx);
}

/* A view records a node only when a grad flows: views of a parameter do,
   views of its detach and views made with recording off do not. A view that
   kept the parameter's requires_grad and grad pointer without a node would get
   grads in its own layout written over the parameter's (a transpose's or a
   slice's would land in the wrong places), so none may flow at all. */
TEST(views_record_only_when_a_grad_flows) {
    int s[2] = { 3, 4 }, k, i, pass;
    attn_context *ctx = new_ctx(1);
    test_rng r;
    attn_tensor *x, *d;
    test_rng_seed(&r, 12);
    x = param(ctx, "x", 2, s, &r, -1, 1);
    d = x ? attn_detach(ctx, x) : NULL;
    if (!CHECK(x && d, "param: %s", attn_error_message(ctx))) goto out;
    for (pass = 0; pass < 3; pass++) { /* 0: of x, recorded; 1: of detach(x); 2: of x, recording off */
        attn_tensor *base = pass == 1 ? d : x;
        int was = attn_grad_enable(ctx, pass != 2);
        for (k = 0; k < 4; k++) {
            int shp[1] = { 12 };
            attn_tensor *v = k == 0 ? attn_transpose(ctx, base, 0, 1)
                           : k == 1 ? attn_slice(ctx, base, 1, 1, 3)
                           : k == 2 ? attn_reshape(ctx, base, 1, shp)
                                    : attn_tensor_contiguous(ctx, attn_transpose(ctx, base, 0, 1));
            attn_tensor *y;
            int nz = 0;
            if (!CHECK(v != NULL, "pass %d, view %d: %s", pass, k, attn_error_message(ctx))) continue;
            if (pass == 0 && k < 3) {
                CHECK(v->requires_grad == 1 && v->node != NULL && v->grad == NULL,
                      "view %d of a parameter: requires_grad %d, node %p, grad %p (want 1, a node, NULL)", k,
                      v->requires_grad, (void *)v->node, (void *)v->grad);
                continue;
            }
            CHECK(v->requires_grad == 0 && v->node == NULL && v->grad == NULL,
                  "pass %d, unrecorded view %d: requires_grad %d, node %p, grad %p (want 0, NULL, NULL)", pass, k,
                  v->requires_grad, (void *)v->node, (void *)v->grad);
            y = attn_tanh(ctx, v);
            CHECK(y && y->requires_grad == 0 && y->node == NULL, "pass %d: an op on unrecorded view %d recorded a node",
                  pass, k);
            for (i = 0; i < 12; i++) nz += x->grad[i] != 0;
            CHECK(nz == 0, "pass %d, unrecorded view %d: the parameter's grad changed", pass, k);
        }
        attn_grad_enable(ctx, was);
    }
out:
    attn_context_destroy(ctx);
}

/* attn_param_new / attn_param_add / attn_param_find / attn_params */
TEST(parameter_registry) {
    attn_context *ctx = new_ctx(1);
    int s[2] = { 3, 4 }, s2[1] = { 7 }, n, bad = 0, i;
    char name[16];
    attn_tensor *a, *b, *c, *t;
    attn_param *p;
    if (!CHECK(ctx != NULL, "context")) return;
    CHECK(attn_params(ctx) == NULL, "a new context has parameters");
    a = attn_param_new(ctx, "layer.weight", 2, s);
    if (!CHECK(a != NULL, "param_new: %s", attn_error_message(ctx))) goto out;
    CHECK(a->requires_grad == 1 && a->grad != NULL, "param_new: requires_grad %d grad %p", a->requires_grad,
          (void *)a->grad);
    for (i = 0; i < 12; i++) bad += a->data[i] != 0 || (a->grad && a->grad[i] != 0);
    CHECK(bad == 0, "param_new: data or grad not zero");
    /* param_add of an existing tensor: keeps its data, gets a zeroed grad */
    b = attn_tensor_new(ctx, 1, s2);
    if (!CHECK(b != NULL, "tensor")) goto out;
    for (i = 0; i < 7; i++) b->data[i] = (float)i + 0.5f;
    strcpy(name, "layer.bias");
    CHECK(attn_param_add(ctx, name, b) == ATTN_OK, "param_add: %s", attn_error_message(ctx));
    strcpy(name, "XXXXXXXXXX"); /* the name must have been copied */
    CHECK(b->requires_grad == 1 && b->grad != NULL, "param_add: requires_grad %d grad %p", b->requires_grad,
          (void *)b->grad);
    bad = 0;
    for (i = 0; i < 7; i++) bad += b->data[i] != (float)i + 0.5f || (b->grad && b->grad[i] != 0);
    CHECK(bad == 0, "param_add changed the data or left the grad nonzero");
    c = attn_param_new(ctx, "z", 0, NULL);
    CHECK(c != NULL && c->ndim == 0, "a scalar parameter: %s", attn_error_message(ctx));
    /* duplicates fail and change nothing */
    attn_error_clear(ctx);
    t = attn_tensor_new(ctx, 1, s2);
    CHECK(attn_param_add(ctx, "layer.weight", t) != ATTN_OK && attn_error_status(ctx) != ATTN_OK &&
              attn_error_message(ctx)[0],
          "param_add with a name in use must fail with a message");
    attn_error_clear(ctx);
    CHECK(attn_param_new(ctx, "layer.bias", 1, s2) == NULL && attn_error_status(ctx) != ATTN_OK &&
              attn_error_message(ctx)[0],
          "param_new with a name in use must fail with a message");
    attn_error_clear(ctx);
    CHECK(attn_param_add(ctx, NULL, t) != ATTN_OK, "param_add with a NULL name must fail");
    attn_error_clear(ctx);
    CHECK(attn_param_add(ctx, "nothing", NULL) != ATTN_OK, "param_add of a NULL tensor must fail");
    attn_error_clear(ctx);
    CHECK(attn_param_find(ctx, "nothing") == NULL, "a failed param_add registered its name");
    /* order and lookup */
    p = attn_params(ctx);
    n = 0;
    {
        static const char *const want[3] = { "layer.weight", "layer.bias", "z" };
        attn_tensor *wt[3];
        wt[0] = a; wt[1] = b; wt[2] = c;
        for (; p; p = p->next, n++)
            if (n < 3)
                CHECK(strcmp(p->name, want[n]) == 0 && p->tensor == wt[n], "parameter %d is '%s', want '%s'", n,
                      p->name, want[n]);
    }
    CHECK(n == 3, "%d parameters registered, want 3", n);
    p = attn_param_find(ctx, "layer.bias");
    CHECK(p && p->tensor == b, "find layer.bias");
    p = attn_param_find(ctx, "layer.weight");
    CHECK(p && p->tensor == a, "find layer.weight");
    CHECK(attn_param_find(ctx, "layer") == NULL && attn_param_find(ctx, "layer.weightx") == NULL &&
              attn_param_find(ctx, "XXXXXXXXXX") == NULL,
          "find matched a name that is not registered");
out:
    attn_context_destroy(ctx);
}

/* Shapes that do not fit and NULL inputs: NULL, a status and a message. */
TEST(bad_shapes_and_nulls_fail_cleanly) {
    static const int32_t idx_hi[3] = { 0, 5, 1 }, idx_neg[2] = { 1, -1 }, tgt_bad[3] = { 0, 4, 1 },
                         tgt_neg[3] = { 0, -1, 1 };
    attn_context *ctx = new_ctx(1);
    test_rng r;
    int s23[2] = { 2, 3 }, s45[2] = { 4, 5 }, s4[1] = { 4 }, s32[2] = { 3, 2 }, s34[2] = { 3, 4 }, s53[2] = { 5, 3 },
        s6[1] = { 6 }, s24[2] = { 2, 4 }, s234[3] = { 2, 3, 4 }, s345[3] = { 3, 4, 5 }, s3[1] = { 3 },
        s2[1] = { 2 }, shp[2] = { 5, 5 };
    attn_tensor *a23, *b45, *v4, *b32, *x34, *w53, *w54b, *v6, *a24, *a234, *b345, *v3, *e, *xs[2];
    int sw54[2] = { 5, 4 };
    if (!CHECK(ctx != NULL, "context")) return;
    test_rng_seed(&r, 2);
    a23 = param(ctx, "a23", 2, s23, &r, -1, 1);
    b45 = param(ctx, "b45", 2, s45, &r, -1, 1);
    v4 = param(ctx, "v4", 1, s4, &r, -1, 1);
    b32 = param(ctx, "b32", 2, s32, &r, -1, 1);
    x34 = param(ctx, "x34", 2, s34, &r, -1, 1);
    w53 = param(ctx, "w53", 2, s53, &r, -1, 1);
    w54b = param(ctx, "w54", 2, sw54, &r, -1, 1);
    v6 = param(ctx, "v6", 1, s6, &r, -1, 1);
    a24 = param(ctx, "a24", 2, s24, &r, -1, 1);
    a234 = param(ctx, "a234", 3, s234, &r, -1, 1);
    b345 = param(ctx, "b345", 3, s345, &r, -1, 1);
    v3 = param(ctx, "v3", 1, s3, &r, -1, 1);
    e = param(ctx, "emb", 2, s53, &r, -1, 1);
    if (!CHECK(a23 && b45 && v4 && b32 && x34 && w53 && w54b && v6 && a24 && a234 && b345 && v3 && e, "params")) goto out;
    attn_error_clear(ctx);
#define BAD(call, st, what) CHECK((call) == NULL && failed_with(ctx, st, st), "%s: want NULL, %s and a message", what, \
                                  attn_status_name(st))
#define BAD2(call, s1, s2, what) CHECK((call) == NULL && failed_with(ctx, s1, s2), "%s: want NULL, an error and a message", what)
    BAD(attn_matmul(ctx, a23, b45), ATTN_ERR_SHAPE, "matmul (2,3)@(4,5)");
    BAD(attn_matmul(ctx, a234, b345), ATTN_ERR_SHAPE, "matmul (2,3,4)@(3,4,5): batch 2 vs 3");
    BAD(attn_matmul(ctx, v4, x34), ATTN_ERR_SHAPE, "matmul of a 1-D tensor");
    BAD(attn_add(ctx, a23, v4), ATTN_ERR_SHAPE, "add (2,3)+(4)");
    BAD(attn_add(ctx, a23, b32), ATTN_ERR_SHAPE, "add (2,3)+(3,2)");
    BAD(attn_sub(ctx, a24, a23), ATTN_ERR_SHAPE, "sub (2,4)-(2,3)");
    BAD(attn_mul(ctx, a234, a24), ATTN_ERR_SHAPE, "mul (2,3,4)*(2,4)");
    BAD(attn_linear(ctx, x34, w53, NULL), ATTN_ERR_SHAPE, "linear x(3,4) w(5,3)");
    BAD(attn_linear(ctx, x34, w54b, v4), ATTN_ERR_SHAPE, "linear w(5,4) with a bias of 4");
    BAD(attn_linear(ctx, x34, v4, NULL), ATTN_ERR_SHAPE, "linear with a 1-D weight");
    xs[0] = a23; xs[1] = a24;
    BAD(attn_concat(ctx, xs, 2, 0), ATTN_ERR_SHAPE, "concat (2,3),(2,4) on dim 0");
    xs[0] = a23; xs[1] = a234;
    BAD(attn_concat(ctx, xs, 2, 1), ATTN_ERR_SHAPE, "concat of 2-D and 3-D");
    xs[0] = a23; xs[1] = a23;
    BAD2(attn_concat(ctx, xs, 2, 2), ATTN_ERR_INVALID_ARGUMENT, ATTN_ERR_SHAPE, "concat on dim 2 of 2-D tensors");
    BAD2(attn_concat(ctx, xs, 0, 0), ATTN_ERR_INVALID_ARGUMENT, ATTN_ERR_SHAPE, "concat of 0 tensors");
    BAD2(attn_embedding(ctx, e, idx_hi, 1, s3), ATTN_ERR_INVALID_ARGUMENT, ATTN_ERR_SHAPE, "embedding index 5 of V = 5");
    BAD2(attn_embedding(ctx, e, idx_neg, 1, s2), ATTN_ERR_INVALID_ARGUMENT, ATTN_ERR_SHAPE, "embedding index -1");
    BAD(attn_layernorm(ctx, x34, v6, NULL, 1e-5f), ATTN_ERR_SHAPE, "layernorm of (3,4) with a weight of 6");
    BAD(attn_layernorm(ctx, x34, v4, v3, 1e-5f), ATTN_ERR_SHAPE, "layernorm of (3,4) with a bias of 3");
    BAD(attn_rmsnorm(ctx, x34, v3, 1e-5f), ATTN_ERR_SHAPE, "rmsnorm of (3,4) with a weight of 3");
    BAD(attn_reshape(ctx, x34, 2, shp), ATTN_ERR_SHAPE, "reshape 12 elements to (5,5)");
    BAD2(attn_transpose(ctx, x34, 0, 2), ATTN_ERR_INVALID_ARGUMENT, ATTN_ERR_SHAPE, "transpose dim 2 of 2-D");
    BAD2(attn_slice(ctx, x34, 1, 2, 5), ATTN_ERR_INVALID_ARGUMENT, ATTN_ERR_SHAPE, "slice [2,5) of 4");
    BAD(attn_mse(ctx, x34, a23), ATTN_ERR_SHAPE, "mse (3,4) vs (2,3)");
    BAD2(attn_cross_entropy(ctx, x34, tgt_bad, -100, 0.0f), ATTN_ERR_INVALID_ARGUMENT, ATTN_ERR_SHAPE,
         "cross_entropy target 4 of C = 4");
    BAD2(attn_cross_entropy(ctx, x34, tgt_neg, -100, 0.0f), ATTN_ERR_INVALID_ARGUMENT, ATTN_ERR_SHAPE,
         "cross_entropy target -1 (ignore_index -100)");
    BAD2(attn_cross_entropy(ctx, a234, tgt_bad, -100, 0.0f), ATTN_ERR_INVALID_ARGUMENT, ATTN_ERR_SHAPE,
         "cross_entropy of 3-D logits");
    BAD2(attn_cross_entropy(ctx, x34, tgt_bad, -100, 1.5f), ATTN_ERR_INVALID_ARGUMENT, ATTN_ERR_SHAPE,
         "cross_entropy label_smoothing 1.5");
    /* NULL inputs */
    BAD(attn_add(ctx, NULL, x34), ATTN_ERR_INVALID_ARGUMENT, "add(NULL, x)");
    BAD(attn_mul(ctx, x34, NULL), ATTN_ERR_INVALID_ARGUMENT, "mul(x, NULL)");
    BAD(attn_matmul(ctx, NULL, x34), ATTN_ERR_INVALID_ARGUMENT, "matmul(NULL, x)");
    BAD(attn_linear(ctx, x34, NULL, NULL), ATTN_ERR_INVALID_ARGUMENT, "linear with a NULL weight");
    BAD(attn_linear(ctx, NULL, w54b, NULL), ATTN_ERR_INVALID_ARGUMENT, "linear of NULL");
    BAD(attn_scale(ctx, NULL, 2.0f), ATTN_ERR_INVALID_ARGUMENT, "scale(NULL)");
    BAD(attn_sum(ctx, NULL), ATTN_ERR_INVALID_ARGUMENT, "sum(NULL)");
    BAD(attn_mean(ctx, NULL), ATTN_ERR_INVALID_ARGUMENT, "mean(NULL)");
    BAD(attn_softmax(ctx, NULL), ATTN_ERR_INVALID_ARGUMENT, "softmax(NULL)");
    BAD(attn_log_softmax(ctx, NULL), ATTN_ERR_INVALID_ARGUMENT, "log_softmax(NULL)");
    BAD(attn_layernorm(ctx, NULL, NULL, NULL, 1e-5f), ATTN_ERR_INVALID_ARGUMENT, "layernorm(NULL)");
    BAD(attn_rmsnorm(ctx, NULL, NULL, 1e-5f), ATTN_ERR_INVALID_ARGUMENT, "rmsnorm(NULL)");
    BAD(attn_gelu(ctx, NULL), ATTN_ERR_INVALID_ARGUMENT, "gelu(NULL)");
    BAD(attn_relu(ctx, NULL), ATTN_ERR_INVALID_ARGUMENT, "relu(NULL)");
    BAD(attn_tanh(ctx, NULL), ATTN_ERR_INVALID_ARGUMENT, "tanh(NULL)");
    BAD(attn_dropout(ctx, NULL, 0.1f, 1), ATTN_ERR_INVALID_ARGUMENT, "dropout(NULL)");
    BAD(attn_reshape(ctx, NULL, 2, shp), ATTN_ERR_INVALID_ARGUMENT, "reshape(NULL)");
    BAD(attn_transpose(ctx, NULL, 0, 1), ATTN_ERR_INVALID_ARGUMENT, "transpose(NULL)");
    BAD(attn_slice(ctx, NULL, 0, 0, 1), ATTN_ERR_INVALID_ARGUMENT, "slice(NULL)");
    BAD(attn_contiguous(ctx, NULL), ATTN_ERR_INVALID_ARGUMENT, "contiguous(NULL)");
    BAD(attn_concat(ctx, NULL, 2, 0), ATTN_ERR_INVALID_ARGUMENT, "concat(NULL list)");
    xs[0] = a23; xs[1] = NULL;
    BAD(attn_concat(ctx, xs, 2, 0), ATTN_ERR_INVALID_ARGUMENT, "concat with a NULL entry");
    BAD(attn_embedding(ctx, NULL, idx_hi, 1, s3), ATTN_ERR_INVALID_ARGUMENT, "embedding of a NULL weight");
    BAD(attn_embedding(ctx, e, NULL, 1, s3), ATTN_ERR_INVALID_ARGUMENT, "embedding with NULL indices");
    BAD(attn_cross_entropy(ctx, NULL, tgt_bad, -100, 0.0f), ATTN_ERR_INVALID_ARGUMENT, "cross_entropy(NULL)");
    BAD(attn_cross_entropy(ctx, x34, NULL, -100, 0.0f), ATTN_ERR_INVALID_ARGUMENT, "cross_entropy, NULL targets");
    BAD(attn_mse(ctx, NULL, x34), ATTN_ERR_INVALID_ARGUMENT, "mse(NULL, x)");
    /* a NULL context is no crash */
    CHECK(attn_add(NULL, x34, x34) == NULL && attn_matmul(NULL, x34, x34) == NULL && attn_softmax(NULL, x34) == NULL,
          "ops with a NULL context must return NULL");
    CHECK(attn_backward(NULL, x34) != ATTN_OK, "attn_backward(NULL ctx) must fail");
    /* a chain that failed midway: NULL flows through and the first error stays readable */
    {
        attn_tensor *y = attn_gelu(ctx, attn_matmul(ctx, a23, b45));
        CHECK(y == NULL && attn_error_status(ctx) != ATTN_OK, "an op on a failed op's NULL must give NULL");
        attn_error_clear(ctx);
    }
#undef BAD
#undef BAD2
out:
    attn_context_destroy(ctx);
}

/* ======================================================================== */
/* Strided (non-contiguous) inputs                                          */
/* ======================================================================== */

/* Runs op on a view v of p (a transposed or sliced view) and on
   attn_contiguous(v), seeds both with w, and compares outputs and p's grads
   (and those of the extra parameters q). 1e-5 in the error measure: the two
   paths may use different kernel orders (a transA GEMM vs a copy first). */
enum { NC_MATMUL_A, NC_MATMUL_B, NC_MATMUL_BATCHED, NC_SOFTMAX, NC_SOFTMAX_SLICE, NC_LAYERNORM, NC_LOG_SOFTMAX, NC_ADD };

static attn_tensor *nc_view(attn_context *ctx, int kind, attn_tensor *p) {
    switch (kind) {
    case NC_MATMUL_BATCHED: return attn_transpose(ctx, p, 1, 2);
    case NC_SOFTMAX_SLICE: return attn_slice(ctx, p, 1, 2, 7);
    default: return attn_transpose(ctx, p, 0, 1);
    }
}

static attn_tensor *nc_op(attn_context *ctx, int kind, attn_tensor *v, attn_tensor *q, attn_tensor *q2) {
    switch (kind) {
    case NC_MATMUL_A:
    case NC_MATMUL_BATCHED: return attn_matmul(ctx, v, q);
    case NC_MATMUL_B: return attn_matmul(ctx, q, v);
    case NC_SOFTMAX:
    case NC_SOFTMAX_SLICE: return attn_softmax(ctx, v);
    case NC_LOG_SOFTMAX: return attn_log_softmax(ctx, v);
    case NC_LAYERNORM: return attn_layernorm(ctx, v, q, q2, 1e-5f);
    default: return attn_add(ctx, v, q);
    }
}

TEST(strided_inputs_match_contiguous_copies) {
    static const char *const names[] = { "matmul(A^T, B)", "matmul(A, B^T)", "matmul(A^T batched, B)",
                                         "softmax(x^T)", "softmax(x[:, 2:7])", "layernorm(x^T, w, b)",
                                         "log_softmax(x^T)", "add(x^T, row)" };
    /* p's shape (before the view) and q's, q2's */
    static const int pnd[] = { 2, 2, 3, 2, 2, 2, 2, 2 };
    static const int ps[][3] = { { 5, 3 }, { 6, 5 }, { 2, 5, 3 }, { 7, 3 }, { 3, 9 }, { 17, 4 }, { 5, 3 }, { 4, 3 } };
    static const int qnd[] = { 2, 2, 3, 0, 0, 1, 0, 1 };
    static const int qs[][3] = { { 5, 4 }, { 3, 5 }, { 2, 5, 4 }, { 0 }, { 0 }, { 17 }, { 0 }, { 4 } };
    int kind;
    for (kind = 0; kind < 8; kind++) {
        double out_v[2][256], gp[2][256], gq[2][256], gq2[2][256];
        size_t nout = 0, np = 0, nq = 0, i, at = 0;
        double e;
        int path, ok = 1;
        for (path = 0; path < 2 && ok; path++) {
            attn_context *ctx = new_ctx(1);
            test_rng r;
            attn_tensor *p, *q = NULL, *q2 = NULL, *v, *y;
            float seed[256];
            test_rng_seed(&r, 60 + (uint64_t)kind); /* same values on both paths */
            p = param(ctx, "p", pnd[kind], ps[kind], &r, -2, 2);
            if (qnd[kind]) q = param(ctx, "q", qnd[kind], qs[kind], &r, -2, 2);
            if (kind == NC_LAYERNORM) q2 = param(ctx, "q2", 1, qs[kind], &r, -2, 2);
            v = nc_view(ctx, kind, p);
            ok = CHECK(p && v && (!qnd[kind] || q), "%s: setup: %s", names[kind], attn_error_message(ctx));
            if (ok && path == 0)
                ok = CHECK(!attn_tensor_is_contiguous(v), "%s: the view is contiguous, the test tests nothing",
                           names[kind]);
            if (ok && path == 1) v = attn_contiguous(ctx, v);
            y = ok ? nc_op(ctx, kind, v, q, q2) : NULL;
            if (ok) ok = CHECK(y != NULL, "%s, path %d: %s", names[kind], path, attn_error_message(ctx));
            if (ok) {
                nout = attn_tensor_numel(y);
                np = attn_tensor_numel(p);
                nq = q ? attn_tensor_numel(q) : 0;
                for (i = 0; i < nout; i++) seed[i] = test_rng_range(&r, -1, 1);
                read_tensor(y, out_v[path]);
                ok = CHECK(attn_backward_ex(ctx, y, seed, 0) == ATTN_OK, "%s, path %d: backward: %s", names[kind], path,
                           attn_error_message(ctx));
            }
            if (ok) {
                for (i = 0; i < np; i++) gp[path][i] = p->grad[i];
                for (i = 0; i < nq; i++) gq[path][i] = q->grad[i];
                if (q2)
                    for (i = 0; i < nq; i++) gq2[path][i] = q2->grad[i];
            }
            attn_context_destroy(ctx);
        }
        if (!ok) continue;
        /* the error first: CHECK's arguments are evaluated in no fixed order */
        e = worst_err(nout, out_v[0], out_v[1], &at);
        CHECK(e <= 1e-5, "%s: output differs from the contiguous copy's at %d: %.9g vs %.9g", names[kind], (int)at,
              out_v[0][at], out_v[1][at]);
        e = worst_err(np, gp[0], gp[1], &at);
        CHECK(e <= 1e-5, "%s: grad of the viewed input differs at %d: %.9g vs %.9g", names[kind], (int)at, gp[0][at],
              gp[1][at]);
        if (nq) {
            e = worst_err(nq, gq[0], gq[1], &at);
            CHECK(e <= 1e-5, "%s: grad of the other input differs at %d: %.9g vs %.9g", names[kind], (int)at, gq[0][at],
                  gq[1][at]);
        }
        if (kind == NC_LAYERNORM) {
            e = worst_err(nq, gq2[0], gq2[1], &at);
            CHECK(e <= 1e-5, "%s: bias grad differs at %d: %.9g vs %.9g", names[kind], (int)at, gq2[0][at], gq2[1][at]);
        }
    }
}

/* A training step's loss, grads and dropout mask are bit-identical on 1
   thread and on 3 pool threads: the header promises that results never
   depend on the thread count. The linear layer is 1.6 MFLOP, past
   sgemm_mt's split threshold, so the threaded run really splits. */
enum { TH_N = 32, TH_IN = 128, TH_H = 192, TH_C = 10, TH_NG = TH_H * TH_IN + TH_H + TH_C * TH_H };

static int thread_step(attn_context *ctx, float *out /* 1 + TH_NG + TH_N * TH_H floats */) {
    int32_t tgt[TH_N];
    int sx[2] = { TH_N, TH_IN }, sw1[2] = { TH_H, TH_IN }, sb1[1] = { TH_H }, sw2[2] = { TH_C, TH_H }, i;
    test_rng r;
    attn_tensor *x, *w1, *b1, *w2, *h, *hd, *sc, *y, *loss;
    test_rng_seed(&r, 31);
    for (i = 0; i < TH_N; i++) tgt[i] = i % 7 == 3 ? -100 : (int32_t)(test_rng_u32(&r) % TH_C);
    w1 = param(ctx, "w1", 2, sw1, &r, -0.1f, 0.1f);
    b1 = param(ctx, "b1", 1, sb1, &r, -0.1f, 0.1f);
    w2 = param(ctx, "w2", 2, sw2, &r, -0.1f, 0.1f);
    x = constant(ctx, 2, sx, &r, -1, 1);
    if (!w1 || !b1 || !w2 || !x) return 0;
    h = attn_gelu(ctx, attn_layernorm(ctx, attn_linear(ctx, x, w1, b1), NULL, NULL, 1e-5f));
    hd = attn_dropout(ctx, h, 0.2f, 1);
    sc = attn_softmax(ctx, attn_scale(ctx, attn_matmul(ctx, hd, attn_transpose(ctx, hd, 0, 1)), 0.07f));
    y = attn_add(ctx, attn_matmul(ctx, sc, hd), h);
    loss = attn_cross_entropy(ctx, attn_linear(ctx, y, w2, NULL), tgt, -100, 0.05f);
    if (!loss || attn_backward(ctx, loss) != ATTN_OK) return 0;
    out[0] = loss->data[0];
    memcpy(out + 1, w1->grad, sizeof(float) * TH_H * TH_IN);
    memcpy(out + 1 + TH_H * TH_IN, b1->grad, sizeof(float) * TH_H);
    memcpy(out + 1 + TH_H * TH_IN + TH_H, w2->grad, sizeof(float) * TH_C * TH_H);
    memcpy(out + 1 + TH_NG, hd->data, sizeof(float) * TH_N * TH_H);
    return 1;
}

TEST(grads_do_not_depend_on_thread_count) {
    static float res[2][1 + TH_NG + TH_N * TH_H];
    int run, i, diff_loss, diff_grad = 0, diff_mask = 0, zeros = 0;
    test_pool pool;
    for (run = 0; run < 2; run++) {
        attn_context_desc d;
        attn_context *ctx;
        memset(&d, 0, sizeof d);
        d.seed = 17;
        if (run) d.threads = test_pool_threads(&pool, 3);
        ctx = attn_context_create(&d);
        if (!CHECK(ctx != NULL, "context")) return;
        CHECK(thread_step(ctx, res[run]), "%s: the step failed: %s", run ? "3 threads" : "1 thread",
              attn_error_message(ctx));
        attn_context_destroy(ctx);
    }
    test_pool_free(&pool);
    CHECK(pool.calls > 0, "the 3-thread context never called its parallel_for: the test tests nothing");
    diff_loss = test_bits(res[0][0]) != test_bits(res[1][0]);
    for (i = 1; i <= TH_NG; i++) diff_grad += test_bits(res[0][i]) != test_bits(res[1][i]);
    for (i = 1 + TH_NG; i < 1 + TH_NG + TH_N * TH_H; i++) {
        diff_mask += test_bits(res[0][i]) != test_bits(res[1][i]);
        zeros += res[0][i] == 0.0f;
    }
    CHECK(diff_loss == 0, "loss %.9g on 1 thread, %.9g on 3", (double)res[0][0], (double)res[1][0]);
    CHECK(diff_grad == 0, "%d of %d parameter grads differ between 1 and 3 threads", diff_grad, (int)TH_NG);
    CHECK(diff_mask == 0, "%d dropout outputs differ between 1 and 3 threads", diff_mask);
    CHECK(zeros > TH_N * TH_H / 10, "only %d of %d dropped at p = 0.2", zeros, TH_N * TH_H);
}

TEST_GROUP(autodiff) = {
    TEST_ENTRY(gradcheck_all_ops),
    TEST_ENTRY(cross_entropy_all_ignored_is_nan),
    TEST_ENTRY(dropout_mask_scale_and_grad),
    TEST_ENTRY(dropout_identity_cases),
    TEST_ENTRY(dropout_p_one_and_bad_p),
    TEST_ENTRY(grad_off_records_nothing_and_allocates_only_results),
    TEST_ENTRY(grad_off_strided_inputs_allocate_only_results),
    TEST_ENTRY(ops_on_constants_record_nothing),
    TEST_ENTRY(training_step_lives_between_mark_and_reset),
    TEST_ENTRY(backward_twice_needs_retain),
    TEST_ENTRY(backward_frees_only_its_graph),
    TEST_ENTRY(backward_non_scalar_needs_seed),
    TEST_ENTRY(grads_accumulate_and_zero_grad_clears),
    TEST_ENTRY(detach_cuts_the_graph),
    TEST_ENTRY(views_record_only_when_a_grad_flows),
    TEST_ENTRY(parameter_registry),
    TEST_ENTRY(bad_shapes_and_nulls_fail_cleanly),
    TEST_ENTRY(strided_inputs_match_contiguous_copies),
    TEST_ENTRY(grads_do_not_depend_on_thread_count),
    TEST_END
};
