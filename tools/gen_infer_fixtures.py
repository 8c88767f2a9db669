#!/usr/bin/python3
"""Write the PyTorch reference fixtures of the attn-infer tool (tools/attn_infer.c).

Run from anywhere with the Python that has torch (Debian's python3-torch 1.13):

    /usr/bin/python3 tools/gen_infer_fixtures.py

It writes tests/fixtures/infer/ (about 125 KB). The output is deterministic
(fixed seeds, float32, CPU, one thread) and the files are committed, so the
tests never need torch. tests/test_infer.c runs the tool on each case with the
command line listed in CASES below (the same table is written out there) and
compares its output with CASE.out.npy.

FILES (CASE is a case name from CASES)
-----
  CASE.safetensors   the module's state_dict, PyTorch's names, float32 (F16
                     or BF16 for the cases so marked in CASES: torch then
                     runs the parameters rounded to that type). The
                     safetensors format is written here by hand (the
                     `safetensors` package is not needed): 8-byte little-endian
                     header length N, N bytes of JSON header
                     {"__metadata__": {"format": "pt"}, NAME: {"dtype": "F32",
                     "shape": [...], "data_offsets": [begin, end]}, ...}
                     padded with spaces to a multiple of 8 (as the safetensors
                     library does), then the raw little-endian data; offsets
                     count from the start of the data. Tensors are stored in
                     state_dict order.
  CASE.input.npy     float32 (B, T, d): --input (src for the transformer)
  CASE.memory.npy    float32 (B, S, d): --memory (decoder kinds)
  CASE.target.npy    float32 (B, T', d): --target (transformer: tgt)
  CASE.out.npy       float32 (B, T or T', d): what PyTorch returned
The modules are torch.nn's, batch_first=True, dropout=0, in eval mode and run
under torch.no_grad() - the way one runs inference, so torch may take its
inference fast paths (they agree with the regular path to ~1e-6). --causal is
the bool mask triu(ones(T, T), 1) on the self-attention of the input (MHA's
attn_mask, the encoders' src_mask/mask) or of tgt (tgt_mask of the decoders
and of nn.Transformer); nothing else is masked. LayerNorm eps is 1e-5.

The parameters are not torch's initial values: every matrix is drawn
N(0, 1/fan_in), every bias N(0, 0.2^2), every LayerNorm weight
1 + N(0, 0.2^2), so a parameter that is loaded under the wrong name, or not
loaded, shows in the output.

Bad models, for the error tests (each from the enc_relu model):
  bad_missing.safetensors   linear2.bias left out
  bad_shape.safetensors     linear1.bias stored with shape (15,) instead of (16,)
  bad_extra.safetensors     an extra tensor "extra.weight" (the tool loads
                            strictly: a tensor that is no parameter is an error)
  bad_ndim.safetensors      self_attn.in_proj_weight stored as 1-D (192,)
  bad_gap.safetensors       a 2-layer nn.TransformerEncoder (d 8, final norm) whose
                            layers.1.* are named layers.2.*: layer 1 is missing
  bad_input4d.npy           a (1, 2, 4, 8) input (not (B, T, d))

The generator also prints, per case, how far torch's float32 output is from
the same module run in float64, relative to the output's largest entry
(the tests allow 1e-4 of the same measure against the float32 output).
"""
import json
import os
import struct

import numpy as np
import torch
import torch.nn as nn

torch.set_num_threads(1)
torch.set_default_dtype(torch.float32)

HERE = os.path.dirname(os.path.abspath(__file__))
OUTDIR = os.path.join(HERE, "..", "tests", "fixtures", "infer")

