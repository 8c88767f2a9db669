/* tests/test_train.c - section 9 (training) against PyTorch: optimizer
   trajectories, cross-entropy and MSE, clip_grad_norm_, LR schedules,
   gradient accumulation, and the errors.

   The PyTorch numbers come from tests/fixtures/train_*.txt, written by
   tools/gen_train_fixtures.py (torch 1.13, float32; the format is described
   there: "NAME COUNT" records followed by COUNT numbers). Fixtures are looked
   up in $ATTN_TEST_DIR/fixtures/ (ATTN_TEST_DIR = a copy of tests/), then next
   to this source file (__FILE__'s directory, which is build/check-all/tests/
   under tools/check-all.sh), then in tests/fixtures/ under the working
   directory (make test runs from the repository root).

   Tolerances: |got - want| <= TOL * max(|want|, FLOOR), against torch's
   float32 results unless said otherwise. ATTN_TEST_VERBOSE=1 prints the worst
   error of every comparison, to see the margins.
     optimizer, given grads (torch's grads fed in at every step, so only the
       update is tested): parameters after each of 20 steps,
       TOL 1e-6, FLOOR 0.1 (parameters are O(1); 0.1 keeps an entry passing
       near zero from turning one ulp of the O(0.1-1) terms it is made of
       into a huge relative error)
     optimizer, full loop (matmul + add + mse + backward + step, mark/reset):
       TOL 1e-5, FLOOR 0.1. Not 1e-6: this loop amplifies rounding. torch's
       own float32 trajectories differ from its float64 ones by up to 2.2e-6
       here, and from float32 ones whose x moved by 1e-7 by up to 1.2e-6
       (measured on these fixtures), so a 1e-6 bound would fail on a harmless
       change in GEMM summation order. The given-grads run holds the update
       formulas to 1e-6; a wiring bug shows up as 1e-3 or more.
     first-step grads of the full loop (same parameters as torch):
       TOL 1e-6, FLOOR 0.1 * max|grad|
     loss values (CE, MSE): TOL 1e-6, FLOOR 1e-6
     CE and MSE grads: TOL 2e-6, FLOOR 1e-2 * max|grad| of the case. Where
       softmax meets the smoothing term (p - eps/C) the grad cancels, and
       torch's float32 grads are up to 6.4e-7 from its float64 ones by this
       measure (label_smoothing 1), so 2e-6 is about 3x torch's own noise
     clip_grad_norm (returned norm, clipped grads): TOL 1e-6, FLOOR 1e-12
     StepLR vs torch: TOL 1e-6, relative (the fixture holds float32 values)
     warmup-cosine vs the header's formula, computed here in double:
       TOL 1e-9, FLOOR 1e-6 * peak lr (attn_lr_at returns a double)
     gradient accumulation (vs torch, and vs one backward of the summed
       loss): TOL 1e-6, FLOOR 1e-3 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

/* ------------------------------------------------------------------------
   Fixtures */

/* The values of record name, which must have n numbers (n < 0: any); NULL and a CHECK failure otherwise. */
static const float *fx_get(const fx_file *fx, const char *name, int n) {
    const fx_rec *r = fx_find(fx, name);
    if (!CHECK(r != NULL, "%s: no record %s", fx->path, name)) return NULL;
    if (!CHECK(n < 0 || r->n == n, "%s: record %s has %d numbers, want %d", fx->path, name, r->n, n)) return NULL;
    return r->v;
}

static const float *fx_getf(const fx_file *fx, int n, const char *fmt, const char *a) {
    char name[128];
    sprintf(name, fmt, a);
    return fx_get(fx, name, n);
}

static int fx_count(const fx_file *fx, const char *fmt, const char *a) {
    char name[128];
    const fx_rec *r;
    sprintf(name, fmt, a);
    r = fx_find(fx, name);
    return r ? r->n : -1;
}

/* ------------------------------------------------------------------------
   Comparison */

/* The worst |got - want| / max(|want|, floor) over n values (NaN in got or
   want counts as infinite), and where. */
static double worst_err(const float *got, const float *want, size_t n, double floor, size_t *at) {
    double worst = 0.0;
    size_t i;
    *at = 0;
    for (i = 0; i < n; i++) {
        double g = got[i], w = want[i];
        double scale = fabs(w) > floor ? fabs(w) : floor;
        double e = fabs(g - w) / scale;
        if (e != e) e = HUGE_VAL;
        if (e > worst) {
            worst = e;
            *at = i;
        }
    }
    return worst;
}

static float max_abs(const float *x, size_t n) {
    float m = 0.0f;
    size_t i;
    for (i = 0; i < n; i++)
        if (fabsf(x[i]) > m) m = fabsf(x[i]);
    return m;
}

/* CHECK that got[0..n) is within tol * max(|want|, floor) of want. */
#define CHECK_CLOSE(got, want, n, tol, floor, ...)                                                            \
    do {                                                                                                    \
        size_t at_;                                                                                         \
        double e_ = worst_err((got), (want), (n), (floor), &at_);                                          \
        char what_[256];                                                                                    \
        sprintf(what_, __VA_ARGS__);                                                                        \
        CHECK(e_ <= (tol), "%s: [%d] got %.9g want %.9g (error %.3g of max(|want|, %.3g), tolerance %.3g)", \
              what_, (int)at_, (double)(got)[at_], (double)(want)[at_], e_, (double)(floor), (double)(tol)); \
        if (getenv("ATTN_TEST_VERBOSE")) printf("  train: %s: worst error %.3g (tolerance %.3g)\n", what_, e_, (double)(tol)); \
    } while (0)

static int failed_with_message(attn_context *ctx) {
    return attn_error_status(ctx) != ATTN_OK && attn_error_message(ctx)[0] != 0;
}

static attn_tensor *tensor_from(attn_context *ctx, int ndim, const int *shape, const float *v) {
    attn_tensor *t = attn_tensor_new(ctx, ndim, shape);
    if (t && v) memcpy(t->data, v, attn_tensor_numel(t) * sizeof(float));
    return t;
}

