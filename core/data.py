"""Datasets: every source ends up as one in-memory `DatasetBundle` of uint8 tensors.

Sources, by name:
  "shapes"          generated from the seed, no files; the default and the one tests use
  "digits"          scikit-learn's 1,797 real 8x8 handwritten digits, shipped inside the package
  "cifar10", "mnist", "fashion_mnist"
                    torchvision's dataset classes under home()/datasets
  "folder:<path>"   your own images in class folders (ImageFolder layout)
  "zip:<path>"      the same inside a zip, read member by member and never extracted

Everything is uint8 [N, C, H, W] so that 60,000 CIFAR images take 184 MB rather than 737 MB;
the trainer converts batches to float on the device. Loading is deterministic: the same
arguments give identical tensors, because every random choice (shape parameters, the held-out
split of an unsplit folder, subsets) comes from a generator seeded by `seed` and a fixed tag.
"""
from __future__ import annotations

import hashlib
import io
import math
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from core.paths import home


class DatasetError(ValueError):
    """A dataset that cannot be loaded; the message is meant for the user."""


# ============================================================================
# Bundle
# ============================================================================


@dataclass(frozen=True, eq=False)  # eq=False: comparing tensors with == is ambiguous; use torch.equal
class DatasetBundle:
    name: str
    train_x: torch.Tensor  # uint8 [N, C, H, W]
    train_y: torch.Tensor  # int64 [N]
    test_x: torch.Tensor  # uint8 [M, C, H, W]
    test_y: torch.Tensor  # int64 [M]
    classes: tuple[str, ...]
    mean: tuple[float, ...]  # per channel, of train_x / 255
    std: tuple[float, ...]
    note: str = ""  # what was done to the source: split, subset, resize, skipped files

    def __post_init__(self) -> None:
        for split, x, y in (("train", self.train_x, self.train_y), ("test", self.test_x, self.test_y)):
            if x.dtype != torch.uint8 or x.ndim != 4:
                raise DatasetError(f"{split}_x must be uint8 [N, C, H, W], got {x.dtype} {tuple(x.shape)}")
            if y.dtype != torch.int64 or y.shape != (x.shape[0],):
                raise DatasetError(f"{split}_y must be int64 [{x.shape[0]}], got {y.dtype} {tuple(y.shape)}")
        if self.train_x.shape[1:] != self.test_x.shape[1:]:
            raise DatasetError(
                f"train images are {tuple(self.train_x.shape[1:])} but test images are {tuple(self.test_x.shape[1:])}"
            )

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train_x.shape[-1])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def overview(self):
        """Images per class in each split, as a pandas DataFrame (class, train, test)."""
        import pandas as pd

        k = self.num_classes
        return pd.DataFrame(
            {
                "class": list(self.classes),
                "train": torch.bincount(self.train_y, minlength=k).tolist(),
                "test": torch.bincount(self.test_y, minlength=k).tolist(),
            }
        )


@dataclass(frozen=True)
class DatasetInfo:
    label: str
    help: str
    variants: tuple[str, ...] = ()  # accepted values of `variant` besides None
    needs_files: bool = False  # True: usable only once its files are under home()/datasets
    train_size: int | None = None  # training images of the whole set (before any subset), when fixed
    package: str | None = None  # a Python package the set ships in; listed only when it is installed


DATASETS: dict[str, DatasetInfo] = {
    "shapes": DatasetInfo(
        label="Shapes (generated, 10 classes)",
        help=(
            "Ten simple shapes (circle, square, triangle, plus, ring, star, diamond, horizontal bar, "
            "vertical bar, x) in random colours, sizes, positions and small rotations on a light "
            "textured background; 32x32 RGB, 5,000 train / 1,000 test, generated from the seed in "
            "under a second, no files needed. Variants make the TRAIN split narrower than the test "
            "split, so that the right augmentation visibly pays off: "
            "'left' = train objects only in the left half, test objects anywhere (flips and crops help "
            "position-sensitive models such as the MLP and LeNet a lot; a CNN with global pooling barely "
            "notices the shift, which is a lesson of its own); "
            "'few_colours' = train objects only red or green, test objects any colour (colour jitter "
            "and grayscale help). Note: the bars and the triangle are not rotation- or vflip-invariant, "
            "so those augmentations can hurt here."
        ),
        variants=("left", "few_colours"),
        train_size=5000,
    ),
    "digits": DatasetInfo(
        label="Digits (scikit-learn, real handwriting, 10 classes)",
        help=(
            "1,797 real handwritten digits 0-9 (UCI optical recognition of handwritten digits, shipped "
            "inside scikit-learn, so no download): 8x8 grayscale, 16 grey levels scaled to 0-255. A "
            "seeded, stratified 20% of each class is the test split (1,438 train / 359 test). The "
            "embedded stand-in for MNIST; set the image size to 28 to train MNIST-sized models on it."
        ),
        train_size=1438,
        package="sklearn",
    ),
    "cifar10": DatasetInfo(
        label="CIFAR-10 (torchvision)",
        help="60,000 32x32 colour photos in 10 classes (50,000 train / 10,000 test).",
        needs_files=True,
        train_size=50_000,
    ),
    "mnist": DatasetInfo(
        label="MNIST (torchvision)",
        help="70,000 28x28 grayscale handwritten digits (60,000 train / 10,000 test).",
        needs_files=True,
        train_size=60_000,
    ),
    "fashion_mnist": DatasetInfo(
        label="Fashion-MNIST (torchvision)",
        help="70,000 28x28 grayscale clothing images in 10 classes (60,000 train / 10,000 test).",
        needs_files=True,
        train_size=60_000,
    ),
}

