/* tests/test_threads.c - the library's thread pool (attn_threads_create),
   the threading hook it plugs into, and the header's promise that results
   never depend on the thread count: attn_sgemm_mt and the row kernels must
   be bit-identical (memcmp) for 1, 2, 3 and 4 threads, and equal to the
   single-threaded call. A hook that runs tasks in reverse stands in for a
   caller's own job system. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "test.h"

/* ---- test_pool: the library's pool behind a hook that counts what the
   library asked of it (calls and tasks), so a test can tell that work was
   really split. Counted on the calling thread: the kernels do not nest. ---- */
static void pool_parallel_for(void *user, int n_tasks, attn_task_fn fn, void *data) {
    test_pool *pool = (test_pool *)user;
    pool->calls++;
    if (n_tasks > pool->max_tasks) pool->max_tasks = n_tasks;
    if (pool->inner.parallel_for) pool->inner.parallel_for(pool->inner.user, n_tasks, fn, data);
    else { int i; for (i = 0; i < n_tasks; i++) fn(data, i); }
}

attn_threads test_pool_threads(test_pool *pool, int n_threads) {
    attn_threads t;
    memset(pool, 0, sizeof *pool);
    pool->inner = attn_threads_create(n_threads);
    pool->n_threads = pool->inner.n_threads;
    memset(&t, 0, sizeof t);
    t.parallel_for = pool_parallel_for;
    t.user = pool;
    t.n_threads = pool->n_threads;
    return t;
}

void test_pool_free(test_pool *pool) { attn_threads_destroy(&pool->inner); }

/* A "job system" that runs every task on the calling thread in reverse
   order: the most hostile order for code that assumes task 0 runs first. */
static void reversed_parallel_for(void *user, int n_tasks, attn_task_fn fn, void *data) {
    int i;
    test_pool *pool = (test_pool *)user;
    pool->calls++;
    if (n_tasks > pool->max_tasks) pool->max_tasks = n_tasks;
    for (i = n_tasks - 1; i >= 0; i--) fn(data, i);
}

/* Thread setups each test runs: 1..4 pool threads, then 4 "threads" reversed. */
#define N_SETUPS 5
static attn_threads setup_threads(int setup, test_pool *pool, const char **name) {
    static const char *const names[N_SETUPS] = { "1 thread", "2 threads", "3 threads", "4 threads", "4 reversed" };
    attn_threads t;
    *name = names[setup];
    if (setup < 4) return test_pool_threads(pool, setup + 1);
    memset(pool, 0, sizeof *pool);
    pool->n_threads = 4;
    memset(&t, 0, sizeof t);
    t.parallel_for = reversed_parallel_for;
    t.user = pool;
    t.n_threads = 4;
    return t;
}

/* ------------------------------------------------------------------------ */
static void count_task(void *data, int task) { ((int *)data)[task]++; } /* own slot: no lock needed */

TEST(threads_pool_runs_every_task_once) {
    /* The job system itself first: if it lost or repeated tasks, the tests
       below would prove nothing. */
    enum { TASKS = 1000 };
    static int hits[TASKS];
    int setup, i, bad;
    for (setup = 0; setup < N_SETUPS; setup++) {
        test_pool pool;
        const char *name;
        attn_threads t = setup_threads(setup, &pool, &name);
        memset(hits, 0, sizeof hits);
        t.parallel_for(t.user, TASKS, count_task, hits);
        for (bad = 0, i = 0; i < TASKS; i++) bad += hits[i] != 1;
        CHECK(bad == 0, "%s: %d of %d tasks not run exactly once", name, bad, TASKS);
        test_pool_free(&pool);
    }
}

/* C = alpha op(A) op(B) + beta C in double, for one spot check per shape */
static double gemm_elem(int tA, int tB, int K, float alpha, const float *A, int lda, const float *B, int ldb, float beta,
                        float c0, int i, int j) {
    double s = 0.0;
    int k;
    for (k = 0; k < K; k++)
        s += (double)(tA ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]) *
             (tB ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j]);
    return alpha * s + (beta != 0.0f ? beta * (double)c0 : 0.0);
}

