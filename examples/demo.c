/* demo.c - the main demo of attn.h (`make demo`): a character-level GPT that
   learns to write like the King James Bible in about two minutes on 2 cores.

       cc -O2 -std=c99 -I. examples/demo.c -o build/demo -lm && build/demo

   (older glibc, before 2.34, also wants -lpthread at the end: attn.h's thread
   pool is built on pthreads.) Run it from the repository root: it reads
   data/kjv_slice.txt (Genesis 1 to Exodus 20 of the King James Bible, 276 KB)
   and keeps its checkpoint in build/demo.ckpt. Threads: attn.h's own pool
   (attn_threads_create), one per CPU up to 8, or --threads N.

   The sections below, in order:
     1. data         the text as bytes -> tokens, a train/validation split, batches
     2. model        attn_lm: a decoder-only Transformer (GPT-style), and AdamW
     3. training     warmup + cosine learning rate, clipping, a progress bar
     4. sampling     temperature sampling with a KV cache, one token at a time
     5. checkpoints  save, resume, or only sample (--sample)
     main            the options, and the sections put together

   Run it again and it picks up where it stopped, training one more round;
   `build/demo --sample` only loads the checkpoint and writes text;
   `build/demo --help` lists the options. */

#define _POSIX_C_SOURCE 200809L /* isatty, clock_gettime, sysconf under -std=c99 */
#if defined(__APPLE__)
#  define _DARWIN_C_SOURCE /* macOS hides _SC_NPROCESSORS_ONLN (attn.h's CPU count) under plain POSIX */
#endif
#define ATTN_IMPLEMENTATION
#include "attn.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(_WIN32)
#  include <direct.h> /* _mkdir */
#  include <io.h>     /* _isatty */
#  define DEMO_ISATTY(f) _isatty(_fileno(f))
#  define DEMO_MKDIR(path) _mkdir(path)
#else
#  include <sys/stat.h>
#  include <unistd.h>
#  define DEMO_POSIX 1
#  define DEMO_ISATTY(f) isatty(fileno(f))
#  define DEMO_MKDIR(path) mkdir(path, 0777)
#endif

/* ============================================================================
   The settings. One struct, so that --tiny (the smoke test) is just another
   set of numbers. The model's shape must match the checkpoint it resumes.
   ========================================================================= */
typedef struct demo_config {
    /* model */
    int d_model, heads, layers, ff; /* width, attention heads, blocks, MLP width */
    int context;                    /* characters the model sees at once */
    /* training */
    int batch;                      /* windows of `context` characters per step */
    int round_steps;                /* steps of one run (one learning-rate cycle) */
    int warmup;                     /* of those, steps of linear warmup */
    double lr, min_lr, weight_decay;
    float clip;                     /* max global gradient norm */
    int eval_every, eval_batches;   /* validation loss: how often, on how much */
    int save_every;                 /* checkpoint during the run too (0: only at the end) */
    /* sampling */
    int n_samples, sample_chars;
    float temperature;
} demo_config;

/* 0.8M parameters; one round takes about 110 s on 2 idle cores. Tuned by
   trying: at this budget the number of steps matters most. A step of 16
   windows of 64 characters costs half of one with 128, so twice as many fit,
   and that ends far lower (loss ~1.3 against ~1.8 in the same time) - a
   wider model or a longer context only pays off with more time. */
static const demo_config DEMO_FULL = {
    .d_model = 128, .heads = 4, .layers = 4, .ff = 512, .context = 64,
    .batch = 16, .round_steps = 2000, .warmup = 100, .lr = 2e-3, .min_lr = 2e-4, .weight_decay = 0.01,
    .clip = 1.0f, .eval_every = 250, .eval_batches = 16, .save_every = 500,
    .n_samples = 3, .sample_chars = 400, .temperature = 0.8f
};
/* --tiny: a fraction of a second, for the test suite. Same code, toy sizes. */
static const demo_config DEMO_TINY = {
    .d_model = 32, .heads = 2, .layers = 2, .ff = 64, .context = 32,
    .batch = 4, .round_steps = 30, .warmup = 5, .lr = 3e-3, .min_lr = 3e-4, .weight_decay = 0.01,
    .clip = 1.0f, .eval_every = 10, .eval_batches = 2, .save_every = 0,
    .n_samples = 1, .sample_chars = 60, .temperature = 0.8f
};

static const char *const PROMPTS[] = { "And God said", "In the beginning", "And Joseph" };

/* ---- small helpers: a clock, and dying with a readable message ---- */
static double now_seconds(void) {
#if defined(DEMO_POSIX)
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
#else
    return (double)clock() / CLOCKS_PER_SEC; /* MSVC's clock() is wall time */
#endif
}

