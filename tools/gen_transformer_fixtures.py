#!/usr/bin/python3
"""Write the PyTorch reference values for attention and the Transformer layers.

Run from anywhere with the Python that has torch (Debian's python3-torch 1.13):

    /usr/bin/python3 tools/gen_transformer_fixtures.py [-v]

It writes six files under tests/fixtures/transformer_*.txt (about 1.36 MB
together; the list is below). The output is deterministic (fixed seeds,
float32, CPU, one thread: two runs give the same bytes) and the files are
committed, so the tests never need torch. It also prints how far
torch's float32 results are from the same computation in float64 (the noise a
tolerance has to allow for) and what torch's "fast path" does differently;
-v prints these per case.

FILE FORMAT (the one of tools/gen_train_fixtures.py; tests/test_train.c's
fx_load() reads it unchanged)
-----------
A file is a sequence of records. Lines starting with '#' are comments. A record
is a header line

    NAME COUNT

(NAME: no whitespace, at most 63 characters, made of letters, digits and
'.', '_', '-', ':'; COUNT: a decimal integer >= 0) followed by exactly COUNT
numbers separated by whitespace (8 per line). Every number is a float32 value
written with the shortest decimal that reads back as the same float32
(numpy's str), so a correctly rounded strtod followed by a cast to float gives
the bits torch had; integers (sizes, flags, booleans 0/1) are written as plain
integers. Arrays are row-major (C order) in the shape given. No NaN or
infinity is ever written: where torch's output is NaN the record holds 0 and
a companion record CASE.out_nan (same shape, 1 = torch gave NaN) says where.

Every record of a case is named CASE.<what>, CASE being the case name listed
below (a few letters and digits, no '.'). Before each case the file has
comment lines with its description and its parameter names in state_dict order.

MASK CONVENTIONS (PyTorch's, recorded as torch got them)
----------------
  bool masks (1 = True): True means "masked out / may not attend".
    key_padding_mask-like records (B, Tk): 1 = that key is padding.
    attn_mask/src_mask/tgt_mask/memory_mask (Tq, Tk) when bool: 1 = query i
    may not attend to key j. The causal mask is triu(ones(T, T), diagonal=1):
    1 above the diagonal (key j > query i).
  float masks: added to the scaled scores QK^T/sqrt(d_head) before softmax.
  Both combine: torch turns bool masks into 0/-inf float masks; a bool
  key_padding_mask on top of a float attn_mask REPLACES those entries with
  -inf (masked_fill), which is the same as adding -inf.
  Padding in these fixtures is a suffix (positions t >= length[b] are pad)
  except where a case says otherwise; CASE.<mask name>_lengths holds the
  lengths whenever the mask is a suffix mask.
  A query row whose keys are all masked gives NaN in torch (softmax of all
  -inf); the NaN then fills that row of everything downstream of it (in a
  stack, also every row of a later layer that attends to it). Padded
  QUERY positions are NOT masked by torch: a padded position of src/tgt still
  attends to the unmasked keys and gets ordinary finite values, which are
  recorded like any other (and weighted by W, so their grads count).

WHAT IS IN THEM
---------------
transformer_sdpa.txt   scaled dot-product attention, computed in float64
    from the formula (not by torch's kernels), rounded to float32 at the end.
    Layout (B, H, T, d), the fused kernel's view of one attention call:
      S = Q K^T * scale + mask ; P = softmax_rows(S) ; out = P V
    with mask = -inf where the causal rule or the key padding masks a key,
    plus the additive float mask where there is one.
    Records of case CASE:
      CASE.config    10 numbers: B H Tq Tk d causal has_kpm has_add
                     has_probs scale
                     causal: 0 none, 1 top-left (key j masked for query i
                     when j > i; torch's triu(ones(Tq,Tk),1)), 2 bottom-right
                     (j > i + Tk - Tq: the last query sees every key, the
                     KV-cache convention). scale = 1/sqrt(d) (as float32).
      CASE.q (B,H,Tq,d)  CASE.k (B,H,Tk,d)  CASE.v (B,H,Tk,d)
      CASE.key_padding_mask (B,Tk)   when has_kpm; 1 = key is padding
      CASE.lengths (B)               when has_kpm and the mask is a suffix
      CASE.add_mask (Tq,Tk)          when has_add; broadcast over B and H
      CASE.out (B,H,Tq,d)
      CASE.lse (B,H,Tq)      natural-log logsumexp of S's row (the value a
                             fused kernel saves for its backward)
      CASE.out_nan (B,H,Tq,d) only where some row is fully masked: 1 where
                             torch's formula gives NaN (out and lse hold 0
                             there; the true lse is -inf)
      CASE.probs (B,H,Tq,Tk) P, when has_probs (0 in fully masked rows)
      CASE.W (B,H,Tq,d)      the output weighting; loss = sum(out * W)
      CASE.grad:q, CASE.grad:k, CASE.grad:v   d loss / d q, k, v.
                             Where a row is fully masked the grads are those
                             of the function whose fully masked rows output
                             the constant 0 (P row = 0, no grad through it):
                             what a kernel that skips such rows computes. (In
                             torch the NaN row would make every grad NaN.)
    Cases: basic, odd (Tq != Tk, d 5), causal, causaltl (top-left, Tq 3
    Tk 6), causalbr (bottom-right, Tq 3 Tk 6), pad, causalpad, add, all
    (causal + pad + add), leftpad (causal + left padding: the first rows of
    batch 1 are fully masked -> NaN), len0 (one batch item has length 0: all
    its rows NaN), long (T 67, d 8, causal + pad 60: crosses a 64-wide tile
    and every smaller power of two; no probs), longx (Tq 9, Tk 70, d 8,
    add + pad 61; no probs).

transformer_mha.txt, transformer_encoder_layer.txt,
transformer_decoder_layer.txt, transformer_stacks.txt, transformer_full.txt
    torch.nn modules, float32, CPU, run the way training runs them
    (see FAST PATH below), batch_first=True, dropout=0.0.
    Records of case CASE:
      CASE.config   22 numbers:
         0 kind: 0 nn.MultiheadAttention, 1 nn.TransformerEncoderLayer,
           2 nn.TransformerDecoderLayer, 3 nn.TransformerEncoder,
           4 nn.TransformerDecoder, 5 nn.Transformer
         1 d_model (embed_dim)      2 nhead
         3 dim_feedforward (0 for MHA)
         4 activation: 0 relu, 1 gelu (erf GELU, F.gelu's default)
         5 norm_first              6 layer_norm_eps
         7 bias (MHA's bias flag; 1 for the layers, which have no such
           argument in torch 1.13)
         8 kdim                    9 vdim (= d_model except in MHA cases)
        10 encoder layers (EncoderLayer 1, Encoder/Transformer N, else 0)
        11 decoder layers (DecoderLayer 1, Decoder/Transformer N, else 0)
        12 final norm (Encoder/Decoder: a norm= LayerNorm was given;
           Transformer: 1, it always has encoder.norm and decoder.norm)
        13 dropout (0)            14 batch_first (1)
        15 B
        16 causal: 1 when the self-attention mask argument (attn_mask for
           MHA, src_mask/mask for encoders, tgt_mask for decoders) is the
           bool causal mask triu(ones(T,T),1) (it is also recorded in full)
        17 need_weights (MHA)     18 average_attn_weights (MHA)
        19 self-attention (MHA: query, key and value are one tensor; 1 for
           the layers)
        20 self-attention mask argument: 0 none, 1 bool, 2 float (additive)
        21 memory_mask / cross-attention attn_mask: 0 none, 1 bool, 2 float
      CASE.n_params 1          number of parameters (state_dict entries)
      inputs, named as torch's forward arguments, each with its shape:
        MHA:      CASE.query, CASE.key, CASE.value (key and value absent
                  for self-attention, where all three are CASE.query)
        encoders: CASE.src       decoders: CASE.tgt, CASE.memory
        Transformer: CASE.src, CASE.tgt
        CASE.shape:<input> (3 ints: B T features)
      masks, named as torch's forward arguments, present only when passed:
        MHA: CASE.attn_mask (Tq,Tk), CASE.key_padding_mask (B,Tk)
        EncoderLayer/Encoder/Transformer: CASE.src_mask (T,T) (torch's
          'mask' argument for nn.TransformerEncoder),
          CASE.src_key_padding_mask (B,T)
        DecoderLayer/Decoder/Transformer: CASE.tgt_mask, CASE.memory_mask
          (Tt,Tm), CASE.tgt_key_padding_mask, CASE.memory_key_padding_mask
        CASE.<mask>_lengths (B): per batch item, the number of non-pad
          positions, for each suffix key padding mask
          (e.g. CASE.src_key_padding_mask_lengths)
        bool masks are written 0/1; float masks as their values (finite)
      CASE.param:<name>  every parameter, in state_dict order, with exactly
                         PyTorch's state_dict name, e.g.
                         e0.param:self_attn.in_proj_weight,
                         tf.param:decoder.layers.1.multihead_attn.out_proj.bias
      CASE.shape:<name>  its shape (ndim ints)
      CASE.out           the output (B, Tq, d_model); CASE.shape:out
      CASE.out_nan       only when torch's output has NaN (see above)
      CASE.attn_weights  MHA with need_weights: (B,Tq,Tk) averaged over
                         heads, or (B,H,Tq,Tk) when average_attn_weights=0
      CASE.W             the output weighting (shape of out); the loss is
                         sum(out * W) (the attention weights are not in it)
      CASE.grad:<input>  d loss / d input (CASE.grad:query, grad:key,
                         grad:value, grad:src, grad:tgt, grad:memory)
      CASE.grad:<name>   d loss / d parameter, for every parameter
      A case whose output has NaN has no W and no grads.
    State_dict names, for reference:
      MHA: in_proj_weight (3E,E) [or q_proj_weight (E,E), k_proj_weight
        (E,kdim), v_proj_weight (E,vdim) when kdim/vdim != E], in_proj_bias
        (3E), out_proj.weight (E,E), out_proj.bias (E) (biases absent when
        bias=False). in_proj rows are [q; k; v].
      EncoderLayer: self_attn.*, linear1.weight (F,E), linear1.bias,
        linear2.weight (E,F), linear2.bias, norm1.weight, norm1.bias,
        norm2.weight, norm2.bias
      DecoderLayer: self_attn.*, multihead_attn.*, linear1.*, linear2.*,
        norm1.*, norm2.*, norm3.*
      Encoder: layers.<i>.<EncoderLayer name>, norm.weight, norm.bias
      Decoder: layers.<i>.<DecoderLayer name>, norm.weight, norm.bias
      Transformer: encoder.<Encoder name>, decoder.<Decoder name>
    The parameters are not torch's initial values: every matrix is drawn
    N(0, 1/fan_in), every bias N(0, 0.2^2), every LayerNorm weight
    1 + N(0, 0.2^2), separately for each layer of a stack, so a bias that
    is dropped or a layer that reuses another's weights shows.

    transformer_mha.txt cases:
      self     E16 h4, B2 T5, need_weights (averaged)
      cross    E12 h3, B3 Tq4 Tk7, key != value, need_weights
      kvdim    E16 h2, kdim 10 vdim 6, B2 Tq3 Tk5, need_weights
      nobias   E8 h2, bias=False, self, B3 T6, need_weights=False
      causal   E16 h4, self, B2 T7, bool causal attn_mask, need_weights
      kpm      E12 h2, cross, B3 Tq5 Tk6, key_padding_mask lengths 6 4 1
      float    E8 h1, self, B2 T5, float attn_mask
      causkpm  E15 h5, self, B2 T7, causal + key_padding_mask 7 3
      floatkpm E12 h3, cross, B2 Tq4 Tk5, float attn_mask + kpm 5 2
      kvnobias E12 h4, kdim 7 vdim 9, bias=False, B2 Tq4 Tk3, bool
               attn_mask (not causal), need_weights
      perhead  E12 h3, self, B2 T4, causal, average_attn_weights=False
      one      E9 h3, self, B3 T1 (a single token), need_weights
    transformer_encoder_layer.txt cases (nn.TransformerEncoderLayer):
      e0 post relu none    e1 pre relu causal    e2 post gelu pad
      e3 pre gelu causal+pad  e4 post relu causal+pad  e5 pre relu pad
      e6 post gelu causal (eps 1e-3)  e7 pre gelu none
      enan post relu causal + LEFT padding (batch 1's first 2 keys are
           pad): query rows 0 and 1 of batch 1 see no key -> NaN rows
           (forward only; the finite rows are torch's values)
    transformer_decoder_layer.txt cases (nn.TransformerDecoderLayer):
      d0 post relu, no masks     d1 pre relu causal, tgt+memory padding
      d2 post gelu causal, memory padding   d3 pre gelu, tgt padding
      d4 post relu causal, float memory_mask   d5 pre gelu causal, all
         padding, Tt 1 Tm 1
    transformer_stacks.txt cases (2 layers each):
      enc2   Encoder, post relu, causal + pad, no final norm
      enc2n  Encoder, pre gelu, pad, final norm
      dec2   Decoder, post gelu, causal + memory pad, no final norm
      dec2n  Decoder, pre relu, causal + tgt pad + memory pad, final norm
    transformer_full.txt cases (nn.Transformer, 2 encoder + 2 decoder
    layers, tgt_mask causal, src/tgt key padding, memory_key_padding_mask =
    src_key_padding_mask):
      tf     post-LN relu      tfpre  pre-LN gelu

FAST PATH
---------
torch 1.13 has inference fast paths (torch._native_multi_head_attention,
torch._transformer_encoder_layer_fwd, and nn.TransformerEncoder's conversion
of a padded batch to a nested tensor) that are taken in eval mode when no
input or parameter needs grad (plus other conditions: batch_first, even
nhead, no src_mask, ...). The nested-tensor path returns 0 at padded
positions instead of the values the regular path computes. These fixtures
never take them: the modules are in eval mode (dropout is 0 anyway, so train
and eval agree) but every input and parameter requires grad and grad is on,
which rules every fast path out; nn.TransformerEncoder is also built with
enable_nested_tensor=False. The recorded values are those of the regular
(training) path, the one a C implementation of forward + backward has to
match. Every recorded run is checked not to have entered a fast path (the
generator counts calls into those torch functions). The generator reruns each
eligible case through the fast path and prints how it differs:
  - where the fast path is taken its values equal the regular path's to
    within 1e-6 (0 to 8e-7 here), also at padded query positions, EXCEPT
  - nn.TransformerEncoder with enable_nested_tensor=True (its default) and a
    src_key_padding_mask returns exactly 0 at padded positions, where the
    regular path gives ordinary values;
  - a batch item whose keys are all padding gives NaN on the regular path
    and on the layer/MHA fast paths, but 0 on the nested-tensor path;
  - nn.MultiheadAttention(bias=False) cannot run its fast path at all in
    1.13 (TypeError: _native_multi_head_attention(): argument 'qkv_bias'
    must be Tensor, not NoneType).

NOISE (what a tolerance has to allow for)
-----
The generator runs every module case again in float64 (the same parameters
and inputs) and prints the worst difference of torch's float32 results from
it. Elementwise, |f32 - f64| / max(|f64|, 1e-2 max|f64| of the tensor) (the
measure tests/test_train.c uses), it reaches 1.0e-5 for outputs and 5.2e-5
for grads (2-layer stacks, bias grads that are sums of many cancelling
terms). Measured against the tensor's largest entry,
|f32 - f64| / max|f64|, it stays below 3.3e-7 for outputs and 1.1e-6 for
grads. So "1e-5 relative" parity holds in the second sense (or elementwise
against a float64 reference), not elementwise against these float32 values
with a 1e-2 floor. The sdpa fixtures are float64 results rounded once to
float32 (torch's float32 attention is within 7e-6 of them, first measure).
"""
import copy
import math
import os
import sys
import textwrap
import warnings

