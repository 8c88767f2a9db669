"""PyTorch's side of bench_softmax: torch.softmax(x, dim=-1) on a 4096 x 1024
float32 tensor at 1 and 2 threads.

Batches are treated exactly as in bench_common.h: a batch during which this
process's threads waited for a CPU more than 5% of its time (Linux schedstat:
another process had the core) is run again, up to 4 tries, within a 10 s retry
budget, and the least disturbed try is kept.

Measured like the C bench: the SAME input tensor every call (16 MiB read); the
output is whatever torch.softmax allocates, which is what a user pays (glibc
hands the freed 16 MiB back at the same address, so it is the same memory every
call: 16 MiB written). Warm-up, then 11 batches of ~50 ms, median batch.

Run with /usr/bin/python3 (the Debian interpreter that has python3-torch).
Prints machine-readable lines for bench/run.sh:
    torch_version 1.13.1
    torch_ms 1 3.65 0      (threads, median ms, batches still disturbed)
    torch_ms 2 1.82 0
or one line 'skip REASON' when torch cannot be imported.
"""
import os
import statistics
import sys
import time

BATCHES = 11
BATCH_S = 0.05
BUSY_LIMIT = 0.05
TRIES = 4
retry_budget_s = 10.0


def cpu_wait():
    """Seconds this process's threads spent runnable but not running, or None."""
    total, found = 0.0, False
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return None
    for tid in tids:
        try:
            with open("/proc/self/task/%s/schedstat" % tid) as f:
                total += int(f.read().split()[1]) * 1e-9
                found = True
        except (OSError, ValueError, IndexError):
            pass
    return total if found else None


def batch(fn, reps):
    """Seconds per call and the fraction of the batch spent waiting for a CPU."""
    w0 = cpu_wait()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    t1 = time.perf_counter()
    w1 = cpu_wait()
    busy = (w1 - w0) / (t1 - t0) if w0 is not None and w1 is not None else 0.0
    return (t1 - t0) / reps, busy


def clean_batch(fn, reps):
    global retry_budget_s
    best_t, best_busy = 0.0, float("inf")
    for k in range(TRIES):
        t0 = time.perf_counter()
        t, busy = batch(fn, reps)
        if k > 0:
            retry_budget_s -= time.perf_counter() - t0
        if busy < best_busy:
            best_t, best_busy = t, busy
        if busy <= BUSY_LIMIT or retry_budget_s <= 0.0:
            break
    return best_t, best_busy > BUSY_LIMIT


def median_ms(fn):
    # Warm-up: thread pool start, caches, and glibc's malloc, which needs about
    # ten 16 MiB allocations before it settles on reusing one address.
    for _ in range(20):
        fn()
    t0 = time.perf_counter()
    for _ in range(4):
        fn()
    one = (time.perf_counter() - t0) / 4
    reps = max(1, int(BATCH_S / one))
    times, disturbed = [], 0
    for _ in range(BATCHES):
        t, dist = clean_batch(fn, reps)
        times.append(t)
        disturbed += dist
    return 1e3 * statistics.median(times), disturbed


def main():
    try:
        import torch
    except Exception as e:  # missing or broken install: skip, do not fail
        print("skip cannot import torch with %s: %s" % (sys.executable, e))
        return
    torch.manual_seed(0)
    x = torch.randn(4096, 1024, dtype=torch.float32)
    y = torch.softmax(x, dim=-1)
    # Same sanity check as the C side: rows sum to 1.
    if not torch.allclose(y.sum(dim=-1), torch.ones(4096), atol=1e-4):
        print("skip torch.softmax rows do not sum to 1")
        return
    print("torch_version %s" % torch.__version__)
    for n in (1, 2):
        torch.set_num_threads(n)
        ms, disturbed = median_ms(lambda: torch.softmax(x, dim=-1))
        if cpu_wait() is None:
            disturbed = -1  # no schedstat: cannot tell
        print("torch_ms %d %.4f %d" % (n, ms, disturbed))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
