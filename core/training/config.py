"""The one config tree of a training run: frozen dataclasses that round-trip through JSON.

The training page, the CLI and the notebook API all build a `TrainConfig`; a run stores it as
JSON and the trainer reads nothing else. Every section checks its values when it is built, so a
typo or an out-of-range value fails at once with a message that names the key, instead of deep
inside a training run.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import math
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Union, get_args, get_origin, get_type_hints

from core.augment import Pipeline, mixing
from core.data import DATASETS, IMAGE_SIZE_RANGE, PATH_PREFIXES
from core.i18n import _
from core.params import Param
from core.training.models import INIT_SCHEMES, MODELS


class ConfigError(ValueError):
    """A config key is unknown or a value is out of range; the message names the dotted key."""


OPTIMIZERS = ("sgd", "adam", "adamw", "adabound")
SCHEDULES = ("constant", "step", "cosine", "sgdr", "onecycle")
ANNEAL_SHAPES = ("cos", "linear")  # one-cycle's edges, as PyTorch's OneCycleLR(anneal_strategy=...) names them
WARMUP_KINDS = ("linear", "gradual")
LENGTH_UNITS = ("epochs", "steps")
DEVICES = ("auto", "cpu", "cuda", "mps")
AMP_MODES = ("auto", "off", "bf16", "fp16")


def setting(default: Any, label: str, help: str, **declared: Any) -> Any:
    """A config field declared once: its default and, as metadata, its `core.params.Param` (the kind
    comes from the annotation, the name from the field). Validation, the Train page's widget, the
    CLI's flag and help and the JSON schema are all read from it."""
    declared.update(label=label, help=help)
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata={"param": declared})
    return field(default=default, metadata={"param": declared})


class _Section:
    """Shared behaviour of the config sections: type coercion and the declared ranges on
    construction, then `_validate` for what involves several fields."""

    section: ClassVar[str] = ""

    def __post_init__(self) -> None:
        # Coerce here rather than in from_dict so that direct construction
        # (OptimConfig(lr=1)) and JSON loading end in the same canonical values.
        params = section_params(type(self))
        for name, tp in get_type_hints(type(self)).items():
            if get_origin(tp) is ClassVar:
                continue
            key = f"{self.section}.{name}" if self.section else name
            value = _coerce(getattr(self, name), tp, key)
            object.__setattr__(self, name, value)
            if name in params:
                _check_declared(params[name], value, key)
        self._validate()

    def _validate(self) -> None:
        """Checks across fields; each section may override this."""

    def _check(self, ok: bool, name: str, message: str, **values: Any) -> None:
        """Raise ConfigError(message) unless ok; the message, already translated, is a whole sentence
        with {key} (this field's dotted key) and {value} (its value), plus any `values`."""
        if not ok:
            raise ConfigError(message.format(key=f"{self.section}.{name}", value=getattr(self, name), **values))


_KIND_OF_TYPE = {float: "float", int: "int", bool: "bool", str: "text", dict: "object"}


def _kind(tp: Any, declared: Mapping[str, Any]) -> str:
    if "kind" in declared:
        return declared["kind"]
    if get_origin(tp) in (Union, types.UnionType):
        tp = next(a for a in get_args(tp) if a is not type(None))
    if get_origin(tp) is tuple:
        item = get_args(tp)[0]
        return {float: "float_list", int: "int_list"}.get(item, "object")
    kind = _KIND_OF_TYPE[tp]
    return "choice" if kind == "text" and declared.get("choices") and not declared.get("suggested") else kind


@functools.cache
def section_params(cls: type) -> dict[str, Param]:
    """Field name -> its declared Param, for one section class."""
    hints = get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        if "param" not in f.metadata:
            continue
        declared = dict(f.metadata["param"])
        declared.pop("suggested", None)
        tp = hints[f.name]
        optional = get_origin(tp) in (Union, types.UnionType) and type(None) in get_args(tp)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        out[f.name] = Param(f.name, _kind(tp, f.metadata["param"]), default, optional=optional, **declared)
    return out