import numpy as np
import torch
import torch.nn as nn

torch.set_num_threads(1)
torch.set_default_dtype(torch.float32)

HERE = os.path.dirname(os.path.abspath(__file__))
OUTDIR = os.path.join(HERE, "..", "tests", "fixtures")

VERBOSE = "-v" in sys.argv
NOISE = []      # (what, worst relative difference float32 vs float64, floor 1e-2 max|ref|)
NOISE_MAX = []  # the same with floor max|ref| (error relative to the tensor's largest entry)
FASTPATH = []   # (what, note)

MHA, ENC_LAYER, DEC_LAYER, ENCODER, DECODER, TRANSFORMER = range(6)

# Count calls into torch's inference fast paths, to prove the fixtures never take them and to say when the
# comparison in the report did.
FAST_CALLS = {"n": 0}


def _counting(fn):
    def wrapper(*args, **kwargs):
        FAST_CALLS["n"] += 1
        return fn(*args, **kwargs)
    return wrapper


for _fast in ("_transformer_encoder_layer_fwd", "_native_multi_head_attention", "_nested_tensor_from_mask"):
    setattr(torch, _fast, _counting(getattr(torch, _fast)))


class Writer:
    def __init__(self, name, comment):
        self.name = name
        self.lines = ["# %s - written by tools/gen_transformer_fixtures.py (format: see there); do not edit." % name]
        for c in comment.strip().splitlines():
            self.lines.append("# " + c)
        self.names = set()

    def comment(self, text):
        lines = text.strip().splitlines() or [""]
        for c in lines:
            for part in textwrap.wrap(c, 110, subsequent_indent="    ", break_on_hyphens=False) or [""]:
                self.lines.append(("# " + part).rstrip())

    def rec(self, name, values, ints=False, mixed=False):
        """ints: every value an integer; mixed: integer-valued entries written as integers, the rest as float32."""
        assert name not in self.names, name
        assert len(name) <= 63 and all(ch.isalnum() or ch in "._-:" for ch in name), name
        self.names.add(name)
        if isinstance(values, torch.Tensor):
            values = values.detach().cpu()
            if values.dtype == torch.bool:
                values = values.to(torch.int64)
                ints = True
            values = values.numpy()
        arr = np.asarray(values).reshape(-1)
        out = []
        for v in arr:
            if ints or (mixed and float(v) == int(v)):
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
        print("wrote %s (%d bytes, %d records)" % (os.path.relpath(path), os.path.getsize(path), len(self.names)))


