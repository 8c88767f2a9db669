/* tests/test_cuda.cu - attn_cuda.cuh on a GPU: every kernel against the CPU
   reference (attn.h's own kernels, or attn_backend_cpu() on host buffers),
   and a short training run whose losses follow the CPU's.

   Without a usable GPU (no device, no driver, a driver too old) it prints a
   skip line and exits 0: that is not a failure of ours. Its own summary line
   says "cuda: N passed, N failed"; `make test` runs it before the main tests. */
#define ATTN_IMPLEMENTATION
#include "attn.h"
#define ATTN_CUDA_IMPLEMENTATION
#include "attn_cuda.cuh"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_pass, g_fail;

static int cuda_check(const char *file, int line, int ok, const char *fmt, ...) {
    if (ok) {
        g_pass++;
        return 1;
    }
    g_fail++;
    {
        va_list ap;
        printf("FAIL %s:%d: ", file, line);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf("\n");
    }
    return 0;
}
#define CUDA_CHECK(cond, ...) cuda_check(__FILE__, __LINE__, (cond) ? 1 : 0, __VA_ARGS__)

/* ---- device buffers through the backend's own table ---- */
static void *dev_bytes_from_host(attn_backend *be, const void *h, size_t bytes) {
    void *d = be->alloc(be->user, bytes ? bytes : 1);
    if (d && bytes) be->upload(be->user, d, h, bytes);
    return d;
}
static float *dev_from_host(attn_backend *be, const float *h, size_t n) {
    return (float *)dev_bytes_from_host(be, h, n * sizeof(float));
}
static float *dev_zeros(attn_backend *be, size_t n) {
    float *d = (float *)be->alloc(be->user, (n ? n : 1) * sizeof(float));
    if (d && n) be->fill(be->user, n, 0.0f, d);
    return d;
}
static void host_from_dev(attn_backend *be, float *h, const float *d, size_t n) {
    attn_status s = be->download(be->user, h, d, n * sizeof(float));
    CUDA_CHECK(s == ATTN_OK, "download: %s", be->last_error(be->user));
}
static void dev_free(attn_backend *be, void *p) { be->free(be->user, p); }

/* Uniform in [-1, 1) from a seed (xorshift; independent of the library). */
static void fill_random(float *x, size_t n, unsigned seed) {
    unsigned long long s = 0x9E3779B97F4A7C15ull ^ seed;
    size_t i;
    for (i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        x[i] = (float)((s >> 40) * (2.0 / 16777216.0) - 1.0);
    }
}

#include "cuda/gemm_tests.inc"
#include "cuda/attention_tests.inc"
#include "cuda/ops_tests.inc"

/* The LM of tests/test_backend.c trained for 20 steps on the CPU (no backend)
   and on the GPU: same initial weights (made on the host from one seed), same
   dropout masks (the same counter-based hash). FP32: the losses agree to 1e-4
   relative per step (summation order differs); TF32 GEMMs round inputs to 10
   bits, so 2e-2 there. */
