"""MobileNetV2 fine-tuning throughput at 224, 160 and 128 px: what a smaller input buys on a CPU.

The project's own training step (core.training.loop.train_events: batch from the uint8 dataset in
memory, augmentation, forward, backward, optimiser step) on torchvision's MobileNetV2 with a new
head, on flowers5 from the shared data folder (photos stored at 128 px, resized to each size),
timed per step from the trainer's Step events. Two ways to fine-tune:

    all    everything trains (head lr x10): backward through the whole network
    head   the body frozen (optim.train_head_only): backward through the head only

Every size and mode is measured in this process, round after round in turn, so a change in the
machine's load hits all of them; the first --warmup steps of each measurement (allocator and
oneDNN caches) are not counted. The table gives images/s and ms per step (medians over rounds)
and the ratio to 224 px in the same mode.

    python bench/finetune_sizes.py                                   # a few minutes on 2 cores
    python bench/finetune_sizes.py --sizes 224,128 --modes all --rounds 3 --steps 20
    python bench/finetune_sizes.py --dataset shapes --subset 0.01 --sizes 32 --steps 1 --warmup 0 --rounds 1 --batch-size 8

Uses ImageNet weights when they are installed (python -m core.training.weights install); without them it
times the same network from random weights, which costs exactly the same.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import _common as common  # noqa: E402  (puts the project root on sys.path)

from core.training import weights  # noqa: E402
from core.training.config import TrainConfig  # noqa: E402
from core.training.events import Failed, Started, Step  # noqa: E402
from core.training.loop import train_events  # noqa: E402

FLOWERS_ZIP = Path("/work/shared/data/flowers5.zip")
MODES = {
    "all": {"head_lr_mult": 10.0},
    "head": {"head_lr_mult": 1.0, "train_head_only": True},
}


def bench_config(args: argparse.Namespace, size: int, mode: str) -> TrainConfig:
    return TrainConfig.from_dict({
        "data": {"dataset": args.dataset, "image_size": size, "subset": args.subset},
        "model": {"name": "tv_mobilenet_v2", "options": {"pretrained": args.pretrained}},
        "optim": {"name": "sgd", "lr": 0.01, "freeze_bn_stats": args.freeze_bn, **MODES[mode]},
        "augment": {"train": [{"op": "hflip", "params": {"p": 0.5}}]},
        # The run stops after the timed steps (should_stop); epochs only have to outlast them. An
        # end-of-epoch evaluation on the way is not charged to the next step's timing.
        "run": {"epochs": 1000, "batch_size": args.batch_size, "threads": args.threads, "device": "cpu", "seed": 0},
    })


def measure(cfg: TrainConfig, warmup: int, steps: int) -> list[float]:
    """Images per second of each timed step."""
    rates: list[float] = []
    seen = 0

    def enough() -> bool:
        return seen >= warmup + steps

    for event in train_events(cfg, should_stop=enough):
        if isinstance(event, Failed):
            raise SystemExit(f"the run failed: {event.message}")
        if isinstance(event, Started) and event.steps_per_epoch < 2:
            raise SystemExit(f"only {event.train_size} training images at batch {cfg.run.batch_size}: raise --subset")
        if isinstance(event, Step):
            seen += 1
            if seen > warmup:
                rates.append(event.images_per_s)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="224,160,128", help="input sides in px, comma-separated (the first is the reference)")
    parser.add_argument("--modes", default="all,head", help=f"comma-separated, from {', '.join(MODES)}")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (the classroom laptop has 2 cores)")
    parser.add_argument("--subset", type=float, default=0.15, help="share of the training images kept in memory")
    parser.add_argument("--freeze-bn", action="store_true", help="keep batch-norm statistics (optim.freeze_bn_stats)")
    parser.add_argument("--dataset", default=None, help=f"a core.data dataset name (default: zip:{FLOWERS_ZIP})")
    args = parser.parse_args()

    if args.dataset is None:
        if not FLOWERS_ZIP.is_file():
            raise SystemExit(f"{FLOWERS_ZIP} is missing: pass --dataset (e.g. zip:<a folder-of-classes zip>)")
        args.dataset = f"zip:{FLOWERS_ZIP}"
    sizes = [int(s) for s in args.sizes.split(",")]
    modes = [m for m in args.modes.split(",") if m]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise SystemExit(f"unknown mode(s) {unknown}; choose from {', '.join(MODES)}")
    args.pretrained = weights.is_present("mobilenet_v2")

    print(common.machine_line())
    print(
        f"MobileNetV2 ({'ImageNet weights' if args.pretrained else 'random weights: weights not installed, same cost'}) "
        f"on {args.dataset}, batch {args.batch_size}, {args.threads} threads, {args.rounds} rounds x "
        f"{args.steps} steps after {args.warmup} warm-up, batch norm {'frozen' if args.freeze_bn else 'training'}"
    )
    per_round: dict[tuple[int, str], list[float]] = {(s, m): [] for s in sizes for m in modes}
    loads: dict[tuple[int, str], list[float]] = {key: [] for key in per_round}
    for r in range(args.rounds):
        for size in sizes:
            for mode in modes:
                rates = measure(bench_config(args, size, mode), args.warmup, args.steps)
                per_round[size, mode].append(common.median(rates))
                loads[size, mode].append(common.load_average())
                print(f"  round {r + 1}: {size} px, {mode}: {per_round[size, mode][-1]:.1f} images/s", flush=True)

    rows = []
    for mode in modes:
        reference = common.median(per_round[sizes[0], mode])
        for size in sizes:
            rate = common.median(per_round[size, mode])
            rows.append((
                f"{size} px", mode, rate, 1000 * args.batch_size / rate, f"{rate / reference:.2f}x",
                f"{common.median(loads[size, mode]):.1f}",
            ))
    print()
    common.print_table(["input", "trains", "images/s", "ms/step", f"vs {sizes[0]} px", "load"], rows)


if __name__ == "__main__":
    main()
