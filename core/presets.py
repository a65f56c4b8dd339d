"""The course's experiments as one-click presets: a few runs that differ in one thing.

    plan = plan_preset("mixup", device="cpu", available=["shapes"])
    plan.runs     # [("Mixup vs baseline · baseline", TrainConfig), ...]
    plan.notes    # what was changed to make it fit this machine, in plain words
    build_preset("mixup", "cpu", ["shapes"])   # just the runs
    launch_plan(plan)                          # queue them all; returns the run ids

Each preset is declared once, at the scale of the course (a CUDA GPU, the real dataset). On any
other device it shrinks itself (fewer training images, fewer epochs, narrower models) so that
the whole preset trains in about a minute on a 2-core laptop, and when the course's dataset is
not on this machine it falls back to the embedded shapes dataset. Lengths counted in epochs
(warmup, frozen epochs, SGDR cycles) shrink with the run, so a warmup stays a warmup. Every
change is listed in the plan's notes, which the page shows before anything is launched.

A preset may train one run first that the compared runs start from (`pretrain`, for
fine-tuning): its config is in `plan.pretrain`, and a compared run whose model.init_from_run is
`PRETRAINED` gets that run's id when `launch_plan` queues it. The queue holds such a run back
until the pretraining run has ended (core.store.claim_next_queued), so the whole preset is
launched at once and nobody has to come back to start the second half.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.config import TrainConfig, apply_overrides, diff
from core.data import DATASETS, available_datasets

# Stands for the id of the preset's pretraining run in a compared run's model.init_from_run,
# until launch_plan knows that id. Readable as it is in the page's table of runs.
PRETRAINED = "<the pretraining run>"

# Training images of each built-in dataset, to turn "train on N images" into a subset fraction.
TRAIN_SIZES = {"shapes": 5000, "cifar10": 50_000, "mnist": 60_000, "fashion_mnist": 60_000}
FALLBACK_DATASET = "shapes"

# The usual CIFAR augmentation (He et al. 2016): random horizontal flips and 4-pixel padded crops.
FLIP_CROP = [{"op": "hflip", "params": {"p": 0.5}}, {"op": "pad_crop", "params": {"padding": 4}}]

# ResNet-18 on CIFAR-10 with SGD, the reference setting of most of the course's experiments.
RESNET_CIFAR = {
    "data.dataset": "cifar10",
    "model.name": "resnet18",
    "model.options": {"width": 64},
    "optim.lr": 0.1,
    "optim.weight_decay": 5e-4,
    "schedule.name": "cosine",
    "run.epochs": 30,
    "run.batch_size": 128,
    "augment.train": FLIP_CROP,
}
# The same on a laptop CPU: an eighth of the width (about 1/60 of the compute), 5,000 images, 3
# epochs. Half the batch at half the lr (the linear scaling rule) gives twice the steps, which a
# short run needs more than large batches. Measured on the shapes: about 80% test accuracy, where
# 2,500 images for 4 epochs reach about 45% (flips and crops slow down early learning).
RESNET_CPU = {"model.options": {"width": 8}, "run.epochs": 3, "run.batch_size": 64, "optim.lr": 0.05}


@dataclass(frozen=True)
class Preset:
    title: str
    description: str
    datasets: tuple[str, ...]  # the course's dataset first, then stand-ins; shapes is the last resort
    base: dict[str, Any]  # dotted config overrides shared by every run
    runs: tuple[tuple[str, dict[str, Any]], ...]  # (run name, dotted overrides on top of base)
    cpu: dict[str, Any] = field(default_factory=dict)  # overrides without a CUDA GPU
    cpu_train_images: int = 5000  # training images without a CUDA GPU (a stratified subset)
    on_fallback: dict[str, Any] = field(default_factory=dict)  # overrides on the shapes dataset
    # Overrides of single runs on the shapes dataset (run name -> overrides), on top of on_fallback.
    run_on_fallback: dict[str, dict[str, Any]] = field(default_factory=dict)
    # A run trained first, whose weights runs with model.init_from_run = PRETRAINED start from:
    # (name, overrides on top of base), and its own overrides without a CUDA GPU (on top of `cpu`).
    pretrain: tuple[str, dict[str, Any]] | None = None
    pretrain_cpu: dict[str, Any] = field(default_factory=dict)


PRESETS: dict[str, Preset] = {
    "flip": Preset(
        title="Flip augmentation vs none",
        description="ResNet-18 on CIFAR-10 trained with and without random horizontal flips: the "
        "cheapest augmentation there is, and a few points of test accuracy for free. On the shapes "
        "stand-in the training objects sit only in the left half (variant 'left') while the test "
        "objects are anywhere, so the flipped run sees test-like images and the other does not.",
        datasets=("cifar10",),
        base={**RESNET_CIFAR, "augment.train": []},
        runs=(
            ("no augmentation", {}),
            ("horizontal flip", {"augment.train": [{"op": "hflip", "params": {"p": 0.5}}]}),
        ),
        cpu=RESNET_CPU,
        on_fallback={"data.variant": "left"},
    ),
    "lenet_vgg": Preset(
        title="LeNet vs VGG",
        description="LeNet-5 (1998, 60k parameters) against VGG-11 with batch norm (2014, 9M "
        "parameters) on CIFAR-10 with flips and crops: depth, 3x3 convolutions and batch norm. "
        "VGG is slow on a CPU, so the scaled-down version trains it at an eighth of its width "
        "(145k parameters, still twice LeNet's) for three epochs; both are far from converged there.",
        datasets=("cifar10",),
        base={**RESNET_CIFAR, "optim.lr": 0.05, "run.epochs": 20},
        runs=(
            ("LeNet-5", {"model.name": "lenet", "model.options": {"activation": "relu"}}),
            ("VGG-11", {"model.name": "vgg11", "model.options": {"batch_norm": True, "width": 64}}),
        ),
        # On the shapes: 5,000 images, 3 epochs, batches of 32 at lr 0.02 (at lr 0.05 VGG sometimes
        # stayed at chance), no augmentation, VGG-11 at width 8: LeNet 25%, VGG 87%, 12 s in all.
        # On 500 images for 2 epochs (the first version) both stayed at chance; width 16 takes minutes.
        cpu={"run.epochs": 3, "run.batch_size": 32, "optim.lr": 0.02, "model.options": {"width": 8}},
        on_fallback={"augment.train": []},
    ),
    "mnist_mlp_cnn": Preset(
        title="MNIST: fully connected vs CNN, with and without permuted pixels",
        description="A two-layer fully connected network against LeNet-5 on MNIST digits, each on the "
        "plain images and on images whose pixel positions are shuffled by one fixed random permutation "
        "(the same for every image, train and test). On plain digits the CNN does as well with far fewer "
        "parameters, because its filters are shared across positions and look at neighbouring pixels. "
        "The permutation changes nothing for the MLP, which never knew which pixels were neighbours, "
        "but it breaks the CNN's assumption that nearby pixels belong together: its advantage is gone.",
        datasets=("mnist", "fashion_mnist"),
        base={
            "data.dataset": "mnist",
            "optim.lr": 0.05,
            "schedule.name": "cosine",
            "run.epochs": 10,
            "run.batch_size": 128,
            "augment.train": [],
        },
        runs=(
            ("fully connected (MLP 256-128)", {"model.name": "mlp", "model.options": {"hidden": [256, 128]}}),
            ("CNN (LeNet-5)", {"model.name": "lenet", "model.options": {"activation": "relu"}}),
            (
                "MLP, permuted pixels",
                {"model.name": "mlp", "model.options": {"hidden": [256, 128]}, "data.permute_pixels": True},
            ),
            (
                "CNN, permuted pixels",
                {"model.name": "lenet", "model.options": {"activation": "relu"}, "data.permute_pixels": True},
            ),
        ),
        # Batches of 32: three epochs of 5,000 images are then enough steps for LeNet to learn. Measured
        # (Fashion-MNIST standing in for MNIST; test accuracy plain / permuted): MLP 84% / 84%, LeNet
        # 83% / 78%; with batches of 128, LeNet reached only 76% / 68%. On the shapes: MLP 29% / 28%,
        # LeNet 68% / 13%.
        cpu={"run.epochs": 3, "run.batch_size": 32},
    ),
    "label_smoothing": Preset(
        title="Label smoothing vs baseline",
        description="ResNet-18 on CIFAR-10 with flips and crops, trained on one-hot targets and on "
        "targets smoothed with epsilon 0.1 (Szegedy et al. 2016): less over-confident predictions, "
        "usually a small gain in accuracy.",
        datasets=("cifar10",),
        base=RESNET_CIFAR,
        runs=(("baseline", {}), ("label smoothing 0.1", {"tricks.label_smoothing": 0.1})),
        cpu=RESNET_CPU,
    ),
    "mixup": Preset(
        title="Mixup vs baseline",
        description="ResNet-18 on CIFAR-10 with flips and crops, with and without Mixup (Zhang et al. "
        "2018, alpha 0.2): every batch is blended with a shuffled copy of itself, labels too. Mixup "
        "regularises, so it pays off in long runs; in short ones it can cost a little.",
        datasets=("cifar10",),
        base=RESNET_CIFAR,
        runs=(("baseline", {}), ("Mixup alpha 0.2", {"tricks.mixup_alpha": 0.2})),
        cpu=RESNET_CPU,
    ),
    "cutout": Preset(
        title="Cutout vs baseline",
        description="ResNet-18 on CIFAR-10 with flips and crops, with and without Cutout (DeVries & "
        "Taylor 2017): one square hole of half the image side per image, as the paper uses for "
        "CIFAR-10. On the shapes stand-in the hole is filled with the images' mean grey rather than "
        "black: a black square would look like the 'square' class.",
        datasets=("cifar10",),
        base=RESNET_CIFAR,
        runs=(
            ("baseline", {}),
            ("Cutout", {"augment.train": [*FLIP_CROP, {"op": "cutout", "params": {"p": 1.0, "n_holes": 1, "size": 0.5}}]}),
        ),
        cpu=RESNET_CPU,
        # On the shapes a black hole is itself a dark square, and "square" is one of the classes:
        # every image then showed one, and the run stayed at chance (Cutout 15-17%, baseline 89-94%).
        # Filled with the shapes' mean grey (what the paper's zero after normalising is) it learns:
        # 57% after 3 epochs (a quarter-side hole: 48%). Short runs favour the unregularised baseline.
        run_on_fallback={
            "Cutout": {"augment.train": [*FLIP_CROP, {"op": "cutout", "params": {"p": 1.0, "n_holes": 1, "size": 0.5, "fill": 0.68}}]},
        },
    ),
    "warmup_cosine": Preset(
        title="Warmup + cosine vs step decay",
        description="ResNet-18 on CIFAR-10: the classic step decay (lr x0.1 at 50% and 75% of the run) "
        "against a linear warmup over the first 5 epochs (Goyal et al. 2017) followed by cosine "
        "decay, both peaking at lr 0.1.",
        datasets=("cifar10",),
        base=RESNET_CIFAR,
        runs=(
            ("step decay", {"schedule.name": "step", "schedule.milestones": [0.5, 0.75], "schedule.gamma": 0.1}),
            ("warmup + cosine", {"schedule.name": "cosine", "schedule.warmup": 5, "schedule.warmup_unit": "epochs"}),
        ),
        cpu=RESNET_CPU,
    ),
    "finetune": Preset(
        title="Fine-tuning vs from scratch (pretrained here, works offline)",
        description="The transfer-learning recipe without downloading anything. First a FastCNN is "
        "pretrained on the full shapes set (every colour). Then the target task: only 300 training "
        "images, all red or green (variant 'few_colours'), tested on shapes of every colour. One run "
        "starts from the pretrained body with a new head that learns 10x faster than the body (and a "
        "lower learning rate for the body, which is already good); the other trains the same network "
        "from random weights at the usual learning rate. The fine-tuning run waits in the queue until "
        "the pretraining run has finished. The same works for your own images: pretrain on a large "
        "dataset, then pick that run under 'Start from a finished run's weights' (Model tab) for a run on your upload.",
        datasets=("shapes",),
        base={
            "data.dataset": "shapes",
            "data.variant": "few_colours",
            "data.subset": 0.06,  # 300 training images: where pretraining pays off
            "model.name": "fastcnn",
            "schedule.name": "cosine",
            "run.epochs": 10,
            "run.batch_size": 32,
            "augment.train": [],
        },
        runs=(
            ("from scratch", {"optim.lr": 0.05}),
            (
                "fine-tuned, head lr x10",
                {"model.init_from_run": PRETRAINED, "optim.lr": 0.01, "optim.head_lr_mult": 10.0},
            ),
        ),
        pretrain=(
            "pretraining on all the shapes",
            {"data.variant": None, "data.subset": None, "run.epochs": 5, "run.batch_size": 64, "optim.lr": 0.05},
        ),
        cpu={"run.epochs": 6},
        cpu_train_images=2500,
        pretrain_cpu={"run.epochs": 2},
    ),
    "finetune_imagenet": Preset(
        title="Fine-tuning from ImageNet vs from scratch (needs the weights)",
        description="torchvision's ResNet-18 on CIFAR-10 at 64 px: started from ImageNet weights with a "
        "10x learning rate on the new head, against the same network from random weights. The "
        "pretrained weights must be in torch's cache (or downloadable); without them the "
        "fine-tuning run fails and says where to put the file. Offline, the preset 'Fine-tuning vs "
        "from scratch (pretrained here)' shows the same with a body pretrained on this machine.",
        datasets=("cifar10",),
        base={
            **RESNET_CIFAR,
            "data.image_size": 64,
            "model.name": "tv_resnet18",
            "optim.lr": 0.01,
            "run.epochs": 10,
        },
        runs=(
            ("fine-tuned, head lr x10", {"model.options": {"pretrained": True}, "optim.head_lr_mult": 10.0}),
            ("from scratch", {"model.options": {"pretrained": False}}),
        ),
        cpu={"data.image_size": None, "run.epochs": 2, "run.batch_size": 64},
        cpu_train_images=400,
    ),
}


@dataclass(frozen=True)
class PresetPlan:
    """What launching a preset here would train, and why it differs from the course's version."""

    key: str
    title: str
    dataset: str
    scaled_down: bool
    runs: list[tuple[str, TrainConfig]]  # the compared runs
    notes: list[str]
    pretrain: tuple[str, TrainConfig] | None = None  # trained first; see PRETRAINED