# Your own images, by prefix. Listed for the UI; they are not in DATASETS because they need a path.
PATH_PREFIXES = {
    "folder:": "A folder of class folders: <folder>/<class>/<image>, or <folder>/train/<class>/... "
    "with <folder>/test/<class>/... (or val/).",
    "zip:": "A zip of class folders in the same layout (one wrapping folder is fine). Read without "
    "extracting; images are decoded once and cached.",
}

IMAGE_SIZE_RANGE = (8, 256)
DEFAULT_MAX_BYTES = 2 * 1024**3  # uncompressed total a zip or folder may hold
DEFAULT_MAX_FILES = 200_000
SHAPES_TRAIN, SHAPES_TEST = 5000, 1000
# A test split is subset along with train only above this size: a smaller one is cheap to
# evaluate in full, and a full test split keeps accuracies comparable across subset sizes.
FULL_TEST_LIMIT = 10_000
DIGITS_TEST_RATIO = 0.2  # the digits have no split of their own


def available_datasets(allow_download: bool = False) -> list[str]:
    """Built-in names usable right now: shapes always, digits with scikit-learn installed,
    torchvision ones when their files exist."""
    import importlib.util

    root = _datasets_root()
    return [
        name
        for name, info in DATASETS.items()
        if (not info.needs_files or allow_download or _torchvision_files_present(name, root))
        and (info.package is None or importlib.util.find_spec(info.package) is not None)
    ]


# ============================================================================
# Entry point
# ============================================================================


def load_dataset(
    name: str,
    *,
    image_size: int | None = None,
    subset: float | None = None,
    seed: int = 0,
    val_ratio: float = 0.2,
    variant: str | None = None,
    allow_download: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_files: int = DEFAULT_MAX_FILES,
) -> DatasetBundle:
    """Load a dataset by name into memory; see the module docstring for the names.

    image_size: side of the square images, 8..256. None keeps the source size for the built-in
        sets; for your own images it picks the source size if <= 32 px, 32 if <= 64 px, else 64.
    subset: a stratified, seeded fraction (0, 1] of the train split (also of the test split when
        that holds more than 10,000 images).
    val_ratio: fraction of each class held out as the test split when your own images have no
        train/test folders.
    variant: only for "shapes": None, "left" or "few_colours" (see DATASETS["shapes"].help).
    max_bytes, max_files: limits for your own images (zip bombs, wrong folder picked).
    """
    if not isinstance(name, str) or not name.strip():
        raise DatasetError("dataset name must be a non-empty string")
    name = name.strip()
    if image_size is not None:
        lo, hi = IMAGE_SIZE_RANGE
        if isinstance(image_size, bool) or not isinstance(image_size, int) or not lo <= image_size <= hi:
            raise DatasetError(f"image_size must be a whole number from {lo} to {hi}, got {image_size!r}")
    if subset is not None and (isinstance(subset, bool) or not isinstance(subset, (int, float)) or not 0 < subset <= 1):
        raise DatasetError(f"subset must be a fraction in (0, 1], got {subset!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise DatasetError(f"seed must be a whole number, got {seed!r}")
    if not isinstance(val_ratio, (int, float)) or not 0 < val_ratio < 1:
        raise DatasetError(f"val_ratio must be a fraction strictly between 0 and 1, got {val_ratio!r}")
    if variant is not None and name != "shapes":
        raise DatasetError(f"variant applies only to the 'shapes' dataset, not to {name!r}")

    notes: list[str] = []
    if name == "shapes":
        train_x, train_y, test_x, test_y, classes = _load_shapes(image_size or 32, seed, variant, notes)
    elif name == "digits":
        train_x, train_y, test_x, test_y, classes = _load_digits(image_size, seed, notes)
    elif name in _TORCHVISION:
        train_x, train_y, test_x, test_y, classes = _load_torchvision(name, image_size, allow_download, notes)
    elif name.startswith(("folder:", "zip:")):
        kind, _, path = name.partition(":")
        train_x, train_y, test_x, test_y, classes = _load_images(
            kind, path, image_size, seed, val_ratio, max_bytes, max_files, notes
        )
    else:
        known = ", ".join(repr(n) for n in DATASETS)
        raise DatasetError(f"unknown dataset {name!r}; choose one of {known}, or 'folder:<path>' or 'zip:<path>'")

    if subset is not None and subset < 1:
        keep = _stratified_pick(train_y, subset, _generator(seed, "subset-train"))
        train_x, train_y = train_x[keep], train_y[keep]
        notes.append(f"subset: {_percent(subset)} of train, stratified (seed {seed})")
        if len(test_y) > FULL_TEST_LIMIT:
            keep = _stratified_pick(test_y, subset, _generator(seed, "subset-test"))
            test_x, test_y = test_x[keep], test_y[keep]
            notes.append(f"subset: {_percent(subset)} of test (it holds more than {FULL_TEST_LIMIT:,} images)")

    mean, std = _channel_stats(train_x)
    return DatasetBundle(
        name=name,
        train_x=train_x.contiguous(),
        train_y=train_y,
        test_x=test_x.contiguous(),
        test_y=test_y,
        classes=tuple(classes),
        mean=mean,
        std=std,
        note="; ".join(notes),
    )


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.3g}%"