def _check_declared(p: Param, value: Any, key: str) -> None:
    """The declared range or choices (the type was already coerced)."""
    if value is None:
        return
    if p.kind == "choice" and value not in p.choices:
        raise ConfigError(_("{key} must be one of {choices} (got {value!r})").format(
            key=key,
            choices=", ".join(map(str, p.choices)),
            value=value,
        ))
    items = value if p.kind.endswith("_list") else (value,) if p.kind in ("float", "int") else ()
    if any(not p.in_range(v) for v in items):
        if p.kind.endswith("_list"):
            message = (_("{key} must be None or {range} each (got {value!r})") if p.optional
                       else _("{key} must be {range} each (got {value!r})"))
        else:
            message = _("{key} must be None or {range} (got {value!r})") if p.optional else _("{key} must be {range} (got {value!r})")
        raise ConfigError(message.format(key=key, range=p.range_text(), value=value))


@dataclass(frozen=True)
class DataConfig(_Section):
    section: ClassVar[str] = "data"

    # Embedded generated dataset: needs no download and trains in seconds on a laptop CPU.
    dataset: str = setting(
        "shapes", "Dataset", "Which images to train on: an embedded dataset (shapes, digits), a torchvision one "
        "(cifar10, mnist, fashion_mnist: their files under the data folder, or the download option), or your "
        "own images as folder:<path> or zip:<path> of class folders.", widget="dataset", flag="dataset",
    )
    variant: str | None = setting(
        None, "Variant", DATASETS["shapes"].help, none_means="the standard set", widget="variant", flag="variant",
    )
    image_size: int | None = setting(
        None, "Image size", "Side length every image is resized to. Compute grows with the pixels: 160 px costs "
        "about half of 224 px, 128 px about a third; memory too (a 224 px image holds 150 kB, so set a subset for "
        "large datasets).", low=IMAGE_SIZE_RANGE[0], high=IMAGE_SIZE_RANGE[1], step=1, unit="px",
        none_means="the dataset's size (for uploads: its typical size up to 32 px, else 32 or 64); a pretrained "
        "torchvision model gets its own 224 px", widget="size",
    )
    subset: float | None = setting(
        None, "Share of the training images", "Train on a stratified, seeded fraction of the training split. "
        "Quick experiments on a CPU; the test split is kept whole up to 10,000 images so accuracies stay "
        "comparable.", low=0.0, low_open=True, high=1.0, step=0.01, none_means="all of them", widget="fraction",
        flag="subset",
    )
    val_ratio: float = setting(
        0.2, "Held-out test share", "For your own images without train/ and test/ folders: the share of each class "
        "held out as the test split.", low=0.05, high=0.5, step=0.05, widget="slider",
    )
    # Kept apart from run.seed so that runs with different training seeds are compared on the
    # same test images.
    seed: int = setting(
        0, "Data seed", "Picks the generated images, the subset, the held-out split and the pixel permutation. "
        "Kept apart from the training seed so runs with different training seeds are tested on the same images.",
        low=0, high=2**63 - 1,
    )
    # Off by default so that an offline run fails fast instead of hanging.
    allow_download: bool = setting(
        False, "Allow downloading the dataset", "Let torchvision download CIFAR-10 / MNIST / Fashion-MNIST if the "
        "files are missing (needs internet). Off: a missing dataset fails at once with a message saying where to "
        "put the files.",
    )
    permute_pixels: bool = setting(
        False, "Permute the pixels", "Shuffle the pixel positions of every image, train and test, with one fixed "
        "random permutation drawn from the data seed (the same for every run with that seed). A fully connected "
        "network does just as well on the shuffled images, since it never knew which pixels were neighbours; a "
        "CNN loses what its convolutions assume. Augmentations then act on the shuffled images, so turn "
        "geometric ones off.", flag="permute-pixels",
    )

    def _validate(self) -> None:
        self._check(
            self.dataset in DATASETS or self.dataset.startswith(tuple(PATH_PREFIXES)),
            "dataset",
            _("{key} must be one of {datasets} or start with {prefixes} (got {value!r})"),
            datasets=", ".join(DATASETS),
            prefixes=_(" or ").join(PATH_PREFIXES),
        )
        variants = DATASETS[self.dataset].variants if self.dataset in DATASETS else ()
        self._check(
            self.variant is None or self.variant in variants,
            "variant",
            _("{key} must be None or one of {variants} (got {value!r})") if variants
            else _("{key} must be None for {dataset} (got {value!r})"),
            variants=", ".join(variants),
            dataset=self.dataset,
        )


