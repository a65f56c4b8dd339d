"""Training throughput on CIFAR-10: the project's trainer against the course's usual loop.

1. Whole training loop, images per second, the same model, augmentations and batch size:

   ours       core.training.loop.train_events on the cpu_fast_cifar recipe (core.runs.recipes) with the
              augmentation set to flip, pad-4 crop, ColorJitter and Cutout: the dataset sits
              in memory as uint8, every batch is augmented as a whole (each image draws its own
              parameters), and the step runs with the recipe's precision and memory layout.
   reference  the way the course writes it: torchvision ImageFolder over the extracted zip,
              PIL transforms per image (RandomHorizontalFlip, RandomCrop(32, padding=4),
              ColorJitter, ToTensor, Normalize, Cutout), DataLoader(num_workers=2), and a float32
              step of the same model.

   Both run in this process, alternating round by round so that a change in the machine's load
   hits both; the first --warmup steps of every measurement (DataLoader workers starting,
   allocator and oneDNN caches) are not timed. Target: ours / reference >= 3.

2. --variants: the trainer alone with bfloat16 autocast, channels_last and torch.compile each
   switched on and off, to show which of them pay on this CPU (the recipe switches on only
   those that do).

3. The augmentation stage alone (flip, pad-4 crop, ColorJitter, Cutout, Mixup) against per-image
   torchvision, in one process and in a 2-worker DataLoader: bench/augment_batch.py, run as a
   subprocess at the end (--skip-augment leaves it out).

    python bench/throughput.py                         # about 5 minutes on a quiet 2-core machine
    python bench/throughput.py --rounds 3 --steps 40
    python bench/throughput.py --variants --skip-reference --skip-augment
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import _common as common  # noqa: E402  (puts the project root on sys.path)
import torch
import torch.nn.functional as F

from core.runs.recipes import recipe  # noqa: E402
from core.training.config import TrainConfig, apply_overrides  # noqa: E402
from core.training.events import Failed, Started, Step  # noqa: E402
from core.training.loop import train_events  # noqa: E402

# The augmentations both loops apply, in the project's declared form; the reference below
# spells out the same ones as torchvision transforms.
AUGMENT = [
    {"op": "hflip", "params": {"p": 0.5}},
    {"op": "pad_crop", "params": {"padding": 4}},
    {"op": "color_jitter", "params": {"brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.1}},
    {"op": "cutout", "params": {"size": 0.5}},  # one 16x16 hole on 32x32 images
]
CUTOUT_SIDE = 16


def bench_config(name: str, batch_size: int | None, **run) -> TrainConfig:
    """The recipe on the shared zip, with the benchmark's augmentations and no batch mixing."""
    cfg = recipe(name, dataset=common.cifar_dataset_name())
    overrides = {"augment.train": AUGMENT, "tricks.mixup_alpha": 0.0, "tricks.cutmix_alpha": 0.0}
    if batch_size:
        overrides["run.batch_size"] = batch_size
    overrides.update({f"run.{k}": v for k, v in run.items()})
    return apply_overrides(cfg, overrides)


# ============================================================================ ours


def measure_trainer(cfg: TrainConfig, warmup: int, steps: int) -> common.Measurement:
    """Images/s of core's training loop over `steps` steps after `warmup` untimed ones.

    The clock runs from the moment the trainer hands over step `warmup` to the moment it hands
    over step `warmup + steps`, so it covers everything the loop does between them: batch
    making, augmentation, forward, backward, optimiser, bookkeeping.
    """
    state = {"done": 0}
    marks: dict[int, float] = {}

    def should_stop() -> bool:
        return state["done"] >= warmup + steps

    for event in train_events(cfg, should_stop=should_stop):
        if isinstance(event, Failed):
            raise SystemExit(f"the trainer failed: {event.message}")
        if isinstance(event, Started) and event.steps_per_epoch < warmup + steps:
            raise SystemExit(f"an epoch has only {event.steps_per_epoch} steps; lower --warmup/--steps")
        if isinstance(event, Step):
            state["done"] = event.step
            if event.step in (warmup, warmup + steps):
                marks[event.step] = time.perf_counter()
    seconds = marks[warmup + steps] - marks[warmup]
    return common.Measurement(steps * cfg.run.batch_size, seconds, common.load_average())


# ============================================================================ the reference


class Cutout:
    """DeVries & Taylor's Cutout as course code writes it: one square hole at a uniformly random
    centre (clipped at the border), on a normalised tensor image, filled with zero."""

    def __init__(self, side: int):
        self.side = side

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[-2:]
        cy, cx = int(torch.randint(h, (1,))), int(torch.randint(w, (1,)))
        half = self.side // 2
        img[:, max(0, cy - half) : min(h, cy + half), max(0, cx - half) : min(w, cx + half)] = 0
        return img


def reference_loader(batch_size: int, mean, std):
    import torchvision.transforms as T
    from torch.utils.data import DataLoader
    from torchvision.datasets import ImageFolder

    transform = T.Compose([
        T.RandomHorizontalFlip(),
        T.RandomCrop(32, padding=4),
        T.ColorJitter(0.4, 0.4, 0.4, 0.1),
        T.ToTensor(),
        T.Normalize(mean, std),
        Cutout(CUTOUT_SIDE),
    ])  # fmt: skip
    train = ImageFolder(str(common.extracted_cifar10() / "train"), transform=transform)
    return DataLoader(train, batch_size=batch_size, shuffle=True, num_workers=2, drop_last=True)


