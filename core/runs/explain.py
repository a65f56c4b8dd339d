"""Where a run's model looks: class activation maps for its predictions.

    maps = explain(run_id, images)          # one ClassMap per image, for its predicted class
    overlay(image_uint8_hwc, maps[0].heat)  # the map over the picture, for a page

Grad-CAM (Selvaraju et al., 2017, https://arxiv.org/abs/1610.02391): the gradients of the class's
score with respect to the last feature map, averaged over its positions, weight that map's
channels; their positive sum, upsampled to the input, is where evidence for the class came
from. For a network that ends in global average pooling and one linear layer this is exactly
the class activation map of Zhou et al. (2016) up to a constant (a test holds that). The layer is
found by running the model once: the last module whose output is still a feature map with more
than one position, so it works for every model the dashboard trains, the course's and
torchvision's alike. A fully connected network has no feature map: its map is the input gradient's
size at each pixel (Simonyan et al., 2014). A run trained on permuted pixels gets its map put
back in the picture's own pixel order.

Our own forty lines rather than the `grad-cam` package: that package needs OpenCV, matplotlib and
scikit-learn, which the dashboard has no other use for, for the same few tensor operations.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from core.i18n import N_, tr
from core.runs.predict import LoadedModel, load_run_model

GRAD_CAM = N_("Grad-CAM on {layer}")
INPUT_GRADIENT = N_("input gradients (the model has no feature map)")


@dataclass(frozen=True)
class ClassMap:
    heat: torch.Tensor  # [H, W] in [0, 1] at the model's input size, in the picture's own pixel order
    class_index: int
    class_name: str
    probability: float
    method: str  # in words: which layer, or input gradients


def feature_layer(model: torch.nn.Module, x: torch.Tensor) -> str | None:
    """The name of the last module (in the order the forward pass finishes them) whose output is a
    feature map [N, C, h, w] with h * w > 1; None for a model without one (an MLP)."""
    finished: list[str] = []
    hooks = []
    for name, module in model.named_modules():
        if not name:
            continue

        def record(module, inputs, output, name=name):
            if isinstance(output, torch.Tensor) and output.dim() == 4 and output.shape[-1] * output.shape[-2] > 1:
                finished.append(name)

        hooks.append(module.register_forward_hook(record))
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        for hook in hooks:
            hook.remove()
    return finished[-1] if finished else None


def grad_cam(model: torch.nn.Module, x: torch.Tensor, layer: str, classes: torch.Tensor | None = None):
    """(maps [N, H, W] in [0, 1] at x's size, logits [N, K]) for `classes` (default: each image's
    predicted class), from the feature map `layer` outputs."""
    module = dict(model.named_modules())[layer]
    held: dict[str, torch.Tensor] = {}

    def keep(module, inputs, output):
        held["features"] = output
        return output.clone()  # what comes next may work in place (ReLU(inplace=True)); ours stays as it was

    hook = module.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            logits = model(x.detach().requires_grad_(True)).float()  # a graph even with every weight frozen
            chosen = logits.argmax(dim=1) if classes is None else classes.to(logits.device)
            # autograd.grad, not backward: the model is shared by every tab, its parameters' grads stay untouched
            (grads,) = torch.autograd.grad(logits.gather(1, chosen.view(-1, 1)).sum(), held["features"])
    finally:
        hook.remove()
    features = held["features"].detach()
    weights = grads.float().mean(dim=(2, 3), keepdim=True)  # one weight per channel: the gradient's average
    cam = F.relu((weights * features.float()).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return _unit(cam), logits.detach()


def input_gradient(model: torch.nn.Module, x: torch.Tensor, classes: torch.Tensor | None = None):
    """(maps [N, H, W] in [0, 1], logits): the size of the class score's gradient at each pixel."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        logits = model(x).float()
        chosen = logits.argmax(dim=1) if classes is None else classes.to(logits.device)
        (grad,) = torch.autograd.grad(logits.gather(1, chosen.view(-1, 1)).sum(), x)
    return _unit(grad.abs().amax(dim=1)), logits.detach()


def _unit(maps: torch.Tensor) -> torch.Tensor:
    """Each map scaled to [0, 1] by its own maximum (all zeros stay zeros)."""
    top = maps.flatten(1).amax(dim=1).clamp_min(1e-12).view(-1, 1, 1)
    return (maps / top).clamp(0, 1)


def explain_loaded(loaded: LoadedModel, images: torch.Tensor, classes: torch.Tensor | None = None) -> list[ClassMap]:
    """A ClassMap per image ([C, H, W] or [N, C, H, W], uint8 or float in [0, 1]), for `classes`
    (class indices, one per image) or each image's predicted class."""
    model = loaded.model
    x = loaded.prepare(images)
    layer = feature_layer(model, x)
    if layer is not None:
        heat, logits = grad_cam(model, x, layer, classes)
        method = tr(GRAD_CAM).format(layer=layer)
    else:
        heat, logits = input_gradient(model, x, classes)
        method = tr(INPUT_GRADIENT)
    if loaded.pixel_order is not None:  # back from the order the model saw to the picture's own
        side = heat.shape[-1]
        flat = torch.empty_like(heat.flatten(1))
        flat[:, loaded.pixel_order.to(flat.device)] = heat.flatten(1)
        heat = flat.view(-1, side, side)
    probs = logits.softmax(dim=1)
    chosen = logits.argmax(dim=1) if classes is None else classes.to(logits.device)
    return [
        ClassMap(heat=heat[i].cpu(), class_index=int(c), class_name=loaded.classes[int(c)],
                 probability=float(probs[i, c]), method=method)
        for i, c in enumerate(chosen.tolist())
    ]


def explain(run_id: str, images: torch.Tensor, classes: torch.Tensor | None = None) -> list[ClassMap]:
    """ClassMaps from the run's trained model (see explain_loaded)."""
    return explain_loaded(load_run_model(run_id), images, classes)


# A perceptually ordered colour map (dark blue -> teal -> yellow, after matplotlib's viridis),
# interpolated from five anchors, so the overlay needs no plotting library.
_ANCHORS = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=np.float32)


def colour(heat: np.ndarray) -> np.ndarray:
    """[H, W] in [0, 1] -> [H, W, 3] uint8."""
    position = np.clip(heat, 0, 1) * (len(_ANCHORS) - 1)
    low = np.floor(position).astype(int).clip(0, len(_ANCHORS) - 2)
    t = (position - low)[..., None]
    return (_ANCHORS[low] * (1 - t) + _ANCHORS[low + 1] * t).round().astype(np.uint8)


def overlay(image: np.ndarray, heat: torch.Tensor | np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The picture ([H, W] or [H, W, 3] uint8) with the map over it, resized to the picture.
    Where the map is 0 the picture shows through at 1 - alpha / 2; where it is 1, at 1 - alpha."""
    rgb = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image
    heat = torch.as_tensor(heat, dtype=torch.float32)
    if tuple(heat.shape) != rgb.shape[:2]:
        heat = F.interpolate(heat[None, None], size=rgb.shape[:2], mode="bilinear", align_corners=False)[0, 0]
    h = heat.clamp(0, 1).numpy()
    weight = (alpha * (0.5 + 0.5 * h))[..., None]
    return (rgb.astype(np.float32) * (1 - weight) + colour(h).astype(np.float32) * weight).round().astype(np.uint8)
