"""Models: every network the lab trains, built by name from a declared option schema.

Each model here keeps its final classifier layer in an attribute named `head` (torchvision's
ResNet calls it `fc`, its MobileNetV2 `classifier`), so that `param_groups` can give the head
its own learning rate or freeze the body, whatever the architecture. Models take normalised
float images [N, C, H, W] and return logits [N, num_classes].
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from core.i18n import _
from core.params import Param, ParamError


class ModelError(ParamError):
    """A model or option that cannot be built; the message is meant for the user."""


# ============================================================================
# Declarations: a model is a builder and its options (each a core.params.Param)
# ============================================================================


@dataclass(frozen=True)
class ModelInfo:
    label: str
    help: str
    options: tuple[Param, ...]
    build: Callable[..., nn.Module]  # build(in_channels, num_classes, image_size, **options)
    min_image_size: int = 8
    # The side its pretrained weights were trained at: a pretrained run with data.image_size None
    # resizes the images to it.
    input_size: int | None = None
    # The core.training.weights key when the model can start from ImageNet weights (its `pretrained` option).
    pretrained: str | None = None

    def defaults(self) -> dict:
        return {o.name: o.default for o in self.options}

    def validate(self, name: str, options: dict) -> dict:
        """Complete `options` with defaults and check every value; unknown keys are an error."""
        known = {o.name: o for o in self.options}
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ModelError(_("{name}: unknown option(s) {unknown}; allowed: {allowed}").format(
                name=name,
                unknown=unknown,
                allowed=sorted(known) or _("none"),
            ))
        return {o.name: o.validate(options.get(o.name, o.default), f"{name}.{o.name}", ModelError) for o in self.options}


# ============================================================================
# Architectures
# ============================================================================


class MLP(nn.Module):
    """Fully connected: flatten -> [Linear -> ReLU (-> Dropout)] per hidden layer -> head."""

    def __init__(self, in_channels: int, num_classes: int, image_size: int, hidden: list[int], dropout: float):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_channels * image_size * image_size
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class LeNet(nn.Module):
    """LeNet-5 (LeCun et al., 1998) with max pooling: conv5(6)-pool-conv5(16)-pool-fc120-fc84-head.

    Images smaller than 32 px get 2 px of padding in the first convolution, the usual way to feed
    28x28 MNIST to a network designed for 32x32, so both end in 16 maps of 5x5.
    """

    def __init__(self, in_channels: int, num_classes: int, image_size: int, activation: str):
        super().__init__()
        act = nn.ReLU if activation == "relu" else nn.Tanh
        pad = 2 if image_size < 32 else 0
        side = ((image_size + 2 * pad - 4) // 2 - 4) // 2
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=pad), act(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), act(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(16 * side * side, 120), act(),
            nn.Linear(120, 84), act(),
        )  # fmt: skip
        self.head = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


_VGG_LAYERS = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


class VGG(nn.Module):
    """VGG (Simonyan & Zisserman, 2014) in its CIFAR form: 3x3 convs (+BN) and one linear head.

    A 32x32 input reaches 1x1 after the five poolings. A pooling that would shrink the map
    below 1x1 (28x28 inputs reach 1x1 after four) is left out, and the last map is averaged,
    so any size from 28 up works.
    """

    def __init__(self, in_channels: int, num_classes: int, image_size: int, layout: list, batch_norm: bool,
                 width: int = 64):
        super().__init__()
        layers: list[nn.Module] = []
        channels, side = in_channels, image_size
        for item in layout:
            if item == "M":
                if side >= 2:
                    layers.append(nn.MaxPool2d(2))
                    side //= 2
                continue
            item = item * width // 64  # the paper's widths at width 64; the CPU preset trains an eighth (width 8)
            layers.append(nn.Conv2d(channels, item, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(item))
            layers.append(nn.ReLU(inplace=True))
            channels = item
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class BasicBlock(nn.Module):
    """Two 3x3 convs with a shortcut (He et al., 2016); a 1x1 conv shortcut when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class CifarResNet18(nn.Module):
    """ResNet-18 for small images: a 3x3 stem without max pooling keeps 32x32 detail, then four
    stages of two BasicBlocks at widths w, 2w, 4w, 8w (w = 64 gives the usual 11.2M parameters)."""

    def __init__(self, in_channels: int, num_classes: int, width: int):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
        )
        stages, c = [], width
        for i, mult in enumerate((1, 2, 4, 8)):
            out = width * mult
            stages += [BasicBlock(c, out, stride=1 if i == 0 else 2), BasicBlock(out, out, stride=1)]
            c = out
        self.stages = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.stages(self.stem(x))))