static attn_tensor *param_from(attn_context *ctx, const char *name, int ndim, const int *shape, const float *v) {
    attn_tensor *t = attn_param_new(ctx, name, ndim, shape);
    if (t && v) memcpy(t->data, v, attn_tensor_numel(t) * sizeof(float));
    return t;
}

/* ------------------------------------------------------------------------
   Optimizer trajectories */

#define OPT_TOL 1e-6      /* given grads: the optimizer alone */
#define OPT_TOL_FULL 1e-5 /* full loop: the optimizer plus the rounding of forward and backward */
#define OPT_FLOOR 0.1

static const char *const optim_configs[] = {
    "sgd", "sgd_momentum", "sgd_dampening", "sgd_nesterov", "sgd_wd", "sgd_all", "sgd_steplr",
    "adam", "adam_wd", "adam_betas", "adamw_wd001", "adamw_wd01", "adagrad", "adagrad_all"
};

static void desc_from(const float *d, attn_optim_desc *o, attn_lr_desc *sched) {
    memset(o, 0, sizeof *o);
    memset(sched, 0, sizeof *sched);
    o->kind = (attn_optim_kind)(int)d[0];
    o->lr = d[1];
    o->weight_decay = d[2];
    o->momentum = d[3];
    o->dampening = d[4];
    o->nesterov = (int)d[5];
    o->beta1 = d[6];
    o->beta2 = d[7];
    o->eps = d[8];
    o->lr_decay = d[9];
    o->initial_accumulator_value = d[10];
    sched->kind = ATTN_LR_CONSTANT;
    sched->lr = d[1];
    if (d[11] > 0) {
        sched->kind = ATTN_LR_STEP;
        sched->step_size = (int)d[11];
        sched->gamma = d[12];
    }
}

static unsigned char fixed_mem[512 * 1024];

/* Run config cfg for the fixture's steps. full != 0: each step's grads come
   from attn_matmul + attn_add + attn_mse + attn_backward on attn.h's own
   parameters; full == 0: the grads torch had at that step are copied in, so
   only the optimizer is under test. fixed != 0: the context lives in a caller
   buffer and the allocator must never be called. Parameters are compared
   after every step. */
static void run_trajectory(const fx_file *fx, const char *cfg, int full, int fixed) {
    const float *dims = fx_get(fx, "dims", 4), *x, *y, *W0, *b0, *desc, *grads, *params;
    int n, in, out, steps, np, step, shape_w[2], shape_b[1], shape_x[2], shape_y[2];
    attn_optim_desc od;
    attn_lr_desc sched;
    attn_context_desc cd;
    test_allocator al;
    attn_context *ctx;
    attn_tensor *W, *b, *tx = NULL, *ty = NULL;
    attn_optim *opt;
    attn_context_pos mark;
    size_t used0 = 0;
    double worst = 0.0, worst_grad = 0.0, tol = full ? OPT_TOL_FULL : OPT_TOL;
    int worst_step = -1, failed = 0;
    const char *mode = full ? (fixed ? "full, fixed" : "full loop") : "given grads";
    if (!dims) return;
    n = (int)dims[0], in = (int)dims[1], out = (int)dims[2], steps = (int)dims[3];
    np = in * out + out;
    if (!CHECK(np <= 64, "train_optim.txt: %d parameters, the test holds 64", np)) return;
    x = fx_get(fx, "x", n * in);
    y = fx_get(fx, "y", n * out);
    W0 = fx_get(fx, "W0", in * out);
    b0 = fx_get(fx, "b0", out);
    desc = fx_getf(fx, 13, "%s.desc", cfg);
    grads = fx_getf(fx, steps * np, "%s.grads", cfg);
    params = fx_getf(fx, steps * np, "%s.params", cfg);
    if (!x || !y || !W0 || !b0 || !desc || !grads || !params) return;
    desc_from(desc, &od, &sched);

    memset(&al, 0, sizeof al);
    memset(&cd, 0, sizeof cd);
    cd.alloc_user = &al;
    cd.block_size = 64 * 1024;
    if (fixed) {
        memset(fixed_mem, 0xA5, sizeof fixed_mem);
        cd.memory = fixed_mem;
        cd.memory_size = sizeof fixed_mem;
    }
    ctx = attn_context_create(&cd);
    if (!CHECK(ctx != NULL, "%s: context", cfg)) return;
    shape_w[0] = in, shape_w[1] = out, shape_b[0] = out;
    shape_x[0] = n, shape_x[1] = in, shape_y[0] = n, shape_y[1] = out;
    W = param_from(ctx, "W", 2, shape_w, W0);
    b = param_from(ctx, "b", 1, shape_b, b0);
    if (full) {
        tx = tensor_from(ctx, 2, shape_x, x);
        ty = tensor_from(ctx, 2, shape_y, y);
    }
    if (!CHECK(W && b && (!full || (tx && ty)), "%s: tensors: %s", cfg, attn_error_message(ctx))) goto done;
    if (!CHECK(W->grad != NULL && b->grad != NULL, "%s: a parameter has no grad buffer", cfg)) goto done;
    opt = attn_optim_create(ctx, &od);
    if (!CHECK(opt != NULL, "%s: attn_optim_create: %s", cfg, attn_error_message(ctx))) goto done;
    mark = attn_context_mark(ctx);
    used0 = attn_arena_used(attn_context_arena(ctx));

    for (step = 0; step < steps && !failed; step++) {
        const float *g = grads + (size_t)step * np, *want = params + (size_t)step * np;
        float got[64];
        size_t at;
        double e;
        if (sched.kind != ATTN_LR_CONSTANT) {
            attn_optim_set_lr(opt, attn_lr_at(&sched, step));
            CHECK(attn_optim_get_lr(opt) == attn_lr_at(&sched, step), "%s: get_lr %g after set_lr %g", cfg,
                  attn_optim_get_lr(opt), attn_lr_at(&sched, step));
        }
        if (full) {
            attn_tensor *xw, *pred, *loss;
            attn_params_zero_grad(ctx);
            xw = attn_matmul(ctx, tx, W);
            pred = xw ? attn_add(ctx, xw, b) : NULL;
            loss = pred ? attn_mse(ctx, pred, ty) : NULL;
            if (!CHECK(loss != NULL, "%s step %d: forward failed: %s", cfg, step, attn_error_message(ctx))) break;
            if (!CHECK(attn_backward(ctx, loss) == ATTN_OK, "%s step %d: backward: %s", cfg, step,
                       attn_error_message(ctx)))
                break;
            memcpy(got, W->grad, (size_t)(in * out) * sizeof(float));
            memcpy(got + in * out, b->grad, (size_t)out * sizeof(float));
            if (step == 0) /* same parameters as torch here: the grads must agree closely */
                CHECK_CLOSE(got, g, (size_t)np, 1e-6, 0.1 * max_abs(g, (size_t)np), "%s step 1 grads (backward of mse(x@W+b, y))", cfg);
            e = worst_err(got, g, (size_t)np, 0.1 * max_abs(g, (size_t)np), &at);
            if (e > worst_grad) worst_grad = e;
        } else {
            memcpy(W->grad, g, (size_t)(in * out) * sizeof(float));
            memcpy(b->grad, g + in * out, (size_t)out * sizeof(float));
        }
        if (!CHECK(attn_optim_step(opt) == ATTN_OK, "%s step %d: attn_optim_step: %s", cfg, step,
                   attn_error_message(ctx)))
            break;
        if (full) {
            attn_context_reset(ctx, mark);
            if (!CHECK(attn_arena_used(attn_context_arena(ctx)) == used0,
                       "%s step %d: arena used %d after reset to the mark, %d at the mark", cfg, step,
                       (int)attn_arena_used(attn_context_arena(ctx)), (int)used0))
                failed = 1;
        }
        memcpy(got, W->data, (size_t)(in * out) * sizeof(float));
        memcpy(got + in * out, b->data, (size_t)out * sizeof(float));
        e = worst_err(got, want, (size_t)np, OPT_FLOOR, &at);
        if (e > worst || e != e) worst = e, worst_step = step;
        if (!CHECK(e <= tol, "%s (%s) step %d/%d: param[%d] (%s) got %.9g, torch %.9g: error %.3g of max(|torch|, %g) > %g",
                   cfg, mode, step + 1, steps, (int)at, (int)at < in * out ? "W" : "b", (double)got[at], (double)want[at],
                   e, OPT_FLOOR, tol))
            failed = 1; /* later steps only repeat the news */
    }
    CHECK(failed || attn_optim_steps(opt) == steps, "%s: attn_optim_steps %d after %d steps", cfg, attn_optim_steps(opt), steps);
    if (getenv("ATTN_TEST_VERBOSE")) { /* the margins, for whoever tunes the update kernels */
        if (full)
            printf("  train: %-14s %-11s worst param error %.3g (step %d), grads vs torch's %.3g of max(|g|, 0.1 max|g|)\n",
                   cfg, mode, worst, worst_step + 1, worst_grad);
        else
            printf("  train: %-14s %-11s worst param error %.3g (step %d)\n", cfg, mode, worst, worst_step + 1);
    }
done:
    attn_context_destroy(ctx);
    CHECK(al.live == 0, "%s: %ld allocations left after attn_context_destroy", cfg, al.live);
    CHECK(!fixed || al.mallocs + al.reallocs == 0, "%s in caller memory: %ld allocator calls", cfg, al.mallocs + al.reallocs);
}

