"""The course's experiments as one-click presets: a few runs that differ in one thing, on real data.

    plan = plan_preset("flip", device="cpu")          # which data, which budget, which runs
    plan.dataset, plan.source   # "zip:/.../cifar10.zip", "your upload cifar10.zip"
    plan.runs                   # [("Flip augmentation vs none · no augmentation", TrainConfig), ...]
    plan.notes                  # what was chosen and why, in plain words; the page shows them
    plan.runnable               # False when the data it needs is missing (plan.blocked says what to do)
    launch_plan(plan)           # queue every run (x plan.seeds); returns the run ids

Each preset asks for a kind of dataset (core.data.sources: "cifar10", "mnist", "photos") and takes
the best copy on this machine: torchvision's files, a dataset the user uploaded or pointed to and
that was recognised or chosen as that kind, or an embedded one (the real scikit-learn digits for
MNIST). `dataset=` runs it on any dataset instead. The generated shapes are a fallback only for the
presets where they show the course's direction (`shapes` is set); the others are not run on the
shapes: their plan says which dataset they need and how to get it.

Three budgets:
  - "course": on a CUDA GPU, the course's own recipe, unchanged (ResNet-18, Adam lr 1e-3, batch
    256, 10 epochs for the flip experiment), so the result can be held against the course's;
  - "classroom": without one, a CPU configuration found by experiment on the real data
    (bench/presets_real.py) that trains the whole preset in about 3 minutes on a 2-core laptop;
    `measured` says what it showed over 3 seeds, including where it does not show the effect;
  - "longer": where the classroom budget does not show the effect and a longer one does, that one.

Seeds: `seeds=3` queues every run three times (run.seed 0, 1, 2, named "... · seed N"), which is
what core.runs.verdict needs to tell a difference from seed noise.

A preset may train one run first that the compared runs start from (`pretrain`, for fine-tuning
on the shapes): its config is in `plan.pretrain`, and a compared run whose model.init_from_run is
`PRETRAINED` gets that run's id when `launch_plan` queues it. The queue holds such a run back
until the pretraining run has ended (core.runs.store.claim_next_queued).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.data import sources
from core.data.sources import Resolved
from core.i18n import N_, _, tr
from core.runs.compare import seed_run_name
from core.training.config import TrainConfig, apply_overrides, diff

# Stands for the id of the preset's pretraining run in a compared run's model.init_from_run,
# until launch_plan knows that id. Readable as it is in the page's table of runs.
PRETRAINED = "<the pretraining run>"
SHAPES = "shapes"
BUDGETS = ("course", "classroom", "longer")
MAX_SEEDS = 5

# ============================================================================ the course's recipes

FLIP = [{"op": "hflip", "params": {"p": 0.5}}]
# The usual CIFAR augmentation (He et al. 2016): random horizontal flips and 4-pixel padded crops.
FLIP_CROP = [*FLIP, {"op": "pad_crop", "params": {"padding": 4, "padding_mode": "reflect"}}]

# ResNet-18 on CIFAR-10 with SGD, the reference setting of most of the course's experiments.
RESNET_CIFAR = {
    "data.dataset": "cifar10",
    "model.name": "resnet18",
    "model.options": {"width": 64},
    "optim.name": "sgd",
    "optim.lr": 0.1,
    "optim.weight_decay": 5e-4,
    "schedule.name": "cosine",
    "run.epochs": 30,
    "run.batch_size": 128,
    "augment.train": FLIP_CROP,
}
# The course's flip experiment (d2l, "Image Augmentation"): ResNet-18, Adam lr 1e-3, batch 256,
# 10 epochs, flips only; 75.4% test accuracy with flips in the course.
COURSE_FLIP = {
    **RESNET_CIFAR,
    "optim.name": "adam",
    "optim.lr": 1e-3,
    "optim.weight_decay": 0.0,
    "schedule.name": "constant",
    "run.epochs": 10,
    "run.batch_size": 256,
    "augment.train": FLIP,
}

# ============================================================================ the classroom budget
#
# CIFAR-10 on a 2-core CPU: the cpu_fast_cifar recipe's network (FastCNN, a whitening stem,
# bfloat16, channels_last; core/runs/recipes.py) on 5,000 training images for 30 epochs. Augmentation
# pays when data is scarce and training long: on the full 50,000 images for 2 epochs (the 1-minute
# recipe) flips changed nothing (78.2% both); on 5,000 images for 30 epochs a network without
# augmentation reaches 100% training accuracy and 64% test accuracy (seed 0), the regime where
# augmentation has something to fix. About 85 s a run on 2 cores (bench/presets_real.py).
CIFAR_IMAGES = 5000
# The longer budget of the regularisers, which a short run does not reward: twice the epochs.
LONGER = {"run.epochs": 60, "run.eval_every": 10}
# Half the images for twice the epochs: the same steps (the same minutes) as 5,000 x 30, in the
# regime where a regulariser has more to fix. There Mixup and Cutout show beyond seed noise.
SCARCE_IMAGES = 2500
SCARCE = {"run.epochs": 60, "run.eval_every": 10}
CUTOUT_SWEEP = (0.125, 0.25, 0.375, 0.5, 0.625)  # the hole's side as a share of the image side
CIFAR_CPU = {
    "model.name": "fastcnn",
    "model.options": {"width": 1.0, "depth": 2, "logit_scale": 1 / 9, "stem": "whiten", "bn_momentum": 0.4, "flip_tta": False},
    "optim.name": "sgd",
    "optim.lr": 0.5,
    "optim.momentum": 0.85,
    "optim.nesterov": True,
    "optim.weight_decay": 1.3e-3,
    "schedule.name": "onecycle",
    "schedule.pct_start": 0.23,
    "schedule.div_factor": 5.0,
    "schedule.final_div_factor": 1e4,
    "run.epochs": 30,
    "run.batch_size": 256,
    "run.eval_every": 5,
    "run.amp": "bf16",
    "run.channels_last": True,
}


@dataclass(frozen=True)
class Preset:
    # The texts (title, description, the run names, measured, longer_measured, shapes_measured,
    # not_on_shapes) are English marked with N_ where declared: show them with core.i18n.tr.
    title: str
    description: str
    needs: str  # the kind of dataset it is written for (core.data.sources.KINDS)
    course: dict[str, Any]  # dotted overrides shared by every run: the course's recipe (CUDA)
    runs: tuple[tuple[str, dict[str, Any]], ...]  # (run name, dotted overrides on top of the recipe)
    cpu: dict[str, Any] = field(default_factory=dict)  # the classroom budget, on top of `course`
    cpu_images: int | None = None  # training images of the classroom budget (a stratified subset)
    cpu_runs: dict[str, dict[str, Any]] = field(default_factory=dict)  # run name -> its own CPU overrides
    # What the classroom budget showed on real data over 3 seeds (bench/presets_real.py), and
    # whether that is the course's direction beyond seed noise.
    measured: str = N_("not measured yet")
    shown: bool = True
    cpu_minutes: float | None = None  # the whole preset, one seed a run, on a 2-core laptop
    longer: dict[str, Any] | None = None  # a longer CPU budget that shows the effect, on top of `cpu`
    longer_measured: str = ""
    longer_minutes: float | None = None
    # Overrides of particular datasets (the 8x8 digits are upscaled for LeNet's 28x28 input).
    on_dataset: dict[str, dict[str, Any]] = field(default_factory=dict)
    # On the generated shapes, where they show the course's direction: overrides (None: not run there).
    shapes: dict[str, Any] | None = None
    shapes_runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    shapes_measured: str = ""
    not_on_shapes: str = N_("they would not show the course's lesson.")
    # (run a, run b, the course's direction: +1 b beats a, -1 b loses, 0 no difference); default:
    # every run beats the first.
    contrasts: tuple[tuple[str, str, int], ...] = ()
    # A run trained first, whose weights runs with model.init_from_run = PRETRAINED start from.
    pretrain: tuple[str, dict[str, Any]] | None = None
    pretrain_cpu: dict[str, Any] = field(default_factory=dict)


def _cifar_trick(title: str, description: str, run_name: str, overrides: dict[str, Any], **kw: Any) -> Preset:
    """A trick against the flips-and-crops baseline, on CIFAR-10."""
    kw = {"cpu": CIFAR_CPU, "cpu_images": CIFAR_IMAGES, **kw}
    return Preset(
        title=title, description=description, needs="cifar10", course=RESNET_CIFAR,
        runs=((N_("baseline (flips + crops)"), {}), (run_name, overrides)), **kw,
    )


def _pipeline(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"augment.train": [*FLIP_CROP, *steps]}


PRESETS: dict[str, Preset] = {
    "flip": Preset(
        title=N_("Flip augmentation vs none"),
        description=N_("ResNet-18 on CIFAR-10 trained with and without random horizontal flips: the "
        "cheapest augmentation there is. The course's recipe (Adam lr 0.001, batch 256, 10 epochs) "
        "reaches 75.4% test accuracy with flips. On the shapes stand-in the training objects sit only in "
        "the left half (variant 'left') while the test objects are anywhere, so the flipped run sees "
        "test-like images and the other does not."),
        needs="cifar10",
        course={**COURSE_FLIP, "augment.train": []},
        runs=((N_("no augmentation"), {}), (N_("horizontal flip"), {"augment.train": FLIP})),
        cpu=CIFAR_CPU,
        cpu_images=CIFAR_IMAGES,
        measured=N_("no augmentation 63.9% ± 0.2, flips 71.4% ± 0.4: +7.5 points (95% interval +6.8 to +8.2), "
        "beyond seed noise"),
        cpu_minutes=3,
        # the old CPU budget, on the shapes: an eighth of the width, 3 epochs
        shapes={"data.variant": "left", "model.options": {"width": 8}, "run.epochs": 3, "run.batch_size": 64,
                "optim.lr": 0.05},
        shapes_measured=N_("no augmentation 82%, flips 97% (one seed)"),
    ),
    "lenet_vgg": Preset(
        title=N_("LeNet vs VGG"),
        description=N_("LeNet-5 (1998, 60k parameters) against VGG-11 with batch norm (2014) on CIFAR-10 with "
        "flips and crops: depth, 3x3 convolutions and batch norm. The course reports 62% for LeNet and "
        "84.8% for VGG-16. On a CPU VGG-11 trains at a quarter of its width."),
        needs="cifar10",
        course={**RESNET_CIFAR, "optim.lr": 0.05, "run.epochs": 20},
        runs=(
            (N_("LeNet-5"), {"model.name": "lenet", "model.options": {"activation": "relu"}}),
            (N_("VGG-11"), {"model.name": "vgg11", "model.options": {"batch_norm": True, "width": 64}}),
        ),
        cpu={"run.epochs": 15, "run.batch_size": 64, "optim.lr": 0.02, "schedule.name": "cosine", "run.eval_every": 5,
             "run.amp": "bf16", "run.channels_last": True},
        cpu_images=CIFAR_IMAGES,
        cpu_runs={"VGG-11": {"model.options": {"batch_norm": True, "width": 16}}},
        measured=N_("LeNet-5 52.8% ± 1.0, VGG-11 (width 16) 67.4% ± 0.6: +14.6 points (95% interval +12.5 to "
        "+16.7), beyond seed noise"),
        cpu_minutes=0.7,
        # On the shapes: 5,000 images, 3 epochs, batches of 32 at lr 0.02, no augmentation, VGG-11 at
        # width 8: LeNet 25%, VGG 87%, 12 s in all.
        shapes={"augment.train": [], "run.epochs": 3, "run.batch_size": 32, "optim.lr": 0.02},
        shapes_runs={"VGG-11": {"model.options": {"batch_norm": True, "width": 8}}},
        shapes_measured=N_("LeNet 25%, VGG-11 87% (one seed, 12 s)"),
    ),
    "mnist_mlp_cnn": Preset(
        title=N_("MNIST: fully connected vs CNN, with and without permuted pixels"),
        description=N_("A two-layer fully connected network against LeNet-5 on handwritten digits, each on the "
        "plain images and on images whose pixel positions are shuffled by one fixed random permutation "
        "(the same for every image, train and test). On plain digits the CNN does as well with far fewer "
        "parameters, because its filters are shared across positions and look at neighbouring pixels. "
        "The permutation changes nothing for the MLP, which never knew which pixels were neighbours, "
        "but it breaks the CNN's assumption that nearby pixels belong together: its advantage is gone."),
        needs="mnist",
        course={
            "data.dataset": "mnist",
            "optim.name": "sgd",
            "optim.lr": 0.05,
            "schedule.name": "cosine",
            "run.epochs": 10,
            "run.batch_size": 128,
            "augment.train": [],
        },
        runs=(
            (N_("fully connected (MLP 256-128)"), {"model.name": "mlp", "model.options": {"hidden": [256, 128]}}),
            (N_("CNN (LeNet-5)"), {"model.name": "lenet", "model.options": {"activation": "relu"}}),
            (
                N_("MLP, permuted pixels"),
                {"model.name": "mlp", "model.options": {"hidden": [256, 128]}, "data.permute_pixels": True},
            ),
            (
                N_("CNN, permuted pixels"),
                {"model.name": "lenet", "model.options": {"activation": "relu"}, "data.permute_pixels": True},
            ),
        ),
        cpu={"run.epochs": 10, "run.batch_size": 32},
        cpu_images=5000,
        # scikit-learn's digits are 8x8: LeNet-5 needs its 28x28 input
        on_dataset={"digits": {"data.image_size": 28, "run.epochs": 20}},
        measured=N_("on the embedded 8x8 digits, plain: MLP 98.5% ± 0.6, LeNet 99.1% ± 0.3 (+0.6 points, 95% interval "
        "-0.8 to +1.9, within seed noise); permuted: MLP 98.4% ± 0.3 (unchanged), LeNet 68% ± 50 (one seed of three "
        "stayed at chance, the other two reached 97%). The digits are too small and too easy for the CNN's "
        "advantage to show. On Fashion-MNIST's real 28x28 images (chosen as the Data; 5,000 images, 10 epochs, "
        "2 minutes) all three show, beyond seed noise: LeNet 86.2% ± 0.2 against the MLP's 85.1% ± 0.1 (+1.1, "
        "+0.6 to +1.5); permuted, LeNet falls to 81.9% ± 0.1 (-4.3, -4.8 to -3.9), the MLP stays at 85.1% ± 0.3"),
        shown=False,
        cpu_minutes=0.7,
        contrasts=(
            ("fully connected (MLP 256-128)", "CNN (LeNet-5)", 1),
            ("CNN (LeNet-5)", "CNN, permuted pixels", -1),
            ("fully connected (MLP 256-128)", "MLP, permuted pixels", 0),
        ),
        shapes={"run.epochs": 3, "run.batch_size": 32},
        shapes_measured=N_("MLP 29% / 28%, LeNet 68% / 13% plain / permuted (one seed)"),
    ),
    "label_smoothing": _cifar_trick(
        N_("Label smoothing vs baseline"),
        N_("ResNet-18 on CIFAR-10 with flips and crops, trained on one-hot targets and on targets smoothed "
        "with epsilon 0.1 (Szegedy et al. 2016): less over-confident predictions, usually a small gain in "
        "accuracy."),
        N_("label smoothing 0.1"), {"tricks.label_smoothing": 0.1},
        measured=N_("baseline 75.5% ± 0.2, label smoothing 75.3% ± 0.6: -0.1 points (95% interval -1.5 to +1.2), "
        "within seed noise; on 2,500 images for 60 epochs -0.8 (-2.0 to +0.3), within"),
        shown=False, cpu_minutes=3,
        longer_measured=N_("Nor does twice the length: at 60 epochs baseline 76.1% ± 0.1, label smoothing 75.6% ± 0.4, "
        "-0.5 points (95% interval -1.4 to +0.3), within seed noise"),
    ),
    "mixup": _cifar_trick(
        N_("Mixup vs baseline"),
        N_("ResNet-18 on CIFAR-10 with flips and crops, with and without Mixup (Zhang et al. 2018, alpha 0.2): "
        "every batch is blended with a shuffled copy of itself, labels too. Mixup regularises, so it pays "
        "off in long runs; in short ones it can cost a little."),
        N_("Mixup alpha 0.2"), {"tricks.mixup_alpha": 0.2},
        cpu={**CIFAR_CPU, **SCARCE}, cpu_images=SCARCE_IMAGES,
        measured=N_("on 2,500 images for 60 epochs, baseline 68.3% ± 0.2; Mixup +1.3 points (95% interval "
        "+0.2 to +2.3), beyond seed noise. On 5,000 images for 30 epochs (the same minutes) it did not show (75.5% "
        "± 0.2 against 75.7% ± 0.3, +0.2, -0.3 to +0.8); for 60 epochs it did (76.1% ± 0.1 against 77.3% ± 0.0, "
        "+1.2, +0.9 to +1.5, 6.5 minutes)"),
        cpu_minutes=3.4,
    ),
    "cutout": _cifar_trick(
        N_("Cutout vs baseline"),
        N_("ResNet-18 on CIFAR-10 with flips and crops, with and without Cutout (DeVries & Taylor 2017): a "
        "square hole of half the image side, filled with the images' mean grey (what the paper's zero "
        "after normalising is)."),
        N_("Cutout"), _pipeline({"op": "cutout", "params": {"p": 1.0, "n_holes": 1, "size": 0.5, "fill": 0.47}}),
        cpu={**CIFAR_CPU, **SCARCE}, cpu_images=SCARCE_IMAGES,
        measured=N_("on 2,500 images for 60 epochs, baseline 68.3% ± 0.2; Cutout +0.7 points (95% interval "
        "+0.3 to +1.2), beyond seed noise. On 5,000 images for 30 epochs (the same minutes) it did not show (75.5% "
        "± 0.2 against 75.3% ± 0.5, -0.2, -1.1 to +0.8); for 60 epochs it did (76.1% ± 0.1 against 77.5% ± 0.3, "
        "+1.4, +0.7 to +2.1, 6.5 minutes)"),
        cpu_minutes=3.4,
    ),
    "cutout_sweep": Preset(
        title=N_("Cutout size: a sweep"),
        description=N_("The classic strength sweep of DeVries & Taylor (2017, their figure 3): ResNet-18 on "
        "CIFAR-10 with flips and crops and one Cutout hole whose side is 1/8 to 5/8 of the image (4 to 20 "
        "pixels on 32; the paper found 16 best). With the runs finished, Compare plots final test accuracy "
        "against the hole's size with a band over the seeds and says whether the best size beats the next "
        "one beyond seed noise. Launch it with 3 seeds."),
        needs="cifar10",
        course=RESNET_CIFAR,
        runs=tuple(
            (f"Cutout {round(32 * size)} px",  # a name: the same in every language
             _pipeline({"op": "cutout", "params": {"p": 1.0, "n_holes": 1, "size": size, "fill": 0.47}}))
            for size in CUTOUT_SWEEP
        ),
        cpu={**CIFAR_CPU, **SCARCE},
        cpu_images=SCARCE_IMAGES,
        measured=N_("on 2,500 images for 60 epochs: 4 px 68.3% ± 0.5, 8 px 69.0% ± 0.3, 12 px 69.2% ± 0.1, 16 px "
        "69.1% ± 0.2, 20 px 68.5% ± 1.0 (without Cutout 68.3% ± 0.2). The curve rises to a plateau at 8 to 16 px "
        "and falls at 20, as in the paper, but three seeds do not separate its points: the best, 12 px, against "
        "16 px +0.1 (95% interval -0.3 to +0.5), against 4 px +0.9 (-0.3 to +2.0), within seed noise"),
        cpu_minutes=8.4,
    ),
    "cutmix": _cifar_trick(
        N_("CutMix vs baseline"),
        N_("ResNet-18 on CIFAR-10 with flips and crops, with and without CutMix (Yun et al. 2019, alpha 1): a "
        "rectangle of each image is replaced by the same rectangle of another image of the batch, and the "
        "labels are mixed by area."),
        N_("CutMix alpha 1"), {"tricks.cutmix_alpha": 1.0},
        measured=N_("baseline 75.5% ± 0.2, CutMix 72.7% ± 0.4: -2.8 points (95% interval -3.6 to -1.9), beyond seed "
        "noise, the other way: in a short run the harder mixed images cost more than they regularise. On 2,500 images "
        "for 60 epochs it turns the course's way, +1.3 (-0.5 to +3.0), but within seed noise"),
        shown=False, cpu_minutes=3,
    ),
    "ricap": _cifar_trick(
        N_("RICAP vs baseline"),
        N_("ResNet-18 on CIFAR-10 with flips and crops, with and without RICAP (Takahashi et al. 2018, beta "
        "0.3): every training image is a collage of crops of four images, its label their areas' mix."),
        N_("RICAP beta 0.3"), {"tricks.ricap_beta": 0.3},
        measured=N_("baseline 75.5% ± 0.2, RICAP 73.8% ± 0.6: -1.7 points (95% interval -3.1 to -0.3), beyond seed "
        "noise, the other way: in a short run the collages cost more than they regularise. On 2,500 images for 60 "
        "epochs -0.1 (-1.3 to +1.1), within"),
        shown=False, cpu_minutes=3,
    ),
    "random_erasing": _cifar_trick(
        N_("Random Erasing vs baseline"),
        N_("ResNet-18 on CIFAR-10 with flips and crops, with and without Random Erasing (Zhong et al. 2017, p "
        "0.5): a random rectangle of random size and aspect is replaced by noise."),
        N_("Random Erasing p 0.5"), _pipeline({"op": "random_erasing", "params": {"p": 0.5, "value": "random"}}),
        measured=N_("baseline 75.5% ± 0.2, Random Erasing 75.8% ± 0.5: +0.3 points (95% interval -0.7 to +1.4), "
        "within seed noise; on 2,500 images for 60 epochs +2.2 (-0.2 to +4.5), within"),
        shown=False, cpu_minutes=3,
    ),
    "autoaugment": _cifar_trick(
        N_("AutoAugment vs baseline"),
        N_("ResNet-18 on CIFAR-10 with flips and crops, with and without AutoAugment's CIFAR-10 policy (Cubuk "
        "et al. 2019): 25 searched sub-policies of two image operations each."),
        N_("AutoAugment (CIFAR-10 policy)"), _pipeline({"op": "autoaugment", "params": {"policy": "cifar10"}}),
        measured=N_("baseline 75.5% ± 0.2, AutoAugment 76.5% ± 0.1: +1.1 points (95% interval +0.7 to +1.4), beyond "
        "seed noise. AutoAugment runs image by image through torchvision, so its run takes about twice the baseline's"),
        cpu_minutes=5,
    ),
    "warmup_cosine": Preset(
        title=N_("Warmup + cosine vs step decay"),
        description=N_("ResNet-18 on CIFAR-10: the classic step decay (lr x0.1 at 50% and 75% of the run) "
        "against a linear warmup over the first 5 epochs (Goyal et al. 2017) followed by cosine decay, "
        "both peaking at the same learning rate."),
        needs="cifar10",
        course=RESNET_CIFAR,
        runs=(
            (N_("step decay"), {"schedule.name": "step", "schedule.milestones": [0.5, 0.75], "schedule.gamma": 0.1}),
            (N_("warmup + cosine"), {"schedule.name": "cosine", "schedule.warmup": 5, "schedule.warmup_unit": "epochs"}),
        ),
        cpu=CIFAR_CPU,
        cpu_images=CIFAR_IMAGES,
        measured=N_("step decay 75.8% ± 0.3, warmup + cosine 75.6% ± 0.1: -0.3 points (95% interval -0.9 to +0.3), "
        "within seed noise. Warmup matters for large batches and learning rates (Goyal et al. trained with 8,192 "
        "images a batch); a small network with batch norm at batch 256 trains as well without. On 2,500 images for 60 "
        "epochs step 68.8% ± 0.3, warmup + cosine 67.8% ± 0.5, -1.1 (-2.1 to -0.1), beyond seed noise the other way"),
        shown=False, cpu_minutes=3,
    ),
    "finetune_imagenet": Preset(
        title=N_("Fine-tuning from ImageNet vs from scratch"),
        description=N_("The course's transfer-learning experiment on a few classes of photos: the same network "
        "started from ImageNet weights (a new head that learns 10x faster) or from random weights, same "
        "schedule. The course reports 93% fine-tuned against 78-81% from scratch on a 2-class photo set. "
        "On a CPU the network is MobileNetV2 at 128 px, whose ImageNet weights install offline."),
        needs="photos",
        # d2l's "Fine-Tuning": SGD, weight decay 1e-3, batch 128, 5 epochs at 224 px; the body at lr
        # 5e-5 and the new head at 10x that, the scratch network at 5e-4 everywhere. d2l sums the
        # loss over the batch; a mean loss needs 128x the lr for the same steps: 0.0064 and 0.064.
        course={
            "model.name": "tv_resnet18",
            "data.image_size": 224,
            "optim.name": "sgd",
            "optim.weight_decay": 1e-3,
            "schedule.name": "constant",
            "run.epochs": 5,
            "run.batch_size": 128,
            "augment.train": [{"op": "random_resized_crop", "params": {}}, *FLIP],
        },
        runs=(
            (N_("fine-tuned, head lr x10"), {"model.options": {"pretrained": True}, "optim.head_lr_mult": 10.0, "optim.lr": 0.0064}),
            (N_("from scratch"), {"model.options": {"pretrained": False}, "optim.lr": 0.064}),
        ),
        cpu={"model.name": "tv_mobilenet_v2", "data.image_size": 128, "run.epochs": 4, "run.batch_size": 32,
             "run.eval_every": 1, "run.channels_last": True},
        cpu_images=1000,
        # At batch 32 the course's rates (scaled for a mean loss) are too high for MobileNetV2: the
        # fine-tuned run reached 34-44% in 3 epochs, and at body 0.01 its loss hit 53 by step 4. About
        # a sixth of them trains (bench/presets_real.py --preset finetune_imagenet).
        cpu_runs={"fine-tuned, head lr x10": {"optim.lr": 0.001}, "from scratch": {"optim.lr": 0.01}},
        contrasts=(("from scratch", "fine-tuned, head lr x10", 1),),
        measured=N_("fine-tuned 64.8% ± 0.5, from scratch 46.2% ± 2.2: +18.6 points (95% interval +13.6 to +23.5), "
        "beyond seed noise (flowers5, 1,000 training photos at 128 px, 4 epochs). Below the course's 93%: "
        "a linear classifier on MobileNetV2's ImageNet features of these 128 px photos reaches only 67-71% "
        "(scikit-learn's logistic regression, 1,000 photos), so the features, not the training, set the ceiling"),
        cpu_minutes=3.4,
    ),
    "finetune": Preset(
        title=N_("Fine-tuning vs from scratch on the shapes (no weights needed)"),
        description=N_("The transfer-learning recipe with a body pretrained on this machine. First a FastCNN is "
        "pretrained on the full shapes set (every colour). Then the target task: only 300 training "
        "images, all red or green (variant 'few_colours'), tested on shapes of every colour. One run "
        "starts from the pretrained body with a new head that learns 10x faster than the body; the other "
        "trains the same network from random weights. The fine-tuning run waits in the queue until the "
        "pretraining run has finished. The same works for your own images: pretrain on a large dataset, "
        "then pick that run under 'Start from a finished run's weights' (Model tab)."),
        needs=SHAPES,
        course={
            "data.dataset": SHAPES,
            "data.variant": "few_colours",
            "data.subset": 0.06,  # 300 training images: where pretraining pays off
            "model.name": "fastcnn",
            "schedule.name": "cosine",
            "run.epochs": 10,
            "run.batch_size": 32,
            "augment.train": [],
        },
        runs=(
            (N_("from scratch"), {"optim.lr": 0.05}),
            (N_("fine-tuned, head lr x10"), {"model.init_from_run": PRETRAINED, "optim.lr": 0.01, "optim.head_lr_mult": 10.0}),
        ),
        cpu={"run.epochs": 6},
        cpu_images=2500,
        pretrain=(
            N_("pretraining on all the shapes"),
            {"data.variant": None, "data.subset": None, "run.epochs": 5, "run.batch_size": 64, "optim.lr": 0.05},
        ),
        pretrain_cpu={"run.epochs": 2},
        shapes={},
    ),
}


# ============================================================================ plans


@dataclass(frozen=True)
class PresetPlan:
    """What launching a preset here would train, on which data, and why (its texts in the language
    it was planned in: the title, the run names, the source, the notes and `blocked`)."""

    key: str
    title: str
    dataset: str | None  # None: the data it needs is not here (see `blocked`)
    source: str  # where the dataset comes from, in words
    budget: str  # "course", "classroom" or "longer"
    runs: list[tuple[str, TrainConfig]]  # the compared runs, one seed each
    notes: list[str]
    seeds: int = 1
    blocked: str | None = None  # why it cannot run here and how to fix that
    pretrain: tuple[str, TrainConfig] | None = None  # trained first; see PRETRAINED

    @property
    def runnable(self) -> bool:
        return self.blocked is None

    @property
    def scaled_down(self) -> bool:
        return self.budget != "course"

    @property
    def total_runs(self) -> int:
        return len(self.runs) * self.seeds + (self.pretrain is not None)


def budgets(name: str, device: str = "cpu") -> list[str]:
    """The budgets the preset offers on `device`: the course's recipe on a CUDA GPU, else the
    classroom one and, where one was found, the longer one."""
    preset = PRESETS[name]
    if str(device).startswith("cuda"):
        return ["course", "classroom"]
    return ["classroom", "longer"] if preset.longer is not None else ["classroom"]


def plan_preset(
    name: str,
    device: str = "cpu",
    *,
    dataset: str | None = None,
    budget: str | None = None,
    seeds: int = 1,
    resolve: Callable[[str], Resolved | None] = sources.resolve,
) -> PresetPlan:
    """The preset's runs for `device` ("cuda", "cuda:1", "cpu", "mps").

    dataset: run it on this dataset (any core.data value) instead of the one it finds.
    budget: "course" (the default on a CUDA GPU), "classroom" (the default elsewhere) or "longer".
    resolve: finds a kind of dataset; core.data.sources.resolve, or a stand-in in tests.
    """
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    preset = PRESETS[name]
    if budget is None:
        budget = budgets(name, device)[0]
    if budget not in budgets(name, device):
        raise ValueError(_("preset {name!r} has no {budget!r} budget on {device}; choose one of {budgets}").format(
            name=name,
            budget=budget,
            device=device,
            budgets=", ".join(budgets(name, device)),
        ))
    if not 1 <= seeds <= MAX_SEEDS:
        raise ValueError(_("seeds must be 1..{max_seeds}, got {seeds}").format(max_seeds=MAX_SEEDS, seeds=seeds))

    notes: list[str] = []
    title = tr(preset.title)
    chosen, source, blocked = _choose_data(preset, dataset, resolve, notes)
    on_shapes = chosen == SHAPES and preset.needs != SHAPES
    if blocked is not None:
        return PresetPlan(name, title, None, "", budget, [], notes, seeds, blocked)

    runs, scaling = [], {}
    for run_name, overrides in preset.runs:
        full = apply_overrides(TrainConfig(), {**preset.course, **overrides})
        cfg = _configure(full, preset, run_name, overrides, chosen, budget, on_shapes)
        if budget != "course":
            scaling.update({k: v for k, v in diff(full, cfg).items() if k not in scaling and k not in overrides})
        runs.append((f"{title} · {tr(run_name)}", cfg))
    notes.append(_budget_note(preset, budget, scaling, chosen, on_shapes))
    notes += _weights_notes(cfg for unused, cfg in runs)
    if seeds == 1:
        notes.append(_("One seed a run shows one draw of the seed noise; launch 3 seeds for a verdict "
                       "on whether the difference is larger than that noise."))

    pretrain = None
    if preset.pretrain is not None:
        run_name, overrides = preset.pretrain
        full = apply_overrides(TrainConfig(), {**preset.course, **overrides})
        cfg = _subset(apply_overrides(full, {**preset.cpu, **preset.pretrain_cpu}), preset.cpu_images) if budget != "course" else full
        pretrain = (f"{title} · {tr(run_name)}", cfg)
        if budget != "course":
            notes.append(_("The pretraining run is shortened too: {changes}.").format(
                changes="; ".join(_changes(diff(full, cfg), cfg.data.dataset)),
            ))
    return PresetPlan(name, title, chosen, source, budget, runs, notes, seeds, None, pretrain)


def _choose_data(
    preset: Preset, dataset: str | None, resolve: Callable[[str], Resolved | None], notes: list[str]
) -> tuple[str | None, str, str | None]:
    """(dataset, where it comes from, why it cannot run); says which it took in `notes`."""
    if dataset is not None:
        source = sources.describe_source(dataset)
        notes.append(_("On your choice of dataset, {source}; the figures measured for this preset are for "
                       "{kind}, so yours may differ.").format(source=source, kind=_kind_label(preset.needs)))
        return dataset, source, None
    if preset.needs == SHAPES:
        return SHAPES, _("the generated shapes"), None
    found = resolve(preset.needs)
    if found is not None:
        notes.append(_("Data: {kind} from {source} ({dataset}).").format(
            kind=_kind_label(preset.needs), source=found.source, dataset=found.dataset,
        ))
        return found.dataset, found.source, None
    how = tr(sources.kind(preset.needs).how_to_get)
    if preset.shapes is not None:
        notes.append(_("{kind} is not on this machine, so the runs use the generated shapes, where this experiment "
                       "shows the course's direction too ({measured}). For the real thing: {how}").format(
            kind=_kind_label(preset.needs),
            measured=tr(preset.shapes_measured) if preset.shapes_measured else _("see its description"),
            how=how,
        ))
        return SHAPES, _("the generated shapes"), None
    blocked = _("This experiment needs {kind}, which is not on this machine. It is not run on the generated "
                "shapes: {reason} {how}").format(kind=_kind_label(preset.needs), reason=tr(preset.not_on_shapes), how=how)
    return None, "", blocked


def _configure(
    full: TrainConfig, preset: Preset, run_name: str, overrides: Mapping[str, Any], dataset: str, budget: str, on_shapes: bool
) -> TrainConfig:
    """One compared run: the course's config, on `dataset`, at `budget`."""
    cfg = full
    if dataset != cfg.data.dataset:
        cfg = apply_overrides(cfg, {"data.dataset": dataset})
    if budget == "course":
        return cfg
    # The budget, then the run's own overrides again (the budget must not undo what is compared),
    # then the run's own CPU overrides and the dataset's.
    # On the shapes, their own budget replaces the one measured on the real data.
    if on_shapes:
        steps = [preset.shapes or {}, dict(overrides), preset.shapes_runs.get(run_name, {})]
    else:
        steps = [preset.cpu, *([preset.longer] if budget == "longer" and preset.longer else [])]
        steps += [dict(overrides), preset.cpu_runs.get(run_name, {}), preset.on_dataset.get(dataset, {})]
    for step in steps:
        cfg = apply_overrides(cfg, _keep_known_options(cfg, step))
    if not on_shapes:
        cfg = _subset(cfg, preset.cpu_images)
    # Lengths in epochs shrink with the run: a 5-epoch warmup of a 30-epoch run stays a sixth of it.
    ratio = cfg.run.epochs / full.run.epochs
    lengths: dict[str, Any] = {}
    if full.schedule.warmup and full.schedule.warmup_unit == "epochs" and ratio != 1:
        lengths["schedule.warmup"] = round(full.schedule.warmup * ratio, 3)
    if full.optim.freeze_body_epochs and ratio != 1:
        lengths["optim.freeze_body_epochs"] = max(1, round(full.optim.freeze_body_epochs * ratio))
    return apply_overrides(cfg, lengths) if lengths else cfg