def rel_diff(a32, a64, floor_frac=1e-2):
    """Worst |a32 - a64| / max(|a64|, floor_frac * max|a64|) (test_train.c's measure with FLOOR = 1e-2 max)."""
    a32 = a32.detach().double()
    a64 = a64.detach().double()
    fin = torch.isfinite(a64)
    if not fin.any():
        return 0.0
    a32, a64 = a32[fin], a64[fin]
    floor = floor_frac * a64.abs().max().item() or 1e-30
    return ((a32 - a64).abs() / a64.abs().clamp(min=floor)).max().item()


def causal(tq, tk=None):
    tk = tq if tk is None else tk
    return torch.triu(torch.ones(tq, tk, dtype=torch.bool), diagonal=1)


def suffix_kpm(lengths, t):
    return torch.arange(t)[None, :] >= torch.tensor(lengths)[:, None]


# ---------------------------------------------------------------------------
# Scaled dot-product attention from the formula, float64
# ---------------------------------------------------------------------------
def sdpa_masks(B, H, Tq, Tk, causal_kind, kpm, add):
    """(boolean 'masked' (B,H,Tq,Tk), additive float64 (Tq,Tk) or None)"""
    masked = torch.zeros(B, H, Tq, Tk, dtype=torch.bool)
    i = torch.arange(Tq)[:, None]
    j = torch.arange(Tk)[None, :]
    if causal_kind == 1:
        masked |= (j > i)[None, None]
    elif causal_kind == 2:
        masked |= (j > i + (Tk - Tq))[None, None]
    if kpm is not None:
        masked |= kpm[:, None, None, :]
    return masked


def sdpa_forward(q, k, v, masked, add, scale, zero_rows):
    s = (q @ k.transpose(-2, -1)) * scale
    if add is not None:
        s = s + add
    if not zero_rows:
        s = s.masked_fill(masked, float("-inf"))
        p = torch.softmax(s, dim=-1)
        lse = torch.logsumexp(s, dim=-1)
        return p @ v, p, lse
    # fully masked rows: P = 0 (what a kernel that skips them does)
    s = s.masked_fill(masked, float("-inf"))
    m = s.max(dim=-1, keepdim=True).values
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m)).detach()
    e = torch.exp(s - m)
    den = e.sum(dim=-1, keepdim=True)
    p = e / torch.where(den > 0, den, torch.ones_like(den))
    return p @ v, p, None