static void run_all_trajectories(int full) {
    fx_file fx;
    size_t i;
    if (!fx_load(&fx, "train_optim.txt")) return;
    for (i = 0; i < sizeof optim_configs / sizeof optim_configs[0]; i++) run_trajectory(&fx, optim_configs[i], full, 0);
    fx_free(&fx);
}

TEST(optim_trajectories_given_grads_match_torch) { run_all_trajectories(0); }
TEST(optim_trajectories_full_loop_match_torch) { run_all_trajectories(1); }

/* The embedded case: a whole training loop in a caller buffer, no malloc. */
TEST(optim_full_loop_in_caller_memory) {
    static const char *const cfgs[] = { "sgd_nesterov", "adam_wd", "adamw_wd01", "adagrad_all" };
    fx_file fx;
    size_t i;
    if (!fx_load(&fx, "train_optim.txt")) return;
    for (i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) run_trajectory(&fx, cfgs[i], 1, 1);
    fx_free(&fx);
}

/* Parameters registered after attn_optim_create are not the optimizer's;
   steps count; set_lr/get_lr round-trip. */
TEST(optim_covers_params_registered_before_it) {
    attn_context *ctx = attn_context_create(NULL);
    attn_optim_desc od;
    attn_optim *opt;
    attn_tensor *a, *late;
    int shape[1] = { 3 }, i;
    if (!CHECK(ctx != NULL, "context")) return;
    a = attn_param_new(ctx, "a", 1, shape);
    memset(&od, 0, sizeof od);
    od.kind = ATTN_OPTIM_SGD;
    od.lr = 0.5;
    opt = attn_optim_create(ctx, &od);
    late = attn_param_new(ctx, "late", 1, shape);
    if (!CHECK(a && late && opt, "setup: %s", attn_error_message(ctx))) goto done;
    CHECK(attn_optim_steps(opt) == 0, "steps %d before any step", attn_optim_steps(opt));
    CHECK(attn_optim_get_lr(opt) == 0.5, "get_lr %g, want 0.5", attn_optim_get_lr(opt));
    for (i = 0; i < 3; i++) a->grad[i] = 1.0f, late->grad[i] = 1.0f, late->data[i] = 2.0f;
    CHECK(attn_optim_step(opt) == ATTN_OK, "step: %s", attn_error_message(ctx));
    for (i = 0; i < 3; i++) {
        CHECK(a->data[i] == -0.5f, "a[%d] = %g after one SGD step of lr 0.5 and grad 1, want -0.5", i, (double)a->data[i]);
        CHECK(late->data[i] == 2.0f, "late[%d] = %g: a parameter registered after attn_optim_create was updated", i,
              (double)late->data[i]);
    }
    attn_optim_set_lr(opt, 0.25);
    CHECK(attn_optim_get_lr(opt) == 0.25, "get_lr %g after set_lr(0.25)", attn_optim_get_lr(opt));
    CHECK(attn_optim_step(opt) == ATTN_OK, "step: %s", attn_error_message(ctx));
    CHECK(a->data[0] == -0.75f, "a[0] = %g after a second step at lr 0.25, want -0.75", (double)a->data[0]);
    CHECK(attn_optim_steps(opt) == 2, "steps %d after 2", attn_optim_steps(opt));
done:
    attn_context_destroy(ctx);
}

