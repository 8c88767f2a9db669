/* tests/test_infer.c - the attn-infer tool (tools/attn_infer.c) against
   PyTorch 1.13, in-process: every ARCH, --norm-first, relu and gelu,
   --causal, --memory, --target, MHA with bias=False, models stored as F16
   and BF16, the --flag=value form, --help, and the errors (exit
   status 1 and a message that names the flag or tensor).

   The tool's source is included here with ATTN_INFER_NO_MAIN, so no
   subprocess is needed (these tests also run under qemu-user and wine) and
   the attn.h implementation is the one of tests/main.c. It is included as
   "tools/attn_infer.c", found through -I. (make test and tools/check-all.sh
   both compile from the repository root).

   The fixtures are tests/fixtures/infer/, written by
   tools/gen_infer_fixtures.py (its docstring lists the files; its CASES
   table is the one below). They are looked up as in tests/test_train.c:
   $ATTN_TEST_DIR/fixtures/infer/, then next to this source file, then
   tests/fixtures/infer/ under the working directory. The tool's output goes
   to build/ (else next to this source file, else the working directory)
   under a name made unique per process, since tools/check-all.sh runs
   several builds of the tests at once from the same directory; it is
   removed at the end.

   Tolerance: |got - want| <= 1e-4 * max|want| over the output, the issue's
   1e-4 (torch's own float32 output is within 3.1e-7 of float64 by this
   measure on these cases, as the generator prints). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "test.h"

#define ATTN_INFER_NO_MAIN
#include "tools/attn_infer.c"

#define INFER_TOL 1e-4

/* ------------------------------------------------------------------------
   Paths */

static char fx_dir[512];   /* the fixture folder, with a trailing '/' ("" until found) */
static char out_path[600]; /* where the tool writes */
static int paths_ready;

static int file_exists(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fclose(f);
    return 1;
}

static int setup_paths(void) {
    char cand[3][512], srcdir[400], probe[540];
    const char *env = getenv("ATTN_TEST_DIR"), *file = __FILE__, *slash = NULL, *p;
    const char *out_dirs[3];
    unsigned long long h;
    int local, i;
    size_t n;
    if (paths_ready) return fx_dir[0] != 0;
    paths_ready = 1;
    for (p = file; *p; p++)
        if (*p == '/' || *p == '\\') slash = p;
    n = slash ? (size_t)(slash - file) + 1 : 0;
    if (n >= sizeof srcdir) n = 0;
    memcpy(srcdir, file, n);
    srcdir[n] = 0;
    cand[0][0] = 0;
    if (env && env[0] && strlen(env) < 400) sprintf(cand[0], "%.400s/fixtures/infer/", env);
    sprintf(cand[1], "%.400sfixtures/infer/", srcdir);
    sprintf(cand[2], "tests/fixtures/infer/");
    for (i = 0; i < 3 && !fx_dir[0]; i++) {
        if (!cand[i][0]) continue;
        sprintf(probe, "%.511smha.safetensors", cand[i]);
        if (file_exists(probe)) strcpy(fx_dir, cand[i]);
    }
    if (!CHECK(fx_dir[0] != 0, "fixtures not found (tried $ATTN_TEST_DIR/fixtures/infer, %sfixtures/infer, "
                                "tests/fixtures/infer; regenerate with /usr/bin/python3 tools/gen_infer_fixtures.py)",
               srcdir))
        return 0;
    /* a name of this process: time, clock and where the stack and heap are */
    {
        void *heap = malloc(16);
        h = (unsigned long long)time(NULL) * 0x9E3779B97F4A7C15ull;
        h ^= (unsigned long long)clock() * 0xC2B2AE3D27D4EB4Full;
        h ^= (unsigned long long)(size_t)&local * 0x165667B19E3779F9ull;
        h ^= (unsigned long long)(size_t)heap * 0x27D4EB2F165667C5ull;
        h ^= h >> 29;
        free(heap);
    }
    out_dirs[0] = "build/";
    out_dirs[1] = srcdir;
    out_dirs[2] = "";
    for (i = 0; i < 3; i++) {
        FILE *f;
        sprintf(out_path, "%stest_infer_%08lx%08lx.npy", out_dirs[i], (unsigned long)(h >> 32),
                (unsigned long)(h & 0xFFFFFFFFu));
        if ((f = fopen(out_path, "wb")) != NULL) {
            fclose(f);
            remove(out_path);
            return 1;
        }
    }
    CHECK(0, "no writable folder for the tool's output (tried build/, %s, .)", srcdir);
    fx_dir[0] = 0;
    return 0;
}