def _generator(seed: int, tag: str) -> torch.Generator:
    """A generator for one purpose: changing the subset must not change the shapes or the split."""
    digest = hashlib.sha256(f"{seed}:{tag}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def _stratified_pick(y: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """Sorted indices of `fraction` of each class (at least one image of every non-empty class)."""
    picked = [torch.zeros(0, dtype=torch.int64)]
    for c in range(int(y.max()) + 1 if len(y) else 0):
        idx = (y == c).nonzero().flatten()
        if len(idx) == 0:
            continue
        k = max(1, round(len(idx) * fraction))
        picked.append(idx[torch.randperm(len(idx), generator=generator)[:k]])
    return torch.cat(picked).sort().values


def _channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and std of x / 255 from a histogram of the 256 byte values:
    much faster than float sums over the whole set, and no float copy of it is ever made."""
    values = torch.arange(256, dtype=torch.float64) / 255
    mean, std = [], []
    for c in range(x.shape[1]):
        hist = torch.bincount(x[:, c].reshape(-1), minlength=256).to(torch.float64)
        count = max(1.0, float(hist.sum()))
        m = float((hist * values).sum()) / count
        var = float((hist * (values - m) ** 2).sum()) / count
        mean.append(round(m, 6))
        std.append(round(max(math.sqrt(var), 1e-6), 6))
    return tuple(mean), tuple(std)


def _resize_uint8(x: torch.Tensor, size: int) -> torch.Tensor:
    """Antialiased bilinear resize of uint8 [N, C, H, W] to size x size, in chunks."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    out = [
        F.interpolate(chunk.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        .round_()
        .clamp_(0, 255)
        .to(torch.uint8)
        for chunk in x.split(4096)
    ]
    return torch.cat(out)


# ============================================================================
# Shapes: generated, no files
# ============================================================================

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
        raise DatasetError(f"unknown shapes variant {variant!r}; choose None, 'left' or 'few_colours'")
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


def _load_shapes(image_size: int, seed: int, variant: str | None, notes: list[str]):
    train = generate_shapes(SHAPES_TRAIN, seed=_seed_int(seed, "shapes-train"), image_size=image_size, variant=variant)
    # The test split always has the full distribution: a variant narrows train only.
    test = generate_shapes(SHAPES_TEST, seed=_seed_int(seed, "shapes-test"), image_size=image_size)
    if variant == "left":
        notes.append("variant left: train objects only in the left half, test objects anywhere")
    elif variant == "few_colours":
        notes.append("variant few_colours: train objects only red or green, test objects any colour")
    return train.x, train.y, test.x, test.y, SHAPE_CLASSES


def _seed_int(seed: int, tag: str) -> int:
    return int(_generator(seed, tag).initial_seed())


# ============================================================================
# Digits: real handwriting shipped inside scikit-learn
# ============================================================================

DIGIT_CLASSES = tuple(str(d) for d in range(10))


def _load_digits(image_size: int | None, seed: int, notes: list[str]):
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise DatasetError(
            "The digits dataset ships inside scikit-learn, which is not installed: pip install scikit-learn "
            "(it is in requirements.txt)."
        ) from exc
    digits = load_digits()  # read from a file inside the package: no download
    # 16 grey levels (0..16) stretched to the full byte range, like every other dataset here
    x = torch.from_numpy(np.rint(digits.images * (255 / 16)).astype(np.uint8)).unsqueeze(1)  # [1797, 1, 8, 8]
    y = torch.as_tensor(digits.target, dtype=torch.int64)
    test = torch.zeros(len(y), dtype=torch.bool)
    test[_stratified_holdout(y, DIGITS_TEST_RATIO, _generator(seed, "digits-holdout"))] = True
    notes.append(f"split: {_percent(DIGITS_TEST_RATIO)} of each class held out as test (seed {seed})")
    train_x, test_x = x[~test], x[test]
    if image_size is not None and image_size != 8:
        notes.append(f"resized from 8x8 to {image_size}x{image_size}")
        train_x, test_x = _resize_uint8(train_x, image_size), _resize_uint8(test_x, image_size)
    return train_x, y[~test], test_x, y[test], DIGIT_CLASSES


# ============================================================================
# torchvision datasets
# ============================================================================

_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
# name -> (torchvision class name, folder under the root, files that folder must hold, how to get them there)
_TORCHVISION = {
    "cifar10": (
        "CIFAR10",
        "cifar-10-batches-py",
        ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"),
        "unpacking cifar-10-python.tar.gz in {root} creates it",
    ),
    "mnist": ("MNIST", "MNIST/raw", _MNIST_FILES, "gunzip the four .gz files of MNIST there"),
    "fashion_mnist": ("FashionMNIST", "FashionMNIST/raw", _MNIST_FILES, "gunzip the four .gz files of Fashion-MNIST there"),
}


def _datasets_root() -> Path:
    return home() / "datasets"


def datasets_root() -> Path:
    """The folder torchvision's datasets live in: home()/datasets."""
    return _datasets_root()


def torchvision_folder(name: str, root: Path | None = None) -> Path:
    """Where torchvision's files of a built-in set belong: <root, default home()/datasets>/<its folder>."""
    return (_datasets_root() if root is None else root) / _TORCHVISION[name][1]


def torchvision_files(name: str) -> tuple[str, ...]:
    """The files torchvision_folder(name) must hold for the set to load."""
    return _TORCHVISION[name][2]


def has_torchvision_files(name: str) -> bool:
    return _torchvision_files_present(name, _datasets_root())


def torchvision_dataset_class(name: str):
    """torchvision's dataset class for a built-in set (torchvision.datasets.CIFAR10, ...)."""
    import torchvision.datasets  # here, not at the top: importing it takes about a second

    return getattr(torchvision.datasets, _TORCHVISION[name][0])


def _torchvision_files_present(name: str, root: Path) -> bool:
    _, folder, files, _ = _TORCHVISION[name]
    return all((root / folder / f).is_file() for f in files)


def _load_torchvision(name: str, image_size: int | None, allow_download: bool, notes: list[str]):
    cls_name, folder, files, how = _TORCHVISION[name]
    root = _datasets_root()
    if not allow_download and not _torchvision_files_present(name, root):
        raise DatasetError(
            f"{DATASETS[name].label}: files not found and downloading is off. Put the files "
            f"{', '.join(files)} in {root / folder} (torchvision's layout: {how.format(root=root)}), "
            f"download them (python -m core.sources download {name}, or the Train page's Data tab), "
            f"or upload a zip of class folders instead (zip:<path>)."
        )
    import torchvision.datasets  # here, not at the top: importing it takes about a second

    cls = getattr(torchvision.datasets, cls_name)
    try:
        train = cls(root=str(root), train=True, download=allow_download)
        test = cls(root=str(root), train=False, download=allow_download)
    except Exception as exc:  # torchvision raises RuntimeError, URLError, OSError... all mean the same here
        raise DatasetError(
            f"{DATASETS[name].label} could not be loaded from {root / folder}: {exc}. "
            f"Check the files there ({', '.join(files)}) or upload a zip of class folders instead."
        ) from exc

    def tensors(ds) -> tuple[torch.Tensor, torch.Tensor]:
        data = torch.as_tensor(np.asarray(ds.data))
        x = data.unsqueeze(1) if data.ndim == 3 else data.permute(0, 3, 1, 2)  # MNIST [N,H,W]; CIFAR [N,H,W,C]
        return x.to(torch.uint8).contiguous(), torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)

    train_x, train_y = tensors(train)
    test_x, test_y = tensors(test)
    if image_size is not None and image_size != train_x.shape[-1]:
        notes.append(f"resized from {train_x.shape[-1]}x{train_x.shape[-1]} to {image_size}x{image_size}")
        train_x, test_x = _resize_uint8(train_x, image_size), _resize_uint8(test_x, image_size)
    return train_x, train_y, test_x, test_y, tuple(train.classes)