/* ------------------------------------------------------------------------
   Losses */

#define LOSS_TOL 1e-6
#define LOSS_FLOOR 1e-6
#define LOSS_GRAD_TOL 2e-6

/* the scale below which grad entries are compared absolutely */
static double ce_grad_floor(const float *want, size_t n) {
    double m = max_abs(want, n);
    return m > 0 ? 1e-2 * m : 1e-12;
}

static const char *const ce_cases[] = {
    "basic", "ignore_default", "ignore_minus1", "ignore_class3", "smooth", "smooth_ignore", "smooth_ignore_class2",
    "smooth_full", "all_ignored", "all_ignored_smooth", "big_logits", "wide"
};

/* transposed != 0: the logits are a transposed view of a (C, N) parameter */
static void ce_case(const fx_file *fx, const char *name, int transposed) {
    const float *meta = fx_getf(fx, 4, "ce.%s.meta", name), *logits, *targ, *want_loss = NULL, *want_grad;
    int n, c, ignore, shape[2], i, j;
    float ls;
    int32_t targets[64];
    float grad[64 * 40];
    attn_context *ctx;
    attn_tensor *L, *view, *loss;
    if (!meta) return;
    n = (int)meta[0], c = (int)meta[1], ignore = (int)meta[2], ls = meta[3];
    if (!CHECK(n <= 64 && n * c <= 64 * 40, "ce.%s too big for the test's buffers", name)) return;
    logits = fx_getf(fx, n * c, "ce.%s.logits", name);
    targ = fx_getf(fx, n, "ce.%s.targets", name);
    want_grad = fx_getf(fx, n * c, "ce.%s.grad", name);
    if (fx_count(fx, "ce.%s.loss", name) >= 0) want_loss = fx_getf(fx, 1, "ce.%s.loss", name);
    if (!logits || !targ || !want_grad) return;
    for (i = 0; i < n; i++) targets[i] = (int32_t)targ[i];
    ctx = attn_context_create(NULL);
    if (!CHECK(ctx != NULL, "context")) return;
    if (transposed) {
        shape[0] = c, shape[1] = n;
        L = attn_param_new(ctx, "logits_t", 2, shape);
        if (!CHECK(L != NULL, "param: %s", attn_error_message(ctx))) goto done;
        for (i = 0; i < n; i++)
            for (j = 0; j < c; j++) L->data[j * n + i] = logits[i * c + j];
        view = attn_transpose(ctx, L, 0, 1);
    } else {
        shape[0] = n, shape[1] = c;
        view = L = param_from(ctx, "logits", 2, shape, logits);
    }
    if (!CHECK(L && view, "setup: %s", attn_error_message(ctx))) goto done;
    loss = attn_cross_entropy(ctx, view, targets, ignore, ls);
    if (!CHECK(loss != NULL, "ce.%s%s: NULL: %s", name, transposed ? " (transposed view)" : "", attn_error_message(ctx)))
        goto done;
    CHECK(attn_tensor_numel(loss) == 1, "ce.%s: loss has %d elements, want a scalar", name, (int)attn_tensor_numel(loss));
    if (want_loss)
        CHECK_CLOSE(loss->data, want_loss, 1, LOSS_TOL, LOSS_FLOOR, "ce.%s%s loss (ignore_index %d, label_smoothing %g)",
                    name, transposed ? " (transposed view)" : "", ignore, (double)ls);
    else
        CHECK(test_is_nan(loss->data[0]), "ce.%s: every row ignored: loss %g, want NaN (as torch)", name,
              (double)loss->data[0]);
    if (!CHECK(attn_backward(ctx, loss) == ATTN_OK, "ce.%s: backward: %s", name, attn_error_message(ctx))) goto done;
    if (!CHECK(L->grad != NULL, "ce.%s: no grad", name)) goto done;
    for (i = 0; i < n; i++)
        for (j = 0; j < c; j++) grad[i * c + j] = transposed ? L->grad[j * n + i] : L->grad[i * c + j];
    CHECK_CLOSE(grad, want_grad, (size_t)(n * c), LOSS_GRAD_TOL, ce_grad_floor(want_grad, (size_t)(n * c)),
                "ce.%s%s d loss/d logits (ignore_index %d, label_smoothing %g)", name,
                transposed ? " (transposed view)" : "", ignore, (double)ls);
done:
    attn_context_destroy(ctx);
}

TEST(cross_entropy_matches_torch) {
    fx_file fx;
    size_t i;
    if (!fx_load(&fx, "train_losses.txt")) return;
    for (i = 0; i < sizeof ce_cases / sizeof ce_cases[0]; i++) ce_case(&fx, ce_cases[i], 0);
    ce_case(&fx, "basic", 1);
    ce_case(&fx, "smooth_ignore", 1);
    fx_free(&fx);
}