class PatchWhitening(nn.Module):
    """A 2x2 convolution whose filters whiten the input's 2x2 patches, fitted to the first batch.

    The filters are the eigenvectors of the patch second-moment matrix divided by the square
    root of their eigenvalues, and the same filters negated (so a following GELU keeps both
    signs): every direction of patch space comes out with unit variance, and the first layer
    starts out already knowing the data's pixel correlations instead of learning them (the
    patch-whitening layer of Keller Jordan's airbench). The filters are a buffer, not a
    parameter: they stay as fitted; the bias learns.

    Fitting happens on the first forward pass in training mode, from that batch, which is
    why the layer needs no access to the dataset. Until then (a model evaluated untrained) the
    filters are random, as in an ordinary conv. The fitted filters travel in the state dict.
    """

    kernel = 2

    def __init__(self, in_channels: int, eps: float = 5e-4):
        super().__init__()
        patch = in_channels * self.kernel * self.kernel
        self.out_channels = 2 * patch
        self.eps = eps  # keeps near-zero eigenvalues (flat patches) from being blown up
        weight = torch.empty(self.out_channels, in_channels, self.kernel, self.kernel)
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5))  # nn.Conv2d's own initialisation
        self.register_buffer("weight", weight)
        self.register_buffer("fitted", torch.tensor(False))
        self.bias = nn.Parameter(torch.zeros(self.out_channels))

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> None:
        """Set the filters from the 2x2 patches of a batch [N, C, H, W]."""
        k = self.kernel
        patches = x.detach().double().unfold(2, k, 1).unfold(3, k, 1)  # [N, C, H', W', k, k]
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, x.shape[1] * k * k)
        moment = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(moment)  # ascending; eigenvectors in columns
        filters = (eigenvectors.T / torch.sqrt(eigenvalues.clamp(min=0) + self.eps).unsqueeze(1)).flip(0)
        filters = filters.view(-1, x.shape[1], k, k)
        self.weight.copy_(torch.cat((filters, -filters)).to(self.weight))
        self.fitted.fill_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and not self.fitted:
            with torch.autocast(x.device.type, enabled=False):
                self.fit(x)
        return F.conv2d(x, self.weight.to(x.dtype), self.bias.to(x.dtype))