# name, arch, flags, d_model, heads, dim_feedforward, layers (enc, dec), final norm, B, T, S (memory / tgt length)
#   arch as the tool spells it; flags: subset of norm-first, gelu, causal, nobias (MHA bias=False),
#   f16 / bf16 (the file stores the parameters as F16 / BF16; torch runs the same rounded values in float32)
CASES = [
    ("mha",            "mha",           [],                               8, 2, 0,  (0, 0), 0, 2, 4, 0),
    ("mha_causal",     "mha",           ["causal"],                       12, 3, 0, (0, 0), 0, 2, 5, 0),
    ("mha_nobias",     "mha",           ["nobias", "causal"],             8, 4, 0,  (0, 0), 0, 1, 3, 0),
    ("enc_relu",       "encoder-layer", [],                               8, 2, 16, (1, 0), 0, 2, 4, 0),
    ("enc_gelu_pre",   "encoder-layer", ["norm-first", "gelu", "causal"], 8, 2, 12, (1, 0), 0, 2, 5, 0),
    ("dec_relu",       "decoder-layer", ["causal"],                       8, 2, 16, (0, 1), 0, 2, 4, 3),
    ("dec_gelu_pre",   "decoder-layer", ["norm-first", "gelu"],           12, 4, 8, (0, 1), 0, 2, 3, 5),
    ("encoder",        "encoder",       ["gelu", "causal"],               8, 2, 16, (2, 0), 1, 2, 4, 0),
    ("encoder_pre",    "encoder",       ["norm-first"],                   8, 1, 8,  (1, 0), 0, 1, 5, 0),
    ("decoder",        "decoder",       ["norm-first", "causal"],         8, 2, 16, (0, 2), 1, 2, 4, 3),
    ("decoder_nonorm", "decoder",       ["gelu"],                         8, 2, 8,  (0, 2), 0, 1, 3, 4),
    ("tf",             "transformer",   ["causal"],                       8, 2, 16, (1, 2), 1, 2, 4, 3),
    ("tf_pre_gelu",    "transformer",   ["norm-first", "gelu"],           12, 3, 8, (2, 1), 1, 2, 3, 5),
    ("mha_bf16",       "mha",           ["bf16"],                         8, 2, 0,  (0, 0), 0, 2, 3, 0),
    ("dec_f16",        "decoder-layer", ["f16", "gelu", "causal"],        8, 2, 16, (0, 1), 0, 2, 4, 3),
]