/* Every attn.h call that can fail returns NULL or a status and leaves a message
   on the context; the demo has nothing sensible to do then but say it and stop. */
static void die_attn(attn_context *ctx, const char *what) {
    fprintf(stderr, "demo: %s failed: %s (%s)\n", what, attn_error_message(ctx),
            attn_status_name(attn_error_status(ctx)));
    exit(1);
}
#define CHECK_PTR(ctx, p, what) do { if (!(p)) die_attn((ctx), (what)); } while (0)
#define CHECK_OK(ctx, s, what) do { if ((s) != ATTN_OK) die_attn((ctx), (what)); } while (0)

/* ============================================================================
   1. Data
   A character-level model needs no tokenizer: each byte is a token. The
   vocabulary is fixed (newline and the 95 printable ASCII characters), so a
   checkpoint does not depend on which text it was trained on. The last tenth
   of the text is held out: its loss says whether the model learned to write
   or only memorised what it read.
   ========================================================================= */
#define VOCAB 96

static int32_t char_to_token(unsigned char c) {
    if (c == '\n') return 0;
    if (c >= 32 && c <= 126) return (int32_t)(c - 31);
    return 1; /* anything else reads as a space */
}
static char token_to_char(int32_t t) { return t == 0 ? '\n' : (char)(t + 31); }

typedef struct corpus {
    int32_t *tokens;
    long n, n_train; /* tokens [0, n_train) train, [n_train, n) validate */
} corpus;

static int corpus_load(corpus *c, const char *path) {
    FILE *f = fopen(path, "rb");
    long cap = 1 << 16;
    int ch;
    if (!f) {
        fprintf(stderr,
                "demo: cannot open %s: %s\n"
                "  The corpus ships with the repository: run the demo from the repository root\n"
                "  (make demo), or pass --data PATH. To rebuild it from Debian's King James Bible:\n"
                "    apt-get install bible-kjv && sh tools/make_corpus_kjv.sh\n",
                path, strerror(errno));
        return 0;
    }
    c->n = 0;
    c->tokens = (int32_t *)malloc((size_t)cap * sizeof(int32_t));
    while (c->tokens && (ch = fgetc(f)) != EOF) {
        if (c->n == cap) {
            int32_t *grown = (int32_t *)realloc(c->tokens, (size_t)(cap *= 2) * sizeof(int32_t));
            if (!grown) free(c->tokens);
            c->tokens = grown;
            if (!grown) break;
        }
        c->tokens[c->n++] = char_to_token((unsigned char)ch);
    }
    fclose(f);
    if (!c->tokens) {
        fprintf(stderr, "demo: out of memory reading %s\n", path);
        return 0;
    }
    c->n_train = c->n - c->n / 10;
    return 1;
}

/* One batch: `batch` windows of context+1 tokens starting at random places in
   the training part; x is each window but its last token, y (the targets) each
   window but its first - every position learns to predict the next character.
   The offsets come from the context's RNG, which the checkpoint saves: a run
   that resumes draws exactly the batches the uninterrupted run would have. */
static void corpus_batch(attn_context *ctx, const corpus *c, int batch, int T, int32_t *x, int32_t *y) {
    int b;
    for (b = 0; b < batch; b++) {
        long off = (long)(attn_rng_u32(attn_context_rng(ctx)) % (uint32_t)(c->n_train - T - 1));
        memcpy(x + (size_t)b * T, c->tokens + off, (size_t)T * sizeof(int32_t));
        memcpy(y + (size_t)b * T, c->tokens + off + 1, (size_t)T * sizeof(int32_t));
    }
}

/* ============================================================================
   2. Model
   attn_lm is GPT's shape: token embedding + learned positions, pre-LayerNorm
   blocks of causal self-attention and a GELU MLP, a final LayerNorm, and an
   output layer tied to the token embedding. Everything lives in one context:
   the parameters and optimizer state first, then (between a mark and a reset)
   each step's activations.
   ========================================================================= */
typedef struct model {
    attn_context *ctx;
    attn_lm lm;
    attn_encoder_layer *layers;
    attn_optim *opt;
    demo_config cfg;
} model;