TEST(mse_matches_torch) {
    static const char *const cases[] = { "2d", "3d", "1d" };
    fx_file fx;
    size_t i;
    if (!fx_load(&fx, "train_losses.txt")) return;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *name = cases[i];
        int ndim = fx_count(&fx, "mse.%s.shape", name), shape[4], d;
        size_t numel = 1;
        const float *sh = fx_getf(&fx, -1, "mse.%s.shape", name), *a, *b, *wl, *wa, *wb;
        attn_context *ctx;
        attn_tensor *ta, *tb, *loss;
        if (!sh || !CHECK(ndim >= 1 && ndim <= 4, "mse.%s: bad shape record", name)) continue;
        for (d = 0; d < ndim; d++) shape[d] = (int)sh[d], numel *= (size_t)shape[d];
        a = fx_getf(&fx, (int)numel, "mse.%s.a", name);
        b = fx_getf(&fx, (int)numel, "mse.%s.b", name);
        wl = fx_getf(&fx, 1, "mse.%s.loss", name);
        wa = fx_getf(&fx, (int)numel, "mse.%s.grad_a", name);
        wb = fx_getf(&fx, (int)numel, "mse.%s.grad_b", name);
        if (!a || !b || !wl || !wa || !wb) continue;
        ctx = attn_context_create(NULL);
        if (!CHECK(ctx != NULL, "context")) continue;
        ta = param_from(ctx, "a", ndim, shape, a);
        tb = param_from(ctx, "b", ndim, shape, b);
        loss = ta && tb ? attn_mse(ctx, ta, tb) : NULL;
        if (CHECK(loss != NULL, "mse.%s: NULL: %s", name, attn_error_message(ctx))) {
            CHECK(attn_tensor_numel(loss) == 1, "mse.%s: loss is not a scalar", name);
            CHECK_CLOSE(loss->data, wl, 1, LOSS_TOL, LOSS_FLOOR, "mse.%s loss", name);
            if (CHECK(attn_backward(ctx, loss) == ATTN_OK, "mse.%s backward: %s", name, attn_error_message(ctx))) {
                CHECK_CLOSE(ta->grad, wa, numel, LOSS_GRAD_TOL, ce_grad_floor(wa, numel), "mse.%s d/da", name);
                CHECK_CLOSE(tb->grad, wb, numel, LOSS_GRAD_TOL, ce_grad_floor(wb, numel), "mse.%s d/db", name);
            }
        }
        attn_context_destroy(ctx);
    }
    fx_free(&fx);
}

/* ------------------------------------------------------------------------
   clip_grad_norm */

TEST(clip_grad_norm_matches_torch) {
    static const char *const cases[] = { "clip", "noclip", "tiny", "just_below" };
    fx_file fx;
    size_t i;
    if (!fx_load(&fx, "train_misc.txt")) return;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *name = cases[i];
        const float *meta = fx_getf(&fx, 2, "clip.%s.meta", name), *shapes, *grads, *want_norm, *want;
        int np, k, total = 0;
        float got[256], norm, max_norm;
        attn_context *ctx;
        attn_tensor *ps[8];
        if (!meta) continue;
        np = (int)meta[0], max_norm = meta[1];
        if (!CHECK(np >= 1 && np <= 8, "clip.%s: %d params", name, np)) continue;
        shapes = fx_getf(&fx, 2 * np, "clip.%s.shapes", name);
        if (!shapes) continue;
        for (k = 0; k < np; k++) total += (int)shapes[2 * k] * (int)shapes[2 * k + 1];
        if (!CHECK(total <= 256, "clip.%s too big", name)) continue;
        grads = fx_getf(&fx, total, "clip.%s.grads", name);
        want_norm = fx_getf(&fx, 1, "clip.%s.norm", name);
        want = fx_getf(&fx, total, "clip.%s.clipped", name);
        if (!grads || !want_norm || !want) continue;
        ctx = attn_context_create(NULL);
        if (!CHECK(ctx != NULL, "context")) continue;
        for (k = 0, total = 0; k < np; k++) {
            int shape[2], numel;
            char pname[16];
            shape[0] = (int)shapes[2 * k], shape[1] = (int)shapes[2 * k + 1];
            numel = shape[0] * shape[1];
            sprintf(pname, "p%d", k);
            /* an (r, 1) shape is made 1-D, so 1-D and 2-D params mix */
            ps[k] = attn_param_new(ctx, pname, shape[1] == 1 ? 1 : 2, shape);
            if (!CHECK(ps[k] != NULL, "param: %s", attn_error_message(ctx))) break;
            memcpy(ps[k]->grad, grads + total, (size_t)numel * sizeof(float));
            total += numel;
        }
        if (k == np) {
            norm = attn_clip_grad_norm(ctx, max_norm);
            CHECK_CLOSE(&norm, want_norm, 1, 1e-6, 1e-12, "clip.%s: returned norm (max_norm %g)", name, (double)max_norm);
            for (k = 0, total = 0; k < np; k++) {
                int numel = (int)attn_tensor_numel(ps[k]);
                memcpy(got + total, ps[k]->grad, (size_t)numel * sizeof(float));
                total += numel;
            }
            CHECK_CLOSE(got, want, (size_t)total, 1e-6, 1e-12, "clip.%s: grads after clipping (max_norm %g, norm %g)", name,
                        (double)max_norm, (double)want_norm[0]);
        }
        attn_context_destroy(ctx);
    }
    fx_free(&fx);
}

/* All grads zero (before any backward): the norm is 0 and nothing turns NaN. */
TEST(clip_grad_norm_of_zero_grads) {
    attn_context *ctx = attn_context_create(NULL);
    attn_tensor *p;
    int shape[2] = { 3, 2 }, i, bad = 0;
    float norm;
    if (!CHECK(ctx != NULL, "context")) return;
    p = attn_param_new(ctx, "p", 2, shape);
    if (CHECK(p != NULL, "param: %s", attn_error_message(ctx))) {
        norm = attn_clip_grad_norm(ctx, 1.0f);
        CHECK(norm == 0.0f, "norm of zero grads %g, want 0", (double)norm);
        for (i = 0; i < 6; i++) bad += p->grad[i] != 0.0f;
        CHECK(bad == 0, "%d zero grads changed by clipping (NaN from 0/0?)", bad);
    }
    attn_context_destroy(ctx);
}

/* ------------------------------------------------------------------------
   LR schedules */

/* torch's StepLR lr (a Python double) is stored as float32, so the
   comparison is relative to float32's precision: 1e-6. */