static void cuda_tests_training(attn_backend *be, double tol, const char *label) {
    enum { V = 29, B = 4, T = 16, STEPS = 20 };
    attn_context *ctx[2];
    attn_lm lm[2];
    attn_encoder_layer layers[2][2];
    float losses[2][STEPS];
    int32_t tok[B * T], tgt[B * T];
    int k, s, i;
    for (i = 0; i < B * T; i++) tok[i] = (int32_t)((i * 7 + 3) % V), tgt[i] = (int32_t)((i * 7 + 10) % V);
    for (k = 0; k < 2; k++) {
        attn_context_desc cd;
        attn_lm_desc d;
        attn_optim_desc od;
        attn_optim *opt;
        memset(&cd, 0, sizeof cd);
        cd.seed = 7;
        cd.backend = k ? be : NULL;
        cd.backend_memory = (size_t)64 << 20;
        ctx[k] = attn_context_create(&cd);
        if (!CUDA_CHECK(ctx[k] != NULL, "%s: context %d", label, k)) return;
        memset(&d, 0, sizeof d);
        d.vocab = V;
        d.max_len = T;
        d.layer.d_model = 64;
        d.layer.heads = 4;
        d.layer.dim_feedforward = 128;
        d.layer.num_layers = 2;
        d.layer.dropout = 0.1f;
        d.layer.activation = ATTN_ACT_GELU;
        memset(&od, 0, sizeof od);
        od.kind = ATTN_OPTIM_ADAMW;
        od.lr = 3e-3;
        od.weight_decay = 0.01;
        if (!CUDA_CHECK(attn_lm_init(ctx[k], &lm[k], layers[k], "", &d) == ATTN_OK, "%s: init: %s", label,
                        attn_error_message(ctx[k])) ||
            !CUDA_CHECK((opt = attn_optim_create(ctx[k], &od)) != NULL, "%s: optim: %s", label, attn_error_message(ctx[k])))
            goto done;
        for (s = 0; s < STEPS; s++) {
            attn_context_pos m = attn_context_mark(ctx[k]);
            int shape[2] = {B * T, V};
            attn_tensor *logits = attn_lm_forward(ctx[k], &lm[k], tok, B, T, 1);
            attn_tensor *loss = logits ? attn_cross_entropy(ctx[k], attn_reshape(ctx[k], logits, 2, shape), tgt, -100, 0.0f) : NULL;
            attn_params_zero_grad(ctx[k]);
            if (!CUDA_CHECK(loss && attn_backward(ctx[k], loss) == ATTN_OK, "%s: step %d on %s: %s", label, s,
                            k ? "GPU" : "CPU", attn_error_message(ctx[k])))
                goto done;
            attn_clip_grad_norm(ctx[k], 1.0f);
            attn_tensor_download(ctx[k], loss, &losses[k][s], 1);
            attn_optim_step(opt);
            attn_context_reset(ctx[k], m);
        }
    }
    for (s = 0; s < STEPS; s++) {
        double d = fabs((double)losses[0][s] - losses[1][s]) / fabs((double)losses[0][s]);
        CUDA_CHECK(d <= tol, "%s: step %d: loss %.7g on the CPU, %.7g on the GPU (tolerance %g)", label, s,
                   losses[0][s], losses[1][s], tol);
    }
    printf("cuda: %s training: loss %.4f -> %.4f on the GPU (CPU %.4f -> %.4f)\n", label, losses[1][0],
           losses[1][STEPS - 1], losses[0][0], losses[0][STEPS - 1]);
done:
    attn_context_destroy(ctx[0]);
    attn_context_destroy(ctx[1]);
}

int main(void) {
    attn_backend *be = NULL, *fp32 = NULL;
    attn_cuda_desc d;
    char why[256];
    attn_status s = attn_cuda_create(NULL, &be, why, sizeof why);
    if (s == ATTN_ERR_UNSUPPORTED) {
        printf("cuda: skipped (%s)\n", why);
        return 0;
    }
    if (s != ATTN_OK) {
        printf("FAIL attn_cuda_create: %s\ncuda: 0 passed, 1 failed\n", why);
        return 1;
    }
    printf("cuda: %s\n", attn_cuda_device_name(be));
    memset(&d, 0, sizeof d);
    d.precision = ATTN_CUDA_FP32;
    CUDA_CHECK(attn_cuda_create(&d, &fp32, why, sizeof why) == ATTN_OK, "FP32 backend: %s", why);
    cuda_tests_gemm(be);
    cuda_tests_attention(be);
    cuda_tests_ops(be);
    if (fp32) cuda_tests_training(fp32, 1e-4, "FP32");
    cuda_tests_training(be, 2e-2, "TF32");
    attn_cuda_destroy(fp32);
    attn_cuda_destroy(be);
    printf("cuda: %d passed, %d failed\n", g_pass, g_fail);
    return g_fail != 0;
}
