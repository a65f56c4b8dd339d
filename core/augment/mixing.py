"""Batch tricks that mix images and their labels: (images, labels) -> (images, soft labels).

Each mixer is declared once (`Mixer`, in `MIXERS`): its name, label, paper, help, the Beta
parameter it draws from (a `core.params.Param`), the config field that switches it on, how many
pictures the Lab mixes, the function that draws and applies it, and how to say in words what it
drew. The config's fields, the trainer's `BatchMixer` (one configured object, as timm's Mixup is)
and the Lab's mixing preview are all read from there. Each function returns an `info` dict with
what was drawn (lambda per image, partner indices, patch areas) so the page can show it.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from core.i18n import _
from core.params import Param

from .kernels import box_mask, paste
from .schema import AugmentError


def soft_labels(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Integer labels [N] -> one-hot float [N, K]; soft labels pass through."""
    if y.dtype.is_floating_point:
        if y.dim() != 2 or y.shape[1] != num_classes:
            raise AugmentError(
                _("soft labels must have shape [N, {num_classes}], got {shape}").format(
                    num_classes=num_classes, shape=tuple(y.shape)
                )
            )
        return y
    return torch.nn.functional.one_hot(y.long(), num_classes).float()


def beta(alpha: float, size, generator: torch.Generator) -> torch.Tensor:
    """Beta(alpha, alpha) draws, reproducible from a torch generator.

    torch's Beta distribution cannot take a generator, so a numpy generator is seeded from ours.
    """
    if alpha <= 0:
        raise AugmentError(_("alpha must be positive, got {alpha}").format(alpha=alpha))
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
    # lerp(partner, x, lam) = lam * x + (1 - lam) * partner, in one pass, in place in the
    # gathered partners (no second batch-sized buffer)
    mixed = x.index_select(0, j).lerp_(x, lam.view(-1, 1, 1, 1))
    ly = lam.view(-1, 1)
    return mixed, ly * y + (1 - ly) * y[j], {"lam": lam, "partner": j}