def plan_preset(name: str, device: str = "cpu", available: Iterable[str] | None = None) -> PresetPlan:
    """The preset's runs for `device` ("cuda", "cuda:1", "cpu", "mps") and the datasets `available`.

    Full scale only on a CUDA GPU; elsewhere the runs shrink to about a minute on a laptop CPU.
    `available` defaults to core.data.available_datasets().
    """
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    preset = PRESETS[name]
    if available is None:
        available = available_datasets()
    available = set(available)
    scaled_down = not str(device).startswith("cuda")
    dataset = next((d for d in preset.datasets if d in available), FALLBACK_DATASET)

    notes = []
    if dataset != preset.datasets[0]:
        where = f"the embedded {DATASETS[dataset].label} dataset" if dataset == FALLBACK_DATASET else DATASETS[dataset].label
        if dataset == FALLBACK_DATASET and preset.on_fallback:
            where += " with " + ", ".join(f"{k} {_show(v)}" for k, v in preset.on_fallback.items())
        per_run = "".join(
            f" On it the run {run_name!r} uses " + "; ".join(f"{k} {_show(v)}" for k, v in changes.items()) + "."
            for run_name, changes in preset.run_on_fallback.items()
        ) if dataset == FALLBACK_DATASET else ""
        notes.append(
            f"{DATASETS[preset.datasets[0]].label} is not on this machine (the Data section says how to add it), "
            f"so the runs use {where} instead.{per_run}"
        )

    runs, scaling = [], {}
    for run_name, overrides in preset.runs:
        cfg = apply_overrides(TrainConfig(), {**preset.base, **overrides})
        if dataset != cfg.data.dataset:
            fallback = {**preset.on_fallback, **preset.run_on_fallback.get(run_name, {})} if dataset == FALLBACK_DATASET else {}
            cfg = apply_overrides(cfg, {"data.dataset": dataset, **fallback})
        if scaled_down:
            small = _scale_down(cfg, preset, dataset)
            # what shrank, over all the runs (a warmup may be in one run only), each key once; what
            # the fallback dataset changed is said in its own note
            scaling.update({k: v for k, v in diff(cfg, small).items() if k not in scaling})
            cfg = small
        runs.append((f"{preset.title} · {run_name}", cfg))
    if scaled_down:
        notes.append(_scaling_note(scaling, dataset))

    pretrain = None
    if preset.pretrain is not None:
        run_name, overrides = preset.pretrain
        full = apply_overrides(TrainConfig(), {**preset.base, **overrides})
        cfg = _scale_down(full, preset, full.data.dataset, preset.pretrain_cpu) if scaled_down else full
        pretrain = (f"{preset.title} · {run_name}", cfg)
        if scaled_down:
            said = _changes(diff(full, cfg), cfg.data.dataset)
            notes.append(f"The pretraining run is scaled down too: {'; '.join(said)}.")
    return PresetPlan(
        key=name, title=preset.title, dataset=dataset, scaled_down=scaled_down, runs=runs, notes=notes, pretrain=pretrain
    )