def sdpa_case(w, g, name, B, H, Tq, Tk, d, causal_kind=0, lengths=None, kpm=None, add=False, probs=True,
              desc=""):
    q = (1.3 * torch.randn(B, H, Tq, d, generator=g))
    k = (1.3 * torch.randn(B, H, Tk, d, generator=g))
    v = torch.randn(B, H, Tk, d, generator=g)
    if lengths is not None:
        kpm = suffix_kpm(lengths, Tk)
    addm = torch.randn(Tq, Tk, generator=g) if add else None
    W = torch.randn(B, H, Tq, d, generator=g)
    scale = float(np.float32(1.0 / math.sqrt(d)))

    masked = sdpa_masks(B, H, Tq, Tk, causal_kind, kpm, addm)
    q64, k64, v64 = (t.double().requires_grad_(True) for t in (q, k, v))
    add64 = addm.double() if addm is not None else None
    out_t, p_t, lse = sdpa_forward(q64.detach(), k64.detach(), v64.detach(), masked, add64, scale, False)
    nan = torch.isnan(out_t)
    out, p, _ = sdpa_forward(q64, k64, v64, masked, add64, scale, True)
    assert torch.allclose(out[~nan], out_t[~nan], rtol=1e-12, atol=1e-13)
    (out * W.double()).sum().backward()
    for t in (q64.grad, k64.grad, v64.grad):
        assert torch.isfinite(t).all()

    w.comment("")
    w.comment("sdpa case %s: %s" % (name, desc))
    w.rec(name + ".config", [B, H, Tq, Tk, d, causal_kind, int(kpm is not None), int(add), int(probs), scale],
          mixed=True)
    w.rec(name + ".q", q)
    w.rec(name + ".k", k)
    w.rec(name + ".v", v)
    if kpm is not None:
        w.rec(name + ".key_padding_mask", kpm)
        if lengths is not None:
            w.rec(name + ".lengths", lengths, ints=True)
    if addm is not None:
        w.rec(name + ".add_mask", addm)
    w.rec(name + ".out", torch.where(nan, torch.zeros_like(out_t), out_t))
    w.rec(name + ".lse", torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse)))
    if nan.any():
        w.rec(name + ".out_nan", nan)
    if probs:
        w.rec(name + ".probs", p.detach())
    w.rec(name + ".W", W)
    w.rec(name + ".grad:q", q64.grad)
    w.rec(name + ".grad:k", k64.grad)
    w.rec(name + ".grad:v", v64.grad)

    # sanity: torch's own float32 attention (the MHA internals) agrees where finite
    s32 = (q / math.sqrt(d)) @ k.transpose(-2, -1)
    if addm is not None:
        s32 = s32 + addm
    s32 = s32.masked_fill(masked, float("-inf"))
    o32 = torch.softmax(s32, -1) @ v
    assert torch.equal(torch.isnan(o32), nan), name
    NOISE.append(("sdpa.%s out (torch f32 vs f64 formula)" % name, rel_diff(o32[~nan], out_t[~nan])))
    if nan.any():
        print("  sdpa.%s: %d of %d output rows NaN in torch's formula (fully masked)" % (
            name, int(nan[..., 0].sum()), B * H * Tq))


def gen_sdpa():
    g = torch.Generator().manual_seed(4001)
    w = Writer("transformer_sdpa.txt", "Scaled dot-product attention references (float64 formula, float32 text).")
    sdpa_case(w, g, "basic", 2, 2, 5, 5, 8, desc="no mask")
    sdpa_case(w, g, "odd", 1, 3, 3, 7, 5, desc="Tq != Tk, odd head dim, no mask")
    sdpa_case(w, g, "causal", 2, 2, 7, 7, 8, causal_kind=1, desc="causal")
    sdpa_case(w, g, "causaltl", 1, 2, 3, 6, 4, causal_kind=1, desc="causal top-left, Tq < Tk")
    sdpa_case(w, g, "causalbr", 1, 2, 3, 6, 4, causal_kind=2, desc="causal bottom-right, Tq < Tk")
    sdpa_case(w, g, "pad", 3, 2, 4, 6, 6, lengths=[6, 2, 4], desc="key padding, lengths 6 2 4")
    sdpa_case(w, g, "causalpad", 2, 1, 6, 6, 8, causal_kind=1, lengths=[6, 3], desc="causal + key padding 6 3")
    sdpa_case(w, g, "add", 2, 2, 5, 4, 8, add=True, desc="additive float mask")
    sdpa_case(w, g, "all", 2, 3, 7, 7, 7, causal_kind=1, lengths=[5, 7], add=True,
              desc="causal + key padding 5 7 + additive mask")
    left = torch.zeros(2, 5, dtype=torch.bool)
    left[1, :2] = True
    sdpa_case(w, g, "leftpad", 2, 2, 5, 5, 4, causal_kind=1, kpm=left,
              desc="causal + left padding (batch 1 keys 0,1 are pad): rows 0,1 of batch 1 fully masked")
    sdpa_case(w, g, "len0", 2, 1, 3, 4, 4, lengths=[4, 0], desc="key padding 4 0: batch 1 fully masked")
    sdpa_case(w, g, "long", 1, 1, 67, 67, 8, causal_kind=1, lengths=[60], probs=False,
              desc="long: causal + key padding 60")
    sdpa_case(w, g, "longx", 1, 1, 9, 70, 8, lengths=[61], add=True, probs=False,
              desc="long keys: additive mask + key padding 61")
    w.save()


# ---------------------------------------------------------------------------
# torch.nn modules
# ---------------------------------------------------------------------------
def randomize(model, g):
    """Every parameter redrawn: matrices N(0, 1/fan_in), biases N(0, 0.04), LayerNorm weights 1 + N(0, 0.04)."""
    with torch.no_grad():
        for pname, p in model.named_parameters():
            parent = pname.rsplit(".", 1)[0] if "." in pname else ""
            mod = model.get_submodule(parent) if parent else model
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[1]))
            elif isinstance(mod, nn.LayerNorm) and pname.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))


def config_row(kind, d_model, nhead, dff=0, act="relu", norm_first=False, eps=1e-5, bias=True, kdim=None,
               vdim=None, n_enc=0, n_dec=0, final_norm=False, B=1, causal_flag=False, need_weights=False,
               average=True, self_attn=True, self_mask=0, mem_mask=0):
    return [kind, d_model, nhead, dff, {"relu": 0, "gelu": 1}[act], int(norm_first), float(np.float32(eps)),
            int(bias), kdim or d_model, vdim or d_model, n_enc, n_dec, int(final_norm), 0, 1, B, int(causal_flag),
            int(need_weights), int(average), int(self_attn), self_mask, mem_mask]


