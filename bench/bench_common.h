/* bench_common.h - timing, statistics and a call-counting wrapper around
   attn.h's thread pool for the attn.h benches. Include it after defining
   _POSIX_C_SOURCE and after attn.h.

   Everything here is static: each bench is one translation unit. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <dirent.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Not every bench uses every helper; keep -Wunused-function quiet about that. */
#if defined(__GNUC__) || defined(__clang__)
#  define BENCH_FN static __attribute__((unused))
#else
#  define BENCH_FN static
#endif

/* ---- time ---------------------------------------------------------------- */
BENCH_FN double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU seconds used by every thread of this process (to see helper threads spin). */
BENCH_FN double bench_process_cpu(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

BENCH_FN void bench_sleep(double seconds) {
    struct timespec ts;
    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    nanosleep(&ts, NULL);
}

/* Wait until no other thread of this process burns CPU: OpenBLAS workers (and
   ours) spin for a while after a threaded call, and a spinning thread on the
   other core distorts whatever is measured next. Sleeps in 5 ms steps until a
   step sees under 0.5 ms of CPU, at most max_s. Returns the seconds waited. */
BENCH_FN double bench_settle(double max_s) {
    double t0 = bench_now();
    while (bench_now() - t0 < max_s) {
        double c0 = bench_process_cpu(), c1;
        bench_sleep(0.005);
        c1 = bench_process_cpu();
        if (c1 - c0 < 0.0005) break;
    }
    return bench_now() - t0;
}

/* Seconds that the threads of this process have spent runnable but waiting for
   a CPU (the second field of Linux's /proc/self/task/TID/schedstat), or -1 where
   that is not available. On a shared machine this is how a bench sees that
   another process took its core during a timing: the wait grows. */
BENCH_FN double bench_cpu_wait(void) {
    DIR *dir = opendir("/proc/self/task");
    struct dirent *e;
    double total = 0.0;
    int found = 0;
    if (!dir) return -1.0;
    while ((e = readdir(dir)) != NULL) {
        char path[300];
        unsigned long long run_ns, wait_ns;
        FILE *f;
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/schedstat", e->d_name);
        f = fopen(path, "r");
        if (!f) continue;
        if (fscanf(f, "%llu %llu", &run_ns, &wait_ns) == 2) {
            total += 1e-9 * (double)wait_ns;
            found = 1;
        }
        fclose(f);
    }
    closedir(dir);
    return found ? total : -1.0;
}

/* ---- statistics ---------------------------------------------------------- */
BENCH_FN int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of n values (n <= 64); v is left untouched. */
BENCH_FN double bench_median(const double *v, int n) {
    double s[64];
    if (n <= 0) return 0.0;
    if (n > 64) n = 64;
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, bench_cmp_double);
    return (n % 2) ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

/* (max - min) / median: how noisy a set of batch times was. */
BENCH_FN double bench_spread(const double *v, int n) {
    double lo = v[0], hi = v[0], med = bench_median(v, n);
    int i;
    for (i = 1; i < n; i++) {
        if (v[i] < lo) lo = v[i];
        if (v[i] > hi) hi = v[i];
    }
    return med > 0.0 ? (hi - lo) / med : 0.0;
}

/* ---- timed batches that notice a busy machine ---------------------------- */
/* A batch counts as disturbed when the threads of this process waited for a CPU
   for more than BENCH_BUSY_LIMIT of its wall time (another process had the
   core). A disturbed batch is run again, up to BENCH_TRIES times in all, while
   the run's retry budget lasts; the least disturbed try is kept. This measures
   the code rather than the neighbours, and the tables say how many batches
   stayed disturbed anyway. */
#define BENCH_BUSY_LIMIT 0.05
#define BENCH_TRIES 4

typedef void (*bench_run_fn)(void *arg);

static double bench_retry_budget_s = 30.0; /* seconds of retries left in this run */

/* Seconds per call of reps calls of run(arg); *busy gets the fraction of the
   batch spent waiting for a CPU (0 where that cannot be measured). */
BENCH_FN double bench_batch(bench_run_fn run, void *arg, long reps, double *busy) {
    long i;
    double w0 = bench_cpu_wait(), t0 = bench_now(), t1, w1;
    for (i = 0; i < reps; i++) run(arg);
    t1 = bench_now();
    w1 = bench_cpu_wait();
    *busy = (w0 >= 0.0 && w1 >= 0.0 && t1 > t0) ? (w1 - w0) / (t1 - t0) : 0.0;
    return (t1 - t0) / (double)reps;
}

/* bench_batch, tried again while disturbed (see above). *disturbed is set to 1
   when even the kept try was disturbed. */
BENCH_FN double bench_clean_batch(bench_run_fn run, void *arg, long reps, int *disturbed) {
    double best_t = 0.0, best_busy = 1e300;
    int k;
    for (k = 0; k < BENCH_TRIES; k++) {
        double busy, t0 = bench_now(), t = bench_batch(run, arg, reps, &busy);
        if (k > 0) bench_retry_budget_s -= bench_now() - t0;
        if (busy < best_busy) {
            best_busy = busy;
            best_t = t;
        }
        if (busy <= BENCH_BUSY_LIMIT || bench_retry_budget_s <= 0.0) break;
    }
    *disturbed = best_busy > BENCH_BUSY_LIMIT;
    return best_t;
}

/* ---- memory and data ----------------------------------------------------- */
/* 64-byte aligned floats, touched once so that no page fault lands in a timing. */
BENCH_FN float *bench_floats(size_t n) {
    void *p = NULL;
    if (posix_memalign(&p, 64, (n ? n : 1) * sizeof(float)) != 0 || !p) {
        fprintf(stderr, "bench: out of memory (%lu floats)\n", (unsigned long)n);
        exit(1);
    }
    memset(p, 0, (n ? n : 1) * sizeof(float));
    return (float *)p;
}

/* Uniform in [lo, hi) from a fixed-seed xorshift, so every run sees the same data. */
BENCH_FN void bench_fill(float *x, size_t n, float lo, float hi, uint64_t seed) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    size_t i;
    for (i = 0; i < n; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        x[i] = lo + (hi - lo) * (float)((s >> 40) * (1.0 / 16777216.0));
    }
}

