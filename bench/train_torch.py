"""PyTorch's side of bench_train: one training step of an MLP 512-2048-512
(nn.Linear, nn.GELU() = erf form, nn.Linear) over 256 tokens with an MSE loss,
and one AdamW step over 3,323,392 parameters in 53 tensors.

    train_torch.py DATA_DIR [--mode default|blas1|passive]

DATA_DIR/mlp.f32 is written by `bench_train --dump DATA_DIR`: x, target, fc1
weight and bias, fc2 weight and bias (attn's init), raw float32. In default mode
the script also writes DATA_DIR/mlp_grads_torch.f32 (the four parameter grads
after one step) for bench_train to compare with its own.

Modes (each is a separate process: the variables act when torch is imported):
  default  the environment as installed (OMP_*, OPENBLAS_NUM_THREADS and
           GOMP_SPINCOUNT removed): MLP and AdamW at set_num_threads(1) and (2).
           Note: PyTorch's GEMMs go to Debian's OpenBLAS (pthreads build), which
           set_num_threads does not reach: at set_num_threads(1) they still run
           on 2 threads (the cores column shows it).
  blas1    OPENBLAS_NUM_THREADS=1: the MLP at set_num_threads(1) on one core.
  passive  OMP_WAIT_POLICY=PASSIVE: MLP and AdamW at set_num_threads(2).

A step: model.zero_grad(set_to_none=False) (1.13's default), forward,
F.mse_loss, backward; x does not require grad. AdamW(lr=1e-3,
weight_decay=0.01), foreach=False (1.13's default on CPU) and foreach=True,
grads fixed. Configurations of one process are timed in interleaved rounds of
batches (~0.1 s each, median of 9); at one thread, a batch during which this
process's threads waited for a CPU more than 5% of its time (Linux schedstat) is
run again, up to 4 tries, within a 10 s retry budget, as in bench_common.h (at
two threads see measure()).

Run with /usr/bin/python3 (the Debian interpreter that has python3-torch).
Prints machine-readable lines for bench_train (through bench/run.sh):
    torch_version 1.13.0a0
    torch_loss 1.2345678          (default mode)
    torch_adamw_check SUM SUMSQ   (default mode: change of the parameters after 2 steps)
    torch_rss_kib PEAK IMPORT     (ru_maxrss after MLP + AdamW steps, and after import torch)
    torch_ms KEY THREADS MS BUSY CORES OTHERS
      (BUSY: batches still disturbed, -1 no schedstat, -2 not judged at 2
      threads; CORES: CPU time / wall time; OTHERS: other processes' CPU
      time / wall time during the batches, -1 unknown)
or one line 'skip REASON' when torch cannot be imported.
"""
import os
import resource
import statistics
import sys
import time

BATCHES = 9
BATCH_S = 0.1
BUSY_LIMIT = 0.05
TRIES = 4
retry_budget_s = 10.0

TOKENS, D_MODEL, D_HIDDEN = 256, 512, 2048
LR, WD = 1e-3, 0.01


def shapes():
    """The GPT's parameter shapes, in bench_train.c's order."""
    s = [(256, 256), (128, 256)]
    layer = [(256,), (256,), (768, 256), (768,), (256, 256), (256,), (256,), (256,),
             (1024, 256), (1024,), (256, 1024), (256,)]
    for _ in range(4):
        s += layer
    s += [(256,), (256,), (256, 256)]
    return s


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