@dataclass(frozen=True)
class ModelConfig(_Section):
    section: ClassVar[str] = "model"

    # Small fast CNN sized for CPU training.
    name: str = setting(
        "fastcnn", "Model", "The network to train; its description and options appear with it.",
        choices=tuple(MODELS), widget="model", flag="model",
    )
    init: str = setting(
        "default", "Weight initialisation", "default: PyTorch's own. xavier: Glorot uniform (Glorot & Bengio 2010), "
        "for tanh-like units. kaiming: He normal (He et al. 2015), made for ReLU. Batch norm layers always start at "
        "weight 1, bias 0.", choices=INIT_SCHEMES,
    )
    # Only the options set are stored, so changing `name` never leaves another model's options behind.
    options: dict = setting(
        {}, "Model options", "The model's own options (each model declares them, e.g. width); missing ones take "
        "their defaults.",
    )
    init_from_run: str | None = setting(
        None, "Start from a finished run's weights", "Fine-tuning: every weight but the final layer's comes from "
        "that run, and a new head is trained for this dataset's classes. The run must have trained the same model "
        "with the same options on images with as many channels. Give the new head a higher learning rate "
        "(optim.head_lr_mult) or freeze the body for the first epochs.", none_means="start from model.init",
        widget="run", flag="init-from",
    )

    def _validate(self) -> None:
        self._check(self.init_from_run is None or bool(self.init_from_run.strip()), "init_from_run",
                    _("{key} must be None or a run id (got {value!r})"))
        try:
            MODELS[self.name].validate(self.name, self.options)
        except ValueError as exc:
            raise ConfigError(_("model.options: {exc}").format(exc=exc)) from None
        self._check(
            self.init == "default" or not (MODELS[self.name].pretrained and self.options.get("pretrained")),
            "init",
            _("{key} must be default when the model starts from ImageNet weights (any other scheme would "
              "overwrite them) (got {value!r})"),
        )


_ADAM_FAMILY = "Adam, AdamW and AdaBound"