def mask_kind(m):
    if m is None:
        return 0
    return 1 if m.dtype == torch.bool else 2


def module_case(w, name, desc, model, cfg, inputs, masks, call, lengths=None, fastpath_ok=False):
    """inputs: dict forward-arg name -> float32 tensor; masks: dict arg name -> tensor or None;
    call(model, inputs, masks) -> (out, attn_weights or None); lengths: dict mask name -> list."""
    g = torch.Generator().manual_seed(sum(ord(c) * 31 ** i for i, c in enumerate(name)) % (2 ** 31))
    torch.manual_seed(1)
    randomize(model, g)
    model.eval()  # dropout is 0; eval only so nothing depends on the mode (grad on rules out the fast paths)
    masks = {k: v for k, v in masks.items() if v is not None}

    ins = {k: v.clone().requires_grad_(True) for k, v in inputs.items()}
    before = FAST_CALLS["n"]
    out, attnw = call(model, ins, masks)
    assert FAST_CALLS["n"] == before, "%s: the recorded run took a fast path" % name
    nan = torch.isnan(out)
    W = torch.randn(out.shape, generator=g)
    if not nan.any():
        (out * W).sum().backward()

    # float64 twin, for the noise report
    m64 = copy.deepcopy(model).double()
    ins64 = {k: v.detach().double().requires_grad_(True) for k, v in inputs.items()}
    masks64 = {k: (v.double() if v.is_floating_point() else v) for k, v in masks.items()}
    out64, attnw64 = call(m64, ins64, masks64)
    assert torch.equal(torch.isnan(out64), nan), name
    pairs = [("out", out, out64)]
    if attnw is not None:
        pairs.append(("attn_weights", attnw, attnw64))
    if not nan.any():
        (out64 * W.double()).sum().backward()
        for k in inputs:
            pairs.append(("grad:" + k, ins[k].grad, ins64[k].grad))
        p64 = dict(m64.named_parameters())
        for pname, p in model.named_parameters():
            pairs.append(("grad:" + pname, p.grad, p64[pname].grad))
    for what, a, b in pairs:
        NOISE.append(("%s.%s %s" % (w.name.split(".")[0], name, what), rel_diff(a, b)))
        NOISE_MAX.append(("%s.%s %s" % (w.name.split(".")[0], name, what), rel_diff(a, b, 1.0)))

    # what the inference fast path would have given
    if fastpath_ok:
        try:
            before = FAST_CALLS["n"]
            with torch.no_grad():
                fo, _ = call(model, {k: v.detach() for k, v in inputs.items()}, masks)
            if FAST_CALLS["n"] == before:
                fo = None  # not eligible (src_mask given, odd nhead, ...): the same path ran
        except Exception as ex:  # torch 1.13: MHA's fast path with bias=False passes None as a Tensor
            FASTPATH.append(("%s.%s" % (w.name.split(".")[0], name), "fast path raises %s: %s" % (
                type(ex).__name__, str(ex).splitlines()[0])))
            fo = None
    if fastpath_ok and fo is not None:
        fin = torch.isfinite(out) & torch.isfinite(fo)
        note = "max |fast - regular| %.3g" % ((fo - out.detach())[fin].abs().max().item() if fin.any() else 0.0)
        if not torch.equal(torch.isnan(fo), nan):
            note += "; NaN in regular path %d, in fast path %d" % (int(nan.sum()), int(torch.isnan(fo).sum()))
        if torch.isfinite(fo).all() and nan.any():
            note += "; fast path fills the NaN rows with finite values"
        for mname, lens in (lengths or {}).items():
            pads = masks[mname]
            if "src" in mname or mname == "key_padding_mask":
                at = pads[:, :, None].expand_as(out) if pads.shape[1] == out.shape[1] else None
                if at is not None and at.any():
                    note += "; at padded positions fast path max|out| %.3g, regular %.3g" % (
                        fo[at].abs().max().item(), out.detach()[at].abs().max().item())
        FASTPATH.append(("%s.%s" % (w.name.split(".")[0], name), note))

    sd = model.state_dict()
    w.comment("")
    w.comment("case %s: %s" % (name, desc))
    w.comment("parameters (state_dict order): " + " ".join(sd.keys()))
    w.rec(name + ".config", cfg, mixed=True)
    w.rec(name + ".n_params", [len(sd)], ints=True)
    for k, v in inputs.items():
        w.rec(name + "." + k, v)
        w.rec(name + ".shape:" + k, list(v.shape), ints=True)
    for k, v in masks.items():
        w.rec(name + "." + k, v)
    for k, v in (lengths or {}).items():
        w.rec(name + "." + k + "_lengths", v, ints=True)
    params = dict(model.named_parameters())
    assert list(params.keys()) == list(sd.keys()), (list(params.keys()), list(sd.keys()))
    for pname, p in sd.items():
        w.rec(name + ".param:" + pname, p)
        w.rec(name + ".shape:" + pname, list(p.shape), ints=True)
    w.rec(name + ".out", torch.where(nan, torch.zeros_like(out), out))
    w.rec(name + ".shape:out", list(out.shape), ints=True)
    if nan.any():
        w.rec(name + ".out_nan", nan)
        nrows = int(nan.all(dim=-1).sum())
        print("  %s: torch gives NaN in %d of %d output rows (no grads recorded)" % (
            name, nrows, out.shape[0] * out.shape[1]))
        return
    if attnw is not None:
        w.rec(name + ".attn_weights", attnw)
    w.rec(name + ".W", W)
    for k in inputs:
        assert torch.isfinite(ins[k].grad).all()
        w.rec(name + ".grad:" + k, ins[k].grad)
    for pname in sd:
        gr = params[pname].grad
        assert gr is not None and torch.isfinite(gr).all(), pname
        w.rec(name + ".grad:" + pname, gr)