def cutmix(x, y, num_classes: int, alpha: float, generator: torch.Generator):
    """Yun et al. (2019): paste a box of a partner image; the label weight is the kept area.

    The box has area (1 - lam) of the image, lam ~ Beta(alpha, alpha), and a uniformly random
    centre; where the border clips it, lam is corrected to the area actually kept.
    """
    n, unused, h, w = x.shape
    y = soft_labels(y, num_classes).to(x.device)
    lam = beta(alpha, n, generator)
    j = _partners(n, generator).to(x.device)
    cut = torch.sqrt(1 - lam)
    ch, cw = (cut * h).long(), (cut * w).long()
    cy = torch.randint(0, h, (n,), generator=generator)
    cx = torch.randint(0, w, (n,), generator=generator)
    top, bottom = (cy - ch // 2).clamp(0, h), (cy + ch // 2).clamp(0, h)
    left, right = (cx - cw // 2).clamp(0, w), (cx + cw // 2).clamp(0, w)
    mask = box_mask((h, w), top, left, bottom - top, right - left, x.device, dtype=x.dtype)
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
    n, unused, h, w = x.shape
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
    # where each patch sits in the mixed image: (top, left, height, width), in patch order
    boxes = [(ty, tx, ph, pw) for (ty, tx), ph, pw in zip(origins, heights, widths)]
    info = {"areas": torch.tensor(areas), "sources": torch.stack(perms, 1), "boundary": (bh, bw), "offsets": offsets,
            "boxes": boxes}
    return mixed, soft, info


def _names(names: Sequence[str] | None, n: int) -> list[str]:
    return list(names) if names else [f"#{i + 1}" for i in range(n)]


def _describe_pair(what: str) -> Callable[[dict, int, Sequence[str] | None], str]:
    def describe(info: dict, i: int, names: Sequence[str] | None = None) -> str:
        lam, j = float(info["lam"][i]), int(info["partner"][i])
        names = _names(names, len(info["lam"]))
        said = (
            _("λ = {lam:.2f}: {lam:.0%} of {image} + {rest:.0%} of {partner}").format(
                lam=lam, image=names[i], rest=1 - lam, partner=names[j]
            )
            if what == "blend"
            else _("kept {lam:.0%} of {image}; the box comes from {partner}").format(
                lam=lam, image=names[i], partner=names[j]
            )
        )
        return said + (" " + _("(drew itself: unchanged)") if j == i else "")
    return describe


def _describe_ricap(info: dict, i: int, names: Sequence[str] | None = None) -> str:
    sources = info["sources"][i].tolist()
    names = _names(names, len(info["sources"]))
    patches = ", ".join(f"{names[s]} {float(a):.0%}" for s, a in zip(sources, info["areas"]))
    return _("patches: {patches}").format(patches=patches)


@dataclass(frozen=True)
class Mixer:
    """A batch mixer, declared once."""

    name: str  # "mixup"
    label: str  # "Mixup"
    paper: str
    help: str  # what it does, in a sentence
    strength: Param  # the Beta distribution's parameter, > 0
    typical: float  # the paper's usual strength
    config_field: str  # the TricksConfig field whose strength switches it on (0: off)
    pictures: int  # how many pictures the Lab mixes to show it
    fn: Callable[..., tuple[torch.Tensor, torch.Tensor, dict]]
    describe: Callable[[dict, int, Sequence[str] | None], str]  # what was drawn for mixed image i, in words

    def __call__(self, x: torch.Tensor, y: torch.Tensor, num_classes: int, strength: float,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, dict]:
        strength = self.strength.validate(strength, f"{self.name} {self.strength.name}", AugmentError)
        return self.fn(x, y, num_classes, strength, generator)

    def config_param(self) -> Param:
        """The config field's declaration: the same strength, where 0 switches the mixer off."""
        symbol = self.strength.label
        return replace(
            self.strength, name=self.config_field, default=0.0, low_open=False, label=f"{self.label} {symbol}",
            help=f"{self.help} {symbol} is the Beta({symbol}, {symbol}) parameter; {self.typical:g} is typical; 0 is off.",
        )


def _strength(symbol: str, name: str) -> Param:
    return Param(name, "float", 1.0, low=0.0, low_open=True, high=10.0, step=0.1, label=symbol,
                 help="Small values give lopsided mixes (mostly one picture); 1 is uniform; large values mix evenly.")


MIXERS: dict[str, Mixer] = {m.name: m for m in (
    Mixer("mixup", "Mixup", "https://arxiv.org/abs/1710.09412",
          "Blend each batch with a shuffled copy of itself, labels too, with λ ~ Beta(α, α) (Zhang et al. 2018).",
          _strength("α", "alpha"), 0.2, "mixup_alpha", 2, mixup, _describe_pair("blend")),
    Mixer("cutmix", "CutMix", "https://arxiv.org/abs/1905.04899",
          "Paste a box from a shuffled copy of the batch; labels mixed by area, area ~ Beta(α, α) (Yun et al. 2019).",
          _strength("α", "alpha"), 1.0, "cutmix_alpha", 2, cutmix, _describe_pair("box")),
    Mixer("ricap", "RICAP", "https://arxiv.org/abs/1811.09030",
          "Tile four images' crops into one, labels mixed by area; the crossing point ~ Beta(β, β) (Takahashi et "
          "al. 2018).", _strength("β", "beta"), 0.3, "ricap_beta", 4, ricap, _describe_ricap),
)}


class BatchMixer:
    """The mixers a config switches on, configured once: called on every training batch, it mixes it
    with chance `prob`, picking one of the mixers that are on (as timm's Mixup does)."""

    def __init__(self, strengths: dict[str, float], prob: float = 1.0) -> None:
        self.mixers = [(MIXERS[name], float(s)) for name, s in strengths.items() if s > 0]
        self.prob = prob
        self.last: Mixer | None = None  # the mixer the last batch went through (None: unmixed)

    @classmethod
    def from_config(cls, tricks: Any) -> "BatchMixer":
        """From a TricksConfig: each mixer's strength from its declared field."""
        return cls({m.name: getattr(tricks, m.config_field) for m in MIXERS.values()}, tricks.mix_prob)

    def __bool__(self) -> bool:
        return bool(self.mixers)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, num_classes: int, generator: torch.Generator):
        """(images, soft targets, the mixer's info), or None when this batch is left unmixed."""
        self.last = None
        if not self.mixers or torch.rand(1, generator=generator).item() >= self.prob:
            return None
        mixer, strength = self.mixers[int(torch.randint(len(self.mixers), (1,), generator=generator))]
        self.last = mixer
        return mixer(x, y, num_classes, strength, generator)


def mix(kind: str, x, y, num_classes: int, strength: float, generator: torch.Generator):
    """Dispatch by name, for configs: mix("cutmix", x, y, 10, 1.0, g)."""
    try:
        mixer = MIXERS[kind]
    except KeyError:
        raise AugmentError(_("unknown mixing {kind!r}; known: {known}").format(kind=kind, known=sorted(MIXERS))) from None
    return mixer(x, y, num_classes, strength, generator)