@dataclass(frozen=True)
class OptimConfig(_Section):
    section: ClassVar[str] = "optim"

    # SGD with Nesterov momentum: the dependable choice for small CNNs trained from scratch.
    name: str = setting(
        "sgd", "Optimiser", "SGD with Nesterov momentum is the dependable choice for CNNs from scratch; Adam and "
        "AdamW adapt per parameter; AdaBound (Luo et al. 2019) moves from Adam towards SGD.", choices=OPTIMIZERS,
        flag="optimizer",
    )
    lr: float = setting(
        0.05, "Peak learning rate", "The lr the schedule is built around (per 256 images when linear scaling is "
        "on). SGD: 0.05 to 0.2; Adam: about 1e-3. A far too high one makes a run diverge, which the run reports.",
        low=0.0, low_open=True, high=1e6, step=0.01, flag="lr",
    )
    momentum: float = setting(
        0.9, "Momentum", "SGD momentum; 0.9 is usual.", low=0.0, high=1.0, high_open=True, step=0.01, widget="slider",
    )
    nesterov: bool = setting(
        True, "Nesterov momentum", "SGD's look-ahead momentum: a little faster and more stable; needs momentum > 0.",
    )
    weight_decay: float = setting(
        5e-4, "Weight decay", "L2 penalty (decoupled for AdamW); 5e-4 is the standard CIFAR value for SGD.",
        low=0.0, high=1.0, step=1e-4,
    )
    beta1: float = setting(
        0.9, "β1", f"{_ADAM_FAMILY}: decay rate of the gradient mean.", low=0.0, high=1.0, high_open=True, step=0.01,
    )
    beta2: float = setting(
        0.999, "β2", f"{_ADAM_FAMILY}: decay rate of the squared gradient mean.", low=0.0, high=1.0, high_open=True,
        step=0.001,
    )
    eps: float = setting(
        1e-8, "ε", f"{_ADAM_FAMILY}: keeps the denominator away from zero.", low=0.0, low_open=True, high=1.0,
        step=1e-8,
    )
    final_lr: float = setting(
        0.1, "AdaBound final lr", "The SGD-like lr AdaBound's bounds converge to (Luo et al. 2019 use 0.1).",
        low=0.0, low_open=True, high=10.0, step=0.01,
    )
    adabound_gamma: float = setting(
        1e-3, "AdaBound γ", "How fast AdaBound's bounds close in on the final lr (Luo et al. 2019 use 1e-3).",
        low=0.0, low_open=True, high=1.0, step=1e-4,
    )
    head_lr_mult: float = setting(
        1.0, "Head learning-rate multiplier", "Differential learning rates: the classification head trains at this "
        "multiple of the lr, e.g. 10 when fine-tuning a new head on a pretrained body.", low=0.0, low_open=True,
        high=100.0, step=1.0,
    )
    bias_lr_mult: float = setting(
        1.0, "Bias learning-rate multiplier", "The biases (batch norm's shifts among them) train at this multiple "
        "of the lr, with the weight decay divided by it, so the decay per step stays the same: airbench's scaled "
        "batch-norm biases (64), which lets the shifts keep up with a short, fast schedule.", low=0.0, low_open=True,
        high=1000.0, step=1.0,
    )
    muon_lr: float = setting(
        0.0, "Muon lr for the filters", "Above 0, the body's convolution filters that batch norm follows are "
        "trained with Muon (Jordan et al. 2024, as airbench trains them) at this peak lr on the same schedule: the "
        "momentum of the gradient, orthogonalised (every direction of the update the same size), with each filter "
        "bank held at a fixed norm instead of weight decay. Everything else stays with SGD, which Muon needs. "
        "Helps most in short runs. 0 = off.", low=0.0, high=10.0, step=0.01,
    )
    muon_steps: int = setting(
        5, "Muon's Newton-Schulz steps", "How many steps orthogonalise each Muon update: 5 brings its singular "
        "values near 1 (Jordan et al.); 2 cost 40% of that and did as well in 2-epoch CIFAR-10 runs.",
        low=1, high=10,
    )
    freeze_body_epochs: int = setting(
        0, "Frozen-body epochs", "Train only the head for this many epochs first, then unfreeze the body; 0 never "
        "freezes (and must be 0 when training the head only).", low=0, high=10_000, unit="epochs",
    )
    train_head_only: bool = setting(
        False, "Train the head only", "Freeze the body for the whole run and train only the new head: a linear "
        "classifier on the pretrained features. Fast (no backward pass through the body) and hard to overfit; "
        "usually a little less accurate than fine-tuning everything.",
    )
    freeze_bn_stats: bool = setting(
        False, "Keep batch-norm statistics", "Keep the body's batch-norm layers in eval mode: they normalise with the "
        "running statistics they came with (ImageNet's, for a pretrained model) and do not update them from small, "
        "augmented batches of the new images. A frozen body's batch-norm statistics still follow the new data "
        "unless this is on.",
    )

    def _validate(self) -> None:
        self._check(
            not (self.name == "sgd" and self.nesterov and self.momentum == 0),
            "nesterov",
            _("{key} needs momentum > 0 (set optim.nesterov to false or raise optim.momentum) (got {value!r})"),
        )
        self._check(
            self.muon_lr == 0 or self.name == "sgd",
            "muon_lr",
            _("{key} pairs Muon with SGD for the other parameters: set optim.name to sgd, or optim.muon_lr to 0 "
              "(got {value!r})"),
        )
        self._check(
            not (self.train_head_only and self.freeze_body_epochs),
            "freeze_body_epochs",
            _("{key} must be 0 when optim.train_head_only is on (the body is then frozen for the whole run) "
              "(got {value!r})"),
        )