def gen_mha():
    g = torch.Generator().manual_seed(4002)
    w = Writer("transformer_mha.txt", "nn.MultiheadAttention references (torch 1.13, float32, batch_first).")

    def case(name, desc, E, h, B, Tq, Tk=None, kdim=None, vdim=None, bias=True, self_attn=True, attn_mask=None,
             lengths=None, need_weights=True, average=True, cause=False):
        Tk = Tq if Tk is None else Tk
        model = nn.MultiheadAttention(E, h, dropout=0.0, bias=bias, kdim=kdim, vdim=vdim, batch_first=True)
        inputs = {"query": torch.randn(B, Tq, E, generator=g)}
        if not self_attn:
            inputs["key"] = torch.randn(B, Tk, kdim or E, generator=g)
            inputs["value"] = torch.randn(B, Tk, vdim or E, generator=g)
        masks = {"attn_mask": attn_mask,
                 "key_padding_mask": suffix_kpm(lengths, Tk) if lengths is not None else None}

        def call(m, ins, mk):
            q = ins["query"]
            k = ins.get("key", q)
            v = ins.get("value", q)
            return m(q, k, v, key_padding_mask=mk.get("key_padding_mask"), need_weights=need_weights,
                     attn_mask=mk.get("attn_mask"), average_attn_weights=average)

        cfg = config_row(MHA, E, h, bias=bias, kdim=kdim, vdim=vdim, B=B, causal_flag=cause,
                         need_weights=need_weights, average=average, self_attn=self_attn,
                         self_mask=mask_kind(attn_mask))
        module_case(w, name, desc, model, cfg, inputs, masks, call,
                    lengths={"key_padding_mask": lengths} if lengths is not None else None,
                    fastpath_ok=self_attn and attn_mask is None)

    case("self", "self-attention E16 h4 B2 T5, need_weights", 16, 4, 2, 5)
    case("cross", "cross-attention E12 h3 B3 Tq4 Tk7", 12, 3, 3, 4, 7, self_attn=False)
    case("kvdim", "kdim 10 vdim 6, E16 h2 B2 Tq3 Tk5", 16, 2, 2, 3, 5, kdim=10, vdim=6, self_attn=False)
    case("nobias", "bias=False, self, E8 h2 B3 T6, need_weights=False", 8, 2, 3, 6, bias=False,
         need_weights=False)
    case("causal", "self, bool causal attn_mask, E16 h4 B2 T7", 16, 4, 2, 7, attn_mask=causal(7), cause=True)
    case("kpm", "cross, key_padding_mask lengths 6 4 1, E12 h2 B3 Tq5 Tk6", 12, 2, 3, 5, 6, self_attn=False,
         lengths=[6, 4, 1])
    case("float", "self, float additive attn_mask, E8 h1 B2 T5", 8, 1, 2, 5,
         attn_mask=torch.randn(5, 5, generator=g))
    case("causkpm", "self, causal + key_padding_mask 7 3, E15 h5 B2 T7", 15, 5, 2, 7, attn_mask=causal(7),
         lengths=[7, 3], cause=True)
    case("floatkpm", "cross, float attn_mask + key_padding_mask 5 2, E12 h3 B2 Tq4 Tk5", 12, 3, 2, 4, 5,
         self_attn=False, attn_mask=torch.randn(4, 5, generator=g), lengths=[5, 2])
    bm = torch.tensor([[0, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 1]], dtype=torch.bool)
    case("kvnobias", "kdim 7 vdim 9, bias=False, bool attn_mask (not causal), E12 h4 B2 Tq4 Tk3", 12, 4, 2, 4, 3,
         kdim=7, vdim=9, bias=False, self_attn=False, attn_mask=bm)
    case("perhead", "self, causal, average_attn_weights=False, E12 h3 B2 T4", 12, 3, 2, 4, attn_mask=causal(4),
         average=False, cause=True)
    case("one", "self, a single token, E9 h3 B3 T1", 9, 3, 3, 1)
    w.save()


def enc_layer_case(w, g, name, desc, E, h, dff, act, norm_first, B, T, cause=False, lengths=None, kpm=None,
                   eps=1e-5):
    model = nn.TransformerEncoderLayer(E, h, dim_feedforward=dff, dropout=0.0, activation=act,
                                       layer_norm_eps=eps, batch_first=True, norm_first=norm_first)
    inputs = {"src": torch.randn(B, T, E, generator=g)}
    if lengths is not None:
        kpm = suffix_kpm(lengths, T)
    masks = {"src_mask": causal(T) if cause else None, "src_key_padding_mask": kpm}

    def call(m, ins, mk):
        return m(ins["src"], src_mask=mk.get("src_mask"), src_key_padding_mask=mk.get("src_key_padding_mask")), None

    cfg = config_row(ENC_LAYER, E, h, dff, act, norm_first, eps, n_enc=1, B=B, causal_flag=cause,
                     self_mask=1 if cause else 0)
    module_case(w, name, desc, model, cfg, inputs, masks, call,
                lengths={"src_key_padding_mask": lengths} if lengths is not None else None, fastpath_ok=True)


def gen_enc_layer():
    g = torch.Generator().manual_seed(4003)
    w = Writer("transformer_encoder_layer.txt", "nn.TransformerEncoderLayer references (torch 1.13, float32).")
    enc_layer_case(w, g, "e0", "post-LN relu, no mask, E8 h2 F16 B2 T5", 8, 2, 16, "relu", False, 2, 5)
    enc_layer_case(w, g, "e1", "pre-LN relu, causal, E12 h3 F20 B2 T6", 12, 3, 20, "relu", True, 2, 6, cause=True)
    enc_layer_case(w, g, "e2", "post-LN gelu, padding 4 2 5, E8 h4 F13 B3 T5", 8, 4, 13, "gelu", False, 3, 5,
                   lengths=[4, 2, 5])
    enc_layer_case(w, g, "e3", "pre-LN gelu, causal + padding 7 3, E16 h4 F24 B2 T7", 16, 4, 24, "gelu", True,
                   2, 7, cause=True, lengths=[7, 3])
    enc_layer_case(w, g, "e4", "post-LN relu, causal + padding 4 1 3 (padded query positions get finite values), "
                   "E10 h2 F18 B3 T4", 10, 2, 18, "relu", False, 3, 4, cause=True, lengths=[4, 1, 3])
    enc_layer_case(w, g, "e5", "pre-LN relu, padding 2, E8 h1 F8 B1 T3", 8, 1, 8, "relu", True, 1, 3,
                   lengths=[2])
    enc_layer_case(w, g, "e6", "post-LN gelu, causal, layer_norm_eps 1e-3, E9 h3 F11 B2 T7", 9, 3, 11, "gelu",
                   False, 2, 7, cause=True, eps=1e-3)
    enc_layer_case(w, g, "e7", "pre-LN gelu, no mask, E16 h2 F20 B3 T2", 16, 2, 20, "gelu", True, 3, 2)
    left = torch.zeros(2, 5, dtype=torch.bool)
    left[1, :2] = True
    enc_layer_case(w, g, "enan", "post-LN relu, causal + LEFT padding (batch 1 keys 0 1 are pad): rows 0 1 of "
                   "batch 1 see no key -> NaN, E8 h2 F12 B2 T5", 8, 2, 12, "relu", False, 2, 5, cause=True,
                   kpm=left)
    w.save()