class FastCNN(nn.Module):
    """A small speed-run network after Keller Jordan's airbench and David Page's ResNet-9.

    stem -> 3 blocks, each [conv -> maxpool 2 -> BN -> GELU, (depth - 1) x (conv -> BN -> GELU)]
    -> global max pool -> linear head -> times `logit_scale`.

    The stem is either a patch-whitening layer (see PatchWhitening; 2x2, no padding, so 32 px
    become 31) or a plain 3x3 conv with batch norm. Pooling right after the first conv of a
    block does the expensive convs at the lower resolution; the global max pool asks "is the
    feature anywhere?", which suits objects at any position; scaling the logits down (airbench
    uses 1/9) keeps the early softmax outputs soft, so the large learning rates of a short
    schedule do not blow up the first steps. Block convs start as partial identities (Dirac
    init on the first in_channels filters): the signal passes through the untrained net
    unchanged, which lets high learning rates work from the first step. `flip_tta` averages the
    logits of each image and its mirror image in eval mode (test-time augmentation; right for
    photos, wrong for text or digits); `shift_tta` adds copies shifted by a pixel (airbench's
    multi-crop). `fixed_bn_scale` keeps every batch norm's scale at 1, so only its shift learns.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        width: float,
        depth: int,
        logit_scale: float,
        stem: str = "whiten",
        bn_momentum: float = 0.1,
        flip_tta: bool = False,
        shift_tta: bool = False,
        fixed_bn_scale: bool = False,
    ):
        super().__init__()
        widths = [max(8, round(w * width)) for w in (32, 64, 128)]

        def batch_norm(c: int) -> nn.BatchNorm2d:
            bn = nn.BatchNorm2d(c, momentum=bn_momentum)
            if fixed_bn_scale:
                # The scale stays 1 as a buffer, not a parameter: no optimiser and no (un)freezing
                # of the body can make it learn, and the state dict keeps its usual keys.
                del bn.weight
                bn.register_buffer("weight", torch.ones(c))
            return bn

        def conv_bn(c_in: int, c_out: int, pool: bool) -> list[nn.Module]:
            conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
            nn.init.dirac_(conv.weight[: min(c_in, c_out)])
            layers: list[nn.Module] = [conv]
            if pool:
                layers.append(nn.MaxPool2d(2))
            return layers + [batch_norm(c_out), nn.GELU()]

        if stem == "whiten":
            self.stem = nn.Sequential(PatchWhitening(in_channels), nn.GELU())
            c = self.stem[0].out_channels
        else:
            c = max(8, round(24 * width))
            self.stem = nn.Sequential(nn.Conv2d(in_channels, c, 3, padding=1, bias=False), batch_norm(c), nn.GELU())
        layers: list[nn.Module] = []
        for w in widths:
            layers += conv_bn(c, w, pool=True)
            for unused in range(depth - 1):
                layers += conv_bn(w, w, pool=False)
            c = w
        layers += [nn.AdaptiveMaxPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c, num_classes, bias=False)
        self.logit_scale = logit_scale
        self.flip_tta = flip_tta
        self.shift_tta = shift_tta

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(self.stem(x))) * self.logit_scale

    def _views(self, x: torch.Tensor) -> torch.Tensor:
        """The logits of x, averaged with its mirror image's when flip_tta is on."""
        if self.flip_tta:
            return (self.logits(x) + self.logits(x.flip(-1))) / 2
        return self.logits(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or not (self.flip_tta or self.shift_tta):
            return self.logits(x)
        if not self.shift_tta:
            return self._views(x)
        # airbench's multi-crop: half the weight on the image as it is, a quarter on each of two
        # copies shifted by one pixel along the diagonal, one each way (borders mirrored).
        h, w = x.shape[-2:]
        padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
        one_way, other_way = padded[..., :h, :w], padded[..., 2:, 2:]
        return self._views(x) / 2 + (self._views(one_way) + self._views(other_way)) / 4


# Where each torchvision architecture keeps its first conv and its final linear layer.
_TV_LAYERS = {"resnet18": ("conv1", "fc"), "mobilenet_v2": ("features.0.0", "classifier.1")}


def _replace(model: nn.Module, path: str, module: nn.Module) -> None:
    parent, unused, name = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, name, module)


def _torchvision_model(arch: str, in_channels: int, num_classes: int, pretrained: bool) -> nn.Module:
    """torchvision's ImageNet `arch` with a new final layer for num_classes, optionally starting
    from ImageNet weights (through torchvision's weights API; see core.training.weights)."""
    import torchvision

    from core.training import weights

    model = getattr(torchvision.models, arch)(weights=None)
    if pretrained:
        try:
            model.load_state_dict(weights.load_state_dict(arch))
        except weights.WeightsError as exc:
            raise ModelError(_("{exc}, or train with pretrained off.").format(exc=exc)) from exc
    conv_path, head_path = _TV_LAYERS[arch]
    if in_channels != 3:
        old = model.get_submodule(conv_path)
        new = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, stride=old.stride, padding=old.padding,
                        bias=old.bias is not None)
        if pretrained:
            # Gray input copied into in_channels channels: summing the RGB filters and sharing the
            # sum out makes the new first layer respond as the original did to the same gray image.
            with torch.no_grad():
                new.weight.copy_(old.weight.sum(dim=1, keepdim=True).repeat(1, in_channels, 1, 1) / in_channels)
        _replace(model, conv_path, new)
    _replace(model, head_path, nn.Linear(model.get_submodule(head_path).in_features, num_classes))
    return model