def _subset(cfg: TrainConfig, images: int | None) -> TrainConfig:
    """At most `images` training images (a stratified subset); a run declared on fewer keeps its own."""
    size = sources.train_size(cfg.data.dataset) if images else None
    if not size or images >= size * (cfg.data.subset or 1.0):
        return cfg
    return apply_overrides(cfg, {"data.subset": round(images / size, 4)})


def _keep_known_options(cfg: TrainConfig, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The overrides, with model.options merged into the current ones when the model stays and
    replaced when the overrides change the model (options of another model would be rejected)."""
    out = dict(overrides)
    if "model.options" in out:
        options = dict(out["model.options"])
        if out.get("model.name", cfg.model.name) == cfg.model.name:
            options = {**cfg.model.options, **options}
        out["model.options"] = options
    return out


def _budget_note(preset: Preset, budget: str, scaling: Mapping[str, tuple[Any, Any]], dataset: str, on_shapes: bool) -> str:
    if budget == "course":
        return _("The course's own recipe, unchanged, so the result can be held against the course's.")
    changes = "; ".join(_changes(scaling, dataset))
    if on_shapes:
        return _("Budget for the shapes: {changes}.").format(changes=changes)
    minutes = preset.longer_minutes if budget == "longer" else preset.cpu_minutes
    measured = tr(preset.longer_measured if budget == "longer" else preset.measured)
    if budget == "classroom":
        said = (_("No CUDA GPU here, so the preset trains at a classroom budget found by measurement on the real "
                  "data: about {duration} for the whole preset (one seed a run) on a 2-core laptop; {changes}. "
                  "Measured over 3 seeds: {measured}.") if minutes else
                _("No CUDA GPU here, so the preset trains at a classroom budget found by measurement on the real "
                  "data: {changes}. Measured over 3 seeds: {measured}."))
    else:
        said = (_("The longer CPU budget: about {duration} for the whole preset (one seed a run) on a 2-core laptop; "
                  "{changes}. Measured over 3 seeds: {measured}.") if minutes else
                _("The longer CPU budget: {changes}. Measured over 3 seeds: {measured}."))
    said = said.format(duration=_duration(minutes) if minutes else "", changes=changes, measured=measured)
    if budget == "classroom" and not preset.shown:
        if preset.longer is not None:
            said += " " + _("At this budget the course's effect does not show; the longer budget ({duration}) does: "
                            "{measured}.").format(duration=_duration(preset.longer_minutes),
                                                  measured=tr(preset.longer_measured))
        elif preset.longer_measured:
            said += " " + _("At this budget the course's effect does not show. {measured}").format(
                measured=tr(preset.longer_measured))
        else:
            said += " " + _("At this budget the course's effect does not show.")
    return said


def _weights_notes(configs: Iterable[TrainConfig]) -> list[str]:
    """What a run starting from ImageNet weights needs, where the weights are not on this machine."""
    from core.training import weights
    from core.training.models import MODELS

    archs = {MODELS[c.model.name].pretrained for c in configs if c.model.options.get("pretrained")}
    missing = [weights.availability(arch) for arch in sorted(a for a in archs if a)]
    return [_("{message} Online, torchvision downloads them when the fine-tuned run starts; offline that run fails "
              "with this message.").format(message=a.message) for a in missing if not a.present]


def _duration(minutes: float) -> str:
    if minutes < 1:
        return _("{seconds} seconds").format(seconds=round(minutes * 60))
    return _("{minutes:g} minutes").format(minutes=minutes)


def _kind_label(kind_key: str) -> str:
    return tr(sources.kind(kind_key).label) if kind_key in sources.KINDS else kind_key


def launch_plan(plan: PresetPlan) -> list[str]:
    """Queue the plan's runs (its pretraining run first), `plan.seeds` times each, and return the
    ids of the compared runs, grouped by run: [run 1 seed 0, run 1 seed 1, ..., run 2 seed 0, ...].

    The compared runs that start from the pretraining run get its id as model.init_from_run; the
    queue starts them once it has ended, so this returns at once, like runner.launch.
    """
    from core.runs import runner

    if not plan.runnable:
        raise ValueError(plan.blocked)
    runner.ensure_room((plan.pretrain is not None) + len(plan.runs) * plan.seeds)  # queued whole, or not at all
    pretrain_id = None
    if plan.pretrain is not None:
        name, cfg = plan.pretrain
        pretrain_id = runner.launch(cfg, name)
    ids = []
    for name, cfg in plan.runs:
        if cfg.model.init_from_run == PRETRAINED:
            if pretrain_id is None:
                raise ValueError(_("{name} starts from the pretraining run, but preset {key} has none").format(name=name, key=plan.key))
            cfg = apply_overrides(cfg, {"model.init_from_run": pretrain_id})
        for seed_cfg in seeded(cfg, plan.seeds):
            ids.append(runner.launch(seed_cfg, seed_run_name(name, seed_cfg.run.seed) if plan.seeds > 1 else name))
    return ids


def seeded(cfg: TrainConfig, seeds: int) -> list[TrainConfig]:
    """The config with run.seed = its own seed, +1, ... (`seeds` of them)."""
    return [apply_overrides(cfg, {"run.seed": cfg.run.seed + i}) for i in range(seeds)]


# Settings that come with a budget's recipe and would only lengthen its note.
_DETAILS = {"schedule.pct_start", "schedule.div_factor", "schedule.final_div_factor", "optim.momentum",
            "optim.nesterov", "run.eval_every", "run.amp", "run.channels_last", "data.variant"}


def _changes(changes: Mapping[str, tuple[Any, Any]], dataset: str) -> list[str]:
    said = []
    size = sources.train_size(dataset) if dataset else None
    model_changed = "model.name" in changes
    for key, (before, after) in changes.items():
        if key == "data.dataset" or key in _DETAILS or (model_changed and key.startswith("model.options")):
            continue  # said in the data note, a detail of the recipe, or another model's options
        if key == "data.subset" and size:
            said.append(_("{after:,} training images instead of {before:,}").format(
                after=round((after or 1.0) * size), before=round((before or 1.0) * size),
            ))
        else:
            said.append(f"{key} {_show(before)} → {_show(after)}")
    return said


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)) and all(isinstance(v, Mapping) and "op" in v for v in value):
        # an augmentation pipeline: "hflip (p 0.5), cutout (p 1, size 0.25)", or none
        return ", ".join(f"{step['op']} ({_show(step.get('params', {}))})" for step in value) or _("none")
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {_show(v)}" for k, v in value.items()) or "{}"
    return _("auto") if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def contrasts(name: str) -> list[tuple[str, str, int]]:
    """The preset's comparisons by run name, with the direction the course reports."""
    preset = PRESETS[name]
    if preset.contrasts:
        return list(preset.contrasts)
    first = preset.runs[0][0]
    return [(first, run_name, 1) for run_name, unused in preset.runs[1:]]


def available_for(names: Iterable[str] | None = None) -> dict[str, bool]:
    """Preset name -> whether it can run here with the data this machine has (for the page's list)."""
    return {name: plan_preset(name).runnable for name in (names or PRESETS)}