TEST(lr_step_matches_torch_steplr) {
    static const char *const cases[] = { "half7", "tenth10", "every1" };
    fx_file fx;
    size_t i;
    if (!fx_load(&fx, "train_misc.txt")) return;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const float *meta = fx_getf(&fx, 4, "steplr.%s.meta", cases[i]), *want;
        attn_lr_desc d;
        double worst = 0.0, worst_got = 0.0;
        int n, s, worst_s = 0;
        if (!meta) continue;
        n = (int)meta[3];
        want = fx_getf(&fx, n, "steplr.%s.lr", cases[i]);
        if (!want) continue;
        memset(&d, 0, sizeof d);
        d.kind = ATTN_LR_STEP;
        d.lr = meta[0];
        d.step_size = (int)meta[1];
        d.gamma = meta[2];
        for (s = 0; s < n; s++) {
            double got = attn_lr_at(&d, s), e = fabs(got - want[s]) / fabs(want[s]);
            if (!(e <= worst)) worst = e, worst_s = s, worst_got = got;
        }
        CHECK(worst <= 1e-6, "StepLR(lr %g, step_size %d, gamma %g) step %d: got %.9g, torch %.9g (relative error %.3g)",
              d.lr, d.step_size, d.gamma, worst_s, worst_got, (double)want[worst_s], worst);
    }
    fx_free(&fx);
}

/* The header: warmup lr * (step + 1) / warmup_steps; then min_lr + (lr -
   min_lr) (1 + cos(pi t)) / 2, t = the fraction of the post-warmup steps done,
   (step - warmup) / (total - warmup), held at min_lr after total_steps.
   Computed here in double from that text alone; attn_lr_at returns a double,
   so the tolerance is 1e-9 of max(|want|, 1e-6 lr). */
static double warmup_cosine_ref(double lr, int warmup, int total, double min_lr, int step) {
    const double pi = 3.14159265358979323846;
    double t;
    if (step < warmup) return lr * (step + 1) / warmup;
    if (step >= total) return min_lr;
    t = (double)(step - warmup) / (double)(total - warmup);
    return min_lr + (lr - min_lr) * (1.0 + cos(pi * t)) / 2.0;
}

TEST(lr_warmup_cosine_follows_the_header_formula) {
    static const struct { double lr; int warmup, total; double min_lr; int n; } cases[] = {
        { 1e-3, 10, 100, 1e-5, 130 }, { 0.5, 0, 50, 0.0, 60 }, { 3e-4, 100, 1000, 3e-5, 1100 }, { 1.0, 5, 6, 0.1, 10 }
    };
    size_t c;
    for (c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        attn_lr_desc d;
        double worst = 0.0, worst_got = 0.0;
        int s, worst_s = 0;
        memset(&d, 0, sizeof d);
        d.kind = ATTN_LR_WARMUP_COSINE;
        d.lr = cases[c].lr;
        d.warmup_steps = cases[c].warmup;
        d.total_steps = cases[c].total;
        d.min_lr = cases[c].min_lr;
        for (s = 0; s < cases[c].n; s++) {
            double got = attn_lr_at(&d, s);
            double want = warmup_cosine_ref(d.lr, d.warmup_steps, d.total_steps, d.min_lr, s);
            double scale = fabs(want) > 1e-6 * d.lr ? fabs(want) : 1e-6 * d.lr;
            double e = fabs(got - want) / scale;
            if (!(e <= worst)) worst = e, worst_s = s, worst_got = got;
        }
        CHECK(worst <= 1e-9, "warmup-cosine(lr %g, warmup %d, total %d, min %g) step %d: got %.17g, formula %.17g (error %.3g)",
              d.lr, d.warmup_steps, d.total_steps, d.min_lr, worst_s, worst_got,
              warmup_cosine_ref(d.lr, d.warmup_steps, d.total_steps, d.min_lr, worst_s), worst);
    }
}

TEST(lr_constant) {
    attn_lr_desc d;
    int s, bad = 0;
    memset(&d, 0, sizeof d);
    d.kind = ATTN_LR_CONSTANT;
    d.lr = 0.0123;
    d.warmup_steps = 10, d.total_steps = 20, d.min_lr = 0.001, d.step_size = 3, d.gamma = 0.5; /* ignored */
    for (s = 0; s < 100; s++) bad += attn_lr_at(&d, s) != 0.0123;
    bad += attn_lr_at(&d, 1000000) != 0.0123;
    CHECK(bad == 0, "ATTN_LR_CONSTANT: %d of 101 steps did not give lr", bad);
}

/* ------------------------------------------------------------------------
   Gradient accumulation */

