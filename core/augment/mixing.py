"""Batch tricks that mix images and their labels: (images, labels) -> (images, soft labels).

Training calls these unchanged; the preview calls them on a batch of two or four pictures.
Each returns an `info` dict with what was drawn (lambda per image, partner indices, patch
areas) so the page can show it.
"""
from __future__ import annotations

import numpy as np
import torch

from .kernels import box_mask, paste
from .schema import AugmentError


def soft_labels(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Integer labels [N] -> one-hot float [N, K]; soft labels pass through."""
    if y.dtype.is_floating_point:
        if y.dim() != 2 or y.shape[1] != num_classes:
            raise AugmentError(f"soft labels must have shape [N, {num_classes}], got {tuple(y.shape)}")
        return y
    return torch.nn.functional.one_hot(y.long(), num_classes).float()


def beta(alpha: float, size, generator: torch.Generator) -> torch.Tensor:
    """Beta(alpha, alpha) draws, reproducible from a torch generator.

    torch's Beta distribution cannot take a generator, so a numpy generator is seeded from ours.
    """
    if alpha <= 0:
        raise AugmentError(f"alpha must be positive, got {alpha}")
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return torch.from_numpy(np.random.default_rng(seed).beta(alpha, alpha, size)).float()


def _partners(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randperm(n, generator=generator)


def mixup(x, y, num_classes: int, alpha: float, generator: torch.Generator):
    """Zhang et al. (2018): x = lam*x_i + (1-lam)*x_j, label likewise; lam ~ Beta(alpha, alpha) per image."""
    n = x.shape[0]
    y = soft_labels(y, num_classes).to(x.device)
    lam = beta(alpha, n, generator).to(x)
    j = _partners(n, generator).to(x.device)
    # lerp(partner, x, lam) = lam * x + (1 - lam) * partner, in one pass over the batch
    mixed = torch.lerp(x.index_select(0, j), x, lam.view(-1, 1, 1, 1))
    ly = lam.view(-1, 1)
    return mixed, ly * y + (1 - ly) * y[j], {"lam": lam, "partner": j}


def cutmix(x, y, num_classes: int, alpha: float, generator: torch.Generator):
    """Yun et al. (2019): paste a box of a partner image; the label weight is the kept area.

    The box has area (1 - lam) of the image, lam ~ Beta(alpha, alpha), and a uniformly random
    centre; where the border clips it, lam is corrected to the area actually kept.
    """
    n, _, h, w = x.shape
    y = soft_labels(y, num_classes).to(x.device)
    lam = beta(alpha, n, generator)
    j = _partners(n, generator).to(x.device)
    cut = torch.sqrt(1 - lam)
    ch, cw = (cut * h).long(), (cut * w).long()
    cy = torch.randint(0, h, (n,), generator=generator)
    cx = torch.randint(0, w, (n,), generator=generator)
    top, bottom = (cy - ch // 2).clamp(0, h), (cy + ch // 2).clamp(0, h)
    left, right = (cx - cw // 2).clamp(0, w), (cx + cw // 2).clamp(0, w)
    mask = box_mask((h, w), top, left, bottom - top, right - left, x.device)
    mixed = paste(x, mask, x.index_select(0, j))
    kept = 1 - ((bottom - top) * (right - left)).float() / (h * w)
    ly = kept.to(x).view(-1, 1)
    info = {"lam": kept, "partner": j, "box": torch.stack((top, left, bottom - top, right - left), 1)}
    return mixed, ly * y + (1 - ly) * y[j], info


def ricap(x, y, num_classes: int, beta_param: float, generator: torch.Generator):
    """Takahashi et al. (2018): tile four random crops of four images into one.

    The boundary (bw, bh) ~ (W*Beta, H*Beta) is drawn once per batch as in the paper; patch k
    comes from the batch permuted by its own random order at a random position, and the label
    is the four labels weighted by the patch areas.
    """
    n, _, h, w = x.shape
    y = soft_labels(y, num_classes).to(x.device)
    b = beta(beta_param, 2, generator)
    bw, bh = int(round(w * float(b[0]))), int(round(h * float(b[1])))
    widths = (bw, w - bw, bw, w - bw)
    heights = (bh, bh, h - bh, h - bh)
    origins = ((0, 0), (0, bw), (bh, 0), (bh, bw))
    mixed = torch.empty_like(x)
    soft = torch.zeros_like(y)
    perms, areas, offsets = [], [], []
    for k in range(4):
        idx = _partners(n, generator).to(x.device)
        pw, ph = widths[k], heights[k]
        ox = int(torch.randint(0, w - pw + 1, (1,), generator=generator))
        oy = int(torch.randint(0, h - ph + 1, (1,), generator=generator))
        ty, tx = origins[k]
        mixed[:, :, ty:ty + ph, tx:tx + pw] = x[idx, :, oy:oy + ph, ox:ox + pw]
        area = pw * ph / (w * h)
        soft += area * y[idx]
        perms.append(idx)
        areas.append(area)
        offsets.append((oy, ox))
    info = {"areas": torch.tensor(areas), "sources": torch.stack(perms, 1), "boundary": (bh, bw), "offsets": offsets}
    return mixed, soft, info


MIXERS = {
    "mixup": (mixup, "alpha", "Mixup (Zhang et al. 2018): blend two images and their labels with lam ~ Beta(alpha, alpha)."),
    "cutmix": (cutmix, "alpha", "CutMix (Yun et al. 2019): paste a box of another image; labels weighted by area."),
    "ricap": (ricap, "beta", "RICAP (Takahashi et al. 2018): tile crops of four images; labels weighted by patch area."),
}


def mix(kind: str, x, y, num_classes: int, strength: float, generator: torch.Generator):
    """Dispatch by name, for configs: mix("cutmix", x, y, 10, 1.0, g)."""
    try:
        fn = MIXERS[kind][0]
    except KeyError:
        raise AugmentError(f"unknown mixing {kind!r}; known: {sorted(MIXERS)}") from None
    return fn(x, y, num_classes, strength, generator)