@dataclass(frozen=True)
class ScheduleConfig(_Section):
    section: ClassVar[str] = "schedule"

    # Cosine decay: no milestones to tune and reliably good for short runs.
    name: str = setting(
        "cosine", "Schedule", "constant; step: ×γ at milestones; cosine: smooth decay to the minimum (Loshchilov & "
        "Hutter 2017); sgdr: cosine with warm restarts; onecycle: up then down (Smith & Topin 2017).",
        choices=SCHEDULES, flag="schedule",
    )
    milestones: tuple[float, ...] = setting(
        (0.5, 0.75), "Milestones (fractions of the run)", "Step decay: when the lr is multiplied by γ, e.g. 0.5, 0.75.",
        low=0.0, low_open=True, high=1.0, high_open=True,
    )
    gamma: float = setting(
        0.1, "γ", "Step decay: the factor applied at each milestone.", low=0.0, low_open=True, high=1.0, step=0.05,
    )
    min_lr: float = setting(
        0.0, "Minimum lr", "Cosine and SGDR: where the cosine ends (eta_min in PyTorch).", low=0.0, high=10.0, step=1e-4,
    )
    t0: float = setting(
        1.0, "First cycle length", "SGDR: length of the first cycle, in the cycle unit.", low=0.0, low_open=True,
        high=10_000.0, step=1.0,
    )
    t0_unit: str = setting(
        "epochs", "Cycle unit", "SGDR: whether the cycle length counts epochs or optimiser steps.", choices=LENGTH_UNITS,
    )
    t_mult: int = setting(
        2, "Cycle growth", "SGDR: each cycle is this many times longer than the previous one (Loshchilov & Hutter "
        "2017 use 2).", low=1, high=100,
    )
    pct_start: float = setting(
        0.3, "Share rising", "One-cycle: share of the run spent rising to the peak lr (PyTorch's default 0.3).",
        low=0.0, low_open=True, high=1.0, high_open=True, step=0.05, widget="slider",
    )
    div_factor: float = setting(
        25.0, "Start divisor", "One-cycle: the run starts at lr / this (PyTorch's default 25).", low=1.0, high=1e4,
        step=1.0,
    )
    final_div_factor: float = setting(
        1e4, "Final divisor", "One-cycle: the run ends at lr / start divisor / this (PyTorch's default 1e4).",
        low=1.0, high=1e6, step=10.0,
    )
    anneal: str = setting(
        "cos", "One-cycle shape", "One-cycle: cos rises and falls along half cosines (PyTorch's default); linear "
        "along straight lines, airbench's triangle.", choices=ANNEAL_SHAPES,
    )
    warmup: float = setting(
        0.0, "Warmup length", "A linear ramp before the schedule (Goyal et al. 2017), in the warmup unit; 0 is no "
        "warmup. Lets large learning rates and batches start without blowing up.", low=0.0, high=100_000.0, step=1.0,
    )
    warmup_unit: str = setting(
        "epochs", "Warmup unit", "Whether the warmup counts epochs or optimiser steps.", choices=LENGTH_UNITS,
    )
    warmup_kind: str = setting(
        "linear", "Warmup kind", "linear: from the start factor × lr. gradual (Goyal et al. 2017): with linear "
        "scaling on, from the unscaled lr to the scaled one.", choices=WARMUP_KINDS,
    )
    warmup_start_factor: float = setting(
        0.1, "Warmup start factor", "Where a linear warmup starts, as a fraction of the lr it leads to.",
        low=0.0, high=1.0, step=0.05, widget="slider",
    )
    linear_scaling: bool = setting(
        False, "Linear scaling rule", "Goyal et al. 2017: the lr used is lr × batch size / 256, so a larger batch "
        "gets a proportionally larger lr.",
    )

    def _validate(self) -> None:
        self._check(list(self.milestones) == sorted(self.milestones), "milestones",
                    _("{key} must be in increasing order (got {value!r})"))