TEST(threads_sgemm_bit_identical_for_any_thread_count) {
    /* M < N splits by columns, M >= N by rows; transposes, padding, beta != 0
       and a NaN-filled C with beta == 0 all go through the split. */
    static const struct { int tA, tB, M, N, K, pad; float alpha, beta; } shapes[] = {
        { 0, 0, 200, 300, 150, 0, 1.0f, 0.0f },
        { 0, 0, 300, 200, 150, 3, 1.0f, 0.0f },
        { 1, 1, 333, 129, 70, 5, 0.7f, 0.3f },
        { 0, 1, 97, 700, 64, 1, -1.25f, 1.0f },
        { 1, 0, 250, 250, 260, 2, 0.5f, -2.0f },
    };
    size_t si;
    test_rng rng;
    test_rng_seed(&rng, 21);
    for (si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int tA = shapes[si].tA, tB = shapes[si].tB, M = shapes[si].M, N = shapes[si].N, K = shapes[si].K;
        const int lda = (tA ? M : K) + shapes[si].pad, ldb = (tB ? K : N) + shapes[si].pad, ldc = N + shapes[si].pad;
        const float alpha = shapes[si].alpha, beta = shapes[si].beta;
        const size_t nA = (size_t)(tA ? K : M) * lda, nB = (size_t)(tB ? N : K) * ldb, nC = (size_t)M * ldc;
        float *A = (float *)malloc(nA * sizeof(float)), *B = (float *)malloc(nB * sizeof(float));
        float *C0 = (float *)malloc(nC * sizeof(float)), *C1 = (float *)malloc(nC * sizeof(float));
        float *Ct = (float *)malloc(nC * sizeof(float));
        int setup, i, j;
        if (!CHECK(A && B && C0 && C1 && Ct, "out of memory")) goto next;
        test_fill(&rng, A, nA, -1.0f, 1.0f);
        test_fill(&rng, B, nB, -1.0f, 1.0f);
        if (beta == 0.0f) for (i = 0; i < (int)nC; i++) C0[i] = NAN;
        else test_fill(&rng, C0, nC, -1.0f, 1.0f);
        memcpy(C1, C0, nC * sizeof(float));
        attn_sgemm(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C1, ldc);
        /* spot-check the single-threaded result against double (the same
           (K + 8) 2^-24 sum|terms| bound as tests/test_gemm.c, with |a|,|b|,
           |c| <= 1), so the comparison below is against something right */
        {
            double worst = 0.0;
            for (i = 0; i < M; i += 7)
                for (j = 0; j < N; j += 5) {
                    double want = gemm_elem(tA, tB, K, alpha, A, lda, B, ldb, beta, C0[(size_t)i * ldc + j], i, j);
                    double tol = (K + 8) / 16777216.0 * (fabs(alpha) * K + fabs(beta));
                    double e = fabs(C1[(size_t)i * ldc + j] - want) / tol;
                    if (!(e <= worst)) worst = e != e ? INFINITY : e;
                }
            CHECK(worst <= 1.0, "shape %d: attn_sgemm is off by %.3g x tolerance", (int)si, worst);
        }
        for (setup = 0; setup <= N_SETUPS; setup++) {
            test_pool pool;
            const char *name = "threads = NULL";
            attn_threads t;
            attn_status st;
            memcpy(Ct, C0, nC * sizeof(float));
            if (setup < N_SETUPS) {
                t = setup_threads(setup, &pool, &name);
                st = attn_sgemm_mt(&t, tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, Ct, ldc);
            } else {
                st = attn_sgemm_mt(NULL, tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, Ct, ldc);
            }
            CHECK(st == ATTN_OK, "shape %d, %s: status %s", (int)si, name, attn_status_name(st));
            CHECK(memcmp(Ct, C1, nC * sizeof(float)) == 0,
                  "shape %d (tA=%d tB=%d %dx%dx%d), %s: attn_sgemm_mt is not bit-identical to attn_sgemm", (int)si, tA,
                  tB, M, N, K, name);
            /* with more than one thread the work must really have been split */
            if (setup >= 1 && setup < N_SETUPS)
                CHECK(pool.calls >= 1 && pool.max_tasks > 1, "shape %d, %s: parallel_for called %ld times, %ld tasks at most",
                      (int)si, name, pool.calls, pool.max_tasks);
            if (setup < N_SETUPS) test_pool_free(&pool);
        }
    next:
        free(A); free(B); free(C0); free(C1); free(Ct);
    }
}