def _torchvision_info(arch: str, *, label: str, help: str, pretrained_help: str) -> "ModelInfo":
    """A torchvision ImageNet architecture as a model of this project: one option, `pretrained`."""
    return ModelInfo(
        label=label, help=help, options=(Param("pretrained", "bool", False, help=pretrained_help),),
        build=lambda c, k, s, pretrained: _torchvision_model(arch, c, k, pretrained),
        min_image_size=16, input_size=224, pretrained=arch,
    )


IMAGENET_MEAN = (0.485, 0.456, 0.406)  # what torchvision's ImageNet weights were trained with
IMAGENET_STD = (0.229, 0.224, 0.225)


def is_pretrained(name: str, options: dict) -> bool:
    """Whether the model starts from ImageNet weights."""
    return MODELS[name].pretrained is not None and bool(options.get("pretrained"))


def input_size(name: str, options: dict) -> int | None:
    """The side images are resized to when data.image_size is not set, or None for the dataset's own.

    A pretrained model learned its features at its input size (224 px for torchvision's ImageNet
    models), so it gets that; a smaller data.image_size trades accuracy for CPU time. A model
    trained from scratch has no size of its own.
    """
    return MODELS[name].input_size if is_pretrained(name, options) else None


def input_normalisation(name: str, options: dict, in_channels: int) -> tuple[tuple, tuple] | None:
    """The (mean, std) a model's input must be normalised with, or None for the dataset's own.

    A model started from ImageNet weights expects its input normalised as ImageNet was; its first
    layer's filters are tuned to that. One-channel input gets the mean of the three channels' values.
    """
    if not is_pretrained(name, options):
        return None
    if in_channels == 3:
        return IMAGENET_MEAN, IMAGENET_STD
    mean, std = sum(IMAGENET_MEAN) / 3, sum(IMAGENET_STD) / 3
    return (mean,) * in_channels, (std,) * in_channels


# ============================================================================
# Registry
# ============================================================================

_VGG_OPTIONS = (
    Param("batch_norm", "bool", True, help="Batch norm after each conv; without it VGG trains much worse."),
    Param("width", "int", 64, help="Channels of the first stage (the paper's 64); later stages use 2x, 4x, 8x. "
           "16 trains about 16x faster, which a CPU needs.", low=8, high=128),
)

