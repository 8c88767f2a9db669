/* tests/compile/use.c - the smoke program's main, declarations only; valid C99
   and C++11 (tools/check-all.sh links it with impl.c and use2.c). Prints the
   SIMD set in use ("simd avx2") and "smoke ok" when the numbers are right. */
#include <stdio.h>
#include <string.h>
#include "attn.h"
#include "attn.h"

#ifdef __cplusplus
extern "C" int smoke_other_tu(void);
#else
int smoke_other_tu(void);
#endif

static double smoke_abs(double x) { return x < 0 ? -x : x; }

enum { M = 37, N = 29, K = 23 };
static float a[M * K], b[K * N], c[M * N], c2[M * N], r[M * N];

int main(void) {
    attn_context *ctx = attn_context_create(NULL);
    attn_threads th = attn_threads_openmp();
    const attn_kernels *ref = attn_kernels_get(ATTN_SIMD_NONE);
    attn_tensor *t;
    int i, j, k, bad = 0;
    double err = 0, err_ref = 0;
    if (!ctx || !ref) { puts("smoke: no context or no reference kernels"); return 1; }
    t = attn_tensor_2d(ctx, M, K);
    if (!t || attn_init_normal(ctx, t, 0.0f, 1.0f) != ATTN_OK) {
        printf("smoke: tensor: %s\n", attn_error_message(ctx));
        return 1;
    }
    memcpy(a, t->data, sizeof a);
    for (i = 0; i < K * N; i++) b[i] = attn_rng_uniform(attn_context_rng(ctx)) - 0.5f;
    attn_sgemm(0, 0, M, N, K, 1.0f, a, K, b, N, 0.0f, c, N);
    ref->sgemm(0, 0, M, N, K, 1.0f, a, K, b, N, 0.0f, r, N);
    for (i = 0; i < M; i++)
        for (j = 0; j < N; j++) {
            double acc = 0;
            for (k = 0; k < K; k++) acc += (double)a[i * K + k] * b[k * N + j];
            if (smoke_abs(acc - c[i * N + j]) > err) err = smoke_abs(acc - c[i * N + j]);
            if (smoke_abs(acc - r[i * N + j]) > err_ref) err_ref = smoke_abs(acc - r[i * N + j]);
        }
    if (err > 1e-4 || err_ref > 1e-4) {
        printf("smoke: sgemm error %g (reference kernel %g)\n", err, err_ref);
        bad = 1;
    }
    if (attn_sgemm_mt(&th, 0, 0, M, N, K, 1.0f, a, K, b, N, 0.0f, c2, N) != ATTN_OK ||
        memcmp(c, c2, sizeof c) != 0) {
        puts("smoke: attn_sgemm_mt differs from attn_sgemm");
        bad = 1;
    }
    attn_softmax_rows(&th, M, N, c, N, c, N);
    for (i = 0; i < M; i++) {
        double s = 0;
        for (j = 0; j < N; j++) s += c[i * N + j];
        if (smoke_abs(s - 1.0) > 1e-5) { printf("smoke: softmax row %d sums to %g\n", i, s); bad = 1; break; }
    }
    if (smoke_other_tu() != (int)attn_simd_active()) { puts("smoke: translation units disagree"); bad = 1; }
    printf("simd %s\n", attn_simd_name(attn_simd_active()));
    printf("threads %d\n", th.n_threads);
    attn_context_destroy(ctx);
    printf("smoke %s\n", bad ? "FAIL" : "ok");
    return bad;
}
