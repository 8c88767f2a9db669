/* bench_train.c - training with attn.h's autodiff and optimizer against PyTorch.

   1. One training step of an MLP 512-2048-512 over 256 tokens:
          x (256, 512) -> Linear(512, 2048) -> GELU (erf) -> Linear(2048, 512)
          loss = mean((y - target)^2), then backward
      parameter grads only (x does not require grad): 5 GEMMs of 256 x 2048 x 512,
      2.68 GFLOP a step. Every step starts by zeroing the parameter grads
      (attn_params_zero_grad; PyTorch: model.zero_grad(set_to_none=False), 1.13's
      default) and ends with attn_context_reset to the mark taken before the
      forward pass (PyTorch frees its graph as the step ends).
   2. One AdamW step (lr 1e-3, weight decay 0.01, betas 0.9/0.999, eps 1e-8) over
      3,323,392 parameters in 53 tensors: the shapes of the GPT of BASELINES.md
      (V256 d256 h4 L4 dff1024 T128), grads fixed (made once from a formula).

   bench/train_torch.py times PyTorch on the same work and run.sh passes its
   results in with --torch FILE; the two tables show both, ratio = torch / attn
   (> 1: attn faster). attn's 2 threads are the pool of bench_common.h passed as
   attn_context_desc.threads; the 1-thread and 2-thread runs use two contexts
   made alike (same seed), so they hold the same numbers.

   Correctness, checked once before timing:
   - the MLP's loss against a double-precision forward pass (always) and against
     PyTorch's loss on the same weights (rel 1e-4), the parameter grads against
     PyTorch's (max |difference| / max |grad| <= 1e-4 per tensor): `--dump DIR`
     writes x, target and the weights (attn's Kaiming init) to DIR/mlp.f32,
     which train_torch.py reads, and it writes its grads to DIR/mlp_grads_torch.f32;
   - two AdamW steps (grads from two formulas) against PyTorch's: the sum and the
     sum of squares of the parameter change (rel 1e-3);
   - 2 threads bit-identical to 1 thread (loss, grads, parameters after AdamW).

   Memory: a child process forked at start does what one training process does
   (one MLP context, one AdamW context, 1 thread, a few steps) and reports its
   peak RSS (getrusage ru_maxrss) and the arena peaks; the timed process holds
   two copies of everything (1T and 2T) so its own RSS would say nothing.

   Usage: bench_train --dump DIR
          bench_train [--data DIR] [--torch FILE | --no-torch REASON]
          bench_train --loop mlp1|mlp2|adamw1|adamw2 SECONDS   (one configuration
                      in a loop, nothing checked: for perf record) */
#define _POSIX_C_SOURCE 200809L
#define ATTN_IMPLEMENTATION
#include "attn.h"
#include "bench_common.h"

#include <math.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define TOKENS 256
#define D_MODEL 512
#define D_HIDDEN 2048
#define MLP_SEED 1234
#define MLP_FLOP (5.0 * 2.0 * TOKENS * D_MODEL * D_HIDDEN)

#define BATCHES 9
#define BATCHES_TORCH 9 /* train_torch.py's BATCHES */
#define BATCH_S 0.1

#define ADAMW_LR 1e-3
#define ADAMW_WD 0.01
#define ADAMW_BYTES (7.0 * 4.0 * 3323392.0) /* read p, g, m, v; write p, m, v */

/* ---- the MLP ------------------------------------------------------------- */
typedef struct mlp {
    attn_context *ctx;
    attn_tensor *x, *target, *w1, *b1, *w2, *b2;
    size_t setup_bytes; /* arena in use after the setup: parameters, grads, x, target */
} mlp;

static void fail(const char *what, attn_context *ctx) {
    printf("WARNING bench_train: %s failed: %s\n", what, ctx ? attn_error_message(ctx) : "no context");
    fflush(stdout);
    exit(1);
}

/* Parameters as nn.Linear initializes them (Kaiming uniform a = sqrt 5, bias
   uniform +-1/sqrt(fan_in)), x and target standard normal, all from the
   context's RNG seeded with MLP_SEED: every context made this way holds the
   same numbers. */