MODELS: dict[str, ModelInfo] = {
    "mlp": ModelInfo(
        label="MLP (fully connected)",
        help="Flatten the image, then fully connected layers with ReLU. No notion of neighbouring "
        "pixels: a shifted image is a different input, so it shows what convolutions buy.",
        options=(
            Param(
                "hidden", "int_list", [256, 128], help="Width of each hidden layer; [] is a linear classifier.",
                low=1, high=4096, max_len=6,
            ),
            Param("dropout", "float", 0.0, help="Dropout after each hidden layer (0 = off).", low=0.0, high=0.9),
        ),
        build=lambda c, k, s, hidden, dropout: MLP(c, k, s, hidden, dropout),
    ),
    "lenet": ModelInfo(
        label="LeNet-5",
        help="The classic small CNN (LeCun 1998): two 5x5 conv + pool stages and three fully "
        "connected layers, about 60k parameters. For 28x28 and 32x32 images.",
        options=(
            Param("activation", "choice", "relu", help="ReLU (modern) or tanh (as in 1998).", choices=("relu", "tanh")),
        ),
        build=lambda c, k, s, activation: LeNet(c, k, s, activation),
        min_image_size=20,
    ),
    "vgg11": ModelInfo(
        label="VGG-11 (BN)",
        help="Eight 3x3 conv layers in five stages with batch norm, then one linear layer; about 9M "
        "parameters. Slow on a CPU.",
        options=_VGG_OPTIONS,
        build=lambda c, k, s, batch_norm, width: VGG(c, k, s, _VGG_LAYERS["vgg11"], batch_norm, width),
    ),
    "vgg16": ModelInfo(
        label="VGG-16 (BN)",
        help="Thirteen 3x3 conv layers in five stages with batch norm, then one linear layer; about "
        "15M parameters. Needs a GPU to train in reasonable time.",
        options=_VGG_OPTIONS,
        build=lambda c, k, s, batch_norm, width: VGG(c, k, s, _VGG_LAYERS["vgg16"], batch_norm, width),
    ),
    "resnet18": ModelInfo(
        label="ResNet-18 (CIFAR form)",
        help="ResNet-18 adapted to small images (3x3 stem, no max pool), 11M parameters at width 64; "
        "the usual CIFAR-10 baseline (about 95% with flips and crops). Needs a GPU at full width.",
        options=(
            Param("width", "int", 64, help="Channels of the first stage; later stages use 2x, 4x, 8x.", low=8, high=128),
        ),
        build=lambda c, k, s, width: CifarResNet18(c, k, width),
    ),
    "fastcnn": ModelInfo(
        label="FastCNN (CPU speed-run net)",
        help="A small airbench-style network built for accuracy per second on a CPU: a patch-whitening "
        "stem and three conv blocks (32/64/128 channels at width 1) with pooling early in each block, "
        "a global max pool and a scaled linear head; about 0.3M parameters. With the cpu_fast_cifar "
        "recipe it reaches about 87% on CIFAR-10 in under five minutes of training on a 2-core laptop CPU.",
        options=(
            Param(
                "width", "float", 1.0, help="Multiplies every block's channel count (32, 64, 128 at width 1).",
                low=0.25, high=4.0,
            ),
            Param("depth", "int", 2, help="Convs per block (the first one pools).", low=1, high=4),
            Param(
                "logit_scale", "float", 1 / 9, help="Multiplies the logits; small values keep early training stable.",
                low=0.01, high=1.0,
            ),
            Param(
                "stem", "choice", "whiten",
                help="First layer: 'whiten' fits 2x2 filters that whiten the pixels to the first training batch "
                "(faster start); 'conv' is a plain learned 3x3 conv with batch norm.",
                choices=("whiten", "conv"),
            ),
            Param(
                "bn_momentum", "float", 0.1,
                help="How fast batch norm's running statistics follow the batches (PyTorch's default 0.1); "
                "short runs with large learning rates evaluate better with faster tracking, e.g. 0.4.",
                low=0.01, high=0.9,
            ),
            Param(
                "flip_tta", "bool", False,
                help="At evaluation, average the predictions for each image and its mirror image (test-time "
                "augmentation): costs a second forward pass, gains a little on photos; wrong for digits or text.",
            ),
            Param(
                "shift_tta", "bool", False,
                help="At evaluation, also average in the predictions for copies of each image shifted one pixel "
                "up-left and down-right (airbench's multi-crop; with flip_tta their mirror images too): two "
                "or four more forward passes; for nets trained with small shifts.",
            ),
            Param(
                "fixed_bn_scale", "bool", False,
                help="Keep batch norm's scale at 1 and let only its shift learn (airbench): a short, fast "
                "schedule has fewer parameters to settle.",
            ),
        ),
        build=lambda c, k, s, **options: FastCNN(c, k, **options),
        min_image_size=10,  # the 2x2 whitening stem loses a pixel, then three poolings halve the side
    ),
    "tv_resnet18": _torchvision_info(
        "resnet18",
        label="ResNet-18 (torchvision, ImageNet form)",
        help="torchvision's ResNet-18 (11.7M parameters) with a new final layer; optionally starts from "
        "ImageNet weights for fine-tuning (give the head a higher learning rate). Pretrained, images are "
        "normalised with ImageNet's mean and std and resized to 224 px unless the image size is set "
        "(160 or 128 px cost about a half or a third of the compute).",
        pretrained_help="Start from ImageNet weights (downloaded on first use; offline, "
        "the file must be in torch's cache: see `python -m core.training.weights status`).",
    ),
    "tv_mobilenet_v2": _torchvision_info(
        "mobilenet_v2",
        label="MobileNetV2 (torchvision, ImageNet form)",
        help="torchvision's MobileNetV2 (Sandler et al. 2018; 3.5M parameters, about a sixth of ResNet-18's "
        "compute) with a new final layer; optionally starts from ImageNet weights, which work offline "
        "once installed (`python -m core.training.weights install`). Pretrained, images are normalised with "
        "ImageNet's mean and std and resized to 224 px unless the image size is set (160 or 128 px cost "
        "about a half or a third of the compute).",
        pretrained_help="Start from ImageNet weights (from torch's cache, put there "
        "offline by `python -m core.training.weights install`, or downloaded when online).",
    ),
}