static const char *fx(char *buf, const char *name, const char *suffix) {
    sprintf(buf, "%s%s%s", fx_dir, name, suffix);
    return buf;
}

/* ------------------------------------------------------------------------
   Running the tool */

#define MAX_ARGS 32

typedef struct argv_b {
    char *v[MAX_ARGS];
    char store[MAX_ARGS][700];
    int n;
} argv_b;

static void args_init(argv_b *a) {
    a->n = 0;
    strcpy(a->store[0], "attn-infer");
    a->v[a->n++] = a->store[0];
}

static void arg(argv_b *a, const char *s) {
    if (a->n >= MAX_ARGS - 1 || strlen(s) >= sizeof a->store[0]) return;
    strcpy(a->store[a->n], s);
    a->v[a->n] = a->store[a->n];
    a->n++;
    a->v[a->n] = NULL;
}

static int run_tool(argv_b *a, char *msg, size_t msg_size) {
    a->v[a->n] = NULL;
    return attn_infer_run(a->n, a->v, msg, msg_size);
}

/* ------------------------------------------------------------------------
   The PyTorch cases (tools/gen_infer_fixtures.py's CASES) */

typedef struct infer_case {
    const char *name, *arch;
    const char *flags[4]; /* "norm-first", "gelu", "causal" (nobias is in the file) */
    int heads;
    const char *second;   /* ".memory.npy" / ".target.npy" or NULL */
} infer_case;

static const infer_case cases[] = {
    { "mha", "mha", { NULL }, 2, NULL },
    { "mha_causal", "mha", { "causal", NULL }, 3, NULL },
    { "mha_nobias", "mha", { "causal", NULL }, 4, NULL },
    { "enc_relu", "encoder-layer", { NULL }, 2, NULL },
    { "enc_gelu_pre", "encoder-layer", { "norm-first", "gelu", "causal", NULL }, 2, NULL },
    { "dec_relu", "decoder-layer", { "causal", NULL }, 2, ".memory.npy" },
    { "dec_gelu_pre", "decoder-layer", { "norm-first", "gelu", NULL }, 4, ".memory.npy" },
    { "encoder", "encoder", { "gelu", "causal", NULL }, 2, NULL },
    { "encoder_pre", "encoder", { "norm-first", NULL }, 1, NULL },
    { "decoder", "decoder", { "norm-first", "causal", NULL }, 2, ".memory.npy" },
    { "decoder_nonorm", "decoder", { "gelu", NULL }, 2, ".memory.npy" },
    { "tf", "transformer", { "causal", NULL }, 2, ".target.npy" },
    { "tf_pre_gelu", "transformer", { "norm-first", "gelu", NULL }, 3, ".target.npy" },
    { "mha_bf16", "mha", { NULL }, 2, NULL },                                  /* parameters stored as BF16 */
    { "dec_f16", "decoder-layer", { "gelu", "causal", NULL }, 2, ".memory.npy" }, /* and as F16 */
};
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))

/* The command line of case c (drop: a flag to leave out, or NULL). */
static void case_args(argv_b *a, const infer_case *c, const char *drop) {
    char p[600], h[16];
    int i;
    args_init(a);
    arg(a, "--model");
    arg(a, fx(p, c->name, ".safetensors"));
    arg(a, "--arch");
    arg(a, c->arch);
    arg(a, "--heads");
    sprintf(h, "%d", c->heads);
    arg(a, h);
    for (i = 0; i < 4 && c->flags[i]; i++) {
        if (drop && !strcmp(drop, c->flags[i])) continue;
        if (!strcmp(c->flags[i], "gelu")) {
            arg(a, "--activation");
            arg(a, "gelu");
        } else {
            sprintf(p, "--%s", c->flags[i]);
            arg(a, p);
        }
    }
    arg(a, "--input");
    arg(a, fx(p, c->name, ".input.npy"));
    if (c->second) {
        arg(a, strstr(c->second, "memory") ? "--memory" : "--target");
        arg(a, fx(p, c->name, c->second));
    }
    arg(a, "--output");
    arg(a, out_path);
}