static void mlp_init(mlp *m, const attn_threads *threads) {
    attn_context_desc d;
    int s_w1[2] = {D_HIDDEN, D_MODEL}, s_b1[1] = {D_HIDDEN};
    int s_w2[2] = {D_MODEL, D_HIDDEN}, s_b2[1] = {D_MODEL};
    float bound1 = 1.0f / sqrtf((float)D_MODEL), bound2 = 1.0f / sqrtf((float)D_HIDDEN);
    memset(&d, 0, sizeof d);
    memset(m, 0, sizeof *m);
    if (threads) d.threads = *threads;
    d.seed = MLP_SEED;
    m->ctx = attn_context_create(&d);
    if (!m->ctx) fail("attn_context_create", NULL);
    m->w1 = attn_param_new(m->ctx, "fc1.weight", 2, s_w1);
    m->b1 = attn_param_new(m->ctx, "fc1.bias", 1, s_b1);
    m->w2 = attn_param_new(m->ctx, "fc2.weight", 2, s_w2);
    m->b2 = attn_param_new(m->ctx, "fc2.bias", 1, s_b2);
    m->x = attn_tensor_2d(m->ctx, TOKENS, D_MODEL);
    m->target = attn_tensor_2d(m->ctx, TOKENS, D_MODEL);
    if (!m->w1 || !m->b1 || !m->w2 || !m->b2 || !m->x || !m->target) fail("MLP setup", m->ctx);
    if (attn_init_kaiming_uniform(m->ctx, m->w1, sqrtf(5.0f)) || attn_init_uniform(m->ctx, m->b1, -bound1, bound1) ||
        attn_init_kaiming_uniform(m->ctx, m->w2, sqrtf(5.0f)) || attn_init_uniform(m->ctx, m->b2, -bound2, bound2) ||
        attn_init_normal(m->ctx, m->x, 0.0f, 1.0f) || attn_init_normal(m->ctx, m->target, 0.0f, 1.0f))
        fail("MLP init", m->ctx);
    m->setup_bytes = attn_arena_used(attn_context_arena(m->ctx));
}

/* One training step; returns the loss (NaN when a call failed: the error is on ctx). */
static float mlp_step(mlp *m) {
    attn_context *ctx = m->ctx;
    attn_context_pos mark;
    attn_tensor *h, *a, *y, *loss;
    float l = NAN;
    attn_params_zero_grad(ctx);
    mark = attn_context_mark(ctx);
    h = attn_linear(ctx, m->x, m->w1, m->b1);
    a = attn_gelu(ctx, h);
    y = attn_linear(ctx, a, m->w2, m->b2);
    loss = attn_mse(ctx, y, m->target);
    if (loss && attn_backward(ctx, loss) == ATTN_OK) l = loss->data[0];
    attn_context_reset(ctx, mark);
    return l;
}

/* The loss in double precision (erf GELU), from the same numbers. */
static double mlp_loss_double(const mlp *m) {
    double *h = (double *)malloc(sizeof(double) * D_HIDDEN), total = 0.0;
    int t, i, j;
    if (!h) return NAN;
    for (t = 0; t < TOKENS; t++) {
        const float *x = m->x->data + (size_t)t * D_MODEL;
        for (j = 0; j < D_HIDDEN; j++) {
            const float *w = m->w1->data + (size_t)j * D_MODEL;
            double s = m->b1->data[j];
            for (i = 0; i < D_MODEL; i++) s += (double)w[i] * x[i];
            h[j] = 0.5 * s * (1.0 + erf(s / sqrt(2.0)));
        }
        for (j = 0; j < D_MODEL; j++) {
            const float *w = m->w2->data + (size_t)j * D_HIDDEN;
            double s = m->b2->data[j], e;
            for (i = 0; i < D_HIDDEN; i++) s += (double)w[i] * h[i];
            e = s - m->target->data[(size_t)t * D_MODEL + j];
            total += e * e;
        }
    }
    free(h);
    return total / ((double)TOKENS * D_MODEL);
}

/* x, target, w1, b1, w2, b2 as raw float32, in that order (train_torch.py reads them). */
static int mlp_dump(const mlp *m, const char *dir) {
    const attn_tensor *ts[6];
    char path[1024];
    FILE *f;
    int i, ok = 1;
    ts[0] = m->x; ts[1] = m->target; ts[2] = m->w1; ts[3] = m->b1; ts[4] = m->w2; ts[5] = m->b2;
    snprintf(path, sizeof path, "%s/mlp.f32", dir);
    f = fopen(path, "wb");
    if (!f) return 0;
    for (i = 0; i < 6; i++) {
        size_t n = attn_tensor_numel(ts[i]);
        if (fwrite(ts[i]->data, sizeof(float), n, f) != n) ok = 0;
    }
    if (fclose(f) != 0) ok = 0;
    return ok;
}

/* ---- AdamW over the GPT's parameter shapes -------------------------------- */
typedef struct pshape { const char *name; int n0, n1; } pshape; /* n1 == 0: 1-D */
#define N_PARAMS 53
static pshape g_shapes[N_PARAMS];
static size_t g_adamw_numel;

