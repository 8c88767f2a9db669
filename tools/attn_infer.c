/* tools/attn_infer.c - run a PyTorch Transformer module, saved as safetensors,
   on a .npy input, and write its output as .npy.

       make attn-infer
       build/attn-infer --model M.safetensors --arch ARCH --heads H
                        [--norm-first] [--activation relu|gelu] [--causal]
                        --input X.npy [--memory MEM.npy | --target TGT.npy]
                        --output Y.npy

   ARCH names the torch.nn module whose state_dict M holds, built with
   batch_first=True and run in eval mode (no dropout):
     mha            nn.MultiheadAttention as self-attention: out = mha(x, x, x)
     encoder-layer  nn.TransformerEncoderLayer: out = layer(x)
     decoder-layer  nn.TransformerDecoderLayer: out = layer(x, memory)
     encoder        nn.TransformerEncoder (final "norm" if M has norm.*)
     decoder        nn.TransformerDecoder (final "norm" if M has norm.*)
     transformer    nn.Transformer: out = model(src = x, tgt = target)
   d_model, dim_feedforward and the number of layers come from the tensors'
   shapes and names (layers.N.*); the heads count cannot, so --heads is
   required. LayerNorm eps is 1e-5, the activation relu unless --activation
   gelu (erf GELU). MHA's bias=False is recognised (no in_proj_bias and no
   out_proj.bias). --causal masks the self-attention of the input (mha, the
   encoder kinds) or of tgt (the decoder kinds, transformer) with torch's
   triu(ones(T, T), 1) mask: position i sees positions j <= i.

   Inputs are float32 (B, T, d) .npy files; --memory is (B, S, d), --target
   (B, T', d). The output is (B, T, d) ((B, T', d) for transformer), float32,
   .npy version 1.0. The model is loaded strictly: every parameter must be in
   the file with its exact shape and the file may hold nothing else. Any
   problem (a flag missing, unknown, repeated or not for this ARCH, a file
   that cannot be read or parsed, a tensor missing, of the wrong shape or
   extra, an input of the wrong shape) is one line on stderr naming the flag
   or tensor, and exit status 1.

   Everything happens in attn_infer_run(), which main() only wraps, so the
   tests call it in-process (tests/test_infer.c defines ATTN_INFER_NO_MAIN and
   includes this file; the attn.h implementation then comes from the tests).
   The reference outputs come from tools/gen_infer_fixtures.py. */
#ifndef ATTN_INFER_NO_MAIN
#define ATTN_IMPLEMENTATION
#endif
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn.h"

/* Run the tool on argv[1..argc-1] (argv[0] is the program's name). Returns
   the exit status: 0 on success, with a one-line summary in msg (or the usage
   text after --help); 1 on any error, with the message in msg (no trailing
   newline). msg may be NULL when msg_size is 0. */
int attn_infer_run(int argc, char **argv, char *msg, size_t msg_size);

#define INFER_MAX_LAYERS 4096

enum { INFER_MHA = 0, INFER_ENC_LAYER, INFER_DEC_LAYER, INFER_ENCODER, INFER_DECODER, INFER_TRANSFORMER, INFER_N_ARCH };
static const char *const infer_arch_names[INFER_N_ARCH] = { "mha",     "encoder-layer", "decoder-layer",
                                                            "encoder", "decoder",       "transformer" };