static attn_tensor *load_npy(attn_context *ctx, const char *path) {
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    long size;
    attn_tensor *t = NULL;
    if (!CHECK(f != NULL, "cannot open %s", path)) return NULL;
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = size > 0 ? (unsigned char *)malloc((size_t)size) : NULL;
    if (buf && fread(buf, 1, (size_t)size, f) == (size_t)size) t = attn_npy_parse(ctx, buf, (size_t)size);
    fclose(f);
    free(buf);
    CHECK(t != NULL, "%s: %s", path, ctx ? attn_error_message(ctx) : "read failed");
    return t;
}

/* max|got - want| / max|want| over the tool's output, -1 when it could not be
   read or the shapes differ (a CHECK failure says why). */
static double compare_output(const char *what, const char *want_path) {
    attn_context *ctx = attn_context_create(NULL);
    attn_tensor *got, *want;
    double err = -1;
    if (!CHECK(ctx != NULL, "no context")) return -1;
    got = load_npy(ctx, out_path);
    want = load_npy(ctx, want_path);
    if (got && want) {
        int d, same = got->ndim == want->ndim;
        for (d = 0; same && d < got->ndim; d++) same = got->shape[d] == want->shape[d];
        if (CHECK(same && got->ndim == 3, "%s: output shape (%d dims: %d %d %d) differs from PyTorch's (%d %d %d)", what,
                  got->ndim, got->shape[0], got->shape[1], got->shape[2], want->shape[0], want->shape[1],
                  want->shape[2])) {
            size_t i, n = attn_tensor_numel(want);
            double mx = 0, e = 0;
            for (i = 0; i < n; i++) {
                double w = want->data[i], g = got->data[i];
                if (fabs(w) > mx) mx = fabs(w);
                if (!(fabs(g - w) <= e)) e = isnan(g) ? INFINITY : fabs(g - w);
            }
            err = mx > 0 ? e / mx : e;
        }
    }
    attn_context_destroy(ctx);
    return err;
}

static void run_arch(const char *arch) {
    int i, ran = 0;
    if (!setup_paths()) return;
    for (i = 0; i < N_CASES; i++) {
        const infer_case *c = &cases[i];
        argv_b a;
        char msg[1024], want[600];
        double err;
        int rc;
        if (strcmp(c->arch, arch) != 0) continue;
        ran++;
        case_args(&a, c, NULL);
        remove(out_path);
        rc = run_tool(&a, msg, sizeof msg);
        if (!CHECK(rc == 0, "%s: attn-infer returned %d: %s", c->name, rc, msg)) continue;
        CHECK(strstr(msg, "wrote") != NULL && strstr(msg, out_path) != NULL, "%s: summary line '%s'", c->name, msg);
        err = compare_output(c->name, fx(want, c->name, ".out.npy"));
        CHECK(err >= 0 && err <= INFER_TOL, "%s: max|tool - torch| / max|torch| = %g > %g", c->name, err, INFER_TOL);
        if (getenv("ATTN_TEST_VERBOSE")) printf("  infer %-15s %-13s err %.3g\n", c->name, c->arch, err);
        /* the flags matter: without --causal / --norm-first / gelu the output moves */
        {
            static const char *const flags[3] = { "causal", "norm-first", "gelu" };
            int k, j;
            for (k = 0; k < 3; k++) {
                int has = 0;
                for (j = 0; j < 4 && c->flags[j]; j++) has |= !strcmp(c->flags[j], flags[k]);
                if (!has) continue;
                case_args(&a, c, flags[k]);
                rc = run_tool(&a, msg, sizeof msg);
                if (!CHECK(rc == 0, "%s without --%s: returned %d: %s", c->name, flags[k], rc, msg)) continue;
                err = compare_output(c->name, want);
                CHECK(err > 1e-3, "%s: the output without --%s is as close to torch's (%g)", c->name, flags[k], err);
            }
        }
    }
    CHECK(ran > 0, "no case of --arch %s", arch);
    remove(out_path);
}