@dataclass(frozen=True)
class AugmentConfig(_Section):
    section: ClassVar[str] = "augment"

    # The test split is only ever normalised.
    train: tuple[dict, ...] = setting(
        (), "Training augmentation", "The train split's pipeline: a list of {op, params} steps, as the Augmentation "
        "Lab exports it; empty trains on plain images. The test split is only normalised.",
    )

    def _validate(self) -> None:
        try:
            canonical = Pipeline.from_list(list(self.train)).to_list()
        except ValueError as exc:
            raise ConfigError(_("augment.train: {exc}").format(exc=exc)) from None
        # Store the canonical form (defaults filled in) so a JSON round trip is exact.
        object.__setattr__(self, "train", tuple(canonical))


_MIX_OFF = "0 is off"


def _mixer_setting(name: str, **extra: Any) -> Any:
    """A TricksConfig field read from the mixer's declaration: its strength, 0 for off."""
    p = mixing.MIXERS[name].config_param()
    return setting(p.default, p.label, p.help, low=p.low, high=p.high, step=p.step, **extra)


@dataclass(frozen=True)
class TricksConfig(_Section):
    section: ClassVar[str] = "tricks"

    label_smoothing: float = setting(
        0.0, "Label smoothing ε", "Target = (1 − ε)·one-hot + ε/K (Szegedy et al. 2016): less over-confident "
        f"predictions. 0.1 is usual; {_MIX_OFF}.", low=0.0, high=1.0, high_open=True, step=0.01, widget="slider",
        flag="label-smoothing",
    )
    # Declared with the mixers themselves (core/augment/mixing.py: MIXERS)
    mixup_alpha: float = _mixer_setting("mixup", flag="mixup")
    cutmix_alpha: float = _mixer_setting("cutmix", flag="cutmix")
    ricap_beta: float = _mixer_setting("ricap")
    mix_prob: float = setting(
        1.0, "Chance a batch is mixed", "With several mixers on, one is picked per mixed batch (as timm does).",
        low=0.0, high=1.0, step=0.05, widget="slider",
    )
    teacher_run_id: str | None = setting(
        None, "Distillation teacher", "Knowledge distillation (Hinton et al. 2015): a finished run whose model teaches "
        "this one through its softened predictions. It must predict the same classes from the same kind of images.",
        none_means="no distillation", widget="run", flag="teacher",
    )
    distill_temperature: float = setting(
        4.0, "Distillation temperature", "Softens both distributions; Hinton et al. use 2 to 20.", low=0.0,
        low_open=True, high=50.0, step=0.5,
    )
    distill_alpha: float = setting(
        0.5, "Weight of the teacher", "Share of the loss that comes from matching the teacher; the rest is the usual "
        "cross-entropy.", low=0.0, high=1.0, step=0.05, widget="slider",
    )

    def _validate(self) -> None:
        self._check(self.teacher_run_id is None or bool(self.teacher_run_id), "teacher_run_id",
                    _("{key} must be None or a run id (got {value!r})"))