static const char infer_usage[] =
    "usage: attn-infer --model M.safetensors --arch ARCH --heads H [--norm-first]\n"
    "                  [--activation relu|gelu] [--causal] --input X.npy\n"
    "                  [--memory MEM.npy | --target TGT.npy] --output Y.npy\n"
    "Runs a PyTorch module saved as safetensors (state_dict names) on X and writes Y.\n"
    "  ARCH: mha | encoder-layer | decoder-layer | encoder | decoder | transformer\n"
    "        (nn.MultiheadAttention as self-attention, nn.TransformerEncoderLayer, ...,\n"
    "        nn.Transformer), batch_first=True, eval mode\n"
    "  --heads H        number of attention heads (must divide d_model)\n"
    "  --norm-first     the layers were built with norm_first=True (not for mha)\n"
    "  --activation A   relu (default) or gelu (not for mha)\n"
    "  --causal         causal mask on the self-attention of X (mha, encoder kinds)\n"
    "                   or of the target (decoder kinds, transformer)\n"
    "  --input X.npy    float32 (B, T, d); nn.Transformer's src\n"
    "  --memory M.npy   float32 (B, S, d), decoder-layer and decoder only\n"
    "  --target T.npy   float32 (B, T', d), nn.Transformer's tgt (transformer only)\n"
    "  --output Y.npy   written as float32 (B, T, d) ((B, T', d) for transformer)\n"
    "d_model, dim_feedforward and the layer counts come from the tensors; LayerNorm eps 1e-5.\n"
    "Errors: one line on stderr, exit status 1.";

typedef struct infer_opts {
    const char *model, *arch_name, *heads_text, *activation, *input, *memory, *target, *output;
    int norm_first, causal;
    int arch, heads, gelu;
} infer_opts;

typedef struct infer_state {
    char *msg;
    size_t msg_size;
    attn_context *ctx;
    unsigned char *model_buf;
    size_t model_size;
    attn_safetensors st;
    infer_opts o;
} infer_state;

static int infer_fail(infer_state *s, const char *fmt, ...) {
    va_list ap;
    if (s->msg && s->msg_size) {
        va_start(ap, fmt);
        vsnprintf(s->msg, s->msg_size, fmt, ap);
        va_end(ap);
    }
    return 1;
}

static void infer_say(infer_state *s, const char *fmt, ...) {
    va_list ap;
    if (!s->msg || !s->msg_size) return;
    va_start(ap, fmt);
    vsnprintf(s->msg, s->msg_size, fmt, ap);
    va_end(ap);
}

/* "[3, 8]" into buf */
static const char *infer_shape_str(char *buf, size_t cap, int ndim, const int *shape) {
    size_t n = 0;
    int i;
    buf[0] = 0;
    n += (size_t)snprintf(buf + n, cap - n, "[");
    for (i = 0; i < ndim && n < cap; i++) n += (size_t)snprintf(buf + n, cap - n, i ? ", %d" : "%d", shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
    return buf;
}

/* The whole file, in malloc'd memory (one spare byte so that an empty file is
   not a NULL). 0 on success, else 1 and a message naming flag and path. */
static int infer_read_file(infer_state *s, const char *flag, const char *path, unsigned char **out, size_t *size) {
    FILE *f;
    unsigned char *buf = NULL;
    size_t cap = 0, len = 0;
    *out = NULL;
    *size = 0;
    errno = 0;
    f = fopen(path, "rb");
    if (!f) return infer_fail(s, "%s %s: cannot open: %s", flag, path, errno ? strerror(errno) : "unknown error");
    for (;;) {
        size_t got;
        if (len + 1 >= cap) {
            unsigned char *nb;
            size_t ncap = cap ? cap * 2 : 65536;
            if (ncap < cap || !(nb = (unsigned char *)realloc(buf, ncap))) {
                free(buf);
                fclose(f);
                return infer_fail(s, "%s %s: out of memory reading the file", flag, path);
            }
            buf = nb;
            cap = ncap;
        }
        got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        free(buf);
        fclose(f);
        return infer_fail(s, "%s %s: read error", flag, path);
    }
    fclose(f);
    *out = buf;
    *size = len;
    return 0;
}

/* ---- the command line ---- */

static int infer_parse_args(infer_state *s, int argc, char **argv, int *help) {
    infer_opts *o = &s->o;
    int i;
    static const char *const value_flags[] = { "--model",  "--arch",   "--heads",  "--activation",
                                               "--input",  "--memory", "--target", "--output" };
    *help = 0;
    memset(o, 0, sizeof *o);
    o->arch = -1;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *eq, *val = NULL;
        size_t nlen;
        int k, found = -1;
        if (!a) return infer_fail(s, "argument %d is NULL", i);
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            *help = 1;
            return 0;
        }
        if (strncmp(a, "--", 2) != 0 || !a[2]) return infer_fail(s, "unexpected argument '%s' (flags start with --)", a);
        eq = strchr(a, '=');
        nlen = eq ? (size_t)(eq - a) : strlen(a);
        if ((nlen == 12 && !strncmp(a, "--norm-first", nlen)) || (nlen == 8 && !strncmp(a, "--causal", nlen))) {
            int *flag = nlen == 12 ? &o->norm_first : &o->causal;
            if (eq) return infer_fail(s, "%.*s takes no value (got '%s')", (int)nlen, a, a);
            if (*flag) return infer_fail(s, "%s given twice", a);
            *flag = 1;
            continue;
        }
        for (k = 0; k < (int)(sizeof value_flags / sizeof value_flags[0]); k++)
            if (strlen(value_flags[k]) == nlen && !strncmp(a, value_flags[k], nlen)) found = k;
        if (found < 0) return infer_fail(s, "unknown flag '%.*s' (see --help)", (int)nlen, a);
        if (eq) {
            val = eq + 1;
        } else {
            if (i + 1 >= argc || !argv[i + 1]) return infer_fail(s, "%s needs a value", value_flags[found]);
            val = argv[++i];
        }
        if (!val[0]) return infer_fail(s, "%s needs a value (got an empty one)", value_flags[found]);
        {
            const char **slot[8];
            slot[0] = &o->model;
            slot[1] = &o->arch_name;
            slot[2] = &o->heads_text;
            slot[3] = &o->activation;
            slot[4] = &o->input;
            slot[5] = &o->memory;
            slot[6] = &o->target;
            slot[7] = &o->output;
            if (*slot[found]) return infer_fail(s, "%s given twice", value_flags[found]);
            *slot[found] = val;
        }
    }
    return 0;
}

