/* bench_sgemm.c - attn_sgemm / attn_sgemm_mt against OpenBLAS cblas_sgemm.

   Same data, same process, same run: for every shape the four configurations
   (attn 1 thread, OpenBLAS 1 thread, attn 2 threads, OpenBLAS 2 threads) are
   timed in interleaved rounds, so slow phases of a noisy shared machine hit all
   of them alike. Each configuration gets BATCHES timed batches of a calibrated
   number of calls (~BATCH_S seconds each) after a warm-up; the table shows the
   median batch. GFLOP/s = 2*M*N*K / time per call. alpha = 1, beta = 0,
   row-major, leading dimensions equal to the widths.

   Before timing, each shape is checked: attn's C against OpenBLAS's C within
   the worst-case float error bound, and attn at 2 threads bit-identical to attn
   at 1 thread (the library promises that).

   Build without OpenBLAS with -DBENCH_NO_OPENBLAS: attn only, checked against
   a double-precision loop. */
#define _POSIX_C_SOURCE 200809L
#define ATTN_IMPLEMENTATION
#include "attn.h"
#include "bench_common.h"

#include <math.h>
#include <unistd.h>

#ifndef BENCH_NO_OPENBLAS
#  include <cblas.h>
/* In OpenBLAS's cblas.h, but not in the netlib one that may shadow it; an
   identical redeclaration is harmless either way. */
void openblas_set_num_threads(int num_threads);
char *openblas_get_config(void);
char *openblas_get_corename(void);
#endif

#define BATCHES 9
#define BATCH_S 0.03      /* seconds per timed batch: 4 configs x 9 x 30 ms ~ 1.1 s a shape */

typedef struct gemm_case {
    const char *name;
    int transB, M, N, K;
} gemm_case;

enum { ATTN_1T, BLAS_1T, ATTN_2T, BLAS_2T, N_CONFIGS };

typedef struct gemm_data {
    const gemm_case *c;
    float *A, *B, *C;
    int lda, ldb, ldc;
} gemm_data;

static bench_pool g_pool;
static attn_threads g_threads2;

static void run_config(int config, const gemm_data *d) {
    const gemm_case *c = d->c;
    switch (config) {
    case ATTN_1T:
        attn_sgemm(0, c->transB, c->M, c->N, c->K, 1.0f, d->A, d->lda, d->B, d->ldb, 0.0f, d->C, d->ldc);
        break;
    case ATTN_2T:
        attn_sgemm_mt(&g_threads2, 0, c->transB, c->M, c->N, c->K, 1.0f, d->A, d->lda, d->B, d->ldb,
                      0.0f, d->C, d->ldc);
        break;
#ifndef BENCH_NO_OPENBLAS
    case BLAS_1T:
    case BLAS_2T:
        cblas_sgemm(CblasRowMajor, CblasNoTrans, c->transB ? CblasTrans : CblasNoTrans, c->M, c->N,
                    c->K, 1.0f, d->A, d->lda, d->B, d->ldb, 0.0f, d->C, d->ldc);
        break;
#endif
    default:
        break;
    }
}

/* Put the right number of threads in place before a batch of config. */
static void prepare_config(int config) {
#ifndef BENCH_NO_OPENBLAS
    if (config == BLAS_1T) openblas_set_num_threads(1);
    if (config == BLAS_2T) openblas_set_num_threads(2);
#endif
    if (config == BLAS_2T || config == ATTN_1T) {
        /* BLAS_2T follows ATTN_2T (let our worker go to sleep); ATTN_1T starts a
           round after BLAS_2T (let OpenBLAS's workers stop spinning). */
        bench_settle(0.5);
    }
}

/* One call of one configuration, in the shape bench_batch wants. */
typedef struct gemm_call {
    int config;
    const gemm_data *d;
} gemm_call;

static void run_call(void *arg) {
    const gemm_call *g = (const gemm_call *)arg;
    run_config(g->config, g->d);
}

/* Seconds per call of a batch of reps calls; *disturbed as in bench_clean_batch. */
static double time_batch(int config, const gemm_data *d, long reps, int *disturbed) {
    gemm_call g;
    g.config = config;
    g.d = d;
    return bench_clean_batch(run_call, &g, reps, disturbed);
}