def dec_layer_case(w, g, name, desc, E, h, dff, act, norm_first, B, Tt, Tm, cause=False, tgt_len=None,
                   mem_len=None, memory_mask=None):
    model = nn.TransformerDecoderLayer(E, h, dim_feedforward=dff, dropout=0.0, activation=act,
                                       batch_first=True, norm_first=norm_first)
    inputs = {"tgt": torch.randn(B, Tt, E, generator=g), "memory": torch.randn(B, Tm, E, generator=g)}
    masks = {"tgt_mask": causal(Tt) if cause else None, "memory_mask": memory_mask,
             "tgt_key_padding_mask": suffix_kpm(tgt_len, Tt) if tgt_len is not None else None,
             "memory_key_padding_mask": suffix_kpm(mem_len, Tm) if mem_len is not None else None}

    def call(m, ins, mk):
        return m(ins["tgt"], ins["memory"], tgt_mask=mk.get("tgt_mask"), memory_mask=mk.get("memory_mask"),
                 tgt_key_padding_mask=mk.get("tgt_key_padding_mask"),
                 memory_key_padding_mask=mk.get("memory_key_padding_mask")), None

    lens = {}
    if tgt_len is not None:
        lens["tgt_key_padding_mask"] = tgt_len
    if mem_len is not None:
        lens["memory_key_padding_mask"] = mem_len
    cfg = config_row(DEC_LAYER, E, h, dff, act, norm_first, n_dec=1, B=B, causal_flag=cause,
                     self_mask=1 if cause else 0, mem_mask=mask_kind(memory_mask))
    module_case(w, name, desc, model, cfg, inputs, masks, call, lengths=lens)


def gen_dec_layer():
    g = torch.Generator().manual_seed(4004)
    w = Writer("transformer_decoder_layer.txt", "nn.TransformerDecoderLayer references (torch 1.13, float32).")
    dec_layer_case(w, g, "d0", "post-LN relu, no masks, E8 h2 F16 B2 Tt4 Tm6", 8, 2, 16, "relu", False, 2, 4, 6)
    dec_layer_case(w, g, "d1", "pre-LN relu, causal, tgt padding 5 2 4, memory padding 3 1 2, E12 h3 F20 B3 Tt5 "
                   "Tm3", 12, 3, 20, "relu", True, 3, 5, 3, cause=True, tgt_len=[5, 2, 4], mem_len=[3, 1, 2])
    dec_layer_case(w, g, "d2", "post-LN gelu, causal, memory padding 7 4, E8 h4 F12 B2 Tt6 Tm7", 8, 4, 12, "gelu",
                   False, 2, 6, 7, cause=True, mem_len=[7, 4])
    dec_layer_case(w, g, "d3", "pre-LN gelu, tgt padding 1 3, E12 h4 F16 B2 Tt3 Tm5", 12, 4, 16, "gelu", True,
                   2, 3, 5, tgt_len=[1, 3])
    dec_layer_case(w, g, "d4", "post-LN relu, causal, float memory_mask, E10 h5 F14 B1 Tt7 Tm2", 10, 5, 14, "relu",
                   False, 1, 7, 2, cause=True, memory_mask=torch.randn(7, 2, generator=g))
    dec_layer_case(w, g, "d5", "pre-LN gelu, causal, tgt padding 1 1 1, memory padding 1 1 1, E8 h2 F9 B3 Tt1 "
                   "Tm1", 8, 2, 9, "gelu", True, 3, 1, 1, cause=True, tgt_len=[1, 1, 1], mem_len=[1, 1, 1])
    w.save()


def gen_stacks():
    g = torch.Generator().manual_seed(4005)
    w = Writer("transformer_stacks.txt", "nn.TransformerEncoder / nn.TransformerDecoder references, 2 layers.")

    def enc(name, desc, E, h, dff, act, nf, B, T, cause, lengths, final_norm):
        layer = nn.TransformerEncoderLayer(E, h, dim_feedforward=dff, dropout=0.0, activation=act,
                                           batch_first=True, norm_first=nf)
        model = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(E) if final_norm else None,
                                      enable_nested_tensor=False)
        inputs = {"src": torch.randn(B, T, E, generator=g)}
        masks = {"src_mask": causal(T) if cause else None,
                 "src_key_padding_mask": suffix_kpm(lengths, T) if lengths is not None else None}

        def call(m, ins, mk):
            return m(ins["src"], mask=mk.get("src_mask"), src_key_padding_mask=mk.get("src_key_padding_mask")), None

        cfg = config_row(ENCODER, E, h, dff, act, nf, n_enc=2, final_norm=final_norm, B=B, causal_flag=cause,
                         self_mask=1 if cause else 0)
        module_case(w, name, desc, model, cfg, inputs, masks, call,
                    lengths={"src_key_padding_mask": lengths} if lengths is not None else None)

    def dec(name, desc, E, h, dff, act, nf, B, Tt, Tm, cause, tgt_len, mem_len, final_norm):
        layer = nn.TransformerDecoderLayer(E, h, dim_feedforward=dff, dropout=0.0, activation=act,
                                           batch_first=True, norm_first=nf)
        model = nn.TransformerDecoder(layer, 2, norm=nn.LayerNorm(E) if final_norm else None)
        inputs = {"tgt": torch.randn(B, Tt, E, generator=g), "memory": torch.randn(B, Tm, E, generator=g)}
        masks = {"tgt_mask": causal(Tt) if cause else None,
                 "tgt_key_padding_mask": suffix_kpm(tgt_len, Tt) if tgt_len is not None else None,
                 "memory_key_padding_mask": suffix_kpm(mem_len, Tm) if mem_len is not None else None}

        def call(m, ins, mk):
            return m(ins["tgt"], ins["memory"], tgt_mask=mk.get("tgt_mask"),
                     tgt_key_padding_mask=mk.get("tgt_key_padding_mask"),
                     memory_key_padding_mask=mk.get("memory_key_padding_mask")), None

        lens = {}
        if tgt_len is not None:
            lens["tgt_key_padding_mask"] = tgt_len
        if mem_len is not None:
            lens["memory_key_padding_mask"] = mem_len
        cfg = config_row(DECODER, E, h, dff, act, nf, n_dec=2, final_norm=final_norm, B=B, causal_flag=cause,
                         self_mask=1 if cause else 0)
        module_case(w, name, desc, model, cfg, inputs, masks, call, lengths=lens)

    enc("enc2", "Encoder, 2 layers, post-LN relu, causal + padding 5 3, no final norm, E8 h2 F16 B2 T5",
        8, 2, 16, "relu", False, 2, 5, True, [5, 3], False)
    enc("enc2n", "Encoder, 2 layers, pre-LN gelu, padding 2 4 3, final norm, E12 h3 F20 B3 T4",
        12, 3, 20, "gelu", True, 3, 4, False, [2, 4, 3], True)
    dec("dec2", "Decoder, 2 layers, post-LN gelu, causal, memory padding 6 2, no final norm, E8 h2 F12 B2 Tt5 Tm6",
        8, 2, 12, "gelu", False, 2, 5, 6, True, None, [6, 2], False)
    dec("dec2n", "Decoder, 2 layers, pre-LN relu, causal, tgt padding 4 2, memory padding 3 5, final norm, "
        "E10 h2 F12 B2 Tt4 Tm5", 10, 2, 12, "relu", True, 2, 4, 5, True, [4, 2], [3, 5], True)
    w.save()