TEST(infer_mha) { run_arch("mha"); }
TEST(infer_encoder_layer) { run_arch("encoder-layer"); }
TEST(infer_decoder_layer) { run_arch("decoder-layer"); }
TEST(infer_encoder) { run_arch("encoder"); }
TEST(infer_decoder) { run_arch("decoder"); }
TEST(infer_transformer) { run_arch("transformer"); }

/* --flag=value, flags in any order, --help, a NULL message buffer */
TEST(infer_command_line) {
    argv_b a;
    char msg[4096], p[700], q[600], want[600];
    double err;
    int rc;
    if (!setup_paths()) return;
    args_init(&a);
    arg(&a, "--causal");
    sprintf(p, "--output=%s", out_path);
    arg(&a, p);
    sprintf(p, "--input=%s", fx(q, "enc_gelu_pre", ".input.npy"));
    arg(&a, p);
    arg(&a, "--activation=gelu");
    arg(&a, "--heads=2");
    arg(&a, "--norm-first");
    arg(&a, "--arch=encoder-layer");
    sprintf(p, "--model=%s", fx(q, "enc_gelu_pre", ".safetensors"));
    arg(&a, p);
    remove(out_path);
    rc = run_tool(&a, msg, sizeof msg);
    if (CHECK(rc == 0, "--flag=value form: returned %d: %s", rc, msg)) {
        err = compare_output("enc_gelu_pre (--flag=value)", fx(want, "enc_gelu_pre", ".out.npy"));
        CHECK(err >= 0 && err <= INFER_TOL, "--flag=value form: error %g", err);
    }
    /* --activation relu is the default, said out loud */
    case_args(&a, &cases[3], NULL);
    arg(&a, "--activation");
    arg(&a, "relu");
    rc = run_tool(&a, NULL, 0);
    if (CHECK(rc == 0, "--activation relu: returned %d", rc)) {
        err = compare_output("enc_relu (--activation relu)", fx(want, "enc_relu", ".out.npy"));
        CHECK(err >= 0 && err <= INFER_TOL, "--activation relu: error %g", err);
    }
    args_init(&a);
    arg(&a, "--help");
    rc = run_tool(&a, msg, sizeof msg);
    CHECK(rc == 0 && strstr(msg, "usage:") && strstr(msg, "--arch") && strstr(msg, "transformer"),
          "--help: returned %d, text '%.60s'", rc, msg);
    /* a message that does not fit is cut, not overrun */
    {
        char small[8];
        memset(small, 'x', sizeof small);
        args_init(&a);
        arg(&a, "--frobnicate");
        rc = run_tool(&a, small, 5);
        CHECK(rc == 1 && strlen(small) == 4 && small[5] == 'x', "5-byte message buffer: rc %d, '%s'", rc, small);
    }
    remove(out_path);
}

/* ------------------------------------------------------------------------
   Errors: exit status 1 and a message naming the flag or tensor */

/* Run argv; expect status 1 and every needle in the message. */
static void expect_error(const char *what, argv_b *a, const char *n1, const char *n2) {
    char msg[1024];
    int rc;
    remove(out_path);
    rc = run_tool(a, msg, sizeof msg);
    if (!CHECK(rc == 1, "%s: returned %d, not 1 (message '%s')", what, rc, msg)) return;
    CHECK(msg[0] && strchr(msg, '\n') == NULL, "%s: the message is not one line: '%s'", what, msg);
    CHECK(!n1 || strstr(msg, n1), "%s: the message does not name '%s': '%s'", what, n1, msg);
    CHECK(!n2 || strstr(msg, n2), "%s: the message does not name '%s': '%s'", what, n2, msg);
    CHECK(!file_exists(out_path), "%s: an output file was written", what);
    if (getenv("ATTN_TEST_VERBOSE")) printf("  %-28s -> %s\n", what, msg);
}

/* case c's command line with flag (and its value) removed */
static void args_without(argv_b *a, const infer_case *c, const char *flag) {
    argv_b full;
    int i;
    case_args(&full, c, NULL);
    args_init(a);
    for (i = 1; i < full.n; i++) {
        if (!strcmp(full.v[i], flag)) {
            if (strcmp(flag, "--causal") && strcmp(flag, "--norm-first")) i++;
            continue;
        }
        arg(a, full.v[i]);
    }
}