TEST(threads_row_kernels_bit_identical_for_any_thread_count) {
    enum { ROWS = 512, COLS = 333, LDX = 340, LDY = 337 };
    float *x = (float *)malloc(sizeof(float) * ROWS * LDX);
    float *y1 = (float *)malloc(sizeof(float) * ROWS * LDY), *yt = (float *)malloc(sizeof(float) * ROWS * LDY);
    float *g = (float *)malloc(sizeof(float) * COLS), *b = (float *)malloc(sizeof(float) * COLS);
    float m1[ROWS], r1[ROWS], mt[ROWS], rt[ROWS];
    test_rng rng;
    int kind, setup, i;
    static const char *const kinds[3] = { "softmax", "log_softmax", "layernorm" };
    if (!CHECK(x && y1 && yt && g && b, "out of memory")) goto done;
    test_rng_seed(&rng, 22);
    test_fill(&rng, x, (size_t)ROWS * LDX, -6.0f, 6.0f);
    for (i = 0; i < ROWS; i++) x[(size_t)i * LDX + i % COLS] = -INFINITY; /* a masked entry per row */
    test_fill(&rng, g, COLS, 0.5f, 1.5f);
    test_fill(&rng, b, COLS, -0.5f, 0.5f);
    for (kind = 0; kind < 3; kind++) {
        if (kind == 2) for (i = 0; i < ROWS; i++) x[(size_t)i * LDX + i % COLS] = (float)i; /* layernorm: finite rows */
        for (i = 0; i < ROWS * LDY; i++) y1[i] = yt[i] = 0.0f;
        if (kind == 0) attn_softmax_rows(NULL, ROWS, COLS, x, LDX, y1, LDY);
        else if (kind == 1) attn_log_softmax_rows(NULL, ROWS, COLS, x, LDX, y1, LDY);
        else attn_layernorm_rows(NULL, ROWS, COLS, x, LDX, g, b, 1e-5f, y1, LDY, m1, r1);
        /* sanity against double for the first row, so the single-threaded
           result compared with below is itself right (tolerances as in
           tests/test_kernels.c, simplified for this data: 2e-5 relative) */
        {
            double mx = -INFINITY, s = 0.0, mu = 0.0, var = 0.0, worst = 0.0;
            int j;
            for (j = 0; j < COLS; j++) { mx = x[j] > mx ? x[j] : mx; mu += x[j]; }
            mu /= COLS;
            for (j = 0; j < COLS; j++) { s += exp(x[j] - mx); var += (x[j] - mu) * (x[j] - mu); }
            var /= COLS;
            for (j = 0; j < COLS; j++) {
                double want = kind == 0 ? exp(x[j] - mx) / s
                            : kind == 1 ? (x[j] - mx) - log(s)
                                        : (x[j] - mu) / sqrt(var + 1e-5) * g[j] + b[j];
                double e = isinf(want) ? (y1[j] == want ? 0.0 : INFINITY)
                                       : fabs(y1[j] - want) / (2e-5 * fabs(want) + (kind == 0 ? 1e-30 : 2e-5));
                if (!(e <= worst)) worst = e != e ? INFINITY : e;
            }
            CHECK(worst <= 1.0, "%s row 0 is off by %.3g x tolerance", kinds[kind], worst);
        }
        for (setup = 0; setup < N_SETUPS; setup++) {
            test_pool pool;
            const char *name;
            attn_threads t = setup_threads(setup, &pool, &name);
            for (i = 0; i < ROWS * LDY; i++) yt[i] = 0.0f;
            if (kind == 0) attn_softmax_rows(&t, ROWS, COLS, x, LDX, yt, LDY);
            else if (kind == 1) attn_log_softmax_rows(&t, ROWS, COLS, x, LDX, yt, LDY);
            else attn_layernorm_rows(&t, ROWS, COLS, x, LDX, g, b, 1e-5f, yt, LDY, mt, rt);
            CHECK(memcmp(yt, y1, sizeof(float) * ROWS * LDY) == 0, "%s, %s: not bit-identical to the single-threaded call",
                  kinds[kind], name);
            if (kind == 2)
                CHECK(memcmp(mt, m1, sizeof mt) == 0 && memcmp(rt, r1, sizeof rt) == 0,
                      "layernorm, %s: mean/rstd not bit-identical to the single-threaded call", name);
            if (setup >= 1)
                CHECK(pool.max_tasks > 1, "%s, %s: the rows were not split (%ld tasks at most)", kinds[kind], name,
                      pool.max_tasks);
            test_pool_free(&pool);
        }
    }
done:
    free(x); free(y1); free(yt); free(g); free(b);
}

