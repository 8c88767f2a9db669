/* tests/test_gemm.c - SGEMM: C = alpha op(A) op(B) + beta C, row-major.

   The ground truth is a plain triple loop in double. Both the reference
   kernel and the SIMD (packed, blocked) kernel are checked against it, and
   against each other, over all four transpose combinations, alpha/beta
   special cases, sizes around the micro-tile and cache blocking sizes
   (KC = 256, MC = 72, NC = 256), padded leading dimensions and pointers that
   are not vector-aligned.

   Tolerance, per element: (K + 8) * 2^-24 * (|alpha| sum_k |a_ik b_kj| +
   |beta c_ij|). That is the worst-case bound of a K-term float dot product
   (K roundings, FMA or not) plus a few for alpha, beta, and the partial sums a
   blocked kernel stores in C between KC blocks (K/KC <= 3 here). A wrong
   index, a lost or doubled k term, or a stale C gives errors of order
   1/K of the magnitude, far outside. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

#define U24 (1.0 / 16777216.0)

typedef void (*sgemm_fn)(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                         const float *B, int ldb, float beta, float *C, int ldc);

/* want = alpha op(A) op(B) + beta C0 (C0 not read when beta == 0), mag = the
   same with absolute values: the scale of the rounding error. */
static void gemm_double(int tA, int tB, int M, int N, int K, double alpha, const float *A, int lda, const float *B,
                        int ldb, double beta, const float *C0, int ldc, double *want, double *mag) {
    int i, j, k;
    for (i = 0; i < M; i++)
        for (j = 0; j < N; j++) {
            double s = 0.0, sa = 0.0;
            for (k = 0; k < K; k++) {
                double a = tA ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                double b = tB ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                s += a * b;
                sa += fabs(a * b);
            }
            want[(size_t)i * N + j] = alpha * s + (beta != 0.0 ? beta * C0[(size_t)i * ldc + j] : 0.0);
            mag[(size_t)i * N + j] = fabs(alpha) * sa + (beta != 0.0 ? fabs(beta * C0[(size_t)i * ldc + j]) : 0.0);
        }
}

typedef struct gemm_shape {
    int tA, tB, M, N, K;
    float alpha, beta;
    int nan_c;  /* beta == 0 with C full of NaN: must not propagate */
    int pad;    /* leading dimensions exceed the widths by this */
    int offset; /* floats by which A, B, C are shifted off malloc's alignment */
} gemm_shape;

/* k[0] = the reference, k[1] = the active set, then every other SIMD set this
   build and CPU have (AVX2 beside AVX-512). Returns how many. */
static int gemm_kernel_sets(const attn_kernels *k[4]) {
    static const attn_simd all[3] = { ATTN_SIMD_AVX2, ATTN_SIMD_AVX512, ATTN_SIMD_NEON };
    int i, n = 2;
    k[0] = attn_kernels_get(ATTN_SIMD_NONE);
    k[1] = attn_kernels_get(attn_simd_active());
    for (i = 0; i < 3; i++)
        if (all[i] != attn_simd_active() && attn_kernels_get(all[i])) k[n++] = attn_kernels_get(all[i]);
    return k[0] && k[1] ? n : 0;
}

/* Runs one shape through the reference and every SIMD kernel set (and, when
   public is set, through attn_sgemm, which must match the active set bit for bit).
   Returns 1 when everything held. */