static void model_create(model *m, const demo_config *cfg, const attn_threads *threads, uint64_t seed) {
    attn_context_desc cd;
    attn_lm_desc ld;
    attn_optim_desc od;
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;

    memset(&cd, 0, sizeof cd);
    cd.threads = *threads;
    cd.seed = seed;                  /* initial weights, batches and samples all follow from it */
    cd.block_size = (size_t)16 << 20; /* a step's activations fit in a few blocks */
    m->ctx = attn_context_create(&cd);
    if (!m->ctx) {
        fprintf(stderr, "demo: out of memory creating the context\n");
        exit(1);
    }

    memset(&ld, 0, sizeof ld);
    ld.vocab = VOCAB;
    ld.max_len = cfg->context;
    ld.layer.d_model = cfg->d_model;
    ld.layer.heads = cfg->heads;
    ld.layer.dim_feedforward = cfg->ff;
    ld.layer.num_layers = cfg->layers;
    ld.layer.activation = ATTN_ACT_GELU;
    /* No dropout: in one round the model sees each character of the text
       about 8 times, and dropout would slow the learning more than it helps. */
    m->layers = (attn_encoder_layer *)attn_alloc(m->ctx, (size_t)cfg->layers * sizeof(attn_encoder_layer));
    CHECK_PTR(m->ctx, m->layers, "allocating the layers");
    CHECK_OK(m->ctx, attn_lm_init(m->ctx, &m->lm, m->layers, "", &ld), "attn_lm_init");

    /* AdamW over every parameter registered above (so: after attn_lm_init).
       beta2 = 0.99 rather than 0.999, as nanoGPT's small character models
       use: with few characters a step, the second moment should follow the
       gradients quickly. --sample needs the optimizer too: the checkpoint
       loads into it. */
    memset(&od, 0, sizeof od);
    od.kind = ATTN_OPTIM_ADAMW;
    od.lr = cfg->lr;
    od.beta2 = 0.99;
    od.weight_decay = cfg->weight_decay;
    m->opt = attn_optim_create(m->ctx, &od);
    CHECK_PTR(m->ctx, m->opt, "attn_optim_create");
}

static long model_param_count(model *m) {
    attn_param *p;
    long n = 0;
    for (p = attn_params(m->ctx); p; p = p->next) n += (long)attn_tensor_numel(p->tensor);
    return n;
}

/* ============================================================================
   3. Training
   ========================================================================= */

/* Mean loss over fixed, evenly spaced windows of the held-out text. Grad off:
   nothing is recorded, and the context's RNG is not touched, so evaluating
   does not change what training does next. */
static float evaluate(model *m, const corpus *c, int32_t *x, int32_t *y) {
    const demo_config *cfg = &m->cfg;
    int T = cfg->context, B = cfg->batch, i, b;
    long span = c->n - c->n_train - T - 1, windows = (long)cfg->eval_batches * B;
    double total = 0.0;
    int was = attn_grad_enable(m->ctx, 0);
    for (i = 0; i < cfg->eval_batches; i++) {
        attn_context_pos mark = attn_context_mark(m->ctx);
        attn_tensor *logits, *loss;
        int shape[2];
        for (b = 0; b < B; b++) {
            long off = c->n_train + span * (long)(i * B + b) / windows;
            memcpy(x + (size_t)b * T, c->tokens + off, (size_t)T * sizeof(int32_t));
            memcpy(y + (size_t)b * T, c->tokens + off + 1, (size_t)T * sizeof(int32_t));
        }
        shape[0] = B * T;
        shape[1] = VOCAB;
        logits = attn_lm_forward(m->ctx, &m->lm, x, B, T, 0);
        loss = attn_cross_entropy(m->ctx, attn_reshape(m->ctx, logits, 2, shape), y, -1, 0.0f);
        CHECK_PTR(m->ctx, loss, "evaluating");
        total += loss->data[0];
        attn_context_reset(m->ctx, mark);
    }
    attn_grad_enable(m->ctx, was);
    return (float)(total / cfg->eval_batches);
}

/* m:ss or h:mm:ss into buf (at least 16 bytes). */
static void format_duration(char *buf, size_t cap, double s) {
    int t = s < 0.0 ? 0 : s > 359999.0 ? 359999 : (int)(s + 0.5); /* under 100 hours */
    if (t >= 3600) snprintf(buf, cap, "%d:%02d:%02d", t / 3600 % 100, t / 60 % 60, t % 60);
    else snprintf(buf, cap, "%d:%02d", t / 60 % 60, t % 60);
}

/* One line, redrawn in place with \r while stdout is a terminal:
     step  412/600 [##############------] loss 1.732 | 9.1k tok/s | ETA 0:38 */
static void draw_progress(int step, int total, float loss, double tok_s, double eta) {
    char bar[21], eta_text[16];
    int i, filled = (int)(20.0 * step / total);
    for (i = 0; i < 20; i++) bar[i] = i < filled ? '#' : '-';
    bar[20] = 0;
    format_duration(eta_text, sizeof eta_text, eta);
    printf("\rstep %5d/%d [%s] loss %.3f | %.1fk tok/s | ETA %s   ", step, total, bar, loss,
           tok_s / 1000.0, eta_text);
    fflush(stdout);
}

