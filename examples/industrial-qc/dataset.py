"""Synthetic surface-defect images for the industrial-qc pack: procedurally generated, seeded, no download.

SYNTHETIC DATA. Every image is drawn by :func:`render` from a numpy ``default_rng(seed)`` stream, so the same
seed gives the same data set on every machine. It stands in for 48x48 grayscale patches cut from a line-scan
camera over metal sheet; it is not a photograph of anything, and accuracy on it says how well the model learns
this generator, not how it would do on a real production line.

The generator (per image):

1. **Surface**: one of three textures at a random mean grey (0.30..0.70) and contrast:
   brushed metal (white noise smoothed along one random direction), cast/granular (isotropic smoothed noise
   at two scales), woven (two crossing sinusoidal gratings plus noise).
2. **Lighting**: a random linear illumination gradient and a mild vignette.
3. **Defect** (the label): ``ok`` none; ``scratch`` a thin (0.7..1.6 px) slightly curved line 10..36 px long,
   darker or brighter than the surface; ``dent`` a round/elliptic depression (radius 3..7 px) rendered by
   shading a Gaussian height map under a random light direction (one side bright, the other dark);
   ``spot`` a stain of 1..3 overlapping soft blobs (radius 2..5 px), darker or brighter.
   Defect strength is drawn down to near the noise floor, so some defects are hard to see.
4. **Camera**: Gaussian sensor noise (sigma 0.005..0.025), sometimes a slight defocus blur; clipped to 0..1.

Model input: each image standardised on its own (:func:`standardise`: zero mean, unit deviation), which
removes the lighting level and contrast before the CNN sees it; a camera pipeline does the same per patch.
Classes are balanced; ``make_split(n, seed)`` returns ``(x (n,1,48,48) float32 standardised, y (n,) int64)``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CLASSES", "SIZE", "render", "standardise", "make_split", "SEEDS"]

CLASSES = ("ok", "scratch", "dent", "spot")
SIZE = 48
SEEDS = {"train": 1, "calib": 2, "test": 3}  # disjoint streams: no image is in two splits


def _smooth(img, sigma_y, sigma_x):
    """Gaussian blur by FFT (wrap-around is harmless on noise textures)."""
    fy = np.fft.fftfreq(img.shape[0])[:, None]
    fx = np.fft.fftfreq(img.shape[1])[None, :]
    kernel = np.exp(-2 * np.pi ** 2 * ((fy * sigma_y) ** 2 + (fx * sigma_x) ** 2))
    return np.real(np.fft.ifft2(np.fft.fft2(img) * kernel))


def _normalise(img):
    return (img - img.mean()) / (img.std() + 1e-8)


def _surface(rng, yy, xx):
    kind = rng.integers(3)
    if kind == 0:  # brushed: noise smoothed along a random direction (rotate the grid, smooth one axis)
        big = _smooth(rng.standard_normal((SIZE * 2, SIZE * 2)), 0.6, rng.uniform(6, 14))
        angle = rng.uniform(0, np.pi)
        c, s = np.cos(angle), np.sin(angle)
        u = (c * (xx - SIZE / 2) - s * (yy - SIZE / 2) + SIZE).astype(int) % (SIZE * 2)
        v = (s * (xx - SIZE / 2) + c * (yy - SIZE / 2) + SIZE).astype(int) % (SIZE * 2)
        tex = _normalise(big[v, u])
    elif kind == 1:  # cast / granular: two scales of isotropic noise
        tex = _normalise(_smooth(rng.standard_normal((SIZE, SIZE)), 1.2, 1.2)
                         + 0.6 * _smooth(rng.standard_normal((SIZE, SIZE)), 4, 4))
    else:  # woven: two crossing gratings
        period = rng.uniform(3.5, 7)
        angle = rng.uniform(0, np.pi)
        a = 2 * np.pi / period * (np.cos(angle) * xx + np.sin(angle) * yy)
        b = 2 * np.pi / period * (-np.sin(angle) * xx + np.cos(angle) * yy)
        tex = _normalise(np.sin(a) * np.sin(b) + 0.5 * _smooth(rng.standard_normal((SIZE, SIZE)), 1, 1))
    return tex * rng.uniform(0.03, 0.08)


def _scratch(rng, yy, xx):
    length, width = rng.uniform(10, 36), rng.uniform(0.7, 1.6)
    angle, bend = rng.uniform(0, np.pi), rng.uniform(-0.02, 0.02)
    cy, cx = rng.uniform(10, SIZE - 10, 2)
    c, s = np.cos(angle), np.sin(angle)
    along = c * (xx - cx) + s * (yy - cy)
    across = -s * (xx - cx) + c * (yy - cy) - bend * along ** 2  # a slight arc
    inside = np.clip(1 - np.maximum(np.abs(along) - length / 2, 0) / 2, 0, 1)  # soft ends
    return np.exp(-(across / width) ** 2) * inside * rng.choice([-1, 1]) * rng.uniform(0.10, 0.28)


def _dent(rng, yy, xx):
    r = rng.uniform(3, 7)
    cy, cx = rng.uniform(8, SIZE - 8, 2)
    aspect, angle = rng.uniform(0.6, 1.0), rng.uniform(0, np.pi)
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * (xx - cx) + s * (yy - cy), (-s * (xx - cx) + c * (yy - cy)) / aspect
    height = -np.exp(-(u ** 2 + v ** 2) / (2 * r ** 2))
    gy, gx = np.gradient(height)
    light = rng.uniform(0, 2 * np.pi)
    shade = (np.cos(light) * gx + np.sin(light) * gy) * r  # Lambert-like: slope towards the light is bright
    return shade * rng.uniform(0.25, 0.50)


def _spot(rng, yy, xx):
    sign, strength = rng.choice([-1, 1]), rng.uniform(0.10, 0.30)
    cy, cx = rng.uniform(8, SIZE - 8, 2)
    out = np.zeros((SIZE, SIZE))
    for _ in range(rng.integers(1, 4)):
        r = rng.uniform(2, 5)
        oy, ox = rng.normal(0, 2.5, 2)
        out = np.maximum(out, np.exp(-((yy - cy - oy) ** 2 + (xx - cx - ox) ** 2) / (2 * r ** 2)) ** 1.5)
    return sign * strength * out


_DEFECTS = {1: _scratch, 2: _dent, 3: _spot}


def render(label: int, rng) -> np.ndarray:
    """One (48, 48) float32 image in 0..1 of class ``label`` (index into :data:`CLASSES`)."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    img = rng.uniform(0.30, 0.70) + _surface(rng, yy, xx)
    gy, gx = rng.uniform(-0.0025, 0.0025, 2)
    img += gy * (yy - SIZE / 2) + gx * (xx - SIZE / 2)  # illumination gradient
    img *= 1 - rng.uniform(0, 0.15) * (((yy - SIZE / 2) ** 2 + (xx - SIZE / 2) ** 2) / (SIZE / 2) ** 2 / 2)
    if label:
        img += _DEFECTS[label](rng, yy, xx)
    if rng.random() < 0.3:  # slight defocus
        img = _smooth(img, 0.7, 0.7)
    img += rng.normal(0, rng.uniform(0.005, 0.025), img.shape)
    return np.clip(img, 0, 1).astype(np.float32)


def standardise(img: np.ndarray) -> np.ndarray:
    """The model's input from a patch: zero mean, unit standard deviation (float32)."""
    return ((img - img.mean()) / (img.std() + 1e-6)).astype(np.float32)


def make_split(n: int, seed: int):
    """``n`` model inputs (balanced over the classes, shuffled) and labels from the stream of ``seed``."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(CLASSES))
    x = np.stack([standardise(render(int(label), rng)) for label in labels])[:, None]
    return x, labels.astype(np.int64)