/* ---- correctness ---------------------------------------------------------- */
/* The worst |x - ref| / (K * 2^-24 * bound) elementwise, where bound = |A||B|
   (the sum that the worst-case rounding analysis of a dot product scales with:
   each of x and ref is within K * 2^-24 * bound of the exact value, so a correct
   x gives at most 2). */
static double worst_error(const gemm_case *c, const float *x, const float *ref, const float *bound) {
    double worst = 0.0, unit = (double)c->K * ldexp(1.0, -24);
    size_t i, n = (size_t)c->M * c->N;
    for (i = 0; i < n; i++) {
        double e = fabs((double)x[i] - (double)ref[i]);
        double b = (double)bound[i] * unit;
        double r = b > 0.0 ? e / b : (e > 0.0 ? HUGE_VAL : 0.0);
        if (r != r) return HUGE_VAL; /* a NaN in either result */
        if (r > worst) worst = r;
    }
    return worst;
}

/* ref = A op(B) and bound = |A| |op(B)| (bound computed the same way, on absolute values). */
static void reference(const gemm_data *d, float *ref, float *bound) {
    const gemm_case *c = d->c;
#ifndef BENCH_NO_OPENBLAS
    size_t na = (size_t)c->M * c->K, nb = (size_t)c->K * c->N, i;
    float *absA = bench_floats(na), *absB = bench_floats(nb);
    for (i = 0; i < na; i++) absA[i] = fabsf(d->A[i]);
    for (i = 0; i < nb; i++) absB[i] = fabsf(d->B[i]);
    openblas_set_num_threads(1);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, c->transB ? CblasTrans : CblasNoTrans, c->M, c->N, c->K,
                1.0f, d->A, d->lda, d->B, d->ldb, 0.0f, ref, d->ldc);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, c->transB ? CblasTrans : CblasNoTrans, c->M, c->N, c->K,
                1.0f, absA, d->lda, absB, d->ldb, 0.0f, bound, d->ldc);
    free(absA);
    free(absB);
#else
    /* No OpenBLAS: a plain double loop (slow for 1024^3, but only once). */
    int i, j, k;
    double *acc = (double *)calloc((size_t)c->N * 2, sizeof(double));
    if (!acc) exit(1);
    for (i = 0; i < c->M; i++) {
        memset(acc, 0, (size_t)c->N * 2 * sizeof(double));
        for (k = 0; k < c->K; k++) {
            double a = d->A[(size_t)i * d->lda + k];
            for (j = 0; j < c->N; j++) {
                double b = c->transB ? d->B[(size_t)j * d->ldb + k] : d->B[(size_t)k * d->ldb + j];
                acc[j] += a * b;
                acc[c->N + j] += fabs(a * b);
            }
        }
        for (j = 0; j < c->N; j++) {
            ref[(size_t)i * d->ldc + j] = (float)acc[j];
            bound[(size_t)i * d->ldc + j] = (float)acc[c->N + j];
        }
    }
    free(acc);
#endif
}

/* Returns 1 when attn's results are right. Prints a warning row when not. */
static int check_case(const gemm_data *d) {
    const gemm_case *c = d->c;
    size_t nc = (size_t)c->M * c->N;
    float *ref = bench_floats(nc), *bound = bench_floats(nc), *c1 = bench_floats(nc);
    double worst;
    int ok = 1;
    reference(d, ref, bound);
    run_config(ATTN_1T, d);
    memcpy(c1, d->C, nc * sizeof *c1);
    /* NaN in C must not survive beta = 0; poison it to make sure 2T writes everything */
    memset(d->C, 0xff, nc * sizeof *d->C);
    run_config(ATTN_2T, d);
    /* the reference may be off by as much as attn itself, so allow twice the bound (+1% slack) */
    worst = worst_error(c, c1, ref, bound);
    if (!(worst <= 2.02)) {
        printf("WARNING %-18s attn 1T differs from the %s: worst |err| = %.3g x K*eps*|A||B| (allowed 2)\n",
               c->name,
#ifndef BENCH_NO_OPENBLAS
               "OpenBLAS result",
#else
               "double reference",
#endif
               worst);
        ok = 0;
    }
    if (memcmp(c1, d->C, nc * sizeof *c1) != 0) {
        printf("WARNING %-18s attn 2T result is not bit-identical to attn 1T\n", c->name);
        ok = 0;
    }
    free(ref);
    free(bound);
    free(c1);
    return ok;
}