def machine_busy():
    """CPU seconds the whole machine has been busy (/proc/stat), or None."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
        return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def batch(fn, reps):
    """Seconds per call, the fraction of the batch spent waiting for a CPU, CPU/wall."""
    w0 = cpu_wait()
    c0 = time.process_time()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    t1 = time.perf_counter()
    c1 = time.process_time()
    w1 = cpu_wait()
    busy = (w1 - w0) / (t1 - t0) if w0 is not None and w1 is not None else 0.0
    return (t1 - t0) / reps, busy, (c1 - c0) / (t1 - t0)


def clean_batch(fn, reps, tries):
    global retry_budget_s
    best = None
    for k in range(tries):
        t0 = time.perf_counter()
        t, busy, cores = batch(fn, reps)
        if k > 0:
            retry_budget_s -= time.perf_counter() - t0
        if best is None or busy < best[1]:
            best = (t, busy, cores)
        if busy <= BUSY_LIMIT or retry_budget_s <= 0.0:
            break
    return best[0], best[1] > BUSY_LIMIT, best[2]


def settle(max_s=0.5):
    """Wait until no thread of this process burns CPU (OpenMP and OpenBLAS
    workers spin for a while after a parallel region)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < max_s:
        c0 = time.process_time()
        time.sleep(0.005)
        if time.process_time() - c0 < 0.0005:
            break


def measure(torch, configs):
    """configs: (key, threads, fn). Interleaved rounds; prints torch_ms lines.

    At set_num_threads(2) PyTorch's OpenMP threads and OpenBLAS's threads (4
    on 2 cores) wait for each other, so schedstat's waits say nothing about
    other processes there: those batches are not retried and their busy is
    reported as -2 ('own'). The others column (other processes' CPU during the
    batches, from /proc/stat) covers every row."""
    reps = []
    for key, n, fn in configs:
        torch.set_num_threads(n)
        for _ in range(2):
            fn()
        t0 = time.perf_counter()
        for _ in range(2):
            fn()
        reps.append(max(1, int(BATCH_S / ((time.perf_counter() - t0) / 2))))
    times = [[] for _ in configs]
    cores = [[] for _ in configs]
    disturbed = [0 for _ in configs]
    others = [0.0 for _ in configs]
    wall = [0.0 for _ in configs]
    others_ok = True
    for _ in range(BATCHES):
        for i, (key, n, fn) in enumerate(configs):
            torch.set_num_threads(n)
            fn()  # untimed: the thread count change takes effect here
            settle()
            m0, c0, t0 = machine_busy(), time.process_time(), time.perf_counter()
            t, dist, c = clean_batch(fn, reps[i], TRIES if n == 1 else 1)
            m1, c1, t1 = machine_busy(), time.process_time(), time.perf_counter()
            if m0 is None or m1 is None:
                others_ok = False
            else:
                others[i] += (m1 - m0) - (c1 - c0)
                wall[i] += t1 - t0
            times[i].append(t)
            cores[i].append(c)
            disturbed[i] += dist
    for i, (key, n, fn) in enumerate(configs):
        d = disturbed[i] if n == 1 else -2
        if cpu_wait() is None:
            d = -1  # no schedstat: cannot tell
        o = max(0.0, others[i] / wall[i]) if others_ok and wall[i] > 0 else -1.0
        print("torch_ms %s %d %.4f %d %.2f %.3f" % (key, n, 1e3 * statistics.median(times[i]), d,
                                                   statistics.median(cores[i]), o))
    sys.stdout.flush()


