"""Synthetic traffic-sign crops for the automotive pack: rendered with Pillow, seeded, no download.

SYNTHETIC DATA. Every image is drawn by :func:`render` from a numpy ``default_rng(seed)`` stream (Pillow only
rasterises what it is told), so the same seed gives the same data set. The signs follow the shapes and colours of
the European (Vienna convention) signs; they are drawings, not photographs, and accuracy on them says how well
the model learns this generator, not how it would do on real roads.

The generator (per image, drawn at 4x and reduced to 32x32 RGB with antialiasing):

1. **Background**: a vertical two-colour gradient (sky/road/foliage tones) with 3..8 random rectangles and
   ellipses (buildings, trees, other cars) and blurred noise.
2. **Sign** (the label): one of :data:`CLASSES`, drawn as polygons, ellipses and text (Pillow's bundled font):
   stop (red octagon, "STOP"), yield (red-bordered inverted triangle), no entry (red disc, white bar),
   speed limit 50 (red ring, "50"), priority road (yellow diamond with white border), general caution
   (red-bordered triangle, "!"), turn left / turn right (blue disc with a white arrow).
   Colours are jittered (faded paint, colour cast).
3. **Pose**: the sign covers 55..95 % of the crop, is shifted by up to 12 %, rotated by up to 12 degrees and
   seen in perspective (each corner moved by up to 12 %), as a detector's crop would give it.
4. **Camera**: brightness 0.4..1.3 (dusk to glare), contrast, motion or defocus blur, sometimes an occluding
   bar (a pole, a branch), Gaussian sensor noise; clipped to 0..1.

Model input: RGB in 0..1, minus 0.5 (:func:`to_input`), NCHW. ``make_split(n, seed)`` returns
``(x (n,3,32,32) float32, y (n,) int64)``, balanced over the classes.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

__all__ = ["CLASSES", "SIZE", "render", "to_input", "make_split", "SEEDS"]

CLASSES = ("stop", "yield", "no_entry", "speed_limit_50", "priority_road", "general_caution", "turn_left",
           "turn_right")
SIZE = 32
SEEDS = {"train": 11, "calib": 12, "test": 13}  # disjoint streams: no image is in two splits
_BIG = SIZE * 4
_MOTION = [0] * 10 + [1] * 5 + [0] * 10
_RED, _WHITE, _BLUE, _YELLOW, _BLACK = (200, 20, 30), (240, 240, 235), (20, 70, 170), (240, 190, 20), (20, 20, 20)


def _jitter(rng, colour, amount=30):
    return tuple(int(np.clip(c + rng.normal(0, amount / 2), 0, 255)) for c in colour)


def _background(rng) -> Image.Image:
    top, bottom = rng.integers(40, 230, 3), rng.integers(20, 200, 3)
    t = np.linspace(0, 1, _BIG)[:, None, None]
    img = Image.fromarray(np.broadcast_to(top * (1 - t) + bottom * t, (_BIG, _BIG, 3)).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(rng.integers(3, 9)):
        x0, y0 = rng.integers(-_BIG // 4, _BIG, 2)
        w, h = rng.integers(_BIG // 8, _BIG // 2, 2)
        shape = draw.rectangle if rng.random() < 0.5 else draw.ellipse
        shape([int(x0), int(y0), int(x0 + w), int(y0 + h)], fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    noise = rng.normal(0, 25, (_BIG // 4, _BIG // 4, 3))
    noise = np.kron(noise, np.ones((4, 4, 1)))
    return Image.fromarray(np.clip(np.asarray(img, float) + noise, 0, 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(2))


def _regular(n, r, cx, cy, start):
    angles = start + 2 * np.pi * np.arange(n) / n
    return [(cx + r * np.cos(a), cy + r * np.sin(a)) for a in angles]


def _text(draw, text, cx, cy, size, fill):
    font = ImageFont.load_default(size=size)
    draw.text((cx, cy), text, fill=fill, font=font, anchor="mm")


def _arrow(draw, cx, cy, r, left: bool, fill):
    d = -1 if left else 1
    shaft = [(cx - d * 0.55 * r, cy - 0.15 * r), (cx + d * 0.05 * r, cy - 0.15 * r),
             (cx + d * 0.05 * r, cy + 0.15 * r), (cx - d * 0.55 * r, cy + 0.15 * r)]
    head = [(cx + d * 0.05 * r, cy - 0.45 * r), (cx + d * 0.6 * r, cy), (cx + d * 0.05 * r, cy + 0.45 * r)]
    draw.polygon(shaft, fill=fill)
    draw.polygon(head, fill=fill)


def _sign(label: int, rng) -> Image.Image:
    """The sign alone on a transparent square canvas of side _BIG."""
    img = Image.new("RGBA", (_BIG, _BIG), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    c, r = _BIG / 2, _BIG / 2 - 2
    red, white, blue, yellow = (_jitter(rng, k) for k in (_RED, _WHITE, _BLUE, _YELLOW))
    name = CLASSES[label]
    if name == "stop":
        draw.polygon(_regular(8, r, c, c, np.pi / 8), fill=white)
        draw.polygon(_regular(8, r * 0.9, c, c, np.pi / 8), fill=red)
        _text(draw, "STOP", c, c, int(r * 0.62), white)
    elif name in ("yield", "general_caution"):
        down = name == "yield"
        pts = _regular(3, r * 1.1, c, c + (-1 if down else 1) * r * 0.15, np.pi / 2 if down else -np.pi / 2)
        inner = _regular(3, r * 0.68, c, c + (-1 if down else 1) * r * 0.15, np.pi / 2 if down else -np.pi / 2)
        draw.polygon(pts, fill=red)
        draw.polygon(inner, fill=white)
        if not down:
            _text(draw, "!", c, c + r * 0.18, int(r * 0.8), _BLACK)
    elif name == "no_entry":
        draw.ellipse([c - r, c - r, c + r, c + r], fill=red)
        draw.rectangle([c - r * 0.7, c - r * 0.17, c + r * 0.7, c + r * 0.17], fill=white)
    elif name == "speed_limit_50":
        draw.ellipse([c - r, c - r, c + r, c + r], fill=red)
        draw.ellipse([c - r * 0.78, c - r * 0.78, c + r * 0.78, c + r * 0.78], fill=white)
        _text(draw, "50", c, c, int(r * 0.95), _BLACK)
    elif name == "priority_road":
        draw.polygon(_regular(4, r, c, c, 0), fill=white)
        draw.polygon(_regular(4, r * 0.72, c, c, 0), fill=yellow)
    else:  # turn_left / turn_right
        draw.ellipse([c - r, c - r, c + r, c + r], fill=blue)
        _arrow(draw, c, c, r, name == "turn_left", white)
    return img


def _perspective_coeffs(src, dst):
    """Coefficients of Pillow's PERSPECTIVE transform mapping output points ``dst`` to input points ``src``."""
    rows = []
    for (x, y), (u, v) in zip(dst, src):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    return np.linalg.solve(np.array(rows, float), np.array(src, float).reshape(8))