/* ---- the thread pool ----------------------------------------------------- */
/* attn.h's own pool (attn_threads_create: n_threads - 1 workers plus the
   calling thread; a waiting worker spins a few microseconds, then sleeps),
   behind a hook that counts the calls that reach it, so a bench can tell
   whether the library split a product or kept it on one thread. */
typedef struct bench_pool {
    attn_threads inner;
    long calls; /* parallel_for calls that were shared with the workers */
} bench_pool;

/* The attn_threads.parallel_for of the pool (user is the bench_pool). */
BENCH_FN void bench_pool_parallel_for(void *user, int n_tasks, attn_task_fn fn, void *data) {
    bench_pool *p = (bench_pool *)user;
    int i;
    if (n_tasks <= 0) return;
    if (!p->inner.parallel_for || n_tasks == 1) {
        for (i = 0; i < n_tasks; i++) fn(data, i);
        return;
    }
    p->calls++;
    p->inner.parallel_for(p->inner.user, n_tasks, fn, data);
}

/* Start n_threads - 1 workers. Returns 0 when all of them started. */
BENCH_FN int bench_pool_start(bench_pool *p, int n_threads) {
    memset(p, 0, sizeof *p);
    p->inner = attn_threads_create(n_threads);
    return p->inner.n_threads == n_threads ? 0 : -1;
}

BENCH_FN void bench_pool_stop(bench_pool *p) { attn_threads_destroy(&p->inner); }

/* The attn_threads hook backed by p. */
BENCH_FN attn_threads bench_pool_threads(bench_pool *p) {
    attn_threads t;
    memset(&t, 0, sizeof t);
    t.parallel_for = bench_pool_parallel_for;
    t.user = p;
    t.n_threads = p->inner.n_threads;
    return t;
}

/* ---- machine ------------------------------------------------------------- */
/* The CPU model line of /proc/cpuinfo ("?" elsewhere). */
BENCH_FN void bench_cpu_model(char *out, size_t size) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    snprintf(out, size, "?");
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *v = strchr(line, ':');
            if (v) {
                v++;
                while (*v == ' ' || *v == '\t') v++;
                v[strcspn(v, "\n")] = 0;
                snprintf(out, size, "%s", v);
            }
            break;
        }
    }
    fclose(f);
}

#endif /* BENCH_COMMON_H */