static int gemm_case(const gemm_shape *g, int check_public, test_rng *rng) {
    const attn_kernels *k[4];
    const int rowsA = g->tA ? g->K : g->M, colsA = g->tA ? g->M : g->K;
    const int rowsB = g->tB ? g->N : g->K, colsB = g->tB ? g->K : g->N;
    const int lda = (colsA > 0 ? colsA : 1) + g->pad, ldb = (colsB > 0 ? colsB : 1) + g->pad;
    const int ldc = (g->N > 0 ? g->N : 1) + g->pad;
    const size_t nA = (size_t)rowsA * lda, nB = (size_t)rowsB * ldb, nC = (size_t)g->M * ldc;
    test_buf ab, bb, cb[5];
    float *A, *B, *C[5], *C0;
    double *want = NULL, *mag = NULL;
    int s, i, j, ok = 1, nk, nsets = gemm_kernel_sets(k);
    char label[160], who[5][32];
    if (!CHECK(nsets > 0, "kernel sets missing")) return 0;
    sprintf(label, "tA=%d tB=%d M=%d N=%d K=%d alpha=%g beta=%g%s pad=%d offset=%d", g->tA, g->tB, g->M, g->N,
            g->K, g->alpha, g->beta, g->nan_c ? " (C=NaN)" : "", g->pad, g->offset);
    A = test_buf_new(&ab, nA, (size_t)g->offset);
    B = test_buf_new(&bb, nB, (size_t)g->offset);
    for (s = 0; s <= nsets; s++) C[s] = test_buf_new(&cb[s], nC, (size_t)g->offset);
    C0 = (float *)malloc((nC + 1) * sizeof(float));
    want = (double *)malloc(((size_t)g->M * g->N + 1) * sizeof(double));
    mag = (double *)malloc(((size_t)g->M * g->N + 1) * sizeof(double));
    for (s = 0, j = 1; s <= nsets; s++) j &= C[s] != NULL;
    if (!CHECK(A && B && j && C0 && want && mag, "%s: out of memory", label)) { ok = 0; goto done; }
    /* Padding of A and B is NaN: a kernel that reads it into a result shows.
       Padding of C keeps the sentinel: a kernel that writes it shows. */
    for (i = 0; i < rowsA; i++)
        for (j = 0; j < lda; j++) A[(size_t)i * lda + j] = j < colsA ? test_rng_range(rng, -1.0f, 1.0f) : NAN;
    for (i = 0; i < rowsB; i++)
        for (j = 0; j < ldb; j++) B[(size_t)i * ldb + j] = j < colsB ? test_rng_range(rng, -1.0f, 1.0f) : NAN;
    for (i = 0; i < g->M; i++)
        for (j = 0; j < g->N; j++) C[0][(size_t)i * ldc + j] = g->nan_c ? NAN : test_rng_range(rng, -1.0f, 1.0f);
    for (s = 1; s <= nsets; s++) memcpy(C[s], C[0], nC * sizeof(float));
    memcpy(C0, C[0], nC * sizeof(float));
    gemm_double(g->tA, g->tB, g->M, g->N, g->K, g->alpha, A, lda, B, ldb, g->beta, C0, ldc, want, mag);

    for (s = 0; s < nsets; s++) {
        k[s]->sgemm(g->tA, g->tB, g->M, g->N, g->K, g->alpha, A, lda, B, ldb, g->beta, C[s], ldc);
        strcpy(who[s], attn_simd_name(k[s]->simd));
    }
    nk = nsets;
    if (check_public) {
        attn_sgemm(g->tA, g->tB, g->M, g->N, g->K, g->alpha, A, lda, B, ldb, g->beta, C[nk], ldc);
        strcpy(who[nk++], "attn_sgemm");
    }
    for (s = 0; s < nk; s++) {
        double worst = 0.0;
        int wi = 0, wj = 0, pad_bad = 0;
        for (i = 0; i < g->M; i++) {
            for (j = 0; j < g->N; j++) {
                double got = C[s][(size_t)i * ldc + j], w = want[(size_t)i * g->N + j];
                double e = fabs(got - w) / ((g->K + 8) * U24 * mag[(size_t)i * g->N + j] + 1e-35);
                if (!(e <= worst)) { worst = e != e ? INFINITY : e; wi = i; wj = j; }
            }
            for (j = g->N; j < ldc; j++) pad_bad += test_bits(C[s][(size_t)i * ldc + j]) != TEST_SENTINEL_BITS;
        }
        ok &= CHECK(worst <= 1.0, "%s %s: C[%d][%d] = %.9g, want %.9g (%.3g x tolerance)",
                    who[s], label, wi, wj, C[s][(size_t)wi * ldc + wj],
                    g->M && g->N ? want[(size_t)wi * g->N + wj] : 0.0, worst);
        ok &= CHECK(pad_bad == 0 && test_buf_guards_ok(&cb[s]), "%s %s: %d padding floats of C written (or guards hit)",
                    who[s], label, pad_bad);
    }
    /* each SIMD set vs the reference: each within the bound of the truth, so within twice it of each other */
    for (s = 1; s < nsets; s++) {
        double worst = 0.0;
        for (i = 0; i < g->M; i++)
            for (j = 0; j < g->N; j++) {
                double d = fabs((double)C[0][(size_t)i * ldc + j] - C[s][(size_t)i * ldc + j]);
                double e = d / (2.0 * (g->K + 8) * U24 * mag[(size_t)i * g->N + j] + 1e-35);
                if (!(e <= worst)) worst = e != e ? INFINITY : e;
            }
        ok &= CHECK(worst <= 1.0, "%s: %s vs reference %.3g x tolerance", label, who[s], worst);
    }
    if (check_public)
        ok &= CHECK(memcmp(C[nsets], C[1], nC * sizeof(float)) == 0, "%s: attn_sgemm differs from the active kernel set", label);
done:
    test_buf_free(&ab);
    test_buf_free(&bb);
    for (s = 0; s <= nsets; s++) test_buf_free(&cb[s]);
    free(C0); free(want); free(mag);
    return ok;
}

