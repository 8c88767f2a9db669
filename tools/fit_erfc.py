#!/usr/bin/python3
"""Fit the coefficients attn.h uses for its vectorised erfc (and so GELU).

erfc(u) = exp(-u*u) * g(u) for u >= 0, where g is smooth and slowly varying.
With t = 1 / (1 + P*u), which maps [0, inf) onto (0, 1], we fit
g(u) ~= t * poly(t) by least squares on the relative error over a dense grid,
then print the coefficients (highest degree first, ready for Horner) and the
worst relative error of the fit, evaluated in double precision.
"""
import math
import numpy as np

P = 0.5
DEG = 10
u = np.concatenate([np.linspace(0.0, 4.0, 40001), np.linspace(4.0, 10.0, 20001)])
t = 1.0 / (1.0 + P * u)
g = np.array([math.erfc(x) * math.exp(x * x) for x in u])
target = g / t                           # fit poly(t) to this
V = np.vander(t, DEG + 1)                # columns t^DEG .. t^0
W = 1.0 / target                         # relative-error weighting
coef, *_ = np.linalg.lstsq(V * W[:, None], target * W, rcond=None)
fit = t * (V @ coef)
rel = np.max(np.abs(fit - g) / g)
print("P = %.17g, degree %d, max relative error of g: %.3g" % (P, DEG, rel))
for c in coef:
    print("%.9ef," % c)