TEST(grad_accumulation_and_zero_grad) {
    fx_file fx, misc;
    const float *W0, *b0, *x1, *y1, *x2, *y2, *gW, *gb;
    attn_context *ctx = NULL;
    attn_tensor *W, *b, *tx[2], *ty[2], *extra;
    int shape_w[2] = { 4, 3 }, shape_b[1] = { 3 }, shape_x[2] = { 4, 4 }, shape_y[2] = { 4, 3 }, k, i, bad;
    float acc[15], want[15], sum[15];
    attn_context_pos mark;
    if (!fx_load(&fx, "train_optim.txt")) return;
    if (!fx_load(&misc, "train_misc.txt")) {
        fx_free(&fx);
        return;
    }
    W0 = fx_get(&fx, "W0", 12);
    b0 = fx_get(&fx, "b0", 3);
    x1 = fx_get(&misc, "accum.x1", 16);
    y1 = fx_get(&misc, "accum.y1", 12);
    x2 = fx_get(&misc, "accum.x2", 16);
    y2 = fx_get(&misc, "accum.y2", 12);
    gW = fx_get(&misc, "accum.gW", 12);
    gb = fx_get(&misc, "accum.gb", 3);
    if (!W0 || !b0 || !x1 || !y1 || !x2 || !y2 || !gW || !gb) goto out;
    memcpy(want, gW, 12 * sizeof(float));
    memcpy(want + 12, gb, 3 * sizeof(float));
    ctx = attn_context_create(NULL);
    if (!CHECK(ctx != NULL, "context")) goto out;
    W = param_from(ctx, "W", 2, shape_w, W0);
    b = param_from(ctx, "b", 1, shape_b, b0);
    tx[0] = tensor_from(ctx, 2, shape_x, x1);
    ty[0] = tensor_from(ctx, 2, shape_y, y1);
    tx[1] = tensor_from(ctx, 2, shape_x, x2);
    ty[1] = tensor_from(ctx, 2, shape_y, y2);
    if (!CHECK(W && b && tx[0] && ty[0] && tx[1] && ty[1], "setup: %s", attn_error_message(ctx))) goto out;

    /* two micro-batches, each forward + backward, the activations dropped in
       between (attn_context_reset): the parameter grads add up */
    mark = attn_context_mark(ctx);
    for (k = 0; k < 2; k++) {
        attn_tensor *xw = attn_matmul(ctx, tx[k], W), *pred = xw ? attn_add(ctx, xw, b) : NULL;
        attn_tensor *loss = pred ? attn_mse(ctx, pred, ty[k]) : NULL;
        if (!CHECK(loss != NULL, "micro-batch %d forward: %s", k, attn_error_message(ctx))) goto out;
        if (!CHECK(attn_backward(ctx, loss) == ATTN_OK, "micro-batch %d backward: %s", k, attn_error_message(ctx))) goto out;
        attn_context_reset(ctx, mark);
    }
    memcpy(acc, W->grad, 12 * sizeof(float));
    memcpy(acc + 12, b->grad, 3 * sizeof(float));
    CHECK_CLOSE(acc, want, 15, 1e-6, 1e-3, "grads of two accumulated micro-batches vs torch's mse(b1) + mse(b2)");

    /* zero_grad zeroes every parameter's grad, one registered late included */
    extra = attn_param_new(ctx, "extra", 1, shape_b);
    if (!CHECK(extra != NULL, "param: %s", attn_error_message(ctx))) goto out;
    for (i = 0; i < 3; i++) extra->grad[i] = 5.0f;
    attn_params_zero_grad(ctx);
    bad = 0;
    for (i = 0; i < 12; i++) bad += W->grad[i] != 0.0f;
    for (i = 0; i < 3; i++) bad += (b->grad[i] != 0.0f) + (extra->grad[i] != 0.0f);
    CHECK(bad == 0, "%d grads not zero after attn_params_zero_grad", bad);

    /* one backward of the summed loss gives the same grads */
    {
        attn_tensor *l[2], *total;
        for (k = 0; k < 2; k++) {
            attn_tensor *xw = attn_matmul(ctx, tx[k], W), *pred = xw ? attn_add(ctx, xw, b) : NULL;
            l[k] = pred ? attn_mse(ctx, pred, ty[k]) : NULL;
        }
        total = l[0] && l[1] ? attn_add(ctx, l[0], l[1]) : NULL;
        if (!CHECK(total != NULL, "summed loss: %s", attn_error_message(ctx))) goto out;
        if (!CHECK(attn_backward(ctx, total) == ATTN_OK, "backward of the sum: %s", attn_error_message(ctx))) goto out;
        memcpy(sum, W->grad, 12 * sizeof(float));
        memcpy(sum + 12, b->grad, 3 * sizeof(float));
        CHECK_CLOSE(sum, acc, 15, 1e-6, 1e-3, "backward of mse(b1) + mse(b2) vs two accumulated backwards");
        attn_context_reset(ctx, mark);
    }
out:
    attn_context_destroy(ctx);
    fx_free(&misc);
    fx_free(&fx);
}

/* ------------------------------------------------------------------------
   Errors */

TEST(cross_entropy_and_mse_reject_bad_input) {
    attn_context *ctx = attn_context_create(NULL);
    attn_tensor *L, *a, *b, *r;
    int shape[2] = { 2, 3 }, s34[2] = { 3, 4 }, s43[2] = { 4, 3 }, s12[1] = { 12 }, s14[2] = { 1, 4 };
    static const int32_t too_big[2] = { 0, 3 }, negative[2] = { -5, 1 }, minus100[2] = { -100, 1 }, ok[2] = { 0, 2 };
    if (!CHECK(ctx != NULL, "context")) return;
    L = attn_param_new(ctx, "logits", 2, shape);
    if (!CHECK(L != NULL, "param")) goto done;

    r = attn_cross_entropy(ctx, L, too_big, -100, 0.0f);
    CHECK(r == NULL && failed_with_message(ctx), "target 3 with 3 classes: want NULL and an error");
    attn_error_clear(ctx);
    r = attn_cross_entropy(ctx, L, negative, -100, 0.0f);
    CHECK(r == NULL && failed_with_message(ctx), "target -5 (ignore_index -100): want NULL and an error");
    attn_error_clear(ctx);
    r = attn_cross_entropy(ctx, L, minus100, 1, 0.0f);
    CHECK(r == NULL && failed_with_message(ctx), "target -100 when ignore_index is 1: want NULL and an error");
    attn_error_clear(ctx);
    r = attn_cross_entropy(ctx, L, too_big, 3, 0.0f); /* 3 is ignored here: fine */
    CHECK(r != NULL && attn_error_status(ctx) == ATTN_OK, "target 3 == ignore_index 3 must be accepted: %s",
          attn_error_message(ctx));
    attn_error_clear(ctx);
    r = attn_cross_entropy(ctx, L, NULL, -100, 0.0f);
    CHECK(r == NULL && failed_with_message(ctx), "NULL targets: want NULL and an error");
    attn_error_clear(ctx);
    r = attn_cross_entropy(ctx, L, ok, -100, -0.1f);
    CHECK(r == NULL && failed_with_message(ctx), "label_smoothing -0.1: want NULL and an error (torch raises)");
    attn_error_clear(ctx);
    r = attn_cross_entropy(ctx, L, ok, -100, 1.5f);
    CHECK(r == NULL && failed_with_message(ctx), "label_smoothing 1.5: want NULL and an error (torch raises)");
    attn_error_clear(ctx);
    r = attn_cross_entropy(ctx, L, ok, -100, (float)NAN);
    CHECK(r == NULL && failed_with_message(ctx), "label_smoothing NaN: want NULL and an error");
    attn_error_clear(ctx);

    a = attn_param_new(ctx, "a", 2, s34);
    b = attn_tensor_2d(ctx, 4, 3);
    if (!CHECK(a && b, "setup")) goto done;
    r = attn_mse(ctx, a, b);
    CHECK(r == NULL && failed_with_message(ctx), "mse of (3,4) and (4,3): want NULL and an error");
    attn_error_clear(ctx);
    r = attn_mse(ctx, a, attn_tensor_new(ctx, 2, s43) ? attn_tensor_new(ctx, 1, s12) : NULL);
    CHECK(r == NULL && failed_with_message(ctx), "mse of (3,4) and (12) (same numel): want NULL and an error");
    attn_error_clear(ctx);
    r = attn_mse(ctx, a, attn_tensor_new(ctx, 2, s14));
    CHECK(r == NULL && failed_with_message(ctx), "mse of (3,4) and (1,4): the header says shapes must be equal");
    attn_error_clear(ctx);
done:
    attn_context_destroy(ctx);
}