/* case c's command line with flag's value replaced */
static void args_with(argv_b *a, const infer_case *c, const char *flag, const char *value) {
    int i;
    case_args(a, c, NULL);
    for (i = 1; i + 1 < a->n; i++)
        if (!strcmp(a->v[i], flag)) {
            strcpy(a->store[i + 1], value);
            return;
        }
    arg(a, flag);
    arg(a, value);
}

static const infer_case *case_named(const char *name) {
    int i;
    for (i = 0; i < N_CASES; i++)
        if (!strcmp(cases[i].name, name)) return &cases[i];
    return &cases[0];
}

TEST(infer_errors_flags) {
    const infer_case *enc = case_named("enc_relu"), *dec = case_named("dec_relu"), *tf = case_named("tf"),
                     *mha = case_named("mha");
    argv_b a;
    char p[600];
    static const char *const required[5] = { "--model", "--arch", "--heads", "--input", "--output" };
    int i;
    if (!setup_paths()) return;
    args_init(&a);
    expect_error("no arguments", &a, "--model", NULL);
    for (i = 0; i < 5; i++) {
        char what[64];
        sprintf(what, "missing %s", required[i]);
        args_without(&a, enc, required[i]);
        expect_error(what, &a, required[i], NULL);
    }
    case_args(&a, enc, NULL);
    arg(&a, "--frobnicate");
    expect_error("unknown flag", &a, "--frobnicate", NULL);
    case_args(&a, enc, NULL);
    arg(&a, "--causal=yes");
    expect_error("value on a switch", &a, "--causal", NULL);
    case_args(&a, enc, NULL);
    arg(&a, "stray.npy");
    expect_error("positional argument", &a, "stray.npy", NULL);
    case_args(&a, enc, NULL);
    arg(&a, "--heads");
    expect_error("flag without its value", &a, "--heads", NULL);
    case_args(&a, enc, NULL);
    arg(&a, "--arch");
    arg(&a, "encoder-layer");
    expect_error("flag given twice", &a, "--arch", "twice");
    args_with(&a, enc, "--arch", "lstm");
    expect_error("bad --arch", &a, "--arch", "lstm");
    args_with(&a, enc, "--heads", "two");
    expect_error("--heads not a number", &a, "--heads", "two");
    args_with(&a, enc, "--heads", "0");
    expect_error("--heads 0", &a, "--heads", NULL);
    args_with(&a, enc, "--heads", "3");
    expect_error("--heads 3, d_model 8", &a, "--heads 3", "d_model 8");
    args_with(&a, mha, "--heads", "5");
    expect_error("mha --heads 5, d_model 8", &a, "--heads 5", "d_model 8");
    args_with(&a, enc, "--activation", "tanh");
    expect_error("bad --activation", &a, "--activation", "tanh");
    case_args(&a, mha, NULL);
    arg(&a, "--norm-first");
    expect_error("--norm-first with mha", &a, "--norm-first", "mha");
    case_args(&a, mha, NULL);
    arg(&a, "--activation");
    arg(&a, "gelu");
    expect_error("--activation with mha", &a, "--activation", "mha");
    args_without(&a, dec, "--memory");
    expect_error("decoder-layer without --memory", &a, "--memory", NULL);
    args_without(&a, tf, "--target");
    expect_error("transformer without --target", &a, "--target", NULL);
    case_args(&a, enc, NULL);
    arg(&a, "--memory");
    arg(&a, fx(p, "dec_relu", ".memory.npy"));
    expect_error("--memory with encoder-layer", &a, "--memory", NULL);
    args_with(&a, dec, "--memory", fx(p, "dec_relu", ".memory.npy"));
    arg(&a, "--target");
    arg(&a, fx(p, "tf", ".target.npy"));
    expect_error("--target with decoder-layer", &a, "--target", NULL);
}