def render(label: int, rng) -> np.ndarray:
    """One (32, 32, 3) float32 RGB image in 0..1 of class ``label`` (index into :data:`CLASSES`)."""
    canvas = _background(rng)
    sign = _sign(label, rng)
    scale = rng.uniform(0.55, 0.95)
    side = _BIG * scale
    cx, cy = _BIG / 2 + rng.uniform(-0.12, 0.12, 2) * _BIG
    angle = np.deg2rad(rng.uniform(-12, 12))
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float) * side / 2
    corners += rng.uniform(-0.12, 0.12, (4, 2)) * side  # perspective: each corner moved on its own
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = corners @ rot.T + [cx, cy]
    src = [(0, 0), (_BIG, 0), (_BIG, _BIG), (0, _BIG)]
    warped = sign.transform((_BIG, _BIG), Image.Transform.PERSPECTIVE, _perspective_coeffs(src, dst),
                            Image.Resampling.BILINEAR)
    canvas.paste(warped, (0, 0), warped)
    if rng.random() < 0.25:  # an occluding pole or branch
        draw = ImageDraw.Draw(canvas)
        x = int(rng.integers(0, _BIG))
        width = int(rng.integers(_BIG // 20, _BIG // 8))
        draw.line([(x, 0), (x + int(rng.integers(-40, 40)), _BIG)], fill=tuple(int(v) for v in rng.integers(0, 120, 3)),
                  width=width)
    blur = rng.random()
    if blur < 0.3:
        canvas = canvas.filter(ImageFilter.GaussianBlur(rng.uniform(1, 4)))
    elif blur < 0.5:  # horizontal motion blur (a 5-pixel line kernel: Pillow's Kernel takes 3x3 or 5x5)
        canvas = canvas.filter(ImageFilter.Kernel((5, 5), _MOTION, 5))
    small = np.asarray(canvas.resize((SIZE, SIZE), Image.Resampling.LANCZOS), np.float32) / 255
    small = (small - 0.5) * rng.uniform(0.7, 1.2) + 0.5  # contrast
    small = small * rng.uniform(0.4, 1.3) * rng.uniform(0.85, 1.15, 3)  # brightness and colour cast
    small += rng.normal(0, rng.uniform(0.01, 0.05), small.shape)
    return np.clip(small, 0, 1).astype(np.float32)


def to_input(img: np.ndarray) -> np.ndarray:
    """The model's input from an RGB image (H, W, 3) in 0..1: CHW, minus 0.5."""
    return (img.transpose(2, 0, 1) - 0.5).astype(np.float32)


def make_split(n: int, seed: int):
    """``n`` model inputs (balanced over the classes, shuffled) and labels from the stream of ``seed``."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(CLASSES))
    x = np.stack([to_input(render(int(label), rng)) for label in labels])
    return x, labels.astype(np.int64)
