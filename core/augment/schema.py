"""Declarations: an augmentation is one `Op` with a parameter schema.

The schema is the single source of truth for everything around an augmentation: the page
builds its sliders from it, `Pipeline.from_list` validates with it, the training config stores
what it validated, and the code export reads it. An op is two pure functions around that
schema, in the torchvision v2 spirit: `sample` draws every random number for a whole batch
(one set per image, as plain tensors in a dict) and `apply` uses them. Keeping the two apart
is what lets the preview show what was drawn and lets a seed replay a grid exactly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from core.i18n import _
from core.params import Param, ParamError


class AugmentError(ParamError):
    """A pipeline or parameter that cannot be used; the message is meant for the user."""


# sample(n, shape (C, H, W), params, generator, context) -> dict of per-image tensors, each with
# the image as its first dimension (the pipeline may apply a batch a few images at a time)
Sampler = Callable[[int, tuple, dict, torch.Generator, dict], dict]
# apply(images [N,C,H,W] float in [0,1], drawn, params, context) -> images
Applier = Callable[[torch.Tensor, dict, dict, dict], torch.Tensor]


@dataclass(frozen=True)
class Op:
    """An augmentation: schema + sample + apply + how to explain and export it."""

    name: str
    label: str
    group: str  # "flip" | "geometry" | "colour" | "occlusion" | "policy"
    help: str
    params: tuple[Param, ...]
    sample: Sampler
    apply: Applier
    # torchvision v2 expression with the same parameters; input_size is (H, W) of the images it will see
    torchvision_code: Callable[[dict, tuple[int, int]], str]
    # one short line describing what tile i drew, for the preview
    describe: Callable[[dict, int], str]
    # extra helper code the torchvision export needs (e.g. a Cutout class torchvision lacks)
    torchvision_helper: str = ""
    paper: str = ""
    # True when apply only moves pixels (copies them, or fills with 0) and works on any dtype:
    # a pipeline then runs such leading steps on uint8 images, a quarter of the bytes, before it
    # converts to float (the same values: copying commutes with dividing by 255).
    moves_pixels: bool = False
    # True when apply also takes uint8 images and returns float, converting them itself
    # (kernels.as_unit_float, so bit for bit the floats of converting first) after copying
    # them about: the pipeline then hands the bytes over instead of converting in front of it.
    takes_bytes: bool = False

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def defaults(self) -> dict:
        return {p.name: p.default for p in self.params}

    def validate(self, params: dict) -> dict:
        """Complete `params` with defaults and check every value; unknown keys are an error."""
        if not isinstance(params, dict):
            raise AugmentError(
                _("{name}: parameters must be an object, got {params!r}").format(name=self.name, params=params)
            )
        known = {p.name for p in self.params}
        unknown = sorted(set(params) - known)
        if unknown:
            raise AugmentError(
                _("{name}: unknown parameter(s) {unknown}; allowed: {allowed}").format(
                    name=self.name, unknown=unknown, allowed=sorted(known) or _("none")
                )
            )
        return {p.name: self._check(p, params.get(p.name, p.default)) for p in self.params}

    def scaled(self, params: dict, factor: float) -> dict:
        """`params` for the same picture `factor` times the size: every value in pixels (declared
        with unit "px") is scaled, a positive one stays positive and within its range, 0 ("keep the
        input size") stays 0; the rest, fractions and probabilities, mean the same at any size."""
        return {p.name: _scale_pixels(p, params[p.name], factor) if p.unit == "px" else params[p.name]
                for p in self.params}

    def _check(self, p: Param, value: Any) -> Any:
        return p.validate(value, f"{self.name}.{p.name}", AugmentError)

    def extremes(self) -> dict[str, dict]:
        """Low, default and high settings of every parameter, for tests and demos."""
        low, high = {}, {}
        for p in self.params:
            if p.kind in ("float", "int"):
                low[p.name], high[p.name] = p.low, p.high
            elif p.kind in ("float_range", "int_range"):
                low[p.name], high[p.name] = (p.low, p.low), (p.low, p.high)
            elif p.kind == "bool":
                low[p.name], high[p.name] = False, True
            else:
                low[p.name], high[p.name] = p.choices[0], p.choices[-1]
        return {"low": self.validate(low), "default": self.defaults(), "high": self.validate(high)}


def _scale_pixels(p: Param, value: Any, factor: float) -> Any:
    def one(v):
        if not v:
            return v
        scaled = v * factor
        if p.integer:  # whole pixels, on the declared grid (a kernel side of 3, 5, 7...)
            step = int(p.step or 1)
            scaled = max(1, round(scaled)) if step == 1 else int(p.low + step * round((scaled - p.low) / step))
        return min(max(scaled, p.low), p.high)

    return tuple(one(v) for v in value) if isinstance(value, (tuple, list)) else one(value)


REGISTRY: dict[str, Op] = {}


def register(op: Op) -> Op:
    assert op.name not in REGISTRY, f"augmentation {op.name!r} declared twice"
    for p in op.params:
        op._check(p, p.default)  # a declaration with a bad default fails at import
    REGISTRY[op.name] = op
    return op


def get_op(name: str) -> Op:
    try:
        return REGISTRY[name]
    except KeyError:
        raise AugmentError(
            _("unknown augmentation {name!r}; known: {known}").format(name=name, known=sorted(REGISTRY))
        ) from None


# ---- small sampling helpers shared by the ops ------------------------------------------------


def uniform(n: int, lo: float, hi: float, generator: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)


def bernoulli(n: int, p: float, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator) < p


def fmt(values: dict, i: int, digits: int = 2) -> str:
    """'name=value' pairs of image i, for the tile captions."""
    parts = []
    for k, v in values.items():
        x = v[i].item() if isinstance(v, torch.Tensor) else v
        parts.append(f"{k}={x:.{digits}f}" if isinstance(x, float) else f"{k}={x}")
    return ", ".join(parts)