static int optim_rejected(attn_context *ctx, const attn_optim_desc *d) {
    attn_optim *o;
    attn_error_clear(ctx);
    o = attn_optim_create(ctx, d);
    return o == NULL && failed_with_message(ctx);
}

TEST(optim_create_rejects_no_params_and_bad_lr) {
    attn_context *ctx = attn_context_create(NULL);
    attn_optim_desc d;
    int shape[1] = { 2 }, k;
    if (!CHECK(ctx != NULL, "context")) return;
    memset(&d, 0, sizeof d);
    d.lr = 0.1f;
    for (k = 0; k < 4; k++) {
        d.kind = (attn_optim_kind)k;
        CHECK(optim_rejected(ctx, &d), "kind %d with no parameters registered: want NULL and an error", k);
    }
    if (!CHECK(attn_param_new(ctx, "p", 1, shape) != NULL, "param")) goto done;
    for (k = 0; k < 4; k++) {
        attn_optim *o;
        d.kind = (attn_optim_kind)k;
        d.lr = -0.1f;
        CHECK(optim_rejected(ctx, &d), "kind %d, lr -0.1: want NULL and an error", k);
        d.lr = (float)NAN;
        CHECK(optim_rejected(ctx, &d), "kind %d, lr NaN: want NULL and an error", k);
        d.lr = 0.1f;
        attn_error_clear(ctx);
        o = attn_optim_create(ctx, &d);
        CHECK(o != NULL && attn_error_status(ctx) == ATTN_OK, "kind %d, lr 0.1 with one parameter: %s", k,
              attn_error_message(ctx));
    }
    d.kind = (attn_optim_kind)17;
    CHECK(optim_rejected(ctx, &d), "kind 17: want NULL and an error");
    attn_error_clear(ctx);
    CHECK(attn_optim_create(ctx, NULL) == NULL && failed_with_message(ctx), "NULL desc: want NULL and an error");
done:
    attn_context_destroy(ctx);
}

/* The header promises torch.optim's semantics field for field; these are the
   values torch.optim's constructors raise ValueError for. */
TEST(optim_create_rejects_what_torch_rejects) {
    attn_context *ctx = attn_context_create(NULL);
    attn_optim_desc d;
    int shape[1] = { 2 };
    if (!CHECK(ctx != NULL, "context")) return;
    if (!CHECK(attn_param_new(ctx, "p", 1, shape) != NULL, "param")) goto done;
#define REJECT(what, ...)                                                         \
    do {                                                                          \
        memset(&d, 0, sizeof d);                                                  \
        d.lr = 0.01f;                                                             \
        __VA_ARGS__;                                                              \
        CHECK(optim_rejected(ctx, &d), "%s: want NULL and an error (torch raises ValueError)", what); \
    } while (0)
    REJECT("SGD momentum -0.5", d.kind = ATTN_OPTIM_SGD; d.momentum = -0.5f);
    REJECT("SGD weight_decay -0.1", d.kind = ATTN_OPTIM_SGD; d.weight_decay = -0.1f);
    REJECT("SGD nesterov without momentum", d.kind = ATTN_OPTIM_SGD; d.nesterov = 1);
    REJECT("SGD nesterov with dampening 0.1", d.kind = ATTN_OPTIM_SGD; d.nesterov = 1; d.momentum = 0.9f; d.dampening = 0.1f);
    REJECT("Adam beta1 1.0", d.kind = ATTN_OPTIM_ADAM; d.beta1 = 1.0f);
    REJECT("Adam beta1 -0.1", d.kind = ATTN_OPTIM_ADAM; d.beta1 = -0.1f);
    REJECT("Adam beta2 1.0", d.kind = ATTN_OPTIM_ADAM; d.beta2 = 1.0f);
    REJECT("AdamW beta2 1.5", d.kind = ATTN_OPTIM_ADAMW; d.beta2 = 1.5f);
    REJECT("Adam eps -1e-8", d.kind = ATTN_OPTIM_ADAM; d.eps = -1e-8f);
    REJECT("AdamW weight_decay -0.01", d.kind = ATTN_OPTIM_ADAMW; d.weight_decay = -0.01f);
    REJECT("Adagrad lr_decay -0.1", d.kind = ATTN_OPTIM_ADAGRAD; d.lr_decay = -0.1f);
    REJECT("Adagrad initial_accumulator_value -1", d.kind = ATTN_OPTIM_ADAGRAD; d.initial_accumulator_value = -1.0f);
    REJECT("Adagrad eps -1e-10", d.kind = ATTN_OPTIM_ADAGRAD; d.eps = -1e-10f);
#undef REJECT
done:
    attn_context_destroy(ctx);
}

TEST_GROUP(train) = {
    TEST_ENTRY(optim_trajectories_given_grads_match_torch),
    TEST_ENTRY(optim_trajectories_full_loop_match_torch),
    TEST_ENTRY(optim_full_loop_in_caller_memory),
    TEST_ENTRY(optim_covers_params_registered_before_it),
    TEST_ENTRY(cross_entropy_matches_torch),
    TEST_ENTRY(mse_matches_torch),
    TEST_ENTRY(clip_grad_norm_matches_torch),
    TEST_ENTRY(clip_grad_norm_of_zero_grads),
    TEST_ENTRY(lr_step_matches_torch_steplr),
    TEST_ENTRY(lr_warmup_cosine_follows_the_header_formula),
    TEST_ENTRY(lr_constant),
    TEST_ENTRY(grad_accumulation_and_zero_grad),
    TEST_ENTRY(cross_entropy_and_mse_reject_bad_input),
    TEST_ENTRY(optim_create_rejects_no_params_and_bad_lr),
    TEST_ENTRY(optim_create_rejects_what_torch_rejects),
    TEST_END
};
