"""bench/sdpa_torch.py - PyTorch's scaled_dot_product_attention on the GPU, the
peer of bench/bench_cuda.cu's attention table (same shapes: B=4 H=16, T 1024 and
4096, head dims 64 and 128, causal or not). In float32, which is what attn's
fused kernels compute (PyTorch then picks its memory-efficient kernel; its
FlashAttention-2 kernel needs fp16/bf16, shown too for reference). Times are
CUDA-event medians after a warm-up. Skips with one line when PyTorch or a GPU
is missing."""
import sys

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    print("sdpa_torch: skipped (no PyTorch)")
    sys.exit(0)
if not torch.cuda.is_available():
    print("sdpa_torch: skipped (PyTorch has no CUDA device)")
    sys.exit(0)


def median_ms(fn, reps):
    for _ in range(3):
        fn()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2]


B, H = 4, 16
print(f"\nPyTorch {torch.__version__} scaled_dot_product_attention on {torch.cuda.get_device_name()}")
print(f"{'B=4 H=16':34s} | {'fp32 ms':>9s} | {'TFLOP/s':>7s} | {'bf16 ms':>9s} | {'TFLOP/s':>7s}")
for T in (1024, 4096):
    for D in (64, 128):
        for causal in (False, True):
            flops = 4.0 * B * H * T * T * D * (0.5 if causal else 1.0)
            row = {}
            for dtype in (torch.float32, torch.bfloat16):
                q, k, v = (torch.randn(B, H, T, D, device="cuda", dtype=dtype, requires_grad=True) for _ in range(3))
                do = torch.randn(B, H, T, D, device="cuda", dtype=dtype)
                fwd = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                out = fwd()
                bwd = lambda: torch.autograd.grad(out, (q, k, v), do, retain_graph=True)
                reps = 5 if T > 1024 else 10
                row[dtype] = (median_ms(fwd, reps), median_ms(bwd, reps))
            for p, name in ((0, "forward"), (1, "backward")):
                mult = 1.0 if p == 0 else 2.5
                f32, b16 = row[torch.float32][p], row[torch.bfloat16][p]
                label = f"{name} T={T} d={D}{' causal' if causal else ''}"
                print(f"{label:34s} | {f32:9.3f} | {flops * mult / f32 / 1e9:7.1f} | {b16:9.3f} | {flops * mult / b16 / 1e9:7.1f}")
