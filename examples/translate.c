/* translate.c - an encoder-decoder Transformer learns to read dates.

   The task is a small translation: English dates written in words become ISO
   dates, one character at a time,

       "the twenty-third of march, nineteen ninety-four"  ->  "1994-03-23"
       "july fifth, two thousand and eight"               ->  "2008-07-05"

   The pairs come from a seeded generator in this file (section 1), so there is
   nothing to download; a tenth of all calendar dates never appears in training
   and the accuracy is measured on those. The model is nn.Transformer
   (attn_transformer: pre-LN encoder and decoder stacks) between two character
   embeddings with sinusoidal positions and a linear layer onto the output
   characters. It trains with AdamW on cross-entropy, then decodes greedily one
   character at a time with a KV cache for the decoder's self-attention, and
   draws the cross-attention of a few held-out pairs as PNG heatmaps, where
   you can watch "1994" read "nineteen ninety-four" at the end of the source
   while "03" reads "march" near the start.

   Build and run, from the repository root:

       cc -O2 -std=c99 -I. examples/translate.c -o build/translate -lm
       build/translate              about a minute on 2 cores
       build/translate --tiny       a tiny model for a few steps (a smoke test)
       build/translate --help       the options

   It prints (abridged; a run on a shared 2-core x86-64, AVX2):

       model: 237454 parameters
         step   800/800  loss 0.0001  lr 1.00e-04   68.1 s  (751 pairs/s)
       KV-cached decoding vs full recomputation: max |logit difference| 0 over 16 pairs
       held-out exact match: 1000/1000 = 100.0%  (year 100.0%, month 100.0%, day 100.0%)
         november third, twenty fifty-seven   -> 2057-11-03 ok
       wrote build/translate_attention_1.png (november third, twenty fifty-seven)

   and build/translate_attention_{0,1,2}.png: one row per decoded character,
   one column per source character, darker where the last decoder layer's
   cross-attention (mean over heads) looks.

   Threads: attn.h's own pool (attn_threads_create: pthreads, or Windows
   threads on _WIN32) is handed to the library through attn_context_desc.threads.

   Sections: 1. data generator  2. model  3. training  4. greedy decoding with
   the KV cache  5. heatmaps (a tiny PNG writer and font)  6. plumbing: a
   clock  7. main. */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#  define _POSIX_C_SOURCE 200809L /* clock_gettime, mkdir under -std=c99 */
#endif
#define ATTN_IMPLEMENTATION
#include "attn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if !defined(_WIN32)
#  define TR_POSIX 1
#  include <sys/stat.h>
#endif

/* ============================================================================
   1. Data generator
   Dates from 1900-01-01 to 2099-12-31, real calendar (leap years included), in
   two word orders so that the alignment is not a plain diagonal:
       format 0  "the <ordinal day> of <month>, <year words>"
       format 1  "<month> <ordinal day>, <year words>"
   Years read as people say them: "nineteen hundred", "nineteen oh five",
   "nineteen ninety-four", "two thousand", "two thousand and eight",
   "twenty twelve". The target is always YYYY-MM-DD.
   ========================================================================= */
#define SRC_MAX 64          /* longest source is ~55 characters */
#define TGT_LEN 10          /* "YYYY-MM-DD" */
#define DEC_LEN (TGT_LEN + 1) /* decoder positions: BOS + 10 in, 10 + EOS out */

/* Source vocabulary: PAD, then these characters. */
static const char SRC_CHARS[] = " ,-abcdefghijklmnopqrstuvwxyz";
#define SRC_VOCAB ((int)sizeof SRC_CHARS) /* the characters + PAD (the NUL's slot) */
/* Target vocabulary: PAD, BOS, EOS, then these characters. */
static const char TGT_CHARS[] = "0123456789-";
enum { PAD = 0, BOS = 1, EOS = 2, TGT_FIRST = 3 };
#define TGT_VOCAB (TGT_FIRST + (int)sizeof TGT_CHARS - 1)

typedef struct pair {
    char src[SRC_MAX + 1];
    char tgt[TGT_LEN + 1];
} pair;

