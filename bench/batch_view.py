"""What the Train page's "what the model sees" costs the training run that feeds it.

Every BATCH_SAMPLE_EVERY_S seconds (15) the trainer keeps 8 images of the batch it is about to
train on (after the pipeline and the mixer), with their targets and draws in words, and the run
store writes them to the run's folder (core.training.batches.BatchMaker.sample,
core.runs.store.write_batch_sample). Measured on CIFAR-10 from the shared zip with the
cpu_fast_cifar recipe, flip + pad-4 crop + ColorJitter + Cutout and Mixup:

1. One sample: making a batch with keep=8, the sample and its file, against making the same
   batch without (alternating, median of --repeats each): milliseconds per sample, and what that
   is at the page's cadence as a share of training time (cost / BATCH_SAMPLE_EVERY_S).
2. Side by side, the whole loop for --steps steps after --warmup: no samples at all, samples at
   the default cadence, and a sample after every step (the worst case, 1,000 times more often than
   the page asks for), in alternating rounds; each with the file written as the run store does.
   Target: the default cadence costs at most 1% of throughput.

    python bench/batch_view.py                 # about 3 minutes on 2 cores
    python bench/batch_view.py --rounds 5 --steps 60
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time

import _common as common
import torch

from core.runs.recipes import recipe
from core.training.config import apply_overrides
from core.training.events import BatchSample, Failed, Step
from core.training.loop import (
    BATCH_SAMPLE_EVERY_S,
    BATCH_SAMPLE_SIZE,
    setup,
    train_events,
)

AUGMENT = [
    {"op": "hflip", "params": {"p": 0.5}},
    {"op": "pad_crop", "params": {"padding": 4}},
    {"op": "color_jitter", "params": {"brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.1}},
    {"op": "cutout", "params": {"size": 0.5}},
]


def bench_config():
    cfg = recipe("cpu_fast_cifar", dataset=common.cifar_dataset_name())
    return apply_overrides(cfg, {"augment.train": AUGMENT, "tricks.mixup_alpha": 0.2})


def sample_cost(cfg, repeats: int) -> tuple[float, float]:
    """(ms per sample, ms to make the batch without one): medians over alternating repeats."""
    from core.runs import store

    run = setup(cfg)
    make = run.make_batch
    idx = torch.arange(cfg.run.batch_size)
    run_id = store.create_run(cfg, "bench: batch view", status="running")
    plain, kept = [], []
    for unused in range(3):  # warm-up: allocator, kernels
        make(idx)
    for unused in range(repeats):
        t = time.perf_counter()
        make(idx)
        plain.append(time.perf_counter() - t)
        t = time.perf_counter()
        make(idx, BATCH_SAMPLE_SIZE)
        store.write_batch_sample(run_id, make.sample(1, 0.0, cfg.tricks.label_smoothing))
        kept.append(time.perf_counter() - t)
    return (statistics.median(kept) - statistics.median(plain)) * 1000, statistics.median(plain) * 1000


def loop_seconds(cfg, warmup: int, steps: int, every_s: float) -> tuple[float, int]:
    """(seconds for `steps` steps after `warmup`, samples among them), with samples every
    `every_s` s, each written as the run store does."""
    from core.runs import store

    run_id = store.create_run(cfg, "bench: batch view loop", status="running")
    marks: dict[int, float] = {}
    done = {"step": 0}
    samples = 0
    for event in train_events(cfg, should_stop=lambda: done["step"] >= warmup + steps, sample_every_s=every_s):
        if isinstance(event, Failed):
            raise SystemExit(f"the trainer failed: {event.message}")
        if isinstance(event, Step):
            done["step"] = event.step
            if event.step in (warmup, warmup + steps):
                marks[event.step] = time.perf_counter()
        elif isinstance(event, BatchSample):
            store.write_batch_sample(run_id, event)
            samples += warmup < event.step <= warmup + steps
    return marks[warmup + steps] - marks[warmup], samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=30, help="batches made each way in part 1")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of part 2")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    os.environ["AUGLAB_HOME"] = tempfile.mkdtemp(prefix="auglab_batch_view_")
    print(common.machine_line(), flush=True)
    cfg = bench_config()

    cost_ms, batch_ms = sample_cost(cfg, args.repeats)
    print(f"1. one sample of {BATCH_SAMPLE_SIZE} images (keep, describe, write): {cost_ms:.2f} ms "
          f"(making the batch alone: {batch_ms:.1f} ms); at one every {BATCH_SAMPLE_EVERY_S:g} s that is "
          f"{cost_ms / 1000 / BATCH_SAMPLE_EVERY_S:.4%} of training time", flush=True)

    kinds = {"none": math.inf, "default": BATCH_SAMPLE_EVERY_S, "every step": 0.0}
    seconds: dict[str, list[float]] = {k: [] for k in kinds}
    counts: dict[str, int] = {}
    for r in range(args.rounds):
        for name, every in kinds.items():
            took, counts[name] = loop_seconds(cfg, args.warmup, args.steps, every)
            seconds[name].append(took)
        print(f"   round {r + 1}: " + ", ".join(f"{k} {v[-1] / args.steps * 1000:.1f} ms/step" for k, v in seconds.items()),
              flush=True)
    base = statistics.median(seconds["none"])
    rows = []
    for name in kinds:
        mid = statistics.median(seconds[name])
        rows.append([name, counts[name], f"{mid / args.steps * 1000:.1f}", f"{base / mid:.3f}"])
    print(f"2. the loop, {args.steps} steps after {args.warmup}, median of {args.rounds} alternating rounds:")
    common.print_table(["samples", "samples in the timed steps", "ms per step", "throughput vs none"], rows)
    print(f"   target: the default cadence at >= 0.99 of 'none' (part 1 gives its cost directly: "
          f"{cost_ms / 1000 / BATCH_SAMPLE_EVERY_S:.4%})")


if __name__ == "__main__":
    main()