/* One step of training on one batch: forward, loss, backward, clip, update.
   Returns the batch's loss (before the update). */
static float train_step(model *m, const corpus *c, const attn_lr_desc *sched, int step, int32_t *x, int32_t *y) {
    const demo_config *cfg = &m->cfg;
    int shape[2];
    float value;
    /* Everything a step makes - activations, the tape, their grads - lives
       after this mark and is given back by the reset below, in O(1). The
       parameters and optimizer state were made before it and stay. */
    attn_context_pos mark = attn_context_mark(m->ctx);
    attn_tensor *logits, *loss;

    corpus_batch(m->ctx, c, cfg->batch, cfg->context, x, y);
    logits = attn_lm_forward(m->ctx, &m->lm, x, cfg->batch, cfg->context, 1); /* (B, T, VOCAB) */
    shape[0] = cfg->batch * cfg->context; /* cross-entropy wants (rows, classes) */
    shape[1] = VOCAB;
    loss = attn_cross_entropy(m->ctx, attn_reshape(m->ctx, logits, 2, shape), y, -1, 0.0f);
    CHECK_PTR(m->ctx, loss, "the forward pass"); /* NULL anywhere above ends up here */
    value = loss->data[0];

    attn_params_zero_grad(m->ctx);
    CHECK_OK(m->ctx, attn_backward(m->ctx, loss), "attn_backward");
    /* A rare bad batch can give a huge gradient; clipping the global norm
       keeps one step from undoing a hundred. */
    attn_clip_grad_norm(m->ctx, cfg->clip);
    attn_optim_set_lr(m->opt, attn_lr_at(sched, step % cfg->round_steps));
    CHECK_OK(m->ctx, attn_optim_step(m->opt), "attn_optim_step");

    attn_context_reset(m->ctx, mark);
    return value;
}

static void save_checkpoint(model *m, const char *path);

/* Train from the optimizer's current step to the end of its round. Rounds are
   round_steps long and each is one learning-rate cycle (linear warmup, then a
   cosine down to min_lr): a second run restarts the cycle from the weights the
   first one reached, the "warm restart" of SGDR (Loshchilov & Hutter, 2017).
   Each round peaks at half the rate of the one before: the weights are good
   already, and a full-size restart would first undo part of them. */
static void train(model *m, const corpus *c, const char *ckpt_path, int tty) {
    const demo_config *cfg = &m->cfg;
    int T = cfg->context, B = cfg->batch;
    int start = attn_optim_steps(m->opt), round = start / cfg->round_steps;
    int end = (round + 1) * cfg->round_steps, step;
    int32_t *x = (int32_t *)malloc((size_t)B * T * sizeof(int32_t));
    int32_t *y = (int32_t *)malloc((size_t)B * T * sizeof(int32_t));
    attn_lr_desc sched;
    double t_start = now_seconds(), t_train = 0.0, loss_sum = 0.0, ema = 0.0;
    int loss_count = 0;
    if (!x || !y) {
        fprintf(stderr, "demo: out of memory\n");
        exit(1);
    }
    memset(&sched, 0, sizeof sched);
    sched.kind = ATTN_LR_WARMUP_COSINE;
    sched.lr = ldexp(cfg->lr, -(round < 30 ? round : 30)); /* lr / 2^round */
    if (sched.lr < cfg->min_lr) sched.lr = cfg->min_lr;
    sched.min_lr = cfg->min_lr;
    sched.warmup_steps = cfg->warmup;
    sched.total_steps = cfg->round_steps;

    printf("training steps %d-%d: %d x %d characters a step, AdamW lr %g (warmup %d, cosine to %g)\n",
           start + 1, end, B, T, sched.lr, cfg->warmup, cfg->min_lr);
    if (start == 0) /* an untrained model guesses uniformly: a loss of ln(96) */
        printf("step     0 | val %.3f (a uniform guess over %d characters: %.3f)\n", evaluate(m, c, x, y), VOCAB,
               log((double)VOCAB));

    for (step = start; step < end; step++) {
        double t0 = now_seconds(), tok_s, eta;
        float loss = train_step(m, c, &sched, step, x, y);
        int done = step + 1 - start, last = step + 1 == end;
        if (!(loss == loss)) { /* NaN: nothing good comes after it */
            fprintf(stderr, "\ndemo: the loss became NaN at step %d\n", step + 1);
            exit(1);
        }
        t_train += now_seconds() - t0;
        loss_sum += loss;
        loss_count++;
        ema = done == 1 ? loss : 0.9 * ema + 0.1 * loss; /* a smoothed loss for the bar */
        tok_s = (double)done * B * T / t_train;
        eta = (now_seconds() - t_start) / done * (end - step - 1);

        if (tty) draw_progress(step + 1, end, (float)ema, tok_s, eta);
        if ((step + 1) % cfg->eval_every == 0 || last) {
            char eta_text[16];
            float val = evaluate(m, c, x, y);
            format_duration(eta_text, sizeof eta_text, eta);
            /* On a terminal the bar is blanked, this line takes its place and
               the bar is drawn again below it; in a log only these lines appear. */
            if (tty) printf("\r%*s\r", 79, "");
            printf("step %5d | train %.3f | val %.3f | lr %.1e | %.1fk tok/s | ETA %s\n", step + 1,
                   loss_sum / loss_count, val, attn_optim_get_lr(m->opt), tok_s / 1000.0, eta_text);
            loss_sum = 0.0;
            loss_count = 0;
            if (tty && !last) draw_progress(step + 1, end, (float)ema, tok_s, eta);
            fflush(stdout);
        }
        if (cfg->save_every && (step + 1) % cfg->save_every == 0 && !last)
            save_checkpoint(m, ckpt_path); /* so that Ctrl-C loses little */
    }
    printf("trained %d steps in %.1f s (%.0f characters/s); arena peak %.1f MB\n", end - start,
           now_seconds() - t_start, (double)(end - start) * B * T / t_train,
           (double)attn_arena_peak(attn_context_arena(m->ctx)) / 1e6);
    free(x);
    free(y);
}

