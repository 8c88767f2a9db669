#!/usr/bin/python3
"""Write the PyTorch reference values that tests/test_train.c compares attn.h with.

Run from anywhere with the Python that has torch (Debian's python3-torch):

    /usr/bin/python3 tools/gen_train_fixtures.py

It writes tests/fixtures/train_optim.txt, train_losses.txt and train_misc.txt
(about 115 KB together); -v also lists torch's float32-vs-float64 noise per case.
The output is deterministic (fixed seeds, float32, single-threaded torch), and
the files are committed, so the tests never need torch.

FILE FORMAT (tests/test_train.c parses it with strtol/strtod, nothing else)
-----------
A file is a sequence of records. Lines starting with '#' are comments. A record
is a header line

    NAME COUNT

(NAME: letters, digits, '.', '_' and '-', at most 63 characters; COUNT: a
decimal integer >= 0) followed by exactly COUNT numbers separated by
whitespace (any number per line). Every number is a float32 value written
with the shortest decimal that reads back as the same float32 (numpy's str),
so a correctly rounded strtod followed by a cast to float gives the bits
torch had; integers (targets, sizes, flags) are written as plain integers.
Arrays are row-major. No NaN or infinity is ever written.

WHAT IS IN THEM
---------------
train_optim.txt   optimizer trajectories. A problem: x (8x4), y (8x3), the
                  starting parameters W0 (4x3) and b0 (3), and loss =
                  mse(x @ W + b, y). For each config CFG:
                    CFG.desc    13 numbers: kind (0 SGD, 1 Adam, 2 AdamW,
                                3 Adagrad), lr, weight_decay, momentum,
                                dampening, nesterov, beta1, beta2, eps,
                                lr_decay, initial_accumulator_value (0 in
                                beta1/beta2/eps means "PyTorch's default", as
                                in attn_optim_desc), steplr_step_size,
                                steplr_gamma (step_size 0: constant lr;
                                else torch StepLR is stepped after every
                                optimizer step and the C test drives
                                attn_optim_set_lr from attn_lr_at)
                    CFG.grads   STEPS x 15: dloss/dW (12) then dloss/db (3) at
                                the start of each step (torch's own params)
                    CFG.params  STEPS x 15: W then b after each step
train_losses.txt  cross-entropy and MSE cases:
                    ce.CASE.meta     N C ignore_index label_smoothing
                    ce.CASE.logits   N x C
                    ce.CASE.targets  N (ints)
                    ce.CASE.loss     1 (absent when torch gives NaN)
                    ce.CASE.grad     N x C, d loss / d logits
                    mse.CASE.shape   the shape (ndim numbers)
                    mse.CASE.a, mse.CASE.b, mse.CASE.loss (1),
                    mse.CASE.grad_a, mse.CASE.grad_b
train_misc.txt    clip_grad_norm_, StepLR, gradient accumulation:
                    clip.CASE.meta     n_params max_norm
                    clip.CASE.shapes   n_params x 2 (rows cols; cols 1 for 1-D)
                    clip.CASE.grads    the grads before, concatenated
                    clip.CASE.norm     1, the total norm torch returned
                    clip.CASE.clipped  the grads after
                    steplr.CASE.meta   lr step_size gamma n_steps
                    steplr.CASE.lr     n_steps: optimizer lr at steps 0..n-1
                    accum.x1 accum.y1 accum.x2 accum.y2  two micro-batches
                                       (4x4 and 4x3 each; W0 b0 of train_optim)
                    accum.gW accum.gb  grads of mse(batch1) + mse(batch2)

The generator also prints how far torch's float32 results are from float64
ones, so the tolerances in test_train.c can be judged against the noise.
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)
torch.set_default_dtype(torch.float32)

HERE = os.path.dirname(os.path.abspath(__file__))
OUTDIR = os.path.join(HERE, "..", "tests", "fixtures")

STEPS = 20
N, IN, OUT = 8, 4, 3


def f32(v):
    """A Python float holding exactly the float32 nearest to v."""
    return float(np.float32(v))


class Writer:
    def __init__(self, name, comment):
        self.name = name
        self.lines = ["# %s - written by tools/gen_train_fixtures.py (format: see there); do not edit." % name]
        for c in comment.strip().splitlines():
            self.lines.append("# " + c)
        self.names = set()

    def rec(self, name, values, ints=False):
        assert name not in self.names, name
        assert len(name) <= 63 and all(ch.isalnum() or ch in "._-" for ch in name), name
        self.names.add(name)
        if isinstance(values, torch.Tensor):
            values = values.detach().cpu().numpy()
        arr = np.asarray(values).reshape(-1)
        out = []
        for v in arr:
            if ints:
                iv = int(v)
                assert iv == v
                out.append("%d" % iv)
            else:
                fv = np.float32(v)
                assert np.isfinite(fv), (name, v)
                s = str(fv)
                assert np.float32(float(s)) == fv, (s, fv)  # the text reads back exactly
                out.append(s)
        self.lines.append("%s %d" % (name, len(out)))
        for i in range(0, len(out), 8):
            self.lines.append(" ".join(out[i:i + 8]))

    def save(self):
        os.makedirs(OUTDIR, exist_ok=True)
        path = os.path.join(OUTDIR, self.name)
        with open(path, "w", newline="\n") as f:
            f.write("\n".join(self.lines) + "\n")
        print("wrote %s (%d bytes)" % (os.path.relpath(path), os.path.getsize(path)))


# ---------------------------------------------------------------------------
# Optimizer trajectories
# ---------------------------------------------------------------------------
SGD, ADAM, ADAMW, ADAGRAD = 0, 1, 2, 3

# name: (kind, dict of attn_optim_desc fields, steplr (step_size, gamma) or None)
CONFIGS = [
    ("sgd", SGD, dict(lr=0.1), None),
    ("sgd_momentum", SGD, dict(lr=0.05, momentum=0.9), None),
    ("sgd_dampening", SGD, dict(lr=0.05, momentum=0.9, dampening=0.1), None),
    ("sgd_nesterov", SGD, dict(lr=0.05, momentum=0.9, nesterov=1), None),
    ("sgd_wd", SGD, dict(lr=0.1, weight_decay=0.05), None),
    ("sgd_all", SGD, dict(lr=0.05, momentum=0.8, dampening=0.2, weight_decay=0.01), None),
    ("sgd_steplr", SGD, dict(lr=0.1, momentum=0.9), (5, 0.5)),
    ("adam", ADAM, dict(lr=0.05), None),
    ("adam_wd", ADAM, dict(lr=0.05, weight_decay=0.1), None),
    ("adam_betas", ADAM, dict(lr=0.05, beta1=0.8, beta2=0.99, eps=1e-6), None),
    ("adamw_wd001", ADAMW, dict(lr=0.05, weight_decay=0.01), None),
    ("adamw_wd01", ADAMW, dict(lr=0.05, weight_decay=0.1), None),
    ("adagrad", ADAGRAD, dict(lr=0.1), None),
    ("adagrad_all", ADAGRAD, dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1, weight_decay=0.01), None),
]


def make_torch_optim(kind, d, params):
    lr = f32(d["lr"])
    wd = f32(d.get("weight_decay", 0.0))
    if kind == SGD:
        return torch.optim.SGD(params, lr=lr, momentum=f32(d.get("momentum", 0.0)),
                               dampening=f32(d.get("dampening", 0.0)), weight_decay=wd,
                               nesterov=bool(d.get("nesterov", 0)))
    if kind in (ADAM, ADAMW):
        betas = (f32(d["beta1"]) if "beta1" in d else 0.9, f32(d["beta2"]) if "beta2" in d else 0.999)
        eps = f32(d["eps"]) if "eps" in d else 1e-8
        cls = torch.optim.Adam if kind == ADAM else torch.optim.AdamW
        return cls(params, lr=lr, betas=betas, eps=eps, weight_decay=wd)
    if kind == ADAGRAD:
        return torch.optim.Adagrad(params, lr=lr, lr_decay=f32(d.get("lr_decay", 0.0)), weight_decay=wd,
                                   initial_accumulator_value=f32(d.get("initial_accumulator_value", 0.0)))
    raise ValueError(kind)


def gen_optim():
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(N, IN, generator=g)
    w_true = torch.randn(IN, OUT, generator=g)
    b_true = torch.randn(OUT, generator=g)
    y = x @ w_true + b_true + 0.1 * torch.randn(N, OUT, generator=g)
    W0 = 0.5 * torch.randn(IN, OUT, generator=g)
    b0 = 0.1 * torch.randn(OUT, generator=g)

    w = Writer("train_optim.txt", "Optimizer trajectories: loss = mse(x @ W + b, y), %d steps." % STEPS)
    w.rec("dims", [N, IN, OUT, STEPS], ints=True)
    w.rec("x", x)
    w.rec("y", y)
    w.rec("W0", W0)
    w.rec("b0", b0)
    for name, kind, d, steplr in CONFIGS:
        W = W0.clone().requires_grad_(True)
        b = b0.clone().requires_grad_(True)
        opt = make_torch_optim(kind, d, [W, b])
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=steplr[0], gamma=f32(steplr[1])) if steplr else None
        grads, params = [], []
        for _ in range(STEPS):
            opt.zero_grad()
            loss = F.mse_loss(x @ W + b, y)
            loss.backward()
            grads.append(torch.cat([W.grad.reshape(-1), b.grad.reshape(-1)]).clone())
            opt.step()
            if sched:
                sched.step()
            params.append(torch.cat([W.detach().reshape(-1), b.detach().reshape(-1)]).clone())
        final = params[-1]
        assert torch.isfinite(final).all() and final.abs().max() < 10, (name, final)
        desc = [kind, f32(d["lr"]), f32(d.get("weight_decay", 0)), f32(d.get("momentum", 0)),
                f32(d.get("dampening", 0)), d.get("nesterov", 0), f32(d.get("beta1", 0)), f32(d.get("beta2", 0)),
                f32(d.get("eps", 0)), f32(d.get("lr_decay", 0)), f32(d.get("initial_accumulator_value", 0)),
                steplr[0] if steplr else 0, f32(steplr[1]) if steplr else 0]
        w.rec(name + ".desc", desc)
        w.rec(name + ".grads", torch.stack(grads))
        w.rec(name + ".params", torch.stack(params))
        print("  %-14s loss %.4f -> %.4f, |p| max %.3f" % (
            name, F.mse_loss(x @ W0 + b0, y).item(), F.mse_loss(x @ W + b, y).item(), final.abs().max().item()))
    w.save()
    return x, y, W0, b0


# ---------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------
def ce_case(w, name, logits, targets, ignore_index, ls, noise):
    lg = logits.clone().requires_grad_(True)
    loss = F.cross_entropy(lg, targets, ignore_index=ignore_index, label_smoothing=f32(ls))
    loss.backward()
    lg64 = logits.double().requires_grad_(True)
    loss64 = F.cross_entropy(lg64, targets, ignore_index=ignore_index, label_smoothing=f32(ls))
    loss64.backward()
    n, c = logits.shape
    w.rec("ce.%s.meta" % name, [n, c, ignore_index, f32(ls)])
    w.rec("ce.%s.logits" % name, logits)
    w.rec("ce.%s.targets" % name, targets, ints=True)
    if torch.isnan(loss):
        assert torch.isnan(loss64)
    else:
        w.rec("ce.%s.loss" % name, loss.reshape(1))
        noise.append(("ce.%s loss" % name, abs(loss.item() - loss64.item()) / abs(loss64.item())))
    assert torch.isfinite(lg.grad).all()
    w.rec("ce.%s.grad" % name, lg.grad)
    floor = 1e-2 * lg64.grad.abs().max().item() or 1e-12  # the same scale test_train.c compares with
    noise.append(("ce.%s grad" % name, ((lg.grad.double() - lg64.grad).abs() / lg64.grad.abs().clamp(min=floor)).max().item()))


def gen_losses(noise):
    g = torch.Generator().manual_seed(99)
    w = Writer("train_losses.txt", "Cross-entropy and MSE: torch.nn.functional values and grads (float32).")
    n, c = 6, 5
    logits = 2.0 * torch.randn(n, c, generator=g)
    t = torch.tensor([0, 4, 2, 1, 3, 2])
    ce_case(w, "basic", logits, t, -100, 0.0, noise)
    ce_case(w, "ignore_default", logits, torch.tensor([0, -100, 2, -100, 3, 1]), -100, 0.0, noise)
    ce_case(w, "ignore_minus1", logits, torch.tensor([-1, 4, -1, 1, 3, 2]), -1, 0.0, noise)
    # an ignore_index that is also a valid class: rows with target 3 are ignored
    ce_case(w, "ignore_class3", logits, torch.tensor([3, 4, 2, 3, 0, 1]), 3, 0.0, noise)
    ce_case(w, "smooth", logits, t, -100, 0.1, noise)
    ce_case(w, "smooth_ignore", logits, torch.tensor([0, -100, 2, 1, -100, 4]), -100, 0.1, noise)
    ce_case(w, "smooth_ignore_class2", logits, t, 2, 0.1, noise)
    ce_case(w, "smooth_full", logits, t, -100, 1.0, noise)
    ce_case(w, "all_ignored", logits, torch.full((n,), -100, dtype=torch.long), -100, 0.0, noise)
    ce_case(w, "all_ignored_smooth", logits, torch.full((n,), 7, dtype=torch.long), 7, 0.1, noise)
    # big logits: a softmax that is not max-subtracted overflows here
    big = 150.0 * torch.randn(4, 7, generator=g)
    ce_case(w, "big_logits", big, torch.tensor([6, 0, 3, 5]), -100, 0.05, noise)
    # many classes, one row
    ce_case(w, "wide", 3.0 * torch.randn(1, 37, generator=g), torch.tensor([36]), -100, 0.2, noise)

    for name, shape in (("2d", (4, 5)), ("3d", (2, 3, 4)), ("1d", (7,))):
        a = torch.randn(*shape, generator=g).requires_grad_(True)
        b = torch.randn(*shape, generator=g).requires_grad_(True)
        loss = F.mse_loss(a, b)
        loss.backward()
        a64, b64 = a.detach().double(), b.detach().double()
        noise.append(("mse.%s loss" % name, abs(loss.item() - F.mse_loss(a64, b64).item()) / loss.item()))
        w.rec("mse.%s.shape" % name, list(shape), ints=True)
        w.rec("mse.%s.a" % name, a)
        w.rec("mse.%s.b" % name, b)
        w.rec("mse.%s.loss" % name, loss.reshape(1))
        w.rec("mse.%s.grad_a" % name, a.grad)
        w.rec("mse.%s.grad_b" % name, b.grad)
    w.save()


# ---------------------------------------------------------------------------
# clip_grad_norm_, StepLR, accumulation
# ---------------------------------------------------------------------------
def gen_misc(x, y, W0, b0, noise):
    g = torch.Generator().manual_seed(7)
    w = Writer("train_misc.txt", "clip_grad_norm_, StepLR and gradient accumulation references.")
    shapes = [(4, 3), (3, 1), (2, 5)]
    for name, max_norm, scale in (("clip", 1.0, 1.0), ("noclip", 10.0, 1.0), ("tiny", 0.05, 0.3),
                                  ("just_below", None, 1.0)):
        grads = [scale * torch.randn(r * cc, generator=g).reshape(r, cc) for r, cc in shapes]
        params = [torch.zeros(r, cc, requires_grad=True) for r, cc in shapes]
        for p, gr in zip(params, grads):
            p.grad = gr.clone()
        if max_norm is None:
            # max_norm a little above the norm: torch still scales by max_norm/(norm+1e-6) > 1 clamped to 1
            nrm = torch.norm(torch.stack([torch.norm(gr) for gr in grads]))
            max_norm = f32(nrm.item() * 1.001)
        before = torch.cat([gr.reshape(-1) for gr in grads])
        total = torch.nn.utils.clip_grad_norm_(params, f32(max_norm))
        after = torch.cat([p.grad.reshape(-1) for p in params])
        w.rec("clip.%s.meta" % name, [len(shapes), f32(max_norm)])
        w.rec("clip.%s.shapes" % name, [v for s in shapes for v in s], ints=True)
        w.rec("clip.%s.grads" % name, before)
        w.rec("clip.%s.norm" % name, total.reshape(1))
        w.rec("clip.%s.clipped" % name, after)
        n64 = math.sqrt(sum(float(v) ** 2 for v in before.double()))
        noise.append(("clip.%s norm" % name, abs(total.item() - n64) / n64))

    for name, lr, step_size, gamma, n in (("half7", 0.1, 7, 0.5, 30), ("tenth10", 1.0, 10, 0.1, 30),
                                          ("every1", 0.05, 1, 0.9, 30)):
        p = torch.zeros(1, requires_grad=True)
        opt = torch.optim.SGD([p], lr=f32(lr))
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=step_size, gamma=f32(gamma))
        lrs = []
        for _ in range(n):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        w.rec("steplr.%s.meta" % name, [f32(lr), step_size, f32(gamma), n])
        w.rec("steplr.%s.lr" % name, lrs)

    x1, y1, x2, y2 = x[:4], y[:4], x[4:], y[4:]
    W = W0.clone().requires_grad_(True)
    b = b0.clone().requires_grad_(True)
    loss = F.mse_loss(x1 @ W + b, y1) + F.mse_loss(x2 @ W + b, y2)
    loss.backward()
    w.rec("accum.x1", x1)
    w.rec("accum.y1", y1)
    w.rec("accum.x2", x2)
    w.rec("accum.y2", y2)
    w.rec("accum.gW", W.grad)
    w.rec("accum.gb", b.grad)
    w.save()


def main():
    noise = []
    x, y, W0, b0 = gen_optim()
    gen_losses(noise)
    gen_misc(x, y, W0, b0, noise)
    worst = max(noise, key=lambda t: t[1])
    print("float32 torch vs float64 torch: worst relative difference %.3g (%s)" % (worst[1], worst[0]))
    if "-v" in sys.argv:
        for what, e in noise:
            print("  %-32s %.3g" % (what, e))
    total = sum(os.path.getsize(os.path.join(OUTDIR, f)) for f in os.listdir(OUTDIR))
    print("fixtures: %d bytes in %s" % (total, os.path.relpath(OUTDIR)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