static void make_shapes(void) {
    static char names[N_PARAMS][32];
    static const char *layer_names[12] = {"ln1.weight", "ln1.bias", "attn.in_proj_weight", "attn.in_proj_bias",
                                          "attn.out_proj.weight", "attn.out_proj.bias", "ln2.weight", "ln2.bias",
                                          "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"};
    static const int layer_dims[12][2] = {{256, 0}, {256, 0}, {768, 256}, {768, 0}, {256, 256}, {256, 0},
                                          {256, 0}, {256, 0}, {1024, 256}, {1024, 0}, {256, 1024}, {256, 0}};
    int k = 0, l, i;
    g_shapes[k].name = "tok_emb"; g_shapes[k].n0 = 256; g_shapes[k++].n1 = 256;
    g_shapes[k].name = "pos_emb"; g_shapes[k].n0 = 128; g_shapes[k++].n1 = 256;
    for (l = 0; l < 4; l++)
        for (i = 0; i < 12; i++) {
            snprintf(names[k], sizeof names[k], "h%d.%s", l, layer_names[i]);
            g_shapes[k].name = names[k];
            g_shapes[k].n0 = layer_dims[i][0];
            g_shapes[k++].n1 = layer_dims[i][1];
        }
    g_shapes[k].name = "ln_f.weight"; g_shapes[k].n0 = 256; g_shapes[k++].n1 = 0;
    g_shapes[k].name = "ln_f.bias"; g_shapes[k].n0 = 256; g_shapes[k++].n1 = 0;
    g_shapes[k].name = "head.weight"; g_shapes[k].n0 = 256; g_shapes[k++].n1 = 256;
    g_adamw_numel = 0;
    for (i = 0; i < N_PARAMS; i++) g_adamw_numel += (size_t)g_shapes[i].n0 * (size_t)(g_shapes[i].n1 ? g_shapes[i].n1 : 1);
}

/* The formulas train_torch.py uses too (computed in double, rounded to float;
   i counts over all parameters in registration order). */
static float f_param(size_t i) { return (float)(0.02 * sin(0.001 * (double)i + 0.1)); }
static float f_grad_a(size_t i) { return (float)(0.01 * cos(0.0037 * (double)i + 0.5)); }
static float f_grad_b(size_t i) { return (float)(0.02 * sin(0.0021 * (double)i + 1.3)); }

typedef struct adamw {
    attn_context *ctx;
    attn_optim *opt;
    attn_tensor *p[N_PARAMS];
} adamw;

static void adamw_set(adamw *a, int what) { /* 0: params, 1: grads A, 2: grads B */
    size_t i = 0, k;
    int t;
    for (t = 0; t < N_PARAMS; t++) {
        size_t n = attn_tensor_numel(a->p[t]);
        float *dst = what == 0 ? a->p[t]->data : a->p[t]->grad;
        for (k = 0; k < n; k++, i++) dst[k] = what == 0 ? f_param(i) : what == 1 ? f_grad_a(i) : f_grad_b(i);
    }
}

static void adamw_init(adamw *a, const attn_threads *threads) {
    attn_context_desc d;
    attn_optim_desc od;
    int t;
    memset(&d, 0, sizeof d);
    memset(a, 0, sizeof *a);
    if (threads) d.threads = *threads;
    a->ctx = attn_context_create(&d);
    if (!a->ctx) fail("attn_context_create", NULL);
    for (t = 0; t < N_PARAMS; t++) {
        int shape[2];
        shape[0] = g_shapes[t].n0;
        shape[1] = g_shapes[t].n1;
        a->p[t] = attn_param_new(a->ctx, g_shapes[t].name, g_shapes[t].n1 ? 2 : 1, shape);
        if (!a->p[t] || !a->p[t]->grad) fail("attn_param_new", a->ctx);
    }
    adamw_set(a, 0);
    adamw_set(a, 1);
    memset(&od, 0, sizeof od);
    od.kind = ATTN_OPTIM_ADAMW;
    od.lr = ADAMW_LR;
    od.weight_decay = ADAMW_WD;
    a->opt = attn_optim_create(a->ctx, &od);
    if (!a->opt) fail("attn_optim_create", a->ctx);
}

/* Two steps (grads A, then grads B) from the formula's parameters; the sum and
   the sum of squares of the change, in double. Leaves grads A in place. */
static void adamw_check(adamw *a, double *sum, double *sumsq) {
    size_t i = 0, k;
    int t;
    adamw_set(a, 0);
    adamw_set(a, 1);
    if (attn_optim_step(a->opt) != ATTN_OK) fail("attn_optim_step", a->ctx);
    adamw_set(a, 2);
    if (attn_optim_step(a->opt) != ATTN_OK) fail("attn_optim_step", a->ctx);
    *sum = *sumsq = 0.0;
    for (t = 0; t < N_PARAMS; t++) {
        size_t n = attn_tensor_numel(a->p[t]);
        for (k = 0; k < n; k++, i++) {
            double dlt = (double)a->p[t]->data[k] - (double)f_param(i);
            *sum += dlt;
            *sumsq += dlt * dlt;
        }
    }
    adamw_set(a, 1);
}

/* ---- peak RSS of one training process (a child) ---------------------------- */
typedef struct mem_report {
    long rss_kib;
    double mlp_peak, mlp_setup, adamw_peak; /* bytes */
} mem_report;