/* ============================================================================
   4. Sampling
   The model gives, for each position, logits over the next character. To
   write, feed the prompt, pick a character from softmax(logits / temperature)
   of the last position, append it, repeat. Temperature < 1 sharpens the
   distribution (fewer misspellings, more repetition).

   Recomputing the whole window for every new character costs O(T) times too
   much. Instead each attention layer keeps a KV cache: the keys and values of
   the positions seen so far, so a step runs the model on the one new token.
   attn.h caches at the level of one attention module
   (attn_mha_forward_cached); the blocks around it are written out here the
   way attn_lm_forward computes them (pre-LN: x + attn(ln1(x)), then
   x + mlp(ln2(x))).
   ========================================================================= */

/* Logits (1, n, VOCAB) of n new tokens at the positions after the cache's. */
static attn_tensor *lm_step_cached(attn_context *ctx, const attn_lm *lm, attn_kv_cache *caches,
                                   const int32_t *tokens, int n) {
    int shape[2], pos = caches[0].length, i;
    attn_tensor *x;
    shape[0] = 1;
    shape[1] = n;
    x = attn_add(ctx, attn_embedding(ctx, lm->tok_emb, tokens, 2, shape),
                 attn_slice(ctx, lm->pos_emb, 0, pos, pos + n));
    for (i = 0; i < lm->desc.layer.num_layers; i++) {
        const attn_encoder_layer *l = &lm->layers[i];
        attn_tensor *h = attn_layernorm(ctx, x, l->norm1.weight, l->norm1.bias, l->norm1.eps);
        x = attn_add(ctx, x, attn_mha_forward_cached(ctx, &l->self_attn, h, &caches[i]));
        h = attn_layernorm(ctx, x, l->norm2.weight, l->norm2.bias, l->norm2.eps);
        h = attn_linear(ctx, h, l->linear1_weight, l->linear1_bias);
        h = l->desc.activation == ATTN_ACT_GELU ? attn_gelu(ctx, h) : attn_relu(ctx, h);
        x = attn_add(ctx, x, attn_linear(ctx, h, l->linear2_weight, l->linear2_bias));
    }
    x = attn_layernorm(ctx, x, lm->norm.weight, lm->norm.bias, lm->norm.eps);
    return attn_linear(ctx, x, lm->head, NULL);
}

/* Draw a token from softmax(logits / temperature) with the context's RNG. */
static int32_t sample_token(attn_context *ctx, const float *logits, float temperature) {
    float p[VOCAB], max = logits[0], sum = 0.0f, r;
    int i;
    for (i = 1; i < VOCAB; i++) if (logits[i] > max) max = logits[i];
    for (i = 0; i < VOCAB; i++) sum += p[i] = expf((logits[i] - max) / temperature);
    r = attn_rng_uniform(attn_context_rng(ctx)) * sum;
    for (i = 0; i < VOCAB - 1; i++) {
        if (r < p[i]) return (int32_t)i;
        r -= p[i];
    }
    return VOCAB - 1;
}

/* Print the prompt and n_chars sampled characters. Positions are learned only
   up to `context`, so when the cache is full the window slides: keep the last
   half of the text, empty the caches and feed that half again. */