static int infer_check_opts(infer_state *s) {
    infer_opts *o = &s->o;
    int k;
    if (!o->model) return infer_fail(s, "missing --model M.safetensors");
    if (!o->arch_name) return infer_fail(s, "missing --arch (mha, encoder-layer, decoder-layer, encoder, decoder or transformer)");
    for (k = 0; k < INFER_N_ARCH; k++)
        if (!strcmp(o->arch_name, infer_arch_names[k])) o->arch = k;
    if (o->arch < 0)
        return infer_fail(s, "--arch '%s' is not one of mha, encoder-layer, decoder-layer, encoder, decoder, transformer",
                          o->arch_name);
    if (!o->heads_text) return infer_fail(s, "missing --heads H");
    {
        char *end;
        long h;
        errno = 0;
        h = strtol(o->heads_text, &end, 10);
        if (*end || end == o->heads_text || errno || h < 1 || h > 1000000)
            return infer_fail(s, "--heads '%s' is not a positive integer", o->heads_text);
        o->heads = (int)h;
    }
    if (o->activation) {
        if (o->arch == INFER_MHA) return infer_fail(s, "--activation does not apply to --arch mha");
        if (!strcmp(o->activation, "gelu")) o->gelu = 1;
        else if (strcmp(o->activation, "relu") != 0)
            return infer_fail(s, "--activation '%s' is not relu or gelu", o->activation);
    }
    if (o->norm_first && o->arch == INFER_MHA) return infer_fail(s, "--norm-first does not apply to --arch mha");
    if (!o->input) return infer_fail(s, "missing --input X.npy");
    if (o->arch == INFER_DEC_LAYER || o->arch == INFER_DECODER) {
        if (!o->memory) return infer_fail(s, "missing --memory MEM.npy (needed by --arch %s)", o->arch_name);
    } else if (o->memory) {
        return infer_fail(s, "--memory is only for --arch decoder-layer and decoder, not %s", o->arch_name);
    }
    if (o->arch == INFER_TRANSFORMER) {
        if (!o->target) return infer_fail(s, "missing --target TGT.npy (needed by --arch transformer)");
    } else if (o->target) {
        return infer_fail(s, "--target is only for --arch transformer, not %s", o->arch_name);
    }
    if (!o->output) return infer_fail(s, "missing --output Y.npy");
    return 0;
}

