"""Use a finished run's model: rebuild it from the stored config and weights, then classify images.

    predict(run_id, image)   # image: [C, H, W] uint8 or float in [0, 1] -> [(class, prob), ...]

Images are brought to what the model was trained on: the channel count (gray <-> RGB), the
side length, the pixel permutation (data.permute_pixels) and the dataset's normalisation, all
recorded in the run's config and summary.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from core.augment import as_unit_float
from core.data.permute import permute_pixels, pixel_permutation
from core.i18n import _
from core.runs import store
from core.training import models

# ITU-R BT.601 luma weights, as torchvision's rgb_to_grayscale uses.
_LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True, eq=False)
class LoadedModel:
    run_id: str
    model: torch.nn.Module  # in eval mode
    classes: tuple[str, ...]
    in_channels: int
    image_size: int
    mean: torch.Tensor  # [1, C, 1, 1] on the model's device
    std: torch.Tensor
    pixel_order: torch.Tensor | None = None  # the run's data.permute_pixels permutation, if it trained with one

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] or [C, H, W], uint8 or float in [0, 1] -> normalised model input."""
        x = images.unsqueeze(0) if images.dim() == 3 else images
        if x.dim() != 4:
            raise ValueError(_("expected an image [C, H, W] or a batch [N, C, H, W], got shape {shape}").format(
                shape=tuple(images.shape),
            ))
        x = x.to(self.device)
        x = as_unit_float(x).float()
        if x.shape[1] == 3 and self.in_channels == 1:
            x = (x * torch.tensor(_LUMA, device=x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
        elif x.shape[1] == 1 and self.in_channels == 3:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] != self.in_channels:
            raise ValueError(_("the model takes {in_channels}-channel images, got {channels} channels").format(
                in_channels=self.in_channels,
                channels=x.shape[1],
            ))
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", antialias=True, align_corners=False)
        if self.pixel_order is not None:
            x = permute_pixels(x, self.pixel_order)
        return (x - self.mean) / self.std

    @torch.no_grad()
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(self.prepare(images)).float()


def load_run_model(run_id: str, device: str | torch.device = "cpu") -> LoadedModel:
    """The run's trained model; raises ValueError when the run has no weights (yet)."""
    record = store.get_run(run_id)
    weights = store.run_dir(run_id) / record.summary.get("weights", "weights.pt")
    data = record.summary.get("data")
    if data is None or not weights.exists():
        raise ValueError(_("run {run_id} ({status}) has no saved weights to predict with").format(
            run_id=run_id,
            status=record.status,
        ))
    return _load(run_id, str(weights), weights.stat().st_mtime_ns, str(torch.device(device)))


@functools.lru_cache(maxsize=4)
def _load(run_id: str, weights: str, mtime_ns: int, device: str) -> LoadedModel:
    # Keyed on the weights file's mtime as well, so a rerun under the same id is not served stale.
    record = store.get_run(run_id)
    cfg = record.train_config()
    data = record.summary["data"]
    classes = tuple(data["classes"])
    model = models.build_model(
        cfg.model.name, in_channels=data["in_channels"], num_classes=len(classes),
        image_size=data["image_size"], **_without_pretrained(cfg.model.options),
    )
    model.load_state_dict(torch.load(Path(weights), map_location=device, weights_only=True))
    model.to(device).eval()
    shape = (1, data["in_channels"], 1, 1)
    return LoadedModel(
        run_id=run_id,
        model=model,
        classes=classes,
        in_channels=data["in_channels"],
        image_size=data["image_size"],
        mean=torch.tensor(data["mean"], device=device).view(shape),
        std=torch.tensor(data["std"], device=device).view(shape),
        pixel_order=pixel_permutation(data["image_size"], data["image_size"], cfg.data.seed) if cfg.data.permute_pixels else None,
    )


def _without_pretrained(options: dict) -> dict:
    # The stored weights replace any pretrained ones, so never fetch those again.
    return {k: (False if k == "pretrained" else v) for k, v in options.items()}


def predict(run_id: str, images: torch.Tensor, k: int = 5) -> list[tuple[str, float]] | list[list[tuple[str, float]]]:
    """Top-k (class, probability) for one image [C, H, W], or a list of them for a batch [N, C, H, W]."""
    loaded = load_run_model(run_id)
    probs = loaded.logits(images).softmax(dim=1)
    top = probs.topk(min(k, loaded.num_classes), dim=1)
    results = [
        [(loaded.classes[i], p) for p, i in zip(values.tolist(), indices.tolist())]
        for values, indices in zip(top.values, top.indices)
    ]
    return results[0] if images.dim() == 3 else results