static const char *const ONES[20] = {
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen" };
static const char *const TENS[10] = {
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety" };
static const char *const ORDINALS[20] = {
    "", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
    "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth", "eighteenth",
    "nineteenth" };
static const char *const MONTHS[12] = {
    "january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
    "november", "december" };

static int days_in_month(int y, int m) {
    static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return days[m - 1] + (m == 2 && leap);
}

/* 1..99 in words: "seven", "forty", "ninety-four" */
static void cardinal(char *out, size_t cap, int n) {
    if (n < 20) snprintf(out, cap, "%s", ONES[n]);
    else if (n % 10 == 0) snprintf(out, cap, "%s", TENS[n / 10]);
    else snprintf(out, cap, "%s-%s", TENS[n / 10], ONES[n % 10]);
}

/* 1..31 as an ordinal: "first", "twentieth", "twenty-third" */
static void ordinal(char *out, size_t cap, int n) {
    if (n < 20) snprintf(out, cap, "%s", ORDINALS[n]);
    else if (n % 10 == 0) snprintf(out, cap, "%sieth", n == 20 ? "twent" : "thirt");
    else snprintf(out, cap, "%s-%s", TENS[n / 10], ORDINALS[n % 10]);
}

static void year_words(char *out, size_t cap, int y) {
    char hi[32], lo[32];
    int c = y / 100, r = y % 100;
    if (y >= 2000 && y < 2010) {
        if (r == 0) snprintf(out, cap, "two thousand");
        else snprintf(out, cap, "two thousand and %s", ONES[r]);
        return;
    }
    cardinal(hi, sizeof hi, c);
    if (r == 0) snprintf(lo, sizeof lo, "hundred");
    else if (r < 10) snprintf(lo, sizeof lo, "oh %s", ONES[r]);
    else cardinal(lo, sizeof lo, r);
    snprintf(out, cap, "%s %s", hi, lo);
}

/* dst += s, cut at cap - 1 characters (never happens: sources stay < SRC_MAX) */
static void append(char *dst, size_t cap, const char *s) {
    size_t n = strlen(dst);
    while (*s && n + 1 < cap) dst[n++] = *s++;
    dst[n] = 0;
}

static void make_pair(pair *p, int y, int m, int d, int format) {
    char day[32], year[64];
    const char *parts[2][6] = { { "the ", day, " of ", MONTHS[m - 1], ", ", year },
                                { MONTHS[m - 1], " ", day, ", ", year, "" } };
    int i;
    ordinal(day, sizeof day, d);
    year_words(year, sizeof year, y);
    p->src[0] = 0;
    for (i = 0; i < 6; i++) append(p->src, sizeof p->src, parts[format][i]);
    p->tgt[0] = (char)('0' + y / 1000); p->tgt[1] = (char)('0' + y / 100 % 10);
    p->tgt[2] = (char)('0' + y / 10 % 10); p->tgt[3] = (char)('0' + y % 10);
    p->tgt[4] = '-'; p->tgt[5] = (char)('0' + m / 10); p->tgt[6] = (char)('0' + m % 10);
    p->tgt[7] = '-'; p->tgt[8] = (char)('0' + d / 10); p->tgt[9] = (char)('0' + d % 10);
    p->tgt[10] = 0;
}

/* Held-out dates: a hash of the date, not of the wording, so a test date was
   never seen in training in either word order. */
static int is_held_out(int y, int m, int d) {
    uint32_t h = (uint32_t)((y * 13 + m) * 32 + d) * 2654435761u;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    return h % 10 == 0;
}

/* A random pair from the training dates (held_out 0) or the test dates (1). */
static void random_pair(attn_rng *rng, pair *p, int held_out) {
    for (;;) {
        int y = 1900 + (int)(attn_rng_u32(rng) % 200);
        int m = 1 + (int)(attn_rng_u32(rng) % 12);
        int d = 1 + (int)(attn_rng_u32(rng) % (uint32_t)days_in_month(y, m));
        if (is_held_out(y, m, d) != held_out) continue;
        make_pair(p, y, m, d, (int)(attn_rng_u32(rng) % 2));
        return;
    }
}

/* n distinct held-out pairs (n well below the ~14,600 there are). */
static void make_test_set(attn_rng *rng, pair *set, int n) {
    int i, j;
    for (i = 0; i < n; i++) {
        random_pair(rng, &set[i], 1);
        for (j = 0; j < i; j++)
            if (!strcmp(set[i].src, set[j].src)) { i--; break; }
    }
}

static int32_t src_token(char c) {
    const char *s = strchr(SRC_CHARS, c);
    return c && s ? (int32_t)(s - SRC_CHARS) + 1 : PAD;
}

static int32_t tgt_token(char c) {
    const char *s = strchr(TGT_CHARS, c);
    return c && s ? (int32_t)(s - TGT_CHARS) + TGT_FIRST : PAD;
}

static char tgt_char(int32_t t) { return t >= TGT_FIRST && t < TGT_VOCAB ? TGT_CHARS[t - TGT_FIRST] : '?'; }

/* Sources of n pairs as tokens (n, S), padded to the longest (S), and their
   lengths: the attention masks use the lengths so padding is never attended. */
static int encode_sources(const pair *ps, int n, int32_t *tok, int *len) {
    int b, t, S = 1;
    for (b = 0; b < n; b++) {
        len[b] = (int)strlen(ps[b].src);
        if (len[b] > S) S = len[b];
    }
    for (b = 0; b < n; b++)
        for (t = 0; t < S; t++) tok[b * S + t] = t < len[b] ? src_token(ps[b].src[t]) : PAD;
    return S;
}

/* ============================================================================
   2. Model
   src chars -> embedding + sinusoidal positions -> encoder (memory)
   BOS + target chars -> embedding + positions -> decoder (causal self-attention,
   cross-attention over the memory) -> linear -> logits over TGT_VOCAB.
   Pre-LN layers (norm_first): they train at a higher learning rate without the
   long warmup that post-LN needs, which matters with a 1-2 minute budget.
   ========================================================================= */
#define MAX_LAYERS 4

typedef struct config {
    int d_model, heads, ff, layers;
    int batch, steps, warmup;
    double lr;
    int n_test, n_maps, threads;
    uint64_t seed;
    const char *png_prefix;
} config;

typedef struct model {
    config cfg;
    attn_tensor *src_emb, *tgt_emb, *out_w, *out_b;
    attn_tensor *pe;                         /* (SRC_MAX, d) sinusoidal table, a constant */
    attn_encoder_layer enc_layers[MAX_LAYERS];
    attn_decoder_layer dec_layers[MAX_LAYERS];
    attn_transformer tf;
} model;

static attn_status model_init(attn_context *ctx, model *m, const config *cfg) {
    attn_layer_desc ld;
    int shape[2];
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    memset(&ld, 0, sizeof ld);
    ld.d_model = cfg->d_model;
    ld.heads = cfg->heads;
    ld.dim_feedforward = cfg->ff;
    ld.activation = ATTN_ACT_GELU;
    ld.norm_first = 1;
    ld.num_layers = cfg->layers;
    /* dropout stays 0: 800 steps x 64 draw 51,200 pairs from ~131,000, so
       there is little repetition to overfit on */
    if (attn_transformer_init(ctx, &m->tf, m->enc_layers, m->dec_layers, "transformer.", &ld))
        return attn_error_status(ctx);
    shape[1] = cfg->d_model;
    shape[0] = SRC_VOCAB;
    m->src_emb = attn_param_new(ctx, "src_emb.weight", 2, shape);
    shape[0] = TGT_VOCAB;
    m->tgt_emb = attn_param_new(ctx, "tgt_emb.weight", 2, shape);
    m->out_w = attn_param_new(ctx, "generator.weight", 2, shape);
    m->out_b = attn_param_new(ctx, "generator.bias", 1, shape);
    m->pe = attn_sinusoidal_table(ctx, SRC_MAX, cfg->d_model);
    if (!m->src_emb || !m->tgt_emb || !m->out_w || !m->out_b || !m->pe) return attn_error_status(ctx);
    /* embeddings as nn.Embedding (N(0, 1)): the same scale as the positions they
       are added to; the generator as nn.Linear */
    attn_init_normal(ctx, m->src_emb, 0.0f, 1.0f);
    attn_init_normal(ctx, m->tgt_emb, 0.0f, 1.0f);
    attn_init_kaiming_uniform(ctx, m->out_w, 2.2360679775f);
    attn_init_uniform(ctx, m->out_b, -1.0f / sqrtf((float)cfg->d_model), 1.0f / sqrtf((float)cfg->d_model));
    return attn_error_status(ctx);
}

/* Token embedding + positions start.. of tokens (B, T). */
static attn_tensor *embed(attn_context *ctx, attn_tensor *table, attn_tensor *pe, const int32_t *tok, int B, int T,
                          int start) {
    int shape[2];
    shape[0] = B;
    shape[1] = T;
    return attn_add_positions(ctx, attn_embedding(ctx, table, tok, 2, shape), pe, start);
}

/* The encoder's memory (B, S, d) for sources (B, S) of lengths len. */
static attn_tensor *encode(attn_context *ctx, const model *m, const int32_t *src, const int *len, int B, int S,
                           int training) {
    attn_attention_opts pad;
    attn_layer_masks masks;
    memset(&pad, 0, sizeof pad);
    pad.key_lengths = len;
    masks.self_attn = &pad;
    masks.cross_attn = NULL;
    return attn_encoder_forward(ctx, &m->tf.encoder, embed(ctx, m->src_emb, m->pe, src, B, S, 0), &masks, training);
}

/* Logits (B, T, V) for decoder inputs tgt (B, T), all positions at once (the
   training pass, and the full recomputation the cached decoder is checked against). */
static attn_tensor *decode_all(attn_context *ctx, const model *m, attn_tensor *memory, const int *len,
                               const int32_t *tgt, int B, int T, int training) {
    attn_attention_opts causal, cross;
    attn_layer_masks masks;
    attn_tensor *x;
    memset(&causal, 0, sizeof causal);
    memset(&cross, 0, sizeof cross);
    causal.causal = 1;
    cross.key_lengths = len;
    masks.self_attn = &causal;
    masks.cross_attn = &cross;
    x = embed(ctx, m->tgt_emb, m->pe, tgt, B, T, 0);
    x = attn_decoder_forward(ctx, &m->tf.decoder, x, memory, &masks, training);
    return attn_linear(ctx, x, m->out_w, m->out_b);
}

/* ============================================================================
   3. Training
   Every step draws a fresh batch from the generator (training dates only:
   ~131,000 pairs), so there are no epochs to memorise; AdamW with warmup and
   cosine decay (attn_lr_at), gradients clipped at 1. The context is marked
   before the step and reset after it, which frees the step's activations, tape
   and activation grads in O(1).
   ========================================================================= */
static double now_seconds(void);

static int train(attn_context *ctx, model *m, attn_optim *opt, attn_rng *data_rng) {
    const config *c = &m->cfg;
    attn_lr_desc sched;
    pair *batch = (pair *)malloc(sizeof(pair) * (size_t)c->batch);
    int32_t *src = (int32_t *)malloc(sizeof(int32_t) * (size_t)c->batch * SRC_MAX);
    int32_t *tgt_in = (int32_t *)malloc(sizeof(int32_t) * (size_t)c->batch * DEC_LEN);
    int32_t *tgt_out = (int32_t *)malloc(sizeof(int32_t) * (size_t)c->batch * DEC_LEN);
    int *len = (int *)malloc(sizeof(int) * (size_t)c->batch);
    int step, b, t, ok = 1, report = c->steps >= 20 ? c->steps / 10 : 1;
    double t0 = now_seconds(), loss_sum = 0.0;
    if (!batch || !src || !tgt_in || !tgt_out || !len) {
        fprintf(stderr, "translate: out of memory\n");
        ok = 0;
    }
    memset(&sched, 0, sizeof sched);
    sched.kind = ATTN_LR_WARMUP_COSINE;
    sched.lr = c->lr;
    sched.warmup_steps = c->warmup;
    sched.total_steps = c->steps;
    sched.min_lr = c->lr * 0.05;
    for (step = 0; ok && step < c->steps; step++) {
        attn_context_pos mark = attn_context_mark(ctx);
        attn_tensor *memory, *logits, *loss;
        int S, shape[2];
        for (b = 0; b < c->batch; b++) random_pair(data_rng, &batch[b], 0);
        S = encode_sources(batch, c->batch, src, len);
        /* teacher forcing: the decoder reads BOS + target and must predict
           target + EOS at the same positions */
        for (b = 0; b < c->batch; b++) {
            tgt_in[b * DEC_LEN] = BOS;
            for (t = 0; t < TGT_LEN; t++) {
                tgt_in[b * DEC_LEN + t + 1] = tgt_token(batch[b].tgt[t]);
                tgt_out[b * DEC_LEN + t] = tgt_token(batch[b].tgt[t]);
            }
            tgt_out[b * DEC_LEN + TGT_LEN] = EOS;
        }
        memory = encode(ctx, m, src, len, c->batch, S, 1);
        logits = decode_all(ctx, m, memory, len, tgt_in, c->batch, DEC_LEN, 1);
        shape[0] = c->batch * DEC_LEN;
        shape[1] = TGT_VOCAB;
        /* ignore_index = PAD: with targets of other lengths the padded rows would
           count for nothing (ISO dates all have 10 characters, so none are here) */
        loss = attn_cross_entropy(ctx, attn_reshape(ctx, logits, 2, shape), tgt_out, PAD, 0.0f);
        attn_params_zero_grad(ctx);
        if (!loss || attn_backward(ctx, loss)) ok = 0;
        if (ok) {
            loss_sum += loss->data[0];
            attn_clip_grad_norm(ctx, 1.0f);
            attn_optim_set_lr(opt, attn_lr_at(&sched, step));
            if (attn_optim_step(opt)) ok = 0;
        }
        attn_context_reset(ctx, mark);
        if (!ok) {
            fprintf(stderr, "translate: training step %d failed: %s\n", step, attn_error_message(ctx));
            break;
        }
        if ((step + 1) % report == 0 || step + 1 == c->steps) {
            int done = (step + 1) % report ? (step + 1) % report : report;
            double el = now_seconds() - t0;
            printf("  step %5d/%d  loss %.4f  lr %.2e  %5.1f s  (%.0f pairs/s)\n", step + 1, c->steps,
                   loss_sum / done, attn_lr_at(&sched, step), el, (double)(step + 1) * c->batch / el);
            fflush(stdout);
            loss_sum = 0.0;
        }
    }
    free(batch); free(src); free(tgt_in); free(tgt_out); free(len);
    return ok;
}

/* ============================================================================
   4. Greedy decoding with the KV cache
   The library's decoder layer has no incremental path, so one decoding step
   runs the layer's own modules in the layer's own order (see
   attn_decoder_layer_forward): self-attention through attn_mha_forward_cached,
   which appends this position's keys and values to the layer's cache and
   attends over everything so far; cross-attention over the encoder's memory
   with attn_mha_forward; the feed-forward block and the three norms.
   Each step then costs one position's work instead of the whole prefix's,
   except that attn_mha_forward projects the memory's keys and values again at
   every step (the API has no cache for them; with ~50 source positions that
   is cheap here).
   decode_check below shows once that this equals full recomputation.
   ========================================================================= */
static attn_tensor *layer_norm(attn_context *ctx, const attn_layernorm_params *n, attn_tensor *x) {
    return attn_layernorm(ctx, x, n->weight, n->bias, n->eps);
}

static attn_tensor *feed_forward(attn_context *ctx, const attn_decoder_layer *l, attn_tensor *x) {
    attn_tensor *h = attn_linear(ctx, x, l->linear1_weight, l->linear1_bias);
    h = l->desc.activation == ATTN_ACT_GELU ? attn_gelu(ctx, h) : attn_relu(ctx, h);
    return attn_linear(ctx, h, l->linear2_weight, l->linear2_bias);
}

/* Cross-attention weights of query x (B, 1, d) over memory (B, S, d), averaged
   over heads, added into w (B rows of S). attn_attention_weights wants the
   projected queries and keys, so project them with the module's weights: the
   first and second E-row blocks of in_proj_weight/in_proj_bias. */
static void cross_weights(attn_context *ctx, const attn_mha *mha, attn_tensor *x, attn_tensor *memory,
                          const attn_attention_opts *opts, float *w) {
    int E = mha->embed_dim, H = mha->heads, B = x->shape[0], S = memory->shape[1], b, h, j;
    attn_tensor *wq = mha->in_proj_weight ? attn_slice(ctx, mha->in_proj_weight, 0, 0, E) : mha->q_proj_weight;
    attn_tensor *wk = mha->in_proj_weight ? attn_slice(ctx, mha->in_proj_weight, 0, E, 2 * E) : mha->k_proj_weight;
    attn_tensor *bq = mha->in_proj_bias ? attn_slice(ctx, mha->in_proj_bias, 0, 0, E) : NULL;
    attn_tensor *bk = mha->in_proj_bias ? attn_slice(ctx, mha->in_proj_bias, 0, E, 2 * E) : NULL;
    attn_tensor *a = attn_attention_weights(ctx, attn_linear(ctx, x, wq, bq), attn_linear(ctx, memory, wk, bk), H,
                                            opts);
    if (!a) return; /* the error stays on ctx */
    for (b = 0; b < B; b++)
        for (h = 0; h < H; h++)
            for (j = 0; j < S; j++) w[(size_t)b * S + j] += a->data[((size_t)b * H + h) * S + j] / H;
}

/* One position through one decoder layer: x (B, 1, d) -> (B, 1, d). */
static attn_tensor *decoder_layer_step(attn_context *ctx, const attn_decoder_layer *l, attn_tensor *x,
                                       attn_tensor *memory, attn_kv_cache *cache, const attn_attention_opts *cross,
                                       float *weights) {
    attn_tensor *h;
    if (l->desc.norm_first) {
        x = attn_add(ctx, x, attn_mha_forward_cached(ctx, &l->self_attn, layer_norm(ctx, &l->norm1, x), cache));
        h = layer_norm(ctx, &l->norm2, x);
        if (weights && h) cross_weights(ctx, &l->multihead_attn, h, memory, cross, weights);
        x = attn_add(ctx, x, attn_mha_forward(ctx, &l->multihead_attn, h, memory, memory, cross));
        return attn_add(ctx, x, feed_forward(ctx, l, layer_norm(ctx, &l->norm3, x)));
    }
    x = layer_norm(ctx, &l->norm1, attn_add(ctx, x, attn_mha_forward_cached(ctx, &l->self_attn, x, cache)));
    if (weights && x) cross_weights(ctx, &l->multihead_attn, x, memory, cross, weights);
    x = layer_norm(ctx, &l->norm2,
                   attn_add(ctx, x, attn_mha_forward(ctx, &l->multihead_attn, x, memory, memory, cross)));
    return layer_norm(ctx, &l->norm3, attn_add(ctx, x, feed_forward(ctx, l, x)));
}

/* Greedy decoding of n pairs (n <= the arrays' room) into out[b] (TGT_LEN + 1
   chars each, NUL-terminated at EOS). Optional outputs:
     xattn   (n, DEC_LEN, SRC_MAX): cross-attention of every step in the last
             decoder layer, averaged over heads (the last layer's is the
             sharpest alignment; the first layer's is more diffuse);
     logits  (n, DEC_LEN, TGT_VOCAB): every step's logits (for decode_check);
     tokens  (n, DEC_LEN): the decoder's inputs, BOS + the chosen characters. */
static int decode_greedy(attn_context *ctx, const model *m, const pair *ps, int n, char (*out)[TGT_LEN + 1],
                         float *xattn, float *logits_out, int32_t *tokens) {
    const attn_decoder *dec = &m->tf.decoder;
    attn_kv_cache cache[MAX_LAYERS];
    attn_attention_opts cross;
    attn_tensor *memory;
    attn_context_pos mark = attn_context_mark(ctx);
    int32_t *src = (int32_t *)malloc(sizeof(int32_t) * (size_t)n * SRC_MAX);
    int32_t *tok = (int32_t *)malloc(sizeof(int32_t) * (size_t)n);
    float *w = xattn ? (float *)malloc(sizeof(float) * (size_t)n * SRC_MAX) : NULL;
    int *len = (int *)malloc(sizeof(int) * (size_t)n);
    int *done = (int *)calloc((size_t)n, sizeof(int));
    int was = attn_grad_enable(ctx, 0), S, b, t, l, j, v, ok = 0;
    if (!src || !tok || !len || !done || (xattn && !w)) goto finish;
    S = encode_sources(ps, n, src, len);
    if (!(memory = encode(ctx, m, src, len, n, S, 0))) goto finish;
    for (l = 0; l < dec->desc.num_layers; l++)
        if (attn_kv_cache_init(ctx, &cache[l], &dec->layers[l].self_attn, n, DEC_LEN)) goto finish;
    memset(&cross, 0, sizeof cross);
    cross.key_lengths = len;
    for (b = 0; b < n; b++) {
        tok[b] = BOS;
        out[b][0] = 0;
    }
    for (t = 0; t < DEC_LEN; t++) {
        attn_context_pos step_mark = attn_context_mark(ctx); /* the caches stay, the step's tensors go */
        attn_tensor *x = embed(ctx, m->tgt_emb, m->pe, tok, n, 1, t), *logits;
        if (tokens)
            for (b = 0; b < n; b++) tokens[b * DEC_LEN + t] = tok[b];
        if (w) memset(w, 0, sizeof(float) * (size_t)n * S);
        for (l = 0; l < dec->desc.num_layers && x; l++)
            x = decoder_layer_step(ctx, &dec->layers[l], x, memory, &cache[l], &cross,
                                   l == dec->desc.num_layers - 1 ? w : NULL);
        if (x && dec->norm.weight) x = layer_norm(ctx, &dec->norm, x);
        if (!(logits = attn_linear(ctx, x, m->out_w, m->out_b)) || attn_error_status(ctx)) goto finish;
        for (b = 0; b < n; b++) {
            const float *row = logits->data + (size_t)b * TGT_VOCAB;
            int best = 0;
            for (v = 1; v < TGT_VOCAB; v++)
                if (row[v] > row[best]) best = v;
            if (logits_out) memcpy(logits_out + ((size_t)b * DEC_LEN + t) * TGT_VOCAB, row, sizeof(float) * TGT_VOCAB);
            if (xattn)
                for (j = 0; j < SRC_MAX; j++)
                    xattn[((size_t)b * DEC_LEN + t) * SRC_MAX + j] =
                        j < S ? w[(size_t)b * S + j] : 0.0f;
            /* a pair that has emitted EOS keeps decoding (the batch moves in
               step) but its text is finished */
            if (best == EOS || t == TGT_LEN) done[b] = 1;
            if (!done[b]) {
                out[b][t] = tgt_char(best);
                out[b][t + 1] = 0;
            }
            tok[b] = best;
        }
        attn_context_reset(ctx, step_mark);
    }
    ok = 1;
finish:
    if (!ok) fprintf(stderr, "translate: decoding failed: %s\n", attn_error_message(ctx));
    attn_context_reset(ctx, mark);
    attn_grad_enable(ctx, was);
    free(src); free(tok); free(w); free(len); free(done);
    return ok;
}

/* Decode n pairs with the cache, then run the library's full decoder
   (attn_decoder_forward, causal mask) over the same inputs at once: every
   position's logits must agree up to float rounding. Returns the largest
   difference, or -1 on failure. */
static double decode_check(attn_context *ctx, const model *m, const pair *ps, int n) {
    char (*out)[TGT_LEN + 1] = (char (*)[TGT_LEN + 1])malloc(sizeof *out * (size_t)n);
    float *cached = (float *)malloc(sizeof(float) * (size_t)n * DEC_LEN * TGT_VOCAB);
    int32_t *tokens = (int32_t *)malloc(sizeof(int32_t) * (size_t)n * DEC_LEN);
    int32_t *src = (int32_t *)malloc(sizeof(int32_t) * (size_t)n * SRC_MAX);
    int *len = (int *)malloc(sizeof(int) * (size_t)n);
    double worst = -1.0;
    attn_context_pos mark = attn_context_mark(ctx);
    int was = attn_grad_enable(ctx, 0);
    if (out && cached && tokens && src && len && decode_greedy(ctx, m, ps, n, out, NULL, cached, tokens)) {
        int S = encode_sources(ps, n, src, len);
        attn_tensor *full = decode_all(ctx, m, encode(ctx, m, src, len, n, S, 0), len, tokens, n, DEC_LEN, 0);
        size_t i;
        if (full)
            for (worst = 0.0, i = 0; i < (size_t)n * DEC_LEN * TGT_VOCAB; i++)
                if (fabs((double)full->data[i] - cached[i]) > worst) worst = fabs((double)full->data[i] - cached[i]);
    }
    attn_context_reset(ctx, mark);
    attn_grad_enable(ctx, was);
    free(out); free(cached); free(tokens); free(src); free(len);
    return worst;
}

/* ============================================================================
   5. Heatmaps
   A PNG needs a zlib stream, but not a compressed one: stored deflate blocks
   (up to 65535 bytes each, no compression), a CRC-32 per chunk and an
   Adler-32 over the raw bytes are the whole format for an 8-bit palette
   image. Labels are drawn with a 5x7 font, twice its size, one character per
   16-pixel cell: the source along the top, the decoded characters down the
   left.
   ========================================================================= */
static const char FONT_CHARS[] = "abcdefghijklmnopqrstuvwxyz0123456789-,";
static const unsigned char FONT[][7] = { /* rows top to bottom, bit 4 = leftmost column */
    {0x00,0x00,0x0e,0x01,0x0f,0x11,0x0f}, {0x10,0x10,0x16,0x19,0x11,0x11,0x1e},
    {0x00,0x00,0x0e,0x10,0x10,0x11,0x0e}, {0x01,0x01,0x0d,0x13,0x11,0x11,0x0f},
    {0x00,0x00,0x0e,0x11,0x1f,0x10,0x0e}, {0x06,0x09,0x08,0x1c,0x08,0x08,0x08},
    {0x00,0x0f,0x11,0x11,0x0f,0x01,0x0e}, {0x10,0x10,0x16,0x19,0x11,0x11,0x11},
    {0x04,0x00,0x0c,0x04,0x04,0x04,0x0e}, {0x02,0x00,0x06,0x02,0x02,0x12,0x0c},
    {0x10,0x10,0x12,0x14,0x18,0x14,0x12}, {0x0c,0x04,0x04,0x04,0x04,0x04,0x0e},
    {0x00,0x00,0x1a,0x15,0x15,0x11,0x11}, {0x00,0x00,0x16,0x19,0x11,0x11,0x11},
    {0x00,0x00,0x0e,0x11,0x11,0x11,0x0e}, {0x00,0x1e,0x11,0x11,0x1e,0x10,0x10},
    {0x00,0x0f,0x11,0x11,0x0f,0x01,0x01}, {0x00,0x00,0x16,0x19,0x10,0x10,0x10},
    {0x00,0x00,0x0e,0x10,0x0e,0x01,0x1e}, {0x08,0x08,0x1c,0x08,0x08,0x09,0x06},
    {0x00,0x00,0x11,0x11,0x11,0x13,0x0d}, {0x00,0x00,0x11,0x11,0x11,0x0a,0x04},
    {0x00,0x00,0x11,0x11,0x15,0x15,0x0a}, {0x00,0x00,0x11,0x0a,0x04,0x0a,0x11},
    {0x00,0x11,0x11,0x11,0x0f,0x01,0x0e}, {0x00,0x00,0x1f,0x02,0x04,0x08,0x1f},
    {0x0e,0x11,0x13,0x15,0x19,0x11,0x0e}, {0x04,0x0c,0x04,0x04,0x04,0x04,0x0e},
    {0x0e,0x11,0x01,0x02,0x04,0x08,0x1f}, {0x1f,0x02,0x04,0x02,0x01,0x11,0x0e},
    {0x02,0x06,0x0a,0x12,0x1f,0x02,0x02}, {0x1f,0x10,0x1e,0x01,0x01,0x11,0x0e},
    {0x06,0x08,0x10,0x1e,0x11,0x11,0x0e}, {0x1f,0x01,0x02,0x04,0x08,0x08,0x08},
    {0x0e,0x11,0x11,0x0e,0x11,0x11,0x0e}, {0x0e,0x11,0x11,0x0f,0x01,0x02,0x0c},
    {0x00,0x00,0x00,0x1f,0x00,0x00,0x00}, {0x00,0x00,0x00,0x00,0x0c,0x04,0x08},
};
#define CELL 16

static uint32_t crc32_update(uint32_t crc, const unsigned char *p, size_t n) {
    size_t i;
    int k;
    crc = ~crc;
    for (i = 0; i < n; i++) { /* bitwise: images here are small, no table needed */
        crc ^= p[i];
        for (k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static void put_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8); p[3] = (unsigned char)v;
}

/* One chunk: length, type, data, CRC of type + data. */
static int png_chunk(FILE *f, const char *type, const unsigned char *data, size_t n) {
    unsigned char be[4];
    uint32_t crc = crc32_update(0, (const unsigned char *)type, 4);
    crc = crc32_update(crc, data, n);
    put_be32(be, (uint32_t)n);
    if (fwrite(be, 1, 4, f) != 4 || fwrite(type, 1, 4, f) != 4 || (n && fwrite(data, 1, n, f) != n)) return 0;
    put_be32(be, crc);
    return fwrite(be, 1, 4, f) == 4;
}

/* An 8-bit palette image (w x h bytes, each an index into palette's 256 RGB
   triples) as a PNG file: a third of the bytes of RGB for the same picture. */
static int png_write(const char *path, int w, int h, const unsigned char *pixels, const unsigned char *palette) {
    static const unsigned char signature[8] = { 137, 'P', 'N', 'G', 13, 10, 26, 10 };
    size_t row = (size_t)w + 1, raw = row * (size_t)h, blocks = (raw + 65534) / 65535;
    size_t zn = 2 + raw + 5 * blocks + 4, i, pos = 0, done = 0;
    unsigned char ihdr[13], *z = (unsigned char *)malloc(zn);
    uint32_t a = 1, b = 0; /* Adler-32 */
    FILE *f;
    int y, ok;
    if (!z) return 0;
    z[pos++] = 0x78; /* zlib header: deflate, 32K window, no dictionary, (0x7801 % 31 == 0) */
    z[pos++] = 0x01;
    for (y = 0; y < h; y++) {
        /* each image row is a filter byte (0: none) and its pixels; cut the
           rows into stored blocks as they come */
        for (i = 0; i < row; i++) {
            unsigned char c = i ? pixels[(size_t)y * w + i - 1] : 0;
            if (done % 65535 == 0) {
                size_t left = raw - done, n = left < 65535 ? left : 65535;
                z[pos++] = left <= 65535; /* BFINAL on the last block, BTYPE 00 */
                z[pos++] = (unsigned char)n; z[pos++] = (unsigned char)(n >> 8);
                z[pos++] = (unsigned char)~n; z[pos++] = (unsigned char)(~n >> 8);
            }
            z[pos++] = c;
            done++;
            a = (a + c) % 65521u;
            b = (b + a) % 65521u;
        }
    }
    put_be32(z + pos, (b << 16) | a);
    pos += 4;
    put_be32(ihdr, (uint32_t)w);
    put_be32(ihdr + 4, (uint32_t)h);
    ihdr[8] = 8;  /* bits per index */
    ihdr[9] = 3;  /* palette colour */
    ihdr[10] = ihdr[11] = ihdr[12] = 0; /* deflate, adaptive filtering, no interlace */
    if (!(f = fopen(path, "wb"))) {
        free(z);
        return 0;
    }
    ok = fwrite(signature, 1, 8, f) == 8 && png_chunk(f, "IHDR", ihdr, 13) && png_chunk(f, "PLTE", palette, 768) &&
         png_chunk(f, "IDAT", z, pos) && png_chunk(f, "IEND", NULL, 0);
    ok = (fclose(f) == 0) && ok;
    free(z);
    return ok;
}

/* The palette: 0..254 a ramp from white through blue to near-black (most of a
   row is near zero and stays white, so the few cells a character reads stand
   out), 255 the colour of the labels. */
#define INK 255
static void make_palette(unsigned char *pal) {
    static const float stops[4][3] = { { 255, 255, 255 }, { 120, 170, 230 }, { 30, 70, 160 }, { 10, 15, 50 } };
    int c, k;
    for (c = 0; c < INK; c++) {
        float s = 3.0f * (float)c / (INK - 1);
        int i = s >= 3.0f ? 2 : (int)s;
        float f = s - (float)i;
        for (k = 0; k < 3; k++)
            pal[c * 3 + k] = (unsigned char)(stops[i][k] + f * (stops[i + 1][k] - stops[i][k]) + 0.5f);
    }
    pal[INK * 3] = pal[INK * 3 + 1] = pal[INK * 3 + 2] = 0x20;
}

static void draw_char(unsigned char *pixels, int w, int x0, int y0, char c) {
    const char *p = c ? strchr(FONT_CHARS, c) : NULL;
    int r, col, dy, dx;
    if (!p) return; /* space: nothing to draw */
    for (r = 0; r < 7; r++)
        for (col = 0; col < 5; col++)
            if (FONT[p - FONT_CHARS][r] & (0x10 >> col))
                for (dy = 0; dy < 2; dy++)
                    for (dx = 0; dx < 2; dx++) pixels[(size_t)(y0 + 2 * r + dy) * w + x0 + 2 * col + dx] = INK;
}

/* Heatmap of weights (rows x SRC_MAX, row i = output character i) with the
   source (S characters) on top and the output down the left side. Each row is
   scaled to its own maximum: a row's weights sum to 1 and spread over a whole
   word ("ninety" for the 9), so unscaled peaks of 0.2-0.5 would look pale. */
static int heatmap_write(const char *path, const char *src, const char *outs, const float *weights) {
    int S = (int)strlen(src), T = (int)strlen(outs), left = CELL + 6, top = CELL + 6;
    int w = left + S * CELL + 4, h = top + T * CELL + 4, i, j, y, ok;
    unsigned char palette[768], *pixels = (unsigned char *)malloc((size_t)w * h);
    if (!pixels) return 0;
    make_palette(palette);
    memset(pixels, 0, (size_t)w * h); /* white */
    for (j = 0; j < S; j++) draw_char(pixels, w, left + j * CELL + 3, 2, src[j]);
    for (i = 0; i < T; i++) {
        const float *row = weights + (size_t)i * SRC_MAX;
        float peak = 1e-6f;
        for (j = 0; j < S; j++)
            if (row[j] > peak) peak = row[j];
        draw_char(pixels, w, 2, top + i * CELL + 1, outs[i]);
        for (j = 0; j < S; j++) {
            float v = row[j] / peak;
            int c = (int)((v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v) * (INK - 1) + 0.5f);
            for (y = 0; y < CELL; y++) memset(pixels + (size_t)(top + i * CELL + y) * w + left + j * CELL, c, CELL);
        }
    }
    ok = png_write(path, w, h, pixels, palette);
    free(pixels);
    return ok;
}

/* ============================================================================
   6. Plumbing: a clock
   ========================================================================= */
static double now_seconds(void) {
#ifdef TR_POSIX
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
#else
    return (double)clock() / CLOCKS_PER_SEC; /* wall time on Windows */
#endif
}

/* ============================================================================
   7. Main
   ========================================================================= */
static void usage(FILE *f) {
    fprintf(f,
            "usage: translate [--tiny] [--steps N] [--threads N] [--seed N] [--help]\n"
            "  Trains an encoder-decoder Transformer to turn dates in words into ISO dates\n"
            "  (\"the twenty-third of march, nineteen ninety-four\" -> \"1994-03-23\"), then\n"
            "  decodes held-out dates greedily with a KV cache and prints the exact-match\n"
            "  accuracy. Cross-attention heatmaps go to build/translate_attention_N.png.\n"
            "  --tiny       a tiny model for a few steps (seconds; a smoke test)\n"
            "  --steps N    training steps (default 800)\n"
            "  --threads N  threads for the library (default: the CPU count)\n"
            "  --seed N     seed of the data and the initial weights (default 1)\n");
}

static int parse_int(const char *s, int lo, int hi, int *out) {
    char *end;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || end == s || *end || v < lo || v > hi) return 0;
    *out = (int)v;
    return 1;
}

int main(int argc, char **argv) {
    config cfg;
    attn_context_desc cd;
    attn_context *ctx = NULL;
    attn_optim_desc od;
    attn_optim *opt;
    attn_rng data_rng, test_rng;
    model *m = (model *)malloc(sizeof(model));
    pair *test = NULL;
    char (*out)[TGT_LEN + 1] = NULL;
    float *xattn = NULL;
    int i, tiny = 0, steps = -1, threads = -1, seed = 1, rc = 1, correct = 0, fields[3] = { 0, 0, 0 };
    double t0, t_train, t_decode, check;
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            free(m);
            return 0;
        } else if (!strcmp(argv[i], "--tiny")) {
            tiny = 1;
        } else if (!strcmp(argv[i], "--steps") && i + 1 < argc && parse_int(argv[i + 1], 1, 1000000, &steps)) {
            i++;
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc && parse_int(argv[i + 1], 1, 64, &threads)) {
            i++;
        } else if (!strcmp(argv[i], "--seed") && i + 1 < argc && parse_int(argv[i + 1], 0, 2147483647, &seed)) {
            i++;
        } else {
            fprintf(stderr, "translate: bad argument '%s'\n", argv[i]);
            usage(stderr);
            free(m);
            return 2;
        }
    }
    if (!m) return 1;

    memset(&cfg, 0, sizeof cfg);
    if (tiny) { /* enough to run every code path, not to learn */
        cfg.d_model = 16; cfg.heads = 2; cfg.ff = 32; cfg.layers = 1;
        cfg.batch = 8; cfg.steps = 4; cfg.warmup = 1; cfg.lr = 1e-3;
        cfg.n_test = 16; cfg.n_maps = 1; cfg.png_prefix = "build/translate_tiny_attention_";
    } else {
        cfg.d_model = 64; cfg.heads = 4; cfg.ff = 256; cfg.layers = 2;
        cfg.batch = 64; cfg.steps = 800; cfg.warmup = 100; cfg.lr = 2e-3;
        cfg.n_test = 1000; cfg.n_maps = 3; cfg.png_prefix = "build/translate_attention_";
    }
    if (steps > 0) cfg.steps = steps;
    if (cfg.warmup > cfg.steps / 5) cfg.warmup = cfg.steps / 5;
    cfg.seed = (uint64_t)seed;

    memset(&cd, 0, sizeof cd);
    cd.seed = cfg.seed;
    cd.block_size = (size_t)16 << 20; /* a training step holds ~150 MiB of activations and grads */
    /* n - 1 workers and this thread; the library splits the work so that the
       result does not depend on who runs what */
    cd.threads = attn_threads_create(threads > 0 ? threads : 0); /* 0: one per CPU */
    cfg.threads = cd.threads.n_threads;
    if (!(ctx = attn_context_create(&cd))) {
        fprintf(stderr, "translate: no memory for a context\n");
        goto cleanup;
    }
    printf("translate: d_model %d, %d heads, ff %d, %d+%d layers, batch %d, %d steps, %d thread%s, %s kernels\n",
           cfg.d_model, cfg.heads, cfg.ff, cfg.layers, cfg.layers, cfg.batch, cfg.steps, cfg.threads,
           cfg.threads == 1 ? "" : "s", attn_simd_name(attn_simd_active()));

    /* The data: two independent streams, so the test set does not depend on
       how many training batches were drawn. */
    attn_rng_seed(&data_rng, cfg.seed * 2 + 1);
    attn_rng_seed(&test_rng, cfg.seed * 2 + 2);
    test = (pair *)malloc(sizeof(pair) * (size_t)cfg.n_test);
    out = (char (*)[TGT_LEN + 1])malloc(sizeof *out * (size_t)cfg.n_test);
    xattn = (float *)malloc(sizeof(float) * (size_t)cfg.n_test * DEC_LEN * SRC_MAX);
    if (!test || !out || !xattn) {
        fprintf(stderr, "translate: out of memory\n");
        goto cleanup;
    }
    make_test_set(&test_rng, test, cfg.n_test);
    {
        pair ex;
        random_pair(&data_rng, &ex, 0);
        printf("data: e.g. \"%s\" -> \"%s\"; %d held-out pairs (dates never trained on)\n", ex.src, ex.tgt, cfg.n_test);
    }

    if (model_init(ctx, m, &cfg)) {
        fprintf(stderr, "translate: model: %s\n", attn_error_message(ctx));
        goto cleanup;
    }
    {
        size_t n = 0;
        attn_param *p;
        for (p = attn_params(ctx); p; p = p->next) n += attn_tensor_numel(p->tensor);
        printf("model: %zu parameters\n", n);
    }
    memset(&od, 0, sizeof od);
    od.kind = ATTN_OPTIM_ADAMW;
    od.lr = cfg.lr;
    od.weight_decay = 0.01;
    od.beta2 = 0.98; /* as in "Attention Is All You Need": steadier with few steps */
    if (!(opt = attn_optim_create(ctx, &od))) { /* before the training marks: its state must stay */
        fprintf(stderr, "translate: optimizer: %s\n", attn_error_message(ctx));
        goto cleanup;
    }

    printf("training:\n");
    t0 = now_seconds();
    if (!train(ctx, m, opt, &data_rng)) goto cleanup;
    t_train = now_seconds() - t0;

    /* The cache must not change the answer: compare with full recomputation once. */
    check = decode_check(ctx, m, test, cfg.n_test < 16 ? cfg.n_test : 16);
    if (check < 0) goto cleanup;
    printf("KV-cached decoding vs full recomputation: max |logit difference| %.2g over %d pairs\n", check,
           cfg.n_test < 16 ? cfg.n_test : 16);
    if (check > 1e-3) { /* float rounding could differ by ~1e-6; more is a bug */
        fprintf(stderr, "translate: the cached decoder disagrees with the full one\n");
        goto cleanup;
    }

    t0 = now_seconds();
    for (i = 0; i < cfg.n_test; i += 250) { /* 250 at a time bounds the arena */
        int n = cfg.n_test - i < 250 ? cfg.n_test - i : 250;
        if (!decode_greedy(ctx, m, test + i, n, out + i, xattn + (size_t)i * DEC_LEN * SRC_MAX, NULL, NULL))
            goto cleanup;
    }
    t_decode = now_seconds() - t0;
    for (i = 0; i < cfg.n_test; i++) {
        correct += !strcmp(out[i], test[i].tgt);
        fields[0] += !strncmp(out[i], test[i].tgt, 4);
        fields[1] += strlen(out[i]) >= 7 && !strncmp(out[i] + 5, test[i].tgt + 5, 2);
        fields[2] += strlen(out[i]) >= 10 && !strncmp(out[i] + 8, test[i].tgt + 8, 2);
    }
    printf("held-out exact match: %d/%d = %.1f%%  (year %.1f%%, month %.1f%%, day %.1f%%)\n", correct, cfg.n_test,
           100.0 * correct / cfg.n_test, 100.0 * fields[0] / cfg.n_test, 100.0 * fields[1] / cfg.n_test,
           100.0 * fields[2] / cfg.n_test);
    printf("time: training %.1f s, greedy decoding of %d pairs %.2f s; arena peak %.0f MiB\n", t_train, cfg.n_test,
           t_decode, (double)attn_arena_peak(attn_context_arena(ctx)) / (1 << 20));
    printf("samples:\n");
    for (i = 0; i < cfg.n_test && i < 8; i++)
        printf("  %-56s -> %-10s %s\n", test[i].src, out[i], strcmp(out[i], test[i].tgt) ? test[i].tgt : "ok");
    {
        int shown = 0;
        for (i = 0; i < cfg.n_test && shown < 3; i++)
            if (strcmp(out[i], test[i].tgt)) {
                if (!shown++) printf("some mistakes:\n");
                printf("  %-56s -> %-10s want %s\n", test[i].src, out[i], test[i].tgt);
            }
    }

    /* Heatmaps of the first pairs (alternating word orders, as the test set does). */
#ifdef TR_POSIX
    mkdir("build", 0777); /* fine if it exists; if it cannot be made, the writes below say so */
#endif
    for (i = 0; i < cfg.n_maps && i < cfg.n_test; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s%d.png", cfg.png_prefix, i);
        if (heatmap_write(path, test[i].src, out[i], xattn + (size_t)i * DEC_LEN * SRC_MAX))
            printf("wrote %s (%s)\n", path, test[i].src);
        else
            printf("could not write %s (skipped)\n", path);
    }
    rc = 0;

cleanup:
    if (rc && ctx && attn_error_status(ctx)) fprintf(stderr, "translate: %s\n", attn_error_message(ctx));
    attn_context_destroy(ctx);
    attn_threads_destroy(&cd.threads);
    free(m); free(test); free(out); free(xattn);
    return rc;
}
