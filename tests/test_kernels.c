/* tests/test_kernels.c - the row and vector kernels (softmax, log-softmax,
   layernorm, GELU, exp, add/sub/mul/scale/axpy/relu/sum/dot).

   Every kernel runs twice: the plain C reference (attn_kernels_get(NONE)) and
   the SIMD set in use (attn_kernels_get(attn_simd_active()); the reference
   again on ATTN_NO_SIMD builds or CPUs without SIMD). Both are compared with a
   double-precision ground truth computed here, and with each other. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

#define U24 (1.0 / 16777216.0) /* 2^-24, float's unit roundoff */

/* k[0] = the reference set, k[1] = the active set, then every other SIMD set
   this build and CPU have (on an AVX-512 machine: AVX2 as well), so each is
   held to the double truth. Returns how many (kernel_set_count too); 0 when
   the reference or the active set is missing. */
static int kernel_set_count;
static int kernel_sets(const attn_kernels *k[4]) {
    static const attn_simd all[3] = { ATTN_SIMD_AVX2, ATTN_SIMD_AVX512, ATTN_SIMD_NEON };
    int i, n = 2;
    k[0] = attn_kernels_get(ATTN_SIMD_NONE);
    k[1] = attn_kernels_get(attn_simd_active());
    for (i = 0; i < 3; i++)
        if (all[i] != attn_simd_active() && attn_kernels_get(all[i])) k[n++] = attn_kernels_get(all[i]);
    kernel_set_count = k[0] && k[1] ? n : 0;
    CHECK(k[0] != NULL && k[1] != NULL, "attn_kernels_get: reference %s, active (%s) %s", k[0] ? "ok" : "NULL",
          attn_simd_name(attn_simd_active()), k[1] ? "ok" : "NULL");
    return kernel_set_count;
}

static int is_sentinel(float x) { return test_bits(x) == TEST_SENTINEL_BITS; }

/* ------------------------------------------------------------------------ */
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__)) && !defined(__TINYC__) && \
    !defined(ATTN_NO_SIMD)
#  define TEST_X86_CPUID 1
/* Which sets the CPU has, asked independently of the library (gcc and clang's
   own cpuid table). */