static int measure_memory(mem_report *r) {
    int fd[2], status, ok = 0;
    pid_t pid;
    memset(r, 0, sizeof *r);
    fflush(stdout);
    if (pipe(fd) != 0) return 0;
    pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return 0;
    }
    if (pid == 0) { /* the child: one training process's worth of work, 1 thread */
        mlp m;
        adamw a;
        struct rusage ru;
        char buf[256];
        int i, len;
        close(fd[0]);
        mlp_init(&m, NULL);
        adamw_init(&a, NULL);
        for (i = 0; i < 3; i++) {
            float l = mlp_step(&m);
            if (l != l || attn_optim_step(a.opt) != ATTN_OK) _exit(1);
        }
        getrusage(RUSAGE_SELF, &ru);
        len = snprintf(buf, sizeof buf, "%ld %.0f %.0f %.0f\n", (long)ru.ru_maxrss,
                       (double)attn_arena_peak(attn_context_arena(m.ctx)), (double)m.setup_bytes,
                       (double)attn_arena_peak(attn_context_arena(a.ctx)));
        if (write(fd[1], buf, (size_t)len) != len) _exit(1);
        _exit(0);
    } else {
        char buf[256];
        ssize_t n;
        close(fd[1]);
        n = read(fd[0], buf, sizeof buf - 1);
        close(fd[0]);
        if (waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0 && n > 0) {
            buf[n] = 0;
            ok = sscanf(buf, "%ld %lf %lf %lf", &r->rss_kib, &r->mlp_peak, &r->mlp_setup, &r->adamw_peak) == 4;
        }
    }
    return ok;
}

/* ---- PyTorch's results ----------------------------------------------------- */
typedef struct torch_row { char key[40]; int threads; double ms; int busy; double cores, others; } torch_row;
typedef struct torch_results {
    torch_row rows[32];
    int n_rows;
    char version[64];
    double loss, check_sum, check_sumsq;
    long rss_kib, rss_import_kib;
    int have_loss, have_check;
} torch_results;

static void read_torch(torch_results *tr, const char *path) {
    FILE *f = fopen(path, "r");
    char line[512];
    memset(tr, 0, sizeof *tr);
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        torch_row r;
        char ver[64];
        r.others = -1.0;
        if (tr->n_rows < 32 && sscanf(line, "torch_ms %39s %d %lf %d %lf %lf", r.key, &r.threads, &r.ms, &r.busy, &r.cores,
                                      &r.others) >= 5)
            tr->rows[tr->n_rows++] = r;
        else if (sscanf(line, "torch_version %63s", ver) == 1)
            snprintf(tr->version, sizeof tr->version, "%s", ver);
        else if (sscanf(line, "torch_loss %lf", &tr->loss) == 1)
            tr->have_loss = 1;
        else if (sscanf(line, "torch_adamw_check %lf %lf", &tr->check_sum, &tr->check_sumsq) == 2)
            tr->have_check = 1;
        else if (sscanf(line, "torch_rss_kib %ld %ld", &tr->rss_kib, &tr->rss_import_kib) == 2) {
        }
    }
    fclose(f);
}

static const torch_row *torch_find(const torch_results *tr, const char *key, int threads) {
    int i;
    for (i = 0; i < tr->n_rows; i++)
        if (strcmp(tr->rows[i].key, key) == 0 && tr->rows[i].threads == threads) return &tr->rows[i];
    return NULL;
}

/* ---- timing ---------------------------------------------------------------- */
enum { MLP_1T, MLP_2T, ADAMW_1T, ADAMW_2T, N_CONFIGS };

static bench_pool g_pool;
static mlp g_mlp[2];
static adamw g_adamw[2];
static int g_failed;

static void run_call(void *arg) {
    int cfg = *(const int *)arg;
    if (cfg == MLP_1T || cfg == MLP_2T) {
        float l = mlp_step(&g_mlp[cfg == MLP_2T]);
        if (l != l) g_failed = 1;
    } else {
        if (attn_optim_step(g_adamw[cfg == ADAMW_2T].opt) != ATTN_OK) g_failed = 1;
    }
}

/* CPU seconds the whole machine has spent busy (user, nice, system, irq,
   softirq, steal of /proc/stat's cpu line), or -1. Minus this process's CPU
   time, that is what other processes (and the hypervisor) took: unlike the
   schedstat waits it does not count our own threads waiting for each other,
   which PyTorch's OpenMP + OpenBLAS pools do on 2 cores. Resolution: one tick
   (10 ms), so it is summed over a row's batches. */
static double machine_busy_s(void) {
    FILE *f = fopen("/proc/stat", "r");
    unsigned long long v[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    long tck = sysconf(_SC_CLK_TCK);
    int n;
    if (!f) return -1.0;
    n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n < 8 || tck <= 0) return -1.0;
    return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)tck;
}

static double g_others_s[N_CONFIGS], g_wall_s[N_CONFIGS]; /* per config: other processes' CPU, wall */
static int g_others_ok = 1;