/* alpha/beta pairs the small-size sweep cycles through */
static const float ab_pairs[][3] = {
    /* alpha, beta, nan_c */
    { 1.0f, 0.0f, 1.0f },   /* plain product over a NaN-filled C */
    { 1.0f, 1.0f, 0.0f },   /* accumulate */
    { -0.5f, 0.25f, 0.0f }, /* general */
    { 2.0f, 0.0f, 0.0f },   /* beta == 0 over finite C */
    { 0.75f, -1.0f, 0.0f },
    { 0.0f, 0.5f, 0.0f },   /* alpha == 0: C = beta C */
};

TEST(gemm_small_sizes_all_transposes) {
    static const int sizes[] = { 1, 3, 17, 63, 65, 129 };
    const int ns = (int)(sizeof sizes / sizeof sizes[0]);
    test_rng rng;
    int tA, tB, mi, ni, ki, idx = 0, failures = 0;
    test_rng_seed(&rng, 11);
    for (tA = 0; tA < 2; tA++)
        for (tB = 0; tB < 2; tB++)
            for (mi = 0; mi < ns; mi++)
                for (ni = 0; ni < ns; ni++)
                    for (ki = 0; ki < ns; ki++, idx++) {
                        gemm_shape g;
                        const float *p = ab_pairs[idx % 6];
                        g.tA = tA; g.tB = tB; g.M = sizes[mi]; g.N = sizes[ni]; g.K = sizes[ki];
                        g.alpha = p[0]; g.beta = p[1]; g.nan_c = p[2] != 0.0f;
                        g.pad = (idx / 6) % 3 * 3;  /* 0, 3, 6: independent of the alpha/beta cycle */
                        g.offset = (idx / 18) % 2;
                        if (!gemm_case(&g, idx % 7 == 0, &rng) && ++failures >= 5) return; /* enough said */
                    }
}

/* Shapes that cross the cache blocks: K > KC (partial sums stored in C and
   re-read with beta 1), N > NC, M > MC and M not a multiple of MR. */
TEST(gemm_blocking_sizes_all_transposes) {
    static const int full[][3] = { { 300, 290, 280 }, { 150, 520, 270 }, { 73, 257, 513 }, { 144, 80, 257 } };
    static const int quick[][3] = { { 80, 260, 260 }, { 73, 40, 300 }, { 145, 17, 257 } };
    const int (*shapes)[3] = test_quick() ? quick : full;
    int n = test_quick() ? 3 : 4, i, tA, tB;
    test_rng rng;
    test_rng_seed(&rng, 12);
    for (i = 0; i < n; i++)
        for (tA = 0; tA < 2; tA++)
            for (tB = 0; tB < 2; tB++) {
                gemm_shape g;
                g.tA = tA; g.tB = tB; g.M = shapes[i][0]; g.N = shapes[i][1]; g.K = shapes[i][2];
                g.alpha = 1.5f; g.beta = (tA + tB) % 2 ? -0.5f : 0.0f; g.nan_c = g.beta == 0.0f;
                g.pad = 5; g.offset = (i + tA) % 2;
                gemm_case(&g, tA == tB, &rng);
            }
}