@dataclass(frozen=True)
class RunConfig(_Section):
    section: ClassVar[str] = "run"

    # Two take the default FastCNN to about 98% on the shapes set in about 25 s of CPU time
    # (measured with one thread), so a first run shows a result within a minute on a 2-core laptop.
    epochs: int = setting(2, "Epochs", "Passes over the training set.", low=1, high=10_000, flag="epochs")
    # 64 rather than 128: a two-epoch run needs the steps more than large batches (measured on
    # the shapes: 99% after two epochs at 64, 91% at 128, same lr).
    batch_size: int = setting(
        64, "Batch size", "Images per optimiser step. Short runs need the steps more than large batches (64 is the "
        "default); a GPU wants larger ones, with the lr raised to match (linear scaling rule).", low=1, high=65_536,
        flag="batch-size",
    )
    seed: int = setting(
        0, "Training seed", "Seeds shuffling, augmentation, mixing and initialisation: the same seed repeats a CPU run "
        "exactly.", low=0, high=2**63 - 1, flag="seed",
    )
    device: str = setting(
        "auto", "Device", "auto picks a CUDA GPU, then Apple's MPS, then the CPU; cuda:N picks one GPU. The device "
        "used is recorded with the run.", choices=DEVICES, suggested=True, widget="choice", flag="device",
    )
    eval_every: int = setting(
        1, "Evaluate every", "Evaluate on the test split every this many epochs, and always after the last one.",
        low=1, high=10_000, unit="epochs",
    )
    threads: int = setting(
        0, "CPU threads (0 = all)", "PyTorch's CPU threads; 0 uses every core. Threads of all the runs training at "
        "once should not add up to more than the cores (two runs on a 2-core laptop: 1 each), or they slow each "
        "other down. The threads a run used are shown with its device.", low=0, high=256,
    )
    amp: str = setting(
        "auto", "Mixed precision", "auto: on for CUDA (bf16 where supported, else fp16), off elsewhere. fp16 needs "
        "CUDA. bf16 on a CPU without native bfloat16 (AVX2 only, most laptops) trains in float32 instead, and the "
        "run's device says so: emulated it is about 10x slower.", choices=AMP_MODES,
    )
    channels_last: bool = setting(
        False, "Channels-last layout", "Faster convolutions on recent GPUs, rarely on CPUs.",
    )
    compile: bool = setting(False, "torch.compile", "Compiles the model first: pays off only for long GPU runs.")

    def _validate(self) -> None:
        base = self.device.split(":", 1)[0]
        self._check(
            base in DEVICES and (self.device == base or (base == "cuda" and self.device[5:].isdigit())),
            "device",
            _("{key} must be auto, cpu, cuda, cuda:N or mps (got {value!r})"),
        )


@dataclass(frozen=True)
class TrainConfig(_Section):
    """Everything a training run depends on. `TrainConfig()` is the quick CPU default."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    tricks: TricksConfig = field(default_factory=TricksConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def _validate(self) -> None:
        s = self.schedule
        if s.warmup_unit == "epochs" and s.warmup >= self.run.epochs:
            raise ConfigError(
                _("schedule.warmup ({warmup:g} epochs) must be shorter than run.epochs ({epochs})").format(
                    warmup=s.warmup,
                    epochs=self.run.epochs,
                )
            )
        if self.optim.freeze_body_epochs > self.run.epochs:
            raise ConfigError(
                _(
                    "optim.freeze_body_epochs ({freeze_body_epochs}) must not exceed run.epochs "
                    "({epochs})"
                ).format(
                    freeze_body_epochs=self.optim.freeze_body_epochs,
                    epochs=self.run.epochs,
                )
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Build from a (possibly partial) nested dict; missing keys take their defaults."""
        return _from_dict(cls, data, "")

    def to_dict(self) -> dict[str, Any]:
        """Nested plain dict of JSON values (tuples become lists)."""
        return _to_plain(self)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(_("the config is not valid JSON: {exc}").format(exc=exc)) from None
        return cls.from_dict(data)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)


SECTIONS: tuple[type[_Section], ...] = (
    DataConfig, ModelConfig, OptimConfig, ScheduleConfig, AugmentConfig, TricksConfig, RunConfig,
)


def config_params() -> dict[str, Param]:
    """Every config field's declaration by dotted key ("optim.lr"), in the config's order."""
    return {f"{cls.section}.{name}": p for cls in SECTIONS for name, p in section_params(cls).items()}


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a TrainConfig file, read from the declarations."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Augmentation Lab training config",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            cls.section: {
                "type": "object",
                "additionalProperties": False,
                "properties": {name: p.json_schema() for name, p in section_params(cls).items()},
            }
            for cls in SECTIONS
        },
    }