def measure_reference(cfg: TrainConfig, warmup: int, steps: int) -> common.Measurement:
    """Images/s of the course-style loop: same model and optimiser settings, float32, NCHW."""
    from core.training.models import build_model

    bundle = common.load_cifar10()
    previous = torch.get_num_threads()
    torch.set_num_threads(cfg.run.threads or os.cpu_count() or 1)  # as the trainer does
    try:
        torch.manual_seed(0)
        model = build_model(cfg.model.name, in_channels=3, num_classes=10, **cfg.model.options)
        o = cfg.optim
        opt = torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum, nesterov=o.nesterov, weight_decay=o.weight_decay)
        loader = reference_loader(cfg.run.batch_size, bundle.mean, bundle.std)
        if len(loader) < warmup + steps:
            raise SystemExit(f"an epoch has only {len(loader)} batches; lower --warmup/--steps")
        model.train()
        start = None
        for i, (x, y) in enumerate(loader):
            if i == warmup:
                start = time.perf_counter()
            if i == warmup + steps:
                break
            loss = F.cross_entropy(model(x), y, label_smoothing=cfg.tricks.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss.item()
        seconds = time.perf_counter() - start
        del loader  # stops the workers before the next measurement
    finally:
        torch.set_num_threads(previous)
    return common.Measurement(steps * cfg.run.batch_size, seconds, common.load_average())


# ============================================================================ report


def compare_with_reference(args) -> None:
    ours_cfg = bench_config(args.recipe, args.batch_size, threads=args.threads)
    print(f"\n1. Training loop, {args.steps} timed steps of {ours_cfg.run.batch_size} images after {args.warmup} "
          f"warm-up steps, model {ours_cfg.model.name} {ours_cfg.model.options}")
    print(f"   ours: amp {ours_cfg.run.amp}, channels_last {ours_cfg.run.channels_last}, compile {ours_cfg.run.compile}; "
          "reference: float32, NCHW, PIL transforms, DataLoader(num_workers=2)")
    rows, ours_all, ref_all = [], [], []
    for r in range(1, args.rounds + 1):
        ours = measure_trainer(ours_cfg, args.warmup, args.steps)
        ref = measure_reference(ours_cfg, args.warmup, args.steps)
        ours_all.append(ours.per_s)
        ref_all.append(ref.per_s)
        rows.append((r, ours.per_s, ref.per_s, f"{ours.per_s / ref.per_s:.2f}x", f"{ours.load:.1f} / {ref.load:.1f}"))
    rows.append(("median", common.median(ours_all), common.median(ref_all),
                 f"{common.median(ours_all) / common.median(ref_all):.2f}x", ""))
    common.print_table(("round", "ours img/s", "reference img/s", "ours/ref", "load avg"), rows)
    print("   target: ours/ref >= 3x")


VARIANTS = (
    ("float32, NCHW", {"amp": "off", "channels_last": False, "compile": False}),
    ("float32, channels_last", {"amp": "off", "channels_last": True, "compile": False}),
    ("bf16 autocast, NCHW", {"amp": "bf16", "channels_last": False, "compile": False}),
    ("bf16 autocast, channels_last", {"amp": "bf16", "channels_last": True, "compile": False}),
    ("bf16, channels_last, compile", {"amp": "bf16", "channels_last": True, "compile": True}),
)


def compare_variants(args) -> None:
    print(f"\n2. The trainer with each speed setting ({args.steps} timed steps after {args.warmup}; "
          f"compile warms up during the untimed steps)")
    results: dict[str, list[float]] = {name: [] for name, _ in VARIANTS}
    for _ in range(args.rounds):
        for name, run in VARIANTS:
            warmup = args.warmup + (3 if run["compile"] else 0)
            cfg = bench_config(args.recipe, args.batch_size, threads=args.threads, **run)
            results[name].append(measure_trainer(cfg, warmup, args.steps).per_s)
    base = common.median(results[VARIANTS[0][0]])
    rows = [(name, common.median(v), f"{common.median(v) / base:.2f}x", " ".join(f"{x:.0f}" for x in v)) for name, v in results.items()]
    common.print_table(("setting", "img/s (median)", "vs float32 NCHW", "each round"), rows)


def main() -> None:
    from core.training.allocator import keep_freed_memory

    keep_freed_memory()  # as a trainer process does (core.cli); the course's loop in this process gets it too
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="cpu_fast_cifar", help="a core.runs.recipes name")
    parser.add_argument("--batch-size", type=int, help="images per step (default: the recipe's)")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before each measurement")
    parser.add_argument("--threads", type=int, default=0, help="torch threads for both loops (0: every core, as the recipe)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of ours and the reference")
    parser.add_argument("--variants", action="store_true", help="also time amp / channels_last / compile settings")
    parser.add_argument("--skip-reference", action="store_true", help="leave out the comparison with the reference loop")
    parser.add_argument("--skip-augment", action="store_true", help="leave out the augmentation-stage benchmark")
    parser.add_argument("--augment-images", type=int, default=5120, help="images per augmentation-stage measurement")
    args = parser.parse_args()

    common.load_cifar10()  # decode once (cached) before anything is timed
    print(common.machine_line())
    if not args.skip_reference:
        compare_with_reference(args)
    if args.variants:
        compare_variants(args)
    if not args.skip_augment:
        print("\n3. Augmentation stage alone (bench/augment_batch.py)", flush=True)
        script = common.ROOT / "bench" / "augment_batch.py"
        subprocess.run([sys.executable, str(script), "--images", str(args.augment_images)], check=True, cwd=common.ROOT)
    print(f"\nload average at the end: {common.load_average():.1f}")


if __name__ == "__main__":
    main()
