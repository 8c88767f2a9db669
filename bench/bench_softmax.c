/* bench_softmax.c - attn_softmax_rows over 4096 x 1024 floats (rows of 1024).

   What is measured (the "warm" rows): y = softmax(x) row by row, out of place,
   on the SAME 16 MiB input and the SAME 16 MiB output buffer every call: 16 MiB
   read + 16 MiB written per call. 32 MiB is the size of the L3, so part of it
   may still be cached from the previous call; this is the same situation as
   PyTorch's torch.softmax(x, dim=-1) on one tensor (whose output is a fresh
   allocation that glibc hands back at the same address every call), which
   bench/softmax_torch.py times and run.sh passes in with --torch.

   The "cold" rows rotate over 4 input/output pairs (128 MiB in all), so every
   call reads and writes memory the L3 no longer holds: the DRAM-bound case.

   Each configuration: warm-up, then 11 batches of ~50 ms interleaved with the
   other configurations; the median batch, in ms per call.
   Before timing, the output is checked against a double-precision softmax and
   attn at 2 threads against attn at 1 thread (bit-identical by design). */
#define _POSIX_C_SOURCE 200809L
#define ATTN_IMPLEMENTATION
#include "attn.h"
#include "bench_common.h"

#include <math.h>

#define ROWS 4096
#define COLS 1024
#define BATCHES 11
#define BATCHES_TORCH 11 /* softmax_torch.py's BATCHES */
#define BATCH_S 0.05
#define N_COLD 4 /* 4 pairs x 32 MiB = 128 MiB, four times the L3 */

enum { WARM_1T, WARM_2T, COLD_1T, COLD_2T, N_CONFIGS };

static bench_pool g_pool;
static attn_threads g_threads2;
static float *g_x[N_COLD], *g_y[N_COLD];
static int g_next; /* which cold pair the next cold call uses */

static void run_config(int config) {
    const attn_threads *th = (config == WARM_2T || config == COLD_2T) ? &g_threads2 : NULL;
    int i = 0;
    if (config == COLD_1T || config == COLD_2T) {
        i = g_next;
        g_next = (g_next + 1) % N_COLD;
    }
    attn_softmax_rows(th, ROWS, COLS, g_x[i], COLS, g_y[i], COLS);
}

static void run_call(void *arg) { run_config(*(const int *)arg); }

/* Seconds per call of a batch of reps calls; *disturbed as in bench_clean_batch. */
static double time_batch(int config, long reps, int *disturbed) {
    return bench_clean_batch(run_call, &config, reps, disturbed);
}

/* Worst relative error of y against a double-precision softmax of x. */
static double check_softmax(const float *x, const float *y) {
    double worst = 0.0;
    int r, c;
    for (r = 0; r < ROWS; r++) {
        const float *xr = x + (size_t)r * COLS;
        const float *yr = y + (size_t)r * COLS;
        double m = xr[0], s = 0.0;
        for (c = 1; c < COLS; c++) if (xr[c] > m) m = xr[c];
        for (c = 0; c < COLS; c++) s += exp((double)xr[c] - m);
        for (c = 0; c < COLS; c++) {
            double ref = exp((double)xr[c] - m) / s;
            double e = fabs((double)yr[c] - ref) / (ref + 1e-30);
            if (!(e <= worst)) worst = e; /* NaN makes worst NaN */
        }
    }
    return worst;
}