def gen_full():
    g = torch.Generator().manual_seed(4006)
    w = Writer("transformer_full.txt", "nn.Transformer references (2 encoder + 2 decoder layers, torch 1.13).")

    def case(name, desc, E, h, dff, act, nf, B, Ts, Tt, src_len, tgt_len):
        model = nn.Transformer(E, h, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=dff, dropout=0.0,
                               activation=act, batch_first=True, norm_first=nf)
        model.encoder.enable_nested_tensor = False
        inputs = {"src": torch.randn(B, Ts, E, generator=g), "tgt": torch.randn(B, Tt, E, generator=g)}
        skpm = suffix_kpm(src_len, Ts)
        masks = {"tgt_mask": causal(Tt), "src_key_padding_mask": skpm,
                 "tgt_key_padding_mask": suffix_kpm(tgt_len, Tt), "memory_key_padding_mask": skpm.clone()}

        def call(m, ins, mk):
            return m(ins["src"], ins["tgt"], tgt_mask=mk["tgt_mask"], src_key_padding_mask=mk["src_key_padding_mask"],
                     tgt_key_padding_mask=mk["tgt_key_padding_mask"],
                     memory_key_padding_mask=mk["memory_key_padding_mask"]), None

        cfg = config_row(TRANSFORMER, E, h, dff, act, nf, n_enc=2, n_dec=2, final_norm=True, B=B, causal_flag=True,
                         self_mask=1)
        module_case(w, name, desc, model, cfg, inputs, masks, call,
                    lengths={"src_key_padding_mask": src_len, "tgt_key_padding_mask": tgt_len,
                             "memory_key_padding_mask": src_len})

    case("tf", "post-LN relu, E8 h2 F16, B2 Ts5 Tt4, src padding 5 3, tgt padding 4 2, tgt causal",
         8, 2, 16, "relu", False, 2, 5, 4, [5, 3], [4, 2])
    case("tfpre", "pre-LN gelu, E10 h5 F12, B2 Ts3 Tt5, src padding 2 3, tgt padding 5 3, tgt causal",
         10, 5, 12, "gelu", True, 2, 3, 5, [2, 3], [5, 3])
    w.save()


# ---------------------------------------------------------------------------
def fastpath_demo():
    """What the 1.13 inference fast paths do with padding (printed, not recorded)."""
    torch.manual_seed(5)
    g = torch.Generator().manual_seed(4007)
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    enc = nn.TransformerEncoder(layer, 2)  # enable_nested_tensor=True, torch's default
    randomize(enc, g)
    enc.eval()
    src = torch.randn(2, 5, 8, generator=g)
    kpm = suffix_kpm([5, 3], 5)
    warnings.filterwarnings("ignore", message="The PyTorch API of nested tensors")
    with torch.no_grad():
        fast = enc(src, src_key_padding_mask=kpm)
    reg = enc(src.clone().requires_grad_(True), src_key_padding_mask=kpm).detach()
    FASTPATH.append(("demo TransformerEncoder(enable_nested_tensor=True), eval, no_grad, padding 5 3",
                     "padded positions: fast %s (all zero: %s), regular max|out| %.3g; valid positions max diff %.3g"
                     % (tuple(fast[1, 3:, 0].tolist()), bool((fast[1, 3:] == 0).all()),
                        reg[1, 3:].abs().max().item(), (fast - reg)[~kpm].abs().max().item())))
    # a batch item whose keys are all padding: NaN on the regular path; and on the fast ones?
    kpm0 = suffix_kpm([5, 0], 5)
    reg0 = enc.layers[0](src.clone().requires_grad_(True), src_key_padding_mask=kpm0).detach()
    with torch.no_grad():
        fast0 = enc.layers[0](src, src_key_padding_mask=kpm0)
        nest0 = enc(src, src_key_padding_mask=kpm0)
    FASTPATH.append(("demo TransformerEncoderLayer, padding 5 0 (batch 1 all pad)",
                     "regular path: batch 1 NaN %s, batch 0 NaN %s; layer fast path: batch 1 NaN %s, "
                     "max|batch 1| %.3g; encoder nested path: batch 1 all zero %s"
                     % (bool(torch.isnan(reg0[1]).all()), bool(torch.isnan(reg0[0]).any()),
                        bool(torch.isnan(fast0[1]).any()), fast0[1].nan_to_num().abs().max().item(),
                        bool((nest0[1] == 0).all()))))
    mha = nn.MultiheadAttention(8, 2, batch_first=True)
    randomize(mha, g)
    mha.eval()
    x = src
    rm = mha(x.clone().requires_grad_(True), x, x, key_padding_mask=kpm0)[0].detach()
    with torch.no_grad():
        fm = mha(x, x, x, key_padding_mask=kpm0)[0]
    FASTPATH.append(("demo MultiheadAttention self, padding 5 0",
                     "regular path: batch 1 NaN %s; fast path: batch 1 NaN %s, max|batch 1| %.3g; batch 0 max diff %.3g"
                     % (bool(torch.isnan(rm[1]).all()), bool(torch.isnan(fm[1]).any()),
                        fm[1].nan_to_num().abs().max().item(), (fm[0] - rm[0]).abs().max().item())))


def main():
    gen_sdpa()
    gen_mha()
    gen_enc_layer()
    gen_dec_layer()
    gen_stacks()
    gen_full()
    fastpath_demo()

    worst = max(NOISE, key=lambda t: t[1])
    print("float32 torch vs float64: worst relative difference %.3g (%s), measure |a-b|/max(|b|, 1e-2 max|b|)"
          % (worst[1], worst[0]))
    for kind in ("sdpa", "transformer_mha", "transformer_encoder_layer", "transformer_decoder_layer",
                 "transformer_stacks", "transformer_full"):
        sel = [t for t in NOISE if t[0].startswith(kind)]
        if sel:
            wk = max(sel, key=lambda t: t[1])
            print("  %-28s worst %.3g (%s)" % (kind, wk[1], wk[0]))
    for label, sel in (("outputs", [t for t in NOISE if t[0].endswith(" out")]),
                       ("grads", [t for t in NOISE if " grad:" in t[0]]),
                       ("outputs, floor max|ref|", [t for t in NOISE_MAX if t[0].endswith(" out")]),
                       ("grads, floor max|ref|", [t for t in NOISE_MAX if " grad:" in t[0]])):
        wk = max(sel, key=lambda t: t[1])
        print("  modules, %-26s worst %.3g (%s)" % (label, wk[1], wk[0]))
    if VERBOSE:
        for what, e in NOISE:
            print("  %-60s %.3g" % (what, e))
    print("fast path (not used for the fixtures):")
    for what, note in FASTPATH:
        if VERBOSE or "demo" in what or "NaN" in note or "padded" in note or "raises" in note:
            print("  %s: %s" % (what, note))
    files = sorted(f for f in os.listdir(OUTDIR) if f.startswith("transformer_"))
    total = sum(os.path.getsize(os.path.join(OUTDIR, f)) for f in files)
    print("transformer fixtures: %d bytes in %d files in %s" % (total, len(files), os.path.relpath(OUTDIR)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