static void generate(model *m, const char *prompt, int n_chars) {
    attn_context *ctx = m->ctx;
    int T = m->cfg.context, L = m->cfg.layers, keep = T / 2, len = 0, fed = 0, i;
    int32_t *text = (int32_t *)malloc((strlen(prompt) + (size_t)n_chars + 1) * sizeof(int32_t));
    attn_context_pos outer = attn_context_mark(ctx);
    attn_kv_cache *caches = (attn_kv_cache *)attn_alloc(ctx, (size_t)L * sizeof(attn_kv_cache));
    int was = attn_grad_enable(ctx, 0); /* inference: record nothing */
    if (!text) {
        fprintf(stderr, "demo: out of memory\n");
        exit(1);
    }
    CHECK_PTR(ctx, caches, "allocating the KV caches");
    for (i = 0; i < L; i++) /* one cache per layer, room for a whole window */
        CHECK_OK(ctx, attn_kv_cache_init(ctx, &caches[i], &m->lm.layers[i].self_attn, 1, T), "attn_kv_cache_init");
    for (; prompt[len]; len++) text[len] = char_to_token((unsigned char)prompt[len]);
    if (len == 0) text[len++] = char_to_token('\n'); /* no prompt: start a new verse */
    if (len > T - 1) { /* only the end of a long prompt fits the window */
        memmove(text, text + len - (T - 1), (size_t)(T - 1) * sizeof(int32_t));
        len = T - 1;
    }
    printf("%s", prompt);
    for (i = 0; i < n_chars; i++) {
        attn_context_pos mark = attn_context_mark(ctx);
        attn_tensor *logits;
        int32_t next;
        if (caches[0].length + (len - fed) > T) { /* full: slide the window */
            int k;
            for (k = 0; k < L; k++) caches[k].length = 0;
            fed = len - keep;
        }
        logits = lm_step_cached(ctx, &m->lm, caches, text + fed, len - fed);
        CHECK_PTR(ctx, logits, "sampling");
        next = sample_token(ctx, logits->data + (size_t)(len - fed - 1) * VOCAB, m->cfg.temperature);
        fed = len;
        text[len++] = next;
        putchar(token_to_char(next));
        attn_context_reset(ctx, mark);
    }
    printf("\n");
    fflush(stdout);
    attn_grad_enable(ctx, was);
    attn_context_reset(ctx, outer);
    free(text);
}

/* n_samples samples, from `prompt` or else from a few openings of verses. */
static void print_samples(model *m, const char *prompt) {
    int i, n = m->cfg.n_samples, n_prompts = (int)(sizeof PROMPTS / sizeof PROMPTS[0]);
    if (n <= 0) return;
    printf("\nsamples (temperature %.2g, KV-cached decoding):\n", m->cfg.temperature);
    for (i = 0; i < n; i++) {
        printf("\n--- %d ---\n", i + 1);
        generate(m, prompt ? prompt : PROMPTS[i % n_prompts], m->cfg.sample_chars);
    }
}

/* ============================================================================
   5. Checkpoints
   attn_checkpoint_save_file writes one safetensors file: the parameters under
   PyTorch's names (tok_emb.weight, layers.0.self_attn.in_proj_weight, ...),
   AdamW's moments, the step count and the RNG state - everything training
   needs to go on exactly where it stopped.
   ========================================================================= */
/* path + ".tmp": checkpoints are written there first, then renamed. */
static void tmp_path(char *tmp, size_t cap, const char *path) {
    if ((size_t)snprintf(tmp, cap, "%s.tmp", path) >= cap) {
        fprintf(stderr, "demo: the checkpoint path is too long: %s\n", path);
        exit(2);
    }
}

/* Find out now, not after two minutes of training, whether the checkpoint
   can be written. A plain `cc` build has no build/ yet: make it. */
static void check_writable(const char *path, int is_default) {
    char tmp[1024];
    FILE *f;
    if (is_default) DEMO_MKDIR("build"); /* fails harmlessly when it exists */
    tmp_path(tmp, sizeof tmp, path);
    if (!(f = fopen(tmp, "ab"))) {
        fprintf(stderr, "demo: cannot write the checkpoint %s: %s (--ckpt PATH saves elsewhere)\n", tmp,
                strerror(errno));
        exit(1);
    }
    fclose(f);
    remove(tmp);
}

