/* tools/fuzz/fuzz_model.h - the few parameters the safetensors fuzz target
   loads into, shared with make_corpus.c so that the seed corpus holds real
   parameter files and checkpoints of exactly this model (the loads then reach
   their success paths, not only their first error). Include after attn.h. */
#ifndef ATTN_FUZZ_MODEL_H
#define ATTN_FUZZ_MODEL_H

enum { FUZZ_N_PARAMS = 4 };
static const char *const fuzz_param_names[FUZZ_N_PARAMS] = {"w", "b", "layers.0.norm.weight", "x.y.z"};
static const int fuzz_param_ndim[FUZZ_N_PARAMS] = {2, 1, 1, 4};
static const int fuzz_param_shape[FUZZ_N_PARAMS][4] = {{2, 3, 1, 1}, {3, 1, 1, 1}, {4, 1, 1, 1}, {2, 1, 2, 2}};

/* Register the parameters with values from the context's RNG; 0 on failure. */
static int fuzz_model_init(attn_context *ctx) {
    int i;
    for (i = 0; i < FUZZ_N_PARAMS; i++) {
        attn_tensor *t = attn_param_new(ctx, fuzz_param_names[i], fuzz_param_ndim[i], fuzz_param_shape[i]);
        if (!t || attn_init_uniform(ctx, t, -1.0f, 1.0f) != ATTN_OK) return 0;
    }
    return 1;
}

/* AdamW over them. */
static attn_optim *fuzz_model_optim(attn_context *ctx) {
    attn_optim_desc od;
    memset(&od, 0, sizeof od);
    od.kind = ATTN_OPTIM_ADAMW;
    od.lr = 1e-3;
    od.weight_decay = 0.01;
    return attn_optim_create(ctx, &od);
}

#endif
