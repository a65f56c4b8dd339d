"""How a finished run's accuracy falls as its test images are corrupted more and more.

    probe(run_ids, "brightness")   # DataFrame: run_id, strength, accuracy, images

Each corruption is one of the augmentation ops (core.augment.ops) with its strength pinned:
a rotation by exactly that angle, brightness or contrast factors drawn from [1 - s, 1 + s],
Gaussian noise of standard deviation s, a Gaussian blur of sigma s, one square hole of side s
(a share of the image side). Every run sees the very same corrupted images: they are drawn from
one seeded generator, so curves of runs on the same test split differ only by the models. A
class sees, for example, that a model trained with colour jitter loses less when the brightness
changes than one trained without.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd
import torch

from core.augment import Pipeline
from core.data import load_for_config
from core.i18n import N_, _
from core.runs import store
from core.runs.predict import load_run_model
from core.training.seeds import generator

PROBE_BATCH = 500
MAX_IMAGES = 2000  # test images probed per run (a stratified share is not needed: the split is shuffled)


@dataclass(frozen=True)
class Corruption:
    name: str
    label: str  # N_(): shown through tr()
    unit: str  # N_(): the strength's unit, for the axis
    strengths: tuple[float, ...]  # the default sweep; 0 is the clean test split
    step: Callable[[float], dict]  # strength > 0 -> a pipeline step {"op", "params"}


def _blur(sigma: float) -> dict:
    kernel = min(31, 2 * math.ceil(3 * sigma) + 1)  # three sigmas each side, as far as the op allows
    return {"op": "gaussian_blur", "params": {"kernel_size": kernel, "sigma": [sigma, sigma]}}


def _jitter(**factor: float) -> dict:
    params = {"brightness": 0.0, "contrast": 0.0, "saturation": 0.0, "hue": 0.0, **factor}
    return {"op": "color_jitter", "params": params}


CORRUPTIONS: dict[str, Corruption] = {c.name: c for c in (
    Corruption("rotation", N_("Rotation"), N_("degrees"), (0, 10, 20, 30, 45, 60, 90),
               lambda s: {"op": "rotation", "params": {"degrees": [s, s]}}),
    Corruption("brightness", N_("Brightness"), N_("largest change of the factor"), (0, 0.2, 0.4, 0.6, 0.8, 0.95),
               lambda s: _jitter(brightness=s)),
    Corruption("contrast", N_("Contrast"), N_("largest change of the factor"), (0, 0.2, 0.4, 0.6, 0.8, 0.95),
               lambda s: _jitter(contrast=s)),
    Corruption("noise", N_("Gaussian noise"), N_("standard deviation"), (0, 0.02, 0.05, 0.1, 0.2, 0.3),
               lambda s: {"op": "gaussian_noise", "params": {"p": 1.0, "sigma": s}}),
    Corruption("blur", N_("Blur"), N_("sigma in pixels"), (0, 0.5, 1.0, 1.5, 2.0, 3.0), _blur),
    Corruption("occlusion", N_("Occlusion"), N_("side of the hole, share of the image"), (0, 0.1, 0.2, 0.3, 0.4, 0.5),
               lambda s: {"op": "cutout", "params": {"p": 1.0, "n_holes": 1, "size": s}}),
)}


def corrupted(images: torch.Tensor, corruption: str, strength: float, seed: int = 0,
              context: dict | None = None) -> torch.Tensor:
    """float [N, C, H, W] in [0, 1] with the corruption at that strength (0: unchanged)."""
    if corruption not in CORRUPTIONS:
        raise ValueError(_("unknown corruption {name!r}; known: {known}").format(name=corruption, known=", ".join(CORRUPTIONS)))
    if strength == 0:
        return images
    pipeline = Pipeline.from_list([CORRUPTIONS[corruption].step(strength)])
    out, unused = pipeline.apply(images, generator(seed, f"probe-{corruption}-{strength:g}"), context or {})
    return out


def held_out(record: store.RunRecord, max_images: int = MAX_IMAGES) -> tuple[torch.Tensor, torch.Tensor]:
    """The run's test images (uint8) and labels, as the run's data config loads them, at most max_images."""
    bundle = load_for_config(record.config["data"], allow_download=False)
    return bundle.test_x[:max_images], bundle.test_y[:max_images]


def probe(run_ids: Sequence[str], corruption: str, strengths: Sequence[float] | None = None, seed: int = 0,
          max_images: int = MAX_IMAGES) -> pd.DataFrame:
    """Test accuracy of each run at each strength: columns run_id, strength, accuracy, images.
    Every run needs its trained weights (probeable); the first max_images test images are used."""
    strengths = list(CORRUPTIONS[corruption].strengths if strengths is None else strengths)
    rows = []
    for run_id in run_ids:
        record = store.get_run(run_id)
        loaded = load_run_model(run_id)
        x, y = held_out(record, max_images)
        context = {"mean": tuple(record.summary.get("data", {}).get("mean") or ())}
        for strength in strengths:
            correct = 0
            for start in range(0, len(y), PROBE_BATCH):
                batch = x[start:start + PROBE_BATCH].float().div(255)
                # the same draws for every run: the generator restarts at each batch from the strength's seed
                images = corrupted(batch, corruption, float(strength), seed + start, context)
                correct += int((loaded.logits(images).argmax(dim=1).cpu() == y[start:start + PROBE_BATCH]).sum())
            rows.append({"run_id": run_id, "strength": float(strength), "accuracy": correct / max(1, len(y)),
                         "images": len(y)})
    return pd.DataFrame(rows, columns=["run_id", "strength", "accuracy", "images"])


def probeable(record: store.RunRecord) -> bool:
    """Whether the run has a trained model to probe (finished or stopped with weights)."""
    return bool(record.summary.get("weights")) and (store.run_dir(record.id) / record.summary["weights"]).exists()