TEST(infer_errors_files) {
    const infer_case *enc = case_named("enc_relu"), *dec = case_named("decoder_nonorm"), *mha = case_named("mha");
    argv_b a;
    char p[600], q[600];
    if (!setup_paths()) return;
    args_with(&a, enc, "--model", fx(p, "bad_missing", ".safetensors"));
    expect_error("missing tensor", &a, "linear2.bias", "--model");
    args_with(&a, enc, "--model", fx(p, "bad_shape", ".safetensors"));
    expect_error("tensor of the wrong shape", &a, "linear1.bias", "[15]");
    args_with(&a, enc, "--model", fx(p, "bad_extra", ".safetensors"));
    expect_error("extra tensor", &a, "extra.weight", NULL);
    args_with(&a, enc, "--model", fx(p, "bad_ndim", ".safetensors"));
    expect_error("1-D in_proj_weight", &a, "self_attn.in_proj_weight", NULL);
    args_with(&a, case_named("encoder"), "--model", fx(p, "bad_gap", ".safetensors"));
    expect_error("stack without layer 1", &a, "layers.1.self_attn.in_proj_weight", NULL);
    /* the wrong ARCH for the file: the first thing it lacks is named */
    args_with(&a, enc, "--arch", "decoder-layer");
    arg(&a, "--memory");
    arg(&a, fx(p, "dec_relu", ".memory.npy"));
    expect_error("encoder-layer file as decoder-layer", &a, "multihead_attn.", NULL);
    args_with(&a, enc, "--arch", "encoder");
    expect_error("encoder-layer file as encoder", &a, "layers.0.", NULL);
    args_with(&a, enc, "--arch", "mha");
    expect_error("encoder-layer file as mha", &a, "in_proj_weight", NULL);
    args_with(&a, mha, "--arch", "encoder-layer");
    expect_error("mha file as encoder-layer", &a, "self_attn.in_proj_weight", NULL);
    args_with(&a, case_named("encoder"), "--arch", "transformer");
    arg(&a, "--target");
    arg(&a, fx(p, "tf", ".target.npy"));
    expect_error("encoder file as transformer", &a, "encoder.layers.0.", NULL);
    /* files that cannot be read or are not what they claim */
    sprintf(q, "%sno_such_file.safetensors", fx_dir);
    args_with(&a, enc, "--model", q);
    expect_error("unreadable --model", &a, "--model", "no_such_file.safetensors");
    args_with(&a, enc, "--model", fx(p, "enc_relu", ".input.npy"));
    expect_error("--model is a .npy", &a, "--model", NULL);
    sprintf(q, "%sno_such_file.npy", fx_dir);
    args_with(&a, enc, "--input", q);
    expect_error("unreadable --input", &a, "--input", "no_such_file.npy");
    args_with(&a, enc, "--input", fx(p, "enc_relu", ".safetensors"));
    expect_error("--input is a safetensors file", &a, "--input", NULL);
    args_with(&a, enc, "--input", fx(p, "bad_input4d", ".npy"));
    expect_error("4-D --input", &a, "--input", "[1, 2, 4, 8]");
    args_with(&a, enc, "--input", fx(p, "mha_causal", ".input.npy"));
    expect_error("--input with d 12 for d_model 8", &a, "--input", "d_model 8");
    args_with(&a, dec, "--memory", fx(p, "decoder", ".memory.npy"));
    expect_error("--memory batch 2, --input batch 1", &a, "--memory", "[2, 3, 8]");
    args_with(&a, dec, "--memory", fx(p, "dec_gelu_pre", ".memory.npy"));
    expect_error("--memory with d 12 for d_model 8", &a, "--memory", NULL);
    args_with(&a, case_named("tf"), "--target", fx(p, "tf_pre_gelu", ".target.npy"));
    expect_error("--target with d 12 for d_model 8", &a, "--target", NULL);
    sprintf(q, "%sno_such_dir/out.npy", fx_dir);
    args_with(&a, enc, "--output", q);
    expect_error("unwritable --output", &a, "--output", "no_such_dir");
}

TEST_GROUP(infer) = {
    TEST_ENTRY(infer_mha),          TEST_ENTRY(infer_encoder_layer), TEST_ENTRY(infer_decoder_layer),
    TEST_ENTRY(infer_encoder),      TEST_ENTRY(infer_decoder),       TEST_ENTRY(infer_transformer),
    TEST_ENTRY(infer_command_line), TEST_ENTRY(infer_errors_flags),  TEST_ENTRY(infer_errors_files),
    TEST_END
};