int main(int argc, char **argv) {
    static const char *names[N_CONFIGS] = {"warm 1T", "warm 2T", "cold 1T", "cold 2T"};
    const double bytes = 2.0 * ROWS * COLS * sizeof(float); /* read x + write y */
    double t[N_CONFIGS][BATCHES], ms[N_CONFIGS], torch_ms[2] = {0.0, 0.0};
    long reps[N_CONFIGS];
    int disturbed[N_CONFIGS] = {0, 0, 0, 0}, torch_busy[2] = {-1, -1};
    const char *torch_note = "torch: not measured (run through bench/run.sh)";
    size_t n = (size_t)ROWS * COLS;
    attn_rng rng;
    int i, cfg, b, have_torch = 0;
    float *y1;
    double err, t_start = bench_now();

    /* --torch MS_1T MS_2T [BUSY_1T BUSY_2T]: PyTorch's medians (and disturbed
       batches) from softmax_torch.py, same run. --no-torch "REASON": say why
       there are none. */
    if (argc >= 4 && strcmp(argv[1], "--torch") == 0) {
        torch_ms[0] = atof(argv[2]);
        torch_ms[1] = atof(argv[3]);
        if (argc >= 6) {
            torch_busy[0] = atoi(argv[4]);
            torch_busy[1] = atoi(argv[5]);
        }
        have_torch = torch_ms[0] > 0.0 && torch_ms[1] > 0.0;
    } else if (argc >= 3 && strcmp(argv[1], "--no-torch") == 0) {
        torch_note = argv[2];
    }

    bench_retry_budget_s = 10.0;
    if (bench_pool_start(&g_pool, 2) != 0) {
        fprintf(stderr, "bench_softmax: cannot start a worker thread\n");
        return 1;
    }
    g_threads2 = bench_pool_threads(&g_pool);

    /* Standard-normal inputs, like torch.randn. */
    attn_rng_seed(&rng, 42);
    for (i = 0; i < N_COLD; i++) {
        size_t k;
        g_x[i] = bench_floats(n);
        g_y[i] = bench_floats(n);
        for (k = 0; k < n; k++) g_x[i][k] = attn_rng_normal(&rng);
    }

    /* Correctness first: a bench that measures a wrong answer is useless. */
    y1 = bench_floats(n);
    attn_softmax_rows(NULL, ROWS, COLS, g_x[0], COLS, y1, COLS);
    err = check_softmax(g_x[0], y1);
    memset(g_y[0], 0xff, n * sizeof(float));
    attn_softmax_rows(&g_threads2, ROWS, COLS, g_x[0], COLS, g_y[0], COLS);
    if (!(err <= 2e-5)) printf("WARNING attn_softmax_rows: worst relative error %.3g vs double (allowed 2e-5)\n", err);
    if (memcmp(y1, g_y[0], n * sizeof(float)) != 0) printf("WARNING attn_softmax_rows: 2T result is not bit-identical to 1T\n");
    free(y1);

    for (cfg = 0; cfg < N_CONFIGS; cfg++) {
        double one;
        int dummy;
        bench_settle(0.5); /* let our worker go back to sleep between configs */
        time_batch(cfg, 3, &dummy);
        one = time_batch(cfg, 4, &dummy);
        reps[cfg] = (long)(BATCH_S / one);
        if (reps[cfg] < 1) reps[cfg] = 1;
    }
    for (b = 0; b < BATCHES; b++)
        for (cfg = 0; cfg < N_CONFIGS; cfg++) {
            int dist;
            bench_settle(0.5);
            t[cfg][b] = time_batch(cfg, reps[cfg], &dist);
            disturbed[cfg] += dist;
        }
    for (cfg = 0; cfg < N_CONFIGS; cfg++) ms[cfg] = 1e3 * bench_median(t[cfg], BATCHES);

    printf("Softmax over %d x %d f32 (rows of %d), out of place: attn_softmax_rows vs torch.softmax(x, dim=-1)\n",
           ROWS, COLS, COLS);
    printf("ms per call (lower is better), median of %d batches; ratio = torch / attn (>1: attn faster)\n", BATCHES);
    printf("GB/s = (16 MiB read + 16 MiB written) / time. DRAM bound: 32 MiB at ~25 GB/s (one core) = ~1.34 ms\n\n");
    printf("%-7s | %7s | %9s | %8s | %5s | %5s | %9s | %s\n", "threads", "attn ms", "attn GB/s", "torch ms", "ratio",
           "noise", "busy attn", "busy torch");
    printf("--------+---------+-----------+----------+-------+-------+-----------+-----------\n");
    for (i = 0; i < 2; i++) {
        int c = i == 0 ? WARM_1T : WARM_2T;
        char tms[16] = "-", ratio[16] = "-", ab[16], tb[16] = "-";
        if (have_torch) {
            snprintf(tms, sizeof tms, "%.2f", torch_ms[i]);
            snprintf(ratio, sizeof ratio, "%.2f", torch_ms[i] / ms[c]);
            if (torch_busy[i] >= 0) snprintf(tb, sizeof tb, "%d/%d", torch_busy[i], BATCHES_TORCH);
            else snprintf(tb, sizeof tb, "n/a");
        }
        if (bench_cpu_wait() < 0.0) snprintf(ab, sizeof ab, "n/a");
        else snprintf(ab, sizeof ab, "%d/%d", disturbed[c], BATCHES);
        printf("%-7d | %7.2f | %9.1f | %8s | %5s | %4.0f%% | %9s | %s\n", i + 1, ms[c], bytes / (ms[c] * 1e-3) * 1e-9,
               tms, ratio, 100.0 * bench_spread(t[c], BATCHES), ab, tb);
    }
    if (!have_torch) printf("%s\n", torch_note);
    printf("\nattn only, cold caches (%d rotating input/output pairs, %d MiB, so nothing is left in L3):\n", N_COLD,
           N_COLD * 32);
    for (cfg = COLD_1T; cfg <= COLD_2T; cfg++)
        printf("%-8s | %8.2f ms | %6.1f GB/s | noise %3.0f%% | busy %2d/%d\n", names[cfg], ms[cfg],
               bytes / (ms[cfg] * 1e-3) * 1e-9, 100.0 * bench_spread(t[cfg], BATCHES), disturbed[cfg], BATCHES);
    printf("busy = batches during which this process waited for a CPU > %.0f%% of the time even after %d tries%s\n",
           100.0 * BENCH_BUSY_LIMIT, BENCH_TRIES, bench_cpu_wait() < 0.0 ? " (n/a here: no schedstat)" : "");
    printf("(softmax bench took %.1f s)\n", bench_now() - t_start);

    bench_pool_stop(&g_pool);
    for (i = 0; i < N_COLD; i++) {
        free(g_x[i]);
        free(g_y[i]);
    }
    return 0;
}
