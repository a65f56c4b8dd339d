"""What committing every training step to the run store costs, against a training step.

A trainer killed with kill -9 loses the steps it had not committed yet. StoreSink commits every
step unless told otherwise; this measures whether that costs anything next to the step itself:

1. The sink: N Step events through core.runs.store.StoreSink, committing every step
   (flush_every_steps=1) and, for comparison, batching them (every 0.5 s or 50 steps), on the
   embedded SQLite store and, with --pg URL (or $AUGLAB_TEST_PG_URL), on a PostgreSQL server.
2. The step: one optimiser step (forward, backward, update) of the Train page's default model
   (FastCNN) on a batch of real CIFAR-10 images at the default batch size, and of the smallest
   model a preset trains (LeNet on 28 px digits' size), on this CPU, in the same process.

It prints each cost and the ratio commit-per-step / training-step. The README quotes the result.

    python bench/store_commit.py
    python bench/store_commit.py --pg postgresql://auglab@127.0.0.1:54329/postgres
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch

from bench._common import load_cifar10, machine_line


def sink_cost(steps: int, every_steps: int, every_s: float) -> float:
    """Seconds per Step event through a StoreSink writing to the store the environment names."""
    from core.runs import store
    from core.training.config import TrainConfig
    from core.training.events import Step

    run_id = store.create_run(TrainConfig(), "bench", status="running")
    sink = store.StoreSink(run_id, flush_every_s=every_s, flush_every_steps=every_steps)
    start = time.perf_counter()
    for i in range(1, steps + 1):
        sink(Step(step=i, epoch=i / 100, loss=1.0, acc=0.5, lr=0.1, images_per_s=1000.0, wall=float(i)))
    sink.close()
    elapsed = time.perf_counter() - start
    assert len(store.metrics(run_id, "step")) == steps
    return elapsed / steps


def step_cost(model_name: str, batch: int, size: int, repeats: int) -> float:
    """Median seconds of one optimiser step of `model_name` on real CIFAR-10 images."""
    from core.training.models import build_model

    data = load_cifar10()
    x = data.train_x[:batch].float().div(255)
    if x.shape[-1] != size:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    channels = 1 if model_name == "lenet" else 3
    x = x[:, :channels].contiguous()
    y = data.train_y[:batch]
    model = build_model(model_name, num_classes=10, in_channels=channels, image_size=size)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    times = []
    for i in range(repeats + 2):
        t = time.perf_counter()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        if i >= 2:  # warm-up
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--pg", default=os.environ.get("AUGLAB_TEST_PG_URL"), help="a PostgreSQL URL to measure too")
    args = parser.parse_args()
    print(machine_line())
    os.environ["AUGLAB_HOME"] = tempfile.mkdtemp(prefix="auglab-bench-commit-")
    stores = [("sqlite", None)] + ([("postgresql", args.pg)] if args.pg else [])
    sink = {}
    for name, url in stores:
        if url:
            os.environ["AUGLAB_STORE_URL"] = url
        else:
            os.environ.pop("AUGLAB_STORE_URL", None)
        every = sink_cost(args.steps, every_steps=1, every_s=0.0)
        batched = sink_cost(args.steps, every_steps=50, every_s=0.5)
        sink[name] = every
        print(f"sink on {name:10s}: {every * 1e3:.3f} ms a step committing every step, "
              f"{batched * 1e3:.3f} ms batched (every 0.5 s or 50 steps)")
    torch.set_num_threads(torch.get_num_threads())
    steps = {
        "fastcnn, batch 64 at 32 px (the Train page's default)": step_cost("fastcnn", 64, 32, 20),
        "lenet, batch 128 at 28 px (the smallest preset model)": step_cost("lenet", 128, 28, 20),
    }
    for label, seconds in steps.items():
        ratios = ", ".join(f"{name} {cost / seconds:.2%}" for name, cost in sink.items())
        print(f"training step, {label}: {seconds * 1e3:.1f} ms; commit-every-step costs {ratios} of it")


if __name__ == "__main__":
    main()
