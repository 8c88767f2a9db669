"""PyTorch's side of bench_attention: multi-head self-attention forward +
backward, the attention product alone (PyTorch 1.13 has no fused attention:
matmul, softmax, matmul), a GPT-like training step, and the memory of naive
attention at T=16384.

    attention_torch.py DATA_DIR [--mode default|blas1|passive|memory]

DATA_DIR is written by `bench_attention --dump DATA_DIR`:
  mha0.f32 .. mha3.f32   in_proj_weight, in_proj_bias, out_proj.weight,
                         out_proj.bias, x, W (raw float32) of each MHA shape
  gpt_params.txt/.f32    the GPT's parameters by name (attn's init), in order
  gpt_tokens.i32         the B x T inputs, then the B x T targets
In default mode the script writes mhaN_torch.f32 (out, then the grads of x,
in_proj_weight, out_proj.weight, in_proj_bias after one forward + backward) for
bench_attention to compare with its own, and prints the GPT's losses over 3
AdamW steps from attn's weights.

Modes (each is a separate process: the variables act when torch is imported):
  default  the environment as installed (OMP_*, OPENBLAS_NUM_THREADS and
           GOMP_SPINCOUNT removed): MHA and GPT at set_num_threads(1) and (2).
           PyTorch's GEMMs go to Debian's OpenBLAS (pthreads build), which
           set_num_threads does not reach: at set_num_threads(1) they still run
           on 2 threads (the cores column shows it).
  blas1    OPENBLAS_NUM_THREADS=1: MHA, GPT and the attention product at
           set_num_threads(1), on one core.
  passive  OMP_WAIT_POLICY=PASSIVE: the same at set_num_threads(2).
  memory   naive causal attention forward + backward at T=16384 (B1, 1 head,
           d_head 64), one core, with the address space limited (setrlimit
           RLIMIT_AS) to MEM_LIMIT_GIB above what import torch left, so a
           failure cannot take the machine down. Prints
           'torch_mem ok PEAK_KIB IMPORT_KIB SECONDS LIMIT_GIB' or
           'torch_mem failed ...'.

Timing as train_torch.py: configurations of one process in interleaved rounds
of batches (median of BATCHES; one call a batch for the calls over 0.1 s); at
one thread a batch during which this process's threads waited for a CPU more
than 5% of its time (Linux schedstat) is run again, up to 4 tries, within a
10 s retry budget; at two threads not (busy -2, 'own').

Prints for bench_attention (through bench/run.sh):
    torch_version 1.13.0a0
    torch_gpt_loss L1 L2 L3        (default mode)
    torch_gpt_rss_kib PEAK IMPORT  (ru_maxrss after the GPT's 3 steps, and after import torch)
    torch_ms KEY THREADS MS BUSY CORES OTHERS BATCHES
or one line 'skip REASON' when torch cannot be imported.
"""
import os
import resource
import statistics
import sys
import time

BATCHES = 7         # MHA and GPT at one core and with OMP_WAIT_POLICY=PASSIVE
BATCHES_DEFAULT = 5 # MHA and GPT as installed (informative rows; the slowest)
BATCHES_KERNEL = 9  # the attention product
BATCH_S = 0.1
BUSY_LIMIT = 0.05
TRIES = 4
retry_budget_s = 10.0

# B, T, d, heads, causal (bench_attention.c's g_mha_shapes)
MHA_SHAPES = [(8, 128, 512, 8, False), (4, 512, 512, 8, False), (1, 2048, 256, 4, False), (1, 2048, 256, 4, True)]
K_T, K_H, K_DH = 512, 8, 64
G_V, G_D, G_H, G_L, G_FF, G_T, G_B = 256, 256, 4, 4, 1024, 128, 16
G_LR, G_WD = 1e-3, 0.01
M_T, M_DH = 16384, 64
MEM_LIMIT_GIB = 6.0


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


def measure(torch, configs, batches, batch_s):
    """configs: (key, threads, fn). Interleaved rounds; prints torch_ms lines.
    At set_num_threads(2) PyTorch's OpenMP threads and OpenBLAS's threads (4
    on 2 cores) wait for each other, so schedstat's waits say nothing about
    other processes: those batches are not retried and report busy -2."""
    reps = []
    for key, n, fn in configs:
        torch.set_num_threads(n)
        t0 = time.perf_counter()
        fn()  # warm-up (and the thread count change takes effect); a call that long needs no second look
        one = time.perf_counter() - t0
        if one < batch_s:
            t0 = time.perf_counter()
            fn()
            one = time.perf_counter() - t0
        if one < batch_s / 4:
            k = int(batch_s / 4 / one) + 1
            t0 = time.perf_counter()
            for _ in range(k):
                fn()
            one = (time.perf_counter() - t0) / k
        reps.append(max(1, int(batch_s / one)))
    times = [[] for _ in configs]
    cores = [[] for _ in configs]
    disturbed = [0 for _ in configs]
    others = [0.0 for _ in configs]
    wall = [0.0 for _ in configs]
    others_ok = True
    for _ in range(batches):
        for i, (key, n, fn) in enumerate(configs):
            if torch.get_num_threads() != n:
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
        print("torch_ms %s %d %.4f %d %.2f %.3f %d" % (key, n, 1e3 * statistics.median(times[i]), d,
                                                      statistics.median(cores[i]), o, batches))
    sys.stdout.flush()