def randomize(model, g):
    """Matrices N(0, 1/fan_in), biases N(0, 0.2^2), LayerNorm weights 1 + N(0, 0.2^2)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[1] ** 0.5)
            elif name.endswith("weight"):  # LayerNorm
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))


def build(arch, flags, d, h, ff, layers, final_norm):
    act = "gelu" if "gelu" in flags else "relu"
    nf = "norm-first" in flags
    kw = dict(d_model=d, nhead=h, dim_feedforward=ff, dropout=0.0, activation=act, batch_first=True,
              norm_first=nf, layer_norm_eps=1e-5)
    if arch == "mha":
        return nn.MultiheadAttention(d, h, dropout=0.0, bias="nobias" not in flags, batch_first=True)
    if arch == "encoder-layer":
        return nn.TransformerEncoderLayer(**kw)
    if arch == "decoder-layer":
        return nn.TransformerDecoderLayer(**kw)
    if arch == "encoder":
        return nn.TransformerEncoder(nn.TransformerEncoderLayer(**kw), layers[0],
                                     norm=nn.LayerNorm(d, eps=1e-5) if final_norm else None)
    if arch == "decoder":
        return nn.TransformerDecoder(nn.TransformerDecoderLayer(**kw), layers[1],
                                     norm=nn.LayerNorm(d, eps=1e-5) if final_norm else None)
    if arch == "transformer":
        return nn.Transformer(num_encoder_layers=layers[0], num_decoder_layers=layers[1], **kw)
    raise ValueError(arch)


def run(model, arch, causal, x, other):
    def mask(T):
        return torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1) if causal else None
    if arch == "mha":
        return model(x, x, x, attn_mask=mask(x.shape[1]), need_weights=False)[0]
    if arch in ("encoder-layer", "encoder"):
        if arch == "encoder":
            return model(x, mask=mask(x.shape[1]))
        return model(x, src_mask=mask(x.shape[1]))
    if arch in ("decoder-layer", "decoder"):
        return model(x, other, tgt_mask=mask(x.shape[1]))
    return model(x, other, tgt_mask=mask(other.shape[1]))


def round_params(model, flags):
    """Round the parameters to F16 / BF16 and back, as the file will hold them."""
    dt = torch.float16 if "f16" in flags else torch.bfloat16 if "bf16" in flags else None
    if dt is not None:
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.to(dt).float())


def tensor_bytes(a, dtype):
    if dtype == "F32":
        return np.ascontiguousarray(a, dtype="<f4").tobytes()
    if dtype == "F16":
        return np.ascontiguousarray(a, dtype="<f2").tobytes()
    # BF16: the top 16 bits of the float32 (the values are already rounded to BF16 exactly)
    u = np.ascontiguousarray(a, dtype="<f4").view("<u4")
    assert ((u & 0xFFFF) == 0).all()
    return (u >> 16).astype("<u2").tobytes()


def write_safetensors(path, tensors, dtype="F32"):
    """tensors: list of (name, numpy array), written as dtype (F32, F16, BF16) in this order."""
    header = {"__metadata__": {"format": "pt"}}
    blobs, off = [], 0
    for name, a in tensors:
        b = tensor_bytes(a, dtype)
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)


def state_list(model):
    return [(k, v.detach().numpy().astype(np.float32)) for k, v in model.state_dict().items()]


def npy(path, a):
    np.save(path, np.ascontiguousarray(a, dtype="<f4"))


def main():
    os.makedirs(OUTDIR, exist_ok=True)
    for f in os.listdir(OUTDIR):
        if f.endswith(".npy") or f.endswith(".safetensors"):
            os.remove(os.path.join(OUTDIR, f))
    worst = 0.0
    for ci, (name, arch, flags, d, h, ff, layers, final_norm, B, T, S) in enumerate(CASES):
        g = torch.Generator().manual_seed(9100 + ci)
        model = build(arch, flags, d, h, ff, layers, final_norm)
        randomize(model, g)
        round_params(model, flags)
        model.eval()
        x = torch.randn(B, T, d, generator=g)
        other = torch.randn(B, S, d, generator=g) if S else None
        causal = "causal" in flags
        with torch.no_grad():
            out = run(model, arch, causal, x, other)
            m64 = build(arch, flags, d, h, ff, layers, final_norm).double()
            m64.load_state_dict(model.state_dict())
            m64.eval()
            out64 = run(m64, arch, causal, x.double(), other.double() if other is not None else None)
        err = ((out.double() - out64).abs().max() / out64.abs().max()).item()
        worst = max(worst, err)
        dtype = "F16" if "f16" in flags else "BF16" if "bf16" in flags else "F32"
        write_safetensors(os.path.join(OUTDIR, name + ".safetensors"), state_list(model), dtype)
        npy(os.path.join(OUTDIR, name + ".input.npy"), x.numpy())
        if other is not None:
            npy(os.path.join(OUTDIR, name + (".target.npy" if arch == "transformer" else ".memory.npy")),
                other.numpy())
        npy(os.path.join(OUTDIR, name + ".out.npy"), out.numpy())
        print("%-15s %-13s %-28s out %s  |f32 - f64| / max|f64| = %.2g" % (
            name, arch, " ".join(flags) or "-", tuple(out.shape), err))

    # bad models, from enc_relu's
    base = build("encoder-layer", [], 8, 2, 16, (1, 0), 0)
    randomize(base, torch.Generator().manual_seed(9199))
    sd = state_list(base)
    write_safetensors(os.path.join(OUTDIR, "bad_missing.safetensors"), [t for t in sd if t[0] != "linear2.bias"])
    write_safetensors(os.path.join(OUTDIR, "bad_shape.safetensors"),
                      [(k, v[:15] if k == "linear1.bias" else v) for k, v in sd])
    write_safetensors(os.path.join(OUTDIR, "bad_extra.safetensors"),
                      sd + [("extra.weight", np.ones((2, 2), np.float32))])
    write_safetensors(os.path.join(OUTDIR, "bad_ndim.safetensors"),
                      [(k, v.reshape(-1) if k == "self_attn.in_proj_weight" else v) for k, v in sd])
    stack = build("encoder", [], 8, 2, 16, (2, 0), 1)
    randomize(stack, torch.Generator().manual_seed(9198))
    write_safetensors(os.path.join(OUTDIR, "bad_gap.safetensors"),
                      [(k.replace("layers.1.", "layers.2."), v) for k, v in state_list(stack)])
    npy(os.path.join(OUTDIR, "bad_input4d.npy"), np.zeros((1, 2, 4, 8), np.float32))
    total = sum(os.path.getsize(os.path.join(OUTDIR, f)) for f in os.listdir(OUTDIR))
    print("worst |f32 - f64| / max|f64| %.2g; %d files, %d bytes in %s" % (
        worst, len(os.listdir(OUTDIR)), total, os.path.normpath(OUTDIR)))


if __name__ == "__main__":
    main()