/* ---- the model ---- */

/* The matrix called name; NULL and a message naming it when it is absent or
   not 2-D. */
static const attn_st_entry *infer_matrix(infer_state *s, const char *name) {
    const attn_st_entry *e = attn_safetensors_find(&s->st, name);
    char sh[96];
    if (!e) {
        infer_fail(s, "--model %s: no tensor '%s' (--arch %s needs it)", s->o.model, name, s->o.arch_name);
        return NULL;
    }
    if (e->ndim != 2 || e->shape[0] < 1 || e->shape[1] < 1) {
        infer_fail(s, "--model %s: tensor '%s' has shape %s, expected a matrix", s->o.model, name,
                   infer_shape_str(sh, sizeof sh, e->ndim, e->shape));
        return NULL;
    }
    return e;
}

/* Layers in a stack: 1 + the largest N of the tensors named prefix"layers.N.*" */
static int infer_count_layers(infer_state *s, const char *prefix, int *n_layers) {
    size_t plen = strlen(prefix);
    int i, best = -1;
    for (i = 0; i < s->st.count; i++) {
        const char *name = s->st.entries[i].name, *p;
        long n = 0;
        if (strncmp(name, prefix, plen) != 0 || strncmp(name + plen, "layers.", 7) != 0) continue;
        p = name + plen + 7;
        if (*p < '0' || *p > '9') continue;
        while (*p >= '0' && *p <= '9' && n <= INFER_MAX_LAYERS) n = n * 10 + (*p++ - '0');
        if (n >= INFER_MAX_LAYERS)
            return infer_fail(s, "--model %s: tensor '%s': more than %d layers", s->o.model, name, INFER_MAX_LAYERS);
        if (*p != '.') continue;
        if ((int)n > best) best = (int)n;
    }
    if (best < 0)
        return infer_fail(s, "--model %s: no tensor '%slayers.0.self_attn.in_proj_weight' (--arch %s needs layers.N.*)",
                          s->o.model, prefix, s->o.arch_name);
    *n_layers = best + 1;
    /* every layer's attention is there: a gap is named here, and the model
       cannot ask for much more memory than the file's size */
    for (i = 0; i <= best; i++) {
        char name[160];
        snprintf(name, sizeof name, "%slayers.%d.self_attn.in_proj_weight", prefix, i);
        if (!infer_matrix(s, name)) return 1;
    }
    return 0;
}

/* Every parameter in the file with its shape, nothing else in the file: the
   messages say what the model expected. */
static int infer_match_params(infer_state *s, const char *dims) {
    attn_param *p;
    int i;
    char a[96], b[96];
    for (p = attn_params(s->ctx); p; p = p->next) {
        const attn_st_entry *e = attn_safetensors_find(&s->st, p->name);
        int d, same;
        if (!e)
            return infer_fail(s, "--model %s: no tensor '%s' (a parameter of --arch %s with %s)", s->o.model, p->name,
                              s->o.arch_name, dims);
        same = e->ndim == p->tensor->ndim;
        for (d = 0; same && d < e->ndim; d++) same = e->shape[d] == p->tensor->shape[d];
        if (!same)
            return infer_fail(s, "--model %s: tensor '%s' has shape %s, expected %s (--arch %s with %s)", s->o.model,
                              p->name, infer_shape_str(a, sizeof a, e->ndim, e->shape),
                              infer_shape_str(b, sizeof b, p->tensor->ndim, p->tensor->shape), s->o.arch_name, dims);
    }
    for (i = 0; i < s->st.count; i++)
        if (!attn_param_find(s->ctx, s->st.entries[i].name))
            return infer_fail(s, "--model %s: tensor '%s' is not a parameter of --arch %s with %s", s->o.model,
                              s->st.entries[i].name, s->o.arch_name, dims);
    return 0;
}

typedef struct infer_model {
    attn_mha mha;
    attn_encoder_layer enc_layer;
    attn_decoder_layer dec_layer;
    attn_encoder encoder;
    attn_decoder decoder;
    attn_transformer tf;
    int d_model;
} infer_model;