def memory_mode(torch):
    """Naive causal attention at T=16384, forward + backward, under a limit."""
    import math
    rss_import = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    torch.set_num_threads(1)
    vm = 0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                vm = int(line.split()[1]) * 1024
    limit = vm + int(MEM_LIMIT_GIB * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    g = torch.Generator().manual_seed(5)
    t0 = time.perf_counter()
    try:
        q = torch.rand(1, M_T, M_DH, generator=g).sub_(0.5).requires_grad_()
        k = torch.rand(1, M_T, M_DH, generator=g).sub_(0.5).requires_grad_()
        v = torch.rand(1, M_T, M_DH, generator=g).sub_(0.5).requires_grad_()
        dout = torch.rand(1, M_T, M_DH, generator=g)
        # as lean as plain PyTorch gets: scale folded into q, the mask as bool,
        # the mask applied in place, the scores dropped once softmax has them
        mask = torch.ones(M_T, M_T, dtype=torch.bool).triu_(1)
        s = (q * (1.0 / math.sqrt(M_DH))) @ k.transpose(-2, -1)
        s.masked_fill_(mask, float("-inf"))
        p = torch.softmax(s, dim=-1)
        del s
        o = p @ v
        del p
        o.backward(dout)
        ok = bool(torch.isfinite(q.grad).all())
    except (RuntimeError, MemoryError) as e:
        msg = str(e).split("\n")[0][:160]
        print("torch_mem failed to allocate within %.1f GiB above import torch (after %.1f s): %s"
              % (MEM_LIMIT_GIB, time.perf_counter() - t0, msg))
        return
    t1 = time.perf_counter()
    if not ok:
        print("torch_mem failed: non-finite grads")
        return
    print("torch_mem ok %d %d %.3f %.1f" % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, rss_import,
                                           t1 - t0, MEM_LIMIT_GIB))