/* A context carries the hook it was given (zero means single-threaded). */
TEST(threads_context_keeps_its_hook) {
    test_pool pool;
    attn_context_desc d;
    attn_context *ctx;
    memset(&d, 0, sizeof d);
    d.threads = test_pool_threads(&pool, 3);
    ctx = attn_context_create(&d);
    if (!CHECK(ctx != NULL, "attn_context_create failed")) return;
    CHECK(attn_context_threads(ctx)->parallel_for == d.threads.parallel_for && attn_context_threads(ctx)->user == &pool &&
          attn_context_threads(ctx)->n_threads == 3, "attn_context_threads does not return the hook given");
    attn_context_destroy(ctx);
    test_pool_free(&pool);
    memset(&d, 0, sizeof d);
    ctx = attn_context_create(&d);
    if (!CHECK(ctx != NULL, "attn_context_create failed")) return;
    CHECK(attn_context_threads(ctx)->n_threads >= 1, "n_threads of a default context is %d",
          attn_context_threads(ctx)->n_threads);
    attn_context_destroy(ctx);
}

/* ---- The pool itself ---- */

/* Every task exactly once, for task counts around every multiple of the
   thread count and for calls back to back (a worker still leaving the last
   call must not run a task of the next one, or run one twice). */
TEST(threads_pool_every_task_once_for_any_count) {
    static const int threads[] = { 2, 3, 4, 8, 0 };
    enum { MAX_TASKS = 4100 };
    static int hits[MAX_TASKS];
    size_t ti;
    for (ti = 0; ti < sizeof threads / sizeof threads[0]; ti++) {
        attn_threads t = attn_threads_create(threads[ti]);
        int n, rep, i, bad = 0, calls = 0;
        if (threads[ti] == 0) CHECK(t.n_threads >= 1, "attn_threads_create(0): n_threads %d", t.n_threads);
        else CHECK(t.n_threads == threads[ti] && t.parallel_for, "attn_threads_create(%d): n_threads %d, parallel_for %s",
                   threads[ti], t.n_threads, t.parallel_for ? "set" : "NULL");
        if (!t.parallel_for) continue;
        for (n = 0; n <= MAX_TASKS; n = n < 70 ? n + 1 : n * 2 + 1)
            for (rep = 0; rep < (n < 70 ? 20 : 3); rep++) {
                memset(hits, 0, sizeof(int) * (size_t)(n ? n : 1));
                t.parallel_for(t.user, n, count_task, hits);
                for (i = 0; i < n; i++) bad += hits[i] != 1;
                calls++;
            }
        CHECK(bad == 0, "%d threads: %d tasks over %d calls not run exactly once", t.n_threads, bad, calls);
        attn_threads_destroy(&t);
        CHECK(!t.parallel_for && !t.user && t.n_threads == 1, "destroy did not leave a single-threaded attn_threads");
    }
}

