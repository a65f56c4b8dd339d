"""The two datasets that need no files: shapes generated from the seed, and scikit-learn's digits."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from core.data.bundle import DatasetError, percent, resize_uint8, seed_int, seeded_generator, stratified_holdout
from core.data.catalogue import DATASETS
from core.i18n import _

SHAPES_TRAIN, SHAPES_TEST = 5000, 1000
DIGITS_TEST_RATIO = 0.2  # the digits have no split of their own



SHAPE_CLASSES = (
    "circle",
    "square",
    "triangle",
    "plus",
    "ring",
    "star",
    "diamond",
    "horizontal bar",
    "vertical bar",
    "x",
)
# few_colours: train hues are drawn only from these bands (hue in [0, 1): red 0, green 1/3).
FEW_COLOUR_BANDS = ((-0.05, 0.05), (0.28, 0.38))


@dataclass(frozen=True)
class ShapesSample:
    """Generated images with the parameters that made them (tests check the variants with these)."""

    x: torch.Tensor  # uint8 [N, 3, S, S]
    y: torch.Tensor  # int64 [N]
    centres: torch.Tensor  # float [N, 2] (x, y) in pixels, origin top-left
    radii: torch.Tensor  # float [N], object half-size in pixels
    hues: torch.Tensor  # float [N] in [0, 1)


def generate_shapes(n: int, *, seed: int, image_size: int = 32, variant: str | None = None) -> ShapesSample:
    """n images of the ten shapes, balanced (n // 10 or one more per class), fully determined by seed.

    Every random number is drawn up front from one generator, then images are rendered in chunks
    with signed distance functions, which gives antialiased edges at any image size for free.
    """
    if variant not in (None, *DATASETS["shapes"].variants):
        raise DatasetError(
            _("unknown shapes variant {variant!r}; choose None, 'left' or 'few_colours'").format(variant=variant)
        )
    g = torch.Generator().manual_seed(seed)
    s = image_size
    k = len(SHAPE_CLASSES)

    def uniform(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(*shape, generator=g)

    y = (torch.arange(n) % k)[torch.randperm(n, generator=g)]
    radius = s * uniform(0.13, 0.30, n)
    # Centres keep most of the object inside the frame; "left" keeps the centre in the left half.
    right_limit = torch.full((n,), s / 2) if variant == "left" else s - radius
    cx = radius + (right_limit - radius) * torch.rand(n, generator=g)
    cy = uniform(0, 1, n) * (s - 2 * radius) + radius
    angle = uniform(-math.pi / 12, math.pi / 12, n)  # +-15 degrees: squares never become diamonds
    if variant == "few_colours":
        band = torch.randint(len(FEW_COLOUR_BANDS), (n,), generator=g)
        lo = torch.tensor([b[0] for b in FEW_COLOUR_BANDS])[band]
        hi = torch.tensor([b[1] for b in FEW_COLOUR_BANDS])[band]
        hue = (lo + (hi - lo) * torch.rand(n, generator=g)) % 1.0
    else:
        hue = torch.rand(n, generator=g)
    colour = _hsv_to_rgb(hue, uniform(0.55, 1.0, n), uniform(0.15, 0.9, n))  # [n, 3]
    background = uniform(0.55, 0.85, n, 1) + uniform(-0.05, 0.05, n, 3)  # light grey, slightly tinted
    opacity = uniform(0.45, 1.0, n)  # see-through objects: low contrast against the background
    texture = torch.randn(n, 3, 6, 6, generator=g) * 0.07  # coloured blotches
    noise_seed = int(torch.randint(2**62, (1,), generator=g))

    out = torch.empty(n, 3, s, s, dtype=torch.uint8)
    centre = (torch.arange(s, dtype=torch.float32) + 0.5).view(1, 1, s)
    chunk = max(16, (1 << 18) // (s * s))  # ~256k pixels at a time: cache-friendly, bounded memory
    noise_gen = torch.Generator().manual_seed(noise_seed)
    for start in range(0, n, chunk):
        sl = slice(start, min(n, start + chunk))
        m = sl.stop - sl.start
        dx = centre - cx[sl].view(-1, 1, 1)  # [m, 1, s]
        dy = centre.transpose(1, 2) - cy[sl].view(-1, 1, 1)  # [m, s, 1]
        cos, sin = angle[sl].cos().view(-1, 1, 1), angle[sl].sin().view(-1, 1, 1)
        r = radius[sl].view(-1, 1, 1)
        u = (dx * cos + dy * sin) / r  # [m, s, s] object coordinates, the shape spans about [-1, 1]
        v = (-dx * sin + dy * cos) / r
        dist = torch.empty(m, s, s)
        labels = y[sl]
        for c in range(k):
            sel = labels == c
            if sel.any():
                dist[sel] = _SHAPE_SDF[c](u[sel], v[sel])
        # signed distance in pixels -> coverage: antialiased edges at any image size
        alpha = (0.5 - dist * r).clamp(0, 1).unsqueeze(1) * opacity[sl].view(m, 1, 1, 1)
        bg = background[sl].view(m, 3, 1, 1) + F.interpolate(texture[sl], size=(s, s), mode="bilinear")
        img = bg * (1 - alpha) + colour[sl].view(m, 3, 1, 1) * alpha
        img = img + 0.05 * torch.randn(m, 3, s, s, generator=noise_gen)
        out[sl] = (img.clamp(0, 1) * 255).round().to(torch.uint8)
    return ShapesSample(x=out, y=y, centres=torch.stack([cx, cy], 1), radii=radius, hues=hue)


def _hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    h6 = (h % 1.0) * 6
    c = v * s
    x = c * (1 - ((h6 % 2) - 1).abs())
    zero = torch.zeros_like(c)
    sector = h6.floor().long().clamp(0, 5)
    # (r, g, b) before adding m, for each 60-degree sector of the hue circle
    options = torch.stack(
        [
            torch.stack([c, x, zero], 1),
            torch.stack([x, c, zero], 1),
            torch.stack([zero, c, x], 1),
            torch.stack([zero, x, c], 1),
            torch.stack([x, zero, c], 1),
            torch.stack([c, zero, x], 1),
        ],
        1,
    )  # [n, 6, 3]
    rgb = options[torch.arange(len(h)), sector]
    return rgb + (v - c).unsqueeze(1)


def _box(u: torch.Tensor, v: torch.Tensor, half_w: float, half_h: float) -> torch.Tensor:
    return torch.maximum(u.abs() - half_w, v.abs() - half_h)


def _star(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    r = torch.sqrt(u * u + v * v)
    phase = (torch.atan2(u, -v) / (2 * math.pi) * 5) % 1.0  # one point straight up
    spike = 1 - 2 * (phase - 0.5).abs()  # 1 at a point, 0 between two points
    return (r - (0.42 + 0.6 * spike)) * 0.7


_S3 = math.sqrt(3) / 2
_SHAPE_SDF = (
    lambda u, v: torch.sqrt(u * u + v * v) - 0.9,  # circle
    lambda u, v: _box(u, v, 0.78, 0.78),  # square
    lambda u, v: torch.maximum(torch.maximum(v, _S3 * u - 0.5 * v), -_S3 * u - 0.5 * v) - 0.55,  # triangle, apex up
    lambda u, v: torch.minimum(_box(u, v, 1.0, 0.3), _box(u, v, 0.3, 1.0)),  # plus
    lambda u, v: (torch.sqrt(u * u + v * v) - 0.72).abs() - 0.24,  # ring
    _star,
    lambda u, v: (u.abs() + v.abs() - 1.0) / math.sqrt(2),  # diamond
    lambda u, v: _box(u, v, 1.0, 0.28),  # horizontal bar
    lambda u, v: _box(u, v, 0.28, 1.0),  # vertical bar
    lambda u, v: torch.minimum(  # x: the plus turned 45 degrees
        _box((u + v) / math.sqrt(2), (v - u) / math.sqrt(2), 1.0, 0.28),
        _box((u + v) / math.sqrt(2), (v - u) / math.sqrt(2), 0.28, 1.0),
    ),
)


def load_shapes(image_size: int, seed: int, variant: str | None, notes: list[str]):
    train = generate_shapes(SHAPES_TRAIN, seed=seed_int(seed, "shapes-train"), image_size=image_size, variant=variant)
    # The test split always has the full distribution: a variant narrows train only.
    test = generate_shapes(SHAPES_TEST, seed=seed_int(seed, "shapes-test"), image_size=image_size)
    if variant == "left":
        notes.append(_("variant left: train objects only in the left half, test objects anywhere"))
    elif variant == "few_colours":
        notes.append(_("variant few_colours: train objects only red or green, test objects any colour"))
    return train.x, train.y, test.x, test.y, SHAPE_CLASSES



DIGIT_CLASSES = tuple(str(d) for d in range(10))


def load_sklearn_digits(image_size: int | None, seed: int, notes: list[str]):
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise DatasetError(
            _(
                "The digits dataset ships inside scikit-learn, which is not installed: "
                "pip install scikit-learn (it is in requirements.txt)."
            )
        ) from exc
    digits = load_digits()  # read from a file inside the package: no download
    # 16 grey levels (0..16) stretched to the full byte range, like every other dataset here
    x = torch.from_numpy(np.rint(digits.images * (255 / 16)).astype(np.uint8)).unsqueeze(1)  # [1797, 1, 8, 8]
    y = torch.as_tensor(digits.target, dtype=torch.int64)
    test = torch.zeros(len(y), dtype=torch.bool)
    test[stratified_holdout(y, DIGITS_TEST_RATIO, seeded_generator(seed, "digits-holdout"))] = True
    notes.append(
        _("split: {percent} of each class held out as test (seed {seed})").format(
            percent=percent(DIGITS_TEST_RATIO), seed=seed
        )
    )
    train_x, test_x = x[~test], x[test]
    if image_size is not None and image_size != 8:
        notes.append(_("resized from 8x8 to {size}x{size}").format(size=image_size))
        train_x, test_x = resize_uint8(train_x, image_size), resize_uint8(test_x, image_size)
    return train_x, y[~test], test_x, y[test], DIGIT_CLASSES