/* Seconds per call of a batch; *cores gets process CPU time / wall time. */
static double time_batch(int cfg, long reps, int *disturbed, double *cores) {
    double m0 = machine_busy_s(), c0 = bench_process_cpu(), t0 = bench_now(), t, m1, c1, t1;
    t = bench_clean_batch(run_call, &cfg, reps, disturbed);
    t1 = bench_now();
    c1 = bench_process_cpu();
    m1 = machine_busy_s();
    if (cores) {
        *cores = (c1 - c0) / (t1 - t0);
        if (m0 < 0.0 || m1 < 0.0) g_others_ok = 0;
        g_others_s[cfg] += (m1 - m0) - (c1 - c0);
        g_wall_s[cfg] += t1 - t0;
    }
    return t;
}

static double rel_diff(double a, double b) { return fabs(a - b) / (fabs(b) > 1e-30 ? fabs(b) : 1e-30); }

/* max |a - b| / max |b| over n floats. */
static double max_rel(const float *a, const float *b, size_t n) {
    double d = 0.0, m = 0.0;
    size_t i;
    for (i = 0; i < n; i++) {
        double e = fabs((double)a[i] - (double)b[i]);
        if (!(e <= d)) d = e;
        if (fabs((double)b[i]) > m) m = fabs((double)b[i]);
    }
    return m > 0.0 ? d / m : d;
}

/* One table: attn's two rows (configs c1, c2) then PyTorch's rows. work is
   FLOP (GFLOP/s column) or bytes (GB/s column) per step. */
static double g_t[N_CONFIGS][BATCHES], g_ms[N_CONFIGS], g_cores[N_CONFIGS];
static int g_disturbed[N_CONFIGS];

static void print_line(const char *name, double ms, double work, double cores, double attn1, double attn2,
                       const char *noise, const char *busy, double others) {
    char gf[16] = "", r1[16] = "", r2[16] = "", ot[16] = "n/a";
    if (work > 0.0) snprintf(gf, sizeof gf, "%.1f", work / (ms * 1e-3) * 1e-9);
    if (attn1 > 0.0) snprintf(r1, sizeof r1, "%.2f", ms / attn1);
    if (attn2 > 0.0) snprintf(r2, sizeof r2, "%.2f", ms / attn2);
    if (others > -0.5) snprintf(ot, sizeof ot, "%.0f%%", others > 0.0 ? 100.0 * others : 0.0); /* -1: unknown */
    printf("%-50s | %7.2f | %7s | %5.2f | %7s | %7s | %5s | %5s | %s\n", name, ms, gf, cores, r1, r2, noise, busy, ot);
}

static void print_table(const char *unit, double work, int c1, int c2, const torch_results *tr, int n_torch,
                        const char *const *keys, const int *threads, const char *const *names) {
    int i, cfg;
    printf("%-50s | %7s | %7s | %5s | %7s | %7s | %5s | %5s | %s\n", "", "ms", unit, "cores", "xattn1T", "xattn2T",
           "noise", "busy", "others");
    printf("---------------------------------------------------+---------+---------+-------+---------+---------+-------+-------+-------\n");
    for (cfg = c1; cfg <= c2; cfg++) {
        char nz[16], ab[16];
        double others = g_others_ok && g_wall_s[cfg] > 0.0 ? g_others_s[cfg] / g_wall_s[cfg] : -1.0;
        snprintf(nz, sizeof nz, "%.0f%%", 100.0 * bench_spread(g_t[cfg], BATCHES));
        if (bench_cpu_wait() < 0.0) snprintf(ab, sizeof ab, "n/a");
        else snprintf(ab, sizeof ab, "%d/%d", g_disturbed[cfg], BATCHES);
        print_line(cfg == c1 ? "attn 1 thread" : "attn 2 threads (bench pool)", g_ms[cfg], work, g_cores[cfg], 0.0, 0.0, nz,
                   ab, others);
    }
    if (!tr) return;
    for (i = 0; i < n_torch; i++) {
        const torch_row *r = torch_find(tr, keys[i], threads[i]);
        char tb[16];
        if (!r) {
            printf("%-50s | (not measured)\n", names[i]);
            continue;
        }
        if (r->busy >= 0) snprintf(tb, sizeof tb, "%d/%d", r->busy, BATCHES_TORCH);
        else snprintf(tb, sizeof tb, r->busy == -2 ? "own" : "n/a");
        print_line(names[i], r->ms, work, r->cores, g_ms[c1], g_ms[c2], "", tb, r->others);
    }
}