/* The pool really runs tasks at the same time: with two tasks and two
   threads, each task waits (up to 10 s, so a broken pool fails rather than
   hangs) until the other one has started. */
typedef struct meet_job {
    pthread_mutex_t mu;
    int started, met;
} meet_job;

static void meet_task(void *data, int task) {
    meet_job *j = (meet_job *)data;
    time_t t0 = time(NULL);
    int both = 0;
    (void)task;
    pthread_mutex_lock(&j->mu);
    j->started++;
    pthread_mutex_unlock(&j->mu);
    while (!both && time(NULL) - t0 < 10) {
        pthread_mutex_lock(&j->mu);
        both = j->started == 2;
        pthread_mutex_unlock(&j->mu);
    }
    pthread_mutex_lock(&j->mu);
    j->met += both;
    pthread_mutex_unlock(&j->mu);
}

TEST(threads_pool_runs_tasks_at_once) {
    attn_threads t = attn_threads_create(2);
    meet_job j;
    if (!CHECK(t.parallel_for && t.n_threads == 2, "attn_threads_create(2) gave %d threads", t.n_threads)) return;
    memset(&j, 0, sizeof j);
    pthread_mutex_init(&j.mu, NULL);
    t.parallel_for(t.user, 2, meet_task, &j);
    CHECK(j.started == 2 && j.met == 2, "2 tasks on 2 threads did not run at the same time (%d started, %d met)",
          j.started, j.met);
    pthread_mutex_destroy(&j.mu);
    attn_threads_destroy(&t);
}

/* A task that calls parallel_for on the same pool gets its tasks run (on its
   own thread) instead of a deadlock. */
typedef struct nest_job {
    attn_threads *t;
    int inner[64][16];
} nest_job;

static void nest_inner(void *data, int task) { ((int *)data)[task]++; }
static void nest_outer(void *data, int task) {
    nest_job *j = (nest_job *)data;
    j->t->parallel_for(j->t->user, 16, nest_inner, j->inner[task]);
}

TEST(threads_pool_nested_call_runs_inline) {
    attn_threads t = attn_threads_create(3);
    static nest_job j;
    int i, k, bad = 0;
    if (!CHECK(t.parallel_for != NULL, "attn_threads_create(3) gave no pool")) return;
    memset(&j, 0, sizeof j);
    j.t = &t;
    t.parallel_for(t.user, 64, nest_outer, &j);
    for (i = 0; i < 64; i++)
        for (k = 0; k < 16; k++) bad += j.inner[i][k] != 1;
    CHECK(bad == 0, "%d of 64 x 16 nested tasks not run exactly once", bad);
    attn_threads_destroy(&t);
}

/* Two threads of the caller's share one pool: one of them gets the pool,
   the other runs inline; both calls complete with every task once. */
typedef struct share_arg {
    attn_threads *t;
    int hits[2000];
} share_arg;

static void *share_main(void *arg) {
    share_arg *a = (share_arg *)arg;
    int rep;
    for (rep = 0; rep < 200; rep++) a->t->parallel_for(a->t->user, 10, count_task, a->hits + (rep % 200) * 10);
    return NULL;
}

