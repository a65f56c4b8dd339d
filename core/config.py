"""The one config tree of a training run: frozen dataclasses that round-trip through JSON.

The training page, the CLI and the notebook API all build a `TrainConfig`; a run stores it as
JSON and the trainer reads nothing else. Every section checks its values when it is built, so a
typo or an out-of-range value fails at once with a message that names the key, instead of deep
inside a training run.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Union, get_args, get_origin, get_type_hints

from core.augment import Pipeline
from core.data import DATASETS, IMAGE_SIZE_RANGE, PATH_PREFIXES
from core.models import INIT_SCHEMES, MODELS


class ConfigError(ValueError):
    """A config key is unknown or a value is out of range; the message names the dotted key."""


OPTIMIZERS = ("sgd", "adam", "adamw", "adabound")
SCHEDULES = ("constant", "step", "cosine", "sgdr", "onecycle")
WARMUP_KINDS = ("linear", "gradual")
LENGTH_UNITS = ("epochs", "steps")
DEVICES = ("auto", "cpu", "cuda", "mps")
AMP_MODES = ("auto", "off", "bf16", "fp16")


class _Section:
    """Shared behaviour of the config sections: type coercion on construction, then `_validate`."""

    section: ClassVar[str] = ""

    def __post_init__(self) -> None:
        # Coerce here rather than in from_dict so that direct construction
        # (OptimConfig(lr=1)) and JSON loading end in the same canonical values.
        for name, tp in get_type_hints(type(self)).items():
            if get_origin(tp) is ClassVar:
                continue
            key = f"{self.section}.{name}" if self.section else name
            object.__setattr__(self, name, _coerce(getattr(self, name), tp, key))
        self._validate()

    def _validate(self) -> None:
        """Range checks; each section overrides this."""

    def _check(self, ok: bool, name: str, requirement: str) -> None:
        if not ok:
            value = getattr(self, name)
            raise ConfigError(f"{self.section}.{name} {requirement} (got {value!r})")

    def _check_choice(self, name: str, choices: tuple[str, ...]) -> None:
        self._check(getattr(self, name) in choices, name, f"must be one of {', '.join(choices)}")


@dataclass(frozen=True)
class DataConfig(_Section):
    section: ClassVar[str] = "data"

    # Embedded generated dataset: needs no download and trains in seconds on a laptop CPU.
    dataset: str = "shapes"
    # Dataset-specific flavour (shapes: "left", "few_colours"); None is the standard set.
    variant: str | None = None
    # Side length images are resized to; None keeps the dataset's own size.
    image_size: int | None = None
    # Train on a stratified fraction (0, 1] of the training images; None uses them all.
    subset: float | None = None
    # Share of a folder/zip dataset held out as test split when it has no split of its own.
    val_ratio: float = 0.2
    # Picks the generated images, the subset and the held-out split. Kept apart from run.seed
    # so that runs with different training seeds are compared on the same test images.
    seed: int = 0
    # Downloads are off by default so that an offline run fails fast instead of hanging.
    allow_download: bool = False
    # Shuffle pixel positions with one fixed permutation (drawn from `seed`), train and test alike:
    # an MLP is unaffected, a CNN loses the neighbourhoods its convolutions rely on.
    permute_pixels: bool = False

    def _validate(self) -> None:
        self._check(
            self.dataset in DATASETS or self.dataset.startswith(tuple(PATH_PREFIXES)),
            "dataset",
            f"must be one of {', '.join(DATASETS)} or start with {' or '.join(PATH_PREFIXES)}",
        )
        variants = DATASETS[self.dataset].variants if self.dataset in DATASETS else ()
        self._check(
            self.variant is None or self.variant in variants,
            "variant",
            f"must be None or one of {', '.join(variants)}" if variants else f"must be None for {self.dataset}",
        )
        lo, hi = IMAGE_SIZE_RANGE
        self._check(self.image_size is None or lo <= self.image_size <= hi, "image_size", f"must be None or {lo}..{hi}")
        self._check(self.subset is None or 0.0 < self.subset <= 1.0, "subset", "must be None or a fraction in (0, 1]")
        self._check(0.0 < self.val_ratio < 1.0, "val_ratio", "must be between 0 and 1")
        self._check(self.seed >= 0, "seed", "must be >= 0")


@dataclass(frozen=True)
class ModelConfig(_Section):
    section: ClassVar[str] = "model"

    # Small fast CNN sized for CPU training; core.models.MODELS lists the others.
    name: str = "fastcnn"
    # "default" keeps PyTorch's init; "xavier" is Glorot uniform (Glorot & Bengio 2010); "kaiming" He normal.
    init: str = "default"
    # Model options (core.models.MODELS[name].options, e.g. width); missing ones take their defaults.
    # Only the ones set are stored, so changing `name` never leaves another model's options behind.
    options: dict = field(default_factory=dict)
    # Id of a finished run of the same model whose weights start this one (fine-tuning); its head
    # is replaced by a fresh one for this dataset's classes. None starts from `init`.
    init_from_run: str | None = None

    def _validate(self) -> None:
        self._check_choice("name", tuple(MODELS))
        self._check_choice("init", INIT_SCHEMES)
        self._check(self.init_from_run is None or bool(self.init_from_run.strip()), "init_from_run", "must be None or a run id")
        try:
            MODELS[self.name].validate(self.name, self.options)
        except ValueError as exc:
            raise ConfigError(f"model.options: {exc}") from None
        self._check(
            self.init == "default" or not (MODELS[self.name].pretrained and self.options.get("pretrained")),
            "init",
            "must be default when the model starts from ImageNet weights (any other scheme would overwrite them)",
        )


@dataclass(frozen=True)
class OptimConfig(_Section):
    section: ClassVar[str] = "optim"

    # SGD with Nesterov momentum: the dependable choice for small CNNs trained from scratch.
    name: str = "sgd"
    # Peak learning rate (per 256 images when schedule.linear_scaling is on).
    lr: float = 0.05
    # SGD momentum; 0.9 is the usual value for image classification.
    momentum: float = 0.9
    # Nesterov's look-ahead momentum: a little faster and more stable than plain momentum.
    nesterov: bool = True
    # L2 penalty (decoupled for AdamW); 5e-4 is the standard CIFAR value for SGD.
    weight_decay: float = 5e-4
    # Adam-family decay rate of the gradient mean.
    beta1: float = 0.9
    # Adam-family decay rate of the squared gradient mean.
    beta2: float = 0.999
    # Adam-family term that keeps the denominator away from zero.
    eps: float = 1e-8
    # AdaBound: the SGD-like learning rate its bounds converge to (Luo et al. 2019 use 0.1).
    final_lr: float = 0.1
    # AdaBound: how fast the bounds close in on final_lr (Luo et al. 2019 use 1e-3).
    adabound_gamma: float = 1e-3
    # Learning-rate multiplier for the classification head, e.g. 10 when fine-tuning a new head.
    head_lr_mult: float = 1.0
    # Train only the head for this many epochs first, then unfreeze the body; 0 never freezes.
    freeze_body_epochs: int = 0
    # Train only the head, the body frozen for the whole run (a linear probe of pretrained features).
    train_head_only: bool = False
    # Keep the body's batch-norm layers in eval mode: their running statistics stay as loaded (for
    # a pretrained model, ImageNet's) instead of following small, augmented batches of a new dataset.
    freeze_bn_stats: bool = False

    def _validate(self) -> None:
        self._check_choice("name", OPTIMIZERS)
        self._check(math.isfinite(self.lr) and self.lr > 0, "lr", "must be a positive number")
        self._check(0.0 <= self.momentum < 1.0, "momentum", "must be in [0, 1)")
        self._check(
            not (self.name == "sgd" and self.nesterov and self.momentum == 0),
            "nesterov",
            "needs momentum > 0 (set optim.nesterov to false or raise optim.momentum)",
        )
        self._check(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        self._check(0.0 <= self.beta1 < 1.0, "beta1", "must be in [0, 1)")
        self._check(0.0 <= self.beta2 < 1.0, "beta2", "must be in [0, 1)")
        self._check(self.eps > 0, "eps", "must be > 0")
        self._check(self.final_lr > 0, "final_lr", "must be > 0")
        self._check(self.adabound_gamma > 0, "adabound_gamma", "must be > 0")
        self._check(self.head_lr_mult > 0, "head_lr_mult", "must be > 0")
        self._check(self.freeze_body_epochs >= 0, "freeze_body_epochs", "must be >= 0")
        self._check(
            not (self.train_head_only and self.freeze_body_epochs),
            "freeze_body_epochs",
            "must be 0 when optim.train_head_only is on (the body is then frozen for the whole run)",
        )


@dataclass(frozen=True)
class ScheduleConfig(_Section):
    section: ClassVar[str] = "schedule"

    # Cosine decay: no milestones to tune and reliably good for short runs.
    name: str = "cosine"
    # Step decay: fractions of the run after which the lr is multiplied by gamma.
    milestones: tuple[float, ...] = (0.5, 0.75)
    # Step decay: the factor applied at each milestone.
    gamma: float = 0.1
    # Cosine and SGDR: the lr the cosine falls to (eta_min in PyTorch).
    min_lr: float = 0.0
    # SGDR: length of the first cycle, in t0_unit.
    t0: float = 1.0
    # SGDR: whether t0 counts epochs or optimiser steps.
    t0_unit: str = "epochs"
    # SGDR: each cycle is t_mult times longer than the previous one (Loshchilov & Hutter 2017 use 2).
    t_mult: int = 2
    # One-cycle: share of the steps spent rising to the peak lr (PyTorch's default 0.3).
    pct_start: float = 0.3
    # One-cycle: the run starts at lr / div_factor (PyTorch's default 25).
    div_factor: float = 25.0
    # One-cycle: the run ends at lr / div_factor / final_div_factor (PyTorch's default 1e4).
    final_div_factor: float = 1e4
    # Warmup length in warmup_unit, run before the schedule above; 0 means no warmup.
    warmup: float = 0.0
    # Whether warmup counts epochs or optimiser steps.
    warmup_unit: str = "epochs"
    # "linear" rises from warmup_start_factor * lr; "gradual" is Goyal et al. 2017: it rises from
    # the unscaled lr to the linearly scaled one (from warmup_start_factor * lr without scaling).
    warmup_kind: str = "linear"
    # Where a linear warmup starts, as a fraction of the lr it leads to.
    warmup_start_factor: float = 0.1
    # Linear scaling rule (Goyal et al. 2017): the lr used is optim.lr * batch_size / 256.
    linear_scaling: bool = False

    def _validate(self) -> None:
        self._check_choice("name", SCHEDULES)
        self._check(all(0.0 < m < 1.0 for m in self.milestones), "milestones", "must be fractions between 0 and 1")
        self._check(list(self.milestones) == sorted(self.milestones), "milestones", "must be in increasing order")
        self._check(0.0 < self.gamma <= 1.0, "gamma", "must be in (0, 1]")
        self._check(self.min_lr >= 0, "min_lr", "must be >= 0")
        self._check(self.t0 > 0, "t0", "must be > 0")
        self._check_choice("t0_unit", LENGTH_UNITS)
        self._check(self.t_mult >= 1, "t_mult", "must be an integer >= 1")
        self._check(0.0 < self.pct_start < 1.0, "pct_start", "must be between 0 and 1")
        self._check(self.div_factor >= 1, "div_factor", "must be >= 1")
        self._check(self.final_div_factor >= 1, "final_div_factor", "must be >= 1")
        self._check(self.warmup >= 0, "warmup", "must be >= 0")
        self._check_choice("warmup_unit", LENGTH_UNITS)
        self._check_choice("warmup_kind", WARMUP_KINDS)
        self._check(0.0 <= self.warmup_start_factor <= 1.0, "warmup_start_factor", "must be in [0, 1]")


@dataclass(frozen=True)
class AugmentConfig(_Section):
    section: ClassVar[str] = "augment"

    # Train-split pipeline in core.augment.Pipeline.to_list() form; empty trains on plain images.
    # The test split is only ever normalised.
    train: tuple[dict, ...] = ()

    def _validate(self) -> None:
        try:
            canonical = Pipeline.from_list(list(self.train)).to_list()
        except ValueError as exc:
            raise ConfigError(f"augment.train: {exc}") from None
        # Store the canonical form (defaults filled in) so a JSON round trip is exact.
        object.__setattr__(self, "train", tuple(canonical))


@dataclass(frozen=True)
class TricksConfig(_Section):
    section: ClassVar[str] = "tricks"

    # Label smoothing epsilon (Szegedy et al. 2016); 0.1 is the usual value, 0 turns it off.
    label_smoothing: float = 0.0
    # Mixup Beta(alpha, alpha) (Zhang et al. 2018); 0.2 is typical, 0 turns it off.
    mixup_alpha: float = 0.0
    # CutMix Beta(alpha, alpha) (Yun et al. 2019); 1.0 is typical, 0 turns it off.
    cutmix_alpha: float = 0.0
    # RICAP Beta(beta, beta) for the crossing point (Takahashi et al. 2018); 0.3 is typical, 0 off.
    ricap_beta: float = 0.0
    # Chance that a batch is mixed at all; when several mixers are on, one is picked per batch.
    mix_prob: float = 1.0
    # Knowledge distillation (Hinton et al. 2015): id of a finished run whose model teaches; None off.
    teacher_run_id: str | None = None
    # Distillation temperature that softens both distributions (Hinton et al. use 2 to 20).
    distill_temperature: float = 4.0
    # Weight of the teacher's soft loss; 1 - distill_alpha goes to the ordinary loss.
    distill_alpha: float = 0.5

    def _validate(self) -> None:
        self._check(0.0 <= self.label_smoothing < 1.0, "label_smoothing", "must be in [0, 1)")
        self._check(self.mixup_alpha >= 0, "mixup_alpha", "must be >= 0")
        self._check(self.cutmix_alpha >= 0, "cutmix_alpha", "must be >= 0")
        self._check(self.ricap_beta >= 0, "ricap_beta", "must be >= 0")
        self._check(0.0 <= self.mix_prob <= 1.0, "mix_prob", "must be in [0, 1]")
        self._check(self.teacher_run_id is None or bool(self.teacher_run_id), "teacher_run_id", "must be None or a run id")
        self._check(self.distill_temperature > 0, "distill_temperature", "must be > 0")
        self._check(0.0 <= self.distill_alpha <= 1.0, "distill_alpha", "must be in [0, 1]")


@dataclass(frozen=True)
class RunConfig(_Section):
    section: ClassVar[str] = "run"

    # Passes over the training set. Two take the default FastCNN to about 98% on the shapes set
    # in about 25 s of CPU time (measured with one thread), so a first run shows a result within
    # a minute on a 2-core laptop.
    epochs: int = 2
    # Images per optimiser step. 64 rather than 128: a two-epoch run needs the steps more than
    # large batches (measured on the shapes: 99% after two epochs at 64, 91% at 128, same lr).
    batch_size: int = 64
    # Seeds shuffling, augmentation, mixing and init: the same seed repeats a CPU run exactly.
    seed: int = 0
    # "auto" picks CUDA, then Apple MPS, then the CPU; the device actually used is recorded.
    device: str = "auto"
    # Evaluate on the test split every this many epochs (and always after the last one).
    eval_every: int = 1
    # CPU threads for PyTorch; 0 uses every core.
    threads: int = 0
    # Mixed precision: "auto" is on for CUDA (bf16 where supported, else fp16) and off elsewhere.
    amp: str = "auto"
    # Channels-last memory layout; faster convolutions on recent GPUs, rarely on CPUs.
    channels_last: bool = False
    # torch.compile the model; pays off only for long GPU runs, so off by default.
    compile: bool = False

    def _validate(self) -> None:
        self._check(1 <= self.epochs <= 10_000, "epochs", "must be 1..10000")
        self._check(1 <= self.batch_size <= 65_536, "batch_size", "must be 1..65536")
        self._check(0 <= self.seed < 2**63, "seed", "must be a non-negative integer")
        base = self.device.split(":", 1)[0]
        self._check(
            base in DEVICES and (self.device == base or (base == "cuda" and self.device[5:].isdigit())),
            "device",
            "must be auto, cpu, cuda, cuda:N or mps",
        )
        self._check(self.eval_every >= 1, "eval_every", "must be >= 1")
        self._check(self.threads >= 0, "threads", "must be >= 0 (0 uses every core)")
        self._check_choice("amp", AMP_MODES)


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
                f"schedule.warmup ({s.warmup:g} epochs) must be shorter than run.epochs ({self.run.epochs})"
            )
        if self.optim.freeze_body_epochs > self.run.epochs:
            raise ConfigError(
                f"optim.freeze_body_epochs ({self.optim.freeze_body_epochs}) "
                f"must not exceed run.epochs ({self.run.epochs})"
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
            raise ConfigError(f"the config is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)


def _from_dict(cls: type, data: Any, prefix: str) -> Any:
    where = prefix or "the config"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a JSON object, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [key for key in data if key not in fields]
    if unknown:
        key = unknown[0]
        dotted = f"{prefix}.{key}" if prefix else str(key)
        close = difflib.get_close_matches(str(key), list(fields), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"unknown key '{dotted}'{hint}; allowed keys in {where}: {', '.join(fields)}")
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
            raise ConfigError(f"{key} must be a list, got {value!r}")
        (item_type, _) = get_args(tp)
        return tuple(_coerce(v, item_type, f"{key}[{i}]") for i, v in enumerate(value))
    if isinstance(tp, type) and issubclass(tp, _Section):
        if isinstance(value, Mapping):
            return _from_dict(tp, value, key)
        if not isinstance(value, tp):
            raise ConfigError(f"{key} must be a {tp.__name__} or a dict, got {type(value).__name__}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{key} must be a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return value
    if tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} must be a JSON object, got {value!r}")
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
                raise ConfigError(f"unknown key '{head}' in override '{dotted}'; sections: {', '.join(tree)}")
            node = node[part]
        node[leaf] = value
    return TrainConfig.from_dict(tree)
