/* The smallest training loop: fit y = 2x + 1 with one linear layer and Adam.
   cc -O2 -std=c99 -I. examples/minimal.c -lm && ./a.out */
#define ATTN_IMPLEMENTATION
#include "attn.h"
#include <stdio.h>

int main(void) {
    attn_context *ctx = attn_context_create(NULL);
    int shape[2] = {1, 1}, one = 1, i, step;
    attn_tensor *w = attn_param_new(ctx, "w", 2, shape), *b = attn_param_new(ctx, "b", 1, &one);
    attn_tensor *x = attn_tensor_2d(ctx, 8, 1), *y = attn_tensor_2d(ctx, 8, 1);
    attn_optim_desc od = {0};
    od.kind = ATTN_OPTIM_ADAM, od.lr = 0.1;
    attn_optim *opt = attn_optim_create(ctx, &od);
    for (i = 0; i < 8; i++) x->data[i] = i / 4.0f, y->data[i] = 2 * x->data[i] + 1;
    for (step = 0; step <= 200; step++) {
        attn_context_pos m = attn_context_mark(ctx); /* the step's memory starts here... */
        attn_tensor *loss = attn_mse(ctx, attn_linear(ctx, x, w, b), y);
        attn_params_zero_grad(ctx), attn_backward(ctx, loss), attn_optim_step(opt);
        if (step % 50 == 0) printf("step %3d  loss %.6f\n", step, loss->data[0]);
        attn_context_reset(ctx, m);                  /* ...and is given back here, in O(1) */
    }
    printf("w = %.3f, b = %.3f (want 2 and 1)\n", w->data[0], b->data[0]);
    attn_context_destroy(ctx);
    return 0;
}