/* ---- one shape -------------------------------------------------------------- */
static void bench_case(const gemm_case *c, int have_blas) {
    gemm_data d;
    double t[N_CONFIGS][BATCHES], gf[N_CONFIGS], spread = 0.0, flops;
    long reps[N_CONFIGS], calls0;
    int cfg, b, attn_2t_threaded, ok, disturbed = 0, n_batches = 0;
    size_t na = (size_t)c->M * c->K, nb = (size_t)c->K * c->N, nc = (size_t)c->M * c->N;

    d.c = c;
    d.A = bench_floats(na);
    d.B = bench_floats(nb);
    d.C = bench_floats(nc);
    d.lda = c->K;
    d.ldb = c->transB ? c->K : c->N;
    d.ldc = c->N;
    bench_fill(d.A, na, -1.0f, 1.0f, 1u + (uint64_t)c->M);
    bench_fill(d.B, nb, -1.0f, 1.0f, 2u + (uint64_t)c->N);
    flops = 2.0 * c->M * c->N * c->K;

    ok = check_case(&d);

    /* Warm up each config (caches, OpenBLAS thread start-up, our workers) and
       pick a number of calls per batch that takes about BATCH_S. */
    for (cfg = 0; cfg < N_CONFIGS; cfg++) {
        double one;
        int dummy;
        if (!have_blas && (cfg == BLAS_1T || cfg == BLAS_2T)) continue;
        prepare_config(cfg);
        time_batch(cfg, &d, 3, &dummy);
        one = time_batch(cfg, &d, 3, &dummy);
        reps[cfg] = (long)(BATCH_S / (one > 1e-9 ? one : 1e-9));
        if (reps[cfg] < 1) reps[cfg] = 1;
    }

    calls0 = g_pool.calls;
    for (b = 0; b < BATCHES; b++) {
        for (cfg = 0; cfg < N_CONFIGS; cfg++) {
            if (!have_blas && (cfg == BLAS_1T || cfg == BLAS_2T)) continue;
            int dist;
            prepare_config(cfg);
            t[cfg][b] = time_batch(cfg, &d, reps[cfg], &dist);
            disturbed += dist;
            n_batches++;
        }
    }
    /* attn_sgemm_mt keeps small products on the calling thread: say so */
    attn_2t_threaded = g_pool.calls > calls0;

    for (cfg = 0; cfg < N_CONFIGS; cfg++) {
        if (!have_blas && (cfg == BLAS_1T || cfg == BLAS_2T)) {
            gf[cfg] = 0.0;
            continue;
        }
        gf[cfg] = flops / bench_median(t[cfg], BATCHES) * 1e-9;
        if (bench_spread(t[cfg], BATCHES) > spread) spread = bench_spread(t[cfg], BATCHES);
    }

    {
        char dims[32], a2[16], busy[16];
        snprintf(dims, sizeof dims, "%dx%dx%d%s", c->M, c->N, c->K, c->transB ? " B^T" : "");
        snprintf(a2, sizeof a2, "%.1f%s", gf[ATTN_2T], attn_2t_threaded ? "" : "*");
        if (bench_cpu_wait() < 0.0) snprintf(busy, sizeof busy, "n/a");
        else snprintf(busy, sizeof busy, "%d/%d", disturbed, n_batches);
        if (have_blas) {
            printf("%-16s | %-17s | %7.1f | %11.1f | %5.2f | %7s | %11.1f | %5.2f | %4.0f%% | %5s%s\n", c->name,
                   dims, gf[ATTN_1T], gf[BLAS_1T], gf[ATTN_1T] / gf[BLAS_1T], a2, gf[BLAS_2T],
                   gf[ATTN_2T] / gf[BLAS_2T], 100.0 * spread, busy, ok ? "" : "  (WRONG RESULT, see above)");
        } else {
            printf("%-16s | %-17s | %7.1f | %7s | %4.0f%% | %5s%s\n", c->name, dims, gf[ATTN_1T], a2,
                   100.0 * spread, busy, ok ? "" : "  (WRONG RESULT, see above)");
        }
        fflush(stdout);
    }
    free(d.A);
    free(d.B);
    free(d.C);
}