# ============================================================================
# Your own images: folder:<path> and zip:<path>
# ============================================================================

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})
_JUNK_FILES = frozenset({"thumbs.db", "desktop.ini"})  # written by file browsers, never data
_TRAIN_NAMES = ("train", "training")
_TEST_NAMES = ("test", "testing", "val", "valid", "validation")  # preferred in this order
# Only these decoders are tried: PIL otherwise probes every format it knows for each file.
_PIL_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP", "TIFF", "PPM")
_GRAYSCALE_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})
_CACHE_VERSION = 1


class _Source:
    """The files of a folder or a zip as a tree of relative POSIX paths, checked against the limits."""

    def __init__(self, kind: str, path: Path, max_bytes: int, max_files: int):
        self.kind, self.path = kind, path
        # Kept open for every read: reading the table of contents of a 60,000-file zip takes
        # half a second, so it must happen once, not once per image or per step.
        self.zip: zipfile.ZipFile | None = None
        self.stored_name: dict[str, str] = {}  # relative path -> name to read it by (zip member name)
        self.subdirs: dict[str, set[str]] = {"": set()}  # folder -> names of its sub-folders
        self.filenames: dict[str, list[str]] = {"": []}  # folder -> names of its files
        try:
            self._index(max_bytes, max_files)
        except BaseException:
            self.__exit__()
            raise

    def _index(self, max_bytes: int, max_files: int) -> None:
        path = self.path
        total = 0
        for rel, stored, size, is_dir in self._list_zip() if self.kind == "zip" else self._list_folder():
            parts = rel.split("/")
            if any(p.startswith(".") or p == "__MACOSX" for p in parts) or parts[-1].lower() in _JUNK_FILES:
                continue  # macOS resource forks, .DS_Store, hidden files: never data
            if len(parts) > 32:
                raise DatasetError(f"{path.name} nests folders more than 32 deep ({rel[:80]}...); refusing to read it.")
            if is_dir:
                self._add_folder(rel)
                continue
            folder, _, name = rel.rpartition("/")
            self._add_folder(folder)
            self.filenames[folder].append(name)
            self.stored_name[rel] = stored
            total += size
            if len(self.stored_name) > max_files:
                raise DatasetError(
                    f"{path.name} holds more than {max_files:,} files, the limit; pick a smaller set "
                    f"or raise max_files."
                )
        if total > max_bytes:
            raise DatasetError(
                f"{path.name} would unpack to {total / 1e6:,.0f} MB, more than the limit of "
                f"{max_bytes / 1e6:,.0f} MB; use a smaller set or raise max_bytes."
            )

    def _add_folder(self, rel: str) -> None:
        while rel not in self.subdirs:
            self.subdirs[rel], self.filenames[rel] = set(), []
            parent, _, name = rel.rpartition("/")
            self._add_folder(parent)
            self.subdirs[parent].add(name)
            rel = parent

    def _list_zip(self) -> Iterator[tuple[str, str, int, bool]]:
        try:
            self.zip = zipfile.ZipFile(self.path)
            infos = self.zip.infolist()
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise DatasetError(
                f"{self.path.name} is not a zip file or is damaged ({exc}); create it again, for "
                f"example with 'zip -r data.zip <folder>'."
            ) from exc
        for info in infos:
            raw = info.filename.replace("\\", "/")  # some Windows tools write backslashes
            if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":") or ".." in raw.split("/"):
                raise DatasetError(
                    f"{self.path.name} contains the unsafe path {info.filename!r} (absolute or "
                    f"pointing outside the archive); refusing to read it."
                )
            if info.flag_bits & 0x1:
                raise DatasetError(f"{self.path.name} is password-protected; upload a zip without a password.")
            rel = "/".join(p for p in raw.split("/") if p and p != ".")
            if rel:
                yield rel, info.filename, info.file_size, info.is_dir()

    def _list_folder(self) -> Iterator[tuple[str, str, int, bool]]:
        for dirpath, dirnames, filenames in os.walk(self.path):  # does not follow links to folders
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            base = os.path.relpath(dirpath, self.path).replace(os.sep, "/")
            prefix = "" if base == "." else base + "/"
            for d in dirnames:
                yield prefix + d, prefix + d, 0, True
            for f in filenames:
                full = os.path.join(dirpath, f)
                if os.path.isfile(full):
                    yield prefix + f, prefix + f, os.path.getsize(full), False

    def __enter__(self) -> "_Source":
        return self

    def __exit__(self, *exc_info) -> None:
        if self.zip is not None:
            self.zip.close()

    def read(self, rel: str) -> bytes:
        name = self.stored_name[rel]
        return self.zip.read(name) if self.zip is not None else (self.path / name).read_bytes()

    def children(self, folder: str) -> tuple[list[str], list[str]]:
        """Sorted names of the immediate sub-folders and files of `folder` ("" is the top)."""
        return sorted(self.subdirs[folder]), sorted(self.filenames[folder])

    def files_under(self, folder: str) -> list[str]:
        """Relative paths of all files below `folder`, at any depth, sorted."""
        found, stack = [], [folder]
        while stack:
            current = stack.pop()
            found += [_join(current, f) for f in self.filenames[current]]
            stack += [_join(current, d) for d in self.subdirs[current]]
        return sorted(found)