def _from_dict(cls: type, data: Any, prefix: str) -> Any:
    where = prefix or _("the config")
    if not isinstance(data, Mapping):
        raise ConfigError(_("{where} must be a JSON object, got {type}").format(where=where, type=type(data).__name__))
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [key for key in data if key not in fields]
    if unknown:
        key = unknown[0]
        dotted = f"{prefix}.{key}" if prefix else str(key)
        close = difflib.get_close_matches(str(key), list(fields), n=1)
        message = (_("unknown key '{dotted}' (did you mean '{close}'?); allowed keys in {where}: {allowed}") if close
                   else _("unknown key '{dotted}'; allowed keys in {where}: {allowed}"))
        raise ConfigError(message.format(dotted=dotted, close=close[0] if close else "", where=where,
                                         allowed=", ".join(fields)))
    hints = get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        tp = hints[key]
        dotted = f"{prefix}.{key}" if prefix else key
        is_section = isinstance(tp, type) and issubclass(tp, _Section)
        kwargs[key] = _from_dict(tp, value, dotted) if is_section else value
    return cls(**kwargs)


def _to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _to_plain(v) for k, v in value.items()}
    return value


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against the annotation `tp` and return it in canonical form."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], key)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(_("{key} must be a list, got {value!r}").format(key=key, value=value))
        (item_type, unused) = get_args(tp)
        return tuple(_coerce(v, item_type, f"{key}[{i}]") for i, v in enumerate(value))
    if isinstance(tp, type) and issubclass(tp, _Section):
        if isinstance(value, Mapping):
            return _from_dict(tp, value, key)
        if not isinstance(value, tp):
            raise ConfigError(_("{key} must be a {section} or a dict, got {type}").format(
                key=key,
                section=tp.__name__,
                type=type(value).__name__,
            ))
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(_("{key} must be true or false, got {value!r}").format(key=key, value=value))
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(_("{key} must be an integer, got {value!r}").format(key=key, value=value))
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(_("{key} must be a number, got {value!r}").format(key=key, value=value))
        if not math.isfinite(value):
            raise ConfigError(_("{key} must be a finite number, got {value!r}").format(key=key, value=value))
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(_("{key} must be a string, got {value!r}").format(key=key, value=value))
        return value
    if tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(_("{key} must be a JSON object, got {value!r}").format(key=key, value=value))
        return {str(k): _to_plain(v) for k, v in value.items()}
    raise TypeError(f"no coercion for {tp!r} at {key}")


def flatten(config: TrainConfig | Mapping[str, Any]) -> dict[str, Any]:
    """Dotted keys to leaf values, e.g. {"optim.lr": 0.05, ...}; lists stay whole values."""
    tree = config.to_dict() if isinstance(config, TrainConfig) else config
    flat: dict[str, Any] = {}

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        for key, value in node.items():
            dotted = f"{prefix}{key}"
            if isinstance(value, Mapping) and value:
                walk(value, dotted + ".")
            else:
                flat[dotted] = value

    walk(tree, "")
    return flat


def diff(a: TrainConfig | Mapping[str, Any], b: TrainConfig | Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The dotted keys whose values differ, mapped to (value in a, value in b); for comparing runs."""
    flat_a, flat_b = flatten(a), flatten(b)
    keys = list(flat_a) + [k for k in flat_b if k not in flat_a]
    return {k: (flat_a.get(k), flat_b.get(k)) for k in keys if flat_a.get(k) != flat_b.get(k)}


def parse_value(text: str) -> Any:
    """A command-line value: JSON where it parses (3, 0.1, true, null, [..]), else the plain string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(config: TrainConfig, overrides: Mapping[str, Any]) -> TrainConfig:
    """A copy of `config` with dotted keys replaced, e.g. {"optim.lr": 0.1, "run.epochs": 2}."""
    tree = config.to_dict()
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = tree
        for i, part in enumerate(parents):
            if not isinstance(node.get(part), dict):
                head = ".".join(parents[: i + 1])
                raise ConfigError(_("unknown key '{head}' in override '{dotted}'; sections: {sections}").format(
                    head=head,
                    dotted=dotted,
                    sections=", ".join(tree),
                ))
            node = node[part]
        node[leaf] = value
    return TrainConfig.from_dict(tree)
