/* bench/bench_cuda.cu - attn_cuda.cuh on a GPU: its GEMM against cuBLAS,
   its fused attention against a naive materialised attention (PyTorch's
   scaled_dot_product_attention is timed by bench/sdpa_torch.py in the same
   run when a CUDA PyTorch is installed), and a training step's tokens/s.
   `make bench-cuda` builds and runs it (with nvcc); without a GPU it says so. */
#define ATTN_IMPLEMENTATION
#include "attn.h"
#define ATTN_CUDA_IMPLEMENTATION
#include "attn_cuda.cuh"
#include <cublas_v2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_cuda_gemm.inc"
#include "bench_cuda_attention.inc"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A GPT-style step (forward, cross-entropy, backward, AdamW) of a d=768,
   12-head, 12-layer LM (GPT-2 small's shape; vocab 8192 to keep it a model
   step rather than a softmax over 50k) on B x T tokens: median of 10 steps
   after 3 warm-up steps; tokens/s = B T / step time. */
static void bench_cuda_train(attn_backend *be) {
    enum { V = 8192, B = 8, T = 512, LAYERS = 12, STEPS = 13, WARM = 3 };
    attn_context_desc cd;
    attn_context *ctx;
    attn_lm lm;
    attn_encoder_layer layers[LAYERS];
    attn_lm_desc d;
    attn_optim_desc od;
    attn_optim *opt;
    int32_t *tok = (int32_t *)malloc(sizeof(int32_t) * B * T), *tgt = (int32_t *)malloc(sizeof(int32_t) * B * T);
    double times[STEPS];
    int i, s;
    for (i = 0; i < B * T; i++) tok[i] = (int32_t)((i * 7919u) % V), tgt[i] = (int32_t)((i * 104729u + 1) % V);
    memset(&cd, 0, sizeof cd);
    cd.backend = be;
    cd.backend_memory = (size_t)24 << 30;
    if (!(ctx = attn_context_create(&cd))) {
        printf("training step: no context (24 GiB of GPU memory?)\n");
        return;
    }
    memset(&d, 0, sizeof d);
    d.vocab = V;
    d.max_len = T;
    d.layer.d_model = 768;
    d.layer.heads = 12;
    d.layer.dim_feedforward = 3072;
    d.layer.num_layers = LAYERS;
    d.layer.activation = ATTN_ACT_GELU;
    memset(&od, 0, sizeof od);
    od.kind = ATTN_OPTIM_ADAMW;
    od.lr = 3e-4;
    if (attn_lm_init(ctx, &lm, layers, "", &d) || !(opt = attn_optim_create(ctx, &od))) {
        printf("training step: %s\n", attn_error_message(ctx));
        attn_context_destroy(ctx);
        return;
    }
    for (s = 0; s < STEPS; s++) {
        attn_context_pos m = attn_context_mark(ctx);
        int shape[2] = {B * T, V};
        double t0;
        float loss_value = 0.0f;
        attn_tensor *loss;
        be->sync(be->user);
        t0 = now_s();
        loss = attn_cross_entropy(ctx, attn_reshape(ctx, attn_lm_forward(ctx, &lm, tok, B, T, 1), 2, shape), tgt, -100, 0.0f);
        attn_params_zero_grad(ctx);
        if (!loss || attn_backward(ctx, loss) || attn_optim_step(opt)) {
            printf("training step: %s\n", attn_error_message(ctx));
            break;
        }
        attn_tensor_download(ctx, loss, &loss_value, 1); /* waits for the step */
        times[s] = now_s() - t0;
        if (s == 0) printf("\ntraining step on the GPU, LM d=768 12 heads 12 layers vocab %d, B=%d T=%d: "
                           "%.1f MiB of GPU memory in use at the loss\n", V, B, T,
                           attn_arena_peak(attn_context_arena(ctx)) / 1048576.0);
        attn_context_reset(ctx, m);
        (void)loss_value;
    }
    if (s == STEPS) {
        double sorted[STEPS - WARM];
        int a, b;
        for (a = 0; a < STEPS - WARM; a++) sorted[a] = times[WARM + a];
        for (a = 0; a < STEPS - WARM; a++)
            for (b = a + 1; b < STEPS - WARM; b++)
                if (sorted[b] < sorted[a]) { double t = sorted[a]; sorted[a] = sorted[b]; sorted[b] = t; }
        printf("step %.1f ms (median of %d), %.0f tokens/s\n", sorted[(STEPS - WARM) / 2] * 1e3, STEPS - WARM,
               B * T / sorted[(STEPS - WARM) / 2]);
    }
    attn_context_destroy(ctx);
    free(tok);
    free(tgt);
}

int main(int argc, char **argv) {
    attn_backend *be = NULL;
    char why[256];
    int i, gemm = 1, attention = 1, train = 1;
    for (i = 1; i < argc; i++) { /* sections: gemm attention train (default: all) */
        if (i == 1) gemm = attention = train = 0;
        if (!strcmp(argv[i], "gemm")) gemm = 1;
        if (!strcmp(argv[i], "attention")) attention = 1;
        if (!strcmp(argv[i], "train")) train = 1;
    }
    if (attn_cuda_create(NULL, &be, why, sizeof why) != ATTN_OK) {
        printf("bench-cuda: skipped (%s)\n", why);
        return 0;
    }
    printf("bench-cuda on %s\n", attn_cuda_device_name(be));
    if (gemm) bench_cuda_gemm(be);
    if (attention) bench_cuda_attention(be);
    if (train) bench_cuda_train(be);
    attn_cuda_destroy(be);
    return 0;
}
