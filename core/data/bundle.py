"""What every dataset becomes: a `DatasetBundle` of uint8 tensors, and the seeded, stratified
picks that subsets and held-out splits are made of."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from core.i18n import _


class DatasetError(ValueError):
    """A dataset that cannot be loaded; the message is meant for the user."""




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
                raise DatasetError(
                    _("{split}_x must be uint8 [N, C, H, W], got {dtype} {shape}").format(
                        split=split, dtype=x.dtype, shape=tuple(x.shape)
                    )
                )
            if y.dtype != torch.int64 or y.shape != (x.shape[0],):
                raise DatasetError(
                    _("{split}_y must be int64 [{n}], got {dtype} {shape}").format(
                        split=split, n=x.shape[0], dtype=y.dtype, shape=tuple(y.shape)
                    )
                )
        if self.train_x.shape[1:] != self.test_x.shape[1:]:
            raise DatasetError(
                _("train images are {train_shape} but test images are {test_shape}").format(
                    train_shape=tuple(self.train_x.shape[1:]), test_shape=tuple(self.test_x.shape[1:])
                )
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


def percent(fraction: float) -> str:
    return f"{fraction * 100:.3g}%"


def seeded_generator(seed: int, tag: str) -> torch.Generator:
    """A generator for one purpose: changing the subset must not change the shapes or the split."""
    digest = hashlib.sha256(f"{seed}:{tag}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def stratified_pick(y: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """Sorted indices of `fraction` of each class (at least one image of every non-empty class)."""
    picked = [torch.zeros(0, dtype=torch.int64)]
    for c in range(int(y.max()) + 1 if len(y) else 0):
        idx = (y == c).nonzero().flatten()
        if len(idx) == 0:
            continue
        k = max(1, round(len(idx) * fraction))
        picked.append(idx[torch.randperm(len(idx), generator=generator)[:k]])
    return torch.cat(picked).sort().values


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
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


def resize_uint8(x: torch.Tensor, size: int) -> torch.Tensor:
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


def seed_int(seed: int, tag: str) -> int:
    return int(seeded_generator(seed, tag).initial_seed())


def stratified_holdout(y: torch.Tensor, ratio: float, generator: torch.Generator) -> torch.Tensor:
    """Indices to hold out: round(n * ratio) of each class, at least 1 and at most n - 1."""
    held = []
    for c in range(int(y.max()) + 1):
        idx = (y == c).nonzero().flatten()
        if len(idx) < 2:
            continue  # a lone image must stay in train, or the class could not be learned at all
        k = min(len(idx) - 1, max(1, round(len(idx) * ratio)))
        held.append(idx[torch.randperm(len(idx), generator=generator)[:k]])
    return torch.cat(held) if held else torch.zeros(0, dtype=torch.int64)