def main():
    args = sys.argv[1:]
    mode = "default"
    if "--mode" in args:
        k = args.index("--mode")
        mode = args[k + 1]
        del args[k:k + 2]
    if len(args) != 1 or mode not in ("default", "blas1", "passive", "memory"):
        print("skip usage: attention_torch.py DATA_DIR [--mode default|blas1|passive|memory]")
        return
    data_dir = args[0]
    # Before torch (and so libgomp and OpenBLAS) is loaded: they read these once.
    for v in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "GOMP_SPINCOUNT"):
        os.environ.pop(v, None)
    if mode in ("blas1", "memory"):
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
    sys.stdout.flush()
    if mode == "memory":
        memory_mode(torch)
        return
    torch.set_num_threads(1)

    # ---- the GPT, on bench_attention's weights and tokens ----
    try:
        with open(os.path.join(data_dir, "gpt_params.txt")) as f:
            index = [(ln.split()[0], int(ln.split()[1])) for ln in f if ln.strip()]
        blob = np.fromfile(os.path.join(data_dir, "gpt_params.f32"), dtype=np.float32)
        toks = np.fromfile(os.path.join(data_dir, "gpt_tokens.i32"), dtype=np.int32)
    except (OSError, ValueError, IndexError) as e:
        print("skip cannot read the GPT's files in %s: %s" % (data_dir, e))
        return

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok_emb = nn.Embedding(G_V, G_D)
            self.pos_emb = nn.Parameter(torch.zeros(G_T, G_D))
            layer = nn.TransformerEncoderLayer(G_D, G_H, G_FF, dropout=0.0, activation="gelu",
                                               batch_first=True, norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, G_L, norm=nn.LayerNorm(G_D), enable_nested_tensor=False)
            self.head = nn.Linear(G_D, G_V, bias=False)
            self.register_buffer("mask", torch.triu(torch.full((G_T, G_T), float("-inf")), diagonal=1))

        def forward(self, idx):
            x = self.tok_emb(idx) + self.pos_emb
            return self.head(self.encoder(x, mask=self.mask))

    model = GPT()
    state, off = {}, 0
    for name, n in index:
        state[name] = torch.from_numpy(blob[off:off + n].copy())
        off += n
    own = dict(model.named_parameters())
    if off != blob.size or set(state) != set(own):
        print("skip the GPT's parameters do not match: %s" % sorted(set(state) ^ set(own))[:4])
        return
    with torch.no_grad():
        for name, p in own.items():
            p.copy_(state[name].view_as(p))
    idx = torch.from_numpy(toks[:G_B * G_T].astype(np.int64)).view(G_B, G_T)
    tgt = torch.from_numpy(toks[G_B * G_T:].astype(np.int64)).view(-1)
    opt = torch.optim.AdamW(model.parameters(), lr=G_LR, weight_decay=G_WD)

    def gpt_step():
        opt.zero_grad()  # set_to_none=False, 1.13's default
        loss = F.cross_entropy(model(idx).view(-1, G_V), tgt)
        loss.backward()
        opt.step()
        return loss

    if mode == "default":
        losses = [gpt_step().item() for _ in range(3)]
        print("torch_gpt_loss %.9g %.9g %.9g" % tuple(losses))
        print("torch_gpt_rss_kib %d %d" % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, rss_import))
        sys.stdout.flush()

    # ---- MHA, on bench_attention's numbers ----
    mha_steps = []
    for s, (B, T, d, h, causal) in enumerate(MHA_SHAPES):
        try:
            raw = np.fromfile(os.path.join(data_dir, "mha%d.f32" % s), dtype=np.float32)
        except OSError as e:
            print("skip cannot read %s/mha%d.f32: %s" % (data_dir, s, e))
            return
        sizes = [3 * d * d, 3 * d, d * d, d, B * T * d, B * T * d]
        if raw.size != sum(sizes):
            print("skip %s/mha%d.f32 has %d floats, expected %d" % (data_dir, s, raw.size, sum(sizes)))
            return
        parts, off = [], 0
        for n in sizes:
            parts.append(torch.from_numpy(raw[off:off + n].copy()))
            off += n
        mha = nn.MultiheadAttention(d, h, batch_first=True)
        with torch.no_grad():
            mha.in_proj_weight.copy_(parts[0].view(3 * d, d))
            mha.in_proj_bias.copy_(parts[1])
            mha.out_proj.weight.copy_(parts[2].view(d, d))
            mha.out_proj.bias.copy_(parts[3])
        x = parts[4].view(B, T, d).requires_grad_()
        w = parts[5].view(B, T, d)
        mask = torch.ones(T, T, dtype=torch.bool).triu(1) if causal else None  # True: masked

        def step(mha=mha, x=x, w=w, mask=mask):
            mha.zero_grad(set_to_none=False)
            x.grad = None
            out, _ = mha(x, x, x, need_weights=False, attn_mask=mask)
            out.backward(w)
            return out

        if mode == "default":
            out = step()
            res = torch.cat([out.detach().reshape(-1), x.grad.reshape(-1), mha.in_proj_weight.grad.reshape(-1),
                             mha.out_proj.weight.grad.reshape(-1), mha.in_proj_bias.grad.reshape(-1)])
            res.numpy().tofile(os.path.join(data_dir, "mha%d_torch.f32" % s))
        mha_steps.append(step)

    # ---- the attention product: matmul, softmax, matmul ----
    g = torch.Generator().manual_seed(3)
    kq, kk, kv, kdo = [torch.rand(1, K_H, K_T, K_DH, generator=g) * 2 - 1 for _ in range(4)]
    kmask = torch.ones(K_T, K_T, dtype=torch.bool).triu(1)
    kscale = 1.0 / K_DH ** 0.5

    def attention(q, k, v, causal):
        s = (q @ k.transpose(-2, -1)) * kscale
        if causal:
            s = s.masked_fill(kmask, float("-inf"))
        return torch.softmax(s, dim=-1) @ v

    def kfwd(causal):
        def fn():
            with torch.no_grad():
                attention(kq, kk, kv, causal)
        return fn

    def kfb(causal):
        def fn():
            q, k, v = [t.detach().requires_grad_() for t in (kq, kk, kv)]
            attention(q, k, v, causal).backward(kdo)
        return fn

    mha_keys = ["mha%d" % s for s in range(len(MHA_SHAPES))]
    if mode == "default":
        configs = [(k, n, f) for n in (1, 2) for k, f in zip(mha_keys, mha_steps)]
        configs += [("gpt", 1, gpt_step), ("gpt", 2, gpt_step)]
        measure(torch, configs, BATCHES_DEFAULT, BATCH_S)
    else:
        n, sfx = (1, "_blas1") if mode == "blas1" else (2, "_passive")
        kconf = [("kfwd" + sfx, n, kfwd(False)), ("kfwdc" + sfx, n, kfwd(True)),
                 ("kfb" + sfx, n, kfb(False)), ("kfbc" + sfx, n, kfb(True))]
        measure(torch, kconf, BATCHES_KERNEL, 0.05)
        configs = [(k + sfx, n, f) for k, f in zip(mha_keys, mha_steps)] + [("gpt" + sfx, n, gpt_step)]
        measure(torch, configs, BATCHES, BATCH_S)


if __name__ == "__main__":
    main()