/* The machine line that bench/run.sh prints at the top. */
static void print_info(void) {
    char cpu[256];
    bench_cpu_model(cpu, sizeof cpu);
    printf("CPU: %s, %ld online cores\n", cpu, sysconf(_SC_NPROCESSORS_ONLN));
    printf("attn.h %s, kernels: %s (attn_simd_active)\n", ATTN_VERSION_STRING, attn_simd_name(attn_simd_active()));
}

int main(int argc, char **argv) {
    static const gemm_case cases[] = {
        {"square 64", 0, 64, 64, 64},
        {"square 128", 0, 128, 128, 128},
        {"square 256", 0, 256, 256, 256},
        {"square 512", 0, 512, 512, 512},
        {"square 1024", 0, 1024, 1024, 1024},
        /* scores = Q K^T: Q and K are T x 64 row-major, so B is stored transposed */
        {"QK^T T=128 d=64", 1, 128, 128, 64},
        {"QK^T T=256 d=64", 1, 256, 256, 64},
        {"QK^T T=512 d=64", 1, 512, 512, 64},
        {"QK^T T=1024 d=64", 1, 1024, 1024, 64},
        /* out = P V: P is T x T, V is T x 64 */
        {"PV T=128 d=64", 0, 128, 64, 128},
        {"PV T=256 d=64", 0, 256, 64, 256},
        {"PV T=512 d=64", 0, 512, 64, 512},
        {"PV T=1024 d=64", 0, 1024, 64, 1024},
    };
    int i, have_blas = 1;
    double t0 = bench_now();

#ifdef BENCH_NO_OPENBLAS
    have_blas = 0;
#endif
    if (argc > 1 && strcmp(argv[1], "--info") == 0) {
        print_info();
        return 0;
    }
    if (bench_pool_start(&g_pool, 2) != 0) {
        fprintf(stderr, "bench_sgemm: cannot start a worker thread\n");
        return 1;
    }
    g_threads2 = bench_pool_threads(&g_pool);

    printf("SGEMM, GFLOP/s (higher is better), median of %d batches of ~%.0f ms; ratio = attn / OpenBLAS (>1: attn faster)\n",
           BATCHES, BATCH_S * 1e3);
#ifndef BENCH_NO_OPENBLAS
    printf("OpenBLAS: %s (core %s)\n", openblas_get_config(), openblas_get_corename());
#else
    printf("OpenBLAS: not found (no cblas.h / -lopenblas); attn only, checked against a double-precision loop\n");
#endif
    printf("attn 2T: attn_sgemm_mt over attn_threads_create(2) (the caller + 1 worker)\n\n");
    if (have_blas) {
        printf("%-16s | %-17s | %7s | %11s | %5s | %7s | %11s | %5s | %s\n", "shape", "M x N x K", "attn 1T",
               "OpenBLAS 1T", "ratio", "attn 2T", "OpenBLAS 2T", "ratio", "noise | busy");
        printf("-----------------+-------------------+---------+-------------+-------+---------+-------------+-------+-------+------\n");
    } else {
        printf("%-16s | %-17s | %7s | %7s | %s\n", "shape", "M x N x K", "attn 1T", "attn 2T", "noise | busy");
        printf("-----------------+-------------------+---------+---------+-------+------\n");
    }
    for (i = 0; i < (int)(sizeof cases / sizeof cases[0]); i++) bench_case(&cases[i], have_blas);
    printf("\n* attn_sgemm_mt ran these on one thread (too little work to share, by design).\n");
    printf("noise = (slowest - fastest) / median batch, worst of the configs of that row.\n");
    if (bench_cpu_wait() < 0.0)
        printf("busy  = n/a (no /proc/self/task/*/schedstat here: a busy machine goes unnoticed)\n");
    else
        printf("busy  = batches of that row during which this process waited for a CPU more than %.0f%% of the time\n"
               "        (another process had the core) even after %d tries; 0/N is a clean row.\n",
               100.0 * BENCH_BUSY_LIMIT, BENCH_TRIES);
    printf("(sgemm bench took %.1f s)\n", bench_now() - t0);
    bench_pool_stop(&g_pool);
    return 0;
}
