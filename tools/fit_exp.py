#!/usr/bin/python3
"""Fit the polynomial attn.h uses for e^r on the reduced range |r| <= ln2/2.

e^r ~= 1 + r + r^2 * q(r): the first two Taylor terms are kept exact and q is
fitted by iteratively reweighted least squares towards the minimax relative
error. Prints q's coefficients (highest degree first, for Horner) and the
worst relative error in double precision.
"""
import math
import numpy as np

DEG = 4  # degree of q: e^r is then a degree-6 polynomial
h = math.log(2) / 2
r = np.cos(np.linspace(0, math.pi, 20001)) * h  # Chebyshev-spaced points
target = (np.exp(r) - 1 - r) / (r * r + 1e-300)
target[np.abs(r) < 1e-12] = 0.5
V = np.vander(r, DEG + 1)
w = np.exp(-r) * (r * r)            # relative error of e^r is (r^2 * dq) / e^r
weights = w.copy()
for _ in range(60):                 # Lawson's iteration: push towards equiripple
    coef, *_ = np.linalg.lstsq(V * weights[:, None], target * weights, rcond=None)
    err = np.abs((V @ coef - target) * w)
    weights *= (err / err.max()) ** 0.5 + 1e-12
    weights /= weights.max()
fit = 1 + r + r * r * (V @ coef)
print("max relative error %.3g" % np.max(np.abs(fit - np.exp(r)) / np.exp(r)))
for c in coef:
    print("%.9ef" % c)