static int cpu_has(attn_simd s) {
    __builtin_cpu_init();
    if (s == ATTN_SIMD_AVX2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (s == ATTN_SIMD_AVX512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
    return 0;
}
#endif

TEST(kernels_dispatch) {
    const attn_kernels *none = attn_kernels_get(ATTN_SIMD_NONE);
    attn_simd active = attn_simd_active(), s;
    CHECK(none != NULL && none->simd == ATTN_SIMD_NONE, "attn_kernels_get(NONE) must be the reference set");
    CHECK(attn_kernels_get(active) != NULL && attn_kernels_get(active)->simd == active,
          "attn_kernels_get(attn_simd_active()) must be the active set (%s)", attn_simd_name(active));
    for (s = ATTN_SIMD_AVX2; s <= ATTN_SIMD_AVX512; s = (attn_simd)(s + 1))
        if (attn_kernels_get(s)) CHECK(attn_kernels_get(s)->simd == s, "attn_kernels_get(%s) gives another set", attn_simd_name(s));
#if defined(ATTN_NO_SIMD)
    CHECK(active == ATTN_SIMD_NONE, "ATTN_NO_SIMD build runs %s", attn_simd_name(active));
#elif defined(TEST_X86_CPUID)
    {
        const char *cap = getenv("ATTN_SIMD");
        /* x86: a set is there exactly when the CPU has it (the build has AVX-512
           unless ATTN_NO_AVX512), and the widest runs unless ATTN_SIMD caps it */
#  if defined(ATTN_NO_AVX512)
        int has512 = 0;
#  else
        int has512 = cpu_has(ATTN_SIMD_AVX512);
#  endif
        attn_simd widest = has512 ? ATTN_SIMD_AVX512 : cpu_has(ATTN_SIMD_AVX2) ? ATTN_SIMD_AVX2 : ATTN_SIMD_NONE;
        attn_simd want = widest;
        if (cap && strcmp(cap, "none") == 0) want = ATTN_SIMD_NONE;
        if (cap && strcmp(cap, "avx2") == 0 && widest == ATTN_SIMD_AVX512) want = ATTN_SIMD_AVX2;
        CHECK((attn_kernels_get(ATTN_SIMD_AVX2) != NULL) == cpu_has(ATTN_SIMD_AVX2), "avx2 set %s, CPU has AVX2: %d",
              attn_kernels_get(ATTN_SIMD_AVX2) ? "present" : "NULL", cpu_has(ATTN_SIMD_AVX2));
        CHECK((attn_kernels_get(ATTN_SIMD_AVX512) != NULL) == has512, "avx512 set %s, CPU (and build) has AVX-512: %d",
              attn_kernels_get(ATTN_SIMD_AVX512) ? "present" : "NULL", has512);
        CHECK(attn_kernels_get(ATTN_SIMD_NEON) == NULL, "a NEON set on x86");
        CHECK(active == want, "active set %s, want %s (ATTN_SIMD=%s)", attn_simd_name(active), attn_simd_name(want),
              cap ? cap : "unset");
        if (!has512)
            printf("skip: the avx512 kernel set (this CPU lacks AVX-512 F/DQ/BW/VL or this build has ATTN_NO_AVX512): "
                   "its tests ran on %s only\n", attn_simd_name(active));
    }
#else
    for (s = ATTN_SIMD_AVX2; s <= ATTN_SIMD_AVX512; s = (attn_simd)(s + 1))
        CHECK((attn_kernels_get(s) != NULL) == (s == active), "attn_kernels_get(%s) is %s with %s active",
              attn_simd_name(s), attn_kernels_get(s) ? "present" : "NULL", attn_simd_name(active));
#endif
    CHECK(strcmp(attn_simd_name(ATTN_SIMD_NONE), "none") == 0, "simd name none: %s", attn_simd_name(ATTN_SIMD_NONE));
    CHECK(strcmp(attn_simd_name(ATTN_SIMD_AVX2), "avx2") == 0, "simd name avx2: %s", attn_simd_name(ATTN_SIMD_AVX2));
    CHECK(strcmp(attn_simd_name(ATTN_SIMD_NEON), "neon") == 0, "simd name neon: %s", attn_simd_name(ATTN_SIMD_NEON));
    CHECK(strcmp(attn_simd_name(ATTN_SIMD_AVX512), "avx512") == 0, "simd name avx512: %s", attn_simd_name(ATTN_SIMD_AVX512));
    if (attn_kernels_get(active)) {
        const attn_kernels *k = attn_kernels_get(active);
        CHECK(k->sgemm && k->softmax_rows && k->log_softmax_rows && k->layernorm_rows && k->gelu && k->exp &&
              k->add && k->sub && k->mul && k->scale && k->axpy && k->relu && k->sum && k->dot,
              "a function pointer of the active kernel set is NULL");
    }
}

/* ------------------------------------------------------------------------
   Softmax and log-softmax */

/* Row inputs chosen to break naive code. kind:
   0 uniform [-5, 5]
   1 1e4 + [-5, 5]    exp(x) overflows unless the max is subtracted
   2 -1e4 + [-20, 20] exp(x) underflows to 0 unless the max is subtracted
   3 [-5, 5] with every third entry -inf (a mask; entry 0 stays finite)
   4 [-100, 100]      exp(x - max) reaches far below float's range
   5 all 0.25         a uniform output */
#define SOFTMAX_KINDS 6
static void softmax_row_input(test_rng *rng, float *x, int cols, int kind) {
    int j;
    for (j = 0; j < cols; j++) {
        switch (kind) {
        case 0: x[j] = test_rng_range(rng, -5.0f, 5.0f); break;
        case 1: x[j] = 1e4f + test_rng_range(rng, -5.0f, 5.0f); break;
        case 2: x[j] = -1e4f + test_rng_range(rng, -20.0f, 20.0f); break;
        case 3: x[j] = j % 3 == 2 ? -INFINITY : test_rng_range(rng, -5.0f, 5.0f); break;
        case 4: x[j] = test_rng_range(rng, -100.0f, 100.0f); break;
        default: x[j] = 0.25f; break;
        }
    }
}

typedef void (*rows_fn)(int rows, int cols, const float *x, int ldx, float *y, int ldy);

/* Run fn on SOFTMAX_KINDS rows of `cols` with padded strides, compare with a
   double softmax / log-softmax.
   Tolerance, per element, from the float error analysis of max-subtracted
   softmax: exp's own error (the header promises < 4e-7 for SIMD exp; we allow
   5e-7), the rounding of x - max (relative 2^-24 of |x - max|, which exp turns
   into the same relative error), the sum of `cols` positive terms (at most
   (cols + 1) * 2^-24 relative) and the final scaling (2 roundings). Plus an
   absolute 1e-37 for results near float's underflow, where SIMD exp flushes
   to 0 by design.
   Log-softmax: y = (x - max) - log(sum), an absolute error of 2^-24 times
   (|x - max| + |lse| + |y|) for its three roundings, plus the relative error
   of the sum (as above) that log turns into an absolute one.
   Masked (-inf) entries must give exactly 0 (softmax) or -inf (log). */
static void check_rows_softmax(const char *who, rows_fn fn, int logmode, int cols, size_t offset, test_rng *rng) {
    const int rows = SOFTMAX_KINDS, ldx = cols + 3, ldy = cols + 5;
    test_buf xb, yb;
    float *x = test_buf_new(&xb, (size_t)rows * ldx, offset);
    float *y = test_buf_new(&yb, (size_t)rows * ldy, offset);
    double worst = 0.0, worst_got = 0.0, worst_want = 0.0;
    int r, j, worst_r = -1, worst_j = -1, mask_bad = 0, pad_bad = 0;
    if (!CHECK(x && y, "out of memory")) goto done;
    for (r = 0; r < rows; r++) {
        softmax_row_input(rng, x + (size_t)r * ldx, cols, r);
        /* x's padding is NaN: a kernel that reads past cols poisons the row */
        for (j = cols; j < ldx; j++) x[(size_t)r * ldx + j] = NAN;
    }
    fn(rows, cols, x, ldx, y, ldy);
    for (r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * ldx, *yr = y + (size_t)r * ldy;
        double m = -INFINITY, s = 0.0, lse;
        for (j = 0; j < cols; j++) m = xr[j] > m ? xr[j] : m;
        for (j = 0; j < cols; j++) s += exp((double)xr[j] - m);
        lse = log(s);
        for (j = 0; j < cols; j++) {
            double d = (double)xr[j] - m, want, tol, err;
            if (xr[j] == -INFINITY) {
                if (logmode ? !(yr[j] == -INFINITY) : !(yr[j] == 0.0f)) mask_bad++;
                continue;
            }
            if (logmode) {
                want = d - lse;
                tol = 5e-7 + U24 * (fabs(d) + fabs(lse) + fabs(want) + cols + 4);
            } else {
                want = exp(d) / s;
                tol = want * (5e-7 + U24 * (fabs(d) + cols + 4)) + 1e-37;
            }
            err = fabs((double)yr[j] - want) / tol;
            if (!(err <= worst)) { /* NaN counts as the worst */
                worst = err != err ? INFINITY : err;
                worst_r = r; worst_j = j; worst_got = yr[j]; worst_want = want;
            }
        }
        for (j = cols; j < ldy; j++) pad_bad += !is_sentinel(yr[j]);
    }
    CHECK(worst <= 1.0, "%s cols=%d offset=%d: row %d (kind %d) col %d: got %.9g want %.9g (%.3g x tolerance)",
          who, cols, (int)offset, worst_r, worst_r, worst_j, worst_got, worst_want, worst);
    CHECK(mask_bad == 0, "%s cols=%d: %d masked (-inf) entries are not %s", who, cols, mask_bad, logmode ? "-inf" : "0");
    CHECK(pad_bad == 0 && test_buf_guards_ok(&yb), "%s cols=%d: %d floats of y's row padding written (or guards hit)",
          who, cols, pad_bad);
done:
    test_buf_free(&xb);
    test_buf_free(&yb);
}

static const int row_lengths[] = { 1, 2, 3, 7, 8, 9, 16, 17, 63, 64, 65, 129, 1000 };
#define N_ROW_LENGTHS (int)(sizeof row_lengths / sizeof row_lengths[0])

TEST(kernels_softmax_vs_double) {
    const attn_kernels *k[4];
    test_rng rng;
    int s, i;
    if (!kernel_sets(k)) return;
    test_rng_seed(&rng, 1);
    for (s = 0; s < kernel_set_count; s++)
        for (i = 0; i < N_ROW_LENGTHS; i++)
            check_rows_softmax(attn_simd_name(k[s]->simd), k[s]->softmax_rows, 0, row_lengths[i], (size_t)(i & 1), &rng);
}

TEST(kernels_log_softmax_vs_double) {
    const attn_kernels *k[4];
    test_rng rng;
    int s, i;
    if (!kernel_sets(k)) return;
    test_rng_seed(&rng, 2);
    for (s = 0; s < kernel_set_count; s++)
        for (i = 0; i < N_ROW_LENGTHS; i++)
            check_rows_softmax(attn_simd_name(k[s]->simd), k[s]->log_softmax_rows, 1, row_lengths[i],
                               (size_t)(i & 1), &rng);
}

/* SIMD vs reference directly, the public entry points vs the active set, and
   x == y (allowed by the header) vs out of place. */
TEST(kernels_softmax_simd_vs_ref_public_inplace) {
    const attn_kernels *k[4];
    const int rows = 7, cols = 333, ld = 340;
    float *x = (float *)malloc(sizeof(float) * rows * ld);
    float *y[2], *pub, *inplace;
    test_rng rng;
    int mode, r, j;
    if (!kernel_sets(k) || !CHECK(x != NULL, "out of memory")) { free(x); return; }
    y[0] = (float *)malloc(sizeof(float) * rows * ld);
    y[1] = (float *)malloc(sizeof(float) * rows * ld);
    pub = (float *)malloc(sizeof(float) * rows * ld);
    inplace = (float *)malloc(sizeof(float) * rows * ld);
    if (!CHECK(y[0] && y[1] && pub && inplace, "out of memory")) goto done;
    test_rng_seed(&rng, 3);
    for (r = 0; r < rows; r++) softmax_row_input(&rng, x + r * ld, cols, r % SOFTMAX_KINDS);
    for (j = 0; j < rows * ld; j++) if (j % ld >= cols) x[j] = 0.0f;
    for (mode = 0; mode < 2; mode++) {
        rows_fn f0 = mode ? k[0]->log_softmax_rows : k[0]->softmax_rows;
        rows_fn f1 = mode ? k[1]->log_softmax_rows : k[1]->softmax_rows;
        double worst = 0.0;
        memset(y[0], 0, sizeof(float) * rows * ld);
        memset(y[1], 0, sizeof(float) * rows * ld);
        memset(pub, 0, sizeof(float) * rows * ld);
        f0(rows, cols, x, ld, y[0], ld);
        f1(rows, cols, x, ld, y[1], ld);
        if (mode) attn_log_softmax_rows(NULL, rows, cols, x, ld, pub, ld);
        else attn_softmax_rows(NULL, rows, cols, x, ld, pub, ld);
        memcpy(inplace, x, sizeof(float) * rows * ld);
        f1(rows, cols, inplace, ld, inplace, ld);
        /* SIMD vs reference: each is within the tolerance of
           check_rows_softmax of the double truth, so they must be within
           the sum of the two (twice that tolerance) of each other. */
        for (r = 0; r < rows; r++) {
            const float *xr = x + r * ld;
            double m = -INFINITY, s = 0.0, lse;
            for (j = 0; j < cols; j++) m = xr[j] > m ? xr[j] : m;
            for (j = 0; j < cols; j++) s += exp((double)xr[j] - m);
            lse = log(s);
            for (j = 0; j < cols; j++) {
                double a = y[0][r * ld + j], b = y[1][r * ld + j], d = (double)xr[j] - m, e;
                if (a == b) continue; /* also -inf == -inf for masked log entries */
                if (mode) e = fabs(a - b) / (2 * (5e-7 + U24 * (fabs(d) + fabs(lse) + fabs(a) + cols + 4)));
                else e = fabs(a - b) / (2 * (fabs(a) * (5e-7 + U24 * (fabs(d) + cols + 4)) + 1e-37));
                if (!(e <= worst)) worst = e != e ? INFINITY : e;
            }
        }
        CHECK(worst <= 1.0, "%s: SIMD and reference differ by %.3g x tolerance", mode ? "log_softmax" : "softmax", worst);
        CHECK(memcmp(pub, y[1], sizeof(float) * rows * ld) == 0,
              "attn_%s_rows(NULL, ...) differs from attn_kernels_get(attn_simd_active())", mode ? "log_softmax" : "softmax");
        /* in place must be bit-identical to out of place (padding aside) */
        {
            int diff = 0;
            for (r = 0; r < rows; r++)
                if (memcmp(inplace + r * ld, y[1] + r * ld, sizeof(float) * cols) != 0) diff++;
            CHECK(diff == 0, "%s with x == y: %d rows differ from the out-of-place result", mode ? "log_softmax" : "softmax", diff);
        }
    }
done:
    free(x); free(y[0]); free(y[1]); free(pub); free(inplace);
}

/* The public row kernels ignore impossible arguments instead of crashing. */
TEST(kernels_rows_bad_arguments_touch_nothing) {
    float x[8] = { 1, 2, 3, 4, 5, 6, 7, 8 }, y[8];
    int i, touched = 0;
    for (i = 0; i < 8; i++) y[i] = 42.0f;
    attn_softmax_rows(NULL, 2, 4, x, 3, y, 4);   /* ldx < cols */
    attn_softmax_rows(NULL, 2, 4, x, 4, y, 3);   /* ldy < cols */
    attn_softmax_rows(NULL, -1, 4, x, 4, y, 4);  /* negative rows */
    attn_softmax_rows(NULL, 2, 4, NULL, 4, y, 4);
    attn_log_softmax_rows(NULL, 2, -4, x, 4, y, 4);
    attn_layernorm_rows(NULL, 2, 4, x, 2, NULL, NULL, 1e-5f, y, 4, NULL, NULL);
    attn_layernorm_rows(NULL, 2, 4, x, 4, NULL, NULL, 1e-5f, NULL, 4, NULL, NULL);
    for (i = 0; i < 8; i++) touched += y[i] != 42.0f;
    CHECK(touched == 0, "%d outputs written by calls with bad arguments", touched);
}

/* ------------------------------------------------------------------------
   Layernorm */

typedef void (*layernorm_fn)(int rows, int cols, const float *x, int ldx, const float *gamma, const float *beta,
                             float eps, float *y, int ldy, float *mean, float *rstd);

/* kind: 0 [-2, 2] + 3; 1 [-100, 100]; 2 a constant row (variance 0, so y = beta);
   3 1000 + [-1, 1] (cancellation in x - mean) */
#define LAYERNORM_KINDS 4
static void layernorm_row_input(test_rng *rng, float *x, int cols, int kind) {
    int j;
    for (j = 0; j < cols; j++) {
        switch (kind) {
        case 0: x[j] = 3.0f + test_rng_range(rng, -2.0f, 2.0f); break;
        case 1: x[j] = test_rng_range(rng, -100.0f, 100.0f); break;
        case 2: x[j] = 3.7f; break;
        default: x[j] = 1000.0f + test_rng_range(rng, -1.0f, 1.0f); break;
        }
    }
}

/* Tolerances from the float error analysis of two-pass layernorm (all as
   bounds, not estimates, so they cannot flake on another platform):
   - mean: a sum of n terms, error <= (n + 2) 2^-24 sum|x| / n =: dmu
   - var: sum of n squares, relative (n + 4) 2^-24, plus dmu^2 (a wrong mean
     adds n * dmu^2 to the sum of squares)
   - rstd: half var's relative error (sqrt) and 3 roundings
   - y: (dmu + 2^-24 |x - mu|) * rstd * |gamma| from x - mean, |v| times rstd's
     error, and the roundings of the product and the add of beta.
   These are tight enough to catch a biased/unbiased variance mix-up (relative
   1/n in var: 5e-4 in rstd for n = 1000, against a tolerance of ~3e-5). */
/* The double-precision truth for one layernorm row and the error bound of a
   float implementation (see the comment above check_layernorm). */
typedef struct ln_row {
    double mu, rs, dmu, rs_rel;
} ln_row;

static ln_row ln_row_truth(const float *xr, int cols, double eps) {
    ln_row t;
    double var = 0.0, sabs = 0.0, var_err;
    int j;
    t.mu = 0.0;
    for (j = 0; j < cols; j++) { t.mu += xr[j]; sabs += fabs(xr[j]); }
    t.mu /= cols;
    for (j = 0; j < cols; j++) var += (xr[j] - t.mu) * (xr[j] - t.mu);
    var /= cols;
    t.rs = 1.0 / sqrt(var + eps);
    t.dmu = (cols + 2) * U24 * sabs / cols;
    var_err = (cols + 4) * U24 * var + t.dmu * t.dmu;
    t.rs_rel = 0.5 * var_err / (var + eps) + 3 * U24;
    return t;
}

/* truth of y_j, and its tolerance */
static double ln_want(const ln_row *t, float x, double g, double b, double *tol) {
    double v = (x - t->mu) * t->rs, want = v * g + b;
    *tol = 2.0 * (fabs(g) * ((t->dmu + U24 * fabs(x - t->mu)) * t->rs + fabs(v) * t->rs_rel + 2 * U24 * fabs(v)) +
                  U24 * (fabs(want) + fabs(b))) + 1e-30;
    return want;
}

static void check_layernorm(const char *who, layernorm_fn fn, int cols, int affine, int stats, size_t offset,
                            test_rng *rng) {
    const int rows = LAYERNORM_KINDS, ldx = cols + 2, ldy = cols + 3;
    const float eps = 1e-5f;
    test_buf xb, yb, gb, bb, mb, rb;
    float *x = test_buf_new(&xb, (size_t)rows * ldx, offset);
    float *y = test_buf_new(&yb, (size_t)rows * ldy, offset);
    float *g = test_buf_new(&gb, (size_t)cols, offset);
    float *b = test_buf_new(&bb, (size_t)cols, offset);
    float *mean = test_buf_new(&mb, (size_t)rows, 0);
    float *rstd = test_buf_new(&rb, (size_t)rows, 0);
    double worst = 0.0, worst_got = 0, worst_want = 0, worst_mean = 0, worst_rstd = 0;
    int r, j, worst_r = -1, worst_j = -1, pad_bad = 0;
    if (!CHECK(x && y && g && b && mean && rstd, "out of memory")) goto done;
    for (r = 0; r < rows; r++) {
        layernorm_row_input(rng, x + (size_t)r * ldx, cols, r);
        for (j = cols; j < ldx; j++) x[(size_t)r * ldx + j] = NAN;
    }
    test_fill(rng, g, (size_t)cols, 0.5f, 2.0f);
    test_fill(rng, b, (size_t)cols, -1.0f, 1.0f);
    fn(rows, cols, x, ldx, affine ? g : NULL, affine ? b : NULL, eps, y, ldy, stats ? mean : NULL, stats ? rstd : NULL);
    for (r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * ldx, *yr = y + (size_t)r * ldy;
        ln_row truth = ln_row_truth(xr, cols, eps);
        for (j = 0; j < cols; j++) {
            double tol, want = ln_want(&truth, xr[j], affine ? g[j] : 1.0, affine ? b[j] : 0.0, &tol);
            double err = fabs(yr[j] - want) / tol;
            if (!(err <= worst)) {
                worst = err != err ? INFINITY : err;
                worst_r = r; worst_j = j; worst_got = yr[j]; worst_want = want;
            }
        }
        if (stats) {
            double em = fabs(mean[r] - truth.mu) / (truth.dmu + U24 * fabs(truth.mu) + 1e-30);
            double er = fabs(rstd[r] - truth.rs) / (2.0 * truth.rs * truth.rs_rel);
            if (!(em <= worst_mean)) worst_mean = em != em ? INFINITY : em;
            if (!(er <= worst_rstd)) worst_rstd = er != er ? INFINITY : er;
        }
        for (j = cols; j < ldy; j++) pad_bad += !is_sentinel(yr[j]);
    }
    CHECK(worst <= 1.0, "%s cols=%d affine=%d: row %d col %d: got %.9g want %.9g (%.3g x tolerance)", who, cols,
          affine, worst_r, worst_j, worst_got, worst_want, worst);
    CHECK(worst_mean <= 1.0 && worst_rstd <= 1.0, "%s cols=%d: mean off by %.3g x tolerance, rstd by %.3g x", who, cols,
          worst_mean, worst_rstd);
    if (!stats) /* NULL mean/rstd: the buffers we did not pass stay untouched */
        for (r = 0; r < rows; r++) pad_bad += !is_sentinel(mean[r]) + !is_sentinel(rstd[r]);
    CHECK(pad_bad == 0 && test_buf_guards_ok(&yb) && test_buf_guards_ok(&mb) && test_buf_guards_ok(&rb),
          "%s cols=%d: %d floats outside the outputs written", who, cols, pad_bad);
done:
    test_buf_free(&xb); test_buf_free(&yb); test_buf_free(&gb);
    test_buf_free(&bb); test_buf_free(&mb); test_buf_free(&rb);
}

TEST(kernels_layernorm_vs_double) {
    const attn_kernels *k[4];
    test_rng rng;
    int s, i, variant;
    if (!kernel_sets(k)) return;
    test_rng_seed(&rng, 4);
    for (s = 0; s < kernel_set_count; s++)
        for (i = 0; i < N_ROW_LENGTHS; i++)
            for (variant = 0; variant < 4; variant++) /* gamma/beta on/off x mean/rstd on/off */
                check_layernorm(attn_simd_name(k[s]->simd), k[s]->layernorm_rows, row_lengths[i],
                                variant & 1, (variant >> 1) & 1, (size_t)(i & 1), &rng);
}

TEST(kernels_layernorm_simd_vs_ref_and_public) {
    const attn_kernels *k[4];
    enum { ROWS = 5, COLS = 777 };
    static float x[ROWS * COLS], g[COLS], b[COLS], y0[ROWS * COLS], y1[ROWS * COLS], yp[ROWS * COLS];
    float m0[ROWS], m1[ROWS], mp[ROWS], r0[ROWS], r1[ROWS], rp[ROWS];
    double worst = 0.0;
    test_rng rng;
    int i;
    if (!kernel_sets(k)) return;
    test_rng_seed(&rng, 5);
    test_fill(&rng, x, ROWS * COLS, -3.0f, 5.0f);
    test_fill(&rng, g, COLS, -2.0f, 2.0f);
    test_fill(&rng, b, COLS, -1.0f, 1.0f);
    k[0]->layernorm_rows(ROWS, COLS, x, COLS, g, b, 1e-5f, y0, COLS, m0, r0);
    k[1]->layernorm_rows(ROWS, COLS, x, COLS, g, b, 1e-5f, y1, COLS, m1, r1);
    attn_layernorm_rows(NULL, ROWS, COLS, x, COLS, g, b, 1e-5f, yp, COLS, mp, rp);
    /* Each is within the check_layernorm bound of the truth, so SIMD and
       reference are within the sum of both (twice the bound). */
    for (i = 0; i < ROWS * COLS; i++) {
        ln_row truth = ln_row_truth(x + (i / COLS) * COLS, COLS, 1e-5);
        double tol, e;
        ln_want(&truth, x[i], g[i % COLS], b[i % COLS], &tol);
        e = fabs((double)y0[i] - y1[i]) / (2.0 * tol);
        if (!(e <= worst)) worst = e != e ? INFINITY : e;
    }
    CHECK(worst <= 1.0, "layernorm SIMD vs reference: %.3g x tolerance", worst);
    CHECK(memcmp(yp, y1, sizeof yp) == 0 && memcmp(mp, m1, sizeof mp) == 0 && memcmp(rp, r1, sizeof rp) == 0,
          "attn_layernorm_rows(NULL, ...) differs from the active kernel set");
    for (i = 0; i < ROWS; i++) {
        ln_row t = ln_row_truth(x + i * COLS, COLS, 1e-5);
        CHECK(fabs(m0[i] - m1[i]) <= 2 * (t.dmu + U24 * fabs(t.mu)) && fabs(r0[i] - r1[i]) <= 4 * t.rs * t.rs_rel,
              "row %d: mean %.9g vs %.9g, rstd %.9g vs %.9g", i, m0[i], m1[i], r0[i], r1[i]);
    }
}

/* ------------------------------------------------------------------------
   GELU: y = x Phi(x) = 0.5 x erfc(-x / sqrt 2) */

static double gelu_double(double x) { return 0.5 * x * erfc(-x / sqrt(2.0)); }

/* Relative error bounds, measured on a dense grid over [-10, 10] where
   |gelu| > 1e-30 (below that only an absolute 1e-30 is asked):
   - SIMD (fitted erfc, exp(-x^2/2) from a split x): 1e-6, about 8 ulp.
     Measured: 4.5e-7 on AVX2 and aarch64 NEON, 5.7e-7 on armhf NEON (no
     FMA, reciprocal by Newton steps). Tight enough to catch a wrong
     coefficient (1e-5 change in one gives ~2e-6) or a lost hi/lo term.
   - reference (erfcf of the rounded u = -x/sqrt2, plus a first-order
     correction for that rounding): 1e-6. Measured 2.6e-7 at x = -9.86;
     without the correction it was 5.2e-6 (2 u^2 2^-24 at u = 7), so this
     bound catches a lost correction. */
#define GELU_TOL_SIMD 1e-6
#define GELU_TOL_REF 1e-6

static double gelu_tol(const attn_kernels *k) { return k->simd == ATTN_SIMD_NONE ? GELU_TOL_REF : GELU_TOL_SIMD; }

/* worst relative error of k->gelu over x[0..n), reported with where it was */
static void gelu_worst(const attn_kernels *k, const float *x, float *y, size_t n, double *worst, float *at, float *got) {
    size_t i;
    k->gelu(n, x, y);
    *worst = 0.0;
    for (i = 0; i < n; i++) {
        double want = gelu_double(x[i]);
        double e = fabs(want) > 1e-30 ? fabs(y[i] - want) / fabs(want) : fabs(y[i] - want) / 1e-30 * gelu_tol(k);
        if (!(e <= *worst)) {
            *worst = e != e ? INFINITY : e;
            *at = x[i];
            *got = y[i];
        }
    }
}

TEST(kernels_gelu_accuracy_dense_grid) {
    const attn_kernels *k[4];
    size_t n = test_quick() ? 100001 : 400001, i;
    float *x = (float *)malloc(n * sizeof(float)), *y = (float *)malloc(n * sizeof(float));
    float *y2 = (float *)malloc(n * sizeof(float));
    int s;
    if (!kernel_sets(k) || !CHECK(x && y && y2, "out of memory")) goto done;
    for (i = 0; i < n; i++) x[i] = (float)(-10.0 + 20.0 * (double)i / (double)(n - 1));
    for (s = 0; s < kernel_set_count; s++) {
        double worst;
        float at = 0, got = 0;
        gelu_worst(k[s], x, y, n, &worst, &at, &got);
        CHECK(worst <= gelu_tol(k[s]), "%s gelu: max relative error %.3g > %.0e at x=%.9g (got %.9g, want %.9g)",
              attn_simd_name(k[s]->simd), worst, gelu_tol(k[s]), at, got, gelu_double(at));
    }
    /* SIMD vs reference: within the sum of both bounds */
    k[0]->gelu(n, x, y);
    k[1]->gelu(n, x, y2);
    {
        double worst = 0.0;
        size_t wi = 0;
        for (i = 0; i < n; i++) {
            double e = fabs((double)y[i] - y2[i]) / ((GELU_TOL_REF + GELU_TOL_SIMD) * fabs(gelu_double(x[i])) + 1e-30);
            if (!(e <= worst)) { worst = e != e ? INFINITY : e; wi = i; }
        }
        CHECK(worst <= 1.0, "gelu SIMD vs reference at x=%.9g: %.9g vs %.9g", x[wi], y2[wi], y[wi]);
    }
    /* public entry point = active set, and y == x works */
    attn_vec_gelu(n, x, y);
    CHECK(memcmp(y, y2, n * sizeof(float)) == 0, "attn_vec_gelu differs from the active kernel set");
    memcpy(y, x, n * sizeof(float));
    attn_vec_gelu(n, y, y);
    CHECK(memcmp(y, y2, n * sizeof(float)) == 0, "attn_vec_gelu in place (y == x) differs from out of place");
done:
    free(x); free(y); free(y2);
}

/* Inputs far outside [-10, 10]: GELU(x) is x for large x (Phi(x) = 1 in float
   from x ~ 5.4) and -0 (underflow) for large negative x. 10^0.05 steps up to
   float's max, plus +inf (GELU(+inf) = +inf, as in PyTorch) and NaN -> NaN.
   Same tolerance as on the grid. */
TEST(kernels_gelu_large_and_special_inputs) {
    const attn_kernels *k[4];
    float x[1700], y[1700];
    size_t n = 0, i;
    double e10;
    int s;
    if (!kernel_sets(k)) return;
    for (e10 = 1.0; e10 <= 38.5; e10 += 0.05) {
        double v = pow(10.0, e10);
        if (v > 3.4e38) v = 3.4e38;
        x[n++] = (float)v;
        x[n++] = (float)-v;
    }
    x[n++] = INFINITY;
    x[n++] = 0.0f;
    x[n++] = -0.0f;
    for (s = 0; s < kernel_set_count; s++) {
        int bad = 0;
        float bad_x = 0, bad_y = 0;
        k[s]->gelu(n, x, y);
        for (i = 0; i < n; i++) {
            double want = isinf(x[i]) ? x[i] : gelu_double(x[i]);
            int ok = isinf(x[i]) ? y[i] == x[i] : fabs(y[i] - want) <= gelu_tol(k[s]) * fabs(want) + 1e-30;
            if (!ok) {
                if (!bad) { bad_x = x[i]; bad_y = y[i]; }
                bad++;
            }
        }
        CHECK(bad == 0, "%s gelu: %d of %d large inputs wrong, first x=%g -> %g (want %g)", attn_simd_name(k[s]->simd),
              bad, (int)n, bad_x, bad_y, isinf(bad_x) ? bad_x : gelu_double(bad_x));
        {
            float nan_in = NAN, out = 0.0f;
            k[s]->gelu(1, &nan_in, &out);
            CHECK(out != out, "%s gelu(NaN) = %g, want NaN", attn_simd_name(k[s]->simd), out);
        }
    }
}

/* ------------------------------------------------------------------------
   exp. The header: SIMD exp has relative error < 4e-7 on [-87.3, 88.3],
   gives 0 below -87.34 and +inf above 88.37; the test holds it to exactly
   that (measured: 7.6e-8 on AVX2 and aarch64, 9.6e-8 on armhf). The
   reference is libm's expf, held to 2.4e-7 (2 ulp; glibc's is < 1 ulp,
   measured 6e-8) over its whole range, and to an absolute 2^-149 (one
   denormal step) where the result is denormal. */
#define EXP_TOL_SIMD 4e-7
#define EXP_TOL_REF 2.4e-7

TEST(kernels_exp_accuracy_and_range) {
    const attn_kernels *k[4];
    size_t n = test_quick() ? 200001 : 1000001, i;
    float *x = (float *)malloc(n * sizeof(float)), *y = (float *)malloc(n * sizeof(float));
    int s;
    if (!kernel_sets(k) || !CHECK(x && y, "out of memory")) goto done;
    for (s = 0; s < kernel_set_count; s++) {
        const attn_kernels *kk = k[s];
        int simd = kk->simd != ATTN_SIMD_NONE;
        double tol = simd ? EXP_TOL_SIMD : EXP_TOL_REF, worst = 0.0;
        float at = 0, got = 0;
        long below_bad = 0, above_bad = 0;
        /* the claimed accurate range, densely */
        for (i = 0; i < n; i++) x[i] = (float)(-87.3 + (88.3 + 87.3) * (double)i / (double)(n - 1));
        kk->exp(n, x, y);
        for (i = 0; i < n; i++) {
            double want = exp((double)x[i]), e = fabs(y[i] - want) / want;
            if (!(e <= worst)) { worst = e != e ? INFINITY : e; at = x[i]; got = y[i]; }
        }
        CHECK(worst < tol, "%s exp: max relative error %.3g >= %.1e at x=%.9g (got %.9g, want %.9g)",
              attn_simd_name(kk->simd), worst, tol, at, got, exp((double)at));
        /* below the range: [-200, -87.34) */
        for (i = 0; i < 4096; i++) x[i] = (float)(-87.34 - (200.0 - 87.34) * (double)i / 4095.0);
        x[4096] = -INFINITY;
        x[4097] = -3.4e38f;
        kk->exp(4098, x, y);
        for (i = 0; i < 4098; i++) {
            double want = exp((double)x[i]);
            if (simd ? y[i] != 0.0f : !(fabs(y[i] - want) <= tol * want + 1.5e-45)) below_bad++;
        }
        CHECK(below_bad == 0, "%s exp: %ld inputs below -87.34 not %s", attn_simd_name(kk->simd), below_bad,
              simd ? "exactly 0" : "accurate");
        /* above the range: (88.37, 200]. The header's "above 88.37" is the
           cut-off ATTN__EXP_HI = 88.3763 written to 2 decimals, and between
           the two the true exp (< FLT_MAX up to 88.72) is still a float: there
           a SIMD result may be +inf or accurate; from 88.38 on it must be +inf. */
        for (i = 0; i < 4096; i++) x[i] = (float)(88.3701 + (200.0 - 88.3701) * (double)i / 4095.0);
        x[4096] = INFINITY;
        x[4097] = 3.4e38f;
        kk->exp(4098, x, y);
        for (i = 0; i < 4098; i++) {
            double want = exp((double)x[i]);
            int accurate = want <= 3.4028234663852886e38 && fabs(y[i] - want) <= tol * want;
            int ok;
            if (want > 3.4028234663852886e38) ok = y[i] == INFINITY;
            else if (simd) ok = x[i] >= 88.38f ? y[i] == INFINITY : (y[i] == INFINITY || accurate);
            else ok = accurate;
            if (!ok) above_bad++;
        }
        CHECK(above_bad == 0, "%s exp: %ld inputs above 88.37 not %s", attn_simd_name(kk->simd), above_bad,
              simd ? "+inf (or, below 88.38, accurate)" : "accurate (or +inf past FLT_MAX)");
        /* special values */
        {
            float sx[3] = { 0.0f, NAN, -0.0f }, sy[3];
            kk->exp(3, sx, sy);
            CHECK(sy[0] == 1.0f && sy[2] == 1.0f, "%s exp(0) = %.9g, exp(-0) = %.9g, want exactly 1",
                  attn_simd_name(kk->simd), sy[0], sy[2]);
            CHECK(sy[1] != sy[1], "%s exp(NaN) = %g, want NaN", attn_simd_name(kk->simd), sy[1]);
        }
    }
    /* SIMD vs reference over the accurate range: within the sum of the bounds */
    {
        float *y2 = (float *)malloc(n * sizeof(float));
        double worst = 0.0;
        if (CHECK(y2 != NULL, "out of memory")) {
            test_rng rng;
            test_rng_seed(&rng, 6);
            test_fill(&rng, x, n, -87.3f, 88.3f);
            k[0]->exp(n, x, y);
            k[1]->exp(n, x, y2);
            for (i = 0; i < n; i++) {
                double e = fabs((double)y[i] - y2[i]) / ((EXP_TOL_SIMD + EXP_TOL_REF) * exp((double)x[i]));
                if (!(e <= worst)) worst = e != e ? INFINITY : e;
            }
            CHECK(worst <= 1.0, "exp SIMD vs reference: %.3g x tolerance", worst);
            attn_vec_exp(n, x, y);
            CHECK(memcmp(y, y2, n * sizeof(float)) == 0, "attn_vec_exp differs from the active kernel set");
        }
        free(y2);
    }
done:
    free(x); free(y);
}

/* ------------------------------------------------------------------------
   Vector kernels. Lengths around every vector width (4, 8) and unroll (16). */
static const size_t vec_lengths[] = { 0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 1000, 1027 };
#define N_VEC_LENGTHS (sizeof vec_lengths / sizeof vec_lengths[0])

/* y must equal want[] exactly. add/sub/mul/scale/relu are single IEEE
   operations: float(double result) is the correctly rounded float result
   (double holds every product and, for these data, every sum of two floats
   exactly), so there is no tolerance: any other value is a bug. */
enum { OP_ADD, OP_SUB, OP_MUL, OP_SCALE, OP_RELU, OP_AXPY, N_OPS };
static const char *const op_names[N_OPS] = { "add", "sub", "mul", "scale", "relu", "axpy" };

static void run_vec_op(const attn_kernels *k, int op, size_t n, const float *a, const float *b, float s, float *y) {
    switch (op) {
    case OP_ADD: k->add(n, a, b, y); break;
    case OP_SUB: k->sub(n, a, b, y); break;
    case OP_MUL: k->mul(n, a, b, y); break;
    case OP_SCALE: k->scale(n, s, a, y); break;
    case OP_RELU: k->relu(n, a, y); break;
    default: k->axpy(n, s, a, y); break; /* y += s a */
    }
}

static double vec_op_double(int op, double a, double b, double s, double y0) {
    switch (op) {
    case OP_ADD: return a + b;
    case OP_SUB: return a - b;
    case OP_MUL: return a * b;
    case OP_SCALE: return s * a;
    case OP_RELU: return a > 0 ? a : 0.0;
    default: return y0 + s * a;
    }
}

/* alias: 0 y is its own buffer; 1 y == a (y == x for scale/relu; for axpy
   there is no input to alias but x, which the header does not promise). */
TEST(kernels_vector_elementwise) {
    const attn_kernels *k[4];
    test_rng rng;
    size_t li;
    int s, op, offset, alias;
    if (!kernel_sets(k)) return;
    test_rng_seed(&rng, 7);
    for (s = 0; s < kernel_set_count; s++)
        for (op = 0; op < N_OPS; op++)
            for (li = 0; li < N_VEC_LENGTHS; li++)
                for (offset = 0; offset < 2; offset++)
                    for (alias = 0; alias < (op == OP_AXPY ? 1 : 2); alias++) {
                        size_t n = vec_lengths[li], i;
                        test_buf ab, bb, yb;
                        float *a = test_buf_new(&ab, n, (size_t)offset), *b = test_buf_new(&bb, n, (size_t)offset);
                        float *y = test_buf_new(&yb, n, (size_t)offset), *out;
                        float sc = test_rng_range(&rng, -3.0f, 3.0f);
                        double *want = (double *)malloc((n + 1) * sizeof(double));
                        long bad = 0;
                        size_t first = 0;
                        if (!CHECK(a && b && y && want, "out of memory")) goto next;
                        test_fill(&rng, a, n, -10.0f, 10.0f);
                        test_fill(&rng, b, n, -10.0f, 10.0f);
                        test_fill(&rng, y, n, -10.0f, 10.0f);
                        for (i = 0; i < n; i++) want[i] = vec_op_double(op, a[i], b[i], sc, y[i]);
                        out = alias ? a : y;
                        run_vec_op(k[s], op, n, a, b, sc, out);
                        for (i = 0; i < n; i++) {
                            int ok;
                            if (op == OP_AXPY) /* FMA or not: <= 1 rounding of s*a plus 1 of the sum */
                                ok = fabs(out[i] - want[i]) <= 2 * U24 * (fabs(sc * (double)a[i]) + fabs(want[i]));
                            else
                                ok = out[i] == (float)want[i];
                            if (!ok && !bad++) first = i;
                        }
                        CHECK(bad == 0, "%s %s n=%d offset=%d alias=%d: %ld wrong, first at %d: got %.9g want %.9g",
                              attn_simd_name(k[s]->simd), op_names[op], (int)n, offset, alias, bad, (int)first,
                              bad ? out[first] : 0.0f, bad ? want[first] : 0.0);
                        CHECK(test_buf_guards_ok(&ab) && test_buf_guards_ok(&bb) && test_buf_guards_ok(&yb),
                              "%s %s n=%d: wrote outside [0, n)", attn_simd_name(k[s]->simd), op_names[op], (int)n);
                    next:
                        free(want);
                        test_buf_free(&ab); test_buf_free(&bb); test_buf_free(&yb);
                    }
}

/* The public vector entry points dispatch to the active set (bit-identical). */
TEST(kernels_vector_public_matches_active) {
    enum { N = 301 };
    const attn_kernels *k = attn_kernels_get(attn_simd_active());
    float a[N], b[N], y1[N], y2[N];
    test_rng rng;
    int op;
    if (!CHECK(k != NULL, "no active kernel set")) return;
    test_rng_seed(&rng, 8);
    test_fill(&rng, a, N, -4.0f, 4.0f);
    test_fill(&rng, b, N, -4.0f, 4.0f);
    for (op = 0; op < N_OPS; op++) {
        memcpy(y1, b, sizeof y1);
        memcpy(y2, b, sizeof y2);
        run_vec_op(k, op, N, a, b, 0.75f, y1);
        switch (op) {
        case OP_ADD: attn_vec_add(N, a, b, y2); break;
        case OP_SUB: attn_vec_sub(N, a, b, y2); break;
        case OP_MUL: attn_vec_mul(N, a, b, y2); break;
        case OP_SCALE: attn_vec_scale(N, 0.75f, a, y2); break;
        case OP_RELU: attn_vec_relu(N, a, y2); break;
        default: attn_vec_axpy(N, 0.75f, a, y2); break;
        }
        CHECK(memcmp(y1, y2, sizeof y1) == 0, "attn_vec_%s differs from the active kernel set", op_names[op]);
    }
    CHECK(test_bits(attn_vec_sum(N, a)) == test_bits(k->sum(N, a)), "attn_vec_sum differs from the active set");
    CHECK(test_bits(attn_vec_dot(N, a, b)) == test_bits(k->dot(N, a, b)), "attn_vec_dot differs from the active set");
}

/* relu at the edges: max(x, 0) gives +0 for -0 and 0 for NaN (the reference's
   documented behaviour, which the SIMD versions copy). */
TEST(kernels_relu_special_values) {
    const attn_kernels *k[4];
    float x[7] = { -0.0f, 0.0f, NAN, -1.0f, 1e-45f, INFINITY, -INFINITY }, y[7];
    const float want[7] = { 0.0f, 0.0f, 0.0f, 0.0f, 1e-45f, INFINITY, 0.0f };
    int s, i;
    if (!kernel_sets(k)) return;
    for (s = 0; s < kernel_set_count; s++) {
        k[s]->relu(7, x, y);
        for (i = 0; i < 7; i++)
            CHECK(test_bits(y[i]) == test_bits(want[i]), "%s relu(%g) = %g, want %g", attn_simd_name(k[s]->simd), x[i],
                  y[i], want[i]);
    }
}

/* sum and dot. The reference accumulates in double, so it must be within
   2^-24 |exact| + n 2^-53 sum|terms| of the exact value. A float-accumulating
   SIMD version is held to the classic recursive-summation bound
   (n + 2) 2^-24 sum|terms|: loose for random data, but any lost or doubled
   term (|term| ~ 5) is far outside it. SIMD vs reference: the sum of both. */
TEST(kernels_sum_dot) {
    const attn_kernels *k[4];
    test_rng rng;
    size_t li;
    int s, offset;
    if (!kernel_sets(k)) return;
    test_rng_seed(&rng, 9);
    for (li = 0; li < N_VEC_LENGTHS; li++)
        for (offset = 0; offset < 2; offset++) {
            size_t n = vec_lengths[li], i;
            test_buf ab, bb;
            float *a = test_buf_new(&ab, n, (size_t)offset), *b = test_buf_new(&bb, n, (size_t)offset);
            double sum = 0, sum_abs = 0, dot = 0, dot_abs = 0;
            float got[4][2];
            if (!CHECK(a && b, "out of memory")) goto next;
            test_fill(&rng, a, n, -10.0f, 10.0f);
            test_fill(&rng, b, n, -10.0f, 10.0f);
            for (i = 0; i < n; i++) {
                sum += a[i]; sum_abs += fabs(a[i]);
                dot += (double)a[i] * b[i]; dot_abs += fabs((double)a[i] * b[i]);
            }
            for (s = 0; s < kernel_set_count; s++) {
                int simd = k[s]->simd != ATTN_SIMD_NONE;
                double ts = simd ? (n + 2) * U24 * sum_abs : U24 * fabs(sum) + (n + 1) * 1.2e-16 * sum_abs;
                double td = simd ? (n + 2) * U24 * dot_abs : U24 * fabs(dot) + (n + 1) * 1.2e-16 * dot_abs;
                got[s][0] = k[s]->sum(n, a);
                got[s][1] = k[s]->dot(n, a, b);
                CHECK(fabs(got[s][0] - sum) <= ts, "%s sum n=%d offset=%d: got %.9g want %.9g (tolerance %.3g)",
                      attn_simd_name(k[s]->simd), (int)n, offset, got[s][0], sum, ts);
                CHECK(fabs(got[s][1] - dot) <= td, "%s dot n=%d offset=%d: got %.9g want %.9g (tolerance %.3g)",
                      attn_simd_name(k[s]->simd), (int)n, offset, got[s][1], dot, td);
            }
            CHECK(fabs((double)got[0][0] - got[1][0]) <= (n + 3) * U24 * sum_abs + U24 * fabs(sum) &&
                  fabs((double)got[0][1] - got[1][1]) <= (n + 3) * U24 * dot_abs + U24 * fabs(dot),
                  "n=%d: SIMD vs reference sum %.9g/%.9g dot %.9g/%.9g", (int)n, got[1][0], got[0][0], got[1][1], got[0][1]);
            if (n == 0) CHECK(got[0][0] == 0 && got[1][0] == 0 && got[0][1] == 0 && got[1][1] == 0, "empty sum/dot not 0");
        next:
            test_buf_free(&ab); test_buf_free(&bb);
        }
}

TEST_GROUP(kernels) = {
    TEST_ENTRY(kernels_dispatch),
    TEST_ENTRY(kernels_softmax_vs_double),
    TEST_ENTRY(kernels_log_softmax_vs_double),
    TEST_ENTRY(kernels_softmax_simd_vs_ref_public_inplace),
    TEST_ENTRY(kernels_rows_bad_arguments_touch_nothing),
    TEST_ENTRY(kernels_layernorm_vs_double),
    TEST_ENTRY(kernels_layernorm_simd_vs_ref_and_public),
    TEST_ENTRY(kernels_gelu_accuracy_dense_grid),
    TEST_ENTRY(kernels_gelu_large_and_special_inputs),
    TEST_ENTRY(kernels_exp_accuracy_and_range),
    TEST_ENTRY(kernels_vector_elementwise),
    TEST_ENTRY(kernels_vector_public_matches_active),
    TEST_ENTRY(kernels_relu_special_values),
    TEST_ENTRY(kernels_sum_dot),
    TEST_END
};
