/* tests/test_threads.c - the threading hook, driven by a small pthread job
   system of the kind a game engine would plug in, and the header's promise
   that results never depend on the thread count: attn_sgemm_mt and the row
   kernels must be bit-identical (memcmp) for 1, 2, 3 and 4 threads, and equal
   to the single-threaded call. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

/* ---- The job system: parallel_for starts n_threads - 1 pthreads, the
   caller works too, and every thread takes the next task index from a shared
   counter, so which thread runs which task changes from run to run. ---- */
#define POOL_MAX_THREADS 16

typedef struct pool_job {
    attn_task_fn fn;
    void *data;
    int n_tasks;
    int next; /* the next task to hand out, under mu */
    pthread_mutex_t mu;
} pool_job;

static void *pool_worker(void *arg) {
    pool_job *job = (pool_job *)arg;
    for (;;) {
        int task;
        pthread_mutex_lock(&job->mu);
        task = job->next++;
        pthread_mutex_unlock(&job->mu);
        if (task >= job->n_tasks) return NULL;
        job->fn(job->data, task);
    }
}

static void pool_parallel_for(void *user, int n_tasks, attn_task_fn fn, void *data) {
    test_pool *pool = (test_pool *)user;
    pthread_t threads[POOL_MAX_THREADS];
    pthread_attr_t attr;
    pool_job job;
    int i, started = 0, want = pool->n_threads - 1;
    pool->calls++;
    if (n_tasks > pool->max_tasks) pool->max_tasks = n_tasks;
    job.fn = fn;
    job.data = data;
    job.n_tasks = n_tasks;
    job.next = 0;
    pthread_mutex_init(&job.mu, NULL);
    /* The packed GEMM keeps ~330 KiB of panels on the stack (the header says
       so): a job system must give its threads room for that, and sanitizers
       want more, so ask for 8 MiB explicitly rather than trust the default. */
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, (size_t)8 << 20);
    if (want > POOL_MAX_THREADS) want = POOL_MAX_THREADS;
    if (want > n_tasks - 1) want = n_tasks - 1;
    for (i = 0; i < want; i++)
        if (pthread_create(&threads[started], &attr, pool_worker, &job) == 0) started++;
    pool_worker(&job); /* if no thread started, the caller does everything */
    for (i = 0; i < started; i++) pthread_join(threads[i], NULL);
    pthread_attr_destroy(&attr);
    pthread_mutex_destroy(&job.mu);
}

attn_threads test_pool_threads(test_pool *pool, int n_threads) {
    attn_threads t;
    memset(pool, 0, sizeof *pool);
    pool->n_threads = n_threads;
    memset(&t, 0, sizeof t);
    t.parallel_for = pool_parallel_for;
    t.user = pool;
    t.n_threads = n_threads;
    return t;
}

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
    attn_threads t = test_pool_threads(pool, setup < 4 ? setup + 1 : 4);
    if (setup == 4) t.parallel_for = reversed_parallel_for;
    *name = names[setup];
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
    memset(&d, 0, sizeof d);
    ctx = attn_context_create(&d);
    if (!CHECK(ctx != NULL, "attn_context_create failed")) return;
    CHECK(attn_context_threads(ctx)->n_threads >= 1, "n_threads of a default context is %d",
          attn_context_threads(ctx)->n_threads);
    attn_context_destroy(ctx);
}

TEST_GROUP(threads) = {
    TEST_ENTRY(threads_pool_runs_every_task_once),
    TEST_ENTRY(threads_sgemm_bit_identical_for_any_thread_count),
    TEST_ENTRY(threads_row_kernels_bit_identical_for_any_thread_count),
    TEST_ENTRY(threads_context_keeps_its_hook),
    TEST_END
};