def build_preset(name: str, device: str = "cpu", available: Iterable[str] | None = None) -> list[tuple[str, TrainConfig]]:
    """(run name, config) for every run of the preset; see plan_preset for the notes."""
    return plan_preset(name, device, available).runs


def launch_plan(plan: PresetPlan) -> list[str]:
    """Queue the plan's runs (its pretraining run first) and return the ids of the compared runs.

    The compared runs that start from the pretraining run get its id as model.init_from_run; the
    queue starts them once it has ended, so this returns at once, like runner.launch.
    """
    from core import runner

    pretrain_id = None
    if plan.pretrain is not None:
        name, cfg = plan.pretrain
        pretrain_id = runner.launch(cfg, name)
    ids = []
    for name, cfg in plan.runs:
        if cfg.model.init_from_run == PRETRAINED:
            if pretrain_id is None:
                raise ValueError(f"{name} starts from the pretraining run, but preset {plan.key} has none")
            cfg = apply_overrides(cfg, {"model.init_from_run": pretrain_id})
        ids.append(runner.launch(cfg, name))
    return ids


def _scale_down(cfg: TrainConfig, preset: Preset, dataset: str, extra: Mapping[str, Any] = ()) -> TrainConfig:
    overrides: dict[str, Any] = {**preset.cpu, **dict(extra)}
    # Options of a model the run does not use would be rejected: keep only the ones it has.
    if "model.options" in overrides:
        options = {k: v for k, v in overrides.pop("model.options").items() if k in cfg.model.options}
        overrides["model.options"] = {**cfg.model.options, **options}
    train_size = TRAIN_SIZES.get(dataset)
    if train_size and preset.cpu_train_images < train_size:
        # A run declared on fewer images than that (a small fine-tuning set) keeps its own number.
        overrides["data.subset"] = min(cfg.data.subset or 1.0, round(preset.cpu_train_images / train_size, 4))
    epochs = overrides.get("run.epochs", cfg.run.epochs)
    ratio = epochs / cfg.run.epochs
    # Lengths in epochs shrink with the run: a 5-epoch warmup of a 30-epoch run stays a sixth of it.
    s = cfg.schedule
    if s.warmup and s.warmup_unit == "epochs":
        overrides["schedule.warmup"] = round(s.warmup * ratio, 3)
    if s.t0_unit == "epochs" and s.name == "sgdr":
        overrides["schedule.t0"] = max(0.01, round(s.t0 * ratio, 3))
    if cfg.optim.freeze_body_epochs:
        overrides["optim.freeze_body_epochs"] = max(1, round(cfg.optim.freeze_body_epochs * ratio))
    return apply_overrides(cfg, overrides)


def _scaling_note(changes: Mapping[str, tuple[Any, Any]], dataset: str) -> str:
    return (
        "No CUDA GPU here, so the preset is scaled down to train in about a minute on a laptop CPU: "
        + "; ".join(_changes(changes, dataset))
        + ". Accuracies are lower than the course's; compare the runs with each other."
    )


def _changes(changes: Mapping[str, tuple[Any, Any]], dataset: str) -> list[str]:
    said = []
    for key, (before, after) in changes.items():
        if key == "data.dataset" or (key == "data.variant" and dataset == FALLBACK_DATASET):
            continue  # said in the fallback note
        size = TRAIN_SIZES.get(dataset)
        if key == "data.subset" and size:
            said.append(f"{round(after * size):,} training images instead of {round((before or 1.0) * size):,}")
        else:
            said.append(f"{key} {_show(before)} → {_show(after)}")
    return said


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)) and all(isinstance(v, Mapping) and "op" in v for v in value):
        # an augmentation pipeline: "hflip (p 0.5), cutout (p 1, size 0.25)", or none
        return ", ".join(f"{step['op']} ({_show(step.get('params', {}))})" for step in value) or "none"
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {v}" for k, v in value.items()) or "{}"
    return "auto" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