def main():
    args = sys.argv[1:]
    mode = "default"
    if "--mode" in args:
        k = args.index("--mode")
        mode = args[k + 1]
        del args[k:k + 2]
    if len(args) != 1 or mode not in ("default", "blas1", "passive"):
        print("skip usage: train_torch.py DATA_DIR [--mode default|blas1|passive]")
        return
    data_dir = args[0]
    # Before torch (and so libgomp and OpenBLAS) is loaded: they read these once.
    for v in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "GOMP_SPINCOUNT"):
        os.environ.pop(v, None)
    if mode == "blas1":
        os.environ["OPENBLAS_NUM_THREADS"] = "1"
    if mode == "passive":
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        import numpy as np
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
    except Exception as e:  # missing or broken install: skip, do not fail
        print("skip cannot import torch with %s: %s" % (sys.executable, e))
        return
    rss_import = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print("torch_version %s" % torch.__version__)

    # ---- the MLP, on bench_train's numbers ----
    try:
        raw = np.fromfile(os.path.join(data_dir, "mlp.f32"), dtype=np.float32)
    except OSError as e:
        print("skip cannot read %s/mlp.f32: %s" % (data_dir, e))
        return
    sizes = [TOKENS * D_MODEL, TOKENS * D_MODEL, D_HIDDEN * D_MODEL, D_HIDDEN, D_MODEL * D_HIDDEN, D_MODEL]
    if raw.size != sum(sizes):
        print("skip %s/mlp.f32 has %d floats, expected %d" % (data_dir, raw.size, sum(sizes)))
        return
    parts, off = [], 0
    for n in sizes:
        parts.append(torch.from_numpy(raw[off:off + n].copy()))
        off += n
    x = parts[0].view(TOKENS, D_MODEL)
    target = parts[1].view(TOKENS, D_MODEL)
    model = nn.Sequential(nn.Linear(D_MODEL, D_HIDDEN), nn.GELU(), nn.Linear(D_HIDDEN, D_MODEL))
    with torch.no_grad():
        model[0].weight.copy_(parts[2].view(D_HIDDEN, D_MODEL))
        model[0].bias.copy_(parts[3])
        model[2].weight.copy_(parts[4].view(D_MODEL, D_HIDDEN))
        model[2].bias.copy_(parts[5])

    def mlp_step():
        model.zero_grad(set_to_none=False)
        loss = F.mse_loss(model(x), target)
        loss.backward()
        return loss

    # ---- AdamW over the GPT's shapes, values from bench_train.c's formulas ----
    shp = shapes()
    total = sum(int(np.prod(s)) for s in shp)
    i = np.arange(total, dtype=np.float64)
    p0 = (0.02 * np.sin(0.001 * i + 0.1)).astype(np.float32)
    ga = (0.01 * np.cos(0.0037 * i + 0.5)).astype(np.float32)
    gb = (0.02 * np.sin(0.0021 * i + 1.3)).astype(np.float32)

    def split(flat):
        out, o = [], 0
        for s in shp:
            n = int(np.prod(s))
            out.append(torch.from_numpy(flat[o:o + n].copy()).view(*s))
            o += n
        return out

    params = [nn.Parameter(t) for t in split(p0)]
    grads_a, grads_b = split(ga), split(gb)

    def set_grads(gs):
        for p, g in zip(params, gs):
            p.grad = g.clone()

    opt_loop = torch.optim.AdamW(params, lr=LR, weight_decay=WD, foreach=False)

    def adamw_loop():
        opt_loop.step()

    torch.set_num_threads(1)
    if mode == "default":
        loss = mlp_step()
        print("torch_loss %.9g" % loss.item())
        g = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).numpy()
        g.tofile(os.path.join(data_dir, "mlp_grads_torch.f32"))
        set_grads(grads_a)
        opt_loop.step()
        set_grads(grads_b)
        opt_loop.step()
        with torch.no_grad():
            now = torch.cat([p.detach().reshape(-1) for p in params]).double()
            d = now - torch.from_numpy(p0).double()
            print("torch_adamw_check %.9g %.9g" % (d.sum().item(), (d * d).sum().item()))
    set_grads(grads_a)
    for _ in range(3):
        mlp_step()
        adamw_loop()
    # One training process's worth: the MLP and AdamW (one optimizer's state).
    print("torch_rss_kib %d %d" % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, rss_import))
    sys.stdout.flush()

    opt_fe = torch.optim.AdamW(params, lr=LR, weight_decay=WD, foreach=True)

    def adamw_foreach():
        opt_fe.step()

    if mode == "default":
        configs = [("mlp", 1, mlp_step), ("mlp", 2, mlp_step),
                   ("adamw_loop", 1, adamw_loop), ("adamw_foreach", 1, adamw_foreach),
                   ("adamw_loop", 2, adamw_loop), ("adamw_foreach", 2, adamw_foreach)]
    elif mode == "blas1":
        configs = [("mlp_blas1", 1, mlp_step)]
    else:
        configs = [("mlp_passive", 2, mlp_step), ("adamw_loop_passive", 2, adamw_loop),
                   ("adamw_foreach_passive", 2, adamw_foreach)]
    measure(torch, configs)


if __name__ == "__main__":
    main()