/* K == 0: op(A) op(B) is a zero matrix, so C = beta C; beta == 0 gives zeros
   even over NaN. A and B may be NULL then (nothing to read). */
TEST(gemm_k_zero_and_empty) {
    const attn_kernels *k[4];
    float C[4 * 5], Cpub[4 * 5];
    float dummy = 1.0f;
    int s, i, bad, nsets = gemm_kernel_sets(k);
    if (!CHECK(nsets > 0, "kernel sets missing")) return;
    for (s = 0; s < nsets; s++) {
        for (i = 0; i < 20; i++) C[i] = NAN;
        k[s]->sgemm(0, 0, 4, 5, 0, 1.0f, &dummy, 1, &dummy, 5, 0.0f, C, 5);
        for (bad = 0, i = 0; i < 20; i++) bad += C[i] != 0.0f;
        CHECK(bad == 0, "%s: K=0 beta=0 over NaN: %d elements not 0", attn_simd_name(k[s]->simd), bad);
        for (i = 0; i < 20; i++) C[i] = (float)i;
        k[s]->sgemm(1, 1, 4, 5, 0, 2.0f, &dummy, 4, &dummy, 1, 0.5f, C, 5);
        for (bad = 0, i = 0; i < 20; i++) bad += C[i] != 0.5f * (float)i;
        CHECK(bad == 0, "%s: K=0 beta=0.5: %d elements not 0.5 C", attn_simd_name(k[s]->simd), bad);
        for (i = 0; i < 20; i++) C[i] = (float)i;
        k[s]->sgemm(0, 1, 4, 5, 0, 2.0f, &dummy, 1, &dummy, 1, 1.0f, C, 5);
        for (bad = 0, i = 0; i < 20; i++) bad += C[i] != (float)i;
        CHECK(bad == 0, "%s: K=0 beta=1: %d elements changed", attn_simd_name(k[s]->simd), bad);
    }
    /* public entry: NULL A and B are fine with K == 0 */
    for (i = 0; i < 20; i++) Cpub[i] = NAN;
    attn_sgemm(0, 0, 4, 5, 0, 1.0f, NULL, 1, NULL, 5, 0.0f, Cpub, 5);
    for (bad = 0, i = 0; i < 20; i++) bad += Cpub[i] != 0.0f;
    CHECK(bad == 0, "attn_sgemm K=0 with NULL A, B: %d elements not 0", bad);
    for (i = 0; i < 20; i++) Cpub[i] = NAN;
    CHECK(attn_sgemm_mt(NULL, 0, 0, 4, 5, 0, 1.0f, NULL, 1, NULL, 5, 0.0f, Cpub, 5) == ATTN_OK, "attn_sgemm_mt K=0 status");
    for (bad = 0, i = 0; i < 20; i++) bad += Cpub[i] != 0.0f;
    CHECK(bad == 0, "attn_sgemm_mt K=0 with NULL A, B: %d elements not 0", bad);
    /* M == 0 or N == 0: nothing to do, nothing touched, not an error */
    for (i = 0; i < 20; i++) C[i] = 7.0f;
    attn_sgemm(0, 0, 0, 5, 3, 1.0f, &dummy, 3, &dummy, 5, 0.0f, C, 5);
    attn_sgemm(0, 0, 4, 0, 3, 1.0f, &dummy, 3, &dummy, 1, 0.0f, C, 1);
    CHECK(attn_sgemm_mt(NULL, 0, 0, 0, 5, 3, 1.0f, &dummy, 3, &dummy, 5, 0.0f, C, 5) == ATTN_OK, "M=0 is not an error");
    k[0]->sgemm(0, 0, 0, 5, 3, 1.0f, &dummy, 3, &dummy, 5, 0.0f, C, 5);
    k[1]->sgemm(0, 0, 4, 0, 3, 1.0f, &dummy, 3, &dummy, 1, 0.0f, C, 1);
    for (bad = 0, i = 0; i < 20; i++) bad += C[i] != 7.0f;
    CHECK(bad == 0, "M=0 / N=0: %d elements of C touched", bad);
}

/* Bad arguments: attn_sgemm_mt says ATTN_ERR_INVALID_ARGUMENT and touches
   nothing; attn_sgemm (void) touches nothing. */