TEST(threads_pool_shared_by_two_callers) {
    attn_threads t = attn_threads_create(2);
    static share_arg a[2];
    pthread_t th;
    int i, k, bad = 0;
    if (!CHECK(t.parallel_for != NULL, "attn_threads_create(2) gave no pool")) return;
    memset(a, 0, sizeof a);
    a[0].t = a[1].t = &t;
    if (!CHECK(pthread_create(&th, NULL, share_main, &a[1]) == 0, "pthread_create failed")) {
        attn_threads_destroy(&t);
        return;
    }
    share_main(&a[0]);
    pthread_join(th, NULL);
    for (k = 0; k < 2; k++)
        for (i = 0; i < 2000; i++) bad += a[k].hits[i] != 1;
    CHECK(bad == 0, "%d of 2 x 2000 tasks not run exactly once", bad);
    attn_threads_destroy(&t);
}

/* One thread needs no pool; destroy is safe on anything and twice; a pool
   can be made again after one is destroyed. */
TEST(threads_pool_create_destroy_edges) {
    attn_threads t = attn_threads_create(1), other;
    int i, hits[5] = { 0 }, bad = 0;
    CHECK(!t.parallel_for && t.n_threads == 1, "attn_threads_create(1): parallel_for %s, n_threads %d",
          t.parallel_for ? "set" : "NULL", t.n_threads);
    attn_threads_destroy(&t);
    attn_threads_destroy(NULL);
    memset(&other, 0, sizeof other);
    other.parallel_for = reversed_parallel_for;
    other.n_threads = 7;
    attn_threads_destroy(&other); /* not the library's pool: left alone */
    CHECK(other.parallel_for == reversed_parallel_for && other.n_threads == 7, "destroy touched a caller's hook");
    for (i = 0; i < 5; i++) {
        t = attn_threads_create(2 + i % 2);
        if (!CHECK(t.parallel_for != NULL, "round %d: attn_threads_create gave no pool", i)) return;
        t.parallel_for(t.user, 5, count_task, hits);
        attn_threads_destroy(&t);
        attn_threads_destroy(&t); /* now single-threaded: a no-op */
    }
    for (i = 0; i < 5; i++) bad += hits[i] != 5;
    CHECK(bad == 0, "after 5 pools, %d of 5 tasks did not run 5 times", bad);
}

/* The pool takes its memory from the allocator hooks (tests/main.c routes
   them to the test allocator): when they fail it gives one thread and keeps
   nothing. */
TEST(threads_pool_allocation_failure) {
    test_allocator *g = test_allocator_global();
    long live0 = g->live, after;
    attn_threads t;
    for (after = 0; after <= 2; after++) {
        g->fail = after == 0;
        g->fail_after = after;
        t = attn_threads_create(4);
        g->fail = 0;
        g->fail_after = 0;
        if (after < 2) {
            CHECK(!t.parallel_for && t.n_threads == 1, "malloc %ld failing: parallel_for %s, n_threads %d", after + 1,
                  t.parallel_for ? "set" : "NULL", t.n_threads);
            CHECK(g->live == live0, "malloc %ld failing: %ld blocks kept", after + 1, g->live - live0);
        } else {
            CHECK(t.parallel_for && t.n_threads == 4, "with memory: n_threads %d", t.n_threads);
            CHECK(g->live == live0 + 2, "a pool keeps %ld blocks, 2 expected", g->live - live0);
        }
        attn_threads_destroy(&t);
        CHECK(g->live == live0, "after destroy %ld blocks are left", g->live - live0);
    }
}

TEST_GROUP(threads) = {
    TEST_ENTRY(threads_pool_runs_every_task_once),
    TEST_ENTRY(threads_pool_every_task_once_for_any_count),
    TEST_ENTRY(threads_pool_runs_tasks_at_once),
    TEST_ENTRY(threads_pool_nested_call_runs_inline),
    TEST_ENTRY(threads_pool_shared_by_two_callers),
    TEST_ENTRY(threads_pool_create_destroy_edges),
    TEST_ENTRY(threads_pool_allocation_failure),
    TEST_ENTRY(threads_sgemm_bit_identical_for_any_thread_count),
    TEST_ENTRY(threads_row_kernels_bit_identical_for_any_thread_count),
    TEST_ENTRY(threads_context_keeps_its_hook),
    TEST_END
};