def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _join(*parts: str) -> str:
    return "/".join(p for p in parts if p)


@dataclass
class _Layout:
    classes: list[str]
    members: list[str]  # image files to decode, in order
    labels: list[int]
    origin: list[int]  # 0 train folder, 1 test folder, -1 no split folders
    skipped: list[str]  # files left out: not images, or images outside any class folder
    notes: list[str]


def _find_layout(src: _Source) -> _Layout:
    top = ""
    # Unwrap folders like "cifar10/" that hold everything else (as zipping a folder produces),
    # but never a lone folder of images: that is a (single) class, reported below.
    for _ in range(4):
        dirs, files = src.children(top)
        if len(dirs) != 1 or any(_is_image(f) for f in files) or not src.children(_join(top, dirs[0]))[0]:
            break
        top = _join(top, dirs[0])
    dirs, files = src.children(top)
    where = f"{src.path.name}{'/' + top if top else ''}"
    lower = {d.lower(): d for d in dirs}
    train_dir = next((lower[n] for n in _TRAIN_NAMES if n in lower), None)
    test_dir = next((lower[n] for n in _TEST_NAMES if n in lower), None)
    notes: list[str] = []
    skipped = [_join(top, f) for f in files if _is_image(f)]  # images outside any class folder

    if train_dir and test_dir:
        ignored = [d for d in dirs if d not in (train_dir, test_dir)]
        if ignored:
            notes.append(f"ignored folder(s) {', '.join(ignored)} next to {train_dir}/ and {test_dir}/")
        splits = [(0, _join(top, train_dir)), (1, _join(top, test_dir))]
        class_dirs, stray = src.children(splits[0][1])
        skipped += [_join(splits[0][1], f) for f in stray if _is_image(f)]
        test_classes, stray = src.children(splits[1][1])
        skipped += [_join(splits[1][1], f) for f in stray if _is_image(f)]
        if not test_classes:
            raise DatasetError(
                f"{where}: {test_dir}/ holds no class folders; put the test images in "
                f"{test_dir}/<class>/, or remove {test_dir}/ to have a test split held out from {train_dir}/."
            )
        extra = sorted(set(test_classes) - set(class_dirs))
        if extra:
            raise DatasetError(
                f"{where}: {test_dir}/ has class folder(s) {extra} that {train_dir}/ lacks; "
                f"both must use the same class names."
            )
    else:
        splits = [(-1, top)]
        class_dirs = dirs
        test_classes = []

    if not class_dirs:
        raise DatasetError(
            f"{where}: no class folders found. Put each class's images in its own folder: "
            f"<class>/<image>.jpg, optionally inside train/ and test/ folders."
        )
    if len(class_dirs) < 2:
        raise DatasetError(
            f"{where}: only one class folder ({class_dirs[0]!r}); a classifier needs at least two classes."
        )

    # All train images first, then all test images: a split is then a slice of the decoded
    # tensor, a view rather than a copy of up to hundreds of MB.
    members, labels, origin = [], [], []
    for split_origin, split_dir in splits:
        for label, cls in enumerate(class_dirs):
            if split_origin == 1 and cls not in test_classes:
                continue
            folder = _join(split_dir, cls)
            found = src.files_under(folder)
            images = [f for f in found if _is_image(f)]
            skipped += [f for f in found if not _is_image(f)]
            if not images:
                what = "is empty" if not found else "has no image files (.jpg, .png, ...)"
                raise DatasetError(f"{where}: class folder {folder[len(top):].lstrip('/')!r} {what}.")
            members += images
            labels += [label] * len(images)
            origin += [split_origin] * len(images)
    return _Layout(class_dirs, members, labels, origin, skipped, notes)