static void save_checkpoint(model *m, const char *path) {
    /* Write beside the old one and rename, so that an interrupted save never
       leaves a half-written checkpoint where the good one was. */
    char tmp[1024];
    tmp_path(tmp, sizeof tmp, path);
    if (attn_checkpoint_save_file(m->ctx, m->opt, tmp) != ATTN_OK) {
        fprintf(stderr, "\ndemo: cannot save the checkpoint: %s\n", attn_error_message(m->ctx));
        exit(1);
    }
    if (rename(tmp, path) != 0 && (remove(path), rename(tmp, path) != 0)) { /* Windows: no replacing */
        fprintf(stderr, "\ndemo: cannot rename %s to %s: %s\n", tmp, path, strerror(errno));
        exit(1);
    }
}

/* 1: loaded; 0: there is none (a fresh start). A file that is there but does
   not fit this model (another --tiny, a damaged file) is an error: better to
   say so than to train over it. */
static int load_checkpoint(model *m, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fclose(f);
    if (attn_checkpoint_load_file(m->ctx, m->opt, path) != ATTN_OK) {
        fprintf(stderr, "demo: %s does not fit this model: %s\n"
                        "  Start over with --fresh (or delete the file).\n",
                path, attn_error_message(m->ctx));
        exit(1);
    }
    return 1;
}

/* ============================================================================
   main: options, then data -> model -> (resume) -> train -> save -> sample
   ========================================================================= */
static void usage(FILE *out) {
    fprintf(out,
            "usage: build/demo [options]   (run from the repository root)\n"
            "\n"
            "Trains a character-level Transformer on Genesis 1 to Exodus 20 (King James\n"
            "Version) for one round (~2 minutes on 2 cores), saves a checkpoint and\n"
            "prints samples. Run again to resume and train another round.\n"
            "\n"
            "  --sample         only load the checkpoint and print samples\n"
            "  --fresh          ignore an existing checkpoint and start over\n"
            "  --steps N        steps in a round (default %d)\n"
            "  --threads N      threads (default: the number of CPUs, at most 8)\n"
            "  --samples N      how many samples to print (default %d)\n"
            "  --chars N        characters per sample (default %d)\n"
            "  --temperature T  sampling temperature (default %.1f)\n"
            "  --prompt TEXT    start every sample with TEXT\n"
            "  --seed N         seed of a new model's weights and batches (default 1);\n"
            "                   with --sample, of the samples\n"
            "  --data PATH      training text (default data/kjv_slice.txt)\n"
            "  --ckpt PATH      checkpoint (default build/demo.ckpt)\n"
            "  --tiny           toy sizes, a few seconds (the test suite's smoke run);\n"
            "                   always fresh, checkpoint in build/demo-tiny.ckpt\n"
            "  --help           this text\n",
            DEMO_FULL.round_steps, DEMO_FULL.n_samples, DEMO_FULL.sample_chars, DEMO_FULL.temperature);
}

static int parse_int(const char *s, int lo, int hi, const char *flag) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == 0 || *end != 0 || v < lo || v > hi) {
        fprintf(stderr, "demo: %s wants a number in [%d, %d], not '%s'\n", flag, lo, hi, s);
        exit(2);
    }
    return (int)v;
}

/* 1 when a is an option that takes a value. */
static int takes_value(const char *a) {
    static const char *const names[] = { "--steps", "--threads", "--samples", "--chars", "--seed",
                                         "--temperature", "--prompt", "--data", "--ckpt" };
    size_t k;
    for (k = 0; k < sizeof names / sizeof names[0]; k++)
        if (!strcmp(a, names[k])) return 1;
    return 0;
}

static float parse_float(const char *s, float lo, float hi, const char *flag) {
    char *end;
    double v = strtod(s, &end);
    if (*s == 0 || *end != 0 || !(v >= lo && v <= hi)) {
        fprintf(stderr, "demo: %s wants a number in [%g, %g], not '%s'\n", flag, lo, hi, s);
        exit(2);
    }
    return (float)v;
}