TEST(gemm_bad_arguments_leave_c_untouched) {
    enum { M = 4, N = 5, K = 3 };
    float A[M * K + K * M], B[K * N + N * K], C[M * N + 8];
    {
        struct bad {
            const char *what;
            int tA, tB, M, N, K, lda, ldb, ldc, nullA, nullB;
        } cases[] = {
            { "transA = 2", 2, 0, M, N, K, K, N, N, 0, 0 },
            { "transB = -1", 0, -1, M, N, K, K, N, N, 0, 0 },
            { "M < 0", 0, 0, -1, N, K, K, N, N, 0, 0 },
            { "N < 0", 0, 0, M, -1, K, K, N, N, 0, 0 },
            { "K < 0", 0, 0, M, N, -1, K, N, N, 0, 0 },
            { "lda < K", 0, 0, M, N, K, K - 1, N, N, 0, 0 },
            { "lda < M (transA)", 1, 0, M, N, K, M - 1, N, N, 0, 0 },
            { "ldb < N", 0, 0, M, N, K, K, N - 1, N, 0, 0 },
            { "ldb < K (transB)", 0, 1, M, N, K, K, K - 1, N, 0, 0 },
            { "ldc < N", 0, 0, M, N, K, K, N, N - 1, 0, 0 },
            { "lda = 0", 0, 0, M, N, K, 0, N, N, 0, 0 },
            { "A NULL", 0, 0, M, N, K, K, N, N, 1, 0 },
            { "B NULL", 0, 0, M, N, K, K, N, N, 0, 1 },
        };
        size_t c;
        int i;
        for (i = 0; i < (int)(sizeof A / sizeof A[0]); i++) A[i] = 1.0f;
        for (i = 0; i < (int)(sizeof B / sizeof B[0]); i++) B[i] = 1.0f;
        for (c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            const struct bad *b = &cases[c];
            const float *a = b->nullA ? NULL : A, *bp = b->nullB ? NULL : B;
            attn_status st;
            int bad = 0;
            for (i = 0; i < M * N + 8; i++) C[i] = 42.0f;
            attn_sgemm(b->tA, b->tB, b->M, b->N, b->K, 1.0f, a, b->lda, bp, b->ldb, 0.0f, C, b->ldc);
            for (i = 0; i < M * N + 8; i++) bad += C[i] != 42.0f;
            CHECK(bad == 0, "attn_sgemm with %s wrote %d floats of C", b->what, bad);
            st = attn_sgemm_mt(NULL, b->tA, b->tB, b->M, b->N, b->K, 1.0f, a, b->lda, bp, b->ldb, 0.0f, C, b->ldc);
            for (bad = 0, i = 0; i < M * N + 8; i++) bad += C[i] != 42.0f;
            CHECK(st == ATTN_ERR_INVALID_ARGUMENT, "attn_sgemm_mt with %s: status %d (%s), want invalid argument",
                  b->what, (int)st, attn_status_name(st));
            CHECK(bad == 0, "attn_sgemm_mt with %s wrote %d floats of C", b->what, bad);
        }
        /* C NULL: nothing to touch, but it must be refused rather than crash */
        CHECK(attn_sgemm_mt(NULL, 0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, NULL, N) == ATTN_ERR_INVALID_ARGUMENT,
              "attn_sgemm_mt with C NULL is not refused");
        attn_sgemm(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, NULL, N); /* must simply return */
        /* the same call with good arguments works (so the cases above failed for their one bad value) */
        for (i = 0; i < M * N; i++) C[i] = 42.0f;
        CHECK(attn_sgemm_mt(NULL, 0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N) == ATTN_OK && C[0] == 3.0f &&
              C[M * N - 1] == 3.0f, "the good call: C[0] = %g, want 3", C[0]);
    }
}

TEST_GROUP(gemm) = {
    TEST_ENTRY(gemm_small_sizes_all_transposes),
    TEST_ENTRY(gemm_blocking_sizes_all_transposes),
    TEST_ENTRY(gemm_k_zero_and_empty),
    TEST_ENTRY(gemm_bad_arguments_leave_c_untouched),
    TEST_END
};