def _auto_image_size(src: _Source, members: list[str]) -> tuple[int, int]:
    """(chosen size, typical source size) from the headers of up to 32 images spread over the set."""
    from PIL import Image

    step = max(1, len(members) // 32)
    sides = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # only headers are read here
        for name in members[::step][:32]:
            try:
                with Image.open(io.BytesIO(src.read(name)), formats=_PIL_FORMATS) as im:
                    sides.append(min(im.size))
            except Exception:
                continue  # unreadable files are counted when decoding
    typical = int(np.median(sides)) if sides else 32
    if typical <= 32:
        return max(IMAGE_SIZE_RANGE[0], typical), typical
    return (32 if typical <= 64 else 64), typical


def _decode_all(src: _Source, members: list[str], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode, convert and resize images: ([n, S, S, 3] uint8, status per image).

    Status: 0 colour, 1 grayscale (stored in all three channels), 2 unreadable.
    One process on purpose. Measured on the 60,000 CIFAR-10 jpgs (2 cores): 7.2 s of CPU
    serially; a pool of two forked workers spent 11 s of CPU in all (pickling the pixels back
    costs 1.8 s in the parent) and was slower in wall time whenever the other core was busy, as
    it is while a training run or the app is up. At best it saves about a quarter of a one-off
    cost that the cache then removes: not worth forking a multi-threaded server process.
    """
    from PIL import Image, ImageOps

    out = np.zeros((len(members), size, size, 3), dtype=np.uint8)
    status = np.full(len(members), 2, dtype=np.int8)
    with warnings.catch_warnings():
        # PIL only warns about images up to twice its pixel limit and then decodes them: a tiny
        # file that claims to be huge (a decompression bomb) would take gigabytes. Refused below.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        for i, name in enumerate(members):
            try:
                with Image.open(io.BytesIO(src.read(name)), formats=_PIL_FORMATS) as im:
                    if im.width * im.height > Image.MAX_IMAGE_PIXELS:
                        raise ValueError(f"{im.width}x{im.height} pixels: too large to decode safely")
                    gray = im.mode in _GRAYSCALE_MODES
                    im.draft("L" if gray else "RGB", (size, size))  # JPEG: decode at a reduced scale, much faster
                    im = im.convert("L" if gray else "RGB")
                    if im.size != (size, size):
                        # Shorter side to `size`, then a centre crop: keeps proportions, loses the edges.
                        im = ImageOps.fit(im, (size, size), method=Image.Resampling.BILINEAR)
                    arr = np.asarray(im)
                out[i] = arr[..., None] if gray else arr
                status[i] = 1 if gray else 0
            except Exception:
                continue  # corrupt, truncated, not really an image, a bomb: reported as skipped
    return out, status


def _source_fingerprint(src_kind: str, path: Path) -> str:
    """What must change for a cached decode to be stale: size and mtime of the zip / every file."""
    if src_kind == "zip":
        st = path.stat()
        return f"{st.st_size}:{st.st_mtime_ns}"
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for f in sorted(filenames):
            st = (Path(dirpath) / f).stat()
            h.update(f"{dirpath}/{f}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _cache_paths(kind: str, path: Path, image_size: int | None) -> tuple[Path, str]:
    """(cache file, its stale siblings' glob): one file per (source, image_size), replaced when the source changes."""
    stem = hashlib.sha256(f"{_CACHE_VERSION}:{kind}:{path}:{image_size or 'auto'}".encode()).hexdigest()[:16]
    version = hashlib.sha256(_source_fingerprint(kind, path).encode()).hexdigest()[:16]
    folder = home() / "cache"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"images-{stem}-{version}.pt", f"images-{stem}-*.pt"


def _load_images(
    kind: str,
    raw_path: str,
    image_size: int | None,
    seed: int,
    val_ratio: float,
    max_bytes: int,
    max_files: int,
    notes: list[str],
):
    if not raw_path.strip():
        raise DatasetError(f"'{kind}:' needs a path, e.g. '{kind}:/home/me/pets{'.zip' if kind == 'zip' else ''}'")
    path = Path(raw_path.strip()).expanduser()
    if kind == "folder" and not path.is_dir():
        raise DatasetError(f"folder not found: {path}")
    if kind == "zip" and not path.is_file():
        raise DatasetError(f"zip file not found: {path}")
    path = path.resolve()

    cache_file, siblings = _cache_paths(kind, path, image_size)
    decoded = None
    if cache_file.is_file():
        try:
            decoded = torch.load(cache_file, weights_only=True)
        except Exception:
            decoded = None  # a half-written or old cache: decode again
    if decoded is None:
        decoded = _decode_source(kind, path, image_size, max_bytes, max_files)
        tmp = cache_file.with_suffix(f".tmp{os.getpid()}")
        torch.save(decoded, tmp)
        for stale in cache_file.parent.glob(siblings):
            stale.unlink(missing_ok=True)
        os.replace(tmp, cache_file)  # atomic: a concurrent load sees the old file or the new one

    x, y, origin = decoded["x"], decoded["y"], decoded["origin"]
    notes += decoded["notes"]
    if decoded["layout"] == "split":
        n_train = int((origin == 0).sum())
        return x[:n_train], y[:n_train], x[n_train:], y[n_train:], decoded["classes"]
    test = torch.zeros(len(y), dtype=torch.bool)
    test[_stratified_holdout(y, val_ratio, _generator(seed, "holdout"))] = True
    if not test.any():
        raise DatasetError(f"{path.name}: every class has a single image, so none can be held out as a test split.")
    notes.insert(0, f"split: {_percent(val_ratio)} of each class held out as test (seed {seed})")
    return x[~test], y[~test], x[test], y[test], decoded["classes"]


@dataclass(frozen=True)
class ImagesOverview:
    """What a folder or zip of class folders holds, read from its file list and a few image headers."""

    classes: tuple[str, ...]
    train_files: int  # image files in train/ (all of them when there is no split)
    test_files: int  # image files in test/ (or val/); 0 when there is no split
    split: bool  # has train/ and test/ folders of its own
    typical_size: int  # median shorter side of up to 32 images spread over the set, in pixels


def describe_images(name: str, *, max_bytes: int = DEFAULT_MAX_BYTES, max_files: int = DEFAULT_MAX_FILES) -> ImagesOverview:
    """Classes, file counts and image size of a "folder:<path>" or "zip:<path>" dataset without
    decoding it: a fraction of a second even for the 60,000 files of CIFAR-10. Raises DatasetError
    for what load_dataset would refuse because of the layout (no class folders, one class, ...)."""
    kind, _, raw_path = name.partition(":")
    if kind not in ("folder", "zip") or not raw_path.strip():
        raise DatasetError(f"{name!r} is not a 'folder:<path>' or 'zip:<path>' dataset")
    path = Path(raw_path.strip()).expanduser()
    if not (path.is_dir() if kind == "folder" else path.is_file()):
        raise DatasetError(f"{'folder' if kind == 'folder' else 'zip file'} not found: {path}")
    with _Source(kind, path.resolve(), max_bytes, max_files) as src:
        layout = _find_layout(src)
        _, typical = _auto_image_size(src, layout.members)
    origin = np.asarray(layout.origin)
    return ImagesOverview(
        classes=tuple(layout.classes),
        train_files=int((origin != 1).sum()),
        test_files=int((origin == 1).sum()),
        split=bool(len(origin) and (origin >= 0).all()),
        typical_size=typical,
    )


def _stratified_holdout(y: torch.Tensor, ratio: float, generator: torch.Generator) -> torch.Tensor:
    """Indices to hold out: round(n * ratio) of each class, at least 1 and at most n - 1."""
    held = []
    for c in range(int(y.max()) + 1):
        idx = (y == c).nonzero().flatten()
        if len(idx) < 2:
            continue  # a lone image must stay in train, or the class could not be learned at all
        k = min(len(idx) - 1, max(1, round(len(idx) * ratio)))
        held.append(idx[torch.randperm(len(idx), generator=generator)[:k]])
    return torch.cat(held) if held else torch.zeros(0, dtype=torch.int64)


def _decode_source(kind: str, path: Path, image_size: int | None, max_bytes: int, max_files: int) -> dict:
    with _Source(kind, path, max_bytes, max_files) as src:
        return _decode_layout(src, image_size)


def _decode_layout(src: _Source, image_size: int | None) -> dict:
    path = src.path
    layout = _find_layout(src)
    notes = list(layout.notes)
    if image_size is None:
        size, typical = _auto_image_size(src, layout.members)
        notes.append(f"images at {size}x{size}, chosen automatically (the source images are about {typical} px)")
    else:
        size = image_size
        notes.append(f"images at {size}x{size}, as requested")

    pixels, status = _decode_all(src, layout.members, size)
    ok = status != 2
    skipped = layout.skipped + [m for m, s in zip(layout.members, status) if s == 2]
    labels = torch.tensor(layout.labels, dtype=torch.int64)
    origin = torch.tensor(layout.origin, dtype=torch.int8)
    ok_t = torch.from_numpy(ok)
    for c, cls in enumerate(layout.classes):
        in_train = ok_t & (labels == c) & (origin != 1)
        if not in_train.any():
            raise DatasetError(
                f"{path.name}: no readable images left in class {cls!r} "
                f"({'train split' if (origin == 0).any() else 'its folder'}); its files are corrupt or not images."
            )
    if skipped:
        examples = ", ".join(skipped[:3]) + (", ..." if len(skipped) > 3 else "")
        notes.append(
            f"skipped {len(skipped)} file(s) that are not readable images or lie outside class folders ({examples})"
        )

    all_gray = bool((status[ok] == 1).all())
    x = torch.from_numpy(pixels[ok]).permute(0, 3, 1, 2)
    x = (x[:, :1] if all_gray else x).contiguous()
    return {
        "x": x,
        "y": labels[ok_t],
        "origin": origin[ok_t],
        "classes": list(layout.classes),
        "layout": "split" if (origin >= 0).all() else "unsplit",
        "notes": notes,
    }