int main(int argc, char **argv) {
    demo_config cfg = DEMO_FULL;
    const char *data_path = "data/kjv_slice.txt", *ckpt_path = NULL, *prompt = NULL;
    int default_ckpt;
    int sample_only = 0, fresh = 0, tiny = 0, threads_wanted = 0, steps = 0, samples = -1, chars = -1;
    int seed_given = 0;
    float temperature = 0.0f;
    uint64_t seed = 1;
    int tty = DEMO_ISATTY(stdout), i;
    attn_threads threads;
    corpus text;
    model m;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = argv[i + 1]; /* argv[argc] is NULL */
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        if (!strcmp(a, "--sample")) { sample_only = 1; continue; }
        if (!strcmp(a, "--fresh")) { fresh = 1; continue; }
        if (!strcmp(a, "--tiny")) { tiny = 1; continue; }
        if (!takes_value(a)) { fprintf(stderr, "demo: unknown option %s (try --help)\n", a); return 2; }
        if (!v) { fprintf(stderr, "demo: %s needs a value (try --help)\n", a); return 2; }
        i++;
        if (!strcmp(a, "--steps")) steps = parse_int(v, 1, 1000000, a);
        else if (!strcmp(a, "--threads")) threads_wanted = parse_int(v, 1, 64, a);
        else if (!strcmp(a, "--samples")) samples = parse_int(v, 0, 1000, a);
        else if (!strcmp(a, "--chars")) chars = parse_int(v, 0, 1000000, a);
        else if (!strcmp(a, "--seed")) seed = (uint64_t)parse_int(v, 0, 2147483647, a), seed_given = 1;
        else if (!strcmp(a, "--temperature")) temperature = parse_float(v, 0.01f, 10.0f, a);
        else if (!strcmp(a, "--prompt")) prompt = v;
        else if (!strcmp(a, "--data")) data_path = v;
        else ckpt_path = v; /* --ckpt */
    }
    if (tiny) {
        cfg = DEMO_TINY;
        fresh = 1;
    }
    default_ckpt = !ckpt_path;
    if (!ckpt_path) ckpt_path = tiny ? "build/demo-tiny.ckpt" : "build/demo.ckpt";
    if (steps) cfg.round_steps = steps;
    if (cfg.warmup >= cfg.round_steps) cfg.warmup = cfg.round_steps / 10;
    if (samples >= 0) cfg.n_samples = samples;
    if (chars >= 0) cfg.sample_chars = chars;
    if (temperature > 0.0f) cfg.temperature = temperature;

    /* attn.h's own pool: n - 1 workers and this thread. The library splits
       work so that the results are bit-identical for any thread count, so
       --threads changes the speed and nothing else. By default one thread per
       CPU, but at most 8: the matrices of this model are too small to keep
       more busy. */
    threads = attn_threads_create(threads_wanted);
    if (!threads_wanted && threads.n_threads > 8) {
        attn_threads_destroy(&threads);
        threads = attn_threads_create(8);
    }

    model_create(&m, &cfg, &threads, seed);
    printf("attn.h %s, %s kernels, %d thread%s | model: %d layers, d_model %d, %d heads, context %d, "
           "%ld parameters\n",
           ATTN_VERSION_STRING, attn_simd_name(attn_simd_active()), threads.n_threads > 1 ? threads.n_threads : 1,
           threads.n_threads > 1 ? "s" : "", cfg.layers, cfg.d_model, cfg.heads, cfg.context, model_param_count(&m));

    if (sample_only) {
        if (!load_checkpoint(&m, ckpt_path)) {
            fprintf(stderr, "demo: no checkpoint at %s: train one first (run build/demo without --sample)\n",
                    ckpt_path);
            return 1;
        }
        printf("loaded %s (trained %d steps)\n", ckpt_path, attn_optim_steps(m.opt));
        /* The checkpoint brought the RNG state of the end of training, so by
           default these are the samples that training printed; --seed asks
           for others. */
        if (seed_given) attn_rng_seed(attn_context_rng(m.ctx), seed);
    } else {
        if (!corpus_load(&text, data_path)) return 1;
        if (text.n_train < 4L * cfg.context || text.n - text.n_train < 2L * cfg.context) {
            fprintf(stderr, "demo: %s is too short (%ld characters) for a context of %d\n", data_path, text.n,
                    cfg.context);
            return 1;
        }
        printf("data: %s, %ld characters (%ld to train on, %ld held out)\n", data_path, text.n, text.n_train,
               text.n - text.n_train);
        check_writable(ckpt_path, default_ckpt);
        if (!fresh && load_checkpoint(&m, ckpt_path))
            printf("resuming from %s: %d steps trained so far\n", ckpt_path, attn_optim_steps(m.opt));
        else if (!tiny)
            printf("no checkpoint at %s: starting from scratch\n", ckpt_path);
        train(&m, &text, ckpt_path, tty);
        save_checkpoint(&m, ckpt_path);
        if (!tiny) printf("saved %s (run again to train another round, or --sample to only sample)\n", ckpt_path);
        free(text.tokens);
        if (tiny) {
            /* The smoke test also covers loading: sample from a fresh model
               that gets its weights from the file just written. */
            printf("saved %s; sampling from a new model loaded from it\n", ckpt_path);
            attn_context_destroy(m.ctx);
            model_create(&m, &cfg, &threads, seed);
            if (!load_checkpoint(&m, ckpt_path)) {
                fprintf(stderr, "demo: %s vanished after saving\n", ckpt_path);
                return 1;
            }
        }
    }

    print_samples(&m, prompt);

    attn_context_destroy(m.ctx);
    attn_threads_destroy(&threads);
    return 0;
}