static int infer_build(infer_state *s, infer_model *m) {
    const infer_opts *o = &s->o;
    const char *first = "";
    char name_a[128], name_f[128], dims[160];
    const attn_st_entry *e, *f;
    attn_layer_desc ld;
    int n_enc = 1, n_dec = 1, E, FF = 0, final_norm = 0;
    attn_status st;
    attn_context *ctx = s->ctx;

    memset(m, 0, sizeof *m);
    /* where d_model and dim_feedforward are read from */
    if (o->arch == INFER_ENCODER || o->arch == INFER_DECODER) {
        if (infer_count_layers(s, "", o->arch == INFER_ENCODER ? &n_enc : &n_dec)) return 1;
        first = "layers.0.";
        final_norm = attn_safetensors_find(&s->st, "norm.weight") || attn_safetensors_find(&s->st, "norm.bias");
    } else if (o->arch == INFER_TRANSFORMER) {
        if (infer_count_layers(s, "encoder.", &n_enc) || infer_count_layers(s, "decoder.", &n_dec)) return 1;
        first = "encoder.layers.0.";
        final_norm = 1;
    }
    /* d_model is in_proj_weight's width (3E, E), dim_feedforward linear1's height (FF, E) */
    snprintf(name_a, sizeof name_a, "%s%s", first, o->arch == INFER_MHA ? "in_proj_weight" : "self_attn.in_proj_weight");
    snprintf(name_f, sizeof name_f, "%slinear1.weight", first);
    if (!(e = infer_matrix(s, name_a))) return 1;
    E = e->shape[1];
    if (o->arch != INFER_MHA) {
        if (!(f = infer_matrix(s, name_f))) return 1;
        FF = f->shape[0];
    }
    if (E % o->heads)
        return infer_fail(s, "--heads %d does not divide d_model %d (the width of '%s')", o->heads, E, name_a);
    m->d_model = E;

    if (o->arch == INFER_MHA) {
        attn_mha_desc md;
        memset(&md, 0, sizeof md);
        md.embed_dim = E;
        md.heads = o->heads;
        /* bias=False: neither bias is there (one alone is a missing tensor) */
        md.no_bias = !attn_safetensors_find(&s->st, "in_proj_bias") && !attn_safetensors_find(&s->st, "out_proj.bias");
        snprintf(dims, sizeof dims, "d_model %d%s", E, md.no_bias ? ", bias=False" : "");
        st = attn_mha_init(ctx, &m->mha, "", &md);
    } else {
        memset(&ld, 0, sizeof ld);
        ld.d_model = E;
        ld.heads = o->heads;
        ld.dim_feedforward = FF;
        ld.activation = o->gelu ? ATTN_ACT_GELU : ATTN_ACT_RELU;
        ld.norm_first = o->norm_first;
        ld.layer_norm_eps = 1e-5f;
        ld.num_layers = o->arch == INFER_DECODER ? n_dec : n_enc;
        ld.num_decoder_layers = n_dec;
        ld.final_norm = final_norm;
        switch (o->arch) {
        case INFER_ENC_LAYER:
            snprintf(dims, sizeof dims, "d_model %d, dim_feedforward %d", E, FF);
            st = attn_encoder_layer_init(ctx, &m->enc_layer, "", &ld);
            break;
        case INFER_DEC_LAYER:
            snprintf(dims, sizeof dims, "d_model %d, dim_feedforward %d", E, FF);
            st = attn_decoder_layer_init(ctx, &m->dec_layer, "", &ld);
            break;
        case INFER_ENCODER:
        case INFER_DECODER: {
            int n = ld.num_layers;
            size_t size = (size_t)n * (o->arch == INFER_ENCODER ? sizeof(attn_encoder_layer) : sizeof(attn_decoder_layer));
            void *layers = attn_alloc(ctx, size);
            snprintf(dims, sizeof dims, "d_model %d, dim_feedforward %d, %d layer%s, %s final norm", E, FF, n,
                     n == 1 ? "" : "s", final_norm ? "a" : "no");
            if (!layers) return infer_fail(s, "--model %s: %s", o->model, attn_error_message(ctx));
            memset(layers, 0, size);
            st = o->arch == INFER_ENCODER
                     ? attn_encoder_init(ctx, &m->encoder, (attn_encoder_layer *)layers, "", &ld)
                     : attn_decoder_init(ctx, &m->decoder, (attn_decoder_layer *)layers, "", &ld);
            break;
        }
        default: {
            size_t se = (size_t)n_enc * sizeof(attn_encoder_layer), sd = (size_t)n_dec * sizeof(attn_decoder_layer);
            attn_encoder_layer *el = (attn_encoder_layer *)attn_alloc(ctx, se);
            attn_decoder_layer *dl = el ? (attn_decoder_layer *)attn_alloc(ctx, sd) : NULL;
            snprintf(dims, sizeof dims, "d_model %d, dim_feedforward %d, %d encoder and %d decoder layers", E, FF, n_enc,
                     n_dec);
            if (!dl) return infer_fail(s, "--model %s: %s", o->model, attn_error_message(ctx));
            memset(el, 0, se);
            memset(dl, 0, sd);
            st = attn_transformer_init(ctx, &m->tf, el, dl, "", &ld);
            break;
        }
        }
    }
    if (st != ATTN_OK) return infer_fail(s, "--arch %s with --heads %d: %s", o->arch_name, o->heads, attn_error_message(ctx));
    if (infer_match_params(s, dims)) return 1;
    if (attn_params_load(ctx, s->model_buf, s->model_size, 1) != ATTN_OK)
        return infer_fail(s, "--model %s: %s", o->model, attn_error_message(ctx));
    return 0;
}