int main(int argc, char **argv) {
    static const char *torch_mlp_keys[4] = {"mlp_blas1", "mlp", "mlp", "mlp_passive"};
    static const int torch_mlp_threads[4] = {1, 1, 2, 2};
    static const char *torch_mlp_names[4] = {
        "torch set_num_threads(1), OPENBLAS_NUM_THREADS=1", "torch set_num_threads(1) (OpenBLAS keeps 2 thr.)",
        "torch set_num_threads(2)", "torch set_num_threads(2), OMP_WAIT_POLICY=PASSIVE"};
    static const char *torch_adamw_keys[6] = {"adamw_loop", "adamw_foreach", "adamw_loop", "adamw_foreach",
                                              "adamw_loop_passive", "adamw_foreach_passive"};
    static const int torch_adamw_threads[6] = {1, 1, 2, 2, 2, 2};
    static const char *torch_adamw_names[6] = {
        "torch AdamW foreach=False (default), 1 thread", "torch AdamW foreach=True, 1 thread",
        "torch AdamW foreach=False (default), 2 threads", "torch AdamW foreach=True, 2 threads",
        "torch AdamW foreach=False, 2 thr., OMP PASSIVE", "torch AdamW foreach=True, 2 thr., OMP PASSIVE"};
    const char *data_dir = NULL, *torch_file = NULL, *torch_note = "torch: not measured (run through bench/run.sh)";
    double cores[N_CONFIGS][BATCHES];
    long reps[N_CONFIGS];
    double t_start = bench_now(), loss1, loss2, loss_ref, a_sum[2], a_sumsq[2];
    attn_threads threads2;
    torch_results tr;
    mem_report mem;
    int have_mem, have_torch, i, cfg, b, warnings = 0, loop_cfg = -1;
    double loop_s = 0.0;
    const char *grad_names[4] = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"};

    make_shapes();
    if (g_adamw_numel != 3323392) {
        fprintf(stderr, "bench_train: the AdamW shapes hold %lu parameters, not 3323392\n", (unsigned long)g_adamw_numel);
        return 1;
    }
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dump") == 0 && i + 1 < argc) {
            mlp m;
            mlp_init(&m, NULL);
            if (!mlp_dump(&m, argv[i + 1])) {
                fprintf(stderr, "bench_train: cannot write %s/mlp.f32\n", argv[i + 1]);
                return 1;
            }
            attn_context_destroy(m.ctx);
            return 0;
        } else if (strcmp(argv[i], "--loop") == 0 && i + 2 < argc) {
            loop_cfg = strcmp(argv[i + 1], "mlp1") == 0 ? MLP_1T : strcmp(argv[i + 1], "mlp2") == 0 ? MLP_2T
                     : strcmp(argv[i + 1], "adamw1") == 0 ? ADAMW_1T : strcmp(argv[i + 1], "adamw2") == 0 ? ADAMW_2T : -1;
            loop_s = atof(argv[i + 2]);
            if (loop_cfg < 0) {
                fprintf(stderr, "bench_train: --loop mlp1|mlp2|adamw1|adamw2 SECONDS\n");
                return 2;
            }
            i += 2;
        } else if (strcmp(argv[i], "--data") == 0 && i + 1 < argc) {
            data_dir = argv[++i];
        } else if (strcmp(argv[i], "--torch") == 0 && i + 1 < argc) {
            torch_file = argv[++i];
        } else if (strcmp(argv[i], "--no-torch") == 0 && i + 1 < argc) {
            torch_note = argv[++i];
        }
    }
    memset(&tr, 0, sizeof tr);
    if (torch_file) read_torch(&tr, torch_file);
    have_torch = tr.n_rows > 0;
    if (torch_file && !have_torch) torch_note = "PyTorch: NOT MEASURED (no timings in its output)";

    /* Before any thread or big buffer exists: the child starts from a small process. */
    have_mem = loop_cfg < 0 && measure_memory(&mem);

    bench_retry_budget_s = 15.0;
    if (bench_pool_start(&g_pool, 2) != 0) {
        fprintf(stderr, "bench_train: cannot start a worker thread\n");
        return 1;
    }
    threads2 = bench_pool_threads(&g_pool);
    if (loop_cfg >= 0) { /* --loop: run one configuration for perf record and the like */
        long steps = 0;
        double t0;
        if (loop_cfg == MLP_1T || loop_cfg == MLP_2T) mlp_init(&g_mlp[loop_cfg == MLP_2T], loop_cfg == MLP_2T ? &threads2 : NULL);
        else adamw_init(&g_adamw[loop_cfg == ADAMW_2T], loop_cfg == ADAMW_2T ? &threads2 : NULL);
        t0 = bench_now();
        while (bench_now() - t0 < loop_s && !g_failed) {
            run_call(&loop_cfg);
            steps++;
        }
        printf("%ld steps, %.3f ms a step%s\n", steps, 1e3 * (bench_now() - t0) / (double)(steps ? steps : 1),
               g_failed ? " (a step FAILED)" : "");
        bench_pool_stop(&g_pool);
        return g_failed;
    }
    mlp_init(&g_mlp[0], NULL);
    mlp_init(&g_mlp[1], &threads2);
    adamw_init(&g_adamw[0], NULL);
    adamw_init(&g_adamw[1], &threads2);

    /* ---- correctness first ---- */
    loss1 = mlp_step(&g_mlp[0]);
    loss2 = mlp_step(&g_mlp[1]);
    if (loss1 != loss1) fail("MLP step (1 thread)", g_mlp[0].ctx);
    if (loss2 != loss2) fail("MLP step (2 threads)", g_mlp[1].ctx);
    loss_ref = mlp_loss_double(&g_mlp[0]);
    printf("Checks: MLP loss attn %.7g, double-precision reference %.7g (rel %.1e)", loss1, loss_ref,
           rel_diff(loss1, loss_ref));
    if (have_torch && tr.have_loss) printf(", PyTorch %.7g (rel %.1e)", tr.loss, rel_diff(loss1, tr.loss));
    printf("\n");
    if (!(rel_diff(loss1, loss_ref) <= 1e-4)) {
        printf("WARNING MLP loss differs from the double-precision reference by more than 1e-4\n");
        warnings++;
    }
    if (have_torch && tr.have_loss && !(rel_diff(loss1, tr.loss) <= 1e-4)) {
        printf("WARNING MLP loss differs from PyTorch's by more than 1e-4 (same weights? run through run.sh)\n");
        warnings++;
    }
    {
        attn_tensor *ps[4];
        int k, same = memcmp(&loss1, &loss2, sizeof loss1) == 0;
        ps[0] = g_mlp[0].w1; ps[1] = g_mlp[0].b1; ps[2] = g_mlp[0].w2; ps[3] = g_mlp[0].b2;
        for (k = 0; k < 4; k++) {
            attn_tensor *q = k == 0 ? g_mlp[1].w1 : k == 1 ? g_mlp[1].b1 : k == 2 ? g_mlp[1].w2 : g_mlp[1].b2;
            if (memcmp(ps[k]->grad, q->grad, attn_tensor_numel(q) * sizeof(float)) != 0) same = 0;
        }
        if (!same) {
            printf("WARNING MLP: 2 threads not bit-identical to 1 thread (loss or grads)\n");
            warnings++;
        }
        if (have_torch && tr.have_loss && data_dir) {
            char path[1024];
            FILE *f;
            size_t total = 0, off = 0;
            float *g;
            for (k = 0; k < 4; k++) total += attn_tensor_numel(ps[k]);
            g = bench_floats(total);
            snprintf(path, sizeof path, "%s/mlp_grads_torch.f32", data_dir);
            f = fopen(path, "rb");
            if (f && fread(g, sizeof(float), total, f) == total) {
                int bad = 0;
                printf("        MLP grads vs PyTorch (max |diff| / max |grad|):");
                for (k = 0; k < 4; k++) {
                    size_t n = attn_tensor_numel(ps[k]);
                    double e = max_rel(ps[k]->grad, g + off, n);
                    printf(" %s %.1e", grad_names[k], e);
                    if (!(e <= 1e-4)) bad++;
                    off += n;
                }
                printf("\n");
                warnings += bad;
                if (bad) printf("WARNING MLP grads differ from PyTorch's by more than 1e-4\n");
            } else {
                printf("WARNING cannot read PyTorch's grads from %s\n", path);
                warnings++;
            }
            if (f) fclose(f);
            free(g);
        }
    }
    adamw_check(&g_adamw[0], &a_sum[0], &a_sumsq[0]);
    adamw_check(&g_adamw[1], &a_sum[1], &a_sumsq[1]);
    printf("        AdamW, 2 steps: sum of changes %.7g, sum of squares %.7g", a_sum[0], a_sumsq[0]);
    if (have_torch && tr.have_check)
        printf("; PyTorch %.7g, %.7g (rel %.1e, %.1e)", tr.check_sum, tr.check_sumsq, rel_diff(a_sum[0], tr.check_sum),
               rel_diff(a_sumsq[0], tr.check_sumsq));
    printf("\n");
    if (have_torch && tr.have_check &&
        !(rel_diff(a_sum[0], tr.check_sum) <= 1e-3 && rel_diff(a_sumsq[0], tr.check_sumsq) <= 1e-3)) {
        printf("WARNING AdamW update differs from PyTorch's by more than 1e-3\n");
        warnings++;
    }
    for (i = 0; i < N_PARAMS; i++)
        if (memcmp(g_adamw[0].p[i]->data, g_adamw[1].p[i]->data, attn_tensor_numel(g_adamw[0].p[i]) * sizeof(float))) {
            printf("WARNING AdamW: 2 threads not bit-identical to 1 thread\n");
            warnings++;
            break;
        }
    printf("%s\n\n", warnings ? "Checks: WARNING (see above)" : "Checks: OK");

    /* ---- timing: calibrate, then interleaved rounds ---- */
    for (cfg = 0; cfg < N_CONFIGS; cfg++) {
        double one;
        int dummy;
        bench_settle(0.5);
        time_batch(cfg, 2, &dummy, NULL);
        one = time_batch(cfg, 2, &dummy, NULL);
        reps[cfg] = (long)(BATCH_S / one);
        if (reps[cfg] < 1) reps[cfg] = 1;
    }
    for (b = 0; b < BATCHES; b++)
        for (cfg = 0; cfg < N_CONFIGS; cfg++) {
            int dist;
            bench_settle(0.5);
            g_t[cfg][b] = time_batch(cfg, reps[cfg], &dist, &cores[cfg][b]);
            g_disturbed[cfg] += dist;
        }
    if (g_failed) {
        printf("WARNING a timed step failed: %s / %s\n", attn_error_message(g_mlp[0].ctx), attn_error_message(g_adamw[0].ctx));
        warnings++;
    }
    for (cfg = 0; cfg < N_CONFIGS; cfg++) {
        g_ms[cfg] = 1e3 * bench_median(g_t[cfg], BATCHES);
        g_cores[cfg] = bench_median(cores[cfg], BATCHES);
    }

    /* ---- MLP table ---- */
    printf("Training step of an MLP 512-2048-512 (GELU erf), 256 tokens, MSE loss: zero grads, forward, backward\n");
    printf("(parameter grads only, x needs none: 5 GEMMs of 256x2048x512 = %.2f GFLOP a step; zero_grad: attn_params_zero_grad\n"
           " / model.zero_grad(set_to_none=False), PyTorch 1.13's default)\n", MLP_FLOP * 1e-9);
    printf("ms per step (median of %d batches); cores = CPU time / wall time; xattn = torch ms / attn ms (>1: attn faster)\n\n",
           BATCHES);
    print_table("GFLOP/s", MLP_FLOP, MLP_1T, MLP_2T, have_torch ? &tr : NULL, 4, torch_mlp_keys, torch_mlp_threads,
                torch_mlp_names);
    if (!have_torch) printf("%s\n", torch_note);
    printf("ggml (BASELINES.md, issue's figure, 1 thread): 124 ms for this MLP (ggml has no GELU backward)\n");
    if (have_torch) {
        const torch_row *one = torch_find(&tr, "mlp_blas1", 1), *dflt1 = torch_find(&tr, "mlp", 1);
        const torch_row *dflt2 = torch_find(&tr, "mlp", 2);
        if (one) printf("target >= 1.2x PyTorch at one thread: %.2fx against PyTorch on one core (OPENBLAS_NUM_THREADS=1)\n",
                        one->ms / g_ms[MLP_1T]);
        if (dflt1) printf("                                      %.2fx against set_num_threads(1) as installed (GEMMs on 2 cores)\n",
                          dflt1->ms / g_ms[MLP_1T]);
        if (dflt2) printf("target >= 2x PyTorch's default at two threads: %.2fx\n", dflt2->ms / g_ms[MLP_2T]);
    }

    /* ---- AdamW table ---- */
    printf("\nOne AdamW step (lr 1e-3, weight decay 0.01) over %lu parameters in %d tensors (the GPT of BASELINES.md), fixed grads\n",
           (unsigned long)g_adamw_numel, N_PARAMS);
    printf("GB/s: the least memory traffic, read p, g, m, v + write p, m, v = %.0f MB a step, over the time\n\n",
           ADAMW_BYTES * 1e-6);
    print_table("GB/s", ADAMW_BYTES, ADAMW_1T, ADAMW_2T, have_torch ? &tr : NULL, 6, torch_adamw_keys,
                torch_adamw_threads, torch_adamw_names);
    if (!have_torch) printf("%s\n", torch_note);

    /* ---- memory ---- */
    printf("\nPeak RSS of one training process (MLP + AdamW over the 3.3 M parameters, as above, 1 thread):\n");
    if (have_mem)
        printf("  attn  %6.1f MiB  (arena peaks: MLP %.1f MiB = %.1f parameters, grads, x, target + %.1f one step;"
               " AdamW %.1f MiB = parameters, grads, m, v)\n",
               mem.rss_kib / 1024.0, mem.mlp_peak / 1048576.0, mem.mlp_setup / 1048576.0,
               (mem.mlp_peak - mem.mlp_setup) / 1048576.0, mem.adamw_peak / 1048576.0);
    else
        printf("  attn  n/a (the measuring child failed)\n");
    if (have_torch && tr.rss_kib > 0)
        printf("  torch %6.1f MiB  (after import torch alone: %.1f MiB)\n", tr.rss_kib / 1024.0, tr.rss_import_kib / 1024.0);
    printf("busy = batches during which this process waited for a CPU > %.0f%% of the time even after %d tries%s;\n"
           "       own = not judged: PyTorch's OpenMP and OpenBLAS threads (4 on 2 cores) wait for each other\n"
           "others = CPU time of other processes during the row's batches, in %% of one core (/proc/stat)\n",
           100.0 * BENCH_BUSY_LIMIT, BENCH_TRIES, bench_cpu_wait() < 0.0 ? " (n/a here: no schedstat)" : "");
    printf("(training bench took %.1f s)\n", bench_now() - t_start);

    bench_pool_stop(&g_pool);
    for (i = 0; i < 2; i++) {
        attn_context_destroy(g_mlp[i].ctx);
        attn_context_destroy(g_adamw[i].ctx);
    }
    return 0;
}