INIT_SCHEMES = ("default", "xavier", "kaiming")


def build_model(name: str, *, in_channels: int, num_classes: int, image_size: int = 32, **options) -> nn.Module:
    """The model `name` for images [N, in_channels, image_size, image_size]; options per MODELS[name]."""
    if name not in MODELS:
        raise ModelError(_("unknown model {name!r}; choose one of {models}").format(name=name, models=", ".join(MODELS)))
    info = MODELS[name]
    checks = (("in_channels", in_channels, 1), ("num_classes", num_classes, 2), ("image_size", image_size, info.min_image_size))
    for what, value, low in checks:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ModelError(_("{name}: {what} must be a whole number of at least {low}, got {value!r}").format(
                name=name,
                what=what,
                low=low,
                value=value,
            ))
    return info.build(in_channels, num_classes, image_size, **info.validate(name, options))


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def parameter_count(name: str, options: dict, *, in_channels: int, num_classes: int, image_size: int) -> int:
    """Weights of model `name` for these images and classes, built without fetching any pretrained
    weights (the count is the same with or without them)."""
    options = {k: (False if k == "pretrained" else v) for k, v in options.items()}
    return count_parameters(build_model(name, in_channels=in_channels, num_classes=num_classes, image_size=image_size, **options))


def head_module(model: nn.Module) -> nn.Module:
    """The final classifier layer: `head` in this module's models, `fc` in torchvision's ResNets,
    the last linear layer of `classifier` (dropout, then linear) in its MobileNetV2."""
    for attr in ("head", "fc", "classifier"):
        module = getattr(model, attr, None)
        if isinstance(module, nn.Module):
            inner = [m for m in module.modules() if isinstance(m, nn.Linear)]
            return inner[-1] if inner else module
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ModelError(_("{model} has no linear layer to treat as its head").format(model=type(model).__name__))
    return linears[-1]


def param_groups(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """{"body": [...], "head": [...]}: every parameter exactly once, for per-group learning rates
    (e.g. a 10x rate for a new head on a pretrained body) or for freezing the body."""
    head_ids = {id(p) for p in head_module(model).parameters()}
    groups: dict[str, list[nn.Parameter]] = {"body": [], "head": []}
    for p in model.parameters():
        groups["head" if id(p) in head_ids else "body"].append(p)
    return groups


def body_batchnorms(model: nn.Module) -> list[nn.Module]:
    """The batch-norm layers outside the head, whose statistics fine-tuning may keep (optim.freeze_bn_stats)."""
    head = set(head_module(model).modules())
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m not in head]


def init_weights(model: nn.Module, scheme: str = "default") -> nn.Module:
    """Re-initialise every conv and linear layer in place and return the model.

    default: PyTorch's own initialisation (each layer's reset_parameters).
    xavier:  Glorot & Bengio 2010, uniform in +-gain*sqrt(6 / (fan_in + fan_out)), zero biases;
             keeps activation variance for tanh-like units.
    kaiming: He et al. 2015, normal with std sqrt(2 / fan_in), zero biases; made for ReLU.
    Batch norm layers go back to weight 1, bias 0 in every scheme.
    """
    if scheme not in INIT_SCHEMES:
        raise ModelError(_("unknown init scheme {scheme!r}; choose one of {schemes}").format(
            scheme=scheme,
            schemes=", ".join(INIT_SCHEMES),
        ))
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            if scheme == "default":
                module.reset_parameters()
                continue
            if scheme == "xavier":
                nn.init.xavier_uniform_(module.weight)
            else:
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_parameters()
    return model