/* ---- inputs, forward, output ---- */

/* A (B, T, d_model) .npy; batch > 0: B must be batch. */
static attn_tensor *infer_load_npy(infer_state *s, const char *flag, const char *path, int d_model, int batch) {
    unsigned char *buf;
    size_t size;
    attn_tensor *t;
    char sh[96];
    if (infer_read_file(s, flag, path, &buf, &size)) return NULL;
    t = attn_npy_parse(s->ctx, buf, size);
    free(buf);
    if (!t) {
        infer_fail(s, "%s %s: %s", flag, path, attn_error_message(s->ctx));
        return NULL;
    }
    if (t->ndim != 3 || t->shape[0] < 1 || t->shape[1] < 1 || t->shape[2] != d_model ||
        (batch > 0 && t->shape[0] != batch)) {
        if (batch > 0)
            infer_fail(s, "%s %s: shape %s, expected (%d, %s, %d): the batch size of --input and the model's d_model",
                       flag, path, infer_shape_str(sh, sizeof sh, t->ndim, t->shape), batch,
                       strcmp(flag, "--memory") ? "T'" : "S", d_model);
        else
            infer_fail(s, "%s %s: shape %s, expected (B, T, %d) with d_model %d from --model", flag, path,
                       infer_shape_str(sh, sizeof sh, t->ndim, t->shape), d_model, d_model);
        return NULL;
    }
    return t;
}

static int infer_write_output(infer_state *s, attn_tensor *y) {
    size_t size = attn_npy_bytes(y);
    unsigned char *buf;
    FILE *f;
    int bad;
    if (!size) return infer_fail(s, "--output %s: cannot encode the output as .npy", s->o.output);
    if (!(buf = (unsigned char *)malloc(size))) return infer_fail(s, "--output %s: out of memory", s->o.output);
    if (attn_npy_write(s->ctx, y, buf, size) != ATTN_OK) {
        free(buf);
        return infer_fail(s, "--output %s: %s", s->o.output, attn_error_message(s->ctx));
    }
    errno = 0;
    f = fopen(s->o.output, "wb");
    if (!f) {
        free(buf);
        return infer_fail(s, "--output %s: cannot open for writing: %s", s->o.output,
                          errno ? strerror(errno) : "unknown error");
    }
    bad = fwrite(buf, 1, size, f) != size;
    bad |= fclose(f) != 0;
    free(buf);
    if (bad) return infer_fail(s, "--output %s: write error", s->o.output);
    return 0;
}

static int infer_main(infer_state *s, int argc, char **argv) {
    infer_opts *o = &s->o;
    infer_model *m;
    attn_tensor *x, *other = NULL, *y = NULL;
    attn_attention_opts causal;
    attn_layer_masks masks, none;
    int help, rc = 1;
    char sh[96];

    if (infer_parse_args(s, argc, argv, &help)) return 1;
    if (help) {
        infer_say(s, "%s", infer_usage);
        return 0;
    }
    if (infer_check_opts(s)) return 1;
    if (!(s->ctx = attn_context_create(NULL))) return infer_fail(s, "out of memory (no context)");
    if (infer_read_file(s, "--model", o->model, &s->model_buf, &s->model_size)) return 1;
    if (attn_safetensors_parse(s->ctx, s->model_buf, s->model_size, &s->st) != ATTN_OK)
        return infer_fail(s, "--model %s: %s", o->model, attn_error_message(s->ctx));
    if (!(m = (infer_model *)malloc(sizeof *m))) return infer_fail(s, "out of memory");
    if (infer_build(s, m)) goto done;
    attn_grad_enable(s->ctx, 0); /* inference: nothing recorded */

    if (!(x = infer_load_npy(s, "--input", o->input, m->d_model, 0))) goto done;
    if (o->memory && !(other = infer_load_npy(s, "--memory", o->memory, m->d_model, x->shape[0]))) goto done;
    if (o->target && !(other = infer_load_npy(s, "--target", o->target, m->d_model, x->shape[0]))) goto done;

    memset(&causal, 0, sizeof causal);
    causal.causal = 1; /* Tq == Tk here, so torch's top-left triangle */
    memset(&none, 0, sizeof none);
    masks = none;
    masks.self_attn = o->causal ? &causal : NULL;
    switch (o->arch) {
    case INFER_MHA: y = attn_mha_forward(s->ctx, &m->mha, x, x, x, o->causal ? &causal : NULL); break;
    case INFER_ENC_LAYER: y = attn_encoder_layer_forward(s->ctx, &m->enc_layer, x, &masks, 0); break;
    case INFER_DEC_LAYER: y = attn_decoder_layer_forward(s->ctx, &m->dec_layer, x, other, &masks, 0); break;
    case INFER_ENCODER: y = attn_encoder_forward(s->ctx, &m->encoder, x, &masks, 0); break;
    case INFER_DECODER: y = attn_decoder_forward(s->ctx, &m->decoder, x, other, &masks, 0); break;
    default: y = attn_transformer_forward(s->ctx, &m->tf, x, other, &none, &masks, 0); break;
    }
    if (y) y = attn_tensor_contiguous(s->ctx, y);
    if (!y) {
        infer_fail(s, "--arch %s: forward failed: %s", o->arch_name, attn_error_message(s->ctx));
        goto done;
    }
    if (infer_write_output(s, y)) goto done;
    infer_say(s, "wrote %s: float32 %s (--arch %s, d_model %d, %d heads)", o->output,
              infer_shape_str(sh, sizeof sh, y->ndim, y->shape), o->arch_name, m->d_model, o->heads);
    rc = 0;
done:
    free(m);
    return rc;
}

int attn_infer_run(int argc, char **argv, char *msg, size_t msg_size) {
    infer_state s;
    int rc;
    memset(&s, 0, sizeof s);
    s.msg = msg;
    s.msg_size = msg ? msg_size : 0;
    if (s.msg_size) msg[0] = 0;
    rc = infer_main(&s, argc, argv);
    attn_context_destroy(s.ctx);
    free(s.model_buf);
    return rc;
}

#ifndef ATTN_INFER_NO_MAIN
int main(int argc, char **argv) {
    static char msg[4096];
    int rc = attn_infer_run(argc, argv, msg, sizeof msg);
    if (rc) {
        fprintf(stderr, "attn-infer: %s\n", msg);
        return 1;
    }
    if (msg[0]) printf("%s\n", msg);
    return 0;
}
#endif
